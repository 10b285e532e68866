-- Views without a key (bags) find the rows to delete by one column: the
-- first whose type has an equality, through a hash index, which takes
-- values of any size.  json, xml and point have no equality; a long text
-- value does not fit a B-tree entry.
SET client_min_messages = warning;
CREATE TABLE bl (j json, p point, body text, n int);
INSERT INTO bl VALUES ('{"a": 1}', '(1,1)', 'short', 1), ('{"a": 1}', '(1,1)', 'short', 1),
                      ('{"a": 2}', '(2,2)', 'other', 2);
RESET client_min_messages;
SELECT kappa.create_view('bl_json', 'SELECT j, p, n FROM bl');
SELECT kappa.create_view('bl_body', 'SELECT body, n FROM bl');
SELECT indexrelid::regclass AS index, am.amname
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
 WHERE indrelid IN ('bl_json'::regclass, 'bl_body'::regclass) ORDER BY 1;
-- one of two equal rows goes, the other stays
DELETE FROM bl WHERE ctid = (SELECT min(ctid) FROM bl WHERE n = 1);
UPDATE bl SET j = '{"a": 3}', n = 3 WHERE n = 2;
-- a value far past a B-tree entry's size, incompressible
INSERT INTO bl SELECT '{}', '(0,0)', string_agg(md5(g::text), ''), 4 FROM generate_series(1, 300) g;
UPDATE bl SET n = 5 WHERE n = 4;
SELECT kappa.wait('bl_json') AND kappa.wait('bl_body') AS waited;
SELECT name, state FROM kappa.views WHERE name LIKE 'public.bl_%' ORDER BY 1;
SELECT count(*) AS differences FROM kappa.verify('bl_json');
SELECT count(*) AS differences FROM kappa.verify('bl_body');
SELECT j::text, p::text, n FROM bl_json ORDER BY n;
SELECT length(body), n FROM bl_body ORDER BY n;
SET client_min_messages = warning;
SELECT kappa.drop_view('bl_json'), kappa.drop_view('bl_body');
DROP TABLE bl;
