# The event log and replay under crashes and concurrent writers: the worker
# dies right after writing a batch's log rows (before its commit) and right
# after committing (before confirming the slot); the server is stopped with
# -m immediate during a replay and during a verify; a replay runs while a
# writer changes the source.  Afterwards every committed source transaction
# is in the log exactly once, the chain audits clean, and the view equals
# its query.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use KappaTest;

my $node = kappa_node('logcrash', extra_conf => "restart_after_crash = on\n");
my $query = 'SELECT g, count(*) AS n, sum(v) AS s FROM t GROUP BY g';
$node->safe_psql('postgres', qq{
CREATE EXTENSION pg_kappa;
CREATE TABLE t (id int PRIMARY KEY, g int, v int);
INSERT INTO t SELECT i, i % 10, i FROM generate_series(1, 60000) i;
SELECT kappa.capture('t');
SELECT kappa.create_view('agg', '$query');
});
my $txns = 0;
my $next_id = 100000;

sub write_one
{
	my $id = $next_id++;
	# the server may be restarting after a crash: psql then fails, or dies
	# writing its input (IPC::Run raises on the broken pipe)
	my $ret = eval { ($node->psql('postgres', "INSERT INTO t VALUES ($id, $id % 10, $id)"))[0] } // 1;
	if ($ret != 0)
	{
		$node->poll_query_until('postgres', 'SELECT true') or die "server did not come back";
		return unless $node->safe_psql('postgres', "SELECT count(*) FROM t WHERE id = $id");
	}
	$txns++;
}

sub check_log
{
	my ($label) = @_;
	view_matches($node, 'agg', $query, $label);
	is($node->safe_psql('postgres',
			q{SELECT count(*) FROM kappa.events(tables => '{t}') e WHERE e->>'kind' = 'commit'}),
		$txns, "$label: each of the $txns transactions logged once");
	is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.audit()}),
		'0', "$label: audit finds nothing");
}

write_one() for 1 .. 5;
check_log('before crashes');

foreach my $point (qw(after_log after_commit))
{
	$node->safe_psql('postgres', "ALTER SYSTEM SET pg_kappa.test_crash_point = '$point'; SELECT pg_reload_conf();");
	my $log_offset = -s $node->logfile;
	open(my $fh, '>', $node->data_dir . '/pg_kappa_crash') or die;
	close($fh);
	write_one();
	ok($node->wait_for_log(qr/test crash point "$point" reached/, $log_offset),
		"worker died at $point");
	$node->poll_query_until('postgres', 'SELECT true') or die;
	write_one() for 1 .. 3;
	check_log("after crash at $point");
	$node->safe_psql('postgres', "ALTER SYSTEM RESET pg_kappa.test_crash_point; SELECT pg_reload_conf();");
}

# a replay (and then a verify) cut short by an immediate stop leaves the
# view as it was: one transaction, nothing half-done
foreach my $what ("SELECT kappa.replay('agg')", "SELECT count(*) FROM kappa.verify('agg')")
{
	my $before = $node->safe_psql('postgres', 'SELECT string_agg(a::text, \',\' ORDER BY g) FROM agg a');
	my $session = $node->background_psql('postgres', on_error_stop => 0);
	$session->query_until(qr/started/, "\\echo started\n$what;\n");
	usleep(200_000 + int(rand(300_000)));
	$node->stop('immediate');
	eval { $session->quit; };
	$node->start;
	is($node->safe_psql('postgres', 'SELECT string_agg(a::text, \',\' ORDER BY g) FROM agg a'),
		$before, "immediate stop during \"$what\": view unchanged");
	write_one();
	check_log("after immediate stop during \"$what\"");
}

# replay in place while a writer runs: the writer waits for nothing, the
# view ends up equal to its query
my $writer = $node->background_psql('postgres', on_error_stop => 0);
# (the loop may be done by the time "started" is read, in the same output)
my $writer_out = $writer->query_until(qr/started/, q{
\echo started
DO $$ BEGIN FOR i IN 1..400 LOOP UPDATE t SET v = v + 1 WHERE id = 1 + (i * 37) % 60000; COMMIT; END LOOP; END $$;
\echo done
});
my ($replay_rc, $replay_out, $replay_err) = $node->psql('postgres',
	"SET client_min_messages = warning; SELECT kappa.replay('agg')",
	timeout => 120, timed_out => \my $replay_timed_out);
$replay_rc = 1 if $replay_timed_out;
if ($replay_rc != 0)
{
	# what the replay waited for: every backend and every lock not granted
	diag($node->safe_psql('postgres', q{
SELECT pid, backend_type, state, wait_event_type, wait_event, left(query, 80) FROM pg_stat_activity;
SELECT locktype, relation::regclass, transactionid, mode, granted, pid FROM pg_locks
 WHERE pid IN (SELECT pid FROM pg_locks WHERE NOT granted) OR NOT granted ORDER BY pid;
}));
}
is($replay_rc, 0, "replay in place while a writer runs") or diag("stderr: " . ($replay_err // ""));
$writer->query_until(qr/done/, '') unless $writer_out =~ /done/;
$writer->quit;
$txns += 400;
check_log('replay during writes');

is($node->safe_psql('postgres', q{SELECT state FROM kappa.views}), 'running', 'view still running');
$node->stop;
done_testing();
