# The first two views of a database made at once.  The first makes the
# database's logical replication slot, which starts where it finds a
# consistent point: after every transaction that held an xid when it began
# has ended.  The second must not go on while that slot is still being
# made: its view, and a change committed right after it, would come before
# the slot's start, the change would never be decoded for the view, and
# kappa.wait would not wait for it (the view silently missing a row).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('first_views_at_once');
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE TABLE h (id int PRIMARY KEY);
CREATE TABLE t1 (id int PRIMARY KEY);
CREATE TABLE t2 (id int PRIMARY KEY);
INSERT INTO t1 VALUES (1);
INSERT INTO t2 VALUES (1);
});

# With the workers off, a transaction with an xid (h's row) holding the
# slot's creation back, the first view starts making the slot.  (A worker
# started for the first view would queue for a lock on kappa.views that
# the first view holds, and the second view would queue behind it, which
# hides the race.)  Returns the sessions of the holder and the first view.
sub start_first_view
{
	my ($id, $what) = @_;
	$node->safe_psql('postgres', q{ALTER SYSTEM SET pg_kappa.enabled = off; SELECT pg_reload_conf()});
	my $holder = $node->background_psql('postgres');
	$holder->query_safe("BEGIN; INSERT INTO h VALUES ($id);");
	my $first = $node->background_psql('postgres');
	$first->query_until(qr/first/, q{
\echo first
SET client_min_messages = warning;
SELECT kappa.create_view('v1', 'SELECT id FROM t1');
});
	ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_replication_slots WHERE slot_name LIKE 'pg\_kappa\_%'}),
		$what);
	return ($holder, $first);
}

my ($holder, $first) = start_first_view(1, 'the first view is making the slot');

# the second view, and a change right after it, while the slot is made
my $second = $node->background_psql('postgres');
$second->query_until(qr/second/, q{
\echo second
SET client_min_messages = warning;
SELECT kappa.create_view('v2', 'SELECT id FROM t2');
INSERT INTO t2 VALUES (2);
});
ok($node->poll_query_until('postgres', q{
SELECT EXISTS (SELECT FROM pg_stat_activity
               WHERE query LIKE '%create_view(''v2''%' AND wait_event = 'Extension')
    OR EXISTS (SELECT FROM t2 WHERE id = 2)}),
	'the second view waits for the slot (or, wrongly, went on)');
is($node->safe_psql('postgres', q{SELECT count(*) FROM t2}), '1',
	'the second view waits until the slot is made');

$holder->query_safe('COMMIT');
$holder->quit;
$first->query_safe('SELECT 1');
$first->quit;
$second->query_safe('SELECT 1');
$second->quit;

$node->safe_psql('postgres', q{ALTER SYSTEM RESET pg_kappa.enabled; SELECT pg_reload_conf()});
$node->safe_psql('postgres', q{INSERT INTO t1 VALUES (2)});
is($node->safe_psql('postgres',
	q{SELECT kappa.wait('v1', timeout => '60s') AND kappa.wait('v2', timeout => '60s')}), 't', 'both views caught up');
is($node->safe_psql('postgres', q{SELECT string_agg(id::text, ',' ORDER BY id) FROM v2}), '1,2',
	'the change committed after the second view is in it');
is($node->safe_psql('postgres', q{SELECT string_agg(id::text, ',' ORDER BY id) FROM v1}), '1,2', 'and the first view is exact');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.verify('v2')}), '0', 'verify agrees');

# a transaction that has written cannot wait for a slot being made (its
# creator waits for that transaction to end): a clear error
$node->safe_psql('postgres', q{SELECT kappa.drop_view('v1'); SELECT kappa.drop_view('v2')});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM pg_replication_slots WHERE slot_name LIKE 'pg\_kappa\_%'}),
	'the slot goes with the last view');
($holder, $first) = start_first_view(2, 'the first view is making the slot again');
my ($rc, $out, $err) = $node->psql('postgres',
	q{BEGIN; INSERT INTO h VALUES (3); SELECT kappa.create_view('v2', 'SELECT id FROM t2'); COMMIT;});
like($err, qr/ERROR:  the logical replication slot of this database is being created by another session/,
	'a transaction that has written is refused');
$holder->query_safe('COMMIT');
$holder->quit;
$first->query_safe('SELECT 1');
$first->quit;
$node->safe_psql('postgres', q{ALTER SYSTEM RESET pg_kappa.enabled; SELECT pg_reload_conf()});
is($node->safe_psql('postgres', q{SELECT string_agg(name, ',') FROM kappa.views}), 'public.v1', 'only the first view was made');

$node->stop('fast');
done_testing();
