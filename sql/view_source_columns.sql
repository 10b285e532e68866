-- DDL on a source that leaves what a view reads alone keeps the view
-- running, as a PostgreSQL view does: a column it does not read may be
-- dropped, renamed, or given another type (with a rewrite or without),
-- even in the transaction that changes rows.  A column it reads renamed or dropped
-- breaks it, with the query's own error, and naming the column back lets
-- a rebuild bring it back.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE TABLE sc_customers (id int PRIMARY KEY, name text, region text,
                           junk text, code varchar(5), memo varchar(5), width int);
CREATE TABLE sc_orders (id int PRIMARY KEY, customer_id int, amount numeric, note text);
INSERT INTO sc_customers SELECT g, 'c' || g, 'r' || g % 3, 'j', 'x', 'm', g FROM generate_series(1, 10) g;
INSERT INTO sc_orders SELECT g, 1 + g % 10, g * 1.5, 'n' FROM generate_series(1, 100) g;
SET client_min_messages = warning;
SELECT kappa.create_view(name => 'sc_by_region',
       query => $$SELECT c.region, sum(o.amount) AS total, count(*) AS n
                    FROM sc_orders o JOIN sc_customers c ON c.id = o.customer_id GROUP BY c.region$$) IS NOT NULL AS created;
SELECT kappa.create_view(name => 'sc_names',
       query => $$SELECT o.id, c.name, o.amount FROM sc_orders o JOIN sc_customers c ON c.id = o.customer_id$$) IS NOT NULL AS created;
SELECT kappa.create_view(name => 'sc_all', query => $$SELECT * FROM sc_orders$$) IS NOT NULL AS created;
RESET client_min_messages;

-- columns no view reads: dropped in the middle of a transaction that
-- changes rows before and after, renamed, given a wider or another type
BEGIN;
UPDATE sc_customers SET junk = 'k', name = 'before' WHERE id = 4;
ALTER TABLE sc_customers DROP COLUMN junk;
UPDATE sc_customers SET name = 'after' WHERE id = 2;
INSERT INTO sc_orders VALUES (101, 4, 7, 'x');
COMMIT;
ALTER TABLE sc_customers RENAME COLUMN code TO code2;
ALTER TABLE sc_customers ALTER COLUMN code2 TYPE varchar(50);
BEGIN;
UPDATE sc_customers SET memo = 'short', name = 'mid' WHERE id = 3;
ALTER TABLE sc_customers ALTER COLUMN memo TYPE text;
UPDATE sc_customers SET memo = repeat('long', 10), name = 'late' WHERE id = 3;
COMMIT;
INSERT INTO sc_orders VALUES (102, 3, 20, 'y');
UPDATE sc_customers SET code2 = 'abcdefghij', region = 'r9' WHERE id = 5;
DELETE FROM sc_orders WHERE id = 7;
SELECT kappa.wait('sc_by_region') AND kappa.wait('sc_names') AS waited;
SELECT name, state, last_error FROM kappa.status WHERE name LIKE '%sc\_%' ORDER BY name;
SELECT count(*) AS differing FROM kappa.verify('sc_by_region');
SELECT count(*) AS differing FROM kappa.verify('sc_names');
SELECT * FROM sc_names WHERE id IN (101, 102) ORDER BY id;
-- the source renamed after such changes: followed, as ever
ALTER TABLE sc_customers RENAME TO sc_clients;
ALTER TABLE sc_clients RENAME TO sc_customers;
SELECT name, state FROM kappa.status WHERE name LIKE '%sc\_%' ORDER BY name;

-- a column the view reads through *: it breaks, naming the column
ALTER TABLE sc_orders DROP COLUMN note;
SELECT name, state, last_error FROM kappa.status WHERE name = 'public.sc_all';

-- a rewrite that computes a column no view reads again (int to bigint,
-- its values' form changes), in the middle of a transaction that changes
-- rows before and after: the views go on
BEGIN;
UPDATE sc_customers SET width = 5, name = 'pre' WHERE id = 6;
ALTER TABLE sc_customers ALTER COLUMN width TYPE bigint USING width * 10000000000;
UPDATE sc_customers SET width = width + 1, name = 'post' WHERE id IN (6, 7);
INSERT INTO sc_orders VALUES (104, 6, 11);
COMMIT;
SELECT kappa.wait('sc_by_region') AND kappa.wait('sc_names') AS waited;
SELECT name, state FROM kappa.status WHERE name LIKE '%sc\_%' ORDER BY name;
SELECT count(*) AS differing FROM kappa.verify('sc_by_region');
SELECT count(*) AS differing FROM kappa.verify('sc_names');
SELECT * FROM sc_names WHERE id = 104;
-- one that computes a column a view reads again, to the same type: the
-- view that reads it breaks, naming it (sc_by_region reads region), the
-- one that does not goes on (sc_names); built again, it goes on too
ALTER TABLE sc_customers ALTER COLUMN region TYPE text USING upper(region);
SELECT name, state, last_error FROM kappa.status WHERE name LIKE '%sc\_%' ORDER BY name;
SELECT kappa.alter_view(view => 'sc_by_region', rebuild => true) IS NOT NULL AS rebuilt;
SELECT name, state FROM kappa.status WHERE name LIKE '%sc\_%' ORDER BY name;

-- a rewrite of a column that only a broken view reads, in a transaction
-- that changes rows: the running view that does not read it goes on
CREATE TABLE sc_rw (id int PRIMARY KEY, x int, y int);
INSERT INTO sc_rw SELECT g, g, g FROM generate_series(1, 5) g;
SET client_min_messages = error;
SELECT kappa.create_view('sc_rw_y', 'SELECT id, y FROM sc_rw') IS NOT NULL AS created;
SELECT kappa.create_view('sc_rw_x', 'SELECT id, x FROM sc_rw') IS NOT NULL AS created;
ALTER TABLE sc_rw ALTER COLUMN y TYPE bigint;
RESET client_min_messages;
INSERT INTO sc_rw VALUES (6, 6, 6);
SELECT kappa.wait('sc_rw_x') AS waited;
BEGIN;
INSERT INTO sc_rw VALUES (7, 7, 7);
ALTER TABLE sc_rw ALTER COLUMN y TYPE int;
INSERT INTO sc_rw VALUES (8, 8, 8);
COMMIT;
SELECT kappa.wait('sc_rw_x') AS waited;
SELECT name, state FROM kappa.status WHERE name LIKE 'public.sc\_rw%' ORDER BY name;
SELECT count(*) AS differing FROM kappa.verify('sc_rw_x');
SET client_min_messages = warning;
SELECT kappa.drop_view(v) FROM unnest(ARRAY['sc_rw_x', 'sc_rw_y']) v;
RESET client_min_messages;
DROP TABLE sc_rw;

-- the same while the view is paused: resumed, the worker starts over
-- from the view's position, with the views' changes decoded again (every
-- column kept, as the views are not known yet), and the batch holds the
-- rows from before and after the rewrite; the view that does not read the
-- column goes on (it once broke), the one that reads it is broken by the
-- ALTER TABLE itself
CREATE TABLE sc_pz (id int PRIMARY KEY, t text, z int DEFAULT 0);
INSERT INTO sc_pz VALUES (1, 'a'), (2, 'b');
SET client_min_messages = error;
SELECT kappa.create_view('sc_pz_t', 'SELECT id, t FROM sc_pz') IS NOT NULL AS created;
SELECT kappa.create_view('sc_pz_z', 'SELECT id, z FROM sc_pz') IS NOT NULL AS created;
SELECT kappa.alter_view('sc_pz_t', paused => true);
UPDATE sc_pz SET t = 'c', z = 5 WHERE id = 1;
ALTER TABLE sc_pz ALTER COLUMN z TYPE bigint;
UPDATE sc_pz SET t = 'd', z = 6 WHERE id = 2;
SELECT kappa.alter_view('sc_pz_t', paused => false);
RESET client_min_messages;
SELECT kappa.wait('sc_pz_t') AS waited;
SELECT * FROM sc_pz_t ORDER BY id;
SELECT name, state FROM kappa.status WHERE name LIKE 'public.sc\_pz%' ORDER BY name;
SELECT count(*) AS differing FROM kappa.verify('sc_pz_t');
SET client_min_messages = warning;
SELECT kappa.drop_view(v) FROM unnest(ARRAY['sc_pz_t', 'sc_pz_z']) v;
RESET client_min_messages;
DROP TABLE sc_pz;

-- the same through a partitioned table: the rewrite is of each partition,
-- the view reads the parent
CREATE TABLE sc_part (id int, g int, v int, junk int) PARTITION BY RANGE (id);
CREATE TABLE sc_part1 PARTITION OF sc_part FOR VALUES FROM (0) TO (50);
CREATE TABLE sc_part2 PARTITION OF sc_part FOR VALUES FROM (50) TO (1000);
ALTER TABLE sc_part ADD PRIMARY KEY (id);
INSERT INTO sc_part SELECT g, g % 5, g, g FROM generate_series(1, 100) g;
SET client_min_messages = warning;
SELECT kappa.create_view('sc_pv', 'SELECT g, sum(v) AS s FROM sc_part GROUP BY g') IS NOT NULL AS created;
RESET client_min_messages;
ALTER TABLE sc_part ALTER COLUMN junk TYPE bigint;
UPDATE sc_part SET v = v + 1, junk = junk * 10000000000 WHERE id % 7 = 0;
SELECT kappa.wait('sc_pv') AS waited;
SELECT name, state FROM kappa.status WHERE name = 'public.sc_pv';
SELECT count(*) AS differing FROM kappa.verify('sc_pv');
ALTER TABLE sc_part ALTER COLUMN v TYPE int USING v + 1;
SELECT name, state, last_error FROM kappa.status WHERE name = 'public.sc_pv';
SET client_min_messages = warning;
SELECT kappa.drop_view('sc_pv');
RESET client_min_messages;
DROP TABLE sc_part;

-- a column the view reads renamed: broken with the query's error; named
-- back, the view is built again
ALTER TABLE sc_customers RENAME COLUMN region TO area;
SELECT name, state, last_error FROM kappa.status WHERE name LIKE '%sc\_%' ORDER BY name;
ALTER TABLE sc_customers RENAME COLUMN area TO region;
SELECT kappa.alter_view(view => 'sc_by_region', rebuild => true) IS NOT NULL AS rebuilt;
INSERT INTO sc_orders VALUES (103, 5, 30);
SELECT kappa.wait('sc_by_region') AS waited;
SELECT name, state FROM kappa.status WHERE name LIKE '%sc\_%' ORDER BY name;
SELECT count(*) AS differing FROM kappa.verify('sc_by_region');

-- six sources changed in one batch take the rule's linear form, which
-- reads each source as it was before the batch (o_<n>): a column dropped
-- from one of them, which the view does not read, is not read there
CREATE TABLE sc_t1 (id int PRIMARY KEY, k int, v int, junk text);
CREATE TABLE sc_t2 (id int PRIMARY KEY, k int, v int, junk text);
CREATE TABLE sc_t3 (id int PRIMARY KEY, k int, v int, junk text);
CREATE TABLE sc_t4 (id int PRIMARY KEY, k int, v int, junk text);
CREATE TABLE sc_t5 (id int PRIMARY KEY, k int, v int, junk text);
CREATE TABLE sc_t6 (id int PRIMARY KEY, k int, v int, junk text);
INSERT INTO sc_t1 SELECT g, g % 4, g, 'j' FROM generate_series(1, 8) g;
INSERT INTO sc_t2 SELECT * FROM sc_t1;
INSERT INTO sc_t3 SELECT * FROM sc_t1;
INSERT INTO sc_t4 SELECT * FROM sc_t1;
INSERT INTO sc_t5 SELECT * FROM sc_t1;
INSERT INTO sc_t6 SELECT * FROM sc_t1;
SET client_min_messages = warning;
SELECT kappa.create_view(name => 'sc_six',
       query => $$SELECT a.k, sum(a.v + b.v + c.v + d.v + e.v + f.v) AS s, count(*) AS n
                    FROM sc_t1 a JOIN sc_t2 b ON b.id = a.id JOIN sc_t3 c ON c.id = a.id
                    JOIN sc_t4 d ON d.id = a.id JOIN sc_t5 e ON e.id = a.id JOIN sc_t6 f ON f.id = a.id
                   GROUP BY a.k$$) IS NOT NULL AS created;
RESET client_min_messages;
ALTER TABLE sc_t3 DROP COLUMN junk;
ALTER TABLE sc_t5 DROP COLUMN junk;
BEGIN;
UPDATE sc_t1 SET v = v + 1 WHERE id <= 3;
UPDATE sc_t2 SET v = v + 2 WHERE id >= 6;
UPDATE sc_t3 SET v = v * 2 WHERE id % 2 = 0;
DELETE FROM sc_t4 WHERE id = 5;
UPDATE sc_t5 SET v = 0 WHERE id = 1;
INSERT INTO sc_t6 VALUES (9, 1, 9, 'j');
COMMIT;
SELECT kappa.wait('sc_six') AS waited;
SELECT name, state, last_error FROM kappa.status WHERE name = 'public.sc_six';
SELECT count(*) AS differing FROM kappa.verify('sc_six');
SELECT * FROM sc_six ORDER BY k;

SET client_min_messages = warning;
SELECT kappa.drop_view(v) FROM unnest(ARRAY['sc_by_region', 'sc_names', 'sc_all', 'sc_six']) v;
RESET client_min_messages;
DROP TABLE sc_customers, sc_orders, sc_t1, sc_t2, sc_t3, sc_t4, sc_t5, sc_t6;

-- the DDL checks read the columns a view reads from the catalog: no code
-- of the view's owner runs in another command's transaction (parsing the
-- query again would check the domain of its array literal, whatever
-- command fired the check)
CREATE FUNCTION sc_check(int) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
    RAISE WARNING 'sc_check ran as % in: %', current_user, current_query();
    RETURN true;
END $$;
CREATE DOMAIN sc_dom AS int CHECK (sc_check(VALUE));
CREATE TABLE sc_d (id int PRIMARY KEY, x int, junk int);
INSERT INTO sc_d SELECT g, g, g FROM generate_series(1, 5) g;
SET client_min_messages = error;
SELECT kappa.create_view('sc_dv', $$SELECT id, x FROM sc_d WHERE x <> ALL ('{100,200}'::sc_dom[])$$) IS NOT NULL AS created;
RESET client_min_messages;
-- (a WARNING from sc_check below would be the check running)
ALTER TABLE sc_d DROP COLUMN junk;
CREATE TABLE sc_other (id int);
ALTER TABLE sc_other ADD COLUMN v int;
ALTER TABLE sc_d ADD COLUMN note text;
UPDATE sc_d SET x = 300 WHERE id = 1;
SELECT kappa.wait('sc_dv') AS waited;
SELECT name, state FROM kappa.status WHERE name = 'public.sc_dv';
SET client_min_messages = error;
SELECT count(*) AS differing FROM kappa.verify('sc_dv');
RESET client_min_messages;

-- a rename of the source prints the view's query again from the parse
-- tree kept with it, and parses no text (no WARNING from sc_check)
ALTER TABLE sc_d RENAME TO sc_d2;
SELECT canonical ~ 'public\.sc_d2\M' AS follows FROM kappa.views WHERE name = 'public.sc_dv';
-- a view without a tree (made before 0.9): its query is parsed as its
-- owner once (the WARNING below) and the tree written for the next rename
UPDATE kappa.views SET query_tree = NULL, query_tree_catversion = NULL WHERE name = 'public.sc_dv';
ALTER TABLE sc_d2 RENAME TO sc_d3;
SELECT canonical ~ 'public\.sc_d3\M' AS follows, query_tree IS NOT NULL AS has_tree
  FROM kappa.views WHERE name = 'public.sc_dv';
ALTER TABLE sc_d3 RENAME TO sc_d;
-- the derived table altered: its columns are checked against that tree,
-- not against the text parsed again (no WARNING)
ALTER TABLE sc_dv ADD COLUMN extra int;
UPDATE sc_d SET x = 301 WHERE id = 2;
SELECT kappa.wait('sc_dv') AS waited;
SET client_min_messages = error;
SELECT count(*) AS differing FROM kappa.verify('sc_dv');
RESET client_min_messages;

-- a composite type whose attributes are renamed: a view that reads a
-- column of it breaks (its query names the fields); one that does not
-- read it, and a view over an enum given a new value, go on
CREATE TYPE sc_pair AS (a int, b int);
CREATE TYPE sc_color AS ENUM ('red', 'green');
CREATE TABLE sc_p (id int PRIMARY KEY, pr sc_pair, c sc_color, other text);
INSERT INTO sc_p SELECT g, ROW(g, -g)::sc_pair, 'red', 'o' FROM generate_series(1, 5) g;
SET client_min_messages = warning;
SELECT kappa.create_view('sc_pv', $$SELECT id, (pr).a AS a FROM sc_p$$) IS NOT NULL AS created;
SELECT kappa.create_view('sc_ov', $$SELECT id, other, c FROM sc_p$$) IS NOT NULL AS created;
RESET client_min_messages;
ALTER TYPE sc_color ADD VALUE 'blue';
ALTER TYPE sc_pair RENAME ATTRIBUTE a TO t;
SELECT name, state, last_error FROM kappa.status WHERE name IN ('public.sc_pv', 'public.sc_ov') ORDER BY name;

-- the same for a table's row type altered with ALTER TABLE, a composite
-- type inside another or under a range, and an enum whose value the
-- query names (a view of the enum column alone goes on)
CREATE TABLE sc_rowtype (x int, y int);
CREATE TABLE sc_t (id int PRIMARY KEY, c sc_rowtype, other int);
INSERT INTO sc_t SELECT g, ROW(g, 100 + g)::sc_rowtype, g FROM generate_series(1, 5) g;
CREATE TYPE sc_inner AS (x int, y int);
CREATE TABLE sc_holder (h sc_inner);
CREATE TABLE sc_nest (id int PRIMARY KEY, c sc_holder);
INSERT INTO sc_nest SELECT g, ROW(ROW(g, 10 * g)::sc_inner)::sc_holder FROM generate_series(1, 4) g;
CREATE TYPE sc_cpx AS (x int, y int);
CREATE TYPE sc_cpxr AS RANGE (subtype = sc_cpx);
CREATE TABLE sc_rg (id int PRIMARY KEY, r sc_cpxr);
INSERT INTO sc_rg SELECT g, sc_cpxr(ROW(g, 1)::sc_cpx, ROW(g + 1, 1)::sc_cpx) FROM generate_series(1, 4) g;
CREATE TYPE sc_col AS ENUM ('red', 'green', 'blue');
CREATE TABLE sc_e (id int PRIMARY KEY, c sc_col);
INSERT INTO sc_e SELECT g, (ARRAY['red', 'green', 'blue'])[1 + g % 3]::sc_col FROM generate_series(1, 9) g;
SET client_min_messages = warning;
SELECT v, kappa.create_view(v, q) IS NOT NULL AS created
  FROM (VALUES ('sc_rowv', 'SELECT id, (c).x AS cx FROM sc_t'),
               ('sc_rowv_other', 'SELECT id, other FROM sc_t'),
               ('sc_nestv', 'SELECT id, ((c).h).x AS hx FROM sc_nest'),
               ('sc_rangev', 'SELECT id, (lower(r)).x AS lx FROM sc_rg'),
               ('sc_enumv', $$SELECT id FROM sc_e WHERE c = 'red'$$),
               ('sc_enumv_all', 'SELECT id, c FROM sc_e')) q(v, q);
RESET client_min_messages;
ALTER TABLE sc_rowtype RENAME COLUMN x TO tmp;
ALTER TYPE sc_inner RENAME ATTRIBUTE x TO t;
ALTER TYPE sc_cpx RENAME ATTRIBUTE x TO t;
ALTER TYPE sc_col RENAME VALUE 'red' TO 'crimson';
SELECT name, state FROM kappa.status
 WHERE name IN ('public.sc_rowv', 'public.sc_rowv_other', 'public.sc_nestv', 'public.sc_rangev',
                'public.sc_enumv', 'public.sc_enumv_all') ORDER BY name;
SET client_min_messages = warning;
SELECT kappa.drop_view(v) FROM unnest(ARRAY['sc_rowv', 'sc_rowv_other', 'sc_nestv', 'sc_rangev', 'sc_enumv', 'sc_enumv_all']) v;
RESET client_min_messages;
DROP TABLE sc_t, sc_rowtype, sc_nest, sc_holder, sc_rg, sc_e;
DROP TYPE sc_inner, sc_cpxr, sc_cpx, sc_col;

-- a view's query is kept, and read again, in one form whatever the
-- settings of the session that made it: dates, intervals and strings as
-- their writer meant them
CREATE TABLE sc_ev (id int PRIMARY KEY, d date, iv interval, s text);
INSERT INTO sc_ev SELECT g, date '2024-01-01' + g, make_interval(hours => g - 30), 'a\' FROM generate_series(1, 40) g;
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'sql_standard';
SET standard_conforming_strings = off;
SET client_min_messages = error;
SELECT kappa.create_view('sc_evv', $$SELECT id, d FROM sc_ev WHERE d < '01/02/2024'::date AND iv > '-1 2:00:00'::interval AND s = 'a\\'$$) IS NOT NULL AS created;
RESET client_min_messages;
RESET standard_conforming_strings;
RESET IntervalStyle;
RESET DateStyle;
SELECT canonical FROM kappa.views WHERE name = 'public.sc_evv';
DELETE FROM sc_ev WHERE id = 10;
UPDATE sc_ev SET d = '2024-01-25' WHERE id = 35;
SELECT kappa.wait('sc_evv') AS waited;
SELECT count(*) AS differing FROM kappa.verify('sc_evv');
SELECT count(*) AS rows, min(d), max(d) FROM sc_evv;

SET client_min_messages = warning;
SELECT kappa.drop_view(v) FROM unnest(ARRAY['sc_dv', 'sc_pv', 'sc_ov', 'sc_evv']) v;
RESET client_min_messages;
DROP TABLE sc_d, sc_other, sc_p, sc_ev;
DROP DOMAIN sc_dom;
DROP FUNCTION sc_check(int);
DROP TYPE sc_pair, sc_color;

-- a view's code that raises query_canceled itself while the view's query
-- is read again (here: for a rename of its source) fails that step, and
-- does not cancel the command of the role that renamed the table
CREATE FUNCTION sc_fake_cancel(int) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('sc.cancel', true) = 'on' THEN
        RAISE EXCEPTION 'not a cancel' USING ERRCODE = 'query_canceled';
    END IF;
    RETURN true;
END $$;
CREATE DOMAIN sc_fc AS int CHECK (sc_fake_cancel(VALUE));
CREATE TABLE sc_r (id int PRIMARY KEY, x int);
INSERT INTO sc_r SELECT g, g FROM generate_series(1, 5) g;
SET client_min_messages = warning;
SELECT kappa.create_view('sc_rv', $$SELECT id, x FROM sc_r WHERE x <> ALL ('{100}'::sc_fc[])$$) IS NOT NULL AS created;
RESET client_min_messages;
SET sc.cancel = 'on';
ALTER TABLE sc_r RENAME TO sc_r2;
RESET sc.cancel;
ALTER TABLE sc_r2 RENAME TO sc_r;
UPDATE sc_r SET x = 7 WHERE id = 1;
SELECT kappa.wait('sc_rv') AS waited;
SELECT count(*) AS differing FROM kappa.verify('sc_rv');
SET client_min_messages = warning;
SELECT kappa.drop_view('sc_rv');
RESET client_min_messages;
DROP TABLE sc_r;
DROP DOMAIN sc_fc;
DROP FUNCTION sc_fake_cancel(int);
