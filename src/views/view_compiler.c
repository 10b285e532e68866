/*-------------------------------------------------------------------------
 *
 * view_compiler.c
 *	  Parses and analyses a derived view's query, refuses what pg_kappa
 *	  cannot maintain (naming the construct), and deparses the query over
 *	  other tables for the delta engine.
 *
 * The result, a KappaViewDef, says what kind of view it is, which tables it
 * reads, each table's key, which range table entries read which table,
 * and which output columns form the derived table's unique key: the group
 * key for aggregates, the sources' primary keys otherwise.
 *
 * The delta engine never evaluates anything itself: kappa_deparse prints
 * the analysed query back to SQL with chosen range table entries pointing
 * at other tables of identical shape (the worker's copies of the sources,
 * or a work table holding only the rows a batch touched), so PostgreSQL's
 * own executor does all the work.  Names are printed fully qualified.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/regproc.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "pg_kappa.h"

/* the hint of what only delta engine 2 maintains, from either entry point */
#define ENGINE2_HINT "Use delta engine 2: the default pg_kappa.engine = 2 for kappa.create_view, or leave out engine => 1 in kappa.alter_view."

static void
not_supported(const char *construct)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("derived views cannot use %s", construct)));
}

/* As not_supported, with a hint saying what to write instead. */
static void
not_supported_hint(const char *construct, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("derived views cannot use %s", construct),
			 errhint("%s", hint)));
}

/*
 * Does the function take a timestamp with time zone?  Such a stable
 * function (date_trunc, to_char, ...) depends on the TimeZone setting; its
 * immutable variant takes a timestamp without one.
 */
static bool
takes_timestamptz(Oid funcid)
{
	Oid		   *argtypes;
	int			nargs;

	(void) get_func_signature(funcid, &argtypes, &nargs);
	for (int i = 0; i < nargs; i++)
		if (argtypes[i] == TIMESTAMPTZOID)
			return true;
	return false;
}

/* Is funcid a function of pg_catalog named one of names[n]? */
static bool
catalog_function_in(Oid funcid, const char *const *names, int n)
{
	const char *name;

	if (get_func_namespace(funcid) != PG_CATALOG_NAMESPACE)
		return false;
	name = get_func_name(funcid);
	for (int i = 0; i < n; i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/* Is the function one of PostgreSQL's that read the clock? */
static bool
clock_function(Oid funcid)
{
	static const char *const names[] = {
		"now", "clock_timestamp", "statement_timestamp", "transaction_timestamp",
		"timeofday"
	};

	return catalog_function_in(funcid, names, lengthof(names));
}

/* The SQL keyword of a CURRENT_DATE, CURRENT_USER, ... node. */
static const char *
sql_value_function_name(SQLValueFunction *svf)
{
	switch (svf->op)
	{
		case SVFOP_CURRENT_DATE:
			return "CURRENT_DATE";
		case SVFOP_CURRENT_TIME:
		case SVFOP_CURRENT_TIME_N:
			return "CURRENT_TIME";
		case SVFOP_CURRENT_TIMESTAMP:
		case SVFOP_CURRENT_TIMESTAMP_N:
			return "CURRENT_TIMESTAMP";
		case SVFOP_LOCALTIME:
		case SVFOP_LOCALTIME_N:
			return "LOCALTIME";
		case SVFOP_LOCALTIMESTAMP:
		case SVFOP_LOCALTIMESTAMP_N:
			return "LOCALTIMESTAMP";
		case SVFOP_CURRENT_ROLE:
			return "CURRENT_ROLE";
		case SVFOP_CURRENT_USER:
			return "CURRENT_USER";
		case SVFOP_USER:
			return "USER";
		case SVFOP_SESSION_USER:
			return "SESSION_USER";
		case SVFOP_CURRENT_CATALOG:
			return "CURRENT_CATALOG";
		case SVFOP_CURRENT_SCHEMA:
			return "CURRENT_SCHEMA";
	}
	return "a SQL value function";
}

/* ----------
 * Expression checks
 * ----------
 */

typedef struct CheckContext
{
	Query	   *query;
	Oid			bad_func;
	bool		subqueries;		/* check_sublinks accepted the query's */
} CheckContext;

static bool
mutable_checker(Oid func_id, void *context)
{
	CheckContext *cxt = context;

	if (func_volatile(func_id) != PROVOLATILE_IMMUTABLE)
	{
		cxt->bad_func = func_id;
		return true;
	}
	return false;
}

/*
 * Aggregates whose result the order of their input decides: a view may use
 * them only with that order given (ordered_input).
 */
static bool
order_sensitive_aggregate(Oid aggfnoid)
{
	static const char *const names[] = {"string_agg", "array_agg"};

	return catalog_function_in(aggfnoid, names, lengthof(names));
}

/*
 * Is agg's input ordered by every value it aggregates (ORDER BY or
 * DISTINCT, which sorts)?  Then rows that tie give the same values, and the
 * result is the same whatever order the rows are read in.  Constant
 * arguments (string_agg's delimiter) need no order.
 */
static bool
ordered_input(Aggref *agg)
{
	ListCell   *lc;

	foreach(lc, agg->args)
	{
		TargetEntry *tle = lfirst(lc);

		if (tle->resjunk || IsA(tle->expr, Const))
			continue;
		if (tle->ressortgroupref == 0)
			return false;
	}
	return true;
}

static bool
allowed_aggregate(Oid aggfnoid)
{
	static const char *const names[] = {
		"count", "sum", "avg", "min", "max", "bool_and", "bool_or", "every",
		"string_agg", "array_agg"
	};

	return catalog_function_in(aggfnoid, names, lengthof(names));
}

static bool
check_expression_walker(Node *node, CheckContext *cxt)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		if (var->varattno < 0)
			not_supported(psprintf("system column \"%s\"",
								   get_rte_attribute_name(rt_fetch(var->varno, cxt->query->rtable),
														  var->varattno)));
		if (var->varattno == 0 && var->varlevelsup == 0)
			not_supported("whole-row references");
		return false;
	}
	if (IsA(node, Aggref))
	{
		Aggref	   *agg = (Aggref *) node;

		if (!allowed_aggregate(agg->aggfnoid))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("derived views cannot use aggregate function %s",
							format_procedure(agg->aggfnoid)),
					 errhint("Supported aggregates are count, sum, avg, min, max, bool_and, bool_or, every, string_agg and array_agg.")));
		if (order_sensitive_aggregate(agg->aggfnoid) && !ordered_input(agg))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("derived views cannot use %s without ORDER BY the values it aggregates",
							get_func_name(agg->aggfnoid)),
					 errdetail("The order in which rows are read would decide its result, and a derived view must give the same rows whenever it is recomputed from the same source rows."),
					 errhint("Order its input by its argument, as in string_agg(name, ', ' ORDER BY name) or array_agg(id ORDER BY id).")));
	}
	if (IsA(node, NextValueExpr))
		not_supported("sequence functions");
	if (IsA(node, Param) && (!cxt->subqueries || ((Param *) node)->paramkind != PARAM_SUBLINK))
		not_supported("parameters");
	if (IsA(node, SQLValueFunction))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("derived views cannot use %s, which is not immutable",
						sql_value_function_name((SQLValueFunction *) node)),
				 errdetail("A derived view must give the same rows whenever it is recomputed from the same source rows."),
				 ((SQLValueFunction *) node)->op <= SVFOP_LOCALTIMESTAMP_N ?
				 errhint("A view cannot follow the clock: keep the rows, and compare with the current time when you read the derived table.") : 0));
	if (IsA(node, Query))
	{
		Query	   *outer = cxt->query;
		bool		result;

		if (!cxt->subqueries)
			not_supported("subqueries");
		cxt->query = (Query *) node;
		result = query_tree_walker((Query *) node, check_expression_walker, cxt, 0);
		cxt->query = outer;
		return result;
	}
	if (expression_tree_walker(node, check_expression_walker, cxt))
		return true;

	/*
	 * After the arguments: the innermost such function is named (now() in
	 * now() - interval '1 day', not the subtraction that takes its result).
	 */
	if (check_functions_in_node(node, mutable_checker, cxt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("derived views cannot use function %s, which is not immutable",
						format_procedure(cxt->bad_func)),
				 errdetail("A derived view must give the same rows whenever it is recomputed from the same source rows."),
				 clock_function(cxt->bad_func) ?
				 errhint("A view cannot follow the clock: keep the rows, and compare with the current time when you read the derived table.") :
				 func_volatile(cxt->bad_func) == PROVOLATILE_STABLE && takes_timestamptz(cxt->bad_func) ?
				 errhint("Its result depends on the TimeZone setting. Convert the timestamp with time zone first, as in date_trunc('hour', ts AT TIME ZONE 'UTC').") : 0));
	return false;
}

/* ----------
 * Sources
 * ----------
 */

/* The columns that identify a source row: its replica identity. */
static List *
source_key(Relation rel, int engine)
{
	Oid			indexoid;
	Relation	index;
	List	   *result = NIL;

	/*
	 * Engine 2 takes whole old row images from the WAL (REPLICA IDENTITY
	 * FULL, which kappa.create_view sees to): a key only tells whether the
	 * view can have a unique index.
	 */
	if (engine >= 2)
	{
		RelationGetIndexList(rel);
		indexoid = OidIsValid(rel->rd_pkindex) ? rel->rd_pkindex : rel->rd_replidindex;
		if (!OidIsValid(indexoid))
			return NIL;
		index = index_open(indexoid, AccessShareLock);
		for (int i = 0; i < index->rd_index->indnkeyatts; i++)
			result = lappend_int(result, index->rd_index->indkey.values[i]);
		index_close(index, AccessShareLock);
		return result;
	}

	if (rel->rd_rel->relreplident == REPLICA_IDENTITY_NOTHING)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("source table \"%s\" has REPLICA IDENTITY NOTHING",
						RelationGetRelationName(rel)),
				 errdetail("Deleted rows of such a table cannot be identified in the change stream."),
				 errhint("Use ALTER TABLE ... REPLICA IDENTITY DEFAULT with a primary key.")));
	indexoid = RelationGetReplicaIndex(rel);
	if (!OidIsValid(indexoid) &&
		rel->rd_rel->relreplident == REPLICA_IDENTITY_FULL)
	{
		RelationGetIndexList(rel);
		indexoid = rel->rd_pkindex;
	}
	if (!OidIsValid(indexoid))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("source table \"%s\" has no primary key or replica identity index",
						RelationGetRelationName(rel)),
				 errhint("Add a primary key to the table.")));

	index = index_open(indexoid, AccessShareLock);
	for (int i = 0; i < index->rd_index->indnkeyatts; i++)
		result = lappend_int(result, index->rd_index->indkey.values[i]);
	index_close(index, AccessShareLock);
	return result;
}

static void
check_source(Relation rel, int engine)
{
	const char *name = RelationGetRelationName(rel);
	Oid			nsp = RelationGetNamespace(rel);
	char	   *nspname = get_namespace_name(nsp);
	AclResult	aclresult;

	switch (rel->rd_rel->relkind)
	{
		case RELKIND_RELATION:
			break;
		case RELKIND_PARTITIONED_TABLE:
			/* engine 2 reads it live; engine 1 would copy a table of no rows */
			if (engine < 2)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("derived views over partitioned table \"%s\" need delta engine 2", name),
						 errhint(ENGINE2_HINT)));
			/* its rows are its partitions': their changes must be in the WAL */
			{
				Oid			part = kappa_unlogged_partition(RelationGetRelid(rel));

				if (OidIsValid(part))
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("derived views cannot use partitioned table \"%s\", whose partition \"%s\" is a foreign, unlogged or temporary table",
									name, get_rel_name(part)),
							 errdetail("Changes of such a table are not in the WAL, from which the views are maintained.")));
			}
			break;
		case RELKIND_VIEW:
			not_supported_hint(psprintf("view \"%s\" as a source", name),
							   "Write the view's query over the tables it reads.");
			break;
		case RELKIND_MATVIEW:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("derived views cannot use materialized view \"%s\" as a source", name),
					 errdetail("REFRESH MATERIALIZED VIEW writes no row changes to the WAL."),
					 errhint("Create a derived view with the materialized view's query instead.")));
			break;
		case RELKIND_FOREIGN_TABLE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("derived views cannot use foreign table \"%s\" as a source", name),
					 errdetail("Changes of a foreign table are not in this server's WAL.")));
			break;
		default:
			not_supported(psprintf("relation \"%s\" as a source", name));
	}
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("derived views cannot use temporary table \"%s\" as a source", name),
				 errdetail("Changes to temporary tables are not written to the WAL.")));
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_UNLOGGED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("derived views cannot use unlogged table \"%s\" as a source", name),
				 errdetail("Changes to unlogged tables are not written to the WAL.")));
	if (IsCatalogNamespace(nsp) || IsToastNamespace(nsp))
		not_supported(psprintf("system catalog \"%s\" as a source", name));
	if (strcmp(nspname, "kappa") == 0 || strncmp(nspname, "kappa_v", 7) == 0)
		not_supported(psprintf("pg_kappa's internal table \"%s\" as a source", name));

	aclresult = pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, name);

	if (rel->rd_rel->relrowsecurity &&
		!has_bypassrls_privilege(GetUserId()) &&
		!(rel->rd_rel->relowner == GetUserId() && !rel->rd_rel->relforcerowsecurity))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("derived views cannot use table \"%s\", which has row-level security enabled", name),
				 errdetail("The view would be maintained from every row of the table, including rows the policies hide from you."),
				 errhint("Only a role that bypasses row-level security can create a view over this table.")));
}

/*
 * A source is read without its inheritance children: the worker sees the
 * changes of the tables it reads, not of their children, so "FROM t" is
 * maintained as "FROM ONLY t", and says so in the view's canonical query.
 * A table that has children now is refused unless the query says ONLY:
 * the view would otherwise start with the children's rows and never see
 * their changes.
 */
static void
check_inheritance(RangeTblEntry *rte, Relation rel)
{
	/* a partitioned table is read with its partitions, which hold its rows */
	if (!rte->inh || rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		return;
	if (find_inheritance_children(RelationGetRelid(rel), NoLock) != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("derived views cannot read table \"%s\" together with its inheritance children",
						RelationGetRelationName(rel)),
				 errdetail("Changes of the child tables are not maintained."),
				 errhint("Write FROM ONLY %s to read the table's own rows.",
						 quote_identifier(RelationGetRelationName(rel)))));
	rte->inh = false;
}

/* ----------
 * Keys
 * ----------
 */

/* The non-junk target entry that is exactly this Var, or NULL. */
static TargetEntry *
find_output_var(Query *query, int rtindex, AttrNumber attnum)
{
	ListCell   *lc;

	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		Node	   *expr = (Node *) tle->expr;

		if (tle->resjunk)
			continue;
		expr = flatten_join_alias_vars(query, expr);
		if (IsA(expr, Var) &&
			((Var *) expr)->varno == rtindex &&
			((Var *) expr)->varattno == attnum &&
			((Var *) expr)->varlevelsup == 0)
			return tle;
	}
	return NULL;
}

static void
collect_index_columns(Node *node, int rtindex, List **cols, Query *query)
{
	List	   *vars = pull_var_clause(node, PVC_RECURSE_AGGREGATES | PVC_RECURSE_PLACEHOLDERS);
	ListCell   *lc;

	foreach(lc, vars)
	{
		Var		   *var = lfirst(lc);

		{
			Node	   *flat = flatten_join_alias_vars(query, (Node *) var);

			if (!IsA(flat, Var))
				continue;
			var = (Var *) flat;
		}
		if (var->varno == rtindex && var->varattno > 0)
			*cols = list_append_unique_int(*cols, var->varattno);
	}
}

/*
 * The table of range table entry rte as a source of the view: checked, and
 * added to def->sources unless it is there already.  Returns its number.
 */
static int
add_source(KappaViewDef *def, RangeTblEntry *rte, int engine)
{
	Relation	rel = table_open(rte->relid, AccessShareLock);
	int			srcno = -1;

	check_source(rel, engine);
	check_inheritance(rte, rel);
	if (kappa_is_derived_table(rte->relid))
		not_supported_hint(psprintf("derived view \"%s\" as a source",
									RelationGetRelationName(rel)),
						   psprintf("Write the query over the tables that derived view \"%s\" reads.",
									RelationGetRelationName(rel)));
	for (int i = 0; i < list_length(def->sources); i++)
	{
		if (list_nth_oid(def->sources, i) == rte->relid)
			srcno = i;
	}
	if (srcno < 0)
	{
		def->sources = lappend_oid(def->sources, rte->relid);
		def->source_keys = lappend(def->source_keys, source_key(rel, engine));
		def->index_columns = lappend(def->index_columns, NIL);
		srcno = list_length(def->sources) - 1;
	}
	table_close(rel, AccessShareLock);
	return srcno;
}

/* ... in the conditions of the joins under a FROM item? */
static bool
from_has_sublink(Node *node)
{
	if (IsA(node, JoinExpr))
		return checkExprHasSubLink(((JoinExpr *) node)->quals) ||
			from_has_sublink(((JoinExpr *) node)->larg) ||
			from_has_sublink(((JoinExpr *) node)->rarg);
	return false;
}

/* Add the conditions the AND tree qual joins, nested ANDs flattened. */
void
kappa_add_and_conditions(List **conds, Node *qual)
{
	ListCell   *lc;

	if (qual == NULL)
		return;
	if (is_andclause(qual))
	{
		foreach(lc, ((BoolExpr *) qual)->args)
			kappa_add_and_conditions(conds, lfirst(lc));
	}
	else
		*conds = lappend(*conds, qual);
}

/*
 * The conditions of a join tree (a FromExpr or a JoinExpr): its WHERE
 * clause's and its joins' ON conditions, nested ANDs flattened.
 */
List *
kappa_join_conditions(Node *node)
{
	List	   *conds = NIL;
	ListCell   *lc;

	if (IsA(node, FromExpr))
	{
		foreach(lc, ((FromExpr *) node)->fromlist)
			conds = list_concat(conds, kappa_join_conditions(lfirst(lc)));
		kappa_add_and_conditions(&conds, ((FromExpr *) node)->quals);
	}
	else if (IsA(node, JoinExpr))
	{
		conds = kappa_join_conditions(((JoinExpr *) node)->larg);
		conds = list_concat(conds, kappa_join_conditions(((JoinExpr *) node)->rarg));
		kappa_add_and_conditions(&conds, ((JoinExpr *) node)->quals);
	}
	return conds;
}

/* The PARAM_SUBLINK parameters of an IN's test: the subquery's output. */
static Node *
sublink_params_mutator(Node *node, List *tlist)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_SUBLINK)
	{
		TargetEntry *tle = list_nth(tlist, ((Param *) node)->paramid - 1);

		return copyObject((Node *) tle->expr);
	}
	return expression_tree_mutator(node, sublink_params_mutator, tlist);
}

typedef struct SemiVarsContext
{
	Query	   *outer;
	int			outer_rt;		/* the kept table's entry */
	const char *table;			/* the subquery's table, for messages */
} SemiVarsContext;

/* The variables of a subquery's condition read its table and the kept one. */
static bool
semi_vars_walker(Node *node, SemiVarsContext *cxt)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var) && ((Var *) node)->varlevelsup == 1 &&
		((Var *) node)->varno != cxt->outer_rt)
	{
		Var		   *var = (Var *) node;
		RangeTblEntry *rte = rt_fetch(var->varno, cxt->outer->rtable);

		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a subquery of a derived view may be matched only with \"%s\"",
						rt_fetch(cxt->outer_rt, cxt->outer->rtable)->eref->aliasname),
				 errdetail("The subquery over \"%s\" (its condition, or the left side of its IN) reads column \"%s\" of \"%s\".",
						   cxt->table,
						   rte->rtekind == RTE_RELATION ?
						   get_attname(rte->relid, var->varattno, false) : "?",
						   rte->eref->aliasname)));
	}
	return expression_tree_walker(node, semi_vars_walker, cxt);
}

/*
 * Subqueries (engine 2): only as conditions the WHERE clause ANDs together,
 *
 *	   EXISTS (SELECT ... FROM t WHERE ...), NOT EXISTS (...), x IN (SELECT y FROM t WHERE ...)
 *
 * over one table t each, reading t and the table whose rows the view keeps
 * by key (the first one, as with LEFT JOIN: check_left_joins).  Whether a
 * kept row passes depends on its own values and on the rows of t its
 * condition matches: a batch recomputes the kept rows it changed and those
 * matched by a row of t it changed, before or after (delta_rules.c).  NOT
 * IN is refused: one NULL added to t changes every kept row.  Each t
 * becomes a source; def->semijoins gets what the terms need.
 */
static void
check_sublinks(KappaViewDef *def, int engine)
{
	Query	   *query = def->query;
	List	   *conds = NIL;
	ListCell   *lc;

	if (engine < 2)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("derived views with subqueries need delta engine 2"),
				 errhint(ENGINE2_HINT)));
	if (checkExprHasSubLink((Node *) query->targetList) || checkExprHasSubLink(query->havingQual))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("derived views cannot use subqueries outside the WHERE clause"),
				 errhint("A subquery can be a condition of the WHERE clause: EXISTS (...), NOT EXISTS (...) or ... IN (...).")));
	foreach(lc, query->jointree->fromlist)
	{
		if (from_has_sublink(lfirst(lc)))
			not_supported("subqueries in join conditions");
	}
	kappa_add_and_conditions(&conds, query->jointree->quals);
	foreach(lc, conds)
	{
		Node	   *cond = lfirst(lc);
		bool		negated = false;
		SubLink    *sublink;
		Query	   *sub;
		RangeTblEntry *rte;
		KappaSemiJoin *semi;

		if (is_notclause(cond))
		{
			cond = (Node *) get_notclausearg((Expr *) cond);
			negated = true;
		}
		if (!IsA(cond, SubLink))
		{
			if (checkExprHasSubLink(cond))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("derived views cannot use a subquery inside another condition"),
						 errhint("A subquery must be one of the conditions the WHERE clause ANDs together: EXISTS (...), NOT EXISTS (...) or ... IN (...).")));
			continue;
		}
		sublink = (SubLink *) cond;
		if (sublink->subLinkType == ANY_SUBLINK && negated)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("derived views cannot use NOT IN (subquery)"),
					 errdetail("One NULL in the subquery's rows makes NOT IN false for every row."),
					 errhint("Write NOT EXISTS (SELECT ... WHERE ...) instead.")));
		if (sublink->subLinkType == ALL_SUBLINK)
			not_supported_hint("... op ALL (subquery)",
							   "Write NOT EXISTS (SELECT ... WHERE ...) with the negated comparison instead.");
		if (sublink->subLinkType != EXISTS_SUBLINK && sublink->subLinkType != ANY_SUBLINK)
			not_supported_hint("this kind of subquery",
							   "A subquery can be a condition of the WHERE clause: EXISTS (...), NOT EXISTS (...), ... IN (...) or ... op ANY (...).");

		sub = (Query *) sublink->subselect;
		if (sub->cteList)
			not_supported("WITH in a subquery");
		if (sub->setOperations)
			not_supported("UNION, INTERSECT or EXCEPT in a subquery");
		if (sub->groupClause || sub->hasAggs || sub->havingQual || sub->groupingSets)
			not_supported("GROUP BY, HAVING or aggregates in a subquery");
		if (sub->hasWindowFuncs)
			not_supported("window functions in a subquery");
		if (sub->hasTargetSRFs)
			not_supported("set-returning functions in a subquery");
		if (sub->hasSubLinks)
			not_supported("a subquery inside a subquery");
		if (sub->sortClause || sub->limitCount || sub->limitOffset)
			not_supported("ORDER BY, LIMIT or OFFSET in a subquery");
		if (sub->distinctClause)
			not_supported("DISTINCT in a subquery");
		if (sub->rowMarks)
			not_supported("FOR UPDATE or FOR SHARE in a subquery");
		if (list_length(sub->rtable) != 1 || list_length(sub->jointree->fromlist) != 1 ||
			!IsA(linitial(sub->jointree->fromlist), RangeTblRef))
			not_supported("subqueries over more than one table");
		rte = linitial(sub->rtable);
		if (rte->rtekind != RTE_RELATION)
			not_supported("subqueries over anything but a table");
		if (rte->tablesample)
			not_supported("TABLESAMPLE");

		semi = palloc0(sizeof(KappaSemiJoin));
		semi->srcno = add_source(def, rte, engine);
		semi->rte = copyObject(rte);
		semi->cond = copyObject(sub->jointree->quals);
		if (sublink->subLinkType == ANY_SUBLINK)
		{
			/* x IN (SELECT y ...): the subquery's rows with x = y */
			Node	   *test = copyObject(sublink->testexpr);

			IncrementVarSublevelsUp(test, 1, 0);
			test = sublink_params_mutator(test, sub->targetList);
			semi->cond = (Node *) make_and_qual(semi->cond, test);
		}
		def->semijoins = lappend(def->semijoins, semi);
	}
}

/*
 * The subqueries' conditions, checked against the kept table (def's
 * preserved_rt) and rewritten as conditions of the outer query with the
 * subquery's table appended to its range table (delta_rules.c's terms):
 * its columns at the new entry, the kept table's at level 0.  Columns
 * they compare for equality are worth an index.
 */
static void
finish_semijoins(KappaViewDef *def)
{
	ListCell   *lc;

	foreach(lc, def->semijoins)
	{
		KappaSemiJoin *semi = lfirst(lc);
		SemiVarsContext cxt = {def->query, def->preserved_rt, semi->rte->eref->aliasname};
		ListCell   *lq;
		List	   *cols;

		(void) semi_vars_walker(semi->cond, &cxt);

		/* t.a = k.b: a kept row recomputed looks t up by a */
		cols = list_nth(def->index_columns, semi->srcno);
		foreach(lq, make_ands_implicit((Expr *) semi->cond))
		{
			OpExpr	   *op = lfirst(lq);
			Var		   *inner;
			Var		   *outer;

			if (!IsA(op, OpExpr) || list_length(op->args) != 2)
				continue;
			inner = (Var *) strip_implicit_coercions(linitial(op->args));
			outer = (Var *) strip_implicit_coercions(lsecond(op->args));
			if (IsA(inner, Var) && IsA(outer, Var) && inner->varlevelsup == 1)
			{
				Var		   *swap = inner;

				inner = outer;
				outer = swap;
			}
			if (IsA(inner, Var) && IsA(outer, Var) && inner->varlevelsup == 0 &&
				outer->varlevelsup == 1 && inner->varattno > 0)
				cols = list_append_unique_int(cols, inner->varattno);
		}
		list_nth_cell(def->index_columns, semi->srcno)->ptr_value = cols;

		OffsetVarNodes(semi->cond, def->nrtes, 0);
		IncrementVarSublevelsUp(semi->cond, -1, 1);
	}
}

/*
 * Has rel a primary key that is deferrable (which the relcache does not
 * count as one: its rows need not be unique until commit)?
 */
static bool
has_deferrable_primary_key(Relation rel)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		result = false;

	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));

		if (!HeapTupleIsValid(tup))
			continue;
		if (((Form_pg_index) GETSTRUCT(tup))->indisprimary)
			result = true;
		ReleaseSysCache(tup);
	}
	list_free(indexes);
	return result;
}

/*
 * Views with LEFT JOIN: a table whose rows are all kept, then LEFT JOINs
 * of one table each, on conditions over that table and the kept one
 *
 *	   SELECT ... FROM a LEFT JOIN b ON b.x = a.y LEFT JOIN c ON c.z = a.w
 *	   WHERE ... [GROUP BY a.id, ... [HAVING ...]]
 *
 * They are maintained by the kept table's key, which the view must select
 * (and group by, when it has GROUP BY: each group then belongs to one kept
 * row): a batch finds the keys of the kept rows it changed or whose
 * partners it changed, and those rows' part of the view is computed again
 * (delta_rules.c).  Anything else with an outer join is refused.
 */
static void
check_left_joins(KappaViewDef *def)
{
	Query	   *query = def->query;
	Node	   *node;
	int			preserved;
	List	   *key;
	ListCell   *lc;
	const char *what;

	/* what the messages call the construct: the LEFT JOIN, or a subquery */
	what = "a subquery";
	for (node = linitial(query->jointree->fromlist); IsA(node, JoinExpr);
		 node = ((JoinExpr *) node)->larg)
	{
		if (((JoinExpr *) node)->jointype == JOIN_LEFT)
			what = "LEFT JOIN";
	}
	if (query->groupClause == NIL && query->hasAggs)
		not_supported(psprintf("%s together with aggregates without GROUP BY", what));
	if (query->groupingSets != NIL)
		not_supported(psprintf("%s together with GROUPING SETS", what));
	if (list_length(query->jointree->fromlist) != 1)
		not_supported(psprintf("%s together with other tables in FROM", what));

	/*
	 * Down the left-deep chain of joins, inner or LEFT, to the kept table.
	 * Every row of the view holds one row of it: a batch recomputes the
	 * rows of the kept rows it may have changed, found by delta_rules.c's
	 * outer_key_sql.  A join's condition reads only tables to its left and
	 * the one it joins, as SQL's scoping has it.
	 */
	node = linitial(query->jointree->fromlist);
	while (IsA(node, JoinExpr))
	{
		JoinExpr   *j = (JoinExpr *) node;

		if (j->jointype != JOIN_LEFT && j->jointype != JOIN_INNER)
			not_supported("RIGHT or FULL outer joins");
		if (!IsA(j->rarg, RangeTblRef))
			not_supported(psprintf("%s of a parenthesized join",
								   j->jointype == JOIN_LEFT ? "a LEFT JOIN" : "a join"));
		node = j->larg;
	}
	if (!IsA(node, RangeTblRef))
		not_supported("this kind of FROM item");
	preserved = ((RangeTblRef *) node)->rtindex;

	/*
	 * The kept table's primary key, selected: rows are recomputed by it.
	 * (Not a replica identity index: the view makes the table's replica
	 * identity FULL.)
	 */
	{
		Relation	rel = table_open(rt_fetch(preserved, query->rtable)->relid, AccessShareLock);

		RelationGetIndexList(rel);
		if (!OidIsValid(rel->rd_pkindex))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the first table of a derived view with %s must have a primary key", what),
					 has_deferrable_primary_key(rel) ?
					 errdetail("The primary key of table \"%s\" is deferrable: its rows need not be unique until commit.",
							   RelationGetRelationName(rel)) :
					 errdetail("Table \"%s\" has no primary key.", RelationGetRelationName(rel))));
		table_close(rel, AccessShareLock);
	}
	key = (List *) list_nth(def->source_keys, def->rte_source[preserved]);
	foreach(lc, key)
	{
		AttrNumber	attnum = lfirst_int(lc);
		TargetEntry *tle = find_output_var(query, preserved, attnum);
		Oid			relid = rt_fetch(preserved, query->rtable)->relid;

		if (tle == NULL && query->groupClause != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a derived view with %s and GROUP BY must group by the key of \"%s\"",
							what, get_rel_name(relid)),
					 errdetail("Column \"%s\" of \"%s\" is not in GROUP BY and the select list as a column of its own.",
							   get_attname(relid, attnum, false), get_rel_name(relid)),
					 errhint("The view is maintained by the key of its first table.")));
		if (tle == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a derived view with %s must select the key of \"%s\"",
							what, get_rel_name(relid)),
					 errdetail("Column \"%s\" of \"%s\" is not in the select list as a column of its own (an expression over it does not count).",
							   get_attname(relid, attnum, false), get_rel_name(relid)),
					 errhint("The view is maintained by the key of its first table.")));
		if (query->groupClause != NIL &&
			(tle->ressortgroupref == 0 ||
			 get_sortgroupref_clause_noerr(tle->ressortgroupref, query->groupClause) == NULL))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a derived view with %s and GROUP BY must group by the key of \"%s\"",
							what, get_rel_name(relid)),
					 errdetail("Column \"%s\" of \"%s\" is not in the GROUP BY clause.",
							   get_attname(relid, attnum, false), get_rel_name(relid)),
					 errhint("The view is maintained by the key of its first table: each group must belong to one of its rows.")));
		def->preserved_key = lappend(def->preserved_key, tle->resname);
	}
	def->preserved_rt = preserved;
	/* without GROUP BY a bag; with it, keyed by the group key */
	if (query->groupClause == NIL)
	{
		def->bag = true;
		def->key_columns = NIL;
	}
}

/*
 * Error context callback around the parse and analysis of a view's query:
 * an error position there counts characters of the query, not of the
 * statement that passed it (kappa.create_view's call), so it is turned into
 * a position in the query, which is reported with the error.
 */
static void
view_query_error_callback(void *arg)
{
	const char *sql = (const char *) arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(sql);
	}
}

/* Does the select list have every column of key (attnums) of rtindex? */
static bool
keys_selected(Query *query, int rtindex, List *key)
{
	ListCell   *lc;

	foreach(lc, key)
		if (find_output_var(query, rtindex, lfirst_int(lc)) == NULL)
			return false;
	return true;
}

/* ----------
 * Entry points
 * ----------
 */

/*
 * Is typid's default equality one of PostgreSQL's own?  The worker finds a
 * view's groups with statements that say "=", read with search_path
 * pg_catalog: for any other type "=" would mean another operator (citext's
 * falls back to text's, case-sensitive where GROUP BY is not) or none.
 * (Rows of a view without GROUP BY are found by their sources' keys, whose
 * values the view copies exactly: any equality that holds for a value and
 * itself finds them.)
 */
static bool
has_builtin_equality(Oid typid)
{
	TypeCacheEntry *tc = lookup_type_cache(typid, TYPECACHE_EQ_OPR);

	return OidIsValid(tc->eq_opr) &&
		get_func_namespace(get_opcode(tc->eq_opr)) == PG_CATALOG_NAMESPACE;
}

/*
 * Analyse sql and check that pg_kappa can maintain it with the given delta
 * engine: 1 keeps copies of the sources and needs every source's key in
 * the select list (or a GROUP BY); 2 takes signed deltas from the WAL and
 * maintains views without a unique key as bags.
 */
KappaViewDef *
kappa_compile_view(const char *sql, int engine)
{
	List	   *raw;
	RawStmt    *stmt;
	Query	   *query;
	KappaViewDef *def;
	CheckContext cxt;
	ListCell   *lc;
	int			rtindex;
	int			nrelations = 0;
	bool		aggregate;
	bool		has_left_join = false;
	ErrorContextCallback errcallback;

	errcallback.callback = view_query_error_callback;
	errcallback.arg = unconstify(char *, sql);
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the query of a derived view must be exactly one SELECT statement")));
	stmt = linitial_node(RawStmt, raw);
	if (!IsA(stmt->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the query of a derived view must be a SELECT statement")));
	if (((SelectStmt *) stmt->stmt)->intoClause)
		not_supported("SELECT INTO");

	query = parse_analyze_fixedparams(stmt, sql, NULL, 0, NULL);

	error_context_stack = errcallback.previous;

	/* a table of no columns: the statements pg_kappa writes need one */
	if (ExecCleanTargetListLength(query->targetList) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("derived views must have at least one column"),
				 errhint("Select a column, or count(*) to count the rows.")));

	/* query-level constructs, in the order a reader meets them */
	if (query->commandType != CMD_SELECT || query->utilityStmt)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the query of a derived view must be a SELECT statement")));
	if (query->cteList)
		not_supported_hint("WITH queries", "Write the query without WITH, joining the tables it reads directly.");
	if (query->setOperations)
		not_supported_hint("UNION, INTERSECT or EXCEPT", "Create a derived view for each branch, and combine them when you read them.");
	if (query->distinctClause)
	{
		/*
		 * SELECT DISTINCT without GROUP BY or aggregates has the rows of
		 * GROUP BY every output column: maintained as that, a group per
		 * distinct row, which exists while it counts at least one row.
		 */
		if (query->hasDistinctOn)
			not_supported_hint("DISTINCT ON",
							   "Keep every row in the view, or group them with GROUP BY, and apply DISTINCT ON when you read the derived table.");
		if (query->groupClause != NIL || query->hasAggs || query->havingQual)
			not_supported("DISTINCT together with GROUP BY or aggregates");
		foreach(lc, query->rtable)
		{
			if (((RangeTblEntry *) lfirst(lc))->rtekind == RTE_JOIN &&
				((RangeTblEntry *) lfirst(lc))->jointype != JOIN_INNER)
				not_supported("DISTINCT together with outer joins");
		}
		query->groupClause = query->distinctClause;
		query->distinctClause = NIL;
	}
	if (query->hasWindowFuncs)
		not_supported_hint("window functions",
						   "Keep the rows in the view, and compute window functions when you read the derived table.");
	if (query->hasTargetSRFs)
		not_supported_hint("set-returning functions",
						   "Keep the rows in the view, and call the function when you read the derived table.");
	if (query->groupingSets)
		not_supported_hint("GROUPING SETS, ROLLUP or CUBE",
						   "Group by every column of the grouping sets, and add up the coarser groups when you read the derived table.");
	if (query->sortClause)
		not_supported_hint("ORDER BY", "Leave ORDER BY out, and order the rows when you read the derived table.");
	if (query->limitCount || query->limitOffset)
		not_supported_hint("LIMIT or OFFSET", "Keep every row in the view, and apply LIMIT when you read the derived table.");
	if (query->rowMarks)
		not_supported("FOR UPDATE or FOR SHARE");

	def = palloc0(sizeof(KappaViewDef));
	def->query = query;
	def->nrtes = list_length(query->rtable);
	def->rte_source = palloc(sizeof(int) * (def->nrtes + 1));

	/* range table: plain tables and inner joins only */
	rtindex = 0;
	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		int			srcno;

		rtindex++;
		def->rte_source[rtindex] = -1;
		switch (rte->rtekind)
		{
			case RTE_RELATION:
				break;
			case RTE_JOIN:
				if (rte->alias != NULL)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("derived views cannot use an alias for a join"),
							 errdetail("The join is named \"%s\".", rte->alias->aliasname),
							 errhint("Refer to the joined tables by their own names or aliases.")));
				if (rte->jointype == JOIN_LEFT && engine >= 2)
					has_left_join = true;
				else if (rte->jointype == JOIN_LEFT)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("derived views with LEFT JOIN need delta engine 2"),
							 errhint(ENGINE2_HINT)));
				else if (rte->jointype != JOIN_INNER)
					not_supported_hint("RIGHT or FULL outer joins", "Write a RIGHT JOIN as a LEFT JOIN with its two sides swapped.");
				continue;
			case RTE_SUBQUERY:
				not_supported("subqueries in FROM");
				break;
			case RTE_FUNCTION:
			case RTE_TABLEFUNC:
				not_supported("functions in FROM");
				break;
			case RTE_VALUES:
				not_supported("VALUES lists");
				break;
			default:
				not_supported("this kind of FROM item");
		}
		if (rte->tablesample)
			not_supported("TABLESAMPLE");

		srcno = add_source(def, rte, engine);
		def->rte_source[rtindex] = srcno;
		nrelations++;
	}
	if (nrelations == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a derived view must read at least one table")));
	if (query->hasSubLinks)
		check_sublinks(def, engine);

	/* expressions */
	cxt.query = query;
	cxt.bad_func = InvalidOid;
	cxt.subqueries = query->hasSubLinks;
	(void) query_tree_walker(query, check_expression_walker, &cxt, 0);

	/* output columns: named, and each name once */
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		ListCell   *lc2;

		if (tle->resjunk)
			continue;
		if (tle->resname == NULL || strcmp(tle->resname, "?column?") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
					 errmsg("column %d of the derived view has no name", tle->resno),
					 errhint("Name it with AS.")));
		/* the delta tables of a view without GROUP BY add these columns */
		if (!query->hasAggs && query->groupClause == NIL &&
			(strcmp(tle->resname, "_kappa_w") == 0 || strcmp(tle->resname, "_kappa_sum") == 0))
			ereport(ERROR,
					(errcode(ERRCODE_RESERVED_NAME),
					 errmsg("column \"%s\" of the derived view has a name pg_kappa reserves",
							tle->resname),
					 errdetail("pg_kappa's tables of the view's changes have a column of that name."),
					 errhint("Give the column another name with AS.")));
		foreach(lc2, query->targetList)
		{
			TargetEntry *other = lfirst(lc2);

			if (other == tle)
				break;
			if (!other->resjunk && strcmp(other->resname, tle->resname) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("column \"%s\" appears more than once in the derived view",
								tle->resname),
						 errhint("Give the columns distinct names with AS.")));
		}
	}

	/* the derived table's key */
	aggregate = query->hasAggs || query->groupClause != NIL;
	if (aggregate)
	{
		List	   *key_exprs = NIL;

		foreach(lc, query->groupClause)
		{
			SortGroupClause *sgc = lfirst(lc);
			TargetEntry *tle = get_sortgroupclause_tle(sgc, query->targetList);

			/*
			 * The query is kept as text, which names group keys by their
			 * expressions: read again, two keys of one expression are one,
			 * and the derived table's key would not be the query's.
			 */
			if (list_member(key_exprs, tle->expr))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("derived views cannot group by the same expression twice"),
						 errdetail("Column \"%s\" repeats a GROUP BY or DISTINCT expression of an earlier column.",
								   tle->resname),
						 errhint("Select the expression once, and repeat the column when you read the derived table.")));
			key_exprs = lappend(key_exprs, tle->expr);

			if (tle->resjunk)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("every GROUP BY expression of a derived view must be in its select list"),
						 errdetail("The group key is the derived table's unique key.")));
			if (!kappa_has_btree_opclass(exprType((Node *) tle->expr)))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("derived views cannot group by column \"%s\" of type %s",
								tle->resname, format_type_be(exprType((Node *) tle->expr))),
						 errdetail("The group key is the derived table's unique key, and the type has no default btree operator class.")));
			if (!has_builtin_equality(exprType((Node *) tle->expr)))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("derived views cannot group by column \"%s\" of type %s",
								tle->resname, format_type_be(exprType((Node *) tle->expr))),
						 errdetail("The worker finds a view's groups with the equality of PostgreSQL's built-in types, and the default equality of type %s is not one of them.",
								   format_type_be(exprType((Node *) tle->expr))),
						 errhint("Cast the column to a built-in type in the query, for example to text, if that equality is the one meant.")));
			def->key_columns = lappend(def->key_columns, tle->resname);
		}
	}
	else
	{
		for (rtindex = 1; rtindex <= def->nrtes; rtindex++)
		{
			int			srcno = def->rte_source[rtindex];
			ListCell   *lk;
			List	   *skey;

			if (srcno < 0)
				continue;
			skey = (List *) list_nth(def->source_keys, srcno);

			/* engine 2: a view that does not select every key is a bag */
			if (engine >= 2 && (skey == NIL || !keys_selected(query, rtindex, skey)))
			{
				def->bag = true;
				def->key_columns = NIL;
				break;
			}
			foreach(lk, skey)
			{
				AttrNumber	attnum = lfirst_int(lk);
				RangeTblEntry *rte = rt_fetch(rtindex, query->rtable);
				TargetEntry *tle = find_output_var(query, rtindex, attnum);

				if (tle == NULL)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("a derived view without GROUP BY must select the key of each source"),
							 errdetail("Column \"%s\" of \"%s\" is missing from the select list.",
									   get_attname(rte->relid, attnum, false),
									   get_rel_name(rte->relid)),
							 errhint("The sources' keys form the derived table's unique key.")));
				def->key_columns = lappend(def->key_columns, tle->resname);
			}
		}
	}

	if (has_left_join || def->semijoins != NIL)
	{
		check_left_joins(def);
		finish_semijoins(def);
	}

	/* columns of each source worth an index in the worker's copy */
	for (rtindex = 1; rtindex <= def->nrtes; rtindex++)
	{
		int			srcno = def->rte_source[rtindex];
		List	   *cols;
		ListCell   *lg;

		if (srcno < 0)
			continue;
		cols = list_nth(def->index_columns, srcno);
		/* join and filter columns */
		collect_index_columns(query->jointree->quals, rtindex, &cols, query);
		foreach(lc, query->jointree->fromlist)
			collect_index_columns(lfirst(lc), rtindex, &cols, query);
		/* group keys */
		foreach(lg, query->groupClause)
		{
			TargetEntry *tle = get_sortgroupclause_tle(lfirst(lg), query->targetList);

			collect_index_columns((Node *) tle->expr, rtindex, &cols, query);
		}
		list_nth_cell(def->index_columns, srcno)->ptr_value = cols;
	}

	if (list_length(def->sources) == 1 && nrelations == 1)
		def->kind = aggregate ? "aggregate" : "project";
	else
		def->kind = aggregate ? "join_aggregate" : "join";
	return def;
}

/*
 * Print the query back to SQL, with range table entry i reading
 * rte_relids[i] instead when that is valid (a table with the same columns
 * at the same attribute numbers).  Without keep_having the HAVING clause is
 * left out.  Every name is schema-qualified.
 */
char *
kappa_deparse(KappaViewDef *def, Oid *rte_relids, bool keep_having)
{
	Query	   *query = copyObject(def->query);

	if (!keep_having)
		query->havingQual = NULL;
	return kappa_deparse_query(query, rte_relids);
}

/* Can values of type typid (or its base type) be indexed by a B-tree? */
bool
kappa_has_btree_opclass(Oid typid)
{
	return OidIsValid(GetDefaultOpClass(getBaseType(typid), BTREE_AM_OID));
}

/*
 * SQL for the text of expr, a value of type typid, as pg_kappa's own
 * statements compare rows by it, that runs no role's code: a built-in
 * type's cast to text (only a superuser can make a cast between built-in
 * types), else the type's output function through format('%s') (a cast
 * from a type its owner made would be that owner's code, run as the view's
 * owner), NULL for NULL (format gives it as an empty text; num_nulls tells
 * NULL from a row whose fields are all NULL, which IS NULL does not).
 * kappa.verify shows rows with such columns in this text.
 */
char *
kappa_text_of(const char *expr, Oid typid)
{
	if (typid < FirstNormalObjectId)
		return psprintf("%s::pg_catalog.text", expr);
	return psprintf("CASE WHEN pg_catalog.num_nulls(%s) OPERATOR(pg_catalog.=) 0"
					" THEN pg_catalog.format('%%s', %s) END", expr, expr);
}

/*
 * The column of a bag view's table (relid) by which the rows to delete are
 * looked up: the first whose type has an equality operator in a default
 * hash or B-tree operator class (json, xml or point have none), or
 * InvalidAttrNumber.  *eqop is that operator; *hashed says whether a hash
 * index can serve it, which holds values of any size (a B-tree entry must
 * fit in a third of a page).
 */
AttrNumber
kappa_bag_lookup_column(Oid relid, Oid *eqop, bool *hashed)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	result = InvalidAttrNumber;

	for (int i = 0; i < desc->natts && result == InvalidAttrNumber; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		TypeCacheEntry *tc;

		if (att->attisdropped)
			continue;
		tc = lookup_type_cache(att->atttypid, TYPECACHE_EQ_OPR | TYPECACHE_HASH_OPFAMILY);
		if (!OidIsValid(tc->eq_opr))
			continue;
		result = att->attnum;
		*eqop = tc->eq_opr;
		*hashed = OidIsValid(tc->hash_opf);
	}
	relation_close(rel, AccessShareLock);
	return result;
}

/*
 * The output columns a view's rows are computed again by, when a batch
 * changed them: the group key of a GROUP BY view, the kept table's key of
 * a LEFT JOIN view; NIL for the others.
 */
List *
kappa_recompute_key(KappaViewDef *def)
{
	if (def->preserved_rt > 0)
		return def->preserved_key;
	return def->query->groupClause != NIL ? def->key_columns : NIL;
}

typedef struct EnrNames
{
	List	   *sources;
	const char **names;
} EnrNames;

/* Rename every entry (subqueries' too) that reads a source, to its ENR. */
static bool
enr_names_walker(Node *node, EnrNames *cxt)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;
		int			i = -1;
		ListCell   *lc;

		if (rte->rtekind != RTE_RELATION)
			return false;
		foreach(lc, cxt->sources)
		{
			if (lfirst_oid(lc) == rte->relid)
				i = foreach_current_index(lc);
		}
		if (i < 0)
			return false;
		if (rte->alias == NULL)
			rte->alias = makeAlias(rte->eref->aliasname, NIL);

		/*
		 * Printed by name, as ruleutils prints a CTE's (it prints no named
		 * tuplestores); the parser finds the ephemeral relation by it.
		 */
		rte->rtekind = RTE_CTE;
		rte->ctename = pstrdup(cxt->names[i]);
		rte->ctelevelsup = 0;
		rte->self_reference = false;
		rte->relid = InvalidOid;
		rte->relkind = 0;
		rte->inh = false;
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, enr_names_walker, cxt,
								 QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, enr_names_walker, cxt);
}

/*
 * SQL text of query (which is changed), with each range table entry that
 * reads source i (of sources, OIDs), in subqueries too, reading the
 * ephemeral named relation enrnames[i] (SPI_register_relation) instead,
 * under the same alias.  The relation must have the source's columns, at
 * the same positions, and the query no WITH item of that name.
 */
char *
kappa_deparse_query_enr(Query *query, List *sources, const char **enrnames)
{
	EnrNames	cxt = {sources, enrnames};

	(void) query_tree_walker(query, enr_names_walker, &cxt, QTW_EXAMINE_RTES_BEFORE);
	return kappa_deparse_query(query, NULL);
}

/*
 * Column renumbering of the entries of a query whose join entries lose
 * columns (trim_join_columns): per range table entry, NULL (unchanged) or
 * the new position of each old column (0: gone), 1-based.
 */
typedef struct ColumnMaps
{
	int		  **maps;
	int			nrtes;
	int			levels;			/* subqueries walked into */
} ColumnMaps;

static bool
remap_join_vars_walker(Node *node, ColumnMaps *cxt)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		if (var->varlevelsup == cxt->levels && var->varno >= 1 &&
			var->varno <= cxt->nrtes && cxt->maps[var->varno] != NULL &&
			var->varattno > 0)
			var->varattno = cxt->maps[var->varno][var->varattno];
		return false;
	}
	if (IsA(node, Query))
	{
		bool		result;

		cxt->levels++;
		result = query_tree_walker((Query *) node, remap_join_vars_walker, cxt,
								   QTW_IGNORE_JOINALIASES);
		cxt->levels--;
		return result;
	}
	return expression_tree_walker(node, remap_join_vars_walker, cxt);
}

/* the range table entries of the two inputs of each join entry */
static void
join_inputs(Node *node, int *left, int *right)
{
	if (node == NULL)
		return;
	if (IsA(node, FromExpr))
	{
		ListCell   *lc;

		foreach(lc, ((FromExpr *) node)->fromlist)
			join_inputs(lfirst(lc), left, right);
	}
	else if (IsA(node, JoinExpr))
	{
		JoinExpr   *j = (JoinExpr *) node;

		join_inputs(j->larg, left, right);
		join_inputs(j->rarg, left, right);
		left[j->rtindex] = IsA(j->larg, RangeTblRef) ?
			((RangeTblRef *) j->larg)->rtindex : ((JoinExpr *) j->larg)->rtindex;
		right[j->rtindex] = IsA(j->rarg, RangeTblRef) ?
			((RangeTblRef *) j->rarg)->rtindex : ((JoinExpr *) j->rarg)->rtindex;
	}
}

/*
 * The entries in ncols (1-based, -1 for the others) read a relation with
 * only their first ncols[r] columns now (a delta table, made before
 * columns were added to its source).  A join entry lists every column of
 * its inputs as they were when the query was parsed: leave out the
 * columns those entries no longer have, renumbering the join's columns,
 * and the Vars that name them by position (those of USING columns, which
 * come first and are never left out, and of joins above).
 */
static void
trim_join_columns(Query *query, const int *ncols)
{
	int			nrtes = list_length(query->rtable);
	int		   *left = palloc0(sizeof(int) * (nrtes + 1));
	int		   *right = palloc0(sizeof(int) * (nrtes + 1));
	ColumnMaps	cxt;
	bool		any = false;

	cxt.maps = palloc0(sizeof(int *) * (nrtes + 1));
	cxt.nrtes = nrtes;
	cxt.levels = 0;
	join_inputs((Node *) query->jointree, left, right);

	for (int r = 1; r <= nrtes; r++)
	{
		RangeTblEntry *rte = rt_fetch(r, query->rtable);
		int			old = list_length(rte->eref->colnames);

		if (rte->rtekind == RTE_RELATION && ncols[r] >= 0 && ncols[r] < old)
		{
			cxt.maps[r] = palloc0(sizeof(int) * (old + 1));
			for (int a = 1; a <= ncols[r]; a++)
				cxt.maps[r][a] = a;
			rte->eref->colnames = list_truncate(rte->eref->colnames, ncols[r]);
			any = true;
		}
		else if (rte->rtekind == RTE_JOIN && (cxt.maps[left[r]] || cxt.maps[right[r]]))
		{
			int		   *lmap = cxt.maps[left[r]];
			int		   *rmap = cxt.maps[right[r]];
			int			merged = rte->joinmergedcols;
			int			nleft = list_length(rte->joinleftcols);
			List	   *lcols = NIL;
			List	   *rcols = NIL;
			List	   *vars = NIL;
			List	   *names = NIL;
			int			kept = 0;

			cxt.maps[r] = palloc0(sizeof(int) * (old + 1));
			for (int k = 0; k < old; k++)
			{
				int			l = k < nleft ? list_nth_int(rte->joinleftcols, k) : 0;
				int			rr = k < merged ? list_nth_int(rte->joinrightcols, k) :
					k >= nleft ? list_nth_int(rte->joinrightcols, merged + k - nleft) : 0;
				int			nl = (l > 0 && lmap) ? lmap[l] : l;
				int			nr = (rr > 0 && rmap) ? rmap[rr] : rr;

				if ((l > 0 && nl == 0) || (rr > 0 && nr == 0))
					continue;
				if (l > 0)
					lcols = lappend_int(lcols, nl);
				if (k < merged || k >= nleft)
					rcols = lappend_int(rcols, nr);
				vars = lappend(vars, list_nth(rte->joinaliasvars, k));
				names = lappend(names, list_nth(rte->eref->colnames, k));
				cxt.maps[r][k + 1] = ++kept;
			}
			rte->joinleftcols = lcols;
			rte->joinrightcols = rcols;
			rte->joinaliasvars = vars;
			rte->eref->colnames = names;
			if (rte->alias && rte->alias->colnames)
				rte->alias->colnames = list_truncate(rte->alias->colnames,
													 Min(kept, list_length(rte->alias->colnames)));
			/* the join's own alias Vars name its inputs' columns */
			cxt.levels = 0;
			(void) expression_tree_walker((Node *) rte->joinaliasvars,
										  remap_join_vars_walker, &cxt);
			any = true;
		}
	}
	if (any)
	{
		cxt.levels = 0;
		(void) query_tree_walker(query, remap_join_vars_walker, &cxt,
								 QTW_IGNORE_JOINALIASES);
	}
}

/*
 * SQL text of query (which is changed), with each range table entry r for
 * which rte_relids[r] is valid reading that relation instead, under the
 * same alias; names fully qualified.  A view put in place of a table is
 * read without ONLY.  The relation has the table's columns as they were
 * when it was made (and then, in engine 2, the weight): columns added to
 * the table since are left out of the query's joins (trim_join_columns).
 */
char *
kappa_deparse_query(Query *query, Oid *rte_relids)
{
	int			nestlevel;
	char	   *result;
	int			rtindex = 0;
	int		   *ncols = palloc(sizeof(int) * (list_length(query->rtable) + 1));
	ListCell   *lc;

	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		Relation	rel;

		rtindex++;
		ncols[rtindex] = -1;
		if (rte_relids == NULL || !OidIsValid(rte_relids[rtindex]))
			continue;
		/* keep the name columns are qualified with */
		if (rte->alias == NULL)
			rte->alias = makeAlias(rte->eref->aliasname, NIL);
		rte->relid = rte_relids[rtindex];
		if (get_rel_relkind(rte->relid) == RELKIND_VIEW)
			rte->inh = true;
		/* the source's columns (engine 2's tables then have the weight) */
		rel = relation_open(rte->relid, AccessShareLock);
		ncols[rtindex] = RelationGetNumberOfAttributes(rel);
		if (ncols[rtindex] > 0 &&
			strcmp(NameStr(TupleDescAttr(RelationGetDescr(rel), ncols[rtindex] - 1)->attname),
				   "_kappa_w") == 0)
			ncols[rtindex]--;
		relation_close(rel, AccessShareLock);
	}
	if (rte_relids != NULL)
		trim_join_columns(query, ncols);

	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	result = pg_get_querydef(query, false);
	AtEOXact_GUC(false, nestlevel);
	return result;
}

/*
 * Print an expression of a one-table view's query (its Vars of range table
 * entry 1), names schema-qualified, columns prefixed with the entry's alias.
 */
char *
kappa_deparse_expr(KappaViewDef *def, Node *expr)
{
	RangeTblEntry *rte = rt_fetch(1, def->query->rtable);
	int			nestlevel;
	char	   *result;

	Assert(def->nrtes == 1);
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	result = deparse_expression(expr,
								deparse_context_for(rte->eref->aliasname, rte->relid),
								true, false);
	AtEOXact_GUC(false, nestlevel);
	return result;
}

/*
 * Per range table entry, the relation to read instead: relids[i] for every
 * entry that reads source i (for kappa_deparse).
 */
Oid *
kappa_rte_relids(KappaViewDef *def, Oid *relids)
{
	Oid		   *rte_relids = palloc0(sizeof(Oid) * (def->nrtes + 1));

	for (int r = 1; r <= def->nrtes; r++)
		if (def->rte_source[r] >= 0)
			rte_relids[r] = relids[def->rte_source[r]];
	return rte_relids;
}
