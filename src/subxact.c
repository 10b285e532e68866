/*-------------------------------------------------------------------------
 *
 * subxact.c
 *	  Running one step in a subtransaction of its own and catching its
 *	  error, so that a step that fails (one view of many, one row of a
 *	  restore, one record of the event log) leaves the others and the
 *	  transaction around it as they were.
 *
 * It is the idiom PL/pgSQL uses for a block with an EXCEPTION clause: the
 * step runs between BeginInternalSubTransaction and
 * ReleaseCurrentSubTransaction; on error the error is copied out, the
 * error state flushed and the subtransaction rolled back, which releases
 * its locks, buffers and memory.  Callers decide what the error means,
 * except for a cancel (a statement timeout, pg_cancel_backend), which is
 * raised again once the step's subtransaction is rolled back: what the
 * session asked to stop is not a failed step to go on from.  A cancel is
 * the error the interrupt handler raises (ProcessInterrupts, postgres.c):
 * a step's own code (a view owner's function) that raises the same
 * SQLSTATE has failed like any other, and must not stop another role's
 * command.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "pg_kappa.h"

/*
 * Run step(arg) in a subtransaction.  Returns NULL when it succeeded (its
 * subtransaction committed into the current one), or else the error it
 * raised, copied into errcxt (its subtransaction rolled back).  The step
 * starts in the caller's memory context, and the caller's memory context
 * and resource owner are current again on return, either way.
 */
static ErrorData *
run_in_subxact(void (*step) (void *arg), void *arg, MemoryContext errcxt, bool undo)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		step(arg);
		if (undo)
			RollbackAndReleaseCurrentSubTransaction();
		else
			ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(errcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	if (edata != NULL && edata->sqlerrcode == ERRCODE_QUERY_CANCELED &&
		edata->filename != NULL && strcmp(edata->filename, "postgres.c") == 0)
		ReThrowError(edata);
	return edata;
}

ErrorData *
kappa_try_in_subxact(void (*step) (void *arg), void *arg, MemoryContext errcxt)
{
	return run_in_subxact(step, arg, errcxt, false);
}

/*
 * The same, but the subtransaction is rolled back when the step succeeds
 * too: a step that only reads (prints a query) leaves no lock behind for
 * the rest of the transaction.  What it returns must be in a context of
 * the caller's.
 */
ErrorData *
kappa_try_and_undo_in_subxact(void (*step) (void *arg), void *arg, MemoryContext errcxt)
{
	return run_in_subxact(step, arg, errcxt, true);
}
