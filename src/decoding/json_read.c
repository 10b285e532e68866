/*-------------------------------------------------------------------------
 *
 * json_read.c
 *	  Reading pg_kappa's JSON lines back as jsonb, without jsonb_in.
 *
 * kappa.events returns every logged record as jsonb.  jsonb_in goes
 * through PostgreSQL's general JSON parser (a lexer, a table of semantic
 * callbacks) and numeric_in for every number; the lines of the log are
 * ours (json_write.c), so a scanner made for them builds the same jsonb
 * for much less: strings without escapes are used in place, integers
 * become numerics without numeric_in, and the tree of values is built
 * directly (no pushJsonbValue), its object keys sorted and deduplicated
 * as pushJsonbValue does for jsonb_in, by a sort made for small objects.
 * JsonbValueToJsonb then writes the same jsonb, byte for byte.
 *
 * The scanner accepts strict JSON only.  Anything it is not sure to read
 * as jsonb_in would (a syntax error, a \u escape that jsonb_in refuses or
 * converts to another encoding, a string too long for jsonb) makes it give
 * up on the line, which then goes through jsonb_in: same result, same
 * errors.
 *
 * What this file does not do: read records into rows of a table (that is
 * replay_state.c's scanner, which never builds jsonb), or write JSON
 * (json_write.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "pg_kappa.h"

/* The line being read */
typedef struct LineReader
{
	const char *p;
	const char *end;
	bool		utf8;			/* the database encoding is UTF-8 */
} LineReader;

static bool read_value(LineReader *r, JsonbValue *v);

/* pushJsonbValue's limits (jsonb_util.c): past them, jsonb_in's error */
#define JSONB_MAX_ELEMS (Min(MaxAllocSize / sizeof(JsonbValue), JB_CMASK))
#define JSONB_MAX_PAIRS (Min(MaxAllocSize / sizeof(JsonbPair), JB_CMASK))

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

/* Move past JSON whitespace. */
static inline void
skip_ws(LineReader *r)
{
	while (r->p < r->end &&
		   (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/* The value of a hex digit, or -1. */
static inline int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits at s, or -1. */
static int
hex4(const char *s, const char *end)
{
	int			cp = 0;

	if (end - s < 4)
		return -1;
	for (int i = 0; i < 4; i++)
	{
		int			h = hexval(s[i]);

		if (h < 0)
			return -1;
		cp = (cp << 4) | h;
	}
	return cp;
}

/*
 * Unescape the contents of a string (s .. end, the escapes known to be
 * there) into a palloc'd buffer: false if jsonb_in would refuse it or
 * read it otherwise than here.
 */
static bool
unescape(LineReader *r, const char *s, const char *end, JsonbValue *v)
{
	char	   *buf = palloc(end - s + 1);
	char	   *o = buf;

	while (s < end)
	{
		unsigned char ch = *s;

		if (ch != '\\')
		{
			*o++ = *s++;
			continue;
		}
		s++;
		if (s >= end)
			return false;
		switch (*s)
		{
			case '"':
			case '\\':
			case '/':
				*o++ = *s++;
				break;
			case 'b':
				*o++ = '\b';
				s++;
				break;
			case 'f':
				*o++ = '\f';
				s++;
				break;
			case 'n':
				*o++ = '\n';
				s++;
				break;
			case 'r':
				*o++ = '\r';
				s++;
				break;
			case 't':
				*o++ = '\t';
				s++;
				break;
			case 'u':
				{
					int			cp = hex4(s + 1, end);

					s += 5;
					if (cp <= 0)
						return false;	/* not hex, or \u0000 */
					if (cp >= 0xD800 && cp <= 0xDBFF)
					{
						int			lo;

						if (end - s < 6 || s[0] != '\\' || s[1] != 'u')
							return false;
						lo = hex4(s + 2, end);
						if (lo < 0xDC00 || lo > 0xDFFF)
							return false;
						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						s += 6;
					}
					else if (cp >= 0xDC00 && cp <= 0xDFFF)
						return false;
					if (cp < 0x80)
						*o++ = (char) cp;
					else if (!r->utf8)
						return false;	/* jsonb_in converts it */
					else
					{
						/* at most 4 bytes for the 6 or 12 of the escape */
						unicode_to_utf8((pg_wchar) cp, (unsigned char *) o);
						o += pg_utf_mblen((unsigned char *) o);
					}
				}
				break;
			default:
				return false;
		}
	}
	*o = '\0';
	v->val.string.val = buf;
	v->val.string.len = o - buf;
	return true;
}

/*
 * The string at the cursor, as a jbvString: its bytes in place when it has
 * no escapes.
 */
static bool
read_string(LineReader *r, JsonbValue *v)
{
	const char *s = r->p + 1;
	const char *q = s;
	bool		escapes = false;

	for (;;)
	{
		unsigned char ch;

		if (q >= r->end)
			return false;
		ch = *q;
		if (ch == '"')
			break;
		if (ch < 0x20)
			return false;		/* must be escaped */
		if (ch == '\\')
		{
			escapes = true;
			q++;				/* the escaped character is not the end */
			if (q >= r->end)
				return false;
		}
		q++;
	}
	v->type = jbvString;
	if (escapes)
	{
		if (!unescape(r, s, q, v))
			return false;
	}
	else
	{
		v->val.string.val = (char *) s;
		v->val.string.len = q - s;
	}
	if (v->val.string.len > JENTRY_OFFLENMASK)
		return false;
	r->p = q + 1;
	return true;
}

/* The number at the cursor, as a jbvNumeric. */
static bool
read_number(LineReader *r, JsonbValue *v)
{
	const char *s = r->p;
	const char *q = s;
	bool		integer = true;

	if (q < r->end && *q == '-')
		q++;
	if (q >= r->end || !IS_DIGIT(*q))
		return false;
	if (*q == '0')
		q++;
	else
		while (q < r->end && IS_DIGIT(*q))
			q++;
	if (q < r->end && *q == '.')
	{
		integer = false;
		q++;
		if (q >= r->end || !IS_DIGIT(*q))
			return false;
		while (q < r->end && IS_DIGIT(*q))
			q++;
	}
	if (q < r->end && (*q == 'e' || *q == 'E'))
	{
		const char *e;

		integer = false;
		q++;
		if (q < r->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= r->end || !IS_DIGIT(*q))
			return false;
		e = q;
		while (q < r->end && IS_DIGIT(*q))
			q++;
		/* numeric_in refuses exponents past 1000: leave those to jsonb_in */
		if (q - e > 3)
			return false;
	}
	/*
	 * Nor may numeric_in fail here, on a number of the user's (a json
	 * column's value): past 1000 characters, the number might overflow
	 * numeric, and jsonb_in raises that error if the line is returned.
	 */
	if (q - s > 1000)
		return false;
	/* a number ends at a delimiter */
	if (q < r->end && *q != ',' && *q != '}' && *q != ']' &&
		*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
		return false;

	v->type = jbvNumeric;
	if (integer && q - s <= 18 + (*s == '-'))
	{
		/* what numeric_in would make of it, without parsing it again */
		int64		n = 0;
		const char *d = s + (*s == '-');

		for (; d < q; d++)
			n = n * 10 + (*d - '0');
		v->val.numeric = int64_to_numeric(*s == '-' ? -n : n);
	}
	else
	{
		char	   *text = pnstrdup(s, q - s);

		v->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
															 CStringGetDatum(text),
															 ObjectIdGetDatum(InvalidOid),
															 Int32GetDatum(-1)));
	}
	r->p = q;
	return true;
}

/* A literal (true, false, null) at the cursor. */
static bool
read_literal(LineReader *r, const char *lit, int len)
{
	if (r->end - r->p < len || memcmp(r->p, lit, len) != 0)
		return false;
	r->p += len;
	if (r->p < r->end && *r->p != ',' && *r->p != '}' && *r->p != ']' &&
		*r->p != ' ' && *r->p != '\t' && *r->p != '\n' && *r->p != '\r')
		return false;
	return true;
}

/*
 * jsonb's order of object keys: shorter first, then by their bytes; of
 * equal keys, the one written last first (lengthCompareJsonbPair).
 */
static inline int
pair_cmp(const JsonbPair *a, const JsonbPair *b)
{
	int			la = a->key.val.string.len;
	int			lb = b->key.val.string.len;
	int			res;

	if (la != lb)
		return la < lb ? -1 : 1;
	res = memcmp(a->key.val.string.val, b->key.val.string.val, la);
	if (res != 0)
		return res;
	if (a->order == b->order)
		return 0;				/* qsort may compare a pair with itself */
	return a->order > b->order ? -1 : 1;
}

static int
pair_qsort_cmp(const void *a, const void *b)
{
	return pair_cmp((const JsonbPair *) a, (const JsonbPair *) b);
}

/* Past this many pairs, an object is sorted by qsort */
#define INSERTION_SORT_MAX 16

/*
 * Put the pairs of an object into jsonb's order and drop the earlier of
 * equal keys, as pushJsonbValue does at the end of an object
 * (uniqueifyJsonbObject).  Most objects are small and take an insertion
 * sort; a large one (a json column's value is the user's: it may have a
 * million keys) takes qsort, as an insertion sort would take quadratic
 * time.  pair_cmp orders every two pairs, so qsort's instability does not
 * matter.
 */
static void
order_pairs(JsonbValue *obj)
{
	JsonbPair  *pairs = obj->val.object.pairs;
	int			n = obj->val.object.nPairs;
	bool		dups = false;
	int			kept;

	if (n > INSERTION_SORT_MAX)
		qsort(pairs, n, sizeof(JsonbPair), pair_qsort_cmp);
	else
	{
		for (int i = 1; i < n; i++)
		{
			JsonbPair	tmp = pairs[i];
			int			j = i - 1;

			while (j >= 0 && pair_cmp(&pairs[j], &tmp) > 0)
			{
				pairs[j + 1] = pairs[j];
				j--;
			}
			pairs[j + 1] = tmp;
		}
	}
	for (int i = 1; i < n && !dups; i++)
		dups = (pairs[i].key.val.string.len == pairs[i - 1].key.val.string.len &&
				memcmp(pairs[i].key.val.string.val, pairs[i - 1].key.val.string.val,
					   pairs[i].key.val.string.len) == 0);
	if (!dups)
		return;
	kept = 0;
	for (int i = 1; i < n; i++)
	{
		if (pairs[i].key.val.string.len != pairs[kept].key.val.string.len ||
			memcmp(pairs[i].key.val.string.val, pairs[kept].key.val.string.val,
				   pairs[i].key.val.string.len) != 0)
			pairs[++kept] = pairs[i];
	}
	obj->val.object.nPairs = kept + 1;
}

/* The object at the cursor (at its '{'), as a jbvObject in *v. */
static bool
read_object(LineReader *r, JsonbValue *v)
{
	int			size = 8;
	int			n = 0;
	JsonbPair  *pairs = palloc(sizeof(JsonbPair) * size);

	r->p++;
	for (;;)
	{
		JsonbPair  *pair;

		skip_ws(r);
		if (r->p >= r->end)
			return false;
		if (*r->p == '}' && n == 0)
			break;
		if (n > 0)
		{
			if (*r->p == '}')
				break;
			if (*r->p != ',')
				return false;
			r->p++;
			skip_ws(r);
			if (r->p >= r->end)
				return false;
		}
		if (n == size)
		{
			if (size >= JSONB_MAX_PAIRS / 2)
				return false;
			size *= 2;
			pairs = repalloc(pairs, sizeof(JsonbPair) * size);
		}
		pair = &pairs[n];
		pair->order = n++;
		if (*r->p != '"' || !read_string(r, &pair->key))
			return false;
		skip_ws(r);
		if (r->p >= r->end || *r->p != ':')
			return false;
		r->p++;
		if (!read_value(r, &pair->value))
			return false;
	}
	r->p++;
	v->type = jbvObject;
	v->val.object.pairs = pairs;
	v->val.object.nPairs = n;
	order_pairs(v);
	return true;
}

/* The array at the cursor (at its '['), as a jbvArray in *v. */
static bool
read_array(LineReader *r, JsonbValue *v)
{
	int			size = 8;
	int			n = 0;
	JsonbValue *elems = palloc(sizeof(JsonbValue) * size);

	r->p++;
	for (;;)
	{
		skip_ws(r);
		if (r->p >= r->end)
			return false;
		if (*r->p == ']')
			break;
		if (n > 0)
		{
			if (*r->p != ',')
				return false;
			r->p++;
		}
		if (n == size)
		{
			if (size >= JSONB_MAX_ELEMS / 2)
				return false;
			size *= 2;
			elems = repalloc(elems, sizeof(JsonbValue) * size);
		}
		if (!read_value(r, &elems[n++]))
			return false;
	}
	r->p++;
	v->type = jbvArray;
	v->val.array.elems = elems;
	v->val.array.nElems = n;
	v->val.array.rawScalar = false;
	return true;
}

/* The value at the cursor into *v: false if it is not read here. */
static bool
read_value(LineReader *r, JsonbValue *v)
{
	skip_ws(r);
	if (r->p >= r->end)
		return false;
	switch (*r->p)
	{
		case '{':
			check_stack_depth();
			return read_object(r, v);
		case '[':
			check_stack_depth();
			return read_array(r, v);
		case '"':
			return read_string(r, v);
		case 't':
			v->type = jbvBool;
			v->val.boolean = true;
			return read_literal(r, "true", 4);
		case 'f':
			v->type = jbvBool;
			v->val.boolean = false;
			return read_literal(r, "false", 5);
		case 'n':
			v->type = jbvNull;
			return read_literal(r, "null", 4);
		default:
			return read_number(r, v);
	}
}

/*
 * The jsonb that jsonb_in makes of the JSON text line .. line + len (one
 * record of the log: an object), in the current memory context, or NULL
 * when the line is not read here (kappa_jsonb_from_line then gives it to
 * jsonb_in).  line need not end in NUL.
 */
Jsonb *
kappa_jsonb_read_line(const char *line, int len)
{
	LineReader	r;
	JsonbValue	root;

	r.p = line;
	r.end = line + len;
	r.utf8 = (GetDatabaseEncoding() == PG_UTF8);
	skip_ws(&r);
	if (r.p < r.end && *r.p == '{' && read_object(&r, &root))
	{
		skip_ws(&r);
		if (r.p == r.end)
		{
			Jsonb	   *jb = JsonbValueToJsonb(&root);

#ifdef KAPPA_JSONB_CROSSCHECK
			/* a build for testing compares every line with jsonb_in's */
			Jsonb	   *in = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																CStringGetDatum(pnstrdup(line, len))));

			if (VARSIZE(in) != VARSIZE(jb) || memcmp(in, jb, VARSIZE(jb)) != 0)
				elog(ERROR, "jsonb of line differs from jsonb_in's: %.*s", len, line);
#endif
			return jb;
		}
	}
	return NULL;
}

/*
 * The jsonb that jsonb_in makes of the JSON text line .. line + len (one
 * record of the log: an object), in the current memory context.  line
 * need not end in NUL.
 */
Jsonb *
kappa_jsonb_from_line(const char *line, int len)
{
	Jsonb	   *jb = kappa_jsonb_read_line(line, len);

	if (jb != NULL)
		return jb;

	/* not read here: as jsonb_in reads it, errors and all */
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(pnstrdup(line, len))));
}

/*
 * The "kind", "schema" and "table" fields of a record's line (palloc'd;
 * NULL for those not found), read from the string fields that open it up
 * to the first field that is not a string (json_write.c writes them
 * first).  For a line that kappa_jsonb_read_line cannot read (a captured
 * json value that jsonb_in refuses, such as "\u0000" or 1e1000000): the
 * caller learns whose record it is without making it jsonb, so that one
 * table's values cannot make kappa.events fail for readers of other
 * tables.  False when the line does not open as an object of strings.
 */
bool
kappa_line_header(const char *line, int len, char **kind, char **schema,
				  char **table)
{
	LineReader	r;

	*kind = *schema = *table = NULL;
	r.p = line;
	r.end = line + len;
	r.utf8 = (GetDatabaseEncoding() == PG_UTF8);
	skip_ws(&r);
	if (r.p >= r.end || *r.p != '{')
		return false;
	r.p++;
	for (int n = 0;; n++)
	{
		JsonbValue	key;
		JsonbValue	value;
		char	  **field = NULL;

		skip_ws(&r);
		if (n > 0)
		{
			if (r.p >= r.end || *r.p != ',')
				break;
			r.p++;
			skip_ws(&r);
		}
		if (r.p >= r.end || *r.p != '"' || !read_string(&r, &key))
			break;
		skip_ws(&r);
		if (r.p >= r.end || *r.p != ':')
			break;
		r.p++;
		skip_ws(&r);
		if (r.p >= r.end || *r.p != '"' || !read_string(&r, &value))
			break;
		if (key.val.string.len == 4 && memcmp(key.val.string.val, "kind", 4) == 0)
			field = kind;
		else if (key.val.string.len == 6 && memcmp(key.val.string.val, "schema", 6) == 0)
			field = schema;
		else if (key.val.string.len == 5 && memcmp(key.val.string.val, "table", 5) == 0)
			field = table;
		/* of a key written twice, the last counts, as in jsonb */
		if (field != NULL)
			*field = pnstrdup(value.val.string.val, value.val.string.len);
	}
	return *kind != NULL;
}
