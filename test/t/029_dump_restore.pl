# pg_dump and pg_restore: a database with derived views (filter and
# projection, GROUP BY aggregate, join, one renamed since it was created,
# one paused) and captured tables with logged changes is dumped plain
# (pg_dump | psql) and in the custom format (pg_dump -Fc, pg_restore) into
# new databases.  Each restore runs without an error or a warning; after
# SELECT * FROM kappa.restore() the views are maintained again, ids go on
# where they left off, the event log and its hash chain are intact and the
# log goes on.  A restored database dumped and restored again keeps its
# chain through both restores.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KappaTest;

my $node = kappa_node('dump_restore');
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $timeout = $PostgreSQL::Test::Utils::timeout_default;

# --- the database to dump

# WAL ahead of the other cluster's (see the end)
$node->safe_psql('postgres', 'CREATE TABLE wal_pad (x int)');
for (1 .. 3)
{
	$node->safe_psql('postgres', 'INSERT INTO wal_pad VALUES (1); SELECT pg_switch_wal()');
}
$node->safe_psql('postgres', q{
CREATE DATABASE src;
CREATE ROLE kr_alice LOGIN;
CREATE ROLE kr_bob LOGIN;
});
$node->safe_psql('src', q{
CREATE EXTENSION pg_kappa;
CREATE SCHEMA app AUTHORIZATION kr_alice;
GRANT USAGE ON SCHEMA app TO kr_bob;
GRANT CREATE ON SCHEMA app TO kr_bob;
SET ROLE kr_bob;
-- a source of another owner: alice reads it by a grant, which pg_restore
-- restores only at its very end
CREATE TABLE app.customers (id int PRIMARY KEY, name text, region text);
GRANT SELECT ON app.customers TO kr_alice;
ALTER TABLE app.customers REPLICA IDENTITY FULL;  -- a view of alice's reads it
INSERT INTO app.customers SELECT g, 'customer ' || g, CASE WHEN g % 2 = 0 THEN 'north' ELSE 'south' END
  FROM generate_series(1, 20) g;
RESET ROLE;
SET ROLE kr_alice;
CREATE TABLE app.orders (id int PRIMARY KEY, customer int NOT NULL, amount numeric(10,2), status text);
INSERT INTO app.orders SELECT g, g % 20 + 1, g * 1.25, CASE WHEN g % 3 = 0 THEN 'open' ELSE 'done' END
  FROM generate_series(1, 300) g;
SELECT kappa.create_view('app.open_orders',
  'SELECT id, customer, amount FROM app.orders WHERE status = ''open''');
SELECT kappa.create_view('app.by_customer',
  'SELECT customer, count(*) AS n, sum(amount) AS total, max(amount) AS biggest FROM app.orders GROUP BY customer');
SELECT kappa.create_view('app.order_regions',
  'SELECT o.id, c.id AS cid, c.region, o.amount FROM app.orders o JOIN app.customers c ON c.id = o.customer');
SELECT kappa.create_view('app.totals_v1',
  'SELECT status, count(*) AS n FROM app.orders GROUP BY status');
-- renamed after it was created: found again by its guard trigger
ALTER TABLE app.totals_v1 RENAME TO totals;
SELECT kappa.create_view('app.paused_view', 'SELECT id, amount FROM app.orders WHERE amount > 300');
SELECT kappa.alter_view('app.paused_view', paused => true);
RESET ROLE;
SELECT kappa.capture('app.orders', retain => '30 days');
SELECT kappa.capture('app.customers');
});
$node->safe_psql('src', q{
UPDATE app.orders SET status = 'open' WHERE id <= 10;
DELETE FROM app.orders WHERE id BETWEEN 290 AND 300;
INSERT INTO app.orders SELECT g, g % 20 + 1, 2.5, 'open' FROM generate_series(301, 320) g;
UPDATE app.customers SET region = 'east' WHERE id = 7;
});
$node->safe_psql('src', q{
SELECT kappa.wait(relid::regclass, timeout => '60s') FROM kappa.views WHERE state = 'running';
SELECT kappa.audit();
});

my @views = qw(app.open_orders app.by_customer app.order_regions app.totals);
my %queries = (
	'app.open_orders' => q{SELECT id, customer, amount FROM app.orders WHERE status = 'open'},
	'app.by_customer' => q{SELECT customer, count(*) AS n, sum(amount) AS total, max(amount) AS biggest FROM app.orders GROUP BY customer},
	'app.order_regions' => q{SELECT o.id, c.id AS cid, c.region, o.amount FROM app.orders o JOIN app.customers c ON c.id = o.customer},
	'app.totals' => q{SELECT status, count(*) AS n FROM app.orders GROUP BY status});

is($node->safe_psql('src', 'SELECT ok FROM kappa.audit_chain()'), 't', 'source database: chain intact');
my $src_events = $node->safe_psql('src', 'SELECT e::text FROM kappa.events() e');
my $src_batches = $node->safe_psql('src', 'SELECT count(*) FROM kappa.event_log');
ok($src_batches >= 3, "source database: $src_batches batches logged");
my $src_views = $node->safe_psql('src', 'SELECT id, name FROM kappa.views ORDER BY id');
my $src_max_id = $node->safe_psql('src', 'SELECT max(id) FROM kappa.views');

my ($out, $err);

# --- pg_dump | psql

$node->safe_psql('postgres', 'CREATE DATABASE dst_plain');
$err = '';
my $ok = IPC::Run::run(
	[ 'pg_dump', '-d', $node->connstr('src') ], '|',
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst_plain') ],
	'>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
ok($ok, 'pg_dump | psql: exit status 0');
is($err, '', 'pg_dump | psql: nothing on stderr');

# --- pg_dump -Fc, pg_restore (one derived table left out of the dump)

$node->safe_psql('postgres', 'CREATE DATABASE dst_custom');
$node->command_ok(
	[ 'pg_dump', '-Fc', '-f', "$tmp/src.dump", '--exclude-table', 'app.paused_view', '-d', $node->connstr('src') ],
	'pg_dump -Fc');
$err = '';
$ok = IPC::Run::run(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst_custom'), "$tmp/src.dump" ],
	'>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
ok($ok, 'pg_restore: exit status 0');
is($err, '', 'pg_restore: nothing on stderr');

# Checks on a restored database, before and after kappa.restore().
# $expect: kappa.restore's rows as kind|name|action.
sub check_restored
{
	my ($db, $expect, $label) = @_;

	# before kappa.restore(): nothing runs on the old OIDs
	is($node->safe_psql($db, 'SELECT count(*) FROM kappa.views'), '0',
		"$label: no view is registered before kappa.restore()");
	is($node->safe_psql($db, 'SELECT count(*) FROM kappa.captures'), '0',
		"$label: no capture is registered before kappa.restore()");
	is($node->safe_psql($db, 'SELECT count(*) FROM app.open_orders'),
		$node->safe_psql('src', 'SELECT count(*) FROM app.open_orders'),
		"$label: the derived tables hold their dumped rows");
	is($node->safe_psql($db, 'SELECT ok FROM kappa.audit_chain()'), 't',
		"$label: the restored chain verifies");
	is($node->safe_psql($db, 'SELECT e::text FROM kappa.events() e'), $src_events,
		"$label: kappa.events returns the restored events");
	is($node->safe_psql($db, 'SELECT last_value FROM kappa.views_id_seq'), $src_max_id,
		"$label: the view id sequence is restored");

	is($node->safe_psql($db,
			q{SELECT kind || '|' || name || '|' || action FROM kappa.restore() ORDER BY kind, name}),
		$expect, "$label: kappa.restore() rebuilds the views and captures the tables again");
	is($node->safe_psql($db, q{SELECT count(*) FROM kappa.restore() WHERE action <> 'missing'}), '0',
		"$label: a second kappa.restore() has nothing to do but report what is missing");

	is($node->safe_psql($db, q{SELECT string_agg(id || ':' || name || ':' || state, ',' ORDER BY id) FROM kappa.views}),
		'1:app.open_orders:running,2:app.by_customer:running,3:app.order_regions:running,4:app.totals:running'
		  . ($label eq 'pg_dump | psql' ? ',5:app.paused_view:paused' : ''),
		"$label: the views keep their ids and states, under their tables' names now");
	is($node->safe_psql($db, q{SELECT count(*) FROM kappa.views v
			WHERE relid <> pg_catalog.to_regclass(name)
			   OR EXISTS (SELECT 1 FROM unnest(v.arrangements) a
			               WHERE a::regclass::text NOT LIKE 'kappa_v' || v.id || '.%')}),
		'0', "$label: the catalog rows name this database's tables");
	is($node->safe_psql($db, q{SELECT string_agg(name, ',' ORDER BY name) FROM kappa.captures}),
		'app.customers,app.orders', "$label: both tables are captured again");
	is($node->safe_psql($db, q{SELECT retain FROM kappa.captures WHERE name = 'app.orders'}),
		'30 days', "$label: with their retention");

	# the sources change: the views follow
	$node->safe_psql($db, q{
INSERT INTO app.orders SELECT g, g % 20 + 1, 9.75, 'open' FROM generate_series(1000, 1040) g;
UPDATE app.orders SET status = 'done', amount = amount + 1 WHERE id BETWEEN 1 AND 30;
DELETE FROM app.orders WHERE id BETWEEN 100 AND 120;
UPDATE app.customers SET region = 'west' WHERE id IN (3, 4);
});
	foreach my $v (@views)
	{
		is($node->safe_psql($db, qq{SELECT kappa.wait('$v', timeout => '120s')}), 't',
			"$label: $v catches up");
		is($node->safe_psql($db, qq{SELECT count(*) FROM kappa.verify('$v')}), '0',
			"$label: $v verifies");
		my $q = $queries{$v};
		is($node->safe_psql($db, qq{SELECT (SELECT count(*) FROM (($q) EXCEPT ALL SELECT * FROM $v) a)
			+ (SELECT count(*) FROM (SELECT * FROM $v EXCEPT ALL ($q)) b)}),
			'0', "$label: $v equals its query");
	}
	is($node->safe_psql($db, q{SELECT count(*) FROM kappa.verify_all() WHERE NOT ok}), '0',
		"$label: verify_all finds nothing");

	# a new view: its id follows the restored ones
	is($node->safe_psql($db, q{SET ROLE kr_alice;
SELECT kappa.create_view('app.new_view', 'SELECT id, amount FROM app.orders WHERE amount < 5');
RESET ROLE;
SELECT id FROM kappa.views WHERE name = 'app.new_view'}),
		"app.new_view\n" . ($src_max_id + 1), "$label: create_view works, with the next id");
	is($node->safe_psql($db, q{SELECT kappa.wait('app.new_view', timeout => '60s');
SELECT count(*) FROM kappa.verify('app.new_view')}), "t\n0", "$label: the new view is maintained");

	# the log: restored batches, a restore row, then this database's
	is($node->safe_psql($db, q{SELECT ok || ' ' || detail FROM kappa.audit_chain()}),
		'true ' . $node->safe_psql($db, 'SELECT count(*) FROM kappa.event_log') .
		  ' batches, hash chain and LSN order intact',
		"$label: kappa.audit_chain reports the chain intact");
	is($node->safe_psql($db, q{SELECT count(*) FROM kappa.event_log WHERE kind = 'restore'}), '1',
		"$label: one restore row");
	is($node->safe_psql($db, q{SELECT count(*) FROM kappa.event_log
		WHERE batch_id > (SELECT batch_id FROM kappa.event_log WHERE kind = 'restore') AND kind = 'batch'}) > 0
		  ? 'yes' : 'no', 'yes', "$label: this database's changes are logged after it");
	is($node->safe_psql($db, q{SELECT count(*) FROM kappa.audit()}),
		'0', "$label: kappa.audit finds nothing wrong");
	my $events = $node->safe_psql($db, 'SELECT e::text FROM kappa.events() e');
	is(substr($events, 0, length($src_events)), $src_events,
		"$label: kappa.events returns the restored events first");
	like($node->safe_psql($db, q{SELECT count(*) FROM kappa.events(tables => '{app.orders}') e
		WHERE e->>'kind' = 'insert' AND (e->'new'->>'id')::int BETWEEN 1000 AND 1040}), qr/^41$/,
		"$label: and this database's changes of a table by name");

	# the log is still append-only
	my ($rc, $o, $e) = $node->psql($db, 'DELETE FROM kappa.event_log');
	like($e, qr/the event log is append-only/, "$label: the log cannot be deleted from");
	($rc, $o, $e) = $node->psql($db,
		q{INSERT INTO kappa.event_log SELECT batch_id + 1000, kind, first_lsn, last_lsn, txn_count,
		  change_count, tables, table_names, events, prev_hash, hash FROM kappa.event_log WHERE batch_id = 1});
	like($e, qr/the event log is append-only/, "$label: nor written to by hand");
	return;
}

my $all = "capture|app.customers|captured\ncapture|app.orders|captured\nevent log|kappa.event_log|continued\n"
  . "view|app.by_customer|rebuilt\nview|app.open_orders|rebuilt\nview|app.order_regions|rebuilt\n";
check_restored('dst_plain', $all . "view|app.paused_view|rebuilt, paused\nview|app.totals|rebuilt",
	'pg_dump | psql');
check_restored('dst_custom', $all . "view|app.paused_view|missing\nview|app.totals|rebuilt",
	'pg_dump -Fc | pg_restore');

# the view left out of the dump stays pending until it is discarded
is($node->safe_psql('dst_custom', q{SELECT count(*) FROM kappa.restore_pending WHERE kind = 'view'}), '1',
	'a view without its table stays pending');
is($node->safe_psql('dst_custom', q{SELECT kind || '|' || name || '|' || action FROM kappa.restore(discard_missing => true)}),
	'view|app.paused_view|discarded', 'kappa.restore(discard_missing => true) forgets it');
is($node->safe_psql('dst_custom', 'SELECT count(*) FROM kappa.restore_pending'), '0',
	'nothing is pending any more');

# a paused view comes back paused
is($node->safe_psql('dst_plain', q{SELECT state FROM kappa.views WHERE name = 'app.paused_view'}), 'paused',
	'the paused view is restored paused');

# only the extension's owner may restore
my ($rc, $o, $e) = $node->psql('dst_plain', 'SET ROLE kr_alice; SELECT * FROM kappa.restore()');
like($e, qr/permission denied for function restore/, 'kappa.restore() is for the extension owner');

# --- a restored database, dumped and restored again (directory format, parallel)

$node->command_ok(
	[ 'pg_dump', '-Fd', '-f', "$tmp/again.dir", '-d', $node->connstr('dst_plain') ],
	'pg_dump -Fd of the restored database');
$node->safe_psql('postgres', 'CREATE DATABASE dst_again');
$err = '';
$ok = IPC::Run::run(
	[ 'pg_restore', '--exit-on-error', '-j', '2', '-d', $node->connstr('dst_again'), "$tmp/again.dir" ],
	'>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
ok($ok, 'pg_restore -j 2: exit status 0');
is($err, '', 'pg_restore -j 2: nothing on stderr');
is($node->safe_psql('dst_again', q{SELECT count(*) FROM kappa.restore() WHERE action NOT IN ('rebuilt', 'rebuilt, paused', 'captured', 'continued')}),
	'0', 'restored again: every view and capture is restored');
$node->safe_psql('dst_again', q{INSERT INTO app.orders VALUES (5000, 1, 1, 'open')});
is($node->safe_psql('dst_again', q{SELECT kappa.wait('app.open_orders', timeout => '60s');
SELECT count(*) FROM kappa.verify('app.open_orders')}), "t\n0", 'restored again: views are maintained');
is($node->safe_psql('dst_again', q{SELECT kappa.wait('app.new_view', timeout => '60s');
SELECT count(*) FROM kappa.verify('app.new_view')}), "t\n0", 'restored again: so is the view created after the first restore');
is($node->safe_psql('dst_again', q{SELECT count(*) FROM kappa.event_log WHERE kind = 'restore'}), '2',
	'restored again: two restore rows');
like($node->safe_psql('dst_again', q{SELECT ok || ' ' || detail FROM kappa.audit_chain()}),
	qr/^true \d+ batches, hash chain and LSN order intact$/, 'restored again: the chain is intact');
is($node->safe_psql('dst_again', q{SELECT string_agg(name, ',' ORDER BY name) FROM kappa.captures}),
	'app.customers,app.orders', 'restored again: both tables are captured');

# --- kappa.capture before kappa.restore(): the restore row comes first

$node->safe_psql('postgres', 'CREATE DATABASE dst_capture');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst_capture'), "$tmp/src.dump" ],
	'pg_restore into a database that captures first');
$node->safe_psql('dst_capture', q{SELECT kappa.capture('app.customers')});
is($node->safe_psql('dst_capture', q{SELECT string_agg(kind, ',' ORDER BY batch_id) FROM kappa.event_log
	WHERE batch_id > } . $src_batches), 'restore,snapshot',
	'capture after a restore: the restore row, then the snapshot');
is($node->safe_psql('dst_capture',
		q{SELECT kind || '|' || name || '|' || action FROM kappa.restore() WHERE kind <> 'view' ORDER BY kind, name}),
	"capture|app.customers|skipped\ncapture|app.orders|captured",
	'kappa.restore() then captures only what is not captured yet');
is($node->safe_psql('dst_capture', q{SELECT count(*) FROM kappa.event_log WHERE kind = 'restore'}), '1',
	'and appends no second restore row');
$node->safe_psql('dst_capture', q{UPDATE app.customers SET name = 'x' WHERE id = 1});
is($node->safe_psql('dst_capture', q{SELECT kappa.wait('app.order_regions', timeout => '60s');
SELECT ok FROM kappa.audit_chain()}), "t\nt", 'the chain is intact');

# --- an installation from before 0.3: after ALTER EXTENSION UPDATE its
# internal tables are not dumped, and dropping a view keeps the extension

$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('upgraded', q{
CREATE EXTENSION pg_kappa VERSION '0.2';
CREATE TABLE t (id int PRIMARY KEY, v int);
INSERT INTO t SELECT g, g % 3 FROM generate_series(1, 10) g;
SELECT kappa.create_view('t_sum', 'SELECT v, count(*) AS n FROM t GROUP BY v');
SELECT kappa.create_view('t_copy', 'SELECT id, v FROM t');
ALTER EXTENSION pg_kappa UPDATE;
});
$node->command_ok(
	[ 'pg_dump', '-f', "$tmp/upgraded.sql", '-d', $node->connstr('upgraded') ],
	'pg_dump of an upgraded installation');
unlike(slurp_file("$tmp/upgraded.sql"), qr/kappa_v\d/, 'its internal tables are not dumped');
$node->safe_psql('postgres', 'CREATE DATABASE upgraded_copy');
$err = '';
$ok = IPC::Run::run(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', "$tmp/upgraded.sql", '-d', $node->connstr('upgraded_copy') ],
	'>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
ok($ok && $err eq '', 'it restores without errors');
is($node->safe_psql('upgraded_copy', q{SELECT string_agg(action, ',' ORDER BY name) FROM kappa.restore()}),
	'rebuilt,rebuilt', 'its views (found by name: their triggers carry no id) are rebuilt');
$node->safe_psql('upgraded', 'DROP TABLE t_copy');
is($node->safe_psql('upgraded', q{SELECT count(*) FROM pg_extension WHERE extname = 'pg_kappa'}), '1',
	'DROP TABLE of a derived table drops its internal schema, not the extension');
$node->safe_psql('upgraded', q{SELECT kappa.drop_view('t_sum')});
is($node->safe_psql('upgraded', q{SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'kappa\_v%'}), '0',
	'no internal schema is left');

# --- into another cluster, whose WAL is behind the dumped log's positions
# and where the old OIDs may well be other tables'

my $node2 = kappa_node('dump_restore_target');
$node2->safe_psql('postgres', q{
CREATE ROLE kr_alice LOGIN;
CREATE ROLE kr_bob LOGIN;
CREATE DATABASE dst_other;
});
$err = '';
$ok = IPC::Run::run(
	[ 'pg_restore', '--exit-on-error', '-d', $node2->connstr('dst_other'), "$tmp/src.dump" ],
	'>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
ok($ok && $err eq '', 'pg_restore into another cluster: no error');
is($node2->safe_psql('dst_other', q{SELECT count(*) FROM kappa.restore() WHERE action NOT IN ('rebuilt', 'captured', 'continued', 'missing')}),
	'0', 'another cluster: kappa.restore() restores everything there is');
$node2->safe_psql('dst_other', q{
INSERT INTO app.orders SELECT g, g % 20 + 1, 4.5, 'open' FROM generate_series(2000, 2010) g;
UPDATE app.customers SET region = 'far' WHERE id = 5;
DELETE FROM app.orders WHERE id BETWEEN 200 AND 210;
});
is($node2->safe_psql('dst_other', q{SELECT (SELECT last_lsn FROM kappa.event_log WHERE kind = 'restore')
	< (SELECT min(first_lsn) FROM kappa.event_log WHERE kind <> 'restore')}), 't',
	'another cluster: the restore row is at a position below the restored rows');
foreach my $v (@views)
{
	is($node2->safe_psql('dst_other', qq{SELECT kappa.wait('$v', timeout => '120s');
SELECT count(*) FROM kappa.verify('$v')}), "t\n0", "another cluster: $v is maintained");
}
is($node2->safe_psql('dst_other', q{SELECT count(*) FROM kappa.event_log
	WHERE kind = 'batch' AND batch_id > (SELECT batch_id FROM kappa.event_log WHERE kind = 'restore')}) > 0
	  ? 'yes' : 'no', 'yes', 'another cluster: its changes are logged, at positions below the old ones');
like($node2->safe_psql('dst_other', q{SELECT ok || ' ' || detail FROM kappa.audit_chain()}),
	qr/^true \d+ batches, hash chain and LSN order intact$/, 'another cluster: the chain is intact');
is($node2->safe_psql('dst_other', q{SELECT count(*) FROM kappa.audit()}), '0',
	'another cluster: kappa.audit finds nothing wrong');
$node2->stop;

# the source database is untouched by all this
is($node->safe_psql('src', 'SELECT id, name FROM kappa.views ORDER BY id'), $src_views,
	'the source database keeps its views');

$node->stop;
done_testing();
