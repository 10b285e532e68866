/*-------------------------------------------------------------------------
 *
 * stream.c
 *	  The replication connection of kappa_recv.
 *
 * Owns: connecting (any connection string or PG* variables, always as a
 * logical replication connection), checking or creating the slot, the
 * START_REPLICATION command with the plugin options, reading CopyData
 * messages (XLogData and keepalives), sending standby status updates, and
 * turning server errors into clear messages, hints and exit codes.  It also
 * tells apart errors worth a reconnect (connection lost, slot still held by
 * a dying walsender) from errors that will not go away.
 *
 * Does not own: what a record means or when a position may be acknowledged
 * (consume.c decides the positions it passes here), nor the reconnect loop
 * and its backoff (main.c).
 *
 * tools/kappa_recv/stream.c
 *
 *-------------------------------------------------------------------------
 */
#include "kappa_recv.h"

#include <sys/select.h>
#include <sys/time.h>

#include "common/logging.h"
#include "pqexpbuffer.h"

#define PLUGIN_NAME "pg_kappa"

/* microseconds between the Unix epoch and PostgreSQL's (2000-01-01) */
#define POSTGRES_EPOCH_OFFSET_US	INT64CONST(946684800000000)

static void
put_uint64(char *p, uint64 v)
{
	int			i;

	for (i = 7; i >= 0; i--)
	{
		p[i] = (char) (v & 0xff);
		v >>= 8;
	}
}

static uint64
get_uint64(const char *p)
{
	uint64		v = 0;
	int			i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | (unsigned char) p[i];
	return v;
}

/*
 * The message of a failed connection, without libpq's trailing newline.
 * Failures kappa_recv recovers from by reconnecting are warnings.
 */
static void
log_conn_problem(PGconn *conn, const char *what, enum pg_log_level level)
{
	char	   *msg = pstrdup(PQerrorMessage(conn));
	size_t		len = strlen(msg);

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	pg_log_generic(level, PG_LOG_PRIMARY, "%s: %s", what, msg);
	pfree(msg);
}

static void
log_conn_error(PGconn *conn, const char *what)
{
	log_conn_problem(conn, what, PG_LOG_ERROR);
}

/*
 * Log an error result with the server's detail and hint, and our own hint
 * when we know a better one.
 */
static void
log_result_problem(PGresult *res, const char *what, const char *own_hint,
				   enum pg_log_level level)
{
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);

	if (primary)
		pg_log_generic(level, PG_LOG_PRIMARY, "%s: %s", what, primary);
	else
	{
		char	   *msg = pstrdup(PQresultErrorMessage(res));
		size_t		len = strlen(msg);

		while (len > 0 && msg[len - 1] == '\n')
			msg[--len] = '\0';
		pg_log_generic(level, PG_LOG_PRIMARY, "%s: %s", what,
					   len > 0 ? msg : "unknown error");
		pfree(msg);
	}
	if (detail)
		pg_log_generic(level, PG_LOG_DETAIL, "%s", detail);
	if (own_hint)
		pg_log_generic(level, PG_LOG_HINT, "%s", own_hint);
	else if (hint)
		pg_log_generic(level, PG_LOG_HINT, "%s", hint);
}

static void
log_result_error(PGresult *res, const char *what, const char *own_hint)
{
	log_result_problem(res, what, own_hint, PG_LOG_ERROR);
}

static bool
sqlstate_is(PGresult *res, const char *code)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return state != NULL && strcmp(state, code) == 0;
}

/* The server refused the plugin: say how output_plugin_libraries fixes it. */
static const char *
plugin_refused_hint(PGresult *res)
{
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	if (sqlstate_is(res, "42501") && primary &&
		strstr(primary, "output plugin") != NULL)
		return "The server's setting output_plugin_libraries does not list pg_kappa. "
			"Add it in postgresql.conf, for example "
			"output_plugin_libraries = 'pgoutput, test_decoding, pg_kappa', "
			"then reload the configuration with SELECT pg_reload_conf().";
	return NULL;
}

PGconn *
stream_connect(bool retrying, int *exit_code)
{
	const char *keywords[8];
	const char *values[8];
	int			n = 0;
	PGconn	   *conn;
	PGresult   *res;

	if (kr_opt.dbname)
	{
		keywords[n] = "dbname";
		values[n++] = kr_opt.dbname;
	}
	if (kr_opt.host)
	{
		keywords[n] = "host";
		values[n++] = kr_opt.host;
	}
	if (kr_opt.port)
	{
		keywords[n] = "port";
		values[n++] = kr_opt.port;
	}
	if (kr_opt.username)
	{
		keywords[n] = "user";
		values[n++] = kr_opt.username;
	}
	keywords[n] = "fallback_application_name";
	values[n++] = "kappa_recv";
	/* last, so that it wins over a "replication" in the connection string */
	keywords[n] = "replication";
	values[n++] = "database";
	keywords[n] = NULL;
	values[n] = NULL;

	*exit_code = KR_EXIT_SERVER;
	conn = PQconnectdbParams(keywords, values, true);
	if (conn == NULL)
	{
		pg_log_error("could not connect to server: out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK)
	{
		const char *msg = PQerrorMessage(conn);

		log_conn_problem(conn, "could not connect to server",
						 retrying ? PG_LOG_WARNING : PG_LOG_ERROR);
		if (strstr(msg, "must be superuser or replication role") != NULL ||
			strstr(msg, "permission denied to start WAL sender") != NULL)
			pg_log_error_hint("kappa_recv needs a role with the REPLICATION attribute "
							  "(ALTER ROLE name REPLICATION) or a superuser.");
		else if (strstr(msg, "no pg_hba.conf entry") != NULL)
			pg_log_error_hint("Logical replication connections are matched in pg_hba.conf "
							  "by database name, like ordinary connections; "
							  "the keyword \"replication\" does not cover them.");
		PQfinish(conn);
		return NULL;
	}

	/* a logical replication connection is bound to a database */
	res = PQexec(conn, "IDENTIFY_SYSTEM");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_result_error(res, "could not identify system", NULL);
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	if (PQnfields(res) < 4 || PQntuples(res) != 1 || PQgetisnull(res, 0, 3))
	{
		pg_log_error("replication connection is not bound to a database");
		pg_log_error_hint("Name a database with -d or PGDATABASE.");
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);

	if (kr_opt.verbose)
		pg_log_info("connected to database \"%s\" on server version %d",
					PQdb(conn), PQserverVersion(conn));
	*exit_code = KR_EXIT_OK;
	return conn;
}

static char *
quoted_slot(void)
{
	const char *p;
	char	   *out = palloc(strlen(kr_opt.slot) * 2 + 3);
	char	   *q = out;

	*q++ = '"';
	for (p = kr_opt.slot; *p; p++)
	{
		if (*p == '"')
			*q++ = '"';
		*q++ = *p;
	}
	*q++ = '"';
	*q = '\0';
	return out;
}

/* Look the slot up; returns the result (one row or none) or NULL on error. */
static PGresult *
lookup_slot(PGconn *conn)
{
	char	   *lit = PQescapeLiteral(conn, kr_opt.slot, strlen(kr_opt.slot));
	char		query[512];
	PGresult   *res;

	if (lit == NULL)
	{
		log_conn_error(conn, "could not quote slot name");
		return NULL;
	}
	snprintf(query, sizeof(query),
			 "SELECT plugin, slot_type, database, current_database() "
			 "FROM pg_catalog.pg_replication_slots WHERE slot_name = %s",
			 lit);
	PQfreemem(lit);
	res = PQexec(conn, query);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_result_error(res, "could not look up replication slot", NULL);
		PQclear(res);
		return NULL;
	}
	return res;
}

static bool
create_slot(PGconn *conn, bool *existed)
{
	char	   *qslot = quoted_slot();
	PQExpBufferData cmd;
	PGresult   *res;
	bool		ok = true;

	*existed = false;
	initPQExpBuffer(&cmd);
	/* NOEXPORT_SNAPSHOT is accepted by every server with pg_kappa */
	appendPQExpBuffer(&cmd, "CREATE_REPLICATION_SLOT %s LOGICAL %s NOEXPORT_SNAPSHOT",
					  qslot, PLUGIN_NAME);
	res = PQexec(conn, cmd.data);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		if (sqlstate_is(res, "42710") && kr_opt.if_not_exists)
			*existed = true;
		else
		{
			log_result_error(res, "could not create replication slot",
							 plugin_refused_hint(res));
			ok = false;
		}
	}
	else if (kr_opt.verbose)
		pg_log_info("created replication slot \"%s\" at %s",
					kr_opt.slot, PQgetvalue(res, 0, 1));
	PQclear(res);
	termPQExpBuffer(&cmd);
	pfree(qslot);
	return ok;
}

/*
 * Make sure the slot exists (creating it when asked), is logical, uses
 * pg_kappa and belongs to this database.
 */
bool
stream_prepare_slot(PGconn *conn, int *exit_code)
{
	PGresult   *res;
	const char *plugin;

	*exit_code = KR_EXIT_SERVER;
	res = lookup_slot(conn);
	if (res == NULL)
		return false;

	if (PQntuples(res) == 0)
	{
		bool		existed;

		PQclear(res);
		if (!kr_opt.create_slot)
		{
			pg_log_error("replication slot \"%s\" does not exist", kr_opt.slot);
			pg_log_error_hint("Create it with --create-slot, or with "
							  "SELECT pg_create_logical_replication_slot('%s', 'pg_kappa').",
							  kr_opt.slot);
			return false;
		}
		if (!create_slot(conn, &existed))
			return false;
		res = lookup_slot(conn);
		if (res == NULL)
			return false;
		if (PQntuples(res) == 0)
		{
			pg_log_error("replication slot \"%s\" disappeared after it was created",
						 kr_opt.slot);
			PQclear(res);
			return false;
		}
	}
	else if (kr_opt.create_slot && !kr_opt.if_not_exists)
	{
		pg_log_error("replication slot \"%s\" already exists", kr_opt.slot);
		pg_log_error_hint("Add --if-not-exists to use the existing slot.");
		PQclear(res);
		return false;
	}

	if (strcmp(PQgetvalue(res, 0, 1), "logical") != 0)
	{
		pg_log_error("replication slot \"%s\" is a %s slot, not a logical one",
					 kr_opt.slot, PQgetvalue(res, 0, 1));
		PQclear(res);
		return false;
	}
	plugin = PQgetvalue(res, 0, 0);
	if (strcmp(plugin, PLUGIN_NAME) != 0)
	{
		pg_log_error("replication slot \"%s\" uses output plugin \"%s\", not \"%s\"",
					 kr_opt.slot, plugin, PLUGIN_NAME);
		pg_log_error_hint("kappa_recv reads only pg_kappa's JSON events; "
						  "use a slot created with plugin pg_kappa (--create-slot does that).");
		PQclear(res);
		return false;
	}
	if (strcmp(PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3)) != 0)
	{
		pg_log_error("replication slot \"%s\" belongs to database \"%s\", not \"%s\"",
					 kr_opt.slot, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
		pg_log_error_hint("Connect to database \"%s\" with -d.", PQgetvalue(res, 0, 2));
		PQclear(res);
		return false;
	}
	PQclear(res);
	*exit_code = KR_EXIT_OK;
	return true;
}

bool
stream_drop_slot(PGconn *conn)
{
	char	   *qslot = quoted_slot();
	char	   *cmd = psprintf("DROP_REPLICATION_SLOT %s", qslot);
	PGresult   *res = PQexec(conn, cmd);
	bool		ok = true;

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		if (sqlstate_is(res, "42704") && kr_opt.if_not_exists)
			ok = true;
		else
		{
			log_result_error(res, "could not drop replication slot", NULL);
			ok = false;
		}
	}
	else if (kr_opt.verbose)
		pg_log_info("dropped replication slot \"%s\"", kr_opt.slot);
	PQclear(res);
	pfree(cmd);
	pfree(qslot);
	return ok;
}

/* Append 'value' as a replication-protocol string literal. */
static void
append_literal(PQExpBuffer buf, const char *value)
{
	const char *p;

	appendPQExpBufferChar(buf, '\'');
	for (p = value; *p; p++)
	{
		if (*p == '\'')
			appendPQExpBufferChar(buf, '\'');
		appendPQExpBufferChar(buf, *p);
	}
	appendPQExpBufferChar(buf, '\'');
}

/*
 * START_REPLICATION from 'startpos' with the plugin options.  On failure,
 * *transient says whether trying again later can help (the slot is still
 * held by a walsender that has not noticed its client died).
 */
bool
stream_start(PGconn *conn, XLogRecPtr startpos, int *exit_code,
			 bool *transient)
{
	PQExpBufferData cmd;
	char	   *qslot = quoted_slot();
	PGresult   *res;
	int			i;
	bool		ok = true;

	*transient = false;
	*exit_code = KR_EXIT_OK;
	initPQExpBuffer(&cmd);
	appendPQExpBuffer(&cmd, "START_REPLICATION SLOT %s LOGICAL %X/%X",
					  qslot, LSN_FORMAT_ARGS(startpos));
	for (i = 0; i < kr_opt.noptions; i++)
	{
		const char *name = kr_opt.option_names[i];
		const char *p;

		appendPQExpBufferStr(&cmd, i == 0 ? " (" : ", ");
		appendPQExpBufferChar(&cmd, '"');
		for (p = name; *p; p++)
		{
			if (*p == '"')
				appendPQExpBufferChar(&cmd, '"');
			appendPQExpBufferChar(&cmd, *p);
		}
		appendPQExpBufferChar(&cmd, '"');
		if (kr_opt.option_values[i] != NULL)
		{
			appendPQExpBufferChar(&cmd, ' ');
			append_literal(&cmd, kr_opt.option_values[i]);
		}
	}
	if (kr_opt.noptions > 0)
		appendPQExpBufferChar(&cmd, ')');

	if (kr_opt.verbose)
		pg_log_info("starting replication from %X/%X", LSN_FORMAT_ARGS(startpos));
	res = PQexec(conn, cmd.data);
	if (PQresultStatus(res) != PGRES_COPY_BOTH)
	{
		ok = false;
		if (PQstatus(conn) == CONNECTION_BAD)
		{
			log_conn_problem(conn, "could not start replication", PG_LOG_WARNING);
			*transient = true;
		}
		else if (sqlstate_is(res, "55006"))
		{
			/* slot active: usually our previous incarnation's walsender */
			log_result_problem(res, "could not start replication",
							   "kappa_recv will try again; stop the other consumer of this slot if there is one.",
							   PG_LOG_WARNING);
			*transient = true;
		}
		else if (sqlstate_is(res, "22023"))
		{
			log_result_error(res, "plugin option refused", NULL);
			*exit_code = KR_EXIT_USAGE;
		}
		else
		{
			log_result_error(res, "could not start replication",
							 plugin_refused_hint(res));
			*exit_code = KR_EXIT_SERVER;
		}
	}
	PQclear(res);
	termPQExpBuffer(&cmd);
	pfree(qslot);
	return ok;
}

/* Wait until the socket is readable, the timeout passes or a signal comes. */
static bool
wait_readable(PGconn *conn, int timeout_ms)
{
	int			sock = PQsocket(conn);
	fd_set		rfds;
	struct timeval tv;
	int			r;

	if (sock < 0)
		return false;
	FD_ZERO(&rfds);
	FD_SET(sock, &rfds);
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	r = select(sock + 1, &rfds, NULL, NULL, &tv);
	if (r < 0 && errno != EINTR)
	{
		pg_log_error("select() failed: %m");
		return false;
	}
	return true;
}

/* The copy ended: find out why. */
static void
copy_ended(PGconn *conn, KRMessage *msg, int *exit_code)
{
	PGresult   *res = PQgetResult(conn);

	msg->type = KR_MSG_LOST;
	if (res == NULL || PQstatus(conn) == CONNECTION_BAD)
		log_conn_problem(conn, "replication stream ended", PG_LOG_WARNING);
	else if (PQresultStatus(res) == PGRES_COMMAND_OK ||
			 PQresultStatus(res) == PGRES_COPY_OUT)
		pg_log_info("server ended the replication stream");
	else
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		/* shutdowns and connection failures (57P0x, class 08) pass */
		if (state && (strncmp(state, "57P", 3) == 0 ||
					  strncmp(state, "08", 2) == 0))
			log_result_problem(res, "replication stream ended", NULL,
							   PG_LOG_WARNING);
		else
		{
			log_result_error(res, "replication stream failed",
							 plugin_refused_hint(res));
			msg->type = KR_MSG_FATAL;
			*exit_code = KR_EXIT_SERVER;
		}
	}
	if (res)
		PQclear(res);
}

/*
 * Return the next message, waiting at most timeout_ms for one.  The
 * previous message's buffer is released.
 */
void
stream_receive(PGconn *conn, int timeout_ms, KRMessage *msg, int *exit_code)
{
	char	   *buf = NULL;
	int			r;

	if (msg->buffer)
		PQfreemem(msg->buffer);
	memset(msg, 0, sizeof(*msg));

	r = PQgetCopyData(conn, &buf, 1);
	if (r == 0 && timeout_ms > 0)
	{
		if (!wait_readable(conn, timeout_ms))
		{
			msg->type = KR_MSG_LOST;
			return;
		}
		if (PQconsumeInput(conn) == 0)
		{
			log_conn_problem(conn, "could not receive data from server",
							 PG_LOG_WARNING);
			msg->type = KR_MSG_LOST;
			return;
		}
		r = PQgetCopyData(conn, &buf, 1);
	}
	if (r == 0)
	{
		msg->type = KR_MSG_NONE;
		return;
	}
	if (r == -1)
	{
		copy_ended(conn, msg, exit_code);
		return;
	}
	if (r == -2)
	{
		log_conn_problem(conn, "could not read replication data",
						 PG_LOG_WARNING);
		msg->type = KR_MSG_LOST;
		return;
	}

	msg->buffer = buf;
	if (buf[0] == 'w' && r >= 25)
	{
		msg->type = KR_MSG_DATA;
		msg->lsn = get_uint64(buf + 1);
		msg->data = buf + 25;
		msg->len = r - 25;
	}
	else if (buf[0] == 'k' && r >= 18)
	{
		msg->type = KR_MSG_KEEPALIVE;
		msg->lsn = get_uint64(buf + 1);
		msg->reply_requested = buf[17] != 0;
	}
	else
	{
		pg_log_error("unexpected replication message of type \"%c\" and length %d",
					 buf[0], r);
		msg->type = KR_MSG_FATAL;
		*exit_code = KR_EXIT_SERVER;
	}
}

/*
 * Standby status update: 'written' is what we received, 'flushed' what the
 * sink has made durable (also reported as applied).
 */
bool
stream_send_status(PGconn *conn, XLogRecPtr written, XLogRecPtr flushed,
				   bool reply)
{
	char		buf[1 + 8 + 8 + 8 + 8 + 1];
	struct timeval tv;
	int64		now;

	gettimeofday(&tv, NULL);
	now = (int64) tv.tv_sec * 1000000 + tv.tv_usec - POSTGRES_EPOCH_OFFSET_US;
	buf[0] = 'r';
	put_uint64(buf + 1, written);
	put_uint64(buf + 9, flushed);
	put_uint64(buf + 17, flushed);
	put_uint64(buf + 25, (uint64) now);
	buf[33] = reply ? 1 : 0;
	if (PQputCopyData(conn, buf, sizeof(buf)) <= 0 || PQflush(conn) != 0)
	{
		log_conn_problem(conn, "could not send feedback to server",
						 PG_LOG_WARNING);
		return false;
	}
	return true;
}

/* End the copy politely; errors do not matter any more. */
void
stream_finish(PGconn *conn)
{
	if (conn == NULL)
		return;
	if (PQstatus(conn) == CONNECTION_OK &&
		PQputCopyEnd(conn, NULL) > 0)
		(void) PQflush(conn);
	PQfinish(conn);
}
