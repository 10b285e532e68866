/*-------------------------------------------------------------------------
 *
 * audit.c
 *	  Scheduled audits: kappa.alter_view(view, audit_every => interval).
 *
 * The audit itself is SQL (kappa.audit and kappa.audit_view in the
 * install scripts): it recomputes the event log's hash chain with
 * sha256(), checks LSN order and the views' applied LSNs against the log,
 * and runs kappa.verify on every view.  kappa.verify waits for the apply
 * worker to catch up, so the worker cannot run it itself: when a view's
 * audit is due, the worker starts a short-lived background worker,
 * "pg_kappa audit", that audits the log and each due view, each view in a
 * transaction of its own, and exits.  At most one runs per database at a
 * time.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/snapmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "pg_kappa.h"

#define AUDIT_CHECK_MS 1000

/*
 * An audit reads the whole event log, whichever view is due, and any view's
 * owner may ask for one every microsecond: after an audit whose check of
 * the log's chain took d, the next one starts no sooner than
 * AUDIT_REST_FACTOR times d after it ended, so that those checks take at
 * most about a tenth of one core, whatever the schedules say.  (A view's
 * own verify is that view's cost, paid at its own schedule: it does not
 * count, nor can a view's slow code hold the others' audits back.)
 */
#define AUDIT_REST_FACTOR 9

/* see overdue_handler */
static TimeoutId overdue_timeout = MAX_TIMEOUTS;

/*
 * Timeout handler: a view's code ran past twice its statement timeout (it
 * caught the cancel).  End the audit worker; only that cannot be caught.
 */
static void
overdue_handler(void)
{
	ProcDiePending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/* A transaction of the audit worker's, SPI connected */
static void
audit_begin(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

static void
audit_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * In the apply worker, between batches: start an audit when some view's
 * schedule says so and none is running.
 */
void
kappa_audit_schedule(void)
{
	static TimestampTz last = 0;
	static BackgroundWorkerHandle *running = NULL;
	static TimestampTz rest_until = 0;
	TimestampTz now = GetCurrentTimestamp();
	KappaWorkerSlot *w;
	BackgroundWorker bgw;
	pid_t		pid;
	bool		due;

	if (!TimestampDifferenceExceeds(last, now, AUDIT_CHECK_MS))
		return;
	last = now;
	if (running != NULL)
	{
		if (GetBackgroundWorkerPid(running, &pid) != BGWH_STOPPED)
			return;
		pfree(running);
		running = NULL;
		/* the audit just seen to have ended */
		LWLockAcquire(KappaShmem->lock, LW_SHARED);
		w = kappa_worker_slot(MyDatabaseId, false);
		rest_until = now + (w ? w->audit_chain_us : 0) * AUDIT_REST_FACTOR;
		LWLockRelease(KappaShmem->lock);
	}
	if (now < rest_until)
		return;

	if (!kappa_log_job_begin())
		return;
	/* a schedule too long to add to a timestamp (stored before such were refused) never comes */
	if (SPI_execute("SELECT 1 FROM kappa.views WHERE state = 'running' AND audit_every IS NOT NULL"
					" AND CASE WHEN audit_every >= " KAPPA_MAX_INTERVAL_SQL " THEN false"
					" ELSE last_audit_at IS NULL OR last_audit_at + audit_every <= pg_catalog.now() END",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	due = SPI_processed > 0;
	kappa_log_job_end();
	if (!due)
		return;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "pg_kappa");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "kappa_audit_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "pg_kappa audit for database %u", MyDatabaseId);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "pg_kappa audit");
	bgw.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	bgw.bgw_notify_pid = 0;
	if (!RegisterDynamicBackgroundWorker(&bgw, &running))
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start a pg_kappa audit worker"),
				 errhint("Raise max_worker_processes.")));
}

/* Tell the apply worker how long the check of the log's chain took. */
static void
chain_checked(TimestampTz started)
{
	KappaWorkerSlot *w;

	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	w = kappa_worker_slot(MyDatabaseId, false);
	if (w != NULL)
		w->audit_chain_us = GetCurrentTimestamp() - started;
	LWLockRelease(KappaShmem->lock);
}

/*
 * With a catalog at 0.8 or later: the log's chain in one transaction, then
 * each due view (kappa.audit_view) in a transaction of its own, under
 * pg_kappa.view_statement_timeout, so that the locks kappa.verify takes on
 * one view's sources are released before the next view's code runs, and
 * one view's slow code costs the others nothing but time.  A view whose
 * audit fails outright (the timeout) is recorded as a failed check; view
 * code that catches the cancel ends the worker past twice the timeout.
 * Returns the number of failed checks.
 */
static uint64
audit_each_view(void)
{
	TimestampTz started = GetCurrentTimestamp();
	Oid			argtypes[2] = {TIMESTAMPTZOID, INT4OID};
	Datum		args[2] = {TimestampTzGetDatum(started), 0};
	List	   *ids = NIL;
	ListCell   *lc;
	uint64		failures;
	MemoryContext cxt = CurrentMemoryContext;

	audit_begin();
	if (SPI_execute_with_args("INSERT INTO kappa.audit_log (at, \"check\", object, ok, detail)"
							  " SELECT $1, c.\"check\", c.object, c.ok, c.detail FROM kappa.audit_chain() c",
							  1, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not audit the event log");
	chain_checked(started);
	/*
	 * The longest unaudited first: a view whose code ended the last audit
	 * worker (its audit was taken) comes after the others, not before them
	 * every time.
	 */
	if (SPI_execute("SELECT v.id FROM kappa.views v WHERE kappa.audit_due(v)"
					" ORDER BY v.last_audit_at NULLS FIRST, v.id",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

		ids = lappend_int(ids, DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 1, &isnull)));
		MemoryContextSwitchTo(oldcxt);
	}
	audit_end();

	foreach(lc, ids)
	{
		bool		skip;

		args[1] = Int32GetDatum(lfirst_int(lc));

		/*
		 * Its audit is taken now, whatever becomes of it: a view whose code
		 * ends this worker (overdue_handler) is not due again before its
		 * next turn, and does not stand before the others every time.
		 */
		audit_begin();
		if (SPI_execute_with_args("UPDATE kappa.views SET last_audit_at = $1 WHERE id ="
								  " (SELECT id FROM kappa.views WHERE id = $2 FOR UPDATE SKIP LOCKED)",
								  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update kappa.views");
		skip = SPI_processed == 0;
		audit_end();

		/* its catalog row is locked (an open kappa.alter_view): next time */
		if (skip)
			continue;

		PG_TRY();
		{
			audit_begin();
			if (kappa_view_statement_timeout > 0)
			{
				enable_timeout_after(STATEMENT_TIMEOUT, kappa_view_statement_timeout);
				enable_timeout_after(overdue_timeout,
									 Min(kappa_view_statement_timeout, INT_MAX / 2) * 2 + 1000);
			}
			if (SPI_execute_with_args("SELECT kappa.audit_view(v, $1) FROM kappa.views v"
									  " WHERE v.id = $2 AND v.state = 'running'",
									  2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not audit derived view %d", lfirst_int(lc));
			kappa_statement_timer_off();
			disable_timeout(overdue_timeout, false);
			audit_end();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			kappa_statement_timer_off();
			disable_timeout(overdue_timeout, false);
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			QueryCancelPending = false;

			/* the check failed: say so */
			audit_begin();
			if (SPI_execute_with_args(psprintf("INSERT INTO kappa.audit_log (at, \"check\", object, ok, detail)"
											   " SELECT $1, 'verify', v.name, false, %s FROM kappa.views v"
											   " WHERE v.id = $2",
											   quote_literal_cstr(psprintf("could not audit the view: %s",
																		   edata->message))),
									  2, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not write kappa.audit_log");
			audit_end();
			FreeErrorData(edata);
		}
		PG_END_TRY();
	}

	audit_begin();
	if (SPI_execute_with_args("SELECT count(*) FROM kappa.audit_log WHERE at = $1 AND NOT ok",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.audit_log");
	{
		bool		isnull;

		failures = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	audit_end();
	return failures;
}

/*
 * What the audit worker runs with an older catalog: the log's chain and the
 * views that are due (0.3 to 0.7, all in one transaction), or, with a
 * catalog still at 0.2, everything.  Returns the number of failed checks.
 * (Its chain check is not timed apart: such audits do not rest.)
 */
static uint64
audit_all_at_once(void)
{
	bool		isnull;
	const char *sql;
	uint64		failures;

	audit_begin();
	if (SPI_execute("SELECT pg_catalog.to_regprocedure('kappa.audit(boolean)') IS NOT NULL",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not look up kappa.audit");
	sql = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) ?
		"SELECT * FROM kappa.audit(due_only => true)" : "SELECT * FROM kappa.audit()";
	if (SPI_execute(sql, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "kappa.audit() failed");
	failures = SPI_processed;
	audit_end();
	return failures;
}

/* The audit worker: one audit, then exit. */
void
kappa_audit_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	uint64		failures;
	bool		per_view;
	bool		isnull;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	overdue_timeout = RegisterTimeout(USER_TIMEOUT, overdue_handler);
	pgstat_report_appname("pg_kappa audit");
	kappa_pin_search_path();
	/* no lock another role holds keeps the audits of all views waiting */
	{
		char		value[32];

		snprintf(value, sizeof(value), "%d", kappa_view_lock_timeout);
		SetConfigOption("lock_timeout", value, PGC_SUSET, PGC_S_OVERRIDE);
	}

	audit_begin();
	if (SPI_execute("SELECT pg_catalog.to_regprocedure('kappa.audit_view(kappa.views, timestamp with time zone)') IS NOT NULL",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not look up kappa.audit_view");
	per_view = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	audit_end();

	pgstat_report_activity(STATE_RUNNING, "pg_kappa audit of the views that are due");
	failures = per_view ? audit_each_view() : audit_all_at_once();
	pgstat_report_activity(STATE_IDLE, NULL);

	if (failures > 0)
		ereport(WARNING,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_plural("pg_kappa audit found " UINT64_FORMAT " failed check",
								"pg_kappa audit found " UINT64_FORMAT " failed checks",
								failures, failures),
				 errhint("See kappa.audit_log.")));
	else
		ereport(LOG, (errmsg("pg_kappa audit: all checks passed")));
	proc_exit(0);
}
