/* src/pg_kappa--0.7--0.8.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_kappa UPDATE TO '0.8'" to load this file. \quit

-- 0.8: the audit worker (audit_every) audits each due view in a transaction
-- of its own, with kappa.audit_view, under pg_kappa.view_statement_timeout.
-- Before, it ran kappa.audit(due_only => true) in one transaction: the
-- locks kappa.verify takes on one view's sources were held while the next
-- views' code ran, so one role's slow view code kept writers of another
-- role's tables waiting.  An audit_every too long to add to a timestamp
-- (refused since, but possibly stored before) is never due, instead of an
-- error that stopped every audit.

-- One view's part of an audit, recorded at "at": its applied LSN against
-- the log, and kappa.verify; then its last_audit_at.  kappa.audit runs it
-- for each view, in its own transaction; the audit worker, each in a
-- transaction of its own.
CREATE FUNCTION kappa.audit_view(v kappa.views, at timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    logged pg_lsn;
    missing bigint;
    extra bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = v.relid) THEN
        INSERT INTO kappa.audit_log (at, "check", object, ok, detail)
        VALUES (at, 'verify', v.name, false,
                format('derived table with OID %s no longer exists', v.relid));
        RETURN;
    END IF;
    SELECT max(l.last_lsn) INTO logged FROM kappa.event_log l
     WHERE l.tables && v.sources AND l.kind = 'batch'
       AND l.batch_id > COALESCE((SELECT max(r.batch_id) FROM kappa.event_log r
                                   WHERE r.kind = 'restore'), 0);
    INSERT INTO kappa.audit_log (at, "check", object, ok, detail)
    VALUES (at, 'applied_lsn', v.name, logged IS NULL OR logged <= v.applied_lsn,
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
        VALUES (at, 'verify', v.name, missing = 0 AND extra = 0,
                format('%s missing and %s extra rows', missing, extra));
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO kappa.audit_log (at, "check", object, ok, detail)
        VALUES (at, 'verify', v.name, false,
                format('could not verify the view: %s', SQLERRM));
    END;
    UPDATE kappa.views SET last_audit_at = at WHERE id = v.id;
END
$$;
REVOKE ALL ON FUNCTION kappa.audit_view(kappa.views, timestamptz) FROM PUBLIC;

-- Is view v's scheduled audit due?
CREATE FUNCTION kappa.audit_due(v kappa.views)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT v.state = 'running' AND v.audit_every IS NOT NULL AND
           CASE WHEN v.audit_every >= interval '1000 years' THEN false
                ELSE v.last_audit_at IS NULL OR v.last_audit_at + v.audit_every <= now() END
$$;
REVOKE ALL ON FUNCTION kappa.audit_due(kappa.views) FROM PUBLIC;

CREATE OR REPLACE FUNCTION kappa.audit(due_only boolean DEFAULT false)
RETURNS SETOF kappa.audit_log
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started timestamptz := clock_timestamp();
    c record;
    v kappa.views;
BEGIN
    FOR c IN SELECT * FROM kappa.audit_chain() LOOP
        INSERT INTO kappa.audit_log (at, "check", object, ok, detail)
        VALUES (started, c."check", c.object, c.ok, c.detail);
    END LOOP;

    -- every change logged for a running view's sources is in the view
    FOR v IN SELECT * FROM kappa.views w
              WHERE w.state = 'running' AND (NOT due_only OR kappa.audit_due(w))
              ORDER BY w.id LOOP
        PERFORM kappa.audit_view(v, started);
    END LOOP;

    RETURN QUERY SELECT * FROM kappa.audit_log WHERE at = started AND NOT ok ORDER BY id;
END
$$;
