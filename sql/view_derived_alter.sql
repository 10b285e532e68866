-- A derived table's columns are its query's: ALTER TABLE that adds, drops
-- or renames a column of it, or changes a column's type, is refused (the
-- view would break at its next change); other ALTER TABLE (storage
-- parameters, constraints, indexes) goes through, for every kind of view.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE TABLE da_orders (id int PRIMARY KEY, customer_id int, amount numeric(10,2));
CREATE TABLE da_customers (id int PRIMARY KEY, name text);
CREATE TABLE da_events (kind text, n int);                        -- no key
INSERT INTO da_customers VALUES (1, 'ann'), (2, 'bob');
INSERT INTO da_orders VALUES (1, 1, 10), (2, 2, 20), (3, 1, 5);
INSERT INTO da_events VALUES ('a', 1), ('a', 1), ('b', 2);

CREATE TABLE da_queries (v text, q text);
INSERT INTO da_queries VALUES
 ('da_totals', $$SELECT c.name, sum(o.amount) AS total, count(*) AS n FROM da_orders o JOIN da_customers c ON c.id = o.customer_id GROUP BY c.name$$),
 ('da_rows', $$SELECT o.id, c.name, o.amount FROM da_orders o JOIN da_customers c ON c.id = o.customer_id$$),
 ('da_bag', $$SELECT kind, n FROM da_events$$),
 ('da_kinds', $$SELECT DISTINCT kind FROM da_events$$),
 ('da_left', $$SELECT c.id, c.name, o.amount FROM da_customers c LEFT JOIN da_orders o ON o.customer_id = c.id$$);
SET client_min_messages = warning;
SELECT v, kappa.create_view(v, q) IS NOT NULL AS created FROM da_queries ORDER BY v;
RESET client_min_messages;

-- what goes through
ALTER TABLE da_totals SET (fillfactor = 90);
ALTER TABLE da_rows ADD CONSTRAINT da_rows_amount CHECK (amount >= 0);
ALTER TABLE da_bag ALTER COLUMN kind SET STATISTICS 200;
ALTER TABLE da_kinds SET (autovacuum_enabled = off);
ALTER TABLE da_left ALTER COLUMN name SET STORAGE EXTERNAL;
CREATE INDEX ON da_rows (name);

-- what is refused, with what differs
ALTER TABLE da_totals ADD COLUMN note text;
ALTER TABLE da_totals DROP COLUMN n;
ALTER TABLE da_rows RENAME COLUMN amount TO price;
ALTER TABLE da_rows ALTER COLUMN amount TYPE numeric;
ALTER TABLE da_bag ALTER COLUMN n TYPE bigint;
ALTER TABLE da_kinds ADD COLUMN extra int DEFAULT 0;
ALTER TABLE da_left DROP COLUMN amount;
-- a typmod the query does not give, a collation
ALTER TABLE da_totals ALTER COLUMN total TYPE numeric(6,1);
ALTER TABLE da_totals ALTER COLUMN name TYPE text COLLATE "C";
-- through a parent the derived table was made to inherit from
CREATE TABLE da_parent (name text, total numeric, n bigint);
ALTER TABLE da_totals INHERIT da_parent;
ALTER TABLE da_parent ADD COLUMN extra int DEFAULT 42;
ALTER TABLE da_parent RENAME COLUMN total TO tot;
ALTER TABLE da_totals NO INHERIT da_parent;
DROP TABLE da_parent;

-- the views go on, exact
INSERT INTO da_orders VALUES (4, 2, 7), (5, 3, 1);
INSERT INTO da_customers VALUES (3, 'cyd');
UPDATE da_orders SET amount = amount + 1 WHERE id = 1;
INSERT INTO da_events VALUES ('c', 3), ('a', 1);
DELETE FROM da_events WHERE kind = 'b';
SELECT bool_and(kappa.wait(v::regclass)) AS waited FROM da_queries;
SELECT q.v, v.state, (SELECT count(*) FROM kappa.verify(q.v::regclass)) AS differences
  FROM da_queries q JOIN kappa.views v ON v.relid = q.v::regclass ORDER BY 1;

-- while a source is renamed the view's query cannot be read: other DDL
-- on the derived table still goes through
ALTER TABLE da_events RENAME TO da_events_moved;
ALTER TABLE da_bag SET (fillfactor = 80);
ALTER TABLE da_events_moved RENAME TO da_events;

-- a source gains a column: engine 2's views go on (no view made before
-- reads it), also when the worker meets it in the middle of a batch, with
-- changes before it, after it and in its transaction, and when a column
-- added is dropped again, whether the query joins with JOIN syntax
-- (da_rows, da_totals) or in WHERE (da_rows_w, da_totals_w); an engine 1
-- view breaks at once (its copy of the source must have every column).
-- rebuild => true builds a view again around its table (contents,
-- internal tables), keeping the table's grants and the indexes its owner
-- made, for a broken view as for a running one
SET pg_kappa.engine = 1;
SELECT kappa.create_view('da_amounts', 'SELECT id, amount FROM da_orders') IS NOT NULL AS created;
RESET pg_kappa.engine;
SET client_min_messages = warning;
SELECT kappa.create_view('da_rows_w', 'SELECT o.id, c.name, o.amount FROM da_orders o, da_customers c WHERE c.id = o.customer_id') IS NOT NULL AS created;
SELECT kappa.create_view('da_totals_w', 'SELECT c.name, sum(o.amount) AS total, count(*) AS n FROM da_orders o, da_customers c WHERE c.id = o.customer_id GROUP BY c.name') IS NOT NULL AS created;
CREATE TABLE da_regions (name text PRIMARY KEY, region text);
INSERT INTO da_regions VALUES ('ann', 'north'), ('bob', 'south'), ('cyd', 'north');
SELECT kappa.create_view('da_deep', 'SELECT o.id, name, r.region, o.amount FROM da_orders o JOIN da_customers c ON c.id = o.customer_id JOIN da_regions r USING (name)') IS NOT NULL AS created;
SELECT kappa.create_view('da_by_customer', 'SELECT customer_id, count(*) AS n, max(amount) AS top FROM da_orders GROUP BY customer_id') IS NOT NULL AS created;
RESET client_min_messages;
GRANT SELECT ON da_rows TO PUBLIC;
SELECT kappa.alter_view(v, paused => true) FROM unnest('{da_rows,da_totals,da_rows_w,da_totals_w,da_by_customer,da_deep,da_left}'::regclass[]) v;
INSERT INTO da_orders VALUES (8, 2, 3);
BEGIN;
UPDATE da_orders SET amount = amount + 2 WHERE id = 2;
ALTER TABLE da_orders ADD COLUMN note text;
INSERT INTO da_orders VALUES (9, 1, 4, 'nine');
COMMIT;
UPDATE da_orders SET note = 'three', amount = amount + 1 WHERE id = 3;
ALTER TABLE da_orders ADD COLUMN tag int DEFAULT 7;
DELETE FROM da_orders WHERE id = 8;
UPDATE da_orders SET customer_id = 2 WHERE tag = 7 AND id = 9;
ALTER TABLE da_orders DROP COLUMN tag;
ALTER TABLE da_orders ADD COLUMN code text DEFAULT 'c';
INSERT INTO da_orders VALUES (10, 2, 6, 'ten');
SELECT kappa.alter_view(v, paused => false) FROM unnest('{da_rows,da_totals,da_rows_w,da_totals_w,da_by_customer,da_deep,da_left}'::regclass[]) v;
SELECT bool_and(kappa.wait(v)) AS waited FROM unnest('{da_rows,da_totals,da_rows_w,da_totals_w,da_by_customer,da_deep,da_left}'::regclass[]) v;
SELECT v.name, (SELECT count(*) FROM kappa.verify(v.relid)) AS differences
  FROM kappa.views v WHERE v.name IN ('public.da_rows', 'public.da_totals', 'public.da_rows_w', 'public.da_totals_w', 'public.da_by_customer', 'public.da_deep', 'public.da_left') ORDER BY 1;
SELECT * FROM da_rows ORDER BY id;
SELECT * FROM da_totals ORDER BY name;
-- a batch that starts after the columns were added
INSERT INTO da_orders VALUES (11, 1, 2, 'eleven');
UPDATE da_orders SET note = NULL, amount = 1 WHERE id = 9;
SELECT bool_and(kappa.wait(v)) AS waited FROM unnest('{da_rows,da_totals,da_rows_w,da_totals_w,da_by_customer,da_deep,da_left}'::regclass[]) v;
SELECT v.name, (SELECT count(*) FROM kappa.verify(v.relid)) AS differences
  FROM kappa.views v WHERE v.name IN ('public.da_rows', 'public.da_totals', 'public.da_rows_w', 'public.da_totals_w', 'public.da_by_customer', 'public.da_deep', 'public.da_left') ORDER BY 1;
-- engine 1: broken
SELECT name, state FROM kappa.views WHERE name = 'public.da_amounts';
-- replay from the log, in place and into a new view, after the column
-- was added (the log's images name their columns)
SELECT kappa.capture('da_orders') IS NOT NULL AND kappa.capture('da_customers') IS NOT NULL AS captured;
UPDATE da_orders SET amount = amount + 3, note = 'r' WHERE id IN (2, 10);
SELECT kappa.wait('da_totals_w') AS waited;
SET client_min_messages = warning;
SELECT kappa.replay('da_totals_w');
SELECT kappa.replay('da_rows_w', new_name => 'da_rows_green');
RESET client_min_messages;
SELECT count(*) AS differences FROM (
  (SELECT * FROM da_rows_w EXCEPT ALL SELECT * FROM da_rows_green)
  UNION ALL (SELECT * FROM da_rows_green EXCEPT ALL SELECT * FROM da_rows_w)) d;
SELECT count(*) AS differences FROM kappa.verify('da_totals_w');
SELECT kappa.drop_view('da_rows_green');
SELECT kappa.uncapture('da_orders'), kappa.uncapture('da_customers');
-- rebuilt
SELECT kappa.alter_view('da_amounts', rebuild => true);
SELECT kappa.alter_view('da_rows', rebuild => true);
SELECT kappa.alter_view(view => 'da_totals', rebuild => true);
INSERT INTO da_orders VALUES (6, 1, 2, 'six'), (7, 3, 4, NULL);
UPDATE da_orders SET note = 'one', amount = amount + 1 WHERE id = 1;
SELECT kappa.wait('da_rows') AND kappa.wait('da_totals') AND kappa.wait('da_amounts') AS waited;
SELECT v.name, v.state, (SELECT count(*) FROM kappa.verify(v.relid)) AS differences
  FROM kappa.views v WHERE v.name IN ('public.da_rows', 'public.da_totals', 'public.da_amounts') ORDER BY 1;
SELECT kappa.drop_view(v) FROM unnest('{da_amounts,da_rows_w,da_totals_w,da_by_customer,da_deep}'::regclass[]) v;
DROP TABLE da_regions;
SELECT has_table_privilege('public', 'da_rows', 'SELECT') AS granted,
       (SELECT count(*) FROM pg_indexes WHERE tablename = 'da_rows' AND indexdef LIKE '%(name)%') AS owner_index;

-- a paused view rebuilt stays paused (and resumes when asked to)
SELECT kappa.alter_view('da_rows', paused => true);
SELECT kappa.alter_view('da_rows', rebuild => true);
SELECT state FROM kappa.views WHERE name = 'public.da_rows';
SELECT kappa.alter_view('da_rows', paused => false, rebuild => true);
SELECT state FROM kappa.views WHERE name = 'public.da_rows';

-- a column the view reads changed its type: the stored query would now
-- read it through a cast it did not have, and mean something else after
-- another change; the rebuild is refused
CREATE TABLE da_typed (id int PRIMARY KEY, a int, b text);
INSERT INTO da_typed VALUES (1, 1, 'b1'), (2, 1, 'b22');
SELECT kappa.create_view('da_typed_max', 'SELECT a, count(*) AS n, max(b) AS top FROM da_typed GROUP BY a') IS NOT NULL AS created;
ALTER TABLE da_typed ALTER COLUMN b TYPE varchar(20);
SELECT state FROM kappa.views WHERE name = 'public.da_typed_max';
SELECT kappa.alter_view('da_typed_max', rebuild => true);
SELECT state FROM kappa.views WHERE name = 'public.da_typed_max';
SELECT kappa.drop_view('da_typed_max');
DROP TABLE da_typed;

-- a source column widened (varchar(10) to varchar(20)): the view's query
-- reads it as it is, but its table's column is still the old type; the
-- rebuild says how to give it the new one
CREATE TABLE da_wide (id int PRIMARY KEY, a varchar(10));
INSERT INTO da_wide VALUES (1, 'x');
SELECT kappa.create_view('da_wide_v', 'SELECT a, count(*) AS n FROM da_wide GROUP BY a') IS NOT NULL AS created;
ALTER TABLE da_wide ALTER COLUMN a TYPE varchar(20);
SELECT state FROM kappa.views WHERE name = 'public.da_wide_v';
SELECT kappa.alter_view(view => 'da_wide_v', rebuild => true);
ALTER TABLE public.da_wide_v ALTER COLUMN a TYPE character varying(20);
SELECT kappa.alter_view(view => 'da_wide_v', rebuild => true);
INSERT INTO da_wide VALUES (2, 'a longer value');
SELECT kappa.wait('da_wide_v');
SELECT * FROM da_wide_v ORDER BY a;
SELECT kappa.drop_view('da_wide_v');
DROP TABLE da_wide;
-- the same where the new type rewrites the table (int to bigint), which a
-- running view's table may not be: a broken one's may, as the hint says
CREATE TABLE da_div (id int PRIMARY KEY, a int, b int);
INSERT INTO da_div VALUES (1, 6, 2);
SELECT kappa.create_view('da_div_v', 'SELECT id, a / b AS q FROM da_div') IS NOT NULL AS created;
ALTER TABLE public.da_div_v ALTER COLUMN q TYPE bigint;
ALTER TABLE da_div ALTER COLUMN a TYPE bigint;
SELECT state FROM kappa.views WHERE name = 'public.da_div_v';
SELECT kappa.alter_view(view => 'da_div_v', rebuild => true);
ALTER TABLE public.da_div_v ALTER COLUMN q TYPE bigint;
SELECT kappa.alter_view(view => 'da_div_v', rebuild => true);
INSERT INTO da_div VALUES (2, 9000000000, 3);
SELECT kappa.wait('da_div_v');
SELECT * FROM da_div_v ORDER BY id;
SELECT kappa.drop_view('da_div_v');
DROP TABLE da_div;

-- x BETWEEN a AND b AND y is stored as two nested ANDs, which read back as
-- one: the text differs in its parentheses only, and the rebuild goes on
CREATE TABLE da_between (id int PRIMARY KEY, amount numeric, status text);
INSERT INTO da_between VALUES (1, 15, 'paid'), (2, 25, 'paid'), (3, 12, 'open');
SELECT kappa.create_view('da_between_v', $$SELECT id, amount FROM da_between WHERE amount BETWEEN 10 AND 20 AND status = 'paid' OR status = '(x)'$$) IS NOT NULL AS created;
SELECT kappa.alter_view(view => 'da_between_v', rebuild => true);
SELECT state FROM kappa.views WHERE name = 'public.da_between_v';
INSERT INTO da_between VALUES (4, 11, 'paid'), (5, 99, '(x)');
SELECT kappa.wait('da_between_v');
SELECT * FROM da_between_v ORDER BY id;
SELECT kappa.drop_view('da_between_v');
DROP TABLE da_between;

-- an ordinary table is not concerned
CREATE TABLE da_plain (a int);
ALTER TABLE da_plain ADD COLUMN b int;
DROP TABLE da_plain;

SELECT kappa.drop_view(v::regclass) FROM da_queries ORDER BY v;
DROP TABLE da_orders, da_customers, da_events, da_queries;
