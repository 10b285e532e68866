# The commit records' checksums, recomputed independently: a pure-Perl
# CRC-32C (Castagnoli, reflected, polynomial 0x82F63B78, initial and final
# xor 0xFFFFFFFF) over each change line followed by "\n", as the README
# documents, for ordinary, spilled and streamed transactions, through the
# SQL functions and through pg_recvlogical.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KappaTest;

my @crc_table;
foreach my $i (0 .. 255)
{
	my $c = $i;
	$c = ($c & 1) ? (($c >> 1) ^ 0x82F63B78) : ($c >> 1) for 1 .. 8;
	$crc_table[$i] = $c;
}

# CRC-32C state update over the bytes of $data (a byte string)
sub crc_update
{
	my ($crc, $data) = @_;
	$crc = $crc_table[ ($crc ^ $_) & 0xff ] ^ ($crc >> 8) foreach unpack('C*', $data);
	return $crc;
}
sub crc32c { return sprintf('%08x', crc_update(0xffffffff, $_[0]) ^ 0xffffffff); }

is(crc32c('123456789'), 'e3069283', 'CRC-32C check value');
is(crc32c(''), '00000000', 'CRC-32C of nothing');

my %change_kind = map { $_ => 1 } qw(insert update delete truncate);

# Recompute every transaction's checksum and change count in $text (lines
# as received): returns the number of transactions checked and the number
# that did not match.
sub recompute
{
	my ($text, $what) = @_;
	my @lines = split /\n/, $text;
	my @objs = decode_lines($text, $what);
	my ($crc, $n, $checked, $bad) = (undef, 0, 0, 0);
	my %stream;    # xid => [crc, n]
	my $block;
	foreach my $i (0 .. $#objs)
	{
		my ($o, $line) = ($objs[$i], $lines[$i]);
		my $k = $o->{kind};
		my $is_change = $change_kind{$k} || ($k eq 'message' && $o->{transactional});
		if ($k eq 'begin' || $k eq 'begin_prepare')
		{
			($crc, $n) = (0xffffffff, 0);
		}
		elsif ($k eq 'stream_start')
		{
			$block = $o->{xid};
			$stream{$block} = [ 0xffffffff, 0 ] if $o->{first};
		}
		elsif ($k eq 'stream_stop')
		{
			undef $block;
		}
		elsif ($k eq 'stream_abort')
		{
			delete $stream{ $o->{xid} } if $o->{xid} == $o->{subxid};
		}
		elsif ($is_change && defined $block)
		{
			$stream{$block}[0] = crc_update($stream{$block}[0], "$line\n");
			$stream{$block}[1]++;
		}
		elsif ($is_change && defined $crc)
		{
			$crc = crc_update($crc, "$line\n");
			$n++;
		}
		elsif ($k eq 'commit' || $k eq 'prepare')
		{
			my $sum = sprintf('%08x', $crc ^ 0xffffffff);
			if ($sum ne $o->{checksum} || $n != $o->{changes})
			{
				note("$what: $line: computed $sum over $n changes");
				$bad++;
			}
			$checked++;
			undef $crc;
		}
		elsif ($k eq 'stream_commit' || $k eq 'stream_prepare')
		{
			my ($c, $sn) = @{ delete $stream{ $o->{xid} } // [ 0xffffffff, 0 ] };
			my $sum = sprintf('%08x', $c ^ 0xffffffff);
			if ($sum ne $o->{checksum} || $sn != $o->{changes})
			{
				note("$what: $line: computed $sum over $sn changes");
				$bad++;
			}
			$checked++;
		}
	}
	return ($checked, $bad);
}

sub verify
{
	my ($text, $what) = @_;
	my ($checked, $bad) = recompute($text, $what);
	is($bad, 0, "$what: every checksum and change count matches ($checked transactions)");
	return $checked;
}

my $node = kappa_node('crc');
$node->safe_psql('postgres', q{
	SELECT 'init' FROM pg_create_logical_replication_slot('c_sql', 'pg_kappa');
	SELECT 'init' FROM pg_create_logical_replication_slot('c_stream', 'pg_kappa');
	SELECT 'init' FROM pg_create_logical_replication_slot('c_recv', 'pg_kappa');
});
$node->safe_psql('postgres', q{
	CREATE TABLE c (id int PRIMARY KEY, t text, j jsonb, b bytea);
	INSERT INTO c VALUES (1, 'plain', '{"a": [1, "x"]}', '\x00');
	INSERT INTO c VALUES (2, E'ctl \x01\t\n "q" \\ é ✓ 𝄞', 'null', NULL);
	UPDATE c SET t = 'u' WHERE id = 1;
	DELETE FROM c WHERE id = 2;
	BEGIN;
	INSERT INTO c SELECT g, md5(g::text) FROM generate_series(10, 4009) g;
	SAVEPOINT s;
	UPDATE c SET t = 'rolled back' WHERE id < 1000;
	ROLLBACK TO SAVEPOINT s;
	SELECT 'm' FROM pg_logical_emit_message(true, 'p', E'line\nbreak');
	DELETE FROM c WHERE id BETWEEN 10 AND 500;
	COMMIT;
	SELECT 'm' FROM pg_logical_emit_message(false, 'p', 'not counted');
	BEGIN;
	INSERT INTO c VALUES (5000, 'with a truncate');
	TRUNCATE c;
	INSERT INTO c VALUES (5001, 'after');
	COMMIT;
	BEGIN;
	INSERT INTO c SELECT g, 'big' FROM generate_series(6000, 8999) g;
	SAVEPOINT s;
	INSERT INTO c SELECT g, 'sub, rolled back' FROM generate_series(10000, 12999) g;
	ROLLBACK TO SAVEPOINT s;
	INSERT INTO c VALUES (20000, 'last');
	COMMIT;
});

my $sql = $node->safe_psql('postgres',
	q{SELECT data FROM pg_logical_slot_get_changes('c_sql', NULL, NULL)});
ok(verify($sql, 'SQL, not streamed') >= 6, 'all transactions checked');
my $streamed = $node->safe_psql('postgres',
	q{SELECT data FROM pg_logical_slot_get_changes('c_stream', NULL, NULL, 'streaming', 'on', 'include-types', 'on')});
like($streamed, qr/"kind":"stream_commit"/, 'some transactions were streamed');
like($streamed, qr/"kind":"stream_abort"/, 'with a rolled-back subtransaction');
verify($streamed, 'SQL, streamed');

my $end = $node->safe_psql('postgres', 'SELECT pg_current_wal_flush_lsn()');
my ($out, $err) = ('', '');
IPC::Run::run(
	[ 'pg_recvlogical', '-d', $node->connstr('postgres'), '-S', 'c_recv', '--start',
	  '--no-loop', '--endpos', $end, '-f', '-', '-o', 'streaming=on' ],
	'>', \$out, '2>', \$err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
is($? >> 8, 0, 'pg_recvlogical ran') or diag($err);
verify($out, 'pg_recvlogical, streamed');

# a checksum that is wrong is noticed: change one byte of one change line
(my $tampered = $sql) =~ s/"plain"/"plaim"/;
my ($checked, $bad) = recompute($tampered, 'tampered');
is($bad, 1, 'a changed byte breaks that transaction\'s checksum');

$node->stop;
done_testing();
