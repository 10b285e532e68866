# Reproductions of security findings of the red-team review (helper-f),
# each as a check of what should hold.  They fail until the holes are
# fixed; each says where the fault is believed to be.
#
#  1. kappa.wait reveals a view's last_error to any role (by OID), though
#     kappa.status and kappa.views hide it (wait.c, kappa_wait: no check
#     before errdetail("%s", v.last_error)).
#  2. kappa.replay in place, run by a superuser on another role's view,
#     turns logged rows back into rows with jsonb_populate_record as the
#     caller, outside the owner's security-restricted scope: a domain
#     CHECK of the view owner's runs as the superuser (replay.c:
#     kappa_replay calls kappa_replay_fill after kappa_owner_leave;
#     pend_flush/prepare_to_rows).
#  3. The apply worker writes row images into the view's scratch table
#     kappa_v<id>.d_<n> with heap_form_tuple using the table's descriptor
#     as it is now, checking only the number of columns: the view's owner
#     owns that table and can change a column's type, so the worker stores
#     a pointer as an integer (leaking addresses) or reads an integer as a
#     pointer (segfault of the worker, crash-restart of the whole server,
#     in a loop; arbitrary reads) (delta_engine.c, fill_delta).
#  4. Any view owner stalls the database's apply worker for every view by
#     holding a lock on its own derived table (apply_worker.c, apply_batch:
#     LockRelationOid waits without a timeout).
#  5. One role's view whose query fails when verified makes
#     kappa.verify_all() and kappa.audit() (and so every scheduled audit)
#     fail for everyone, the superuser included (verify_all/audit in the
#     0.2--0.3 script: no per-view error handling).
#  7. View code run by the apply worker (a trigger on one's derived table)
#     that writes to a table makes a change that carries the worker's
#     replication origin, which the worker filters out: other roles' views
#     over that table (and its event log) never see it and stay wrong
#     (change_sink.c, sink_filter_origin; delta_engine.c runs owner code
#     with the worker's replorigin_session_origin set).
#  8. View code run by the apply worker (a trigger on one's derived table)
#     that calls kappa.replay re-enters the delta engine: kappa_replay_fill
#     calls kappa_engine_reset and kappa_batch_reset, freeing the plans and
#     the batch the worker is using: the worker segfaults, the server
#     restarts, and the worker crashes again on the same batch, in a loop
#     (replay.c kappa_replay_fill / delta_engine.c kappa_engine_reset; no
#     guard against re-entry).
#  6. The output plugin's "tables" option matches patterns with an
#     exponential, uninterruptible backtracking glob: a role with
#     REPLICATION hangs a backend that ignores statement_timeout and
#     pg_terminate_backend (table_filter.c, glob_match).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('security_redteam');
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE SCHEMA bob AUTHORIZATION bob;
});

sub as_user
{
	my ($user, $sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', $user ]);
}

sub psql_user
{
	my ($user, $sql) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $user ]);
	return ($rc, $out, $err);
}

my $is_super = q{SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'};

# --- 1. kappa.wait and last_error ------------------------------------------
as_user('bob', q{
CREATE TABLE bob.secret (id int PRIMARY KEY, s text);
SELECT kappa.create_view('bob.sv', 'SELECT id, s::int AS n FROM bob.secret');
INSERT INTO bob.secret VALUES (1, 'TOPSECRET-42');
});
$node->poll_query_until('postgres', q{SELECT state = 'broken' FROM kappa.views WHERE name = 'bob.sv'})
  or die 'bob.sv did not break';
my $sv = $node->safe_psql('postgres', q{SELECT 'bob.sv'::regclass::oid});
is(as_user('alice', q{SELECT coalesce(last_error, '<hidden>') FROM kappa.status WHERE name = 'bob.sv'}),
	'<hidden>', 'kappa.status hides the error of a view alice may not read');
my (undef, undef, $wait_err) = psql_user('alice', "SELECT kappa.wait($sv)");
unlike($wait_err, qr/TOPSECRET/,
	"kappa.wait does not show alice the error of bob's view (source data)");

# --- 2. in-place replay by a superuser and the owner's domain --------------
as_user('alice', q{
CREATE FUNCTION alice.check_it(int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        BEGIN
            EXECUTE 'ALTER ROLE alice SUPERUSER';
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
    END IF;
    RETURN true;
END $$;
CREATE DOMAIN alice.dint AS int CHECK (alice.check_it(VALUE));
CREATE TABLE alice.src (id int PRIMARY KEY, v alice.dint);
INSERT INTO alice.src VALUES (1, 10), (2, 20);
SELECT kappa.capture('alice.src') IS NOT NULL;
SELECT kappa.create_view('alice.rv', 'SELECT id, v FROM alice.src');
INSERT INTO alice.src VALUES (3, 30);
SELECT kappa.wait('alice.rv', timeout => '60s');
});
is($node->safe_psql('postgres', $is_super), 'f', 'alice starts as an ordinary role');
$node->safe_psql('postgres', q{SELECT kappa.replay('alice.rv')});
is($node->safe_psql('postgres', $is_super), 'f',
	"a superuser's in-place replay of alice's view runs none of her code as the superuser");
$node->safe_psql('postgres', 'ALTER ROLE alice NOSUPERUSER');

# --- 3. the worker's scratch table with another column type ----------------
as_user('alice', q{
CREATE TABLE alice.tc (id int PRIMARY KEY, s text);
-- no TOAST: the worker prepares no statement that would notice the change
ALTER TABLE alice.tc ALTER COLUMN s SET STORAGE PLAIN;
SELECT kappa.create_view('alice.tcv', 'SELECT id, s FROM alice.tc');
INSERT INTO alice.tc VALUES (1, 'one');
SELECT kappa.wait('alice.tcv', timeout => '60s');
});
my $tcv_id = $node->safe_psql('postgres', q{SELECT id FROM kappa.views WHERE name = 'alice.tcv'});
my ($alter_rc) = psql_user('alice', "ALTER TABLE kappa_v$tcv_id.d_0 ALTER COLUMN s TYPE bigint USING NULL");
as_user('alice', q{INSERT INTO alice.tc VALUES (2, 'two, a string long enough to be a pointer')});
$node->poll_query_until('postgres', qq{
SELECT state <> 'running' OR EXISTS (SELECT 1 FROM alice.tcv WHERE id = 2)
  FROM kappa.views WHERE name = 'alice.tcv'}) or die 'tcv did not move';
my $row2 = $node->safe_psql('postgres', q{
SELECT v.state || '|' || coalesce((SELECT s FROM alice.tcv WHERE id = 2), '<none>')
  FROM kappa.views v WHERE name = 'alice.tcv'});
ok($alter_rc != 0 || $row2 =~ /^broken\|/ || $row2 eq 'running|two, a string long enough to be a pointer',
	"a changed column type of the worker's scratch table neither stores a pointer nor is trusted (got: $row2)");

# --- 4. a lock on one's own derived table stalls everybody's views ---------
as_user('bob', q{
CREATE TABLE bob.t1 (id int PRIMARY KEY, v int);
SELECT kappa.create_view('bob.v1', 'SELECT id, v FROM bob.t1');
INSERT INTO bob.t1 VALUES (1, 1);
SELECT kappa.wait('bob.v1', timeout => '60s');
});
my $locker = $node->background_psql('postgres', on_error_stop => 0,
	extra_params => [ '-U', 'alice' ]);
$locker->query_safe('BEGIN; LOCK TABLE alice.rv IN ACCESS EXCLUSIVE MODE');
as_user('bob', 'INSERT INTO bob.t1 VALUES (2, 2)');
is(as_user('bob', q{SELECT kappa.wait('bob.v1', timeout => '10s')}), 't',
	"bob's view is maintained while alice holds a lock on her own derived table");
$locker->query_safe('COMMIT');
$locker->quit;

# --- 5. one view that fails to verify ---------------------------------------
as_user('alice', q{
CREATE TABLE alice.flag (f boolean);
CREATE FUNCTION alice.poison(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM alice.flag) THEN
        RAISE EXCEPTION 'no verification today';
    END IF;
    RETURN $1;
END $$;
CREATE TABLE alice.pt (id int PRIMARY KEY, v int);
INSERT INTO alice.pt VALUES (1, 1);
SELECT kappa.create_view('alice.pv', 'SELECT id, alice.poison(v) AS v FROM alice.pt');
INSERT INTO alice.flag VALUES (true);
});
my ($va_rc, $va_out, $va_err) = psql_user('postgres',
	q{SELECT view, ok FROM kappa.verify_all() WHERE view = 'bob.v1'::regclass});
is($va_rc, 0, "one role's failing view does not make kappa.verify_all() fail for the superuser")
  or diag($va_err);
my ($au_rc, undef, $au_err) = psql_user('postgres', q{SELECT count(*) FROM kappa.audit()});
is($au_rc, 0, "one role's failing view does not make kappa.audit() fail") or diag($au_err);
as_user('alice', 'DELETE FROM alice.flag');

# --- 7. a write made by view code in the worker -----------------------------
as_user('alice', q{
CREATE TABLE alice.shared (id int PRIMARY KEY, v text);
GRANT USAGE ON SCHEMA alice TO bob;
GRANT SELECT ON alice.shared TO bob;
ALTER TABLE alice.shared REPLICA IDENTITY FULL;
CREATE TABLE alice.trig_src (id int PRIMARY KEY);
SELECT kappa.create_view('alice.tv', 'SELECT id FROM alice.trig_src');
CREATE FUNCTION alice.sneak() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alice.shared VALUES (NEW.id, 'written inside the apply worker');
    RETURN NULL;
END $$;
CREATE TRIGGER sneak AFTER INSERT ON alice.tv FOR EACH ROW EXECUTE FUNCTION alice.sneak();
});
as_user('bob', q{SELECT kappa.create_view('bob.sharedv', 'SELECT id, v FROM alice.shared')});
as_user('alice', q{
INSERT INTO alice.trig_src VALUES (1);
SELECT kappa.wait('alice.tv', timeout => '60s');
});
# the worker writes derived tables as a replica: ordinary triggers do not
# fire there, so nothing is written behind the other views' backs
is(as_user('alice', 'SELECT count(*) FROM alice.shared'), '0',
	'an ordinary trigger on a derived table does not fire in the worker');
is(as_user('bob', q{SELECT kappa.wait('bob.sharedv', timeout => '60s'); SELECT count(*) FROM kappa.verify('bob.sharedv')}),
	"t\n0", "bob's view over alice's table equals its query");
# an ALWAYS trigger would, and is refused: the view breaks, saying why
as_user('alice', q{
ALTER TABLE alice.tv ENABLE ALWAYS TRIGGER sneak;
INSERT INTO alice.trig_src VALUES (2);
});
ok($node->poll_query_until('postgres',
		q{SELECT state = 'broken' AND last_error LIKE '%enabled ALWAYS%' FROM kappa.views WHERE name = 'alice.tv'}),
	'a derived table with an ALWAYS trigger is refused by the worker');
is(as_user('alice', 'SELECT count(*) FROM alice.shared'), '0', 'and its trigger wrote nothing');
# so is a REPLICA trigger: the worker writes with session_replication_role
# replica, where those fire
as_user('alice', q{
CREATE TABLE alice.trig_src2 (id int PRIMARY KEY);
SELECT kappa.create_view('alice.tv2', 'SELECT id FROM alice.trig_src2');
CREATE TRIGGER sneak2 AFTER INSERT ON alice.tv2 FOR EACH ROW EXECUTE FUNCTION alice.sneak();
ALTER TABLE alice.tv2 ENABLE REPLICA TRIGGER sneak2;
INSERT INTO alice.trig_src2 VALUES (3);
});
ok($node->poll_query_until('postgres',
		q{SELECT state = 'broken' AND last_error LIKE '%enabled REPLICA%' FROM kappa.views WHERE name = 'alice.tv2'}),
	'a derived table with a REPLICA trigger is refused by the worker');
is(as_user('alice', 'SELECT count(*) FROM alice.shared'), '0', 'and that trigger wrote nothing');

# --- 6. the tables option and an exponential pattern ------------------------
$node->safe_psql('postgres', q{
CREATE ROLE repl LOGIN REPLICATION;
CREATE SCHEMA repl AUTHORIZATION repl;
});
my $long = 'a' x 63;
my $pattern = '*.' . ('*a' x 24) . '*b';
as_user('repl', qq{
CREATE TABLE repl.$long (id int PRIMARY KEY);
SELECT 'init' FROM pg_create_logical_replication_slot('glob', 'pg_kappa');
INSERT INTO repl.$long VALUES (1);
});
my ($gout, $gerr) = ('', '');
my $timer = IPC::Run::timeout(30);
my $h = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-h', $node->host, '-p', $node->port, '-U', 'repl', '-d', 'postgres',
	  '-c', 'SET statement_timeout = 2000',
	  '-c', "SELECT count(*) FROM pg_logical_slot_peek_changes('glob', NULL, NULL, 'tables', '$pattern')" ],
	'>', \$gout, '2>', \$gerr, $timer);
my $finished = eval { $h->finish; 1 };
ok($finished, 'decoding with a pathological tables pattern ends within statement_timeout')
  or $h->kill_kill;

# --- 8. kappa.replay re-entered from view code in the worker (last: it
# crashes the server in a loop) ------------------------------------------
as_user('alice', q{
CREATE TABLE alice.reent (id int PRIMARY KEY, v int);
SELECT kappa.create_view('alice.reentv', 'SELECT id, v FROM alice.reent');
CREATE FUNCTION alice.reenter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kappa.replay('alice.rv');
    RETURN NULL;
END $$;
CREATE TRIGGER reenter AFTER INSERT ON alice.reentv FOR EACH ROW EXECUTE FUNCTION alice.reenter();
});
my $log_offset = -s $node->logfile;
as_user('alice', 'INSERT INTO alice.reent VALUES (1, 1), (2, 2)');
sleep 5;
my $crashed = slurp_file($node->logfile, $log_offset) =~ /terminated by signal/;
ok(!$crashed, 'kappa.replay called by view code inside the apply worker does not crash the server');

# an uncancellable backend would keep the node from a fast shutdown
# (the server may be in the middle of a crash restart: do not bail out)
$node->stop('immediate', fail_ok => 1);
done_testing();
