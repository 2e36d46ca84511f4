/* stats.c -- counters written by one thread each and merged on read */
#include "stats.h"

static const char *const stats_names[STATS_COUNT] = {
	[STATS_QUERIES] = "queries",
	[STATS_CACHE_HITS] = "cache_hits",
	[STATS_CACHE_MISSES] = "cache_misses",
	[STATS_MALFORMED] = "malformed",
	[STATS_REFUSED] = "refused",
	[STATS_DROPPED] = "dropped",
	[STATS_RATELIMITED] = "ratelimited",
	[STATS_TCP_ACCEPTED] = "tcp_accepted",
	[STATS_TCP_REJECTED] = "tcp_rejected",
	[STATS_RESOLUTIONS] = "resolutions",
	[STATS_COALESCED] = "coalesced",
	[STATS_TIMEOUTS] = "client_timeouts",
	[STATS_SERVFAIL] = "resolution_failures",
	[STATS_BOGUS] = "bogus",
	[STATS_STALE_SERVED] = "stale_served",
	[STATS_PREFETCHES] = "prefetches",
	[STATS_OVERLOAD] = "overload",
	[STATS_BLOCKED] = "blocked",
	[STATS_FILTER_CHECKS] = "filter_checks",
};

void stats_merge(struct stats_block *const *blocks, size_t n, uint64_t out[STATS_COUNT])
{
	for (size_t c = 0; c < STATS_COUNT; c++)
		out[c] = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t c = 0; c < STATS_COUNT; c++)
			out[c] += atomic_load_explicit(&blocks[i]->counter[c], memory_order_relaxed);
}

const char *stats_name(enum stats_counter c)
{
	return c < STATS_COUNT ? stats_names[c] : "unknown";
}
