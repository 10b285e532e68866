# A consumer nobody here wrote the client for: the npm package
# pg-logical-replication, with a small output-plugin adapter for pg_kappa
# (test/node/consumer.js), reads a slot while writers run.  Every committed
# transaction must arrive once, in commit order, with a change count and
# checksum that verify, and the result must equal the server's own decoding.
#
# Skipped, with a message saying why, when node is not installed or the
# dependencies were not installed (sh test/node/setup.sh).
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;
use KappaRecvTest;

my $nodedir = File::Spec->rel2abs(dirname(__FILE__) . '/../node');

if (system('command -v node >/dev/null 2>&1') != 0)
{
	plan skip_all => 'node is not installed (on Debian: apt-get install nodejs npm), '
	  . 'so the pg-logical-replication consumer cannot run';
}
if (!-d "$nodedir/node_modules/pg-logical-replication")
{
	plan skip_all => "$nodedir/node_modules is missing: run sh test/node/setup.sh "
	  . '(npm ci) to install pg-logical-replication';
}

my $node = kappa_node('kr_node');
create_ev_table($node);
$node->safe_psql('postgres',
	"SELECT pg_create_logical_replication_slot('$_', 'pg_kappa')")
  for qw(nodeslot ref);

my $writers = start_writers($node, 3, rate => 200);
$node->safe_psql('postgres', q{
	SELECT pg_logical_emit_message(false, 'node', 'standalone');
	BEGIN;
	SELECT pg_logical_emit_message(true, 'node', 'in a transaction ✓');
	INSERT INTO ev (writer, payload) VALUES (-1, E'quote " backslash \\\\ tab \t ü');
	COMMIT;
});
ok($writers->finish, 'writers');
my $end = $node->lsn('insert');

my $dir = PostgreSQL::Test::Utils::tempdir;
my ($out, $err) = ('', '');
{
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'postgres';
	IPC::Run::run([ 'node', "$nodedir/consumer.js", '--slot', 'nodeslot',
		'--endpos', $end, '--out', "$dir/node.jsonl", '-o', 'include-xids=on' ],
		'>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}
is($? >> 8, 0, 'node consumer verified every transaction and reached the end')
  or diag($err);
my $stats = eval { JSON::PP->new->decode($out) } // {};
cmp_ok($stats->{transactions} // 0, '>', 50, "node consumer saw $stats->{transactions} transactions");

my $ref = reference_stream($node, 'ref');
my $p = compare_streams(slurp_file("$dir/node.jsonl"), $ref, 'node consumer');
is($stats->{transactions}, scalar(grep { $_->{kind} eq 'txn' } @{ $p->{units} }),
	'node consumer counted each transaction once');
like(slurp_file("$dir/node.jsonl"), qr/in a transaction ✓/, 'non-ASCII text intact');

done_testing();
