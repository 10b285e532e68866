/*-------------------------------------------------------------------------
 *
 * capture_ddl.c
 *	  A captured table whose columns change in a way its log cannot follow
 *	  starts its log again, with a new snapshot.
 *
 * Logged changes name their columns (the output plugin's records), and
 * replay maps them onto the table's columns by name.  That stays right
 * when a column is added: a record logged before has no value for it, and
 * replay gives it the default the table's own rows took.  It would go
 * wrong, silently, after
 *
 *		ALTER TABLE t RENAME COLUMN a TO b	(a's values would be lost, and
 *											 a column later named a would
 *											 take them)
 *		ALTER TABLE t DROP COLUMN a			(likewise, once a column is
 *											 added under that name again)
 *		ALTER TABLE t ALTER a TYPE ... / ADD COLUMN c ... DEFAULT random()
 *											(the rows are computed again,
 *											 with no change in the WAL)
 *
 * So after such a command (ddl_command_end; a rewrite is noted at
 * table_rewrite, before it happens) each captured table it changed is
 * captured again, in the command's transaction, exactly as kappa.uncapture
 * then kappa.capture would: its log starts again with a snapshot of its
 * rows as the command left them, and a replay that needs the table's log
 * from before is refused, naming the first LSN it can use (replay.c).
 * What was logged before stays, and audits still check it.  A table whose
 * capture failed is left as it is: its log has already stopped.
 *
 * Such a command on a large captured table costs a copy of the table into
 * the log, as kappa.capture does; a NOTICE says so.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_on_capture_rewrite);
PG_FUNCTION_INFO_V1(kappa_on_capture_ddl);

/*
 * Tables rewritten by a command of transaction rewritten_lxid that
 * computed their rows again, in TopTransactionContext.
 */
static List *rewritten = NIL;
static LocalTransactionId rewritten_lxid = InvalidLocalTransactionId;

/*
 * table_rewrite: note a table whose rows the command computes again (a
 * column's new type, or a column added with a volatile default).  A rewrite
 * that only moves the rows (SET TABLESPACE, SET LOGGED, VACUUM FULL, ...)
 * changes nothing the log holds.
 */
Datum
kappa_on_capture_rewrite(PG_FUNCTION_ARGS)
{
	Oid			relid;
	int			reason;
	MemoryContext oldcxt;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_on_capture_rewrite: not fired by an event trigger");
	relid = DatumGetObjectId(DirectFunctionCall1(pg_event_trigger_table_rewrite_oid,
												 (Datum) 0));
	reason = DatumGetInt32(DirectFunctionCall1(pg_event_trigger_table_rewrite_reason,
											   (Datum) 0));
	if ((reason & (AT_REWRITE_DEFAULT_VAL | AT_REWRITE_COLUMN_REWRITE)) == 0)
		PG_RETURN_NULL();

	if (rewritten_lxid != MyProc->lxid)
		rewritten = NIL;		/* the last transaction's, freed with it */
	rewritten_lxid = MyProc->lxid;
	oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	rewritten = list_append_unique_oid(rewritten, relid);
	MemoryContextSwitchTo(oldcxt);
	PG_RETURN_NULL();
}

/* relid, and the tables below it if the command recurses (no ONLY) */
static List *
with_inheritors(List *relids, RangeVar *relation)
{
	Oid			relid = RangeVarGetRelid(relation, NoLock, true);

	if (!OidIsValid(relid))
		return relids;
	if (relation->inh)
		return list_concat_unique_oid(relids, find_all_inheritors(relid, NoLock, NULL));
	return list_append_unique_oid(relids, relid);
}

/*
 * The tables whose columns the command renamed or dropped, and those it
 * rewrote computing their rows again.
 */
static List *
changed_tables(Node *parsetree)
{
	List	   *relids = NIL;

	if (IsA(parsetree, RenameStmt))
	{
		RenameStmt *rs = (RenameStmt *) parsetree;

		if (rs->renameType == OBJECT_COLUMN && rs->relation != NULL)
			relids = with_inheritors(relids, rs->relation);
	}
	else if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
		ListCell   *lc;

		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

			if (cmd->subtype == AT_DropColumn && stmt->relation != NULL)
			{
				relids = with_inheritors(relids, stmt->relation);
				break;
			}
		}
	}
	if (rewritten_lxid == MyProc->lxid)
		relids = list_concat_unique_oid(relids, rewritten);
	return relids;
}

/*
 * ddl_command_end of ALTER TABLE: capture again each captured table (whose
 * capture has not failed) that the command changed as above.
 */
Datum
kappa_on_capture_ddl(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	List	   *relids;
	List	   *recapture = NIL;
	List	   *retains = NIL;
	Datum	   *elems;
	int			n = 0;
	ListCell   *lc;
	ListCell   *lc2;
	Oid			argtype = OIDARRAYOID;
	Datum		arg;
	SavedUser	saved;
	MemoryContext cxt = CurrentMemoryContext;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_on_capture_ddl: not fired by an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	relids = changed_tables(trigdata->parsetree);
	rewritten = NIL;
	if (relids == NIL)
		PG_RETURN_NULL();

	elems = palloc(sizeof(Datum) * list_length(relids));
	foreach(lc, relids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	arg = PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));

	/* their captures are forgotten, as by kappa.uncapture ... */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(kappa_extension_owner(), &saved);
	if (SPI_execute_with_args("DELETE FROM kappa.captures"
							  " WHERE relid OPERATOR(pg_catalog.=) ANY ($1)"
							  " AND state OPERATOR(pg_catalog.=) 'active'"
							  " RETURNING relid, COALESCE(pg_catalog.quote_literal(retain), 'NULL')",
							  1, &argtype, &arg, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "could not delete from kappa.captures");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

		recapture = lappend_oid(recapture,
								DatumGetObjectId(SPI_getbinval(tup, SPI_tuptable->tupdesc,
															   1, &isnull)));
		retains = lappend(retains, SPI_getvalue(tup, SPI_tuptable->tupdesc, 2));
		MemoryContextSwitchTo(oldcxt);
	}
	kappa_unbecome(&saved);
	SPI_finish();

	/*
	 * (Not from a derived view's code, which may not write the log: it
	 * runs inside the apply worker's batch.)
	 */
	if (recapture != NIL && InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot change the columns of captured table %s within a security-restricted operation",
						kappa_qualified_name(linitial_oid(recapture))),
				 errdetail("Its event log would start again with a snapshot, which a derived view's code, and other maintenance code, may not write.")));

	/* ... and they are captured again, with a snapshot of their rows now */
	forboth(lc, recapture, lc2, retains)
	{
		Oid			relid = lfirst_oid(lc);

		(void) kappa_capture_relation(relid, (const char *) lfirst(lc2));
		ereport(NOTICE,
				(errmsg("the event log of table %s starts again with a snapshot",
						kappa_qualified_name(relid)),
				 errdetail("Logged changes name the columns as they were when logged, and the command renamed, dropped or computed again a column. A replay from before this point is refused; kappa.captures shows where the log of the table starts.")));
	}
	PG_RETURN_NULL();
}
