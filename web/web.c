/* web.c -- the HTTP front: routes, admin actions and the sampler, on libmicrohttpd */
#include "web.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "acl.h"
#include "cache.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "server.h"
#include "stats.h"
#include "web_assets.h"
#include "web_render.h"
#include "wire.h"

#define WEB_BODY_MAX 4096
#define WEB_HOUR_STEP 5
#define WEB_DAY_STEP 120
#define WEB_SERIES_CAP 720
#define WEB_MAX_RECORDERS 512
#define WEB_PER_IP_CONNECTIONS 8
#define WEB_CONNECTION_MEMORY (64 * 1024)
#define WEB_TLS_FILE_MAX (1024 * 1024)
/* A query-log request copies at most this many of each worker's newest
 * entries, which bounds its memory whatever query-log-size is. */
#define WEB_QLOG_SCAN_MAX 65536
#define WEB_QLOG_LIMIT_MAX 1000
#define WEB_CLIENT_RECENT 100
#define WEB_TOP_LIMIT_MAX 100
#define WEB_META_HOUR "web.series.hour"
#define WEB_META_DAY "web.series.day"

/* Only 'self' for scripts, styles and fetches, and no inline script: the
 * dashboard's files are all compiled in and served from here. */
#define WEB_CSP                                                                                                \
	"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "    \
	"font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

struct web_listener {
	int fd;                         /* ours; the daemon gets a dup it closes itself */
	struct MHD_Daemon *daemon;
	char text[80];                  /* "127.0.0.1:8053", for messages */
};

/* What the sampler reads each second: enough to compute rates and
 * latency over any interval by difference. */
struct web_sample {
	uint64_t counter[STATS_COUNT];
	uint64_t answers[STATS_RCODES];
	struct stats_hist_snapshot lat[STATS_LAT_COUNT];
	struct timespec mono;
	int64_t wall;
};

struct web {
	const struct config *cfg;
	struct server *srv;
	struct cache *cache;
	char *version;
	struct web_listener l[CONFIG_MAX_LISTEN];
	unsigned nl;
	char *tls_cert, *tls_key;
	size_t tls_key_len;
	struct acl *allow;
	struct timespec started;

	/* The sampler's results, guarded by lock (never touched by DNS workers). */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	bool sampler_running;
	pthread_t sampler;
	struct stats_series hour, day;
	struct web_rates rates;

	/* Admin actions and control calls one at a time, whichever daemon
	 * thread serves them: two list appends or flushes never interleave. */
	pthread_mutex_t admin;
};

/* ------------------------------------------------------------------ */
/* Small helpers */

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char a[INET6_ADDRSTRLEN] = "?";
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a);
		snprintf(out, cap, "%s:%u", a, (unsigned)ntohs(s4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a);
		snprintf(out, cap, "[%s]:%u", a, (unsigned)ntohs(s6->sin6_port));
	} else {
		snprintf(out, cap, "(family %d)", (int)ss->ss_family);
	}
}

static void client_text(struct MHD_Connection *c, char *out, size_t cap)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (ci != NULL && ci->client_addr != NULL) {
		size_t len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
		                                                      : sizeof(struct sockaddr_in);
		memcpy(&ss, ci->client_addr, len);
	}
	addr_text(&ss, out, cap);
}

/* Read a whole (small) file into a NUL-terminated malloc'd buffer. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t got = 0;

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size > WEB_TLS_FILE_MAX) {
		snprintf(err, errlen, "%s: empty, unreadable or over 1 MiB", path);
		goto fail;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "shorter than its size");
			goto fail;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(fd);
	*len = got;
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

static double ts_seconds(const struct timespec *a, const struct timespec *b)
{
	return (double)(a->tv_sec - b->tv_sec) + (double)(a->tv_nsec - b->tv_nsec) / 1e9;
}

static unsigned recorders(struct web *w, const struct stats_recorder **out)
{
	unsigned n = server_recorders(w->srv, out, WEB_MAX_RECORDERS);
	return n > WEB_MAX_RECORDERS ? WEB_MAX_RECORDERS : n;
}

static void take_sample(struct web *w, struct web_sample *s)
{
	const struct stats_recorder *r[WEB_MAX_RECORDERS];
	uint64_t inflight = 0;

	memset(s, 0, sizeof *s);
	server_get_stats(w->srv, s->counter, &inflight);
	unsigned n = recorders(w, r);
	for (unsigned i = 0; i < n; i++)
		for (int k = 0; k < STATS_LAT_COUNT; k++)
			stats_hist_accumulate(&r[i]->latency[k], &s->lat[k]);
	stats_answers_merge(r, n, s->answers);
	clock_gettime(CLOCK_MONOTONIC, &s->mono);
	s->wall = (int64_t)time(NULL);
}

/* How much a counter grew; 0 rather than a wrapped difference if it ever reads lower. */
static uint64_t growth(uint64_t now, uint64_t before)
{
	return now >= before ? now - before : 0;
}

static uint64_t delta(const struct web_sample *now, const struct web_sample *before, enum stats_counter c)
{
	return growth(now->counter[c], before->counter[c]);
}

/* The rates between two samples; the counters behind each are listed in
 * web/README.md. */
static void rates_between(const struct web_sample *now, const struct web_sample *before, struct web_rates *r)
{
	double dt = ts_seconds(&now->mono, &before->mono);
	if (dt < 0.001)
		dt = 0.001;
	uint64_t hits = delta(now, before, STATS_CACHE_HITS), misses = delta(now, before, STATS_CACHE_MISSES);
	r->qps = (double)delta(now, before, STATS_QUERIES) / dt;
	r->hit_ratio = hits + misses ? (double)hits / (double)(hits + misses) : 0.0;
	r->blocked_ps = (double)delta(now, before, STATS_BLOCKED) / dt;
	/* Every SERVFAIL sent, whatever its cause: failed resolutions, client
	 * deadlines, overload, and SERVFAILs remembered in the cache. */
	r->servfail_ps = (double)growth(now->answers[WIRE_RCODE_SERVFAIL], before->answers[WIRE_RCODE_SERVFAIL]) / dt;
	r->stale_ps = (double)delta(now, before, STATS_STALE_SERVED) / dt;
}

static void point_between(const struct web_sample *now, const struct web_sample *before, struct stats_point *p)
{
	struct web_rates r;
	struct stats_hist_snapshot d;

	rates_between(now, before, &r);
	memset(p, 0, sizeof *p);
	p->t = now->wall;
	p->qps = (float)r.qps;
	p->hit_ratio = (float)r.hit_ratio;
	p->blocked_ps = (float)r.blocked_ps;
	p->servfail_ps = (float)r.servfail_ps;
	p->stale_ps = (float)r.stale_ps;
	stats_hist_diff(&now->lat[STATS_LAT_HIT], &before->lat[STATS_LAT_HIT], &d);
	p->hit_p50_ms = (float)(stats_hist_quantile(&d, 0.50) / 1000.0);
	p->hit_p95_ms = (float)(stats_hist_quantile(&d, 0.95) / 1000.0);
	p->hit_p99_ms = (float)(stats_hist_quantile(&d, 0.99) / 1000.0);
	stats_hist_diff(&now->lat[STATS_LAT_RECURSION], &before->lat[STATS_LAT_RECURSION], &d);
	p->recursion_p50_ms = (float)(stats_hist_quantile(&d, 0.50) / 1000.0);
	p->recursion_p95_ms = (float)(stats_hist_quantile(&d, 0.95) / 1000.0);
	p->recursion_p99_ms = (float)(stats_hist_quantile(&d, 0.99) / 1000.0);
}

/* ------------------------------------------------------------------ */
/* Time series in the cache's meta database */

static void series_load(struct web *w)
{
	static const struct {
		const char *key;
		size_t off;
	} which[] = { { WEB_META_HOUR, offsetof(struct web, hour) }, { WEB_META_DAY, offsetof(struct web, day) } };
	int64_t now = (int64_t)time(NULL);

	if (w->cache == NULL)
		return;
	for (size_t i = 0; i < sizeof which / sizeof which[0]; i++) {
		size_t len = 0;
		uint8_t *buf = cache_meta_get(w->cache, which[i].key, &len);
		if (buf == NULL)
			continue;
		struct stats_series *s = (struct stats_series *)((char *)w + which[i].off);
		pthread_mutex_lock(&w->lock);
		int n = stats_series_load(s, buf, len, now);
		pthread_mutex_unlock(&w->lock);
		if (n < 0)
			log_warn("web: saved time series %s is of another format; starting it empty", which[i].key);
		else
			log_debug("web: %d points of %s loaded", n, which[i].key);
		free(buf);
	}
}

/* Serialise under the lock, write outside it: the cache waits for its
 * commit, and requests must not wait for that. */
static void series_save(struct web *w)
{
	uint8_t *h, *d;
	size_t hl = 0, dl = 0;

	if (w->cache == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	h = stats_series_save(&w->hour, &hl);
	d = stats_series_save(&w->day, &dl);
	pthread_mutex_unlock(&w->lock);
	if (h == NULL || cache_meta_put(w->cache, WEB_META_HOUR, h, hl) != 0)
		log_warn("web: could not save the hour time series");
	if (d == NULL || cache_meta_put(w->cache, WEB_META_DAY, d, dl) != 0)
		log_warn("web: could not save the day time series");
	free(h);
	free(d);
}

/* ------------------------------------------------------------------ */
/* The sampler thread */

static void *sampler_main(void *arg)
{
	struct web *w = arg;
	struct web_sample prev, cur, hour_base, day_base;
	struct timespec next, last_save;
	unsigned long tick = 0;
	double save_every = w->cfg->web_save_interval_ms / 1000.0;

	take_sample(w, &prev);
	hour_base = day_base = prev;
	next = last_save = prev.mono;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		next.tv_sec += 1;
		while (!w->stop) {
			int rc = pthread_cond_timedwait(&w->wake, &w->lock, &next);
			if (rc == ETIMEDOUT)
				break;
		}
		if (w->stop)
			break;
		pthread_mutex_unlock(&w->lock);

		take_sample(w, &cur);
		/* Fallen far behind (a slow save, a suspended machine): start
		 * the rhythm again from now rather than catching up in a burst. */
		if (ts_seconds(&cur.mono, &next) > 2.0)
			next = cur.mono;
		tick++;
		struct web_rates r;
		struct stats_point hp, dp;
		bool push_hour = tick % WEB_HOUR_STEP == 0, push_day = tick % WEB_DAY_STEP == 0;
		rates_between(&cur, &prev, &r);
		if (push_hour)
			point_between(&cur, &hour_base, &hp);
		if (push_day)
			point_between(&cur, &day_base, &dp);

		pthread_mutex_lock(&w->lock);
		w->rates = r;
		if (push_hour)
			stats_series_push(&w->hour, &hp);
		if (push_day)
			stats_series_push(&w->day, &dp);
		pthread_mutex_unlock(&w->lock);

		if (push_hour)
			hour_base = cur;
		if (push_day)
			day_base = cur;
		prev = cur;
		if (ts_seconds(&cur.mono, &last_save) >= save_every) {
			series_save(w);
			last_save = cur.mono;
		}
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void sampler_stop(struct web *w)
{
	if (!w->sampler_running)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->sampler, NULL);
	w->sampler_running = false;
}

/* ------------------------------------------------------------------ */
/* Responses */

static void common_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Content-Security-Policy", WEB_CSP);
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

/* Queue body (malloc'd, taken; NULL means out of memory) with status. */
static enum MHD_Result send_owned(struct MHD_Connection *c, unsigned status, char *body, const char *ctype)
{
	static const char oom[] = "{\"error\":\"out of memory\"}";
	struct MHD_Response *r;

	if (body == NULL) {
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		ctype = "application/json";
		r = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
	} else {
		r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
		if (r == NULL)
			free(body);
	}
	if (r == NULL)
		return MHD_NO;
	common_headers(r);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, char *json)
{
	return send_owned(c, status, json, "application/json");
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return send_json(c, status, web_render_error(msg));
}

/* An error response with one extra header (Allow, WWW-Authenticate). */
static enum MHD_Result send_error_hdr(struct MHD_Connection *c, unsigned status, const char *hname,
                                      const char *hval, const char *msg)
{
	char *body = web_render_error(msg);
	struct MHD_Response *r;
	if (body == NULL)
		return send_json(c, status, NULL);
	if ((r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE)) == NULL) {
		free(body);
		return MHD_NO;
	}
	common_headers(r);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, hname, hval);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Whether If-None-Match names etag (weak or strong, in a list, or "*"). */
static bool etag_matches(const char *inm, const char *etag)
{
	if (inm == NULL)
		return false;
	while (*inm == ' ')
		inm++;
	return strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL;
}

static enum MHD_Result send_asset(struct MHD_Connection *c, const struct web_asset *a)
{
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	bool same = etag_matches(inm, a->etag);
	struct MHD_Response *r =
		MHD_create_response_from_buffer(same ? 0 : a->len, same ? NULL : (void *)a->data, MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	common_headers(r);
	/* no-cache: browsers keep the file but ask each time; a 304 costs nothing. */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, a->etag);
	if (!same)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
	enum MHD_Result ret = MHD_queue_response(c, same ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Reading the state */

/* Fill filters (CONFIG_MAX_SOURCES entries) with every source's counters
 * and its type from the configuration in force; returns how many. */
static size_t filters_of(struct web *w, struct web_filter *filters)
{
	static const char *const type_names[] = { [CONFIG_SOURCE_LIST] = "list", [CONFIG_SOURCE_RHSBL] = "rhsbl",
		                                      [CONFIG_SOURCE_DNSBL] = "dnsbl" };
	struct server_filter_stat fs[CONFIG_MAX_SOURCES];
	const struct config *cfg = server_config(w->srv);
	unsigned n = server_filter_stats(w->srv, fs, CONFIG_MAX_SOURCES);

	if (n > CONFIG_MAX_SOURCES)
		n = CONFIG_MAX_SOURCES;
	for (unsigned i = 0; i < n; i++) {
		struct web_filter *f = &filters[i];
		memset(f, 0, sizeof *f);
		memcpy(f->name, fs[i].name, sizeof f->name);
		f->name[sizeof f->name - 1] = '\0';
		f->healthy = fs[i].healthy;
		f->lookups = fs[i].lookups;
		f->listed = fs[i].listed;
		f->errors = fs[i].errors;
		f->timeouts = fs[i].timeouts;
		f->blocked = fs[i].blocked;
		f->type = "list";
		/* By name, so that an order the server chose differently still gives the right type. */
		for (unsigned k = 0; cfg != NULL && k < cfg->filter_source_count; k++)
			if (strcmp(cfg->filter_sources[k].name, fs[i].name) == 0 &&
			    (unsigned)cfg->filter_sources[k].type < sizeof type_names / sizeof type_names[0])
				f->type = type_names[cfg->filter_sources[k].type];
	}
	return n;
}

static void snapshot(struct web *w, struct web_snapshot *s, struct web_filter *filters)
{
	const struct stats_recorder *r[WEB_MAX_RECORDERS];
	struct timespec now;

	memset(s, 0, sizeof *s);
	s->version = w->version;
	s->time = (int64_t)time(NULL);
	clock_gettime(CLOCK_MONOTONIC, &now);
	s->uptime_seconds = (int64_t)(now.tv_sec - w->started.tv_sec);
	server_get_stats(w->srv, s->counter, &s->inflight);
	unsigned n = recorders(w, r);
	for (unsigned i = 0; i < n; i++)
		for (int k = 0; k < STATS_LAT_COUNT; k++)
			stats_hist_accumulate(&r[i]->latency[k], &s->latency[k]);
	stats_answers_merge(r, n, s->answers);
	pthread_mutex_lock(&w->lock);
	s->rates = w->rates;
	pthread_mutex_unlock(&w->lock);
	if (w->cache != NULL) {
		cache_get_stats(w->cache, &s->cache);
		s->have_cache = true;
	}
	s->filters = filters;
	s->filter_count = filters_of(w, filters);
}

/* The source names of the query log (entry source k is names[k - 1]). */
static size_t source_names(struct web *w, struct server_filter_stat *fs, const char **names)
{
	unsigned n = server_filter_stats(w->srv, fs, CONFIG_MAX_SOURCES);
	if (n > CONFIG_MAX_SOURCES)
		n = CONFIG_MAX_SOURCES;
	for (unsigned i = 0; i < n; i++)
		names[i] = fs[i].name;
	return n;
}

/* Read every worker's query log, keep what passes f, newest first, at
 * most limit in *out (malloc'd); *matched counts all that passed.
 * Returns how many, or -1 when out of memory. */
static long qlog_collect(struct web *w, const struct web_qlog_filter *f, size_t limit,
                         struct stats_qlog_entry **out, uint64_t *matched)
{
	const struct stats_recorder *r[WEB_MAX_RECORDERS];
	unsigned n = recorders(w, r);
	size_t ring_max = 0;
	struct stats_qlog_entry *tmp = NULL, *res = NULL;
	size_t kept = 0;

	*matched = 0;
	*out = NULL;
	for (unsigned i = 0; i < n; i++) {
		size_t size = r[i]->qlog.slot != NULL ? (size_t)r[i]->qlog.mask + 1 : 0;
		if (size > WEB_QLOG_SCAN_MAX)
			size = WEB_QLOG_SCAN_MAX;
		if (size > ring_max)
			ring_max = size;
	}
	if (ring_max == 0 || n == 0)
		return 0;
	tmp = malloc(ring_max * sizeof *tmp);
	res = malloc(2 * limit * sizeof *res);
	if (tmp == NULL || res == NULL)
		goto fail;
	for (unsigned i = 0; i < n; i++) {
		if (r[i]->qlog.slot == NULL)
			continue;
		size_t got = stats_qlog_read(&r[i]->qlog, tmp, ring_max);
		/* Each ring is newest first, so the newest limit overall are
		 * among each ring's newest limit matches: keep those, merge
		 * them with the best so far, and cut back to limit, so memory
		 * stays at two limits whatever the number of workers. */
		size_t k = web_qlog_select(tmp, got, f, limit, matched);
		memcpy(res + kept, tmp, k * sizeof *tmp);
		kept += k;
		web_qlog_sort(res, kept);
		if (kept > limit)
			kept = limit;
	}
	free(tmp);
	*out = res;
	return (long)kept;
fail:
	free(tmp);
	free(res);
	return -1;
}

/* ------------------------------------------------------------------ */
/* GET routes */

static const char *arg(struct MHD_Connection *c, const char *key)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* A decimal argument in [lo, hi], or def when absent; -1 when bad. */
static long arg_number(struct MHD_Connection *c, const char *key, long lo, long hi, long def)
{
	const char *v = arg(c, key);
	char *end;
	if (v == NULL)
		return def;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || end == v || n < lo || n > hi)
		return -1;
	return n;
}

static enum MHD_Result get_stats(struct web *w, struct MHD_Connection *c, const char *path)
{
	struct web_snapshot s;
	struct web_filter filters[CONFIG_MAX_SOURCES];
	snapshot(w, &s, filters);
	return send_json(c, MHD_HTTP_OK, web_render_stats(&s));
}

static enum MHD_Result get_metrics(struct web *w, struct MHD_Connection *c, const char *path)
{
	struct web_snapshot s;
	struct web_filter filters[CONFIG_MAX_SOURCES];
	snapshot(w, &s, filters);
	char *text = web_render_metrics(&s);
	if (text == NULL)
		return send_json(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
	return send_owned(c, MHD_HTTP_OK, text, "text/plain; version=0.0.4; charset=utf-8");
}

static enum MHD_Result get_timeseries(struct web *w, struct MHD_Connection *c, const char *path)
{
	const char *range = arg(c, "range");
	struct stats_series *s;
	if (range == NULL || strcmp(range, "hour") == 0) {
		range = "hour";
		s = &w->hour;
	} else if (strcmp(range, "day") == 0) {
		s = &w->day;
	} else {
		return send_error(c, MHD_HTTP_BAD_REQUEST, "range must be hour or day");
	}
	struct stats_point *pt = malloc(WEB_SERIES_CAP * sizeof *pt);
	if (pt == NULL)
		return send_json(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
	pthread_mutex_lock(&w->lock);
	size_t n = s->pt != NULL ? stats_series_get(s, pt) : 0;
	uint32_t step = s->step_s;
	pthread_mutex_unlock(&w->lock);
	char *json = web_render_timeseries(range, step, pt, n);
	free(pt);
	return send_json(c, MHD_HTTP_OK, json);
}

static enum MHD_Result get_top(struct web *w, struct MHD_Connection *c, const char *path)
{
	static const char *const kinds[STATS_TOP_COUNT] = { "names", "blocked", "clients" };
	const char *k = arg(c, "kind");
	int kind = -1;
	for (int i = 0; i < STATS_TOP_COUNT; i++)
		if (k == NULL ? i == STATS_TOP_NAMES : strcmp(k, kinds[i]) == 0)
			kind = i;
	if (kind < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, "kind must be names, blocked or clients");
	long limit = arg_number(c, "limit", 1, WEB_TOP_LIMIT_MAX, 10);
	if (limit < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, "limit must be 1..%d", WEB_TOP_LIMIT_MAX);

	const struct stats_recorder *r[WEB_MAX_RECORDERS];
	const struct stats_topk *t[WEB_MAX_RECORDERS];
	unsigned n = recorders(w, r), m = 0;
	for (unsigned i = 0; i < n; i++)
		if (r[i]->top[kind] != NULL)
			t[m++] = r[i]->top[kind];
	struct stats_top_entry *e = malloc((size_t)limit * sizeof *e);
	if (e == NULL)
		return send_json(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
	size_t got = m ? stats_topk_merge(t, m, e, (size_t)limit) : 0;
	char *json = web_render_top((enum stats_topk_kind)kind, e, got);
	free(e);
	return send_json(c, MHD_HTTP_OK, json);
}

static enum MHD_Result get_querylog(struct web *w, struct MHD_Connection *c, const char *path)
{
	struct web_qlog_filter f;
	const char *v;

	web_qlog_filter_init(&f);
	if ((v = arg(c, "client")) != NULL) {
		f.client_len = (uint8_t)web_client_key_from_text(v, w->cfg->web_anonymize, f.client);
		if (f.client_len == 0)
			return send_error(c, MHD_HTTP_BAD_REQUEST, "client must be an IPv4 or IPv6 address");
		f.has_client = true;
	}
	f.name = arg(c, "name");
	if ((v = arg(c, "type")) != NULL) {
		int t = wire_type_parse(v);
		if (t < 0)
			return send_error(c, MHD_HTTP_BAD_REQUEST, "unknown type; use a mnemonic or TYPEnnn");
		f.has_type = true;
		f.type = (uint16_t)t;
	}
	if ((v = arg(c, "rcode")) != NULL) {
		int rc = wire_rcode_parse(v);
		/* The log keeps 8 bits of rcode: a larger one can never match. */
		if (rc < 0 || rc > 255)
			return send_error(c, MHD_HTTP_BAD_REQUEST, "unknown rcode; use a name or RCODEnn");
		f.has_rcode = true;
		f.rcode = (uint8_t)rc;
	}
	if ((v = arg(c, "blocked")) != NULL) {
		if (strcmp(v, "1") != 0 && strcmp(v, "0") != 0)
			return send_error(c, MHD_HTTP_BAD_REQUEST, "blocked must be 1 or 0");
		f.blocked = v[0] == '1';
	}
	long limit = arg_number(c, "limit", 1, WEB_QLOG_LIMIT_MAX, 100);
	if (limit < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, "limit must be 1..%d", WEB_QLOG_LIMIT_MAX);

	struct stats_qlog_entry *e;
	uint64_t matched;
	long n = qlog_collect(w, &f, (size_t)limit, &e, &matched);
	if (n < 0)
		return send_json(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
	struct server_filter_stat fs[CONFIG_MAX_SOURCES];
	const char *names[CONFIG_MAX_SOURCES];
	size_t nn = source_names(w, fs, names);
	char *json = web_render_querylog(e, (size_t)n, matched, names, nn);
	free(e);
	return send_json(c, MHD_HTTP_OK, json);
}

static enum MHD_Result get_client(struct web *w, struct MHD_Connection *c, const char *path)
{
	const char *ip = path + strlen("/api/v1/clients/");
	struct web_qlog_filter f;
	char shown[INET6_ADDRSTRLEN + 8];

	web_qlog_filter_init(&f);
	f.client_len = (uint8_t)web_client_key_from_text(ip, w->cfg->web_anonymize, f.client);
	if (f.client_len == 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, "not an IPv4 or IPv6 address");
	f.has_client = true;
	web_client_to_text(f.client, f.client_len, shown, sizeof shown);

	const struct stats_recorder *r[WEB_MAX_RECORDERS];
	const struct stats_topk *t[WEB_MAX_RECORDERS];
	unsigned n = recorders(w, r), m = 0;
	for (unsigned i = 0; i < n; i++)
		if (r[i]->top[STATS_TOP_CLIENTS] != NULL)
			t[m++] = r[i]->top[STATS_TOP_CLIENTS];
	struct stats_top_entry found;
	bool have = m > 0 && stats_topk_find(t, m, f.client, f.client_len, &found);

	struct stats_qlog_entry *e;
	uint64_t matched;
	long k = qlog_collect(w, &f, WEB_CLIENT_RECENT, &e, &matched);
	if (k < 0)
		return send_json(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
	struct server_filter_stat fs[CONFIG_MAX_SOURCES];
	const char *names[CONFIG_MAX_SOURCES];
	size_t nn = source_names(w, fs, names);
	char *json = web_render_client(shown, have ? &found : NULL, e, (size_t)k, names, nn);
	free(e);
	return send_json(c, MHD_HTTP_OK, json);
}

/* A name for a control line: one word, no option look-alike, short enough
 * for the control's 1024-byte line.  The control checks the rest. */
static bool control_word_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 1000 || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7F)
			return false;
	return true;
}

/* control_run under the admin lock; NULL when out of memory. */
static char *control_call(struct web *w, const char *line)
{
	pthread_mutex_lock(&w->admin);
	char *reply = control_run(w->srv, w->cache, line);
	pthread_mutex_unlock(&w->admin);
	return reply;
}

static enum MHD_Result get_cache(struct web *w, struct MHD_Connection *c, const char *path)
{
	const char *name = arg(c, "name"), *type = arg(c, "type");
	char line[1100], tbuf[16];
	int t = wire_type_parse(type != NULL ? type : "A");

	if (name == NULL || !control_word_ok(name))
		return send_error(c, MHD_HTTP_BAD_REQUEST, "name is missing or not a domain name");
	if (t < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, "unknown type; use a mnemonic or TYPEnnn");
	/* TYPEnnn to the control: it takes every number, whatever mnemonics it knows. */
	snprintf(line, sizeof line, "cache lookup %s TYPE%d", name, t);
	char *reply = control_call(w, line);
	if (reply == NULL)
		return send_json(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
	int status;
	char *json = web_render_cache_entry(name, wire_type_name((uint16_t)t, tbuf, sizeof tbuf), reply, &status);
	free(reply);
	return send_json(c, (unsigned)status, json);
}

/* ------------------------------------------------------------------ */
/* POST routes */

static enum MHD_Result post_flush(struct web *w, struct MHD_Connection *c, json_t *body, const char *who)
{
	json_t *jn = json_object_get(body, "name"), *js = json_object_get(body, "suffix"),
	       *jt = json_object_get(body, "type");
	char line[1100];

	if ((jn != NULL) == (js != NULL))
		return send_error(c, MHD_HTTP_BAD_REQUEST, "give either name (and optionally type) or suffix");
	if (js != NULL) {
		if (!json_is_string(js) || !control_word_ok(json_string_value(js)) || jt != NULL)
			return send_error(c, MHD_HTTP_BAD_REQUEST, "suffix must be a domain name, without type");
		snprintf(line, sizeof line, "cache flush --suffix %s", json_string_value(js));
	} else {
		if (!json_is_string(jn) || !control_word_ok(json_string_value(jn)))
			return send_error(c, MHD_HTTP_BAD_REQUEST, "name must be a domain name");
		if (jt != NULL) {
			int t = json_is_string(jt) ? wire_type_parse(json_string_value(jt)) : -1;
			if (t < 0)
				return send_error(c, MHD_HTTP_BAD_REQUEST, "unknown type; use a mnemonic or TYPEnnn");
			snprintf(line, sizeof line, "cache flush %s TYPE%d", json_string_value(jn), t);
		} else {
			snprintf(line, sizeof line, "cache flush %s", json_string_value(jn));
		}
	}
	char *reply = control_call(w, line);
	if (reply == NULL)
		return send_json(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
	int status;
	char *json = web_render_flush(reply, &status);
	if (status == 200)
		log_info("web: %s: %s", who, line);
	free(reply);
	return send_json(c, (unsigned)status, json);
}

/* Append "name\n" to path in one write (O_APPEND: never inside a line
 * another writer adds), after a newline if the file lacks a final one. */
static int append_line(const char *path, const char *name, char *err, size_t errlen)
{
	char buf[300];
	struct stat st;
	char last = '\n';
	int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)
		last = '\n';
	int len = snprintf(buf, sizeof buf, "%s%s\n", last == '\n' ? "" : "\n", name);
	ssize_t n = write(fd, buf, (size_t)len);
	int saved = errno;
	if (close(fd) != 0 && n == len) {
		saved = errno;
		n = -1;
	}
	if (n != len) {
		snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(saved) : "short write");
		return -1;
	}
	return 0;
}

static enum MHD_Result post_list(struct web *w, struct MHD_Connection *c, json_t *body, bool allow,
                                 const char *who)
{
	json_t *jn = json_object_get(body, "name");
	char name[256], err[512];

	if (!json_is_string(jn) || web_list_name_normalize(json_string_value(jn), name, sizeof name) != 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST,
		                  "name must be a domain name of letters, digits, '-', '_' and '.'");
	const struct config *cfg = server_config(w->srv);
	const struct config_source *src = NULL;
	for (unsigned i = 0; cfg != NULL && i < cfg->filter_source_count && src == NULL; i++) {
		const struct config_source *s = &cfg->filter_sources[i];
		if (s->type == CONFIG_SOURCE_LIST && s->editable && s->allow == allow && s->file_count > 0)
			src = s;
	}
	if (src == NULL)
		return send_error(c, MHD_HTTP_CONFLICT, "no editable %s-list source is configured",
		                  allow ? "allow" : "block");

	pthread_mutex_lock(&w->admin);
	int rc = append_line(src->files[0], name, err, sizeof err);
	if (rc == 0)
		rc = server_reload_lists(w->srv, err, sizeof err);
	pthread_mutex_unlock(&w->admin);
	if (rc != 0) {
		log_warn("web: %s: %s %s: %s", who, allow ? "allow" : "block", name, err);
		return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
	}
	log_info("web: %s: %s %s (source %s)", who, allow ? "allow" : "block", name, src->name);

	bool bad = false;
	json_t *o = json_object();
	if (o == NULL || json_object_set_new(o, "added", json_string(name)) != 0 ||
	    json_object_set_new(o, "source", json_string(src->name)) != 0)
		bad = true;
	char *json = bad ? NULL : json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return send_json(c, MHD_HTTP_OK, json);
}

static enum MHD_Result post_reload(struct web *w, struct MHD_Connection *c, const char *who)
{
	char err[512] = "";
	pthread_mutex_lock(&w->admin);
	int rc = server_reload_lists(w->srv, err, sizeof err);
	pthread_mutex_unlock(&w->admin);
	if (rc != 0)
		return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err[0] ? err : "reload failed");
	log_info("web: %s: lists reloaded", who);
	char *json = strdup("{\"reloaded\":true}");
	return send_json(c, MHD_HTTP_OK, json);
}

/* ------------------------------------------------------------------ */
/* Routing */

enum web_post { POST_NONE = 0, POST_FLUSH, POST_BLOCK, POST_ALLOW, POST_RELOAD };

typedef enum MHD_Result web_get_fn(struct web *w, struct MHD_Connection *c, const char *path);

static const struct web_route {
	const char *path;
	bool prefix;                    /* path is a prefix followed by one more segment */
	web_get_fn *get;
	enum web_post post;
} web_routes[] = {
	{ "/metrics", false, get_metrics, POST_NONE },
	{ "/api/v1/stats", false, get_stats, POST_NONE },
	{ "/api/v1/timeseries", false, get_timeseries, POST_NONE },
	{ "/api/v1/top", false, get_top, POST_NONE },
	{ "/api/v1/querylog", false, get_querylog, POST_NONE },
	{ "/api/v1/clients/", true, get_client, POST_NONE },
	{ "/api/v1/cache", false, get_cache, POST_NONE },
	{ "/api/v1/cache/flush", false, NULL, POST_FLUSH },
	{ "/api/v1/lists/block", false, NULL, POST_BLOCK },
	{ "/api/v1/lists/allow", false, NULL, POST_ALLOW },
	{ "/api/v1/lists/reload", false, NULL, POST_RELOAD },
};

static const struct web_route *route_of(const char *url)
{
	for (size_t i = 0; i < sizeof web_routes / sizeof web_routes[0]; i++) {
		const struct web_route *r = &web_routes[i];
		size_t n = strlen(r->path);
		if (r->prefix ? strncmp(url, r->path, n) == 0 && url[n] != '\0' && strchr(url + n, '/') == NULL
		              : strcmp(url, r->path) == 0)
			return r;
	}
	return NULL;
}

static const struct web_asset *asset_of(const char *url)
{
	for (size_t i = 0; i < web_asset_count; i++)
		if (strcmp(web_assets[i].path, url) == 0)
			return &web_assets[i];
	return NULL;
}

/* A request between its first call (headers only) and the last one
 * (everything received), when it is answered: answering earlier would
 * make libmicrohttpd close the connection instead of keeping it alive. */
struct web_req {
	bool answered;                  /* a response was queued */
	bool too_big;
	size_t len;
	char *body;                     /* POST routes only, WEB_BODY_MAX + 1 bytes */
};

/* Compare in time that depends on the configured token's length only. */
static bool token_equal(const char *given, size_t glen, const char *want)
{
	size_t wlen = strlen(want);
	volatile unsigned char d = glen != wlen;
	for (size_t i = 0; i < wlen; i++)
		d |= (unsigned char)want[i] ^ (unsigned char)(i < glen ? given[i] : 0);
	return d == 0;
}

/* 0 if c may act; else a response (401/403) was queued and its result is in *ret. */
static int check_auth(struct web *w, struct MHD_Connection *c, enum MHD_Result *ret)
{
	if (w->cfg->web_token == NULL) {
		*ret = send_error(c, MHD_HTTP_FORBIDDEN, "admin actions are disabled: no web.token configured");
		return -1;
	}
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0) {
		const char *tok = h + 7;
		while (*tok == ' ')
			tok++;
		size_t n = strlen(tok);
		while (n > 0 && tok[n - 1] == ' ')
			n--;
		if (token_equal(tok, n, w->cfg->web_token))
			return 0;
	}
	*ret = send_error_hdr(c, MHD_HTTP_UNAUTHORIZED, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
	                      "Bearer realm=\"mxresolved\"", "missing or wrong bearer token");
	return -1;
}

static enum MHD_Result handle_post(struct web *w, struct MHD_Connection *c, const struct web_route *r,
                                   struct web_req *q)
{
	char who[80];
	json_error_t jerr;

	if (q->too_big)
		return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body over %d bytes", WEB_BODY_MAX);
	client_text(c, who, sizeof who);
	if (r->post == POST_RELOAD)
		return post_reload(w, c, who);
	json_t *body = json_loadb(q->body ? q->body : "", q->len, 0, &jerr);
	if (body == NULL || !json_is_object(body)) {
		json_decref(body);
		return send_error(c, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object");
	}
	enum MHD_Result ret;
	if (r->post == POST_FLUSH)
		ret = post_flush(w, c, body, who);
	else
		ret = post_list(w, c, body, r->post == POST_ALLOW, who);
	json_decref(body);
	return ret;
}

/* The whole request is here: answer it. */
static enum MHD_Result dispatch(struct web *w, struct MHD_Connection *c, const char *url, bool get, bool post,
                                struct web_req *q)
{
	const struct web_route *r = route_of(url);
	if (r == NULL) {
		const struct web_asset *a = asset_of(url);
		if (a != NULL && get)
			return send_asset(c, a);
		if (a != NULL)
			return send_error_hdr(c, MHD_HTTP_METHOD_NOT_ALLOWED, MHD_HTTP_HEADER_ALLOW, "GET, HEAD",
			                      "method not allowed");
		return send_error(c, MHD_HTTP_NOT_FOUND, "no such page");
	}
	if (r->get != NULL) {
		if (!get)
			return send_error_hdr(c, MHD_HTTP_METHOD_NOT_ALLOWED, MHD_HTTP_HEADER_ALLOW, "GET, HEAD",
			                      "method not allowed");
		return r->get(w, c, url);
	}
	if (!post)
		return send_error_hdr(c, MHD_HTTP_METHOD_NOT_ALLOWED, MHD_HTTP_HEADER_ALLOW, "POST",
		                      "method not allowed");
	return handle_post(w, c, r, q);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
	struct web *w = cls;
	bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	struct web_req *q = *con_cls;

	if (q == NULL) {
		/* The first call: only the headers are here.  A POST that will
		 * be refused is refused now, before a byte of its body is read
		 * (the connection then closes, which is what such a client earns). */
		if ((q = calloc(1, sizeof *q)) == NULL)
			return MHD_NO;
		*con_cls = q;
		const struct web_route *r = route_of(url);
		if (r == NULL || r->post == POST_NONE || !post)
			return MHD_YES;
		enum MHD_Result ret;
		if (check_auth(w, c, &ret) != 0) {
			q->answered = true;
			return ret;
		}
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > WEB_BODY_MAX) {
			q->answered = true;
			return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body over %d bytes", WEB_BODY_MAX);
		}
		if ((q->body = malloc(WEB_BODY_MAX + 1)) == NULL)
			return MHD_NO;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		/* Only a POST route keeps its body; anything else is read and dropped. */
		if (q->body != NULL && !q->answered && !q->too_big) {
			if (q->len + *upload_data_size > WEB_BODY_MAX) {
				q->too_big = true;
			} else {
				memcpy(q->body + q->len, upload_data, *upload_data_size);
				q->len += *upload_data_size;
			}
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (q->answered)
		return MHD_YES;
	q->answered = true;
	return dispatch(w, c, url, get, post, q);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct web_req *q = *con_cls;
	if (q != NULL) {
		free(q->body);
		free(q);
	}
	*con_cls = NULL;
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct web *w = cls;
	if (addr == NULL || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
		return MHD_NO;
	return acl_check(w->allow, addr) == ACL_ALLOW ? MHD_YES : MHD_NO;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_warn("web: %s", msg);
}

/* ------------------------------------------------------------------ */
/* Life cycle */

struct web *web_new(const struct config *cfg, char *err, size_t errlen)
{
	struct web *w = calloc(1, sizeof *w);
	if (w == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->cfg = cfg;
	for (unsigned i = 0; i < CONFIG_MAX_LISTEN; i++)
		w->l[i].fd = -1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_mutex_init(&w->admin, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (cfg->web_listen_count == 0)
		return w;

	if ((w->allow = acl_new(ACL_DROP)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < cfg->web_allow_count; i++) {
		char e[256];
		if (acl_add(w->allow, cfg->web_allow[i].network, ACL_ALLOW, e, sizeof e) != 0) {
			snprintf(err, errlen, "allow %s: %s", cfg->web_allow[i].network, e);
			goto fail;
		}
	}

	for (unsigned i = 0; i < cfg->web_listen_count && i < CONFIG_MAX_LISTEN; i++) {
		const struct sockaddr_storage *ss = &cfg->web_listen[i];
		struct web_listener *l = &w->l[w->nl];
		socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
		int one = 1;
		addr_text(ss, l->text, sizeof l->text);
		if ((l->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
			snprintf(err, errlen, "socket for %s: %s", l->text, strerror(errno));
			goto fail;
		}
		w->nl++;
		setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		/* Each address its own socket: a v6 wildcard must not take the v4 port too. */
		if (ss->ss_family == AF_INET6)
			setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		if (bind(l->fd, (const struct sockaddr *)ss, len) != 0 || listen(l->fd, 64) != 0) {
			snprintf(err, errlen, "bind %s: %s", l->text, strerror(errno));
			goto fail;
		}
	}

	if ((cfg->web_tls_cert == NULL) != (cfg->web_tls_key == NULL)) {
		snprintf(err, errlen, "tls-cert and tls-key go together");
		goto fail;
	}
	if (cfg->web_tls_cert != NULL) {
		size_t n;
		if ((w->tls_cert = read_file(cfg->web_tls_cert, &n, err, errlen)) == NULL ||
		    (w->tls_key = read_file(cfg->web_tls_key, &w->tls_key_len, err, errlen)) == NULL)
			goto fail;
	}
	return w;
fail:
	web_free(w);
	return NULL;
}

static void daemons_stop(struct web *w)
{
	for (unsigned i = 0; i < w->nl; i++)
		if (w->l[i].daemon != NULL) {
			MHD_stop_daemon(w->l[i].daemon);
			w->l[i].daemon = NULL;
		}
}

int web_start(struct web *w, struct server *srv, struct cache *cache, const char *version, char *err,
              size_t errlen)
{
	const struct config *cfg = w->cfg;

	if (w->nl == 0)
		return 0;
	if (srv == NULL) {
		snprintf(err, errlen, "no server to report on");
		return -1;
	}
	w->srv = srv;
	w->cache = cache;
	free(w->version);
	if ((w->version = strdup(version != NULL ? version : "")) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &w->started);
	if ((w->hour.pt == NULL && stats_series_init(&w->hour, WEB_HOUR_STEP, WEB_SERIES_CAP) != 0) ||
	    (w->day.pt == NULL && stats_series_init(&w->day, WEB_DAY_STEP, WEB_SERIES_CAP) != 0)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	series_load(w);

	w->stop = false;
	int rc = pthread_create(&w->sampler, NULL, sampler_main, w);
	if (rc != 0) {
		snprintf(err, errlen, "sampler thread: %s", strerror(rc));
		return -1;
	}
	w->sampler_running = true;

	if (w->tls_cert != NULL && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		snprintf(err, errlen, "this libmicrohttpd has no TLS support; remove tls-cert and tls-key");
		goto fail;
	}
	unsigned timeout = cfg->web_timeout_ms / 1000;
	for (unsigned i = 0; i < w->nl; i++) {
		struct web_listener *l = &w->l[i];
		/* The daemon closes the socket it is given when it stops; ours
		 * stays ours and is closed in web_free, whatever happened. */
		int fd = fcntl(l->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(err, errlen, "%s: %s", l->text, strerror(errno));
			goto fail;
		}
		struct MHD_OptionItem opt[16];
		int k = 0;
		/* The logger first, so that even the other options' complaints go through it. */
		opt[k++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, w };
		opt[k++] = (struct MHD_OptionItem){ MHD_OPTION_LISTEN_SOCKET, fd, NULL };
		opt[k++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT,
			                                cfg->web_max_connections ? cfg->web_max_connections : 32, NULL };
		opt[k++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, timeout ? timeout : 1, NULL };
		opt[k++] = (struct MHD_OptionItem){ MHD_OPTION_PER_IP_CONNECTION_LIMIT, WEB_PER_IP_CONNECTIONS, NULL };
		opt[k++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT, WEB_CONNECTION_MEMORY, NULL };
		opt[k++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, w };
		if (w->tls_cert != NULL) {
			opt[k++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, w->tls_cert };
			opt[k++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, w->tls_key };
		}
		opt[k++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
		unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
		if (w->tls_cert != NULL)
			flags |= MHD_USE_TLS;
		l->daemon = MHD_start_daemon(flags, 0, on_accept, w, on_request, w, MHD_OPTION_ARRAY, opt,
		                             MHD_OPTION_END);
		if (l->daemon == NULL) {
			snprintf(err, errlen, "cannot serve HTTP on %s%s", l->text,
			         w->tls_cert ? " (check the TLS certificate and key)" : "");
			goto fail;
		}
		log_info("web: serving %s on %s", w->tls_cert ? "HTTPS" : "HTTP", l->text);
	}
	return 0;
fail:
	daemons_stop(w);
	sampler_stop(w);
	return -1;
}

void web_free(struct web *w)
{
	if (w == NULL)
		return;
	daemons_stop(w);
	bool ran = w->sampler_running;
	sampler_stop(w);
	if (ran)
		series_save(w);
	for (unsigned i = 0; i < w->nl; i++)
		if (w->l[i].fd >= 0)
			close(w->l[i].fd);
	if (w->hour.pt != NULL)
		stats_series_free(&w->hour);
	if (w->day.pt != NULL)
		stats_series_free(&w->day);
	acl_free(w->allow);
	free(w->tls_cert);
	if (w->tls_key != NULL) {
		explicit_bzero(w->tls_key, w->tls_key_len);
		free(w->tls_key);
	}
	free(w->version);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->admin);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
