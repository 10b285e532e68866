/*-------------------------------------------------------------------------
 *
 * event_log.c
 *	  The hash-chained event log: appending batches to kappa.event_log,
 *	  pruning it by the captures' retention, and the guard that keeps
 *	  everyone else from writing it.
 *
 * Each row of kappa.event_log is one logged batch: the JSON records of
 * captured tables, one per line, exactly as the output plugin writes them
 * (begin, changes, commit with change count and CRC-32C), or, for a
 * snapshot taken by kappa.capture, one insert record per row.  The apply
 * worker appends the records of each batch in the same local transaction
 * that applies the batch to the views, so the log and the views never
 * disagree about what was applied; a batch whose records exceed
 * KAPPA_LOG_CHUNK_BYTES is split over several rows.
 *
 * The chain: row n carries prev_hash = hash of row n-1 and
 *
 *	  hash = SHA-256(prev_hash || header || events)
 *
 * where header is the text "batch_id|kind|first_lsn|last_lsn|txn_count|
 * change_count|tables|table_names|" with each value as its type's output
 * function prints it.  kappa.audit recomputes it with SQL's sha256(), so
 * an edit, a deleted row or two rows exchanged show up at the exact batch.
 * Appending takes a self-conflicting lock on the log, so the worker and
 * kappa.capture never read the same chain head.
 *
 * A change that could not be logged (its record is larger than
 * pg_kappa.max_event_bytes, or could not be written: change_sink.c notes it
 * in the batch) is never dropped silently: the batch's transaction marks
 * the table's capture failed (kappa.captures.state, failed_lsn, last_error),
 * and from that transaction on nothing more of the table is logged, so the
 * log holds a complete prefix of its changes.  kappa.status and the audit
 * report the failed capture until it is uncaptured.
 *
 * Pruning removes a prefix of the chain: the oldest rows whose every table
 * is captured with a retention that has passed (or no longer captured),
 * and records the last removed row's hash in kappa.event_log_pruned, where
 * the audit picks up the chain.
 *
 * After pg_dump and pg_restore: the guard lets a restore load the log (and
 * the record of pruning) into a database whose log is empty and where
 * nothing is captured, and notes in kappa.restore_pending that the log was
 * restored.  The first capture afterwards (kappa.restore, or kappa.capture)
 * appends a "restore" row: no records, at the new database's WAL position.
 * The chain runs through it unbroken, but the WAL positions (and table
 * OIDs) of the rows before it are the old database's, so LSN order is
 * checked, and what is already logged is judged, from the latest restore
 * row on.  Pruning matches the tables of rows before it to captures by name.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "port/pg_crc32c.h"
#include "replication/origin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_log_guard);

#define PRUNE_EVERY_MS 10000
/* the longest the apply worker waits for a lock to prune the log */
#define PRUNE_LOCK_TIMEOUT_MS 100

/* Which changes of a captured table the log takes */
typedef struct KappaCaptureRange
{
	Oid			relid;			/* hash key */
	XLogRecPtr	start_lsn;		/* commits after its snapshot */
	XLogRecPtr	end_lsn;		/* and before its capture failed, or 0 */
} KappaCaptureRange;

/* Is the event log there (the extension's SQL objects may be older)? */
bool
kappa_log_available(void)
{
	Oid			nsp = get_namespace_oid("kappa", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("captures", nsp));
}

/*
 * Does kappa.captures say which captures failed (the extension's SQL
 * objects may be older)?  The event log must be available.
 */
bool
kappa_log_has_capture_state(void)
{
	Oid			relid = get_relname_relid("captures", get_namespace_oid("kappa", false));

	return OidIsValid(relid) && get_attnum(relid, "failed_lsn") != InvalidAttrNumber;
}

/*
 * The apply worker's periodic jobs on the event log (pruning, the audit
 * schedule) run in a transaction of their own, with a current now(), a
 * snapshot and SPI.  Returns false, with no transaction open, when the
 * extension's SQL objects predate the event log.
 */
bool
kappa_log_job_begin(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (!kappa_log_available())
	{
		CommitTransactionCommand();
		return false;
	}
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	return true;
}

void
kappa_log_job_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

void
kappa_log_chunk_init(KappaLogChunk *chunk)
{
	initStringInfo(&chunk->events);
	chunk->first_lsn = InvalidXLogRecPtr;
	chunk->last_lsn = InvalidXLogRecPtr;
	chunk->ntxns = 0;
	chunk->nchanges = 0;
	chunk->tables = NIL;
	chunk->names = NIL;
}

void
kappa_log_chunk_add_table(KappaLogChunk *chunk, Oid relid, const char *name)
{
	ListCell   *lc1,
			   *lc2;

	forboth(lc1, chunk->tables, lc2, chunk->names)
	{
		if (lfirst_oid(lc1) == relid && strcmp(lfirst(lc2), name) == 0)
			return;
	}
	chunk->tables = lappend_oid(chunk->tables, relid);
	chunk->names = lappend(chunk->names, pstrdup(name));
}

/*
 * The name the log keeps of a table (its rows' table_names, kappa.captures)
 * and readers look records up by: schema and table quoted as needed,
 * whatever the session's quote_all_identifiers says, so that a writer and
 * a reader of the log always spell a name alike.
 */
char *
kappa_log_table_name(const char *nspname, const char *relname)
{
	bool		save = quote_all_identifiers;
	char	   *name;

	quote_all_identifiers = false;
	name = quote_qualified_identifier(nspname, relname);
	quote_all_identifiers = save;
	return name;
}

/*
 * A log row written before pg_kappa 0.9, which keeps its tables' names
 * apart: a record's name stands for two of its tables, and which one
 * wrote it is not known.  Its readers refuse it rather than guess.
 */
void
kappa_log_name_ambiguous(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot tell which table a logged record of %s belongs to", name),
			 errdetail("Two tables of its log row were logged under that name: one was renamed and the other took its name within one batch."),
			 errhint("Replay from a later LSN, or capture the tables again and replay from there.")));
}

/*
 * Would the chunk's tables hold another table under name, or relid under
 * another name?
 */
static bool
chunk_names_clash(KappaLogChunk *chunk, Oid relid, const char *name)
{
	ListCell   *lc1,
			   *lc2;

	forboth(lc1, chunk->tables, lc2, chunk->names)
	{
		if ((lfirst_oid(lc1) == relid) != (strcmp(lfirst(lc2), name) == 0))
			return true;
	}
	return false;
}

static void
chunk_lsn(KappaLogChunk *chunk, XLogRecPtr lsn)
{
	if (chunk->first_lsn == InvalidXLogRecPtr || lsn < chunk->first_lsn)
		chunk->first_lsn = lsn;
	if (lsn > chunk->last_lsn)
		chunk->last_lsn = lsn;
}

/* The OID of kappa.event_log, or InvalidOid.  In a transaction. */
Oid
kappa_event_log_relid(void)
{
	Oid			nsp = get_namespace_oid("kappa", true);

	return OidIsValid(nsp) ? get_relname_relid("event_log", nsp) : InvalidOid;
}

/* The log is appended by one transaction at a time.  SPI connected. */
void
kappa_log_lock(void)
{
	if (SPI_execute("LOCK TABLE kappa.event_log IN SHARE ROW EXCLUSIVE MODE",
					false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not lock kappa.event_log");
}

/*
 * Run step(arg) for the apply worker with lock_timeout at timeout_ms, in a
 * subtransaction: false when it waited longer for a lock (and did
 * nothing).  Any table owner may capture a table, and kappa.capture holds
 * the log's lock until its transaction ends, which may be never (a
 * transaction left open, or prepared); so may a capture's row in
 * kappa.captures be locked by its owner's transaction.  The worker must
 * not wait for either with every view.  SPI connected.
 */
static bool
run_bounded(void (*step) (void *arg), void *arg, int timeout_ms)
{
	int			nestlevel = NewGUCNestLevel();
	char		value[32];
	ErrorData  *edata;

	snprintf(value, sizeof(value), "%d", Max(timeout_ms, 1));
	(void) set_config_option("lock_timeout", value, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	edata = kappa_try_in_subxact(step, arg, CurrentMemoryContext);
	AtEOXact_GUC(true, nestlevel);
	if (edata == NULL)
		return true;
	if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
		ReThrowError(edata);
	FreeErrorData(edata);
	return false;
}

/*
 * Where the log ends: the last LSN its rows cover.  After a restart the
 * worker decodes again what it applied but had not confirmed yet: what
 * the log already covers is not logged twice.  Only rows since the latest
 * restore row count (WAL positions before it are another database's), and
 * the record of pruning only when no restore row is left and its position
 * is not ahead of this database's WAL.  SPI connected.
 */
static XLogRecPtr
log_end(void)
{
	bool		isnull;
	Datum		d;

	if (SPI_execute("WITH m AS (SELECT COALESCE(max(batch_id), 0) AS first FROM kappa.event_log"
					"            WHERE kind = 'restore')"
					" SELECT GREATEST((SELECT max(l.last_lsn) FROM kappa.event_log l, m"
					"                   WHERE l.kind IN ('batch', 'restore') AND l.batch_id >= m.first),"
					"                 (SELECT max(p.last_lsn) FROM kappa.event_log_pruned p, m"
					"                   WHERE m.first = 0"
					"                     AND p.last_lsn <= pg_catalog.pg_current_wal_insert_lsn()))",
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.event_log");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? InvalidXLogRecPtr : DatumGetLSN(d);
}

/* Does the extension have kappa.event_log_head (0.9 and later)? */
static bool
log_has_head(void)
{
	Oid			nsp = get_namespace_oid("kappa", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("event_log_head", nsp));
}

static void
sha256_update(pg_cryptohash_ctx *ctx, const void *data, size_t len)
{
	if (pg_cryptohash_update(ctx, data, len) < 0)
		elog(ERROR, "could not compute SHA-256 hash: %s", pg_cryptohash_error(ctx));
}

/*
 * Append one row to the chain.  The caller holds the lock from
 * kappa_log_lock and has SPI connected.
 */
void
kappa_log_append(const char *kind, KappaLogChunk *chunk)
{
	int64		prev_id = 0;
	bytea	   *prev_hash = NULL;
	bool		isnull;
	int			n = list_length(chunk->tables);
	Datum	   *oids = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *names = palloc(sizeof(Datum) * Max(n, 1));
	Datum		tables;
	Datum		table_names;
	char	   *header;
	pg_cryptohash_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	bytea	   *hash;
	Oid			argtypes[11] = {INT8OID, TEXTOID, LSNOID, LSNOID, INT4OID, INT8OID,
	OIDARRAYOID, TEXTARRAYOID, TEXTOID, BYTEAOID, BYTEAOID};
	Datum		values[11];
	bool		head;

	/*
	 * The chain's head: the last row appended, as kappa.event_log_head
	 * keeps it (so that a row deleted from the end shows as missing from
	 * the next); without that row (before 0.9, or after a restore, which
	 * leaves it out), the last row, or where pruning left the chain.
	 */
	head = log_has_head();
	if (head &&
		SPI_execute("SELECT batch_id, hash FROM kappa.event_log_head", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.event_log_head");
	if ((!head || SPI_processed == 0) &&
		SPI_execute("SELECT batch_id, hash FROM kappa.event_log ORDER BY batch_id DESC LIMIT 1",
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.event_log");
	if (SPI_processed == 0 &&
		SPI_execute("SELECT last_batch, last_hash FROM kappa.event_log_pruned ORDER BY last_batch DESC LIMIT 1",
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.event_log_pruned");
	if (SPI_processed == 1)
	{
		prev_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		prev_hash = DatumGetByteaPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
	else
	{
		prev_hash = palloc(VARHDRSZ);
		SET_VARSIZE(prev_hash, VARHDRSZ);
	}

	for (int i = 0; i < n; i++)
	{
		oids[i] = ObjectIdGetDatum(list_nth_oid(chunk->tables, i));
		names[i] = CStringGetTextDatum((char *) list_nth(chunk->names, i));
	}
	tables = PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	table_names = PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));

	header = psprintf(INT64_FORMAT "|%s|%X/%X|%X/%X|%d|" INT64_FORMAT "|%s|%s|",
					  prev_id + 1, kind,
					  LSN_FORMAT_ARGS(chunk->first_lsn), LSN_FORMAT_ARGS(chunk->last_lsn),
					  chunk->ntxns, chunk->nchanges,
					  OidOutputFunctionCall(F_ARRAY_OUT, tables),
					  OidOutputFunctionCall(F_ARRAY_OUT, table_names));

	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "could not initialize SHA-256: %s", pg_cryptohash_error(ctx));
	sha256_update(ctx, VARDATA_ANY(prev_hash), VARSIZE_ANY_EXHDR(prev_hash));
	sha256_update(ctx, header, strlen(header));
	sha256_update(ctx, chunk->events.data, chunk->events.len);
	if (pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute SHA-256 hash: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	hash = palloc(VARHDRSZ + sizeof(digest));
	SET_VARSIZE(hash, VARHDRSZ + sizeof(digest));
	memcpy(VARDATA(hash), digest, sizeof(digest));

	values[0] = Int64GetDatum(prev_id + 1);
	values[1] = CStringGetTextDatum(kind);
	values[2] = LSNGetDatum(chunk->first_lsn);
	values[3] = LSNGetDatum(chunk->last_lsn);
	values[4] = Int32GetDatum(chunk->ntxns);
	values[5] = Int64GetDatum(chunk->nchanges);
	values[6] = tables;
	values[7] = table_names;
	values[8] = PointerGetDatum(cstring_to_text_with_len(chunk->events.data, chunk->events.len));
	values[9] = PointerGetDatum(prev_hash);
	values[10] = PointerGetDatum(hash);
	if (SPI_execute_with_args("INSERT INTO kappa.event_log (batch_id, kind, first_lsn, last_lsn,"
							  " txn_count, change_count, tables, table_names, events, prev_hash, hash)"
							  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
							  11, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not append to kappa.event_log");
	pfree(DatumGetPointer(values[8]));
	if (head)
	{
		Oid			headtypes[2] = {INT8OID, BYTEAOID};
		Datum		headvalues[2] = {values[0], values[10]};

		if (SPI_execute("DELETE FROM kappa.event_log_head", false, 0) != SPI_OK_DELETE ||
			SPI_execute_with_args("INSERT INTO kappa.event_log_head (batch_id, hash) VALUES ($1, $2)",
								  2, headtypes, headvalues, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not write kappa.event_log_head");
	}
}

/* Start a new chunk after flushing a full one. */
static void
flush_chunk(KappaLogChunk *chunk)
{
	if (chunk->events.len == 0)
		return;
	kappa_log_append("batch", chunk);
	pfree(chunk->events.data);
	list_free(chunk->tables);
	list_free_deep(chunk->names);
	kappa_log_chunk_init(chunk);
}

/* The "begin" record, as the output plugin writes it by default. */
static void
write_begin(StringInfo out, KappaLogTxn *t)
{
	char	   *origin;

	appendStringInfo(out, "{\"kind\":\"begin\",\"xid\":%u,\"lsn\":", t->xid);
	kappa_json_lsn(out, t->commit_lsn);
	appendStringInfoString(out, ",\"commit_time\":");
	kappa_json_time(out, t->commit_time);
	if (t->origin != InvalidRepOriginId &&
		replorigin_by_oid(t->origin, true, &origin))
	{
		appendStringInfoString(out, ",\"origin\":");
		kappa_json_cstring(out, origin);
	}
	appendStringInfoString(out, "}\n");
}

static void
write_commit(StringInfo out, KappaLogTxn *t, int64 nchanges, pg_crc32c crc)
{
	FIN_CRC32C(crc);
	appendStringInfo(out, "{\"kind\":\"commit\",\"xid\":%u,\"lsn\":", t->xid);
	kappa_json_lsn(out, t->commit_lsn);
	appendStringInfoString(out, ",\"end_lsn\":");
	kappa_json_lsn(out, t->end_lsn);
	appendStringInfoString(out, ",\"commit_time\":");
	kappa_json_time(out, t->commit_time);
	appendStringInfo(out, ",\"changes\":" INT64_FORMAT ",\"checksum\":\"%08x\"}\n",
					 nchanges, crc);
}

/*
 * Mark the captures that match where (SQL over kappa.captures) failed at
 * lsn, saying why, and forget them in the change sink: the log holds
 * their changes committed before lsn, and no later ones.  Returns how many
 * were marked.  SPI connected.
 */
static uint64
fail_captures(const char *where, XLogRecPtr lsn, const char *why)
{
	uint64		n;

	if (SPI_execute(psprintf("UPDATE kappa.captures SET state = 'failed', failed_lsn = '%X/%X', last_error = %s"
							 " WHERE %s AND failed_lsn IS NULL RETURNING relid",
							 LSN_FORMAT_ARGS(lsn), quote_literal_cstr(why), where),
					false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not update kappa.captures");
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		kappa_sink_forget_capture(DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																 SPI_tuptable->tupdesc, 1, &isnull)));
	}
	return n;
}

/*
 * Mark the captures of the batch's changes that could not be logged as
 * failed, from the first such transaction of each table on, and set their
 * end in captures.  Only failures the log would otherwise have recorded
 * count: of captured tables, after their snapshot and after what the log
 * already holds.
 */
static void
record_failures(HTAB *captures, XLogRecPtr logged_up_to)
{
	ListCell   *lc;

	foreach(lc, kappa_batch->log_failures)
	{
		KappaLogFailure *f = lfirst(lc);
		KappaCaptureRange *c = hash_search(captures, &f->relid, HASH_FIND, NULL);

		if (c == NULL || f->commit_lsn <= c->start_lsn || f->commit_lsn <= logged_up_to ||
			(c->end_lsn != InvalidXLogRecPtr && c->end_lsn <= f->commit_lsn))
			continue;

		/* the SQL objects predate failed captures: fail as before */
		if (!kappa_log_has_capture_state())
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("could not log a change of table %s", f->name),
					 errdetail("%s", f->message),
					 errhint("Update the extension with ALTER EXTENSION pg_kappa UPDATE, so that such a capture is marked failed instead.")));

		(void) fail_captures(psprintf("relid = %u", f->relid), f->commit_lsn, f->message);
		c->end_lsn = f->commit_lsn;
		ereport(WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("capture of table %s failed: %s", f->name, f->message),
				 errdetail("The event log holds the table's changes committed before %X/%X, and no later ones.",
						   LSN_FORMAT_ARGS(f->commit_lsn)),
				 errhint("Uncapture the table with kappa.uncapture and capture it again to start a new log of it.")));
	}
}

/* What kappa_log_give_up gives up, and why */
typedef struct GiveUp
{
	XLogRecPtr	lsn;
	const char *why;
} GiveUp;

static void
give_up_step(void *arg)
{
	GiveUp	   *g = arg;
	uint64		n = fail_captures("true", g->lsn, g->why);

	if (n > 0)
		ereport(WARNING,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg_plural("capture of " UINT64_FORMAT " table failed: %s",
								"capture of " UINT64_FORMAT " tables failed: %s",
								n, n, g->why),
				 errdetail("The event log holds their changes committed before %X/%X, and no later ones.",
						   LSN_FORMAT_ARGS(g->lsn)),
				 errhint("Uncapture each table with kappa.uncapture and capture it again to start a new log of it.")));
}

/*
 * Give up every capture at lsn, with the reason why: the log holds their
 * changes committed before it, none after (the apply worker, when the log
 * was held past pg_kappa.max_retained_wal).  False when a capture's row
 * stayed locked past pg_kappa.view_lock_timeout: nothing was given up.
 * SPI connected.
 */
bool
kappa_log_give_up(XLogRecPtr lsn, const char *why)
{
	GiveUp		g = {lsn, why};

	if (!kappa_log_has_capture_state())
		return true;
	return run_bounded(give_up_step, &g, kappa_view_lock_timeout);
}

static void write_batch_step(void *arg);

/*
 * Append the current batch's records of captured tables to the log.  Runs
 * in the transaction that applies the batch, with SPI connected.  Which
 * tables are captured, and since when, is read again here, under the lock:
 * records kept while the worker's list was being reloaded are filtered.
 * Captures the batch could not log are marked failed here too.
 *
 * False when the log's lock could not be had within
 * pg_kappa.view_lock_timeout (run_bounded): nothing is written.
 */
bool
kappa_log_write_batch(void)
{
	KappaBatch *b = kappa_batch;

	if ((b->log_lines == NULL || b->log_nlines == 0) && b->log_failures == NIL)
		return true;
	if (!kappa_log_available())
		return true;
	return run_bounded(write_batch_step, NULL, kappa_view_lock_timeout);
}

/* kappa_log_write_batch's work, under the log's lock */
static void
write_batch_step(void *arg)
{
	KappaBatch *b = kappa_batch;
	HTAB	   *captures;
	HASHCTL		ctl;
	TupleTableSlot *slot;
	KappaLogChunk chunk;
	ListCell   *txn_cell;
	KappaLogTxn *txn = NULL;
	bool		begun = false;
	int64		txn_changes = 0;
	pg_crc32c	crc = 0;
	XLogRecPtr	logged_up_to;
	char	   *name;

	kappa_log_lock();
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(KappaCaptureRange);
	ctl.hcxt = CurrentMemoryContext;
	captures = hash_create("pg_kappa captures", 16, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	if (SPI_execute(kappa_log_has_capture_state() ?
					"SELECT relid, start_lsn, failed_lsn FROM kappa.captures" :
					"SELECT relid, start_lsn, NULL::pg_catalog.pg_lsn FROM kappa.captures",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.captures");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		KappaCaptureRange *c = hash_search(captures, &relid, HASH_ENTER, NULL);
		Datum		end;

		c->start_lsn = DatumGetLSN(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		end = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull);
		c->end_lsn = isnull ? InvalidXLogRecPtr : DatumGetLSN(end);
	}
	if (hash_get_num_entries(captures) == 0)
		return;

	logged_up_to = log_end();
	record_failures(captures, logged_up_to);
	if (b->log_lines == NULL || b->log_nlines == 0)
		return;

	kappa_log_chunk_init(&chunk);
	slot = MakeSingleTupleTableSlot(kappa_log_lines_desc(), &TTSOpsMinimalTuple);
	txn_cell = list_head(b->log_txns);
	tuplestore_rescan(b->log_lines);
	for (;;)
	{
		bool		more = tuplestore_gettupleslot(b->log_lines, true, false, slot);
		Oid			relid = InvalidOid;
		XLogRecPtr	lsn = InvalidXLogRecPtr;
		KappaCaptureRange *c;
		text	   *line;

		if (more)
		{
			slot_getallattrs(slot);
			relid = DatumGetObjectId(slot->tts_values[0]);
			lsn = (XLogRecPtr) DatumGetInt64(slot->tts_values[1]);
		}

		/* the end of a transaction: its commit record */
		if (txn != NULL && (!more || lsn != txn->commit_lsn))
		{
			if (begun)
			{
				write_commit(&chunk.events, txn, txn_changes, crc);
				chunk.ntxns++;
				chunk_lsn(&chunk, txn->commit_lsn);
			}
			txn = NULL;
		}
		if (!more)
			break;
		if (txn == NULL)
		{
			/* transactions with records are listed in commit order */
			while (txn_cell != NULL &&
				   ((KappaLogTxn *) lfirst(txn_cell))->commit_lsn != lsn)
				txn_cell = lnext(b->log_txns, txn_cell);
			if (txn_cell == NULL)
				elog(ERROR, "pg_kappa event log: no transaction for commit %X/%X",
					 LSN_FORMAT_ARGS(lsn));
			txn = lfirst(txn_cell);
			begun = false;
			txn_changes = 0;
			INIT_CRC32C(crc);
		}

		c = hash_search(captures, &relid, HASH_FIND, NULL);
		if (c == NULL || lsn <= c->start_lsn || lsn <= logged_up_to ||
			(c->end_lsn != InvalidXLogRecPtr && lsn >= c->end_lsn))
			continue;

		/*
		 * Readers find a record's table by the name it was logged under,
		 * among the row's tables: in a row, no name may stand for two
		 * tables (a table renamed and another given its name within a
		 * batch), nor a table go by two names.  Such a record starts a new
		 * row.
		 */
		name = TextDatumGetCString(slot->tts_values[2]);
		if (chunk_names_clash(&chunk, relid, name))
			flush_chunk(&chunk);

		if (!begun)
		{
			write_begin(&chunk.events, txn);
			begun = true;
		}
		line = DatumGetTextPP(slot->tts_values[3]);
		appendBinaryStringInfo(&chunk.events, VARDATA_ANY(line), VARSIZE_ANY_EXHDR(line));
		COMP_CRC32C(crc, VARDATA_ANY(line), VARSIZE_ANY_EXHDR(line));
		COMP_CRC32C(crc, "\n", 1);
		appendStringInfoChar(&chunk.events, '\n');
		txn_changes++;
		chunk.nchanges++;
		chunk_lsn(&chunk, lsn);
		kappa_log_chunk_add_table(&chunk, relid, name);

		/* a big batch goes over several rows, even mid-transaction */
		if (chunk.events.len >= KAPPA_LOG_CHUNK_BYTES)
			flush_chunk(&chunk);
	}
	flush_chunk(&chunk);
	ExecDropSingleTupleTableSlot(slot);
	hash_destroy(captures);
}

/* SQL: has capture c's retention passed for log row l? */
#define RETENTION_PASSED \
	"(c.retain IS NOT NULL AND c.retain < " KAPPA_MAX_INTERVAL_SQL \
	" AND l.logged_at < pg_catalog.now() - c.retain)"

/* kappa_log_prune's work: the log's lock, then the oldest rows */
static void
prune_step(void *arg)
{
	kappa_log_lock();

	/*
	 * The prefix of rows each of whose tables is captured with a retention
	 * that has passed, or dropped.  A table no longer captured keeps its
	 * logged events (kappa.uncapture), and so the rows after them: capture
	 * it again with a retention to let them go.  Rows before the latest
	 * restore row name tables by another database's OIDs: their tables
	 * are matched to captures by name, and only those captured without a
	 * passed retention keep them.  The position recorded is that of the
	 * rows removed since the last restore row among them, and only
	 * captures of this database's rows are told their log was pruned.
	 */
	if (SPI_execute("WITH m AS ("
					"  SELECT COALESCE(max(batch_id), 0) AS first FROM kappa.event_log"
					"   WHERE kind = 'restore'"
					"), keep AS ("
					"  SELECT min(l.batch_id) AS first_kept FROM kappa.event_log l, m"
					"   WHERE EXISTS (SELECT 1 FROM ROWS FROM (pg_catalog.unnest(l.tables),"
					"                                     pg_catalog.unnest(l.table_names)) t(relid, name)"
					"                  WHERE CASE WHEN l.batch_id >= m.first"
					"                        THEN EXISTS (SELECT 1 FROM pg_catalog.pg_class r WHERE r.oid = t.relid"
					"                                      AND r.relkind IN ('r', 'p'))"
					"                             AND NOT EXISTS (SELECT 1 FROM kappa.captures c"
					"                                              WHERE c.relid = t.relid AND " RETENTION_PASSED ")"
					"                        ELSE EXISTS (SELECT 1 FROM kappa.captures c"
					"                                      WHERE c.name = t.name AND NOT " RETENTION_PASSED ") END)"
					"), gone AS ("
					"  DELETE FROM kappa.event_log l USING keep"
					"   WHERE keep.first_kept IS NULL OR l.batch_id < keep.first_kept"
					"  RETURNING l.batch_id, l.kind, l.last_lsn, l.hash, l.tables"
					"), epoch AS ("
					"  SELECT COALESCE(max(batch_id) FILTER (WHERE kind = 'restore'), 0) AS first FROM gone"
					"), recorded AS ("
					"  INSERT INTO kappa.event_log_pruned (first_batch, last_batch, last_lsn, last_hash)"
					"  SELECT min(batch_id), max(batch_id),"
					"         max(last_lsn) FILTER (WHERE batch_id >= (SELECT first FROM epoch)),"
					"         (SELECT hash FROM gone ORDER BY batch_id DESC LIMIT 1)"
					"    FROM gone HAVING count(*) > 0"
					"  RETURNING last_lsn"
					")"
					" UPDATE kappa.captures c SET pruned_lsn = r.last_lsn FROM recorded r"
					"  WHERE c.relid IN (SELECT unnest(g.tables) FROM gone g, m WHERE g.batch_id >= m.first)",
					false, 0) < 0)
		elog(ERROR, "could not prune kappa.event_log");
}

/*
 * Remove the oldest rows of the log that every capture lets go, and record
 * where the chain now starts.  The apply worker calls this every few
 * seconds, in a transaction of its own.
 */
void
kappa_log_prune(void)
{
	static TimestampTz last = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (!TimestampDifferenceExceeds(last, now, PRUNE_EVERY_MS))
		return;
	last = now;

	if (!kappa_log_job_begin())
		return;
	if (SPI_execute("SELECT 1 FROM kappa.captures WHERE retain IS NOT NULL", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.captures");
	/*
	 * A capture that holds the log's lock, or its row in kappa.captures (a
	 * kappa.capture or kappa.uncapture in an open transaction): prune next
	 * time.
	 */
	if (SPI_processed > 0)
		(void) run_bounded(prune_step, NULL, PRUNE_LOCK_TIMEOUT_MS);
	kappa_log_job_end();
}

/* Does the extension have kappa.restore_pending (0.3 and later)? */
static bool
restore_pending_available(void)
{
	Oid			nsp = get_namespace_oid("kappa", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("restore_pending", nsp));
}

/* Has every row of rel been written by the current transaction? */
static bool
rows_all_current(Relation rel)
{
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TableScanDesc scan = table_beginscan(rel, snap, 0, NULL);
	HeapTuple	tuple;
	bool		all = true;

	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		if (!TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tuple->t_data)))
		{
			all = false;
			break;
		}
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	return all;
}

/*
 * Is this insert into the event log (or the record of pruning) a restore
 * loading the log of a dumped database?  It is if nothing is captured
 * here (so nothing of this database is being logged) and the table holds
 * no row but those this transaction wrote: pg_restore and psql load each
 * table with one COPY, into an empty table, and a dump made with --inserts
 * loads in one transaction with --single-transaction.  The table is noted
 * as restored in kappa.restore_pending.  SPI need not be connected.
 */
static bool
restoring_log(Relation rel)
{
	bool		restoring;
	SavedUser	saved;

	if (!restore_pending_available())
		return false;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(kappa_extension_owner(), &saved);
	if (SPI_execute("SELECT 1 FROM kappa.captures", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.captures");
	restoring = SPI_processed == 0 && rows_all_current(rel);
	if (restoring &&
		SPI_execute("INSERT INTO kappa.restore_pending (kind)"
					" SELECT 'log' WHERE NOT EXISTS (SELECT 1 FROM kappa.restore_pending"
					"                                 WHERE kind = 'log')",
					false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into kappa.restore_pending");
	kappa_unbecome(&saved);
	SPI_finish();
	return restoring;
}

/*
 * After a restore of the log: append the restore row that starts this
 * database's part of the chain, at the current WAL position, unless that
 * is done already or the restored log is empty.  SPI connected, as the extension owner, before anything
 * of this database is appended.  Returns the row's position, or
 * InvalidXLogRecPtr when none was due.
 */
XLogRecPtr
kappa_log_restore_marker(void)
{
	KappaLogChunk chunk;

	if (!restore_pending_available())
		return InvalidXLogRecPtr;
	if (SPI_execute("SELECT 1 FROM kappa.restore_pending WHERE kind = 'log'", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.restore_pending");
	if (SPI_processed == 0)
		return InvalidXLogRecPtr;

	/* a restore that loaded nothing into the log needs no restore row */
	kappa_log_lock();
	if (SPI_execute("SELECT 1 FROM kappa.event_log UNION ALL SELECT 1 FROM kappa.event_log_pruned",
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.event_log");
	if (SPI_processed == 0)
	{
		if (SPI_execute("DELETE FROM kappa.restore_pending WHERE kind = 'log'", false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete from kappa.restore_pending");
		return InvalidXLogRecPtr;
	}

	kappa_log_chunk_init(&chunk);
	chunk.first_lsn = chunk.last_lsn = GetXLogInsertRecPtr();
	kappa_guard_bypass = true;
	PG_TRY();
	{
		kappa_log_append("restore", &chunk);
	}
	PG_FINALLY();
	{
		kappa_guard_bypass = false;
	}
	PG_END_TRY();
	if (SPI_execute("DELETE FROM kappa.restore_pending WHERE kind = 'log'", false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from kappa.restore_pending");
	return chunk.first_lsn;
}

/*
 * Refuses writes to the event log by anyone but pg_kappa itself, except a
 * restore loading it into an empty log (restoring_log).
 */
Datum
kappa_log_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "kappa.log_guard: not called by trigger manager");
	{
		static const char *const own[] = {"event_log", "event_log_pruned", "event_log_head", NULL};

		kappa_check_trigger_table(trigdata->tg_relation, "kappa.log_guard", own);
	}
	if (kappa_guard_bypass || kappa_in_apply_worker)
		return PointerGetDatum(NULL);
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) &&
		restoring_log(trigdata->tg_relation))
		return PointerGetDatum(NULL);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot change \"%s\": the event log is append-only",
					RelationGetRelationName(trigdata->tg_relation)),
			 errdetail("Only pg_kappa's apply worker and kappa.capture write the event log; retention is set with kappa.capture(table, retain => ...)."),
			 errhint("kappa.audit reports any change made to the log behind its back.")));
	PG_RETURN_NULL();
}
