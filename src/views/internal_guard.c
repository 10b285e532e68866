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
 * member is drop_guard.c's.  Relations a role adds to the schema itself
 * are not members, and are left alone, as are the extension's own scripts
 * and its relations in schema kappa (a superuser's).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "nodes/parsenodes.h"
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
