/*-------------------------------------------------------------------------
 *
 * verify.c
 *	  kappa.verify: compares a derived view with its defining query at one
 *	  consistent point and returns every difference as a row.
 *
 * The consistent point: the view's sources are locked against writes
 * (SHARE, taken without ever waiting while holding another, as
 * kappa.create_view does), which also waits for the writers in flight;
 * then the view is waited for up to the current WAL position, so it
 * includes everything committed before the lock.  Both sides are then
 * read with one snapshot and compared as multisets, both ways (EXCEPT
 * ALL), so there is no false alarm under concurrent writes and no
 * difference is missed.  Writers stay blocked until the calling
 * transaction ends: run it in a transaction of its own.
 *
 * Findings are rows (kind 'missing': in the query's result but not in the
 * view; 'extra': in the view but not in the query's result; the row as
 * JSON; how many times), in the manner of amcheck's verify_heapam.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_verify);

/*
 * May the caller verify view relid?  Verify shows rows of the query, so
 * the caller must be the owner or be allowed to read the view and every
 * source; checked before any lock is taken.
 */
static void
check_verify_privileges(Oid relid, KappaViewRow *v)
{
	if (!kappa_may_read_view(relid, v->sources))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to verify derived view \"%s\"", get_rel_name(relid)),
				 errdetail("Verifying a view shows rows of its query."),
				 errhint("Only the view's owner, or a role with SELECT on the view and on every one of its sources, can verify it.")));
	if (strcmp(v->state, "running") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot verify derived view \"%s\" because it is %s",
						get_rel_name(relid), v->state),
				 errdetail("Only a running view is kept up to date with its sources."),
				 strcmp(v->state, "paused") == 0 ?
				 errhint("Resume it with kappa.alter_view(view, paused => false).") :
				 strcmp(v->state, "initializing") == 0 ?
				 errhint("Wait for it with kappa.wait(view), then verify it.") :
				 errhint("kappa.status shows why in last_error; kappa.alter_view(view, rebuild => true) builds it again from its sources as they are, and kappa.replay(view, new_name => 'name') beside it from the event log if its sources are captured.")));
}

/*
 * The output columns of the view that aggregate floating-point values
 * (sum or avg of real or double precision, and expressions over them): a
 * maintained view adds and removes values in another order than a
 * recomputation does, so these can differ in their last digits.
 */
static List *
float_aggregate_columns(KappaViewDef *def)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, def->query->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		Oid			type = exprType((Node *) tle->expr);

		if (tle->resjunk || (type != FLOAT4OID && type != FLOAT8OID))
			continue;
		if (contain_agg_clause((Node *) tle->expr))
			result = lappend(result, makeString(tle->resname));
	}
	return result;
}

/*
 * SQL that is true when rows m and e (jsonb) agree but for the float
 * aggregate columns cols, and those are equal up to the rounding that the
 * order of summation explains: a relative difference of at most 1e-9 for
 * double precision (1e-4 for real) of the larger magnitude.
 */
static char *
float_pairing_condition(List *cols, KappaViewDef *def)
{
	StringInfoData buf;
	StringInfoData names;
	ListCell   *lc;

	initStringInfo(&buf);
	initStringInfo(&names);
	foreach(lc, cols)
		appendStringInfo(&names, "%s%s", names.len > 0 ? "," : "",
						 quote_literal_cstr(strVal(lfirst(lc))));
	appendStringInfo(&buf, "(m.j OPERATOR(pg_catalog.-) ARRAY[%s]::text[])"
					 " OPERATOR(pg_catalog.=) (e.j OPERATOR(pg_catalog.-) ARRAY[%s]::text[])",
					 names.data, names.data);
	foreach(lc, def->query->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		char	   *a;
		char	   *b;
		const char *tol;

		if (tle->resjunk || !list_member(cols, makeString(tle->resname)))
			continue;
		a = psprintf("(m.j OPERATOR(pg_catalog.->>) %s)::pg_catalog.float8", quote_literal_cstr(tle->resname));
		b = psprintf("(e.j OPERATOR(pg_catalog.->>) %s)::pg_catalog.float8", quote_literal_cstr(tle->resname));
		tol = exprType((Node *) tle->expr) == FLOAT4OID ? "1e-4" : "1e-9";
		appendStringInfo(&buf, " AND (%s IS NOT DISTINCT FROM %s OR"
						 " (pg_catalog.abs(%s OPERATOR(pg_catalog.-) %s)) OPERATOR(pg_catalog.<=)"
						 " (%s OPERATOR(pg_catalog.*) GREATEST(pg_catalog.abs(%s), pg_catalog.abs(%s))))",
						 a, b, a, b, tol, a, b);
	}
	return buf.data;
}

/*
 * Rows of a view whose columns include one of a type without equality
 * (json, xml, point), or of a type a role made (whose casts, to json for
 * to_jsonb too, would be its owner's code), are compared with those
 * columns as text (kappa_text_of): rel (SQL giving the rows) as a query
 * that does so, or rel itself when no column needs it.
 */
static char *
comparable_rows(KappaViewDef *def, const char *rel)
{
	StringInfoData cols;
	bool		cast = false;
	ListCell   *lc;

	initStringInfo(&cols);
	foreach(lc, def->query->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		Oid			typid = exprType((Node *) tle->expr);
		const char *name;
		bool		as_text;

		if (tle->resjunk)
			continue;
		name = quote_identifier(tle->resname);
		as_text = typid >= FirstNormalObjectId ||
			!OidIsValid(lookup_type_cache(typid, TYPECACHE_EQ_OPR)->eq_opr);
		cast |= as_text;
		appendStringInfo(&cols, "%s%s AS %s", cols.len > 0 ? ", " : "",
						 as_text ? kappa_text_of(psprintf("q.%s", name), typid) :
						 psprintf("q.%s", name), name);
	}
	if (!cast)
		return pstrdup(rel);
	return psprintf("SELECT %s FROM (%s) q", cols.data, rel);
}

/*
 * The comparison, both ways, with one snapshot, as the view's owner:
 * every difference goes to the result set.  Rows are compared exactly,
 * except that a missing and an extra row that differ only in float
 * aggregates by rounding (see float_pairing_condition) are not reported.
 */
static void
compare_view(ReturnSetInfo *rsinfo, Oid relid, KappaViewDef *def,
			 const char *canonical, const char *target, Oid owner)
{
	StringInfoData sql;
	KappaOwnerScope scope;
	List	   *floats = float_aggregate_columns(def);
	char	   *query = comparable_rows(def, canonical);
	char	   *table = comparable_rows(def, psprintf("SELECT * FROM %s", target));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH m AS (SELECT pg_catalog.to_jsonb(d.*) AS j, pg_catalog.count(*) AS c"
					 " FROM ((%s) EXCEPT ALL (%s)) d GROUP BY 1),"
					 " e AS (SELECT pg_catalog.to_jsonb(d.*) AS j, pg_catalog.count(*) AS c"
					 " FROM ((%s) EXCEPT ALL (%s)) d GROUP BY 1),"
					 " p AS (SELECT m.j AS mj, e.j AS ej FROM m, e WHERE %s)"
					 " SELECT 'missing'::text, m.j, m.c FROM m"
					 " WHERE NOT EXISTS (SELECT 1 FROM p WHERE p.mj OPERATOR(pg_catalog.=) m.j)"
					 " UNION ALL "
					 "SELECT 'extra'::text, e.j, e.c FROM e"
					 " WHERE NOT EXISTS (SELECT 1 FROM p WHERE p.ej OPERATOR(pg_catalog.=) e.j)"
					 " ORDER BY 1, 2",
					 query, table, table, query,
					 floats != NIL ? float_pairing_condition(floats, def) : "false");
	kappa_owner_enter(owner, &scope);
	/* not read-only: a new snapshot, taken after the wait */
	if (SPI_execute(sql.data, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not compare derived view \"%s\"", get_rel_name(relid));
	kappa_owner_leave(&scope);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		for (int c = 0; c < 3; c++)
			values[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
}

Datum
kappa_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid = kappa_oid_arg(fcinfo, 0, "view");
	char	   *canonical;
	char	   *target;
	List	   *sources;
	Oid			owner;
	KappaViewDef *def;
	KappaViewRow v;
	XLogRecPtr	lsn;
	bool		caught_up;

	MemoryContext callercxt = CurrentMemoryContext;

	kappa_refuse_in_view_code("kappa.verify", true);
	InitMaterializedSRF(fcinfo, 0);
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("kappa.verify cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("It compares at a point it chooses after locking the view's sources."),
				 errhint("Run it in a READ COMMITTED transaction.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_read_view(relid, &v);
	check_verify_privileges(relid, &v);
	{
		MemoryContext spicxt = MemoryContextSwitchTo(callercxt);
		KappaOwnerScope scope;

		kappa_owner_enter(v.owner, &scope);
		def = kappa_compile_view(v.canonical, 2);
		kappa_owner_leave(&scope);
		kappa_check_sources_unchanged(def, v.sources, get_rel_name(relid));

		canonical = pstrdup(v.canonical);
		sources = list_copy(v.sources);
		owner = v.owner;
		target = kappa_qualified_name(relid);
		MemoryContextSwitchTo(spicxt);
	}

	/*
	 * The view includes committed transactions only: compared with what
	 * this transaction sees of a source it wrote, it would differ by
	 * those writes.
	 */
	{
		Oid			written = kappa_source_written_in_xact(sources, true);

		if (OidIsValid(written))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot verify derived view \"%s\" in a transaction that changed its source %s",
							get_rel_name(relid), kappa_qualified_name(written)),
					 errdetail("The view includes committed transactions only, and would differ from its query by this transaction's changes."),
					 errhint("Verify it in a transaction of its own.")));
	}
	if (!kappa_enabled)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot verify derived view \"%s\" while pg_kappa.enabled is off",
						get_rel_name(relid)),
				 errdetail("No apply worker runs, so the view cannot catch up with its sources."),
				 errhint("Set pg_kappa.enabled to on and reload the configuration.")));

	/* the consistent point */
	kappa_lock_sources(sources);
	lsn = GetXLogInsertRecPtr();
	SPI_finish();
	caught_up = DatumGetBool(DirectFunctionCall3(kappa_wait, ObjectIdGetDatum(relid),
												 LSNGetDatum(lsn),
												 DirectFunctionCall3(interval_in,
																	 CStringGetDatum("60s"),
																	 ObjectIdGetDatum(InvalidOid),
																	 Int32GetDatum(-1))));
	if (!caught_up)
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("derived view \"%s\" did not catch up with its sources within 60 seconds",
						get_rel_name(relid)),
				 errhint("Check kappa.status for the view and its worker.")));

	compare_view(rsinfo, relid, def, canonical, target, owner);

	/*
	 * A role that may only read the sources does not keep their writers
	 * waiting past this call (kappa_may_lock_sources): the view has been
	 * compared, and the locks have done their work.
	 */
	if (!kappa_may_lock_sources(sources, GetUserId(), NULL))
		kappa_unlock_sources(sources);
	return (Datum) 0;
}
