-- TRUNCATE: one record for all the relations truncated together, with the
-- cascade and restart identity flags; filtered by "tables" and "actions".
\set VERBOSITY terse
SELECT 'init' FROM pg_create_logical_replication_slot('trunc', 'pg_kappa');
CREATE TABLE tr_a (id serial PRIMARY KEY);
CREATE TABLE tr_b (id int PRIMARY KEY, a int REFERENCES tr_a);
CREATE TABLE tr_c (id int);
CREATE SCHEMA "Tr S";
CREATE TABLE "Tr S"."T ""q""" (id int);
INSERT INTO tr_a DEFAULT VALUES;
INSERT INTO tr_b VALUES (1, 1);
INSERT INTO tr_c VALUES (1);
SELECT * FROM decode('trunc');

TRUNCATE tr_c;
TRUNCATE tr_a CASCADE;
TRUNCATE tr_a, tr_b RESTART IDENTITY;
TRUNCATE tr_c, "Tr S"."T ""q""", tr_b, tr_a RESTART IDENTITY CASCADE;
-- a truncate in a transaction with other changes, and one rolled back
BEGIN;
INSERT INTO tr_c VALUES (2);
TRUNCATE tr_c;
INSERT INTO tr_c VALUES (3);
COMMIT;
BEGIN;
TRUNCATE tr_c;
ROLLBACK;
SELECT * FROM decode('trunc');

-- tables filter: only the matching relations are listed; a truncate of
-- no matching relation writes nothing
TRUNCATE tr_a, tr_b, tr_c, "Tr S"."T ""q""";
TRUNCATE tr_b, tr_c;
SELECT * FROM decode('trunc', 'tables', 'public.tr_a, "Tr S".*', 'skip-empty-xacts', 'off');
-- actions: without truncate nothing is written
TRUNCATE tr_a, tr_b, tr_c;
INSERT INTO tr_c VALUES (4);
SELECT * FROM decode('trunc', 'actions', 'insert,update,delete');
TRUNCATE tr_c;
SELECT * FROM decode('trunc', 'actions', 'truncate');

-- a truncate on a partitioned table lists it and its partitions; with
-- publish-via-root, the root once.  Partitions truncated without their
-- root keep their own names even with publish-via-root: naming the root
-- would say that every partition was emptied.
CREATE TABLE tr_p (id int) PARTITION BY RANGE (id);
CREATE TABLE tr_p1 PARTITION OF tr_p FOR VALUES FROM (0) TO (10);
CREATE TABLE tr_p2 PARTITION OF tr_p FOR VALUES FROM (10) TO (20);
CREATE TABLE tr_p3 PARTITION OF tr_p FOR VALUES FROM (20) TO (30) PARTITION BY RANGE (id);
CREATE TABLE tr_p3a PARTITION OF tr_p3 FOR VALUES FROM (20) TO (30);
TRUNCATE tr_p;
TRUNCATE tr_p1;
SELECT * FROM decode('trunc');
TRUNCATE tr_p;
TRUNCATE tr_p2, tr_c;
TRUNCATE tr_p3;
TRUNCATE tr_p1, tr_p;
SELECT * FROM decode('trunc', 'publish-via-root', 'on');
TRUNCATE tr_p2, tr_p1;
TRUNCATE tr_p3a;
SELECT * FROM decode('trunc', 'publish-via-root', 'on', 'tables', 'public.tr_p');

SELECT pg_drop_replication_slot('trunc');
DROP TABLE tr_b, tr_a, tr_c, tr_p;
DROP SCHEMA "Tr S" CASCADE;
