/*-------------------------------------------------------------------------
 *
 * replay_reader.c
 *	  A parallel worker that reads the event log for a replay.
 *
 * Parsing the log's records into entries is most of a replay's work
 * (replay_state.c).  With a reader, a long log is parsed in two parts at
 * once: a parallel worker of the replaying backend, under its snapshot and
 * as its user, reads the log rows of the first part and parses their
 * records, as the backend would, and sends the entries through a shared
 * memory queue, in log order; the backend reads the rest, and takes the
 * worker's entries into its sorts as they come.  This file owns the
 * parallel context: the dynamic shared memory that tells the worker what
 * to read, the queue, the worker's entry point, and the leader's end of
 * the queue.  What goes through the queue is replay_state.c's.
 *
 * One worker, and none when max_parallel_maintenance_workers is 0 (as for
 * a parallel CREATE INDEX) or when none can be started: the replaying
 * backend then reads the log itself.  An error in the worker (a corrupt
 * record, say) is raised again in the backend, with the worker's context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "utils/backend_status.h"

#include "pg_kappa.h"

/* Keys of the worker's shared memory */
#define READER_KEY_FIXED	UINT64CONST(0xBA0A000000000001)
#define READER_KEY_VIEW		UINT64CONST(0xBA0A000000000002)
#define READER_KEY_QUEUE	UINT64CONST(0xBA0A000000000003)

/* Room for entries the worker has read and the backend not yet taken */
#define READER_QUEUE_SIZE	(4 * 1024 * 1024)

/* What to read: the sources, their lower bounds, the upper bound, the part */
typedef struct ReaderFixed
{
	int			nsrc;
	XLogRecPtr	upper;
	int64		split;			/* the first batch after the worker's part */
	Oid			relids[FLEXIBLE_ARRAY_MEMBER];
	/* then XLogRecPtr lowers[nsrc], at READER_LOWERS(nsrc) */
} ReaderFixed;

#define READER_LOWERS_OFFSET(n) \
	MAXALIGN(offsetof(ReaderFixed, relids) + sizeof(Oid) * (n))
#define READER_FIXED_SIZE(n) \
	(READER_LOWERS_OFFSET(n) + sizeof(XLogRecPtr) * (n))
#define READER_LOWERS(f) \
	((XLogRecPtr *) ((char *) (f) + READER_LOWERS_OFFSET((f)->nsrc)))

struct KappaReplayReader
{
	ParallelContext *pcxt;
	shm_mq_handle *mq;
};

extern PGDLLEXPORT void kappa_replay_reader_main(dsm_segment *seg, shm_toc *toc);

/*
 * Start a worker that reads the log for the replay of view (its sources
 * relids, their records committed from lowers[i] to upper).  NULL if none
 * is to be had: the caller reads the log itself.  The caller has an active
 * snapshot, which the worker reads under.
 */
KappaReplayReader *
kappa_replay_reader_begin(const char *view, int nsrc, Oid *relids,
						  XLogRecPtr *lowers, XLogRecPtr upper, int64 split)
{
	ParallelContext *pcxt;
	ReaderFixed *fixed;
	char	   *viewcopy;
	shm_mq	   *mq;
	KappaReplayReader *reader;

	/* only a backend of a client, not already in parallel mode */
	if (max_parallel_maintenance_workers == 0 || IsInParallelMode() ||
		MyBackendType != B_BACKEND)
		return NULL;

	EnterParallelMode();
	pcxt = CreateParallelContext("pg_kappa", "kappa_replay_reader_main", 1);
	shm_toc_estimate_chunk(&pcxt->estimator, READER_FIXED_SIZE(nsrc));
	shm_toc_estimate_chunk(&pcxt->estimator, strlen(view) + 1);
	shm_toc_estimate_chunk(&pcxt->estimator, READER_QUEUE_SIZE);
	shm_toc_estimate_keys(&pcxt->estimator, 3);
	InitializeParallelDSM(pcxt);
	if (pcxt->seg == NULL)
	{
		/* no dynamic shared memory to be had */
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return NULL;
	}

	fixed = shm_toc_allocate(pcxt->toc, READER_FIXED_SIZE(nsrc));
	fixed->nsrc = nsrc;
	fixed->upper = upper;
	fixed->split = split;
	memcpy(fixed->relids, relids, sizeof(Oid) * nsrc);
	memcpy(READER_LOWERS(fixed), lowers, sizeof(XLogRecPtr) * nsrc);
	shm_toc_insert(pcxt->toc, READER_KEY_FIXED, fixed);
	viewcopy = shm_toc_allocate(pcxt->toc, strlen(view) + 1);
	strcpy(viewcopy, view);
	shm_toc_insert(pcxt->toc, READER_KEY_VIEW, viewcopy);
	mq = shm_mq_create(shm_toc_allocate(pcxt->toc, READER_QUEUE_SIZE), READER_QUEUE_SIZE);
	shm_toc_insert(pcxt->toc, READER_KEY_QUEUE, mq);
	shm_mq_set_receiver(mq, MyProc);

	LaunchParallelWorkers(pcxt);
	if (pcxt->nworkers_launched == 0)
	{
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return NULL;
	}
	reader = palloc(sizeof(KappaReplayReader));
	reader->pcxt = pcxt;
	/* a worker that dies before it attaches detaches the queue */
	reader->mq = shm_mq_attach(mq, pcxt->seg, pcxt->worker[0].bgwhandle);
	return reader;
}

/*
 * The next message of the reader into *data, valid until the next call:
 * SHM_MQ_SUCCESS; SHM_MQ_WOULD_BLOCK, with nowait, when there is none yet;
 * SHM_MQ_DETACHED once the worker has detached (it is done, or failed).
 */
int
kappa_replay_reader_next(KappaReplayReader *reader, Size *nbytes, void **data,
						 bool nowait)
{
	return shm_mq_receive(reader->mq, nbytes, data, nowait);
}

/*
 * Wait for the worker to end, raising its error if it had one, and leave
 * parallel mode.
 */
void
kappa_replay_reader_end(KappaReplayReader *reader)
{
	shm_mq_detach(reader->mq);
	WaitForParallelWorkersToFinish(reader->pcxt);
	DestroyParallelContext(reader->pcxt);
	ExitParallelMode();
	pfree(reader);
}

/* The worker's entry point (CreateParallelContext names it). */
void
kappa_replay_reader_main(dsm_segment *seg, shm_toc *toc)
{
	ReaderFixed *fixed = shm_toc_lookup(toc, READER_KEY_FIXED, false);
	char	   *view = shm_toc_lookup(toc, READER_KEY_VIEW, false);
	shm_mq	   *mq = shm_toc_lookup(toc, READER_KEY_QUEUE, false);
	shm_mq_handle *mqh;

	shm_mq_set_sender(mq, MyProc);
	mqh = shm_mq_attach(mq, seg, NULL);
	pgstat_report_activity(STATE_RUNNING, psprintf("kappa.replay(%s): reading the event log", view));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kappa_replay_read_log(view, fixed->nsrc, fixed->relids, READER_LOWERS(fixed),
						  fixed->upper, fixed->split, mqh);
	SPI_finish();
	shm_mq_detach(mqh);
}
