-- Which relations are reported, and how their names are written: tables
-- (also created by CREATE TABLE AS, or inheriting), not materialized views,
-- temporary or unlogged tables; names with characters JSON must escape;
-- INSERT ... ON CONFLICT and generated columns.
\set VERBOSITY terse
SELECT 'init' FROM pg_create_logical_replication_slot('rels', 'pg_kappa');

-- upserts: an insert, an update, nothing; generated columns are written
CREATE TABLE up (id int PRIMARY KEY, v text, g int GENERATED ALWAYS AS (id * 2) STORED);
INSERT INTO up VALUES (1, 'a');
INSERT INTO up VALUES (1, 'b') ON CONFLICT (id) DO UPDATE SET v = excluded.v;
INSERT INTO up VALUES (1, 'c') ON CONFLICT DO NOTHING;
INSERT INTO up VALUES (1, 'c'), (2, 'd') ON CONFLICT DO NOTHING;
SELECT * FROM decode('rels');

-- materialized views are not reported (a plain REFRESH is not decoded, so
-- their changes could never be followed); CREATE TABLE AS is
CREATE MATERIALIZED VIEW up_mv AS SELECT * FROM up;
CREATE UNIQUE INDEX ON up_mv (id);
REFRESH MATERIALIZED VIEW up_mv;
INSERT INTO up VALUES (3, 'e');
REFRESH MATERIALIZED VIEW CONCURRENTLY up_mv;
CREATE TABLE up_copy AS SELECT id, v FROM up WHERE id < 3;
SELECT * FROM decode('rels');

-- temporary and unlogged tables are not in the WAL; inheritance children
-- are reported under their own names
CREATE TEMP TABLE up_temp (id int);
CREATE UNLOGGED TABLE up_unlogged (id int);
CREATE TABLE up_parent (id int, v text);
CREATE TABLE up_child (extra int) INHERITS (up_parent);
BEGIN;
INSERT INTO up_temp VALUES (1);
INSERT INTO up_unlogged VALUES (1);
INSERT INTO up_parent VALUES (1, 'parent');
INSERT INTO up_child VALUES (2, 'child', 20);
UPDATE up_parent SET v = v || '!';
COMMIT;
SELECT * FROM decode('rels');

-- names that need escaping, in schema, table and columns
CREATE SCHEMA U&"s\0022\005C\000A\00E9";
CREATE TABLE U&"s\0022\005C\000A\00E9".U&"t\0009\0001" (U&"c\0022\005C\000D" int PRIMARY KEY, "Mixed Case" text, "é✓" int);
INSERT INTO U&"s\0022\005C\000A\00E9".U&"t\0009\0001" VALUES (1, 'x', 2);
DELETE FROM U&"s\0022\005C\000A\00E9".U&"t\0009\0001";
SELECT * FROM decode('rels', 'include-types', 'on');
-- the names parse back to what they are
INSERT INTO U&"s\0022\005C\000A\00E9".U&"t\0009\0001" VALUES (2, 'y', 3);
SELECT decode::jsonb->>'schema' = U&'s\0022\005C\000A\00E9' AS schema_ok,
       decode::jsonb->>'table' = U&'t\0009\0001' AS table_ok,
       (decode::jsonb->'new') ? U&'c\0022\005C\000D' AS column_ok
FROM decode('rels') WHERE decode LIKE '{"kind":"insert"%';

SELECT pg_drop_replication_slot('rels');
DROP MATERIALIZED VIEW up_mv;
DROP TABLE up, up_copy, up_unlogged, up_child, up_parent;
DROP TABLE U&"s\0022\005C\000A\00E9".U&"t\0009\0001";
DROP SCHEMA U&"s\0022\005C\000A\00E9";
