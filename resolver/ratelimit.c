/* ratelimit.c -- response rate limiting: a token bucket per client prefix.
 *
 * Buckets live in one array allocated at creation and never resized, so a
 * flood of spoofed sources costs time, not memory.  The array is split into
 * sets of RATELIMIT_WAYS buckets; a prefix hashes to one set and may sit in
 * any of its ways.  A newcomer to a full set takes the way used least
 * recently: the prefix being hammered (the one we must keep limiting) is
 * always the most recently used, so a flood of one-off sources has to hit
 * its set RATELIMIT_WAYS times between two of its queries to evict it,
 * where a direct-mapped table would lose it on the first collision.  An
 * evicted bucket is nearly always full anyway, and a full bucket carries no
 * information: a fresh one starts full.
 *
 * The set is chosen by SipHash-1-3 of the masked address under a key drawn
 * from getrandom() at creation, so an attacker who cannot see the key cannot
 * pick sources that all land in the set of the prefix they want to free.
 *
 * Tokens are counted in millitokens: qps answers per second is exactly qps
 * millitokens per millisecond, so refills are exact integer arithmetic and
 * an answer costs 1000.
 */
#include "ratelimit.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define RATELIMIT_WAYS 4
#define RATELIMIT_MILLI 1000u
/* 2^26 buckets of 40 bytes is 2.5 GiB: beyond that an option is a typo. */
#define RATELIMIT_MAX_TABLE ((size_t)1 << 26)

struct ratelimit_bucket {
	uint64_t key_hi, key_lo; /* masked address; IPv4 as ::ffff:a.b.c.0 */
	int64_t last_ms;         /* last refill; INT64_MIN marks an empty way */
	uint64_t millitokens;
	uint32_t slip_count;     /* limited answers since the last slip */
};

struct ratelimit {
	uint64_t qps;
	uint64_t capacity;       /* burst in millitokens */
	int64_t full_after_ms;   /* an idle bucket is full again after this */
	unsigned slip;
	uint64_t mask4_lo;       /* IPv4 prefix mask, in the low word of the key */
	uint64_t mask6_hi, mask6_lo;
	uint64_t sip_k0, sip_k1;
	size_t set_mask;         /* number of sets - 1 */
	uint64_t limited;
	struct ratelimit_bucket *buckets;
};

/* ------------------------------------------------------------------ */
/* SipHash-1-3 of two 64-bit words (Aumasson and Bernstein); one round per
 * word is what hash tables use (Rust, CPython) against collision floods. */

static inline uint64_t ratelimit_rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define RATELIMIT_SIPROUND                                                       \
	do {                                                                     \
		v0 += v1; v1 = ratelimit_rotl(v1, 13); v1 ^= v0; v0 = ratelimit_rotl(v0, 32); \
		v2 += v3; v3 = ratelimit_rotl(v3, 16); v3 ^= v2;                     \
		v0 += v3; v3 = ratelimit_rotl(v3, 21); v3 ^= v0;                     \
		v2 += v1; v1 = ratelimit_rotl(v1, 17); v1 ^= v2; v2 = ratelimit_rotl(v2, 32); \
	} while (0)

static uint64_t ratelimit_hash(const struct ratelimit *rl, uint64_t m0, uint64_t m1)
{
	uint64_t v0 = rl->sip_k0 ^ 0x736f6d6570736575ULL;
	uint64_t v1 = rl->sip_k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = rl->sip_k0 ^ 0x6c7967656e657261ULL;
	uint64_t v3 = rl->sip_k1 ^ 0x7465646279746573ULL;
	const uint64_t last = (uint64_t)16 << 56; /* the length block of a 16-byte message */

	v3 ^= m0; RATELIMIT_SIPROUND; v0 ^= m0;
	v3 ^= m1; RATELIMIT_SIPROUND; v0 ^= m1;
	v3 ^= last; RATELIMIT_SIPROUND; v0 ^= last;
	v2 ^= 0xff;
	RATELIMIT_SIPROUND;
	RATELIMIT_SIPROUND;
	RATELIMIT_SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ------------------------------------------------------------------ */

static uint64_t ratelimit_load_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Seed the hash key.  getrandom() only fails on kernels older than 3.17 or
 * when interrupted; rather than refuse to start, fall back to a key from
 * clocks and addresses, weaker against a patient attacker but never wrong. */
static void ratelimit_seed(struct ratelimit *rl)
{
	uint64_t k[2];
	size_t got = 0;

	while (got < sizeof(k)) {
		ssize_t n = getrandom((char *)k + got, sizeof(k) - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got < sizeof(k)) {
		struct timespec a, b;
		clock_gettime(CLOCK_REALTIME, &a);
		clock_gettime(CLOCK_MONOTONIC, &b);
		k[0] = (uint64_t)a.tv_nsec ^ ((uint64_t)a.tv_sec << 30) ^ (uint64_t)(uintptr_t)rl;
		k[1] = (uint64_t)b.tv_nsec ^ ((uint64_t)b.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
		       (uint64_t)(uintptr_t)&a;
	}
	rl->sip_k0 = k[0];
	rl->sip_k1 = k[1];
}

struct ratelimit *ratelimit_new(const struct ratelimit_options *opt)
{
	struct ratelimit *rl;
	size_t n;

	if (opt == NULL || opt->v4_prefix < 8 || opt->v4_prefix > 32 || opt->v6_prefix < 16 ||
	    opt->v6_prefix > 128)
		return NULL;
	rl = calloc(1, sizeof(*rl));
	if (rl == NULL)
		return NULL;
	rl->qps = opt->qps;
	rl->slip = opt->slip;
	/* Disabled limiting needs no table: checks return before using it. */
	if (opt->qps == 0)
		return rl;
	if (opt->table_size == 0 || opt->table_size > RATELIMIT_MAX_TABLE) {
		free(rl);
		return NULL;
	}

	rl->capacity = (uint64_t)(opt->burst ? opt->burst : opt->qps) * RATELIMIT_MILLI;
	rl->full_after_ms = (int64_t)(rl->capacity / rl->qps) + 1;
	rl->mask4_lo = 0xFFFF00000000ULL | (uint32_t)(UINT32_MAX << (32 - opt->v4_prefix));
	if (opt->v6_prefix <= 64) {
		rl->mask6_hi = UINT64_MAX << (64 - opt->v6_prefix);
		rl->mask6_lo = 0;
	} else {
		rl->mask6_hi = UINT64_MAX;
		rl->mask6_lo = opt->v6_prefix == 128 ? UINT64_MAX : ~(UINT64_MAX >> (opt->v6_prefix - 64));
	}

	for (n = RATELIMIT_WAYS; n < opt->table_size; n *= 2)
		;
	rl->set_mask = n / RATELIMIT_WAYS - 1;
	rl->buckets = malloc(n * sizeof(rl->buckets[0]));
	if (rl->buckets == NULL) {
		free(rl);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		rl->buckets[i] = (struct ratelimit_bucket){ .last_ms = INT64_MIN };
	ratelimit_seed(rl);
	return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	free(rl->buckets);
	free(rl);
}

uint64_t ratelimit_limited(const struct ratelimit *rl)
{
	return rl->limited;
}

/* Find the bucket of a prefix, or give it the least recently used way of its
 * set, reset to a full bucket. */
static struct ratelimit_bucket *ratelimit_bucket(struct ratelimit *rl, uint64_t hi, uint64_t lo, int64_t now_ms)
{
	struct ratelimit_bucket *set = rl->buckets + (ratelimit_hash(rl, hi, lo) & rl->set_mask) * RATELIMIT_WAYS;
	struct ratelimit_bucket *victim = set;

	for (int i = 0; i < RATELIMIT_WAYS; i++) {
		struct ratelimit_bucket *b = &set[i];
		if (b->key_lo == lo && b->key_hi == hi && b->last_ms != INT64_MIN)
			return b;
		if (b->last_ms < victim->last_ms)
			victim = b;
	}
	victim->key_hi = hi;
	victim->key_lo = lo;
	victim->last_ms = now_ms;
	victim->millitokens = rl->capacity;
	victim->slip_count = 0;
	return victim;
}

enum ratelimit_verdict ratelimit_check(struct ratelimit *rl, const struct sockaddr *client, int64_t now_ms)
{
	unsigned char b[16];
	uint64_t hi, lo;

	if (rl->qps == 0)
		return RATELIMIT_PASS;
	/* memcpy: the caller's storage may be any of the sockaddr types. */
	if (client->sa_family == AF_INET) {
		memcpy(b, (const char *)client + offsetof(struct sockaddr_in, sin_addr), 4);
		hi = 0;
		lo = 0xFFFF00000000ULL | (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
		lo &= rl->mask4_lo;
	} else if (client->sa_family == AF_INET6) {
		memcpy(b, (const char *)client + offsetof(struct sockaddr_in6, sin6_addr), 16);
		hi = ratelimit_load_be64(b);
		lo = ratelimit_load_be64(b + 8);
		/* A mapped IPv4 client is the IPv4 client: same prefix, same bucket. */
		if (hi == 0 && (lo >> 32) == 0xFFFF) {
			lo &= rl->mask4_lo;
		} else {
			hi &= rl->mask6_hi;
			lo &= rl->mask6_lo;
		}
	} else {
		/* No prefix to account it to, and not a datagram source anyway. */
		return RATELIMIT_PASS;
	}
	/* INT64_MIN marks empty ways; a clock never reads it, but keep the
	 * invariant even if a caller passes garbage. */
	if (now_ms == INT64_MIN)
		now_ms++;

	struct ratelimit_bucket *bk = ratelimit_bucket(rl, hi, lo, now_ms);
	/* Time going backwards (never with CLOCK_MONOTONIC, but cheap to be
	 * safe) refills nothing and does not move last_ms back. */
	if (now_ms > bk->last_ms) {
		/* Unsigned: the difference of any two int64 values fits. */
		uint64_t elapsed = (uint64_t)now_ms - (uint64_t)bk->last_ms;
		if (elapsed >= (uint64_t)rl->full_after_ms) {
			bk->millitokens = rl->capacity;
		} else {
			/* elapsed * qps <= capacity here: no overflow. */
			uint64_t add = elapsed * rl->qps;
			bk->millitokens = rl->capacity - bk->millitokens <= add ? rl->capacity : bk->millitokens + add;
		}
		bk->last_ms = now_ms;
	}
	if (bk->millitokens >= RATELIMIT_MILLI) {
		bk->millitokens -= RATELIMIT_MILLI;
		return RATELIMIT_PASS;
	}

	rl->limited++;
	if (rl->slip == 0)
		return RATELIMIT_DROP;
	if (++bk->slip_count >= rl->slip) {
		bk->slip_count = 0;
		return RATELIMIT_SLIP;
	}
	return RATELIMIT_DROP;
}
