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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "catalog/namespace.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_type.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_columns_read_sql);

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
 * kappa.columns_read(view_id integer, source_index integer, source oid)
 * returns int2[]
 *
 * The attribute numbers of the columns of source, the view's source number
 * source_index (from 1, as in kappa.views.sources), that view view_id of
 * engine 2 reads: those its o_<n> selects from the table.  NULL when it
 * has no such internal view: every column counts as read then.
 */
Datum
kappa_columns_read_sql(PG_FUNCTION_ARGS)
{
	int32		id = PG_GETARG_INT32(0);
	int32		index = PG_GETARG_INT32(1);
	Oid			source = PG_GETARG_OID(2);
	Oid			nsp = get_namespace_oid(psprintf("kappa_v%d", id), true);
	Oid			orelid;
	Query	   *query;
	Bitmapset  *read = NULL;
	ListCell   *lc;
	Datum	   *elems;
	int			n = 0;
	int			k = -1;

	orelid = OidIsValid(nsp) ? get_relname_relid(psprintf("o_%d", index - 1), nsp) : InvalidOid;
	query = OidIsValid(orelid) ? view_rule_query(orelid) : NULL;
	if (query == NULL)
		PG_RETURN_NULL();

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
							   foreach_current_index(ls) + 1, &read);
		}
	}
	elems = palloc(sizeof(Datum) * (bms_num_members(read) + 1));
	while ((k = bms_next_member(read, k)) >= 0)
	{
		int			attno = k + FirstLowInvalidHeapAttributeNumber;

		if (attno > 0)
			elems[n++] = Int16GetDatum(attno);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, INT2OID, 2, true, TYPALIGN_SHORT));
}
