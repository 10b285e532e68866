/*-------------------------------------------------------------------------
 *
 * sink_spool.c
 *	  The sinks that receive whole, verified transactions: standard output
 *	  (-f -) and a command (--exec CMD).
 *
 * Owns: the spool, an anonymous temporary file that holds the open unit
 * while it arrives (so a transaction of any size passes in constant
 * memory, and nothing of a transaction that fails verification is ever
 * delivered), and delivering a complete unit:
 *
 *	- stdout: the spool is copied to file descriptor 1;
 *	- --exec: CMD is run with /bin/sh -c, the spool as its standard input
 *	  and the unit's identity in its environment (KAPPA_XID,
 *	  KAPPA_COMMIT_LSN, KAPPA_END_LSN, KAPPA_CHANGES); exit status 0 means
 *	  consumed, anything else stops kappa_recv (KR_EXIT_SINK) without
 *	  acknowledging the unit.
 *
 * Delivery is the durable step for these sinks (sync_on_commit), so the
 * state is written after each unit.  A crash after the command succeeded
 * and before the state was written runs the command again for that unit
 * on restart; the environment lets a command recognise the repeat.
 *
 * Does not own: verification (verify.c) or the state file (state.c).
 *
 * tools/kappa_recv/sink_spool.c
 *
 *-------------------------------------------------------------------------
 */
#include "kappa_recv.h"

#include <sys/wait.h>
#include <unistd.h>

#include "common/logging.h"

typedef struct SpoolSink
{
	const char *command;		/* NULL for stdout */
	FILE	   *spool;
	uint64		units;
} SpoolSink;

static int
spool_open(KRSink *sink, KRState *state)
{
	SpoolSink  *ss = sink->private_data;

	(void) state;
	ss->spool = tmpfile();
	if (ss->spool == NULL)
	{
		pg_log_error("could not create temporary spool file: %m");
		return KR_EXIT_SINK;
	}
	return KR_EXIT_OK;
}

static bool
spool_begin(KRSink *sink)
{
	SpoolSink  *ss = sink->private_data;

	rewind(ss->spool);
	if (ftruncate(fileno(ss->spool), 0) != 0)
	{
		pg_log_error("could not truncate spool file: %m");
		return false;
	}
	return true;
}

static bool
spool_write(KRSink *sink, const char *line, size_t len)
{
	SpoolSink  *ss = sink->private_data;

	if (fwrite(line, 1, len, ss->spool) != len ||
		fputc('\n', ss->spool) == EOF)
	{
		pg_log_error("could not write spool file: %m");
		return false;
	}
	return true;
}

static bool
spool_abort(KRSink *sink)
{
	return spool_begin(sink);
}

static bool
copy_to_stdout(SpoolSink *ss)
{
	char		buf[65536];
	size_t		n;

	rewind(ss->spool);
	while ((n = fread(buf, 1, sizeof(buf), ss->spool)) > 0)
	{
		if (!kr_write_all(STDOUT_FILENO, buf, n))
		{
			pg_log_error("could not write to standard output: %m");
			return false;
		}
	}
	if (ferror(ss->spool))
	{
		pg_log_error("could not read spool file: %m");
		return false;
	}
	return true;
}

static bool
run_command(SpoolSink *ss, const KRUnitInfo *info)
{
	pid_t		pid;
	int			status;
	char		lsn[32];

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
	{
		pg_log_error("could not fork: %m");
		return false;
	}
	if (pid == 0)
	{
		if (lseek(fileno(ss->spool), 0, SEEK_SET) < 0 ||
			dup2(fileno(ss->spool), STDIN_FILENO) < 0)
			_exit(126);
		setenv("KAPPA_XID", info->xid, 1);
		snprintf(lsn, sizeof(lsn), "%X/%X", LSN_FORMAT_ARGS(info->commit_lsn));
		setenv("KAPPA_COMMIT_LSN", lsn, 1);
		snprintf(lsn, sizeof(lsn), "%X/%X", LSN_FORMAT_ARGS(info->position));
		setenv("KAPPA_END_LSN", lsn, 1);
		snprintf(lsn, sizeof(lsn), "%llu", (unsigned long long) info->changes);
		setenv("KAPPA_CHANGES", lsn, 1);
		signal(SIGPIPE, SIG_DFL);
		/* a terminal's ^C goes to kappa_recv, which lets the unit finish */
		(void) setpgid(0, 0);
		execl("/bin/sh", "sh", "-c", ss->command, (char *) NULL);
		_exit(127);
	}
	/* a signal for us only interrupts waitpid; the unit still completes */
	while (waitpid(pid, &status, 0) < 0)
	{
		if (errno != EINTR)
		{
			pg_log_error("could not wait for command: %m");
			return false;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	if (WIFEXITED(status))
		pg_log_error("command \"%s\" failed with exit status %d for the transaction committed at %X/%X",
					 ss->command, WEXITSTATUS(status),
					 LSN_FORMAT_ARGS(info->commit_lsn));
	else if (WIFSIGNALED(status))
		pg_log_error("command \"%s\" was terminated by signal %d for the transaction committed at %X/%X",
					 ss->command, WTERMSIG(status),
					 LSN_FORMAT_ARGS(info->commit_lsn));
	else
		pg_log_error("command \"%s\" failed", ss->command);
	pg_log_error_detail("The transaction was not acknowledged; it will be delivered again when kappa_recv restarts.");
	return false;
}

static bool
spool_commit(KRSink *sink, const KRUnitInfo *info)
{
	SpoolSink  *ss = sink->private_data;

	if (fflush(ss->spool) != 0)
	{
		pg_log_error("could not write spool file: %m");
		return false;
	}
	ss->units++;
	if (ss->command == NULL)
		return copy_to_stdout(ss);
	return run_command(ss, info);
}

static bool
spool_sync(KRSink *sink, KRState *state)
{
	(void) sink;
	(void) state;
	return true;
}

static bool
spool_maintain(KRSink *sink, KRState *state, bool reopen, bool *changed)
{
	(void) sink;
	(void) state;
	(void) reopen;
	*changed = false;
	return true;
}

static void
spool_close(KRSink *sink)
{
	SpoolSink  *ss = sink->private_data;

	if (ss->spool)
		fclose(ss->spool);
	ss->spool = NULL;
}

static KRSink *
spool_sink_create(const char *command)
{
	KRSink	   *sink = palloc0(sizeof(KRSink));
	SpoolSink  *ss = palloc0(sizeof(SpoolSink));

	ss->command = command;
	sink->open = spool_open;
	sink->begin = spool_begin;
	sink->write = spool_write;
	sink->abort = spool_abort;
	sink->commit = spool_commit;
	sink->sync = spool_sync;
	sink->maintain = spool_maintain;
	sink->close = spool_close;
	sink->sync_on_commit = true;
	sink->private_data = ss;
	return sink;
}

KRSink *
sink_stdout_create(void)
{
	return spool_sink_create(NULL);
}

KRSink *
sink_exec_create(const char *command)
{
	return spool_sink_create(command);
}
