/*-------------------------------------------------------------------------
 *
 * delta_sizes.c
 *	  Tells the planner how many rows a batch's delta tables hold, and how
 *	  many distinct values their join columns take, while engine 2 plans
 *	  the terms of its delta rule.
 *
 * The delta tables (d_<n>) are emptied after every batch, so what
 * pg_class says of them (as of the last vacuum or analyze) has nothing to
 * do with the batch at hand: a term planned as if its delta held one row
 * joins two deltas of 100k rows by a nested loop.  While the worker runs a
 * view's terms, it lists each delta table with its row count here, and a
 * get_relation_info_hook gives the planner those counts instead.  The terms'
 * plans are kept per order of magnitude of those counts (delta_rules.c), so
 * a plan is made for deltas of about the size it runs on.
 *
 * The same goes for the statistics of a delta table's columns: without
 * any, the planner takes every value of a join column to be distinct, and
 * so never puts a Memoize node between a delta and the index of a partner
 * table, though the lines of one order all look up that order.  The worker
 * counts the distinct values of each join column of a delta as it fills it
 * (a HyperLogLog sketch), and a get_relation_stats_hook gives the planner
 * a pg_statistic row that says only that (stadistinct, as a fraction of
 * the rows).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_statistic.h"
#include "optimizer/plancat.h"
#include "utils/memutils.h"
#include "utils/selfuncs.h"

#include "pg_kappa.h"

#define MAX_DELTA_SIZES 64

static get_relation_info_hook_type prev_get_relation_info = NULL;
static int	ndelta_sizes = 0;
static Oid	delta_relids[MAX_DELTA_SIZES];
static double delta_rows[MAX_DELTA_SIZES];

#define MAX_DELTA_DISTINCT 256

static get_relation_stats_hook_type prev_get_relation_stats = NULL;
static int	ndelta_distinct = 0;
static Oid	distinct_relids[MAX_DELTA_DISTINCT];
static AttrNumber distinct_attnums[MAX_DELTA_DISTINCT];
static float4 distinct_fractions[MAX_DELTA_DISTINCT];
static TupleDesc statistic_desc = NULL;

/*
 * A pg_statistic row for a delta table's column that says how many
 * distinct values it holds, and nothing else.
 */
static bool
delta_stats_hook(PlannerInfo *root, RangeTblEntry *rte, AttrNumber attnum,
				 VariableStatData *vardata)
{
	Datum		values[Natts_pg_statistic];
	bool		nulls[Natts_pg_statistic];
	int			i;

	for (i = 0; i < ndelta_distinct; i++)
		if (distinct_relids[i] == rte->relid && distinct_attnums[i] == attnum)
			break;
	if (i == ndelta_distinct || rte->inh)
		return prev_get_relation_stats ?
			prev_get_relation_stats(root, rte, attnum, vardata) : false;

	if (statistic_desc == NULL)
	{
		Relation	rel = table_open(StatisticRelationId, AccessShareLock);
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

		statistic_desc = CreateTupleDescCopy(RelationGetDescr(rel));
		MemoryContextSwitchTo(oldcxt);
		table_close(rel, AccessShareLock);
	}
	memset(nulls, true, sizeof(nulls));
	memset(values, 0, sizeof(values));
	values[Anum_pg_statistic_starelid - 1] = ObjectIdGetDatum(rte->relid);
	values[Anum_pg_statistic_staattnum - 1] = Int16GetDatum(attnum);
	values[Anum_pg_statistic_stainherit - 1] = BoolGetDatum(false);
	values[Anum_pg_statistic_stanullfrac - 1] = Float4GetDatum(0);
	values[Anum_pg_statistic_stawidth - 1] = Int32GetDatum(0);
	values[Anum_pg_statistic_stadistinct - 1] = Float4GetDatum(-distinct_fractions[i]);
	for (int k = Anum_pg_statistic_starelid - 1; k < Anum_pg_statistic_stanumbers1 - 1; k++)
		nulls[k] = false;		/* every fixed-width column, kinds 0 */
	vardata->statsTuple = heap_form_tuple(statistic_desc, values, nulls);
	vardata->freefunc = heap_freetuple;
	return true;
}

static void
delta_sizes_hook(PlannerInfo *root, Oid relid, bool inhparent, RelOptInfo *rel)
{
	if (prev_get_relation_info)
		prev_get_relation_info(root, relid, inhparent, rel);
	for (int i = 0; i < ndelta_sizes; i++)
	{
		if (delta_relids[i] != relid)
			continue;
		rel->tuples = Max(delta_rows[i], 1);
		break;
	}
}

/* Install the hook (_PG_init). */
void
kappa_delta_sizes_init(void)
{
	prev_get_relation_info = get_relation_info_hook;
	get_relation_info_hook = delta_sizes_hook;
	prev_get_relation_stats = get_relation_stats_hook;
	get_relation_stats_hook = delta_stats_hook;
}

/* Plan from now on as if delta table relid held rows rows. */
void
kappa_delta_sizes_set(Oid relid, double rows)
{
	for (int i = 0; i < ndelta_sizes; i++)
	{
		if (delta_relids[i] == relid)
		{
			delta_rows[i] = rows;
			return;
		}
	}
	if (ndelta_sizes < MAX_DELTA_SIZES)
	{
		delta_relids[ndelta_sizes] = relid;
		delta_rows[ndelta_sizes] = rows;
		ndelta_sizes++;
	}
}

/*
 * Plan from now on as if column attnum of delta table relid held fraction
 * (0 to 1) times its rows distinct values.
 */
void
kappa_delta_distinct_set(Oid relid, AttrNumber attnum, double fraction)
{
	if (ndelta_distinct >= MAX_DELTA_DISTINCT)
		return;
	distinct_relids[ndelta_distinct] = relid;
	distinct_attnums[ndelta_distinct] = attnum;
	distinct_fractions[ndelta_distinct] = Min(Max(fraction, 0.0001), 1.0);
	ndelta_distinct++;
}

/* Forget every size and count set (after a view's terms, and on error). */
void
kappa_delta_sizes_reset(void)
{
	ndelta_sizes = 0;
	ndelta_distinct = 0;
}

/*
 * The order of magnitude of a delta of rows rows, as the terms' plans are
 * kept by: 0 for none, else its number of decimal digits (at most 15).
 */
int
kappa_delta_size_class(double rows)
{
	int			digits = 0;

	while (rows >= 1 && digits < 15)
	{
		rows /= 10;
		digits++;
	}
	return digits;
}
