-- Subqueries in WHERE (engine 2): EXISTS (...), NOT EXISTS (...) and
-- ... IN (...) over one table, as conditions the WHERE clause ANDs
-- together, on the first table, whose key the view selects.  A batch
-- recomputes the first table's rows it changed and those a changed row of
-- the subquery's table matches (before or after the change).
\set VERBOSITY terse
CREATE TABLE sj_customers (id int PRIMARY KEY, name text, region text);
CREATE TABLE sj_orders (id int PRIMARY KEY, customer_id int, amount int, status text);
CREATE TABLE sj_flags (customer_id int, flag text);                -- no key
CREATE TABLE sj_regions (id int PRIMARY KEY, label text);
INSERT INTO sj_customers SELECT g, 'c' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'r' || (g % 2) END FROM generate_series(1, 12) g;
INSERT INTO sj_orders SELECT g, g % 8 + 1, g * 10, CASE WHEN g % 4 = 0 THEN 'open' ELSE 'done' END FROM generate_series(1, 20) g;
INSERT INTO sj_flags VALUES (1, 'vip'), (1, 'vip'), (2, 'late'), (NULL, 'vip');
INSERT INTO sj_regions VALUES (1, 'r0'), (2, 'r1');

CREATE TABLE sj_queries (v text, q text);
INSERT INTO sj_queries VALUES
 ('sj_buyers', $$SELECT c.id, c.name FROM sj_customers c
                 WHERE EXISTS (SELECT 1 FROM sj_orders o WHERE o.customer_id = c.id AND o.amount > 50)$$),
 ('sj_idle', $$SELECT c.id, c.region FROM sj_customers c
               WHERE NOT EXISTS (SELECT FROM sj_orders o WHERE o.customer_id = c.id AND o.status = 'open')
                 AND c.name <> 'c5'$$),
 ('sj_vips', $$SELECT c.id, c.name FROM sj_customers c WHERE c.id IN (SELECT f.customer_id FROM sj_flags f WHERE f.flag = 'vip')$$),
 ('sj_labelled', $$SELECT c.id, c.name FROM sj_customers c WHERE c.region IN (SELECT r.label FROM sj_regions r)$$),
 ('sj_both', $$SELECT c.id, r.label FROM sj_customers c LEFT JOIN sj_regions r ON r.label = c.region
               WHERE EXISTS (SELECT 1 FROM sj_orders o WHERE o.customer_id = c.id)
                 AND NOT EXISTS (SELECT 1 FROM sj_flags f WHERE f.customer_id = c.id)$$),
 ('sj_counts', $$SELECT c.id, count(*) AS n FROM sj_customers c
                 WHERE EXISTS (SELECT 1 FROM sj_flags f WHERE f.customer_id = c.id) GROUP BY c.id$$),
 ('sj_self', $$SELECT c.id FROM sj_customers c WHERE EXISTS (SELECT 1 FROM sj_customers d WHERE d.id = c.id + 1 AND d.region = c.region)$$),
 ('sj_nested', $$SELECT c.id FROM sj_customers c
                 WHERE (c.id > 1 AND (c.name <> 'c9' AND EXISTS (SELECT 1 FROM sj_orders o WHERE o.customer_id = c.id)))$$);
SELECT v, kappa.create_view(v, q) IS NOT NULL AS created FROM sj_queries ORDER BY v;

-- what is refused
SELECT kappa.create_view('sj_bad', 'SELECT c.id FROM sj_customers c WHERE c.id NOT IN (SELECT o.customer_id FROM sj_orders o)');
SELECT kappa.create_view('sj_bad', 'SELECT c.id FROM sj_customers c WHERE c.id > (SELECT max(o.customer_id) FROM sj_orders o)');
SELECT kappa.create_view('sj_bad', 'SELECT c.id, EXISTS (SELECT 1 FROM sj_orders o WHERE o.customer_id = c.id) AS buys FROM sj_customers c');
SELECT kappa.create_view('sj_bad', 'SELECT c.id FROM sj_customers c WHERE c.id = 1 OR EXISTS (SELECT 1 FROM sj_orders o WHERE o.customer_id = c.id)');
SELECT kappa.create_view('sj_bad', 'SELECT c.name FROM sj_customers c WHERE EXISTS (SELECT 1 FROM sj_orders o WHERE o.customer_id = c.id)');
SELECT kappa.create_view('sj_bad', 'SELECT c.id FROM sj_customers c WHERE EXISTS (SELECT 1 FROM sj_orders o JOIN sj_flags f ON f.customer_id = o.customer_id WHERE o.customer_id = c.id)');
SELECT kappa.create_view('sj_bad', 'SELECT c.id FROM sj_customers c WHERE EXISTS (SELECT 1 FROM sj_orders o WHERE o.customer_id = c.id GROUP BY o.status)');
SELECT kappa.create_view('sj_bad', 'SELECT c.id, r.label FROM sj_customers c LEFT JOIN sj_regions r ON r.label = c.region WHERE EXISTS (SELECT 1 FROM sj_orders o WHERE o.customer_id = r.id)');
SELECT kappa.create_view('sj_bad', 'SELECT o.id FROM sj_orders o JOIN sj_customers c ON c.id = o.customer_id WHERE EXISTS (SELECT 1 FROM sj_flags f WHERE f.customer_id = c.id)');
SELECT kappa.create_view('sj_bad', 'SELECT count(*) AS n FROM sj_customers c WHERE EXISTS (SELECT 1 FROM sj_flags f WHERE f.customer_id = c.id)');
SET pg_kappa.engine = 1;
SELECT kappa.create_view('sj_bad', 'SELECT c.id FROM sj_customers c WHERE EXISTS (SELECT 1 FROM sj_orders o WHERE o.customer_id = c.id)');
RESET pg_kappa.engine;

CREATE FUNCTION sj_check() RETURNS TABLE (view text, differences bigint) LANGUAGE sql AS $$
  SELECT v, (SELECT count(*) FROM kappa.verify(v::regclass)) FROM sj_queries ORDER BY 1
$$;
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM sj_queries;
SELECT * FROM sj_check();
SELECT * FROM sj_buyers ORDER BY id;

-- rows of the subqueries' tables come, go and move between kept rows
INSERT INTO sj_orders VALUES (100, 10, 1000, 'open'), (101, 11, 5, 'done');
UPDATE sj_orders SET customer_id = 12 WHERE id = 1;
UPDATE sj_orders SET status = 'open' WHERE customer_id = 3;
DELETE FROM sj_orders WHERE customer_id = 2;
UPDATE sj_orders SET amount = 1 WHERE customer_id = 4;
INSERT INTO sj_flags VALUES (5, 'vip'), (NULL, 'late');
DELETE FROM sj_flags WHERE customer_id = 1 AND flag = 'vip';     -- both duplicates
UPDATE sj_regions SET label = 'r9' WHERE id = 2;
UPDATE sj_customers SET region = 'r0' WHERE id = 3;                -- the kept row itself
UPDATE sj_customers SET id = 40 WHERE id = 6;
INSERT INTO sj_customers VALUES (13, 'c13', 'r0'), (14, 'c14', NULL);
DELETE FROM sj_customers WHERE id = 7;
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM sj_queries;
SELECT * FROM sj_check();
SELECT * FROM sj_idle ORDER BY id;
SELECT * FROM sj_vips ORDER BY id;

-- in one transaction, with a savepoint rolled back, and back and forth
BEGIN;
DELETE FROM sj_flags;
SAVEPOINT s;
DELETE FROM sj_orders;
ROLLBACK TO s;
UPDATE sj_orders SET status = 'done';
UPDATE sj_orders SET status = 'open' WHERE id % 3 = 0;
INSERT INTO sj_flags VALUES (8, 'vip');
COMMIT;
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM sj_queries;
SELECT * FROM sj_check();

-- TRUNCATE of a subquery's table
TRUNCATE sj_flags;
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM sj_queries;
SELECT * FROM sj_check();
SELECT count(*) AS vips FROM sj_vips;

-- replayed from the event log, in place and into a new view: the
-- subquery's table is read as it was too
SELECT kappa.capture('sj_customers') IS NOT NULL, kappa.capture('sj_orders') IS NOT NULL;
INSERT INTO sj_orders VALUES (201, 1, 500, 'open'), (202, 13, 7, 'done');
DELETE FROM sj_orders WHERE customer_id = 5;
UPDATE sj_customers SET name = 'renamed' WHERE id = 1;
SELECT kappa.wait('sj_buyers');
SELECT pg_current_wal_insert_lsn() AS mid \gset
UPDATE sj_orders SET amount = 0 WHERE customer_id = 1;
SET client_min_messages = warning;     -- the NOTICE names an LSN
SELECT kappa.replay('sj_buyers') IS NOT NULL AS replayed;
SELECT kappa.replay('sj_buyers', new_name => 'sj_buyers_green') IS NOT NULL AS replayed;
SELECT kappa.replay('sj_buyers', until_lsn => :'mid', new_name => 'sj_buyers_then') IS NOT NULL AS replayed;
RESET client_min_messages;
SELECT kappa.wait('sj_buyers') AND kappa.wait('sj_buyers_green') AS waited;
SELECT (SELECT count(*) FROM kappa.verify('sj_buyers')) AS in_place_differences,
       (SELECT count(*) FROM kappa.verify('sj_buyers_green')) AS green_differences;
-- as it was at mid: customer 1 still had orders over 50
SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM sj_buyers_then) AS then,
       (SELECT string_agg(id::text, ',' ORDER BY id) FROM sj_buyers) AS now;
SELECT kappa.drop_view('sj_buyers_green') IS NOT NULL AS dropped;
DROP TABLE sj_buyers_then;                -- a plain table: the view as it was
SELECT kappa.uncapture('sj_customers') IS NOT NULL, kappa.uncapture('sj_orders') IS NOT NULL;

-- a subquery's view reads only the columns its query names: others of
-- either table may be renamed or dropped, and the view goes on
CREATE TABLE sj_c (id int PRIMARY KEY, lim int, r int, junk text);
CREATE TABLE sj_o (id int PRIMARY KEY, cid int, amt int, junk int);
INSERT INTO sj_c SELECT i, i * 10, i, 'c' FROM generate_series(1, 6) i;
INSERT INTO sj_o SELECT i, i % 6 + 1, i * 3, i FROM generate_series(1, 30) i;
SELECT kappa.create_view(name => 'sj_s1', query => 'SELECT c.id FROM sj_c c WHERE EXISTS (SELECT 1 FROM sj_o o WHERE o.cid = c.id AND o.amt > c.lim)');
SELECT kappa.create_view(name => 'sj_s2', query => 'SELECT c.id, c.lim FROM sj_c c WHERE c.id IN (SELECT o.cid FROM sj_o o WHERE o.amt > 50) AND NOT EXISTS (SELECT 1 FROM sj_o o2 WHERE o2.cid = c.id AND o2.amt = 3)');
SELECT name, kappa.columns_read(view_id => id, source_index => 1, source => sources[1]) AS first,
       kappa.columns_read(view_id => id, source_index => 2, source => sources[2]) AS second
  FROM kappa.views WHERE name IN ('public.sj_s1', 'public.sj_s2') ORDER BY name;
ALTER TABLE sj_c RENAME COLUMN r TO rr;
ALTER TABLE sj_o RENAME COLUMN junk TO junk2;
ALTER TABLE sj_c DROP COLUMN junk;
ALTER TABLE sj_o DROP COLUMN junk2;
UPDATE sj_o SET amt = amt + 40 WHERE id % 4 = 0;
UPDATE sj_c SET lim = lim - 5, rr = 0 WHERE id % 2 = 0;
DELETE FROM sj_o WHERE id % 7 = 0;
-- only the column the subquery's condition reads of the kept row changes
UPDATE sj_c SET lim = 100000 WHERE id = 2;
SELECT kappa.wait('sj_s1') AND kappa.wait('sj_s2') AS waited;
SELECT string_agg(id::text, ',' ORDER BY id) AS s1 FROM sj_s1;
SELECT name, state FROM kappa.status WHERE name IN ('public.sj_s1', 'public.sj_s2') ORDER BY name;
SELECT (SELECT count(*) FROM kappa.verify('sj_s1')) AS s1_differences,
       (SELECT count(*) FROM kappa.verify('sj_s2')) AS s2_differences;
-- a column a subquery's condition reads still breaks the view
ALTER TABLE sj_o RENAME COLUMN amt TO amount;
SELECT name, state FROM kappa.status WHERE name IN ('public.sj_s1', 'public.sj_s2') ORDER BY name;
SELECT kappa.drop_view('sj_s1') IS NOT NULL AS dropped, kappa.drop_view('sj_s2') IS NOT NULL AS dropped;
DROP TABLE sj_c, sj_o;

SELECT kappa.drop_view(v::regclass) IS NOT NULL AS dropped FROM sj_queries ORDER BY v;
DROP FUNCTION sj_check();
DROP TABLE sj_customers, sj_orders, sj_flags, sj_regions, sj_queries;
