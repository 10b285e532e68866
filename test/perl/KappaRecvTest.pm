# KappaRecvTest.pm
#
# Helpers for the kappa_recv TAP tests (test/t/06x_*.pl): running
# kappa_recv in the foreground or background, a writer workload (pgbench),
# reading back what a sink holds (rotated segments included), checking
# every transaction's change count and CRC-32C independently of kappa_recv,
# and comparing a sink with the server's own decoding of a reference slot
# and with the source table.
#
# It knows the test schema "ev" used by the workload helpers, and nothing
# about any single test's expectations.

package KappaRecvTest;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use JSON::PP;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(crc32c kr_cmd kr_run kr_start kr_kill9 kr_wait
  read_sink parse_units compare_streams reference_stream
  replay_rows source_rows create_ev_table ev_script start_writers
  wait_for_flush wait_for_match state_position soak_rounds);

my $json = JSON::PP->new->canonical;

# CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as pg_crc32c.
my @crc_table;
for my $i (0 .. 255)
{
	my $c = $i;
	for (1 .. 8)
	{
		$c = ($c & 1) ? (($c >> 1) ^ 0x82F63B78) : ($c >> 1);
	}
	$crc_table[$i] = $c;
}

# crc32c($bytes [, $running]) : $running is the value of an earlier call
sub crc32c
{
	my ($s, $crc) = @_;
	$crc = defined $crc ? ($crc ^ 0xFFFFFFFF) : 0xFFFFFFFF;
	for my $b (unpack('C*', $s))
	{
		$crc = $crc_table[($crc ^ $b) & 0xFF] ^ ($crc >> 8);
	}
	return $crc ^ 0xFFFFFFFF;
}

# Rounds for crash loops: small in make check, many with KAPPA_SOAK=1.
sub soak_rounds
{
	my ($normal, $soak) = @_;
	return $ENV{KAPPA_SOAK} ? $soak : $normal;
}

sub kr_cmd
{
	my ($node, @args) = @_;
	return ('kappa_recv', '-d', $node->connstr('postgres'), @args);
}

# Run kappa_recv to completion: returns (exit code, stdout, stderr).  %env
# is added to the environment.  A signal death is returned as 128 + signo.
sub kr_run
{
	my ($node, $args, %env) = @_;
	my ($out, $err) = ('', '');
	local %ENV = (%ENV, %env);
	my $h = IPC::Run::start([ kr_cmd($node, @$args) ],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$h->finish;
	my $res = $h->full_result(0);
	my $rc = ($res & 127) ? 128 + ($res & 127) : $res >> 8;
	note("kappa_recv @$args => $rc\n$err") if $err ne '';
	return ($rc, $out, $err);
}

# Start kappa_recv in the background; stderr goes to $log (appended).
sub kr_start
{
	my ($node, $args, $log, %env) = @_;
	local %ENV = (%ENV, %env);
	my $h = IPC::Run::start([ kr_cmd($node, @$args) ],
		'<', \undef, '>>', $log, '2>>', $log);
	return $h;
}

# kill -9 a background kappa_recv; returns true when it was still running.
sub kr_kill9
{
	my ($h) = @_;
	my $running = $h->pumpable;
	$h->signal('KILL') if $running;
	eval { $h->finish; };
	return $running;
}

# Wait for a background kappa_recv (after a signal); returns its exit code.
sub kr_wait
{
	my ($h) = @_;
	my $t = IPC::Run::timer($PostgreSQL::Test::Utils::timeout_default);
	$t->start;
	while ($h->pumpable && !$t->is_expired)
	{
		usleep(50_000);
		$h->pump_nb;
	}
	eval { $h->finish; };
	my $res = $h->full_result(0);
	return ($res & 127) ? 128 + ($res & 127) : $res >> 8;
}

# Everything a file sink holds: FILE.000001, FILE.000002, ..., then FILE.
sub read_sink
{
	my ($path) = @_;
	my $dir = $path =~ m{^(.*)/[^/]*$} ? $1 : '.';
	my $base = $path =~ m{([^/]*)$} ? $1 : $path;
	opendir(my $dh, $dir) or die "cannot open $dir: $!";
	my @segs = sort grep { /^\Q$base\E\.\d{6}$/ } readdir($dh);
	closedir($dh);
	my $text = '';
	$text .= slurp_file("$dir/$_") for @segs;
	$text .= slurp_file($path) if -f $path;
	return $text;
}

# Group a JSON-lines stream into units and check each transaction against
# its commit record, with our own CRC-32C.  Returns a hash:
#   units   => [ { xid, commit_lsn, end_lsn, kind, lines => [...] } ]
#   bad     => number of failures (each reported with diag)
#   changes => total change records
sub parse_units
{
	my ($text) = @_;
	my (@units, $cur, $crc);
	my $bad = 0;
	my $changes = 0;
	foreach my $line (split /\n/, $text)
	{
		my $obj = eval { $json->decode($line) };
		if (!defined $obj || ref($obj) ne 'HASH' || !defined $obj->{kind})
		{
			diag("not a pg_kappa record: $line");
			$bad++;
			next;
		}
		my $k = $obj->{kind};
		if ($k eq 'begin' || $k eq 'begin_prepare')
		{
			if ($cur)
			{
				diag("begin inside an open transaction: $line");
				$bad++;
			}
			$cur = { kind => 'txn', xid => $obj->{xid}, lines => [$line], n => 0 };
			$crc = undef;
		}
		elsif ($k eq 'commit' || $k eq 'prepare')
		{
			if (!$cur)
			{
				diag("commit without begin: $line");
				$bad++;
				next;
			}
			push @{ $cur->{lines} }, $line;
			my $sum = sprintf('%08x', defined $crc ? $crc : crc32c(''));
			if ($cur->{n} != $obj->{changes} || $sum ne $obj->{checksum})
			{
				diag("transaction $obj->{xid}: $cur->{n} changes, checksum $sum; "
					  . "commit record says $obj->{changes}, $obj->{checksum}");
				$bad++;
			}
			$cur->{commit_lsn} = $obj->{lsn};
			$cur->{end_lsn} = $obj->{end_lsn};
			push @units, $cur;
			undef $cur;
		}
		elsif ($cur)
		{
			push @{ $cur->{lines} }, $line;
			push @{ $cur->{objs} }, $obj;
			$crc = crc32c("$line\n", $crc);
			$cur->{n}++;
			$changes++;
		}
		else
		{
			push @units, { kind => 'single', lines => [$line], objs => [$obj],
				commit_lsn => $obj->{lsn} };
		}
	}
	if ($cur)
	{
		diag("stream ends inside transaction $cur->{xid}");
		$bad++;
	}
	return { units => \@units, bad => $bad, changes => $changes };
}

sub lsn_num
{
	my ($lsn) = @_;
	my ($hi, $lo) = split m{/}, $lsn;
	return hex($hi) * 2**32 + hex($lo);
}

# Compare a sink's text with the expected stream, line by line, and check
# exactly-once properties that hold on their own: no xid twice, commit LSNs
# strictly increasing, every checksum right.
sub compare_streams
{
	my ($got, $want, $name) = @_;
	my @g = split /\n/, $got;
	my @w = split /\n/, $want;
	my $first;
	for my $i (0 .. ($#g > $#w ? $#g : $#w))
	{
		if (!defined $g[$i] || !defined $w[$i] || $g[$i] ne $w[$i])
		{
			$first = $i;
			last;
		}
	}
	ok(!defined $first && @g == @w,
		"$name: sink holds the reference stream (" . scalar(@w) . " lines)")
	  or diag("first difference at line " . ($first // 'end') . ":\n  got:  "
		  . ($g[$first] // '(end)') . "\n  want: " . ($w[$first] // '(end)')
		  . "\n  got " . scalar(@g) . " lines, want " . scalar(@w));

	my $p = parse_units($got);
	is($p->{bad}, 0, "$name: every transaction's count and checksum verify");
	my (%seen, $dups, $order);
	my $last = -1;
	for my $u (@{ $p->{units} })
	{
		next unless $u->{kind} eq 'txn';
		$dups++ if defined $u->{xid} && $seen{ $u->{xid} }++;
		my $l = lsn_num($u->{commit_lsn});
		$order++ if $l <= $last;
		$last = $l;
	}
	is($dups // 0, 0, "$name: no transaction delivered twice");
	is($order // 0, 0, "$name: transactions in commit order");
	return $p;
}

# The server's own decoding of a reference slot (peek: repeatable).
sub reference_stream
{
	my ($node, $slot, @opts) = @_;
	my $o = join('', map { ", '$_'" } @opts);
	my $text = $node->safe_psql('postgres',
		"SELECT data FROM pg_logical_slot_peek_changes('$slot', NULL, NULL$o)");
	return $text eq '' ? '' : "$text\n";
}

# Apply the change records of a stream to a hash id => "writer|n|payload".
sub replay_rows
{
	my ($parsed, $table) = @_;
	my %rows;
	for my $u (@{ $parsed->{units} })
	{
		for my $o (@{ $u->{objs} // [] })
		{
			next unless defined $o->{table} && $o->{table} eq $table;
			my $k = $o->{kind};
			if ($k eq 'insert' || $k eq 'update')
			{
				my $n = $o->{new};
				delete $rows{ $o->{old}{id} } if $o->{old} && defined $o->{old}{id};
				$rows{ $n->{id} } = join('|', $n->{writer}, $n->{n}, $n->{payload} // '');
			}
			elsif ($k eq 'delete')
			{
				delete $rows{ $o->{old}{id} };
			}
		}
	}
	return \%rows;
}

sub source_rows
{
	my ($node, $table) = @_;
	my %rows;
	my $out = $node->safe_psql('postgres',
		"SELECT id, writer, n, coalesce(payload, '') FROM $table ORDER BY id");
	for my $l (split /\n/, $out)
	{
		my ($id, @rest) = split /\|/, $l, 4;
		$rows{$id} = join('|', @rest);
	}
	return \%rows;
}

sub create_ev_table
{
	my ($node) = @_;
	$node->safe_psql('postgres',
		"CREATE TABLE ev (id bigserial PRIMARY KEY, writer int NOT NULL, "
		  . "n int NOT NULL DEFAULT 0, payload text)");
}

# A pgbench script: transactions of 1..8 inserts, an update and sometimes a
# delete, so the stream has every change kind and transactions of many sizes.
sub ev_script
{
	my ($dir) = @_;
	my $f = "$dir/ev_writer.sql";
	open(my $fh, '>', $f) or die "cannot write $f: $!";
	print $fh <<'SQL';
\set k random(1, 8)
\set d random(1, 10)
BEGIN;
INSERT INTO ev (writer, payload) SELECT :client_id, md5(random()::text) || repeat('x', (random() * 100)::int) FROM generate_series(1, :k);
UPDATE ev SET n = n + 1 WHERE id = (SELECT max(id) FROM ev WHERE writer = :client_id);
DELETE FROM ev WHERE :d = 1 AND id = (SELECT min(id) FROM ev WHERE writer = :client_id);
COMMIT;
SQL
	close($fh);
	return $f;
}

# Start pgbench writers in the background for $secs seconds at about $rate
# transactions per second in total.  Returns the harness.
sub start_writers
{
	my ($node, $secs, %o) = @_;
	my $script = ev_script($PostgreSQL::Test::Utils::tmp_check);
	my ($out, $err) = ('', '');
	my @cmd = ('pgbench', '-n', '-h', $node->host, '-p', $node->port,
		'-c', $o{clients} // 2, '-j', 1, '-T', $secs, '-f', $script);
	push @cmd, '-R', $o{rate} if $o{rate};
	push @cmd, 'postgres';
	return IPC::Run::start(\@cmd, '<', \undef, '>', \$out, '2>', \$err);
}

# Wait until the slot's confirmed flush position reaches $lsn.
sub wait_for_flush
{
	my ($node, $slot, $lsn) = @_;
	return $node->poll_query_until('postgres',
		"SELECT confirmed_flush_lsn >= '$lsn' FROM pg_replication_slots "
		  . "WHERE slot_name = '$slot'");
}

# Wait until a file (a log) matches $re; false after the default timeout.
sub wait_for_match
{
	my ($file, $re) = @_;
	my $t = IPC::Run::timer($PostgreSQL::Test::Utils::timeout_default);
	$t->start;
	while (!$t->is_expired)
	{
		return 1 if -f $file && slurp_file($file) =~ $re;
		usleep(100_000);
	}
	return 0;
}

# The position recorded in a kappa_recv state file.
sub state_position
{
	my ($path) = @_;
	return undef unless -f $path;
	my $t = slurp_file($path);
	return $t =~ /^position (\S+)$/m ? $1 : undef;
}

1;
