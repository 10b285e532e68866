# Red team, round 2: rows an ordinary role plants in kappa.restore_pending.
# They fail until the holes are fixed; each says where the fault is
# believed to be.
#
#  1. kappa.restore_divert() is an ordinary trigger function that any role
#     may attach to a table of its own (EXECUTE is PUBLIC, and it does not
#     check that it fires on kappa.views or kappa.captures).  A COPY into
#     such a table inserts the row, as JSON, into kappa.restore_pending as
#     the extension owner (restore.c, kappa_restore_divert: table named
#     "views" = a view row, any other name = a capture row).  The next
#     kappa.restore() of a superuser then
#       a. rebuilds a "view" from the planted query around an existing
#          table found by find_derived_table: its second branch (a
#          kappa_guard trigger without arguments, found by the planted
#          name) matches the internal tables of engine 1 (a_<n>, g),
#          which belong to the view's owner: the planted query, and the
#          function it calls, run as that owner (kappa_adopt_view), a
#          superuser for a superuser's view: the planted function makes
#          its author a superuser, and the adopted table, now a "derived
#          view", runs the function as the superuser again at every
#          kappa.audit / kappa.verify_all;
#       b. captures any table named by the planted row (restore_capture:
#          kappa_capture_relation checks ownership against the superuser).
#  2. The same trigger moves kappa.views_id_seq to any id (setval as the
#     extension owner): at 2147483647 nobody can create a view any more.
#  0. Worse, kappa_restore_divert turns the row into JSON with to_jsonb
#     after kappa_become(extension owner), outside any security-restricted
#     operation: to_jsonb calls the cast to json of a column's type when
#     the type is not built in, and any role may create a type and a cast
#     from it (in pg_temp, with nothing but the default TEMP privilege).
#     One COPY into a temporary table makes the role a superuser, with no
#     superuser involved at all.
#  3. kappa.log_guard() attached to one's own table notes a restored log
#     in kappa.restore_pending (event_log.c, restoring_log checks only
#     that nothing is captured and that the table's rows are new), and the
#     next capture appends a spurious "restore" row to the chain.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('restore_pending_plant');
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

# --- 0. a role with no privilege but TEMP ----------------------------------
$node->safe_psql('postgres', q{
CREATE ROLE dave LOGIN;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
});
my ($d_rc, $d_out, $d_err) = psql_user('dave', q{
CREATE TYPE pg_temp.e AS ENUM ('a', 'b');
CREATE FUNCTION pg_temp.e_json(pg_temp.e) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE dave SUPERUSER';
    END IF;
    RETURN to_json($1::text);
END $$;
CREATE CAST (pg_temp.e AS json) WITH FUNCTION pg_temp.e_json(pg_temp.e);
CREATE TEMP TABLE x (v pg_temp.e);
CREATE TRIGGER d BEFORE INSERT ON x FOR EACH ROW EXECUTE FUNCTION kappa.restore_divert();
COPY x FROM STDIN;
a
\\.
});
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'dave'}), 'f',
	'a role with only TEMP does not become a superuser through kappa.restore_divert');
$node->safe_psql('postgres', q{ALTER ROLE dave NOSUPERUSER; DELETE FROM kappa.restore_pending});

# a superuser's view (engine 1: its copy kappa_v<id>.a_0 has a guard
# trigger without arguments) and bob's table
$node->safe_psql('postgres', q{
CREATE TABLE public.admin_t (id int PRIMARY KEY, v text);
INSERT INTO public.admin_t VALUES (1, 'a');
SELECT kappa.create_view('public.admin_v', 'SELECT id, v FROM public.admin_t');
});
my $admin_id = $node->safe_psql('postgres',
	q{SELECT id FROM kappa.views WHERE relid = 'public.admin_v'::regclass});
as_user('bob', q{
CREATE TABLE bob.secret (id int PRIMARY KEY, s text);
INSERT INTO bob.secret VALUES (1, 'bob only');
});

# --- 1a. a planted view row, adopted around the superuser's copy -----------
as_user('alice', q{
CREATE TABLE alice.src (id int PRIMARY KEY, v text);
INSERT INTO alice.src VALUES (1, 'x');
GRANT USAGE ON SCHEMA alice TO PUBLIC;
GRANT SELECT ON alice.src TO PUBLIC;
CREATE FUNCTION alice.promote() RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE alice SUPERUSER';
    END IF;
END $$;
-- IMMUTABLE, as a view's query wants; the SELECT that calls promote() is
-- read-only as far as the immutable function's SPI can tell
CREATE FUNCTION alice.evil(int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM alice.promote();
    RETURN true;
END $$;
CREATE TABLE alice.views (id bigint, name text, canonical text, state text, engine int);
});
my ($trg_rc, undef, $trg_err) = psql_user('alice',
	q{CREATE TRIGGER plant BEFORE INSERT ON alice.views FOR EACH ROW EXECUTE FUNCTION kappa.restore_divert()});
as_user('alice', qq{
COPY alice.views FROM STDIN;
7\tkappa_v$admin_id.a_0\tSELECT id, v FROM alice.src WHERE alice.evil(id)\trunning\t1
\\.
}) if $trg_rc == 0;
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.restore_pending}), '0',
	'a COPY into a table of alice\'s plants nothing in kappa.restore_pending');

is($node->safe_psql('postgres', $is_super), 'f', 'alice starts as an ordinary role');
$node->safe_psql('postgres', q{SELECT * FROM kappa.restore()});
is($node->safe_psql('postgres', $is_super), 'f',
	"a superuser's kappa.restore() runs none of alice's code as the superuser");
is($node->safe_psql('postgres', qq{
SELECT count(*) FROM kappa.views v JOIN pg_class c ON c.oid = v.relid
 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'kappa_v$admin_id'}),
	'0', "no internal table of the superuser's view became a derived view");
$node->safe_psql('postgres', 'ALTER ROLE alice NOSUPERUSER');

# --- 1b. a planted capture of bob's table -----------------------------------
as_user('alice', q{CREATE TABLE alice.captures (relid oid, name text, retain interval)});
($trg_rc) = psql_user('alice',
	q{CREATE TRIGGER plant BEFORE INSERT ON alice.captures FOR EACH ROW EXECUTE FUNCTION kappa.restore_divert()});
as_user('alice', qq{
COPY alice.captures FROM STDIN;
12345\tbob.secret\t\\N
\\.
}) if $trg_rc == 0;
$node->safe_psql('postgres', q{SELECT * FROM kappa.restore()});
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.captures WHERE relid = 'bob.secret'::regclass}),
	'0', "alice cannot have bob's table captured by a superuser's kappa.restore()");

# --- 2. the view id sequence -------------------------------------------------
as_user('alice', q{
COPY alice.views (id) FROM STDIN;
2147483647
\.
}) if $trg_rc == 0;
my ($cv_rc, undef, $cv_err) = psql_user('bob', q{
CREATE TABLE bob.t (id int PRIMARY KEY);
SELECT kappa.create_view('bob.tv', 'SELECT id FROM bob.t');
});
is($cv_rc, 0, 'alice cannot exhaust the view id sequence for everybody') or diag($cv_err);

# --- 3. kappa.log_guard on one's own table ----------------------------------
# a log that is not empty while nothing is captured
$node->safe_psql('postgres', q{
SELECT kappa.uncapture(relid) FROM kappa.captures;
CREATE TABLE public.c1 (id int PRIMARY KEY);
SELECT kappa.capture('public.c1') IS NOT NULL;
INSERT INTO public.c1 VALUES (1);
});
$node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM kappa.event_log WHERE kind = 'batch'})
  or die 'nothing logged';
$node->safe_psql('postgres', q{SELECT kappa.uncapture('public.c1')});
my $restores = $node->safe_psql('postgres', q{SELECT count(*) FROM kappa.event_log WHERE kind = 'restore'});
as_user('alice', q{CREATE TABLE alice.l (x int)});
my ($lg_rc) = psql_user('alice',
	q{CREATE TRIGGER g BEFORE INSERT ON alice.l FOR EACH ROW EXECUTE FUNCTION kappa.log_guard()});
psql_user('alice', q{INSERT INTO alice.l VALUES (1)}) if $lg_rc == 0;
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.restore_pending WHERE kind = 'log'}), '0',
	"alice's insert into her own table notes no restored log");
$node->safe_psql('postgres', q{SELECT kappa.capture('public.c1') IS NOT NULL});
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.event_log WHERE kind = 'restore'}),
	$restores, 'and no restore row enters the chain without a restore');

$node->stop('fast', fail_ok => 1);
done_testing();
