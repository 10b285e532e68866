# Red team, round 2: what a view's errors and audits tell roles that may
# not read its sources.  They fail until the holes are fixed.
#
#  1. kappa.status (and kappa.views, kappa.wait) show a view's last_error
#     to any role that may SELECT from the derived table (kappa.can_read:
#     the derived table only).  The error text carries source values the
#     view never shows, even values of columns it does not select (here a
#     card number that fails a cast in the WHERE clause): a role granted
#     the view, and not the source, reads them (0.2--0.3 script, kappa.status
#     and the views_readable policy; kappa.verify, by contrast, asks for
#     SELECT on every source).
#  2. kappa.audit_log's policy finds a view by the name recorded when it
#     was created (kappa.views.name, never updated), with to_regclass: once
#     the derived table is renamed, the audit rows of the view (including
#     "could not verify the view: <error>") are shown to whoever may read
#     the table that has that name now, say one an ordinary role creates
#     in public (0.2--0.3 script: audit_log_readable, kappa.audit writing
#     v.name).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('error_text_readers');
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_kappa;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE SCHEMA bob AUTHORIZATION bob;
GRANT CREATE ON SCHEMA public TO PUBLIC;
});

sub as_user
{
	my ($user, $sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', $user ]);
}

# --- 1. last_error and a column the view does not show -----------------------
as_user('bob', q{
CREATE TABLE bob.cards (id int PRIMARY KEY, pan text);
INSERT INTO bob.cards VALUES (1, '42');
SELECT kappa.create_view('bob.card_ids', 'SELECT id FROM bob.cards WHERE pan::bigint > 0');
GRANT USAGE ON SCHEMA bob TO alice;
GRANT SELECT ON bob.card_ids TO alice;
INSERT INTO bob.cards VALUES (2, '4111-1111-1111-1111');
});
$node->poll_query_until('postgres', q{SELECT state = 'broken' FROM kappa.views WHERE name = 'bob.card_ids'})
  or die 'bob.card_ids did not break';
my $err = as_user('alice', q{SELECT coalesce(last_error, '') FROM kappa.status WHERE name = 'bob.card_ids'});
unlike($err, qr/4111/, "alice, who may read bob's view but not its source, does not read the source's card number");

# --- 2. audit rows and a renamed view ----------------------------------------
as_user('bob', q{
CREATE TABLE bob.t (id int PRIMARY KEY, s text);
INSERT INTO bob.t VALUES (1, 'x');
SELECT kappa.create_view('public.bv', 'SELECT id, s FROM bob.t');
ALTER TABLE public.bv RENAME TO bv_private;
});
as_user('alice', q{CREATE TABLE public.bv (x int)});
$node->safe_psql('postgres', q{SELECT count(*) FROM kappa.audit()});
is(as_user('alice', q{SELECT count(*) FROM kappa.audit_log WHERE "check" IN ('verify', 'applied_lsn') AND object = 'public.bv'}),
	'0', "alice does not read the audit rows of bob's renamed view through a table she named like it");

$node->stop('fast', fail_ok => 1);
done_testing();
