/*-------------------------------------------------------------------------
 *
 * capture.c
 *	  kappa.capture and kappa.uncapture: which tables the event log keeps.
 *
 * Capturing a table starts its log with a snapshot: the table is briefly
 * locked against writes (waiting for the writers in flight), its rows are
 * appended to the chain as "snapshot" rows, one insert record per row, at
 * the LSN taken under the lock, and the table is recorded in
 * kappa.captures.  Every transaction that changes the table afterwards
 * commits after this one, and the apply worker logs it; so the snapshot
 * and the logged changes together are the table's whole history from the
 * capture on, which is what replay needs to rebuild a view from scratch.
 *
 * After pg_dump and pg_restore, kappa.restore (restore.c) captures the
 * tables again through kappa_capture_relation: their history in the new
 * database starts with a new snapshot, after the restore marker that
 * separates it from the restored log (event_log.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/heaptoast.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_capture);
PG_FUNCTION_INFO_V1(kappa_uncapture);

/* The checks kappa.capture makes on the table. */
static void
check_capturable(Relation rel)
{
	const char *name = RelationGetRelationName(rel);
	Oid			nsp = RelationGetNamespace(rel);
	char	   *nspname = get_namespace_name(nsp);

	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot capture partitioned table \"%s\"", name),
				 errdetail("Changes are decoded per partition."),
				 errhint("Capture each partition.")));
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", name)));
	if (rel->rd_rel->relpersistence != RELPERSISTENCE_PERMANENT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot capture %s table \"%s\"",
						rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP ? "temporary" : "unlogged",
						name),
				 errdetail("Its changes are not written to the WAL.")));
	if (IsCatalogRelation(rel) || strcmp(nspname, "kappa") == 0 ||
		strncmp(nspname, "kappa_v", 7) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot capture system or pg_kappa table \"%s\"", name)));
	if (kappa_is_derived_table(RelationGetRelid(rel)))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot capture derived table \"%s\"", name),
				 errdetail("The apply worker writes its rows, and the worker's own changes are not decoded."),
				 errhint("Capture the tables the view reads: replaying their log computes the view again.")));
	if (!OidIsValid(RelationGetReplicaIndex(rel)) &&
		rel->rd_rel->relreplident != REPLICA_IDENTITY_FULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot capture table \"%s\" because it has no primary key or replica identity", name),
				 errdetail("Updates and deletes of its rows could not be told apart in the log."),
				 errhint("Add a primary key, or use ALTER TABLE ... REPLICA IDENTITY.")));
	if (!pg_class_ownercheck(RelationGetRelid(rel), GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, name);
}

/*
 * Append the table's rows, as seen by a snapshot taken now (after the
 * lock), to the chain as snapshot rows at lsn.  Returns how many.
 */
static int64
write_snapshot(Relation rel, XLogRecPtr lsn)
{
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext,
												 "pg_kappa snapshot row",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext sesscxt = AllocSetContextCreate(CurrentMemoryContext,
												  "pg_kappa snapshot",
												  ALLOCSET_DEFAULT_SIZES);
	TupleDesc	desc = RelationGetDescr(rel);
	char	   *name = kappa_log_table_name(get_namespace_name(RelationGetNamespace(rel)),
												RelationGetRelationName(rel));
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TableScanDesc scan;
	HeapTuple	tuple;
	KappaRelInfo *ri;
	KappaLogChunk chunk;
	int64		rows = 0;
	int			nestlevel;

	kappa_relinfo_init(sesscxt, NIL, false);
	kappa_json_startup(sesscxt);
	ri = kappa_relinfo_get(rel);
	nestlevel = NewGUCNestLevel();
	kappa_local_output_settings();

	kappa_log_chunk_init(&chunk);
	chunk.first_lsn = chunk.last_lsn = lsn;
	kappa_log_chunk_add_table(&chunk, RelationGetRelid(rel), name);

	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(rowcxt);
		HeapTuple	flat = tuple;

		CHECK_FOR_INTERRUPTS();
		/* a snapshot has every value: no unchanged TOAST markers */
		if (HeapTupleHasExternal(tuple))
			flat = toast_flatten_tuple(tuple, desc);
		MemoryContextSwitchTo(oldcxt);

		appendStringInfoString(&chunk.events, "{\"kind\":\"insert\"");
		kappa_write_change_fields(&chunk.events, ri, desc, lsn, true, false,
								  NULL, flat);
		appendStringInfoString(&chunk.events, ",\"snapshot\":true}\n");
		chunk.nchanges++;
		rows++;
		MemoryContextReset(rowcxt);

		if (chunk.events.len >= KAPPA_LOG_CHUNK_BYTES)
		{
			kappa_log_append("snapshot", &chunk);
			resetStringInfo(&chunk.events);
			chunk.nchanges = 0;
		}
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	AtEOXact_GUC(true, nestlevel);

	/* an empty table still marks where its log starts */
	if (chunk.events.len > 0 || rows == 0)
		kappa_log_append("snapshot", &chunk);
	kappa_relinfo_reset();
	MemoryContextDelete(sesscxt);
	MemoryContextDelete(rowcxt);
	return rows;
}

/* kappa.capture(source, retain) */
Datum
kappa_capture(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Interval   *retain = NULL;
	char	   *retain_sql = "NULL";

	kappa_refuse_in_view_code("kappa.capture", false);
	relid = kappa_oid_arg(fcinfo, 0, "source");
	if (!PG_ARGISNULL(1))
	{
		retain = PG_GETARG_INTERVAL_P(1);
		if (retain->month < 0 || retain->day < 0 || retain->time < 0 ||
			(retain->month == 0 && retain->day == 0 && retain->time == 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("retain must be a positive interval"),
					 errhint("Pass NULL to keep the log forever.")));
		if (kappa_interval_too_long(retain))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("retain must be less than %d years", KAPPA_MAX_INTERVAL_YEARS),
					 errhint("Pass NULL to keep the log forever.")));
		retain_sql = quote_literal_cstr(DatumGetCString(DirectFunctionCall1(interval_out,
																			IntervalPGetDatum(retain))));
	}
	if (KappaShmem == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_kappa must be loaded via shared_preload_libraries"),
				 errhint("Add pg_kappa to shared_preload_libraries and restart the server.")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("kappa.capture cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("The snapshot of the table is taken after it is locked."),
				 errhint("Run it in a READ COMMITTED transaction.")));

	PG_RETURN_LSN(kappa_capture_relation(relid, retain_sql, true));
}

/*
 * Capture table relid with retention retain_sql (an interval literal, or
 * NULL), or only set the retention if it is captured already.  Returns the
 * LSN its log starts at.  Must come before the transaction writes anything
 * if the database has no slot yet (kappa_ensure_slot).  With check_owner,
 * the current user must own the table (kappa.capture); without, the caller
 * has made sure the table is to be captured (capture_ddl.c).
 */
XLogRecPtr
kappa_capture_relation(Oid relid, const char *retain_sql, bool check_owner)
{
	Oid			views_relid = kappa_views_relid();
	Oid			extowner;
	Relation	rel;
	XLogRecPtr	lsn;
	SavedUser	saved;
	char	   *name;
	int64		rows;

	/* nothing of someone else's table is looked at, or locked */
	if (check_owner && !pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, kappa_rel_label(relid));
	rel = relation_open(relid, AccessShareLock);
	check_capturable(rel);
	name = kappa_log_table_name(get_namespace_name(RelationGetNamespace(rel)),
									RelationGetRelationName(rel));
	extowner = kappa_extension_owner();

	/* as kappa.create_view: the worker must not drop the slot meanwhile */
	LockRelationOid(views_relid, RowExclusiveLock);
	kappa_ensure_slot();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(extowner, &saved);

	/* already captured: only the retention changes */
	if (SPI_execute(psprintf("SELECT start_lsn FROM kappa.captures WHERE relid OPERATOR(pg_catalog.=) '%u'::pg_catalog.oid", relid),
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.captures");
	if (SPI_processed == 1)
	{
		bool		isnull;

		lsn = DatumGetLSN(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (SPI_execute(psprintf("UPDATE kappa.captures SET retain = %s WHERE relid OPERATOR(pg_catalog.=) '%u'::pg_catalog.oid",
								 retain_sql, relid), false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update kappa.captures");
		ereport(NOTICE,
				(errmsg("table \"%s\" is already captured; its retention was set",
						RelationGetRelationName(rel))));
		kappa_unbecome(&saved);
		SPI_finish();
		relation_close(rel, AccessShareLock);
		return lsn;
	}

	/* the first capture after a restore starts a new part of the chain */
	(void) kappa_log_restore_marker();

	/*
	 * Block writers (waiting for those in flight), then take the LSN: every
	 * change either committed before it and is in the snapshot, or commits
	 * after this transaction and is logged by the worker.
	 */
	kappa_lock_sources(list_make1_oid(relid));
	lsn = GetXLogInsertRecPtr();

	kappa_log_lock();
	kappa_guard_bypass = true;
	PG_TRY();
	{
		rows = write_snapshot(rel, lsn);
	}
	PG_FINALLY();
	{
		kappa_guard_bypass = false;
	}
	PG_END_TRY();

	kappa_catalog_insert(psprintf("INSERT INTO kappa.captures (relid, name, retain, start_lsn)"
								  " VALUES (%u, %s, %s, '%X/%X')",
								  relid, quote_literal_cstr(name), retain_sql,
								  LSN_FORMAT_ARGS(lsn)));
	kappa_unbecome(&saved);
	SPI_finish();
	relation_close(rel, NoLock);

	ereport(DEBUG1,
			(errmsg("captured table \"%s\" at %X/%X with a snapshot of " INT64_FORMAT " rows",
					name, LSN_FORMAT_ARGS(lsn), rows)));

	/* tell the worker, and make sure it runs */
	CacheInvalidateRelcacheByRelid(views_relid);
	kappa_request_worker(MyDatabaseId);
	return lsn;
}

/* How long kappa.uncapture waits for the worker to log what came before */
#define UNCAPTURE_WAIT_MS 10000

/* kappa.uncapture(source): stop logging a table; its logged events stay. */
Datum
kappa_uncapture(PG_FUNCTION_ARGS)
{
	Oid			relid = kappa_oid_arg(fcinfo, 0, "source");
	Oid			extowner = kappa_extension_owner();
	SavedUser	saved;
	const char *where = psprintf(" FROM kappa.captures WHERE relid OPERATOR(pg_catalog.=) '%u'::pg_catalog.oid",
								 relid);

	kappa_refuse_in_view_code("kappa.uncapture", false);
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(extowner, &saved);
	if (SPI_execute(psprintf("SELECT 1%s", where), true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.captures");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table \"%s\" is not captured", get_rel_name(relid))));

	/*
	 * What the table's writers committed before is logged first: they are
	 * held off while the worker gets there (capture_ddl.c).
	 */
	if (kappa_capture_hold_writers(list_make1_oid(relid), UNCAPTURE_WAIT_MS) != NIL)
		ereport(WARNING,
				(errmsg("changes of table %s committed before may be missing from its event log",
						kappa_qualified_name(relid)),
				 errdetail("The apply worker had not logged them.")));
	if (SPI_execute(psprintf("DELETE%s", where), false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from kappa.captures");
	kappa_unbecome(&saved);
	SPI_finish();

	CacheInvalidateRelcacheByRelid(kappa_views_relid());
	kappa_wake_worker(MyDatabaseId);
	PG_RETURN_VOID();
}
