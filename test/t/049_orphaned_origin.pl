# A database dropped after its pg_kappa slot was dropped by hand (not by
# DROP EXTENSION, which retires the database's worker and drops its
# replication origin) leaves the origin behind, and each such origin keeps
# a replication state slot: max_replication_slots of them and no worker can
# start ("could not find free replication state slot").  The next apply
# worker to start drops the origins of databases that are gone.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('orphaned_origin');
$node->safe_psql('postgres', 'CREATE DATABASE gone');
$node->safe_psql('gone', q{
CREATE EXTENSION pg_kappa;
CREATE TABLE t (id int PRIMARY KEY, v int);
INSERT INTO t VALUES (1, 1);
SET client_min_messages = warning;
SELECT kappa.create_view('tv', 'SELECT id, v FROM t');
SELECT kappa.wait('tv');
});
my $oid = $node->safe_psql('postgres', q{SELECT oid FROM pg_database WHERE datname = 'gone'});
my $origin_count = qq{SELECT count(*) FROM pg_replication_origin WHERE roname = 'pg_kappa_$oid'};
is($node->safe_psql('postgres', $origin_count), '1', 'the database has its origin');

# the workers stopped, the slot dropped by hand, then the database
$node->safe_psql('postgres', q{ALTER SYSTEM SET pg_kappa.enabled = off; SELECT pg_reload_conf()});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pg_kappa apply worker'}),
	'the workers stopped');
$node->safe_psql('postgres', qq{SELECT pg_drop_replication_slot('pg_kappa_$oid')});
$node->safe_psql('postgres', 'DROP DATABASE gone');
is($node->safe_psql('postgres', $origin_count), '1', 'the origin outlives its database');

# another database's worker starts, and drops it
$node->safe_psql('postgres', q{ALTER SYSTEM RESET pg_kappa.enabled; SELECT pg_reload_conf()});
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE TABLE u (id int PRIMARY KEY, v int);
INSERT INTO u VALUES (1, 1);
SET client_min_messages = warning;
SELECT kappa.create_view('uv', 'SELECT id, v FROM u');
});
is($node->safe_psql('postgres', q{SELECT kappa.wait('uv', timeout => '60s')}), 't',
	'the other database\'s view runs');
is($node->safe_psql('postgres', $origin_count), '0',
	'its worker dropped the origin of the database that is gone');
my $own = $node->safe_psql('postgres',
	q{SELECT count(*) FROM pg_replication_origin o JOIN pg_database d ON o.roname = 'pg_kappa_' || d.oid WHERE d.datname = 'postgres'});
is($own, '1', 'and kept its own');
like(slurp_file($node->logfile, $log_offset),
	qr/dropped replication origin "pg_kappa_$oid" of a database that no longer exists/,
	'and said so in the log');

$node->stop;
done_testing();
