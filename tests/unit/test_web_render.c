/* test_web_render.c -- unit tests of web/web_render: names, types, rcodes
 * and client keys as text, list-name checks, the JSON of every GET route
 * from hand-made snapshots (parsed back with jansson), the query-log
 * filter, the control replies the cache routes read, and the Prometheus
 * text (families, counters, cumulative buckets, label escaping). */
#include "unit.h"
#include "web_render.h"

#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Helpers */

/* Parse JSON text (freeing it) and check that it is an object. */
static json_t *parse(char *text)
{
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);
	if (j == NULL)
		fprintf(stderr, "bad JSON: %s: %s\n", err.text, text);
	free(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_FATAL(json_is_object(j));
	return j;
}

/* The number at a path of object keys, NaN when absent. */
static double num(json_t *o, const char *k1, const char *k2)
{
	json_t *v = json_object_get(o, k1);
	if (k2 != NULL)
		v = json_object_get(v, k2);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *str(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : "(not a string)";
}

static struct stats_qlog_entry qentry(int64_t t, const char *client, const char *name, uint16_t type,
                                      uint8_t rcode, uint8_t flags, uint8_t source)
{
	struct stats_qlog_entry e;
	memset(&e, 0, sizeof e);
	e.time_ms = t;
	e.latency_us = 40;
	e.qtype = type;
	e.rcode = rcode;
	e.flags = flags;
	e.source = source;
	e.client_len = (uint8_t)web_client_key_from_text(client, false, e.client);
	e.qname_len = (uint8_t)wname(e.qname, name);
	return e;
}

/* ------------------------------------------------------------------ */
/* Names, types, rcodes, clients */

static void test_web_name_plain_has_no_trailing_dot(void)
{
	uint8_t w[256];
	char out[1024];
	size_t n = wname(w, "www.example.com");
	CU_ASSERT_EQUAL(web_name_to_text(w, n, out, sizeof out), 15);
	CU_ASSERT_STRING_EQUAL(out, "www.example.com");
}

static void test_web_name_root_is_dot(void)
{
	uint8_t root = 0;
	char out[16];
	CU_ASSERT_EQUAL(web_name_to_text(&root, 1, out, sizeof out), 1);
	CU_ASSERT_STRING_EQUAL(out, ".");
}

static void test_web_name_escapes_odd_bytes(void)
{
	/* a.b as one label, a byte 1, a space, a backslash, then "com". */
	const uint8_t w[] = { 3, 'a', '.', 'b', 4, 1, ' ', '\\', 'x', 3, 'c', 'o', 'm', 0 };
	char out[1024];
	CU_ASSERT(web_name_to_text(w, sizeof w, out, sizeof out) > 0);
	CU_ASSERT_STRING_EQUAL(out, "a\\.b.\\001\\032\\\\x.com");
	const uint8_t hi[] = { 2, 0xff, '"', 0 };
	CU_ASSERT(web_name_to_text(hi, sizeof hi, out, sizeof out) > 0);
	CU_ASSERT_STRING_EQUAL(out, "\\255\\\"");
}

static void test_web_name_rejects_malformed(void)
{
	char out[1024];
	const uint8_t long_label[] = { 64, 'a', 0 };
	const uint8_t past_end[] = { 5, 'a', 'b', 0 };
	const uint8_t trailing[] = { 1, 'a', 0, 7 };
	const uint8_t no_root[] = { 1, 'a' };
	CU_ASSERT_EQUAL(web_name_to_text(long_label, sizeof long_label, out, sizeof out), 0);
	CU_ASSERT_EQUAL(web_name_to_text(past_end, sizeof past_end, out, sizeof out), 0);
	CU_ASSERT_EQUAL(web_name_to_text(trailing, sizeof trailing, out, sizeof out), 0);
	CU_ASSERT_EQUAL(web_name_to_text(no_root, sizeof no_root, out, sizeof out), 0);
	/* Too small a buffer is a failure, never a cut name. */
	uint8_t w[256];
	size_t n = wname(w, "www.example.com");
	CU_ASSERT_EQUAL(web_name_to_text(w, n, out, 15), 0);
	/* Room for the dot it leaves off is needed while it is written. */
	CU_ASSERT_EQUAL(web_name_to_text(w, n, out, 16), 0);
	CU_ASSERT_EQUAL(web_name_to_text(w, n, out, 17), 15);
}

static void test_web_client_key_text_round_trip(void)
{
	uint8_t k[17];
	char out[64];
	size_t n = web_client_key_from_text("192.0.2.77", false, k);
	CU_ASSERT_EQUAL(n, 5);
	CU_ASSERT(web_client_to_text(k, n, out, sizeof out));
	CU_ASSERT_STRING_EQUAL(out, "192.0.2.77");
	n = web_client_key_from_text("2001:db8:1:2::1", false, k);
	CU_ASSERT_EQUAL(n, 17);
	CU_ASSERT(web_client_to_text(k, n, out, sizeof out));
	CU_ASSERT_STRING_EQUAL(out, "2001:db8:1:2::1");
}

static void test_web_client_key_anonymized_like_recorders(void)
{
	uint8_t k[17];
	char out[64];
	size_t n = web_client_key_from_text("192.0.2.77", true, k);
	CU_ASSERT(web_client_to_text(k, n, out, sizeof out));
	CU_ASSERT_STRING_EQUAL(out, "192.0.2.0");
	n = web_client_key_from_text("2001:db8:1:2::1", true, k);
	CU_ASSERT(web_client_to_text(k, n, out, sizeof out));
	CU_ASSERT_STRING_EQUAL(out, "2001:db8:1::");
	/* An IPv4-mapped address is the IPv4 client, as the recorders count it. */
	n = web_client_key_from_text("::ffff:192.0.2.5", false, k);
	CU_ASSERT(web_client_to_text(k, n, out, sizeof out));
	CU_ASSERT_STRING_EQUAL(out, "192.0.2.5");
}

static void test_web_client_bad_text_and_keys(void)
{
	uint8_t k[17] = { 4, 1, 2, 3, 4 };
	char out[64];
	CU_ASSERT_EQUAL(web_client_key_from_text("example.com", false, k), 0);
	CU_ASSERT_EQUAL(web_client_key_from_text("192.0.2.1:53", false, k), 0);
	CU_ASSERT_EQUAL(web_client_key_from_text("", false, k), 0);
	uint8_t bad[5] = { 6, 1, 2, 3, 4 };
	CU_ASSERT_FALSE(web_client_to_text(bad, sizeof bad, out, sizeof out));
	CU_ASSERT_STRING_EQUAL(out, "?");
}

static void test_web_list_name_normalized_or_rejected(void)
{
	char out[300];
	CU_ASSERT_EQUAL(web_list_name_normalize("Ads.Example.COM.", out, sizeof out), 0);
	CU_ASSERT_STRING_EQUAL(out, "ads.example.com");
	CU_ASSERT_EQUAL(web_list_name_normalize("_dmarc.x-y.example", out, sizeof out), 0);
	CU_ASSERT_STRING_EQUAL(out, "_dmarc.x-y.example");
	const char *bad[] = { "", ".", "a..b", ".a", "a b", "*.example.com", "a/b", "ex\xc3\xa4mple.com", "a\nb" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CU_ASSERT_EQUAL(web_list_name_normalize(bad[i], out, sizeof out), -1);
	char label[80], longname[300];
	memset(label, 'a', 64);
	label[64] = '\0';
	CU_ASSERT_EQUAL(web_list_name_normalize(label, out, sizeof out), -1);
	label[63] = '\0';
	CU_ASSERT_EQUAL(web_list_name_normalize(label, out, sizeof out), 0);
	/* 253 characters pass, 254 do not. */
	memset(longname, 0, sizeof longname);
	for (int i = 0; i < 4; i++) {
		strcat(longname, label);
		strcat(longname, ".");
	}
	longname[253] = '\0';
	CU_ASSERT_EQUAL(strlen(longname), 253);
	CU_ASSERT_EQUAL(web_list_name_normalize(longname, out, sizeof out), 0);
	longname[252] = 'b';
	longname[253] = 'c';
	longname[254] = '\0';
	CU_ASSERT_EQUAL(web_list_name_normalize(longname, out, sizeof out), -1);
}

/* ------------------------------------------------------------------ */
/* JSON of the GET routes */

static void make_snapshot(struct web_snapshot *s, struct web_filter *f)
{
	memset(s, 0, sizeof *s);
	s->version = "0.2.0";
	s->time = 1765000000;
	s->uptime_seconds = 3600;
	for (int i = 0; i < STATS_COUNT; i++)
		s->counter[i] = 100 + (uint64_t)i;
	s->counter[STATS_CACHE_HITS] = 90;
	s->counter[STATS_CACHE_MISSES] = 10;
	s->inflight = 7;
	for (unsigned rc = 0; rc < STATS_RCODES; rc++)
		s->answers[rc] = 1000 + rc;
	s->rates = (struct web_rates){ .qps = 12.5, .hit_ratio = 0.9, .blocked_ps = 1, .servfail_ps = 0.25,
		                           .stale_ps = 0 };
	/* Hits: 10 in (0,10] µs, 10 in (40,60] µs; recursion: 4 above 10 s. */
	s->latency[STATS_LAT_HIT].bucket[0] = 10;
	s->latency[STATS_LAT_HIT].bucket[4] = 10;
	s->latency[STATS_LAT_HIT].count = 20;
	s->latency[STATS_LAT_HIT].sum_us = 600;
	s->latency[STATS_LAT_RECURSION].bucket[STATS_HIST_BUCKETS - 1] = 4;
	s->latency[STATS_LAT_RECURSION].count = 4;
	s->latency[STATS_LAT_RECURSION].sum_us = 50000000;
	s->have_cache = true;
	for (int p = 0; p < CACHE_PART_COUNT; p++) {
		s->cache.entries[p] = 10 * (uint64_t)(p + 1);
		s->cache.bytes[p] = 4096 * (uint64_t)(p + 1);
		s->cache.quota[p] = 1 << 20;
	}
	s->cache.map_size = 1 << 30;
	s->cache.map_used = 1 << 21;
	s->cache.puts = 5;
	s->cache.evictions = 2;
	memset(f, 0, 2 * sizeof *f);
	snprintf(f[0].name, sizeof f[0].name, "spamhaus-dbl");
	f[0].type = "rhsbl";
	f[0].healthy = true;
	f[0].lookups = 50;
	f[0].listed = 3;
	snprintf(f[1].name, sizeof f[1].name, "ads");
	f[1].type = "list";
	f[1].blocked = 9;
	s->filters = f;
	s->filter_count = 2;
}

static void test_web_stats_json_fields(void)
{
	struct web_snapshot s;
	struct web_filter f[2];
	make_snapshot(&s, f);
	json_t *j = parse(web_render_stats(&s));

	CU_ASSERT_STRING_EQUAL(str(j, "version"), "0.2.0");
	CU_ASSERT_EQUAL(num(j, "time", NULL), 1765000000);
	CU_ASSERT_EQUAL(num(j, "uptime_seconds", NULL), 3600);
	CU_ASSERT_EQUAL(num(j, "inflight", NULL), 7);
	json_t *answers = json_object_get(j, "answers");
	CU_ASSERT_FATAL(json_is_object(answers));
	CU_ASSERT_EQUAL(json_object_size(answers), STATS_RCODES);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(answers, "NXDOMAIN")), 1003);
	json_t *c = json_object_get(j, "counters");
	CU_ASSERT_EQUAL(json_object_size(c), STATS_COUNT);
	CU_ASSERT_EQUAL(num(c, "queries", NULL), 100);
	CU_ASSERT_EQUAL(num(c, "cache_hits", NULL), 90);
	CU_ASSERT_EQUAL(num(c, stats_name(STATS_BLOCKED), NULL), 100 + STATS_BLOCKED);
	CU_ASSERT_DOUBLE_EQUAL(num(j, "hit_ratio", NULL), 0.9, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(num(j, "rates", "qps"), 12.5, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(num(j, "rates", "servfail_ps"), 0.25, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(num(j, "rates", "stale_ps"), 0, 1e-9);

	json_t *lat = json_object_get(j, "latency");
	CU_ASSERT_EQUAL(num(lat, "cache_hit", "count"), 20);
	/* The median sits at the top of the first bucket: 10 µs = 0.01 ms. */
	CU_ASSERT_DOUBLE_EQUAL(num(lat, "cache_hit", "p50_ms"), 0.01, 1e-9);
	CU_ASSERT(num(lat, "cache_hit", "p99_ms") > 0.04 && num(lat, "cache_hit", "p99_ms") <= 0.06);
	CU_ASSERT_EQUAL(num(lat, "recursion", "count"), 4);
	CU_ASSERT_DOUBLE_EQUAL(num(lat, "recursion", "p95_ms"), 10000, 1e-6);

	json_t *cache = json_object_get(j, "cache");
	json_t *parts = json_object_get(cache, "partitions");
	CU_ASSERT_EQUAL(json_array_size(parts), 3);
	CU_ASSERT_STRING_EQUAL(str(json_array_get(parts, 1), "name"), "mail");
	CU_ASSERT_EQUAL(num(json_array_get(parts, 1), "entries", NULL), 20);
	CU_ASSERT_EQUAL(num(json_array_get(parts, 2), "bytes", NULL), 3 * 4096);
	CU_ASSERT_EQUAL(num(json_array_get(parts, 0), "quota_bytes", NULL), 1 << 20);
	CU_ASSERT_EQUAL(num(cache, "map_size_bytes", NULL), 1 << 30);
	CU_ASSERT_EQUAL(num(cache, "map_used_bytes", NULL), 1 << 21);
	CU_ASSERT_EQUAL(num(cache, "puts", NULL), 5);
	CU_ASSERT_EQUAL(num(cache, "evictions", NULL), 2);
	CU_ASSERT_EQUAL(num(cache, "write_errors", NULL), 0);

	json_t *fa = json_object_get(j, "filters");
	CU_ASSERT_EQUAL(json_array_size(fa), 2);
	json_t *f0 = json_array_get(fa, 0);
	CU_ASSERT_STRING_EQUAL(str(f0, "name"), "spamhaus-dbl");
	CU_ASSERT_STRING_EQUAL(str(f0, "type"), "rhsbl");
	CU_ASSERT(json_is_true(json_object_get(f0, "healthy")));
	CU_ASSERT_EQUAL(num(f0, "lookups", NULL), 50);
	CU_ASSERT_EQUAL(num(f0, "listed", NULL), 3);
	CU_ASSERT(json_is_false(json_object_get(json_array_get(fa, 1), "healthy")));
	CU_ASSERT_EQUAL(num(json_array_get(fa, 1), "blocked", NULL), 9);
	json_decref(j);
}

static void test_web_stats_json_empty_and_no_cache(void)
{
	struct web_snapshot s;
	memset(&s, 0, sizeof s);
	json_t *j = parse(web_render_stats(&s));
	CU_ASSERT(json_is_null(json_object_get(j, "cache")));
	CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "filters")), 0);
	/* No hits and no misses is a ratio of 0, not a division by zero. */
	CU_ASSERT_EQUAL(num(j, "hit_ratio", NULL), 0);
	CU_ASSERT_EQUAL(num(json_object_get(j, "latency"), "recursion", "p99_ms"), 0);
	CU_ASSERT_STRING_EQUAL(str(j, "version"), "");
	json_decref(j);
}

static void test_web_timeseries_json(void)
{
	struct stats_point p[2];
	memset(p, 0, sizeof p);
	p[0].t = 1765000000;
	p[0].qps = 1.0f;
	p[0].hit_ratio = 0.9f;
	p[0].hit_p50_ms = 0.05f;
	p[1].t = 1765000005;
	p[1].recursion_p99_ms = 150.0f;
	p[1].blocked_ps = 2.2f;
	char *text = web_render_timeseries("hour", 5, p, 2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	/* Floats print as the decimal they stand for, not their binary expansion. */
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"hit_ratio\":0.9,"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"blocked_ps\":2.2,"));
	json_t *j = parse(text);
	CU_ASSERT_STRING_EQUAL(str(j, "range"), "hour");
	CU_ASSERT_EQUAL(num(j, "step_seconds", NULL), 5);
	json_t *pts = json_object_get(j, "points");
	CU_ASSERT_EQUAL_FATAL(json_array_size(pts), 2);
	json_t *a = json_array_get(pts, 0), *b = json_array_get(pts, 1);
	CU_ASSERT_EQUAL(num(a, "t", NULL), 1765000000);
	CU_ASSERT_EQUAL(num(b, "t", NULL), 1765000005);
	CU_ASSERT_DOUBLE_EQUAL(num(a, "hit_p50_ms", NULL), 0.05, 1e-12);
	CU_ASSERT_DOUBLE_EQUAL(num(b, "recursion_p99_ms", NULL), 150, 1e-12);
	const char *keys[] = { "t", "qps", "hit_ratio", "blocked_ps", "servfail_ps", "stale_ps", "hit_p50_ms",
		                   "hit_p95_ms", "hit_p99_ms", "recursion_p50_ms", "recursion_p95_ms",
		                   "recursion_p99_ms" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		CU_ASSERT(json_is_number(json_object_get(b, keys[i])));
	CU_ASSERT_EQUAL(json_object_size(b), sizeof keys / sizeof keys[0]);
	json_decref(j);

	j = parse(web_render_timeseries("day", 120, NULL, 0));
	CU_ASSERT_EQUAL(num(j, "step_seconds", NULL), 120);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "points")), 0);
	json_decref(j);
}

static void test_web_top_names_json(void)
{
	struct stats_top_entry e[2];
	memset(e, 0, sizeof e);
	e[0].key_len = (uint8_t)wname(e[0].key, "example.com");
	e[0].count = 12;
	e[0].err = 2;
	e[1].key_len = 1; /* the root */
	e[1].count = 3;
	json_t *j = parse(web_render_top(STATS_TOP_NAMES, e, 2));
	CU_ASSERT_STRING_EQUAL(str(j, "kind"), "names");
	json_t *a = json_object_get(j, "entries");
	CU_ASSERT_EQUAL_FATAL(json_array_size(a), 2);
	CU_ASSERT_STRING_EQUAL(str(json_array_get(a, 0), "name"), "example.com");
	CU_ASSERT_EQUAL(num(json_array_get(a, 0), "count", NULL), 12);
	CU_ASSERT_EQUAL(num(json_array_get(a, 0), "error", NULL), 2);
	CU_ASSERT_STRING_EQUAL(str(json_array_get(a, 1), "name"), ".");
	json_decref(j);

	j = parse(web_render_top(STATS_TOP_BLOCKED, e, 1));
	CU_ASSERT_STRING_EQUAL(str(j, "kind"), "blocked");
	json_decref(j);
}

static void test_web_top_clients_json(void)
{
	struct stats_top_entry e;
	memset(&e, 0, sizeof e);
	e.key_len = (uint8_t)web_client_key_from_text("192.0.2.1", false, e.key);
	e.count = 12;
	e.err = 1;
	e.extra[STATS_CLIENT_BLOCKED] = 2;
	e.extra[STATS_CLIENT_CACHED] = 8;
	e.extra[STATS_CLIENT_NXDOMAIN] = 3;
	e.extra[STATS_CLIENT_SERVFAIL] = 1;
	json_t *j = parse(web_render_top(STATS_TOP_CLIENTS, &e, 1));
	CU_ASSERT_STRING_EQUAL(str(j, "kind"), "clients");
	json_t *o = json_array_get(json_object_get(j, "entries"), 0);
	CU_ASSERT_STRING_EQUAL(str(o, "client"), "192.0.2.1");
	CU_ASSERT_EQUAL(num(o, "queries", NULL), 12);
	CU_ASSERT_EQUAL(num(o, "error", NULL), 1);
	CU_ASSERT_EQUAL(num(o, "blocked", NULL), 2);
	CU_ASSERT_EQUAL(num(o, "cache_hits", NULL), 8);
	CU_ASSERT_EQUAL(num(o, "nxdomain", NULL), 3);
	CU_ASSERT_EQUAL(num(o, "servfail", NULL), 1);
	CU_ASSERT_PTR_NULL(json_object_get(o, "name"));
	json_decref(j);
}

/* ------------------------------------------------------------------ */
/* Query log */

#define QN 6

static void qlog_sample(struct stats_qlog_entry *e)
{
	e[0] = qentry(1000, "192.0.2.1", "www.Example.com", 1, 0, STATS_QLOG_CACHED, 0);
	e[1] = qentry(2000, "192.0.2.2", "ads.tracker.net", 1, 3, STATS_QLOG_BLOCKED, 2);
	e[2] = qentry(3000, "192.0.2.1", "mail.example.com", 15, 0, STATS_QLOG_RECURSED | STATS_QLOG_SECURE, 0);
	e[3] = qentry(4000, "2001:db8::1", "example.org", 28, 2, STATS_QLOG_TCP | STATS_QLOG_RECURSED, 0);
	e[4] = qentry(5000, "192.0.2.1", "", 2, 0, STATS_QLOG_STALE, 0);
	e[5] = qentry(6000, "192.0.2.2", "x.example.com", 65534, 11, STATS_QLOG_BLOCKED, 1);
}

static size_t count_matches(const struct stats_qlog_entry *e, size_t n, const struct web_qlog_filter *f)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += web_qlog_match(f, &e[i]);
	return k;
}

static void test_web_qlog_filter_each_field(void)
{
	struct stats_qlog_entry e[QN];
	struct web_qlog_filter f;
	qlog_sample(e);

	web_qlog_filter_init(&f);
	CU_ASSERT_EQUAL(count_matches(e, QN, &f), QN);

	f.has_client = true;
	f.client_len = (uint8_t)web_client_key_from_text("192.0.2.1", false, f.client);
	CU_ASSERT_EQUAL(count_matches(e, QN, &f), 3);
	f.client_len = (uint8_t)web_client_key_from_text("2001:db8::1", false, f.client);
	CU_ASSERT_EQUAL(count_matches(e, QN, &f), 1);

	web_qlog_filter_init(&f);
	f.name = "EXAMPLE.C"; /* case-insensitive substring */
	CU_ASSERT_EQUAL(count_matches(e, QN, &f), 3);
	f.name = "";
	CU_ASSERT_EQUAL(count_matches(e, QN, &f), QN);

	web_qlog_filter_init(&f);
	f.has_type = true;
	f.type = 1;
	CU_ASSERT_EQUAL(count_matches(e, QN, &f), 2);

	web_qlog_filter_init(&f);
	f.has_rcode = true;
	f.rcode = 0;
	CU_ASSERT_EQUAL(count_matches(e, QN, &f), 3);

	web_qlog_filter_init(&f);
	f.blocked = 1;
	CU_ASSERT_EQUAL(count_matches(e, QN, &f), 2);
	f.blocked = 0;
	CU_ASSERT_EQUAL(count_matches(e, QN, &f), 4);
}

static void test_web_qlog_filters_combine_with_and(void)
{
	struct stats_qlog_entry e[QN];
	struct web_qlog_filter f;
	qlog_sample(e);
	web_qlog_filter_init(&f);
	f.has_client = true;
	f.client_len = (uint8_t)web_client_key_from_text("192.0.2.2", false, f.client);
	f.blocked = 1;
	f.name = "tracker";
	CU_ASSERT_EQUAL(count_matches(e, QN, &f), 1);
	CU_ASSERT(web_qlog_match(&f, &e[1]));
	f.has_rcode = true;
	f.rcode = 0;
	CU_ASSERT_EQUAL(count_matches(e, QN, &f), 0);
}

static void test_web_qlog_select_keeps_order_and_counts_all(void)
{
	struct stats_qlog_entry e[QN];
	struct web_qlog_filter f;
	uint64_t matched = 0;
	qlog_sample(e);
	web_qlog_filter_init(&f);
	f.blocked = 0;
	size_t kept = web_qlog_select(e, QN, &f, 2, &matched);
	CU_ASSERT_EQUAL(kept, 2);
	CU_ASSERT_EQUAL(matched, 4);
	CU_ASSERT_EQUAL(e[0].time_ms, 1000);
	CU_ASSERT_EQUAL(e[1].time_ms, 3000);
	/* matched adds up across calls (one per worker's ring). */
	qlog_sample(e);
	kept = web_qlog_select(e, QN, &f, 100, &matched);
	CU_ASSERT_EQUAL(kept, 4);
	CU_ASSERT_EQUAL(matched, 8);
	CU_ASSERT_EQUAL(e[3].time_ms, 5000);
}

static void test_web_qlog_sort_newest_first(void)
{
	struct stats_qlog_entry e[QN];
	qlog_sample(e);
	web_qlog_sort(e, QN);
	for (size_t i = 0; i + 1 < QN; i++)
		CU_ASSERT(e[i].time_ms > e[i + 1].time_ms);
	CU_ASSERT_EQUAL(e[0].time_ms, 6000);
}

static void test_web_querylog_json_entries(void)
{
	struct stats_qlog_entry e[QN];
	const char *names[] = { "ads", "spamhaus-dbl" };
	qlog_sample(e);
	json_t *j = parse(web_render_querylog(e, QN, 42, names, 2));
	CU_ASSERT_EQUAL(num(j, "matched", NULL), 42);
	json_t *a = json_object_get(j, "entries");
	CU_ASSERT_EQUAL_FATAL(json_array_size(a), QN);

	json_t *x = json_array_get(a, 0);
	CU_ASSERT_EQUAL(num(x, "time_ms", NULL), 1000);
	CU_ASSERT_STRING_EQUAL(str(x, "client"), "192.0.2.1");
	CU_ASSERT_STRING_EQUAL(str(x, "name"), "www.Example.com");
	CU_ASSERT_STRING_EQUAL(str(x, "type"), "A");
	CU_ASSERT_STRING_EQUAL(str(x, "rcode"), "NOERROR");
	CU_ASSERT(json_is_true(json_object_get(x, "cached")));
	CU_ASSERT(json_is_false(json_object_get(x, "stale")));
	CU_ASSERT(json_is_false(json_object_get(x, "blocked")));
	CU_ASSERT(json_is_null(json_object_get(x, "source")));
	CU_ASSERT_STRING_EQUAL(str(x, "transport"), "udp");
	CU_ASSERT(json_is_false(json_object_get(x, "secure")));
	CU_ASSERT_DOUBLE_EQUAL(num(x, "latency_ms", NULL), 0.04, 1e-12);

	x = json_array_get(a, 1);
	CU_ASSERT_STRING_EQUAL(str(x, "source"), "spamhaus-dbl");
	CU_ASSERT_STRING_EQUAL(str(x, "rcode"), "NXDOMAIN");
	CU_ASSERT(json_is_true(json_object_get(x, "blocked")));
	x = json_array_get(a, 2);
	CU_ASSERT_STRING_EQUAL(str(x, "type"), "MX");
	CU_ASSERT(json_is_true(json_object_get(x, "secure")));
	CU_ASSERT(json_is_false(json_object_get(x, "cached")));
	x = json_array_get(a, 3);
	CU_ASSERT_STRING_EQUAL(str(x, "client"), "2001:db8::1");
	CU_ASSERT_STRING_EQUAL(str(x, "transport"), "tcp");
	CU_ASSERT_STRING_EQUAL(str(x, "rcode"), "SERVFAIL");
	x = json_array_get(a, 4);
	CU_ASSERT_STRING_EQUAL(str(x, "name"), ".");
	CU_ASSERT(json_is_true(json_object_get(x, "stale")));
	x = json_array_get(a, 5);
	CU_ASSERT_STRING_EQUAL(str(x, "type"), "TYPE65534");
	CU_ASSERT_STRING_EQUAL(str(x, "rcode"), "RCODE11");
	CU_ASSERT_STRING_EQUAL(str(x, "source"), "ads");
	json_decref(j);

	/* A source index past the names known now (a reload shrank them) is null. */
	j = parse(web_render_querylog(e + 1, 1, 1, names, 1));
	CU_ASSERT(json_is_null(json_object_get(json_array_get(json_object_get(j, "entries"), 0), "source")));
	json_decref(j);
}

static void test_web_client_json_with_and_without_counters(void)
{
	struct stats_qlog_entry e[QN];
	struct stats_top_entry t;
	qlog_sample(e);
	memset(&t, 0, sizeof t);
	t.count = 12;
	t.extra[STATS_CLIENT_NXDOMAIN] = 4;
	json_t *j = parse(web_render_client("192.0.2.1", &t, e, 2, NULL, 0));
	CU_ASSERT_STRING_EQUAL(str(j, "client"), "192.0.2.1");
	CU_ASSERT_EQUAL(num(j, "counters", "queries"), 12);
	CU_ASSERT_EQUAL(num(j, "counters", "nxdomain"), 4);
	CU_ASSERT_EQUAL(num(j, "counters", "error"), 0);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "recent")), 2);
	json_decref(j);

	j = parse(web_render_client("192.0.2.9", NULL, NULL, 0, NULL, 0));
	CU_ASSERT(json_is_null(json_object_get(j, "counters")));
	CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "recent")), 0);
	json_decref(j);
}

static void test_web_error_json(void)
{
	json_t *j = parse(web_render_error("no \"such\" page"));
	CU_ASSERT_STRING_EQUAL(str(j, "error"), "no \"such\" page");
	CU_ASSERT_EQUAL(json_object_size(j), 1);
	json_decref(j);
}

/* ------------------------------------------------------------------ */
/* Control replies */

static void test_web_cache_entry_found(void)
{
	const char *reply = "ok\n"
	                    "example.com. MX mail 3000 fresh NOERROR secure 300\n"
	                    ";; answer\n"
	                    "example.com. 3000 IN MX 10 mx.example.com.\n"
	                    "example.com. 3000 IN MX 20 mx2.example.com.\n"
	                    ";; additional\n"
	                    "mx.example.com. 3000 IN A 192.0.2.25\n";
	int status = 0;
	json_t *j = parse(web_render_cache_entry("Example.com", "MX", reply, &status));
	CU_ASSERT_EQUAL(status, 200);
	CU_ASSERT_STRING_EQUAL(str(j, "name"), "example.com");
	CU_ASSERT_STRING_EQUAL(str(j, "type"), "MX");
	CU_ASSERT(json_is_true(json_object_get(j, "found")));
	CU_ASSERT_STRING_EQUAL(str(j, "partition"), "mail");
	CU_ASSERT_EQUAL(num(j, "ttl_left", NULL), 3000);
	CU_ASSERT_STRING_EQUAL(str(j, "state"), "fresh");
	CU_ASSERT_STRING_EQUAL(str(j, "rcode"), "NOERROR");
	CU_ASSERT_STRING_EQUAL(str(j, "dnssec"), "secure");
	CU_ASSERT_EQUAL(num(j, "size", NULL), 300);
	json_t *r = json_object_get(j, "records");
	CU_ASSERT_EQUAL_FATAL(json_array_size(r), 3);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(r, 0)), "example.com. 3000 IN MX 10 mx.example.com.");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(r, 2)), "mx.example.com. 3000 IN A 192.0.2.25");
	json_decref(j);

	/* The root keeps its dot; a negative entry has no answer records. */
	j = parse(web_render_cache_entry(".", "NS", "ok\n. NS general 10 stale NXDOMAIN insecure 90\n", &status));
	CU_ASSERT_EQUAL(status, 200);
	CU_ASSERT_STRING_EQUAL(str(j, "name"), ".");
	CU_ASSERT_STRING_EQUAL(str(j, "state"), "stale");
	CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "records")), 0);
	json_decref(j);
}

static void test_web_cache_entry_not_found_and_errors(void)
{
	int status = 0;
	json_t *j = parse(web_render_cache_entry("example.net.", "A", "error: not cached\n", &status));
	CU_ASSERT_EQUAL(status, 200);
	CU_ASSERT(json_is_false(json_object_get(j, "found")));
	CU_ASSERT_STRING_EQUAL(str(j, "name"), "example.net");
	CU_ASSERT_STRING_EQUAL(str(j, "type"), "A");
	json_decref(j);

	j = parse(web_render_cache_entry("a..b", "A", "error: invalid name 'a..b'\n", &status));
	CU_ASSERT_EQUAL(status, 400);
	CU_ASSERT_STRING_EQUAL(str(j, "error"), "invalid name 'a..b'");
	json_decref(j);

	j = parse(web_render_cache_entry("x", "A", "error: no cache\n", &status));
	CU_ASSERT_EQUAL(status, 500);
	json_decref(j);

	j = parse(web_render_cache_entry("x", "A", "ok\nonly three fields\n", &status));
	CU_ASSERT_EQUAL(status, 500);
	json_decref(j);
	j = parse(web_render_cache_entry("x", "A", "ok\nx. A general soon fresh NOERROR secure 1\n", &status));
	CU_ASSERT_EQUAL(status, 500);
	json_decref(j);
	j = parse(web_render_cache_entry("x", "A", "", &status));
	CU_ASSERT_EQUAL(status, 500);
	json_decref(j);
}

static void test_web_flush_reply(void)
{
	int status = 0;
	json_t *j = parse(web_render_flush("ok\nflushed 17\n", &status));
	CU_ASSERT_EQUAL(status, 200);
	CU_ASSERT_EQUAL(num(j, "flushed", NULL), 17);
	json_decref(j);
	j = parse(web_render_flush("error: invalid name 'x y'\n", &status));
	CU_ASSERT_EQUAL(status, 400);
	json_decref(j);
	j = parse(web_render_flush("error: flush failed\n", &status));
	CU_ASSERT_EQUAL(status, 500);
	CU_ASSERT_STRING_EQUAL(str(j, "error"), "flush failed");
	json_decref(j);
	j = parse(web_render_flush("ok\nflushed many\n", &status));
	CU_ASSERT_EQUAL(status, 500);
	json_decref(j);
}

/* ------------------------------------------------------------------ */
/* Prometheus */

/* The value of the sample line that begins with prefix (name and labels,
 * then a space), or -1. */
static double sample(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

static size_t occurrences(const char *text, const char *needle)
{
	size_t k = 0;
	for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
		k++;
	return k;
}

/* Every sample belongs to the family declared last before it, every
 * family is declared once with HELP then TYPE, counters end in _total. */
static void check_exposition(const char *text)
{
	char family[128] = "", type[32] = "";
	char *copy = strdup(text);
	char *save = NULL;
	CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
	CU_ASSERT(text[strlen(text) - 1] == '\n');
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128];
		if (strncmp(line, "# HELP ", 7) == 0) {
			CU_ASSERT_EQUAL(sscanf(line + 7, "%127s", name), 1);
			char needle[160];
			snprintf(needle, sizeof needle, "# HELP %s ", name);
			CU_ASSERT_EQUAL(occurrences(text, needle), 1);
			snprintf(family, sizeof family, "%s", name);
			type[0] = '\0';
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			CU_ASSERT_EQUAL(sscanf(line + 7, "%127s %31s", name, type), 2);
			CU_ASSERT_STRING_EQUAL(name, family);
			if (strcmp(type, "counter") == 0) {
				size_t n = strlen(name);
				CU_ASSERT(n > 6 && strcmp(name + n - 6, "_total") == 0);
			}
			continue;
		}
		CU_ASSERT(line[0] != '#');
		CU_ASSERT(type[0] != '\0');
		size_t n = strcspn(line, "{ ");
		snprintf(name, sizeof name, "%.*s", (int)n, line);
		if (strcmp(type, "histogram") == 0) {
			size_t f = strlen(family);
			CU_ASSERT(strncmp(name, family, f) == 0 &&
			          (strcmp(name + f, "_bucket") == 0 || strcmp(name + f, "_sum") == 0 ||
			           strcmp(name + f, "_count") == 0));
		} else {
			CU_ASSERT_STRING_EQUAL(name, family);
		}
	}
	free(copy);
}

static void test_web_metrics_families_and_counters(void)
{
	struct web_snapshot s;
	struct web_filter f[2];
	make_snapshot(&s, f);
	char *text = web_render_metrics(&s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	check_exposition(text);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_queries_total"), 100);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_cache_hits_total"), 90);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "# TYPE mxresolved_queries_total counter\n"));
	for (int i = 0; i < STATS_COUNT; i++) {
		char name[96];
		snprintf(name, sizeof name, "mxresolved_%s_total", stats_name((enum stats_counter)i));
		CU_ASSERT_EQUAL(sample(text, name), (double)s.counter[i]);
	}
	CU_ASSERT_EQUAL(sample(text, "mxresolved_inflight_recursions"), 7);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answers_total{rcode=\"NOERROR\"}"), 1000);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answers_total{rcode=\"SERVFAIL\"}"), 1002);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answers_total{rcode=\"RCODE15\"}"), 1015);
	CU_ASSERT_EQUAL(occurrences(text, "# TYPE mxresolved_answers_total counter\n"), 1);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_uptime_seconds"), 3600);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_cache_entries{partition=\"mail\"}"), 20);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_cache_bytes{partition=\"dnsbl\"}"), 3 * 4096);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_cache_quota_bytes{partition=\"general\"}"), 1 << 20);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_cache_map_size_bytes"), 1 << 30);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_cache_map_used_bytes"), 1 << 21);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_cache_evictions_total"), 2);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_build_info{version=\"0.2.0\"}"), 1);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_filter_lookups_total{source=\"spamhaus-dbl\"}"), 50);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_filter_listed_total{source=\"spamhaus-dbl\"}"), 3);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_filter_blocked_total{source=\"ads\"}"), 9);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_filter_healthy{source=\"spamhaus-dbl\"}"), 1);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_filter_healthy{source=\"ads\"}"), 0);
	CU_ASSERT_EQUAL(occurrences(text, "# TYPE mxresolved_filter_healthy gauge\n"), 1);
	free(text);
}

static void test_web_metrics_histogram_cumulative(void)
{
	struct web_snapshot s;
	struct web_filter f[2];
	make_snapshot(&s, f);
	char *text = web_render_metrics(&s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_EQUAL(occurrences(text, "# TYPE mxresolved_answer_latency_seconds histogram\n"), 1);
	CU_ASSERT_EQUAL(occurrences(text, "mxresolved_answer_latency_seconds_bucket{path=\"cache_hit\""),
	                STATS_HIST_BOUNDS + 1);
	CU_ASSERT_EQUAL(occurrences(text, "mxresolved_answer_latency_seconds_bucket{path=\"recursion\""),
	                STATS_HIST_BOUNDS + 1);
	/* The bounds as plain decimal seconds, first and last. */
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answer_latency_seconds_bucket{path=\"cache_hit\",le=\"0.00001\"}"), 10);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answer_latency_seconds_bucket{path=\"cache_hit\",le=\"0.000015\"}"),
	                10);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answer_latency_seconds_bucket{path=\"cache_hit\",le=\"0.00006\"}"), 20);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answer_latency_seconds_bucket{path=\"cache_hit\",le=\"10\"}"), 20);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answer_latency_seconds_bucket{path=\"cache_hit\",le=\"+Inf\"}"), 20);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answer_latency_seconds_count{path=\"cache_hit\"}"), 20);
	CU_ASSERT_DOUBLE_EQUAL(sample(text, "mxresolved_answer_latency_seconds_sum{path=\"cache_hit\"}"), 0.0006, 1e-12);
	/* Above the last bound shows only in +Inf, which equals the count. */
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answer_latency_seconds_bucket{path=\"recursion\",le=\"10\"}"), 0);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answer_latency_seconds_bucket{path=\"recursion\",le=\"+Inf\"}"), 4);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answer_latency_seconds_count{path=\"recursion\"}"), 4);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answer_latency_seconds_sum{path=\"recursion\"}"), 50);

	/* Every bucket line is at least the one before it. */
	double prev = -1;
	const char *key = "mxresolved_answer_latency_seconds_bucket{path=\"cache_hit\"";
	for (const char *p = strstr(text, key); p; p = strstr(p + 1, key)) {
		double v = strtod(strchr(p, ' ') + 1, NULL);
		CU_ASSERT(v >= prev);
		prev = v;
	}
	free(text);
}

static void test_web_metrics_label_values_escaped(void)
{
	struct web_snapshot s;
	struct web_filter f[2];
	char esc[64];
	make_snapshot(&s, f);
	s.version = "1.0 \"beta\"\\x\nnext";
	snprintf(f[1].name, sizeof f[1].name, "odd\"name");
	char *text = web_render_metrics(&s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "mxresolved_build_info{version=\"1.0 \\\"beta\\\"\\\\x\\nnext\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "mxresolved_filter_lookups_total{source=\"odd\\\"name\"} 0\n"));
	check_exposition(text);
	free(text);
	CU_ASSERT_STRING_EQUAL(web_prom_label_escape("a\\b\"c\nd", esc, sizeof esc), "a\\\\b\\\"c\\nd");
	/* Cut to fit, never in the middle of an escape. */
	CU_ASSERT_STRING_EQUAL(web_prom_label_escape("ab\"", esc, 4), "ab");
}

static void test_web_metrics_without_cache_or_filters(void)
{
	struct web_snapshot s;
	memset(&s, 0, sizeof s);
	char *text = web_render_metrics(&s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	check_exposition(text);
	CU_ASSERT_PTR_NULL(strstr(text, "mxresolved_cache_entries"));
	CU_ASSERT_PTR_NULL(strstr(text, "mxresolved_filter_lookups_total"));
	CU_ASSERT_PTR_NULL(strstr(text, "mxresolved_filter_healthy"));
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answer_latency_seconds_count{path=\"recursion\"}"), 0);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_answer_latency_seconds_sum{path=\"recursion\"}"), 0);
	CU_ASSERT_EQUAL(sample(text, "mxresolved_build_info{version=\"\"}"), 1);
	free(text);
}

int main(void)
{
	static const struct unit_test tests[] = {
		T(test_web_name_plain_has_no_trailing_dot),
		T(test_web_name_root_is_dot),
		T(test_web_name_escapes_odd_bytes),
		T(test_web_name_rejects_malformed),
		T(test_web_client_key_text_round_trip),
		T(test_web_client_key_anonymized_like_recorders),
		T(test_web_client_bad_text_and_keys),
		T(test_web_list_name_normalized_or_rejected),
		T(test_web_stats_json_fields),
		T(test_web_stats_json_empty_and_no_cache),
		T(test_web_timeseries_json),
		T(test_web_top_names_json),
		T(test_web_top_clients_json),
		T(test_web_qlog_filter_each_field),
		T(test_web_qlog_filters_combine_with_and),
		T(test_web_qlog_select_keeps_order_and_counts_all),
		T(test_web_qlog_sort_newest_first),
		T(test_web_querylog_json_entries),
		T(test_web_client_json_with_and_without_counters),
		T(test_web_error_json),
		T(test_web_cache_entry_found),
		T(test_web_cache_entry_not_found_and_errors),
		T(test_web_flush_reply),
		T(test_web_metrics_families_and_counters),
		T(test_web_metrics_histogram_cumulative),
		T(test_web_metrics_label_values_escaped),
		T(test_web_metrics_without_cache_or_filters),
	};
	return unit_run("web_render", NULL, NULL, tests, UNIT_COUNT(tests));
}
