/* recurse.c -- full recursion and DNSSEC validation through libunbound */
#include "recurse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <unbound.h>
#include <unbound-event.h>

#include "log.h"
#include "wire.h"

struct recurse {
	struct ub_ctx *ctx;
};

/* Carries the caller's callback through libunbound's void pointer. */
struct recurse_call {
	recurse_done_fn *done;
	void *arg;
};

/* Zones libunbound answers locally by default that a private hierarchy (the
 * test-bed, or a lab network) may legitimately serve; they are released only
 * when loopback upstreams are allowed, which is the case that needs it. */
static const char *const recurse_lab_zones[] = { "test.", "invalid.", "home.arpa." };

static int recurse_set(struct ub_ctx *ctx, const char *opt, const char *val, char *err, size_t errlen)
{
	int rc = ub_ctx_set_option(ctx, opt, val);
	if (rc != 0) {
		snprintf(err, errlen, "libunbound option %s %s: %s", opt, val, ub_strerror(rc));
		return -1;
	}
	return 0;
}

/* A zone sent to its own servers.  Stubs have an API call; forward zones
 * only exist in libunbound's config file syntax, so one is written for it. */
static int recurse_add_stub(struct ub_ctx *ctx, const struct recurse_stub *st, char *err, size_t errlen)
{
	if (recurse_set(ctx, "domain-insecure:", st->zone, err, errlen) < 0)
		return -1;
	if (!st->forward) {
		for (unsigned i = 0; i < st->count; i++) {
			int rc = ub_ctx_set_stub(ctx, st->zone, st->addrs[i], 0);
			if (rc != 0) {
				snprintf(err, errlen, "stub zone %s at %s: %s", st->zone, st->addrs[i], ub_strerror(rc));
				return -1;
			}
		}
		return 0;
	}
	char path[] = "/tmp/mxresolved-forward.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0) {
		snprintf(err, errlen, "forward zone %s: cannot write its definition: %s", st->zone, strerror(errno));
		return -1;
	}
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		unlink(path);
		snprintf(err, errlen, "forward zone %s: %s", st->zone, strerror(errno));
		return -1;
	}
	fprintf(f, "forward-zone:\n\tname: \"%s\"\n", st->zone);
	for (unsigned i = 0; i < st->count; i++)
		fprintf(f, "\tforward-addr: %s\n", st->addrs[i]);
	int bad = fclose(f) != 0;
	int rc = bad ? 0 : ub_ctx_config(ctx, path);
	unlink(path);
	if (bad || rc != 0) {
		snprintf(err, errlen, "forward zone %s: %s", st->zone, bad ? strerror(errno) : ub_strerror(rc));
		return -1;
	}
	return 0;
}

struct recurse *recurse_new(struct event_base *base, const struct recurse_options *opt,
                            char *err, size_t errlen)
{
	struct recurse *r = calloc(1, sizeof *r);
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->ctx = ub_ctx_create_event(base);
	if (r->ctx == NULL) {
		snprintf(err, errlen, "cannot create the libunbound context");
		goto fail;
	}
	char num[32];
	snprintf(num, sizeof num, "%u", opt->outgoing_range);
	if (recurse_set(r->ctx, "outgoing-range:", num, err, errlen) < 0)
		goto fail;
	snprintf(num, sizeof num, "%u", opt->max_pending);
	if (recurse_set(r->ctx, "num-queries-per-thread:", num, err, errlen) < 0)
		goto fail;
	/* Answers live in our own cache, so libunbound's message cache only
	 * serves questions asked again while they resolve: the RRset cache,
	 * which holds the delegations every miss walks, gets half the budget. */
	char msg[32], rrset[32];
	snprintf(rrset, sizeof rrset, "%llu", (unsigned long long)(opt->cache_bytes / 2));
	snprintf(msg, sizeof msg, "%llu", (unsigned long long)(opt->cache_bytes / 4));
	if (recurse_set(r->ctx, "msg-cache-size:", msg, err, errlen) < 0 ||
	    recurse_set(r->ctx, "rrset-cache-size:", rrset, err, errlen) < 0 ||
	    recurse_set(r->ctx, "key-cache-size:", msg, err, errlen) < 0)
		goto fail;
	/* Matches our own advertised size, so fragments are avoided both ways. */
	if (recurse_set(r->ctx, "edns-buffer-size:", "1232", err, errlen) < 0)
		goto fail;
	if (opt->root_hints != NULL && recurse_set(r->ctx, "root-hints:", opt->root_hints, err, errlen) < 0)
		goto fail;
	if (opt->query_loopback) {
		if (recurse_set(r->ctx, "do-not-query-localhost:", "no", err, errlen) < 0)
			goto fail;
	}
	if (opt->trust_anchor != NULL) {
		int rc = ub_ctx_add_ta_file(r->ctx, opt->trust_anchor);
		if (rc != 0) {
			snprintf(err, errlen, "trust anchor %s: %s", opt->trust_anchor, ub_strerror(rc));
			goto fail;
		}
	} else if (recurse_set(r->ctx, "module-config:", "iterator", err, errlen) < 0) {
		goto fail;
	}
	for (unsigned i = 0; i < opt->stub_count; i++)
		if (recurse_add_stub(r->ctx, &opt->stubs[i], err, errlen) < 0)
			goto fail;
	/* Last: removing a local zone finalizes the context, and no option can
	 * be set after that. */
	if (opt->query_loopback)
		for (size_t i = 0; i < sizeof recurse_lab_zones / sizeof recurse_lab_zones[0]; i++)
			ub_ctx_zone_remove(r->ctx, recurse_lab_zones[i]);
	return r;
fail:
	if (r->ctx != NULL)
		ub_ctx_delete(r->ctx);
	free(r);
	return NULL;
}

static void recurse_on_result(void *mydata, int rcode, void *packet, int packet_len, int sec,
                              char *why_bogus, int was_ratelimited)
{
	struct recurse_call *call = mydata;
	if (rcode == 0 && packet == NULL)
		rcode = WIRE_RCODE_SERVFAIL;
	if (rcode != 0 || packet_len <= 0)
		call->done(call->arg, rcode != 0 ? rcode : WIRE_RCODE_SERVFAIL, NULL, 0, RECURSE_INSECURE, why_bogus);
	else
		call->done(call->arg, 0, packet, (size_t)packet_len,
		           sec == 2 ? RECURSE_SECURE : sec == 1 ? RECURSE_BOGUS : RECURSE_INSECURE, why_bogus);
	free(call);
}

int recurse_submit(struct recurse *r, const uint8_t *qname, size_t qname_len,
                   uint16_t qtype, uint16_t qclass, recurse_done_fn *done, void *arg)
{
	char name[WIRE_MAX_NAME * 4 + 2];
	if (wire_name_to_text(qname, qname_len, name, sizeof name) == 0)
		return -1;
	struct recurse_call *call = malloc(sizeof *call);
	if (call == NULL)
		return -1;
	call->done = done;
	call->arg = arg;
	int async_id = 0;
	int rc = ub_resolve_event(r->ctx, name, qtype, qclass, call, recurse_on_result, &async_id);
	if (rc != 0) {
		log_warn("cannot start resolving %s: %s", name, ub_strerror(rc));
		free(call);
		return -1;
	}
	return 0;
}

void recurse_free(struct recurse *r)
{
	if (r == NULL)
		return;
	ub_ctx_delete(r->ctx);
	free(r);
}
