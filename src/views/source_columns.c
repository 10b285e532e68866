/*-------------------------------------------------------------------------
 *
 * source_columns.c
 *	  Which columns of a source a derived view reads, for the checks that
 *	  follow DDL on its sources (kappa.source_problem).
 *
 * A view of engine 2 takes its sources' rows from the WAL and reads the
 * live tables for join partners; neither needs a column its query does not
 * name.  So such a column may be dropped, renamed or given another type
 * without breaking the view, as a PostgreSQL view allows.  A column the
 * query reads keeps breaking it (the query's text would no longer read the
 * same thing).
 *
 * The columns read are those that the view's internal view of the source
 * before a batch, o_<n> (view_ddl.c), selects: it leaves the others null.
 * They are read from its rule in the catalog.  Parsing the view's query
 * again instead would run code of the view's owner (a domain's check of a
 * literal, say) in whichever role's DDL transaction fired the check, and
 * lock every source of the view.
 *
 * A table rewrite that computes some columns' values again (ALTER COLUMN
 * ... TYPE ... USING, int to bigint) changes rows without changes the
 * views can decode: kappa.on_table_rewrite names those columns, from the
 * command's parse tree, so that only the views that read one break.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "catalog/namespace.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_columns_read_sql);
PG_FUNCTION_INFO_V1(kappa_on_table_rewrite);

/* The query of view relid's rule, from the catalog, or NULL. */
static Query *
view_rule_query(Oid relid)
{
	HeapTuple	tup;
	Datum		action;
	bool		isnull;
	List	   *actions;

	tup = SearchSysCache2(RULERELNAME, ObjectIdGetDatum(relid), CStringGetDatum("_RETURN"));
	if (!HeapTupleIsValid(tup))
		return NULL;
	action = SysCacheGetAttr(RULERELNAME, tup, Anum_pg_rewrite_ev_action, &isnull);
	actions = isnull ? NIL : (List *) stringToNode(TextDatumGetCString(action));
	ReleaseSysCache(tup);
	return list_length(actions) == 1 ? linitial_node(Query, actions) : NULL;
}

/*
 * The columns of source, the view's source number source_index (from 1, as
 * in kappa.views.sources), that view id of engine 2 reads: those its o_<n>
 * selects from the table, as a set of attribute numbers offset by
 * FirstLowInvalidHeapAttributeNumber (pull_varattnos).  False when the view
 * has no such internal view: every column counts as read then.
 */
static bool
columns_read(int id, int source_index, Oid source, Bitmapset **read)
{
	Oid			nsp = get_namespace_oid(psprintf("kappa_v%d", id), true);
	Oid			orelid;
	Query	   *query;
	ListCell   *lc;

	*read = NULL;
	orelid = OidIsValid(nsp) ? get_relname_relid(psprintf("o_%d", source_index - 1), nsp) : InvalidOid;
	query = OidIsValid(orelid) ? view_rule_query(orelid) : NULL;
	if (query == NULL)
		return false;

	/* the branches of its UNION ALL: the one that reads the table */
	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		ListCell   *ls;

		if (rte->rtekind != RTE_SUBQUERY)
			continue;
		foreach(ls, rte->subquery->rtable)
		{
			RangeTblEntry *inner = lfirst(ls);

			if (inner->rtekind == RTE_RELATION && inner->relid == source)
				pull_varattnos((Node *) rte->subquery->targetList,
							   foreach_current_index(ls) + 1, read);
		}
	}
	return true;
}

/*
 * The same as a bool per column (*natts long, to the last one read), for
 * the sink (kappa_sink_columns_read), in the current memory context; NULL
 * for every column.  The apply worker asks when the view has no kept plan
 * to say so (after DDL on a source, say): the plan reads the same columns,
 * both from kappa_columns_read.
 */
bool *
kappa_catalog_columns_read(int id, int source_index, Oid source, int *natts)
{
	Bitmapset  *read;
	bool	   *result;
	int			k = -1;

	*natts = 0;
	if (!columns_read(id, source_index, source, &read))
		return NULL;
	if (!bms_is_empty(read))
		*natts = Max(bms_prev_member(read, -1) + FirstLowInvalidHeapAttributeNumber, 0);
	result = palloc0(sizeof(bool) * (*natts + 1));
	while ((k = bms_next_member(read, k)) >= 0)
	{
		int			attno = k + FirstLowInvalidHeapAttributeNumber;

		if (attno > 0)
			result[attno - 1] = true;
	}
	return result;
}

/*
 * kappa.columns_read(view_id integer, source_index integer, source oid)
 * returns int2[]
 *
 * The attribute numbers of the columns of source that view view_id reads
 * (columns_read), or NULL when every column counts as read.
 */
Datum
kappa_columns_read_sql(PG_FUNCTION_ARGS)
{
	Bitmapset  *read;
	Datum	   *elems;
	int			n = 0;
	int			k = -1;

	if (!columns_read(PG_GETARG_INT32(0), PG_GETARG_INT32(1), PG_GETARG_OID(2), &read))
		PG_RETURN_NULL();
	elems = palloc(sizeof(Datum) * (bms_num_members(read) + 1));
	while ((k = bms_next_member(read, k)) >= 0)
	{
		int			attno = k + FirstLowInvalidHeapAttributeNumber;

		if (attno > 0)
			elems[n++] = Int16GetDatum(attno);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, INT2OID, 2, true, TYPALIGN_SHORT));
}

/*
 * kappa.on_table_rewrite(), fired by table_rewrite: the names of the columns
 * whose values the command computes again (ALTER TABLE or ALTER TYPE ...
 * ALTER COLUMN/ATTRIBUTE ... TYPE), as text[] to kappa.table_rewritten,
 * which breaks the views that read one of them.  NULL when the command is
 * not one of those: every column counts as computed again then.  (Declared
 * SECURITY DEFINER: kappa.table_rewritten is the extension owner's.)
 */
Datum
kappa_on_table_rewrite(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Oid			argtype = TEXTARRAYOID;
	Datum		arg = (Datum) 0;
	char		argnull = 'n';

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_on_table_rewrite: not fired by an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (trigdata->parsetree != NULL && IsA(trigdata->parsetree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) trigdata->parsetree;
		Datum	   *names = palloc(sizeof(Datum) * (list_length(stmt->cmds) + 1));
		int			n = 0;
		ListCell   *lc;

		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

			if (cmd->subtype == AT_AlterColumnType && cmd->name != NULL)
				names[n++] = CStringGetTextDatum(cmd->name);
		}
		arg = PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
		argnull = ' ';
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT kappa.table_rewritten($1)", 1, &argtype, &arg,
							  &argnull, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not run kappa.table_rewritten");
	SPI_finish();
	PG_RETURN_NULL();
}

/*
 * The error of a view whose batch holds images of source relid from before
 * and after a change of its columns' form (a column dropped, or given
 * another type, while the view had changes of the table left to apply):
 * the buffer can hold only one form.
 */
void
kappa_columns_changed_error(Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("columns of source table %s changed", kappa_qualified_name(relid)),
			 errdetail("A column of the table was dropped or given another type while the view had changes of the table left to apply."),
			 errhint("If the view's query reads the table as it is now, build the view again with kappa.alter_view(view, rebuild => true).")));
}
