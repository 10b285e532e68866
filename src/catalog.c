/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  The layer below pg_kappa's SQL functions and workers: reading a
 *	  derived view's row of kappa.views, who may read a view, switching to
 *	  a view's owner, locking a view's sources, and the names of the
 *	  extension's objects (catalog table, slot).
 *
 * Everything that runs a view's code (its query, the functions and
 * operators it calls, anything on its tables: triggers, rules, index
 * expressions, constraints) does so between kappa_owner_enter and
 * kappa_owner_leave: as the view's owner, inside a security-restricted
 * operation, with search_path pinned to pg_catalog and a GUC nest level
 * that undoes whatever the view's code set, whoever started the work (the
 * apply worker, the audit worker, a superuser calling verify, audit or
 * replay).  This is what REFRESH MATERIALIZED VIEW does.
 *
 * A view's owner is the owner of its derived table now (pg_class), not
 * the role that created it: REASSIGN OWNED moves the view with the table
 * (and its internal objects; ALTER TABLE ... OWNER TO of the derived table
 * alone is refused by kappa.on_ddl_end).
 *
 * This file does not create, change or drop views (view_ddl.c) and does
 * not apply changes (delta_engine.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "parser/scansup.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/pg_lsn.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "pg_kappa.h"

/*
 * Refuse what may not run from a view's code: fn changes views, captures
 * or the log (nested inside a view's maintenance it would pull the engine's
 * state from under it), or, in the apply worker, waits for the worker
 * itself.  View code runs security-restricted (kappa_owner_enter), as does
 * other maintenance code such as REFRESH MATERIALIZED VIEW's.
 */
void
kappa_refuse_in_view_code(const char *fn, bool waits)
{
	if (InSecurityRestrictedOperation() || (waits && kappa_in_apply_worker))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot call %s within a security-restricted operation", fn),
				 errdetail("A derived view's code, and other maintenance code, may not change or wait for derived views, captures or the event log.")));
}

/*
 * Argument n of an SQL function, a relation, which must not be null (name:
 * the argument's SQL name).  The functions are not STRICT, so that a NULL
 * (to_regclass of a misspelt name) is an error, not an empty result that
 * says all is well.
 */
Oid
kappa_oid_arg(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	return PG_GETARG_OID(n);
}

/*
 * A possibly qualified relation name given as text, as a name list.  As
 * PostgreSQL's scanner does with an identifier written in a statement, a
 * part longer than NAMEDATALEN - 1 bytes is truncated with a NOTICE
 * (stringToQualifiedNameList, which parses it, truncates silently).
 */
List *
kappa_name_list(const char *name)
{
	List	   *names = stringToQualifiedNameList(name);
	const char *p = name;

	/* only well-formed names get here: the parts, as it splits them */
	for (;;)
	{
		const char *start;

		while (scanner_isspace(*p))
			p++;
		if (*p == '"')
		{
			StringInfoData part;

			initStringInfo(&part);
			for (p++; *p != '\0'; p++)
			{
				if (*p == '"' && p[1] != '"')
					break;
				if (*p == '"')
					p++;
				appendStringInfoChar(&part, *p);
			}
			if (*p == '"')
				p++;
			truncate_identifier(part.data, part.len, true);
		}
		else
		{
			for (start = p; *p != '\0' && *p != '.' && !scanner_isspace(*p); p++)
				;
			(void) downcase_truncate_identifier(start, p - start, true);
		}
		while (scanner_isspace(*p))
			p++;
		if (*p != '.')
			break;
		p++;
	}
	return names;
}

/*
 * A trigger function of the extension that only makes sense on some of its
 * own tables (trigname: its SQL name) refuses to fire anywhere else: anyone
 * could otherwise attach it to a table of theirs.
 */
void
kappa_check_trigger_table(Relation rel, const char *trigname, const char *const *tables)
{
	Oid			nsp = get_namespace_oid("kappa", true);

	if (OidIsValid(nsp) && RelationGetNamespace(rel) == nsp)
	{
		for (int i = 0; tables[i] != NULL; i++)
			if (strcmp(RelationGetRelationName(rel), tables[i]) == 0)
				return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s may only be a trigger of pg_kappa's own tables", trigname),
			 errdetail("It was fired on \"%s\".", RelationGetRelationName(rel))));
}

/* Table name of schema kappa, or InvalidOid if there is none. */
static Oid
extension_table(const char *name)
{
	Oid			nsp = get_namespace_oid("kappa", true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid(name, nsp);
}

/* The OID of kappa.views, or InvalidOid when the extension is not here. */
Oid
kappa_views_relid(void)
{
	return extension_table("views");
}

/*
 * The schema a new object named in schemaname (or, if NULL, unqualified)
 * goes to: the first schema of the search_path that exists, as the
 * command creating it will find it; InvalidOid if none.
 */
Oid
kappa_creation_namespace(const char *schemaname)
{
	List	   *path;

	if (schemaname != NULL)
		return get_namespace_oid(schemaname, true);
	path = fetch_search_path(false);
	return path != NIL ? linitial_oid(path) : InvalidOid;
}

/* kappa.partition_changes (partitions.c), or InvalidOid before 0.9. */
Oid
kappa_partition_changes_relid(void)
{
	return extension_table("partition_changes");
}

/* The role that owns the extension (and its catalog tables). */
Oid
kappa_extension_owner(void)
{
	Oid			owner;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'pg_kappa'",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "extension pg_kappa is not installed");
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return owner;
}

/* The name of database dboid's logical slot. */
char *
kappa_slot_name(Oid dboid)
{
	return psprintf("pg_kappa_%u", dboid);
}

/*
 * A relation's name for messages: its name while it exists, else its OID
 * (an OID may name a table dropped since, or nothing at all).
 */
char *
kappa_rel_label(Oid relid)
{
	char	   *name = OidIsValid(relid) ? get_rel_name(relid) : NULL;

	return name ? name : psprintf("%u", relid);
}

/* schema.table of a relation, for messages, or its OID if it is gone. */
char *
kappa_qualified_label(Oid relid)
{
	if (!OidIsValid(relid) || get_rel_name(relid) == NULL)
		return psprintf("%u", relid);
	return kappa_qualified_name(relid);
}

/* "schema"."table" of an existing relation, or an error naming its OID. */
char *
kappa_qualified_name(Oid relid)
{
	char	   *name = get_rel_name(relid);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), name);
}

/*
 * May role lock every source in SHARE mode, which keeps their
 * writers waiting?  LOCK TABLE asks that of modes stronger than ROW
 * EXCLUSIVE: ownership, or UPDATE, DELETE or TRUNCATE on the table.  A role
 * that may only read a table must not keep its writers waiting for longer
 * than one of pg_kappa's statements runs.  Sets *which to the first source
 * it may not lock.
 */
bool
kappa_may_lock_sources(List *sources, Oid role, Oid *which)
{
	ListCell   *lc;

	/* LOCK TABLE of a partitioned table asks it of every partition too */
	foreach(lc, kappa_source_tables(sources))
	{
		Oid			relid = lfirst_oid(lc);

		if (pg_class_ownercheck(relid, role))
			continue;
		if (pg_class_aclcheck(relid, role,
							  ACL_UPDATE | ACL_DELETE | ACL_TRUNCATE) == ACLCHECK_OK)
			continue;
		if (which)
			*which = relid;
		return false;
	}
	return true;
}

/*
 * Has the current transaction written the table (inserted, updated or
 * deleted rows in it, or, with truncate, truncated it)?  The counts of the
 * transaction's changes are the statistics collector's.
 */
bool
kappa_written_in_xact(Oid relid, bool truncate)
{
	PgStat_TableStatus *tabstat = find_tabstat_entry(relid);
	PgStat_TableXactStatus *trans;

	for (trans = tabstat ? tabstat->trans : NULL; trans != NULL; trans = trans->upper)
		if (trans->tuples_inserted > 0 || trans->tuples_updated > 0 ||
			trans->tuples_deleted > 0 || (truncate && trans->truncdropped))
			return true;
	return false;
}

/*
 * The tables that hold the rows of the sources: each source, and for a
 * partitioned one, every partition under it (as of now: a partition
 * attached or detached later makes its views recompute, partitions.c).
 * Not locked here.
 */
List *
kappa_source_tables(List *sources)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, sources)
	{
		Oid			relid = lfirst_oid(lc);

		if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
			result = list_concat_unique_oid(result, find_all_inheritors(relid, NoLock, NULL));
		else
			result = list_append_unique_oid(result, relid);
	}
	return result;
}

/*
 * The first of the tables holding the sources' rows (kappa_source_tables)
 * that the current transaction has written (with truncate, or truncated),
 * or InvalidOid.
 */
Oid
kappa_source_written_in_xact(List *sources, bool truncate)
{
	ListCell   *lc;

	foreach(lc, kappa_source_tables(sources))
		if (kappa_written_in_xact(lfirst_oid(lc), truncate))
			return lfirst_oid(lc);
	return InvalidOid;
}

/*
 * The first partition under partitioned table relid (or relid itself)
 * whose changes are not in the WAL: a foreign, unlogged or temporary
 * table; InvalidOid if none.
 */
Oid
kappa_unlogged_partition(Oid relid)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		Oid			table = lfirst_oid(lc);

		if (get_rel_relkind(table) == RELKIND_FOREIGN_TABLE ||
			get_rel_persistence(table) != RELPERSISTENCE_PERMANENT)
			return table;
	}
	return InvalidOid;
}

/*
 * Engine 2 needs whole old rows in the WAL: set REPLICA IDENTITY FULL on
 * each table holding the sources' rows (kappa_source_tables) that lacks
 * it and that the current role owns, and say so with detail, or refuse,
 * naming the command to run.
 */
void
kappa_ensure_identity_full(List *sources, const char *detail)
{
	ListCell   *lc;
	StringInfoData changed;

	initStringInfo(&changed);
	foreach(lc, kappa_source_tables(sources))
	{
		Oid			relid = lfirst_oid(lc);
		char	   *qualname = kappa_qualified_name(relid);
		HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
		char		replident;

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for relation %u", relid);
		replident = ((Form_pg_class) GETSTRUCT(tuple))->relreplident;
		ReleaseSysCache(tuple);
		if (replident == REPLICA_IDENTITY_FULL)
			continue;
		if (!pg_class_ownercheck(relid, GetUserId()))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("source table %s does not have REPLICA IDENTITY FULL", qualname),
					 errdetail("Derived views take whole old rows of updates and deletes from the WAL, and only the table's owner can make it write them."),
					 errhint("Ask the owner of %s to run: ALTER TABLE %s REPLICA IDENTITY FULL;",
							 qualname, qualname)));
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", qualname),
						false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not set the replica identity of %s", qualname);
		SPI_finish();
		appendStringInfo(&changed, "%s%s", changed.len > 0 ? ", " : "", qualname);
	}
	if (changed.len > 0)
		ereport(NOTICE,
				(errmsg("set REPLICA IDENTITY FULL on %s", changed.data),
				 errdetail("%s", detail)));
}

/* Release the SHARE locks kappa_lock_sources took. */
void
kappa_unlock_sources(List *sources)
{
	ListCell   *lc;

	foreach(lc, kappa_source_tables(sources))
		UnlockRelationOid(lfirst_oid(lc), ShareLock);
}

/*
 * ShareLock every source without ever waiting while holding one: holding a
 * source while waiting for another would deadlock with a writer that holds
 * the second and wants the first.  Wait for a busy source holding nothing
 * else, keep it, and try the others without waiting; start over if one of
 * them is busy.
 */
void
kappa_lock_sources(List *sources)
{
	Oid			held = InvalidOid;	/* the one we waited for */

	/* a writer of a partition locks that partition, not its parent */
	sources = kappa_source_tables(sources);

	for (;;)
	{
		ListCell   *lc;
		Oid			busy = InvalidOid;

		foreach(lc, sources)
		{
			Oid			relid = lfirst_oid(lc);

			if (relid != held && !ConditionalLockRelationOid(relid, ShareLock))
			{
				busy = relid;
				break;
			}
		}
		if (!OidIsValid(busy))
			return;

		/* release everything, then wait for the busy one */
		foreach(lc, sources)
		{
			Oid			relid = lfirst_oid(lc);

			if (relid == busy)
				break;
			if (relid != held)
				UnlockRelationOid(relid, ShareLock);
		}
		if (OidIsValid(held))
			UnlockRelationOid(held, ShareLock);
		LockRelationOid(busy, ShareLock);
		held = busy;
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Run as role for pg_kappa's own catalog work (the extension owner writing
 * kappa.views, for example), like a SECURITY DEFINER function.  Never for
 * a view's code: that is kappa_owner_enter.
 */
void
kappa_become(Oid role, SavedUser *saved)
{
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(role, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

/* Back to the user kappa_become saved. */
void
kappa_unbecome(SavedUser *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}

/*
 * Settings that change what immutable functions a view may call return
 * (float8out, byteaout, the xml functions): view code runs with their
 * built-in values wherever it runs, so that the rows create_view, verify,
 * rebuild and replay compute are the rows the apply worker computes,
 * whatever the caller's session or role has set.
 */
static const char *const view_code_settings[][2] = {
	{"extra_float_digits", "1"},
	{"bytea_output", "hex"},
	{"xmlbinary", "base64"},
};

/*
 * Settings that decide how a query's text reads, or prints: a view's query
 * is printed (kappa.views.canonical) and parsed again with these, whoever's
 * session it is, so that '2024-02-01' stays that day and 'a\' that string.
 * kappa.create_view reads the caller's own text with the caller's.
 */
const char *const kappa_query_text_settings[KAPPA_QUERY_TEXT_SETTINGS][2] = {
	{"DateStyle", "ISO, MDY"},
	{"IntervalStyle", "postgres"},
	{"standard_conforming_strings", "on"},
	{"array_nulls", "on"},
	{"lc_monetary", "C"},
	{"xmloption", "content"},
	{"TimeZone", "UTC"},
	{"quote_all_identifiers", "off"},
};

/*
 * Start running a view's code as owner: security-restricted, with a new
 * GUC nest level, search_path = pg_catalog, pg_temp, and the settings
 * above (both lists).  Pair with kappa_owner_leave; an error in between is cleaned up by
 * the (sub) transaction's abort, which restores both the user and the
 * settings.
 */
void
kappa_owner_enter(Oid owner, KappaOwnerScope *scope)
{
	GetUserIdAndSecContext(&scope->save_userid, &scope->save_sec_context);
	SetUserIdAndSecContext(owner, scope->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	scope->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	for (int i = 0; i < lengthof(view_code_settings); i++)
		(void) set_config_option(view_code_settings[i][0], view_code_settings[i][1],
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	for (int i = 0; i < KAPPA_QUERY_TEXT_SETTINGS; i++)
		(void) set_config_option(kappa_query_text_settings[i][0], kappa_query_text_settings[i][1],
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
}

/* Undo every setting the view's code made, and become the caller again. */
void
kappa_owner_leave(KappaOwnerScope *scope)
{
	AtEOXact_GUC(false, scope->nestlevel);
	SetUserIdAndSecContext(scope->save_userid, scope->save_sec_context);
}

/*
 * For a worker's session: its own SQL sees only pg_catalog (and its own
 * temporary schema, which is never searched for functions or operators),
 * so no role's objects can capture a name in it.  View code that changes
 * the setting is undone by kappa_owner_leave.
 */
void
kappa_pin_search_path(void)
{
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);
}

/* The owner of relation relid now, or InvalidOid if it is gone. */
Oid
kappa_rel_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner = InvalidOid;

	if (HeapTupleIsValid(tup))
	{
		owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
		ReleaseSysCache(tup);
	}
	return owner;
}

/* The owner of derived table relid now, or an error naming it. */
Oid
kappa_view_owner(Oid relid)
{
	Oid			owner = kappa_rel_owner(relid);

	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("derived table with OID %u does not exist", relid)));
	return owner;
}

/* Is relation relid a derived view's table? */
bool
kappa_is_derived_table(Oid relid)
{
	bool		found;

	if (!OidIsValid(kappa_views_relid()))
		return false;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* runs under the caller's search_path: nothing may resolve there */
	if (SPI_execute(psprintf("SELECT 1 FROM kappa.views WHERE relid OPERATOR(pg_catalog.=) '%u'::pg_catalog.oid", relid),
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

/* Is relation relid one of the extension's (a view's internal table, say)? */
bool
kappa_extension_relation(Oid relid)
{
	Oid			extension = get_extension_oid("pg_kappa", true);

	return OidIsValid(extension) &&
		getExtensionOfObject(RelationRelationId, relid) == extension;
}

/*
 * May the current user read view relid's contents and what its status
 * tells?  Its owner may, and so may a role with SELECT on the derived table
 * and on every source, and USAGE on their schemas.
 */
bool
kappa_may_read_view(Oid relid, List *sources)
{
	Oid			user = GetUserId();
	ListCell   *lc;
	List	   *rels = lcons_oid(relid, list_copy(sources));

	if (pg_class_ownercheck(relid, user))
		return true;
	foreach(lc, rels)
	{
		Oid			rel = lfirst_oid(lc);

		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(rel)) ||
			pg_class_aclcheck(rel, user, ACL_SELECT) != ACLCHECK_OK ||
			pg_namespace_aclcheck(get_rel_namespace(rel), user, ACL_USAGE) != ACLCHECK_OK)
			return false;
	}
	return true;
}

/*
 * A view's query is kept as text that names its sources.  When a source or
 * its schema has been renamed, or another table has taken a source's name,
 * that text no longer reads the tables the view was built from: refuse to
 * go on with it.  def is the canonical query compiled again; sources are
 * the view's sources as recorded.
 */
void
kappa_check_sources_unchanged(KappaViewDef *def, List *sources, const char *viewname)
{
	if (!equal(def->sources, sources))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the query of derived view \"%s\" no longer reads the tables it was created from",
						viewname),
				 errdetail("A source table or its schema was renamed, or another table has taken a source's name."),
				 errhint("Drop the view with kappa.drop_view and create it again.")));
}

/* A List of OIDs as an oid[] datum, for an SPI argument. */
Datum
kappa_oid_list_array(List *oids)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(oids), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, oids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

/* An oid[] datum (not null) as a List of OIDs. */
List *
kappa_oid_array_list(Datum arr)
{
	Datum	   *elems;
	int			n;
	List	   *result = NIL;

	deconstruct_array(DatumGetArrayTypeP(arr), OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  &elems, NULL, &n);
	for (int i = 0; i < n; i++)
		result = lappend_oid(result, DatumGetObjectId(elems[i]));
	return result;
}

/*
 * The catalog row of derived table relid, or an error naming it.  SPI must
 * be connected; the row is read with a fresh snapshot, and the result is
 * allocated in SPI's procedure context.  A row whose derived table no
 * longer exists is reported as not a derived view.
 */
void
kappa_read_view(Oid relid, KappaViewRow *v)
{
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	SavedUser	saved;
	int			rc;

	args[0] = ObjectIdGetDatum(relid);

	/*
	 * As the extension owner: the policy on kappa.views shows a role only
	 * the views it may read, but whether the caller may do what it asks is
	 * for the caller of this function to decide, with a message that says
	 * so.
	 */
	kappa_become(kappa_extension_owner(), &saved);
	rc = SPI_execute_with_args("SELECT id, state, canonical, applied_lsn, sources, arrangements, last_error, "
							   KAPPA_VIEW_ENGINE
							   " FROM kappa.views v WHERE relid OPERATOR(pg_catalog.=) $1",
							   1, argtypes, args, NULL, false, 1);
	kappa_unbecome(&saved);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	if (SPI_processed != 1 || !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("\"%s\" is not a derived view", kappa_rel_label(relid))));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	v->id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	v->state = SPI_getvalue(tup, desc, 2);
	v->canonical = SPI_getvalue(tup, desc, 3);
	v->applied = DatumGetLSN(SPI_getbinval(tup, desc, 4, &isnull));
	v->sources = kappa_oid_array_list(SPI_getbinval(tup, desc, 5, &isnull));
	v->arrangements = kappa_oid_array_list(SPI_getbinval(tup, desc, 6, &isnull));
	v->last_error = SPI_getvalue(tup, desc, 7);
	v->engine = DatumGetInt16(SPI_getbinval(tup, desc, 8, &isnull));
	v->owner = kappa_view_owner(relid);
}

PG_FUNCTION_INFO_V1(kappa_can_read);

/*
 * kappa.can_read(relid): may the current user SELECT from relation relid
 * (table privilege and USAGE on its schema)?  False for a relation that
 * no longer exists.  Used by the policy on kappa.views and by
 * kappa.status to show a view's query and errors only to its readers.
 */
Datum
kappa_can_read(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Oid			user = GetUserId();
	Oid			nsp = get_rel_namespace(relid);
	bool		missing = false;

	if (!OidIsValid(nsp) ||
		pg_namespace_aclcheck(nsp, user, ACL_USAGE) != ACLCHECK_OK)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(pg_class_aclcheck_ext(relid, user, ACL_SELECT, &missing) == ACLCHECK_OK &&
				   !missing);
}

PG_FUNCTION_INFO_V1(kappa_can_read_view);

/*
 * kappa.can_read_view(relid, sources): may the current user read what a
 * view's catalog row tells, its query and errors (which may quote rows of
 * its sources)?  Its owner may, and so may a role that may read the
 * derived table and every source (kappa_may_read_view).
 */
Datum
kappa_can_read_view(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);

	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(kappa_may_read_view(relid, kappa_oid_array_list(PG_GETARG_DATUM(1))));
}

/* Is iv KAPPA_MAX_INTERVAL_YEARS or longer? */
bool
kappa_interval_too_long(Interval *iv)
{
	Interval	max = {0};

	max.month = KAPPA_MAX_INTERVAL_YEARS * MONTHS_PER_YEAR;
	return DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(iv),
											 IntervalPGetDatum(&max))) >= 0;
}
