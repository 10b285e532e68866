-- TOASTed values: written in full when inserted or changed; an unchanged
-- TOASTed value is not in the WAL, so it is left out of "new" and named in
-- "unchanged_toast", never faked.
\set VERBOSITY terse
SELECT 'init' FROM pg_create_logical_replication_slot('toast', 'pg_kappa');
-- a and b are stored out of line uncompressed, c compressed (inline or
-- out of line), n is small
CREATE TABLE tt (id int PRIMARY KEY, n int, a text, b text, c text);
ALTER TABLE tt ALTER COLUMN a SET STORAGE EXTERNAL, ALTER COLUMN b SET STORAGE EXTERNAL;
-- big(k, len): a deterministic string of len characters that pglz cannot
-- compress much
CREATE FUNCTION big(k int, len int) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT left(string_agg(md5((k * 1000 + i)::text), ''), len) FROM generate_series(0, len / 32) i $$;

INSERT INTO tt VALUES (1, 0, big(1, 3000), big(2, 5000), repeat('c', 10000));
INSERT INTO tt VALUES (2, 0, 'short', NULL, big(3, 100000));
SELECT pg_column_size(a) AS a_size, pg_column_size(c) < 10000 AS c_compressed FROM tt WHERE id = 1;
-- what the inserts wrote, compared with the table
SELECT d->>'kind' AS kind, d->'new'->>'id' AS id,
       (d->'new'->>'a') IS NOT DISTINCT FROM t.a AS a_ok,
       (d->'new'->>'b') IS NOT DISTINCT FROM t.b AS b_ok,
       (d->'new'->>'c') IS NOT DISTINCT FROM t.c AS c_ok,
       d ? 'unchanged_toast' AS has_unchanged
FROM (SELECT decode::jsonb AS d FROM decode('toast')) s
JOIN tt t ON t.id = (d->'new'->>'id')::int ORDER BY 2;

-- an update that changes only n: a and b are unchanged and out of line
UPDATE tt SET n = 1 WHERE id = 1;
-- an update that changes a: a written in full, b unchanged
UPDATE tt SET a = big(4, 4000) WHERE id = 1;
-- an update that changes the key: the out-of-line values are still not in
-- the WAL (the new row version points to the same TOAST data)
UPDATE tt SET id = 10 WHERE id = 1;
-- a short value replacing an out-of-line one, and back
UPDATE tt SET b = 'now short' WHERE id = 10;
UPDATE tt SET n = 2 WHERE id = 10;
UPDATE tt SET b = big(5, 3000) WHERE id = 10;
-- the compressed column c of row 2 is out of line too
UPDATE tt SET n = 3 WHERE id = 2;
DELETE FROM tt WHERE id = 10;
SELECT d->>'kind' AS kind, d->'old' AS old, d->'new'->'id' AS id, d->'new'->'n' AS n,
       left(d->'new'->>'a', 12) AS a, left(d->'new'->>'b', 12) AS b, length(d->'new'->>'c') AS c_len,
       d->'unchanged_toast' AS unchanged_toast
FROM (SELECT decode::jsonb AS d FROM decode('toast')) s WHERE d ? 'new' OR d ? 'old';

-- full values equal the table's
UPDATE tt SET a = big(6, 9000), c = big(7, 50000) WHERE id = 2;
SELECT (d->'new'->>'a') = big(6, 9000) AS a_ok, (d->'new'->>'c') = big(7, 50000) AS c_ok,
       d->'unchanged_toast' AS unchanged_toast
FROM (SELECT decode::jsonb AS d FROM decode('toast')) s WHERE d->>'kind' = 'update';

-- REPLICA IDENTITY FULL: "old" has every value in full, also the TOASTed
-- ones; "new" still leaves unchanged TOASTed values out
ALTER TABLE tt REPLICA IDENTITY FULL;
UPDATE tt SET n = 4 WHERE id = 2;
DELETE FROM tt WHERE id = 2;
SELECT d->>'kind' AS kind,
       (d->'old'->>'a') = big(6, 9000) AS old_a_ok, (d->'old'->>'c') = big(7, 50000) AS old_c_ok,
       d->'old'->'n' AS old_n, d->'new'->'n' AS new_n, d->'new' ? 'a' AS new_has_a,
       d->'unchanged_toast' AS unchanged_toast
FROM (SELECT decode::jsonb AS d FROM decode('toast')) s WHERE d ? 'old';

-- include-types lists every column, also the left-out ones
INSERT INTO tt VALUES (3, 0, big(8, 3000), NULL, NULL);
UPDATE tt SET n = 5 WHERE id = 3;
SELECT d->>'kind' AS kind, d->'types' AS types, d->'unchanged_toast' AS unchanged_toast
FROM (SELECT decode::jsonb AS d FROM decode('toast', 'include-types', 'on')) s WHERE d->>'kind' = 'update';

SELECT pg_drop_replication_slot('toast');
DROP TABLE tt;
DROP FUNCTION big;
