# Hostile objects in schema public against pg_kappa's install and update
# scripts and against everything a superuser then does with the extension
# (the class of CVE-2018-1058, CVE-2020-14350, CVE-2022-2625 and
# CVE-2023-39417).
#
# alice is an ordinary role with CREATE on schema public (as in databases
# created before PostgreSQL 15, or where it was granted back).  She plants
# functions and operators in public whose names and argument types match,
# more exactly than pg_catalog's own, what pg_kappa's SQL scripts, its
# plpgsql functions and the SQL its C code builds call unqualified:
# format, array_position, array_length, unnest, sha256, convert_to,
# has_table_privilege, regexp_matches, nextval, = (oid, integer),
# || (text, integer), && (oid[], oid[]) and more.  Each one, when run by a
# superuser, makes alice a superuser (and says so with a NOTICE); otherwise
# it behaves like the function it shadows.
#
# The superuser then, with the default search_path ("$user", public), runs
# CREATE EXTENSION pg_kappa, CREATE EXTENSION pg_kappa VERSION '0.2' and
# ALTER EXTENSION pg_kappa UPDATE, and uses kappa.create_view, kappa.wait,
# kappa.capture, kappa.events, kappa.verify, kappa.verify_all,
# kappa.audit, kappa.replay, kappa.alter_view, kappa.status and
# kappa.drop_view, also on a view of alice's.  After every step alice must
# not be a superuser, and no hostile object may have run as a superuser.
#
# Last, a database owned by alice in which she created the schema "kappa"
# before the superuser installs the extension (CVE-2022-2625/2023-39417
# class): installing must be refused, or the schema's owner must not be
# able to take over the names the SECURITY DEFINER event triggers use.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KappaTest;

my $node = kappa_node('extension_script_security');

$node->safe_psql('postgres', q{
CREATE ROLE alice LOGIN;
GRANT CREATE ON SCHEMA public TO alice;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE DATABASE upd;
});
$node->safe_psql('upd', q{
GRANT CREATE ON SCHEMA public TO alice;
CREATE SCHEMA alice AUTHORIZATION alice;
});

# The hostile objects.  Every one is fully qualified inside, so that it
# works whatever search_path it is called with.
my $plant = q{
SET search_path = pg_catalog;
CREATE FUNCTION public.hostile(tag text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $h$
BEGIN
    -- is_superuser is the session's; what counts is the current user
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r
         WHERE r.rolname OPERATOR(pg_catalog.=) current_user) THEN
        RAISE NOTICE 'HOSTILE % ran as superuser %', tag, current_user;
        BEGIN
            EXECUTE 'ALTER ROLE alice SUPERUSER';
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'HOSTILE % could not escalate: %', tag, SQLERRM;
        END;
    END IF;
END
$h$;

-- functions the scripts and the C code call unqualified
CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('format(text,text)'); RETURN pg_catalog.format($1, $2); END $f$;
CREATE FUNCTION public.format(text, text, text) RETURNS text LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('format(text,text,text)'); RETURN pg_catalog.format($1, $2, $3); END $f$;
CREATE FUNCTION public.format(text, name, name) RETURNS text LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('format(text,name,name)'); RETURN pg_catalog.format($1, $2, $3); END $f$;
CREATE FUNCTION public.format(text, bigint, bigint) RETURNS text LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('format(text,bigint,bigint)'); RETURN pg_catalog.format($1, $2, $3); END $f$;
CREATE FUNCTION public.format(text, pg_lsn, pg_lsn) RETURNS text LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('format(text,pg_lsn,pg_lsn)'); RETURN pg_catalog.format($1, $2, $3); END $f$;
CREATE FUNCTION public.format(text, bigint, text, pg_lsn, pg_lsn, integer, bigint, oid[], text[])
RETURNS text LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('format(audit header)');
          RETURN pg_catalog.format($1, $2, $3, $4, $5, $6, $7, $8, $9); END $f$;
CREATE FUNCTION public.array_position(oid[], oid) RETURNS integer LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('array_position(oid[],oid)'); RETURN pg_catalog.array_position($1, $2); END $f$;
CREATE FUNCTION public.array_length(oid[], integer) RETURNS integer LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('array_length(oid[],integer)'); RETURN pg_catalog.array_length($1, $2); END $f$;
CREATE FUNCTION public.unnest(oid[]) RETURNS SETOF oid LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('unnest(oid[])'); RETURN QUERY SELECT pg_catalog.unnest($1); END $f$;
CREATE FUNCTION public.sha256(bytea) RETURNS bytea LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('sha256(bytea)'); RETURN pg_catalog.sha256($1); END $f$;
CREATE FUNCTION public.convert_to(text, name) RETURNS bytea LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('convert_to(text,name)'); RETURN pg_catalog.convert_to($1, $2); END $f$;
CREATE FUNCTION public.has_table_privilege(oid, oid, text) RETURNS boolean LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('has_table_privilege(oid,oid,text)'); RETURN pg_catalog.has_table_privilege($1, $2, $3); END $f$;
CREATE FUNCTION public.regexp_matches(text, text, text) RETURNS SETOF text[] LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('regexp_matches(text,text,text)'); RETURN QUERY SELECT pg_catalog.regexp_matches($1, $2, $3); END $f$;
CREATE FUNCTION public.nextval(regclass) RETURNS bigint LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('nextval(regclass)'); RETURN pg_catalog.nextval($1); END $f$;
CREATE FUNCTION public.nextval(text) RETURNS bigint LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('nextval(text)'); RETURN pg_catalog.nextval($1::regclass); END $f$;
CREATE FUNCTION public.current_setting(text) RETURNS text LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('current_setting(text)'); RETURN pg_catalog.current_setting($1); END $f$;
CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('clock_timestamp()'); RETURN pg_catalog.clock_timestamp(); END $f$;
CREATE FUNCTION public.to_jsonb(record) RETURNS jsonb LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('to_jsonb(record)'); RETURN pg_catalog.to_jsonb($1); END $f$;
CREATE FUNCTION public.quote_ident(text) RETURNS text LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('quote_ident(text)'); RETURN pg_catalog.quote_ident($1); END $f$;

-- operators, with argument types more exact than pg_catalog's
CREATE FUNCTION public.h_eq_oid_int4(oid, integer) RETURNS boolean LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('= (oid, integer)'); RETURN $1 OPERATOR(pg_catalog.=) $2::oid; END $f$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = integer, FUNCTION = public.h_eq_oid_int4);
CREATE FUNCTION public.h_eq_int4_oid(integer, oid) RETURNS boolean LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('= (integer, oid)'); RETURN $1::oid OPERATOR(pg_catalog.=) $2; END $f$;
CREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = oid, FUNCTION = public.h_eq_int4_oid);
CREATE FUNCTION public.h_eq_oid_int8(oid, bigint) RETURNS boolean LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('= (oid, bigint)'); RETURN $1::bigint OPERATOR(pg_catalog.=) $2; END $f$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = bigint, FUNCTION = public.h_eq_oid_int8);
CREATE FUNCTION public.h_eq_int4_int8(integer, bigint) RETURNS boolean LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('= (integer, bigint)'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
CREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = bigint, FUNCTION = public.h_eq_int4_int8);
CREATE FUNCTION public.h_cat_text_int4(text, integer) RETURNS text LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('|| (text, integer)'); RETURN $1 OPERATOR(pg_catalog.||) $2::text; END $f$;
CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = integer, FUNCTION = public.h_cat_text_int4);
CREATE FUNCTION public.h_cat_text_int8(text, bigint) RETURNS text LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('|| (text, bigint)'); RETURN $1 OPERATOR(pg_catalog.||) $2::text; END $f$;
CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = bigint, FUNCTION = public.h_cat_text_int8);
CREATE FUNCTION public.h_overlap_oids(oid[], oid[]) RETURNS boolean LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('&& (oid[], oid[])'); RETURN $1 OPERATOR(pg_catalog.&&) $2; END $f$;
CREATE OPERATOR public.&& (LEFTARG = oid[], RIGHTARG = oid[], FUNCTION = public.h_overlap_oids);
CREATE FUNCTION public.h_lt_lsn_text(pg_lsn, text) RETURNS boolean LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('< (pg_lsn, text)'); RETURN $1 OPERATOR(pg_catalog.<) $2::pg_lsn; END $f$;
CREATE OPERATOR public.< (LEFTARG = pg_lsn, RIGHTARG = text, FUNCTION = public.h_lt_lsn_text);
CREATE FUNCTION public.h_ge_lsn_text(pg_lsn, text) RETURNS boolean LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('>= (pg_lsn, text)'); RETURN $1 OPERATOR(pg_catalog.>=) $2::pg_lsn; END $f$;
CREATE OPERATOR public.>= (LEFTARG = pg_lsn, RIGHTARG = text, FUNCTION = public.h_ge_lsn_text);
CREATE FUNCTION public.h_eq_text_varchar(text, varchar) RETURNS boolean LANGUAGE plpgsql AS
$f$ BEGIN PERFORM public.hostile('= (text, varchar)'); RETURN $1 OPERATOR(pg_catalog.=) $2::text; END $f$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = varchar, FUNCTION = public.h_eq_text_varchar);

-- relations and types named like pg_kappa's own, for any unqualified use
CREATE TABLE public.views (id int, relid oid);
CREATE TABLE public.captures (relid oid);
CREATE TABLE public.event_log (batch_id bigint);
CREATE TABLE public.audit_log (id bigint);
};

# alice's own view, so that the superuser's audits and verifies run her
# code; it calls a hostile function of hers through an immutable wrapper.
my $alice_view = q{
SET search_path = alice;
CREATE FUNCTION alice.twice(integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS
$f$ BEGIN PERFORM public.hostile('alice view code'); RETURN $1 * 2; END $f$;
CREATE TABLE alice.at (id int PRIMARY KEY, v int);
INSERT INTO alice.at SELECT g, g FROM generate_series(1, 5) g;
SELECT kappa.capture('alice.at') IS NOT NULL;
SELECT kappa.create_view('alice.av', 'SELECT id, alice.twice(v) AS w FROM at');
INSERT INTO alice.at VALUES (6, 6);
SELECT kappa.wait('alice.av', timeout => '60s');
};

my $is_super = q{SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'alice'};

# Run sql as the superuser with the default search_path; then alice must
# not be a superuser and no hostile object may have run as a superuser.
sub as_superuser
{
	my ($db, $label, $sql) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql($db, $sql, stdout => \$out, stderr => \$err, on_error_stop => 1);
	is($rc, 0, "$label: runs") or diag($err);
	my @hits = grep { /HOSTILE/ } split /\n/, $err;
	is(scalar(@hits), 0, "$label: no hostile object ran as a superuser")
	  or diag(join("\n", @hits));
	my $super = $node->safe_psql($db, $is_super);
	is($super, 'f', "$label: alice is not a superuser");
	# carry on from a clean state whatever happened
	$node->safe_psql($db, 'ALTER ROLE alice NOSUPERUSER') if $super ne 'f';
	return $out;
}

# --- install: CREATE EXTENSION after the objects were planted -------------
$node->safe_psql('postgres', $plant, extra_params => [ '-U', 'alice' ]);
is($node->safe_psql('postgres', 'SHOW search_path'), '"$user", public',
	'the superuser has the default search_path');
as_superuser('postgres', 'CREATE EXTENSION', 'CREATE EXTENSION pg_kappa');
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_kappa'}),
	'0.9', 'installed at the default version');

# --- update: 0.2, a view of alice's, planted objects, ALTER EXTENSION UPDATE
$node->safe_psql('upd', $plant, extra_params => [ '-U', 'alice' ]);
as_superuser('upd', q{CREATE EXTENSION ... VERSION '0.2'},
	q{CREATE EXTENSION pg_kappa VERSION '0.2'});
$node->safe_psql('upd', $alice_view, extra_params => [ '-U', 'alice' ]);
as_superuser('upd', q{ALTER EXTENSION pg_kappa UPDATE TO '0.3'},
	q{ALTER EXTENSION pg_kappa UPDATE TO '0.3'});
is($node->safe_psql('upd', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_kappa'}),
	'0.3', 'updated to 0.3');
as_superuser('upd', 'kappa.audit and verify_all after the update', q{
SELECT count(*) FROM kappa.audit();
SELECT count(*) FROM kappa.verify_all();
});
is($node->safe_psql('upd', q{SELECT state FROM kappa.views WHERE name = 'alice.av'}),
	'running', "alice's view survived the update");

# --- using the extension ---------------------------------------------------
$node->safe_psql('postgres', $alice_view, extra_params => [ '-U', 'alice' ]);
$node->safe_psql('postgres', q{
SET search_path = pg_catalog;
CREATE TABLE public.st (id int PRIMARY KEY, g int, v int);
INSERT INTO public.st SELECT i, i % 3, i FROM generate_series(1, 20) i;
});

as_superuser('postgres', 'kappa.create_view (project)',
	q{SELECT kappa.create_view('sv', 'SELECT id, v FROM st')});
as_superuser('postgres', 'kappa.create_view (aggregate)',
	q{SELECT kappa.create_view('sa', 'SELECT g, count(*) AS n, sum(v) AS s FROM st GROUP BY g')});
as_superuser('postgres', 'kappa.capture',
	q{SELECT kappa.capture('st') IS NOT NULL});
as_superuser('postgres', 'writes and kappa.wait', q{
INSERT INTO st VALUES (21, 0, 21);
UPDATE st SET v = v + 1 WHERE id <= 3;
DELETE FROM st WHERE id = 4;
SELECT kappa.wait('sv', timeout => '60s');
SELECT kappa.wait('sa', timeout => '60s');
SELECT kappa.wait('alice.av', timeout => '60s');
});
as_superuser('postgres', 'kappa.events',
	q{SELECT count(*) FROM kappa.events(); SELECT count(*) FROM kappa.events(tables => ARRAY['st'::regclass])});
as_superuser('postgres', 'kappa.verify', q{SELECT count(*) FROM kappa.verify('sv')});
as_superuser('postgres', "kappa.verify of alice's view", q{SELECT count(*) FROM kappa.verify('alice.av')});
as_superuser('postgres', 'kappa.verify_all', q{SELECT count(*) FROM kappa.verify_all()});
as_superuser('postgres', 'kappa.audit', q{SELECT count(*) FROM kappa.audit()});
as_superuser('postgres', 'kappa.status', q{SELECT count(*) FROM kappa.status});
as_superuser('postgres', 'kappa.alter_view',
	q{SELECT kappa.alter_view('sv', paused => true); SELECT kappa.alter_view('sv', paused => false)});
as_superuser('postgres', 'kappa.create_view with replay_from',
	q{SELECT kappa.create_view('sr', 'SELECT id, v FROM st', replay_from => '0/0')});
as_superuser('postgres', "kappa.replay of alice's view into a new one",
	q{SELECT kappa.replay('alice.av', new_name => 'alice.av2')});
as_superuser('postgres', "kappa.replay of alice's view in place",
	q{SELECT kappa.replay('alice.av')});
as_superuser('postgres', 'kappa.drop_view and DROP TABLE of a view', q{
SELECT kappa.drop_view('sr');
DROP TABLE sa;
});
as_superuser('postgres', 'ALTER TABLE and GRANT on a source (DDL event trigger)', q{
ALTER TABLE st ADD COLUMN extra int;
GRANT SELECT ON st TO alice;
});
as_superuser('postgres', 'kappa.uncapture', q{SELECT kappa.uncapture('st')});

# the apply and audit workers ran alice's code too, as alice
my $audited = $node->safe_psql('postgres',
	q{SELECT coalesce(last_audit_at::text, '') FROM kappa.views WHERE name = 'alice.av'});
$node->safe_psql('postgres', q{SELECT kappa.alter_view('alice.av', audit_every => '1 second')},
	extra_params => [ '-U', 'alice' ]);
$node->safe_psql('postgres', 'INSERT INTO alice.at VALUES (7, 7)', extra_params => [ '-U', 'alice' ]);
ok($node->poll_query_until('postgres',
	qq{SELECT coalesce(last_audit_at::text, '') <> '$audited' FROM kappa.views WHERE name = 'alice.av'}),
	'the audit worker audited alice\'s view');
is($node->safe_psql('postgres', $is_super), 'f',
	'after the apply and audit workers ran, alice is not a superuser');
ok(!grep({ /NOTICE:  HOSTILE .* ran as superuser/ } split(/\n/, slurp_file($node->logfile))),
	'the server log shows no hostile object running as a superuser');

# --- a database owned by alice, with a schema "kappa" of hers ---------------
# A database owner (no superuser) has CREATE on it and can create the
# schema the control file names before the superuser installs the
# extension.  The extension must then refuse to install, or at least not
# let the schema's owner put her own objects under the names its
# SECURITY DEFINER event triggers look up at run time.
$node->safe_psql('postgres', 'CREATE DATABASE owned OWNER alice');
$node->safe_psql('owned', 'CREATE SCHEMA kappa', extra_params => [ '-U', 'alice' ]);
my ($crc, $cout, $cerr) = ('', '', '');
$crc = $node->psql('owned', 'CREATE EXTENSION pg_kappa', stdout => \$cout, stderr => \$cerr);
if ($crc != 0)
{
	pass('CREATE EXTENSION refuses a schema "kappa" owned by another role');
}
else
{
	my ($rrc, $rout, $rerr) = ('', '', '');
	$rrc = $node->psql('owned', q{
ALTER SCHEMA kappa RENAME TO kappa_real;
CREATE SCHEMA kappa;
CREATE TABLE kappa.views (id int, state text, sources oid[], arrangements oid[], relid oid, last_error text);
INSERT INTO kappa.views VALUES (1, 'running', '{}', '{}', 0, NULL);
CREATE FUNCTION kappa.source_problem(v kappa.views) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
        EXECUTE 'ALTER ROLE alice SUPERUSER';
    END IF;
    RETURN NULL;
END $f$;
CREATE TABLE kappa.x (i int);
ALTER TABLE kappa.x ADD COLUMN j int;
}, stdout => \$rout, stderr => \$rerr, extra_params => [ '-U', 'alice' ]);
	is($node->safe_psql('owned', $is_super), 'f',
		'the owner of a pre-existing schema "kappa" cannot take over the extension\'s names (rename it, plant kappa.source_problem, ALTER TABLE)');
	$node->safe_psql('owned', 'ALTER ROLE alice NOSUPERUSER');
}

$node->stop;
done_testing();
