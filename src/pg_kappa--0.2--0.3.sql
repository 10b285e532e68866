/* src/pg_kappa--0.2--0.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_kappa UPDATE TO '0.3'" to load this file. \quit

-- 0.3: security and hardening (view code runs as the view's owner,
-- security-restricted; read paths show only what the caller may read;
-- sources checked for replica identity, renames, inheritance and RLS).

-- The delta engine that maintains a view: 1 keeps a copy of each source
-- (kappa_v<id>.a_<n>, in arrangements); 2 takes signed deltas from the WAL
-- and reads the live sources (arrangements then holds its d_<n> tables,
-- which mirror the sources' columns).
ALTER TABLE kappa.views ADD COLUMN engine smallint NOT NULL DEFAULT 1
    CHECK (engine IN (1, 2));

-- May the current user SELECT from a relation (and use its schema)?
CREATE FUNCTION kappa.can_read(relid oid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'kappa_can_read'
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp;

-- May the current user read a view's catalog row: its query, and its
-- errors, which may quote rows of its sources?  Its owner may, and roles
-- that may read the derived table and every source.
CREATE FUNCTION kappa.can_read_view(relid oid, sources oid[])
RETURNS boolean
AS 'MODULE_PATHNAME', 'kappa_can_read_view'
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp;

-- A view's query and last error are its readers' business: each role sees
-- the rows of kappa.views it may read (kappa.can_read_view).  The extension
-- owner (and the workers, as superusers) see every row.
ALTER TABLE kappa.views ENABLE ROW LEVEL SECURITY;
CREATE POLICY views_readable ON kappa.views FOR SELECT
    USING (kappa.can_read_view(relid, sources));

-- What makes a view's sources unfit for it now, or NULL: its columns
-- changed (renamed too), a replica identity that no longer
-- identifies rows by the key the worker matches them on, row-level
-- security that applies to the view's owner, or the owner's SELECT
-- privilege gone.  Dropped sources are kappa.on_sql_drop's business.
CREATE FUNCTION kappa.source_problem(v kappa.views)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owner oid;
    src oid;
    c record;
    srcname text;
    key_then int2[];
    key_now int2[];
BEGIN
    SELECT relowner INTO owner FROM pg_class WHERE oid = v.relid;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    FOR i IN 1 .. coalesce(array_length(v.sources, 1), 0) LOOP
        src := v.sources[i];
        SELECT cl.relname, cl.relreplident, cl.relrowsecurity, cl.relforcerowsecurity,
               cl.relowner, n.nspname
          INTO c
          FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace
         WHERE cl.oid = src;
        IF NOT FOUND THEN
            CONTINUE;
        END IF;
        srcname := format('%I.%I', c.nspname, c.relname);
        IF EXISTS (
               SELECT attnum, attname, atttypid, atttypmod, attisdropped
                 FROM pg_attribute WHERE attrelid = src AND attnum > 0
               EXCEPT
               SELECT attnum, attname, atttypid, atttypmod, attisdropped
                 FROM pg_attribute WHERE attrelid = v.arrangements[i] AND attnum > 0) THEN
            RETURN format('columns of source table %s changed', srcname);
        END IF;
        IF v.engine >= 2 THEN
            -- whole old rows in the WAL: nothing else identifies them
            IF c.relreplident <> 'f' THEN
                RETURN format('source table %s no longer has REPLICA IDENTITY FULL', srcname);
            END IF;
        ELSIF c.relreplident = 'n' THEN
            RETURN format('source table %s has REPLICA IDENTITY NOTHING: its deleted and updated rows cannot be identified', srcname);
        END IF;
        SELECT indkey::int2[] INTO key_then FROM pg_index
         WHERE indrelid = v.arrangements[i] AND indisunique ORDER BY indexrelid LIMIT 1;
        IF c.relreplident = 'i' THEN
            SELECT indkey::int2[] INTO key_now FROM pg_index WHERE indrelid = src AND indisreplident;
        ELSE
            SELECT indkey::int2[] INTO key_now FROM pg_index WHERE indrelid = src AND indisprimary;
        END IF;
        IF v.engine < 2 AND key_now IS DISTINCT FROM key_then THEN
            RETURN format('the replica identity of source table %s no longer is the key the view was created with', srcname);
        END IF;
        IF c.relrowsecurity
           AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = owner AND (r.rolsuper OR r.rolbypassrls))
           AND NOT (c.relowner = owner AND NOT c.relforcerowsecurity) THEN
            RETURN format('row-level security on source table %s applies to the owner of the view', srcname);
        END IF;
        IF NOT has_table_privilege(owner, src, 'SELECT') THEN
            RETURN format('the owner of the view no longer has SELECT privilege on source table %s', srcname);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION kappa.source_problem(kappa.views) FROM PUBLIC;

-- DDL that can make a view's sources unfit for it (ALTER TABLE: columns,
-- replica identity, row-level security, owners; GRANT and REVOKE) marks the affected views broken, in the same
-- transaction, so that no batch after it is applied to them.  (A policy
-- changed while row-level security is enabled changes nothing: the view
-- is broken already unless its owner bypasses row-level security.)
CREATE OR REPLACE FUNCTION kappa.on_ddl_end()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v kappa.views;
    problem text;
    cmd record;
BEGIN
    -- a view's internal tables are its owner's, but not to be altered
    FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands()
               WHERE schema_name ~ '^kappa_v[0-9]+$' LOOP
        UPDATE kappa.views
           SET state = 'broken',
               last_error = format('internal table %s of the view was altered', cmd.object_identity)
         WHERE id = substr(cmd.schema_name, 8)::int AND state <> 'broken';
    END LOOP;
    FOR v IN SELECT * FROM kappa.views WHERE state <> 'broken' ORDER BY id LOOP
        problem := kappa.source_problem(v);
        IF problem IS NOT NULL THEN
            UPDATE kappa.views SET state = 'broken', last_error = problem WHERE id = v.id;
        END IF;
    END LOOP;
END
$$;

DROP EVENT TRIGGER kappa_ddl_end;
CREATE EVENT TRIGGER kappa_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'GRANT', 'REVOKE')
    EXECUTE FUNCTION kappa.on_ddl_end();

-- kappa.replay's fourth parameter was "into", a reserved word users could
-- not write as a named argument: it is new_name now, at the same position.
DROP FUNCTION kappa.replay(regclass, pg_lsn, pg_lsn, text);
CREATE FUNCTION kappa.replay(view regclass, from_lsn pg_lsn DEFAULT NULL,
                             until_lsn pg_lsn DEFAULT NULL, new_name text DEFAULT NULL)
RETURNS regclass
AS 'MODULE_PATHNAME', 'kappa_replay'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION kappa.replay(regclass, pg_lsn, pg_lsn, text) IS
'rebuild a derived view from the event log (each source compacted to its rows at the end point, then the view''s query once), in place or into a new view (new_name), or as it was at until_lsn';

-- ====================================================================
-- BEGIN pg_kappa 0.3: failed captures (pg_kappa.max_event_bytes)
--
-- A change of a captured table that the event log cannot take (its record
-- is larger than pg_kappa.max_event_bytes, or could not be written) is not
-- dropped silently: the apply worker marks the capture failed, in the
-- transaction of the batch, and logs nothing more of that table.  The log
-- keeps a complete prefix of the table's changes, up to failed_lsn.
-- kappa.status shows failed captures and the audit reports their log as
-- incomplete, until kappa.uncapture.
-- ====================================================================
ALTER TABLE kappa.captures
    ADD COLUMN state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'failed')),
    ADD COLUMN failed_lsn pg_lsn,               -- commit LSN of the first transaction not logged
    ADD COLUMN last_error text,                 -- why it was not logged
    ADD CONSTRAINT captures_failed_lsn CHECK ((state = 'failed') = (failed_lsn IS NOT NULL));

-- Status: the views and slots as above, and failed captures.
CREATE OR REPLACE VIEW kappa.status AS
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
       CASE WHEN kappa.can_read_view(v.relid, v.sources)
            THEN COALESCE(v.last_error,
                          CASE WHEN v.state = 'running' AND
                                    pg_catalog.pg_has_role('pg_read_all_stats', 'MEMBER')
                               THEN w.last_error END) END AS last_error,
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
  AND s.slot_name LIKE 'pg\_kappa\_%'
UNION ALL
SELECT 'capture', c.name, c.state, c.failed_lsn,
       pg_catalog.pg_wal_lsn_diff(cur.lsn, c.failed_lsn)::bigint,
       NULL, NULL, NULL, c.last_error, NULL
FROM kappa.captures c CROSS JOIN cur
WHERE c.state <> 'active'
UNION ALL
-- a replay in progress: its backend's activity text (replay_state.c) is
-- "kappa.replay(<view>): <step>"; pg_stat_activity shows it to the same
-- role and to pg_read_all_stats only
SELECT 'replay',
       pg_catalog.substr(a.query, 14, pg_catalog.strpos(a.query, '): ') - 14),
       pg_catalog.substr(a.query, pg_catalog.strpos(a.query, '): ') + 3),
       NULL, NULL,
       pg_catalog.date_part('epoch', pg_catalog.statement_timestamp() - a.query_start),
       NULL, NULL, NULL, NULL
FROM pg_catalog.pg_stat_activity a
WHERE a.datname = pg_catalog.current_database() AND a.state = 'active'
  AND a.query LIKE 'kappa.replay(%): %';

-- ======================================================================
-- BEGIN dump and restore (item 14)
--
-- pg_dump dumps pg_kappa's catalog and event log (registered below with
-- pg_extension_config_dump, sequences too) and the derived tables, but not
-- the views' internal schemas and tables, which are members of the
-- extension.  A restore's rows for kappa.views and kappa.captures name the
-- old database's OIDs: kappa.restore_divert sets them aside in
-- kappa.restore_pending, and kappa.restore() makes working views and
-- captures of them (README, "Backup and restore").  The event log is
-- loaded as dumped, its hash chain intact; a "restore" row continues it.
-- ======================================================================

-- the sequences, so that ids go on where the dumped database left them
SELECT pg_catalog.pg_extension_config_dump('kappa.views_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.audit_log_id_seq', '');

-- What a restore loaded into kappa.views and kappa.captures (the rows, as
-- dumped), and whether it loaded the event log ('log'), until
-- kappa.restore() has dealt with it.  Dumped, so that a database dumped
-- before kappa.restore() ran keeps it.
CREATE TABLE kappa.restore_pending (
    kind            text NOT NULL CHECK (kind IN ('view', 'capture', 'log')),
    "row"           jsonb,
    restored_at     timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON kappa.restore_pending FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('kappa.restore_pending', '');

-- Rows inserted into kappa.views or kappa.captures other than by pg_kappa
-- itself go to kappa.restore_pending instead.  ALWAYS: also when a restore
-- runs with session_replication_role = replica.
CREATE FUNCTION kappa.restore_divert()
RETURNS trigger
AS 'MODULE_PATHNAME', 'kappa_restore_divert'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;
CREATE TRIGGER kappa_restore_divert BEFORE INSERT ON kappa.views
    FOR EACH ROW EXECUTE FUNCTION kappa.restore_divert();
CREATE TRIGGER kappa_restore_divert BEFORE INSERT ON kappa.captures
    FOR EACH ROW EXECUTE FUNCTION kappa.restore_divert();
ALTER TABLE kappa.views ENABLE ALWAYS TRIGGER kappa_restore_divert;
ALTER TABLE kappa.captures ENABLE ALWAYS TRIGGER kappa_restore_divert;

CREATE FUNCTION kappa.restore(discard_missing boolean DEFAULT false,
                              OUT kind text, OUT name text, OUT action text, OUT detail text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kappa_restore'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION kappa.restore(boolean) FROM PUBLIC;
COMMENT ON FUNCTION kappa.restore(boolean) IS
'after pg_restore: rebuild the restored derived views, capture the restored captures again and continue the event log';

-- A restore row starts the restored database's part of the chain: no
-- records, at that database's WAL position.
ALTER TABLE kappa.event_log DROP CONSTRAINT event_log_kind_check;
ALTER TABLE kappa.event_log ADD CONSTRAINT event_log_kind_check
    CHECK (kind IN ('batch', 'snapshot', 'restore'));

-- The audit of the chain: as in 0.2, except that WAL positions are
-- compared only within each database's part of the chain, which a
-- restore row starts.
CREATE OR REPLACE FUNCTION kappa.audit_chain(OUT "check" text, OUT object text, OUT ok boolean, OUT detail text)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b record;
    prev record;
    expect_id bigint;
    expect_hash bytea;
    last_lsn pg_lsn;
    recomputed bytea;
    n bigint := 0;
    bad bigint := 0;
BEGIN
    SELECT p.last_batch + 1, p.last_hash, p.last_lsn INTO expect_id, expect_hash, last_lsn
      FROM kappa.event_log_pruned p ORDER BY p.last_batch DESC LIMIT 1;
    IF NOT FOUND THEN
        expect_id := 1;
        expect_hash := '\x'::bytea;
        last_lsn := '0/0';
    END IF;
    FOR b IN SELECT * FROM kappa.event_log ORDER BY batch_id LOOP
        n := n + 1;
        recomputed := sha256(b.prev_hash ||
                             convert_to(format('%s|%s|%s|%s|%s|%s|%s|%s|',
                                               b.batch_id, b.kind, b.first_lsn, b.last_lsn,
                                               b.txn_count, b.change_count, b.tables, b.table_names)
                                        || b.events, pg_catalog.getdatabaseencoding()));
        IF b.batch_id <> expect_id THEN
            bad := bad + 1;
            "check" := 'chain'; object := 'batch ' || b.batch_id; ok := false;
            detail := CASE WHEN b.batch_id > expect_id
                           THEN format('batches %s to %s are missing', expect_id, b.batch_id - 1)
                           ELSE format('batch %s is out of order (expected batch %s)', b.batch_id, expect_id) END;
            RETURN NEXT;
        ELSIF b.prev_hash <> expect_hash THEN
            bad := bad + 1;
            "check" := 'chain'; object := 'batch ' || b.batch_id; ok := false;
            detail := 'previous hash does not match the hash of the batch before it';
            RETURN NEXT;
        END IF;
        IF recomputed <> b.hash THEN
            bad := bad + 1;
            "check" := 'chain'; object := 'batch ' || b.batch_id; ok := false;
            detail := 'hash does not match the batch''s contents';
            RETURN NEXT;
        END IF;
        IF b.kind = 'restore' AND (b.events <> '' OR b.txn_count <> 0 OR b.change_count <> 0) THEN
            bad := bad + 1;
            "check" := 'chain'; object := 'batch ' || b.batch_id; ok := false;
            detail := 'a restore row carries records';
            RETURN NEXT;
        END IF;
        -- batches follow commit order; a snapshot sits at its capture's LSN
        IF b.kind = 'batch' AND
           (b.first_lsn > b.last_lsn OR b.first_lsn < last_lsn OR
            (b.first_lsn = last_lsn AND b.events LIKE '{"kind":"begin"%')) THEN
            bad := bad + 1;
            "check" := 'continuity'; object := 'batch ' || b.batch_id; ok := false;
            detail := format('batch covers %s to %s but the batches before it reach %s',
                             b.first_lsn, b.last_lsn, last_lsn);
            RETURN NEXT;
        END IF;
        IF (SELECT count(*) FROM regexp_matches(b.events, '^\{"kind":"commit"', 'gn')) <> b.txn_count
           AND b.kind = 'batch' THEN
            bad := bad + 1;
            "check" := 'chain'; object := 'batch ' || b.batch_id; ok := false;
            detail := 'transaction count does not match the batch''s records';
            RETURN NEXT;
        END IF;
        expect_id := b.batch_id + 1;
        expect_hash := b.hash;
        IF b.kind = 'batch' THEN
            last_lsn := GREATEST(last_lsn, b.last_lsn);
        ELSIF b.kind = 'restore' THEN
            -- WAL positions from here on are the restored database's
            last_lsn := b.last_lsn;
        END IF;
    END LOOP;
    IF bad = 0 THEN
        "check" := 'chain'; object := 'event log'; ok := true;
        detail := format('%s batches, hash chain and LSN order intact', n);
        RETURN NEXT;
    END IF;
    -- a failed capture's log stops short: it is not complete, whatever
    -- the chain says
    FOR b IN SELECT * FROM kappa.captures WHERE state = 'failed' ORDER BY name LOOP
        "check" := 'capture'; object := b.name; ok := false;
        detail := format('the event log of %s is incomplete: nothing committed from %s on is logged (%s)',
                         b.name, b.failed_lsn, b.last_error);
        RETURN NEXT;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION kappa.audit_chain() FROM PUBLIC;

-- A view's internal schema and its tables are members of the extension;
-- dropping them takes releasing the tables first (a member dropped with
-- its schema would take the whole extension with it).  As the extension
-- owner: from kappa.drop_view, create_view and kappa.on_sql_drop.
CREATE FUNCTION kappa.drop_internal_schema(view_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
    schema text := 'kappa_v' || view_id;
    nsp oid;
    r record;
BEGIN
    SELECT oid INTO nsp FROM pg_namespace WHERE nspname = schema;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOR r IN SELECT c.oid::regclass AS rel
               FROM pg_class c
               JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
                               AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
              WHERE c.relnamespace = nsp AND c.relkind IN ('r', 'v')
    LOOP
        EXECUTE format('ALTER EXTENSION pg_kappa DROP %s %s',
                       CASE (SELECT relkind FROM pg_class WHERE oid = r.rel) WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END,
                       r.rel);
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = 'pg_namespace'::regclass AND d.objid = nsp
                  AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e') THEN
        EXECUTE format('ALTER EXTENSION pg_kappa DROP SCHEMA %I', schema);
    END IF;
    EXECUTE format('DROP SCHEMA %I CASCADE', schema);
END
$$;
REVOKE ALL ON FUNCTION kappa.drop_internal_schema(bigint) FROM PUBLIC;

-- As in 0.2, with the internal schema dropped by kappa.drop_internal_schema.
CREATE OR REPLACE FUNCTION kappa.on_sql_drop()
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
            PERFORM kappa.drop_internal_schema(v.id);
        END LOOP;
        UPDATE kappa.views
           SET state = 'broken',
               last_error = format('internal table %s was dropped', obj.object_identity)
         WHERE obj.objid = ANY (arrangements) AND state <> 'broken';
        UPDATE kappa.views
           SET state = 'broken',
               last_error = format('source table %s was dropped', obj.object_identity)
         WHERE obj.objid = ANY (sources) AND state <> 'broken';
        DELETE FROM kappa.captures WHERE relid = obj.objid;
    END LOOP;
END
$$;

-- Views created before 0.3: their internal tables become members too.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.oid::regclass AS rel
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname ~ '^kappa_v[0-9]+$' AND c.relkind = 'r'
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.deptype = 'e')
              ORDER BY c.oid
    LOOP
        EXECUTE format('ALTER EXTENSION pg_kappa ADD TABLE %s', r.rel);
    END LOOP;
END
$$;

-- ======================================================================
-- END dump and restore (item 14)
-- ======================================================================

-- alter_view(engine => 2) builds a view again, around its table, with the
-- other delta engine (engine 2 drops the copies of the sources).
DROP FUNCTION kappa.alter_view(regclass, boolean, interval);
CREATE FUNCTION kappa.alter_view(view regclass, paused boolean DEFAULT NULL,
                                 audit_every interval DEFAULT NULL,
                                 engine integer DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'kappa_alter_view'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION kappa.alter_view(regclass, boolean, interval, integer) IS
'pause or resume a derived view, schedule its audits, or build it again with another delta engine';

-- Audits that one view cannot spoil for everyone: a view whose
-- verification fails (its query raises, say) is reported as a failed
-- check, and the others are verified all the same; kappa.audit(due_only
-- => true), what the audit worker runs, verifies only the views whose
-- audit_every says they are due.  A catalog row without its table is
-- reported, not verified.  Views are checked against the log only from
-- the latest restore row on: the table OIDs and WAL positions of rows
-- before it are the restored database's.
DROP FUNCTION kappa.audit();
CREATE FUNCTION kappa.audit(due_only boolean DEFAULT false)
RETURNS SETOF kappa.audit_log
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started timestamptz := clock_timestamp();
    c record;
    v record;
    logged pg_lsn;
    missing bigint;
    extra bigint;
BEGIN
    FOR c IN SELECT * FROM kappa.audit_chain() LOOP
        INSERT INTO kappa.audit_log (at, "check", object, ok, detail)
        VALUES (started, c."check", c.object, c.ok, c.detail);
    END LOOP;

    -- every change logged for a running view's sources is in the view
    FOR v IN SELECT * FROM kappa.views
              WHERE state = 'running'
                AND (NOT due_only OR (audit_every IS NOT NULL AND
                                      (last_audit_at IS NULL OR last_audit_at + audit_every <= now())))
              ORDER BY id LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = v.relid) THEN
            INSERT INTO kappa.audit_log (at, "check", object, ok, detail)
            VALUES (started, 'verify', v.name, false,
                    format('derived table with OID %s no longer exists', v.relid));
            CONTINUE;
        END IF;
        SELECT max(l.last_lsn) INTO logged FROM kappa.event_log l
         WHERE l.tables && v.sources AND l.kind = 'batch'
           AND l.batch_id > COALESCE((SELECT max(r.batch_id) FROM kappa.event_log r
                                       WHERE r.kind = 'restore'), 0);
        INSERT INTO kappa.audit_log (at, "check", object, ok, detail)
        VALUES (started, 'applied_lsn', v.name, logged IS NULL OR logged <= v.applied_lsn,
                CASE WHEN logged IS NULL OR logged <= v.applied_lsn
                     THEN format('applied up to %s; log of its sources ends at %s', v.applied_lsn, logged)
                     ELSE format('the log holds changes up to %s but the view was applied only up to %s',
                                 logged, v.applied_lsn) END);

        BEGIN
            SELECT COALESCE(sum(f.count) FILTER (WHERE f.kind = 'missing'), 0),
                   COALESCE(sum(f.count) FILTER (WHERE f.kind = 'extra'), 0)
              INTO missing, extra
              FROM kappa.verify(v.relid::regclass) f;
            INSERT INTO kappa.audit_log (at, "check", object, ok, detail)
            VALUES (started, 'verify', v.name, missing = 0 AND extra = 0,
                    format('%s missing and %s extra rows', missing, extra));
        EXCEPTION WHEN OTHERS THEN
            INSERT INTO kappa.audit_log (at, "check", object, ok, detail)
            VALUES (started, 'verify', v.name, false,
                    format('could not verify the view: %s', SQLERRM));
        END;
        UPDATE kappa.views SET last_audit_at = started WHERE id = v.id;
    END LOOP;

    RETURN QUERY SELECT * FROM kappa.audit_log WHERE at = started AND NOT ok ORDER BY id;
END
$$;
COMMENT ON FUNCTION kappa.audit(boolean) IS
'check the event log''s hash chain and LSN order, views against the log and against their queries; returns the failures';

CREATE OR REPLACE FUNCTION kappa.verify_all()
RETURNS TABLE (view regclass, missing bigint, extra bigint, ok boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT relid::regclass AS rel FROM kappa.views
              WHERE state = 'running'
                AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = relid)
              ORDER BY id LOOP
        view := v.rel;
        BEGIN
            SELECT COALESCE(sum(f.count) FILTER (WHERE f.kind = 'missing'), 0),
                   COALESCE(sum(f.count) FILTER (WHERE f.kind = 'extra'), 0)
              INTO missing, extra
              FROM kappa.verify(v.rel) f;
            ok := missing = 0 AND extra = 0;
        EXCEPTION WHEN OTHERS THEN
            -- a view that cannot be verified is not ok, and not the others' problem
            RAISE WARNING 'could not verify derived view %: %', v.rel, SQLERRM;
            missing := NULL;
            extra := NULL;
            ok := false;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Who may read audit results: the chain's to everyone, a view's to those
-- who may read the view (its catalog row, by the name it was audited under;
-- another table of that name later is not the view).
ALTER TABLE kappa.audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_log_readable ON kappa.audit_log FOR SELECT
    USING ("check" NOT IN ('verify', 'applied_lsn')
           OR EXISTS (SELECT 1 FROM kappa.views v
                       WHERE v.name OPERATOR(pg_catalog.=) object
                         AND kappa.can_read_view(v.relid, v.sources)));

-- Trigger functions that belong on pg_kappa's own tables only: nobody
-- else may attach them (they also refuse to fire elsewhere).
REVOKE ALL ON FUNCTION kappa.log_guard() FROM PUBLIC;
REVOKE ALL ON FUNCTION kappa.restore_divert() FROM PUBLIC;
