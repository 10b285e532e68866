-- Replay by compaction (each source's rows at an LSN from the log, then the
-- view's query once): in place, into a new view (blue/green), as of an LSN
-- (time travel), create_view(..., replay_from), kappa.swap.
-- log_replay_compaction covers engine 2, tables without a key, TRUNCATE
-- and TOAST.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE TABLE rp (id int PRIMARY KEY, g int, v int);
CREATE TABLE rq (g int PRIMARY KEY, label text);
INSERT INTO rp SELECT i, i % 4, i FROM generate_series(1, 40) i;
INSERT INTO rq SELECT g, 'group ' || g FROM generate_series(0, 3) g;
SELECT kappa.create_view('rp_sum', 'SELECT g, count(*) AS n, sum(v) AS s, min(v) AS lo, max(v) AS hi FROM rp GROUP BY g');
SELECT kappa.create_view('rp_join', 'SELECT rp.id, rq.g, rp.v, rq.label FROM rp JOIN rq ON rp.g = rq.g WHERE rp.v % 2 = 0');
-- not captured yet (a replay into a new view names the view replayed)
SELECT kappa.replay('rp_sum');
SELECT kappa.replay('rp_sum', new_name => 'rp_sum_green');
SELECT kappa.capture('rp') IS NOT NULL AS captured;
SELECT kappa.wait('rp_sum');
SELECT kappa.replay('rp_join');
SELECT kappa.capture('rq') IS NOT NULL AS captured;
-- history
UPDATE rp SET v = v * 10 WHERE id <= 5;
DELETE FROM rp WHERE id BETWEEN 30 AND 35;
UPDATE rp SET g = 3 WHERE id = 40;
UPDATE rq SET label = 'second' WHERE g = 2;
SELECT kappa.wait('rp_sum') AND kappa.wait('rp_join') AS caught_up;
-- the view as it is now, and the LSN of "now"
CREATE TABLE rp_sum_then AS SELECT * FROM rp_sum;
CREATE TABLE rp_join_then AS SELECT * FROM rp_join;
SELECT pg_current_wal_insert_lsn() AS then_lsn \gset
INSERT INTO rp SELECT i, i % 4, i FROM generate_series(41, 60) i;
DELETE FROM rp WHERE id = 1;
UPDATE rq SET label = 'third' WHERE g = 3;
SELECT kappa.wait('rp_sum') AND kappa.wait('rp_join') AS caught_up;
CREATE TABLE rp_sum_now AS SELECT * FROM rp_sum;
-- rebuild in place: same contents, still maintained
SELECT kappa.replay('rp_sum');
SELECT kappa.replay('rp_join');
SELECT count(*) AS differences FROM ((TABLE rp_sum EXCEPT ALL TABLE rp_sum_now) UNION ALL (TABLE rp_sum_now EXCEPT ALL TABLE rp_sum)) d;
SELECT * FROM kappa.verify('rp_sum');
SELECT * FROM kappa.verify('rp_join');
INSERT INTO rp VALUES (100, 0, 1000);
SELECT kappa.wait('rp_sum');
SELECT * FROM kappa.verify('rp_sum');
-- time travel: the views as they were at then_lsn
SELECT kappa.replay('rp_sum', until_lsn => :'then_lsn', new_name => 'rp_sum_at');
SELECT kappa.replay('rp_join', NULL, :'then_lsn', 'rp_join_at');
SELECT count(*) AS differences FROM ((TABLE rp_sum_at EXCEPT ALL TABLE rp_sum_then) UNION ALL (TABLE rp_sum_then EXCEPT ALL TABLE rp_sum_at)) d;
SELECT count(*) AS differences FROM ((TABLE rp_join_at EXCEPT ALL TABLE rp_join_then) UNION ALL (TABLE rp_join_then EXCEPT ALL TABLE rp_join_at)) d;
-- a plain table now: not a view, writable
SELECT count(*) FROM kappa.views WHERE name LIKE '%_at';
INSERT INTO rp_sum_at VALUES (99, 0, 0, 0, 0);
-- the same range twice gives the same table, byte for byte
SELECT kappa.replay('rp_sum', until_lsn => :'then_lsn', new_name => 'rp_sum_at2');
SELECT kappa.replay('rp_sum', until_lsn => :'then_lsn', new_name => 'rp_sum_at3');
SELECT (SELECT string_agg(t::text, ';' ORDER BY t::text) FROM rp_sum_at2 t) =
       (SELECT string_agg(t::text, ';' ORDER BY t::text) FROM rp_sum_at3 t) AS identical,
       (SELECT string_agg(t.ctid::text || t::text, ';' ORDER BY t.ctid) FROM rp_sum_at2 t) =
       (SELECT string_agg(t.ctid::text || t::text, ';' ORDER BY t.ctid) FROM rp_sum_at3 t) AS same_heap;
-- blue/green: a new definition replayed from the log, then swapped in
SELECT kappa.create_view('rp_sum_v2', 'SELECT g, count(*) AS n, sum(v) AS s, min(v) AS lo, max(v) AS hi, avg(v) AS mean FROM rp GROUP BY g', replay_from => '0/0');
SELECT kappa.replay('rp_sum', new_name => 'rp_sum_green');
-- from after the sources' snapshot: the view starts from empty sources,
-- which it says (a WARNING, shown here by its SQLSTATE)
\set VERBOSITY sqlstate
SELECT kappa.create_view('rp_sum_late', 'SELECT g, count(*) AS n FROM rp GROUP BY g', replay_from => pg_current_wal_insert_lsn()) IS NOT NULL AS created;
\set VERBOSITY terse
SELECT kappa.drop_view('rp_sum_late');
UPDATE rp SET v = v + 1 WHERE id % 7 = 0;
SELECT kappa.wait('rp_sum_v2') AND kappa.wait('rp_sum_green') AS caught_up;
SELECT * FROM kappa.verify('rp_sum_v2');
SELECT * FROM kappa.verify('rp_sum_green');
SELECT count(*) AS differences FROM ((TABLE rp_sum EXCEPT ALL TABLE rp_sum_green) UNION ALL (TABLE rp_sum_green EXCEPT ALL TABLE rp_sum)) d;
SELECT kappa.swap('rp_sum', 'rp_sum_v2');
SELECT name, kind FROM kappa.views WHERE name LIKE 'public.rp_sum%' ORDER BY name;
SELECT count(*) AS with_mean FROM rp_sum WHERE mean IS NOT NULL;
UPDATE rp SET v = v - 1 WHERE id % 7 = 0;
SELECT kappa.wait('rp_sum') AND kappa.wait('rp_sum_v2') AS caught_up;
SELECT * FROM kappa.verify('rp_sum');
SELECT * FROM kappa.verify('rp_sum_v2');
-- what cannot be replayed
SELECT kappa.replay(NULL);
SELECT kappa.replay('rq');
SELECT kappa.replay('rp_sum', until_lsn => :'then_lsn');
SELECT kappa.replay('rp_sum', from_lsn => '0/1');
SELECT kappa.replay('rp_sum', until_lsn => '0/1', new_name => 'rp_sum_x');
SELECT kappa.replay('rp_sum', until_lsn => 'FFFFFFFF/0', new_name => 'rp_sum_x');
SELECT kappa.replay('rp_sum', new_name => 'rp_sum_green');
SELECT kappa.swap('rp_sum', 'rp_sum');
SELECT kappa.swap('rp_sum', 'rq');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT kappa.replay('rp_sum');
ROLLBACK;
-- a replay from a later LSN replays only what came after, onto an empty view
-- (with a WARNING that names the LSN: its SQLSTATE only, here)
\set VERBOSITY sqlstate
SELECT kappa.replay('rp_join', from_lsn => :'then_lsn', new_name => 'rp_join_since');
\set VERBOSITY terse
SELECT count(*) <= (SELECT count(*) FROM rp WHERE id > 40 AND v % 2 = 0) AS only_newer FROM rp_join_since;
-- longer replays: a snapshot of 25000 rows, transactions of 12500 and
-- 5000 changes
CREATE TABLE rbig (id int PRIMARY KEY, g int, v int);
INSERT INTO rbig SELECT i, i % 7, i FROM generate_series(1, 25000) i;
SELECT kappa.capture('rbig') IS NOT NULL AS captured;
SELECT kappa.create_view('rbig_sum', 'SELECT g, count(*) AS n, sum(v) AS s FROM rbig GROUP BY g');
UPDATE rbig SET g = (g + 1) % 7, v = v + 1 WHERE id % 2 = 0;
DELETE FROM rbig WHERE id % 5 = 0;
SELECT kappa.wait('rbig_sum');
CREATE TABLE rbig_before AS SELECT * FROM rbig_sum;
-- the log's entries do not fit in maintenance_work_mem: sorted on disk
SET maintenance_work_mem = '1MB';
SELECT kappa.replay('rbig_sum');
RESET maintenance_work_mem;
SELECT count(*) AS differences FROM ((TABLE rbig_sum EXCEPT ALL TABLE rbig_before) UNION ALL (TABLE rbig_before EXCEPT ALL TABLE rbig_sum)) d;
SELECT * FROM kappa.verify('rbig_sum');
SELECT kappa.drop_view('rbig_sum');
SELECT kappa.uncapture('rbig');
DROP TABLE rbig, rbig_before;
RESET client_min_messages;
SELECT kappa.drop_view('rp_sum');
SELECT kappa.drop_view('rp_sum_v2');
SELECT kappa.drop_view('rp_join');
SELECT kappa.drop_view('rp_sum_green');
SELECT kappa.drop_view('rp_join_since');
SELECT kappa.uncapture('rp'), kappa.uncapture('rq');
DROP TABLE rp, rq, rp_sum_then, rp_join_then, rp_sum_now, rp_sum_at, rp_join_at, rp_sum_at2, rp_sum_at3;

-- the view as it was at an LSN is a plain table that nothing maintains:
-- building it leaves the sources' replica identity as it is
SET pg_kappa.engine = 1;
CREATE TABLE rp_tt (id int PRIMARY KEY, v int);
INSERT INTO rp_tt VALUES (1, 1);
SELECT kappa.capture('rp_tt') IS NOT NULL AS captured;
SELECT kappa.create_view('rp_tt_v', 'SELECT id, v FROM rp_tt') IS NOT NULL AS created;
RESET pg_kappa.engine;
INSERT INTO rp_tt VALUES (2, 2);
SELECT kappa.wait('rp_tt_v');
SELECT pg_current_wal_insert_lsn() AS tt_lsn \gset
INSERT INTO rp_tt VALUES (3, 3);
SET client_min_messages = warning;     -- the NOTICE names an LSN
SELECT kappa.replay('rp_tt_v', until_lsn => :'tt_lsn', new_name => 'rp_tt_then') IS NOT NULL AS replayed;
RESET client_min_messages;
SELECT relreplident FROM pg_class WHERE oid = 'rp_tt'::regclass;
SELECT * FROM rp_tt_then ORDER BY id;
DROP TABLE rp_tt_then;
SELECT kappa.drop_view('rp_tt_v');
SELECT kappa.uncapture('rp_tt');
DROP TABLE rp_tt;
