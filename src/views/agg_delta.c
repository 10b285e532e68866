/*-------------------------------------------------------------------------
 *
 * agg_delta.c
 *	  The SQL that maintains a one-table GROUP BY view algebraically: each
 *	  batch adds and subtracts partial aggregates instead of recomputing
 *	  every group it touches.
 *
 * Recomputing a group reads all of its rows; with few large groups a
 * batch of a few changes re-reads most of the table.  For a view
 *
 *		SELECT k1, ..., agg1(x1), ... FROM t WHERE ... GROUP BY k1, ...
 *
 * whose select list holds only group keys and count(*), count(x),
 * sum(x) and avg(x) over integers or numeric, min(x) and max(x), the
 * worker keeps a state table g in the view's schema with, per group (the
 * group key, in columns named like the view's), the row count _kappa_n and
 * for each aggregate, j its column number in the view, what it needs:
 *
 *		count(x)			_kappa_c<j>  non-null count
 *		sum(x), avg(x)		_kappa_c<j>, _kappa_s<j> (numeric sum of the
 *							non-null values) and, for numeric of no fixed
 *							scale, _kappa_x<j>: their largest display scale
 *							(engine 1), or _kappa_t<j>: how many values
 *							have each display scale (engine 2, below)
 *		min(x), max(x)		_kappa_m<j>  the extreme
 *
 * The delta engine (delta_engine.c) gives us the source rows a batch
 * touched, as they were before it and as they are after, in w_0.  Both go
 * through the partial aggregate query P (same WHERE, same GROUP BY) into
 * the scratch table p, marked _kappa_plus false and true.  One statement then
 * adds the "after" partials to g and subtracts the "before" ones, and
 * writes the changed groups' rows to the view from g.
 *
 * Subtraction is not always possible; such a group is marked dirty and
 * recomputed from the worker's copy of the source instead (the engine's
 * general path), as is a group whose row count reaches zero:
 *
 *	- a min or max whose current value is among the rows that left;
 *	- a numeric sum when a value that left had the group's largest display
 *	  scale (sum's result has the scale of its widest input: 1.5 + 2 shows
 *	  as 3.5, and after the 1.5 leaves, as 2, not 2.0), unless the values
 *	  have a fixed scale (numeric(p,s)) or it is zero, or the view is
 *	  engine 2's, which counts the values of each display scale: the
 *	  tally _kappa_t<j> is the sum over the values of 10^(12 * scale), an
 *	  exact numeric whose base-10^12 digits are those counts, so adding
 *	  and subtracting tallies adds and subtracts counts, and the largest
 *	  scale with a count above zero is the tally's number of digits less
 *	  one, divided by 12 (while no group holds 10^12 values);
 *	- a numeric sum when a value that left was NaN or infinite.
 *
 * So the view always equals its query, byte for byte, and for integer and
 * fixed-scale columns no group is ever recomputed.  Floating-point sums
 * are not eligible: subtracting them does not give the sum a recompute
 * gives.
 *
 * The subtracted values travel in extra "carrier" columns of g
 * (_kappa_sm<j>, _kappa_xm<j>, _kappa_mm<j>), always NULL in stored rows: in INSERT ... ON CONFLICT DO
 * UPDATE the row proposed for insertion ("excluded") has g's columns, and
 * the dirty test needs both the subtracted values and g's current ones.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/regproc.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "pg_kappa.h"

typedef enum AggKind
{
	AGG_COUNT_STAR,
	AGG_COUNT,
	AGG_SUM,
	AGG_AVG,
	AGG_MIN,
	AGG_MAX
} AggKind;

/* one column of the view */
typedef struct AggColumn
{
	const char *name;			/* the view's column name */
	int			key;			/* > 0: this is group key _k<key> */
	AggKind		kind;			/* else: this aggregate ... */
	Node	   *arg;			/* ... of this argument (not count(*)) */
	Oid			argtype;
	bool		numeric;		/* sum or avg over numeric */
	int			fixed_scale;	/* its display scale if fixed, else -1 */
	bool		tally;			/* display scale from _kappa_t<j> */
} AggColumn;

typedef struct AggShape
{
	List	   *columns;		/* AggColumn, in the view's column order */
	List	   *key_exprs;		/* group key expressions, in GROUP BY order */
} AggShape;

/*
 * The display scale every value of numeric expression expr has, or -1 when
 * it varies: a numeric(p,s) column or cast has scale s; an integer turned
 * numeric, 0; a constant, its own; a sum or difference, the larger of its
 * operands'; a product, theirs added (as numeric's own arithmetic does).
 * So sum(price * (1 - discount)) over numeric(15,2) columns always shows
 * scale 4, and no value leaving can change it.
 */
static int
static_numeric_scale(Node *expr)
{
	int32		typmod;

	if (expr == NULL || exprType(expr) != NUMERICOID)
		return -1;
	typmod = exprTypmod(expr);
	if (typmod >= (int32) VARHDRSZ)
	{
		int			scale = (((typmod - VARHDRSZ) & 0x7ff) ^ 1024) - 1024;

		return Max(scale, 0);
	}
	if (IsA(expr, Const))
	{
		Const	   *c = (Const *) expr;

		if (c->constisnull)
			return -1;
		return DatumGetInt32(DirectFunctionCall1(numeric_scale, c->constvalue));
	}
	if (IsA(expr, RelabelType))
		return static_numeric_scale((Node *) ((RelabelType *) expr)->arg);
	if (IsA(expr, FuncExpr) || IsA(expr, OpExpr))
	{
		Oid			fn = IsA(expr, FuncExpr) ? ((FuncExpr *) expr)->funcid : ((OpExpr *) expr)->opfuncid;
		List	   *args = IsA(expr, FuncExpr) ? ((FuncExpr *) expr)->args : ((OpExpr *) expr)->args;
		int			a,
					b;

		switch (fn)
		{
			case F_NUMERIC_INT2:
			case F_NUMERIC_INT4:
			case F_NUMERIC_INT8:
				return 0;
			case F_NUMERIC_UMINUS:
				return static_numeric_scale(linitial(args));
			case F_NUMERIC_ADD:
			case F_NUMERIC_SUB:
			case F_NUMERIC_MUL:
				a = static_numeric_scale(linitial(args));
				b = static_numeric_scale(lsecond(args));
				if (a < 0 || b < 0)
					return -1;
				return fn == F_NUMERIC_MUL ? a + b : Max(a, b);
		}
	}
	return -1;
}

/*
 * The view's aggregate, if it is one this file can maintain: a plain call
 * of count, sum, avg, min or max from pg_catalog, without DISTINCT, ORDER
 * BY or FILTER.
 */
static bool
analyse_aggregate(Aggref *agg, AggColumn *col)
{
	const char *name = get_func_name(agg->aggfnoid);

	if (get_func_namespace(agg->aggfnoid) != PG_CATALOG_NAMESPACE ||
		agg->aggdistinct != NIL || agg->aggorder != NIL ||
		agg->aggfilter != NULL || agg->aggkind != AGGKIND_NORMAL ||
		agg->aggvariadic || agg->agglevelsup != 0)
		return false;

	if (agg->aggstar)
	{
		col->kind = AGG_COUNT_STAR;
		return strcmp(name, "count") == 0;
	}
	if (list_length(agg->args) != 1)
		return false;
	col->arg = (Node *) linitial_node(TargetEntry, agg->args)->expr;
	col->argtype = exprType(col->arg);
	col->fixed_scale = -1;

	if (strcmp(name, "count") == 0)
		col->kind = AGG_COUNT;
	else if (strcmp(name, "sum") == 0 || strcmp(name, "avg") == 0)
	{
		col->kind = strcmp(name, "sum") == 0 ? AGG_SUM : AGG_AVG;
		switch (col->argtype)
		{
			case INT2OID:
			case INT4OID:
			case INT8OID:
				break;
			case NUMERICOID:
				col->numeric = true;
				/* numeric(p,s), and arithmetic on such: a fixed display scale */
				col->fixed_scale = static_numeric_scale(col->arg);
				break;
			default:
				return false;	/* floats, money, intervals: not exact */
		}
	}
	else if (strcmp(name, "min") == 0 || strcmp(name, "max") == 0)
	{
		TypeCacheEntry *tce = lookup_type_cache(col->argtype, TYPECACHE_CMP_PROC);

		col->kind = strcmp(name, "min") == 0 ? AGG_MIN : AGG_MAX;
		if (!OidIsValid(tce->cmp_proc))
			return false;
	}
	else
		return false;
	return true;
}

/*
 * The view's shape, or NULL when it is not maintained algebraically.
 * Engine 1 (copies) does so for one table; engine 2, whose partials come
 * from signed rows of the view's joins (weighted), for any GROUP BY view.
 */
static AggShape *
analyse_view(KappaViewDef *def, bool weighted)
{
	Query	   *query = def->query;
	AggShape   *shape;
	ListCell   *lc;

	/* LEFT JOIN views are recomputed by their kept rows (check_left_joins) */
	if ((!weighted && (strcmp(def->kind, "aggregate") != 0 || def->nrtes != 1)) ||
		def->preserved_rt > 0 ||
		(query->groupClause == NIL && !(weighted && query->hasAggs)) ||
		query->havingQual != NULL || query->groupingSets != NIL)
		return NULL;

	shape = palloc0(sizeof(AggShape));
	foreach(lc, query->groupClause)
		shape->key_exprs = lappend(shape->key_exprs,
								   get_sortgroupclause_expr(lfirst(lc), query->targetList));

	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		AggColumn  *col;

		if (tle->resjunk)
			continue;
		col = palloc0(sizeof(AggColumn));
		col->name = tle->resname;
		if (tle->ressortgroupref > 0)
		{
			ListCell   *lg;
			int			n = 0;

			foreach(lg, query->groupClause)
			{
				n++;
				if (((SortGroupClause *) lfirst(lg))->tleSortGroupRef == tle->ressortgroupref)
					col->key = n;
			}
		}
		if (col->key == 0)
		{
			if (!IsA(tle->expr, Aggref) || !analyse_aggregate((Aggref *) tle->expr, col))
				return NULL;
		}
		else if (strncmp(col->name, "_kappa_", 7) == 0)
			return NULL;		/* g's own columns have such names */
		shape->columns = lappend(shape->columns, col);
	}
	return shape;
}

/* ----------
 * SQL text
 *
 * g's key columns have the view's key column names (as k has); every
 * other column of g and p is named _kappa_<what><j>, j the view column's
 * position.  They are listed once, as StateColumns, and every statement
 * is written from that list, so all agree on names and order.
 * ----------
 */

/* How two partials of a state column combine into one. */
typedef enum Combine
{
	COMBINE_ADD,				/* after minus before */
	COMBINE_MIN,				/* least of what came; what left may dirty */
	COMBINE_MAX
} Combine;

typedef struct StateColumn
{
	char	   *name;			/* _kappa_<what><j> */
	char	   *partial;		/* its aggregate over source rows */
	Combine		combine;
	char	   *carrier;		/* _kappa_<what>m<j>: what left, or NULL */
	char	   *dirty;			/* with a carrier: when the group is dirty,
								 * over excluded.<carrier> and g.<name> */
	bool		counts;			/* partial is a count (bigint) */
	char	   *tallied;		/* a tally: the values whose scales it counts */
} StateColumn;

static void
add_state(List **state, const char *what, int j, char *partial,
		  Combine combine, char *dirty)
{
	StateColumn *sc = palloc0(sizeof(StateColumn));

	sc->name = psprintf("_kappa_%s%d", what, j);
	sc->partial = partial;
	sc->combine = combine;
	if (dirty)
	{
		sc->carrier = psprintf("_kappa_%sm%d", what, j);
		sc->dirty = dirty;
	}
	*state = lappend(*state, sc);
}

/*
 * g's columns beside the group key, in order; see the file header.  With
 * weighted, the partials are over the rows of a projection (projection_sql)
 * whose column _kappa_a<j> is the argument of the view's aggregate j, and
 * each row stands for abs(_kappa_w) rows; with unit as well, every row of
 * the projection stands for one (the live rows, in groups): the partials
 * weights of 1 would give, of the same types, without converting each
 * value to numeric and multiplying it by its weight.  With tally, numeric
 * sums of no fixed scale count their values per display scale (engine 2),
 * else keep their largest scale.
 */
static List *
state_of(KappaViewDef *def, AggShape *shape, bool weighted, bool unit, bool tally)
{
	List	   *state = NIL;
	StateColumn *rows = palloc0(sizeof(StateColumn));
	ListCell   *lc;
	int			j = 0;
	const char *w = "pg_catalog.abs(t._kappa_w)";
	bool		by_weight = weighted && !unit;

	/* the row count; a group whose count reaches 0 is dirty (merge_sql) */
	rows->name = "_kappa_n";
	rows->partial = by_weight ? psprintf("pg_catalog.sum(%s)", w) : "pg_catalog.count(*)";
	rows->combine = COMBINE_ADD;
	rows->counts = !by_weight;
	state = lappend(state, rows);

	foreach(lc, shape->columns)
	{
		AggColumn  *col = lfirst(lc);
		char	   *arg;

		j++;
		if (col->key > 0 || col->kind == AGG_COUNT_STAR)
			continue;
		arg = weighted ? psprintf("t._kappa_a%d", j) : kappa_deparse_expr(def, col->arg);
		switch (col->kind)
		{
			case AGG_COUNT:
			case AGG_SUM:
			case AGG_AVG:
				add_state(&state, "c", j,
						  by_weight ?
						  psprintf("COALESCE(pg_catalog.sum(%s) FILTER (WHERE %s IS NOT NULL), 0)", w, arg) :
						  psprintf("pg_catalog.count(%s)", arg),
						  COMBINE_ADD, NULL);
				((StateColumn *) llast(state))->counts = !by_weight;
				if (col->kind == AGG_COUNT)
					break;
				/* NaN and infinities do not subtract */
				add_state(&state, "s", j,
						  by_weight ?
						  psprintf("COALESCE(pg_catalog.sum(%s::pg_catalog.numeric OPERATOR(pg_catalog.*) %s), 0)", arg, w) :
						  psprintf("COALESCE(pg_catalog.sum(%s)::pg_catalog.numeric, 0)", arg),
						  COMBINE_ADD,
						  col->numeric ?
						  psprintf("NOT (excluded._kappa_sm%d > '-Infinity'::pg_catalog.numeric"
								   " AND excluded._kappa_sm%d < 'Infinity'::pg_catalog.numeric)", j, j) :
						  NULL);
				/* nor does the widest display scale: count each scale */
				if (col->numeric && col->fixed_scale < 0 && tally)
				{
					/* 10^(12 * scale): a count of one in the scale's digits */
					char	   *one = psprintf("pg_catalog.trunc(pg_catalog.power(10::pg_catalog.numeric,"
											   " 12 OPERATOR(pg_catalog.*) pg_catalog.scale(%s)))", arg);

					col->tally = true;
					add_state(&state, "t", j,
							  psprintf("COALESCE(pg_catalog.sum(%s%s%s), 0)", one,
									   by_weight ? " OPERATOR(pg_catalog.*) " : "",
									   by_weight ? w : ""),
							  COMBINE_ADD, NULL);
					((StateColumn *) llast(state))->tallied = arg;
				}
				else if (col->numeric && col->fixed_scale < 0)
					add_state(&state, "x", j,
							  psprintf("pg_catalog.max(pg_catalog.scale(%s))", arg),
							  COMBINE_MAX,
							  psprintf("g._kappa_x%d > 0 AND excluded._kappa_xm%d >= g._kappa_x%d",
									   j, j, j));
				break;
			case AGG_MIN:
				add_state(&state, "m", j, psprintf("pg_catalog.min(%s)", arg), COMBINE_MIN,
						  psprintf("excluded._kappa_mm%d <= g._kappa_m%d", j, j));
				break;
			case AGG_MAX:
				add_state(&state, "m", j, psprintf("pg_catalog.max(%s)", arg), COMBINE_MAX,
						  psprintf("excluded._kappa_mm%d >= g._kappa_m%d", j, j));
				break;
			case AGG_COUNT_STAR:
				break;
		}
	}
	return state;
}

/*
 * The partial aggregate query over relation qualname (a table with the
 * source's columns): the group keys and the state columns.
 */
static char *
partial_query(KappaViewDef *def, AggShape *shape, List *state,
			  const char *qualname)
{
	StringInfoData buf;
	ListCell   *lc;
	ListCell   *ln;
	Node	   *quals = def->query->jointree->quals;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	forboth(lc, shape->key_exprs, ln, def->key_columns)
		appendStringInfo(&buf, "%s AS %s, ", kappa_deparse_expr(def, lfirst(lc)),
						 quote_identifier(lfirst(ln)));
	foreach(lc, state)
	{
		StateColumn *sc = lfirst(lc);

		appendStringInfo(&buf, "%s%s AS %s", lc == list_head(state) ? "" : ", ",
						 sc->partial, sc->name);
	}
	appendStringInfo(&buf, " FROM %s %s", qualname,
					 quote_identifier(rt_fetch(1, def->query->rtable)->eref->aliasname));
	if (quals != NULL)
		appendStringInfo(&buf, " WHERE %s", kappa_deparse_expr(def, quals));
	appendStringInfoString(&buf, " GROUP BY ");
	for (int i = 1; i <= list_length(shape->key_exprs); i++)
		appendStringInfo(&buf, "%s%d", i > 1 ? ", " : "", i);
	return buf.data;
}

/* g's columns that partial_query fills, in its order */
static char *
state_columns(KappaViewDef *def, List *state)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoString(&buf, kappa_quoted_list(def->key_columns, ""));
	foreach(lc, state)
		appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "",
						 ((StateColumn *) lfirst(lc))->name);
	return buf.data;
}

/*
 * The carrier columns: with q NULL their names, else each as a copy of
 * the state column of partial row q it carries (for CREATE TABLE AS).
 */
static char *
carrier_columns(List *state, const char *q)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, state)
	{
		StateColumn *sc = lfirst(lc);

		if (sc->carrier == NULL)
			continue;
		if (q)
			appendStringInfo(&buf, ", %s.%s AS %s", q, sc->name, sc->carrier);
		else
			appendStringInfo(&buf, ", %s", sc->carrier);
	}
	return buf.data;
}

/* the view's column j as an expression over g's row r */
static char *
output_expr(KappaViewDef *def, AggColumn *col, int j, const char *r)
{
	char	   *sum;

	if (col->key > 0)
		return psprintf("%s.%s", r, quote_identifier(list_nth(def->key_columns, col->key - 1)));
	switch (col->kind)
	{
		case AGG_COUNT_STAR:
			return psprintf("%s._kappa_n", r);
		case AGG_COUNT:
			return psprintf("%s._kappa_c%d", r, j);
		case AGG_MIN:
		case AGG_MAX:
			return psprintf("%s._kappa_m%d", r, j);
		case AGG_SUM:
		case AGG_AVG:
			/* the sum, shown with its inputs' largest display scale */
			if (!col->numeric)
				sum = psprintf("%s._kappa_s%d", r, j);
			else if (col->fixed_scale >= 0)
				sum = psprintf("pg_catalog.round(%s._kappa_s%d, %d)", r, j, col->fixed_scale);
			else if (col->tally)
				sum = psprintf("pg_catalog.round(%s._kappa_s%d, CASE WHEN %s._kappa_t%d OPERATOR(pg_catalog.>) 0"
							   " THEN (pg_catalog.length(pg_catalog.trunc(%s._kappa_t%d)::pg_catalog.text) OPERATOR(pg_catalog.-) 1)"
							   " OPERATOR(pg_catalog./) 12 ELSE 0 END)",
							   r, j, r, j, r, j);
			else
				sum = psprintf("pg_catalog.round(%s._kappa_s%d, COALESCE(%s._kappa_x%d, 0))",
							   r, j, r, j);
			if (col->kind == AGG_AVG)
				return psprintf("CASE WHEN %s._kappa_c%d > 0 THEN %s / %s._kappa_c%d::pg_catalog.numeric END",
								r, j, sum, r, j);
			/* sum of int2 or int4 is int8; of int8 or numeric, numeric */
			if (col->argtype == INT2OID || col->argtype == INT4OID)
				sum = psprintf("(%s)::pg_catalog.int8", sum);
			return psprintf("CASE WHEN %s._kappa_c%d > 0 THEN %s END", r, j, sum);
	}
	return NULL;				/* keep compiler quiet */
}

/*
 * Append, for the state columns of g, what p's rows sum up to (to sel,
 * after what sel has), g's row plus that (to set) and when the sum is not
 * to be trusted (to dirty): what came, less what left, and each extreme of
 * what came; then the carriers, what left the same way.  With aliased,
 * each sum is named after its state column or carrier.
 */
static void
append_state_merge(List *state, bool aliased, StringInfo sel, StringInfo set,
				   StringInfo dirty)
{
	ListCell   *lc;

	foreach(lc, state)
	{
		StateColumn *sc = lfirst(lc);
		const char *n = sc->name;
		const char *as = aliased ? psprintf(" AS %s", n) : "";

		appendStringInfoString(sel, sel->len > 0 ? ", " : "");
		appendStringInfoString(set, set->len > 0 ? ", " : "");
		if (sc->combine == COMBINE_ADD)
		{
			appendStringInfo(sel, "pg_catalog.sum(CASE WHEN _kappa_plus THEN %s ELSE -%s END)%s", n, n, as);
			appendStringInfo(set, "%s = g.%s + excluded.%s", n, n, n);
		}
		else
		{
			bool		min = sc->combine == COMBINE_MIN;

			appendStringInfo(sel, "pg_catalog.%s(%s) FILTER (WHERE _kappa_plus)%s",
							 min ? "min" : "max", n, as);
			appendStringInfo(set, "%s = %s(g.%s, excluded.%s)",
							 n, min ? "LEAST" : "GREATEST", n, n);
		}
	}
	appendStringInfoString(dirty, "g._kappa_n + excluded._kappa_n = 0");
	foreach(lc, state)
	{
		StateColumn *sc = lfirst(lc);

		if (sc->carrier == NULL)
			continue;
		appendStringInfo(sel, ", pg_catalog.%s(%s) FILTER (WHERE NOT _kappa_plus)%s",
						 sc->combine == COMBINE_ADD ? "sum" :
						 sc->combine == COMBINE_MIN ? "min" : "max", sc->name,
						 aliased ? psprintf(" AS %s", sc->carrier) : "");
		appendStringInfo(dirty, " OR (excluded.%s IS NOT NULL AND %s)", sc->carrier, sc->dirty);
	}
}

/*
 * The statement that merges p into g and upserts the changed groups into
 * the view; see the file header.
 */
static char *
merge_sql(KappaViewDef *def, AggShape *shape, List *state, const char *schema,
		  const char *target)
{
	StringInfoData sel;			/* p's rows summed up per group */
	StringInfoData set;			/* g's row plus that */
	StringInfoData dirty;		/* when the sum is not to be trusted */
	StringInfoData out;			/* the view's row from g's */
	StringInfoData outset;
	ListCell   *lc;
	int			j = 0;
	char	   *keys = kappa_quoted_list(def->key_columns, "");

	initStringInfo(&sel);
	initStringInfo(&set);
	initStringInfo(&dirty);
	initStringInfo(&out);
	initStringInfo(&outset);

	appendStringInfoString(&sel, keys);
	append_state_merge(state, false, &sel, &set, &dirty);

	/*
	 * A group new to g has no rows that left; should one have some all the
	 * same, recompute it rather than trust the arithmetic.
	 */
	appendStringInfoString(&sel, ", pg_catalog.bool_or(NOT _kappa_plus)");

	foreach(lc, shape->columns)
	{
		AggColumn  *col = lfirst(lc);

		j++;
		appendStringInfo(&out, "%s%s", out.len > 0 ? ", " : "", output_expr(def, col, j, "up"));
		if (col->key == 0)
			appendStringInfo(&outset, "%s%s = excluded.%s", outset.len > 0 ? ", " : "",
							 quote_identifier(col->name), quote_identifier(col->name));
	}

	return psprintf("WITH up AS ("
					"INSERT INTO %s.g AS g (%s%s, _kappa_dirty) SELECT %s FROM %s.p GROUP BY %s"
					" ON CONFLICT (%s) DO UPDATE SET %s, _kappa_dirty = COALESCE(%s, true)"
					" RETURNING g.*)"
					" INSERT INTO %s AS t SELECT %s FROM up WHERE NOT up._kappa_dirty"
					" ON CONFLICT (%s) DO %s%s",
					schema, state_columns(def, state), carrier_columns(state, NULL),
					sel.data, schema, keys,
					keys, set.data, dirty.data,
					target, out.data,
					keys, outset.len > 0 ? "UPDATE SET " : "NOTHING", outset.data);
}

/*
 * The view's rows from g's, for every group: what the merge writes for the
 * groups a batch changed (merge_sql), for a g just filled from whole
 * sources, where no group is dirty.  A replay fills the view so instead of
 * running its query over the sources again.
 */
static char *
fill_view_sql(KappaViewDef *def, AggShape *shape, const char *schema,
			  const char *target)
{
	StringInfoData out;
	ListCell   *lc;
	int			j = 0;

	initStringInfo(&out);
	foreach(lc, shape->columns)
	{
		AggColumn  *col = lfirst(lc);

		j++;
		appendStringInfo(&out, "%s%s", out.len > 0 ? ", " : "", output_expr(def, col, j, "g"));
	}
	return psprintf("INSERT INTO %s SELECT %s FROM %s.g g"
					" WHERE g._kappa_n OPERATOR(pg_catalog.>) 0 AND NOT g._kappa_dirty",
					target, out.data, schema);
}

/*
 * The state table g (state, carriers and the dirty flag; unique on the
 * group key keys, unless NULL: one row for a view without GROUP BY) and
 * the partials table p (marked), both shaped by state_query, which gives
 * g's rows; and the statements that fill and empty g.
 */
static void
state_tables_sql(KappaAggSql *sql, List *state, const char *schema, const char *cols,
				 const char *keys, const char *state_query)
{
	sql->create = list_make3(psprintf("CREATE TABLE %s.g AS SELECT q.*%s, false AS _kappa_dirty"
									  " FROM (%s) q WITH NO DATA",
									  schema, carrier_columns(state, "q"), state_query),
							 psprintf("ALTER TABLE %s.g ALTER _kappa_dirty SET DEFAULT false,"
									  " ALTER _kappa_dirty SET NOT NULL", schema),
							 psprintf("CREATE INDEX ON %s.g (_kappa_dirty) WHERE _kappa_dirty",
									  schema));
	if (keys)
		sql->create = lappend(sql->create,
							  psprintf("CREATE UNIQUE INDEX ON %s.g (%s) NULLS NOT DISTINCT",
									   schema, keys));
	sql->create = lappend(sql->create,
						  psprintf("CREATE UNLOGGED TABLE %s.p AS SELECT true AS _kappa_plus, q.*"
								   " FROM (%s) q WITH NO DATA", schema, state_query));
	sql->state_columns = pstrdup(cols);
	sql->state_query = pstrdup(state_query);
	sql->fill_state = psprintf("INSERT INTO %s.g (%s) SELECT * FROM (%s) q", schema, cols, state_query);
	sql->clear_state = psprintf("DELETE FROM %s.g", schema);
}

/* "1, 2, ..., n" */
static char *
ordinals(int n)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 1; i <= n; i++)
		appendStringInfo(&buf, "%s%d", i > 1 ? ", " : "", i);
	return buf.data;
}

/*
 * The partials state (state_of with unit) of the rows t of query rows,
 * grouped by the view's keys.  A tally's term, 10^(12 * scale) as a
 * numeric, costs more than all the other aggregates of a row together:
 * with tallies, the rows are aggregated per group and display scale first
 * (each tally then a count), and each count multiplied by its scale's
 * power once per group and scale.  Both give the same values and types.
 */
static char *
live_state_sql(KappaViewDef *def, List *state, const char *rows)
{
	StringInfoData inner;
	StringInfoData outer;
	StringInfoData scales;
	const char *keys = kappa_quoted_list(def->key_columns, "t.");
	ListCell   *lc;
	int			nkeys = list_length(def->key_columns);
	int			nscales = 0;

	initStringInfo(&inner);
	initStringInfo(&outer);
	initStringInfo(&scales);
	foreach(lc, state)
	{
		StateColumn *sc = lfirst(lc);

		if (sc->tallied == NULL)
			continue;
		appendStringInfo(&scales, ", pg_catalog.scale(%s) AS _kappa_sc%d",
						 sc->tallied, ++nscales);
	}
	if (nscales == 0)
	{
		foreach(lc, state)
			appendStringInfo(&inner, ", %s AS %s", ((StateColumn *) lfirst(lc))->partial,
							 ((StateColumn *) lfirst(lc))->name);
		return psprintf("SELECT %s%s FROM %s t GROUP BY %s", keys, inner.data, rows, keys);
	}

	nscales = 0;
	foreach(lc, state)
	{
		StateColumn *sc = lfirst(lc);
		const char *n = sc->name;

		appendStringInfo(&inner, ", %s AS %s",
						 sc->tallied ? psprintf("pg_catalog.count(%s)", sc->tallied) : sc->partial,
						 n);
		if (sc->tallied)
			appendStringInfo(&outer, ", COALESCE(pg_catalog.sum(s.%s OPERATOR(pg_catalog.*)"
							 " pg_catalog.trunc(pg_catalog.power(10::pg_catalog.numeric,"
							 " 12 OPERATOR(pg_catalog.*) s._kappa_sc%d))), 0) AS %s",
							 n, ++nscales, n);
		else if (sc->combine == COMBINE_ADD)
			appendStringInfo(&outer, ", pg_catalog.sum(s.%s)%s AS %s", n,
							 sc->counts ? "::pg_catalog.int8" : "", n);
		else
			appendStringInfo(&outer, ", pg_catalog.%s(s.%s) AS %s",
							 sc->combine == COMBINE_MIN ? "min" : "max", n, n);
	}
	return psprintf("SELECT %s%s FROM (SELECT %s%s%s FROM %s t GROUP BY %s) s GROUP BY %s",
					kappa_quoted_list(def->key_columns, "s."), outer.data,
					keys, scales.data, inner.data, rows, ordinals(nkeys + nscales),
					ordinals(nkeys));
}

/*
 * The SQL that maintains view def (internal schema schema, derived table
 * target, both quoted) algebraically, or NULL when it cannot be.
 */
KappaAggSql *
kappa_agg_sql(KappaViewDef *def, const char *schema, const char *target)
{
	AggShape   *shape = analyse_view(def, false);
	List	   *state;
	KappaAggSql *sql;
	char	   *keys;
	char	   *cols;
	char	   *p_a;
	char	   *p_w;

	if (shape == NULL)
		return NULL;
	sql = palloc0(sizeof(KappaAggSql));
	state = state_of(def, shape, false, false, false);
	keys = kappa_quoted_list(def->key_columns, "");
	cols = state_columns(def, state);
	p_a = partial_query(def, shape, state, psprintf("%s.a_0", schema));
	p_w = partial_query(def, shape, state, psprintf("%s.w_0", schema));

	state_tables_sql(sql, state, schema, cols, keys, p_a);
	sql->partial_old = psprintf("INSERT INTO %s.p SELECT false, q.* FROM (%s) q", schema, p_w);
	sql->partial_new = psprintf("INSERT INTO %s.p SELECT true, q.* FROM (%s) q", schema, p_w);
	sql->merge = merge_sql(def, shape, state, schema, target);
	sql->fill_view = fill_view_sql(def, shape, schema, target);
	sql->take_dirty = psprintf("WITH dirty AS (DELETE FROM %s.g WHERE _kappa_dirty RETURNING %s)"
							   " INSERT INTO %s.k SELECT * FROM dirty",
							   schema, keys, schema);
	sql->clear_partials = psprintf("DELETE FROM %s.p", schema);
	return sql;
}

/* ----------
 * Engine 2
 * ----------
 */

/*
 * The view's query turned into its projection: the group keys (named as
 * the view's key columns) and the argument of each aggregate j (named
 * _kappa_a<j>), one row per row the aggregates see, no grouping.  The
 * delta rules print it over the sources' deltas (adding _kappa_w) and over
 * the live sources.  NULL when the view is not maintained algebraically.
 */
Query *
kappa_agg_projection(KappaViewDef *def)
{
	AggShape   *shape = analyse_view(def, true);
	Query	   *query;
	List	   *tlist = NIL;
	ListCell   *lc;
	ListCell   *lk;
	int			j = 0;

	if (shape == NULL)
		return NULL;
	query = copyObject(def->query);
	forboth(lc, shape->key_exprs, lk, def->key_columns)
		tlist = lappend(tlist, makeTargetEntry((Expr *) copyObject(lfirst(lc)), list_length(tlist) + 1,
											   pstrdup(lfirst(lk)), false));
	foreach(lc, shape->columns)
	{
		AggColumn  *col = lfirst(lc);

		j++;
		if (col->key > 0 || col->kind == AGG_COUNT_STAR)
			continue;
		tlist = lappend(tlist, makeTargetEntry((Expr *) copyObject(col->arg), list_length(tlist) + 1,
											   psprintf("_kappa_a%d", j), false));
	}
	query->targetList = tlist;
	query->groupClause = NIL;
	query->hasAggs = false;
	query->havingQual = NULL;
	return query;
}

/*
 * merge_sql for a view of aggregates without GROUP BY: g and the view have
 * one row each, which the partials in p update (when p has any).
 */
static char *
merge_whole_sql(KappaViewDef *def, AggShape *shape, List *state, const char *schema,
				const char *target)
{
	StringInfoData sel;
	StringInfoData set;
	StringInfoData dirty;
	StringInfoData out;
	ListCell   *lc;
	int			j = 0;

	initStringInfo(&sel);
	initStringInfo(&set);
	initStringInfo(&dirty);
	initStringInfo(&out);
	append_state_merge(state, true, &sel, &set, &dirty);
	foreach(lc, shape->columns)
	{
		AggColumn  *col = lfirst(lc);

		j++;
		appendStringInfo(&out, "%s%s = %s", out.len > 0 ? ", " : "",
						 quote_identifier(col->name), output_expr(def, col, j, "up"));
	}
	return psprintf("WITH up AS ("
					"UPDATE %s.g AS g SET %s, _kappa_dirty = COALESCE(%s, true)"
					" FROM (SELECT %s FROM %s.p) AS excluded"
					" WHERE EXISTS (SELECT 1 FROM %s.p) RETURNING g.*)"
					" UPDATE %s AS t SET %s FROM up WHERE NOT up._kappa_dirty",
					schema, set.data, dirty.data, sel.data, schema, schema,
					target, out.data);
}

/*
 * Does the view whose internal schema is schema (quoted) keep the largest
 * display scale of its sums (_kappa_x<j>), as engine 2 views made by 0.3
 * do, rather than a tally per scale?
 */
static bool
has_scale_maxima(const char *schema)
{
	List	   *names = stringToQualifiedNameList(schema);
	Oid			nsp = get_namespace_oid(strVal(linitial(names)), true);
	Oid			g = OidIsValid(nsp) ? get_relname_relid("g", nsp) : InvalidOid;
	bool		found = false;

	if (!OidIsValid(g))
		return false;
	for (AttrNumber a = 1; !found; a++)
	{
		char	   *name = get_attname(g, a, true);

		if (name == NULL)
			break;
		found = strncmp(name, "_kappa_x", 8) == 0;
	}
	return found;
}

/*
 * The SQL of an engine 2 view maintained algebraically (see
 * kappa_agg_projection): live is its projection over the live sources.
 * partial_head and partial_tail go around a projection over a delta (with
 * _kappa_w) to put its partials into p.
 */
KappaAggSql *
kappa_agg_sql_weighted(KappaViewDef *def, const char *schema, const char *target,
					   const char *live)
{
	AggShape   *shape = analyse_view(def, true);
	List	   *state;
	KappaAggSql *sql;
	char	   *keys;
	char	   *cols;
	char	   *partials;
	char	   *live_rows;
	char	   *state_live;
	bool		whole;
	bool		tally;
	StringInfoData buf;
	ListCell   *lc;

	if (shape == NULL)
		return NULL;
	sql = palloc0(sizeof(KappaAggSql));
	tally = !has_scale_maxima(schema);
	state = state_of(def, shape, true, false, tally);
	keys = kappa_quoted_list(def->key_columns, "");
	cols = state_columns(def, state);

	whole = def->key_columns == NIL;
	initStringInfo(&buf);
	foreach(lc, state)
		appendStringInfo(&buf, "%s%s AS %s", buf.len > 0 || !whole ? ", " : "",
						 ((StateColumn *) lfirst(lc))->partial,
						 ((StateColumn *) lfirst(lc))->name);
	partials = buf.data;

	/*
	 * The live rows each stand for one: in groups, their partials without
	 * weights (the same values and types, faster); a whole-table aggregate
	 * keeps the weighted ones, whose sums over no rows are null, not 0.
	 */
	live_rows = psprintf("(SELECT *, 1 AS _kappa_w FROM (%s) l)", live);
	if (whole)
		state_live = psprintf("SELECT %s FROM %s t", partials, live_rows);
	else
		state_live = live_state_sql(def, state_of(def, shape, true, true, tally), live_rows);

	state_tables_sql(sql, state, schema, cols, whole ? NULL : keys, state_live);
	sql->partial_head = psprintf("INSERT INTO %s.p SELECT t._kappa_w OPERATOR(pg_catalog.>) 0, %s%s FROM (",
								 schema, kappa_quoted_list(def->key_columns, "t."), partials);
	sql->partial_tail = whole ? ") t GROUP BY 1" :
		psprintf(") t GROUP BY %s, 1", kappa_quoted_list(def->key_columns, "t."));
	if (whole)
	{
		/* a dirty state is recomputed whole (delta_rules.c) */
		sql->merge = merge_whole_sql(def, shape, state, schema, target);
		sql->take_dirty = psprintf("UPDATE %s.g SET _kappa_dirty = false WHERE _kappa_dirty", schema);
	}
	else
	{
		sql->merge = merge_sql(def, shape, state, schema, target);
		sql->fill_view = fill_view_sql(def, shape, schema, target);
		sql->take_dirty = psprintf("WITH dirty AS (DELETE FROM %s.g WHERE _kappa_dirty RETURNING %s)"
								   " INSERT INTO %s.k SELECT * FROM dirty",
								   schema, keys, schema);
	}
	sql->clear_partials = psprintf("DELETE FROM %s.p", schema);
	return sql;
}
