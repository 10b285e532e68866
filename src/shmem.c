/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared memory of pg_kappa: one slot per database that has (or had)
 *	  an apply worker, and the launcher's address.
 *
 * Locking: KappaShmem->lock (one LWLock) protects every field of
 * KappaShared and of its worker slots.  Take it shared to read, exclusive
 * to write; never hold it while waiting for anything else.
 *
 * A slot belongs to a database while dboid is set.  The launcher starts a
 * worker for every slot that is "wanted", bumping the slot's generation; a
 * worker attaches only if the generation it was started with is still
 * current, so a stale worker can never take over a reused slot.
 *
 * This file does not start or stop processes (launcher.c does), and keeps
 * no per-view state: views live in the kappa.views table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"

#include "pg_kappa.h"

KappaShared *KappaShmem = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
kappa_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(KappaShared)));
	RequestNamedLWLockTranche("pg_kappa", 1);
}

static void
kappa_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	KappaShmem = ShmemInitStruct("pg_kappa", sizeof(KappaShared), &found);
	if (!found)
	{
		memset(KappaShmem, 0, sizeof(KappaShared));
		KappaShmem->lock = &(GetNamedLWLockTranche("pg_kappa"))->lock;
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
 * The slot of a database, or NULL.  With create, a free slot is claimed
 * (NULL if none is left).  Caller holds the lock, exclusively to create.
 */
KappaWorkerSlot *
kappa_worker_slot(Oid dboid, bool create)
{
	KappaWorkerSlot *free_slot = NULL;

	for (int i = 0; i < KAPPA_MAX_WORKERS; i++)
	{
		KappaWorkerSlot *w = &KappaShmem->workers[i];

		if (w->dboid == dboid)
			return w;
		if (w->dboid == InvalidOid && free_slot == NULL)
			free_slot = w;
	}
	if (!create || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(KappaWorkerSlot));
	free_slot->dboid = dboid;
	return free_slot;
}

static void
shmem_required(void)
{
	if (KappaShmem == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_kappa must be loaded via shared_preload_libraries"),
				 errhint("Add pg_kappa to shared_preload_libraries and restart the server.")));
}

/* Ask the launcher to run a worker for the database, and wake it. */
void
kappa_request_worker(Oid dboid)
{
	KappaWorkerSlot *w;

	shmem_required();
	LWLockAcquire(KappaShmem->lock, LW_EXCLUSIVE);
	w = kappa_worker_slot(dboid, true);
	if (w == NULL)
	{
		LWLockRelease(KappaShmem->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many databases with pg_kappa apply workers"),
				 errdetail("At most %d databases can have derived views.",
						   KAPPA_MAX_WORKERS)));
	}
	if (!w->wanted)
	{
		w->wanted = true;
		w->restarts = 0;
		w->next_start = 0;
	}
	if (w->latch)
		SetLatch(w->latch);
	if (KappaShmem->launcher_latch)
		SetLatch(KappaShmem->launcher_latch);
	LWLockRelease(KappaShmem->lock);
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

/* Everything committed before the returned LSN has been applied. */
XLogRecPtr
kappa_worker_processed_lsn(Oid dboid)
{
	KappaWorkerSlot *w;
	XLogRecPtr	result = InvalidXLogRecPtr;

	shmem_required();
	LWLockAcquire(KappaShmem->lock, LW_SHARED);
	w = kappa_worker_slot(dboid, false);
	if (w && w->pid != 0)
		result = w->processed_lsn;
	LWLockRelease(KappaShmem->lock);
	return result;
}
