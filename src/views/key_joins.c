/*-------------------------------------------------------------------------
 *
 * key_joins.c
 *	  Engine 2: finds the entries of a join view reached by their source's
 *	  whole primary key, whose rows a delta term may take from the batch's
 *	  delta instead of looking them up in the live table.
 *
 * Say entry p reads a source with a primary key, and every key column is
 * equated with a column of another entry by a condition that every row of
 * the query meets.  Each row of another entry then joins at most one row
 * of p, the one with that key.  If the batch's delta d_p (consolidated:
 * pairs that cancel out are gone) has a row with key k, the live table's
 * row with key k, if any, is d_p's row of weight +1 with key k; and the
 * table's row before the batch, if any, is d_p's row of weight -1.
 *
 * In the expanded delta rule (delta_rules.c) each term in which p reads
 * the live table has a twin in which p reads d_p and everything else is
 * the same, with the opposite sign.  Splitting the live table of the
 * first by whether d_p has the key, and the delta of the second by sign,
 * the pair equals:
 *
 *	   first term, p reading only live rows whose key d_p does not have
 *	 + second term, p reading only d_p's rows of weight -1
 *
 * The first no longer looks up, in p's table, the partners of rows whose
 * key the batch changed: in TPC-H, the lines of the orders a refresh
 * inserts or deletes, which make up a third to a half of a lineitem
 * delta's lookups of orders.  This file builds the condition that leaves
 * those rows out ("NOT EXISTS (SELECT 1 FROM d_p WHERE key = partner)");
 * delta_rules.c pairs the terms, and splits only a pair whose first term
 * reads the partner's delta alone (pair_terms says why).
 *
 * A delta holds only rows that meet the view's conditions on their source
 * alone (delta_rules.c checks them as it fills it), and in TPC-H the
 * orders a refresh inserts or deletes mostly fail them (Q3's order date,
 * for lines shipped after it).  Their keys are not in d_p, yet the live
 * table has no row of theirs that meets the conditions.  So the worker
 * also writes, to f_p, the keys of p's source all of whose images in the
 * batch fail those conditions: its row before and after the batch, if
 * any, fails them, and a term reading the live table may leave those keys
 * out too (their twin reads nothing of them).  Only keys of fixed length
 * whose equality is byte equality are written there (the images' keys are
 * compared by their bytes' hashes).
 *
 * Only what makes the argument hold is taken: a primary key (its columns
 * are never null) that held before the batch as well as after it (every
 * change of the batch was made under it: change_sink.c notes the key of
 * each; a key added during the batch says nothing of the rows before),
 * the table alone (no inheritance children), equality by
 * an operator of the key index's btree family under a deterministic
 * collation (so equal means the same key), conditions of WHERE and inner
 * joins only, and no join with an alias (which would hide the tables'
 * names from the condition).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_relation.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "pg_kappa.h"

/*
 * Does every row of the query meet the join tree's conditions (only inner
 * joins), and may they name its tables (no join with an alias)?
 */
static bool
inner_joins_only(Node *node)
{
	if (IsA(node, RangeTblRef))
		return true;
	if (IsA(node, FromExpr))
	{
		ListCell   *lc;

		foreach(lc, ((FromExpr *) node)->fromlist)
			if (!inner_joins_only(lfirst(lc)))
				return false;
		return true;
	}
	if (IsA(node, JoinExpr))
	{
		JoinExpr   *j = (JoinExpr *) node;

		return j->jointype == JOIN_INNER && j->alias == NULL &&
			inner_joins_only(j->larg) && inner_joins_only(j->rarg);
	}
	return false;
}

/* the Var under node's relabelings, or NULL */
static Var *
plain_var(Node *node)
{
	while (node != NULL && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	if (node == NULL || !IsA(node, Var) || ((Var *) node)->varlevelsup != 0)
		return NULL;
	return (Var *) node;
}

/* expr with its Var (under relabelings) replaced by var */
static Node *
with_var(Node *expr, Var *var)
{
	if (IsA(expr, RelabelType))
	{
		RelabelType *r = (RelabelType *) copyObject(expr);

		r->arg = (Expr *) with_var((Node *) r->arg, var);
		return (Node *) r;
	}
	return (Node *) var;
}

/*
 * "SELECT tlist FROM rel alias WHERE conds": rel is the query's only entry,
 * which conds' and tlist's Vars 1 name.
 */
static Query *
select_from(Relation rel, const char *alias, List *tlist, List *conds)
{
	ParseState *pstate = make_parsestate(NULL);
	ParseNamespaceItem *nsitem;
	Query	   *query = makeNode(Query);
	RangeTblRef *rtr = makeNode(RangeTblRef);

	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock,
										   makeAlias(alias, NIL), false, true);
	query->commandType = CMD_SELECT;
	query->querySource = QSRC_ORIGINAL;
	query->canSetTag = true;
	query->rtable = list_make1(nsitem->p_rte);
	rtr->rtindex = 1;
	query->jointree = makeFromExpr(list_make1(rtr), (Node *) make_ands_explicit(conds));
	query->targetList = tlist;
	query->hasSubLinks = checkExprHasSubLink((Node *) conds);
	free_parsestate(pstate);
	return query;
}

/*
 * COALESCE(expr, expr), which is expr, for the partner's side of the
 * condition, so that the planner has no statistics of that side.  On the
 * partner's column itself (whose distinct count the worker gives it, for
 * Memoize nodes) it sorted the partner's delta to merge it with the keys:
 * 10 ms of TPC-H Q5's 24,000 lines, more than the lookups saved.  On the
 * expression it takes half the rows for left and hashes the keys.
 */
static Node *
unestimated(Node *expr)
{
	CoalesceExpr *c = makeNode(CoalesceExpr);

	c->coalescetype = exprType(expr);
	c->coalescecollid = exprCollation(expr);
	c->args = list_make2(expr, copyObject(expr));
	c->location = -1;
	return (Node *) c;
}

/* "NOT EXISTS (SELECT 1 FROM drel WHERE conds)", conds over its Vars 1 */
static Node *
not_exists(Relation drel, List *conds)
{
	SubLink    *sublink = makeNode(SubLink);
	Query	   *sub;

	sub = select_from(drel, "kappa_d",
					  list_make1(makeTargetEntry((Expr *) makeConst(INT4OID, -1, InvalidOid,
																	sizeof(int32), Int32GetDatum(1),
																	false, true),
												 1, NULL, false)),
					  conds);
	sublink->subLinkType = EXISTS_SUBLINK;
	sublink->subLinkId = 0;
	sublink->testexpr = NULL;
	sublink->operName = NIL;
	sublink->subselect = (Node *) sub;
	sublink->location = -1;
	return (Node *) makeBoolExpr(NOT_EXPR, list_make1(sublink), -1);
}

/*
 * Entry r's key join, or NULL: see the header.  conds are the query's
 * conditions every row meets.
 */
static KappaKeyJoin *
key_join(Query *query, const int *rte_source, int nrtes, int r, List *conds,
		 Oid drelid, Oid frelid)
{
	RangeTblEntry *rte = rt_fetch(r, query->rtable);
	Relation	rel;
	Relation	index;
	Relation	drel;
	Oid			pkey;
	int			nkeys;
	List	   *by_partner = NIL;
	List	   *by_partner_f = NIL;
	uint64		partners = 0;
	KappaKeyJoin *kj = NULL;

	if (rte->rtekind != RTE_RELATION)
		return NULL;
	rel = table_open(rte->relid, AccessShareLock);
	pkey = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(pkey) ||
		(rel->rd_rel->relkind == RELKIND_RELATION && rte->inh && has_subclass(rte->relid)))
	{
		table_close(rel, AccessShareLock);
		return NULL;
	}
	index = index_open(pkey, AccessShareLock);
	drel = table_open(drelid, AccessShareLock);
	nkeys = index->rd_index->indnkeyatts;
	for (int k = 0; k < nkeys; k++)
	{
		AttrNumber	attno = index->rd_index->indkey.values[k];
		Oid			opfamily = index->rd_opfamily[k];
		Form_pg_attribute att;
		bool		found = false;
		ListCell   *lc;

		if (attno <= 0 || attno >= RelationGetDescr(drel)->natts)
			break;
		att = TupleDescAttr(RelationGetDescr(rel), attno - 1);
		if (TupleDescAttr(RelationGetDescr(drel), attno - 1)->atttypid != att->atttypid ||
			(OidIsValid(att->attcollation) && !get_collation_isdeterministic(att->attcollation)))
			break;
		foreach(lc, conds)
		{
			OpExpr	   *op = lfirst(lc);
			Var		   *a;
			Var		   *b;
			Var		   *partner;
			int			own;
			Var		   *dvar;
			OpExpr	   *cond;

			if (!IsA(op, OpExpr) || list_length(op->args) != 2)
				continue;
			a = plain_var(linitial(op->args));
			b = plain_var(lsecond(op->args));
			if (a == NULL || b == NULL || a->varno == b->varno)
				continue;
			if (a->varno == r && a->varattno == attno)
				own = 0;
			else if (b->varno == r && b->varattno == attno)
				own = 1;
			else
				continue;
			/* the partner: a column of another entry that reads a source */
			partner = own == 0 ? b : a;
			if (partner->varno < 1 || partner->varno > nrtes || partner->varno > 64 ||
				rte_source[partner->varno] < 0 || partner->varattno <= 0)
				continue;
			if (get_op_opfamily_strategy(op->opno, opfamily) != BTEqualStrategyNumber ||
				(OidIsValid(op->inputcollid) && !get_collation_isdeterministic(op->inputcollid)))
				continue;

			/* d_p's key column in the subquery (its only entry) */
			dvar = makeVar(1, attno, att->atttypid, att->atttypmod, att->attcollation, 0);

			/* d.key = partner, with the partner one level up */
			cond = copyObject(op);
			if (own == 0)
			{
				linitial(cond->args) = with_var(linitial(op->args), dvar);
				lsecond(cond->args) = unestimated(lsecond(cond->args));
			}
			else
			{
				lsecond(cond->args) = with_var(lsecond(op->args), dvar);
				linitial(cond->args) = unestimated(linitial(cond->args));
			}
			IncrementVarSublevelsUp(own == 0 ? lsecond(cond->args) : linitial(cond->args), 1, 0);
			by_partner = lappend(by_partner, cond);
			partners |= UINT64CONST(1) << (partner->varno - 1);
			/* the same against f_<n>, whose key columns come first, in order */
			if (OidIsValid(frelid))
			{
				OpExpr	   *fcond = copyObject(cond);
				Var		   *fvar = copyObject(dvar);

				fvar->varattno = k + 1;
				if (own == 0)
					linitial(fcond->args) = with_var(linitial(op->args), fvar);
				else
					lsecond(fcond->args) = with_var(lsecond(op->args), fvar);
				by_partner_f = lappend(by_partner_f, fcond);
			}
			found = true;
			break;
		}
		if (!found)
			break;
		if (k == nkeys - 1)
		{
			kj = palloc(sizeof(KappaKeyJoin));
			kj->partners = partners;
			kj->pkey_index = pkey;
			kj->by_partner = not_exists(drel, by_partner);
			if (OidIsValid(frelid))
			{
				Relation	frel = table_open(frelid, AccessShareLock);

				kj->by_partner = make_and_qual(kj->by_partner, not_exists(frel, by_partner_f));
				table_close(frel, AccessShareLock);
			}
		}
	}
	table_close(drel, AccessShareLock);
	index_close(index, AccessShareLock);
	table_close(rel, AccessShareLock);
	return kj;
}

/*
 * Per range table entry of query (nrtes of them; rte_source[r] the source
 * entry r reads, or -1), the entry's key join, or NULL; drelids[i] is
 * source i's delta d_<i>, frelids[i] its table of keys whose images all
 * failed (kappa_failed_keys_table), or invalid.  Entries past the 64th
 * have none (the expanded rule's masks have 64 bits).  Allocated in the
 * current memory context.
 */
KappaKeyJoin **
kappa_key_joins(Query *query, const int *rte_source, int nrtes, const Oid *drelids,
				const Oid *frelids)
{
	KappaKeyJoin **kjs = palloc0(sizeof(KappaKeyJoin *) * (nrtes + 1));
	List	   *conds;

	if (query->jointree == NULL || !inner_joins_only((Node *) query->jointree))
		return kjs;
	conds = kappa_join_conditions((Node *) query->jointree);
	for (int r = 1; r <= nrtes && r <= 64; r++)
		if (rte_source[r] >= 0)
			kjs[r] = key_join(query, rte_source, nrtes, r, conds, drelids[rte_source[r]],
							  frelids[rte_source[r]]);
	return kjs;
}

/*
 * Make range table entry r of query, which reads relation drelid (a delta
 * d_<n>, with the columns the entry's Vars name at their attribute
 * numbers), read "(SELECT its columns FROM drelid WHERE conds OFFSET 0)":
 * conds are by_partner conditions of entries whose partner is r (their
 * Vars of r one level up, as in the query).  The planner plans such a
 * subquery alone, so the rows whose partner's key is in the other delta
 * are left out before any lookup; left in the query, the condition is
 * placed wherever the planner's estimates say, and they cannot tell that
 * it leaves out whole keys, so it came after the lookups it was meant to
 * save.
 */
void
kappa_fence_entry(Query *query, int r, Oid drelid, List *conds)
{
	RangeTblEntry *rte = rt_fetch(r, query->rtable);
	Relation	drel = table_open(drelid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(drel);
	Query	   *sub;
	List	   *tlist = NIL;
	List	   *names = NIL;
	List	   *inner = NIL;
	ListCell   *lc;

	for (int a = 1; a <= desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a - 1);
		Expr	   *expr;
		char	   *name;

		if (att->attisdropped)
		{
			expr = (Expr *) makeNullConst(INT4OID, -1, InvalidOid);
			name = psprintf("kappa_dropped_%d", a);
		}
		else
		{
			expr = (Expr *) makeVar(1, a, att->atttypid, att->atttypmod, att->attcollation, 0);
			name = pstrdup(NameStr(att->attname));
		}
		tlist = lappend(tlist, makeTargetEntry(expr, a, name, false));
		names = lappend(names, makeString(name));
	}
	foreach(lc, conds)
	{
		Node	   *cond = copyObject(lfirst(lc));

		/* the partner's Vars: entry r one level up becomes entry 1 */
		ChangeVarNodes(cond, r, 1, 0);
		inner = lappend(inner, cond);
	}
	sub = select_from(drel, "kappa_delta", tlist, inner);
	sub->limitOffset = (Node *) makeConst(INT8OID, -1, InvalidOid, sizeof(int64),
										  Int64GetDatum(0), false, FLOAT8PASSBYVAL);
	table_close(drel, AccessShareLock);

	if (rte->alias == NULL)
		rte->alias = makeAlias(rte->eref->aliasname, NIL);
	rte->rtekind = RTE_SUBQUERY;
	rte->subquery = sub;
	rte->relid = InvalidOid;
	rte->relkind = 0;
	rte->rellockmode = 0;
	rte->tablesample = NULL;
	rte->inh = false;
	rte->eref = makeAlias(rte->eref->aliasname, names);
}

/*
 * Source relid's table of keys whose images all failed the view's
 * conditions, f_<n> (frelid, made with the view: view_ddl.c), if it can be
 * used: the source's primary key columns are its columns, in order, with
 * their types, of fixed length (a varlena may be compressed in one image
 * and not in another), and each key column's equality is byte equality
 * (btree's "equal image", as deduplication asks; only built-in support
 * functions are asked, since this runs as the view's owner).  Returns the
 * key's attribute numbers in the source, *nkeys of them, or NULL.
 */
AttrNumber *
kappa_failed_keys_table(Oid relid, Oid frelid, int *nkeys)
{
	Relation	rel;
	Relation	index;
	Relation	frel;
	Oid			pkey;
	AttrNumber *keys = NULL;
	int			n;

	*nkeys = 0;
	if (!OidIsValid(frelid))
		return NULL;
	rel = table_open(relid, AccessShareLock);
	pkey = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(pkey))
	{
		table_close(rel, AccessShareLock);
		return NULL;
	}
	index = index_open(pkey, AccessShareLock);
	frel = table_open(frelid, AccessShareLock);
	n = index->rd_index->indnkeyatts;
	if (RelationGetNumberOfAttributes(frel) == n)
	{
		keys = palloc(sizeof(AttrNumber) * n);
		for (int k = 0; k < n && keys != NULL; k++)
		{
			AttrNumber	attno = index->rd_index->indkey.values[k];
			Form_pg_attribute att = attno > 0 ? TupleDescAttr(RelationGetDescr(rel), attno - 1) : NULL;
			Form_pg_attribute fatt = TupleDescAttr(RelationGetDescr(frel), k);
			Oid			proc = get_opfamily_proc(index->rd_opfamily[k], index->rd_opcintype[k],
												 index->rd_opcintype[k], BTEQUALIMAGE_PROC);

			if (att == NULL || fatt->attisdropped || fatt->atttypid != att->atttypid ||
				att->attlen <= 0 || !OidIsValid(proc) || proc >= FirstNormalObjectId ||
				!DatumGetBool(OidFunctionCall1Coll(proc, index->rd_indcollation[k],
												   ObjectIdGetDatum(index->rd_opcintype[k]))))
			{
				pfree(keys);
				keys = NULL;
				break;
			}
			keys[k] = attno;
		}
	}
	table_close(frel, AccessShareLock);
	index_close(index, AccessShareLock);
	table_close(rel, AccessShareLock);
	if (keys != NULL)
		*nkeys = n;
	return keys;
}
