-- kappa.events builds each record's jsonb with its own scanner of the log's
-- lines (json_read.c): the result must be what jsonb_in makes of the line,
-- for every kind of value the log writes.
\set VERBOSITY terse
CREATE TABLE jt (id int PRIMARY KEY, t text, n numeric, f float8, r real, b bool,
                 j json, jb jsonb, ts timestamptz, d date, a int[], big bigint,
                 s smallint, x bytea, "we""ird key" text);
SELECT kappa.capture('jt') IS NOT NULL AS captured;
SELECT kappa.create_view('jt_ids', 'SELECT id FROM jt');
INSERT INTO jt VALUES
 (1, E'a"b\\c\nd\te\u00e9\u20ac\U0001F600/\x01\x1f', 1.50, 1e300, 'NaN', true,
  '{"a": [1, 2.5e3, -0, {"b": null}], "a": "dup", "c": "\u00e9\ud83d\ude00 \n \/", "bb": 1, "b": 2}',
  '{"x": [true, false, null, "s\"q", 12345678901234567890123, -1.0e-5, 1E+2, 0.0]}',
  '2020-01-01 12:00:00+00', '2020-01-01', '{1,2,3}', -9223372036854775808, -32768, '\x00ff', 'w'),
 (2, '', 'NaN', '-Infinity', 1.5e-40, false, '[]', '{}', '-infinity', 'infinity', '{}',
  9223372036854775807, 0, '', NULL),
 (3, NULL, -0.000100, 0.1, NULL, NULL, '"str"', '123', NULL, NULL, NULL, 0, NULL, NULL, ''),
 (4, repeat('x', 30), 123456789012345678901234567890.123, 3.14, 1, true,
  '{"k":"v\u0041", "e": 1e5, "z": -0.0, "big": 1234567890123456789, "x": {"x": 1, "x": [2]}}',
  '[[[[[1]]]]]', NULL, NULL, '{{1,2},{3,4}}', 1, 1, NULL, E'\\u0000 is text here');
UPDATE jt SET t = t || '!', n = n * 2 WHERE id IN (1, 3);
DELETE FROM jt WHERE id = 2;
TRUNCATE jt;
SELECT kappa.wait('jt_ids');
-- every record of jt, as kappa.events returns it and as jsonb_in reads its
-- line: the same text, and the same size (both read back from a
-- materialized set, so that both are stored alike)
WITH lines AS (
  SELECT l FROM kappa.event_log, regexp_split_to_table(rtrim(events, E'\n'), E'\n') l
   WHERE tables = ARRAY['jt'::regclass::oid] AND l <> ''
), fast AS MATERIALIZED (
  SELECT e AS j FROM kappa.events(tables => '{jt}') e
), slow AS MATERIALIZED (
  SELECT l::jsonb AS j FROM lines
), f AS (SELECT j::text, pg_column_size(j) FROM fast),
   s AS (SELECT j::text, pg_column_size(j) FROM slow)
SELECT (SELECT count(*) FROM f) AS records,
       (SELECT count(*) FROM ((SELECT * FROM f EXCEPT ALL SELECT * FROM s)
                              UNION ALL (SELECT * FROM s EXCEPT ALL SELECT * FROM f)) d) AS differ;
-- the values as they come out
SELECT e->'new' AS new FROM kappa.events(tables => '{jt}') e
 WHERE e->>'kind' = 'insert' ORDER BY (e->'new'->>'id')::int;
SELECT kappa.drop_view('jt_ids');
SELECT kappa.uncapture('jt');
DROP TABLE jt;
