# Views on a logical replica: a plain publisher, pgbench-style writers on
# it, and a subscriber running pg_kappa.  Views are created before the
# subscription exists (they take in the initial copy as inserts), while its
# initial copy runs under the writers, and after it.  kappa.wait with
# origin_lsn gives read-your-writes across the two servers: a row committed
# on the publisher is in the view as soon as the wait returns, also when the
# publisher's position lies past the last commit the publication sends.
# ALTER SUBSCRIPTION DISABLE makes such a wait fail with a clear error;
# after ENABLE it succeeds.  In the end every view is exact and equal to its
# query run on the publisher.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use KappaTest;

my $primary = kappa_publisher('primary');
my $sub = kappa_node('replica');

my $schema = q{
CREATE TABLE acct (id int PRIMARY KEY, branch int NOT NULL, balance bigint NOT NULL);
CREATE TABLE hist (id bigint PRIMARY KEY, acct_id int, delta int);
CREATE TABLE marks (id int PRIMARY KEY, note text);
CREATE TABLE local_only (id serial PRIMARY KEY, t text);
};
$primary->safe_psql('postgres', $schema . q{
CREATE SEQUENCE hist_id;
ALTER TABLE hist ALTER id SET DEFAULT nextval('hist_id');
INSERT INTO acct SELECT g, g % 10, 0 FROM generate_series(1, 20000) g;
INSERT INTO hist (acct_id, delta) SELECT g % 20000 + 1, g % 50 FROM generate_series(1, 50000) g;
CREATE PUBLICATION pub FOR TABLE acct, hist, marks;
});

# The subscriber's tables: REPLICA IDENTITY FULL, as pg_kappa's sources
$sub->safe_psql('postgres', $schema . q{
ALTER TABLE acct REPLICA IDENTITY FULL;
ALTER TABLE hist REPLICA IDENTITY FULL;
ALTER TABLE marks REPLICA IDENTITY FULL;
CREATE EXTENSION pg_kappa;
});

my %views = (
	by_branch => 'SELECT branch, count(*) AS n, sum(balance) AS total, min(balance) AS lo, max(balance) AS hi FROM acct GROUP BY branch',
	rich => 'SELECT id, branch, balance FROM acct WHERE balance > 50',
	hist_sum => 'SELECT a.branch, count(*) AS n, sum(h.delta) AS total FROM hist h JOIN acct a ON a.id = h.acct_id GROUP BY a.branch',
	marked => 'SELECT id, note FROM marks',
);

sub create_view
{
	my ($v) = @_;
	$sub->safe_psql('postgres', "SELECT kappa.create_view('$v', \$\$$views{$v}\$\$)");
}

# before the subscription: the views start empty
create_view('by_branch');
create_view('marked');

my $script = acct_writes_script(20000, $KappaTest::hist_trim,
	q{INSERT INTO local_only (t) VALUES ('not published');});

sub start_writers
{
	my ($seconds) = @_;
	return IPC::Run::start(
		[ 'pgbench', '-n', '-c', '2', '-j', '2', '-T', $seconds, '-f', $script,
		  '-h', $primary->host, '-p', $primary->port, 'postgres' ],
		'>', \my $out, '2>', \my $err);
}

# the initial copy runs while the writers write
my $bench = start_writers(14);
sleep 1;
$sub->safe_psql('postgres', "CREATE SUBSCRIPTION sub1 CONNECTION '" . publisher_conninfo($primary)
	. "' PUBLICATION pub");
# during the copy (it waits for the copy's lock when it comes too late)
my $states = $sub->safe_psql('postgres', q{SELECT string_agg(srsubstate::text, '' ORDER BY srrelid) FROM pg_subscription_rel});
note("table states when the view 'rich' was created: $states");
create_view('rich');
$sub->wait_for_subscription_sync;
# after it
create_view('hist_sum');

# read-your-writes while the writers write: a row committed on the
# publisher is in the view once kappa.wait(origin_lsn) returns
my $missed = 0;
my $waits = 0;
my $t0 = time;
foreach my $i (1 .. 15)
{
	my $lsn = $primary->safe_psql('postgres',
		"INSERT INTO marks VALUES ($i, 'mark $i'); SELECT pg_current_wal_insert_lsn()");
	$waits++ if replica_wait($sub, 'marked', $lsn) eq 't';
	$missed++ unless $sub->safe_psql('postgres', "SELECT count(*) FROM marked WHERE id = $i") eq '1';
}
is($waits, 15, 'every wait for a commit on the publisher returned true');
is($missed, 0, 'every row was in the view when its wait returned');
note(sprintf('15 cross-server waits under writers: %.1f ms each on average', (time - $t0) * 1000 / 15));

$bench->finish;
is($bench->result(0), 0, 'pgbench ran');

replica_exact($primary, $sub, $_, $views{$_}, 'after the writers') foreach sort keys %views;

# the same without writers: how long a cross-server read-your-writes takes
$t0 = time;
foreach my $i (201 .. 220)
{
	my $lsn = $primary->safe_psql('postgres',
		"INSERT INTO marks VALUES ($i, 'idle $i'); SELECT pg_current_wal_insert_lsn()");
	replica_wait($sub, 'marked', $lsn);
}
is($sub->safe_psql('postgres', 'SELECT count(*) FROM marked WHERE id BETWEEN 201 AND 220'), '20',
	'idle: every row is in the view after its wait');
note(sprintf('20 cross-server commit-and-wait rounds without writers: %.1f ms each on average', (time - $t0) * 1000 / 20));

# A position past the last commit the publication sends (a commit to a
# table it does not publish): the wait still returns, once the
# subscription has received that far.
my $lsn = $primary->safe_psql('postgres',
	"INSERT INTO marks VALUES (100, 'last published'); INSERT INTO local_only (t) VALUES ('after'); SELECT pg_current_wal_insert_lsn()");
$t0 = time;
is(replica_wait($sub, 'marked', $lsn), 't', 'a position past the last published commit is reached');
ok(time - $t0 < 60, 'and soon: ' . sprintf('%.1f s', time - $t0));
is($sub->safe_psql('postgres', 'SELECT note FROM marked WHERE id = 100'), 'last published',
	'its published commit is in the view');

# the subscription named, and found by itself
is($sub->safe_psql('postgres', "SELECT kappa.wait('hist_sum', origin_lsn => '$lsn', subscription => 'sub1')"),
	't', 'wait with the subscription named');

# DISABLE: a wait for a commit the subscription has not applied fails
$sub->safe_psql('postgres', 'ALTER SUBSCRIPTION sub1 DISABLE');
$sub->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_subscription WHERE pid IS NOT NULL})
  or die 'apply worker did not stop';
$lsn = $primary->safe_psql('postgres',
	"INSERT INTO marks VALUES (101, 'while disabled'); UPDATE acct SET balance = balance + 1000 WHERE id <= 100; SELECT pg_current_wal_insert_lsn()");
my ($ret, $out, $err) = $sub->psql('postgres', "SELECT kappa.wait('marked', origin_lsn => '$lsn', timeout => '30s')");
like($err, qr/ERROR:  cannot wait for origin LSN \S+ on subscription "sub1"\nDETAIL:  The subscription is disabled; it has applied its publisher's WAL up to/,
	'a disabled subscription: an error that says so');
like($err, qr/HINT:  Enable it with ALTER SUBSCRIPTION/, 'with a hint');
# what it had applied before can still be waited for
my $old = $sub->safe_psql('postgres', q{SELECT remote_lsn FROM pg_replication_origin_status WHERE external_id = 'pg_' || (SELECT oid FROM pg_subscription WHERE subname = 'sub1')});
is($sub->safe_psql('postgres', "SELECT kappa.wait('marked', origin_lsn => '$old', timeout => '30s')"),
	't', 'a position it had applied is still fine while disabled');
$sub->safe_psql('postgres', 'ALTER SUBSCRIPTION sub1 ENABLE');
is(replica_wait($sub, 'marked', $lsn), 't', 'after ENABLE the wait returns');
is($sub->safe_psql('postgres', 'SELECT note FROM marked WHERE id = 101'), 'while disabled',
	'with the commit made while disabled');
replica_exact($primary, $sub, $_, $views{$_}, 'after DISABLE and ENABLE') foreach sort keys %views;

# bad input
($ret, $out, $err) = $sub->psql('postgres', "SELECT kappa.wait('marked', origin_lsn => '$lsn', subscription => 'nosuch')");
like($err, qr/ERROR:  subscription "nosuch" does not exist/, 'unknown subscription');
($ret, $out, $err) = $sub->psql('postgres', "SELECT kappa.wait('marked', '0/1', origin_lsn => '$lsn')");
like($err, qr/ERROR:  cannot wait for both target and origin_lsn/, 'target and origin_lsn together');
($ret, $out, $err) = $sub->psql('postgres', "SELECT kappa.wait('marked', subscription => 'sub1')");
like($err, qr/ERROR:  cannot wait for subscription "sub1" without origin_lsn/, 'subscription without origin_lsn');
$sub->safe_psql('postgres', q{INSERT INTO local_only (t) VALUES ('here');
SELECT kappa.create_view('local_view', 'SELECT id, t FROM local_only')});
($ret, $out, $err) = $sub->psql('postgres', "SELECT kappa.wait('local_view', origin_lsn => '$lsn')");
like($err, qr/ERROR:  no subscription of this database replicates a source of derived view "local_view"/,
	'a view of local tables has no subscription to wait for');
($ret, $out, $err) = $sub->psql('postgres', "SELECT kappa.wait('local_view', origin_lsn => '$lsn', subscription => 'sub1')");
like($err, qr/ERROR:  subscription "sub1" does not replicate any source of derived view "local_view"/,
	'nor may one be named');
is($sub->safe_psql('postgres', "SELECT kappa.wait('local_view')"), 't', 'the local wait works as before');

is($sub->safe_psql('postgres', q{SELECT count(*) FROM kappa.status WHERE kind = 'view' AND state = 'running'}),
	scalar(keys %views) + 1, 'every view is running');

$sub->stop;
$primary->stop;
done_testing();
