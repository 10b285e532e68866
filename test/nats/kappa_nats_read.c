/*-------------------------------------------------------------------------
 *
 * kappa_nats_read.c
 *	  A small NATS JetStream client for the kappa_recv --nats tests: reads
 *	  back what kappa_recv published, with libnats, independently of it.
 *
 * Owns nothing of kappa_recv; it only talks to NATS:
 *
 *	kappa_nats_read URL wait SECS
 *		exit 0 once JetStream answers (account info), 1 after SECS
 *	kappa_nats_read URL dump STREAM
 *		every message of STREAM in sequence order:
 *			msg SEQ SUBJECT LEN
 *			Header: value		(one line per header value)
 *			(empty line)
 *			LEN bytes of body, then a newline
 *	kappa_nats_read URL info STREAM
 *		one line: replicas, retention, max_age (s), max_bytes, msgs, last_seq,
 *		leader (server name, or - when not clustered)
 *	kappa_nats_read URL create STREAM SUBJECT MAX_MSG_SIZE
 *		create a stream (replicas 1, file storage); MAX_MSG_SIZE 0 = none
 *	kappa_nats_read URL publish SUBJECT TEXT
 *		publish TEXT to JetStream on SUBJECT, without headers
 *
 * Exit status 0 on success, 1 on any failure (the reason on stderr).
 *
 * Built by the tests (test/perl/KappaNatsTest.pm): cc ... -lnats.
 *
 * test/nats/kappa_nats_read.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

static natsConnection *nc;
static jsCtx *js;

static int
fail(const char *what, natsStatus s)
{
	const char *text = nats_GetLastError(NULL);

	fprintf(stderr, "kappa_nats_read: %s: %s\n", what,
			text && text[0] ? text : natsStatus_GetText(s));
	return 1;
}

static natsStatus
connect_to(const char *url)
{
	natsOptions *opts = NULL;
	natsStatus	s;
	char	   *copy = strdup(url);
	const char *list[16];
	int			n = 0;
	char	   *tok;

	/* URL: one or more servers, separated by commas */
	for (tok = strtok(copy, ","); tok != NULL && n < 16; tok = strtok(NULL, ","))
		list[n++] = tok;
	s = natsOptions_Create(&opts);
	if (s == NATS_OK)
		s = natsOptions_SetServers(opts, list, n);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(opts, 2000);
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, opts);
	natsOptions_Destroy(opts);
	free(copy);
	if (s == NATS_OK)
		s = natsConnection_JetStream(&js, nc, NULL);
	return s;
}

static int
wait_ready(const char *url, int secs)
{
	int64_t		deadline = nats_Now() + (int64_t) secs * 1000;

	for (;;)
	{
		natsStatus	s = connect_to(url);
		jsAccountInfo *ai = NULL;

		if (s == NATS_OK)
			s = js_GetAccountInfo(&ai, js, NULL, NULL);
		if (s == NATS_OK)
		{
			jsAccountInfo_Destroy(ai);
			return 0;
		}
		jsCtx_Destroy(js);
		natsConnection_Destroy(nc);
		js = NULL;
		nc = NULL;
		if (nats_Now() > deadline)
			return fail("JetStream not ready", s);
		nats_Sleep(200);
	}
}

/* Print one message: header block, then the body. */
static void
print_msg(natsMsg *m, uint64_t seq)
{
	const char **keys = NULL;
	int			nkeys = 0;
	int			i;
	int			len = natsMsg_GetDataLength(m);

	printf("msg %llu %s %d\n", (unsigned long long) seq,
		   natsMsg_GetSubject(m), len);
	if (natsMsgHeader_Keys(m, &keys, &nkeys) == NATS_OK)
	{
		for (i = 0; i < nkeys; i++)
		{
			const char **vals = NULL;
			int			nvals = 0;
			int			j;

			if (natsMsgHeader_Values(m, keys[i], &vals, &nvals) != NATS_OK)
				continue;
			for (j = 0; j < nvals; j++)
				printf("%s: %s\n", keys[i], vals[j]);
			free((void *) vals);
		}
		free((void *) keys);
	}
	printf("\n");
	fwrite(natsMsg_GetData(m), 1, len, stdout);
	printf("\n");
}

static int
dump(const char *stream)
{
	jsStreamInfo *si = NULL;
	jsErrCode	jerr = 0;
	natsStatus	s;
	uint64_t	seq;

	s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
	if (s != NATS_OK)
		return fail("stream info", s);
	for (seq = si->State.FirstSeq; seq != 0 && seq <= si->State.LastSeq; seq++)
	{
		natsMsg    *m = NULL;

		jerr = 0;
		s = js_GetMsg(&m, js, stream, seq, NULL, &jerr);
		if (s == NATS_NOT_FOUND)
			continue;			/* deleted */
		if (s != NATS_OK)
			return fail("get message", s);
		print_msg(m, seq);
		natsMsg_Destroy(m);
	}
	jsStreamInfo_Destroy(si);
	return 0;
}

static int
info(const char *stream)
{
	jsStreamInfo *si = NULL;
	jsErrCode	jerr = 0;
	natsStatus	s;
	static const char *const retention[] = {"limits", "interest", "workqueue"};

	s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
	if (s != NATS_OK)
		return fail("stream info", s);
	printf("replicas %lld retention %s max_age %lld max_bytes %lld msgs %llu last_seq %llu leader %s\n",
		   (long long) si->Config->Replicas,
		   retention[si->Config->Retention],
		   (long long) (si->Config->MaxAge / 1000000000),
		   (long long) si->Config->MaxBytes,
		   (unsigned long long) si->State.Msgs,
		   (unsigned long long) si->State.LastSeq,
		   si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "-");
	jsStreamInfo_Destroy(si);
	return 0;
}

static int
create(const char *stream, const char *subject, int max_msg_size)
{
	jsStreamConfig cfg;
	jsStreamInfo *si = NULL;
	jsErrCode	jerr = 0;
	natsStatus	s;

	jsStreamConfig_Init(&cfg);
	cfg.Name = stream;
	cfg.Subjects = &subject;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	if (max_msg_size > 0)
		cfg.MaxMsgSize = max_msg_size;
	s = js_AddStream(&si, js, &cfg, NULL, &jerr);
	if (s != NATS_OK)
		return fail("create stream", s);
	jsStreamInfo_Destroy(si);
	return 0;
}

static int
publish(const char *subject, const char *text)
{
	jsPubAck   *pa = NULL;
	jsErrCode	jerr = 0;
	natsStatus	s;

	s = js_Publish(&pa, js, subject, text, (int) strlen(text), NULL, &jerr);
	if (s != NATS_OK)
		return fail("publish", s);
	jsPubAck_Destroy(pa);
	return 0;
}

int
main(int argc, char **argv)
{
	natsStatus	s;
	int			rc;

	if (argc < 4)
	{
		fprintf(stderr, "usage: kappa_nats_read URL (wait SECS | dump STREAM | info STREAM |\n"
				"                            create STREAM SUBJECT MAX_MSG_SIZE | publish SUBJECT TEXT)\n");
		return 1;
	}
	if (strcmp(argv[2], "wait") == 0)
		return wait_ready(argv[1], atoi(argv[3]));
	s = connect_to(argv[1]);
	if (s != NATS_OK)
		return fail("connect", s);
	if (strcmp(argv[2], "dump") == 0)
		rc = dump(argv[3]);
	else if (strcmp(argv[2], "info") == 0)
		rc = info(argv[3]);
	else if (strcmp(argv[2], "create") == 0 && argc == 6)
		rc = create(argv[3], argv[4], atoi(argv[5]));
	else if (strcmp(argv[2], "publish") == 0 && argc == 5)
		rc = publish(argv[3], argv[4]);
	else
	{
		fprintf(stderr, "kappa_nats_read: unknown command \"%s\"\n", argv[2]);
		rc = 1;
	}
	fflush(stdout);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return rc;
}
