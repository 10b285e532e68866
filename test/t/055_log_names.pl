# Records of the event log name their table by schema and name, and
# readers find the table among the names its log row keeps.  A table
# renamed, and another given its old name, within one batch of the worker
# (here: while the workers are stopped) must not have their records mixed:
# the log row is split so that a name stands for one table only, and each
# table's events and replays are its own (a role could otherwise forge
# records into another's history, or read another's rows).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('log_names');
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
SET client_min_messages = warning;
CREATE SCHEMA a;
CREATE SCHEMA m;
CREATE TABLE a.orders (id int PRIMARY KEY, note text);
CREATE TABLE m.orders (id int PRIMARY KEY, note text);
CREATE TABLE tick (id int PRIMARY KEY);
SELECT kappa.capture('a.orders');
SELECT kappa.capture('m.orders');
INSERT INTO a.orders VALUES (1, 'alice 1'), (2, 'alice 2');
INSERT INTO m.orders VALUES (1, 'mallory 1');
SELECT kappa.create_view('tick_v', 'SELECT id FROM tick');
});
is($node->safe_psql('postgres', q{SELECT kappa.wait('tick_v')}), 't', 'the worker runs');

# stop the workers: what follows is decoded in one batch
$node->safe_psql('postgres', q{ALTER SYSTEM SET pg_kappa.enabled = off; SELECT pg_reload_conf()});
$node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pg_kappa apply worker'})
  or die 'the apply worker did not stop';

$node->safe_psql('postgres', q{
INSERT INTO a.orders VALUES (3, 'alice 3 before the rename');
ALTER SCHEMA a RENAME TO a_old;
ALTER SCHEMA m RENAME TO a;
INSERT INTO a.orders VALUES (999, 'FAKE, written by the other table');
INSERT INTO a_old.orders VALUES (4, 'alice 4 after the rename');
ALTER SCHEMA a RENAME TO m;
ALTER SCHEMA a_old RENAME TO a;
INSERT INTO m.orders VALUES (998, 'SECRET of the other table');
INSERT INTO tick VALUES (1);
});

$node->safe_psql('postgres', q{ALTER SYSTEM RESET pg_kappa.enabled; SELECT pg_reload_conf()});
is($node->safe_psql('postgres', q{SELECT kappa.wait('tick_v', timeout => '60s')}), 't',
	'the worker applied the batch');

# in every log row, a name stands for one table and a table has one name
is($node->safe_psql('postgres', q{
SELECT count(*) FROM (
    SELECT l.batch_id, u.name
      FROM kappa.event_log l, unnest(l.tables, l.table_names) AS u(relid, name)
     GROUP BY l.batch_id, u.name HAVING count(DISTINCT u.relid) > 1
    UNION ALL
    SELECT l.batch_id, u.relid::text
      FROM kappa.event_log l, unnest(l.tables, l.table_names) AS u(relid, name)
     GROUP BY l.batch_id, u.relid HAVING count(DISTINCT u.name) > 1) s}),
	'0', 'no log row holds one name for two tables, or two names for one');

# the notes of a table's logged inserts, in order
sub logged_notes
{
	my ($table) = @_;
	return $node->safe_psql('postgres', qq{
SELECT string_agg(e->'new'->>'note', ', ' ORDER BY e->'new'->>'note' COLLATE "C")
  FROM kappa.events(tables => ARRAY['$table'::regclass]) e
 WHERE e->>'kind' = 'insert'});
}
is(logged_notes('a.orders'),
	'alice 1, alice 2, alice 3 before the rename, alice 4 after the rename',
	"a table's events are its own");
is(logged_notes('m.orders'),
	'FAKE, written by the other table, SECRET of the other table, mallory 1',
	"the other table's events are its own");

# a view replayed from each table's log is exact
$node->safe_psql('postgres', q{
SET client_min_messages = warning;
SELECT kappa.create_view('a_copy', 'SELECT id, note FROM a.orders', replay_from => '0/0');
SELECT kappa.create_view('m_copy', 'SELECT id, note FROM m.orders', replay_from => '0/0');
});
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('a_copy')}), '0',
	'a view replayed from the first table is exact');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('m_copy')}), '0',
	'a view replayed from the second table is exact');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.audit()}), '0', 'the audit passes');

$node->stop;
done_testing();
