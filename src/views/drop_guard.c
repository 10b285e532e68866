/*-------------------------------------------------------------------------
 *
 * drop_guard.c
 *	  DROP ... CASCADE that would reach a derived view's internal tables is
 *	  refused before it starts, with the view's name.
 *
 * The tables of a view's internal schema kappa_v<id> are members of the
 * extension (pg_dump leaves them out, a restore builds them again), and
 * their columns have the types (and collations) of the sources' columns.
 * PostgreSQL turns the deletion of an extension member into the deletion
 * of the extension, so
 *
 *		DROP TYPE t CASCADE				(a source has a column of type t)
 *		DROP DOMAIN, DROP COLLATION, DROP EXTENSION (its types), DROP SCHEMA,
 *		DROP FUNCTION or DROP LANGUAGE (a range type's subtype_diff),
 *		DROP OPERATOR CLASS (a range type's), DROP OWNED BY ... CASCADE
 *
 * would take pg_kappa with it: every view, kappa.views, the event log.
 * (In practice it fails halfway with "could not open relation", since the
 * extension's tables are dropped before their columns.)  Before such a
 * command (ddl_command_start, kappa.on_drop_start), the objects it names
 * are followed through pg_depend as the deletion would follow them; if an
 * internal table of some view is among them, the command is refused and
 * the view named, to be dropped first (to a role without the privileges
 * of the view's owner, without its name).  A whole object reaches
 * everything that depends on it, a column only what depends on that
 * column, and an object also what it is an internal part of (a view's
 * rule: the view), which PostgreSQL drops with it.  internal_guard.c keeps
 * a view's owner from making the members depend on anything else.
 *
 * DROP EXTENSION pg_kappa itself, and kappa.drop_internal_schema (which
 * takes the tables out of the extension before dropping them), are not
 * refused.  Without CASCADE PostgreSQL refuses on its own (DROP OWNED is
 * checked all the same, since that refusal would list other roles' tables),
 * and DROP EXTENSION pg_kappa is refused before it starts while derived
 * views exist, naming one of them instead of the trigger PostgreSQL names.
 *
 * That check names the view, but it reads names before the command does,
 * and follows only the commands it is fired for.  Under it, an object
 * access hook refuses the deletion itself, whatever the command: of the
 * extension, or of one of its relations, unless the statement is DROP
 * EXTENSION pg_kappa (a ProcessUtility hook notes that) or the extension's
 * own script.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "commands/user.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_on_drop_start);

/*
 * Would the deletion of the objects (classids[i], objids[i]) reach a
 * relation of the extension, the internal tables of a view (*is_view) or
 * another (one moved out of its schema, say)?  *name is then the first
 * such view's (by id), or NULL if the caller does not have its owner's
 * privileges: the names of other roles' views are not told.
 */
static bool
view_reached(int n, Datum *classids, Datum *objids, char **name, bool *is_view)
{
	Oid			argtypes[4] = {OIDARRAYOID, OIDARRAYOID, OIDOID, OIDOID};
	Datum		args[4];
	bool		reached;
	SavedUser	saved;

	args[0] = PointerGetDatum(construct_array(classids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	args[1] = PointerGetDatum(construct_array(objids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	args[2] = ObjectIdGetDatum(get_extension_oid("pg_kappa", false));
	args[3] = ObjectIdGetDatum(GetUserId());

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(kappa_extension_owner(), &saved);
	if (SPI_execute_with_args("WITH RECURSIVE reach(classid, objid, objsubid) AS ("
							  " SELECT c, o, 0 FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS s(c, o)"
							  " UNION"
							  " SELECT x.* FROM reach r, LATERAL ("
	/* what depends on it (a column: on that column) */
							  " SELECT d.classid, d.objid, d.objsubid FROM pg_catalog.pg_depend d"
							  " WHERE d.refclassid OPERATOR(pg_catalog.=) r.classid"
							  " AND d.refobjid OPERATOR(pg_catalog.=) r.objid"
							  " AND (r.objsubid OPERATOR(pg_catalog.=) 0"
							  " OR d.refobjsubid OPERATOR(pg_catalog.=) r.objsubid)"
							  " AND NOT (d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass"
							  " AND d.refobjid OPERATOR(pg_catalog.=) $3)"
	/* and what it is part of (a view's rule: the view), dropped with it */
							  " UNION ALL"
							  " SELECT d.refclassid, d.refobjid, 0 FROM pg_catalog.pg_depend d"
							  " WHERE d.classid OPERATOR(pg_catalog.=) r.classid"
							  " AND d.objid OPERATOR(pg_catalog.=) r.objid"
							  " AND d.deptype OPERATOR(pg_catalog.=) 'i') x)"
							  " SELECT CASE WHEN pg_catalog.pg_has_role($4, v.owner, 'USAGE') THEN v.name END,"
							  " v.id IS NOT NULL"
							  " FROM reach r"
							  " JOIN pg_catalog.pg_depend e"
							  " ON e.classid OPERATOR(pg_catalog.=) r.classid"
							  " AND e.objid OPERATOR(pg_catalog.=) r.objid"
							  " AND e.deptype OPERATOR(pg_catalog.=) 'e'"
							  " AND e.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass"
							  " AND e.refobjid OPERATOR(pg_catalog.=) $3"
							  " JOIN pg_catalog.pg_class c"
							  " ON r.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
							  " AND c.oid OPERATOR(pg_catalog.=) r.objid"
							  " JOIN pg_catalog.pg_namespace s ON s.oid OPERATOR(pg_catalog.=) c.relnamespace"
							  " LEFT JOIN kappa.views v"
							  " ON s.nspname OPERATOR(pg_catalog.=) ('kappa_v' OPERATOR(pg_catalog.||) v.id)"
							  " ORDER BY v.id NULLS LAST LIMIT 1",
							  4, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not follow the dependencies of the objects dropped");
	reached = SPI_processed > 0;
	*name = NULL;
	*is_view = false;
	if (reached)
	{
		char	   *value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		bool		isnull;

		if (value != NULL)
			*name = MemoryContextStrdup(TopTransactionContext, value);
		*is_view = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
	kappa_unbecome(&saved);
	SPI_finish();
	return reached;
}

static void
refuse(const char *what, bool plural, const char *view, bool is_view)
{
	const char *whose = view ? psprintf("derived view %s", view) :
		is_view ? "a derived view of another role" : "extension pg_kappa";

	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 plural ?
			 errmsg("cannot drop %s because %s depends on them", what, whose) :
			 errmsg("cannot drop %s because %s depends on it", what, whose),
			 is_view ?
			 errdetail("Internal tables of the view would be dropped with it, and they belong to extension pg_kappa, which PostgreSQL would then drop too.") :
			 errdetail("A relation of extension pg_kappa would be dropped with it, and PostgreSQL would then drop the extension too."),
			 view ?
			 errhint("Drop the view first with kappa.drop_view('%s'), then run the command again.",
					 view) :
			 is_view ? errhint("The view's owner must drop it first.") : 0));
}

/* DROP <objects> CASCADE */
static void
check_drop(DropStmt *stmt)
{
	ListCell   *lc;
	Oid			extension = get_extension_oid("pg_kappa", false);

	foreach(lc, stmt->objects)
	{
		Relation	rel = NULL;
		ObjectAddress addr;
		Datum		classid;
		Datum		objid;
		char	   *view;
		bool		is_view;

		if (stmt->removeType == OBJECT_TABLE || stmt->removeType == OBJECT_VIEW ||
			stmt->removeType == OBJECT_MATVIEW || stmt->removeType == OBJECT_FOREIGN_TABLE ||
			stmt->removeType == OBJECT_INDEX || stmt->removeType == OBJECT_SEQUENCE)
		{
			/*
			 * Not locked here: the command checks ownership before it locks
			 * a relation.  A wrong kind of relation, or one missing, is the
			 * command's to report.
			 */
			ObjectAddressSet(addr, RelationRelationId,
							 RangeVarGetRelid(makeRangeVarFromNameList(lfirst(lc)),
											  NoLock, true));
			/* nothing said about a table the command will refuse to drop */
			if (!OidIsValid(addr.objectId) ||
				!pg_class_ownercheck(addr.objectId, GetUserId()))
				continue;
		}
		else
		{
			/* the lock the command itself takes first, then its check */
			addr = get_object_address(stmt->removeType, lfirst(lc), &rel,
									  AccessExclusiveLock, true);
			if (!OidIsValid(addr.objectId))
				continue;
			check_object_ownership(GetUserId(), stmt->removeType, addr,
								   lfirst(lc), rel);
			if (rel != NULL)
				table_close(rel, NoLock);
		}
		if (addr.classId == ExtensionRelationId && addr.objectId == extension)
			continue;
		classid = ObjectIdGetDatum(addr.classId);
		objid = ObjectIdGetDatum(addr.objectId);
		if (view_reached(1, &classid, &objid, &view, &is_view))
			refuse(getObjectDescription(&addr, false), false, view, is_view);
	}
}

/* DROP OWNED BY <roles>: what they own in this database */
static void
check_drop_owned(DropOwnedStmt *stmt)
{
	List	   *roles = roleSpecsToIds(stmt->roles);
	ListCell   *lc;

	foreach(lc, roles)
	{
		Oid			role = lfirst_oid(lc);
		Oid			argtypes[1] = {OIDOID};
		Datum		args[1] = {ObjectIdGetDatum(role)};
		Datum	   *classids;
		Datum	   *objids;
		int			n;
		char	   *view;
		bool		is_view;

		/* the command's own check first: nothing said to others */
		if (!has_privs_of_role(GetUserId(), role))
			continue;
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args("SELECT classid, objid FROM pg_catalog.pg_shdepend"
								  " WHERE dbid OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database"
								  "  WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
								  " AND refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass"
								  " AND refobjid OPERATOR(pg_catalog.=) $1"
								  " AND deptype OPERATOR(pg_catalog.=) 'o'",
								  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the objects of role %u", role);
		n = (int) SPI_processed;
		classids = MemoryContextAlloc(TopTransactionContext, sizeof(Datum) * Max(n, 1));
		objids = MemoryContextAlloc(TopTransactionContext, sizeof(Datum) * Max(n, 1));
		for (int i = 0; i < n; i++)
		{
			bool		isnull;

			classids[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			objids[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
		}
		SPI_finish();
		if (n == 0)
			continue;
		if (view_reached(n, classids, objids, &view, &is_view))
			refuse(psprintf("objects owned by role %s", GetUserNameFromId(role, false)), true,
				   view, is_view);
	}
}

Datum
kappa_on_drop_start(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_on_drop_start: not fired by an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (IsA(trigdata->parsetree, DropStmt))
	{
		DropStmt   *stmt = (DropStmt *) trigdata->parsetree;

		if (stmt->behavior == DROP_CASCADE)
			check_drop(stmt);
	}
	else if (IsA(trigdata->parsetree, DropOwnedStmt))
	{
		/*
		 * Also without CASCADE: PostgreSQL's own refusal would list what
		 * depends on the extension the drop reaches, other roles' derived
		 * tables among it.
		 */
		check_drop_owned((DropOwnedStmt *) trigdata->parsetree);
	}
	PG_RETURN_NULL();
}

/*
 * The statement DROP EXTENSION pg_kappa runs in, by transaction and
 * statement start: the deletions it makes are the extension's to make.
 */
static LocalTransactionId dropping_lxid = InvalidLocalTransactionId;
static TimestampTz dropping_stmt = 0;

static object_access_hook_type prev_object_access_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

static bool
dropping_extension(void)
{
	return dropping_lxid == MyProc->lxid &&
		dropping_stmt == GetCurrentStatementStartTimestamp();
}

/*
 * DROP EXTENSION pg_kappa without CASCADE while derived views exist:
 * PostgreSQL would refuse on its own, naming the trigger on one derived
 * table.  Say instead what depends on the extension, and what CASCADE
 * does to it (it keeps the derived tables, as plain tables).
 */
static void
check_drop_extension(void)
{
	Oid			extension = get_extension_oid("pg_kappa", true);
	int64		nviews = 0;
	char	   *first = NULL;

	/* a role that may not drop it hears that from the command */
	if (!OidIsValid(extension) || !pg_extension_ownercheck(extension, GetUserId()) ||
		!OidIsValid(kappa_views_relid()))
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT pg_catalog.count(*) OVER (),"
							  " CASE WHEN pg_catalog.pg_has_role($1, owner, 'USAGE') THEN name END"
							  " FROM kappa.views"
							  " ORDER BY pg_catalog.pg_has_role($1, owner, 'USAGE') DESC, id LIMIT 1",
							  1, (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(GetUserId())},
							  NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	if (SPI_processed > 0)
	{
		bool		isnull;
		char	   *name;

		nviews = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		if (name != NULL)
			first = MemoryContextStrdup(TopTransactionContext, name);
	}
	SPI_finish();
	if (nviews == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot drop extension pg_kappa because derived views depend on it"),
			 first == NULL ?
			 errdetail_plural(INT64_FORMAT " derived view of another role depends on it.",
							  INT64_FORMAT " derived views of other roles depend on it.",
							  nviews, nviews) :
			 nviews == 1 ?
			 errdetail("Derived view %s depends on it.", first) :
			 errdetail_plural("Derived view %s and " INT64_FORMAT " other depend on it.",
							  "Derived view %s and " INT64_FORMAT " others depend on it.",
							  nviews - 1, first, nviews - 1),
			 errhint("Drop the views with kappa.drop_view first, or use DROP EXTENSION pg_kappa CASCADE, which leaves their derived tables as plain tables that nothing maintains.")));
}

static void
guard_process_utility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *tree = pstmt->utilityStmt;

	if (IsA(tree, DropStmt) && ((DropStmt *) tree)->removeType == OBJECT_EXTENSION)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) tree)->objects)
			if (strcmp(strVal(lfirst(lc)), "pg_kappa") == 0)
			{
				if (((DropStmt *) tree)->behavior != DROP_CASCADE)
					check_drop_extension();
				dropping_lxid = MyProc->lxid;
				dropping_stmt = GetCurrentStatementStartTimestamp();
			}
	}
	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

static void
guard_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access != OAT_DROP || creating_extension || dropping_extension())
		return;
	if (classId == ExtensionRelationId &&
		objectId == get_extension_oid("pg_kappa", true))
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop extension pg_kappa as part of dropping other objects"),
				 errdetail("Every derived view, kappa.views and the event log would go with it."),
				 errhint("Drop the derived views that depend on those objects first (kappa.drop_view), or drop the extension itself with DROP EXTENSION pg_kappa.")));
	if (classId == RelationRelationId && subId == 0 &&
		kappa_extension_relation(objectId))
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop relation %s of extension pg_kappa",
						kappa_qualified_name(objectId)),
				 errdetail("The command would drop it, and with it the extension: every derived view, kappa.views and the event log."),
				 errhint("Drop the derived views the command reaches first (kappa.drop_view); DROP EXTENSION pg_kappa drops the extension itself.")));
}

/* Install the hooks (_PG_init). */
void
kappa_drop_guard_init(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = guard_object_access;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = guard_process_utility;
}
