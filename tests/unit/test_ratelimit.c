/* test_ratelimit.c -- unit tests of resolver/ratelimit: token buckets per
 * prefix, refill, slip, prefix grouping, eviction and floods.
 *
 * Time is passed in by hand (now_ms), so nothing here sleeps. */
#include "ratelimit.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Helpers */

static struct sockaddr_storage sa_v4(uint32_t addr)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	memset(&ss, 0, sizeof(ss));
	s4->sin_family = AF_INET;
	s4->sin_addr.s_addr = htonl(addr);
	return ss;
}

static enum ratelimit_verdict check(struct ratelimit *rl, const char *client, int64_t now_ms)
{
	struct sockaddr_storage ss = sa_from_text(client);
	return ratelimit_check(rl, (const struct sockaddr *)&ss, now_ms);
}

/* Send n answers to client at now_ms; return how many passed. */
static unsigned passes(struct ratelimit *rl, const char *client, int64_t now_ms, unsigned n)
{
	unsigned ok = 0;
	for (unsigned i = 0; i < n; i++)
		ok += check(rl, client, now_ms) == RATELIMIT_PASS;
	return ok;
}

static struct ratelimit_options opts(unsigned qps, unsigned burst, unsigned slip)
{
	return (struct ratelimit_options){
		.qps = qps, .burst = burst, .slip = slip, .v4_prefix = 24, .v6_prefix = 56, .table_size = 1024,
	};
}

/* ------------------------------------------------------------------ */

static void test_ratelimit_passes_below_rate(void)
{
	struct ratelimit_options o = opts(10, 20, 2);
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	/* 5 a second against 10 allowed, for a minute. */
	for (int64_t t = 1000; t < 61000; t += 200)
		CU_ASSERT_EQUAL(check(rl, "192.0.2.1", t), RATELIMIT_PASS);
	/* Exactly the rate: 10 a second, evenly spaced, from an empty bucket. */
	CU_ASSERT_EQUAL(passes(rl, "198.51.100.1", 100000, 20), 20);
	for (int64_t t = 100100; t < 110000; t += 100)
		CU_ASSERT_EQUAL(check(rl, "198.51.100.1", t), RATELIMIT_PASS);
	CU_ASSERT_EQUAL(ratelimit_limited(rl), 0);
	ratelimit_free(rl);
}

static void test_ratelimit_limits_above_burst(void)
{
	struct ratelimit_options o = opts(10, 20, 0);
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 5000, 20), 20);
	CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 5000), RATELIMIT_DROP);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 5000, 100), 0);
	CU_ASSERT_EQUAL(ratelimit_limited(rl), 101);
	ratelimit_free(rl);
}

static void test_ratelimit_burst_zero_means_qps(void)
{
	struct ratelimit_options o = opts(7, 0, 0);
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 0, 100), 7);
	ratelimit_free(rl);
}

static void test_ratelimit_refills_over_time(void)
{
	struct ratelimit_options o = opts(10, 20, 0);
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 1000, 50), 20);
	/* 10/s is one per 100 ms: nothing at 99 ms, one at 100 ms. */
	CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 1099), RATELIMIT_DROP);
	CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 1100), RATELIMIT_PASS);
	CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 1100), RATELIMIT_DROP);
	/* Partial tokens accumulate across calls: 50 ms + 50 ms is one. */
	CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 1150), RATELIMIT_DROP);
	CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 1200), RATELIMIT_PASS);
	/* Half a second is five. */
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 1700, 50), 5);
	/* A long wait fills up to burst and no further. */
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 3600 * 1000, 50), 20);
	/* Even after an absurdly long one (no overflow). */
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", INT64_MAX, 50), 20);
	ratelimit_free(rl);
}

static void test_ratelimit_clock_going_back_refills_nothing(void)
{
	struct ratelimit_options o = opts(10, 5, 0);
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 10000, 10), 5);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 0, 10), 0);
	/* And time is measured from the latest reading, not the earlier one. */
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 10099, 10), 0);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 10100, 10), 1);
	ratelimit_free(rl);
}

static void test_ratelimit_high_rates_do_not_overflow(void)
{
	struct ratelimit_options o = opts(UINT32_MAX, UINT32_MAX, 0);
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 0, 1000), 1000);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", INT64_MAX, 1000), 1000);
	ratelimit_free(rl);
}

static void test_ratelimit_slip_every_nth(void)
{
	struct ratelimit_options o = opts(1, 1, 3);
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 0), RATELIMIT_PASS);
	static const enum ratelimit_verdict want[] = {
		RATELIMIT_DROP, RATELIMIT_DROP, RATELIMIT_SLIP, RATELIMIT_DROP, RATELIMIT_DROP, RATELIMIT_SLIP,
		RATELIMIT_DROP, RATELIMIT_DROP, RATELIMIT_SLIP,
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 0), want[i]);
	CU_ASSERT_EQUAL(ratelimit_limited(rl), 9);
	ratelimit_free(rl);

	/* slip 1: every limited answer slips. */
	o = opts(1, 1, 1);
	rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 0), RATELIMIT_PASS);
	for (int i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 0), RATELIMIT_SLIP);
	ratelimit_free(rl);

	/* slip 0: none does. */
	o = opts(1, 1, 0);
	rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 0), RATELIMIT_PASS);
	for (int i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 0), RATELIMIT_DROP);
	ratelimit_free(rl);
}

static void test_ratelimit_slip_counts_per_bucket(void)
{
	struct ratelimit_options o = opts(1, 1, 2);
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 0), RATELIMIT_PASS);
	CU_ASSERT_EQUAL(check(rl, "198.51.100.1", 0), RATELIMIT_PASS);
	CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 0), RATELIMIT_DROP);
	/* Another prefix's first limited answer is its own first, not a second. */
	CU_ASSERT_EQUAL(check(rl, "198.51.100.1", 0), RATELIMIT_DROP);
	CU_ASSERT_EQUAL(check(rl, "192.0.2.1", 0), RATELIMIT_SLIP);
	CU_ASSERT_EQUAL(check(rl, "198.51.100.1", 0), RATELIMIT_SLIP);
	ratelimit_free(rl);
}

static void test_ratelimit_prefixes_are_independent(void)
{
	struct ratelimit_options o = opts(10, 10, 0);
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 0, 50), 10);
	/* The neighbouring /24s, and the same /24 in another /16, are fresh. */
	CU_ASSERT_EQUAL(passes(rl, "192.0.3.1", 0, 50), 10);
	CU_ASSERT_EQUAL(passes(rl, "192.0.1.255", 0, 50), 10);
	CU_ASSERT_EQUAL(passes(rl, "192.1.2.1", 0, 50), 10);
	CU_ASSERT_EQUAL(passes(rl, "2001:db8::1", 0, 50), 10);
	ratelimit_free(rl);
}

static void test_ratelimit_same_prefix_shares_bucket(void)
{
	struct ratelimit_options o = opts(10, 10, 0);
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 0, 6), 6);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.200", 0, 50), 4);
	CU_ASSERT_EQUAL(check(rl, "192.0.2.0", 0), RATELIMIT_DROP);
	CU_ASSERT_EQUAL(check(rl, "192.0.2.255", 0), RATELIMIT_DROP);
	ratelimit_free(rl);
}

static void test_ratelimit_ipv4_mapped_shares_ipv4_bucket(void)
{
	struct ratelimit_options o = opts(10, 10, 0);
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 0, 6), 6);
	CU_ASSERT_EQUAL(passes(rl, "::ffff:192.0.2.77", 0, 50), 4);
	ratelimit_free(rl);
}

static void test_ratelimit_v6_prefix_56(void)
{
	struct ratelimit_options o = opts(10, 10, 0);
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	/* 2001:db8:0:ab00::/56 holds ...:ab00:: to ...:abff:ffff:... */
	CU_ASSERT_EQUAL(passes(rl, "2001:db8:0:ab00::1", 0, 6), 6);
	CU_ASSERT_EQUAL(passes(rl, "2001:db8:0:abff:ffff:ffff:ffff:ffff", 0, 50), 4);
	CU_ASSERT_EQUAL(check(rl, "2001:db8:0:ab12:1234::5", 0), RATELIMIT_DROP);
	/* Next door on either side is another /56. */
	CU_ASSERT_EQUAL(passes(rl, "2001:db8:0:ac00::1", 0, 50), 10);
	CU_ASSERT_EQUAL(passes(rl, "2001:db8:0:aaff::1", 0, 50), 10);
	ratelimit_free(rl);
}

static void test_ratelimit_prefix_lengths_are_configurable(void)
{
	struct ratelimit_options o = opts(10, 10, 0);
	o.v4_prefix = 32;
	o.v6_prefix = 128;
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 0, 50), 10);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.2", 0, 50), 10);
	CU_ASSERT_EQUAL(passes(rl, "2001:db8::1", 0, 50), 10);
	CU_ASSERT_EQUAL(passes(rl, "2001:db8::2", 0, 50), 10);
	ratelimit_free(rl);

	o.v4_prefix = 8;
	o.v6_prefix = 16;
	rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(passes(rl, "10.1.2.3", 0, 6), 6);
	CU_ASSERT_EQUAL(passes(rl, "10.200.0.1", 0, 50), 4);
	CU_ASSERT_EQUAL(passes(rl, "2001:1::1", 0, 6), 6);
	CU_ASSERT_EQUAL(passes(rl, "2001:ffff::1", 0, 50), 4);
	ratelimit_free(rl);

	/* A /65 splits on the first bit of the low word. */
	o.v6_prefix = 65;
	rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(passes(rl, "2001:db8::1", 0, 6), 6);
	CU_ASSERT_EQUAL(passes(rl, "2001:db8::7fff:ffff:ffff:ffff", 0, 50), 4);
	CU_ASSERT_EQUAL(passes(rl, "2001:db8::8000:0:0:0", 0, 50), 10);
	ratelimit_free(rl);
}

static void test_ratelimit_disabled_when_qps_zero(void)
{
	struct ratelimit_options o = opts(0, 5, 1);
	o.table_size = 0;   /* no table is needed, so none is asked for */
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(passes(rl, "192.0.2.1", 0, 100000), 100000);
	CU_ASSERT_EQUAL(passes(rl, "2001:db8::1", 0, 1000), 1000);
	CU_ASSERT_EQUAL(ratelimit_limited(rl), 0);
	ratelimit_free(rl);
}

static void test_ratelimit_rejects_bad_options(void)
{
	struct ratelimit_options o = opts(10, 10, 0);
	o.v4_prefix = 7;
	CU_ASSERT_PTR_NULL(ratelimit_new(&o));
	o = opts(10, 10, 0);
	o.v4_prefix = 33;
	CU_ASSERT_PTR_NULL(ratelimit_new(&o));
	o = opts(10, 10, 0);
	o.v6_prefix = 15;
	CU_ASSERT_PTR_NULL(ratelimit_new(&o));
	o = opts(10, 10, 0);
	o.v6_prefix = 129;
	CU_ASSERT_PTR_NULL(ratelimit_new(&o));
	o = opts(10, 10, 0);
	o.table_size = 0;
	CU_ASSERT_PTR_NULL(ratelimit_new(&o));
	o.table_size = SIZE_MAX;
	CU_ASSERT_PTR_NULL(ratelimit_new(&o));
	CU_ASSERT_PTR_NULL(ratelimit_new(NULL));
	ratelimit_free(NULL);
}

static void test_ratelimit_unknown_family_passes(void)
{
	struct ratelimit_options o = opts(1, 1, 0);
	struct ratelimit *rl = ratelimit_new(&o);
	struct sockaddr_storage ss;
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	for (int i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(ratelimit_check(rl, (const struct sockaddr *)&ss, 0), RATELIMIT_PASS);
	ratelimit_free(rl);
}

static void test_ratelimit_newcomer_takes_a_slot_in_a_full_table(void)
{
	/* Four buckets in all: a fifth prefix must displace one, and the one
	 * it displaces is the least recently used, not the busy one. */
	struct ratelimit_options o = opts(1, 2, 0);
	o.table_size = 1;
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	CU_ASSERT_EQUAL(passes(rl, "10.0.1.1", 0, 5), 2);   /* the oldest */
	CU_ASSERT_EQUAL(passes(rl, "10.0.2.1", 1, 5), 2);
	CU_ASSERT_EQUAL(passes(rl, "10.0.3.1", 2, 5), 2);
	CU_ASSERT_EQUAL(passes(rl, "10.0.4.1", 3, 5), 2);
	CU_ASSERT_EQUAL(passes(rl, "10.0.5.1", 4, 5), 2);   /* displaces 10.0.1/24 */
	CU_ASSERT_EQUAL(passes(rl, "10.0.4.1", 5, 5), 0);   /* kept its state */
	CU_ASSERT_EQUAL(passes(rl, "10.0.1.1", 6, 5), 2);   /* forgotten: fresh */
	ratelimit_free(rl);
}

static void test_ratelimit_flood_of_sources_keeps_memory_bounded(void)
{
	/* One million distinct /24s through a 64k-bucket table, with a hot
	 * prefix asking every tenth query: memory is the table made at
	 * creation (the check never allocates), and the hot prefix stays
	 * limited throughout.  The flood is spread over 100 s at 10 k/s. */
	struct ratelimit_options o = opts(100, 100, 2);
	o.table_size = 65536;
	struct ratelimit *rl = ratelimit_new(&o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	struct sockaddr_storage hot = sa_from_text("203.0.113.9");
	uint64_t hot_pass = 0, hot_total = 0, flood_pass = 0;

	for (uint32_t i = 0; i < 1000000; i++) {
		int64_t now = i / 10;   /* ms */
		/* Distinct /24 per query, scattered over the address space. */
		uint32_t net = (i * 2654435761u) & 0xFFFFFFu;   /* odd multiplier: a bijection */
		if (net == 0xCB0071u)                            /* 203.0.113/24 is the hot one */
			net = 0xFFFFFFu;
		struct sockaddr_storage src = sa_v4(net << 8 | (i & 0xFF));
		flood_pass += ratelimit_check(rl, (const struct sockaddr *)&src, now) == RATELIMIT_PASS;
		if (i % 10 == 0) {
			hot_total++;
			hot_pass += ratelimit_check(rl, (const struct sockaddr *)&hot, now) == RATELIMIT_PASS;
		}
	}
	/* Every flood source asks once: each gets its first answer. */
	CU_ASSERT_EQUAL(flood_pass, 1000000);
	/* The hot prefix asked 1000/s for 100 s: it gets its burst plus
	 * 100/s, never more (an eviction would hand it a fresh burst). */
	CU_ASSERT_EQUAL(hot_total, 100000);
	CU_ASSERT(hot_pass <= 100 + 100 * 100);
	CU_ASSERT(hot_pass >= 100 * 100 - 100);
	CU_ASSERT(ratelimit_limited(rl) == hot_total - hot_pass);
	ratelimit_free(rl);
}

int main(void)
{
	static const struct unit_test tests[] = {
		T(test_ratelimit_passes_below_rate),
		T(test_ratelimit_limits_above_burst),
		T(test_ratelimit_burst_zero_means_qps),
		T(test_ratelimit_refills_over_time),
		T(test_ratelimit_clock_going_back_refills_nothing),
		T(test_ratelimit_high_rates_do_not_overflow),
		T(test_ratelimit_slip_every_nth),
		T(test_ratelimit_slip_counts_per_bucket),
		T(test_ratelimit_prefixes_are_independent),
		T(test_ratelimit_same_prefix_shares_bucket),
		T(test_ratelimit_ipv4_mapped_shares_ipv4_bucket),
		T(test_ratelimit_v6_prefix_56),
		T(test_ratelimit_prefix_lengths_are_configurable),
		T(test_ratelimit_disabled_when_qps_zero),
		T(test_ratelimit_rejects_bad_options),
		T(test_ratelimit_unknown_family_passes),
		T(test_ratelimit_newcomer_takes_a_slot_in_a_full_table),
		T(test_ratelimit_flood_of_sources_keeps_memory_bounded),
	};
	return unit_run("ratelimit", NULL, NULL, tests, UNIT_COUNT(tests));
}
