/* server.c -- sockets, workers, the resolver thread and the in-flight table
 *
 * Workers own their sockets and event loops and answer cache hits alone:
 * parse, one LMDB get in the worker's own read transaction, serve the stored
 * form into the reply buffer, and send the batch.  A miss becomes a job that
 * travels to one of the resolver threads, chosen by a hash of the question,
 * which coalesces identical questions, resolves through its own libunbound
 * context, stores the answer and hands a finished reply back to the worker
 * that took the query.  Threads meet only in the job queues, each a list
 * under its own mutex plus an eventfd wake-up, and in a few atomic counters
 * and the MX-target table; the hit path touches none of them.
 */
#include "server.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "acl.h"
#include "cache.h"
#include "cachepolicy.h"
#include "config.h"
#include "dnsbl.h"
#include "log.h"
#include "policy.h"
#include "ratelimit.h"
#include "recurse.h"
#include "stats.h"
#include "wire.h"

#define SERVER_BATCH 32            /* datagrams per recvmmsg/sendmmsg */
#define SERVER_BATCHES_PER_WAKEUP 8 /* then yield to the other events of the loop */
#define SERVER_UDP_IN 4096         /* larger queries are not queries we answer */
#define SERVER_INFLIGHT_BUCKETS 4096
#define SERVER_TCP_OUT_MAX (256 * 1024) /* a client that does not read is cut off */
#define SERVER_EDE_TEXT_MAX 200
#define SERVER_PREFETCH_MEMO 1024  /* per worker: recently requested refreshes */
#define SERVER_PREFETCH_MEMO_SECONDS 5
#define SERVER_MX_TARGETS 65536    /* hashes of names learned as MX exchanges */
#define SERVER_CLIENT_SLOTS 16384  /* questions in flight by client address hash */
#define SERVER_TCP_CLIENT_SLOTS 4096
/* Room for the destination address of a datagram to a wildcard socket. */
#define SERVER_CMSG_SPACE CMSG_SPACE(sizeof(struct in6_pktinfo)) /* connection counts by address hash, shared by workers */

/* SERVER_NONE: a refresh the server asked for itself, with nobody waiting.
 * SERVER_INTERNAL: a lookup a filter check or a health probe needs; its
 * result goes to the check, not to a client. */
enum server_transport { SERVER_UDP, SERVER_TCP, SERVER_NONE, SERVER_INTERNAL };

struct filter_ctx;

struct worker;
struct tcp_conn;

/* A query that missed the cache, on its way to the resolver thread and back
 * with its reply. */
struct server_job {
	struct server_job *next;
	struct worker *worker;
	struct wire_query q;
	enum server_transport transport;
	int udp_fd;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	uint8_t udp_ctl[SERVER_CMSG_SPACE]; /* where the query came to, to answer from there */
	size_t udp_ctl_len;
	struct tcp_conn *conn;
	int64_t deadline_ms;        /* CLOCK_MONOTONIC: SERVFAIL then */
	bool stale_ok;              /* a servable stale entry exists (RFC 8767) */
	int64_t stale_at_ms;        /* and is sent then, if nothing better came */
	bool counted;               /* holds one of its client's pending slots */
	int64_t refresh_at;         /* SERVER_NONE: wall-clock second to start the refresh */
	uint64_t filter_mask;       /* RHSBL/DNSBL sources to check before answering */
	int64_t start_us;           /* CLOCK_MONOTONIC when its worker took it, for the latency */
	uint8_t record_flags;       /* stats_qlog_flag bits the resolver thread adds (stale, blocked) */
	uint8_t record_source;      /* the blocking filter source + 1, or 0 */
	struct filter_ctx *filter;  /* SERVER_INTERNAL: the check it belongs to (NULL: a probe) */
	int filter_source;          /* SERVER_INTERNAL: the source it asks, -1 = the question itself */
	int probe;                  /* SERVER_INTERNAL probe: 1 the listed test point, 2 the unlisted one */
	uint8_t *reply;
	size_t reply_len;
};

struct job_queue {
	pthread_mutex_t lock;
	struct server_job *head, *tail;
	int wake_fd;                /* eventfd watched by the consuming loop */
	struct event *wake_ev;
};

struct tcp_conn {
	struct tcp_conn *prev, *next; /* the worker's list, for shutdown */
	struct worker *worker;
	struct bufferevent *bev;
	struct sockaddr_storage peer;
	size_t client_slot;         /* its count in server.tcp_clients */
	unsigned pending;           /* jobs that will come back to this connection */
	bool closed;
	bool refused;               /* access control says REFUSED to everything it asks */
};

/* What the recorder needs of an answer the worker built itself, kept until
 * the batch is sent (the query it came from is gone by then). */
struct worker_answered {
	bool valid;                 /* a question that parsed; false for misses and header-only errors */
	uint8_t flags;              /* stats_qlog_flag */
	uint8_t source;
	uint16_t qtype;
	uint8_t qname_len;
	uint8_t qname[WIRE_MAX_NAME];
};

struct worker {
	unsigned index;
	struct server *server;
	pthread_t thread;
	struct event_base *base;
	struct cache_reader *reader;
	struct job_queue done;      /* replies from the resolver thread */
	struct event *udp_ev[CONFIG_MAX_LISTEN];
	struct evconnlistener *tcp_listener[CONFIG_MAX_LISTEN];
	struct tcp_conn *conns;
	unsigned conn_count;
	atomic_bool stopping;       /* set by server_stop, then the done queue is woken */

	struct mmsghdr in_msgs[SERVER_BATCH];
	struct iovec in_iov[SERVER_BATCH];
	struct sockaddr_storage in_addr[SERVER_BATCH];
	uint8_t in_ctl[SERVER_BATCH][SERVER_CMSG_SPACE];
	uint8_t in_buf[SERVER_BATCH][SERVER_UDP_IN];
	struct mmsghdr out_msgs[SERVER_BATCH];
	struct iovec out_iov[SERVER_BATCH];
	uint8_t out_buf[SERVER_BATCH][WIRE_EDNS_PAYLOAD];
	uint8_t tcp_in[WIRE_MAX_MSG];
	uint8_t tcp_out[WIRE_MAX_MSG + 2];

	struct ratelimit *ratelimit; /* NULL when rate limiting is off */
	int64_t batch_ms;            /* CLOCK_MONOTONIC, read once per batch */
	int64_t batch_us;            /* the same reading, finer, for latencies */
	/* What the dashboard sees (see stats.h): fed after each batch is sent,
	 * so that a hit's latency covers the send, with one clock read per
	 * batch.  answered[i] describes out_msgs[i]. */
	bool recording;
	struct stats_recorder recorder;
	struct worker_answered answered[SERVER_BATCH];
	uint32_t prefetch_memo_hash[SERVER_PREFETCH_MEMO];
	int64_t prefetch_memo_time[SERVER_PREFETCH_MEMO];
	struct stats_block stats;
};

struct inflight {
	struct inflight *next;      /* hash chain */
	struct resolver *resolver;
	size_t bucket;
	uint8_t key[WIRE_MAX_NAME + 4];
	size_t key_len;
	struct server_job *waiters;
	unsigned waiter_count;
	bool prefetch;              /* started as a refresh; counts against prefetch-max */
};

/* One resolver thread's state: touched by that thread only, except the
 * request queue and inflight_count. */
struct resolver {
	struct server *server;
	unsigned index;
	pthread_t thread;
	struct event_base *base;
	struct recurse *recurse;
	struct job_queue requests;
	struct event *deadline_timer;
	struct event *stop_ev;
	int stop_fd;
	atomic_bool stopping;       /* set before stop_fd is written: queued work is failed, not started */
	struct inflight *table[SERVER_INFLIGHT_BUCKETS];
	_Atomic unsigned inflight_count;
	struct server_job *scheduled; /* refreshes waiting for their entry to expire */
	struct cache_reader *reader; /* stale answers, the stale check on failure, filter verdicts */
	struct policy *probe_policy;   /* resolver 0 only: the policy the current probe round is for */
	uint8_t probe_bits[CONFIG_MAX_SOURCES];
	int64_t next_probe_ms;
	uint8_t form_full[WIRE_FORM_MAX];
	uint8_t form_plain[WIRE_FORM_MAX];
	uint8_t scratch[WIRE_MAX_MSG];
	struct stats_block stats;
};

struct server_retired {
	struct server_retired *next;
	struct policy *policy;
	int64_t at;
};

/* One client question under RHSBL/DNSBL checks, in the resolver thread:
 * the question's own answer and every verdict lookup run at once; the
 * reply goes out when the last of them is in (each has its deadline). */
struct filter_ctx {
	struct server_job *job;
	struct policy *policy;
	uint64_t mask;
	unsigned pending;
	bool started;               /* every lookup issued: pending == 0 now means done */
	bool main_done, main_failed;
	uint8_t *full, *plain;
	size_t full_len, plain_len;
	uint8_t rcode, dnssec;
	int64_t stored_at;
	bool blocked;
	struct policy_verdict verdict;
};

struct server {
	/* Swapped whole on reload; every use loads it once and works on that
	 * snapshot.  Old configs stay alive until shutdown (config_chain). */
	const struct config *_Atomic cfg;
	struct config **config_chain;
	unsigned config_chain_len;
	struct cache *cache;
	unsigned worker_count;
	unsigned workers_running;   /* threads started, to be joined */
	struct worker **workers;
	int (*udp_fds)[CONFIG_MAX_LISTEN]; /* [worker][listen] */
	int (*tcp_fds)[CONFIG_MAX_LISTEN];
	/* Each question goes to resolvers[hash % resolver_count], so identical
	 * questions meet in one in-flight table; what a filter check or a
	 * health probe needs stays in the thread that asked for it. */
	struct resolver *resolvers;
	unsigned resolver_count;
	unsigned resolvers_running; /* threads started, to be joined */
	struct acl *acl;
	struct acl *ratelimit_exempt; /* ALLOW = exempt; NULL = nobody is */
	struct cachepolicy_zones zones; /* from the config at start: restart to change */
	/* Connections per client address hash, across workers: SO_REUSEPORT
	 * sends one host's connections to every worker.  Touched on accept and
	 * close only; a collision makes two hosts share a count, which errs on
	 * the side of refusing. */
	_Atomic unsigned tcp_clients[SERVER_TCP_CLIENT_SLOTS];
	/* Filtering: swapped whole on reload.  A replaced policy may still be
	 * in use by a check in flight, so it is freed a minute later. */
	struct policy *_Atomic policy;
	struct server_retired *retired;
	pthread_mutex_t retired_lock;
	bool started;
	bool stopped;
	/* The rest is written by the resolver threads, so it comes last, away
	 * from what workers read on every query.
	 * The caps are for the whole server, and a client's questions and the
	 * refreshes land on every resolver thread: the counts are shared.
	 * Client counts go by address hash; a collision makes two hosts share
	 * a count, which errs on the side of refusing. */
	_Atomic unsigned client_pending[SERVER_CLIENT_SLOTS];
	_Atomic unsigned prefetching;   /* refreshes in flight */
	_Atomic unsigned scheduled;     /* refreshes waiting for their entry to expire */
	/* Hashes of names learned as MX exchanges, direct-mapped: the thread
	 * that resolves an exchange's address is rarely the one that saw the
	 * MX.  A collision forgets the older name, whose addresses then go to
	 * the general partition until an MX names it again. */
	_Atomic uint64_t mx_targets[SERVER_MX_TARGETS];
};

static int64_t server_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t server_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t server_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read the batch clock: milliseconds for deadlines, microseconds for latencies. */
static void worker_read_clock(struct worker *w)
{
	w->batch_us = server_now_us();
	w->batch_ms = w->batch_us / 1000;
}

/* Hand one answer to the worker's recorder.  reply is what was sent (its
 * header gives the rcode and AD); latency from taken_us to now_us. */
static void worker_record(struct worker *w, const struct sockaddr *client, const uint8_t *qname, size_t qname_len,
                          uint16_t qtype, uint8_t flags, uint8_t source, const uint8_t *reply, size_t reply_len,
                          int64_t taken_us, int64_t now_us, int64_t wall_ms)
{
	if (reply_len < 4)
		return;
	if (reply[3] & 0x20)
		flags |= STATS_QLOG_SECURE;
	int64_t latency = now_us - taken_us;
	struct stats_event ev = {
		.time_ms = wall_ms,
		.latency_us = latency < 0 ? 0 : latency > UINT32_MAX ? UINT32_MAX : (uint32_t)latency,
		.client = client,
		.qname = qname,
		.qname_len = qname_len,
		.qtype = qtype,
		.rcode = reply[3] & 0x0f,
		.flags = flags,
		.source = source,
	};
	stats_record(&w->recorder, &ev);
}

/* Where a question's answer is looked for first.  Only the resolver threads
 * consult the MX targets, so their A/AAAA are found on the second lookup. */
static enum cache_partition server_partition_hint(const struct server *s, const struct wire_query *q)
{
	return cachepolicy_partition(&s->zones, q->qname, q->qname_len, q->qtype, false);
}

static size_t inflight_key(const struct wire_query *q, uint8_t *key)
{
	memcpy(key, q->qname, q->qname_len);
	key[q->qname_len] = (uint8_t)(q->qtype >> 8);
	key[q->qname_len + 1] = (uint8_t)q->qtype;
	key[q->qname_len + 2] = (uint8_t)(q->qclass >> 8);
	key[q->qname_len + 3] = (uint8_t)q->qclass;
	return q->qname_len + 4u;
}

/* ---- job queues ---------------------------------------------------- */

static int job_queue_init(struct job_queue *jq)
{
	jq->head = jq->tail = NULL;
	jq->wake_ev = NULL;
	jq->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (jq->wake_fd < 0)
		return -1;
	pthread_mutex_init(&jq->lock, NULL);
	return 0;
}

static void job_queue_destroy(struct job_queue *jq)
{
	if (jq->wake_ev != NULL)
		event_free(jq->wake_ev);
	if (jq->wake_fd >= 0) {
		close(jq->wake_fd);
		pthread_mutex_destroy(&jq->lock);
	}
	jq->wake_fd = -1;
}

static void job_queue_push(struct job_queue *jq, struct server_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&jq->lock);
	bool was_empty = jq->head == NULL;
	if (jq->tail != NULL)
		jq->tail->next = job;
	else
		jq->head = job;
	jq->tail = job;
	pthread_mutex_unlock(&jq->lock);
	/* One wake-up per empty-to-busy transition is enough: the consumer
	 * takes the whole list. */
	if (was_empty) {
		uint64_t one = 1;
		ssize_t n = write(jq->wake_fd, &one, sizeof one);
		(void)n;
	}
}

static struct server_job *job_queue_take_all(struct job_queue *jq)
{
	uint64_t count;
	ssize_t n = read(jq->wake_fd, &count, sizeof count);
	(void)n;
	pthread_mutex_lock(&jq->lock);
	struct server_job *all = jq->head;
	jq->head = jq->tail = NULL;
	pthread_mutex_unlock(&jq->lock);
	return all;
}

static void job_free(struct server_job *job)
{
	free(job->reply);
	free(job);
}

/* ---- sockets ------------------------------------------------------- */

static socklen_t server_addr_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static void server_addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char host[64] = "?";
	unsigned port = 0;
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
		port = ntohs(a->sin6_port);
		snprintf(out, cap, "[%s]:%u", host, port);
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
		port = ntohs(a->sin_port);
		snprintf(out, cap, "%s:%u", host, port);
	}
}

static int server_bind(const struct sockaddr_storage *ss, int type, char *err, size_t errlen)
{
	char where[96];
	server_addr_text(ss, where, sizeof where);
	int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", where, strerror(errno));
		return -1;
	}
	int on = 1;
	/* Each worker has its own socket on the address; the kernel spreads
	 * datagrams and connections over them. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
		goto fail;
	if (ss->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0)
		goto fail;
	if (type == SOCK_DGRAM) {
		int size = 4 * 1024 * 1024;
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
		/* On a wildcard address the kernel would answer from whatever address
		 * routing picks; a client expects the one it asked.  Learn it per
		 * datagram and send from it. */
		bool wildcard = ss->ss_family == AF_INET6
		                ? IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr)
		                : ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
		if (wildcard && (ss->ss_family == AF_INET6
		                 ? setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on)
		                 : setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on)) < 0)
			goto fail;
	}
	if (bind(fd, (const struct sockaddr *)ss, server_addr_len(ss)) < 0)
		goto fail;
	if (type == SOCK_STREAM && listen(fd, 256) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "%s (%s): %s", where, type == SOCK_DGRAM ? "udp" : "tcp", strerror(errno));
	close(fd);
	return -1;
}

/* ---- answering ----------------------------------------------------- */

/* Build the reply to q from a found record, or return 0 if the record
 * cannot serve it (a damaged form). */
static size_t server_serve_record(const struct wire_query *q, const struct cache_record *rec,
                                  int64_t now, size_t limit, uint8_t *out, size_t cap)
{
	if (rec->dnssec == CACHE_DNSSEC_BOGUS && !q->cd)
		return wire_build_error(q, WIRE_RCODE_SERVFAIL, WIRE_EDE_DNSSEC_BOGUS, NULL, out, cap);
	struct wire_serve s = {
		.age = now > rec->stored_at ? (uint32_t)(now - rec->stored_at) : 0,
		.set_ad = rec->dnssec == CACHE_DNSSEC_SECURE && (q->do_bit || q->ad),
		.rcode = -1,
		.ede_code = WIRE_EDE_NONE,
		.limit = limit,
	};
	if (q->do_bit)
		return wire_serve_form(rec->full, rec->full_len, q, &s, out, cap);
	return wire_serve_form(rec->plain, rec->plain_len, q, &s, out, cap);
}

/* FNV-1a: every table of this file hashes a few bytes; seed separates uses. */
static uint32_t server_hash(const uint8_t *p, size_t len, uint32_t seed)
{
	uint32_t h = 2166136261u ^ seed;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* The request queue of the resolver thread that owns q's question. */
static struct job_queue *server_requests(struct server *s, const struct wire_query *q)
{
	if (s->resolver_count == 1)
		return &s->resolvers[0].requests;
	uint8_t key[WIRE_MAX_NAME + 4];
	size_t len = inflight_key(q, key);
	/* Another seed than the in-flight table's, or each thread would use
	 * only its share of that table's buckets. */
	return &s->resolvers[server_hash(key, len, 1) % s->resolver_count].requests;
}

/* A client's address as a key: 4 bytes for IPv4, 16 for IPv6. */
static size_t client_addr_key(const struct sockaddr_storage *ss, uint8_t *key)
{
	if (ss->ss_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
		return 16;
	}
	memcpy(key, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	return 4;
}

/* What a worker does with one question before it looks at the cache. */
enum worker_gate { WORKER_GATE_PASS, WORKER_GATE_REFUSE, WORKER_GATE_DROP, WORKER_GATE_SLIP };

static struct server_job *worker_new_job(struct worker *w, const struct wire_query *q, enum server_transport tr)
{
	struct server_job *job = calloc(1, sizeof *job);
	if (job == NULL)
		return NULL;
	job->worker = w;
	job->q = *q;
	job->transport = tr;
	job->udp_fd = -1;
	job->deadline_ms = w->batch_ms + w->server->cfg->client_timeout_ms;
	job->start_us = w->batch_us;
	return job;
}

/* Ask the resolver thread to refresh an entry in the last part of its
 * life, at most once per few seconds per name from this worker: the
 * resolver thread coalesces the rest. */
static void worker_prefetch(struct worker *w, const struct wire_query *q, const struct cache_record *rec, int64_t now)
{
	if (!cachepolicy_prefetch_due(w->server->cfg, rec, now))
		return;
	uint32_t h = server_hash(q->qname, q->qname_len, q->qtype);
	size_t slot = h % SERVER_PREFETCH_MEMO;
	if (w->prefetch_memo_hash[slot] == h && now - w->prefetch_memo_time[slot] < SERVER_PREFETCH_MEMO_SECONDS)
		return;
	w->prefetch_memo_hash[slot] = h;
	w->prefetch_memo_time[slot] = now;
	struct server_job *job = worker_new_job(w, q, SERVER_NONE);
	if (job == NULL)
		return;
	/* libunbound's own copy of the answer expires when ours does (our TTL
	 * is what it had left), and until then a lookup through it returns the
	 * same expiring data: the refresh starts right after. */
	job->refresh_at = rec->expires + 2; /* past its second-granular expiry for sure */
	job_queue_push(server_requests(w->server, &job->q), job);
}

/* Answer one query from what a worker has at hand.  Returns the reply
 * length, or 0 when there is nothing to send now: either the packet is
 * dropped, or it was a miss and *miss points to the job the caller must
 * complete (peer, transport) and queue. */
static size_t worker_answer(struct worker *w, const struct sockaddr *client, const uint8_t *pkt, size_t len,
                            enum server_transport tr, enum worker_gate gate, int64_t now, bool have_reader,
                            struct server_job **miss, struct worker_answered *answered, uint8_t *out,
                            size_t cap)
{
	*miss = NULL;
	answered->valid = false;
	struct wire_query q;
	stats_inc(&w->stats, STATS_QUERIES);
	enum wire_parse_status st = wire_parse_query(pkt, len, &q);
	switch (st) {
	case WIRE_PARSE_OK:
		break;
	case WIRE_PARSE_DROP:
		stats_inc(&w->stats, STATS_MALFORMED);
		return 0;
	case WIRE_PARSE_NOTIMP:
		return wire_build_error(&q, WIRE_RCODE_NOTIMP, WIRE_EDE_NONE, NULL, out, cap);
	case WIRE_PARSE_BADVERS:
		return wire_build_error(&q, WIRE_RCODE_BADVERS, WIRE_EDE_NONE, NULL, out, cap);
	case WIRE_PARSE_FORMERR:
	default:
		stats_inc(&w->stats, STATS_MALFORMED);
		return wire_build_error(&q, WIRE_RCODE_FORMERR, WIRE_EDE_NONE, NULL, out, cap);
	}
	size_t limit = tr == SERVER_UDP ? wire_udp_limit(&q) : WIRE_MAX_MSG;
	if (limit > cap)
		limit = cap;
	if (w->recording) {
		answered->valid = true;
		answered->flags = tr == SERVER_TCP ? STATS_QLOG_TCP : 0;
		answered->source = 0;
		answered->qtype = q.qtype;
		answered->qname_len = (uint8_t)q.qname_len;
		memcpy(answered->qname, q.qname, q.qname_len);
	}
	if (gate == WORKER_GATE_REFUSE) {
		stats_inc(&w->stats, STATS_REFUSED);
		return wire_build_error(&q, WIRE_RCODE_REFUSED, WIRE_EDE_PROHIBITED, NULL, out, limit);
	}
	if (gate == WORKER_GATE_SLIP)
		return wire_build_truncated(&q, out, limit);
	if (q.qclass != WIRE_CLASS_IN || q.qtype == WIRE_TYPE_AXFR || q.qtype == WIRE_TYPE_IXFR ||
	    q.qtype == WIRE_TYPE_OPT) {
		stats_inc(&w->stats, STATS_REFUSED);
		return wire_build_error(&q, WIRE_RCODE_REFUSED, WIRE_EDE_NOT_SUPPORTED, NULL, out, limit);
	}
	if (q.qtype == WIRE_TYPE_ANY)
		return wire_build_any_refusal(&q, out, limit);

	/* Filtering: lists are decided here; DNSBL/RHSBL checks need lookups
	 * that only the resolver thread makes, so such questions go there. */
	uint64_t filter_mask = 0;
	struct policy *pol = atomic_load_explicit(&w->server->policy, memory_order_acquire);
	if (pol != NULL) {
		uint64_t sources = policy_client_sources(pol, client);
		struct policy_verdict v;
		if ((sources & pol->list_mask) && policy_check_lists(pol, &q, sources, &v)) {
			stats_inc(&w->stats, STATS_BLOCKED);
			answered->flags |= STATS_QLOG_BLOCKED;
			answered->source = (uint8_t)(v.source + 1);
			return policy_build_reply(pol, &q, &v, limit, out, cap);
		}
		filter_mask = sources & (pol->rhsbl_mask | pol->dnsbl_mask);
		if (filter_mask != 0 && policy_exempt(pol, q.qname, q.qname_len))
			filter_mask = 0;
	}
	if (filter_mask != 0) {
		struct server_job *job = worker_new_job(w, &q, tr);
		if (job == NULL)
			return wire_build_error(&q, WIRE_RCODE_SERVFAIL, WIRE_EDE_NONE, NULL, out, limit);
		job->filter_mask = filter_mask;
		answered->valid = false;
		*miss = job;
		return 0;
	}

	struct cache_record rec;
	bool stale = false;
	if (have_reader && cache_get(w->reader, q.qname, q.qname_len, q.qtype, q.qclass,
	                             server_partition_hint(w->server, &q), now, &rec) == 0) {
		if (now < rec.expires) {
			size_t n = server_serve_record(&q, &rec, now, limit, out, cap);
			if (n > 0) {
				stats_inc(&w->stats, STATS_CACHE_HITS);
				answered->flags |= STATS_QLOG_CACHED;
				worker_prefetch(w, &q, &rec, now);
				return n;
			}
		} else {
			stale = cachepolicy_stale_servable(w->server->cfg, &rec);
		}
	}
	stats_inc(&w->stats, STATS_CACHE_MISSES);
	struct server_job *job = worker_new_job(w, &q, tr);
	if (job == NULL)
		return wire_build_error(&q, WIRE_RCODE_SERVFAIL, WIRE_EDE_NONE, NULL, out, limit);
	if (stale) {
		job->stale_ok = true;
		job->stale_at_ms = w->batch_ms + w->server->cfg->stale_answer_after_ms;
	}
	answered->valid = false;
	*miss = job;
	return 0;
}

/* Access control and rate limiting, in that order: a refused client is
 * not worth a token. */
static enum worker_gate worker_gate(struct worker *w, const struct sockaddr *client, bool udp)
{
	const struct server *s = w->server;
	switch (acl_check(s->acl, client)) {
	case ACL_DROP:
		stats_inc(&w->stats, STATS_DROPPED);
		return WORKER_GATE_DROP;
	case ACL_REFUSE:
		return WORKER_GATE_REFUSE;
	case ACL_ALLOW:
		break;
	}
	/* TCP cannot be spoofed, so it is no reflection vector: only UDP is limited. */
	if (!udp || w->ratelimit == NULL ||
	    (s->ratelimit_exempt != NULL && acl_check(s->ratelimit_exempt, client) == ACL_ALLOW))
		return WORKER_GATE_PASS;
	switch (ratelimit_check(w->ratelimit, client, w->batch_ms)) {
	case RATELIMIT_PASS:
		return WORKER_GATE_PASS;
	case RATELIMIT_SLIP:
		stats_inc(&w->stats, STATS_RATELIMITED);
		return WORKER_GATE_SLIP;
	case RATELIMIT_DROP:
	default:
		stats_inc(&w->stats, STATS_RATELIMITED);
		return WORKER_GATE_DROP;
	}
}

/* ---- UDP ------------------------------------------------------------ */

/* Make receive slot i ready for recvmmsg.  The rest of its header points
 * at the worker's own buffers and is set once, at setup. */
static void worker_reset_slot(struct worker *w, int i)
{
	w->in_msgs[i].msg_hdr.msg_namelen = sizeof w->in_addr[i];
	w->in_msgs[i].msg_hdr.msg_controllen = sizeof w->in_ctl[i];
	w->in_msgs[i].msg_hdr.msg_flags = 0;
}

static void worker_init_slots(struct worker *w)
{
	for (int i = 0; i < SERVER_BATCH; i++) {
		w->in_iov[i].iov_base = w->in_buf[i];
		w->in_iov[i].iov_len = SERVER_UDP_IN;
		w->in_msgs[i].msg_hdr = (struct msghdr){
			.msg_name = &w->in_addr[i],
			.msg_iov = &w->in_iov[i],
			.msg_iovlen = 1,
			.msg_control = w->in_ctl[i],
		};
		worker_reset_slot(w, i);
	}
}

/* Turn the control data received with a datagram into what makes the reply
 * leave from the address the query came to: the pktinfo (if any, on a
 * wildcard socket) with the source set to that address.  Edits the buffer
 * in place; returns its length, 0 when there is nothing to send along. */
static size_t server_reply_control(struct msghdr *mh)
{
	if (mh->msg_controllen == 0 || (mh->msg_flags & MSG_CTRUNC))
		return 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof pi);
			pi.ipi_spec_dst = pi.ipi_addr;
			memcpy(CMSG_DATA(c), &pi, sizeof pi);
			/* Only this one message goes back. */
			memmove(mh->msg_control, c, c->cmsg_len);
			return CMSG_SPACE(sizeof pi);
		}
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			memmove(mh->msg_control, c, c->cmsg_len);
			return CMSG_SPACE(sizeof(struct in6_pktinfo));
		}
	}
	return 0;
}

/* Record the answers of a batch just sent: one clock read for all of them. */
static void worker_record_batch(struct worker *w, int out_count)
{
	int64_t now_us = server_now_us();
	int64_t wall_ms = server_wall_ms();
	for (int i = 0; i < out_count; i++) {
		const struct worker_answered *a = &w->answered[i];
		if (!a->valid)
			continue;
		worker_record(w, w->out_msgs[i].msg_hdr.msg_name, a->qname, a->qname_len, a->qtype, a->flags,
		              a->source, w->out_buf[i], w->out_iov[i].iov_len, w->batch_us, now_us, wall_ms);
	}
}

static void worker_on_udp(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	for (int round = 0; round < SERVER_BATCHES_PER_WAKEUP; round++) {
		int got = recvmmsg(fd, w->in_msgs, SERVER_BATCH, MSG_DONTWAIT, NULL);
		if (got <= 0)
			return;
		/* Read the clocks and renew the read transaction once per batch. */
		int64_t now = time(NULL);
		worker_read_clock(w);
		bool have_reader = cache_reader_begin(w->reader) == 0;
		int out_count = 0;
		for (int i = 0; i < got; i++) {
			const struct sockaddr *client = (const struct sockaddr *)&w->in_addr[i];
			enum worker_gate gate = worker_gate(w, client, true);
			if (gate == WORKER_GATE_DROP)
				continue;
			struct server_job *job;
			size_t n = worker_answer(w, client, w->in_buf[i], w->in_msgs[i].msg_len, SERVER_UDP, gate, now,
			                         have_reader, &job, &w->answered[out_count], w->out_buf[out_count],
			                         sizeof w->out_buf[0]);
			if (job != NULL) {
				job->udp_fd = fd;
				job->peer = w->in_addr[i];
				job->peer_len = w->in_msgs[i].msg_hdr.msg_namelen;
				job->udp_ctl_len = server_reply_control(&w->in_msgs[i].msg_hdr);
				memcpy(job->udp_ctl, w->in_ctl[i], job->udp_ctl_len);
				job_queue_push(server_requests(w->server, &job->q), job);
			}
			if (n == 0)
				continue;
			w->out_iov[out_count] = (struct iovec){ .iov_base = w->out_buf[out_count], .iov_len = n };
			size_t ctl_len = server_reply_control(&w->in_msgs[i].msg_hdr);
			w->out_msgs[out_count].msg_hdr = (struct msghdr){
				.msg_name = &w->in_addr[i],
				.msg_namelen = w->in_msgs[i].msg_hdr.msg_namelen,
				.msg_iov = &w->out_iov[out_count],
				.msg_iovlen = 1,
				.msg_control = ctl_len > 0 ? w->in_ctl[i] : NULL,
				.msg_controllen = ctl_len,
			};
			out_count++;
		}
		if (have_reader)
			cache_reader_end(w->reader);
		/* The kernel wrote these fields of the slots it filled; only those
		 * need resetting for the next batch. */
		for (int i = 0; i < got; i++)
			worker_reset_slot(w, i);
		for (int sent = 0; sent < out_count;) {
			int r = sendmmsg(fd, w->out_msgs + sent, (unsigned)(out_count - sent), MSG_DONTWAIT);
			if (r <= 0) {
				/* A full send buffer or an unreachable client: UDP may lose
				 * replies, and waiting here would stall every other client. */
				sent++;
				continue;
			}
			sent += r;
		}
		if (w->recording)
			worker_record_batch(w, out_count);
		if (got < SERVER_BATCH)
			return;
	}
}

/* ---- TCP ------------------------------------------------------------ */

static void tcp_conn_release(struct tcp_conn *c)
{
	if (c->closed && c->pending == 0)
		free(c);
}

static void tcp_conn_close(struct tcp_conn *c)
{
	if (c->closed)
		return;
	struct worker *w = c->worker;
	bufferevent_free(c->bev);
	c->bev = NULL;
	c->closed = true;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	w->conn_count--;
	atomic_fetch_sub(&w->server->tcp_clients[c->client_slot], 1);
	tcp_conn_release(c);
}

static void tcp_conn_send(struct tcp_conn *c, const uint8_t *reply, size_t len)
{
	uint8_t prefix[2] = { (uint8_t)(len >> 8), (uint8_t)len };
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (evbuffer_get_length(out) > SERVER_TCP_OUT_MAX) {
		tcp_conn_close(c);
		return;
	}
	evbuffer_add(out, prefix, 2);
	evbuffer_add(out, reply, len);
}

static void tcp_on_read(struct bufferevent *bev, void *arg)
{
	struct tcp_conn *c = arg;
	struct worker *w = c->worker;
	struct evbuffer *in = bufferevent_get_input(bev);
	/* Pipelined queries are answered in the order they complete: hits at
	 * once, misses when their recursion ends. */
	while (!c->closed) {
		uint8_t prefix[2];
		if (evbuffer_copyout(in, prefix, 2) < 2)
			return;
		size_t len = (size_t)prefix[0] << 8 | prefix[1];
		if (evbuffer_get_length(in) < 2 + len)
			return;
		evbuffer_drain(in, 2);
		evbuffer_remove(in, w->tcp_in, len);
		int64_t now = time(NULL);
		worker_read_clock(w);
		bool have_reader = cache_reader_begin(w->reader) == 0;
		struct server_job *job;
		struct worker_answered *answered = &w->answered[0];
		size_t n = worker_answer(w, (const struct sockaddr *)&c->peer, w->tcp_in, len, SERVER_TCP,
		                         c->refused ? WORKER_GATE_REFUSE : WORKER_GATE_PASS, now, have_reader,
		                         &job, answered, w->tcp_out, WIRE_MAX_MSG);
		if (have_reader)
			cache_reader_end(w->reader);
		if (job != NULL) {
			job->conn = c;
			job->peer = c->peer;
			c->pending++;
			job_queue_push(server_requests(w->server, &job->q), job);
			continue;
		}
		if (n == 0) {
			/* No usable header: a stream that is not DNS. */
			tcp_conn_close(c);
			return;
		}
		tcp_conn_send(c, w->tcp_out, n);
		if (w->recording && answered->valid)
			worker_record(w, (const struct sockaddr *)&c->peer, answered->qname, answered->qname_len,
			              answered->qtype, answered->flags, answered->source, w->tcp_out, n, w->batch_us,
			              server_now_us(), server_wall_ms());
	}
}

static void tcp_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct tcp_conn *c = arg;
	/* An idle timeout while answers are still owed keeps the connection:
	 * the client is waiting for us, not the other way round. */
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && c->pending > 0) {
		bufferevent_enable(bev, EV_READ);
		return;
	}
	tcp_conn_close(c);
}

static size_t server_client_slot(const struct sockaddr_storage *ss)
{
	uint8_t key[16];
	size_t n = client_addr_key(ss, key);
	return server_hash(key, n, 0) % SERVER_TCP_CLIENT_SLOTS;
}

static void tcp_on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *addr,
                          int addrlen, void *arg)
{
	struct worker *w = arg;
	const struct config *cfg = w->server->cfg;
	enum acl_action access = acl_check(w->server->acl, addr);
	if (atomic_load(&w->stopping) || access == ACL_DROP || w->conn_count >= cfg->tcp_max_connections) {
		stats_inc(&w->stats, access == ACL_DROP ? STATS_DROPPED : STATS_TCP_REJECTED);
		close(fd);
		return;
	}
	struct sockaddr_storage peer;
	memset(&peer, 0, sizeof peer);
	memcpy(&peer, addr, (size_t)addrlen < sizeof peer ? (size_t)addrlen : sizeof peer);
	/* One host may not take every slot (slowloris). */
	size_t slot = server_client_slot(&peer);
	if (atomic_fetch_add(&w->server->tcp_clients[slot], 1) >= cfg->tcp_max_per_client) {
		atomic_fetch_sub(&w->server->tcp_clients[slot], 1);
		stats_inc(&w->stats, STATS_TCP_REJECTED);
		close(fd);
		return;
	}
	struct tcp_conn *c = calloc(1, sizeof *c);
	if (c == NULL) {
		atomic_fetch_sub(&w->server->tcp_clients[slot], 1);
		close(fd);
		return;
	}
	c->client_slot = slot;
	c->worker = w;
	c->peer = peer;
	c->refused = access == ACL_REFUSE;
	c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		atomic_fetch_sub(&w->server->tcp_clients[slot], 1);
		close(fd);
		free(c);
		return;
	}
	struct timeval idle = { .tv_sec = cfg->tcp_idle_timeout_ms / 1000,
	                        .tv_usec = (cfg->tcp_idle_timeout_ms % 1000) * 1000 };
	bufferevent_set_timeouts(c->bev, &idle, &idle);
	bufferevent_setcb(c->bev, tcp_on_read, NULL, tcp_on_event, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, 2 * WIRE_MAX_MSG);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->conn_count++;
	stats_inc(&w->stats, STATS_TCP_ACCEPTED);
}

/* ---- replies coming back from the resolver thread -------------------- */

/* Record an answer the resolver thread built. */
static void worker_record_job(struct worker *w, const struct server_job *job, const struct sockaddr *client,
                              int64_t now_us, int64_t wall_ms)
{
	if (!w->recording || job->reply_len == 0)
		return;
	uint8_t flags = STATS_QLOG_RECURSED | job->record_flags;
	if (job->transport == SERVER_TCP)
		flags |= STATS_QLOG_TCP;
	worker_record(w, client, job->q.qname, job->q.qname_len, job->q.qtype, flags, job->record_source, job->reply,
	              job->reply_len, job->start_us, now_us, wall_ms);
}

static void worker_deliver(struct worker *w, struct server_job *job, int64_t now_us, int64_t wall_ms)
{
	if (job->transport == SERVER_UDP) {
		if (job->reply_len > 0) {
			struct iovec iov = { .iov_base = job->reply, .iov_len = job->reply_len };
			struct msghdr mh = {
				.msg_name = &job->peer,
				.msg_namelen = job->peer_len,
				.msg_iov = &iov,
				.msg_iovlen = 1,
				.msg_control = job->udp_ctl_len > 0 ? job->udp_ctl : NULL,
				.msg_controllen = job->udp_ctl_len,
			};
			(void)sendmsg(job->udp_fd, &mh, MSG_DONTWAIT);
			worker_record_job(w, job, (const struct sockaddr *)&job->peer, now_us, wall_ms);
		}
		return;
	}
	if (job->transport != SERVER_TCP)
		return;
	struct tcp_conn *c = job->conn;
	c->pending--;
	if (!c->closed && job->reply_len > 0) {
		tcp_conn_send(c, job->reply, job->reply_len);
		worker_record_job(w, job, (const struct sockaddr *)&c->peer, now_us, wall_ms);
	}
	tcp_conn_release(c);
}

static void worker_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct server_job *job = job_queue_take_all(&w->done);
	int64_t now_us = job != NULL ? server_now_us() : 0;
	int64_t wall_ms = job != NULL ? server_wall_ms() : 0;
	while (job != NULL) {
		struct server_job *next = job->next;
		worker_deliver(w, job, now_us, wall_ms);
		job_free(job);
		job = next;
	}
	if (atomic_load(&w->stopping))
		event_base_loopbreak(w->base);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	event_base_dispatch(w->base);
	return NULL;
}

/* ---- the resolver thread --------------------------------------------- */

static void filter_step(struct resolver *rs, struct server_job *job, bool ok, uint8_t rcode, uint8_t dnssec,
                        const uint8_t *full, size_t full_len, const uint8_t *plain, size_t plain_len);
static void resolver_take(struct resolver *rs, struct server_job *job);

static size_t inflight_hash(const uint8_t *key, size_t len)
{
	return server_hash(key, len, 0) % SERVER_INFLIGHT_BUCKETS;
}

static _Atomic unsigned *client_pending_slot(struct server *s, const struct server_job *job)
{
	uint8_t key[16];
	size_t len = client_addr_key(&job->peer, key);
	return &s->client_pending[server_hash(key, len, 0) % SERVER_CLIENT_SLOTS];
}

/* Take one of the client's pending slots; false when it has none left. */
static bool client_acquire(struct resolver *rs, struct server_job *job)
{
	_Atomic unsigned *n = client_pending_slot(rs->server, job);
	if (atomic_fetch_add(n, 1) >= rs->server->cfg->max_pending_per_client) {
		atomic_fetch_sub(n, 1);
		return false;
	}
	job->counted = true;
	return true;
}

static void client_release(struct resolver *rs, struct server_job *job)
{
	if (!job->counted)
		return;
	job->counted = false;
	atomic_fetch_sub(client_pending_slot(rs->server, job), 1);
}

/* Questions in flight in every resolver thread. */
static unsigned server_inflight(struct server *s)
{
	unsigned n = 0;
	for (unsigned i = 0; i < s->resolver_count; i++)
		n += atomic_load_explicit(&s->resolvers[i].inflight_count, memory_order_relaxed);
	return n;
}

/* Hand a finished reply (copied) back to the job's worker. */
static void resolver_return(struct resolver *rs, struct server_job *job, const uint8_t *reply, size_t len)
{
	if (job->transport == SERVER_INTERNAL) {
		/* A lookup of a check that failed before it was answered. */
		filter_step(rs, job, false, 0, 0, NULL, 0, NULL, 0);
		job_free(job);
		return;
	}
	client_release(rs, job);
	if (job->transport == SERVER_NONE) {
		job_free(job);
		return;
	}
	if (len > 0) {
		job->reply = malloc(len);
		if (job->reply != NULL) {
			memcpy(job->reply, reply, len);
			job->reply_len = len;
		}
	}
	job_queue_push(&job->worker->done, job);
}

static size_t resolver_limit(const struct server_job *job)
{
	return job->transport == SERVER_UDP ? wire_udp_limit(&job->q) : WIRE_MAX_MSG;
}

static void resolver_fail_job(struct resolver *rs, struct server_job *job, int ede)
{
	size_t n = wire_build_error(&job->q, WIRE_RCODE_SERVFAIL, ede, NULL, rs->scratch, resolver_limit(job));
	resolver_return(rs, job, rs->scratch, n);
}

/* Answer job from the stale entry (RFC 8767: TTL stale-ttl, EDE 3), or
 * SERVFAIL with ede if the entry is gone by now. */
static void resolver_serve_stale(struct resolver *rs, struct server_job *job, int ede)
{
	const struct config *cfg = rs->server->cfg;
	size_t n = 0;
	int64_t now = time(NULL);
	if (cache_reader_begin(rs->reader) == 0) {
		struct cache_record rec;
		const struct wire_query *q = &job->q;
		if (cache_get(rs->reader, q->qname, q->qname_len, q->qtype, q->qclass, CACHE_PART_GENERAL, now, &rec) == 0 &&
		    cachepolicy_stale_servable(cfg, &rec)) {
			struct wire_serve s = {
				.ttl_override = cfg->stale_ttl,
				.set_ad = rec.dnssec == CACHE_DNSSEC_SECURE && (q->do_bit || q->ad),
				.rcode = -1,
				.ede_code = WIRE_EDE_STALE_ANSWER,
				.limit = resolver_limit(job),
			};
			n = q->do_bit ? wire_serve_form(rec.full, rec.full_len, q, &s, rs->scratch, sizeof rs->scratch)
			              : wire_serve_form(rec.plain, rec.plain_len, q, &s, rs->scratch, sizeof rs->scratch);
		}
		cache_reader_end(rs->reader);
	}
	if (n == 0) {
		resolver_fail_job(rs, job, ede);
		return;
	}
	stats_inc(&rs->stats, STATS_STALE_SERVED);
	job->record_flags |= STATS_QLOG_STALE;
	resolver_return(rs, job, rs->scratch, n);
}

/* Whether the cache still holds an entry for the question (stale or
 * fresh): a failed refresh must not replace it with a SERVFAIL. */
static bool resolver_has_entry(struct resolver *rs, const struct wire_query *q)
{
	bool found = false;
	if (cache_reader_begin(rs->reader) == 0) {
		struct cache_record rec;
		found = cache_get(rs->reader, q->qname, q->qname_len, q->qtype, q->qclass, CACHE_PART_GENERAL,
		                  time(NULL), &rec) == 0 && rec.rcode != WIRE_RCODE_SERVFAIL;
		cache_reader_end(rs->reader);
	}
	return found;
}

static void inflight_unlink(struct resolver *rs, struct inflight *f)
{
	struct inflight **pp = &rs->table[f->bucket];
	while (*pp != NULL && *pp != f)
		pp = &(*pp)->next;
	if (*pp == f)
		*pp = f->next;
	atomic_fetch_sub(&rs->inflight_count, 1);
}

/* ---- MX targets: their A/AAAA belong with the mail data ---- */

static uint64_t mx_target_hash(const uint8_t *name, size_t len)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ name[i]) * 1099511628211ull;
	return h | 1; /* 0 marks an empty slot */
}

static void mx_target_add(void *arg, const uint8_t *name, size_t len)
{
	struct server *s = arg;
	uint64_t h = mx_target_hash(name, len);
	atomic_store_explicit(&s->mx_targets[h % SERVER_MX_TARGETS], h, memory_order_relaxed);
}

static bool mx_target_known(struct server *s, const uint8_t *name, size_t len)
{
	uint64_t h = mx_target_hash(name, len);
	return atomic_load_explicit(&s->mx_targets[h % SERVER_MX_TARGETS], memory_order_relaxed) == h;
}

static enum cache_partition resolver_partition(const struct resolver *rs, const struct wire_query *q)
{
	bool mx_target = (q->qtype == WIRE_TYPE_A || q->qtype == WIRE_TYPE_AAAA) &&
	                 mx_target_known(rs->server, q->qname, q->qname_len);
	return cachepolicy_partition(&rs->server->zones, q->qname, q->qname_len, q->qtype, mx_target);
}

/* How long an answer is kept, after the TTL policy; the forms' TTLs are
 * clamped the same way so served TTLs agree with the entry's life. */
static uint32_t resolver_entry_ttl(struct resolver *rs, const struct wire_query *q, enum cache_partition part,
                                   const struct wire_answer_info *info, enum recurse_security sec,
                                   size_t full_len, size_t plain_len)
{
	struct cachepolicy_ttl t = cachepolicy_entry_ttl(rs->server->cfg, &rs->server->zones, q->qname, q->qname_len,
	                                                 q->qtype, part, info, sec == RECURSE_BOGUS);
	if (t.ttl > 0 && t.clamp) {
		wire_form_clamp_ttls(rs->form_full, full_len, t.min, t.max);
		wire_form_clamp_ttls(rs->form_plain, plain_len, t.min, t.max);
	}
	return t.ttl;
}

static void resolver_store(struct resolver *rs, const struct wire_query *q, enum cache_partition part,
                           uint32_t ttl, uint8_t dnssec, uint8_t rcode, size_t full_len, size_t plain_len)
{
	if (ttl == 0)
		return;
	int64_t now = time(NULL);
	struct cache_record rec = {
		.rcode = rcode,
		.dnssec = dnssec,
		.stored_at = now,
		.ttl = ttl,
		.expires = now + ttl,
		.stale_until = now + ttl + rs->server->cfg->stale_window,
		.last_hit = now,
		.partition = (uint8_t)part,
		.full = rs->form_full,
		.full_len = (uint32_t)full_len,
		.plain = rs->form_plain,
		.plain_len = (uint32_t)plain_len,
	};
	cache_put(rs->server->cache, q->qname, q->qname_len, q->qtype, q->qclass, &rec);
}

/* Forms for a SERVFAIL, made through the same path as real answers so that
 * a cached failure is served like any entry. */
static int resolver_servfail_forms(struct resolver *rs, const struct wire_query *q, size_t *full_len,
                                   size_t *plain_len, struct wire_answer_info *info)
{
	struct wire_query bare = *q;
	bare.has_edns = false;
	memcpy(bare.qname_case, bare.qname, bare.qname_len);
	size_t n = wire_build_error(&bare, WIRE_RCODE_SERVFAIL, WIRE_EDE_NONE, NULL, rs->scratch, sizeof rs->scratch);
	if (n == 0)
		return -1;
	return wire_prepare_forms(rs->scratch, n, q, rs->form_full, full_len, rs->form_plain, plain_len, info);
}

/* ---- filtering: RHSBL and IP DNSBL checks ---------------------------- */

struct filter_addrs {
	uint32_t v4[32];
	size_t count;
};

static void filter_collect_a(void *arg, const uint8_t *rdata, size_t rdlength)
{
	struct filter_addrs *a = arg;
	if (rdlength == 4 && a->count < sizeof a->v4 / sizeof a->v4[0])
		a->v4[a->count++] = (uint32_t)rdata[0] << 24 | (uint32_t)rdata[1] << 16 | (uint32_t)rdata[2] << 8 | rdata[3];
}

/* What a DNSBL zone's answer (its plain form) says. */
static enum dnsbl_result filter_interpret(const struct policy_source *ps, uint8_t rcode, const uint8_t *plain,
                                          size_t plain_len, uint32_t *code)
{
	if (rcode != WIRE_RCODE_NOERROR)
		return DNSBL_NOT_LISTED;
	struct filter_addrs a = { .count = 0 };
	if (wire_form_answer_rdata(plain, plain_len, WIRE_TYPE_A, filter_collect_a, &a) < 0)
		return DNSBL_NOT_LISTED;
	return dnsbl_interpret(a.v4, a.count, &ps->codes, code);
}

static struct server_job *filter_job(struct filter_ctx *ctx, int source, const struct server_job *parent,
                                     const uint8_t *name, size_t name_len, uint16_t qtype, unsigned timeout_ms)
{
	struct server_job *job = calloc(1, sizeof *job);
	if (job == NULL)
		return NULL;
	job->transport = SERVER_INTERNAL;
	job->filter = ctx;
	job->filter_source = source;
	job->worker = parent != NULL ? parent->worker : NULL;
	job->q.has_question = true;
	job->q.qname_len = (uint16_t)name_len;
	memcpy(job->q.qname, name, name_len);
	memcpy(job->q.qname_case, name, name_len);
	job->q.qtype = qtype;
	job->q.qclass = WIRE_CLASS_IN;
	job->q.rd = true;
	job->q.do_bit = true; /* the full form: AD and data are judged here, not sent */
	job->deadline_ms = server_now_ms() + timeout_ms;
	job->udp_fd = -1;
	return job;
}

/* Look (name, qtype) up for ctx: from the cache when it is fresh there,
 * else through the resolver (ctx->pending counts it). */
static void filter_lookup(struct resolver *rs, struct filter_ctx *ctx, int source, const uint8_t *name,
                          size_t name_len, uint16_t qtype, unsigned timeout_ms)
{
	int64_t now = time(NULL);
	if (source >= 0)
		atomic_fetch_add_explicit(&ctx->policy->sources[source].lookups, 1, memory_order_relaxed);
	if (cache_reader_begin(rs->reader) == 0) {
		struct cache_record rec;
		enum cache_partition hint = cachepolicy_partition(&rs->server->zones, name, name_len, qtype, false);
		if (cache_get(rs->reader, name, name_len, qtype, WIRE_CLASS_IN, hint, now, &rec) == 0 &&
		    now < rec.expires && rec.rcode != WIRE_RCODE_SERVFAIL) {
			/* Copy out before the read transaction ends. */
			struct server_job local = { .transport = SERVER_INTERNAL, .filter = ctx, .filter_source = source };
			local.q.qtype = qtype;
			ctx->pending++;
			uint8_t *copy = malloc((size_t)rec.full_len + rec.plain_len);
			if (copy != NULL) {
				memcpy(copy, rec.full, rec.full_len);
				memcpy(copy + rec.full_len, rec.plain, rec.plain_len);
			}
			cache_reader_end(rs->reader);
			if (copy == NULL) {
				filter_step(rs, &local, false, 0, 0, NULL, 0, NULL, 0);
				return;
			}
			if (source < 0) {
				ctx->stored_at = rec.stored_at;
				/* The question itself came from the cache: a hit, as it
				 * would have been on a worker without the checks. */
				stats_inc(&rs->stats, STATS_CACHE_HITS);
				ctx->job->record_flags |= STATS_QLOG_CACHED;
			}
			filter_step(rs, &local, true, rec.rcode, rec.dnssec, copy, rec.full_len, copy + rec.full_len,
			            rec.plain_len);
			free(copy);
			return;
		}
		cache_reader_end(rs->reader);
	}
	if (source < 0)
		stats_inc(&rs->stats, STATS_CACHE_MISSES);
	struct server_job *job = filter_job(ctx, source, ctx->job, name, name_len, qtype, timeout_ms);
	ctx->pending++;
	if (job == NULL) {
		struct server_job local = { .transport = SERVER_INTERNAL, .filter = ctx, .filter_source = source };
		filter_step(rs, &local, false, 0, 0, NULL, 0, NULL, 0);
		return;
	}
	/* Through the queue, not resolver_take: this may run inside a
	 * libunbound callback, and a lookup answered from libunbound's cache
	 * would call back into it while its buffers are in use.  This thread's
	 * own queue, not the name's: ctx belongs to this thread. */
	job_queue_push(&rs->requests, job);
}

struct filter_addr_sink {
	uint8_t addr[16][16];
	size_t want, count;
};

static void filter_collect_addr(void *arg, const uint8_t *rdata, size_t rdlength)
{
	struct filter_addr_sink *sink = arg;
	if (rdlength == sink->want && sink->count < sizeof sink->addr / sizeof sink->addr[0])
		memcpy(sink->addr[sink->count++], rdata, rdlength);
}

/* The IP DNSBL lookups for every address in the question's answer. */
static void filter_check_addresses(struct resolver *rs, struct filter_ctx *ctx)
{
	uint64_t dnsbl = ctx->mask & ctx->policy->dnsbl_mask;
	if (dnsbl == 0 || ctx->main_failed || ctx->rcode != WIRE_RCODE_NOERROR)
		return;
	for (int family = 0; family < 2; family++) {
		/* Collected first: a lookup answered from the cache completes at
		 * once, and the answer's buffers must not be read after that. */
		struct filter_addr_sink sink = { .want = family == 0 ? 4 : 16, .count = 0 };
		wire_form_answer_rdata(ctx->plain, ctx->plain_len, family == 0 ? WIRE_TYPE_A : WIRE_TYPE_AAAA,
		                       filter_collect_addr, &sink);
		for (size_t i = 0; i < sink.count; i++) {
			for (unsigned s = 0; s < ctx->policy->source_count; s++) {
				const struct policy_source *ps = &ctx->policy->sources[s];
				if (!(dnsbl & (1ull << s)) || !atomic_load(&ps->healthy))
					continue;
				uint8_t name[WIRE_MAX_NAME];
				size_t n = dnsbl_ip_query(sink.addr[i], sink.want, ps->zone, ps->zone_len, name);
				if (n > 0)
					filter_lookup(rs, ctx, (int)s, name, n, WIRE_TYPE_A, ps->timeout_ms);
			}
		}
	}
}

static void filter_free(struct filter_ctx *ctx)
{
	free(ctx->full);
	free(ctx->plain);
	free(ctx);
}

/* Every lookup is in: block, answer, or fail. */
static void filter_finish(struct resolver *rs, struct filter_ctx *ctx)
{
	struct server_job *job = ctx->job;
	size_t limit = job->transport == SERVER_UDP ? wire_udp_limit(&job->q) : WIRE_MAX_MSG;
	size_t n;
	if (ctx->blocked) {
		stats_inc(&rs->stats, STATS_BLOCKED);
		atomic_fetch_add_explicit(&ctx->policy->sources[ctx->verdict.source].blocked, 1, memory_order_relaxed);
		job->record_flags |= STATS_QLOG_BLOCKED;
		job->record_source = (uint8_t)(ctx->verdict.source + 1);
		n = policy_build_reply(ctx->policy, &job->q, &ctx->verdict, limit, rs->scratch, sizeof rs->scratch);
	} else if (ctx->main_failed || ctx->full == NULL) {
		n = wire_build_error(&job->q, WIRE_RCODE_SERVFAIL, WIRE_EDE_NONE, NULL, rs->scratch, limit);
	} else {
		struct cache_record rec = {
			.rcode = ctx->rcode, .dnssec = ctx->dnssec, .stored_at = ctx->stored_at,
			.full = ctx->full, .full_len = (uint32_t)ctx->full_len,
			.plain = ctx->plain, .plain_len = (uint32_t)ctx->plain_len,
		};
		n = server_serve_record(&job->q, &rec, time(NULL), limit, rs->scratch, sizeof rs->scratch);
		if (n == 0)
			n = wire_build_error(&job->q, WIRE_RCODE_SERVFAIL, WIRE_EDE_NONE, NULL, rs->scratch, limit);
	}
	filter_free(ctx);
	resolver_return(rs, job, rs->scratch, n);
}

/* A health probe's answer: the listed test point must be listed and the
 * unlisted one must not; a zone that fails is not used for blocking. */
static void filter_probe_done(struct resolver *rs, struct server_job *job, bool ok, uint8_t rcode,
                              const uint8_t *plain, size_t plain_len)
{
	struct policy *pol = atomic_load(&rs->server->policy);
	int s = job->filter_source;
	if (pol == NULL || pol != rs->probe_policy || s < 0 || (unsigned)s >= pol->source_count)
		return;
	struct policy_source *ps = &pol->sources[s];
	/* An unanswered probe says the zone is slow or down, which its lookups'
	 * own timeouts handle (fail open or closed); only a wrong answer says it
	 * lists everything or nothing. */
	if (!ok) {
		log_debug("source '%s': health probe unanswered", ps->name);
		return;
	}
	uint32_t code = 0;
	enum dnsbl_result r = filter_interpret(ps, rcode, plain, plain_len, &code);
	bool right = job->probe == 1 ? r == DNSBL_LISTED : r == DNSBL_NOT_LISTED && rcode == WIRE_RCODE_NXDOMAIN;
	if (!right) {
		if (atomic_exchange(&ps->healthy, false))
			log_warn("source '%s': RFC 5782 health probe failed (the %s test point answered wrong); "
			         "not used for blocking until it passes", ps->name, job->probe == 1 ? "listed" : "unlisted");
		return;
	}
	rs->probe_bits[s] |= (uint8_t)job->probe;
	if (rs->probe_bits[s] == 3 && !atomic_exchange(&ps->healthy, true))
		log_info("source '%s': health probes pass again", ps->name);
}

/* Start a round of RFC 5782 §5 probes for every RHSBL/DNSBL source. */
static void filter_probe_round(struct resolver *rs)
{
	struct policy *pol = atomic_load(&rs->server->policy);
	rs->probe_policy = pol;
	if (pol == NULL)
		return;
	for (unsigned s = 0; s < pol->source_count; s++) {
		const struct policy_source *ps = &pol->sources[s];
		if (ps->type == CONFIG_SOURCE_LIST)
			continue;
		rs->probe_bits[s] = 0;
		uint8_t listed[WIRE_MAX_NAME], unlisted[WIRE_MAX_NAME];
		size_t llen, ulen;
		if (dnsbl_probe_names(ps->type == CONFIG_SOURCE_RHSBL, ps->zone, ps->zone_len, listed, &llen, unlisted,
		                      &ulen) < 0)
			continue;
		for (int which = 1; which <= 2; which++) {
			struct server_job *job = filter_job(NULL, (int)s, NULL, which == 1 ? listed : unlisted,
			                                    which == 1 ? llen : ulen, WIRE_TYPE_A, 5000);
			if (job == NULL)
				continue;
			job->probe = which;
			job_queue_push(&rs->requests, job);
		}
	}
}

/* One lookup of a check (or a probe) is in: ok with the answer's forms, or
 * not (failure, timeout). */
static void filter_step(struct resolver *rs, struct server_job *job, bool ok, uint8_t rcode, uint8_t dnssec,
                        const uint8_t *full, size_t full_len, const uint8_t *plain, size_t plain_len)
{
	if (job->filter == NULL) {
		filter_probe_done(rs, job, ok, rcode, plain, plain_len);
		return;
	}
	struct filter_ctx *ctx = job->filter;
	if (job->filter_source < 0) {
		ctx->main_done = true;
		ctx->rcode = rcode;
		ctx->dnssec = dnssec;
		ctx->full = ok ? malloc(full_len ? full_len : 1) : NULL;
		ctx->plain = ok ? malloc(plain_len ? plain_len : 1) : NULL;
		if (!ok || ctx->full == NULL || ctx->plain == NULL) {
			ctx->main_failed = true;
		} else {
			memcpy(ctx->full, full, full_len);
			memcpy(ctx->plain, plain, plain_len);
			ctx->full_len = full_len;
			ctx->plain_len = plain_len;
			/* Bogus data is never looked at: it is SERVFAIL anyway. */
			if (dnssec != CACHE_DNSSEC_BOGUS || job->q.cd)
				filter_check_addresses(rs, ctx);
		}
	} else {
		struct policy_source *ps = &ctx->policy->sources[job->filter_source];
		uint32_t code = 0;
		if (!ok) {
			atomic_fetch_add_explicit(&ps->timeouts, 1, memory_order_relaxed);
			if (!ps->fail_open && !ctx->blocked) {
				ctx->blocked = true;
				policy_dnsbl_verdict(ctx->policy, job->filter_source, &ctx->verdict);
			}
		} else {
			switch (filter_interpret(ps, rcode, plain, plain_len, &code)) {
			case DNSBL_LISTED:
				atomic_fetch_add_explicit(&ps->listed, 1, memory_order_relaxed);
				if (!ctx->blocked) {
					struct policy_verdict v;
					policy_dnsbl_verdict(ctx->policy, job->filter_source, &v);
					if (v.block) {
						ctx->blocked = true;
						ctx->verdict = v;
					}
				}
				break;
			case DNSBL_ERROR:
				policy_note_error(ctx->policy, job->filter_source, code);
				break;
			case DNSBL_NOT_LISTED:
				break;
			}
		}
	}
	if (--ctx->pending == 0 && ctx->started)
		filter_finish(rs, ctx);
}

/* A client question from a worker whose scope has RHSBL/DNSBL sources. */
static void filter_start(struct resolver *rs, struct server_job *job)
{
	struct filter_ctx *ctx = calloc(1, sizeof *ctx);
	struct policy *pol = atomic_load(&rs->server->policy);
	if (ctx == NULL || pol == NULL) {
		free(ctx);
		job->filter_mask = 0;
		resolver_take(rs, job);
		return;
	}
	stats_inc(&rs->stats, STATS_FILTER_CHECKS);
	ctx->job = job;
	ctx->policy = pol;
	ctx->mask = job->filter_mask;
	ctx->stored_at = time(NULL);
	/* Held open while lookups are issued, so that one completing at once
	 * cannot finish the check early. */
	ctx->pending = 1;
	uint64_t rhsbl = ctx->mask & pol->rhsbl_mask;
	if (rhsbl != 0) {
		uint8_t domain[WIRE_MAX_NAME];
		size_t dlen = dnsbl_registrable_domain(job->q.qname, job->q.qname_len, domain);
		for (unsigned s = 0; dlen > 0 && s < pol->source_count; s++) {
			const struct policy_source *ps = &pol->sources[s];
			if (!(rhsbl & (1ull << s)) || !atomic_load(&ps->healthy))
				continue;
			uint8_t name[WIRE_MAX_NAME];
			size_t n = dnsbl_domain_query(domain, dlen, ps->zone, ps->zone_len, name);
			if (n > 0)
				filter_lookup(rs, ctx, (int)s, name, n, WIRE_TYPE_A, ps->timeout_ms);
		}
	}
	filter_lookup(rs, ctx, -1, job->q.qname, job->q.qname_len, job->q.qtype, rs->server->cfg->client_timeout_ms);
	ctx->started = true;
	if (--ctx->pending == 0)
		filter_finish(rs, ctx);
}

static void resolver_on_result(void *arg, int rcode, const uint8_t *pkt, size_t len,
                               enum recurse_security sec, const char *why_bogus)
{
	struct inflight *f = arg;
	struct resolver *rs = f->resolver;
	inflight_unlink(rs, f);
	if (f->prefetch)
		atomic_fetch_sub(&rs->server->prefetching, 1);
	stats_inc(&rs->stats, STATS_RESOLUTIONS);

	/* The question rebuilt from the key: waiters that timed out are gone,
	 * and the answer is stored even when nobody waits any more. */
	struct wire_query key_q;
	memset(&key_q, 0, sizeof key_q);
	key_q.qname_len = (uint16_t)(f->key_len - 4);
	memcpy(key_q.qname, f->key, key_q.qname_len);
	memcpy(key_q.qname_case, f->key, key_q.qname_len);
	key_q.qtype = (uint16_t)(f->key[key_q.qname_len] << 8 | f->key[key_q.qname_len + 1]);
	key_q.qclass = (uint16_t)(f->key[key_q.qname_len + 2] << 8 | f->key[key_q.qname_len + 3]);
	key_q.has_question = true;

	size_t full_len = 0, plain_len = 0;
	struct wire_answer_info info;
	int ok = -1;
	uint8_t dnssec = sec == RECURSE_SECURE ? CACHE_DNSSEC_SECURE
	               : sec == RECURSE_BOGUS ? CACHE_DNSSEC_BOGUS : CACHE_DNSSEC_INSECURE;
	if (rcode == 0 && pkt != NULL) {
		ok = wire_prepare_forms(pkt, len, &key_q, rs->form_full, &full_len, rs->form_plain, &plain_len, &info);
		if (ok < 0)
			log_debug("unusable answer from libunbound (%zu bytes)", len);
	}
	bool failed = ok < 0 || (info.rcode != WIRE_RCODE_NOERROR && info.rcode != WIRE_RCODE_NXDOMAIN);
	if (ok < 0) {
		dnssec = CACHE_DNSSEC_INDETERMINATE;
		ok = resolver_servfail_forms(rs, &key_q, &full_len, &plain_len, &info);
	}
	if (failed)
		stats_inc(&rs->stats, STATS_SERVFAIL);
	if (dnssec == CACHE_DNSSEC_BOGUS)
		stats_inc(&rs->stats, STATS_BOGUS);
	enum cache_partition part = resolver_partition(rs, &key_q);
	if (ok == 0 && !failed && key_q.qtype == WIRE_TYPE_MX && rs->server->cfg->partitions[CACHE_PART_MAIL].quota != UINT64_MAX)
		wire_form_answer_names(rs->form_plain, plain_len, WIRE_TYPE_MX, mx_target_add, rs->server);
	/* A failed refresh keeps the entry it would replace: that is what
	 * serve-stale answers from. */
	bool keep_old = failed && rs->server->cfg->serve_stale && resolver_has_entry(rs, &key_q);
	if (ok == 0 && !keep_old)
		resolver_store(rs, &key_q, part,
		               resolver_entry_ttl(rs, &key_q, part, &info, sec, full_len, plain_len),
		               dnssec, info.rcode, full_len, plain_len);

	int64_t now = time(NULL);
	struct server_job *job = f->waiters;
	while (job != NULL) {
		struct server_job *next = job->next;
		size_t n = 0;
		size_t limit = resolver_limit(job);
		if (job->transport == SERVER_INTERNAL) {
			filter_step(rs, job, ok == 0 && !failed, info.rcode, dnssec, rs->form_full, full_len, rs->form_plain,
			            plain_len);
			job_free(job);
			job = next;
			continue;
		}
		if (failed && job->stale_ok) {
			resolver_serve_stale(rs, job, WIRE_EDE_NONE);
			job = next;
			continue;
		}
		if (ok < 0) {
			n = wire_build_error(&job->q, WIRE_RCODE_SERVFAIL, WIRE_EDE_NONE, NULL, rs->scratch, limit);
		} else if (dnssec == CACHE_DNSSEC_BOGUS && !job->q.cd) {
			char text[SERVER_EDE_TEXT_MAX + 1];
			snprintf(text, sizeof text, "%s", why_bogus != NULL ? why_bogus : "validation failed");
			n = wire_build_error(&job->q, WIRE_RCODE_SERVFAIL, WIRE_EDE_DNSSEC_BOGUS, text, rs->scratch, limit);
		} else {
			struct cache_record rec = {
				.rcode = info.rcode, .dnssec = dnssec, .stored_at = now,
				.full = rs->form_full, .full_len = (uint32_t)full_len,
				.plain = rs->form_plain, .plain_len = (uint32_t)plain_len,
			};
			n = server_serve_record(&job->q, &rec, now, limit, rs->scratch, sizeof rs->scratch);
			if (n == 0)
				n = wire_build_error(&job->q, WIRE_RCODE_SERVFAIL, WIRE_EDE_NONE, NULL, rs->scratch, limit);
		}
		resolver_return(rs, job, rs->scratch, n);
		job = next;
	}
	free(f);
}

static void resolver_take(struct resolver *rs, struct server_job *job)
{
	const struct config *cfg = rs->server->cfg;
	if (rs->recurse == NULL) {
		/* Past shutdown's deletion of the context: nothing resolves now. */
		if (job->transport == SERVER_NONE)
			job_free(job);
		else
			resolver_fail_job(rs, job, WIRE_EDE_NONE);
		return;
	}
	if (job->filter_mask != 0 && job->transport != SERVER_INTERNAL) {
		filter_start(rs, job);
		return;
	}
	bool refresh = job->transport == SERVER_NONE;
	bool internal = job->transport == SERVER_INTERNAL;
	uint8_t key[WIRE_MAX_NAME + 4];
	size_t key_len = inflight_key(&job->q, key);
	size_t bucket = inflight_hash(key, key_len);
	for (struct inflight *f = rs->table[bucket]; f != NULL; f = f->next) {
		if (f->key_len == key_len && memcmp(f->key, key, key_len) == 0) {
			if (refresh) {
				job_free(job);
				return;
			}
			if (f->waiter_count >= cfg->max_waiters || (!internal && !client_acquire(rs, job))) {
				stats_inc(&rs->stats, STATS_OVERLOAD);
				resolver_fail_job(rs, job, WIRE_EDE_NONE);
				return;
			}
			job->next = f->waiters;
			f->waiters = job;
			f->waiter_count++;
			stats_inc(&rs->stats, STATS_COALESCED);
			return;
		}
	}
	if (refresh && job->refresh_at > time(NULL)) {
		for (struct server_job *o = rs->scheduled; o != NULL; o = o->next) {
			if (o->q.qname_len == job->q.qname_len && o->q.qtype == job->q.qtype &&
			    memcmp(o->q.qname, job->q.qname, job->q.qname_len) == 0) {
				job_free(job);
				return;
			}
		}
		if (atomic_load(&rs->server->scheduled) >= cfg->prefetch_max) {
			job_free(job);
			return;
		}
		job->next = rs->scheduled;
		rs->scheduled = job;
		atomic_fetch_add(&rs->server->scheduled, 1);
		return;
	}
	if (refresh) {
		if (atomic_load(&rs->server->prefetching) >= cfg->prefetch_max ||
		    server_inflight(rs->server) >= cfg->max_pending / 2) {
			job_free(job);
			return;
		}
	} else if (server_inflight(rs->server) >= cfg->max_pending || (!internal && !client_acquire(rs, job))) {
		stats_inc(&rs->stats, STATS_OVERLOAD);
		resolver_fail_job(rs, job, WIRE_EDE_NONE);
		return;
	}
	struct inflight *f = calloc(1, sizeof *f);
	if (f == NULL) {
		resolver_fail_job(rs, job, WIRE_EDE_NONE);
		return;
	}
	f->resolver = rs;
	f->bucket = bucket;
	memcpy(f->key, key, key_len);
	f->key_len = key_len;
	f->prefetch = refresh;
	if (refresh) {
		atomic_fetch_add(&rs->server->prefetching, 1);
		stats_inc(&rs->stats, STATS_PREFETCHES);
	} else {
		job->next = NULL;
		f->waiters = job;
		f->waiter_count = 1;
	}
	f->next = rs->table[bucket];
	rs->table[bucket] = f;
	atomic_fetch_add(&rs->inflight_count, 1);
	struct wire_query q = job->q;
	if (refresh)
		job_free(job);
	/* The callback may run before this returns (libunbound's own cache),
	 * so f is not touched afterwards. */
	if (recurse_submit(rs->recurse, q.qname, q.qname_len, q.qtype, q.qclass, resolver_on_result, f) < 0) {
		inflight_unlink(rs, f);
		if (refresh)
			atomic_fetch_sub(&rs->server->prefetching, 1);
		else
			resolver_fail_job(rs, f->waiters, WIRE_EDE_NONE);
		free(f);
	}
}

static void resolver_on_requests(evutil_socket_t fd, short what, void *arg)
{
	struct resolver *rs = arg;
	struct server_job *job = job_queue_take_all(&rs->requests);
	while (job != NULL) {
		struct server_job *next = job->next;
		/* Shutting down: a long backlog must not hold the exit up. */
		if (atomic_load(&rs->stopping)) {
			if (job->transport == SERVER_NONE)
				job_free(job);
			else
				resolver_fail_job(rs, job, WIRE_EDE_NONE);
		} else {
			resolver_take(rs, job);
		}
		job = next;
	}
}

/* Free the policies replaced before cutoff: every check that could use
 * one has long finished.  cutoff INT64_MAX frees all (shutdown). */
static void server_free_retired(struct server *s, int64_t cutoff)
{
	pthread_mutex_lock(&s->retired_lock);
	struct server_retired **pp = &s->retired;
	while (*pp != NULL) {
		struct server_retired *r = *pp;
		if (r->at > cutoff) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		policy_free(r->policy);
		free(r);
	}
	pthread_mutex_unlock(&s->retired_lock);
}

/* A reload rebuilds the sources; their counters are Prometheus counters
 * and their health a finding, so a source of the same name and type keeps
 * both.  What the old policy still counts for checks in flight after this
 * is lost, a few at most. */
static void policy_carry_counters(struct policy *old, struct policy *p)
{
	for (unsigned i = 0; i < p->source_count; i++) {
		struct policy_source *ns = &p->sources[i];
		for (unsigned j = 0; j < old->source_count; j++) {
			struct policy_source *os = &old->sources[j];
			if (os->type != ns->type || strcmp(os->name, ns->name) != 0)
				continue;
			atomic_fetch_add(&ns->lookups, atomic_load(&os->lookups));
			atomic_fetch_add(&ns->listed, atomic_load(&os->listed));
			atomic_fetch_add(&ns->errors, atomic_load(&os->errors));
			atomic_fetch_add(&ns->timeouts, atomic_load(&os->timeouts));
			atomic_fetch_add(&ns->blocked, atomic_load(&os->blocked));
			atomic_store(&ns->healthy, atomic_load(&os->healthy));
			break;
		}
	}
}

/* Make p the policy in force and retire the old one. */
static int server_swap_policy(struct server *s, struct policy *p)
{
	struct server_retired *r = calloc(1, sizeof *r);
	if (r == NULL)
		return -1;
	struct policy *old = atomic_exchange(&s->policy, p);
	if (old == NULL) {
		free(r);
		return 0;
	}
	policy_carry_counters(old, p);
	r->policy = old;
	r->at = time(NULL);
	pthread_mutex_lock(&s->retired_lock);
	r->next = s->retired;
	s->retired = r;
	pthread_mutex_unlock(&s->retired_lock);
	return 0;
}

/* Clients have their own deadline: libunbound may take half a minute to
 * give up on dead servers, and nobody should wait that long for SERVFAIL.
 * A client with a stale entry gets it sooner (RFC 8767's client response
 * timer); the recursion carries on and refreshes the entry. */
static void resolver_on_deadlines(evutil_socket_t fd, short what, void *arg)
{
	struct resolver *rs = arg;
	int64_t now = server_now_ms();
	int64_t wall = time(NULL);
	/* Probes and retired policies are the server's, not a shard's: one
	 * thread does them. */
	if (rs->index == 0) {
		if (now >= rs->next_probe_ms) {
			rs->next_probe_ms = now + rs->server->cfg->health_interval_ms;
			filter_probe_round(rs);
		} else if (rs->probe_policy != atomic_load(&rs->server->policy)) {
			rs->next_probe_ms = 0; /* a new policy is probed at the next tick */
		}
		server_free_retired(rs->server, wall - 60);
	}
	for (struct server_job **pp = &rs->scheduled; *pp != NULL;) {
		struct server_job *job = *pp;
		if (job->refresh_at > wall) {
			pp = &job->next;
			continue;
		}
		*pp = job->next;
		atomic_fetch_sub(&rs->server->scheduled, 1);
		job->refresh_at = 0;
		resolver_take(rs, job);
	}
	for (size_t b = 0; b < SERVER_INFLIGHT_BUCKETS; b++) {
		for (struct inflight *f = rs->table[b]; f != NULL; f = f->next) {
			struct server_job **pp = &f->waiters;
			while (*pp != NULL) {
				struct server_job *job = *pp;
				bool stale_due = job->stale_ok && job->stale_at_ms <= now;
				if (!stale_due && job->deadline_ms > now) {
					pp = &job->next;
					continue;
				}
				*pp = job->next;
				f->waiter_count--;
				if (stale_due) {
					resolver_serve_stale(rs, job, WIRE_EDE_NO_REACHABLE_AUTHORITY);
				} else {
					stats_inc(&rs->stats, STATS_TIMEOUTS);
					resolver_fail_job(rs, job, WIRE_EDE_NO_REACHABLE_AUTHORITY);
				}
			}
		}
	}
}

static void resolver_on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct resolver *rs = arg;
	/* Deleting the context completes every pending query with SERVFAIL,
	 * which answers the waiters before the workers stop. */
	recurse_free(rs->recurse);
	rs->recurse = NULL;
	struct server_job *job = job_queue_take_all(&rs->requests);
	while (job != NULL) {
		struct server_job *next = job->next;
		resolver_fail_job(rs, job, WIRE_EDE_NONE);
		job = next;
	}
	event_base_loopbreak(rs->base);
}

static void *resolver_main(void *arg)
{
	struct resolver *rs = arg;
	event_base_dispatch(rs->base);
	return NULL;
}

/* ---- life cycle ------------------------------------------------------- */

static enum acl_action server_acl_action(enum config_access_action a)
{
	return a == CONFIG_ACCESS_ALLOW ? ACL_ALLOW : a == CONFIG_ACCESS_DROP ? ACL_DROP : ACL_REFUSE;
}

/* The read-only lookup structures every worker shares: access control, the
 * rate-limit exemptions and the DNSBL zones in wire form. */
static int server_build_policy(struct server *s, char *err, size_t errlen)
{
	const struct config *cfg = s->cfg;
	char why[256];
	s->acl = acl_new(server_acl_action(cfg->access_default));
	if (s->acl == NULL)
		goto nomem;
	for (unsigned i = 0; i < cfg->access_rule_count; i++) {
		const struct config_access_rule *r = &cfg->access_rules[i];
		if (acl_add(s->acl, r->network, server_acl_action(r->action), why, sizeof why) < 0) {
			snprintf(err, errlen, "%s:%u: %s", cfg->path, r->line, why);
			return -1;
		}
	}
	if (cfg->ratelimit_exempt_count > 0) {
		s->ratelimit_exempt = acl_new(ACL_REFUSE);
		if (s->ratelimit_exempt == NULL)
			goto nomem;
		for (unsigned i = 0; i < cfg->ratelimit_exempt_count; i++) {
			const struct config_access_rule *r = &cfg->ratelimit_exempt[i];
			if (acl_add(s->ratelimit_exempt, r->network, ACL_ALLOW, why, sizeof why) < 0) {
				snprintf(err, errlen, "%s:%u: %s", cfg->path, r->line, why);
				return -1;
			}
		}
	}
	if (cachepolicy_zones_init(&s->zones, cfg) < 0) {
		snprintf(err, errlen, "a dnsbl zone is not a domain name");
		return -1;
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

int server_reload(struct server *s, struct config *cfg)
{
	const struct config *old = s->cfg;
	struct config **chain = realloc(s->config_chain, (s->config_chain_len + 1) * sizeof *chain);
	if (chain == NULL)
		return -1;
	s->config_chain = chain;
	chain[s->config_chain_len++] = cfg;
	/* What is bound, built or owned at start stays; say so rather than
	 * pretend it changed. */
	if (old->listen_count != cfg->listen_count ||
	    memcmp(old->listen, cfg->listen, sizeof old->listen[0] * old->listen_count) != 0 ||
	    old->workers != cfg->workers)
		log_warn("reload: listen addresses and workers change only on restart");
	if (old->access_rule_count != cfg->access_rule_count || old->access_default != cfg->access_default ||
	    memcmp(old->access_rules, cfg->access_rules, sizeof old->access_rules[0] * old->access_rule_count) != 0 ||
	    old->ratelimit_qps != cfg->ratelimit_qps)
		log_warn("reload: access control and rate limits change only on restart");
	if (old->dnsbl_zone_count != cfg->dnsbl_zone_count ||
	    memcmp(old->dnsbl_zones, cfg->dnsbl_zones, sizeof old->dnsbl_zones[0] * old->dnsbl_zone_count) != 0)
		log_warn("reload: dnsbl-zones change only on restart");
	if (strcmp(old->cache_dir, cfg->cache_dir) != 0 || old->cache_size != cfg->cache_size)
		log_warn("reload: the cache directory and size change only on restart");
	if (strcmp(old->root_hints, cfg->root_hints) != 0 || old->dnssec != cfg->dnssec ||
	    old->resolver_threads != cfg->resolver_threads)
		log_warn("reload: recursion settings change only on restart");
	/* Lists are read again; a source that cannot be read keeps the old
	 * policy whole (with the new config's other settings). */
	if (cfg->filter_source_count > 0) {
		char why[512];
		struct policy *pol = policy_new(cfg, why, sizeof why);
		if (pol == NULL)
			log_err("reload: filter: %s; keeping the lists in force", why);
		else if (server_swap_policy(s, pol) < 0)
			policy_free(pol);
	} else {
		server_swap_policy(s, NULL);
	}
	atomic_store(&s->cfg, cfg);
	return 0;
}

int server_reload_lists(struct server *s, char *err, size_t errlen)
{
	const struct config *cfg = s->cfg;
	if (cfg->filter_source_count == 0) {
		snprintf(err, errlen, "no filter sources configured");
		return -1;
	}
	char why[512];
	struct policy *pol = policy_new(cfg, why, sizeof why);
	if (pol == NULL) {
		snprintf(err, errlen, "%s; the lists in force are kept", why);
		return -1;
	}
	if (server_swap_policy(s, pol) < 0) {
		policy_free(pol);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	log_info("filter lists reloaded");
	return 0;
}

unsigned server_filter_stats(struct server *s, struct server_filter_stat *out, unsigned max)
{
	struct policy *pol = atomic_load(&s->policy);
	unsigned n = 0;
	for (unsigned i = 0; pol != NULL && i < pol->source_count && n < max; i++, n++) {
		const struct policy_source *ps = &pol->sources[i];
		snprintf(out[n].name, sizeof out[n].name, "%s", ps->name);
		out[n].healthy = atomic_load(&ps->healthy);
		out[n].lookups = atomic_load(&ps->lookups);
		out[n].listed = atomic_load(&ps->listed);
		out[n].errors = atomic_load(&ps->errors);
		out[n].timeouts = atomic_load(&ps->timeouts);
		out[n].blocked = atomic_load(&ps->blocked);
	}
	return n;
}

void server_get_stats(struct server *s, uint64_t *out, uint64_t *inflight)
{
	struct stats_block *blocks[16 + 256]; /* the config's most resolver threads and workers */
	size_t n = 0;
	for (unsigned i = 0; i < s->resolver_count && n < sizeof blocks / sizeof blocks[0]; i++)
		blocks[n++] = &s->resolvers[i].stats;
	for (unsigned i = 0; i < s->worker_count && n < sizeof blocks / sizeof blocks[0]; i++)
		if (s->workers[i] != NULL)
			blocks[n++] = &s->workers[i]->stats;
	stats_merge(blocks, n, out);
	*inflight = server_inflight(s);
}

unsigned server_recorders(struct server *s, const struct stats_recorder **out, unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < s->worker_count && n < max; i++)
		if (s->workers[i] != NULL && s->workers[i]->recording)
			out[n++] = &s->workers[i]->recorder;
	return n;
}

const struct config *server_config(struct server *s)
{
	return atomic_load_explicit(&s->cfg, memory_order_acquire);
}

struct server *server_new(const struct config *cfg, struct cache *cache, char *err, size_t errlen)
{
	struct server *s = calloc(1, sizeof *s);
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->cfg = cfg;
	s->cache = cache;
	s->worker_count = cfg->workers > 0 ? cfg->workers : 1;
	s->resolver_count = cfg->resolver_threads > 0 ? cfg->resolver_threads : 1;
	/* aligned_alloc, not calloc: the statistics block inside is aligned to
	 * a cache line, and the size is a multiple of that. */
	s->resolvers = aligned_alloc(_Alignof(struct resolver), s->resolver_count * sizeof *s->resolvers);
	if (s->resolvers != NULL) {
		memset(s->resolvers, 0, s->resolver_count * sizeof *s->resolvers);
		for (unsigned i = 0; i < s->resolver_count; i++) {
			s->resolvers[i].requests.wake_fd = -1;
			s->resolvers[i].stop_fd = -1;
		}
	}
	s->udp_fds = calloc(s->worker_count, sizeof *s->udp_fds);
	s->tcp_fds = calloc(s->worker_count, sizeof *s->tcp_fds);
	s->workers = calloc(s->worker_count, sizeof *s->workers);
	if (s->resolvers == NULL || s->udp_fds == NULL || s->tcp_fds == NULL || s->workers == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (unsigned w = 0; w < s->worker_count; w++)
		for (unsigned l = 0; l < CONFIG_MAX_LISTEN; l++)
			s->udp_fds[w][l] = s->tcp_fds[w][l] = -1;
	pthread_mutex_init(&s->retired_lock, NULL);
	if (server_build_policy(s, err, errlen) < 0)
		goto fail;
	if (cfg->filter_source_count > 0) {
		char why[512];
		struct policy *pol = policy_new(cfg, why, sizeof why);
		if (pol == NULL) {
			snprintf(err, errlen, "filter: %s", why);
			goto fail;
		}
		atomic_store(&s->policy, pol);
	}
	for (unsigned w = 0; w < s->worker_count; w++) {
		for (unsigned l = 0; l < cfg->listen_count; l++) {
			s->udp_fds[w][l] = server_bind(&cfg->listen[l], SOCK_DGRAM, err, errlen);
			if (s->udp_fds[w][l] < 0)
				goto fail;
			s->tcp_fds[w][l] = server_bind(&cfg->listen[l], SOCK_STREAM, err, errlen);
			if (s->tcp_fds[w][l] < 0)
				goto fail;
		}
	}
	return s;
fail:
	server_free(s);
	return NULL;
}

static int worker_setup(struct server *s, unsigned index, char *err, size_t errlen)
{
	struct worker *w = calloc(1, sizeof *w);
	if (w == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->workers[index] = w;
	w->index = index;
	w->server = s;
	w->done.wake_fd = -1;
	worker_init_slots(w);
	w->base = event_base_new();
	w->reader = cache_reader_new(s->cache);
	/* Only workers serve hits at a rate where the B-tree walk shows. */
	if (w->reader != NULL && cache_reader_hot(w->reader, (size_t)s->cfg->hot_size) < 0) {
		snprintf(err, errlen, "worker %u: out of memory for its hot answers (%llu bytes)", index,
		         (unsigned long long)s->cfg->hot_size);
		return -1;
	}
	if (w->base == NULL || w->reader == NULL || job_queue_init(&w->done) < 0) {
		snprintf(err, errlen, "worker %u: cannot create its event loop or cache reader", index);
		return -1;
	}
	/* Only the web front reads what the recorder keeps. */
	const struct config *start_cfg = s->cfg;
	if (start_cfg->web_listen_count > 0) {
		if (stats_recorder_init(&w->recorder, start_cfg->web_query_log_size, start_cfg->web_anonymize) < 0) {
			snprintf(err, errlen, "worker %u: out of memory for its statistics", index);
			return -1;
		}
		w->recording = true;
	}
	const struct config *cfg = s->cfg;
	if (cfg->ratelimit_qps > 0) {
		/* SO_REUSEPORT spreads a prefix's datagrams over every worker, so
		 * each enforces its share of the limit. */
		unsigned n = s->worker_count;
		unsigned burst = cfg->ratelimit_burst ? cfg->ratelimit_burst : cfg->ratelimit_qps;
		struct ratelimit_options ro = {
			.qps = (cfg->ratelimit_qps + n - 1) / n,
			.burst = (burst + n - 1) / n,
			.slip = cfg->ratelimit_slip,
			.v4_prefix = cfg->ratelimit_v4_prefix,
			.v6_prefix = cfg->ratelimit_v6_prefix,
			.table_size = 65536,
		};
		w->ratelimit = ratelimit_new(&ro);
		if (w->ratelimit == NULL) {
			snprintf(err, errlen, "worker %u: cannot create its rate-limit table", index);
			return -1;
		}
	}
	w->done.wake_ev = event_new(w->base, w->done.wake_fd, EV_READ | EV_PERSIST, worker_on_done, w);
	if (w->done.wake_ev == NULL || event_add(w->done.wake_ev, NULL) < 0)
		goto fail;
	for (unsigned l = 0; l < s->cfg->listen_count; l++) {
		w->udp_ev[l] = event_new(w->base, s->udp_fds[index][l], EV_READ | EV_PERSIST, worker_on_udp, w);
		if (w->udp_ev[l] == NULL || event_add(w->udp_ev[l], NULL) < 0)
			goto fail;
		w->tcp_listener[l] = evconnlistener_new(w->base, tcp_on_accept, w, LEV_OPT_CLOSE_ON_FREE, -1,
		                                        s->tcp_fds[index][l]);
		if (w->tcp_listener[l] == NULL)
			goto fail;
		s->tcp_fds[index][l] = -1; /* the listener owns it now */
	}
	return 0;
fail:
	snprintf(err, errlen, "worker %u: cannot register its events", index);
	return -1;
}

/* Resolver thread index's loop, libunbound context, cache reader and events. */
static int resolver_setup(struct server *s, unsigned index, const struct recurse_options *ro, char *err,
                          size_t errlen)
{
	struct resolver *rs = &s->resolvers[index];
	rs->server = s;
	rs->index = index;
	rs->base = event_base_new();
	if (rs->base == NULL || job_queue_init(&rs->requests) < 0) {
		snprintf(err, errlen, "resolver %u: cannot create its event loop", index);
		return -1;
	}
	rs->recurse = recurse_new(rs->base, ro, err, errlen);
	if (rs->recurse == NULL)
		return -1;
	rs->reader = cache_reader_new(s->cache);
	if (rs->reader == NULL) {
		snprintf(err, errlen, "resolver %u: cannot create its cache reader", index);
		return -1;
	}
	rs->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	rs->requests.wake_ev = event_new(rs->base, rs->requests.wake_fd, EV_READ | EV_PERSIST, resolver_on_requests, rs);
	rs->stop_ev = rs->stop_fd >= 0 ? event_new(rs->base, rs->stop_fd, EV_READ, resolver_on_stop, rs) : NULL;
	rs->deadline_timer = event_new(rs->base, -1, EV_PERSIST, resolver_on_deadlines, rs);
	struct timeval tick = { .tv_sec = 0, .tv_usec = 100 * 1000 };
	if (rs->requests.wake_ev == NULL || rs->stop_ev == NULL || rs->deadline_timer == NULL ||
	    event_add(rs->requests.wake_ev, NULL) < 0 || event_add(rs->stop_ev, NULL) < 0 ||
	    event_add(rs->deadline_timer, &tick) < 0) {
		snprintf(err, errlen, "resolver %u: cannot register its events", index);
		return -1;
	}
	return 0;
}

int server_start(struct server *s, char *err, size_t errlen)
{
	const struct config *cfg = s->cfg;
	unsigned n = s->resolver_count;
	/* Filter zones with their own servers become stub or forward zones. */
	struct recurse_stub stubs[CONFIG_MAX_SOURCES];
	char addr_text[CONFIG_MAX_SOURCES][CONFIG_MAX_SOURCE_SERVERS][80];
	unsigned stub_count = 0;
	for (unsigned i = 0; i < cfg->filter_source_count; i++) {
		const struct config_source *src = &cfg->filter_sources[i];
		if (src->type == CONFIG_SOURCE_LIST || src->server_count == 0)
			continue;
		struct recurse_stub *st = &stubs[stub_count];
		memset(st, 0, sizeof *st);
		st->zone = src->zone;
		st->forward = src->forward;
		for (unsigned k = 0; k < src->server_count && k < 4; k++) {
			char host[64] = "";
			unsigned port;
			const struct sockaddr_storage *ss = &src->servers[k];
			if (ss->ss_family == AF_INET6) {
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host, sizeof host);
				port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
			} else {
				inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof host);
				port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
			}
			snprintf(addr_text[stub_count][k], sizeof addr_text[0][0], "%s@%u", host, port ? port : 53);
			st->addrs[st->count++] = addr_text[stub_count][k];
		}
		stub_count++;
	}
	struct recurse_options ro = {
		.stubs = stubs,
		.stub_count = stub_count,
		.root_hints = cfg->root_hints,
		.trust_anchor = cfg->dnssec ? cfg->trust_anchor : NULL,
		.query_loopback = cfg->query_loopback,
		/* Ports and caches are the configured totals, shared out; each
		 * context may still take max-pending queries, which the front end
		 * bounds for all of them together. */
		.outgoing_range = cfg->outgoing_range / n > 16 ? cfg->outgoing_range / n : 16,
		.max_pending = cfg->max_pending,
		.cache_bytes = cfg->upstream_cache_bytes / n > (1u << 20) ? cfg->upstream_cache_bytes / n : (1u << 20),
	};
	for (unsigned i = 0; i < n; i++)
		if (resolver_setup(s, i, &ro, err, errlen) < 0)
			return -1;
	for (unsigned i = 0; i < s->worker_count; i++)
		if (worker_setup(s, i, err, errlen) < 0)
			return -1;
	s->started = true;
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&s->resolvers[i].thread, NULL, resolver_main, &s->resolvers[i]) != 0) {
			snprintf(err, errlen, "cannot start resolver thread %u", i);
			return -1;
		}
		s->resolvers_running++;
	}
	for (unsigned i = 0; i < s->worker_count; i++) {
		if (pthread_create(&s->workers[i]->thread, NULL, worker_main, s->workers[i]) != 0) {
			snprintf(err, errlen, "cannot start worker %u", i);
			return -1;
		}
		s->workers_running++;
	}
	return 0;
}

void server_stop(struct server *s)
{
	if (s == NULL || !s->started || s->stopped)
		return;
	s->stopped = true;
	uint64_t one = 1;
	ssize_t n;
	/* Every resolver thread told first, so that they wind down together. */
	for (unsigned i = 0; i < s->resolvers_running; i++) {
		atomic_store(&s->resolvers[i].stopping, true);
		n = write(s->resolvers[i].stop_fd, &one, sizeof one);
		(void)n;
	}
	for (unsigned i = 0; i < s->resolvers_running; i++)
		pthread_join(s->resolvers[i].thread, NULL);
	for (unsigned i = 0; i < s->workers_running; i++) {
		struct worker *w = s->workers[i];
		/* The wake-up makes the worker send the replies the resolver handed
		 * back on its way out, then leave its loop. */
		atomic_store(&w->stopping, true);
		n = write(w->done.wake_fd, &one, sizeof one);
		(void)n;
	}
	for (unsigned i = 0; i < s->workers_running; i++) {
		struct worker *w = s->workers[i];
		pthread_join(w->thread, NULL);
		worker_on_done(-1, 0, w);
	}
	/* Queries taken after the resolvers left get no answer; free them. */
	for (unsigned i = 0; i < s->resolvers_running; i++) {
		struct server_job *late = job_queue_take_all(&s->resolvers[i].requests);
		while (late != NULL) {
			struct server_job *next = late->next;
			if (late->conn != NULL)
				late->conn->pending--;
			job_free(late);
			late = next;
		}
	}
	uint64_t st[STATS_COUNT], inflight;
	server_get_stats(s, st, &inflight);
	log_info("served %llu queries: %llu cache hits, %llu misses, %llu stale, %llu malformed, %llu refused, "
	         "%llu rate-limited; %llu resolutions, %llu coalesced, %llu timeouts, %llu failures",
	         (unsigned long long)st[STATS_QUERIES], (unsigned long long)st[STATS_CACHE_HITS],
	         (unsigned long long)st[STATS_CACHE_MISSES], (unsigned long long)st[STATS_STALE_SERVED],
	         (unsigned long long)st[STATS_MALFORMED], (unsigned long long)st[STATS_REFUSED],
	         (unsigned long long)st[STATS_RATELIMITED], (unsigned long long)st[STATS_RESOLUTIONS],
	         (unsigned long long)st[STATS_COALESCED], (unsigned long long)st[STATS_TIMEOUTS],
	         (unsigned long long)st[STATS_SERVFAIL]);
}

static void worker_free(struct worker *w)
{
	if (w == NULL)
		return;
	while (w->conns != NULL) {
		struct tcp_conn *c = w->conns;
		c->pending = 0; /* the resolver is gone: nothing comes back */
		tcp_conn_close(c);
	}
	for (unsigned l = 0; l < CONFIG_MAX_LISTEN; l++) {
		if (w->udp_ev[l] != NULL)
			event_free(w->udp_ev[l]);
		if (w->tcp_listener[l] != NULL)
			evconnlistener_free(w->tcp_listener[l]);
	}
	job_queue_destroy(&w->done);
	ratelimit_free(w->ratelimit);
	if (w->recording)
		stats_recorder_free(&w->recorder);
	if (w->reader != NULL)
		cache_reader_free(w->reader);
	if (w->base != NULL)
		event_base_free(w->base);
	free(w);
}

/* Free what resolver_setup made and what the thread left behind. */
static void resolver_free(struct resolver *rs)
{
	if (rs->recurse != NULL)
		recurse_free(rs->recurse);
	if (rs->reader != NULL)
		cache_reader_free(rs->reader);
	while (rs->scheduled != NULL) {
		struct server_job *job = rs->scheduled;
		rs->scheduled = job->next;
		job_free(job);
	}
	for (size_t b = 0; b < SERVER_INFLIGHT_BUCKETS; b++) {
		while (rs->table[b] != NULL) {
			struct inflight *f = rs->table[b];
			rs->table[b] = f->next;
			while (f->waiters != NULL) {
				struct server_job *job = f->waiters;
				f->waiters = job->next;
				job_free(job);
			}
			free(f);
		}
	}
	if (rs->deadline_timer != NULL)
		event_free(rs->deadline_timer);
	if (rs->stop_ev != NULL)
		event_free(rs->stop_ev);
	job_queue_destroy(&rs->requests);
	if (rs->stop_fd >= 0)
		close(rs->stop_fd);
	if (rs->base != NULL)
		event_base_free(rs->base);
}

void server_free(struct server *s)
{
	if (s == NULL)
		return;
	if (s->resolvers != NULL)
		for (unsigned i = 0; i < s->resolver_count; i++)
			resolver_free(&s->resolvers[i]);
	acl_free(s->acl);
	acl_free(s->ratelimit_exempt);
	server_free_retired(s, INT64_MAX);
	policy_free(atomic_load(&s->policy));
	pthread_mutex_destroy(&s->retired_lock);
	if (s->workers != NULL)
		for (unsigned i = 0; i < s->worker_count; i++)
			worker_free(s->workers[i]);
	if (s->udp_fds != NULL)
		for (unsigned w = 0; w < s->worker_count; w++)
			for (unsigned l = 0; l < CONFIG_MAX_LISTEN; l++) {
				if (s->udp_fds[w][l] >= 0)
					close(s->udp_fds[w][l]);
				if (s->tcp_fds[w][l] >= 0)
					close(s->tcp_fds[w][l]);
			}
	for (unsigned i = 0; i < s->config_chain_len; i++)
		config_free(s->config_chain[i]);
	free(s->config_chain);
	free(s->resolvers);
	free(s->udp_fds);
	free(s->tcp_fds);
	free(s->workers);
	free(s);
}
