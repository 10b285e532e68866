# Read-your-writes (kappa.wait) while in-place replays run, one every
# 0.2 s or so: a replay that
# commits while the worker's batch waits for the view's lock makes the
# worker hold the view (it stays "running") and retry it, which may wait
# for the next replay's lock.  Meanwhile other batches go on; kappa.wait
# must not take their end as the held view's position.  Writers change the
# source all along; a checker updates rows no one else touches, waits, and
# reads its own update back, many times.  (Found by a red-team pass: wait
# returned before the view had the change in 95 of 150 rounds.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('waitreplay', extra_conf => "pg_kappa.naptime = 10ms\n");
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE TABLE r (id int PRIMARY KEY, g int, v int);
SELECT kappa.capture('r');
INSERT INTO r SELECT i, i % 10, i FROM generate_series(1, 1000) i;
INSERT INTO r SELECT 10000 + i, -1, 0 FROM generate_series(1, 10) i;
SET client_min_messages = warning;
SELECT kappa.create_view('rv', 'SELECT g, count(*) AS n, sum(v) AS s FROM r WHERE v % 3 <> 0 GROUP BY g');
SELECT kappa.create_view('rv2', 'SELECT id, v FROM r WHERE g < 5');
});

my $writer = $node->background_psql('postgres', on_error_stop => 0);
my $writer_out = $writer->query_until(qr/started/, q{
\echo started
DO $$ BEGIN
  FOR i IN 1 .. 100000 LOOP
    UPDATE r SET v = v + 1 WHERE id = 1 + (i * 37) % 1000;
    COMMIT;
    EXIT WHEN EXISTS (SELECT FROM r WHERE id = 10010 AND v < 0);
  END LOOP;
END $$;
\echo writer done
});
my $replayer = $node->background_psql('postgres', on_error_stop => 0);
my $replayer_out = $replayer->query_until(qr/started/, q{
\echo started
SET client_min_messages = warning;
DO $$ BEGIN
  FOR i IN 1 .. 100000 LOOP
    PERFORM kappa.replay(CASE WHEN i % 2 = 0 THEN 'rv' ELSE 'rv2' END::regclass);
    COMMIT;
    PERFORM pg_sleep(0.2);
    EXIT WHEN EXISTS (SELECT FROM r WHERE id = 10010 AND v < 0);
  END LOOP;
END $$;
\echo replayer done
});

my $rounds = 80;
my $stale = 0;
for my $round (1 .. $rounds)
{
	my $id = 10001 + $round % 9;
	my $seen = $node->safe_psql('postgres', qq{
UPDATE r SET v = $round WHERE id = $id;
SELECT kappa.wait('rv2', timeout => '60s');
SELECT v FROM rv2 WHERE id = $id;
});
	my @lines = split /\n/, $seen;
	if ($lines[-2] ne 't' || $lines[-1] ne "$round")
	{
		$stale++;
		diag("round $round: kappa.wait returned $lines[-2], the view shows v = $lines[-1] for id $id");
		# (each such round may have waited 60 s: a few say enough)
		last if $stale >= 3;
	}
}
is($stale, 0, "kappa.wait returned only once the view had the checker's own update ($rounds rounds)");

# stop the loops (the marker row), and check the views
$node->safe_psql('postgres', 'UPDATE r SET v = -1 WHERE id = 10010');
# (a loop that failed at once said "done" with "started")
$writer->query_until(qr/writer done/, '') unless $writer_out =~ /writer done/;
$replayer->query_until(qr/replayer done/, '') unless $replayer_out =~ /replayer done/;
$writer->quit;
$replayer->quit;
ok($node->safe_psql('postgres', q{SELECT kappa.wait('rv', timeout => '60s') AND kappa.wait('rv2', timeout => '60s')}) eq 't',
	'both views caught up');
view_matches($node, 'rv', 'SELECT g, count(*) AS n, sum(v) AS s FROM r WHERE v % 3 <> 0 GROUP BY g', 'grouped view after the replays');
view_matches($node, 'rv2', 'SELECT id, v FROM r WHERE g < 5', 'row view after the replays');
is($node->safe_psql('postgres', q{SELECT string_agg(state, ',' ORDER BY name) FROM kappa.views}),
	'running,running', 'both views running');
$node->stop;
done_testing();
