/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The pg_kappa launcher: one background worker per cluster that starts,
 *	  restarts with backoff and stops one apply worker per database.
 *
 * A database gets a worker slot (shmem.c) when kappa.create_view or
 * kappa.capture asks for a worker (kappa_request_worker), and gives it back
 * when its worker finds no derived view and no captured table: the worker
 * drops the database's replication slot, withdraws the request and exits,
 * and the launcher frees the slot.  At most pg_kappa.max_databases
 * databases hold a slot at a time.
 *
 * Every database with views has a replication slot named
 * pg_kappa_<database oid> (the worker drops it when it retires), so at
 * start, and every LAUNCHER_RESCAN_MS or whenever a worker has exited,
 * the launcher takes a slot for each database that has such a replication
 * slot but no worker slot; the worker started there retires at once if
 * nothing is left (a slot left behind by a failed kappa.create_view, say).
 * The same scan frees the slots of databases that were dropped.  Databases
 * without a pg_kappa replication slot are not visited.
 *
 * A worker that fails is restarted after 1 s, doubling up to 60 s while it
 * keeps failing.  When pg_kappa.enabled is off, running workers are told to
 * stop and none is started.
 *
 * The launcher never touches a database's own catalogs; only pg_database
 * and the replication slots in shared memory.
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
#include "replication/slot.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_kappa.h"

#define LAUNCHER_NAPTIME_MS 1000
#define LAUNCHER_RESCAN_MS 30000
#define MAX_BACKOFF_MS 60000

/*
 * The launcher's handles, by slot index (KappaShmem->nslots of them); only
 * the launcher uses them.
 */
static BackgroundWorkerHandle **handles = NULL;

/* scan_databases is due: at start, and after a worker exited */
static bool rescan_needed = true;
static TimestampTz last_rescan = 0;

/* databases already warned about for lack of a slot, in TopMemoryContext */
static List *unserved_warned = NIL;

/* what one scan_databases allocates; reset by the next one */
static MemoryContext scan_cxt = NULL;

/* Register the launcher; called from _PG_init, in the postmaster. */
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

/* before_shmem_exit callback: nobody is to wake this launcher any more. */
static void
launcher_detach(int code, Datum arg)
{
	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	KappaShmem->launcher_pid = 0;
	KappaShmem->launcher_latch = NULL;
	LWLockRelease(KappaShmem->lock);
}

/*
 * The databases that have a pg_kappa replication slot (named after the
 * database, see kappa_slot_name).
 */
static List *
databases_with_kappa_slots(void)
{
	List	   *dbs = NIL;

	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	for (int i = 0; i < max_replication_slots; i++)
	{
		ReplicationSlot *s = &ReplicationSlotCtl->replication_slots[i];
		Oid			dboid;
		char		expected[NAMEDATALEN];

		if (!s->in_use || !SlotIsLogical(s))
			continue;
		/* data.database and data.name do not change after creation */
		dboid = s->data.database;
		snprintf(expected, sizeof(expected), "pg_kappa_%u", dboid);
		if (strcmp(NameStr(s->data.name), expected) == 0)
			dbs = list_append_unique_oid(dbs, dboid);
	}
	LWLockRelease(ReplicationSlotControlLock);
	return dbs;
}

/*
 * Free the slots of databases that are gone (or no longer accept
 * connections) and have no worker, and take a slot for every database that
 * has a pg_kappa replication slot but no worker slot.  A database that gets
 * none is reported once, until it gets one.
 */
static void
scan_databases(void)
{
	int			nslots = KappaShmem->nslots;
	Oid		   *seen_dboid;
	uint32	   *seen_generation;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *dbs = NIL;
	List	   *kappa_dbs;
	List	   *unserved = NIL;
	ListCell   *lc;
	MemoryContext oldcxt;

	rescan_needed = false;
	last_rescan = GetCurrentTimestamp();

	/* not in the transaction's memory: the lists outlive it */
	if (scan_cxt == NULL)
		scan_cxt = AllocSetContextCreate(TopMemoryContext,
										 "pg_kappa launcher scan",
										 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(scan_cxt);
	oldcxt = MemoryContextSwitchTo(scan_cxt);
	seen_dboid = palloc(sizeof(Oid) * nslots);
	seen_generation = palloc(sizeof(uint32) * nslots);

	/*
	 * What the slots held before pg_database is read: a slot taken later,
	 * perhaps for a database created after the snapshot below, has another
	 * generation and is left alone.
	 */
	LWLockAcquire(KappaShmem->lock, LW_SHARED);
	for (int i = 0; i < nslots; i++)
	{
		seen_dboid[i] = KappaShmem->workers[i].dboid;
		seen_generation[i] = KappaShmem->workers[i].generation;
	}
	LWLockRelease(KappaShmem->lock);

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn && !db->datistemplate)
		{
			MemoryContext xactcxt = MemoryContextSwitchTo(scan_cxt);

			dbs = lappend_oid(dbs, db->oid);
			MemoryContextSwitchTo(xactcxt);
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(scan_cxt);

	kappa_dbs = databases_with_kappa_slots();

	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	for (int i = 0; i < nslots; i++)
	{
		KappaWorkerSlot *w = &KappaShmem->workers[i];

		if (w->dboid != InvalidOid && w->dboid == seen_dboid[i] &&
			w->generation == seen_generation[i] &&
			w->pid == 0 && handles[i] == NULL &&
			!list_member_oid(dbs, w->dboid))
			w->dboid = InvalidOid;	/* database dropped or closed */
	}
	foreach(lc, kappa_dbs)
	{
		Oid			dboid = lfirst_oid(lc);

		/* no slot is taken that no worker would give back */
		if (!kappa_enabled || !list_member_oid(dbs, dboid))
			continue;
		if (kappa_worker_slot(dboid, true) == NULL)
			unserved = lappend_oid(unserved, dboid);
	}
	LWLockRelease(KappaShmem->lock);

	foreach(lc, unserved)
	{
		Oid			dboid = lfirst_oid(lc);

		if (!list_member_oid(unserved_warned, dboid))
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("no free pg_kappa worker slot for database %u", dboid),
					 errdetail("The database has a pg_kappa replication slot, so it may have derived views, but all %d worker slots are in use.",
							   nslots),
					 errhint("Increase pg_kappa.max_databases.")));
	}
	list_free(unserved_warned);
	MemoryContextSwitchTo(TopMemoryContext);
	unserved_warned = list_copy(unserved);

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(scan_cxt);
}

/* Start a worker for slot slotno; caller holds the lock exclusively. */
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

/*
 * Forget the handles of workers that stopped; a scan is then due, since
 * the database may have been dropped (or the worker left its replication
 * slot behind).
 */
static void
reap_workers(void)
{
	pid_t		pid;

	for (int i = 0; i < KappaShmem->nslots; i++)
	{
		if (handles[i] != NULL &&
			GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED)
		{
			pfree(handles[i]);
			handles[i] = NULL;
			rescan_needed = true;
		}
	}
}

/*
 * One pass: free the slots nobody wants any more, start what should run,
 * stop what should not.
 */
static void
launcher_pass(void)
{
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	for (int i = 0; i < KappaShmem->nslots; i++)
	{
		KappaWorkerSlot *w = &KappaShmem->workers[i];
		bool		running = (handles[i] != NULL);

		/* (a worker that stopped since reap_workers is reaped next time) */
		if (w->dboid == InvalidOid)
			continue;

		/*
		 * A worker attached without a handle was started by an earlier
		 * launcher; a new one would not attach while it lives.
		 */
		if (w->pid != 0 && handles[i] == NULL)
			continue;

		/* the worker retired and is gone: the slot is free again */
		if (!running && !w->wanted)
		{
			w->dboid = InvalidOid;
			continue;
		}
		if (running && (!kappa_enabled || !w->wanted))
		{
			if (!w->wanted)
				continue;		/* it is on its way out */
			TerminateBackgroundWorker(handles[i]);
			continue;
		}
		if (!running && kappa_enabled && now >= w->next_start)
			start_worker(i, w);
	}
	LWLockRelease(KappaShmem->lock);
}

/* Entry point of the launcher. */
void
kappa_launcher_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	handles = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(BackgroundWorkerHandle *) * KappaShmem->nslots);

	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	KappaShmem->launcher_pid = MyProcPid;
	KappaShmem->launcher_latch = MyLatch;
	LWLockRelease(KappaShmem->lock);
	before_shmem_exit(launcher_detach, (Datum) 0);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		reap_workers();
		if (rescan_needed ||
			TimestampDifferenceExceeds(last_rescan, GetCurrentTimestamp(),
									   LAUNCHER_RESCAN_MS))
			scan_databases();
		launcher_pass();

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 LAUNCHER_NAPTIME_MS,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
