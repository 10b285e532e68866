-- A captured json column holds whatever json_in accepts, which jsonb_in
-- may refuse ("\u0000", lone surrogates, numbers past numeric's range) or
-- take long to sort (an object with many keys).  Such a value must not
-- make kappa.events fail: its record comes back as its kind, schema,
-- table, why it is unreadable and the whole line as a string, to readers
-- of its own table only; and a large object must be read in n log n.
\set VERBOSITY terse
CREATE ROLE regress_kappa_hj_mallory;
CREATE SCHEMA regress_kappa_hj AUTHORIZATION regress_kappa_hj_mallory;
CREATE TABLE hj_start AS SELECT pg_current_wal_insert_lsn() AS lsn;
CREATE TABLE hj_other (id int PRIMARY KEY, v text);
SELECT kappa.capture('hj_other') IS NOT NULL AS captured;
SELECT kappa.create_view('hj_other_ids', 'SELECT id FROM hj_other');
GRANT SELECT ON hj_start, hj_other TO PUBLIC;
SET ROLE regress_kappa_hj_mallory;
CREATE TABLE regress_kappa_hj.j (id int PRIMARY KEY, j json);
SELECT kappa.capture('regress_kappa_hj.j') IS NOT NULL AS captured;
GRANT SELECT ON regress_kappa_hj.j TO PUBLIC;
-- an object of 100000 keys in descending order, some of them twice
INSERT INTO regress_kappa_hj.j
SELECT 1, ('{' || string_agg(format('"k%s":%s', 1000000 - i % 90000, i), ',') || '}')::json
  FROM generate_series(1, 100000) i;
RESET ROLE;
INSERT INTO hj_other VALUES (1, 'before');
SELECT kappa.wait('hj_other_ids');
-- read in well under the time an insertion sort takes (about 15 s)
SET statement_timeout = '5s';
SELECT count(*) AS records,
       bool_and(e = (SELECT j::jsonb FROM regress_kappa_hj.j WHERE id = 1)) AS same
  FROM kappa.events((SELECT lsn FROM hj_start), NULL, '{regress_kappa_hj.j}') x,
       LATERAL (SELECT x.x->'new'->'j' AS e) y
 WHERE x.x->>'kind' = 'insert';
RESET statement_timeout;
SET ROLE regress_kappa_hj_mallory;
INSERT INTO regress_kappa_hj.j VALUES (2, '"\u0000"'), (3, '1e999999'),
  (4, '{"a": "\udc00"}'), (5, '[-1E+1001]'), (6, '"ok"');
RESET ROLE;
INSERT INTO hj_other VALUES (2, 'after');
SELECT kappa.wait('hj_other_ids');
-- readers of other tables are not concerned
SELECT e->>'kind' AS kind, e->'new' AS new
  FROM kappa.events((SELECT lsn FROM hj_start), NULL, '{hj_other}') e
 WHERE e->>'kind' = 'insert';
CREATE ROLE regress_kappa_hj_bob;
SET ROLE regress_kappa_hj_bob;
SELECT e->>'kind' AS kind, e->'new' AS new
  FROM kappa.events((SELECT lsn FROM hj_start)) e
 WHERE e->>'kind' = 'insert';
RESET ROLE;
-- readers of the table get the records jsonb cannot hold as strings
SELECT e->>'kind' AS kind, e->>'table' AS tab, e->>'unreadable' AS why,
       strpos(e->>'line', '"id":' || i) > 0 AS has_line
  FROM kappa.events((SELECT lsn FROM hj_start), NULL, '{regress_kappa_hj.j}') e,
       LATERAL (SELECT i FROM generate_series(2, 5) i WHERE strpos(e->>'line', '"id":' || i) > 0) l
 WHERE e ? 'unreadable' ORDER BY i;
SELECT e->'new'->>'id' AS id, left(e->'new'->>'j', 12) AS j
  FROM kappa.events((SELECT lsn FROM hj_start), NULL, '{regress_kappa_hj.j}') e
 WHERE e->>'kind' = 'insert' AND NOT e ? 'unreadable' AND (e->'new'->>'id')::int > 1;
-- and so does a read of the whole log, which goes on past them
SELECT count(*) FILTER (WHERE e ? 'unreadable') AS unreadable,
       count(*) FILTER (WHERE e->>'kind' = 'insert') AS inserts
  FROM kappa.events((SELECT lsn FROM hj_start)) e;
SELECT kappa.drop_view('hj_other_ids');
SELECT kappa.uncapture('hj_other');
SELECT kappa.uncapture('regress_kappa_hj.j');
DROP TABLE hj_other, hj_start;
DROP SCHEMA regress_kappa_hj CASCADE;
DROP ROLE regress_kappa_hj_mallory, regress_kappa_hj_bob;
