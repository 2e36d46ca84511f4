/* stats.h -- counters written by one thread each and merged on read.
 *
 * Every worker (and the resolver thread) owns one block, cache-line aligned
 * so that no two writers share a line.  The owner increments with a relaxed
 * load and store, which is a plain add on the hot path; readers in other
 * threads see each counter whole but may see them at slightly different
 * moments, which is fine for statistics.
 */
#ifndef MXR_STATS_H
#define MXR_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum stats_counter {
	STATS_QUERIES = 0,      /* datagrams and TCP frames taken */
	STATS_CACHE_HITS,       /* answered from the cache, fresh */
	STATS_CACHE_MISSES,     /* sent to the resolver thread */
	STATS_MALFORMED,        /* dropped or FORMERR */
	STATS_REFUSED,          /* refused by access control or for what was asked */
	STATS_DROPPED,          /* dropped by access control */
	STATS_RATELIMITED,      /* dropped or slipped by rate limiting */
	STATS_TCP_ACCEPTED,
	STATS_TCP_REJECTED,     /* over the total or per-client connection cap */
	STATS_RESOLUTIONS,      /* libunbound resolutions completed */
	STATS_COALESCED,        /* clients that joined a question already in flight */
	STATS_TIMEOUTS,         /* clients answered SERVFAIL at their deadline */
	STATS_SERVFAIL,         /* resolutions that failed */
	STATS_BOGUS,            /* resolutions that came back bogus */
	STATS_STALE_SERVED,     /* RFC 8767 stale answers sent */
	STATS_PREFETCHES,       /* background refreshes started */
	STATS_OVERLOAD,         /* SERVFAIL at once: pending, per-client or waiter caps */
	STATS_BLOCKED,          /* answered by a filter source */
	STATS_FILTER_CHECKS,    /* questions that went through RHSBL/DNSBL checks */
	STATS_COUNT
};

struct stats_block {
	_Alignas(64) _Atomic uint64_t counter[STATS_COUNT];
};

/* Add one to counter c of block b.  Only b's owner thread may call it. */
static inline void stats_inc(struct stats_block *b, enum stats_counter c)
{
	atomic_store_explicit(&b->counter[c], atomic_load_explicit(&b->counter[c], memory_order_relaxed) + 1,
	                      memory_order_relaxed);
}

/* Sum n blocks into out[STATS_COUNT] (overwritten).  Any thread. */
void stats_merge(struct stats_block *const *blocks, size_t n, uint64_t out[STATS_COUNT]);

/* The snake_case name of counter c ("cache_hits"), for metrics and mxresolvectl. */
const char *stats_name(enum stats_counter c);

#endif
