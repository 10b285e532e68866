/*-------------------------------------------------------------------------
 *
 * event_format.c
 *	  The JSON text of one change record, shared by the output plugin and
 *	  the event log.
 *
 * A change record is {"kind":"insert",<fields>}.  This file writes the
 * fields that describe the change itself: the relation, its LSN, the
 * column types when asked, and the old and new row images with the names
 * of unchanged TOASTed columns, which are not in the WAL and so are never
 * faked.  The output plugin (output_plugin.c) wraps them into records of a
 * decoding session; the apply worker (event_log.c) writes the same bytes
 * into kappa.event_log, so that kappa.events returns exactly what a
 * consumer of the slot would have seen.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/heapam.h"
#include "utils/rel.h"

#include "pg_kappa.h"

/*
 * Write "name":{...} for one tuple.  For an old tuple only the replica
 * identity columns are written (the others are not in the WAL).  Unchanged
 * TOASTed values are not in the WAL either: they are left out and their
 * column names collected in *unchanged.
 */
static void
write_tuple(StringInfo out, const char *name, KappaRelInfo *ri,
			TupleDesc srcdesc, HeapTuple tuple, bool old,
			StringInfo unchanged)
{
	Datum	   *values = palloc(sizeof(Datum) * srcdesc->natts);
	bool	   *nulls = palloc(sizeof(bool) * srcdesc->natts);
	bool		first = true;

	heap_deform_tuple(tuple, srcdesc, values, nulls);

	appendBinaryStringInfo(out, ",\"", 2);
	appendStringInfoString(out, name);
	appendBinaryStringInfo(out, "\":{", 3);
	for (int i = 0; i < ri->ncolumns; i++)
	{
		KappaColumn *col = &ri->columns[i];
		int			src = col->srcattnum - 1;

		if (old && !col->in_identity)
			continue;
		if (!nulls[src] && col->is_varlena &&
			VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(values[src])))
		{
			if (unchanged->len > 0)
				appendStringInfoChar(unchanged, ',');
			appendBinaryStringInfo(unchanged, col->key, col->keylen - 1);
			continue;
		}
		if (!first)
			appendStringInfoChar(out, ',');
		first = false;
		appendBinaryStringInfo(out, col->key, col->keylen);
		if (nulls[src])
			appendBinaryStringInfo(out, "null", 4);
		else
			kappa_json_value(out, col->kind, &col->outfunc, values[src]);
	}
	appendStringInfoChar(out, '}');
	pfree(values);
	pfree(nulls);
}

static void
write_types(StringInfo out, KappaRelInfo *ri)
{
	appendStringInfoString(out, ",\"types\":{");
	for (int i = 0; i < ri->ncolumns; i++)
	{
		if (i > 0)
			appendStringInfoChar(out, ',');
		appendStringInfoString(out, ri->columns[i].key);
		appendStringInfoString(out, ri->columns[i].typename);
	}
	appendStringInfoChar(out, '}');
}

/*
 * Append the fields of a change record: ,"schema":..,"table":.., then
 * "lsn" (when include_lsn), "types" (when include_types), "old" and
 * "old_unchanged_toast", "new" and "unchanged_toast" (when there are such
 * tuples and columns).  The caller writes the opening {"kind":..} and the
 * closing brace.
 */
void
kappa_write_change_fields(StringInfo out, KappaRelInfo *ri, TupleDesc desc,
						  XLogRecPtr lsn, bool include_lsn, bool include_types,
						  HeapTuple oldtuple, HeapTuple newtuple)
{
	StringInfoData unchanged;

	initStringInfo(&unchanged);
	appendStringInfoChar(out, ',');
	appendStringInfoString(out, ri->qualname);
	if (include_lsn)
	{
		appendBinaryStringInfo(out, ",\"lsn\":", 7);
		kappa_json_lsn(out, lsn);
	}
	if (include_types)
		write_types(out, ri);
	if (oldtuple)
		write_tuple(out, "old", ri, desc, oldtuple, true, &unchanged);
	if (unchanged.len > 0)
	{
		appendStringInfo(out, ",\"old_unchanged_toast\":[%s]", unchanged.data);
		resetStringInfo(&unchanged);
	}
	if (newtuple)
		write_tuple(out, "new", ri, desc, newtuple, false, &unchanged);
	if (unchanged.len > 0)
		appendStringInfo(out, ",\"unchanged_toast\":[%s]", unchanged.data);
	pfree(unchanged.data);
}
