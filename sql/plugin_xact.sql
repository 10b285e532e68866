-- Transactions: savepoints, aborted subtransactions, aborted transactions,
-- many subtransactions, empty transactions with skip-empty-xacts off.
\set VERBOSITY terse
SELECT 'init' FROM pg_create_logical_replication_slot('xact', 'pg_kappa');
CREATE TABLE xt (id int PRIMARY KEY, v text);

-- released and rolled-back savepoints, nested
BEGIN;
INSERT INTO xt VALUES (1, 'top');
SAVEPOINT a;
INSERT INTO xt VALUES (2, 'in a');
SAVEPOINT b;
INSERT INTO xt VALUES (3, 'in b, rolled back');
UPDATE xt SET v = 'updated in b, rolled back' WHERE id = 1;
ROLLBACK TO SAVEPOINT b;
INSERT INTO xt VALUES (4, 'in b again');
RELEASE SAVEPOINT b;
SAVEPOINT c;
DELETE FROM xt WHERE id = 2;
ROLLBACK TO SAVEPOINT c;
UPDATE xt SET v = 'top updated' WHERE id = 1;
RELEASE SAVEPOINT a;
COMMIT;
SELECT * FROM decode('xact');

-- an aborted transaction writes nothing, even with subtransactions
BEGIN;
INSERT INTO xt VALUES (10, 'aborted');
SAVEPOINT a;
INSERT INTO xt VALUES (11, 'aborted too');
RELEASE SAVEPOINT a;
ROLLBACK;
-- a transaction whose only changes are in a rolled-back subtransaction is
-- empty
BEGIN;
SAVEPOINT a;
INSERT INTO xt VALUES (12, 'rolled back');
ROLLBACK TO SAVEPOINT a;
COMMIT;
-- a PL/pgSQL exception block is a subtransaction too
DO $$
BEGIN
  INSERT INTO xt VALUES (13, 'before the block');
  BEGIN
    INSERT INTO xt VALUES (14, 'in the failed block');
    PERFORM 1 / 0;
  EXCEPTION WHEN division_by_zero THEN
    INSERT INTO xt VALUES (15, 'in the handler');
  END;
END
$$;
SELECT * FROM decode('xact');

-- more subtransactions than a backend caches (64), changes in each, and
-- every third one rolled back
DO $$
BEGIN
  FOR i IN 100..199 LOOP
    BEGIN
      INSERT INTO xt VALUES (i, 'sub');
      IF i % 3 = 0 THEN
        RAISE EXCEPTION 'roll back';
      END IF;
    EXCEPTION WHEN raise_exception THEN
      NULL;
    END;
  END LOOP;
END
$$;
SELECT count(*) AS lines,
       count(*) FILTER (WHERE d->>'kind' = 'insert') AS inserts,
       bool_and(d->>'kind' <> 'insert' OR (d->'new'->>'id')::int % 3 <> 0) AS no_rolled_back,
       max((d->>'changes')::int) AS changes
FROM (SELECT decode::jsonb AS d FROM decode('xact')) s;

-- skip-empty-xacts off: empty transactions (DDL only, or only rolled-back
-- changes) get begin and commit with zero changes; non-empty ones are as
-- before
CREATE TABLE xt_empty (id int);
BEGIN;
SAVEPOINT a;
INSERT INTO xt VALUES (20, 'rolled back');
ROLLBACK TO SAVEPOINT a;
COMMIT;
INSERT INTO xt VALUES (21, 'not empty');
SELECT * FROM decode('xact', 'skip-empty-xacts', 'off');
SELECT * FROM decode('xact', 'skip-empty-xacts', 'on');

-- decoding inside a transaction that has written: its own uncommitted
-- changes are not decoded, and decoding in a transaction that then rolls
-- back still consumes what it returned
BEGIN;
INSERT INTO xt VALUES (30, 'committed before');
COMMIT;
BEGIN;
INSERT INTO xt VALUES (31, 'in the decoding transaction');
SELECT * FROM decode('xact');
ROLLBACK;
SELECT * FROM decode('xact');

SELECT pg_drop_replication_slot('xact');
DROP TABLE xt, xt_empty;
