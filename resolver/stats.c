/* stats.c -- counters, latency histograms, top-k sketches, query-log rings
 * and time series, each written by one thread and merged on read (the
 * protocol is described in stats.h). */
#include "stats.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

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

/* Copy a name-sized run of bytes (at most 255) in 8-byte words, the last
 * word overlapping the one before.  gcc turns a memcpy of a variable but
 * bounded length into "rep movsq", whose start-up cost is a tenth of
 * stats_record; this is a handful of moves for a typical name. */
static inline void stats_copy_name(uint8_t *restrict dst, const uint8_t *restrict src, size_t len)
{
	if (len >= 8) {
		uint64_t w;
		for (size_t i = 0; i + 8 < len; i += 8) {
			memcpy(&w, src + i, 8);
			memcpy(dst + i, &w, 8);
		}
		memcpy(&w, src + len - 8, 8);
		memcpy(dst + len - 8, &w, 8);
	} else if (len >= 4) {
		uint32_t head, tail;
		memcpy(&head, src, 4);
		memcpy(&tail, src + len - 4, 4);
		memcpy(dst, &head, 4);
		memcpy(dst + len - 4, &tail, 4);
	} else {
		for (size_t i = 0; i < len; i++)
			dst[i] = src[i];
	}
}

/* ================================================================== */
/* Latency histograms */

#define STATS_HIST_BOUND_LIST                                \
	10,      15,      25,      40,      60,              \
	100,     150,     250,     400,     600,             \
	1000,    1500,    2500,    4000,    6000,            \
	10000,   15000,   25000,   40000,   60000,           \
	100000,  150000,  250000,  400000,  600000,          \
	1000000, 1500000, 2500000, 4000000, 6000000,         \
	10000000

const uint32_t stats_hist_bounds_us[STATS_HIST_BOUNDS] = {STATS_HIST_BOUND_LIST};

/* The same bounds with two sentinels above, so that the look-ups below
 * never leave the table, even past the last bound. */
static const uint32_t stats_hist_bounds_padded[STATS_HIST_BOUNDS + 2] = {STATS_HIST_BOUND_LIST, UINT32_MAX,
                                                                          UINT32_MAX};

/* For latencies of bit length n (2^(n-1) <= us < 2^n), how many bounds lie
 * below 2^(n-1).  Consecutive bounds are at least 1.5 apart, so an octave
 * holds at most two of them. */
static const uint8_t stats_hist_below_octave[33] = {
	0,  0,  0,  0,  0,  2,  3,  5,  6,  8,  9,  11, 12, 14, 15, 17, 18,
	20, 21, 23, 24, 26, 27, 29, 30, 31, 31, 31, 31, 31, 31, 31, 31,
};

/* The number of bounds below us, which is the index of its bucket: the
 * octave's count, plus its at most two bounds compared without branches.
 * Latencies are noisy: a binary search mispredicts its way to about 15 ns
 * a call, this takes under 2 (tests/bench/bench_stats.c). */
static inline unsigned stats_hist_index(uint32_t us)
{
	unsigned octave = 32 - (unsigned)__builtin_clz(us | 1);
	unsigned i = stats_hist_below_octave[octave];
	return i + (stats_hist_bounds_padded[i] < us) + (stats_hist_bounds_padded[i + 1] < us);
}

static inline void stats_relaxed_add(_Atomic uint64_t *v, uint64_t n)
{
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n, memory_order_relaxed);
}

void stats_hist_add(struct stats_hist *h, uint32_t us)
{
	stats_relaxed_add(&h->bucket[stats_hist_index(us)], 1);
	stats_relaxed_add(&h->sum_us, us);
}

void stats_hist_accumulate(const struct stats_hist *h, struct stats_hist_snapshot *out)
{
	for (size_t i = 0; i < STATS_HIST_BUCKETS; i++) {
		uint64_t v = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		out->bucket[i] += v;
		out->count += v;
	}
	out->sum_us += atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

void stats_hist_diff(const struct stats_hist_snapshot *now, const struct stats_hist_snapshot *before,
                     struct stats_hist_snapshot *out)
{
	uint64_t count = 0;

	for (size_t i = 0; i < STATS_HIST_BUCKETS; i++) {
		out->bucket[i] = now->bucket[i] > before->bucket[i] ? now->bucket[i] - before->bucket[i] : 0;
		count += out->bucket[i];
	}
	out->count = count;
	out->sum_us = now->sum_us > before->sum_us ? now->sum_us - before->sum_us : 0;
}

double stats_hist_quantile(const struct stats_hist_snapshot *s, double q)
{
	/* Summed here rather than taken from s->count, so that a snapshot
	 * built by hand cannot point the walk past the last bucket. */
	uint64_t total = 0;
	for (size_t i = 0; i < STATS_HIST_BUCKETS; i++)
		total += s->bucket[i];
	if (total == 0)
		return 0;
	if (!(q > 0))
		q = 0;
	if (q > 1)
		q = 1;

	double rank = q * (double)total;
	uint64_t below = 0;
	for (size_t i = 0; i < STATS_HIST_BOUNDS; i++) {
		uint64_t in = s->bucket[i];
		if (in == 0 || (double)(below + in) < rank) {
			below += in;
			continue;
		}
		double lower = i == 0 ? 0 : stats_hist_bounds_us[i - 1];
		double upper = stats_hist_bounds_us[i];
		return lower + (upper - lower) * ((rank - (double)below) / (double)in);
	}
	/* Nothing is known above the last bound but that it was exceeded. */
	return stats_hist_bounds_us[STATS_HIST_BOUNDS - 1];
}

/* ================================================================== */
/* Top-k */

/* A per-process random seed: names come from the network, and with a
 * public hash anyone could pick names that all land in the set of the name
 * they want to hide from the top list.  Every sketch of the process uses
 * the same seed, so a key lands in the same set of each and merging stays
 * set by set. */
static _Atomic uint64_t stats_topk_seed;

static uint64_t stats_topk_seed_slow(void)
{
	uint64_t fresh = 0;
	if (getrandom(&fresh, sizeof(fresh), GRND_NONBLOCK) != (ssize_t)sizeof(fresh)) {
		/* Early boot or an old kernel: a weaker seed still spreads keys. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		fresh = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)ts.tv_sec ^
		        (uint64_t)(uintptr_t)&fresh ^ (uint64_t)getpid() << 32;
	}
	fresh |= 1; /* 0 means "not drawn yet" */
	uint64_t expected = 0;
	/* Two threads may draw at once; the first to publish wins for both. */
	if (!atomic_compare_exchange_strong_explicit(&stats_topk_seed, &expected, fresh, memory_order_relaxed,
	                                             memory_order_relaxed))
		return expected;
	return fresh;
}

static inline uint64_t stats_topk_seed_get(void)
{
	uint64_t seed = atomic_load_explicit(&stats_topk_seed, memory_order_relaxed);
	return seed != 0 ? seed : stats_topk_seed_slow();
}

static inline uint64_t stats_rotl64(uint64_t x, unsigned r)
{
	return (x << r) | (x >> (64 - r));
}

#define STATS_MUL_A 0x9E3779B97F4A7C15ULL /* 2^64 / golden ratio, odd */
#define STATS_MUL_B 0xD6E8FEB86659FD93ULL /* odd, dense in bits */

/* Eight bytes at a time, each word multiplied before it is folded in so
 * that its high bits reach the low bits the set index is taken from; the
 * final avalanche spreads the last word over the whole result. */
static uint64_t stats_topk_hash(const uint8_t *key, size_t len)
{
	uint64_t h = stats_topk_seed_get() ^ ((uint64_t)len * STATS_MUL_A);

	for (; len >= 8; key += 8, len -= 8) {
		uint64_t w;
		memcpy(&w, key, 8);
		h = stats_rotl64(h ^ (w * STATS_MUL_B), 29) * STATS_MUL_A;
	}
	uint64_t tail = 0;
	for (size_t i = 0; i < len; i++)
		tail |= (uint64_t)key[i] << (8 * i);
	h = stats_rotl64(h ^ (tail * STATS_MUL_B), 29) * STATS_MUL_A;

	h ^= h >> 32;
	h *= STATS_MUL_B;
	h ^= h >> 29;
	return h;
}

/* The owner's side of a slot's sequence number.  The release fence keeps
 * the field stores below from becoming visible before the odd number;
 * the releasing store of the even number keeps them from trailing it. */
static inline void stats_topk_write_begin(struct stats_topk_slot *sl)
{
	uint32_t seq = atomic_load_explicit(&sl->seq, memory_order_relaxed);
	atomic_store_explicit(&sl->seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static inline void stats_topk_write_end(struct stats_topk_slot *sl)
{
	uint32_t seq = atomic_load_explicit(&sl->seq, memory_order_relaxed);
	atomic_store_explicit(&sl->seq, seq + 1, memory_order_release);
}

static inline void stats_topk_count_extra(uint64_t extra[STATS_TOPK_EXTRA], unsigned bits)
{
	for (unsigned i = 0; i < STATS_TOPK_EXTRA; i++)
		extra[i] += (bits >> i) & 1u;
}

static inline struct stats_topk_slot *stats_topk_set(struct stats_topk *t, uint64_t hash)
{
	return &t->slot[(hash % STATS_TOPK_SETS) * STATS_TOPK_WAYS];
}

static void stats_topk_add_hashed(struct stats_topk *t, const uint8_t *key, size_t key_len, uint64_t hash,
                                  unsigned extra_bits)
{
	struct stats_topk_slot *set = stats_topk_set(t, hash);
	struct stats_topk_slot *victim = NULL;

	for (unsigned w = 0; w < STATS_TOPK_WAYS; w++) {
		struct stats_topk_slot *sl = &set[w];
		/* Slots fill in order and are never emptied, so the first empty
		 * one ends the search: the key is in none of the later ones. */
		if (sl->key_len == 0) {
			victim = sl;
			break;
		}
		if (sl->hash == hash && sl->key_len == key_len && memcmp(sl->key, key, key_len) == 0) {
			stats_topk_write_begin(sl);
			sl->count++;
			stats_topk_count_extra(sl->extra, extra_bits);
			stats_topk_write_end(sl);
			return;
		}
		if (victim == NULL || sl->count < victim->count)
			victim = sl;
	}

	uint64_t inherited = victim->key_len != 0 ? victim->count : 0;
	stats_topk_write_begin(victim);
	victim->key_len = (uint8_t)key_len;
	victim->hash = hash;
	victim->count = inherited + 1;
	victim->err = inherited;
	/* The extras are not inherited: they describe this key only, so they
	 * are exact from the moment it took the slot. */
	memset(victim->extra, 0, sizeof(victim->extra));
	stats_topk_count_extra(victim->extra, extra_bits);
	stats_copy_name(victim->key, key, key_len);
	stats_topk_write_end(victim);
}

void stats_topk_add(struct stats_topk *t, const uint8_t *key, size_t key_len, unsigned extra_bits)
{
	if (key_len == 0)
		return;
	if (key_len > STATS_TOPK_KEY_MAX)
		key_len = STATS_TOPK_KEY_MAX;
	stats_topk_add_hashed(t, key, key_len, stats_topk_hash(key, key_len), extra_bits);
}

/* A writer holds a slot odd for a few stores; a reader that keeps
 * finding it changed gives up on it rather than spin behind the owner. */
#define STATS_TOPK_READ_TRIES 16

/* Copy a slot the owner may be rewriting.  Returns false for an empty slot
 * or one that never held still.  Only key_len bytes of the key are copied;
 * a key_len read mid-write is at most 255, so the copy stays in bounds
 * whatever it reads, and the sequence check then throws it away. */
static bool stats_topk_slot_copy(const struct stats_topk_slot *sl, struct stats_top_entry *e, uint64_t *hash)
{
	for (unsigned attempt = 0; attempt < STATS_TOPK_READ_TRIES; attempt++) {
		uint32_t seq = atomic_load_explicit(&sl->seq, memory_order_acquire);
		if (seq & 1)
			continue;
		uint8_t len = sl->key_len;
		e->key_len = len;
		*hash = sl->hash;
		e->count = sl->count;
		e->err = sl->err;
		memcpy(e->extra, sl->extra, sizeof(e->extra));
		memcpy(e->key, sl->key, len);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&sl->seq, memory_order_relaxed) == seq)
			return len != 0;
	}
	return false;
}

static void stats_top_entry_add(struct stats_top_entry *into, const struct stats_top_entry *e)
{
	into->count += e->count;
	into->err += e->err;
	for (unsigned i = 0; i < STATS_TOPK_EXTRA; i++)
		into->extra[i] += e->extra[i];
}

/* Order of the merged list: larger counts first, then the smaller error
 * (the better-established key), then the key bytes, so that equal counts
 * come out the same way on every read. */
static bool stats_top_entry_before(const struct stats_top_entry *a, const struct stats_top_entry *b)
{
	if (a->count != b->count)
		return a->count > b->count;
	if (a->err != b->err)
		return a->err < b->err;
	size_t common = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = memcmp(a->key, b->key, common);
	if (c != 0)
		return c < 0;
	return a->key_len < b->key_len;
}

static void stats_top_entry_swap(struct stats_top_entry *a, struct stats_top_entry *b)
{
	struct stats_top_entry tmp = *a;
	*a = *b;
	*b = tmp;
}

/* out[0..n) as a heap with the entry that sorts last at the root: the one
 * a better candidate replaces when the list is full. */
static void stats_top_heap_down(struct stats_top_entry *heap, size_t n, size_t i)
{
	for (;;) {
		size_t worst = i, l = 2 * i + 1, r = l + 1;
		if (l < n && stats_top_entry_before(&heap[worst], &heap[l]))
			worst = l;
		if (r < n && stats_top_entry_before(&heap[worst], &heap[r]))
			worst = r;
		if (worst == i)
			return;
		stats_top_entry_swap(&heap[i], &heap[worst]);
		i = worst;
	}
}

static void stats_top_heap_offer(struct stats_top_entry *heap, size_t *n, size_t max,
                                 const struct stats_top_entry *e)
{
	if (*n < max) {
		size_t i = (*n)++;
		heap[i] = *e;
		while (i > 0) {
			size_t parent = (i - 1) / 2;
			if (!stats_top_entry_before(&heap[parent], &heap[i]))
				break;
			stats_top_entry_swap(&heap[parent], &heap[i]);
			i = parent;
		}
	} else if (stats_top_entry_before(e, &heap[0])) {
		heap[0] = *e;
		stats_top_heap_down(heap, *n, 0);
	}
}

struct stats_topk_candidate {
	uint64_t hash;
	struct stats_top_entry e;
};

size_t stats_topk_merge(const struct stats_topk *const *t, size_t n, struct stats_top_entry *out, size_t max)
{
	if (n == 0 || max == 0)
		return 0;
	if (n > SIZE_MAX / STATS_TOPK_WAYS / sizeof(struct stats_topk_candidate))
		return 0;
	/* One set's worth across all sketches: a key is in the same set of
	 * each, so equal keys always meet within one set. */
	struct stats_topk_candidate *cand = malloc(n * STATS_TOPK_WAYS * sizeof(*cand));
	if (cand == NULL)
		return 0;

	size_t have = 0;
	for (size_t set = 0; set < STATS_TOPK_SETS; set++) {
		size_t ncand = 0;
		for (size_t i = 0; i < n; i++) {
			const struct stats_topk_slot *ways = &t[i]->slot[set * STATS_TOPK_WAYS];
			for (unsigned w = 0; w < STATS_TOPK_WAYS; w++) {
				struct stats_topk_candidate *c = &cand[ncand];
				if (!stats_topk_slot_copy(&ways[w], &c->e, &c->hash))
					continue;
				size_t j = 0;
				while (j < ncand && !(cand[j].hash == c->hash && cand[j].e.key_len == c->e.key_len &&
				                      memcmp(cand[j].e.key, c->e.key, c->e.key_len) == 0))
					j++;
				if (j < ncand)
					stats_top_entry_add(&cand[j].e, &c->e);
				else
					ncand++;
			}
		}
		for (size_t j = 0; j < ncand; j++)
			stats_top_heap_offer(out, &have, max, &cand[j].e);
	}
	free(cand);

	/* Heap sort: the root sorts last, so moving it to the end each time
	 * leaves the list first to last. */
	for (size_t end = have; end > 1; end--) {
		stats_top_entry_swap(&out[0], &out[end - 1]);
		stats_top_heap_down(out, end - 1, 0);
	}
	return have;
}

bool stats_topk_find(const struct stats_topk *const *t, size_t n, const uint8_t *key, size_t key_len,
                     struct stats_top_entry *out)
{
	if (key_len > STATS_TOPK_KEY_MAX)
		key_len = STATS_TOPK_KEY_MAX;
	memset(out, 0, sizeof(*out));
	out->key_len = (uint8_t)key_len;
	memcpy(out->key, key, key_len);
	if (key_len == 0)
		return false;

	uint64_t hash = stats_topk_hash(key, key_len);
	size_t set = hash % STATS_TOPK_SETS;
	bool found = false;
	for (size_t i = 0; i < n; i++) {
		const struct stats_topk_slot *ways = &t[i]->slot[set * STATS_TOPK_WAYS];
		for (unsigned w = 0; w < STATS_TOPK_WAYS; w++) {
			struct stats_top_entry e;
			uint64_t h;
			if (!stats_topk_slot_copy(&ways[w], &e, &h))
				continue;
			if (h == hash && e.key_len == key_len && memcmp(e.key, key, key_len) == 0) {
				stats_top_entry_add(out, &e);
				found = true;
				break;
			}
		}
	}
	return found;
}

size_t stats_client_key(const struct sockaddr *sa, bool anonymize, uint8_t *out)
{
	const uint8_t *v4;

	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		v4 = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		/* A dual-stack socket hands IPv4 clients over as ::ffff:a.b.c.d;
		 * they are the same clients as on an IPv4 socket. */
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			v4 = a6->s6_addr + 12;
		} else {
			out[0] = 6;
			memcpy(out + 1, a6->s6_addr, 16);
			if (anonymize)
				memset(out + 1 + 6, 0, 10);
			return 17;
		}
	} else {
		return 0;
	}
	out[0] = 4;
	memcpy(out + 1, v4, 4);
	if (anonymize)
		out[4] = 0;
	return 5;
}

/* ================================================================== */
/* Query log */

/* A slot holding entry number n has sequence 2n+1 while it is written and
 * 2n+2 after, so a reader knows not only that a slot held still but that
 * it still holds the entry it came for, not one written a lap later. */

int stats_qlog_init(struct stats_qlog *q, uint32_t size)
{
	q->mask = 0;
	atomic_init(&q->head, 0);
	q->slot = NULL;
	if (size == 0)
		return 0;
	if (size > (UINT32_C(1) << 31))
		return -1;
	uint32_t rounded = 1;
	while (rounded < size)
		rounded <<= 1;
	q->slot = calloc(rounded, sizeof(*q->slot));
	if (q->slot == NULL)
		return -1;
	q->mask = rounded - 1;
	return 0;
}

void stats_qlog_free(struct stats_qlog *q)
{
	free(q->slot);
	q->slot = NULL;
	q->mask = 0;
}

/* Claim the slot for the next entry (number *n) and mark it odd; the
 * owner then writes the entry in place and calls stats_qlog_publish. */
static inline struct stats_qlog_entry *stats_qlog_claim(struct stats_qlog *q, uint64_t *n)
{
	*n = atomic_load_explicit(&q->head, memory_order_relaxed);
	struct stats_qlog_slot *sl = &q->slot[*n & q->mask];
	atomic_store_explicit(&sl->seq, 2 * *n + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	return &sl->e;
}

static inline void stats_qlog_publish(struct stats_qlog *q, uint64_t n)
{
	atomic_store_explicit(&q->slot[n & q->mask].seq, 2 * n + 2, memory_order_release);
	atomic_store_explicit(&q->head, n + 1, memory_order_release);
}

void stats_qlog_add(struct stats_qlog *q, const struct stats_qlog_entry *e)
{
	if (q->slot == NULL)
		return;
	uint64_t n;
	struct stats_qlog_entry *to = stats_qlog_claim(q, &n);
	memcpy(to, e, offsetof(struct stats_qlog_entry, qname));
	if (to->client_len > sizeof(to->client))
		to->client_len = sizeof(to->client);
	stats_copy_name(to->qname, e->qname, e->qname_len);
	stats_qlog_publish(q, n);
}

/* Copy entries newest first from the head seen at the start; stops at the
 * first entry the writer has overwritten since. */
static size_t stats_qlog_read_once(const struct stats_qlog *q, uint64_t head, struct stats_qlog_entry *out,
                                   size_t max)
{
	uint64_t size = (uint64_t)q->mask + 1;
	uint64_t oldest = head > size ? head - size : 0;
	size_t got = 0;

	for (uint64_t n = head; n > oldest && got < max; n--) {
		uint64_t want = n - 1;
		const struct stats_qlog_slot *sl = &q->slot[want & q->mask];
		struct stats_qlog_entry *e = &out[got];

		uint64_t seq = atomic_load_explicit(&sl->seq, memory_order_acquire);
		/* The writer has moved on to this slot's next lap, and it
		 * writes in order, so every older entry is gone too. */
		if (seq != 2 * want + 2)
			break;
		memcpy(e, &sl->e, offsetof(struct stats_qlog_entry, qname));
		memcpy(e->qname, sl->e.qname, e->qname_len);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&sl->seq, memory_order_relaxed) != seq)
			break;
		got++;
	}
	return got;
}

/* A writer can lap a small ring while a reader copies its newest entry;
 * the reader then starts again from the new head rather than report an
 * empty log.  Bounded, so a reader never waits on a busy writer. */
#define STATS_QLOG_READ_TRIES 4

size_t stats_qlog_read(const struct stats_qlog *q, struct stats_qlog_entry *out, size_t max)
{
	if (q->slot == NULL || max == 0)
		return 0;
	for (unsigned attempt = 0; attempt < STATS_QLOG_READ_TRIES; attempt++) {
		uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
		if (head == 0)
			return 0;
		size_t got = stats_qlog_read_once(q, head, out, max);
		if (got > 0)
			return got;
	}
	return 0;
}

/* ================================================================== */
/* Recorder */

int stats_recorder_init(struct stats_recorder *r, uint32_t qlog_size, bool anonymize)
{
	memset(r, 0, sizeof(*r));
	r->anonymize = anonymize;
	for (size_t k = 0; k < STATS_TOP_COUNT; k++) {
		r->top[k] = calloc(1, sizeof(*r->top[k]));
		if (r->top[k] == NULL)
			goto fail;
	}
	if (stats_qlog_init(&r->qlog, qlog_size) != 0)
		goto fail;
	return 0;
fail:
	stats_recorder_free(r);
	return -1;
}

void stats_recorder_free(struct stats_recorder *r)
{
	for (size_t k = 0; k < STATS_TOP_COUNT; k++) {
		free(r->top[k]);
		r->top[k] = NULL;
	}
	stats_qlog_free(&r->qlog);
}

#define STATS_RCODE_SERVFAIL 2
#define STATS_RCODE_NXDOMAIN 3

void stats_answers_merge(const struct stats_recorder *const *r, size_t n, uint64_t out[STATS_RCODES])
{
	for (size_t c = 0; c < STATS_RCODES; c++)
		out[c] = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t c = 0; c < STATS_RCODES; c++)
			out[c] += atomic_load_explicit(&r[i]->answers[c], memory_order_relaxed);
}

void stats_record(struct stats_recorder *r, const struct stats_event *ev)
{
	_Atomic uint64_t *answered = &r->answers[ev->rcode & (STATS_RCODES - 1)];
	atomic_store_explicit(answered, atomic_load_explicit(answered, memory_order_relaxed) + 1, memory_order_relaxed);
	if (ev->flags & STATS_QLOG_CACHED)
		stats_hist_add(&r->latency[STATS_LAT_HIT], ev->latency_us);
	else if (ev->flags & STATS_QLOG_RECURSED)
		stats_hist_add(&r->latency[STATS_LAT_RECURSION], ev->latency_us);

	size_t qname_len = ev->qname_len > STATS_TOPK_KEY_MAX ? STATS_TOPK_KEY_MAX : ev->qname_len;
	if (qname_len > 0) {
		/* One hash for both sketches: the key is the same name. */
		uint64_t hash = stats_topk_hash(ev->qname, qname_len);
		stats_topk_add_hashed(r->top[STATS_TOP_NAMES], ev->qname, qname_len, hash, 0);
		if (ev->flags & STATS_QLOG_BLOCKED)
			stats_topk_add_hashed(r->top[STATS_TOP_BLOCKED], ev->qname, qname_len, hash, 0);
	}

	uint8_t client[17] = {0};
	size_t client_len = stats_client_key(ev->client, r->anonymize, client);
	if (client_len > 0) {
		unsigned extra = 0;
		if (ev->flags & STATS_QLOG_BLOCKED)
			extra |= 1u << STATS_CLIENT_BLOCKED;
		if (ev->flags & STATS_QLOG_CACHED)
			extra |= 1u << STATS_CLIENT_CACHED;
		if (ev->rcode == STATS_RCODE_NXDOMAIN)
			extra |= 1u << STATS_CLIENT_NXDOMAIN;
		else if (ev->rcode == STATS_RCODE_SERVFAIL)
			extra |= 1u << STATS_CLIENT_SERVFAIL;
		stats_topk_add(r->top[STATS_TOP_CLIENTS], client, client_len, extra);
	}

	if (r->qlog.slot == NULL)
		return;
	/* Written in place rather than through stats_qlog_add: no second
	 * copy of the name, and nothing past it touched. */
	uint64_t n;
	struct stats_qlog_entry *e = stats_qlog_claim(&r->qlog, &n);
	e->time_ms = ev->time_ms;
	e->latency_us = ev->latency_us;
	e->qtype = ev->qtype;
	e->rcode = ev->rcode;
	e->flags = ev->flags;
	e->source = ev->source;
	e->client_len = (uint8_t)client_len;
	memcpy(e->client, client, sizeof(e->client));
	e->qname_len = (uint8_t)qname_len;
	stats_copy_name(e->qname, ev->qname, qname_len);
	stats_qlog_publish(&r->qlog, n);
}

/* ================================================================== */
/* Time series */

int stats_series_init(struct stats_series *s, uint32_t step_s, uint32_t cap)
{
	memset(s, 0, sizeof(*s));
	if (step_s == 0 || cap == 0)
		return -1;
	s->pt = calloc(cap, sizeof(*s->pt));
	if (s->pt == NULL)
		return -1;
	s->step_s = step_s;
	s->cap = cap;
	return 0;
}

void stats_series_free(struct stats_series *s)
{
	free(s->pt);
	s->pt = NULL;
	s->cap = s->count = s->head = 0;
}

void stats_series_push(struct stats_series *s, const struct stats_point *p)
{
	if (s->cap == 0)
		return;
	s->pt[s->head] = *p;
	s->head = s->head + 1 == s->cap ? 0 : s->head + 1;
	if (s->count < s->cap)
		s->count++;
}

size_t stats_series_get(const struct stats_series *s, struct stats_point *out)
{
	uint32_t i = s->head >= s->count ? s->head - s->count : s->head + s->cap - s->count;
	for (uint32_t k = 0; k < s->count; k++) {
		out[k] = s->pt[i];
		i = i + 1 == s->cap ? 0 : i + 1;
	}
	return s->count;
}

/* The saved form, little-endian whatever the host:
 *   "MXTS"  u32 version  u32 step_s  u32 count
 *   count x { i64 t, 11 x f32 (IEEE 754 bits) in struct stats_point order }
 * A new field means a new version: an old file is then dropped, not misread. */
#define STATS_SERIES_MAGIC "MXTS"
#define STATS_SERIES_VERSION 1u
#define STATS_SERIES_HEADER 16u
#define STATS_SERIES_FLOATS 11u
#define STATS_SERIES_POINT (8u + 4u * STATS_SERIES_FLOATS)

static void stats_put_le32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void stats_put_le64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t stats_get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t stats_get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void stats_point_floats(const struct stats_point *p, float f[STATS_SERIES_FLOATS])
{
	f[0] = p->qps;
	f[1] = p->hit_ratio;
	f[2] = p->blocked_ps;
	f[3] = p->servfail_ps;
	f[4] = p->stale_ps;
	f[5] = p->hit_p50_ms;
	f[6] = p->hit_p95_ms;
	f[7] = p->hit_p99_ms;
	f[8] = p->recursion_p50_ms;
	f[9] = p->recursion_p95_ms;
	f[10] = p->recursion_p99_ms;
}

static void stats_point_from_floats(struct stats_point *p, const float f[STATS_SERIES_FLOATS])
{
	p->qps = f[0];
	p->hit_ratio = f[1];
	p->blocked_ps = f[2];
	p->servfail_ps = f[3];
	p->stale_ps = f[4];
	p->hit_p50_ms = f[5];
	p->hit_p95_ms = f[6];
	p->hit_p99_ms = f[7];
	p->recursion_p50_ms = f[8];
	p->recursion_p95_ms = f[9];
	p->recursion_p99_ms = f[10];
}

uint8_t *stats_series_save(const struct stats_series *s, size_t *len)
{
	size_t total = STATS_SERIES_HEADER + (size_t)s->count * STATS_SERIES_POINT;
	uint8_t *buf = malloc(total);
	if (buf == NULL)
		return NULL;

	memcpy(buf, STATS_SERIES_MAGIC, 4);
	stats_put_le32(buf + 4, STATS_SERIES_VERSION);
	stats_put_le32(buf + 8, s->step_s);
	stats_put_le32(buf + 12, s->count);

	uint8_t *p = buf + STATS_SERIES_HEADER;
	uint32_t i = s->head >= s->count ? s->head - s->count : s->head + s->cap - s->count;
	for (uint32_t k = 0; k < s->count; k++) {
		const struct stats_point *pt = &s->pt[i];
		float f[STATS_SERIES_FLOATS];
		stats_put_le64(p, (uint64_t)pt->t);
		stats_point_floats(pt, f);
		for (unsigned j = 0; j < STATS_SERIES_FLOATS; j++) {
			uint32_t bits;
			memcpy(&bits, &f[j], 4);
			stats_put_le32(p + 8 + 4 * j, bits);
		}
		p += STATS_SERIES_POINT;
		i = i + 1 == s->cap ? 0 : i + 1;
	}
	*len = total;
	return buf;
}

int stats_series_load(struct stats_series *s, const uint8_t *buf, size_t len, int64_t now)
{
	if (buf == NULL || len < STATS_SERIES_HEADER || memcmp(buf, STATS_SERIES_MAGIC, 4) != 0)
		return -1;
	if (stats_get_le32(buf + 4) != STATS_SERIES_VERSION || stats_get_le32(buf + 8) != s->step_s)
		return -1;
	uint32_t count = stats_get_le32(buf + 12);
	if ((len - STATS_SERIES_HEADER) / STATS_SERIES_POINT != count ||
	    (len - STATS_SERIES_HEADER) % STATS_SERIES_POINT != 0)
		return -1;

	/* Points this old would already have been pushed out of the ring had
	 * the daemon kept running; loading them would draw a stale past. */
	int64_t oldest_kept = now - (int64_t)s->cap * (int64_t)s->step_s;
	s->head = 0;
	s->count = 0;
	const uint8_t *p = buf + STATS_SERIES_HEADER;
	for (uint32_t k = 0; k < count; k++, p += STATS_SERIES_POINT) {
		struct stats_point pt;
		float f[STATS_SERIES_FLOATS];
		pt.t = (int64_t)stats_get_le64(p);
		if (pt.t <= oldest_kept)
			continue;
		for (unsigned j = 0; j < STATS_SERIES_FLOATS; j++) {
			uint32_t bits = stats_get_le32(p + 8 + 4 * j);
			memcpy(&f[j], &bits, 4);
		}
		stats_point_from_floats(&pt, f);
		stats_series_push(s, &pt);
	}
	return (int)s->count;
}
