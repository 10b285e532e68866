# kappa_recv: kill -9 at random moments while writers run.  After a final
# restart the sink must hold every committed transaction exactly once, in
# commit order: it must equal the server's own decoding of a reference slot
# created at the same point, and replaying its changes must give the source
# table.  Rounds alternate fsync per transaction and group fsync, and rotate
# the file by size so crashes also land inside rotations.
#
# 3 rounds normally, 20 with KAPPA_SOAK=1.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use KappaTest;
use KappaRecvTest;

my $rounds = soak_rounds(3, 20);
my $node = kappa_node('kr_kill9');
my $dir = PostgreSQL::Test::Utils::tempdir;
my $file = "$dir/ev.jsonl";
my $log = "$dir/kappa_recv.log";

create_ev_table($node);
$node->safe_psql('postgres',
	"SELECT pg_create_logical_replication_slot('$_', 'pg_kappa')")
  for qw(krs ref);

# writers run through every round
my $writers = start_writers($node, int($rounds * 1.2) + 2, rate => 300);

my $killed = 0;
for my $round (1 .. $rounds)
{
	my @opts = ('-S', 'krs', '-f', $file, '--rotate-size', '64kB', '-s', '1');
	push @opts, '-F', '30' if $round % 2 == 0;
	my $h = kr_start($node, \@opts, $log);
	# let it run between 0.2 and 1.2 s, then kill it without warning
	usleep(200_000 + int(rand(1_000_000)));
	$killed++ if kr_kill9($h);
}
is($killed, $rounds, "kappa_recv was running when each of the $rounds kill -9 came");

ok($writers->finish, 'writers finished without errors');
my $end = $node->lsn('insert');
my ($rc, $out, $err) = kr_run($node, [ '-S', 'krs', '-f', $file, '--rotate-size', '64kB',
	'-F', '50', '-E', $end ]);
is($rc, 0, 'final run reaches the end of the stream');

my $ref = reference_stream($node, 'ref');
my $p = compare_streams(read_sink($file), $ref, "after $rounds kill -9");
cmp_ok(scalar(@{ $p->{units} }), '>', 50, 'writers committed enough transactions to matter');
is_deeply(replay_rows($p, 'ev'), source_rows($node, 'ev'),
	'replaying the sink gives the source table');
unlike(slurp_file($log), qr/error:/, 'no errors while being killed');

done_testing();
