/* src/pg_kappa--0.5--0.6.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_kappa UPDATE TO '0.6'" to load this file. \quit

-- 0.6: a column added to a source of an engine 2 view leaves the view
-- running.  Engine 2's delta tables (d_<n>, in kappa.views.arrangements)
-- keep the columns the source had when the view was made; the worker
-- writes the batch's images into them without the columns added since,
-- which the view's query cannot read.  A column of the view's time that
-- is renamed, dropped or of another type still marks the view broken (as
-- every change of an engine 1 view's source columns does): its query would
-- read something else, or nothing.

-- What makes a view's sources unfit for it now, or NULL: its columns
-- changed (renamed too; for engine 2, columns added are not a change), a
-- replica identity that no longer identifies rows by the key the worker
-- matches them on, row-level security that applies to the view's owner,
-- or the owner's SELECT privilege gone.  Dropped sources are
-- kappa.on_sql_drop's business.
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
        IF v.engine >= 2 THEN
            -- every column of the view's time still there, as it was (the
            -- delta table's last column is its weight)
            IF EXISTS (
                   SELECT attnum, attname, atttypid, atttypmod
                     FROM pg_attribute
                    WHERE attrelid = v.arrangements[i] AND attnum > 0 AND NOT attisdropped
                      AND attnum < (SELECT max(attnum) FROM pg_attribute
                                     WHERE attrelid = v.arrangements[i])
                   EXCEPT
                   SELECT attnum, attname, atttypid, atttypmod
                     FROM pg_attribute
                    WHERE attrelid = src AND attnum > 0 AND NOT attisdropped) THEN
                RETURN format('columns of source table %s changed', srcname);
            END IF;
        ELSIF EXISTS (
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
