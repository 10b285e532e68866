# Three clusters: one publisher under pgbench, two subscribers running
# pg_kappa.  The first subscribes to both tables through one subscription;
# the second through two (one per table), so that its join view's sources
# come through two subscriptions: kappa.wait(origin_lsn) then asks which
# one, and waiting once through each gives read-your-writes for the join.
# One subscriber is stopped at once while the writers write and the other
# keeps up.  In the end every view on both is exact and equal to its query
# run on the publisher.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $primary = kappa_publisher('primary');
my $sa = kappa_node('replica_a');
my $sb = kappa_node('replica_b');

my $schema = q{
CREATE TABLE acct (id int PRIMARY KEY, branch int NOT NULL, balance bigint NOT NULL);
CREATE TABLE hist (id bigserial PRIMARY KEY, acct_id int, delta int);
};
$primary->safe_psql('postgres', $schema . q{
INSERT INTO acct SELECT g, g % 10, 0 FROM generate_series(1, 2000) g;
INSERT INTO hist (acct_id, delta) SELECT g % 2000 + 1, g % 7 FROM generate_series(1, 3000) g;
CREATE PUBLICATION pub_all FOR TABLE acct, hist;
CREATE PUBLICATION pub_acct FOR TABLE acct;
CREATE PUBLICATION pub_hist FOR TABLE hist;
});

my %views = (
	by_branch => 'SELECT branch, count(*) AS n, sum(balance) AS total, min(balance) AS lo FROM acct GROUP BY branch',
	hist_sum => 'SELECT a.branch, count(*) AS n, sum(h.delta) AS total FROM hist h JOIN acct a ON a.id = h.acct_id GROUP BY a.branch',
);
my $conn = publisher_conninfo($primary);
foreach my $node ($sa, $sb)
{
	$node->safe_psql('postgres', $schema . q{
ALTER TABLE acct REPLICA IDENTITY FULL;
ALTER TABLE hist REPLICA IDENTITY FULL;
CREATE EXTENSION pg_kappa;
});
	$node->safe_psql('postgres', "SELECT kappa.create_view('$_', \$\$$views{$_}\$\$)") foreach sort keys %views;
}
$sa->safe_psql('postgres', "CREATE SUBSCRIPTION sub_all CONNECTION '$conn' PUBLICATION pub_all");
$sb->safe_psql('postgres', "CREATE SUBSCRIPTION sub_acct CONNECTION '$conn' PUBLICATION pub_acct");
$sb->safe_psql('postgres', "CREATE SUBSCRIPTION sub_hist CONNECTION '$conn' PUBLICATION pub_hist");
$sa->wait_for_subscription_sync;
$sb->wait_for_subscription_sync;

# the join's sources come through two subscriptions on the second replica
my $lsn = publisher_lsn($primary);
my ($ret, $out, $err) = $sb->psql('postgres', "SELECT kappa.wait('hist_sum', origin_lsn => '$lsn')");
like($err, qr/ERROR:  sources of derived view "hist_sum" are replicated by more than one subscription\nDETAIL:  They are replicated by subscriptions "sub_\w+" and "sub_\w+"\.\nHINT:  Name one with subscription => name/,
	'two subscriptions: the wait asks which one');
is(replica_wait($sb, 'by_branch', $lsn), 't', 'a view of one of them finds its subscription');
($ret, $out, $err) = $sb->psql('postgres', "SELECT kappa.wait('by_branch', origin_lsn => '$lsn', subscription => 'sub_hist')");
like($err, qr/ERROR:  subscription "sub_hist" does not replicate any source of derived view "by_branch"\nHINT:  The view's sources are replicated by subscription "sub_acct"\./,
	'a subscription that does not feed the view is refused');

my $script = acct_writes_script(2000);
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '2', '-j', '2', '-T', '10', '-f', $script,
	  '-h', $primary->host, '-p', $primary->port, 'postgres' ],
	'>', \my $bench_out, '2>', \my $bench_err);

# read-your-writes on both replicas while the writers write: a new account
# and a history row for it, in one transaction on the publisher
my ($waits, $seen) = (0, 0);
foreach my $i (1 .. 6)
{
	my $id = 10000 + $i;
	$lsn = $primary->safe_psql('postgres', "BEGIN; INSERT INTO acct VALUES ($id, 99, 0);
INSERT INTO hist (acct_id, delta) VALUES ($id, 1000); COMMIT; SELECT pg_current_wal_insert_lsn()");
	$waits++ if replica_wait($sa, 'hist_sum', $lsn) eq 't';
	$waits++ if replica_wait($sb, 'hist_sum', $lsn, q{subscription => 'sub_acct'}) eq 't';
	$waits++ if replica_wait($sb, 'hist_sum', $lsn, q{subscription => 'sub_hist'}) eq 't';
	$seen++ if $sa->safe_psql('postgres', 'SELECT total FROM hist_sum WHERE branch = 99') eq 1000 * $i;
	$seen++ if $sb->safe_psql('postgres', 'SELECT total FROM hist_sum WHERE branch = 99') eq 1000 * $i;
	# halfway, the first replica stops at once and comes back
	if ($i == 3)
	{
		$sa->stop('immediate');
		$sa->start;
	}
}
is($waits, 18, 'every cross-server wait returned true');
is($seen, 12, 'and each replica\'s join view had the new rows');

$bench->finish;
is($bench->result(0), 0, 'pgbench ran');

foreach my $v (sort keys %views)
{
	replica_exact($primary, $sa, $v, $views{$v}, 'replica a');
	replica_exact($primary, $sb, $v, $views{$v}, 'replica b',
		$v eq 'hist_sum' ? [ 'sub_acct', 'sub_hist' ] : undef);
}

$_->stop foreach ($sa, $sb, $primary);
done_testing();
