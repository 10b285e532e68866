# A role that owns one schema must not stall other roles' views with a lock
# held forever (a prepared transaction survives its session and a restart):
#
#  1. kappa.capture holds the event log's lock until its transaction ends.
#     The worker waits for it at most pg_kappa.view_lock_timeout, then
#     holds the log (the slot stays where the log ends) and goes on with
#     the views; once the lock is free it logs what it missed, once.
#  2. A view's owner owns its internal schema kappa_v<id> and its tables,
#     and may lock them (though not add tables there).  The worker's
#     vacuum of its scratch tables lists them without a lock and skips a
#     locked one.
#  3. Scheduled audits verify each view in a transaction of its own: the
#     locks kappa.verify takes on one view's sources are gone before the
#     next view's (slow) code runs.
#  4. View code that catches the audit's cancel ends the audit worker
#     past twice pg_kappa.view_statement_timeout, and its audit counts as
#     taken (it is not retried at once, ahead of the others).
#  5. A capture's row in kappa.captures, locked by its owner's open
#     transaction (capturing again changes the row), does not stall the
#     worker's pruning of the log.
#  6. A view's row in kappa.views, locked by its owner's open
#     kappa.alter_view, does not stall the audits of the other views.
#  7. A log held past pg_kappa.max_retained_wal gives its captures up
#     (failed where the log stopped), and the slot lets the WAL go.
#  8. Many views of one owner whose derived tables' rows are locked delay
#     the others by one timeout per batch.
#  9. A view's row in kappa.views, locked by its owner's prepared
#     kappa.alter_view, is not waited for by the worker (also when it
#     starts again): the other views and their waiters go on, a view can be
#     filled from the event log meanwhile, and the held view catches up,
#     exactly, once the row is free.
# 10. So with 260 views held, one of them paused while held after its owner
#     changed and changed back: it does not record more than it applied.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('hostile_locks',
	extra_conf => "max_prepared_transactions = 4\npg_kappa.view_lock_timeout = '1s'\n");
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE ROLE alice LOGIN;
CREATE ROLE mallory LOGIN;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE SCHEMA mal AUTHORIZATION mallory;
});

sub as_user
{
	my ($user, $sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', $user ]);
}

as_user('alice', q{
CREATE TABLE alice.t (id int PRIMARY KEY, g int);
INSERT INTO alice.t SELECT i, i % 3 FROM generate_series(1, 30) i;
SET client_min_messages = warning;
SELECT kappa.create_view('alice.v', 'SELECT g, count(*) AS n FROM alice.t GROUP BY g');
});
as_user('mallory', q{
CREATE TABLE mal.cap (id int PRIMARY KEY, v text);
CREATE TABLE mal.cap2 (id int PRIMARY KEY, v text);
SET client_min_messages = warning;
SELECT kappa.capture('mal.cap2');
CREATE TABLE mal.t (id int PRIMARY KEY, g int);
SELECT kappa.create_view('mal.v', 'SELECT g, count(*) AS n FROM mal.t GROUP BY g');
});

# Alice's view takes a new row within 30 s, and is exact.
sub alice_fresh
{
	my ($id, $what) = @_;
	as_user('alice', qq{INSERT INTO alice.t VALUES ($id, $id % 3)});
	is(as_user('alice', q{SELECT kappa.wait('alice.v', timeout => '30s')}), 't',
		"alice's view is fresh $what");
}

# --- 1. the event log's lock, held by a prepared kappa.capture -------------
as_user('mallory', q{BEGIN; SELECT kappa.capture('mal.cap'); PREPARE TRANSACTION 'mal_log'});
# a change of a captured table: the worker must log it, and cannot yet
as_user('mallory', q{INSERT INTO mal.cap2 VALUES (1, 'while held')});
alice_fresh(101, 'while a prepared transaction holds the event log');
as_user('mallory', q{INSERT INTO mal.cap2 VALUES (2, 'still held')});
alice_fresh(102, 'again');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM kappa.events(tables => '{mal.cap2}') e WHERE e->>'kind' = 'insert'}),
	'0', 'the changes of the captured table are not logged while the lock is held');

$node->safe_psql('postgres', q{ROLLBACK PREPARED 'mal_log'});
as_user('mallory', q{INSERT INTO mal.cap2 VALUES (3, 'after')});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 3 FROM kappa.events(tables => '{mal.cap2}') e WHERE e->>'kind' = 'insert'}),
	'once the lock is free, every change is logged');
is($node->safe_psql('postgres',
		q{SELECT string_agg(e->'new'->>'id', ',' ORDER BY (e->>'lsn')::pg_lsn)
		    FROM kappa.events(tables => '{mal.cap2}') e WHERE e->>'kind' = 'insert'}),
	'1,2,3', 'each once, in commit order');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM kappa.audit() WHERE "check" <> 'verify' OR object = 'alice.v'}),
	'0', "the log's chain and alice's view pass the audit");

# --- 2. a locked table in a view's internal schema ---------------------------
my $schema = $node->safe_psql('postgres',
	q{SELECT 'kappa_v' || id FROM kappa.views WHERE name = 'mal.v'});
my (undef, undef, $create_err) = $node->psql('postgres', qq{CREATE UNLOGGED TABLE $schema.w_9 (k int)},
	extra_params => [ '-U', 'mallory' ]);
like($create_err, qr/cannot create or move objects into schema "$schema"/,
	'no table of its own in the internal schema');
as_user('mallory', qq{INSERT INTO $schema.d_0 SELECT FROM generate_series(1, 3000)});
# the dead rows are counted when the session goes idle, after the lock
as_user('mallory', qq{DELETE FROM $schema.d_0; COMMIT; BEGIN;
LOCK TABLE $schema.d_0 IN ACCESS EXCLUSIVE MODE; PREPARE TRANSACTION 'mal_vacuum'});
ok($node->poll_query_until('postgres',
		qq{SELECT pg_stat_get_dead_tuples('$schema.d_0'::regclass) >= 1000}),
	'the locked table has dead rows');
# the worker looks at the scratch tables every second
sleep 3;
alice_fresh(201, 'while a prepared transaction holds a table in an internal schema');
sleep 2;
alice_fresh(202, 'after another round of the scratch vacuum');
$node->safe_psql('postgres', q{ROLLBACK PREPARED 'mal_vacuum'});

# --- 3. a slow view in the same scheduled audit as another role's ----------
as_user('mallory', q{
CREATE TABLE mal.a (id int PRIMARY KEY, x int);
INSERT INTO mal.a VALUES (1, 1);
CREATE FUNCTION mal.slow(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF current_setting('session_replication_role') = 'origin' AND session_user <> 'mallory' THEN
        PERFORM pg_sleep(15);
    END IF;
    RETURN $1;
END $$;
SET client_min_messages = warning;
SELECT kappa.create_view('mal.av', 'SELECT id, mal.slow(x) AS x FROM mal.a');
});
# both due in the same audit (alice's view first, by id; the audit of
# part 1 is forgotten)
$node->safe_psql('postgres', q{
BEGIN;
SELECT kappa.alter_view('alice.v', audit_every => '1 hour');
SELECT kappa.alter_view('mal.av', audit_every => '1 hour');
UPDATE kappa.views SET last_audit_at = NULL;
COMMIT;
});
ok($node->poll_query_until('postgres',
		q{SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_kappa audit' AND wait_event = 'PgSleep')}),
	"the scheduled audit is in mallory's view's code");
my ($rc, $out, $err) = $node->psql('postgres',
	q{SET statement_timeout = '5s'; INSERT INTO alice.t VALUES (301, 1)},
	extra_params => [ '-U', 'alice' ]);
is($rc, 0, "alice writes her table meanwhile (her view's audit let go of its lock)");
ok($node->poll_query_until('postgres',
		q{SELECT count(DISTINCT object) = 2 FROM kappa.audit_log WHERE "check" = 'verify' AND object IN ('alice.v', 'mal.av')}),
	'both views were audited');
is($node->safe_psql('postgres',
		q{SELECT string_agg(object || ':' || ok, ',' ORDER BY object)
		    FROM (SELECT object, bool_and(ok) AS ok FROM kappa.audit_log
		           WHERE "check" = 'verify' AND object IN ('alice.v', 'mal.av') GROUP BY object) a}),
	'alice.v:true,mal.av:true', 'and both passed');

# --- 4. view code that catches the audit's cancel -----------------------------
$node->safe_psql('postgres',
	q{ALTER SYSTEM SET pg_kappa.view_statement_timeout = '1s'; SELECT pg_reload_conf()});
as_user('mallory', q{
CREATE TABLE mal.b (id int PRIMARY KEY, x int);
INSERT INTO mal.b VALUES (1, 1);
CREATE FUNCTION mal.stubborn(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF current_setting('session_replication_role') = 'origin' AND session_user <> 'mallory' THEN
        LOOP
            BEGIN
                PERFORM pg_sleep(60);
            EXCEPTION WHEN query_canceled THEN
                NULL;
            END;
        END LOOP;
    END IF;
    RETURN $1;
END $$;
SET client_min_messages = warning;
SELECT kappa.create_view('mal.bv', 'SELECT id, mal.stubborn(x) AS x FROM mal.b');
});
$node->safe_psql('postgres', q{
BEGIN;
SELECT kappa.alter_view('mal.bv', audit_every => '1 hour');
UPDATE kappa.views SET last_audit_at = NULL WHERE name = 'mal.bv';
COMMIT;
});
ok($node->poll_query_until('postgres',
		q{SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_kappa audit' AND wait_event = 'PgSleep')}),
	'the scheduled audit is in code that catches its cancel');
ok($node->poll_query_until('postgres',
		q{SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_kappa audit')}),
	'the audit worker ended itself');
is($node->safe_psql('postgres', q{SELECT last_audit_at IS NOT NULL FROM kappa.views WHERE name = 'mal.bv'}),
	't', "that view's audit counts as taken");
# due at every audit, it ends each audit worker; the views after it (by id)
# are still audited: the longest unaudited come first
$node->safe_psql('postgres', q{
BEGIN;
SELECT kappa.alter_view('mal.bv', audit_every => '1 second');
SELECT kappa.alter_view('mal.av', audit_every => '0');
UPDATE kappa.views SET last_audit_at = NULL WHERE name = 'mal.bv';
COMMIT;
});
my $t0 = $node->safe_psql('postgres', q{SELECT now()});
$node->safe_psql('postgres', q{
CREATE TABLE later_src (id int PRIMARY KEY);
SELECT kappa.create_view('later_v', 'SELECT id FROM later_src');
SELECT kappa.alter_view('later_v', audit_every => '1 second');
});
ok($node->poll_query_until('postgres',
		qq{SELECT count(*) > 0 FROM kappa.audit_log WHERE object = 'public.later_v' AND "check" = 'verify' AND at > '$t0'}),
	'a view after it is audited too');
$node->safe_psql('postgres', q{
SELECT kappa.alter_view('mal.bv', audit_every => '0');
SELECT kappa.alter_view('later_v', audit_every => '0');
});
ok($node->poll_query_until('postgres',
		q{SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_kappa audit')}),
	'and no audit runs once none is due');
$node->safe_psql('postgres', q{SELECT kappa.drop_view('later_v'); DROP TABLE later_src});
$node->safe_psql('postgres',
	q{ALTER SYSTEM RESET pg_kappa.view_statement_timeout; SELECT pg_reload_conf()});
alice_fresh(401, 'after the audit worker ended');

# --- 5. a locked row of kappa.captures and the log's pruning ---------------
as_user('mallory', q{
SELECT kappa.capture('mal.cap2', retain => '1 second');
BEGIN; SELECT kappa.capture('mal.cap2', retain => '2 seconds'); PREPARE TRANSACTION 'mal_captures';
});
# older log rows of mal.cap2 pass their retention; the worker prunes every 10 s
as_user('mallory', q{INSERT INTO mal.cap2 VALUES (4, 'to prune')});
sleep 12;
alice_fresh(501, "while a capture's row is locked and the log is due for pruning");
sleep 11;
alice_fresh(502, 'after another pruning round');
$node->safe_psql('postgres', q{ROLLBACK PREPARED 'mal_captures'});

# --- 6. a locked row of kappa.views and the scheduled audits --------------
as_user('mallory', q{
SELECT kappa.alter_view('mal.v', audit_every => '1 second');
BEGIN; SELECT kappa.alter_view('mal.v', audit_every => '1 second'); PREPARE TRANSACTION 'mal_views';
});
$node->safe_psql('postgres', q{
UPDATE kappa.views SET audit_every = '1 second', last_audit_at = NULL WHERE name <> 'mal.bv' AND name <> 'mal.av' AND name <> 'mal.v';
});
my $before = $node->safe_psql('postgres', q{SELECT now()});
ok($node->poll_query_until('postgres',
		qq{SELECT last_audit_at > '$before' FROM kappa.views WHERE name = 'alice.v'}),
	"alice's view is audited while another view's row is locked");
my $first = $node->safe_psql('postgres', q{SELECT last_audit_at FROM kappa.views WHERE name = 'alice.v'});
ok($node->poll_query_until('postgres',
		qq{SELECT last_audit_at > '$first' FROM kappa.views WHERE name = 'alice.v'}),
	'and again a second later');
$node->safe_psql('postgres', q{ROLLBACK PREPARED 'mal_views'});
$node->safe_psql('postgres', q{UPDATE kappa.views SET audit_every = NULL});

# --- 7. a log held past pg_kappa.max_retained_wal ---------------------------
$node->safe_psql('postgres',
	q{ALTER SYSTEM SET pg_kappa.max_retained_wal = 1; SELECT pg_reload_conf()});
as_user('mallory', q{BEGIN; SELECT kappa.capture('mal.cap'); PREPARE TRANSACTION 'mal_log2'});
as_user('mallory', q{INSERT INTO mal.cap2 VALUES (5, 'held')});
alice_fresh(701, 'while the log is held again');
# more than 1 MB of WAL
$node->safe_psql('postgres', q{CREATE TABLE filler AS SELECT i, repeat('x', 200) AS pad FROM generate_series(1, 20000) i});
alice_fresh(702, 'past the retained WAL');
ok($node->poll_query_until('postgres',
		q{SELECT state = 'failed' AND last_error LIKE '%max_retained_wal%' FROM kappa.captures WHERE name = 'mal.cap2'}),
	'the held log gave its captures up');
$node->safe_psql('postgres', q{ROLLBACK PREPARED 'mal_log2'});
$node->safe_psql('postgres',
	q{ALTER SYSTEM RESET pg_kappa.max_retained_wal; SELECT pg_reload_conf()});
alice_fresh(703, 'after the log was given up');

is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('alice.v')}), '0',
	"alice's view is exact");
is($node->safe_psql('postgres', q{SELECT string_agg(state, ',' ORDER BY id) FROM kappa.views}),
	'running,running,running,running', 'the views run');

# --- 8. many views of one owner, their rows locked --------------------------
# Each of mallory's views would wait out pg_kappa.view_lock_timeout (1 s
# here) in turn, every retry, while alice's waits behind them; after the
# first of them in a batch, her others are held at once.
as_user('mallory', q{
DO $$ BEGIN FOR i IN 1..4 LOOP
    EXECUTE format('CREATE TABLE mal.r%s (id int PRIMARY KEY, v int)', i);
    EXECUTE format('INSERT INTO mal.r%s VALUES (1, 1)', i);
END LOOP; END $$;
});
as_user('mallory', q{
SET client_min_messages = warning;
SELECT kappa.create_view('mal.rv' || i, format('SELECT id, v FROM mal.r%s', i)) FROM generate_series(1, 4) i;
});
as_user('mallory', q{
BEGIN;
SELECT 1 FROM mal.rv1 FOR UPDATE; SELECT 1 FROM mal.rv2 FOR UPDATE;
SELECT 1 FROM mal.rv3 FOR UPDATE; SELECT 1 FROM mal.rv4 FOR UPDATE;
PREPARE TRANSACTION 'mal_rows';
});
as_user('mallory', q{
BEGIN;
UPDATE mal.r1 SET v = 2; UPDATE mal.r2 SET v = 2; UPDATE mal.r3 SET v = 2; UPDATE mal.r4 SET v = 2;
COMMIT;
});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM kappa.views WHERE name LIKE 'mal.rv%'
		   AND last_error LIKE '%another view of its owner waited out a timeout%'}),
	"after one of mallory's views waited out its lock timeout, her others were held at once");
alice_fresh(801, "while mallory's views wait for their rows");
$node->safe_psql('postgres', q{ROLLBACK PREPARED 'mal_rows'});
as_user('mallory', q{SELECT kappa.wait('mal.rv' || i, timeout => '60s') FROM generate_series(1, 4) i});
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM kappa.views v, kappa.verify(v.relid) WHERE v.name LIKE 'mal.rv%'}),
	'0', "mallory's views are exact once her rows are free");
as_user('mallory', q{SELECT kappa.drop_view('mal.rv' || i) FROM generate_series(1, 4) i});

# --- 9. a view's row locked by a prepared kappa.alter_view ------------------
as_user('mallory', q{
CREATE TABLE mal.w (id int PRIMARY KEY, v int);
SET client_min_messages = warning;
SELECT kappa.create_view('mal.wv', 'SELECT count(*) AS n, sum(v) AS s FROM mal.w');
});
as_user('mallory',
	q{BEGIN; SELECT kappa.alter_view('mal.wv', paused => true); PREPARE TRANSACTION 'mal_row'});
as_user('mallory', q{INSERT INTO mal.w SELECT g, g FROM generate_series(1, 10) g});
alice_fresh(901, "while a prepared kappa.alter_view holds mallory's view's row");
is(as_user('mallory', q{SELECT kappa.wait('mal.wv', timeout => '2s')}), 'f',
	"mallory's view waits for its row");
$node->safe_psql('postgres',
	q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'pg_kappa apply worker'});
as_user('mallory', q{INSERT INTO mal.w VALUES (11, 11)});
alice_fresh(902, 'after the worker started again');
as_user('alice', q{
CREATE TABLE alice.c (id int PRIMARY KEY, v int);
INSERT INTO alice.c VALUES (1, 1), (2, 2);
SELECT kappa.capture('alice.c');
INSERT INTO alice.c VALUES (3, 3);
});
as_user('alice', q{
SET client_min_messages = warning;
SELECT kappa.create_view('alice.r', 'SELECT count(*) AS n FROM alice.c', replay_from => '0/0');
});
is(as_user('alice', q{SELECT n FROM alice.r}), '3',
	'a view is filled from the event log while a view is held');
$node->safe_psql('postgres', q{ROLLBACK PREPARED 'mal_row'});
is(as_user('mallory', q{SELECT kappa.wait('mal.wv', timeout => '60s')}), 't',
	"mallory's view catches up once its row is free");
is(as_user('mallory', q{SELECT n || ',' || s || ',' || (SELECT state FROM kappa.views WHERE name = 'mal.wv') FROM mal.wv}),
	'11,66,running', "mallory's view holds every change, and runs");
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('mal.wv')}), '0',
	"mallory's view is exact");

# --- 10. many held views; an owner changed while held -----------------------
# The worker marks the views it holds by id: holding many does not hold
# back other roles' waiters, and an owner changed meanwhile does not make a
# held view look current (to kappa.wait, or to a pause, which records how
# far the view got).
$node->safe_psql('postgres',
	q{CREATE ROLE mal2; GRANT mal2 TO mallory; GRANT CREATE ON DATABASE postgres TO mal2});
as_user('mallory', q{
SET client_min_messages = warning;
SELECT count(kappa.create_view('mal.many' || i, 'SELECT count(*) AS n, sum(v) AS s FROM mal.w'))
  FROM generate_series(1, 260) i;
});
my $log_offset = -s $node->logfile;
my $t1 = $node->background_psql('postgres', on_error_stop => 1, extra_params => [ '-U', 'mallory' ]);
$t1->query_safe(q{
BEGIN;
SELECT count(kappa.alter_view(('mal.many' || i)::regclass, audit_every => '1 hour')) FROM generate_series(1, 260) i;
});
as_user('mallory', q{INSERT INTO mal.w VALUES (12, 12)});
$node->wait_for_log(qr/derived view mal\.many260 is behind: its row in kappa\.views is locked/, $log_offset);
alice_fresh(1001, "while 260 of mallory's views are held");
$t1->query_safe(q{REASSIGN OWNED BY mallory TO mal2});
is($t1->query_safe(q{SELECT kappa.wait('mal.many260', timeout => '0')}), 'f',
	'a held view whose owner changed is not current');
$t1->query_safe(q{SELECT kappa.alter_view('mal.many260', paused => true)});
$t1->query_safe(q{REASSIGN OWNED BY mal2 TO mallory; COMMIT});
$t1->quit;
as_user('mallory', q{SELECT kappa.alter_view('mal.many260', paused => false)});
is(as_user('mallory', q{SELECT count(*) FILTER (WHERE kappa.wait(('mal.many' || i)::regclass, timeout => '60s'))
  FROM generate_series(1, 260) i}), '260', "mallory's views catch up once their rows are free");
as_user('mallory', q{INSERT INTO mal.w VALUES (14, 14)});
as_user('mallory', q{SELECT kappa.wait('mal.many260', timeout => '60s')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.views v, kappa.verify(v.relid) WHERE v.name LIKE 'mal.many%'}),
	'0', "mallory's views are exact, the one paused while held too");

$node->stop;
done_testing();
