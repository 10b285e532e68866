/*-------------------------------------------------------------------------
 *
 * audit.c
 *	  Scheduled audits: kappa.alter_view(view, audit_every => interval).
 *
 * The audit itself is SQL (kappa.audit in the install script): it
 * recomputes the event log's hash chain with sha256(), checks LSN order
 * and the views' applied LSNs against the log, and runs kappa.verify on
 * every view.  kappa.verify waits for the apply worker to catch up, so the
 * worker cannot run it itself: when a view's audit is due, the worker
 * starts a short-lived background worker, "pg_kappa audit", that calls
 * kappa.audit() in the database and exits.  At most one runs per database
 * at a time.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_kappa.h"

#define AUDIT_CHECK_MS 1000

/*
 * In the apply worker, between batches: start an audit when some view's
 * schedule says so and none is running.
 */
void
kappa_audit_schedule(void)
{
	static TimestampTz last = 0;
	static BackgroundWorkerHandle *running = NULL;
	TimestampTz now = GetCurrentTimestamp();
	BackgroundWorker bgw;
	pid_t		pid;
	bool		due;

	if (!TimestampDifferenceExceeds(last, now, AUDIT_CHECK_MS))
		return;
	last = now;
	if (running != NULL &&
		GetBackgroundWorkerPid(running, &pid) != BGWH_STOPPED)
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
	if (running)
		pfree(running);
	running = NULL;
	if (!RegisterDynamicBackgroundWorker(&bgw, &running))
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start a pg_kappa audit worker"),
				 errhint("Raise max_worker_processes.")));
}

/*
 * What the audit worker runs: the log's chain and the views that are due
 * (0.3), or, with a catalog still at 0.2, everything.  SPI connected.
 */
static const char *
kappa_audit_sql(void)
{
	bool		isnull;

	if (SPI_execute("SELECT pg_catalog.to_regprocedure('kappa.audit(boolean)') IS NOT NULL",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not look up kappa.audit");
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		return "SELECT * FROM kappa.audit(due_only => true)";
	return "SELECT * FROM kappa.audit()";
}

/* The audit worker: one kappa.audit(), then exit. */
void
kappa_audit_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	uint64		failures;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pg_kappa audit");
	kappa_pin_search_path();

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pgstat_report_activity(STATE_RUNNING, "SELECT * FROM kappa.audit(due_only => true)");
	if (SPI_execute(kappa_audit_sql(), false, 0) != SPI_OK_SELECT)
		elog(ERROR, "kappa.audit() failed");
	failures = SPI_processed;
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	if (failures > 0)
		ereport(WARNING,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("pg_kappa audit found " UINT64_FORMAT " failed check(s)", failures),
				 errhint("See kappa.audit_log.")));
	else
		ereport(LOG, (errmsg("pg_kappa audit: all checks passed")));
	proc_exit(0);
}
