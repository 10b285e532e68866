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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/builtins.h"
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
 * Append str[0..len) as a quoted JSON string.  Runs of bytes that need no
 * escape are copied in one call.
 */
void
kappa_json_string(StringInfo buf, const char *str, int len)
{
	const unsigned char *p = (const unsigned char *) str;
	const unsigned char *end = p + len;
	const unsigned char *run = p;

	enlargeStringInfo(buf, len + 2);
	buf->data[buf->len++] = '"';
	for (; p < end; p++)
	{
		char		esc = json_escape[*p];
		char		tmp[6];

		if (likely(esc == 0))
			continue;
		if (p > run)
			appendBinaryStringInfo(buf, (const char *) run, p - run);
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

				appendBinaryStringInfo(buf, VARDATA_ANY(t),
									   VARSIZE_ANY_EXHDR(t));
			}
			break;
		case KVK_JSONB:
			{
				/* what jsonb_out prints, without the intermediate copy */
				Jsonb	   *jb = DatumGetJsonbP(value);

				(void) JsonbToCString(buf, &jb->root, VARSIZE(jb));
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
