-- A captured json column holds whatever json_in accepts, which jsonb_in
-- may refuse ("\u0000", lone surrogates, numbers past numeric's range) or
-- take long to sort (an object with many keys).  Such a value must make
-- kappa.events fail only for readers of its own table, and a large object
-- must be read in n log n.
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
-- readers of the table get jsonb_in's error
SELECT count(*) FROM kappa.events((SELECT lsn FROM hj_start), NULL, '{regress_kappa_hj.j}');
SELECT count(*) FROM kappa.events((SELECT lsn FROM hj_start));
SELECT kappa.drop_view('hj_other_ids');
SELECT kappa.uncapture('hj_other');
SELECT kappa.uncapture('regress_kappa_hj.j');
DROP TABLE hj_other, hj_start;
DROP SCHEMA regress_kappa_hj CASCADE;
DROP ROLE regress_kappa_hj_mallory, regress_kappa_hj_bob;
