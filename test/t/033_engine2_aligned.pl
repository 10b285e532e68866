# Delta engine 2 reads the live sources, so each batch must be exactly the
# transactions its snapshot sees (DESIGN.md, invariant 3).
#
# 1. Many concurrent writers and tiny batches: transfers between accounts,
#    committed synchronously and asynchronously, keep the total constant; views over a join of accounts and branches
#    (grouped, and a bag) stay equal to their queries, and the total never
#    shows half a transfer.
# 2. A transaction held after its commit record (synchronous replication to
#    a standby that does not exist) while later ones commit and become
#    visible: no view shows the later ones without the held one; once the
#    wait is cancelled, the views catch up, exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;
use Time::HiRes qw(usleep);
use IPC::Run;

my $node = kappa_node('aligned', extra_conf => "pg_kappa.batch_max_ms = 1\npg_kappa.naptime = 5ms\nmax_connections = 40\n");
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE TABLE branches (id int PRIMARY KEY, name text);
CREATE TABLE accounts (id int PRIMARY KEY, branch int, balance int);
CREATE INDEX ON accounts (branch);
INSERT INTO branches SELECT g, 'b' || g FROM generate_series(1, 5) g;
INSERT INTO accounts SELECT g, 1 + g % 5, 1000 FROM generate_series(1, 200) g;
SET pg_kappa.engine = 2;
SET client_min_messages = warning;
SELECT kappa.create_view('by_branch', 'SELECT b.name, count(*) AS n, sum(a.balance) AS total FROM accounts a JOIN branches b ON b.id = a.branch GROUP BY b.name');
SELECT kappa.create_view('rich', 'SELECT b.name, a.balance FROM accounts a JOIN branches b ON b.id = a.branch WHERE a.balance > 1000');
SELECT kappa.create_view('total', 'SELECT sum(balance) AS s, count(*) AS n FROM accounts');
});

# 1. concurrent transfers, and branch renames and account moves
my $script = $node->basedir . '/transfer.sql';
open(my $fh, '>', $script) or die;
print $fh q{\set a random(1, 200)
\set b random(1, 200)
\set x random(1, 50)
BEGIN;
UPDATE accounts SET balance = balance - :x WHERE id = :a;
UPDATE accounts SET balance = balance + :x WHERE id = :b;
END;
};
close $fh;
my $script2 = $node->basedir . '/move.sql';
open($fh, '>', $script2) or die;
print $fh q{\set a random(1, 200)
\set br random(1, 5)
BEGIN;
UPDATE accounts SET branch = :br WHERE id = :a;
UPDATE branches SET name = 'b' || :br || '_' || :a WHERE id = :br;
END;
};
close $fh;

# transfers committed asynchronously: they leave the proc array before
# earlier synchronous ones whose commit records precede theirs, so a batch
# often stops before a commit it does not see with one it sees after it
my $script3 = $node->basedir . '/transfer_async.sql';
open($fh, '>', $script3) or die;
print $fh q{\set a random(1, 200)
\set b random(1, 200)
\set x random(1, 50)
BEGIN;
SET LOCAL synchronous_commit = off;
UPDATE accounts SET balance = balance - :x WHERE id = :a;
UPDATE accounts SET balance = balance + :x WHERE id = :b;
END;
};
close $fh;

my ($out, $err) = ('', '');
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '6', '-j', '2', '-T', '8', '-f', "$script\@6", '-f', "$script3\@3", '-f', "$script2\@1",
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$out, '2>', \$err);

# while they run, the total never shows half a transfer
my $bad = 0;
my $samples = 0;
while ($bench->pumpable)
{
	my $t = $node->safe_psql('postgres', q{SELECT s || ' ' || n FROM total});
	$bad++ if $t ne '200000 200';
	$samples++;
	last if $samples > 400;
	usleep(20_000);
}
$bench->finish;
is($bench->result(0), 0, 'pgbench ran') or diag $err;
is($bad, 0, "the total never showed half a transfer ($samples samples)");
view_matches($node, 'by_branch', q{SELECT b.name, count(*) AS n, sum(a.balance) AS total FROM accounts a JOIN branches b ON b.id = a.branch GROUP BY b.name}, 'concurrent writers');
view_matches($node, 'rich', q{SELECT b.name, a.balance FROM accounts a JOIN branches b ON b.id = a.branch WHERE a.balance > 1000}, 'concurrent writers');
view_matches($node, 'total', q{SELECT sum(balance) AS s, count(*) AS n FROM accounts}, 'concurrent writers');

# 2. a transaction held after its commit record
$node->append_conf('postgresql.conf', "synchronous_standby_names = 'nosuchstandby'\n");
$node->reload;
my $held = $node->background_psql('postgres', on_error_stop => 0);
$held->query_safe(q{SET synchronous_commit = on});
my $held_pid = $held->query_safe(q{SELECT pg_backend_pid()});
$held->query_until(qr/sent/, q{
\echo sent
INSERT INTO accounts VALUES (1001, 1, 5);
});
$node->poll_query_until('postgres',
	"SELECT wait_event = 'SyncRep' FROM pg_stat_activity WHERE pid = $held_pid")
  or die 'the held transaction is not waiting for synchronous replication';
$node->safe_psql('postgres', q{
SET synchronous_commit = local;
INSERT INTO accounts VALUES (1002, 2, 7);
UPDATE accounts SET balance = balance + 1 WHERE id = 2;
});
is($node->safe_psql('postgres', q{SELECT count(*) FROM accounts WHERE id IN (1001, 1002)}),
	'1', 'only the later transaction is visible');
is($node->safe_psql('postgres', q{SET synchronous_commit = local; SELECT kappa.wait('total', timeout => '2s')}),
	'f', 'the views wait for the held transaction');
is($node->safe_psql('postgres', q{SELECT n FROM total}), '200',
	'no view shows the later transaction without the held one');

$node->safe_psql('postgres', "SELECT pg_cancel_backend($held_pid)");
$held->quit;
$node->append_conf('postgresql.conf', "synchronous_standby_names = ''\n");
$node->reload;
is($node->safe_psql('postgres', q{SELECT count(*) FROM accounts WHERE id IN (1001, 1002)}),
	'2', 'the held transaction is visible once its wait is cancelled');
view_matches($node, 'by_branch', q{SELECT b.name, count(*) AS n, sum(a.balance) AS total FROM accounts a JOIN branches b ON b.id = a.branch GROUP BY b.name}, 'after the held transaction');
view_matches($node, 'rich', q{SELECT b.name, a.balance FROM accounts a JOIN branches b ON b.id = a.branch WHERE a.balance > 1000}, 'after the held transaction');
view_matches($node, 'total', q{SELECT sum(balance) AS s, count(*) AS n FROM accounts}, 'after the held transaction');
is($node->safe_psql('postgres', q{SELECT string_agg(state, ',') FROM kappa.views}),
	'running,running,running', 'every view still running');

$node->stop;
done_testing();
