-- kappa.verify: exact differences between a view and its query.
\set VERBOSITY terse
CREATE TABLE vf (id int PRIMARY KEY, grp int, v int);
INSERT INTO vf SELECT g, g % 3, g FROM generate_series(1, 30) g;
SELECT kappa.create_view('vf_sum', 'SELECT grp, count(*) AS n, sum(v) AS s FROM vf GROUP BY grp');
SELECT kappa.create_view('vf_rows', 'SELECT id, v FROM vf WHERE v > 10');
UPDATE vf SET grp = 5 WHERE id = 1;
-- a correct view has no findings
SELECT * FROM kappa.verify('vf_sum');
SELECT * FROM kappa.verify('vf_rows');
-- corrupt the derived tables behind pg_kappa's back (triggers off)
SET session_replication_role = replica;
UPDATE vf_sum SET s = s + 1 WHERE grp = 0;
DELETE FROM vf_rows WHERE id = 20;
INSERT INTO vf_rows VALUES (1000, 1000);
UPDATE vf_rows SET v = -v WHERE id = 25;
RESET session_replication_role;
SELECT kind, "row", count FROM kappa.verify('vf_sum');
SELECT kind, "row", count FROM kappa.verify('vf_rows');
SELECT view, missing, extra, ok FROM kappa.verify_all();
-- columns of types a role made are compared (and shown) by their output
-- text, without quotes; a NULL stays NULL, apart from an empty text and
-- from a row whose fields are all NULL
CREATE TYPE vf_mood AS ENUM ('sad', 'ok');
CREATE DOMAIN vf_pos AS int CHECK (VALUE > 0);
CREATE DOMAIN vf_txt AS text;
CREATE TYPE vf_pair AS (a int, b int);
CREATE TABLE vf_typed (id int PRIMARY KEY, md vf_mood, p vf_pos, t vf_txt, pr vf_pair);
INSERT INTO vf_typed VALUES (1, 'sad', 5, '', ROW(NULL, NULL)), (2, NULL, NULL, NULL, NULL);
SELECT kappa.create_view('vf_typed_v', 'SELECT id, md, p, t, pr FROM vf_typed');
SELECT count(*) AS differences FROM kappa.verify('vf_typed_v');
SET session_replication_role = replica;
UPDATE vf_typed_v SET md = 'ok', t = NULL, pr = NULL WHERE id = 1;
UPDATE vf_typed_v SET t = '', pr = ROW(NULL, NULL) WHERE id = 2;
RESET session_replication_role;
SELECT kind, "row", count FROM kappa.verify('vf_typed_v') ORDER BY kind, "row"::text;
SELECT kappa.drop_view('vf_typed_v');
DROP TABLE vf_typed;
DROP TYPE vf_mood, vf_pair;
DROP DOMAIN vf_pos, vf_txt;
-- bad arguments
SELECT * FROM kappa.verify('vf');
SELECT * FROM kappa.verify(NULL);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM kappa.verify('vf_sum');
ROLLBACK;
-- in a transaction that wrote a source, the view would differ by those
-- writes, which it cannot include before they commit
BEGIN;
UPDATE vf SET v = v + 1 WHERE id = 5;
SELECT * FROM kappa.verify('vf_sum');
ROLLBACK;
BEGIN;
TRUNCATE vf;
SELECT * FROM kappa.verify('vf_rows');
ROLLBACK;
-- (other tables written are no concern)
BEGIN;
CREATE TEMP TABLE vf_other (x int);
INSERT INTO vf_other VALUES (1);
SELECT count(*) AS differences FROM kappa.verify('vf_rows');
ROLLBACK;
-- with the workers off, no view can catch up: said at once, nothing locked
ALTER SYSTEM SET pg_kappa.enabled = off;
SELECT pg_reload_conf();
SELECT pg_sleep(0.3);
SELECT * FROM kappa.verify('vf_sum');
ALTER SYSTEM RESET pg_kappa.enabled;
SELECT pg_reload_conf();
SELECT pg_sleep(0.3);
SELECT kappa.wait('vf_sum', timeout => '30s');
SELECT kappa.drop_view('vf_sum'), kappa.drop_view('vf_rows');
DROP TABLE vf;
