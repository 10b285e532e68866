/*-------------------------------------------------------------------------
 *
 * change_sink.c
 *	  The apply worker's in-process decoding callbacks: decoded changes go
 *	  straight into the current batch, without being serialised.
 *
 * When the library runs inside an apply worker, _PG_output_plugin_init
 * installs these callbacks instead of the JSON ones.  For every source
 * table the batch keeps a tuplestore of row images (work_mem in memory,
 * then spilled to a temporary file), each tagged with a sequence number,
 * whether it is the new image, and the commit LSN of its transaction.  A
 * batch always ends on a transaction boundary: the commit callback marks it
 * full once it holds pg_kappa.batch_max_changes changes or has been
 * collecting for pg_kappa.batch_max_ms.
 *
 * Only tables that are sources of some view are kept.  The set is loaded by
 * the worker before a batch; when kappa.views changes (a relcache
 * invalidation of it arrives), every table is kept until the next reload,
 * so that a view created while a batch is being decoded loses nothing.
 *
 * Of a source, only the columns some view reads are kept: before a batch,
 * the worker says which columns each view reads from the row images
 * (kappa_sink_columns_read: engine 2 views whose plan is kept name theirs,
 * any other view takes them all), and the others are buffered as null, so
 * that images are smaller to buffer and to read back.  Once kappa.views
 * changes, images are kept whole until the reload.  A view that reads a
 * column its batch's images left out (its plan changed meanwhile) is held
 * and applied from the WAL decoded again (kappa_check_buffer_columns).
 *
 * Changes of captured tables (kappa.capture) are also written as JSON
 * records, with the output plugin's own code (event_format.c), into a
 * second tuplestore, from which event_log.c appends them to the event log
 * when the batch is applied.  While the set of captured tables is being
 * reloaded, every table's changes are written, and event_log.c keeps those
 * of tables captured at the time.
 *
 * Row values that live outside the record (changed TOASTed values, which
 * the reorder buffer hands over as in-memory pointers) are copied in.
 * Unchanged TOASTed values keep their on-disk pointer and are fetched when
 * the batch is applied.  What is done with the rows is delta_engine.c's
 * business.
 *
 * Nothing a source row holds may stop the worker, since decoding is not
 * done in any view's subtransaction and would fail the same way after a
 * restart.  A row image too large for a tuplestore is left out and noted
 * (oversize_lsn): the views that need it are marked broken when the batch
 * is applied (kappa_check_row_images), the others go on.  So are the views
 * that need an old row the WAL does not have: an update or delete of a
 * table whose replica identity is no longer FULL (engine 2 reads whole
 * old rows), a delete that does not identify its row at all (both
 * engines).  A replica identity changed without kappa.on_ddl_end seeing
 * it (a superuser in replica mode) gets there.  A change whose
 * event-log record is too large (pg_kappa.max_event_bytes), or cannot be
 * written for another reason, is not logged but noted in the batch
 * (log_failures): event_log.c marks its capture failed, in the batch's
 * transaction, and logs nothing more of that table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tupconvert.h"
#include "access/xact.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "utils/array.h"
#include "miscadmin.h"
#include "replication/logical.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "pg_kappa.h"

KappaBatch *kappa_batch = NULL;
RepOriginId kappa_worker_origin = InvalidRepOriginId;

/* sources of views, as last loaded; NULL means "keep every table" */
static HTAB *source_set = NULL;

/*
 * The columns of each source that the batch's views read from its row
 * images (kappa_sink_columns_read), in the batch's memory, made empty by
 * kappa_batch_reset; a source not in it keeps every column.
 */
typedef struct ColumnsRead
{
	Oid			relid;			/* hash key */
	bool		all;
	int			natts;
	bool	   *read;			/* natts long, unless all */
} ColumnsRead;

static HTAB *columns_read = NULL;
static bool sources_stale = true;

/* the routes of partitions to their sources must be found again */
static bool routes_stale = true;

/* kappa.partition_changes, whose inserts say partitions changed */
static Oid	partition_changes = InvalidOid;
static bool partition_changes_known = false;	/* looked up (in a decoding
												 * callback's transaction) */

/* captured tables: relid -> commit LSN after which changes are logged */
typedef struct CaptureEntry
{
	Oid			relid;
	XLogRecPtr	start_lsn;
} CaptureEntry;
static HTAB *capture_set = NULL;

/* resource owner that outlives the decoding transactions (temp files) */
static ResourceOwner batch_owner = NULL;

/* memory of the event-log record being written */
static MemoryContext record_cxt = NULL;

/* the last change that could not be logged: the rest of its transaction
 * is not logged either */
static Oid	failed_relid = InvalidOid;
static XLogRecPtr failed_commit_lsn = InvalidXLogRecPtr;

/*
 * A change whose values take less than this is written directly; a larger
 * one in a subtransaction, so that a record that cannot be written (out of
 * memory, a string buffer over 1 GB) only fails its capture.  Below it no
 * value can grow past 1 GB in JSON (numeric, whose text may be tens of
 * thousands of times its stored size, is the extreme).
 */
#define PROTECTED_RECORD_BYTES (16 * 1024)

/*
 * The largest row image a tuplestore takes: one palloc, under 1 GB, with
 * room for the buffer's own columns and the tuple header.
 */
#define MAX_ROW_IMAGE_BYTES ((Size) MaxAllocSize - 1024 * 1024)

/* decoded tuples up to this size without TOASTed values are taken as they are */
#define SMALL_TUPLE_BYTES (64 * 1024)

/*
 * The bytes a value takes once detoasted (an unchanged TOASTed value, which
 * is not in the WAL, takes none).
 */
static Size
value_bytes(Form_pg_attribute att, Datum value)
{
	if (att->attlen == -1)
	{
		if (VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value)))
			return 0;
		return toast_raw_datum_size(value);
	}
	if (att->attlen == -2)
		return strlen(DatumGetCString(value)) + 1;
	return att->attlen;
}

/* The bytes of a deformed row image once detoasted, with alignment. */
static Size
row_image_bytes(TupleDesc desc, int natts, Datum *values, bool *nulls)
{
	Size		total = 0;

	for (int i = 0; i < natts; i++)
	{
		if (!nulls[i])
			total += value_bytes(TupleDescAttr(desc, i), values[i]) + MAXIMUM_ALIGNOF;
	}
	return total;
}

/* Start a new, empty batch. */
void
kappa_batch_reset(void)
{
	if (kappa_batch == NULL)
	{
		kappa_batch = MemoryContextAllocZero(TopMemoryContext, sizeof(KappaBatch));
		kappa_batch->mcxt = AllocSetContextCreate(TopMemoryContext,
												  "pg_kappa batch",
												  ALLOCSET_DEFAULT_SIZES);
		batch_owner = ResourceOwnerCreate(NULL, "pg_kappa batch");
	}
	else
	{
		HASH_SEQ_STATUS status;
		KappaSourceBuffer *buf;
		ResourceOwner save = CurrentResourceOwner;

		if (kappa_batch->sources)
		{
			CurrentResourceOwner = batch_owner;
			hash_seq_init(&status, kappa_batch->sources);
			while ((buf = hash_seq_search(&status)) != NULL)
			{
				if (buf->rows)
					tuplestore_end(buf->rows);
			}
			CurrentResourceOwner = save;
		}
		if (kappa_batch->log_lines)
		{
			CurrentResourceOwner = batch_owner;
			tuplestore_end(kappa_batch->log_lines);
			CurrentResourceOwner = save;
		}
		MemoryContextReset(kappa_batch->mcxt);
	}

	kappa_batch->ntxns = 0;
	kappa_batch->nchanges = 0;
	kappa_batch->replay_us = 0;
	kappa_batch->first_commit_lsn = InvalidXLogRecPtr;
	kappa_batch->last_commit_lsn = InvalidXLogRecPtr;
	kappa_batch->last_end_lsn = InvalidXLogRecPtr;
	kappa_batch->last_commit_time = 0;
	kappa_batch->full = false;
	kappa_batch->snapshot = NULL;
	kappa_batch->misaligned = false;
	kappa_batch->stopped_before = InvalidTransactionId;
	kappa_batch->xids = NIL;
	kappa_batch->log_lines = NULL;
	kappa_batch->log_nlines = 0;
	kappa_batch->log_txns = NIL;
	kappa_batch->log_txn_lines = 0;
	kappa_batch->log_failures = NIL;
	failed_relid = InvalidOid;
	failed_commit_lsn = InvalidXLogRecPtr;
	kappa_batch->deadline = GetCurrentTimestamp() +
		(TimestampTz) kappa_batch_max_ms * 1000;
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(KappaSourceBuffer);
		ctl.hcxt = kappa_batch->mcxt;
		kappa_batch->sources = hash_create("pg_kappa batch sources", 16, &ctl,
										   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		ctl.entrysize = sizeof(ColumnsRead);
		columns_read = hash_create("pg_kappa columns read", 16, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
}

/*
 * A view reads the columns of source relid marked in read (natts long), or
 * every column when read is NULL, from the batch's row images; said of every
 * view and source after kappa_batch_reset, before the batch is decoded.  The
 * columns no view reads are buffered as null, which makes the images smaller
 * to buffer and to read back.  A view that cannot say (engine 1, or no plan
 * yet) must pass NULL.
 */
void
kappa_sink_columns_read(Oid relid, const bool *read, int natts)
{
	ColumnsRead *c;
	bool		found;

	c = hash_search(columns_read, &relid, HASH_ENTER, &found);
	if (!found)
	{
		c->all = false;
		c->natts = 0;
		c->read = NULL;
	}
	if (c->all)
		return;
	if (read == NULL)
	{
		c->all = true;
		return;
	}
	if (natts > c->natts)
	{
		bool	   *wider = MemoryContextAllocZero(kappa_batch->mcxt, sizeof(bool) * natts);

		if (c->natts > 0)
			memcpy(wider, c->read, sizeof(bool) * c->natts);
		c->read = wider;
		c->natts = natts;
	}
	for (int i = 0; i < natts; i++)
		c->read[i] |= read[i];
}

/*
 * The columns a new buffer of relid keeps null (buf->dropped): those no view
 * reads, as said before the batch was decoded.  Every column is kept while
 * the set of sources is stale, or for a source not said of.
 */
static void
buffer_dropped(KappaSourceBuffer *buf, Oid relid)
{
	ColumnsRead *c;
	int			ndropped = 0;

	buf->dropped = NULL;
	buf->dropped_lsn = InvalidXLogRecPtr;
	if (sources_stale)
		return;
	c = hash_search(columns_read, &relid, HASH_FIND, NULL);
	if (c == NULL || c->all)
		return;
	buf->dropped = palloc0(sizeof(bool) * buf->srcnatts);
	for (int i = 0; i < buf->srcnatts; i++)
	{
		/* a dropped column of the table is null anyway */
		buf->dropped[i] = !(i < c->natts && c->read[i]) &&
			!TupleDescAttr(buf->desc, i)->attisdropped;
		ndropped += buf->dropped[i];
	}
	if (ndropped == 0)
	{
		pfree(buf->dropped);
		buf->dropped = NULL;
	}
	else
		elog(DEBUG2, "buffering %d of the %d columns of relation %u",
			 buf->srcnatts - ndropped, buf->srcnatts, relid);
}

/*
 * Before the batch is applied to a view, as of its applied LSN: an error
 * when the buffer left out a column the view reads (marked in read, natts
 * long; NULL for all) from an image the view has not seen, which happens
 * when the view's plan changed after the batch was decoded.  (Images
 * decoded after the views changed keep every column, so a view made while
 * the batch was decoded reads its changes whole.)  The error is a
 * serialization failure: the view is held, and applied from the WAL
 * decoded again (apply_worker.c), when every column is kept.
 */
void
kappa_check_buffer_columns(KappaSourceBuffer *buf, const bool *read, int natts,
						   XLogRecPtr applied)
{
	if (buf->dropped == NULL || buf->dropped_lsn <= applied)
		return;
	for (int i = 0; i < buf->srcnatts; i++)
	{
		char	   *column;

		if (!buf->dropped[i] || (read != NULL && (i >= natts || !read[i])))
			continue;
		column = get_attname(buf->relid, i + 1, true);
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("the batch was decoded without column %s of source table \"%s\", which the view reads",
						column ? quote_identifier(column) : psprintf("%d", i + 1),
						get_rel_name(buf->relid)),
				 errdetail("The batch left out the columns no view read when it was decoded; the view is applied again from the WAL, decoded with every column.")));
	}
}

/* kappa.views changed: keep every table until the worker reloads. */
void
kappa_sink_sources_changed(void)
{
	sources_stale = true;
	routes_stale = true;
}

void
kappa_sink_set_sources(List *relids)
{
	HASHCTL		ctl;
	ListCell   *lc;

	if (source_set)
		hash_destroy(source_set);
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(Oid);
	ctl.hcxt = TopMemoryContext;
	source_set = hash_create("pg_kappa source set", 16, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	foreach(lc, relids)
	{
		Oid			relid = lfirst_oid(lc);

		(void) hash_search(source_set, &relid, HASH_ENTER, NULL);
	}
	sources_stale = false;
	routes_stale = true;
	partition_changes_known = false;
}

void
kappa_sink_set_captures(List *relids, List *start_lsns)
{
	HASHCTL		ctl;
	ListCell   *lc1,
			   *lc2;

	if (capture_set)
		hash_destroy(capture_set);
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(CaptureEntry);
	ctl.hcxt = TopMemoryContext;
	capture_set = hash_create("pg_kappa capture set", 16, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	forboth(lc1, relids, lc2, start_lsns)
	{
		Oid			relid = lfirst_oid(lc1);
		CaptureEntry *e = hash_search(capture_set, &relid, HASH_ENTER, NULL);

		e->start_lsn = *(XLogRecPtr *) lfirst(lc2);
	}
}

/*
 * Table relid's capture has failed (event_log.c has recorded it in the
 * batch's transaction): its changes are no longer written as records.
 */
void
kappa_sink_forget_capture(Oid relid)
{
	if (capture_set != NULL)
		(void) hash_search(capture_set, &relid, HASH_REMOVE, NULL);
}

/* Columns of the log tuplestore: relid, commit LSN, table name, record. */
TupleDesc
kappa_log_lines_desc(void)
{
	static TupleDesc desc = NULL;

	if (desc == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

		desc = CreateTemplateTupleDesc(4);
		TupleDescInitEntry(desc, 1, "relid", OIDOID, -1, 0);
		TupleDescInitEntry(desc, 2, "lsn", INT8OID, -1, 0);
		TupleDescInitEntry(desc, 3, "name", TEXTOID, -1, 0);
		TupleDescInitEntry(desc, 4, "line", TEXTOID, -1, 0);
		MemoryContextSwitchTo(oldcxt);
	}
	return desc;
}

/* Should a change of relid, committed at commit_lsn, be logged? */
static bool
log_wanted(Oid relid, XLogRecPtr commit_lsn)
{
	CaptureEntry *e;

	/* a transaction with a change that could not be logged is not logged */
	if (relid == failed_relid && commit_lsn == failed_commit_lsn)
		return false;
	if (sources_stale || capture_set == NULL)
		return true;			/* decided again when the batch is written */
	e = hash_search(capture_set, &relid, HASH_FIND, NULL);
	return e != NULL && commit_lsn > e->start_lsn;
}

/* Keep one JSON record of a captured table for the event log. */
static void
log_line(Relation rel, XLogRecPtr commit_lsn, StringInfo line)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	ResourceOwner save = CurrentResourceOwner;

	CurrentResourceOwner = batch_owner;
	if (kappa_batch->log_lines == NULL)
		kappa_batch->log_lines = tuplestore_begin_heap(false, true, work_mem);
	values[0] = ObjectIdGetDatum(RelationGetRelid(rel));
	values[1] = Int64GetDatum((int64) commit_lsn);
	values[2] = CStringGetTextDatum(kappa_log_table_name(get_namespace_name(RelationGetNamespace(rel)),
															RelationGetRelationName(rel)));
	values[3] = PointerGetDatum(cstring_to_text_with_len(line->data, line->len));
	tuplestore_putvalues(kappa_batch->log_lines, kappa_log_lines_desc(), values, nulls);
	/* the tuplestore has its own copy: a large record is not kept thrice */
	pfree(DatumGetPointer(values[3]));
	CurrentResourceOwner = save;
	kappa_batch->log_nlines++;
	kappa_batch->log_txn_lines++;
}

/*
 * A change of a captured table that cannot be logged: note it in the batch
 * (event_log.c marks the capture failed), and log nothing more of the
 * table's changes in this transaction.
 */
static void
capture_failed(Relation rel, XLogRecPtr commit_lsn, const char *message)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(kappa_batch->mcxt);
	KappaLogFailure *f = palloc(sizeof(KappaLogFailure));

	f->relid = RelationGetRelid(rel);
	f->commit_lsn = commit_lsn;
	f->name = kappa_log_table_name(get_namespace_name(RelationGetNamespace(rel)),
										RelationGetRelationName(rel));
	f->message = pstrdup(message);
	kappa_batch->log_failures = lappend(kappa_batch->log_failures, f);
	failed_relid = f->relid;
	failed_commit_lsn = commit_lsn;
	MemoryContextSwitchTo(oldcxt);
}

/*
 * The bytes of the values a change's record writes: for the old image only
 * the replica identity columns, and no unchanged TOASTed value.
 */
static Size
change_value_bytes(KappaRelInfo *ri, TupleDesc desc, HeapTuple tuple, bool old)
{
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);
	Size		total = 0;

	heap_deform_tuple(tuple, desc, values, nulls);
	for (int i = 0; i < ri->ncolumns; i++)
	{
		int			src = ri->columns[i].srcattnum - 1;

		if ((old && !ri->columns[i].in_identity) || nulls[src])
			continue;
		total += value_bytes(TupleDescAttr(desc, src), values[src]);
	}
	pfree(values);
	pfree(nulls);
	return total;
}

/* The JSON record of one change, as the output plugin writes it. */
static void
write_change_record(StringInfo line, Relation relation, KappaRelInfo *ri,
					ReorderBufferChange *change)
{
	const char *kind;

	switch (change->action)
	{
		case REORDER_BUFFER_CHANGE_INSERT:
			kind = "insert";
			break;
		case REORDER_BUFFER_CHANGE_UPDATE:
			kind = "update";
			break;
		default:
			kind = "delete";
			break;
	}
	initStringInfo(line);
	appendStringInfo(line, "{\"kind\":\"%s\"", kind);
	kappa_write_change_fields(line, ri, RelationGetDescr(relation), change->lsn,
							  true, false,
							  change->data.tp.oldtuple ? &change->data.tp.oldtuple->tuple : NULL,
							  change->data.tp.newtuple ? &change->data.tp.newtuple->tuple : NULL);
	appendStringInfoChar(line, '}');
}

/* A record too large to write unprotected, for write_record_step */
typedef struct RecordStep
{
	StringInfo	line;
	Relation	relation;
	KappaRelInfo *ri;
	ReorderBufferChange *change;
} RecordStep;

static void
write_record_step(void *arg)
{
	RecordStep *step = arg;

	write_change_record(step->line, step->relation, step->ri, step->change);
}

/*
 * Keep the record of one change of a captured table for the event log, or,
 * when it is larger than pg_kappa.max_event_bytes or cannot be written,
 * note that the table's capture failed.  Never an error: the worker would
 * meet the same change again after a restart.
 */
static void
log_change(Relation relation, ReorderBufferTXN *txn, ReorderBufferChange *change)
{
	KappaRelInfo *ri = kappa_relinfo_get(relation);
	TupleDesc	desc = RelationGetDescr(relation);
	MemoryContext oldcxt = CurrentMemoryContext;
	StringInfoData line;
	char	   *failure = NULL;
	Size		bytes = 0;

	if (change->data.tp.oldtuple)
		bytes += change_value_bytes(ri, desc, &change->data.tp.oldtuple->tuple, true);
	if (change->data.tp.newtuple)
		bytes += change_value_bytes(ri, desc, &change->data.tp.newtuple->tuple, false);
	if (bytes > (Size) kappa_max_event_bytes)
	{
		capture_failed(relation, txn->final_lsn,
					   psprintf("a change committed at %X/%X was not logged: its values take %zu bytes, more than pg_kappa.max_event_bytes (%d bytes)",
								LSN_FORMAT_ARGS(txn->final_lsn), bytes, kappa_max_event_bytes));
		return;
	}

	if (record_cxt == NULL)
		record_cxt = AllocSetContextCreate(TopMemoryContext, "pg_kappa event record",
										   ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(record_cxt);
	if (bytes < PROTECTED_RECORD_BYTES)
		write_change_record(&line, relation, ri, change);
	else
	{
		RecordStep	step = {&line, relation, ri, change};
		ErrorData  *edata = kappa_try_in_subxact(write_record_step, &step, oldcxt);

		if (edata != NULL)
		{
			/*
			 * Out of memory, a string over 1 GB: say so.  What another
			 * error says may come from a value, and kappa.captures is
			 * public: its text goes only to the server log.
			 */
			if (edata->sqlerrcode == ERRCODE_OUT_OF_MEMORY ||
				edata->sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED)
				failure = psprintf("a change committed at %X/%X was not logged: %s%s%s",
								   LSN_FORMAT_ARGS(txn->final_lsn), edata->message,
								   edata->detail ? ": " : "",
								   edata->detail ? edata->detail : "");
			else
			{
				ereport(WARNING,
						(errmsg("could not write the event-log record of a change of table \"%s\": %s",
								RelationGetRelationName(relation), edata->message)));
				failure = psprintf("a change committed at %X/%X was not logged: its record could not be written (SQLSTATE %s, see the server log)",
								   LSN_FORMAT_ARGS(txn->final_lsn),
								   unpack_sql_state(edata->sqlerrcode));
			}
			FreeErrorData(edata);
		}
	}
	MemoryContextSwitchTo(oldcxt);

	if (failure == NULL && line.len > kappa_max_event_bytes)
		failure = psprintf("a change committed at %X/%X was not logged: its record takes %d bytes, more than pg_kappa.max_event_bytes (%d bytes)",
						   LSN_FORMAT_ARGS(txn->final_lsn), line.len, kappa_max_event_bytes);
	if (failure != NULL)
		capture_failed(relation, txn->final_lsn, failure);
	else
		log_line(relation, txn->final_lsn, &line);
	MemoryContextReset(record_cxt);
}

static bool
is_source(Oid relid)
{
	if (sources_stale || source_set == NULL)
		return true;
	return hash_search(source_set, &relid, HASH_FIND, NULL) != NULL;
}

/*
 * A change of a partition is also a change of each partitioned table above
 * it that is a source, in that table's columns (a partition may have its
 * columns in another order, or dropped ones in between).  Routes are kept
 * per partition until a relcache invalidation arrives (DDL decoded, which
 * may attach, detach or change a table) or the set of sources changes.
 */
typedef struct RouteTarget
{
	Oid			relid;			/* the partitioned source */
	TupleConversionMap *map;	/* the partition's rows to its; NULL: same */
} RouteTarget;

typedef struct PartitionRoutes
{
	Oid			relid;			/* the partition: hash key */
	int			ntargets;
	RouteTarget *targets;
} PartitionRoutes;

static HTAB *partition_routes = NULL;
static MemoryContext routes_cxt = NULL;

static void
routes_relcache_callback(Datum arg, Oid relid)
{
	routes_stale = true;
}

/* The sources above partition rel that its changes go to (maybe none). */
static PartitionRoutes *
partition_routes_of(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	PartitionRoutes *routes;
	bool		found;
	List	   *ancestors;
	ListCell   *lc;
	MemoryContext oldcxt;

	if (routes_cxt == NULL)
	{
		routes_cxt = AllocSetContextCreate(TopMemoryContext, "pg_kappa partition routes",
										   ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(routes_relcache_callback, (Datum) 0);
	}
	if (routes_stale || partition_routes == NULL)
	{
		HASHCTL		ctl;

		MemoryContextReset(routes_cxt);
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(PartitionRoutes);
		ctl.hcxt = routes_cxt;
		partition_routes = hash_create("pg_kappa partition routes", 16, &ctl,
									   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		routes_stale = false;
	}
	routes = hash_search(partition_routes, &relid, HASH_ENTER, &found);
	if (found)
		return routes;

	oldcxt = MemoryContextSwitchTo(routes_cxt);
	ancestors = get_partition_ancestors(relid);
	routes->ntargets = 0;
	routes->targets = palloc(sizeof(RouteTarget) * Max(list_length(ancestors), 1));
	foreach(lc, ancestors)
	{
		Oid			ancestor = lfirst_oid(lc);
		Relation	arel;

		if (!is_source(ancestor))
			continue;
		arel = RelationIdGetRelation(ancestor);
		if (!RelationIsValid(arel))
			continue;
		routes->targets[routes->ntargets].relid = ancestor;
		routes->targets[routes->ntargets].map =
			convert_tuples_by_name(RelationGetDescr(rel), RelationGetDescr(arel));
		routes->ntargets++;
		RelationClose(arel);
	}
	MemoryContextSwitchTo(oldcxt);
	return routes;
}

/*
 * How a relation's columns stand against its buffer's, when a change of
 * the relation comes after others in the batch.
 */
typedef enum ColumnsFit
{
	COLUMNS_SAME,				/* as the buffer's (columns dropped since
								 * read as null) */
	COLUMNS_ADDED,				/* those, and columns added after them */
	COLUMNS_CHANGED				/* anything else: views must be rebuilt */
} ColumnsFit;

static ColumnsFit
columns_fit(TupleDesc reldesc, KappaSourceBuffer *buf)
{
	if (reldesc->natts < buf->srcnatts)
		return COLUMNS_CHANGED;
	for (int i = 0; i < buf->srcnatts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(reldesc, i);
		Form_pg_attribute b = TupleDescAttr(buf->desc, i);

		/* a dropped column's images hold null, which the buffer can keep */
		if (a->attisdropped)
			continue;

		/*
		 * A column given another type without a rewrite (varchar(10) to
		 * varchar(20) or text) keeps its values' form.  Whether a view may
		 * read it so is for the DDL checks (kappa.source_problem) and
		 * kappa_check_buffer_columns: a view that does not read it goes on.
		 */
		if (b->attisdropped || a->attlen != b->attlen || a->attbyval != b->attbyval ||
			a->attalign != b->attalign)
		{
			MemoryContext cxt = GetMemoryChunkContext(buf->values);

			/*
			 * A column given another form by a rewrite (int to bigint)
			 * that a view reads, as said before the batch: the view must
			 * be built again.
			 */
			if (b->attisdropped ||
				(!sources_stale && (buf->dropped == NULL || !buf->dropped[i])))
				return COLUMNS_CHANGED;

			/*
			 * Else it is buffered as null from then on (buffer_row), and
			 * counts as left out: a view that reads it after all is applied
			 * from the WAL decoded again (kappa_check_buffer_columns),
			 * where it breaks; the others go on.  So also when the views
			 * changed during the batch (all columns kept since), or had
			 * when the buffer was laid out, as they have when a worker
			 * starts: which views read the column is known once the batch
			 * is applied.
			 */
			if (buf->dropped == NULL)
				buf->dropped = MemoryContextAllocZero(cxt, sizeof(bool) * buf->srcnatts);
			if (buf->reformed == NULL)
				buf->reformed = MemoryContextAllocZero(cxt, sizeof(bool) * buf->srcnatts);
			buf->dropped[i] = true;
			buf->reformed[i] = true;
			continue;
		}
	}
	return reldesc->natts > buf->srcnatts ? COLUMNS_ADDED : COLUMNS_SAME;
}

/*
 * The buffer's descriptor for a source whose columns are reldesc's: the
 * source's columns, then the four of the batch (sequence number, new or
 * old, commit LSN, unchanged TOASTed columns).  The first keep columns
 * are taken from old, the buffer's descriptor so far, if given: a column
 * dropped since keeps the type its images were buffered with.
 */
static void
buffer_layout(KappaSourceBuffer *buf, TupleDesc reldesc, TupleDesc old, int keep)
{
	int			n = reldesc->natts;

	buf->srcnatts = n;
	buf->desc = CreateTemplateTupleDesc(n + 4);
	for (int i = 0; i < n; i++)
		TupleDescCopyEntry(buf->desc, i + 1, i < keep ? old : reldesc, i + 1);
	TupleDescInitEntry(buf->desc, n + 1, "_kappa_seq", INT8OID, -1, 0);
	TupleDescInitEntry(buf->desc, n + 2, "_kappa_new", BOOLOID, -1, 0);
	TupleDescInitEntry(buf->desc, n + 3, "_kappa_lsn", INT8OID, -1, 0);
	TupleDescInitEntry(buf->desc, n + 4, "_kappa_unchanged", INT2ARRAYOID, -1, 0);
	buf->values = palloc(sizeof(Datum) * (n + 4));
	buf->nulls = palloc(sizeof(bool) * (n + 4));
	buf->unchanged = palloc(sizeof(Datum) * (n + 1));
}

static Tuplestorestate *
buffer_store(void)
{
	ResourceOwner save = CurrentResourceOwner;
	Tuplestorestate *rows;

	CurrentResourceOwner = batch_owner;
	rows = tuplestore_begin_heap(false, true, work_mem);
	CurrentResourceOwner = save;
	return rows;
}

/* Per-column flags (NULL: none) of oldn columns, for n, the new ones false */
static bool *
widen_flags(bool *flags, int oldn, int n)
{
	bool	   *wider;

	if (flags == NULL)
		return NULL;
	wider = palloc0(sizeof(bool) * n);
	memcpy(wider, flags, sizeof(bool) * oldn);
	return wider;
}

/*
 * Columns were added to a source (ALTER TABLE ... ADD COLUMN) after some
 * of its changes in the batch: lay the buffer out with them, the images
 * buffered so far null in the added columns (no view that reads those
 * columns can have been applied to a point before they were added).
 */
static void
widen_buffer(KappaSourceBuffer *buf, TupleDesc reldesc)
{
	TupleDesc	old = buf->desc;
	int			oldn = buf->srcnatts;
	Tuplestorestate *oldrows = buf->rows;
	TupleTableSlot *slot = MakeSingleTupleTableSlot(old, &TTSOpsMinimalTuple);
	ResourceOwner save = CurrentResourceOwner;
	int			n;

	buffer_layout(buf, reldesc, old, oldn);
	n = buf->srcnatts;
	/* the added columns are kept: no view of the batch can read them */
	buf->dropped = widen_flags(buf->dropped, oldn, n);
	buf->reformed = widen_flags(buf->reformed, oldn, n);
	buf->rows = buffer_store();
	CurrentResourceOwner = batch_owner;
	tuplestore_rescan(oldrows);
	while (tuplestore_gettupleslot(oldrows, true, false, slot))
	{
		slot_getallattrs(slot);
		memcpy(buf->values, slot->tts_values, sizeof(Datum) * oldn);
		memcpy(buf->nulls, slot->tts_isnull, sizeof(bool) * oldn);
		for (int i = oldn; i < n; i++)
			buf->nulls[i] = true;
		memcpy(buf->values + n, slot->tts_values + oldn, sizeof(Datum) * 4);
		memcpy(buf->nulls + n, slot->tts_isnull + oldn, sizeof(bool) * 4);
		tuplestore_putvalues(buf->rows, buf->desc, buf->values, buf->nulls);
	}
	tuplestore_end(oldrows);
	CurrentResourceOwner = save;
	ExecDropSingleTupleTableSlot(slot);
}

static KappaSourceBuffer *
source_buffer(Relation rel, XLogRecPtr commit_lsn)
{
	Oid			relid = RelationGetRelid(rel);
	TupleDesc	reldesc = RelationGetDescr(rel);
	KappaSourceBuffer *buf;
	bool		found;

	buf = hash_search(kappa_batch->sources, &relid, HASH_ENTER, &found);
	if (!found)
	{
		buffer_layout(buf, reldesc, NULL, 0);
		buffer_dropped(buf, relid);
		buf->rows = buffer_store();
		buf->nrows = 0;
		buf->truncate_lsn = InvalidXLogRecPtr;
		buf->schema_change_lsn = InvalidXLogRecPtr;
		buf->modify_lsn = InvalidXLogRecPtr;
		buf->oversize_lsn = InvalidXLogRecPtr;
		buf->no_old_lsn = InvalidXLogRecPtr;
		buf->no_old_relid = InvalidOid;
		buf->unidentified_lsn = InvalidXLogRecPtr;
		buf->pkey_index = RelationGetPrimaryKeyIndex(rel);
		buf->pkey_varies = false;
		buf->reformed = NULL;
	}
	else if (buf->schema_change_lsn == InvalidXLogRecPtr)
	{
		switch (columns_fit(reldesc, buf))
		{
			case COLUMNS_SAME:
				break;
			case COLUMNS_ADDED:
				widen_buffer(buf, reldesc);
				break;
			case COLUMNS_CHANGED:
				buf->schema_change_lsn = commit_lsn;
				break;
		}
	}
	return buf;
}

/*
 * Append one row image, laid out as the buffer's descriptor says (source
 * columns, then sequence number, new or old, commit LSN, unchanged TOASTed
 * columns), to the source's buffer.
 */
static void
put_row(KappaSourceBuffer *buf, Datum *values, bool *nulls)
{
	ResourceOwner save = CurrentResourceOwner;

	CurrentResourceOwner = batch_owner;
	tuplestore_putvalues(buf->rows, buf->desc, values, nulls);
	CurrentResourceOwner = save;
	buf->nrows++;
}

/* Append one decoded row image to the source's buffer. */
static void
buffer_row(KappaSourceBuffer *buf, TupleDesc reldesc, HeapTuple tuple,
		   bool is_new, XLogRecPtr commit_lsn, int64 seq)
{
	int			n = buf->srcnatts;
	Datum	   *values;
	bool	   *nulls;
	Datum	   *unchanged;
	int			nunchanged = 0;

	if (buf->schema_change_lsn != InvalidXLogRecPtr)
		return;					/* the view will be marked broken */

	values = buf->values;
	nulls = buf->nulls;
	unchanged = buf->unchanged;
	/* the relation's descriptor knows the defaults of added columns */
	heap_deform_tuple(tuple, reldesc, values, nulls);
	/*
	 * Once the views changed (a new view may read more), keep them all,
	 * but for a column whose form changed since the buffer was laid out,
	 * which it cannot hold: a view that reads it is applied from the WAL
	 * decoded again (kappa_check_buffer_columns), where it breaks.
	 */
	if (buf->dropped != NULL && !sources_stale)
	{
		for (int i = 0; i < n; i++)
			nulls[i] |= buf->dropped[i];
		buf->dropped_lsn = commit_lsn;
	}
	else if (buf->reformed != NULL)
	{
		for (int i = 0; i < n; i++)
			nulls[i] |= buf->reformed[i];
		buf->dropped_lsn = commit_lsn;
	}

	/*
	 * An image no tuplestore can hold is left out, and the views that need
	 * it are marked broken (kappa_check_row_images).  Commits arrive in
	 * order: a view applied up to the latest such image needs none of them.
	 * Only a large tuple, or one with TOASTed values, can be such an image
	 * or need its values copied: the others (nearly all) skip the checks.
	 */
	if (HeapTupleHasExternal(tuple) || tuple->t_len > SMALL_TUPLE_BYTES)
	{
		if (row_image_bytes(reldesc, n, values, nulls) > MAX_ROW_IMAGE_BYTES)
		{
			buf->oversize_lsn = commit_lsn;
			return;
		}
		for (int i = 0; i < n; i++)
		{
			Form_pg_attribute att = TupleDescAttr(buf->desc, i);

			if (nulls[i] || att->attlen != -1 ||
				!VARATT_IS_EXTERNAL(DatumGetPointer(values[i])))
				continue;

			/*
			 * An unchanged TOASTed value is not in the WAL, and the
			 * source's TOAST table is ahead of the batch: leave it out and
			 * say so; the delta engine takes it from the row's previous
			 * image.
			 */
			if (VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(values[i])))
			{
				nulls[i] = true;
				unchanged[nunchanged++] = Int16GetDatum(i + 1);
			}
			/* in-memory TOAST pointers die with the reorder buffer: copy */
			else
				values[i] = PointerGetDatum(detoast_external_attr((struct varlena *)
																  DatumGetPointer(values[i])));
		}
	}
	values[n] = Int64GetDatum(seq);
	nulls[n] = false;
	values[n + 1] = BoolGetDatum(is_new);
	nulls[n + 1] = false;
	values[n + 2] = Int64GetDatum((int64) commit_lsn);
	nulls[n + 2] = false;
	nulls[n + 3] = (nunchanged == 0);
	if (nunchanged > 0)
		values[n + 3] = PointerGetDatum(construct_array(unchanged, nunchanged, INT2OID,
														sizeof(int16), true, TYPALIGN_SHORT));
	put_row(buf, values, nulls);
}

/*
 * Before the batch is applied to a view with these sources, as of its
 * applied LSN: an error when the batch left out a row image the view needs
 * because it was too large to buffer, or when the WAL did not have an old
 * row the view needs (whole_old_rows: every update and delete must carry
 * it, as engine 2 reads them).  Called in the view's subtransaction, so
 * that only this view is marked broken.
 */
void
kappa_check_row_images(List *sources, XLogRecPtr applied, bool whole_old_rows)
{
	ListCell   *lc;

	foreach(lc, sources)
	{
		Oid			relid = lfirst_oid(lc);
		KappaSourceBuffer *buf;

		buf = hash_search(kappa_batch->sources, &relid, HASH_FIND, NULL);
		if (buf != NULL && buf->oversize_lsn > applied)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("a row of source table \"%s\" is too large to be applied",
							kappa_rel_label(relid)),
					 errdetail("A row image committed at %X/%X takes more than the %zu bytes the apply worker can buffer for one row.",
							   LSN_FORMAT_ARGS(buf->oversize_lsn), MAX_ROW_IMAGE_BYTES)));
		if (buf != NULL &&
			(whole_old_rows ? buf->no_old_lsn : buf->unidentified_lsn) > applied)
		{
			/* the table to fix: the source, or the partition changed */
			Oid			table = whole_old_rows && OidIsValid(buf->no_old_relid) ?
				buf->no_old_relid : relid;

			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("old row images of source table %s are not complete",
							kappa_qualified_name(relid)),
					 table != relid ?
					 errdetail("A change of its partition %s committed at %X/%X does not carry the whole old row it updated or deleted, which the view needs: the partition's replica identity is not FULL.",
							   kappa_qualified_name(table), LSN_FORMAT_ARGS(buf->no_old_lsn)) :
					 errdetail("A change committed at %X/%X does not carry the whole old row it updated or deleted, which the view needs: the table's replica identity is not FULL.",
							   LSN_FORMAT_ARGS(whole_old_rows ? buf->no_old_lsn : buf->unidentified_lsn)),
					 errhint("Run ALTER TABLE %s REPLICA IDENTITY FULL, then build the view again with kappa.alter_view and rebuild => true.",
							 kappa_qualified_name(table))));
		}
	}
}

/*
 * For replay (replay.c): put one row image, already laid out as the
 * buffer's descriptor says, into the current batch, as if decoded.
 */
void
kappa_batch_put_row(Relation rel, XLogRecPtr commit_lsn, Datum *values, bool *nulls)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(kappa_batch->mcxt);
	KappaSourceBuffer *buf = source_buffer(rel, commit_lsn);

	put_row(buf, values, nulls);
	/* an image alone does not say whether it is an insert: assume not */
	buf->modify_lsn = Max(buf->modify_lsn, commit_lsn);
	kappa_batch->nchanges++;
	MemoryContextSwitchTo(oldcxt);
}

/* For replay: the table was truncated at commit_lsn (nothing buffered yet). */
void
kappa_batch_truncate(Relation rel, XLogRecPtr commit_lsn)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(kappa_batch->mcxt);
	KappaSourceBuffer *buf = source_buffer(rel, commit_lsn);

	buf->truncate_lsn = commit_lsn;
	kappa_batch->nchanges++;
	MemoryContextSwitchTo(oldcxt);
}

/* One more transaction in the batch (sink_commit, and replay.c). */
void
kappa_batch_commit(XLogRecPtr commit_lsn, TimestampTz commit_time)
{
	KappaBatch *b = kappa_batch;

	if (b->ntxns == 0)
		b->first_commit_lsn = commit_lsn;
	b->ntxns++;
	b->last_commit_lsn = commit_lsn;
	b->last_commit_time = commit_time;
}

static void
sink_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt, bool is_init)
{
	opt->output_type = OUTPUT_PLUGIN_BINARY_OUTPUT;
	opt->receive_rewrites = false;
	ctx->output_plugin_private = NULL;
	/* for the event log's records */
	kappa_relinfo_init(ctx->context, NIL, false);
	if (!is_init)
		kappa_json_startup(ctx->context);
}

static void
sink_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	kappa_batch->log_txn_lines = 0;
	kappa_batch->txn_started = GetCurrentTimestamp();

	/*
	 * An aligned batch is exactly the transactions its snapshot sees: one
	 * that committed before the end of the WAL decoded but is not seen
	 * (it had not left the proc array yet) makes the batch unusable.
	 */
	if (kappa_batch->snapshot != NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(kappa_batch->mcxt);

		/* kept, to check a newer snapshot against (realign_batch) */
		kappa_batch->xids = lappend_oid(kappa_batch->xids, (Oid) txn->xid);
		MemoryContextSwitchTo(oldcxt);
		if (XidInMVCCSnapshot(txn->xid, kappa_batch->snapshot))
			kappa_batch->misaligned = true;
	}
}

/*
 * Buffer one decoded change of relation changed as a change of source
 * target (the same relation, or a partitioned table above it), whose row
 * images are oldtup and newtup (either may be NULL), in target's columns.
 */
static void
buffer_change(Relation target, Relation changed, ReorderBufferTXN *txn,
			  ReorderBufferChange *change, HeapTuple oldtup, HeapTuple newtup,
			  int64 seq)
{
	KappaSourceBuffer *buf = source_buffer(target, txn->final_lsn);

	/*
	 * The primary key the change was made under (the relation is read with
	 * the historic snapshot): engine 2 takes rows by key only if the key
	 * held through the batch (key_joins.c).
	 */
	if (RelationGetPrimaryKeyIndex(target) != buf->pkey_index)
		buf->pkey_varies = true;

	if (change->action != REORDER_BUFFER_CHANGE_INSERT)
	{
		buf->modify_lsn = txn->final_lsn;	/* commits arrive in order */

		/*
		 * The old row is whole only under REPLICA IDENTITY FULL, as the
		 * table changed was when the change was made (the relation is read
		 * with the historic snapshot, as pgoutput reads it to tell a whole
		 * old row from a key): else it is the key alone, or nothing.
		 */
		if (changed->rd_rel->relreplident != REPLICA_IDENTITY_FULL)
		{
			buf->no_old_lsn = txn->final_lsn;
			buf->no_old_relid = RelationGetRelid(changed);
		}
		if (oldtup == NULL && change->action == REORDER_BUFFER_CHANGE_DELETE)
			buf->unidentified_lsn = txn->final_lsn;
	}
	if (oldtup)
		buffer_row(buf, RelationGetDescr(target), oldtup, false, txn->final_lsn, seq);
	if (newtup)
		buffer_row(buf, RelationGetDescr(target), newtup, true, txn->final_lsn, seq);
}

/*
 * Source relid lost rows that no change carries, committed at commit_lsn
 * (a TRUNCATE, or a partition detached or dropped): its views recompute
 * at the batch's snapshot, and the rows buffered before no longer matter.
 */
static void
truncate_source(Oid relid, XLogRecPtr commit_lsn)
{
	Relation	rel = RelationIdGetRelation(relid);
	KappaSourceBuffer *buf;
	ResourceOwner save = CurrentResourceOwner;

	if (!RelationIsValid(rel))
		return;					/* dropped: its views are broken */
	buf = source_buffer(rel, commit_lsn);
	RelationClose(rel);
	CurrentResourceOwner = batch_owner;
	tuplestore_clear(buf->rows);
	CurrentResourceOwner = save;
	buf->nrows = 0;
	buf->truncate_lsn = commit_lsn;
	kappa_batch->nchanges++;
}

/*
 * Table rel lost rows that no change carries: it recomputes if it is a
 * source, and so does each partitioned source above it.
 */
static void
truncate_with_sources_above(Relation rel, XLogRecPtr commit_lsn)
{
	if (is_source(RelationGetRelid(rel)))
		truncate_source(RelationGetRelid(rel), commit_lsn);
	if (rel->rd_rel->relispartition)
	{
		PartitionRoutes *routes = partition_routes_of(rel);

		for (int j = 0; j < routes->ntargets; j++)
			truncate_source(routes->targets[j].relid, commit_lsn);
	}
}

/*
 * A row partitions.c inserted into kappa.partition_changes: the partitions
 * of the table it names changed in this transaction (ATTACH, DETACH, DROP),
 * so each source at or above that table recomputes.
 */
static void
partitions_changed(Relation changes, ReorderBufferTXN *txn, HeapTuple tuple)
{
	bool		isnull;
	Datum		value = heap_getattr(tuple, 1, RelationGetDescr(changes), &isnull);
	Relation	rel;
	MemoryContext oldcxt;

	if (isnull || !RelationIsValid(rel = RelationIdGetRelation(DatumGetObjectId(value))))
		return;
	oldcxt = MemoryContextSwitchTo(kappa_batch->mcxt);
	truncate_with_sources_above(rel, txn->final_lsn);
	RelationClose(rel);
	MemoryContextSwitchTo(oldcxt);
}

static void
sink_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			Relation relation, ReorderBufferChange *change)
{
	MemoryContext oldcxt;
	PartitionRoutes *routes = NULL;
	HeapTuple	oldtup = NULL;
	HeapTuple	newtup = NULL;
	bool		own = is_source(RelationGetRelid(relation));
	int64		seq;

	if (!partition_changes_known)
	{
		partition_changes = kappa_partition_changes_relid();
		partition_changes_known = true;
	}
	if (RelationGetRelid(relation) == partition_changes &&
		change->action == REORDER_BUFFER_CHANGE_INSERT && change->data.tp.newtuple)
	{
		partitions_changed(relation, txn, &change->data.tp.newtuple->tuple);
		return;
	}
	if (relation->rd_rel->relispartition)
		routes = partition_routes_of(relation);
	if (!own && (routes == NULL || routes->ntargets == 0))
		return;

	oldcxt = MemoryContextSwitchTo(kappa_batch->mcxt);
	if (change->data.tp.oldtuple)
		oldtup = &change->data.tp.oldtuple->tuple;
	if (change->data.tp.newtuple)
		newtup = &change->data.tp.newtuple->tuple;
	seq = kappa_batch->next_seq++;
	if (own)
		buffer_change(relation, relation, txn, change, oldtup, newtup, seq);
	for (int i = 0; routes != NULL && i < routes->ntargets; i++)
	{
		RouteTarget *t = &routes->targets[i];
		Relation	target = RelationIdGetRelation(t->relid);

		if (!RelationIsValid(target))
			elog(ERROR, "could not open relation with OID %u", t->relid);
		buffer_change(target, relation, txn, change,
					  oldtup && t->map ? execute_attr_map_tuple(oldtup, t->map) : oldtup,
					  newtup && t->map ? execute_attr_map_tuple(newtup, t->map) : newtup,
					  seq);
		RelationClose(target);
	}
	kappa_batch->nchanges++;

	if (log_wanted(RelationGetRelid(relation), txn->final_lsn))
		log_change(relation, txn, change);
	MemoryContextSwitchTo(oldcxt);
}

static void
sink_truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			  int nrelations, Relation relations[], ReorderBufferChange *change)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(kappa_batch->mcxt);

	for (int i = 0; i < nrelations; i++)
	{
		/* a partition's rows are also its partitioned sources' */
		truncate_with_sources_above(relations[i], txn->final_lsn);
		if (!is_source(RelationGetRelid(relations[i])))
			continue;

		/* one record per captured table, in the plugin's shape */
		if (log_wanted(RelationGetRelid(relations[i]), txn->final_lsn))
		{
			StringInfoData line;

			initStringInfo(&line);
			appendStringInfoString(&line, "{\"kind\":\"truncate\",\"lsn\":");
			kappa_json_lsn(&line, change->lsn);
			appendStringInfo(&line, ",\"relations\":[{%s}],\"cascade\":%s,\"restart_identity\":%s}",
							 kappa_relinfo_get(relations[i])->qualname,
							 change->data.truncate.cascade ? "true" : "false",
							 change->data.truncate.restart_seqs ? "true" : "false");
			log_line(relations[i], txn->final_lsn, &line);
			pfree(line.data);
		}
	}
	MemoryContextSwitchTo(oldcxt);
}

static void
sink_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			XLogRecPtr commit_lsn)
{
	KappaBatch *b = kappa_batch;
	TimestampTz now = GetCurrentTimestamp();

	kappa_batch_commit(commit_lsn, txn->xact_time.commit_time);
	b->last_end_lsn = txn->end_lsn;
	b->replay_us += now - b->txn_started;
	if (b->log_txn_lines > 0)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(b->mcxt);
		KappaLogTxn *t = palloc(sizeof(KappaLogTxn));

		t->xid = txn->xid;
		t->commit_lsn = commit_lsn;
		t->end_lsn = txn->end_lsn;
		t->commit_time = txn->xact_time.commit_time;
		t->origin = txn->origin_id;
		b->log_txns = lappend(b->log_txns, t);
		b->log_txn_lines = 0;
		MemoryContextSwitchTo(oldcxt);
	}
	if (b->nchanges >= kappa_batch_max_changes || now >= b->deadline)
		b->full = true;
}

static void
sink_message(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			 XLogRecPtr lsn, bool transactional, const char *prefix,
			 Size sz, const char *message)
{
}

/* The worker's own writes are never decoded back into it. */
static bool
sink_filter_origin(LogicalDecodingContext *ctx, RepOriginId origin_id)
{
	return origin_id != InvalidRepOriginId && origin_id == kappa_worker_origin;
}

static void
sink_shutdown(LogicalDecodingContext *ctx)
{
}

void
kappa_sink_init_callbacks(OutputPluginCallbacks *cb)
{
	cb->startup_cb = sink_startup;
	cb->begin_cb = sink_begin;
	cb->change_cb = sink_change;
	cb->truncate_cb = sink_truncate;
	cb->commit_cb = sink_commit;
	cb->message_cb = sink_message;
	cb->filter_by_origin_cb = sink_filter_origin;
	cb->shutdown_cb = sink_shutdown;
}
