/*-------------------------------------------------------------------------
 *
 * apply_worker.c
 *	  The apply worker: one per database, it owns the database's logical
 *	  slot, decodes in-process, applies each batch of committed source
 *	  transactions to every view in one local transaction, and only then
 *	  confirms the slot.
 *
 * Exactly once: a view's applied LSN is written in the same transaction as
 * its deltas, and a transaction is applied to a view only when its commit
 * LSN is past the view's applied LSN.  The slot is confirmed after the
 * local commit, so a crash before it makes the slot hand the same
 * transactions over again, and the applied LSNs skip them.  The worker's
 * writes carry its replication origin, which the decoding callbacks filter
 * out, so they are never decoded back.
 *
 * Decoding is done as pg_logical_slot_get_changes does it (a decoding
 * context over read_local_xlog_page, LogicalDecodingProcessRecord per
 * record), but the context lives as long as the worker and reads only up
 * to the flushed end of WAL, so batches follow each other without
 * re-reading WAL.  The callbacks are in change_sink.c, the per-view work in
 * delta_engine.c.
 *
 * A view that fails is marked broken in the same transaction (its work is
 * rolled back in a subtransaction) and the others go on.  Anything else
 * that fails ends the worker; the launcher starts it again with backoff.
 *
 * No view may hold the others: its work runs under lock_timeout and
 * statement_timeout (pg_kappa.view_lock_timeout, view_statement_timeout).
 * A view that times out, is canceled or loses a deadlock is not broken: it
 * is held, exactly as a resumed view, "initializing" with its applied LSN
 * holding the slot back and the reason in last_error, while the others go
 * on.  It is retried after a delay that grows while it keeps timing out
 * (at once when it waits for a lock that is still taken, since that costs
 * nothing): it becomes running again and decoding starts over from the
 * slot's confirmed position, so that it gets every change it missed, as
 * after a restart but without one.  Its last_error is cleared once decoding
 * is past where it was.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "access/table.h"
#include "access/xact.h"
#include "access/xlogreader.h"
#include "commands/trigger.h"
#include "access/xlog.h"
#include "access/xlogutils.h"
#include "catalog/pg_type.h"
#include "commands/vacuum.h"
#include "executor/spi.h"
#include "parser/parse_node.h"
#include "parser/parser.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/decode.h"
#include "replication/logical.h"
#include "replication/origin.h"
#include "replication/slot.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/sinval.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "pg_kappa.h"

bool		kappa_in_apply_worker = false;

static KappaWorkerSlot *MySlot = NULL;
static Oid	views_relid = InvalidOid;
static volatile bool views_changed = true;
static bool resetting_caches = false;	/* in reset_caches() */
static bool views_aligned = false;	/* some view of engine 2: align batches */

/* a slot position to confirm once WAL is flushed up to confirm_after */
static XLogRecPtr confirm_pending = InvalidXLogRecPtr;
static XLogRecPtr confirm_after = InvalidXLogRecPtr;
static XLogRecPtr paused_floor = InvalidXLogRecPtr;

/* the event log, held (see hold_log) */
static bool log_held = false;
static XLogRecPtr log_held_at = InvalidXLogRecPtr;
static TimestampTz log_retry_at = 0;

/*
 * A view that timed out: held ("initializing") until retry_at, then
 * retried and caught up.  Kept until it has caught up, so that the delay
 * grows while it keeps timing out.
 */
typedef struct HeldView
{
	int			id;
	Oid			relid;			/* derived table */
	List	   *sources;		/* OIDs */
	int			timeouts;		/* in a row */
	bool		held;			/* not retried yet */
	bool		running;		/* held while "running" (rewritten after a
								 * batch's snapshot, or its row locked):
								 * waiters must not take the worker's
								 * position as its */
	bool		row_locked;		/* its row was found locked (said once) */
	TimestampTz retry_at;
} HeldView;

static List *held_views = NIL;	/* HeldView *, in TopMemoryContext */

/* A source of a view the worker keeps changes for (reload_views) */
typedef struct ViewSource
{
	int			id;
	int			engine;
	Oid			relid;
	bool	   *read;			/* engine 2: the columns the view reads, from
								 * the catalog, for while it has no plan;
								 * NULL for all */
	int			read_natts;
} ViewSource;

static List *view_sources = NIL;	/* ViewSource *, in TopMemoryContext */

/* retried views have caught up once decoding is past this */
static XLogRecPtr catch_up_lsn = InvalidXLogRecPtr;

/*
 * Decoding started over from the slot (a retry, or this worker's start)
 * reads again all the WAL the slot keeps, which an old open transaction
 * can make long, and the other views wait meanwhile.  So decoding starts
 * over at most once per RESTART_COST_FACTOR times what the last start took
 * to catch up: however often a role holds a view back and lets it go, the
 * worker spends at most a fifth of its time reading WAL again.
 */
#define RESTART_COST_FACTOR 4
static TimestampTz restart_began = 0;	/* catching up since then */
static int64 restart_cost_us = 0;	/* what the last start took */
static TimestampTz next_restart_at = 0;

static LogicalDecodingContext *start_decoding(void);

/* a view still waiting for a lock is looked at again after this */
#define LOCK_RECHECK_MS 1000
/* the delay before a retry: doubles per timeout in a row, up to the max */
#define RETRY_BASE_MS 1000
#define RETRY_MAX_MS (5 * 60 * 1000)

/* how long after decoding started over it may start over again */
static int64
restart_delay_us(void)
{
	return Min(RESTART_COST_FACTOR * restart_cost_us, (int64) RETRY_MAX_MS * 1000);
}

/* the statement timer is armed for the view being applied */
static bool statement_timer_armed = false;
static TimeoutId overdue_timeout = MAX_TIMEOUTS;	/* see view_limits_begin */
static HeldView *find_held(int id);
static HeldView *hold_in_worker(int id, Oid relid, List *sources);
static bool hold_view(int id, Oid relid, List *sources, const char *reason);
static bool lock_view_row(int id);
static void set_positions(XLogRecPtr processed, XLogRecPtr running, XLogRecPtr logged);
static void hold_row_locked(int id, Oid relid, List *sources);
static SPIPlanPtr batch_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes);
static volatile int overdue_id = 0;	/* the view whose code runs now */

/*
 * Timeout handler: a view's code ran past twice its statement timeout (it
 * caught the cancel).  Note the view where the next worker will find it,
 * and end this one; only ending the process cannot be caught.
 */
static void
view_overdue_handler(void)
{
	if (overdue_id != 0)
	{
		MySlot->overdue_view = overdue_id;
		MySlot->overdue_count++;
	}
	ProcDiePending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/*
 * At start: if the previous worker was ended in a view's code, hold that
 * view (as after a timeout: it is retried later, with a growing delay)
 * rather than stall on it again.
 */
static void
hold_overdue_view(void)
{
	int			id = MySlot->overdue_view;

	if (id == 0)
		return;
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(psprintf("SELECT relid, sources FROM kappa.views WHERE id = %d", id),
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	if (SPI_processed == 1)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1, &isnull));
		List	   *sources = kappa_oid_array_list(SPI_getbinval(SPI_tuptable->vals[0],
																 SPI_tuptable->tupdesc, 2, &isnull));
		HeldView   *h;

		if (hold_view(id, relid, sources,
					  "its code ran past twice pg_kappa.view_statement_timeout and did not stop, so the worker was ended") &&
			(h = find_held(id)) != NULL)
		{
			h->timeouts = Max(h->timeouts, MySlot->overdue_count);
			h->retry_at = GetCurrentTimestamp() +
				(TimestampTz) Min(RETRY_BASE_MS << Min(h->timeouts - 1, 16), RETRY_MAX_MS) * 1000;
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MySlot->overdue_view = 0;
}

static void
set_state(const char *state, const char *error)
{
	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	strlcpy(MySlot->state, state, sizeof(MySlot->state));
	if (error)
		strlcpy(MySlot->last_error, error, sizeof(MySlot->last_error));
	LWLockRelease(KappaShmem->lock);
}

static void
worker_detach(int code, Datum arg)
{
	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	MySlot->pid = 0;
	MySlot->latch = NULL;
	set_positions(InvalidXLogRecPtr, InvalidXLogRecPtr, InvalidXLogRecPtr);
	LWLockRelease(KappaShmem->lock);
}

static void
views_invalidated(Datum arg, Oid relid)
{
	/* our own reset (reset_caches) changes no view */
	if (relid == InvalidOid && resetting_caches)
		return;
	if (relid == InvalidOid || relid == views_relid)
	{
		views_changed = true;
		kappa_sink_sources_changed();
	}
}

/*
 * For tests: when pg_kappa.test_crash_point names this point, the batch
 * carries transactions (an empty batch is not the one the test waits for)
 * and the file pg_kappa_crash exists in the data directory, remove the file
 * (so the crash happens once) and die as if killed.
 */
static void
crash_point(const char *point)
{
	if (kappa_test_crash_point == NULL || kappa_batch->ntxns == 0 ||
		strcmp(kappa_test_crash_point, point) != 0)
		return;
	if (unlink("pg_kappa_crash") != 0)
		return;
	elog(LOG, "pg_kappa apply worker: test crash point \"%s\" reached", point);
	kill(MyProcPid, SIGKILL);
	pg_usleep(10000000L);
}

/*
 * Nothing left to maintain: drop the slot and the origin so that no WAL is
 * kept for nobody, withdraw the request for a worker, and exit.  Called in
 * a transaction holding ShareLock on kappa.views, so no view is being
 * created meanwhile.
 */
static void
retire(LogicalDecodingContext *ctx, RepOriginId origin)
{
	char	   *name = kappa_slot_name(MyDatabaseId);

	if (ctx)
		FreeDecodingContext(ctx);
	if (MyReplicationSlot)
		ReplicationSlotRelease();
	if (SearchNamedReplicationSlot(name, true))
		ReplicationSlotDrop(name, true);
	if (origin != InvalidRepOriginId)
	{
		replorigin_session_reset();
		replorigin_session_origin = InvalidRepOriginId;
	}
	if (replorigin_by_name(name, true) != InvalidRepOriginId)
		replorigin_drop_by_name(name, true, false);

	/*
	 * Withdraw the request before committing, while this transaction still
	 * holds kappa.views: a kappa.create_view waiting for it asks again
	 * after, and is not lost.
	 */
	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	MySlot->wanted = false;
	set_positions(InvalidXLogRecPtr, InvalidXLogRecPtr, InvalidXLogRecPtr);
	LWLockRelease(KappaShmem->lock);
	CommitTransactionCommand();
	ereport(LOG,
			(errmsg("pg_kappa apply worker for database %u exiting: no derived view to maintain (none, or every one broken) and no captured table",
					MyDatabaseId)));
	proc_exit(0);
}

/* Drop replication origin name (a step of drop_orphaned_origins). */
static void
drop_origin(void *name)
{
	replorigin_drop_by_name(name, true, true);
}

/*
 * Drop the replication origins of pg_kappa workers of databases that are
 * gone.  A worker drops its own when it retires (DROP EXTENSION, the last
 * view dropped); a database dropped otherwise (its slot dropped by hand
 * first) leaves it behind, and each origin keeps a replication state slot:
 * max_replication_slots of them and no worker can start.  In a transaction.
 */
static void
drop_orphaned_origins(void)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	List	   *names = NIL;
	ListCell   *lc;

	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT o.roname FROM pg_catalog.pg_replication_origin o"
					" WHERE o.roname OPERATOR(pg_catalog.~) '^pg_kappa_[0-9]+$'"
					" AND NOT EXISTS (SELECT FROM pg_catalog.pg_database d"
					" WHERE d.oid OPERATOR(pg_catalog.=) pg_catalog.substr(o.roname, 10)::pg_catalog.oid)",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_replication_origin");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext spicxt = MemoryContextSwitchTo(oldcxt);

		names = lappend(names, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		MemoryContextSwitchTo(spicxt);
	}
	SPI_finish();
	PopActiveSnapshot();

	/* each in a subtransaction: one in use by somebody stays, and logs why */
	foreach(lc, names)
	{
		char	   *name = lfirst(lc);
		ErrorData  *edata = kappa_try_in_subxact(drop_origin, name, oldcxt);

		if (edata == NULL)
			ereport(LOG,
					(errmsg("pg_kappa apply worker dropped replication origin \"%s\" of a database that no longer exists",
							name)));
		else
		{
			ereport(WARNING,
					(errmsg("could not drop replication origin \"%s\" of a database that no longer exists: %s",
							name, edata->message)));
			FreeErrorData(edata);
		}
	}
}

/* The held view id, or NULL. */
static HeldView *
find_held(int id)
{
	ListCell   *lc;

	foreach(lc, held_views)
	{
		HeldView   *h = lfirst(lc);

		if (h->id == id)
			return h;
	}
	return NULL;
}

/* Is view id held by this worker after a timeout (and not retried yet)? */
static bool
is_held(int id)
{
	HeldView   *h = find_held(id);

	return h != NULL && h->held;
}

/* A view waiting at its applied LSN holds the slot back there. */
static void
hold_slot_at(XLogRecPtr applied)
{
	if (paused_floor == InvalidXLogRecPtr || applied < paused_floor)
		paused_floor = applied;
}

/*
 * Publish how far the worker has got (the shared memory lock held): every
 * view has applied everything before processed, the running views
 * everything before running, but those this worker holds (not retried
 * yet), which hold the slot back at their applied LSN: their waiters must
 * take processed.  That is every held view, not only those held while they
 * stay "running" (rewritten after a batch's snapshot, their row locked by
 * another transaction): one held as "initializing" becomes "running" again
 * when its owner builds it again (kappa.alter_view rebuild => true keeps
 * its id), and the worker goes on holding it until it is retried.  They
 * are marked by id, which nothing changes (an owner, say, may change while
 * a view is held).  The event log holds everything before logged.
 */
static void
set_positions(XLogRecPtr processed, XLogRecPtr running, XLogRecPtr logged)
{
	ListCell   *lc;
	int			n = 0;
	uint64	   *held_ids = kappa_held_ids(MySlot);

	memset(held_ids, 0, KAPPA_HELD_IDS / 8);
	MySlot->held_beyond = false;
	foreach(lc, held_views)
	{
		HeldView   *h = lfirst(lc);

		if (!h->held)
			continue;
		if (h->id >= 0 && h->id < KAPPA_HELD_IDS)
			held_ids[h->id / 64] |= UINT64CONST(1) << (h->id % 64);
		else
			MySlot->held_beyond = true;
		n++;
	}
	MySlot->nheld_running = n;
	MySlot->processed_lsn = n > 0 ? processed : running;
	MySlot->running_lsn = running;
	MySlot->logged_lsn = logged;
}

/*
 * Say which columns of the sources the views read from the next batch's
 * row images (the sink buffers the others as null): a view of engine 2
 * whose plan is kept says its columns, any other view every column (NULL).
 * A view whose plan changes after this is applied from a batch decoded
 * again (kappa_check_buffer_columns).
 */
static void
say_columns_read(void)
{
	ListCell   *lc;

	foreach(lc, view_sources)
	{
		ViewSource *vs = lfirst(lc);
		const bool *read = NULL;
		int			natts = 0;

		if (vs->engine >= 2 &&
			!kappa_rules_columns_read(vs->id, vs->relid, &read, &natts))
		{
			read = vs->read;
			natts = vs->read_natts;
		}
		kappa_sink_columns_read(vs->relid, read, natts);
	}
}

/*
 * Reload what the worker needs to know about the views: which tables to
 * keep changes of, and which views wait for their changes (paused, or
 * resumed and "initializing").  Exits when nothing is left to do.  A view
 * resumed while the worker runs must have its changes decoded again from
 * its applied LSN (the slot was held there), so the worker restarts; at
 * start, such views become running (those held after a timeout by an
 * earlier worker too: their last_error is cleared once they caught up).
 * Views this worker holds after a timeout are "initializing" too, but it
 * retries them itself (retry_held_views).
 */
static void
reload_views(LogicalDecodingContext *ctx, RepOriginId origin, bool at_start)
{
	List	   *sources = NIL;
	List	   *captured = NIL;
	List	   *capture_starts = NIL;
	bool		resumed = false;
	uint64		nviews;
	ListCell   *lc;

	views_changed = false;
	StartTransactionCommand();
	views_relid = kappa_views_relid();
	/* a DROP EXTENSION that committed meanwhile has dropped it once locked */
	if (OidIsValid(views_relid))
	{
		LockRelationOid(views_relid, AccessShareLock);
		views_relid = kappa_views_relid();
	}
	if (!OidIsValid(views_relid))
		retire(ctx, origin);	/* extension dropped */

	kappa_engine_reset();
	paused_floor = InvalidXLogRecPtr;
	/* the event log, held, holds the slot where it stopped (hold_log) */
	if (log_held)
		hold_slot_at(log_held_at);
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (at_start)
	{
		/*
		 * A row another transaction holds is not waited for (see
		 * lock_view_row): its view stays held, and is retried.
		 */
		if (SPI_execute("UPDATE kappa.views SET state = 'running' WHERE id IN"
						" (SELECT id FROM kappa.views WHERE state = 'initializing'"
						" FOR NO KEY UPDATE SKIP LOCKED)"
						" RETURNING id, last_error IS NOT NULL",
						false, 0) != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not update kappa.views");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			HeldView   *h;
			MemoryContext oldcxt;

			if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull)))
				continue;
			/* (the list outlives SPI's memory and the transaction's) */
			oldcxt = MemoryContextSwitchTo(TopMemoryContext);
			h = palloc0(sizeof(HeldView));
			h->id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			held_views = lappend(held_views, h);
			MemoryContextSwitchTo(oldcxt);
			catch_up_lsn = GetFlushRecPtr(NULL);
		}
		if (SPI_execute("SELECT id, relid, sources FROM kappa.views WHERE state = 'initializing'",
						false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read kappa.views");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			bool		isnull;
			List	   *srcs = kappa_oid_array_list(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
			HeldView   *h;

			h = hold_in_worker(DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull)),
							   DatumGetObjectId(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull)),
							   srcs);
			h->retry_at = GetCurrentTimestamp() + (TimestampTz) LOCK_RECHECK_MS * 1000;
			list_free(srcs);
		}
	}
	if (SPI_execute("SELECT id, state, applied_lsn, s.source, " KAPPA_VIEW_ENGINE ", s.n"
					" FROM kappa.views v, unnest(v.sources) WITH ORDINALITY s(source, n)"
					" WHERE state IN ('running', 'paused', 'initializing')", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	nviews = SPI_processed;
	views_aligned = false;
	foreach(lc, view_sources)
	{
		ViewSource *vs = lfirst(lc);

		if (vs->read != NULL)
			pfree(vs->read);
	}
	list_free_deep(view_sources);
	view_sources = NIL;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *state = SPI_getvalue(tup, desc, 2);
		XLogRecPtr	applied = DatumGetLSN(SPI_getbinval(tup, desc, 3, &isnull));
		Oid			src = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
		int16		engine = DatumGetInt16(SPI_getbinval(tup, desc, 5, &isnull));
		int64		index = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
		int			read_natts = 0;
		bool	   *read = engine >= 2 ? kappa_catalog_columns_read(id, (int) index, src, &read_natts) : NULL;
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);
		ViewSource *vs = palloc(sizeof(ViewSource));

		vs->id = id;
		vs->engine = engine;
		vs->relid = src;
		vs->read = read ? memcpy(palloc(sizeof(bool) * (read_natts + 1)), read,
								 sizeof(bool) * (read_natts + 1)) : NULL;
		vs->read_natts = read_natts;
		view_sources = lappend(view_sources, vs);
		sources = list_append_unique_oid(sources, src);
		if (vs->engine >= 2)
			views_aligned = true;
		/*
		 * A view held as "initializing" that is "running" now was built
		 * again meanwhile (kappa.alter_view rebuild => true): nothing is
		 * wrong with it, retry it at once rather than after its delay.
		 */
		if (strcmp(state, "running") == 0 && is_held(id))
		{
			HeldView   *h = find_held(id);

			if (!h->running)
			{
				h->running = true;
				h->timeouts = 0;
				h->retry_at = GetCurrentTimestamp();
			}
		}
		if (strcmp(state, "running") != 0 || is_held(id))
		{
			hold_slot_at(applied);
			if (strcmp(state, "initializing") == 0 && !is_held(id))
				resumed = true;
		}
		MemoryContextSwitchTo(oldcxt);
	}

	/* captured tables are kept too, for the event log */
	if (SPI_execute(!kappa_log_available() ? "SELECT 0::oid, '0/0'::pg_lsn WHERE false" :
					kappa_log_has_capture_state() ?
					"SELECT relid, start_lsn FROM kappa.captures WHERE failed_lsn IS NULL" :
					"SELECT relid, start_lsn FROM kappa.captures", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.captures");
	nviews += SPI_processed;
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			XLogRecPtr *start = palloc(sizeof(XLogRecPtr));

			*start = DatumGetLSN(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
			sources = list_append_unique_oid(sources, relid);
			captured = lappend_oid(captured, relid);
			capture_starts = lappend(capture_starts, start);
		}
		MemoryContextSwitchTo(oldcxt);
	}

	if (nviews == 0)
	{
		/* make sure, under a lock that create_view conflicts with */
		LockRelationOid(views_relid, ShareLock);
		/* not read-only: a fresh snapshot, taken after the lock */
		if (SPI_execute(kappa_log_available() ?
						"SELECT 1 FROM kappa.views WHERE state IN ('running', 'paused', 'initializing')"
						" UNION ALL SELECT 1 FROM kappa.captures" :
						"SELECT 1 FROM kappa.views WHERE state IN ('running', 'paused', 'initializing')",
						false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read kappa.views");
		if (SPI_processed == 0)
		{
			SPI_finish();
			PopActiveSnapshot();
			retire(ctx, origin);
		}
		views_changed = true;	/* look again next time round */
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	kappa_sink_set_sources(sources);
	kappa_sink_set_captures(captured, capture_starts);
	list_free(captured);
	list_free_deep(capture_starts);

	if (resumed)
	{
		/* the next worker starts over too: not sooner than a retry would */
		if (restart_began != 0)
			restart_cost_us = Max(restart_cost_us, GetCurrentTimestamp() - restart_began);
		LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
		MySlot->restarts = 0;
		MySlot->next_start = GetCurrentTimestamp() + restart_delay_us();
		LWLockRelease(KappaShmem->lock);
		ereport(LOG,
				(errmsg("pg_kappa apply worker for database %u restarting to catch up a resumed view",
						MyDatabaseId)));
		proc_exit(0);
	}
}

/*
 * Mark views stale (in their own transaction): the WAL they need is gone or
 * will not be kept.  where selects the views.
 */
static void
mark_stale(const char *where, const char *message)
{
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(psprintf("UPDATE kappa.views SET state = 'stale', last_error = %s WHERE id IN"
							 " (SELECT id FROM kappa.views WHERE %s FOR NO KEY UPDATE SKIP LOCKED)",
							 quote_literal_cstr(message), where),
					false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update kappa.views");
	if (SPI_processed > 0)
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg_plural("marked " UINT64_FORMAT " derived view stale: %s",
							   "marked " UINT64_FORMAT " derived views stale: %s",
							   SPI_processed, SPI_processed, message)));
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	views_changed = true;
}

/*
 * Paused views, and views held after a timeout, hold the slot back; past
 * pg_kappa.max_retained_wal they are given up (stale) so that the WAL can
 * go.  So is the event log while it is held: every capture fails at where
 * the log stopped (its log holds the changes committed before, none
 * after), and the log is no longer held.
 */
static void
check_retained_wal(void)
{
	XLogRecPtr	insert;
	uint64		limit;

	if (kappa_max_retained_wal < 0 || paused_floor == InvalidXLogRecPtr)
		return;
	insert = GetXLogInsertRecPtr();
	limit = (uint64) kappa_max_retained_wal * 1024 * 1024;
	if (insert - paused_floor <= limit)
		return;
	if (log_held && insert - log_held_at > limit)
	{
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (kappa_log_give_up(log_held_at,
							  psprintf("the event log's lock was held (by a transaction that ran kappa.capture) while more than pg_kappa.max_retained_wal (%d MB) of WAL went by",
									   kappa_max_retained_wal)))
			log_held = false;
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	mark_stale(psprintf("state IN ('paused', 'initializing') AND applied_lsn < '%X/%X'",
						LSN_FORMAT_ARGS(insert - limit)),
			   psprintf("the view held back more than pg_kappa.max_retained_wal (%d MB) of WAL while it was paused or behind",
						kappa_max_retained_wal));
}

/*
 * Mark view id broken, in the batch's transaction (SPI connected).  False
 * when another transaction holds its row (lock_view_row): then nothing is
 * marked, and the caller holds the view, to meet its error again later.
 */
static bool
mark_broken(int id, const char *message)
{
	if (!lock_view_row(id))
		return false;
	if (SPI_execute(psprintf("UPDATE kappa.views SET state = 'broken', last_error = %s WHERE id = %d",
							 quote_literal_cstr(message), id),
					false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update kappa.views");
	return true;
}

/*
 * Bound one view's work: lock_timeout and statement_timeout as
 * pg_kappa.view_lock_timeout and view_statement_timeout, in a GUC nest
 * level of its own (undone by view_limits_end, or by the abort of the
 * view's subtransaction), and the statement timer armed: nothing else arms
 * it in a background worker, and no SET in the view's code disarms it.
 * The worker's own statements run without either.  Returns the nest level.
 */
static int
view_limits_begin(int id)
{
	int			nestlevel = NewGUCNestLevel();
	char		value[32];

	/*
	 * The statement timeout cancels, which the view's code can catch (a
	 * PL/pgSQL EXCEPTION WHEN query_canceled): past twice the timeout the
	 * worker is ended instead, and holds the view when it starts again.
	 */
	overdue_id = id;
	if (kappa_view_statement_timeout > 0)
		enable_timeout_after(overdue_timeout,
							 Min(kappa_view_statement_timeout, INT_MAX / 2) * 2 + 1000);

	snprintf(value, sizeof(value), "%d", kappa_view_lock_timeout);
	(void) set_config_option("lock_timeout", value, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	snprintf(value, sizeof(value), "%d", kappa_view_statement_timeout);
	(void) set_config_option("statement_timeout", value, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (kappa_view_statement_timeout > 0)
	{
		enable_timeout_after(STATEMENT_TIMEOUT, kappa_view_statement_timeout);
		statement_timer_armed = true;
	}
	return nestlevel;
}

/*
 * The view's work is done: disarm the timer, and report a timeout that
 * fired meanwhile now, while still in the view's subtransaction.
 */
static void
view_limits_end(int nestlevel)
{
	disable_timeout(overdue_timeout, false);
	overdue_id = 0;
	if (statement_timer_armed)
	{
		disable_timeout(STATEMENT_TIMEOUT, true);
		statement_timer_armed = false;
		CHECK_FOR_INTERRUPTS();
	}
	AtEOXact_GUC(false, nestlevel);
}

/*
 * Disarm a statement timer a background worker armed itself, and forget a
 * cancel it sent that was not acted on yet, so that it does not hit the
 * worker's next statement.
 */
void
kappa_statement_timer_off(void)
{
	disable_timeout(STATEMENT_TIMEOUT, true);
	if (get_timeout_indicator(STATEMENT_TIMEOUT, true))
		QueryCancelPending = false;
}

/*
 * The view's work failed: disarm the timer, and forget a cancel it sent
 * that was not acted on yet, so that it does not hit the worker's own
 * statements.  The subtransaction's abort undoes the settings.
 */
static void
view_limits_abort(void)
{
	disable_timeout(overdue_timeout, false);
	overdue_id = 0;
	if (!statement_timer_armed)
		return;
	kappa_statement_timer_off();
	statement_timer_armed = false;
}

/* Did the view's work wait out a lock or statement timeout (or a cancel)? */
static bool
timed_out(ErrorData *edata)
{
	return edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		edata->sqlerrcode == ERRCODE_QUERY_CANCELED;
}

/*
 * Did the view's work fail for a reason that passes: a lock or statement
 * timeout, a cancel, a deadlock?  Such a view is held, not broken.
 */
static bool
transient_error(ErrorData *edata)
{
	return timed_out(edata) ||
		edata->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		edata->sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE;
}

/*
 * Did a name in the view's statements stop resolving because a schema or
 * table was renamed while the batch ran (the statements name relations;
 * ALTER SCHEMA RENAME does not lock the tables in it), while the derived
 * table and every source are still there?  Then the view is held and
 * retried, a few times in a row at most: after that, the error is its own.
 */
static bool
renamed_meanwhile(ErrorData *edata, int id, Oid relid, List *sources)
{
	HeldView   *h = find_held(id);
	ListCell   *lc;

	if (edata->sqlerrcode != ERRCODE_UNDEFINED_TABLE &&
		edata->sqlerrcode != ERRCODE_UNDEFINED_SCHEMA)
		return false;
	if (h != NULL && h->timeouts >= 3)
		return false;
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		return false;
	foreach(lc, sources)
	{
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(lfirst_oid(lc))))
			return false;
	}
	return true;
}

/*
 * Hold view id in this worker: what this batch holds for it is not applied
 * (the caller keeps the slot at its applied LSN), and it is retried, with
 * decoding started over from the slot, once retry_at has come.
 */
static HeldView *
hold_in_worker(int id, Oid relid, List *sources)
{
	HeldView   *h;
	MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

	h = find_held(id);
	if (h == NULL)
	{
		h = palloc0(sizeof(HeldView));
		h->id = id;
		held_views = lappend(held_views, h);
	}
	list_free(h->sources);
	h->relid = relid;
	h->sources = list_copy(sources);
	h->held = true;
	MemoryContextSwitchTo(oldcxt);
	return h;
}

/*
 * Lock view id's row in kappa.views until the (sub)transaction ends; false,
 * at once, when another transaction holds it.  That is a kappa.alter_view
 * or kappa.drop_view not committed yet, which the view's owner may keep
 * open for as long as she likes: waiting for it would stall every other
 * role's views too.  A row that is gone is nothing to wait for: true.  SPI
 * connected.
 */
static bool
lock_view_row(int id)
{
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr exists_plan = NULL;
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(id);

	if (SPI_execute_plan(batch_plan(&lock_plan,
									"SELECT FROM kappa.views WHERE id OPERATOR(pg_catalog.=) $1"
									" FOR NO KEY UPDATE SKIP LOCKED",
									1, &argtype),
						 &arg, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock a row of kappa.views");
	if (SPI_processed == 1)
		return true;
	if (SPI_execute_plan(batch_plan(&exists_plan,
									"SELECT FROM kappa.views WHERE id OPERATOR(pg_catalog.=) $1",
									1, &argtype),
						 &arg, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	return SPI_processed == 0;
}

/*
 * Another transaction holds view id's row: hold the view in this worker
 * (the caller keeps the slot at its applied LSN), still "running" since
 * its row cannot be written, and look at it again shortly.  Said once, not
 * at every look.
 */
static void
hold_row_locked(int id, Oid relid, List *sources)
{
	HeldView   *h = hold_in_worker(id, relid, sources);

	h->running = true;
	h->retry_at = GetCurrentTimestamp() + (TimestampTz) LOCK_RECHECK_MS * 1000;
	if (!h->row_locked)
		ereport(WARNING,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("derived view %s is behind: its row in kappa.views is locked by another transaction",
						kappa_qualified_label(relid)),
				 errdetail("The other views go on; this one is applied once that transaction ends."),
				 errhint("A kappa.alter_view or kappa.drop_view of the view that has not committed yet holds the row.")));
	h->row_locked = true;
}

/*
 * View id timed out: hold it, in the batch's transaction (SPI connected),
 * as a resumed view is held: "initializing", with the reason in
 * last_error, holding the slot at its applied LSN.  Returns false when the
 * view is no longer running (paused or dropped meanwhile): nothing to do.
 */
static bool
hold_view(int id, Oid relid, List *sources, const char *reason)
{
	HeldView   *h;
	int			delay;

	if (!lock_view_row(id))
	{
		hold_row_locked(id, relid, sources);
		return true;
	}
	if (SPI_execute(psprintf("UPDATE kappa.views SET state = 'initializing', last_error = %s"
							 " WHERE id = %d AND state = 'running'",
							 quote_literal_cstr(psprintf("%s; the view is behind and is retried from its applied LSN",
														 reason)),
							 id),
					false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update kappa.views");
	if (SPI_processed == 0)
		return false;

	h = hold_in_worker(id, relid, sources);
	h->running = false;
	h->timeouts++;
	delay = Min(RETRY_BASE_MS << Min(h->timeouts - 1, 16), RETRY_MAX_MS);
	h->retry_at = GetCurrentTimestamp() + (TimestampTz) delay * 1000;

	ereport(WARNING,
			(errmsg("derived view %s is behind: %s", kappa_qualified_label(relid), reason),
			 errdetail("The other views go on; this one is retried from its applied LSN in %d ms.",
					   delay),
			 errhint("See pg_kappa.view_lock_timeout and pg_kappa.view_statement_timeout.")));
	return true;
}

/*
 * Decoding is about to start over from the slot's confirmed position:
 * waiters must not take where it was for the worker's position.
 */
static void
rewind_processed_lsn(void)
{
	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	set_positions(Min(MySlot->processed_lsn, MyReplicationSlot->data.confirmed_flush),
				  Min(MySlot->running_lsn, MyReplicationSlot->data.confirmed_flush),
				  Min(MySlot->logged_lsn, MyReplicationSlot->data.confirmed_flush));
	LWLockRelease(KappaShmem->lock);
}

/*
 * The event log is held when its lock could not be had in time (a
 * kappa.capture whose transaction stays open, or prepared, keeps it): the
 * views go on, the log's records are not written, and the slot stays
 * where it was confirmed before the batch (log_held_at), so that once the
 * lock is free the worker decodes again from there and logs what it
 * missed, as after a restart (the log skips what it already holds; the
 * views, what they applied).  Until then the lock is only tried, never
 * waited for.
 */
static void
hold_log(void)
{
	log_held = true;
	log_held_at = MyReplicationSlot->data.confirmed_flush;
	log_retry_at = GetCurrentTimestamp() + (TimestampTz) LOCK_RECHECK_MS * 1000;
	ereport(WARNING,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("pg_kappa apply worker could not lock the event log within pg_kappa.view_lock_timeout"),
			 errdetail("Changes of captured tables committed after %X/%X are logged once the lock is free; the views go on.",
					   LSN_FORMAT_ARGS(log_held_at)),
			 errhint("A transaction that ran kappa.capture and is still open, or prepared, holds the lock.")));
}

/*
 * Once the log's lock is free, decode again from the slot (held at where
 * the log ends).  Returns the decoding context to go on with.
 */
static LogicalDecodingContext *
retry_held_log(LogicalDecodingContext *ctx)
{
	bool		free;
	Oid			relid;

	if (!log_held || GetCurrentTimestamp() < log_retry_at)
		return ctx;
	StartTransactionCommand();
	relid = kappa_event_log_relid();
	free = !OidIsValid(relid) || ConditionalLockRelationOid(relid, ShareRowExclusiveLock);
	CommitTransactionCommand();
	if (!free)
	{
		log_retry_at = GetCurrentTimestamp() + (TimestampTz) LOCK_RECHECK_MS * 1000;
		return ctx;
	}
	log_held = false;
	rewind_processed_lsn();
	ereport(LOG,
			(errmsg("pg_kappa apply worker for database %u logging again from %X/%X",
					MyDatabaseId, LSN_FORMAT_ARGS(MyReplicationSlot->data.confirmed_flush))));
	FreeDecodingContext(ctx);
	return start_decoding();
}

/*
 * Retry the held views whose time has come.  One whose derived table or
 * sources are still locked is looked at again later, at no cost to the
 * others; the rest become running again, and decoding starts over from
 * the slot's confirmed position (no later than any held view's applied
 * LSN), so that they get every change they missed, as after a restart.
 * Returns the decoding context to go on with.
 */
static LogicalDecodingContext *
retry_held_views(LogicalDecodingContext *ctx)
{
	TimestampTz now = GetCurrentTimestamp();
	StringInfoData ids;
	ListCell   *lc;
	bool		due = false;

	foreach(lc, held_views)
	{
		HeldView   *h = lfirst(lc);

		if (h->held && h->retry_at <= now)
			due = true;
	}
	if (!due || now < next_restart_at || restart_began != 0)
		return ctx;

	initStringInfo(&ids);
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	foreach(lc, held_views)
	{
		HeldView   *h = lfirst(lc);
		bool		free;
		ListCell   *lc2;

		if (!h->held || h->retry_at > now)
			continue;
		free = ConditionalLockRelationOid(h->relid, RowExclusiveLock);
		foreach(lc2, h->sources)
		{
			if (free)
				free = ConditionalLockRelationOid(lfirst_oid(lc2), AccessShareLock);
		}
		if (free)
			free = lock_view_row(h->id);
		if (!free)
		{
			h->retry_at = now + (TimestampTz) LOCK_RECHECK_MS * 1000;
			continue;
		}
		h->held = false;
		appendStringInfo(&ids, "%s%d", ids.len > 0 ? ", " : "", h->id);
	}
	if (ids.len == 0)
	{
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		return ctx;
	}

	/* waiters must not take where decoding was for the retried views' */
	rewind_processed_lsn();

	if (SPI_execute(psprintf("UPDATE kappa.views SET state = 'running'"
							 " WHERE state = 'initializing' AND id IN (%s)", ids.data),
					false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update kappa.views");
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	ereport(LOG,
			(errmsg("pg_kappa apply worker for database %u retrying derived view(s) %s from %X/%X",
					MyDatabaseId, ids.data,
					LSN_FORMAT_ARGS(MyReplicationSlot->data.confirmed_flush))));
	catch_up_lsn = Max(catch_up_lsn, ctx->reader->EndRecPtr);
	restart_began = GetCurrentTimestamp();
	FreeDecodingContext(ctx);
	return start_decoding();
}

/*
 * Once decoding is past where it was when views were retried (or where WAL
 * ended when an earlier worker's held views became running), those views
 * have caught up: clear the timeout from their last_error.
 */
static void
clear_caught_up(XLogRecPtr decoded)
{
	StringInfoData ids;
	ListCell   *lc;

	if (decoded < catch_up_lsn)
		return;
	if (restart_began != 0)
	{
		TimestampTz now = GetCurrentTimestamp();

		restart_cost_us = now - restart_began;
		next_restart_at = now + restart_delay_us();
		restart_began = 0;
	}
	if (held_views == NIL)
		return;
	initStringInfo(&ids);
	foreach(lc, held_views)
	{
		HeldView   *h = lfirst(lc);

		if (!h->held)
		{
			appendStringInfo(&ids, "%s%d", ids.len > 0 ? ", " : "", h->id);
			held_views = foreach_delete_current(held_views, lc);
			list_free(h->sources);
			pfree(h);
		}
	}
	if (ids.len == 0)
		return;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* a row another transaction holds keeps its message (lock_view_row) */
	if (SPI_execute(psprintf("UPDATE kappa.views SET last_error = NULL WHERE id IN"
							 " (SELECT id FROM kappa.views WHERE state = 'running' AND id IN (%s)"
							 " FOR NO KEY UPDATE SKIP LOCKED)", ids.data),
					false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update kappa.views");
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * A decoding context over the slot, reading from its restart LSN and
 * handing over the transactions committed after its confirmed position.
 */
static LogicalDecodingContext *
start_decoding(void)
{
	LogicalDecodingContext *ctx;
	MemoryContext oldcxt;

	StartTransactionCommand();
	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	ctx = CreateDecodingContext(InvalidXLogRecPtr, NIL, false,
								XL_ROUTINE(.page_read = read_local_xlog_page,
										   .segment_open = wal_segment_open,
										   .segment_close = wal_segment_close),
								NULL, NULL, NULL);
	MemoryContextSwitchTo(oldcxt);
	CommitTransactionCommand();
	XLogBeginRead(ctx->reader, MyReplicationSlot->data.restart_lsn);
	return ctx;
}

/*
 * The scratch tables (d_<n>, w_<n>, k) are emptied after every batch (d_<n>
 * once the worker is idle: clear_deltas), so they fill with dead rows
 * faster than autovacuum looks at them; vacuum them every second, outside
 * any transaction, as autovacuum would, but only those with
 * SCRATCH_VACUUM_DEAD dead rows or more: a vacuum updates
 * the table's statistics, after which the statements that read it are
 * planned again, and it is time the next batch may be waiting for.  So it
 * also stops after any table once a commit has woken the worker: the
 * others wait for the next round, which starts with the most dead rows.
 * Only a large table is truncated (which scans all of shared_buffers for
 * its pages): a small one keeps its empty pages for the next batches.
 */
#define SCRATCH_VACUUM_MS 1000
#define SCRATCH_VACUUM_DEAD 1000
#define SCRATCH_TRUNCATE_BYTES (8 * 1024 * 1024)

static void
vacuum_scratch(void)
{
	static TimestampTz last = 0;
	static MemoryContext vaccxt = NULL;
	TimestampTz now = GetCurrentTimestamp();
	List	   *names = NIL;
	List	   *truncate = NIL;
	ListCell   *lc;
	ListCell   *lt;
	MemoryContext oldcxt;

	if (!TimestampDifferenceExceeds(last, now, SCRATCH_VACUUM_MS))
		return;
	last = now;

	/*
	 * VACUUM commits and starts transactions of its own, so the statements
	 * and their parse trees must live outside them.
	 */
	if (vaccxt == NULL)
		vaccxt = AllocSetContextCreate(TopMemoryContext, "pg_kappa scratch vacuum",
									   ALLOCSET_SMALL_SIZES);
	MemoryContextReset(vaccxt);

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * The rows of kappa.partition_changes have done their work once their
	 * inserts are in the WAL, which decoding reads (not the table): empty
	 * it (nothing to write while it is empty).
	 */
	if (OidIsValid(kappa_partition_changes_relid()) &&
		SPI_execute("DELETE FROM kappa.partition_changes", false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not empty kappa.partition_changes");
	/*
	 * Only the tables pg_kappa made there, by name and without indexes (it
	 * makes none on them).  The view's owner owns the schema and may add
	 * tables and indexes: listing takes no lock (the size is pg_class's,
	 * as of the last vacuum), SKIP_LOCKED passes over a table somebody
	 * holds locked, and a vacuum that still waits (for a page somebody
	 * keeps pinned) is cancelled after pg_kappa.view_statement_timeout.
	 */
	if (SPI_execute(psprintf("SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname),"
							 " c.relpages::pg_catalog.int8 * %d > %d"
							 " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
							 " WHERE n.nspname ~ '^kappa_v[0-9]+$' AND c.relkind = 'r' AND c.relpersistence = 'u'"
							 " AND c.relname ~ '^([dw]_[0-9]+|k|p|dq|dc)$' AND NOT c.relhasindex"
							 " AND pg_catalog.pg_stat_get_dead_tuples(c.oid) >= %d"
							 " ORDER BY pg_catalog.pg_stat_get_dead_tuples(c.oid) DESC",
							 BLCKSZ, SCRATCH_TRUNCATE_BYTES, SCRATCH_VACUUM_DEAD),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list scratch tables");
	oldcxt = MemoryContextSwitchTo(vaccxt);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		names = lappend(names, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		truncate = lappend_int(truncate,
							   strcmp(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2), "t") == 0);
	}
	MemoryContextSwitchTo(oldcxt);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	/*
	 * One table at a time, and an error (an index expression of its owner's
	 * that fails, say) costs only that table's vacuum, not the worker.
	 */
	forboth(lc, names, lt, truncate)
	{
		char	   *sql = psprintf("VACUUM (SKIP_LOCKED, TRUNCATE %s) %s",
								   lfirst_int(lt) ? "true" : "false", (char *) lfirst(lc));

		/* a batch is waiting: the rest is vacuumed next time */
		if (lc != list_head(names) && MyLatch->is_set)
			break;

		PG_TRY();
		{
			List	   *raw;

			StartTransactionCommand();
			oldcxt = MemoryContextSwitchTo(vaccxt);
			raw = raw_parser(sql, RAW_PARSE_DEFAULT);
			MemoryContextSwitchTo(oldcxt);
			if (kappa_view_statement_timeout > 0)
				enable_timeout_after(STATEMENT_TIMEOUT, kappa_view_statement_timeout);
			ExecVacuum(make_parsestate(NULL),
					   (VacuumStmt *) linitial_node(RawStmt, raw)->stmt, true);
			kappa_statement_timer_off();
			CommitTransactionCommand();
		}
		PG_CATCH();
		{
			/* a view dropped since the list was made: nothing to vacuum */
			bool		gone = geterrcode() == ERRCODE_UNDEFINED_TABLE ||
				geterrcode() == ERRCODE_UNDEFINED_SCHEMA;

			HOLD_INTERRUPTS();
			kappa_statement_timer_off();
			if (!gone)
				EmitErrorReport();
			AbortOutOfAnyTransaction();
			FlushErrorState();
			RESUME_INTERRUPTS();
			if (!gone)
				ereport(WARNING,
						(errcode(ERRCODE_WARNING),
						 errmsg("pg_kappa could not vacuum internal table %s", (char *) lfirst(lc))));
		}
		PG_END_TRY();
	}
}

/*
 * Empty the deltas that engine 2's batches leave in d_<n> (a view shows a
 * batch without waiting for them to be deleted), once the worker has
 * nothing to apply, where they are many (kappa_rules_filled_views): each
 * view's under its limits, as when applying, since its owner may have put
 * code on them.  Whatever is left (a few rows, a commit came first, a
 * table somebody holds locked, an error) the view's next batch empties
 * first.
 */
static void
clear_deltas(void)
{
	List	   *ids;
	ListCell   *lc;

	if (IsTransactionOrTransactionBlock() ||
		(ids = kappa_rules_filled_views()) == NIL)
		return;
	PG_TRY();
	{
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		foreach(lc, ids)
		{
			int			nestlevel;

			if (MyLatch->is_set)
				break;
			nestlevel = view_limits_begin(lfirst_int(lc));
			kappa_rules_clear_deltas(lfirst_int(lc));
			view_limits_end(nestlevel);
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		view_limits_abort();
		EmitErrorReport();
		AbortOutOfAnyTransaction();
		FlushErrorState();
		RESUME_INTERRUPTS();
		/* new plans take every d_<n> for filled */
		kappa_engine_reset();
	}
	PG_END_TRY();
	list_free(ids);
}

/*
 * Forget catalog entries read under the historic snapshots of decoding, so
 * that applying a batch never uses them, and the entries applying read, so
 * that decoding never uses them (pg_logical_slot_get_changes does the same
 * before and after decoding).  That is not a change of any view: the views
 * are kept.
 *
 * Forgetting everything costs most of a small batch: every statement of
 * every view is analysed and planned again, every relation's descriptor
 * read again.  An aligned batch does without when this process has taken
 * in no shared invalidation message since it last forgot everything
 * (SharedInvalidMessageCounter).  Then the catalog decoding read is the
 * catalog as it is: decoding went on to the batch's end of WAL, past the
 * commit of every catalog change this process had heard of, and executed
 * each one's invalidations after the entries read before it.  A change
 * committed after that end is, to this process, a change like any other
 * backend's: its invalidations reach the entries it makes stale when they
 * are taken in, at the latest when a lock that conflicts with it is
 * granted (and they make the next reset a whole one).  A batch that may
 * end before the end of WAL (no view of engine 2, so not aligned) forgets
 * everything every time, as before.
 */
static void
reset_caches(void)
{
	static bool reset_once = false;
	static uint64 messages_at_reset = 0;

	if (views_aligned && reset_once &&
		SharedInvalidMessageCounter == messages_at_reset)
		return;

	resetting_caches = true;
	PG_TRY();
	{
		InvalidateSystemCaches();
	}
	PG_FINALLY();
	{
		resetting_caches = false;
	}
	PG_END_TRY();
	messages_at_reset = SharedInvalidMessageCounter;
	reset_once = true;
}

/*
 * Tell the slot that everything before confirm is applied, once that is
 * durable.  The worker commits asynchronously (synchronous_commit off: on
 * an fsync-bound server its commits would otherwise cost the writers a
 * flush per batch), so a commit can be lost in a crash, and with it the
 * views' applied LSNs; the slot must still hold those changes then.  So a
 * position waits until WAL is flushed past the worker's last commit (the
 * WAL writer sees to that within wal_writer_delay), and a newer one waits
 * until the pending one is confirmed.
 */
static void
confirm_durable(XLogRecPtr confirm)
{
	if (confirm_pending == InvalidXLogRecPtr &&
		confirm > MyReplicationSlot->data.confirmed_flush)
	{
		confirm_pending = confirm;
		confirm_after = XactLastCommitEnd;
	}
	if (confirm_pending != InvalidXLogRecPtr &&
		GetFlushRecPtr(NULL) >= confirm_after)
	{
		LogicalConfirmReceivedLocation(confirm_pending);
		confirm_pending = InvalidXLogRecPtr;
	}
}


/*
 * For an aligned batch, in the batch's transaction: a snapshot, and then
 * in *end the WAL insert position, flushed, up to which the batch is
 * decoded.  Every transaction the snapshot sees committed before *end; the
 * batch is the decoded transactions it sees, and those must be all that
 * committed before *end, or at least a prefix of them in commit order.  A
 * transaction that has written its commit record and is still in the proc
 * array (briefly, or for as long as synchronous replication makes it wait)
 * would break that: then there is no snapshot now, NULL, and the caller
 * tries again later.  Transactions the snapshot does not see wait for the
 * next batch.
 */
static Snapshot
aligned_snapshot(XLogRecPtr *end)
{
	Snapshot	snap = RegisterSnapshot(GetTransactionSnapshot());

	/* past the last record, not past a page header nothing follows yet */
	*end = kappa_end_of_records(GetXLogInsertRecPtr());
	for (uint32 i = 0; i < snap->xcnt; i++)
	{
		if (TransactionIdDidCommit(snap->xip[i]))
		{
			UnregisterSnapshot(snap);
			return NULL;
		}
	}
	if (*end > GetFlushRecPtr(NULL))
		XLogFlush(*end);
	return snap;
}

/*
 * A statement of every batch over kappa.views, prepared once: parsing and
 * planning it again for every batch cost more than running it.
 */
static SPIPlanPtr
batch_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare a statement over kappa.views: %s",
				 SPI_result_code_string(SPI_result));
		*plan = p;
	}
	return *plan;
}

/*
 * The batch's statements read the derived table and the view's internal
 * tables with the batch's snapshot too.  Whatever rewrites them (an
 * in-place kappa.replay, which holds a lock the worker waits for) also
 * writes the view's catalog row: if the batch's snapshot does not see that
 * row's last writer, it would not see the rewritten rows either: false
 * then, and the caller holds the view, to be retried at once with a newer
 * snapshot.  It stays "running": nothing is wrong with it.
 */
static bool
view_unchanged(int id)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(id);
	bool		isnull;
	TransactionId xmin;

	if (kappa_batch->snapshot == NULL)
		return true;
	/* a snapshot of its own: newer than any lock waited for */
	if (SPI_execute_plan(batch_plan(&plan,
									"SELECT xmin FROM kappa.views WHERE id OPERATOR(pg_catalog.=) $1",
									1, &argtype),
						 &arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	if (SPI_processed != 1)
		return true;
	xmin = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return isnull || !TransactionIdIsNormal(xmin) ||
		!XidInMVCCSnapshot(xmin, kappa_batch->snapshot);
}

/*
 * Error context while a batch is applied to a view, as PostgreSQL's own
 * apply worker names the relation and the remote transaction: arg is the
 * text apply_error_text wrote beforehand (no catalog access while an error
 * is being reported).
 */
static void
apply_error_callback(void *arg)
{
	errcontext("%s", (const char *) arg);
}

/*
 * The context of errors while the batch is applied to view relid: the
 * view, the sources the batch changed, and the commit LSNs it covers.
 */
static char *
apply_error_text(Oid relid, List *sources, XLogRecPtr from, XLogRecPtr to)
{
	StringInfoData changed;
	ListCell   *lc;

	initStringInfo(&changed);
	foreach(lc, sources)
	{
		Oid			src = lfirst_oid(lc);

		if (hash_search(kappa_batch->sources, &src, HASH_FIND, NULL) == NULL)
			continue;
		appendStringInfo(&changed, "%s%s", changed.len > 0 ? ", " : "",
						 kappa_rel_label(src));
	}
	return psprintf("applying changes of %s committed after %X/%X up to %X/%X to derived view \"%s\"",
					changed.data, LSN_FORMAT_ARGS(from), LSN_FORMAT_ARGS(to),
					kappa_rel_label(relid));
}

/*
 * What the view's owner may have done to the derived table (before 0.9,
 * or past the event triggers) that would make the worker's writes wrong
 * without an error:
 *
 * The worker writes derived tables as a replica (session_replication_role):
 * their ordinary triggers do not fire, but ALWAYS and REPLICA ones would,
 * and what they wrote would carry the worker's origin, which no view
 * decodes.  Row-level security forced on the table would hide rows from
 * the worker's deletes (it writes as the owner).  An unlogged table is
 * emptied by crash recovery, while the view's applied LSN is not.  Refuse
 * rather than have the view silently differ from its query.
 */
static void
check_derived_table(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TriggerDesc *trigdesc = rel->trigdesc;

	if (rel->rd_rel->relrowsecurity && rel->rd_rel->relforcerowsecurity)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("row-level security is forced on derived table \"%s\"",
						RelationGetRelationName(rel)),
				 errdetail("The apply worker writes the view's rows as its owner, and the owner's policies would hide rows from it."),
				 errhint("Run ALTER TABLE ... NO FORCE ROW LEVEL SECURITY (policies still apply to the view's readers), then build the view again with kappa.alter_view and rebuild => true.")));
	if (rel->rd_rel->relpersistence != RELPERSISTENCE_PERMANENT)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("derived table \"%s\" is unlogged", RelationGetRelationName(rel)),
				 errdetail("A crash would empty it, while the view would go on from where it was."),
				 errhint("Run ALTER TABLE ... SET LOGGED, then build the view again with kappa.alter_view and rebuild => true.")));

	for (int i = 0; trigdesc && i < trigdesc->numtriggers; i++)
	{
		Trigger    *trig = &trigdesc->triggers[i];

		if (trig->tgenabled == TRIGGER_FIRES_ALWAYS ||
			trig->tgenabled == TRIGGER_FIRES_ON_REPLICA)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("derived table \"%s\" has trigger \"%s\" enabled %s",
							RelationGetRelationName(rel), trig->tgname,
							trig->tgenabled == TRIGGER_FIRES_ALWAYS ? "ALWAYS" : "REPLICA"),
					 errdetail("What such a trigger writes while the apply worker maintains the view is not seen by any view."),
					 errhint("Use ALTER TABLE ... ENABLE TRIGGER: the worker does not fire ordinary triggers.")));
	}
	table_close(rel, AccessShareLock);
}

/* Does the batch hold changes of any of these tables? */
static bool
batch_touches(List *relids)
{
	ListCell   *lc;

	foreach(lc, relids)
	{
		Oid			relid = lfirst_oid(lc);

		if (hash_search(kappa_batch->sources, &relid, HASH_FIND, NULL) != NULL)
			return true;
	}
	return false;
}

/*
 * The transaction a commit record (just read) commits, if it is one of a
 * transaction of this database's that may have changed a source: not the
 * worker's own (its origin's), nor another database's.
 */
static bool
commit_record_xid(XLogReaderState *reader, TransactionId *xid)
{
	uint8		info = XLogRecGetInfo(reader) & XLOG_XACT_OPMASK;
	xl_xact_parsed_commit parsed;

	if (XLogRecGetRmid(reader) != RM_XACT_ID ||
		(info != XLOG_XACT_COMMIT && info != XLOG_XACT_COMMIT_PREPARED) ||
		XLogRecGetOrigin(reader) == kappa_worker_origin)
		return false;
	ParseCommitRecord(XLogRecGetInfo(reader),
					  (xl_xact_commit *) XLogRecGetData(reader), &parsed);
	/* with wal_level logical every commit record names its database */
	if (OidIsValid(parsed.dbId) && parsed.dbId != MyDatabaseId)
		return false;
	*xid = info == XLOG_XACT_COMMIT ? XLogRecGetXid(reader) : parsed.twophase_xid;
	return true;
}

/*
 * An aligned batch ends before the commit record of the first transaction
 * its snapshot does not see, which is then left unread (the reader goes
 * back to it): one that committed after the snapshot was taken, or was
 * still in the proc array when it was (it flushed its commit record, or
 * waited for synchronous replication).  It waits for the next batch, with
 * every transaction that committed after it, which the snapshot does not
 * see either, unless one does: a transaction that committed after it and
 * left the proc array first.  For that one, the rest of the WAL up to the
 * end is read ahead: if it holds the commit of a transaction the snapshot
 * sees, the batch is misaligned and takes a newer snapshot
 * (realign_batch).  True when the record just read is such a commit: the
 * caller does not decode it, and the batch now ends at *end.
 */
static bool
stop_before_unseen_commit(LogicalDecodingContext *ctx, XLogRecPtr *end)
{
	Snapshot	snap = kappa_batch->snapshot;
	XLogRecPtr	stop = ctx->reader->ReadRecPtr;
	TransactionId xid;

	if (snap == NULL || !commit_record_xid(ctx->reader, &xid) ||
		!XidInMVCCSnapshot(xid, snap))
		return false;

	kappa_batch->stopped_before = xid;
	while (ctx->reader->EndRecPtr < *end && !kappa_batch->misaligned)
	{
		char	   *errm = NULL;

		if (XLogReadRecord(ctx->reader, &errm) == NULL)
		{
			if (errm)
				elog(ERROR, "could not read WAL: %s", errm);
			break;
		}
		if (commit_record_xid(ctx->reader, &xid) &&
			!XidInMVCCSnapshot(xid, snap))
			kappa_batch->misaligned = true;
	}
	XLogBeginRead(ctx->reader, stop);
	*end = stop;
	return true;
}

/*
 * The aligned batch saw a transaction its snapshot does not: take a newer
 * snapshot (and end of WAL) that sees every transaction decoded so far, so
 * that decoding can go on up to that end.  A transaction that has written
 * its commit record leaves the proc array a moment later, so there is no
 * such snapshot for a moment: wait for one up to REALIGN_WAIT_MS rather
 * than throw away what was decoded (with commits waking the worker, a batch
 * often starts right behind one).  False when there is none yet (a
 * transaction held longer, by synchronous replication): the caller then
 * decodes again from the slot, later.
 */
#define REALIGN_WAIT_MS 100

static bool
realign_batch(XLogRecPtr *end)
{
	for (int waited = 0;; waited++)
	{
		Snapshot	snap = aligned_snapshot(end);
		bool		sees_all = snap != NULL;
		ListCell   *lc;

		/* the transaction the batch stopped before has left the proc array */
		if (sees_all && TransactionIdIsValid(kappa_batch->stopped_before))
			sees_all = !XidInMVCCSnapshot(kappa_batch->stopped_before, snap);

		foreach(lc, kappa_batch->xids)
		{
			if (!sees_all)
				break;
			sees_all = !XidInMVCCSnapshot((TransactionId) lfirst_oid(lc), snap);
		}
		if (sees_all)
		{
			UnregisterSnapshot(kappa_batch->snapshot);
			kappa_batch->snapshot = snap;
			kappa_batch->misaligned = false;
			return true;
		}
		if (snap != NULL)
			UnregisterSnapshot(snap);
		if (waited >= REALIGN_WAIT_MS)
			return false;
		pg_usleep(1000L);
		CHECK_FOR_INTERRUPTS();
	}
}

/* An owner's time spent on its views in a batch (apply_batch) */
typedef struct OwnerTime
{
	Oid			owner;
	int64		us;
} OwnerTime;

/* Add us to owner's time in *times; returns its time so far. */
static int64
owner_time_add(List **times, Oid owner, int64 us)
{
	ListCell   *lc;
	OwnerTime  *ot;

	foreach(lc, *times)
	{
		ot = lfirst(lc);
		if (ot->owner == owner)
		{
			ot->us += us;
			return ot->us;
		}
	}
	ot = palloc(sizeof(OwnerTime));
	ot->owner = owner;
	ot->us = us;
	*times = lappend(*times, ot);
	return us;
}

/*
 * Does a view of views (kappa.views rows, the derived table's OID third)
 * belong to another role than owner?  Asked only of an owner whose views
 * used up their time in a batch.
 */
static bool
other_owner(SPITupleTable *views, uint64 nviews, Oid owner)
{
	for (uint64 i = 0; i < nviews; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(views->vals[i], views->tupdesc, 3, &isnull));
		Oid			other = kappa_rel_owner(relid);

		if (OidIsValid(other) && other != owner)
			return true;
	}
	return false;
}

/* Apply the decoded batch to every running view, in one transaction. */
static void
apply_batch(void)
{
	static SPIPlanPtr views_plan = NULL;
	static SPIPlanPtr applied_plan = NULL;
	KappaBatch *b = kappa_batch;
	SPITupleTable *views;
	uint64		nviews;
	MemoryContext batchcxt = CurrentMemoryContext;
	TimestampTz t_start = GetCurrentTimestamp();
	TimestampTz t_commit;
	List	   *stalled_owners = NIL;	/* owners of views that timed out */
	List	   *slow_owners = NIL;	/* owners whose views used up their time */
	List	   *owner_times = NIL;	/* OwnerTime, per owner of the batch */

	/* catalog entries read under historic snapshots must not be reused */
	reset_caches();

	/* now() in this transaction: when the batch is applied */
	if (!IsTransactionState())
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
	}
	/*
	 * The extension dropped (by a transaction of the batch, or one that
	 * committed meanwhile, which has once kappa.views is locked): nothing
	 * is left to apply, and the next reload retires the worker.  (The
	 * positions the caller then sets mean nothing: the slot goes too.)
	 */
	views_relid = kappa_views_relid();
	if (OidIsValid(views_relid))
	{
		LockRelationOid(views_relid, AccessShareLock);
		views_relid = kappa_views_relid();
	}
	if (!OidIsValid(views_relid))
	{
		if (b->snapshot)
			UnregisterSnapshot(b->snapshot);
		AbortCurrentTransaction();
		MemoryContextSwitchTo(batchcxt);
		views_changed = true;
		return;
	}
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(batch_plan(&views_plan,
									"SELECT id, applied_lsn, relid, state <> 'running', sources, " KAPPA_VIEW_ENGINE " FROM kappa.views v"
									" WHERE state IN ('running', 'paused', 'initializing') ORDER BY id",
									0, NULL),
						 NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	views = SPI_tuptable;
	nviews = SPI_processed;

	/* the event log, in the same transaction as the views */
	if (!log_held && !kappa_log_write_batch())
		hold_log();
	crash_point("after_log");

	/*
	 * A paused view holds the slot back at its applied LSN: what this batch
	 * holds for it is not applied.  So does a view resumed since the last
	 * reload, until the worker has restarted to decode its changes again,
	 * and so does the event log while it is held.
	 */
	paused_floor = InvalidXLogRecPtr;
	if (log_held)
		hold_slot_at(log_held_at);
	kappa_read_snapshot = b->snapshot;
	for (uint64 i = 0; i < nviews; i++)
	{
		bool		isnull;
		int			id = DatumGetInt32(SPI_getbinval(views->vals[i], views->tupdesc, 1, &isnull));
		XLogRecPtr	applied = DatumGetLSN(SPI_getbinval(views->vals[i], views->tupdesc, 2, &isnull));

		if (DatumGetBool(SPI_getbinval(views->vals[i], views->tupdesc, 4, &isnull)) ||
			is_held(id))
			hold_slot_at(applied);
	}

	for (uint64 i = 0; i < nviews; i++)
	{
		bool		isnull;
		int			id = DatumGetInt32(SPI_getbinval(views->vals[i], views->tupdesc, 1, &isnull));
		XLogRecPtr	applied = DatumGetLSN(SPI_getbinval(views->vals[i], views->tupdesc, 2, &isnull));
		Oid			relid = DatumGetObjectId(SPI_getbinval(views->vals[i], views->tupdesc, 3, &isnull));
		bool		paused = DatumGetBool(SPI_getbinval(views->vals[i], views->tupdesc, 4, &isnull));
		int			engine = DatumGetInt16(SPI_getbinval(views->vals[i], views->tupdesc, 6, &isnull));
		MemoryContext oldcxt = CurrentMemoryContext;
		ResourceOwner oldowner = CurrentResourceOwner;
		List	   *sources = NIL;
		bool		rewritten = false;
		bool		row_locked = false;
		Oid			owner;
		TimestampTz t_view;

		/*
		 * What the view is now, as the batch's snapshot says, not as the
		 * last reload_views found it: a view not running then may be
		 * running again since without the worker (kappa.alter_view
		 * paused => false, rebuild => true makes a paused view running at
		 * once, from the LSN it was built at).  Skipped, the batch's
		 * changes would never reach it, since decoding does not start over
		 * for it.
		 */
		if (paused || is_held(id) || applied >= b->last_commit_lsn)
			continue;

		{
			Datum		d = SPI_getbinval(views->vals[i], views->tupdesc, 5, &isnull);

			if (!isnull)
				sources = kappa_oid_array_list(d);
		}

		/*
		 * A view none of whose sources changed in the batch has nothing to
		 * apply: leave its tables alone (no lock on them, so no lock
		 * conflict with anyone working on them meanwhile).
		 */
		if (!batch_touches(sources))
			continue;

		/*
		 * A view's owner may lock the view's tables (it owns them), and so
		 * make its view wait out pg_kappa.view_lock_timeout; one such wait
		 * per owner and batch is enough, or a role with many views would
		 * hold up every other role's for as many timeouts.
		 */
		owner = kappa_rel_owner(relid);
		if (list_member_oid(stalled_owners, owner))
		{
			if (hold_view(id, relid, sources,
						  "another view of its owner waited out a timeout in this batch"))
				hold_slot_at(applied);
			continue;
		}

		/*
		 * So may its code be slow, each statement staying under
		 * pg_kappa.view_statement_timeout: once an owner's views have run
		 * for that long in a batch, its other views wait for a later one,
		 * or a role with many slow views would hold up every other role's
		 * for as many timeouts.  (Where one role owns every view, there is
		 * no other to hold up, and a big batch is not cut.)
		 */
		if (list_member_oid(slow_owners, owner))
		{
			if (hold_view(id, relid, sources,
						  "the views of its owner ran for longer than pg_kappa.view_statement_timeout in this batch"))
				hold_slot_at(applied);
			continue;
		}
		t_view = GetCurrentTimestamp();

		BeginInternalSubTransaction(NULL);
		PG_TRY();
		{
			int			nestlevel = view_limits_begin(id);

			/*
			 * kappa.drop_view holds an exclusive lock on the derived table
			 * until it commits: once we have the lock, a dropped view is
			 * gone.  Waiting for it is the view's time, as anyone may lock
			 * the table.
			 */
			LockRelationOid(relid, RowExclusiveLock);
			if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
				UnlockRelationOid(relid, RowExclusiveLock);
			else if (!lock_view_row(id))
				row_locked = true;
			else
			{
				XLogRecPtr	new_applied;
				int64		ntxns = 0;
				int64		rows;

				ErrorContextCallback errcallback;

				/* every error names the view, its sources and the batch */
				errcallback.callback = apply_error_callback;
				errcallback.arg = apply_error_text(relid, sources, applied,
												   b->last_commit_lsn);
				errcallback.previous = error_context_stack;
				error_context_stack = &errcallback;

				kappa_check_row_images(sources, applied, engine >= 2);
				check_derived_table(relid);

				/*
				 * Engine 2 reads the live sources with the batch's snapshot,
				 * which only an aligned batch has: a batch that began while
				 * the database had no view of engine 2 (one was created, or
				 * made engine 2 by alter_view, while it was decoded) would
				 * have it read the sources as they are now, ahead of the
				 * batch, and count the changes committed since twice (once
				 * now, once in their own batch).  Held, and retried at once,
				 * aligned since the reload.
				 */
				rewritten = (engine >= 2 && b->snapshot == NULL) ||
					!view_unchanged(id);
				rows = -1;
				if (!rewritten)
				{
					kappa_view_writes_begin(id, relid);
					if (engine >= 2)
						rows = kappa_apply_rules(id, applied, &new_applied, &ntxns);
					else
						rows = kappa_apply_view(id, applied, &new_applied, &ntxns);
					kappa_view_writes_begin(0, InvalidOid);
				}
				error_context_stack = errcallback.previous;
				if (rows >= 0)
				{
					Oid			argtypes[] = {LSNOID, TIMESTAMPTZOID, INT8OID, INT8OID, INT4OID};
					Datum		args[] = {LSNGetDatum(new_applied),
						TimestampTzGetDatum(b->last_commit_time),
						Int64GetDatum(ntxns), Int64GetDatum(rows),
					Int32GetDatum(id)};

					if (SPI_execute_plan(batch_plan(&applied_plan,
													"UPDATE kappa.views SET applied_lsn = $1, last_commit_time = $2,"
													" txns_applied = txns_applied OPERATOR(pg_catalog.+) $3,"
													" rows_applied = rows_applied OPERATOR(pg_catalog.+) $4"
													" WHERE id OPERATOR(pg_catalog.=) $5",
													lengthof(argtypes), argtypes),
										 args, NULL, false, 0) != SPI_OK_UPDATE)
						elog(ERROR, "could not update kappa.views");
				}
			}
			view_limits_end(nestlevel);
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;
			if (rewritten)
			{
				/* held, and retried with a newer snapshot at once */
				HeldView   *h = hold_in_worker(id, relid, sources);

				h->retry_at = GetCurrentTimestamp();
				h->running = true;
				hold_slot_at(applied);
			}
			else if (row_locked)
			{
				hold_row_locked(id, relid, sources);
				hold_slot_at(applied);
			}
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			view_limits_abort();
			kappa_view_writes_begin(0, InvalidOid);
			MemoryContextSwitchTo(oldcxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;

			kappa_engine_reset();
			if (timed_out(edata))
				stalled_owners = lappend_oid(stalled_owners, owner);
			if (transient_error(edata) ||
				renamed_meanwhile(edata, id, relid, sources))
			{
				/* held: what this batch holds for it is not applied */
				if (hold_view(id, relid, sources, edata->message))
					hold_slot_at(applied);
			}
			else
			{
				StringInfoData full;

				/* last_error keeps what the error said, all of it */
				initStringInfo(&full);
				appendStringInfoString(&full, edata->message);
				if (edata->detail)
					appendStringInfo(&full, "\nDETAIL:  %s", edata->detail);
				if (edata->hint)
					appendStringInfo(&full, "\nHINT:  %s", edata->hint);
				if (edata->context)
					appendStringInfo(&full, "\nCONTEXT:  %s", edata->context);
				if (!mark_broken(id, full.data))
				{
					hold_row_locked(id, relid, sources);
					hold_slot_at(applied);
				}
				else
					ereport(WARNING,
							(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
							 errmsg("derived view %s is broken: %s", kappa_qualified_label(relid),
									edata->message),
							 edata->detail ? errdetail("%s", edata->detail) : 0,
							 edata->context ? errcontext("%s", edata->context) : 0));
			}
			FreeErrorData(edata);
		}
		PG_END_TRY();

		if (kappa_view_statement_timeout > 0 &&
			owner_time_add(&owner_times, owner, GetCurrentTimestamp() - t_view) >=
			(int64) kappa_view_statement_timeout * 1000 &&
			other_owner(views, nviews, owner))
			slow_owners = lappend_oid(slow_owners, owner);

		/*
		 * Session-level advisory locks the view's code took would outlive
		 * its subtransaction, and be held by the worker for as long as it
		 * runs: the worker takes none of its own.
		 */
		LockReleaseSession(USER_LOCKMETHOD);
	}

	replorigin_session_origin_lsn = b->last_end_lsn;
	replorigin_session_origin_timestamp = b->last_commit_time;
	SPI_finish();
	PopActiveSnapshot();
	kappa_read_snapshot = NULL;
	if (b->snapshot)
		UnregisterSnapshot(b->snapshot);

	crash_point("before_commit");
	t_commit = GetCurrentTimestamp();
	CommitTransactionCommand();
	crash_point("after_commit");
	elog(DEBUG1, "applied a batch of " INT64_FORMAT " transactions and " INT64_FORMAT " changes: decoding callbacks %.1f ms, applying %.1f ms, committing %.1f ms",
		 b->ntxns, b->nchanges, b->replay_us / 1000.0,
		 (t_commit - t_start) / 1000.0, (GetCurrentTimestamp() - t_commit) / 1000.0);

	MemoryContextSwitchTo(batchcxt);
	reset_caches();
}

void
kappa_apply_main(Datum main_arg)
{
	int			slotno = DatumGetInt32(main_arg);
	uint32		generation;
	Oid			dboid;
	char	   *slot_name;
	RepOriginId origin;
	LogicalDecodingContext *ctx;
	MemoryContext loopcxt;

	memcpy(&generation, MyBgworkerEntry->bgw_extra, sizeof(generation));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* attach to our slot, unless the launcher has moved on */
	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	MySlot = &KappaShmem->workers[slotno];
	if (MySlot->generation != generation || MySlot->pid != 0 ||
		MySlot->dboid == InvalidOid)
	{
		LWLockRelease(KappaShmem->lock);
		proc_exit(0);
	}
	MySlot->pid = MyProcPid;
	MySlot->latch = MyLatch;
	/* nothing is applied by this worker yet: waiters must not trust it */
	set_positions(InvalidXLogRecPtr, InvalidXLogRecPtr, InvalidXLogRecPtr);
	strlcpy(MySlot->state, "starting", sizeof(MySlot->state));
	dboid = MySlot->dboid;
	LWLockRelease(KappaShmem->lock);
	before_shmem_exit(worker_detach, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	kappa_in_apply_worker = true;
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * As PostgreSQL's own apply workers: the worker's writes to derived and
	 * internal tables fire no ordinary triggers (ENABLE ALWAYS ones do), so
	 * no one's trigger runs there and writes, under the worker's origin,
	 * what no view would ever see.
	 */
	SetConfigOption("session_replication_role", "replica", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * The worker's statements are planned per batch, often from poor
	 * estimates of small scratch tables: compiling them costs more than it
	 * saves.
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * A batch's terms look its rows' partners up by index, in pages the
	 * batch's own transactions have just written or read: cached, not the
	 * random reads random_page_cost prices (4 by default), at which the
	 * planner hashes a whole partner table for a delta of a few thousand
	 * rows.  The worker prices them as pages in memory, unless the server
	 * is set lower still.
	 */
	if (random_page_cost > 1.1)
		SetConfigOption("random_page_cost", "1.1", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * A deadlock between a batch and a user's DDL (REASSIGN OWNED locks a
	 * view's tables in its own order) is broken by the process that checks
	 * first: let that be the worker, which holds the view and retries it
	 * (transient_error), rather than the user's statement.
	 */
	SetConfigOption("deadlock_timeout", "50ms", PGC_SUSET, PGC_S_OVERRIDE);
	kappa_pin_search_path();
	kappa_view_writes_init();

	slot_name = MemoryContextStrdup(TopMemoryContext, kappa_slot_name(dboid));
	pgstat_report_appname("pg_kappa apply worker");

	CacheRegisterRelcacheCallback(views_invalidated, (Datum) 0);
	reload_views(NULL, InvalidRepOriginId, true);
	overdue_timeout = RegisterTimeout(USER_TIMEOUT, view_overdue_handler);
	hold_overdue_view();

	/* the slot is created by kappa.create_view */
	if (SearchNamedReplicationSlot(slot_name, true) == NULL)
	{
		StartTransactionCommand();
		retire(NULL, InvalidRepOriginId);
	}

	/* our writes carry this origin, and are not decoded back */
	StartTransactionCommand();
	drop_orphaned_origins();
	origin = replorigin_by_name(slot_name, true);
	if (origin == InvalidRepOriginId)
		origin = replorigin_create(slot_name);
	CommitTransactionCommand();
	replorigin_session_setup(origin);
	replorigin_session_origin = origin;
	kappa_worker_origin = origin;

	ReplicationSlotAcquire(slot_name, true);

	/* a slot invalidated by max_slot_wal_keep_size lost WAL the views need */
	if (MyReplicationSlot->data.restart_lsn == InvalidXLogRecPtr)
	{
		ReplicationSlotRelease();
		mark_stale("state IN ('running', 'paused', 'initializing')",
				   "the WAL the view needs was removed (the slot exceeded max_slot_wal_keep_size)");
		StartTransactionCommand();
		retire(NULL, origin);
	}

	ctx = start_decoding();

	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	set_positions(MyReplicationSlot->data.confirmed_flush,
				  MyReplicationSlot->data.confirmed_flush,
				  MyReplicationSlot->data.confirmed_flush);
	strlcpy(MySlot->state, "running", sizeof(MySlot->state));
	MySlot->last_error[0] = '\0';
	LWLockRelease(KappaShmem->lock);
	ConditionVariableBroadcast(&MySlot->progress_cv);
	ereport(LOG,
			(errmsg("pg_kappa apply worker for database %u started at %X/%X",
					dboid, LSN_FORMAT_ARGS(MyReplicationSlot->data.confirmed_flush))));
	/* what catching up from the slot takes, measured as for a retry */
	restart_began = GetCurrentTimestamp();
	catch_up_lsn = Max(catch_up_lsn, GetFlushRecPtr(NULL));

	loopcxt = AllocSetContextCreate(TopMemoryContext, "pg_kappa apply loop",
									ALLOCSET_DEFAULT_SIZES);
	PG_TRY();
	{
		for (;;)
		{
			XLogRecPtr	end_of_wal;
			XLogRecPtr	confirm;
			XLogRecPtr	previous;
			XLogRecPtr	previous_all;
			bool		progressed;
			bool		caught_up;
			bool		pinned;
			TimestampTz batch_started;

			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}
			if (views_changed)
				reload_views(ctx, origin, false);
			if (held_views != NIL)
				ctx = retry_held_views(ctx);
			ctx = retry_held_log(ctx);

			MemoryContextReset(loopcxt);
			MemoryContextSwitchTo(loopcxt);
			kappa_batch_reset();
			say_columns_read();
			batch_started = GetCurrentTimestamp();

			/*
			 * Views of engine 2 read the live sources: their batch is
			 * aligned with a snapshot, taken in the batch's transaction
			 * before the end of the WAL to decode is read.
			 */
			if (views_aligned)
			{
				SetCurrentStatementStartTimestamp();
				StartTransactionCommand();
				kappa_batch->snapshot = aligned_snapshot(&end_of_wal);
				if (kappa_batch->snapshot == NULL)
				{
					/* a straggler: the views wait for it */
					AbortCurrentTransaction();
					(void) WaitLatch(MyLatch,
									 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
									 Min(kappa_naptime, 10), PG_WAIT_EXTENSION);
					ResetLatch(MyLatch);
					continue;
				}
			}
			else
				end_of_wal = GetFlushRecPtr(NULL);

			/*
			 * Decode whole transactions until the batch is full (not an
			 * aligned one: it is what its snapshot sees) or the WAL ends,
			 * in the decoding context's memory: the reader keeps buffers
			 * across batches.
			 */
			MemoryContextSwitchTo(ctx->context);
			pinned = ctx->reader->EndRecPtr < end_of_wal;
			if (pinned)
				kappa_session_output_settings(true);
			for (int tries = 0;; tries++)
			{
				while (ctx->reader->EndRecPtr < end_of_wal &&
					   (views_aligned || !kappa_batch->full) &&
					   !kappa_batch->misaligned)
				{
					XLogRecord *record;
					char	   *errm = NULL;

					/*
					 * The reader pallocs records too big for its buffer in
					 * the current context and frees them at the next read:
					 * that must be its own context, whatever decoding the
					 * last record switched to.
					 */
					MemoryContextSwitchTo(ctx->context);
					record = XLogReadRecord(ctx->reader, &errm);
					if (errm)
						elog(ERROR, "could not read WAL: %s", errm);
					if (record != NULL &&
						!stop_before_unseen_commit(ctx, &end_of_wal))
						LogicalDecodingProcessRecord(ctx, ctx->reader);
					CHECK_FOR_INTERRUPTS();
				}

				/*
				 * A transaction the snapshot sees committed after one it
				 * does not (stop_before_unseen_commit): a newer snapshot
				 * sees both, and the batch goes on to that snapshot's end
				 * of WAL.
				 */
				if (!kappa_batch->misaligned || tries >= 10 ||
					!realign_batch(&end_of_wal))
					break;
			}
			caught_up = views_aligned || !kappa_batch->full;
			if (pinned)
				kappa_session_output_settings(false);
			MemoryContextSwitchTo(loopcxt);

			/*
			 * Still misaligned (a transaction held in the proc array for
			 * long, by synchronous replication, or a decoded transaction
			 * the snapshot does not see): decode again from the slot, with
			 * a new snapshot.
			 */
			if (kappa_batch->misaligned)
			{
				AbortCurrentTransaction();
				FreeDecodingContext(ctx);
				ctx = start_decoding();
				continue;
			}

			if (kappa_batch->ntxns > 0)
				apply_batch();
			else if (views_aligned)
			{
				UnregisterSnapshot(kappa_batch->snapshot);
				CommitTransactionCommand();
			}

			/* everything read is applied: let the slot and waiters know */
			confirm = ctx->reader->EndRecPtr;
			if (paused_floor != InvalidXLogRecPtr && paused_floor < confirm)
				confirm = paused_floor;
			confirm_durable(confirm);
			LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
			previous = MySlot->running_lsn;
			previous_all = MySlot->processed_lsn;
			set_positions(confirm, ctx->reader->EndRecPtr,
						  log_held ? confirm : ctx->reader->EndRecPtr);
			progressed = MySlot->running_lsn != previous ||
				MySlot->processed_lsn != previous_all || kappa_batch->ntxns > 0;
			if (kappa_batch->ntxns > 0)
			{
				MySlot->last_batch_at = GetCurrentTimestamp();
				MySlot->restarts = 0;
			}
			LWLockRelease(KappaShmem->lock);
			/* only on progress: a waiter woken nudges the worker again */
			if (progressed)
				ConditionVariableBroadcast(&MySlot->progress_cv);

			clear_caught_up(ctx->reader->EndRecPtr);
			check_retained_wal();
			/* a commit waiting (the latch) comes first */
			if (caught_up && !MyLatch->is_set)
				clear_deltas();
			vacuum_scratch();
			kappa_log_prune();
			kappa_audit_schedule();
			/* table statistics (autovacuum's counts of dead rows) */
			if (!IsTransactionOrTransactionBlock())
				pgstat_report_stat(false);

			if (caught_up)
			{
				/*
				 * After a batch that applied transactions, commits that
				 * wake the worker within pg_kappa.batch_interval of its
				 * start wait for the next one, which takes them all.
				 */
				if (kappa_batch->ntxns > 0 && kappa_batch_interval > 0)
				{
					long		wait_ms = kappa_batch_interval -
						(GetCurrentTimestamp() - batch_started) / 1000;

					if (wait_ms > 0)
						(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
										 wait_ms, PG_WAIT_EXTENSION);
				}
				(void) WaitLatch(MyLatch,
								 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 kappa_naptime, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
			}
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		set_state("failed", edata->message);
		PG_RE_THROW();
	}
	PG_END_TRY();
}
