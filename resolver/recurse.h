/* recurse.h -- full recursion and DNSSEC validation through libunbound.
 *
 * One context per event loop, created on that loop with
 * ub_ctx_create_event(); every call here must come from the thread that runs
 * the loop.  Only this module includes <unbound.h>.
 */
#ifndef MXR_RECURSE_H
#define MXR_RECURSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

enum recurse_security {
	RECURSE_INSECURE = 0,
	RECURSE_BOGUS = 1,
	RECURSE_SECURE = 2,
};

/* Servers to ask directly for one zone (a local rbldnsd mirror of a DNSBL,
 * a paid data feed): authorities (stub) or recursive resolvers (forward).
 * Such zones are treated as unsigned. */
struct recurse_stub {
	const char *zone;           /* presentation form */
	const char *addrs[4];       /* "192.0.2.1@53" */
	unsigned count;
	bool forward;
};

struct recurse_options {
	const char *root_hints;     /* root hints file */
	const char *trust_anchor;   /* trust anchor file (DS or DNSKEY in zone format); NULL = no validation */
	bool query_loopback;        /* allow upstream servers on 127.0.0.0/8 and ::1 (the test-bed) */
	unsigned outgoing_range;    /* sockets for outgoing queries */
	unsigned max_pending;       /* queries libunbound works on at once */
	uint64_t cache_bytes;       /* libunbound's caches together: RRsets 1/2, messages and keys 1/4 each */
	const struct recurse_stub *stubs;
	unsigned stub_count;
};

/* Called once per submitted query, on the loop's thread.  On success rcode
 * is 0 and pkt/len is the full answer message (owned by libunbound, valid
 * during the call only); otherwise rcode is a DNS rcode (mostly SERVFAIL)
 * and pkt is NULL.  why_bogus may be NULL. */
typedef void recurse_done_fn(void *arg, int rcode, const uint8_t *pkt, size_t len,
                             enum recurse_security sec, const char *why_bogus);

struct recurse;

/* Create a context on base with opt (strings are copied by libunbound).
 * Returns NULL with a message in err (errlen bytes) on failure. */
struct recurse *recurse_new(struct event_base *base, const struct recurse_options *opt,
                            char *err, size_t errlen);

/* Start resolving (qname in wire form, qtype, qclass).  done(arg, ...) is
 * called exactly once, possibly before this returns.  Returns 0, or -1 if
 * the query could not be started (done is then not called). */
int recurse_submit(struct recurse *r, const uint8_t *qname, size_t qname_len,
                   uint16_t qtype, uint16_t qclass, recurse_done_fn *done, void *arg);

/* Delete the context: queries still pending complete with SERVFAIL and a
 * NULL packet before this returns.  Accepts NULL. */
void recurse_free(struct recurse *r);

#endif
