# A schema renamed and renamed back while the worker applies a batch must
# not break a view: the worker's statements name the derived table, and
# ALTER SCHEMA RENAME does not lock the tables in it, so a name built
# before the rename may not resolve when it runs.  The view is held and
# retried instead (apply_worker.c, renamed_meanwhile).  Inserts into the
# source, each followed by a rename of the view's schema and back, many
# times; the view must end running, exact, every insert applied once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('schema_rename');
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE SCHEMA ks;
CREATE TABLE t (id int PRIMARY KEY, g int);
INSERT INTO t SELECT i, i % 5 FROM generate_series(1, 100) i;
SELECT kappa.create_view('ks.rows_v', 'SELECT id, g FROM t');
SELECT kappa.create_view('ks.sum_v', 'SELECT g, count(*) AS n, sum(id) AS s FROM t GROUP BY g');
});

for my $i (1 .. 150)
{
	my $id = 1000 + $i;
	$node->safe_psql('postgres', qq{
INSERT INTO t VALUES ($id, $id % 5);
ALTER SCHEMA ks RENAME TO ks_elsewhere;
SELECT pg_sleep(0.002);
ALTER SCHEMA ks_elsewhere RENAME TO ks;
});
}

for my $v ('ks.rows_v', 'ks.sum_v')
{
	is($node->safe_psql('postgres', "SELECT kappa.wait('$v', timeout => '120s')"),
		't', "$v caught up");
	is($node->safe_psql('postgres',
			"SELECT state FROM kappa.views WHERE name = '$v'"),
		'running', "$v is running, not broken");
	is($node->safe_psql('postgres', "SELECT count(*) FROM kappa.verify('$v')"),
		'0', "$v equals its query");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM ks.rows_v'), '250', 'every insert applied once');

$node->stop;
done_testing();
