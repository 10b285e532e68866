-- The worker buffers only the columns of a source that its views read
-- (the others as null): views stay exact whatever columns change, and a
-- view made while a batch is decoded, reading other columns, reads its
-- changes whole.
\set VERBOSITY terse
CREATE TABLE cr_t (id int PRIMARY KEY, a int, b int, c int, big text);
INSERT INTO cr_t SELECT g, g, g * 10, g % 3, repeat(md5(g::text), 300) FROM generate_series(1, 20) g;
-- cr_a reads id, a and c; b and big are never buffered for it
SELECT kappa.create_view('cr_a', 'SELECT id, a FROM cr_t WHERE c > 0');
SELECT kappa.wait('cr_a');

-- changes of unread columns only (a TOASTed one among them) change nothing
UPDATE cr_t SET b = b + 1, big = big || 'x' WHERE id <= 10;
UPDATE cr_t SET big = repeat('y', 5000) WHERE id = 11;
SELECT kappa.wait('cr_a');
SELECT count(*) AS rows, sum(a) AS sum_a FROM cr_a;
SELECT count(*) AS differences FROM kappa.verify('cr_a');

-- changes of read columns, and of both kinds at once
UPDATE cr_t SET a = a + 100 WHERE id % 2 = 0;
UPDATE cr_t SET c = 0, b = 0 WHERE id IN (1, 2);
UPDATE cr_t SET c = 1, big = 'short' WHERE id IN (3, 6);
DELETE FROM cr_t WHERE id = 4;
INSERT INTO cr_t VALUES (21, 21, 210, 2, repeat('z', 9000));
SELECT kappa.wait('cr_a');
SELECT count(*) AS rows, sum(a) AS sum_a FROM cr_a;
SELECT count(*) AS differences FROM kappa.verify('cr_a');

-- A view made while the worker decodes a batch for cr_slow (which reads
-- a and takes a second per changed row to apply): the batch after it holds
-- a change made before the new view, the view, and a change made after,
-- which the new view reads column b of.
CREATE FUNCTION cr_sleepy(a int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
    AS $$ BEGIN PERFORM pg_sleep(1); RETURN true; END $$;
SELECT kappa.create_view('cr_slow', 'SELECT id, a FROM cr_t WHERE cr_sleepy(a)');
SELECT kappa.wait('cr_slow', timeout => '2min');
UPDATE cr_t SET a = a + 1 WHERE id = 5;
SELECT pg_sleep(0.3);
UPDATE cr_t SET b = b + 1000, a = a + 1 WHERE id = 7;
SELECT kappa.create_view('cr_b', 'SELECT c, sum(b) AS sum_b, count(*) AS n FROM cr_t GROUP BY c');
UPDATE cr_t SET b = b + 5000, a = a + 1 WHERE id = 8;
SELECT kappa.wait('cr_b', timeout => '2min');
SELECT kappa.wait('cr_slow', timeout => '2min');
SELECT * FROM cr_b ORDER BY c;
SELECT count(*) AS differences FROM kappa.verify('cr_b');
SELECT count(*) AS differences FROM kappa.verify('cr_slow');
SELECT count(*) AS differences FROM kappa.verify('cr_a');
-- none of them was held back to be applied again
SELECT name, state, last_error FROM kappa.status WHERE name LIKE 'public.cr\_%' ORDER BY name;

SELECT kappa.drop_view('cr_a');
SELECT kappa.drop_view('cr_b');
SELECT kappa.drop_view('cr_slow');
DROP FUNCTION cr_sleepy(int);
DROP TABLE cr_t;
