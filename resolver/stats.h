/* stats.h -- what the workers count and remember, written by one thread
 * each and merged on read.
 *
 * Every worker (and the resolver thread) owns one counter block and every
 * worker one recorder, cache-line aligned so that no two writers share a
 * line.  The owner writes without locks: counters and histogram buckets
 * with a relaxed load and store (a plain add on x86), top-k slots and
 * query-log entries under a per-slot sequence number (odd while being
 * written) that readers check before and after copying, retrying or
 * skipping a slot that changed under them.  Readers (the web and control
 * threads) never block a writer, so a slow browser cannot slow DNS.
 *
 * Nothing here allocates after init; nothing depends on another module.
 */
#ifndef MXR_STATS_H
#define MXR_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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

/* ---- latency histograms ---------------------------------------------
 *
 * Fixed buckets, five per decade from 10 µs to 10 s, the same for every
 * histogram so that they merge by adding and map one to one onto
 * Prometheus "le" buckets.  Bucket i counts latencies <= bound[i] (and >
 * bound[i-1]); the last bucket counts everything above the last bound. */

#define STATS_HIST_BOUNDS 31
#define STATS_HIST_BUCKETS (STATS_HIST_BOUNDS + 1)

/* Upper bounds in microseconds, ascending: 10, 15, 25, 40, 60, 100, ... 10000000. */
extern const uint32_t stats_hist_bounds_us[STATS_HIST_BOUNDS];

struct stats_hist {
	_Atomic uint64_t bucket[STATS_HIST_BUCKETS];
	_Atomic uint64_t sum_us;
};

/* A merged, plain copy, for arithmetic on the reading side. */
struct stats_hist_snapshot {
	uint64_t bucket[STATS_HIST_BUCKETS];
	uint64_t count;         /* sum of the buckets */
	uint64_t sum_us;
};

/* Count one latency of us microseconds.  Only h's owner thread. */
void stats_hist_add(struct stats_hist *h, uint32_t us);

/* Add h into *out (which the caller zeroes first to merge several).  Any thread. */
void stats_hist_accumulate(const struct stats_hist *h, struct stats_hist_snapshot *out);

/* out = now - before, bucket by bucket (what happened between two
 * snapshots); a bucket that went down (never, barring a restart) gives 0. */
void stats_hist_diff(const struct stats_hist_snapshot *now, const struct stats_hist_snapshot *before,
                     struct stats_hist_snapshot *out);

/* The q-quantile (0 < q < 1) in microseconds, interpolated linearly
 * inside its bucket (the bucket above the last bound reports that bound);
 * 0 when the snapshot is empty. */
double stats_hist_quantile(const struct stats_hist_snapshot *s, double q);

/* ---- top-k ---------------------------------------------------------
 *
 * A bounded-memory heavy-hitter sketch: Space-Saving on a set-associative
 * table (a key hashes to one set of STATS_TOPK_WAYS slots; a key not there
 * takes an empty slot, or replaces the set's smallest count and inherits
 * it plus one, so a count overestimates by at most the inherited part,
 * kept in err).  Memory is fixed; a flood of one-off names costs one set
 * scan each and never pushes out a heavy hitter of another set. */

#define STATS_TOPK_WAYS 8
#define STATS_TOPK_SETS 128
#define STATS_TOPK_SLOTS (STATS_TOPK_WAYS * STATS_TOPK_SETS)
#define STATS_TOPK_KEY_MAX 255
#define STATS_TOPK_EXTRA 4

enum stats_topk_kind {
	STATS_TOP_NAMES = 0,    /* key: query name, canonical wire form */
	STATS_TOP_BLOCKED,      /* key: blocked query name, wire form */
	STATS_TOP_CLIENTS,      /* key: stats_client_key() bytes */
	STATS_TOP_COUNT
};

/* For STATS_TOP_CLIENTS, the extra counters each entry keeps. */
enum stats_client_extra {
	STATS_CLIENT_BLOCKED = 0,
	STATS_CLIENT_CACHED,
	STATS_CLIENT_NXDOMAIN,
	STATS_CLIENT_SERVFAIL
};

struct stats_topk_slot {
	_Atomic uint32_t seq;   /* odd while the owner writes the slot */
	uint8_t key_len;        /* 0 = empty */
	uint64_t hash;
	uint64_t count;
	uint64_t err;           /* how much of count was inherited */
	uint64_t extra[STATS_TOPK_EXTRA]; /* counted since the key took the slot */
	uint8_t key[STATS_TOPK_KEY_MAX];
};

struct stats_topk {
	struct stats_topk_slot slot[STATS_TOPK_SLOTS];
};

/* An entry of a merged top list, a plain copy. */
struct stats_top_entry {
	uint8_t key_len;
	uint8_t key[STATS_TOPK_KEY_MAX];
	uint64_t count, err;
	uint64_t extra[STATS_TOPK_EXTRA];
};

/* Count one occurrence of key (1..STATS_TOPK_KEY_MAX bytes; longer keys
 * are cut), adding 1 to extra[i] for every bit i set in extra_bits.  Only
 * t's owner thread. */
void stats_topk_add(struct stats_topk *t, const uint8_t *key, size_t key_len, unsigned extra_bits);

/* Merge n sketches (the same key's counts added across them) and write the
 * max largest counts, largest first, to out.  Returns how many.  Any thread. */
size_t stats_topk_merge(const struct stats_topk *const *t, size_t n, struct stats_top_entry *out, size_t max);

/* Find key in the n sketches and sum its counts into *out.  Returns true
 * if any sketch holds it.  Any thread. */
bool stats_topk_find(const struct stats_topk *const *t, size_t n, const uint8_t *key, size_t key_len,
                     struct stats_top_entry *out);

/* The key for a client address: 1 byte family (4 or 6) then 4 or 16
 * address bytes; with anonymize, an IPv4 address keeps its /24 and an IPv6
 * address its /48, the rest zero.  Returns the length (0 for another
 * family).  out holds at least 17 bytes. */
size_t stats_client_key(const struct sockaddr *sa, bool anonymize, uint8_t *out);

/* ---- query log -----------------------------------------------------
 *
 * A ring of the most recent answered queries per worker.  The owner
 * overwrites the oldest entry; a reader copies entries newest first and
 * skips those overwritten while it copied. */

enum stats_qlog_flag {
	STATS_QLOG_CACHED = 1 << 0,    /* fresh from the cache */
	STATS_QLOG_STALE = 1 << 1,     /* an RFC 8767 stale answer */
	STATS_QLOG_BLOCKED = 1 << 2,   /* answered by a filter source */
	STATS_QLOG_TCP = 1 << 3,
	STATS_QLOG_SECURE = 1 << 4,    /* AD set in the reply */
	STATS_QLOG_RECURSED = 1 << 5   /* went to the resolver thread */
};

struct stats_qlog_entry {
	int64_t time_ms;        /* wall clock, milliseconds since the epoch */
	uint32_t latency_us;
	uint16_t qtype;
	uint8_t rcode;
	uint8_t flags;          /* enum stats_qlog_flag */
	uint8_t source;         /* filter source index + 1; 0 = none */
	uint8_t client_len;     /* stats_client_key() bytes in client */
	uint8_t client[17];
	uint8_t qname_len;      /* wire form, canonical; only qname_len bytes are meaningful */
	uint8_t qname[255];
};

struct stats_qlog_slot {
	_Atomic uint64_t seq;   /* odd while being written */
	struct stats_qlog_entry e;
};

struct stats_qlog {
	uint32_t mask;          /* size - 1; size a power of two, 0 = disabled */
	_Atomic uint64_t head;  /* entries ever written */
	struct stats_qlog_slot *slot;
};

/* Allocate a ring of size entries (rounded up to a power of two; 0 =
 * disabled, every add a no-op).  Returns 0, or -1 when out of memory. */
int stats_qlog_init(struct stats_qlog *q, uint32_t size);
void stats_qlog_free(struct stats_qlog *q);

/* Append e (copied, qname only up to qname_len).  Only q's owner thread. */
void stats_qlog_add(struct stats_qlog *q, const struct stats_qlog_entry *e);

/* Copy up to max entries, newest first, to out.  Returns how many.  Any thread. */
size_t stats_qlog_read(const struct stats_qlog *q, struct stats_qlog_entry *out, size_t max);

/* ---- one worker's recorder -----------------------------------------
 *
 * Everything a worker remembers of the queries it answers, fed by one call
 * per answer. */

enum stats_latency { STATS_LAT_HIT = 0, STATS_LAT_RECURSION, STATS_LAT_COUNT };

#define STATS_RCODES 16         /* the header's four bits */

struct stats_recorder {
	struct stats_hist latency[STATS_LAT_COUNT];
	_Atomic uint64_t answers[STATS_RCODES]; /* answers sent, by rcode */
	struct stats_topk *top[STATS_TOP_COUNT];
	struct stats_qlog qlog;
	bool anonymize;
};

/* What one answered query was. */
struct stats_event {
	int64_t time_ms;        /* wall clock */
	uint32_t latency_us;
	const struct sockaddr *client;
	const uint8_t *qname;   /* canonical wire form */
	size_t qname_len;
	uint16_t qtype;
	uint8_t rcode;
	uint8_t flags;          /* enum stats_qlog_flag */
	uint8_t source;         /* filter source index + 1; 0 = none */
};

/* Allocate r's sketches and a query log of qlog_size entries (0 = none).
 * Returns 0, or -1 when out of memory (r then needs no free). */
int stats_recorder_init(struct stats_recorder *r, uint32_t qlog_size, bool anonymize);
void stats_recorder_free(struct stats_recorder *r);

/* Sum the answers[] of n recorders into out[STATS_RCODES] (overwritten).  Any thread. */
void stats_answers_merge(const struct stats_recorder *const *r, size_t n, uint64_t out[STATS_RCODES]);

/* Record ev: its rcode into answers[], latency into the hit histogram (CACHED) or the recursion
 * histogram (RECURSED, not CACHED), the name into the top names (and top
 * blocked when BLOCKED), the client into the top clients with its extra
 * counters, and the entry into the query log.  Only r's owner thread. */
void stats_record(struct stats_recorder *r, const struct stats_event *ev);

/* ---- time series ---------------------------------------------------
 *
 * A ring of points a fixed step apart, written and read by whoever owns
 * it (the web thread, under its own lock): not for the query path. */

struct stats_point {
	int64_t t;              /* wall-clock seconds at the end of the step */
	float qps, hit_ratio, blocked_ps, servfail_ps, stale_ps;
	float hit_p50_ms, hit_p95_ms, hit_p99_ms;
	float recursion_p50_ms, recursion_p95_ms, recursion_p99_ms;
};

struct stats_series {
	uint32_t step_s;        /* seconds between points */
	uint32_t cap;
	uint32_t head;          /* next slot to write */
	uint32_t count;
	struct stats_point *pt;
};

/* Allocate room for cap points step_s seconds apart.  Returns 0 or -1. */
int stats_series_init(struct stats_series *s, uint32_t step_s, uint32_t cap);
void stats_series_free(struct stats_series *s);

/* Append p, dropping the oldest point when full. */
void stats_series_push(struct stats_series *s, const struct stats_point *p);

/* Copy the points, oldest first, to out (room for s->cap).  Returns how many. */
size_t stats_series_get(const struct stats_series *s, struct stats_point *out);

/* Serialise the points into a malloc'd buffer (versioned, with the step;
 * floats little-endian) for saving; returns its length in *len, or NULL. */
uint8_t *stats_series_save(const struct stats_series *s, size_t *len);

/* Replace s's points with those in buf (from stats_series_save), keeping
 * only points newer than now - cap * step_s.  A buffer of another version,
 * step, or length is rejected whole.  Returns the points loaded, or -1. */
int stats_series_load(struct stats_series *s, const uint8_t *buf, size_t len, int64_t now);

#endif
