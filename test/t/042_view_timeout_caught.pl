# Red team, round 2: a view whose code catches its own statement timeout
# stalls the apply worker for every view of the database, for good.  It
# fails until the hole is fixed.
#
# The worker bounds each view's work with a statement timer armed once
# (apply_worker.c, view_limits_begin): when it fires, the view's code gets
# an ERROR with SQLSTATE 57014 (query_canceled), which PL/pgSQL can catch
# by name (EXCEPTION WHEN query_canceled; WHEN OTHERS does not, naming it
# does).  A function in a view's query that catches it and sleeps again
# never returns: the timer is not armed again, pg_cancel_backend is caught
# the same way, and pg_terminate_backend only restarts the worker on the
# same batch, where it stalls again.  No other view of the database is
# maintained, kappa.wait times out for everyone, the slot holds WAL.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('view_timeout_caught',
	extra_conf => "pg_kappa.view_statement_timeout = 2s\npg_kappa.view_lock_timeout = 2s\n");
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE ROLE carol LOGIN;
CREATE SCHEMA carol AUTHORIZATION carol;
CREATE TABLE public.admin_t (id int PRIMARY KEY, v text);
SELECT kappa.create_view('public.admin_v', 'SELECT id, v FROM public.admin_t');
});

$node->safe_psql('postgres', q{
CREATE TABLE carol.t (id int PRIMARY KEY, x int);
CREATE TABLE carol.flag (on_ boolean);
CREATE FUNCTION carol.stall(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM carol.flag) THEN
        LOOP
            BEGIN
                PERFORM pg_catalog.pg_sleep(3600);
            EXCEPTION WHEN query_canceled THEN
                NULL;           -- the view's statement timeout, caught
            END;
        END LOOP;
    END IF;
    RETURN $1;
END $$;
SELECT kappa.create_view('carol.v', 'SELECT id, carol.stall(x) AS x FROM carol.t');
INSERT INTO carol.flag VALUES (true);
INSERT INTO carol.t VALUES (1, 1);
}, extra_params => [ '-U', 'carol' ]);

# give the worker the time to reach carol's view and its timer to fire
sleep 5;
$node->safe_psql('postgres', q{INSERT INTO public.admin_t VALUES (1, 'a')});
is($node->safe_psql('postgres', q{SELECT kappa.wait('public.admin_v', timeout => '30s')}), 't',
	"the superuser's view is maintained while carol's view catches its own statement timeout");

# the worker's process is ended by the shutdown (SIGTERM is not catchable)
$node->stop('immediate', fail_ok => 1);
done_testing();
