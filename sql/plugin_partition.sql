-- Partitioned tables: changes are reported on the partition, or with
-- publish-via-root as changes of the top-most partitioned table, with its
-- column names even where a partition's columns are in another order.
\set VERBOSITY terse
SELECT 'init' FROM pg_create_logical_replication_slot('part', 'pg_kappa');
SELECT 'init' FROM pg_create_logical_replication_slot('part_root', 'pg_kappa');

CREATE TABLE pt (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE pt_eu PARTITION OF pt FOR VALUES IN ('eu');
-- a partition with another column order and a dropped column
CREATE TABLE pt_us (dropped int, v text, region text NOT NULL, id int NOT NULL);
ALTER TABLE pt_us DROP COLUMN dropped;
ALTER TABLE pt ATTACH PARTITION pt_us FOR VALUES IN ('us');
-- two levels
CREATE TABLE pt_asia PARTITION OF pt FOR VALUES IN ('jp', 'kr') PARTITION BY LIST (region);
CREATE TABLE pt_jp PARTITION OF pt_asia FOR VALUES IN ('jp');

INSERT INTO pt VALUES (1, 'eu', 'a'), (2, 'us', 'b'), (3, 'jp', 'c');
UPDATE pt SET v = v || '!';
-- moving a row to another partition is a delete and an insert
UPDATE pt SET region = 'us' WHERE id = 1;
UPDATE pt SET id = 20 WHERE id = 2;
DELETE FROM pt WHERE id = 3;
SELECT * FROM decode('part');
SELECT * FROM decode('part_root', 'publish-via-root', 'on');

-- the tables filter matches the reported name: the partition's, or the
-- root's with publish-via-root
INSERT INTO pt VALUES (4, 'eu', 'd'), (5, 'jp', 'e');
SELECT * FROM decode('part', 'tables', 'public.pt');
SELECT * FROM decode('part_root', 'tables', 'public.pt', 'publish-via-root', 'on');
INSERT INTO pt VALUES (6, 'eu', 'f'), (7, 'jp', 'g');
SELECT * FROM decode('part', 'tables', 'public.pt_j*');
SELECT * FROM decode('part_root', 'tables', 'public.pt_j*', 'publish-via-root', 'on');

-- renaming the root's columns, detaching and attaching partitions
BEGIN;
INSERT INTO pt VALUES (8, 'us', 'h');
ALTER TABLE pt RENAME COLUMN v TO "V";
INSERT INTO pt VALUES (9, 'us', 'i');
ALTER TABLE pt DETACH PARTITION pt_us;
INSERT INTO pt_us VALUES ('j', 'us', 10);
ALTER TABLE pt ATTACH PARTITION pt_us FOR VALUES IN ('us');
INSERT INTO pt VALUES (11, 'us', 'k');
ALTER TABLE pt RENAME TO pt_renamed;
INSERT INTO pt_renamed VALUES (12, 'us', 'l');
COMMIT;
SELECT * FROM decode('part', 'include-types', 'on');
SELECT * FROM decode('part_root', 'publish-via-root', 'on', 'include-types', 'on');

-- replica identity FULL on a partition gives every column in "old", with
-- the root's names
ALTER TABLE pt_us REPLICA IDENTITY FULL;
DELETE FROM pt_renamed WHERE id = 12;
SELECT * FROM decode('part');
SELECT * FROM decode('part_root', 'publish-via-root', 'on');

SELECT pg_drop_replication_slot('part');
SELECT pg_drop_replication_slot('part_root');
DROP TABLE pt_renamed;
