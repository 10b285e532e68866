/*-------------------------------------------------------------------------
 *
 * json_write.c
 *	  How pg_kappa writes JSON: escaped strings, LSNs, times and typed
 *	  column values.
 *
 * This file owns the exact bytes of every value in the plugin's output.
 * It does not know about records, transactions or options: the callbacks
 * in output_plugin.c decide what to write, this file decides how.
 *
 * Values are written straight into the caller's StringInfo.  The common
 * types (integers, booleans, text, dates and times) avoid the type's output
 * function, which would palloc an intermediate string per value.
 *
 * In a UTF-8 database, non-ASCII characters are copied as they are.  In a
 * database of another encoding they are written as \uXXXX escapes, so that
 * every line is ASCII: valid JSON whether it reaches the consumer through
 * the SQL functions (converted to the client encoding) or through the
 * replication protocol (sent as is).  SQL_ASCII has no known encoding to
 * convert from, so its bytes are copied.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/resowner.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "pg_kappa.h"

/*
 * For every byte, the escape that JSON needs, or 0 when the byte is copied
 * as is.  1 means "\u00XX".  Bytes >= 0x80 are copied: the output is in the
 * database encoding, which the server has already validated.
 */
static const char json_escape[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 'b', 't', 'n', 1, 'f', 'r', 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,
};

static const char hexdigits[] = "0123456789abcdef";

/*
 * Set by kappa_json_startup.  In ASCII-only mode escape_table is a copy of
 * json_escape where bytes >= 0x80 are 2: "convert to \uXXXX escapes".
 */
static const char *escape_table = json_escape;
static char json_escape_ascii[256];
static int	ascii_only_encoding = -1;	/* the database encoding, or -1 */
static FmgrInfo to_utf8;		/* its conversion function to UTF-8 */

/*
 * Prepare for a decoding session: decide whether non-ASCII characters are
 * escaped, and if so look up the conversion to UTF-8 now, since values may
 * be written where no catalog access is possible (a non-transactional
 * message in a walsender).  The lookup's memory lives in mcxt.
 */
void
kappa_json_startup(MemoryContext mcxt)
{
	int			enc = GetDatabaseEncoding();
	Oid			proc;
	bool		own_xact = false;
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	escape_table = json_escape;
	ascii_only_encoding = -1;
	if (enc == PG_UTF8 || enc == PG_SQL_ASCII)
		return;

	if (!IsTransactionState())
	{
		StartTransactionCommand();
		own_xact = true;
	}
	proc = FindDefaultConversionProc(enc, PG_UTF8);
	if (!OidIsValid(proc))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("default conversion function for encoding \"%s\" to \"%s\" does not exist",
						pg_encoding_to_char(enc), pg_encoding_to_char(PG_UTF8))));
	fmgr_info_cxt(proc, &to_utf8, mcxt);
	if (own_xact)
	{
		/* a walsender: give back the memory context and resource owner */
		CommitTransactionCommand();
		CurrentResourceOwner = oldowner;
	}
	MemoryContextSwitchTo(oldcxt);

	memcpy(json_escape_ascii, json_escape, 128);
	memset(json_escape_ascii + 128, 2, 128);
	escape_table = json_escape_ascii;
	ascii_only_encoding = enc;
}

/*
 * Append the characters src[0..len), all non-ASCII and in the database
 * encoding, as \uXXXX escapes (surrogate pairs beyond the BMP).
 */
static void
append_unicode_escapes(StringInfo buf, const char *src, int len)
{
	char	   *utf8 = palloc((Size) len * MAX_CONVERSION_GROWTH + 1);
	const unsigned char *p;

	(void) FunctionCall6(&to_utf8,
						 Int32GetDatum(ascii_only_encoding),
						 Int32GetDatum(PG_UTF8),
						 CStringGetDatum(src),
						 CStringGetDatum(utf8),
						 Int32GetDatum(len),
						 BoolGetDatum(false));
	for (p = (const unsigned char *) utf8; *p; p += pg_utf_mblen(p))
	{
		pg_wchar	c = utf8_to_unicode(p);
		char		tmp[13];

		if (c > 0xffff)
		{
			c -= 0x10000;
			snprintf(tmp, sizeof(tmp), "\\u%04x\\u%04x",
					 (unsigned) (0xd800 + (c >> 10)), (unsigned) (0xdc00 + (c & 0x3ff)));
			appendBinaryStringInfo(buf, tmp, 12);
		}
		else
		{
			snprintf(tmp, sizeof(tmp), "\\u%04x", (unsigned) c);
			appendBinaryStringInfo(buf, tmp, 6);
		}
	}
	pfree(utf8);
}

/*
 * In ASCII-only mode, rewrite buf from offset start (JSON text written as
 * is, such as json and jsonb values) with its non-ASCII characters escaped.
 * Those can only be inside JSON strings, where an escape means the same.
 */
static void
escape_tail(StringInfo buf, int start)
{
	char	   *copy;
	const char *p,
			   *end;

	for (p = buf->data + start; p < buf->data + buf->len; p++)
	{
		if (IS_HIGHBIT_SET(*p))
			break;
	}
	if (p == buf->data + buf->len)
		return;

	copy = pnstrdup(buf->data + start, buf->len - start);
	end = copy + (buf->len - start);
	buf->len = start;
	buf->data[start] = '\0';
	p = copy;
	while (p < end)
	{
		const char *q = p;

		while (q < end && !IS_HIGHBIT_SET(*q))
			q++;
		appendBinaryStringInfo(buf, p, q - p);
		p = q;
		while (q < end && IS_HIGHBIT_SET(*q))
			q++;
		if (q > p)
			append_unicode_escapes(buf, p, q - p);
		p = q;
	}
	pfree(copy);
}

/*
 * Append str[0..len) as a quoted JSON string.  Runs of bytes that need no
 * escape are copied in one call.
 */
void
kappa_json_string(StringInfo buf, const char *str, int len)
{
	const unsigned char *p = (const unsigned char *) str;
	const unsigned char *end = p + len;
	const unsigned char *run = p;
	const char *table = escape_table;

	enlargeStringInfo(buf, len + 2);
	buf->data[buf->len++] = '"';
	for (; p < end; p++)
	{
		char		esc = table[*p];
		char		tmp[6];

		if (likely(esc == 0))
			continue;
		if (p > run)
			appendBinaryStringInfo(buf, (const char *) run, p - run);
		if (esc == 2)
		{
			/* ASCII-only mode: a run of non-ASCII characters */
			run = p;
			while (p + 1 < end && IS_HIGHBIT_SET(p[1]))
				p++;
			append_unicode_escapes(buf, (const char *) run, p + 1 - run);
			run = p + 1;
			continue;
		}
		tmp[0] = '\\';
		if (esc == 1)
		{
			tmp[1] = 'u';
			tmp[2] = '0';
			tmp[3] = '0';
			tmp[4] = hexdigits[*p >> 4];
			tmp[5] = hexdigits[*p & 0x0f];
			appendBinaryStringInfo(buf, tmp, 6);
		}
		else
		{
			tmp[1] = esc;
			appendBinaryStringInfo(buf, tmp, 2);
		}
		run = p + 1;
	}
	if (p > run)
		appendBinaryStringInfo(buf, (const char *) run, p - run);
	appendStringInfoCharMacro(buf, '"');
}

void
kappa_json_cstring(StringInfo buf, const char *str)
{
	kappa_json_string(buf, str, strlen(str));
}

/* Append v in upper-case hex, without leading zeros, as %X prints it. */
static inline char *
hex32(char *p, uint32 v)
{
	static const char hexupper[] = "0123456789ABCDEF";
	char		tmp[8];
	int			n = 0;

	do
	{
		tmp[n++] = hexupper[v & 0x0f];
		v >>= 4;
	} while (v != 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

/*
 * Append an LSN as a quoted "X/X" string, as PostgreSQL prints it.  Every
 * change record carries one, so this avoids snprintf.
 */
void
kappa_json_lsn(StringInfo buf, XLogRecPtr lsn)
{
	char	   *p;

	enlargeStringInfo(buf, 20);
	p = buf->data + buf->len;
	*p++ = '"';
	p = hex32(p, (uint32) (lsn >> 32));
	*p++ = '/';
	p = hex32(p, (uint32) lsn);
	*p++ = '"';
	*p = '\0';
	buf->len = p - buf->data;
}

/* Append a timestamptz as a quoted ISO 8601 string in UTC. */
void
kappa_json_time(StringInfo buf, TimestampTz t)
{
	kappa_json_value(buf, KVK_TIMESTAMPTZ, NULL, TimestampTzGetDatum(t));
}

/*
 * Decide how values of a (base) type are written.
 */
KappaValueKind
kappa_value_kind(Oid basetypid)
{
	switch (basetypid)
	{
		case INT2OID:
			return KVK_INT16;
		case INT4OID:
			return KVK_INT32;
		case INT8OID:
			return KVK_INT64;
		case OIDOID:
			return KVK_OID;
		case FLOAT4OID:
		case FLOAT8OID:
			return KVK_FLOAT;
		case NUMERICOID:
			return KVK_NUMERIC;
		case BOOLOID:
			return KVK_BOOL;
		case JSONOID:
			return KVK_JSON;
		case JSONBOID:
			return KVK_JSONB;
		case DATEOID:
			return KVK_DATE;
		case TIMESTAMPOID:
			return KVK_TIMESTAMP;
		case TIMESTAMPTZOID:
			return KVK_TIMESTAMPTZ;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			return KVK_TEXT;
		default:
			return KVK_OTHER;
	}
}

/*
 * Output functions print NaN and infinities as words; JSON has no such
 * numbers, so those are written as strings and everything else as is.
 */
static void
append_number_text(StringInfo buf, const char *num)
{
	if (num[0] == 'N' || num[0] == 'I' || (num[0] == '-' && num[1] == 'I'))
		kappa_json_cstring(buf, num);
	else
		appendStringInfoString(buf, num);
}

/*
 * Append one non-null value.  outfunc is needed only for KVK_FLOAT,
 * KVK_NUMERIC and KVK_OTHER.
 */
void
kappa_json_value(StringInfo buf, KappaValueKind kind, FmgrInfo *outfunc,
				 Datum value)
{
	char		tmp[MAXDATELEN + 3];
	int			n;

	switch (kind)
	{
		case KVK_INT16:
			n = pg_itoa(DatumGetInt16(value), tmp);
			appendBinaryStringInfo(buf, tmp, n);
			break;
		case KVK_INT32:
			n = pg_ltoa(DatumGetInt32(value), tmp);
			appendBinaryStringInfo(buf, tmp, n);
			break;
		case KVK_INT64:
			n = pg_lltoa(DatumGetInt64(value), tmp);
			appendBinaryStringInfo(buf, tmp, n);
			break;
		case KVK_OID:
			n = pg_ultoa_n(DatumGetObjectId(value), tmp);
			appendBinaryStringInfo(buf, tmp, n);
			break;
		case KVK_BOOL:
			if (DatumGetBool(value))
				appendBinaryStringInfo(buf, "true", 4);
			else
				appendBinaryStringInfo(buf, "false", 5);
			break;
		case KVK_FLOAT:
		case KVK_NUMERIC:
			append_number_text(buf, OutputFunctionCall(outfunc, value));
			break;
		case KVK_JSON:
			{
				/* json_out returns the stored text as is */
				text	   *t = DatumGetTextPP(value);
				int			start = buf->len;
				char	   *c;
				char	   *e;

				appendBinaryStringInfo(buf, VARDATA_ANY(t),
									   VARSIZE_ANY_EXHDR(t));

				/*
				 * A line break in json text is whitespace between tokens
				 * (a JSON string cannot hold one), and a record must stay
				 * on one line: make it a space.
				 */
				e = buf->data + buf->len;
				for (c = buf->data + start; (c = memchr(c, '\n', e - c)) != NULL;)
					*c++ = ' ';
				for (c = buf->data + start; (c = memchr(c, '\r', e - c)) != NULL;)
					*c++ = ' ';
				if (ascii_only_encoding >= 0)
					escape_tail(buf, start);
			}
			break;
		case KVK_JSONB:
			{
				/* what jsonb_out prints, without the intermediate copy */
				Jsonb	   *jb = DatumGetJsonbP(value);
				int			start = buf->len;

				(void) JsonbToCString(buf, &jb->root, VARSIZE(jb));
				if (ascii_only_encoding >= 0)
					escape_tail(buf, start);
			}
			break;
		case KVK_DATE:
		case KVK_TIMESTAMP:
		case KVK_TIMESTAMPTZ:
			{
				/* ISO 8601, UTC for timestamptz, whatever the session's
				 * DateStyle and TimeZone */
				static const int utc = 0;
				Oid			typid = kind == KVK_DATE ? DATEOID :
					kind == KVK_TIMESTAMP ? TIMESTAMPOID : TIMESTAMPTZOID;

				/*
				 * Digits, signs, "-:.T" or "infinity": nothing to escape,
				 * so it is copied between quotes without a scan.
				 */
				tmp[0] = '"';
				JsonEncodeDateTime(tmp + 1, value, typid, &utc);
				n = strlen(tmp);
				tmp[n++] = '"';
				appendBinaryStringInfo(buf, tmp, n);
			}
			break;
		case KVK_TEXT:
			{
				text	   *t = DatumGetTextPP(value);

				kappa_json_string(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			break;
		case KVK_OTHER:
			kappa_json_cstring(buf, OutputFunctionCall(outfunc, value));
			break;
	}
}
