-- Delta engine 2: signed deltas from the WAL, the live sources read where
-- a delta needs other rows, no copies of sources; views without a unique
-- key are bags.
\set VERBOSITY terse
SET pg_kappa.engine = 2;
CREATE TABLE e2_customers (id int PRIMARY KEY, name text, region text);
CREATE TABLE e2_orders (id int PRIMARY KEY, customer_id int, amount numeric(10,2), note text);
CREATE TABLE e2_events (kind text, n int);          -- no key at all
INSERT INTO e2_customers SELECT g, 'c' || g, CASE WHEN g % 2 = 0 THEN 'east' ELSE 'west' END FROM generate_series(1, 10) g;
INSERT INTO e2_orders SELECT g, g % 10 + 1, g * 1.25, NULL FROM generate_series(1, 100) g;
INSERT INTO e2_events VALUES ('a', 1), ('a', 1), ('b', 2);

SELECT kappa.create_view('e2_big', 'SELECT id, customer_id, amount FROM e2_orders WHERE amount > 50');
SELECT kappa.create_view('e2_star', 'SELECT o.id, c.name, o.amount FROM e2_orders o JOIN e2_customers c ON c.id = o.customer_id');
SELECT kappa.create_view('e2_regions', 'SELECT c.region, count(*) AS n, sum(o.amount) AS total FROM e2_orders o JOIN e2_customers c ON c.id = o.customer_id GROUP BY c.region');
SELECT kappa.create_view('e2_ev', 'SELECT kind, n FROM e2_events');
SELECT kappa.create_view('e2_total', 'SELECT count(*) AS n, sum(amount) AS s FROM e2_orders');
SELECT kappa.create_view('e2_jtotal', 'SELECT count(*) AS n, sum(o.amount) AS s, min(o.amount) AS lo, max(c.name) AS hi FROM e2_orders o JOIN e2_customers c ON c.id = o.customer_id');
-- no copy of any source: per source a delta table and a view of its past
SELECT v.name, v.engine, string_agg(c.relname || ':' || c.relkind::text, ' ' ORDER BY c.relname) AS internal
  FROM kappa.views v JOIN pg_class c ON c.relnamespace = ('kappa_v' || v.id)::regnamespace
 WHERE v.name LIKE 'public.e2%' AND c.relkind IN ('r', 'v') GROUP BY v.name, v.engine ORDER BY v.name;
SELECT relname, relreplident FROM pg_class WHERE relname IN ('e2_customers', 'e2_orders', 'e2_events') ORDER BY 1;
-- statistics of a view just filled and of its state, for the worker's plans
SELECT v.name, count(DISTINCT s.tablename) AS tables_analyzed
  FROM kappa.views v JOIN pg_stats s
    ON (s.schemaname, s.tablename) IN ((split_part(v.name, '.', 1), split_part(v.name, '.', 2)), ('kappa_v' || v.id, 'g'))
 WHERE v.name IN ('public.e2_regions', 'public.e2_star') GROUP BY v.name ORDER BY 1;
-- no unique index on the bags
SELECT c.relname, i.indisunique FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
 WHERE c.relname IN ('e2_star', 'e2_ev', 'e2_big') ORDER BY 1, 2;

-- inserts, updates (also of keys and join keys), deletes, NULLs
INSERT INTO e2_orders VALUES (101, 3, 70, 'x'), (102, NULL, 5, NULL);
UPDATE e2_orders SET amount = amount + 100 WHERE id BETWEEN 10 AND 20;
UPDATE e2_orders SET customer_id = 7 WHERE id BETWEEN 30 AND 35;
UPDATE e2_orders SET id = id + 1000 WHERE id IN (40, 41);
DELETE FROM e2_orders WHERE id % 7 = 0;
-- a dimension change reaches every joined order
UPDATE e2_customers SET name = 'renamed', region = 'north' WHERE id = 3;
-- duplicates in and out of a bag
INSERT INTO e2_events VALUES ('a', 1), ('c', NULL);
DELETE FROM e2_events WHERE kind = 'b';
UPDATE e2_events SET n = 5 WHERE kind = 'c';
-- one transaction that inserts, changes and deletes the same rows
BEGIN;
INSERT INTO e2_orders VALUES (200, 1, 1, 'tmp');
UPDATE e2_orders SET amount = 99 WHERE id = 200;
UPDATE e2_customers SET name = 'c1bis' WHERE id = 1;
DELETE FROM e2_orders WHERE id = 200;
SAVEPOINT s;
UPDATE e2_orders SET amount = 0 WHERE id = 1;
ROLLBACK TO s;
COMMIT;
SELECT kappa.wait('e2_big') AND kappa.wait('e2_star') AND kappa.wait('e2_regions')
   AND kappa.wait('e2_ev') AND kappa.wait('e2_total') AND kappa.wait('e2_jtotal') AS waited;
SELECT v, count(*) AS differences FROM (VALUES ('e2_big'), ('e2_star'), ('e2_regions'), ('e2_ev'), ('e2_total'), ('e2_jtotal')) q(v)
  LEFT JOIN LATERAL kappa.verify(v::regclass) f ON true WHERE f.kind IS NOT NULL GROUP BY v ORDER BY v;
SELECT * FROM e2_ev ORDER BY kind, n;
SELECT * FROM e2_regions ORDER BY region;
SELECT count(*) FROM e2_star WHERE name = 'renamed';

-- TOASTed values: an update that keeps one carries it in the old image only
ALTER TABLE e2_orders ALTER note SET STORAGE EXTERNAL;
SELECT kappa.create_view('e2_notes', 'SELECT id, length(note) AS len, md5(note) AS h FROM e2_orders WHERE note IS NOT NULL');
UPDATE e2_orders SET note = repeat(md5(id::text), 200) WHERE id <= 3;
UPDATE e2_orders SET amount = amount + 1 WHERE id <= 3;
SELECT kappa.wait('e2_notes');
SELECT count(*) AS differences FROM kappa.verify('e2_notes');
SELECT id, len FROM e2_notes ORDER BY id;

-- aggregates without GROUP BY: one row of state, its extremes leaving,
-- and no rows at all (count 0, sums NULL)
SELECT * FROM e2_jtotal;
DELETE FROM e2_orders WHERE amount = (SELECT min(amount) FROM e2_orders);
UPDATE e2_customers SET name = 'zz' WHERE id = 5;
SELECT kappa.wait('e2_jtotal');
SELECT count(*) AS differences FROM kappa.verify('e2_jtotal');
SELECT * FROM e2_jtotal;
BEGIN;
CREATE TEMP TABLE saved_orders AS SELECT * FROM e2_orders;
DELETE FROM e2_orders;
COMMIT;
SELECT kappa.wait('e2_jtotal'), kappa.wait('e2_total');
SELECT * FROM e2_jtotal;
SELECT * FROM e2_total;
INSERT INTO e2_orders SELECT * FROM saved_orders;
SELECT kappa.wait('e2_jtotal');
SELECT count(*) AS differences FROM kappa.verify('e2_jtotal');
SELECT count(*) AS differences FROM kappa.verify('e2_total');

-- sums of arithmetic over numeric(p,s) columns have a fixed display scale
-- (2 + 2 for a product): values leaving never change it, and the view shows
-- exactly what the query shows
CREATE TABLE e2_li (id int PRIMARY KEY, g int, price numeric(15,2), disc numeric(15,2));
INSERT INTO e2_li SELECT i, i % 3, i * 1.25, (i % 10) / 100.0 FROM generate_series(1, 60) i;
SELECT kappa.create_view('e2_q1', 'SELECT g, sum(price * (1 - disc)) AS rev, sum(-price) AS neg, avg(price) AS ap, count(*) AS n FROM e2_li GROUP BY g');
DELETE FROM e2_li WHERE id % 4 = 0;
UPDATE e2_li SET disc = 0.05 WHERE id % 5 = 0;
SELECT kappa.wait('e2_q1');
SELECT count(*) AS differences FROM kappa.verify('e2_q1');
SELECT * FROM e2_q1 ORDER BY g;

-- TRUNCATE recomputes from the sources
TRUNCATE e2_events;
INSERT INTO e2_events VALUES ('z', 26);
SELECT kappa.wait('e2_ev');
SELECT * FROM e2_ev;

-- a source whose replica identity is changed away from FULL breaks its views
ALTER TABLE e2_events REPLICA IDENTITY DEFAULT;
SELECT state, last_error FROM kappa.views WHERE name = 'public.e2_ev';
-- the way back the hint gives
ALTER TABLE e2_events REPLICA IDENTITY FULL;
SELECT kappa.alter_view(view => 'e2_ev', rebuild => true);
INSERT INTO e2_events VALUES ('d', 4);
SELECT kappa.wait('e2_ev');
SELECT count(*) AS differences FROM kappa.verify('e2_ev');

-- DDL the event triggers do not see (a superuser in replica mode): the
-- worker finds the old images incomplete, and the view breaks, saying why
SET session_replication_role = replica;
ALTER TABLE e2_events REPLICA IDENTITY DEFAULT;
RESET session_replication_role;
UPDATE e2_events SET n = 5 WHERE kind = 'd';
SELECT kappa.wait('e2_ev', timeout => '30s');
SELECT state, regexp_replace(last_error, '[0-9A-F]+/[0-9A-F]+', 'LSN', 'g') AS last_error
  FROM kappa.views WHERE name = 'public.e2_ev';
ALTER TABLE e2_events REPLICA IDENTITY FULL;
SELECT kappa.alter_view(view => 'e2_ev', rebuild => true);
SELECT count(*) AS differences FROM kappa.verify('e2_ev');
-- the same with a key: an update of the key carries the old key alone
CREATE TABLE e2_keyed (id int PRIMARY KEY, v int);
INSERT INTO e2_keyed VALUES (1, 10), (2, 20);
SELECT kappa.create_view('e2_keyed_v', 'SELECT v, count(*) AS n FROM e2_keyed GROUP BY v');
SET session_replication_role = replica;
ALTER TABLE e2_keyed REPLICA IDENTITY DEFAULT;
RESET session_replication_role;
UPDATE e2_keyed SET id = 3, v = 30 WHERE id = 1;
SELECT kappa.wait('e2_keyed_v', timeout => '30s');
SELECT state, split_part(last_error, E'\n', 1) AS last_error
  FROM kappa.views WHERE name = 'public.e2_keyed_v';
SELECT kappa.drop_view('e2_keyed_v');
DROP TABLE e2_keyed;

-- a table someone else owns is not changed behind their back
CREATE ROLE regress_e2_user;
CREATE TABLE e2_theirs (id int PRIMARY KEY);
GRANT SELECT ON e2_theirs TO regress_e2_user;
GRANT CREATE ON SCHEMA public TO regress_e2_user;
SET ROLE regress_e2_user;
SELECT kappa.create_view('e2_mine', 'SELECT id FROM e2_theirs');
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM regress_e2_user;
DROP TABLE e2_theirs;
DROP ROLE regress_e2_user;

-- replay rebuilds from the event log, which holds only captured tables
SELECT kappa.replay('e2_big');

-- a view of engine 1 built again by engine 2: its copies go, it goes on
SET pg_kappa.engine = 1;
SELECT kappa.create_view('e2_conv', 'SELECT customer_id, count(*) AS n, sum(amount) AS s FROM e2_orders GROUP BY customer_id');
SELECT kappa.alter_view('e2_conv', audit_every => '1 hour');
SELECT engine, (SELECT count(*) FROM pg_class WHERE relnamespace = ('kappa_v' || id)::regnamespace AND relname = 'a_0') AS copies
  FROM kappa.views WHERE name = 'public.e2_conv';
SELECT kappa.alter_view('e2_conv', engine => 2);
SELECT engine, audit_every, (SELECT count(*) FROM pg_class WHERE relnamespace = ('kappa_v' || id)::regnamespace AND relname = 'a_0') AS copies
  FROM kappa.views WHERE name = 'public.e2_conv';
UPDATE e2_orders SET amount = amount + 1 WHERE id < 20;
DELETE FROM e2_orders WHERE id BETWEEN 20 AND 25;
SELECT kappa.wait('e2_conv');
SELECT count(*) AS differences FROM kappa.verify('e2_conv');
SELECT kappa.alter_view('e2_conv', engine => 3);
SET pg_kappa.engine = 2;

-- numeric sums of no fixed scale show their widest input's display scale;
-- engine 2 counts the values of each scale, so values of the widest scale
-- leave without a recompute of the group, and the scale narrows only when
-- the last of them has left
CREATE TABLE e2_sc (id int PRIMARY KEY, g int, v numeric);
INSERT INTO e2_sc VALUES (1, 1, 1.5), (2, 1, 2.25), (3, 1, 3), (4, 2, 7), (5, 2, NULL), (6, 3, 0.125), (7, 1, 0.75);
SELECT kappa.create_view('e2_sc_g', 'SELECT g, sum(v) AS s, avg(v) AS a, count(v) AS n FROM e2_sc GROUP BY g');
SELECT kappa.create_view('e2_sc_all', 'SELECT sum(v) AS s, count(v) AS n FROM e2_sc');
CREATE FUNCTION e2_sc_check() RETURNS TABLE (g int, s text, same boolean, differences bigint)
LANGUAGE sql AS $$
  SELECT v.g, v.s::text, v.s::text = q.s::text AND v.a::text IS NOT DISTINCT FROM q.a::text,
         (SELECT count(*) FROM kappa.verify('e2_sc_g'))
    FROM e2_sc_g v JOIN (SELECT g, sum(v) AS s, avg(v) AS a FROM e2_sc GROUP BY g) q USING (g)
  UNION ALL
  SELECT NULL, v.s::text, v.s::text = (SELECT sum(v) FROM e2_sc)::text, (SELECT count(*) FROM kappa.verify('e2_sc_all'))
    FROM e2_sc_all v
  ORDER BY 1
$$;
SELECT * FROM e2_sc_check();
DELETE FROM e2_sc WHERE id = 2;          -- one of two values of scale 2 leaves
SELECT kappa.wait('e2_sc_g') AND kappa.wait('e2_sc_all');
SELECT * FROM e2_sc_check();
DELETE FROM e2_sc WHERE id = 7;          -- and the last of scale 2: scale 1
UPDATE e2_sc SET v = 0.5000 WHERE id = 6;
SELECT kappa.wait('e2_sc_g') AND kappa.wait('e2_sc_all');
SELECT * FROM e2_sc_check();
DELETE FROM e2_sc WHERE id = 1;          -- scale 0 left in group 1
INSERT INTO e2_sc VALUES (8, 2, 1e-20), (9, 4, 0);
SELECT kappa.wait('e2_sc_g') AND kappa.wait('e2_sc_all');
SELECT * FROM e2_sc_check();
SELECT kappa.drop_view('e2_sc_g'), kappa.drop_view('e2_sc_all');
DROP FUNCTION e2_sc_check();
DROP TABLE e2_sc;

-- rows inserted and updated in one batch cancel out in the worker's
-- memory, or, past work_mem (4MB here) of such images, in SQL: both give
-- the query's rows
CREATE TABLE e2_many (id int PRIMARY KEY, g int, v int);
SELECT kappa.create_view('e2_many_g', 'SELECT g, count(*) AS n, sum(v) AS s, max(v) AS hi FROM e2_many GROUP BY g');
SELECT kappa.create_view('e2_many_rows', 'SELECT id, v FROM e2_many WHERE v % 3 = 0');
BEGIN;
INSERT INTO e2_many SELECT g, g % 5, g FROM generate_series(1, 300) g;
UPDATE e2_many SET v = v + 1 WHERE id <= 200;
UPDATE e2_many SET v = v - 1 WHERE id <= 100;
DELETE FROM e2_many WHERE id > 290;
COMMIT;
SELECT kappa.wait('e2_many_g') AND kappa.wait('e2_many_rows');
SELECT (SELECT count(*) FROM kappa.verify('e2_many_g')) AS g_differences,
       (SELECT count(*) FROM kappa.verify('e2_many_rows')) AS rows_differences;
BEGIN;
INSERT INTO e2_many SELECT g, g % 5, g FROM generate_series(1001, 60000) g;
UPDATE e2_many SET v = v + 1 WHERE id > 1000;
UPDATE e2_many SET g = g + 1 WHERE id > 59000;
COMMIT;
SELECT kappa.wait('e2_many_g') AND kappa.wait('e2_many_rows');
SELECT (SELECT count(*) FROM kappa.verify('e2_many_g')) AS g_differences,
       (SELECT count(*) FROM kappa.verify('e2_many_rows')) AS rows_differences;
SELECT kappa.drop_view('e2_many_g'), kappa.drop_view('e2_many_rows');
DROP TABLE e2_many;

SELECT count(kappa.drop_view(relid)) FROM kappa.views WHERE name LIKE 'public.e2%';
DROP TABLE e2_customers, e2_orders, e2_events;
RESET pg_kappa.engine;
