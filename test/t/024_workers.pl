# The launcher and the apply workers: a worker that dies is started again
# (with backoff) and carries on where it stopped; a database without views
# has no worker and no slot; DROP EXTENSION stops the worker and drops the
# slot; pg_kappa.enabled turns the workers off and on.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('workers');
my $worker_pid = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_kappa apply worker' AND datname = 'postgres'};

is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_kappa launcher'}),
	'1', 'the launcher runs');
$node->safe_psql('postgres', 'CREATE EXTENSION pg_kappa');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots}), '0',
	'no view, no slot');

$node->safe_psql('postgres', q{
CREATE TABLE t (id int PRIMARY KEY, v int);
INSERT INTO t SELECT g, g FROM generate_series(1, 10) g;
SELECT kappa.create_view('tv', 'SELECT count(*) AS n, sum(v) AS s FROM t');
});
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($worker_pid) w") or die;
my $pid1 = $node->safe_psql('postgres', $worker_pid);
is($node->safe_psql('postgres', q{SELECT slot_name FROM pg_replication_slots}),
	'pg_kappa_' . $node->safe_psql('postgres', q{SELECT oid FROM pg_database WHERE datname = 'postgres'}),
	'the view has its database slot');

# a worker that is terminated comes back and catches up
my $status_restarts = q{SELECT restarts FROM kappa.worker_status() WHERE database = (SELECT oid FROM pg_database WHERE datname = 'postgres')};
my $restarts_before = $node->safe_psql('postgres', $status_restarts);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid1)");
$node->safe_psql('postgres', 'INSERT INTO t VALUES (11, 11)');
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($worker_pid) w WHERE pid <> $pid1")
  or die 'worker not restarted';
is($node->safe_psql('postgres', q{SELECT kappa.wait('tv', timeout => '30s'); SELECT n, s FROM tv}),
	"t\n11|66", 'the restarted worker caught up');
is($node->safe_psql('postgres', $status_restarts), $restarts_before + 1,
	'worker_status counts the restart');

# off and on
$node->append_conf('postgresql.conf', "pg_kappa.enabled = off\n");
$node->reload;
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM ($worker_pid) w") or die 'worker not stopped';
$node->safe_psql('postgres', 'INSERT INTO t VALUES (12, 12)');
is($node->safe_psql('postgres', q{SELECT kappa.wait('tv', timeout => '500ms')}), 'f',
	'with the workers off, the view waits');
$node->append_conf('postgresql.conf', "pg_kappa.enabled = on\n");
$node->reload;
is($node->safe_psql('postgres', q{SELECT kappa.wait('tv', timeout => '30s'); SELECT n FROM tv}),
	"t\n12", 'back on, it catches up');

# the view survives a restart of the server
$node->restart;
$node->safe_psql('postgres', 'INSERT INTO t VALUES (13, 13)');
is($node->safe_psql('postgres', q{SELECT kappa.wait('tv', timeout => '30s'); SELECT n FROM tv}),
	"t\n13", 'after a server restart the view is maintained');

# DROP EXTENSION: the worker goes, and so does the slot (with a change of a
# captured table and of a view's source decoded in the same batch as the
# DROP: the worker does not fail on the catalog gone)
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{
SELECT kappa.capture('t') IS NOT NULL;
INSERT INTO t VALUES (14, 14);
DROP EXTENSION pg_kappa CASCADE;
});
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM ($worker_pid) w") or die 'worker did not exit';
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_replication_slots}) or die 'slot not dropped';
pass('DROP EXTENSION stops the worker and drops its slot');
ok(!$node->log_contains(qr/apply worker.*exited with exit code 1|ERROR:  relation "kappa\.views" does not exist/, $log_offset),
	'the worker exits without an error');
is($node->safe_psql('postgres', q{SELECT string_agg(nspname, ',') FROM pg_namespace WHERE nspname LIKE 'kappa%'}),
	'kappa', 'no internal schema is left behind (the extension schema stays, as for any extension)');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tv}), '1',
	'the derived table stays, as an ordinary table');
$node->safe_psql('postgres', 'UPDATE tv SET n = 0');
pass('and can be written once pg_kappa is gone');

$node->stop;
done_testing();
