# A commit that wrote wakes its database's apply worker: a view is fresh
# after the commit's batch, not after the worker's next look at the WAL
# (pg_kappa.naptime, here a minute).  Batches that follow each other while
# the sources' columns change and their tables are rewritten (the worker
# then keeps its plans and relation descriptors only while no catalog
# change has reached it) keep the views exact.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use KappaTest;

my $node = kappa_node('commit_wake',
	extra_conf => "pg_kappa.naptime = 60s\nmax_prepared_transactions = 2\n");
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE TABLE t (id int PRIMARY KEY, g int, v numeric, pad text, extra int);
INSERT INTO t SELECT i, i % 7, i, 'x', i FROM generate_series(1, 1000) i;
SET client_min_messages = warning;
SELECT kappa.create_view('t_agg', 'SELECT g, count(*) AS n, sum(v) AS s FROM t GROUP BY g');
SELECT kappa.create_view('t_rows', 'SELECT id, g, v FROM t WHERE v > 10');
});
is($node->safe_psql('postgres', q{SELECT kappa.wait('t_agg') AND kappa.wait('t_rows')}),
	't', 'the views run');

# Seconds until the view shows a row of the given id, without kappa.wait
# (which wakes the worker itself); undef after 30 s.
sub seconds_until_fresh
{
	my ($id) = @_;
	my $t0 = time;
	while (time - $t0 < 30)
	{
		return time - $t0
		  if $node->safe_psql('postgres', qq{SELECT count(*) FROM t_rows WHERE id = $id}) eq '1';
		usleep(50_000);
	}
	return undef;
}

# the worker is asleep for a minute: let it get there
sleep 2;
my $worst = 0;
for my $i (1 .. 5)
{
	my $id = 100000 + $i;
	$node->safe_psql('postgres', qq{INSERT INTO t VALUES ($id, 1, 100, 'y', 0)});
	my $secs = seconds_until_fresh($id);
	ok(defined $secs, "commit $i is in the view without kappa.wait");
	$worst = $secs if defined $secs && $secs > $worst;
	sleep 1;
}
# a generous bound: without the wake-up it is the naptime, 60 s
cmp_ok($worst, '<', 20, 'every commit was applied well before the naptime ran out');

# COMMIT PREPARED runs in a transaction without an xid of its own: it wakes
# the worker as well (the PREPARE alone shows nothing)
$node->safe_psql('postgres', q{BEGIN; INSERT INTO t VALUES (100100, 1, 100, 'p', 0); PREPARE TRANSACTION 'wake'});
sleep 1;
is($node->safe_psql('postgres', q{SELECT count(*) FROM t_rows WHERE id = 100100}), '0',
	'a prepared transaction is not in the view');
$node->safe_psql('postgres', q{COMMIT PREPARED 'wake'});
my $secs = seconds_until_fresh(100100);
ok(defined $secs && $secs < 20, 'COMMIT PREPARED is in the view without kappa.wait');

# a transaction that rolls back wakes nobody, and loses nothing
$node->safe_psql('postgres', q{BEGIN; INSERT INTO t VALUES (200001, 1, 100, 'z', 0); ROLLBACK;});

# column changes and table rewrites between and inside the batches
$node->safe_psql('postgres', q{
DO $$
BEGIN
  FOR i IN 1..30 LOOP
    INSERT INTO t SELECT 1000000 * (i + 1) + g, g % 7, g, 'y', g FROM generate_series(1, 50) g;
    COMMIT;
    IF i % 3 = 1 THEN EXECUTE format('ALTER TABLE t ADD COLUMN d%s int DEFAULT %s', i, i); END IF;
    IF i % 3 = 2 THEN EXECUTE format('ALTER TABLE t DROP COLUMN d%s', i - 1); END IF;
    IF i % 3 = 0 THEN CLUSTER t USING t_pkey; END IF;
    UPDATE t SET v = v + 1, extra = extra + 1 WHERE id % 10 = i % 10;
    COMMIT;
    UPDATE t SET v = v + 1 WHERE id % 10 = i % 10;
    DELETE FROM t WHERE id % 97 = i;
    COMMIT;
    PERFORM pg_sleep(0.02 * (i % 4));
  END LOOP;
END $$;
});
is($node->safe_psql('postgres',
	q{SELECT kappa.wait('t_agg', timeout => '60s') AND kappa.wait('t_rows', timeout => '60s')}),
	't', 'the views caught up after the column changes');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('t_agg')}), '0',
	'the aggregate view is exact');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('t_rows')}), '0',
	'the filtered view is exact');
is($node->safe_psql('postgres',
	q{SELECT string_agg(state, ',') FROM kappa.views}), 'running,running',
	'and both still run');

# The first view of another database waits for the transactions running
# when its slot is created, a prepared one too, and says so.
$node->safe_psql('postgres', q{
CREATE DATABASE second;
BEGIN; INSERT INTO t VALUES (-1, 0, 0, 'p', 0); PREPARE TRANSACTION 'left_open';
});
$node->safe_psql('second', q{CREATE EXTENSION pg_kappa; CREATE TABLE s (id int PRIMARY KEY)});
my ($ret, $stdout, $stderr) = $node->psql('second',
	q{SET statement_timeout = '2s'; SELECT kappa.create_view('s_rows', 'SELECT id FROM s')});
like($stderr, qr/NOTICE:  waiting for prepared transactions 'left_open' to end/,
	'the first view of a database names the prepared transaction it waits for');
like($stderr, qr/canceling statement due to statement timeout/, 'and waits for it');
$node->safe_psql('postgres', q{ROLLBACK PREPARED 'left_open'});
is($node->safe_psql('second', q{SELECT kappa.create_view('s_rows', 'SELECT id FROM s') IS NOT NULL}),
	't', 'once it has ended, the view is created');

$node->stop;
done_testing();
