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
 * wrong, silently, after a column is
 *
 *		renamed		(ALTER TABLE ... RENAME COLUMN, ALTER TYPE ... RENAME
 *					 ATTRIBUTE ... CASCADE of a typed table's type): its
 *					 values would be lost, and a column later given its old
 *					 name would take them;
 *		dropped		(ALTER TABLE ... DROP COLUMN, or DROP TYPE, DOMAIN, ...
 *					 CASCADE of its type, by whichever role owns that):
 *					 likewise, once a column is added under its name again;
 *		computed again (a rewrite: ALTER COLUMN ... TYPE, ADD COLUMN with a
 *					 volatile default): the rows changed without changes in
 *					 the WAL.
 *
 * So at the end of such a command (ddl_command_end; the columns dropped are
 * noted at sql_drop, the tables rewritten at table_rewrite, before) each
 * captured table it changed is captured again, in the command's
 * transaction, as kappa.uncapture then kappa.capture would: its log starts
 * again with a snapshot of its rows as the command left them, and a replay
 * that needs the table's log from before is refused, naming the first LSN
 * it can use (replay.c).  What was logged before stays, and audits still
 * check it.  A table whose capture failed is left as it is: its log has
 * already stopped.  The tables are taken by OID from what the command
 * reports, never by name again (code the command runs may change the
 * search_path).
 *
 * The apply worker logs the changes committed after a capture's start:
 * those of the table committed before the new snapshot and not logged yet
 * would be left out (they are in the snapshot, but not in the log as
 * changes).  So before ALTER TABLE of a captured table (ddl_command_start),
 * writers of the table are held off (SHARE lock, which the worker's reads
 * do not wait for) and the worker is waited for until it has logged
 * everything committed before.  A command that drops or changes columns
 * through another object (DROP TYPE ... CASCADE) has no such wait.
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
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_on_capture_ddl_start);
PG_FUNCTION_INFO_V1(kappa_on_capture_rewrite);
PG_FUNCTION_INFO_V1(kappa_on_capture_drop);
PG_FUNCTION_INFO_V1(kappa_on_capture_ddl);

/* How long ALTER TABLE of a captured table waits for the worker's log */
#define CAPTURE_DDL_WAIT_MS 10000

/*
 * Tables whose columns a command of transaction noted_lxid dropped or
 * computed again, in TopTransactionContext; and those the worker had not
 * logged up to the command's start.
 */
static List *noted = NIL;
static List *unlogged = NIL;
static LocalTransactionId noted_lxid = InvalidLocalTransactionId;

/* Note relid in *list, in the transaction's memory. */
static void
note_table(List **list, Oid relid)
{
	MemoryContext oldcxt;

	if (noted_lxid != MyProc->lxid)
	{
		/* the last transaction's, freed with it */
		noted = NIL;
		unlogged = NIL;
		noted_lxid = MyProc->lxid;
	}
	oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	*list = list_append_unique_oid(*list, relid);
	MemoryContextSwitchTo(oldcxt);
}

/* The OIDs in the first column of SPI's result, as a list in cxt. */
static List *
result_oids(MemoryContext cxt)
{
	List	   *result = NIL;
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		result = lappend_oid(result,
							 DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															SPI_tuptable->tupdesc, 1, &isnull)));
	}
	MemoryContextSwitchTo(oldcxt);
	return result;
}

/* Those of relids that are captured (and whose capture has not failed). */
static List *
captured_among(List *relids)
{
	List	   *result = NIL;
	Datum	   *elems;
	int			n = 0;
	ListCell   *lc;
	Oid			argtype = OIDARRAYOID;
	Datum		arg;
	SavedUser	saved;
	MemoryContext cxt = CurrentMemoryContext;

	if (relids == NIL)
		return NIL;
	elems = palloc(sizeof(Datum) * list_length(relids));
	foreach(lc, relids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	arg = PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(kappa_extension_owner(), &saved);
	if (SPI_execute_with_args("SELECT relid FROM kappa.captures"
							  " WHERE relid OPERATOR(pg_catalog.=) ANY ($1)"
							  " AND state OPERATOR(pg_catalog.=) 'active' ORDER BY relid",
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.captures");
	result = result_oids(cxt);
	kappa_unbecome(&saved);
	SPI_finish();
	return result;
}

/*
 * ddl_command_start of ALTER TABLE that renames, drops, adds or retypes a
 * column: hold off the writers of the captured tables it names (and those
 * below them, unless ONLY), and wait until the worker has logged what they
 * committed before.
 */
Datum
kappa_on_capture_ddl_start(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	RangeVar   *relation = NULL;
	Oid			relid;
	List	   *relids;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_on_capture_ddl_start: not fired by an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (IsA(trigdata->parsetree, AlterTableStmt))
	{
		/* the subcommands that may drop a column or compute rows again */
		foreach(lc, ((AlterTableStmt *) trigdata->parsetree)->cmds)
		{
			AlterTableType subtype = lfirst_node(AlterTableCmd, lc)->subtype;

			if (subtype == AT_DropColumn || subtype == AT_AlterColumnType ||
				subtype == AT_AddColumn)
				relation = ((AlterTableStmt *) trigdata->parsetree)->relation;
		}
	}
	else if (IsA(trigdata->parsetree, RenameStmt) &&
			 ((RenameStmt *) trigdata->parsetree)->renameType == OBJECT_COLUMN)
		relation = ((RenameStmt *) trigdata->parsetree)->relation;
	if (relation == NULL || !kappa_log_available())
		PG_RETURN_NULL();
	relid = RangeVarGetRelid(relation, NoLock, true);
	if (!OidIsValid(relid))
		PG_RETURN_NULL();
	relids = relation->inh ? find_all_inheritors(relid, NoLock, NULL) : list_make1_oid(relid);
	relids = captured_among(relids);
	if (relids == NIL)
		PG_RETURN_NULL();

	/* (the command locks them anyway; one that fails is no worse off) */
	foreach(lc, relids)
		LockRelationOid(lfirst_oid(lc), ShareLock);
	if (!kappa_wait_processed(GetXLogInsertRecPtr(), CAPTURE_DDL_WAIT_MS))
	{
		foreach(lc, relids)
			note_table(&unlogged, lfirst_oid(lc));
	}
	PG_RETURN_NULL();
}

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

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_on_capture_rewrite: not fired by an event trigger");
	relid = DatumGetObjectId(DirectFunctionCall1(pg_event_trigger_table_rewrite_oid,
												 (Datum) 0));
	reason = DatumGetInt32(DirectFunctionCall1(pg_event_trigger_table_rewrite_reason,
											   (Datum) 0));
	if ((reason & (AT_REWRITE_DEFAULT_VAL | AT_REWRITE_COLUMN_REWRITE)) != 0)
		note_table(&noted, relid);
	PG_RETURN_NULL();
}

/*
 * Note the tables the query finds among the objects the command reports
 * (by OID), and those below them.
 */
static void
note_reported_tables(const char *sql)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *relids;
	ListCell   *lc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the objects of the command");
	relids = result_oids(cxt);
	SPI_finish();
	/* and the tables below them, whose columns went with theirs */
	foreach(lc, relids)
	{
		ListCell   *li;

		foreach(li, find_all_inheritors(lfirst_oid(lc), NoLock, NULL))
			note_table(&noted, lfirst_oid(li));
	}
}

/* sql_drop: note the tables of the columns the command dropped. */
Datum
kappa_on_capture_drop(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_on_capture_drop: not fired by an event trigger");
	note_reported_tables("SELECT DISTINCT d.objid FROM pg_catalog.pg_event_trigger_dropped_objects() d"
						 " WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
						 " AND d.objsubid OPERATOR(pg_catalog.>) 0");
	PG_RETURN_NULL();
}

/*
 * ddl_command_end: capture again each captured table (whose capture has not
 * failed) whose columns the command renamed, dropped or computed again.
 */
Datum
kappa_on_capture_ddl(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	List	   *relids = NIL;
	List	   *recapture;
	List	   *retains = NIL;
	ListCell   *lc;
	ListCell   *lc2;
	SavedUser	saved;
	MemoryContext cxt = CurrentMemoryContext;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_on_capture_ddl: not fired by an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;

	/*
	 * A column renamed: the table the command reports (with the column's
	 * number); an attribute of a composite type renamed (CASCADE), the
	 * tables of that type.
	 */
	if (IsA(trigdata->parsetree, RenameStmt) &&
		(((RenameStmt *) trigdata->parsetree)->renameType == OBJECT_COLUMN ||
		 ((RenameStmt *) trigdata->parsetree)->renameType == OBJECT_ATTRIBUTE))
		note_reported_tables("SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
							 " WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
							 " AND c.objsubid OPERATOR(pg_catalog.>) 0"
							 " UNION SELECT r.oid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
							 " JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) c.objid"
							 " JOIN pg_catalog.pg_class r ON r.reloftype OPERATOR(pg_catalog.=) k.reltype"
							 " WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
							 " AND c.objsubid OPERATOR(pg_catalog.>) 0"
							 " AND k.relkind OPERATOR(pg_catalog.=) 'c'");
	if (noted_lxid == MyProc->lxid)
	{
		/* those dropped since are no concern */
		foreach(lc, noted)
		{
			if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(lfirst_oid(lc))))
				relids = lappend_oid(relids, lfirst_oid(lc));
		}
		noted = NIL;
	}
	recapture = captured_among(relids);
	if (recapture == NIL)
		PG_RETURN_NULL();

	/*
	 * Not from a derived view's code, which may not write the log: it runs
	 * inside the apply worker's batch.
	 */
	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot change the columns of captured table %s within a security-restricted operation",
						kappa_qualified_name(linitial_oid(recapture))),
				 errdetail("Its event log would start again with a snapshot, which a derived view's code, and other maintenance code, may not write.")));

	/* their captures are forgotten, as by kappa.uncapture ... */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(kappa_extension_owner(), &saved);
	foreach(lc, recapture)
	{
		Oid			argtype = OIDOID;
		Datum		arg = ObjectIdGetDatum(lfirst_oid(lc));
		MemoryContext oldcxt;

		if (SPI_execute_with_args("DELETE FROM kappa.captures WHERE relid OPERATOR(pg_catalog.=) $1"
								  " RETURNING COALESCE(pg_catalog.quote_literal(retain), 'NULL')",
								  1, &argtype, &arg, NULL, false, 0) != SPI_OK_DELETE_RETURNING ||
			SPI_processed != 1)
			elog(ERROR, "could not delete from kappa.captures");
		oldcxt = MemoryContextSwitchTo(cxt);
		retains = lappend(retains, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		MemoryContextSwitchTo(oldcxt);
	}
	kappa_unbecome(&saved);
	SPI_finish();

	/*
	 * ... and they are captured again, with a snapshot of their rows now:
	 * also a table of another role's, whose column went with a type the
	 * command's role dropped with CASCADE (the snapshot goes to the log,
	 * which shows it only to who may read the table).
	 */
	forboth(lc, recapture, lc2, retains)
	{
		Oid			relid = lfirst_oid(lc);

		(void) kappa_capture_relation(relid, (const char *) lfirst(lc2), false);
		ereport(NOTICE,
				(errmsg("the event log of table %s starts again with a snapshot",
						kappa_qualified_name(relid)),
				 errdetail("Logged changes name the columns as they were when logged, and the command renamed, dropped or computed again a column. A replay from before this point is refused; kappa.captures shows where the log of the table starts.")));
		if (noted_lxid == MyProc->lxid && list_member_oid(unlogged, relid))
			ereport(WARNING,
					(errmsg("changes of table %s committed before the command may be missing from its event log",
							kappa_qualified_name(relid)),
					 errdetail("The apply worker had not logged them within %d seconds; they are in the new snapshot, but not in the log as changes.",
							   CAPTURE_DDL_WAIT_MS / 1000)));
	}
	PG_RETURN_NULL();
}
