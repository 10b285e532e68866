-- Errors in a derived view's query point into the query (shown as QUERY),
-- not into the statement that calls kappa.create_view.
\set VERBOSITY default
CREATE TABLE ept (id int PRIMARY KEY, v int, t text);
-- analysis errors
SELECT kappa.create_view('ep1', 'SELECT id, nosuchcol FROM ept');
SELECT kappa.create_view('ep1', 'SELECT id FROM nosuchtable');
SELECT kappa.create_view('ep1', 'SELECT id, v + t AS w FROM ept');
SELECT kappa.create_view('ep1', 'SELECT id, nosuchfunc(v) AS w FROM ept');
-- syntax errors
SELECT kappa.create_view('ep1', 'SELECT id, FROM ept');
SELECT kappa.create_view('ep1', 'SELECT id FROM ept WHERE');
SELECT kappa.create_view('ep1', 'SELECT id FROM ept WHERE v = ''unterminated');
-- the position counts lines and characters of the query
SELECT kappa.create_view('ep1', E'SELECT id,\n       v\n  FROM ept\n WHERE nosuchcol > 0');
SELECT kappa.create_view('ep1', 'SELECT id, v AS "äöü", nosuchcol FROM ept');
-- an error without a position is unchanged
SELECT kappa.create_view('ep1', 'SELECT id FROM ept LIMIT 1');
SELECT kappa.create_view('ep1', 'DELETE FROM ept');
-- an error of the calling statement itself points into that statement
SELECT kappa.create_view('ep1', 'SELECT id FROM ept') + nosuchcol;
-- a query without errors, and an error of the next statement
SELECT kappa.create_view('ep1', 'SELECT id, v FROM ept');
SELECT 1 + nosuchcol FROM ept;
SELECT kappa.drop_view('ep1');
DROP TABLE ept;
