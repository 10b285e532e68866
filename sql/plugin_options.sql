-- Options: every option's bad values and unknown options are errors that
-- name the option and the accepted values; the tables, actions,
-- include-* and skip-empty-xacts options do what they say.
SELECT 'init' FROM pg_create_logical_replication_slot('opt', 'pg_kappa');
CREATE TABLE opt_t (id int PRIMARY KEY, v text);
INSERT INTO opt_t VALUES (1, 'x');

-- bad values (the verbose error shows the hint too)
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'no-such-option', 'on');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'include-xids', 'maybe');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'include-timestamp', '');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'include-lsn', '2');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'include-types', 'yess');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'include-origin', 'o');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'include-messages', 'nope');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'skip-empty-xacts', '-1');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'only-local', 'local');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'streaming', 'always');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'publish-via-root', 'root');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'format-version', '2');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'actions', 'insert,upsert');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'actions', '');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'actions', 'insert,,delete');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'message-prefixes', 'a,,b');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'message-prefixes', '');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'tables', '');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'tables', 'opt_t');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'tables', 'public.');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'tables', '.opt_t');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'tables', 'a.b.c');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'tables', 'public.opt_t,');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'tables', 'public."opt_t');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'tables', '"".opt_t');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'tables', 'public.opt_t public.x');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'tables', 'public."a"b');
-- a bad option later in the list is found too, and nothing was consumed
SELECT data FROM pg_logical_slot_get_changes('opt', NULL, NULL, 'include-xids', 'off', 'Include-Lsn', 'off');
\set VERBOSITY terse
SELECT count(*) FROM pg_logical_slot_peek_changes('opt', NULL, NULL);

-- booleans take PostgreSQL's spellings; the last of repeated options wins
-- (an option without a value, which pg_recvlogical can send, is tested in
-- test/t/010_recvlogical.pl: the SQL functions refuse NULL values)
SELECT * FROM decode('opt', 'include-xids', 'TRUE', 'include-xids', 'off', 'include-lsn', 'yes', 'include-lsn', 'n',
                     'include-timestamp', '0', 'include-types', 'On', 'skip-empty-xacts', 'OFF', 'format-version', '1');
-- actions: any subset, quoted or not, with blanks
INSERT INTO opt_t VALUES (2, 'y');
UPDATE opt_t SET v = 'z';
DELETE FROM opt_t WHERE id = 1;
TRUNCATE opt_t;
SELECT 'init' FROM pg_create_logical_replication_slot('opt2', 'pg_kappa');
SELECT data FROM pg_logical_slot_peek_changes('opt', NULL, NULL, 'actions', ' Update , "delete" ', 'include-lsn', 'off', 'include-xids', 'off', 'include-timestamp', 'off');
SELECT * FROM decode('opt', 'actions', 'insert,truncate');

-- tables: wildcards in unquoted parts, case folding, quoted parts exact
CREATE SCHEMA "Opt S";
CREATE SCHEMA opt_s2;
CREATE TABLE "Opt S"."Mixed Case" (id int);
CREATE TABLE "Opt S"."star*" (id int);
CREATE TABLE "Opt S".startle (id int);
CREATE TABLE opt_s2.t1 (id int);
CREATE TABLE opt_s2.t2 (id int);
CREATE TABLE opt_s2."T1" (id int);
CREATE TABLE opt_s2."a.b" (id int);
CREATE TABLE opt_s2."q""q" (id int);
BEGIN;
INSERT INTO "Opt S"."Mixed Case" VALUES (1);
INSERT INTO "Opt S"."star*" VALUES (1);
INSERT INTO "Opt S".startle VALUES (1);
INSERT INTO opt_s2.t1 VALUES (1);
INSERT INTO opt_s2.t2 VALUES (1);
INSERT INTO opt_s2."T1" VALUES (1);
INSERT INTO opt_s2."a.b" VALUES (1);
INSERT INTO opt_s2."q""q" VALUES (1);
INSERT INTO opt_t VALUES (3, 'w');
COMMIT;
CREATE FUNCTION matching(pattern text) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(string_agg((d->>'schema') || '.' || (d->>'table'), ' | ' ORDER BY n), '(none)')
  FROM (SELECT row_number() OVER () AS n, data::jsonb AS d
        FROM pg_logical_slot_peek_changes('opt2', NULL, NULL, 'tables', pattern)) s
  WHERE d->>'kind' = 'insert';
$$;
SELECT pattern, matching(pattern) FROM (VALUES
  ('*.*'),
  ('opt_s2.*'),
  ('OPT_S2.T1'),
  ('opt_s2."T1"'),
  ('opt_s2.t*'),
  ('opt_s2.*1'),
  ('"Opt S".*'),
  ('"Opt S"."star*"'),
  ('"Opt S"."Mixed Case", public.opt_t'),
  ('opt S.*'),
  ('"opt s".*'),
  ('*.star*'),
  ('*."star*"'),
  ('opt_s2."a.b"'),
  ('opt_s2."q""q"'),
  ('opt_s2.a.b'),
  ('*s*.*t*'),
  ('pg_catalog.*')
) p(pattern) WHERE pattern <> 'opt_s2.a.b' AND pattern <> 'opt S.*';
SELECT matching('opt S.*');
SELECT matching('opt_s2.a.b');
-- with decode's validation
SELECT * FROM decode('opt2', 'tables', 'opt_s2.t*, "Opt S"."Mixed Case"');

SELECT pg_drop_replication_slot('opt');
SELECT pg_drop_replication_slot('opt2');
DROP TABLE opt_t;
DROP SCHEMA "Opt S", opt_s2 CASCADE;
DROP FUNCTION matching;
