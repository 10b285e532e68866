# kappa.alter_view(view, rebuild => true) of a database's only view, once
# it is broken: the worker has dropped the database's slot (no view left
# running, after a restart), so the rebuild makes it again, before its
# transaction writes, as create_view does.  Also: paused => false with
# rebuild => true on a broken view (the rebuild sets the state; it is not
# a "resume").
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('rebuild_last_view');
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE TABLE o (id int PRIMARY KEY, c int, amount numeric, legacy text);
INSERT INTO o SELECT i, i % 3, i, 'x' FROM generate_series(1, 30) i;
SET client_min_messages = warning;
SELECT kappa.create_view('tot', 'SELECT c, sum(amount) AS s, count(*) AS n FROM o GROUP BY c');
SELECT kappa.wait('tot');
});

# a column the view reads renamed: the view is broken (its query no
# longer parses); after a restart the worker finds no running view and
# lets the slot go
$node->safe_psql('postgres', q{ALTER TABLE o RENAME COLUMN amount TO amt});
is($node->safe_psql('postgres', q{SELECT state FROM kappa.views}), 'broken', 'the view is broken');
$node->restart;
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM pg_replication_slots WHERE slot_name LIKE 'pg\_kappa\_%'}),
	'the worker dropped the slot of a database without a running view');

$node->safe_psql('postgres', q{ALTER TABLE o RENAME COLUMN amt TO amount; ALTER TABLE o DROP COLUMN legacy});
$node->safe_psql('postgres', q{UPDATE o SET amount = amount + 1 WHERE id <= 10});
my ($rc, $out, $err) = $node->psql('postgres',
	q{SET client_min_messages = warning; SELECT kappa.alter_view('tot', paused => false, rebuild => true)});
is($rc, 0, 'the only view is rebuilt') or diag($err);
is($node->safe_psql('postgres', q{SELECT state FROM kappa.views}), 'running', 'and runs');
$node->safe_psql('postgres', q{INSERT INTO o VALUES (31, 1, 31); DELETE FROM o WHERE id = 2});
is($node->safe_psql('postgres', q{SELECT kappa.wait('tot', timeout => '60s')}), 't', 'it takes changes again');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('tot')}), '0', 'exact');

# a database's first view needs a slot of its own: with every slot taken,
# the error says so
$node->safe_psql('postgres', q{CREATE DATABASE other});
$node->safe_psql('other', q{
CREATE EXTENSION pg_kappa;
CREATE TABLE t (id int PRIMARY KEY, v int);
SELECT pg_create_physical_replication_slot('fill_' || i)
  FROM generate_series(1, current_setting('max_replication_slots')::int
                          - (SELECT count(*) FROM pg_replication_slots)) i;
});
($rc, $out, $err) = $node->psql('other',
	q{SELECT kappa.create_view('tv', 'SELECT id, v FROM t')});
isnt($rc, 0, 'no free slot: the first view of a database is refused');
like($err, qr/all replication slots are in use/, 'with the server\'s message');
like($err, qr/CONTEXT:  creating replication slot "pg_kappa_\d+", which pg_kappa needs in each database with derived views or captured tables/,
	'and a context that says pg_kappa takes a slot per database');
is($node->safe_psql('other', q{SELECT count(*) FROM kappa.views}), '0', 'no view is left behind');
$node->safe_psql('other', q{SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'fill\_%'});
$node->safe_psql('other', q{SELECT kappa.create_view('tv', 'SELECT id, v FROM t')});
$node->safe_psql('other', q{INSERT INTO t VALUES (1, 1)});
is($node->safe_psql('other', q{SELECT kappa.wait('tv', timeout => '60s') AND (SELECT count(*) FROM tv) = 1}), 't',
	'with a slot free it is made');

$node->stop('fast');
done_testing();
