/*-------------------------------------------------------------------------
 *
 * restore.c
 *	  pg_kappa after pg_dump and pg_restore: the trigger that sets aside the
 *	  catalog rows a restore loads into kappa.views and kappa.captures, and
 *	  kappa.restore(), which makes working views and captures of them again.
 *
 * pg_dump dumps the derived tables (ordinary tables, with their guard
 * trigger) and the rows of pg_kappa's catalog and event log (they are
 * registered with pg_extension_config_dump), but not the views' internal
 * schemas, which are members of the extension.  The catalog rows name
 * tables and roles by the old database's OIDs and describe internal tables
 * that do not exist in the new one, so they cannot be used as they are,
 * and must not be: an old OID may well be another table's here.  So every
 * row inserted into kappa.views or kappa.captures other than by pg_kappa
 * itself (kappa_catalog_insert) by a COPY (which is how pg_restore and a
 * plain dump load tables) is set aside, as JSON, in kappa.restore_pending,
 * where neither the apply worker nor any function reads it, and the view
 * id sequence is moved past the view's id.  (Dumps made with --inserts
 * are not supported.)
 *
 * kappa.restore() then, in one transaction:
 *	- appends the restore row to the event log (event_log.c), if the log
 *	  was restored, so that this database's part of the chain follows on;
 *	- captures each formerly captured table again, found by the name it was
 *	  last logged under (or was captured as), with its retention: its log
 *	  in this database starts with a new snapshot;
 *	- rebuilds each view around its derived table, found by the view id its
 *	  guard trigger carries (or by its recorded name), as the table's owner,
 *	  from the view's canonical query: a new internal schema, the table's
 *	  restored rows replaced by the query's, the same id, maintained from
 *	  then on (view_ddl.c, kappa_adopt_view).
 * It returns one row per object.  An object that cannot be restored (its
 * table is gone, its query fails) stays pending for a later call, unless
 * discard_missing is set and its table is gone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "tcop/pquery.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_restore_divert);
PG_FUNCTION_INFO_V1(kappa_restore);

/* set while pg_kappa itself inserts into kappa.views or kappa.captures */
static bool catalog_insert = false;

/* A view or capture set aside by a restore, as kappa.restore reads it. */
typedef struct PendingRow
{
	bool		is_view;
	int64		id;				/* view: its id */
	Oid			old_relid;		/* capture: the old database's OID */
	char	   *name;
	char	   *canonical;		/* view */
	char	   *state;			/* view */
	char	   *retain;			/* capture: interval text, or NULL */
	char	   *json;			/* the row as dumped */
	int			engine;			/* view: its delta engine (1 before 0.3) */
} PendingRow;

/*
 * Run an INSERT into kappa.views or kappa.captures that is pg_kappa's own,
 * past kappa.restore_divert.  SPI connected.
 */
void
kappa_catalog_insert(const char *sql)
{
	int			rc;

	catalog_insert = true;
	PG_TRY();
	{
		rc = SPI_execute(sql, false, 0);
	}
	PG_FINALLY();
	{
		catalog_insert = false;
	}
	PG_END_TRY();
	if (rc != SPI_OK_INSERT || SPI_processed != 1)
		elog(ERROR, "pg_kappa internal statement failed (%s): %s",
			 SPI_result_code_string(rc), sql);
}

/*
 * Is the statement being run a COPY (as pg_restore and a plain dump load
 * tables)?
 */
static bool
in_copy(void)
{
	return ActivePortal != NULL && ActivePortal->commandTag == CMDTAG_COPY;
}

/*
 * BEFORE INSERT FOR EACH ROW on kappa.views and kappa.captures: a row that
 * COPY loads, and that pg_kappa does not insert itself, comes from a
 * restore.  It is kept in kappa.restore_pending for kappa.restore, and not
 * inserted.  (An INSERT by hand goes in as it is: a superuser may write
 * the catalog, as the tests of orphaned rows do.)
 */
Datum
kappa_restore_divert(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	bool		is_view;
	Oid			argtypes[2];
	Datum		args[2];
	SavedUser	saved;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "kappa.restore_divert: must be fired before insert, for each row");
	{
		static const char *const own[] = {"views", "captures", NULL};

		kappa_check_trigger_table(trigdata->tg_relation, "kappa.restore_divert", own);
	}
	if (catalog_insert || !in_copy())
		return PointerGetDatum(trigdata->tg_trigtuple);

	rel = trigdata->tg_relation;
	desc = RelationGetDescr(rel);
	is_view = strcmp(RelationGetRelationName(rel), "views") == 0;
	argtypes[0] = TEXTOID;
	args[0] = CStringGetTextDatum(is_view ? "view" : "capture");
	argtypes[1] = rel->rd_rel->reltype;
	args[1] = heap_copy_tuple_as_datum(trigdata->tg_trigtuple, desc);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(kappa_extension_owner(), &saved);
	if (SPI_execute_with_args("INSERT INTO kappa.restore_pending (kind, \"row\")"
							  " VALUES ($1, pg_catalog.to_jsonb($2))",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into kappa.restore_pending");

	/* the id stays the view's: views created meanwhile must not take it */
	if (is_view)
	{
		int			attnum = SPI_fnumber(desc, "id");
		bool		isnull;
		Datum		id;

		if (attnum <= 0)
			elog(ERROR, "kappa.views has no column \"id\"");
		id = heap_getattr(trigdata->tg_trigtuple, attnum, desc, &isnull);
		if (!isnull)
		{
			Oid			idtype[1] = {INT8OID};
			Datum		idval[1];

			idval[0] = Int64GetDatum(TupleDescAttr(desc, attnum - 1)->atttypid == INT8OID ?
									 DatumGetInt64(id) : (int64) DatumGetInt32(id));
			if (SPI_execute_with_args("SELECT pg_catalog.setval('kappa.views_id_seq',"
									  " GREATEST(s.last_value, $1)) FROM kappa.views_id_seq s",
									  1, idtype, idval, NULL, false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not set kappa.views_id_seq");
		}
	}
	kappa_unbecome(&saved);
	SPI_finish();
	return PointerGetDatum(NULL);
}

/* The text of column n of the current SPI result row i, or NULL. */
static char *
spi_text(uint64 i, int n)
{
	return SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, n);
}

/* The pending rows, views in id order after captures.  SPI connected. */
static List *
read_pending(bool *log_pending)
{
	List	   *rows = NIL;

	*log_pending = false;
	if (SPI_execute("SELECT kind, \"row\"->>'id', \"row\"->>'relid', \"row\"->>'name',"
					" \"row\"->>'canonical', \"row\"->>'state', \"row\"->>'retain', \"row\"::text,"
					" COALESCE(\"row\"->>'engine', '1')"
					" FROM kappa.restore_pending"
					" ORDER BY kind, (\"row\"->>'id')::int8, \"row\"->>'name'",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.restore_pending");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *kind = spi_text(i, 1);
		PendingRow *p;

		if (strcmp(kind, "log") == 0)
		{
			*log_pending = true;
			continue;
		}
		p = palloc0(sizeof(PendingRow));
		p->is_view = strcmp(kind, "view") == 0;
		if (p->is_view && spi_text(i, 2))
			p->id = pg_strtoint64(spi_text(i, 2));
		if (!p->is_view && spi_text(i, 3))
			p->old_relid = (Oid) strtoul(spi_text(i, 3), NULL, 10);
		p->name = spi_text(i, 4);
		p->canonical = spi_text(i, 5);
		p->state = spi_text(i, 6);
		p->retain = spi_text(i, 7);
		p->json = spi_text(i, 8);
		p->engine = atoi(spi_text(i, 9));
		rows = lappend(rows, p);
	}
	return rows;
}

/* Forget a pending row (as the extension owner).  SPI connected. */
static void
forget_pending(PendingRow *p)
{
	Oid			argtypes[2] = {TEXTOID, JSONBOID};
	Datum		args[2];

	args[0] = CStringGetTextDatum(p->is_view ? "view" : "capture");
	args[1] = DirectFunctionCall1(jsonb_in, CStringGetDatum(p->json));
	if (SPI_execute_with_args("DELETE FROM kappa.restore_pending WHERE kind = $1 AND \"row\" = $2",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from kappa.restore_pending");
}

/* The OID of an existing relation named by a qualified name, or InvalidOid. */
static Oid
relation_by_name(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	Datum		d;

	if (name == NULL)
		return InvalidOid;
	args[0] = CStringGetTextDatum(name);
	if (SPI_execute_with_args("SELECT pg_catalog.to_regclass($1)::oid", 1, argtypes, args,
							  NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not look up relation \"%s\"", name);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? InvalidOid : DatumGetObjectId(d);
}

/*
 * The name a formerly captured table was last logged under: the newest row
 * of the restored log (between the restore rows lower and upper) that has
 * records of the old OID old_relid.  NULL if there is none.  SPI connected,
 * as the extension owner.
 */
static char *
last_logged_name(Oid old_relid, int64 lower, int64 upper)
{
	Oid			argtypes[3] = {OIDOID, INT8OID, INT8OID};
	Datum		args[3];

	args[0] = ObjectIdGetDatum(old_relid);
	args[1] = Int64GetDatum(lower);
	args[2] = Int64GetDatum(upper);
	if (SPI_execute_with_args("SELECT l.table_names[pg_catalog.array_position(l.tables, $1)]"
							  " FROM kappa.event_log l"
							  " WHERE l.tables @> ARRAY[$1] AND l.batch_id > $2 AND l.batch_id < $3"
							  " ORDER BY l.batch_id DESC LIMIT 1",
							  3, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.event_log");
	return SPI_processed == 1 ? spi_text(0, 1) : NULL;
}

/*
 * The restored derived table of view p: the table whose guard trigger
 * carries the view's id, else the table of its recorded name if that has
 * pg_kappa's guard trigger without an id (views created before 0.3); never
 * a table that is some view's already, nor one of pg_kappa's own (internal
 * tables carry guard triggers too).
 * InvalidOid if there is none.  SPI connected, as the extension owner.
 */
static Oid
find_derived_table(PendingRow *p)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	bool		isnull;

	args[0] = CStringGetTextDatum(psprintf(INT64_FORMAT, p->id));
	args[1] = CStringGetTextDatum(p->name ? p->name : "");
	if (SPI_execute_with_args("SELECT t.tgrelid, t.tgnargs = 1 FROM pg_catalog.pg_trigger t"
							  " WHERE t.tgname = 'kappa_guard'"
							  "   AND t.tgfoid = 'kappa.guard()'::pg_catalog.regprocedure"
							  "   AND NOT EXISTS (SELECT 1 FROM kappa.views v WHERE v.relid OPERATOR(pg_catalog.=) t.tgrelid)"
							  "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
							  "                    ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
							  "                   WHERE c.oid OPERATOR(pg_catalog.=) t.tgrelid"
							  "                     AND (n.nspname OPERATOR(pg_catalog.~) '^kappa(_v[0-9]+)?$'))"
							  "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
							  "                   WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
							  "                     AND d.objid OPERATOR(pg_catalog.=) t.tgrelid AND d.deptype OPERATOR(pg_catalog.=) 'e')"
							  "   AND ((t.tgnargs = 1 AND t.tgargs = pg_catalog.convert_to($1, 'UTF8')"
							  "                                      OPERATOR(pg_catalog.||) '\\x00'::pg_catalog.bytea)"
							  "        OR (t.tgnargs = 0 AND t.tgrelid = pg_catalog.to_regclass($2)))"
							  " ORDER BY 2 DESC, 1 LIMIT 1",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_trigger");
	if (SPI_processed == 0)
		return InvalidOid;
	return DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* One row of kappa.restore's result. */
static void
put_result(ReturnSetInfo *rsinfo, const char *kind, const char *name,
		   const char *action, const char *detail)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, detail == NULL};

	values[0] = CStringGetTextDatum(kind);
	values[1] = CStringGetTextDatum(name ? name : "");
	values[2] = CStringGetTextDatum(action);
	values[3] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * Restore one capture: capture the table again under its current OID, with
 * the retention it had.  Returns the action taken; *detail explains it.
 */
static const char *
restore_capture(PendingRow *p, Oid extowner, int64 lower, int64 upper,
				bool discard, char **detail)
{
	SavedUser	saved;
	char	   *logged;
	Oid			relid;
	XLogRecPtr	lsn;

	kappa_become(extowner, &saved);
	logged = last_logged_name(p->old_relid, lower, upper);
	relid = relation_by_name(logged);
	if (!OidIsValid(relid))
		relid = relation_by_name(p->name);
	if (!OidIsValid(relid))
	{
		*detail = psprintf("No table is named %s now.", logged ? logged : p->name);
		if (discard)
			forget_pending(p);
		kappa_unbecome(&saved);
		return discard ? "discarded" : "missing";
	}
	p->name = kappa_qualified_name(relid);
	if (SPI_execute(psprintf("SELECT 1 FROM kappa.captures WHERE relid = %u", relid),
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.captures");
	if (SPI_processed > 0)
	{
		*detail = pstrdup("The table was captured again already.");
		forget_pending(p);
		kappa_unbecome(&saved);
		return "skipped";
	}
	kappa_unbecome(&saved);

	lsn = kappa_capture_relation(relid, p->retain ? quote_literal_cstr(p->retain) : "NULL", true);

	kappa_become(extowner, &saved);
	forget_pending(p);
	kappa_unbecome(&saved);
	*detail = psprintf("Its log in this database starts with a snapshot at %X/%X.",
					   LSN_FORMAT_ARGS(lsn));
	return "captured";
}

/*
 * Restore one view: rebuild it around its derived table, then carry over
 * what its catalog row said about it beyond its query and progress (the
 * query as written, audit schedule, creation time, counters, paused).
 */
static const char *
restore_view(PendingRow *p, Oid extowner, bool discard, char **detail)
{
	SavedUser	saved;
	Oid			relid;
	int64		id;
	Oid			argtypes[2] = {JSONBOID, INT8OID};
	Datum		args[2];

	kappa_become(extowner, &saved);
	relid = find_derived_table(p);
	if (!OidIsValid(relid))
	{
		*detail = psprintf("No table carries the guard trigger of view " INT64_FORMAT ", or is named %s, now.",
						   p->id, p->name ? p->name : "(unknown)");
		if (discard)
			forget_pending(p);
		kappa_unbecome(&saved);
		return discard ? "discarded" : "missing";
	}
	kappa_unbecome(&saved);
	if (p->canonical == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the restored catalog row of view " INT64_FORMAT " has no query", p->id)));
	p->name = kappa_qualified_name(relid);

	id = kappa_adopt_view(relid, p->id, p->canonical, p->engine);

	kappa_become(extowner, &saved);
	args[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(p->json));
	args[1] = Int64GetDatum(id);
	if (SPI_execute_with_args("UPDATE kappa.views v"
							  "   SET query = COALESCE(o.query, v.query),"
							  "       audit_every = o.audit_every,"
							  "       last_audit_at = o.last_audit_at,"
							  "       created_at = COALESCE(o.created_at, v.created_at),"
							  "       txns_applied = COALESCE(o.txns_applied, 0),"
							  "       rows_applied = COALESCE(o.rows_applied, 0),"
							  "       state = CASE WHEN o.state = 'paused' THEN 'paused' ELSE v.state END"
							  "  FROM pg_catalog.jsonb_populate_record(NULL::kappa.views, $1) o"
							  " WHERE v.id = $2",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update kappa.views");
	forget_pending(p);
	kappa_unbecome(&saved);

	*detail = psprintf("Rebuilt from its query as role %s%s.",
					   quote_identifier(GetUserNameFromId(kappa_view_owner(relid), false)),
					   id != p->id ? psprintf(", under the new id " INT64_FORMAT " (its id was taken)", id) : "");
	return strcmp(p->state ? p->state : "", "paused") == 0 ? "rebuilt, paused" : "rebuilt";
}

/* One object to restore, for restore_one, and what it did */
typedef struct RestoreStep
{
	PendingRow *p;
	Oid			extowner;
	int64		lower;
	int64		upper;
	bool		discard;
	const char *action;			/* out */
	char	   *detail;			/* out */
} RestoreStep;

/* Restore one view or capture (in a subtransaction of its own). */
static void
restore_one(void *arg)
{
	RestoreStep *step = arg;

	if (step->p->is_view)
		step->action = restore_view(step->p, step->extowner, step->discard, &step->detail);
	else
		step->action = restore_capture(step->p, step->extowner, step->lower, step->upper,
									   step->discard, &step->detail);
}

/*
 * kappa.restore(discard_missing): after pg_restore, make working views and
 * captures of what the restore set aside, and continue the event log.  One
 * row per object: kind (event log, capture, view), name, action and detail.
 * Each object is restored in a subtransaction of its own, so that one that
 * fails is reported and left pending while the others are restored.
 */
Datum
kappa_restore(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		discard = !PG_ARGISNULL(0) && PG_GETARG_BOOL(0);
	Oid			extowner;
	Oid			views_relid;
	SavedUser	saved;
	RestoreStep step;
	List	   *pending;
	bool		log_pending;
	ListCell   *lc;
	XLogRecPtr	marker;
	int64		lower = 0;
	int64		upper = PG_INT64_MAX;

	kappa_refuse_in_view_code("kappa.restore", false);
	InitMaterializedSRF(fcinfo, 0);
	if (KappaShmem == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_kappa must be loaded via shared_preload_libraries"),
				 errhint("Add pg_kappa to shared_preload_libraries and restart the server.")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("kappa.restore cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("Views are filled from snapshots taken after their sources are locked."),
				 errhint("Run it in a READ COMMITTED transaction.")));
	extowner = kappa_extension_owner();
	if (!has_privs_of_role(GetUserId(), extowner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function restore"),
				 errdetail("Only the owner of extension pg_kappa may restore views and captures, since it acts for every view's owner.")));
	views_relid = kappa_views_relid();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(extowner, &saved);
	pending = read_pending(&log_pending);
	kappa_unbecome(&saved);
	if (pending == NIL && !log_pending)
	{
		SPI_finish();
		return (Datum) 0;
	}

	/* as kappa.create_view: the slot first, before anything is written */
	LockRelationOid(views_relid, RowExclusiveLock);
	if (pending != NIL)
		kappa_ensure_slot();

	/* this database's part of the chain starts here */
	kappa_become(extowner, &saved);
	marker = kappa_log_restore_marker();
	if (SPI_execute("SELECT batch_id FROM kappa.event_log WHERE kind = 'restore'"
					" ORDER BY batch_id DESC LIMIT 2", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.event_log");
	if (SPI_processed >= 1)
		upper = pg_strtoint64(spi_text(0, 1));
	if (SPI_processed >= 2)
		lower = pg_strtoint64(spi_text(1, 1));
	kappa_unbecome(&saved);
	if (marker != InvalidXLogRecPtr)
		put_result(rsinfo, "event log", "kappa.event_log", "continued",
				   psprintf("A restore row at %X/%X links this database's batches to the restored ones.",
							LSN_FORMAT_ARGS(marker)));

	step.extowner = extowner;
	step.lower = lower;
	step.upper = upper;
	step.discard = discard;
	foreach(lc, pending)
	{
		PendingRow *p = lfirst(lc);
		ErrorData  *edata;
		const char *action;
		char	   *detail;

		step.p = p;
		step.detail = NULL;
		edata = kappa_try_in_subxact(restore_one, &step, CurrentMemoryContext);
		action = step.action;
		detail = step.detail;
		if (edata != NULL)
		{
			action = "failed";
			detail = edata->detail ? psprintf("%s: %s", edata->message, edata->detail) :
				pstrdup(edata->message);
			FreeErrorData(edata);
		}
		put_result(rsinfo, p->is_view ? "view" : "capture", p->name, action, detail);
	}
	SPI_finish();

	CacheInvalidateRelcacheByRelid(views_relid);
	kappa_request_worker(MyDatabaseId);
	return (Datum) 0;
}
