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
 * changes).  So before ALTER TABLE of a captured table, or ALTER TYPE ...
 * CASCADE of a typed table's type (ddl_command_start), the writers of the
 * table are held off (SHARE ROW EXCLUSIVE, which the worker's reads do not
 * wait for) and the worker is waited for until it has logged everything
 * committed before; so before DROP TYPE or DROP DOMAIN ... CASCADE of a
 * type the role owns, for the captured tables whose columns it would drop
 * (found down pg_depend), whoever owns them: the command itself takes
 * them ACCESS EXCLUSIVE right after.  kappa.uncapture does the same.
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
#include "parser/parse_type.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
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
 * computed again, and those the worker had not logged up to a command's
 * start: NotedTable entries in TopTransactionContext.  Those noted in a
 * subtransaction that aborts (a command that failed inside an exception
 * block) are forgotten with it.
 */
typedef struct NotedTable
{
	Oid			relid;
	SubTransactionId subid;
} NotedTable;

static List *noted = NIL;
static List *unlogged = NIL;
static bool noted_table(List *list, Oid relid);
static LocalTransactionId noted_lxid = InvalidLocalTransactionId;
static bool subxact_callback_set = false;

/* Forget the tables noted in an aborted subtransaction. */
static List *
forget_subxact(List *list, SubTransactionId subid, SubTransactionId parent, bool aborted)
{
	ListCell   *lc;

	foreach(lc, list)
	{
		NotedTable *t = lfirst(lc);

		if (t->subid != subid)
			continue;
		if (aborted)
			list = foreach_delete_current(list, lc);
		else
			t->subid = parent;
	}
	return list;
}

static void
capture_ddl_subxact(SubXactEvent event, SubTransactionId subid,
					SubTransactionId parent, void *arg)
{
	if (noted_lxid != MyProc->lxid ||
		(event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB))
		return;
	noted = forget_subxact(noted, subid, parent, event == SUBXACT_EVENT_ABORT_SUB);
	unlogged = forget_subxact(unlogged, subid, parent, event == SUBXACT_EVENT_ABORT_SUB);
}

/* Note relid in *list, in the transaction's memory. */
static void
note_table(List **list, Oid relid)
{
	MemoryContext oldcxt;
	NotedTable *t;

	if (noted_lxid != MyProc->lxid)
	{
		/* the last transaction's, freed with it */
		noted = NIL;
		unlogged = NIL;
		noted_lxid = MyProc->lxid;
	}
	if (!subxact_callback_set)
	{
		RegisterSubXactCallback(capture_ddl_subxact, NULL);
		subxact_callback_set = true;
	}
	if (noted_table(*list, relid))
		return;
	oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	t = palloc(sizeof(NotedTable));
	t->relid = relid;
	t->subid = GetCurrentSubTransactionId();
	*list = lappend(*list, t);
	MemoryContextSwitchTo(oldcxt);
}

/* Is relid in list (of this transaction)? */
static bool
noted_table(List *list, Oid relid)
{
	ListCell   *lc;

	if (noted_lxid != MyProc->lxid)
		return false;
	foreach(lc, list)
	{
		if (((NotedTable *) lfirst(lc))->relid == relid)
			return true;
	}
	return false;
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

/* The OIDs query (of one oid parameter, arg) returns, as a list. */
static List *
query_oids(const char *query, Oid arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtype = OIDOID;
	Datum		value = ObjectIdGetDatum(arg);
	List	   *result;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(query, 1, &argtype, &value, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the catalogs");
	result = result_oids(cxt);
	SPI_finish();
	return result;
}

/* Those of relids that are captured (and whose capture has not failed). */
static List *
captured_among(List *relids)
{
	List	   *result;
	Oid			argtype = OIDARRAYOID;
	Datum		arg;
	SavedUser	saved;
	MemoryContext cxt = CurrentMemoryContext;

	if (relids == NIL)
		return NIL;
	arg = kappa_oid_list_array(relids);

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

/* Does this transaction hold the event log's lock (it captured a table)? */
static bool
log_locked_by_me(void)
{
	Oid			log = kappa_event_log_relid();

	return OidIsValid(log) && CheckRelationOidLockedByMe(log, ShareRowExclusiveLock, true);
}

/*
 * Before a capture ends or starts again: hold off the writers of the
 * captured tables relids (SHARE ROW EXCLUSIVE, which the worker's reads do
 * not wait for, and which two such commands do not both get: they would
 * deadlock asking for more), in the order given (a parent before its
 * children, as ALTER TABLE locks them), and wait until the worker has
 * logged what they committed.  Tables this transaction already held off
 * need no wait.  Returns those whose changes may not all be logged: none,
 * unless the worker could not get there (its wait ran out, or this
 * transaction holds the log's lock, which the worker waits for).
 */
List *
kappa_capture_hold_writers(List *relids, int timeout_ms)
{
	List	   *waiting = NIL;
	ListCell   *lc;

	foreach(lc, relids)
	{
		Oid			relid = lfirst_oid(lc);

		if (!CheckRelationOidLockedByMe(relid, ShareLock, true))
			waiting = lappend_oid(waiting, relid);
		LockRelationOid(relid, ShareRowExclusiveLock);
	}
	if (waiting == NIL)
		return NIL;
	if (!log_locked_by_me() &&
		kappa_wait_processed(GetXLogInsertRecPtr(), timeout_ms))
		return NIL;
	return waiting;
}

/*
 * The tables of composite type typrelid (CREATE TABLE ... OF) that the
 * current user owns: those ALTER TYPE ... CASCADE may change (it refuses
 * to change another role's).
 */
static List *
typed_tables(Oid typrelid)
{
	List	   *owned = NIL;
	ListCell   *lc;

	foreach(lc, query_oids("SELECT c.oid FROM pg_catalog.pg_class c, pg_catalog.pg_class t"
						   " WHERE t.oid OPERATOR(pg_catalog.=) $1"
						   " AND c.reloftype OPERATOR(pg_catalog.=) t.reltype ORDER BY c.oid",
						   typrelid))
	{
		if (pg_class_ownercheck(lfirst_oid(lc), GetUserId()))
			owned = lappend_oid(owned, lfirst_oid(lc));
	}
	return owned;
}

/*
 * The tables with a column that DROP TYPE ... CASCADE of type typid (owned
 * by the current user) would drop: a column of the type, of a domain over
 * it, of its array, of a composite type with an attribute of it, and so on
 * down pg_depend; in OID order.  Also the tables of the type (CREATE TABLE
 * ... OF), which the command drops whole: holding them off costs nothing
 * more.
 */
static List *
tables_using_type(Oid typid)
{
	return query_oids("WITH RECURSIVE dep(classid, objid, objsubid) AS ("
					  " SELECT 'pg_catalog.pg_type'::pg_catalog.regclass::pg_catalog.oid, $1, 0"
					  " UNION"
					  " SELECT d.classid, d.objid, d.objsubid FROM pg_catalog.pg_depend d, dep"
					  "  WHERE d.refclassid OPERATOR(pg_catalog.=) dep.classid"
					  "  AND d.refobjid OPERATOR(pg_catalog.=) dep.objid"
					  "  AND (dep.objsubid OPERATOR(pg_catalog.=) 0"
					  "   OR d.refobjsubid OPERATOR(pg_catalog.=) dep.objsubid)"
					  "  AND d.deptype OPERATOR(pg_catalog.=) ANY ('{n,a,i}'::pg_catalog.\"char\"[]))"
					  " SELECT DISTINCT c.oid FROM dep, pg_catalog.pg_class c"
					  " WHERE dep.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
					  " AND c.oid OPERATOR(pg_catalog.=) dep.objid"
					  " AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])"
					  " ORDER BY c.oid",
					  typid);
}

/*
 * ddl_command_start of DROP TYPE or DROP DOMAIN ... CASCADE: the captured
 * tables whose columns it would drop, of the types the current user owns
 * (the command refuses the others).
 */
static List *
drop_type_tables(DropStmt *stmt)
{
	List	   *relids = NIL;
	ListCell   *lc;

	if (stmt->behavior != DROP_CASCADE)
		return NIL;
	foreach(lc, stmt->objects)
	{
		Oid			typid;

		if (!IsA(lfirst(lc), TypeName))
			continue;
		typid = LookupTypeNameOid(NULL, lfirst_node(TypeName, lc), true);
		if (OidIsValid(typid) && pg_type_ownercheck(typid, GetUserId()))
			relids = list_concat_unique_oid(relids, tables_using_type(typid));
	}
	list_sort(relids, list_oid_cmp);
	return captured_among(relids);
}

/*
 * ddl_command_start of ALTER TABLE that renames, drops or retypes a column,
 * or adds one that may compute the rows again (DROP TYPE and DROP DOMAIN:
 * see drop_type_tables): hold off the writers of the
 * captured tables it names (and those below them, unless ONLY), as
 * kappa_capture_hold_writers says; for ALTER TYPE of a composite type, of
 * its tables.  Only for a table the current user owns:
 * the command refuses the others, and nothing of theirs is locked before.
 */
Datum
kappa_on_capture_ddl_start(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	RangeVar   *relation = NULL;
	Oid			relid;
	List	   *inheritors;
	List	   *captured;
	List	   *held = NIL;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_on_capture_ddl_start: not fired by an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	/* (maintenance code is refused at the end: see kappa_on_capture_ddl) */
	if (InSecurityRestrictedOperation() || kappa_in_apply_worker || !kappa_log_available())
		PG_RETURN_NULL();
	if (IsA(trigdata->parsetree, AlterTableStmt))
	{
		foreach(lc, ((AlterTableStmt *) trigdata->parsetree)->cmds)
		{
			AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
			ColumnDef  *def = (cmd->subtype == AT_AddColumn && IsA(cmd->def, ColumnDef)) ?
				(ColumnDef *) cmd->def : NULL;

			/* a column added without a default, nor generated, changes no row */
			if (cmd->subtype == AT_DropColumn || cmd->subtype == AT_AlterColumnType ||
				(def != NULL && (def->raw_default != NULL || def->identity != 0 ||
								 def->generated != 0 || def->constraints != NIL)))
				relation = ((AlterTableStmt *) trigdata->parsetree)->relation;
		}
	}
	else if (IsA(trigdata->parsetree, RenameStmt) &&
			 (((RenameStmt *) trigdata->parsetree)->renameType == OBJECT_COLUMN ||
			  ((RenameStmt *) trigdata->parsetree)->renameType == OBJECT_ATTRIBUTE))
		relation = ((RenameStmt *) trigdata->parsetree)->relation;
	else if (IsA(trigdata->parsetree, DropStmt) &&
			 (((DropStmt *) trigdata->parsetree)->removeType == OBJECT_TYPE ||
			  ((DropStmt *) trigdata->parsetree)->removeType == OBJECT_DOMAIN))
	{
		captured = drop_type_tables((DropStmt *) trigdata->parsetree);
		foreach(lc, kappa_capture_hold_writers(captured, CAPTURE_DDL_WAIT_MS))
			note_table(&unlogged, lfirst_oid(lc));
		PG_RETURN_NULL();
	}
	if (relation == NULL)
		PG_RETURN_NULL();
	relid = RangeVarGetRelid(relation, NoLock, true);
	if (!OidIsValid(relid) || !pg_class_ownercheck(relid, GetUserId()))
		PG_RETURN_NULL();
	if (get_rel_relkind(relid) == RELKIND_COMPOSITE_TYPE)
		inheritors = typed_tables(relid);	/* ALTER TYPE ... CASCADE */
	else
		inheritors = relation->inh ? find_all_inheritors(relid, NoLock, NULL) : list_make1_oid(relid);
	captured = captured_among(inheritors);
	if (captured == NIL)
		PG_RETURN_NULL();

	/* the named table first, then the captured ones below it, in order */
	foreach(lc, inheritors)
	{
		if ((lfirst_oid(lc) == relid && get_rel_relkind(relid) != RELKIND_COMPOSITE_TYPE) ||
			list_member_oid(captured, lfirst_oid(lc)))
			held = lappend_oid(held, lfirst_oid(lc));
	}
	foreach(lc, kappa_capture_hold_writers(held, CAPTURE_DDL_WAIT_MS))
	{
		if (list_member_oid(captured, lfirst_oid(lc)))
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
 * Capture table *arg again, as kappa.uncapture then kappa.capture would:
 * also a table of another role's, whose column went with a type the
 * command's role dropped with CASCADE (the snapshot goes to the log, which
 * shows it only to who may read the table).  Run in a subtransaction.
 */
static void
capture_again(void *arg)
{
	Oid			relid = *(Oid *) arg;
	Oid			argtype = OIDOID;
	Datum		value = ObjectIdGetDatum(relid);
	SavedUser	saved;
	char	   *retain;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(kappa_extension_owner(), &saved);
	if (SPI_execute_with_args("DELETE FROM kappa.captures WHERE relid OPERATOR(pg_catalog.=) $1"
							  " RETURNING COALESCE(pg_catalog.quote_literal(retain), 'NULL')",
							  1, &argtype, &value, NULL, false, 0) != SPI_OK_DELETE_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not delete from kappa.captures");
	retain = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	kappa_unbecome(&saved);
	(void) kappa_capture_relation(relid, retain, false);
	SPI_finish();
}

/* Mark table relid's capture failed, from now on, for why. */
static void
capture_failed(Oid relid, const char *why)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2] = {ObjectIdGetDatum(relid), CStringGetTextDatum(why)};
	SavedUser	saved;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(kappa_extension_owner(), &saved);
	if (SPI_execute_with_args("UPDATE kappa.captures SET state = 'failed',"
							  " failed_lsn = pg_catalog.pg_current_wal_insert_lsn(), last_error = $2"
							  " WHERE relid OPERATOR(pg_catalog.=) $1 AND failed_lsn IS NULL",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update kappa.captures");
	kappa_unbecome(&saved);
	SPI_finish();
	/* tell the worker */
	CacheInvalidateRelcacheByRelid(kappa_views_relid());
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
	ListCell   *lc;
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
			Oid			relid = ((NotedTable *) lfirst(lc))->relid;

			if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
				relids = list_append_unique_oid(relids, relid);
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

	foreach(lc, recapture)
	{
		Oid			relid = lfirst_oid(lc);
		ErrorData  *edata = kappa_try_in_subxact(capture_again, &relid, cxt);

		if (edata == NULL)
		{
			ereport(NOTICE,
					(errmsg("the event log of table %s starts again with a snapshot",
							kappa_qualified_name(relid)),
					 errdetail("Logged changes name the columns as they were when logged, and the command renamed, dropped or computed again a column. A replay from before this point is refused; kappa.captures shows where the log of the table starts.")));
			if (noted_table(unlogged, relid))
				ereport(WARNING,
						(errmsg("changes of table %s committed before the command may be missing from its event log",
								kappa_qualified_name(relid)),
						 errdetail("The apply worker had not logged them; they are in the new snapshot, but not in the log as changes.")));
			continue;
		}

		/*
		 * The table can no longer be captured (its key dropped, say): its
		 * capture fails, as when a change cannot be logged, rather than the
		 * command.
		 */
		capture_failed(relid, psprintf("the event log could not start again after the columns of the table changed: %s",
									   edata->message));
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("capture of table %s failed", kappa_qualified_name(relid)),
				 errdetail("Its event log could not start again after the columns of the table changed: %s",
						   edata->message),
				 errhint("Once the cause is gone, capture the table again with kappa.uncapture and kappa.capture.")));
		FreeErrorData(edata);
	}
	PG_RETURN_NULL();
}
