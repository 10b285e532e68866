/*-------------------------------------------------------------------------
 *
 * pg_kappa.c
 *	  Module entry point: the magic block, _PG_init and the settings.
 *
 * _PG_init defines the pg_kappa.* settings and, when the library is in
 * shared_preload_libraries, requests shared memory, registers the
 * launcher and the commit callback that wakes apply workers.  The output
 * plugin's entry point (_PG_output_plugin_init) lives in output_plugin.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "utils/guc.h"

#include "pg_kappa.h"

PG_MODULE_MAGIC;

bool		kappa_enabled = true;
int			kappa_batch_max_changes = 10000;
int			kappa_batch_max_ms = 200;
int			kappa_engine = 2;
bool		kappa_delta_statistics = true;
int			kappa_progress_interval = 10000;
int			kappa_min_parallel_replay_records = 100000;
int			kappa_naptime = 50;
int			kappa_batch_interval = 10;
int			kappa_max_retained_wal = 1024;
int			kappa_max_databases = 32;
int			kappa_max_event_bytes = 256 * 1024 * 1024;
int			kappa_view_lock_timeout = 10 * 1000;
int			kappa_view_statement_timeout = 60 * 1000;
char	   *kappa_test_crash_point = NULL;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomBoolVariable("pg_kappa.enabled",
							 "Runs the apply workers that maintain derived views.",
							 "When off, the launcher stops the workers; changes are kept in the slots' WAL until it is turned on again.",
							 &kappa_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("pg_kappa.delta_statistics",
							 "Tells the planner how many distinct values the join columns of engine 2's deltas hold.",
							 "Counted as each delta is filled; with them, lookups of one join partner by many delta rows are memoized.",
							 &kappa_delta_statistics,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("pg_kappa.batch_max_changes",
							"Ends a batch once it holds this many changes.",
							"Source transactions are never split: a batch always ends at a transaction boundary.",
							&kappa_batch_max_changes,
							10000, 1, INT_MAX,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pg_kappa.batch_max_ms",
							"Ends a batch once it has been collecting for this long.",
							NULL,
							&kappa_batch_max_ms,
							200, 1, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pg_kappa.engine",
							"Delta engine of views created from now on.",
							"1 keeps a copy of every source; 2 takes signed deltas from the WAL and reads the live sources (needs REPLICA IDENTITY FULL).",
							&kappa_engine,
							2, 1, 2,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pg_kappa.batch_interval",
							"Shortest time between the starts of two batches that apply transactions.",
							"Commits that come sooner wait for the next batch, so that under a stream of small transactions the fixed cost of a batch is paid at most this often.  0 starts a batch at once for every commit that wakes the worker.",
							&kappa_batch_interval,
							10, 0, 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pg_kappa.naptime",
							"Time an idle apply worker sleeps before looking for new WAL.",
							"A commit that wrote wakes its database's worker at once, as kappa.wait does.",
							&kappa_naptime,
							50, 1, 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pg_kappa.progress_interval",
							"Time between progress notices of kappa.replay.",
							"0 reports every step of a replay (reading the log, loading each source, computing the view).",
							&kappa_progress_interval,
							10000, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pg_kappa.min_parallel_replay_records",
							"Change records of the event log from which kappa.replay reads the log in a parallel worker.",
							"The worker parses the log while the replaying backend sorts what it reads.  -1 never uses one; max_parallel_maintenance_workers = 0 neither.",
							&kappa_min_parallel_replay_records,
							100000, -1, INT_MAX,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pg_kappa.max_retained_wal",
							"WAL a paused view may hold back in its slot before it is marked stale.",
							"-1 means no limit.  A worker that is not running holds WAL too: set max_slot_wal_keep_size as a backstop; views of an invalidated slot are marked stale.",
							&kappa_max_retained_wal,
							1024, -1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pg_kappa.max_databases",
							"Maximum number of databases that can have apply workers at the same time.",
							"Each database with derived views or captured tables holds one worker slot while it has them; it also needs a background worker (max_worker_processes) and a replication slot (max_replication_slots).",
							&kappa_max_databases,
							32, 1, MAX_BACKENDS,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pg_kappa.max_event_bytes",
							"Largest change the event log takes: its values, and its JSON record.",
							"A change of a captured table that is larger is not logged: the capture is marked failed, with the reason, and logs nothing more of that table until it is captured again.",
							&kappa_max_event_bytes,
							256 * 1024 * 1024, 1024, KAPPA_MAX_EVENT_BYTES_LIMIT,
							PGC_SIGHUP,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pg_kappa.view_lock_timeout",
							"Longest time the apply worker waits for a lock while applying a batch to one view.",
							"A view that times out is not broken: it falls behind, and is retried later from its applied LSN while the other views go on.  0 means no limit.",
							&kappa_view_lock_timeout,
							10 * 1000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("pg_kappa.view_statement_timeout",
							"Longest time the apply worker spends applying a batch to one view.",
							"A view that times out is not broken: it falls behind, and is retried later from its applied LSN while the other views go on.  0 means no limit.",
							&kappa_view_statement_timeout,
							60 * 1000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomStringVariable("pg_kappa.test_crash_point",
							   "For tests only: the apply worker kills itself at this point.",
							   "One of before_commit, after_commit; the worker dies there once the file pg_kappa_crash exists in the data directory (and removes it).",
							   &kappa_test_crash_point,
							   "",
							   PGC_SIGHUP,
							   GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("pg_kappa");

	kappa_delta_sizes_init();
	kappa_drop_guard_init();
	kappa_partitions_init();
	kappa_internal_guard_init();

	if (!process_shared_preload_libraries_in_progress)
		return;

	kappa_shmem_init();
	kappa_register_launcher();
	kappa_commit_wake_init();
}
