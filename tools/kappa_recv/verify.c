/*-------------------------------------------------------------------------
 *
 * verify.c
 *	  Checking the pg_kappa stream as it arrives.
 *
 * Owns: reading the few top-level fields kappa_recv needs from a record
 * (kind, xid, lsn, changes, checksum) without a general JSON parser,
 * grouping records into units (begin ... commit, begin_prepare ... prepare,
 * or one stand-alone record), and checking each transaction against its
 * commit record: the number of change records and the CRC-32C over each
 * change record followed by "\n", exactly as the plugin computes it
 * (README.md, "Checksum").
 *
 * Also owns the two test hooks that damage a change record in transit,
 * before it is checked: KAPPA_RECV_TEST_CORRUPT=N changes a character of
 * the Nth change record received, KAPPA_RECV_TEST_DROP=N loses it.  A
 * record is checked as the bytes that will be written, so damage anywhere
 * before the sink is caught.
 *
 * Does not own: what happens to a record (consume.c hands it to the sink).
 *
 * tools/kappa_recv/verify.c
 *
 *-------------------------------------------------------------------------
 */
#include "kappa_recv.h"

#include "common/logging.h"

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* p is at an opening quote; return the position after the closing one. */
static const char *
skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++)
	{
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Skip one JSON value of any kind; NULL when the text is malformed. */
static const char *
skip_value(const char *p, const char *end)
{
	int			depth = 0;

	if (p >= end)
		return NULL;
	if (*p == '"')
		return skip_string(p, end);
	if (*p != '{' && *p != '[')
	{
		/* number, true, false, null */
		while (p < end && *p != ',' && *p != '}' && *p != ']' &&
			   *p != ' ' && *p != '\n')
			p++;
		return p;
	}
	while (p < end)
	{
		if (*p == '"')
		{
			p = skip_string(p, end);
			if (p == NULL)
				return NULL;
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
		{
			if (--depth == 0)
				return p + 1;
		}
		p++;
	}
	return NULL;
}

/*
 * Find the value of a top-level key of the object in line[0..len).  Only
 * keys without escapes are looked for, so the key comparison is bytewise.
 * On success *val points at the value's first byte (the quote of a string).
 */
bool
json_top_field(const char *line, size_t len, const char *key,
			   const char **val, size_t *vlen)
{
	const char *p = line;
	const char *end = line + len;
	size_t		klen = strlen(key);

	p = skip_ws(p, end);
	if (p >= end || *p != '{')
		return false;
	p++;
	for (;;)
	{
		const char *kstart;
		const char *kend;
		const char *vstart;

		p = skip_ws(p, end);
		if (p >= end || *p != '"')
			return false;
		kstart = p + 1;
		p = skip_string(p, end);
		if (p == NULL)
			return false;
		kend = p - 1;
		p = skip_ws(p, end);
		if (p >= end || *p != ':')
			return false;
		p = skip_ws(p + 1, end);
		vstart = p;
		p = skip_value(p, end);
		if (p == NULL)
			return false;
		if ((size_t) (kend - kstart) == klen && memcmp(kstart, key, klen) == 0)
		{
			*val = vstart;
			*vlen = p - vstart;
			return true;
		}
		p = skip_ws(p, end);
		if (p >= end || *p != ',')
			return false;
		p++;
	}
}

/* A string field's content without quotes (no unescaping). */
static bool
string_field(const char *line, size_t len, const char *key,
			 const char **s, size_t *slen)
{
	const char *val;
	size_t		vlen;

	if (!json_top_field(line, len, key, &val, &vlen) || vlen < 2 ||
		val[0] != '"')
		return false;
	*s = val + 1;
	*slen = vlen - 2;
	return true;
}

static bool
field_equals(const char *s, size_t slen, const char *word)
{
	return slen == strlen(word) && memcmp(s, word, slen) == 0;
}

/* Copy a numeric xid field into buf ("" when absent). */
static void
copy_xid(const char *line, size_t len, char *buf, size_t bufsize)
{
	const char *val;
	size_t		vlen;

	buf[0] = '\0';
	if (json_top_field(line, len, "xid", &val, &vlen) && vlen < bufsize &&
		vlen > 0 && val[0] >= '0' && val[0] <= '9')
	{
		memcpy(buf, val, vlen);
		buf[vlen] = '\0';
	}
}

void
verifier_init(KRVerifier *v)
{
	const char *env;

	memset(v, 0, sizeof(*v));
	env = getenv("KAPPA_RECV_TEST_CORRUPT");
	v->corrupt_at = env ? atol(env) : 0;
	env = getenv("KAPPA_RECV_TEST_DROP");
	v->drop_at = env ? atol(env) : 0;
}

/* Forget a partly received unit (the connection was lost). */
void
verifier_reset(KRVerifier *v)
{
	v->in_unit = false;
	v->nchanges = 0;
}

/*
 * Damage a record on purpose (tests only): change its last digit, or the
 * case of its last letter, so that it stays one line of valid-looking JSON.
 */
static void
corrupt_record(char *line, size_t len)
{
	size_t		i;

	for (i = len; i > 0; i--)
	{
		char		c = line[i - 1];

		if (c >= '0' && c <= '9')
		{
			line[i - 1] = c == '9' ? '0' : c + 1;
			return;
		}
	}
	for (i = len; i > 0; i--)
	{
		char		c = line[i - 1];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		{
			line[i - 1] = c ^ 0x20;
			return;
		}
	}
}

static void
fill_info(const char *line, size_t len, XLogRecPtr header_lsn,
		  KRUnitInfo *info)
{
	const char *s;
	size_t		slen;

	memset(info, 0, sizeof(*info));
	info->position = header_lsn;
	if (!string_field(line, len, "lsn", &s, &slen) ||
		!kr_parse_lsn(s, slen, &info->commit_lsn))
		info->commit_lsn = InvalidXLogRecPtr;
	copy_xid(line, len, info->xid, sizeof(info->xid));
}

/* Log a record in an error message, shortened. */
static void
log_record(const char *line, size_t len)
{
	pg_log_error_detail("The record is: %.*s%s",
						(int) Min(len, 200), line, len > 200 ? "..." : "");
}

/*
 * Classify one record and fold it into the open unit.  The record may be
 * modified in place or dropped (*drop) by the test hooks.  Errors are
 * logged here; the caller stops with KR_EXIT_VERIFY.
 */
KRLineKind
verifier_line(KRVerifier *v, char *line, size_t *len, XLogRecPtr header_lsn,
			  KRUnitInfo *info, bool *drop)
{
	const char *kind;
	size_t		klen;

	*drop = false;
	if (!string_field(line, *len, "kind", &kind, &klen))
	{
		pg_log_error("received a record that is not a pg_kappa JSON object at %X/%X",
					 LSN_FORMAT_ARGS(header_lsn));
		log_record(line, *len);
		return KR_LINE_ERROR;
	}

	if (field_equals(kind, klen, "begin") ||
		field_equals(kind, klen, "begin_prepare"))
	{
		if (v->in_unit)
		{
			pg_log_error("transaction %s was not committed before the next one began at %X/%X",
						 v->xid[0] ? v->xid : "(unknown xid)",
						 LSN_FORMAT_ARGS(header_lsn));
			return KR_LINE_ERROR;
		}
		v->in_unit = true;
		v->nchanges = 0;
		INIT_CRC32C(v->crc);
		copy_xid(line, *len, v->xid, sizeof(v->xid));
		return KR_LINE_OPEN;
	}

	if (field_equals(kind, klen, "commit") ||
		field_equals(kind, klen, "prepare"))
	{
		const char *val;
		size_t		vlen;
		const char *sum;
		size_t		sumlen;
		char		numbuf[32];
		char		ours[16];
		uint64		changes;
		pg_crc32c	crc;

		if (!v->in_unit)
		{
			pg_log_error("received a %.*s record without a transaction at %X/%X",
						 (int) klen, kind, LSN_FORMAT_ARGS(header_lsn));
			return KR_LINE_ERROR;
		}
		fill_info(line, *len, header_lsn, info);
		if (!json_top_field(line, *len, "changes", &val, &vlen) ||
			vlen == 0 || vlen >= sizeof(numbuf) ||
			!string_field(line, *len, "checksum", &sum, &sumlen) ||
			sumlen != 8)
		{
			pg_log_error("commit record of transaction %s has no valid changes and checksum fields",
						 info->xid[0] ? info->xid : "(unknown xid)");
			log_record(line, *len);
			return KR_LINE_ERROR;
		}
		memcpy(numbuf, val, vlen);
		numbuf[vlen] = '\0';
		changes = strtou64(numbuf, NULL, 10);
		info->changes = v->nchanges;
		crc = v->crc;
		FIN_CRC32C(crc);
		snprintf(ours, sizeof(ours), "%08x", crc);
		if (changes != v->nchanges)
		{
			pg_log_error("change count mismatch in transaction %s committed at %X/%X: "
						 "received %llu change records, commit record says %llu",
						 info->xid[0] ? info->xid : "(unknown xid)",
						 LSN_FORMAT_ARGS(info->commit_lsn),
						 (unsigned long long) v->nchanges,
						 (unsigned long long) changes);
			return KR_LINE_ERROR;
		}
		if (memcmp(ours, sum, 8) != 0)
		{
			pg_log_error("checksum mismatch in transaction %s committed at %X/%X: "
						 "computed %s over %llu change records, commit record says %.8s",
						 info->xid[0] ? info->xid : "(unknown xid)",
						 LSN_FORMAT_ARGS(info->commit_lsn), ours,
						 (unsigned long long) v->nchanges, sum);
			return KR_LINE_ERROR;
		}
		memcpy(info->checksum, ours, sizeof(info->checksum));
		v->in_unit = false;
		return KR_LINE_CLOSE;
	}

	if (klen > 7 && memcmp(kind, "stream_", 7) == 0)
	{
		pg_log_error("received a streamed transaction record (%.*s)",
					 (int) klen, kind);
		pg_log_error_hint("kappa_recv delivers whole transactions; do not pass -o streaming=on.");
		return KR_LINE_ERROR;
	}

	if (!v->in_unit)
	{
		/* non-transactional message, commit_prepared, rollback_prepared */
		fill_info(line, *len, header_lsn, info);
		return KR_LINE_SINGLE;
	}

	/* a change record of the open transaction */
	v->total_changes++;
	if (v->drop_at > 0 && v->total_changes == (uint64) v->drop_at)
	{
		pg_log_warning("test hook: dropping change record %llu",
					   (unsigned long long) v->total_changes);
		*drop = true;
		return KR_LINE_CHANGE;
	}
	if (v->corrupt_at > 0 && v->total_changes == (uint64) v->corrupt_at)
	{
		pg_log_warning("test hook: corrupting change record %llu",
					   (unsigned long long) v->total_changes);
		corrupt_record(line, *len);
	}
	COMP_CRC32C(v->crc, line, *len);
	COMP_CRC32C(v->crc, "\n", 1);
	v->nchanges++;
	return KR_LINE_CHANGE;
}
