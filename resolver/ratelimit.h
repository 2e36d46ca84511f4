/* ratelimit.h -- response rate limiting per client prefix, against floods and
 * reflection.
 *
 * One table per worker thread (never shared, so no locks); a token bucket per
 * client prefix (/24 for IPv4, /56 for IPv6 by default) in a fixed-size hash
 * table allocated once, so a flood of spoofed sources costs no memory.
 */
#ifndef MXR_RATELIMIT_H
#define MXR_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum ratelimit_verdict {
	RATELIMIT_PASS = 0, /* answer normally */
	RATELIMIT_SLIP,     /* over the limit: answer with an empty TC=1 reply (a real client retries over TCP) */
	RATELIMIT_DROP,     /* over the limit: no answer */
};

struct ratelimit_options {
	unsigned qps;         /* answers per second per prefix; 0 disables limiting */
	unsigned burst;       /* bucket depth in answers; 0 means qps */
	unsigned slip;        /* every Nth limited answer slips (TC=1); 0 = never, 1 = always */
	unsigned v4_prefix;   /* 8..32 */
	unsigned v6_prefix;   /* 16..128 */
	size_t table_size;    /* buckets tracked at once (rounded up to a power of two) */
};

struct ratelimit;

/* Create a table.  Returns NULL on memory exhaustion or bad options. */
struct ratelimit *ratelimit_new(const struct ratelimit_options *opt);

/* Account one answer to client at now_ms (CLOCK_MONOTONIC milliseconds) and
 * say what to do with it.  Never allocates. */
enum ratelimit_verdict ratelimit_check(struct ratelimit *rl, const struct sockaddr *client, int64_t now_ms);

/* Counters since creation. */
uint64_t ratelimit_limited(const struct ratelimit *rl);

/* Free the table.  Accepts NULL. */
void ratelimit_free(struct ratelimit *rl);

#endif
