/*-------------------------------------------------------------------------
 *
 * consume.c
 *	  Exactly-once delivery: the loop between the stream and the sink.
 *
 * Owns: the rules that make delivery exactly once.
 *
 *	1. Records go to the sink as they arrive, but a unit only counts once
 *	   its closing record has been verified (verify.c).  A unit that fails
 *	   verification, or is cut short by a lost connection or a stop, is
 *	   taken back from the sink (abort).
 *	2. A verified unit whose position is at or before the saved one is a
 *	   repeat and is dropped.  The server normally does not send such units
 *	   (START_REPLICATION asks for the saved position), so this is the
 *	   second line of defence.
 *	3. Complete units are made durable by sync(): after every unit, or in
 *	   groups with --fsync-interval.  Only then is the state file written
 *	   (state.c), and only then is the position reported to the server as
 *	   flushed.  A crash before the state write loses nothing (the server
 *	   has not been told, the sink cuts the tail on restart); a crash after
 *	   it repeats nothing (rule 2 and the start position).
 *	4. When nothing is open or waiting for a sync, a keepalive's position
 *	   may be acknowledged too, so that a slot whose changes are all
 *	   filtered out does not hold back WAL for ever.
 *
 * Also owns the schedule of standby status updates (--status-interval, on
 * request, soon after each sync), --endpos, and the reaction to SIGHUP
 * (reopen between units) and SIGINT/SIGTERM (stop between units, after a
 * final sync and status update).
 *
 * Does not own: the wire protocol (stream.c), the checks (verify.c), what
 * durable means for a sink (sink_*.c), reconnecting (main.c).
 *
 * tools/kappa_recv/consume.c
 *
 *-------------------------------------------------------------------------
 */
#include "kappa_recv.h"

#include "common/logging.h"

/* a sync is reported to the server at most this often (ms) */
#define STATUS_AFTER_SYNC_MS	100

static KRSink *sink;
static const char *state_path;	/* NULL: -f - without --state-file */
static KRState state;			/* as last written */
static KRVerifier verifier;

static PGconn *cur_conn;
static XLogRecPtr received_pos; /* highest position received */
static XLogRecPtr flush_pos;	/* what may be reported as flushed */
static KRUnitInfo committed;	/* last unit handed to the sink */
static bool pending;			/* units handed over but not yet synced */
static int64 pending_since;
static int64 last_status;
static bool status_due;			/* a sync happened since the last status */
static bool endpos_reached;

bool
consume_init(KRSink *s, const char *path, int *exit_code)
{
	bool		exists = false;
	int			rc;

	sink = s;
	state_path = path;
	*exit_code = KR_EXIT_STATE;
	if (state_path != NULL && !state_read(state_path, &state, &exists))
		return false;
	if (exists && strcmp(state.slot, kr_opt.slot) != 0)
	{
		pg_log_error("state file \"%s\" belongs to slot \"%s\", not \"%s\"",
					 state_path, state.slot, kr_opt.slot);
		pg_log_error_hint("Each slot needs its own output and state file.");
		return false;
	}
	if (!exists)
	{
		memset(&state, 0, sizeof(state));
		strlcpy(state.slot, kr_opt.slot, sizeof(state.slot));
	}
	else if (kr_opt.verbose)
		pg_log_info("resuming after the transaction that ended at %X/%X",
					LSN_FORMAT_ARGS(state.position));

	rc = sink->open(sink, &state);
	if (rc != KR_EXIT_OK)
	{
		*exit_code = rc;
		return false;
	}
	if (state_path != NULL && !state_write(state_path, &state))
	{
		*exit_code = KR_EXIT_SINK;
		return false;
	}
	committed.position = state.position;
	committed.commit_lsn = state.commit_lsn;
	strlcpy(committed.xid, state.xid, sizeof(committed.xid));
	flush_pos = state.position;
	verifier_init(&verifier);
	*exit_code = KR_EXIT_OK;
	return true;
}

/*
 * Where START_REPLICATION should begin: after the last consumed unit.  The
 * test hook KAPPA_RECV_TEST_START_FROM_SLOT asks for 0/0 instead (the
 * server then starts at the slot's confirmed position), so that a test can
 * make the server send units again and check that rule 2 drops them.
 */
XLogRecPtr
consume_start_position(void)
{
	if (getenv("KAPPA_RECV_TEST_START_FROM_SLOT") != NULL)
		return InvalidXLogRecPtr;
	return state.position;
}

static bool
send_status(bool reply)
{
	if (cur_conn == NULL)
		return true;
	last_status = kr_now_ms();
	status_due = false;
	if (!stream_send_status(cur_conn, Max(received_pos, flush_pos),
							flush_pos, reply))
		return false;
	return true;
}

/* Make every unit handed to the sink durable, then record and report it. */
static bool
sync_units(int *exit_code)
{
	bool		changed;

	if (!pending)
		return true;
	if (!sink->sync(sink, &state))
	{
		*exit_code = KR_EXIT_SINK;
		return false;
	}
	kr_test_crash_point("after-sync");
	state.position = committed.position;
	state.commit_lsn = committed.commit_lsn;
	strlcpy(state.xid, committed.xid, sizeof(state.xid));
	if (state_path != NULL && !state_write(state_path, &state))
	{
		*exit_code = KR_EXIT_SINK;
		return false;
	}
	kr_test_crash_point("after-state");
	pending = false;
	flush_pos = Max(flush_pos, state.position);
	status_due = true;

	if (!sink->maintain(sink, &state, false, &changed))
	{
		*exit_code = KR_EXIT_SINK;
		return false;
	}
	if (changed && state_path != NULL && !state_write(state_path, &state))
	{
		*exit_code = KR_EXIT_SINK;
		return false;
	}
	return true;
}

/* A verified unit is complete: hand it over, maybe sync. */
static bool
unit_done(const KRUnitInfo *info, int *exit_code)
{
	if (!sink->commit(sink, info))
	{
		*exit_code = KR_EXIT_SINK;
		return false;
	}
	committed = *info;
	if (!pending)
		pending_since = kr_now_ms();
	pending = true;
	if (sink->sync_on_commit || kr_opt.fsync_interval_ms == 0)
		return sync_units(exit_code);
	return true;
}

/* Is a unit ending at 'position' already delivered, or beyond --endpos? */
static bool
unit_unwanted(XLogRecPtr position)
{
	if (position <= committed.position)
	{
		if (kr_opt.verbose)
			pg_log_info("skipping transaction ending at %X/%X: already consumed",
						LSN_FORMAT_ARGS(position));
		return true;
	}
	if (kr_opt.endpos != InvalidXLogRecPtr && position > kr_opt.endpos)
	{
		endpos_reached = true;
		return true;
	}
	return false;
}

static bool
handle_record(char *data, size_t len, XLogRecPtr lsn, int *exit_code)
{
	KRUnitInfo	info;
	bool		drop;
	KRLineKind	kind;

	kind = verifier_line(&verifier, data, &len, lsn, &info, &drop);
	switch (kind)
	{
		case KR_LINE_ERROR:
			/* nothing of the bad unit stays in the sink */
			(void) sink->abort(sink);
			verifier_reset(&verifier);
			*exit_code = KR_EXIT_VERIFY;
			return false;

		case KR_LINE_OPEN:
			if (!sink->begin(sink) || !sink->write(sink, data, len))
				break;
			return true;

		case KR_LINE_CHANGE:
			if (!drop && !sink->write(sink, data, len))
				break;
			kr_test_crash_point("mid-transaction");
			return true;

		case KR_LINE_CLOSE:
			if (unit_unwanted(info.position))
			{
				if (!sink->abort(sink))
					break;
				return true;
			}
			if (!sink->write(sink, data, len))
				break;
			return unit_done(&info, exit_code);

		case KR_LINE_SINGLE:
			if (unit_unwanted(info.position))
				return true;
			if (!sink->begin(sink) || !sink->write(sink, data, len))
				break;
			return unit_done(&info, exit_code);
	}
	*exit_code = KR_EXIT_SINK;
	return false;
}

/* Finish between units: sync, final status.  Used when stopping. */
static KRConsumeResult
stop_here(int *exit_code)
{
	if (!sync_units(exit_code))
		return KR_CONSUME_FATAL;
	(void) send_status(false);
	return KR_CONSUME_STOP;
}

static int
wait_time(int64 now)
{
	int64		deadline = now + 500;

	if (kr_opt.status_interval_ms > 0)
		deadline = Min(deadline, last_status + kr_opt.status_interval_ms);
	if (status_due)
		deadline = Min(deadline, last_status + STATUS_AFTER_SYNC_MS);
	if (pending && !verifier.in_unit)
		deadline = Min(deadline, pending_since + kr_opt.fsync_interval_ms);
	return (int) Max(deadline - now, 1);
}

KRConsumeResult
consume(PGconn *conn, int *exit_code)
{
	KRMessage	msg;
	KRConsumeResult result;

	memset(&msg, 0, sizeof(msg));
	cur_conn = conn;
	endpos_reached = false;
	last_status = 0;
	*exit_code = KR_EXIT_OK;

	for (;;)
	{
		int64		now;

		if (!verifier.in_unit)
		{
			if (kr_stop_requested || endpos_reached)
			{
				result = stop_here(exit_code);
				break;
			}
			if (kr_reopen_requested)
			{
				bool		changed;

				kr_reopen_requested = false;
				if (!sync_units(exit_code) ||
					!sink->maintain(sink, &state, true, &changed) ||
					(changed && state_path != NULL &&
					 !state_write(state_path, &state)))
				{
					if (*exit_code == KR_EXIT_OK)
						*exit_code = KR_EXIT_SINK;
					result = KR_CONSUME_FATAL;
					break;
				}
			}
		}
		else if (kr_stop_requested)
		{
			/* stop now: the open unit is taken back, it comes again */
			(void) sink->abort(sink);
			verifier_reset(&verifier);
			continue;
		}

		now = kr_now_ms();
		if (pending && !verifier.in_unit &&
			now - pending_since >= kr_opt.fsync_interval_ms &&
			!sync_units(exit_code))
		{
			result = KR_CONSUME_FATAL;
			break;
		}
		if ((kr_opt.status_interval_ms > 0 &&
			 now - last_status >= kr_opt.status_interval_ms) ||
			(status_due && now - last_status >= STATUS_AFTER_SYNC_MS))
		{
			if (!send_status(false))
			{
				result = KR_CONSUME_LOST;
				break;
			}
		}

		stream_receive(conn, wait_time(now), &msg, exit_code);
		if (msg.type == KR_MSG_NONE)
			continue;
		if (msg.type == KR_MSG_LOST)
		{
			result = KR_CONSUME_LOST;
			break;
		}
		if (msg.type == KR_MSG_FATAL)
		{
			result = KR_CONSUME_FATAL;
			break;
		}
		if (msg.type == KR_MSG_KEEPALIVE)
		{
			received_pos = Max(received_pos, msg.lsn);
			if (!verifier.in_unit)
			{
				if (!pending)
					flush_pos = Max(flush_pos, msg.lsn);
				if (kr_opt.endpos != InvalidXLogRecPtr &&
					msg.lsn >= kr_opt.endpos)
					endpos_reached = true;
			}
			if (msg.reply_requested && !send_status(false))
			{
				result = KR_CONSUME_LOST;
				break;
			}
			continue;
		}

		/* XLogData */
		received_pos = Max(received_pos, msg.lsn);
		if (!handle_record(msg.data, msg.len, msg.lsn, exit_code))
		{
			result = KR_CONSUME_FATAL;
			break;
		}
		if (!verifier.in_unit && kr_opt.endpos != InvalidXLogRecPtr &&
			committed.position >= kr_opt.endpos)
			endpos_reached = true;
	}

	if (msg.buffer)
		PQfreemem(msg.buffer);
	cur_conn = NULL;
	return result;
}

/*
 * Between connections, or before exiting after an error: take back an
 * incomplete unit and make the complete ones durable.
 */
bool
consume_pause(int *exit_code)
{
	if (verifier.in_unit)
	{
		(void) sink->abort(sink);
		verifier_reset(&verifier);
	}
	return sync_units(exit_code);
}

void
consume_close(void)
{
	if (sink)
		sink->close(sink);
}
