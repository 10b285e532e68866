/*-------------------------------------------------------------------------
 *
 * replay_state.c
 *	  Replay by compaction: the rows each source of a derived view held at
 *	  an LSN, reduced from the event log and bulk-loaded into a table.
 *
 * A source's state at LSN X is its snapshot (kappa.capture's insert
 * records) and every logged change committed after it up to X, reduced to
 * the rows it holds at X.  Two reductions, chosen per source:
 *
 *	- by key, for a table with a primary key or a replica identity index:
 *	  an old image may hold only the key (the default replica identity), so
 *	  the last image of each key wins, and a delete or an update that moves
 *	  a row to another key leaves the old key empty.  A new image's
 *	  unchanged TOASTed values (not in the WAL, so not in the log) are the
 *	  old image's when it is whole (REPLICA IDENTITY FULL), else the key's
 *	  previous image;
 *	- by row, for a table without a key (REPLICA IDENTITY FULL): the table
 *	  is a multiset, +1 for every new image and -1 for every old one, which
 *	  is complete; a row's count never goes below zero.
 *
 * A truncate record empties the source's state at that point.
 *
 * The log is read once, in commit order, by a scanner made for the lines
 * the output plugin writes (event_format.c, json_write.c): records of other
 * tables and begin and commit records are passed over without converting
 * anything, and each value of an image goes through its column type's input
 * function, or, for json and jsonb, is read as the JSON text it is.  Every
 * image becomes an entry (the row's columns and its position in the log:
 * the log row's ordinal and the record's in it) in a tuplesort per source,
 * which spills to disk past maintenance_work_mem (shared among the
 * sources): so no table is ever held in memory, whatever the size of the
 * log.  A source's first entries, as long as they come in key order (a
 * snapshot of a table read in key order, as a table filled in key order
 * is), skip the sort: they are kept in a tuplestore, the run (an eighth of
 * the memory, spilling in order), and merged with the sorted rest.
 *
 * A long log is read in two parts at once (read_log_in_parts): the rows of
 * its first half of the records by a reader, a parallel worker
 * (replay_reader.c) that runs this same code but sends each entry, in
 * order, to the replaying backend, and the rest by the backend itself,
 * which takes the reader's entries as they come (receive_log).  Each part
 * has its run; entries are merged by key and position, so the order in
 * which they were taken does not matter.  A truncate record is a position
 * before which the source's entries are passed over by the fold: entries
 * from before it may still arrive from the reader.
 *
 * Sorted by key (in its index's order) and position,
 * or for a table without a key by a hash of the whole row and position,
 * the entries of one key (or one row) come together in log order and are
 * folded into what is left of them.  Keys equal by their type but not in
 * their bytes (numeric 1.0 and 1.00), and rows of one hash, are told apart
 * by comparing the values' bytes (datum_image_eq), which is also how
 * PostgreSQL decides whether an update changed a row's key.
 *
 * The rows left are written to the target table with table_multi_insert
 * (as COPY does, no executor and no per-row SQL), and the target's indexes
 * are built afterwards, in bulk; or, when the caller passes tuplestores
 * (engine 2, whose view query reads them once), the folded entries go into
 * those as they are.  A target that already holds rows of its
 * source (engine 1's copy, in an in-place replay) is merged into instead:
 * read in key order beside the folded rows, only the rows that differ are
 * deleted or inserted, and its indexes are kept (see "Merging" below).
 * The caller (replay.c) empties the other targets first, runs the view's
 * query over the targets, and owns the transaction.
 *
 * Progress: the backend's activity text (pg_stat_activity.query) says
 * "kappa.replay(<view>): compacting N of M records" and then what follows,
 * and a NOTICE every pg_kappa.progress_interval.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/hio.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/relscan.h"
#include "catalog/index.h"
#include "catalog/pg_am_d.h"
#include "executor/executor.h"
#include "catalog/pg_operator_d.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/rel.h"
#include "storage/bufmgr.h"
#include "storage/shm_mq.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/sortsupport.h"
#include "utils/timestamp.h"
#include "utils/tuplesort.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

#include "pg_kappa.h"

/* The columns of a sort entry after the source's own */
#define ENTRY_HASH		1		/* int8: by row, the row's hash (by key, null) */
#define ENTRY_SEQ		2		/* int8: position in the log */
#define ENTRY_OP		3		/* int4: ENTRY_ROW or ENTRY_GONE */
#define ENTRY_UNCHANGED 4		/* bytea: per column, 1 = unchanged TOAST */
#define ENTRY_EXTRA		4

#define ENTRY_ROW		1		/* a row image: +1, or the key's image */
#define ENTRY_GONE		(-1)	/* an old image: -1, or the key left */

/* rows per table_multi_insert, and bytes */
#define LOAD_BATCH_ROWS	1000
#define LOAD_BATCH_BYTES (1024 * 1024)

/* records between updates of the activity text */
#define PROGRESS_EVERY	65536

/* How the values of one column of a source are read from the log */
typedef struct ColumnIn
{
	bool		dropped;
	bool		unread;			/* the view's query does not read it: a
								 * value the log does not hold is NULL */
	bool		raw;			/* json or jsonb: the value's JSON text */
	Oid			direct;			/* text, int2, int4, int8: read without the
								 * input function; else InvalidOid */
	char	   *name;
	char	   *key;			/* the name as the log writes it, escaped */
	int			keylen;
	char	   *qkey;			/* the same, quoted, with the colon */
	int			qkeylen;
	FmgrInfo	input;
	Oid			ioparam;
	Oid			input_as;		/* a type a role made: read as the source's
								 * owner (see input_as_owner); else
								 * InvalidOid */
	int32		typmod;
	int16		typlen;
	bool		typbyval;
	bool		has_missing;	/* added with a default after rows existed: */
	Datum		missing;		/* what rows written before it hold */
} ColumnIn;

/* A run of entries in key order, and whether it may take more */
typedef struct EntryRun
{
	Tuplestorestate *store;
	bool		open;
	Datum	   *last;			/* the key of its last entry */
	int64		entries;
} EntryRun;

/* The parts of the log: the reader's, then this backend's */
#define LOG_PARTS 2

/* One source: how its records are read, and its entries */
typedef struct SourceState
{
	Oid			relid;
	char	   *label;			/* its name, for messages */
	Oid			target;
	XLogRecPtr	lower;			/* records committed from here on count */
	int			natts;
	ColumnIn   *cols;
	Tuplestorestate *store;		/* folded entries go here instead of rows
								 * of a table, or NULL */
	bool		by_key;
	int			nkeys;
	int		   *keys;			/* attribute indexes (0-based) of the key */
	Oid		   *keyops;			/* by key: the key's "<" operators */
	Oid		   *keycolls;
	SortSupport keysort;		/* by key: to compare keys in the fold */
	TupleDesc	sortdesc;		/* the source's columns, then ENTRY_* */
	Tuplesortstate *sort;
	/*
	 * The runs: the source's first entries of each part of the log (all of
	 * it, or the reader's part and this backend's), while they come in key
	 * order (a snapshot of a table read in key order), kept aside in the
	 * order they came instead of sorted; the fold merges them with the
	 * sort.
	 */
	EntryRun	runs[LOG_PARTS];
	bool		run_byval;		/* every key column is passed by value */
	TupleTableSlot *putslot;
	TupleTableSlot *recvslot;	/* an entry the reader sent */
	bool		parallel_safe;	/* its columns can be read in a reader */
	int			workmem;		/* kB */
	int64		entries;
	int64		truncated;		/* entries before this position are gone */
	int64		rows;			/* rows loaded into target */
	bool		merge;			/* change target's rows into the state */
	Oid			mergeindex;		/* target's index in the key's order */
	int64		changed;		/* rows of target deleted or inserted */
	/* the record being read */
	Datum	   *oldv;
	bool	   *oldn;
	bool	   *oldp;			/* present in the old image */
	Datum	   *newv;
	bool	   *newn;
	bool	   *newp;
	bool	   *unch;			/* unchanged TOASTed in the new image */
	bool	   *oldunch;
} SourceState;

/* A schema and table as a record writes them, and which source they are */
typedef struct NameCacheEntry
{
	char	   *schema;			/* escaped, as in the record */
	int			schemalen;
	char	   *table;
	int			tablelen;
	int			source;			/* or -1 */
} NameCacheEntry;

#define NAME_CACHE_SIZE 8

/* Everything a load works with */
typedef struct LoadState
{
	const char *view;			/* for messages */
	int			nsrc;
	SourceState *src;
	XLogRecPtr	upper;
	MemoryContext cxt;
	MemoryContext reccxt;		/* the record being read */
	StringInfoData buf;			/* a value's text */
	/* reading the log */
	shm_mq_handle *mq;			/* in the reader: where entries go */
	Portal		portal;
	SPITupleTable *rows;
	uint64		nrows;
	uint64		next;
	MemoryContext rowcxt;		/* the log row being read */
	bool		snapshot;
	XLogRecPtr	row_lsn;
	int			ntables;
	Datum	   *tables;
	char	  **names;
	XLogRecPtr	commit_lsn;
	NameCacheEntry cache[NAME_CACHE_SIZE];
	int			ncache;
	/* progress */
	int64		records;		/* change and truncate records read */
	int64		total;			/* in the log rows read */
	/* position in the log: row (its ordinal), record in it */
	int64		rowno;
	int64		recno;
	/*
	 * Reading the log in two parts: the rows before the batch split in a
	 * reader (a parallel worker), and from it on, from row first_row, in
	 * this backend.
	 */
	int64		split;			/* batch_id, or 0: the whole log */
	bool		upper_part;		/* reading from split on */
	int64		first_row;
	KappaReplayReader *reader;	/* in the backend: the reader of the rest */
	int64		reader_records; /* records it read so far */
	bool		reader_done;	/* it read every record */
	XLogRecPtr	reader_lsn;
} LoadState;

/* The line being parsed, and where */
typedef struct JsonCursor
{
	const char *p;
	const char *end;
	const char *line;
} JsonCursor;

/*
 * What a reader (a parallel worker reading the log for the replaying
 * backend, replay_reader.c) sends, in the order it reads the log: each
 * entry, followed by its minimal tuple; each truncate of a source; its
 * progress; and, last, that it read every record.  The replaying backend
 * does with them what it does with the entries it reads itself.
 */
typedef struct ReaderMessage
{
	char		kind;			/* READER_* */
	bool		pending;		/* an entry: unchanged TOASTed values to find */
	int16		source;			/* an entry or a truncate: which source */
	int32		op;				/* an entry: ENTRY_ROW or ENTRY_GONE */
	int64		records;		/* progress and done: records read */
	XLogRecPtr	lsn;			/* progress: the commit LSN reached */
	int64		position;		/* a truncate: entries before it are gone */
} ReaderMessage;

#define READER_ENTRY	'e'
#define READER_TRUNCATE 't'
#define READER_PROGRESS 'p'
#define READER_DONE		'd'

/* Send msg, and tuple after it if not NULL, to the replaying backend. */
static void
reader_send(shm_mq_handle *mq, ReaderMessage *msg, MinimalTuple tuple)
{
	shm_mq_iovec iov[2];
	int			n = 1;

	/* the tuple follows the header aligned, as the queue aligns messages */
	StaticAssertStmt(sizeof(ReaderMessage) == MAXALIGN(sizeof(ReaderMessage)),
					 "ReaderMessage must be MAXALIGN'd");
	iov[0].data = (const char *) msg;
	iov[0].len = sizeof(ReaderMessage);
	if (tuple != NULL)
	{
		iov[1].data = (const char *) tuple;
		iov[1].len = tuple->t_len;
		n = 2;
	}
	if (shm_mq_sendv(mq, iov, n, false, msg->kind == READER_DONE) != SHM_MQ_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("the replaying backend stopped reading the event log")));
}

/* Refuse the line being parsed: it is not what the log writes. */
static void
json_corrupt(JsonCursor *c)
{
	int			len = c->end - c->line;

	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("event log record is not valid JSON: %.*s%s",
					Min(len, 200), c->line, len > 200 ? "..." : "")));
}

/* Move the cursor past whitespace. */
static inline void
json_ws(JsonCursor *c)
{
	while (c->p < c->end &&
		   (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
		c->p++;
}

/* Move the cursor past the character ch, which must come next. */
static inline void
json_expect(JsonCursor *c, char ch)
{
	json_ws(c);
	if (c->p >= c->end || *c->p != ch)
		json_corrupt(c);
	c->p++;
}

/*
 * The string at the cursor: its contents as written (escapes and all) in
 * *s and *len; the cursor moves past it.
 */
static void
json_string(JsonCursor *c, const char **s, int *len)
{
	const char *p;
	const char *lim;

	json_ws(c);
	if (c->p >= c->end || *c->p != '"')
		json_corrupt(c);
	p = c->p + 1;

	/* most are short (names, kinds, numbers as text): a plain loop first */
	lim = Min(c->end, p + 16);
	while (p < lim && *p != '"' && *p != '\\')
		p++;
	if (p >= lim || *p != '"')
	{
		if (p < lim)
			p = c->p + 1;		/* an escape: count backslashes from the start */
		for (;;)
		{
			const char *q = memchr(p, '"', c->end - p);
			const char *b;

			if (q == NULL)
				json_corrupt(c);
			/* escaped if an odd number of backslashes comes before it */
			for (b = q; b > p && b[-1] == '\\'; b--)
				;
			if (((q - b) & 1) == 0)
			{
				p = q;
				break;
			}
			p = q + 1;
		}
	}
	*s = c->p + 1;
	*len = p - *s;
	c->p = p + 1;
}

/* Move the cursor past the value at it; returns where the value starts. */
static const char *
json_value(JsonCursor *c)
{
	const char *start;
	const char *s;
	int			len;

	json_ws(c);
	start = c->p;
	if (c->p >= c->end)
		json_corrupt(c);
	switch (*c->p)
	{
		case '"':
			json_string(c, &s, &len);
			break;
		case '{':
		case '[':
			{
				int			depth = 0;

				while (c->p < c->end)
				{
					char		ch = *c->p;

					if (ch == '"')
					{
						json_string(c, &s, &len);
						continue;
					}
					if (ch == '{' || ch == '[')
						depth++;
					else if (ch == '}' || ch == ']')
					{
						if (--depth == 0)
						{
							c->p++;
							return start;
						}
					}
					c->p++;
				}
				json_corrupt(c);
			}
			break;
		default:
			while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ']' &&
				   *c->p != ' ' && *c->p != '\t' && *c->p != '\r' && *c->p != '\n')
				c->p++;
			if (c->p == start)
				json_corrupt(c);
			break;
	}
	return start;
}

/*
 * Step to the next member of the object or array the cursor is in (after
 * its '{' or '['), whose closing character is close: false at its end.
 * *first is true until the first member has been stepped to.
 */
static bool
json_next_member(JsonCursor *c, bool *first, char close)
{
	json_ws(c);
	if (c->p >= c->end)
		json_corrupt(c);
	if (*c->p == close)
	{
		c->p++;
		return false;
	}
	if (!*first)
	{
		if (*c->p != ',')
			json_corrupt(c);
		c->p++;
		json_ws(c);
	}
	*first = false;
	return true;
}

/*
 * The next member of the object the cursor is in (after its '{'): false at
 * its end.  The member's name as written goes to *key and *keylen, and the
 * cursor to its value.
 */
static bool
json_next_key(JsonCursor *c, bool *first, const char **key, int *keylen)
{
	if (!json_next_member(c, first, '}'))
		return false;
	json_string(c, key, keylen);
	json_expect(c, ':');
	json_ws(c);
	return true;
}

/* The next element of the array the cursor is in (after its '['). */
static bool
json_next_elem(JsonCursor *c, bool *first)
{
	return json_next_member(c, first, ']');
}

#define KEY_IS(key, len, lit) ((len) == sizeof(lit) - 1 && memcmp((key), (lit), sizeof(lit) - 1) == 0)

/* The value of one hex digit of a \u escape. */
static int
hex_digit(JsonCursor *c, char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	json_corrupt(c);
	return 0;
}

/* Four hex digits at s (end is where the string ends). */
static pg_wchar
hex4(JsonCursor *c, const char *s, const char *end)
{
	pg_wchar	cp = 0;

	if (end - s < 4)
		json_corrupt(c);
	for (int i = 0; i < 4; i++)
		cp = (cp << 4) | hex_digit(c, s[i]);
	return cp;
}

/*
 * The text a JSON string's contents (s, len, as written) stand for, in the
 * database encoding, into buf.
 */
static void
json_unescape(JsonCursor *c, StringInfo buf, const char *s, int len)
{
	const char *end = s + len;

	resetStringInfo(buf);
	while (s < end)
	{
		const char *bs = memchr(s, '\\', end - s);

		if (bs == NULL)
		{
			appendBinaryStringInfo(buf, s, end - s);
			break;
		}
		appendBinaryStringInfo(buf, s, bs - s);
		s = bs + 1;
		if (s >= end)
			json_corrupt(c);
		switch (*s)
		{
			case '"':
			case '\\':
			case '/':
				appendStringInfoChar(buf, *s);
				s++;
				break;
			case 'b':
				appendStringInfoChar(buf, '\b');
				s++;
				break;
			case 'f':
				appendStringInfoChar(buf, '\f');
				s++;
				break;
			case 'n':
				appendStringInfoChar(buf, '\n');
				s++;
				break;
			case 'r':
				appendStringInfoChar(buf, '\r');
				s++;
				break;
			case 't':
				appendStringInfoChar(buf, '\t');
				s++;
				break;
			case 'u':
				{
					pg_wchar	cp = hex4(c, s + 1, end);

					s += 5;
					if (cp >= 0xD800 && cp <= 0xDBFF)
					{
						pg_wchar	lo;

						if (end - s < 6 || s[0] != '\\' || s[1] != 'u')
							json_corrupt(c);
						lo = hex4(c, s + 2, end);
						if (lo < 0xDC00 || lo > 0xDFFF)
							json_corrupt(c);
						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						s += 6;
					}
					else if (cp >= 0xDC00 && cp <= 0xDFFF)
						json_corrupt(c);
					if (cp == 0)
						ereport(ERROR,
								(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
								 errmsg("unsupported Unicode escape sequence in the event log"),
								 errdetail("\\u0000 cannot be converted to text.")));
					if (cp < 0x80)
						appendStringInfoChar(buf, (char) cp);
					else
					{
						unsigned char mb[MAX_UNICODE_EQUIVALENT_STRING + 1];

						pg_unicode_to_server(cp, mb);
						appendStringInfoString(buf, (char *) mb);
					}
				}
				break;
			default:
				json_corrupt(c);
		}
	}
}

/* ----------
 * Progress
 * ----------
 */

/* When the last step began, and the last NOTICE */
static TimestampTz progress_step = 0;
static TimestampTz progress_notice = 0;

/* A replay begins: its first NOTICE comes pg_kappa.progress_interval on. */
void
kappa_replay_progress_begin(void)
{
	progress_step = progress_notice = GetCurrentTimestamp();
}

/*
 * Say what the replay of view is doing in the backend's activity text,
 * which pg_stat_activity.query shows: "kappa.replay(<view>): <what>"; and
 * in a NOTICE, if pg_kappa.progress_interval has passed since the last.
 * At DEBUG1, also how long the step before took.
 */
void
kappa_replay_progress(const char *view, const char *fmt,...)
{
	StringInfoData buf;
	va_list		args;
	TimestampTz now = GetCurrentTimestamp();

	initStringInfo(&buf);
	appendStringInfo(&buf, "kappa.replay(%s): ", view);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	pgstat_report_activity(STATE_RUNNING, buf.data);
	if (TimestampDifferenceExceeds(progress_notice, now, kappa_progress_interval))
	{
		ereport(NOTICE,
				(errmsg("replay of derived view \"%s\": %s", view,
						buf.data + strlen(view) + strlen("kappa.replay(): "))));
		progress_notice = now;
	}
	elog(DEBUG1, "%s (%.3f s after the step before)", buf.data,
		 (double) (now - progress_step) / USECS_PER_SEC);
	progress_step = now;
	pfree(buf.data);
}

/* The activity text, and a NOTICE every pg_kappa.progress_interval. */
static void
report_compacting(LoadState *ls)
{
	XLogRecPtr	lsn = Max(ls->commit_lsn, ls->reader_lsn);

	if (ls->mq != NULL)
	{
		ReaderMessage msg = {READER_PROGRESS};

		msg.records = ls->records;
		msg.lsn = ls->commit_lsn;
		reader_send(ls->mq, &msg, NULL);
		return;
	}
	kappa_replay_progress(ls->view, "compacting " INT64_FORMAT " of " INT64_FORMAT " records, up to %X/%X of %X/%X",
						  ls->records + ls->reader_records, ls->total,
						  LSN_FORMAT_ARGS(lsn), LSN_FORMAT_ARGS(ls->upper));
}

/* ----------
 * The sources
 * ----------
 */

/*
 * The key by which the state of rel is reduced: its replica identity index,
 * or with REPLICA IDENTITY FULL its primary key; none (reduce by row) for
 * a table that has neither.
 */
static void
source_key(SourceState *s, Relation rel)
{
	Oid			index = RelationGetReplicaIndex(rel);
	Relation	irel;

	if (!OidIsValid(index))
		index = RelationGetPrimaryKeyIndex(rel);
	s->by_key = OidIsValid(index);
	if (!s->by_key)
	{
		if (rel->rd_rel->relreplident != REPLICA_IDENTITY_FULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot replay table \"%s\" without a key or REPLICA IDENTITY FULL",
							s->label),
					 errdetail("Its logged updates and deletes cannot be matched to its rows."),
					 errhint("Add a primary key, or use ALTER TABLE ... REPLICA IDENTITY FULL.")));
		return;
	}
	irel = index_open(index, AccessShareLock);
	s->nkeys = irel->rd_index->indnkeyatts;
	s->keys = palloc(sizeof(int) * s->nkeys);
	s->keyops = palloc(sizeof(Oid) * s->nkeys);
	s->keycolls = palloc(sizeof(Oid) * s->nkeys);
	s->keysort = palloc0(sizeof(SortSupportData) * s->nkeys);
	for (int k = 0; k < s->nkeys; k++)
	{
		Oid			type = irel->rd_opcintype[k];

		s->keys[k] = irel->rd_index->indkey.values[k] - 1;
		/* a primary key or replica identity index is a btree */
		s->keyops[k] = get_opfamily_member(irel->rd_opfamily[k], type, type,
										   BTLessStrategyNumber);
		if (!OidIsValid(s->keyops[k]))
			elog(ERROR, "missing operator %d(%u,%u) in opfamily %u",
				 BTLessStrategyNumber, type, type, irel->rd_opfamily[k]);
		s->keycolls[k] = irel->rd_indcollation[k];
		s->keysort[k].ssup_cxt = CurrentMemoryContext;
		s->keysort[k].ssup_collation = s->keycolls[k];
		s->keysort[k].ssup_nulls_first = false;
		PrepareSortSupportFromOrderingOp(s->keyops[k], &s->keysort[k]);
	}
	index_close(irel, AccessShareLock);
}

/*
 * Start the sort of source s's entries, by key and position in the log, or
 * by the hash of the row and position; and its runs.
 */
static void
begin_sort(SourceState *s)
{
	int			n = s->by_key ? s->nkeys + 1 : 2;
	AttrNumber *attnums = palloc(sizeof(AttrNumber) * n);
	Oid		   *ops = palloc(sizeof(Oid) * n);
	Oid		   *colls = palloc0(sizeof(Oid) * n);
	bool	   *nullsfirst = palloc0(sizeof(bool) * n);

	if (s->by_key)
	{
		for (int k = 0; k < s->nkeys; k++)
		{
			attnums[k] = s->keys[k] + 1;
			ops[k] = s->keyops[k];
			colls[k] = s->keycolls[k];
		}
	}
	else
	{
		attnums[0] = s->natts + ENTRY_HASH;
		ops[0] = Int8LessOperator;
	}
	attnums[n - 1] = s->natts + ENTRY_SEQ;
	ops[n - 1] = Int8LessOperator;

	/*
	 * The runs get an eighth of the memory (they are written and read in
	 * order, so they spill cheaply).
	 */
	for (int r = 0; r < LOG_PARTS; r++)
	{
		EntryRun   *run = &s->runs[r];

		run->open = s->by_key && s->run_byval;
		run->entries = 0;
		run->last = palloc0(sizeof(Datum) * Max(s->nkeys, 1));
		if (run->open)
			run->store = tuplestore_begin_heap(false, false,
											   Max(64, s->workmem / 8 / LOG_PARTS));
	}
	s->sort = tuplesort_begin_heap(s->sortdesc, n, attnums, ops, colls, nullsfirst,
								   s->by_key && s->run_byval ?
								   Max(64, s->workmem - s->workmem / 8) : s->workmem,
								   NULL, TUPLESORT_NONE);
	s->entries = 0;
}

/*
 * Can values of type typid be read in a parallel worker: is its input
 * function, and its elements', parallel safe?  A domain's checks, or a
 * composite's or range's other types, are not looked into: read by the
 * replaying backend itself.
 */
static bool
input_parallel_safe(Oid typid)
{
	HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	Form_pg_type typ;
	bool		safe;
	Oid			elem;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	typ = (Form_pg_type) GETSTRUCT(tup);
	safe = (typ->typtype == TYPTYPE_BASE || typ->typtype == TYPTYPE_ENUM) &&
		func_parallel(typ->typinput) == PROPARALLEL_SAFE;
	elem = typ->typelem;
	ReleaseSysCache(tup);
	return safe && (!OidIsValid(elem) || input_parallel_safe(elem));
}

/* Everything needed to read the records of source relid into entries. */
static void
init_source(LoadState *ls, SourceState *s, Oid relid, Oid target, XLogRecPtr lower,
			const bool *read)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData key;

	s->parallel_safe = true;
	s->relid = relid;
	s->target = target;
	s->lower = lower;
	s->label = kappa_qualified_name(relid);
	s->natts = desc->natts;
	s->cols = palloc0(sizeof(ColumnIn) * s->natts);
	initStringInfo(&key);
	for (int a = 0; a < s->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		ColumnIn   *col = &s->cols[a];
		KappaValueKind kind;
		Oid			func;

		col->dropped = att->attisdropped;
		if (col->dropped)
			continue;
		col->unread = read != NULL && !read[a];
		if (att->atthasmissing)
		{
			bool		isnull;
			Datum		d = getmissingattr(desc, a + 1, &isnull);

			col->has_missing = !isnull;
			if (!isnull)
				col->missing = datumCopy(d, att->attbyval, att->attlen);
		}
		col->name = pstrdup(NameStr(att->attname));
		resetStringInfo(&key);
		kappa_json_cstring(&key, col->name);
		col->key = pnstrdup(key.data + 1, key.len - 2);
		col->keylen = key.len - 2;
		appendStringInfoChar(&key, ':');
		col->qkey = pstrdup(key.data);
		col->qkeylen = key.len;
		kind = kappa_value_kind(getBaseType(att->atttypid));
		col->raw = (kind == KVK_JSON || kind == KVK_JSONB);
		if (att->atttypid == TEXTOID || att->atttypid == INT2OID ||
			att->atttypid == INT4OID || att->atttypid == INT8OID)
			col->direct = att->atttypid;
		getTypeInputInfo(att->atttypid, &func, &col->ioparam);
		fmgr_info(func, &col->input);
		col->input_as = att->atttypid >= FirstNormalObjectId ?
			rel->rd_rel->relowner : InvalidOid;
		s->parallel_safe &= input_parallel_safe(att->atttypid);
		col->typmod = att->atttypmod;
		col->typlen = att->attlen;
		col->typbyval = att->attbyval;
	}
	source_key(s, rel);

	s->sortdesc = CreateTemplateTupleDesc(s->natts + ENTRY_EXTRA);
	for (int a = 0; a < s->natts; a++)
		TupleDescCopyEntry(s->sortdesc, a + 1, desc, a + 1);
	TupleDescInitEntry(s->sortdesc, s->natts + ENTRY_HASH, "_kappa_hash", INT8OID, -1, 0);
	TupleDescInitEntry(s->sortdesc, s->natts + ENTRY_SEQ, "_kappa_seq", INT8OID, -1, 0);
	TupleDescInitEntry(s->sortdesc, s->natts + ENTRY_OP, "_kappa_op", INT4OID, -1, 0);
	TupleDescInitEntry(s->sortdesc, s->natts + ENTRY_UNCHANGED, "_kappa_unchanged", BYTEAOID, -1, 0);
	s->putslot = MakeSingleTupleTableSlot(s->sortdesc, &TTSOpsVirtual);
	s->workmem = Max(1024, maintenance_work_mem / ls->nsrc);
	s->run_byval = s->by_key;
	for (int k = 0; k < s->nkeys; k++)
		s->run_byval &= TupleDescAttr(desc, s->keys[k])->attbyval;
	/* a reader sends its entries: the replaying backend sorts them */
	if (ls->mq == NULL)
	{
		s->recvslot = MakeSingleTupleTableSlot(s->sortdesc, &TTSOpsMinimalTuple);
		begin_sort(s);
	}

	s->oldv = palloc(sizeof(Datum) * s->natts);
	s->oldn = palloc(sizeof(bool) * s->natts);
	s->oldp = palloc(sizeof(bool) * s->natts);
	s->newv = palloc(sizeof(Datum) * s->natts);
	s->newn = palloc(sizeof(bool) * s->natts);
	s->newp = palloc(sizeof(bool) * s->natts);
	s->unch = palloc(sizeof(bool) * s->natts);
	s->oldunch = palloc(sizeof(bool) * s->natts);
	table_close(rel, AccessShareLock);
}

/* ----------
 * Records into entries
 * ----------
 */

/*
 * The column of source s a member of an image names (key, keylen as
 * written), or -1 if the table has no such column now.  *next is the
 * column expected next: the log writes them in attribute order.
 */
static int
find_column(LoadState *ls, JsonCursor *c, SourceState *s, const char *key, int keylen, int *next)
{
	for (int a = *next; a < s->natts; a++)
	{
		if (s->cols[a].dropped)
			continue;
		if (s->cols[a].keylen == keylen && memcmp(s->cols[a].key, key, keylen) == 0)
		{
			*next = a + 1;
			return a;
		}
		break;
	}
	for (int a = 0; a < s->natts; a++)
	{
		if (!s->cols[a].dropped && s->cols[a].keylen == keylen &&
			memcmp(s->cols[a].key, key, keylen) == 0)
			return a;
	}
	/* written with other escapes (a database encoding that is not UTF-8) */
	json_unescape(c, &ls->buf, key, keylen);
	for (int a = 0; a < s->natts; a++)
	{
		if (!s->cols[a].dropped && strcmp(s->cols[a].name, ls->buf.data) == 0)
			return a;
	}
	return -1;
}

/*
 * The integer a JSON number v .. end stands for, when it is written as
 * PostgreSQL prints integers (an optional minus, at most 18 digits): false
 * for anything else, which the type's own parser then reads.
 */
static inline bool
plain_int64(const char *v, const char *end, int64 *out)
{
	bool		neg = (v < end && *v == '-');
	uint64		n = 0;

	if (neg)
		v++;
	if (v >= end || end - v > 18)
		return false;
	for (; v < end; v++)
	{
		if (*v < '0' || *v > '9')
			return false;
		n = n * 10 + (*v - '0');
	}
	*out = neg ? -(int64) n : (int64) n;
	return true;
}

/*
 * The value of a type a role made, read by its input function as the
 * source table's owner, security-restricted, with settings undone after:
 * a domain's CHECK (also inside a composite or an array) is its owner's
 * code, which the table's owner runs at every insert anyway, and which a
 * replay, running as the view's owner, must not run as that owner.
 */
static Datum
input_as_owner(ColumnIn *col, char *str)
{
	Oid			save_userid;
	int			save_sec_context;
	int			nestlevel;
	Datum		result;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(col->input_as, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	nestlevel = NewGUCNestLevel();
	result = InputFunctionCall(&col->input, str, col->ioparam, col->typmod);
	AtEOXact_GUC(false, nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return result;
}

/* The value of column col that the JSON value v .. end stands for. */
static Datum
column_value(LoadState *ls, JsonCursor *c, ColumnIn *col, const char *v,
			 const char *end, bool *isnull)
{
	int			len = end - v;
	int64		n;

	*isnull = false;
	if (len == 4 && memcmp(v, "null", 4) == 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	/* integers in range, without a copy and the input function */
	if (col->direct == INT4OID && plain_int64(v, end, &n) &&
		n >= PG_INT32_MIN && n <= PG_INT32_MAX)
		return Int32GetDatum((int32) n);
	if (col->direct == INT8OID && plain_int64(v, end, &n))
		return Int64GetDatum(n);
	if (col->direct == INT2OID && plain_int64(v, end, &n) &&
		n >= PG_INT16_MIN && n <= PG_INT16_MAX)
		return Int16GetDatum((int16) n);
	if (*v == '"' && !col->raw)
		json_unescape(c, &ls->buf, v + 1, len - 2);
	else
	{
		/* a number, true or false, or JSON for a json or jsonb column */
		resetStringInfo(&ls->buf);
		appendBinaryStringInfo(&ls->buf, v, len);
	}
	switch (col->direct)
	{
		case TEXTOID:
			return PointerGetDatum(cstring_to_text_with_len(ls->buf.data, ls->buf.len));
		case INT2OID:
			return Int16GetDatum(pg_strtoint16(ls->buf.data));
		case INT4OID:
			return Int32GetDatum(pg_strtoint32(ls->buf.data));
		case INT8OID:
			return Int64GetDatum(pg_strtoint64(ls->buf.data));
		default:
			if (OidIsValid(col->input_as))
				return input_as_owner(col, ls->buf.data);
			return InputFunctionCall(&col->input, ls->buf.data, col->ioparam, col->typmod);
	}
}

/* Read the image (an object) at the cursor into values, nulls, present. */
static void
read_image(LoadState *ls, JsonCursor *c, SourceState *s, Datum *values,
		   bool *nulls, bool *present)
{
	bool		first = true;
	const char *key;
	int			keylen;
	int			next = 0;

	for (int a = 0; a < s->natts; a++)
	{
		present[a] = false;
		nulls[a] = true;
		values[a] = (Datum) 0;
	}
	json_expect(c, '{');
	for (;;)
	{
		int			a = -1;
		const char *v;

		json_ws(c);
		if (c->p >= c->end)
			json_corrupt(c);
		if (*c->p == '}')
		{
			c->p++;
			break;
		}
		if (!first)
		{
			if (*c->p != ',')
				json_corrupt(c);
			c->p++;
		}
		first = false;

		/* the log writes the columns in order: the next one, as expected? */
		while (next < s->natts && s->cols[next].dropped)
			next++;
		if (next < s->natts && c->end - c->p >= s->cols[next].qkeylen &&
			memcmp(c->p, s->cols[next].qkey, s->cols[next].qkeylen) == 0)
		{
			a = next++;
			c->p += s->cols[a].qkeylen;
		}
		else
		{
			json_string(c, &key, &keylen);
			json_expect(c, ':');
			a = find_column(ls, c, s, key, keylen, &next);
		}
		v = json_value(c);
		if (a < 0)
			continue;
		values[a] = column_value(ls, c, &s->cols[a], v, c->p, &nulls[a]);
		present[a] = true;
	}
}

/* Read a list of column names (an array) at the cursor into marks. */
static void
read_columns(LoadState *ls, JsonCursor *c, SourceState *s, bool *marks)
{
	bool		first = true;

	json_expect(c, '[');
	while (json_next_elem(c, &first))
	{
		const char *name;
		int			len;
		int			next = 0;
		int			a;

		json_string(c, &name, &len);
		a = find_column(ls, c, s, name, len, &next);
		if (a < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("logged record names column \"%.*s\", which table \"%s\" does not have",
							len, name, s->label)));
		marks[a] = true;
	}
}

/* 64 bits of hash of a value's bytes. */
static uint64
image_hash(Datum value, bool typbyval, int typlen)
{
	if (typbyval)
		return hash_bytes_extended((unsigned char *) &value, sizeof(Datum), 0);
	if (typlen > 0)
		return hash_bytes_extended((unsigned char *) DatumGetPointer(value), typlen, 0);
	if (typlen == -1)
	{
		struct varlena *v = PG_DETOAST_DATUM_PACKED(value);
		uint64		h = hash_bytes_extended((unsigned char *) VARDATA_ANY(v),
											VARSIZE_ANY_EXHDR(v), 0);

		if ((Pointer) v != DatumGetPointer(value))
			pfree(v);
		return h;
	}
	return hash_bytes_extended((unsigned char *) DatumGetPointer(value),
							   strlen(DatumGetPointer(value)), 0);
}

/* The hash of a row (by row, entries are sorted by it). */
static uint64
row_hash(SourceState *s, Datum *values, bool *nulls)
{
	uint64		h = 0;

	for (int a = 0; a < s->natts; a++)
	{
		ColumnIn   *col = &s->cols[a];

		if (col->dropped)
			continue;
		h = hash_combine64(h, nulls[a] ? UINT64CONST(0x5bd1e995) :
						   image_hash(values[a], col->typbyval, col->typlen));
	}
	return h;
}

/* Are the key columns (or all columns) of two images the same values? */
static bool
same_entry(SourceState *s, Datum *v1, bool *n1, Datum *v2, bool *n2)
{
	int			n = s->by_key ? s->nkeys : s->natts;

	for (int i = 0; i < n; i++)
	{
		int			a = s->by_key ? s->keys[i] : i;
		ColumnIn   *col = &s->cols[a];

		if (col->dropped)
			continue;
		if (n1[a] != n2[a])
			return false;
		if (!n1[a] && !datum_image_eq(v1[a], v2[a], col->typbyval, col->typlen))
			return false;
	}
	return true;
}

/*
 * May this entry join the run of source s: an image of a key past the
 * run's last one, nothing to fill from an earlier image?  Keys passed by
 * value only, so that the last one is kept without a copy.
 */
static bool
run_takes(SourceState *s, EntryRun *run, int op, bool pending, Datum *values,
		  bool *nulls)
{
	int			cmp = 0;

	if (op != ENTRY_ROW || pending)
		return false;
	for (int k = 0; k < s->nkeys; k++)
	{
		if (nulls[s->keys[k]])
			return false;
	}
	if (run->entries > 0)
	{
		for (int k = 0; k < s->nkeys && cmp == 0; k++)
			cmp = ApplySortComparator(run->last[k], false, values[s->keys[k]], false,
									  &s->keysort[k]);
		if (cmp >= 0)
			return false;
	}
	for (int k = 0; k < s->nkeys; k++)
		run->last[k] = values[s->keys[k]];
	return true;
}

/*
 * Add the entry in slot (of s->sortdesc), of part part of the log, to the
 * sort of source s, or to the part's run.  pending: the entry has
 * unchanged TOASTed values to find.
 */
static void
take_entry(SourceState *s, TupleTableSlot *slot, int op, bool pending, int part)
{
	EntryRun   *run = &s->runs[part];

	s->entries++;
	if (run->open)
	{
		slot_getallattrs(slot);
		if (run_takes(s, run, op, pending, slot->tts_values, slot->tts_isnull))
		{
			tuplestore_puttupleslot(run->store, slot);
			run->entries++;
			return;
		}
		run->open = false;
	}
	tuplesort_puttupleslot(s->sort, slot);
}

/* An entry for source s: taken, or in a reader sent. */
static void
put_entry(LoadState *ls, SourceState *s, int op, int64 seq, Datum *values, bool *nulls,
		  bool *unchanged)
{
	TupleTableSlot *slot = s->putslot;
	int			n = s->natts;

	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, sizeof(Datum) * n);
	memcpy(slot->tts_isnull, nulls, sizeof(bool) * n);
	for (int a = 0; a < n; a++)
	{
		if (s->cols[a].dropped)
		{
			slot->tts_values[a] = (Datum) 0;
			slot->tts_isnull[a] = true;
		}
	}
	/* by key, no hash: null, which takes no room in the sort */
	slot->tts_values[n + ENTRY_HASH - 1] =
		Int64GetDatum(s->by_key ? 0 : (int64) row_hash(s, values, nulls));
	slot->tts_isnull[n + ENTRY_HASH - 1] = s->by_key;
	slot->tts_values[n + ENTRY_SEQ - 1] = Int64GetDatum(seq);
	slot->tts_isnull[n + ENTRY_SEQ - 1] = false;
	slot->tts_values[n + ENTRY_OP - 1] = Int32GetDatum(op);
	slot->tts_isnull[n + ENTRY_OP - 1] = false;
	slot->tts_isnull[n + ENTRY_UNCHANGED - 1] = true;
	if (unchanged != NULL)
	{
		bytea	   *marks = palloc(VARHDRSZ + n);

		SET_VARSIZE(marks, VARHDRSZ + n);
		for (int a = 0; a < n; a++)
			((char *) VARDATA(marks))[a] = unchanged[a] ? 1 : 0;
		slot->tts_values[n + ENTRY_UNCHANGED - 1] = PointerGetDatum(marks);
		slot->tts_isnull[n + ENTRY_UNCHANGED - 1] = false;
	}
	ExecStoreVirtualTuple(slot);
	if (ls->mq != NULL)
	{
		ReaderMessage msg = {READER_ENTRY};
		MinimalTuple tuple = heap_form_minimal_tuple(s->sortdesc, slot->tts_values,
													 slot->tts_isnull);

		msg.pending = (unchanged != NULL);
		msg.source = s - ls->src;
		msg.op = op;
		reader_send(ls->mq, &msg, tuple);
		pfree(tuple);
		return;
	}
	take_entry(s, slot, op, unchanged != NULL, ls->upper_part ? 1 : 0);
}

/* Does an image have every column of the table (REPLICA IDENTITY FULL)? */
static bool
image_whole(SourceState *s, bool *present)
{
	for (int a = 0; a < s->natts; a++)
	{
		if (!s->cols[a].dropped && !present[a])
			return false;
	}
	return true;
}

/* Does an image have every key column? */
static bool
image_has_key(SourceState *s, bool *present)
{
	for (int k = 0; k < s->nkeys; k++)
	{
		if (!present[s->keys[k]])
			return false;
	}
	return true;
}

/* Refuse a change of s (what: its kind) whose old image does not do. */
static void
old_image_missing(SourceState *s, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("a logged %s of table \"%s\" has no %s old row image",
					what, s->label, s->by_key ? "key in its" : "whole"),
			 errdetail("Replay matches %s.",
					   s->by_key ? "updates and deletes to rows by their key" :
					   "updates and deletes of a table without a key to rows by all their values"),
			 errhint("Use ALTER TABLE %s REPLICA IDENTITY FULL, and capture the table again.",
					 s->label)));
}

/*
 * The entries of one change record of source s, whose images have been
 * read (has_old, has_new): kind is insert, update or delete.
 */
static void
record_entries(LoadState *ls, SourceState *s, const char *kind, bool has_old,
			   bool has_new, bool any_unchanged)
{
	int64		seq = (ls->rowno << 32) + ++ls->recno;
	bool		is_delete = (kind[0] == 'd');
	bool		is_update = (kind[0] == 'u');

	if (!is_delete && !has_new)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a logged %s of table \"%s\" has no new row image", kind, s->label)));
	if (is_delete && !has_old)
		old_image_missing(s, kind);

	if (!s->by_key)
	{
		/* a multiset: the old image goes, the new one comes */
		if (has_old || is_update)
		{
			if (!has_old || !image_whole(s, s->oldp))
				old_image_missing(s, kind);
			put_entry(ls, s, ENTRY_GONE, seq * 2, s->oldv, s->oldn, NULL);
		}
		if (has_new)
		{
			for (int a = 0; a < s->natts; a++)
			{
				if (s->unch[a])
				{
					s->newv[a] = s->oldv[a];
					s->newn[a] = s->oldn[a];
				}
			}
			put_entry(ls, s, ENTRY_ROW, seq * 2 + 1, s->newv, s->newn, NULL);
		}
		return;
	}

	/* by key: the old key empties when the row leaves it */
	{
		bool		moved = false;
		bool		pending = false;

		if (has_old)
		{
			if (!image_has_key(s, s->oldp))
				old_image_missing(s, kind);
			moved = is_delete || !image_has_key(s, s->newp) ||
				!same_entry(s, s->oldv, s->oldn, s->newv, s->newn);
			if (moved)
				put_entry(ls, s, ENTRY_GONE, seq * 2, s->oldv, s->oldn, NULL);
		}
		if (is_delete)
			return;
		if (!image_has_key(s, s->newp))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("a logged %s of table \"%s\" has no key in its new row image", kind, s->label)));

		/* unchanged TOASTed values: the old image's, or the key's last */
		if (any_unchanged)
		{
			for (int a = 0; a < s->natts; a++)
			{
				if (!s->unch[a])
					continue;
				if (has_old && s->oldp[a])
				{
					s->newv[a] = s->oldv[a];
					s->newn[a] = s->oldn[a];
					s->unch[a] = false;
				}
				else
					pending = true;
			}
		}
		put_entry(ls, s, ENTRY_ROW, seq * 2 + 1, s->newv, s->newn, pending ? s->unch : NULL);
	}
}

/*
 * The source a record's schema and table (as written) name, or -1: by the
 * names of the tables of the log row, the names they had when logged.
 */
static int
record_source(LoadState *ls, JsonCursor *c, const char *schema, int schemalen,
			  const char *table, int tablelen)
{
	NameCacheEntry *e;
	char	   *nsp;
	char	   *name;
	int			result = -1;
	bool		found = false;
	Oid			relid = InvalidOid;

	for (int i = 0; i < ls->ncache; i++)
	{
		e = &ls->cache[i];
		if (e->tablelen == tablelen && e->schemalen == schemalen &&
			memcmp(e->table, table, tablelen) == 0 &&
			memcmp(e->schema, schema, schemalen) == 0)
			return e->source;
	}

	json_unescape(c, &ls->buf, schema, schemalen);
	nsp = pstrdup(ls->buf.data);
	json_unescape(c, &ls->buf, table, tablelen);
	name = kappa_log_table_name(nsp, ls->buf.data);
	for (int i = 0; i < ls->ntables; i++)
	{
		if (strcmp(ls->names[i], name) != 0)
			continue;
		if (found && relid != DatumGetObjectId(ls->tables[i]))
			kappa_log_name_ambiguous(name);
		found = true;
		relid = DatumGetObjectId(ls->tables[i]);
		for (int k = 0; k < ls->nsrc; k++)
		{
			if (ls->src[k].relid == relid)
				result = k;
		}
	}

	/* the cache lives as long as the log row */
	e = &ls->cache[ls->ncache < NAME_CACHE_SIZE ? ls->ncache++ : NAME_CACHE_SIZE - 1];
	e->schema = MemoryContextAlloc(ls->rowcxt, schemalen + 1);
	memcpy(e->schema, schema, schemalen);
	e->schemalen = schemalen;
	e->table = MemoryContextAlloc(ls->rowcxt, tablelen + 1);
	memcpy(e->table, table, tablelen);
	e->tablelen = tablelen;
	e->source = result;
	return result;
}

/*
 * A truncate at position: the entries of s before it no longer matter,
 * and the fold passes them over (stream_next).  They may be still to come:
 * the reader's part of the log is taken as it arrives.  With restart, no
 * entry taken so far is after it (a truncate in this backend's own part,
 * which is the later one): the sort and runs are started again, so that
 * they hold no more than the entries after the last truncate.
 */
static void
truncate_source(LoadState *ls, SourceState *s, int64 position, bool restart)
{
	s->truncated = Max(s->truncated, position);
	if (restart)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(ls->cxt);

		tuplesort_end(s->sort);
		for (int r = 0; r < LOG_PARTS; r++)
		{
			if (s->runs[r].store != NULL)
				tuplestore_end(s->runs[r].store);
			s->runs[r].store = NULL;
		}
		begin_sort(s);
		MemoryContextSwitchTo(oldcxt);
	}
}

/* Is a record of source i committed at the current commit LSN wanted? */
static inline bool
in_range(LoadState *ls, int i)
{
	return i >= 0 && ls->commit_lsn >= ls->src[i].lower && ls->commit_lsn <= ls->upper;
}

/* A truncate record: the sources it names are empty from here on. */
static void
read_truncate(LoadState *ls, JsonCursor *c)
{
	bool		first = false;	/* "kind" was read */
	const char *key;
	int			keylen;

	while (json_next_key(c, &first, &key, &keylen))
	{
		bool		firstrel = true;

		if (!KEY_IS(key, keylen, "relations"))
		{
			(void) json_value(c);
			continue;
		}
		json_expect(c, '[');
		while (json_next_elem(c, &firstrel))
		{
			bool		firstkey = true;
			const char *schema = NULL;
			const char *table = NULL;
			int			schemalen = 0;
			int			tablelen = 0;
			int			i;

			json_expect(c, '{');
			while (json_next_key(c, &firstkey, &key, &keylen))
			{
				if (KEY_IS(key, keylen, "schema"))
					json_string(c, &schema, &schemalen);
				else if (KEY_IS(key, keylen, "table"))
					json_string(c, &table, &tablelen);
				else
					(void) json_value(c);
			}
			if (schema == NULL || table == NULL)
				json_corrupt(c);
			i = record_source(ls, c, schema, schemalen, table, tablelen);
			if (in_range(ls, i))
			{
				/* entries are at 2 * seq, 2 * seq + 1 (record_entries) */
				int64		position = ((ls->rowno << 32) + ++ls->recno) * 2;

				if (ls->mq != NULL)
				{
					ReaderMessage msg = {READER_TRUNCATE};

					msg.source = i;
					msg.position = position;
					reader_send(ls->mq, &msg, NULL);
				}
				else
					truncate_source(ls, &ls->src[i], position, true);
			}
		}
	}
}

/* One line of the log: a record. */
static void
read_record(LoadState *ls, const char *line, const char *end)
{
	JsonCursor	c = {line, end, line};
	bool		first = true;
	const char *key;
	int			keylen;
	const char *kind;
	int			kindlen;
	const char *schema = NULL;
	const char *table = NULL;
	int			schemalen = 0;
	int			tablelen = 0;
	int			i = -1;
	bool		resolved = false;
	const char *old = NULL;
	const char *new = NULL;
	const char *oldunch = NULL;
	const char *newunch = NULL;
	SourceState *s = NULL;
	bool		any_unchanged = false;

	/* {"kind":"...", as the log writes it, or any JSON object */
	if (end - line > 9 && memcmp(line, "{\"kind\":\"", 9) == 0 &&
		(kind = memchr(line + 9, '"', end - line - 9)) != NULL)
	{
		kindlen = kind - (line + 9);
		kind = line + 9;
		c.p = kind + kindlen + 1;
		first = false;
	}
	else
	{
		json_expect(&c, '{');
		if (!json_next_key(&c, &first, &key, &keylen) || !KEY_IS(key, keylen, "kind"))
			json_corrupt(&c);
		json_string(&c, &kind, &kindlen);
	}

	if (KEY_IS(kind, kindlen, "commit"))
		return;
	if (KEY_IS(kind, kindlen, "begin"))
	{
		while (json_next_key(&c, &first, &key, &keylen))
		{
			const char *lsn;
			int			lsnlen;
			bool		have_error = false;

			if (!KEY_IS(key, keylen, "lsn"))
			{
				(void) json_value(&c);
				continue;
			}
			json_string(&c, &lsn, &lsnlen);
			resetStringInfo(&ls->buf);
			appendBinaryStringInfo(&ls->buf, lsn, lsnlen);
			ls->commit_lsn = pg_lsn_in_internal(ls->buf.data, &have_error);
			if (have_error)
				json_corrupt(&c);
			return;
		}
		return;
	}

	ls->records++;
	if ((ls->records % PROGRESS_EVERY) == 0)
		report_compacting(ls);
	if (KEY_IS(kind, kindlen, "truncate"))
	{
		read_truncate(ls, &c);
		return;
	}
	if (!KEY_IS(kind, kindlen, "insert") && !KEY_IS(kind, kindlen, "update") &&
		!KEY_IS(kind, kindlen, "delete"))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("event log record of unknown kind \"%.*s\"", kindlen, kind)));

	/*
	 * The log writes the table before the images: read them as they come
	 * once the table is known, else come back to them.
	 */
	while (json_next_key(&c, &first, &key, &keylen))
	{
		if (KEY_IS(key, keylen, "schema"))
			json_string(&c, &schema, &schemalen);
		else if (KEY_IS(key, keylen, "table"))
			json_string(&c, &table, &tablelen);
		else if (KEY_IS(key, keylen, "old") || KEY_IS(key, keylen, "new") ||
				 KEY_IS(key, keylen, "old_unchanged_toast") ||
				 KEY_IS(key, keylen, "unchanged_toast"))
		{
			bool		is_old = (key[0] == 'o');
			bool		is_list = (key[keylen - 1] == 't');

			if (!resolved && schema != NULL && table != NULL)
			{
				resolved = true;
				i = record_source(ls, &c, schema, schemalen, table, tablelen);
				if (!in_range(ls, i))
					return;
				s = &ls->src[i];
				memset(s->unch, 0, sizeof(bool) * s->natts);
				memset(s->oldunch, 0, sizeof(bool) * s->natts);
			}
			if (!resolved)
			{
				const char *v = json_value(&c);

				if (is_list)
					*(is_old ? &oldunch : &newunch) = v;
				else
					*(is_old ? &old : &new) = v;
				continue;
			}
			if (is_list)
			{
				read_columns(ls, &c, s, is_old ? s->oldunch : s->unch);
				any_unchanged |= !is_old;
			}
			else
			{
				read_image(ls, &c, s, is_old ? s->oldv : s->newv,
						   is_old ? s->oldn : s->newn, is_old ? s->oldp : s->newp);
				*(is_old ? &old : &new) = c.p;
			}
		}
		else
			(void) json_value(&c);
	}
	if (!resolved)
	{
		if (schema == NULL || table == NULL)
			json_corrupt(&c);
		i = record_source(ls, &c, schema, schemalen, table, tablelen);
		if (!in_range(ls, i))
			return;
		s = &ls->src[i];
		memset(s->unch, 0, sizeof(bool) * s->natts);
		memset(s->oldunch, 0, sizeof(bool) * s->natts);
		if (old)
		{
			c.p = old;
			read_image(ls, &c, s, s->oldv, s->oldn, s->oldp);
		}
		if (new)
		{
			c.p = new;
			read_image(ls, &c, s, s->newv, s->newn, s->newp);
		}
		if (oldunch)
		{
			c.p = oldunch;
			read_columns(ls, &c, s, s->oldunch);
		}
		if (newunch)
		{
			c.p = newunch;
			read_columns(ls, &c, s, s->unch);
			any_unchanged = true;
		}
	}
	/*
	 * A column added (with a default) after the image was logged is not in
	 * it: the row holds the default PostgreSQL keeps for such rows.
	 */
	if (new != NULL)
	{
		for (int a = 0; a < s->natts; a++)
		{
			if (!s->newp[a] && !s->unch[a] && s->cols[a].has_missing)
			{
				s->newv[a] = s->cols[a].missing;
				s->newn[a] = false;
			}
		}
	}
	record_entries(ls, s, kind[0] == 'i' ? "insert" : kind[0] == 'u' ? "update" : "delete",
				   old != NULL, new != NULL, any_unchanged);
}

/* ----------
 * Reading the log
 * ----------
 */

/* The WHERE clause of the log rows that may hold records of the sources. */
static char *
log_rows_where(LoadState *ls)
{
	StringInfoData sql;
	XLogRecPtr	from = ls->upper;

	for (int i = 0; i < ls->nsrc; i++)
		from = Min(from, ls->src[i].lower);
	initStringInfo(&sql);
	appendStringInfo(&sql, " WHERE last_lsn OPERATOR(pg_catalog.>=) '%X/%X'"
					 " AND first_lsn OPERATOR(pg_catalog.<=) '%X/%X' AND tables OPERATOR(pg_catalog.&&) '{",
					 LSN_FORMAT_ARGS(from), LSN_FORMAT_ARGS(ls->upper));
	for (int i = 0; i < ls->nsrc; i++)
		appendStringInfo(&sql, "%s%u", i > 0 ? "," : "", ls->src[i].relid);
	appendStringInfoString(&sql, "}'::pg_catalog.oid[]");
	if (ls->split > 0)
		appendStringInfo(&sql, " AND batch_id OPERATOR(pg_catalog.%s) " INT64_FORMAT,
						 ls->upper_part ? ">=" : "<", ls->split);
	return sql.data;
}

/*
 * Run sql, a query of n int8 columns over the log rows, as the extension
 * owner: false if it returns no row, else its first row's values in
 * values.
 */
static bool
log_rows_select(const char *sql, int64 *values, int n)
{
	SavedUser	saved;
	bool		found;
	bool		isnull;

	kappa_become(kappa_extension_owner(), &saved);
	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.event_log");
	found = SPI_processed == 1;
	for (int i = 0; found && i < n; i++)
		values[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												i + 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	kappa_unbecome(&saved);
	return found;
}

/* Count the change records of the log rows. */
static void
log_rows_count(LoadState *ls)
{
	if (!log_rows_select(psprintf("SELECT COALESCE(pg_catalog.sum(change_count), 0)::pg_catalog.int8"
								  " FROM kappa.event_log%s", log_rows_where(ls)),
						 &ls->total, 1))
		elog(ERROR, "could not read kappa.event_log");
}

/* Open the cursor over the log rows, as the extension owner. */
static void
log_rows_open(LoadState *ls)
{
	SavedUser	saved;

	kappa_become(kappa_extension_owner(), &saved);
	ls->portal = SPI_cursor_open_with_args(NULL,
										   psprintf("SELECT kind, first_lsn, tables, table_names, events"
													" FROM kappa.event_log%s ORDER BY batch_id",
													log_rows_where(ls)),
										   0, NULL, NULL, NULL, true, 0);
	kappa_unbecome(&saved);
}

static void receive_log(LoadState *ls, bool wait);

/* Read every record of the log rows. */
static void
read_log(LoadState *ls)
{
	for (;;)
	{
		HeapTuple	tup;
		TupleDesc	desc;
		bool		isnull;
		Datum	   *names;
		text	   *events;
		const char *p;
		const char *end;
		MemoryContext oldcxt;

		if (ls->next >= ls->nrows)
		{
			if (ls->rows)
				SPI_freetuptable(ls->rows);
			ls->rows = NULL;
			SPI_cursor_fetch(ls->portal, true, 4);
			ls->rows = SPI_tuptable;
			ls->nrows = SPI_processed;
			ls->next = 0;
			if (ls->nrows == 0)
				break;
		}
		tup = ls->rows->vals[ls->next];
		desc = ls->rows->tupdesc;
		ls->next++;

		MemoryContextReset(ls->rowcxt);
		ls->ncache = 0;
		oldcxt = MemoryContextSwitchTo(ls->rowcxt);
		ls->snapshot = strcmp(TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)), "snapshot") == 0;
		ls->row_lsn = DatumGetLSN(SPI_getbinval(tup, desc, 2, &isnull));
		deconstruct_array(DatumGetArrayTypePCopy(SPI_getbinval(tup, desc, 3, &isnull)),
						  OIDOID, sizeof(Oid), true, TYPALIGN_INT, &ls->tables, NULL, &ls->ntables);
		deconstruct_array(DatumGetArrayTypePCopy(SPI_getbinval(tup, desc, 4, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &names, NULL, &ls->ntables);
		ls->names = palloc(sizeof(char *) * Max(ls->ntables, 1));
		for (int i = 0; i < ls->ntables; i++)
			ls->names[i] = TextDatumGetCString(names[i]);
		events = DatumGetTextPP(SPI_getbinval(tup, desc, 5, &isnull));
		/*
		 * A snapshot's records are committed at its LSN.  A batch's row may
		 * begin inside a transaction whose begin record is in a row before,
		 * one not read (it holds none of the sources' tables) or in the
		 * other part of the log: the row's first LSN is that transaction's
		 * commit LSN (the log lists transactions in commit order, and a
		 * row's first LSN is the lowest of its records' commit LSNs).
		 */
		ls->commit_lsn = ls->row_lsn;
		ls->rowno = ls->upper_part ? Max(ls->rowno + 1, ls->first_row) : ls->rowno + 1;
		ls->recno = 0;
		MemoryContextSwitchTo(oldcxt);

		p = VARDATA_ANY(events);
		end = p + VARSIZE_ANY_EXHDR(events);
		while (p < end)
		{
			const char *eol = memchr(p, '\n', end - p);

			if (eol == NULL)
				eol = end;
			if (eol > p)
			{
				oldcxt = MemoryContextSwitchTo(ls->reccxt);
				read_record(ls, p, eol);
				MemoryContextSwitchTo(oldcxt);
				MemoryContextReset(ls->reccxt);
			}
			p = eol + 1;
			/* take what the reader sent meanwhile, so that it goes on */
			if (ls->reader != NULL && (ls->recno & 1023) == 0)
				receive_log(ls, false);
			CHECK_FOR_INTERRUPTS();
		}
	}
	SPI_cursor_close(ls->portal);
}

/* The reader stopped before the end of its part: raise its error. */
static void
reader_failed(LoadState *ls)
{
	KappaReplayReader *reader = ls->reader;

	ls->reader = NULL;
	kappa_replay_reader_end(reader);
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("the parallel worker reading the event log for the replay of \"%s\" stopped before the end of the log",
					ls->view)));
}

/*
 * Take the entries the reader sends, as read_log takes those it reads:
 * with wait, until it says it read every record; else those it has sent
 * so far.
 */
static void
receive_log(LoadState *ls, bool wait)
{
	Size		nbytes;
	void	   *data;

	while (!ls->reader_done)
	{
		ReaderMessage msg;
		int			res = kappa_replay_reader_next(ls->reader, &nbytes, &data, !wait);

		if (res == SHM_MQ_WOULD_BLOCK)
			return;
		if (res != SHM_MQ_SUCCESS)
			reader_failed(ls);

		if (nbytes < sizeof(ReaderMessage))
			elog(ERROR, "unexpected message of %zu bytes from the event log reader", nbytes);
		memcpy(&msg, data, sizeof(ReaderMessage));
		if ((msg.kind == READER_ENTRY || msg.kind == READER_TRUNCATE) &&
			(msg.source < 0 || msg.source >= ls->nsrc))
			elog(ERROR, "event log reader sent an entry of source %d of %d", msg.source, ls->nsrc);
		switch (msg.kind)
		{
			case READER_ENTRY:
				{
					SourceState *s = &ls->src[msg.source];

					ExecStoreMinimalTuple((MinimalTuple) ((char *) data + sizeof(ReaderMessage)),
										  s->recvslot, false);
					take_entry(s, s->recvslot, msg.op, msg.pending, 0);
					ExecClearTuple(s->recvslot);
					break;
				}
			case READER_TRUNCATE:
				truncate_source(ls, &ls->src[msg.source], msg.position, false);
				break;
			case READER_PROGRESS:
				ls->reader_records = msg.records;
				ls->reader_lsn = msg.lsn;
				report_compacting(ls);
				break;
			case READER_DONE:
				ls->reader_records = msg.records;
				ls->reader_done = true;
				break;
			default:
				elog(ERROR, "unexpected message \"%c\" from the event log reader", msg.kind);
		}
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * The batch from which this backend reads the log, and the ordinal of its
 * row, into ls->split and ls->first_row: the first log row past the first
 * READER_SHARE of the records, which the reader reads.  This backend also
 * sorts every entry: it reads less.
 */
#define READER_SHARE	0.5

static void
split_log(LoadState *ls)
{
	int64		found[2];

	if (log_rows_select(psprintf("SELECT batch_id, n FROM ("
									"SELECT batch_id, pg_catalog.row_number() OVER w - 1 AS n,"
									" pg_catalog.sum(change_count) OVER w AS upto"
									" FROM kappa.event_log%s WINDOW w AS (ORDER BY batch_id)) r"
									" WHERE upto OPERATOR(pg_catalog.>) " INT64_FORMAT
									" ORDER BY batch_id LIMIT 1",
									log_rows_where(ls), (int64) (ls->total * READER_SHARE)),
						found, 2))
	{
		ls->split = found[0];
		ls->first_row = found[1];
	}
}

/*
 * Read the log in two parts, the first in a reader, a parallel worker
 * (replay_reader.c), whose entries this backend sorts with its own, and
 * the rest here: parsing the records is most of a replay's work.  False, to
 * read the whole log here, for a log of fewer than
 * pg_kappa.min_parallel_replay_records change records, a source with a
 * column whose input function is not parallel safe, or when no worker can
 * be had.
 */
static bool
read_log_in_parts(LoadState *ls)
{
	Oid		   *relids = palloc(sizeof(Oid) * ls->nsrc);
	XLogRecPtr *lowers = palloc(sizeof(XLogRecPtr) * ls->nsrc);

	if (kappa_min_parallel_replay_records < 0 ||
		ls->total < kappa_min_parallel_replay_records)
		return false;
	for (int i = 0; i < ls->nsrc; i++)
	{
		if (!ls->src[i].parallel_safe)
			return false;
		relids[i] = ls->src[i].relid;
		lowers[i] = ls->src[i].lower;
	}
	split_log(ls);
	if (ls->first_row > 0)
		ls->reader = kappa_replay_reader_begin(ls->view, ls->nsrc, relids, lowers, ls->upper,
											   ls->split);
	if (ls->reader == NULL)
	{
		if (ls->first_row > 0)
			elog(DEBUG1, "kappa.replay(%s): no parallel worker to read the event log", ls->view);
		/* the whole log here, after all */
		ls->split = 0;
		ls->first_row = 0;
		return false;
	}
	elog(DEBUG1, "kappa.replay(%s): the event log is read up to batch " INT64_FORMAT " by a parallel worker",
		 ls->view, ls->split);
	ls->upper_part = true;

	log_rows_open(ls);
	read_log(ls);
	receive_log(ls, true);
	kappa_replay_reader_end(ls->reader);
	ls->reader = NULL;
	ls->records += ls->reader_records;
	return true;
}

/*
 * Start ls, for the replay of view (for messages) of nsrc sources up to
 * upper: its memory, which it switches to; returns the context before.
 */
static MemoryContext
load_state_begin(LoadState *ls, const char *view, int nsrc, XLogRecPtr upper)
{
	MemoryContext oldcxt;

	memset(ls, 0, sizeof(LoadState));
	ls->view = view;
	ls->upper = upper;
	ls->nsrc = nsrc;
	ls->cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_kappa replay",
									ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(ls->cxt);
	ls->reccxt = AllocSetContextCreate(ls->cxt, "pg_kappa replay record",
									   ALLOCSET_DEFAULT_SIZES);
	ls->rowcxt = AllocSetContextCreate(ls->cxt, "pg_kappa replay log row",
									   ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&ls->buf);
	ls->src = palloc0(sizeof(SourceState) * nsrc);
	ls->rowno = -1;				/* the first row read is row 0 */
	return oldcxt;
}

/*
 * The reader: read the log rows before batch split for sources relids,
 * their records committed from lowers[i] to upper, as kappa_replay_load
 * reads them, and send their entries to mq, in log order.  Run by a parallel worker of the replaying
 * backend (replay_reader.c), SPI connected, under that backend's snapshot
 * and as its user.
 */
void
kappa_replay_read_log(const char *view, int nsrc, Oid *relids,
					  XLogRecPtr *lowers, XLogRecPtr upper, int64 split,
					  shm_mq_handle *mq)
{
	LoadState	ls;
	MemoryContext oldcxt;
	ReaderMessage msg = {READER_DONE};

	oldcxt = load_state_begin(&ls, view, nsrc, upper);
	ls.mq = mq;
	ls.split = split;
	for (int i = 0; i < nsrc; i++)
		init_source(&ls, &ls.src[i], relids[i], InvalidOid, lowers[i], NULL);

	log_rows_open(&ls);
	read_log(&ls);
	msg.records = ls.records;
	reader_send(mq, &msg, NULL);

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(ls.cxt);
}

/* ----------
 * Entries into rows of the target
 * ----------
 */

/* Rows waiting for table_multi_insert */
typedef struct Loader
{
	Relation	rel;			/* the target, or NULL for a tuplestore */
	Tuplestorestate *store;
	TupleDesc	desc;
	BulkInsertState bistate;
	CommandId	cid;
	int			options;
	MemoryContext cxt;
	TupleTableSlot *slots[LOAD_BATCH_ROWS];
	int			nslots;
	Size		bytes;
	Datum	   *values;
	bool	   *nulls;
	int			weight;			/* attribute index of _kappa_w, or -1 */
	/* merging into the rows target holds (merge_*) */
	bool		merging;
	bool		bulk;			/* too many changes: indexes rebuilt after */
	int64		bulk_after;		/* changes past which it goes bulk */
	IndexScanDesc scan;			/* target in key order */
	Relation	irel;
	Snapshot	snapshot;
	TupleTableSlot *old;		/* target's current row, or empty */
	TupleTableSlot *new;		/* a row inserted with its index entries */
	EState	   *estate;
	ResultRelInfo *rri;
} Loader;

static void merge_begin(Loader *l, SourceState *s);
static bool merge_put(Loader *l, SourceState *s, Datum *values, bool *nulls);
static bool merge_end(Loader *l, SourceState *s);

/* Insert the rows waiting, and forget them. */
static void
loader_flush(Loader *l)
{
	if (l->nslots == 0)
		return;
	table_multi_insert(l->rel, l->slots, l->nslots, l->cid, l->options, l->bistate);
	for (int i = 0; i < l->nslots; i++)
		ExecClearTuple(l->slots[i]);
	MemoryContextReset(l->cxt);
	l->nslots = 0;
	l->bytes = 0;
	CHECK_FOR_INTERRUPTS();
}

/*
 * Open the target of source s: its columns must be the source's, at the
 * same attribute numbers, and it may have _kappa_w (engine 2's d_<n>).
 */
static void
loader_open(Loader *l, SourceState *s)
{
	bool		ok;

	memset(l, 0, sizeof(Loader));
	if (s->store != NULL)
	{
		/* the folded entries as they are (loader_put_entry) */
		l->store = s->store;
		return;
	}
	/* a merge reads the target's rows as they stay: nobody else writes it */
	l->rel = table_open(s->target, s->merge ? ExclusiveLock : RowExclusiveLock);
	l->desc = RelationGetDescr(l->rel);
	l->weight = -1;
	ok = l->desc->natts >= s->natts;
	for (int a = 0; a < l->desc->natts && ok; a++)
	{
		Form_pg_attribute att = TupleDescAttr(l->desc, a);

		if (a < s->natts)
			ok = s->cols[a].dropped ? att->attisdropped :
				(!att->attisdropped && att->atttypid == TupleDescAttr(s->sortdesc, a)->atttypid);
		else
		{
			ok = att->attisdropped || !att->attnotnull;
			if (!att->attisdropped && strcmp(NameStr(att->attname), "_kappa_w") == 0 &&
				att->atttypid == INT4OID)
				l->weight = a;
		}
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("columns of source table \"%s\" changed", s->label),
				 errhint("Drop the view with kappa.drop_view and create it again.")));
	/*
	 * Not through a ring of a few buffers, as COPY loads: the rows are read
	 * right after (the view's query, the state, index builds), which would
	 * read back from the kernel what the ring had written out.
	 */
	l->bistate = GetBulkInsertState();
	FreeAccessStrategy(l->bistate->strategy);
	l->bistate->strategy = NULL;
	l->cid = GetCurrentCommandId(true);
	/* a table emptied by this transaction has no free space worth looking up */
	l->options = (l->rel->rd_createSubid != InvalidSubTransactionId ||
				  l->rel->rd_firstRelfilenodeSubid != InvalidSubTransactionId) ?
		TABLE_INSERT_SKIP_FSM : 0;
	l->cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_kappa replay load",
								   ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < LOAD_BATCH_ROWS; i++)
		l->slots[i] = MakeSingleTupleTableSlot(l->desc, &TTSOpsHeapTuple);
	l->values = palloc0(sizeof(Datum) * l->desc->natts);
	l->nulls = palloc(sizeof(bool) * l->desc->natts);
	if (s->merge)
		merge_begin(l, s);
}

/* ----------
 * Merging into rows the target holds
 *
 * An in-place replay of an engine 1 view finds its copies of the sources
 * (a_<n>) holding rows already, normally those of the state it rebuilds.
 * Instead of emptying them, loading every row and building their indexes
 * again, the rows folded from the log (in key order) are compared with the
 * target's (read in the same order, through its index on the key): a row
 * of the target that the state does not have, or has with other values,
 * is deleted, and a row of the state that the target lacks is inserted
 * with its index entries.  The target ends up with the same rows as a
 * reload would give it.  Past bulk_after changes that is no longer cheaper
 * than a reload: the rest is inserted without index entries, and the
 * indexes are built again at the end.
 * ----------
 */

/*
 * The index of target that returns its rows in the order of the key of
 * source s (a unique btree on the same columns, operator families and
 * collations), or InvalidOid.
 */
static Oid
merge_index(SourceState *s, Relation target)
{
	List	   *indexes = RelationGetIndexList(target);
	ListCell   *lc;
	Oid			result = InvalidOid;

	if (!s->by_key)
		return InvalidOid;
	foreach(lc, indexes)
	{
		Relation	irel = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ind = irel->rd_index;
		bool		ok = ind->indisunique && ind->indisvalid &&
			ind->indnkeyatts == s->nkeys && irel->rd_rel->relam == BTREE_AM_OID &&
			RelationGetIndexExpressions(irel) == NIL &&
			RelationGetIndexPredicate(irel) == NIL;

		for (int k = 0; k < s->nkeys && ok; k++)
		{
			Oid			type = irel->rd_opcintype[k];

			ok = ind->indkey.values[k] == s->keys[k] + 1 &&
				irel->rd_indcollation[k] == s->keycolls[k] &&
				(irel->rd_indoption[k] & (INDOPTION_DESC | INDOPTION_NULLS_FIRST)) == 0 &&
				get_opfamily_member(irel->rd_opfamily[k], type, type,
									BTLessStrategyNumber) == s->keyops[k];
		}
		index_close(irel, AccessShareLock);
		if (ok)
		{
			result = lfirst_oid(lc);
			break;
		}
	}
	list_free(indexes);
	return result;
}

/* Read the target's next row, in key order, into l->old (empty at its end). */
static void
merge_next(Loader *l)
{
	if (!index_getnext_slot(l->scan, ForwardScanDirection, l->old))
		ExecClearTuple(l->old);
	else
		slot_getallattrs(l->old);
}

/* Start merging into the rows target holds: read them in key order. */
static void
merge_begin(Loader *l, SourceState *s)
{
	l->merging = true;
	l->bulk = false;
	l->bulk_after = Max(1000, s->entries / 16);
	l->irel = index_open(s->mergeindex, AccessShareLock);
	l->snapshot = RegisterSnapshot(GetLatestSnapshot());
	l->scan = index_beginscan(l->rel, l->irel, l->snapshot, 0, 0);
	index_rescan(l->scan, NULL, 0, NULL, 0);
	l->old = table_slot_create(l->rel, NULL);
	l->new = MakeSingleTupleTableSlot(l->desc, &TTSOpsVirtual);
	l->estate = CreateExecutorState();
	l->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(l->rri, l->rel, 1, NULL, 0);
	ExecOpenIndices(l->rri, false);
	merge_next(l);
}

/* Delete the target's current row, and read the next. */
static void
merge_delete(Loader *l, SourceState *s)
{
	simple_heap_delete(l->rel, &l->old->tts_tid);
	s->changed++;
	merge_next(l);
}

/* Compare the key of the target's current row with that of values. */
static int
merge_compare(Loader *l, SourceState *s, Datum *values, bool *nulls)
{
	for (int k = 0; k < s->nkeys; k++)
	{
		int			a = s->keys[k];
		int			cmp = ApplySortComparator(l->old->tts_values[a], l->old->tts_isnull[a],
											  values[a], nulls[a], &s->keysort[k]);

		if (cmp != 0)
			return cmp;
	}
	return 0;
}

/* Is the target's current row the same row as values, nulls? */
static bool
merge_same_row(Loader *l, SourceState *s, Datum *values, bool *nulls)
{
	for (int a = 0; a < l->desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(l->desc, a);
		bool		isnull = a < s->natts ? (nulls[a] || s->cols[a].dropped) : true;

		if (att->attisdropped)
			continue;
		if (l->old->tts_isnull[a] != isnull)
			return false;
		if (!isnull && !datum_image_eq(l->old->tts_values[a], values[a],
									   att->attbyval, att->attlen))
			return false;
	}
	return true;
}

/*
 * Merge one row of the state into the target: true when it is done, false
 * when the caller is to load it (without index entries, past bulk_after).
 */
static bool
merge_put(Loader *l, SourceState *s, Datum *values, bool *nulls)
{
	int			cmp = -1;

	/* the target's rows before this key are not in the state */
	while (!TTS_EMPTY(l->old) && (cmp = merge_compare(l, s, values, nulls)) < 0)
		merge_delete(l, s);
	if (!TTS_EMPTY(l->old) && cmp == 0)
	{
		if (merge_same_row(l, s, values, nulls))
		{
			s->rows++;
			merge_next(l);
			return true;
		}
		merge_delete(l, s);
	}

	/* a row the target lacks */
	s->changed++;
	if (!l->bulk && s->changed > l->bulk_after)
	{
		elog(DEBUG1, "pg_kappa replay: more than " INT64_FORMAT " rows of \"%s\" differ from the state, rebuilding its indexes",
			 l->bulk_after, RelationGetRelationName(l->rel));
		l->bulk = true;
	}
	if (l->bulk)
		return false;
	ExecClearTuple(l->new);
	for (int a = 0; a < l->desc->natts; a++)
	{
		l->new->tts_values[a] = a < s->natts ? values[a] : (Datum) 0;
		l->new->tts_isnull[a] = a < s->natts ? (nulls[a] || s->cols[a].dropped) : true;
	}
	ExecStoreVirtualTuple(l->new);
	table_tuple_insert(l->rel, l->new, l->cid, 0, NULL);
	(void) ExecInsertIndexTuples(l->rri, l->new, l->estate, false, false, NULL, NIL);
	ResetPerTupleExprContext(l->estate);
	s->rows++;
	return true;
}

/*
 * End the merge: the target's rows after the last key of the state go.
 * Returns whether the indexes are to be built again.
 */
static bool
merge_end(Loader *l, SourceState *s)
{
	while (!TTS_EMPTY(l->old))
		merge_delete(l, s);
	index_endscan(l->scan);
	index_close(l->irel, NoLock);
	UnregisterSnapshot(l->snapshot);
	ExecDropSingleTupleTableSlot(l->old);
	ExecDropSingleTupleTableSlot(l->new);
	ExecCloseIndices(l->rri);
	FreeExecutorState(l->estate);
	l->merging = false;
	return l->bulk;
}

/* One row of the target, from the first natts values of an entry. */
static void
loader_put(Loader *l, SourceState *s, Datum *values, bool *nulls)
{
	MemoryContext oldcxt;
	HeapTuple	tup;

	if (l->merging && merge_put(l, s, values, nulls))
		return;
	oldcxt = MemoryContextSwitchTo(l->cxt);

	for (int a = 0; a < l->desc->natts; a++)
	{
		l->values[a] = a < s->natts ? values[a] : (Datum) 0;
		l->nulls[a] = a < s->natts ? (nulls[a] || s->cols[a].dropped) : true;
	}
	if (l->weight >= 0)
	{
		l->values[l->weight] = Int32GetDatum(1);
		l->nulls[l->weight] = false;
	}
	tup = heap_form_tuple(l->desc, l->values, l->nulls);
	MemoryContextSwitchTo(oldcxt);
	ExecStoreHeapTuple(tup, l->slots[l->nslots++], true);
	l->bytes += tup->t_len;
	s->rows++;
	if (l->nslots == LOAD_BATCH_ROWS || l->bytes >= LOAD_BATCH_BYTES)
		loader_flush(l);
}

/*
 * Write the folded entry in slot (whose values are deformed): into a
 * tuplestore as it is, its extra columns hidden by the store's descriptor
 * (no tuple formed again), else as a row of the target.
 */
static void
loader_put_entry(Loader *l, SourceState *s, TupleTableSlot *slot)
{
	if (l->store != NULL)
	{
		tuplestore_puttupleslot(l->store, slot);
		s->rows++;
		return;
	}
	loader_put(l, s, slot->tts_values, slot->tts_isnull);
}

/*
 * Close the target; build its indexes, if it has any (and they were not
 * kept up to date by a merge).
 */
static void
loader_close(Loader *l, SourceState *s)
{
	Oid			relid;
	bool		indexed;

	bool		rebuild = true;

	if (l->store != NULL)
		return;
	relid = RelationGetRelid(l->rel);

	loader_flush(l);
	if (l->merging)
		rebuild = merge_end(l, s);
	table_finish_bulk_insert(l->rel, l->options);
	FreeBulkInsertState(l->bistate);
	for (int i = 0; i < LOAD_BATCH_ROWS; i++)
		ExecDropSingleTupleTableSlot(l->slots[i]);
	MemoryContextDelete(l->cxt);
	indexed = rebuild && RelationGetIndexList(l->rel) != NIL;
	table_close(l->rel, NoLock);
	if (indexed)
	{
		ReindexParams params = {0};

		CommandCounterIncrement();
		(void) reindex_relation(relid, REINDEX_REL_CHECK_CONSTRAINTS, &params);
	}
}

/*
 * A key (or a row) in the group of entries being folded: its image, a copy
 * of an entry, in a slot of its own (the slots are kept from group to group)
 */
typedef struct FoldMember
{
	TupleTableSlot *slot;
	bool		present;		/* by key: the key holds a row */
	int64		count;			/* by row: copies */
} FoldMember;

typedef struct FoldGroup
{
	FoldMember *members;
	int			nmembers;
	int			size;
} FoldGroup;

/* Write what the group's entries left to the target, and forget them. */
static void
fold_flush(FoldGroup *g, SourceState *s, Loader *l)
{
	for (int m = 0; m < g->nmembers; m++)
	{
		FoldMember *mb = &g->members[m];

		if (s->by_key)
		{
			if (mb->present)
				loader_put_entry(l, s, mb->slot);
		}
		else
		{
			for (int64 k = 0; k < mb->count; k++)
				loader_put_entry(l, s, mb->slot);
		}
		ExecClearTuple(mb->slot);
	}
	g->nmembers = 0;
}

/*
 * Make mb hold a copy of the entry in slot (whose values are deformed) as
 * its values are now, changed since it was sorted.
 */
static void
member_set(SourceState *s, FoldMember *mb, TupleTableSlot *slot)
{
	/* the slot's values may point into the image this one replaces */
	MinimalTuple copy = heap_form_minimal_tuple(s->sortdesc, slot->tts_values, slot->tts_isnull);

	ExecStoreMinimalTuple(copy, mb->slot, true);
	slot_getallattrs(mb->slot);
}

/*
 * Make mb hold the entry in *slotp as sorted (a copy the slot owns, its
 * values deformed): the slots are exchanged, without copying the entry
 * again; *slotp gets the member's former slot, for the next entry.
 */
static void
member_take(FoldMember *mb, TupleTableSlot **slotp)
{
	TupleTableSlot *tmp = mb->slot;

	mb->slot = *slotp;
	*slotp = tmp;
}

/* The member of the group the entry in *slotp is about, added if new. */
static FoldMember *
fold_member(FoldGroup *g, SourceState *s, TupleTableSlot **slotp, bool *found)
{
	FoldMember *mb;
	TupleTableSlot *slot = *slotp;

	for (int m = 0; m < g->nmembers; m++)
	{
		mb = &g->members[m];
		if (same_entry(s, mb->slot->tts_values, mb->slot->tts_isnull,
					   slot->tts_values, slot->tts_isnull))
		{
			*found = true;
			return mb;
		}
	}
	*found = false;
	if (g->nmembers == g->size)
	{
		int			size = Max(4, g->size * 2);

		g->members = g->members ? repalloc(g->members, sizeof(FoldMember) * size) :
			palloc(sizeof(FoldMember) * size);
		for (int m = g->size; m < size; m++)
			g->members[m].slot = MakeSingleTupleTableSlot(s->sortdesc, &TTSOpsMinimalTuple);
		g->size = size;
	}
	mb = &g->members[g->nmembers++];
	mb->present = false;
	mb->count = 0;
	member_take(mb, slotp);
	return mb;
}

/* The entries of a source in (key, position) order: its runs and its sort */
typedef struct EntryStream
{
	SourceState *s;
	TupleTableSlot *next[LOG_PARTS + 1];	/* each run's next entry, then
											 * the sort's, or empty */
} EntryStream;

#define STREAM_SORTED LOG_PARTS

/* Is the entry in slot before a truncate of its source? */
static inline bool
entry_truncated(SourceState *s, TupleTableSlot *slot)
{
	return s->truncated > 0 &&
		DatumGetInt64(slot->tts_values[s->natts + ENTRY_SEQ - 1]) < s->truncated;
}

/* Read the next entry of run i, or of the sort, into st->next[i]. */
static void
stream_read(EntryStream *st, int i)
{
	SourceState *s = st->s;
	TupleTableSlot *slot = st->next[i];

	do
	{
		bool		found;

		if (i == STREAM_SORTED)
			found = tuplesort_gettupleslot(s->sort, true, true, slot, NULL);
		else
			found = s->runs[i].store != NULL &&
				tuplestore_gettupleslot(s->runs[i].store, true, true, slot);
		if (!found)
		{
			ExecClearTuple(slot);
			return;
		}
		slot_getallattrs(slot);
	} while (entry_truncated(s, slot));
}

static void
stream_begin(EntryStream *st, SourceState *s)
{
	st->s = s;
	for (int i = 0; i <= STREAM_SORTED; i++)
	{
		st->next[i] = MakeSingleTupleTableSlot(s->sortdesc, &TTSOpsMinimalTuple);
		stream_read(st, i);
	}
}

/* Does entry a come before entry b: by key, then position in the log? */
static bool
entry_before(SourceState *s, TupleTableSlot *a, TupleTableSlot *b)
{
	int			cmp = 0;
	int64		seqa;
	int64		seqb;

	if (!s->by_key)
	{
		/* by row: by the row's hash (runs are by key only, but still) */
		int64		ha = DatumGetInt64(a->tts_values[s->natts + ENTRY_HASH - 1]);
		int64		hb = DatumGetInt64(b->tts_values[s->natts + ENTRY_HASH - 1]);

		cmp = ha < hb ? -1 : ha > hb ? 1 : 0;
	}
	for (int k = 0; k < s->nkeys && cmp == 0; k++)
	{
		int			att = s->keys[k];

		cmp = ApplySortComparator(a->tts_values[att], a->tts_isnull[att],
								  b->tts_values[att], b->tts_isnull[att],
								  &s->keysort[k]);
	}
	if (cmp != 0)
		return cmp < 0;
	seqa = DatumGetInt64(a->tts_values[s->natts + ENTRY_SEQ - 1]);
	seqb = DatumGetInt64(b->tts_values[s->natts + ENTRY_SEQ - 1]);
	return seqa < seqb;
}

/*
 * The next entry, exchanged into *slotp (a copy it owns, deformed): of the
 * runs' and the sort's next entries the one of the lowest key, and on
 * equal keys the first in the log.  False at the end.
 */
static bool
stream_next(EntryStream *st, TupleTableSlot **slotp)
{
	SourceState *s = st->s;
	int			best = -1;
	TupleTableSlot *tmp = *slotp;

	for (int i = 0; i <= STREAM_SORTED; i++)
	{
		if (!TTS_EMPTY(st->next[i]) &&
			(best < 0 || entry_before(s, st->next[i], st->next[best])))
			best = i;
	}
	if (best < 0)
		return false;
	ExecClearTuple(tmp);
	*slotp = st->next[best];
	st->next[best] = tmp;
	stream_read(st, best);
	return true;
}

static void
stream_end(EntryStream *st)
{
	for (int i = 0; i <= STREAM_SORTED; i++)
		ExecDropSingleTupleTableSlot(st->next[i]);
	for (int r = 0; r < LOG_PARTS; r++)
	{
		if (st->s->runs[r].store != NULL)
		{
			tuplestore_end(st->s->runs[r].store);
			st->s->runs[r].store = NULL;
		}
	}
}

/*
 * Fold the sorted entries of source s into its rows, and load them into
 * its target.
 */
static void
fold_source(LoadState *ls, SourceState *s)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(s->sortdesc, &TTSOpsMinimalTuple);
	Loader		l;
	EntryStream st;
	FoldGroup	g = {0};
	bool		have_group = false;
	int64		group_hash = 0;
	int			n = s->natts;
	int64		folded = 0;

	kappa_replay_progress(ls->view, "sorting " INT64_FORMAT " entries of table %s (" INT64_FORMAT " in order already)",
						  s->entries, s->label, s->runs[0].entries + s->runs[1].entries);
	tuplesort_performsort(s->sort);
	kappa_replay_progress(ls->view, "loading the state of table %s", s->label);
	loader_open(&l, s);
	/* copies, which a member may keep (member_take) */
	stream_begin(&st, s);
	while (stream_next(&st, &slot))
	{
		int64		hash;
		int			op;
		FoldMember *mb;
		bool		found;
		bool		same_group = have_group;

		slot_getallattrs(slot);
		hash = DatumGetInt64(slot->tts_values[n + ENTRY_HASH - 1]);
		op = DatumGetInt32(slot->tts_values[n + ENTRY_OP - 1]);

		/* a group: the entries of equal keys, or of rows of one hash */
		if (!same_group)
			;
		else if (!s->by_key)
			same_group = (hash == group_hash);
		else if (g.nmembers > 0)
		{
			for (int k = 0; k < s->nkeys && same_group; k++)
			{
				int			a = s->keys[k];

				same_group = ApplySortComparator(g.members[0].slot->tts_values[a],
												 g.members[0].slot->tts_isnull[a],
												 slot->tts_values[a], slot->tts_isnull[a],
												 &s->keysort[k]) == 0;
			}
		}
		if (!same_group)
		{
			fold_flush(&g, s, &l);
			have_group = true;
			group_hash = hash;
		}
		mb = fold_member(&g, s, &slot, &found);
		if (!s->by_key)
		{
			/* a multiset that never counts below zero */
			if (op == ENTRY_ROW)
				mb->count++;
			else if (mb->count > 0)
				mb->count--;
		}
		else if (op == ENTRY_GONE)
			mb->present = false;
		else
		{
			/* a new member took the entry's slot */
			TupleTableSlot *entry = found ? slot : mb->slot;

			/* the key's image: unchanged TOASTed values from the last one */
			if (!entry->tts_isnull[n + ENTRY_UNCHANGED - 1])
			{
				bytea	   *marks = DatumGetByteaPP(entry->tts_values[n + ENTRY_UNCHANGED - 1]);

				for (int a = 0; a < n && a < VARSIZE_ANY_EXHDR(marks); a++)
				{
					if (!((char *) VARDATA_ANY(marks))[a])
						continue;
					if ((!found || !mb->present) && s->cols[a].unread)
					{
						entry->tts_values[a] = (Datum) 0;
						entry->tts_isnull[a] = true;
						continue;
					}
					if (!found || !mb->present)
						ereport(ERROR,
								(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
								 errmsg("could not find the value of unchanged TOASTed column \"%s\" of table \"%s\" in the event log",
										s->cols[a].name, s->label),
								 errdetail("An update left the value out of the WAL, and the log holds no earlier image of the row under its key (an update that changed the key has none)."),
								 errhint("Use ALTER TABLE %s REPLICA IDENTITY FULL, so that updates carry whole rows.",
										 s->label)));
					entry->tts_values[a] = mb->slot->tts_values[a];
					entry->tts_isnull[a] = mb->slot->tts_isnull[a];
				}
				entry->tts_isnull[n + ENTRY_UNCHANGED - 1] = true;
				member_set(s, mb, entry);
			}
			else if (found)
				member_take(mb, &slot);
			mb->present = true;
		}
		if ((++folded % PROGRESS_EVERY) == 0)
		{
			kappa_replay_progress(ls->view, "loading the state of table %s: " INT64_FORMAT " of " INT64_FORMAT " entries folded, " INT64_FORMAT " rows",
								  s->label, folded, s->entries, s->rows);
			CHECK_FOR_INTERRUPTS();
		}
	}
	fold_flush(&g, s, &l);
	stream_end(&st);
	for (int m = 0; m < g.size; m++)
		ExecDropSingleTupleTableSlot(g.members[m].slot);
	ExecDropSingleTupleTableSlot(slot);
	tuplesort_end(s->sort);
	s->sort = NULL;
	kappa_replay_progress(ls->view, "indexing the state of table %s (" INT64_FORMAT " rows)",
						  s->label, s->rows);
	loader_close(&l, s);
}

/*
 * Load into targets[i] (empty tables with the columns of sources[i], at
 * the same attribute numbers, and perhaps _kappa_w) the rows source i held
 * at upper, from its logged records committed from lowers[i] on.  With
 * merge, the targets are not empty but hold rows of their source (engine
 * 1's copies a_<n>): they are changed into those rows instead, deleting
 * and inserting only the rows that differ (or, without an index on the
 * source's key, emptied and loaded).  changed[i] tells whether target i
 * was loaded or much changed (its statistics are out of date).  view
 * names the replay in messages.  SPI connected, an active snapshot that
 * sees the log up to upper; runs the columns' input functions as the
 * current user.  Returns the number of change records read; *rows gets the
 * number of rows loaded.
 */
int64
kappa_replay_load(const char *view, List *sources, Oid *targets,
				  Tuplestorestate **stores, TupleDesc *storedescs,
				  XLogRecPtr *lowers, XLogRecPtr upper, bool merge,
				  bool **reads, bool *changed, int64 *rows)
{
	LoadState	ls;
	MemoryContext oldcxt;

	oldcxt = load_state_begin(&ls, view, list_length(sources), upper);
	for (int i = 0; i < ls.nsrc; i++)
	{
		SourceState *s = &ls.src[i];

		init_source(&ls, s, list_nth_oid(sources, i), targets[i], lowers[i],
					reads ? reads[i] : NULL);
		if (stores != NULL)
		{
			/*
			 * The rows are the fold's entries as they are, their extra
			 * columns dropped from the relation's view of them: the query
			 * reads the source's columns only.
			 */
			MemoryContextSwitchTo(oldcxt);
			storedescs[i] = CreateTupleDescCopy(s->sortdesc);
			for (int a = s->natts; a < storedescs[i]->natts; a++)
			{
				Form_pg_attribute att = TupleDescAttr(storedescs[i], a);

				att->attisdropped = true;
				NameStr(att->attname)[0] = '\0';
			}
			MemoryContextSwitchTo(ls.cxt);
			s->store = stores[i];
		}
		else if (merge)
		{
			Relation	rel = table_open(s->target, ExclusiveLock);
			bool		empty = RelationGetNumberOfBlocks(rel) == 0;

			/* a table made by this replay has nothing to merge into */
			s->mergeindex = empty ? InvalidOid : merge_index(s, rel);
			s->merge = OidIsValid(s->mergeindex);
			table_close(rel, NoLock);
			/* no index to merge by: loaded again */
			if (!s->merge && !empty &&
				SPI_execute(psprintf("TRUNCATE %s", kappa_qualified_name(s->target)),
							false, 0) != SPI_OK_UTILITY)
				elog(ERROR, "could not empty the state of table %s", s->label);
		}
	}
	ls.commit_lsn = InvalidXLogRecPtr;

	kappa_replay_progress(view, "reading the event log");
	log_rows_count(&ls);
	report_compacting(&ls);
	if (!read_log_in_parts(&ls))
	{
		log_rows_open(&ls);
		read_log(&ls);
	}

	*rows = 0;
	for (int i = 0; i < ls.nsrc; i++)
	{
		fold_source(&ls, &ls.src[i]);
		*rows += ls.src[i].rows;
		/* statistics are worth making again for a table loaded or much changed */
		changed[i] = !ls.src[i].merge || ls.src[i].changed > ls.src[i].rows / 10;
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(ls.cxt);
	return ls.records;
}
