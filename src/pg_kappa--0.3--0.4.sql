/* src/pg_kappa--0.3--0.4.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_kappa UPDATE TO '0.4'" to load this file. \quit

-- 0.4: the delta engine v2 by default, replay by compaction and a fast log
-- reader, scaling out (views on logical replicas, kappa_recv into NATS
-- JetStream).

-- kappa.wait on a logical replica: origin_lsn, a position in the WAL of a
-- subscription's publisher (its pg_current_wal_insert_lsn() after the
-- commit to wait for), and the subscription, when more than one
-- replicates the view's sources.  target defaults to NULL, the current
-- insert position, so that a target passed with origin_lsn can be told
-- apart and refused.  The library still takes 0.3's three arguments.
DROP FUNCTION kappa.wait(regclass, pg_lsn, interval);
CREATE FUNCTION kappa.wait(view regclass,
                           target pg_lsn DEFAULT NULL,
                           timeout interval DEFAULT '10s',
                           origin_lsn pg_lsn DEFAULT NULL,
                           subscription name DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'kappa_wait'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION kappa.wait(regclass, pg_lsn, interval, pg_lsn, name) IS
'block until the derived view includes everything up to target (a local LSN, by default the current insert position), or up to origin_lsn on the publisher of the subscription that replicates its sources; false on timeout';

-- Engine 2 is the default from 0.4 on.  Views made by engine 1 keep a copy
-- of every source: build them again with engine 2, which keeps none (only
-- the state of their aggregates).  Engine 2 needs REPLICA IDENTITY FULL on
-- every source.  A view that cannot be converted keeps engine 1, with a
-- WARNING; paused and broken views are left as they are.  The update runs
-- as a superuser, but sets REPLICA IDENTITY FULL only on the sources that
-- the view's owner owns, as kappa.create_view and kappa.alter_view do: a
-- view over another role's table (SELECT is enough for engine 1) must not
-- make the update change that table (its WAL, its old rows in the log).
-- The view keeps engine 1 until the table's owner sets it.
DO $$
DECLARE
    v record;
    src oid;
BEGIN
    FOR v IN SELECT kv.id, kv.relid, kv.name, kv.sources, c.relowner AS owner
               FROM kappa.views kv JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) kv.relid
              WHERE kv.engine OPERATOR(pg_catalog.=) 1 AND kv.state IN ('running', 'initializing')
              ORDER BY kv.id
    LOOP
        BEGIN
            FOREACH src IN ARRAY v.sources
            LOOP
                IF (SELECT relreplident OPERATOR(pg_catalog.<>) 'f' AND relowner OPERATOR(pg_catalog.=) v.owner
                      FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) src) THEN
                    RAISE NOTICE 'set REPLICA IDENTITY FULL on %, a source of derived view %',
                        src::pg_catalog.regclass, v.name;
                    EXECUTE pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY FULL',
                                              src::pg_catalog.regclass);
                END IF;
            END LOOP;
            PERFORM kappa.alter_view(v.relid, engine => 2);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'derived view % keeps delta engine 1: %', v.name, SQLERRM
                USING HINT = pg_catalog.format('Solve the problem, then run SELECT kappa.alter_view(%L, engine => 2);', v.name);
        END;
    END LOOP;
END
$$;

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
