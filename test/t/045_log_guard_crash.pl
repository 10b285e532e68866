# Red team, round 2: kappa.log_guard() on a view crashes the server.  It
# fails until the hole is fixed.
#
# kappa.log_guard() is an ordinary trigger function (EXECUTE is PUBLIC)
# that any role may attach to a relation of its own, a temporary view too
# (nothing but the default TEMP privilege).  Fired by an INSERT while
# nothing is captured in the database, it asks restoring_log whether the
# "event log" holds only rows of this transaction, and rows_all_current
# scans the relation with table_beginscan: a view (INSTEAD OF trigger), a
# partitioned table (statement trigger) has no table access method, and
# the backend dereferences NULL (event_log.c: kappa_log_guard does not
# check that it fires on kappa.event_log or kappa.event_log_pruned, nor
# restoring_log that the relation is a table).  SIGSEGV: the postmaster
# restarts the server, every session of every database is cut off.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('log_guard_crash');
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE ROLE dave LOGIN;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
});

my $log_offset = -s $node->logfile;
$node->psql('postgres', q{
CREATE TEMP VIEW vw AS SELECT 1 AS x;
CREATE TRIGGER g INSTEAD OF INSERT ON vw FOR EACH ROW EXECUTE FUNCTION kappa.log_guard();
INSERT INTO vw VALUES (1);
}, extra_params => [ '-U', 'dave' ]);
sleep 2;
my $crashed = slurp_file($node->logfile, $log_offset) =~ /terminated by signal/;
ok(!$crashed, 'kappa.log_guard attached to a temporary view by a role with only TEMP does not crash the server');

$node->stop('immediate', fail_ok => 1);
done_testing();
