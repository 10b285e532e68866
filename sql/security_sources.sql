-- A view is never wrong while "running": changes to its sources that the
-- view cannot follow (replica identity, column renames, table renames,
-- row-level security, inheritance children) break it with a clear error,
-- functions it uses cannot be dropped under it, and REASSIGN OWNED moves
-- it to the new owner.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE ROLE regress_kappa_src_alice;
CREATE ROLE regress_kappa_src_bob;
CREATE ROLE regress_kappa_src_dave;
CREATE SCHEMA ks AUTHORIZATION regress_kappa_src_alice;
GRANT USAGE, CREATE ON SCHEMA ks TO regress_kappa_src_bob;
RESET client_min_messages;
CREATE FUNCTION ks_state(v text) RETURNS TABLE (state text, last_error text)
LANGUAGE sql AS $$ SELECT state, last_error FROM kappa.views WHERE name = v $$;

-- row-level security enabled under a view whose owner does not bypass it
SET ROLE regress_kappa_src_alice;
CREATE TABLE ks.r (id int PRIMARY KEY, owner text, v int);
INSERT INTO ks.r VALUES (1, 'alice', 1), (2, 'bob', 2);
GRANT SELECT ON ks.r TO regress_kappa_src_bob;
SELECT kappa.create_view('ks.r_alice', 'SELECT id, v FROM ks.r');
SET ROLE regress_kappa_src_bob;
SELECT kappa.create_view('ks.r_bob', 'SELECT id, v FROM ks.r');
SET ROLE regress_kappa_src_alice;
CREATE POLICY only_bob ON ks.r USING (owner = 'bob');
ALTER TABLE ks.r ENABLE ROW LEVEL SECURITY;
RESET ROLE;
-- (the worker may find it first, with a message of its own)
SELECT state, last_error LIKE '%row-level security%' AS says_why FROM ks_state('ks.r_bob');
SELECT * FROM ks_state('ks.r_alice');
INSERT INTO ks.r VALUES (3, 'carol', 3);
SELECT kappa.wait('ks.r_alice');
SELECT count(*) FROM ks.r_alice;
SELECT kappa.wait('ks.r_bob');

-- replica identity changed away from what identifies rows by the key
CREATE TABLE ks.ri (id int PRIMARY KEY, u int NOT NULL UNIQUE, v int);
INSERT INTO ks.ri SELECT g, g, g FROM generate_series(1, 3) g;
SELECT kappa.create_view('ks.ri_nothing', 'SELECT id, v FROM ks.ri');
SELECT kappa.create_view('ks.ri_index', 'SELECT id, v FROM ks.ri WHERE v > 0');
ALTER TABLE ks.ri REPLICA IDENTITY FULL;
SELECT * FROM ks_state('ks.ri_nothing');
ALTER TABLE ks.ri REPLICA IDENTITY USING INDEX ri_u_key;
-- (the worker may find it first, when it compiles the view again)
SELECT state, last_error IS NOT NULL AS says_why FROM ks_state('ks.ri_index');
SELECT kappa.drop_view('ks.ri_index');
ALTER TABLE ks.ri REPLICA IDENTITY DEFAULT;
SELECT kappa.create_view('ks.ri_nothing2', 'SELECT id, v FROM ks.ri');
ALTER TABLE ks.ri REPLICA IDENTITY NOTHING;
-- (the worker may find it first, with a message of its own)
SELECT state, last_error LIKE '%REPLICA IDENTITY%' AS says_why FROM ks_state('ks.ri_nothing2');
DELETE FROM ks.ri WHERE id = 1;
SELECT kappa.wait('ks.ri_nothing2');

-- two columns swapped by renames
CREATE TABLE ks.sw (id int PRIMARY KEY, a int, b int);
INSERT INTO ks.sw VALUES (1, 10, 20);
SELECT kappa.create_view('ks.sw_v', 'SELECT id, a - b AS d FROM ks.sw');
BEGIN;
ALTER TABLE ks.sw RENAME COLUMN a TO tmp;
ALTER TABLE ks.sw RENAME COLUMN b TO a;
ALTER TABLE ks.sw RENAME COLUMN tmp TO b;
COMMIT;
SELECT * FROM ks_state('ks.sw_v');

-- a renamed table, and a new table under its old name
CREATE TABLE ks.rn (id int PRIMARY KEY, v int);
INSERT INTO ks.rn VALUES (1, 1);
SELECT kappa.create_view('ks.rn_v', 'SELECT id, v FROM ks.rn');
-- renaming a schema and back changes nothing
ALTER SCHEMA ks RENAME TO ks_renamed;
ALTER SCHEMA ks_renamed RENAME TO ks;
INSERT INTO ks.rn VALUES (2, 2);
SELECT kappa.wait('ks.rn_v');
SELECT count(*) FROM kappa.verify('ks.rn_v');
-- the view follows the rename (as PostgreSQL's views do), not the name
ALTER TABLE ks.rn RENAME TO rn_old;
CREATE TABLE ks.rn (id int PRIMARY KEY, v int);
INSERT INTO ks.rn_old VALUES (3, 3);
INSERT INTO ks.rn VALUES (9, 9);
SELECT kappa.wait('ks.rn_v');
SELECT * FROM ks.rn_v ORDER BY id;
SELECT count(*) FROM kappa.verify('ks.rn_v');
-- renames unseen (event triggers do not fire with session_replication_role
-- = replica): the name in the view's query now means another table, which
-- the view notices, and breaks rather than read it
SET session_replication_role = replica;
ALTER TABLE ks.rn_old RENAME TO rn_older;
ALTER TABLE ks.rn RENAME TO rn_old;
RESET session_replication_role;
INSERT INTO ks.rn_older VALUES (4, 4);
SELECT kappa.wait('ks.rn_v');
SELECT state, split_part(last_error, E'\n', 1) AS error, last_error ~ 'HINT:  Drop the view' AS with_hint
  FROM ks_state('ks.rn_v');

-- inheritance: a parent with children is refused unless ONLY is written
CREATE TABLE ks.parent (id int PRIMARY KEY, v int);
CREATE TABLE ks.child () INHERITS (ks.parent);
INSERT INTO ks.parent VALUES (1, 1);
INSERT INTO ks.child VALUES (2, 2);
SELECT kappa.create_view('ks.inh_v', 'SELECT id, v FROM ks.parent');
SELECT kappa.create_view('ks.inh_only', 'SELECT id, v FROM ONLY ks.parent');
SELECT * FROM ks.inh_only ORDER BY id;
CREATE TABLE ks.lonely (id int PRIMARY KEY, v int);
SELECT kappa.create_view('ks.lonely_v', 'SELECT id, v FROM ks.lonely');
SELECT canonical LIKE '%FROM ONLY ks.lonely%' AS reads_only FROM kappa.views WHERE name = 'ks.lonely_v';
CREATE TABLE ks.lonely_child () INHERITS (ks.lonely);
INSERT INTO ks.lonely_child VALUES (1, 1);
INSERT INTO ks.lonely VALUES (2, 2);
SELECT kappa.wait('ks.lonely_v');
SELECT * FROM ks.lonely_v ORDER BY id;
SELECT count(*) FROM kappa.verify('ks.lonely_v');

-- a function the view uses cannot be dropped under it
CREATE FUNCTION ks.twice(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2';
CREATE TABLE ks.fn (id int PRIMARY KEY, v int);
SELECT kappa.create_view('ks.fn_v', 'SELECT id, ks.twice(v) AS v2 FROM ks.fn');
DROP FUNCTION ks.twice(int);
SET client_min_messages = warning;
DROP FUNCTION ks.twice(int) CASCADE;
RESET client_min_messages;
SELECT count(*) AS left FROM kappa.views WHERE name = 'ks.fn_v';
SELECT to_regclass('ks.fn_v') AS derived_table;

-- REASSIGN OWNED moves a view with its tables
SET ROLE regress_kappa_src_alice;
CREATE TABLE ks.ro (id int PRIMARY KEY, v int);
INSERT INTO ks.ro VALUES (1, 1);
SELECT kappa.create_view('ks.ro_v', 'SELECT id, v FROM ks.ro');
RESET ROLE;
REASSIGN OWNED BY regress_kappa_src_alice TO regress_kappa_src_dave;
INSERT INTO ks.ro VALUES (2, 2);
SELECT kappa.wait('ks.ro_v');
-- (a batch that met REASSIGN OWNED's locks in a deadlock is retried; its
-- error stays in last_error until the worker has caught up, just after)
DO $$
BEGIN
    FOR i IN 1 .. 100 LOOP
        EXIT WHEN (SELECT last_error IS NULL FROM kappa.views WHERE name = 'ks.ro_v');
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT * FROM ks_state('ks.ro_v');
SELECT * FROM ks.ro_v ORDER BY id;
SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE oid = 'ks.ro_v'::regclass;

-- a role that may only read a source cannot keep its writers waiting past
-- its own statement: verify lets go of the source's lock once it has
-- compared, and a view is not built in a transaction block
CREATE SCHEMA kl AUTHORIZATION regress_kappa_src_alice;
GRANT USAGE, CREATE ON SCHEMA kl TO regress_kappa_src_bob;
SET ROLE regress_kappa_src_alice;
CREATE TABLE kl.lk (id int PRIMARY KEY, v int);
INSERT INTO kl.lk VALUES (1, 1);
ALTER TABLE kl.lk REPLICA IDENTITY FULL;
GRANT SELECT ON kl.lk TO regress_kappa_src_bob;
SET ROLE regress_kappa_src_bob;
SELECT kappa.create_view('kl.lk_bob', 'SELECT id, v FROM kl.lk') IS NOT NULL AS created;
GRANT SELECT ON kl.lk_bob TO regress_kappa_src_alice;
BEGIN;
SELECT count(*) AS differences FROM kappa.verify('kl.lk_bob');
SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'kl.lk'::regclass ORDER BY mode;
SELECT kappa.create_view('kl.lk_bob2', 'SELECT id FROM kl.lk');
ROLLBACK;
-- its owner keeps it until the transaction ends, as LOCK TABLE would
SET ROLE regress_kappa_src_alice;
BEGIN;
SELECT count(*) AS differences FROM kappa.verify('kl.lk_bob');
SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'kl.lk'::regclass ORDER BY mode;
SELECT kappa.create_view('kl.lk_alice', 'SELECT id FROM kl.lk') IS NOT NULL AS created;
ROLLBACK;
RESET ROLE;
SELECT kappa.drop_view('kl.lk_bob');
DROP SCHEMA kl CASCADE;

-- kappa.audit reads every role's log and writes the audit log: a role that
-- may not is refused the call, not an internal function's
SET ROLE regress_kappa_src_bob;
SELECT count(*) FROM kappa.audit();
RESET ROLE;

-- clean up
SELECT count(kappa.drop_view(relid)) FROM kappa.views WHERE name LIKE 'ks.%';
SET client_min_messages = warning;
DROP SCHEMA ks CASCADE;
DROP FUNCTION ks_state(text);
DROP OWNED BY regress_kappa_src_alice, regress_kappa_src_bob, regress_kappa_src_dave;
DROP ROLE regress_kappa_src_alice, regress_kappa_src_bob, regress_kappa_src_dave;
RESET client_min_messages;
