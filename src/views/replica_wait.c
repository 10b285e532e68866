/*-------------------------------------------------------------------------
 *
 * replica_wait.c
 *	  Views on logical replicas: which subscription of this database
 *	  replicates a derived view's sources, and whether it has applied its
 *	  publisher's WAL up to a given LSN (kappa.wait's origin_lsn).
 *
 * A subscription has applied everything its publisher committed before
 * LSN X, for the sources of a view, when
 *
 *	 - every source it replicates is in state READY in pg_subscription_rel
 *	   (its initial copy is done and the apply worker has taken it over),
 *	 - and either its replication origin pg_<suboid> has a remote LSN of at
 *	   least X (the end of the last publisher commit applied), or its apply
 *	   worker has processed a keepalive after having received the
 *	   publisher's WAL up to X (pg_stat_subscription.latest_end_lsn).  The
 *	   worker handles messages one at a time, so all it received before a
 *	   keepalive is committed here by then.  The second way is needed when
 *	   X lies past the last commit the publication sends: after a commit to
 *	   a table that is not published, or WAL of other databases.
 *
 * The local transactions that applied those commits are then in the local
 * WAL before the insert position read afterwards; kappa.wait (wait.c)
 * waits for the view to reach that position as it does for local writes.
 *
 * This file reads catalogs and the subscription's progress only; the wait
 * loop, its timeout and the view's own progress are wait.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_subscription.h"
#include "catalog/pg_subscription_rel.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "replication/origin.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/pg_lsn.h"
#include "utils/syscache.h"

#include "pg_kappa.h"

/* OIDs of the subscriptions that replicate relation relid */
static List *
subscriptions_of(Oid relid)
{
	CatCList   *list;
	List	   *subids = NIL;

	list = SearchSysCacheList1(SUBSCRIPTIONRELMAP, ObjectIdGetDatum(relid));
	for (int i = 0; i < list->n_members; i++)
	{
		Form_pg_subscription_rel sr;

		sr = (Form_pg_subscription_rel) GETSTRUCT(&list->members[i]->tuple);
		subids = list_append_unique_oid(subids, sr->srsubid);
	}
	ReleaseSysCacheList(list);
	return subids;
}

/* "a", "a" and "b", "a", "b" and "c": the names of subscriptions subids */
static char *
subscription_names(List *subids)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, subids)
	{
		Subscription *sub = GetSubscription(lfirst_oid(lc), true);

		if (foreach_current_index(lc) > 0)
			appendStringInfoString(&buf, lnext(subids, lc) ? ", " : " and ");
		appendStringInfo(&buf, "\"%s\"", sub ? sub->name : "?");
	}
	return buf.data;
}

/*
 * The subscription kappa.wait waits for, for a view whose sources are
 * sources (OIDs): the one named subname, which must replicate at least one
 * of them, or, when subname is NULL, the one subscription of this database
 * that replicates any of them.
 */
Oid
kappa_view_subscription(Oid viewid, List *sources, const char *subname)
{
	List	   *subids = NIL;
	ListCell   *lc;

	foreach(lc, sources)
		subids = list_concat_unique_oid(subids, subscriptions_of(lfirst_oid(lc)));

	if (subname != NULL)
	{
		/* an unknown name: "subscription ... does not exist" */
		Oid			subid = get_subscription_oid(subname, false);

		if (!list_member_oid(subids, subid))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("subscription \"%s\" does not replicate any source of derived view \"%s\"",
							subname, get_rel_name(viewid)),
					 subids != NIL ?
					 errhint("The view's sources are replicated by subscription %s.",
							 subscription_names(subids)) :
					 errhint("None of the view's sources is replicated by a subscription of this database.")));
		return subid;
	}
	if (subids == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no subscription of this database replicates a source of derived view \"%s\"",
						get_rel_name(viewid)),
				 errdetail("origin_lsn is a position in the WAL of a subscription's publisher."),
				 errhint("For changes made in this database, wait with target, or with neither.")));
	if (list_length(subids) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_PARAMETER),
				 errmsg("sources of derived view \"%s\" are replicated by more than one subscription",
						get_rel_name(viewid)),
				 errdetail("They are replicated by subscriptions %s.", subscription_names(subids)),
				 errhint("Name one with subscription => name; to wait for sources that come through several, wait through each of them.")));
	return linitial_oid(subids);
}

/*
 * Has the apply worker of subscription subid processed a keepalive after
 * receiving its publisher's WAL up to lsn?  Read as pg_stat_subscription
 * shows it; false while no apply worker runs.
 */
static bool
worker_received_past(Oid subid, XLogRecPtr lsn)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(subid)};
	bool		isnull;
	Datum		d;
	bool		past = false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT latest_end_lsn FROM pg_catalog.pg_stat_get_subscription($1)"
							  " WHERE relid IS NULL AND pid IS NOT NULL",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_stat_get_subscription");
	if (SPI_processed == 1)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		past = !isnull && DatumGetLSN(d) >= lsn;
	}
	SPI_finish();
	return past;
}

/*
 * Has subscription subid applied everything its publisher committed before
 * origin_lsn to those of sources it replicates?  subname is its name, for
 * messages.  The catalogs are read anew.  When it has not and cannot get there (dropped, disabled), an
 * error says why.
 */
bool
kappa_subscription_applied(Oid subid, const char *subname, List *sources,
						   XLogRecPtr origin_lsn)
{
	Subscription *sub;
	char		originname[NAMEDATALEN];
	RepOriginId originid;
	XLogRecPtr	remote = InvalidXLogRecPtr;
	ListCell   *lc;
	char	   *notready = NULL;

	/* see ALTER SUBSCRIPTION and the workers' catalog updates */
	AcceptInvalidationMessages();
	sub = GetSubscription(subid, true);
	if (sub == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("subscription \"%s\" was dropped while waiting for it", subname)));

	snprintf(originname, sizeof(originname), "pg_%u", subid);
	originid = replorigin_by_name(originname, true);
	if (originid != InvalidRepOriginId)
		remote = replorigin_get_progress(originid, false);

	foreach(lc, sources)
	{
		XLogRecPtr	sublsn;
		char		state = GetSubscriptionRelState(subid, lfirst_oid(lc), &sublsn);

		if (state != SUBREL_STATE_UNKNOWN && state != SUBREL_STATE_READY)
		{
			notready = get_rel_name(lfirst_oid(lc));
			break;
		}
	}
	if (notready == NULL &&
		(remote >= origin_lsn || (sub->enabled && worker_received_past(subid, origin_lsn))))
		return true;

	if (!sub->enabled)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot wait for origin LSN %X/%X on subscription \"%s\"",
						LSN_FORMAT_ARGS(origin_lsn), sub->name),
				 notready ?
				 errdetail("The subscription is disabled, and the initial copy of table \"%s\" is not done.",
						   notready) :
				 errdetail("The subscription is disabled; it has applied its publisher's WAL up to %X/%X.",
						   LSN_FORMAT_ARGS(remote)),
				 errhint("Enable it with ALTER SUBSCRIPTION ... ENABLE, then wait again.")));
	return false;
}
