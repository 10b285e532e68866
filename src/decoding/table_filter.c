/*-------------------------------------------------------------------------
 *
 * table_filter.c
 *	  The plugin's "tables" option: parsing "schema.table" patterns and
 *	  matching relation names against them.
 *
 * A pattern list is a comma-separated list of schema.table items.  Each
 * part is either a double-quoted identifier (exact, case-sensitive, "" for
 * a quote) or an unquoted one, folded to lower case like SQL identifiers,
 * in which '*' matches any run of characters.  The parsed form of a part is
 * a glob where '*' is the wildcard and '\' escapes the next character, so
 * that a quoted '*' stays literal.
 *
 * This file does not decide what happens to a matching relation; the
 * relation cache (relinfo.c) asks once per relation and remembers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "parser/scansup.h"

#include "pg_kappa.h"

typedef struct TablePattern
{
	char	   *schema;			/* glob */
	char	   *table;			/* glob */
} TablePattern;

static void
invalid_tables(const char *value, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for pg_kappa option \"%s\": \"%s\"", "tables", value),
			 errdetail("%s", detail),
			 errhint("Use a comma-separated list of schema.table patterns, where an unquoted part may contain * as a wildcard, for example: public.*,\"Sales\".\"Orders\".")));
}

/*
 * Parse one identifier part starting at *pp into a glob; advance *pp past
 * it.  Stops at '.', ',' or end of string outside quotes.
 */
static char *
parse_part(const char **pp, const char *value)
{
	const char *p = *pp;
	StringInfoData glob;

	initStringInfo(&glob);
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '"')
	{
		p++;
		for (;;)
		{
			if (*p == '\0')
				invalid_tables(value, "A quoted identifier is not terminated.");
			if (*p == '"')
			{
				if (p[1] != '"')
					break;
				p++;
			}
			if (*p == '*' || *p == '\\')
				appendStringInfoChar(&glob, '\\');
			appendStringInfoChar(&glob, *p);
			p++;
		}
		p++;
		if (glob.len == 0)
			invalid_tables(value, "A quoted identifier is empty.");
	}
	else
	{
		const char *start = p;
		char	   *folded;

		while (*p != '\0' && *p != '.' && *p != ',' && *p != '"' &&
			   *p != ' ' && *p != '\t')
			p++;
		if (p == start)
			invalid_tables(value, "An identifier is missing.");
		folded = downcase_identifier(start, p - start, false, false);
		for (char *c = folded; *c; c++)
		{
			if (*c == '\\')
				appendStringInfoChar(&glob, '\\');
			appendStringInfoChar(&glob, *c);
		}
	}
	while (*p == ' ' || *p == '\t')
		p++;
	*pp = p;
	return glob.data;
}

/*
 * Parse the option's value into a List of TablePattern.  An error names the
 * option and says what is wrong.
 */
List *
kappa_parse_table_patterns(const char *value)
{
	List	   *result = NIL;
	const char *p = value;

	for (;;)
	{
		TablePattern *pat = palloc(sizeof(TablePattern));

		pat->schema = parse_part(&p, value);
		if (*p != '.')
			invalid_tables(value, "Each item must be a schema-qualified table name.");
		p++;
		pat->table = parse_part(&p, value);
		if (*p == '.')
			invalid_tables(value, "An item has more than two dot-separated parts; quote names that contain dots.");
		result = lappend(result, pat);
		if (*p == '\0')
			break;
		if (*p != ',')
			invalid_tables(value, "Items must be separated by commas.");
		p++;
	}
	return result;
}

/*
 * Does str match glob?  '*' matches any run of characters, possibly empty;
 * '\x' matches x literally (a '\' ending the glob, which the parser never
 * writes, matches itself).
 *
 * The match is greedy with backtracking to the last '*' only: when the
 * text after a star fails to match, that star's run takes one more
 * character and the text after it is tried again from there.  Going back
 * to an earlier star never helps, since the later star can absorb whatever
 * the earlier one would, so the time is at most the product of the two
 * lengths, not exponential in the number of stars.
 */
static bool
glob_match(const char *glob, const char *str)
{
	const char *after_star = NULL;	/* glob just after the last run of '*' */
	const char *star_end = NULL;	/* str where that star's run ends */

	for (;;)
	{
		if (*glob == '*')
		{
			while (*glob == '*')
				glob++;
			if (*glob == '\0')
				return true;
			after_star = glob;
			star_end = str;
			continue;
		}
		if (*str == '\0')
		{
			/*
			 * A match if the glob is used up too.  Otherwise what is left of
			 * it starts with a character, and a longer run of the last star
			 * would only leave less of str for that.
			 */
			return *glob == '\0';
		}
		if (*glob != '\0')
		{
			const char *lit = glob;

			if (*lit == '\\' && lit[1] != '\0')
				lit++;
			if (*lit == *str)
			{
				glob = lit + 1;
				str++;
				continue;
			}
		}
		if (after_star == NULL)
			return false;

		/* the last star's run takes one more character; retry after it */
		CHECK_FOR_INTERRUPTS();
		glob = after_star;
		str = ++star_end;
	}
}

/* NIL means no filter: everything matches. */
bool
kappa_table_matches(List *patterns, const char *nspname, const char *relname)
{
	ListCell   *lc;

	if (patterns == NIL)
		return true;
	foreach(lc, patterns)
	{
		TablePattern *pat = lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		if (glob_match(pat->schema, nspname) && glob_match(pat->table, relname))
			return true;
	}
	return false;
}
