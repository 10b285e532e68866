/*-------------------------------------------------------------------------
 *
 * delta_sizes.c
 *	  Tells the planner how many rows a batch's delta tables hold while
 *	  engine 2 plans the terms of its delta rule.
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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "optimizer/plancat.h"

#include "pg_kappa.h"

#define MAX_DELTA_SIZES 64

static get_relation_info_hook_type prev_get_relation_info = NULL;
static int	ndelta_sizes = 0;
static Oid	delta_relids[MAX_DELTA_SIZES];
static double delta_rows[MAX_DELTA_SIZES];

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

/* Forget every size set (after a view's terms, and on error). */
void
kappa_delta_sizes_reset(void)
{
	ndelta_sizes = 0;
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
