# kappa_recv: the server crashes (stop -m immediate) while kappa_recv streams
# and writers commit.  kappa_recv reconnects with backoff and, once writers
# are done, the sink holds every committed transaction exactly once, in
# commit order.  After the crash the slot's confirmed position may go back
# to the last checkpoint; kappa_recv's own start position keeps it from
# receiving (or at worst from writing) anything twice.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use KappaTest;
use KappaRecvTest;

my $node = kappa_node('kr_restart');
my $dir = PostgreSQL::Test::Utils::tempdir;
my $file = "$dir/ev.jsonl";
my $log = "$dir/kappa_recv.log";

create_ev_table($node);
$node->safe_psql('postgres',
	"SELECT pg_create_logical_replication_slot('$_', 'pg_kappa')")
  for qw(krs ref);

my $h = kr_start($node, [ '-S', 'krs', '-f', $file, '-s', '1', '--reconnect-max', '2', '-v' ],
	$log);
# one that is told not to reconnect
$node->safe_psql('postgres',
	"SELECT pg_create_logical_replication_slot('once', 'pg_kappa')");
my $h0 = kr_start($node, [ '-S', 'once', '-f', "$dir/once.jsonl", '--reconnect-max', '0' ],
	"$dir/once.log");

for my $crash (1 .. soak_rounds(2, 5))
{
	# writers are cut off by the crash: their error is expected
	my $writers = start_writers($node, 3, rate => 300);
	usleep(1_000_000 + int(rand(1_000_000)));
	ok(-s $file, "crash $crash: kappa_recv was writing");
	$node->stop('immediate');
	eval { $writers->finish; };
	$node->start;
}

is(kr_wait($h0), 2, '--reconnect-max 0: exit 2 when the connection is lost');

# a last clean batch after the server came back
my $writers = start_writers($node, 1, rate => 300);
ok($writers->finish, 'writers after the crashes');
my $end = $node->lsn('insert');
ok(wait_for_flush($node, 'krs', $end), 'kappa_recv reconnected and caught up');
$h->signal('TERM');
is(kr_wait($h), 0, 'SIGTERM: clean exit');
my $l = slurp_file($log);
like($l, qr/reconnecting in \d+ ms/, 'kappa_recv noticed the lost connection');
unlike($l, qr/error:/, 'no errors, only warnings');

my $ref = reference_stream($node, 'ref');
my $p = compare_streams(read_sink($file), $ref, 'after server crashes');
is_deeply(replay_rows($p, 'ev'), source_rows($node, 'ev'),
	'replaying the sink gives the source table');

done_testing();
