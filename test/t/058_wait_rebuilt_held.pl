# kappa.wait on a view built again while the worker holds it, and on a
# paused view built again straight to running.
#
# 1. A view held by the worker (its derived table locked past
#    pg_kappa.view_lock_timeout: "initializing"), then built again with
#    kappa.alter_view(rebuild => true), which makes it "running" under the
#    same id while the worker still holds it: a row inserted next must be
#    in the view when kappa.wait returns true.  The worker once published
#    its own position for such a view (only views held while "running"
#    were marked held), and kappa.wait returned before the retry applied
#    the row.
# 2. A paused view built again with paused => false, rebuild => true, then
#    a row inserted and waited for, over and over: a batch that still took
#    the view for paused (as the worker's last reload found it) skipped it
#    for good, though the batch's snapshot saw it running.
# Both for delta engines 1 and 2.  The views must stay exact.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('wait_rebuilt_held',
	extra_conf => "pg_kappa.view_lock_timeout = '200ms'\n");
$node->safe_psql('postgres', q{CREATE EXTENSION pg_kappa});

for my $engine (1, 2)
{
	my $v = "r$engine";
	$node->safe_psql('postgres', qq{
CREATE TABLE ${v}_src (id int PRIMARY KEY, v int);
SET client_min_messages = warning;
SET pg_kappa.engine = $engine;
SELECT kappa.create_view('$v', 'SELECT id, v FROM ${v}_src');
});

	# the worker times out on the derived table's lock and holds the view
	my $locker = $node->background_psql('postgres');
	$locker->query_safe("BEGIN; LOCK TABLE $v IN ACCESS EXCLUSIVE MODE;");
	$node->safe_psql('postgres', "INSERT INTO ${v}_src VALUES (1, 1)");
	ok($node->poll_query_until('postgres',
		"SELECT state = 'initializing' FROM kappa.views WHERE name = 'public.$v'"),
		"engine $engine: the view is held");
	$locker->query_safe('COMMIT');
	$locker->quit;

	$node->safe_psql('postgres', qq{
SET client_min_messages = warning;
SELECT kappa.alter_view(view => '$v', rebuild => true);
INSERT INTO ${v}_src VALUES (2, 2);
});
	# (the view read in a statement of its own: one snapshot per statement)
	is($node->safe_psql('postgres',
		"SELECT kappa.wait('$v', timeout => '60s'); SELECT EXISTS (SELECT FROM $v WHERE id = 2)"),
		"t\nt", "engine $engine: built again while held, the next row is in the view once kappa.wait returns");

	# paused, then built again straight to running, over and over
	my $bad = $node->safe_psql('postgres', qq{
SET client_min_messages = warning;
CREATE PROCEDURE ${v}_loop(n int, INOUT bad int) LANGUAGE plpgsql AS \$\$
DECLARE ok bool;
BEGIN
  bad := 0;
  FOR i IN 10 .. n + 9 LOOP
    PERFORM kappa.alter_view(view => '$v', paused => true);
    COMMIT;
    PERFORM pg_sleep(0.02);
    PERFORM kappa.alter_view(view => '$v', paused => false, rebuild => true);
    COMMIT;
    INSERT INTO ${v}_src VALUES (i, i);
    COMMIT;
    ok := kappa.wait('$v', timeout => '60s');
    IF NOT ok OR NOT EXISTS (SELECT FROM $v WHERE id = i) THEN
      bad := bad + 1;
    END IF;
    COMMIT;
  END LOOP;
END \$\$;
CALL ${v}_loop(40, NULL);
});
	is($bad, '0', "engine $engine: a paused view built again to running has each row once kappa.wait returns");
	$node->safe_psql('postgres', "INSERT INTO ${v}_src VALUES (1000, 1)");
	is($node->safe_psql('postgres',
		"SELECT kappa.wait('$v', timeout => '60s'); SELECT count(*) FROM kappa.verify('$v')"),
		"t\n0", "engine $engine: the view is exact");
}

# A worker that starts while a view is held ("initializing" with the
# reason in last_error, as a lock timeout leaves it) clears the reason once
# the view has caught up; it once kept that note in a list freed with its
# first transaction, and crashed (the server restarting, over and over).
my $started = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE r2 IN ACCESS EXCLUSIVE MODE;');
$node->safe_psql('postgres', 'INSERT INTO r2_src VALUES (2000, 1)');
ok($node->poll_query_until('postgres',
	"SELECT state = 'initializing' AND last_error IS NOT NULL FROM kappa.views WHERE name = 'public.r2'"),
	'a view held after a lock timeout');
$node->safe_psql('postgres',
	q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'pg_kappa apply worker'});
$locker->query_safe('COMMIT');
$locker->quit;
$node->safe_psql('postgres', 'INSERT INTO r2_src VALUES (2001, 1)');
is($node->safe_psql('postgres',
	"SELECT kappa.wait('r2', timeout => '60s'); SELECT count(*) FROM r2 WHERE id >= 2000; SELECT count(*) FROM kappa.verify('r2')"),
	"t\n2\n0", 'the next worker catches the view up');
ok($node->poll_query_until('postgres',
	"SELECT state = 'running' AND last_error IS NULL FROM kappa.views WHERE name = 'public.r2'"),
	'and clears its last error');
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $started, 'the server did not restart');

$node->stop('fast');
done_testing();
