/*-------------------------------------------------------------------------
 *
 * internal_guard.c
 *	  The relations of a view's internal schema that belong to the
 *	  extension keep the definitions pg_kappa gave them.
 *
 * A view's owner owns its internal schema kappa_v<id> and the relations
 * in it, so PostgreSQL lets that role redefine them.  Such a relation is
 * a member of the extension, and whatever it is made to depend on takes
 * the extension with it when dropped with CASCADE: after
 *
 *		CREATE OR REPLACE VIEW kappa_v4.o_0 AS ... WHERE mal.t()
 *		DROP FUNCTION mal.t() CASCADE
 *
 * PostgreSQL drops the view's rule, so the view, so the extension: every
 * role's views, kappa.views, the event log.  So before such a command
 * (ddl_command_start, kappa.on_internal_ddl) that would redefine a member
 * (CREATE OR REPLACE VIEW) or hang code of its owner's on one (CREATE
 * RULE, which also turns a table into a view, CREATE TRIGGER, CREATE or
 * ALTER POLICY), or move it to another schema, it is refused.  ALTER TABLE on a member already breaks
 * the view (kappa.on_ddl_end), and DROP ... CASCADE that would reach a
 * member is drop_guard.c's.  The extension's own scripts, and its
 * relations in schema kappa (a superuser's), are left alone.
 *
 * Nor may a role create anything in the schema, or move anything into it
 * (a utility hook): kappa.drop_view and a rebuild drop the schema with all
 * it holds, pg_dump leaves the schema out but not what a role put there
 * (a restore would stop at it), and the apply worker lets a view's code
 * write the view's internal tables.  pg_kappa's own statements there run
 * in a security-restricted operation, as the view's owner, which a role's
 * own commands do not.  A superuser may (to repair).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_on_internal_ddl);

Datum
kappa_on_internal_ddl(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Node	   *tree;
	RangeVar   *rv;
	Oid			relid;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_on_internal_ddl: not fired by an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	tree = trigdata->parsetree;
	switch (nodeTag(tree))
	{
		case T_ViewStmt:
			rv = ((ViewStmt *) tree)->view;
			break;
		case T_RuleStmt:
			rv = ((RuleStmt *) tree)->relation;
			break;
		case T_CreateTrigStmt:
			rv = ((CreateTrigStmt *) tree)->relation;
			break;
		case T_CreatePolicyStmt:
			rv = ((CreatePolicyStmt *) tree)->table;
			break;
		case T_AlterPolicyStmt:
			rv = ((AlterPolicyStmt *) tree)->table;
			break;
		case T_AlterObjectSchemaStmt:
			/* moved out, a member would outlive kappa.drop_view */
			rv = ((AlterObjectSchemaStmt *) tree)->relation;
			if (rv == NULL)
				PG_RETURN_NULL();
			break;
		default:
			PG_RETURN_NULL();
	}

	/* the extension's own scripts (ALTER EXTENSION ... UPDATE) may */
	if (creating_extension)
		PG_RETURN_NULL();

	/* not locked: a relation that is missing is the command's to report */
	relid = RangeVarGetRelid(rv, NoLock, true);
	if (OidIsValid(relid) &&
		get_rel_namespace(relid) != get_namespace_oid("kappa", true) &&
		kappa_extension_relation(relid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot change relation %s, which belongs to extension pg_kappa",
						kappa_qualified_name(relid)),
				 errdetail("It is an internal relation of a derived view, which pg_kappa alone defines.")));
	PG_RETURN_NULL();
}

static ProcessUtility_hook_type prev_process_utility_hook = NULL;

/* Is schema nsp a view's internal schema kappa_v<id>, of the extension? */
bool
kappa_internal_schema(Oid nsp)
{
	char	   *nspname = OidIsValid(nsp) ? get_namespace_name(nsp) : NULL;
	Oid			extension;

	if (nspname == NULL || strncmp(nspname, "kappa_v", 7) != 0)
		return false;
	extension = get_extension_oid("pg_kappa", true);
	return OidIsValid(extension) &&
		getExtensionOfObject(NamespaceRelationId, nsp) == extension;
}

/* The schema a name list (schema.name, or name alone) names, or NULL. */
static const char *
names_schema(List *names)
{
	char	   *schema;
	char	   *name;

	DeconstructQualifiedName(names, &schema, &name);
	return schema;
}

/*
 * A view's internal schema keeps its name and owner: pg_kappa finds it by
 * name (kappa_v<id>), and drops it with the view.  Renamed, it would
 * outlive the view, a member of the extension that no role could drop;
 * given to another role, its tables would no longer be the view's owner's.
 */
static void
internal_schema_kept(Node *tree)
{
	const char *name = NULL;
	Oid			nsp;

	if (IsA(tree, RenameStmt) && ((RenameStmt *) tree)->renameType == OBJECT_SCHEMA)
		name = ((RenameStmt *) tree)->subname;
	else if (IsA(tree, AlterOwnerStmt) && ((AlterOwnerStmt *) tree)->objectType == OBJECT_SCHEMA)
		name = strVal(((AlterOwnerStmt *) tree)->object);
	if (name == NULL || creating_extension || superuser())
		return;
	nsp = get_namespace_oid(name, true);
	if (kappa_internal_schema(nsp))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot change schema \"%s\", which belongs to extension pg_kappa", name),
				 errdetail("It holds the internal tables of a derived view, and pg_kappa finds it by its name and drops it with the view.")));
}

/*
 * Nor may a table of a role's become an inheritance child of an internal
 * table: pg_kappa's statements read those tables with their children, and
 * drop the children with the view's schema.
 */
static void
internal_parents_refused(Node *tree)
{
	List	   *parents = NIL;
	ListCell   *lc;

	if (IsA(tree, CreateStmt))
		parents = ((CreateStmt *) tree)->inhRelations;
	else if (IsA(tree, AlterTableStmt))
	{
		foreach(lc, ((AlterTableStmt *) tree)->cmds)
		{
			AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

			if (cmd->subtype == AT_AddInherit && IsA(cmd->def, RangeVar))
				parents = lappend(parents, cmd->def);
		}
	}
	if (parents == NIL || creating_extension || superuser())
		return;
	foreach(lc, parents)
	{
		Oid			relid = IsA(lfirst(lc), RangeVar) ?
			RangeVarGetRelid((RangeVar *) lfirst(lc), NoLock, true) : InvalidOid;

		if (OidIsValid(relid) && kappa_internal_schema(get_rel_namespace(relid)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cannot inherit from relation %s, which belongs to extension pg_kappa",
							kappa_qualified_name(relid)),
					 errdetail("It is an internal relation of a derived view, which pg_kappa alone defines.")));
	}
}

static void
internal_schema_utility(PlannedStmt *pstmt, const char *queryString,
						bool readOnlyTree, ProcessUtilityContext context,
						ParamListInfo params, QueryEnvironment *queryEnv,
						DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *tree = pstmt->utilityStmt;
	bool		checked = true;
	const char *schema = NULL;
	RangeVar   *relation = NULL;
	RangeVar   *on_table = NULL;	/* the object goes to this table's schema */
	Oid			nsp;

	internal_schema_kept(tree);
	internal_parents_refused(tree);

	switch (nodeTag(tree))
	{
		case T_CreateStmt:
		case T_CreateForeignTableStmt:
			relation = ((CreateStmt *) tree)->relation;
			break;
		case T_CreateTableAsStmt:
			relation = ((CreateTableAsStmt *) tree)->into->rel;
			break;
		case T_ViewStmt:
			relation = ((ViewStmt *) tree)->view;
			break;
		case T_CreateSeqStmt:
			schema = ((CreateSeqStmt *) tree)->sequence->schemaname;
			break;
		case T_CompositeTypeStmt:
			schema = ((CompositeTypeStmt *) tree)->typevar->schemaname;
			break;
		case T_CreateFunctionStmt:
			schema = names_schema(((CreateFunctionStmt *) tree)->funcname);
			break;
		case T_DefineStmt:
			schema = names_schema(((DefineStmt *) tree)->defnames);
			break;
		case T_CreateEnumStmt:
			schema = names_schema(((CreateEnumStmt *) tree)->typeName);
			break;
		case T_CreateRangeStmt:
			schema = names_schema(((CreateRangeStmt *) tree)->typeName);
			break;
		case T_CreateDomainStmt:
			schema = names_schema(((CreateDomainStmt *) tree)->domainname);
			break;
		case T_CreateStatsStmt:
			schema = names_schema(((CreateStatsStmt *) tree)->defnames);
			break;
		case T_IndexStmt:
			/* an index goes to its table's schema */
			on_table = ((IndexStmt *) tree)->relation;
			break;
		case T_CreateConversionStmt:
			schema = names_schema(((CreateConversionStmt *) tree)->conversion_name);
			break;
		case T_CreateOpClassStmt:
			schema = names_schema(((CreateOpClassStmt *) tree)->opclassname);
			break;
		case T_CreateOpFamilyStmt:
			schema = names_schema(((CreateOpFamilyStmt *) tree)->opfamilyname);
			break;
		case T_AlterObjectSchemaStmt:
			schema = ((AlterObjectSchemaStmt *) tree)->newschema;
			break;
		default:
			checked = false;
	}

	/* the schema the object goes to (unqualified: the search_path's first) */
	if (relation != NULL)
		schema = relation->schemaname;
	nsp = checked ? kappa_creation_namespace(schema) : InvalidOid;
	if (on_table != NULL)
	{
		Oid			relid = RangeVarGetRelid(on_table, NoLock, true);

		nsp = OidIsValid(relid) ? get_rel_namespace(relid) : InvalidOid;
	}

	/*
	 * A relation there already (in the schema the name goes to, not
	 * anywhere on the search_path): the command's to refuse, or
	 * kappa.on_internal_ddl's (CREATE OR REPLACE VIEW of a member).
	 */
	if (relation != NULL && OidIsValid(nsp) &&
		OidIsValid(get_relname_relid(relation->relname, nsp)))
		checked = false;

	/*
	 * pg_kappa never moves anything there, nor makes a partition or an
	 * inheritance child there (whose rows would be another table's, written
	 * by the worker unseen): these are refused even in a security-
	 * restricted operation (a view's code, while a view is built).
	 */
	if (checked && !creating_extension && !superuser() &&
		(!InSecurityRestrictedOperation() || IsA(tree, AlterObjectSchemaStmt) ||
		 IsA(tree, CreateForeignTableStmt) ||
		 (IsA(tree, CreateStmt) && (((CreateStmt *) tree)->partbound != NULL ||
									((CreateStmt *) tree)->inhRelations != NIL))) &&
		kappa_internal_schema(nsp))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot create or move objects into schema \"%s\"",
						get_namespace_name(nsp)),
				 errdetail("It holds the internal tables of a derived view, and pg_kappa drops it with all it holds when the view is dropped or built again."),
				 on_table != NULL ? 0 : errhint("Use another schema.")));

	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/* Install the hook (_PG_init). */
void
kappa_internal_guard_init(void)
{
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = internal_schema_utility;
}
