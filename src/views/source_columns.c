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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/sysattr.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_columns_read_sql);
PG_FUNCTION_INFO_V1(kappa_query_problem_sql);

typedef struct ReadStep
{
	KappaViewRow view;
	MemoryContext cxt;			/* for the result */
	KappaViewDef *def;
} ReadStep;

static void
compile_as_owner(void *arg)
{
	ReadStep   *step = arg;
	MemoryContext oldcxt = MemoryContextSwitchTo(step->cxt);
	KappaOwnerScope scope;

	kappa_owner_enter(step->view.owner, &scope);
	step->def = kappa_compile_view(step->view.canonical, step->view.engine);
	kappa_owner_leave(&scope);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * View relid's query, parsed again as its owner (restricted) against the
 * tables as they are now, into step; the error that stops it, or NULL.
 */
static ErrorData *
compile_view(Oid relid, ReadStep *step)
{
	ErrorData  *edata;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	step->cxt = CurrentMemoryContext;
	kappa_read_view(relid, &step->view);
	step->def = NULL;
	edata = kappa_try_in_subxact(compile_as_owner, step, step->cxt);
	return edata;
}

/*
 * Mark in read the columns of source that o_<srcno>, the view's internal
 * view of the source before a batch (view_ddl.c), reads: views made before
 * 0.9 read every column there.
 */
static void
old_view_columns(int id, int srcno, Oid source, bool *read, int natts)
{
	Oid			nsp = get_namespace_oid(psprintf("kappa_v%d", id), true);
	Oid			orelid;
	Relation	rel;
	Query	   *query;
	ListCell   *lc;

	orelid = OidIsValid(nsp) ? get_relname_relid(psprintf("o_%d", srcno), nsp) : InvalidOid;
	if (!OidIsValid(orelid))
		return;
	rel = relation_open(orelid, AccessShareLock);
	if (rel->rd_rel->relkind == RELKIND_VIEW)
	{
		query = get_view_query(rel);
		foreach(lc, query->rtable)
		{
			RangeTblEntry *rte = lfirst(lc);
			ListCell   *ls;

			if (rte->rtekind != RTE_SUBQUERY)
				continue;
			foreach(ls, rte->subquery->rtable)
			{
				RangeTblEntry *inner = lfirst(ls);
				Bitmapset  *attnos = NULL;
				int			k = -1;

				if (inner->rtekind != RTE_RELATION || inner->relid != source)
					continue;
				pull_varattnos((Node *) rte->subquery->targetList,
							   foreach_current_index(ls) + 1, &attnos);
				while ((k = bms_next_member(attnos, k)) >= 0)
				{
					int			attno = k + FirstLowInvalidHeapAttributeNumber;

					if (attno > 0 && attno <= natts)
						read[attno - 1] = true;
				}
			}
		}
	}
	relation_close(rel, AccessShareLock);
}

/*
 * kappa.columns_read(view regclass, source oid) returns int2[]
 *
 * The attribute numbers of source's columns that the view of engine 2
 * reads: its query (parsed again as the view's owner against the tables as
 * they are now) and its internal view of the source.  NULL when the query
 * reads the whole row, has parts whose columns are not looked into, or no
 * longer parses (kappa.query_problem says why): every column counts as
 * read then.
 */
Datum
kappa_columns_read_sql(PG_FUNCTION_ARGS)
{
	Oid			view = PG_GETARG_OID(0);
	Oid			source = PG_GETARG_OID(1);
	ReadStep	step;
	ErrorData  *edata;
	ListCell   *lc;
	HeapTuple	tup;
	int			srcno = -1;
	int			natts;
	bool	   *read;
	Datum	   *elems;
	int			n = 0;
	ArrayType  *result;

	edata = compile_view(view, &step);
	if (edata != NULL)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	foreach(lc, step.def->sources)
		if (lfirst_oid(lc) == source)
			srcno = foreach_current_index(lc);
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(source));
	if (srcno < 0 || !HeapTupleIsValid(tup))
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	natts = ((Form_pg_class) GETSTRUCT(tup))->relnatts;
	ReleaseSysCache(tup);
	read = kappa_columns_read(step.def, srcno, natts);
	if (read == NULL)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	old_view_columns(step.view.id, srcno, source, read, natts);
	elems = palloc(sizeof(Datum) * natts);
	for (int i = 0; i < natts; i++)
		if (read[i])
			elems[n++] = Int16GetDatum(i + 1);
	result = construct_array(elems, n, INT2OID, 2, true, TYPALIGN_SHORT);
	result = DatumGetArrayTypeP(SPI_datumTransfer(PointerGetDatum(result), false, -1));
	SPI_finish();
	PG_RETURN_ARRAYTYPE_P(result);
}

/*
 * kappa.query_problem(view regclass) returns text
 *
 * Why the view's query no longer parses against its sources as they are
 * now (a column it reads renamed or dropped), or NULL when it does.
 */
Datum
kappa_query_problem_sql(PG_FUNCTION_ARGS)
{
	ReadStep	step;
	ErrorData  *edata = compile_view(PG_GETARG_OID(0), &step);
	text	   *result;

	if (edata == NULL)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	result = cstring_to_text(edata->message);
	result = DatumGetTextP(SPI_datumTransfer(PointerGetDatum(result), false, -1));
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}
