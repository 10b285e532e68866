/*-------------------------------------------------------------------------
 *
 * partitions.c
 *	  Partitioned tables as sources of derived views: the DDL that changes
 *	  which partitions hold a source's rows.
 *
 * A partitioned source's rows live in its partitions, whose changes the
 * WAL carries as theirs; the apply worker routes them to the partitioned
 * tables above them (change_sink.c).  Three commands change the rows of a
 * partitioned table without any change of a row:
 *
 *		ALTER TABLE ... ATTACH PARTITION	(the attached table's rows come)
 *		ALTER TABLE ... DETACH PARTITION	(the detached table's rows go)
 *		DROP TABLE of a partition, however it is dropped (DROP SCHEMA ...
 *		CASCADE, DROP OWNED BY)
 *
 * Each inserts the partitioned table's OID into kappa.partition_changes
 * in its own transaction, so that the worker, decoding the insert in commit
 * order, recomputes the views over that table at the batch's snapshot, as
 * after a TRUNCATE.  No role may write that table (the row is inserted
 * here without a permission check), so no one else can make views
 * recompute.  ATTACH and DETACH write it when views read the table or one
 * above it; a partition dropped, when its table has REPLICA IDENTITY
 * FULL, as the partitioned tables views read have (kappa.views is not read
 * in the middle of a deletion).
 *
 * DETACH PARTITION CONCURRENTLY runs in two transactions, the second of
 * which no hook sees; it is refused on tables views read.
 *
 * The views need whole old rows in the WAL (REPLICA IDENTITY FULL) of every
 * partition, which kappa.create_view sets on the partitions there are.
 * A partition created (CREATE TABLE ... PARTITION OF) or attached later
 * under a table that views read is given it too, with a NOTICE: its
 * creator owns it.  Should a partition lose it, the views break at its
 * first update or delete (kappa_check_row_images), never go wrong.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "pg_kappa.h"

static object_access_hook_type prev_object_access_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

/* Does this database have the extension, and does its WAL feed decoding? */
static bool
partitions_matter(void)
{
	return XLogLogicalInfoActive() && IsTransactionState() &&
		OidIsValid(get_extension_oid("pg_kappa", true));
}

/* The rows of partitioned table relid changed without changes of theirs. */
static void
partitions_changed(Oid relid)
{
	Oid			changes = kappa_partition_changes_relid();
	Relation	rel;
	Datum		value = ObjectIdGetDatum(relid);
	bool		isnull = false;

	if (!OidIsValid(changes))
		return;					/* the extension's objects are older */
	rel = table_open(changes, RowExclusiveLock);
	simple_heap_insert(rel, heap_form_tuple(RelationGetDescr(rel), &value, &isnull));
	table_close(rel, RowExclusiveLock);
}

/* Is relid, or a partitioned table above it, a source of some view? */
static bool
under_source(Oid relid)
{
	Datum		arg = kappa_oid_list_array(lcons_oid(relid, get_partition_ancestors(relid)));
	SavedUser	saved;
	bool		found;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* every role's views: kappa.views shows a role only its own */
	kappa_become(kappa_extension_owner(), &saved);
	if (SPI_execute_with_args("SELECT 1 FROM kappa.views"
							  " WHERE sources OPERATOR(pg_catalog.&&) $1 LIMIT 1",
							  1, (Oid[]) {OIDARRAYOID}, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	found = SPI_processed > 0;
	kappa_unbecome(&saved);
	SPI_finish();
	return found;
}

/*
 * A table that has just become a partition under a table that views read:
 * no table under it may keep its changes out of the WAL (a foreign table,
 * an unlogged one: they would never reach the views), and REPLICA IDENTITY
 * FULL goes on it and the partitions under it, set by the current role
 * (who created or attached it, and so owns it).
 */
static void
identity_full_under_source(Oid relid)
{
	Oid			unlogged;

	if (!under_source(relid))
		return;
	unlogged = kappa_unlogged_partition(relid);
	if (OidIsValid(unlogged))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s %s cannot be a partition of table \"%s\", which derived views read",
						get_rel_relkind(unlogged) == RELKIND_FOREIGN_TABLE ? "foreign table" :
						get_rel_persistence(unlogged) == RELPERSISTENCE_TEMP ? "temporary table" :
						"unlogged table",
						kappa_qualified_name(unlogged),
						get_rel_name(get_partition_parent(relid, true))),
				 errdetail("Its changes are not in the WAL, from which the views are maintained.")));
	kappa_ensure_identity_full(list_make1_oid(relid),
							   "Derived views read the partitioned table above it, and take whole old rows of updates and deletes from the WAL.");
}

static void
partitions_process_utility(PlannedStmt *pstmt, const char *queryString,
						   bool readOnlyTree, ProcessUtilityContext context,
						   ParamListInfo params, QueryEnvironment *queryEnv,
						   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *tree = pstmt->utilityStmt;
	AlterTableStmt *alter = NULL;
	CreateStmt *create = NULL;
	bool		matters = false;
	Oid			table = InvalidOid; /* ALTER's table, resolved before */
	Oid			create_nsp = InvalidOid;
	List	   *attached = NIL; /* the tables ATTACH names, resolved before */

	if (IsA(tree, AlterTableStmt) && ((AlterTableStmt *) tree)->objtype == OBJECT_TABLE)
		alter = (AlterTableStmt *) tree;
	else if ((IsA(tree, CreateStmt) || IsA(tree, CreateForeignTableStmt)) &&
			 ((CreateStmt *) tree)->partbound != NULL)
		create = (CreateStmt *) tree;

	/*
	 * Before: the names are resolved once, as the command resolves them
	 * (code it runs, a partition key's function, could change the
	 * search_path), and DETACH ... CONCURRENTLY (which ends in a transaction
	 * of its own) and SET UNLOGGED of a partition are refused.
	 */
	if ((alter != NULL || create != NULL) && partitions_matter())
		matters = true;
	if (matters && create != NULL)
		create_nsp = kappa_creation_namespace(create->relation->schemaname);
	if (matters && alter != NULL)
	{
		ListCell   *lc;

		table = RangeVarGetRelid(alter->relation, NoLock, true);
		foreach(lc, alter->cmds)
		{
			AlterTableCmd *cmd = lfirst(lc);

			if (!OidIsValid(table))
				break;
			if (cmd->subtype == AT_AttachPartition)
				attached = lappend_oid(attached,
									   RangeVarGetRelid(((PartitionCmd *) cmd->def)->name, NoLock, true));
			else if (cmd->subtype == AT_SetUnLogged)
			{
				if (get_rel_relispartition(table) && under_source(table))
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("cannot make partition \"%s\" unlogged, as derived views read the table above it",
									alter->relation->relname),
							 errdetail("Changes of an unlogged table are not in the WAL, from which the views are maintained.")));
			}
			else if (cmd->subtype == AT_DetachPartition &&
					 ((PartitionCmd *) cmd->def)->concurrent && under_source(table))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot detach a partition concurrently from table \"%s\", which derived views read",
								alter->relation->relname),
						 errdetail("Its rows leave the table in a transaction that derived views cannot follow."),
						 errhint("Use DETACH PARTITION without CONCURRENTLY.")));
		}
	}

	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	/* after: the partitions are as the command left them */
	if (matters && OidIsValid(table))
	{
		ListCell   *lc;
		bool		changed = false;

		foreach(lc, alter->cmds)
		{
			AlterTableCmd *cmd = lfirst(lc);

			if (cmd->subtype == AT_AttachPartition || cmd->subtype == AT_DetachPartition ||
				cmd->subtype == AT_DetachPartitionFinalize)
				changed = true;
		}
		if (changed && under_source(table))
		{
			partitions_changed(table);
			foreach(lc, attached)
				if (OidIsValid(lfirst_oid(lc)))
					identity_full_under_source(lfirst_oid(lc));
		}
	}
	else if (matters && OidIsValid(create_nsp))
	{
		Oid			relid = get_relname_relid(create->relation->relname, create_nsp);

		/* (it is empty: a default partition holding its rows is refused) */
		if (OidIsValid(relid))
			identity_full_under_source(relid);
	}
}

/* A partition dropped, however: its table's rows went with it. */
static void
partitions_object_access(ObjectAccessType access, Oid classId, Oid objectId,
						 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access != OAT_DROP || classId != RelationRelationId || subId != 0)
		return;
	if (!get_rel_relispartition(objectId) ||
		(get_rel_relkind(objectId) != RELKIND_RELATION &&
		 get_rel_relkind(objectId) != RELKIND_PARTITIONED_TABLE))
		return;
	if (partitions_matter())
	{
		Oid			parent = get_partition_parent(objectId, true);
		HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(parent));

		if (!HeapTupleIsValid(tuple))
			return;
		if (((Form_pg_class) GETSTRUCT(tuple))->relreplident == REPLICA_IDENTITY_FULL)
			partitions_changed(parent);
		ReleaseSysCache(tuple);
	}
}

/* Install the hooks (_PG_init). */
void
kappa_partitions_init(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = partitions_object_access;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = partitions_process_utility;
}
