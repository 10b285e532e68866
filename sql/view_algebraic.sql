-- One-table GROUP BY views maintained algebraically (agg_delta.c): each
-- batch adds and subtracts partial aggregates in a state table; what
-- cannot be subtracted (a leaving extreme, a numeric's widest display
-- scale, NaN and infinities) is recomputed.  Every check compares values
-- and their text, so a sum shown as 2.0 instead of 2 is caught.
\set VERBOSITY terse
CREATE TABLE alg (id int PRIMARY KEY, g int, v numeric, w numeric(8,2), i int, b bigint, s text, f float8);

CREATE FUNCTION check_text(v regclass, q text) RETURNS TABLE (missing bigint, extra bigint)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM kappa.wait(v);
  RETURN QUERY EXECUTE format(
    'SELECT (SELECT count(*) FROM (SELECT ROW(q.*)::text FROM (%s) q EXCEPT ALL SELECT ROW(v.*)::text FROM %s v) a),
            (SELECT count(*) FROM (SELECT ROW(v.*)::text FROM %s v EXCEPT ALL SELECT ROW(q.*)::text FROM (%s) q) b)',
    q, v, v, q);
END $$;

CREATE TABLE alg_queries (v text PRIMARY KEY, q text);
INSERT INTO alg_queries VALUES
 ('alg_all', $$SELECT g, count(*) AS n, count(v) AS nv, sum(v) AS sv, avg(v) AS av, sum(w) AS sw, avg(w) AS aw,
                      sum(i) AS si, avg(i) AS ai, sum(b) AS sb, min(s) AS lo, max(v) AS hi FROM alg GROUP BY g$$),
 ('alg_where', $$SELECT g % 2 AS parity, s, count(*) AS n, sum(v * 2) AS s2 FROM alg WHERE i > 0 GROUP BY g % 2, s$$),
 ('alg_keys', $$SELECT g FROM alg GROUP BY g$$),
 -- not algebraic: HAVING, a float sum; these recompute their groups
 ('alg_having', $$SELECT g, count(*) AS n FROM alg GROUP BY g HAVING count(*) > 1$$),
 ('alg_float', $$SELECT g, sum(f) AS sf FROM alg GROUP BY g$$),
 -- a key named like the state table's own columns
 ('alg_named', $$SELECT g AS _kappa_n, count(*) AS n FROM alg GROUP BY g$$);
SELECT v, kappa.create_view(v, q) IS NOT NULL AS created FROM alg_queries ORDER BY v;

-- which views keep a state table
SELECT v.name, to_regclass(format('kappa_v%s.g', v.id)) IS NOT NULL AS algebraic
FROM kappa.views v WHERE v.name LIKE 'public.alg%' ORDER BY v.name;

INSERT INTO alg VALUES
  (1, 1, 1.5, 1.25, 1, 10, 'a', 0.1),
  (2, 1, 2, 2.50, 2, 20, 'b', 0.2),
  (3, 2, 3, 3, 3, 30, 'c', 0.3),
  (4, NULL, 4.25, 4, 4, 40, NULL, 0.4),
  (5, 3, NULL, NULL, NULL, NULL, NULL, NULL);
SELECT v, (check_text(v::regclass, q)).* FROM alg_queries ORDER BY v;
SELECT * FROM alg_all ORDER BY g;

-- the only value of scale 1 leaves group 1: its sum shows as 2, not 2.0
DELETE FROM alg WHERE id = 1;
SELECT v, (check_text(v::regclass, q)).* FROM alg_queries ORDER BY v;
SELECT g, sv, av, lo FROM alg_all WHERE g = 1;

-- the current min and max leave; the last non-null value leaves
UPDATE alg SET s = 'z', v = 0 WHERE id = 2;
UPDATE alg SET v = NULL WHERE id = 3;
SELECT v, (check_text(v::regclass, q)).* FROM alg_queries ORDER BY v;
SELECT g, nv, sv, av, lo, hi FROM alg_all WHERE g IN (1, 2) ORDER BY g;

-- NaN and infinities come and go
INSERT INTO alg VALUES (6, 2, 'NaN', 1, 1, 1, 'n', 1), (7, 2, 'Infinity', 1, 1, 1, 'n', 1),
                       (8, 3, '-Infinity', 1, 1, 1, 'n', 1), (9, 3, 'Infinity', 1, 1, 1, 'n', 1);
SELECT v, (check_text(v::regclass, q)).* FROM alg_queries ORDER BY v;
SELECT g, sv, av, hi FROM alg_all WHERE g IN (2, 3) ORDER BY g;
DELETE FROM alg WHERE id IN (6, 9);
SELECT v, (check_text(v::regclass, q)).* FROM alg_queries ORDER BY v;
SELECT g, sv, av, hi FROM alg_all WHERE g IN (2, 3) ORDER BY g;
DELETE FROM alg WHERE id IN (7, 8);

-- rows move between groups, into and out of NULL groups and the filter;
-- groups empty and come back
UPDATE alg SET g = NULL WHERE id = 2;
UPDATE alg SET g = 5, i = -1 WHERE id = 4;
DELETE FROM alg WHERE id = 5;
INSERT INTO alg SELECT x, x % 4, x / 8.0, x / 4.0, x, x, 's' || x % 3, x FROM generate_series(10, 400) x;
UPDATE alg SET v = v * 3, g = g + 1 WHERE id % 7 = 0;
DELETE FROM alg WHERE id % 5 = 0;
UPDATE alg SET id = id + 1000 WHERE id % 11 = 0;
SELECT v, (check_text(v::regclass, q)).* FROM alg_queries ORDER BY v;

-- many changes in one transaction, some undone
BEGIN;
UPDATE alg SET v = v + 0.001 WHERE id % 3 = 0;
SAVEPOINT s;
DELETE FROM alg WHERE id < 200;
ROLLBACK TO SAVEPOINT s;
UPDATE alg SET g = NULL WHERE id % 13 = 0;
DELETE FROM alg WHERE id % 3 = 1;
COMMIT;
SELECT v, (check_text(v::regclass, q)).* FROM alg_queries ORDER BY v;

-- TRUNCATE rebuilds the state from the copy
TRUNCATE alg;
INSERT INTO alg SELECT x, x % 3, x * 0.5, x, x, x, 't', x FROM generate_series(1, 30) x;
SELECT v, (check_text(v::regclass, q)).* FROM alg_queries ORDER BY v;
DELETE FROM alg WHERE id % 2 = 1;
SELECT v, (check_text(v::regclass, q)).* FROM alg_queries ORDER BY v;

-- the worker keeps its plans across batches, but not across a rename
ALTER TABLE alg_all RENAME TO alg_renamed;
INSERT INTO alg VALUES (100, 1, 0.001, 1, 1, 1, 'r', 1);
SELECT (check_text('alg_renamed', q)).* FROM alg_queries WHERE v = 'alg_all';
ALTER SCHEMA public RENAME TO public_renamed;
ALTER SCHEMA public_renamed RENAME TO public;
ALTER TABLE alg_renamed RENAME TO alg_all;
DELETE FROM alg WHERE id = 100;
SELECT v, (check_text(v::regclass, q)).* FROM alg_queries ORDER BY v;
SELECT name, state FROM kappa.status WHERE name LIKE 'public.alg%' ORDER BY name;

-- the state table is the worker's: others cannot write it
SELECT format('kappa_v%s.g', id) AS state FROM kappa.views WHERE name = 'public.alg_all' \gset
DELETE FROM :state;

-- kappa.verify agrees, and replaying in place rebuilds state and view
SELECT count(*) AS findings FROM kappa.verify('alg_all');
SELECT kappa.drop_view(v) FROM alg_queries ORDER BY v;
SELECT count(*) AS left_over FROM pg_namespace n WHERE n.nspname LIKE 'kappa_v%'
  AND NOT EXISTS (SELECT 1 FROM kappa.views v WHERE n.nspname = 'kappa_v' || v.id);
DROP TABLE alg, alg_queries;
DROP FUNCTION check_text(regclass, text);
