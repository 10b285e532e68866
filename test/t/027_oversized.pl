# A change too large for the event log (pg_kappa.max_event_bytes, set
# small here to stand for the 1 GB a record cannot exceed) does not stop
# the worker: the table's capture is marked failed, with the reason, in the
# batch's transaction; nothing more of that table is logged (the log keeps
# a complete prefix), kappa.status shows the failed capture and the audit
# reports the log incomplete.  The other captured tables and every view go
# on (views carry large values through their buffers), the worker does not
# restart, and after kappa.uncapture all is normal again.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('oversized', extra_conf => "pg_kappa.max_event_bytes = '64kB'\n");
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE TABLE big (id int PRIMARY KEY, t text);
CREATE TABLE small (id int PRIMARY KEY, t text);
CREATE TABLE esc (id int PRIMARY KEY, t text);
INSERT INTO big VALUES (1, 'one');
INSERT INTO small VALUES (1, 'one');
SELECT kappa.capture('big');
SELECT kappa.capture('small');
SELECT kappa.capture('esc');
SELECT kappa.create_view('vbig', 'SELECT id, length(t) AS len, md5(t) AS h FROM big');
SELECT kappa.create_view('vsmall', 'SELECT id, t FROM small');
SELECT kappa.create_view('vesc', 'SELECT id, length(t) AS len FROM esc');
});
my $qbig = 'SELECT id, length(t) AS len, md5(t) AS h FROM big';
my $qsmall = 'SELECT id, t FROM small';
my $qesc = 'SELECT id, length(t) AS len FROM esc';

sub restarts
{
	return $node->safe_psql('postgres', 'SELECT restarts FROM kappa.worker_status()');
}

# changes (insert/update/delete records) logged for a table
sub logged
{
	my ($table) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM kappa.events(tables => '{$table}') e WHERE e->>'kind' IN ('insert', 'update', 'delete')");
}

sub capture_row
{
	my ($table) = @_;
	return $node->safe_psql('postgres',
		"SELECT state || '|' || coalesce(failed_lsn::text, '') || '|' || coalesce(last_error, '') FROM kappa.captures WHERE name = 'public.$table'");
}

$node->safe_psql('postgres', q{
INSERT INTO big VALUES (2, 'two');
INSERT INTO small VALUES (2, 'two');
});
view_matches($node, 'vbig', $qbig, 'before');
is(logged('big'), '2', 'big: snapshot and one insert logged');
# the worker that CREATE EXTENSION started found nothing to do and left
my $restarts = restarts();
cmp_ok($restarts, '<=', 1, 'worker started at most twice');
my $lsn_before = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');

# values over the limit: one transaction with a small change of big before
# the large one, and a change of small
$node->safe_psql('postgres', q{
BEGIN;
INSERT INTO big VALUES (3, 'three');
INSERT INTO big VALUES (4, repeat('x', 100000));
INSERT INTO small VALUES (3, 'three');
COMMIT;
});
my $failed_txn = $node->safe_psql('postgres', "SELECT pg_current_wal_insert_lsn()");
view_matches($node, 'vbig', $qbig, 'oversized value');
view_matches($node, 'vsmall', $qsmall, 'oversized value');
my $cap = capture_row('big');
like($cap, qr/^failed\|[0-9A-F]+\/[0-9A-F]+\|.*values take 10\d{4} bytes, more than pg_kappa.max_event_bytes \(65536 bytes\)/,
	'the capture of big is failed, with the reason');
my ($failed_lsn) = $cap =~ /^failed\|([^|]+)\|/;
is($node->safe_psql('postgres', "SELECT '$failed_lsn'::pg_lsn > '$lsn_before' AND '$failed_lsn'::pg_lsn < '$failed_txn'"),
	't', 'failed_lsn is the commit of that transaction');
like(capture_row('small'), qr/^active\|\|$/, 'small is still captured');
is(logged('big'), '2', 'nothing of that transaction is logged for big');
is(logged('small'), '3', 'small: its change in that transaction is logged');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM kappa.events() e WHERE e->>'kind' = 'commit' AND (e->>'changes')::int = 1
		   AND (e->>'lsn')::pg_lsn = (SELECT failed_lsn FROM kappa.captures WHERE name = 'public.big')}),
	'1', 'the commit record of that transaction counts the one change of small');
like($node->safe_psql('postgres', q{SELECT kind || '|' || state || '|' || last_error FROM kappa.status WHERE name = 'public.big'}),
	qr/^capture\|failed\|.*pg_kappa.max_event_bytes/, 'kappa.status shows the failed capture');
# a role that may not read the table sees the failure, not its reason
is($node->safe_psql('postgres', q{
CREATE ROLE oversized_reader;
SET ROLE oversized_reader;
SELECT state || '|' || coalesce(last_error, '(hidden)') FROM kappa.status WHERE name = 'public.big';
}), 'failed|(hidden)', "a failed capture's last error is hidden from who may not read its table");
is($node->safe_psql('postgres', q{
SET ROLE oversized_reader;
SELECT count(*) FROM kappa.captures;
}), '0', 'nor are the captures of tables it may not read listed to it');
is($node->safe_psql('postgres', q{
GRANT SELECT ON big TO oversized_reader;
SET ROLE oversized_reader;
SELECT name || '|' || state || '|' || (last_error IS NOT NULL) FROM kappa.captures;
}), 'public.big|failed|true', 'once it may, they are');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.status WHERE name = 'public.small'}),
	'0', 'an active capture has no status row');
my $audit = $node->safe_psql('postgres', q{SELECT "check" || '|' || object || '|' || detail FROM kappa.audit()});
like($audit, qr/^capture\|public\.big\|the event log of public\.big is incomplete/,
	'the audit reports the log of big incomplete');
is(scalar(split /\n/, $audit), 1, 'and nothing else');
ok($node->log_contains(qr/WARNING:  capture of table public\.big failed/), 'the server log says so');

# the worker goes on: later changes of every table, large values in views
$node->safe_psql('postgres', q{
INSERT INTO big VALUES (5, 'five');
UPDATE big SET t = repeat('y', 200000) WHERE id = 1;
INSERT INTO small VALUES (4, 'four');
UPDATE small SET t = 'TWO' WHERE id = 2;
});
view_matches($node, 'vbig', $qbig, 'after the failure');
view_matches($node, 'vsmall', $qsmall, 'after the failure');
is(logged('big'), '2', 'big: nothing more logged');
is(logged('small'), '5', 'small: every change logged');
like(capture_row('big'), qr/^failed\|\Q$failed_lsn\E\|/, 'failed_lsn stays at the first failure');

# replay does not rebuild a view from the incomplete log, only up to it
my ($stdout, $stderr);
$node->psql('postgres', q{SELECT kappa.replay('vbig', new_name => 'vbig_replayed')},
	stdout => \$stdout, stderr => \$stderr);
like($stderr, qr/the event log of table "big" is incomplete from \Q$failed_lsn\E/,
	'replay refuses the part of the log after the failure');
is($node->safe_psql('postgres', qq{SET client_min_messages = warning;
SELECT kappa.replay('vbig', until_lsn => '$lsn_before', new_name => 'vbig_before');
SELECT count(*) FROM vbig_before}),
	"vbig_before\n2", 'replay up to before the failure works');

# records over the limit while the values are not: escapes grow them.
# 12000 bytes of \x01 (a record of 72 kB, written directly) and 20000 of
# them (120 kB, written in a subtransaction)
foreach my $n (12000, 20000)
{
	$node->safe_psql('postgres', q{
SELECT kappa.uncapture('esc');
SELECT kappa.capture('esc');
INSERT INTO esc VALUES (} . $n . q{, repeat('"', 10000));
INSERT INTO esc VALUES (} . ($n + 1) . q{, repeat(chr(1), } . $n . q{));
INSERT INTO esc VALUES (} . ($n + 2) . q{, 'after');
});
	view_matches($node, 'vesc', $qesc, "escaped record of $n bytes of values");
	like(capture_row('esc'), qr/^failed\|.*its record takes \d+ bytes, more than pg_kappa.max_event_bytes/,
		"$n bytes of values: the record is too large, the capture failed");
	is($node->safe_psql('postgres',
			qq{SELECT count(*) FROM kappa.events(tables => '{esc}') e WHERE e->>'kind' = 'insert' AND e->'new'->>'id' = '$n'}),
		'1', "$n bytes of values: the change before it was logged, 20 kB of JSON");
	is($node->safe_psql('postgres',
			qq{SELECT count(*) FROM kappa.events(tables => '{esc}') e WHERE (e->'new'->>'id')::int > $n}),
		'0', "$n bytes of values: neither it nor anything after it");
}

is(restarts(), $restarts, 'the worker never restarted');
ok(!$node->log_contains(qr/Cannot enlarge string buffer|out of memory/), 'no memory error');
is($node->safe_psql('postgres', q{SELECT string_agg(state, ',') FROM kappa.views}),
	'running,running,running', 'every view is running');

# uncapture: all normal again; capture again: a new log
$node->safe_psql('postgres', q{SELECT kappa.uncapture('big'); SELECT kappa.uncapture('esc');});
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.status WHERE kind = 'capture'}), '0',
	'uncaptured: no failed capture in kappa.status');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.audit()}), '0', 'uncaptured: the audit finds nothing');
$node->safe_psql('postgres', q{
UPDATE big SET t = 'small again' WHERE id = 1;
DELETE FROM big WHERE id = 4;
SELECT kappa.capture('big');
INSERT INTO big VALUES (6, 'six');
UPDATE big SET t = 'seven' WHERE id = 5;
INSERT INTO small VALUES (5, 'five');
});
view_matches($node, 'vbig', $qbig, 'captured again');
view_matches($node, 'vsmall', $qsmall, 'captured again');
like(capture_row('big'), qr/^active\|\|$/, 'captured again: active');
is(logged('big'), '8', 'captured again: the snapshot (4 rows) and both changes are logged');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.audit()}), '0', 'the audit finds nothing');
is(restarts(), $restarts, 'the worker never restarted');
$node->stop;
done_testing();
