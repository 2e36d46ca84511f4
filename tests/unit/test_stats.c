/* test_stats.c -- unit tests of resolver/stats: latency histograms
 * (buckets, quantiles, diff, merge), top-k sketches (exact counts, heavy
 * hitters under a flood, merge, find, extras, long keys), client keys, the
 * query-log ring (order, size, a concurrent reader), the recorder's routing
 * and the time series (ring, save and load).
 *
 * The top-k hash is seeded at random per process, so no test relies on
 * which set a key lands in: key counts are chosen so that a set overflowing
 * is astronomically unlikely, or the property tested holds whatever the
 * sets. */
#include "stats.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* Helpers */

/* The bucket a single latency lands in, seen through the public API. */
static int bucket_of(uint32_t us)
{
	struct stats_hist h;
	struct stats_hist_snapshot s;
	memset(&h, 0, sizeof(h));
	memset(&s, 0, sizeof(s));
	stats_hist_add(&h, us);
	stats_hist_accumulate(&h, &s);
	int found = -1;
	for (int i = 0; i < STATS_HIST_BUCKETS; i++) {
		if (s.bucket[i] == 1 && found < 0)
			found = i;
		else if (s.bucket[i] != 0)
			return -2;
	}
	if (s.count != 1 || s.sum_us != us)
		return -3;
	return found;
}

static struct stats_hist_snapshot snapshot_of(const struct stats_hist *h)
{
	struct stats_hist_snapshot s;
	memset(&s, 0, sizeof(s));
	stats_hist_accumulate(h, &s);
	return s;
}

static struct stats_topk *topk_new(void)
{
	struct stats_topk *t = calloc(1, sizeof(*t));
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	return t;
}

static void add_text(struct stats_topk *t, const char *key, unsigned times, unsigned extra_bits)
{
	for (unsigned i = 0; i < times; i++)
		stats_topk_add(t, (const uint8_t *)key, strlen(key), extra_bits);
}

static bool find_text(struct stats_topk *t, const char *key, struct stats_top_entry *out)
{
	const struct stats_topk *one[1] = {t};
	return stats_topk_find(one, 1, (const uint8_t *)key, strlen(key), out);
}

static bool entry_is(const struct stats_top_entry *e, const char *key)
{
	return e->key_len == strlen(key) && memcmp(e->key, key, e->key_len) == 0;
}

static size_t key_of_number(uint8_t *buf, const char *prefix, unsigned n)
{
	return (size_t)snprintf((char *)buf, 64, "%s%u", prefix, n);
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* Histograms */

static void test_stats_hist_bounds_are_five_per_decade(void)
{
	static const uint32_t steps[5] = {10, 15, 25, 40, 60};
	uint32_t decade = 1;
	for (int i = 0; i < STATS_HIST_BOUNDS - 1; i++) {
		if (i > 0 && i % 5 == 0)
			decade *= 10;
		CU_ASSERT_EQUAL(stats_hist_bounds_us[i], steps[i % 5] * decade);
	}
	CU_ASSERT_EQUAL(stats_hist_bounds_us[0], 10);
	CU_ASSERT_EQUAL(stats_hist_bounds_us[STATS_HIST_BOUNDS - 1], 10000000);
	for (int i = 1; i < STATS_HIST_BOUNDS; i++)
		CU_ASSERT(stats_hist_bounds_us[i] > stats_hist_bounds_us[i - 1]);
}

static void test_stats_hist_bucket_boundaries(void)
{
	CU_ASSERT_EQUAL(bucket_of(0), 0);
	CU_ASSERT_EQUAL(bucket_of(1), 0);
	for (int i = 0; i < STATS_HIST_BOUNDS; i++) {
		uint32_t b = stats_hist_bounds_us[i];
		/* "le": the bound itself is in its bucket, one more is not. */
		CU_ASSERT_EQUAL(bucket_of(b), i);
		CU_ASSERT_EQUAL(bucket_of(b - 1), (i > 0 && b - 1 == stats_hist_bounds_us[i - 1]) ? i - 1 : i);
		CU_ASSERT_EQUAL(bucket_of(b + 1), i + 1);
	}
	CU_ASSERT_EQUAL(bucket_of(10000001), STATS_HIST_BUCKETS - 1);
	CU_ASSERT_EQUAL(bucket_of(UINT32_MAX), STATS_HIST_BUCKETS - 1);

	/* Every value up to just past the last bound agrees with a plain
	 * scan (stepping so that the walk stays quick). */
	for (uint64_t us = 0; us <= 10000100; us += us < 2000 ? 1 : 997) {
		int want = 0;
		while (want < STATS_HIST_BOUNDS && stats_hist_bounds_us[want] < us)
			want++;
		if (bucket_of((uint32_t)us) != want) {
			CU_FAIL("bucket differs from a linear scan");
			break;
		}
	}
}

static void test_stats_hist_sum_and_count(void)
{
	struct stats_hist h;
	memset(&h, 0, sizeof(h));
	stats_hist_add(&h, 7);
	stats_hist_add(&h, 7000);
	stats_hist_add(&h, UINT32_MAX);
	struct stats_hist_snapshot s = snapshot_of(&h);
	CU_ASSERT_EQUAL(s.count, 3);
	CU_ASSERT_EQUAL(s.sum_us, 7 + 7000 + (uint64_t)UINT32_MAX);
	CU_ASSERT_EQUAL(s.bucket[0], 1);
	CU_ASSERT_EQUAL(s.bucket[15], 1); /* (6000, 10000] */
	CU_ASSERT_EQUAL(s.bucket[STATS_HIST_BUCKETS - 1], 1);
}

static void test_stats_hist_quantiles(void)
{
	struct stats_hist h;
	struct stats_hist_snapshot s;

	memset(&s, 0, sizeof(s));
	CU_ASSERT_EQUAL(stats_hist_quantile(&s, 0.5), 0);

	/* All in (40, 60]: the quantiles spread linearly over it. */
	memset(&h, 0, sizeof(h));
	for (int i = 0; i < 1000; i++)
		stats_hist_add(&h, 50);
	s = snapshot_of(&h);
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&s, 0.5), 50.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&s, 0.99), 59.8, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&s, 0.25), 45.0, 1e-9);

	/* 90 fast ones in [0, 10], 10 slow ones in (600, 1000]. */
	memset(&h, 0, sizeof(h));
	for (int i = 0; i < 90; i++)
		stats_hist_add(&h, 5);
	for (int i = 0; i < 10; i++)
		stats_hist_add(&h, 900);
	s = snapshot_of(&h);
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&s, 0.5), 10.0 * 50 / 90, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&s, 0.9), 10.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&s, 0.95), 800.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&s, 0.99), 960.0, 1e-9);

	/* Empty buckets in between are skipped, not interpolated across. */
	memset(&h, 0, sizeof(h));
	stats_hist_add(&h, 12);       /* (10, 15] */
	stats_hist_add(&h, 3000000);  /* (2.5 s, 4 s] */
	s = snapshot_of(&h);
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&s, 0.5), 15.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&s, 0.75), 2500000 + 1500000 * 0.5, 1e-6);

	/* Above the last bound nothing is known but the bound. */
	memset(&h, 0, sizeof(h));
	for (int i = 0; i < 10; i++)
		stats_hist_add(&h, 20000000);
	s = snapshot_of(&h);
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&s, 0.5), 10000000.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&s, 0.99), 10000000.0, 1e-9);

	/* Quantiles never go down as q goes up. */
	memset(&h, 0, sizeof(h));
	for (uint32_t us = 1; us < 5000000; us = us * 3 / 2 + 1)
		stats_hist_add(&h, us);
	s = snapshot_of(&h);
	double prev = 0;
	for (double q = 0.01; q < 1; q += 0.01) {
		double v = stats_hist_quantile(&s, q);
		CU_ASSERT(v >= prev);
		prev = v;
	}
}

static void test_stats_hist_diff(void)
{
	struct stats_hist h;
	memset(&h, 0, sizeof(h));
	stats_hist_add(&h, 5);
	stats_hist_add(&h, 500);
	struct stats_hist_snapshot before = snapshot_of(&h);
	stats_hist_add(&h, 500);
	stats_hist_add(&h, 500);
	stats_hist_add(&h, 50000);
	struct stats_hist_snapshot now = snapshot_of(&h);

	struct stats_hist_snapshot d;
	memset(&d, 0xAB, sizeof(d));
	stats_hist_diff(&now, &before, &d);
	CU_ASSERT_EQUAL(d.count, 3);
	CU_ASSERT_EQUAL(d.sum_us, 500 + 500 + 50000);
	CU_ASSERT_EQUAL(d.bucket[0], 0);
	CU_ASSERT_EQUAL(d.bucket[9], 2);  /* (400, 600] */
	CU_ASSERT_EQUAL(d.bucket[19], 1); /* (40000, 60000] */
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&d, 0.5), 400 + 200 * 0.75, 1e-9);

	/* A bucket that went down (a restart) counts as nothing happening. */
	stats_hist_diff(&before, &now, &d);
	CU_ASSERT_EQUAL(d.count, 0);
	CU_ASSERT_EQUAL(d.sum_us, 0);
	for (int i = 0; i < STATS_HIST_BUCKETS; i++)
		CU_ASSERT_EQUAL(d.bucket[i], 0);
}

static void test_stats_hist_merge_adds(void)
{
	struct stats_hist a, b;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	for (int i = 0; i < 30; i++)
		stats_hist_add(&a, 20);
	for (int i = 0; i < 70; i++)
		stats_hist_add(&b, 20);
	for (int i = 0; i < 100; i++)
		stats_hist_add(&b, 2000);

	struct stats_hist_snapshot s;
	memset(&s, 0, sizeof(s));
	stats_hist_accumulate(&a, &s);
	stats_hist_accumulate(&b, &s);
	CU_ASSERT_EQUAL(s.count, 200);
	CU_ASSERT_EQUAL(s.sum_us, 100 * 20 + 100 * 2000);
	CU_ASSERT_EQUAL(s.bucket[1], 0);
	CU_ASSERT_EQUAL(s.bucket[2], 100);  /* (15, 25] */
	CU_ASSERT_EQUAL(s.bucket[12], 100); /* (1500, 2500] */
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&s, 0.5), 25.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(stats_hist_quantile(&s, 0.75), 1500 + 1000 * 0.5, 1e-9);
}

/* ------------------------------------------------------------------ */
/* Top-k */

static void test_stats_topk_exact_when_few_keys(void)
{
	struct stats_topk *t = topk_new();
	uint8_t key[64];
	/* 64 keys over 128 sets of 8: no set overflows (a 9-way collision
	 * has a chance around 1e-6), so every count is exact. */
	for (unsigned k = 0; k < 64; k++) {
		size_t len = key_of_number(key, "name-", k);
		for (unsigned i = 0; i <= k; i++)
			stats_topk_add(t, key, len, 0);
	}

	struct stats_top_entry out[100];
	const struct stats_topk *one[1] = {t};
	size_t n = stats_topk_merge(one, 1, out, 100);
	CU_ASSERT_EQUAL_FATAL(n, 64);
	for (unsigned i = 0; i < n; i++) {
		unsigned k = 63 - i;
		size_t len = key_of_number(key, "name-", k);
		CU_ASSERT_EQUAL(out[i].count, k + 1);
		CU_ASSERT_EQUAL(out[i].err, 0);
		CU_ASSERT(out[i].key_len == len && memcmp(out[i].key, key, len) == 0);
	}

	/* A shorter list is the head of the longer one. */
	struct stats_top_entry top5[5];
	CU_ASSERT_EQUAL(stats_topk_merge(one, 1, top5, 5), 5);
	for (unsigned i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(top5[i].count, 64 - i);
	CU_ASSERT_EQUAL(stats_topk_merge(one, 1, top5, 0), 0);

	/* An empty key is not a key. */
	stats_topk_add(t, key, 0, 0);
	CU_ASSERT_EQUAL(stats_topk_merge(one, 1, out, 100), 64);
	free(t);
}

static void test_stats_topk_empty(void)
{
	struct stats_topk *t = topk_new();
	const struct stats_topk *one[1] = {t};
	struct stats_top_entry out[4], e;
	CU_ASSERT_EQUAL(stats_topk_merge(one, 1, out, 4), 0);
	CU_ASSERT_EQUAL(stats_topk_merge(one, 0, out, 4), 0);
	CU_ASSERT_FALSE(find_text(t, "nothing", &e));
	CU_ASSERT_EQUAL(e.count, 0);
	free(t);
}

static void test_stats_topk_heavy_hitters_survive_flood(void)
{
	struct stats_topk *t = topk_new();
	uint8_t key[64];
	enum { HEAVY = 10, ONE_OFFS = 100000, EVERY = 5 };
	unsigned heavy_true[HEAVY] = {0};

	for (unsigned i = 0; i < ONE_OFFS; i++) {
		size_t len = key_of_number(key, "flood-", i);
		stats_topk_add(t, key, len, 0);
		if (i % EVERY == 0) {
			unsigned h = (i / EVERY) % HEAVY;
			len = key_of_number(key, "heavy-", h);
			stats_topk_add(t, key, len, 0);
			heavy_true[h]++;
		}
	}

	for (unsigned h = 0; h < HEAVY; h++) {
		struct stats_top_entry e;
		size_t len = key_of_number(key, "heavy-", h);
		const struct stats_topk *one[1] = {t};
		CU_ASSERT_FATAL(stats_topk_find(one, 1, key, len, &e));
		CU_ASSERT_EQUAL(heavy_true[h], ONE_OFFS / EVERY / HEAVY);
		/* Space-Saving never underestimates, and count - err is a lower bound. */
		CU_ASSERT(e.count >= heavy_true[h]);
		CU_ASSERT(e.count - e.err <= heavy_true[h]);
	}

	/* The top ten are exactly the heavy keys, not flood names that
	 * inherited counts. */
	struct stats_top_entry out[HEAVY];
	const struct stats_topk *one[1] = {t};
	CU_ASSERT_EQUAL_FATAL(stats_topk_merge(one, 1, out, HEAVY), HEAVY);
	for (unsigned i = 0; i < HEAVY; i++) {
		CU_ASSERT(out[i].key_len > 6 && memcmp(out[i].key, "heavy-", 6) == 0);
		CU_ASSERT(out[i].count >= ONE_OFFS / EVERY / HEAVY);
		if (i > 0)
			CU_ASSERT(out[i].count <= out[i - 1].count);
	}

	/* Memory is fixed: the table holds at most its slots. */
	struct stats_top_entry *all = malloc(2 * STATS_TOPK_SLOTS * sizeof(*all));
	CU_ASSERT_PTR_NOT_NULL_FATAL(all);
	CU_ASSERT_EQUAL(stats_topk_merge(one, 1, all, 2 * STATS_TOPK_SLOTS), STATS_TOPK_SLOTS);
	free(all);
	free(t);
}

static void test_stats_topk_merge_adds_same_key(void)
{
	struct stats_topk *a = topk_new(), *b = topk_new();
	add_text(a, "both.example", 3, 1u << 0);
	add_text(b, "both.example", 4, 1u << 1);
	add_text(a, "only-a.example", 5, 0);
	add_text(b, "only-b.example", 2, 0);
	add_text(b, "also-b.example", 1, 1u << 3);

	const struct stats_topk *two[2] = {a, b};
	struct stats_top_entry out[10];
	size_t n = stats_topk_merge(two, 2, out, 10);
	CU_ASSERT_EQUAL_FATAL(n, 4);
	CU_ASSERT(entry_is(&out[0], "both.example"));
	CU_ASSERT_EQUAL(out[0].count, 7);
	CU_ASSERT_EQUAL(out[0].err, 0);
	CU_ASSERT_EQUAL(out[0].extra[0], 3);
	CU_ASSERT_EQUAL(out[0].extra[1], 4);
	CU_ASSERT_EQUAL(out[0].extra[2], 0);
	CU_ASSERT(entry_is(&out[1], "only-a.example"));
	CU_ASSERT_EQUAL(out[1].count, 5);
	CU_ASSERT(entry_is(&out[2], "only-b.example"));
	CU_ASSERT_EQUAL(out[2].count, 2);
	CU_ASSERT(entry_is(&out[3], "also-b.example"));
	CU_ASSERT_EQUAL(out[3].extra[3], 1);

	/* Merging the same sketch twice doubles, as two workers would. */
	const struct stats_topk *twice[2] = {a, a};
	n = stats_topk_merge(twice, 2, out, 1);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT(entry_is(&out[0], "only-a.example"));
	CU_ASSERT_EQUAL(out[0].count, 10);

	/* Equal counts come out in a stable order. */
	struct stats_topk *c = topk_new();
	add_text(c, "bbb", 2, 0);
	add_text(c, "aaa", 2, 0);
	add_text(c, "ccc", 2, 0);
	const struct stats_topk *one[1] = {c};
	CU_ASSERT_EQUAL_FATAL(stats_topk_merge(one, 1, out, 3), 3);
	CU_ASSERT(entry_is(&out[0], "aaa"));
	CU_ASSERT(entry_is(&out[1], "bbb"));
	CU_ASSERT(entry_is(&out[2], "ccc"));
	free(a);
	free(b);
	free(c);
}

static void test_stats_topk_find(void)
{
	struct stats_topk *a = topk_new(), *b = topk_new();
	add_text(a, "x.example", 2, 1u << 2);
	add_text(b, "x.example", 5, 1u << 2 | 1u << 0);
	add_text(b, "y.example", 1, 0);

	const struct stats_topk *two[2] = {a, b};
	struct stats_top_entry e;
	CU_ASSERT_TRUE(stats_topk_find(two, 2, (const uint8_t *)"x.example", 9, &e));
	CU_ASSERT(entry_is(&e, "x.example"));
	CU_ASSERT_EQUAL(e.count, 7);
	CU_ASSERT_EQUAL(e.extra[0], 5);
	CU_ASSERT_EQUAL(e.extra[2], 7);

	CU_ASSERT_TRUE(stats_topk_find(two, 2, (const uint8_t *)"y.example", 9, &e));
	CU_ASSERT_EQUAL(e.count, 1);
	/* Only in the first sketch looked at: not found. */
	CU_ASSERT_FALSE(stats_topk_find(two, 1, (const uint8_t *)"y.example", 9, &e));
	/* A prefix or a longer key is another key. */
	CU_ASSERT_FALSE(stats_topk_find(two, 2, (const uint8_t *)"x.exampl", 8, &e));
	CU_ASSERT_FALSE(stats_topk_find(two, 2, (const uint8_t *)"x.example.", 10, &e));
	CU_ASSERT_EQUAL(e.count, 0);
	free(a);
	free(b);
}

static void test_stats_topk_extra_counters(void)
{
	struct stats_topk *t = topk_new();
	struct stats_top_entry e;
	add_text(t, "client", 3, 1u << STATS_CLIENT_BLOCKED);
	add_text(t, "client", 2, 1u << STATS_CLIENT_CACHED | 1u << STATS_CLIENT_SERVFAIL);
	add_text(t, "client", 1, 0);
	add_text(t, "client", 4, 0xF);
	CU_ASSERT_TRUE_FATAL(find_text(t, "client", &e));
	CU_ASSERT_EQUAL(e.count, 10);
	CU_ASSERT_EQUAL(e.extra[STATS_CLIENT_BLOCKED], 7);
	CU_ASSERT_EQUAL(e.extra[STATS_CLIENT_CACHED], 6);
	CU_ASSERT_EQUAL(e.extra[STATS_CLIENT_NXDOMAIN], 4);
	CU_ASSERT_EQUAL(e.extra[STATS_CLIENT_SERVFAIL], 6);
	free(t);

	/* A key that takes over a slot inherits the count, not the extras:
	 * they describe it alone. */
	t = topk_new();
	uint8_t key[64];
	for (unsigned i = 0; i < 20000; i++) {
		size_t len = key_of_number(key, "filler-", i);
		stats_topk_add(t, key, len, 1u << 0);
	}
	add_text(t, "newcomer", 1, 1u << 1);
	CU_ASSERT_TRUE_FATAL(find_text(t, "newcomer", &e));
	CU_ASSERT(e.err > 0);
	CU_ASSERT_EQUAL(e.count, e.err + 1);
	CU_ASSERT_EQUAL(e.extra[0], 0);
	CU_ASSERT_EQUAL(e.extra[1], 1);
	free(t);
}

static void test_stats_topk_long_keys_are_cut(void)
{
	struct stats_topk *t = topk_new();
	uint8_t key[300];
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);
	stats_topk_add(t, key, sizeof(key), 0);
	/* Cut to the same 255 bytes, so a longer key with that start is the same key. */
	stats_topk_add(t, key, 256, 0);
	stats_topk_add(t, key, STATS_TOPK_KEY_MAX, 0);

	const struct stats_topk *one[1] = {t};
	struct stats_top_entry e;
	CU_ASSERT_TRUE(stats_topk_find(one, 1, key, sizeof(key), &e));
	CU_ASSERT_EQUAL(e.count, 3);
	CU_ASSERT_EQUAL(e.key_len, STATS_TOPK_KEY_MAX);
	CU_ASSERT(memcmp(e.key, key, STATS_TOPK_KEY_MAX) == 0);
	CU_ASSERT_FALSE(stats_topk_find(one, 1, key, 254, &e));

	struct stats_top_entry out[2];
	CU_ASSERT_EQUAL_FATAL(stats_topk_merge(one, 1, out, 2), 1);
	CU_ASSERT_EQUAL(out[0].key_len, STATS_TOPK_KEY_MAX);
	CU_ASSERT(memcmp(out[0].key, key, STATS_TOPK_KEY_MAX) == 0);
	free(t);
}

/* The owner bumps one key with an extra bit on every add, so count and
 * extra[0] are always equal in a consistent copy; a reader that mixed two
 * versions of the slot would see them differ. */
struct topk_race {
	struct stats_topk *t;
	_Atomic int stop;
	uint64_t adds;
};

static void *topk_race_writer(void *arg)
{
	struct topk_race *r = arg;
	while (!atomic_load(&r->stop)) {
		for (int i = 0; i < 1000; i++)
			stats_topk_add(r->t, (const uint8_t *)"racer", 5, 1u << 0);
		r->adds += 1000;
	}
	return NULL;
}

static void test_stats_topk_concurrent_reader_sees_whole_slots(void)
{
	struct topk_race r = {.t = topk_new()};
	pthread_t th;
	CU_ASSERT_FATAL(pthread_create(&th, NULL, topk_race_writer, &r) == 0);

	unsigned reads = 0, torn = 0;
	uint64_t last = 0;
	bool backwards = false;
	const struct stats_topk *one[1] = {r.t};
	double end = now_seconds() + 0.2;
	while (now_seconds() < end) {
		struct stats_top_entry e;
		if (!stats_topk_find(one, 1, (const uint8_t *)"racer", 5, &e))
			continue;
		reads++;
		if (e.count != e.extra[0] || e.err != 0)
			torn++;
		if (e.count < last)
			backwards = true;
		last = e.count;
	}
	atomic_store(&r.stop, 1);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(torn, 0);
	CU_ASSERT_FALSE(backwards);
	CU_ASSERT(reads > 100);
	CU_ASSERT(r.adds > 1000);
	free(r.t);
}

/* ------------------------------------------------------------------ */
/* Client keys */

static void test_stats_client_key(void)
{
	uint8_t k[17];
	struct sockaddr_storage ss;

	ss = sa_from_text("192.0.2.77");
	CU_ASSERT_EQUAL(stats_client_key((struct sockaddr *)&ss, false, k), 5);
	CU_ASSERT(memcmp(k, "\x04\xc0\x00\x02\x4d", 5) == 0);
	CU_ASSERT_EQUAL(stats_client_key((struct sockaddr *)&ss, true, k), 5);
	CU_ASSERT(memcmp(k, "\x04\xc0\x00\x02\x00", 5) == 0);

	ss = sa_from_text("::ffff:192.0.2.77");
	CU_ASSERT_EQUAL(stats_client_key((struct sockaddr *)&ss, false, k), 5);
	CU_ASSERT(memcmp(k, "\x04\xc0\x00\x02\x4d", 5) == 0);
	CU_ASSERT_EQUAL(stats_client_key((struct sockaddr *)&ss, true, k), 5);
	CU_ASSERT(memcmp(k, "\x04\xc0\x00\x02\x00", 5) == 0);

	ss = sa_from_text("2001:db8:1:2:3:4:5:6");
	CU_ASSERT_EQUAL(stats_client_key((struct sockaddr *)&ss, false, k), 17);
	CU_ASSERT(memcmp(k, "\x06\x20\x01\x0d\xb8\x00\x01\x00\x02\x00\x03\x00\x04\x00\x05\x00\x06", 17) == 0);
	CU_ASSERT_EQUAL(stats_client_key((struct sockaddr *)&ss, true, k), 17);
	CU_ASSERT(memcmp(k, "\x06\x20\x01\x0d\xb8\x00\x01\0\0\0\0\0\0\0\0\0\0", 17) == 0);

	/* ::1 and ::192.0.2.77 (IPv4-compatible, not mapped) stay IPv6. */
	ss = sa_from_text("::192.0.2.77");
	CU_ASSERT_EQUAL(stats_client_key((struct sockaddr *)&ss, false, k), 17);
	CU_ASSERT_EQUAL(k[0], 6);

	struct sockaddr_un un;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	CU_ASSERT_EQUAL(stats_client_key((struct sockaddr *)&un, false, k), 0);
	CU_ASSERT_EQUAL(stats_client_key(NULL, false, k), 0);
}

/* ------------------------------------------------------------------ */
/* Query log */

static struct stats_qlog_entry qentry(int64_t t, const char *name)
{
	struct stats_qlog_entry e;
	memset(&e, 0, sizeof(e));
	e.time_ms = t;
	e.latency_us = (uint32_t)t * 3;
	e.qtype = 15;
	e.qname_len = (uint8_t)strlen(name);
	memcpy(e.qname, name, e.qname_len);
	return e;
}

static void test_stats_qlog_wraps_newest_first(void)
{
	struct stats_qlog q;
	CU_ASSERT_EQUAL_FATAL(stats_qlog_init(&q, 8), 0);
	struct stats_qlog_entry out[100];
	CU_ASSERT_EQUAL(stats_qlog_read(&q, out, 100), 0);

	for (int i = 0; i < 3; i++) {
		struct stats_qlog_entry e = qentry(i, i == 1 ? "one" : "other");
		stats_qlog_add(&q, &e);
	}
	CU_ASSERT_EQUAL_FATAL(stats_qlog_read(&q, out, 100), 3);
	CU_ASSERT_EQUAL(out[0].time_ms, 2);
	CU_ASSERT_EQUAL(out[1].time_ms, 1);
	CU_ASSERT_EQUAL(out[2].time_ms, 0);
	CU_ASSERT(out[1].qname_len == 3 && memcmp(out[1].qname, "one", 3) == 0);
	CU_ASSERT_EQUAL(out[1].latency_us, 3);
	CU_ASSERT_EQUAL(out[1].qtype, 15);

	for (int i = 3; i < 20; i++) {
		struct stats_qlog_entry e = qentry(i, "n");
		stats_qlog_add(&q, &e);
	}
	CU_ASSERT_EQUAL_FATAL(stats_qlog_read(&q, out, 100), 8);
	for (int i = 0; i < 8; i++)
		CU_ASSERT_EQUAL(out[i].time_ms, 19 - i);
	CU_ASSERT_EQUAL_FATAL(stats_qlog_read(&q, out, 3), 3);
	CU_ASSERT_EQUAL(out[0].time_ms, 19);
	CU_ASSERT_EQUAL(out[2].time_ms, 17);
	CU_ASSERT_EQUAL(stats_qlog_read(&q, out, 0), 0);
	stats_qlog_free(&q);
}

static void test_stats_qlog_size_rounds_up(void)
{
	struct stats_qlog q;
	struct stats_qlog_entry out[2100];

	CU_ASSERT_EQUAL_FATAL(stats_qlog_init(&q, 1000), 0);
	CU_ASSERT_EQUAL(q.mask, 1023);
	for (int i = 0; i < 2000; i++) {
		struct stats_qlog_entry e = qentry(i, "x");
		stats_qlog_add(&q, &e);
	}
	CU_ASSERT_EQUAL(stats_qlog_read(&q, out, 2100), 1024);
	CU_ASSERT_EQUAL(out[1023].time_ms, 2000 - 1024);
	stats_qlog_free(&q);

	CU_ASSERT_EQUAL_FATAL(stats_qlog_init(&q, 1024), 0);
	CU_ASSERT_EQUAL(q.mask, 1023);
	stats_qlog_free(&q);

	CU_ASSERT_EQUAL_FATAL(stats_qlog_init(&q, 1), 0);
	CU_ASSERT_EQUAL(q.mask, 0);
	for (int i = 0; i < 5; i++) {
		struct stats_qlog_entry e = qentry(i, "x");
		stats_qlog_add(&q, &e);
	}
	CU_ASSERT_EQUAL_FATAL(stats_qlog_read(&q, out, 10), 1);
	CU_ASSERT_EQUAL(out[0].time_ms, 4);
	stats_qlog_free(&q);
}

static void test_stats_qlog_disabled(void)
{
	struct stats_qlog q;
	struct stats_qlog_entry out[4];
	CU_ASSERT_EQUAL_FATAL(stats_qlog_init(&q, 0), 0);
	struct stats_qlog_entry e = qentry(1, "x");
	stats_qlog_add(&q, &e);
	CU_ASSERT_EQUAL(stats_qlog_read(&q, out, 4), 0);
	stats_qlog_free(&q);
	stats_qlog_free(&q); /* freeing twice is harmless */
}

static void test_stats_qlog_copies_only_used_name_bytes(void)
{
	/* An entry allocated only up to its name's end: copying all of
	 * qname would read past it, which ASan reports. */
	size_t fixed = offsetof(struct stats_qlog_entry, qname);
	struct stats_qlog_entry *e = malloc(fixed + 4);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	memset(e, 0, fixed + 4);
	e->time_ms = 42;
	e->qname_len = 4;
	memcpy((uint8_t *)e + fixed, "abcd", 4);

	struct stats_qlog q;
	CU_ASSERT_EQUAL_FATAL(stats_qlog_init(&q, 4), 0);
	stats_qlog_add(&q, e);
	struct stats_qlog_entry out[1];
	CU_ASSERT_EQUAL_FATAL(stats_qlog_read(&q, out, 1), 1);
	CU_ASSERT_EQUAL(out[0].time_ms, 42);
	CU_ASSERT(out[0].qname_len == 4 && memcmp(out[0].qname, "abcd", 4) == 0);
	stats_qlog_free(&q);
	free(e);
}

/* Every field of entry k derives from k, so a reader can tell whether what
 * it got was written in one go. */
static void qlog_race_fill(struct stats_qlog_entry *e, uint64_t k)
{
	e->time_ms = (int64_t)k;
	e->latency_us = (uint32_t)(k * 2654435761u);
	e->qtype = (uint16_t)(k ^ 0x5A5A);
	e->rcode = (uint8_t)(k % 16);
	e->flags = (uint8_t)((k >> 4) & 0x3F);
	e->source = (uint8_t)(k >> 8);
	e->client_len = (uint8_t)(1 + k % 17);
	for (unsigned j = 0; j < sizeof(e->client); j++)
		e->client[j] = (uint8_t)(k + j);
	e->qname_len = (uint8_t)(1 + k % 255);
	for (unsigned j = 0; j < e->qname_len; j++)
		e->qname[j] = (uint8_t)(k * 31 + j);
}

static bool qlog_race_consistent(const struct stats_qlog_entry *e)
{
	struct stats_qlog_entry want;
	qlog_race_fill(&want, (uint64_t)e->time_ms);
	return e->latency_us == want.latency_us && e->qtype == want.qtype && e->rcode == want.rcode &&
	       e->flags == want.flags && e->source == want.source && e->client_len == want.client_len &&
	       memcmp(e->client, want.client, sizeof(want.client)) == 0 && e->qname_len == want.qname_len &&
	       memcmp(e->qname, want.qname, want.qname_len) == 0;
}

struct qlog_race {
	struct stats_qlog q;
	_Atomic int stop;
	uint64_t written;
	unsigned reads, entries, torn, out_of_order;
};

static void *qlog_race_writer(void *arg)
{
	struct qlog_race *r = arg;
	struct stats_qlog_entry e;
	uint64_t k = 0;
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		qlog_race_fill(&e, k++);
		stats_qlog_add(&r->q, &e);
	}
	r->written = k;
	return NULL;
}

static void *qlog_race_reader(void *arg)
{
	struct qlog_race *r = arg;
	static struct stats_qlog_entry out[64];
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		size_t n = stats_qlog_read(&r->q, out, 64);
		r->reads++;
		for (size_t i = 0; i < n; i++) {
			r->entries++;
			if (!qlog_race_consistent(&out[i]))
				r->torn++;
			/* Newest first with nothing skipped in between. */
			if (i > 0 && out[i].time_ms != out[i - 1].time_ms - 1)
				r->out_of_order++;
		}
	}
	return NULL;
}

static void test_stats_qlog_concurrent_reader_never_sees_torn_entries(void)
{
	static struct qlog_race r;
	memset(&r, 0, sizeof(r));
	/* A small ring, so that the writer laps the reader all the time. */
	CU_ASSERT_EQUAL_FATAL(stats_qlog_init(&r.q, 64), 0);
	pthread_t w, rd;
	CU_ASSERT_FATAL(pthread_create(&w, NULL, qlog_race_writer, &r) == 0);
	CU_ASSERT_FATAL(pthread_create(&rd, NULL, qlog_race_reader, &r) == 0);
	struct timespec pause = {0, 300 * 1000 * 1000};
	nanosleep(&pause, NULL);
	atomic_store(&r.stop, 1);
	pthread_join(w, NULL);
	pthread_join(rd, NULL);

	CU_ASSERT_EQUAL(r.torn, 0);
	CU_ASSERT_EQUAL(r.out_of_order, 0);
	CU_ASSERT(r.written > 10000);
	CU_ASSERT(r.entries > 1000);

	/* Once the writer stops, the whole ring reads back in order. */
	struct stats_qlog_entry out[64];
	CU_ASSERT_EQUAL_FATAL(stats_qlog_read(&r.q, out, 64), 64);
	for (int i = 0; i < 64; i++) {
		CU_ASSERT_EQUAL(out[i].time_ms, (int64_t)r.written - 1 - i);
		CU_ASSERT(qlog_race_consistent(&out[i]));
	}
	stats_qlog_free(&r.q);
}

/* ------------------------------------------------------------------ */
/* Recorder */

static const uint8_t name_www[] = "\3www\7example\3com";  /* with its terminating 0 */
static const uint8_t name_ads[] = "\3ads\7example\3net";

static struct stats_event event(const struct sockaddr_storage *client, const uint8_t *qname, size_t qname_len,
                                uint8_t flags, uint8_t rcode, uint32_t latency_us, int64_t t)
{
	return (struct stats_event){
		.time_ms = t, .latency_us = latency_us, .client = (const struct sockaddr *)client,
		.qname = qname, .qname_len = qname_len, .qtype = 1, .rcode = rcode, .flags = flags,
		.source = (flags & STATS_QLOG_BLOCKED) ? 2 : 0,
	};
}

static void test_stats_recorder_routes(void)
{
	struct stats_recorder r;
	CU_ASSERT_EQUAL_FATAL(stats_recorder_init(&r, 16, true), 0);
	struct sockaddr_storage c = sa_from_text("192.0.2.9");
	struct sockaddr_storage c6 = sa_from_text("2001:db8:aa:bb::1");
	const size_t www = sizeof(name_www), ads = sizeof(name_ads);

	struct stats_event evs[] = {
		event(&c, name_www, www, STATS_QLOG_CACHED, 0, 50, 1000),
		event(&c, name_www, www, STATS_QLOG_RECURSED, 3, 20000, 1001),
		event(&c, name_ads, ads, STATS_QLOG_BLOCKED, 0, 5, 1002),
		event(&c, name_www, www, STATS_QLOG_CACHED | STATS_QLOG_RECURSED | STATS_QLOG_TCP, 0, 70, 1003),
		event(&c, name_www, www, STATS_QLOG_RECURSED | STATS_QLOG_SECURE, 2, 3000000, 1004),
		event(&c6, name_www, 0, 0, 1, 1, 1005), /* no name: malformed */
	};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		stats_record(&r, &evs[i]);

	/* Latencies: CACHED to the hit histogram even when it recursed too. */
	struct stats_hist_snapshot hit = snapshot_of(&r.latency[STATS_LAT_HIT]);
	struct stats_hist_snapshot rec = snapshot_of(&r.latency[STATS_LAT_RECURSION]);
	CU_ASSERT_EQUAL(hit.count, 2);
	CU_ASSERT_EQUAL(hit.sum_us, 120);
	CU_ASSERT_EQUAL(hit.bucket[4], 1); /* 50 in (40, 60] */
	CU_ASSERT_EQUAL(hit.bucket[5], 1); /* 70 in (60, 100] */
	CU_ASSERT_EQUAL(rec.count, 2);
	CU_ASSERT_EQUAL(rec.sum_us, 3020000);

	const struct stats_topk *names[1] = {r.top[STATS_TOP_NAMES]};
	const struct stats_topk *blocked[1] = {r.top[STATS_TOP_BLOCKED]};
	const struct stats_topk *clients[1] = {r.top[STATS_TOP_CLIENTS]};
	struct stats_top_entry e, out[8];
	CU_ASSERT_TRUE(stats_topk_find(names, 1, name_www, www, &e));
	CU_ASSERT_EQUAL(e.count, 4);
	CU_ASSERT_TRUE(stats_topk_find(names, 1, name_ads, ads, &e));
	CU_ASSERT_EQUAL(e.count, 1);
	CU_ASSERT_EQUAL(stats_topk_merge(names, 1, out, 8), 2);
	CU_ASSERT_EQUAL_FATAL(stats_topk_merge(blocked, 1, out, 8), 1);
	CU_ASSERT(out[0].key_len == ads && memcmp(out[0].key, name_ads, ads) == 0);

	/* Clients are anonymised: 192.0.2.9 is kept as 192.0.2.0. */
	uint8_t key[17];
	CU_ASSERT_EQUAL(stats_client_key((struct sockaddr *)&c, true, key), 5);
	CU_ASSERT_TRUE_FATAL(stats_topk_find(clients, 1, key, 5, &e));
	CU_ASSERT_EQUAL(e.count, 5);
	CU_ASSERT_EQUAL(e.extra[STATS_CLIENT_BLOCKED], 1);
	CU_ASSERT_EQUAL(e.extra[STATS_CLIENT_CACHED], 2);
	CU_ASSERT_EQUAL(e.extra[STATS_CLIENT_NXDOMAIN], 1);
	CU_ASSERT_EQUAL(e.extra[STATS_CLIENT_SERVFAIL], 1);
	CU_ASSERT_EQUAL(stats_client_key((struct sockaddr *)&c, false, key), 5);
	CU_ASSERT_FALSE(stats_topk_find(clients, 1, key, 5, &e));
	CU_ASSERT_EQUAL(stats_client_key((struct sockaddr *)&c6, true, key), 17);
	CU_ASSERT_TRUE(stats_topk_find(clients, 1, key, 17, &e));
	CU_ASSERT_EQUAL(e.count, 1);
	CU_ASSERT_EQUAL(stats_topk_merge(clients, 1, out, 8), 2);

	/* The log has them all, newest first, clients anonymised. */
	struct stats_qlog_entry log[16];
	CU_ASSERT_EQUAL_FATAL(stats_qlog_read(&r.qlog, log, 16), 6);
	for (int i = 0; i < 6; i++) {
		const struct stats_event *ev = &evs[5 - i];
		CU_ASSERT_EQUAL(log[i].time_ms, ev->time_ms);
		CU_ASSERT_EQUAL(log[i].latency_us, ev->latency_us);
		CU_ASSERT_EQUAL(log[i].flags, ev->flags);
		CU_ASSERT_EQUAL(log[i].rcode, ev->rcode);
		CU_ASSERT_EQUAL(log[i].source, ev->source);
		CU_ASSERT_EQUAL(log[i].qtype, 1);
		CU_ASSERT_EQUAL(log[i].qname_len, ev->qname_len);
		CU_ASSERT(memcmp(log[i].qname, ev->qname, ev->qname_len) == 0);
	}
	CU_ASSERT_EQUAL(log[0].client_len, 17);
	CU_ASSERT_EQUAL(log[0].client[0], 6);
	CU_ASSERT(memcmp(log[0].client + 7, "\0\0\0\0\0\0\0\0\0\0", 10) == 0);
	CU_ASSERT_EQUAL(log[1].client_len, 5);
	CU_ASSERT(memcmp(log[1].client, "\x04\xc0\x00\x02\x00", 5) == 0);

	/* Every answer counts once, under its rcode. */
	uint64_t by_rcode[STATS_RCODES];
	const struct stats_recorder *one = &r;
	stats_answers_merge(&one, 1, by_rcode);
	uint64_t want[STATS_RCODES] = { 0 };
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
		want[evs[i].rcode & (STATS_RCODES - 1)]++;
	for (int rc = 0; rc < STATS_RCODES; rc++)
		CU_ASSERT_EQUAL(by_rcode[rc], want[rc]);
	CU_ASSERT_EQUAL(by_rcode[2], 1);
	CU_ASSERT_EQUAL(by_rcode[3], 1);
	stats_recorder_free(&r);
}

static void test_stats_recorder_without_log_or_anonymising(void)
{
	struct stats_recorder r;
	CU_ASSERT_EQUAL_FATAL(stats_recorder_init(&r, 0, false), 0);
	struct sockaddr_storage c = sa_from_text("192.0.2.9");
	struct stats_event ev = event(&c, name_www, sizeof(name_www), 0, 0, 10, 1);
	stats_record(&r, &ev);
	/* Neither cached nor recursed: no latency anywhere. */
	CU_ASSERT_EQUAL(snapshot_of(&r.latency[STATS_LAT_HIT]).count, 0);
	CU_ASSERT_EQUAL(snapshot_of(&r.latency[STATS_LAT_RECURSION]).count, 0);
	struct stats_qlog_entry log[2];
	CU_ASSERT_EQUAL(stats_qlog_read(&r.qlog, log, 2), 0);

	uint8_t key[17];
	const struct stats_topk *clients[1] = {r.top[STATS_TOP_CLIENTS]};
	struct stats_top_entry e;
	CU_ASSERT_EQUAL(stats_client_key((struct sockaddr *)&c, false, key), 5);
	CU_ASSERT_TRUE(stats_topk_find(clients, 1, key, 5, &e));
	CU_ASSERT_EQUAL(e.count, 1);

	/* No client address (an internal query): names still counted. */
	ev.client = NULL;
	stats_record(&r, &ev);
	const struct stats_topk *names[1] = {r.top[STATS_TOP_NAMES]};
	CU_ASSERT_TRUE(stats_topk_find(names, 1, name_www, sizeof(name_www), &e));
	CU_ASSERT_EQUAL(e.count, 2);
	stats_recorder_free(&r);
	stats_recorder_free(&r);
}

/* Names of every length, each in a buffer of exactly its size (so that
 * ASan sees any read past it), come back whole from the log and the
 * sketch. */
static void test_stats_recorder_copies_names_of_every_length(void)
{
	struct stats_recorder r;
	CU_ASSERT_EQUAL_FATAL(stats_recorder_init(&r, 1, false), 0);
	struct sockaddr_storage c = sa_from_text("198.51.100.1");
	const struct stats_topk *names[1] = {r.top[STATS_TOP_NAMES]};
	unsigned wrong_log = 0, wrong_top = 0;

	for (size_t len = 1; len <= 300; len++) {
		uint8_t *name = malloc(len);
		CU_ASSERT_PTR_NOT_NULL_FATAL(name);
		for (size_t i = 0; i < len; i++)
			name[i] = (uint8_t)(len * 13 + i);
		struct stats_event ev = event(&c, name, len, STATS_QLOG_CACHED, 0, 1, (int64_t)len);
		stats_record(&r, &ev);

		size_t kept = len > 255 ? 255 : len;
		struct stats_qlog_entry e;
		if (stats_qlog_read(&r.qlog, &e, 1) != 1 || e.qname_len != kept || memcmp(e.qname, name, kept) != 0)
			wrong_log++;
		struct stats_top_entry t;
		if (!stats_topk_find(names, 1, name, len, &t) || t.key_len != kept || memcmp(t.key, name, kept) != 0)
			wrong_top++;
		free(name);
	}
	CU_ASSERT_EQUAL(wrong_log, 0);
	CU_ASSERT_EQUAL(wrong_top, 0);
	stats_recorder_free(&r);
}

/* ------------------------------------------------------------------ */
/* Time series */

static struct stats_point point(int64_t t)
{
	float f = (float)t;
	return (struct stats_point){
		.t = t, .qps = f + 0.5f, .hit_ratio = 1.0f / (float)(t + 3), .blocked_ps = -f,
		.servfail_ps = f * 1e-7f, .stale_ps = 0.0f, .hit_p50_ms = 0.03125f, .hit_p95_ms = f * 2,
		.hit_p99_ms = 1e30f, .recursion_p50_ms = 20.25f, .recursion_p95_ms = 80.5f,
		.recursion_p99_ms = 150.125f + f,
	};
}

static bool point_equal(const struct stats_point *a, const struct stats_point *b)
{
	return a->t == b->t && a->qps == b->qps && a->hit_ratio == b->hit_ratio &&
	       a->blocked_ps == b->blocked_ps && a->servfail_ps == b->servfail_ps && a->stale_ps == b->stale_ps &&
	       a->hit_p50_ms == b->hit_p50_ms && a->hit_p95_ms == b->hit_p95_ms &&
	       a->hit_p99_ms == b->hit_p99_ms && a->recursion_p50_ms == b->recursion_p50_ms &&
	       a->recursion_p95_ms == b->recursion_p95_ms && a->recursion_p99_ms == b->recursion_p99_ms;
}

static void test_stats_series_push_wrap_get(void)
{
	struct stats_series s;
	struct stats_point out[4];
	CU_ASSERT_EQUAL_FATAL(stats_series_init(&s, 5, 4), 0);
	CU_ASSERT_EQUAL(stats_series_get(&s, out), 0);
	for (int t = 1; t <= 2; t++) {
		struct stats_point p = point(t);
		stats_series_push(&s, &p);
	}
	CU_ASSERT_EQUAL_FATAL(stats_series_get(&s, out), 2);
	CU_ASSERT_EQUAL(out[0].t, 1);
	CU_ASSERT_EQUAL(out[1].t, 2);
	for (int t = 3; t <= 6; t++) {
		struct stats_point p = point(t);
		stats_series_push(&s, &p);
	}
	CU_ASSERT_EQUAL_FATAL(stats_series_get(&s, out), 4);
	for (int i = 0; i < 4; i++) {
		struct stats_point want = point(3 + i);
		CU_ASSERT(point_equal(&out[i], &want));
	}
	stats_series_free(&s);

	CU_ASSERT_EQUAL(stats_series_init(&s, 0, 4), -1);
	CU_ASSERT_EQUAL(stats_series_init(&s, 5, 0), -1);
}

static void test_stats_series_save_load_round_trip(void)
{
	struct stats_series s, back;
	const int64_t now = 1765000000;
	CU_ASSERT_EQUAL_FATAL(stats_series_init(&s, 5, 10), 0);
	/* 13 pushes into 10: the saved ring starts mid-array. */
	for (int i = 12; i >= 0; i--) {
		struct stats_point p = point(now - 5 * i);
		stats_series_push(&s, &p);
	}
	size_t len = 0;
	uint8_t *buf = stats_series_save(&s, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_EQUAL_FATAL(len, 16 + 10 * 52);
	/* The byte order is fixed, whatever the host's. */
	CU_ASSERT(memcmp(buf, "MXTS\x01\0\0\0\x05\0\0\0\x0a\0\0\0", 16) == 0);
	uint64_t t0 = (uint64_t)(now - 45);
	for (int i = 0; i < 8; i++)
		CU_ASSERT_EQUAL(buf[16 + i], (uint8_t)(t0 >> (8 * i)));
	/* qps = t + 0.5 as float, little-endian IEEE bits. */
	float qps = (float)(now - 45) + 0.5f;
	uint32_t bits;
	memcpy(&bits, &qps, 4);
	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(buf[24 + i], (uint8_t)(bits >> (8 * i)));

	CU_ASSERT_EQUAL_FATAL(stats_series_init(&back, 5, 10), 0);
	struct stats_point junk = point(now - 1);
	stats_series_push(&back, &junk);
	CU_ASSERT_EQUAL(stats_series_load(&back, buf, len, now), 10);
	struct stats_point a[10], b[10];
	CU_ASSERT_EQUAL_FATAL(stats_series_get(&s, a), 10);
	CU_ASSERT_EQUAL_FATAL(stats_series_get(&back, b), 10);
	for (int i = 0; i < 10; i++)
		CU_ASSERT(point_equal(&a[i], &b[i]));

	/* And it keeps working as a ring afterwards. */
	struct stats_point next = point(now + 5);
	stats_series_push(&back, &next);
	CU_ASSERT_EQUAL_FATAL(stats_series_get(&back, b), 10);
	CU_ASSERT_EQUAL(b[0].t, now - 40);
	CU_ASSERT_EQUAL(b[9].t, now + 5);

	/* An empty series saves and loads as empty. */
	struct stats_series empty;
	CU_ASSERT_EQUAL_FATAL(stats_series_init(&empty, 5, 10), 0);
	size_t elen = 0;
	uint8_t *ebuf = stats_series_save(&empty, &elen);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ebuf);
	CU_ASSERT_EQUAL(elen, 16);
	CU_ASSERT_EQUAL(stats_series_load(&back, ebuf, elen, now), 0);
	CU_ASSERT_EQUAL(stats_series_get(&back, b), 0);
	free(ebuf);
	stats_series_free(&empty);

	free(buf);
	stats_series_free(&s);
	stats_series_free(&back);
}

static void test_stats_series_load_rejects_bad_buffers(void)
{
	struct stats_series s, dst;
	const int64_t now = 1000000;
	CU_ASSERT_EQUAL_FATAL(stats_series_init(&s, 5, 8), 0);
	for (int i = 0; i < 4; i++) {
		struct stats_point p = point(now - 5 * i);
		stats_series_push(&s, &p);
	}
	size_t len = 0;
	uint8_t *good = stats_series_save(&s, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(good);
	uint8_t *bad = malloc(len + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bad);

	CU_ASSERT_EQUAL_FATAL(stats_series_init(&dst, 5, 8), 0);
	struct stats_point keep = point(now - 3);
	stats_series_push(&dst, &keep);

	memcpy(bad, good, len);
	bad[0] = 'X';
	CU_ASSERT_EQUAL(stats_series_load(&dst, bad, len, now), -1);
	memcpy(bad, good, len);
	bad[4] = 2; /* version */
	CU_ASSERT_EQUAL(stats_series_load(&dst, bad, len, now), -1);
	memcpy(bad, good, len);
	bad[12] = 5; /* count says one more point than there is */
	CU_ASSERT_EQUAL(stats_series_load(&dst, bad, len, now), -1);
	memcpy(bad, good, len);
	bad[len] = 0;
	CU_ASSERT_EQUAL(stats_series_load(&dst, bad, len + 1, now), -1);
	CU_ASSERT_EQUAL(stats_series_load(&dst, good, len - 1, now), -1);
	CU_ASSERT_EQUAL(stats_series_load(&dst, good, 15, now), -1);
	CU_ASSERT_EQUAL(stats_series_load(&dst, good, 0, now), -1);
	CU_ASSERT_EQUAL(stats_series_load(&dst, NULL, 0, now), -1);

	/* Another step: the points would mean other times. */
	struct stats_series other;
	CU_ASSERT_EQUAL_FATAL(stats_series_init(&other, 60, 8), 0);
	CU_ASSERT_EQUAL(stats_series_load(&other, good, len, now), -1);
	stats_series_free(&other);

	/* A rejected buffer leaves the series as it was. */
	struct stats_point out[8];
	CU_ASSERT_EQUAL_FATAL(stats_series_get(&dst, out), 1);
	CU_ASSERT(point_equal(&out[0], &keep));

	CU_ASSERT_EQUAL(stats_series_load(&dst, good, len, now), 4);
	free(bad);
	free(good);
	stats_series_free(&s);
	stats_series_free(&dst);
}

static void test_stats_series_load_drops_old_points(void)
{
	struct stats_series s, dst;
	CU_ASSERT_EQUAL_FATAL(stats_series_init(&s, 10, 16), 0);
	static const int64_t times[] = {900, 930, 940, 950, 990};
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		struct stats_point p = point(times[i]);
		stats_series_push(&s, &p);
	}
	size_t len = 0;
	uint8_t *buf = stats_series_save(&s, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);

	/* cap 6 x 10 s before now = 1000 is 940: only later points are kept. */
	CU_ASSERT_EQUAL_FATAL(stats_series_init(&dst, 10, 6), 0);
	CU_ASSERT_EQUAL(stats_series_load(&dst, buf, len, 1000), 2);
	struct stats_point out[16];
	CU_ASSERT_EQUAL_FATAL(stats_series_get(&dst, out), 2);
	CU_ASSERT_EQUAL(out[0].t, 950);
	CU_ASSERT_EQUAL(out[1].t, 990);

	/* Long after: nothing survives. */
	CU_ASSERT_EQUAL(stats_series_load(&dst, buf, len, 100000), 0);
	CU_ASSERT_EQUAL(stats_series_get(&dst, out), 0);

	/* More recent points than room: the newest are kept, in order. */
	stats_series_free(&s);
	CU_ASSERT_EQUAL_FATAL(stats_series_init(&s, 10, 16), 0);
	for (int i = 0; i < 16; i++) {
		struct stats_point p = point(2000 + 10 * i);
		stats_series_push(&s, &p);
	}
	free(buf);
	buf = stats_series_save(&s, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	struct stats_series small;
	CU_ASSERT_EQUAL_FATAL(stats_series_init(&small, 10, 4), 0);
	CU_ASSERT_EQUAL(stats_series_load(&small, buf, len, 2000 + 10 * 15), 4);
	CU_ASSERT_EQUAL_FATAL(stats_series_get(&small, out), 4);
	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(out[i].t, 2000 + 10 * (12 + i));
	stats_series_free(&small);

	free(buf);
	stats_series_free(&s);
	stats_series_free(&dst);
}

int main(void)
{
	static const struct unit_test tests[] = {
		T(test_stats_hist_bounds_are_five_per_decade),
		T(test_stats_hist_bucket_boundaries),
		T(test_stats_hist_sum_and_count),
		T(test_stats_hist_quantiles),
		T(test_stats_hist_diff),
		T(test_stats_hist_merge_adds),
		T(test_stats_topk_exact_when_few_keys),
		T(test_stats_topk_empty),
		T(test_stats_topk_heavy_hitters_survive_flood),
		T(test_stats_topk_merge_adds_same_key),
		T(test_stats_topk_find),
		T(test_stats_topk_extra_counters),
		T(test_stats_topk_long_keys_are_cut),
		T(test_stats_topk_concurrent_reader_sees_whole_slots),
		T(test_stats_client_key),
		T(test_stats_qlog_wraps_newest_first),
		T(test_stats_qlog_size_rounds_up),
		T(test_stats_qlog_disabled),
		T(test_stats_qlog_copies_only_used_name_bytes),
		T(test_stats_qlog_concurrent_reader_never_sees_torn_entries),
		T(test_stats_recorder_routes),
		T(test_stats_recorder_without_log_or_anonymising),
		T(test_stats_recorder_copies_names_of_every_length),
		T(test_stats_series_push_wrap_get),
		T(test_stats_series_save_load_round_trip),
		T(test_stats_series_load_rejects_bad_buffers),
		T(test_stats_series_load_drops_old_points),
	};
	return unit_run("stats", NULL, NULL, tests, UNIT_COUNT(tests));
}
