/* src/pg_kappa--0.6--0.7.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_kappa UPDATE TO '0.7'" to load this file. \quit

-- 0.7: derived views follow renames of their sources (ALTER TABLE ...
-- RENAME TO, ALTER TABLE ... SET SCHEMA, ALTER SCHEMA ... RENAME TO), as
-- PostgreSQL's views do.  Before such a command the queries of the views
-- that read the table are parsed, while the old names resolve; after it
-- they are printed again into kappa.views.canonical with the new names
-- (src/views/view_rename.c).  Before 0.7 the view stopped at its next
-- batch ("relation ... does not exist") and could only be created again.

-- Not SECURITY DEFINER, and no search_path of their own: the first must
-- resolve the command's table name as the command does, with the caller's
-- search_path.  They read and write kappa.views as the extension's owner,
-- parse and print each view's query as the view's owner (with search_path
-- pg_catalog, pg_temp), and their own statements name everything with its
-- schema.
CREATE FUNCTION kappa.on_ddl_start()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'kappa_on_ddl_start'
LANGUAGE C;

CREATE FUNCTION kappa.on_ddl_renamed()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'kappa_on_ddl_renamed'
LANGUAGE C;

REVOKE ALL ON FUNCTION kappa.on_ddl_start() FROM PUBLIC;
REVOKE ALL ON FUNCTION kappa.on_ddl_renamed() FROM PUBLIC;

CREATE EVENT TRIGGER kappa_ddl_start ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA')
    EXECUTE FUNCTION kappa.on_ddl_start();
CREATE EVENT TRIGGER kappa_ddl_renamed ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA')
    EXECUTE FUNCTION kappa.on_ddl_renamed();
