/*-------------------------------------------------------------------------
 *
 * output_plugin.c
 *	  The logical decoding output plugin "pg_kappa": one callback per record
 *	  kind, writing one JSON object per line.
 *
 * This file owns the plugin's options (parsed and validated once, at
 * startup), the per-transaction state (whether "begin" was written, how
 * many change records were emitted and their running CRC-32C), and the
 * choice of which records and fields to write.  How values, strings, LSNs
 * and times are spelled is json_write.c's business; per-relation metadata
 * comes from relinfo.c.
 *
 * Every record is written with its own OutputPluginPrepareWrite /
 * OutputPluginWrite pair, and the memory used while writing one change is
 * released right after it, so a transaction of any size is decoded in
 * constant memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/heapam.h"
#include "access/xact.h"
#include "common/base64.h"
#include "mb/pg_wchar.h"
#include "replication/logical.h"
#include "replication/origin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/varlena.h"

#include "pg_kappa.h"

/* change kinds the "actions" option can select */
#define ACTION_INSERT	0x01
#define ACTION_UPDATE	0x02
#define ACTION_DELETE	0x04
#define ACTION_TRUNCATE 0x08
#define ACTION_ALL		0x0f

typedef struct KappaOptions
{
	bool		include_xids;
	bool		include_timestamp;
	bool		include_lsn;
	bool		include_types;
	bool		include_origin;
	bool		include_messages;
	bool		skip_empty_xacts;
	bool		only_local;
	bool		streaming;
	bool		via_root;
	int			actions;		/* ACTION_* bits */
	List	   *message_prefixes;	/* of char *; NIL means all */
	List	   *table_patterns; /* see table_filter.c; NIL means all */
} KappaOptions;

/*
 * Settings that change what output functions print: the plugin decodes
 * with these, whatever the decoding session's own settings, so that the
 * same change is always written as the same bytes (and has the same
 * checksum).  Dates and times inside arrays, ranges and composites are
 * ISO 8601 in UTC like the top-level ones, intervals are ISO 8601
 * durations, floats are exact, bytea is hex, money uses the C locale, and
 * names that depend on search_path (types in "types", regclass values and
 * the like) are qualified unless in pg_catalog.
 */
static const char *const kappa_output_settings[][2] = {
	{"DateStyle", "ISO, YMD"},
	{"TimeZone", "UTC"},
	{"IntervalStyle", "iso_8601"},
	{"extra_float_digits", "1"},
	{"bytea_output", "hex"},
	{"lc_monetary", "C"},
	{"search_path", "pg_catalog"},
};
#define N_OUTPUT_SETTINGS lengthof(kappa_output_settings)

typedef struct KappaData
{
	MemoryContext context;		/* reset after every record */
	KappaOptions opt;
	bool		in_stream;		/* between stream_start and stream_stop */
	int			record_offset;	/* where the record being written starts
								 * in ctx->out (a walsender puts a message
								 * header before it) */

	/* how the output settings were set, to undo it at shutdown */
	bool		settings_pinned;
	int			guc_nestlevel;	/* > 0: in this GUC nest level ... */
	LocalTransactionId guc_lxid;	/* ... of this transaction */
	char	   *saved_settings[N_OUTPUT_SETTINGS];	/* else: the old values */
} KappaData;

/* Per top-level transaction, in txn->output_plugin_private. */
typedef struct KappaTxn
{
	bool		begun;			/* begin/begin_prepare written */
	bool		block_open;		/* streaming: stream_start written for the
								 * current block */
	bool		streamed;		/* streaming: some block was written */
	uint64		nchanges;
	pg_crc32c	crc;
} KappaTxn;

static void kappa_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt,
						  bool is_init);
static void kappa_shutdown(LogicalDecodingContext *ctx);
static bool kappa_filter_origin(LogicalDecodingContext *ctx,
								RepOriginId origin_id);
static void kappa_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn);
static void kappa_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						 XLogRecPtr commit_lsn);
static void kappa_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						 Relation relation, ReorderBufferChange *change);
static void kappa_truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						   int nrelations, Relation relations[],
						   ReorderBufferChange *change);
static void kappa_message(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						  XLogRecPtr lsn, bool transactional,
						  const char *prefix, Size sz, const char *message);
static void kappa_begin_prepare(LogicalDecodingContext *ctx,
								ReorderBufferTXN *txn);
static void kappa_prepare(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						  XLogRecPtr prepare_lsn);
static void kappa_commit_prepared(LogicalDecodingContext *ctx,
								  ReorderBufferTXN *txn,
								  XLogRecPtr commit_lsn);
static void kappa_rollback_prepared(LogicalDecodingContext *ctx,
									ReorderBufferTXN *txn,
									XLogRecPtr prepare_end_lsn,
									TimestampTz prepare_time);
static void kappa_stream_start(LogicalDecodingContext *ctx,
							   ReorderBufferTXN *txn);
static void kappa_stream_stop(LogicalDecodingContext *ctx,
							  ReorderBufferTXN *txn);
static void kappa_stream_abort(LogicalDecodingContext *ctx,
							   ReorderBufferTXN *txn, XLogRecPtr abort_lsn);
static void kappa_stream_prepare(LogicalDecodingContext *ctx,
								 ReorderBufferTXN *txn,
								 XLogRecPtr prepare_lsn);
static void kappa_stream_commit(LogicalDecodingContext *ctx,
								ReorderBufferTXN *txn, XLogRecPtr commit_lsn);

extern void _PG_output_plugin_init(OutputPluginCallbacks *cb);

void
_PG_output_plugin_init(OutputPluginCallbacks *cb)
{
	/* inside an apply worker, changes go to the batch, not to JSON */
	if (kappa_in_apply_worker)
	{
		kappa_sink_init_callbacks(cb);
		return;
	}

	cb->startup_cb = kappa_startup;
	cb->shutdown_cb = kappa_shutdown;
	cb->filter_by_origin_cb = kappa_filter_origin;
	cb->begin_cb = kappa_begin;
	cb->change_cb = kappa_change;
	cb->truncate_cb = kappa_truncate;
	cb->message_cb = kappa_message;
	cb->commit_cb = kappa_commit;
	cb->begin_prepare_cb = kappa_begin_prepare;
	cb->prepare_cb = kappa_prepare;
	cb->commit_prepared_cb = kappa_commit_prepared;
	cb->rollback_prepared_cb = kappa_rollback_prepared;
	cb->stream_start_cb = kappa_stream_start;
	cb->stream_stop_cb = kappa_stream_stop;
	cb->stream_abort_cb = kappa_stream_abort;
	cb->stream_prepare_cb = kappa_stream_prepare;
	cb->stream_commit_cb = kappa_stream_commit;
	cb->stream_change_cb = kappa_change;
	cb->stream_message_cb = kappa_message;
	cb->stream_truncate_cb = kappa_truncate;
}

/* ----------
 * Options
 * ----------
 */

static const char *const kappa_option_names =
"format-version, include-xids, include-timestamp, include-lsn, "
"include-types, include-origin, include-messages, skip-empty-xacts, "
"only-local, streaming, publish-via-root, tables, actions, message-prefixes";

static void
bad_option_value(DefElem *elem, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for pg_kappa option \"%s\": \"%s\"",
					elem->defname, elem->arg ? strVal(elem->arg) : ""),
			 errhint("%s", hint)));
}

static bool
bool_option(DefElem *elem)
{
	bool		result;

	if (elem->arg == NULL)
		return true;
	if (!parse_bool(strVal(elem->arg), &result))
		bad_option_value(elem, "Valid values are on, off, true, false, yes, no, 1 and 0.");
	return result;
}

static const char *
string_option(DefElem *elem)
{
	if (elem->arg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_kappa option \"%s\" requires a value",
						elem->defname)));
	return strVal(elem->arg);
}

static int
parse_actions(DefElem *elem)
{
	static const char *const hint =
		"Use a comma-separated list of insert, update, delete and truncate.";
	char	   *raw = pstrdup(string_option(elem));
	List	   *items;
	ListCell   *lc;
	int			actions = 0;

	if (!SplitIdentifierString(raw, ',', &items) || items == NIL)
		bad_option_value(elem, hint);
	foreach(lc, items)
	{
		const char *item = lfirst(lc);

		if (strcmp(item, "insert") == 0)
			actions |= ACTION_INSERT;
		else if (strcmp(item, "update") == 0)
			actions |= ACTION_UPDATE;
		else if (strcmp(item, "delete") == 0)
			actions |= ACTION_DELETE;
		else if (strcmp(item, "truncate") == 0)
			actions |= ACTION_TRUNCATE;
		else
			bad_option_value(elem, hint);
	}
	return actions;
}

/* Comma-separated, blanks around items ignored, empty items refused. */
static List *
parse_prefixes(DefElem *elem)
{
	char	   *raw = pstrdup(string_option(elem));
	List	   *result = NIL;
	char	   *item = raw;

	for (;;)
	{
		char	   *comma = strchr(item, ',');
		char	   *end;

		if (comma)
			*comma = '\0';
		while (*item == ' ')
			item++;
		end = item + strlen(item);
		while (end > item && end[-1] == ' ')
			*--end = '\0';
		if (*item == '\0')
			bad_option_value(elem, "Use a comma-separated list of non-empty message prefixes.");
		result = lappend(result, item);
		if (!comma)
			break;
		item = comma + 1;
	}
	return result;
}

static void
parse_options(List *options, KappaOptions *opt)
{
	ListCell   *lc;

	opt->include_xids = true;
	opt->include_timestamp = true;
	opt->include_lsn = true;
	opt->include_types = false;
	opt->include_origin = true;
	opt->include_messages = true;
	opt->skip_empty_xacts = true;
	opt->only_local = false;
	opt->streaming = false;
	opt->via_root = false;
	opt->actions = ACTION_ALL;
	opt->message_prefixes = NIL;
	opt->table_patterns = NIL;

	foreach(lc, options)
	{
		DefElem    *elem = lfirst(lc);
		const char *name = elem->defname;

		Assert(elem->arg == NULL || IsA(elem->arg, String));

		if (strcmp(name, "include-xids") == 0)
			opt->include_xids = bool_option(elem);
		else if (strcmp(name, "include-timestamp") == 0)
			opt->include_timestamp = bool_option(elem);
		else if (strcmp(name, "include-lsn") == 0)
			opt->include_lsn = bool_option(elem);
		else if (strcmp(name, "include-types") == 0)
			opt->include_types = bool_option(elem);
		else if (strcmp(name, "include-origin") == 0)
			opt->include_origin = bool_option(elem);
		else if (strcmp(name, "include-messages") == 0)
			opt->include_messages = bool_option(elem);
		else if (strcmp(name, "skip-empty-xacts") == 0)
			opt->skip_empty_xacts = bool_option(elem);
		else if (strcmp(name, "only-local") == 0)
			opt->only_local = bool_option(elem);
		else if (strcmp(name, "streaming") == 0)
			opt->streaming = bool_option(elem);
		else if (strcmp(name, "publish-via-root") == 0)
			opt->via_root = bool_option(elem);
		else if (strcmp(name, "actions") == 0)
			opt->actions = parse_actions(elem);
		else if (strcmp(name, "message-prefixes") == 0)
			opt->message_prefixes = parse_prefixes(elem);
		else if (strcmp(name, "tables") == 0)
			opt->table_patterns = kappa_parse_table_patterns(string_option(elem));
		else if (strcmp(name, "format-version") == 0)
		{
			if (strcmp(string_option(elem), "1") != 0)
				bad_option_value(elem, "The only format version is 1.");
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized pg_kappa option \"%s\"", name),
					 errhint("Valid options are: %s.", kappa_option_names)));
	}
}

/*
 * Inside a transaction (the SQL functions, or a caller's own), the settings
 * are saved in a GUC nest level of their own, which shutdown pops; an
 * error unwinds them with the transaction.  A walsender starts decoding
 * outside any transaction and runs each decoded transaction in one of its
 * own, which would unwind a nest level: there the settings are set for the
 * session and put back at shutdown.
 */
static void
pin_output_settings(LogicalDecodingContext *ctx, KappaData *data)
{
	GucAction	action = GUC_ACTION_SET;

	if (IsTransactionState())
	{
		data->guc_nestlevel = NewGUCNestLevel();
		data->guc_lxid = MyProc->lxid;
		action = GUC_ACTION_SAVE;
	}
	for (int i = 0; i < N_OUTPUT_SETTINGS; i++)
	{
		const char *name = kappa_output_settings[i][0];

		if (data->guc_nestlevel == 0)
			data->saved_settings[i] =
				MemoryContextStrdup(ctx->context,
									GetConfigOption(name, false, false));
		(void) set_config_option(name, kappa_output_settings[i][1],
								 PGC_USERSET, PGC_S_SESSION, action,
								 true, 0, false);
	}
	data->settings_pinned = true;
}

static void
unpin_output_settings(KappaData *data)
{
	if (!data->settings_pinned)
		return;
	data->settings_pinned = false;
	if (data->guc_nestlevel > 0)
	{
		/* if that transaction has ended, its end restored them */
		if (IsTransactionState() && MyProc->lxid == data->guc_lxid)
			AtEOXact_GUC(true, data->guc_nestlevel);
		return;
	}
	for (int i = 0; i < N_OUTPUT_SETTINGS; i++)
		(void) set_config_option(kappa_output_settings[i][0],
								 data->saved_settings[i],
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SET,
								 true, 0, false);
}

/*
 * For the apply worker, which decodes outside any transaction and writes
 * the event log with the same bytes as the plugin: set the output settings
 * for the session while it decodes (pin), and put the session's own values
 * back before it runs the views' queries (unpin).  In a transaction,
 * kappa_local_output_settings sets them until the caller's GUC nest level
 * ends.
 */
void
kappa_local_output_settings(void)
{
	for (int i = 0; i < N_OUTPUT_SETTINGS; i++)
		(void) set_config_option(kappa_output_settings[i][0], kappa_output_settings[i][1],
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
}

void
kappa_session_output_settings(bool pin)
{
	static char *saved[N_OUTPUT_SETTINGS];

	for (int i = 0; i < N_OUTPUT_SETTINGS; i++)
	{
		const char *name = kappa_output_settings[i][0];

		if (pin)
			saved[i] = MemoryContextStrdup(TopMemoryContext,
										   GetConfigOption(name, false, false));
		else if (saved[i] == NULL)
			continue;
		(void) set_config_option(name, pin ? kappa_output_settings[i][1] : saved[i],
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SET,
								 true, 0, false);
		if (!pin)
		{
			pfree(saved[i]);
			saved[i] = NULL;
		}
	}
}

static void
kappa_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt,
			  bool is_init)
{
	KappaData  *data;
	MemoryContext oldcxt;

	data = MemoryContextAllocZero(ctx->context, sizeof(KappaData));
	data->context = AllocSetContextCreate(ctx->context,
										  "pg_kappa record context",
										  ALLOCSET_DEFAULT_SIZES);

	/* options are kept for the whole session, in the plugin's context */
	oldcxt = MemoryContextSwitchTo(ctx->context);
	parse_options(ctx->output_plugin_options, &data->opt);
	MemoryContextSwitchTo(oldcxt);

	ctx->output_plugin_private = data;
	opt->output_type = OUTPUT_PLUGIN_TEXTUAL_OUTPUT;
	opt->receive_rewrites = false;

	/* stream in-progress transactions only when asked to */
	ctx->streaming &= data->opt.streaming;

	kappa_relinfo_init(ctx->context, data->opt.table_patterns,
					   data->opt.via_root);

	/* creating a slot or advancing one writes nothing */
	if (!is_init && !ctx->fast_forward)
	{
		kappa_json_startup(ctx->context);
		pin_output_settings(ctx, data);
	}
}

static void
kappa_shutdown(LogicalDecodingContext *ctx)
{
	unpin_output_settings(ctx->output_plugin_private);
	kappa_relinfo_reset();
}

static bool
kappa_filter_origin(LogicalDecodingContext *ctx, RepOriginId origin_id)
{
	KappaData  *data = ctx->output_plugin_private;

	return data->opt.only_local && origin_id != InvalidRepOriginId;
}

/* ----------
 * Record writing helpers
 * ----------
 */

static void
record_start(LogicalDecodingContext *ctx, const char *kind)
{
	KappaData  *data = ctx->output_plugin_private;

	OutputPluginPrepareWrite(ctx, true);
	data->record_offset = ctx->out->len;
	appendStringInfoString(ctx->out, "{\"kind\":\"");
	appendStringInfoString(ctx->out, kind);
	appendStringInfoChar(ctx->out, '"');
}

static void
record_end(LogicalDecodingContext *ctx)
{
	appendStringInfoChar(ctx->out, '}');
	OutputPluginWrite(ctx, true);
}

static void
field_xid(LogicalDecodingContext *ctx, const char *name, TransactionId xid)
{
	appendStringInfo(ctx->out, ",\"%s\":%u", name, xid);
}

static void
field_lsn(LogicalDecodingContext *ctx, const char *name, XLogRecPtr lsn)
{
	KappaData  *data = ctx->output_plugin_private;

	if (!data->opt.include_lsn)
		return;
	/* on every change record: no printf */
	appendBinaryStringInfo(ctx->out, ",\"", 2);
	appendStringInfoString(ctx->out, name);
	appendBinaryStringInfo(ctx->out, "\":", 2);
	kappa_json_lsn(ctx->out, lsn);
}

static void
field_time(LogicalDecodingContext *ctx, const char *name, TimestampTz t)
{
	KappaData  *data = ctx->output_plugin_private;

	if (!data->opt.include_timestamp)
		return;
	appendStringInfo(ctx->out, ",\"%s\":", name);
	kappa_json_time(ctx->out, t);
}

static void
field_gid(LogicalDecodingContext *ctx, const char *gid)
{
	appendStringInfoString(ctx->out, ",\"gid\":");
	kappa_json_cstring(ctx->out, gid);
}

/* Counts and checksums are written on commit, prepare and stream_commit. */
static void
field_checksum(LogicalDecodingContext *ctx, KappaTxn *state)
{
	pg_crc32c	crc = state->crc;

	FIN_CRC32C(crc);
	appendStringInfo(ctx->out, ",\"changes\":" UINT64_FORMAT ",\"checksum\":\"%08x\"",
					 state->nchanges, crc);
}

static KappaTxn *
txn_state_new(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	KappaTxn   *state;

	state = MemoryContextAllocZero(ctx->context, sizeof(KappaTxn));
	INIT_CRC32C(state->crc);
	txn->output_plugin_private = state;
	return state;
}

static void
txn_state_free(ReorderBufferTXN *txn)
{
	if (txn->output_plugin_private)
		pfree(txn->output_plugin_private);
	txn->output_plugin_private = NULL;
}

static KappaTxn *
txn_state(ReorderBufferTXN *txn)
{
	if (txn->toptxn)
		txn = txn->toptxn;
	return txn->output_plugin_private;
}

/* "origin" of a transaction that has one, when include-origin is on */
static void
field_origin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	KappaData  *data = ctx->output_plugin_private;
	char	   *origin;

	if (data->opt.include_origin && txn->origin_id != InvalidRepOriginId &&
		replorigin_by_oid(txn->origin_id, true, &origin))
	{
		appendStringInfoString(ctx->out, ",\"origin\":");
		kappa_json_cstring(ctx->out, origin);
	}
}

static void
write_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	KappaData  *data = ctx->output_plugin_private;
	KappaTxn   *state = txn->output_plugin_private;
	bool		prepared = rbtxn_prepared(txn);

	record_start(ctx, prepared ? "begin_prepare" : "begin");
	if (data->opt.include_xids)
		field_xid(ctx, "xid", txn->xid);
	if (prepared)
		field_gid(ctx, txn->gid);
	field_lsn(ctx, "lsn", txn->final_lsn);
	if (!prepared)
		field_time(ctx, "commit_time", txn->xact_time.commit_time);
	field_origin(ctx, txn);
	record_end(ctx);
	state->begun = true;
}

static void
write_stream_start(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	KappaTxn   *state = txn->output_plugin_private;

	record_start(ctx, "stream_start");
	field_xid(ctx, "xid", txn->xid);
	appendStringInfo(ctx->out, ",\"first\":%s",
					 state->streamed ? "false" : "true");
	field_origin(ctx, txn);
	record_end(ctx);
	state->block_open = true;
	state->streamed = true;
}

/*
 * Before the first record of a transaction (or of a streamed block) that
 * was delayed by skip-empty-xacts, write the opening record.
 */
static void
open_txn_if_needed(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	KappaData  *data = ctx->output_plugin_private;
	KappaTxn   *state;

	if (txn->toptxn)
		txn = txn->toptxn;
	state = txn->output_plugin_private;
	if (data->in_stream ? !state->block_open : !state->begun)
	{
		if (data->in_stream)
			write_stream_start(ctx, txn);
		else
			write_begin(ctx, txn);
	}
}

/* Account for the change record that is in ctx->out, then write it. */
static void
change_end(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	KappaData  *data = ctx->output_plugin_private;
	KappaTxn   *state = txn_state(txn);

	appendStringInfoChar(ctx->out, '}');
	/* the record's own bytes, not the walsender's message header */
	COMP_CRC32C(state->crc, ctx->out->data + data->record_offset,
				ctx->out->len - data->record_offset);
	COMP_CRC32C(state->crc, "\n", 1);
	state->nchanges++;
	OutputPluginWrite(ctx, true);
}

/* Streamed changes carry the xid of their (sub)transaction. */
static void
change_start(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			 const char *kind, TransactionId xid)
{
	KappaData  *data = ctx->output_plugin_private;

	open_txn_if_needed(ctx, txn);
	record_start(ctx, kind);
	if (data->in_stream)
		field_xid(ctx, "xid", xid);
}

/* ----------
 * Transactions
 * ----------
 */

static void
kappa_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	KappaData  *data = ctx->output_plugin_private;

	txn_state_new(ctx, txn);
	if (!data->opt.skip_empty_xacts)
		write_begin(ctx, txn);
}

static void
kappa_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			 XLogRecPtr commit_lsn)
{
	KappaData  *data = ctx->output_plugin_private;
	KappaTxn   *state = txn->output_plugin_private;

	if (state->begun)
	{
		record_start(ctx, "commit");
		if (data->opt.include_xids)
			field_xid(ctx, "xid", txn->xid);
		field_lsn(ctx, "lsn", commit_lsn);
		field_lsn(ctx, "end_lsn", txn->end_lsn);
		field_time(ctx, "commit_time", txn->xact_time.commit_time);
		field_checksum(ctx, state);
		record_end(ctx);
	}
	OutputPluginUpdateProgress(ctx, !state->begun);
	txn_state_free(txn);
}

static void
kappa_begin_prepare(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	kappa_begin(ctx, txn);
}

static void
kappa_prepare(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			  XLogRecPtr prepare_lsn)
{
	KappaData  *data = ctx->output_plugin_private;
	KappaTxn   *state = txn->output_plugin_private;

	if (state->begun)
	{
		record_start(ctx, "prepare");
		if (data->opt.include_xids)
			field_xid(ctx, "xid", txn->xid);
		field_gid(ctx, txn->gid);
		field_lsn(ctx, "lsn", prepare_lsn);
		field_lsn(ctx, "end_lsn", txn->end_lsn);
		field_time(ctx, "prepare_time", txn->xact_time.prepare_time);
		field_checksum(ctx, state);
		record_end(ctx);
	}
	OutputPluginUpdateProgress(ctx, !state->begun);
	txn_state_free(txn);
}

/*
 * COMMIT/ROLLBACK PREPARED are always written: the PREPARE they finish may
 * have been decoded in an earlier session, so whether it was empty is not
 * known here.
 */
static void
kappa_commit_prepared(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
					  XLogRecPtr commit_lsn)
{
	KappaData  *data = ctx->output_plugin_private;

	record_start(ctx, "commit_prepared");
	if (data->opt.include_xids)
		field_xid(ctx, "xid", txn->xid);
	field_gid(ctx, txn->gid);
	field_lsn(ctx, "lsn", commit_lsn);
	field_lsn(ctx, "end_lsn", txn->end_lsn);
	field_time(ctx, "commit_time", txn->xact_time.commit_time);
	record_end(ctx);
}

static void
kappa_rollback_prepared(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						XLogRecPtr prepare_end_lsn, TimestampTz prepare_time)
{
	KappaData  *data = ctx->output_plugin_private;

	record_start(ctx, "rollback_prepared");
	if (data->opt.include_xids)
		field_xid(ctx, "xid", txn->xid);
	field_gid(ctx, txn->gid);
	/* the ROLLBACK PREPARED record, then the PREPARE it undoes */
	field_lsn(ctx, "lsn", txn->final_lsn);
	field_lsn(ctx, "end_lsn", txn->end_lsn);
	field_lsn(ctx, "prepare_end_lsn", prepare_end_lsn);
	field_time(ctx, "prepare_time", prepare_time);
	field_time(ctx, "rollback_time", txn->xact_time.commit_time);
	record_end(ctx);
}

/* ----------
 * Streaming of in-progress transactions
 * ----------
 */

static void
kappa_stream_start(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	KappaData  *data = ctx->output_plugin_private;

	if (txn->output_plugin_private == NULL)
		txn_state_new(ctx, txn);
	data->in_stream = true;
	if (!data->opt.skip_empty_xacts)
		write_stream_start(ctx, txn);
}

static void
kappa_stream_stop(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	KappaData  *data = ctx->output_plugin_private;
	KappaTxn   *state = txn->output_plugin_private;

	data->in_stream = false;
	if (!state->block_open)
		return;
	record_start(ctx, "stream_stop");
	field_xid(ctx, "xid", txn->xid);
	record_end(ctx);
	state->block_open = false;
}

static void
kappa_stream_abort(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
				   XLogRecPtr abort_lsn)
{
	ReorderBufferTXN *toptxn = txn->toptxn ? txn->toptxn : txn;
	KappaTxn   *state = toptxn->output_plugin_private;

	if (state != NULL && state->streamed)
	{
		record_start(ctx, "stream_abort");
		field_xid(ctx, "xid", toptxn->xid);
		field_xid(ctx, "subxid", txn->xid);
		record_end(ctx);
	}
	if (txn == toptxn)
		txn_state_free(txn);
}

static void
stream_finish(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			  const char *kind, XLogRecPtr lsn, bool prepared)
{
	KappaTxn   *state = txn->output_plugin_private;

	if (state != NULL && state->streamed)
	{
		record_start(ctx, kind);
		field_xid(ctx, "xid", txn->xid);
		if (prepared)
			field_gid(ctx, txn->gid);
		field_lsn(ctx, "lsn", lsn);
		field_lsn(ctx, "end_lsn", txn->end_lsn);
		if (prepared)
			field_time(ctx, "prepare_time", txn->xact_time.prepare_time);
		else
			field_time(ctx, "commit_time", txn->xact_time.commit_time);
		field_checksum(ctx, state);
		record_end(ctx);
	}
	OutputPluginUpdateProgress(ctx, state == NULL || !state->streamed);
	txn_state_free(txn);
}

static void
kappa_stream_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
					XLogRecPtr commit_lsn)
{
	stream_finish(ctx, txn, "stream_commit", commit_lsn, false);
}

static void
kappa_stream_prepare(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
					 XLogRecPtr prepare_lsn)
{
	stream_finish(ctx, txn, "stream_prepare", prepare_lsn, true);
}

/* ----------
 * Changes
 * ----------
 */

static void
kappa_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			 Relation relation, ReorderBufferChange *change)
{
	KappaData  *data = ctx->output_plugin_private;
	KappaRelInfo *ri = kappa_relinfo_get(relation);
	TupleDesc	desc = RelationGetDescr(relation);
	HeapTuple	oldtuple = NULL;
	HeapTuple	newtuple = NULL;
	const char *kind;
	int			action;
	MemoryContext oldcxt;

	switch (change->action)
	{
		case REORDER_BUFFER_CHANGE_INSERT:
			kind = "insert";
			action = ACTION_INSERT;
			break;
		case REORDER_BUFFER_CHANGE_UPDATE:
			kind = "update";
			action = ACTION_UPDATE;
			break;
		case REORDER_BUFFER_CHANGE_DELETE:
			kind = "delete";
			action = ACTION_DELETE;
			break;
		default:
			elog(ERROR, "unexpected change action %d", (int) change->action);
			return;
	}
	if (!ri->included || (data->opt.actions & action) == 0)
		return;

	if (change->data.tp.oldtuple)
		oldtuple = &change->data.tp.oldtuple->tuple;
	if (change->data.tp.newtuple)
		newtuple = &change->data.tp.newtuple->tuple;

	oldcxt = MemoryContextSwitchTo(data->context);
	change_start(ctx, txn, kind, change->txn->xid);
	kappa_write_change_fields(ctx->out, ri, desc, change->lsn,
							  data->opt.include_lsn, data->opt.include_types,
							  oldtuple, newtuple);
	change_end(ctx, txn);

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(data->context);
}

/*
 * With publish-via-root, a partition that is truncated together with its
 * root is covered by the root's entry.  A partition truncated without its
 * root is written under its own name: naming the root would tell the
 * consumer to empty every partition.
 */
static bool
truncated_with_root(KappaRelInfo *ri, int nrelations, Relation relations[])
{
	for (int i = 0; i < nrelations; i++)
	{
		if (RelationGetRelid(relations[i]) == ri->report_relid)
			return true;
	}
	return false;
}

static void
kappa_truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			   int nrelations, Relation relations[],
			   ReorderBufferChange *change)
{
	KappaData  *data = ctx->output_plugin_private;
	MemoryContext oldcxt;
	Oid		   *written;
	int			nwritten = 0;

	if ((data->opt.actions & ACTION_TRUNCATE) == 0)
		return;

	oldcxt = MemoryContextSwitchTo(data->context);
	written = palloc(sizeof(Oid) * nrelations);
	for (int i = 0; i < nrelations; i++)
	{
		KappaRelInfo *ri = kappa_relinfo_get(relations[i]);
		Oid			relid = ri->report_relid;
		bool		dup = false;

		if (!ri->included)
			continue;
		if (relid != ri->relid &&
			!truncated_with_root(ri, nrelations, relations))
			relid = ri->relid;
		/* with publish-via-root, partitions of one root collapse */
		for (int j = 0; j < nwritten; j++)
			dup |= (written[j] == relid);
		if (dup)
			continue;

		if (nwritten == 0)
		{
			change_start(ctx, txn, "truncate", change->txn->xid);
			field_lsn(ctx, "lsn", change->lsn);
			appendStringInfoString(ctx->out, ",\"relations\":[{");
		}
		else
			appendStringInfoString(ctx->out, ",{");
		if (relid == ri->report_relid)
			appendStringInfoString(ctx->out, ri->qualname);
		else
		{
			appendStringInfoString(ctx->out, "\"schema\":");
			kappa_json_cstring(ctx->out,
							   get_namespace_name(RelationGetNamespace(relations[i])));
			appendStringInfoString(ctx->out, ",\"table\":");
			kappa_json_cstring(ctx->out, RelationGetRelationName(relations[i]));
		}
		appendStringInfoChar(ctx->out, '}');
		written[nwritten++] = relid;
	}
	if (nwritten > 0)
	{
		appendStringInfo(ctx->out, "],\"cascade\":%s,\"restart_identity\":%s",
						 change->data.truncate.cascade ? "true" : "false",
						 change->data.truncate.restart_seqs ? "true" : "false");
		change_end(ctx, txn);
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(data->context);
}

static bool
prefix_wanted(KappaOptions *opt, const char *prefix)
{
	ListCell   *lc;

	if (opt->message_prefixes == NIL)
		return true;
	foreach(lc, opt->message_prefixes)
	{
		if (strcmp(prefix, lfirst(lc)) == 0)
			return true;
	}
	return false;
}

static void
kappa_message(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			  XLogRecPtr lsn, bool transactional, const char *prefix,
			  Size sz, const char *message)
{
	KappaData  *data = ctx->output_plugin_private;
	MemoryContext oldcxt;
	bool		is_text;

	if (!data->opt.include_messages || !prefix_wanted(&data->opt, prefix))
		return;

	oldcxt = MemoryContextSwitchTo(data->context);
	if (transactional)
		change_start(ctx, txn, "message", txn->xid);
	else
		record_start(ctx, "message");
	appendStringInfo(ctx->out, ",\"transactional\":%s",
					 transactional ? "true" : "false");
	field_lsn(ctx, "lsn", lsn);
	appendStringInfoString(ctx->out, ",\"prefix\":");
	kappa_json_cstring(ctx->out, prefix);
	appendStringInfoString(ctx->out, ",\"content\":");

	/* text when valid in the database encoding (NUL bytes are not) */
	is_text = pg_verifymbstr(message, sz, true);
	if (is_text)
		kappa_json_string(ctx->out, message, sz);
	else
	{
		char	   *b64 = palloc(pg_b64_enc_len(sz) + 1);
		int			n = pg_b64_encode(message, sz, b64, pg_b64_enc_len(sz));

		kappa_json_string(ctx->out, b64, n);
	}
	appendStringInfo(ctx->out, ",\"content_encoding\":\"%s\"",
					 is_text ? "text" : "base64");
	if (transactional)
		change_end(ctx, txn);
	else
		record_end(ctx);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(data->context);
}
