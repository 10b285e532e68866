-- kappa.wait's timeout: an interval too long to add to the current time
-- waits until the statement is cancelled instead of overflowing into an
-- immediate false; a negative one is an error.
\set VERBOSITY terse
CREATE TABLE wt (id int PRIMARY KEY, v int);
INSERT INTO wt VALUES (1, 1);
SELECT kappa.create_view('wv', 'SELECT id, v FROM wt');
INSERT INTO wt VALUES (2, 2);
SELECT kappa.wait('wv');
SELECT * FROM wv ORDER BY id;
-- a reachable target: true at once, however long the timeout
UPDATE wt SET v = 3 WHERE id = 2;
SELECT kappa.wait('wv', timeout => '300000 years');
SELECT * FROM wv ORDER BY id;

-- an unreachable target: the wait ends only with the statement timeout
SET statement_timeout = '1s';
SELECT kappa.wait('wv', 'FFFFFFFF/FFFFFFFF', '300000 years');
-- days alone beyond the range of microseconds
SELECT kappa.wait('wv', 'FFFFFFFF/FFFFFFFF', '2147483647 days');
-- the largest interval, less the most negative days: still positive
SELECT kappa.wait('wv', 'FFFFFFFF/FFFFFFFF', '178000000 years -2147483648 days');
RESET statement_timeout;
-- a short timeout still ends the wait with false
SELECT kappa.wait('wv', 'FFFFFFFF/FFFFFFFF', '10ms');
SELECT kappa.wait('wv', 'FFFFFFFF/FFFFFFFF', '0');

-- negative timeouts, however large
SELECT kappa.wait('wv', timeout => '-1s');
SELECT kappa.wait('wv', timeout => '1 day -25 hours');
SELECT kappa.wait('wv', timeout => '-300000 years');
SELECT kappa.wait('wv', timeout => '-178000000 years 2147483647 days');
SELECT kappa.wait('wv', 'FFFFFFFF/FFFFFFFF', '-2147483648 days');
RESET statement_timeout;

-- in a transaction that wrote a source: the wait cannot bring that change,
-- and says so
BEGIN;
INSERT INTO wt VALUES (3, 3);
SELECT kappa.wait('wv');
SELECT count(*) AS own_change_seen FROM wv WHERE id = 3;
ROLLBACK;

SELECT kappa.drop_view('wv');
DROP TABLE wt;
