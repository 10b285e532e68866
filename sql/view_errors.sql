-- Derived views: everything create_view refuses, and bad arguments.
\set VERBOSITY default
CREATE TABLE e_src (id int PRIMARY KEY, grp int, v numeric, t timestamptz, j jsonb);
CREATE SEQUENCE e_seq;
CREATE TABLE e_other (id int PRIMARY KEY, e_id int);
CREATE TABLE e_nopk (id int, v int);
CREATE TABLE e_full (id int, v int);
ALTER TABLE e_full REPLICA IDENTITY FULL;
CREATE TABLE e_nothing (id int PRIMARY KEY, v int);
ALTER TABLE e_nothing REPLICA IDENTITY NOTHING;
CREATE UNLOGGED TABLE e_unlogged (id int PRIMARY KEY);
CREATE TEMP TABLE e_temp (id int PRIMARY KEY);
CREATE VIEW e_view AS SELECT * FROM e_src;
CREATE MATERIALIZED VIEW e_mv AS SELECT * FROM e_src;
CREATE TABLE e_part (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE e_rls (id int PRIMARY KEY);
ALTER TABLE e_rls ENABLE ROW LEVEL SECURITY;
ALTER TABLE e_rls FORCE ROW LEVEL SECURITY;

-- not a single SELECT
SELECT kappa.create_view('x', 'SELECT 1; SELECT 2');
SELECT kappa.create_view('x', 'DELETE FROM e_src');
-- no column
SELECT kappa.create_view('x', 'SELECT FROM e_src');
SELECT kappa.create_view('x', 'SELECT FROM e_src JOIN e_other ON e_other.e_id = e_src.id');
SELECT kappa.create_view('x', 'SELECT id FROM');
SELECT kappa.create_view('x', 'SELECT id INTO e_into FROM e_src');
-- non-immutable functions
SELECT kappa.create_view('x', 'SELECT id, now() AS n FROM e_src');
SELECT kappa.create_view('x', 'SELECT id FROM e_src WHERE random() < 0.5');
SELECT kappa.create_view('x', 'SELECT id FROM e_src WHERE t < now()');
-- the innermost non-immutable function is named, with a hint for the clock
SELECT kappa.create_view('x', $$SELECT id FROM e_src WHERE t > now() - interval '1 day'$$);
-- CURRENT_DATE and the like are no functions, and are refused all the same
SELECT kappa.create_view('x', 'SELECT id FROM e_src WHERE t::date > CURRENT_DATE');
SELECT kappa.create_view('x', 'SELECT id, current_user AS u FROM e_src');
SELECT kappa.create_view('x', 'SELECT id, localtimestamp(0) AS l FROM e_src');
-- a stable function of a timestamp with time zone: the hint says how to
-- call its immutable variant
SELECT kappa.create_view('x', $$SELECT id, date_trunc('hour', t) AS h FROM e_src$$);
SELECT kappa.create_view('e_hours', $$SELECT id, date_trunc('hour', t AT TIME ZONE 'UTC') AS h FROM e_src$$) IS NOT NULL AS created;
SELECT kappa.drop_view('e_hours');
SELECT kappa.create_view('x', $$SELECT id, nextval('e_seq') AS n FROM e_src$$);
-- query constructs
SELECT kappa.create_view('x', 'SELECT id FROM e_src LIMIT 1');
SELECT kappa.create_view('x', 'SELECT id FROM e_src OFFSET 1');
SELECT kappa.create_view('x', 'SELECT id FROM e_src ORDER BY id');
SELECT kappa.create_view('x', 'SELECT id, row_number() OVER () AS r FROM e_src');
SELECT kappa.create_view('x', 'SELECT id, generate_series(1, 2) AS g FROM e_src');
SELECT kappa.create_view('x', 'SELECT id, (SELECT max(id) FROM e_other) AS m FROM e_src');
SELECT kappa.create_view('x', 'WITH c AS (SELECT id FROM e_src) SELECT id FROM c');
SELECT kappa.create_view('x', 'SELECT s.id FROM (SELECT id FROM e_src) s');
SELECT kappa.create_view('x', 'SELECT g AS id FROM generate_series(1, 3) g');
SELECT kappa.create_view('x', 'SELECT DISTINCT grp, count(*) AS n FROM e_src GROUP BY grp');
SELECT kappa.create_view('x', 'SELECT DISTINCT ON (grp) id, grp FROM e_src');
SELECT kappa.create_view('x', 'SELECT id FROM e_src UNION SELECT id FROM e_other');
SELECT kappa.create_view('x', 'SELECT grp, count(*) AS n FROM e_src GROUP BY ROLLUP (grp)');
SELECT kappa.create_view('x', 'SELECT id FROM e_src FOR UPDATE');
SELECT kappa.create_view('x', 'SELECT e_src.id, e_other.id AS oid FROM e_src FULL JOIN e_other ON e_other.e_id = e_src.id');
SELECT kappa.create_view('x', 'SELECT j.id FROM (e_src JOIN e_other USING (id)) j');
SELECT kappa.create_view('x', 'SELECT DISTINCT grp::text::xid AS x FROM e_src');
SELECT kappa.create_view('x', 'SELECT grp::text::xid AS x, count(*) AS n FROM e_src GROUP BY 1');
SELECT kappa.create_view('x', 'SELECT 1 AS one');
SELECT kappa.create_view('x', 'SELECT id, ctid FROM e_src');
SELECT kappa.create_view('x', 'SELECT id, e_src AS whole FROM e_src');
SELECT kappa.create_view('x', 'SELECT grp, json_agg(v) AS s FROM e_src GROUP BY grp');
SELECT kappa.create_view('x', 'SELECT count(*) AS n FROM e_src TABLESAMPLE SYSTEM (10)');
-- keys and names: engine 1 needs each source's key (engine 2 keeps such
-- views as bags, view_engine2)
SET pg_kappa.engine = 1;
SELECT kappa.create_view('x', 'SELECT grp, v FROM e_src');
SELECT kappa.create_view('x', 'SELECT e_src.id FROM e_src JOIN e_other ON e_other.e_id = e_src.id');
SELECT kappa.create_view('x', 'SELECT id, v FROM e_nopk');
SELECT kappa.create_view('x', 'SELECT id, v FROM e_full');
RESET pg_kappa.engine;
SELECT kappa.create_view('x', 'SELECT v, count(*) AS n FROM e_src GROUP BY v, grp');
SELECT kappa.create_view('x', 'SELECT id, v + 1 FROM e_src');
SELECT kappa.create_view('x', 'SELECT id, v AS a, grp AS a FROM e_src');
-- sources: REPLICA IDENTITY NOTHING is set to FULL, as the view needs
SELECT kappa.create_view('x_nothing', 'SELECT id, v FROM e_nothing');
SELECT relreplident FROM pg_class WHERE oid = 'e_nothing'::regclass;
SELECT kappa.drop_view('x_nothing');
SELECT kappa.create_view('x', 'SELECT id FROM e_unlogged');
SELECT kappa.create_view('x', 'SELECT id FROM e_temp');
SELECT kappa.create_view('x', 'SELECT id FROM e_view');
SELECT kappa.create_view('x', 'SELECT id FROM e_mv');
-- (a partitioned table needs engine 2: view_partitioned)
SET pg_kappa.engine = 1;
SELECT kappa.create_view('x', 'SELECT id FROM e_part');
RESET pg_kappa.engine;
SELECT kappa.create_view('x', 'SELECT oid FROM pg_class');
SELECT kappa.create_view('x', 'SELECT id FROM kappa.views');
-- row-level security: refused for a role that does not bypass it
CREATE ROLE kappa_rls_user;
GRANT SELECT ON e_rls TO kappa_rls_user;
GRANT CREATE ON SCHEMA public TO kappa_rls_user;
SET ROLE kappa_rls_user;
SELECT kappa.create_view('x', 'SELECT id FROM e_rls');
-- privileges: SELECT on every source
SELECT kappa.create_view('x', 'SELECT id FROM e_src');
RESET ROLE;
-- names
SELECT kappa.create_view('e_src', 'SELECT id FROM e_src');
SELECT kappa.create_view('no_such_schema.x', 'SELECT id FROM e_src');
SELECT kappa.create_view('x', 'SELECT id FROM no_such_table');
SELECT kappa.create_view('x', 'SELECT no_such_column FROM e_src');
SELECT kappa.create_view(NULL, 'SELECT id FROM e_src');
-- the default search_path is the caller's, which NULL is not
SELECT kappa.create_view('e_nullpath', 'SELECT id FROM e_src', NULL);
-- views on views are not supported yet
SELECT kappa.create_view('e_first', 'SELECT id, v FROM e_src');
SELECT kappa.create_view('x', 'SELECT id FROM e_first');
-- isolation level
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT kappa.create_view('x', 'SELECT id FROM e_src');
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT kappa.wait('e_first');
ROLLBACK;
-- other functions
SELECT kappa.drop_view('e_src');
SELECT kappa.alter_view('e_src', paused => true);
SELECT kappa.alter_view(view => 'e_first');
SELECT kappa.alter_view(view => 'e_first', paused => NULL, rebuild => NULL);
SELECT kappa.wait('e_src');
SELECT kappa.wait('e_first', timeout => '-1s');
SELECT kappa.wait(NULL);
-- group keys under names holding quotes and backslashes
CREATE TABLE e_odd (id int PRIMARY KEY, k int, v int);
INSERT INTO e_odd VALUES (1, 1, 10), (2, 1, 20), (3, 2, 5);
SELECT kappa.create_view('e_odd_v', $$SELECT k AS "a""b\c", sum(v) AS "s""" FROM e_odd GROUP BY 1$$) IS NOT NULL AS created;
SELECT key_columns FROM kappa.views WHERE name = 'public.e_odd_v';
INSERT INTO e_odd VALUES (4, 2, 1);
SELECT kappa.wait('e_odd_v');
SELECT * FROM e_odd_v ORDER BY 1;
SELECT count(*) AS differences FROM kappa.verify('e_odd_v');
SELECT kappa.drop_view('e_odd_v');
DROP TABLE e_odd;
-- a NULL view or table (to_regclass of a misspelt name) is an error, not an
-- empty result that says all is well
SELECT * FROM kappa.verify(view => to_regclass('e_no_such_view'));
SELECT kappa.drop_view(view => NULL);
SELECT kappa.uncapture(source => NULL);
SELECT kappa.swap(old => NULL, new => 'e_first');
SELECT kappa.swap(old => 'e_first', new => NULL);
SET ROLE kappa_rls_user;
SELECT kappa.drop_view('e_first');
SELECT kappa.alter_view('e_first', paused => true);
RESET ROLE;
-- nothing was left behind by the failures
SELECT name FROM kappa.views;
SELECT count(*) AS leftover_schemas FROM pg_namespace WHERE nspname LIKE 'kappa\_v%' AND nspname <> (SELECT 'kappa_v' || id FROM kappa.views);
SELECT kappa.drop_view('e_first');
DROP TABLE e_src, e_other, e_nopk, e_full, e_nothing, e_unlogged, e_part, e_rls CASCADE;
REVOKE CREATE ON SCHEMA public FROM kappa_rls_user;
DROP ROLE kappa_rls_user;
-- every refusal carries an SQLSTATE
\set VERBOSITY sqlstate
SELECT kappa.create_view('x', 'SELECT id, now() AS n FROM e2');
CREATE TABLE e2 (id int PRIMARY KEY, v int);
SELECT kappa.create_view('x', 'SELECT id, now() AS n FROM e2');
SELECT kappa.create_view('x', 'SELECT id FROM e2 LIMIT 1');
SET pg_kappa.engine = 1;
SELECT kappa.create_view('x', 'SELECT v FROM e2');
RESET pg_kappa.engine;
SELECT kappa.create_view('x', 'DELETE FROM e2');
SELECT kappa.create_view('x', 'SELECT id, v AS id FROM e2');
SELECT kappa.create_view('e2', 'SELECT id FROM e2');
SELECT kappa.drop_view('e2');
SELECT kappa.wait('e2');
DROP TABLE e2;
DROP SEQUENCE e_seq;
-- the owner keeps the view only while it may read the sources
\set VERBOSITY terse
CREATE ROLE kappa_owner;
GRANT CREATE ON SCHEMA public TO kappa_owner;
CREATE TABLE sec_src (id int PRIMARY KEY, v int);
INSERT INTO sec_src VALUES (1, 1), (2, 2);
GRANT SELECT ON sec_src TO kappa_owner;
-- (the view needs whole old rows in the WAL; only the table's owner may
-- say so)
SET ROLE kappa_owner;
SELECT kappa.create_view('sec_view', 'SELECT id, v FROM sec_src WHERE v > 1');
RESET ROLE;
ALTER TABLE sec_src REPLICA IDENTITY FULL;
SET ROLE kappa_owner;
SELECT kappa.create_view('sec_view', 'SELECT id, v FROM sec_src WHERE v > 1');
SELECT relname, pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relname = 'sec_view';
RESET ROLE;
INSERT INTO sec_src VALUES (3, 3);
SELECT kappa.wait('sec_view');
SELECT * FROM sec_view ORDER BY id;
REVOKE SELECT ON sec_src FROM kappa_owner;
INSERT INTO sec_src VALUES (4, 4);
SELECT kappa.wait('sec_view', timeout => '2s');
SELECT state, last_error FROM kappa.views WHERE name = 'public.sec_view';
SELECT * FROM sec_view ORDER BY id;
DROP TABLE sec_view;
SELECT count(*) FROM kappa.views WHERE name = 'public.sec_view';
DROP TABLE sec_src;
REVOKE CREATE ON SCHEMA public FROM kappa_owner;
DROP ROLE kappa_owner;

-- a source column whose name pg_kappa reserves for its own tables' columns
CREATE TABLE e_reserved (id int PRIMARY KEY, _kappa_w int);
SELECT kappa.create_view('e_reserved_v', 'SELECT id FROM e_reserved');
SELECT count(*) FROM kappa.views WHERE name = 'public.e_reserved_v';
DROP TABLE e_reserved;
-- and an output column of such a name (a bag's internal tables add one)
\set VERBOSITY default
CREATE TABLE e_plain (id int PRIMARY KEY, grp int, v int);
CREATE TABLE e_deferred (id int PRIMARY KEY DEFERRABLE, v int);
SELECT kappa.create_view('e_reserved_v', 'SELECT grp AS _kappa_w, v FROM e_plain');
-- a LEFT JOIN view's first table whose primary key is deferrable
SELECT kappa.create_view('e_deferred_v', 'SELECT d.id, p.v FROM e_deferred d LEFT JOIN e_plain p ON p.grp = d.v');
-- a semi-join view with GROUP BY that does not group by its first table's key
SELECT kappa.create_view('e_semi_grouped', 'SELECT p.grp, count(*) AS n FROM e_plain p WHERE EXISTS (SELECT 1 FROM e_deferred d WHERE d.v = p.v) GROUP BY p.grp');
-- op ALL (subquery), and a scalar subquery in WHERE
SELECT kappa.create_view('e_semi_all', 'SELECT p.id FROM e_plain p WHERE p.v < ALL (SELECT d.v FROM e_deferred d WHERE d.id = p.grp)');
SELECT kappa.create_view('e_semi_scalar', 'SELECT p.id FROM e_plain p WHERE p.v = (SELECT max(d.v) FROM e_deferred d)');
-- a function of the view's query written for the caller's search_path
CREATE FUNCTION e_clean(text) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT lower($1)';
CREATE FUNCTION e_normal(text) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT e_clean($1) || ''!''';
CREATE TABLE e_names (id int PRIMARY KEY, name text);
\set SHOW_CONTEXT never
SELECT kappa.create_view('e_names_v', 'SELECT id, e_normal(name) AS n FROM e_names');
\set SHOW_CONTEXT errors
DROP TABLE e_plain, e_deferred, e_names;
DROP FUNCTION e_normal(text), e_clean(text);
\set VERBOSITY terse

-- a group key whose type's equality is not a built-in one: the worker's
-- "=" (read with search_path pg_catalog) would be text's for citext,
-- case-sensitive where GROUP BY is not (DISTINCT groups too); a key of a
-- view without GROUP BY is copied exactly and is found by any equality
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS citext;
RESET client_min_messages;
CREATE TABLE e_ci (id int PRIMARY KEY, k citext, x int);
SELECT kappa.create_view('e_ci_v', 'SELECT k, count(*) AS n, max(x) AS mx FROM e_ci GROUP BY k');
SELECT kappa.create_view('e_ci_d', 'SELECT DISTINCT k FROM e_ci');
SELECT count(*) FROM kappa.views WHERE name IN ('public.e_ci_v', 'public.e_ci_d');
CREATE TABLE e_ci_key (k citext PRIMARY KEY, x int);
SET client_min_messages = warning;
SELECT kappa.create_view('e_ci_key_v', 'SELECT k, x FROM e_ci_key') IS NOT NULL AS created;
RESET client_min_messages;
INSERT INTO e_ci_key VALUES ('A', 1), ('b', 2);
UPDATE e_ci_key SET k = 'a', x = 3 WHERE k = 'A';
DELETE FROM e_ci_key WHERE k = 'B';
SELECT kappa.wait('e_ci_key_v');
SELECT * FROM e_ci_key_v ORDER BY k;
SELECT count(*) FROM kappa.verify('e_ci_key_v');
SELECT kappa.drop_view('e_ci_key_v');
-- cast to a built-in type, the view is made (and groups as text does)
SET client_min_messages = warning;
SELECT kappa.create_view('e_ci_t', 'SELECT k::text AS k, count(*) AS n FROM e_ci GROUP BY k::text') IS NOT NULL AS created;
RESET client_min_messages;
INSERT INTO e_ci VALUES (1, 'A', 1), (2, 'a', 2);
SELECT kappa.wait('e_ci_t');
SELECT * FROM e_ci_t ORDER BY k COLLATE "C";
SELECT kappa.drop_view('e_ci_t');
DROP TABLE e_ci, e_ci_key;
DROP EXTENSION citext;

-- a name part longer than NAMEDATALEN - 1 bytes is truncated with a NOTICE,
-- as PostgreSQL does with an identifier written in a statement
CREATE TABLE e_long (id int PRIMARY KEY, v int);
ALTER TABLE e_long REPLICA IDENTITY FULL;
SELECT kappa.create_view('public.e_view_with_a_name_that_is_longer_than_sixty_three_bytes_by_far_and_more', 'SELECT id, v FROM e_long');
SELECT kappa.create_view('"E quoted name longer than sixty three bytes, with a "" quote in it"', 'SELECT id FROM e_long');
SELECT name FROM kappa.views WHERE name LIKE '%sixty%' ORDER BY name;
-- DROP EXTENSION without CASCADE names the views, not a trigger of theirs
-- (in a transaction rolled back, should it drop the extension all the same)
\set VERBOSITY default
BEGIN;
DROP EXTENSION pg_kappa;
ROLLBACK;
SELECT count(*) AS views_kept FROM kappa.views WHERE name LIKE '%sixty%';
SELECT kappa.drop_view(relid::regclass) FROM kappa.views WHERE name LIKE '%sixty%' ORDER BY name;
DROP TABLE e_long;
-- kappa.drop_view of a view whose table another object depends on: the
-- hint names what to run, as the function has no CASCADE
CREATE TABLE e_dep (id int PRIMARY KEY, v int);
ALTER TABLE e_dep REPLICA IDENTITY FULL;
SELECT kappa.create_view('e_dep_v', 'SELECT id, v FROM e_dep') IS NOT NULL AS created;
CREATE VIEW e_dep_pgview AS SELECT * FROM e_dep_v;
SELECT kappa.drop_view(view => 'e_dep_v');
DROP VIEW e_dep_pgview;
SELECT kappa.drop_view(view => 'e_dep_v');
DROP TABLE e_dep;
