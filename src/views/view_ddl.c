/*-------------------------------------------------------------------------
 *
 * view_ddl.c
 *	  The SQL functions that create, alter and drop derived views, and the
 *	  trigger that guards derived tables against direct writes.
 *
 * kappa.create_view validates the query (view_compiler.c), makes sure the
 * database's logical slot exists, briefly locks the sources against writes
 * so that the initial contents and the stream meet at one LSN, creates the
 * view's tables and fills them, and records the view.  Per view it creates
 * a schema kappa_v<id>, owned by the caller, holding the worker's copy of
 * each source (a_<n>, "arrangements") and three unlogged scratch tables
 * per source or view (d_<n> for the batch's row images, w_<n> for touched
 * rows, k for affected keys).  The derived table itself is created where the
 * caller said, owned by the caller.
 *
 * The internal schema and every table in it are members of the extension:
 * they go with DROP EXTENSION and are not dumped by pg_dump, which dumps the
 * derived table (an ordinary table) and the catalog rows instead.  Dropping
 * a view's internal schema therefore takes kappa.drop_internal_schema, which
 * releases the members first.  The derived table's guard trigger carries
 * the view's id as its argument, so that after a restore (restore.c) the
 * table is found again even if it was renamed since the view was created;
 * kappa_adopt_view builds a view's internal state afresh around such an
 * existing derived table.
 *
 * Internal SQL is built from quoted identifiers and fully qualified names
 * only, and runs with the function's fixed search_path; the caller's
 * search_path is used only to parse the caller's query and table name.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogutils.h"
#include "catalog/catversion.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_index.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_range.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/readfuncs.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "replication/logical.h"
#include "replication/slot.h"
#include "rewrite/rewriteManip.h"
#include "rewrite/rewriteSupport.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/pg_lsn.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_create_view);
PG_FUNCTION_INFO_V1(kappa_create_view_replay);
PG_FUNCTION_INFO_V1(kappa_drop_view);
PG_FUNCTION_INFO_V1(kappa_alter_view);
PG_FUNCTION_INFO_V1(kappa_guard);
PG_FUNCTION_INFO_V1(kappa_derived_columns_problem);

/* set while pg_kappa itself writes derived tables and arrangements */
bool		kappa_guard_bypass = false;

/* Run one statement through SPI (already connected); error on failure. */
static void
exec_sql(const char *sql, int expected)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc != expected)
		elog(ERROR, "pg_kappa internal statement failed (%s): %s",
			 SPI_result_code_string(rc), sql);
}

/* Run a query returning one int8 through SPI (already connected). */
static int64
exec_int8(const char *sql)
{
	bool		isnull;

	if (SPI_execute(sql, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "pg_kappa internal query failed: %s", sql);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Creating a logical slot waits until every transaction with an xid that
 * runs when it starts has ended, in any database: a prepared one waits for
 * COMMIT PREPARED or ROLLBACK PREPARED, however long.  Say so, naming
 * them, rather than wait without a word.  (Other running transactions are
 * in pg_stat_activity, and end by themselves.)
 */
static void
notice_slot_wait(void)
{
	char	   *prepared;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT pg_catalog.string_agg(pg_catalog.quote_literal(gid), ', ' ORDER BY prepared)"
					" FROM pg_catalog.pg_prepared_xacts",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_prepared_xacts");
	prepared = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (prepared)
		ereport(NOTICE,
				(errmsg("waiting for prepared transactions %s to end", prepared),
				 errdetail("The first derived view of a database creates its logical replication slot, which waits for every transaction running when it starts, in every database."),
				 errhint("Their owner or a superuser can end them with COMMIT PREPARED or ROLLBACK PREPARED in their database; or cancel this statement and try again later.")));
	SPI_finish();
}

/*
 * Error context of the slot's creation: "all replication slots are in use"
 * alone does not say that pg_kappa takes one per database.
 */
static void
slot_create_context(void *arg)
{
	errcontext("creating replication slot \"%s\", which pg_kappa needs in each database with derived views or captured tables",
			   (const char *) arg);
}

/*
 * Is the slot named name there, and made (not still being created by
 * another backend, which has not decided yet where it starts)?  *exists
 * says whether it is there at all.
 */
static bool
slot_made(const char *name, bool *exists)
{
	ReplicationSlot *slot;
	bool		made = false;

	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	slot = SearchNamedReplicationSlot(name, false);
	if (slot != NULL)
	{
		SpinLockAcquire(&slot->mutex);
		made = slot->data.persistency == RS_PERSISTENT;
		SpinLockRelease(&slot->mutex);
	}
	LWLockRelease(ReplicationSlotControlLock);
	*exists = slot != NULL;
	return made;
}

/*
 * The database's slot, created on first use.  Creating a logical slot
 * waits for every transaction that has an xid, so this must happen before
 * the calling transaction writes anything.
 *
 * A slot another backend is creating (the first views of a database made
 * at once) starts where its creator finds a consistent point, which may be
 * after this transaction's view is made and after changes committed
 * since: those would never be decoded for the view, and kappa.wait would
 * not wait for them.  So wait until it is made; it then starts before
 * anything this transaction does next.  Should its creation fail, the slot
 * goes, and this transaction makes it.
 */
void
kappa_ensure_slot(void)
{
	char	   *name = kappa_slot_name(MyDatabaseId);
	LogicalDecodingContext *ctx;
	ErrorContextCallback errcb;
	bool		exists;

	while (!slot_made(name, &exists) && exists)
	{
		/* its creator waits for transactions with an xid: not for this one */
		if (GetTopTransactionIdIfAny() != InvalidTransactionId)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the logical replication slot of this database is being created by another session"),
					 errdetail("The slot waits for every transaction that has written data, this one too, before it is ready."),
					 errhint("Call this function at the start of its own transaction, or once the other session's kappa.create_view or kappa.capture has returned.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	if (exists)
		return;

	if (GetTopTransactionIdIfAny() != InvalidTransactionId)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cannot create the first derived view of a database in a transaction that has already written data"),
				 errdetail("The view needs a logical replication slot, which cannot be created after the transaction has written."),
				 errhint("Call kappa.create_view at the start of its own transaction.")));

	/*
	 * The slot outlives this transaction even if it fails.  A worker that
	 * finds no view drops it again, so ask for one first (which fails when
	 * every worker slot is taken, before a slot is left behind); it waits
	 * for this transaction's lock on kappa.views before it looks.
	 */
	kappa_request_worker(MyDatabaseId);

	CheckLogicalDecodingRequirements();
	notice_slot_wait();
	errcb.callback = slot_create_context;
	errcb.arg = name;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	ReplicationSlotCreate(name, true, RS_EPHEMERAL, false);
	error_context_stack = errcb.previous;
	ctx = CreateInitDecodingContext("pg_kappa", NIL, false, InvalidXLogRecPtr,
									XL_ROUTINE(.page_read = read_local_xlog_page,
											   .segment_open = wal_segment_open,
											   .segment_close = wal_segment_close),
									NULL, NULL, NULL);
	DecodingContextFindStartpoint(ctx);
	FreeDecodingContext(ctx);
	ReplicationSlotPersist();
	ReplicationSlotRelease();
}

/*
 * A range type's subtype_diff function runs when a column of it is
 * analyzed, as the table's owner (autovacuum analyzes too).  The view's
 * tables belong to its owner: they may hold no column (colname, of source
 * table relname, or of the view if NULL) of a range or multirange whose
 * subtype_diff another role made, which would run as the view's owner.
 */
static void
refuse_foreign_range(Oid typid, const char *colname, const char *relname, Oid owner)
{
	Oid			range = getBaseType(typid);
	HeapTuple	tup;
	Oid			diff;
	Oid			diff_owner;

	if (get_typtype(range) == TYPTYPE_MULTIRANGE)
		range = get_multirange_range(range);
	if (get_typtype(range) != TYPTYPE_RANGE)
		return;
	tup = SearchSysCache1(RANGETYPE, ObjectIdGetDatum(range));
	if (!HeapTupleIsValid(tup))
		return;
	diff = ((Form_pg_range) GETSTRUCT(tup))->rngsubdiff;
	ReleaseSysCache(tup);
	if (!OidIsValid(diff) || diff < FirstNormalObjectId)
		return;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(diff));
	if (!HeapTupleIsValid(tup))
		return;
	diff_owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	if (diff_owner != owner && !superuser_arg(diff_owner))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("derived views cannot keep %s, of range type %s",
						relname ? psprintf("column \"%s\" of source table \"%s\"", colname, relname) :
						psprintf("column \"%s\"", colname),
						format_type_be(typid)),
				 errdetail("Its subtype_diff function %s belongs to another role, and ANALYZE of the view's tables, which runs as their owner, would run it.",
						   format_procedure(diff)),
				 errhint("Let the owner of the function create the view, or a role whose views may run it.")));
}

/*
 * The columns the view's tables take from its sources and its query, as
 * the view's owner (refuse_foreign_range).  The tables a view keeps for a
 * source (keeps_sources) have its columns and columns of pg_kappa's own,
 * named "_kappa_...": a source may have no such name.
 */
static void
check_view_columns(KappaViewDef *def, Oid owner, bool keeps_sources)
{
	ListCell   *lc;

	foreach(lc, def->sources)
	{
		Relation	rel = table_open(lfirst_oid(lc), AccessShareLock);
		TupleDesc	desc = RelationGetDescr(rel);

		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (att->attisdropped)
				continue;
			if (keeps_sources && strncmp(NameStr(att->attname), "_kappa_", 7) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_RESERVED_NAME),
						 errmsg("column \"%s\" of source table \"%s\" has a name pg_kappa reserves",
								NameStr(att->attname), RelationGetRelationName(rel)),
						 errdetail("Names that begin with \"_kappa_\" are those of the columns pg_kappa adds to the tables it keeps for a view."),
						 errhint("Rename the column, then create the view.")));
			refuse_foreign_range(att->atttypid, NameStr(att->attname),
								 RelationGetRelationName(rel), owner);
		}
		table_close(rel, AccessShareLock);
	}
	foreach(lc, def->query->targetList)
	{
		TargetEntry *tle = lfirst(lc);

		if (!tle->resjunk)
			refuse_foreign_range(exprType((Node *) tle->expr), tle->resname, NULL, owner);
	}
}

/*
 * CREATE TABLE text for a table with the same columns as relid, at the same
 * attribute numbers: a dropped column is created and dropped again.
 */
static void
create_mirror(Oid relid, const char *qualname, bool unlogged,
			  const char *extra_columns)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData sql;
	StringInfoData drops;

	initStringInfo(&sql);
	initStringInfo(&drops);
	appendStringInfo(&sql, "CREATE %sTABLE %s (", unlogged ? "UNLOGGED " : "",
					 qualname);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (i > 0)
			appendStringInfoString(&sql, ", ");
		if (att->attisdropped)
		{
			appendStringInfo(&sql, "_kappa_dropped_%d integer", i + 1);
			appendStringInfo(&drops, "ALTER TABLE %s DROP COLUMN _kappa_dropped_%d;",
							 qualname, i + 1);
			continue;
		}
		appendStringInfo(&sql, "%s %s", quote_identifier(NameStr(att->attname)),
						 format_type_extended(att->atttypid, att->atttypmod,
											  FORMAT_TYPE_TYPEMOD_GIVEN |
											  FORMAT_TYPE_FORCE_QUALIFY));
		if (OidIsValid(att->attcollation) &&
			att->attcollation != get_typcollation(att->atttypid))
			appendStringInfo(&sql, " COLLATE %s",
							 generate_collation_name(att->attcollation));
	}
	if (extra_columns)
		appendStringInfo(&sql, "%s%s", desc->natts > 0 ? ", " : "", extra_columns);
	appendStringInfoString(&sql, ")");
	table_close(rel, AccessShareLock);

	exec_sql(sql.data, SPI_OK_UTILITY);
	if (drops.len > 0)
		exec_sql(drops.data, SPI_OK_UTILITY);
}

/* The guard trigger of an internal table. */
static const char *
guard_trigger_sql(const char *qualname)
{
	return psprintf("CREATE TRIGGER kappa_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE"
					" ON %s FOR EACH STATEMENT EXECUTE FUNCTION kappa.guard()", qualname);
}

/*
 * The guard trigger of a derived table: the view's id is its argument,
 * which is how kappa.restore finds the table after pg_dump and pg_restore.
 */
static const char *
derived_guard_trigger_sql(const char *qualname, int64 id)
{
	return psprintf("CREATE TRIGGER kappa_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE"
					" ON %s FOR EACH STATEMENT EXECUTE FUNCTION kappa.guard('" INT64_FORMAT "')",
					qualname, id);
}

/*
 * Make every relation in a view's internal schema a member of the
 * extension, like the schema itself: pg_dump leaves members out, and a
 * restore rebuilds them (restore.c).  As the extension owner.
 */
static void
add_internal_members(const char *schema)
{
	uint64		n;
	char	  **names;

	if (SPI_execute(psprintf("SELECT pg_catalog.format('%%s %%I.%%I', CASE c.relkind WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END, n.nspname, c.relname)"
							 " FROM pg_catalog.pg_class c"
							 " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
							 " WHERE n.nspname = %s AND c.relkind IN ('r', 'v')"
							 " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
							 "  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
							 "    AND d.objid = c.oid AND d.deptype = 'e')"
							 " ORDER BY c.oid",
							 quote_literal_cstr(schema)),
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the internal tables of schema \"%s\"", schema);
	n = SPI_processed;
	names = palloc(sizeof(char *) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
		names[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
	for (uint64 i = 0; i < n; i++)
		exec_sql(psprintf("ALTER EXTENSION pg_kappa ADD %s", names[i]),
				 SPI_OK_UTILITY);
}

/*
 * Are the extension's SQL objects recent enough (0.3) for internal tables
 * to be members?  Before, kappa.on_sql_drop dropped an internal schema
 * together with its tables, which would take member tables' extension
 * with them.
 */
static bool
internal_members_supported(void)
{
	return exec_int8("SELECT (pg_catalog.to_regprocedure('kappa.drop_internal_schema(bigint)')"
					 " IS NOT NULL)::int4::int8") != 0;
}

/*
 * Drop a view's internal schema, members and all (kappa.drop_internal_schema,
 * as the extension owner).  NOTICEs about the tables that go with it are
 * suppressed by the function itself.
 */
static void
drop_internal_schema(int64 id)
{
	if (internal_members_supported())
		exec_sql(psprintf("SELECT kappa.drop_internal_schema(" INT64_FORMAT ")", id),
				 SPI_OK_SELECT);
	else
	{
		exec_sql(psprintf("ALTER EXTENSION pg_kappa DROP SCHEMA kappa_v" INT64_FORMAT, id),
				 SPI_OK_UTILITY);
		exec_sql(psprintf("DROP SCHEMA kappa_v" INT64_FORMAT " CASCADE", id),
				 SPI_OK_UTILITY);
	}
}

/* Is view id id in use, in kappa.views or by an internal schema? */
static bool
view_id_taken(int64 id)
{
	return exec_int8(psprintf("SELECT (EXISTS (SELECT 1 FROM kappa.views WHERE id = " INT64_FORMAT ")"
							  " OR EXISTS (SELECT 1 FROM pg_catalog.pg_namespace"
							  "             WHERE nspname = 'kappa_v" INT64_FORMAT "'))::int4::int8",
							  id, id)) != 0;
}

/*
 * How the columns of table rel differ from the output of query, which
 * CREATE TABLE AS gave them (names, types, typmods and collations, in
 * order), as a sentence; NULL when they do not.  When a column's type is
 * all that differs, and fix is not NULL, *fix is the ALTER TABLE that
 * gives it the query's.
 */
static char *
columns_problem(Relation rel, Query *query, char **fix)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			att = 0;
	ListCell   *lc;

	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		Form_pg_attribute a;
		Oid			type = exprType((Node *) tle->expr);
		int32		typmod = exprTypmod((Node *) tle->expr);
		Oid			collation = exprCollation((Node *) tle->expr);

		if (tle->resjunk)
			continue;
		while (att < desc->natts && TupleDescAttr(desc, att)->attisdropped)
			att++;
		if (att >= desc->natts)
			return psprintf("Column \"%s\" of the view's query is not in the table.", tle->resname);
		a = TupleDescAttr(desc, att++);
		if (strcmp(NameStr(a->attname), tle->resname) != 0)
			return psprintf("Column %d of the table is \"%s\"; the view's query calls it \"%s\".",
							att, NameStr(a->attname), tle->resname);
		if (a->atttypid != type || a->atttypmod != typmod)
		{
			if (fix != NULL)
				*fix = psprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s",
								kappa_qualified_name(RelationGetRelid(rel)),
								quote_identifier(tle->resname),
								format_type_with_typemod(type, typmod));
			return psprintf("Column \"%s\" of the table is of type %s; the view's query gives %s.",
							tle->resname, format_type_with_typemod(a->atttypid, a->atttypmod),
							format_type_with_typemod(type, typmod));
		}
		if (a->attcollation != collation)
			return psprintf("Column \"%s\" of the table has collation %s; the view's query gives %s.",
							tle->resname,
							OidIsValid(a->attcollation) ? generate_collation_name(a->attcollation) : "none",
							OidIsValid(collation) ? generate_collation_name(collation) : "none");
	}
	for (; att < desc->natts; att++)
	{
		if (!TupleDescAttr(desc, att)->attisdropped)
			return psprintf("Column \"%s\" of the table is not in the view's query.",
							NameStr(TupleDescAttr(desc, att)->attname));
	}
	return NULL;
}

/*
 * An existing table adopted as a view's derived table (kappa.restore) must
 * have exactly the columns the view's query produces.
 */
static void
check_adopted_columns(Oid relid, KappaViewDef *def)
{
	Relation	rel = table_open(relid, AccessShareLock);
	char	   *fix = NULL;
	char	   *problem = columns_problem(rel, def->query, &fix);

	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("table \"%s\" does not match the query of its derived view",
						RelationGetRelationName(rel)),
				 errdetail("%s", problem),
				 fix ?
				 errhint("Give the column the query's type with %s, then build the view again; or drop the view and create it again with kappa.create_view.", fix) :
				 errhint("Drop the view (kappa.drop_view, or DROP TABLE when it is not registered yet) and create it again with kappa.create_view.")));
	table_close(rel, AccessShareLock);
}

/*
 * Does the adopted table still have the unique index create_view gave it
 * (on the key columns, or on (true) for a view without key)?
 */
static bool
has_key_index(Oid relid, KappaViewDef *def)
{
	StringInfoData cols;
	ListCell   *lc;

	initStringInfo(&cols);
	foreach(lc, def->key_columns)
	{
		AttrNumber	attnum = get_attnum(relid, (char *) lfirst(lc));

		if (attnum == InvalidAttrNumber)
			return false;
		appendStringInfo(&cols, "%s%d", cols.len > 0 ? " " : "", attnum);
	}
	if (def->key_columns == NIL)
		return exec_int8(psprintf("SELECT count(*) FROM pg_catalog.pg_index"
								  " WHERE indrelid = %u AND indisunique AND indisvalid"
								  " AND indpred IS NULL AND indnatts = 1 AND indkey[0] = 0"
								  " AND pg_catalog.pg_get_expr(indexprs, indrelid) = 'true'",
								  relid)) > 0;
	return exec_int8(psprintf("SELECT count(*) FROM pg_catalog.pg_index"
							  " WHERE indrelid = %u AND indisunique AND indisvalid"
							  " AND indpred IS NULL AND indexprs IS NULL"
							  " AND indkey::text = %s",
							  relid, quote_literal_cstr(cols.data))) > 0;
}

/*
 * The derived table depends on the functions, operators, types and
 * collations its query uses, as a view does: DROP FUNCTION of one of them
 * is refused, or drops the view with CASCADE; and on the composite types
 * it reads fields of ((f(x)).a), whose attributes renamed view_rename.c
 * follows.  Not on tables: a dropped source marks the view broken instead
 * (kappa.on_sql_drop), and the view can be dropped then.
 */
static void
record_query_dependencies(Oid derived, Query *query)
{
	ObjectAddress myself;
	Relation	depRel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *composites = NIL;
	ListCell   *lc;

	ObjectAddressSet(myself, RelationRelationId, derived);
	recordDependencyOnExpr(&myself, (Node *) query, NIL, DEPENDENCY_NORMAL);
	CommandCounterIncrement();

	/*
	 * The dependencies on relations go, but on a composite type's
	 * attributes become one on the type (a table may not depend on a
	 * column: ALTER TYPE ... ALTER ATTRIBUTE would fail on it).
	 */
	depRel = table_open(DependRelationId, RowExclusiveLock);
	ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(RelationRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(derived));
	scan = systable_beginscan(depRel, DependDependerIndexId, true, NULL, 2, key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);

		if (dep->refclassid != RelationRelationId || dep->deptype != DEPENDENCY_NORMAL)
			continue;
		if (get_rel_relkind(dep->refobjid) == RELKIND_COMPOSITE_TYPE)
			composites = list_append_unique_oid(composites, get_rel_type_id(dep->refobjid));
		CatalogTupleDelete(depRel, &tup->t_self);
	}
	systable_endscan(scan);
	table_close(depRel, RowExclusiveLock);
	foreach(lc, composites)
	{
		ObjectAddress type;

		ObjectAddressSet(type, TypeRelationId, lfirst_oid(lc));
		recordDependencyOn(&myself, &type, DEPENDENCY_NORMAL);
	}
	CommandCounterIncrement();
}

/*
 * Does the view join source i to another table by column attnum: is the
 * column in a condition that reads another range table entry too?  A
 * condition on one table alone (a filter such as x = 'BUILDING') never
 * looks rows up by the column: the lookups go by the join columns.
 */
static bool
column_joins(KappaViewDef *def, int i, AttrNumber attnum)
{
	List	   *conds = kappa_join_conditions((Node *) def->query->jointree);
	ListCell   *lc;

	/* a subquery's condition: its table is entry nrtes + 1 there */
	foreach(lc, def->semijoins)
	{
		KappaSemiJoin *semi = lfirst(lc);
		ListCell   *lv;

		conds = lappend(conds, semi->cond);
		if (semi->srcno != i)
			continue;
		foreach(lv, pull_var_clause(semi->cond, 0))
		{
			Var		   *var = lfirst(lv);

			if (var->varno == def->nrtes + 1 && var->varattno == attnum)
				return true;
		}
	}

	foreach(lc, conds)
	{
		List	   *vars;
		int			own = 0;
		ListCell   *lv;

		/* the subqueries themselves: as their conditions, above */
		if (checkExprHasSubLink(lfirst(lc)))
			continue;
		vars = pull_var_clause(lfirst(lc), PVC_RECURSE_AGGREGATES | PVC_RECURSE_PLACEHOLDERS);
		foreach(lv, vars)
		{
			Var		   *var = lfirst(lv);

			if (IsA(var, Var) && var->varlevelsup == 0 &&
				var->varno > 0 && var->varno <= def->nrtes &&
				def->rte_source[var->varno] == i && var->varattno == attnum)
				own = var->varno;
		}
		if (own == 0)
			continue;
		foreach(lv, vars)
		{
			Var		   *var = lfirst(lv);

			if (IsA(var, Var) && var->varlevelsup == 0 && var->varno != own)
				return true;
		}
	}
	return false;
}

/* Are the names in prefix the first ones of names, in order? */
static bool
key_prefix(List *prefix, List *names)
{
	ListCell   *lp;
	ListCell   *ln;

	if (list_length(prefix) > list_length(names))
		return false;
	forboth(lp, prefix, ln, names)
	{
		if (strcmp(lfirst(lp), lfirst(ln)) != 0)
			return false;
	}
	return true;
}

/*
 * Name in a NOTICE each column a view over several tables (or with GROUP
 * BY) looks rows up by in a source without an index that starts with it,
 * with the CREATE INDEX that would make those lookups index scans.  No
 * index is ever created on a user's table.
 */
static void
advise_indexes(KappaViewDef *def)
{
	/*
	 * Groups maintained algebraically are looked up only when dirty; a
	 * LEFT JOIN view's, by the kept table's primary key.
	 */
	bool		by_group = def->query->groupClause != NIL && def->preserved_rt == 0 &&
		kappa_agg_projection(def) == NULL;
	List	   *group_vars = NIL;
	ListCell   *lg;

	if (def->nrtes < 2 && !by_group && def->semijoins == NIL)
		return;
	foreach(lg, def->query->groupClause)
		group_vars = list_concat(group_vars,
								 pull_var_clause((Node *) get_sortgroupclause_expr(lfirst(lg),
																				  def->query->targetList),
												 0));
	for (int i = 0; i < list_length(def->sources); i++)
	{
		Oid			src = list_nth_oid(def->sources, i);
		Relation	rel = table_open(src, AccessShareLock);
		List	   *indexes = RelationGetIndexList(rel);
		ListCell   *lc;

		foreach(lc, (List *) list_nth(def->index_columns, i))
		{
			AttrNumber	attnum = lfirst_int(lc);
			bool		indexed = false;
			bool		grouped_by = false;
			ListCell   *li;

			/* a column only grouped by matters only if groups are recomputed */
			foreach(li, group_vars)
			{
				Var		   *var = lfirst(li);

				grouped_by |= IsA(var, Var) && var->varno > 0 && var->varno <= def->nrtes &&
					def->rte_source[var->varno] == i && var->varattno == attnum;
			}
			/* filter columns are never looked up by */
			if (!(grouped_by && by_group) && !column_joins(def, i, attnum))
				continue;

			foreach(li, indexes)
			{
				HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(li)));

				if (HeapTupleIsValid(tup))
				{
					Form_pg_index index = (Form_pg_index) GETSTRUCT(tup);

					indexed |= index->indnkeyatts > 0 && index->indkey.values[0] == attnum;
					ReleaseSysCache(tup);
				}
			}
			if (!indexed)
				ereport(NOTICE,
						(errmsg("column \"%s\" of source table %s has no index",
								get_attname(src, attnum, false), kappa_qualified_name(src)),
						 errdetail("The view looks up rows of %s by this column for every change of the tables it is joined or grouped with.",
								   kappa_qualified_name(src)),
						 errhint("CREATE INDEX ON %s (%s);", kappa_qualified_name(src),
								 quote_identifier(get_attname(src, attnum, false)))));
		}
		table_close(rel, AccessShareLock);
	}
}

/*
 * o_<n> reads its source, as a view: PostgreSQL records that, and since
 * o_<n> is a member of the extension, dropping the source (or a column of
 * it) with CASCADE would drop the extension, and without would be refused
 * to the source's owner.  A source is the view's owner's business only as
 * far as kappa.on_sql_drop and the DDL checks say (the view breaks), so
 * o_<n> does not depend on it.
 */
static void
forget_source_dependency(Oid view, Oid src)
{
	Oid			rule = get_rewrite_oid(view, "_RETURN", false);

	deleteDependencyRecordsForSpecific(RewriteRelationId, rule, DEPENDENCY_NORMAL,
									   RelationRelationId, src);
	CommandCounterIncrement();
}

/*
 * f_<n>: for a source with a primary key, the keys all of whose images in
 * a batch fail the view's conditions on the source (key_joins.c): the key
 * columns, in the key's order, as the source has them.
 */
static void
create_failed_keys_table(KappaViewDef *def, const char *schema, int i)
{
	Oid			src = list_nth_oid(def->sources, i);
	Relation	rel = table_open(src, AccessShareLock);
	bool		has_pkey = OidIsValid(RelationGetPrimaryKeyIndex(rel));

	table_close(rel, AccessShareLock);
	/* the source's key (view_compiler.c) is its primary key when it has one */
	if (has_pkey)
		exec_sql(psprintf("CREATE UNLOGGED TABLE %s.f_%d AS SELECT %s FROM ONLY %s WITH NO DATA",
						  schema, i,
						  kappa_quoted_list(kappa_attnames(src, list_nth(def->source_keys, i)), ""),
						  kappa_qualified_name(src)),
				 SPI_OK_UTILITY);
}

/*
 * Engine 2's objects for view id in schema (quoted), owned by the view's
 * owner: per source, d_<n> for the batch's signed rows and o_<n>, the
 * source before the batch, and f_<n> (create_failed_keys_table); dq and dc for the delta of a view without
 * GROUP BY, or k for the keys of the groups to recompute.  Then the
 * derived table target (in nspname, named relname), filled from the
 * sources, which are locked, if fill (else replay fills it from the log).
 * *drelids gets the d_<n> tables (recorded in kappa.views.arrangements:
 * DDL checks compare sources with them).
 */
static Oid
create_engine2_view(KappaViewDef *def, int64 id, const char *schemaname,
					const char *target, const char *canonical,
					const char *nspname, const char *relname, Oid adopt,
					Oid **drelids, bool fill)
{
	const char *schema = quote_identifier(schemaname);
	int			nsources = list_length(def->sources);
	bool		grouped = def->query->groupClause != NIL;
	bool		whole = !grouped && def->query->hasAggs;
	KappaAggSql *agg = NULL;
	Oid			derived;

	*drelids = palloc(sizeof(Oid) * nsources);
	for (int i = 0; i < nsources; i++)
	{
		Oid			src = list_nth_oid(def->sources, i);
		char	   *d = psprintf("%s.d_%d", schema, i);
		Relation	rel;
		TupleDesc	desc;
		StringInfoData live;
		StringInfoData delta;
		bool	   *read;

		create_mirror(src, d, true, "_kappa_w integer");
		(*drelids)[i] = RangeVarGetRelid(makeRangeVar(pstrdup(schemaname), psprintf("d_%d", i), -1),
										 NoLock, false);
		/* only joins of inner joins take rows by key (key_joins.c) */
		if (def->nrtes > 1 && def->preserved_rt == 0 && def->semijoins == NIL)
			create_failed_keys_table(def, schema, i);

		/*
		 * o_<n>: the live rows, weight 1, and the batch undone.  Columns the
		 * view does not read are null in it, as in d_<n>: they may then be
		 * dropped from the source (kappa.columns_read).
		 */
		rel = table_open(src, AccessShareLock);
		desc = RelationGetDescr(rel);
		read = kappa_columns_read(def, i, desc->natts);
		initStringInfo(&live);
		initStringInfo(&delta);
		for (int c = 0; c < desc->natts; c++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, c);
			const char *sep = c > 0 ? ", " : "";

			if (att->attisdropped)
			{
				appendStringInfo(&live, "%sNULL::pg_catalog.int4 AS _kappa_dropped_%d", sep, c + 1);
				appendStringInfo(&delta, "%sNULL::pg_catalog.int4", sep);
				continue;
			}
			if (read != NULL && !read[c])
			{
				char	   *type = format_type_extended(att->atttypid, att->atttypmod,
														FORMAT_TYPE_TYPEMOD_GIVEN |
														FORMAT_TYPE_FORCE_QUALIFY);

				appendStringInfo(&live, "%sNULL::%s AS %s", sep, type,
								 quote_identifier(NameStr(att->attname)));
				appendStringInfo(&delta, "%sNULL::%s", sep, type);
				continue;
			}
			appendStringInfo(&live, "%s%s", sep, quote_identifier(NameStr(att->attname)));
			appendStringInfo(&delta, "%s%s", sep, quote_identifier(NameStr(att->attname)));
		}
		table_close(rel, AccessShareLock);
		exec_sql(psprintf("CREATE VIEW %s.o_%d AS SELECT %s%s1 AS _kappa_w FROM ONLY %s"
						  " UNION ALL SELECT %s%s-_kappa_w FROM %s",
						  schema, i, live.data, live.len > 0 ? ", " : "", kappa_qualified_name(src),
						  delta.data, delta.len > 0 ? ", " : "", d),
				 SPI_OK_UTILITY);
		forget_source_dependency(RangeVarGetRelid(makeRangeVar(pstrdup(schemaname),
															   psprintf("o_%d", i), -1),
												  NoLock, false), src);
	}

	if (OidIsValid(adopt))
	{
		/* an existing table (kappa.restore, a change of engine) */
		derived = adopt;
		exec_sql(psprintf("DROP TRIGGER IF EXISTS kappa_guard ON %s", target), SPI_OK_UTILITY);
	}
	else
	{
		exec_sql(psprintf("CREATE TABLE %s AS SELECT * FROM (%s) q WITH NO DATA", target, canonical),
				 SPI_OK_UTILITY);
		derived = RangeVarGetRelid(makeRangeVar(pstrdup(nspname), pstrdup(relname), -1),
								   NoLock, false);
	}
	record_query_dependencies(derived, def->query);
	if (OidIsValid(adopt) && (has_key_index(adopt, def) || (!whole && def->key_columns == NIL)))
		;						/* it has its index already (a bag's need not be unique) */
	else if (whole)
		exec_sql(psprintf("CREATE UNIQUE INDEX ON %s ((true))", target), SPI_OK_UTILITY);
	else if (def->key_columns != NIL)
		exec_sql(psprintf("CREATE UNIQUE INDEX ON %s (%s)%s", target,
						  kappa_quoted_list(def->key_columns, ""),
						  grouped ? " NULLS NOT DISTINCT" : ""), SPI_OK_UTILITY);
	else if (def->preserved_rt > 0)
	{
		/* LEFT JOIN: rows are recomputed by the kept table's key */
		exec_sql(psprintf("CREATE INDEX ON %s (%s)", target,
						  kappa_quoted_list(def->preserved_key, "")), SPI_OK_UTILITY);
	}
	else
	{
		/* a bag: rows to delete are looked up by one column */
		Oid			eqop;
		bool		hashed;
		AttrNumber	look = kappa_bag_lookup_column(derived, &eqop, &hashed);

		if (look != InvalidAttrNumber)
			exec_sql(psprintf("CREATE INDEX ON %s USING %s (%s)", target,
							  hashed ? "hash" : "btree",
							  quote_identifier(get_attname(derived, look, false))),
					 SPI_OK_UTILITY);
	}
	if (def->preserved_rt > 0 && def->key_columns != NIL && !OidIsValid(adopt) &&
		!key_prefix(def->preserved_key, def->key_columns))
	{
		/* LEFT JOIN with GROUP BY: groups are recomputed by the kept key */
		exec_sql(psprintf("CREATE INDEX ON %s (%s)", target,
						  kappa_quoted_list(def->preserved_key, "")), SPI_OK_UTILITY);
	}
	exec_sql(derived_guard_trigger_sql(target, id), SPI_OK_UTILITY);

	/* k: the keys of the groups (or a LEFT JOIN's kept rows) to recompute */
	if (kappa_recompute_key(def) != NIL)
		exec_sql(psprintf("CREATE UNLOGGED TABLE %s.k AS SELECT %s FROM (%s) q WITH NO DATA",
						  schema, kappa_quoted_list(kappa_recompute_key(def), ""), canonical),
				 SPI_OK_UTILITY);
	if (grouped)
	{
		Query	   *proj = kappa_agg_projection(def);

		/* the state of a view maintained algebraically (agg_delta.c) */
		if (proj)
		{
			ListCell   *lc;

			agg = kappa_agg_sql_weighted(def, schema, target, kappa_deparse_query(proj, NULL));
			foreach(lc, agg->create)
				exec_sql(lfirst(lc), SPI_OK_UTILITY);
			exec_sql(guard_trigger_sql(psprintf("%s.g", schema)), SPI_OK_UTILITY);
		}
	}
	else if (whole && kappa_agg_projection(def) != NULL)
	{
		ListCell   *lc;

		/* one row of state for aggregates without GROUP BY (agg_delta.c) */
		agg = kappa_agg_sql_weighted(def, schema, target,
									 kappa_deparse_query(kappa_agg_projection(def), NULL));
		foreach(lc, agg->create)
			exec_sql(lfirst(lc), SPI_OK_UTILITY);
		exec_sql(guard_trigger_sql(psprintf("%s.g", schema)), SPI_OK_UTILITY);
	}
	else if (!whole && def->preserved_rt == 0)
	{
		exec_sql(psprintf("CREATE UNLOGGED TABLE %s.dq AS SELECT *, 0::pg_catalog.int4 AS _kappa_w FROM (%s) q WITH NO DATA",
						  schema, canonical), SPI_OK_UTILITY);
		exec_sql(psprintf("CREATE UNLOGGED TABLE %s.dc AS SELECT *, 0::pg_catalog.int8 AS _kappa_w FROM (%s) q WITH NO DATA",
						  schema, canonical), SPI_OK_UTILITY);
	}

	/*
	 * Members of the extension before the view's code first runs (filling
	 * it): whatever that code might create in the internal schema is not.
	 */
	{
		SavedUser	saved;

		kappa_become(kappa_extension_owner(), &saved);
		if (internal_members_supported())
			add_internal_members(schemaname);
		kappa_unbecome(&saved);
	}

	kappa_guard_bypass = fill;
	PG_TRY();
	{
		if (fill && OidIsValid(adopt))
			exec_sql(psprintf("TRUNCATE ONLY %s", target), SPI_OK_UTILITY);
		if (fill)
			exec_sql(psprintf("INSERT INTO %s SELECT * FROM (%s) q", target, canonical),
					 SPI_OK_INSERT);
		if (fill && agg)
			exec_sql(agg->fill_state, SPI_OK_INSERT);
		if (fill)
			kappa_analyze_view(derived, (int) id);
	}
	PG_FINALLY();
	{
		kappa_guard_bypass = false;
	}
	PG_END_TRY();
	return derived;
}

/*
 * Statistics of a view just filled: its derived table and, for a view
 * maintained algebraically, its state table g, which the worker's
 * statements look groups and rows up in (without them the planner guesses,
 * and scans).  Only what the current user owns (the view's owner owns
 * both).  SPI connected.
 */
void
kappa_analyze_view(Oid derived, int id)
{
	Oid			nsp = get_namespace_oid(psprintf("kappa_v%d", id), true);
	Oid			state = OidIsValid(nsp) ? get_relname_relid("g", nsp) : InvalidOid;

	if (pg_class_ownercheck(derived, GetUserId()))
		exec_sql(psprintf("ANALYZE %s", kappa_qualified_name(derived)), SPI_OK_UTILITY);
	if (OidIsValid(state) && pg_class_ownercheck(state, GetUserId()))
		exec_sql(psprintf("ANALYZE %s", kappa_qualified_name(state)), SPI_OK_UTILITY);
}

/*
 * The view is filled with what this transaction sees of its sources, and
 * then gets every transaction committed after its creation LSN from the
 * WAL, this one included: a change this transaction made to a source
 * before creating the view would count twice.  Refuse it.
 */
static void
check_sources_untouched(List *sources)
{
	/* (a TRUNCATE alone is harmless: it makes the worker recompute) */
	Oid			relid = kappa_source_written_in_xact(sources, false);

	if (OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot build a derived view over table %s in the transaction that changed it",
						kappa_qualified_name(relid)),
				 errdetail("The view would take this transaction's changes of the table both from its first contents and from the WAL."),
				 errhint("Commit the changes first, or create the view before making them.")));
}

/*
 * names (a list of C strings) as an SQL text[] expression: each one a
 * literal, whatever quotes or backslashes it holds.
 */
static char *
text_array_sql(List *names)
{
	StringInfoData sql;
	ListCell   *lc;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "ARRAY[");
	foreach(lc, names)
		appendStringInfo(&sql, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 quote_literal_cstr(lfirst(lc)));
	appendStringInfoString(&sql, "]::pg_catalog.text[]");
	return sql.data;
}

/*
 * Building a view keeps the writers of its sources waiting until its
 * transaction ends.  In a transaction block, that is for as long as the
 * caller likes: only a caller that may lock them in SHARE mode
 * (kappa_may_lock_sources) may build one there.  (In a subtransaction, as
 * in a PL/pgSQL block with an EXCEPTION clause, the top transaction may or
 * may not be a block: it is taken to be one.)
 */
static void
check_lock_hold(List *sources, Oid caller)
{
	Oid			which = InvalidOid;

	if (!IsTransactionBlock() || kappa_may_lock_sources(sources, caller, &which))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("a derived view cannot be built in a transaction block by a role that may not lock table %s",
					kappa_qualified_name(which)),
			 errdetail("Building a view keeps the writers of its sources waiting until its transaction ends, which only a role that may lock them in SHARE mode (their owner, or a role with UPDATE, DELETE or TRUNCATE on them) may make them do."),
			 errhint("Run it in a transaction of its own.")));
}

/*
 * Create a derived view of query sql: the caller's own text (callers_text:
 * read with the caller's settings), or a view's canonical text.  Unless
 * replay, it is filled from its sources;
 * with replay, from the event log: the records committed from replay_from
 * (InvalidXLogRecPtr: each source's snapshot) on, up to now, or up to
 * until, in which case the result is a plain table, the view as it was at
 * until, and is not maintained.
 *
 * With adopt, the derived table is not created but is the existing table
 * adopt (owned by owner; name is ignored): its rows are replaced by the
 * query's, and everything else is built afresh around it.  reuse_id, when
 * positive and free, is the view's id instead of the next one.  Both are
 * for kappa.restore.  The id the view got goes to *id_out, if not NULL.
 */
/* kappa.replay, which calls create_view, has warned of empty sources */
static bool replay_warned = false;

static Oid
create_view(const char *name, const char *sql, bool callers_text, const char *path,
			Oid owner, int engine, bool replay, XLogRecPtr replay_from, XLogRecPtr until,
			int64 reuse_id, Oid adopt, int64 *id_out)
{
	const char *text_settings[KAPPA_QUERY_TEXT_SETTINGS];
	Oid			caller = owner;
	KappaOwnerScope scope;
	Oid			extowner;
	Oid			views_relid = kappa_views_relid();
	int			nestlevel;
	RangeVar   *rv;
	Oid			nspid;
	AclResult	aclresult;
	KappaViewDef *def;
	char	   *target;
	char	   *schema;
	char	   *canonical;
	char	   *query_tree;	/* canonical as a parse tree, for view_rename.c */
	bool		has_tree;
	char	   *arr_query;
	KappaAggSql *agg;
	int64		id;
	int			nsources;
	Oid		   *arrangements;
	XLogRecPtr	created_lsn;
	XLogRecPtr *lowers = NULL;
	StringInfoData buf;
	SavedUser	saved;
	Oid			derived;
	bool		aggregate;
	bool		time_travel = replay && until != InvalidXLogRecPtr;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("kappa.create_view cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("The view is filled from a snapshot taken after its sources are locked."),
				 errhint("Run it in a READ COMMITTED transaction.")));
	if (KappaShmem == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_kappa must be loaded via shared_preload_libraries"),
				 errhint("Add pg_kappa to shared_preload_libraries and restart the server.")));

	/*
	 * Everything that creates, fills or compiles the view runs as its owner,
	 * restricted: the caller, or for a replay into a new view the owner of
	 * the view replayed, whoever calls.
	 */
	for (int i = 0; i < KAPPA_QUERY_TEXT_SETTINGS; i++)
		text_settings[i] = pstrdup(GetConfigOption(kappa_query_text_settings[i][0], false, false));
	kappa_owner_enter(owner, &scope);

	/*
	 * The caller's names are resolved with the caller's search_path, and
	 * the caller's own text read with the caller's settings (its dates,
	 * strings); it is printed with those of kappa_owner_enter.
	 */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	for (int i = 0; callers_text && i < KAPPA_QUERY_TEXT_SETTINGS; i++)
		(void) set_config_option(kappa_query_text_settings[i][0], text_settings[i],
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	if (OidIsValid(adopt))
	{
		/* the table is there already, and its owner is the view's owner */
		nspid = get_rel_namespace(adopt);
		rv = makeRangeVar(get_namespace_name(nspid), get_rel_name(adopt), -1);
	}
	else
	{
		rv = makeRangeVarFromNameList(kappa_name_list(name));
		nspid = RangeVarGetCreationNamespace(rv);
		aclresult = pg_namespace_aclcheck(nspid, caller, ACL_CREATE);
		if (aclresult != ACLCHECK_OK)
			aclcheck_error(aclresult, OBJECT_SCHEMA, get_namespace_name(nspid));
		if (nspid == get_namespace_oid("kappa", true) || kappa_internal_schema(nspid))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("derived views cannot be created in schema \"%s\"",
							get_namespace_name(nspid)),
					 errdetail("The schema belongs to extension pg_kappa, which drops what it holds."),
					 errhint("Create the view in a schema of your own.")));
		if (isAnyTempNamespace(nspid))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("derived views cannot be temporary tables"),
					 errdetail("The apply worker maintains a view after the session that created it has ended."),
					 errhint("Create the view in a permanent schema.")));
		if (OidIsValid(get_relname_relid(rv->relname, nspid)))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_TABLE),
					 errmsg("relation \"%s\" already exists", rv->relname)));
	}
	target = quote_qualified_identifier(get_namespace_name(nspid), rv->relname);

	/*
	 * The catalog of an extension not yet updated past 0.2 knows only
	 * engine 1: its views are made by engine 1 until ALTER EXTENSION
	 * pg_kappa UPDATE.
	 */
	if (engine >= 2 && get_attnum(views_relid, "engine") == InvalidAttrNumber)
	{
		ereport(NOTICE,
				(errmsg("creating the view with delta engine 1"),
				 errdetail("Delta engine 2 needs version 0.3 or later of extension pg_kappa."),
				 errhint("Run ALTER EXTENSION pg_kappa UPDATE.")));
		engine = 1;
	}
	def = kappa_compile_view(sql, engine);
	AtEOXact_GUC(true, nestlevel);
	if (OidIsValid(adopt))
		check_adopted_columns(adopt, def);

	aggregate = strcmp(def->kind, "aggregate") == 0 ||
		strcmp(def->kind, "join_aggregate") == 0;
	nsources = list_length(def->sources);
	extowner = kappa_extension_owner();

	/*
	 * Lock kappa.views before looking at the slot: a worker that finds no
	 * view drops the slot while holding a conflicting lock.
	 */
	LockRelationOid(views_relid, RowExclusiveLock);
	kappa_ensure_slot();

	/*
	 * Block writers to the sources (waiting for those in flight), then take
	 * the LSN: every transaction that changed a source either committed
	 * before it, and is in the snapshot the view is filled from, or commits
	 * after this transaction, and reaches the view through the stream.
	 * All sources are locked at once, in OID order, before any of them is
	 * altered below: altering one first would hold it against writers that
	 * hold another source and wait for it (a deadlock with every writer of
	 * two sources).
	 */
	kappa_lock_sources(def->sources);
	check_sources_untouched(def->sources);

	/*
	 * Engine 2 takes whole old rows from the WAL; the view as it was at
	 * until (time travel) is a plain table, which nothing maintains: it
	 * needs neither that, nor internal tables, nor indexes for lookups.
	 */
	check_view_columns(def, owner, !time_travel);
	if (engine >= 2 && !time_travel)
		kappa_ensure_identity_full(def->sources,
								   "Updates and deletes of these tables now write the whole old row to the WAL, which the view needs.");
	/* (after the checks above, whose errors say more of the view) */
	check_lock_hold(def->sources, scope.save_userid);
	if (OidIsValid(adopt))
		LockRelationOid(adopt, AccessExclusiveLock);
	created_lsn = GetXLogInsertRecPtr();
	canonical = kappa_deparse(def, NULL, true);
	query_tree = nodeToString(def->query);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * Filled from the log: everything committed before created_lsn must be
	 * in it, so wait for the worker to get there.
	 */
	if (replay)
	{
		if (until != InvalidXLogRecPtr && until > created_lsn)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("until_lsn %X/%X is in the future", LSN_FORMAT_ARGS(until)),
					 errdetail("The current WAL position is %X/%X.", LSN_FORMAT_ARGS(created_lsn))));
		lowers = palloc(sizeof(XLogRecPtr) * list_length(def->sources));
		if (kappa_replay_bounds(rv->relname, def->sources, replay_from,
								until != InvalidXLogRecPtr ? until : created_lsn, lowers) &&
			!replay_warned)
			ereport(WARNING,
					(errmsg("derived view \"%s\" is filled from empty sources at %X/%X",
							rv->relname, LSN_FORMAT_ARGS(replay_from)),
					 errdetail("A source was captured before that LSN: only the changes committed from then on are in the view, the rows it held before are not, and kappa.verify reports them missing."),
					 errhint("Pass replay_from => '0/0' to start from each source's snapshot.")));
		if (!kappa_wait_processed(created_lsn, 60000))
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("the apply worker did not log the sources' changes up to %X/%X within 60 seconds",
							LSN_FORMAT_ARGS(created_lsn)),
					 errhint("Check kappa.status and the apply worker.")));
	}

	/* as the extension owner: the view's id and its internal schema */
	kappa_become(extowner, &saved);
	if (reuse_id > 0 && !view_id_taken(reuse_id))
		id = reuse_id;
	else
	{
		/* an id whose schema name someone has taken is skipped */
		do
			id = exec_int8("SELECT pg_catalog.nextval('kappa.views_id_seq')");
		while (OidIsValid(get_namespace_oid(psprintf("kappa_v" INT64_FORMAT, id), true)));
	}
	schema = psprintf("kappa_v" INT64_FORMAT, id);
	exec_sql(psprintf("CREATE SCHEMA %s AUTHORIZATION %s", quote_identifier(schema),
					  quote_identifier(GetUserNameFromId(caller, false))),
			 SPI_OK_UTILITY);
	/*
	 * internal: goes with DROP EXTENSION, and is not dumped (inside the
	 * extension's own script, an update converting views, it is a member
	 * already)
	 */
	if (!creating_extension)
		exec_sql(psprintf("ALTER EXTENSION pg_kappa ADD SCHEMA %s", quote_identifier(schema)),
				 SPI_OK_UTILITY);
	kappa_unbecome(&saved);

	if (engine >= 2)
	{
		derived = create_engine2_view(def, id, schema, target, canonical,
									  get_namespace_name(nspid), rv->relname,
									  adopt, &arrangements, !replay);
		if (!time_travel)
			advise_indexes(def);
	}
	else
	{
		/* as the caller: the worker's copies of the sources and scratch tables */
		arrangements = palloc(sizeof(Oid) * nsources);
		for (int i = 0; i < nsources; i++)
		{
			Oid			src = list_nth_oid(def->sources, i);
			List	   *key = list_nth(def->source_keys, i);
			char	   *a = psprintf("%s.a_%d", quote_identifier(schema), i);
			ListCell   *lc;

			/* unlogged when the view is dropped after its fill (time travel) */
			create_mirror(src, a, until != InvalidXLogRecPtr, NULL);
			create_mirror(src, psprintf("%s.d_%d", quote_identifier(schema), i), true,
						  "_kappa_seq bigint, _kappa_new boolean, _kappa_unchanged smallint[]");
			create_mirror(src, psprintf("%s.w_%d", quote_identifier(schema), i), true,
						  NULL);
			exec_sql(psprintf("CREATE UNIQUE INDEX ON %s (%s)", a,
							  kappa_quoted_list(kappa_attnames(src, key), "")), SPI_OK_UTILITY);
			foreach(lc, (List *) list_nth(def->index_columns, i))
			{
				AttrNumber	attnum = lfirst_int(lc);

				if (list_length(key) >= 1 && linitial_int(key) == attnum)
					continue;
				if (!kappa_has_btree_opclass(get_atttype(src, attnum)))
					continue;
				exec_sql(psprintf("CREATE INDEX ON %s (%s)", a,
								  quote_identifier(get_attname(src, attnum, false))),
						 SPI_OK_UTILITY);
			}
			exec_sql(guard_trigger_sql(a), SPI_OK_UTILITY);
			arrangements[i] = RangeVarGetRelid(makeRangeVar(schema, psprintf("a_%d", i), -1),
											   NoLock, false);
		}

		/* the query over the copies */
		arr_query = kappa_deparse(def, kappa_rte_relids(def, arrangements), true);

		/* the derived table and the key scratch table */
		if (OidIsValid(adopt))
		{
			/* its guard trigger is made again, with this view's id */
			derived = adopt;
			exec_sql(psprintf("DROP TRIGGER IF EXISTS kappa_guard ON %s", target), SPI_OK_UTILITY);
		}
		else
		{
			exec_sql(psprintf("CREATE TABLE %s AS SELECT * FROM (%s) q WITH NO DATA",
							  target, canonical), SPI_OK_UTILITY);
			derived = RangeVarGetRelid(makeRangeVar(get_namespace_name(nspid), rv->relname, -1),
									   NoLock, false);
		}
		record_query_dependencies(derived, def->query);
		if (OidIsValid(adopt) && has_key_index(adopt, def))
			;						/* restored with the table */
		else if (def->key_columns == NIL)
			exec_sql(psprintf("CREATE UNIQUE INDEX ON %s ((true))", target), SPI_OK_UTILITY);
		else
			exec_sql(psprintf("CREATE UNIQUE INDEX ON %s (%s)%s", target,
							  kappa_quoted_list(def->key_columns, ""),
							  aggregate ? " NULLS NOT DISTINCT" : ""), SPI_OK_UTILITY);
		exec_sql(derived_guard_trigger_sql(target, id), SPI_OK_UTILITY);
		if (def->key_columns != NIL)
			exec_sql(psprintf("CREATE UNLOGGED TABLE %s.k AS SELECT %s FROM (%s) q WITH NO DATA",
							  quote_identifier(schema), kappa_quoted_list(def->key_columns, ""), canonical),
					 SPI_OK_UTILITY);

		/* the state of a view maintained algebraically (agg_delta.c) */
		agg = kappa_agg_sql(def, quote_identifier(schema), target);
		if (agg)
		{
			ListCell   *lc;

			foreach(lc, agg->create)
				exec_sql(lfirst(lc), SPI_OK_UTILITY);
			exec_sql(guard_trigger_sql(psprintf("%s.g", quote_identifier(schema))),
					 SPI_OK_UTILITY);
		}
	}

	/* internal: goes with DROP EXTENSION, and is not dumped (engine 2's are already) */
	if (engine < 2)
	{
		kappa_become(extowner, &saved);
		if (internal_members_supported())
			add_internal_members(schema);
		kappa_unbecome(&saved);
	}

	if (engine < 2)
	{
		/* fill: the copies from the sources, the view from the copies */
		kappa_guard_bypass = true;
		PG_TRY();
		{
			/* an adopted table's rows, as restored, make way for the query's */
			if (OidIsValid(adopt))
				exec_sql(psprintf("TRUNCATE ONLY %s", target), SPI_OK_UTILITY);
			for (int i = 0; i < nsources && !replay; i++)
			{
				Oid			src = list_nth_oid(def->sources, i);

				exec_sql(psprintf("INSERT INTO %s.a_%d SELECT * FROM %s",
								  quote_identifier(schema), i,
								  quote_qualified_identifier(get_namespace_name(get_rel_namespace(src)),
															 get_rel_name(src))),
						 SPI_OK_INSERT);
				exec_sql(psprintf("ANALYZE %s.a_%d", quote_identifier(schema), i),
						 SPI_OK_UTILITY);
			}
			if (!replay)
				exec_sql(psprintf("INSERT INTO %s SELECT * FROM (%s) q", target, arr_query),
						 SPI_OK_INSERT);
			if (!replay && agg)
				exec_sql(agg->fill_state, SPI_OK_INSERT);
			if (!replay)
				kappa_analyze_view(derived, (int) id);
		}
		PG_FINALLY();
		{
			kappa_guard_bypass = false;
		}
		PG_END_TRY();
	}

	/* as the extension owner: record the view */
	kappa_become(extowner, &saved);
	initStringInfo(&buf);
	/* (a catalog not updated yet to 0.9 has no query_tree) */
	has_tree = get_attnum(views_relid, "query_tree") != InvalidAttrNumber;
	appendStringInfo(&buf,
					 "INSERT INTO kappa.views (id, relid, name, query, canonical, owner, kind,"
					 " sources, arrangements, key_columns, created_lsn, applied_lsn%s%s)"
					 " VALUES (" INT64_FORMAT ", %u, %s, %s, %s, %u, %s, '{",
					 engine >= 2 ? ", engine" : "",
					 has_tree ? ", query_tree, query_tree_catversion" : "",
					 id, derived, quote_literal_cstr(target), quote_literal_cstr(sql),
					 quote_literal_cstr(canonical), caller, quote_literal_cstr(def->kind));
	for (int i = 0; i < nsources; i++)
		appendStringInfo(&buf, "%s%u", i > 0 ? "," : "", list_nth_oid(def->sources, i));
	appendStringInfoString(&buf, "}', '{");
	for (int i = 0; i < nsources; i++)
		appendStringInfo(&buf, "%s%u", i > 0 ? "," : "", arrangements[i]);
	appendStringInfo(&buf, "}', %s, '%X/%X', '%X/%X'%s%s)",
					 text_array_sql(def->key_columns),
					 LSN_FORMAT_ARGS(created_lsn), LSN_FORMAT_ARGS(created_lsn),
					 engine >= 2 ? psprintf(", %d", engine) : "",
					 has_tree ? psprintf(", %s, %d", quote_literal_cstr(query_tree),
										 CATALOG_VERSION_NO) : "");
	kappa_catalog_insert(buf.data);
	kappa_unbecome(&saved);

	if (replay)
		(void) kappa_replay_fill(derived, def->sources, lowers,
								 until != InvalidXLogRecPtr ? until : created_lsn,
								 until == InvalidXLogRecPtr);

	/* the view as it was at until: a plain table, not maintained */
	if (time_travel)
	{
		nestlevel = NewGUCNestLevel();
		(void) set_config_option("client_min_messages", "warning", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		exec_sql(psprintf("DROP TRIGGER kappa_guard ON %s", target), SPI_OK_UTILITY);
		kappa_become(extowner, &saved);
		exec_sql(psprintf("DELETE FROM kappa.views WHERE id = " INT64_FORMAT, id), SPI_OK_DELETE);
		drop_internal_schema(id);
		kappa_unbecome(&saved);
		AtEOXact_GUC(true, nestlevel);
	}

	SPI_finish();
	kappa_owner_leave(&scope);
	if (id_out)
		*id_out = id;

	/* tell the worker its set of sources changed, and make sure it runs */
	CacheInvalidateRelcacheByRelid(views_relid);
	kappa_request_worker(MyDatabaseId);

	return derived;
}

static char *
text_arg(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* kappa.create_view(name, query, search_path, replay_from) */
Datum
kappa_create_view(PG_FUNCTION_ARGS)
{
	char	   *name = text_arg(fcinfo, 0, "name");
	char	   *sql = text_arg(fcinfo, 1, "query");
	char	   *path;
	bool		replay = PG_NARGS() > 3 && !PG_ARGISNULL(3);
	XLogRecPtr	from = replay ? PG_GETARG_LSN(3) : InvalidXLogRecPtr;

	MemoryContext oldcxt = CurrentMemoryContext;
	Oid			result = InvalidOid;

	/* (the caller's search_path is the argument's default, read by SQL) */
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("search_path must not be null"),
				 errhint("Leave the argument out, or pass current_setting('search_path'), to resolve the query's names with your search_path.")));
	path = text_to_cstring(PG_GETARG_TEXT_PP(2));
	kappa_refuse_in_view_code("kappa.create_view", false);
	PG_TRY();
	{
		result = create_view(name, sql, true, path, GetUserId(), kappa_engine,
							 replay, from, InvalidXLogRecPtr, 0, InvalidOid, NULL);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/*
		 * A name a function of the view's query does not find: the function
		 * was written for the caller's search_path, not the view code's.
		 */
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		if (edata->context != NULL &&
			strstr(edata->context, " function ") != NULL &&
			(edata->sqlerrcode == ERRCODE_UNDEFINED_FUNCTION ||
			 edata->sqlerrcode == ERRCODE_UNDEFINED_TABLE ||
			 edata->sqlerrcode == ERRCODE_UNDEFINED_OBJECT))
		{
			FlushErrorState();
			/* PostgreSQL's own hint is about casts, which is not the point */
			edata->hint = pstrdup("View code runs with search_path = pg_catalog, pg_temp: schema-qualify the names in the function, or give it SET search_path.");
			ReThrowError(edata);
		}
		FreeErrorData(edata);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PG_RETURN_OID(result);
}

/*
 * For kappa.replay(view, from_lsn, until_lsn, new_name): the view's query
 * (canonical, fully qualified), replayed into a new table owned by the
 * replayed view's owner, whoever calls.  Not callable from SQL.
 */
Datum
kappa_create_view_replay(PG_FUNCTION_ARGS)
{
	char	   *into = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *canonical = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Oid			result;

	/* kappa.replay has said whether it starts from empty sources */
	replay_warned = true;
	PG_TRY();
	{
		result = create_view(into, canonical, false, "pg_catalog", PG_GETARG_OID(4), kappa_engine,
							 true, PG_GETARG_LSN(2), PG_GETARG_LSN(3), 0, InvalidOid, NULL);
	}
	PG_FINALLY();
	{
		replay_warned = false;
	}
	PG_END_TRY();
	PG_RETURN_OID(result);
}

/*
 * For kappa.restore: make view id (or a new id, if that one is taken) of
 * the existing table relid, as its owner, from the view's canonical query
 * (fully qualified, so read with search_path pg_catalog).  The table's rows
 * are replaced by the query's; the catalog row is a new view's.  Returns
 * the id the view got.  engine is the delta engine the view gets.
 */
int64
kappa_adopt_view(Oid relid, int64 id, const char *canonical, int engine)
{
	int64		got = 0;

	(void) create_view(NULL, canonical, false, "pg_catalog", kappa_view_owner(relid), engine,
					   false, InvalidXLogRecPtr, InvalidXLogRecPtr, id, relid, &got);
	return got;
}

static void
check_owner(Oid relid)
{
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));
}

/*
 * Objects of users' that depend on a derived table (a view over it, a
 * foreign key to it) keep kappa.drop_view from dropping it, as they keep
 * DROP TABLE: say so in terms of the function, which has no CASCADE.
 */
static void
check_no_dependents(Oid relid, const char *qualname)
{
	char	   *first;
	int64		n;

	/* not what goes with the table itself (a CHECK constraint reads its columns) */
	if (SPI_execute(psprintf("SELECT CASE WHEN o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
							 " THEN pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass,"
							 "  (SELECT r.ev_class FROM pg_catalog.pg_rewrite r WHERE r.oid OPERATOR(pg_catalog.=) o.objid), 0)"
							 " ELSE pg_catalog.pg_describe_object(o.classid, o.objid, 0) END,"
							 " pg_catalog.count(*) OVER ()"
							 " FROM (SELECT DISTINCT d.classid, d.objid FROM pg_catalog.pg_depend d"
							 "  WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
							 "  AND d.refobjid OPERATOR(pg_catalog.=) '%u'::pg_catalog.oid"
							 "  AND d.deptype OPERATOR(pg_catalog.=) 'n'"
							 "  AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
							 "  AND d.objid OPERATOR(pg_catalog.=) '%u'::pg_catalog.oid)"
							 "  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend a"
							 "   WHERE a.classid OPERATOR(pg_catalog.=) d.classid"
							 "   AND a.objid OPERATOR(pg_catalog.=) d.objid"
							 "   AND a.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
							 "   AND a.refobjid OPERATOR(pg_catalog.=) '%u'::pg_catalog.oid"
							 "   AND a.deptype OPERATOR(pg_catalog.=) ANY ('{a,i}'::pg_catalog.\"char\"[]))) o"
							 " ORDER BY o.classid, o.objid LIMIT 1", relid, relid, relid),
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the dependencies of relation %u", relid);
	if (SPI_processed == 0)
		return;
	first = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	n = pg_strtoint64(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot drop derived view %s because other objects depend on its table", qualname),
			 n > 1 ?
			 errdetail("%s and " INT64_FORMAT " other objects depend on table %s.", first, n - 1, qualname) :
			 errdetail("%s depends on table %s.", first, qualname),
			 errhint("Drop those objects first, or run DROP TABLE %s CASCADE, which drops the view and them.",
					 qualname)));
}

Datum
kappa_drop_view(PG_FUNCTION_ARGS)
{
	Oid			relid = kappa_oid_arg(fcinfo, 0, "view");
	Oid			extowner = kappa_extension_owner();
	KappaViewRow v;
	int64		id;
	char	   *qualname;
	SavedUser	saved;
	int			nestlevel;

	kappa_refuse_in_view_code("kappa.drop_view", false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_read_view(relid, &v);
	id = v.id;
	check_owner(relid);

	/*
	 * Lock the table first, like DROP TABLE: the worker locks it before it
	 * touches the view's catalog row, so taking them in the same order
	 * cannot deadlock.
	 */
	LockRelationOid(relid, AccessExclusiveLock);
	qualname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										  get_rel_name(relid));
	check_no_dependents(relid, qualname);

	/* no NOTICE about the internal tables that go with the view */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("client_min_messages", "warning", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	kappa_become(extowner, &saved);
	exec_sql(psprintf("DELETE FROM kappa.views WHERE id = " INT64_FORMAT, id),
			 SPI_OK_DELETE);
	drop_internal_schema(id);
	exec_sql(psprintf("DROP TABLE %s", qualname), SPI_OK_UTILITY);
	kappa_unbecome(&saved);
	AtEOXact_GUC(true, nestlevel);
	SPI_finish();

	CacheInvalidateRelcacheByRelid(kappa_views_relid());
	kappa_wake_worker(MyDatabaseId);
	PG_RETURN_VOID();
}

/*
 * The next character of a printed query that counts when two printings
 * are compared, from *p on, or '\0': parentheses and layout outside
 * quotes are skipped (*quote tracks the quote the text is in).
 */
static char
next_significant(const char **p, char *quote)
{
	for (;; (*p)++)
	{
		char		c = **p;

		if (c == '\0')
			return c;
		if (*quote != '\0')
		{
			if (c == *quote)
				*quote = '\0';
			(*p)++;
			return c;
		}
		if (c == '\'' || c == '"')
		{
			*quote = c;
			(*p)++;
			return c;
		}
		if (c != '(' && c != ')' && !isspace((unsigned char) c))
		{
			(*p)++;
			return c;
		}
	}
}

/*
 * Do two printings of a query say the same but for parentheses and
 * layout?  Parsing a printed query again joins nested ANDs and ORs into
 * one (x BETWEEN a AND b AND y is stored as ((x >= a) AND (x <= b)) AND
 * y, and reads back as one AND of three), which changes only those.
 */
static bool
same_but_parentheses(const char *a, const char *b)
{
	char		qa = '\0';
	char		qb = '\0';

	for (;;)
	{
		char		ca = next_significant(&a, &qa);
		char		cb = next_significant(&b, &qb);

		if (ca != cb)
			return false;
		if (ca == '\0')
			return true;
	}
}

/*
 * Are the tables a view's query names now (now) those it was created from
 * (recorded), but for sources that were dropped, whose names may now read
 * a table created again?
 */
static bool
sources_created_again(List *now, List *recorded)
{
	ListCell   *a;
	ListCell   *b;

	if (list_length(now) != list_length(recorded))
		return false;
	forboth(a, now, b, recorded)
	{
		if (lfirst_oid(a) != lfirst_oid(b) &&
			SearchSysCacheExists1(RELOID, ObjectIdGetDatum(lfirst_oid(b))))
			return false;
	}
	return true;
}

/*
 * Before a view is built again from its stored query: does that query
 * still read its sources, and as it did?  The stored text is printed from the
 * analyzed query, with its sources' column types then; a column whose
 * type changed since is read through a cast it did not have (max(b) of a
 * text column that became varchar reads max((b)::text)), and after a
 * second change the view would mean something else than the query it was
 * created from.  Printed again now, the text must be the same, but for
 * parentheses and layout (same_but_parentheses).
 */
static void
check_query_unchanged(Oid relid, const char *canonical, int engine, List *sources)
{
	KappaOwnerScope scope;
	KappaViewDef *def;
	char	   *again;

	kappa_owner_enter(kappa_view_owner(relid), &scope);
	def = kappa_compile_view(canonical, engine);
	again = kappa_deparse(def, NULL, true);
	kappa_owner_leave(&scope);
	/*
	 * A rename not followed: the text may name another table now.  But a
	 * source that was dropped and created again under its name is the way
	 * back that the broken view's hint gives: its name reads the new one.
	 */
	if (!sources_created_again(def->sources, sources))
		kappa_check_sources_unchanged(def, sources, get_rel_name(relid));
	if (!same_but_parentheses(again, canonical))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the query of derived view \"%s\" reads its sources differently now",
						get_rel_name(relid)),
				 errdetail("A column it reads has another type than when the view was created: its query would now be \"%s\".",
						   again + strspn(again, " \n")),
				 errhint("Drop the view with kappa.drop_view and create it again with the query you mean.")));
}

Datum
kappa_alter_view(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Oid			extowner;
	KappaViewRow v;
	int64		id;
	char	   *state;
	bool		rebuild;
	SavedUser	saved;

	kappa_refuse_in_view_code("kappa.alter_view", false);
	relid = kappa_oid_arg(fcinfo, 0, "view");
	extowner = kappa_extension_owner();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_read_view(relid, &v);
	id = v.id;
	state = v.state;
	check_owner(relid);

	/* a call that asks for nothing is a mistake, not a success */
	{
		bool		given = false;

		/* rebuild defaults to false, which asks for nothing either */
		for (int i = 1; i < PG_NARGS(); i++)
			given |= !PG_ARGISNULL(i) && (i != 4 || PG_GETARG_BOOL(i));
		if (!given)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("no change given for derived view \"%s\"", get_rel_name(relid)),
					 errhint("Pass paused, rebuild, engine or audit_every.")));
	}
	rebuild = (PG_NARGS() > 3 && !PG_ARGISNULL(3) && PG_GETARG_INT32(3) != v.engine) ||
		(PG_NARGS() > 4 && !PG_ARGISNULL(4) && PG_GETARG_BOOL(4));

	/*
	 * A view built again needs the database's slot, which the worker drops
	 * once no view is left running (every view broken, say): make it
	 * again before this transaction writes, as create_view does.
	 */
	if (rebuild)
	{
		LockRelationOid(kappa_views_relid(), RowExclusiveLock);
		kappa_ensure_slot();
	}

	/* paused: the rebuild below leaves the view paused or running */
	if (!PG_ARGISNULL(1) && !rebuild)
	{
		bool		paused = PG_GETARG_BOOL(1);

		if (strcmp(state, "running") != 0 && strcmp(state, "paused") != 0 &&
			strcmp(state, "initializing") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot %s derived view \"%s\" because it is %s",
							paused ? "pause" : "resume", get_rel_name(relid), state),
					 errhint("Build it again with kappa.alter_view(view, rebuild => true), or drop it with kappa.drop_view and create it again.")));
		/*
		 * A resumed view is "initializing" until the worker has started
		 * decoding again from the view's applied LSN.
		 *
		 * A running view includes everything its worker has processed
		 * (kappa.wait takes it so), though its applied LSN stays at the
		 * last batch that changed its sources: paused, it is given that
		 * position, so that it holds back only the WAL written after it,
		 * not all since its sources last changed.  The worker publishes its
		 * position after it commits, so it is read before the state that
		 * the UPDATE reads.  The view is then as current as the worker:
		 * now if the worker has caught up with the WAL, else as of its last
		 * batch.  kappa.status measures a paused view's lag from that time,
		 * kept in last_commit_time (NULL: unknown, the time stays).
		 */
		kappa_become(extowner, &saved);
		if (paused)
		{
			TimestampTz last_batch;
			XLogRecPtr	processed = kappa_view_processed_lsn(MyDatabaseId, id, &last_batch);
			Datum		args[3];
			char		nulls[3] = {' ', ' ', ' '};

			args[0] = LSNGetDatum(processed);
			if (processed >= GetFlushRecPtr(NULL))
				args[1] = TimestampTzGetDatum(GetCurrentTimestamp());
			else if (last_batch != 0)
				args[1] = TimestampTzGetDatum(last_batch);
			else
				nulls[1] = 'n';
			args[2] = Int64GetDatum(id);
			if (SPI_execute_with_args("UPDATE kappa.views SET state = 'paused',"
									  " applied_lsn = CASE WHEN state OPERATOR(pg_catalog.=) 'running'"
									  " THEN GREATEST(applied_lsn, $1) ELSE applied_lsn END,"
									  " last_commit_time = CASE WHEN state OPERATOR(pg_catalog.=) 'running'"
									  " THEN GREATEST(last_commit_time, $2) ELSE last_commit_time END"
									  " WHERE id OPERATOR(pg_catalog.=) $3",
									  3, (Oid[]) {LSNOID, TIMESTAMPTZOID, INT8OID}, args, nulls,
									  false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "could not update kappa.views");
		}
		else if (strcmp(state, "paused") == 0)
			exec_sql(psprintf("UPDATE kappa.views SET state = 'initializing' WHERE id = " INT64_FORMAT,
							  id), SPI_OK_UPDATE);
		kappa_unbecome(&saved);
	}

	/* audits on a schedule; '0' turns them off */
	if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
	{
		Interval   *every = PG_GETARG_INTERVAL_P(2);
		bool		off = every->month == 0 && every->day == 0 && every->time == 0;

		if (every->month < 0 || every->day < 0 || every->time < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("audit_every must not be negative"),
					 errhint("Pass '0' to stop scheduled audits.")));
		if (kappa_interval_too_long(every))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("audit_every must be less than %d years", KAPPA_MAX_INTERVAL_YEARS),
					 errhint("Pass '0' to stop scheduled audits.")));
		kappa_become(extowner, &saved);
		exec_sql(psprintf("UPDATE kappa.views SET audit_every = %s WHERE id = " INT64_FORMAT,
						  off ? "NULL" :
						  quote_literal_cstr(DatumGetCString(DirectFunctionCall1(interval_out,
																				 IntervalPGetDatum(every)))),
						  id), SPI_OK_UPDATE);
		kappa_unbecome(&saved);
	}

	/*
	 * Another delta engine, or rebuild => true (0.5): the view is built
	 * again around its table (its contents computed again, its internal
	 * tables made again for its sources as they are now), as create_view
	 * builds it; whatever its state was, it is running after.
	 */
	if (rebuild)
	{
		int			engine = PG_ARGISNULL(3) ? v.engine : PG_GETARG_INT32(3);
		char	   *canonical = pstrdup(v.canonical);
		char	   *audit_every;
		bool		was_paused = PG_ARGISNULL(1) ? strcmp(state, "paused") == 0 :
			PG_GETARG_BOOL(1);

		if (engine != 1 && engine != 2)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("engine must be 1 or 2")));
		check_query_unchanged(relid, canonical, engine, v.sources);
		LockRelationOid(relid, AccessExclusiveLock);
		kappa_become(extowner, &saved);
		if (SPI_execute(psprintf("DELETE FROM kappa.views WHERE id = " INT64_FORMAT
								 " RETURNING audit_every", id), false, 0) != SPI_OK_DELETE_RETURNING)
			elog(ERROR, "could not delete from kappa.views");
		audit_every = SPI_processed == 1 ?
			SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : NULL;
		drop_internal_schema(id);
		kappa_unbecome(&saved);
		id = kappa_adopt_view(relid, id, canonical, engine);
		if (audit_every)
		{
			kappa_become(extowner, &saved);
			exec_sql(psprintf("UPDATE kappa.views SET audit_every = %s WHERE id = " INT64_FORMAT,
							  quote_literal_cstr(audit_every), id), SPI_OK_UPDATE);
			kappa_unbecome(&saved);
		}
		/* built again from now on: a paused view stays paused from there */
		if (was_paused)
		{
			kappa_become(extowner, &saved);
			exec_sql(psprintf("UPDATE kappa.views SET state = 'paused' WHERE id = " INT64_FORMAT, id),
					 SPI_OK_UPDATE);
			kappa_unbecome(&saved);
		}
	}
	SPI_finish();

	CacheInvalidateRelcacheByRelid(kappa_views_relid());
	kappa_request_worker(MyDatabaseId);
	PG_RETURN_VOID();
}

Datum
kappa_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "kappa.guard: not called by trigger manager");
	if (kappa_guard_bypass || kappa_in_apply_worker)
		return PointerGetDatum(NULL);
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("cannot change derived table \"%s\"",
					RelationGetRelationName(trigdata->tg_relation)),
			 errdetail("Derived tables and their internal copies are written only by pg_kappa's apply worker."),
			 errhint("Change the source tables instead, or drop the view with kappa.drop_view.")));
	PG_RETURN_NULL();
}

/*
 * kappa.derived_columns_problem(view regclass): NULL while the derived
 * table's columns are its query's (columns_problem, the query's parse tree
 * as create_view kept it), else what differs, as a sentence.  The view's statements write its rows by
 * position: kappa.on_ddl_end refuses an ALTER TABLE that leaves them
 * different (adding, dropping, renaming a column or changing its type).
 */
Datum
kappa_derived_columns_problem(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Oid			argtype = OIDOID;
	Datum		arg = ObjectIdGetDatum(relid);
	char	   *canonical = NULL;
	char	   *tree = NULL;
	Query	   *query;
	Relation	rel;
	char	   *problem;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT v.canonical, " KAPPA_VIEW_QUERY_TREE
							  " FROM kappa.views v WHERE v.relid OPERATOR(pg_catalog.=) $1",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext oldcxt = MemoryContextSwitchTo(TopTransactionContext);

		canonical = pstrdup(SPI_getvalue(tup, desc, 1));
		tree = SPI_getvalue(tup, desc, 2);
		if (tree != NULL)
			tree = pstrdup(tree);
		MemoryContextSwitchTo(oldcxt);
	}
	SPI_finish();
	if (canonical == NULL)
		PG_RETURN_NULL();

	if (tree != NULL)
		query = stringToNode(tree);
	else
	{
		KappaOwnerScope scope;
		List	   *raw;

		/*
		 * A view made before 0.9: its canonical text, which names every
		 * relation with its schema, parsed again.  Parse analysis runs
		 * code of the view's (a domain's check on a literal): as its owner,
		 * restricted, as everywhere else, and never as whoever altered the
		 * table (this runs in kappa.on_ddl_end, which is SECURITY DEFINER).
		 */
		kappa_owner_enter(kappa_view_owner(relid), &scope);
		raw = raw_parser(canonical, RAW_PARSE_DEFAULT);
		query = parse_analyze_fixedparams(linitial_node(RawStmt, raw), canonical, NULL, 0, NULL);
		kappa_owner_leave(&scope);
	}
	rel = table_open(relid, AccessShareLock);
	problem = columns_problem(rel, query, NULL);
	table_close(rel, AccessShareLock);
	if (problem == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(problem));
}
