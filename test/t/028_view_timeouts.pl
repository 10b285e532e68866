# One view must not hold the others (pg_kappa.view_lock_timeout and
# view_statement_timeout).  Two views on different tables: an open
# transaction holds an ACCESS EXCLUSIVE lock on one view's derived table,
# then on its source, while writes to the other source go on: the other
# view stays fresh while the locked one lags (state initializing, the
# timeout in last_error, never broken); once the lock is gone it catches up
# exactly once.  Then a view whose IMMUTABLE function sleeps longer than
# the statement timeout: the others go on, and it catches up once the
# timeout is raised.  The worker never restarts.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use KappaTest;

my $node = kappa_node('timeouts', extra_conf => "pg_kappa.view_lock_timeout = '300ms'\n"
	  . "pg_kappa.view_statement_timeout = '1s'\n");
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE TABLE a (id int PRIMARY KEY, g int);
CREATE TABLE b (id int PRIMARY KEY, g int);
INSERT INTO a SELECT i, i % 7 FROM generate_series(1, 1000) i;
INSERT INTO b SELECT i, i % 7 FROM generate_series(1, 1000) i;
SELECT kappa.create_view('va', 'SELECT g, count(*) AS n, sum(id) AS s FROM a GROUP BY g');
SELECT kappa.create_view('vb', 'SELECT g, count(*) AS n, sum(id) AS s FROM b GROUP BY g');
});
my $qa = 'SELECT g, count(*) AS n, sum(id) AS s FROM a GROUP BY g';
my $qb = 'SELECT g, count(*) AS n, sum(id) AS s FROM b GROUP BY g';
my $next = 10000;

# one committed transaction into table $t
sub write_one
{
	my ($t) = @_;
	my $id = $next++;
	$node->safe_psql('postgres', "INSERT INTO $t VALUES ($id, $id % 7)");
}

# kappa.wait on $view with a timeout; returns [result, seconds taken]
sub timed_wait
{
	my ($view, $timeout) = @_;
	my $t0 = time();
	my $r = $node->safe_psql('postgres', "SELECT kappa.wait('$view', timeout => '$timeout')");
	return [ $r, time() - $t0 ];
}

sub view_row
{
	my ($view) = @_;
	return $node->safe_psql('postgres',
		"SELECT state || '|' || coalesce(last_error, '') FROM kappa.views WHERE name = 'public.$view'");
}

sub restarts
{
	return $node->safe_psql('postgres', 'SELECT restarts FROM kappa.worker_status()');
}

view_matches($node, 'va', $qa, 'start');
view_matches($node, 'vb', $qb, 'start');
# the worker that CREATE EXTENSION started found nothing to do and left
my $restarts = restarts();
cmp_ok($restarts, '<=', 1, 'worker started at most twice');

# --- a lock on the derived table (a user's LOCK on their own view) ---
my $locker = $node->background_psql('postgres', on_error_stop => 1);
$locker->query_safe('BEGIN; LOCK TABLE va IN ACCESS EXCLUSIVE MODE;');
for my $round (1 .. 5)
{
	write_one('a');
	write_one('b');
	my $w = timed_wait('vb', '20s');
	is($w->[0], 't', "derived table locked, round $round: the other view is fresh");
	cmp_ok($w->[1], '<', 5, "derived table locked, round $round: and fast (" . sprintf('%.2f', $w->[1]) . ' s)');
}
is(timed_wait('va', '1s')->[0], 'f', 'the locked view lags: kappa.wait times out');
like(view_row('va'), qr/^initializing\|.*lock timeout.*retried/,
	'the locked view is initializing, with the lock timeout in last_error');
like($node->safe_psql('postgres', q{SELECT last_error FROM kappa.status WHERE name = 'public.va'}),
	qr/lock timeout/, 'kappa.status shows the timeout');
write_one('a') for 1 .. 3;
$locker->query_safe('COMMIT');
is(timed_wait('va', '60s')->[0], 't', 'lock released: the lagging view catches up');
view_matches($node, 'va', $qa, 'after the derived-table lock');
view_matches($node, 'vb', $qb, 'after the derived-table lock');
ok($node->poll_query_until('postgres',
		q{SELECT state = 'running' AND last_error IS NULL FROM kappa.views WHERE name = 'public.va'}),
	'caught up: running, last_error cleared');
is($node->safe_psql('postgres', q{SELECT n FROM va WHERE g = 3}),
	$node->safe_psql('postgres', q{SELECT count(*) FROM a WHERE g = 3}),
	'counts match the source: exactly once');

# --- a lock on the source: the view's query is compiled again after a
# change of kappa.views (a new view), and must wait for the source ---
write_one('a') for 1 .. 2;
is(timed_wait('va', '20s')->[0], 't', 'va fresh before the source lock');
$locker->query_safe('BEGIN; LOCK TABLE a IN ACCESS EXCLUSIVE MODE;');
$node->safe_psql('postgres', q{SELECT kappa.create_view('vc', 'SELECT id, g FROM b')});
for my $round (1 .. 5)
{
	write_one('b');
	my $w = timed_wait('vb', '20s');
	is($w->[0], 't', "source locked, round $round: the other view is fresh");
	cmp_ok($w->[1], '<', 5, "source locked, round $round: and fast (" . sprintf('%.2f', $w->[1]) . ' s)');
}
is(timed_wait('vc', '20s')->[0], 't', 'the new view is fresh');
# nothing of a changed meanwhile (nobody could write it): the worker has
# nothing to apply to va, so it neither waits for a's lock nor lags
is(timed_wait('va', '1s')->[0], 't', 'the view of the locked source has nothing to wait for');
like(view_row('va'), qr/^running\|/, 'and is running');
$locker->query_safe('COMMIT');
$locker->quit;
write_one('a') for 1 .. 3;
is(timed_wait('va', '60s')->[0], 't', 'source unlocked: the view catches up');
view_matches($node, 'va', $qa, 'after the source lock');
view_matches($node, 'vb', $qb, 'after the source lock');
view_matches($node, 'vc', 'SELECT id, g FROM b', 'after the source lock');
ok($node->poll_query_until('postgres',
		q{SELECT state = 'running' AND last_error IS NULL FROM kappa.views WHERE name = 'public.va'}),
	'caught up again: running, last_error cleared');

# --- a slow function: longer than view_statement_timeout ---
$node->safe_psql('postgres', q{
CREATE TABLE c (id int PRIMARY KEY, x int);
CREATE FUNCTION slow(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  $$ BEGIN IF x < 0 THEN PERFORM pg_sleep(3); END IF; RETURN x; END $$;
INSERT INTO c SELECT i, i FROM generate_series(1, 100) i;
SELECT kappa.create_view('vs', 'SELECT id, slow(x) AS y FROM c');
});
my $qs = 'SELECT id, slow(x) AS y FROM c';
$node->safe_psql('postgres', q{INSERT INTO c VALUES (-1, -1)});
ok($node->poll_query_until('postgres',
		q{SELECT state = 'initializing' AND last_error LIKE '%statement timeout%' FROM kappa.views WHERE name = 'public.vs'}),
	'the slow view times out: initializing, with the statement timeout in last_error');
for my $round (1 .. 5)
{
	write_one('b');
	write_one('a');
	my $w = timed_wait('vb', '20s');
	is($w->[0], 't', "slow view, round $round: the other view is fresh");
	cmp_ok($w->[1], '<', 5, "slow view, round $round: and fast (" . sprintf('%.2f', $w->[1]) . ' s)');
	is(timed_wait('va', '20s')->[0], 't', "slow view, round $round: so is va");
}
$node->safe_psql('postgres', q{INSERT INTO c VALUES (200, 200)});
is(timed_wait('vs', '1s')->[0], 'f', 'the slow view lags');
is($node->safe_psql('postgres', q{SELECT count(*) FROM vs WHERE id IN (-1, 200)}), '0',
	'none of its changes is applied');
$node->safe_psql('postgres', "ALTER SYSTEM SET pg_kappa.view_statement_timeout = '20s'; SELECT pg_reload_conf();");
is(timed_wait('vs', '90s')->[0], 't', 'a longer timeout: the slow view catches up');
view_matches($node, 'vs', $qs, 'slow view');
view_matches($node, 'va', $qa, 'slow view');
view_matches($node, 'vb', $qb, 'slow view');
ok($node->poll_query_until('postgres',
		q{SELECT state = 'running' AND last_error IS NULL FROM kappa.views WHERE name = 'public.vs'}),
	'slow view caught up: running, last_error cleared');

is($node->safe_psql('postgres', q{SELECT string_agg(name || ' ' || state, ', ' ORDER BY name) FROM kappa.views}),
	'public.va running, public.vb running, public.vc running, public.vs running', 'no view is broken');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify_all() WHERE NOT ok}), '0',
	'verify_all finds nothing');
is(restarts(), $restarts, 'the worker never restarted');
ok(!$node->log_contains(qr/is broken/), 'no view was marked broken');

# --- slow code under the timeout, every view of one role: there is no
# other role to hold up, and a batch is not cut ---
$node->safe_psql('postgres', q{
ALTER SYSTEM SET pg_kappa.view_statement_timeout = '1s';
SELECT pg_reload_conf();
CREATE TABLE q (id int PRIMARY KEY, x int);
CREATE FUNCTION qnap(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  $$ BEGIN IF x < 0 THEN PERFORM pg_sleep(0.6); END IF; RETURN x; END $$;
SELECT kappa.create_view('q' || i, 'SELECT id, qnap(x) AS y FROM q') FROM generate_series(1, 3) i;
INSERT INTO q VALUES (-1, -1);
});
is(timed_wait("q$_", '60s')->[0], 't', "one owner: its slow view $_ is fresh") for 1 .. 3;
ok(!$node->log_contains(qr/ran for longer than/), 'one owner: no view was held for its time');

# --- slow code that stays under the timeout: one owner's views may run
# for pg_kappa.view_statement_timeout in a batch, its others wait for a
# later one, and the other owners' views do not wait for them ---
$node->safe_psql('postgres', q{
ALTER SYSTEM SET pg_kappa.view_statement_timeout = '1s';
SELECT pg_reload_conf();
CREATE ROLE slowpoke;
CREATE SCHEMA sp AUTHORIZATION slowpoke;
SET ROLE slowpoke;
CREATE TABLE sp.t (id int PRIMARY KEY, x int);
CREATE FUNCTION sp.nap(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  $$ BEGIN IF x < 0 THEN PERFORM pg_sleep(0.6); END IF; RETURN x; END $$;
SELECT kappa.create_view('sp.v' || i, 'SELECT id, sp.nap(x) AS y FROM sp.t') FROM generate_series(1, 5) i;
RESET ROLE;
});
$node->safe_psql('postgres', "BEGIN; INSERT INTO sp.t VALUES (-1, -1); INSERT INTO b VALUES ($next, 1); COMMIT;");
$next++;
is(timed_wait('vb', '20s')->[0], 't', 'slow owner: the other owner\'s view is fresh');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM kappa.views WHERE name LIKE 'sp.v%'
		     AND last_error LIKE '%ran for longer than pg_kappa.view_statement_timeout in this batch%'}),
	'slow owner: some of its views wait for a later batch, saying why');
for my $i (1 .. 5)
{
	is(timed_wait("sp.v$i", '60s')->[0], 't', "slow owner: its view $i catches up");
	view_matches($node, "sp.v$i", 'SELECT id, sp.nap(x) AS y FROM sp.t', "slow owner, view $i");
}
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.views WHERE state <> 'running'}), '0',
	'slow owner: every view running again');
ok(!$node->log_contains(qr/is broken/), 'no view was marked broken');
$node->stop;
done_testing();
