-- The output plugin: insert, update (with and without a key change),
-- delete, and the fields every record carries.
\set VERBOSITY terse
SELECT 'init' FROM pg_create_logical_replication_slot('basic', 'pg_kappa');
CREATE TABLE basic (id int PRIMARY KEY, v text, n numeric, b bool, j jsonb);
INSERT INTO basic VALUES (1, 'a"b\c', 1.5, true, '{"x": [1, 2]}');
UPDATE basic SET v = 'new' WHERE id = 1;
UPDATE basic SET id = 2 WHERE id = 1;
DELETE FROM basic WHERE id = 2;
BEGIN;
INSERT INTO basic VALUES (3, NULL, NULL, NULL, NULL), (4, 'x', -0.000001, false, 'null');
COMMIT;
SELECT * FROM decode('basic');

-- LSNs, xids and times, when on, have the documented shapes
INSERT INTO basic VALUES (5);
SELECT count(*) AS lines,
       bool_and(CASE WHEN d->>'kind' IN ('begin', 'commit')
                THEN (d->>'xid')::xid IS NOT NULL
                     AND (d->>'lsn')::pg_lsn IS NOT NULL
                     AND d->>'commit_time' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$'
                ELSE (d->>'lsn')::pg_lsn IS NOT NULL END) AS shapes_ok,
       bool_and(d->>'kind' <> 'commit' OR ((d->>'end_lsn')::pg_lsn > (d->>'lsn')::pg_lsn)) AS end_after_commit
FROM (SELECT data::jsonb AS d FROM pg_logical_slot_get_changes('basic', NULL, NULL)) s;
SELECT pg_drop_replication_slot('basic');
DROP TABLE basic;
