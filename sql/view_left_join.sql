-- LEFT JOIN views (engine 2): the first table's rows are all kept; the
-- view is maintained by that table's key, which it must select (and group
-- by, with GROUP BY).  A batch finds the kept rows it changed or whose
-- partners it changed, and computes their rows (or groups) again.
\set VERBOSITY terse
CREATE TABLE lj_customers (id int PRIMARY KEY, name text, region_id int);
CREATE TABLE lj_regions (id int PRIMARY KEY, label text);
CREATE TABLE lj_orders (id int PRIMARY KEY, customer_id int, amount int);
CREATE TABLE lj_notes (customer_id int, note text);           -- no key
INSERT INTO lj_regions VALUES (1, 'east'), (2, 'west');
INSERT INTO lj_customers SELECT g, 'c' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 + 1 END FROM generate_series(1, 12) g;
INSERT INTO lj_orders SELECT g, g % 8 + 1, g * 10 FROM generate_series(1, 20) g;
INSERT INTO lj_notes VALUES (1, 'a'), (1, 'a'), (2, 'b');

CREATE TABLE lj_queries (v text, q text);
INSERT INTO lj_queries VALUES
 ('lj_orders_of', $$SELECT c.id, c.name, o.id AS order_id, o.amount FROM lj_customers c LEFT JOIN lj_orders o ON o.customer_id = c.id$$),
 ('lj_star', $$SELECT c.id, c.name, r.label, o.amount FROM lj_customers c LEFT JOIN lj_regions r ON r.id = c.region_id LEFT JOIN lj_orders o ON o.customer_id = c.id AND o.amount > 50$$),
 ('lj_where', $$SELECT c.id, r.label FROM lj_customers c LEFT JOIN lj_regions r ON r.id = c.region_id WHERE r.label IS DISTINCT FROM 'west'$$),
 ('lj_bagside', $$SELECT c.id, n.note FROM lj_customers c LEFT JOIN lj_notes n ON n.customer_id = c.id$$),
 ('lj_counts', $$SELECT c.id, c.name, count(o.id) AS orders, coalesce(sum(o.amount), 0) AS total
                 FROM lj_customers c LEFT JOIN lj_orders o ON o.customer_id = c.id GROUP BY c.id, c.name$$),
 ('lj_by_label', $$SELECT c.id, r.label, count(*) AS n, max(o.amount) AS top
                   FROM lj_customers c LEFT JOIN lj_regions r ON r.id = c.region_id LEFT JOIN lj_orders o ON o.customer_id = c.id
                   WHERE c.id < 40 GROUP BY c.id, r.label HAVING count(*) < 4$$),
 ('lj_note_count', $$SELECT c.id, count(n.note) AS notes FROM lj_customers c LEFT JOIN lj_notes n ON n.customer_id = c.id GROUP BY c.id$$);
SELECT v, kappa.create_view(v, q) IS NOT NULL AS created FROM lj_queries ORDER BY v;
SELECT name, kind, engine FROM kappa.views WHERE name LIKE 'public.lj_%' ORDER BY 1;

-- what is refused
SELECT kappa.create_view('lj_bad', 'SELECT c.name, o.amount FROM lj_customers c LEFT JOIN lj_orders o ON o.customer_id = c.id');
SELECT kappa.create_view('lj_bad', 'SELECT n.note, c.id FROM lj_notes n LEFT JOIN lj_customers c ON c.id = n.customer_id');
SELECT kappa.create_view('lj_bad', 'SELECT count(o.id) AS n FROM lj_customers c LEFT JOIN lj_orders o ON o.customer_id = c.id');
SELECT kappa.create_view('lj_bad', 'SELECT c.name, count(o.id) AS n FROM lj_customers c LEFT JOIN lj_orders o ON o.customer_id = c.id GROUP BY c.name');
SELECT kappa.create_view('lj_bad', 'SELECT DISTINCT c.id, o.amount FROM lj_customers c LEFT JOIN lj_orders o ON o.customer_id = c.id');
SELECT kappa.create_view('lj_bad', 'SELECT c.id, o.amount FROM lj_orders o RIGHT JOIN lj_customers c ON o.customer_id = c.id');
SELECT kappa.create_view('lj_bad', 'SELECT c.id, o.amount FROM lj_customers c FULL JOIN lj_orders o ON o.customer_id = c.id');
SET pg_kappa.engine = 1;
SELECT kappa.create_view('lj_bad', 'SELECT c.id, o.amount, o.id AS oid FROM lj_customers c LEFT JOIN lj_orders o ON o.customer_id = c.id');
RESET pg_kappa.engine;
-- a kept table keyed by a replica identity index only: the view would make
-- its replica identity FULL and lose the key
CREATE TABLE lj_ri (id int NOT NULL, y int);
CREATE UNIQUE INDEX lj_ri_id ON lj_ri (id);
ALTER TABLE lj_ri REPLICA IDENTITY USING INDEX lj_ri_id;
SELECT kappa.create_view('lj_bad', 'SELECT r.id, o.amount FROM lj_ri r LEFT JOIN lj_orders o ON o.customer_id = r.y');
DROP TABLE lj_ri;
-- in the transaction that changed a source: its changes would count twice
BEGIN;
INSERT INTO lj_orders VALUES (999, 1, 1);
SELECT kappa.create_view('lj_bad', 'SELECT c.id, o.amount FROM lj_customers c LEFT JOIN lj_orders o ON o.customer_id = c.id');
ROLLBACK;

CREATE FUNCTION lj_check() RETURNS TABLE (view text, differences bigint) LANGUAGE sql AS $$
  SELECT v, (SELECT count(*) FROM kappa.verify(v::regclass)) FROM lj_queries ORDER BY 1
$$;
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM lj_queries;
SELECT * FROM lj_check();
SELECT * FROM lj_orders_of WHERE id IN (1, 9, 10) ORDER BY id, order_id;

-- a kept row without partners gets one, and loses it again; partners move
INSERT INTO lj_orders VALUES (100, 10, 1000);
UPDATE lj_orders SET customer_id = 11 WHERE id = 1;
DELETE FROM lj_orders WHERE customer_id = 2;
UPDATE lj_customers SET region_id = 1 WHERE id = 3;              -- a NULL partner key gets one
UPDATE lj_regions SET label = 'WEST' WHERE id = 2;                -- a partner of many
INSERT INTO lj_customers VALUES (13, 'c13', 2), (14, 'c14', 9);    -- one with no region
DELETE FROM lj_customers WHERE id = 4;
UPDATE lj_customers SET id = 40 WHERE id = 5;                     -- the kept key itself
INSERT INTO lj_notes VALUES (13, 'x'), (1, 'a');
DELETE FROM lj_notes WHERE note = 'b';
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM lj_queries;
SELECT * FROM lj_check();
SELECT * FROM lj_orders_of WHERE id IN (1, 2, 9, 10, 11) ORDER BY id, order_id;
SELECT * FROM lj_bagside WHERE id IN (1, 2, 13) ORDER BY id, note;
SELECT * FROM lj_counts WHERE id IN (1, 2, 10, 11, 13, 14, 40) ORDER BY id;

-- in one transaction, with a savepoint rolled back, and back and forth
BEGIN;
DELETE FROM lj_regions WHERE id = 1;
SAVEPOINT s;
DELETE FROM lj_orders;
ROLLBACK TO s;
INSERT INTO lj_regions VALUES (3, 'north');
UPDATE lj_customers SET region_id = 3 WHERE region_id IS NULL;
UPDATE lj_orders SET amount = amount + 1;
UPDATE lj_orders SET amount = amount - 1;
COMMIT;
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM lj_queries;
SELECT * FROM lj_check();

-- TRUNCATE of the joined table: every kept row loses its partners
TRUNCATE lj_orders;
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM lj_queries;
SELECT * FROM lj_check();
SELECT count(*) AS rows, count(order_id) AS with_orders FROM lj_orders_of;

-- replayed from the event log, in place and into a new view: the sources'
-- rows as of then, read by the view's own query
SELECT kappa.capture('lj_customers') IS NOT NULL, kappa.capture('lj_orders') IS NOT NULL;
INSERT INTO lj_orders VALUES (201, 1, 5), (202, 13, 7);
UPDATE lj_customers SET name = 'renamed' WHERE id = 1;
DELETE FROM lj_customers WHERE id = 2;
SELECT kappa.wait('lj_orders_of');
SET client_min_messages = warning;     -- the NOTICE names an LSN
SELECT kappa.replay('lj_orders_of') IS NOT NULL AS replayed;
SELECT kappa.replay('lj_orders_of', new_name => 'lj_orders_of_green') IS NOT NULL AS replayed;
SELECT kappa.replay('lj_counts') IS NOT NULL AS replayed;
SELECT kappa.replay('lj_counts', new_name => 'lj_counts_green') IS NOT NULL AS replayed;
RESET client_min_messages;
SELECT kappa.wait('lj_orders_of') AND kappa.wait('lj_orders_of_green') AND kappa.wait('lj_counts')
   AND kappa.wait('lj_counts_green') AS waited;
SELECT (SELECT count(*) FROM kappa.verify('lj_orders_of')) AS in_place_differences,
       (SELECT count(*) FROM kappa.verify('lj_orders_of_green')) AS green_differences,
       (SELECT count(*) FROM lj_orders_of_green) AS rows;
SELECT (SELECT count(*) FROM kappa.verify('lj_counts')) AS in_place_differences,
       (SELECT count(*) FROM kappa.verify('lj_counts_green')) AS green_differences,
       (SELECT count(*) FROM lj_counts_green) AS rows;
SELECT kappa.drop_view('lj_orders_of_green') IS NOT NULL AS dropped;
SELECT kappa.drop_view('lj_counts_green') IS NOT NULL AS dropped;
SELECT kappa.uncapture('lj_customers') IS NOT NULL, kappa.uncapture('lj_orders') IS NOT NULL;

SELECT kappa.drop_view(v::regclass) IS NOT NULL AS dropped FROM lj_queries ORDER BY v;
DROP FUNCTION lj_check();
DROP TABLE lj_customers, lj_regions, lj_orders, lj_notes, lj_queries;
