-- Values of every built-in type family: numbers as JSON numbers (exactly
-- as PostgreSQL prints them, NaN and infinities as strings), booleans,
-- json/jsonb embedded, dates and times in ISO 8601 whatever the session's
-- settings, everything else as an escaped string.
\set VERBOSITY terse
SELECT 'init' FROM pg_create_logical_replication_slot('types', 'pg_kappa');
SELECT 'init' FROM pg_create_logical_replication_slot('types2', 'pg_kappa');
CREATE TYPE ty_mood AS ENUM ('happy', 'sad "quoted"');
CREATE TYPE ty_pair AS (a int, b text);
CREATE DOMAIN ty_posint AS int CHECK (VALUE > 0);
CREATE DOMAIN ty_label AS varchar(10);
CREATE DOMAIN ty_ts AS timestamptz;

-- integers and floats
CREATE TABLE ty_num (k int PRIMARY KEY, i2 int2, i4 int4, i8 int8, o oid, f4 float4, f8 float8);
INSERT INTO ty_num VALUES
  (1, -32768, -2147483648, -9223372036854775808, 0, -3.4028235e38, -1.7976931348623157e308),
  (2, 32767, 2147483647, 9223372036854775807, 4294967295, 3.4028235e38, 1.7976931348623157e308),
  (3, 0, 0, 0, 1, 'NaN', 'NaN'),
  (4, NULL, NULL, NULL, NULL, 'Infinity', 'Infinity'),
  (5, NULL, NULL, NULL, NULL, '-Infinity', '-Infinity'),
  (6, NULL, NULL, NULL, NULL, 0.1, 0.1),
  (7, NULL, NULL, NULL, NULL, '-0', '-0'),
  (8, NULL, NULL, NULL, NULL, 1e-45, 4.9e-324),
  (9, NULL, NULL, NULL, NULL, 1.17549435e-38, 2.2250738585072014e-308),
  (10, NULL, NULL, NULL, NULL, 123456.789, 1e21),
  (11, NULL, NULL, NULL, NULL, 1e-7, 1.5e-7);
SELECT * FROM decode('types');

-- numeric: 1000 digits, scales, NaN, infinities, typmods
CREATE TABLE ty_numeric (k int PRIMARY KEY, n numeric, n2 numeric(10,2), n3 numeric(5,-2));
INSERT INTO ty_numeric VALUES
  (1, ('9' || repeat('0123456789', 99) || '.' || repeat('9', 9))::numeric, 1, 12345),
  (2, 'NaN', 'NaN', 'NaN'),
  (3, 'Infinity', NULL, NULL),
  (4, '-Infinity', -0.005, -149),
  (5, 0.000000000000000000000000000001, 0, 0),
  (6, -0.00, 99999999.99, 9999949),
  (7, 1e20, 1.005, NULL);
SELECT d->'new'->'n' AS n, d->'new'->'n2' AS n2, d->'new'->'n3' AS n3 FROM
  (SELECT decode::jsonb AS d FROM decode('types') OFFSET 1) s WHERE d->>'kind' = 'insert' AND (d->'new'->>'k')::int > 1;
-- the 1000 digits survive exactly
SELECT length(d->'new'->>'n') AS len, (d->'new'->>'n')::numeric = ('9' || repeat('0123456789', 99) || '.' || repeat('9', 9))::numeric AS exact
FROM (SELECT decode::jsonb AS d FROM decode('types2')) s WHERE d->>'kind' = 'insert' AND d->>'table' = 'ty_numeric' AND d->'new'->>'k' = '1';
SELECT 'init' FROM pg_drop_replication_slot('types2');
SELECT 'init' FROM pg_create_logical_replication_slot('types2', 'pg_kappa');

-- strings: every control character, quotes, backslashes, non-ASCII
CREATE TABLE ty_text (k int PRIMARY KEY, t text, c char(5), v varchar(3), n name, ch "char", l ty_label);
INSERT INTO ty_text VALUES
  (1, (SELECT string_agg(chr(i), '' ORDER BY i) FROM generate_series(1, 31) i), 'ab', 'xyz', 'nm', 'q', 'label'),
  (2, E'quote " backslash \\ slash / del \x7f', '"', '\', E'"\\', '"', E'\\"'),
  (3, 'é ü ß ✓ 中文 𝄞 😀 ' || chr(8232) || chr(8233) || chr(65279), 'é', '✓✓✓', 'ñ', 'a', '中'),
  (4, '', '', '', '', '', ''),
  (5, 'null', 'true', '1', 'NULL', '0', '{}');
SELECT * FROM decode('types');

-- date and time types
CREATE TABLE ty_time (k int PRIMARY KEY, d date, ts timestamp, tstz timestamptz, ts3 timestamp(3) with time zone,
                      t time, ttz timetz, iv interval, dts ty_ts);
INSERT INTO ty_time VALUES
  (1, '2026-11-27', '2026-11-27 19:53:08.123456', '2026-11-27 19:53:08.123456+00', '2026-11-27 19:53:08.1239+00',
   '19:53:08.5', '19:53:08+05:30', '1 year 2 mons 3 days 04:05:06.789', '2026-01-01 00:00:00+00'),
  (2, 'infinity', 'infinity', 'infinity', '-infinity', '24:00', '00:00:00-15:59', '-1 day -00:00:01', 'infinity'),
  (3, '0001-01-01 BC', '4713-01-01 00:00:00 BC', '0044-03-15 12:00:00+00 BC', NULL, NULL, NULL, '178000000 years', NULL),
  (4, '294276-12-31', '294276-12-31 23:59:59.999999', '2000-02-29 23:59:59.999999-01', NULL, '00:00', NULL, '0', NULL),
  (5, '1999-01-08', '1999-01-08 04:05:06', '1999-01-08 04:05:06+08:00', NULL, NULL, NULL, '1 day 25 hours', NULL);
SELECT * FROM decode('types');

-- json and jsonb are embedded, even with newlines and odd spacing
CREATE TABLE ty_json (k int PRIMARY KEY, j json, jb jsonb);
INSERT INTO ty_json VALUES
  (1, E'{\n  "a" : [1, 2.50, "x\\ny"],\t"b": null\r\n}', E'{\n  "a" : [1, 2.50, "x\\ny"], "b": null}'),
  (2, '"str"', '"str"'),
  (3, '1e5', '1e5'),
  (4, 'null', 'null'),
  (5, '{"a":1,"a":2}', '{"a":1,"a":2}'),
  (6, E'"\\u00e9"', E'"\\u00e9"'),
  (7, '[]', '{}');
SELECT decode AS line, position(E'\n' IN decode) = 0 AS one_line
FROM decode('types') WHERE decode LIKE '%insert%';

-- arrays, composites, enums, domains, ranges and other types
CREATE TABLE ty_other (k int PRIMARY KEY, ai int[], at text[], a2 int[][], ats timestamptz[], comp ty_pair,
                       e ty_mood, dom ty_posint, r int4range, b bytea, u uuid, inet inet, m money,
                       bits bit varying(8), pt point, tv tsvector, lsn pg_lsn, x xml);
INSERT INTO ty_other VALUES
  (1, '{1,2,NULL}', ARRAY['a"b', 'c\d', NULL, 'NULL', '', 'x y'], '{{1,2},{3,4}}',
   ARRAY['2026-11-27 19:53:08+00'::timestamptz, 'infinity'], ROW(1, 'x "y" \z'),
   'sad "quoted"', 42, '[1,10)', '\x00ff5c22', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24',
   12.34, B'1011', '(1.5,-2)', 'a:1 fat:2 cat', '16/B374D848', '<a x="1">é</a>'),
  (2, '{}', '{}', NULL, '{}', ROW(NULL, NULL), 'happy', 1, 'empty', '', '00000000-0000-0000-0000-000000000000',
   '::1', -0.01, B'', '(0,0)', '', '0/0', NULL);
SELECT * FROM decode('types');

-- more families; names that depend on search_path are qualified unless in
-- pg_catalog, whatever the session's search_path
CREATE TABLE ty_more (k int PRIMARY KEY, rc regclass, rt regtype, mr datemultirange, bx box, ci circle,
                      cd cidr, mac macaddr, tq tsquery, jp jsonpath, sn pg_snapshot, vb varbit, ia int8range[]);
INSERT INTO ty_more VALUES
  (1, 'ty_more', 'ty_mood', '{[2026-01-01,2026-02-01), [2026-03-01,)}', '((0,0),(1,1))', '<(0,0),2>',
   '10.0.0.0/8', '08:00:2b:01:02:03', 'fat & (rat | cat)', '$.a[*] ? (@ > 1)', '10:20:10,14,15', B'101',
   ARRAY['[1,5)'::int8range, 'empty']),
  (2, 'pg_class', 'int4', '{}', NULL, NULL, '::/0', NULL, NULL, NULL, NULL, NULL, '{}');
SET search_path = public, pg_temp;
SELECT * FROM decode('types');
RESET search_path;

-- include-types names every column's type with its typmod; domains keep
-- their own names; names outside pg_catalog are schema-qualified
SELECT substring(decode FROM '"types":\{[^}]*\}') AS types FROM decode('types2', 'include-types', 'on')
WHERE decode ~ '"kind":"insert"' AND decode ~ '"new":\{"k":1,';

-- the same changes decoded under other session settings give identical
-- output (the lines of a first decode are kept in ty_out): the plugin
-- decodes with DateStyle ISO, TimeZone UTC, IntervalStyle iso_8601, exact
-- floats, hex bytea, lc_monetary C and search_path pg_catalog
SELECT 'init' FROM pg_create_logical_replication_slot('types3', 'pg_kappa');
CREATE TABLE ty_all (k int PRIMARY KEY, f4 float4, f8 float8, n numeric, d date, ts timestamp, tstz timestamptz,
                     t time, ttz timetz, iv interval, ats timestamptz[], ad date[], comp ty_pair, b bytea,
                     m money, pt point, r tstzrange);
CREATE TYPE ty_tspair AS (t timestamptz, i interval);
ALTER TABLE ty_all ADD COLUMN ctp ty_tspair;
INSERT INTO ty_all VALUES
  (1, 1.1, 0.1, 1.1, '2026-03-04', '2026-03-04 05:06:07.5', '2026-03-04 05:06:07.5+00', '05:06:07', '05:06:07+02',
   '1 day 02:03:04.5', '{2026-03-04 05:06:07+00}', '{2026-03-04}', ROW(1, 'x'), '\xdeadbeef',
   1234.5, '(0.1,0.2)', '[2026-03-04 00:00+00,2026-03-05 00:00+00)', ROW('2026-03-04 05:06:07+00', '-1 mon 2 days')),
  (2, 3.4028235e38, 1.7976931348623157e308, 'NaN', '0001-01-01 BC', '2026-12-31 23:59:59.999999', '1999-12-31 23:00:00-05',
   '23:59:59.999999', '00:00+14', '-1 year -2 days', '{infinity,-infinity}', '{infinity}', NULL, '\x',
   -0.5, '(1e300,-1e-300)', 'empty', NULL);
CREATE TEMP TABLE ty_out AS
  SELECT row_number() OVER () AS n, decode AS line FROM pg_logical_slot_peek_changes('types3', NULL, NULL) p(lsn, xid, decode);
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'America/St_Johns';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = -3;
SET bytea_output = 'escape';
SELECT n, line FROM ty_out
  FULL JOIN (SELECT row_number() OVER () AS n, decode AS line FROM pg_logical_slot_peek_changes('types3', NULL, NULL) p(lsn, xid, decode)) s
  USING (n, line)
WHERE ty_out.line IS NULL OR s.line IS NULL ORDER BY n;
-- and the session's own settings are as they were
SELECT current_setting('DateStyle') AS datestyle, current_setting('TimeZone') AS timezone,
       current_setting('IntervalStyle') AS intervalstyle, current_setting('extra_float_digits') AS efd,
       current_setting('bytea_output') AS bytea_output, current_setting('search_path') AS search_path;
SELECT '2026-03-04 05:06:07+00'::timestamptz, '1 day'::interval, 0.1::float8, '\xff'::bytea;
RESET DateStyle;
RESET TimeZone;
RESET IntervalStyle;
RESET extra_float_digits;
RESET bytea_output;
SELECT * FROM decode('types3');

SELECT pg_drop_replication_slot('types');
SELECT pg_drop_replication_slot('types2');
SELECT pg_drop_replication_slot('types3');
DROP TABLE ty_num, ty_numeric, ty_text, ty_time, ty_json, ty_other, ty_all, ty_more;
DROP TYPE ty_mood, ty_pair, ty_tspair;
DROP DOMAIN ty_posint, ty_label, ty_ts;
