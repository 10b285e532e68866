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
 * delta_rules.c pairs the terms.
 *
 * Only what makes the argument hold is taken: a primary key (its columns
 * are never null), the table alone (no inheritance children), equality by
 * an operator of the key index's btree family under a deterministic
 * collation (so equal means the same key), conditions of WHERE and inner
 * joins only, and no join with an alias (which would hide the tables'
 * names from the condition).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_relation.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "pg_kappa.h"

/*
 * The conditions of the join tree that every row of the query meets:
 * WHERE and inner joins' ON, nested ANDs flattened.  False when the tree
 * has a join that is not inner, or one with an alias.
 */
static bool
inner_conditions(Node *node, List **conds)
{
	if (IsA(node, RangeTblRef))
		return true;
	if (IsA(node, FromExpr))
	{
		FromExpr   *f = (FromExpr *) node;
		ListCell   *lc;

		foreach(lc, f->fromlist)
			if (!inner_conditions(lfirst(lc), conds))
				return false;
		kappa_add_and_conditions(conds, f->quals);
		return true;
	}
	if (IsA(node, JoinExpr))
	{
		JoinExpr   *j = (JoinExpr *) node;

		if (j->jointype != JOIN_INNER || j->alias != NULL ||
			!inner_conditions(j->larg, conds) || !inner_conditions(j->rarg, conds))
			return false;
		kappa_add_and_conditions(conds, j->quals);
		return true;
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

/* "NOT EXISTS (SELECT 1 FROM drelid WHERE conds)", conds over its Vars 1 */
static Node *
not_exists(Relation drel, List *conds)
{
	ParseState *pstate = make_parsestate(NULL);
	ParseNamespaceItem *nsitem;
	Query	   *sub = makeNode(Query);
	RangeTblRef *rtr = makeNode(RangeTblRef);
	SubLink    *sublink = makeNode(SubLink);

	nsitem = addRangeTableEntryForRelation(pstate, drel, AccessShareLock,
										   makeAlias("kappa_d", NIL), false, true);
	sub->commandType = CMD_SELECT;
	sub->querySource = QSRC_ORIGINAL;
	sub->canSetTag = true;
	sub->rtable = list_make1(nsitem->p_rte);
	rtr->rtindex = 1;
	sub->jointree = makeFromExpr(list_make1(rtr), (Node *) make_ands_explicit(conds));
	sub->targetList = list_make1(makeTargetEntry((Expr *) makeConst(INT4OID, -1, InvalidOid,
																	 sizeof(int32), Int32GetDatum(1),
																	 false, true),
												 1, NULL, false));
	sublink->subLinkType = EXISTS_SUBLINK;
	sublink->subLinkId = 0;
	sublink->testexpr = NULL;
	sublink->operName = NIL;
	sublink->subselect = (Node *) sub;
	sublink->location = -1;
	free_parsestate(pstate);
	return (Node *) makeBoolExpr(NOT_EXPR, list_make1(sublink), -1);
}

/*
 * Entry r's key join, or NULL: see the header.  conds are the query's
 * conditions every row meets.
 */
static KappaKeyJoin *
key_join(Query *query, const int *rte_source, int nrtes, int r, List *conds,
		 Oid drelid)
{
	RangeTblEntry *rte = rt_fetch(r, query->rtable);
	Relation	rel;
	Relation	index;
	Relation	drel;
	Oid			pkey;
	int			nkeys;
	List	   *by_partner = NIL;
	List	   *by_own_key = NIL;
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
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attno - 1);
		bool		found = false;
		ListCell   *lc;

		if (attno <= 0 || attno >= RelationGetDescr(drel)->natts ||
			TupleDescAttr(RelationGetDescr(drel), attno - 1)->atttypid != att->atttypid ||
			(OidIsValid(att->attcollation) && !get_collation_isdeterministic(att->attcollation)))
			break;
		foreach(lc, conds)
		{
			OpExpr	   *op = lfirst(lc);
			Var		   *a;
			Var		   *b;
			int			own;
			Var		   *dvar;
			Var		   *keyvar;
			Oid			eqop;
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
			{
				Var		   *other = own == 0 ? b : a;

				if (other->varno < 1 || other->varno > nrtes || other->varno > 64 ||
					rte_source[other->varno] < 0 || other->varattno <= 0)
					continue;
			}
			if (get_op_opfamily_strategy(op->opno, opfamily) != BTEqualStrategyNumber ||
				(OidIsValid(op->inputcollid) && !get_collation_isdeterministic(op->inputcollid)))
				continue;

			/* d_p's key column in the subquery (its only entry) */
			dvar = makeVar(1, attno, att->atttypid, att->atttypmod, att->attcollation, 0);

			/* d.key = partner, with the partner one level up */
			cond = copyObject(op);
			if (own == 0)
				linitial(cond->args) = with_var(linitial(op->args), dvar);
			else
				lsecond(cond->args) = with_var(lsecond(op->args), dvar);
			IncrementVarSublevelsUp(own == 0 ? lsecond(cond->args) : linitial(cond->args), 1, 0);
			by_partner = lappend(by_partner, cond);
			partners |= UINT64CONST(1) << ((own == 0 ? b : a)->varno - 1);

			/* d.key = the entry's own key, one level up */
			eqop = get_opfamily_member(opfamily, att->atttypid, att->atttypid,
									   BTEqualStrategyNumber);
			if (!OidIsValid(eqop))
				break;
			keyvar = makeVar(r, attno, att->atttypid, att->atttypmod, att->attcollation, 1);
			by_own_key = lappend(by_own_key,
								 make_opclause(eqop, BOOLOID, false, (Expr *) copyObject(dvar),
											   (Expr *) keyvar, InvalidOid, att->attcollation));
			found = true;
			break;
		}
		if (!found)
			break;
		if (k == nkeys - 1)
		{
			kj = palloc(sizeof(KappaKeyJoin));
			kj->partners = partners;
			kj->by_partner = not_exists(drel, by_partner);
			kj->by_own_key = not_exists(drel, by_own_key);
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
 * source i's delta d_<i>.  Entries past the 64th have none (the expanded
 * rule's masks have 64 bits).  Allocated in the current memory context.
 */
KappaKeyJoin **
kappa_key_joins(Query *query, const int *rte_source, int nrtes, const Oid *drelids)
{
	KappaKeyJoin **kjs = palloc0(sizeof(KappaKeyJoin *) * (nrtes + 1));
	List	   *conds = NIL;

	if (query->jointree == NULL || !inner_conditions((Node *) query->jointree, &conds))
		return kjs;
	for (int r = 1; r <= nrtes && r <= 64; r++)
		if (rte_source[r] >= 0)
			kjs[r] = key_join(query, rte_source, nrtes, r, conds, drelids[rte_source[r]]);
	return kjs;
}
