-- kappa.events returns a table's events only to a caller who could read
-- them from the table now: SELECT on the table (or on every column), USAGE
-- on its schema, and no row-level security in force for the caller.  A
-- table named in tables that fails a check is an error; with tables NULL
-- it is left out silently.
\set SHOW_CONTEXT never
CREATE ROLE regress_kappa_ev_alice;
CREATE ROLE regress_kappa_ev_bob;
CREATE ROLE regress_kappa_ev_carol;
CREATE ROLE regress_kappa_ev_dave BYPASSRLS;
CREATE SCHEMA regress_kappa_ev_alice AUTHORIZATION regress_kappa_ev_alice;
CREATE SCHEMA regress_kappa_ev_carol AUTHORIZATION regress_kappa_ev_carol;
GRANT USAGE ON SCHEMA regress_kappa_ev_alice TO regress_kappa_ev_bob, regress_kappa_ev_dave;
-- only this test's events are shown: those logged from here on
CREATE TABLE es_start AS SELECT pg_current_wal_insert_lsn() AS lsn;
GRANT SELECT ON es_start TO PUBLIC;
CREATE FUNCTION es_events(tables regclass[] DEFAULT NULL)
RETURNS TABLE (kind text, tab text, old jsonb, new jsonb, changes jsonb)
LANGUAGE sql AS $$
  SELECT e->>'kind', (e->>'schema') || '.' || (e->>'table'), e->'old', e->'new',
         e->'changes'
    FROM kappa.events((SELECT lsn FROM es_start), NULL, tables) WITH ORDINALITY AS x(e, n)
   ORDER BY n
$$;
-- a derived view to wait for the worker with
CREATE TABLE es_tick (id int PRIMARY KEY);
SELECT kappa.create_view('es_tick_ids', 'SELECT id FROM es_tick');

-- alice's tables: one whose rows bob sees through a policy, one bob may
-- read, one where bob may read only some columns
SET ROLE regress_kappa_ev_alice;
CREATE TABLE regress_kappa_ev_alice.secret (id int PRIMARY KEY, reader text NOT NULL, v text);
ALTER TABLE regress_kappa_ev_alice.secret ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON regress_kappa_ev_alice.secret FOR SELECT USING (reader = current_user);
GRANT SELECT ON regress_kappa_ev_alice.secret TO regress_kappa_ev_bob, regress_kappa_ev_dave;
INSERT INTO regress_kappa_ev_alice.secret VALUES (1, 'regress_kappa_ev_bob', 'b1'), (2, 'nobody', 's2');
CREATE TABLE regress_kappa_ev_alice.open (id int PRIMARY KEY, v text);
GRANT SELECT ON regress_kappa_ev_alice.open TO regress_kappa_ev_bob;
INSERT INTO regress_kappa_ev_alice.open VALUES (1, 'o1');
CREATE TABLE regress_kappa_ev_alice.cols (id int PRIMARY KEY, pub text, priv text);
GRANT SELECT (id, pub) ON regress_kappa_ev_alice.cols TO regress_kappa_ev_bob;
INSERT INTO regress_kappa_ev_alice.cols VALUES (1, 'p1', 'x1');
SELECT kappa.capture('regress_kappa_ev_alice.secret') IS NOT NULL AS captured;
SELECT kappa.capture('regress_kappa_ev_alice.open') IS NOT NULL AS captured;
SELECT kappa.capture('regress_kappa_ev_alice.cols') IS NOT NULL AS captured;
RESET ROLE;
-- carol's table: alice may SELECT it but has no USAGE on carol's schema
SET ROLE regress_kappa_ev_carol;
CREATE TABLE regress_kappa_ev_carol.c2 (id int PRIMARY KEY, v text);
GRANT SELECT ON regress_kappa_ev_carol.c2 TO regress_kappa_ev_alice;
INSERT INTO regress_kappa_ev_carol.c2 VALUES (1, 'c1');
SELECT kappa.capture('regress_kappa_ev_carol.c2') IS NOT NULL AS captured;
RESET ROLE;
SELECT 'regress_kappa_ev_carol.c2'::regclass::oid AS c2_oid \gset

-- changes after the captures
SET ROLE regress_kappa_ev_alice;
INSERT INTO regress_kappa_ev_alice.secret VALUES (3, 'regress_kappa_ev_bob', 'b3'), (4, 'nobody', 's4');
BEGIN;
UPDATE regress_kappa_ev_alice.secret SET v = 's2 updated' WHERE id = 2;
INSERT INTO regress_kappa_ev_alice.open VALUES (2, 'o2');
COMMIT;
UPDATE regress_kappa_ev_alice.cols SET priv = 'x1 updated' WHERE id = 1;
RESET ROLE;
SET ROLE regress_kappa_ev_carol;
INSERT INTO regress_kappa_ev_carol.c2 VALUES (2, 'c2');
RESET ROLE;
INSERT INTO es_tick VALUES (1);
SELECT kappa.wait('es_tick_ids');

-- a superuser sees everything
SELECT * FROM es_events();
-- alice: her tables (the owner is not subject to her own policy), nothing
-- of carol's: SELECT on c2 without USAGE on its schema is not enough
SET ROLE regress_kappa_ev_alice;
SELECT * FROM es_events();
SELECT * FROM es_events(ARRAY[:'c2_oid']::regclass[]);
RESET ROLE;
-- bob: open only; secret is under row-level security for him, and of cols
-- he may read only some columns.  The commit of the transaction that also
-- updated secret counts only the change returned.
SET ROLE regress_kappa_ev_bob;
SELECT * FROM es_events();
SELECT count(*) FROM regress_kappa_ev_alice.secret;
SELECT * FROM es_events('{regress_kappa_ev_alice.secret}');
SELECT * FROM es_events('{regress_kappa_ev_alice.open,regress_kappa_ev_alice.secret}');
SELECT * FROM es_events('{regress_kappa_ev_alice.cols}');
SELECT * FROM es_events('{regress_kappa_ev_alice.open}');
-- row_security off: still refused, never an error when not named
SET row_security = off;
SELECT count(*) FROM es_events();
SELECT count(*) FROM es_events('{regress_kappa_ev_alice.secret}');
RESET row_security;
RESET ROLE;
-- SELECT on every column is enough
GRANT SELECT (priv) ON regress_kappa_ev_alice.cols TO regress_kappa_ev_bob;
SET ROLE regress_kappa_ev_bob;
SELECT * FROM es_events('{regress_kappa_ev_alice.cols}');
RESET ROLE;
-- but not once a column has been dropped: its values are in the events
-- logged before, and no grant on the columns left covers them
ALTER TABLE regress_kappa_ev_alice.cols ADD COLUMN gone text;
ALTER TABLE regress_kappa_ev_alice.cols DROP COLUMN gone;
SET ROLE regress_kappa_ev_bob;
SELECT * FROM es_events('{regress_kappa_ev_alice.cols}');
SELECT count(*) FROM es_events() WHERE tab = 'cols';
RESET ROLE;
-- SELECT on the table covers every column it ever had
GRANT SELECT ON regress_kappa_ev_alice.cols TO regress_kappa_ev_bob;
SET ROLE regress_kappa_ev_bob;
SELECT count(*) > 0 AS readable FROM es_events('{regress_kappa_ev_alice.cols}');
RESET ROLE;
-- dave bypasses row-level security: all of secret
SET ROLE regress_kappa_ev_dave;
SELECT * FROM es_events('{regress_kappa_ev_alice.secret}');
SELECT DISTINCT tab FROM es_events() WHERE tab IS NOT NULL;
RESET ROLE;
-- carol sees c2 and nothing of alice's
SET ROLE regress_kappa_ev_carol;
SELECT DISTINCT tab FROM es_events() WHERE tab IS NOT NULL;
RESET ROLE;
-- FORCE ROW LEVEL SECURITY: the owner is subject to it too
ALTER TABLE regress_kappa_ev_alice.secret FORCE ROW LEVEL SECURITY;
SET ROLE regress_kappa_ev_alice;
SELECT DISTINCT tab FROM es_events() WHERE tab IS NOT NULL ORDER BY tab;
SELECT * FROM es_events('{regress_kappa_ev_alice.secret}');
RESET ROLE;
ALTER TABLE regress_kappa_ev_alice.secret NO FORCE ROW LEVEL SECURITY;
-- checks are made on the table as it is now: a renamed table keeps its
-- events (logged under the old name)
ALTER TABLE regress_kappa_ev_alice.open RENAME TO opened;
SET ROLE regress_kappa_ev_bob;
SELECT DISTINCT tab FROM es_events('{regress_kappa_ev_alice.opened}') WHERE tab IS NOT NULL;
RESET ROLE;
-- privileges revoked after logging hide the events logged before
REVOKE SELECT ON regress_kappa_ev_alice.opened FROM regress_kappa_ev_bob;
SET ROLE regress_kappa_ev_bob;
SELECT DISTINCT tab FROM es_events() WHERE tab IS NOT NULL ORDER BY tab;
SELECT count(*) FROM es_events('{regress_kappa_ev_alice.opened}');
RESET ROLE;
GRANT SELECT ON regress_kappa_ev_alice.opened TO regress_kappa_ev_bob;
REVOKE USAGE ON SCHEMA regress_kappa_ev_alice FROM regress_kappa_ev_bob;
SET ROLE regress_kappa_ev_bob;
SELECT count(*) AS records FROM es_events();
RESET ROLE;
-- a dropped table's events: only roles that may read kappa.event_log
DROP TABLE regress_kappa_ev_carol.c2;
SET ROLE regress_kappa_ev_carol;
SELECT count(*) AS records FROM es_events();
\set VERBOSITY sqlstate
SELECT count(*) FROM es_events(ARRAY[:'c2_oid']::regclass[]);
\set VERBOSITY default
RESET ROLE;
SELECT count(*) AS c2_records FROM es_events(ARRAY[:'c2_oid']::regclass[]);
SELECT count(*) AS c2_records FROM es_events() WHERE tab = 'regress_kappa_ev_carol.c2';

-- clean up
SELECT kappa.drop_view('es_tick_ids');
DROP TABLE es_tick, es_start;
DROP FUNCTION es_events;
DROP OWNED BY regress_kappa_ev_alice, regress_kappa_ev_bob, regress_kappa_ev_carol, regress_kappa_ev_dave;
DROP ROLE regress_kappa_ev_alice, regress_kappa_ev_bob, regress_kappa_ev_carol, regress_kappa_ev_dave;
SELECT count(*) AS captured FROM kappa.captures WHERE name LIKE 'regress_kappa_ev%';
