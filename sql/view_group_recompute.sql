-- Groups whose aggregates cannot be updated by arithmetic (a min or max
-- that left, count(DISTINCT)) are recomputed from the sources.  The worker
-- reads them one key at a time (each key's equality pushed into the query,
-- through an index) or all keys at once (one scan, then the keys), as the
-- planner prices it; a view maintained algebraically recomputes the
-- groups' state and writes their rows from it.  Every shape here must stay
-- exact whichever way its groups are read.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;

-- a star: facts grouped by an attribute of their dimension, which no index
-- on the facts can find (all keys at once)
CREATE TABLE gr_stores (id int PRIMARY KEY, region text, city text);
INSERT INTO gr_stores SELECT i, CASE WHEN i % 9 = 0 THEN NULL ELSE 'r' || (i % 7) END, 'c' || i
  FROM generate_series(1, 200) i;
CREATE TABLE gr_sales (id int PRIMARY KEY, store_id int, amount numeric, sold_at date);
INSERT INTO gr_sales SELECT i, 1 + i % 200, (i % 97) / 4.0 + CASE WHEN i % 5 = 0 THEN 0.125 ELSE 0 END,
  date '2026-01-01' + i % 300 FROM generate_series(1, 6000) i;
CREATE INDEX ON gr_sales (store_id);

-- a fact table grouped by its own indexed column, many groups (one key at
-- a time)
CREATE TABLE gr_lines (order_id int, line int, qty int, price numeric, PRIMARY KEY (order_id, line));
INSERT INTO gr_lines SELECT i / 4, i % 4, 1 + i % 13, (i % 31) * 1.5 FROM generate_series(0, 7999) i;
-- numeric of no fixed scale: the sums show their widest display scale,
-- which the state counts per scale (two sums, NULLs, a NULL group)
CREATE TABLE gr_measures (id int PRIMARY KEY, grp int, a numeric, b numeric);
INSERT INTO gr_measures SELECT i, CASE WHEN i % 11 = 0 THEN NULL ELSE i % 5 END,
  CASE i % 4 WHEN 0 THEN 1 WHEN 1 THEN 1.5 WHEN 2 THEN 2.25 ELSE NULL END,
  CASE WHEN i % 3 = 0 THEN (i % 10)::numeric / 1000 ELSE i % 7 END
  FROM generate_series(1, 3000) i;
-- an array as the first group key (there are no arrays of arrays to
-- gather the keys in)
CREATE TABLE gr_tagged (id int PRIMARY KEY, tags int[], grp int, x int);
INSERT INTO gr_tagged SELECT i, ARRAY[i % 3, i % 2], i % 4, i FROM generate_series(1, 600) i;
ANALYZE gr_stores, gr_sales, gr_lines, gr_measures, gr_tagged;

CREATE TABLE gr_queries (v text, q text);
INSERT INTO gr_queries VALUES
 ('gr_region', $$SELECT s.region, count(*) AS n, sum(f.amount) AS total, avg(f.amount) AS mean,
                        max(f.amount) AS top, min(f.sold_at) AS first
                   FROM gr_sales f JOIN gr_stores s ON s.id = f.store_id GROUP BY s.region$$),
 ('gr_region_distinct', $$SELECT s.region, count(DISTINCT f.store_id) AS stores, max(f.amount) AS top
                   FROM gr_sales f JOIN gr_stores s ON s.id = f.store_id GROUP BY s.region$$),
 ('gr_orders', $$SELECT order_id, count(*) AS lines, sum(qty) AS qty, max(price) AS top, min(qty) AS least
                   FROM gr_lines GROUP BY order_id$$),
 ('gr_orders_distinct', $$SELECT order_id, count(DISTINCT qty) AS qtys, max(price) AS top
                   FROM gr_lines GROUP BY order_id$$),
 ('gr_tags', $$SELECT tags, grp, count(*) AS n, max(x) AS top FROM gr_tagged GROUP BY tags, grp$$),
 ('gr_scales', $$SELECT grp, count(*) AS n, count(a) AS na, sum(a) AS sa, avg(a) AS aa, sum(b) AS sb,
                        max(b) AS mb FROM gr_measures GROUP BY grp$$);
SELECT v, kappa.create_view(v, q) IS NOT NULL AS created FROM gr_queries ORDER BY v;

-- the extremes of a few groups leave (and of the NULL region)
UPDATE gr_sales SET amount = 0 WHERE amount = (SELECT max(amount) FROM gr_sales) AND store_id % 7 IN (1, 2, 3);
UPDATE gr_sales SET amount = 0
 WHERE id = (SELECT f.id FROM gr_sales f JOIN gr_stores s ON s.id = f.store_id
              WHERE s.region IS NULL ORDER BY f.amount DESC, f.id LIMIT 1);
DELETE FROM gr_sales WHERE sold_at = date '2026-01-01';
DELETE FROM gr_lines WHERE (order_id, line) IN (SELECT order_id, line FROM gr_lines
                                                WHERE order_id IN (17, 500, 1999) AND price = (SELECT max(price) FROM gr_lines l WHERE l.order_id = gr_lines.order_id));
UPDATE gr_lines SET qty = 100 WHERE order_id = 3;
DELETE FROM gr_measures WHERE a = 2.25 AND grp IN (1, 2);      -- scale 2 leaves
UPDATE gr_measures SET b = 1 WHERE b < 1 AND grp IS NULL;      -- scale 3 leaves
DELETE FROM gr_tagged WHERE x > 590;                            -- maxima leave
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM gr_queries;

-- the extremes of nearly every group leave in one batch
UPDATE gr_sales SET amount = amount / 2 WHERE amount >= 20;
UPDATE gr_stores SET region = 'r1' WHERE id IN (3, 4);
UPDATE gr_lines SET price = price - 1 WHERE line = 0;
UPDATE gr_measures SET a = 7.125 WHERE id = 4;                  -- scale 3 comes
UPDATE gr_measures SET a = NULL, b = NULL WHERE grp = 3;
UPDATE gr_tagged SET tags = NULL WHERE id % 50 = 0;
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM gr_queries;

SELECT q.v, v.state, (SELECT count(*) FROM kappa.verify(q.v::regclass)) AS differences
  FROM gr_queries q JOIN kappa.views v ON v.relid = q.v::regclass ORDER BY 1;
-- not only verify's word: the rows themselves
SELECT region, n, total, mean, top, first FROM gr_region ORDER BY region;
SELECT count(*) AS orders, sum(lines) AS lines, sum(qty) AS qty, sum(top) AS tops, sum(least) AS least
  FROM gr_orders;
SELECT order_id, lines, qty, top, least FROM gr_orders WHERE order_id IN (3, 17, 500, 1999) ORDER BY 1;
SELECT grp, n, na, sa, aa, sb, mb FROM gr_scales ORDER BY grp;

SELECT kappa.drop_view(v::regclass) FROM gr_queries ORDER BY v;
DROP TABLE gr_queries, gr_lines, gr_sales, gr_stores, gr_measures, gr_tagged;
