/*-------------------------------------------------------------------------
 *
 * relinfo.c
 *	  Per-relation output metadata for the plugin, built once per relation
 *	  and decoding session and invalidated by relcache callbacks.
 *
 * For each relation whose changes arrive, the cache keeps what writing a
 * row needs: the escaped schema and table names, each reported column's
 * escaped name, type name, value kind and output function, which columns
 * form the replica identity, and whether the "tables" filter lets the
 * relation through.  With publish-via-root, a partition's entry describes
 * its top-most partitioned ancestor, and maps each of the root's columns to
 * the partition's attribute number, so no tuple conversion is needed.
 *
 * No catalog lookup happens per row.  The hash lives in the decoding
 * context's memory and is dropped with it, also when decoding ends in an
 * error (a reset callback on that context forgets the hash).  The relcache
 * callback, and the syscache callbacks for schemas and types (whose names
 * the entries hold too), cannot be unregistered: they are registered once
 * per backend and do nothing while no session is active.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/attmap.h"
#include "access/sysattr.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "nodes/bitmapset.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "pg_kappa.h"

static HTAB *relinfo_hash = NULL;
static MemoryContext relinfo_parent = NULL;
static List *relinfo_patterns = NIL;
static bool relinfo_via_root = false;
static bool relinfo_callback_registered = false;

/* the entry relinfo_build is filling, and whether it was invalidated since */
static KappaRelInfo *relinfo_building = NULL;
static bool relinfo_building_invalidated = false;

static void
relinfo_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	KappaRelInfo *entry;

	if (relinfo_hash == NULL)
		return;

	/*
	 * A partition's entry also depends on its root's name and columns, so
	 * an invalidation of any relation is checked against both.
	 */
	hash_seq_init(&status, relinfo_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (relid == InvalidOid || entry->relid == relid ||
			entry->report_relid == relid)
		{
			entry->valid = false;
			if (entry == relinfo_building)
				relinfo_building_invalidated = true;
		}
	}
}

/*
 * A schema or a type was renamed or changed: the names written for every
 * relation may be stale, so every entry is rebuilt on next use.
 */
static void
relinfo_invalidate_all(Datum arg, int cacheid, uint32 hashvalue)
{
	relinfo_invalidate(arg, InvalidOid);
}

/* The hash's memory is going away (end of session, or an error). */
static void
relinfo_forget(void *arg)
{
	if (relinfo_hash == (HTAB *) arg)
		kappa_relinfo_reset();
}

/*
 * Start a decoding session's cache.  The hash and every entry live below
 * parent; patterns (from the "tables" option) must live as long.
 */
void
kappa_relinfo_init(MemoryContext parent, List *table_patterns, bool via_root)
{
	HASHCTL		ctl;
	MemoryContextCallback *forget;

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(KappaRelInfo);
	ctl.hcxt = parent;
	relinfo_hash = hash_create("pg_kappa relation cache", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	relinfo_parent = parent;
	relinfo_patterns = table_patterns;
	relinfo_via_root = via_root;

	/*
	 * When decoding fails, the shutdown callback is not called, but parent
	 * is deleted: forget the hash then, so that no invalidation callback
	 * walks freed memory afterwards.
	 */
	forget = MemoryContextAlloc(parent, sizeof(MemoryContextCallback));
	forget->func = relinfo_forget;
	forget->arg = relinfo_hash;
	MemoryContextRegisterResetCallback(parent, forget);

	if (!relinfo_callback_registered)
	{
		CacheRegisterRelcacheCallback(relinfo_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, relinfo_invalidate_all,
									  (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, relinfo_invalidate_all,
									  (Datum) 0);
		relinfo_callback_registered = true;
	}
}

/* End the session: the memory goes with the decoding context. */
void
kappa_relinfo_reset(void)
{
	relinfo_hash = NULL;
	relinfo_parent = NULL;
	relinfo_patterns = NIL;
}

static char *
quoted(const char *str)
{
	StringInfoData buf;

	initStringInfo(&buf);
	kappa_json_cstring(&buf, str);
	return buf.data;
}

static void
relinfo_build(KappaRelInfo *entry, Relation rel)
{
	Relation	report = rel;
	TupleDesc	srcdesc = RelationGetDescr(rel);
	TupleDesc	desc;
	AttrMap    *map = NULL;
	Bitmapset  *idattrs;
	char	   *nspname;
	MemoryContext oldcxt;
	StringInfoData buf;

	/*
	 * The catalog lookups below may process invalidations, also of this
	 * entry: such an entry is rebuilt on next use.  An error leaves it
	 * invalid too (streaming decoding catches some and goes on).
	 */
	entry->valid = false;
	relinfo_building = entry;
	relinfo_building_invalidated = false;
	if (entry->mcxt == NULL)
		entry->mcxt = AllocSetContextCreate(relinfo_parent,
											"pg_kappa relation",
											ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(entry->mcxt);
	oldcxt = MemoryContextSwitchTo(entry->mcxt);

	if (relinfo_via_root && rel->rd_rel->relispartition)
	{
		List	   *ancestors = get_partition_ancestors(RelationGetRelid(rel));

		report = RelationIdGetRelation(llast_oid(ancestors));
		if (!RelationIsValid(report))
			elog(ERROR, "could not open relation with OID %u",
				 llast_oid(ancestors));
		map = build_attrmap_by_name(srcdesc, RelationGetDescr(report));
	}
	desc = RelationGetDescr(report);

	entry->report_relid = RelationGetRelid(report);
	entry->srcnatts = srcdesc->natts;
	entry->identity_full =
		(rel->rd_rel->relreplident == REPLICA_IDENTITY_FULL);
	idattrs = RelationGetIdentityKeyBitmap(rel);

	nspname = get_namespace_name(RelationGetNamespace(report));
	/*
	 * Only tables are reported.  A materialized view's changes are decoded
	 * when it is created or refreshed concurrently, but a plain REFRESH
	 * rewrites it without decodable changes: a consumer could never keep a
	 * copy right, so none of its changes are written (as pgoutput does).
	 */
	entry->included =
		(rel->rd_rel->relkind == RELKIND_RELATION ||
		 rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE) &&
		kappa_table_matches(relinfo_patterns, nspname,
							RelationGetRelationName(report));
	initStringInfo(&buf);
	appendStringInfoString(&buf, "\"schema\":");
	kappa_json_cstring(&buf, nspname);
	appendStringInfoString(&buf, ",\"table\":");
	kappa_json_cstring(&buf, RelationGetRelationName(report));
	entry->qualname = buf.data;

	entry->columns = palloc0(sizeof(KappaColumn) * desc->natts);
	entry->ncolumns = 0;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		KappaColumn *col;
		Oid			basetype;
		AttrNumber	srcattnum;

		if (att->attisdropped)
			continue;
		srcattnum = map ? map->attnums[i] : att->attnum;
		if (srcattnum <= 0)
			continue;			/* cannot happen for a partition */

		col = &entry->columns[entry->ncolumns++];
		initStringInfo(&buf);
		kappa_json_cstring(&buf, NameStr(att->attname));
		appendStringInfoChar(&buf, ':');
		col->key = buf.data;
		col->keylen = buf.len;
		col->typename = quoted(format_type_with_typemod(att->atttypid,
														att->atttypmod));
		col->srcattnum = srcattnum;
		col->in_identity = entry->identity_full ||
			bms_is_member(srcattnum - FirstLowInvalidHeapAttributeNumber,
						  idattrs);
		col->is_varlena = (att->attlen == -1);
		basetype = getBaseType(att->atttypid);
		col->kind = kappa_value_kind(basetype);
		if (col->kind == KVK_FLOAT || col->kind == KVK_NUMERIC ||
			col->kind == KVK_JSON || col->kind == KVK_OTHER)
		{
			Oid			outfunc;
			bool		isvarlena;

			getTypeOutputInfo(basetype, &outfunc, &isvarlena);
			fmgr_info_cxt(outfunc, &col->outfunc, entry->mcxt);
		}
	}

	if (report != rel)
		RelationClose(report);
	MemoryContextSwitchTo(oldcxt);
	entry->valid = !relinfo_building_invalidated;
	relinfo_building = NULL;
}

KappaRelInfo *
kappa_relinfo_get(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	KappaRelInfo *entry;
	bool		found;

	Assert(relinfo_hash != NULL);
	entry = hash_search(relinfo_hash, &relid, HASH_ENTER, &found);
	if (!found)
	{
		entry->mcxt = NULL;
		entry->valid = false;
		entry->report_relid = InvalidOid;
	}
	if (!entry->valid)
		relinfo_build(entry, rel);
	return entry;
}
