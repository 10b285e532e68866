# Bounded WAL: a paused view that holds back more than
# pg_kappa.max_retained_wal is marked stale and lets the WAL go; a slot
# invalidated by max_slot_wal_keep_size (the worker was not running) makes
# its views stale instead of silently wrong; new views work afterwards.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('wal_limit', extra_conf => "max_wal_size = 64MB\nmin_wal_size = 32MB\n");
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE TABLE src (id int PRIMARY KEY, v int);
CREATE TABLE filler (id serial PRIMARY KEY, pad text);
INSERT INTO src SELECT g, g FROM generate_series(1, 10) g;
SELECT kappa.create_view('keep', 'SELECT id, v FROM src');
SELECT kappa.create_view('held', 'SELECT count(*) AS n, sum(v) AS s FROM src');
SELECT kappa.alter_view('held', paused => true);
});

sub make_wal
{
	my ($mb) = @_;
	$node->safe_psql('postgres',
		"INSERT INTO filler (pad) SELECT repeat('x', 1000) FROM generate_series(1, " . ($mb * 1000) . ")");
}

# the paused view holds the slot back ...
$node->safe_psql('postgres', 'INSERT INTO src VALUES (11, 11)');
make_wal(3);
$node->safe_psql('postgres', 'SELECT kappa.wait(\'keep\')');
my $held = $node->safe_psql('postgres',
	q{SELECT lag_bytes > 2 * 1024 * 1024 FROM kappa.status WHERE kind = 'slot'});
is($held, 't', 'a paused view holds WAL back');

# ... until the limit says otherwise
$node->append_conf('postgresql.conf', "pg_kappa.max_retained_wal = 1MB\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT state = 'stale' FROM kappa.views WHERE name = 'public.held'})
  or die 'view did not become stale';
like($node->safe_psql('postgres', q{SELECT last_error FROM kappa.views WHERE name = 'public.held'}),
	qr/pg_kappa.max_retained_wal/, 'the stale view says why');
$node->safe_psql('postgres', 'INSERT INTO src VALUES (12, 12)');
$node->safe_psql('postgres', q{SELECT kappa.wait('keep')});
$node->poll_query_until('postgres',
	q{SELECT lag_bytes < 1024 * 1024 FROM kappa.status WHERE kind = 'slot'})
  or die 'slot still holds WAL';
pass('the slot lets the WAL go');
my ($ret, $out, $err) = $node->psql('postgres', q{SELECT kappa.wait('held')});
like($err, qr/derived view "held" is stale/, 'waiting on a stale view is an error');
is($node->safe_psql('postgres', q{SELECT count(*) FROM keep}), '12', 'the running view kept going');

# a worker that does not run, and a slot past max_slot_wal_keep_size
$node->append_conf('postgresql.conf', "pg_kappa.enabled = off\nmax_slot_wal_keep_size = 2MB\n");
$node->reload;
$node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pg_kappa apply worker'})
  or die 'worker still running';
$node->safe_psql('postgres', 'INSERT INTO src VALUES (13, 13)');
for (1 .. 4)
{
	make_wal(1);
	$node->safe_psql('postgres', 'SELECT pg_switch_wal(); CHECKPOINT;');
}
$node->poll_query_until('postgres',
	q{SELECT wal_status = 'lost' FROM pg_replication_slots WHERE slot_name LIKE 'pg_kappa%'})
  or die 'slot was not invalidated';
$node->append_conf('postgresql.conf', "pg_kappa.enabled = on\nmax_slot_wal_keep_size = -1\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT state = 'stale' FROM kappa.views WHERE name = 'public.keep'})
  or die 'view of the invalidated slot did not become stale';
like($node->safe_psql('postgres', q{SELECT last_error FROM kappa.views WHERE name = 'public.keep'}),
	qr/max_slot_wal_keep_size/, 'it says why');
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_replication_slots WHERE slot_name LIKE 'pg_kappa%'})
  or die 'invalidated slot not dropped';
pass('the invalidated slot is gone');

# a new view starts afresh
$node->safe_psql('postgres', q{SELECT kappa.create_view('fresh', 'SELECT id, v FROM src')});
$node->safe_psql('postgres', 'INSERT INTO src VALUES (14, 14)');
is($node->safe_psql('postgres', q{SELECT kappa.wait('fresh'); SELECT count(*) FROM fresh}),
	"t\n14", 'a new view is maintained');

# the stale view, built again around its table, is maintained again
$node->safe_psql('postgres', q{SELECT kappa.alter_view('keep', rebuild => true)});
$node->safe_psql('postgres', 'INSERT INTO src VALUES (15, 15)');
is($node->safe_psql('postgres', q{SELECT kappa.wait('keep'); SELECT state FROM kappa.views WHERE name = 'public.keep'; SELECT count(*) FROM kappa.verify('keep')}),
	"t\nrunning\n0", 'a stale view rebuilt is running and exact');
$node->stop;
done_testing();
