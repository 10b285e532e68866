/*-------------------------------------------------------------------------
 *
 * main.c
 *	  kappa_recv: receive pg_kappa's JSON events from a logical replication
 *	  slot and deliver each committed transaction exactly once to a file, a
 *	  command or a NATS JetStream stream.
 *
 * Owns: the command line (parsing, checking, the man-page style --help),
 * the signal handlers (SIGINT/SIGTERM ask for a clean stop, SIGHUP for
 * reopening the output file), the connect / stream / reconnect loop with
 * its backoff, and small helpers shared by the other files (time, LSN
 * parsing, complete writes, the crash test hook).
 *
 * Does not own: the protocol (stream.c), delivery rules (consume.c),
 * checks (verify.c), sinks (sink_file.c, sink_spool.c, sink_nats.c), state
 * (state.c).
 *
 * tools/kappa_recv/main.c
 *
 *-------------------------------------------------------------------------
 */
#include "kappa_recv.h"

#include <getopt.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "common/logging.h"

#define KAPPA_RECV_VERSION "0.1"

KROptions	kr_opt;
volatile sig_atomic_t kr_stop_requested = false;
volatile sig_atomic_t kr_reopen_requested = false;

static void
usage(void)
{
	printf("NAME\n"
		   "    kappa_recv - deliver pg_kappa change events exactly once to a file, a command\n"
		   "    or NATS JetStream\n"
		   "\n"
		   "SYNOPSIS\n"
		   "    kappa_recv [CONNECTION] -S SLOT [--create-slot [--if-not-exists]]\n"
		   "               (-f FILE | --exec COMMAND | --nats URL --nats-stream NAME\n"
		   "               --nats-subject SUBJECT) [OPTION]...\n"
		   "    kappa_recv [CONNECTION] -S SLOT --create-slot [--if-not-exists]\n"
		   "    kappa_recv [CONNECTION] -S SLOT --drop-slot [--if-not-exists]\n"
		   "\n"
		   "DESCRIPTION\n"
		   "    kappa_recv streams a logical replication slot that uses the output plugin\n"
		   "    pg_kappa, checks every transaction against the change count and CRC-32C\n"
		   "    checksum of its commit record, and delivers it whole: appended to FILE as\n"
		   "    JSON lines, or piped to COMMAND.  A position is acknowledged to the server\n"
		   "    only after the transaction is durable (file and directory fsynced) or the\n"
		   "    command exited with status 0.  The last consumed position is kept in a\n"
		   "    state file; after a crash kappa_recv resumes from it, cuts off any\n"
		   "    incomplete tail of FILE and skips transactions it already delivered.\n"
		   "\n"
		   "CONNECTION\n"
		   "    -d, --dbname=CONNSTR   database name or connection string (key=value or\n"
		   "                           postgresql:// URI); PG* environment variables apply\n"
		   "    -h, --host=HOST        server host or socket directory\n"
		   "    -p, --port=PORT        server port\n"
		   "    -U, --username=NAME    role; it needs the REPLICATION attribute\n"
		   "\n"
		   "SLOT\n"
		   "    -S, --slot=NAME        replication slot to read (required)\n"
		   "        --create-slot      create the slot with plugin pg_kappa first; without\n"
		   "                           -f or --exec, only create it\n"
		   "        --if-not-exists    with --create-slot: use the slot if it exists;\n"
		   "                           with --drop-slot: no error if it does not\n"
		   "        --drop-slot        drop the slot and exit\n"
		   "\n"
		   "OUTPUT\n"
		   "    -f, --file=FILE        append events to FILE, one JSON object per line;\n"
		   "                           \"-\" writes whole transactions to standard output\n"
		   "                           (no durability, no state file unless --state-file)\n"
		   "        --exec=COMMAND     run COMMAND (with /bin/sh -c) once per transaction,\n"
		   "                           its records on standard input; exit status 0 means\n"
		   "                           consumed.  The environment carries KAPPA_XID,\n"
		   "                           KAPPA_COMMIT_LSN, KAPPA_END_LSN and KAPPA_CHANGES.\n"
		   "                           Requires --state-file.\n"
		   "        --state-file=PATH  durable position (default FILE.state with -f FILE)\n"
		   "        --rotate-size=SIZE after a transaction that brings FILE to SIZE bytes\n"
		   "                           (suffixes kB, MB, GB) rename it FILE.000001,\n"
		   "                           FILE.000002, ... and start a new FILE\n"
		   "    -F, --fsync-interval=MS\n"
		   "                           0 (default): fsync and acknowledge after every\n"
		   "                           transaction; N: group commit, fsync at most N ms\n"
		   "                           after the first transaction not yet fsynced\n"
		   "\n"
		   "NATS JETSTREAM\n"
		   "        --nats=URL         publish each transaction as one JetStream message\n"
		   "                           (split into parts above the server's max payload)\n"
		   "                           to the NATS server(s) URL (nats://host:port, several\n"
		   "                           separated by commas); acknowledged to PostgreSQL\n"
		   "                           after JetStream's PubAck of every part.  The stream\n"
		   "                           is the state: kappa_recv resumes after the subject's\n"
		   "                           last message.  Headers: Kappa-Slot, Kappa-Xid,\n"
		   "                           Kappa-Commit-Lsn, Kappa-End-Lsn, Kappa-Changes,\n"
		   "                           Kappa-Checksum, Kappa-Part, Kappa-Parts,\n"
		   "                           Kappa-Part-Checksum, Nats-Msg-Id\n"
		   "        --nats-stream=NAME the JetStream stream (must exist, or see below)\n"
		   "        --nats-subject=SUBJECT\n"
		   "                           subject to publish on; one slot per subject\n"
		   "        --nats-create-stream\n"
		   "                           create the stream (file storage, SUBJECT only) if\n"
		   "                           it does not exist, with:\n"
		   "        --nats-replicas=N  replicas (default 1; needs a cluster above 1)\n"
		   "        --nats-retention=limits|interest|workqueue   (default limits)\n"
		   "        --nats-max-age=SECS, --nats-max-bytes=SIZE   limits (default none)\n"
		   "        --nats-timeout=MS  wait for a PubAck or a JetStream reply (default\n"
		   "                           5000); a publish without answer is retried with\n"
		   "                           backoff up to --reconnect-max\n"
		   "    -F MS                  with --nats: publish ahead of the PubAcks and\n"
		   "                           acknowledge the slot in groups (see -F above)\n"
		   "\n"
		   "STREAM\n"
		   "    -o, --option=NAME[=VALUE]\n"
		   "                           pass an option to pg_kappa (include-xids,\n"
		   "                           include-types, tables, actions, ...); see the\n"
		   "                           pg_kappa README; streaming is not supported\n"
		   "    -s, --status-interval=SECS\n"
		   "                           send a status update at least this often\n"
		   "                           (default 10, 0 = only when asked and after syncs)\n"
		   "    -E, --endpos=LSN       stop once everything up to LSN has been delivered\n"
		   "        --reconnect-max=SECS\n"
		   "                           longest wait between reconnection attempts after\n"
		   "                           the connection is lost (default 30; 0 = exit\n"
		   "                           instead of reconnecting)\n"
		   "    -v, --verbose          report connections, slot actions and skips\n"
		   "    -V, --version          print the version and exit\n"
		   "    -?, --help             print this help and exit\n"
		   "\n"
		   "SIGNALS\n"
		   "    SIGINT, SIGTERM        stop between transactions: sync, write the state,\n"
		   "                           acknowledge, exit 0\n"
		   "    SIGHUP                 reopen FILE between transactions (after logrotate\n"
		   "                           has moved it away)\n"
		   "\n"
		   "EXIT STATUS\n"
		   "    0   stopped by SIGINT/SIGTERM, --endpos reached, or slot action done\n"
		   "    1   usage error: bad option, invalid connection string, plugin option\n"
		   "        refused by the server\n"
		   "    2   cannot stream: connection or authentication failed at startup, missing\n"
		   "        REPLICATION privilege, slot missing or not a pg_kappa slot of this\n"
		   "        database, pg_kappa not in output_plugin_libraries, server error that\n"
		   "        a reconnect cannot cure, connection lost with --reconnect-max=0\n"
		   "    3   verification failed: checksum or change count mismatch, or a malformed\n"
		   "        stream; the transaction was not delivered nor acknowledged\n"
		   "    4   sink failed: write, fsync or rename error, or COMMAND failed; the\n"
		   "        transaction was not acknowledged.  With --nats: NATS server\n"
		   "        unreachable at startup, stream missing (or could not be created),\n"
		   "        message refused by the stream\n"
		   "    5   state file damaged, or inconsistent with FILE; with --nats, the\n"
		   "        subject's last message is not one of this slot's\n"
		   "\n"
		   "ENVIRONMENT\n"
		   "    PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, ...  as for libpq\n"
		   "    KAPPA_RECV_TEST_CORRUPT=N, KAPPA_RECV_TEST_DROP=N,\n"
		   "    KAPPA_RECV_TEST_CRASH=POINT[:N]   test hooks (see README.md); never set\n"
		   "                           them in production\n"
		   "\n"
		   "EXAMPLES\n"
		   "    kappa_recv -d mydb -S audit --create-slot --if-not-exists -f /var/lib/events.jsonl\n"
		   "    kappa_recv -d 'host=db1 dbname=app' -S s1 -o tables='public.orders' \\\n"
		   "               --exec 'psql -d warehouse -c \"\\\\copy raw_events(line) from stdin\"' \\\n"
		   "               --state-file /var/lib/kappa/s1.state\n"
		   "    kappa_recv -d mydb -S s2 --nats nats://10.0.0.1:4222,nats://10.0.0.2:4222 \\\n"
		   "               --nats-stream KAPPA --nats-subject kappa.mydb --nats-create-stream \\\n"
		   "               --nats-replicas 3\n"
		   "\n"
		   "Report bugs in the pg_kappa issue tracker.\n");
}

static void
handle_stop(int signo)
{
	(void) signo;
	kr_stop_requested = true;
}

static void
handle_hup(int signo)
{
	(void) signo;
	kr_reopen_requested = true;
}

static void
set_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: a signal must interrupt select() and sleeps */
	sa.sa_handler = handle_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = handle_hup;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

int64
kr_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
kr_parse_lsn(const char *s, size_t len, XLogRecPtr *lsn)
{
	char		buf[32];
	unsigned int hi,
				lo;
	char		extra;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (sscanf(buf, "%X/%X%c", &hi, &lo, &extra) != 2)
		return false;
	*lsn = ((uint64) hi << 32) | lo;
	return true;
}

bool
kr_write_all(int fd, const char *data, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = write(fd, data, len);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			return false;
		}
		if (n == 0)
		{
			errno = ENOSPC;
			return false;
		}
		data += n;
		len -= n;
	}
	return true;
}

/*
 * KAPPA_RECV_TEST_CRASH=POINT[:N]: die by SIGKILL the Nth time (default
 * first) execution reaches POINT.  Tests use it to hit each window of the
 * delivery protocol on purpose.
 */
void
kr_test_crash_point(const char *point)
{
	static const char *spec = NULL;
	static bool checked = false;
	static long hits = 0;
	size_t		plen = strlen(point);
	long		want = 1;

	if (!checked)
	{
		spec = getenv("KAPPA_RECV_TEST_CRASH");
		checked = true;
	}
	if (spec == NULL || strncmp(spec, point, plen) != 0 ||
		(spec[plen] != '\0' && spec[plen] != ':'))
		return;
	if (spec[plen] == ':')
		want = atol(spec + plen + 1);
	if (++hits == want)
	{
		pg_log_warning("test hook: crashing at \"%s\"", point);
		fflush(NULL);
		raise(SIGKILL);
	}
}

/* Sleep up to ms milliseconds; a stop request cuts it short. */
void
kr_sleep_ms(int ms)
{
	while (ms > 0 && !kr_stop_requested)
	{
		int			step = Min(ms, 100);

		pg_usleep(step * 1000L);
		ms -= step;
	}
}

static bool
parse_size(const char *arg, uint64 *size)
{
	char	   *end;
	uint64		v;

	errno = 0;
	v = strtou64(arg, &end, 10);
	if (errno != 0 || end == arg)
		return false;
	if (*end == '\0' || pg_strcasecmp(end, "B") == 0)
		*size = v;
	else if (pg_strcasecmp(end, "kB") == 0 || pg_strcasecmp(end, "k") == 0)
		*size = v * 1024;
	else if (pg_strcasecmp(end, "MB") == 0 || pg_strcasecmp(end, "M") == 0)
		*size = v * 1024 * 1024;
	else if (pg_strcasecmp(end, "GB") == 0 || pg_strcasecmp(end, "G") == 0)
		*size = v * 1024 * 1024 * 1024;
	else
		return false;
	return *size > 0;
}

static bool
parse_int(const char *arg, const char *what, int min, int max, int *v)
{
	char	   *end;
	long		l;

	errno = 0;
	l = strtol(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || l < min || l > max)
	{
		pg_log_error("invalid value \"%s\" for %s: expected an integer from %d to %d",
					 arg, what, min, max);
		return false;
	}
	*v = (int) l;
	return true;
}

static void
add_plugin_option(char *arg)
{
	char	   *eq = strchr(arg, '=');
	int			n = kr_opt.noptions;

	kr_opt.option_names = pg_realloc(kr_opt.option_names, (n + 1) * sizeof(char *));
	kr_opt.option_values = pg_realloc(kr_opt.option_values, (n + 1) * sizeof(char *));
	if (eq)
	{
		*eq = '\0';
		kr_opt.option_values[n] = eq + 1;
	}
	else
		kr_opt.option_values[n] = NULL;
	kr_opt.option_names[n] = arg;
	kr_opt.noptions++;
}

static void
bad_usage(void)
{
	pg_log_error_hint("Try \"kappa_recv --help\" for more information.");
	exit(KR_EXIT_USAGE);
}

/* Streaming would split transactions across blocks; refuse it up front. */
static bool
plugin_options_ok(void)
{
	int			i;

	for (i = 0; i < kr_opt.noptions; i++)
	{
		const char *v = kr_opt.option_values[i];

		if (strcmp(kr_opt.option_names[i], "streaming") == 0 &&
			(v == NULL || !(pg_strcasecmp(v, "off") == 0 ||
							pg_strcasecmp(v, "false") == 0 ||
							pg_strcasecmp(v, "no") == 0 ||
							strcmp(v, "0") == 0)))
		{
			pg_log_error("plugin option \"streaming\" is not supported");
			pg_log_error_detail("kappa_recv verifies and delivers whole transactions.");
			return false;
		}
	}
	return true;
}

/* --nats and its companions: complete, supported, and alone. */
static bool
check_nats_options(bool stream_options)
{
	if (kr_opt.nats_url == NULL)
	{
		if (kr_opt.nats_stream || kr_opt.nats_subject ||
			kr_opt.nats_create_stream || stream_options)
		{
			pg_log_error("--nats-* options need --nats URL");
			return false;
		}
		return true;
	}
	if (!sink_nats_supported)
	{
		pg_log_error("this build of kappa_recv has no NATS support");
		pg_log_error_detail("It was built without libnats (Debian package libnats-dev).");
		return false;
	}
	if (kr_opt.nats_stream == NULL || kr_opt.nats_subject == NULL)
	{
		pg_log_error("--nats requires --nats-stream and --nats-subject");
		return false;
	}
	if (kr_opt.outfile || kr_opt.exec_cmd || kr_opt.state_file ||
		kr_opt.drop_slot || kr_opt.rotate_size)
	{
		pg_log_error("--nats cannot be combined with -f, --exec, --state-file, --drop-slot or --rotate-size");
		pg_log_error_detail("The stream is the state: kappa_recv resumes after the subject's last message.");
		return false;
	}
	if (stream_options && !kr_opt.nats_create_stream)
	{
		pg_log_error("--nats-replicas, --nats-retention, --nats-max-age and --nats-max-bytes apply to --nats-create-stream only");
		return false;
	}
	return true;
}

static void
parse_args(int argc, char **argv)
{
	static struct option long_options[] = {
		{"dbname", required_argument, NULL, 'd'},
		{"host", required_argument, NULL, 'h'},
		{"port", required_argument, NULL, 'p'},
		{"username", required_argument, NULL, 'U'},
		{"slot", required_argument, NULL, 'S'},
		{"file", required_argument, NULL, 'f'},
		{"option", required_argument, NULL, 'o'},
		{"status-interval", required_argument, NULL, 's'},
		{"fsync-interval", required_argument, NULL, 'F'},
		{"endpos", required_argument, NULL, 'E'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 8},
		{"create-slot", no_argument, NULL, 1},
		{"if-not-exists", no_argument, NULL, 2},
		{"drop-slot", no_argument, NULL, 3},
		{"exec", required_argument, NULL, 4},
		{"state-file", required_argument, NULL, 5},
		{"rotate-size", required_argument, NULL, 6},
		{"reconnect-max", required_argument, NULL, 7},
		{"nats", required_argument, NULL, 20},
		{"nats-stream", required_argument, NULL, 21},
		{"nats-subject", required_argument, NULL, 22},
		{"nats-create-stream", no_argument, NULL, 23},
		{"nats-replicas", required_argument, NULL, 24},
		{"nats-retention", required_argument, NULL, 25},
		{"nats-max-age", required_argument, NULL, 26},
		{"nats-max-bytes", required_argument, NULL, 27},
		{"nats-timeout", required_argument, NULL, 28},
		{NULL, 0, NULL, 0}
	};
	int			c;
	int			secs;
	bool		nats_stream_options = false;

	kr_opt.status_interval_ms = 10 * 1000;
	kr_opt.reconnect_max_ms = 30 * 1000;
	kr_opt.nats_replicas = 1;
	kr_opt.nats_timeout_ms = 5000;

	if (argc > 1)
	{
		if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-?") == 0)
		{
			usage();
			exit(KR_EXIT_OK);
		}
		if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
		{
			printf("kappa_recv (pg_kappa) " KAPPA_RECV_VERSION "\n");
			exit(KR_EXIT_OK);
		}
	}

	while ((c = getopt_long(argc, argv, "d:h:p:U:S:f:o:s:F:E:vV?",
							long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				kr_opt.dbname = optarg;
				break;
			case 'h':
				kr_opt.host = optarg;
				break;
			case 'p':
				kr_opt.port = optarg;
				break;
			case 'U':
				kr_opt.username = optarg;
				break;
			case 'S':
				kr_opt.slot = optarg;
				break;
			case 'f':
				kr_opt.outfile = optarg;
				break;
			case 'o':
				add_plugin_option(optarg);
				break;
			case 's':
				if (!parse_int(optarg, "--status-interval", 0, INT_MAX / 1000, &secs))
					bad_usage();
				kr_opt.status_interval_ms = secs * 1000;
				break;
			case 'F':
				if (!parse_int(optarg, "--fsync-interval", 0, 3600 * 1000,
							   &kr_opt.fsync_interval_ms))
					bad_usage();
				break;
			case 'E':
				if (!kr_parse_lsn(optarg, strlen(optarg), &kr_opt.endpos))
				{
					pg_log_error("invalid value \"%s\" for --endpos: expected an LSN such as 0/16B3748",
								 optarg);
					bad_usage();
				}
				break;
			case 'v':
				kr_opt.verbose = true;
				break;
			case 'V':
				printf("kappa_recv (pg_kappa) " KAPPA_RECV_VERSION "\n");
				exit(KR_EXIT_OK);
			case 1:
				kr_opt.create_slot = true;
				break;
			case 2:
				kr_opt.if_not_exists = true;
				break;
			case 3:
				kr_opt.drop_slot = true;
				break;
			case 4:
				kr_opt.exec_cmd = optarg;
				break;
			case 5:
				kr_opt.state_file = optarg;
				break;
			case 6:
				if (!parse_size(optarg, &kr_opt.rotate_size))
				{
					pg_log_error("invalid value \"%s\" for --rotate-size: expected a size such as 100MB",
								 optarg);
					bad_usage();
				}
				break;
			case 7:
				if (!parse_int(optarg, "--reconnect-max", 0, 24 * 3600, &secs))
					bad_usage();
				kr_opt.reconnect_max_ms = secs * 1000;
				break;
			case 8:
				usage();
				exit(KR_EXIT_OK);
			case 20:
				kr_opt.nats_url = optarg;
				break;
			case 21:
				kr_opt.nats_stream = optarg;
				break;
			case 22:
				kr_opt.nats_subject = optarg;
				break;
			case 23:
				kr_opt.nats_create_stream = true;
				break;
			case 24:
				if (!parse_int(optarg, "--nats-replicas", 1, 5, &kr_opt.nats_replicas))
					bad_usage();
				nats_stream_options = true;
				break;
			case 25:
				if (strcmp(optarg, "limits") == 0)
					kr_opt.nats_retention = KR_NATS_LIMITS;
				else if (strcmp(optarg, "interest") == 0)
					kr_opt.nats_retention = KR_NATS_INTEREST;
				else if (strcmp(optarg, "workqueue") == 0)
					kr_opt.nats_retention = KR_NATS_WORKQUEUE;
				else
				{
					pg_log_error("invalid value \"%s\" for --nats-retention: expected limits, interest or workqueue",
								 optarg);
					bad_usage();
				}
				nats_stream_options = true;
				break;
			case 26:
				if (!parse_int(optarg, "--nats-max-age", 0, INT_MAX, &kr_opt.nats_max_age_s))
					bad_usage();
				nats_stream_options = true;
				break;
			case 27:
				if (!parse_size(optarg, &kr_opt.nats_max_bytes))
				{
					pg_log_error("invalid value \"%s\" for --nats-max-bytes: expected a size such as 10GB",
								 optarg);
					bad_usage();
				}
				nats_stream_options = true;
				break;
			case 28:
				if (!parse_int(optarg, "--nats-timeout", 100, 3600 * 1000,
							   &kr_opt.nats_timeout_ms))
					bad_usage();
				break;
			case '?':
				/* "-?" asks for help; anything else is an unknown option */
				if (optind > 0 && strcmp(argv[optind - 1], "-?") == 0)
				{
					usage();
					exit(KR_EXIT_OK);
				}
				bad_usage();
				break;
			default:
				bad_usage();
		}
	}
	if (optind < argc)
	{
		pg_log_error("too many command-line arguments (first is \"%s\")", argv[optind]);
		bad_usage();
	}

	if (kr_opt.slot == NULL || kr_opt.slot[0] == '\0')
	{
		pg_log_error("no slot specified");
		bad_usage();
	}
	if (kr_opt.outfile && kr_opt.exec_cmd)
	{
		pg_log_error("-f and --exec cannot be used together");
		bad_usage();
	}
	if (kr_opt.drop_slot && (kr_opt.create_slot || kr_opt.outfile || kr_opt.exec_cmd))
	{
		pg_log_error("--drop-slot cannot be combined with --create-slot, -f or --exec");
		bad_usage();
	}
	if (!check_nats_options(nats_stream_options))
		bad_usage();
	if (!kr_opt.drop_slot && !kr_opt.create_slot && !kr_opt.outfile &&
		!kr_opt.exec_cmd && !kr_opt.nats_url)
	{
		pg_log_error("no output specified");
		pg_log_error_hint("Give -f FILE, --exec COMMAND or --nats URL.");
		bad_usage();
	}
	if (kr_opt.exec_cmd && kr_opt.state_file == NULL)
	{
		pg_log_error("--exec requires --state-file");
		pg_log_error_detail("The state file is what lets kappa_recv resume without repeating or losing a transaction.");
		bad_usage();
	}
	if ((kr_opt.rotate_size || (kr_opt.fsync_interval_ms && !kr_opt.nats_url)) &&
		(kr_opt.outfile == NULL || strcmp(kr_opt.outfile, "-") == 0))
	{
		pg_log_error("--rotate-size and --fsync-interval apply to -f FILE (and --fsync-interval to --nats) only");
		bad_usage();
	}
	if (kr_opt.outfile && strcmp(kr_opt.outfile, "-") != 0 &&
		kr_opt.state_file == NULL)
		kr_opt.state_file = psprintf("%s.state", kr_opt.outfile);
	if (!plugin_options_ok())
		bad_usage();

	/* catch a malformed connection string before trying to connect */
	if (kr_opt.dbname &&
		(strchr(kr_opt.dbname, '=') != NULL ||
		 strncmp(kr_opt.dbname, "postgresql://", 13) == 0 ||
		 strncmp(kr_opt.dbname, "postgres://", 11) == 0))
	{
		char	   *err = NULL;
		PQconninfoOption *opts = PQconninfoParse(kr_opt.dbname, &err);

		if (opts == NULL)
		{
			size_t		len = err ? strlen(err) : 0;

			while (len > 0 && err[len - 1] == '\n')
				err[--len] = '\0';
			pg_log_error("invalid connection string: %s",
						 err ? err : "out of memory");
			exit(KR_EXIT_USAGE);
		}
		PQconninfoFree(opts);
	}
}

/* Exit after making what was delivered durable. */
static void
finish(int code)
{
	int			pause_code = KR_EXIT_OK;

	if (!consume_pause(&pause_code) && code == KR_EXIT_OK)
		code = pause_code;
	consume_close();
	exit(code);
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;
	KRSink	   *sink;
	int			code;
	int			backoff_ms = 500;

	pg_logging_init(argv[0]);
	set_pglocale_pgservice(argv[0], PG_TEXTDOMAIN("kappa_recv"));
	parse_args(argc, argv);
	set_signals();

	conn = stream_connect(false, &code);
	if (conn == NULL)
		exit(code);
	if (kr_opt.drop_slot)
	{
		bool		ok = stream_drop_slot(conn);

		PQfinish(conn);
		exit(ok ? KR_EXIT_OK : KR_EXIT_SERVER);
	}
	if (!stream_prepare_slot(conn, &code))
	{
		PQfinish(conn);
		exit(code);
	}
	if (kr_opt.outfile == NULL && kr_opt.exec_cmd == NULL && kr_opt.nats_url == NULL)
	{
		/* --create-slot alone */
		PQfinish(conn);
		exit(KR_EXIT_OK);
	}

	if (kr_opt.nats_url)
		sink = sink_nats_create();
	else if (kr_opt.exec_cmd)
		sink = sink_exec_create(kr_opt.exec_cmd);
	else if (strcmp(kr_opt.outfile, "-") == 0)
		sink = sink_stdout_create();
	else
		sink = sink_file_create(kr_opt.outfile, kr_opt.rotate_size);
	if (!consume_init(sink, kr_opt.state_file, &code))
	{
		PQfinish(conn);
		exit(code);
	}

	for (;;)
	{
		bool		transient;
		int64		started;
		KRConsumeResult result;

		if (kr_stop_requested)
		{
			stream_finish(conn);
			finish(KR_EXIT_OK);
		}
		if (conn == NULL)
		{
			conn = stream_connect(true, &code);
			if (conn != NULL && !stream_prepare_slot(conn, &code))
			{
				PQfinish(conn);
				finish(code);
			}
		}
		if (conn != NULL &&
			!stream_start(conn, consume_start_position(), &code, &transient))
		{
			PQfinish(conn);
			conn = NULL;
			if (!transient)
				finish(code);
		}
		if (conn == NULL)
		{
			if (kr_opt.reconnect_max_ms == 0)
				finish(KR_EXIT_SERVER);
			pg_log_info("trying again in %d ms", backoff_ms);
			kr_sleep_ms(backoff_ms);
			backoff_ms = Min(backoff_ms * 2, Max(kr_opt.reconnect_max_ms, 500));
			continue;
		}

		started = kr_now_ms();
		result = consume(conn, &code);
		if (result == KR_CONSUME_STOP)
		{
			stream_finish(conn);
			finish(KR_EXIT_OK);
		}
		PQfinish(conn);
		conn = NULL;
		if (result == KR_CONSUME_FATAL)
			finish(code);

		/* connection lost: keep what is complete, then reconnect */
		if (!consume_pause(&code))
		{
			consume_close();
			exit(code);
		}
		if (kr_opt.reconnect_max_ms == 0)
			finish(KR_EXIT_SERVER);
		if (kr_now_ms() - started > 10000)
			backoff_ms = 500;
		pg_log_info("connection lost; reconnecting in %d ms", backoff_ms);
		kr_sleep_ms(backoff_ms);
		backoff_ms = Min(backoff_ms * 2, Max(kr_opt.reconnect_max_ms, 500));
	}
}
