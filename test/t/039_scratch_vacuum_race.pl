# The apply worker vacuums the scratch tables of engine 2 views every 10 s:
# it lists them, with pg_relation_size, then vacuums each.  A table
# dropped while it is listed (any role dropping its own view) has a NULL
# size: the worker must skip it, not crash (a segfault of the worker is a
# crash-restart of the whole server).  A drop_view left uncommitted makes
# the listing wait on the table's lock, then see it gone.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('scratch_race');
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE ROLE regress_sr_mallory LOGIN;
CREATE SCHEMA sr AUTHORIZATION regress_sr_mallory;
SET ROLE regress_sr_mallory;
CREATE TABLE sr.t (id int PRIMARY KEY, g int, v numeric);
ALTER TABLE sr.t REPLICA IDENTITY FULL;
INSERT INTO sr.t SELECT i, i % 3, i FROM generate_series(1, 30) i;
SELECT kappa.create_view('sr.sums', 'SELECT g, count(*) AS n, sum(v) AS s FROM sr.t GROUP BY g');
SELECT kappa.create_view('sr.keep', 'SELECT g, count(*) AS n FROM sr.t GROUP BY g');
});
$node->safe_psql('postgres', q{UPDATE sr.t SET v = v + 1});
is($node->safe_psql('postgres', q{SELECT kappa.wait('sr.sums', timeout => '30s')}), 't', 'view maintained');
ok($node->safe_psql('postgres', q{
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname ~ '^kappa_v[0-9]+$' AND c.relpersistence = 'u'}) > 0, 'the views have scratch tables');

my $pid = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_kappa apply worker' LIMIT 1});
my $dropper = $node->background_psql('postgres', on_error_stop => 1);
$dropper->query_safe(q{SET ROLE regress_sr_mallory; BEGIN; SELECT kappa.drop_view('sr.sums')});
# past the next vacuum of the scratch tables (every 10 s)
sleep(12);
$dropper->query_safe(q{COMMIT});
$dropper->quit;
sleep(2);
$node->safe_psql('postgres', q{INSERT INTO sr.t VALUES (100, 1, 1)});
is($node->safe_psql('postgres', q{SELECT kappa.wait('sr.keep', timeout => '30s')}), 't', 'the other view is maintained');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('sr.keep')}), '0', 'and exact');
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, 'no process crashed');
done_testing();
