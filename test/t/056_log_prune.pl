# The worker prunes the event log from its start, by the captures'
# retention: a row goes once each of its tables is captured with a
# retention that has passed, or dropped.  A table no longer captured keeps
# its logged events (kappa.uncapture says they stay): another table's
# retention does not take them, and capturing it again with a retention
# does.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('log_prune');
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
SET client_min_messages = warning;
CREATE TABLE b (id int PRIMARY KEY, v int);
CREATE TABLE a (id int PRIMARY KEY, v int);
CREATE TABLE gone (id int PRIMARY KEY, v int);
INSERT INTO b VALUES (1, 1);
INSERT INTO a VALUES (1, 1);
INSERT INTO gone VALUES (1, 1);
SELECT kappa.capture('b', retain => '1 second');
SELECT kappa.capture('gone', retain => '1 hour');
UPDATE b SET v = 2;
UPDATE gone SET v = 2;
});
# what was logged so far, before a's first row
$node->poll_query_until('postgres',
	q{SELECT count(*) = 2 FROM kappa.events(tables => '{b}') e WHERE e->>'kind' IN ('insert', 'update')})
  or die 'the worker did not log b';
$node->safe_psql('postgres', q{
SELECT kappa.capture('a');
UPDATE a SET v = 2;
});
$node->poll_query_until('postgres',
	q{SELECT count(*) = 2 FROM kappa.events(tables => '{a}') e WHERE e->>'kind' IN ('insert', 'update')})
  or die 'the worker did not log a';
$node->safe_psql('postgres', q{
SELECT kappa.uncapture('a');
DROP TABLE gone;
UPDATE b SET v = 3;
});

# b's retention passes; its rows before a's go (the worker prunes every 10 s)
$node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM kappa.event_log_pruned})
  or die 'nothing was pruned';
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM kappa.events(tables => '{a}') e WHERE e->>'kind' IN ('insert', 'update')}),
	'2', "a table no longer captured keeps its logged events through another's retention");
is($node->safe_psql('postgres', q{
SELECT count(*) FROM kappa.event_log l
 WHERE EXISTS (SELECT 1 FROM unnest(l.tables) t(relid) WHERE t.relid = 'a'::regclass)}),
	'2', 'its rows (snapshot and change) are all there');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.audit()}), '0', 'the audit passes');

# captured again with a retention, its old rows go too
$node->safe_psql('postgres', q{SELECT kappa.capture('a', retain => '1 second')});
$node->poll_query_until('postgres', q{
SELECT NOT EXISTS (SELECT 1 FROM kappa.event_log l, unnest(l.tables) t(relid)
                    WHERE t.relid = 'a'::regclass AND l.logged_at < now() - interval '3 seconds')})
  or die "a's old rows were not pruned";
pass('captured again with a retention, its old rows are pruned');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.audit()}), '0', 'the audit still passes');

$node->stop;
done_testing();
