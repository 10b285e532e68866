# ALTER EXTENSION pg_kappa UPDATE from 0.2: views and captures made by 0.2
# keep being maintained, verify and replay work on them, and the 0.3 (and 0.4)
# catalog (row-level security on kappa.views, status, the renamed replay
# parameter) is in place.  As pg_stat_statements' oldextversions test does,
# the old version is installed from its scripts and updated in place.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('upgrade');

$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa VERSION '0.2';
CREATE ROLE regress_upg_alice;
CREATE SCHEMA ua AUTHORIZATION regress_upg_alice;
CREATE TABLE ua.t (id int PRIMARY KEY, g int, v numeric);
ALTER TABLE ua.t OWNER TO regress_upg_alice;
INSERT INTO ua.t SELECT i, i % 3, i * 1.5 FROM generate_series(1, 30) i;
CREATE ROLE regress_upg_bob;
CREATE SCHEMA ub AUTHORIZATION regress_upg_bob;
CREATE TABLE ub.o (id int PRIMARY KEY, w int);
ALTER TABLE ub.o OWNER TO regress_upg_bob;
GRANT USAGE ON SCHEMA ub TO regress_upg_alice;
GRANT SELECT ON ub.o TO regress_upg_alice;
INSERT INTO ub.o VALUES (1, 1);
SET ROLE regress_upg_alice;
SELECT kappa.create_view('ua.bobs', 'SELECT id, w FROM ub.o');
SELECT kappa.create_view('ua.rows', 'SELECT id, v FROM ua.t WHERE g = 1');
SELECT kappa.create_view('ua.sums', 'SELECT g, count(*) AS n, sum(v) AS s FROM ua.t GROUP BY g');
RESET ROLE;
SELECT kappa.capture('ua.t');
});
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_kappa'}),
	'0.2', 'installed as 0.2');
$node->safe_psql('postgres', q{UPDATE ua.t SET v = v + 1 WHERE id <= 10; DELETE FROM ua.t WHERE id = 30});
is($node->safe_psql('postgres', q{SELECT kappa.wait('ua.rows', timeout => '30s') AND kappa.wait('ua.sums', timeout => '30s')}),
	't', 'views maintained under 0.2');

$node->safe_psql('postgres', q{ALTER EXTENSION pg_kappa UPDATE});
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_kappa'}),
	'0.9', 'updated to 0.9');

# The update, run by a superuser, does not change a table that the view's
# owner does not own: alice's view over bob's table keeps engine 1
is($node->safe_psql('postgres', q{SELECT relreplident FROM pg_class WHERE oid = 'ub.o'::regclass}),
	'd', 'another role\'s table keeps its replica identity');
is($node->safe_psql('postgres', q{SELECT engine FROM kappa.views WHERE relid = 'ua.bobs'::regclass}),
	'1', 'the view over it keeps engine 1');
$node->safe_psql('postgres', q{SELECT kappa.drop_view('ua.bobs')});

# 0.4 builds the views of engine 1 again with engine 2: no copies of sources
is($node->safe_psql('postgres', q{SELECT string_agg(engine::text, ',' ORDER BY name) FROM kappa.views}),
	'2,2', 'the views were converted to engine 2');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname LIKE 'kappa\_v%' AND c.relname LIKE 'a\_%'}),
	'0', 'no copy of a source is left');
is($node->safe_psql('postgres', q{SELECT relreplident FROM pg_class WHERE oid = 'ua.t'::regclass}),
	'f', 'the source has REPLICA IDENTITY FULL');

# 0.4's kappa.wait: origin_lsn and subscription appended, the same
# settings, comment and privileges as before
is($node->safe_psql('postgres', q{SELECT pg_get_function_identity_arguments(p.oid) || ' ' || array_to_string(proconfig, ';')
  || ' ' || (obj_description(p.oid, 'pg_proc') IS NOT NULL) || ' ' || has_function_privilege('public', p.oid, 'EXECUTE')
  FROM pg_proc p WHERE proname = 'wait' AND pronamespace = 'kappa'::regnamespace}),
	'view regclass, target pg_lsn, timeout interval, origin_lsn pg_lsn, subscription name search_path=pg_catalog, pg_temp true true',
	'kappa.wait has its 0.4 parameters, settings, comment and privileges');
my ($ret, $out, $err) = $node->psql('postgres', q{SELECT kappa.wait('ua.rows', origin_lsn => '0/1')});
like($err, qr/no subscription of this database replicates a source of derived view "rows"/,
	'and takes origin_lsn');

# the views go on
$node->safe_psql('postgres', q{INSERT INTO ua.t SELECT i, i % 3, i FROM generate_series(31, 40) i; UPDATE ua.t SET g = 1 WHERE id = 2});
is($node->safe_psql('postgres', q{SELECT kappa.wait('ua.rows', timeout => '30s') AND kappa.wait('ua.sums', timeout => '30s')}),
	't', 'views maintained after the update');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('ua.rows')}), '0', 'verify: rows view exact');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('ua.sums')}), '0', 'verify: aggregate view exact');
is($node->safe_psql('postgres', q{SELECT string_agg(state, ',' ORDER BY name) FROM kappa.status WHERE kind = 'view'}),
	'running,running', 'status after the update');

# 0.3's catalog: a role sees only the views it may read
$node->safe_psql('postgres', q{CREATE ROLE regress_upg_carol});
is($node->safe_psql('postgres', q{SET ROLE regress_upg_carol; SELECT count(*) FROM kappa.views}),
	'0', 'kappa.views hides views from roles that cannot read them');
is($node->safe_psql('postgres', q{SET ROLE regress_upg_alice; SELECT count(*) FROM kappa.views}),
	'2', 'the owner sees her views');

# replay with the renamed parameter, on a view made by 0.2
is($node->safe_psql('postgres', q{SET client_min_messages = warning; SELECT kappa.replay('ua.sums', new_name => 'sums_green')}),
	'ua.sums_green', 'replay into a new view, by the parameter name new_name');
is($node->safe_psql('postgres', q{SELECT count(*) FROM (SELECT * FROM ua.sums EXCEPT SELECT * FROM ua.sums_green) d}),
	'0', 'the replayed view equals the live one');
is($node->safe_psql('postgres', q{SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'ua.sums_green'::regclass}),
	'regress_upg_alice', 'the new view belongs to the replayed view\'s owner');

# 0.5: a view made by 0.2 keeps its derived table's columns
my ($alter_rc, $alter_out, $alter_err) = $node->psql('postgres', q{ALTER TABLE ua.sums ADD COLUMN note text});
like($alter_err, qr/cannot change the columns of derived table ua\.sums/,
	'adding a column to a derived table made by 0.2 is refused');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('ua.sums')}), '0', 'the view is still exact');

# 0.6: a column added to the source of views made by 0.2 (now of engine
# 2) leaves them running and exact
$node->safe_psql('postgres', q{ALTER TABLE ua.t ADD COLUMN note text DEFAULT 'n'});
$node->safe_psql('postgres', q{INSERT INTO ua.t VALUES (41, 1, 41, 'x'); UPDATE ua.t SET v = v + 1, note = 'y' WHERE id <= 5; DELETE FROM ua.t WHERE id = 6});
is($node->safe_psql('postgres', q{SELECT kappa.wait('ua.rows', timeout => '30s') AND kappa.wait('ua.sums', timeout => '30s')}),
	't', 'views maintained after a column was added to their source');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('ua.rows')}) + $node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('ua.sums')}),
	0, 'and exact');

# the event log's chain is intact across the update
is($node->safe_psql('postgres', q{SELECT bool_and(ok) FROM kappa.audit_chain()}), 't',
	'event log chain intact');

done_testing();
