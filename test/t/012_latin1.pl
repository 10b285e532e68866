# A database in a non-UTF-8 encoding (LATIN1): non-ASCII characters in
# values, names, json, prefixes and messages are written as \uXXXX escapes,
# so every line is ASCII and the same valid JSON through the SQL functions
# (converted to the client encoding) and pg_recvlogical (sent as is), with
# checksums that match, and the values decode to the right characters.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use JSON::PP;
use KappaTest;

my $node = kappa_node('latin1');
$node->safe_psql('postgres',
	q{CREATE DATABASE lat ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'});
is($node->safe_psql('lat', 'SELECT getdatabaseencoding()'), 'LATIN1', 'a LATIN1 database');

$node->safe_psql('lat', q{
	SELECT 'init' FROM pg_create_logical_replication_slot('l_sql', 'pg_kappa');
	SELECT 'init' FROM pg_create_logical_replication_slot('l_recv', 'pg_kappa');
	CREATE SCHEMA U&"sch\00E9ma";
	CREATE TABLE U&"sch\00E9ma".U&"t\00E4ble" (id int PRIMARY KEY, U&"caf\00E9" text, v varchar(10),
	                                           j json, jb jsonb, a text[], c "char");
	INSERT INTO U&"sch\00E9ma".U&"t\00E4ble" VALUES
	  (1, U&'caf\00E9 \00FC\00DF\00FF \00A9 \0080\009F "q" \\\\', U&'\00E9t\00E9',
	   U&'{"k\00E9": "\00E9\005Cn", "n": 1}', U&'{"k\00E9": ["\00E9"]}', ARRAY[U&'\00E9', 'x'], U&'\00E9'),
	  (2, 'ascii only', NULL, '[]', '{}', '{}', 'a');
	UPDATE U&"sch\00E9ma".U&"t\00E4ble" SET v = U&'\00C0' WHERE id = 2;
	SELECT 'm' FROM pg_logical_emit_message(true, U&'pr\00E9fix', U&'m\00E9ssage');
	SELECT 'm' FROM pg_logical_emit_message(true, 'bytes', '\xe9ff'::bytea);
	SELECT 'm' FROM pg_logical_emit_message(true, 'nul', '\x00e9'::bytea);
});

my $sql = $node->safe_psql('lat',
	q{SELECT data FROM pg_logical_slot_get_changes('l_sql', NULL, NULL, 'include-types', 'on')},
	extra_params => [ '-v', 'client_encoding=UTF8' ]);
my $end = $node->safe_psql('lat', 'SELECT pg_current_wal_flush_lsn()');
my ($recv, $err) = ('', '');
IPC::Run::run(
	[ 'pg_recvlogical', '-d', $node->connstr('lat'), '-S', 'l_recv', '--start',
	  '--no-loop', '--endpos', $end, '-f', '-', '-o', 'include-types=on' ],
	'>', \$recv, '2>', \$err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
is($? >> 8, 0, 'pg_recvlogical ran') or diag($err);

ok($sql =~ /\\u00e9/, 'escapes in the output');
ok($sql !~ /[^\x00-\x7f]/, 'SQL output is ASCII');
ok($recv !~ /[^\x00-\x7f]/, 'pg_recvlogical output is ASCII');
is_deeply([ split /\n/, $recv ], [ split /\n/, $sql ], 'both paths give the same lines');

decode_lines($recv, 'pg_recvlogical output');
# decode for real (escapes to characters) to compare values
my @objs = map { JSON::PP->new->decode($_) } split /\n/, $recv;
my ($ins) = grep { $_->{kind} eq 'insert' && $_->{new}{id} == 1 } @objs;
ok(defined $ins, 'the first insert');
is($ins->{schema}, "sch\x{e9}ma", 'schema name');
is($ins->{table}, "t\x{e4}ble", 'table name');
is($ins->{new}{"caf\x{e9}"}, "caf\x{e9} \x{fc}\x{df}\x{ff} \x{a9} \x{80}\x{9f} \"q\" \\", 'text, column name');
is($ins->{new}{v}, "\x{e9}t\x{e9}", 'varchar');
is_deeply($ins->{new}{j}, { "k\x{e9}" => "\x{e9}\n", n => 1 }, 'json');
is_deeply($ins->{new}{jb}, { "k\x{e9}" => ["\x{e9}"] }, 'jsonb');
is($ins->{new}{a}, "{\x{e9},x}", 'array');
is($ins->{new}{c}, '\351', '"char" (its output function writes high bytes in octal)');
is($ins->{types}{"caf\x{e9}"}, 'text', 'types keyed by the escaped name');
my ($upd) = grep { $_->{kind} eq 'update' } @objs;
is($upd->{new}{v}, "\x{c0}", 'update');
my @msgs = grep { $_->{kind} eq 'message' } @objs;
is($msgs[0]{prefix}, "pr\x{e9}fix", 'message prefix');
is($msgs[0]{content}, "m\x{e9}ssage", 'message content');
is($msgs[1]{content_encoding}, 'text', 'bytes valid in LATIN1 are text');
is($msgs[1]{content}, "\x{e9}\x{ff}", '... as the characters they are in LATIN1');
is($msgs[2]{content_encoding}, 'base64', 'a NUL byte makes base64');
is($msgs[2]{content}, 'AOk=', '... of the bytes');

$node->stop;
done_testing();
