# kappa_recv --nats into a three-server NATS cluster and a stream with three
# replicas, while pgbench writes (small transactions, and transactions
# above the 8 kB max payload that go out in parts): kill -9 of kappa_recv
# at random moments (some inside a transaction's parts, through the crash
# hook), and kill -9 of a random NATS server, restarted a moment later,
# while kappa_recv runs.  Afterwards the stream, read back by a libnats
# client, holds every committed transaction exactly once, in commit order,
# each part verified by its CRC-32C, equal to the server's own decoding of
# a reference slot; replaying it gives the source table.
#
# 4 rounds normally, 12 with KAPPA_SOAK=1.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use KappaTest;
use KappaRecvTest;
use KappaNatsTest;

my $why = nats_skip_reason();
plan skip_all => $why if defined $why;

my $rounds = soak_rounds(4, 12);
my $node = kappa_node('kr_nats_cluster');
my $dir = PostgreSQL::Test::Utils::tempdir;
my $log = "$dir/kappa_recv.log";
my @srv = nats_start(3, max_payload => 8192);
my $url = nats_url(@srv);
my @nats = ('--nats', $url, '--nats-stream', 'KAPPA', '--nats-subject', 'kappa.ev',
	'--nats-timeout', '1000', '--reconnect-max', '2');

create_ev_table($node);
$node->safe_psql('postgres',
	"SELECT pg_create_logical_replication_slot('$_', 'pg_kappa')")
  for qw(kc ref);

# the stream, created by kappa_recv with three replicas
my ($rc, $out, $err) = kr_run($node, [ '-S', 'kc', @nats, '--nats-create-stream',
	'--nats-replicas', '3', '-E', $node->lsn('insert') ]);
is($rc, 0, 'stream created on the cluster');
IPC::Run::run([ nats_reader(), $url, 'info', 'KAPPA' ], '>', \$out);
like($out, qr/^replicas 3 /, 'the stream has three replicas');

# writers through every round: pgbench's mix, and large transactions
my $secs = int($rounds * 2.2) + 2;
my $writers = start_writers($node, $secs, rate => 150);
my $big = "$dir/big.sql";
open(my $fh, '>', $big) or die;
print $fh "INSERT INTO ev (writer, payload) SELECT 99, repeat('z', 300) || i FROM generate_series(1, 60) i;\n";
close($fh);
my ($bo, $be) = ('', '');
my $bigw = IPC::Run::start([ 'pgbench', '-n', '-h', $node->host, '-p', $node->port,
	'-c', 1, '-T', $secs, '-R', 4, '-f', $big, 'postgres' ], '<', \undef, '>', \$bo, '2>', \$be);

my ($killed, $nats_killed) = (0, 0);
for my $round (1 .. $rounds)
{
	my %env;
	# every third round dies inside a transaction's parts
	$env{KAPPA_RECV_TEST_CRASH} = 'nats-between-parts:' . (1 + int(rand(4)))
	  if $round % 3 == 0;
	$env{KAPPA_RECV_TEST_CRASH} = 'nats-after-publish-ahead:' . (1 + int(rand(50)))
	  if $round % 4 == 1;
	# odd rounds publish ahead of the PubAcks (-F), even ones wait for each
	my @f = $round % 2 ? ('-F', '50') : ();
	my $h = kr_start($node, [ '-S', 'kc', @nats, '-s', '1', @f ], $log, %env);
	usleep(200_000 + int(rand(800_000)));
	if ($round % 2 == 0)
	{
		# a NATS server dies while kappa_recv publishes, comes back later:
		# the stream's leader every fourth round, else a random one
		my $victim = $srv[ int(rand(3)) ];
		if ($round % 4 == 0)
		{
			my ($o, $e) = ('', '');
			IPC::Run::run([ nats_reader(), $url, 'info', 'KAPPA' ], '>', \$o, '2>', \$e);
			($victim) = grep { $o =~ /leader $_->{name}$/m } @srv if $o =~ /leader (\S+)/;
			$victim //= $srv[0];
		}
		$nats_killed++ if nats_kill9($victim);
		note("round $round: killed NATS server $victim->{name}");
		usleep(800_000 + int(rand(1_500_000)));
		kr_kill9($h);
		nats_restart($victim);
	}
	else
	{
		kr_kill9($h);
	}
	$killed++;
}
is($nats_killed, int($rounds / 2), 'a NATS server was running when each of its kill -9 came');

ok($writers->finish, 'writers finished without errors');
ok($bigw->finish, 'large-transaction writer finished') or diag($be);
my $end = $node->lsn('insert');
# the cluster elects its leaders again after the last restart: until then
# JetStream answers "temporarily unavailable", and kappa_recv gives up at
# start (exit 4), as it should; wait for the stream to have a leader
for (my $i = 0; $i < 120; $i++)
{
	my ($o, $e) = ('', '');
	IPC::Run::run([ nats_reader(), $url, 'info', 'KAPPA' ], '>', \$o, '2>', \$e);
	last if $o =~ /leader \S+/;
	usleep(500_000);
}
($rc, $out, $err) = kr_run($node, [ '-S', 'kc', @nats, '-E', $end ]);
is($rc, 0, 'final run reaches the end of the stream');

my $u = nats_units(nats_dump($url, 'KAPPA'));
is($u->{bad}, 0, 'every part in place, its checksum and headers right');
cmp_ok($u->{split}, '>', 3, 'large transactions were split into parts');
my $p = compare_streams($u->{text}, reference_stream($node, 'ref'),
	"after $killed kill -9 of kappa_recv and $nats_killed of a NATS server");
cmp_ok(scalar(@{ $p->{units} }), '>', 100, 'writers committed enough transactions to matter');
is_deeply(replay_rows($p, 'ev'), source_rows($node, 'ev'),
	'replaying the stream gives the source table');
unlike(slurp_file($log), qr/error:/, 'no errors while being killed');
note("kappa_recv log:\n" . join("\n", grep { !/test hook/ } split /\n/, slurp_file($log)));

done_testing();
