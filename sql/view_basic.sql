-- Derived views: creation, maintenance through the apply worker, wait.
\set VERBOSITY terse
CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric(10,2), status text);
INSERT INTO orders SELECT g, 'c' || (g % 5), g * 1.5, CASE WHEN g % 3 = 0 THEN 'open' ELSE 'done' END
FROM generate_series(1, 50) g;

SELECT kappa.create_view('open_orders', $$SELECT id, customer, amount * 2 AS doubled FROM orders WHERE status = 'open'$$);
SELECT kappa.create_view('by_customer', $$SELECT customer, count(*) AS n, sum(amount) AS total, min(amount) AS lo, max(amount) AS hi, avg(amount) AS mean FROM orders GROUP BY customer$$);
SELECT count(*) FROM open_orders;
SELECT * FROM by_customer ORDER BY customer;

INSERT INTO orders VALUES (51, 'c9', 100, 'open');
UPDATE orders SET customer = 'c1' WHERE id = 2;
DELETE FROM orders WHERE customer = 'c4';
UPDATE orders SET status = 'open' WHERE id = 1;
SELECT kappa.wait('open_orders'), kappa.wait('by_customer');

-- the views equal their queries
SELECT count(*) AS missing FROM (
  (SELECT id, customer, amount * 2 AS doubled FROM orders WHERE status = 'open')
  EXCEPT ALL SELECT * FROM open_orders) s;
SELECT count(*) AS extra FROM (
  SELECT * FROM open_orders EXCEPT ALL
  (SELECT id, customer, amount * 2 AS doubled FROM orders WHERE status = 'open')) s;
SELECT * FROM by_customer ORDER BY customer;
SELECT name, state, txns_applied > 0 AS applied FROM kappa.views ORDER BY id;

-- direct writes are refused
INSERT INTO by_customer VALUES ('x', 1, 1, 1, 1, 1);
DELETE FROM open_orders;
TRUNCATE open_orders;

SELECT kappa.drop_view('open_orders');
SELECT kappa.drop_view('by_customer');
SELECT count(*) FROM kappa.views;
DROP TABLE orders;
