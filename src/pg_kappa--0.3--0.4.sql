/* src/pg_kappa--0.3--0.4.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_kappa UPDATE TO '0.4'" to load this file. \quit

-- 0.4: the delta engine v2 by default, replay by compaction and a fast log
-- reader, scaling out (views on logical replicas, kappa_recv into NATS
-- JetStream).
