# A large transaction decoded with logical_decoding_work_mem = 64kB: the
# decoding backend's memory stays bounded (the transaction is spilled and
# read back in pieces, and the plugin frees each record's memory), both
# for the SQL functions and for a walsender.  Measured as the peak of
# RssAnon (anonymous resident memory: not shared buffers) while decoding a
# transaction whose changes take more than 60 MB: the peak stays far
# below that.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use KappaTest;

plan skip_all => 'needs /proc/self/status with RssAnon'
  unless -r '/proc/self/status' && slurp_file('/proc/self/status') =~ /^RssAnon:/m;

my $node = kappa_node('memory');
is($node->safe_psql('postgres', 'SHOW logical_decoding_work_mem'), '64kB', 'work memory 64kB');

$node->safe_psql('postgres', q{
	CREATE TABLE m (id int PRIMARY KEY, t text);
	SELECT 'init' FROM pg_create_logical_replication_slot('m_big', 'pg_kappa');
	SELECT 'init' FROM pg_create_logical_replication_slot('m_recv', 'pg_kappa');
	INSERT INTO m SELECT g, repeat('b', 200) FROM generate_series(100001, 300000) g;
});

sub rss_anon_kb
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/status") or return undef;
	local $/;
	my $s = <$fh>;
	return $s =~ /^RssAnon:\s+(\d+)\s+kB/m ? $1 : undef;
}

# Run $cmd; once a server process matching $find_sql shows up, sample its
# RssAnon until $cmd ends.  Returns (peak kB, stdout).
sub peak_while
{
	my ($cmd, $find_sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start($cmd, '>', \$out, '2>', \$err);
	my ($pid, $peak) = ('', 0);
	foreach (1 .. $PostgreSQL::Test::Utils::timeout_default * 20)
	{
		last unless $h->pumpable;
		$pid = $node->safe_psql('postgres', $find_sql) if $pid eq '';
		if ($pid ne '')
		{
			my $kb = rss_anon_kb($pid);
			$peak = $kb if defined $kb && $kb > $peak;
		}
		$h->pump_nb;
		usleep(20_000);
	}
	$h->finish;
	is($? >> 8, 0, 'command succeeded') or diag($err);
	ok($pid ne '', "found the decoding process ($pid)");
	return ($peak, $out);
}

my $find_sql_backend = q{SELECT pid FROM pg_stat_activity WHERE query LIKE '%slot_get_changes(''m_%' AND pid <> pg_backend_pid()};
my @psql = ('psql', '-XAtq', '-d', $node->connstr('postgres'), '-c');
my ($big, $big_out) = peak_while(
	[ @psql, q{SELECT count(*), sum(length(data)) FROM pg_logical_slot_get_changes('m_big', NULL, NULL)} ],
	$find_sql_backend);
my ($n, $bytes) = split /\|/, $big_out;
is($n, 200002, 'the large transaction decoded in full');
note("SQL: peak RssAnon ${big} kB; $bytes bytes of output");
ok($big > 0 && $big < 40 * 1024, "SQL: peak memory under 40 MB ($big kB)");

# the same through a walsender
my $end = $node->safe_psql('postgres', 'SELECT pg_current_wal_flush_lsn()');
my ($recv) = peak_while(
	[ 'pg_recvlogical', '-d', $node->connstr('postgres'), '-S', 'm_recv', '--start', '--no-loop',
	  '--endpos', $end, '-f', '/dev/null' ],
	q{SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'm_recv' AND active_pid IS NOT NULL});
note("walsender: peak RssAnon ${recv} kB");
ok($recv > 0 && $recv < 40 * 1024, "walsender: peak memory under 40 MB too ($recv kB)");

my $spilled = $node->safe_psql('postgres',
	q{SELECT spill_bytes FROM pg_stat_replication_slots WHERE slot_name = 'm_big'});
ok($spilled > 60_000_000, "the transaction's changes were larger: $spilled bytes spilled");

$node->stop;
done_testing();
