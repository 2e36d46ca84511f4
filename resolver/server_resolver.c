/* server_resolver.c -- the server's resolver threads
 *
 * Each owns a libunbound context, an in-flight table that coalesces
 * identical questions, and the RHSBL/DNSBL checks of the questions it
 * holds.  Workers queue the questions they cannot answer from the cache;
 * a thread resolves them, stores the answer, and queues the finished reply
 * back to the worker that took the query.  Nothing here runs on the hit
 * path.
 */
#include "server_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "dnsbl.h"
#include "log.h"

static int64_t server_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
unsigned server_inflight(struct server *s)
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

void *resolver_main(void *arg)
{
	struct resolver *rs = arg;
	event_base_dispatch(rs->base);
	return NULL;
}

/* Resolver thread index's loop, libunbound context, cache reader and events. */
int resolver_setup(struct server *s, unsigned index, const struct recurse_options *ro, char *err, size_t errlen)
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

/* Free what resolver_setup made and what the thread left behind. */
void resolver_free(struct resolver *rs)
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

