-- Replication origins: "origin" on begin (include-origin), only-local skips
-- transactions and messages that carry an origin.
\set VERBOSITY terse
SELECT 'init' FROM pg_create_logical_replication_slot('orig', 'pg_kappa');
SELECT 'init' FROM pg_create_logical_replication_slot('orig2', 'pg_kappa');
SELECT 'init' FROM pg_create_logical_replication_slot('orig3', 'pg_kappa');
CREATE TABLE ot (id int PRIMARY KEY, v text);
SELECT 'o' FROM pg_replication_origin_create('kappa "test" origin');

INSERT INTO ot VALUES (1, 'local');
SELECT 's' FROM pg_replication_origin_session_setup('kappa "test" origin');
BEGIN;
SELECT 'x' FROM pg_replication_origin_xact_setup('0/ABCD', '2026-01-01 00:00:00+00');
INSERT INTO ot VALUES (2, 'from the origin');
SELECT 'm' FROM pg_logical_emit_message(true, 'p', 'transactional, from the origin');
COMMIT;
SELECT 'm' FROM pg_logical_emit_message(false, 'p', 'non-transactional, from the origin');
INSERT INTO ot VALUES (3, 'from the origin too');
SELECT 'r' FROM pg_replication_origin_session_reset();
INSERT INTO ot VALUES (4, 'local again');
SELECT 'm' FROM pg_logical_emit_message(false, 'p', 'local message');
COMMENT ON TABLE ot IS 'flush';

SELECT * FROM decode('orig');
SELECT * FROM decode('orig2', 'include-origin', 'off');
SELECT * FROM decode('orig3', 'only-local', 'on');

-- a streamed transaction from the origin names it on every block; with
-- only-local nothing of it is sent
SELECT 's' FROM pg_replication_origin_session_setup('kappa "test" origin');
BEGIN;
INSERT INTO ot SELECT g, 'streamed from the origin' FROM generate_series(100, 3099) g;
COMMIT;
SELECT 'r' FROM pg_replication_origin_session_reset();
SELECT count(*) > 1 AS several_blocks, bool_and(data::jsonb->>'origin' = 'kappa "test" origin') AS all_with_origin
FROM pg_logical_slot_peek_changes('orig', NULL, NULL, 'streaming', 'on') WHERE data LIKE '{"kind":"stream_start"%';
SELECT count(*) AS lines FROM pg_logical_slot_get_changes('orig', NULL, NULL, 'streaming', 'on', 'only-local', 'on');

-- the session's origin progress was advanced by the commits
SELECT local_id IS NOT NULL AS has_id, remote_lsn FROM pg_replication_origin_status
  JOIN pg_replication_origin ON local_id = roident WHERE roname = 'kappa "test" origin';

SELECT pg_drop_replication_slot('orig');
SELECT pg_drop_replication_slot('orig2');
SELECT pg_drop_replication_slot('orig3');
SELECT pg_replication_origin_drop('kappa "test" origin');
DROP TABLE ot;
