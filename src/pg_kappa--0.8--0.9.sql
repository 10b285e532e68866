/* src/pg_kappa--0.8--0.9.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_kappa UPDATE TO '0.9'" to load this file. \quit

-- 0.9: a view broken by DDL says so, and says the way back.  The DDL that
-- breaks a view (a source's replica identity no longer FULL, its columns
-- changed, row-level security, SELECT revoked, a source or an internal
-- table dropped or altered) now raises a WARNING naming the view, and the
-- view's last_error carries a hint, as errors of the apply worker do
-- ("message", then "DETAIL:  ..." and "HINT:  ..." lines).

-- Marks view id broken with problem (its first line the message, then
-- optional DETAIL and HINT lines) as last_error, and warns, unless it was
-- broken already or its catalog row is locked.
CREATE FUNCTION kappa.break_view(id integer, problem text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel regclass;
    msg text;
    detail text;
    hint text;
BEGIN
    -- a row an open transaction holds (an owner's kappa.alter_view) is
    -- waited for, as the DDL waits for a lock on the table that any reader
    -- of it holds: skipped, the problem was lost where the worker cannot
    -- meet it again (a rewrite, a collation changed)
    UPDATE kappa.views w SET state = 'broken', last_error = problem
     WHERE w.id = break_view.id AND w.state <> 'broken'
    RETURNING w.relid::regclass INTO rel;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    msg := format('derived view %s is broken: %s', rel, split_part(problem, E'\n', 1));
    -- the last such lines: a name in the message may hold a line break
    detail := substring(problem FROM E'.*\nDETAIL:  ([^\n]*)');
    hint := coalesce(substring(problem FROM E'.*\nHINT:  ([^\n]*)'),
                     format('Build the view again with kappa.alter_view(view => %L, rebuild => true), or drop it with kappa.drop_view.',
                            rel::text));
    IF detail IS NULL THEN
        RAISE WARNING USING MESSAGE = msg, HINT = hint,
                            ERRCODE = 'object_not_in_prerequisite_state';
    ELSE
        RAISE WARNING USING MESSAGE = msg, DETAIL = detail, HINT = hint,
                            ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION kappa.break_view(integer, text) FROM PUBLIC;

-- The columns of a source that a view of engine 2 reads, from its internal
-- view o_<n> (source_columns.c).
CREATE FUNCTION kappa.columns_read(view_id integer, source_index integer, source oid)
RETURNS int2[]
LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'kappa_columns_read_sql';
REVOKE ALL ON FUNCTION kappa.columns_read(integer, integer, oid) FROM PUBLIC;

-- As in 0.6, each problem with the way back; a column of a source that a
-- view of engine 2 does not read may go or change; and a column's collation
-- changed (min, max, comparisons and grouping would change meaning), or
-- the table made unlogged (its changes are no longer in the WAL).
CREATE OR REPLACE FUNCTION kappa.source_problem(v kappa.views)
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
    rebuild text;
    reads int2[];
    reads_known boolean;
    col record;
BEGIN
    SELECT relowner INTO owner FROM pg_class WHERE oid = v.relid;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    FOR i IN 1 .. coalesce(array_length(v.sources, 1), 0) LOOP
        src := v.sources[i];
        SELECT cl.relname, cl.relreplident, cl.relrowsecurity, cl.relforcerowsecurity,
               cl.relowner, cl.relpersistence, n.nspname
          INTO c
          FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace
         WHERE cl.oid = src;
        IF NOT FOUND THEN
            CONTINUE;
        END IF;
        srcname := format('%I.%I', c.nspname, c.relname);
        rebuild := format('then build the view again with kappa.alter_view(view => %L, rebuild => true).',
                          v.relid::regclass::text);
        IF v.engine >= 2 THEN
            -- every column of the view's time that it reads still there,
            -- as it was (the delta table's last column is its weight); the
            -- others may go, or change
            -- every column of the view's time that it reads still there,
            -- as it was (the delta table's last column is its weight); the
            -- others may go, or change
            -- (which columns it reads is looked up only when one differs)
            reads_known := false;
            FOR col IN SELECT a.attnum, a.attname, s.attname AS new_name,
                              s.attnum IS NULL OR s.attisdropped AS gone,
                              a.atttypid <> s.atttypid OR a.atttypmod <> s.atttypmod AS retyped
                         FROM pg_attribute a
                         LEFT JOIN pg_attribute s ON s.attrelid = src AND s.attnum = a.attnum
                        WHERE a.attrelid = v.arrangements[i] AND a.attnum > 0 AND NOT a.attisdropped
                          AND a.attnum < (SELECT max(attnum) FROM pg_attribute
                                           WHERE attrelid = v.arrangements[i])
                          AND (s.attnum IS NULL OR s.attisdropped OR s.attname <> a.attname
                               OR s.atttypid <> a.atttypid OR s.atttypmod <> a.atttypmod
                               OR s.attcollation <> a.attcollation)
                        ORDER BY a.attnum LOOP
                IF NOT reads_known THEN
                    reads := kappa.columns_read(v.id, i, src);
                    reads_known := true;
                END IF;
                CONTINUE WHEN reads IS NOT NULL AND NOT col.attnum = ANY (reads);
                RETURN format(E'columns of source table %s changed\nDETAIL:  %s\nHINT:  %s',
                              srcname,
                              CASE WHEN col.gone THEN format('Column "%s", which the view reads, was dropped.', col.attname)
                                   WHEN col.new_name <> col.attname THEN format('Column "%s", which the view reads, was renamed to "%s".', col.attname, col.new_name)
                                   WHEN col.retyped THEN format('Column "%s", which the view reads, has another type.', col.attname)
                                   ELSE format('Column "%s", which the view reads, has another collation.', col.attname) END,
                              CASE WHEN col.gone
                                   THEN 'Drop the view and create it with the query you mean.'
                                   WHEN col.new_name <> col.attname
                                   THEN format('Give the column back its name, %s Else drop the view and create it with the query you mean.', rebuild)
                                   ELSE format('If the view''s query reads the table as it is now, %s Else drop the view and create it with the query you mean.', rebuild) END);
            END LOOP;
        ELSIF EXISTS (
               SELECT attnum, attname, atttypid, atttypmod, attcollation, attisdropped
                 FROM pg_attribute WHERE attrelid = src AND attnum > 0
               EXCEPT
               SELECT attnum, attname, atttypid, atttypmod, attcollation, attisdropped
                 FROM pg_attribute WHERE attrelid = v.arrangements[i] AND attnum > 0) THEN
            RETURN format(E'columns of source table %s changed\nHINT:  If the view''s query reads the table as it is now, %s Else drop the view and create it with the query you mean.', srcname, rebuild);
        END IF;
        IF c.relpersistence <> 'p' THEN
            RETURN format(E'source table %s is unlogged\nDETAIL:  Changes of an unlogged table are not in the WAL, from which the view is maintained.\nHINT:  Run ALTER TABLE %s SET LOGGED, %s', srcname, srcname, rebuild);
        END IF;
        IF v.engine >= 2 THEN
            -- whole old rows in the WAL: nothing else identifies them
            IF c.relreplident <> 'f' THEN
                RETURN format(E'source table %s no longer has REPLICA IDENTITY FULL\nDETAIL:  The view takes the whole old rows of updates and deletes from the WAL.\nHINT:  Run ALTER TABLE %s REPLICA IDENTITY FULL, %s', srcname, srcname, rebuild);
            END IF;
        ELSIF c.relreplident = 'n' THEN
            RETURN format(E'source table %s has REPLICA IDENTITY NOTHING: its deleted and updated rows cannot be identified\nHINT:  Run ALTER TABLE %s REPLICA IDENTITY DEFAULT (or FULL), %s', srcname, srcname, rebuild);
        END IF;
        SELECT indkey::int2[] INTO key_then FROM pg_index
         WHERE indrelid = v.arrangements[i] AND indisunique ORDER BY indexrelid LIMIT 1;
        IF c.relreplident = 'i' THEN
            SELECT indkey::int2[] INTO key_now FROM pg_index WHERE indrelid = src AND indisreplident;
        ELSE
            SELECT indkey::int2[] INTO key_now FROM pg_index WHERE indrelid = src AND indisprimary;
        END IF;
        IF v.engine < 2 AND key_now IS DISTINCT FROM key_then THEN
            RETURN format(E'the replica identity of source table %s no longer is the key the view was created with\nHINT:  Give the table back the replica identity it had, %s', srcname, rebuild);
        END IF;
        IF c.relrowsecurity
           AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = owner AND (r.rolsuper OR r.rolbypassrls))
           AND NOT (c.relowner = owner AND NOT c.relforcerowsecurity) THEN
            RETURN format(E'row-level security on source table %s applies to the owner of the view\nDETAIL:  The view would show only the rows its owner''s policies let through, not its query''s result.\nHINT:  Disable row-level security on the table, or let the owner of the view bypass it, %s', srcname, rebuild);
        END IF;
        IF NOT has_table_privilege(owner, src, 'SELECT') THEN
            RETURN format(E'the owner of the view, %I, has no SELECT privilege on source table %s\nHINT:  Grant SELECT on the table to %I, %s', (SELECT rolname FROM pg_roles WHERE oid = owner), srcname, (SELECT rolname FROM pg_roles WHERE oid = owner), rebuild);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- As in 0.5, through kappa.break_view; a derived table cannot be made
-- unlogged (crash recovery would empty it) nor have row-level security
-- forced on it (the worker writes it as its owner); a captured table made
-- unlogged fails its capture (its changes are no longer in the WAL).
CREATE OR REPLACE FUNCTION kappa.on_ddl_end()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off       -- its catalog queries are small; compiling them is not
AS $$
DECLARE
    v kappa.views;
    problem text;
    cmd record;
    cap record;
    derived record;
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
        SELECT relpersistence, relforcerowsecurity, relowner INTO derived FROM pg_class WHERE oid = v.relid;
        IF EXISTS (SELECT 1 FROM pg_namespace n
                    WHERE n.nspname = 'kappa_v' || v.id AND n.nspowner <> derived.relowner) THEN
            RAISE EXCEPTION 'cannot change the owner of derived table % alone', v.relid::regclass
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = format('The view''s internal schema kappa_v%s and its tables belong to role %s, and the view runs as the owner of its derived table.',
                                      v.id, (SELECT pg_get_userbyid(n.nspowner) FROM pg_namespace n WHERE n.nspname = 'kappa_v' || v.id)),
                      HINT = 'REASSIGN OWNED moves a role''s views with their internal objects; or drop the view and create it again as the new owner.';
        END IF;
        IF derived.relpersistence <> 'p' THEN
            RAISE EXCEPTION 'cannot make derived table % unlogged', v.relid::regclass
                USING ERRCODE = 'wrong_object_type',
                      DETAIL = 'Crash recovery empties an unlogged table, while the view would go on from where it was.';
        END IF;
        IF derived.relforcerowsecurity THEN
            RAISE EXCEPTION 'cannot force row-level security on derived table %', v.relid::regclass
                USING ERRCODE = 'wrong_object_type',
                      DETAIL = 'The apply worker writes the view''s rows as its owner: the owner''s policies would hide rows from it.',
                      HINT = 'Policies enabled with ENABLE ROW LEVEL SECURITY apply to the view''s readers, not to its owner.';
        END IF;
    END LOOP;
    -- a view's internal tables are its owner's, but not to be altered
    FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands()
               WHERE schema_name ~ '^kappa_v[1-9][0-9]{0,8}$' LOOP
        PERFORM kappa.break_view(substr(cmd.schema_name, 8)::int,
                                 format('internal table %s of the view was altered', cmd.object_identity));
    END LOOP;
    FOR v IN SELECT * FROM kappa.views WHERE state <> 'broken' ORDER BY id LOOP
        problem := kappa.source_problem(v);
        IF problem IS NOT NULL THEN
            PERFORM kappa.break_view(v.id, problem);
        END IF;
    END LOOP;
    -- a composite type (or a table's row type) altered, or an enum
    -- altered that the query names a value of: a view that reads a
    -- column of it, or of a type holding it, would read another field by
    -- the old name, or another value
    FOR cmd IN SELECT DISTINCT t.oid AS typid, t.typtype
                 FROM pg_event_trigger_ddl_commands() c
                 JOIN pg_type t ON (c.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND t.oid = c.objid)
                                OR (c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                    AND t.oid = (SELECT reltype FROM pg_class WHERE oid = c.objid))
                WHERE t.typtype IN ('c', 'e') LOOP
        -- the types each column of a view's sources holds, down to its
        -- base types; whether the view reads the column is asked only of
        -- the columns that hold the altered type
        FOR v IN WITH RECURSIVE used(view_id, source_index, attnum, typid) AS (
                     SELECT w.id, i, a.attnum, a.atttypid
                       FROM kappa.views w
                      CROSS JOIN LATERAL generate_subscripts(w.sources, 1) i
                       JOIN pg_attribute a ON a.attrelid = w.sources[i]
                      WHERE w.state <> 'broken' AND a.attnum > 0 AND NOT a.attisdropped
                     UNION
                     SELECT u.view_id, u.source_index, u.attnum, x.inner_type
                       FROM used u
                      CROSS JOIN LATERAL (
                             SELECT t.typelem FROM pg_type t WHERE t.oid = u.typid AND t.typelem <> 0
                             UNION ALL
                             SELECT t.typbasetype FROM pg_type t WHERE t.oid = u.typid AND t.typbasetype <> 0
                             UNION ALL
                             SELECT a.atttypid FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid
                              WHERE t.oid = u.typid AND t.typrelid <> 0 AND a.attnum > 0 AND NOT a.attisdropped
                             UNION ALL
                             SELECT g.rngsubtype FROM pg_range g WHERE g.rngtypid = u.typid
                             UNION ALL
                             SELECT g.rngtypid FROM pg_range g WHERE g.rngmultitypid = u.typid) x(inner_type))
                 SELECT * FROM kappa.views w
                  WHERE EXISTS (SELECT 1 FROM used u
                                 WHERE u.view_id = w.id AND u.typid = cmd.typid
                                   AND (w.engine < 2
                                        OR coalesce(u.attnum = ANY (kappa.columns_read(w.id, u.source_index,
                                                                                       w.sources[u.source_index])),
                                                    true)))
                    AND (cmd.typtype = 'c'
                         OR strpos(w.canonical, '::' || cmd.typid::pg_catalog.regtype::text) > 0)
                  ORDER BY w.id LOOP
            PERFORM kappa.break_view(v.id,
                format(E'type %s, of a column of a source that the view reads, was altered\nDETAIL:  %s\nHINT:  If the view''s query reads the type as it is now, build the view again with kappa.alter_view(view => %L, rebuild => true).',
                       cmd.typid::pg_catalog.regtype,
                       CASE WHEN cmd.typtype = 'c' THEN 'The view''s query reads the fields of such a column by their names.'
                            ELSE 'The view''s query names values of the type, which its rows were computed with as they were.' END,
                       v.relid::pg_catalog.regclass::text));
        END LOOP;
    END LOOP;
    -- a captured table made unlogged: its changes leave the WAL, and so
    -- the log, which keeps what it has (a prefix, up to here)
    FOR cap IN UPDATE kappa.captures c
                  SET state = 'failed', failed_lsn = pg_current_wal_insert_lsn(),
                      last_error = format('table %s was made unlogged: its changes are no longer in the WAL',
                                          c.relid::regclass)
                WHERE c.failed_lsn IS NULL
                  AND EXISTS (SELECT 1 FROM pg_class WHERE oid = c.relid AND relpersistence <> 'p')
              RETURNING c.relid LOOP
        RAISE WARNING 'capture of table % failed', cap.relid::regclass
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'An unlogged table''s changes are not in the WAL: the event log keeps its changes up to now, and no later ones.',
                  HINT = 'Run ALTER TABLE ... SET LOGGED, then kappa.uncapture and kappa.capture to log the table again from a new snapshot.';
    END LOOP;
END
$$;

-- As in 0.3, through kappa.break_view; and a source's primary key dropped
-- breaks the views kept by their sources' keys, and so does the unique
-- index on a derived table's key.
CREATE OR REPLACE FUNCTION kappa.on_sql_drop()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
    obj record;
    v record;
    src regclass;
BEGIN
    -- derived tables first: a view dropped in the same command as its
    -- source (DROP SCHEMA ... CASCADE) is gone, not broken
    FOR v IN DELETE FROM kappa.views
              WHERE relid IN (SELECT objid FROM pg_event_trigger_dropped_objects()
                               WHERE object_type IN ('table', 'foreign table', 'view', 'materialized view'))
              RETURNING id LOOP
        PERFORM kappa.drop_internal_schema(v.id);
    END LOOP;
    FOR obj IN SELECT * FROM pg_event_trigger_dropped_objects()
               WHERE object_type IN ('table', 'foreign table', 'view', 'materialized view')
    LOOP
        FOR v IN SELECT id FROM kappa.views
                  WHERE obj.objid = ANY (arrangements) AND state <> 'broken' ORDER BY id LOOP
            PERFORM kappa.break_view(v.id, format('internal table %s was dropped', obj.object_identity));
        END LOOP;
        FOR v IN SELECT id, relid FROM kappa.views
                  WHERE obj.objid = ANY (sources) AND state <> 'broken' ORDER BY id LOOP
            PERFORM kappa.break_view(v.id,
                format(E'source table %s was dropped\nHINT:  Drop the view with kappa.drop_view, or create the table again and build the view again with kappa.alter_view(view => %L, rebuild => true).',
                       obj.object_identity, v.relid::regclass::text));
        END LOOP;
        DELETE FROM kappa.captures WHERE relid = obj.objid;
    END LOOP;
    -- a source's primary key dropped (a constraint dropped with its index,
    -- and the table left without one): a view kept by its sources' keys
    -- would meet rows its unique index refuses
    FOR obj IN SELECT c.* FROM pg_event_trigger_dropped_objects() c
                WHERE c.object_type = 'table constraint'
                  AND EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() i
                               WHERE i.object_type = 'index'
                                 AND i.address_names = ARRAY[c.address_names[1], c.address_names[3]])
    LOOP
        src := to_regclass(format('%I.%I', obj.address_names[1], obj.address_names[2]));
        CONTINUE WHEN src IS NULL
                   OR EXISTS (SELECT 1 FROM pg_index WHERE indrelid = src AND indisprimary);
        FOR v IN SELECT id, relid FROM kappa.views
                  WHERE src = ANY (sources) AND state <> 'broken'
                    AND kind IN ('project', 'join') AND key_columns <> '{}' ORDER BY id LOOP
            PERFORM kappa.break_view(v.id,
                format(E'the primary key of source table %s was dropped\nDETAIL:  The view''s rows are kept by the keys of its sources.\nHINT:  Give the table its primary key back and build the view again with kappa.alter_view(view => %L, rebuild => true), or drop the view and create it again: without the key, it keeps its rows as a bag.',
                       src, v.relid::regclass::text));
        END LOOP;
    END LOOP;
    -- a derived table's key index dropped: the worker writes its rows by it
    FOR v IN SELECT w.id, w.relid FROM kappa.views w JOIN pg_class c ON c.oid = w.relid
              WHERE w.state <> 'broken' AND w.key_columns <> '{}'
                AND c.relnamespace IN (SELECT n.oid FROM pg_event_trigger_dropped_objects() d
                                         JOIN pg_namespace n ON n.nspname = d.schema_name
                                        WHERE d.object_type = 'index')
                AND NOT EXISTS (SELECT 1 FROM pg_index i
                                 WHERE i.indrelid = w.relid AND i.indisunique
                                   AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text)
                                          FROM pg_attribute a
                                         WHERE a.attrelid = w.relid AND a.attnum = ANY (i.indkey))
                                       = (SELECT array_agg(k ORDER BY k) FROM unnest(w.key_columns) k))
              ORDER BY w.id LOOP
        PERFORM kappa.break_view(v.id,
            format(E'the unique index on the key of derived table %s was dropped\nDETAIL:  The apply worker writes the view''s rows by their key.\nHINT:  Build the view again with kappa.alter_view(view => %L, rebuild => true), which makes the index again.',
                   v.relid::regclass, v.relid::regclass::text));
    END LOOP;
END
$$;

-- A table rewrite that computes a column's values again (ALTER COLUMN ...
-- TYPE ... USING, even to the same type) changes rows without decoded
-- changes: the views that read such a column break, and a derived table's
-- is refused.  The other rewrites (SET LOGGED or UNLOGGED, a volatile
-- default added, a new access method) keep the rows' values, and so do the
-- columns a command does not name.  kappa.on_table_rewrite (C, in
-- src/views/source_columns.c) passes the names of the columns the command
-- computes again, from its parse tree; NULL when it cannot tell, and every
-- column counts.
CREATE FUNCTION kappa.table_rewritten(columns text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel oid := pg_event_trigger_table_rewrite_oid();
    v kappa.views;
    problem text;
    reads int2[];
    col name;
    tables oid[];
    src oid;
    i bigint;
BEGIN
    IF pg_event_trigger_table_rewrite_reason() & 4 = 0 THEN
        RETURN;
    END IF;
    -- (a broken view's table may change: building the view again refills it)
    IF EXISTS (SELECT 1 FROM kappa.views WHERE relid = rel AND state <> 'broken') THEN
        BEGIN
            problem := kappa.derived_columns_problem(rel) || ' A derived table''s columns are those of its view''s query.';
        EXCEPTION WHEN OTHERS THEN
            problem := NULL;        -- the query cannot be read now
        END;
        RAISE EXCEPTION 'cannot change the columns of derived table %', rel::regclass
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = coalesce(problem, 'The statement computes the values of a column again. A derived table''s rows are those of its view''s query.'),
                  HINT = 'To change them, create a view with the new query (kappa.create_view) and drop this one with kappa.drop_view.';
    END IF;
    -- the table and those it is a partition or child of: a view that
    -- reads one of those reads the rows rewritten
    WITH RECURSIVE up(relid) AS (
        SELECT rel
        UNION
        SELECT i.inhparent FROM pg_inherits i JOIN up ON i.inhrelid = up.relid)
    SELECT array_agg(relid) INTO tables FROM up;
    FOR v IN SELECT * FROM kappa.views
              WHERE sources && tables AND state <> 'broken' ORDER BY id LOOP
        col := NULL;
        IF columns IS NOT NULL THEN
            -- the first column computed again that the view reads, if any
            -- (a column has the same name in a table and its partitions)
            FOR src, i IN SELECT s, n FROM unnest(v.sources) WITH ORDINALITY u(s, n)
                           WHERE s = ANY (tables) LOOP
                reads := kappa.columns_read(v.id, i::int, src);
                SELECT a.attname INTO col FROM pg_attribute a
                 WHERE a.attrelid = src AND a.attnum > 0 AND NOT a.attisdropped
                   AND a.attname = ANY (columns)
                   AND (reads IS NULL OR a.attnum = ANY (reads))
                 ORDER BY a.attnum LIMIT 1;
                EXIT WHEN col IS NOT NULL;
            END LOOP;
            CONTINUE WHEN col IS NULL;
        END IF;
        -- a column of another type says so itself (kappa.source_problem)
        PERFORM kappa.break_view(v.id, coalesce(kappa.source_problem(v),
            format(E'the values of %s of source table %s were computed again\nDETAIL:  ALTER COLUMN ... TYPE rewrote the table: its rows changed without row changes in the WAL, from which the view is maintained.\nHINT:  If the view''s query reads the table as it is now, build the view again with kappa.alter_view(view => %L, rebuild => true).',
                   coalesce(format('column %I', col), 'a column'),
                   coalesce(src, rel)::regclass, v.relid::regclass::text)));
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION kappa.table_rewritten(text[]) FROM PUBLIC;

CREATE FUNCTION kappa.on_table_rewrite()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'kappa_on_table_rewrite'
LANGUAGE C SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION kappa.on_table_rewrite() FROM PUBLIC;

CREATE EVENT TRIGGER kappa_table_rewrite ON table_rewrite
    EXECUTE FUNCTION kappa.on_table_rewrite();

-- CREATE OR REPLACE FUNCTION of a function a view's query calls (or the
-- function of an operator it uses): the view's rows were computed with the
-- old definition and its next changes would be computed with the new one.
-- So does ALTER FUNCTION: its settings or volatility change what it
-- computes, and a rename or a move lets another function take the name
-- the view's query is read again with.
-- Such views break, with the way back; a function that only the functions
-- the query calls call is not followed.
CREATE FUNCTION kappa.on_function_replaced()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn oid;
    v record;
BEGIN
    FOR fn IN SELECT objid FROM pg_event_trigger_ddl_commands()
               WHERE classid = 'pg_catalog.pg_proc'::pg_catalog.regclass LOOP
        FOR v IN SELECT w.id, w.relid FROM kappa.views w
                  WHERE w.state <> 'broken'
                    AND EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                   AND d.objid = w.relid
                                   AND ((d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                                         AND d.refobjid = fn)
                                        OR (d.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass
                                            AND d.refobjid IN (SELECT o.oid FROM pg_operator o
                                                                WHERE o.oprcode = fn))))
                  ORDER BY w.id LOOP
            PERFORM kappa.break_view(v.id,
                format(E'function %s, which the view''s query calls, was replaced or altered\nDETAIL:  The rows the view holds were computed with its old definition.\nHINT:  Build the view again with kappa.alter_view(view => %L, rebuild => true) to compute them all with the new one.',
                       fn::regprocedure, v.relid::regclass::text));
        END LOOP;
    END LOOP;
END
$$;

CREATE EVENT TRIGGER kappa_function_replaced ON ddl_command_end
    WHEN TAG IN ('CREATE FUNCTION', 'ALTER FUNCTION', 'ALTER ROUTINE')
    EXECUTE FUNCTION kappa.on_function_replaced();

-- ALTER TYPE changes the columns of the tables of that type too (RENAME
-- ATTRIBUTE ... CASCADE, for one): kappa.on_ddl_end looks at every view
-- after it, as after ALTER TABLE.
-- ALTER VIEW, MATERIALIZED VIEW, FOREIGN TABLE and INDEX may name a table
-- too, and rename its columns.
DROP EVENT TRIGGER kappa_ddl_end;
CREATE EVENT TRIGGER kappa_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER TYPE', 'GRANT', 'REVOKE', 'ALTER VIEW',
                 'ALTER MATERIALIZED VIEW', 'ALTER FOREIGN TABLE', 'ALTER INDEX')
    EXECUTE FUNCTION kappa.on_ddl_end();

-- Renames that views follow (src/views/view_rename.c): of a table, also
-- through ALTER VIEW, INDEX, ...; of a schema; and of a function, type,
-- operator or collation a view's query names, whose name the query's text
-- keeps (printed again from its parse tree).
-- The two fire for the same commands (one list): what the first parses
-- before a command, the second prints after it.
DROP EVENT TRIGGER kappa_ddl_start;
DROP EVENT TRIGGER kappa_ddl_renamed;
DO $$
DECLARE
    tags text := $t$'ALTER TABLE', 'ALTER SCHEMA', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW',
                    'ALTER FOREIGN TABLE', 'ALTER INDEX', 'ALTER SEQUENCE', 'ALTER FUNCTION',
                    'ALTER ROUTINE', 'ALTER PROCEDURE', 'ALTER AGGREGATE', 'ALTER TYPE',
                    'ALTER DOMAIN', 'ALTER OPERATOR', 'ALTER COLLATION', 'ALTER CONVERSION',
                    'ALTER TEXT SEARCH CONFIGURATION', 'ALTER TEXT SEARCH DICTIONARY',
                    'ALTER EXTENSION'$t$;
BEGIN
    EXECUTE format('CREATE EVENT TRIGGER kappa_ddl_start ON ddl_command_start'
                   ' WHEN TAG IN (%s) EXECUTE FUNCTION kappa.on_ddl_start()', tags);
    EXECUTE format('CREATE EVENT TRIGGER kappa_ddl_renamed ON ddl_command_end'
                   ' WHEN TAG IN (%s) EXECUTE FUNCTION kappa.on_ddl_renamed()', tags);
END
$$;

-- DROP ... CASCADE of an object a view's internal tables depend on (the
-- type of a source's column, say; a range type through its subtype_diff
-- function, its language, its operator class) would drop the extension, of
-- which those tables are members: refused before it starts, naming the view
-- (src/views/drop_guard.c).  Not SECURITY DEFINER: it reads the catalogs
-- as the extension's owner itself.
CREATE FUNCTION kappa.on_drop_start()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'kappa_on_drop_start'
LANGUAGE C;
REVOKE ALL ON FUNCTION kappa.on_drop_start() FROM PUBLIC;

CREATE EVENT TRIGGER kappa_drop_start ON ddl_command_start
    WHEN TAG IN ('DROP ACCESS METHOD', 'DROP AGGREGATE', 'DROP CAST', 'DROP COLLATION',
                 'DROP CONVERSION', 'DROP DOMAIN', 'DROP EXTENSION',
                 'DROP FOREIGN DATA WRAPPER', 'DROP FOREIGN TABLE', 'DROP FUNCTION',
                 'DROP INDEX', 'DROP LANGUAGE', 'DROP MATERIALIZED VIEW', 'DROP OPERATOR',
                 'DROP OPERATOR CLASS', 'DROP OPERATOR FAMILY', 'DROP OWNED', 'DROP POLICY',
                 'DROP PROCEDURE', 'DROP PUBLICATION', 'DROP ROUTINE', 'DROP RULE',
                 'DROP SCHEMA', 'DROP SEQUENCE', 'DROP SERVER', 'DROP STATISTICS',
                 'DROP TABLE', 'DROP TEXT SEARCH CONFIGURATION',
                 'DROP TEXT SEARCH DICTIONARY', 'DROP TEXT SEARCH PARSER',
                 'DROP TEXT SEARCH TEMPLATE', 'DROP TRANSFORM', 'DROP TRIGGER', 'DROP TYPE',
                 'DROP VIEW')
    EXECUTE FUNCTION kappa.on_drop_start();

-- A view's owner owns its internal relations, and could redefine one that
-- belongs to the extension (CREATE OR REPLACE VIEW of o_<n>) to depend on
-- an object of its own, whose DROP ... CASCADE would then drop the
-- extension, or move one out of the schema: such commands on members are
-- refused (src/views/internal_guard.c).
CREATE FUNCTION kappa.on_internal_ddl()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'kappa_on_internal_ddl'
LANGUAGE C;
REVOKE ALL ON FUNCTION kappa.on_internal_ddl() FROM PUBLIC;

CREATE EVENT TRIGGER kappa_internal_ddl ON ddl_command_start
    WHEN TAG IN ('CREATE VIEW', 'CREATE RULE', 'CREATE TRIGGER', 'CREATE POLICY',
                 'ALTER POLICY', 'ALTER TABLE', 'ALTER VIEW')
    EXECUTE FUNCTION kappa.on_internal_ddl();

-- A NULL view (to_regclass of a misspelt name) is an error, not an empty
-- result: kappa.verify returned no rows, which says the view is exact, and
-- kappa.drop_view did nothing without a word.
ALTER FUNCTION kappa.verify(regclass) CALLED ON NULL INPUT;
ALTER FUNCTION kappa.drop_view(regclass) CALLED ON NULL INPUT;
ALTER FUNCTION kappa.uncapture(regclass) CALLED ON NULL INPUT;
ALTER FUNCTION kappa.swap(regclass, regclass) CALLED ON NULL INPUT;

-- An audit of a view none of whose sources' changes are in the log (none
-- captured) says so, instead of "log of its sources ends at " and nothing.
CREATE OR REPLACE FUNCTION kappa.audit_view(v kappa.views, at timestamptz)
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
            CASE WHEN logged IS NULL
                 THEN format('applied up to %s; the log holds no change of its sources', v.applied_lsn)
                 WHEN logged <= v.applied_lsn
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

-- As in 0.3, but the lag in seconds of a view that is not running is the
-- time since it was last current (for a paused view: when it was paused,
-- or the worker's batch before), not since the worker's last batch, which
-- other views keep recent; and a failed capture's last error is shown
-- only to roles that may read its table, as a view's is.
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
            WHEN v.state = 'running'
            THEN pg_catalog.date_part('epoch', pg_catalog.now() - COALESCE(w.last_batch_at, v.last_commit_time, v.created_at))
            ELSE pg_catalog.date_part('epoch', pg_catalog.now() - COALESCE(v.last_commit_time, v.created_at)) END AS lag_seconds,
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
       NULL, NULL, NULL,
       -- as a view's: to those who may read the table
       CASE WHEN pg_catalog.has_table_privilege(c.relid, 'SELECT') THEN c.last_error END,
       NULL
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


-- kappa.audit reads the whole event log and writes kappa.audit_log, which
-- only the extension's owner may: a role without those rights was refused
-- by name of an internal function (audit_chain).  It is refused the call.
REVOKE ALL ON FUNCTION kappa.audit(boolean) FROM PUBLIC;

-- The partitions of a partitioned table changed (ATTACH, DETACH, DROP of
-- one): its rows came or went without changes of their own.  pg_kappa
-- writes a row here in the same transaction (src/views/partitions.c),
-- which the apply worker decodes in commit order and recomputes the views
-- over that table; no role writes it otherwise.  The worker empties it.
CREATE TABLE kappa.partition_changes (relid oid NOT NULL);
REVOKE ALL ON kappa.partition_changes FROM PUBLIC;
COMMENT ON TABLE kappa.partition_changes IS
'partitioned tables whose partitions changed, for the apply worker to recompute their views';

-- A view's analyzed query as PostgreSQL writes a parse tree (nodeToString),
-- and the catalog version of the server that wrote it.  When a table the
-- view reads is renamed or moved, its query text is printed again from
-- this tree (src/views/view_rename.c): parsing the text again would run
-- the view owner's code (a domain's CHECK on a literal) inside the
-- renaming role's command.  NULL, or written by a server of another
-- catalog version (after pg_upgrade), the text is parsed once more and
-- the tree written again.
ALTER TABLE kappa.views ADD COLUMN query_tree text;
ALTER TABLE kappa.views ADD COLUMN query_tree_catversion integer;

-- A captured table whose columns a command renames, drops or computes
-- again (ALTER COLUMN ... TYPE, ADD COLUMN with a volatile default; also
-- through another object: DROP TYPE ... CASCADE, ALTER TYPE ... CASCADE)
-- starts its log again with a snapshot, in the command's transaction, as
-- kappa.uncapture then kappa.capture would (src/log/capture_ddl.c): logged
-- changes name their columns as they were, and replay maps them by name.
-- Before ALTER TABLE of such a column (or DROP TYPE, DROP DOMAIN ...
-- CASCADE that drops one), the table's writers are held off until the
-- worker has logged what they committed; the tables rewritten and
-- the columns dropped are noted as the command goes, and the tables are
-- captured again at its end.
CREATE FUNCTION kappa.on_capture_ddl_start()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'kappa_on_capture_ddl_start'
LANGUAGE C;
REVOKE ALL ON FUNCTION kappa.on_capture_ddl_start() FROM PUBLIC;

CREATE EVENT TRIGGER kappa_capture_ddl_start ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE', 'ALTER TYPE', 'DROP TYPE', 'DROP DOMAIN')
    EXECUTE FUNCTION kappa.on_capture_ddl_start();

CREATE FUNCTION kappa.on_capture_rewrite()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'kappa_on_capture_rewrite'
LANGUAGE C;
REVOKE ALL ON FUNCTION kappa.on_capture_rewrite() FROM PUBLIC;

CREATE EVENT TRIGGER kappa_capture_rewrite ON table_rewrite
    EXECUTE FUNCTION kappa.on_capture_rewrite();

CREATE FUNCTION kappa.on_capture_drop()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'kappa_on_capture_drop'
LANGUAGE C;
REVOKE ALL ON FUNCTION kappa.on_capture_drop() FROM PUBLIC;

CREATE EVENT TRIGGER kappa_capture_drop ON sql_drop
    EXECUTE FUNCTION kappa.on_capture_drop();

CREATE FUNCTION kappa.on_capture_ddl()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'kappa_on_capture_ddl'
LANGUAGE C;
REVOKE ALL ON FUNCTION kappa.on_capture_ddl() FROM PUBLIC;

CREATE EVENT TRIGGER kappa_capture_ddl ON ddl_command_end
    EXECUTE FUNCTION kappa.on_capture_ddl();

-- Which tables are captured, and why a capture failed, are the business of
-- those who may read the table, as a view's catalog row is its readers'
-- (kappa.status shows a failed capture to everyone, without its error).
ALTER TABLE kappa.captures ENABLE ROW LEVEL SECURITY;
CREATE POLICY captures_readable ON kappa.captures FOR SELECT
    USING (kappa.can_read_view(relid, ARRAY[relid]));


-- The chain's head: the id and hash of the last row appended to the event
-- log, written in the same transaction as the row (src/log/event_log.c).
-- The next row chains onto it, and kappa.audit compares it with the log's
-- last row: a row deleted from the end of the log, which no later row
-- names, shows.  Not dumped: after a restore the log's last row is the
-- head until the next row is appended.
CREATE TABLE kappa.event_log_head (batch_id bigint NOT NULL, hash bytea NOT NULL);
REVOKE ALL ON kappa.event_log_head FROM PUBLIC;
INSERT INTO kappa.event_log_head (batch_id, hash)
SELECT batch_id, hash FROM (
    SELECT batch_id, hash FROM kappa.event_log
    UNION ALL
    SELECT last_batch, last_hash FROM kappa.event_log_pruned) h
 ORDER BY batch_id DESC LIMIT 1;
CREATE TRIGGER kappa_log_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON kappa.event_log_head FOR EACH STATEMENT EXECUTE FUNCTION kappa.log_guard();

-- As in 0.3, and the log's last row against its head.
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
    head record;
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
    -- the last row appended, as kept apart from the log: a row deleted
    -- from the end (or one added after it) shows here
    SELECT h.batch_id, h.hash INTO head FROM kappa.event_log_head h;
    IF FOUND AND (head.batch_id <> expect_id - 1 OR head.hash <> expect_hash) THEN
        bad := bad + 1;
        "check" := 'chain'; object := 'batch ' || head.batch_id; ok := false;
        detail := CASE WHEN head.batch_id = expect_id
                       THEN format('batch %s is missing from the end of the log', expect_id)
                       WHEN head.batch_id > expect_id
                       THEN format('batches %s to %s are missing from the end of the log',
                                   expect_id, head.batch_id)
                       WHEN head.batch_id < expect_id - 1
                       THEN format('the log goes on past batch %s, the last one appended',
                                   head.batch_id)
                       ELSE format('batch %s is not the one appended', head.batch_id) END;
        RETURN NEXT;
    END IF;
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
