# kappa_recv and PostgreSQL's own pg_recvlogical read the same data through
# the replication protocol: pg_recvlogical with a slot it created with
# "-P pg_kappa", kappa_recv with a slot created at the same point.  Both
# outputs parse, every transaction's checksum verifies (checked here with
# an independent CRC-32C, so a plugin that checksummed the wrong bytes on
# the walsender path would be caught), and the two files are identical.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;
use KappaRecvTest;

my $node = kappa_node('kr_recvlogical');
my $dir = PostgreSQL::Test::Utils::tempdir;

create_ev_table($node);
$node->safe_psql('postgres', q{
	CREATE TABLE misc (k text PRIMARY KEY, j jsonb, n numeric, t timestamptz, b bytea, big text);
	ALTER TABLE misc REPLICA IDENTITY FULL;
});

$node->command_ok(
	[ 'pg_recvlogical', '-d', $node->connstr('postgres'), '-S', 'prl',
		'-P', 'pg_kappa', '--create-slot' ],
	'pg_recvlogical --create-slot -P pg_kappa');
my ($rc) = kr_run($node, [ '-S', 'krs', '--create-slot' ]);
is($rc, 0, 'kappa_recv --create-slot');

# a mix of change kinds, sizes and value types
my $writers = start_writers($node, 2, rate => 200);
$node->safe_psql('postgres', q{
	INSERT INTO misc VALUES ('a', '{"x": [1, 2, {"y": "z"}]}', 1.50, '2026-01-02 03:04:05+00',
		'\x00ff', repeat('long ', 5000));
	UPDATE misc SET n = n * 3, j = j || '{"w": "quote\" and \\\\ backslash"}' WHERE k = 'a';
	BEGIN;
	INSERT INTO misc VALUES ('b', 'null', 'NaN', 'infinity', '', 'ü € ✓');
	SELECT pg_logical_emit_message(true, 'test', 'inside');
	DELETE FROM misc WHERE k = 'a';
	COMMIT;
	SELECT pg_logical_emit_message(false, 'test', 'outside');
	TRUNCATE misc;
});
ok($writers->finish, 'writers');
my $end = $node->lsn('insert');

$node->command_ok(
	[ 'pg_recvlogical', '-d', $node->connstr('postgres'), '-S', 'prl', '--start',
		'--no-loop', '-E', $end, '-f', "$dir/prl.jsonl", map { ('-o', "$_") }
		  ('include-types=on', 'include-xids=on') ],
	'pg_recvlogical --start -P pg_kappa slot');
($rc) = kr_run($node, [ '-S', 'krs', '-f', "$dir/krs.jsonl", '-E', $end,
	map { ('-o', "$_") } ('include-types=on', 'include-xids=on') ]);
is($rc, 0, 'kappa_recv --endpos');

my $prl = slurp_file("$dir/prl.jsonl");
my $krs = read_sink("$dir/krs.jsonl");
decode_lines($prl, 'pg_recvlogical output');
my $p = parse_units($prl);
is($p->{bad}, 0, "pg_recvlogical output: every transaction's count and checksum verify");
cmp_ok(scalar(@{ $p->{units} }), '>', 20, 'pg_recvlogical saw the transactions');
for my $kind (qw(insert update delete truncate))
{
	ok($prl =~ /"kind":"$kind"/, "$kind records went through");
}
ok($prl =~ /"kind":"message","transactional":true/, 'transactional message went through');
ok($prl =~ /"kind":"message","transactional":false/, 'non-transactional message went through');
compare_streams($krs, $prl, 'kappa_recv output equals pg_recvlogical output');

done_testing();
