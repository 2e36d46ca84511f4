/* server_impl.h -- what server.c (sockets, workers, TCP, life cycle) and
 * server_resolver.c (the resolver threads) share; the server module's
 * insides, never included from outside it.  server.h is its public face. */
#ifndef MXRESOLVED_SERVER_IMPL_H
#define MXRESOLVED_SERVER_IMPL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "cache.h"
#include "cachepolicy.h"
#include "config.h"
#include "policy.h"
#include "recurse.h"
#include "server.h"
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

/* ---- shared by the two halves (defined in server.c) ---- */

/* FNV-1a: every table of the server hashes a few bytes; seed separates uses. */
static inline uint32_t server_hash(const uint8_t *p, size_t len, uint32_t seed)
{
	uint32_t h = 2166136261u ^ seed;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* The in-flight key of q: its name, type and class; returns its length. */
static inline size_t inflight_key(const struct wire_query *q, uint8_t *key)
{
	memcpy(key, q->qname, q->qname_len);
	key[q->qname_len] = (uint8_t)(q->qtype >> 8);
	key[q->qname_len + 1] = (uint8_t)q->qtype;
	key[q->qname_len + 2] = (uint8_t)(q->qclass >> 8);
	key[q->qname_len + 3] = (uint8_t)q->qclass;
	return q->qname_len + 4u;
}

/* A client's address as a key: 4 bytes for IPv4, 16 for IPv6. */
static inline size_t client_addr_key(const struct sockaddr_storage *ss, uint8_t *key)
{
	if (ss->ss_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
		return 16;
	}
	memcpy(key, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	return 4;
}

/* Make jq empty with its eventfd; 0, or -1 when eventfd fails. */
int job_queue_init(struct job_queue *jq);
/* Free jq's event, eventfd and lock; jobs still queued are the caller's. */
void job_queue_destroy(struct job_queue *jq);
/* Append job (the queue owns it now) and wake the consuming loop. */
void job_queue_push(struct job_queue *jq, struct server_job *job);
/* Take every job queued, oldest first; the caller owns the list. */
struct server_job *job_queue_take_all(struct job_queue *jq);
/* Free a job and its reply. */
void job_free(struct server_job *job);
/* Build the reply to q from a found record into out; its length, or 0 if
 * the record cannot serve it (a damaged form). */
size_t server_serve_record(const struct wire_query *q, const struct cache_record *rec, int64_t now, size_t limit,
                           uint8_t *out, size_t cap);
/* Free the policies replaced before cutoff; INT64_MAX frees all. */
void server_free_retired(struct server *s, int64_t cutoff);

/* ---- the resolver threads (defined in server_resolver.c) ---- */

/* Set up resolver thread index of s: its loop, libunbound context, cache
 * reader and events.  0, or -1 with err filled; resolver_free undoes it. */
int resolver_setup(struct server *s, unsigned index, const struct recurse_options *ro, char *err, size_t errlen);
/* The thread body: runs rs's loop until the stop event breaks it. */
void *resolver_main(void *arg);
/* Free what resolver_setup made and what the thread left behind. */
void resolver_free(struct resolver *rs);
/* Questions in flight in every resolver thread. */
unsigned server_inflight(struct server *s);

#endif
