/*-------------------------------------------------------------------------
 *
 * pg_kappa.h
 *	  Declarations shared between pg_kappa's source files.
 *
 * Each group below belongs to one .c file; see that file's header comment
 * for what it owns.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_KAPPA_H
#define PG_KAPPA_H

#include "access/htup.h"
#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "port/pg_crc32c.h"
#include "utils/relcache.h"

/* ----------
 * json_write.c: JSON text for values, strings and LSNs
 * ----------
 */

/* How a column's values are written; decided once per column. */
typedef enum KappaValueKind
{
	KVK_INT16,
	KVK_INT32,
	KVK_INT64,
	KVK_OID,
	KVK_FLOAT,					/* float4/float8: number, or "NaN" etc. */
	KVK_NUMERIC,				/* number, or "NaN"/"Infinity" as string */
	KVK_BOOL,
	KVK_JSON,					/* json: embedded as is */
	KVK_JSONB,					/* jsonb: embedded, as jsonb_out prints it */
	KVK_DATE,
	KVK_TIMESTAMP,
	KVK_TIMESTAMPTZ,
	KVK_TEXT,					/* text, varchar, bpchar: escaped directly */
	KVK_OTHER					/* output function, then escaped */
} KappaValueKind;

extern void kappa_json_startup(MemoryContext mcxt);
extern void kappa_json_string(StringInfo buf, const char *str, int len);
extern void kappa_json_cstring(StringInfo buf, const char *str);
extern void kappa_json_lsn(StringInfo buf, XLogRecPtr lsn);
extern void kappa_json_time(StringInfo buf, TimestampTz t);
extern void kappa_json_value(StringInfo buf, KappaValueKind kind,
							 FmgrInfo *outfunc, Datum value);
extern KappaValueKind kappa_value_kind(Oid basetypid);

/* ----------
 * relinfo.c: per-relation output metadata, cached per decoding session
 * ----------
 */
typedef struct KappaColumn
{
	char	   *key;			/* "name": — quoted, escaped, with colon */
	int			keylen;
	char	   *typename;		/* "integer" — quoted, escaped */
	AttrNumber	srcattnum;		/* attnum in the tuples that arrive */
	bool		in_identity;	/* part of the replica identity */
	bool		is_varlena;
	KappaValueKind kind;
	FmgrInfo	outfunc;		/* only set for kinds that need it */
} KappaColumn;

typedef struct KappaRelInfo
{
	Oid			relid;			/* hash key: the relation changes come from */
	bool		valid;
	MemoryContext mcxt;			/* holds everything below */
	Oid			report_relid;	/* relid reported: the root with
								 * publish-via-root, else relid */
	char	   *qualname;		/* "schema":"..","table":"..", escaped */
	bool		included;		/* passes the "tables" filter */
	bool		identity_full;
	int			ncolumns;
	KappaColumn *columns;		/* reported columns, in reported order */
	int			srcnatts;		/* natts of the tuples that arrive */
} KappaRelInfo;

extern void kappa_relinfo_init(MemoryContext parent, List *table_patterns,
							   bool via_root);
extern void kappa_relinfo_reset(void);
extern KappaRelInfo *kappa_relinfo_get(Relation rel);

/* ----------
 * table_filter.c: the "tables" option
 * ----------
 */
extern List *kappa_parse_table_patterns(const char *value);
extern bool kappa_table_matches(List *patterns, const char *nspname,
								const char *relname);

#endif							/* PG_KAPPA_H */
