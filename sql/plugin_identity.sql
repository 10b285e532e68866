-- Replica identity decides "old": key columns with DEFAULT (only when a
-- key column changed on update), index columns with USING INDEX, every
-- column with FULL, nothing with NOTHING or without a primary key.
\set VERBOSITY terse
SELECT 'init' FROM pg_create_logical_replication_slot('ident', 'pg_kappa');

-- DEFAULT with a composite primary key whose columns are not first and not
-- in column order
CREATE TABLE id_default (v text, b int, a int, w text, PRIMARY KEY (a, b));
INSERT INTO id_default VALUES ('one', 1, 10, NULL);
UPDATE id_default SET v = 'changed', w = 'w';
UPDATE id_default SET b = 2;
UPDATE id_default SET a = 20, v = 'both';
DELETE FROM id_default;
SELECT * FROM decode('ident');

-- DEFAULT without a primary key: no old, even on delete
CREATE TABLE id_nokey (a int, v text);
INSERT INTO id_nokey VALUES (1, 'x');
UPDATE id_nokey SET a = 2;
DELETE FROM id_nokey;
-- USING INDEX: the index's columns
CREATE TABLE id_index (id int PRIMARY KEY, u1 int NOT NULL, u2 text NOT NULL, v text);
CREATE UNIQUE INDEX id_index_u ON id_index (u2, u1);
ALTER TABLE id_index REPLICA IDENTITY USING INDEX id_index_u;
INSERT INTO id_index VALUES (1, 1, 'a', 'x');
UPDATE id_index SET v = 'y';
UPDATE id_index SET id = 2;
UPDATE id_index SET u1 = 2;
DELETE FROM id_index;
-- FULL: every column, nulls included
CREATE TABLE id_full (id int PRIMARY KEY, v text, n numeric);
ALTER TABLE id_full REPLICA IDENTITY FULL;
INSERT INTO id_full VALUES (1, NULL, 1.5);
UPDATE id_full SET v = 'set';
UPDATE id_full SET id = 2;
DELETE FROM id_full;
-- FULL without any key
CREATE TABLE id_full_nokey (a int, b text);
ALTER TABLE id_full_nokey REPLICA IDENTITY FULL;
INSERT INTO id_full_nokey VALUES (1, 'x'), (1, 'x');
UPDATE id_full_nokey SET b = 'y';
DELETE FROM id_full_nokey;
-- NOTHING: no old at all
CREATE TABLE id_nothing (id int PRIMARY KEY, v text);
ALTER TABLE id_nothing REPLICA IDENTITY NOTHING;
INSERT INTO id_nothing VALUES (1, 'x');
UPDATE id_nothing SET id = 2;
DELETE FROM id_nothing;
SELECT * FROM decode('ident');

-- the identity changes between changes, in one transaction
CREATE TABLE id_switch (id int PRIMARY KEY, v text);
INSERT INTO id_switch VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd');
BEGIN;
DELETE FROM id_switch WHERE id = 1;
ALTER TABLE id_switch REPLICA IDENTITY FULL;
DELETE FROM id_switch WHERE id = 2;
ALTER TABLE id_switch REPLICA IDENTITY NOTHING;
DELETE FROM id_switch WHERE id = 3;
ALTER TABLE id_switch REPLICA IDENTITY DEFAULT;
ALTER TABLE id_switch DROP CONSTRAINT id_switch_pkey;
DELETE FROM id_switch WHERE id = 4;
COMMIT;
SELECT * FROM decode('ident', 'actions', 'delete');

SELECT pg_drop_replication_slot('ident');
DROP TABLE id_default, id_nokey, id_index, id_full, id_full_nokey, id_nothing, id_switch;
