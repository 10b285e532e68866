# Red team, round 2: engine 2's internal views and DROP ... CASCADE.
# They fail until the hole is fixed.
#
# Engine 2 makes, per source, a view kappa_v<id>.o_<n> that reads the
# live source (view_ddl.c, create_engine2_view), and makes it a member of
# the extension (add_internal_members).  A view depends on the tables it
# reads, so:
#  - DROP TABLE of a source of an engine-2 view fails ("extension pg_kappa
#    depends on table ..."), where the README says it marks the view
#    broken;
#  - DROP TABLE ... CASCADE (or DROP SCHEMA ... CASCADE, DROP OWNED BY ...
#    CASCADE) of it reaches the member view, and PostgreSQL turns the
#    deletion of an extension member into a deletion of the extension:
#    any role that owns the source of an engine-2 view (the view's
#    creator, with a table of its own) drops pg_kappa for the whole
#    database: every role's views stop being maintained, kappa.views,
#    kappa.captures, the event log and kappa.audit_log are gone.
#  - The same without a source: create_engine2_view fills the derived
#    table (running the query's functions as the view's owner) before
#    add_internal_members makes every relation of kappa_v<id> a member.
#    A function of the query that creates a view of its own in kappa_v<id>
#    (the owner's schema) gets it made a member; that view depends on a
#    function of the owner, and DROP FUNCTION ... CASCADE of it drops the
#    extension.  (Members are also left out of pg_dump.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('engine2_source_drop');
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE ROLE bob LOGIN;
CREATE SCHEMA bob AUTHORIZATION bob;
CREATE TABLE public.admin_t (id int PRIMARY KEY, v text);
SELECT kappa.create_view('public.admin_v', 'SELECT id, v FROM public.admin_t');
SELECT kappa.capture('public.admin_t') IS NOT NULL;
});

sub psql_user
{
	my ($user, $sql) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $user ]);
	return ($rc, $out, $err);
}

$node->safe_psql('postgres', q{
CREATE TABLE bob.a (id int PRIMARY KEY, v text);
CREATE TABLE bob.b (id int PRIMARY KEY, v text);
ALTER TABLE bob.a OWNER TO bob;
ALTER TABLE bob.b OWNER TO bob;
});
$node->safe_psql('postgres', q{
SET pg_kappa.engine = 2;
SELECT kappa.create_view('bob.va', 'SELECT id, v FROM bob.a');
SELECT kappa.create_view('bob.vb', 'SELECT id, v FROM bob.b');
}, extra_params => [ '-U', 'bob' ]);

# a column of a source dropped, or its type changed, as for engine 1: the
# view breaks (o_<n> reads every column, so both are refused now)
$node->safe_psql('postgres', q{
CREATE TABLE bob.c (id int PRIMARY KEY, v text, w int);
SET pg_kappa.engine = 2;
SELECT kappa.create_view('bob.vc', 'SELECT id, v FROM bob.c');
}, extra_params => [ '-U', 'bob' ]);
my ($rc, undef, $err) = psql_user('bob', 'ALTER TABLE bob.c ALTER COLUMN w TYPE bigint');
is($rc, 0, 'the type of a source column of an engine-2 view can be changed') or diag($err);
($rc, undef, $err) = psql_user('bob', 'ALTER TABLE bob.c DROP COLUMN w');
is($rc, 0, 'a source column of an engine-2 view can be dropped') or diag($err);

# a plain DROP TABLE of a source, as for engine 1: the view breaks
($rc, undef, $err) = psql_user('bob', 'DROP TABLE bob.a');
is($rc, 0, 'DROP TABLE of a source of an engine-2 view works') or diag($err);
is($node->safe_psql('postgres', q{SELECT state FROM kappa.views WHERE name = 'bob.va'}),
	'broken', 'and marks the view broken');

# CASCADE, by the source's owner, an ordinary role
($rc, undef, $err) = psql_user('bob', 'DROP TABLE bob.b CASCADE');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_extension WHERE extname = 'pg_kappa'}),
	'1', "an ordinary role's DROP TABLE ... CASCADE of its own table does not drop extension pg_kappa")
  or diag($err);
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_class WHERE relname = 'views' AND relnamespace = 'kappa'::regnamespace}),
	'1', 'the catalog of every view is still there');

# a member planted while the view is filled
$node->safe_psql('postgres', q{CREATE EXTENSION IF NOT EXISTS pg_kappa});
$node->safe_psql('postgres', q{
CREATE TABLE bob.s (id int PRIMARY KEY);
INSERT INTO bob.s VALUES (1);
CREATE FUNCTION bob.anchor() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION bob.mk() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    SELECT nspname INTO s FROM pg_namespace
     WHERE nspname LIKE 'kappa_v%' AND nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
     ORDER BY oid DESC LIMIT 1;
    IF s IS NOT NULL AND to_regclass(s || '.planted') IS NULL THEN
        EXECUTE format('CREATE VIEW %I.planted AS SELECT bob.anchor()', s);
    END IF;
END $$;
CREATE FUNCTION bob.f(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM bob.mk();
    RETURN $1;
END $$;
SET pg_kappa.engine = 2;
SELECT kappa.create_view('bob.vs', 'SELECT id, bob.f(id) AS x FROM bob.s');
}, extra_params => [ '-U', 'bob' ]);
is($node->safe_psql('postgres', q{
SELECT count(*) FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
 WHERE c.relname = 'planted' AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'}),
	'0', "a relation bob's view code creates in its internal schema is not made a member of the extension");
psql_user('bob', 'DROP FUNCTION bob.anchor() CASCADE');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_extension WHERE extname = 'pg_kappa'}),
	'1', "bob's DROP FUNCTION ... CASCADE does not drop extension pg_kappa");

$node->stop('fast', fail_ok => 1);
done_testing();
