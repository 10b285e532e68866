-- DDL between changes: every change is written with the columns the table
-- had when the change was made, a table rewrite writes no phantom rows, and
-- renames are picked up by the relation cache.
\set VERBOSITY terse
SELECT 'init' FROM pg_create_logical_replication_slot('ddl', 'pg_kappa');
CREATE TABLE ddl (id int PRIMARY KEY, a text);
INSERT INTO ddl VALUES (1, 'before');
ALTER TABLE ddl ADD COLUMN b int;
INSERT INTO ddl VALUES (2, 'added', 20);
ALTER TABLE ddl ADD COLUMN c text DEFAULT 'dflt';
INSERT INTO ddl (id) VALUES (3);
UPDATE ddl SET a = 'upd' WHERE id = 1;
ALTER TABLE ddl DROP COLUMN a;
INSERT INTO ddl VALUES (4, 40, 'd');
DELETE FROM ddl WHERE id = 2;
SELECT * FROM decode('ddl', 'include-types', 'on');

-- the same DDL inside one transaction, between its changes
BEGIN;
INSERT INTO ddl VALUES (5, 50, 'e');
ALTER TABLE ddl ADD COLUMN x float8;
INSERT INTO ddl VALUES (6, 60, 'f', 6.5);
ALTER TABLE ddl DROP COLUMN b;
INSERT INTO ddl VALUES (7, 'g', 7.5);
ALTER TABLE ddl RENAME COLUMN c TO "C col";
UPDATE ddl SET x = 0 WHERE id = 7;
ALTER TABLE ddl RENAME TO ddl_renamed;
DELETE FROM ddl_renamed WHERE id = 7;
COMMIT;
SELECT * FROM decode('ddl', 'include-types', 'on');

-- a table rewrite (ALTER TYPE) writes no rows; later changes use the new
-- type; the same in a transaction that also changes rows
CREATE TABLE rw (id int PRIMARY KEY, v int);
INSERT INTO rw SELECT g, g * 10 FROM generate_series(1, 3) g;
ALTER TABLE rw ALTER COLUMN v TYPE numeric(12,2);
INSERT INTO rw VALUES (4, 4.25);
BEGIN;
UPDATE rw SET v = 11 WHERE id = 1;
ALTER TABLE rw ALTER COLUMN v TYPE text USING v::text || '!';
UPDATE rw SET v = v || '?' WHERE id = 1;
ALTER TABLE rw ALTER COLUMN id TYPE bigint;
INSERT INTO rw VALUES (5, 'five');
COMMIT;
VACUUM FULL rw;
CLUSTER rw USING rw_pkey;
ALTER TABLE rw SET UNLOGGED;
ALTER TABLE rw SET LOGGED;
INSERT INTO rw VALUES (6, 'six');
SELECT * FROM decode('ddl', 'include-types', 'on');

-- schema and type renames are picked up too, also by the tables filter
SELECT 'init' FROM pg_create_logical_replication_slot('ddl2', 'pg_kappa');
CREATE SCHEMA ddl_s;
CREATE TYPE ddl_s.mood AS ENUM ('ok', 'sad');
CREATE TABLE ddl_s.t (id int PRIMARY KEY, m ddl_s.mood);
INSERT INTO ddl_s.t VALUES (1, 'ok');
ALTER SCHEMA ddl_s RENAME TO ddl_s2;
INSERT INTO ddl_s2.t VALUES (2, 'sad');
ALTER TYPE ddl_s2.mood RENAME TO feeling;
INSERT INTO ddl_s2.t VALUES (3, 'ok');
SELECT * FROM decode('ddl', 'include-types', 'on');
SELECT * FROM decode('ddl2', 'tables', 'ddl_s2.*');

SELECT pg_drop_replication_slot('ddl');
SELECT pg_drop_replication_slot('ddl2');
DROP TABLE ddl_renamed, rw;
DROP SCHEMA ddl_s2 CASCADE;
