/* src/pg_kappa--0.3--0.4.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_kappa UPDATE TO '0.4'" to load this file. \quit

-- 0.4: the delta engine v2 by default, replay by compaction and a fast log
-- reader, scaling out (views on logical replicas, kappa_recv into NATS
-- JetStream).

-- The event log's batches are compressed with lz4 where the server was
-- built with it (pglz otherwise, as before): about five times faster to
-- compress for the apply worker that appends them, and faster to read back
-- for kappa.events and replay, for some more bytes on disk.  Only the
-- storage changes: the chain hashes the text.
DO $$
BEGIN
    ALTER TABLE kappa.event_log ALTER COLUMN events SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$$;
