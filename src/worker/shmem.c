/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared memory of pg_kappa: pg_kappa.max_databases worker slots, one
 *	  per database that has an apply worker or is about to get one, and
 *	  the launcher's address.
 *
 * Locking: KappaShmem->lock (one LWLock) protects every field of
 * KappaShared and of its worker slots, except nslots, which is set when
 * shared memory is created and never changes.  Take it shared to read,
 * exclusive to write; never hold it while waiting for anything else, and
 * never while reading a catalog.
 *
 * A slot belongs to a database while dboid is set.  It is taken, wanted,
 * by kappa_request_worker (kappa.create_view, kappa.capture and the like)
 * or by the launcher (for a database that has a pg_kappa replication slot
 * but no worker slot).  The launcher starts a worker for every slot that
 * is wanted.  A worker that finds nothing to maintain withdraws the request
 * (wanted = false) and exits; the slot is then given back by the launcher
 * (dboid = InvalidOid), and may be taken over before that by any database
 * (slot_reusable).  The slots of databases that were dropped
 * are given back by the launcher, and by kappa_request_worker when it finds
 * no free slot.  So a slot is held only as long as its database has derived
 * views or captured tables.
 *
 * The generation is bumped whenever a slot is taken and whenever a worker
 * is started; a worker attaches only if the generation it was started with
 * is still current, so a stale worker can never take over a reused slot.
 *
 * This file does not start or stop processes (launcher.c does), and keeps
 * no per-view state: views live in the kappa.views table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/syscache.h"

#include "pg_kappa.h"

KappaShared *KappaShmem = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * Where the slots' bitmaps of held views start: after the slots, so that
 * the slots stay small to copy (kappa_copy_worker_slots).
 */
static Size
held_ids_offset(void)
{
	return MAXALIGN(add_size(offsetof(KappaShared, workers),
							 mul_size(kappa_max_databases, sizeof(KappaWorkerSlot))));
}

/*
 * Bytes of shared memory for pg_kappa.max_databases worker slots and their
 * bitmaps of held views.
 */
static Size
kappa_shmem_size(void)
{
	return add_size(held_ids_offset(),
					mul_size(kappa_max_databases, KAPPA_HELD_IDS / 8));
}

/* shmem_request_hook: reserve our shared memory and our LWLock. */
static void
kappa_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(kappa_shmem_size()));
	RequestNamedLWLockTranche("pg_kappa", 1);
}

/* shmem_startup_hook: create (or, in a backend, attach to) KappaShmem. */
static void
kappa_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	KappaShmem = ShmemInitStruct("pg_kappa", kappa_shmem_size(), &found);
	if (!found)
	{
		memset(KappaShmem, 0, kappa_shmem_size());
		KappaShmem->lock = &(GetNamedLWLockTranche("pg_kappa"))->lock;
		KappaShmem->nslots = kappa_max_databases;
		for (int i = 0; i < KappaShmem->nslots; i++)
			ConditionVariableInit(&KappaShmem->workers[i].progress_cv);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init, in the postmaster. */
void
kappa_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = kappa_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = kappa_shmem_startup;
}

/*
 * Whether a slot may be taken by any database: it is free, or its worker
 * retired (nobody wants one and none is attached).  Caller holds the lock.
 */
static bool
slot_reusable(KappaWorkerSlot *w)
{
	return w->dboid == InvalidOid || (!w->wanted && w->pid == 0);
}

/*
 * The slot of a database, or NULL.  With create, a slot is taken and
 * wanted if the database has none (NULL if none can be taken), and the
 * database's slot is wanted if it was not.  Caller holds the lock,
 * exclusively to create.
 */
KappaWorkerSlot *
kappa_worker_slot(Oid dboid, bool create)
{
	KappaWorkerSlot *w = NULL;
	KappaWorkerSlot *reusable = NULL;

	Assert(OidIsValid(dboid));
	for (int i = 0; i < KappaShmem->nslots; i++)
	{
		KappaWorkerSlot *s = &KappaShmem->workers[i];

		if (s->dboid == dboid)
		{
			w = s;
			break;
		}
		/* prefer a free slot to one whose database may want it back */
		if (slot_reusable(s) &&
			(reusable == NULL || (reusable->dboid != InvalidOid &&
								  s->dboid == InvalidOid)))
			reusable = s;
	}
	if (!create)
		return w;

	if (w == NULL)
	{
		uint32		generation;

		if (reusable == NULL)
			return NULL;
		w = reusable;
		/* a worker started for the previous owner must not attach */
		generation = w->generation + 1;
		/* everything but the condition variable, which may have sleepers */
		memset((char *) w + offsetof(KappaWorkerSlot, dboid), 0,
			   sizeof(KappaWorkerSlot) - offsetof(KappaWorkerSlot, dboid));
		w->generation = generation;
		w->dboid = dboid;
	}
	if (!w->wanted)
	{
		w->wanted = true;
		w->restarts = 0;
		w->next_start = 0;
	}
	return w;
}

/* Error out unless pg_kappa's shared memory exists. */
static void
shmem_required(void)
{
	if (KappaShmem == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_kappa must be loaded via shared_preload_libraries"),
				 errhint("Add pg_kappa to shared_preload_libraries and restart the server.")));
}

/*
 * Give back the slots of databases that were dropped and have no worker
 * attached, so that they can be taken; the launcher does the same, but
 * only now and then.  Called without the lock, in a transaction.
 */
static void
free_slots_of_dropped_databases(void)
{
	int			nslots = KappaShmem->nslots;
	Oid		   *dboids = palloc(sizeof(Oid) * nslots);
	uint32	   *generations = palloc(sizeof(uint32) * nslots);

	LWLockAcquire(KappaShmem->lock, LW_SHARED);
	for (int i = 0; i < nslots; i++)
	{
		KappaWorkerSlot *w = &KappaShmem->workers[i];

		dboids[i] = w->pid == 0 ? w->dboid : InvalidOid;
		generations[i] = w->generation;
	}
	LWLockRelease(KappaShmem->lock);

	/* no catalog lookups under the lock */
	for (int i = 0; i < nslots; i++)
	{
		if (OidIsValid(dboids[i]) &&
			SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dboids[i])))
			dboids[i] = InvalidOid;
	}

	/*
	 * A slot whose generation moved on was taken (or its worker started)
	 * meanwhile; a worker started for a dropped database cannot attach
	 * once the slot is taken again, since that bumps the generation.
	 */
	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	for (int i = 0; i < nslots; i++)
	{
		KappaWorkerSlot *w = &KappaShmem->workers[i];

		if (OidIsValid(dboids[i]) && w->dboid == dboids[i] &&
			w->generation == generations[i] && w->pid == 0)
			w->dboid = InvalidOid;
	}
	LWLockRelease(KappaShmem->lock);

	pfree(dboids);
	pfree(generations);
}

/*
 * Ask the launcher to run a worker for the database, and wake it.  Errors
 * out when every slot belongs to another database that needs it; the
 * caller's transaction is then rolled back.
 */
void
kappa_request_worker(Oid dboid)
{
	KappaWorkerSlot *w = NULL;
	char	   *dbname;

	shmem_required();
	for (int attempt = 0; attempt < 2 && w == NULL; attempt++)
	{
		if (attempt > 0)
			free_slots_of_dropped_databases();
		LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
		w = kappa_worker_slot(dboid, true);
		if (w != NULL)
		{
			if (w->latch)
				SetLatch(w->latch);
			if (KappaShmem->launcher_latch)
				SetLatch(KappaShmem->launcher_latch);
		}
		LWLockRelease(KappaShmem->lock);
	}
	if (w != NULL)
		return;

	dbname = get_database_name(dboid);
	if (dbname == NULL)
		dbname = psprintf("%u", dboid);
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("no free pg_kappa worker slot for database \"%s\"",
					dbname),
			 errdetail("All %d worker slots belong to other databases that have derived views or captured tables.",
					   KappaShmem->nslots),
			 errhint("Increase pg_kappa.max_databases (this needs a restart), or drop the derived views and captures of a database that no longer needs them.")));
}

/* Wake the database's worker, if it runs (kappa.wait does, to cut lag). */
void
kappa_wake_worker(Oid dboid)
{
	KappaWorkerSlot *w;

	shmem_required();
	LWLockAcquire(KappaShmem->lock, LW_SHARED);
	w = kappa_worker_slot(dboid, false);
	if (w && w->latch)
		SetLatch(w->latch);
	LWLockRelease(KappaShmem->lock);
}

/*
 * The event log holds every change of a captured table committed before
 * the returned LSN.
 */
XLogRecPtr
kappa_worker_logged_lsn(Oid dboid)
{
	KappaWorkerSlot *w;
	XLogRecPtr	result = InvalidXLogRecPtr;

	shmem_required();
	LWLockAcquire(KappaShmem->lock, LW_SHARED);
	w = kappa_worker_slot(dboid, false);
	if (w && w->pid != 0)
		result = w->logged_lsn;
	LWLockRelease(KappaShmem->lock);
	return result;
}

/*
 * Slot w's bitmap of the running views its worker holds back, a bit per
 * view id below KAPPA_HELD_IDS (written by the worker with the lock held
 * exclusively, read with it shared).
 */
uint64 *
kappa_held_ids(KappaWorkerSlot *w)
{
	return (uint64 *) ((char *) KappaShmem + held_ids_offset()) +
		(w - KappaShmem->workers) * (KAPPA_HELD_IDS / 64);
}

/* Is view view_id among the running views the worker holds back? */
static bool
held_running(KappaWorkerSlot *w, int view_id)
{
	if (w->nheld_running == 0)
		return false;
	if (view_id < 0 || view_id >= KAPPA_HELD_IDS)
		return w->held_beyond;
	return (kappa_held_ids(w)[view_id / 64] & (UINT64CONST(1) << (view_id % 64))) != 0;
}

/*
 * Everything committed before the returned LSN has been applied to running
 * view view_id (that is all the returned LSN says: a view that is
 * not running has its own applied LSN).  That is the worker's position,
 * unless the worker holds the view back while it stays "running" (its row
 * in kappa.views locked by another transaction, or its sources rewritten
 * after the batch's snapshot): then only what every view has applied
 * counts.  So a view held back that way does not hold back the waiters of
 * the others.  With last_batch_at, also when the worker last applied a
 * batch of transactions (0 if it has not since it started, or there is no
 * worker).
 */
XLogRecPtr
kappa_view_processed_lsn(Oid dboid, int view_id, TimestampTz *last_batch_at)
{
	KappaWorkerSlot *w;
	XLogRecPtr	result = InvalidXLogRecPtr;

	if (last_batch_at)
		*last_batch_at = 0;
	shmem_required();
	LWLockAcquire(KappaShmem->lock, LW_SHARED);
	w = kappa_worker_slot(dboid, false);
	if (w && w->pid != 0)
	{
		result = held_running(w, view_id) ? w->processed_lsn : w->running_lsn;
		if (last_batch_at)
			*last_batch_at = w->last_batch_at;
	}
	LWLockRelease(KappaShmem->lock);
	return result;
}

/*
 * The condition variable the database's worker broadcasts on when its
 * processed LSN moves, or NULL if the database has no worker slot.  Slots
 * live as long as shared memory, so the pointer stays valid; should the
 * slot pass to another database meanwhile, a sleeper only wakes for
 * nothing.
 */
ConditionVariable *
kappa_worker_progress_cv(Oid dboid)
{
	KappaWorkerSlot *w;

	shmem_required();
	LWLockAcquire(KappaShmem->lock, LW_SHARED);
	w = kappa_worker_slot(dboid, false);
	LWLockRelease(KappaShmem->lock);
	return w ? &w->progress_cv : NULL;
}

/*
 * A palloc'd copy of all worker slots, taken at one instant, and their
 * number in *nslots; an empty array without shared memory.
 */
KappaWorkerSlot *
kappa_copy_worker_slots(int *nslots)
{
	KappaWorkerSlot *copy;

	if (KappaShmem == NULL)
	{
		*nslots = 0;
		return NULL;
	}
	*nslots = KappaShmem->nslots;
	copy = palloc(sizeof(KappaWorkerSlot) * KappaShmem->nslots);
	LWLockAcquire(KappaShmem->lock, LW_SHARED);
	memcpy(copy, KappaShmem->workers, sizeof(KappaWorkerSlot) * KappaShmem->nslots);
	LWLockRelease(KappaShmem->lock);
	return copy;
}
