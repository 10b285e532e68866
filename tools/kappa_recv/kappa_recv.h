/*-------------------------------------------------------------------------
 *
 * kappa_recv.h
 *	  Declarations shared by the parts of kappa_recv, the libpq consumer of
 *	  the pg_kappa JSON stream.
 *
 * Owns: the exit codes, the option struct filled by main.c, the state record
 * kept by state.c, the sink interface implemented by sink_file.c,
 * sink_spool.c and sink_nats.c, and the entry points of stream.c, verify.c
 * and consume.c.
 *
 * Does not own any behaviour: each part is described in its own file.
 *
 * tools/kappa_recv/kappa_recv.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_RECV_H
#define KAPPA_RECV_H

#include "postgres_fe.h"

#include <signal.h>

#include "access/xlogdefs.h"
#include "libpq-fe.h"
#include "port/pg_crc32c.h"

/*
 * Exit codes (documented in --help and README.md; keep them in sync).
 */
#define KR_EXIT_OK			0	/* stopped on request or at --endpos */
#define KR_EXIT_USAGE		1	/* bad options, bad conninfo, plugin option
								 * refused */
#define KR_EXIT_SERVER		2	/* cannot connect or stream: privilege,
								 * slot, plugin, unrecoverable server error */
#define KR_EXIT_VERIFY		3	/* checksum, change count or stream shape
								 * wrong */
#define KR_EXIT_SINK		4	/* write/fsync failed or --exec command
								 * failed */
#define KR_EXIT_STATE		5	/* state file unreadable or inconsistent;
								 * with --nats: the subject's last message
								 * is not one of this slot's */

/* --nats-retention */
typedef enum KRNatsRetention
{
	KR_NATS_LIMITS,
	KR_NATS_INTEREST,
	KR_NATS_WORKQUEUE
} KRNatsRetention;

/* Command line, as parsed by main.c. */
typedef struct KROptions
{
	const char *dbname;			/* connection string or database name */
	const char *host;
	const char *port;
	const char *username;
	const char *slot;
	bool		create_slot;
	bool		if_not_exists;
	bool		drop_slot;
	const char *outfile;		/* -f; "-" is stdout */
	const char *exec_cmd;		/* --exec */
	const char *state_file;
	uint64		rotate_size;	/* 0 = never rotate */
	int			fsync_interval_ms;	/* 0 = fsync every transaction */
	int			status_interval_ms;
	int			reconnect_max_ms;	/* 0 = do not reconnect */
	XLogRecPtr	endpos;			/* InvalidXLogRecPtr = none */
	int			noptions;
	char	  **option_names;	/* plugin options for START_REPLICATION */
	char	  **option_values;	/* NULL value = option given without one */
	bool		verbose;
	/* --nats sink */
	const char *nats_url;		/* NULL: not the NATS sink */
	const char *nats_stream;
	const char *nats_subject;
	bool		nats_create_stream;
	int			nats_replicas;
	KRNatsRetention nats_retention;
	int			nats_max_age_s; /* 0 = unlimited */
	uint64		nats_max_bytes; /* 0 = unlimited */
	int			nats_timeout_ms;	/* wait for a PubAck or an API reply */
} KROptions;

extern KROptions kr_opt;

/* Set by the signal handlers in main.c, polled by the stream loop. */
extern volatile sig_atomic_t kr_stop_requested;
extern volatile sig_atomic_t kr_reopen_requested;

/*
 * Durable position: what has been consumed by the sink, written by state.c
 * (temp file + fsync + rename + fsync of the directory).  The file sink also
 * records where in the output file that position ends.
 */
typedef struct KRState
{
	char		slot[64];
	XLogRecPtr	position;		/* stream position of the last consumed unit
								 * (end LSN of its commit record) */
	XLogRecPtr	commit_lsn;		/* its commit LSN from the commit record */
	char		xid[16];		/* its xid, "" if unknown */
	uint64		segment;		/* number of size rotations done so far */
	uint64		offset;			/* bytes of the output file that are whole,
								 * verified transactions */
	uint64		inode;			/* inode of the output file, 0 if none */
} KRState;

extern bool state_read(const char *path, KRState *state, bool *exists);
extern bool state_write(const char *path, const KRState *state);
extern bool fsync_parent_dir(const char *path);

/*
 * A unit is what kappa_recv delivers atomically: a transaction (begin ...
 * commit, or begin_prepare ... prepare), or one record that stands alone
 * (a non-transactional message, commit_prepared, rollback_prepared).
 */
typedef struct KRUnitInfo
{
	XLogRecPtr	position;		/* header LSN of the closing record */
	XLogRecPtr	commit_lsn;		/* "lsn" of the closing record, if any */
	char		xid[16];
	uint64		changes;
	char		checksum[9];	/* CRC-32C of a transaction's change records,
								 * 8 hex digits; "" for a stand-alone record */
} KRUnitInfo;

/* The sink interface.  Every function returns false after logging an error. */
typedef struct KRSink KRSink;
struct KRSink
{
	/*
	 * Recover from the saved state (fixing it up when needed) and get ready
	 * to receive.  Returns KR_EXIT_OK, or the exit code to stop with.
	 */
	int			(*open) (KRSink *sink, KRState *state);
	/* a unit starts */
	bool		(*begin) (KRSink *sink);
	/* one record of the open unit; the sink adds the newline */
	bool		(*write) (KRSink *sink, const char *line, size_t len);
	/* forget the open unit (bad checksum, duplicate, connection lost) */
	bool		(*abort) (KRSink *sink);
	/* the open unit is complete and verified */
	bool		(*commit) (KRSink *sink, const KRUnitInfo *info);
	/* make every committed unit durable; update the sink's part of state */
	bool		(*sync) (KRSink *sink, KRState *state);
	/*
	 * Between units, after a sync and a state write: rotate by size or
	 * reopen on request.  Sets *changed when state must be written again.
	 */
	bool		(*maintain) (KRSink *sink, KRState *state, bool reopen,
							 bool *changed);
	void		(*close) (KRSink *sink);
	/*
	 * true when commit() alone makes a unit durable (--exec, stdout, --nats
	 * without -F)
	 */
	bool		sync_on_commit;
	void	   *private_data;
};

extern KRSink *sink_file_create(const char *path, uint64 rotate_size);
extern KRSink *sink_stdout_create(void);
extern KRSink *sink_exec_create(const char *command);
extern KRSink *sink_nats_create(void);
extern const bool sink_nats_supported;	/* built with libnats */

/* Test hook (main.c): KAPPA_RECV_TEST_CRASH=point[:N] kills us there. */
extern void kr_test_crash_point(const char *point);

/* write() all of it, retrying after interrupts and short writes (main.c) */
extern bool kr_write_all(int fd, const char *data, size_t len);

/*
 * Stream verification (verify.c): each received record is classified and
 * folded into the running checksum of the open unit.
 */
typedef enum KRLineKind
{
	KR_LINE_OPEN,				/* begin / begin_prepare */
	KR_LINE_CHANGE,				/* a change inside a unit */
	KR_LINE_CLOSE,				/* commit / prepare, verified */
	KR_LINE_SINGLE,				/* a record that is a unit by itself */
	KR_LINE_ERROR				/* mismatch or malformed: stop */
} KRLineKind;

typedef struct KRVerifier
{
	bool		in_unit;
	uint64		nchanges;
	pg_crc32c	crc;
	char		xid[16];		/* from the opening record */
	uint64		total_changes;	/* change records seen in this run, for the
								 * test hooks */
	long		corrupt_at;		/* KAPPA_RECV_TEST_CORRUPT */
	long		drop_at;		/* KAPPA_RECV_TEST_DROP */
} KRVerifier;

extern void verifier_init(KRVerifier *v);
extern void verifier_reset(KRVerifier *v);
extern KRLineKind verifier_line(KRVerifier *v, char *line, size_t *len,
								XLogRecPtr header_lsn, KRUnitInfo *info,
								bool *drop);
extern bool json_top_field(const char *line, size_t len, const char *key,
						   const char **val, size_t *vlen);

/* Replication connection (stream.c). */
typedef enum KRMessageType
{
	KR_MSG_NONE,				/* nothing arrived within the timeout */
	KR_MSG_DATA,				/* XLogData: one pg_kappa record */
	KR_MSG_KEEPALIVE,			/* primary keepalive */
	KR_MSG_LOST,				/* connection gone or server ended the copy:
								 * worth reconnecting */
	KR_MSG_FATAL				/* error that reconnecting will not cure */
} KRMessageType;

typedef struct KRMessage
{
	KRMessageType type;
	XLogRecPtr	lsn;			/* XLogData: start; keepalive: server's end */
	bool		reply_requested;
	char	   *data;			/* XLogData payload (not NUL-terminated) */
	size_t		len;
	char	   *buffer;			/* libpq buffer, freed by the next call */
} KRMessage;

extern PGconn *stream_connect(bool retrying, int *exit_code);
extern bool stream_prepare_slot(PGconn *conn, int *exit_code);
extern bool stream_drop_slot(PGconn *conn);
extern bool stream_start(PGconn *conn, XLogRecPtr startpos, int *exit_code,
						 bool *transient);
extern void stream_receive(PGconn *conn, int timeout_ms, KRMessage *msg,
						   int *exit_code);
extern bool stream_send_status(PGconn *conn, XLogRecPtr written,
							   XLogRecPtr flushed, bool reply);
extern void stream_finish(PGconn *conn);

/*
 * Delivery (consume.c): ties stream, verifier, sink and state together and
 * decides when a position may be acknowledged.
 */
typedef enum KRConsumeResult
{
	KR_CONSUME_STOP,			/* stop requested or endpos reached */
	KR_CONSUME_LOST,			/* connection lost: reconnect */
	KR_CONSUME_FATAL			/* exit with *exit_code */
} KRConsumeResult;

extern bool consume_init(KRSink *sink, const char *state_path, int *exit_code);
extern XLogRecPtr consume_start_position(void);
extern KRConsumeResult consume(PGconn *conn, int *exit_code);
extern bool consume_pause(int *exit_code);
extern void consume_close(void);

/* Small helpers (main.c). */
extern int64 kr_now_ms(void);
extern void kr_sleep_ms(int ms);
extern bool kr_parse_lsn(const char *s, size_t len, XLogRecPtr *lsn);

#endif							/* KAPPA_RECV_H */
