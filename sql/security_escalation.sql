-- Hostile view owners: every path that runs a view's code (verify, audit,
-- scheduled audits, the apply worker, its TOAST fix-ups, replay) must run
-- it as the view's owner, security-restricted, with settings undone after
-- it.  Each probe tries to make its role a superuser; rolsuper is checked
-- after each.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE ROLE regress_kappa_alice;
CREATE ROLE regress_kappa_bob;
CREATE ROLE regress_kappa_carol;
CREATE SCHEMA ka AUTHORIZATION regress_kappa_alice;
CREATE SCHEMA kb AUTHORIZATION regress_kappa_bob;
CREATE SCHEMA kc AUTHORIZATION regress_kappa_carol;

-- escalates the role it names when the current user is a superuser
CREATE FUNCTION public.kappa_probe(role text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('ALTER ROLE %I SUPERUSER', role);
    END IF;
END
$$;
CREATE FUNCTION public.supers() RETURNS text[] LANGUAGE sql AS
$$ SELECT coalesce(array_agg(rolname ORDER BY rolname), '{}') FROM pg_roles
   WHERE rolname LIKE 'regress\_kappa\_%' AND rolsuper $$;
RESET client_min_messages;

-- 1. verify, verify_all and audit run alice's function
SET ROLE regress_kappa_alice;
CREATE TABLE ka.t (id int PRIMARY KEY, v int);
INSERT INTO ka.t SELECT g, g FROM generate_series(1, 5) g;
CREATE FUNCTION ka.f(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.kappa_probe('regress_kappa_alice');
    RETURN $1;
END
$$;
SELECT kappa.create_view('ka.v', 'SELECT id, ka.f(v) AS v FROM ka.t');
RESET ROLE;
SELECT count(*) FROM kappa.verify('ka.v');
SELECT view, ok FROM kappa.verify_all() WHERE view::text = 'ka.v';
SELECT count(*) >= 0 AS audited FROM kappa.audit();
SELECT public.supers();

-- 2. the audit worker, on alice's schedule
SET ROLE regress_kappa_alice;
SELECT kappa.alter_view('ka.v', audit_every => '1 second');
RESET ROLE;
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN (SELECT last_audit_at IS NOT NULL FROM kappa.views WHERE name = 'ka.v');
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT last_audit_at IS NOT NULL AS audited FROM kappa.views WHERE name = 'ka.v';
SELECT public.supers();
SET ROLE regress_kappa_alice;
SELECT kappa.alter_view('ka.v', audit_every => '0');
RESET ROLE;

-- 3. bob's view code changes search_path so that the worker's own SQL
-- would find his "=" operator
SET ROLE regress_kappa_bob;
CREATE FUNCTION kb.inteq(int, int) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.kappa_probe('regress_kappa_bob');
    RETURN $1 OPERATOR(pg_catalog.=) $2;
END
$$;
CREATE OPERATOR kb.= (leftarg = int, rightarg = int, function = kb.inteq);
CREATE FUNCTION kb.setsp(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'kb, pg_catalog', false);
    RETURN $1;
END
$$;
CREATE TABLE kb.sp (id int PRIMARY KEY, v int);
INSERT INTO kb.sp VALUES (1, 1), (2, 2);
SELECT kappa.create_view('kb.spv', 'SELECT id, kb.setsp(v) AS v FROM kb.sp');
UPDATE kb.sp SET v = 20 WHERE id = 2;
DELETE FROM kb.sp WHERE id = 1;
SELECT kappa.wait('kb.spv');
SELECT * FROM kb.spv ORDER BY id;
RESET ROLE;
-- another change after bob's, through the same worker
UPDATE kb.sp SET v = 30 WHERE id = 2;
SELECT kappa.wait('kb.spv');
SELECT state FROM kappa.views WHERE name = 'kb.spv';
SELECT public.supers();

-- 4. a trigger on the view's internal tables, fired by the worker's
-- fix-up of unchanged TOASTed values
SET ROLE regress_kappa_alice;
CREATE TABLE ka.big (id int PRIMARY KEY, doc text, n int);
ALTER TABLE ka.big ALTER doc SET STORAGE EXTERNAL;
INSERT INTO ka.big SELECT g, repeat(md5(g::text), 300), g FROM generate_series(1, 3) g;
SELECT kappa.create_view('ka.bigv', 'SELECT id, n, length(doc) AS len FROM ka.big');
CREATE FUNCTION ka.trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.kappa_probe('regress_kappa_alice');
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
DO $$
DECLARE
    s text := (SELECT 'kappa_v' || id FROM kappa.views WHERE name = 'ka.bigv');
BEGIN
    EXECUTE format('CREATE TRIGGER x BEFORE UPDATE ON %I.d_0 FOR EACH ROW EXECUTE FUNCTION ka.trg()', s);
    IF to_regclass(format('%I.a_0', s)) IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER x BEFORE INSERT OR DELETE ON %I.a_0 FOR EACH ROW EXECUTE FUNCTION ka.trg()', s);
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    -- since 0.9 the internal relations keep pg_kappa's definitions
    RAISE NOTICE 'trigger refused: %', regexp_replace(SQLERRM, 'kappa_v[0-9]+', 'kappa_v<id>', 'g');
END
$$;
UPDATE ka.big SET n = n + 10;
SELECT kappa.wait('ka.bigv');
SELECT * FROM ka.bigv ORDER BY id;
RESET ROLE;
SELECT state, last_error FROM kappa.views WHERE name = 'ka.bigv';
SELECT public.supers();

-- 5. triggers on the derived table itself, fired by a superuser's
-- replay in place; replay into a new view makes it alice's, not the
-- caller's
SET ROLE regress_kappa_alice;
CREATE TABLE ka.t5 (id int PRIMARY KEY, v int);
INSERT INTO ka.t5 SELECT g, g FROM generate_series(1, 4) g;
SELECT kappa.capture('ka.t5') IS NOT NULL AS captured;
SELECT kappa.create_view('ka.v5', 'SELECT id, ka.f(v) AS v FROM ka.t5');
CREATE TRIGGER y BEFORE DELETE ON ka.v5 FOR EACH ROW EXECUTE FUNCTION ka.trg();
UPDATE ka.t5 SET v = v * 10 WHERE id <= 2;
SELECT kappa.wait('ka.v5');
RESET ROLE;
SET client_min_messages = warning;
SELECT kappa.replay('ka.v5') AS replayed;
RESET client_min_messages;
SELECT kappa.replay('ka.v5', NULL, NULL, 'v5b') AS replayed_into;
SELECT relname, pg_get_userbyid(relowner) AS owner FROM pg_class WHERE oid = 'ka.v5b'::regclass;
SELECT * FROM ka.v5b ORDER BY id;
SELECT public.supers();

-- 6. status and the catalog show a view's query and error only to its
-- readers
SET ROLE regress_kappa_alice;
CREATE FUNCTION ka.chk(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
    IF $1 = 99 THEN
        RAISE EXCEPTION 'bad value for SSN 123-45-6789';
    END IF;
    RETURN $1;
END
$$;
CREATE TABLE ka.e (id int PRIMARY KEY, v int);
SELECT kappa.create_view('ka.ev', 'SELECT id, ka.chk(v) AS v FROM ka.e');
INSERT INTO ka.e VALUES (1, 99);
SELECT kappa.wait('ka.ev');
SELECT name, state, split_part(last_error, E'\n', 1) AS error,
       last_error ~ 'CONTEXT:  .*applying changes of e committed after .* to derived view "ev"' AS with_context
  FROM kappa.status WHERE name = 'ka.ev';
RESET ROLE;
SET ROLE regress_kappa_carol;
SELECT name, state, last_error FROM kappa.status WHERE name IN ('ka.v', 'kb.spv', 'ka.ev') ORDER BY name;
SELECT count(*) AS visible FROM kappa.views WHERE name IN ('ka.v', 'kb.spv');
-- and verify refuses before it locks anything
RESET ROLE;
SELECT relid AS kav_oid FROM kappa.views WHERE name = 'ka.v' \gset
SET ROLE regress_kappa_carol;
SELECT * FROM kappa.verify(:kav_oid);
SELECT kappa.wait(:kav_oid);
SELECT * FROM kappa.verify('kb.spv');
RESET ROLE;
GRANT USAGE ON SCHEMA ka TO regress_kappa_carol;
GRANT SELECT ON ka.v TO regress_kappa_carol;
SET ROLE regress_kappa_carol;
SELECT name, query FROM kappa.views WHERE name IN ('ka.v', 'kb.spv') ORDER BY name;
SELECT name, last_error FROM kappa.status WHERE name = 'ka.ev';
-- SELECT on the view alone does not let carol see the query's rows
SELECT * FROM kappa.verify('ka.v');
RESET ROLE;

-- 7. a paused view is refused at once, not waited for
SET ROLE regress_kappa_alice;
SELECT kappa.alter_view('ka.v', paused => true);
SELECT * FROM kappa.verify('ka.v');
SELECT kappa.alter_view('ka.v', paused => false);
RESET ROLE;

-- 8. temporary targets, and OIDs that are not (or no longer) views
SELECT kappa.create_view('pg_temp.atv', 'SELECT id, v FROM ka.t');
SELECT kappa.drop_view(0);
SELECT * FROM kappa.verify(0);
SELECT kappa.wait(0);
SET client_min_messages = warning;
INSERT INTO kappa.views (id, relid, name, query, canonical, owner, kind, sources,
                         arrangements, key_columns, created_lsn, applied_lsn)
VALUES (-1, 4000000000, 'gone.v', 'SELECT 1', 'SELECT 1', 10, 'project', '{}', '{}', '{}', '0/0', '0/0');
RESET client_min_messages;
SELECT * FROM kappa.verify(4000000000);
SELECT kappa.drop_view(4000000000);
-- (ka.v was resumed above: it runs again once the worker has restarted)
SELECT view, ok FROM kappa.verify_all() WHERE view::text <> 'ka.v' ORDER BY 1;
SELECT count(*) FROM kappa.audit() WHERE object = 'gone.v';
DELETE FROM kappa.views WHERE id = -1;

-- 9. code that runs while a statement is only parsed: a literal of an array
-- of carol's domain checks each element with her function.  The worker
-- prepares the view's statements (both engines) as carol, as it runs them
SET ROLE regress_kappa_carol;
CREATE FUNCTION kc.ok(int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.kappa_probe('regress_kappa_carol');
    RETURN true;
END
$$;
CREATE DOMAIN kc.d AS int CHECK (kc.ok(VALUE));
CREATE TABLE kc.f (id int PRIMARY KEY, g int, x int);
INSERT INTO kc.f SELECT i, i % 5, i FROM generate_series(1, 50) i;
SELECT kappa.create_view('kc.v2', $q$SELECT g, max(x) AS mx, '{7}'::kc.d[] AS c FROM kc.f GROUP BY g$q$) IS NOT NULL AS created;
SET pg_kappa.engine = 1;
SELECT kappa.create_view('kc.v1', $q$SELECT g, max(x) AS mx, '{7}'::kc.d[] AS c FROM kc.f GROUP BY g$q$) IS NOT NULL AS created;
RESET pg_kappa.engine;
INSERT INTO kc.f VALUES (1000, 1, 1000);
DELETE FROM kc.f WHERE x = 49;
SELECT kappa.wait('kc.v2') AND kappa.wait('kc.v1') AS waited;
RESET ROLE;
SELECT name, state FROM kappa.views WHERE name LIKE 'kc.v_' ORDER BY name;
SELECT count(*) FROM kappa.verify('kc.v2');
SELECT count(*) FROM kappa.verify('kc.v1');
SELECT public.supers();

-- 10. kappa.on_ddl_end (SECURITY DEFINER) parses the query of a view whose
-- derived table is altered, to check its columns: as the view's owner too
SET ROLE regress_kappa_carol;
ALTER TABLE kc.v2 SET (fillfactor = 100);
ALTER TABLE kc.v1 SET (fillfactor = 90);
RESET ROLE;
SELECT name, state FROM kappa.views WHERE name LIKE 'kc.v_' ORDER BY name;

SELECT public.supers();

-- 11. casts a role makes from its own types run nowhere in pg_kappa's own
-- statements: a superuser's view (a bag, whose rows pg_kappa matches by
-- their text) over carol's table of her enum and composite types, with her
-- casts of both to text and json
SET ROLE regress_kappa_carol;
CREATE TYPE kc.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE kc.pair AS (a int, j json);
CREATE FUNCTION kc.mood_text(kc.mood) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.kappa_probe('regress_kappa_carol'); RETURN 'x'; END $$;
CREATE FUNCTION kc.mood_json(kc.mood) RETURNS json LANGUAGE plpgsql AS $$
BEGIN PERFORM public.kappa_probe('regress_kappa_carol'); RETURN '1'; END $$;
CREATE FUNCTION kc.pair_text(kc.pair) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.kappa_probe('regress_kappa_carol'); RETURN 'x'; END $$;
CREATE CAST (kc.mood AS text) WITH FUNCTION kc.mood_text(kc.mood);
CREATE CAST (kc.mood AS json) WITH FUNCTION kc.mood_json(kc.mood);
CREATE CAST (kc.pair AS text) WITH FUNCTION kc.pair_text(kc.pair);
CREATE TABLE kc.feed (id int PRIMARY KEY, mood kc.mood, p kc.pair, n int);
ALTER TABLE kc.feed REPLICA IDENTITY FULL;
INSERT INTO kc.feed VALUES (1, 'sad', (1, '{}'), 1), (2, 'happy', (2, '[]'), 2), (3, 'sad', (1, '{}'), 1);
GRANT USAGE ON SCHEMA kc TO PUBLIC;
GRANT SELECT ON kc.feed TO PUBLIC;
RESET ROLE;
SELECT kappa.create_view('public.kc_moods', 'SELECT mood, p, n FROM kc.feed') IS NOT NULL AS created;
DELETE FROM kc.feed WHERE id = 1;
UPDATE kc.feed SET mood = 'ok' WHERE id = 2;
SELECT kappa.wait('public.kc_moods');
SELECT state FROM kappa.views WHERE name = 'public.kc_moods';
SELECT count(*) FROM kappa.verify('public.kc_moods');
SELECT mood, n FROM public.kc_moods ORDER BY n;
SELECT kappa.drop_view('public.kc_moods');

SELECT public.supers();

-- 12. a replay reads a logged value of a domain with a CHECK (carol's
-- code) as the source's owner, not as the view's (a superuser)
SET ROLE regress_kappa_carol;
CREATE FUNCTION kc.checks(int) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM public.kappa_probe('regress_kappa_carol'); RETURN true; END $$;
CREATE DOMAIN kc.checked AS int CHECK (kc.checks(VALUE));
CREATE TABLE kc.logged (id int PRIMARY KEY, v kc.checked);
INSERT INTO kc.logged VALUES (1, 10), (2, 20);
SELECT kappa.capture('kc.logged') IS NOT NULL AS captured;
GRANT SELECT ON kc.logged TO PUBLIC;
RESET ROLE;
SELECT kappa.create_view('public.kc_logged', 'SELECT id, v FROM kc.logged') IS NOT NULL AS created;
SET ROLE regress_kappa_carol;
UPDATE kc.logged SET v = 11 WHERE id = 1;
RESET ROLE;
SELECT kappa.wait('public.kc_logged');
SET client_min_messages = warning;
SELECT kappa.replay('public.kc_logged');
RESET client_min_messages;
SELECT * FROM public.kc_logged ORDER BY id;
SELECT kappa.drop_view('public.kc_logged');
SELECT kappa.uncapture('kc.logged');
SELECT public.supers();

-- 13. a range whose subtype_diff carol made: ANALYZE of the view's tables
-- (pg_kappa's, or autovacuum's) would run it as the view's owner
SET ROLE regress_kappa_carol;
CREATE FUNCTION kc.diff(a float8, b float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RETURN a - b; END $$;
CREATE TYPE kc.span AS RANGE (subtype = float8, subtype_diff = kc.diff);
CREATE TABLE kc.spans (id int PRIMARY KEY, r kc.span, n int);
INSERT INTO kc.spans VALUES (1, kc.span(1, 2), 1);
GRANT SELECT ON kc.spans TO PUBLIC;
RESET ROLE;
SELECT kappa.create_view('public.kc_spans', 'SELECT id, n FROM kc.spans');
-- its owner may
SET ROLE regress_kappa_carol;
SELECT kappa.create_view('kc.spans_v', 'SELECT id, r FROM kc.spans') IS NOT NULL AS created;
SELECT kappa.drop_view('kc.spans_v');
RESET ROLE;
SELECT public.supers();

-- a session-level advisory lock taken by a view's code is not kept by the
-- worker after the view's batch
SET ROLE regress_kappa_carol;
CREATE TABLE kc.adv (id int PRIMARY KEY, v int);
CREATE FUNCTION kc.adv_lock(x int) RETURNS int LANGUAGE sql IMMUTABLE AS
  $$ SELECT x + 0 * (SELECT count(*) FROM (SELECT pg_advisory_lock(4242)) s)::int $$;
SELECT kappa.create_view('kc.adv_v', 'SELECT id, kc.adv_lock(v) AS v FROM kc.adv') IS NOT NULL AS created;
SELECT pg_advisory_unlock_all();
INSERT INTO kc.adv VALUES (1, 1);
SELECT kappa.wait('kc.adv_v');
SELECT * FROM kc.adv_v;
RESET ROLE;
SELECT count(*) AS held_by_others FROM pg_locks
 WHERE locktype = 'advisory' AND objid = 4242 AND pid <> pg_backend_pid();
SELECT kappa.drop_view('kc.adv_v');

-- DDL run by a view's code inside the apply worker, which runs in replica
-- mode where pg_kappa's event triggers do not fire, is refused: carol's
-- view would rewrite a table of hers that bob's view reads, which would
-- leave bob's view silently wrong.  Her view breaks, the rewrite is undone,
-- and bob's view stays exact.
SET ROLE regress_kappa_carol;
CREATE TABLE kc.shared (id int PRIMARY KEY, val int);
ALTER TABLE kc.shared REPLICA IDENTITY FULL;
INSERT INTO kc.shared VALUES (1, 100), (2, 200);
GRANT SELECT ON kc.shared TO regress_kappa_bob;
CREATE TABLE kc.trig (id int PRIMARY KEY, x int);
ALTER TABLE kc.trig REPLICA IDENTITY FULL;
CREATE FUNCTION kc.rewrite(x int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  IF x = 42 THEN
    EXECUTE 'ALTER TABLE kc.shared ALTER COLUMN val TYPE int USING val + 1000';
  END IF;
  RETURN x;
END $$;
CREATE FUNCTION kc.calm(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN kc.rewrite(x); END $$;
SELECT kappa.create_view('kc.trig_v', 'SELECT id, kc.calm(x) AS fx FROM kc.trig') IS NOT NULL AS created;
SET ROLE regress_kappa_bob;
SELECT kappa.create_view('kb.shared_sum', 'SELECT count(*) AS n, sum(val) AS s FROM kc.shared') IS NOT NULL AS created;
SET ROLE regress_kappa_carol;
INSERT INTO kc.trig VALUES (1, 42);
SELECT kappa.wait('kc.trig_v');
RESET ROLE;
SELECT name, state, split_part(last_error, E'\n', 1) AS last_error FROM kappa.views
 WHERE name IN ('kb.shared_sum', 'kc.trig_v') ORDER BY name;
SELECT sum(val) AS shared_sum FROM kc.shared;
SELECT count(*) AS differences FROM kappa.verify('kb.shared_sum');
SELECT kappa.drop_view('kb.shared_sum'), kappa.drop_view('kc.trig_v');

-- clean up
SELECT kappa.uncapture('ka.t5');
SELECT count(kappa.drop_view(relid)) FROM kappa.views WHERE name LIKE 'k_.%';
SET client_min_messages = warning;
DROP SCHEMA ka, kb, kc CASCADE;
DROP FUNCTION public.kappa_probe(text), public.supers();
DROP ROLE regress_kappa_alice, regress_kappa_bob, regress_kappa_carol;
RESET client_min_messages;
