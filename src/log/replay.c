/*-------------------------------------------------------------------------
 *
 * replay.c
 *	  Reading the event log back: kappa.events, kappa.replay and the
 *	  replay half of kappa.create_view(..., replay_from => ...), and
 *	  kappa.swap for blue/green.
 *
 * Replay is by compaction, for views of either delta engine: the rows each
 * source held at the target LSN are reduced from its logged records and
 * loaded in bulk into the view's internal per-source tables (replay_state.c
 * does that), and the view's query runs once over them; the internal state
 * the worker goes on from (engine 1's copies, a state table) is rebuilt with
 * it.  A replay is one transaction: cancelling it or a crash leaves nothing
 * behind, and readers of a view rebuilt in place see its old contents until
 * it commits.
 *
 * Which part of the log a replay may use: a source's log starts with the
 * snapshot kappa.capture took (captures.start_lsn), unless retention has
 * pruned it (captures.pruned_lsn).  Replaying "from the start" uses each
 * source's snapshot; replaying from an LSN uses only the records committed
 * from there on, onto empty sources.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/regproc.h"
#include "utils/varlena.h"

#include "pg_kappa.h"

PG_FUNCTION_INFO_V1(kappa_events);
PG_FUNCTION_INFO_V1(kappa_replay);
PG_FUNCTION_INFO_V1(kappa_swap);

/* ----------
 * Reading the log, one record at a time
 * ----------
 */
typedef struct LogCursor
{
	Portal		portal;
	MemoryContext rowcxt;		/* the current row */
	SPITupleTable *rows;
	uint64		nrows;
	uint64		next;
	/* the current row */
	bool		snapshot;
	XLogRecPtr	row_lsn;
	int			ntables;
	Datum	   *tables;
	char	  **names;			/* quoted qualified names of tables */
	char	   *pos;			/* next line in the row's events */
	char	   *last_schema;	/* the table the last record named */
	char	   *last_table;
	Oid			last_relid;
	/* the transaction being read */
	XLogRecPtr	commit_lsn;
} LogCursor;

typedef struct LogRecord
{
	const char *kind;
	char	   *line;			/* exact text, NUL-terminated */
	int			len;
	Jsonb	   *json;			/* NULL for a change that only jsonb_in reads */
	XLogRecPtr	commit_lsn;		/* of its transaction, or the snapshot's */
	Oid			relid;			/* change and truncate records */
	bool		snapshot;
} LogRecord;

/*
 * Open the log rows that may hold records committed between from and to
 * (InvalidXLogRecPtr: no end) of tables (NIL: all), in order, as the
 * extension owner.
 */
static void
log_open(LogCursor *c, XLogRecPtr from, XLogRecPtr to, List *tables)
{
	StringInfoData sql;
	SavedUser	saved;

	memset(c, 0, sizeof(LogCursor));
	c->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "pg_kappa log row",
									  ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&sql);
	/*
	 * Rows logged before the latest restore name tables by the OIDs of the
	 * database they were logged in: not to be taken for this one's.
	 */
	appendStringInfo(&sql, "SELECT kind, first_lsn, tables, table_names, events,"
					 " batch_id > COALESCE((SELECT max(r.batch_id) FROM kappa.event_log r"
					 " WHERE r.kind = 'restore'), 0)"
					 " FROM kappa.event_log WHERE last_lsn >= '%X/%X'",
					 LSN_FORMAT_ARGS(from));
	if (to != InvalidXLogRecPtr)
		appendStringInfo(&sql, " AND first_lsn <= '%X/%X'", LSN_FORMAT_ARGS(to));
	if (tables != NIL)
	{
		ListCell   *lc;

		appendStringInfoString(&sql, " AND tables && '{");
		foreach(lc, tables)
			appendStringInfo(&sql, "%s%u", lc == list_head(tables) ? "" : ",", lfirst_oid(lc));
		appendStringInfoString(&sql, "}'::oid[]");
	}
	appendStringInfoString(&sql, " ORDER BY batch_id");

	/* the log is readable only by the extension's owner */
	kappa_become(kappa_extension_owner(), &saved);
	c->portal = SPI_cursor_open_with_args(NULL, sql.data, 0, NULL, NULL, NULL, true, 0);
	kappa_unbecome(&saved);
}

/* Close what log_open opened. */
static void
log_close(LogCursor *c)
{
	SPI_cursor_close(c->portal);
	MemoryContextDelete(c->rowcxt);
}

/* A string field of a record, or NULL. */
static char *
field_string(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);

	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* An LSN field of a record, or InvalidXLogRecPtr. */
static XLogRecPtr
field_lsn(JsonbContainer *obj, const char *key)
{
	char	   *s = field_string(obj, key);
	bool		have_error = false;
	XLogRecPtr	lsn;

	if (s == NULL)
		return InvalidXLogRecPtr;
	lsn = pg_lsn_in_internal(s, &have_error);
	return have_error ? InvalidXLogRecPtr : lsn;
}

/* The relation of a record that names schema and table. */
static Oid
record_relid_names(LogCursor *c, const char *schema, const char *table)
{
	char	   *name;
	Oid			relid = InvalidOid;

	if (schema == NULL || table == NULL)
		return InvalidOid;
	/* a row's records are mostly of one table */
	if (c->last_schema != NULL && strcmp(c->last_schema, schema) == 0 &&
		strcmp(c->last_table, table) == 0)
		return c->last_relid;
	name = kappa_log_table_name(schema, table);
	for (int i = 0; i < c->ntables; i++)
	{
		if (strcmp(c->names[i], name) != 0)
			continue;
		if (OidIsValid(relid) && relid != DatumGetObjectId(c->tables[i]))
			kappa_log_name_ambiguous(name);
		relid = DatumGetObjectId(c->tables[i]);
	}
	c->last_schema = MemoryContextStrdup(c->rowcxt, schema);
	c->last_table = MemoryContextStrdup(c->rowcxt, table);
	c->last_relid = relid;
	return relid;
}

/* The relation a change or truncate record names, by the row's names. */
static Oid
record_relid(LogCursor *c, JsonbContainer *obj)
{
	return record_relid_names(c, field_string(obj, "schema"),
							  field_string(obj, "table"));
}

/*
 * The next record of the log into *r, in the current memory context:
 * false at the end.
 */
static bool
log_next(LogCursor *c, LogRecord *r)
{
	char	   *end;

	while (c->pos == NULL || *c->pos == '\0')
	{
		HeapTuple	tup;
		TupleDesc	desc;
		bool		isnull;
		Datum	   *names;
		MemoryContext oldcxt;

		if (c->next >= c->nrows)
		{
			SPI_cursor_fetch(c->portal, true, 16);
			c->rows = SPI_tuptable;
			c->nrows = SPI_processed;
			c->next = 0;
			if (c->nrows == 0)
				return false;
		}
		MemoryContextReset(c->rowcxt);
		c->last_schema = c->last_table = NULL;
		oldcxt = MemoryContextSwitchTo(c->rowcxt);
		tup = c->rows->vals[c->next];
		desc = c->rows->tupdesc;
		c->snapshot = strcmp(TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)), "snapshot") == 0;
		c->row_lsn = DatumGetLSN(SPI_getbinval(tup, desc, 2, &isnull));
		deconstruct_array(DatumGetArrayTypePCopy(SPI_getbinval(tup, desc, 3, &isnull)),
						  OIDOID, sizeof(Oid), true, TYPALIGN_INT, &c->tables, NULL, &c->ntables);
		deconstruct_array(DatumGetArrayTypePCopy(SPI_getbinval(tup, desc, 4, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &names, NULL, &c->ntables);
		c->names = palloc(sizeof(char *) * c->ntables);
		for (int i = 0; i < c->ntables; i++)
			c->names[i] = TextDatumGetCString(names[i]);
		c->pos = TextDatumGetCString(SPI_getbinval(tup, desc, 5, &isnull));
		if (!DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull)))
			c->ntables = 0;		/* another database's OIDs */
		if (c->snapshot)
			c->commit_lsn = c->row_lsn;
		MemoryContextSwitchTo(oldcxt);
		if (c->next == c->nrows - 1)
			SPI_freetuptable(c->rows);
		c->next++;
	}

	end = strchr(c->pos, '\n');
	if (end == NULL)
		end = c->pos + strlen(c->pos);
	r->len = end - c->pos;
	r->line = pnstrdup(c->pos, r->len);
	c->pos = (*end == '\n') ? end + 1 : end;

	r->json = kappa_jsonb_read_line(r->line, r->len);
	if (r->json == NULL)
	{
		char	   *kind;
		char	   *schema;
		char	   *table;

		/*
		 * A line that only jsonb_in may read, or refuse: a captured json
		 * value that jsonb cannot hold ("\u0000", 1e1000000) is the
		 * table's owner's to write.  A change record of that kind is made
		 * jsonb only if it is returned (kappa_events), so that it makes
		 * kappa.events fail only for those who read its table.
		 */
		if (kappa_line_header(r->line, r->len, &kind, &schema, &table) &&
			schema != NULL && table != NULL &&
			(strcmp(kind, "insert") == 0 || strcmp(kind, "update") == 0 ||
			 strcmp(kind, "delete") == 0))
		{
			r->kind = kind;
			r->commit_lsn = c->commit_lsn;
			r->snapshot = c->snapshot;
			r->relid = record_relid_names(c, schema, table);
			return true;
		}
		r->json = kappa_jsonb_from_line(r->line, r->len);
	}
	r->kind = field_string(&r->json->root, "kind");
	if (r->kind == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("event log record has no kind: %s", r->line)));
	if (strcmp(r->kind, "begin") == 0)
		c->commit_lsn = field_lsn(&r->json->root, "lsn");
	r->commit_lsn = c->commit_lsn;
	r->snapshot = c->snapshot;
	r->relid = InvalidOid;
	if (strcmp(r->kind, "truncate") == 0)
	{
		JsonbValue *rels = getKeyJsonValueFromContainer(&r->json->root, "relations", 9, NULL);
		JsonbValue *first;

		if (rels && rels->type == jbvBinary &&
			(first = getIthJsonbValueFromContainer(rels->val.binary.data, 0)) != NULL &&
			first->type == jbvBinary)
			r->relid = record_relid(c, first->val.binary.data);
	}
	else if (strcmp(r->kind, "begin") != 0 && strcmp(r->kind, "commit") != 0)
		r->relid = record_relid(c, &r->json->root);
	return true;
}

/* ----------
 * kappa.events
 * ----------
 */

/* The commit record with the count and checksum of what was returned. */
static char *
recount_commit(const char *line, int64 nchanges, pg_crc32c crc)
{
	const char *tail = NULL;
	const char *p = line;
	StringInfoData buf;

	while ((p = strstr(p, ",\"changes\":")) != NULL)
		tail = p++;
	if (tail == NULL)
		return pstrdup(line);
	FIN_CRC32C(crc);
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, line, tail - line);
	appendStringInfo(&buf, ",\"changes\":" INT64_FORMAT ",\"checksum\":\"%08x\"}", nchanges, crc);
	return buf.data;
}

/*
 * What kappa.events may return of one logged table to the caller: a
 * table's events are the rows it held and every later change of them, so
 * they are returned only to a role that could SELECT all of that from the
 * table now.
 */
typedef enum EventsAccess
{
	EVENTS_ALLOWED,
	EVENTS_DROPPED,				/* no such table now */
	EVENTS_NO_USAGE,			/* no USAGE on the table's schema */
	EVENTS_NO_SELECT,			/* no SELECT on the table, nor on every column */
	EVENTS_DROPPED_COLUMNS,		/* SELECT on every column only, and some
								 * were dropped */
	EVENTS_RLS					/* row-level security applies to the caller */
} EventsAccess;

/* One entry of the per-call cache of events_access results. */
typedef struct EventsAccessEntry
{
	Oid			relid;			/* hash key */
	EventsAccess access;
} EventsAccessEntry;

/*
 * May caller read the events of dropped tables?  Those are returned only
 * to roles that may read kappa.event_log itself (superusers, the extension
 * owner, and roles it was granted to), since no table's privileges or
 * policies can be checked any more.
 */
static bool
events_log_reader(Oid caller)
{
	Oid			nsp = get_namespace_oid("kappa", false);
	Oid			log_relid = get_relname_relid("event_log", nsp);

	if (!OidIsValid(log_relid))
		elog(ERROR, "table kappa.event_log does not exist");
	return pg_class_aclcheck(log_relid, caller, ACL_SELECT) == ACLCHECK_OK;
}

/*
 * Has the table dropped columns?  Its logged events may hold their values,
 * which SELECT on every column it has now does not cover.
 */
static bool
has_dropped_columns(Oid relid)
{
	/* a table's user columns are numbered from 1 on, dropped ones too */
	for (AttrNumber attnum = 1;; attnum++)
	{
		HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid),
										  Int16GetDatum(attnum));
		bool		dropped;

		if (!HeapTupleIsValid(tup))
			return false;
		dropped = ((Form_pg_attribute) GETSTRUCT(tup))->attisdropped;
		ReleaseSysCache(tup);
		if (dropped)
			return true;
	}
}

/*
 * Whether caller may read the logged events of the table relid, judged by
 * the table as it is now (it may have been renamed or moved since it was
 * logged): USAGE on its schema, SELECT on the table or on every one of its
 * columns (when it has dropped none: has_dropped_columns), and no
 * row-level security in force for caller (kappa.events cannot apply
 * policies to logged rows).  A table that no longer exists is
 * readable only by log_reader roles.  Runs no query, so the current user
 * does not matter.
 */
static EventsAccess
events_access(Oid relid, Oid caller, bool log_reader)
{
	HeapTuple	tup;
	Oid			nsp;

	tup = OidIsValid(relid) ? SearchSysCache1(RELOID, ObjectIdGetDatum(relid)) : NULL;
	if (!HeapTupleIsValid(tup))
		return log_reader ? EVENTS_ALLOWED : EVENTS_DROPPED;
	nsp = ((Form_pg_class) GETSTRUCT(tup))->relnamespace;
	ReleaseSysCache(tup);

	if (pg_namespace_aclcheck(nsp, caller, ACL_USAGE) != ACLCHECK_OK)
		return EVENTS_NO_USAGE;
	if (pg_class_aclcheck(relid, caller, ACL_SELECT) != ACLCHECK_OK)
	{
		if (pg_attribute_aclcheck_all(relid, caller, ACL_SELECT, ACLMASK_ALL) != ACLCHECK_OK)
			return EVENTS_NO_SELECT;
		if (has_dropped_columns(relid))
			return EVENTS_DROPPED_COLUMNS;
	}
	/* noError: with row_security off the table is refused all the same */
	if (check_enable_rls(relid, caller, true) == RLS_ENABLED)
		return EVENTS_RLS;
	return EVENTS_ALLOWED;
}

/*
 * Refuse a table the caller named in kappa.events' tables argument, for
 * the reason events_access gave.
 */
static void
events_access_error(Oid relid, EventsAccess access)
{
	char	   *relname = get_rel_name(relid);

	switch (access)
	{
		case EVENTS_ALLOWED:
			break;
		case EVENTS_DROPPED:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table with OID %u", relid),
					 errdetail("No table has this OID now. The events of dropped tables are returned only to roles that may read kappa.event_log.")));
			break;
		case EVENTS_NO_USAGE:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table %s", relname),
					 errdetail("Reading its events requires the USAGE privilege on its schema \"%s\".",
							   get_namespace_name(get_rel_namespace(relid)))));
			break;
		case EVENTS_NO_SELECT:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table %s", relname),
					 errdetail("Reading its events requires the SELECT privilege on the table or on every one of its columns.")));
			break;
		case EVENTS_DROPPED_COLUMNS:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table %s", relname),
					 errdetail("Columns of the table have been dropped, and its events may hold their values: reading them requires the SELECT privilege on the table itself.")));
			break;
		case EVENTS_RLS:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table %s", relname),
					 errdetail("Row-level security is active on the table for the current role, and kappa.events cannot filter its events by policy."),
					 errhint("Query the table itself, where its policies apply, or read its events as a role that bypasses row-level security.")));
			break;
	}
}

/*
 * Whether the caller may read the events of relid, through the per-call
 * cache: each table is checked once per call of kappa.events.
 */
static bool
events_readable(HTAB *cache, Oid relid, Oid caller, bool log_reader)
{
	EventsAccessEntry *entry;
	bool		found;

	entry = hash_search(cache, &relid, HASH_ENTER, &found);
	if (!found)
		entry->access = events_access(relid, caller, log_reader);
	return entry->access == EVENTS_ALLOWED;
}

/* A line for unreadable_record, and what jsonb_in made of it */
typedef struct LineToJsonb
{
	const char *line;
	int			len;
	Jsonb	   *json;
} LineToJsonb;

static void
line_to_jsonb(void *arg)
{
	LineToJsonb *step = arg;

	step->json = kappa_jsonb_from_line(step->line, step->len);
}

/*
 * A change record that kappa_jsonb_read_line could not read, as jsonb
 * (see log_next): what jsonb_in makes of it, or, when jsonb cannot hold a
 * value of it (a json column's "\u0000" or 1e1000000, the table owner's to
 * write), the record's kind, schema and table, why, and the whole line as
 * a string, so that one table's values never make kappa.events fail for
 * everyone who reads the log unfiltered.
 */
static Jsonb *
unreadable_record(const char *line, int len)
{
	LineToJsonb step = {line, len, NULL};
	ErrorData  *edata = kappa_try_in_subxact(line_to_jsonb, &step, CurrentMemoryContext);
	StringInfoData buf;
	char	   *kind = NULL;
	char	   *schema = NULL;
	char	   *table = NULL;

	if (edata == NULL)
		return step.json;
	(void) kappa_line_header(line, len, &kind, &schema, &table);
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"kind\":");
	kappa_json_cstring(&buf, kind ? kind : "");
	appendStringInfoString(&buf, ",\"schema\":");
	kappa_json_cstring(&buf, schema ? schema : "");
	appendStringInfoString(&buf, ",\"table\":");
	kappa_json_cstring(&buf, table ? table : "");
	appendStringInfoString(&buf, ",\"unreadable\":");
	kappa_json_cstring(&buf, edata->message);
	appendStringInfoString(&buf, ",\"line\":");
	kappa_json_cstring(&buf, pnstrdup(line, len));
	appendStringInfoChar(&buf, '}');
	FreeErrorData(edata);
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/*
 * kappa.events(from_lsn, to_lsn, tables): the logged records committed
 * between the two LSNs, in commit order, each as the output plugin wrote
 * it.  Only the events of tables the caller may read now (events_access)
 * are returned: a table named in tables that the caller may not read is an
 * error; with tables NULL, such tables are left out silently, as catalog
 * views leave out what the caller may not see.  Begin and commit records
 * are returned around the changes returned, the commit's count and
 * checksum recomputed when some of its changes were left out.  The log is
 * read as the extension owner.
 */
Datum
kappa_events(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	XLogRecPtr	from = PG_ARGISNULL(0) ? InvalidXLogRecPtr : PG_GETARG_LSN(0);
	XLogRecPtr	to = PG_ARGISNULL(1) ? InvalidXLogRecPtr : PG_GETARG_LSN(1);
	List	   *tables = NIL;
	Oid			caller = GetUserId();
	bool		log_reader;
	HTAB	   *access;
	SavedUser	saved;
	LogCursor	c;
	LogRecord	r;
	LogRecord	begin = {0};
	bool		have_begin = false;
	bool		begun = false;
	bool		filtered = false;
	int64		nchanges = 0;
	pg_crc32c	crc = 0;
	MemoryContext reccxt;

	/* SETOF jsonb: a one-column tuplestore */
	{
		MemoryContext oldcxt;
		TupleDesc	desc;

		if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
			(rsinfo->allowedModes & SFRM_Materialize) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("set-valued function called in context that cannot accept a set")));
		oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
		desc = CreateTemplateTupleDesc(1);
		TupleDescInitEntry(desc, 1, "event", JSONBOID, -1, 0);
		rsinfo->returnMode = SFRM_Materialize;
		rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
		rsinfo->setDesc = desc;
		MemoryContextSwitchTo(oldcxt);
	}
	if (from != InvalidXLogRecPtr && to != InvalidXLogRecPtr && from > to)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_lsn %X/%X is after to_lsn %X/%X",
						LSN_FORMAT_ARGS(from), LSN_FORMAT_ARGS(to)),
				 errhint("Pass to_lsn NULL for no upper bound.")));
	/* nothing is committed at or before 0/0 (NULL is no upper bound) */
	if (!PG_ARGISNULL(1) && to == InvalidXLogRecPtr)
		return (Datum) 0;
	log_reader = events_log_reader(caller);
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(EventsAccessEntry);
		ctl.hcxt = CurrentMemoryContext;
		access = hash_create("pg_kappa events access", 16, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (!PG_ARGISNULL(2))
	{
		ArrayType  *a = PG_GETARG_ARRAYTYPE_P(2);
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		/* every table named must be readable: refuse the call otherwise */
		deconstruct_array(a, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			Oid			relid;
			EventsAccessEntry *entry;
			bool		found;

			if (nulls[i])
				continue;
			relid = DatumGetObjectId(elems[i]);
			entry = hash_search(access, &relid, HASH_ENTER, &found);
			if (found)
				continue;
			entry->access = events_access(relid, caller, log_reader);
			if (entry->access != EVENTS_ALLOWED)
				events_access_error(relid, entry->access);
			tables = lappend_oid(tables, relid);
		}
		if (tables == NIL)
			return (Datum) 0;
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_become(kappa_extension_owner(), &saved);
	reccxt = AllocSetContextCreate(CurrentMemoryContext, "pg_kappa record",
								   ALLOCSET_DEFAULT_SIZES);
	log_open(&c, from, to, NIL);
	for (;;)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(reccxt);
		bool		more = log_next(&c, &r);
		bool		in_range;

		MemoryContextSwitchTo(oldcxt);
		if (!more)
			break;
		CHECK_FOR_INTERRUPTS();
		in_range = r.commit_lsn >= from && (to == InvalidXLogRecPtr || r.commit_lsn <= to);

		if (strcmp(r.kind, "begin") == 0)
		{
			/* written before the first change returned */
			oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
			begin.line = pstrdup(r.line);
			begin.json = DatumGetJsonbPCopy(JsonbPGetDatum(r.json));
			MemoryContextSwitchTo(oldcxt);
			have_begin = true;
			begun = false;
			filtered = false;
			nchanges = 0;
			INIT_CRC32C(crc);
			MemoryContextReset(reccxt);
			continue;
		}
		if (strcmp(r.kind, "commit") == 0)
		{
			if (begun)
			{
				Datum		value = JsonbPGetDatum(r.json);
				bool		isnull = false;

				if (filtered)
				{
					char	   *line = recount_commit(r.line, nchanges, crc);

					value = JsonbPGetDatum(kappa_jsonb_from_line(line, strlen(line)));
				}
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
			}
			have_begin = begun = false;
			MemoryContextReset(reccxt);
			continue;
		}

		/* a change or truncate record */
		if (!in_range ||
			(tables != NIL && !list_member_oid(tables, r.relid)))
		{
			filtered = true;
			MemoryContextReset(reccxt);
			continue;
		}
		if (tables == NIL && !events_readable(access, r.relid, caller, log_reader))
		{
			/* not the caller's to read */
			filtered = true;
			MemoryContextReset(reccxt);
			continue;
		}
		if (have_begin && !begun && !r.snapshot)
		{
			Datum		value = JsonbPGetDatum(begin.json);
			bool		isnull = false;

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
			begun = true;
		}
		{
			Datum		value;
			bool		isnull = false;

			if (r.json == NULL)
			{
				/* read by jsonb_in only when returned: see log_next */
				oldcxt = MemoryContextSwitchTo(reccxt);
				r.json = unreadable_record(r.line, r.len);
				MemoryContextSwitchTo(oldcxt);
			}
			value = JsonbPGetDatum(r.json);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
		}
		nchanges++;
		COMP_CRC32C(crc, r.line, r.len);
		COMP_CRC32C(crc, "\n", 1);
		MemoryContextReset(reccxt);
	}
	log_close(&c);
	kappa_unbecome(&saved);
	SPI_finish();
	return (Datum) 0;
}

/* ----------
 * Replay by compaction
 * ----------
 */

/*
 * Where each source's log may be read from, for a replay of view (its
 * name, for messages) from from (InvalidXLogRecPtr: from the start) up to
 * upper.  Errors, naming the first available LSN, when the log does not
 * cover that.  Returns whether from is after a source's snapshot (the
 * replay then starts from an empty source).  SPI connected.
 */
bool
kappa_replay_bounds(const char *view, List *sources, XLogRecPtr from,
					XLogRecPtr upper, XLogRecPtr *lowers)
{
	bool		after_snapshot = false;

	if (from != InvalidXLogRecPtr && from > upper)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_lsn %X/%X is after %X/%X, up to which derived view \"%s\" would be rebuilt",
						LSN_FORMAT_ARGS(from), LSN_FORMAT_ARGS(upper), view),
				 errdetail("The view would be rebuilt from nothing.")));
	for (int i = 0; i < list_length(sources); i++)
	{
		Oid			src = list_nth_oid(sources, i);
		XLogRecPtr	start;
		XLogRecPtr	pruned = InvalidXLogRecPtr;
		XLogRecPtr	first;
		Datum		failed;
		bool		isnull;
		char	   *srcname = get_rel_name(src);

		/* failed_lsn is 0.3's: read it so that 0.2's catalog still works */
		if (SPI_execute(psprintf("SELECT start_lsn, pruned_lsn,"
								 " (pg_catalog.to_jsonb(c) OPERATOR(pg_catalog.->>) 'failed_lsn')::pg_catalog.pg_lsn"
								 " FROM kappa.captures c WHERE relid OPERATOR(pg_catalog.=) %u", src),
						false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read kappa.captures");
		if (SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("source table \"%s\" of derived view \"%s\" is not captured", srcname, view),
					 errdetail("Replay rebuilds views from the event log, which holds only captured tables."),
					 errhint("Capture it with kappa.capture('%s'); its log starts then.", srcname)));
		failed = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
		if (!isnull && upper >= DatumGetLSN(failed))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the event log of table \"%s\" is incomplete from %X/%X",
							srcname, LSN_FORMAT_ARGS(DatumGetLSN(failed))),
					 errdetail("Its capture failed there: nothing of it committed from then on was logged."),
					 errhint("Replay with until_lsn before %X/%X, or capture the table again after kappa.uncapture.",
							 LSN_FORMAT_ARGS(DatumGetLSN(failed)))));
		start = DatumGetLSN(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		pruned = DatumGetLSN(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (isnull || pruned < start)
			pruned = InvalidXLogRecPtr;
		first = pruned != InvalidXLogRecPtr ? pruned + 1 : start;

		if (from == InvalidXLogRecPtr && pruned != InvalidXLogRecPtr)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the event log of table \"%s\" no longer starts at its snapshot", srcname),
					 errdetail("Retention pruned its log up to %X/%X; the first available LSN is %X/%X.",
							   LSN_FORMAT_ARGS(pruned), LSN_FORMAT_ARGS(first)),
					 errhint("Replay from_lsn => '%X/%X' or later to use only what is left, or capture the table again.",
							 LSN_FORMAT_ARGS(first))));
		if (from != InvalidXLogRecPtr && from < first)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the event log does not cover table \"%s\" from %X/%X",
							srcname, LSN_FORMAT_ARGS(from)),
					 errdetail("The first available LSN of its log is %X/%X.", LSN_FORMAT_ARGS(first))));
		if (upper < first)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the event log does not cover table \"%s\" at %X/%X",
							srcname, LSN_FORMAT_ARGS(upper)),
					 errdetail("The first available LSN of its log is %X/%X.", LSN_FORMAT_ARGS(first))));
		lowers[i] = from != InvalidXLogRecPtr ? from : start;
		after_snapshot |= from != InvalidXLogRecPtr && from > start;
	}
	return after_snapshot;
}

/*
 * Run one statement of a replay through SPI; error on failure.
 */
static void
replay_exec(const char *sql, int expected)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc != expected)
		elog(ERROR, "pg_kappa replay statement failed (%s): %s",
			 SPI_result_code_string(rc), sql);
}

/* The name of source i's rows in a replay (an ephemeral named relation). */
static char *
replay_enr_name(int i)
{
	return psprintf("kappa_replay_source_%d", i);
}

/*
 * Tuplestores for the rows of each source at the replay's LSN (their
 * descriptors come from kappa_replay_load: the source's columns at their
 * positions, then hidden ones), and per source the name the view's query
 * reads them by (kappa_deparse_query_enr).
 */
static void
replay_enr_begin(List *sources, Tuplestorestate ***stores,
				 TupleDesc **descs, const char ***names)
{
	int			n = list_length(sources);

	*stores = palloc(sizeof(Tuplestorestate *) * n);
	*descs = palloc0(sizeof(TupleDesc) * n);	/* kappa_replay_load's */
	for (int i = 0; i < n; i++)
	{
		/* spills to disk past maintenance_work_mem, as the compaction does */
		(*stores)[i] = tuplestore_begin_heap(false, false, maintenance_work_mem);
	}
	*names = palloc0(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
		(*names)[i] = replay_enr_name(i);
}

/* Make the loaded tuplestores readable by the SQL the replay runs next. */
static void
replay_enr_register(List *sources, Tuplestorestate **stores, TupleDesc *descs)
{
	for (int i = 0; i < list_length(sources); i++)
	{
		EphemeralNamedRelation enr = palloc0(sizeof(EphemeralNamedRelationData));

		enr->md.name = replay_enr_name(i);
		enr->md.reliddesc = InvalidOid;
		enr->md.tupdesc = descs[i];
		enr->md.enrtype = ENR_NAMED_TUPLESTORE;
		enr->md.enrtuples = tuplestore_tuple_count(stores[i]);
		enr->reldata = stores[i];
		if (SPI_register_relation(enr) != SPI_OK_REL_REGISTER)
			elog(ERROR, "could not register the rows of a source for the replay");
	}
}

static void
replay_enr_end(List *sources, Tuplestorestate **stores)
{
	for (int i = 0; i < list_length(sources); i++)
	{
		if (SPI_unregister_relation(replay_enr_name(i)) != SPI_OK_REL_UNREGISTER)
			elog(ERROR, "could not unregister the rows of a source of the replay");
		tuplestore_end(stores[i]);
	}
}

/*
 * Per source of def, the columns its query reads (NULL: all of them): a
 * value the log does not hold of another column (an unchanged TOASTed one
 * of an update that moved its row to another key) may be left NULL, as
 * engine 2's query never reads it.
 */
static bool **
replay_columns_read(KappaViewDef *def, List *sources)
{
	bool	  **reads = palloc0(sizeof(bool *) * list_length(sources));

	for (int i = 0; i < list_length(sources); i++)
	{
		Relation	rel = table_open(list_nth_oid(sources, i), AccessShareLock);

		reads[i] = kappa_columns_read(def, i, RelationGetDescr(rel)->natts);
		table_close(rel, AccessShareLock);
	}
	return reads;
}

/*
 * Fill derived view relid with its contents as of upper, by compaction:
 * the rows each of its sources (list of OIDs, the view's, with lowers[i]
 * where source i's log is read from) held at upper are loaded into engine
 * 1's copies a_<n>, or, for engine 2, into tuplestores read as ephemeral
 * named relations (replay_state.c), and the view's query runs once over
 * them (for a view maintained algebraically, the
 * state table g is filled from them and the view's rows come from g, as
 * the worker writes them).  The derived table must be empty; the internal
 * tables are emptied here, except engine 1's copies, which a replay that
 * keeps the state changes into the rows at upper by a merge (only the rows
 * that differ).  For engine 1 the copies stay, as the
 * worker's copies of the sources at upper, and the state table g of a view
 * maintained algebraically is filled from them; for engine 2, g is filled
 * from the same projection as over the live sources (its d_<n> are not
 * used).  Unless keep_state: the view is dropped after (time travel), so
 * engine 1's copies lose their indexes instead and g stays empty.
 * Everything the view's code runs, runs as its owner.  SPI connected; the
 * caller commits.  Returns the number of logged records read.
 */
int64
kappa_replay_fill(Oid relid, List *sources, XLogRecPtr *lowers, XLogRecPtr upper,
				  bool keep_state)
{
	KappaViewRow v;
	KappaViewDef *def;
	KappaOwnerScope scope;
	char	   *label;
	char	   *target;
	char	   *schema;
	Oid		   *scratch;
	int			nsrc;
	int64		changes = 0;
	int64		rows = 0;
	StringInfoData list;
	Oid			state;
	bool		merge;
	bool	   *changed;
	bool		enr;
	Tuplestorestate **stores = NULL;
	TupleDesc  *storedescs = NULL;
	const char **enrnames = NULL;
	bool	  **reads = NULL;

	kappa_read_view(relid, &v);
	label = kappa_qualified_name(relid);
	target = label;
	schema = psprintf("kappa_v%d", v.id);
	nsrc = list_length(v.sources);
	if (!equal(sources, v.sources) || list_length(v.arrangements) != nsrc)
		elog(ERROR, "sources of derived view \"%s\" do not match its catalog row", label);
	scratch = palloc(sizeof(Oid) * nsrc);
	changed = palloc(sizeof(bool) * nsrc);
	initStringInfo(&list);
	for (int i = 0; i < nsrc; i++)
	{
		scratch[i] = list_nth_oid(v.arrangements, i);
		appendStringInfo(&list, "%s%s", i > 0 ? ", " : "", kappa_qualified_name(scratch[i]));
	}
	state = get_relname_relid("g", get_namespace_oid(schema, false));

	/* the log as committed now: up to upper, which may be past this statement */
	kappa_replay_progress_begin();
	PushActiveSnapshot(GetTransactionSnapshot());
	kappa_owner_enter(v.owner, &scope);
	def = kappa_compile_view(v.canonical, v.engine);
	kappa_check_sources_unchanged(def, v.sources, get_rel_name(relid));
	enr = v.engine >= 2;
	kappa_guard_bypass = true;
	PG_TRY();
	{
		char	   *query;
		KappaAggSql *agg = NULL;

		/*
		 * Engine 1's copies stay as the worker's copies of the sources:
		 * changed into the state by a merge (replay_state.c), which keeps
		 * their rows and indexes where they are right.  Else nobody else
		 * reads them: a new file each, no dead rows.
		 */
		merge = keep_state && v.engine < 2;
		if (!merge && !enr)
			replay_exec(psprintf("TRUNCATE %s", list.data), SPI_OK_UTILITY);
		if (OidIsValid(state))
			replay_exec(psprintf("TRUNCATE %s", kappa_qualified_name(state)), SPI_OK_UTILITY);
		if (!keep_state && !enr)
		{
			/* thrown away after: not worth indexing */
			for (int i = 0; i < nsrc; i++)
			{
				Relation	rel = table_open(scratch[i], AccessShareLock);
				List	   *indexes = RelationGetIndexList(rel);
				ListCell   *lc;

				table_close(rel, AccessShareLock);
				foreach(lc, indexes)
					replay_exec(psprintf("DROP INDEX %s", kappa_qualified_name(lfirst_oid(lc))),
								SPI_OK_UTILITY);
			}
		}

		/*
		 * The sources at upper: into engine 1's copies, or, for engine 2,
		 * into tuplestores its query reads as ephemeral named relations
		 * (as AFTER triggers read their transition tables): read once,
		 * they are not worth a table.
		 */
		if (enr)
		{
			replay_enr_begin(v.sources, &stores, &storedescs, &enrnames);
			reads = replay_columns_read(def, v.sources);
		}
		changes = kappa_replay_load(label, v.sources, scratch, stores, storedescs,
									lowers, upper, merge, reads, changed, &rows);
		if (enr)
			replay_enr_register(v.sources, stores, storedescs);
		CommandCounterIncrement();

		/*
		 * Statistics for the query, and for the worker's plans over engine
		 * 1's copies.  Not of engine 2's d_<n>, which hold a batch's deltas
		 * again after this: statistics of the whole table would mislead the
		 * worker's plans.
		 */
		if (keep_state && v.engine < 2)
		{
			kappa_replay_progress(label, "analyzing the state of the sources");
			for (int i = 0; i < nsrc; i++)
			{
				if (changed[i] && pg_class_ownercheck(scratch[i], GetUserId()))
					replay_exec(psprintf("ANALYZE %s", kappa_qualified_name(scratch[i])), SPI_OK_UTILITY);
			}
		}

		/* the state of a view maintained algebraically (agg_delta.c) */
		if (OidIsValid(state) && keep_state)
		{
			const char *qschema = quote_identifier(schema);

			if (v.engine >= 2)
			{
				Query	   *proj = kappa_agg_projection(def);

				if (proj)
					agg = kappa_agg_sql_weighted(def, qschema, target,
												 kappa_deparse_query_enr(copyObject(proj), v.sources, enrnames));
			}
			else
				agg = kappa_agg_sql(def, qschema, target);
			if (agg)
			{
				kappa_replay_progress(label, "filling the state of the view");
				replay_exec(agg->fill_state, SPI_OK_INSERT);
			}
		}

		/*
		 * The view: from that state, as the worker writes the groups it
		 * changes (one row per group, without reading the sources again),
		 * else by its query, once, over them.
		 */
		if (agg && agg->fill_view)
		{
			kappa_replay_progress(label, "computing the view from its state");
			replay_exec(agg->fill_view, SPI_OK_INSERT);
		}
		else
		{
			kappa_replay_progress(label, "computing the view over " INT64_FORMAT " rows", rows);
			if (enr)
				query = kappa_deparse_query_enr(copyObject(def->query), v.sources, enrnames);
			else
				query = kappa_deparse(def, kappa_rte_relids(def, scratch), true);
			replay_exec(psprintf("INSERT INTO %s SELECT * FROM (%s) q", target, query), SPI_OK_INSERT);
		}
		if (enr)
			replay_enr_end(v.sources, stores);

		/* statistics for the worker's statements over a view it goes on with */
		if (keep_state)
			kappa_analyze_view(relid, v.id);
	}
	PG_FINALLY();
	{
		kappa_guard_bypass = false;
	}
	PG_END_TRY();
	kappa_owner_leave(&scope);
	PopActiveSnapshot();

	kappa_replay_progress(label, "done");
	if (debug_query_string)
		pgstat_report_activity(STATE_RUNNING, debug_query_string);
	return changes;
}

/* "schema"."table" of relid. */
static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* A replay whose from_lsn is after a source's snapshot (kappa_replay_bounds). */
static void
warn_after_snapshot(const char *view, XLogRecPtr from)
{
	ereport(WARNING,
			(errmsg("replay of derived view \"%s\" starts from empty sources at %X/%X",
					view, LSN_FORMAT_ARGS(from)),
			 errdetail("A source was captured before that LSN: only the changes committed from then on are replayed, the rows it held before are not in the result, and kappa.verify reports them missing."),
			 errhint("Replay without from_lsn to start from each source's snapshot.")));
}

/*
 * kappa.replay(view, from_lsn, until_lsn, new_name): with new_name, a new
 * view (or with until_lsn, a plain table) filled from the log by
 * create_view; else the view rebuilt in place, as of where its worker has
 * got to (kappa_replay_fill).
 */
Datum
kappa_replay(PG_FUNCTION_ARGS)
{
	Oid			relid;
	XLogRecPtr	from = PG_ARGISNULL(1) ? InvalidXLogRecPtr : PG_GETARG_LSN(1);
	KappaViewRow v;
	XLogRecPtr *lowers;
	int64		changes;
	char	   *name;
	XLogRecPtr	upper;
	KappaOwnerScope scope;

	kappa_refuse_in_view_code("kappa.replay", false);
	relid = kappa_oid_arg(fcinfo, 0, "view");
	/* 0/0 stands for "not given" inside: refuse it as an LSN */
	if (!PG_ARGISNULL(2) && PG_GETARG_LSN(2) == InvalidXLogRecPtr)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("until_lsn 0/0 is before every event log"),
				 errhint("Pass an LSN the log covers, or NULL for the view as it is now.")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("kappa.replay cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("It reads the event log up to a point it chooses after locking.")));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_read_view(relid, &v);
	name = pstrdup(get_rel_name(relid));

	/* beside the live view: a new view, or the view as it was then */
	if (!PG_ARGISNULL(3))
	{
		Datum		result;
		char	   *canonical = pstrdup(v.canonical);
		List	   *into = kappa_name_list(text_to_cstring(PG_GETARG_TEXT_PP(3)));
		char	   *qualified;

		/* an unqualified name goes beside the live view */
		if (list_length(into) == 1)
			qualified = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												   strVal(linitial(into)));
		else
			qualified = text_to_cstring(PG_GETARG_TEXT_PP(3));

		/* a source the log does not cover is named with this view */
		lowers = palloc(sizeof(XLogRecPtr) * list_length(v.sources));
		if (kappa_replay_bounds(name, v.sources, from,
								PG_ARGISNULL(2) ? GetXLogInsertRecPtr() : PG_GETARG_LSN(2), lowers))
			warn_after_snapshot(name, from);
		SPI_finish();
		result = DirectFunctionCall5(kappa_create_view_replay,
									 CStringGetTextDatum(qualified),
									 CStringGetTextDatum(canonical),
									 LSNGetDatum(from),
									 PG_ARGISNULL(2) ? LSNGetDatum(InvalidXLogRecPtr) : PG_GETARG_DATUM(2),
									 ObjectIdGetDatum(v.owner));
		PG_RETURN_DATUM(result);
	}

	/* in place */
	if (!PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("until_lsn needs new_name"),
				 errdetail("A live view cannot be moved back in time."),
				 errhint("Pass new_name => 'new_table' to build the view as it was at until_lsn beside the live one.")));
	if (strcmp(v.state, "running") != 0 && strcmp(v.state, "paused") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot replay derived view \"%s\" in place because it is %s", name, v.state),
				 strcmp(v.state, "initializing") == 0 ?
				 errhint("Wait for it with kappa.wait(view) and replay it then.") :
				 errhint("Replay it into a new view with new_name => 'name', or drop it and create it again.")));

	/*
	 * The view may hold changes the event log does not hold yet: while the
	 * log is held (a transaction that ran kappa.capture keeps its lock past
	 * pg_kappa.view_lock_timeout), the worker applies batches to the views
	 * and logs them only once the lock is free.  Rebuilt from the log, the
	 * view would lose them for good, as the worker goes on from its applied
	 * LSN.  Every change of its sources up to where the worker has got is
	 * logged once the log reaches the view's applied LSN (a later change
	 * would have moved that).  Wait for that before taking the view from
	 * the worker (as a replay into a new view waits for the log to reach
	 * its start), then check it again once the view is locked.
	 */
	(void) kappa_wait_processed(v.applied, 60000);

	/*
	 * Keep the worker away from the view (readers are not blocked), then
	 * read how far it is applied: the rebuilt view ends at the same point,
	 * so the worker carries on from there.
	 */
	LockRelationOid(relid, ExclusiveLock);
	kappa_read_view(relid, &v);
	upper = v.applied;

	/*
	 * A running view includes every change its worker has committed, also
	 * past its applied LSN (which moves only when its sources change).
	 */
	if (strcmp(v.state, "running") == 0)
		upper = Max(upper, kappa_view_processed_lsn(MyDatabaseId, v.id, NULL));

	/* (the worker publishes how far it has logged right after it commits) */
	if (!kappa_wait_processed(v.applied, 1000))
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("the event log is behind derived view \"%s\"", name),
				 errdetail("The view includes changes committed up to %X/%X that the apply worker has not logged yet.",
						   LSN_FORMAT_ARGS(v.applied)),
				 errhint("A transaction that ran kappa.capture and is still open, or prepared, holds the log's lock: replay the view once it has ended.")));
	lowers = palloc(sizeof(XLogRecPtr) * list_length(v.sources));
	if (kappa_replay_bounds(name, v.sources, from, upper, lowers))
		warn_after_snapshot(name, from);

	/* the derived table, as its owner (triggers on it are the view's code) */
	kappa_owner_enter(v.owner, &scope);
	kappa_guard_bypass = true;
	PG_TRY();
	{
		/* readers see the old rows until the replay commits */
		if (SPI_execute(psprintf("DELETE FROM %s", qualified_name(relid)), false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not empty \"%s\"", name);
	}
	PG_FINALLY();
	{
		kappa_guard_bypass = false;
	}
	PG_END_TRY();
	kappa_owner_leave(&scope);

	/* as the view's owner again (kappa_replay_fill) */
	changes = kappa_replay_fill(relid, v.sources, lowers, upper, true);

	/*
	 * The view's catalog row is written by this transaction too: the
	 * worker holds a view whose row its batch's snapshot does not see, as
	 * that snapshot does not see the rebuilt rows either (apply_worker.c).
	 */
	{
		SavedUser	saved;

		kappa_become(kappa_extension_owner(), &saved);
		if (SPI_execute(psprintf("UPDATE kappa.views SET applied_lsn = applied_lsn WHERE id = %d", v.id),
						false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update kappa.views");
		kappa_unbecome(&saved);
	}
	SPI_finish();
	ereport(NOTICE,
			(errmsg("derived view \"%s\" rebuilt from " INT64_FORMAT " logged changes up to %X/%X",
					name, changes, LSN_FORMAT_ARGS(upper))));
	PG_RETURN_OID(relid);
}

/* ----------
 * kappa.swap
 * ----------
 */
Datum
kappa_swap(PG_FUNCTION_ARGS)
{
	Oid			a = kappa_oid_arg(fcinfo, 0, "old");
	Oid			b = kappa_oid_arg(fcinfo, 1, "new");
	char	   *aname;
	char	   *bname;
	char	   *nsp;
	char	   *tmp;
	KappaViewRow va,
				vb;
	SavedUser	saved;
	Oid			extowner = kappa_extension_owner();

	kappa_refuse_in_view_code("kappa.swap", false);
	if (a == b)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot swap a derived view with itself")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_read_view(a, &va);
	kappa_read_view(b, &vb);
	if (!pg_class_ownercheck(a, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(a));
	if (!pg_class_ownercheck(b, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(b));
	if (get_rel_namespace(a) != get_rel_namespace(b))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot swap derived views in different schemas"),
				 errhint("Create the new view in the schema of the old one.")));

	/* in OID order, like any two tables locked together */
	LockRelationOid(Min(a, b), AccessExclusiveLock);
	LockRelationOid(Max(a, b), AccessExclusiveLock);
	aname = pstrdup(get_rel_name(a));
	bname = pstrdup(get_rel_name(b));
	nsp = get_namespace_name(get_rel_namespace(a));
	tmp = psprintf("kappa_swap_%u", a);

	if (SPI_execute(psprintf("ALTER TABLE %s RENAME TO %s", quote_qualified_identifier(nsp, aname),
							 quote_identifier(tmp)), false, 0) != SPI_OK_UTILITY ||
		SPI_execute(psprintf("ALTER TABLE %s RENAME TO %s", quote_qualified_identifier(nsp, bname),
							 quote_identifier(aname)), false, 0) != SPI_OK_UTILITY ||
		SPI_execute(psprintf("ALTER TABLE %s RENAME TO %s", quote_qualified_identifier(nsp, tmp),
							 quote_identifier(bname)), false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not rename the derived views");

	kappa_become(extowner, &saved);
	if (SPI_execute(psprintf("UPDATE kappa.views SET name = CASE relid WHEN %u THEN %s ELSE %s END"
							 " WHERE relid IN (%u, %u)", a,
							 quote_literal_cstr(quote_qualified_identifier(nsp, bname)),
							 quote_literal_cstr(quote_qualified_identifier(nsp, aname)), a, b),
					false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update kappa.views");
	kappa_unbecome(&saved);
	SPI_finish();

	/* the worker's statements name the tables: make it build them again */
	CacheInvalidateRelcacheByRelid(kappa_views_relid());
	kappa_wake_worker(MyDatabaseId);
	PG_RETURN_VOID();
}
