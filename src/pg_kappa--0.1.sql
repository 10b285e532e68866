/* src/pg_kappa--0.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pg_kappa" to load this file. \quit

-- Schema kappa must be the installing role's: one created beforehand by
-- another role (a database owner, say) would let that role put objects
-- where pg_kappa's SECURITY DEFINER functions and its workers look.
DO $$
BEGIN
    IF (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) 'kappa')
       OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
        RAISE EXCEPTION 'schema kappa already exists and belongs to another role'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Drop or rename schema kappa, or have its owner transfer it to the role that creates the extension, then create the extension again.';
    END IF;
END
$$;

COMMENT ON SCHEMA kappa IS 'pg_kappa: change events, derived views, replay and audits';
GRANT USAGE ON SCHEMA kappa TO PUBLIC;

-- One row per derived view.  Written by kappa.create_view, kappa.alter_view
-- and kappa.drop_view (as the extension owner) and by the apply worker,
-- which records each view's progress in the same transaction as its deltas.
CREATE TABLE kappa.views (
    id              serial PRIMARY KEY,
    relid           oid NOT NULL UNIQUE,        -- the derived table
    name            text NOT NULL,              -- as created, schema-qualified
    query           text NOT NULL,              -- as the user wrote it
    canonical       text NOT NULL,              -- fully qualified, as deparsed
    owner           oid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('project', 'aggregate', 'join', 'join_aggregate')),
    sources         oid[] NOT NULL,             -- distinct source tables
    arrangements    oid[] NOT NULL,             -- the worker's copy of each source
    key_columns     text[] NOT NULL,            -- the derived table's unique key
    state           text NOT NULL DEFAULT 'running'
                    CHECK (state IN ('initializing', 'running', 'paused', 'stale', 'broken')),
    created_lsn     pg_lsn NOT NULL,
    applied_lsn     pg_lsn NOT NULL,            -- commit LSN of the last applied transaction
    last_commit_time timestamptz,               -- its commit time
    txns_applied    bigint NOT NULL DEFAULT 0,  -- source transactions applied
    rows_applied    bigint NOT NULL DEFAULT 0,  -- derived rows written or removed
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON kappa.views FROM PUBLIC;
GRANT SELECT ON kappa.views TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('kappa.views', '');

CREATE FUNCTION kappa.create_view(name text, query text,
                                  search_path text DEFAULT pg_catalog.current_setting('search_path'))
RETURNS regclass
AS 'MODULE_PATHNAME', 'kappa_create_view'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION kappa.create_view(text, text, text) IS
'create a derived table from a query and maintain it from the change stream';

CREATE FUNCTION kappa.drop_view(view regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'kappa_drop_view'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION kappa.alter_view(view regclass, paused boolean DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'kappa_alter_view'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION kappa.wait(view regclass,
                           target pg_lsn DEFAULT pg_catalog.pg_current_wal_insert_lsn(),
                           timeout interval DEFAULT '10s')
RETURNS boolean
AS 'MODULE_PATHNAME', 'kappa_wait'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION kappa.wait(regclass, pg_lsn, interval) IS
'block until the derived view includes everything up to target; false on timeout';

CREATE FUNCTION kappa.verify(view regclass)
RETURNS TABLE (kind text, "row" jsonb, count bigint)
AS 'MODULE_PATHNAME', 'kappa_verify'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION kappa.verify(regclass) IS
'differences between a derived view and its query at one consistent point; none when the view is right';

CREATE FUNCTION kappa.verify_all()
RETURNS TABLE (view regclass, missing bigint, extra bigint, ok boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT relid::regclass AS rel FROM kappa.views WHERE state = 'running' ORDER BY id LOOP
        view := v.rel;
        SELECT COALESCE(sum(f.count) FILTER (WHERE f.kind = 'missing'), 0),
               COALESCE(sum(f.count) FILTER (WHERE f.kind = 'extra'), 0)
          INTO missing, extra
          FROM kappa.verify(v.rel) f;
        ok := missing = 0 AND extra = 0;
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE FUNCTION kappa.worker_status(
    OUT database oid, OUT pid integer, OUT state text,
    OUT slot_name text, OUT processed_lsn pg_lsn, OUT last_batch_at timestamptz,
    OUT restarts integer, OUT last_error text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kappa_worker_status'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

-- Refuses direct writes to derived tables and arrangements.
CREATE FUNCTION kappa.guard()
RETURNS trigger
AS 'MODULE_PATHNAME', 'kappa_guard'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;

-- Status: one row per view, one per slot of this database.
CREATE VIEW kappa.status AS
WITH w AS (
    SELECT * FROM kappa.worker_status() WHERE database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
), cur AS (
    SELECT pg_catalog.pg_current_wal_flush_lsn() AS lsn
)
SELECT 'view'::text AS kind,
       v.name,
       v.state,
       CASE WHEN v.state = 'running' AND w.processed_lsn > v.applied_lsn
            THEN w.processed_lsn ELSE v.applied_lsn END AS applied_lsn,
       CASE WHEN v.state = 'running' AND w.processed_lsn > v.applied_lsn
            THEN pg_catalog.pg_wal_lsn_diff(cur.lsn, w.processed_lsn)
            ELSE pg_catalog.pg_wal_lsn_diff(cur.lsn, v.applied_lsn) END::bigint AS lag_bytes,
       CASE WHEN v.state = 'running' AND w.processed_lsn >= cur.lsn THEN 0::float8
            ELSE pg_catalog.date_part('epoch', pg_catalog.now() - COALESCE(w.last_batch_at, v.last_commit_time, v.created_at)) END AS lag_seconds,
       v.txns_applied,
       v.rows_applied,
       COALESCE(v.last_error, CASE WHEN v.state = 'running' THEN w.last_error END) AS last_error,
       NULL::bigint AS wal_retained_bytes
FROM kappa.views v CROSS JOIN cur LEFT JOIN w ON true
UNION ALL
SELECT 'slot', s.slot_name::text,
       CASE WHEN s.active THEN 'active' ELSE 'inactive' END,
       s.confirmed_flush_lsn,
       pg_catalog.pg_wal_lsn_diff(cur.lsn, s.confirmed_flush_lsn)::bigint,
       NULL, NULL, NULL, NULL,
       pg_catalog.pg_wal_lsn_diff(cur.lsn, s.restart_lsn)::bigint
FROM pg_catalog.pg_replication_slots s CROSS JOIN cur
WHERE s.plugin = 'pg_kappa' AND s.database = pg_catalog.current_database()
  AND s.slot_name LIKE 'pg\_kappa\_%';
GRANT SELECT ON kappa.status TO PUBLIC;

-- Keeps the catalog in step with DDL: a dropped derived table drops its
-- view and the view's internal schema; a dropped source, or a source whose
-- columns no longer match the worker's copy of it, marks its views broken.
CREATE FUNCTION kappa.on_sql_drop()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
    obj record;
    v record;
BEGIN
    FOR obj IN SELECT * FROM pg_event_trigger_dropped_objects()
               WHERE object_type IN ('table', 'foreign table', 'view', 'materialized view')
    LOOP
        FOR v IN DELETE FROM kappa.views WHERE relid = obj.objid RETURNING id LOOP
            IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'kappa_v' || v.id) THEN
                EXECUTE format('ALTER EXTENSION pg_kappa DROP SCHEMA %I', 'kappa_v' || v.id);
                EXECUTE format('DROP SCHEMA %I CASCADE', 'kappa_v' || v.id);
            END IF;
        END LOOP;
        UPDATE kappa.views
           SET state = 'broken',
               last_error = format('internal table %s was dropped', obj.object_identity)
         WHERE obj.objid = ANY (arrangements) AND state <> 'broken';
        UPDATE kappa.views
           SET state = 'broken',
               last_error = format('source table %s was dropped', obj.object_identity)
         WHERE obj.objid = ANY (sources) AND state <> 'broken';
    END LOOP;
END
$$;

CREATE FUNCTION kappa.on_ddl_end()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cmd record;
BEGIN
    FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands()
               WHERE object_type = 'table'
    LOOP
        UPDATE kappa.views v
           SET state = 'broken',
               last_error = format('columns of source table %s changed', cmd.object_identity)
         WHERE v.state <> 'broken'
           AND cmd.objid = ANY (v.sources)
           AND EXISTS (
               SELECT attnum, attname, atttypid, atttypmod, attisdropped
                 FROM pg_attribute WHERE attrelid = cmd.objid AND attnum > 0
               EXCEPT
               SELECT attnum, attname, atttypid, atttypmod, attisdropped
                 FROM pg_attribute
                WHERE attrelid = v.arrangements[array_position(v.sources, cmd.objid)]
                  AND attnum > 0);
    END LOOP;
END
$$;

CREATE EVENT TRIGGER kappa_sql_drop ON sql_drop
    EXECUTE FUNCTION kappa.on_sql_drop();
CREATE EVENT TRIGGER kappa_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION kappa.on_ddl_end();
