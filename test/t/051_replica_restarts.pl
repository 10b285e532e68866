# Views on a logical replica through failures: the subscriber and then the
# publisher are stopped with -m immediate while pgbench writes on the
# publisher; after each restart the views, waited for with
# kappa.wait(origin_lsn), are exact and equal to their queries run on the
# publisher.  Then a conflict: a row inserted on the subscriber makes the
# subscription's apply fail; a wait for a later commit returns false (the
# worker retries), with disable_on_error it fails saying the subscription
# is disabled, and once the conflict is removed and the subscription
# enabled the views catch up, exactly.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $primary = kappa_publisher('primary');
my $sub = kappa_node('replica', extra_conf => "wal_retrieve_retry_interval = 200ms\n");

my $schema = q{
CREATE TABLE acct (id int PRIMARY KEY, branch int NOT NULL, balance bigint NOT NULL);
CREATE TABLE hist (id bigserial PRIMARY KEY, acct_id int, delta int);
};
$primary->safe_psql('postgres', $schema . q{
INSERT INTO acct SELECT g, g % 10, 0 FROM generate_series(1, 2000) g;
CREATE PUBLICATION pub FOR TABLE acct, hist;
});
$sub->safe_psql('postgres', $schema . q{
ALTER TABLE acct REPLICA IDENTITY FULL;
ALTER TABLE hist REPLICA IDENTITY FULL;
CREATE EXTENSION pg_kappa;
});

my %views = (
	by_branch => 'SELECT branch, count(*) AS n, sum(balance) AS total, max(balance) AS hi FROM acct GROUP BY branch',
	hist_join => 'SELECT h.id, a.id AS acct, a.branch, h.delta FROM hist h JOIN acct a ON a.id = h.acct_id',
);
$sub->safe_psql('postgres', "SELECT kappa.create_view('$_', \$\$$views{$_}\$\$)") foreach sort keys %views;
$sub->safe_psql('postgres', "CREATE SUBSCRIPTION sub1 CONNECTION '" . publisher_conninfo($primary)
	. "' PUBLICATION pub");
$sub->wait_for_subscription_sync;

my $script = acct_writes_script(2000, $KappaTest::hist_trim);

sub start_writers
{
	my ($seconds) = @_;
	return IPC::Run::start(
		[ 'pgbench', '-n', '-c', '2', '-j', '2', '-T', $seconds, '-f', $script,
		  '-h', $primary->host, '-p', $primary->port, 'postgres' ],
		'>', \my $out, '2>', \my $err);
}

sub all_exact
{
	my ($label) = @_;
	replica_exact($primary, $sub, $_, $views{$_}, $label) foreach sort keys %views;
}

all_exact('after the initial copy');

# the subscriber stops at once while the publisher is written to
my $bench = start_writers(8);
sleep 3;
$sub->stop('immediate');
sleep 1;
$sub->start;
$bench->finish;
is($bench->result(0), 0, 'the writers went on while the subscriber was down');
all_exact('after an immediate stop of the subscriber');

# the publisher stops at once under its writers: they fail, and start again
$bench = start_writers(20);
sleep 3;
$primary->stop('immediate');
$bench->finish;
isnt($bench->result(0), 0, 'the writers lost the publisher');
$primary->start;
$bench = start_writers(3);
$bench->finish;
is($bench->result(0), 0, 'the writers wrote again after its restart');
all_exact('after an immediate stop of the publisher');

# a conflict: the subscriber already has the key the publisher inserts
$sub->safe_psql('postgres', q{INSERT INTO acct VALUES (5000, 1, 1)});
my $log_offset = -s $sub->logfile;
my $lsn = $primary->safe_psql('postgres',
	q{INSERT INTO acct VALUES (5000, 2, 2); SELECT pg_current_wal_insert_lsn()});
$sub->wait_for_log(qr/duplicate key value violates unique constraint "acct_pkey"/, $log_offset);
is($sub->safe_psql('postgres', "SELECT kappa.wait('by_branch', origin_lsn => '$lsn', timeout => '1s')"),
	'f', 'a subscription that keeps failing: the wait times out');
is($sub->safe_psql('postgres', "SELECT count(*) FROM kappa.verify('by_branch')"),
	'0', 'the view is exact for what the subscriber holds');

# with disable_on_error the failure disables it, and the wait says so
$sub->safe_psql('postgres', q{ALTER SUBSCRIPTION sub1 SET (disable_on_error = true)});
$sub->poll_query_until('postgres', q{SELECT NOT subenabled FROM pg_subscription WHERE subname = 'sub1'})
  or die 'subscription not disabled';
my ($ret, $out, $err) = $sub->psql('postgres', "SELECT kappa.wait('by_branch', origin_lsn => '$lsn', timeout => '5s')");
like($err, qr/DETAIL:  The subscription is disabled/, 'disabled after the error: the wait says so');

# the conflict removed, the subscription enabled: the views catch up
$sub->safe_psql('postgres', q{DELETE FROM acct WHERE id = 5000; ALTER SUBSCRIPTION sub1 ENABLE});
is(replica_wait($sub, 'by_branch', $lsn), 't', 'after the fix the wait returns');
is($sub->safe_psql('postgres', q{SELECT branch, balance FROM acct WHERE id = 5000}), '2|2',
	'with the publisher\'s row');
all_exact('after a conflict resolved');

$sub->stop;
$primary->stop;
done_testing();
