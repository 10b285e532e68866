-- Transactions larger than logical_decoding_work_mem (64kB in the test
-- configuration) are spilled to disk and decoded in full, in order, with
-- the right change count, also with subtransactions and TOASTed values.
\set VERBOSITY terse
SHOW logical_decoding_work_mem;
SELECT 'init' FROM pg_create_logical_replication_slot('spill', 'pg_kappa');
CREATE TABLE sp (id int PRIMARY KEY, v text);

-- one large transaction: 5000 inserts, 1000 updates, 500 deletes
BEGIN;
INSERT INTO sp SELECT g, repeat('x', 50) || g FROM generate_series(1, 5000) g;
UPDATE sp SET v = 'u' || id WHERE id % 5 = 0;
DELETE FROM sp WHERE id % 10 = 1;
COMMIT;
-- a large one with savepoints, one of them rolled back, and a spilled
-- subtransaction
BEGIN;
INSERT INTO sp SELECT g, 'top' FROM generate_series(10001, 12000) g;
SAVEPOINT a;
INSERT INTO sp SELECT g, 'a' FROM generate_series(12001, 14000) g;
SAVEPOINT b;
INSERT INTO sp SELECT g, 'b rolled back' FROM generate_series(14001, 16000) g;
ROLLBACK TO SAVEPOINT b;
INSERT INTO sp SELECT g, 'after b' FROM generate_series(16001, 16010) g;
RELEASE SAVEPOINT a;
COMMIT;
-- a large aborted one
BEGIN;
INSERT INTO sp SELECT g, 'aborted' FROM generate_series(20001, 25000) g;
ROLLBACK;
-- large values that are TOASTed (out of line, uncompressed), in a spilled
-- transaction
ALTER TABLE sp ALTER COLUMN v SET STORAGE EXTERNAL;
BEGIN;
INSERT INTO sp SELECT g, repeat(md5(g::text), 200) FROM generate_series(30001, 30040) g;
COMMIT;

CREATE TEMP TABLE out AS
  SELECT row_number() OVER () AS n, decode::jsonb AS d FROM decode('spill');
-- one begin and commit per committed transaction; change counts
SELECT n, d->>'kind' AS kind, d->'changes' AS changes
FROM out WHERE d->>'kind' IN ('begin', 'commit') ORDER BY n;
-- every change of the first transaction, in the order it was made
SELECT d->>'kind' AS kind, count(*),
       bool_and(CASE d->>'kind'
                WHEN 'insert' THEN d->'new'->>'v' = repeat('x', 50) || (d->'new'->>'id')
                WHEN 'update' THEN d->'new'->>'v' = 'u' || (d->'new'->>'id')
                WHEN 'delete' THEN (d->'old'->>'id')::int % 10 = 1 END) AS values_ok
FROM out WHERE n BETWEEN 2 AND 6501 GROUP BY 1 ORDER BY 1;
SELECT bool_and(d->'new'->'id' = to_jsonb(n - 1)) AS inserts_in_order
FROM out WHERE n BETWEEN 2 AND 5001;
-- the second: what was not rolled back, in order
SELECT d->'new'->>'v' AS v, count(*), min((d->'new'->>'id')::int), max((d->'new'->>'id')::int)
FROM out WHERE n BETWEEN 6504 AND 10513 GROUP BY 1 ORDER BY 3;
SELECT bool_and(d->'new'->'id' = to_jsonb(CASE WHEN n < 10504 THEN n + 3497 ELSE n + 5497 END))
  AS inserts_in_order
FROM out WHERE n BETWEEN 6504 AND 10513;
-- TOASTed values are written in full
SELECT count(*), bool_and(d->'new'->>'v' = repeat(md5(d->'new'->>'id'), 200)) AS full_values
FROM out WHERE d->>'kind' = 'insert' AND (d->'new'->>'id')::int > 30000;
-- the transactions were indeed spilled
SELECT pg_relation_size(reltoastrelid) > 40 * 6400 AS toasted FROM pg_class WHERE relname = 'sp';
SELECT spill_txns > 0 AS spilled, spill_bytes > 65536 AS spilled_bytes
FROM pg_stat_replication_slots WHERE slot_name = 'spill';

SELECT pg_drop_replication_slot('spill');
DROP TABLE sp;
