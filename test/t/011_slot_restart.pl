# Slot positions: pg_replication_slot_advance skips exactly the
# transactions before the target; decoding resumes from the confirmed
# position after a server restart (clean, or a crash after a checkpoint),
# through the SQL functions and pg_recvlogical, with nothing lost or
# repeated; after a crash without a checkpoint nothing is lost.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KappaTest;

my $node = kappa_node('restart');
$node->safe_psql('postgres', q{
	SELECT 'init' FROM pg_create_logical_replication_slot('r', 'pg_kappa');
	CREATE TABLE k (id int PRIMARY KEY);
});

# one transaction per id; returns the insert LSN after the last commit
sub write_ids
{
	my @ids = @_;
	$node->safe_psql('postgres', "INSERT INTO k VALUES ($_)") foreach @ids;
	return $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
}

# ids of the inserts in decoded output, in order; checks every line too
sub ids_of
{
	my ($text, $what) = @_;
	return map { $_->{new}{id} } grep { $_->{kind} eq 'insert' } decode_lines($text, $what);
}

sub sql_get
{
	my ($upto) = @_;
	my $u = defined $upto ? "'$upto'" : 'NULL';
	return $node->safe_psql('postgres',
		"SELECT data FROM pg_logical_slot_get_changes('r', $u, NULL)");
}

sub recv_upto
{
	my ($endpos) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[ 'pg_recvlogical', '-d', $node->connstr('postgres'), '-S', 'r', '--start',
		  '--no-loop', '--endpos', $endpos, '-f', '-' ],
		'>', \$out, '2>', \$err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	is($? >> 8, 0, 'pg_recvlogical ran') or diag($err);
	return $out;
}

my $flush = sub { $node->safe_psql('postgres', 'SELECT pg_current_wal_flush_lsn()') };

# consume up to a position in the middle
my $after5 = write_ids(1 .. 5);
write_ids(6 .. 7);
my $after7 = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
write_ids(8 .. 10);
is_deeply([ ids_of(sql_get($after5), 'first part') ], [ 1 .. 5 ], 'get_changes up to a position');

# advance past 6 and 7 without decoding them
my $adv = $node->safe_psql('postgres', "SELECT end_lsn FROM pg_replication_slot_advance('r', '$after7')");
is($adv, $after7, 'advanced to the target');
is($node->safe_psql('postgres', q{SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'r'}),
	$after7, 'confirmed position is the target');

# clean restart: decoding resumes after the advance
$node->restart;
is_deeply([ ids_of(sql_get(), 'after restart') ], [ 8 .. 10 ], 'clean restart: 8..10, nothing lost or repeated');

# pg_recvlogical continues from there and confirms what it received
write_ids(11 .. 13);
is_deeply([ ids_of(recv_upto($flush->()), 'pg_recvlogical') ], [ 11 .. 13 ], 'pg_recvlogical: 11..13');
write_ids(14 .. 15);
is_deeply([ ids_of(recv_upto($flush->()), 'pg_recvlogical again') ], [ 14 .. 15 ],
	'pg_recvlogical again: its confirmation was kept');

# crash after a checkpoint: the confirmed position survived
write_ids(16 .. 18);
is_deeply([ ids_of(sql_get(), 'before crash') ], [ 16 .. 18 ], '16..18');
$node->safe_psql('postgres', 'CHECKPOINT');
$node->stop('immediate');
$node->start;
write_ids(19 .. 20);
is_deeply([ ids_of(sql_get(), 'after crash') ], [ 19 .. 20 ],
	'crash after a checkpoint: 19..20, nothing lost or repeated');

# crash without a checkpoint: the slot's position on disk may be older, so
# transactions may come again, but in order and none is lost
write_ids(21 .. 23);
is_deeply([ ids_of(sql_get(), 'before second crash') ], [ 21 .. 23 ], '21..23');
write_ids(24);
$node->stop('immediate');
$node->start;
write_ids(25);
my @ids = ids_of(sql_get(), 'after second crash');
ok(@ids >= 2 && $ids[-2] == 24 && $ids[-1] == 25, 'crash without a checkpoint: 24 and 25 are there, last')
  or diag("got @ids");
is_deeply(\@ids, [ $ids[0] .. 25 ], 'a gapless run ending at 25 (repeats only of what was already sent)');
ok($ids[0] >= 19, 'nothing from before the last checkpointed position');

# and nothing pending once consumed
is(sql_get(), '', 'nothing left');

$node->stop;
done_testing();
