/* src/pg_kappa--0.1--0.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_kappa UPDATE TO '0.2'" to load this file. \quit

-- 0.2: the event log (kappa.capture, kappa.events), replay through the
-- delta engine (kappa.replay, kappa.swap, create_view ... replay_from),
-- and audits (kappa.audit, kappa.audit_log, alter_view ... audit_every).

-- Tables whose changes are logged.  Written by kappa.capture and
-- kappa.uncapture as the extension owner.
CREATE TABLE kappa.captures (
    relid           oid PRIMARY KEY,
    name            text NOT NULL,              -- as captured, schema-qualified
    retain          interval CHECK (retain > '0'),  -- NULL: keep forever
    start_lsn       pg_lsn NOT NULL,            -- position of the snapshot batch
    pruned_lsn      pg_lsn,                     -- log pruned up to here (retain)
    captured_at     timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON kappa.captures FROM PUBLIC;
GRANT SELECT ON kappa.captures TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('kappa.captures', '');

-- The event log: one row per logged batch, chained by SHA-256.  hash is
-- sha256(prev_hash || header || events), header being the text
-- batch_id|kind|first_lsn|last_lsn|txn_count|change_count|tables|table_names|
-- (see README, "Event log").  events holds the batch's records, one JSON
-- object per line, exactly as the output plugin writes them.
CREATE TABLE kappa.event_log (
    batch_id        bigint PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('batch', 'snapshot')),
    first_lsn       pg_lsn NOT NULL,            -- first commit LSN (snapshot: its position)
    last_lsn        pg_lsn NOT NULL,            -- last commit LSN
    txn_count       integer NOT NULL,           -- source transactions in the batch
    change_count    bigint NOT NULL,            -- change records in the batch
    tables          oid[] NOT NULL,             -- tables with records in the batch
    table_names     text[] NOT NULL,            -- their names in the records
    events          text NOT NULL,
    prev_hash       bytea NOT NULL,
    hash            bytea NOT NULL,
    logged_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON kappa.event_log (last_lsn);
REVOKE ALL ON kappa.event_log FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('kappa.event_log', '');

-- Pruning (retain) removes the oldest batches; what it removed is recorded
-- here so that audit knows where the chain legitimately starts.
CREATE TABLE kappa.event_log_pruned (
    pruned_at       timestamptz NOT NULL DEFAULT now(),
    first_batch     bigint NOT NULL,
    last_batch      bigint NOT NULL,
    last_lsn        pg_lsn NOT NULL,
    last_hash       bytea NOT NULL              -- hash of last_batch: the chain continues from it
);
REVOKE ALL ON kappa.event_log_pruned FROM PUBLIC;
GRANT SELECT ON kappa.event_log_pruned TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('kappa.event_log_pruned', '');

CREATE FUNCTION kappa.log_guard()
RETURNS trigger
AS 'MODULE_PATHNAME', 'kappa_log_guard'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;

CREATE TRIGGER kappa_log_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON kappa.event_log FOR EACH STATEMENT EXECUTE FUNCTION kappa.log_guard();
CREATE TRIGGER kappa_log_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON kappa.event_log_pruned FOR EACH STATEMENT EXECUTE FUNCTION kappa.log_guard();

-- One row per check made by kappa.audit.
CREATE TABLE kappa.audit_log (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    "check"         text NOT NULL,              -- chain, continuity, applied_lsn, verify
    object          text NOT NULL,              -- the batch or view checked
    ok              boolean NOT NULL,
    detail          text
);
REVOKE ALL ON kappa.audit_log FROM PUBLIC;
GRANT SELECT ON kappa.audit_log TO PUBLIC;

ALTER TABLE kappa.views ADD COLUMN audit_every interval CHECK (audit_every > '0');
ALTER TABLE kappa.views ADD COLUMN last_audit_at timestamptz;

CREATE FUNCTION kappa.capture(source regclass, retain interval DEFAULT NULL)
RETURNS pg_lsn
AS 'MODULE_PATHNAME', 'kappa_capture'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION kappa.capture(regclass, interval) IS
'log every change of a table in the hash-chained event log, starting with a snapshot of its rows';

CREATE FUNCTION kappa.uncapture(source regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'kappa_uncapture'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION kappa.events(from_lsn pg_lsn DEFAULT '0/0', to_lsn pg_lsn DEFAULT NULL,
                             tables regclass[] DEFAULT NULL)
RETURNS SETOF jsonb
AS 'MODULE_PATHNAME', 'kappa_events'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION kappa.events(pg_lsn, pg_lsn, regclass[]) IS
'logged events committed between from_lsn and to_lsn, as the output plugin writes them, in commit order';

CREATE FUNCTION kappa.replay(view regclass, from_lsn pg_lsn DEFAULT NULL,
                             until_lsn pg_lsn DEFAULT NULL, "into" text DEFAULT NULL)
RETURNS regclass
AS 'MODULE_PATHNAME', 'kappa_replay'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION kappa.replay(regclass, pg_lsn, pg_lsn, text) IS
'rebuild a derived view from the event log through the delta engine, in place or into a new table';

CREATE FUNCTION kappa.swap(old regclass, new regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'kappa_swap'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION kappa.swap(regclass, regclass) IS
'exchange the names of two derived views (blue/green)';

DROP FUNCTION kappa.create_view(text, text, text);
CREATE FUNCTION kappa.create_view(name text, query text,
                                  search_path text DEFAULT pg_catalog.current_setting('search_path'),
                                  replay_from pg_lsn DEFAULT NULL)
RETURNS regclass
AS 'MODULE_PATHNAME', 'kappa_create_view'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION kappa.create_view(text, text, text, pg_lsn) IS
'create a derived table from a query and maintain it from the change stream';

DROP FUNCTION kappa.alter_view(regclass, boolean);
CREATE FUNCTION kappa.alter_view(view regclass, paused boolean DEFAULT NULL,
                                 audit_every interval DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'kappa_alter_view'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

-- The audit itself: the chain recomputed with SQL's sha256(), independently
-- of the worker's C code that wrote it.
CREATE FUNCTION kappa.audit_chain(OUT "check" text, OUT object text, OUT ok boolean, OUT detail text)
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
        END IF;
    END LOOP;
    IF bad = 0 THEN
        "check" := 'chain'; object := 'event log'; ok := true;
        detail := format('%s batches, hash chain and LSN order intact', n);
        RETURN NEXT;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION kappa.audit_chain() FROM PUBLIC;

CREATE FUNCTION kappa.audit()
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
    FOR v IN SELECT * FROM kappa.views WHERE state = 'running' ORDER BY id LOOP
        SELECT max(l.last_lsn) INTO logged FROM kappa.event_log l
         WHERE l.tables && v.sources AND l.kind = 'batch';
        INSERT INTO kappa.audit_log (at, "check", object, ok, detail)
        VALUES (started, 'applied_lsn', v.name, logged IS NULL OR logged <= v.applied_lsn,
                CASE WHEN logged IS NULL OR logged <= v.applied_lsn
                     THEN format('applied up to %s; log of its sources ends at %s', v.applied_lsn, logged)
                     ELSE format('the log holds changes up to %s but the view was applied only up to %s',
                                 logged, v.applied_lsn) END);

        SELECT COALESCE(sum(f.count) FILTER (WHERE f.kind = 'missing'), 0),
               COALESCE(sum(f.count) FILTER (WHERE f.kind = 'extra'), 0)
          INTO missing, extra
          FROM kappa.verify(v.relid::regclass) f;
        INSERT INTO kappa.audit_log (at, "check", object, ok, detail)
        VALUES (started, 'verify', v.name, missing = 0 AND extra = 0,
                format('%s missing and %s extra rows', missing, extra));
        UPDATE kappa.views SET last_audit_at = started WHERE id = v.id;
    END LOOP;

    RETURN QUERY SELECT * FROM kappa.audit_log WHERE at = started AND NOT ok ORDER BY id;
END
$$;
COMMENT ON FUNCTION kappa.audit() IS
'check the event log''s hash chain and LSN order, views against the log and against their queries; returns the failures';

-- A dropped source is no longer captured; its logged events stay.
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
        DELETE FROM kappa.captures WHERE relid = obj.objid;
    END LOOP;
END
$$;
