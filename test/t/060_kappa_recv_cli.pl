# kappa_recv: command line, slot handling, clear errors with documented exit
# codes, plugin options passed through, and each sink (file, stdout, command)
# delivering what the server decodes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;
use KappaRecvTest;

my $node = kappa_node('kr_cli');
my $dir = PostgreSQL::Test::Utils::tempdir;

# --- the command line on its own

my ($rc, $out, $err) = kr_run($node, ['--help']);
is($rc, 0, '--help exits 0');
like($out, qr/SYNOPSIS.*EXIT STATUS.*\n\s+3\s+verification failed/s,
	'--help is a manual page with the exit codes');
($rc, $out) = kr_run($node, ['--version']);
like($out, qr/^kappa_recv \(pg_kappa\) \d/, '--version');

($rc, $out, $err) = kr_run($node, ['-f', "$dir/x"]);
is($rc, 1, 'no slot: exit 1');
like($err, qr/no slot specified/, 'no slot: message');
($rc, $out, $err) = kr_run($node, [ '-S', 's', '--no-such-option' ]);
is($rc, 1, 'unknown option: exit 1');
($rc, $out, $err) = kr_run($node, [ '-S', 's' ]);
is($rc, 1, 'no output: exit 1');
like($err, qr/no output specified/, 'no output: message');
($rc, $out, $err) = kr_run($node, [ '-S', 's', '--exec', 'cat' ]);
like($err, qr/--exec requires --state-file/, '--exec without --state-file refused');
($rc, $out, $err) = kr_run($node, [ '-S', 's', '-f', "$dir/x", '-o', 'streaming=on' ]);
is($rc, 1, 'streaming=on: exit 1');
like($err, qr/"streaming" is not supported/, 'streaming=on: message');
($rc, $out, $err) = kr_run($node, [ '-S', 's', '-f', '-', '--rotate-size', '1MB' ]);
is($rc, 1, '--rotate-size with stdout refused');

# bad connection string: exit 1 before any connection attempt
{
	my ($o, $e) = ('', '');
	IPC::Run::run([ 'kappa_recv', '-d', 'host=x nonsense', '-S', 's', '-f', "$dir/x" ],
		'>', \$o, '2>', \$e);
	is($? >> 8, 1, 'invalid connection string: exit 1');
	like($e, qr/invalid connection string/, 'invalid connection string: message');
	IPC::Run::run([ 'kappa_recv', '-d', 'postgres://nobody@/x?badparam=1', '-S', 's', '-f', "$dir/x" ],
		'>', \$o, '2>', \$e);
	is($? >> 8, 1, 'invalid URI parameter: exit 1');
}

# nothing listening: exit 2
{
	my ($o, $e) = ('', '');
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	IPC::Run::run([ 'kappa_recv', '-d', "host=" . $node->host . " port=$port dbname=postgres",
		'-S', 's', '-f', "$dir/x" ], '>', \$o, '2>', \$e);
	is($? >> 8, 2, 'server not running: exit 2');
	like($e, qr/could not connect to server/, 'server not running: message');
}

# --- slot handling

($rc, $out, $err) = kr_run($node, [ '-S', 'nosuch', '-f', "$dir/x" ]);
is($rc, 2, 'missing slot: exit 2');
like($err, qr/replication slot "nosuch" does not exist.*hint: Create it with --create-slot/s,
	'missing slot: message and hint');

$node->safe_psql('postgres',
	"SELECT pg_create_logical_replication_slot('td', 'test_decoding')");
($rc, $out, $err) = kr_run($node, [ '-S', 'td', '-f', "$dir/x" ]);
is($rc, 2, 'slot of another plugin: exit 2');
like($err, qr/uses output plugin "test_decoding", not "pg_kappa"/, 'wrong plugin: message');

($rc, $out, $err) = kr_run($node, [ '-S', 'made', '--create-slot' ]);
is($rc, 0, '--create-slot alone creates and exits');
is($node->safe_psql('postgres',
		"SELECT plugin FROM pg_replication_slots WHERE slot_name = 'made'"),
	'pg_kappa', 'slot created with plugin pg_kappa');
($rc, $out, $err) = kr_run($node, [ '-S', 'made', '--create-slot' ]);
is($rc, 2, '--create-slot of an existing slot: exit 2');
like($err, qr/already exists.*--if-not-exists/s, 'existing slot: hint');
($rc) = kr_run($node, [ '-S', 'made', '--create-slot', '--if-not-exists' ]);
is($rc, 0, '--create-slot --if-not-exists on an existing slot');
($rc) = kr_run($node, [ '-S', 'made', '--drop-slot' ]);
is($rc, 0, '--drop-slot');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'made'"),
	'0', 'slot dropped');
($rc) = kr_run($node, [ '-S', 'made', '--drop-slot' ]);
is($rc, 2, '--drop-slot of a missing slot: exit 2');
($rc) = kr_run($node, [ '-S', 'made', '--drop-slot', '--if-not-exists' ]);
is($rc, 0, '--drop-slot --if-not-exists of a missing slot');

# a role without REPLICATION
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
{
	my ($o, $e) = ('', '');
	IPC::Run::run([ 'kappa_recv', '-d', $node->connstr('postgres') . ' user=plain',
		'-S', 's', '-f', "$dir/x" ], '>', \$o, '2>', \$e);
	is($? >> 8, 2, 'role without REPLICATION: exit 2');
	like($e, qr/hint: .*REPLICATION attribute \(ALTER ROLE name REPLICATION\)/,
		'role without REPLICATION: hint says how to fix it');
}

# a plugin option the plugin refuses
($rc, $out, $err) = kr_run($node, [ '-S', 'opt', '--create-slot', '-f', "$dir/opt",
	'-o', 'bogus=1' ]);
is($rc, 1, 'plugin option refused by the server: exit 1');
like($err, qr/plugin option refused: unrecognized pg_kappa option "bogus"/,
	'plugin option refused: server message passed on');

# output_plugin_libraries without pg_kappa (15.19 and later)
SKIP:
{
	my $desc = `postgres --describe-config 2>/dev/null`;
	skip 'server has no output_plugin_libraries', 4
	  unless $desc =~ /^output_plugin_libraries\t/m;
	$node->safe_psql('postgres',
		"SELECT pg_create_logical_replication_slot('opl', 'pg_kappa')");
	$node->append_conf('postgresql.conf',
		"output_plugin_libraries = 'pgoutput, test_decoding'");
	$node->reload;
	($rc, $out, $err) = kr_run($node, [ '-S', 'opl', '-f', "$dir/opl" ]);
	is($rc, 2, 'pg_kappa not in output_plugin_libraries: exit 2');
	like($err, qr/may not be used as an output plugin.*hint: .*output_plugin_libraries = 'pgoutput, test_decoding, pg_kappa'.*pg_reload_conf/s,
		'output_plugin_libraries: hint explains the fix');
	($rc, $out, $err) = kr_run($node, [ '-S', 'opl2', '--create-slot' ]);
	is($rc, 2, '--create-slot refused by output_plugin_libraries: exit 2');
	like($err, qr/hint: .*output_plugin_libraries/, '--create-slot: same hint');
	$node->append_conf('postgresql.conf', KappaTest::kappa_plugin_conf());
	$node->reload;
	$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('opl')");
}

# --- delivery through each sink, with plugin options passed through

$node->safe_psql('postgres', q{
	CREATE TABLE a (id int PRIMARY KEY, v text);
	CREATE TABLE b (id int PRIMARY KEY, v text);
});
for my $s (qw(f1 ref f2 ref2 x1 x2 o1 g1 rot ka))
{
	$node->safe_psql('postgres',
		"SELECT pg_create_logical_replication_slot('$s', 'pg_kappa')");
}
for my $i (1 .. 8)
{
	$node->safe_psql('postgres', qq{
		BEGIN;
		INSERT INTO a SELECT g, repeat('v', 50) FROM generate_series($i * 10, $i * 10 + 4) g;
		INSERT INTO b VALUES ($i, 'b$i');
		UPDATE a SET v = 'u' WHERE id = $i * 10;
		COMMIT;
	});
}
$node->safe_psql('postgres', "SELECT pg_logical_emit_message(false, 'pfx', 'standalone')");
$node->safe_psql('postgres', "DELETE FROM b WHERE id = 1");
my $end = $node->lsn('insert');
my $ref = reference_stream($node, 'ref');
my $ref_opt = reference_stream($node, 'ref2', 'include-xids', 'off', 'tables', 'public.b',
	'include-types', 'on');

# file sink
($rc, $out, $err) = kr_run($node, [ '-S', 'f1', '-f', "$dir/f1.jsonl", '-E', $end ]);
is($rc, 0, 'file sink: --endpos stops with exit 0');
compare_streams(read_sink("$dir/f1.jsonl"), $ref, 'file sink');
ok(-f "$dir/f1.jsonl.state", 'state file beside the output');
my $pos = state_position("$dir/f1.jsonl.state");
ok(wait_for_flush($node, 'f1', $pos), 'the server was told what is durable');
($rc) = kr_run($node, [ '-S', 'f1', '-f', "$dir/f1.jsonl", '-E', $end ]);
is($rc, 0, 'file sink: second run');
compare_streams(read_sink("$dir/f1.jsonl"), $ref, 'file sink after a second run');

# plugin options are passed through START_REPLICATION
($rc) = kr_run($node, [ '-S', 'f2', '-f', "$dir/f2.jsonl", '-E', $end,
	'-o', 'include-xids=off', '-o', 'tables=public.b', '-o', 'include-types' ]);
is($rc, 0, 'with plugin options');
compare_streams(read_sink("$dir/f2.jsonl"), $ref_opt, 'plugin options');
unlike(slurp_file("$dir/f2.jsonl"), qr/"xid"|"table":"a"/, 'include-xids=off and tables applied');
like(slurp_file("$dir/f2.jsonl"), qr/"types":\{/, 'option without value means on');

# standard output
($rc, $out) = kr_run($node, [ '-S', 'o1', '-f', '-', '-E', $end ]);
is($rc, 0, 'stdout sink');
compare_streams($out, $ref, 'stdout sink');

# group fsync
($rc) = kr_run($node, [ '-S', 'g1', '-f', "$dir/g1.jsonl", '-F', '200', '-E', $end ]);
is($rc, 0, 'group fsync');
compare_streams(read_sink("$dir/g1.jsonl"), $ref, 'group fsync');

# rotation by size: segments end at transaction boundaries
($rc) = kr_run($node, [ '-S', 'rot', '-f', "$dir/rot.jsonl", '--rotate-size', '1kB', '-E', $end ]);
is($rc, 0, 'rotation');
my @segs = glob("$dir/rot.jsonl.0*");
cmp_ok(scalar(@segs), '>=', 3, 'rotation made several segments');
my $seg_ok = 1;
for my $s (@segs)
{
	my $p = parse_units(slurp_file($s));
	$seg_ok = 0 if $p->{bad} || slurp_file($s) !~ /"kind":"(commit|message)"[^\n]*\n\z/;
}
ok($seg_ok, 'every segment holds whole, verified transactions');
compare_streams(read_sink("$dir/rot.jsonl"), $ref, 'rotated segments');

# the command sink: one run per transaction, identity in the environment
my $cmd = "cat >> $dir/x1.out && echo \"\$KAPPA_XID \$KAPPA_COMMIT_LSN \$KAPPA_END_LSN \$KAPPA_CHANGES\" >> $dir/x1.env";
($rc, $out, $err) = kr_run($node, [ '-S', 'x1', '--exec', $cmd, '--state-file', "$dir/x1.state", '-E', $end ]);
is($rc, 0, 'command sink');
compare_streams(slurp_file("$dir/x1.out"), $ref, 'command sink');
my $p = parse_units($ref);
my @env = split /\n/, slurp_file("$dir/x1.env");
is(scalar(@env), scalar(@{ $p->{units} }), 'the command ran once per unit');
my $u0 = $p->{units}[0];
is($env[0], "$u0->{xid} $u0->{commit_lsn} $u0->{end_lsn} " . scalar(@{ $u0->{objs} }),
	'KAPPA_XID, KAPPA_COMMIT_LSN, KAPPA_END_LSN, KAPPA_CHANGES');

# a failing command stops kappa_recv with exit 4 and nothing is acknowledged
my $before = $node->safe_psql('postgres',
	"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'x2'");
($rc, $out, $err) = kr_run($node, [ '-S', 'x2', '--exec', "cat > $dir/x2.try; exit 7",
	'--state-file', "$dir/x2.state", '-E', $end, '-s', '1' ]);
is($rc, 4, 'failing command: exit 4');
like($err, qr/failed with exit status 7.*delivered again/s, 'failing command: message');
is($node->safe_psql('postgres',
		"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'x2'"),
	$before, 'failing command: position not acknowledged');
($rc) = kr_run($node, [ '-S', 'x2', '--exec', "cat >> $dir/x2.out",
	'--state-file', "$dir/x2.state", '-E', $end ]);
is($rc, 0, 'working command after a failure');
compare_streams(slurp_file("$dir/x2.out"), $ref, 'command sink after a failure');

# --- signals: SIGHUP reopens the file, SIGTERM stops cleanly

my $log = "$dir/ka.log";
my $h = kr_start($node, [ '-S', 'ka', '-f', "$dir/ka.jsonl", '-s', '1' ], $log);
ok(wait_for_flush($node, 'ka', $end), 'background kappa_recv caught up');
rename("$dir/ka.jsonl", "$dir/ka.jsonl.old") or die;
$h->signal('HUP');
ok(wait_for_match($log, qr/reopened output file/), 'SIGHUP reopened the file');
$node->safe_psql('postgres', "INSERT INTO a VALUES (1000, 'after hup')");
my $end2 = $node->lsn('insert');
ok(wait_for_flush($node, 'ka', $end2), 'caught up after SIGHUP');
$h->signal('TERM');
is(kr_wait($h), 0, 'SIGTERM: exit 0');
like(slurp_file("$dir/ka.jsonl"), qr/after hup/, 'new events go to the new file');
unlike(slurp_file("$dir/ka.jsonl.old"), qr/after hup/, 'not to the moved one');
my $ref_ka = reference_stream($node, 'ref');
compare_streams(slurp_file("$dir/ka.jsonl.old") . slurp_file("$dir/ka.jsonl"),
	$ref_ka, 'moved file + new file');
is($node->safe_psql('postgres',
		"SELECT confirmed_flush_lsn >= '" . state_position("$dir/ka.jsonl.state")
		  . "' FROM pg_replication_slots WHERE slot_name = 'ka'"),
	't', 'after SIGTERM the server knows the final position');

# SIGINT stops as cleanly as SIGTERM
$h = kr_start($node, [ '-S', 'ka', '-f', "$dir/ka.jsonl", '-s', '1' ], $log);
$node->safe_psql('postgres', "INSERT INTO a VALUES (1001, 'before int')");
ok(wait_for_flush($node, 'ka', $node->lsn('insert')), 'restarted kappa_recv caught up');
$h->signal('INT');
is(kr_wait($h), 0, 'SIGINT: exit 0');
compare_streams(slurp_file("$dir/ka.jsonl.old") . slurp_file("$dir/ka.jsonl"),
	reference_stream($node, 'ref'), 'after SIGINT');

# a slot whose changes are all filtered out still advances (keepalives)
$node->safe_psql('postgres',
	"SELECT pg_create_logical_replication_slot('none', 'pg_kappa')");
$node->safe_psql('postgres', "INSERT INTO a VALUES (2000, 'x')");
my $end3 = $node->lsn('insert');
($rc) = kr_run($node, [ '-S', 'none', '-f', "$dir/none.jsonl", '-o', 'tables=public.nothing',
	'-E', $end3 ]);
is($rc, 0, 'filtered stream reaches --endpos');
ok(-z "$dir/none.jsonl", 'filtered stream: nothing written');
ok(wait_for_flush($node, 'none', $end3), 'filtered stream: slot position advanced');

done_testing();
