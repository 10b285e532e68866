# pg_recvlogical -P pg_kappa: the replication protocol path gives exactly
# the lines the SQL functions give for the same changes, whatever the
# walsender session's settings; options without a value; option errors;
# and a streamed transaction aborted within one session gets stream_abort.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use KappaTest;

my $node = kappa_node('recv');
my $dir = PostgreSQL::Test::Utils::tempdir;

# Run pg_recvlogical on slot $slot until $endpos with the given -o
# arguments; %env adds to the environment.  Returns (exit code, stdout,
# stderr).
sub recv_upto
{
	my ($slot, $endpos, $opts, %env) = @_;
	my @cmd = (
		'pg_recvlogical', '-d', $node->connstr('postgres'),
		'-S', $slot, '--start', '--no-loop', '-f', '-');
	push @cmd, '--endpos', $endpos if defined $endpos;
	push @cmd, map { ('-o', $_) } @$opts;
	my ($out, $err) = ('', '');
	local %ENV = (%ENV, %env);
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return ($? >> 8, $out, $err);
}

sub flush_lsn
{
	return $node->safe_psql('postgres', 'SELECT pg_current_wal_flush_lsn()');
}

$node->safe_psql('postgres', q{
	SELECT 'init' FROM pg_create_logical_replication_slot('s_recv', 'pg_kappa');
	SELECT 'init' FROM pg_create_logical_replication_slot('s_sql', 'pg_kappa');
});

# a workload touching every record kind that needs no special setup, and
# values whose output depends on session settings
$node->safe_psql('postgres', q{
	CREATE TABLE r (id int PRIMARY KEY, t text, ts timestamptz, tsa timestamptz[], iv interval,
	                f float8, b bytea, n numeric, j json, e text);
	INSERT INTO r VALUES (1, 'é "q" \ ✓', '2026-01-02 03:04:05.678+00', '{2026-01-02 03:04:05+00}',
	                      '1 day 02:03:04', 0.1, '\xdeadbeef', 1e-20, E'{"a":\n1}', NULL);
	UPDATE r SET t = 'updated', id = 2;
	BEGIN;
	INSERT INTO r SELECT g, repeat('x', 40) FROM generate_series(10, 3009) g;
	ALTER TABLE r ADD COLUMN extra int DEFAULT 5;
	UPDATE r SET extra = 6 WHERE id < 20;
	COMMIT;
	SELECT 'm' FROM pg_logical_emit_message(true, 'pfx', 'in a transaction');
	SELECT 'm' FROM pg_logical_emit_message(false, 'pfx', '\x00ff'::bytea);
	DELETE FROM r WHERE id > 100;
	TRUNCATE r;
});
my $end = flush_lsn();

my @common = ('include-types=on', 'skip-empty-xacts=off');
my ($rc, $recv, $err) = recv_upto('s_recv', $end, \@common,
	PGOPTIONS => '-c DateStyle=SQL,DMY -c TimeZone=Asia/Kolkata -c IntervalStyle=sql_standard '
	  . '-c extra_float_digits=-3 -c bytea_output=escape -c search_path=nowhere');
is($rc, 0, 'pg_recvlogical exits 0') or diag($err);
my @recv_objs = decode_lines($recv, 'pg_recvlogical output');
my $sql = $node->safe_psql('postgres', q{
	SELECT data FROM pg_logical_slot_get_changes('s_sql', NULL, NULL,
	    'include-types', 'on', 'skip-empty-xacts', 'off')});
decode_lines($sql, 'SQL output');
my @recv_lines = split /\n/, $recv;
my @sql_lines = split /\n/, $sql;
ok(scalar(@sql_lines) > 3000, 'the workload was decoded: ' . scalar(@sql_lines) . ' lines');
is_deeply(\@recv_lines, \@sql_lines,
	'pg_recvlogical under other session settings gives the lines the SQL functions give');
my ($first) = grep { $_->{kind} eq 'insert' } @recv_objs;
is($first->{new}{ts}, '2026-01-02T03:04:05.678+00:00', 'timestamptz in UTC');
is($first->{new}{tsa}, '{"2026-01-02 03:04:05+00"}', 'timestamptz[] in ISO, UTC');
is($first->{new}{iv}, 'P1DT2H3M4S', 'interval in ISO 8601');
is($first->{new}{f}, 0.1, 'float exact');
is($first->{new}{b}, '\\xdeadbeef', 'bytea in hex');
is_deeply($first->{new}{j}, { a => 1 }, 'json with a line break embedded');
# (decode_lines does not decode UTF-8: compare bytes; this file has no
# "use utf8")
is($first->{new}{t}, "é \"q\" \\ ✓", 'non-ASCII text');
is($first->{types}{ts}, 'timestamp with time zone', 'types with include-types=on');
my @kinds = map { $_->{kind} } @recv_objs;
is(scalar(grep { $_ eq 'message' } @kinds), 2, 'both messages');
is(scalar(grep { $_ eq 'truncate' } @kinds), 1, 'the truncate');

# an option without a value means on for booleans, and is an error for
# the others
$node->safe_psql('postgres', 'INSERT INTO r (id) VALUES (1)');
$end = flush_lsn();
($rc, $recv, $err) = recv_upto('s_recv', $end, [ 'include-types', 'include-lsn=off' ]);
is($rc, 0, 'option without a value accepted');
my ($ins) = grep { $_->{kind} eq 'insert' } decode_lines($recv, 'output');
ok(defined $ins->{types} && !defined $ins->{lsn}, '"-o include-types" means include-types=on');
($rc, $recv, $err) = recv_upto('s_recv', $end, ['tables']);
isnt($rc, 0, '"-o tables" without a value fails');
like($err, qr/pg_kappa option "tables" requires a value/, '... saying so');
($rc, $recv, $err) = recv_upto('s_recv', $end, ['bogus=1']);
isnt($rc, 0, 'unknown option fails');
like($err, qr/unrecognized pg_kappa option "bogus"/, '... naming the option');
($rc, $recv, $err) = recv_upto('s_recv', $end, ['streaming=sometimes']);
like($err, qr/invalid value for pg_kappa option "streaming": "sometimes"/, 'bad value names option and value');

# a slot created by pg_recvlogical -P pg_kappa
my ($cout, $cerr) = ('', '');
IPC::Run::run([ 'pg_recvlogical', '-d', $node->connstr('postgres'), '-S', 's_created',
				'--create-slot', '-P', 'pg_kappa' ], '>', \$cout, '2>', \$cerr);
is($? >> 8, 0, 'pg_recvlogical --create-slot -P pg_kappa') or diag($cerr);
is($node->safe_psql('postgres', q{SELECT plugin FROM pg_replication_slots WHERE slot_name = 's_created'}),
	'pg_kappa', 'the slot uses pg_kappa');
$node->safe_psql('postgres', q{INSERT INTO r (id, t) VALUES (50, 'via a created slot')});
($rc, $recv, $err) = recv_upto('s_created', flush_lsn(), [ 'tables=public.r', 'actions=insert' ]);
my @created = decode_lines($recv, 'created slot output');
is(join(' ', map { $_->{kind} } @created), 'begin insert commit', 'decoded through it');
is($created[1]{new}{t}, 'via a created slot', 'the row');

# a streamed transaction aborted while the session that streamed it runs:
# its blocks, then stream_abort for the whole transaction
my $file = "$dir/stream.out";
$node->safe_psql('postgres', q{SELECT 'init' FROM pg_create_logical_replication_slot('s_stream', 'pg_kappa')});
my $recv_h = IPC::Run::start(
	[ 'pg_recvlogical', '-d', $node->connstr('postgres'), '-S', 's_stream', '--start',
	  '--no-loop', '-f', $file, '-F', '0', '-s', '1',
	  '-o', 'streaming=on', '-o', 'include-lsn=off' ],
	'>', \my $rout, '2>', \my $rerr);
my $writer = $node->background_psql('postgres');
$writer->query_safe('BEGIN');
$writer->query_safe(q{INSERT INTO r (id, t) SELECT g, 'streamed' FROM generate_series(100000, 103999) g});
# WAL of an open transaction is flushed by the next commit elsewhere
$node->safe_psql('postgres', q{COMMENT ON TABLE r IS 'flush'});
sub file_has
{
	my ($re) = @_;
	foreach (1 .. $PostgreSQL::Test::Utils::timeout_default * 10)
	{
		my $text = -e $file ? slurp_file($file) : '';
		return $text if $text =~ $re;
		usleep(100_000);
	}
	return undef;
}
ok(defined file_has(qr/"kind":"stream_start".*"kind":"insert"/s), 'blocks arrive while the transaction is open');
$writer->query_safe('ROLLBACK');
$writer->quit;
$node->safe_psql('postgres', q{INSERT INTO r (id, t) VALUES (200000, 'marker')});
my $text = file_has(qr/"marker"/);
ok(defined $text, 'the next transaction arrives');
$recv_h->signal('TERM');
$recv_h->finish;
my @objs = decode_lines($text, 'streamed output');
my ($start) = grep { $_->{kind} eq 'stream_start' } @objs;
my @aborts = grep { $_->{kind} eq 'stream_abort' } @objs;
is(scalar(@aborts), 1, 'one stream_abort');
is($aborts[0]{xid}, $start->{xid}, 'for the streamed transaction');
is($aborts[0]{subxid}, $start->{xid}, 'as a whole (subxid = xid)');
ok(!grep({ $_->{kind} eq 'stream_commit' } @objs), 'no stream_commit');
my @streamed = grep { $_->{kind} eq 'insert' && $_->{new}{t} eq 'streamed' } @objs;
ok(@streamed > 0 && !grep({ $_->{xid} != $start->{xid} } @streamed),
	scalar(@streamed) . ' streamed changes, each with the xid');
ok((grep { $_->{kind} eq 'insert' && $_->{new}{t} eq 'marker' } @objs), 'marker decoded after the abort');

$node->stop;
done_testing();
