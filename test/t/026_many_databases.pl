# More databases than worker slots: pg_kappa.max_databases slots are held
# only by databases that have derived views (or captured tables), not by
# every database the launcher sees.  A database that asks for a slot when
# all are in use gets a clear error and is left as it was; a slot comes back
# when its database's last view is dropped, or when the database is, and
# another database can then take it.  Over time, views live in more distinct
# databases than there are slots, and those that hold one are maintained,
# also across a restart.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $nslots = 4;
my $ndbs = 8;
my $node = kappa_node('many_databases',
	extra_conf => "pg_kappa.max_databases = $nslots\n");

is($node->safe_psql('postgres', 'SHOW pg_kappa.max_databases'), $nslots,
	'pg_kappa.max_databases is set');
# for kappa.worker_status(); postgres itself never has a view
$node->safe_psql('postgres', 'CREATE EXTENSION pg_kappa');

my $view_sql = 'SELECT v % 3 AS k, count(*) AS n, sum(v) AS s FROM t GROUP BY v % 3';
my $status = q{SELECT count(*) FROM kappa.worker_status()};
my $status_dbs = q{SELECT coalesce(string_agg(d.datname, ',' ORDER BY d.datname), '')
  FROM kappa.worker_status() w JOIN pg_database d ON d.oid = w.database};

my %next_id;
foreach my $i (1 .. $ndbs)
{
	$node->safe_psql('postgres', "CREATE DATABASE db$i");
	$node->safe_psql("db$i", q{
CREATE EXTENSION pg_kappa;
CREATE TABLE t (id int PRIMARY KEY, v int);
INSERT INTO t SELECT g, g FROM generate_series(1, 20) g;
});
	$next_id{"db$i"} = 21;
}

# Write to the source, wait for the view, and compare it with its query.
sub check_view
{
	my ($db, $label) = @_;
	my $id = $next_id{$db}++;
	my $res = $node->safe_psql($db, qq{
INSERT INTO t VALUES ($id, $id);
UPDATE t SET v = v + 1 WHERE id = 1;
SELECT kappa.wait('tv', timeout => '60s');
SELECT (SELECT count(*) FROM (($view_sql) EXCEPT ALL SELECT * FROM tv) a) || ' ' ||
       (SELECT count(*) FROM (SELECT * FROM tv EXCEPT ALL ($view_sql)) b);
});
	is($res, "t\n0 0", "$label: the view in $db is maintained");
}

# Create the view in a database; returns psql's exit code and stderr.
sub create_view
{
	my ($db) = @_;
	my ($ret, undef, $err) = $node->psql($db,
		qq{SELECT kappa.create_view('tv', '$view_sql')});
	return ($ret, $err);
}

sub slots_in_use_becomes
{
	my ($n, $label) = @_;
	ok($node->poll_query_until('postgres', "SELECT ($status) = $n"), $label)
	  or diag('slots: ' . $node->safe_psql('postgres', $status_dbs));
}

sub kappa_slot_of
{
	my ($db) = @_;
	return $node->safe_psql('postgres',
		qq{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pg_kappa_' || (SELECT oid FROM pg_database WHERE datname = '$db')});
}

# Databases with pg_kappa but no view: no slot, also after a restart (the
# launcher does not claim a slot per database, nor keep one).
$node->restart;
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_kappa launcher'})
  or die 'no launcher';
sleep(2);
is($node->safe_psql('postgres', $status), '0',
	"$ndbs databases with pg_kappa and no view hold no worker slot");

# a view in each of db1..db4 takes the four slots
foreach my $i (1 .. $nslots)
{
	my ($ret, $err) = create_view("db$i");
	is($ret, 0, "view created in db$i") or diag($err);
}
is($node->safe_psql('postgres', $status), $nslots, 'one slot per database with a view');
check_view("db$_", 'all slots in use') foreach (1 .. $nslots);

# a fifth database gets the clear error, and nothing of the view is left
{
	my ($ret, $err) = create_view('db5');
	isnt($ret, 0, 'create_view in a fifth database fails');
	like($err, qr/ERROR:  no free pg_kappa worker slot for database "db5"/,
		'the error names the database');
	like($err, qr/HINT:  .*pg_kappa\.max_databases/, 'the hint names pg_kappa.max_databases');
	is($node->safe_psql('db5',
		q{SELECT (SELECT count(*) FROM kappa.views) || ' ' || (to_regclass('tv') IS NULL)}),
		'0 true', 'the failed create_view left no view behind');
	is($node->safe_psql('postgres', $status), $nslots, 'and took no slot');

	($ret, undef, $err) = $node->psql('db5', q{SELECT kappa.capture('t')});
	like($err, qr/no free pg_kappa worker slot for database "db5"/,
		'kappa.capture gets the same error');
	is($node->safe_psql('db5', q{SELECT count(*) FROM kappa.captures}), '0',
		'and captures nothing');
}

# dropping db1's only view gives its slot back; db5 can then have one
$node->safe_psql('db1', q{SELECT kappa.drop_view('tv')});
slots_in_use_becomes($nslots - 1, 'dropping the last view of a database frees its slot');

# A pg_kappa replication slot left behind in db5 by the failed calls (if
# any) is visited with the freed slot and dropped, and the slot given back.
ok($node->poll_query_until('postgres',
		"SELECT (" . $status . ") = " . ($nslots - 1)
		  . " AND NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'pg_kappa_' || (SELECT oid FROM pg_database WHERE datname = 'db5'))"),
	'no replication slot is left in db5');

{
	my ($ret, $err) = create_view('db5');
	is($ret, 0, 'with a slot free, db5 gets its view') or diag($err);
}
is($node->safe_psql('postgres', $status_dbs), 'db2,db3,db4,db5',
	'the slots belong to the databases with views');
check_view('db5', 'after taking the freed slot');

# again: db2 gives its slot to db6 (six distinct databases so far)
$node->safe_psql('db2', q{SELECT kappa.drop_view('tv')});
slots_in_use_becomes($nslots - 1, 'db2 gives its slot back');
{
	my ($ret, $err) = create_view('db6');
	is($ret, 0, 'db6 gets its view') or diag($err);
}
check_view('db6', 'a sixth database');
is(kappa_slot_of('db2'), '0', 'db2 has no replication slot any more');

# Dropping a database frees its slot too.  DROP DATABASE refuses while a
# worker has the database's replication slot in use, so the workers are
# turned off first; the slots stay with their databases meanwhile.
{
	my ($ret, $err) = create_view('db7');
	like($err, qr/no free pg_kappa worker slot for database "db7"/, 'db7 must wait');
}
$node->append_conf('postgresql.conf', "pg_kappa.enabled = off\n");
$node->reload;
$node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pg_kappa apply worker'})
  or die 'workers not stopped';
is($node->safe_psql('postgres', $status), $nslots, 'with the workers off, the slots are kept');
$node->safe_psql('postgres', 'DROP DATABASE db3');
{
	my ($ret, $err) = create_view('db7');
	is($ret, 0, 'db7 gets the slot of the dropped database') or diag($err);
}
is($node->safe_psql('postgres', $status_dbs), 'db4,db5,db6,db7',
	'the slots belong to the databases with views');
$node->append_conf('postgresql.conf', "pg_kappa.enabled = on\n");
$node->reload;
check_view("db$_", 'after slots changed hands') foreach (4 .. 7);

# after a restart, the databases with views get their slots back, and only
# they do
$node->restart;
slots_in_use_becomes($nslots, 'after a restart the databases with views have slots');
is($node->safe_psql('postgres', $status_dbs), 'db4,db5,db6,db7',
	'and only they do');
check_view("db$_", 'after a restart') foreach (4 .. 7);
{
	my ($ret, $err) = create_view('db8');
	like($err, qr/no free pg_kappa worker slot for database "db8"/,
		'after a restart the limit still holds');
}
is($node->safe_psql('db1', q{SELECT count(*) FROM kappa.views}), '0',
	'db1 has no view');
is(kappa_slot_of('db1'), '0', 'and no replication slot');

# Fewer slots than databases with views (the setting was lowered): those
# that get none are reported, and catch up once the setting is raised.
$node->append_conf('postgresql.conf', "pg_kappa.max_databases = 2\n");
my $log_offset = -s $node->logfile;
$node->restart;
slots_in_use_becomes(2, 'with two slots, two databases with views have them');
ok($node->wait_for_log(qr/WARNING:  no free pg_kappa worker slot for database \d+/, $log_offset),
	'the launcher reports the databases left without a slot');
foreach my $db (map { "db$_" } 4 .. 7)
{
	my $id = $next_id{$db}++;
	$node->safe_psql($db, "INSERT INTO t VALUES ($id, 0)");
}
$node->append_conf('postgresql.conf', "pg_kappa.max_databases = $nslots\n");
$node->restart;
slots_in_use_becomes($nslots, 'with the slots back, every database with views has one');
check_view("db$_", 'after the setting was raised again') foreach (4 .. 7);

$node->stop;
done_testing();
