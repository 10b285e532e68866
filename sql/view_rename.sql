-- Derived views follow renames of their sources (a table renamed, moved to
-- another schema, its schema renamed), as PostgreSQL's views do: the
-- query kept in kappa.views is printed again with the new names, and the
-- view goes on, exact.  A column renamed is not followed (the view breaks,
-- as before).
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE SCHEMA rn_s;
CREATE TABLE rn_s.orders (id int PRIMARY KEY, customer_id int, amount numeric(10,2));
CREATE TABLE rn_s.customers (id int PRIMARY KEY, name text);
INSERT INTO rn_s.customers VALUES (1, 'ann'), (2, 'bob');
INSERT INTO rn_s.orders VALUES (1, 1, 10), (2, 2, 20), (3, 1, 5);
SELECT kappa.create_view('rn_totals', $$SELECT c.name, sum(o.amount) AS total, count(*) AS n
  FROM rn_s.orders o JOIN rn_s.customers c ON c.id = o.customer_id GROUP BY c.name$$) IS NOT NULL AS created;
SELECT kappa.create_view('rn_rows', 'SELECT id, amount FROM rn_s.orders') IS NOT NULL AS created;
CREATE VIEW rn_check AS
  SELECT v.relid::regclass AS view, v.state, v.canonical,
         CASE WHEN v.state = 'running'
              THEN (SELECT count(*) FROM kappa.verify(v.relid)) END AS differences
    FROM kappa.views v WHERE v.name LIKE 'public.rn_%' ORDER BY v.id;

ALTER TABLE rn_s.orders RENAME TO purchases;
INSERT INTO rn_s.purchases VALUES (4, 2, 7);
SELECT kappa.wait('rn_totals') AND kappa.wait('rn_rows') AS waited;
SELECT view, state, differences, canonical LIKE '%rn_s.purchases%' AS new_name FROM rn_check;

ALTER SCHEMA rn_s RENAME TO rn_shop;
CREATE SCHEMA rn_other;
ALTER TABLE rn_shop.customers SET SCHEMA rn_other;
INSERT INTO rn_other.customers VALUES (3, 'cyd');
INSERT INTO rn_shop.purchases VALUES (5, 3, 30);
UPDATE rn_shop.purchases SET amount = amount + 1 WHERE id = 1;
SELECT kappa.wait('rn_totals') AND kappa.wait('rn_rows') AS waited;
SELECT view, state, differences FROM rn_check;
SELECT canonical FROM kappa.views WHERE relid = 'rn_totals'::regclass;

-- the derived table renamed: kappa.status shows its new name
ALTER TABLE rn_totals RENAME TO rn_sums;
INSERT INTO rn_shop.purchases VALUES (6, 1, 100);
SELECT kappa.wait('rn_sums') AS waited;
SELECT view, state, differences FROM rn_check;
SELECT * FROM rn_sums ORDER BY name;
SELECT name, state FROM kappa.status WHERE kind = 'view' AND name LIKE 'public.rn_%' ORDER BY name;

-- a rename rolled back leaves the query as it was; one in a savepoint
-- rolled back, followed by another DDL, too
BEGIN;
ALTER TABLE rn_shop.purchases RENAME TO gone;
ROLLBACK;
BEGIN;
SAVEPOINT a;
ALTER TABLE rn_shop.purchases RENAME TO gone;
ROLLBACK TO a;
ALTER TABLE rn_shop.purchases ALTER COLUMN amount SET STATISTICS 500;
COMMIT;
SELECT count(*) AS naming_purchases FROM kappa.views
 WHERE name LIKE 'public.rn_%' AND canonical LIKE '%rn_shop.purchases%';
INSERT INTO rn_shop.purchases VALUES (7, 2, 1);
SELECT kappa.wait('rn_sums') AND kappa.wait('rn_rows') AS waited;
SELECT view, state, differences FROM rn_check;

-- renamed by its owner, who does not own the view
CREATE ROLE rn_alice;
CREATE ROLE rn_bob;
CREATE TABLE rn_other.bobs (id int PRIMARY KEY, v int);
ALTER TABLE rn_other.bobs REPLICA IDENTITY FULL;
ALTER TABLE rn_other.bobs OWNER TO rn_bob;
GRANT USAGE ON SCHEMA rn_other TO rn_alice;
GRANT SELECT ON rn_other.bobs TO rn_alice;
GRANT CREATE ON SCHEMA public TO rn_alice;
SET ROLE rn_alice;
SELECT kappa.create_view('rn_alices', 'SELECT id, v FROM rn_other.bobs') IS NOT NULL AS created;
RESET ROLE;
GRANT USAGE, CREATE ON SCHEMA rn_other TO rn_bob;
SET ROLE rn_bob;
ALTER TABLE rn_other.bobs RENAME TO bobs2;
INSERT INTO rn_other.bobs2 VALUES (1, 1);
RESET ROLE;
SELECT kappa.wait('rn_alices') AS waited;
SELECT view, state, differences FROM rn_check WHERE view = 'rn_alices'::regclass;

-- a column the view reads, renamed: not followed, the view breaks
ALTER TABLE rn_shop.purchases RENAME COLUMN amount TO price;
SELECT view, state FROM rn_check WHERE view = 'rn_rows'::regclass;
SELECT last_error FROM kappa.views WHERE relid = 'rn_rows'::regclass;
-- the queries of the views over it no longer parse (no column amount):
-- a rename of the table still goes through, and leaves their text as it was
ALTER TABLE rn_shop.purchases RENAME TO orders;
SELECT relid::regclass AS view, canonical LIKE '%rn_shop.orders%' AS new_name
  FROM kappa.views WHERE name LIKE 'public.rn_%' ORDER BY id;

-- replay across renames: the log names tables by OID, so a view replays
-- (in place, beside it, as of an LSN before the rename) over a source
-- renamed and moved since it was captured
CREATE TABLE rn_ev (id int PRIMARY KEY, g int, v int);
SELECT kappa.capture('rn_ev') IS NOT NULL AS captured;
INSERT INTO rn_ev SELECT i, i % 3, i FROM generate_series(1, 30) i;
SELECT kappa.create_view('rn_evsum', 'SELECT g, count(*) AS n, sum(v) AS s FROM rn_ev GROUP BY g') IS NOT NULL AS created;
DELETE FROM rn_ev WHERE id = 7;
CREATE TABLE rn_ev_then AS SELECT g, count(*) AS n, sum(v) AS s FROM rn_ev GROUP BY g;
SELECT pg_current_wal_insert_lsn() AS rn_mid \gset
ALTER TABLE rn_ev RENAME TO rn_ev2;
ALTER TABLE rn_ev2 SET SCHEMA rn_other;
INSERT INTO rn_other.rn_ev2 VALUES (100, 1, 100);
UPDATE rn_other.rn_ev2 SET v = v * 2 WHERE g = 2;
SELECT kappa.wait('rn_evsum') AS waited;
SELECT kappa.replay('rn_evsum')::text AS replayed;
SELECT count(*) AS differences FROM kappa.verify('rn_evsum');
SELECT kappa.replay('rn_evsum', new_name => 'rn_evsum_copy')::text AS replayed;
SELECT count(*) AS differences FROM kappa.verify('rn_evsum_copy');
SELECT kappa.replay('rn_evsum', new_name => 'rn_evsum_then', until_lsn => :'rn_mid')::text AS replayed;
-- as it was before the rename, and not as it is
SELECT (SELECT count(*) FROM (TABLE rn_evsum_then EXCEPT ALL TABLE rn_ev_then) d) AS missing_then,
       (SELECT count(*) FROM (TABLE rn_ev_then EXCEPT ALL TABLE rn_evsum_then) d) AS extra_then,
       (SELECT count(*) FROM (TABLE rn_evsum_then EXCEPT ALL TABLE rn_evsum) d) AS differ_now;
SELECT kappa.drop_view(v) FROM (VALUES ('rn_evsum'::regclass), ('rn_evsum_copy')) s(v);
DROP TABLE rn_evsum_then, rn_ev_then;
SELECT kappa.uncapture('rn_other.rn_ev2');
DROP TABLE rn_other.rn_ev2;

-- a view's query that is slow to parse (a domain's CHECK on a constant)
-- does not hold a rename up: the query is printed again from the parse
-- tree kept with the view, and not parsed
CREATE TABLE rn_slow_src (id int PRIMARY KEY, v int);
CREATE TABLE rn_slow_ctl (s float8);
INSERT INTO rn_slow_ctl VALUES (0);
CREATE FUNCTION rn_slow_chk(x int) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE s float8;
BEGIN
  SELECT c.s INTO s FROM public.rn_slow_ctl c;
  IF s > 0 THEN PERFORM pg_sleep(s); END IF;
  RETURN true;
END $$;
CREATE DOMAIN rn_slow_d AS int CHECK (rn_slow_chk(VALUE));
SELECT kappa.create_view('rn_slow_v', $$SELECT id, v FROM rn_slow_src WHERE id <> ALL ('{-1}'::rn_slow_d[])$$) IS NOT NULL AS created;
UPDATE rn_slow_ctl SET s = 30;
SET statement_timeout = '5s';
ALTER TABLE rn_slow_src RENAME TO rn_slow_src2;
ALTER TABLE rn_slow_src2 RENAME TO rn_slow_src;
RESET statement_timeout;
UPDATE rn_slow_ctl SET s = 0;
SELECT canonical ~ 'public\.rn_slow_src\M' AS follows FROM kappa.views WHERE relid = 'rn_slow_v'::regclass;
INSERT INTO rn_slow_src VALUES (1, 1);
SELECT kappa.wait('rn_slow_v');
SELECT * FROM rn_slow_v;
SELECT kappa.drop_view('rn_slow_v');
DROP TABLE rn_slow_src, rn_slow_ctl;
DROP DOMAIN rn_slow_d;
DROP FUNCTION rn_slow_chk(int);

DROP VIEW rn_check;
-- the session's settings do not change how the query is printed: a
-- timestamptz literal, and names, read the same after a rename made with
-- another TimeZone and quote_all_identifiers; and the rename updates the
-- name of no other view in kappa.views
CREATE TABLE rn_tz (id int PRIMARY KEY, at timestamptz);
INSERT INTO rn_tz VALUES (1, '2024-02-29 12:00+00'), (2, '2024-03-01 12:00+00');
SET TimeZone = 'UTC';
SELECT kappa.create_view('rn_tzv', $$SELECT id FROM rn_tz WHERE at > '2024-03-01 00:00'$$) IS NOT NULL AS created;
SET TimeZone = 'America/New_York';
SET quote_all_identifiers = on;
ALTER TABLE rn_tz RENAME TO rn_tz2;
RESET quote_all_identifiers;
SELECT canonical ~ 'public\.rn_tz2\M' AS follows FROM kappa.views WHERE relid = 'rn_tzv'::regclass;
SELECT count(*) AS quoted_names FROM kappa.views WHERE name LIKE '"%';
INSERT INTO rn_tz2 VALUES (3, '2024-03-01 02:00+00');
SELECT kappa.wait('rn_tzv') AS waited;
SELECT * FROM rn_tzv ORDER BY id;
SELECT count(*) AS differences FROM kappa.verify('rn_tzv');
-- rebuilt in another TimeZone: the query reads the same
SELECT kappa.alter_view(view => 'rn_tzv', rebuild => true) IS NOT NULL AS rebuilt;
RESET TimeZone;
-- a rename the event triggers did not see, and another table that took
-- the old name: a rebuild refuses to read that one
SET session_replication_role = replica;
ALTER TABLE rn_tz2 RENAME TO rn_tz3;
RESET session_replication_role;
CREATE TABLE rn_tz2 (id int PRIMARY KEY, at timestamptz);
SELECT kappa.alter_view(view => 'rn_tzv', rebuild => true);
SELECT kappa.drop_view('rn_tzv');
DROP TABLE rn_tz2, rn_tz3;

-- ALTER VIEW, ALTER INDEX, ... may name a table: a column renamed so
-- breaks the view, the table renamed so is followed
CREATE TABLE rn_av (id int PRIMARY KEY, x int, y int);
INSERT INTO rn_av SELECT g, g, 10 * g FROM generate_series(1, 3) g;
SELECT kappa.create_view('rn_avv', 'SELECT id, x FROM rn_av') IS NOT NULL AS created;
ALTER VIEW rn_av RENAME COLUMN x TO tmp;
SELECT state FROM kappa.views WHERE relid = 'rn_avv'::regclass;
ALTER VIEW rn_av RENAME COLUMN tmp TO x;
SELECT kappa.alter_view(view => 'rn_avv', rebuild => true) IS NOT NULL AS rebuilt;
ALTER INDEX rn_av RENAME TO rn_av2;
SELECT canonical ~ 'public\.rn_av2\M' AS follows FROM kappa.views WHERE relid = 'rn_avv'::regclass;
INSERT INTO rn_av2 VALUES (4, 4, 40);
SELECT kappa.wait('rn_avv') AS waited;
SELECT count(*) AS differences FROM kappa.verify('rn_avv');
SELECT kappa.drop_view('rn_avv');
DROP TABLE rn_av2;

-- a function or domain the query names, renamed, or its schema: the query
-- names it by its new name, and a new function that took the old name is
-- not called; a function renamed itself breaks the view (as ALTER
-- FUNCTION does)
CREATE SCHEMA rn_fs;
CREATE FUNCTION rn_fs.tri(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 3';
CREATE DOMAIN rn_fs.pos AS int CHECK (VALUE > 0);
CREATE TABLE rn_f (id int PRIMARY KEY, x int);
INSERT INTO rn_f SELECT g, g FROM generate_series(1, 3) g;
SELECT kappa.create_view('rn_fv', 'SELECT id, rn_fs.tri(x) AS d FROM rn_f WHERE x <> -1::rn_fs.pos') IS NOT NULL AS created;
ALTER SCHEMA rn_fs RENAME TO rn_fs_old;
CREATE SCHEMA rn_fs;
CREATE FUNCTION rn_fs.tri(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT -$1';
ALTER DOMAIN rn_fs_old.pos RENAME TO pos2;
SELECT canonical FROM kappa.views WHERE relid = 'rn_fv'::regclass;
INSERT INTO rn_f VALUES (4, 4);
SELECT kappa.wait('rn_fv') AS waited;
SELECT * FROM rn_fv ORDER BY id;
SELECT count(*) AS differences FROM kappa.verify('rn_fv');
ALTER ROUTINE rn_fs_old.tri(int) RENAME TO tri_old;
SELECT state FROM kappa.views WHERE relid = 'rn_fv'::regclass;
SELECT kappa.drop_view('rn_fv');
DROP TABLE rn_f;
DROP SCHEMA rn_fs, rn_fs_old CASCADE;

-- a composite type's attributes swapped by renames, an enum's value
-- renamed (and the old label added back), a table named by a regclass
-- literal renamed (and another taking its name): the queries follow, and
-- the views stay exact; printing them leaves no lock on their tables
CREATE SCHEMA rn_ts;
CREATE TYPE rn_ts.ct AS (f1 int, f2 int);
CREATE TYPE rn_ts.e AS ENUM ('a', 'b');
CREATE TABLE rn_ts.other (x int);
CREATE TABLE rn_tl (id int PRIMARY KEY, k int);
INSERT INTO rn_tl SELECT g, g FROM generate_series(1, 3) g;
SELECT kappa.create_view('rn_tct', $$SELECT id, (ROW(k, 0)::rn_ts.ct).f1 AS f FROM rn_tl$$) IS NOT NULL AS created;
SELECT kappa.create_view('rn_tenum', $$SELECT id, CASE WHEN k > 1 THEN 'a'::rn_ts.e ELSE 'b'::rn_ts.e END AS lbl FROM rn_tl$$) IS NOT NULL AS created;
SELECT kappa.create_view('rn_trc', $$SELECT id, 'rn_ts.other'::regclass::oid AS o FROM rn_tl$$) IS NOT NULL AS created;
BEGIN;
ALTER TYPE rn_ts.ct RENAME ATTRIBUTE f1 TO tmp;
ALTER TYPE rn_ts.ct RENAME ATTRIBUTE f2 TO f1;
ALTER TYPE rn_ts.ct RENAME ATTRIBUTE tmp TO f2;
SELECT count(*) AS locks_on_rn_tl FROM pg_locks
 WHERE pid = pg_backend_pid() AND relation = 'rn_tl'::regclass;
COMMIT;
ALTER TYPE rn_ts.e RENAME VALUE 'a' TO 'z';
ALTER TYPE rn_ts.e ADD VALUE 'a';
ALTER TABLE rn_ts.other RENAME TO other3;
CREATE TABLE rn_ts.other (x int);
INSERT INTO rn_tl VALUES (4, 4);
SELECT kappa.wait(v) AS waited FROM (VALUES ('rn_tct'::regclass), ('rn_tenum'), ('rn_trc')) s(v);
SELECT relid::regclass AS view, state, canonical FROM kappa.views
 WHERE relid IN ('rn_tct'::regclass, 'rn_tenum'::regclass, 'rn_trc'::regclass) ORDER BY id;
SELECT (SELECT count(*) FROM kappa.verify('rn_tct')) AS tct, (SELECT count(*) FROM kappa.verify('rn_tenum')) AS tenum,
       (SELECT count(*) FROM kappa.verify('rn_trc')) AS trc;
SELECT kappa.drop_view(v) FROM (VALUES ('rn_tct'::regclass), ('rn_tenum'), ('rn_trc')) s(v);
DROP TABLE rn_tl;
DROP SCHEMA rn_ts CASCADE;

-- more that a query names without reading: a function of a schema whose
-- name needs quotes, an array of a type, the row type of a table that is
-- not a source (renamed, and its columns swapped), the result type of a
-- function (its attributes swapped), a schema by a regnamespace literal;
-- each renamed, and a new object taking the old name
CREATE SCHEMA "Rn Q";
CREATE FUNCTION "Rn Q".f(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1';
CREATE TYPE rn_arr AS ENUM ('a', 'b');
CREATE TABLE rn_pair (a int, b int);
CREATE TABLE rn_pair2 (a int, b int);
CREATE TYPE rn_res AS (a int, b int);
CREATE FUNCTION rn_mk(int, int) RETURNS rn_res LANGUAGE sql IMMUTABLE AS 'SELECT ROW($1, $2)::public.rn_res';
CREATE SCHEMA rn_ns;
CREATE TABLE rn_q (id int PRIMARY KEY, x int, y int);
INSERT INTO rn_q SELECT g, g, 10 * g FROM generate_series(1, 3) g;
SELECT kappa.create_view('rn_q1', $$SELECT id, "Rn Q".f(x) AS fx, ('{a,b}'::rn_arr[] < '{b,a}'::rn_arr[]) AS lt,
                                            (ROW(x, y)::rn_pair).a AS pa, (ROW(x, y)::rn_pair2).a AS pa2,
                                            (rn_mk(x, y)).a AS ma, ('rn_ns'::regnamespace)::oid AS ns
                                       FROM rn_q$$) IS NOT NULL AS created;
ALTER SCHEMA "Rn Q" RENAME TO rn_q_old;
CREATE SCHEMA "Rn Q";
CREATE FUNCTION "Rn Q".f(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1000';
ALTER TYPE rn_arr RENAME TO rn_arr_old;
CREATE TYPE rn_arr AS ENUM ('b', 'a');
ALTER TABLE rn_pair RENAME COLUMN a TO tmp;
ALTER TABLE rn_pair RENAME COLUMN b TO a;
ALTER TABLE rn_pair RENAME COLUMN tmp TO b;
ALTER TABLE rn_pair2 RENAME TO rn_pair2_old;
CREATE TABLE rn_pair2 (b int, a int);
ALTER TYPE rn_res RENAME ATTRIBUTE a TO tmp;
ALTER TYPE rn_res RENAME ATTRIBUTE b TO a;
ALTER TYPE rn_res RENAME ATTRIBUTE tmp TO b;
ALTER SCHEMA rn_ns RENAME TO rn_ns_old;
CREATE SCHEMA rn_ns;
INSERT INTO rn_q VALUES (4, 4, 40);
SELECT kappa.wait('rn_q1') AS waited;
SELECT state, canonical FROM kappa.views WHERE relid = 'rn_q1'::regclass;
SELECT count(*) AS differences FROM kappa.verify('rn_q1');
SELECT kappa.drop_view('rn_q1');
DROP TABLE rn_q, rn_pair, rn_pair2, rn_pair2_old;
DROP FUNCTION rn_mk(int, int);
DROP TYPE rn_res, rn_arr, rn_arr_old;
DROP SCHEMA "Rn Q", rn_q_old, rn_ns, rn_ns_old CASCADE;

SELECT kappa.drop_view(v) FROM (VALUES ('rn_sums'::regclass), ('rn_rows'), ('rn_alices')) s(v);
DROP SCHEMA rn_shop, rn_other CASCADE;
REVOKE CREATE ON SCHEMA public FROM rn_alice;
DROP ROLE rn_alice;
DROP ROLE rn_bob;
