# Red team, round 2: a write made by a function in a view's query while
# the apply worker maintains the view.  It fails until the hole is fixed.
#
# Round 1 stopped triggers on derived tables from writing inside the
# worker (session_replication_role = replica, ALWAYS triggers refused),
# but a view's query may call any function declared IMMUTABLE, and an
# IMMUTABLE PL/pgSQL function may PERFORM a VOLATILE one that writes (its
# SPI checks only that the statement it runs is a SELECT).  That write is
# made inside the worker's transaction, so it carries the worker's
# replication origin, which the worker filters out when it decodes
# (change_sink.c, sink_filter_origin; apply_worker.c sets
# replorigin_session_origin for the whole batch): other roles' views over
# the table never see the change and stay wrong, and the event log of a
# captured table misses it, so a role with the right to write a captured
# table can change it without a trace in the log (and kappa.audit, which
# checks the log against itself, cannot tell).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('view_function_writes');
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE SCHEMA bob AUTHORIZATION bob;
-- a ledger the superuser captures for its audit trail; alice may write it
CREATE TABLE public.ledger (id int PRIMARY KEY, v text);
GRANT SELECT, INSERT ON public.ledger TO alice, bob;
ALTER TABLE public.ledger REPLICA IDENTITY FULL;
SELECT kappa.capture('public.ledger') IS NOT NULL;
});

sub as_user
{
	my ($user, $sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', $user ]);
}

as_user('bob', q{SELECT kappa.create_view('bob.ledger_v', 'SELECT id, v FROM public.ledger')});
as_user('alice', q{
CREATE TABLE alice.src (id int PRIMARY KEY);
CREATE FUNCTION alice.wr(int) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO public.ledger VALUES ($1, 'written inside the apply worker');
END $$;
CREATE FUNCTION alice.f(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF $1 > 100 THEN
        PERFORM alice.wr($1);
    END IF;
    RETURN $1;
END $$;
SELECT kappa.create_view('alice.v', 'SELECT id, alice.f(id) AS x FROM alice.src');
INSERT INTO alice.src VALUES (101);
});
# the write is refused inside the worker: alice's view breaks, saying why
ok($node->poll_query_until('postgres',
		q{SELECT state = 'broken' AND last_error LIKE '%cannot write to table "ledger"%' FROM kappa.views WHERE name = 'alice.v'}),
	"the view whose code writes another table breaks, naming it");

my $written = $node->safe_psql('postgres', q{SELECT count(*) FROM public.ledger});
is(as_user('bob', q{SELECT kappa.wait('bob.ledger_v', timeout => '60s'); SELECT count(*) FROM kappa.verify('bob.ledger_v')}),
	"t\n0", "bob's view over the ledger equals its query (ledger rows: $written)");
# the log must have every committed row of a captured table
$node->safe_psql('postgres', q{INSERT INTO public.ledger VALUES (1, 'by the superuser')});
$node->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM kappa.events() e WHERE e->>'kind' = 'insert' AND e->'new'->>'id' = '1'})
  or die 'the superuser\'s insert was not logged';
is($node->safe_psql('postgres', q{
SELECT count(*) FROM public.ledger l
 WHERE NOT EXISTS (SELECT 1 FROM kappa.events() e
                    WHERE e->>'kind' = 'insert' AND (e->'new'->>'id')::int = l.id)}),
	'0', 'every row of the captured ledger is in the event log');

$node->stop('fast', fail_ok => 1);
done_testing();
