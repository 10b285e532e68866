/*-------------------------------------------------------------------------
 *
 * sink_file.c
 *	  The file sink of kappa_recv (-f FILE).
 *
 * Owns: the output file.  Records are appended through a buffer as they
 * arrive, so a transaction of any size passes in constant memory; the file
 * offset at the end of the last complete transaction is remembered, and an
 * incomplete or rejected transaction is cut off again (ftruncate).  sync()
 * makes the complete transactions durable (fdatasync) and reports the
 * offset, segment and inode that state.c records.  open() uses them to
 * recover after a crash:
 *
 *	- the file is longer than the recorded offset: the tail is an
 *	  incomplete transaction, or one that was written but not recorded;
 *	  it is cut off and will be received again;
 *	- FILE.<segment+1> exists: a rotation renamed the file but died before
 *	  recording it; the rotation is completed;
 *	- the file is missing or has another inode: it was moved away (external
 *	  log rotation); a new file is started and a warning says so;
 *	- the file is shorter than the recorded offset (same inode): something
 *	  else truncated it; kappa_recv refuses to guess (KR_EXIT_STATE).
 *
 * Also owns rotation by size (--rotate-size: FILE is renamed FILE.000001,
 * FILE.000002, ... between transactions, after a sync) and reopening FILE
 * on SIGHUP.
 *
 * Does not own: the decision when to sync (consume.c) nor the state file
 * itself (state.c).
 *
 * tools/kappa_recv/sink_file.c
 *
 *-------------------------------------------------------------------------
 */
#include "kappa_recv.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/logging.h"

#define FILE_BUFSIZE	(256 * 1024)

typedef struct FileSink
{
	char	   *path;
	uint64		rotate_size;
	int			fd;
	uint64		inode;
	uint64		segment;
	uint64		written;		/* logical end of file, buffer included */
	uint64		committed;		/* end of the last complete unit */
	char	   *buf;			/* bytes [written - buflen, written) */
	size_t		buflen;
} FileSink;

static char *
segment_path(FileSink *fs, uint64 segment)
{
	return psprintf("%s.%06llu", fs->path, (unsigned long long) segment);
}

static bool
flush_buffer(FileSink *fs)
{
	if (fs->buflen == 0)
		return true;
	if (!kr_write_all(fs->fd, fs->buf, fs->buflen))
	{
		pg_log_error("could not write to output file \"%s\": %m", fs->path);
		return false;
	}
	fs->buflen = 0;
	return true;
}

static bool
append(FileSink *fs, const char *data, size_t len)
{
	if (fs->buflen + len > FILE_BUFSIZE && !flush_buffer(fs))
		return false;
	if (len >= FILE_BUFSIZE)
	{
		if (!kr_write_all(fs->fd, data, len))
		{
			pg_log_error("could not write to output file \"%s\": %m", fs->path);
			return false;
		}
	}
	else
	{
		memcpy(fs->buf + fs->buflen, data, len);
		fs->buflen += len;
	}
	fs->written += len;
	return true;
}

/* Cut the file back to 'offset' (the end of a complete unit). */
static bool
cut_to(FileSink *fs, uint64 offset)
{
	uint64		bufstart = fs->written - fs->buflen;

	if (offset >= bufstart)
	{
		fs->buflen = offset - bufstart;
		fs->written = offset;
		return true;
	}
	fs->buflen = 0;
	if (ftruncate(fs->fd, (off_t) offset) != 0 ||
		lseek(fs->fd, (off_t) offset, SEEK_SET) < 0)
	{
		pg_log_error("could not truncate output file \"%s\": %m", fs->path);
		return false;
	}
	fs->written = offset;
	return true;
}

/* Open (creating if needed) the output file positioned at 'offset'. */
static bool
open_at(FileSink *fs, uint64 offset, bool create)
{
	struct stat st;

	fs->fd = open(fs->path, O_WRONLY | (create ? O_CREAT : 0), 0644);
	if (fs->fd < 0)
	{
		pg_log_error("could not open output file \"%s\": %m", fs->path);
		return false;
	}
	if (fstat(fs->fd, &st) != 0)
	{
		pg_log_error("could not stat output file \"%s\": %m", fs->path);
		return false;
	}
	if ((uint64) st.st_size > offset)
	{
		pg_log_info("discarding the last %llu bytes of \"%s\": transaction not recorded as consumed",
					(unsigned long long) (st.st_size - offset), fs->path);
		if (ftruncate(fs->fd, (off_t) offset) != 0 || fdatasync(fs->fd) != 0)
		{
			pg_log_error("could not truncate output file \"%s\": %m", fs->path);
			return false;
		}
	}
	if (lseek(fs->fd, (off_t) offset, SEEK_SET) < 0)
	{
		pg_log_error("could not seek in output file \"%s\": %m", fs->path);
		return false;
	}
	if (create && !fsync_parent_dir(fs->path))
		return false;
	fs->inode = (uint64) st.st_ino;
	fs->written = fs->committed = offset;
	fs->buflen = 0;
	return true;
}

static int
file_open(KRSink *sink, KRState *state)
{
	FileSink   *fs = sink->private_data;
	struct stat st;
	bool		exists;
	char	   *next = segment_path(fs, state->segment + 1);
	struct stat nst;

	exists = stat(fs->path, &st) == 0;
	if (!exists && errno != ENOENT)
	{
		pg_log_error("could not stat output file \"%s\": %m", fs->path);
		return KR_EXIT_SINK;
	}

	if (state->inode == 0)
	{
		/* first run with this state file */
		if (exists && st.st_size > 0)
		{
			pg_log_error("output file \"%s\" already exists and has no state file",
						 fs->path);
			pg_log_error_hint("kappa_recv cannot tell what it holds. Move it away, or "
							  "name the state file that belongs to it with --state-file.");
			return KR_EXIT_STATE;
		}
		if (!open_at(fs, 0, true))
			return KR_EXIT_SINK;
	}
	else if (stat(next, &nst) == 0 && (uint64) nst.st_ino == state->inode)
	{
		/* a rotation renamed the file and was not recorded: finish it */
		pg_log_info("completing the rotation of \"%s\" to \"%s\"", fs->path, next);
		if ((uint64) nst.st_size > state->offset &&
			truncate(next, (off_t) state->offset) != 0)
		{
			pg_log_error("could not truncate \"%s\": %m", next);
			return KR_EXIT_SINK;
		}
		state->segment++;
		if (!exists || (uint64) st.st_ino == state->inode)
		{
			if (!open_at(fs, 0, true))
				return KR_EXIT_SINK;
		}
		else
		{
			/* the new file was created; nothing was written to it */
			if (!open_at(fs, 0, false))
				return KR_EXIT_SINK;
		}
	}
	else if (!exists || (uint64) st.st_ino != state->inode)
	{
		pg_log_warning("output file \"%s\" was %s since the last run; continuing in a new file",
					   fs->path, exists ? "replaced" : "moved away");
		if (!open_at(fs, exists ? (uint64) st.st_size : 0, true))
			return KR_EXIT_SINK;
	}
	else if ((uint64) st.st_size < state->offset)
	{
		pg_log_error("output file \"%s\" is shorter (%llu bytes) than the %llu bytes recorded in the state file",
					 fs->path, (unsigned long long) st.st_size,
					 (unsigned long long) state->offset);
		pg_log_error_detail("Something other than kappa_recv truncated it; consumed transactions are missing.");
		return KR_EXIT_STATE;
	}
	else if (!open_at(fs, state->offset, false))
		return KR_EXIT_SINK;

	pfree(next);
	fs->segment = state->segment;
	state->offset = fs->committed;
	state->inode = fs->inode;
	return KR_EXIT_OK;
}

static bool
file_begin(KRSink *sink)
{
	(void) sink;
	return true;
}

static bool
file_write(KRSink *sink, const char *line, size_t len)
{
	FileSink   *fs = sink->private_data;

	if (!append(fs, line, len))
		return false;
	return append(fs, "\n", 1);
}

static bool
file_abort(KRSink *sink)
{
	FileSink   *fs = sink->private_data;

	return cut_to(fs, fs->committed);
}

static bool
file_commit(KRSink *sink, const KRUnitInfo *info)
{
	FileSink   *fs = sink->private_data;

	(void) info;
	fs->committed = fs->written;
	return true;
}

static bool
file_sync(KRSink *sink, KRState *state)
{
	FileSink   *fs = sink->private_data;

	if (!flush_buffer(fs))
		return false;
	if (fdatasync(fs->fd) != 0)
	{
		pg_log_error("could not fsync output file \"%s\": %m", fs->path);
		return false;
	}
	state->offset = fs->committed;
	state->segment = fs->segment;
	state->inode = fs->inode;
	return true;
}

static bool
file_maintain(KRSink *sink, KRState *state, bool reopen, bool *changed)
{
	FileSink   *fs = sink->private_data;

	*changed = false;
	if (fs->rotate_size > 0 && fs->committed >= fs->rotate_size)
	{
		char	   *next = segment_path(fs, fs->segment + 1);

		if (!flush_buffer(fs))
			return false;
		if (rename(fs->path, next) != 0)
		{
			pg_log_error("could not rename \"%s\" to \"%s\": %m", fs->path, next);
			return false;
		}
		if (!fsync_parent_dir(fs->path))
			return false;
		kr_test_crash_point("rotate");
		close(fs->fd);
		if (!open_at(fs, 0, true))
			return false;
		if (kr_opt.verbose)
			pg_log_info("rotated output to \"%s\"", next);
		pfree(next);
		fs->segment++;
		*changed = true;
	}
	else if (reopen)
	{
		struct stat st;

		if (!flush_buffer(fs))
			return false;
		close(fs->fd);
		/* the old file may be gone; append to whatever FILE is now */
		if (stat(fs->path, &st) != 0)
			st.st_size = 0;
		if (!open_at(fs, (uint64) st.st_size, true))
			return false;
		pg_log_info("reopened output file \"%s\"", fs->path);
		*changed = true;
	}
	state->offset = fs->committed;
	state->segment = fs->segment;
	state->inode = fs->inode;
	return true;
}

static void
file_close(KRSink *sink)
{
	FileSink   *fs = sink->private_data;

	if (fs->fd >= 0)
	{
		/* only complete units reach the file */
		(void) cut_to(fs, fs->committed);
		(void) flush_buffer(fs);
		close(fs->fd);
		fs->fd = -1;
	}
}

KRSink *
sink_file_create(const char *path, uint64 rotate_size)
{
	KRSink	   *sink = palloc0(sizeof(KRSink));
	FileSink   *fs = palloc0(sizeof(FileSink));

	fs->path = pstrdup(path);
	fs->rotate_size = rotate_size;
	fs->fd = -1;
	fs->buf = palloc(FILE_BUFSIZE);
	sink->open = file_open;
	sink->begin = file_begin;
	sink->write = file_write;
	sink->abort = file_abort;
	sink->commit = file_commit;
	sink->sync = file_sync;
	sink->maintain = file_maintain;
	sink->close = file_close;
	sink->sync_on_commit = false;
	sink->private_data = fs;
	return sink;
}
