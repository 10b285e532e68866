-- Floating-point aggregates: a maintained view adds values in another
-- order than a recomputation does, so a float sum can differ from the
-- query in its last digits.  kappa.verify reports rows exactly, except
-- that a float aggregate within 1e-9 (relative) of the query's is not a
-- difference (README, "kappa.verify").
\set VERBOSITY terse
-- (engine 1: engine 2 recomputes the groups of float aggregates)
SET pg_kappa.engine = 1;
CREATE TABLE fl (id int PRIMARY KEY, g int, x float8, r real, n int DEFAULT 0);
INSERT INTO fl VALUES (1, 1, 0.1, 0.1, 0), (2, 1, 0.2, 0.2, 0), (3, 1, 0.3, 0.3, 0),
                      (4, 2, 1.5, 1.5, 0), (5, 2, 2.25, 2.25, 0);
SELECT kappa.create_view('fl_sum', 'SELECT g, sum(x) AS s, avg(x) AS a, sum(r) AS sr, count(*) AS c, sum(x) * 2 AS s2 FROM fl GROUP BY g');
SELECT kappa.create_view('fl_rows', 'SELECT id, x * 3 AS x3 FROM fl');
-- rewrite the rows of group 1 in reverse order: the source now holds them
-- as 3, 2, 1, the worker adds them up as 1, 2, 3
BEGIN;
UPDATE fl SET n = n + 1 WHERE id = 3;
UPDATE fl SET n = n + 1 WHERE id = 2;
UPDATE fl SET n = n + 1 WHERE id = 1;
COMMIT;
SELECT kappa.wait('fl_sum'), kappa.wait('fl_rows');
-- the view and the query differ by rounding only
SELECT v.g, v.s = q.s AS same_sum, abs(v.s - q.s) < 1e-15 AS within_rounding
  FROM fl_sum v JOIN (SELECT g, sum(x) AS s FROM fl GROUP BY g) q USING (g) ORDER BY g;
-- which verify does not report
SELECT * FROM kappa.verify('fl_sum');
SELECT * FROM kappa.verify('fl_rows');
-- a real difference in a float column is reported, with the rest of the row
SET session_replication_role = replica;
UPDATE fl_sum SET s = s + 1e-6 WHERE g = 2;
UPDATE fl_rows SET x3 = x3 * (1 + 1e-12) WHERE id = 4;
RESET session_replication_role;
SELECT * FROM kappa.verify('fl_sum');
SELECT * FROM kappa.verify('fl_rows');
SELECT kappa.drop_view('fl_sum'), kappa.drop_view('fl_rows');
DROP TABLE fl;
