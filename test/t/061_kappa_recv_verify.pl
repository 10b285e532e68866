# kappa_recv: a record damaged or lost in transit is caught by the change
# count and checksum before anything of its transaction is delivered or
# acknowledged, and a crash at each window of the delivery protocol
# (mid-transaction, after the sink's fsync, after the state write, in the
# middle of a rotation) neither loses nor repeats a transaction.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;
use KappaRecvTest;

my $node = kappa_node('kr_verify');
my $dir = PostgreSQL::Test::Utils::tempdir;

$node->safe_psql('postgres', 'CREATE TABLE t (id int PRIMARY KEY, v text)');
my @slots = qw(ref c1 c2 d1 x1 mid sync state state2 rot);
$node->safe_psql('postgres',
	"SELECT pg_create_logical_replication_slot('$_', 'pg_kappa')")
  for @slots;
for my $i (1 .. 6)
{
	$node->safe_psql('postgres', qq{
		BEGIN;
		INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series($i * 10, $i * 10 + 2) g;
		UPDATE t SET v = 'upd' WHERE id = $i * 10 + 1;
		COMMIT;
	});
}
# one transaction larger than kappa_recv's write buffer, so that a crash
# in its middle leaves part of it on disk
$node->safe_psql('postgres',
	"INSERT INTO t SELECT g, repeat('y', 200) FROM generate_series(1000, 2999) g");
my $end = $node->lsn('insert');
my $ref = reference_stream($node, 'ref');
my $refp = parse_units($ref);
is($refp->{bad}, 0, 'reference stream verifies with an independent CRC-32C');
my @ref_units = @{ $refp->{units} };
is(scalar(@ref_units), 7, 'six transactions of four changes and a large one');
my $first_unit = join("\n", @{ $ref_units[0]{lines} }) . "\n";

sub confirmed
{
	my ($slot) = @_;
	return $node->safe_psql('postgres',
		"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$slot'");
}

# --- corruption in transit: change record 6 is in the second transaction

my $before = confirmed('c1');
my ($rc, $out, $err) = kr_run($node, [ '-S', 'c1', '-f', "$dir/c1.jsonl", '-E', $end ],
	KAPPA_RECV_TEST_CORRUPT => 6);
is($rc, 3, 'corrupted record: exit 3');
like($err, qr/checksum mismatch in transaction \d+ committed at [0-9A-F]+\/[0-9A-F]+: computed [0-9a-f]{8} over 4 change records, commit record says [0-9a-f]{8}/,
	'corrupted record: clear message');
is(slurp_file("$dir/c1.jsonl"), $first_unit,
	'only the transaction before the damaged one is in the file');
is(state_position("$dir/c1.jsonl.state"), $ref_units[0]{end_lsn},
	'state file stops before the damaged transaction');
ok(confirmed('c1') le $ref_units[0]{end_lsn} || confirmed('c1') eq $before,
	'damaged transaction not acknowledged');
($rc) = kr_run($node, [ '-S', 'c1', '-f', "$dir/c1.jsonl", '-E', $end ]);
is($rc, 0, 'restart without damage');
compare_streams(read_sink("$dir/c1.jsonl"), $ref, 'after a caught corruption');

# damage in the very first record
($rc, $out, $err) = kr_run($node, [ '-S', 'c2', '-f', "$dir/c2.jsonl", '-E', $end ],
	KAPPA_RECV_TEST_CORRUPT => 1);
is($rc, 3, 'first record corrupted: exit 3');
ok(-z "$dir/c2.jsonl", 'first record corrupted: file stays empty');

# a lost record: the change count catches it
($rc, $out, $err) = kr_run($node, [ '-S', 'd1', '-f', "$dir/d1.jsonl", '-E', $end ],
	KAPPA_RECV_TEST_DROP => 7);
is($rc, 3, 'lost record: exit 3');
like($err, qr/change count mismatch in transaction \d+ .*received 3 change records, commit record says 4/,
	'lost record: clear message');
is(slurp_file("$dir/d1.jsonl"), $first_unit, 'lost record: only whole transactions kept');

# the command sink never sees a damaged transaction
($rc, $out, $err) = kr_run($node, [ '-S', 'x1', '--exec', "cat >> $dir/x1.out",
	'--state-file', "$dir/x1.state", '-E', $end ], KAPPA_RECV_TEST_CORRUPT => 10);
is($rc, 3, 'command sink, corrupted record: exit 3');
is(slurp_file("$dir/x1.out"),
	join('', map { join("\n", @{ $_->{lines} }) . "\n" } @ref_units[ 0 .. 1 ]),
	'command sink got the two transactions before the damaged one, nothing else');
($rc) = kr_run($node, [ '-S', 'x1', '--exec', "cat >> $dir/x1.out",
	'--state-file', "$dir/x1.state", '-E', $end ]);
compare_streams(slurp_file("$dir/x1.out"), $ref, 'command sink after a caught corruption');

# --- a crash at each window of the protocol

# point => [ slot, extra options, what must have happened ]
my @points = (
	[ 'mid-transaction:1500', 'mid', [] ],
	[ 'after-sync:3', 'sync', [] ],
	[ 'after-state:3', 'state', [] ],
	[ 'rotate:2', 'rot', [ '--rotate-size', '1kB' ] ],
);
for my $p (@points)
{
	my ($point, $slot, $extra) = @$p;
	my $file = "$dir/$slot.jsonl";
	($rc, $out, $err) = kr_run($node, [ '-S', $slot, '-f', $file, @$extra, '-E', $end ],
		KAPPA_RECV_TEST_CRASH => $point);
	is($rc, 128 + 9, "crash at $point: killed");
	like($err, qr/test hook: crashing at/, "crash at $point: the hook fired");
	($rc, $out, $err) = kr_run($node, [ '-S', $slot, '-f', $file, @$extra, '-E', $end ]);
	is($rc, 0, "crash at $point: restart reaches --endpos");
	like($err, qr/discarding the last \d+ bytes/, "crash at $point: incomplete tail cut off")
	  if $point =~ /^(mid-transaction|after-sync)/;
	like($err, qr/completing the rotation/, "crash at $point: rotation completed")
	  if $point =~ /^rotate/;
	compare_streams(read_sink($file), $ref, "crash at $point");
}

# After the state write the position was not yet acknowledged: asking the
# server to start from the slot makes it send that transaction again, and
# kappa_recv must drop the repeat itself.
($rc, $out, $err) = kr_run($node, [ '-S', 'state2', '-f', "$dir/state2.jsonl", '-E', $end ],
	KAPPA_RECV_TEST_CRASH => 'after-state:2');
is($rc, 128 + 9, 'crash after the state write: killed');
($rc, $out, $err) = kr_run($node, [ '-S', 'state2', '-f', "$dir/state2.jsonl", '-v', '-E', $end ],
	KAPPA_RECV_TEST_START_FROM_SLOT => 1);
is($rc, 0, 'restart from the slot position');
like($err, qr/starting replication from 0\/0/, 'restart asked for the slot position');
like($err, qr/skipping transaction ending at \Q$ref_units[1]{end_lsn}\E: already consumed/,
	'the repeated transaction was recognised');
compare_streams(read_sink("$dir/state2.jsonl"), $ref, 'repeat dropped by kappa_recv');

# a damaged state file is refused, not guessed around
my $st = slurp_file("$dir/state2.jsonl.state");
(my $bad = $st) =~ s/^offset (\d+)/"offset " . ($1 + 1)/me;
open(my $fh, '>', "$dir/state2.jsonl.state") or die;
print $fh $bad;
close($fh);
($rc, $out, $err) = kr_run($node, [ '-S', 'state2', '-f', "$dir/state2.jsonl", '-E', $end ]);
is($rc, 5, 'damaged state file: exit 5');
like($err, qr/is damaged: its checksum does not match/, 'damaged state file: message');
open($fh, '>', "$dir/state2.jsonl.state") or die;
print $fh $st . "garbage\n";
close($fh);
($rc, $out, $err) = kr_run($node, [ '-S', 'state2', '-f', "$dir/state2.jsonl", '-E', $end ]);
is($rc, 5, 'state file with trailing text: exit 5');
like($err, qr/is damaged: text after its checksum/, 'state file with trailing text: message');

# an output file that exists without a state file is not appended to
($rc, $out, $err) = kr_run($node, [ '-S', 'ref', '-f', "$dir/c1.jsonl", '--state-file',
	"$dir/other.state", '-E', $end ]);
is($rc, 5, 'output without state: exit 5');
like($err, qr/already exists and has no state file/, 'output without state: message');

# a state file of another slot
($rc, $out, $err) = kr_run($node, [ '-S', 'ref', '-f', "$dir/c1.jsonl", '-E', $end ]);
is($rc, 5, 'state of another slot: exit 5');
like($err, qr/belongs to slot "c1", not "ref"/, 'state of another slot: message');

# an output file truncated behind kappa_recv's back
truncate("$dir/c2.jsonl", 0);
($rc) = kr_run($node, [ '-S', 'c2', '-f', "$dir/c2.jsonl", '-E', $end ]);
is($rc, 0, 'c2 consumed');
truncate("$dir/c2.jsonl", 10);
($rc, $out, $err) = kr_run($node, [ '-S', 'c2', '-f', "$dir/c2.jsonl", '-E', $end ]);
is($rc, 5, 'truncated output: exit 5');
like($err, qr/is shorter \(10 bytes\) than the \d+ bytes recorded/, 'truncated output: message');

done_testing();
