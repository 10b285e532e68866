-- DDL that would change a view's rows without decoded changes, and session
-- settings that would change what its code computes: never a silently
-- wrong view.  Each case fails (the view differs from its query while
-- running) without its guard.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE dg (id int PRIMARY KEY, v int, s text COLLATE "C", f float8, b bytea);
INSERT INTO dg SELECT i, i, chr(64 + i) || chr(96 + i), i / 3.0, int4send(i)
  FROM generate_series(1, 6) i;
INSERT INTO dg VALUES (7, 7, 'a', 0.1, '\x00ff');
RESET client_min_messages;

-- 1. the caller's output settings do not reach the view's code
SET extra_float_digits = 0;
SET bytea_output = 'escape';
SELECT kappa.create_view('dg_text', 'SELECT id, f::text AS ft, b::text AS bt FROM dg');
RESET extra_float_digits;
RESET bytea_output;
INSERT INTO dg VALUES (8, 8, 'b', 2 / 3.0, '\x01');
SELECT kappa.wait('dg_text');
SELECT count(*) AS differences FROM kappa.verify('dg_text');
SELECT * FROM dg_text WHERE id IN (2, 7, 8) ORDER BY id;
SET extra_float_digits = 0;
SELECT count(*) AS differences FROM kappa.verify('dg_text');
RESET extra_float_digits;

-- 2. a source made unlogged: its changes leave the WAL
SELECT kappa.create_view('dg_sum', 'SELECT count(*) AS n, sum(v) AS s FROM dg');
ALTER TABLE dg SET UNLOGGED;
SELECT state FROM kappa.views WHERE name = 'public.dg_sum';
ALTER TABLE dg SET LOGGED;
SELECT kappa.alter_view(view => 'dg_sum', rebuild => true);
INSERT INTO dg VALUES (9, 9, 'c', 1, '\x02');
SELECT kappa.wait('dg_sum');
SELECT count(*) AS differences FROM kappa.verify('dg_sum');

-- 3. a column's values computed again, to the same type
ALTER TABLE dg ALTER COLUMN v TYPE int USING v * 100;
SELECT state, last_error FROM kappa.views WHERE name = 'public.dg_sum';
SELECT kappa.alter_view(view => 'dg_sum', rebuild => true);
SELECT count(*) AS differences FROM kappa.verify('dg_sum');
-- a rewrite that keeps the values leaves the view running
ALTER TABLE dg ADD COLUMN r float8 DEFAULT random();
SELECT state FROM kappa.views WHERE name = 'public.dg_sum';

-- 4. a column's collation changed: min, max and comparisons mean another thing
SELECT kappa.create_view('dg_min', 'SELECT v % 2 AS odd, min(s) AS lo FROM dg GROUP BY 1');
ALTER TABLE dg ALTER COLUMN s TYPE text COLLATE "POSIX";
SELECT state FROM kappa.views WHERE name = 'public.dg_min';
ALTER TABLE dg ALTER COLUMN s TYPE text COLLATE "C";
SELECT kappa.alter_view(view => v, rebuild => true) FROM unnest(ARRAY['dg_min', 'dg_sum']) v;
SELECT name, state FROM kappa.views WHERE name IN ('public.dg_min', 'public.dg_sum') ORDER BY 1;

-- 5. a derived table cannot be made unlogged, nor have row-level security
-- forced on it; nor can its column values be computed again
ALTER TABLE dg_sum SET UNLOGGED;
ALTER TABLE dg_sum ENABLE ROW LEVEL SECURITY;
ALTER TABLE dg_sum FORCE ROW LEVEL SECURITY;
ALTER TABLE dg_sum ALTER COLUMN s TYPE bigint USING s + 1;
ALTER TABLE dg_sum DISABLE ROW LEVEL SECURITY;
-- past the event triggers (a superuser in replica mode), the worker
-- refuses to write it
SET session_replication_role = replica;
ALTER TABLE dg_sum SET UNLOGGED;
RESET session_replication_role;
INSERT INTO dg VALUES (10, 10, 'd', 1, '\x03');
SELECT kappa.wait('dg_sum', timeout => '30s');
-- a role that may read the view but not its source is not told the error,
-- which may quote the source's rows (kappa.status does not show it either)
CREATE ROLE dg_reader;
GRANT SELECT ON dg_sum TO dg_reader;
SET ROLE dg_reader;
SELECT kappa.wait('dg_sum', timeout => '30s');
SELECT name, state, last_error FROM kappa.status WHERE name = 'public.dg_sum';
RESET ROLE;
REVOKE SELECT ON dg_sum FROM dg_reader;
DROP ROLE dg_reader;
SELECT state, regexp_replace(last_error, '[0-9A-F]+/[0-9A-F]+', 'LSN', 'g') AS last_error
  FROM kappa.views WHERE name = 'public.dg_sum';
ALTER TABLE dg_sum SET LOGGED;
SELECT kappa.alter_view(view => 'dg_sum', rebuild => true);
SELECT count(*) AS differences FROM kappa.verify('dg_sum');

SET client_min_messages = warning;
SELECT kappa.drop_view(v) FROM unnest(ARRAY['dg_text', 'dg_sum', 'dg_min']) v;
DROP TABLE dg;

-- 6. a function the view calls, replaced: its rows were computed with the
-- old definition
CREATE FUNCTION dg_tax(numeric) RETURNS numeric IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 1.10';
CREATE TABLE dg_prices (id int PRIMARY KEY, price numeric);
INSERT INTO dg_prices VALUES (1, 100), (2, 200);
SET client_min_messages = warning;
SELECT kappa.create_view('dg_gross', 'SELECT id, public.dg_tax(price) AS gross FROM dg_prices');
RESET client_min_messages;
CREATE OR REPLACE FUNCTION dg_tax(numeric) RETURNS numeric IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 1.20';
SELECT state FROM kappa.views WHERE name = 'public.dg_gross';
SELECT kappa.alter_view(view => 'dg_gross', rebuild => true);
INSERT INTO dg_prices VALUES (3, 300);
SELECT kappa.wait('dg_gross');
SELECT * FROM dg_gross ORDER BY id;
SELECT count(*) AS differences FROM kappa.verify('dg_gross');
-- a new function, or one no view calls, changes nothing
CREATE FUNCTION dg_other(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1';
CREATE OR REPLACE FUNCTION dg_other(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 + 1';
SELECT state FROM kappa.views WHERE name = 'public.dg_gross';
-- renamed: another function could take the name the query is read with
ALTER FUNCTION dg_tax(numeric) RENAME TO dg_tax_old;
SELECT state FROM kappa.views WHERE name = 'public.dg_gross';
SET client_min_messages = warning;
SELECT kappa.drop_view('dg_gross');
DROP TABLE dg_prices;
DROP FUNCTION dg_tax_old(numeric), dg_other(int);

-- 7. a source's primary key dropped: the view was kept by it
CREATE TABLE dg_keyed (id int PRIMARY KEY, v int);
INSERT INTO dg_keyed SELECT i, i FROM generate_series(1, 5) i;
SET client_min_messages = warning;
SELECT kappa.create_view('dg_rows', 'SELECT id, v FROM dg_keyed');
SELECT kappa.create_view('dg_groups', 'SELECT v % 2 AS odd, count(*) AS n FROM dg_keyed GROUP BY 1');
RESET client_min_messages;
ALTER TABLE dg_keyed ADD CHECK (v > 0), ADD UNIQUE (v);
ALTER TABLE dg_keyed DROP CONSTRAINT dg_keyed_v_check, DROP CONSTRAINT dg_keyed_v_key;
SELECT name, state FROM kappa.views WHERE name IN ('public.dg_rows', 'public.dg_groups') ORDER BY 1;
ALTER TABLE dg_keyed DROP CONSTRAINT dg_keyed_pkey;
SELECT name, state FROM kappa.views WHERE name IN ('public.dg_rows', 'public.dg_groups') ORDER BY 1;
ALTER TABLE dg_keyed ADD PRIMARY KEY (id);
SELECT kappa.alter_view(view => 'dg_rows', rebuild => true);
INSERT INTO dg_keyed VALUES (6, 6);
SELECT kappa.wait('dg_rows') AND kappa.wait('dg_groups') AS waited;
SELECT count(*) AS differences FROM kappa.verify('dg_rows');
SET client_min_messages = warning;
SELECT kappa.drop_view('dg_rows'), kappa.drop_view('dg_groups');
DROP TABLE dg_keyed;

-- 8. a schema named as the next view's internal schema: that id is skipped
DO $$ BEGIN EXECUTE format('CREATE SCHEMA kappa_v%s', (SELECT last_value + 1 FROM kappa.views_id_seq)); END $$;
CREATE TABLE dg_next (id int PRIMARY KEY);
SET client_min_messages = warning;
SELECT kappa.create_view('dg_next_v', 'SELECT id FROM dg_next');
SELECT kappa.drop_view('dg_next_v');
DROP TABLE dg_next;
DO $$ BEGIN EXECUTE format('DROP SCHEMA kappa_v%s', (SELECT last_value - 1 FROM kappa.views_id_seq)); END $$;

-- 9. a captured table made unlogged: its changes leave the log too
CREATE TABLE dg_logged (id int PRIMARY KEY, v int);
SELECT kappa.capture('dg_logged') IS NOT NULL AS captured;
ALTER TABLE dg_logged SET UNLOGGED;
SELECT state, failed_lsn IS NOT NULL AS failed_at, last_error FROM kappa.captures
 WHERE relid = 'dg_logged'::regclass;
SELECT kappa.uncapture('dg_logged');
DROP TABLE dg_logged;

-- 10. the unique index on a derived table's key dropped
CREATE TABLE dg_idx (id int PRIMARY KEY, g int);
INSERT INTO dg_idx SELECT i, i % 3 FROM generate_series(1, 9) i;
SET client_min_messages = warning;
SELECT kappa.create_view('dg_idx_v', 'SELECT g, count(*) AS n FROM dg_idx GROUP BY g');
CREATE INDEX dg_idx_v_other ON dg_idx_v (n);
RESET client_min_messages;
DROP INDEX dg_idx_v_other;                  -- the owner's own index: nothing to say
SELECT state FROM kappa.views WHERE name = 'public.dg_idx_v';
SELECT format('DROP INDEX %s', indexrelid::regclass) FROM pg_index
 WHERE indrelid = 'dg_idx_v'::regclass AND indisunique \gexec
SELECT state FROM kappa.views WHERE name = 'public.dg_idx_v';
SELECT kappa.alter_view(view => 'dg_idx_v', rebuild => true);
INSERT INTO dg_idx VALUES (10, 1);
SELECT kappa.wait('dg_idx_v');
SELECT count(*) AS differences FROM kappa.verify('dg_idx_v');
SET client_min_messages = warning;
SELECT kappa.drop_view('dg_idx_v');
DROP TABLE dg_idx;

-- 11. a typed table's column renamed through its type
CREATE TYPE dg_row AS (id int, v int);
CREATE TABLE dg_typed OF dg_row (PRIMARY KEY (id));
INSERT INTO dg_typed VALUES (1, 1);
SET client_min_messages = warning;
SELECT kappa.create_view('dg_typed_v', 'SELECT id, v FROM dg_typed');
RESET client_min_messages;
ALTER TYPE dg_row RENAME ATTRIBUTE v TO w CASCADE;
SELECT state FROM kappa.views WHERE name = 'public.dg_typed_v';
SET client_min_messages = warning;
SELECT kappa.drop_view('dg_typed_v');
DROP TABLE dg_typed;
DROP TYPE dg_row;

-- 12. DROP ... CASCADE that would reach a view's internal tables (they have
-- the sources' column types, and belong to the extension, which PostgreSQL
-- would drop with them) is refused, naming the view; after kappa.drop_view
-- it goes through
RESET client_min_messages;
CREATE TYPE dg_mood AS ENUM ('sad', 'ok');
CREATE DOMAIN dg_pos AS int CHECK (VALUE > 0);
CREATE SCHEMA dg_types;
CREATE TYPE dg_types.color AS ENUM ('red', 'blue');
CREATE ROLE dg_typer;
CREATE TYPE dg_owned AS (a int);
ALTER TYPE dg_owned OWNER TO dg_typer;
CREATE EXTENSION citext;
CREATE FUNCTION dg_diff(a float8, b float8) RETURNS float8 LANGUAGE sql IMMUTABLE AS 'SELECT a - b';
CREATE TYPE dg_range AS RANGE (subtype = float8, subtype_diff = dg_diff);
CREATE TABLE dg_people (id int PRIMARY KEY, m dg_mood, p dg_pos, c dg_types.color,
                        o dg_owned, t citext, arr dg_mood[], r dg_range, name text);
INSERT INTO dg_people VALUES (1, 'ok', 3, 'red', ROW(1), 'x', '{sad}', '[1,2)', 'a');
SET client_min_messages = warning;
SELECT kappa.create_view('dg_people_v', 'SELECT id, name FROM dg_people');
RESET client_min_messages;
DROP TYPE dg_mood CASCADE;
DROP TYPE IF EXISTS dg_nosuch, dg_mood CASCADE;
DROP DOMAIN dg_pos CASCADE;
DROP SCHEMA dg_types CASCADE;
DROP OWNED BY dg_typer CASCADE;
DROP EXTENSION citext CASCADE;
DROP FUNCTION dg_diff(float8, float8) CASCADE;   -- through the range type
-- to a role that may not drop them, PostgreSQL's own refusal, not a word of the view
CREATE ROLE dg_other;
SET ROLE dg_other;
DROP TYPE dg_mood CASCADE;
DROP OWNED BY dg_typer CASCADE;
RESET ROLE;
DROP ROLE dg_other;
\set VERBOSITY terse
DROP TYPE dg_mood;                          -- PostgreSQL's own refusal
\set VERBOSITY default
SELECT extname FROM pg_extension WHERE extname = 'pg_kappa';
SELECT state FROM kappa.views WHERE name = 'public.dg_people_v';
-- types no view reads drop as ever
CREATE TYPE dg_unused AS (a int);
DROP TYPE dg_unused CASCADE;
SET client_min_messages = warning;
SELECT kappa.drop_view('dg_people_v');
DROP TYPE dg_mood CASCADE;
DROP DOMAIN dg_pos CASCADE;
DROP SCHEMA dg_types CASCADE;
DROP OWNED BY dg_typer CASCADE;
DROP EXTENSION citext CASCADE;
DROP FUNCTION dg_diff(float8, float8) CASCADE;
DROP ROLE dg_typer;
SELECT extname FROM pg_extension WHERE extname = 'pg_kappa';
SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute
 WHERE attrelid = 'dg_people'::regclass AND attnum > 0 AND NOT attisdropped;
DROP TABLE dg_people;

-- 13. the relations of a view's internal schema that belong to the
-- extension keep pg_kappa's definitions: their owner (the view's) may not
-- make one depend on an object of its own, whose DROP ... CASCADE would
-- drop the extension
RESET client_min_messages;
CREATE FUNCTION dg_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'done';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'kappa_v[0-9]+', 'kappa_v<id>', 'g');
END $$;
CREATE ROLE dg_owner;
CREATE SCHEMA dg_own AUTHORIZATION dg_owner;
SET ROLE dg_owner;
CREATE TABLE dg_own.src (id int PRIMARY KEY, g int, v int);
INSERT INTO dg_own.src VALUES (1, 1, 10);
SET client_min_messages = warning;
SELECT kappa.create_view('dg_own.v', 'SELECT g, sum(v) AS s FROM dg_own.src GROUP BY g');
RESET client_min_messages;
CREATE FUNCTION dg_own.t() RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE FUNCTION dg_own.tf() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
SELECT 'kappa_v' || id AS dg_s FROM kappa.views WHERE name = 'dg_own.v' \gset
SELECT dg_try(format('CREATE OR REPLACE VIEW %I.o_0 AS SELECT id, g, v, 1 AS _kappa_w FROM ONLY dg_own.src WHERE dg_own.t()'
                     ' UNION ALL SELECT id, g, v, - _kappa_w FROM %I.d_0', :'dg_s', :'dg_s'));
SELECT dg_try(format('CREATE RULE "_RETURN" AS ON SELECT TO %I.d_0 DO INSTEAD SELECT id, g, v, 1 AS _kappa_w FROM dg_own.src', :'dg_s'));
SELECT dg_try(format('CREATE TRIGGER dg_t BEFORE INSERT ON %I.d_0 FOR EACH ROW EXECUTE FUNCTION dg_own.tf()', :'dg_s'));
SELECT dg_try(format('CREATE POLICY dg_p ON %I.g USING (dg_own.t())', :'dg_s'));
SELECT dg_try(format('ALTER VIEW %I.o_0 SET SCHEMA dg_own', :'dg_s'));
SELECT dg_try(format('ALTER TABLE %I.d_0 SET SCHEMA dg_own', :'dg_s'));
-- nor may its owner put anything there: the schema goes with the view,
-- pg_dump leaves it out, and the worker lets the view's code write there
SELECT dg_try(format('CREATE VIEW %I.dg_planted AS SELECT 1 AS x', :'dg_s'));
SELECT dg_try(format('CREATE TABLE %I.dg_planted (a int)', :'dg_s'));
SELECT dg_try(format('CREATE FUNCTION %I.dg_f() RETURNS int LANGUAGE sql AS $f$SELECT 1$f$', :'dg_s'));
CREATE TABLE dg_own.moved (a int);
SELECT dg_try(format('ALTER TABLE dg_own.moved SET SCHEMA %I', :'dg_s'));
SELECT set_config('search_path', :'dg_s' || ', public', false) IS NOT NULL AS path_set;
SELECT dg_try('CREATE TABLE dg_unqualified (a int)');
-- (a name that exists elsewhere on the search_path goes there all the same)
SELECT dg_try('CREATE TABLE pg_class (a int)');
SELECT dg_try('CREATE TABLE dg_own.src (a int)');
SELECT dg_try('CREATE STATISTICS dg_st ON g, v FROM dg_own.src');
RESET search_path;
-- an index on an internal table goes to its schema (the worker writes
-- those tables without maintaining indexes it did not make)
SELECT dg_try(format('CREATE INDEX ON %I.d_0 (id)', :'dg_s'));
SELECT dg_try(format('CREATE UNIQUE INDEX dg_ix ON %I.g (g)', :'dg_s'));
-- nor may a table of the role's inherit from one (pg_kappa's statements
-- would read its rows, and drop it with the view's schema)
SELECT dg_try(format('CREATE TABLE dg_own.dg_child () INHERITS (%I.d_0)', :'dg_s'));
CREATE TABLE dg_own.dg_orphan (id int, g int, v int, _kappa_w int);
SELECT dg_try(format('ALTER TABLE dg_own.dg_orphan INHERIT %I.d_0', :'dg_s'));
DROP TABLE dg_own.dg_orphan;
-- the internal schema keeps its name and its owner
SELECT dg_try(format('ALTER SCHEMA %I RENAME TO dg_moved', :'dg_s'));
SELECT dg_try(format('ALTER SCHEMA %I OWNER TO CURRENT_USER', :'dg_s'));
SELECT dg_try(format('SELECT kappa.create_view(%L, $q$SELECT id FROM dg_own.src$q$)', :'dg_s' || '.dg_inner'));
SELECT dg_try('SELECT kappa.create_view($n$kappa.dg_inner$n$, $q$SELECT id FROM dg_own.src$q$)');
DROP TABLE dg_own.moved;
RESET ROLE;
-- the derived table's owner may not change alone: its internal objects
-- would stay the old owner's, while the view runs as the new one
CREATE ROLE dg_heir;
SELECT dg_try('ALTER TABLE dg_own.v OWNER TO dg_heir');
DROP ROLE dg_heir;
-- DROP OWNED without CASCADE of a role with views: refused by name, not by
-- PostgreSQL's list of everything that depends on the extension
SELECT dg_try('DROP OWNED BY dg_owner');
-- and had it been done (by a superuser, the guard off), the drop guard
-- follows the view's rule to the view
ALTER EVENT TRIGGER kappa_internal_ddl DISABLE;
SELECT dg_try(format('CREATE OR REPLACE VIEW %I.o_0 AS SELECT id, g, v, 1 AS _kappa_w FROM ONLY dg_own.src WHERE dg_own.t()'
                     ' UNION ALL SELECT id, g, v, - _kappa_w FROM %I.d_0', :'dg_s', :'dg_s'));
ALTER EVENT TRIGGER kappa_internal_ddl ENABLE;
SELECT dg_try('DROP FUNCTION dg_own.t() CASCADE');
-- and under it, whatever the command, the deletion itself is refused
ALTER EVENT TRIGGER kappa_drop_start DISABLE;
SET client_min_messages = warning;
SELECT dg_try('DROP FUNCTION dg_own.t() CASCADE');
RESET client_min_messages;
ALTER EVENT TRIGGER kappa_drop_start ENABLE;
SELECT extname FROM pg_extension WHERE extname = 'pg_kappa';
SET client_min_messages = warning;
SELECT kappa.drop_view('dg_own.v');
RESET client_min_messages;
-- a role that may drop the object, but not the view: its name is not told
CREATE TYPE dg_mood2 AS ENUM ('a');
CREATE TABLE dg_people2 (id int PRIMARY KEY, m dg_mood2);
SET client_min_messages = warning;
SELECT kappa.create_view('dg_people2_v', 'SELECT id FROM dg_people2');
RESET client_min_messages;
ALTER TYPE dg_mood2 OWNER TO dg_owner;
SET ROLE dg_owner;
DROP TYPE dg_mood2 CASCADE;
RESET ROLE;
SET client_min_messages = warning;
SELECT kappa.drop_view('dg_people2_v');
DROP TABLE dg_people2;
DROP TYPE dg_mood2;
DROP SCHEMA dg_own CASCADE;
-- a view dropped with its source in one command is gone, not broken: no
-- warning that it broke, and no row left
CREATE SCHEMA dg_both;
CREATE TABLE dg_both.src (id int PRIMARY KEY, v int);
SELECT kappa.create_view('dg_both.v', 'SELECT id, v FROM dg_both.src') IS NOT NULL AS created;
DROP SCHEMA dg_both CASCADE;
SELECT count(*) AS left_behind FROM kappa.views WHERE name LIKE 'dg_both.%' OR relid = 0;
DROP FUNCTION dg_try(text);
DROP ROLE dg_owner;
