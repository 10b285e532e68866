-- Streaming of in-progress transactions (option "streaming"): a
-- transaction larger than logical_decoding_work_mem (64kB here) is sent in
-- blocks (stream_start .. stream_stop) before its commit or abort is
-- decoded, then finished by stream_commit or stream_abort.
\set VERBOSITY terse
SELECT 'init' FROM pg_create_logical_replication_slot('stream', 'pg_kappa');
CREATE TABLE st (id int PRIMARY KEY, v text);

-- sdecode: decode with streaming on, validating what decode() validates
-- and, per streamed xid, that blocks open and close in turn, that every
-- streamed change carries an xid, and that stream_commit counts the changes
-- streamed for that xid since its first block (a stream_abort of the whole
-- transaction discards them).  decode() itself counts across
-- transactions, which streamed output does not allow.  xids are replaced
-- by "top" (the streamed transaction's) or "sub" (a subtransaction's) so
-- the output is stable.
CREATE FUNCTION sdecode(slot name, VARIADIC opts text[] DEFAULT '{}')
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  line text;
  d jsonb;
  top text := '-';
  open_block text := NULL;
  in_xact bool := false;
  n int := 0;
  counts jsonb := '{}';
BEGIN
  FOR line IN
    SELECT data FROM pg_logical_slot_get_changes(slot, NULL, NULL,
      VARIADIC array['include-lsn', 'off', 'include-timestamp', 'off',
                     'include-xids', 'off', 'streaming', 'on'] || opts)
  LOOP
    d := line::jsonb;
    CASE d->>'kind'
      WHEN 'stream_start' THEN
        IF open_block IS NOT NULL OR in_xact THEN
          RAISE EXCEPTION 'stream_start inside a block or transaction: %', line;
        END IF;
        open_block := d->>'xid';
        top := open_block;
        IF (d->>'first')::bool THEN
          counts := counts || jsonb_build_object(open_block, 0);
        ELSIF NOT counts ? open_block THEN
          RAISE EXCEPTION 'first block of % not seen: %', open_block, line;
        END IF;
      WHEN 'stream_stop' THEN
        IF open_block IS DISTINCT FROM d->>'xid' THEN
          RAISE EXCEPTION 'stream_stop without its stream_start: %', line;
        END IF;
        open_block := NULL;
      WHEN 'stream_commit', 'stream_prepare' THEN
        IF open_block IS NOT NULL OR in_xact THEN
          RAISE EXCEPTION '% inside a block or transaction: %', d->>'kind', line;
        END IF;
        IF (d->>'changes')::int <> (counts->>(d->>'xid'))::int THEN
          RAISE EXCEPTION '% says % changes, % were streamed', d->>'kind',
            d->>'changes', counts->>(d->>'xid');
        END IF;
        counts := counts - (d->>'xid');
        top := d->>'xid';
      WHEN 'stream_abort' THEN
        IF open_block IS NOT NULL OR in_xact THEN
          RAISE EXCEPTION 'stream_abort inside a block or transaction: %', line;
        END IF;
        IF d->>'xid' = d->>'subxid' THEN
          counts := counts - (d->>'xid');
        END IF;
        top := d->>'xid';
      WHEN 'begin' THEN
        IF open_block IS NOT NULL OR in_xact THEN
          RAISE EXCEPTION 'begin inside a block or transaction: %', line;
        END IF;
        in_xact := true;
        n := 0;
      WHEN 'commit' THEN
        IF NOT in_xact OR (d->>'changes')::int <> n THEN
          RAISE EXCEPTION 'commit without begin, or % changes, % emitted', d->>'changes', n;
        END IF;
        in_xact := false;
      WHEN 'message' THEN
        IF (d->>'transactional')::bool AND open_block IS NULL AND NOT in_xact THEN
          RAISE EXCEPTION 'transactional message outside a transaction: %', line;
        END IF;
      ELSE
        IF open_block IS NULL AND NOT in_xact THEN
          RAISE EXCEPTION 'change outside a transaction: %', line;
        END IF;
    END CASE;
    IF d->>'kind' IN ('insert', 'update', 'delete', 'truncate')
       OR (d->>'kind' = 'message' AND (d->>'transactional')::bool) THEN
      IF open_block IS NOT NULL THEN
        IF NOT d ? 'xid' THEN
          RAISE EXCEPTION 'streamed change without xid: %', line;
        END IF;
        counts := jsonb_set(counts, ARRAY[open_block], to_jsonb((counts->>open_block)::int + 1));
      ELSE
        n := n + 1;
      END IF;
    END IF;
    line := regexp_replace(line, '"(xid|subxid)":' || top || '([,}])', '"\1":"top"\2', 'g');
    line := regexp_replace(line, '"(xid|subxid)":\d+', '"\1":"sub"', 'g');
    RETURN NEXT line;
  END LOOP;
  IF open_block IS NOT NULL OR in_xact THEN
    RAISE EXCEPTION 'output ends inside a block or transaction';
  END IF;
END
$$;
-- o holds the last sdecode output; summary() lists its distinct lines in
-- order, with ids elided and counted, stream_commit's checksum elided (it
-- covers the changes' xids, which depend on what ran before), and without the
-- stream_start/stream_stop pairs between the first and the last block
-- (how many there are depends on memory accounting; sdecode checked them)
CREATE TEMP TABLE o (r int, l text);
CREATE FUNCTION grab(slot name, VARIADIC opts text[] DEFAULT '{}') RETURNS bigint
LANGUAGE sql AS $$
  DELETE FROM o;
  INSERT INTO o SELECT row_number() OVER (), l FROM sdecode(slot, VARIADIC opts) l;
  SELECT count(*) FROM o;
$$;
CREATE FUNCTION summary() RETURNS TABLE (line text, n bigint) LANGUAGE sql AS $$
  SELECT line, count(*) FROM (
    SELECT r, regexp_replace(regexp_replace(l, '"(new|old)":\{"id":\d+', '"\1":{"id":…'),
                             '("kind":"stream_commit".*"checksum":)"[0-9a-f]{8}"', '\1"…"') AS line FROM o
    WHERE NOT (l::jsonb->>'kind' = 'stream_start' AND l::jsonb->>'first' = 'false')
      AND NOT (l::jsonb->>'kind' = 'stream_stop' AND r < (SELECT max(r) FROM o WHERE l::jsonb->>'kind' = 'stream_stop'))) s
  GROUP BY 1 ORDER BY min(r);
$$;

-- a small transaction is not streamed
INSERT INTO st VALUES (1, 'small');
-- a large one is, and committed
BEGIN;
INSERT INTO st SELECT g, 'large' FROM generate_series(100, 3099) g;
COMMIT;
SELECT grab('stream') > 3005 AS lines;
SELECT * FROM summary();
SELECT count(*) > 1 AS several_blocks FROM o WHERE l ~ '"kind":"stream_start"';

-- stream blocks are the streamed changes in order
BEGIN;
INSERT INTO st SELECT g, 'large' FROM generate_series(5000, 7999) g;
UPDATE st SET v = 'updated' WHERE id BETWEEN 5000 AND 5999;
DELETE FROM st WHERE id BETWEEN 7000 AND 7999;
COMMIT;
SELECT grab('stream') > 5000 AS lines;
SELECT * FROM summary();
SELECT bool_and(CASE d->>'kind' WHEN 'insert' THEN (d->'new'->>'id')::int = 5000 + n - 1
                                WHEN 'update' THEN (d->'new'->>'id')::int = 5000 + n - 3001
                                ELSE (d->'old'->>'id')::int = 7000 + n - 4001 END) AS in_order
FROM (SELECT row_number() OVER (ORDER BY r) AS n, l::jsonb AS d FROM o
      WHERE l ~ '"kind":"(insert|update|delete)"') x;

-- a rolled-back subtransaction whose changes were already streamed:
-- stream_abort names it; the consumer discards those changes; the commit
-- counts every change that was emitted
BEGIN;
INSERT INTO st SELECT g, 'top' FROM generate_series(10000, 10099) g;
SAVEPOINT s;
INSERT INTO st SELECT g, 'rolled back' FROM generate_series(10100, 13099) g;
ROLLBACK TO SAVEPOINT s;
INSERT INTO st VALUES (20000, 'after');
COMMIT;
SELECT grab('stream') > 100 AS lines;
SELECT line, CASE WHEN line ~ 'rolled back' THEN NULL ELSE n END AS n,
       line ~ 'rolled back' AND n BETWEEN 1 AND 3000 AS some_rolled_back
FROM summary() WHERE line !~ 'stream_commit';
SELECT (l::jsonb->>'changes')::int = 101 + (SELECT count(*) FROM o WHERE l ~ 'rolled back') AS changes_ok
FROM o WHERE l ~ 'stream_commit';

-- a transaction that aborted before it is decoded: the server stops
-- streaming it once it notices the abort (usually before anything is sent);
-- whatever was sent is ended by a stream_abort of the whole transaction
-- (test/isolation/specs/plugin_stream_abort.spec decodes one while it is
-- in progress)
BEGIN;
INSERT INTO st SELECT g, 'aborted' FROM generate_series(30000, 32999) g;
ROLLBACK;
SELECT grab('stream') >= 0 AS decoded;
SELECT count(*) FILTER (WHERE l ~ '"kind":"(stream_commit|begin|commit)"') = 0 AS nothing_committed,
       count(*) = 0 OR bool_or(l = '{"kind":"stream_abort","xid":"top","subxid":"top"}') AS ended_by_abort
FROM o;

-- DDL and a transactional message inside a streamed transaction; a
-- non-transactional message is not part of it
BEGIN;
INSERT INTO st SELECT g, 'before ddl' FROM generate_series(40000, 41499) g;
ALTER TABLE st ADD COLUMN w int DEFAULT 7;
SELECT 'msg' FROM pg_logical_emit_message(true, 'p', 'in the transaction');
SELECT 'msg' FROM pg_logical_emit_message(false, 'p', 'not transactional');
INSERT INTO st SELECT g, 'after ddl', 8 FROM generate_series(41500, 42999) g;
COMMIT;
-- (a transaction whose commit record ends where the next call starts may
-- be streamed again and then aborted by the server; one more transaction
-- keeps this output stable)
INSERT INTO st VALUES (43000, 'small', 9);
SELECT grab('stream') > 3000 AS lines;
SELECT * FROM summary() WHERE line !~ '"transactional":false';
SELECT l FROM o WHERE l ~ '"transactional":false';

-- TOASTed values in a streamed transaction are written in full
ALTER TABLE st ALTER COLUMN v SET STORAGE EXTERNAL;
BEGIN;
INSERT INTO st SELECT g, repeat(md5(g::text), 100), 1 FROM generate_series(50000, 50049) g;
COMMIT;
SELECT grab('stream') > 50 AS lines;
SELECT count(*) FILTER (WHERE d->>'kind' = 'insert') AS inserts,
       bool_and(d->>'kind' <> 'insert' OR d->'new'->>'v' = repeat(md5(d->'new'->>'id'), 100)) AS full_values,
       sum((d->>'changes')::int) AS changes,
       count(*) FILTER (WHERE d->>'kind' = 'stream_start') > 1 AS streamed
FROM (SELECT l::jsonb AS d FROM o) s;

-- a streamed transaction whose changes are all filtered out writes nothing
BEGIN;
INSERT INTO st SELECT g, 'filtered', 1 FROM generate_series(60000, 62999) g;
COMMIT;
SELECT grab('stream', 'tables', 'other.*');
BEGIN;
INSERT INTO st SELECT g, 'filtered', 1 FROM generate_series(63000, 65999) g;
COMMIT;
SELECT grab('stream', 'actions', 'delete');

-- with skip-empty-xacts off, empty blocks are written too
BEGIN;
INSERT INTO st SELECT g, 'filtered', 1 FROM generate_series(66000, 68999) g;
COMMIT;
SELECT grab('stream', 'tables', 'other.*', 'skip-empty-xacts', 'off') > 2 AS lines;
SELECT * FROM summary();

-- without the option, the same transaction is decoded at commit
BEGIN;
INSERT INTO st SELECT g, 'not streamed', 1 FROM generate_series(70000, 72999) g;
COMMIT;
SELECT line, n FROM (SELECT l AS line, count(*) AS n, min(r) AS r
  FROM (SELECT row_number() OVER () AS r,
               regexp_replace(l, '"new":\{"id":\d+,', '"new":{"id":…,') AS l
        FROM decode('stream') l) s GROUP BY 1) t ORDER BY r;

SELECT stream_txns > 0 AS streamed, stream_count > stream_txns AS blocks
FROM pg_stat_replication_slots WHERE slot_name = 'stream';
SELECT pg_drop_replication_slot('stream');
DROP TABLE st;
DROP FUNCTION summary, grab, sdecode;
DROP TABLE o;
