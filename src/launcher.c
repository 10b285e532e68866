/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The pg_kappa launcher: one background worker per cluster that starts,
 *	  restarts with backoff and stops one apply worker per database.
 *
 * At startup the launcher wants a worker for every database that accepts
 * connections; a worker that finds no derived view in its database drops
 * its slot and exits cleanly, withdrawing the request.  kappa.create_view
 * asks for a worker again (kappa_request_worker).  A worker that fails is
 * restarted after 1 s, doubling up to 60 s while it keeps failing.  When
 * pg_kappa.enabled is off, running workers are told to stop and none is
 * started.
 *
 * The launcher never touches a database's own catalogs; only pg_database.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_kappa.h"

#define LAUNCHER_NAPTIME_MS 1000
#define MAX_BACKOFF_MS 60000

/* the launcher's handles, by slot index; only the launcher uses them */
static BackgroundWorkerHandle *handles[KAPPA_MAX_WORKERS];

void
kappa_register_launcher(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 5;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "pg_kappa");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "kappa_launcher_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "pg_kappa launcher");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "pg_kappa launcher");
	RegisterBackgroundWorker(&bgw);
}

static void
launcher_detach(int code, Datum arg)
{
	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	KappaShmem->launcher_pid = 0;
	KappaShmem->launcher_latch = NULL;
	LWLockRelease(KappaShmem->lock);
}

/*
 * Want a worker in every database that accepts connections (at start), or
 * only forget the slots of databases that are gone (later).
 */
static void
scan_databases(bool want_all)
{
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *dbs = NIL;
	ListCell   *lc;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn && !db->datistemplate)
			dbs = lappend_oid(dbs, db->oid);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();

	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	if (want_all)
	{
		foreach(lc, dbs)
		{
			KappaWorkerSlot *w = kappa_worker_slot(lfirst_oid(lc), true);

			if (w)
				w->wanted = true;
		}
	}
	for (int i = 0; i < KAPPA_MAX_WORKERS; i++)
	{
		KappaWorkerSlot *w = &KappaShmem->workers[i];

		if (w->dboid != InvalidOid && w->pid == 0 && handles[i] == NULL &&
			!list_member_oid(dbs, w->dboid))
			w->dboid = InvalidOid;	/* database dropped or closed */
	}
	LWLockRelease(KappaShmem->lock);
}

static void
start_worker(int slotno, KappaWorkerSlot *w)
{
	BackgroundWorker bgw;
	uint32		generation;

	generation = ++w->generation;
	w->next_start = GetCurrentTimestamp() +
		(TimestampTz) Min(1000 << Min(w->restarts, 6), MAX_BACKOFF_MS) * 1000;
	w->restarts++;
	w->starts++;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "pg_kappa");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "kappa_apply_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "pg_kappa apply worker for database %u",
			 w->dboid);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "pg_kappa apply worker");
	bgw.bgw_main_arg = Int32GetDatum(slotno);
	memcpy(bgw.bgw_extra, &generation, sizeof(generation));
	bgw.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&bgw, &handles[slotno]))
	{
		handles[slotno] = NULL;
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start pg_kappa apply worker for database %u",
						w->dboid),
				 errhint("You might need to increase max_worker_processes.")));
	}
}

/* One pass: start what should run, stop what should not. */
static void
launcher_pass(void)
{
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	for (int i = 0; i < KAPPA_MAX_WORKERS; i++)
	{
		KappaWorkerSlot *w = &KappaShmem->workers[i];
		pid_t		pid;
		bool		running = false;

		if (handles[i] != NULL)
		{
			if (GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED)
			{
				pfree(handles[i]);
				handles[i] = NULL;
			}
			else
				running = true;
		}
		if (w->dboid == InvalidOid)
			continue;
		if (running && (!kappa_enabled || !w->wanted))
		{
			if (!w->wanted)
				continue;		/* it is on its way out */
			TerminateBackgroundWorker(handles[i]);
			continue;
		}
		if (!running && w->wanted && kappa_enabled && now >= w->next_start)
			start_worker(i, w);
	}
	LWLockRelease(KappaShmem->lock);
}

void
kappa_launcher_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	KappaShmem->launcher_pid = MyProcPid;
	KappaShmem->launcher_latch = MyLatch;
	LWLockRelease(KappaShmem->lock);
	before_shmem_exit(launcher_detach, (Datum) 0);

	scan_databases(true);

	for (int pass = 1;; pass++)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (pass % 30 == 0)
			scan_databases(false);
		launcher_pass();

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 LAUNCHER_NAPTIME_MS,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
