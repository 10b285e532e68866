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
