/* bench_stats.c -- what the dashboard's bookkeeping costs a worker
 *
 * A benchmark, not a test: it prints figures and fails only when the stats
 * API itself fails.  One thread, the recorder set up as a worker's (query
 * log of 4096 entries, clients not anonymised), and for each figure N calls
 * timed with CLOCK_MONOTONIC:
 *
 *   record, repeated names   stats_record on 256 names that stay in the
 *                            top-k tables (the common case: a name already
 *                            there is one set scan and a slot update)
 *   record, unique names     every name new: each one scans its set, takes
 *                            over the smallest slot and copies its key
 *   record, 90/10 mix        nine repeated names to one new one
 *   hist add                 stats_hist_add alone, latencies spread
 *                            log-uniformly from 1 us to 20 s
 *   topk add, present key    stats_topk_add alone on a key already there
 *   qlog add                 stats_qlog_add alone
 *   topk merge               the reading side: 8 full sketches merged into
 *                            a top 100, per merge (the web thread's cost)
 *
 * Names are wire form, 8 to 30 bytes, and the unique ones are made by
 * counting in place in one buffer, as a name sits in a just-received
 * packet; that counting (a few ns) is inside the unique figures.  Latency
 * and flag mixes come from small precomputed tables.
 *
 * usage: bench_stats [-n CALLS]   (default 2,000,000 per figure)
 */
#include "stats.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_HOT_NAMES 256       /* about two a set: all stay resident */
#define BENCH_CLIENTS 256
#define BENCH_TABLE 4096        /* latencies and flags, cycled */
#define BENCH_QLOG 4096
#define BENCH_MERGE_WORKERS 8
#define BENCH_MERGE_TOP 100

struct bench_name {
	uint8_t wire[64];
	size_t len;
};

static double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: reproducible inputs without libc's rand state. */
static uint64_t bench_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static size_t bench_wire_name(uint8_t *out, const char *dotted)
{
	size_t n = 0;
	const char *label = dotted;
	while (*label) {
		const char *dot = strchr(label, '.');
		size_t len = dot ? (size_t)(dot - label) : strlen(label);
		out[n++] = (uint8_t)len;
		memcpy(out + n, label, len);
		n += len;
		label += len + (dot != NULL);
	}
	out[n++] = 0;
	return n;
}

/* The unique name: "\x08" then 8 hex digits then example.org, counted up
 * in place. */
struct bench_counter_name {
	uint8_t wire[32];
	size_t len;
};

static void bench_counter_init(struct bench_counter_name *c)
{
	c->len = bench_wire_name(c->wire, "00000000.flood.example.org");
}

static void bench_counter_next(struct bench_counter_name *c)
{
	for (int i = 8; i >= 1; i--) {
		uint8_t d = c->wire[i];
		if (d == '9') {
			c->wire[i] = 'a';
			return;
		}
		if (d != 'f') {
			c->wire[i] = (uint8_t)(d + 1);
			return;
		}
		c->wire[i] = '0';
	}
}

struct bench_inputs {
	struct bench_name hot[BENCH_HOT_NAMES];
	struct sockaddr_in client[BENCH_CLIENTS];
	uint32_t latency[BENCH_TABLE];
	uint8_t flags[BENCH_TABLE];
	uint8_t rcode[BENCH_TABLE];
	uint16_t qtype[BENCH_TABLE];
};

static void bench_inputs_make(struct bench_inputs *in)
{
	static const char *const zones[] = {"example.com", "mail.example.net", "a.b.example.org", "co.uk"};
	static const uint16_t types[] = {1, 28, 15, 16, 1, 1, 28, 15};
	uint64_t seed = 0x9E3779B97F4A7C15ULL;

	for (unsigned i = 0; i < BENCH_HOT_NAMES; i++) {
		char dotted[64];
		snprintf(dotted, sizeof(dotted), "h%u.%s", i, zones[i % 4]);
		in->hot[i].len = bench_wire_name(in->hot[i].wire, dotted);
	}
	for (unsigned i = 0; i < BENCH_CLIENTS; i++) {
		memset(&in->client[i], 0, sizeof(in->client[i]));
		in->client[i].sin_family = AF_INET;
		in->client[i].sin_addr.s_addr = htonl(0xC0000200u + i); /* 192.0.2.x */
	}
	for (unsigned i = 0; i < BENCH_TABLE; i++) {
		uint64_t r = bench_rand(&seed);
		/* 1 us .. 20 s, log-uniform: every bucket gets used. */
		double exp10 = (double)(r % 10000) / 10000.0 * 7.3;
		double us = 1;
		for (int k = 0; k < (int)exp10; k++)
			us *= 10;
		us *= 1 + (exp10 - (int)exp10) * 9;
		in->latency[i] = (uint32_t)us;
		unsigned kind = (unsigned)(r >> 32) % 100;
		in->flags[i] = kind < 80 ? STATS_QLOG_CACHED : kind < 97 ? STATS_QLOG_RECURSED : STATS_QLOG_BLOCKED;
		in->rcode[i] = (r >> 40) % 50 == 0 ? 3 : (r >> 40) % 200 == 1 ? 2 : 0;
		in->qtype[i] = types[(r >> 48) % 8];
	}
}

/* unique_every: 0 = repeated names only, 1 = every name new, k = one in k new. */
static double bench_record(const struct bench_inputs *in, size_t calls, unsigned unique_every)
{
	struct stats_recorder r;
	struct bench_counter_name fresh;
	if (stats_recorder_init(&r, BENCH_QLOG, false) != 0) {
		fprintf(stderr, "bench_stats: stats_recorder_init failed\n");
		exit(1);
	}
	bench_counter_init(&fresh);

	/* Warm the tables so that the repeated names are already resident. */
	for (unsigned i = 0; i < BENCH_HOT_NAMES; i++) {
		struct stats_event ev = {
			.client = (const struct sockaddr *)&in->client[i % BENCH_CLIENTS],
			.qname = in->hot[i].wire, .qname_len = in->hot[i].len, .qtype = 1,
			.flags = STATS_QLOG_CACHED,
		};
		stats_record(&r, &ev);
	}

	double start = bench_now();
	unsigned hot = 0, until_unique = unique_every;
	for (size_t i = 0; i < calls; i++) {
		size_t t = i % BENCH_TABLE;
		struct stats_event ev = {
			.time_ms = 1765000000000 + (int64_t)i,
			.latency_us = in->latency[t],
			.client = (const struct sockaddr *)&in->client[(i * 7) % BENCH_CLIENTS],
			.qtype = in->qtype[t],
			.rcode = in->rcode[t],
			.flags = in->flags[t],
			.source = in->flags[t] & STATS_QLOG_BLOCKED ? 1 : 0,
		};
		if (unique_every != 0 && --until_unique == 0) {
			until_unique = unique_every;
			bench_counter_next(&fresh);
			ev.qname = fresh.wire;
			ev.qname_len = fresh.len;
		} else {
			ev.qname = in->hot[hot].wire;
			ev.qname_len = in->hot[hot].len;
			hot = hot + 1 == BENCH_HOT_NAMES ? 0 : hot + 1;
		}
		stats_record(&r, &ev);
	}
	double elapsed = bench_now() - start;

	struct stats_qlog_entry last;
	if (stats_qlog_read(&r.qlog, &last, 1) != 1) {
		fprintf(stderr, "bench_stats: the query log stayed empty\n");
		exit(1);
	}
	stats_recorder_free(&r);
	return elapsed * 1e9 / (double)calls;
}

static double bench_hist_add(const struct bench_inputs *in, size_t calls)
{
	static struct stats_hist h;
	memset(&h, 0, sizeof(h));
	double start = bench_now();
	for (size_t i = 0; i < calls; i++)
		stats_hist_add(&h, in->latency[i % BENCH_TABLE]);
	double elapsed = bench_now() - start;

	struct stats_hist_snapshot s;
	memset(&s, 0, sizeof(s));
	stats_hist_accumulate(&h, &s);
	if (s.count != calls) {
		fprintf(stderr, "bench_stats: histogram counted %" PRIu64 " of %zu\n", s.count, calls);
		exit(1);
	}
	return elapsed * 1e9 / (double)calls;
}

static double bench_topk_present(const struct bench_inputs *in, size_t calls)
{
	struct stats_topk *t = calloc(1, sizeof(*t));
	if (t == NULL)
		exit(1);
	for (unsigned i = 0; i < BENCH_HOT_NAMES; i++)
		stats_topk_add(t, in->hot[i].wire, in->hot[i].len, 0);
	/* 100 names: few enough that every one keeps its slot. */
	double start = bench_now();
	unsigned k = 0;
	for (size_t i = 0; i < calls; i++) {
		stats_topk_add(t, in->hot[k].wire, in->hot[k].len, 1);
		k = k + 1 == 100 ? 0 : k + 1;
	}
	double elapsed = bench_now() - start;
	free(t);
	return elapsed * 1e9 / (double)calls;
}

static double bench_qlog_add(const struct bench_inputs *in, size_t calls)
{
	struct stats_qlog q;
	if (stats_qlog_init(&q, BENCH_QLOG) != 0)
		exit(1);
	struct stats_qlog_entry e;
	memset(&e, 0, sizeof(e));
	e.client_len = 5;
	double start = bench_now();
	for (size_t i = 0; i < calls; i++) {
		const struct bench_name *n = &in->hot[i % BENCH_HOT_NAMES];
		e.time_ms = (int64_t)i;
		e.latency_us = in->latency[i % BENCH_TABLE];
		e.qname_len = (uint8_t)n->len;
		memcpy(e.qname, n->wire, n->len);
		stats_qlog_add(&q, &e);
	}
	double elapsed = bench_now() - start;
	stats_qlog_free(&q);
	return elapsed * 1e9 / (double)calls;
}

static double bench_merge(void)
{
	struct stats_topk *t[BENCH_MERGE_WORKERS];
	struct bench_counter_name fresh;
	bench_counter_init(&fresh);
	for (unsigned w = 0; w < BENCH_MERGE_WORKERS; w++) {
		t[w] = calloc(1, sizeof(*t[w]));
		if (t[w] == NULL)
			exit(1);
		for (unsigned i = 0; i < 20000; i++) {
			bench_counter_next(&fresh);
			stats_topk_add(t[w], fresh.wire, fresh.len, 0);
		}
	}
	static struct stats_top_entry out[BENCH_MERGE_TOP];
	const struct stats_topk *const *all = (const struct stats_topk *const *)t;
	unsigned rounds = 50;
	double start = bench_now();
	for (unsigned i = 0; i < rounds; i++)
		if (stats_topk_merge(all, BENCH_MERGE_WORKERS, out, BENCH_MERGE_TOP) != BENCH_MERGE_TOP) {
			fprintf(stderr, "bench_stats: merge came back short\n");
			exit(1);
		}
	double elapsed = bench_now() - start;
	for (unsigned w = 0; w < BENCH_MERGE_WORKERS; w++)
		free(t[w]);
	return elapsed * 1e6 / rounds;
}

int main(int argc, char **argv)
{
	size_t calls = 2000000;
	int opt;
	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt == 'n' && strtoull(optarg, NULL, 10) > 0) {
			calls = (size_t)strtoull(optarg, NULL, 10);
		} else {
			fprintf(stderr, "usage: bench_stats [-n CALLS]\n");
			return 2;
		}
	}

	struct bench_inputs *in = malloc(sizeof(*in));
	if (in == NULL)
		return 1;
	bench_inputs_make(in);

	printf("bench_stats: %zu calls per figure, query log %u entries\n", calls, BENCH_QLOG);
	printf("  record, repeated names   %7.1f ns/call\n", bench_record(in, calls, 0));
	printf("  record, unique names     %7.1f ns/call\n", bench_record(in, calls, 1));
	printf("  record, 90/10 mix        %7.1f ns/call\n", bench_record(in, calls, 10));
	printf("  hist add                 %7.1f ns/call\n", bench_hist_add(in, calls * 5));
	printf("  topk add, present key    %7.1f ns/call\n", bench_topk_present(in, calls));
	printf("  qlog add                 %7.1f ns/call\n", bench_qlog_add(in, calls));
	printf("  topk merge, %u x full -> top %u   %7.1f us/merge\n", BENCH_MERGE_WORKERS, BENCH_MERGE_TOP,
	       bench_merge());
	free(in);
	return 0;
}
