/*-------------------------------------------------------------------------
 *
 * commit_wake.c
 *	  Wakes the database's apply worker when a transaction that wrote
 *	  commits, so that a view's lag is the work of its batch and not the
 *	  time the worker sleeps between looks at the WAL (pg_kappa.naptime).
 *
 * Every backend runs the callback, since the library is preloaded; it does
 * no more than look for the database's worker slot and set its latch,
 * after the transaction is visible to others (XACT_EVENT_COMMIT comes after
 * ProcArrayEndTransaction), so that the snapshot of the batch the worker
 * then starts sees it.  Nothing here may fail: the transaction has
 * committed.  So the slots are read only if their lock is free at once; a
 * commit that finds it taken does not wake the worker, which then finds its
 * changes when it next looks, at most pg_kappa.naptime later.
 *
 * A transaction "wrote" when its commit wrote WAL: XactLastCommitEnd,
 * which RecordTransactionCommit sets only then, has moved since this
 * backend's last commit.  That covers COMMIT PREPARED, whose own
 * transaction has no xid (the prepared one's commit record is written on
 * its behalf); it also counts a read-only transaction that pruned a page,
 * which costs the worker a look at the WAL and nothing else.
 *
 * A worker busy with a batch is not interrupted: its latch stays set, and
 * the batch that follows takes every transaction committed meanwhile.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

#include "pg_kappa.h"

/* XactLastCommitEnd as this backend's last commit left it */
static XLogRecPtr last_commit_end = InvalidXLogRecPtr;

static void
commit_wake(XactEvent event, void *arg)
{
	KappaWorkerSlot *w;

	/* only top-level commits that wrote; never the worker's own */
	if (event != XACT_EVENT_COMMIT || kappa_in_apply_worker ||
		XactLastCommitEnd == last_commit_end)
		return;
	last_commit_end = XactLastCommitEnd;
	if (KappaShmem == NULL || !OidIsValid(MyDatabaseId))
		return;

	if (!LWLockConditionalAcquire(KappaShmem->lock, LW_SHARED))
		return;
	w = kappa_worker_slot(MyDatabaseId, false);
	if (w != NULL && w->latch != NULL)
		SetLatch(w->latch);
	LWLockRelease(KappaShmem->lock);
}

/* Called from _PG_init when the library is preloaded. */
void
kappa_commit_wake_init(void)
{
	RegisterXactCallback(commit_wake, NULL);
}
