# Exactly once under crashes: the apply worker dies (SIGKILL, which makes
# the postmaster reinitialize everything, as after a crash) right before it
# commits a batch, and right after it commits but before it confirms the
# slot; the server is also stopped with -m immediate while writers run.
# After each restart every view must equal its query, and each view's count
# of applied source transactions must equal the number of transactions that
# touched its sources: none lost, none applied twice.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use KappaTest;

my $node = kappa_node('crash', extra_conf => "restart_after_crash = on\n");
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE TABLE t (id int PRIMARY KEY, grp int, v int);
CREATE TABLE u (id int PRIMARY KEY, t_id int);
INSERT INTO t SELECT g, g % 7, g FROM generate_series(1, 100) g;
INSERT INTO u SELECT g, g FROM generate_series(1, 50) g;
SELECT kappa.create_view('t_agg', 'SELECT grp, count(*) AS n, sum(v) AS s, max(v) AS hi FROM t GROUP BY grp');
SELECT kappa.create_view('tu', 'SELECT t.id, u.id AS uid, t.v FROM t JOIN u ON u.t_id = t.id');
});
my %views = (
	t_agg => 'SELECT grp, count(*) AS n, sum(v) AS s, max(v) AS hi FROM t GROUP BY grp',
	tu => 'SELECT t.id, u.id AS uid, t.v FROM t JOIN u ON u.t_id = t.id',
);
my $t_txns = 0;		# transactions that changed t
my $u_txns = 0;		# transactions that changed u only

# Each write inserts a row with a new id, so that after a lost connection
# the test can tell whether the transaction committed.
my $next_id = 1000;

sub write_one
{
	my ($table) = @_;
	my $id = $next_id++;
	my $sql = $table eq 't'
	  ? "INSERT INTO t VALUES ($id, $id % 7, $id)"
	  : "INSERT INTO u VALUES ($id, 1 + $id % 100)";
	my ($ret, $stdout, $stderr) = $node->psql('postgres', $sql);
	if ($ret != 0)
	{
		$node->poll_query_until('postgres', 'SELECT true') or die "server did not come back";
		return unless $node->safe_psql('postgres', "SELECT count(*) FROM $table WHERE id = $id");
	}
	if ($table eq 't') { $t_txns++ } else { $u_txns++ }
}

sub write_some
{
	my ($n) = @_;
	write_one('t') for 1 .. $n;
	write_one('u');
}

sub check_all
{
	my ($label) = @_;
	view_matches($node, $_, $views{$_}, $label) foreach sort keys %views;
	is($node->safe_psql('postgres', q{SELECT txns_applied FROM kappa.views WHERE name = 'public.t_agg'}),
		$t_txns, "$label: t_agg applied each of its $t_txns transactions once");
	is($node->safe_psql('postgres', q{SELECT txns_applied FROM kappa.views WHERE name = 'public.tu'}),
		$t_txns + $u_txns, "$label: tu applied each of its transactions once");
}

write_some(5);
check_all('before crashes');

foreach my $point (qw(before_commit after_commit))
{
	$node->safe_psql('postgres', "ALTER SYSTEM SET pg_kappa.test_crash_point = '$point'; SELECT pg_reload_conf();");
	my $log_offset = -s $node->logfile;
	open(my $fh, '>', $node->data_dir . '/pg_kappa_crash') or die;
	close($fh);
	write_one('t');
	ok($node->wait_for_log(qr/test crash point "$point" reached/, $log_offset),
		"worker died at $point");
	ok($node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset),
		"server reinitialized after the crash at $point");
	$node->poll_query_until('postgres', 'SELECT true') or die;
	ok(!-e $node->data_dir . '/pg_kappa_crash', "crash point $point fired once");
	write_some(5);
	check_all("after crash at $point");
	$node->safe_psql('postgres', "ALTER SYSTEM RESET pg_kappa.test_crash_point; SELECT pg_reload_conf();");
}

# immediate shutdowns while a writer runs
for my $round (1 .. 3)
{
	my $writer = $node->background_psql('postgres', on_error_stop => 0);
	$writer->query_until(qr/started/, q{
\echo started
DO $$ BEGIN FOR i IN 1..100000 LOOP UPDATE t SET v = v + 1 WHERE id = 1 + (i % 100); COMMIT; END LOOP; END $$;
});
	usleep(300_000 + int(rand(700_000)));
	$node->stop('immediate');
	eval { $writer->quit; };
	$node->start;
	view_matches($node, $_, $views{$_}, "immediate stop $round") foreach sort keys %views;
}

is($node->safe_psql('postgres', q{SELECT string_agg(state, ',') FROM kappa.views}),
	'running,running', 'views are still running');
$node->stop;
done_testing();
