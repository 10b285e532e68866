-- string_agg and array_agg whose input is ordered by the values they
-- aggregate: the result is the same whatever order the rows are read in,
-- so a view keeps it exactly (its groups computed again as the batch
-- changes them).  Without such an order they are refused.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE TABLE oa_customers (id int PRIMARY KEY, name text, region text);
CREATE TABLE oa_orders (id int PRIMARY KEY, customer_id int, tag text, amount int);
CREATE INDEX ON oa_orders (customer_id);
INSERT INTO oa_customers SELECT g, 'cust' || g, 'r' || g % 3 FROM generate_series(1, 12) g;
INSERT INTO oa_orders SELECT g, 1 + g % 12, CASE WHEN g % 5 = 0 THEN NULL ELSE 't' || g % 4 END, g
  FROM generate_series(1, 60) g;

CREATE TABLE oa_queries (v text, e int, q text);
INSERT INTO oa_queries VALUES
 ('oa_names', 2, $$SELECT c.region, string_agg(c.name, ', ' ORDER BY c.name) AS names, count(*) AS n
                     FROM oa_orders o JOIN oa_customers c ON c.id = o.customer_id GROUP BY c.region$$),
 ('oa_ids', 2, $$SELECT customer_id, array_agg(id ORDER BY id) AS ids,
                        array_agg(amount ORDER BY amount DESC) FILTER (WHERE amount > 20) AS big
                   FROM oa_orders GROUP BY customer_id$$),
 ('oa_tags', 2, $$SELECT string_agg(DISTINCT tag, '|') AS tags FROM oa_orders$$),
 ('oa_ids_e1', 1, $$SELECT customer_id, array_agg(tag ORDER BY tag) AS tags FROM oa_orders GROUP BY customer_id$$);
SET client_min_messages = warning;
SELECT v, kappa.create_view(name => v, query => q) IS NOT NULL AS created FROM oa_queries WHERE e = 2 ORDER BY v;
SET pg_kappa.engine = 1;
SELECT v, kappa.create_view(name => v, query => q) IS NOT NULL AS created FROM oa_queries WHERE e = 1 ORDER BY v;
RESET pg_kappa.engine;
RESET client_min_messages;
SELECT name, engine FROM kappa.views WHERE name LIKE 'public.oa\_%' ORDER BY name;

-- the view's rows against its query, both ways, after each step
CREATE FUNCTION oa_check() RETURNS TABLE (v text, differing bigint) LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n bigint;
BEGIN
    FOR r IN SELECT * FROM oa_queries ORDER BY 1 LOOP
        PERFORM kappa.wait(r.v::regclass);
        EXECUTE format('SELECT count(*) FROM ((TABLE %I EXCEPT ALL (%s)) UNION ALL ((%s) EXCEPT ALL TABLE %I)) d',
                       r.v, r.q, r.q, r.v) INTO n;
        v := r.v;
        differing := n;
        RETURN NEXT;
    END LOOP;
END $$;

-- inserts, an update that moves an order to another customer (and so
-- region), a NULL tag, deletes that empty a group, a rollback
INSERT INTO oa_orders VALUES (61, 3, 'a', 100), (62, 3, NULL, 5);
UPDATE oa_orders SET customer_id = 7, tag = 'z' WHERE id IN (2, 14);
UPDATE oa_customers SET name = 'aaa', region = 'r9' WHERE id = 5;
DELETE FROM oa_orders WHERE customer_id = 9;
BEGIN;
INSERT INTO oa_orders VALUES (63, 4, 'never', 1);
ROLLBACK;
SELECT * FROM oa_check();
SELECT * FROM oa_ids WHERE customer_id IN (3, 7, 9) ORDER BY customer_id;
SELECT * FROM oa_names ORDER BY region;
SELECT * FROM oa_tags;
SELECT count(*) AS differing FROM kappa.verify('oa_names');

-- refused: the order would be the plan's
SELECT kappa.create_view('oa_bad', 'SELECT customer_id, string_agg(tag, $$,$$) AS t FROM oa_orders GROUP BY 1');
SELECT kappa.create_view('oa_bad', 'SELECT customer_id, array_agg(tag ORDER BY amount) AS t FROM oa_orders GROUP BY 1');
SELECT kappa.create_view('oa_bad', 'SELECT customer_id, string_agg(tag, tag ORDER BY tag) AS t FROM oa_orders GROUP BY 1');

SET client_min_messages = warning;
SELECT kappa.drop_view(v) FROM oa_queries ORDER BY v;
RESET client_min_messages;
DROP FUNCTION oa_check();
DROP TABLE oa_queries, oa_orders, oa_customers;
