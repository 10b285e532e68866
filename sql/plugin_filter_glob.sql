-- The tables option's globs: matching takes time linear in the name for
-- each star, not exponential in the number of stars, and the semantics of
-- '*' (any run, possibly empty) and quoted literal characters hold.
\set VERBOSITY terse
SET statement_timeout = '20s';
CREATE SCHEMA glob_s;
-- a name of NAMEDATALEN - 1 = 63 characters
SELECT format('CREATE TABLE glob_s.%I (id int)', 'glob_' || repeat('a', 58)) \gexec
SELECT length(relname) FROM pg_class WHERE relname LIKE 'glob\_a%';
CREATE TABLE glob_s.ab (id int);
CREATE TABLE glob_s.axxb (id int);
CREATE TABLE glob_s."a*b" (id int);
CREATE TABLE glob_s.abab (id int);
CREATE TABLE glob_s.aab (id int);
CREATE TABLE glob_s."a\b" (id int);
CREATE TABLE glob_s.b (id int);
SELECT 'init' FROM pg_create_logical_replication_slot('glob', 'pg_kappa');
BEGIN;
SELECT format('INSERT INTO glob_s.%I VALUES (1)', 'glob_' || repeat('a', 58)) \gexec
INSERT INTO glob_s.ab VALUES (1);
INSERT INTO glob_s.axxb VALUES (1);
INSERT INTO glob_s."a*b" VALUES (1);
INSERT INTO glob_s.abab VALUES (1);
INSERT INTO glob_s.aab VALUES (1);
INSERT INTO glob_s."a\b" VALUES (1);
INSERT INTO glob_s.b VALUES (1);
COMMIT;

-- the tables whose inserts a pattern lets through (the slot is only peeked)
CREATE FUNCTION glob_matching(pattern text) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(string_agg(CASE WHEN length(d->>'table') = 63 THEN '<63 chars>'
                                  ELSE d->>'table' END, ' | ' ORDER BY n), '(none)')
  FROM (SELECT row_number() OVER () AS n, data::jsonb AS d
        FROM pg_logical_slot_peek_changes('glob', NULL, NULL, 'tables', pattern)) s
  WHERE d->>'kind' = 'insert';
$$;

-- 12 stars against the 63-character name: no match, then a match; both
-- finish at once (a recursive matcher ran far past the statement timeout
-- on the first, without reacting to it)
SELECT glob_matching('glob_s.*a*a*a*a*a*a*a*a*a*a*a*b');
SELECT glob_matching('glob_s.*a*a*a*a*a*a*a*a*a*a*a*a');
SELECT glob_matching('glob_s.*g*l*o*b*_*a*a*a*a*a*a*');
SELECT glob_matching('*.*a*a*a*a*a*a*a*a*a*a*a*b, glob_s.glob_*');

-- correctness of the matcher
SELECT pattern, glob_matching(pattern) FROM (VALUES
  ('glob_s.*'),
  ('glob_s.*b'),
  ('glob_s.a*'),
  ('glob_s.a*b'),
  ('glob_s.a**b'),
  ('glob_s.***'),
  ('glob_s.**b**'),
  ('glob_s.*ab'),
  ('glob_s.a*ab'),
  ('glob_s.*ab*'),
  ('glob_s.*b*b'),
  ('glob_s.ab*b'),
  ('glob_s.a*b*'),
  ('glob_s.*a'),
  ('glob_s."a*b"'),
  ('glob_s."a*"'),
  ('glob_s.a\b'),
  ('glob_s."a\b"'),
  ('glob_s.a\*'),
  ('glob_s.ab'),
  ('glob_s.b*'),
  ('glob_*.b'),
  ('*_s.b'),
  ('g*s.b'),
  ('glob_s*.b'),
  ('*glob_s.b'),
  ('glob_.b'),
  ('"glob_*".b')
) p(pattern);

-- the same with decode's validation, consuming the changes
SELECT * FROM decode('glob', 'tables', 'glob_s.*a*a*a*a*a*a*a*a*a*a*a*b, glob_s.*a*a*a*a*a*a*a*a*a*a*a*a, glob_s."a*b"');

RESET statement_timeout;
SELECT pg_drop_replication_slot('glob');
DROP FUNCTION glob_matching;
DROP SCHEMA glob_s CASCADE;
