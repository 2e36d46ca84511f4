/* server.c -- sockets, workers, TCP connections and the server's life cycle
 *
 * Workers own their sockets and event loops and answer cache hits alone:
 * parse, one LMDB get in the worker's own read transaction, serve the stored
 * form into the reply buffer, and send the batch.  A miss becomes a job that
 * travels to one of the resolver threads (server_resolver.c), chosen by a
 * hash of the question, and comes back as a finished reply.  Threads meet
 * only in the job queues, each a list under its own mutex plus an eventfd
 * wake-up, and in a few atomic counters and the MX-target table; the hit
 * path touches none of them.
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

#include "server_impl.h"

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

/* ---- job queues ---------------------------------------------------- */

int job_queue_init(struct job_queue *jq)
{
	jq->head = jq->tail = NULL;
	jq->wake_ev = NULL;
	jq->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (jq->wake_fd < 0)
		return -1;
	pthread_mutex_init(&jq->lock, NULL);
	return 0;
}

void job_queue_destroy(struct job_queue *jq)
{
	if (jq->wake_ev != NULL)
		event_free(jq->wake_ev);
	if (jq->wake_fd >= 0) {
		close(jq->wake_fd);
		pthread_mutex_destroy(&jq->lock);
	}
	jq->wake_fd = -1;
}

void job_queue_push(struct job_queue *jq, struct server_job *job)
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

struct server_job *job_queue_take_all(struct job_queue *jq)
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

void job_free(struct server_job *job)
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
size_t server_serve_record(const struct wire_query *q, const struct cache_record *rec,
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

/* Free the policies replaced before cutoff: every check that could use
 * one has long finished.  cutoff INT64_MAX frees all (shutdown). */
void server_free_retired(struct server *s, int64_t cutoff)
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
