/* src/pg_kappa--0.4--0.5.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_kappa UPDATE TO '0.5'" to load this file. \quit

-- 0.5: a derived table's columns stay its query's.

-- NULL while the derived table's columns are its query's (names and
-- types, in order), else what differs.  For kappa.on_ddl_end.
CREATE FUNCTION kappa.derived_columns_problem(view regclass)
RETURNS text
AS 'MODULE_PATHNAME', 'kappa_derived_columns_problem'
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION kappa.derived_columns_problem(regclass) FROM PUBLIC;

-- An ALTER TABLE that changes a derived table's columns (adds, drops,
-- renames one, changes its type or collation), also through a parent it
-- was made to inherit from or a partitioned table it was attached to, is
-- refused: the view's statements write its rows by position, and it would
-- break at its next change.  Other DDL on a derived table (storage
-- parameters, constraints, the owner) goes through; so does anything while
-- the view's query cannot be read (a source renamed: the view breaks or is
-- held by itself).  The rest is 0.3's: DDL that can make a view's sources
-- unfit for it, or alters its internal tables, marks it broken.
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
    FOR v IN WITH RECURSIVE altered(relid) AS (
                 SELECT c.objid FROM pg_event_trigger_ddl_commands() c
                  WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                 UNION
                 SELECT i.inhrelid FROM pg_inherits i JOIN altered a ON i.inhparent = a.relid)
             SELECT w.* FROM kappa.views w
              WHERE w.state <> 'broken' AND w.relid IN (SELECT relid FROM altered)
              ORDER BY w.id LOOP
        BEGIN
            problem := kappa.derived_columns_problem(v.relid);
        EXCEPTION WHEN OTHERS THEN
            problem := NULL;        -- the query cannot be read now
        END;
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'cannot change the columns of derived table %', v.relid::regclass
                USING ERRCODE = 'wrong_object_type',
                      DETAIL = problem || ' A derived table''s columns are those of its view''s query.',
                      HINT = 'To change them, create a view with the new query (kappa.create_view) and drop this one with kappa.drop_view.';
        END IF;
    END LOOP;
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

-- kappa.alter_view(view, rebuild => true): the view built again around its
-- table, as kappa.create_view builds it (its contents computed again, its
-- internal tables made again for its sources as they are now), the way
-- back for a view broken by a change of its sources' columns (ALTER TABLE
-- ... ADD COLUMN), or stale: its table, grants, indexes and dependent
-- objects stay.
DROP FUNCTION kappa.alter_view(regclass, boolean, interval, integer);
CREATE FUNCTION kappa.alter_view(view regclass, paused boolean DEFAULT NULL,
                                 audit_every interval DEFAULT NULL,
                                 engine integer DEFAULT NULL,
                                 rebuild boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'kappa_alter_view'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION kappa.alter_view(regclass, boolean, interval, integer, boolean) IS
'pause or resume a derived view, schedule its audits, or build it again (with another delta engine, or after its sources changed)';
