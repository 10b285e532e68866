-- The event log: kappa.capture, kappa.uncapture, kappa.events, the guard.
\set VERBOSITY terse
CREATE TABLE ev (id int PRIMARY KEY, v int, note text);
CREATE TABLE ev2 (k text PRIMARY KEY, n numeric);
INSERT INTO ev VALUES (1, 10, 'one'), (2, 20, 'two');
-- what cannot be captured
CREATE TEMP TABLE ev_temp (id int PRIMARY KEY);
CREATE UNLOGGED TABLE ev_unlogged (id int PRIMARY KEY);
CREATE TABLE ev_nokey (id int);
CREATE TABLE ev_parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE VIEW ev_view AS SELECT * FROM ev;
SELECT kappa.capture(NULL);
SELECT kappa.capture('ev_temp');
SELECT kappa.capture('ev_unlogged');
SELECT kappa.capture('ev_nokey');
SELECT kappa.capture('ev_parted');
SELECT kappa.capture('ev_view');
SELECT kappa.capture('kappa.views');
SELECT kappa.capture('ev', retain => '-1 day');
SELECT kappa.capture('ev', retain => '0');
SELECT kappa.capture('ev', retain => '178000000 years');
SELECT kappa.capture('ev', retain => '12000 months');
SELECT kappa.uncapture('ev');
-- capture: a snapshot of the rows there now, then every change
SELECT kappa.capture('ev') IS NOT NULL AS captured;
SELECT kappa.capture('ev', retain => '7 days') IS NOT NULL AS captured_again;
SELECT name, retain FROM kappa.captures;
SELECT kappa.capture('ev2') IS NOT NULL AS captured;
SELECT kind, txn_count, change_count, tables = ARRAY['ev'::regclass::oid] AS ev_only
  FROM kappa.event_log ORDER BY batch_id;
-- a view to wait for (over a table of its own: a view sets REPLICA IDENTITY
-- FULL on its sources, and ev's old images are to hold only the key)
CREATE TABLE ev_tick (id int PRIMARY KEY);
SELECT kappa.create_view('ev_ids', 'SELECT id FROM ev_tick');
-- a derived table: the worker writes it, and its changes are not decoded
ALTER TABLE ev_ids REPLICA IDENTITY FULL;
SELECT kappa.capture('ev_ids');
INSERT INTO ev VALUES (3, 30, 'three');
BEGIN;
UPDATE ev SET v = 21 WHERE id = 2;
INSERT INTO ev2 VALUES ('a', 1.50);
DELETE FROM ev WHERE id = 1;
COMMIT;
UPDATE ev SET id = 4 WHERE id = 3;
INSERT INTO ev_nokey VALUES (1);             -- not captured: not logged
SELECT kappa.wait('ev_ids');
-- every record, in commit order, in the output plugin's shape
SELECT e->>'kind' AS kind, e->>'table' AS tab, e->'old' AS old, e->'new' AS new,
       e->'snapshot' AS snap, e->'changes' AS changes, e ? 'lsn' AS lsn, e ? 'checksum' AS checksum
  FROM kappa.events() WITH ORDINALITY AS x(e, n) ORDER BY n;
-- one table: begin and commit only around its changes, counts recomputed
SELECT e->>'kind' AS kind, e->>'table' AS tab, e->'changes' AS changes
  FROM kappa.events(tables => '{ev2}') WITH ORDINALITY AS x(e, n) ORDER BY n;
-- a range of commit LSNs
SELECT count(*) AS all_records FROM kappa.events();
SELECT count(*) AS none_after FROM kappa.events(from_lsn => pg_current_wal_insert_lsn());
-- an upper bound of 0/0 is before everything (NULL, the default, is none)
SELECT count(*) AS none_before FROM kappa.events(to_lsn => '0/0');
-- a range that ends before it starts is a mistake, not an empty range
SELECT count(*) FROM kappa.events(from_lsn => '1/0', to_lsn => '0/1');
SELECT count(*) = (SELECT count(*) FROM kappa.events()) AS all_without_bound FROM kappa.events(to_lsn => NULL);
SELECT count(*) = (SELECT count(*) FROM kappa.events() e WHERE e ? 'snapshot') AS snapshot_only
  FROM kappa.events(to_lsn => (SELECT max(first_lsn) FROM kappa.event_log WHERE kind = 'snapshot'));
-- commit records count the changes returned with them
SELECT n, e->>'changes' AS changes
  FROM kappa.events(tables => '{ev}') WITH ORDINALITY AS x(e, n) WHERE e->>'kind' = 'commit' ORDER BY n;
-- TRUNCATE is logged too
TRUNCATE ev2;
SELECT kappa.wait('ev_ids');
SELECT e->>'kind' AS kind, e->'relations' AS relations, e->'cascade' AS cascade
  FROM kappa.events(tables => '{ev2}') e WHERE e->>'kind' = 'truncate';
-- unchanged TOASTed values are named, never faked
ALTER TABLE ev ALTER COLUMN note SET STORAGE EXTERNAL;
INSERT INTO ev VALUES (5, 50, repeat('x', 5000));
UPDATE ev SET v = 51 WHERE id = 5;
SELECT kappa.wait('ev_ids');
SELECT e->>'kind' AS kind, e->'new'->'v' AS v, length(e->'new'->>'note') AS note_length,
       e->'unchanged_toast' AS unchanged
  FROM kappa.events(tables => '{ev}') e WHERE e->'new'->>'id' = '5';
-- the log is append-only
INSERT INTO kappa.event_log SELECT * FROM kappa.event_log LIMIT 1;
UPDATE kappa.event_log SET events = '' WHERE batch_id = 1;
DELETE FROM kappa.event_log;
TRUNCATE kappa.event_log;
DELETE FROM kappa.event_log_pruned;
-- and only readable through kappa.events by who may read the tables
CREATE ROLE ev_reader;
SET ROLE ev_reader;
SELECT count(*) FROM kappa.event_log;
SELECT count(*) FROM kappa.events();
SELECT count(*) FROM kappa.events(tables => '{ev}');
RESET ROLE;
GRANT SELECT ON ev2 TO ev_reader;
SET ROLE ev_reader;
SELECT DISTINCT e->>'table' AS tab FROM kappa.events() e WHERE e ? 'table';
SELECT kappa.capture('ev2');
SELECT kappa.uncapture('ev2');
RESET ROLE;
-- uncapture: the log stays, new changes are not logged
SELECT kappa.uncapture('ev2');
SELECT kappa.uncapture('ev2');
INSERT INTO ev2 VALUES ('b', 2);
INSERT INTO ev VALUES (6, 60, 'six');
SELECT kappa.wait('ev_ids');
SELECT count(*) AS ev2_records FROM kappa.events(tables => '{ev2}') e WHERE e->'new'->>'k' = 'b';
SELECT count(*) AS ev_records FROM kappa.events(tables => '{ev}') e WHERE e->'new'->>'id' = '6';
SELECT name FROM kappa.captures;
-- a dropped table is no longer captured
SELECT kappa.capture('ev2') IS NOT NULL AS captured;
DROP TABLE ev2;
SELECT name FROM kappa.captures;
SELECT kappa.uncapture('ev');
SELECT count(*) FROM kappa.captures;
SELECT kappa.drop_view('ev_ids');
DROP TABLE ev, ev_nokey, ev_parted, ev_unlogged CASCADE;
DROP ROLE ev_reader;
