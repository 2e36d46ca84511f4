/* bench_filter.c -- load time, footprint and lookup cost of the block lists
 *
 * A benchmark, not a test: it prints figures and fails only when the lists
 * API itself fails.  It writes N (default 1,000,000) random plausible names
 * in domains format to a temporary file, times lists_load_file and reads
 * VmRSS from /proc/self/status before and after, then times L (default
 * 10,000,000) lists_match calls on a prepared mix of names, 3 to 5 labels:
 * a quarter listed names, a quarter names under listed ones, half unlisted.
 *
 * usage: bench_filter [-n NAMES] [-l LOOKUPS]
 */
#include "lists.h"
#include "wire.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_QUERIES 65536 /* distinct prepared query names, cycled */

static uint64_t rng_state = 0x243F6A8885A308D3ULL;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* A label of 3-12 letters and digits, like the words of ad-serving names. */
static void label(char *out)
{
	static const char cs[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	int n = 3 + (int)(rng() % 10);
	for (int i = 0; i < n; i++)
		out[i] = cs[rng() % 36];
	out[n] = '\0';
}

static const char *const tlds[] = { "com", "net", "org", "io", "de", "info", "co.uk", "ru", "xyz", "top" };

/* Name i of the list: 2-4 labels, reproducible from i. */
static void listed_name(uint64_t i, char *out)
{
	uint64_t saved = rng_state;
	rng_state = i * 0xD1B54A32D192ED03ULL + 1;
	char a[16], b[16], c[16];
	int kind = (int)(rng() % 3);
	label(a);
	label(b);
	label(c);
	const char *tld = tlds[rng() % 10];
	if (kind == 0)
		sprintf(out, "%s.%s", a, tld);
	else if (kind == 1)
		sprintf(out, "%s.%s.%s", a, b, tld);
	else
		sprintf(out, "%s-%s.%s.%s", a, c, b, tld);
	rng_state = saved;
}

int main(int argc, char **argv)
{
	unsigned long n = 1000000, lookups = 10000000;
	int opt;
	while ((opt = getopt(argc, argv, "n:l:")) != -1) {
		if (opt == 'n')
			n = strtoul(optarg, NULL, 10);
		else if (opt == 'l')
			lookups = strtoul(optarg, NULL, 10);
		else {
			fprintf(stderr, "usage: %s [-n NAMES] [-l LOOKUPS]\n", argv[0]);
			return 2;
		}
	}

	char path[] = "/tmp/bench_filter_XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL) {
		perror("mkstemp");
		return 1;
	}
	char name[300];
	size_t file_bytes = 0;
	for (unsigned long i = 0; i < n; i++) {
		listed_name(i, name);
		file_bytes += (size_t)fprintf(f, "%s\n", name);
	}
	fclose(f);

	/* The query mix, prepared once in wire form. */
	static uint8_t qbuf[BENCH_QUERIES * 64]; /* packed: see the spread case below */
	static uint8_t *qw[BENCH_QUERIES];
	static size_t ql[BENCH_QUERIES];
	size_t qbuf_len = 0;
	int expect_listed[BENCH_QUERIES];
	for (int i = 0; i < BENCH_QUERIES; i++) {
		char a[16], b[16];
		int kind = (int)(rng() % 4);
		uint64_t id = rng() % n;
		listed_name(id, name);
		if (kind == 1) {
			/* below a listed name: the subtree rule */
			label(a);
			char tmp[340];
			snprintf(tmp, sizeof(tmp), "%s.%s", a, name);
			strcpy(name, tmp);
		} else if (kind >= 2) {
			/* unlisted, 3-5 labels under a common TLD */
			label(a);
			label(b);
			int extra = (int)(rng() % 3);
			snprintf(name, sizeof(name), "%s%s%s.%s.example-%s.com", extra > 0 ? "www." : "",
			         extra > 1 ? "cdn." : "", a, b, a);
		}
		expect_listed[i] = kind < 2;
		uint8_t w[WIRE_MAX_NAME];
		ql[i] = wire_name_from_text(name, w);
		qw[i] = qbuf + qbuf_len;
		if (ql[i] <= 64) {
			memcpy(qw[i], w, ql[i]);
			qbuf_len += ql[i];
		}
		if (ql[i] == 0 || ql[i] > 64) {
			fprintf(stderr, "bad generated name %s\n", name);
			return 1;
		}
	}

	long rss0 = rss_kb();
	struct lists_set *set = lists_new();
	struct lists_report rep;
	char err[256];
	double t0 = now(), c0 = cpu();
	if (set == NULL || lists_load_file(set, path, LISTS_DOMAINS, 0, false, &rep, err, sizeof(err)) != 0) {
		fprintf(stderr, "load failed: %s\n", err);
		return 1;
	}
	double t_load = now() - t0, c_load = cpu() - c0;
	long rss1 = rss_kb();
	unlink(path);

	/* Check the answers once, then time. */
	unsigned long listed = 0;
	for (int i = 0; i < BENCH_QUERIES; i++) {
		enum lists_verdict v = lists_match(set, qw[i], ql[i], ~0ULL, NULL);
		if (expect_listed[i] && v != LISTS_BLOCK) {
			fprintf(stderr, "query %d: listed name not blocked\n", i);
			return 1;
		}
		listed += v == LISTS_BLOCK;
	}
	struct lists_match m;
	unsigned long blocked = 0;
	t0 = now();
	c0 = cpu();
	for (unsigned long i = 0; i < lookups; i++) {
		unsigned k = (unsigned)(i & (BENCH_QUERIES - 1));
		blocked += lists_match(set, qw[k], ql[k], ~0ULL, &m) == LISTS_BLOCK;
	}
	double t_match = now() - t0, c_match = cpu() - c0;

	/* The same on names spread over the whole list (cache misses dominate). */
	unsigned long spread = lookups / 10;
	/* Packed one after the other, as the mix is: read in order, the query
	 * names stream through the cache the way a just-parsed qname is hot. */
	uint8_t *sw = malloc(spread > 0 ? spread * 64 : 1);
	uint8_t *sl = malloc(spread > 0 ? spread : 1);
	size_t *so = malloc(spread > 0 ? spread * sizeof(*so) : 1);
	size_t sw_len = 0;
	if (sw == NULL || sl == NULL || so == NULL)
		return 1;
	for (unsigned long i = 0; i < spread; i++) {
		char a[16];
		listed_name(rng() % n, name);
		if (i & 1) {
			label(a);
			char tmp[340];
			snprintf(tmp, sizeof(tmp), "%s.www.%s", a, name);
			strcpy(name, tmp);
		}
		uint8_t w[WIRE_MAX_NAME];
		sl[i] = (uint8_t)wire_name_from_text(name, w);
		if (sl[i] > 64)
			sl[i] = 0;
		so[i] = sw_len;
		memcpy(sw + sw_len, w, sl[i]);
		sw_len += sl[i];
	}
	t0 = now();
	c0 = cpu();
	unsigned long blocked2 = 0;
	for (unsigned long i = 0; i < spread; i++)
		blocked2 += lists_match(set, sw + so[i], sl[i], ~0ULL, &m) == LISTS_BLOCK;
	double t_spread = now() - t0, c_spread = cpu() - c0;

	printf("bench_filter: %lu names (%.1f MB file), %lu lookups; wall and process CPU time\n", n,
	       (double)file_bytes / 1e6, lookups);
	printf("  %-36s %12s %12s\n", "figure", "wall", "cpu");
	printf("  %-36s %10.3f s %10.3f s\n", "lists_load_file", t_load, c_load);
	printf("  %-36s %10.0f/s %10.0f/s\n", "load rate (names)", (double)n / t_load, (double)n / c_load);
	printf("  %-36s %12lu\n", "rules added (report)", rep.rules);
	printf("  %-36s %12zu\n", "lists_count (exact + subtree bits)", lists_count(set));
	printf("  %-36s %9.1f MB\n", "RSS before load", (double)rss0 / 1024);
	printf("  %-36s %9.1f MB\n", "RSS after load", (double)rss1 / 1024);
	printf("  %-36s %9.1f MB\n", "RSS growth", (double)(rss1 - rss0) / 1024);
	printf("  %-36s %9.1f MB\n", "lists_bytes (allocated capacity)", (double)lists_bytes(set) / 1e6);
	printf("  %-36s %10.1f B\n", "RSS growth per name", (double)(rss1 - rss0) * 1024 / (double)n);
	printf("  %-36s %9.1f ns %9.1f ns\n", "lists_match, 64k-name mix", t_match * 1e9 / (double)lookups,
	       c_match * 1e9 / (double)lookups);
	printf("  %-36s %11.1f %%\n", "  of which blocked", 100.0 * (double)blocked / (double)lookups);
	double sp = (double)(spread ? spread : 1);
	printf("  %-36s %9.1f ns %9.1f ns\n", "lists_match, names over whole list", t_spread * 1e9 / sp,
	       c_spread * 1e9 / sp);
	printf("  %-36s %11.1f %%\n", "  of which blocked", 100.0 * (double)blocked2 / sp);
	free(sw);
	free(sl);
	free(so);
	lists_free(set);
	return listed == 0;
}
