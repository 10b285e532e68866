-- Derived views of every class: joins, joins with aggregates, HAVING, NULL
-- group keys, min/max of a deleted extreme, group moves, TRUNCATE, pause.
\set VERBOSITY terse
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
CREATE TABLE items (id int PRIMARY KEY, customer_id int, product_id int, qty int, price numeric);
CREATE TABLE products (id int PRIMARY KEY, category text);
INSERT INTO customers SELECT g, 'cust' || g, CASE WHEN g % 4 = 0 THEN NULL ELSE 'r' || (g % 3) END FROM generate_series(1, 20) g;
INSERT INTO products SELECT g, 'cat' || (g % 4) FROM generate_series(1, 10) g;
INSERT INTO items SELECT g, 1 + g % 20, 1 + g % 10, g % 7, (g % 13) * 2.5 FROM generate_series(1, 200) g;

-- check(view, query): rows missing from and extra in the view
CREATE FUNCTION check_view(v regclass, q text) RETURNS TABLE (missing bigint, extra bigint)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM kappa.wait(v);
  RETURN QUERY EXECUTE format(
    'SELECT (SELECT count(*) FROM ((%s) EXCEPT ALL SELECT * FROM %s) a),
            (SELECT count(*) FROM (SELECT * FROM %s EXCEPT ALL (%s)) b)', q, v, v, q);
END $$;

CREATE TABLE queries (v text PRIMARY KEY, q text);
INSERT INTO queries VALUES
 ('j_items', $$SELECT i.id, c.id AS cust_id, c.name, i.qty * i.price AS total FROM items i JOIN customers c ON c.id = i.customer_id WHERE i.qty > 0$$),
 ('j3', $$SELECT i.id AS item, c.id AS cust, p.id AS prod, p.category, c.region FROM items i JOIN customers c ON c.id = i.customer_id JOIN products p ON p.id = i.product_id$$),
 ('by_region', $$SELECT c.region, count(*) AS n, sum(i.qty) AS qty, max(i.price) AS top FROM items i JOIN customers c ON c.id = i.customer_id GROUP BY c.region$$),
 ('cat_having', $$SELECT p.category, c.region, count(*) AS n, min(i.price) AS lo FROM items i, customers c, products p WHERE c.id = i.customer_id AND p.id = i.product_id GROUP BY p.category, c.region HAVING count(*) > 3$$),
 ('region_nulls', $$SELECT region, count(*) AS n, count(region) AS nr, bool_and(name IS NOT NULL) AS named FROM customers GROUP BY region$$),
 ('totals', $$SELECT count(*) AS n, sum(qty) AS qty, avg(price) AS avg_price, min(price) AS lo, max(price) AS hi FROM items$$),
 ('extremes', $$SELECT customer_id, min(price) AS lo, max(price) AS hi, count(DISTINCT product_id) AS products FROM items GROUP BY customer_id$$);
SELECT v, kappa.create_view(v, q) IS NOT NULL AS created FROM queries ORDER BY v;
SELECT v, (check_view(v::regclass, q)).* FROM queries ORDER BY v;

-- a mix of changes in one transaction and in many
BEGIN;
UPDATE items SET customer_id = 3 WHERE id % 10 = 0;            -- moves join partners
UPDATE customers SET region = NULL WHERE id = 5;                -- group key to NULL
UPDATE customers SET region = 'r9' WHERE id = 8;                -- NULL to a new group
DELETE FROM items WHERE price = (SELECT max(price) FROM items); -- the current max rows
COMMIT;
UPDATE items SET id = id + 1000 WHERE id < 20;                  -- key changes
DELETE FROM customers WHERE id = 7;                             -- orphans its items
INSERT INTO customers VALUES (7, 'back', 'r1');                 -- and adopts them again
UPDATE products SET category = 'cat9' WHERE id = 2;
INSERT INTO items SELECT g, 1 + g % 20, 1 + g % 10, g % 5, g FROM generate_series(300, 320) g;
UPDATE items SET qty = 0 WHERE id BETWEEN 300 AND 305;          -- out of the filter
SELECT v, (check_view(v::regclass, q)).* FROM queries ORDER BY v;

-- TRUNCATE of a source, then refill
TRUNCATE items;
INSERT INTO items SELECT g, 1 + g % 20, 1 + g % 10, 1, 1 FROM generate_series(1, 30) g;
SELECT v, (check_view(v::regclass, q)).* FROM queries ORDER BY v;
SELECT * FROM totals;

-- a paused view holds still; resumed, it catches up
SELECT kappa.alter_view('totals', paused => true);
INSERT INTO items VALUES (500, 1, 1, 100, 100);
SELECT kappa.wait('totals', timeout => '200ms') AS caught_up;
SELECT n FROM totals;
SELECT kappa.alter_view('totals', paused => false);
SELECT (check_view('totals', q)).* FROM queries WHERE v = 'totals';
SELECT n FROM totals;

-- a view whose sources stay quiet holds back, once paused, only the WAL
-- written after the worker's position then, not all since they changed
CREATE TABLE quiet (id int PRIMARY KEY, v int);
INSERT INTO quiet VALUES (1, 1);
SELECT kappa.create_view('quiet_v', 'SELECT id, v FROM quiet') IS NOT NULL AS created;
SELECT applied_lsn AS quiet_created FROM kappa.views WHERE name = 'public.quiet_v' \gset
INSERT INTO items SELECT g, 1, 1, 1, 1 FROM generate_series(600, 700) g;
CREATE TEMP TABLE quiet_mark AS SELECT pg_current_wal_insert_lsn() AS busy_done;
SELECT kappa.wait('quiet_v');
DO $$
BEGIN
  FOR i IN 1..3000 LOOP
    EXIT WHEN (SELECT processed_lsn FROM kappa.worker_status()
                WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database()))
              >= (SELECT busy_done FROM quiet_mark);
    PERFORM pg_sleep(0.01);
  END LOOP;
END $$;
SELECT kappa.alter_view(view => 'quiet_v', paused => true);
SELECT applied_lsn > :'quiet_created' AS moved
  FROM kappa.views WHERE name = 'public.quiet_v';
-- its lag is measured from when it was paused, not from the worker's last
-- batch, which the other views keep recent
SELECT pg_sleep(0.3);
INSERT INTO items VALUES (990, 1, 1, 1, 1);
SELECT kappa.wait('totals');
SELECT lag_seconds >= 0.3 AS lag_since_paused FROM kappa.status WHERE name = 'public.quiet_v';
DELETE FROM items WHERE id = 990;
INSERT INTO quiet VALUES (2, 2);
SELECT kappa.alter_view(view => 'quiet_v', paused => false);
SELECT kappa.wait('quiet_v');
SELECT * FROM quiet_v ORDER BY id;
SELECT kappa.drop_view('quiet_v');
DROP TABLE quiet, quiet_mark;
DELETE FROM items WHERE id BETWEEN 600 AND 700;
SELECT (check_view('totals', q)).* FROM queries WHERE v = 'totals';

-- status has a row per view and one for the slot
SELECT kind, count(*), bool_and(state IN ('running', 'active')) AS ok FROM kappa.status GROUP BY kind ORDER BY kind;
SELECT name, state, lag_bytes >= 0 AS lag_known FROM kappa.status WHERE kind = 'view' ORDER BY name;

-- a dropped source breaks its views, which then refuse to wait
DROP TABLE products CASCADE;
SELECT v, state, last_error FROM queries JOIN kappa.views ON name = 'public.' || v ORDER BY v;
SELECT kappa.wait('j3');
-- the way back its hint gives: the table created again, the view rebuilt
CREATE TABLE products (id int PRIMARY KEY, category text);
INSERT INTO products SELECT g, 'cat' || (g % 3) FROM generate_series(1, 10) g;
SELECT kappa.alter_view(view => 'public.cat_having', rebuild => true);
SELECT state, last_error FROM kappa.views WHERE name = 'public.cat_having';
UPDATE products SET category = 'cat7' WHERE id < 4;
SELECT kappa.wait('cat_having');
SELECT count(*) AS differences FROM kappa.verify('cat_having');
DROP TABLE products CASCADE;
-- dropping a derived table drops its view
DROP TABLE j3;
SELECT count(*) FROM kappa.views WHERE name = 'public.j3';
SELECT kappa.drop_view(v::regclass) FROM queries WHERE v <> 'j3' ORDER BY v;
SELECT count(*) AS views, (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'kappa\_v%') AS schemas FROM kappa.views;
DROP TABLE items, customers, queries;
DROP FUNCTION check_view;
