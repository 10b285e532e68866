/*-------------------------------------------------------------------------
 *
 * view_writes.c
 *	  In the apply worker: a view's code may not write outside the view.
 *
 * The worker's writes carry its replication origin, which its decoding
 * leaves out (its own deltas are never decoded back).  A function in a
 * view's query that inserted into some other table from inside the worker
 * would therefore write rows that no other view, and not the event log,
 * would ever see.  So while the worker maintains a view, every statement
 * that writes (INSERT, UPDATE, DELETE, MERGE, a data-modifying WITH, COPY
 * FROM, TRUNCATE) may write only the view's derived table and its internal
 * tables (schema kappa_v<id>); anything else is refused, and the view
 * breaks with that error.
 *
 * Nor may a view's code run other utility commands there (ALTER TABLE,
 * CREATE FUNCTION, DROP ...): the worker runs in replica mode, where
 * pg_kappa's event triggers, which keep DDL from leaving views silently
 * wrong, do not fire.  Only settings (SET, SHOW) are let through.
 *
 * This file installs the executor and utility hooks in the worker only; it
 * does not decide anything else about view code (catalog.c runs it as its
 * owner).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "executor/executor.h"
#include "nodes/parsenodes.h"
#include "parser/parsetree.h"
#include "tcop/cmdtag.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"

#include "pg_kappa.h"

/* the view being maintained, or InvalidOid */
static Oid	current_view = InvalidOid;
static Oid	current_schema = InvalidOid;

static ExecutorStart_hook_type prev_executor_start = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

/* Refuse a write to relid unless it is the current view's. */
static void
check_write(Oid relid)
{
	/*
	 * The internal tables: those of the view's schema, where no role may
	 * put a table of its own (internal_guard.c); none is a partition or an
	 * inheritance child, whose rows would be another table's.
	 */
	if (relid == current_view ||
		(get_rel_namespace(relid) == current_schema &&
		 !get_rel_relispartition(relid) && !has_superclass(relid)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("a derived view's code cannot write to table \"%s\"", kappa_rel_label(relid)),
			 errdetail("What it wrote while the apply worker maintains the view would never reach other views or the event log."),
			 errhint("Remove the write from the functions the view's query calls.")));
}

/* Every result relation of a writing statement must be the view's. */
static void
view_writes_executor_start(QueryDesc *queryDesc, int eflags)
{
	if (OidIsValid(current_view))
	{
		ListCell   *lc;

		foreach(lc, queryDesc->plannedstmt->resultRelations)
			check_write(rt_fetch(lfirst_int(lc), queryDesc->plannedstmt->rtable)->relid);
	}
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/* ... and so must a TRUNCATE's tables and a COPY FROM's. */
static void
view_writes_process_utility(PlannedStmt *pstmt, const char *queryString,
							bool readOnlyTree, ProcessUtilityContext context,
							ParamListInfo params, QueryEnvironment *queryEnv,
							DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (OidIsValid(current_view))
	{
		if (IsA(stmt, TruncateStmt))
		{
			ListCell   *lc;

			foreach(lc, ((TruncateStmt *) stmt)->relations)
				check_write(RangeVarGetRelid(lfirst(lc), NoLock, false));
		}
		else if (IsA(stmt, CopyStmt))
		{
			if (((CopyStmt *) stmt)->is_from && ((CopyStmt *) stmt)->relation)
				check_write(RangeVarGetRelid(((CopyStmt *) stmt)->relation, NoLock, false));
		}
		else if (!IsA(stmt, VariableSetStmt) && !IsA(stmt, VariableShowStmt))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("a derived view's code cannot run %s in the apply worker",
							GetCommandTagName(CreateCommandTag(stmt))),
					 errdetail("pg_kappa's checks of DDL do not run in the apply worker, so a command run there could leave views wrong."),
					 errhint("Remove the command from the functions the view's query calls.")));
	}
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
							 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

/* In the apply worker, at start: install the hooks. */
void
kappa_view_writes_init(void)
{
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = view_writes_executor_start;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = view_writes_process_utility;
}

/*
 * The worker is about to maintain view id (derived table relid), or is
 * done with it (InvalidOid).
 */
void
kappa_view_writes_begin(int id, Oid relid)
{
	current_view = relid;
	current_schema = OidIsValid(relid) ?
		get_namespace_oid(psprintf("kappa_v%d", id), true) : InvalidOid;
}
