-- Replay by compaction: each source's rows at an LSN, reduced from the
-- log (snapshot and changes) and loaded in bulk, then the view's query
-- once over them.  Engine 2 views in place, into a new view and as of an
-- LSN; a table without a key holding duplicate rows; a table whose old
-- images hold only the key; TRUNCATE in the log; TOASTed values; values
-- of many types.  The log is read by a parallel worker, which sends the
-- replaying backend what it reads (replay_reader.c), however short: the
-- other replay tests read it in the backend itself.
\set VERBOSITY terse
SET client_min_messages = warning;
SET pg_kappa.min_parallel_replay_records = 0;
SET max_parallel_maintenance_workers = 1;
-- diff(a, b): rows of a not in b and of b not in a, with duplicates
CREATE FUNCTION rc_diff(a regclass, b regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((TABLE %s EXCEPT ALL TABLE %s) UNION ALL (TABLE %s EXCEPT ALL TABLE %s)) d',
                   a, b, b, a) INTO n;
    RETURN n;
END $$;
-- the heap of a table, row by row in physical order
CREATE FUNCTION rc_heap(t regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE s text;
BEGIN
    EXECUTE format('SELECT string_agg(x.ctid::text || x::text, '';'' ORDER BY x.ctid) FROM %s x', t) INTO s;
    RETURN s;
END $$;
-- big(k, len): a deterministic string of len characters that pglz cannot
-- compress much
CREATE FUNCTION rc_big(k int, len int) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT left(string_agg(md5((k * 1000 + i)::text), ''), len) FROM generate_series(0, len / 32) i $$;

-- 1. engine 2 over a table without a key: a multiset with duplicates
SET pg_kappa.engine = 2;
CREATE TABLE rc_bag (k int, v text);
ALTER TABLE rc_bag REPLICA IDENTITY FULL;
INSERT INTO rc_bag SELECT i % 5, 'x' || (i % 3) FROM generate_series(1, 60) i;
INSERT INTO rc_bag VALUES (NULL, 'n'), (NULL, 'n'), (7, NULL);
SELECT kappa.capture('rc_bag') IS NOT NULL AS captured;
SELECT kappa.create_view('rc_bag_v', 'SELECT k, v FROM rc_bag WHERE k IS DISTINCT FROM 4');
SELECT kappa.create_view('rc_bag_sum', 'SELECT v, count(*) AS n, sum(k) AS s FROM rc_bag GROUP BY v');
SELECT engine FROM kappa.views WHERE name = 'public.rc_bag_v';
-- one of several equal rows goes, some change, more come
DELETE FROM rc_bag WHERE ctid = (SELECT min(ctid) FROM rc_bag WHERE k = 1 AND v = 'x1');
UPDATE rc_bag SET v = 'y' WHERE ctid IN (SELECT ctid FROM rc_bag WHERE k = 2 ORDER BY ctid LIMIT 3);
INSERT INTO rc_bag VALUES (3, 'x0'), (3, 'x0'), (NULL, 'n');
DELETE FROM rc_bag WHERE ctid = (SELECT min(ctid) FROM rc_bag WHERE k IS NULL);
SELECT kappa.wait('rc_bag_v') AND kappa.wait('rc_bag_sum') AS caught_up;
CREATE TABLE rc_bag_then AS TABLE rc_bag_v;
CREATE TABLE rc_bag_sum_then AS TABLE rc_bag_sum;
SELECT pg_current_wal_insert_lsn() AS bag_then \gset
UPDATE rc_bag SET k = k + 10 WHERE v = 'x2';
DELETE FROM rc_bag WHERE v = 'y';
INSERT INTO rc_bag SELECT 1, 'x1' FROM generate_series(1, 4);
SELECT kappa.wait('rc_bag_v') AND kappa.wait('rc_bag_sum') AS caught_up;
CREATE TABLE rc_bag_now AS TABLE rc_bag_v;
CREATE TABLE rc_bag_sum_now AS TABLE rc_bag_sum;
SELECT count(*) AS rows, count(DISTINCT (k, v)) AS distinct_rows FROM rc_bag_now;
-- in place: the same rows, still maintained
SELECT kappa.replay('rc_bag_v');
SELECT kappa.replay('rc_bag_sum');
SELECT rc_diff('rc_bag_v', 'rc_bag_now') AS differences, rc_diff('rc_bag_sum', 'rc_bag_sum_now') AS sum_differences;
SELECT * FROM kappa.verify('rc_bag_v');
SELECT * FROM kappa.verify('rc_bag_sum');
-- the state table of the aggregate view was rebuilt: the worker merges into it
SELECT format('kappa_v%s.g', id) AS bag_state FROM kappa.views WHERE name = 'public.rc_bag_sum' \gset
SELECT count(*) AS groups FROM :bag_state;
INSERT INTO rc_bag VALUES (2, 'x1'), (NULL, 'z');
DELETE FROM rc_bag WHERE ctid = (SELECT max(ctid) FROM rc_bag WHERE k = 11);
SELECT kappa.wait('rc_bag_v') AND kappa.wait('rc_bag_sum') AS caught_up;
SELECT * FROM kappa.verify('rc_bag_v');
SELECT * FROM kappa.verify('rc_bag_sum');
-- as of an LSN: the views as they were at bag_then
SELECT kappa.replay('rc_bag_v', until_lsn => :'bag_then', new_name => 'rc_bag_at');
SELECT kappa.replay('rc_bag_sum', until_lsn => :'bag_then', new_name => 'rc_bag_sum_at');
SELECT rc_diff('rc_bag_at', 'rc_bag_then') AS differences, rc_diff('rc_bag_sum_at', 'rc_bag_sum_then') AS sum_differences;
-- the same log twice: the same table, row for row
SELECT kappa.replay('rc_bag_v', until_lsn => :'bag_then', new_name => 'rc_bag_at2');
SELECT rc_heap('rc_bag_at') = rc_heap('rc_bag_at2') AS same_heap;
-- into a new view: engine 2, as pg_kappa.engine says, maintained from then on
SELECT kappa.replay('rc_bag_sum', new_name => 'rc_bag_sum_green');
SELECT kappa.replay('rc_bag_v', new_name => 'rc_bag_green');
SELECT name, engine FROM kappa.views WHERE name LIKE 'public.rc_bag%green' ORDER BY name;
SELECT rc_diff('rc_bag_sum_green', 'rc_bag_sum') AS differences, rc_diff('rc_bag_green', 'rc_bag_v') AS bag_differences;
UPDATE rc_bag SET v = 'w' WHERE k = 0;
INSERT INTO rc_bag VALUES (0, 'w');
SELECT kappa.wait('rc_bag_sum_green') AND kappa.wait('rc_bag_green') AS caught_up;
SELECT * FROM kappa.verify('rc_bag_sum_green');
SELECT * FROM kappa.verify('rc_bag_green');
SELECT rc_diff('rc_bag_sum_green', 'rc_bag_sum') AS differences;
-- and with engine 1 set, replay into a new view makes an engine 1 view
-- (which needs a key: this table has none)
SET pg_kappa.engine = 1;
SELECT kappa.replay('rc_bag_sum', new_name => 'rc_bag_sum_e1');
SET pg_kappa.engine = 2;

-- 2. a primary key and the default replica identity: old images hold only
-- the key, updates that keep the key have none; then engine 2 sets
-- REPLICA IDENTITY FULL, and the log holds both kinds
CREATE TABLE rc_key (id int PRIMARY KEY, g int, v numeric);
INSERT INTO rc_key SELECT i, i % 3, i / 4.0 FROM generate_series(1, 30) i;
SELECT kappa.capture('rc_key') IS NOT NULL AS captured;
SET pg_kappa.engine = 1;
SELECT kappa.create_view('rc_key_e1', 'SELECT id, g, v FROM rc_key WHERE v > 1');
SELECT kappa.create_view('rc_key_e1_sum', 'SELECT g, count(*) AS n, sum(v) AS s, max(v) AS hi FROM rc_key GROUP BY g');
UPDATE rc_key SET v = v * 3 WHERE id % 4 = 0;
UPDATE rc_key SET id = id + 100 WHERE id <= 3;
DELETE FROM rc_key WHERE id BETWEEN 10 AND 12;
INSERT INTO rc_key VALUES (10, 0, 99.5);
UPDATE rc_key SET id = 11 WHERE id = 101;
SELECT relreplident FROM pg_class WHERE oid = 'rc_key'::regclass;
SELECT kappa.wait('rc_key_e1') AND kappa.wait('rc_key_e1_sum') AS caught_up;
SET pg_kappa.engine = 2;
SELECT kappa.create_view('rc_key_e2', 'SELECT g, count(*) AS n, sum(v) AS s FROM rc_key GROUP BY g');
SELECT relreplident FROM pg_class WHERE oid = 'rc_key'::regclass;
UPDATE rc_key SET g = g + 1 WHERE id % 5 = 0;
UPDATE rc_key SET id = id + 1000 WHERE id = 102;
DELETE FROM rc_key WHERE id = 20;
SELECT kappa.wait('rc_key_e1') AND kappa.wait('rc_key_e1_sum') AND kappa.wait('rc_key_e2') AS caught_up;
CREATE TABLE rc_key_now AS TABLE rc_key;
CREATE TABLE rc_key_e1_now AS TABLE rc_key_e1;
CREATE TABLE rc_key_e1_sum_now AS TABLE rc_key_e1_sum;
CREATE TABLE rc_key_e2_now AS TABLE rc_key_e2;
-- and filled from the log at creation, engine 2
SELECT kappa.create_view('rc_key_e2_new', 'SELECT g, count(*) AS n, sum(v) AS s FROM rc_key GROUP BY g', replay_from => '0/0');
SELECT rc_diff('rc_key_e2_new', 'rc_key_e2_now') AS differences;
SELECT kappa.replay('rc_key_e1');
SELECT kappa.replay('rc_key_e1_sum');
SELECT kappa.replay('rc_key_e2');
SELECT rc_diff('rc_key_e1', 'rc_key_e1_now') AS e1, rc_diff('rc_key_e1_sum', 'rc_key_e1_sum_now') AS e1_sum,
       rc_diff('rc_key_e2', 'rc_key_e2_now') AS e2;
-- engine 1's copy of the source is the source again
SELECT a.relid::regclass AS copy FROM kappa.views v, unnest(v.arrangements) a(relid)
WHERE v.name = 'public.rc_key_e1' \gset
SELECT rc_diff(:'copy', 'rc_key_now') AS copy_differences;
SELECT * FROM kappa.verify('rc_key_e1');
SELECT * FROM kappa.verify('rc_key_e1_sum');
SELECT * FROM kappa.verify('rc_key_e2');
UPDATE rc_key SET v = v + 1 WHERE id % 2 = 1;
DELETE FROM rc_key WHERE id = 11;
SELECT kappa.wait('rc_key_e1') AND kappa.wait('rc_key_e1_sum') AND kappa.wait('rc_key_e2') AS caught_up;
SELECT * FROM kappa.verify('rc_key_e1');
SELECT * FROM kappa.verify('rc_key_e1_sum');
SELECT * FROM kappa.verify('rc_key_e2');

-- 3. TRUNCATE in the log: the state is empty at that point
CREATE TABLE rc_tr (id int PRIMARY KEY, v int);
INSERT INTO rc_tr SELECT i, i FROM generate_series(1, 20) i;
SELECT kappa.capture('rc_tr') IS NOT NULL AS captured;
SELECT kappa.create_view('rc_tr_e2', 'SELECT count(*) AS n, sum(v) AS s FROM rc_tr');
-- a join of two sources, one of them truncated
SELECT kappa.create_view('rc_tr_join', 'SELECT t.id, t.v, k.g, k.v AS kv FROM rc_tr t JOIN rc_key k ON k.id = t.id + 10');
SET pg_kappa.engine = 1;
SELECT kappa.create_view('rc_tr_e1', 'SELECT id, v FROM rc_tr WHERE v % 2 = 0');
UPDATE rc_tr SET v = v * 10 WHERE id <= 5;
SELECT kappa.wait('rc_tr_e1') AND kappa.wait('rc_tr_e2') AS caught_up;
CREATE TABLE rc_tr_before AS TABLE rc_tr_e1;
SELECT pg_current_wal_insert_lsn() AS before_truncate \gset
BEGIN;
INSERT INTO rc_tr VALUES (100, 100);
TRUNCATE rc_tr;
INSERT INTO rc_tr VALUES (1, 2), (2, 4), (3, 5);
COMMIT;
UPDATE rc_tr SET v = 6 WHERE id = 3;
UPDATE rc_key SET v = -v WHERE id BETWEEN 11 AND 13;
SELECT kappa.wait('rc_tr_e1') AND kappa.wait('rc_tr_e2') AND kappa.wait('rc_tr_join') AS caught_up;
CREATE TABLE rc_tr_e1_now AS TABLE rc_tr_e1;
CREATE TABLE rc_tr_e2_now AS TABLE rc_tr_e2;
CREATE TABLE rc_tr_join_now AS TABLE rc_tr_join;
SELECT kappa.replay('rc_tr_e1');
SELECT kappa.replay('rc_tr_e2');
SELECT kappa.replay('rc_tr_join');
SELECT * FROM rc_tr_e1 ORDER BY id;
SELECT * FROM rc_tr_e2;
SELECT * FROM rc_tr_join ORDER BY id;
SELECT rc_diff('rc_tr_e1', 'rc_tr_e1_now') AS e1, rc_diff('rc_tr_e2', 'rc_tr_e2_now') AS e2,
       rc_diff('rc_tr_join', 'rc_tr_join_now') AS e2_join;
SELECT * FROM kappa.verify('rc_tr_e1');
SELECT * FROM kappa.verify('rc_tr_e2');
SELECT * FROM kappa.verify('rc_tr_join');
-- still maintained: the join's delta tables were emptied again
INSERT INTO rc_tr VALUES (4, 8), (5, 10);
SELECT kappa.wait('rc_tr_join');
SELECT * FROM kappa.verify('rc_tr_join');
SELECT kappa.replay('rc_tr_e1', until_lsn => :'before_truncate', new_name => 'rc_tr_at');
SELECT rc_diff('rc_tr_at', 'rc_tr_before') AS differences, count(*) AS rows FROM rc_tr_at;

-- 4. TOASTed values: an update that leaves one out of line has no value
-- for it in the log; it is the old image's (REPLICA IDENTITY FULL) or the
-- key's previous one (default identity)
CREATE TABLE rc_toast_k (id int PRIMARY KEY, n int, body text);
CREATE TABLE rc_toast_f (id int PRIMARY KEY, n int, body text);
CREATE TABLE rc_toast_b (n int, body text);
ALTER TABLE rc_toast_f REPLICA IDENTITY FULL;
ALTER TABLE rc_toast_b REPLICA IDENTITY FULL;
ALTER TABLE rc_toast_k ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE rc_toast_f ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE rc_toast_b ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO rc_toast_k SELECT i, 0, rc_big(i, 3000 + i) FROM generate_series(1, 6) i;
INSERT INTO rc_toast_f SELECT i, 0, rc_big(i, 3000 + i) FROM generate_series(1, 6) i;
INSERT INTO rc_toast_b SELECT 0, rc_big(i % 3, 4000) FROM generate_series(1, 6) i;
SELECT kappa.capture('rc_toast_k') IS NOT NULL AND kappa.capture('rc_toast_f') IS NOT NULL
   AND kappa.capture('rc_toast_b') IS NOT NULL AS captured;
SELECT kappa.create_view('rc_toast_k_v', 'SELECT id, n, md5(body) AS h, length(body) AS len FROM rc_toast_k');
SET pg_kappa.engine = 2;
SELECT kappa.create_view('rc_toast_f_v', 'SELECT id, n, body FROM rc_toast_f');
SELECT kappa.create_view('rc_toast_b_v', 'SELECT n, md5(body) AS h, count(*) AS c FROM rc_toast_b GROUP BY n, md5(body)');
UPDATE rc_toast_k SET n = n + 1 WHERE id <= 4;
UPDATE rc_toast_k SET n = n + 1 WHERE id <= 2;
UPDATE rc_toast_k SET body = rc_big(99, 5000) WHERE id = 3;
UPDATE rc_toast_k SET n = 7 WHERE id = 3;
UPDATE rc_toast_f SET n = n + 1 WHERE id <= 4;
UPDATE rc_toast_f SET id = id + 10 WHERE id = 2;
UPDATE rc_toast_b SET n = n + 1 WHERE ctid IN (SELECT ctid FROM rc_toast_b ORDER BY ctid LIMIT 4);
SELECT kappa.wait('rc_toast_k_v') AND kappa.wait('rc_toast_f_v') AND kappa.wait('rc_toast_b_v') AS caught_up;
-- the log has updates without the TOASTed value, of each table
SELECT e->>'table' AS logged_without_value, count(*) FROM kappa.events(tables => '{rc_toast_k,rc_toast_f,rc_toast_b}') e
WHERE e ? 'unchanged_toast' GROUP BY 1 ORDER BY 1;
CREATE TABLE rc_toast_k_now AS TABLE rc_toast_k_v;
CREATE TABLE rc_toast_f_now AS TABLE rc_toast_f_v;
CREATE TABLE rc_toast_b_now AS TABLE rc_toast_b_v;
SELECT kappa.replay('rc_toast_k_v');
SELECT kappa.replay('rc_toast_f_v');
SELECT kappa.replay('rc_toast_b_v');
SELECT rc_diff('rc_toast_k_v', 'rc_toast_k_now') AS k, rc_diff('rc_toast_f_v', 'rc_toast_f_now') AS f,
       rc_diff('rc_toast_b_v', 'rc_toast_b_now') AS b;
SELECT * FROM kappa.verify('rc_toast_k_v');
SELECT * FROM kappa.verify('rc_toast_f_v');
SELECT * FROM kappa.verify('rc_toast_b_v');
-- engine 1's copy has the values back, for the worker's next update
UPDATE rc_toast_k SET n = n + 1;
SELECT kappa.wait('rc_toast_k_v');
SELECT * FROM kappa.verify('rc_toast_k_v');
-- a key change that leaves the value out, with only the key in the old
-- image: the log does not say what the value was
SET pg_kappa.engine = 1;
CREATE TABLE rc_toast_lost (id int PRIMARY KEY, n int, body text);
ALTER TABLE rc_toast_lost ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO rc_toast_lost VALUES (1, 0, rc_big(1, 3000));
SELECT kappa.capture('rc_toast_lost') IS NOT NULL AS captured;
SELECT kappa.create_view('rc_toast_lost_v', 'SELECT id, n, body FROM rc_toast_lost');
UPDATE rc_toast_lost SET id = 2;
SELECT kappa.wait('rc_toast_lost_v');
SELECT kappa.replay('rc_toast_lost_v');
SELECT id, n, md5(body) = md5(rc_big(1, 3000)) AS same FROM rc_toast_lost_v;
-- a view of engine 2 that does not read that column is replayed all the
-- same (its query never sees the value the log lacks); one that does is not
SET pg_kappa.engine = 2;
SELECT kappa.create_view('rc_toast_lost_n', 'SELECT id, n FROM rc_toast_lost', replay_from => '0/0');
SELECT id, n FROM rc_toast_lost_n;
SELECT count(*) AS differences FROM kappa.verify('rc_toast_lost_n');
SELECT kappa.create_view('rc_toast_lost_b', 'SELECT id, md5(body) AS h FROM rc_toast_lost', replay_from => '0/0');
SELECT kappa.drop_view('rc_toast_lost_n');
SET pg_kappa.engine = 1;

-- 5. values of many types come back as they were (but a JSON null in a
-- json or jsonb column is logged as SQL NULL is, and comes back as NULL)
CREATE TABLE rc_types (id int PRIMARY KEY, t text, vc varchar(10), bp char(4), nu numeric, nn numeric(8,3),
                       f8 float8, f4 float4, b bool, d date, ts timestamp, tz timestamptz, iv interval,
                       j json, jb jsonb, ba bytea, arr int[], tarr text[], u uuid, i2 int2, i8 int8, gone int);
-- a dropped column: the internal tables keep its place
ALTER TABLE rc_types DROP COLUMN gone;
INSERT INTO rc_types VALUES
  (1, E'line\nbreak "quoted" \\ back\ttab', 'short', 'ab', 1.50, 2.5, 0.1, 1.5, true, '2024-02-29',
   '2024-01-01 10:00:00.123456', '2024-06-01 12:00:00+02', '1 day 2 hours', '{"b": 1,  "a": [1, 2]}',
   '{"b": 1, "a": "ü"}', '\x00ff10', '{1,NULL,3}', '{"a b",c,"\""}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', -2, 9007199254740993),
  (2, 'ünïcødé ☃ 𝄞', NULL, NULL, 'NaN', NULL, 'Infinity', '-Infinity', false, 'infinity', '-infinity', NULL,
   NULL, '"a string"', '[null]', NULL, '{}', NULL, NULL, NULL, NULL),
  (3, '', '', '', -0.000, 0, -0.0, 'NaN', NULL, '1999-12-31', '2000-01-01', '1970-01-01 00:00:00+00', '-1 mons',
   '[]', '{}', '\x', NULL, '{}', NULL, 32767, -9223372036854775808);
SELECT kappa.capture('rc_types') IS NOT NULL AS captured;
SELECT kappa.create_view('rc_types_v', 'SELECT * FROM rc_types');
UPDATE rc_types SET t = t || '!', jb = jb || '{"c": 2}' WHERE id = 1;
INSERT INTO rc_types SELECT 4, t, vc, bp, nu, nn, f8, f4, b, d, ts, tz, iv, j, jb, ba, arr, tarr, u, i2, i8 FROM rc_types WHERE id = 1;
SELECT kappa.wait('rc_types_v');
SELECT kappa.replay('rc_types_v');
SELECT count(*) AS differences FROM (
  (SELECT id, t, vc, bp, nu::text, nn::text, f8::text, f4::text, b, d, ts, tz, iv::text, j::text, jb, ba, arr, tarr, u, i2, i8 FROM rc_types
   EXCEPT ALL
   SELECT id, t, vc, bp, nu::text, nn::text, f8::text, f4::text, b, d, ts, tz, iv::text, j::text, jb, ba, arr, tarr, u, i2, i8 FROM rc_types_v)
  UNION ALL
  (SELECT id, t, vc, bp, nu::text, nn::text, f8::text, f4::text, b, d, ts, tz, iv::text, j::text, jb, ba, arr, tarr, u, i2, i8 FROM rc_types_v
   EXCEPT ALL
   SELECT id, t, vc, bp, nu::text, nn::text, f8::text, f4::text, b, d, ts, tz, iv::text, j::text, jb, ba, arr, tarr, u, i2, i8 FROM rc_types)) d;
-- json keeps its text: the log has it as it was written
SELECT j::text FROM rc_types_v ORDER BY id;

-- 6. what cannot be replayed
SELECT kappa.replay('rc_bag_v', from_lsn => '0/1');

-- 7. in place, engine 1's copy of the source is merged into, not reloaded:
-- rows it lacks, has too many of, or has with other values are put right,
-- and its indexes stay usable
SET pg_kappa.engine = 1;
CREATE TABLE rc_merge (id int PRIMARY KEY, g int NOT NULL, v bigint NOT NULL);
INSERT INTO rc_merge SELECT i, i % 10, i FROM generate_series(1, 2000) i;
SELECT kappa.capture('rc_merge') IS NOT NULL AS captured;
SELECT kappa.create_view('rc_merge_v', 'SELECT g, count(*) AS n, sum(v) AS s FROM rc_merge GROUP BY g');
UPDATE rc_merge SET v = v + 1 WHERE id % 3 = 0;
DELETE FROM rc_merge WHERE id % 7 = 0;
UPDATE rc_merge SET g = g + 1 WHERE id BETWEEN 100 AND 150;
SELECT kappa.wait('rc_merge_v');
SELECT arrangements[1]::regclass AS rc_copy FROM kappa.views WHERE relid = 'rc_merge_v'::regclass \gset
-- as it is: nothing to change
SELECT kappa.replay('rc_merge_v');
SELECT count(*) AS differences FROM kappa.verify('rc_merge_v');
-- behind the worker's back: the copy loses rows, gains some, and others change
SET session_replication_role = replica;
DELETE FROM :rc_copy WHERE id % 11 = 0;
UPDATE :rc_copy SET v = v * 2 WHERE id % 13 = 0;
UPDATE :rc_copy SET g = g + 5 WHERE id BETWEEN 500 AND 520;
INSERT INTO :rc_copy VALUES (-1, 1, 1), (5000, 2, 2);
RESET session_replication_role;
SELECT kappa.replay('rc_merge_v');
SELECT count(*) AS copy_differences FROM (
  (SELECT * FROM :rc_copy EXCEPT ALL SELECT * FROM rc_merge)
  UNION ALL (SELECT * FROM rc_merge EXCEPT ALL SELECT * FROM :rc_copy)) d;
SELECT count(*) AS differences FROM kappa.verify('rc_merge_v');
-- through its indexes too
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) = (SELECT count(*) FROM rc_merge WHERE g = 3) AS by_g_index FROM :rc_copy WHERE g = 3;
SELECT count(*) = (SELECT count(*) FROM rc_merge WHERE id BETWEEN 400 AND 600) AS by_id_index
  FROM :rc_copy WHERE id BETWEEN 400 AND 600;
RESET enable_seqscan;
RESET enable_bitmapscan;
-- a copy that differs everywhere: loaded in bulk past a share of its rows,
-- its indexes rebuilt
SET session_replication_role = replica;
UPDATE :rc_copy SET v = -v;
RESET session_replication_role;
SELECT kappa.replay('rc_merge_v');
SELECT count(*) AS copy_differences FROM (
  (SELECT * FROM :rc_copy EXCEPT ALL SELECT * FROM rc_merge)
  UNION ALL (SELECT * FROM rc_merge EXCEPT ALL SELECT * FROM :rc_copy)) d;
SELECT count(*) AS differences FROM kappa.verify('rc_merge_v');
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) = (SELECT count(*) FROM rc_merge WHERE g = 3) AS by_g_index FROM :rc_copy WHERE g = 3;
RESET enable_seqscan;
RESET enable_bitmapscan;

RESET client_min_messages;
RESET pg_kappa.engine;
-- a column added with a default after the capture: the rows logged before
-- it hold the default, as the table's rows do
CREATE TABLE rc_added (id int PRIMARY KEY, v int);
INSERT INTO rc_added VALUES (1, 1), (2, 2);
SELECT kappa.capture('rc_added') IS NOT NULL AS captured;
UPDATE rc_added SET v = 10 WHERE id = 1;
ALTER TABLE rc_added ADD COLUMN c int NOT NULL DEFAULT 5;
INSERT INTO rc_added VALUES (3, 3, 7);
SET client_min_messages = warning;
SELECT kappa.create_view('rc_added_v', 'SELECT id, v, c FROM rc_added', replay_from => '0/0') IS NOT NULL AS created;
RESET client_min_messages;
SELECT * FROM rc_added_v ORDER BY id;
SELECT count(*) AS differences FROM kappa.verify('rc_added_v');
-- a view column named d (verify's own alias once shadowed the row)
SELECT kappa.create_view('rc_d', 'SELECT id, v AS d FROM rc_added') IS NOT NULL AS created;
SELECT kappa.wait('rc_d');
SELECT count(*) AS differences FROM kappa.verify('rc_d');
SET session_replication_role = replica;   -- past the guard, to make a difference
UPDATE rc_d SET d = 99 WHERE id = 2;
RESET session_replication_role;
SELECT * FROM kappa.verify('rc_d') ORDER BY 1;
-- until_lsn 0/0 is not "now"
SELECT kappa.replay('rc_added_v', until_lsn => '0/0', new_name => 'rc_added_then');
SELECT kappa.drop_view('rc_d') IS NOT NULL, kappa.drop_view('rc_added_v') IS NOT NULL,
       kappa.uncapture('rc_added') IS NOT NULL;
DROP TABLE rc_added;

-- 8. the log read in two parts: the rows of its first half of the records
-- (the snapshot, here) by the worker, the rest by the replaying backend.  A record the worker cannot read fails the replay with its error
-- and the worker's context; one of the backend's part, without.  A source
-- with a column of a domain, whose check may run code that a parallel
-- worker cannot, is read by the replaying backend alone.
CREATE FUNCTION rc_positive(int) RETURNS bool LANGUAGE sql AS 'SELECT $1 > 0';
CREATE DOMAIN rc_posint AS int CHECK (rc_positive(VALUE));
CREATE TABLE rc_par (id int PRIMARY KEY, v int);
INSERT INTO rc_par SELECT i, i FROM generate_series(1, 10) i;
CREATE TABLE rc_pardom (id int PRIMARY KEY, w rc_posint);
INSERT INTO rc_pardom SELECT i, i FROM generate_series(1, 10) i;
SELECT kappa.capture('rc_par') IS NOT NULL AS captured, kappa.capture('rc_pardom') IS NOT NULL AS captured;
SET client_min_messages = warning;
SELECT kappa.create_view('rc_par_v', 'SELECT v % 3 AS p, count(*) AS n, sum(v) AS s FROM rc_par GROUP BY 1') IS NOT NULL AS created;
SELECT kappa.create_view('rc_pardom_v', 'SELECT w % 3 AS p, sum(w) AS w FROM rc_pardom GROUP BY 1') IS NOT NULL AS created;
RESET client_min_messages;
-- three batches, so three more log rows of each table
UPDATE rc_par SET v = v + 100;
UPDATE rc_pardom SET w = w + 100;
SELECT kappa.wait('rc_par_v') AND kappa.wait('rc_pardom_v') AS caught_up;
UPDATE rc_par SET v = v + 100 WHERE id > 1;
UPDATE rc_pardom SET w = w + 100 WHERE id > 1;
SELECT kappa.wait('rc_par_v') AND kappa.wait('rc_pardom_v') AS caught_up;
UPDATE rc_par SET v = v + 100 WHERE id > 2;
UPDATE rc_pardom SET w = w + 100 WHERE id > 2;
SELECT kappa.wait('rc_par_v') AND kappa.wait('rc_pardom_v') AS caught_up;
SELECT count(*) AS log_rows FROM kappa.event_log WHERE 'public.rc_par' = ANY (table_names);
SET client_min_messages = warning;
SELECT kappa.replay('rc_par_v'), kappa.replay('rc_pardom_v');
SELECT kappa.replay('rc_par_v', new_name => 'rc_par_copy');
RESET client_min_messages;
SELECT count(*) AS differences FROM kappa.verify('rc_par_v');
SELECT count(*) AS differences FROM kappa.verify('rc_pardom_v');
SELECT rc_diff('rc_par_v', 'rc_par_copy') AS differences;
SELECT kappa.drop_view('rc_par_copy') IS NOT NULL AS dropped;
\set VERBOSITY default
BEGIN;
SET LOCAL session_replication_role = replica;   -- past the log's guard
UPDATE kappa.event_log SET events = replace(replace(events, '"v":7', '"v":"sieben"'), '"w":7', '"w":-7')
 WHERE table_names && '{public.rc_par,public.rc_pardom}' AND kind = 'snapshot';
RESET session_replication_role;
SAVEPOINT s;
SELECT kappa.replay('rc_par_v');
ROLLBACK TO s;
SELECT kappa.replay('rc_pardom_v');
ROLLBACK;
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE kappa.event_log SET events = replace(events, '"v":310', '"v":"dreihundertzehn"')
 WHERE 'public.rc_par' = ANY (table_names);
RESET session_replication_role;
SELECT kappa.replay('rc_par_v');
ROLLBACK;
\set VERBOSITY terse
SELECT kappa.drop_view('rc_par_v') IS NOT NULL AS dropped, kappa.drop_view('rc_pardom_v') IS NOT NULL AS dropped;
SELECT kappa.uncapture('rc_par') IS NOT NULL AS uncaptured, kappa.uncapture('rc_pardom') IS NOT NULL AS uncaptured;
DROP TABLE rc_par, rc_pardom;
DROP DOMAIN rc_posint;
DROP FUNCTION rc_positive(int);

-- 9. a transaction over two log rows (a batch over 8 MB), the first of
-- which holds none of the view's tables: the second row's records are the
-- transaction's, committed at its commit LSN (the row's first LSN), and
-- from_lsn at that LSN takes them, read by one process or in two parts
CREATE TABLE rc_filler (id int PRIMARY KEY, pad text);
CREATE TABLE rc_late (id int PRIMARY KEY, v int);
INSERT INTO rc_late SELECT i, 0 FROM generate_series(1, 100) i;
SELECT kappa.capture('rc_filler') IS NOT NULL AS captured, kappa.capture('rc_late') IS NOT NULL AS captured;
SET client_min_messages = warning;
SELECT kappa.create_view('rc_late_v', 'SELECT id, v FROM rc_late') IS NOT NULL AS created;
RESET client_min_messages;
BEGIN;
INSERT INTO rc_filler SELECT i, repeat(md5(i::text), 30) FROM generate_series(1, 9000) i;
UPDATE rc_late SET v = 3 WHERE id <= 10;
COMMIT;
SELECT kappa.wait('rc_late_v');
SELECT max(first_lsn) AS late_commit FROM kappa.event_log \gset
SELECT count(*) AS log_rows, count(*) FILTER (WHERE 'public.rc_late' = ANY (table_names)) AS with_rc_late
  FROM kappa.event_log WHERE first_lsn = :'late_commit';
SET client_min_messages = error;   -- not the warning naming the LSN
SET pg_kappa.min_parallel_replay_records = -1;
SELECT kappa.replay('rc_late_v', from_lsn => :'late_commit', new_name => 'rc_late_one');
SET pg_kappa.min_parallel_replay_records = 0;
SELECT kappa.replay('rc_late_v', from_lsn => :'late_commit', new_name => 'rc_late_two');
RESET client_min_messages;
SELECT (SELECT count(*) FROM rc_late_one WHERE v = 3) AS one_process,
       (SELECT count(*) FROM rc_late_two WHERE v = 3) AS two_parts;
SELECT kappa.drop_view(v) IS NOT NULL AS dropped FROM unnest('{rc_late_one,rc_late_two,rc_late_v}'::regclass[]) v;
SELECT kappa.uncapture('rc_filler') IS NOT NULL AS uncaptured, kappa.uncapture('rc_late') IS NOT NULL AS uncaptured;
DROP TABLE rc_filler, rc_late;

SELECT count(kappa.drop_view(relid)) AS dropped FROM kappa.views WHERE name LIKE 'public.rc\_%';
SELECT kappa.uncapture(t) FROM unnest('{rc_bag,rc_key,rc_tr,rc_toast_k,rc_toast_f,rc_toast_b,rc_toast_lost,rc_types,rc_merge}'::regclass[]) t;
DROP TABLE rc_bag, rc_bag_then, rc_bag_sum_then, rc_bag_now, rc_bag_sum_now, rc_bag_at, rc_bag_sum_at, rc_bag_at2,
  rc_key, rc_key_now, rc_key_e1_now, rc_key_e1_sum_now, rc_key_e2_now, rc_tr, rc_tr_before, rc_tr_e1_now, rc_tr_e2_now, rc_tr_join_now,
  rc_tr_at, rc_toast_k, rc_toast_f, rc_toast_b, rc_toast_k_now, rc_toast_f_now, rc_toast_b_now, rc_toast_lost, rc_types, rc_merge;
DROP FUNCTION rc_diff(regclass, regclass), rc_heap(regclass), rc_big(int, int);
