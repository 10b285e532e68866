/*-------------------------------------------------------------------------
 *
 * pg_kappa.h
 *	  Declarations shared between pg_kappa's source files.
 *
 * Each group below belongs to one .c file (src/ and its folders decoding/,
 * worker/, views/, log/); see that file's header comment for what it owns.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_KAPPA_H
#define PG_KAPPA_H

#include "access/htup.h"
#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "port/pg_crc32c.h"
#include "nodes/parsenodes.h"
#include "replication/origin.h"
#include "replication/output_plugin.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/relcache.h"
#include "utils/jsonb.h"
#include "utils/snapshot.h"
#include "executor/spi.h"

/* subxact.c: one step in a subtransaction, its error caught */
extern ErrorData *kappa_try_in_subxact(void (*step) (void *arg), void *arg,
									   MemoryContext errcxt);
extern ErrorData *kappa_try_and_undo_in_subxact(void (*step) (void *arg), void *arg,
												MemoryContext errcxt);

/* ----------
 * json_write.c: JSON text for values, strings and LSNs
 * ----------
 */

/* How a column's values are written; decided once per column. */
typedef enum KappaValueKind
{
	KVK_INT16,
	KVK_INT32,
	KVK_INT64,
	KVK_OID,
	KVK_FLOAT,					/* float4/float8: number, or "NaN" etc. */
	KVK_NUMERIC,				/* number, or "NaN"/"Infinity" as string */
	KVK_BOOL,
	KVK_JSON,					/* json: embedded as is */
	KVK_JSONB,					/* jsonb: embedded, as jsonb_out prints it */
	KVK_DATE,
	KVK_TIMESTAMP,
	KVK_TIMESTAMPTZ,
	KVK_TEXT,					/* text, varchar, bpchar: escaped directly */
	KVK_OTHER					/* output function, then escaped */
} KappaValueKind;

extern void kappa_json_startup(MemoryContext mcxt);
extern void kappa_json_string(StringInfo buf, const char *str, int len);
extern void kappa_json_cstring(StringInfo buf, const char *str);
extern void kappa_json_lsn(StringInfo buf, XLogRecPtr lsn);
extern void kappa_json_time(StringInfo buf, TimestampTz t);
extern void kappa_json_value(StringInfo buf, KappaValueKind kind,
							 FmgrInfo *outfunc, Datum value);
extern KappaValueKind kappa_value_kind(Oid basetypid);

/* ----------
 * json_read.c: the log's JSON lines back as jsonb
 * ----------
 */
extern Jsonb *kappa_jsonb_from_line(const char *line, int len);
extern Jsonb *kappa_jsonb_read_line(const char *line, int len);
extern bool kappa_line_header(const char *line, int len, char **kind,
							  char **schema, char **table);

/* ----------
 * relinfo.c: per-relation output metadata, cached per decoding session
 * ----------
 */
typedef struct KappaColumn
{
	char	   *key;			/* "name": — quoted, escaped, with colon */
	int			keylen;
	char	   *typename;		/* "integer" — quoted, escaped */
	AttrNumber	srcattnum;		/* attnum in the tuples that arrive */
	bool		in_identity;	/* part of the replica identity */
	bool		is_varlena;
	KappaValueKind kind;
	FmgrInfo	outfunc;		/* only set for kinds that need it */
} KappaColumn;

typedef struct KappaRelInfo
{
	Oid			relid;			/* hash key: the relation changes come from */
	bool		valid;
	MemoryContext mcxt;			/* holds everything below */
	Oid			report_relid;	/* relid reported: the root with
								 * publish-via-root, else relid */
	char	   *qualname;		/* "schema":"..","table":"..", escaped */
	bool		included;		/* passes the "tables" filter */
	bool		identity_full;
	int			ncolumns;
	KappaColumn *columns;		/* reported columns, in reported order */
	int			srcnatts;		/* natts of the tuples that arrive */
} KappaRelInfo;

extern void kappa_relinfo_init(MemoryContext parent, List *table_patterns,
							   bool via_root);
extern void kappa_relinfo_reset(void);
extern KappaRelInfo *kappa_relinfo_get(Relation rel);

/* ----------
 * event_format.c and output_plugin.c: change records
 * ----------
 */
extern void kappa_write_change_fields(StringInfo out, KappaRelInfo *ri,
									  TupleDesc desc, XLogRecPtr lsn,
									  bool include_lsn, bool include_types,
									  HeapTuple oldtuple, HeapTuple newtuple);
extern void kappa_session_output_settings(bool pin);
extern void kappa_local_output_settings(void);

/* ----------
 * table_filter.c: the "tables" option
 * ----------
 */
extern List *kappa_parse_table_patterns(const char *value);
extern bool kappa_table_matches(List *patterns, const char *nspname,
								const char *relname);

/* ----------
 * pg_kappa.c: settings
 * ----------
 */
extern bool kappa_enabled;
extern int	kappa_batch_max_changes;
extern int	kappa_batch_max_ms;
extern int	kappa_engine;
extern bool kappa_delta_statistics;
extern int	kappa_naptime;
extern int	kappa_batch_interval;
extern int	kappa_progress_interval;
extern int	kappa_min_parallel_replay_records;
extern int	kappa_max_retained_wal;
extern int	kappa_max_databases;
extern int	kappa_max_event_bytes;
extern int	kappa_view_lock_timeout;
extern int	kappa_view_statement_timeout;
extern char *kappa_test_crash_point;

/* ----------
 * shmem.c: state shared by the launcher, the apply workers and backends
 * ----------
 */
/*
 * One slot per database that has an apply worker or is about to get one;
 * there are pg_kappa.max_databases of them.  A slot is free while dboid is
 * InvalidOid, and can be taken over while it is neither wanted nor has a
 * worker attached (its worker retired).
 */
/*
 * View ids a worker's bitmap of held views covers (kappa_held_ids); a held
 * view of a larger id holds every one of them.
 */
#define KAPPA_HELD_IDS (128 * 1024)

typedef struct KappaWorkerSlot
{
	ConditionVariable progress_cv;	/* broadcast when processed_lsn moves
									 * (kappa.wait sleeps on it); first, and
									 * kept when the slot is taken again */
	Oid			dboid;			/* InvalidOid: slot free */
	bool		wanted;			/* the launcher keeps a worker running */
	uint32		generation;		/* bumped when the slot is taken and
								 * whenever a worker is started */
	pid_t		pid;			/* 0: no worker attached */
	Latch	   *latch;
	int			restarts;		/* consecutive starts without progress (backoff) */
	int			starts;			/* starts since the slot was taken */
	TimestampTz next_start;		/* not before (backoff) */
	XLogRecPtr	processed_lsn;	/* all WAL before this is applied */
	XLogRecPtr	running_lsn;	/* all WAL before this is applied to the
								 * running views, but those held below */
	XLogRecPtr	logged_lsn;		/* the event log holds all WAL before this */
	int			nheld_running;	/* running views the worker holds back
								 * (their row locked, rewritten...) */
	bool		held_beyond;	/* one of them has an id of KAPPA_HELD_IDS
								 * or more; their ids are kappa_held_ids */
	TimestampTz last_batch_at;
	char		state[16];
	char		last_error[256];
	int			overdue_view;	/* the worker was killed in this view's code */
	int			overdue_count;	/* times that happened in a row */
	int64		audit_chain_us; /* the last audit's check of the log's chain
								 * took this long (audit.c) */
} KappaWorkerSlot;

typedef struct KappaShared
{
	int			nslots;			/* pg_kappa.max_databases; never changes */
	LWLock	   *lock;			/* protects everything below */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	KappaWorkerSlot workers[FLEXIBLE_ARRAY_MEMBER];
} KappaShared;

extern KappaShared *KappaShmem;

extern void kappa_shmem_init(void);
extern KappaWorkerSlot *kappa_worker_slot(Oid dboid, bool create);
extern void kappa_request_worker(Oid dboid);
extern void kappa_wake_worker(Oid dboid);
extern XLogRecPtr kappa_worker_logged_lsn(Oid dboid);
extern XLogRecPtr kappa_view_processed_lsn(Oid dboid, int view_id,
										   TimestampTz *last_batch_at);
extern ConditionVariable *kappa_worker_progress_cv(Oid dboid);
extern KappaWorkerSlot *kappa_copy_worker_slots(int *nslots);
extern uint64 *kappa_held_ids(KappaWorkerSlot *w);

/* commit_wake.c: a commit that wrote wakes its database's worker */
extern void kappa_commit_wake_init(void);

/* ----------
 * launcher.c and apply_worker.c: background workers
 * ----------
 */
extern void kappa_register_launcher(void);
extern PGDLLEXPORT void kappa_launcher_main(Datum main_arg);
extern PGDLLEXPORT void kappa_apply_main(Datum main_arg);
extern void kappa_statement_timer_off(void);
extern PGDLLEXPORT void kappa_audit_main(Datum main_arg);
extern void kappa_audit_schedule(void);
extern bool kappa_in_apply_worker;

/* ----------
 * view_writes.c: in the apply worker, view code writes only the view
 * ----------
 */
extern void kappa_view_writes_init(void);
extern void kappa_view_writes_begin(int id, Oid relid);

/* ----------
 * change_sink.c: the apply worker's in-process decoding callbacks
 * ----------
 */
typedef struct KappaSourceBuffer
{
	Oid			relid;			/* hash key */
	TupleDesc	desc;			/* source columns + seq, new, lsn, unchanged */
	int			srcnatts;
	struct Tuplestorestate *rows;
	int64		nrows;
	XLogRecPtr	truncate_lsn;	/* latest TRUNCATE in the batch, or 0 */
	XLogRecPtr	schema_change_lsn;	/* columns changed mid-batch, or 0 */
	XLogRecPtr	modify_lsn;		/* latest UPDATE or DELETE in the batch, or 0 */
	XLogRecPtr	oversize_lsn;	/* first row image too large to buffer, or 0 */
	XLogRecPtr	no_old_lsn;		/* latest UPDATE or DELETE without its whole
								 * old row in the WAL (the table's replica
								 * identity not FULL), or 0 */
	Oid			no_old_relid;	/* the table it changed: the source, or a
								 * partition of it */
	XLogRecPtr	unidentified_lsn;	/* latest DELETE that does not say which
									 * row it deleted, or 0 */
	Oid			pkey_index;		/* the source's primary key index as its
								 * first change of the batch was made */
	bool		pkey_varies;	/* a later change was made under another */
	bool	   *dropped;		/* per source column: buffered as null, since
								 * no view reads it (kappa_sink_columns_read),
								 * or NULL when every column is kept */
	XLogRecPtr	dropped_lsn;	/* commit LSN of the latest image buffered
								 * without them, or 0 */
	bool	   *reformed;		/* per source column: one of those, whose
								 * form changed (a rewrite) since the buffer
								 * was laid out, or NULL for none */
	Datum	   *values;			/* an image being buffered (buffer_row) */
	bool	   *nulls;
	Datum	   *unchanged;
} KappaSourceBuffer;

/* A change of a captured table that could not be logged (event_log.c) */
typedef struct KappaLogFailure
{
	Oid			relid;
	XLogRecPtr	commit_lsn;		/* of its transaction */
	char	   *name;			/* the table, schema-qualified */
	char	   *message;		/* why, for kappa.captures.last_error */
} KappaLogFailure;

typedef struct KappaBatch
{
	int64		ntxns;
	int64		nchanges;
	int64		next_seq;
	XLogRecPtr	first_commit_lsn;
	XLogRecPtr	last_commit_lsn;
	XLogRecPtr	last_end_lsn;
	TimestampTz last_commit_time;
	bool		full;			/* stop decoding after this transaction */
	TimestampTz deadline;
	Snapshot	snapshot;		/* aligned batches: what the batch must be */
	bool		misaligned;		/* a transaction it does not see committed
								 * before one it sees */
	TransactionId stopped_before;	/* aligned: the unseen commit it ends at */
	List	   *xids;			/* aligned: the transactions decoded (xids,
								 * kept as OIDs: PG 15 has no xid lists) */
	struct HTAB *sources;		/* relid -> KappaSourceBuffer */
	MemoryContext mcxt;

	/* records for the event log, in commit order (see event_log.c) */
	struct Tuplestorestate *log_lines;	/* relid, commit lsn, name, line */
	int64		log_nlines;
	List	   *log_txns;		/* KappaLogTxn *, transactions with lines */
	int64		log_txn_lines;	/* lines of the transaction being decoded */
	List	   *log_failures;	/* KappaLogFailure *, in commit order */

	/* for the DEBUG1 line of each batch: time in the decoding callbacks */
	TimestampTz txn_started;	/* begin callback of the transaction */
	int64		replay_us;		/* begin to commit callbacks, summed */
} KappaBatch;

typedef struct KappaLogTxn
{
	TransactionId xid;
	XLogRecPtr	commit_lsn;
	XLogRecPtr	end_lsn;
	TimestampTz commit_time;
	RepOriginId origin;
} KappaLogTxn;

extern KappaBatch *kappa_batch;
extern void kappa_sink_init_callbacks(OutputPluginCallbacks *cb);
extern void kappa_batch_reset(void);
extern void kappa_sink_sources_changed(void);
extern void kappa_sink_set_sources(List *relids);
extern void kappa_sink_columns_read(Oid relid, const bool *read, int natts);
extern void kappa_check_buffer_columns(KappaSourceBuffer *buf, const bool *read, int natts,
									   XLogRecPtr applied);
extern void kappa_sink_set_captures(List *relids, List *start_lsns);
extern void kappa_sink_forget_capture(Oid relid);
extern void kappa_check_row_images(List *sources, XLogRecPtr applied,
								   bool whole_old_rows);
extern TupleDesc kappa_log_lines_desc(void);
extern void kappa_batch_put_row(Relation rel, XLogRecPtr commit_lsn,
								Datum *values, bool *nulls);
extern void kappa_batch_truncate(Relation rel, XLogRecPtr commit_lsn);
extern void kappa_batch_commit(XLogRecPtr commit_lsn, TimestampTz commit_time);
extern RepOriginId kappa_worker_origin;

/* ----------
 * event_log.c: the hash-chained event log
 * ----------
 */
#define KAPPA_LOG_CHUNK_BYTES (8 * 1024 * 1024)

/*
 * The largest pg_kappa.max_event_bytes: a record must fit in a log row
 * next to a full chunk, and the audit must be able to hash that row with
 * SQL (half of the 1 GB a value may take).
 */
#define KAPPA_MAX_EVENT_BYTES_LIMIT (512 * 1024 * 1024 - KAPPA_LOG_CHUNK_BYTES)

typedef struct KappaLogChunk
{
	StringInfoData events;
	XLogRecPtr	first_lsn;
	XLogRecPtr	last_lsn;
	int			ntxns;
	int64		nchanges;
	List	   *tables;			/* OIDs */
	List	   *names;			/* char *, as quote_qualified_identifier */
} KappaLogChunk;

extern void kappa_log_chunk_init(KappaLogChunk *chunk);
extern void kappa_log_name_ambiguous(const char *name);
extern char *kappa_log_table_name(const char *nspname, const char *relname);
extern void kappa_log_chunk_add_table(KappaLogChunk *chunk, Oid relid,
									  const char *name);
extern void kappa_log_append(const char *kind, KappaLogChunk *chunk);
extern Oid	kappa_event_log_relid(void);
extern void kappa_log_lock(void);
extern bool kappa_log_write_batch(void);
extern bool kappa_log_give_up(XLogRecPtr lsn, const char *why);
extern void kappa_log_prune(void);
extern bool kappa_log_available(void);
extern bool kappa_log_has_capture_state(void);
extern bool kappa_log_job_begin(void);
extern void kappa_log_job_end(void);
extern XLogRecPtr kappa_log_restore_marker(void);

/* ----------
 * view_compiler.c: analysis and validation of a view's query
 * ----------
 */
/*
 * A condition EXISTS (SELECT ... FROM t WHERE ...), its NOT, or x IN
 * (SELECT y FROM t WHERE ...) of a view's WHERE clause, on the table whose
 * rows the view keeps by key (view_compiler.c, check_sublinks).
 */
typedef struct KappaSemiJoin
{
	int			srcno;			/* the subquery's table, a source */
	RangeTblEntry *rte;			/* its range table entry */
	Node	   *cond;			/* the subquery's condition (with x = y for
								 * IN), as a condition of the outer query
								 * with rte appended to its range table */
} KappaSemiJoin;

typedef struct KappaViewDef
{
	Query	   *query;			/* analyzed */
	const char *kind;			/* project, aggregate, join, join_aggregate */
	List	   *sources;		/* OIDs of distinct source tables */
	List	   *source_keys;	/* per source: List of key attnums (int) */
	int		   *rte_source;		/* per range table index: source index or
								 * -1 */
	int			nrtes;
	List	   *key_columns;	/* output column names forming the key */
	List	   *index_columns;	/* per source: List of attnums worth an index */
	bool		bag;			/* engine 2: no unique key, rows are a
								 * multiset */
	int			preserved_rt;	/* LEFT JOIN views: the preserved table's
								 * range table index, else 0 */
	List	   *preserved_key;	/* its key's output column names */
	List	   *semijoins;		/* of KappaSemiJoin: subqueries in WHERE */
} KappaViewDef;

extern KappaViewDef *kappa_compile_view(const char *sql, int engine);
extern List *kappa_recompute_key(KappaViewDef *def);
extern bool kappa_has_btree_opclass(Oid typid);
extern AttrNumber kappa_bag_lookup_column(Oid relid, Oid *eqop, bool *hashed);
extern char *kappa_text_of(const char *expr, Oid typid);
extern char *kappa_deparse(KappaViewDef *def, Oid *rte_relids, bool keep_having);
extern char *kappa_deparse_query(Query *query, Oid *rte_relids);
extern char *kappa_deparse_query_enr(Query *query, List *sources, const char **enrnames);
extern void kappa_add_and_conditions(List **conds, Node *qual);
extern List *kappa_join_conditions(Node *node);
extern Oid *kappa_rte_relids(KappaViewDef *def, Oid *relids);
extern char *kappa_deparse_expr(KappaViewDef *def, Node *expr);

/* ----------
 * agg_delta.c: algebraic maintenance of one-table GROUP BY views
 * ----------
 */
typedef struct KappaAggSql
{
	List	   *create;			/* DDL: state table g, partials table p */
	char	   *state_columns;	/* g's columns that state_query fills */
	char	   *state_query;	/* the partial aggregates of the copy a_0 */
	char	   *fill_state;		/* g from the copy */
	char	   *clear_state;
	char	   *partial_old;	/* p from w_0, before the batch */
	char	   *partial_new;	/* p from w_0, after it */
	char	   *merge;			/* p into g, changed groups into the view */
	char	   *fill_view;		/* every group of g into the view, or NULL */
	char	   *take_dirty;		/* dirty groups out of g, their keys to k */
	char	   *clear_partials;
	char	   *partial_head;	/* engine 2: "INSERT INTO p ... FROM (" */
	char	   *partial_tail;	/* ") t GROUP BY ..." */
} KappaAggSql;

extern KappaAggSql *kappa_agg_sql(KappaViewDef *def, const char *schema,
								  const char *target);
extern Query *kappa_agg_projection(KappaViewDef *def);
extern KappaAggSql *kappa_agg_sql_weighted(KappaViewDef *def, const char *schema,
										   const char *target, const char *live);

/* ----------
 * spi_plans.c: kept statements of the delta engines, and how they run
 * ----------
 */
/*
 * A statement restricted to a set of keys held in a scratch table.  The
 * restriction is written twice: "col = ANY($n)" for every key column, with
 * the arrays gathered from the scratch table first, which the planner can
 * push down (also below GROUP BY) and turn into index scans; and an exact
 * "(cols) IN (SELECT cols FROM scratch)" for multi-column keys.
 */
typedef struct KappaKeyedPlan
{
	SPIPlanPtr	gather;			/* SELECT array_agg(DISTINCT k1), ... */
	SPIPlanPtr	plan;			/* the statement, $1..$n the arrays */
	int			nkeys;
} KappaKeyedPlan;

/*
 * The rows of a query for the keys held in a scratch table, one key at a
 * time or all at once, whichever the planner prices lower for the keys at
 * hand (see kappa_prepare_insert_keys).
 */
typedef struct KappaKeysInsert
{
	SPIPlanPtr	per_key;		/* INSERT ... LATERAL, one key at a time */
	SPIPlanPtr	at_once;		/* INSERT ... WHERE (keys) IN (...) */
	SPIPlanPtr	price_one;		/* the query for one key: priced only */
	SPIPlanPtr	price_all;		/* the whole query: priced only */
	SPIPlanPtr	count_keys;		/* the number of distinct keys, up to $1 */
} KappaKeysInsert;

extern Snapshot kappa_read_snapshot;
extern MemoryContext kappa_plans_context(void);
extern void kappa_plans_reset(void);
extern void *kappa_cached_plan(struct HTAB **cache, int id, void *(*build) (int id));
extern SPIPlanPtr kappa_keep_plan(const char *sql);
extern SPIPlanPtr kappa_keep_plan_args(const char *sql, int nargs, Oid *argtypes);
extern KappaKeyedPlan kappa_prepare_keyed(const char *stmt, const char *prefix,
										  List *names, List *typids,
										  const char *scratch);
extern KappaKeysInsert kappa_prepare_insert_keys(const char *into, const char *query,
												 List *keys, List *keytypes,
												 const char *k);
extern SPIPlanPtr kappa_prepare_insert_null_keys(const char *into, const char *query,
												 List *keys, const char *k);
extern char *kappa_quoted_list(List *names, const char *prefix);
extern char *kappa_match_keys(List *names, const char *p, const char *op, const char *q);
extern char *kappa_any_null(List *names, const char *p);
extern List *kappa_attnames(Oid relid, List *attnums);
extern char *kappa_source_columns(Oid relid, const char *prefix);
extern uint64 kappa_run(SPIPlanPtr plan);
extern uint64 kappa_run_keyed(KappaKeyedPlan *kp);
extern uint64 kappa_run_insert_keys(KappaKeysInsert *ki);
extern bool kappa_run_bool(SPIPlanPtr plan);

/* ----------
 * delta_engine.c: engine 1, maintenance from copies of the sources
 * ----------
 */
extern bool kappa_plans_stale;
extern void kappa_engine_reset(void);
extern int64 kappa_apply_view(int viewid, XLogRecPtr applied_lsn,
							  XLogRecPtr *new_applied, int64 *ntxns);
extern void kappa_engine_truncate_scratch(int viewid);
extern void kappa_check_source_access(Oid relid, Oid owner);
extern int64 kappa_count_lsns(List *lsns);

/* ----------
 * delta_rules.c: engine 2, signed deltas and live sources
 * ----------
 */
extern void kappa_rules_forget(void);
extern int64 kappa_apply_rules(int viewid, XLogRecPtr applied,
							   XLogRecPtr *new_applied, int64 *ntxns);
extern List *kappa_rules_filled_views(void);
extern bool kappa_rules_columns_read(int id, Oid relid, const bool **read, int *natts);
extern bool *kappa_columns_read(KappaViewDef *def, int srcno, int natts);
extern void kappa_rules_clear_deltas(int id);

/* views/key_joins.c: entries reached by their whole primary key */
typedef struct KappaKeyJoin
{
	uint64		partners;		/* entries (bit r - 1) the key is equated with */
	Oid			pkey_index;		/* the primary key index it relies on */
	Node	   *by_partner;		/* NOT EXISTS: d_<n> has the partners' key */
} KappaKeyJoin;

extern KappaKeyJoin **kappa_key_joins(Query *query, const int *rte_source, int nrtes,
									  const Oid *drelids, const Oid *frelids);
extern AttrNumber *kappa_failed_keys_table(Oid relid, Oid frelid, int *nkeys);
extern void kappa_fence_entry(Query *query, int r, Oid drelid, List *conds);

/* views/drop_guard.c */
extern void kappa_drop_guard_init(void);

/* views/source_columns.c */
extern bool *kappa_catalog_columns_read(int id, int source_index, Oid source, int *natts);
extern void kappa_columns_changed_error(Oid relid) pg_attribute_noreturn();

/* views/delta_sizes.c */
extern void kappa_delta_sizes_init(void);
extern void kappa_delta_sizes_set(Oid relid, double rows);
extern void kappa_delta_distinct_set(Oid relid, AttrNumber attnum, double fraction);
extern void kappa_delta_sizes_reset(void);
extern int	kappa_delta_size_class(double rows);

/* ----------
 * catalog.c: kappa.views rows, the owner switch, source locks, names
 * ----------
 */

/* A derived view's row of kappa.views */
typedef struct KappaViewRow
{
	int			id;
	char	   *state;
	char	   *canonical;
	XLogRecPtr	applied;
	List	   *sources;		/* OIDs */
	List	   *arrangements;	/* OIDs, one per source */
	char	   *last_error;		/* or NULL */
	Oid			owner;			/* the derived table's owner now */
	int			engine;			/* 1: copies of the sources; 2: signed deltas */
} KappaViewRow;

typedef struct SavedUser
{
	Oid			userid;
	int			sec_context;
} SavedUser;

/* what kappa_owner_enter changed, for kappa_owner_leave */
typedef struct KappaOwnerScope
{
	Oid			save_userid;
	int			save_sec_context;
	int			nestlevel;
} KappaOwnerScope;

/*
 * A view's delta engine, as SQL over kappa.views v: the column is 0.3's, and
 * a catalog not updated yet (still 0.2) has only views of engine 1.
 */
#define KAPPA_VIEW_ENGINE \
	"COALESCE((pg_catalog.to_jsonb(v) OPERATOR(pg_catalog.->>) 'engine')::pg_catalog.int2, 1::pg_catalog.int2)"

/*
 * A view's parse tree (kappa.views.query_tree, 0.9) as SQL over kappa.views
 * v: NULL when written by a server of another catalog version (pg_upgrade)
 * or by none (a view made before 0.9, or a catalog not updated yet).
 */
#define KAPPA_VIEW_QUERY_TREE \
	"CASE WHEN pg_catalog.to_jsonb(v) OPERATOR(pg_catalog.->>) 'query_tree_catversion' " \
	"OPERATOR(pg_catalog.=) '" CppAsString2(CATALOG_VERSION_NO) "' " \
	"THEN pg_catalog.to_jsonb(v) OPERATOR(pg_catalog.->>) 'query_tree' END"

/*
 * The longest audit_every and retain: the worker adds them to now() and
 * subtracts them from it, which must stay within the range of timestamps.
 */
#define KAPPA_MAX_INTERVAL_YEARS 1000
#define KAPPA_MAX_INTERVAL_SQL \
	"'" CppAsString2(KAPPA_MAX_INTERVAL_YEARS) " years'::pg_catalog.interval"

extern void kappa_refuse_in_view_code(const char *fn, bool waits);
extern Oid	kappa_oid_arg(FunctionCallInfo fcinfo, int n, const char *name);
extern List *kappa_name_list(const char *name);
extern void kappa_partitions_init(void);
extern void kappa_internal_guard_init(void);
extern bool kappa_internal_schema(Oid nsp);
extern List *kappa_source_tables(List *sources);
extern Oid	kappa_source_written_in_xact(List *sources, bool truncate);
extern Oid	kappa_unlogged_partition(Oid relid);
extern void kappa_ensure_identity_full(List *sources, const char *detail);
extern void kappa_unlock_sources(List *sources);
extern bool kappa_may_lock_sources(List *sources, Oid role, Oid *which);
extern bool kappa_written_in_xact(Oid relid, bool truncate);
extern bool kappa_interval_too_long(Interval *iv);
extern void kappa_check_trigger_table(Relation rel, const char *trigname,
									  const char *const *tables);
extern Oid	kappa_views_relid(void);
extern Oid	kappa_partition_changes_relid(void);
extern Oid	kappa_creation_namespace(const char *schemaname);
extern Oid	kappa_extension_owner(void);
extern char *kappa_slot_name(Oid dboid);
extern char *kappa_rel_label(Oid relid);
extern char *kappa_qualified_label(Oid relid);
extern char *kappa_qualified_name(Oid relid);
extern void kappa_lock_sources(List *sources);
extern void kappa_become(Oid role, SavedUser *saved);
extern void kappa_unbecome(SavedUser *saved);
#define KAPPA_QUERY_TEXT_SETTINGS 8
extern const char *const kappa_query_text_settings[KAPPA_QUERY_TEXT_SETTINGS][2];
extern void kappa_owner_enter(Oid owner, KappaOwnerScope *scope);
extern void kappa_owner_leave(KappaOwnerScope *scope);
extern void kappa_pin_search_path(void);
extern Oid	kappa_rel_owner(Oid relid);
extern Oid	kappa_view_owner(Oid relid);
extern bool kappa_is_derived_table(Oid relid);
extern List *kappa_oid_array_list(Datum arr);
extern Datum kappa_oid_list_array(List *oids);
extern bool kappa_extension_relation(Oid relid);
extern bool kappa_may_read_view(Oid relid, List *sources);
extern void kappa_read_view(Oid relid, KappaViewRow *v);
extern void kappa_check_sources_unchanged(KappaViewDef *def, List *sources,
										  const char *viewname);

/* ----------
 * view_ddl.c: the SQL functions that create, alter and drop views
 * ----------
 */
extern bool kappa_guard_bypass;
extern void kappa_ensure_slot(void);
extern Datum kappa_create_view_replay(PG_FUNCTION_ARGS);
extern int64 kappa_adopt_view(Oid relid, int64 id, const char *canonical,
							   int engine);
extern void kappa_analyze_view(Oid derived, int id);

/* ----------
 * capture.c
 * ----------
 */
extern XLogRecPtr kappa_capture_relation(Oid relid, const char *retain_sql,
										 bool check_owner);

/* ----------
 * capture_ddl.c
 * ----------
 */
extern List *kappa_capture_hold_writers(List *relids, int timeout_ms);

/* ----------
 * restore.c: after pg_dump and pg_restore
 * ----------
 */
extern void kappa_catalog_insert(const char *sql);

/* ----------
 * wait.c
 * ----------
 */
extern Datum kappa_wait(PG_FUNCTION_ARGS);
extern bool kappa_wait_processed(XLogRecPtr target, int64 timeout_ms);
extern XLogRecPtr kappa_end_of_records(XLogRecPtr lsn);

/* ----------
 * replica_wait.c: views on logical replicas, kappa.wait's origin_lsn
 * ----------
 */
extern Oid	kappa_view_subscription(Oid viewid, List *sources, const char *subname);
extern bool kappa_subscription_applied(Oid subid, const char *subname,
									   List *sources, XLogRecPtr origin_lsn);

/* ----------
 * replay.c: kappa.events, kappa.replay, kappa.swap
 * ----------
 */
extern bool kappa_replay_bounds(const char *view, List *sources, XLogRecPtr from,
								XLogRecPtr upper, XLogRecPtr *lowers);
extern int64 kappa_replay_fill(Oid relid, List *sources, XLogRecPtr *lowers,
							   XLogRecPtr upper, bool keep_state);

/* ----------
 * replay_state.c: the sources' rows at an LSN, compacted from the log
 * ----------
 */
extern int64 kappa_replay_load(const char *view, List *sources, Oid *targets,
							   struct Tuplestorestate **stores, TupleDesc *storedescs,
							   XLogRecPtr *lowers, XLogRecPtr upper, bool merge,
							   bool **reads, bool *changed, int64 *rows);
extern void kappa_replay_progress_begin(void);
extern void kappa_replay_progress(const char *view, const char *fmt,...) pg_attribute_printf(2, 3);
struct shm_mq_handle;
extern void kappa_replay_read_log(const char *view, int nsrc, Oid *relids,
								  XLogRecPtr *lowers, XLogRecPtr upper, int64 split,
								  struct shm_mq_handle *mq);

/* ----------
 * replay_reader.c: a parallel worker that reads the event log for a replay
 * ----------
 */
typedef struct KappaReplayReader KappaReplayReader;

extern KappaReplayReader *kappa_replay_reader_begin(const char *view, int nsrc,
													Oid *relids, XLogRecPtr *lowers,
													XLogRecPtr upper, int64 split);
extern int	kappa_replay_reader_next(KappaReplayReader *reader, Size *nbytes, void **data,
									 bool nowait);
extern void kappa_replay_reader_end(KappaReplayReader *reader);

#endif							/* PG_KAPPA_H */
