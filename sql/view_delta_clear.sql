-- Engine 2 leaves a batch's deltas in d_<n> and empties them at the start
-- of the view's next batch, or a large batch's once the worker is idle: a
-- batch that follows another at once must not read the deltas of the one
-- before.
\set VERBOSITY terse
CREATE TABLE dc_a (id int PRIMARY KEY, g int);
CREATE TABLE dc_b (g int PRIMARY KEY, name text);
CREATE TABLE dc_slow (k int PRIMARY KEY);
INSERT INTO dc_b VALUES (1, 'one'), (2, 'two');
-- a view that takes a second per row to apply (IMMUTABLE is a lie here)
CREATE FUNCTION dc_sleepy(k int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
    AS $$ BEGIN PERFORM pg_sleep(1); RETURN true; END $$;
SELECT kappa.create_view('dc_slow_v', 'SELECT k FROM dc_slow WHERE dc_sleepy(k)');
SELECT kappa.create_view('dc_join', 'SELECT b.name, count(*) AS n, sum(a.id) AS s FROM dc_a a JOIN dc_b b ON b.g = a.g GROUP BY b.name');
SELECT kappa.wait('dc_join');

-- batch 1: rows of dc_a, and a row that keeps the worker busy for a second
BEGIN;
INSERT INTO dc_slow VALUES (1);
INSERT INTO dc_a VALUES (1, 1), (2, 2);
COMMIT;
SELECT pg_sleep(0.3);
-- batch 2 commits while batch 1 is being applied: no idle moment between
INSERT INTO dc_a VALUES (3, 1);
SELECT kappa.wait('dc_join');
SELECT kappa.wait('dc_slow_v');
SELECT * FROM dc_join ORDER BY name;
SELECT count(*) AS differences FROM kappa.verify('dc_join');

-- more batches, each changing the other source, then both
INSERT INTO dc_a VALUES (4, 2);
SELECT kappa.wait('dc_join');
UPDATE dc_b SET name = 'uno' WHERE g = 1;
SELECT kappa.wait('dc_join');
BEGIN;
DELETE FROM dc_a WHERE id = 1;
UPDATE dc_b SET g = 3 WHERE g = 2;
INSERT INTO dc_a VALUES (5, 3);
COMMIT;
SELECT kappa.wait('dc_join');
SELECT * FROM dc_join ORDER BY name;
SELECT count(*) AS differences FROM kappa.verify('dc_join');

-- once idle, the worker empties the deltas of a large batch
INSERT INTO dc_a SELECT g, g % 3 + 1 FROM generate_series(100, 2099) g;
SELECT kappa.wait('dc_join');
SELECT * FROM dc_join ORDER BY name;
DO $$
DECLARE
    id int := (SELECT v.id FROM kappa.views v WHERE v.name = 'public.dc_join');
    left_over bigint;
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXECUTE format('SELECT (SELECT count(*) FROM kappa_v%s.d_0) + (SELECT count(*) FROM kappa_v%s.d_1)', id, id)
           INTO left_over;
        EXIT WHEN left_over = 0;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RAISE NOTICE 'rows left in the deltas: %', left_over;
END $$;

SELECT kappa.drop_view('dc_join');
SELECT kappa.drop_view('dc_slow_v');
DROP TABLE dc_a, dc_b, dc_slow;
DROP FUNCTION dc_sleepy(int);
