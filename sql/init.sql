-- Setup shared by the regression tests that follow: the extension and a
-- decoding helper that validates what it returns.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION pg_kappa;
SELECT extname, extversion, nspname FROM pg_extension e
  JOIN pg_namespace n ON n.oid = e.extnamespace WHERE extname = 'pg_kappa';

-- decode(slot, options...) returns the slot's pending lines, after checking
-- that every line is a JSON object with a "kind", that begin/commit pairs
-- nest properly, and that each commit's "changes" equals the number of
-- change records between them.  Any violation raises an error, so a test
-- fails even where its expected output would not show the problem.  LSNs,
-- xids and times are turned off by default so the output is stable.
CREATE FUNCTION decode(slot name, VARIADIC opts text[] DEFAULT '{}')
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  line text;
  obj jsonb;
  open_kind text := NULL;
  n int := 0;
  block text;                 -- xid of the open stream block
  counts jsonb := '{}';       -- streamed xid -> changes streamed so far
BEGIN
  FOR line IN
    SELECT data FROM pg_logical_slot_get_changes(slot, NULL, NULL,
      VARIADIC array['include-lsn', 'off', 'include-timestamp', 'off',
                     'include-xids', 'off'] || opts)
  LOOP
    BEGIN
      obj := line::jsonb;
    EXCEPTION WHEN others THEN
      RAISE EXCEPTION 'not JSON: %', line;
    END;
    IF jsonb_typeof(obj) <> 'object' OR NOT obj ? 'kind' THEN
      RAISE EXCEPTION 'not a record object: %', line;
    END IF;
    CASE obj->>'kind'
      WHEN 'begin', 'begin_prepare', 'stream_start' THEN
        IF open_kind IS NOT NULL AND open_kind <> 'stream_start' THEN
          RAISE EXCEPTION '% inside an open %: %', obj->>'kind', open_kind, line;
        END IF;
        IF obj->>'kind' <> 'stream_start' THEN
          n := 0;
        ELSE
          block := obj->>'xid';
          IF (obj->>'first')::bool OR NOT counts ? block THEN
            counts := counts || jsonb_build_object(block, 0);
          END IF;
        END IF;
        open_kind := obj->>'kind';
      WHEN 'commit', 'prepare' THEN
        IF open_kind IS NULL OR open_kind = 'stream_start' THEN
          RAISE EXCEPTION '% without begin: %', obj->>'kind', line;
        END IF;
        IF (obj->>'changes')::int <> n THEN
          RAISE EXCEPTION 'commit says % changes, % were emitted', obj->>'changes', n;
        END IF;
        open_kind := NULL;
      WHEN 'stream_stop' THEN
        open_kind := NULL;
      WHEN 'stream_commit', 'stream_prepare' THEN
        IF (obj->>'changes')::int <> coalesce((counts->>(obj->>'xid'))::int, 0) THEN
          RAISE EXCEPTION 'stream commit says % changes, % were emitted', obj->>'changes',
            coalesce((counts->>(obj->>'xid'))::int, 0);
        END IF;
        counts := counts - (obj->>'xid');
      WHEN 'stream_abort' THEN
        IF obj->>'xid' = obj->>'subxid' THEN
          counts := counts - (obj->>'xid');
        END IF;
      WHEN 'insert', 'update', 'delete', 'truncate' THEN
        IF open_kind IS NULL THEN
          RAISE EXCEPTION 'change outside a transaction: %', line;
        END IF;
        IF open_kind = 'stream_start' THEN
          counts := jsonb_set(counts, ARRAY[block], to_jsonb((counts->>block)::int + 1));
        ELSE
          n := n + 1;
        END IF;
      WHEN 'message' THEN
        IF (obj->>'transactional')::bool THEN
          IF open_kind IS NULL THEN
            RAISE EXCEPTION 'transactional message outside a transaction: %', line;
          END IF;
          IF open_kind = 'stream_start' THEN
            counts := jsonb_set(counts, ARRAY[block], to_jsonb((counts->>block)::int + 1));
          ELSE
            n := n + 1;
          END IF;
        END IF;
      ELSE
        NULL;
    END CASE;
    RETURN NEXT line;
  END LOOP;
  IF open_kind IS NOT NULL AND open_kind <> 'stream_start' THEN
    RAISE EXCEPTION 'output ends inside an open %', open_kind;
  END IF;
END
$$;
