# KappaNatsTest.pm
#
# Helpers for the kappa_recv --nats TAP tests (test/t/07x_*.pl): whether
# the tests can run here (nats-server, libnats, a kappa_recv built with
# NATS), real nats-server processes (one server or a cluster, JetStream
# enabled, listening on 127.0.0.1 only, stores under the test's directory),
# kill -9 and restart of a server, and reading a stream back with
# test/nats/kappa_nats_read.c, a libnats client built here: every message
# with its headers, parts checked by their own CRC-32C, reassembled into
# the JSON-lines text a file sink would hold, headers checked against the
# commit records.
#
# It knows nothing about any single test's expectations.

package KappaNatsTest;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use JSON::PP;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaRecvTest qw(crc32c);

our @EXPORT = qw(nats_skip_reason nats_start nats_url nats_kill9 nats_restart
  nats_reader nats_dump nats_units nats_stop_all);

my @servers;    # every server started, for the END block
my $reader;

# Why the NATS tests cannot run here, or undef when they can.
sub nats_skip_reason
{
	return 'nats-server is not installed (Debian package nats-server)'
	  unless grep { -x "$_/nats-server" } split /:/, $ENV{PATH} . ':/usr/sbin:/usr/bin';
	return 'libnats is not installed (Debian package libnats-dev)'
	  unless -f '/usr/include/nats/nats.h';
	my ($out, $err) = ('', '');
	# options are checked before any connection is tried
	IPC::Run::run([ 'kappa_recv', '-d', 'host=/nonexistent dbname=x', '-S', 's',
		'--nats', 'nats://127.0.0.1:1', '--nats-stream', 'x', '--nats-subject', 'y' ],
		'>', \$out, '2>', \$err);
	return 'this kappa_recv was built without NATS support' if $err =~ /no NATS support/;
	return 'could not build test/nats/kappa_nats_read.c with libnats'
	  unless defined nats_reader();
	return undef;
}

# Build the reader once; returns its path, or undef.
sub nats_reader
{
	return $reader if defined $reader;
	my $exe = "$PostgreSQL::Test::Utils::tmp_check/kappa_nats_read";
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'cc', '-O1', '-o', $exe, 'test/nats/kappa_nats_read.c', '-lnats' ],
		'>', \$out, '2>', \$err);
	if ($? != 0)
	{
		diag("building kappa_nats_read failed: $err");
		return undef;
	}
	$reader = $exe;
	return $reader;
}

sub write_conf
{
	my ($s, $all, %o) = @_;
	my $conf = "server_name: $s->{name}\n"
	  . "listen: 127.0.0.1:$s->{port}\n"
	  . "jetstream { store_dir: \"$s->{dir}\" }\n";
	$conf .= "max_payload: $o{max_payload}\n" if $o{max_payload};
	if (@$all > 1)
	{
		my @routes = map { "nats-route://127.0.0.1:$_->{cport}" }
		  grep { $_ != $s } @$all;
		$conf .= "cluster {\n  name: kappa\n  listen: 127.0.0.1:$s->{cport}\n"
		  . "  routes: [ " . join(', ', @routes) . " ]\n}\n";
	}
	open(my $fh, '>', $s->{conf}) or die "cannot write $s->{conf}: $!";
	print $fh $conf;
	close($fh);
}

sub run_server
{
	my ($s) = @_;
	$s->{h} = IPC::Run::start([ 'nats-server', '-c', $s->{conf} ],
		'<', \undef, '>>', $s->{log}, '2>>', $s->{log});
}

# Start $n servers (a cluster when $n > 1) and wait until JetStream answers.
# Options: max_payload => bytes.  Returns the list of servers.
sub nats_start
{
	my ($n, %o) = @_;
	my $base = PostgreSQL::Test::Utils::tempdir('nats');
	my @set;
	for my $i (1 .. $n)
	{
		push @set, {
			name => "n$i",
			port => PostgreSQL::Test::Cluster::get_free_port(),
			cport => PostgreSQL::Test::Cluster::get_free_port(),
			dir => "$base/n$i",
			conf => "$base/n$i.conf",
			log => "$base/n$i.log" };
	}
	write_conf($_, \@set, %o) for @set;
	run_server($_) for @set;
	push @servers, @set;
	my $url = nats_url(@set);
	my ($out, $err) = ('', '');
	IPC::Run::run([ nats_reader(), $url, 'wait', 60 ], '>', \$out, '2>', \$err);
	die "NATS JetStream did not become ready: $err" if $? != 0;
	return @set;
}

sub nats_url
{
	return join(',', map { "nats://127.0.0.1:$_->{port}" } @_);
}

# kill -9 one server (its store stays); true when it was running.
sub nats_kill9
{
	my ($s) = @_;
	my $running = $s->{h}->pumpable;
	$s->{h}->signal('KILL') if $running;
	eval { $s->{h}->finish; };
	return $running;
}

sub nats_restart
{
	my ($s) = @_;
	run_server($s);
}

sub nats_stop_all
{
	# finish() sets $?, which would become the test's exit status in END
	local $?;
	for my $s (@servers)
	{
		next unless $s->{h};
		eval { $s->{h}->signal('KILL') if $s->{h}->pumpable; $s->{h}->finish; };
	}
}

END { nats_stop_all(); }

# Every message of a stream: [ { seq, subject, headers => {k => v}, body } ].
sub nats_dump
{
	my ($url, $stream) = @_;
	my ($out, $err) = ('', '');

	# a cluster whose node was just restarted may answer "JetStream system
	# temporarily unavailable" until it has a meta leader again: retry that
	for (my $try = 0;; $try++)
	{
		($out, $err) = ('', '');
		IPC::Run::run([ nats_reader(), $url, 'dump', $stream ], '>', \$out, '2>', \$err);
		last if $? == 0;
		die "kappa_nats_read dump failed: $err"
		  unless $err =~ /temporarily unavailable/ && $try < 30;
		sleep(1);
	}
	my @msgs;
	my $pos = 0;
	while ($pos < length($out))
	{
		my $nl = index($out, "\n", $pos);
		my $head = substr($out, $pos, $nl - $pos);
		die "bad dump line: $head" unless $head =~ /^msg (\d+) (\S+) (\d+)$/;
		my %m = (seq => $1, subject => $2, headers => {});
		my $len = $3;
		$pos = $nl + 1;
		for (;;)
		{
			$nl = index($out, "\n", $pos);
			my $line = substr($out, $pos, $nl - $pos);
			$pos = $nl + 1;
			last if $line eq '';
			my ($k, $v) = split /: /, $line, 2;
			$m{headers}{$k} = $v;
		}
		$m{body} = substr($out, $pos, $len);
		$pos += $len + 1;
		push @msgs, \%m;
	}
	return \@msgs;
}

# Reassemble a stream's messages into units and check them on their own:
# each part's CRC-32C, parts 1..n in order and complete, no Nats-Msg-Id
# twice, headers equal to the commit record (xid, lsn, changes, checksum).
# Returns { text, bad, units, messages, split } where text is the
# concatenation of every unit (what a file sink would hold).
sub nats_units
{
	my ($msgs) = @_;
	my $json = JSON::PP->new;
	my ($text, $bad, $units, $split) = ('', 0, 0, 0);
	my %ids;
	my $cur;
	for my $m (@$msgs)
	{
		my $h = $m->{headers};
		my $id = $h->{'Nats-Msg-Id'} // '';
		if ($ids{$id}++)
		{
			diag("message $m->{seq}: Nats-Msg-Id $id twice");
			$bad++;
		}
		my $sum = sprintf('%08x', crc32c($m->{body}));
		if (($h->{'Kappa-Part-Checksum'} // '') ne $sum)
		{
			diag("message $m->{seq}: part checksum $sum, header says "
				  . ($h->{'Kappa-Part-Checksum'} // 'nothing'));
			$bad++;
		}
		my ($part, $parts) = ($h->{'Kappa-Part'} // 0, $h->{'Kappa-Parts'} // 0);
		if ($part == 1)
		{
			if ($cur)
			{
				diag("message $m->{seq}: unit $cur->{lsn} has only $cur->{got} parts");
				$bad++;
			}
			$cur = { lsn => $h->{'Kappa-Commit-Lsn'}, parts => $parts, got => 0, body => '', h => $h };
		}
		if (!$cur || $part != $cur->{got} + 1 || $parts != $cur->{parts}
			|| ($h->{'Kappa-Commit-Lsn'} // '') ne $cur->{lsn})
		{
			diag("message $m->{seq}: part $part of $parts out of place");
			$bad++;
			undef $cur;
			next;
		}
		$cur->{got}++;
		$cur->{body} .= $m->{body};
		next if $cur->{got} < $cur->{parts};

		# a whole unit: its headers against its last (commit) record
		$units++;
		$split++ if $cur->{parts} > 1;
		$text .= $cur->{body};
		my @lines = split /\n/, $cur->{body};
		my $last = eval { $json->decode($lines[-1]) } // {};
		if (($last->{kind} // '') eq 'commit')
		{
			my $want = join('|', $last->{xid}, $last->{lsn}, $last->{changes}, $last->{checksum});
			my $got = join('|', map { $cur->{h}{$_} // '' }
				  qw(Kappa-Xid Kappa-Commit-Lsn Kappa-Changes Kappa-Checksum));
			if ($want ne $got)
			{
				diag("unit $cur->{lsn}: headers $got, commit record $want");
				$bad++;
			}
		}
		undef $cur;
	}
	if ($cur)
	{
		diag("stream ends inside unit $cur->{lsn} ($cur->{got} of $cur->{parts} parts)");
		$bad++;
	}
	return { text => $text, bad => $bad, units => $units,
		messages => scalar(@$msgs), split => $split };
}

1;
