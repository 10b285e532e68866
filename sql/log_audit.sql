-- kappa.audit: the hash chain, LSN order, views against the log and their
-- queries; tampering is reported at the exact batch.  In a database of its
-- own, so that the tampering stays here.
\set VERBOSITY terse
CREATE DATABASE kappa_audit;
\c kappa_audit
SET client_min_messages = warning;
CREATE EXTENSION pg_kappa;
CREATE TABLE au (id int PRIMARY KEY, v int);
INSERT INTO au SELECT i, i FROM generate_series(1, 10) i;
SELECT kappa.capture('au') IS NOT NULL AS captured;
SELECT kappa.create_view('au_sum', 'SELECT v % 2 AS odd, count(*) AS n, sum(v) AS s FROM au GROUP BY 1');
INSERT INTO au VALUES (11, 11);
SELECT kappa.wait('au_sum');
UPDATE au SET v = v + 100 WHERE id = 3;
SELECT kappa.wait('au_sum');
DELETE FROM au WHERE id = 4;
SELECT kappa.wait('au_sum');
SELECT batch_id, kind, txn_count, change_count FROM kappa.event_log ORDER BY batch_id;
-- all is well
SELECT * FROM kappa.audit();
SELECT "check", object, ok FROM kappa.audit_log ORDER BY id;
CREATE TABLE saved AS SELECT * FROM kappa.event_log;
-- tampering, as a superuser with triggers off
SET session_replication_role = replica;
UPDATE kappa.event_log SET events = replace(events, '"v":103', '"v":3') WHERE batch_id = 3;
SELECT "check", object, ok, detail FROM kappa.audit();
UPDATE kappa.event_log l SET events = s.events FROM saved s WHERE l.batch_id = s.batch_id;
SELECT count(*) AS failures FROM kappa.audit();
DELETE FROM kappa.event_log WHERE batch_id = 3;
SELECT "check", object, ok, detail FROM kappa.audit();
INSERT INTO kappa.event_log SELECT * FROM saved WHERE batch_id = 3;
SELECT count(*) AS failures FROM kappa.audit();
UPDATE kappa.event_log SET batch_id = -batch_id WHERE batch_id IN (3, 4);
UPDATE kappa.event_log SET batch_id = CASE batch_id WHEN -3 THEN 4 ELSE 3 END WHERE batch_id < 0;
SELECT "check", object, ok FROM kappa.audit();
DELETE FROM kappa.event_log WHERE batch_id IN (3, 4);
INSERT INTO kappa.event_log SELECT * FROM saved WHERE batch_id IN (3, 4);
SELECT count(*) AS failures FROM kappa.audit();
-- the newest batch deleted: no later batch names it, but the log's head does
SELECT max(batch_id) AS last_batch FROM kappa.event_log \gset
DELETE FROM kappa.event_log WHERE batch_id = :last_batch;
SELECT "check", object, ok, detail FROM kappa.audit();
INSERT INTO kappa.event_log SELECT * FROM saved WHERE batch_id = :last_batch;
SELECT count(*) AS failures FROM kappa.audit();
-- a view corrupted behind pg_kappa's back
UPDATE au_sum SET s = s + 1 WHERE odd = 1;
RESET session_replication_role;
SELECT "check", object, ok, detail FROM kappa.audit();
-- audits on a schedule (run by a background worker)
SELECT kappa.alter_view('au_sum', audit_every => '-1 s');
SELECT kappa.alter_view('au_sum', audit_every => '178000000 years');
SELECT kappa.alter_view('au_sum', audit_every => '1000 years');
SELECT kappa.alter_view('au_sum', audit_every => '1 s');
SELECT audit_every FROM kappa.views;
DO $$
DECLARE
    started timestamptz := clock_timestamp();
BEGIN
    LOOP
        -- the log's part of an audit commits before its views' parts
        EXIT WHEN (SELECT count(DISTINCT at) FROM kappa.audit_log
                    WHERE at > started AND "check" = 'verify') >= 2;
        IF clock_timestamp() > started + interval '60 s' THEN
            RAISE EXCEPTION 'no two scheduled audits within 60 seconds';
        END IF;
        PERFORM pg_sleep(0.2);
    END LOOP;
END
$$;
-- the scheduled audit found the corrupted view too
SELECT "check", object, ok FROM kappa.audit_log
 WHERE at = (SELECT max(at) FROM kappa.audit_log WHERE "check" = 'verify') AND NOT ok ORDER BY id;
SELECT kappa.alter_view('au_sum', audit_every => '0');
SELECT audit_every FROM kappa.views;
-- a schedule or retention too long to add to now(), as a catalog from
-- before pg_kappa refused them may hold: the worker neither audits nor stops on it, and the
-- view stays fresh
UPDATE kappa.views SET audit_every = '178000000 years';
UPDATE kappa.captures SET retain = '178000000 years';
CREATE TEMP TABLE au_worker AS
  SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_kappa apply worker' AND datname = current_database();
DO $$
BEGIN
    FOR i IN 1 .. 3 LOOP
        INSERT INTO au SELECT max(id) + 1, 1 FROM au;
        COMMIT;
        IF NOT kappa.wait('au_sum', timeout => '10s') THEN
            RAISE EXCEPTION 'the view was not fresh within 10 seconds after commit %', i;
        END IF;
        PERFORM pg_sleep(1.2);
    END LOOP;
END
$$;
SELECT state, last_audit_at IS NOT DISTINCT FROM (SELECT max(at) FROM kappa.audit_log) AS not_audited_again
  FROM kappa.views;
-- the same worker all along
SELECT count(*) AS same_worker FROM au_worker
 WHERE pid IN (SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_kappa apply worker');
-- a view none of whose sources is captured: the log holds none of their
-- changes, and its audit says so
UPDATE kappa.views SET audit_every = NULL;
CREATE TABLE au_free (id int PRIMARY KEY, v int);
SELECT kappa.create_view('au_free_v', 'SELECT id, v FROM au_free') IS NOT NULL AS created;
SELECT count(*) AS failures FROM kappa.audit() WHERE object = 'public.au_free_v';
SELECT "check", object, ok, regexp_replace(detail, '[0-9A-F]+/[0-9A-F]+', 'LSN', 'g') AS detail
  FROM kappa.audit_log WHERE object = 'public.au_free_v' ORDER BY "check";
DROP EXTENSION pg_kappa CASCADE;
