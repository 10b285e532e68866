-- Engine 2's deltas carry only the columns a view reads: an update that
-- changes only other columns cancels out with its old image, and the view
-- does no work for it.  Every place a column can be read (output, WHERE,
-- JOIN ... ON and USING, GROUP BY, HAVING, an aggregate's argument and
-- FILTER) keeps that column.
\set VERBOSITY terse
SET pg_kappa.engine = 2;
CREATE TABLE dc_t (id int PRIMARY KEY, g int, v int, note text, big text, spare int);
CREATE TABLE dc_dim (id int PRIMARY KEY, name text, extra int, spare int);
INSERT INTO dc_t SELECT i, i % 3, i, 'n' || i, repeat('b', i % 7), 0 FROM generate_series(1, 30) i;
INSERT INTO dc_dim SELECT i, 'd' || i, i % 4, 0 FROM generate_series(1, 30) i;

CREATE TABLE dc_queries (v text, q text);
INSERT INTO dc_queries VALUES
 ('dc_groups', $$SELECT g, bool_and(note > 'n2') AS past, count(*) AS n FROM dc_t GROUP BY g$$),
 ('dc_having', $$SELECT g, sum(v) AS s FROM dc_t GROUP BY g HAVING max(big) > 'bbb'$$),
 ('dc_filter', $$SELECT g, count(*) FILTER (WHERE big = 'bb') AS n FROM dc_t GROUP BY g$$),
 ('dc_minf', $$SELECT g, min(v) FILTER (WHERE note > 'n2') AS lo FROM dc_t GROUP BY g$$),
 ('dc_using', $$SELECT id, name, v FROM dc_t JOIN dc_dim USING (id)$$),
 ('dc_on', $$SELECT t.id, d.name FROM dc_t t JOIN dc_dim d ON d.id = t.v AND d.extra < 3$$),
 ('dc_where', $$SELECT id, g FROM dc_t WHERE big <> 'bbbb'$$);
SELECT v, kappa.create_view(v, q) IS NOT NULL AS created FROM dc_queries ORDER BY v;
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM dc_queries;
SELECT v.name, v.rows_applied FROM kappa.views v WHERE v.name LIKE 'public.dc_%' ORDER BY 1;

-- only columns no view reads: every image cancels out, no view changes a row
UPDATE dc_t SET spare = spare + 1;
UPDATE dc_dim SET spare = spare + 1;
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM dc_queries;
SELECT v.name, v.rows_applied FROM kappa.views v WHERE v.name LIKE 'public.dc_%' ORDER BY 1;

-- columns some views read, each alone and in one transaction with the rest
UPDATE dc_t SET big = 'bb' WHERE id IN (1, 2, 3);
UPDATE dc_t SET note = 'z' || id WHERE id % 5 = 0;
BEGIN;
UPDATE dc_t SET spare = 7, big = repeat('b', 4) WHERE id BETWEEN 10 AND 14;
UPDATE dc_dim SET extra = 0, spare = 9 WHERE id % 2 = 0;
UPDATE dc_t SET v = v + 1, spare = 8 WHERE id > 25;
UPDATE dc_dim SET name = 'renamed' WHERE id = 4;
COMMIT;
-- back and forth in one transaction: the images cancel out
BEGIN;
UPDATE dc_t SET note = 'tmp' WHERE id = 7;
UPDATE dc_t SET note = 'n7' WHERE id = 7;
COMMIT;
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM dc_queries;
SELECT q.v, (SELECT count(*) FROM kappa.verify(q.v::regclass)) AS differences FROM dc_queries q ORDER BY 1;

-- TOASTed values the view reads, unchanged by updates of other columns:
-- the new images take them from the old ones, in a batch larger than
-- work_mem, whose buffer spills to disk and reuses its memory
CREATE TABLE dc_toast (id int PRIMARY KEY, big text, k int);
INSERT INTO dc_toast SELECT g, (SELECT string_agg(md5((g * 100000 + i)::text), '') FROM generate_series(1, 100) i), 0
  FROM generate_series(1, 2000) g;
SELECT kappa.create_view('dc_toast_v', 'SELECT id, length(big) AS lb, md5(big) AS h, k FROM dc_toast');
UPDATE dc_toast SET k = 1;
SELECT kappa.wait('dc_toast_v');
SELECT count(*) AS differences FROM kappa.verify('dc_toast_v');
SELECT count(*) AS rows, min(lb) AS lb, bool_and(k = 1) AS updated FROM dc_toast_v;
SELECT kappa.drop_view('dc_toast_v') IS NOT NULL AS dropped;
DROP TABLE dc_toast;

-- a source with a dropped column of a type other than integer
CREATE TABLE dc_dropped (id int PRIMARY KEY, a int, dropme text, b int);
ALTER TABLE dc_dropped DROP COLUMN dropme;
INSERT INTO dc_dropped VALUES (1, 1, 1), (2, 2, 2);
SELECT kappa.create_view('dc_dropped_v', 'SELECT id, a FROM dc_dropped');
UPDATE dc_dropped SET a = a + 10;
SELECT kappa.wait('dc_dropped_v');
SELECT state, (SELECT count(*) FROM kappa.verify('dc_dropped_v')) AS differences
  FROM kappa.views WHERE name = 'public.dc_dropped_v';
SELECT kappa.drop_view('dc_dropped_v') IS NOT NULL AS dropped;
DROP TABLE dc_dropped;

-- a nondeterministic collation: 'a' and 'A' are equal but not the same
-- row, and an update from one to the other must reach the view
CREATE COLLATION dc_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE dc_ci_t (id int PRIMARY KEY, x text COLLATE dc_ci);
CREATE TABLE dc_ci_bag (x text COLLATE dc_ci, n int);
INSERT INTO dc_ci_t VALUES (1, 'a'), (2, 'b');
INSERT INTO dc_ci_bag VALUES ('A', 1), ('a', 1);
SELECT kappa.create_view('dc_ci_keyed', 'SELECT id, x FROM dc_ci_t');
SELECT kappa.create_view('dc_ci_rows', 'SELECT x FROM dc_ci_t');
SELECT kappa.create_view('dc_ci_bagv', 'SELECT x, n FROM dc_ci_bag');
UPDATE dc_ci_t SET x = 'A' WHERE id = 1;
DELETE FROM dc_ci_bag WHERE x = 'a' COLLATE "C";
SELECT kappa.wait('dc_ci_keyed') AND kappa.wait('dc_ci_rows') AND kappa.wait('dc_ci_bagv') AS waited;
SELECT string_agg(x COLLATE "C", ',' ORDER BY x COLLATE "C") AS keyed FROM dc_ci_keyed;
SELECT string_agg(x COLLATE "C", ',' ORDER BY x COLLATE "C") AS rows FROM dc_ci_rows;
SELECT string_agg(x COLLATE "C", ',' ORDER BY x COLLATE "C") AS bag FROM dc_ci_bagv;
SELECT kappa.drop_view('dc_ci_keyed') IS NOT NULL, kappa.drop_view('dc_ci_rows') IS NOT NULL,
       kappa.drop_view('dc_ci_bagv') IS NOT NULL;
DROP TABLE dc_ci_t, dc_ci_bag;
DROP COLLATION dc_ci;

SELECT kappa.drop_view(v::regclass) IS NOT NULL AS dropped FROM dc_queries ORDER BY v;
DROP TABLE dc_t, dc_dim, dc_queries;
