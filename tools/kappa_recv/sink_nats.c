/*-------------------------------------------------------------------------
 *
 * sink_nats.c
 *	  The NATS JetStream sink of kappa_recv (--nats URL --nats-stream NAME
 *	  --nats-subject SUBJECT).
 *
 * Owns: the connection to NATS (libnats, with its own reconnection to any
 * server of the cluster), checking or creating the stream, and publishing
 * each verified unit as one JetStream message whose body is the unit's
 * records, one per line, exactly as the file sink writes them.  A unit
 * larger than what one message may carry (the server's max_payload, or the
 * stream's max_msg_size, less room for headers) is cut into numbered parts
 * whose bodies, concatenated, give the unit.  Every message carries
 *
 *	Kappa-Slot, Kappa-Xid, Kappa-Commit-Lsn, Kappa-End-Lsn, Kappa-Changes,
 *	Kappa-Checksum (the transaction's CRC-32C, as in its commit record),
 *	Kappa-Part, Kappa-Parts, Kappa-Part-Checksum (CRC-32C of this body),
 *	Nats-Msg-Id "<slot>:<commit LSN>:<part>"
 *
 * Exactly once: commit() returns only when JetStream acknowledged (PubAck)
 * every part, in order, so consume.c acknowledges the slot position only
 * after that (sync_on_commit).  The stream itself is the state: open()
 * reads the subject's last message and resumes after the unit it belongs
 * to; when that message is part k of n, the unit is asked for again
 * (from its commit LSN) and only parts k+1..n are published.  A publish
 * that fails without an answer (timeout, connection lost, leader election)
 * is retried with backoff; before each retry the subject's last message is
 * read, and when it is the part being published, that part was stored and
 * is not sent again.  Each publish also names the subject's expected last
 * sequence, so a second publisher on the subject is detected instead of
 * interleaved.  The duplicate window (Nats-Msg-Id) is a further guard, not
 * the mechanism.
 *
 * With -F, one-part units are published ahead of their PubAcks (a window of
 * at most WINDOW_MSGS messages), each naming the subject sequence it must
 * follow, predicted from the previous one, so the stream holds a prefix of
 * the window whatever fails; sync() waits for the window's PubAcks (an ack
 * handler records them) and publishes what is beyond the stored prefix one
 * by one.  The slot is acknowledged only after sync().
 *
 * Does not own: verification (verify.c), when units count (consume.c), the
 * exit codes (kappa_recv.h).  Built only when libnats is found; otherwise
 * sink_nats_supported is false and main.c refuses --nats.
 *
 * tools/kappa_recv/sink_nats.c
 *
 *-------------------------------------------------------------------------
 */
#include "kappa_recv.h"

#include "common/logging.h"

#ifndef HAVE_LIBNATS

const bool	sink_nats_supported = false;

KRSink *
sink_nats_create(void)
{
	return NULL;
}

#else							/* HAVE_LIBNATS */

#include <limits.h>
#include <pthread.h>

#include <nats/nats.h>

const bool	sink_nats_supported = true;

/* status of the last js_GetLastMsg() */
static natsStatus last_error = NATS_OK;

/* room left in each message for the headers */
#define HEADER_RESERVE		1024
/* first wait before retrying a publish (ms) */
#define RETRY_FIRST_MS		100
/* most messages and bytes published ahead of their PubAcks (-F) */
#define WINDOW_MSGS			512
#define WINDOW_BYTES		(8 * 1024 * 1024)
/* how long open() waits for JetStream to answer (ms) */
#define OPEN_PATIENCE_MS	60000

typedef struct NatsSink
{
	natsConnection *nc;
	jsCtx	   *js;
	size_t		part_size;		/* body bytes per message */
	uint64		last_seq;		/* stream sequence of our last message, 0 if
								 * none */
	bool		expect_seq;		/* publish with the expected last sequence
								 * (limits retention only: other policies
								 * remove messages once consumed) */

	/* the open unit: in memory up to part_size, then in a spool file */
	char	   *buf;
	size_t		buflen;
	FILE	   *spool;
	uint64		spooled;

	/* a unit of which the stream holds the first parts (from open()) */
	XLogRecPtr	partial_commit_lsn;
	int			partial_done;
	int			partial_parts;

	/*
	 * -F: units published without waiting for their PubAcks, in order.  The
	 * ack handler (a libnats thread) fills in state and seq under 'lock';
	 * everything else is the main thread's.
	 */
	struct WindowEntry *window;
	int			nwindow;
	size_t		window_bytes;
	pthread_mutex_t lock;
} NatsSink;

typedef enum WindowState
{
	WIN_PENDING,
	WIN_STORED,
	WIN_FAILED
} WindowState;

typedef struct WindowEntry
{
	char		id[128];		/* Nats-Msg-Id */
	KRUnitInfo	info;
	char	   *body;
	size_t		len;
	WindowState state;
	uint64		seq;			/* WIN_STORED: its stream sequence */
	natsStatus	err;			/* WIN_FAILED: why */
	jsErrCode	jerr;
	char		errtext[256];
} WindowEntry;

/* The text of a failed call: libnats' last error, or the status' name. */
static const char *
nats_error_text(natsStatus s)
{
	natsStatus	last;
	const char *text = nats_GetLastError(&last);

	if (text != NULL && text[0] != '\0')
		return text;
	return natsStatus_GetText(s);
}

/*
 * Failures that may go away by themselves: no answer in time (a JetStream
 * leader election, a server that died), the connection being
 * re-established.
 */
static bool
transient(natsStatus s)
{
	return s == NATS_TIMEOUT || s == NATS_CONNECTION_DISCONNECTED ||
		s == NATS_STALE_CONNECTION || s == NATS_IO_ERROR ||
		s == NATS_NOT_YET_CONNECTED;
}

/* ... or JetStream's own answer while a cluster elects its leaders */
static bool
transient_js(natsStatus s, jsErrCode jerr)
{
	return transient(s) || jerr == JSClusterNotAvailErr;
}

/* A NATS message header's value, or NULL. */
static const char *
header(natsMsg *msg, const char *key)
{
	const char *val = NULL;

	if (natsMsgHeader_Get(msg, key, &val) != NATS_OK)
		return NULL;
	return val;
}

/* A header holding a positive integer, as *v; false when absent or bad. */
static bool
parse_int_header(natsMsg *msg, const char *key, int *v)
{
	const char *s = header(msg, key);
	char	   *end;
	long		l;

	if (s == NULL)
		return false;
	errno = 0;
	l = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || l < 1 || l > INT_MAX)
		return false;
	*v = (int) l;
	return true;
}

/* Nats-Msg-Id of a part: "<slot>:<commit LSN>:<part>". */
static void
msg_id(char *buf, size_t size, const KRUnitInfo *info, int part)
{
	XLogRecPtr	lsn = info->commit_lsn != InvalidXLogRecPtr ?
		info->commit_lsn : info->position;

	snprintf(buf, size, "%s:%X/%X:%d", kr_opt.slot, LSN_FORMAT_ARGS(lsn), part);
}

/*
 * Look up the stream; create it with --nats-create-stream.  Also bounds the
 * part size by the stream's max_msg_size.
 */
static bool
check_stream(NatsSink *ns, bool *again)
{
	jsStreamInfo *si = NULL;
	jsErrCode	jerr = 0;
	natsStatus	s;
	jsOptions	jo;

	jsOptions_Init(&jo);
	jo.Wait = kr_opt.nats_timeout_ms;
	s = js_GetStreamInfo(&si, ns->js, kr_opt.nats_stream, &jo, &jerr);
	if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
	{
		jsStreamConfig cfg;
		const char *subjects[1];

		if (!kr_opt.nats_create_stream)
		{
			pg_log_error("NATS JetStream stream \"%s\" does not exist",
						 kr_opt.nats_stream);
			pg_log_error_hint("Create it (its subjects must include \"%s\"), or pass --nats-create-stream.",
							  kr_opt.nats_subject);
			return false;
		}
		jsStreamConfig_Init(&cfg);
		subjects[0] = kr_opt.nats_subject;
		cfg.Name = kr_opt.nats_stream;
		cfg.Subjects = subjects;
		cfg.SubjectsLen = 1;
		cfg.Storage = js_FileStorage;
		cfg.Replicas = kr_opt.nats_replicas;
		cfg.Retention = kr_opt.nats_retention == KR_NATS_INTEREST ? js_InterestPolicy :
			kr_opt.nats_retention == KR_NATS_WORKQUEUE ? js_WorkQueuePolicy :
			js_LimitsPolicy;
		cfg.MaxAge = (int64) kr_opt.nats_max_age_s * 1000000000;
		cfg.MaxBytes = kr_opt.nats_max_bytes > 0 ? (int64) kr_opt.nats_max_bytes : -1;
		jerr = 0;
		s = js_AddStream(&si, ns->js, &cfg, &jo, &jerr);
		if (s != NATS_OK)
		{
			*again = transient_js(s, jerr);
			pg_log_generic(*again ? PG_LOG_WARNING : PG_LOG_ERROR, PG_LOG_PRIMARY,
						   "could not create NATS JetStream stream \"%s\": %s",
						   kr_opt.nats_stream, nats_error_text(s));
			if (jerr == JSStreamReplicasNotSupportedErr || jerr == JSClusterNoPeersErr)
				pg_log_error_hint("--nats-replicas %d needs a NATS cluster with at least that many JetStream servers.",
								  kr_opt.nats_replicas);
			return false;
		}
		pg_log_info("created NATS JetStream stream \"%s\" for subject \"%s\" with %d replica(s)",
					kr_opt.nats_stream, kr_opt.nats_subject, kr_opt.nats_replicas);
	}
	else if (s != NATS_OK)
	{
		*again = transient_js(s, jerr);
		pg_log_generic(*again ? PG_LOG_WARNING : PG_LOG_ERROR, PG_LOG_PRIMARY,
					   "could not look up NATS JetStream stream \"%s\": %s",
					   kr_opt.nats_stream, nats_error_text(s));
		if (s == NATS_NO_RESPONDERS)
			pg_log_error_hint("Is JetStream enabled on the NATS server (nats-server -js)?");
		return false;
	}
	if (si->Config->MaxMsgSize > 0 &&
		(size_t) si->Config->MaxMsgSize < ns->part_size + HEADER_RESERVE)
	{
		if (si->Config->MaxMsgSize <= 2 * HEADER_RESERVE)
		{
			pg_log_error("NATS JetStream stream \"%s\" allows messages of only %d bytes",
						 kr_opt.nats_stream, (int) si->Config->MaxMsgSize);
			jsStreamInfo_Destroy(si);
			return false;
		}
		ns->part_size = si->Config->MaxMsgSize - HEADER_RESERVE;
	}
	ns->expect_seq = si->Config->Retention == js_LimitsPolicy;
	jsStreamInfo_Destroy(si);
	return true;
}

/*
 * Read the subject's last message.  *msg is NULL when the subject has none.
 * Returns false (after logging at 'level') when the stream cannot be asked.
 */
static bool
last_message(NatsSink *ns, natsMsg **msg, enum pg_log_level level)
{
	jsErrCode	jerr = 0;
	jsOptions	jo;
	natsStatus	s;

	*msg = NULL;
	jsOptions_Init(&jo);
	jo.Wait = kr_opt.nats_timeout_ms;
	s = js_GetLastMsg(msg, ns->js, kr_opt.nats_stream, kr_opt.nats_subject,
					  &jo, &jerr);
	last_error = s;
	if (s == NATS_OK)
		return true;
	*msg = NULL;
	if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
		return true;
	if (jerr == JSClusterNotAvailErr)
		last_error = NATS_TIMEOUT;	/* as good as no answer: ask again */
	pg_log_generic(level, PG_LOG_PRIMARY,
				   "could not read the last message of subject \"%s\" from NATS JetStream stream \"%s\": %s",
				   kr_opt.nats_subject, kr_opt.nats_stream, nats_error_text(s));
	return false;
}

/*
 * Set the resume position from the subject's last message, which must be
 * one of this slot's.
 */
static int
resume_from(NatsSink *ns, natsMsg *msg, KRState *state)
{
	const char *slot = header(msg, "Kappa-Slot");
	const char *clsn = header(msg, "Kappa-Commit-Lsn");
	const char *elsn = header(msg, "Kappa-End-Lsn");
	const char *xid = header(msg, "Kappa-Xid");
	XLogRecPtr	commit_lsn;
	XLogRecPtr	end_lsn;
	int			part;
	int			parts;

	if (slot == NULL || clsn == NULL || elsn == NULL ||
		!kr_parse_lsn(clsn, strlen(clsn), &commit_lsn) ||
		!kr_parse_lsn(elsn, strlen(elsn), &end_lsn) ||
		!parse_int_header(msg, "Kappa-Part", &part) ||
		!parse_int_header(msg, "Kappa-Parts", &parts) || part > parts)
	{
		pg_log_error("the last message of subject \"%s\" in NATS JetStream stream \"%s\" was not published by kappa_recv",
					 kr_opt.nats_subject, kr_opt.nats_stream);
		pg_log_error_detail("It lacks valid Kappa-Slot, Kappa-Commit-Lsn, Kappa-End-Lsn, Kappa-Part or Kappa-Parts headers.");
		pg_log_error_hint("Give kappa_recv a subject of its own.");
		return KR_EXIT_STATE;
	}
	if (strcmp(slot, kr_opt.slot) != 0)
	{
		pg_log_error("subject \"%s\" of NATS JetStream stream \"%s\" belongs to slot \"%s\", not \"%s\"",
					 kr_opt.nats_subject, kr_opt.nats_stream, slot, kr_opt.slot);
		pg_log_error_hint("Each slot needs its own subject.");
		return KR_EXIT_STATE;
	}
	ns->last_seq = natsMsg_GetSequence(msg);
	strlcpy(state->xid, xid ? xid : "", sizeof(state->xid));
	state->commit_lsn = commit_lsn;
	if (part == parts)
	{
		state->position = end_lsn;
		if (kr_opt.verbose)
			pg_log_info("stream \"%s\" holds everything up to the transaction committed at %X/%X; resuming after it",
						kr_opt.nats_stream, LSN_FORMAT_ARGS(commit_lsn));
	}
	else
	{
		/* ask for this unit again; its first parts are stored */
		state->position = commit_lsn;
		ns->partial_commit_lsn = commit_lsn;
		ns->partial_done = part;
		ns->partial_parts = parts;
		pg_log_info("stream \"%s\" holds %d of the %d parts of the transaction committed at %X/%X; publishing the rest",
					kr_opt.nats_stream, part, parts, LSN_FORMAT_ARGS(commit_lsn));
	}
	return KR_EXIT_OK;
}

/*
 * Give libnats the server list: --nats takes URLs separated by commas, and
 * natsOptions_SetURL() takes only one.
 */
static natsStatus
set_servers(natsOptions *opts, const char *urls)
{
	char	   *copy = pstrdup(urls);
	const char **list = palloc(sizeof(char *) * (strlen(urls) / 2 + 2));
	int			n = 0;
	char	   *save;
	char	   *tok;
	natsStatus	s;

	for (tok = strtok_r(copy, ", ", &save); tok != NULL;
		 tok = strtok_r(NULL, ", ", &save))
		list[n++] = tok;
	if (n == 0)
		s = NATS_INVALID_ARG;
	else
		s = natsOptions_SetServers(opts, list, n);
	pfree(list);
	pfree(copy);
	return s;
}

/*
 * PubAck (or failure) of a message published ahead (-F): record it in its
 * window entry, found by Nats-Msg-Id.  Runs in a libnats thread: no logging
 * here.  A late answer for an entry no longer in the window is ignored.
 */
static void
on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	NatsSink   *ns = closure;
	const char *id = header(msg, "Nats-Msg-Id");
	int			i;

	(void) js;
	pthread_mutex_lock(&ns->lock);
	for (i = 0; id != NULL && i < ns->nwindow; i++)
	{
		WindowEntry *e = &ns->window[i];

		if (strcmp(e->id, id) != 0)
			continue;
		if (pa != NULL)
		{
			e->state = WIN_STORED;
			e->seq = pa->Sequence;
		}
		else
		{
			e->state = WIN_FAILED;
			e->err = pae ? pae->Err : NATS_ERR;
			e->jerr = pae ? pae->ErrCode : 0;
			strlcpy(e->errtext, pae && pae->ErrText ? pae->ErrText :
					natsStatus_GetText(e->err), sizeof(e->errtext));
		}
		break;
	}
	pthread_mutex_unlock(&ns->lock);
	natsMsg_Destroy(msg);
}

/*
 * Connect, check (or create) the stream, and set the resume position from
 * the subject's last message.
 */
static int
nats_open(KRSink *sink, KRState *state)
{
	NatsSink   *ns = sink->private_data;
	natsOptions *opts = NULL;
	natsStatus	s;
	natsMsg    *msg;
	int64		max_payload;
	int			rc;
	int			wait_ms = RETRY_FIRST_MS;
	int64		started = kr_now_ms();
	jsOptions	jo;

	if (natsOptions_Create(&opts) != NATS_OK ||
		set_servers(opts, kr_opt.nats_url) != NATS_OK ||
		natsOptions_SetName(opts, "kappa_recv") != NATS_OK ||
		natsOptions_SetTimeout(opts, kr_opt.nats_timeout_ms) != NATS_OK ||
		natsOptions_SetAllowReconnect(opts, true) != NATS_OK ||
		natsOptions_SetMaxReconnect(opts, -1) != NATS_OK ||
		natsOptions_SetReconnectWait(opts, 200) != NATS_OK)
	{
		pg_log_error("invalid NATS server URL \"%s\": %s", kr_opt.nats_url,
					 nats_error_text(NATS_INVALID_ARG));
		natsOptions_Destroy(opts);
		return KR_EXIT_USAGE;
	}
	s = natsConnection_Connect(&ns->nc, opts);
	natsOptions_Destroy(opts);
	if (s != NATS_OK)
	{
		pg_log_error("could not connect to NATS server \"%s\": %s",
					 kr_opt.nats_url, nats_error_text(s));
		return KR_EXIT_SINK;
	}
	jsOptions_Init(&jo);
	jo.PublishAsync.AckHandler = on_ack;
	jo.PublishAsync.AckHandlerClosure = ns;
	jo.PublishAsync.MaxPending = 2 * WINDOW_MSGS;
	if (natsConnection_JetStream(&ns->js, ns->nc, &jo) != NATS_OK)
	{
		pg_log_error("could not open a JetStream context: %s",
					 nats_error_text(NATS_ERR));
		return KR_EXIT_SINK;
	}
	max_payload = natsConnection_GetMaxPayload(ns->nc);
	if (max_payload <= 2 * HEADER_RESERVE)
	{
		pg_log_error("NATS server \"%s\" accepts messages of only %lld bytes",
					 kr_opt.nats_url, (long long) max_payload);
		return KR_EXIT_SINK;
	}
	/* the stream and its last message; retry while the cluster settles */
	for (;;)
	{
		bool		again = false;

		last_error = NATS_OK;
		ns->part_size = max_payload - HEADER_RESERVE;
		if (check_stream(ns, &again) &&
			last_message(ns, &msg, PG_LOG_WARNING))
			break;
		if (!again && !transient(last_error))
			return KR_EXIT_SINK;
		if (kr_opt.reconnect_max_ms == 0 || kr_stop_requested ||
			kr_now_ms() - started > OPEN_PATIENCE_MS)
		{
			pg_log_error("NATS JetStream does not answer for stream \"%s\"",
						 kr_opt.nats_stream);
			return KR_EXIT_SINK;
		}
		pg_log_info("trying again in %d ms", wait_ms);
		kr_sleep_ms(wait_ms);
		wait_ms = Min(wait_ms * 2, Max(kr_opt.reconnect_max_ms, RETRY_FIRST_MS));
	}
	ns->buf = palloc(ns->part_size);
	if (msg == NULL)
	{
		/* nothing published yet: the slot's position is the start */
		state->position = InvalidXLogRecPtr;
		return KR_EXIT_OK;
	}
	rc = resume_from(ns, msg, state);
	natsMsg_Destroy(msg);
	return rc;
}

/* A unit starts: nothing of it is kept yet. */
static bool
nats_begin(KRSink *sink)
{
	NatsSink   *ns = sink->private_data;

	ns->buflen = 0;
	ns->spooled = 0;
	return true;
}

/* Move the open unit from memory to the spool file. */
static bool
spill(NatsSink *ns)
{
	if (ns->spool == NULL)
	{
		ns->spool = tmpfile();
		if (ns->spool == NULL)
		{
			pg_log_error("could not create temporary spool file: %m");
			return false;
		}
	}
	if (ns->spooled == 0 && fseeko(ns->spool, 0, SEEK_SET) != 0)
	{
		pg_log_error("could not seek in temporary spool file: %m");
		return false;
	}
	if (ns->buflen > 0 &&
		fwrite(ns->buf, 1, ns->buflen, ns->spool) != ns->buflen)
	{
		pg_log_error("could not write to temporary spool file: %m");
		return false;
	}
	ns->spooled += ns->buflen;
	ns->buflen = 0;
	return true;
}

/* Add bytes to the open unit: in memory while it fits in one part. */
static bool
append(NatsSink *ns, const char *data, size_t len)
{
	if (ns->spooled > 0 || ns->buflen + len > ns->part_size)
	{
		if (!spill(ns))
			return false;
		if (fwrite(data, 1, len, ns->spool) != len)
		{
			pg_log_error("could not write to temporary spool file: %m");
			return false;
		}
		ns->spooled += len;
		return true;
	}
	memcpy(ns->buf + ns->buflen, data, len);
	ns->buflen += len;
	return true;
}

/* One record of the open unit, with its newline. */
static bool
nats_write(KRSink *sink, const char *line, size_t len)
{
	NatsSink   *ns = sink->private_data;

	return append(ns, line, len) && append(ns, "\n", 1);
}

/* Forget the open unit: nothing of it was published. */
static bool
nats_abort(KRSink *sink)
{
	return nats_begin(sink);
}

/* Build one part's message with its headers. */
static natsMsg *
make_part(NatsSink *ns, const KRUnitInfo *info, const char *body,
		  size_t len, int part, int parts)
{
	natsMsg    *msg = NULL;
	char		num[32];
	pg_crc32c	crc;
	natsStatus	s;

	s = natsMsg_Create(&msg, kr_opt.nats_subject, NULL, body, (int) len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(msg, "Kappa-Slot", kr_opt.slot);
	if (s == NATS_OK && info->xid[0])
		s = natsMsgHeader_Set(msg, "Kappa-Xid", info->xid);
	snprintf(num, sizeof(num), "%X/%X", LSN_FORMAT_ARGS(info->commit_lsn != InvalidXLogRecPtr ?
														info->commit_lsn : info->position));
	if (s == NATS_OK)
		s = natsMsgHeader_Set(msg, "Kappa-Commit-Lsn", num);
	snprintf(num, sizeof(num), "%X/%X", LSN_FORMAT_ARGS(info->position));
	if (s == NATS_OK)
		s = natsMsgHeader_Set(msg, "Kappa-End-Lsn", num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long) info->changes);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(msg, "Kappa-Changes", num);
	if (s == NATS_OK && info->checksum[0])
		s = natsMsgHeader_Set(msg, "Kappa-Checksum", info->checksum);
	snprintf(num, sizeof(num), "%d", part);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(msg, "Kappa-Part", num);
	snprintf(num, sizeof(num), "%d", parts);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(msg, "Kappa-Parts", num);
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, body, len);
	FIN_CRC32C(crc);
	snprintf(num, sizeof(num), "%08x", crc);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(msg, "Kappa-Part-Checksum", num);
	if (s != NATS_OK)
	{
		pg_log_error("could not build NATS message: %s", nats_error_text(s));
		natsMsg_Destroy(msg);
		return NULL;
	}
	(void) ns;
	return msg;
}

/*
 * After a publish got no answer, or was refused because the subject's last
 * sequence was not the expected one: is the part stored?  It is when the
 * subject's last message is this part, or a later part or unit of this slot
 * (what is stored is always a prefix of what was published: every publish
 * names the sequence it must follow).  Returns false when the stream could
 * not be asked; sets *stored, and *other when the last message is not one
 * of this slot's (another publisher on the subject).  Brings last_seq up to
 * date.
 */
static bool
part_was_stored(NatsSink *ns, const char *id, const KRUnitInfo *info,
				int part, bool *stored, bool *other)
{
	natsMsg    *last;
	const char *lastid;
	const char *slot;
	const char *elsn;
	XLogRecPtr	end_lsn;
	int			lastpart;

	*stored = *other = false;
	if (!last_message(ns, &last, PG_LOG_WARNING))
		return false;
	if (last == NULL)
	{
		/* the subject is empty (purged, or consumed from a work queue) */
		ns->last_seq = 0;
		return true;
	}
	lastid = header(last, "Nats-Msg-Id");
	slot = header(last, "Kappa-Slot");
	elsn = header(last, "Kappa-End-Lsn");
	if (slot == NULL || strcmp(slot, kr_opt.slot) != 0 || elsn == NULL ||
		!kr_parse_lsn(elsn, strlen(elsn), &end_lsn) ||
		!parse_int_header(last, "Kappa-Part", &lastpart))
	{
		*other = true;
		pg_log_error("another publisher wrote to subject \"%s\" of NATS JetStream stream \"%s\" (message %s at sequence %llu)",
					 kr_opt.nats_subject, kr_opt.nats_stream,
					 lastid ? lastid : "without Nats-Msg-Id",
					 (unsigned long long) natsMsg_GetSequence(last));
		pg_log_error_hint("Each slot needs a subject of its own.");
	}
	else
	{
		*stored = (lastid != NULL && strcmp(lastid, id) == 0) ||
			end_lsn > info->position ||
			(end_lsn == info->position && lastpart >= part);
		ns->last_seq = natsMsg_GetSequence(last);
	}
	natsMsg_Destroy(last);
	return true;
}

/* After "no responders": true (after logging) when the stream is gone. */
static bool
stream_gone(NatsSink *ns)
{
	jsStreamInfo *si = NULL;
	jsErrCode	jerr = 0;
	natsStatus	s;

	s = js_GetStreamInfo(&si, ns->js, kr_opt.nats_stream, NULL, &jerr);
	if (si)
		jsStreamInfo_Destroy(si);
	if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
	{
		pg_log_error("NATS JetStream stream \"%s\" does not exist any more",
					 kr_opt.nats_stream);
		return true;
	}
	return false;
}

/*
 * Publish one part and wait for its PubAck; retry what may be transient
 * (no answer, connection lost, election), with backoff, until it is stored
 * or the stream refuses it.
 */
static bool
publish_part(NatsSink *ns, natsMsg *msg, const char *id,
			 const KRUnitInfo *info, int part, int parts)
{
	int			wait_ms = RETRY_FIRST_MS;
	int64		started = kr_now_ms();

	for (;;)
	{
		jsPubOptions po;
		jsPubAck   *pa = NULL;
		jsErrCode	jerr = 0;
		natsStatus	s;
		bool		stored;
		bool		other;

		jsPubOptions_Init(&po);
		po.MsgId = id;
		po.ExpectStream = kr_opt.nats_stream;
		po.MaxWait = kr_opt.nats_timeout_ms;
		if (ns->expect_seq)
			po.ExpectLastSubjectSeq = ns->last_seq;
		s = js_PublishMsg(&pa, ns->js, msg, &po, &jerr);
		if (s == NATS_OK)
		{
			ns->last_seq = pa->Sequence;
			jsPubAck_Destroy(pa);
			kr_test_crash_point("nats-after-puback");
			return true;
		}

		if (jerr == JSStreamWrongLastSequenceErr)
		{
			/* an earlier attempt was stored, or someone else publishes */
			if (!part_was_stored(ns, id, info, part, &stored, &other) || other)
				return false;
			if (stored)
				return true;
			continue;
		}
		if (jerr != 0 && s != NATS_NO_RESPONDERS && !transient(s))
		{
			/* refused: an answer that retrying will not change */
			pg_log_error("NATS JetStream stream \"%s\" refused part %d of %d (%s): %s",
						 kr_opt.nats_stream, part, parts, id, nats_error_text(s));
			if (jerr == JSStreamNotMatchErr)
				pg_log_error_hint("Subject \"%s\" is stored by another stream than \"%s\".",
								  kr_opt.nats_subject, kr_opt.nats_stream);
			return false;
		}
		if (s == NATS_NO_RESPONDERS && stream_gone(ns))
			return false;

		pg_log_warning("could not publish part %d of %d (%s) to NATS JetStream stream \"%s\": %s",
					   part, parts, id, kr_opt.nats_stream, nats_error_text(s));
		if (kr_opt.reconnect_max_ms == 0 || kr_stop_requested)
		{
			pg_log_error("could not publish to NATS JetStream stream \"%s\"%s",
						 kr_opt.nats_stream,
						 kr_stop_requested ? ": stop requested" : " and --reconnect-max is 0");
			return false;
		}
		pg_log_info("retrying in %d ms (publishing for %lld ms so far)", wait_ms,
					(long long) (kr_now_ms() - started));
		kr_sleep_ms(wait_ms);
		wait_ms = Min(wait_ms * 2, Max(kr_opt.reconnect_max_ms, RETRY_FIRST_MS));
		/* the part may have been stored although no PubAck came back */
		if (part_was_stored(ns, id, info, part, &stored, &other))
		{
			if (other)
				return false;
			if (stored)
			{
				pg_log_info("part %d of %d (%s) was stored after all", part, parts, id);
				return true;
			}
		}
	}
}

/*
 * Wait for the PubAcks of every unit published ahead, and make sure each is
 * stored.  Every message of the window named the sequence it must follow,
 * so what the stream holds of the window is a prefix: after a failure,
 * the units beyond that prefix are published again one by one, with the
 * checks of publish_part().
 */
static bool
window_flush(NatsSink *ns)
{
	jsPubOptions po;
	int			first_bad = -1;
	int			i;
	bool		ok = true;

	if (ns->nwindow == 0)
		return true;
	jsPubOptions_Init(&po);
	po.MaxWait = 2 * (int64) kr_opt.nats_timeout_ms + 1000;
	(void) js_PublishAsyncComplete(ns->js, &po);

	pthread_mutex_lock(&ns->lock);
	for (i = 0; i < ns->nwindow; i++)
	{
		if (ns->window[i].state != WIN_STORED)
		{
			first_bad = i;
			break;
		}
		ns->last_seq = ns->window[i].seq;
	}
	pthread_mutex_unlock(&ns->lock);

	for (i = first_bad; ok && i >= 0 && i < ns->nwindow; i++)
	{
		WindowEntry *e = &ns->window[i];
		WindowEntry copy;
		natsMsg    *msg;

		pthread_mutex_lock(&ns->lock);
		copy = *e;
		pthread_mutex_unlock(&ns->lock);
		/*
		 * A clustered stream (nats-server 2.9) checks the expected sequence
		 * against the messages it has applied, not those still being
		 * replicated, so publishing ahead meets "wrong last sequence" there
		 * routinely: that is only worth an informational message.
		 */
		if (i == first_bad)
			pg_log_generic(copy.jerr == JSStreamWrongLastSequenceErr ?
						   PG_LOG_INFO : PG_LOG_WARNING, PG_LOG_PRIMARY,
						   "publishing ahead to NATS JetStream stream \"%s\" stopped at %s (%s); publishing the rest of %d message(s) one by one",
						   kr_opt.nats_stream, copy.id,
						   copy.state == WIN_PENDING ? "no answer" : copy.errtext,
						   ns->nwindow - i);
		msg = make_part(ns, &copy.info, copy.body, copy.len, 1, 1);
		ok = msg != NULL && publish_part(ns, msg, copy.id, &copy.info, 1, 1);
		if (msg)
			natsMsg_Destroy(msg);
	}

	pthread_mutex_lock(&ns->lock);
	for (i = 0; i < ns->nwindow; i++)
		pfree(ns->window[i].body);
	ns->nwindow = 0;
	ns->window_bytes = 0;
	pthread_mutex_unlock(&ns->lock);
	return ok;
}

/*
 * -F: publish a one-part unit without waiting for its PubAck.  It names
 * the subject sequence it must follow, the previous unit's predicted one
 * (the stream's sequences are consecutive when the subject is the only
 * one written), so that no unit can be stored after one that was not.
 */
static bool
window_add(NatsSink *ns, const KRUnitInfo *info)
{
	WindowEntry *e;
	natsMsg    *msg;
	jsPubOptions po;
	natsStatus	s;
	uint64		expect;

	if (ns->nwindow >= WINDOW_MSGS ||
		ns->window_bytes + ns->buflen > WINDOW_BYTES)
	{
		if (!window_flush(ns))
			return false;
	}
	msg = make_part(ns, info, ns->buf, ns->buflen, 1, 1);
	if (msg == NULL)
		return false;

	pthread_mutex_lock(&ns->lock);
	if (ns->window == NULL)
		ns->window = palloc0(sizeof(WindowEntry) * WINDOW_MSGS);
	e = &ns->window[ns->nwindow];
	memset(e, 0, sizeof(*e));
	msg_id(e->id, sizeof(e->id), info, 1);
	e->info = *info;
	e->body = palloc(ns->buflen);
	memcpy(e->body, ns->buf, ns->buflen);
	e->len = ns->buflen;
	e->state = WIN_PENDING;
	expect = ns->last_seq + ns->nwindow;
	ns->nwindow++;
	ns->window_bytes += ns->buflen;
	pthread_mutex_unlock(&ns->lock);

	jsPubOptions_Init(&po);
	po.MsgId = e->id;
	po.ExpectStream = kr_opt.nats_stream;
	po.MaxWait = kr_opt.nats_timeout_ms;
	po.ExpectLastSubjectSeq = expect;
	s = js_PublishMsgAsync(ns->js, &msg, &po);
	if (s != NATS_OK)
	{
		/* not sent: window_flush() publishes it again */
		pthread_mutex_lock(&ns->lock);
		e->state = WIN_FAILED;
		e->err = s;
		strlcpy(e->errtext, nats_error_text(s), sizeof(e->errtext));
		pthread_mutex_unlock(&ns->lock);
		natsMsg_Destroy(msg);
	}
	return true;
}

/* Publish the complete unit, part by part; return once all are stored. */
static bool
nats_commit(KRSink *sink, const KRUnitInfo *info)
{
	NatsSink   *ns = sink->private_data;
	uint64		total = ns->spooled > 0 ? ns->spooled : ns->buflen;
	size_t		part_size = ns->part_size;
	int			parts = (int) Max(1, (total + part_size - 1) / part_size);
	int			first = 1;
	int			part;

	if (ns->partial_parts > 0 && info->commit_lsn == ns->partial_commit_lsn)
	{
		if (parts != ns->partial_parts)
		{
			pg_log_error("transaction committed at %X/%X now takes %d parts, but the stream holds %d of %d",
						 LSN_FORMAT_ARGS(info->commit_lsn), parts,
						 ns->partial_done, ns->partial_parts);
			pg_log_error_detail("The server's maximum payload changed since the parts were published.");
			return false;
		}
		first = ns->partial_done + 1;
	}
	ns->partial_parts = 0;

	/*
	 * -F: a one-part unit goes out ahead when the chain of expected
	 * sequences can protect it (limits retention, a known last sequence);
	 * anything else waits for the units ahead of it first.
	 */
	if (kr_opt.fsync_interval_ms > 0 && parts == 1 && first == 1 &&
		ns->expect_seq && ns->last_seq > 0)
	{
		if (!window_add(ns, info))
			return false;
		ns->buflen = 0;
		kr_test_crash_point("nats-after-publish-ahead");
		return true;
	}
	if (!window_flush(ns))
		return false;

	if (ns->spooled > 0 && fseeko(ns->spool, (off_t) (first - 1) * part_size, SEEK_SET) != 0)
	{
		pg_log_error("could not seek in temporary spool file: %m");
		return false;
	}
	for (part = first; part <= parts; part++)
	{
		size_t		len;
		natsMsg    *msg;
		char		id[128];
		bool		ok;

		if (ns->spooled > 0)
		{
			len = (size_t) Min((uint64) part_size, total - (uint64) (part - 1) * part_size);
			if (fread(ns->buf, 1, len, ns->spool) != len)
			{
				pg_log_error("could not read temporary spool file: %m");
				return false;
			}
		}
		else
			len = ns->buflen;
		msg = make_part(ns, info, ns->buf, len, part, parts);
		if (msg == NULL)
			return false;
		msg_id(id, sizeof(id), info, part);
		ok = publish_part(ns, msg, id, info, part, parts);
		natsMsg_Destroy(msg);
		if (!ok)
			return false;
		if (part < parts)
			kr_test_crash_point("nats-between-parts");
	}
	ns->buflen = 0;
	ns->spooled = 0;
	return true;
}

/*
 * Make sure every unit handed over is stored: without -F, commit() already
 * waited for each PubAck; with -F, wait for those of the window.
 */
static bool
nats_sync(KRSink *sink, KRState *state)
{
	(void) state;
	return window_flush(sink->private_data);
}

/* No rotation or reopening for a stream. */
static bool
nats_maintain(KRSink *sink, KRState *state, bool reopen, bool *changed)
{
	(void) sink;
	(void) state;
	(void) reopen;
	*changed = false;
	return true;
}

/* Close the connection and the spool file. */
static void
nats_close(KRSink *sink)
{
	NatsSink   *ns = sink->private_data;

	if (ns->js)
		jsCtx_Destroy(ns->js);
	ns->js = NULL;
	if (ns->nc)
		natsConnection_Destroy(ns->nc);
	ns->nc = NULL;
	if (ns->spool)
		fclose(ns->spool);
	ns->spool = NULL;
}

/* The --nats sink; options come from kr_opt. */
KRSink *
sink_nats_create(void)
{
	KRSink	   *sink = palloc0(sizeof(KRSink));
	NatsSink   *ns = palloc0(sizeof(NatsSink));

	sink->open = nats_open;
	sink->begin = nats_begin;
	sink->write = nats_write;
	sink->abort = nats_abort;
	sink->commit = nats_commit;
	sink->sync = nats_sync;
	sink->maintain = nats_maintain;
	sink->close = nats_close;
	sink->sync_on_commit = kr_opt.fsync_interval_ms == 0;
	sink->private_data = ns;
	pthread_mutex_init(&ns->lock, NULL);
	return sink;
}

#endif							/* HAVE_LIBNATS */
