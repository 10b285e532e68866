-- A captured table whose columns a command renames, drops or computes
-- again starts its log again with a snapshot (src/log/capture_ddl.c):
-- logged changes name their columns as they were, and a replay across such
-- a change would map them wrongly.
\set VERBOSITY terse
CREATE TABLE cd (id int PRIMARY KEY, grp text, qty int);
ALTER TABLE cd REPLICA IDENTITY FULL;
CREATE TABLE cd_plain (id int PRIMARY KEY, qty int);
SELECT kappa.capture(source => 'cd', retain => '7 days') AS first_lsn \gset
INSERT INTO cd SELECT g, 'g' || (g % 3), g FROM generate_series(1, 30) g;
-- a view that does not read qty goes on through all of this
SELECT kappa.create_view(name => 'cd_ids', query => 'SELECT id, grp FROM cd');
SELECT kappa.wait('cd_ids');
-- a column renamed: the log starts again, with the retention it had
ALTER TABLE cd RENAME COLUMN qty TO quantity;
SELECT start_lsn > :'first_lsn' AS started_again, retain, state FROM kappa.captures WHERE relid = 'cd'::regclass;
SELECT start_lsn AS renamed_lsn FROM kappa.captures WHERE relid = 'cd'::regclass \gset
INSERT INTO cd VALUES (100, 'g1', 1000);
UPDATE cd SET quantity = quantity + 1 WHERE id <= 5;
DELETE FROM cd WHERE id = 7;
SELECT kappa.wait('cd_ids');
-- a view replayed from the log gets the values of the renamed column
SELECT kappa.create_view(name => 'cd_sum', query => 'SELECT grp, sum(quantity) AS total, count(*) AS n FROM cd GROUP BY grp', replay_from => '0/0');
SELECT * FROM cd_sum ORDER BY grp;
SELECT count(*) AS differences FROM kappa.verify('cd_sum');
-- the log from before the rename is not used
DO $$
BEGIN
    PERFORM kappa.replay(view => 'cd_sum', new_name => 'cd_sum_then', until_lsn => '0/1');
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    RAISE NOTICE '%', regexp_replace(SQLERRM, '[0-9A-F]+/[0-9A-F]+', 'X/X');
END
$$;
-- a column added with a constant default: the log follows (no snapshot)
ALTER TABLE cd ADD COLUMN x int DEFAULT 7;
SELECT start_lsn = :'renamed_lsn' AS same_log FROM kappa.captures WHERE relid = 'cd'::regclass;
-- a type whose values stay as they are (no rewrite): likewise
ALTER TABLE cd ADD COLUMN note varchar(10);
ALTER TABLE cd ALTER COLUMN note TYPE varchar(20);
ALTER TABLE cd ALTER COLUMN note TYPE text;
SELECT start_lsn = :'renamed_lsn' AS same_log FROM kappa.captures WHERE relid = 'cd'::regclass;
-- a type that computes the values again: the log starts again
ALTER TABLE cd ALTER COLUMN note TYPE varchar(5);
-- a column added with a volatile default computes every row again
ALTER TABLE cd ADD COLUMN y float8 DEFAULT random();
SELECT start_lsn > :'renamed_lsn' AS started_again FROM kappa.captures WHERE relid = 'cd'::regclass;
SELECT kappa.create_view(name => 'cd_xy', query => 'SELECT grp, sum(x) AS sx, count(y) AS cy, sum(y) AS sy FROM cd GROUP BY grp', replay_from => '0/0');
SELECT count(*) AS differences FROM kappa.verify('cd_xy');
SELECT start_lsn AS rewritten_lsn FROM kappa.captures WHERE relid = 'cd'::regclass \gset
-- a column dropped in a transaction rolled back: nothing changes
BEGIN;
ALTER TABLE cd DROP COLUMN y;
ROLLBACK;
SELECT start_lsn = :'rewritten_lsn' AS same_log FROM kappa.captures WHERE relid = 'cd'::regclass;
-- a column dropped: the log starts again (a column added later under its
-- name must not take its logged values)
SELECT kappa.drop_view('cd_xy');
ALTER TABLE cd DROP COLUMN y;
ALTER TABLE cd ADD COLUMN y int;
UPDATE cd SET y = id WHERE id <= 3;
SELECT kappa.create_view(name => 'cd_y', query => 'SELECT grp, count(y) AS cy, sum(y) AS sy FROM cd GROUP BY grp', replay_from => '0/0');
SELECT count(*) AS differences FROM kappa.verify('cd_y');
-- a table that is not captured: nothing to do
ALTER TABLE cd_plain RENAME COLUMN qty TO quantity;
-- a partition captured, its column renamed through the partitioned table
CREATE TABLE cdp (id int PRIMARY KEY, v int) PARTITION BY RANGE (id);
CREATE TABLE cdp1 PARTITION OF cdp FOR VALUES FROM (0) TO (100);
INSERT INTO cdp VALUES (1, 10), (2, 20);
SELECT kappa.capture(source => 'cdp1') IS NOT NULL AS captured;
ALTER TABLE cdp RENAME COLUMN v TO w;
-- a change committed just before is logged before the log starts again
CREATE TABLE cd2 (id int PRIMARY KEY, a int, b text);
INSERT INTO cd2 VALUES (1, 1, 'x'), (2, 2, 'y');
SELECT kappa.capture(source => 'cd2') IS NOT NULL AS captured;
UPDATE cd2 SET a = 10 WHERE id = 1;
ALTER TABLE cd2 RENAME COLUMN b TO bb;
UPDATE cd2 SET a = 20 WHERE id = 2;
SELECT kappa.wait('cd_ids');
SELECT e->>'kind' AS kind, e->'new' AS new, e ? 'snapshot' AS snapshot
  FROM kappa.events(tables => '{cd2}') e WHERE e->>'kind' IN ('insert', 'update');
-- two such commands in one transaction: the second needs no wait (the
-- table's writers are held off since the first), nor says changes may be
-- missing
BEGIN;
ALTER TABLE cd2 RENAME COLUMN a TO aa;
ALTER TABLE cd2 ALTER COLUMN aa TYPE bigint;
COMMIT;
-- a command after which the table can no longer be captured (its key
-- dropped): the capture fails, not the command
CREATE TABLE cd5 (id int PRIMARY KEY, v int);
INSERT INTO cd5 VALUES (1, 1);
SELECT kappa.capture(source => 'cd5') IS NOT NULL AS captured;
ALTER TABLE cd5 DROP COLUMN id;
SELECT state, last_error FROM kappa.captures WHERE relid = 'cd5'::regclass;
SELECT kind, name, state FROM kappa.status WHERE name = 'public.cd5';
SELECT kappa.uncapture('cd5');
DROP TABLE cd5;
-- columns dropped or changed through a type, by its owner: the same
CREATE TYPE cd_level AS ENUM ('low', 'high');
CREATE TYPE cd_row AS (id int, w int);
CREATE TABLE cd3 (id int PRIMARY KEY, lvl cd_level);
CREATE TABLE cd4 OF cd_row (PRIMARY KEY (id));
CREATE DOMAIN cd_level_d AS cd_level[];
CREATE TABLE cd6 (id int PRIMARY KEY, v int, lvls cd_level_d);
INSERT INTO cd3 VALUES (1, 'high');
INSERT INTO cd4 VALUES (1, 5);
INSERT INTO cd6 VALUES (1, 1, '{low}');
SELECT kappa.capture(source => 'cd3') IS NOT NULL AS captured, kappa.capture(source => 'cd4') IS NOT NULL AS captured,
       kappa.capture(source => 'cd6') IS NOT NULL AS captured;
-- (updates just before DROP TYPE ... CASCADE are logged as changes, also
-- of a table whose column is of a domain over the type's array)
UPDATE cd3 SET id = 2;
UPDATE cd6 SET v = 2;
DROP TYPE cd_level CASCADE;
SELECT kappa.wait('cd_ids');
SELECT e->>'table' AS tab, e->>'kind' AS kind, e->'new' AS new FROM kappa.events(tables => '{cd3,cd6}') e
 WHERE e->>'kind' IN ('insert', 'update');
UPDATE cd4 SET w = 6 WHERE id = 1;
ALTER TYPE cd_row RENAME ATTRIBUTE w TO ww CASCADE;
ALTER TYPE cd_row ALTER ATTRIBUTE ww TYPE bigint CASCADE;
ALTER TYPE cd_row ADD ATTRIBUTE z int CASCADE;
-- (the update just before ALTER TYPE is logged as a change too)
SELECT kappa.wait('cd_ids');
SELECT e->>'kind' AS kind, e->'new' AS new FROM kappa.events(tables => '{cd4}') e
 WHERE e->>'kind' IN ('insert', 'update');
-- the tables are taken by OID, whatever the command's code does to the
-- search_path meanwhile
CREATE FUNCTION cd_switch(int) RETURNS int LANGUAGE plpgsql
    AS $$BEGIN PERFORM set_config('search_path', 'pg_catalog', false); RETURN $1; END$$;
ALTER TABLE cd2 DROP COLUMN bb, ADD CONSTRAINT cd2_ck CHECK (cd_switch(id) IS NOT NULL);
RESET search_path;
DROP FUNCTION cd_switch(int) CASCADE;
-- the log spells a table's name alike whatever a session's
-- quote_all_identifiers says: a capture's snapshot, and its readers
CREATE TABLE cd_q (id int PRIMARY KEY, v text);
INSERT INTO cd_q VALUES (1, 'a'), (2, 'b');
SET quote_all_identifiers = on;
SELECT kappa.capture(source => 'cd_q') IS NOT NULL AS captured;
RESET quote_all_identifiers;
INSERT INTO cd_q VALUES (3, 'c');
SELECT kappa.wait('cd_ids');
SELECT DISTINCT unnest(table_names) AS logged_as FROM kappa.event_log
 WHERE 'cd_q'::regclass = ANY (tables);
SET quote_all_identifiers = on;
SELECT count(*) AS inserts FROM kappa.events(tables => '{cd_q}') e WHERE e->>'kind' = 'insert';
RESET quote_all_identifiers;
SELECT kappa.create_view(name => 'cd_qv', query => 'SELECT id, v FROM cd_q', replay_from => '0/0');
SELECT count(*) AS differences FROM kappa.verify('cd_qv');
SELECT kappa.drop_view('cd_qv');
SELECT kappa.uncapture('cd_q');
DROP TABLE cd_q;
-- not from maintenance code (a derived view's, or a materialized view's)
CREATE FUNCTION cd_rename() RETURNS int LANGUAGE plpgsql
    AS $$BEGIN ALTER TABLE cd RENAME COLUMN grp TO grp2; RETURN 1; END$$;
CREATE MATERIALIZED VIEW cd_mv AS SELECT cd_rename() AS x WITH NO DATA;
REFRESH MATERIALIZED VIEW cd_mv;
DROP MATERIALIZED VIEW cd_mv;
DROP FUNCTION cd_rename();
SELECT name, state FROM kappa.status WHERE name LIKE 'public.cd%' ORDER BY name;
SELECT count(*) AS failures FROM kappa.audit();
SELECT kappa.drop_view('cd_ids');
SELECT kappa.drop_view('cd_sum');
SELECT kappa.drop_view('cd_y');
SELECT kappa.uncapture('cd');
SELECT kappa.uncapture('cdp1');
SELECT kappa.uncapture('cd2'), kappa.uncapture('cd3'), kappa.uncapture('cd4');
DROP TABLE cd, cd_plain, cdp, cd2, cd3, cd4;
DROP TYPE cd_row;
