-- Partitioned tables as sources (engine 2): changes of the partitions are
-- the partitioned table's, whatever their column layout; TRUNCATE of a
-- partition, ATTACH, DETACH and DROP of one make the views recompute; new
-- partitions get REPLICA IDENTITY FULL.  Each step is checked against the
-- view's query.
\set VERBOSITY default
CREATE FUNCTION pt_check(v regclass, q text) RETURNS TABLE (missing bigint, extra bigint, verify_rows bigint)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM kappa.wait(v);
  RETURN QUERY EXECUTE format(
    'SELECT (SELECT count(*) FROM ((%s) EXCEPT ALL SELECT * FROM %s) a),
            (SELECT count(*) FROM (SELECT * FROM %s EXCEPT ALL (%s)) b),
            (SELECT count(*) FROM kappa.verify(%L))', q, v, v, q, v);
END $$;

CREATE TABLE pt_region (code text PRIMARY KEY, name text);
INSERT INTO pt_region VALUES ('r0', 'north'), ('r1', 'south'), ('r2', 'east');
CREATE TABLE pt (id int, region text, amount numeric, at date,
                 PRIMARY KEY (id, at, region)) PARTITION BY RANGE (at);
CREATE TABLE pt_2024 PARTITION OF pt FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
-- a partition with its columns in another order, and a dropped one
CREATE TABLE pt_2025 (amount numeric, id int NOT NULL, gone int, region text NOT NULL, at date NOT NULL);
ALTER TABLE pt_2025 DROP COLUMN gone;
ALTER TABLE pt ATTACH PARTITION pt_2025 FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
-- and one partitioned again
CREATE TABLE pt_2026 PARTITION OF pt FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
  PARTITION BY LIST (region);
CREATE TABLE pt_2026_a PARTITION OF pt_2026 FOR VALUES IN ('r0', 'r1');
CREATE TABLE pt_2026_b PARTITION OF pt_2026 DEFAULT;
INSERT INTO pt SELECT i, 'r' || (i % 3), i, date '2024-06-01' + (i % 700)
  FROM generate_series(1, 1000) i;

-- engine 1 copies sources, and a partitioned table has no rows of its own
SET pg_kappa.engine = 1;
SELECT kappa.create_view('pt_e1', 'SELECT region, count(*) AS n FROM pt GROUP BY region');
RESET pg_kappa.engine;

CREATE TABLE pt_queries (v text PRIMARY KEY, q text);
INSERT INTO pt_queries VALUES
 ('pt_by_region', 'SELECT region, count(*) AS n, sum(amount) AS total, max(amount) AS top FROM pt GROUP BY region'),
 ('pt_rows', 'SELECT id, region, amount, at FROM pt WHERE amount > 500'),
 ('pt_named', 'SELECT p.id, p.at, r.name, p.amount FROM pt p JOIN pt_region r ON r.code = p.region'),
 ('pt_leaf', 'SELECT region, count(*) AS n FROM pt_2026 GROUP BY region');
-- REPLICA IDENTITY FULL on the partitioned tables and every partition
SELECT v, kappa.create_view(v, q) IS NOT NULL AS created FROM pt_queries ORDER BY v;
SELECT relname, relreplident FROM pg_class
 WHERE relname ~ '^pt(_20[0-9_ab]*)?$' ORDER BY relname;

-- changes in every partition, rows moved between partitions and levels
UPDATE pt SET amount = amount + 1 WHERE id % 7 = 0;
UPDATE pt SET at = date '2026-02-01' WHERE id IN (10, 11, 12);
UPDATE pt SET region = 'r2' WHERE id IN (600, 601) AND at >= '2026-01-01';
DELETE FROM pt WHERE id % 11 = 0;
UPDATE pt_2025 SET amount = amount * 2 WHERE id % 5 = 0;
SELECT v, (pt_check(v::regclass, q)).* FROM pt_queries ORDER BY v;

-- a TRUNCATE of one partition: the rows go without changes of theirs
TRUNCATE pt_2024;
SELECT v, (pt_check(v::regclass, q)).* FROM pt_queries ORDER BY v;

-- a new partition is given REPLICA IDENTITY FULL (its creator owns it)
CREATE TABLE pt_2027 PARTITION OF pt FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
SELECT relreplident FROM pg_class WHERE relname = 'pt_2027';
INSERT INTO pt VALUES (5000, 'r1', 700, '2027-03-03');
UPDATE pt SET amount = 701 WHERE id = 5000;
SELECT v, (pt_check(v::regclass, q)).* FROM pt_queries ORDER BY v;

-- partitions whose changes are not in the WAL are refused under it
CREATE UNLOGGED TABLE pt_unlogged PARTITION OF pt FOR VALUES FROM ('2030-01-01') TO ('2031-01-01');
CREATE FOREIGN DATA WRAPPER pt_fdw;
CREATE SERVER pt_server FOREIGN DATA WRAPPER pt_fdw;
CREATE FOREIGN TABLE pt_foreign PARTITION OF pt FOR VALUES FROM ('2031-01-01') TO ('2032-01-01') SERVER pt_server;
-- (pt's key refuses it already; a table without one)
CREATE TABLE pt_nokey (k int, v int) PARTITION BY LIST (k);
CREATE TABLE pt_nokey_1 PARTITION OF pt_nokey FOR VALUES IN (1);
SET client_min_messages = warning;
SELECT kappa.create_view('pt_nokey_v', 'SELECT k, count(*) AS n FROM pt_nokey GROUP BY k') IS NOT NULL AS created;
RESET client_min_messages;
CREATE FOREIGN TABLE pt_nokey_2 PARTITION OF pt_nokey FOR VALUES IN (2) SERVER pt_server;
SELECT kappa.drop_view('pt_nokey_v');
CREATE FOREIGN TABLE pt_nokey_2 PARTITION OF pt_nokey FOR VALUES IN (2) SERVER pt_server;
SELECT kappa.create_view('pt_nokey_v', 'SELECT k, count(*) AS n FROM pt_nokey GROUP BY k');
DROP TABLE pt_nokey;
CREATE UNLOGGED TABLE pt_u (id int NOT NULL, region text NOT NULL, amount numeric, at date NOT NULL);
ALTER TABLE pt ATTACH PARTITION pt_u FOR VALUES FROM ('2030-01-01') TO ('2031-01-01');
ALTER TABLE pt_2027 SET UNLOGGED;
DROP TABLE pt_u;
DROP SERVER pt_server;
DROP FOREIGN DATA WRAPPER pt_fdw;
SELECT count(*) AS partitions FROM pg_inherits WHERE inhparent = 'pt'::regclass;

-- a table attached with rows, then detached, then a partition dropped
CREATE TABLE pt_2023 (id int NOT NULL, region text NOT NULL, amount numeric, at date NOT NULL);
INSERT INTO pt_2023 SELECT i, 'r0', 900, date '2023-05-05' FROM generate_series(6000, 6009) i;
ALTER TABLE pt ATTACH PARTITION pt_2023 FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
SELECT relreplident FROM pg_class WHERE relname = 'pt_2023';
SELECT v, (pt_check(v::regclass, q)).* FROM pt_queries ORDER BY v;
ALTER TABLE pt DETACH PARTITION pt_2023;
SELECT v, (pt_check(v::regclass, q)).* FROM pt_queries ORDER BY v;
ALTER TABLE pt DETACH PARTITION pt_2025 CONCURRENTLY;
DROP TABLE pt_2025;
SELECT v, (pt_check(v::regclass, q)).* FROM pt_queries ORDER BY v;
-- dropped with its schema
CREATE SCHEMA pt_s;
CREATE TABLE pt_s.pt_2028 PARTITION OF pt FOR VALUES FROM ('2028-01-01') TO ('2029-01-01');
INSERT INTO pt VALUES (7000, 'r2', 800, '2028-08-08');
SELECT kappa.wait('pt_rows');
SELECT count(*) FROM pt_rows WHERE id = 7000;
DROP SCHEMA pt_s CASCADE;
SELECT v, (pt_check(v::regclass, q)).* FROM pt_queries ORDER BY v;
-- a rollback and a savepoint leave nothing behind
BEGIN;
INSERT INTO pt VALUES (8000, 'r1', 999, '2026-06-06');
UPDATE pt SET amount = 3 WHERE id = 1;
SAVEPOINT s;
UPDATE pt SET amount = 0 WHERE id = 8000;
ROLLBACK TO s;
DELETE FROM pt_2027;
ROLLBACK;
SELECT v, (pt_check(v::regclass, q)).* FROM pt_queries ORDER BY v;

-- a partition that loses REPLICA IDENTITY FULL breaks its views at its
-- next update, never makes them wrong
ALTER TABLE pt_2027 REPLICA IDENTITY DEFAULT;
UPDATE pt SET amount = 702 WHERE id = 5000;
SELECT kappa.wait('pt_rows', timeout => '5s');
SELECT v, state, regexp_replace(last_error, '[0-9A-F]+/[0-9A-F]+', 'LSN', 'g') AS last_error
  FROM pt_queries JOIN kappa.views ON name = 'public.' || v ORDER BY v;

-- only pg_kappa records which partitioned tables changed: no role can
-- make another's views recompute through it
CREATE ROLE regress_kappa_pt_mallory;
SET ROLE regress_kappa_pt_mallory;
INSERT INTO kappa.partition_changes VALUES ('pt'::regclass);
RESET ROLE;
DROP ROLE regress_kappa_pt_mallory;

SELECT kappa.drop_view(v::regclass) FROM pt_queries ORDER BY v;
DROP TABLE pt, pt_2023, pt_region, pt_queries;
DROP FUNCTION pt_check;
