/*-------------------------------------------------------------------------
 *
 * delta_engine.c
 *	  Applies one batch of source changes to one derived view, through SQL
 *	  that PostgreSQL's executor runs with cached plans.
 *
 * The view's query is never evaluated here.  For every view the worker
 * keeps an indexed copy of each source ("arrangement", table a_<n>) that is
 * exactly the source as of the view's applied LSN, so any delta can be
 * computed without looking at the live sources, which are ahead.  A batch
 * is applied in five steps, all inside the worker's transaction:
 *
 *	 1. the batch's row images of each source go to d_<n>;
 *	 2. the copy's rows that the batch touches (by source key) go to w_<n>,
 *		and the view's query, with that source read from w_<n> and the
 *		others from their copies, yields the keys of every view row those
 *		rows took part in: the affected keys, collected in k;
 *	 3. the copies are brought forward: touched keys are deleted and each
 *		key's last new image (by change order) is inserted;
 *	 4. step 2 again, on the new copies: keys of rows the changes produce;
 *	 5. view rows with an affected key are deleted and recomputed from the
 *		copies, restricted to the affected keys (pushed down by the planner
 *		to index scans on the copies).
 *
 * The same code serves every view class: filter/project (key = the source's
 * key), GROUP BY with any supported aggregate and HAVING (key = the group
 * key; HAVING is left out of the key queries), and inner joins (key = all
 * sources' keys).  A view without group key, and any TRUNCATE of a source,
 * recomputes the whole view from the copies.  Group keys may be NULL: such
 * keys are matched with IS NOT DISTINCT FROM in separate statements, run
 * only when the batch has one.
 *
 * One-table GROUP BY views of count, sum, avg, min and max replace steps 2,
 * 4 and 5 by partial aggregates of the touched rows before and after,
 * merged into a state table (agg_delta.c); only groups whose aggregates
 * cannot be updated that way are recomputed as above.
 *
 * Every statement runs as the view's owner, as a security-restricted
 * operation.  The caller (apply_worker.c) owns transactions, subtransactions
 * and progress.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "nodes/makefuncs.h"
#include "miscadmin.h"
#include "catalog/pg_type.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "pg_kappa.h"

typedef struct SourcePlan
{
	Oid			relid;			/* the source */
	Oid			drelid;			/* its d_<n> */
	KappaKeyedPlan	fill_w;
	List	   *key_queries;	/* SPIPlanPtr per range table entry */
	SPIPlanPtr	clear_w;
	SPIPlanPtr	truncate_a;
	KappaKeyedPlan	apply_delete;
	SPIPlanPtr	apply_insert;
	SPIPlanPtr	clear_d;
	List	   *resolve;		/* SPIPlanPtr per TOASTable column */
	SPIPlanPtr	unresolved;
	bool		has_unchanged;	/* this batch's d_<n> has unchanged values */
	bool		inserts_only;	/* ... holds only inserts */
} SourcePlan;

/* the statements of a view maintained algebraically (agg_delta.c) */
typedef struct AggPlan
{
	SPIPlanPtr	partial_old;
	SPIPlanPtr	partial_new;
	SPIPlanPtr	merge;
	SPIPlanPtr	take_dirty;
	KappaKeysInsert state_keys;
	SPIPlanPtr	state_null_keys;
	SPIPlanPtr	clear_state;
	SPIPlanPtr	fill_state;
	SPIPlanPtr	clear_partials;
} AggPlan;

typedef struct ViewPlan
{
	int			id;				/* hash key */
	Oid			relid;			/* the derived table */
	Oid			owner;
	int			nsources;
	SourcePlan *sources;
	bool		has_keys;
	KappaKeyedPlan	delete_keys;
	KappaKeysInsert insert_keys;
	SPIPlanPtr	has_null_keys;	/* NULL when keys cannot be NULL */
	SPIPlanPtr	delete_null_keys;
	SPIPlanPtr	insert_null_keys;
	SPIPlanPtr	clear_k;
	SPIPlanPtr	delete_all;
	SPIPlanPtr	insert_all;
	SPIPlanPtr	truncate_scratch;
	AggPlan    *agg;			/* NULL: recompute affected keys */
} ViewPlan;

static HTAB *plans = NULL;		/* in kappa_plans_context() */
bool		kappa_plans_stale = false;	/* a view's table or source was altered */

/* Forget every plan of both engines (kappa.views changed). */
void
kappa_engine_reset(void)
{
	plans = NULL;
	kappa_rules_forget();
	kappa_plans_reset();
}

/*
 * Plans live across batches (the plan cache revalidates them when tables
 * they read change), but their SQL names the derived table, and they were
 * built from the view's query text, which names its sources: when either
 * changes (a rename, say) or a schema is renamed, build them again, which
 * checks that the text still reads the same sources.  A reset of every cache (InvalidOid)
 * is not such a change; the worker handles real ones by reloading the views.
 */
static void
engine_relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	ViewPlan   *vp;

	if (plans == NULL || relid == InvalidOid)
		return;
	hash_seq_init(&status, plans);
	while ((vp = hash_seq_search(&status)) != NULL)
	{
		bool		mine = vp->relid == relid;

		for (int i = 0; i < vp->nsources && !mine; i++)
			mine = vp->sources[i].relid == relid;
		if (mine)
		{
			kappa_plans_stale = true;
			hash_seq_term(&status);
			break;
		}
	}
}

static void
engine_namespace_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	/* hash value 0: a reset of every cache, as for InvalidOid above */
	if (hashvalue != 0)
		kappa_plans_stale = true;
}

/* Build a view's statements from its catalog row (SPI connected). */
static ViewPlan *
build_plan(int id)
{
	ViewPlan   *vp;
	bool		found;
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	tupdesc;
	Oid			relid;
	char	   *canonical;
	KappaViewDef *def;
	char	   *schema = psprintf("kappa_v%d", id);
	char	   *target;
	Oid		   *rte_relids;
	Oid		   *arr;
	List	   *keys;
	char	   *q_arr;
	KappaAggSql *agg;
	MemoryContext oldcxt;
	KappaOwnerScope scope;

	if (SPI_execute(psprintf("SELECT relid, NULL, canonical, sources FROM kappa.views"
							 " WHERE id OPERATOR(pg_catalog.=) %d", id),
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "derived view %d does not exist", id);
	tup = SPI_tuptable->vals[0];
	tupdesc = SPI_tuptable->tupdesc;
	relid = DatumGetObjectId(SPI_getbinval(tup, tupdesc, 1, &isnull));

	if (plans == NULL)
	{
		HASHCTL		ctl;
		static bool registered = false;

		if (!registered)
		{
			CacheRegisterRelcacheCallback(engine_relcache_callback, (Datum) 0);
			CacheRegisterSyscacheCallback(NAMESPACEOID, engine_namespace_callback, (Datum) 0);
			registered = true;
		}

		ctl.keysize = sizeof(int);
		ctl.entrysize = sizeof(ViewPlan);
		ctl.hcxt = kappa_plans_context();
		plans = hash_create("pg_kappa view plans", 16, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	vp = hash_search(plans, &id, HASH_ENTER, &found);
	memset(((char *) vp) + sizeof(int), 0, sizeof(ViewPlan) - sizeof(int));
	vp->relid = relid;
	/*
	 * The owner now, from the catalog cache rather than this transaction's
	 * snapshot: privileges are checked against the catalogs as they are.
	 */
	vp->owner = kappa_view_owner(relid);
	canonical = SPI_getvalue(tup, tupdesc, 3);

	/*
	 * Compile and prepare as the owner, security-restricted: its privileges
	 * are checked again, and parsing alone can run functions of the
	 * owner's (a domain's CHECK on a literal of the domain's array type).
	 */
	kappa_owner_enter(vp->owner, &scope);
	def = kappa_compile_view(canonical, 1);
	kappa_check_sources_unchanged(def,
								  kappa_oid_array_list(SPI_getbinval(tup, tupdesc, 4, &isnull)),
								  kappa_rel_label(relid));

	if (get_rel_name(relid) == NULL)
		elog(ERROR, "derived table of view %d does not exist", id);
	target = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										get_rel_name(relid));

	keys = def->key_columns;
	vp->nsources = list_length(def->sources);
	vp->has_keys = keys != NIL;
	vp->sources = MemoryContextAllocZero(kappa_plans_context(), sizeof(SourcePlan) * vp->nsources);
	arr = palloc(sizeof(Oid) * vp->nsources);
	for (int i = 0; i < vp->nsources; i++)
		arr[i] = RangeVarGetRelid(makeRangeVar(schema, psprintf("a_%d", i), -1),
								  AccessShareLock, false);

	/* the view's query over the copies */
	rte_relids = kappa_rte_relids(def, arr);
	q_arr = kappa_deparse(def, rte_relids, true);

	/* maintained algebraically? (views created before agg_delta.c have no g) */
	agg = kappa_agg_sql(def, quote_identifier(schema), target);
	if (agg && !OidIsValid(get_relname_relid("g", get_namespace_oid(schema, false))))
		agg = NULL;

	oldcxt = MemoryContextSwitchTo(kappa_plans_context());
	for (int i = 0; i < vp->nsources; i++)
	{
		SourcePlan *sp = &vp->sources[i];
		Oid			src = list_nth_oid(def->sources, i);
		List	   *skey = kappa_attnames(src, list_nth(def->source_keys, i));
		List	   *skeytypes = NIL;
		ListCell   *lk;
		StringInfoData unresolved;
		char	   *a = psprintf("%s.a_%d", quote_identifier(schema), i);
		char	   *d = psprintf("%s.d_%d", quote_identifier(schema), i);
		char	   *w = psprintf("%s.w_%d", quote_identifier(schema), i);
		Oid			wrelid = RangeVarGetRelid(makeRangeVar(schema, psprintf("w_%d", i), -1),
											  AccessShareLock, false);

		foreach(lk, (List *) list_nth(def->source_keys, i))
			skeytypes = lappend_oid(skeytypes, get_atttype(src, lfirst_int(lk)));
		sp->relid = src;
		sp->drelid = RangeVarGetRelid(makeRangeVar(schema, psprintf("d_%d", i), -1),
									  AccessShareLock, false);
		sp->fill_w = kappa_prepare_keyed(psprintf("INSERT INTO %s SELECT a.* FROM %s a", w, a),
								   "a", skey, skeytypes, d);
		sp->clear_w = kappa_keep_plan(psprintf("DELETE FROM %s", w));
		sp->truncate_a = kappa_keep_plan(psprintf("DELETE FROM %s", a));
		sp->apply_delete = kappa_prepare_keyed(psprintf("DELETE FROM %s a", a),
										 "a", skey, skeytypes, d);
		sp->apply_insert = kappa_keep_plan(psprintf("INSERT INTO %s (%s) SELECT %s FROM"
											" (SELECT DISTINCT ON (%s) * FROM %s ORDER BY %s, _kappa_seq DESC, _kappa_new DESC) d"
											" WHERE d._kappa_new",
											a, kappa_source_columns(src, ""), kappa_source_columns(src, "d."),
											kappa_quoted_list(skey, ""), d, kappa_quoted_list(skey, "")));
		sp->clear_d = kappa_keep_plan(psprintf("DELETE FROM %s", d));

		/*
		 * Unchanged TOASTed values: the latest earlier new image of the same
		 * row in this batch that has the value, else the copy's row before
		 * the batch (under the old key, if the key changed in this update).
		 */
		initStringInfo(&unresolved);
		{
			Relation	srcrel = table_open(src, AccessShareLock);
			TupleDesc	sdesc = RelationGetDescr(srcrel);

			for (int c = 0; c < sdesc->natts; c++)
			{
				Form_pg_attribute att = TupleDescAttr(sdesc, c);
				const char *col;

				if (att->attisdropped || att->attlen != -1 || att->attstorage == TYPSTORAGE_PLAIN)
					continue;
				col = quote_identifier(NameStr(att->attname));
				appendStringInfo(&unresolved, "%s(%d = ANY (d._kappa_unchanged) AND d.%s IS NULL)",
								 unresolved.len > 0 ? " OR " : "", c + 1, col);
				sp->resolve = lappend(sp->resolve,
									  kappa_keep_plan(psprintf("UPDATE %s d SET %s = COALESCE("
													   "(SELECT p.%s FROM %s p WHERE p._kappa_new AND p._kappa_seq < d._kappa_seq"
													   " AND NOT (%d = ANY (COALESCE(p._kappa_unchanged, '{}'))) AND (%s) = (%s)"
													   " ORDER BY p._kappa_seq DESC LIMIT 1),"
													   " (SELECT a.%s FROM %s a WHERE (%s) = (%s)),"
													   " (SELECT a.%s FROM %s a, %s o WHERE o._kappa_seq = d._kappa_seq AND NOT o._kappa_new"
													   " AND (%s) = (%s)))"
													   " WHERE d._kappa_new AND %d = ANY (d._kappa_unchanged)",
													   d, col,
													   col, d, c + 1, kappa_quoted_list(skey, "p."), kappa_quoted_list(skey, "d."),
													   col, a, kappa_quoted_list(skey, "a."), kappa_quoted_list(skey, "d."),
													   col, a, d, kappa_quoted_list(skey, "a."), kappa_quoted_list(skey, "o."),
													   c + 1)));
			}
			table_close(srcrel, AccessShareLock);
		}
		sp->unresolved = kappa_keep_plan(psprintf("SELECT pg_catalog.count(*) FROM %s d WHERE d._kappa_new AND (%s)",
										  d, unresolved.len > 0 ? unresolved.data : "false"));

		/* one key query per range table entry reading this source */
		if (vp->has_keys && agg == NULL)
		{
			for (int r = 1; r <= def->nrtes; r++)
			{
				Oid		   *relids;
				char	   *q;

				if (def->rte_source[r] != i)
					continue;
				relids = palloc(sizeof(Oid) * (def->nrtes + 1));
				memcpy(relids, rte_relids, sizeof(Oid) * (def->nrtes + 1));
				relids[r] = wrelid;
				q = kappa_deparse(def, relids, false);
				sp->key_queries = lappend(sp->key_queries,
										  kappa_keep_plan(psprintf("INSERT INTO %s.k SELECT %s FROM (%s) s",
														   quote_identifier(schema),
														   kappa_quoted_list(keys, "s."), q)));
			}
		}
	}

	if (vp->has_keys)
	{
		char	   *k = psprintf("%s.k", quote_identifier(schema));

		List	   *keytypes = NIL;
		ListCell   *lk;
		Oid			krelid = RangeVarGetRelid(makeRangeVar(schema, "k", -1),
											  AccessShareLock, false);

		foreach(lk, keys)
			keytypes = lappend_oid(keytypes,
								   get_atttype(krelid, get_attnum(krelid, lfirst(lk))));
		vp->delete_keys = kappa_prepare_keyed(psprintf("DELETE FROM %s t", target),
										"t", keys, keytypes, k);
		vp->insert_keys = kappa_prepare_insert_keys(target, q_arr, keys, keytypes, k);
		if (strcmp(def->kind, "aggregate") == 0 || strcmp(def->kind, "join_aggregate") == 0)
		{
			vp->has_null_keys = kappa_keep_plan(psprintf("SELECT EXISTS (SELECT 1 FROM %s n WHERE %s)",
												 k, kappa_any_null(keys, "n")));
			vp->delete_null_keys = kappa_keep_plan(psprintf("DELETE FROM %s t USING (SELECT DISTINCT * FROM %s n WHERE %s) n WHERE %s",
													target, k, kappa_any_null(keys, "n"),
													kappa_match_keys(keys, "t", "IS NOT DISTINCT FROM", "n")));
			vp->insert_null_keys = kappa_prepare_insert_null_keys(target, q_arr, keys, k);
		}
		vp->clear_k = kappa_keep_plan(psprintf("DELETE FROM %s", k));

		if (agg)
		{
			char	   *into = psprintf("%s.g (%s)", quote_identifier(schema), agg->state_columns);

			vp->agg = palloc(sizeof(AggPlan));
			vp->agg->partial_old = kappa_keep_plan(agg->partial_old);
			vp->agg->partial_new = kappa_keep_plan(agg->partial_new);
			vp->agg->merge = kappa_keep_plan(agg->merge);
			vp->agg->take_dirty = kappa_keep_plan(agg->take_dirty);
			vp->agg->state_keys = kappa_prepare_insert_keys(into, agg->state_query, keys,
															  keytypes, k);
			vp->agg->state_null_keys = kappa_prepare_insert_null_keys(into, agg->state_query, keys, k);
			vp->agg->clear_state = kappa_keep_plan(agg->clear_state);
			vp->agg->fill_state = kappa_keep_plan(agg->fill_state);
			vp->agg->clear_partials = kappa_keep_plan(agg->clear_partials);
		}
	}
	{
		StringInfoData scratch;

		initStringInfo(&scratch);
		for (int i = 0; i < vp->nsources; i++)
			appendStringInfo(&scratch, "%s%s.d_%d, %s.w_%d", i > 0 ? ", " : "",
							 quote_identifier(schema), i, quote_identifier(schema), i);
		if (vp->has_keys)
			appendStringInfo(&scratch, ", %s.k", quote_identifier(schema));
		if (vp->agg)
			appendStringInfo(&scratch, ", %s.p", quote_identifier(schema));
		vp->truncate_scratch = kappa_keep_plan(psprintf("TRUNCATE %s", scratch.data));
	}
	vp->delete_all = kappa_keep_plan(psprintf("DELETE FROM %s", target));
	vp->insert_all = kappa_keep_plan(psprintf("INSERT INTO %s SELECT * FROM (%s) q", target, q_arr));
	kappa_owner_leave(&scope);
	MemoryContextSwitchTo(oldcxt);
	return vp;
}

/* build_plan as kappa_cached_plan wants it */
static void *
build_plan_entry(int id)
{
	return build_plan(id);
}

static ViewPlan *
get_plan(int id)
{
	return (ViewPlan *) kappa_cached_plan(&plans, id, build_plan_entry);
}

/*
 * Rows are written to a delta table drel with the layout of the batch's
 * buffer (desc), whose first n columns are the source's: the table must
 * still have exactly those columns, whatever its owner did to it (its
 * owner owns it; a column of another type would be read as garbage).
 */
static void
check_delta_columns(Relation drel, TupleDesc desc, int n)
{
	TupleDesc	ddesc = RelationGetDescr(drel);

	for (int i = 0; i < n; i++)
	{
		Form_pg_attribute a = TupleDescAttr(ddesc, i);
		Form_pg_attribute b = TupleDescAttr(desc, i);

		/* a dropped column is null in both, whatever type it had */
		if (a->attisdropped && b->attisdropped)
			continue;
		if (a->atttypid != b->atttypid || a->attlen != b->attlen ||
			a->attbyval != b->attbyval || a->attalign != b->attalign ||
			(a->attisdropped != b->attisdropped))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("internal table \"%s\" of the derived view was altered",
							RelationGetRelationName(drel)),
					 errdetail("Column %d no longer has the type of the source's column.", i + 1),
					 errhint("Drop the view with kappa.drop_view and create it again.")));
	}
}

/*
 * Copy the batch's row images of one source that the view has not seen
 * (commit LSN after applied) into d_<n>.  Returns how many; adds the commit
 * LSNs seen to *lsns.
 */
static int64
fill_delta(SourcePlan *sp, KappaSourceBuffer *buf, XLogRecPtr applied,
		   List **lsns)
{
	Relation	drel = table_open(sp->drelid, RowExclusiveLock);
	TupleDesc	ddesc = RelationGetDescr(drel);
	int			n = buf->srcnatts;
	TupleTableSlot *slot;
	Datum	   *values;
	bool	   *nulls;
	int64		count = 0;
	XLogRecPtr	last_lsn = InvalidXLogRecPtr;

	if (ddesc->natts != n + 3)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("columns of source table \"%s\" changed", get_rel_name(sp->relid))));
	check_delta_columns(drel, buf->desc, n);
	if (TupleDescAttr(ddesc, n)->atttypid != INT8OID ||
		TupleDescAttr(ddesc, n + 1)->atttypid != BOOLOID ||
		TupleDescAttr(ddesc, n + 2)->atttypid != INT2ARRAYOID)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("internal table \"%s\" of the derived view was altered",
						RelationGetRelationName(drel)),
				 errhint("Drop the view with kappa.drop_view and create it again.")));
	slot = MakeSingleTupleTableSlot(buf->desc, &TTSOpsMinimalTuple);
	values = palloc(sizeof(Datum) * (n + 3));
	nulls = palloc(sizeof(bool) * (n + 3));

	tuplestore_rescan(buf->rows);
	while (tuplestore_gettupleslot(buf->rows, true, false, slot))
	{
		XLogRecPtr	lsn;
		HeapTuple	tup;

		slot_getallattrs(slot);
		lsn = (XLogRecPtr) DatumGetInt64(slot->tts_values[n + 2]);
		if (lsn <= applied)
			continue;
		/* source columns, seq and new; then the unchanged TOASTed columns */
		memcpy(values, slot->tts_values, sizeof(Datum) * (n + 2));
		memcpy(nulls, slot->tts_isnull, sizeof(bool) * (n + 2));
		values[n + 2] = slot->tts_values[n + 3];
		nulls[n + 2] = slot->tts_isnull[n + 3];
		if (!nulls[n + 2])
			sp->has_unchanged = true;
		tup = heap_form_tuple(ddesc, values, nulls);
		simple_heap_insert(drel, tup);
		heap_freetuple(tup);
		count++;
		/* commit LSNs arrive in order: count each once per source */
		if (lsn != last_lsn)
		{
			*lsns = lappend(*lsns, (void *) (uintptr_t) lsn);
			last_lsn = lsn;
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(drel, RowExclusiveLock);
	return count;
}

static int
list_ptr_cmp(const ListCell *a, const ListCell *b)
{
	uintptr_t	x = (uintptr_t) lfirst(a);
	uintptr_t	y = (uintptr_t) lfirst(b);

	return (x > y) - (x < y);
}

/*
 * Steps 2 and 4: the affected keys into k, or for a view maintained
 * algebraically, the touched rows' partial aggregates into p.
 */
static void
collect_keys(ViewPlan *vp, bool *touched, bool after)
{
	for (int i = 0; i < vp->nsources; i++)
	{
		SourcePlan *sp = &vp->sources[i];
		ListCell   *lc;

		if (!touched[i])
			continue;

		/*
		 * Inserts alone touch no row of the copy: an inserted key is not in
		 * the source just before its insert, and with no update or delete
		 * since the view's applied LSN, not in the copy either.  So no view
		 * row had any part in them before the batch.
		 */
		if (!after && sp->inserts_only)
			continue;
		kappa_run_keyed(&sp->fill_w);
		if (vp->agg)
			kappa_run(after ? vp->agg->partial_new : vp->agg->partial_old);
		else
		{
			foreach(lc, sp->key_queries)
				kappa_run((SPIPlanPtr) lfirst(lc));
		}
		kappa_run(sp->clear_w);
	}
}

/* Step 5 for the keys in k: delete their view rows, recompute them. */
static uint64
recompute_keys(ViewPlan *vp)
{
	uint64		rows = 0;
	bool		null_keys;

	rows += kappa_run_keyed(&vp->delete_keys);
	rows += kappa_run_insert_keys(&vp->insert_keys);
	null_keys = vp->has_null_keys && kappa_run_bool(vp->has_null_keys);
	if (null_keys)
	{
		rows += kappa_run(vp->delete_null_keys);
		rows += kappa_run(vp->insert_null_keys);
	}
	if (vp->agg)
	{
		/* their state too: take_dirty has deleted it */
		kappa_run_insert_keys(&vp->agg->state_keys);
		if (null_keys)
			kappa_run(vp->agg->state_null_keys);
	}
	kappa_run(vp->clear_k);
	return rows;
}

/*
 * Empty view viewid's scratch tables for good.  For replay, which applies
 * batch after batch in one transaction: the rows each batch deletes from
 * them would stay until it ends, and every later batch would read past
 * them.  SPI must be connected.
 */
void
kappa_engine_truncate_scratch(int viewid)
{
	ViewPlan   *vp = get_plan(viewid);
	KappaOwnerScope scope;

	kappa_owner_enter(vp->owner, &scope);
	kappa_run(vp->truncate_scratch);
	kappa_owner_leave(&scope);
}

/*
 * The owner must still be allowed to read everything of a source the view
 * shows: SELECT on it, USAGE on its schema, and no row-level security in
 * the way (the view would show rows the policies now hide from the owner).
 */
void
kappa_check_source_access(Oid relid, Oid owner)
{
	if (pg_class_aclcheck(relid, owner, ACL_SELECT) != ACLCHECK_OK ||
		pg_namespace_aclcheck(get_rel_namespace(relid), owner, ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("owner of the derived view no longer has SELECT privilege on source table \"%s\"",
						get_rel_name(relid)),
				 errhint("Grant the privilege again, then drop the view and create it again.")));
	if (check_enable_rls(relid, owner, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("row-level security applies to the owner of the derived view on source table \"%s\"",
						get_rel_name(relid)),
				 errdetail("The view is maintained from every row of its sources, including rows the policies hide from its owner."),
				 errhint("Only a role that bypasses row-level security on its sources can own this view.")));
}

/*
 * Apply the current batch to view id, whose applied LSN is applied.
 * Returns the number of derived rows deleted and inserted, or -1 when the
 * batch holds nothing for the view; *ntxns is the number of source
 * transactions applied.  SPI must be connected; the caller commits.
 */
int64
kappa_apply_view(int viewid, XLogRecPtr applied, XLogRecPtr *new_applied,
				 int64 *ntxns)
{
	ViewPlan   *vp = get_plan(viewid);
	bool	   *touched = palloc0(sizeof(bool) * vp->nsources);
	bool	   *truncated = palloc0(sizeof(bool) * vp->nsources);
	bool		full = false;
	bool		any = false;
	List	   *lsns = NIL;
	int64		rows = 0;
	KappaOwnerScope scope;

	/*
	 * Everything below may run the view's code (its query, triggers or
	 * index expressions on its internal tables): as the owner, restricted.
	 */
	kappa_owner_enter(vp->owner, &scope);

	/* step 1, and what the batch means for this view */
	for (int i = 0; i < vp->nsources; i++)
	{
		SourcePlan *sp = &vp->sources[i];
		KappaSourceBuffer *buf;

		buf = hash_search(kappa_batch->sources, &sp->relid, HASH_FIND, NULL);
		if (buf == NULL)
			continue;

		kappa_check_source_access(sp->relid, vp->owner);
		if (buf->schema_change_lsn > applied)
			kappa_columns_changed_error(sp->relid);
		kappa_check_buffer_columns(buf, NULL, 0, applied);
		if (buf->truncate_lsn > applied)
		{
			truncated[i] = true;
			full = any = true;
			lsns = lappend(lsns, (void *) (uintptr_t) buf->truncate_lsn);
		}
		sp->has_unchanged = false;
		sp->inserts_only = buf->modify_lsn <= applied;
		if (fill_delta(sp, buf, applied, &lsns) > 0)
			touched[i] = any = true;
	}
	if (!any)
	{
		kappa_owner_leave(&scope);
		return -1;
	}
	CommandCounterIncrement();

	/* fill in unchanged TOASTed values, or refuse to guess */
	for (int i = 0; i < vp->nsources; i++)
	{
		SourcePlan *sp = &vp->sources[i];
		ListCell   *lc;
		bool		isnull;

		if (!sp->has_unchanged)
			continue;
		foreach(lc, sp->resolve)
			kappa_run((SPIPlanPtr) lfirst(lc));
		if (SPI_execute_plan(sp->unresolved, NULL, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "pg_kappa query failed");
		if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("could not find the value of an unchanged TOASTed column of source table \"%s\"",
							get_rel_name(sp->relid)),
					 errhint("Use REPLICA IDENTITY FULL on the source, so that updates carry whole rows.")));
	}

	if (!vp->has_keys)
		full = true;
	if (!full)
		collect_keys(vp, touched, false);	/* step 2 */

	/* step 3 */
	for (int i = 0; i < vp->nsources; i++)
	{
		SourcePlan *sp = &vp->sources[i];

		if (truncated[i])
			kappa_run(sp->truncate_a);
		if (touched[i])
		{
			if (!sp->inserts_only)	/* else no key is in the copy: see above */
				kappa_run_keyed(&sp->apply_delete);
			kappa_run(sp->apply_insert);
		}
	}

	if (full)
	{
		rows += kappa_run(vp->delete_all);
		rows += kappa_run(vp->insert_all);
		if (vp->agg)
		{
			kappa_run(vp->agg->clear_state);
			kappa_run(vp->agg->fill_state);
		}
	}
	else
	{
		collect_keys(vp, touched, true);	/* step 4 */

		/* step 5 */
		if (vp->agg)
		{
			rows += kappa_run(vp->agg->merge);
			if (kappa_run(vp->agg->take_dirty) > 0)
				rows += recompute_keys(vp);
			kappa_run(vp->agg->clear_partials);
		}
		else
			rows += recompute_keys(vp);
	}
	for (int i = 0; i < vp->nsources; i++)
		if (touched[i])
			kappa_run(vp->sources[i].clear_d);

	kappa_owner_leave(&scope);

	*new_applied = kappa_batch->last_commit_lsn;

	*ntxns = kappa_count_lsns(lsns);
	return rows;
}

/*
 * How many distinct commit LSNs lsns holds (as pointers): a transaction
 * that changed several sources counts once.
 */
int64
kappa_count_lsns(List *lsns)
{
	int64		n = 0;

	list_sort(lsns, list_ptr_cmp);
	for (int i = 0; i < list_length(lsns); i++)
	{
		if (i == 0 || list_nth(lsns, i) != list_nth(lsns, i - 1))
			n++;
	}
	return n;
}
