/*-------------------------------------------------------------------------
 *
 * wait.c
 *	  kappa.wait (read-your-writes) and kappa.worker_status, the shared
 *	  memory half of the kappa.status view.
 *
 * A view includes everything committed before LSN L when its applied LSN
 * (kappa.views, committed with its deltas) is at least L, or, for a running
 * view, when its worker has applied every transaction committed before L
 * (the worker's processed LSN in shared memory).  kappa.wait polls both,
 * nudging the worker, until that holds or the timeout passes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_subscription.h"
#include "common/int.h"
#include "common/int128.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_wait);
PG_FUNCTION_INFO_V1(kappa_worker_status);

#define WAIT_POLL_MS 5

/*
 * The length of an interval in microseconds, counting a month as 30 days
 * and a year as 365.25 days as EXTRACT(epoch) does.  The sum is exact (in
 * 128 bits) and then saturates at the ends of the int64 range, so a huge
 * interval is huge and keeps its sign instead of wrapping around.
 */
static int64
interval_us(Interval *iv)
{
	INT128		sum = int64_to_int128(iv->time);

	int128_add_int64_mul_int64(&sum, iv->day, USECS_PER_DAY);
	int128_add_int64_mul_int64(&sum, iv->month / MONTHS_PER_YEAR,
							   (int64) (DAYS_PER_YEAR * USECS_PER_DAY));
	int128_add_int64_mul_int64(&sum, iv->month % MONTHS_PER_YEAR,
							   DAYS_PER_MONTH * USECS_PER_DAY);
	if (int128_compare(sum, int64_to_int128(PG_INT64_MAX)) > 0)
		return PG_INT64_MAX;
	if (int128_compare(sum, int64_to_int128(PG_INT64_MIN)) < 0)
		return PG_INT64_MIN;
	return int128_to_int64(sum);
}

/*
 * The time timeout_us microseconds from now.  When that is beyond the
 * range of timestamps it is the latest one, which GetCurrentTimestamp()
 * never reaches: the wait ends only when it succeeds or is interrupted.
 */
static TimestampTz
wait_deadline(int64 timeout_us)
{
	TimestampTz deadline;

	if (pg_add_s64_overflow(GetCurrentTimestamp(), timeout_us, &deadline))
		deadline = timeout_us > 0 ? PG_INT64_MAX : PG_INT64_MIN;
	return deadline;
}

/*
 * The insert position right after a page boundary points past the page
 * header, where no record ends: nothing can be read, or flushed, up to
 * there.  Records before it end at the page start.
 */
XLogRecPtr
kappa_end_of_records(XLogRecPtr lsn)
{
	uint32		off = lsn % XLOG_BLCKSZ;
	uint32		header;

	header = XLogSegmentOffset(lsn, wal_segment_size) < XLOG_BLCKSZ ?
		SizeOfXLogLongPHD : SizeOfXLogShortPHD;
	if (off == header)
		lsn -= off;
	return lsn;
}

/*
 * Read derived view relid's row into *v, in memory of the current context
 * (the caller's, not SPI's), refusing roles that may not read it and views
 * that will never catch up.
 */
static void
read_waited_view(Oid relid, KappaViewRow *v)
{
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext oldcxt;
	KappaViewRow row;

	/* not read-only: a fresh snapshot each time round (READ COMMITTED) */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_read_view(relid, &row);

	/* what the view holds, and why it broke, are for its readers */
	if (!kappa_may_read_view(relid, NIL))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for derived view \"%s\"", get_rel_name(relid)),
				 errhint("Waiting for a view needs SELECT on it.")));
	if (strcmp(row.state, "broken") == 0 || strcmp(row.state, "stale") == 0)
	{
		/*
		 * last_error is a message, then DETAIL, HINT and CONTEXT lines: the
		 * message says why; its hint may be about pg_kappa's own SQL
		 * (an error of the worker's statements), so it is left to
		 * kappa.status.  It may quote the sources' rows, so it is shown,
		 * as kappa.status shows it, only to a role that may read them too.
		 */
		char	   *why = row.last_error ? pstrdup(row.last_error) : NULL;
		bool		may_see = kappa_may_read_view(relid, row.sources);

		if (why)
			why[strcspn(why, "\n")] = '\0';
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("derived view \"%s\" is %s", get_rel_name(relid), row.state),
				 !may_see ? errdetail("Why is shown to the view's owner and to roles that may read every one of its sources.") :
				 why ? errdetail("Its last error was: %s.", why) : 0,
				 may_see ?
				 errhint("Build it again with kappa.alter_view(view, rebuild => true), or drop it with kappa.drop_view and create it again; kappa.status shows the whole error in last_error.") :
				 errhint("Its owner can build it again with kappa.alter_view(view, rebuild => true).")));
	}
	/* the row is in SPI's memory, gone after SPI_finish */
	*v = row;
	v->canonical = NULL;
	v->arrangements = NIL;
	v->last_error = NULL;
	oldcxt = MemoryContextSwitchTo(cxt);
	v->state = pstrdup(row.state);
	v->sources = list_copy(row.sources);
	MemoryContextSwitchTo(oldcxt);
	SPI_finish();
}

/*
 * Sleep one poll interval at most.  The worker broadcasts on its slot's
 * condition variable (*cv, looked up the first time there is a slot) when
 * it has applied more, which ends the sleep at once.  The database's apply
 * worker is nudged first, unless the last sleep ended that way: the worker
 * is busy, and waking it for nothing could have two processes wake each
 * other while the view waited for stays behind (paused, held).  The first
 * sleep on a condition variable only prepares it and returns; the caller
 * calls ConditionVariableCancelSleep when done waiting, and an error
 * cancels it too.
 */
static void
wait_poll(ConditionVariable **cv, bool *woken)
{
	if (!*woken)
		kappa_wake_worker(MyDatabaseId);
	*woken = false;
	if (*cv == NULL)
		*cv = kappa_worker_progress_cv(MyDatabaseId);
	if (*cv != NULL)
		*woken = !ConditionVariableTimedSleep(*cv, WAIT_POLL_MS, PG_WAIT_EXTENSION);
	else
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 WAIT_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	CHECK_FOR_INTERRUPTS();
}

/*
 * Wait until subscription subid (named subname) has applied its
 * publisher's WAL up to origin_lsn to the view's sources, and return the
 * local WAL position read afterwards: the view includes that commit once
 * it reaches it.  InvalidXLogRecPtr when the deadline passes first.
 */
static XLogRecPtr
wait_origin(Oid relid, Oid subid, const char *subname, XLogRecPtr origin_lsn,
			TimestampTz deadline)
{
	MemoryContext pollcxt;
	MemoryContext oldcxt;
	ConditionVariable *cv = NULL;
	bool		woken = false;

	pollcxt = AllocSetContextCreate(CurrentMemoryContext, "kappa.wait poll",
									ALLOCSET_SMALL_SIZES);
	for (;;)
	{
		KappaViewRow v;
		bool		applied;

		oldcxt = MemoryContextSwitchTo(pollcxt);
		read_waited_view(relid, &v);
		applied = kappa_subscription_applied(subid, subname, v.sources, origin_lsn);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(pollcxt);

		/* its local commits are all before the insert position now */
		if (applied)
			break;
		if (GetCurrentTimestamp() >= deadline)
		{
			ConditionVariableCancelSleep();
			MemoryContextDelete(pollcxt);
			return InvalidXLogRecPtr;
		}
		wait_poll(&cv, &woken);
	}
	ConditionVariableCancelSleep();
	MemoryContextDelete(pollcxt);
	return GetXLogInsertRecPtr();
}

/*
 * Wait until derived view relid includes everything committed before the
 * local LSN target; false when the deadline passes first.
 */
static bool
wait_view(Oid relid, XLogRecPtr target, TimestampTz deadline)
{
	MemoryContext pollcxt;
	MemoryContext oldcxt;
	ConditionVariable *cv = NULL;
	bool		woken = false;
	bool		done = false;
	int			id = 0;

	target = kappa_end_of_records(target);

	/* the worker reads only flushed WAL */
	if (target <= GetXLogInsertRecPtr())
		XLogFlush(target);

	pollcxt = AllocSetContextCreate(CurrentMemoryContext, "kappa.wait poll",
									ALLOCSET_SMALL_SIZES);
	for (;;)
	{
		KappaViewRow v;
		XLogRecPtr	applied;
		XLogRecPtr	processed;

		/*
		 * The worker publishes its progress after it commits, so read the
		 * progress first: the view's state read next is at least as new.
		 * Its id, which the progress is read for, does not change.
		 */
		if (id == 0)
		{
			oldcxt = MemoryContextSwitchTo(pollcxt);
			read_waited_view(relid, &v);
			id = v.id;
			MemoryContextSwitchTo(oldcxt);
		}
		processed = kappa_view_processed_lsn(MyDatabaseId, id, NULL);
		oldcxt = MemoryContextSwitchTo(pollcxt);
		read_waited_view(relid, &v);
		MemoryContextSwitchTo(oldcxt);

		applied = v.applied;
		if (strcmp(v.state, "running") == 0 && processed > applied)
			applied = processed;
		MemoryContextReset(pollcxt);
		if (applied >= target)
		{
			done = true;
			break;
		}
		if (GetCurrentTimestamp() >= deadline)
			break;
		wait_poll(&cv, &woken);
	}
	ConditionVariableCancelSleep();
	MemoryContextDelete(pollcxt);
	return done;
}

/*
 * kappa.wait(view, target, timeout [, origin_lsn, subscription]): true
 * once the view includes everything committed before the local LSN target
 * (by default the current insert position), or, with origin_lsn, every
 * commit before origin_lsn on the publisher of a subscription that
 * replicates the view's sources; false on timeout.
 *
 * Version 0.3's SQL declares the first three arguments only: PG_NARGS()
 * tells them apart, so that an extension not updated yet keeps working
 * with this library.
 */
Datum
kappa_wait(PG_FUNCTION_ARGS)
{
	Oid			relid;
	XLogRecPtr	target;
	bool		by_origin;
	XLogRecPtr	origin_lsn = InvalidXLogRecPtr;
	char	   *subname = NULL;
	int64		timeout_us = 10 * USECS_PER_SEC;
	TimestampTz deadline;

	kappa_refuse_in_view_code("kappa.wait", true);
	relid = kappa_oid_arg(fcinfo, 0, "view");
	if (!PG_ARGISNULL(2))
		timeout_us = interval_us(PG_GETARG_INTERVAL_P(2));
	if (timeout_us < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must not be negative")));
	if (PG_NARGS() >= 5 && !PG_ARGISNULL(4))
		subname = pstrdup(NameStr(*PG_GETARG_NAME(4)));
	by_origin = PG_NARGS() >= 4 && !PG_ARGISNULL(3);
	if (by_origin)
		origin_lsn = PG_GETARG_LSN(3);
	if (by_origin && !PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot wait for both target and origin_lsn"),
				 errdetail("target is a position in this server's WAL, origin_lsn one in the WAL of a subscription's publisher."),
				 errhint("Pass only one of them.")));
	if (subname != NULL && !by_origin)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot wait for subscription \"%s\" without origin_lsn", subname),
				 errhint("Pass origin_lsn, the publisher's pg_current_wal_insert_lsn() read after the commit to wait for.")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("kappa.wait cannot be used in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("The transaction's snapshot would not see the view's progress."),
				 errhint("Call it in a READ COMMITTED transaction, before the one that reads the view.")));

	deadline = wait_deadline(timeout_us);
	if (by_origin)
	{
		KappaViewRow v;
		Oid			subid;

		read_waited_view(relid, &v);
		subid = kappa_view_subscription(relid, v.sources, subname);
		subname = get_subscription_name(subid, false);
		target = wait_origin(relid, subid, subname,
							 kappa_end_of_records(origin_lsn), deadline);
		if (target == InvalidXLogRecPtr)
			PG_RETURN_BOOL(false);
	}
	else
	{
		KappaViewRow v;
		Oid			written;

		/* what this transaction wrote is not committed: no view has it */
		read_waited_view(relid, &v);
		written = kappa_source_written_in_xact(v.sources, true);
		if (OidIsValid(written))
			ereport(WARNING,
					(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
					 errmsg("derived view \"%s\" cannot include this transaction's changes of table %s",
							get_rel_name(relid), kappa_qualified_name(written)),
					 errdetail("A view includes committed transactions only; kappa.wait waits for those committed before it was called."),
					 errhint("Call kappa.wait after the transaction commits.")));
		target = PG_ARGISNULL(1) ? GetXLogInsertRecPtr() : PG_GETARG_LSN(1);
	}

	PG_RETURN_BOOL(wait_view(relid, target, deadline));
}

/*
 * Wait until the database's apply worker has logged every change of the
 * captured tables committed before target.  False on timeout.
 */
bool
kappa_wait_processed(XLogRecPtr target, int64 timeout_ms)
{
	int64		timeout_us;
	TimestampTz deadline;
	ConditionVariable *cv = NULL;
	bool		woken = false;

	if (pg_mul_s64_overflow(timeout_ms, 1000, &timeout_us))
		timeout_us = timeout_ms > 0 ? PG_INT64_MAX : PG_INT64_MIN;
	deadline = wait_deadline(timeout_us);

	target = kappa_end_of_records(target);
	if (target <= GetXLogInsertRecPtr())
		XLogFlush(target);
	for (;;)
	{
		if (kappa_worker_logged_lsn(MyDatabaseId) >= target)
			break;
		if (GetCurrentTimestamp() >= deadline)
		{
			ConditionVariableCancelSleep();
			return false;
		}
		kappa_request_worker(MyDatabaseId);
		wait_poll(&cv, &woken);
	}
	ConditionVariableCancelSleep();
	return true;
}

Datum
kappa_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	KappaWorkerSlot *copy;
	int			nslots;

	InitMaterializedSRF(fcinfo, 0);
	copy = kappa_copy_worker_slots(&nslots);

	for (int i = 0; i < nslots; i++)
	{
		KappaWorkerSlot *w = &copy[i];
		Datum		values[8];
		bool		nulls[8];

		if (w->dboid == InvalidOid)
			continue;
		memset(nulls, 0, sizeof(nulls));
		values[0] = ObjectIdGetDatum(w->dboid);
		values[1] = Int32GetDatum(w->pid);
		nulls[1] = (w->pid == 0);
		values[2] = CStringGetTextDatum(w->pid != 0 ? w->state :
										w->wanted ? "starting" : "stopped");
		values[3] = CStringGetTextDatum(kappa_slot_name(w->dboid));
		values[4] = LSNGetDatum(w->processed_lsn);
		nulls[4] = (w->processed_lsn == InvalidXLogRecPtr);
		values[5] = TimestampTzGetDatum(w->last_batch_at);
		nulls[5] = (w->last_batch_at == 0);
		values[6] = Int32GetDatum(Max(w->starts - 1, 0));
		values[7] = CStringGetTextDatum(w->last_error);
		/* a worker's error may quote any view's data: as pg_stat_activity */
		nulls[7] = (w->last_error[0] == '\0') ||
			!has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
