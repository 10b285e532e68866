/*-------------------------------------------------------------------------
 *
 * delta_rules.c
 *	  Engine 2: applies a batch to a derived view from signed deltas taken
 *	  from the WAL alone, reading the live sources (under the snapshot the
 *	  batch is aligned with) wherever a delta needs other rows.  No copy of
 *	  any source is kept.
 *
 * Sources have REPLICA IDENTITY FULL, so every update and delete carries
 * its whole old row: a batch is, per source, a signed multiset of rows,
 * +1 for each new image and -1 for each old one (d_<n>, at the source's
 * attribute numbers, weight in _kappa_w).  The source as it was before the
 * batch is then the live table with the batch undone, which is a view,
 * o_<n>: the live rows with weight 1 and the batch's rows negated.
 *
 * The delta of a select-project-join query over range table entries
 * R1 .. Rk is the sum of one term per entry that reads a source:
 *
 *	   dQ = sum over i of  Q(R1 new, .., R(i-1) new, dRi, R(i+1) old, .., Rk old)
 *
 * with the weights of the rows joined multiplied.  Since old = new - d,
 * multiplying out gives the same delta over the live sources and the
 * deltas alone, one term per nonempty set S of entries whose source
 * changed in the batch:
 *
 *	   dQ = sum over S of  (-1)^(|S|+1) Q(dRi for i in S, Rj new for j not in S)
 *
 * which is what a batch runs when it changed at most MAX_EXPANDED_ENTRIES
 * entries (else the linear form, through o_<n>).  Each term is the view's
 * own query, printed again with the entries of S reading d_<n>
 * (kappa_deparse_query), so PostgreSQL plans the joins against the live
 * tables with their statistics (index lookups where indexes exist).  The
 * terms' rows go to dq; they are consolidated by the rows' text (rows that
 * cancel vanish) into dc, and applied: by key where the view has one (the
 * sources' keys, all selected), else as a bag, deleting and inserting as
 * many copies as the weight says.
 *
 * In the expanded form, an entry reached by its source's whole primary key
 * (key_joins.c) splits each pair of terms that differ only in whether it
 * reads its delta: the term reading the live table leaves out the keys the
 * delta has (and those whose images all failed the source's filters,
 * f_<n>), and its twin reads only the delta's old images (pair_terms), so
 * that rows whose partner changed do not look the partner up.
 *
 * A view with LEFT JOINs (view_compiler.c, check_left_joins) is kept by
 * the key of its first table instead: one term per entry gives the keys of
 * the kept rows the batch changed, or joined to a row it changed, and
 * those rows' part of the view is computed again from the live sources,
 * as groups are.
 *
 * A GROUP BY view takes the group keys of the terms' rows (both signs) and
 * recomputes those groups from the live sources; a view with aggregates
 * and no GROUP BY, and any batch with a TRUNCATE of a source, recomputes
 * the whole view.  All of it reads the sources with kappa_read_snapshot.
 *
 * Every statement runs as the view's owner, restricted (the caller,
 * apply_worker.c, owns transactions and progress).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/hio.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "common/hashfn.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/hyperloglog.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "pg_kappa.h"

/* One term of the delta rule: range table entry rtindex reads the delta. */
typedef struct RuleTerm
{
	int			srcno;			/* the source entry rtindex reads */
	SPIPlanPtr	plan;			/* INSERT INTO dq (or k) SELECT ... */
} RuleTerm;

/* A term of the expanded rule: the entries in mask read their deltas. */
typedef struct SubsetPlan
{
	uint64		mask;
	uint64		keyed;			/* entries split by their key (pair_terms) */
	uint64		sizes;			/* the deltas' size classes it was planned for */
	SPIPlanPtr	plan;
} SubsetPlan;

/* bit of range table entry r in a SubsetPlan's mask */
#define RTE_BIT(r)	(UINT64CONST(1) << ((r) - 1))

/*
 * Batches that change more source entries than this take the linear form
 * of the rule (one term per entry, later entries read through o_<n>):
 * the expanded form runs 2^k - 1 terms for k entries changed.
 */
#define MAX_EXPANDED_ENTRIES 5

typedef struct RulePlan
{
	int			id;				/* hash key */
	Oid			relid;			/* the derived table */
	Oid			owner;
	int			nsources;
	Oid		   *sources;
	Oid		   *drelids;		/* d_<n> */
	bool	  **read;			/* per source: the columns the view reads,
								 * or NULL for all */
	int		   *read_natts;		/* per source: the length of read[i] */
	List	  **filters;		/* per source: the conditions on it alone
								 * (planned), that its delta rows must meet */
	bool	  **joined;			/* per source: the columns it is joined on
								 * by equality (read_natts[i] long), or NULL */
	SPIPlanPtr *consolidate_d;	/* rows that cancel out leave d_<n> */
	SPIPlanPtr *clear_d;
	bool	   *d_filled;		/* per source: d_<n> may hold an earlier
								 * batch's rows (see kappa_apply_rules) */
	int64		d_rows;			/* rows the last batch left in them */
	int			nterms;
	RuleTerm   *terms;
	/* the expanded rule, its terms prepared as batches need them */
	int			nrtes;
	int		   *rte_source;		/* per range table entry: source or -1 */
	Query	   *base;			/* the query the terms are written from */
	KappaKeyJoin **key_joins;	/* per range table entry (key_joins.c), of
								 * one partner whose delta can be fenced */
	Oid		   *frelids;		/* per source: f_<n>, to fill, or invalid */
	AttrNumber **fkeys;			/* per source: f_<n>'s columns in the source */
	int		   *nfkeys;
	SPIPlanPtr *clear_f;
	TupleDesc  *fdescs;			/* per source: f_<n>'s columns */
	bool		keys_only;		/* terms give group keys (into k) */
	char	   *term_head;		/* what a term's SELECT goes into */
	char	   *term_tail;
	List	   *subsets;		/* of SubsetPlan */
	bool		grouped;		/* GROUP BY: recompute the affected groups */
	bool		outer;			/* LEFT JOIN: recompute the kept rows
								 * affected, by their key */
	bool		whole;			/* aggregates without GROUP BY */
	/* select-project-join views */
	SPIPlanPtr	consolidate;	/* dq -> dc */
	SPIPlanPtr	delete_rows;
	SPIPlanPtr	insert_rows;
	SPIPlanPtr	clear_dq;
	SPIPlanPtr	clear_dc;
	/* GROUP BY views */
	KappaKeyedPlan delete_keys;
	KappaKeysInsert insert_keys;
	SPIPlanPtr	has_null_keys;
	SPIPlanPtr	delete_null_keys;
	SPIPlanPtr	insert_null_keys;
	SPIPlanPtr	clear_k;
	/* GROUP BY views maintained algebraically (agg_delta.c) */
	bool		algebraic;
	SPIPlanPtr	merge;
	SPIPlanPtr	take_dirty;
	KappaKeysInsert state_keys;
	SPIPlanPtr	state_null_keys;
	SPIPlanPtr	view_keys;		/* the view's rows of groups in k, from g */
	SPIPlanPtr	view_null_keys;
	SPIPlanPtr	clear_partials;
	SPIPlanPtr	clear_state;
	SPIPlanPtr	fill_state;
	/* everything */
	SPIPlanPtr	delete_all;
	SPIPlanPtr	insert_all;
} RulePlan;

static HTAB *rule_plans = NULL; /* in kappa_plans_context() */

/* Forget every plan of engine 2 (kappa_engine_reset frees them). */
void
kappa_rules_forget(void)
{
	rule_plans = NULL;
}

/*
 * A plan names the derived table and was built from the view's query text,
 * which names its sources: when either is altered, or a schema renamed,
 * build the plans again (which checks that the text still reads the same
 * sources).
 */
static void
rules_relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	RulePlan   *rp;

	if (rule_plans == NULL || relid == InvalidOid)
		return;
	hash_seq_init(&status, rule_plans);
	while ((rp = hash_seq_search(&status)) != NULL)
	{
		bool		mine = rp->relid == relid;

		for (int i = 0; i < rp->nsources && !mine; i++)
			mine = rp->sources[i] == relid;
		if (mine)
		{
			kappa_plans_stale = true;
			hash_seq_term(&status);
			break;
		}
	}
}

/* The attribute number of the weight column of d_<n> and o_<n>. */
static AttrNumber
weight_attnum(Oid relid)
{
	AttrNumber	attnum = get_attnum(relid, "_kappa_w");

	if (attnum == InvalidAttrNumber)
		elog(ERROR, "internal relation %u has no weight column", relid);
	return attnum;
}

/* "a * b" of two int4 expressions */
static Node *
multiply(Node *a, Node *b)
{
	if (a == NULL)
		return b;
	return (Node *) makeFuncExpr(F_INT4MUL, INT4OID, list_make2(a, b),
								 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
}

static bool may_raise_walker(Node *node, void *context);

/*
 * Does cond, a condition of the query's joins, read the columns of range
 * table entry rt alone, and raise no error whatever the row?  Such are the
 * source's filters (source_filters), which the worker checks in memory as
 * it fills the delta, and which a term may therefore leave out where rt
 * reads the delta.
 */
static bool
condition_on_entry(Node *cond, int rt)
{
	List	   *vars = pull_var_clause(cond, 0);
	ListCell   *lc;

	if (vars == NIL)
		return false;
	foreach(lc, vars)
	{
		Var		   *var = lfirst(lc);

		if (!IsA(var, Var) || var->varno != rt || var->varlevelsup != 0 ||
			var->varattno <= 0)
			return false;
	}
	return !contain_volatile_functions(cond) && !may_raise_walker(cond, NULL);
}

/* qual less its conjuncts condition_on_entry(rt) (NULL when none is left) */
static Node *
drop_met_conditions(Node *qual, int rt)
{
	if (qual == NULL)
		return NULL;
	if (is_andclause(qual))
	{
		List	   *kept = NIL;
		ListCell   *lc;

		foreach(lc, ((BoolExpr *) qual)->args)
		{
			Node	   *arg = drop_met_conditions(lfirst(lc), rt);

			if (arg != NULL)
				kept = lappend(kept, arg);
		}
		if (kept == NIL)
			return NULL;
		return list_length(kept) == 1 ? linitial(kept) : (Node *) makeBoolExpr(AND_EXPR, kept, -1);
	}
	return condition_on_entry(qual, rt) ? NULL : qual;
}

/* The same, in every qual of the join tree (inner joins only: see below). */
static void
drop_met_in_jointree(Node *node, int rt)
{
	if (node == NULL)
		return;
	if (IsA(node, FromExpr))
	{
		FromExpr   *f = (FromExpr *) node;
		ListCell   *lc;

		foreach(lc, f->fromlist)
			drop_met_in_jointree(lfirst(lc), rt);
		f->quals = drop_met_conditions(f->quals, rt);
	}
	else if (IsA(node, JoinExpr))
	{
		JoinExpr   *j = (JoinExpr *) node;

		drop_met_in_jointree(j->larg, rt);
		drop_met_in_jointree(j->rarg, rt);
		if (j->jointype == JOIN_INNER)
			j->quals = drop_met_conditions(j->quals, rt);
	}
}

/*
 * The SQL of one delta term over base, the view's query or its projection
 * (agg_delta.c): each range table entry r with a valid relids[r] reads that
 * relation instead of its source, the others read the live source, and
 * weight is output as _kappa_w.  With grouped, the term gives the group
 * keys of its rows instead.  An entry that reads a delta whose rows were
 * checked against the source's filters as it was filled (filtered[r]) is
 * read without those conditions: the planner, which has no statistics of
 * a delta's values, would take them for selective and plan the term for a
 * delta of one row.
 */
static char *
delta_sql(Query *base, Oid *relids, const bool *filtered, Node *weight, bool grouped,
		  List *quals, List **fenced)
{
	Query	   *query = copyObject(base);
	int			nrtes = list_length(query->rtable);
	ListCell   *lc;

	for (int r = 1; r <= nrtes; r++)
		if (filtered != NULL && filtered[r] && OidIsValid(relids[r]))
			drop_met_in_jointree((Node *) query->jointree, r);
	foreach(lc, quals)
		query->jointree->quals = make_and_qual(query->jointree->quals,
											   copyObject(lfirst(lc)));
	if (fenced != NULL)
	{
		Oid		   *read = palloc(sizeof(Oid) * (nrtes + 1));

		memcpy(read, relids, sizeof(Oid) * (nrtes + 1));
		for (int r = 1; r <= nrtes; r++)
			if (fenced[r] != NIL)
			{
				kappa_fence_entry(query, r, relids[r], fenced[r]);
				read[r] = InvalidOid;	/* a subquery now */
			}
		relids = read;
	}

	if (grouped)
	{
		List	   *keys = NIL;
		ListCell   *lc;

		foreach(lc, query->groupClause)
		{
			TargetEntry *tle = get_sortgroupclause_tle(lfirst(lc), query->targetList);

			keys = lappend(keys, tle);
		}
		query->targetList = keys;
		query->groupClause = NIL;
		query->havingQual = NULL;
		query->hasAggs = false;
		return psprintf("SELECT DISTINCT * FROM (%s) s",
						kappa_deparse_query(query, relids));
	}
	query->targetList = lappend(query->targetList,
								makeTargetEntry((Expr *) weight,
												list_length(query->targetList) + 1,
												pstrdup("_kappa_w"), false));
	return kappa_deparse_query(query, relids);
}

/*
 * Term i of the linear form of the delta rule (see the header): entry i
 * reads d_<n>, later source entries read o_<n>, earlier ones the live
 * sources, and the product of the weights read is the row's weight.
 */
static char *
term_sql(KappaViewDef *def, Query *base, int term_rt, Oid *drelids, Oid *orelids,
		 List **filters, bool grouped)
{
	Oid		   *relids = palloc0(sizeof(Oid) * (def->nrtes + 1));
	bool	   *filtered = palloc0(sizeof(bool) * (def->nrtes + 1));
	Node	   *weight = NULL;

	for (int r = term_rt; r <= def->nrtes; r++)
	{
		int			srcno = def->rte_source[r];
		Oid			relid;

		if (srcno < 0)
			continue;
		relid = r == term_rt ? drelids[srcno] : orelids[srcno];
		relids[r] = relid;
		filtered[r] = r == term_rt && filters[srcno] != NIL;
		weight = multiply(weight, (Node *) makeVar(r, weight_attnum(relid), INT4OID,
												   -1, InvalidOid, 0));
	}
	return delta_sql(base, relids, filtered, weight, grouped, NIL, NULL);
}

/*
 * The view's query giving the keys of the kept table's rows (a LEFT JOIN
 * view's, or one with subqueries: view_compiler.c, check_left_joins), the
 * terms' starting point: its output only those keys, without GROUP BY,
 * HAVING and the WHERE clause (where its subqueries are).  Leaving WHERE
 * out gives more keys than needed, which only recomputes rows that stay
 * the same.
 */
static Query *
kept_key_query(KappaViewDef *def)
{
	Query	   *query = copyObject(def->query);
	List	   *tlist = NIL;
	ListCell   *lc;

	foreach(lc, def->preserved_key)
	{
		const char *name = lfirst(lc);
		ListCell   *lt;

		foreach(lt, query->targetList)
		{
			TargetEntry *tle = lfirst(lt);

			if (!tle->resjunk && strcmp(tle->resname, name) == 0)
			{
				tlist = lappend(tlist, makeTargetEntry(tle->expr, list_length(tlist) + 1,
													   pstrdup(name), false));
				break;
			}
		}
	}
	query->targetList = tlist;

	/*
	 * Inner joins too keep every kept row: a kept row deleted in the batch
	 * with the row it was joined to is found by its own delta.
	 */
	for (Node *node = linitial(query->jointree->fromlist); IsA(node, JoinExpr);
		 node = ((JoinExpr *) node)->larg)
	{
		JoinExpr   *j = (JoinExpr *) node;

		j->jointype = JOIN_LEFT;
		rt_fetch(j->rtindex, query->rtable)->jointype = JOIN_LEFT;
	}
	query->jointree->quals = NULL;
	query->hasSubLinks = false;
	query->groupClause = NIL;
	query->havingQual = NULL;
	query->hasAggs = false;
	return query;
}

/*
 * The term of a LEFT JOIN view for range table entry term_rt: the keys of
 * the kept table's rows whose part of the view the batch may have
 * changed.  Entry term_rt reads its delta: for the kept table, those are
 * the rows it changed; for a joined table, its join becomes an inner join
 * (the others are LEFT joins: kept_key_query), which gives the kept rows
 * joined to a changed row (old or new).  That finds every kept row whose
 * part changed: of the rows joined into it (before or after the batch),
 * take a changed one whose table comes first in the chain of joins; the
 * rows it was joined to, to its left, did not change, so they are the
 * live ones, and the term of its table joins them to its old or new image.
 */
static char *
outer_key_sql(KappaViewDef *def, int term_rt, Oid *drelids)
{
	Query	   *query = kept_key_query(def);
	Oid		   *relids = palloc0(sizeof(Oid) * (def->nrtes + 1));
	Node	   *node;

	for (node = linitial(query->jointree->fromlist); IsA(node, JoinExpr);
		 node = ((JoinExpr *) node)->larg)
	{
		JoinExpr   *j = (JoinExpr *) node;

		if (((RangeTblRef *) j->rarg)->rtindex == term_rt)
		{
			j->jointype = JOIN_INNER;
			rt_fetch(j->rtindex, query->rtable)->jointype = JOIN_INNER;
		}
	}
	relids[term_rt] = drelids[def->rte_source[term_rt]];
	return psprintf("SELECT DISTINCT * FROM (%s) s", kappa_deparse_query(query, relids));
}

/*
 * The term of a view's subquery over t (view_compiler.c, check_sublinks)
 * for t's delta: the keys of the kept rows its condition matches with a
 * row t changed (old or new), whose EXISTS or IN may have changed.  The
 * subquery becomes a join of the view's FROM items with d_<n> on its
 * condition.
 */
static char *
semi_key_sql(KappaViewDef *def, KappaSemiJoin *semi, Oid *drelids)
{
	Query	   *query = kept_key_query(def);
	Oid		   *relids = palloc0(sizeof(Oid) * (def->nrtes + 2));
	RangeTblRef *rtr = makeNode(RangeTblRef);

	query->rtable = lappend(query->rtable, copyObject(semi->rte));
	rtr->rtindex = def->nrtes + 1;
	query->jointree->fromlist = lappend(query->jointree->fromlist, rtr);
	query->jointree->quals = copyObject(semi->cond);
	relids[def->nrtes + 1] = drelids[semi->srcno];
	return psprintf("SELECT DISTINCT * FROM (%s) s", kappa_deparse_query(query, relids));
}

/*
 * Can entry r, reading its delta, be read through a subquery instead
 * (kappa_fence_entry)?  Not when the delta has fewer columns than the
 * query's entry (columns added to the source since the delta was made:
 * kappa_deparse_query leaves them out of the joins).
 */
static bool
fence_fits(RulePlan *rp, int r)
{
	RangeTblEntry *rte = rt_fetch(r, rp->base->rtable);
	Oid			drelid = rp->drelids[rp->rte_source[r]];
	Relation	drel = table_open(drelid, AccessShareLock);
	bool		fits = RelationGetNumberOfAttributes(drel) - 1 >= list_length(rte->eref->colnames);

	table_close(drel, AccessShareLock);
	return fits;
}

/*
 * The term of the expanded delta rule for the set of range table entries
 * in mask (see the header): those entries read d_<n>, every other entry
 * the live source, and the row's weight is the product of the weights
 * read, negated when the set has an even number of entries.  An entry in
 * keyed (pair_terms) reads, where it reads d_<n>, only the rows of weight
 * -1, and where it reads the live source, only the partners whose key
 * d_<n> does not have (key_joins.c): its partner's delta, the term's only
 * one, is read through a subquery that leaves the others out.
 */
static char *
subset_sql(RulePlan *rp, uint64 mask, uint64 keyed)
{
	Oid		   *relids = palloc0(sizeof(Oid) * (rp->nrtes + 1));
	bool	   *filtered = palloc0(sizeof(bool) * (rp->nrtes + 1));
	Node	   *weight = NULL;
	List	   *quals = NIL;
	List	  **fenced = palloc0(sizeof(List *) * (rp->nrtes + 1));
	int			n = 0;

	for (int r = 1; r <= rp->nrtes; r++)
	{
		Oid			relid;
		Var		   *w;

		if ((mask & RTE_BIT(r)) == 0)
		{
			if (keyed & RTE_BIT(r))
			{
				KappaKeyJoin *kj = rp->key_joins[r];
				int			partner = pg_rightmost_one_pos64(kj->partners) + 1;

				/* the term's only delta is the partner's (pair_terms) */
				Assert(mask == kj->partners);
				fenced[partner] = lappend(fenced[partner], kj->by_partner);
			}
			continue;
		}
		relid = rp->drelids[rp->rte_source[r]];
		relids[r] = relid;
		filtered[r] = rp->filters[rp->rte_source[r]] != NIL;
		w = makeVar(r, weight_attnum(relid), INT4OID, -1, InvalidOid, 0);
		weight = multiply(weight, (Node *) w);
		if (keyed & RTE_BIT(r))
			quals = lappend(quals,
							make_opclause(Int4LessOperator, BOOLOID, false,
										  (Expr *) copyObject(w),
										  (Expr *) makeConst(INT4OID, -1, InvalidOid, sizeof(int32),
															 Int32GetDatum(0), false, true),
										  InvalidOid, InvalidOid));
		n++;
	}
	if (n % 2 == 0)
		weight = multiply(weight, (Node *) makeConst(INT4OID, -1, InvalidOid, sizeof(int32),
													  Int32GetDatum(-1), false, true));
	return delta_sql(rp->base, relids, filtered, weight, rp->keys_only, quals, fenced);
}

/*
 * The kept plan of the term for mask, for deltas of the size classes sizes
 * (kappa_delta_size_class, packed), prepared the first time a batch needs
 * it: PostgreSQL plans it at its first run, with the deltas' sizes given
 * by delta_sizes.c.
 */
static SPIPlanPtr
subset_plan(RulePlan *rp, uint64 mask, uint64 keyed, uint64 sizes)
{
	ListCell   *lc;
	SubsetPlan *sp;
	MemoryContext oldcxt;
	char	   *sql;

	foreach(lc, rp->subsets)
	{
		sp = lfirst(lc);
		if (sp->mask == mask && sp->keyed == keyed && sp->sizes == sizes)
			return sp->plan;
	}
	oldcxt = MemoryContextSwitchTo(kappa_plans_context());
	sql = subset_sql(rp, mask, keyed);
	sp = palloc(sizeof(SubsetPlan));
	sp->mask = mask;
	sp->keyed = keyed;
	sp->sizes = sizes;
	sp->plan = kappa_keep_plan(psprintf("%s%s%s", rp->term_head, sql, rp->term_tail));
	rp->subsets = lappend(rp->subsets, sp);
	MemoryContextSwitchTo(oldcxt);
	return sp->plan;
}

/*
 * Column name of relid, prefixed with alias (or not, if NULL), as the text
 * rows are compared by (kappa_text_of), in the "C" collation.
 */
static char *
column_text(Oid relid, const char *name, const char *alias)
{
	const char *expr = alias ? psprintf("%s.%s", alias, quote_identifier(name)) :
		quote_identifier(name);

	return psprintf("%s COLLATE pg_catalog.\"C\"",
					kappa_text_of(expr, get_atttype(relid, get_attnum(relid, name))));
}

/* "t.c1::text = q.c1::text" style matching of every output column of relid */
static char *
match_rows(Oid relid, List *cols, const char *t, const char *q)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, cols)
	{
		if (buf.len > 0)
			appendStringInfoString(&buf, " AND ");
		appendStringInfo(&buf, "%s IS NOT DISTINCT FROM %s",
						 column_text(relid, lfirst(lc), t), column_text(relid, lfirst(lc), q));
	}
	return buf.data;
}

/* The output column names of the derived table, in order. */
static List *
output_columns(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *result = NIL;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped)
			result = lappend(result, pstrdup(NameStr(att->attname)));
	}
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * The statements that apply the consolidated delta dc to a view without
 * GROUP BY: by key, or as a bag.
 */
static void
prepare_row_apply(RulePlan *rp, KappaViewDef *def, const char *schema,
				  const char *target)
{
	List	   *cols = output_columns(rp->relid);
	char	   *dq = psprintf("%s.dq", schema);
	char	   *dc = psprintf("%s.dc", schema);
	StringInfoData grouping;
	ListCell   *lc;

	/*
	 * Consolidate by the rows' text (equal but not identical rows, 1.0 and
	 * 1.00, stay apart): one row per text, with its summed weight.
	 */
	initStringInfo(&grouping);
	foreach(lc, cols)
		appendStringInfo(&grouping, "%s%s", grouping.len > 0 ? ", " : "",
						 column_text(rp->relid, lfirst(lc), NULL));
	rp->consolidate = kappa_keep_plan(psprintf("INSERT INTO %s SELECT * FROM ("
											 "SELECT DISTINCT ON (%s) %s, pg_catalog.sum(_kappa_w) OVER (PARTITION BY %s) AS _kappa_sum"
											 " FROM %s ORDER BY %s) s WHERE s._kappa_sum OPERATOR(pg_catalog.<>) 0",
											 dc, grouping.data, kappa_quoted_list(cols, ""),
											 grouping.data, dq, grouping.data));
	rp->clear_dq = kappa_keep_plan(psprintf("DELETE FROM %s", dq));
	rp->clear_dc = kappa_keep_plan(psprintf("DELETE FROM %s", dc));

	if (def->key_columns != NIL)
	{
		rp->delete_rows = kappa_keep_plan(psprintf("DELETE FROM %s t USING %s d"
												 " WHERE d._kappa_w OPERATOR(pg_catalog.<) 0 AND %s",
												 target, dc,
												 kappa_match_keys(def->key_columns, "t", "=", "d")));
		rp->insert_rows = kappa_keep_plan(psprintf("INSERT INTO %s SELECT %s FROM %s d"
												 " WHERE d._kappa_w OPERATOR(pg_catalog.>) 0",
												 target, kappa_quoted_list(cols, "d."), dc));
		return;
	}

	/*
	 * A bag: delete -w copies of each row with negative weight w (looked up
	 * by one column, which is indexed, with its type's equality, then
	 * compared as text; by text alone where no column has an equality),
	 * insert w copies of each with positive weight.
	 */
	{
		Oid			eqop;
		bool		hashed;
		AttrNumber	look = kappa_bag_lookup_column(rp->relid, &eqop, &hashed);
		char	   *same = match_rows(rp->relid, cols, "t2", "d");
		char	   *candidates;

		if (look != InvalidAttrNumber)
		{
			const char *col = quote_identifier(get_attname(rp->relid, look, false));
			HeapTuple	optup = SearchSysCache1(OPEROID, ObjectIdGetDatum(eqop));
			Form_pg_operator opform;
			const char *op;

			if (!HeapTupleIsValid(optup))
				elog(ERROR, "cache lookup failed for operator %u", eqop);
			opform = (Form_pg_operator) GETSTRUCT(optup);
			op = psprintf("OPERATOR(%s.%s)",
						  quote_identifier(get_namespace_name(opform->oprnamespace)),
						  NameStr(opform->oprname));
			ReleaseSysCache(optup);

			candidates = psprintf("SELECT t2.ctid AS tid FROM %s t2 WHERE t2.%s %s d.%s AND %s"
								  " UNION ALL "
								  "SELECT t2.ctid FROM %s t2 WHERE t2.%s IS NULL AND d.%s IS NULL AND %s",
								  target, col, op, col, same,
								  target, col, col, same);
		}
		else
			candidates = psprintf("SELECT t2.ctid AS tid FROM %s t2 WHERE %s",
								  target, same);
		rp->delete_rows =
			kappa_keep_plan(psprintf("DELETE FROM %s t WHERE t.ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
								   "SELECT m.tid FROM (SELECT x.tid, pg_catalog.row_number() OVER (PARTITION BY d.ctid) AS rn,"
								   " -d._kappa_w AS k FROM %s d CROSS JOIN LATERAL (%s) x"
								   " WHERE d._kappa_w OPERATOR(pg_catalog.<) 0) m"
								   " WHERE m.rn OPERATOR(pg_catalog.<=) m.k))",
								   target, dc, candidates));
		rp->insert_rows =
			kappa_keep_plan(psprintf("INSERT INTO %s SELECT %s FROM %s d"
								   " CROSS JOIN LATERAL pg_catalog.generate_series(1, d._kappa_w::integer) g"
								   " WHERE d._kappa_w OPERATOR(pg_catalog.>) 0",
								   target, kappa_quoted_list(cols, "d."), dc));
	}
}

/* The types of view id's scratch table k's columns keys. */
static List *
key_types(int id, List *keys)
{
	Oid			krelid = get_relname_relid("k", get_namespace_oid(psprintf("kappa_v%d", id),
																   false));
	List	   *keytypes = NIL;
	ListCell   *lc;

	if (!OidIsValid(krelid))
		elog(ERROR, "internal tables of derived view %d are missing", id);
	foreach(lc, keys)
		keytypes = lappend_oid(keytypes, get_atttype(krelid, get_attnum(krelid, lfirst(lc))));
	return keytypes;
}

/*
 * The statements that recompute the groups whose keys are in k.  A view
 * maintained algebraically writes their rows from its state instead
 * (build_rules prepares those statements), and needs no query for them.
 */
static void
prepare_group_recompute(RulePlan *rp, List *keys, const char *schema,
						const char *target, const char *canonical)
{
	char	   *k = psprintf("%s.k", schema);
	List	   *keytypes = key_types(rp->id, keys);

	rp->delete_keys = kappa_prepare_keyed(psprintf("DELETE FROM %s t", target),
										  "t", keys, keytypes, k);
	if (!rp->algebraic)
	{
		rp->insert_keys = kappa_prepare_insert_keys(target, canonical, keys, keytypes, k);
		rp->insert_null_keys = kappa_prepare_insert_null_keys(target, canonical, keys, k);
	}
	rp->has_null_keys = kappa_keep_plan(psprintf("SELECT EXISTS (SELECT 1 FROM %s n WHERE %s)",
											   k, kappa_any_null(keys, "n")));
	rp->delete_null_keys = kappa_keep_plan(psprintf("DELETE FROM %s t USING (SELECT DISTINCT * FROM %s n WHERE %s) n WHERE %s",
												  target, k, kappa_any_null(keys, "n"),
												  kappa_match_keys(keys, "t", "IS NOT DISTINCT FROM", "n")));
	rp->clear_k = kappa_keep_plan(psprintf("DELETE FROM %s", k));
}

/*
 * The statement that consolidates a source's delta d: a row updated many
 * times in a batch leaves only its first old and its last new image, which
 * keeps the terms' joins in proportion to the rows changed, not to the
 * number of changes.  Rows are the same when their text is.
 */
static SPIPlanPtr
consolidate_sql(Oid drelid, const char *d)
{
	StringInfoData cols;
	StringInfoData grouping;
	Relation	rel = table_open(drelid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);

	/* d_<n>'s source columns (a source may have gained others since) */
	initStringInfo(&cols);
	initStringInfo(&grouping);
	for (int i = 0; i < desc->natts - 1; i++)
	{
		const char *name = quote_identifier(NameStr(TupleDescAttr(desc, i)->attname));

		if (TupleDescAttr(desc, i)->attisdropped)
			continue;
		appendStringInfo(&cols, "%s%s", cols.len > 0 ? ", " : "", name);
		appendStringInfo(&grouping, "%s%s", grouping.len > 0 ? ", " : "",
						 column_text(drelid, NameStr(TupleDescAttr(desc, i)->attname), NULL));
	}
	table_close(rel, AccessShareLock);
	return kappa_keep_plan(psprintf("WITH gone AS (DELETE FROM %s RETURNING *)"
									" INSERT INTO %s (%s, _kappa_w) SELECT %s, _kappa_sum::pg_catalog.int4 FROM ("
									"SELECT DISTINCT ON (%s) %s, pg_catalog.sum(_kappa_w) OVER (PARTITION BY %s) AS _kappa_sum"
									" FROM gone ORDER BY %s) s WHERE s._kappa_sum OPERATOR(pg_catalog.<>) 0",
									d, d, cols.data, cols.data, grouping.data, cols.data,
									grouping.data, grouping.data));
}

/* semi_columns_walker's state: the columns of one source read */
typedef struct SemiColumns
{
	KappaViewDef *def;
	KappaSemiJoin *semi;
	int			srcno;
	int			natts;
	bool	   *read;
	bool		whole;			/* a whole row is read */
} SemiColumns;

/*
 * Marks the columns of source cxt->srcno that a subquery's condition reads,
 * as finish_semijoins (view_compiler.c) leaves it: a condition of the outer
 * query, its table appended to the range table (at nrtes + 1).
 */
static bool
semi_columns_walker(Node *node, SemiColumns *cxt)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;
		int			srcno = -1;

		if (var->varlevelsup == 0 && var->varno == cxt->def->nrtes + 1)
			srcno = cxt->semi->srcno;
		else if (var->varlevelsup == 0 && var->varno >= 1 && var->varno <= cxt->def->nrtes)
			srcno = cxt->def->rte_source[var->varno];
		if (srcno != cxt->srcno)
			return false;
		if (var->varattno == InvalidAttrNumber || var->varattno > cxt->natts)
			cxt->whole = true;
		else if (var->varattno > 0)
			cxt->read[var->varattno - 1] = true;
		return false;
	}
	return expression_tree_walker(node, semi_columns_walker, cxt);
}

/*
 * The columns of source srcno (natts attributes) that the view's query
 * reads anywhere: output, join and WHERE conditions, GROUP BY, HAVING, the
 * conditions of its subqueries (and the left side of an IN), and the
 * source's key.  A delta carries only those (the others are left null in
 * d_<n>), so an update that changes only columns the view does not read
 * cancels out with its old image and costs the terms nothing.  NULL when
 * the query reads the whole row, or has parts this does not look into:
 * then every column is kept.
 */
bool *
kappa_columns_read(KappaViewDef *def, int srcno, int natts)
{
	Query	   *query = def->query;
	bool	   *read;
	List	   *vars;
	ListCell   *lc;

	if (query->cteList != NIL || query->setOperations != NULL)
		return NULL;
	vars = pull_var_clause(flatten_join_alias_vars(query, (Node *) query->targetList),
						   PVC_RECURSE_AGGREGATES | PVC_RECURSE_WINDOWFUNCS |
						   PVC_RECURSE_PLACEHOLDERS);
	vars = list_concat(vars,
					   pull_var_clause(flatten_join_alias_vars(query, (Node *) query->jointree),
									   PVC_RECURSE_AGGREGATES | PVC_RECURSE_PLACEHOLDERS));
	vars = list_concat(vars,
					   pull_var_clause(flatten_join_alias_vars(query, query->havingQual),
									   PVC_RECURSE_AGGREGATES | PVC_RECURSE_PLACEHOLDERS));
	read = palloc0(sizeof(bool) * natts);
	foreach(lc, vars)
	{
		Var		   *var = lfirst(lc);

		if (!IsA(var, Var) || var->varno < 1 || var->varno > def->nrtes ||
			def->rte_source[var->varno] != srcno)
			continue;
		if (var->varattno == InvalidAttrNumber || var->varattno > natts)
		{
			pfree(read);
			return NULL;		/* the whole row */
		}
		if (var->varattno > 0)
			read[var->varattno - 1] = true;
	}

	/*
	 * A subquery's vars are not among the above (pull_var_clause leaves
	 * sublinks' queries alone): its condition, as check_sublinks keeps it.
	 * Its table's key too, as the outer tables' are read for their joins.
	 */
	foreach(lc, def->semijoins)
	{
		KappaSemiJoin *semi = lfirst(lc);
		SemiColumns cxt = {def, semi, srcno, natts, read, false};
		ListCell   *lk;

		(void) semi_columns_walker(semi->cond, &cxt);
		if (cxt.whole)
		{
			pfree(read);
			return NULL;
		}
		if (semi->srcno != srcno)
			continue;
		foreach(lk, (List *) list_nth(def->source_keys, srcno))
		{
			int			attno = lfirst_int(lk);

			if (attno > 0 && attno <= natts)
				read[attno - 1] = true;
		}
	}
	return read;
}

/* join_columns' walker: marks the columns of source srcno in context */
typedef struct JoinColumns
{
	KappaViewDef *def;
	int			srcno;
	int			natts;
	bool	   *joined;
	bool		any;
} JoinColumns;

static void
mark_join_var(JoinColumns *jc, Var *var)
{
	if (var->varlevelsup == 0 && var->varno >= 1 && var->varno <= jc->def->nrtes &&
		jc->def->rte_source[var->varno] == jc->srcno &&
		var->varattno > 0 && var->varattno <= jc->natts)
		jc->joined[var->varattno - 1] = jc->any = true;
}

static bool
join_columns_walker(Node *node, JoinColumns *jc)
{
	if (node == NULL || IsA(node, Query))
		return false;
	if (IsA(node, OpExpr) && list_length(((OpExpr *) node)->args) == 2)
	{
		OpExpr	   *op = (OpExpr *) node;
		Node	   *l = linitial(op->args);
		Node	   *r = lsecond(op->args);

		while (IsA(l, RelabelType))
			l = (Node *) ((RelabelType *) l)->arg;
		while (IsA(r, RelabelType))
			r = (Node *) ((RelabelType *) r)->arg;
		if (IsA(l, Var) && IsA(r, Var) && ((Var *) l)->varno != ((Var *) r)->varno &&
			op_hashjoinable(op->opno, exprType(l)))
		{
			mark_join_var(jc, (Var *) l);
			mark_join_var(jc, (Var *) r);
		}
		return false;
	}
	return expression_tree_walker(node, join_columns_walker, jc);
}

/*
 * The columns of source srcno that its entries are joined on by equality
 * with another entry (WHERE and ON), whose distinct values in a delta the
 * worker counts for the planner (delta_sizes.c); NULL when there are none.
 */
static bool *
join_columns(KappaViewDef *def, int srcno, int natts)
{
	JoinColumns jc;

	jc.def = def;
	jc.srcno = srcno;
	jc.natts = natts;
	jc.joined = palloc0(sizeof(bool) * Max(natts, 1));
	jc.any = false;
	join_columns_walker(flatten_join_alias_vars(def->query, (Node *) def->query->jointree), &jc);
	if (!jc.any)
	{
		pfree(jc.joined);
		return NULL;
	}
	return jc.joined;
}

/*
 * Can the function raise an error for some input, or say something of its
 * arguments other than by its result?  PostgreSQL's leakproof marking,
 * and numeric's comparisons, which are not marked but raise no error for
 * any numeric (NaN and the infinities compare as values).
 */
static bool
leaky_function(Oid funcid, void *context)
{
	switch (funcid)
	{
		case F_NUMERIC_EQ:
		case F_NUMERIC_NE:
		case F_NUMERIC_LT:
		case F_NUMERIC_LE:
		case F_NUMERIC_GT:
		case F_NUMERIC_GE:
			return false;
		default:
			return !get_func_leakproof(funcid);
	}
}

/*
 * Could the condition raise an error on some row?  Only plain expression
 * nodes whose functions are not leaky (leaky_function) are taken as safe,
 * as contain_leaked_vars takes them.
 */
static bool
may_raise_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_Var:
		case T_Const:
		case T_BoolExpr:
		case T_NullTest:
		case T_BooleanTest:
		case T_RelabelType:
		case T_CollateExpr:
		case T_ArrayExpr:
		case T_CaseExpr:
		case T_CaseWhen:
		case T_CaseTestExpr:
		case T_CoalesceExpr:
		case T_List:
			break;
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:
		case T_ScalarArrayOpExpr:
		case T_FuncExpr:
			if (check_functions_in_node(node, leaky_function, context))
				return true;
			break;
		default:
			return true;
	}
	return expression_tree_walker(node, may_raise_walker, context);
}

/*
 * The conditions of the view's query on source srcno alone (WHERE and
 * inner join conditions that read no other entry, read no system column
 * and call only functions that raise no error, whatever the row, where
 * the view's own plan might test another condition first: may_raise_walker),
 * planned, to be checked in memory
 * against the rows of its delta: every term applies them to those rows,
 * so a row that fails one adds nothing to any term (a selective filter
 * then keeps the delta, and the terms' joins, small).  The source's rows
 * as they were before the batch (o_<n>, the live rows with the delta
 * undone) then differ from the truth only in rows that fail them too.  NIL
 * when the source is read by several entries, or the view keeps a LEFT
 * JOIN's rows by key (whose terms leave the WHERE clause out).
 */
static List *
source_filters(KappaViewDef *def, int srcno)
{
	Query	   *query = def->query;
	List	   *conds = NIL;
	List	   *filters = NIL;
	int			rt = 0;
	ListCell   *lc;

	if (def->preserved_rt > 0 || query->hasSubLinks || query->cteList != NIL ||
		query->setOperations != NULL)
		return NIL;
	for (int r = 1; r <= def->nrtes; r++)
	{
		if (def->rte_source[r] != srcno)
			continue;
		if (rt > 0)
			return NIL;
		rt = r;
	}
	if (rt == 0)
		return NIL;
	conds = kappa_join_conditions(flatten_join_alias_vars(query, (Node *) query->jointree));
	foreach(lc, conds)
	{
		Node	   *cond = lfirst(lc);

		if (condition_on_entry(cond, rt))
			filters = lappend(filters, expression_planner((Expr *) copyObject(cond)));
	}
	return filters;
}

/* Build view id's statements from its catalog row (SPI connected). */
static RulePlan *
build_rules(int id)
{
	RulePlan   *rp;
	bool		found;
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	tupdesc;
	Oid			relid;
	char	   *canonical;
	KappaViewDef *def;
	char	   *schemaname = psprintf("kappa_v%d", id);
	char	   *schema = pstrdup(quote_identifier(schemaname));
	Oid			nsp;
	char	   *target;
	Oid		   *orelids;
	KappaOwnerScope scope;
	MemoryContext oldcxt;
	List	   *sources = NIL;
	KappaAggSql *agg = NULL;
	Query	   *base;

	if (SPI_execute(psprintf("SELECT relid, canonical, sources FROM kappa.views"
							 " WHERE id OPERATOR(pg_catalog.=) %d", id),
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "derived view %d does not exist", id);
	tup = SPI_tuptable->vals[0];
	tupdesc = SPI_tuptable->tupdesc;
	relid = DatumGetObjectId(SPI_getbinval(tup, tupdesc, 1, &isnull));
	canonical = SPI_getvalue(tup, tupdesc, 2);
	sources = kappa_oid_array_list(SPI_getbinval(tup, tupdesc, 3, &isnull));

	if (rule_plans == NULL)
	{
		HASHCTL		ctl;
		static bool registered = false;

		if (!registered)
		{
			CacheRegisterRelcacheCallback(rules_relcache_callback, (Datum) 0);
			registered = true;
		}
		ctl.keysize = sizeof(int);
		ctl.entrysize = sizeof(RulePlan);
		ctl.hcxt = kappa_plans_context();
		rule_plans = hash_create("pg_kappa rule plans", 16, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	rp = hash_search(rule_plans, &id, HASH_ENTER, &found);
	memset(((char *) rp) + sizeof(int), 0, sizeof(RulePlan) - sizeof(int));
	rp->relid = relid;
	rp->owner = kappa_view_owner(relid);

	/*
	 * Everything from here parses the view's code (its query, the
	 * statements around it): as its owner, security-restricted, since
	 * parsing alone can run functions of the owner's (a domain's CHECK on
	 * a literal of the domain's array type).
	 */
	kappa_owner_enter(rp->owner, &scope);
	def = kappa_compile_view(canonical, 2);
	kappa_check_sources_unchanged(def, sources, kappa_rel_label(relid));
	target = kappa_qualified_name(relid);
	nsp = get_namespace_oid(schemaname, false);
	base = def->query;

	oldcxt = MemoryContextSwitchTo(kappa_plans_context());
	rp->nsources = list_length(def->sources);
	rp->sources = palloc(sizeof(Oid) * rp->nsources);
	rp->drelids = palloc(sizeof(Oid) * rp->nsources);
	rp->read = palloc(sizeof(bool *) * rp->nsources);
	rp->read_natts = palloc(sizeof(int) * rp->nsources);
	rp->filters = palloc(sizeof(List *) * rp->nsources);
	rp->joined = palloc(sizeof(bool *) * rp->nsources);
	rp->clear_d = palloc(sizeof(SPIPlanPtr) * rp->nsources);
	rp->d_filled = palloc(sizeof(bool) * rp->nsources);
	rp->consolidate_d = palloc(sizeof(SPIPlanPtr) * rp->nsources);
	orelids = palloc(sizeof(Oid) * rp->nsources);
	for (int i = 0; i < rp->nsources; i++)
	{
		rp->sources[i] = list_nth_oid(def->sources, i);
		{
			Relation	rel = table_open(rp->sources[i], AccessShareLock);

			rp->read_natts[i] = RelationGetNumberOfAttributes(rel);
			table_close(rel, AccessShareLock);
		}
		rp->read[i] = kappa_columns_read(def, i, rp->read_natts[i]);
		rp->joined[i] = join_columns(def, i, rp->read_natts[i]);
		rp->filters[i] = source_filters(def, i);
		rp->drelids[i] = get_relname_relid(psprintf("d_%d", i), nsp);
		orelids[i] = get_relname_relid(psprintf("o_%d", i), nsp);
		if (!OidIsValid(rp->drelids[i]) || !OidIsValid(orelids[i]))
			elog(ERROR, "internal tables of derived view %d are missing", id);
		rp->clear_d[i] = kappa_keep_plan(psprintf("DELETE FROM %s.d_%d", schema, i));
		rp->d_filled[i] = true;	/* not known to be empty */
		rp->consolidate_d[i] = consolidate_sql(rp->drelids[i], psprintf("%s.d_%d", schema, i));
	}

	rp->grouped = def->query->groupClause != NIL;
	rp->whole = !rp->grouped && def->query->hasAggs;
	if (rp->grouped || rp->whole)
	{
		Query	   *proj = kappa_agg_projection(def);

		/* maintained algebraically when its state table is there */
		if (proj && OidIsValid(get_relname_relid("g", nsp)))
		{
			agg = kappa_agg_sql_weighted(def, schema, target,
										 kappa_deparse_query(copyObject(proj), NULL));
			base = proj;
		}
	}
	rp->algebraic = agg != NULL;
	rp->outer = def->preserved_rt > 0;
	rp->keys_only = (rp->grouped && !agg) || rp->outer;
	if (agg)
	{
		rp->term_head = agg->partial_head;
		rp->term_tail = agg->partial_tail;
	}
	else
	{
		rp->term_head = psprintf("INSERT INTO %s.%s SELECT * FROM (", schema,
								 rp->keys_only ? "k" : "dq");
		rp->term_tail = ") s";
	}
	rp->nrtes = def->nrtes;
	rp->rte_source = palloc(sizeof(int) * (def->nrtes + 1));
	memcpy(rp->rte_source, def->rte_source, sizeof(int) * (def->nrtes + 1));
	rp->base = copyObject(base);
	rp->frelids = palloc0(sizeof(Oid) * rp->nsources);
	rp->fkeys = palloc0(sizeof(AttrNumber *) * rp->nsources);
	rp->nfkeys = palloc0(sizeof(int) * rp->nsources);
	rp->clear_f = palloc0(sizeof(SPIPlanPtr) * rp->nsources);
	rp->fdescs = palloc0(sizeof(TupleDesc) * rp->nsources);
	if (!rp->outer)
	{
		/* f_<n> where it fits (views made before 0.9 have none) */
		for (int i = 0; i < rp->nsources; i++)
		{
			rp->fkeys[i] = kappa_failed_keys_table(rp->sources[i],
												   get_relname_relid(psprintf("f_%d", i), nsp),
												   &rp->nfkeys[i]);
			if (rp->fkeys[i] != NULL && rp->filters[i] != NIL)
				rp->frelids[i] = get_relname_relid(psprintf("f_%d", i), nsp);
		}
		rp->key_joins = kappa_key_joins(rp->base, rp->rte_source, rp->nrtes, rp->drelids,
										rp->frelids);
		/* only an entry with one partner, whose delta can be fenced */
		for (int r = 1; r <= rp->nrtes && r <= 64; r++)
		{
			KappaKeyJoin *kj = rp->key_joins[r];

			if (kj != NULL &&
				((kj->partners & (kj->partners - 1)) != 0 ||
				 !fence_fits(rp, pg_rightmost_one_pos64(kj->partners) + 1)))
				rp->key_joins[r] = NULL;
		}
		/* filled only for sources some entry is reached through by key */
		for (int i = 0; i < rp->nsources; i++)
		{
			bool		keyed = false;

			for (int r = 1; r <= rp->nrtes && r <= 64; r++)
				if (rp->rte_source[r] == i && rp->key_joins[r] != NULL)
					keyed = true;
			if (!keyed)
				rp->frelids[i] = InvalidOid;
			if (OidIsValid(rp->frelids[i]))
			{
				Relation	frel = table_open(rp->frelids[i], AccessShareLock);

				rp->fdescs[i] = CreateTupleDescCopy(RelationGetDescr(frel));
				table_close(frel, AccessShareLock);
				rp->clear_f[i] = kappa_keep_plan(psprintf("DELETE FROM %s.f_%d", schema, i));
			}
		}
	}
	rp->terms = palloc0(sizeof(RuleTerm) * (def->nrtes + 1 + list_length(def->semijoins)));
	for (int r = 1; r <= def->nrtes && (!rp->whole || agg); r++)
	{
		RuleTerm   *t;
		char	   *term;

		if (def->rte_source[r] < 0)
			continue;
		t = &rp->terms[rp->nterms++];
		t->srcno = def->rte_source[r];
		/* (a whole view without its state has no terms: it is recomputed) */
		if (rp->outer)
			term = outer_key_sql(def, r, rp->drelids);
		else
			term = term_sql(def, base, r, rp->drelids, orelids, rp->filters, rp->keys_only);
		t->plan = kappa_keep_plan(psprintf("%s%s%s", rp->term_head, term, rp->term_tail));
	}
	for (int j = 0; j < list_length(def->semijoins); j++)
	{
		KappaSemiJoin *semi = list_nth(def->semijoins, j);
		RuleTerm   *t = &rp->terms[rp->nterms++];

		t->srcno = semi->srcno;
		t->plan = kappa_keep_plan(psprintf("%s%s%s", rp->term_head,
										   semi_key_sql(def, semi, rp->drelids),
										   rp->term_tail));
	}
	if (rp->grouped || rp->outer)
		prepare_group_recompute(rp, kappa_recompute_key(def), schema, target, canonical);
	if (agg)
	{
		char	   *into = psprintf("%s.g (%s)", schema, agg->state_columns);
		char	   *k = psprintf("%s.k", schema);

		rp->merge = kappa_keep_plan(agg->merge);
		rp->take_dirty = kappa_keep_plan(agg->take_dirty);
		if (rp->grouped)
		{
			rp->state_keys = kappa_prepare_insert_keys(into, agg->state_query, def->key_columns,
													   key_types(rp->id, def->key_columns), k);
			rp->state_null_keys = kappa_prepare_insert_null_keys(into, agg->state_query,
																 def->key_columns, k);
			rp->view_keys = kappa_keep_plan(psprintf("%s AND (%s) IN (SELECT %s FROM %s n WHERE NOT (%s))",
													 agg->fill_view,
													 kappa_quoted_list(def->key_columns, "g."),
													 kappa_quoted_list(def->key_columns, "n."),
													 k, kappa_any_null(def->key_columns, "n")));
			rp->view_null_keys = kappa_keep_plan(psprintf("%s AND EXISTS (SELECT 1 FROM %s n WHERE (%s) AND %s)",
														  agg->fill_view, k,
														  kappa_any_null(def->key_columns, "n"),
														  kappa_match_keys(def->key_columns, "g",
																		   "IS NOT DISTINCT FROM", "n")));
		}
		rp->clear_partials = kappa_keep_plan(agg->clear_partials);
		rp->clear_state = kappa_keep_plan(agg->clear_state);
		rp->fill_state = kappa_keep_plan(agg->fill_state);
	}
	if (!rp->grouped && !rp->whole && !rp->outer)
		prepare_row_apply(rp, def, schema, target);
	rp->delete_all = kappa_keep_plan(psprintf("DELETE FROM %s", target));
	rp->insert_all = kappa_keep_plan(psprintf("INSERT INTO %s SELECT * FROM (%s) q", target, canonical));
	kappa_owner_leave(&scope);
	MemoryContextSwitchTo(oldcxt);
	return rp;
}

/* build_rules as kappa_cached_plan wants it */
static void *
build_rules_entry(int id)
{
	return build_rules(id);
}

static RulePlan *
get_rules(int id)
{
	return (RulePlan *) kappa_cached_plan(&rule_plans, id, build_rules_entry);
}

/* A hash of a value's bytes (values equal byte for byte hash alike). */
static inline uint32
value_hash(Form_pg_attribute att, Datum value)
{
	if (att->attbyval)
		return hash_bytes((const unsigned char *) &value, sizeof(Datum));
	if (att->attlen == -1)
		return hash_bytes((const unsigned char *) DatumGetPointer(value),
						  VARSIZE_ANY(DatumGetPointer(value)));
	if (att->attlen == -2)
		return hash_bytes((const unsigned char *) DatumGetPointer(value),
						  strlen(DatumGetCString(value)));
	return hash_bytes((const unsigned char *) DatumGetPointer(value), att->attlen);
}

/* A hash of a row image's first n values (equal images hash alike). */
static uint32
image_hash(TupleDesc desc, int n, Datum *values, bool *nulls)
{
	uint32		h = 0;

	for (int i = 0; i < n; i++)
		h = hash_combine(h, nulls[i] ? 0x9e3779b9 :
						 value_hash(TupleDescAttr(desc, i), values[i]));
	return h;
}

static int
uint32_cmp(const void *a, const void *b)
{
	uint32		x = *(const uint32 *) a;
	uint32		y = *(const uint32 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * sort_hashes(uint32 *, size_t): an ascending sort of hashes, as qsort with
 * uint32_cmp would, without a call through a pointer per comparison (a
 * batch sorts one hash per row image).
 */
#define ST_SORT sort_hashes
#define ST_ELEMENT_TYPE uint32
#define ST_COMPARE(a, b) (*(a) < *(b) ? -1 : *(a) > *(b) ? 1 : 0)
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/* Is h among the n sorted hashes? */
static bool
hash_among(uint32 h, const uint32 *sorted, int n)
{
	int			lo = 0;
	int			hi = n;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (sorted[mid] < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && sorted[lo] == h;
}

/*
 * The hashes found among both new images (plus) and old images (minus),
 * sorted, without duplicates.  The old images' hashes go into an open
 * addressing table (a slot holds a hash with bit 32 set, and bit 33 once
 * the hash is found among the new images too), which the new images' hashes
 * are looked up in: a batch's images take one step each, not a sort.  A
 * table that would take more than work_mem (a transaction that updated
 * millions of rows) is not made: both lists are sorted in place and merged.
 */
#define HASH_SLOT_USED (UINT64CONST(1) << 32)
#define HASH_SLOT_SHARED (UINT64CONST(1) << 33)

static uint32 *
shared_hashes(uint32 *plus, int nplus, uint32 *minus, int nminus, int *nshared)
{
	uint32	   *shared = palloc(sizeof(uint32) * Max(Min(nplus, nminus), 1));
	uint64		nslots = 16;
	uint64	   *slots;

	*nshared = 0;
	while (nslots < (uint64) nminus * 2)
		nslots *= 2;
	if (nslots * sizeof(uint64) > (uint64) work_mem * 1024)
	{
		int			i = 0;
		int			j = 0;

		sort_hashes(plus, nplus);
		sort_hashes(minus, nminus);
		while (i < nplus && j < nminus)
		{
			if (plus[i] < minus[j])
				i++;
			else if (plus[i] > minus[j])
				j++;
			else
			{
				if (*nshared == 0 || shared[*nshared - 1] != plus[i])
					shared[(*nshared)++] = plus[i];
				i++;
				j++;
			}
		}
		return shared;
	}

	slots = palloc0(sizeof(uint64) * nslots);
	for (int j = 0; j < nminus; j++)
	{
		uint64		i = minus[j] & (nslots - 1);

		while (slots[i] != 0 && (uint32) slots[i] != minus[j])
			i = (i + 1) & (nslots - 1);
		slots[i] = HASH_SLOT_USED | minus[j];
	}
	for (int j = 0; j < nplus; j++)
	{
		uint64		i = plus[j] & (nslots - 1);

		while (slots[i] != 0 && (uint32) slots[i] != plus[j])
			i = (i + 1) & (nslots - 1);
		if (slots[i] != 0 && (slots[i] & HASH_SLOT_SHARED) == 0)
		{
			slots[i] |= HASH_SLOT_SHARED;
			shared[(*nshared)++] = plus[j];
		}
	}
	pfree(slots);
	sort_hashes(shared, *nshared);
	return shared;
}

/*
 * Reads the row images of a source's batch buffer that a view has not
 * seen, whole: a new image's unchanged TOASTed value (not in the WAL) is
 * the old image's, which REPLICA IDENTITY FULL puts in the same change.
 * Images are laid out as d_<n> is: its columns, which a column added to
 * the source after the view was made is not among (and which the view does
 * not read), then the weight.
 */
typedef struct ImageReader
{
	KappaSourceBuffer *buf;
	Oid			srcrelid;
	XLogRecPtr	applied;
	TupleTableSlot *slot;
	int			n;				/* the buffer's source attributes */
	int			out;			/* d_<n>'s, before its weight */
	Datum	   *values;			/* the image read, out + 1 for the weight */
	bool	   *nulls;
	bool		is_new;
	XLogRecPtr	lsn;			/* its commit LSN */
	TupleTableSlot *old_slot;	/* a copy of the last old image: the buffer
								 * may reuse its memory at the next read */
	Datum	   *old_values;		/* its values */
	bool	   *old_nulls;
	int64		old_seq;
	bool	   *kept;			/* per column of d_<n>: read by the view (the
								 * others are null) */
} ImageReader;

static void
image_reader_start(ImageReader *r, KappaSourceBuffer *buf, Oid srcrelid,
				   XLogRecPtr applied, const bool *read, int read_natts,
				   TupleDesc ddesc)
{
	int			n = buf->srcnatts;
	int			out = ddesc->natts - 1;

	r->buf = buf;
	r->srcrelid = srcrelid;
	r->applied = applied;
	r->n = n;
	r->out = out;
	r->slot = MakeSingleTupleTableSlot(buf->desc, &TTSOpsMinimalTuple);
	r->old_slot = MakeSingleTupleTableSlot(buf->desc, &TTSOpsMinimalTuple);
	r->values = palloc(sizeof(Datum) * (Max(n, out) + 1));
	r->nulls = palloc(sizeof(bool) * (Max(n, out) + 1));
	r->kept = palloc(sizeof(bool) * Max(out, 1));
	for (int i = 0; i < out; i++)
		r->kept[i] = !TupleDescAttr(ddesc, i)->attisdropped &&
			(read == NULL || (i < read_natts && read[i]));
	r->old_values = palloc(sizeof(Datum) * n);
	r->old_nulls = palloc(sizeof(bool) * n);
	r->old_seq = -1;
	tuplestore_rescan(buf->rows);
}

static void
image_reader_end(ImageReader *r)
{
	ExecDropSingleTupleTableSlot(r->slot);
	ExecDropSingleTupleTableSlot(r->old_slot);
}

/*
 * The next image into r (values, nulls, is_new, lsn), or false at the end.
 * An update or delete without a whole old image means the table's replica
 * identity is not FULL, and the view cannot be maintained.
 */
static bool
image_reader_next(ImageReader *r)
{
	TupleTableSlot *slot = r->slot;
	int			n = r->n;
	int			out = r->out;

	while (tuplestore_gettupleslot(r->buf->rows, true, false, slot))
	{
		int64		seq;

		slot_getallattrs(slot);
		r->lsn = (XLogRecPtr) DatumGetInt64(slot->tts_values[n + 2]);
		if (r->lsn <= r->applied)
			continue;
		seq = DatumGetInt64(slot->tts_values[n]);
		r->is_new = DatumGetBool(slot->tts_values[n + 1]);
		memcpy(r->values, slot->tts_values, sizeof(Datum) * n);
		memcpy(r->nulls, slot->tts_isnull, sizeof(bool) * n);

		if (!r->is_new)
		{
			/* an old image with a column left out is not a whole row */
			if (!slot->tts_isnull[n + 3])
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("old row images of source table %s are not complete",
								kappa_qualified_name(r->srcrelid)),
						 errdetail("The view takes the whole old rows of updates and deletes from the WAL, which only REPLICA IDENTITY FULL writes."),
						 errhint("Run ALTER TABLE %s REPLICA IDENTITY FULL, then build the view again with kappa.alter_view and rebuild => true.",
								 kappa_qualified_name(r->srcrelid))));
			ExecCopySlot(r->old_slot, slot);
			slot_getallattrs(r->old_slot);
			memcpy(r->old_values, r->old_slot->tts_values, sizeof(Datum) * n);
			memcpy(r->old_nulls, r->old_slot->tts_isnull, sizeof(bool) * n);
			r->old_seq = seq;
		}
		else if (!slot->tts_isnull[n + 3])
		{
			ArrayType  *arr = DatumGetArrayTypeP(slot->tts_values[n + 3]);
			Datum	   *cols;
			int			ncols;

			if (r->old_seq != seq)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("an update of source table \"%s\" carries no old row image",
								get_rel_name(r->srcrelid)),
						 errdetail("Its unchanged TOASTed values cannot be found in the WAL."),
						 errhint("Set ALTER TABLE %s REPLICA IDENTITY FULL, then drop the view and create it again.",
								 quote_identifier(get_rel_name(r->srcrelid)))));
			deconstruct_array(arr, INT2OID, sizeof(int16), true, TYPALIGN_SHORT,
							  &cols, NULL, &ncols);
			for (int c = 0; c < ncols; c++)
			{
				int			attno = DatumGetInt16(cols[c]) - 1;

				r->values[attno] = r->old_values[attno];
				r->nulls[attno] = r->old_nulls[attno];
			}
		}
		for (int i = 0; i < out; i++)
			if (!r->kept[i] || i >= n)
			{
				r->values[i] = (Datum) 0;
				r->nulls[i] = true;
			}
		r->values[out] = Int32GetDatum(r->is_new ? 1 : -1);
		r->nulls[out] = false;
		return true;
	}
	return false;
}

/* An image held back because it may cancel out with one of opposite sign. */
typedef struct HeldImage
{
	uint32		hash;
	int			order;			/* in the batch */
	HeapTuple	tuple;			/* with the weight, d_<n>'s shape */
	bool		is_new;
	bool		cancelled;
} HeldImage;

/* by hash, then in the batch's order */
static int
held_image_cmp(const void *a, const void *b)
{
	const HeldImage *x = a;
	const HeldImage *y = b;
	int			c = uint32_cmp(&x->hash, &y->hash);

	return c != 0 ? c : x->order - y->order;
}

/* Are two held images the same row (the same values, byte for byte)? */
static bool
same_image(TupleDesc ddesc, int n, HeldImage *a, HeldImage *b)
{
	for (int i = 1; i <= n; i++)
	{
		Form_pg_attribute att = TupleDescAttr(ddesc, i - 1);
		bool		anull;
		bool		bnull;
		Datum		av = heap_getattr(a->tuple, i, ddesc, &anull);
		Datum		bv = heap_getattr(b->tuple, i, ddesc, &bnull);

		if (anull != bnull)
			return false;
		if (!anull && !datumIsEqual(av, bv, att->attbyval, att->attlen))
			return false;
	}
	return true;
}

/*
 * Images of a batch are held back to cancel out in memory up to work_mem
 * (their tuples and entries); past it, they go to d_<n> and the SQL
 * consolidation removes what cancels.
 */
#define HELD_IMAGE_BYTES(tup) (sizeof(HeldImage) + HEAPTUPLESIZE + (tup)->t_len)

/*
 * Rows on their way into d_<n>, inserted in groups (heap_multi_insert, as
 * COPY does: a page is locked once for many rows), without the ring of a
 * bulk load, since the terms read them right after.
 */
#define DELTA_INSERT_ROWS 256

typedef struct DeltaWriter
{
	Relation	rel;
	BulkInsertState bistate;
	CommandId	cid;
	TupleTableSlot *slots[DELTA_INSERT_ROWS];
	int			nslots;
} DeltaWriter;

static void
delta_writer_flush(DeltaWriter *w)
{
	if (w->nslots == 0)
		return;
	heap_multi_insert(w->rel, w->slots, w->nslots, w->cid, 0, w->bistate);
	for (int i = 0; i < w->nslots; i++)
		ExecClearTuple(w->slots[i]);
	w->nslots = 0;
}

static void
delta_writer_start(DeltaWriter *w, Relation rel)
{
	w->rel = rel;
	w->bistate = GetBulkInsertState();
	FreeAccessStrategy(w->bistate->strategy);
	w->bistate->strategy = NULL;
	w->cid = GetCurrentCommandId(true);
	memset(w->slots, 0, sizeof(w->slots));	/* made as rows come */
	w->nslots = 0;
}

/* Queue tup (the writer frees it once inserted, if should_free). */
static void
delta_writer_put(DeltaWriter *w, HeapTuple tup, bool should_free)
{
	if (w->slots[w->nslots] == NULL)
		w->slots[w->nslots] = MakeSingleTupleTableSlot(RelationGetDescr(w->rel),
													   &TTSOpsHeapTuple);
	ExecStoreHeapTuple(tup, w->slots[w->nslots++], should_free);
	if (w->nslots == DELTA_INSERT_ROWS)
		delta_writer_flush(w);
}

static void
delta_writer_end(DeltaWriter *w)
{
	delta_writer_flush(w);
	FreeBulkInsertState(w->bistate);
	for (int i = 0; i < DELTA_INSERT_ROWS && w->slots[i] != NULL; i++)
		ExecDropSingleTupleTableSlot(w->slots[i]);
}

/* The source's filters (source_filters), checked against rows of d_<n> */
typedef struct DeltaFilter
{
	ExprState  *qual;			/* NULL: every row passes */
	ExprContext *econtext;
	TupleTableSlot *slot;
} DeltaFilter;

static void
delta_filter_start(DeltaFilter *f, List *filters, TupleDesc ddesc)
{
	f->qual = NULL;
	if (filters == NIL)
		return;
	f->qual = ExecInitQual(filters, NULL);
	f->econtext = CreateStandaloneExprContext();
	f->slot = MakeSingleTupleTableSlot(ddesc, &TTSOpsVirtual);
	f->econtext->ecxt_scantuple = f->slot;
}

/* Does the row of d_<n> (values and nulls) meet the filters? */
static bool
delta_filter_passes(DeltaFilter *f, Datum *values, bool *nulls)
{
	TupleTableSlot *slot = f->slot;

	if (f->qual == NULL)
		return true;
	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, sizeof(Datum) * slot->tts_tupleDescriptor->natts);
	memcpy(slot->tts_isnull, nulls, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	ExecStoreVirtualTuple(slot);
	ResetExprContext(f->econtext);
	return ExecQual(f->qual, f->econtext);
}

static void
delta_filter_end(DeltaFilter *f)
{
	if (f->qual == NULL)
		return;
	FreeExprContext(f->econtext, true);
	ExecDropSingleTupleTableSlot(f->slot);
}

/*
 * The columns of d_<n> the view reads must be the buffer's, as the source
 * had them when the view was made; the others are written null, so a
 * column added to the source since (ALTER TABLE ... ADD COLUMN), which no
 * view made before reads, changes nothing.  Anything else (a column the
 * view reads that was dropped or changed type, which kappa.source_problem
 * also marks the view broken for at the DDL) means the view must be built
 * again.
 */
static void
check_delta_reads(Relation drel, Oid srcrelid, KappaSourceBuffer *buf,
				  const bool *read, int read_natts)
{
	TupleDesc	ddesc = RelationGetDescr(drel);
	int			n = ddesc->natts - 1;

	if (n < 0 || TupleDescAttr(ddesc, n)->atttypid != INT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("internal table \"%s\" of the derived view was altered",
						RelationGetRelationName(drel)),
				 errhint("Rebuild the view with kappa.alter_view(view, rebuild => true).")));
	for (int i = 0; i < n; i++)
	{
		Form_pg_attribute a = TupleDescAttr(ddesc, i);
		Form_pg_attribute b;

		if (a->attisdropped || (read != NULL && (i >= read_natts || !read[i])))
			continue;
		b = i < buf->srcnatts ? TupleDescAttr(buf->desc, i) : NULL;
		if (b == NULL || b->attisdropped || a->atttypid != b->atttypid ||
			a->attlen != b->attlen || a->attbyval != b->attbyval ||
			a->attalign != b->attalign)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("columns of source table \"%s\" changed", get_rel_name(srcrelid)),
					 errdetail("Column %d, which the view reads, no longer has the type it had when the view was made.", i + 1),
					 errhint("Rebuild the view with kappa.alter_view(view, rebuild => true).")));
	}
}

/*
 * The keys of a source whose images in the batch all fail the view's
 * conditions on it, on their way to f_<n> (key_joins.c): the failing
 * images' keys are kept with their hashes, the passing ones' hashes only.
 * A failing key whose hash a passing image also has is not written (a
 * collision only leaves out a key that could have been: fewer keys are
 * always right).  Failing keys past work_mem are not kept either; if the
 * passing hashes outgrow it, nothing is written.
 */
typedef struct FailedKeys
{
	Oid			frelid;
	int			nkeys;
	const AttrNumber *keys;		/* in the source, as in d_<n> */
	uint32	   *passed;
	int			npassed;
	int			maxpassed;
	HeapTuple  *failed;
	uint32	   *failed_hash;
	int			nfailed;
	int			maxfailed;
	Size		bytes;
	bool		overflow;		/* passing hashes outgrew work_mem */
	TupleDesc	fdesc;
} FailedKeys;

static void
failed_keys_add(FailedKeys *fk, TupleDesc ddesc, Datum *values, bool *nulls, bool ok)
{
	uint32		h = 0;
	Datum		kv[INDEX_MAX_KEYS];
	bool		kn[INDEX_MAX_KEYS] = {0};
	HeapTuple	tup;

	if (fk->overflow)
		return;
	for (int k = 0; k < fk->nkeys; k++)
	{
		int			i = fk->keys[k] - 1;

		if (nulls[i])
			return;				/* not a key of the table's (never so) */
		h = hash_combine(h, value_hash(TupleDescAttr(ddesc, i), values[i]));
	}
	if (ok)
	{
		if (fk->npassed >= fk->maxpassed)
		{
			if ((Size) fk->maxpassed * sizeof(uint32) * 2 > (Size) work_mem * 1024)
			{
				fk->overflow = true;
				return;
			}
			fk->maxpassed = Max(256, fk->maxpassed * 2);
			fk->passed = fk->passed ? repalloc(fk->passed, sizeof(uint32) * fk->maxpassed) :
				palloc(sizeof(uint32) * fk->maxpassed);
		}
		fk->passed[fk->npassed++] = h;
		return;
	}
	if (fk->bytes > (Size) work_mem * 1024)
		return;
	for (int k = 0; k < fk->nkeys; k++)
		kv[k] = values[fk->keys[k] - 1];
	tup = heap_form_tuple(fk->fdesc, kv, kn);
	if (fk->nfailed >= fk->maxfailed)
	{
		fk->maxfailed = Max(256, fk->maxfailed * 2);
		fk->failed = fk->failed ? repalloc(fk->failed, sizeof(HeapTuple) * fk->maxfailed) :
			palloc(sizeof(HeapTuple) * fk->maxfailed);
		fk->failed_hash = fk->failed_hash ?
			repalloc(fk->failed_hash, sizeof(uint32) * fk->maxfailed) :
			palloc(sizeof(uint32) * fk->maxfailed);
	}
	fk->bytes += HEAPTUPLESIZE + tup->t_len + sizeof(HeapTuple) + sizeof(uint32);
	fk->failed[fk->nfailed] = tup;
	fk->failed_hash[fk->nfailed++] = h;
}

/* Write the keys that only failed to f_<n>; returns how many. */
static int64
failed_keys_write(FailedKeys *fk)
{
	Relation	frel;
	DeltaWriter writer;
	int64		written = 0;

	if (fk->overflow || fk->nfailed == 0)
		return 0;
	if (fk->npassed > 0)
		sort_hashes(fk->passed, fk->npassed);
	frel = table_open(fk->frelid, RowExclusiveLock);
	delta_writer_start(&writer, frel);
	for (int i = 0; i < fk->nfailed; i++)
	{
		if (hash_among(fk->failed_hash[i], fk->passed, fk->npassed))
			continue;
		delta_writer_put(&writer, fk->failed[i], true);
		written++;
	}
	delta_writer_end(&writer);
	table_close(frel, RowExclusiveLock);

	return written;
}

/*
 * The batch's row images of source n that the view has not seen (commit
 * LSN after applied) into d_<n>, signed, less the pairs that cancel out: a
 * row inserted and deleted in the batch, or updated twice, leaves only its
 * first old and its last new image, which keeps the terms' joins in
 * proportion to the rows changed, not to the number of changes.  A first
 * pass hashes every image; only images whose hash is among both signs are
 * held back and compared.  Rows that fail the source's filters (which
 * every term applies to them) are left out; the first pass checks them,
 * so that they are neither hashed nor held (the same row passes or fails
 * alike, so no pair that cancels out is split).  Returns how many
 * images were read, and sets *written to how many went into d_<n>; adds commit
 * LSNs to *lsns; sets *consolidate when too many were held back, and d_<n>
 * still needs consolidating.
 */
static int64
fill_signed_delta(Oid drelid, Oid srcrelid, const bool *read, int read_natts,
				  const bool *joined, List *filters, KappaSourceBuffer *buf,
				  XLogRecPtr applied, List **lsns, bool *consolidate, int64 *written,
				  FailedKeys *failed)
{
	Relation	drel = table_open(drelid, RowExclusiveLock);
	TupleDesc	ddesc = RelationGetDescr(drel);
	int			n = ddesc->natts - 1;	/* d_<n>'s columns, before the weight */
	ImageReader r;
	uint32	   *hashes[2] = {NULL, NULL};	/* old images, new images */
	int			nhashes[2] = {0, 0};
	int			maxhashes[2] = {0, 0};
	uint32	   *shared = NULL;
	int			nshared = 0;
	HeldImage  *held = NULL;
	int			nheld = 0;
	int			maxheld = 0;
	Size		held_bytes = 0;
	int64		count = 0;
	XLogRecPtr	last_lsn = InvalidXLogRecPtr;
	DeltaWriter writer;
	DeltaFilter filter;
	hyperLogLogState *distinct = NULL;	/* per join column, or NULL */
	bool	   *passes = NULL;	/* per image, in order: meets the filters
								 * (the first pass's verdict), or NULL */
	int64		npasses = 0;
	int64		maxpasses = 0;
	uint32	   *image_hashes = NULL;	/* per image, in order: its hash if it
										 * meets the filters (first pass, up
										 * to work_mem), or NULL */
	int64		nimages = 0;
	int64		maximages = 0;
	bool		keep_hashes = true;
	int64		image = 0;
	int64		ndistinct_counted = 0;	/* images added to distinct */

	*written = 0;

	check_delta_reads(drel, srcrelid, buf, read, read_natts);
	*consolidate = false;
	delta_filter_start(&filter, filters, ddesc);

	/* only updates and deletes have old images, which may cancel out */
	if (buf->modify_lsn > applied)
	{
		image_reader_start(&r, buf, srcrelid, applied, read, read_natts, ddesc);
		while (image_reader_next(&r))
		{
			int			side = r.is_new ? 1 : 0;
			uint32		h;

			if (keep_hashes && nimages >= maximages)
			{
				maximages = Max(1024, maximages * 2);
				if ((Size) maximages * sizeof(uint32) > (Size) work_mem * 1024)
				{
					/* the second pass hashes the images again */
					if (image_hashes != NULL)
						pfree(image_hashes);
					image_hashes = NULL;
					keep_hashes = false;
				}
				else
					image_hashes = image_hashes ?
						repalloc_huge(image_hashes, sizeof(uint32) * maximages) :
						palloc(sizeof(uint32) * maximages);
			}
			if (keep_hashes)
				image_hashes[nimages++] = 0;
			if (filter.qual != NULL)
			{
				bool		ok = delta_filter_passes(&filter, r.values, r.nulls);

				if (npasses >= maxpasses)
				{
					maxpasses = Max(1024, maxpasses * 2);
					passes = passes ? repalloc_huge(passes, sizeof(bool) * maxpasses) :
						palloc(sizeof(bool) * maxpasses);
				}
				passes[npasses++] = ok;
				if (!ok)
					continue;
			}
			if (nhashes[side] >= maxhashes[side])
			{
				maxhashes[side] = Max(64, maxhashes[side] * 2);
				hashes[side] = hashes[side] ?
					repalloc_huge(hashes[side], sizeof(uint32) * maxhashes[side]) :
					palloc(sizeof(uint32) * maxhashes[side]);
			}
			h = image_hash(ddesc, n, r.values, r.nulls);
			hashes[side][nhashes[side]++] = h;
			if (keep_hashes)
				image_hashes[nimages - 1] = h;
		}
		image_reader_end(&r);
		if (nhashes[0] > 0 && nhashes[1] > 0)
			shared = shared_hashes(hashes[1], nhashes[1], hashes[0], nhashes[0], &nshared);
	}

	delta_writer_start(&writer, drel);
	if (joined != NULL && kappa_delta_statistics)
	{
		distinct = palloc0(sizeof(hyperLogLogState) * n);
		for (int i = 0; i < n && i < read_natts; i++)
			if (joined[i])
				initHyperLogLog(&distinct[i], 10);
	}
	image_reader_start(&r, buf, srcrelid, applied, read, read_natts, ddesc);
	while (image_reader_next(&r))
	{
		HeapTuple	tup;
		uint32		h = 0;
		bool		ok;

		count++;
		if (r.lsn != last_lsn)
		{
			*lsns = lappend(*lsns, (void *) (uintptr_t) r.lsn);
			last_lsn = r.lsn;
		}
		/* both passes read the same images in the same order */
		Assert(passes == NULL || image < npasses);
		Assert(image_hashes == NULL || image < nimages);
		if (passes != NULL)
			ok = passes[image];
		else
			ok = delta_filter_passes(&filter, r.values, r.nulls);
		image++;
		if (failed != NULL)
			failed_keys_add(failed, ddesc, r.values, r.nulls, ok);
		if (!ok)
			continue;
		if (distinct != NULL)
		{
			/* of the images written: those that meet the filters */
			ndistinct_counted++;
			for (int i = 0; i < n && i < read_natts; i++)
				if (joined[i] && !r.nulls[i])
					addHyperLogLog(&distinct[i], value_hash(TupleDescAttr(ddesc, i), r.values[i]));
		}
		if (nshared > 0 && !*consolidate)
		{
			h = image_hashes != NULL ? image_hashes[image - 1] :
				image_hash(ddesc, n, r.values, r.nulls);
			if (hash_among(h, shared, nshared))
			{
				tup = heap_form_tuple(ddesc, r.values, r.nulls);
				if (held_bytes + HELD_IMAGE_BYTES(tup) <= (Size) work_mem * 1024)
				{
					if (nheld >= maxheld)
					{
						maxheld = Max(256, maxheld * 2);
						held = held ? repalloc_huge(held, sizeof(HeldImage) * maxheld) :
							palloc(sizeof(HeldImage) * maxheld);
					}
					held_bytes += HELD_IMAGE_BYTES(tup);
					held[nheld].hash = h;
					held[nheld].order = nheld;
					held[nheld].tuple = tup;
					held[nheld].is_new = r.is_new;
					held[nheld].cancelled = false;
					nheld++;
					continue;
				}
				*consolidate = true;
				heap_freetuple(tup);
			}
		}
		delta_writer_put(&writer, heap_form_tuple(ddesc, r.values, r.nulls), true);
		(*written)++;
	}
	image_reader_end(&r);

	/*
	 * Cancel pairs of held images of opposite signs that are the same row,
	 * and write the rest.
	 */
	if (nheld > 0)
	{
		qsort(held, nheld, sizeof(HeldImage), held_image_cmp);
		for (int i = 0; i < nheld; i++)
		{
			if (held[i].cancelled)
				continue;
			for (int j = i + 1; j < nheld && held[j].hash == held[i].hash; j++)
			{
				if (held[j].cancelled || held[j].is_new == held[i].is_new ||
					!same_image(ddesc, n, &held[i], &held[j]))
					continue;
				held[i].cancelled = held[j].cancelled = true;
				break;
			}
		}
		for (int i = 0; i < nheld; i++)
			if (!held[i].cancelled)
			{
				delta_writer_put(&writer, held[i].tuple, false);
				(*written)++;
			}
	}
	delta_filter_end(&filter);
	delta_writer_end(&writer);

	/*
	 * The planner's idea of how often a partner is looked up again: said
	 * only of a column whose values repeat (a column of distinct values is
	 * what the planner assumes without statistics, and a fraction of about
	 * one would have it take the column for unique).
	 */
	if (distinct != NULL)
	{
		for (int i = 0; i < n && i < read_natts; i++)
			if (joined[i])
			{
				double		fraction = ndistinct_counted > 0 ?
					estimateHyperLogLog(&distinct[i]) / ndistinct_counted : 1.0;

				if (fraction < 0.5)
					kappa_delta_distinct_set(drelid, i + 1, fraction);
				freeHyperLogLog(&distinct[i]);
			}
		pfree(distinct);
	}
	table_close(drel, RowExclusiveLock);
	return count;
}

/*
 * Recompute the groups whose keys are in k from the live sources: their
 * rows, or for a view maintained algebraically their state, and their
 * rows from it (as the merge writes them: one pass over the sources).
 */
static uint64
recompute_groups(RulePlan *rp)
{
	uint64		rows = 0;
	bool		null_keys = kappa_run_bool(rp->has_null_keys);

	rows += kappa_run_keyed(&rp->delete_keys);
	if (null_keys)
		rows += kappa_run(rp->delete_null_keys);
	if (rp->algebraic)
	{
		/* the groups' state from the sources, their rows from the state */
		kappa_run_insert_keys(&rp->state_keys);
		rows += kappa_run(rp->view_keys);
		if (null_keys)
		{
			kappa_run(rp->state_null_keys);
			rows += kappa_run(rp->view_null_keys);
		}
	}
	else
	{
		rows += kappa_run_insert_keys(&rp->insert_keys);
		if (null_keys)
			rows += kappa_run(rp->insert_null_keys);
	}
	kappa_run(rp->clear_k);
	return rows;
}

/*
 * Split the terms of the expanded rule (masks[i], the entries that read
 * their deltas; nterms of them) by the keys of entries reached by their
 * whole primary key (key_joins.c), which changed: keyed[i] gets the
 * entries whose rows term i takes by key.  For such an entry p, a term
 * where p reads the live source pairs with the term where p reads d_<n>
 * and every other entry reads what it reads in the first (the two have
 * opposite signs): the first then reads only the live rows whose key
 * d_<n> does not have, the second only d_<n>'s rows of weight -1, and the
 * pair's sum is unchanged.  A term without such a twin (the one where p
 * alone reads its delta) is left as it is.  Entries are taken one after
 * another, each pairing the terms as the earlier ones left them.
 *
 * Only pairs whose first term reads one delta, that of p's one partner,
 * are split: its plan starts from that delta and looks p up by key, and
 * the rows whose key p's delta has are left out of the partner's delta
 * first, in a subquery the planner plans alone (kappa_fence_entry).  Left
 * to the planner, the condition was placed after the lookups it was to
 * save, or, where another delta leads, made it misjudge how many rows
 * are left (it takes the keys of one delta for those of the other) and
 * look up every row of a delta it had joined cheaply before.
 */
static void
pair_terms(RulePlan *rp, uint64 changed, const uint64 *masks, uint64 *keyed, int nterms)
{
	KappaSourceBuffer *buf;

	memset(keyed, 0, sizeof(uint64) * nterms);
	if (rp->key_joins == NULL)
		return;
	for (int p = 1; p <= rp->nrtes && p <= 64; p++)
	{
		KappaKeyJoin *kj = rp->key_joins[p];

		if (kj == NULL || (changed & RTE_BIT(p)) == 0)
			continue;

		/*
		 * The key must have held before the batch too: not if a change of
		 * the batch was made without it, or under another (added or moved
		 * in the batch, the table may have held duplicates before it).
		 * After such a batch, the key holds as it did when it was made.
		 */
		buf = hash_search(kappa_batch->sources, &rp->sources[rp->rte_source[p]],
						  HASH_FIND, NULL);
		if (buf == NULL || buf->pkey_varies || buf->pkey_index != kj->pkey_index)
			continue;
		for (int i = 0; i < nterms; i++)
		{
			if (masks[i] != kj->partners)
				continue;
			for (int j = 0; j < nterms; j++)
				if (masks[j] == (masks[i] | RTE_BIT(p)))
				{
					if (keyed[j] == keyed[i])
					{
						keyed[i] |= RTE_BIT(p);
						keyed[j] |= RTE_BIT(p);
					}
					break;
				}
		}
	}
}

/*
 * Run the delta rule's terms for a batch that changed the sources marked
 * in touched.  Where few range table entries read a changed source, the
 * rule is expanded over the live sources and the deltas alone
 *
 *	   dQ = sum over nonempty S of (-1)^(|S|+1) Q(dRi for i in S, Rj new else)
 *
 * (old = new - delta, multiplied out), whose terms PostgreSQL plans with
 * the live tables' statistics and indexes, and which skips the entries
 * whose source did not change; otherwise one term per entry, through
 * o_<n>.  A LEFT JOIN view's terms (outer_key_sql), which give keys, are
 * always one per entry whose source changed.
 */
static void
run_terms(RulePlan *rp, bool *touched, int64 *counts)
{
	uint64		changed = 0;
	int			nchanged = 0;

	for (int r = 1; r <= rp->nrtes; r++)
		if (rp->rte_source[r] >= 0 && touched[rp->rte_source[r]])
		{
			if (r > 64)
			{
				nchanged = MAX_EXPANDED_ENTRIES + 1;
				break;
			}
			changed |= RTE_BIT(r);
			nchanged++;
		}

	/* a LEFT JOIN view's terms give keys: one per entry is the rule */
	if (nchanged > MAX_EXPANDED_ENTRIES || rp->outer)
	{
		for (int t = 0; t < rp->nterms; t++)
			if (touched[rp->terms[t].srcno])
				kappa_run(rp->terms[t].plan);
		return;
	}
	/* every nonempty subset of changed, planned for its deltas' sizes */
	{
		uint64		masks[1 << MAX_EXPANDED_ENTRIES];
		uint64		keyed[1 << MAX_EXPANDED_ENTRIES];
		int			nmasks = 0;

		for (uint64 mask = changed; mask != 0; mask = (mask - 1) & changed)
			masks[nmasks++] = mask;
		pair_terms(rp, changed, masks, keyed, nmasks);
		for (int i = 0; i < nmasks; i++)
		{
			uint64		sizes = 0;

			for (int r = 1; r <= rp->nrtes; r++)
				if ((masks[i] | keyed[i]) & RTE_BIT(r))
					sizes = (sizes << 4) | kappa_delta_size_class(counts[rp->rte_source[r]]);
			kappa_run(subset_plan(rp, masks[i], keyed[i], sizes));
		}
	}
}

/* Empty every d_<n> an earlier batch of the view may have filled. */
static void
clear_filled_deltas(RulePlan *rp)
{
	for (int i = 0; i < rp->nsources; i++)
		if (rp->d_filled[i])
		{
			kappa_run(rp->clear_d[i]);
			if (rp->clear_f[i] != NULL)
				kappa_run(rp->clear_f[i]);
			rp->d_filled[i] = false;
		}
	rp->d_rows = 0;
}

/*
 * Engine 2's kappa_apply_view: apply the current batch to view viewid,
 * whose applied LSN is applied.  Returns the derived rows deleted and
 * inserted, or -1 when the batch holds nothing for the view; *ntxns is the
 * number of source transactions applied.  SPI must be connected; the
 * caller commits, and sets kappa_read_snapshot.
 *
 * A batch leaves its deltas in d_<n>; the next batch of the view empties
 * them first, so that deleting them is not part of the time until the
 * view shows this one.  Every d_<n> the view may have filled is emptied,
 * not only those of sources the batch changed: o_<n> reads d_<n>.  An
 * error while applying forgets the plans (kappa_engine_reset), and a new
 * plan takes every d_<n> for filled, so the flags never trust a d_<n>
 * that a rolled-back subtransaction filled again.
 */
int64
kappa_apply_rules(int viewid, XLogRecPtr applied, XLogRecPtr *new_applied,
				  int64 *ntxns)
{
	RulePlan   *rp = get_rules(viewid);
	bool	   *touched = palloc0(sizeof(bool) * rp->nsources);
	bool	   *consolidate = palloc0(sizeof(bool) * rp->nsources);
	int64	   *counts = palloc0(sizeof(int64) * rp->nsources);
	int64	   *failed = palloc0(sizeof(int64) * rp->nsources);
	bool		truncated = false;
	bool		any = false;
	bool		changed = false;
	List	   *lsns = NIL;
	int64		rows = 0;
	KappaOwnerScope scope;
	TimestampTz t_start = GetCurrentTimestamp();
	TimestampTz t_cleared;
	TimestampTz t_filled;
	TimestampTz t_terms = 0;
	TimestampTz t_applied;

	kappa_owner_enter(rp->owner, &scope);
	kappa_delta_sizes_reset();
	clear_filled_deltas(rp);
	t_cleared = GetCurrentTimestamp();
	for (int i = 0; i < rp->nsources; i++)
	{
		KappaSourceBuffer *buf;
		FailedKeys	fk;

		buf = hash_search(kappa_batch->sources, &rp->sources[i], HASH_FIND, NULL);
		if (buf == NULL)
			continue;
		kappa_check_source_access(rp->sources[i], rp->owner);
		if (buf->schema_change_lsn > applied)
			kappa_columns_changed_error(rp->sources[i]);
		kappa_check_buffer_columns(buf, rp->read[i], rp->read_natts[i], applied);
		if (buf->truncate_lsn > applied)
		{
			truncated = any = true;
			lsns = lappend(lsns, (void *) (uintptr_t) buf->truncate_lsn);
		}
		/* images that cancel out (read: counted, not written) touch nothing */
		rp->d_filled[i] = true;
		if (OidIsValid(rp->frelids[i]))
		{
			memset(&fk, 0, sizeof(fk));
			fk.frelid = rp->frelids[i];
			fk.nkeys = rp->nfkeys[i];
			fk.keys = rp->fkeys[i];
			fk.fdesc = rp->fdescs[i];
		}
		if (fill_signed_delta(rp->drelids[i], rp->sources[i], rp->read[i], rp->read_natts[i],
							  rp->joined[i], rp->filters[i], buf, applied, &lsns, &consolidate[i],
							  &counts[i], OidIsValid(rp->frelids[i]) ? &fk : NULL) > 0)
			any = true;
		if (OidIsValid(rp->frelids[i]))
			failed[i] = failed_keys_write(&fk);
		if (counts[i] > 0)
			touched[i] = changed = true;
	}
	rp->d_rows = 0;
	for (int i = 0; i < rp->nsources; i++)
		rp->d_rows += counts[i];
	if (!any)
	{
		kappa_delta_sizes_reset();
		kappa_owner_leave(&scope);
		return -1;
	}
	CommandCounterIncrement();
	for (int i = 0; i < rp->nsources; i++)
		if (consolidate[i])
			kappa_run(rp->consolidate_d[i]);
	t_filled = GetCurrentTimestamp();

	if (!changed && !truncated)
	{
		/* every image cancelled out: nothing the view reads changed */
	}
	else if (truncated || (rp->whole && !rp->algebraic))
	{
		rows += kappa_run(rp->delete_all);
		rows += kappa_run(rp->insert_all);
		if (rp->algebraic)
		{
			kappa_run(rp->clear_state);
			kappa_run(rp->fill_state);
		}
	}
	else
	{
		for (int i = 0; i < rp->nsources; i++)
		{
			kappa_delta_sizes_set(rp->drelids[i], counts[i]);
			if (OidIsValid(rp->frelids[i]))
				kappa_delta_sizes_set(rp->frelids[i], failed[i]);
		}
		run_terms(rp, touched, counts);
		kappa_delta_sizes_reset();
		t_terms = GetCurrentTimestamp();
		if (rp->algebraic)
		{
			/* the partials into the state and the view; then the dirty */
			rows += kappa_run(rp->merge);
			if (kappa_run(rp->take_dirty) > 0)
			{
				if (rp->whole)
				{
					rows += kappa_run(rp->delete_all);
					rows += kappa_run(rp->insert_all);
					kappa_run(rp->clear_state);
					kappa_run(rp->fill_state);
				}
				else
					rows += recompute_groups(rp);
			}
			kappa_run(rp->clear_partials);
		}
		else if (rp->grouped || rp->outer)
			rows += recompute_groups(rp);
		else
		{
			kappa_run(rp->consolidate);
			rows += kappa_run(rp->delete_rows);
			rows += kappa_run(rp->insert_rows);
			kappa_run(rp->clear_dq);
			kappa_run(rp->clear_dc);
		}
	}
	t_applied = GetCurrentTimestamp();
	kappa_owner_leave(&scope);
	if (message_level_is_interesting(DEBUG1))
		elog(DEBUG1, "derived view %d: earlier deltas cleared in %.1f ms, " INT64_FORMAT " row images in the deltas, filled in %.1f ms, terms %.1f ms, applied in %.1f ms",
			 viewid, (t_cleared - t_start) / 1000.0, rp->d_rows,
			 (t_filled - t_cleared) / 1000.0,
			 t_terms ? (t_terms - t_filled) / 1000.0 : 0.0,
			 (t_applied - (t_terms ? t_terms : t_filled)) / 1000.0);

	*new_applied = kappa_batch->last_commit_lsn;
	*ntxns = kappa_count_lsns(lsns);
	return rows;
}

/*
 * The columns of source relid that view id reads from a batch's row images
 * (d_<n> has the others null), from its kept plan: *read (NULL for all of
 * them) and its length *natts.  False, with *read NULL, when the view has no
 * plan, or its plans are out of date: the view may then read any column.
 */
bool
kappa_rules_columns_read(int id, Oid relid, const bool **read, int *natts)
{
	RulePlan   *rp;

	*read = NULL;
	*natts = 0;
	if (rule_plans == NULL || kappa_plans_stale)
		return false;
	rp = hash_search(rule_plans, &id, HASH_FIND, NULL);
	if (rp == NULL)
		return false;
	for (int i = 0; i < rp->nsources; i++)
		if (rp->sources[i] == relid)
		{
			*read = rp->read[i];
			*natts = rp->read_natts[i];
			return true;
		}
	return false;
}

/*
 * The views whose last batch left so many rows in d_<n> that deleting them
 * is worth a transaction of its own while the worker is idle
 * (kappa_rules_clear_deltas).  Fewer rows are deleted by the view's next
 * batch, at the cost of a few index-free heap deletions.
 */
#define CLEAR_WHEN_IDLE_ROWS 1000

List *
kappa_rules_filled_views(void)
{
	HASH_SEQ_STATUS status;
	RulePlan   *rp;
	List	   *ids = NIL;

	if (rule_plans == NULL)
		return NIL;
	hash_seq_init(&status, rule_plans);
	while ((rp = hash_seq_search(&status)) != NULL)
		if (rp->d_rows >= CLEAR_WHEN_IDLE_ROWS)
			ids = lappend_int(ids, rp->id);
	return ids;
}

/*
 * Empty the d_<n> that view id's batches left filled, as its owner, as the
 * batch would have: the worker calls this when it has nothing to apply.
 * Nothing here waits for a lock: while somebody holds the derived table
 * (kappa.drop_view, say) or a d_<n> or rows of it (its owner may lock
 * them), the deltas are left to the view's next batch, which waits at most
 * pg_kappa.view_lock_timeout.  SPI must be connected.
 */
void
kappa_rules_clear_deltas(int id)
{
	RulePlan   *rp;
	KappaOwnerScope scope;

	if (rule_plans == NULL ||
		(rp = hash_search(rule_plans, &id, HASH_FIND, NULL)) == NULL)
		return;
	if (!ConditionalLockRelationOid(rp->relid, RowExclusiveLock))
		return;
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(rp->relid)))
		return;
	/*
	 * ExclusiveLock, which the DELETE does not need, for it also conflicts
	 * with the lock of anyone holding rows of the table locked: the DELETE
	 * would wait for them.
	 */
	for (int i = 0; i < rp->nsources; i++)
		if (rp->d_filled[i] &&
			(!ConditionalLockRelationOid(rp->drelids[i], ExclusiveLock) ||
			 (OidIsValid(rp->frelids[i]) &&
			  !ConditionalLockRelationOid(rp->frelids[i], ExclusiveLock))))
			return;
	kappa_owner_enter(rp->owner, &scope);
	clear_filled_deltas(rp);
	kappa_owner_leave(&scope);
}
