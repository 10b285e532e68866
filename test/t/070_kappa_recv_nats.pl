# kappa_recv --nats against one real nats-server (JetStream, max_payload
# 8 kB): option checks, clear errors with exit codes (server unreachable,
# stream missing, R=3 on a single server, message refused, subject of
# another publisher), --nats-create-stream with its options, one message
# per transaction with its headers, transactions above the max payload
# split into parts, resume from the stream's last message (also with the
# slot sending everything again), -F (units published ahead of their
# PubAcks), crashes between parts, after a PubAck and with units in flight,
# and the server killed and restarted under kappa_recv.  The
# stream is read back with a libnats client (test/nats/kappa_nats_read.c)
# and must equal the server's own decoding of a reference slot.
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

my $node = kappa_node('kr_nats');
my $dir = PostgreSQL::Test::Utils::tempdir;
my ($srv) = nats_start(1, max_payload => 8192);
my $url = nats_url($srv);
my @nats = ('--nats', $url, '--nats-stream', 'KAPPA', '--nats-subject', 'kappa.ev');

create_ev_table($node);
$node->safe_psql('postgres',
	"SELECT pg_create_logical_replication_slot('$_', 'pg_kappa')")
  for qw(kn ref);

sub write_some
{
	my ($n, $big) = @_;
	$node->safe_psql('postgres', qq{
INSERT INTO ev (writer, payload) SELECT 1, md5(i::text) FROM generate_series(1, $n) i;
UPDATE ev SET n = n + 1 WHERE id % 3 = 0;
DELETE FROM ev WHERE id % 7 = 0;
});
	# one transaction of about 45 kB: 7 parts of at most 7 kB
	$node->safe_psql('postgres',
		"INSERT INTO ev (writer, payload) SELECT 2, repeat('y', 300) || i FROM generate_series(1, 100) i")
	  if $big;
}

# the stream must hold exactly what the reference slot decodes
sub stream_matches
{
	my ($name) = @_;
	my $u = nats_units(nats_dump($url, 'KAPPA'));
	is($u->{bad}, 0, "$name: parts, part checksums and headers verify");
	compare_streams($u->{text}, reference_stream($node, 'ref'), $name);
	return $u;
}

# --- options and errors before anything is published

my ($rc, $out, $err) = kr_run($node, [ '-S', 'kn', '--nats', $url ]);
is($rc, 1, '--nats without stream and subject: exit 1');
like($err, qr/--nats requires --nats-stream and --nats-subject/, '... message');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '-f', "$dir/x" ]);
is($rc, 1, '--nats with -f: exit 1');
like($err, qr/--nats cannot be combined with -f/, '... message');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '--nats-replicas', '3' ]);
like($err, qr/apply to --nats-create-stream only/, '--nats-replicas without --nats-create-stream refused');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '--nats-create-stream', '--nats-retention', 'forever' ]);
is($rc, 1, 'bad --nats-retention: exit 1');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', '--nats-stream', 'KAPPA', '-f', "$dir/x" ]);
like($err, qr/--nats-\* options need --nats URL/, '--nats-stream without --nats refused');
($rc, $out) = kr_run($node, ['--help']);
like($out, qr/NATS JETSTREAM.*--nats-create-stream/s, '--help documents the NATS options');

my $closed = PostgreSQL::Test::Cluster::get_free_port();
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', '--nats', "nats://127.0.0.1:$closed",
	'--nats-stream', 'KAPPA', '--nats-subject', 'kappa.ev' ]);
is($rc, 4, 'NATS server unreachable: exit 4');
like($err, qr/could not connect to NATS server "nats:\/\/127.0.0.1:$closed"/, '... message');

($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats ]);
is($rc, 4, 'stream missing: exit 4');
like($err, qr/NATS JetStream stream "KAPPA" does not exist.*hint: .*--nats-create-stream/s,
	'... message and hint');

($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '--nats-create-stream', '--nats-replicas', '3' ]);
is($rc, 4, 'R=3 on a single server: exit 4');
like($err, qr/could not create NATS JetStream stream "KAPPA".*hint: --nats-replicas 3 needs a NATS cluster/s,
	'... message and hint');

# --- first delivery, with the stream created by kappa_recv

write_some(20, 1);
write_some(5, 0);
my $end = $node->lsn('insert');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '--nats-create-stream',
	'--nats-retention', 'limits', '--nats-max-age', '86400', '--nats-max-bytes', '1GB',
	'-E', $end ]);
is($rc, 0, 'first run reaches --endpos');
like($err, qr/created NATS JetStream stream "KAPPA" for subject "kappa.ev"/, 'stream created');
IPC::Run::run([ nats_reader(), $url, 'info', 'KAPPA' ], '>', \$out);
like($out, qr/^replicas 1 retention limits max_age 86400 max_bytes 1073741824 /,
	'stream has the requested replicas, retention and limits');
# the other retention policies, on streams of their own
$node->safe_psql('postgres',
	"SELECT pg_create_logical_replication_slot('kwq', 'pg_kappa')");
for my $ret (qw(workqueue interest))
{
	($rc, $out, $err) = kr_run($node, [ '-S', 'kwq', '--nats', $url, '--nats-stream', "R_$ret",
		'--nats-subject', "ret.$ret", '--nats-create-stream', '--nats-retention', $ret,
		'-E', $node->lsn('insert') ]);
	is($rc, 0, "stream with $ret retention created");
	IPC::Run::run([ nats_reader(), $url, 'info', "R_$ret" ], '>', \$out);
	like($out, qr/^replicas 1 retention $ret max_age 0 max_bytes -1 /, "... and has $ret retention");
}
$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('kwq')");

my $u = stream_matches('first run');
cmp_ok($u->{split}, '>=', 1, 'the large transaction was split into parts');
cmp_ok($u->{messages}, '>', $u->{units}, 'more messages than transactions');

# --- resume: nothing twice, also when the slot sends everything again

write_some(10, 0);
$end = $node->lsn('insert');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '-v', '-E', $end ]);
is($rc, 0, 'second run');
like($err, qr/holds everything up to the transaction committed at/, 'resumes after the last message');
stream_matches('after resume');

write_some(3, 0);
$end = $node->lsn('insert');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '-E', $end ],
	KAPPA_RECV_TEST_START_FROM_SLOT => 1);
is($rc, 0, 'run that asks for the slot position');
stream_matches('slot position asked for');

# --- -F: units published ahead of their PubAcks, acknowledged in groups

write_some(30, 1);
write_some(30, 0);
$end = $node->lsn('insert');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '-F', '200', '-E', $end ]);
is($rc, 0, 'run with -F 200');
stream_matches('with -F');

write_some(30, 0);
write_some(30, 1);
write_some(30, 0);
$end = $node->lsn('insert');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '-F', '5000', '-E', $end ],
	KAPPA_RECV_TEST_CRASH => 'nats-after-publish-ahead:5');
is($rc, 137, '-F: killed with units published ahead of their PubAcks');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '-F', '200', '-E', $end ]);
is($rc, 0, '-F: run after the crash');
stream_matches('with -F, after a crash with units in flight');

# --- crashes: between the parts of a transaction, and after a PubAck

write_some(2, 1);
write_some(2, 0);
$end = $node->lsn('insert');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '-E', $end ],
	KAPPA_RECV_TEST_CRASH => 'nats-between-parts:3');
is($rc, 137, 'killed between the parts of a transaction');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '-E', $end ]);
is($rc, 0, 'run after the crash between parts');
like($err, qr/holds \d+ of the \d+ parts of the transaction committed at .*publishing the rest/,
	'only the missing parts are published');
stream_matches('after a crash between parts');

write_some(4, 0);
$end = $node->lsn('insert');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '-E', $end ],
	KAPPA_RECV_TEST_CRASH => 'nats-after-puback:2');
is($rc, 137, 'killed after a PubAck, before the slot was acknowledged');
($rc, $out, $err) = kr_run($node, [ '-S', 'kn', @nats, '-E', $end ]);
is($rc, 0, 'run after the crash after a PubAck');
stream_matches('after a crash after a PubAck');

# --- the NATS server killed and restarted while kappa_recv publishes

my $log = "$dir/kr.log";
my $h = kr_start($node, [ '-S', 'kn', @nats, '-s', '1', '--nats-timeout', '1000', '-F', '100' ], $log);
write_some(5, 0);
usleep(300_000);
ok(nats_kill9($srv), 'nats-server killed while kappa_recv runs');
write_some(5, 1);
write_some(5, 0);
usleep(1_500_000);
nats_restart($srv);
write_some(5, 0);
$end = $node->lsn('insert');
ok(wait_for_flush($node, 'kn', $end), 'kappa_recv acknowledges everything after the restart');
$h->signal('TERM');
is(kr_wait($h), 0, 'SIGTERM: exit 0');
like(slurp_file($log), qr/(could not publish part|publishing ahead to NATS JetStream stream "KAPPA" stopped)/,
	'publishing was retried while the server was down');
stream_matches('after the server was killed');

# --- refusals and foreign messages

$node->safe_psql('postgres',
	"SELECT pg_create_logical_replication_slot('kn2', 'pg_kappa')");
IPC::Run::run([ nats_reader(), $url, 'create', 'OTHER', 'other.ev', 0 ], '>', \$out);
write_some(1, 0);
($rc, $out, $err) = kr_run($node, [ '-S', 'kn2', '--nats', $url,
	'--nats-stream', 'KAPPA', '--nats-subject', 'other.ev' ]);
is($rc, 4, 'subject stored by another stream: exit 4');
like($err, qr/NATS JetStream stream "KAPPA" refused part 1 of 1/, '... message');

IPC::Run::run([ nats_reader(), $url, 'publish', 'other.ev', 'not kappa' ], '>', \$out);
($rc, $out, $err) = kr_run($node, [ '-S', 'kn2', '--nats', $url,
	'--nats-stream', 'OTHER', '--nats-subject', 'other.ev' ]);
is($rc, 5, 'last message of the subject not published by kappa_recv: exit 5');
like($err, qr/was not published by kappa_recv/, '... message');

($rc, $out, $err) = kr_run($node, [ '-S', 'kn2', @nats ]);
is($rc, 5, 'subject of another slot: exit 5');
like($err, qr/subject "kappa.ev" of NATS JetStream stream "KAPPA" belongs to slot "kn", not "kn2"/,
	'... message');

done_testing();
