/*-------------------------------------------------------------------------
 *
 * state.c
 *	  The durable state file of kappa_recv.
 *
 * Owns: the on-disk format of the state file and the only way it is
 * written: to a temporary file beside it, fsync, rename over the old one,
 * fsync of the directory.  A crash at any moment therefore leaves either
 * the old or the new state, never a mix; a CRC-32C line at the end catches
 * a file damaged by other means.  Also owns fsync_parent_dir(), used by the
 * sinks after they create or rename files.
 *
 * Does not own: when the state is written or what the position means
 * (consume.c), nor how the file sink uses segment, offset and inode to
 * recover its output (sink_file.c).
 *
 * The format is text, one "key value" per line:
 *
 *		kappa_recv state 1
 *		slot s1
 *		position 0/1538DE0
 *		commit_lsn 0/1538DB0
 *		xid 727
 *		segment 0
 *		offset 4096
 *		inode 1234567
 *		crc 8d8cc5cf
 *
 * tools/kappa_recv/state.c
 *
 *-------------------------------------------------------------------------
 */
#include "kappa_recv.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/logging.h"

#define STATE_HEADER "kappa_recv state 1\n"

bool
fsync_parent_dir(const char *path)
{
	char	   *dir = pstrdup(path);
	char	   *slash = strrchr(dir, '/');
	int			fd;
	bool		ok = true;

	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY);
	if (fd < 0 || fsync(fd) != 0)
	{
		pg_log_error("could not fsync directory \"%s\": %m", dir);
		ok = false;
	}
	if (fd >= 0)
		close(fd);
	pfree(dir);
	return ok;
}

static char *
state_text(const KRState *state)
{
	char		body[1024];
	pg_crc32c	crc;

	snprintf(body, sizeof(body),
			 STATE_HEADER
			 "slot %s\n"
			 "position %X/%X\n"
			 "commit_lsn %X/%X\n"
			 "xid %s\n"
			 "segment %llu\n"
			 "offset %llu\n"
			 "inode %llu\n",
			 state->slot,
			 LSN_FORMAT_ARGS(state->position),
			 LSN_FORMAT_ARGS(state->commit_lsn),
			 state->xid[0] ? state->xid : "-",
			 (unsigned long long) state->segment,
			 (unsigned long long) state->offset,
			 (unsigned long long) state->inode);
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, body, strlen(body));
	FIN_CRC32C(crc);
	return psprintf("%scrc %08x\n", body, crc);
}

bool
state_write(const char *path, const KRState *state)
{
	char	   *text = state_text(state);
	char	   *tmp = psprintf("%s.tmp", path);
	size_t		len = strlen(text);
	int			fd;
	bool		ok = false;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
	{
		pg_log_error("could not create state file \"%s\": %m", tmp);
		goto done;
	}
	errno = 0;
	if (write(fd, text, len) != (ssize_t) len)
	{
		if (errno == 0)
			errno = ENOSPC;
		pg_log_error("could not write state file \"%s\": %m", tmp);
		close(fd);
		goto done;
	}
	if (fsync(fd) != 0)
	{
		pg_log_error("could not fsync state file \"%s\": %m", tmp);
		close(fd);
		goto done;
	}
	if (close(fd) != 0)
	{
		pg_log_error("could not close state file \"%s\": %m", tmp);
		goto done;
	}
	if (rename(tmp, path) != 0)
	{
		pg_log_error("could not rename \"%s\" to \"%s\": %m", tmp, path);
		goto done;
	}
	ok = fsync_parent_dir(path);
done:
	pfree(text);
	pfree(tmp);
	return ok;
}

static bool
parse_u64(const char *s, uint64 *v)
{
	char	   *end;

	errno = 0;
	*v = strtou64(s, &end, 10);
	return errno == 0 && end != s && *end == '\0';
}

/*
 * Read the state file.  A missing file is not an error (*exists = false);
 * anything unreadable or damaged is, because guessing could lose or repeat
 * transactions.
 */
bool
state_read(const char *path, KRState *state, bool *exists)
{
	FILE	   *f;
	char		buf[2048];
	size_t		n;
	char	   *crcline;
	char	   *line;
	char	   *save;
	pg_crc32c	crc;
	unsigned int filecrc;
	int			seen = 0;

	memset(state, 0, sizeof(*state));
	*exists = false;
	f = fopen(path, "r");
	if (f == NULL)
	{
		if (errno == ENOENT)
			return true;
		pg_log_error("could not open state file \"%s\": %m", path);
		return false;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	if (ferror(f))
	{
		pg_log_error("could not read state file \"%s\": %m", path);
		fclose(f);
		return false;
	}
	fclose(f);
	buf[n] = '\0';
	*exists = true;

	crcline = strstr(buf, "\ncrc ");
	if (strncmp(buf, STATE_HEADER, strlen(STATE_HEADER)) != 0 ||
		crcline == NULL || sscanf(crcline + 5, "%8x", &filecrc) != 1)
	{
		pg_log_error("state file \"%s\" is not a kappa_recv state file", path);
		return false;
	}
	/* the checksum line is the last one */
	if (strlen(crcline) != strlen("\ncrc 12345678\n") ||
		crcline[strlen(crcline) - 1] != '\n')
	{
		pg_log_error("state file \"%s\" is damaged: text after its checksum", path);
		return false;
	}
	crcline++;
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, buf, crcline - buf);
	FIN_CRC32C(crc);
	if (crc != filecrc)
	{
		pg_log_error("state file \"%s\" is damaged: its checksum does not match", path);
		pg_log_error_hint("Restore it from a backup, or start over with a new output file and slot.");
		return false;
	}
	*crcline = '\0';

	for (line = strtok_r(buf + strlen(STATE_HEADER), "\n", &save);
		 line != NULL;
		 line = strtok_r(NULL, "\n", &save))
	{
		char	   *val = strchr(line, ' ');
		bool		ok = true;

		if (val == NULL)
			continue;
		*val++ = '\0';
		if (strcmp(line, "slot") == 0)
			strlcpy(state->slot, val, sizeof(state->slot));
		else if (strcmp(line, "position") == 0)
			ok = kr_parse_lsn(val, strlen(val), &state->position);
		else if (strcmp(line, "commit_lsn") == 0)
			ok = kr_parse_lsn(val, strlen(val), &state->commit_lsn);
		else if (strcmp(line, "xid") == 0)
			strlcpy(state->xid, strcmp(val, "-") == 0 ? "" : val,
					sizeof(state->xid));
		else if (strcmp(line, "segment") == 0)
			ok = parse_u64(val, &state->segment);
		else if (strcmp(line, "offset") == 0)
			ok = parse_u64(val, &state->offset);
		else if (strcmp(line, "inode") == 0)
			ok = parse_u64(val, &state->inode);
		else
			continue;
		if (!ok)
		{
			pg_log_error("state file \"%s\" has an invalid %s: \"%s\"",
						 path, line, val);
			return false;
		}
		seen++;
	}
	if (seen < 7)
	{
		pg_log_error("state file \"%s\" is incomplete", path);
		return false;
	}
	return true;
}
