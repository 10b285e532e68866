-- SELECT DISTINCT: maintained as GROUP BY every output column, a row per
-- distinct value that stays while at least one source row gives it.
\set VERBOSITY terse
CREATE TABLE vd_customers (id int PRIMARY KEY, name text, region text);
CREATE TABLE vd_orders (id int PRIMARY KEY, customer_id int, status text);
CREATE TABLE vd_log (kind text, who text);          -- no key
INSERT INTO vd_customers VALUES (1, 'a', 'east'), (2, 'b', 'east'), (3, 'c', 'west'), (4, 'd', NULL);
INSERT INTO vd_orders VALUES (1, 1, 'open'), (2, 1, 'open'), (3, 2, 'done'), (4, 3, NULL), (5, 4, 'open');
INSERT INTO vd_log VALUES ('x', 'a'), ('x', 'a'), ('y', NULL);

SELECT kappa.create_view('vd_regions', 'SELECT DISTINCT region FROM vd_customers');
SELECT kappa.create_view('vd_pairs', 'SELECT DISTINCT c.region, o.status FROM vd_orders o JOIN vd_customers c ON c.id = o.customer_id');
SELECT kappa.create_view('vd_kinds', 'SELECT DISTINCT kind, who FROM vd_log WHERE kind <> ''z''');
SET pg_kappa.engine = 1;
SELECT kappa.create_view('vd_regions1', 'SELECT DISTINCT region FROM vd_customers');
RESET pg_kappa.engine;
SELECT name, kind, engine FROM kappa.views WHERE name LIKE 'public.vd_%' ORDER BY 1;
-- what DISTINCT cannot be maintained as
SELECT kappa.create_view('vd_bad', 'SELECT DISTINCT ON (region) region, name FROM vd_customers');
SELECT kappa.create_view('vd_bad', 'SELECT DISTINCT region, count(*) AS n FROM vd_customers GROUP BY region');
-- one expression twice in the key: the query, kept as text, would read
-- back with one key where the derived table has two
SELECT kappa.create_view('vd_bad', 'SELECT DISTINCT region AS r1, region AS r2, name FROM vd_customers');
SELECT kappa.create_view('vd_bad', 'SELECT region AS r1, region AS r2, name FROM vd_customers GROUP BY 1, 2, 3');
-- repeated outside the key, it is one more column
SELECT kappa.create_view('vd_twice', 'SELECT region AS r1, region AS r2, name, count(*) AS n FROM vd_customers GROUP BY region, name');

CREATE FUNCTION vd_check() RETURNS TABLE (view text, differences bigint) LANGUAGE sql AS $$
  SELECT v, (SELECT count(*) FROM kappa.verify(v::regclass))
    FROM unnest(ARRAY['vd_regions', 'vd_pairs', 'vd_kinds', 'vd_regions1', 'vd_twice']) v ORDER BY 1
$$;
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM unnest(ARRAY['vd_regions', 'vd_pairs', 'vd_kinds', 'vd_regions1', 'vd_twice']) v;
SELECT * FROM vd_regions ORDER BY 1;
SELECT * FROM vd_pairs ORDER BY 1, 2;
SELECT * FROM vd_kinds ORDER BY 1, 2;

-- a second row with a value: nothing changes; the last one goes: the row goes
INSERT INTO vd_customers VALUES (5, 'e', 'west');
DELETE FROM vd_customers WHERE id = 3;
DELETE FROM vd_log WHERE ctid = (SELECT min(ctid) FROM vd_log WHERE kind = 'x');
UPDATE vd_orders SET status = 'done' WHERE id = 5;         -- (NULL region, done) appears, (NULL, open) goes
UPDATE vd_customers SET region = 'north' WHERE id = 2;     -- moves a join partner
INSERT INTO vd_log VALUES ('y', NULL), ('z', 'q');
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM unnest(ARRAY['vd_regions', 'vd_pairs', 'vd_kinds', 'vd_regions1', 'vd_twice']) v;
SELECT * FROM vd_regions ORDER BY 1;
SELECT * FROM vd_pairs ORDER BY 1, 2;
SELECT * FROM vd_kinds ORDER BY 1, 2;
SELECT * FROM vd_regions1 ORDER BY 1;
SELECT view, differences FROM vd_check();

SELECT kappa.drop_view(v::regclass) IS NOT NULL AS dropped FROM unnest(ARRAY['vd_regions', 'vd_pairs', 'vd_kinds', 'vd_regions1', 'vd_twice']) v;
DROP FUNCTION vd_check();
DROP TABLE vd_customers, vd_orders, vd_log;
