-- Derived views over TOASTed columns: an update that leaves a TOASTed value
-- unchanged does not carry it in the WAL; the view must still be right.
\set VERBOSITY terse
CREATE TABLE tt (id int PRIMARY KEY, big text, n int);
ALTER TABLE tt ALTER big SET STORAGE EXTERNAL;
INSERT INTO tt SELECT g, repeat(md5(g::text), 400), g FROM generate_series(1, 5) g;
SELECT kappa.create_view('tt_view', 'SELECT id, n, length(big) AS len, md5(big) AS h FROM tt');
SELECT kappa.create_view('tt_agg', 'SELECT n % 2 AS odd, count(*) AS c, max(big) AS top FROM tt GROUP BY n % 2');
-- unchanged TOAST value
UPDATE tt SET n = n + 10 WHERE id <= 3;
-- changed TOAST value
UPDATE tt SET big = repeat('x', 20000) WHERE id = 4;
-- unchanged, then deleted in the same transaction
BEGIN;
UPDATE tt SET n = 0 WHERE id = 5;
DELETE FROM tt WHERE id = 5;
COMMIT;
-- a key change that keeps the TOASTed value
UPDATE tt SET id = 10 WHERE id = 1;
-- a new value, then an update that keeps it, in one transaction
BEGIN;
UPDATE tt SET big = repeat('y', 15000) WHERE id = 2;
UPDATE tt SET n = n + 100 WHERE id = 2;
COMMIT;
SELECT kappa.wait('tt_view'), kappa.wait('tt_agg');
SELECT * FROM kappa.verify('tt_view');
SELECT * FROM kappa.verify('tt_agg');
SELECT id, n, len FROM tt_view ORDER BY id;
SELECT kappa.drop_view('tt_view'), kappa.drop_view('tt_agg');
DROP TABLE tt;
