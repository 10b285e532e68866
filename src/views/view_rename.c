/*-------------------------------------------------------------------------
 *
 * view_rename.c
 *	  Derived views follow renames of their sources, as PostgreSQL's own
 *	  views do.
 *
 * A view's query is kept as text (kappa.views.canonical, every name
 * schema-qualified), which the worker and verify parse again.  After
 *
 *		ALTER TABLE src RENAME TO ...
 *		ALTER TABLE src SET SCHEMA ...
 *		ALTER SCHEMA s RENAME TO ...
 *
 * (or ALTER VIEW, INDEX, ... naming the table) that text would name a
 * table that no longer exists, and the view would stop at its next batch;
 * after a function, type, operator or collation the query names is
 * renamed or moved, or its schema renamed, the text would name another
 * object that took the old name, or none.  So before such a command (ddl_command_start,
 * kappa_on_ddl_start) the query of each view that reads a table it
 * touches is parsed while the old names still resolve, and after it
 * (ddl_command_end, kappa_on_ddl_renamed) printed again from the parse
 * tree, which refers to tables by OID: the text then has the new names.
 * The views printed again are those whose query names what the command
 * renames: that read the table, or a table of the schema, or name a table
 * by a regclass literal holding its name; or whose derived table depends
 * on the function, type (or its array type), operator or collation, on a
 * table's row type, on the schema or one of its objects, or on a member
 * of the extension moved (create_view records those dependencies, and on
 * the attributes of composite types the query reads).  An attribute of a
 * composite type, a column of a table, and an enum's value renamed count
 * as the type renamed.  Each is parsed or printed in a subtransaction that
 * is rolled back after it (its locks on the view's tables go with it), and
 * waits at most RENAME_LOCK_TIMEOUT for a lock.  A view whose query could
 * not be printed before the command, or printed otherwise than its text
 * (something it names was renamed in a way not followed), is marked
 * broken after it: its text might name an object that takes the old name.
 *
 * That tree is the one create_view wrote to kappa.views.query_tree:
 * parsing the text again would run the view owner's code (a domain's
 * CHECK on a literal of the query, as its input function checks it)
 * inside the renaming role's command, which could make it wait and see
 * what it does.  Only a view without a tree of this server's catalog
 * version (made before 0.9, or carried over by pg_upgrade) is parsed
 * again, as its owner, security-restricted, and its tree then written.
 *
 * The name kappa.views keeps of a derived table renamed (or moved) is
 * brought up to date after such a command too.
 *
 * Renaming a column a view reads is not followed: the view's internal
 * tables keep their columns' names, and such a view is marked broken by
 * kappa.on_ddl_end as before (kappa.alter_view(rebuild => true) after
 * naming the column back, or a new view).
 *
 * A parse tree printed again gives the current names whatever happened
 * in between, so one left over from a command that failed (in a
 * subtransaction) does no harm when a later command prints it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/catversion.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "nodes/readfuncs.h"
#include "parser/parse_type.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_on_ddl_start);
PG_FUNCTION_INFO_V1(kappa_on_ddl_renamed);

/* a view's query, parsed before a rename, to be printed after it */
typedef struct ParsedView
{
	int			id;
	Oid			owner;
	KappaViewDef *def;
	bool		parsed;			/* from the text: write the tree too */
} ParsedView;

static List *parsed_views = NIL;	/* in TopTransactionContext */
static List *unprinted = NIL;	/* ids of views whose query could not be
								 * printed before the rename, likewise */
static bool renamed = false;	/* a rename began in transaction parsed_lxid */
static Oid	renamed_relid = InvalidOid; /* the table it renames or moves */
static Oid	renamed_nspid = InvalidOid; /* the schema it renames */
static LocalTransactionId parsed_lxid = InvalidLocalTransactionId;

/* Is kind a relation that ALTER TABLE, VIEW, INDEX, ... can rename? */
static bool
relation_kind(ObjectType kind)
{
	return kind == OBJECT_TABLE || kind == OBJECT_VIEW || kind == OBJECT_MATVIEW ||
		kind == OBJECT_FOREIGN_TABLE || kind == OBJECT_INDEX || kind == OBJECT_SEQUENCE;
}

/* What a command renames or moves, as far as views' queries can name it */
typedef struct RenameScope
{
	Oid			relid;			/* a relation (ALTER VIEW, INDEX, ... may
								 * name a table too) */
	Oid			nspid;			/* a schema */
	ObjectAddress object;		/* a function, type, operator, collation,
								 * ...; classId invalid for none */
	Oid			extension;		/* an extension moved to another schema */
} RenameScope;

/* Does the current user own the object (as the command will check)? */
static bool
owns_object(ObjectAddress address)
{
	AttrNumber	attnum = get_object_attnum_owner(address.classId);
	Relation	catalog;
	HeapTuple	tup;
	bool		result = false;

	if (attnum == InvalidAttrNumber)
		return false;
	catalog = table_open(address.classId, AccessShareLock);
	tup = get_catalog_object_by_oid(catalog, get_object_attnum_oid(address.classId),
									address.objectId);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		owner = heap_getattr(tup, attnum, RelationGetDescr(catalog), &isnull);

		result = !isnull && has_privs_of_role(GetUserId(), DatumGetObjectId(owner));
	}
	table_close(catalog, AccessShareLock);
	return result;
}

/* The object a RenameStmt or AlterObjectSchemaStmt names, if any */
static ObjectAddress
named_object(ObjectType kind, Node *object)
{
	Relation	rel = NULL;
	ObjectAddress address;

	/* ALTER TYPE and DOMAIN give a type's name as a list of names */
	if ((kind == OBJECT_TYPE || kind == OBJECT_DOMAIN) && IsA(object, List))
		object = (Node *) makeTypeNameFromNameList((List *) object);
	address = get_object_address(kind, object, &rel, AccessShareLock, true);

	if (rel != NULL)
		relation_close(rel, NoLock);	/* (the command locks it anyway) */
	return address;
}

/*
 * What a command renames or moves to another schema (scope), or changes
 * the name of inside a type (an attribute, an enum's value): false for any
 * other command, for a column or constraint renamed (a column a view reads
 * renamed breaks the view: kappa.on_ddl_end), and for an object the
 * current user does not own (the command fails, and nothing need be
 * printed for it before).
 */
static bool
renamed_object(Node *stmt, RenameScope *scope)
{
	memset(scope, 0, sizeof(RenameScope));
	scope->object.classId = InvalidOid;
	if (IsA(stmt, RenameStmt))
	{
		RenameStmt *rs = (RenameStmt *) stmt;

		if (rs->renameType == OBJECT_TABCONSTRAINT ||
			rs->renameType == OBJECT_DOMCONSTRAINT || rs->renameType == OBJECT_TRIGGER ||
			rs->renameType == OBJECT_RULE || rs->renameType == OBJECT_POLICY)
			return false;
		if ((rs->renameType == OBJECT_ATTRIBUTE || rs->renameType == OBJECT_COLUMN) &&
			rs->relation)
		{
			/*
			 * A composite type's attribute, or a column of a table whose row
			 * type a query names ((ROW(a, b)::t).x): such views name it by
			 * its name.  (A column a view reads from its source renamed
			 * breaks the view: kappa.on_ddl_end.)
			 */
			Oid			relid = RangeVarGetRelid(rs->relation, NoLock, true);

			if (OidIsValid(relid))
				ObjectAddressSet(scope->object, TypeRelationId, get_rel_type_id(relid));
		}
		else if (relation_kind(rs->renameType) && rs->relation)
			scope->relid = RangeVarGetRelid(rs->relation, NoLock, true);
		else if (rs->renameType == OBJECT_SCHEMA)
			scope->nspid = get_namespace_oid(rs->subname, true);
		else if (rs->object != NULL)
			scope->object = named_object(rs->renameType, rs->object);
	}
	else if (IsA(stmt, AlterObjectSchemaStmt))
	{
		AlterObjectSchemaStmt *as = (AlterObjectSchemaStmt *) stmt;

		if (relation_kind(as->objectType) && as->relation)
			scope->relid = RangeVarGetRelid(as->relation, NoLock, true);
		else if (as->objectType == OBJECT_EXTENSION)
			scope->extension = get_extension_oid(strVal(as->object), true);
		else if (as->object != NULL)
			scope->object = named_object(as->objectType, as->object);
	}
	else if (IsA(stmt, AlterEnumStmt) && ((AlterEnumStmt *) stmt)->oldVal != NULL)
	{
		/* an enum's value renamed: views name its values by their labels */
		TypeName   *tn = makeTypeNameFromNameList(((AlterEnumStmt *) stmt)->typeName);
		Oid			typid = LookupTypeNameOid(NULL, tn, true);

		if (OidIsValid(typid))
			ObjectAddressSet(scope->object, TypeRelationId, typid);
	}

	if (OidIsValid(scope->relid))
		return pg_class_ownercheck(scope->relid, GetUserId());
	if (OidIsValid(scope->nspid))
		return pg_namespace_ownercheck(scope->nspid, GetUserId());
	if (OidIsValid(scope->extension))
		return pg_extension_ownercheck(scope->extension, GetUserId());
	if (OidIsValid(scope->object.classId) && OidIsValid(scope->object.objectId))
		return owns_object(scope->object);
	return false;
}

/*
 * How long parsing or printing a view's query around a rename waits for a
 * lock on a table it reads (AccessShareLock, which only another session's
 * ACCESS EXCLUSIVE lock conflicts with).  Each step runs in a subtransaction
 * rolled back after it, so the locks are not kept past it either.
 */
#define RENAME_LOCK_TIMEOUT "1s"

/* What view_step_run is to do, and its result */
typedef struct ViewStep
{
	Oid			owner;
	const char *canonical;
	int			engine;
	KappaViewDef *def;			/* NULL: parse canonical */
	MemoryContext cxt;			/* for the result */
	void	   *result;
} ViewStep;

static void
view_step_run(void *arg)
{
	ViewStep   *step = arg;
	MemoryContext oldcxt = MemoryContextSwitchTo(step->cxt);
	KappaOwnerScope scope;

	kappa_owner_enter(step->owner, &scope);
	/* another session's lock on a table the query reads holds no rename up */
	(void) set_config_option("lock_timeout", RENAME_LOCK_TIMEOUT, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (step->def == NULL)
		step->result = kappa_compile_view(step->canonical, step->engine);
	else
		step->result = kappa_deparse(step->def, NULL, true);
	kappa_owner_leave(&scope);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * As the view's owner, security-restricted: with def NULL, parse view
 * id's query canonical into a KappaViewDef (in cxt); else print def again
 * as text.  NULL when that fails (a view broken by an earlier change, a
 * function of the owner's that errors): the command goes on, and the view
 * is no worse off than it would have been without this file.
 */
static void *
view_step(int id, Oid owner, const char *canonical, int engine, KappaViewDef *def,
		  MemoryContext cxt)
{
	ViewStep	step = {owner, canonical, engine, def, cxt, NULL};
	ErrorData  *edata = kappa_try_and_undo_in_subxact(view_step_run, &step,
													  CurrentMemoryContext);

	if (edata == NULL)
		return step.result;
	FreeErrorData(edata);
	elog(DEBUG1, "derived view %d: query not %s around a rename", id,
		 def == NULL ? "parsed" : "printed");
	return NULL;
}

/*
 * ddl_command_start: parse the query of every view that reads the table
 * the command renames (or a table in the schema it renames).
 */
Datum
kappa_on_ddl_start(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	RenameScope scope;
	Oid			argtypes[5] = {OIDOID, OIDOID, OIDOID, OIDOID, OIDOID};
	Datum		args[5];
	int			nviews;
	ParsedView *views;
	char	  **texts;
	char	  **trees;
	int		   *engines;
	SavedUser	saved;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_on_ddl_start: not fired by an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!renamed_object(trigdata->parsetree, &scope))
		PG_RETURN_NULL();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(kappa_extension_owner(), &saved);
	args[0] = ObjectIdGetDatum(scope.relid);
	args[1] = ObjectIdGetDatum(scope.nspid);
	args[2] = ObjectIdGetDatum(scope.object.classId);
	args[3] = ObjectIdGetDatum(scope.object.objectId);
	args[4] = ObjectIdGetDatum(scope.extension);

	/*
	 * The views whose query names what the command renames: that reads the
	 * table or a table in the schema, or names a table by a regclass
	 * literal; or whose derived table depends on the object, on an object
	 * in the schema, or on a member of the extension (the dependencies
	 * create_view records for functions, types, operators and collations).
	 */
	if (SPI_execute_with_args(psprintf("SELECT v.id, v.owner, v.canonical, " KAPPA_VIEW_ENGINE ", "
									   KAPPA_VIEW_QUERY_TREE " FROM kappa.views v"
									   " WHERE $1 OPERATOR(pg_catalog.=) ANY (v.sources)"
									   " OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
									   " WHERE c.oid OPERATOR(pg_catalog.=) ANY (v.sources)"
									   " AND c.relnamespace OPERATOR(pg_catalog.=) $2)"
	/*
	 * a regclass literal of the table ('s.t'::regclass, as it prints), or
	 * of a table of the schema (starting 's.)
	 */
									   " OR pg_catalog.strpos(v.canonical, (SELECT pg_catalog.quote_literal("
									   "pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||)"
									   " pg_catalog.quote_ident(c.relname)) OPERATOR(pg_catalog.||) '::regclass'"
									   " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
									   " ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
									   " WHERE c.oid OPERATOR(pg_catalog.=) $1)) OPERATOR(pg_catalog.>) 0"
									   " OR pg_catalog.strpos(v.canonical, (SELECT pg_catalog.chr(39) OPERATOR(pg_catalog.||)"
									   " pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'"
									   " FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.=) $2))"
									   " OPERATOR(pg_catalog.>) 0"
									   " OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
									   " WHERE d.classid OPERATOR(pg_catalog.=) %u AND d.objid OPERATOR(pg_catalog.=) v.relid"
	/* the object, its array type, or a composite type's attributes */
									   " AND ((d.refclassid OPERATOR(pg_catalog.=) $3 AND d.refobjid OPERATOR(pg_catalog.=) $4)"
									   " OR ($3 OPERATOR(pg_catalog.=) %u AND d.refclassid OPERATOR(pg_catalog.=) %u"
									   " AND d.refobjid OPERATOR(pg_catalog.=) (SELECT t.typrelid FROM pg_catalog.pg_type t"
									   " WHERE t.oid OPERATOR(pg_catalog.=) $4))"
									   " OR ($3 OPERATOR(pg_catalog.=) %u AND d.refclassid OPERATOR(pg_catalog.=) %u"
									   " AND d.refobjid OPERATOR(pg_catalog.=) (SELECT t.typarray FROM pg_catalog.pg_type t"
									   " WHERE t.oid OPERATOR(pg_catalog.=) $4))"
	/* the row type of the relation, or its array type */
									   " OR ($1 OPERATOR(pg_catalog.<>) 0 AND d.refclassid OPERATOR(pg_catalog.=) %u"
									   " AND d.refobjid OPERATOR(pg_catalog.=) ANY ((SELECT ARRAY[t.oid, t.typarray]"
									   " FROM pg_catalog.pg_type t WHERE t.typrelid OPERATOR(pg_catalog.=) $1)"
									   "::pg_catalog.oid[]))"
	/* the schema itself (regnamespace), or an object in it */
									   " OR ($2 OPERATOR(pg_catalog.<>) 0 AND ((d.refclassid OPERATOR(pg_catalog.=) %u"
									   " AND d.refobjid OPERATOR(pg_catalog.=) $2)"
									   " OR (pg_catalog.pg_identify_object(d.refclassid, d.refobjid, 0)).schema"
									   " OPERATOR(pg_catalog.=) (SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_namespace n"
									   " WHERE n.oid OPERATOR(pg_catalog.=) $2)))"
	/* a member of the extension, or the array type of one */
									   " OR ($5 OPERATOR(pg_catalog.<>) 0 AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend e"
									   " WHERE e.refclassid OPERATOR(pg_catalog.=) %u AND e.refobjid OPERATOR(pg_catalog.=) $5"
									   " AND e.deptype OPERATOR(pg_catalog.=) 'e'"
									   " AND ((e.classid OPERATOR(pg_catalog.=) d.refclassid"
									   " AND e.objid OPERATOR(pg_catalog.=) d.refobjid)"
									   " OR (e.classid OPERATOR(pg_catalog.=) %u AND d.refclassid OPERATOR(pg_catalog.=) %u"
									   " AND d.refobjid OPERATOR(pg_catalog.=) (SELECT t.typarray FROM pg_catalog.pg_type t"
									   " WHERE t.oid OPERATOR(pg_catalog.=) e.objid)))))))"
									   " ORDER BY v.id",
									   RelationRelationId, TypeRelationId, RelationRelationId,
									   TypeRelationId, TypeRelationId, TypeRelationId,
									   NamespaceRelationId, ExtensionRelationId, TypeRelationId, TypeRelationId),
							  5, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");

	/* copied out of SPI's memory before any subtransaction */
	nviews = (int) SPI_processed;
	views = palloc(sizeof(ParsedView) * (nviews + 1));
	texts = palloc(sizeof(char *) * (nviews + 1));
	trees = palloc(sizeof(char *) * (nviews + 1));
	engines = palloc(sizeof(int) * (nviews + 1));
	for (int i = 0; i < nviews; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		views[i].id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		views[i].owner = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		texts[i] = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		engines[i] = DatumGetInt16(SPI_getbinval(tup, desc, 4, &isnull));
		trees[i] = SPI_getvalue(tup, desc, 5);
	}
	kappa_unbecome(&saved);

	if (parsed_lxid != MyProc->lxid)
	{
		/* the last transaction's, freed with it */
		parsed_views = NIL;
		unprinted = NIL;
	}
	parsed_lxid = MyProc->lxid;
	renamed = true;
	renamed_relid = scope.relid;
	renamed_nspid = scope.nspid;
	for (int i = 0; i < nviews; i++)
	{
		views[i].parsed = (trees[i] == NULL);
		if (views[i].parsed)
			views[i].def = view_step(views[i].id, views[i].owner, texts[i], engines[i], NULL,
									 TopTransactionContext);
		else
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(TopTransactionContext);
			char	   *before;

			views[i].def = palloc0(sizeof(KappaViewDef));
			views[i].def->query = stringToNode(trees[i]);
			MemoryContextSwitchTo(oldcxt);

			/*
			 * Printed now, the tree must give the text as it is: else
			 * something else was renamed since (a column the view reads,
			 * which broke it), and the text is left as it is, for the view
			 * to be rebuilt from once that is named back; a view still
			 * running is marked broken.
			 */
			before = view_step(views[i].id, views[i].owner, NULL, 0, views[i].def,
							   CurrentMemoryContext);
			if (before == NULL || strcmp(before, texts[i]) != 0)
			{
				MemoryContext oldcxt = MemoryContextSwitchTo(TopTransactionContext);

				unprinted = lappend_int(unprinted, views[i].id);
				MemoryContextSwitchTo(oldcxt);
				views[i].def = NULL;
			}
		}
		if (views[i].def != NULL)
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(TopTransactionContext);
			ParsedView *pv = palloc(sizeof(ParsedView));

			*pv = views[i];
			parsed_views = lappend(parsed_views, pv);
			MemoryContextSwitchTo(oldcxt);
		}
	}
	SPI_finish();
	PG_RETURN_NULL();
}

/*
 * ddl_command_end: print the queries parsed before the command again,
 * with the names they have now.
 */
Datum
kappa_on_ddl_renamed(PG_FUNCTION_ARGS)
{
	ListCell   *lc;
	Oid			argtypes[3] = {TEXTOID, INT4OID, TEXTOID};
	Oid			nameargtypes[2] = {OIDOID, OIDOID};
	Datum		nameargs[2];
	SavedUser	saved;
	int			nestlevel;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_on_ddl_renamed: not fired by an event trigger");
	if (parsed_lxid != MyProc->lxid || !renamed)
		PG_RETURN_NULL();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(kappa_extension_owner(), &saved);
	/* names as kappa.status shows them, whatever the session quotes */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("quote_all_identifiers", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	/*
	 * The name of the derived table renamed or moved, or of those in the
	 * schema renamed; no other row is touched (the apply worker writes
	 * them too).
	 */
	nameargs[0] = ObjectIdGetDatum(renamed_relid);
	nameargs[1] = ObjectIdGetDatum(renamed_nspid);
	if (SPI_execute_with_args("UPDATE kappa.views v SET name = s.name"
							  " FROM (SELECT c.oid, pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'"
							  " OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) AS name"
							  " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
							  " ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
							  " WHERE c.oid OPERATOR(pg_catalog.=) $1"
							  " OR c.relnamespace OPERATOR(pg_catalog.=) $2) s"
							  " WHERE s.oid OPERATOR(pg_catalog.=) v.relid"
							  " AND v.name OPERATOR(pg_catalog.<>) s.name",
							  2, nameargtypes, nameargs, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update kappa.views");
	AtEOXact_GUC(false, nestlevel);
	foreach(lc, parsed_views)
	{
		ParsedView *pv = lfirst(lc);
		Datum		args[3];
		char	   *text;

		text = view_step(pv->id, pv->owner, NULL, 0, pv->def, CurrentMemoryContext);
		if (text == NULL)
			continue;
		args[0] = CStringGetTextDatum(text);
		args[1] = Int32GetDatum(pv->id);
		if (!pv->parsed)
		{
			if (SPI_execute_with_args("UPDATE kappa.views SET canonical = $1"
									  " WHERE id OPERATOR(pg_catalog.=) $2"
									  " AND canonical OPERATOR(pg_catalog.<>) $1",
									  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "could not update kappa.views");
			continue;
		}
		args[2] = CStringGetTextDatum(nodeToString(pv->def->query));
		if (SPI_execute_with_args("UPDATE kappa.views SET canonical = $1, query_tree = $3,"
								  " query_tree_catversion = " CppAsString2(CATALOG_VERSION_NO)
								  " WHERE id OPERATOR(pg_catalog.=) $2",
								  3, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update kappa.views");
	}
	foreach(lc, unprinted)
	{
		Oid			breakargtypes[2] = {INT4OID, TEXTOID};
		Datum		breakargs[2];

		breakargs[0] = Int32GetDatum(lfirst_int(lc));
		breakargs[1] = CStringGetTextDatum("the query of the view could not be printed again around a rename of an object it names\n"
										   "DETAIL:  Its text may name an object that has taken the old name. Another session may have held a lock on a table it reads.\n"
										   "HINT:  If the view's query reads what it should under the new names, build the view again with kappa.alter_view(view, rebuild => true).");
		if (SPI_execute_with_args("SELECT kappa.break_view($1, $2)", 2, breakargtypes, breakargs,
								  NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not run kappa.break_view");
	}
	kappa_unbecome(&saved);
	SPI_finish();
	parsed_views = NIL;
	unprinted = NIL;
	renamed = false;
	PG_RETURN_NULL();
}
