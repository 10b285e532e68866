# Derived views under concurrent writers: pgbench clients update, insert and
# delete in two tables while views are created and maintained; once the
# writers stop, every view must equal its query exactly.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('pgbench');
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE TABLE acct (id int PRIMARY KEY, branch int NOT NULL, balance bigint NOT NULL);
CREATE TABLE hist (id bigserial PRIMARY KEY, acct_id int, delta int);
INSERT INTO acct SELECT g, g % 10, 0 FROM generate_series(1, 1000) g;
});

my %views = (
	by_branch => 'SELECT branch, count(*) AS n, sum(balance) AS total, min(balance) AS lo, max(balance) AS hi FROM acct GROUP BY branch',
	rich => 'SELECT id, branch, balance FROM acct WHERE balance > 50',
	hist_join => 'SELECT h.id, a.id AS acct, a.branch, h.delta FROM hist h JOIN acct a ON a.id = h.acct_id',
	hist_sum => 'SELECT a.branch, count(*) AS n, sum(h.delta) AS total FROM hist h JOIN acct a ON a.id = h.acct_id GROUP BY a.branch',
);

my $script = acct_writes_script(1000, $KappaTest::hist_trim);

# writers for 12 seconds; views are created while they run
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '2', '-j', '2', '-T', '12', '-f', $script,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \my $bench_out, '2>', \my $bench_err);
sleep 1;
foreach my $v (sort keys %views)
{
	$node->safe_psql('postgres', "SELECT kappa.create_view('$v', \$\$$views{$v}\$\$)");
	sleep 1;
}
$bench->finish;
is($bench->result(0), 0, 'pgbench ran') or diag($bench_err);
like($bench_out, qr/number of transactions actually processed: [1-9]/, 'writers committed transactions');

view_matches($node, $_, $views{$_}, 'after concurrent writers') foreach sort keys %views;
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.status WHERE kind = 'view' AND state = 'running' AND lag_bytes >= 0}),
	scalar(keys %views), 'status shows every view running');

$node->stop;
done_testing();
