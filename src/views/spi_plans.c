/*-------------------------------------------------------------------------
 *
 * spi_plans.c
 *	  Statements the delta engines keep across batches, and how they run:
 *	  prepared SPI plans, statements restricted to the keys held in a
 *	  scratch table, and the snapshot they read the sources with.
 *
 * Every plan is kept (SPI_keepplan) in one memory context that lives until
 * kappa_plans_reset, when both engines forget everything they built from
 * kappa.views.  A statement runs with kappa_read_snapshot when it is set
 * (engine 2 reads the live sources under the snapshot its batch is aligned
 * with; the command ID advances so the batch's own writes are seen), and
 * with a fresh snapshot per statement otherwise.
 *
 * This file knows nothing of views; delta_engine.c and delta_rules.c
 * decide what the statements say.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/table.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "pg_kappa.h"

Snapshot	kappa_read_snapshot = NULL;

static MemoryContext plans_cxt = NULL;
static List *kept_plans = NIL;	/* every SPI_keepplan'd plan, in plans_cxt */

/* The context kept plans and the engines' plan caches live in. */
MemoryContext
kappa_plans_context(void)
{
	if (plans_cxt == NULL)
		plans_cxt = AllocSetContextCreate(TopMemoryContext, "pg_kappa plans",
										  ALLOCSET_DEFAULT_SIZES);
	return plans_cxt;
}

/* Free every kept plan and everything in kappa_plans_context. */
void
kappa_plans_reset(void)
{
	ListCell   *lc;

	foreach(lc, kept_plans)
		SPI_freeplan((SPIPlanPtr) lfirst(lc));
	kept_plans = NIL;
	if (plans_cxt)
		MemoryContextDelete(plans_cxt);
	plans_cxt = NULL;
}

/*
 * View id's entry in an engine's plan cache (*cache, a hash keyed by view
 * id, in kappa_plans_context), built by build when missing.  Plans are
 * forgotten first when something they were built from changed
 * (kappa_plans_stale); a build that fails leaves no half-built entry.
 */
void *
kappa_cached_plan(HTAB **cache, int id, void *(*build) (int id))
{
	void	   *entry = NULL;

	if (kappa_plans_stale)
	{
		kappa_engine_reset();
		kappa_plans_stale = false;
	}
	if (*cache)
		entry = hash_search(*cache, &id, HASH_FIND, NULL);
	if (entry == NULL)
	{
		PG_TRY();
		{
			entry = build(id);
		}
		PG_CATCH();
		{
			if (*cache)
				hash_search(*cache, &id, HASH_REMOVE, NULL);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	return entry;
}

/* Run a kept plan, with kappa_read_snapshot if set. */
static int
execute(SPIPlanPtr plan, Datum *args, const char *nulls, long tcount)
{
	if (kappa_read_snapshot != NULL)
		return SPI_execute_snapshot(plan, args, nulls, kappa_read_snapshot,
									InvalidSnapshot, false, true, tcount);
	return SPI_execute_plan(plan, args, nulls, false, tcount);
}


SPIPlanPtr
kappa_keep_plan(const char *sql)
{
	return kappa_keep_plan_args(sql, 0, NULL);
}

SPIPlanPtr
kappa_keep_plan_args(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan;
	MemoryContext cxt = CurrentMemoryContext;

	/*
	 * Always plan with the batch at hand: the scratch tables and key arrays
	 * are tiny in one batch and huge in the next, and a generic plan good
	 * for one is a disaster for the other.  Planning is cheap next to that.
	 */
	plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN);

	/*
	 * SPI returns in its own procedure context, which goes at SPI_finish;
	 * the caller is building plans that outlive it.
	 */
	MemoryContextSwitchTo(cxt);

	if (plan == NULL)
		elog(ERROR, "could not prepare pg_kappa statement (%s): %s",
			 SPI_result_code_string(SPI_result), sql);
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep pg_kappa plan");
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(kappa_plans_context());

		kept_plans = lappend(kept_plans, plan);
		MemoryContextSwitchTo(oldcxt);
	}
	return plan;
}

/*
 * Prepare "stmt WHERE <restriction>" where the restriction on the key
 * columns names (of types typids, seen as prefix.name) comes from the
 * scratch table scratch; see KeyedPlan.  stmt must end where a WHERE
 * clause can follow; extra, if not NULL, is ANDed in.
 */
KappaKeyedPlan
kappa_prepare_keyed(const char *stmt, const char *prefix, List *names, List *typids,
			  const char *scratch)
{
	KappaKeyedPlan kp;
	StringInfoData gather;
	StringInfoData where;
	Oid		   *argtypes;
	ListCell   *ln,
			   *lt;
	int			n = 0;

	/*
	 * Only the first key column gets an array: it leads the unique index,
	 * and arrays on several columns would make the index scan try every
	 * combination.
	 */
	kp.nkeys = 1;
	argtypes = palloc(sizeof(Oid));
	initStringInfo(&gather);
	initStringInfo(&where);
	appendStringInfoString(&gather, "SELECT ");
	forboth(ln, names, lt, typids)
	{
		const char *col = quote_identifier(lfirst(ln));
		Oid			arraytype = get_array_type(lfirst_oid(lt));

		if (!OidIsValid(arraytype))
		{
			/* no arrays of it (an array itself): the keys from scratch alone */
			kp.nkeys = 0;
			kp.gather = kappa_keep_plan(psprintf("SELECT EXISTS (SELECT 1 FROM %s)", scratch));
			kp.plan = kappa_keep_plan(psprintf("%s WHERE (%s) IN (SELECT %s FROM %s)", stmt,
											   kappa_quoted_list(names, psprintf("%s.", prefix)),
											   kappa_quoted_list(names, ""), scratch));
			return kp;
		}
		argtypes[n] = arraytype;
		appendStringInfo(&gather, "pg_catalog.array_agg(DISTINCT %s)", col);
		appendStringInfo(&where, "%s.%s = ANY ($1)", prefix, col);
		n++;
		break;
	}
	appendStringInfo(&gather, " FROM %s", scratch);

	/*
	 * The whole key is then checked against the scratch table by a hashed
	 * subplan, one probe per row the index scan finds.  "IS TRUE" keeps the
	 * planner from turning the IN into a join: knowing nothing of the
	 * scratch table, it would plan a nested loop over it that repeats the
	 * index scan, with the whole array, for every key.
	 */
	if (list_length(names) > 1)
		appendStringInfo(&where, " AND ((%s) IN (SELECT %s FROM %s)) IS TRUE",
						 kappa_quoted_list(names, psprintf("%s.", prefix)),
						 kappa_quoted_list(names, ""), scratch);
	kp.gather = kappa_keep_plan(gather.data);
	kp.plan = kappa_keep_plan_args(psprintf("%s WHERE %s", stmt, where.data), kp.nkeys, argtypes);
	return kp;
}

/* "prefix.n1, prefix.n2, ..." with every name quoted */
char *
kappa_quoted_list(List *names, const char *prefix)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, names)
	{
		if (buf.len > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfo(&buf, "%s%s", prefix, quote_identifier(lfirst(lc)));
	}
	return buf.data;
}

/* "p.k1 <op> q.k1 AND ...", op "=" or "IS NOT DISTINCT FROM" */
char *
kappa_match_keys(List *names, const char *p, const char *op, const char *q)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, names)
	{
		const char *n = quote_identifier(lfirst(lc));

		if (buf.len > 0)
			appendStringInfoString(&buf, " AND ");
		appendStringInfo(&buf, "%s.%s %s %s.%s", p, n, op, q, n);
	}
	return buf.data;
}

/* "p.k1 IS NULL OR ..." */
char *
kappa_any_null(List *names, const char *p)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, names)
	{
		if (buf.len > 0)
			appendStringInfoString(&buf, " OR ");
		appendStringInfo(&buf, "%s.%s IS NULL", p, quote_identifier(lfirst(lc)));
	}
	return buf.data;
}

/*
 * "INSERT INTO into" the rows of query whose keys (output columns named
 * keys, of types keytypes) are in scratch table k and not NULL.  Two
 * statements say it, and kappa_run_insert_keys picks one per run:
 *
 * - one key at a time: the key's equality goes into the query (below GROUP
 *	 BY, into the joins), so each key is a few index lookups, whatever the
 *	 planner believes about k.  OFFSET 0 keeps the subquery from being
 *	 flattened into a join it would plan from guesses.
 * - all keys at once: the whole query, then its rows whose keys are in k.
 *	 One scan of the sources; better when each key's rows cannot be found
 *	 by an index (a group key that is an attribute of a dimension table
 *	 makes every key read all of the fact table).
 *
 * Two more statements are only priced, never run: the query for one key
 * ($1..$n) and the whole query.
 */
KappaKeysInsert
kappa_prepare_insert_keys(const char *into, const char *query, List *keys,
						  List *keytypes, const char *k)
{
	KappaKeysInsert ki;
	const char *distinct_keys = psprintf("SELECT DISTINCT %s FROM %s n WHERE NOT (%s)",
										 kappa_quoted_list(keys, "n."), k,
										 kappa_any_null(keys, "n"));
	StringInfoData one;
	Oid		   *argtypes = palloc(sizeof(Oid) * list_length(keytypes));
	ListCell   *ln,
			   *lt;
	int			n = 0;

	ki.per_key = kappa_keep_plan(psprintf("INSERT INTO %s SELECT q.* FROM (%s) kk,"
										  " LATERAL (SELECT * FROM (%s) q0 WHERE %s OFFSET 0) q",
										  into, distinct_keys, query,
										  kappa_match_keys(keys, "q0", "=", "kk")));
	ki.at_once = kappa_keep_plan(psprintf("INSERT INTO %s SELECT q.* FROM (%s) q"
										  " WHERE (%s) IN (%s)",
										  into, query, kappa_quoted_list(keys, "q."),
										  distinct_keys));
	initStringInfo(&one);
	forboth(ln, keys, lt, keytypes)
	{
		appendStringInfo(&one, "%sq0.%s = $%d", n > 0 ? " AND " : "",
						 quote_identifier(lfirst(ln)), n + 1);
		argtypes[n++] = lfirst_oid(lt);
	}
	ki.price_one = kappa_keep_plan_args(psprintf("SELECT * FROM (%s) q0 WHERE %s",
												 query, one.data),
										n, argtypes);
	ki.price_all = kappa_keep_plan(psprintf("SELECT * FROM (%s) q0", query));
	argtypes[0] = INT8OID;
	ki.count_keys = kappa_keep_plan_args(psprintf("SELECT pg_catalog.count(*) FROM (%s LIMIT $1) s",
												  distinct_keys),
										 1, argtypes);
	return ki;
}

/*
 * The planner's estimate of a kept plan's total cost, for any values of
 * its parameters (its generic plan, which stays cached until what it was
 * built from changes).
 */
static Cost
generic_cost(SPIPlanPtr plan)
{
	CachedPlan *cplan;
	Cost		cost = 0;
	bool		pushed = false;
	ListCell   *lc;

	if (kappa_read_snapshot != NULL)
	{
		PushActiveSnapshot(kappa_read_snapshot);
		pushed = true;
	}
	else if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	cplan = SPI_plan_get_cached_plan(plan);
	if (cplan == NULL)
		elog(ERROR, "could not plan pg_kappa statement: %s",
			 SPI_result_code_string(SPI_result));
	foreach(lc, cplan->stmt_list)
	{
		PlannedStmt *stmt = lfirst_node(PlannedStmt, lc);

		if (stmt->planTree)
			cost += stmt->planTree->total_cost;
	}
	ReleaseCachedPlan(cplan, CurrentResourceOwner);
	if (pushed)
		PopActiveSnapshot();
	return cost;
}

/*
 * Run kappa_prepare_insert_keys' statement: one key at a time while the
 * keys are fewer than the whole query costs in units of one key's rows,
 * all at once from there on.
 */
uint64
kappa_run_insert_keys(KappaKeysInsert *ki)
{
	Cost		one = generic_cost(ki->price_one);
	Cost		all = generic_cost(ki->price_all);
	double		limit = one > 0 ? Min(all / one, 1e9) : 1e9;
	Datum		arg;
	bool		isnull;
	int64		nkeys;

	/* count the keys only as far as the choice needs */
	arg = Int64GetDatum((int64) floor(limit) + 1);
	if (execute(ki->count_keys, &arg, NULL, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "pg_kappa could not count keys");
	nkeys = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										&isnull));
	if (nkeys == 0)
		return 0;
	elog(DEBUG2, "pg_kappa: " INT64_FORMAT " keys at cost %.0f each, the whole query %.0f: %s",
		 nkeys, one, all, nkeys <= limit ? "one key at a time" : "all keys at once");
	return kappa_run(nkeys <= limit ? ki->per_key : ki->at_once);
}

/* The same for the keys in k that have a NULL. */
SPIPlanPtr
kappa_prepare_insert_null_keys(const char *into, const char *query, List *keys,
						 const char *k)
{
	return kappa_keep_plan(psprintf("INSERT INTO %s SELECT q.* FROM (%s) q WHERE EXISTS"
							" (SELECT 1 FROM %s n WHERE (%s) AND %s)",
							into, query, k, kappa_any_null(keys, "n"),
							kappa_match_keys(keys, "q", "IS NOT DISTINCT FROM", "n")));
}

List *
kappa_attnames(Oid relid, List *attnums)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, attnums)
		result = lappend(result, get_attname(relid, lfirst_int(lc), false));
	return result;
}

char *
kappa_source_columns(Oid relid, const char *prefix)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (buf.len > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfo(&buf, "%s%s", prefix, quote_identifier(NameStr(att->attname)));
	}
	table_close(rel, AccessShareLock);
	return buf.data;
}

uint64
kappa_run(SPIPlanPtr plan)
{
	int			rc = execute(plan, NULL, NULL, 0);

	if (rc < 0)
		elog(ERROR, "pg_kappa statement failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* Gather the key arrays, then run the keyed statement with them. */
uint64
kappa_run_keyed(KappaKeyedPlan *kp)
{
	Datum	   *args = palloc(sizeof(Datum) * kp->nkeys);
	char	   *nulls = palloc(kp->nkeys + 1);
	int			rc;

	if (execute(kp->gather, NULL, NULL, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "pg_kappa could not gather keys");
	for (int i = 0; i < kp->nkeys; i++)
	{
		bool		isnull;

		args[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull);
		nulls[i] = isnull ? 'n' : ' ';
		if (isnull)
			return 0;			/* no keys at all */
	}
	nulls[kp->nkeys] = '\0';
	rc = execute(kp->plan, args, nulls, 0);
	if (rc < 0)
		elog(ERROR, "pg_kappa statement failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

bool
kappa_run_bool(SPIPlanPtr plan)
{
	bool		isnull;

	if (execute(plan, NULL, NULL, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "pg_kappa query failed");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}
