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
 * A command that renames anything but a table (or a schema) prints the
 * query of every view with a tree again: only those whose text changes
 * are written.
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

#include "access/xact.h"
#include "catalog/catversion.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "nodes/readfuncs.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
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

/*
 * What a command renames or moves to another schema: a relation (*relid;
 * ALTER VIEW, INDEX, ... may name a table too), a schema (*nspid), or any
 * other object a view's query can name, a function, type, operator or
 * collation (*other).  False for any other command, and for a column or
 * constraint renamed (a column a view reads renamed breaks the view:
 * kappa.on_ddl_end).
 */
static bool
renamed_object(Node *stmt, Oid *relid, Oid *nspid, bool *other)
{
	*relid = InvalidOid;
	*nspid = InvalidOid;
	*other = false;
	if (IsA(stmt, RenameStmt))
	{
		RenameStmt *rs = (RenameStmt *) stmt;

		if (rs->renameType == OBJECT_COLUMN || rs->renameType == OBJECT_ATTRIBUTE ||
			rs->renameType == OBJECT_TABCONSTRAINT || rs->renameType == OBJECT_DOMCONSTRAINT ||
			rs->renameType == OBJECT_TRIGGER || rs->renameType == OBJECT_RULE ||
			rs->renameType == OBJECT_POLICY)
			return false;
		if (relation_kind(rs->renameType) && rs->relation)
			*relid = RangeVarGetRelid(rs->relation, NoLock, true);
		else if (rs->renameType == OBJECT_SCHEMA)
		{
			*nspid = get_namespace_oid(rs->subname, true);
			*other = true;		/* its functions and types too */
		}
		else
			*other = true;
	}
	else if (IsA(stmt, AlterObjectSchemaStmt))
	{
		AlterObjectSchemaStmt *as = (AlterObjectSchemaStmt *) stmt;

		if (relation_kind(as->objectType) && as->relation)
			*relid = RangeVarGetRelid(as->relation, NoLock, true);
		else
			*other = true;
	}
	return OidIsValid(*relid) || OidIsValid(*nspid) || *other;
}

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
	ErrorData  *edata = kappa_try_in_subxact(view_step_run, &step, CurrentMemoryContext);

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
	Oid			relid;
	Oid			nspid;
	bool		other;
	Oid			argtypes[3] = {OIDOID, OIDOID, BOOLOID};
	Datum		args[3];
	int			nviews;
	ParsedView *views;
	char	  **texts;
	char	  **trees;
	int		   *engines;
	SavedUser	saved;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_on_ddl_start: not fired by an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!renamed_object(trigdata->parsetree, &relid, &nspid, &other))
		PG_RETURN_NULL();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(kappa_extension_owner(), &saved);
	args[0] = ObjectIdGetDatum(relid);
	args[1] = ObjectIdGetDatum(nspid);
	args[2] = BoolGetDatum(other);
	if (SPI_execute_with_args("SELECT v.id, v.owner, v.canonical, " KAPPA_VIEW_ENGINE ", "
							  KAPPA_VIEW_QUERY_TREE " FROM kappa.views v"
							  " WHERE $1 OPERATOR(pg_catalog.=) ANY (v.sources)"
							  " OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
							  " WHERE c.oid OPERATOR(pg_catalog.=) ANY (v.sources)"
							  " AND c.relnamespace OPERATOR(pg_catalog.=) $2)"
							  " OR ($3 AND " KAPPA_VIEW_QUERY_TREE " IS NOT NULL)"
							  " ORDER BY v.id",
							  3, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
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
		parsed_views = NIL;		/* the last transaction's, freed with it */
	parsed_lxid = MyProc->lxid;
	renamed = true;
	renamed_relid = relid;
	renamed_nspid = nspid;
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
			 * to be rebuilt from once that is named back.
			 */
			before = view_step(views[i].id, views[i].owner, NULL, 0, views[i].def,
							   CurrentMemoryContext);
			if (before == NULL || strcmp(before, texts[i]) != 0)
				views[i].def = NULL;
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
	kappa_unbecome(&saved);
	SPI_finish();
	parsed_views = NIL;
	renamed = false;
	PG_RETURN_NULL();
}
