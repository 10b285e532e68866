-- Logical decoding messages: transactional ones inside their transaction
-- (and counted), non-transactional ones on their own; prefixes filtered;
-- content as text when valid in the database encoding, else base64.
\set VERBOSITY terse
SELECT 'init' FROM pg_create_logical_replication_slot('msg', 'pg_kappa');
CREATE TABLE mt (id int);

SELECT 'm' FROM pg_logical_emit_message(true, 'tx', 'transactional alone');
SELECT 'm' FROM pg_logical_emit_message(false, 'ntx', 'non-transactional');
BEGIN;
INSERT INTO mt VALUES (1);
SELECT 'm' FROM pg_logical_emit_message(true, 'tx', 'between changes');
SELECT 'm' FROM pg_logical_emit_message(false, 'ntx', 'written at once, before the transaction');
INSERT INTO mt VALUES (2);
COMMIT;
-- a transactional message in an aborted transaction or subtransaction is
-- not written; a non-transactional one is
BEGIN;
SELECT 'm' FROM pg_logical_emit_message(true, 'tx', 'aborted');
SELECT 'm' FROM pg_logical_emit_message(false, 'ntx', 'from an aborted transaction');
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT 'm' FROM pg_logical_emit_message(true, 'tx', 'rolled back');
ROLLBACK TO SAVEPOINT s;
SELECT 'm' FROM pg_logical_emit_message(true, 'tx', 'kept');
COMMIT;
SELECT * FROM decode('msg');

-- Non-transactional messages are not flushed by themselves; a transaction
-- that writes WAL (the COMMENT below) flushes it, so they are decoded now.
--
-- content: escapes, non-ASCII, empty, text that is not valid UTF-8 and
-- bytes with NUL are base64; prefixes are escaped too
SELECT 'm' FROM pg_logical_emit_message(false, E'p"\\\n', E'quote " backslash \\ newline \n tab \t bell \x07 é ✓ 𝄞');
SELECT 'm' FROM pg_logical_emit_message(false, 'empty', '');
SELECT 'm' FROM pg_logical_emit_message(false, 'bin', '\x00010203fffe'::bytea);
SELECT 'm' FROM pg_logical_emit_message(false, 'latin1', '\x6361 66e9'::bytea);
SELECT 'm' FROM pg_logical_emit_message(false, 'utf8 bytes', convert_to('café', 'UTF8'));
COMMENT ON TABLE mt IS 'flush';
SELECT * FROM decode('msg');
-- base64 content decodes to the bytes sent
SELECT 'm' FROM pg_logical_emit_message(false, 'bin', '\x00010203fffe'::bytea);
SELECT 'm' FROM pg_logical_emit_message(true, 'big', decode(repeat('00ff', 5000), 'hex'));
COMMENT ON TABLE mt IS 'flush';
SELECT d->>'prefix' AS prefix, d->>'content_encoding' AS encoding,
       decode(d->>'content', 'base64') = CASE d->>'prefix' WHEN 'bin' THEN '\x00010203fffe'::bytea
                                          ELSE decode(repeat('00ff', 5000), 'hex') END AS same_bytes
FROM (SELECT decode::jsonb AS d FROM decode('msg')) s WHERE d->>'kind' = 'message';

-- message-prefixes and include-messages
SELECT 'init' FROM pg_create_logical_replication_slot('msg2', 'pg_kappa');
SELECT 'm' FROM pg_logical_emit_message(false, 'a', 'a1');
SELECT 'm' FROM pg_logical_emit_message(false, 'b', 'b1');
SELECT 'm' FROM pg_logical_emit_message(false, 'a,b', 'not a or b');
COMMENT ON TABLE mt IS 'flush';
BEGIN;
SELECT 'm' FROM pg_logical_emit_message(true, 'c', 'c1');
SELECT 'm' FROM pg_logical_emit_message(true, 'a', 'a2');
COMMIT;
BEGIN;
SELECT 'm' FROM pg_logical_emit_message(true, 'c', 'c only: empty transaction when filtered');
COMMIT;
SELECT * FROM decode('msg2', 'message-prefixes', ' a , b ');
SELECT * FROM decode('msg', 'include-messages', 'off');

SELECT pg_drop_replication_slot('msg');
SELECT pg_drop_replication_slot('msg2');
DROP TABLE mt;
