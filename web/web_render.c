/* web_render.c -- JSON and Prometheus text from plain snapshots, pure */
#include "web_render.h"
#include "wire.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const web_partition_names[CACHE_PART_COUNT] = { "general", "mail", "dnsbl" };

/* ------------------------------------------------------------------ */
/* Names, types, rcodes, clients */

size_t web_name_to_text(const uint8_t *name, size_t name_len, char *out, size_t cap)
{
	/* wire's presentation form, without the trailing dot the API leaves off. */
	size_t n = wire_name_to_text(name, name_len, out, cap);
	if (n > 1 && out[n - 1] == '.')
		out[--n] = '\0';
	return n;
}

bool web_client_to_text(const uint8_t *key, size_t key_len, char *out, size_t cap)
{
	if (key != NULL && key_len == 5 && key[0] == 4 && inet_ntop(AF_INET, key + 1, out, (socklen_t)cap))
		return true;
	if (key != NULL && key_len == 17 && key[0] == 6 && inet_ntop(AF_INET6, key + 1, out, (socklen_t)cap))
		return true;
	if (cap > 0)
		snprintf(out, cap, "?");
	return false;
}

size_t web_client_key_from_text(const char *text, bool anonymize, uint8_t *out)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	if (text == NULL)
		return 0;
	memset(&sin, 0, sizeof sin);
	memset(&sin6, 0, sizeof sin6);
	if (inet_pton(AF_INET, text, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		return stats_client_key((const struct sockaddr *)&sin, anonymize, out);
	}
	if (inet_pton(AF_INET6, text, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		return stats_client_key((const struct sockaddr *)&sin6, anonymize, out);
	}
	return 0;
}

int web_list_name_normalize(const char *in, char *out, size_t cap)
{
	size_t n, label = 0;

	if (in == NULL || out == NULL)
		return -1;
	n = strlen(in);
	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > 253 || n + 1 > cap)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (isascii(c) && (isalnum(c) || c == '-' || c == '_')) {
			if (++label > 63)
				return -1;
		} else {
			return -1;
		}
		out[i] = (char)tolower(c);
	}
	if (label == 0)
		return -1;
	out[n] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ */
/* JSON helpers */

/* Reals rounded to 7 significant digits: the series are floats, and
 * printing a float's exact double (0.899999976) helps nobody. */
static json_t *jreal(double v)
{
	char b[40];
	if (!isfinite(v))
		v = 0;
	snprintf(b, sizeof b, "%.7g", v);
	return json_real(strtod(b, NULL));
}

static json_t *jint(uint64_t v)
{
	return json_integer(v > (uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)v);
}

static json_t *jsint(int64_t v)
{
	return json_integer((json_int_t)v);
}

/* Set o[k] = v, remembering a failure (v NULL from an allocation, or the
 * set itself) in *bad so the caller checks once at the end. */
static void jset(json_t *o, const char *k, json_t *v, bool *bad)
{
	if (o == NULL || v == NULL || json_object_set_new(o, k, v) != 0)
		*bad = true;
}

static void jappend(json_t *a, json_t *v, bool *bad)
{
	if (a == NULL || v == NULL || json_array_append_new(a, v) != 0)
		*bad = true;
}

static char *jdump(json_t *root, bool bad)
{
	char *s = NULL;
	if (root != NULL && !bad)
		s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
	json_decref(root);
	return s;
}

char *web_render_error(const char *msg)
{
	bool bad = false;
	json_t *o = json_object();
	jset(o, "error", json_string(msg ? msg : "error"), &bad);
	return jdump(o, bad);
}

/* {"count", "p50_ms", "p95_ms", "p99_ms"} of a histogram. */
static json_t *latency_json(const struct stats_hist_snapshot *h, bool *bad)
{
	json_t *o = json_object();
	uint64_t count = 0;
	for (size_t i = 0; i < STATS_HIST_BUCKETS; i++)
		count += h->bucket[i];
	jset(o, "count", jint(count), bad);
	jset(o, "p50_ms", jreal(stats_hist_quantile(h, 0.50) / 1000.0), bad);
	jset(o, "p95_ms", jreal(stats_hist_quantile(h, 0.95) / 1000.0), bad);
	jset(o, "p99_ms", jreal(stats_hist_quantile(h, 0.99) / 1000.0), bad);
	return o;
}

char *web_render_stats(const struct web_snapshot *s)
{
	bool bad = false;
	json_t *root = json_object();

	jset(root, "version", json_string(s->version ? s->version : ""), &bad);
	jset(root, "time", jsint(s->time), &bad);
	jset(root, "uptime_seconds", jsint(s->uptime_seconds), &bad);

	json_t *c = json_object();
	for (int i = 0; i < STATS_COUNT; i++)
		jset(c, stats_name((enum stats_counter)i), jint(s->counter[i]), &bad);
	jset(root, "counters", c, &bad);
	jset(root, "inflight", jint(s->inflight), &bad);
	json_t *by_rcode = json_object();
	for (unsigned rc = 0; rc < STATS_RCODES; rc++) {
		char buf[16];
		jset(by_rcode, wire_rcode_name(rc, buf, sizeof buf), jint(s->answers[rc]), &bad);
	}
	jset(root, "answers", by_rcode, &bad);

	uint64_t hits = s->counter[STATS_CACHE_HITS], misses = s->counter[STATS_CACHE_MISSES];
	jset(root, "hit_ratio", jreal(hits + misses ? (double)hits / (double)(hits + misses) : 0.0), &bad);

	json_t *r = json_object();
	jset(r, "qps", jreal(s->rates.qps), &bad);
	jset(r, "hit_ratio", jreal(s->rates.hit_ratio), &bad);
	jset(r, "blocked_ps", jreal(s->rates.blocked_ps), &bad);
	jset(r, "servfail_ps", jreal(s->rates.servfail_ps), &bad);
	jset(r, "stale_ps", jreal(s->rates.stale_ps), &bad);
	jset(root, "rates", r, &bad);

	json_t *lat = json_object();
	jset(lat, "cache_hit", latency_json(&s->latency[STATS_LAT_HIT], &bad), &bad);
	jset(lat, "recursion", latency_json(&s->latency[STATS_LAT_RECURSION], &bad), &bad);
	jset(root, "latency", lat, &bad);

	if (s->have_cache) {
		const struct cache_stats *cs = &s->cache;
		json_t *co = json_object(), *parts = json_array();
		for (int p = 0; p < CACHE_PART_COUNT; p++) {
			json_t *po = json_object();
			jset(po, "name", json_string(web_partition_names[p]), &bad);
			jset(po, "entries", jint(cs->entries[p]), &bad);
			jset(po, "bytes", jint(cs->bytes[p]), &bad);
			jset(po, "quota_bytes", jint(cs->quota[p]), &bad);
			jappend(parts, po, &bad);
		}
		jset(co, "partitions", parts, &bad);
		jset(co, "map_size_bytes", jint(cs->map_size), &bad);
		jset(co, "map_used_bytes", jint(cs->map_used), &bad);
		jset(co, "puts", jint(cs->puts), &bad);
		jset(co, "put_drops", jint(cs->put_drops), &bad);
		jset(co, "evictions", jint(cs->evictions), &bad);
		jset(co, "damaged", jint(cs->damaged), &bad);
		jset(co, "hot_hits", jint(cs->hot_hits), &bad);
		jset(co, "write_errors", jint(cs->write_errors), &bad);
		jset(root, "cache", co, &bad);
	} else {
		jset(root, "cache", json_null(), &bad);
	}

	json_t *fa = json_array();
	for (size_t i = 0; i < s->filter_count; i++) {
		const struct web_filter *f = &s->filters[i];
		json_t *fo = json_object();
		jset(fo, "name", json_string(f->name), &bad);
		jset(fo, "type", json_string(f->type ? f->type : "list"), &bad);
		jset(fo, "healthy", json_boolean(f->healthy), &bad);
		jset(fo, "lookups", jint(f->lookups), &bad);
		jset(fo, "listed", jint(f->listed), &bad);
		jset(fo, "errors", jint(f->errors), &bad);
		jset(fo, "timeouts", jint(f->timeouts), &bad);
		jset(fo, "blocked", jint(f->blocked), &bad);
		jappend(fa, fo, &bad);
	}
	jset(root, "filters", fa, &bad);
	return jdump(root, bad);
}

char *web_render_timeseries(const char *range, uint32_t step_s, const struct stats_point *pt, size_t n)
{
	bool bad = false;
	json_t *root = json_object(), *a = json_array();

	jset(root, "range", json_string(range), &bad);
	jset(root, "step_seconds", jint(step_s), &bad);
	for (size_t i = 0; i < n && !bad; i++) {
		const struct stats_point *p = &pt[i];
		json_t *o = json_object();
		jset(o, "t", jsint(p->t), &bad);
		jset(o, "qps", jreal(p->qps), &bad);
		jset(o, "hit_ratio", jreal(p->hit_ratio), &bad);
		jset(o, "blocked_ps", jreal(p->blocked_ps), &bad);
		jset(o, "servfail_ps", jreal(p->servfail_ps), &bad);
		jset(o, "stale_ps", jreal(p->stale_ps), &bad);
		jset(o, "hit_p50_ms", jreal(p->hit_p50_ms), &bad);
		jset(o, "hit_p95_ms", jreal(p->hit_p95_ms), &bad);
		jset(o, "hit_p99_ms", jreal(p->hit_p99_ms), &bad);
		jset(o, "recursion_p50_ms", jreal(p->recursion_p50_ms), &bad);
		jset(o, "recursion_p95_ms", jreal(p->recursion_p95_ms), &bad);
		jset(o, "recursion_p99_ms", jreal(p->recursion_p99_ms), &bad);
		jappend(a, o, &bad);
	}
	jset(root, "points", a, &bad);
	return jdump(root, bad);
}

static const char *const web_top_kinds[STATS_TOP_COUNT] = { "names", "blocked", "clients" };

/* A client's counters as in the top list and the client route. */
static void client_counters(json_t *o, const struct stats_top_entry *e, bool *bad)
{
	jset(o, "queries", jint(e->count), bad);
	jset(o, "error", jint(e->err), bad);
	jset(o, "blocked", jint(e->extra[STATS_CLIENT_BLOCKED]), bad);
	jset(o, "cache_hits", jint(e->extra[STATS_CLIENT_CACHED]), bad);
	jset(o, "nxdomain", jint(e->extra[STATS_CLIENT_NXDOMAIN]), bad);
	jset(o, "servfail", jint(e->extra[STATS_CLIENT_SERVFAIL]), bad);
}

char *web_render_top(enum stats_topk_kind kind, const struct stats_top_entry *e, size_t n)
{
	bool bad = false;
	json_t *root = json_object(), *a = json_array();

	if ((unsigned)kind >= STATS_TOP_COUNT) {
		json_decref(root);
		json_decref(a);
		return NULL;
	}
	jset(root, "kind", json_string(web_top_kinds[kind]), &bad);
	for (size_t i = 0; i < n && !bad; i++) {
		json_t *o = json_object();
		char text[1024];
		if (kind == STATS_TOP_CLIENTS) {
			web_client_to_text(e[i].key, e[i].key_len, text, sizeof text);
			jset(o, "client", json_string(text), &bad);
			client_counters(o, &e[i], &bad);
		} else {
			/* A sketch key cut at STATS_TOPK_KEY_MAX is no whole name: show it as one anyway. */
			if (web_name_to_text(e[i].key, e[i].key_len, text, sizeof text) == 0)
				snprintf(text, sizeof text, "?");
			jset(o, "name", json_string(text), &bad);
			jset(o, "count", jint(e[i].count), &bad);
			jset(o, "error", jint(e[i].err), &bad);
		}
		jappend(a, o, &bad);
	}
	jset(root, "entries", a, &bad);
	return jdump(root, bad);
}

/* ------------------------------------------------------------------ */
/* Query log */

void web_qlog_filter_init(struct web_qlog_filter *f)
{
	memset(f, 0, sizeof *f);
	f->blocked = -1;
}

bool web_qlog_match(const struct web_qlog_filter *f, const struct stats_qlog_entry *e)
{
	if (f->has_client && (e->client_len != f->client_len || memcmp(e->client, f->client, f->client_len) != 0))
		return false;
	if (f->has_type && e->qtype != f->type)
		return false;
	if (f->has_rcode && e->rcode != f->rcode)
		return false;
	if (f->blocked >= 0 && ((e->flags & STATS_QLOG_BLOCKED) != 0) != (f->blocked != 0))
		return false;
	if (f->name != NULL && f->name[0] != '\0') {
		char text[1024];
		if (web_name_to_text(e->qname, e->qname_len, text, sizeof text) == 0)
			return false;
		if (strcasestr(text, f->name) == NULL)
			return false;
	}
	return true;
}

size_t web_qlog_select(struct stats_qlog_entry *e, size_t n, const struct web_qlog_filter *f, size_t keep,
                       uint64_t *matched)
{
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (!web_qlog_match(f, &e[i]))
			continue;
		(*matched)++;
		if (kept < keep) {
			if (kept != i)
				e[kept] = e[i];
			kept++;
		}
	}
	return kept;
}

static int qlog_newer_first(const void *a, const void *b)
{
	const struct stats_qlog_entry *x = a, *y = b;
	return x->time_ms < y->time_ms ? 1 : x->time_ms > y->time_ms ? -1 : 0;
}

void web_qlog_sort(struct stats_qlog_entry *e, size_t n)
{
	if (n > 1)
		qsort(e, n, sizeof *e, qlog_newer_first);
}

static json_t *qlog_entry_json(const struct stats_qlog_entry *e, const char *const *names, size_t name_count,
                               bool *bad)
{
	json_t *o = json_object();
	char text[1024], tbuf[16], rbuf[16];

	jset(o, "time_ms", jsint(e->time_ms), bad);
	web_client_to_text(e->client, e->client_len, text, sizeof text);
	jset(o, "client", json_string(text), bad);
	if (web_name_to_text(e->qname, e->qname_len, text, sizeof text) == 0)
		snprintf(text, sizeof text, "?");
	jset(o, "name", json_string(text), bad);
	jset(o, "type", json_string(wire_type_name(e->qtype, tbuf, sizeof tbuf)), bad);
	jset(o, "rcode", json_string(wire_rcode_name(e->rcode, rbuf, sizeof rbuf)), bad);
	jset(o, "cached", json_boolean(e->flags & STATS_QLOG_CACHED), bad);
	jset(o, "stale", json_boolean(e->flags & STATS_QLOG_STALE), bad);
	jset(o, "blocked", json_boolean(e->flags & STATS_QLOG_BLOCKED), bad);
	if (e->source > 0 && e->source <= name_count && names[e->source - 1] != NULL)
		jset(o, "source", json_string(names[e->source - 1]), bad);
	else
		jset(o, "source", json_null(), bad);
	jset(o, "transport", json_string(e->flags & STATS_QLOG_TCP ? "tcp" : "udp"), bad);
	jset(o, "secure", json_boolean(e->flags & STATS_QLOG_SECURE), bad);
	jset(o, "latency_ms", jreal(e->latency_us / 1000.0), bad);
	return o;
}

static json_t *qlog_array(const struct stats_qlog_entry *e, size_t n, const char *const *names,
                          size_t name_count, bool *bad)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n && !*bad; i++)
		jappend(a, qlog_entry_json(&e[i], names, name_count, bad), bad);
	return a;
}

char *web_render_querylog(const struct stats_qlog_entry *e, size_t n, uint64_t matched,
                          const char *const *names, size_t name_count)
{
	bool bad = false;
	json_t *root = json_object();
	jset(root, "entries", qlog_array(e, n, names, name_count, &bad), &bad);
	jset(root, "matched", jint(matched), &bad);
	return jdump(root, bad);
}

char *web_render_client(const char *client, const struct stats_top_entry *counters,
                        const struct stats_qlog_entry *e, size_t n, const char *const *names,
                        size_t name_count)
{
	bool bad = false;
	json_t *root = json_object();
	jset(root, "client", json_string(client), &bad);
	if (counters != NULL) {
		json_t *c = json_object();
		client_counters(c, counters, &bad);
		jset(root, "counters", c, &bad);
	} else {
		jset(root, "counters", json_null(), &bad);
	}
	jset(root, "recent", qlog_array(e, n, names, name_count, &bad), &bad);
	return jdump(root, bad);
}

/* ------------------------------------------------------------------ */
/* Control replies */

/* The next line of *p (without its newline) into out; false at the end. */
static bool next_line(const char **p, char *out, size_t cap)
{
	const char *s = *p;
	if (s == NULL || *s == '\0')
		return false;
	const char *nl = strchr(s, '\n');
	size_t len = nl ? (size_t)(nl - s) : strlen(s);
	size_t k = len < cap - 1 ? len : cap - 1;
	memcpy(out, s, k);
	out[k] = '\0';
	*p = nl ? nl + 1 : s + len;
	return true;
}

/* An error reply ("error: ...") as a status and a JSON error: the
 * control's complaints about what was asked are the client's fault. */
static char *control_error(const char *msg, int *status)
{
	if (strncmp(msg, "invalid ", 8) == 0 || strncmp(msg, "usage:", 6) == 0 ||
	    strncmp(msg, "unknown option", 14) == 0)
		*status = 400;
	else
		*status = 500;
	return web_render_error(msg);
}

/* Drop one trailing dot, but leave the root "." alone. */
static void strip_dot(char *s)
{
	size_t n = strlen(s);
	if (n > 1 && s[n - 1] == '.' && s[n - 2] != '\\')
		s[n - 1] = '\0';
}

char *web_render_cache_entry(const char *name, const char *type, const char *reply, int *status)
{
	char line[4096];
	const char *p = reply;

	*status = 500;
	if (reply == NULL || !next_line(&p, line, sizeof line))
		return web_render_error("no reply from the control");
	if (strncmp(line, "error: ", 7) == 0) {
		if (strcmp(line + 7, "not cached") == 0) {
			bool bad = false;
			char shown[1100];
			snprintf(shown, sizeof shown, "%s", name);
			strip_dot(shown);
			json_t *root = json_object();
			jset(root, "name", json_string(shown), &bad);
			jset(root, "type", json_string(type), &bad);
			jset(root, "found", json_false(), &bad);
			*status = 200;
			return jdump(root, bad);
		}
		return control_error(line + 7, status);
	}
	if (strcmp(line, "ok") != 0 || !next_line(&p, line, sizeof line))
		return web_render_error("unexpected reply from the control");

	/* NAME TYPE PARTITION TTL_LEFT STATE RCODE DNSSEC SIZE (control.h) */
	char f[8][1100];
	int nf = 0;
	char *save = NULL;
	for (char *w = strtok_r(line, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
		if (nf == 8) {
			nf = 9;
			break;
		}
		snprintf(f[nf++], sizeof f[0], "%s", w);
	}
	if (nf != 8)
		return web_render_error("unexpected entry line from the control");
	char *end1, *end2;
	errno = 0;
	long long ttl = strtoll(f[3], &end1, 10);
	unsigned long long size = strtoull(f[7], &end2, 10);
	if (*end1 != '\0' || *end2 != '\0' || errno != 0)
		return web_render_error("unexpected entry line from the control");
	strip_dot(f[0]);

	bool bad = false;
	json_t *root = json_object(), *recs = json_array();
	jset(root, "name", json_string(f[0]), &bad);
	jset(root, "type", json_string(type), &bad);
	jset(root, "found", json_true(), &bad);
	jset(root, "partition", json_string(f[2]), &bad);
	jset(root, "ttl_left", jsint(ttl), &bad);
	jset(root, "state", json_string(f[4]), &bad);
	jset(root, "rcode", json_string(f[5]), &bad);
	jset(root, "dnssec", json_string(f[6]), &bad);
	jset(root, "size", jint(size), &bad);
	/* Section headers (";; answer") and notes are the control's layout, not records. */
	while (next_line(&p, line, sizeof line))
		if (line[0] != '\0' && strncmp(line, ";;", 2) != 0)
			jappend(recs, json_string(line), &bad);
	jset(root, "records", recs, &bad);
	*status = 200;
	return jdump(root, bad);
}

char *web_render_flush(const char *reply, int *status)
{
	char line[1024];
	const char *p = reply;

	*status = 500;
	if (reply == NULL || !next_line(&p, line, sizeof line))
		return web_render_error("no reply from the control");
	if (strncmp(line, "error: ", 7) == 0)
		return control_error(line + 7, status);
	long long n;
	char extra;
	if (strcmp(line, "ok") != 0 || !next_line(&p, line, sizeof line) ||
	    sscanf(line, "flushed %lld%c", &n, &extra) != 1 || n < 0)
		return web_render_error("unexpected reply from the control");
	bool bad = false;
	json_t *root = json_object();
	jset(root, "flushed", jsint(n), &bad);
	*status = 200;
	return jdump(root, bad);
}

/* ------------------------------------------------------------------ */
/* Prometheus text */

struct tbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void tb_printf(struct tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tb_printf(struct tbuf *b, const char *fmt, ...)
{
	va_list ap;
	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->p != NULL && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = b->cap ? b->cap * 2 : 16384;
		while (ncap < b->len + (size_t)n + 1)
			ncap *= 2;
		char *np = realloc(b->p, ncap);
		if (np == NULL) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

char *web_prom_label_escape(const char *v, char *out, size_t cap)
{
	size_t o = 0;
	if (cap == 0)
		return out;
	for (; v != NULL && *v != '\0'; v++) {
		const char *rep = NULL;
		char one[2] = { *v, '\0' };
		if (*v == '\\')
			rep = "\\\\";
		else if (*v == '"')
			rep = "\\\"";
		else if (*v == '\n')
			rep = "\\n";
		else
			rep = one;
		size_t k = strlen(rep);
		if (o + k >= cap)
			break;
		memcpy(out + o, rep, k);
		o += k;
	}
	out[o] = '\0';
	return out;
}

/* A family's HELP and TYPE lines, once before its samples. */
static void prom_family(struct tbuf *b, const char *name, const char *type, const char *help)
{
	tb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Microseconds as seconds in plain decimal ("0.000015", "10"): exact, and
 * the same text for the same bound every time, as "le" labels need. */
static void us_to_seconds(uint64_t us, char *out, size_t cap)
{
	snprintf(out, cap, "%" PRIu64 ".%06u", us / 1000000, (unsigned)(us % 1000000));
	size_t n = strlen(out);
	while (out[n - 1] == '0')
		out[--n] = '\0';
	if (out[n - 1] == '.')
		out[--n] = '\0';
}

static const char *const web_counter_help[STATS_COUNT] = {
	[STATS_QUERIES] = "Datagrams and TCP frames taken.",
	[STATS_CACHE_HITS] = "Queries answered fresh from the cache.",
	[STATS_CACHE_MISSES] = "Queries sent to the resolver thread.",
	[STATS_MALFORMED] = "Queries dropped or answered FORMERR.",
	[STATS_REFUSED] = "Queries refused by access control or for what was asked.",
	[STATS_DROPPED] = "Queries dropped by access control.",
	[STATS_RATELIMITED] = "Queries dropped or slipped by rate limiting.",
	[STATS_TCP_ACCEPTED] = "TCP connections accepted.",
	[STATS_TCP_REJECTED] = "TCP connections over the total or per-client cap.",
	[STATS_RESOLUTIONS] = "Recursive resolutions completed.",
	[STATS_COALESCED] = "Clients that joined a question already in flight.",
	[STATS_TIMEOUTS] = "Clients answered SERVFAIL at their deadline.",
	[STATS_SERVFAIL] = "Recursive resolutions that failed.",
	[STATS_BOGUS] = "Recursive resolutions that came back DNSSEC bogus.",
	[STATS_STALE_SERVED] = "Stale answers sent (RFC 8767).",
	[STATS_PREFETCHES] = "Background refreshes started.",
	[STATS_OVERLOAD] = "Queries answered SERVFAIL at once for pending, per-client or waiter caps.",
	[STATS_BLOCKED] = "Queries answered by a filter source.",
	[STATS_FILTER_CHECKS] = "Questions that went through RHSBL or DNSBL checks.",
};

static void prom_hist(struct tbuf *b, const char *path, const struct stats_hist_snapshot *h)
{
	uint64_t cum = 0;
	char le[40];
	for (size_t i = 0; i < STATS_HIST_BOUNDS; i++) {
		cum += h->bucket[i];
		us_to_seconds(stats_hist_bounds_us[i], le, sizeof le);
		tb_printf(b, "mxresolved_answer_latency_seconds_bucket{path=\"%s\",le=\"%s\"} %" PRIu64 "\n", path, le,
		          cum);
	}
	cum += h->bucket[STATS_HIST_BUCKETS - 1];
	tb_printf(b, "mxresolved_answer_latency_seconds_bucket{path=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", path, cum);
	us_to_seconds(h->sum_us, le, sizeof le);
	tb_printf(b, "mxresolved_answer_latency_seconds_sum{path=\"%s\"} %s\n", path, le);
	tb_printf(b, "mxresolved_answer_latency_seconds_count{path=\"%s\"} %" PRIu64 "\n", path, cum);
}

/* One family of per-source samples: which picks the field. */
enum filter_field { FF_LOOKUPS, FF_LISTED, FF_ERRORS, FF_TIMEOUTS, FF_BLOCKED, FF_HEALTHY };

static uint64_t filter_value(const struct web_filter *f, enum filter_field which)
{
	switch (which) {
	case FF_LOOKUPS: return f->lookups;
	case FF_LISTED: return f->listed;
	case FF_ERRORS: return f->errors;
	case FF_TIMEOUTS: return f->timeouts;
	case FF_BLOCKED: return f->blocked;
	case FF_HEALTHY: return f->healthy ? 1 : 0;
	}
	return 0;
}

char *web_render_metrics(const struct web_snapshot *s)
{
	struct tbuf b = { 0 };
	char name[128], esc[512];

	for (int i = 0; i < STATS_COUNT; i++) {
		const char *help = web_counter_help[i] ? web_counter_help[i] : "Counter of the resolver.";
		snprintf(name, sizeof name, "mxresolved_%s_total", stats_name((enum stats_counter)i));
		prom_family(&b, name, "counter", help);
		tb_printf(&b, "%s %" PRIu64 "\n", name, s->counter[i]);
	}

	prom_family(&b, "mxresolved_answer_latency_seconds", "histogram",
	            "Time from a query's arrival to its answer, by how it was answered.");
	prom_hist(&b, "cache_hit", &s->latency[STATS_LAT_HIT]);
	prom_hist(&b, "recursion", &s->latency[STATS_LAT_RECURSION]);

	prom_family(&b, "mxresolved_answers_total", "counter", "Answers sent, by response code.");
	for (unsigned rc = 0; rc < STATS_RCODES; rc++) {
		char buf[16];
		tb_printf(&b, "mxresolved_answers_total{rcode=\"%s\"} %" PRIu64 "\n", wire_rcode_name(rc, buf, sizeof buf),
		          s->answers[rc]);
	}

	prom_family(&b, "mxresolved_inflight_recursions", "gauge", "Questions being resolved now.");
	tb_printf(&b, "mxresolved_inflight_recursions %" PRIu64 "\n", s->inflight);

	if (s->have_cache) {
		static const struct {
			const char *name, *help;
			size_t off;
		} parts[] = {
			{ "mxresolved_cache_entries", "Entries in a cache partition.", offsetof(struct cache_stats, entries) },
			{ "mxresolved_cache_bytes", "Bytes in use by a cache partition.", offsetof(struct cache_stats, bytes) },
			{ "mxresolved_cache_quota_bytes", "Byte quota of a cache partition.",
			  offsetof(struct cache_stats, quota) },
		};
		for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
			const uint64_t *v = (const uint64_t *)((const char *)&s->cache + parts[k].off);
			prom_family(&b, parts[k].name, "gauge", parts[k].help);
			for (int p = 0; p < CACHE_PART_COUNT; p++)
				tb_printf(&b, "%s{partition=\"%s\"} %" PRIu64 "\n", parts[k].name, web_partition_names[p], v[p]);
		}
		prom_family(&b, "mxresolved_cache_map_size_bytes", "gauge", "Size of the cache's LMDB map.");
		tb_printf(&b, "mxresolved_cache_map_size_bytes %" PRIu64 "\n", s->cache.map_size);
		prom_family(&b, "mxresolved_cache_map_used_bytes", "gauge", "Bytes of the cache's LMDB map in use.");
		tb_printf(&b, "mxresolved_cache_map_used_bytes %" PRIu64 "\n", s->cache.map_used);

		static const struct {
			const char *name, *help;
			size_t off;
		} ctr[] = {
			{ "mxresolved_cache_puts_total", "Answers queued for storing.", offsetof(struct cache_stats, puts) },
			{ "mxresolved_cache_put_drops_total", "Answers not stored because the write queue was full.",
			  offsetof(struct cache_stats, put_drops) },
			{ "mxresolved_cache_evictions_total", "Entries evicted.", offsetof(struct cache_stats, evictions) },
			{ "mxresolved_cache_damaged_total", "Stored values found damaged (served as misses).",
			  offsetof(struct cache_stats, damaged) },
			{ "mxresolved_cache_hot_hits_total", "Hits served from a worker's in-memory copies.",
			  offsetof(struct cache_stats, hot_hits) },
			{ "mxresolved_cache_write_errors_total", "Failed cache commits, syncs and evictions.",
			  offsetof(struct cache_stats, write_errors) },
		};
		for (size_t k = 0; k < sizeof ctr / sizeof ctr[0]; k++) {
			uint64_t v;
			memcpy(&v, (const char *)&s->cache + ctr[k].off, sizeof v);
			prom_family(&b, ctr[k].name, "counter", ctr[k].help);
			tb_printf(&b, "%s %" PRIu64 "\n", ctr[k].name, v);
		}
	}

	prom_family(&b, "mxresolved_uptime_seconds", "gauge", "Seconds since the daemon started.");
	tb_printf(&b, "mxresolved_uptime_seconds %" PRId64 "\n", s->uptime_seconds);
	prom_family(&b, "mxresolved_build_info", "gauge", "Always 1; the version is a label.");
	tb_printf(&b, "mxresolved_build_info{version=\"%s\"} 1\n",
	          web_prom_label_escape(s->version ? s->version : "", esc, sizeof esc));

	if (s->filter_count > 0) {
		static const struct {
			const char *name, *type, *help;
			enum filter_field which;
		} ff[] = {
			{ "mxresolved_filter_lookups_total", "counter", "Lookups made in a filter source.", FF_LOOKUPS },
			{ "mxresolved_filter_listed_total", "counter", "Lookups a filter source found listed.", FF_LISTED },
			{ "mxresolved_filter_errors_total", "counter", "Lookups in a filter source that failed.", FF_ERRORS },
			{ "mxresolved_filter_timeouts_total", "counter", "Lookups in a filter source that timed out.",
			  FF_TIMEOUTS },
			{ "mxresolved_filter_blocked_total", "counter", "Queries a filter source blocked.", FF_BLOCKED },
			{ "mxresolved_filter_healthy", "gauge", "1 when a filter source passes its health checks.",
			  FF_HEALTHY },
		};
		for (size_t k = 0; k < sizeof ff / sizeof ff[0]; k++) {
			prom_family(&b, ff[k].name, ff[k].type, ff[k].help);
			for (size_t i = 0; i < s->filter_count; i++)
				tb_printf(&b, "%s{source=\"%s\"} %" PRIu64 "\n", ff[k].name,
				          web_prom_label_escape(s->filters[i].name, esc, sizeof esc),
				          filter_value(&s->filters[i], ff[k].which));
		}
	}

	if (b.oom || b.p == NULL) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
