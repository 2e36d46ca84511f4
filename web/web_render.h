/* web_render.h -- the web module's pure half: JSON and Prometheus text from
 * plain snapshots, the query-log filter, and the small conversions between
 * wire form and text (names, types, rcodes, client keys) the routes need.
 *
 * Nothing here does I/O, locks, logs or calls the server: web.c gathers a
 * snapshot and hands it over, which is what lets tests/unit/test_web_render.c
 * check every byte of the output.  Every render function returns a
 * malloc'd NUL-terminated string the caller frees with free(), or NULL when
 * out of memory.  The fields are those of web/README.md. */
#ifndef MXR_WEB_RENDER_H
#define MXR_WEB_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "stats.h"

/* ---- text of wire things ------------------------------------------- */

/* Presentation form of wire name name (name_len bytes) into out (cap
 * bytes, NUL-terminated) without the trailing dot, the root as ".", bytes
 * outside printable ASCII (and the space) as \DDD and . \ " ( ) ; @ $ inside
 * a label with a backslash (wire_name_to_text's form, whose trailing dot
 * needs room in out while it is written).  Returns the length, or 0 if the
 * name is malformed or does not fit.  1024 bytes always fit a valid name. */
size_t web_name_to_text(const uint8_t *name, size_t name_len, char *out, size_t cap);

/* A client key of stats_client_key() (family byte, then 4 or 16 address
 * bytes) as an address text into out (at least 46 bytes).  Returns false
 * for a key of another shape (then out is "?"). */
bool web_client_to_text(const uint8_t *key, size_t key_len, char *out, size_t cap);

/* The client key of address text (an IPv4 or IPv6 address, no port, no
 * brackets), anonymised like the recorders do when anonymize is set.
 * out holds at least 17 bytes.  Returns the key length, or 0 if text is
 * not an address. */
size_t web_client_key_from_text(const char *text, bool anonymize, uint8_t *out);

/* Check and normalise a name for a block or allow list: presentation form,
 * letters, digits, '-', '_' and '.' only, labels of 1..63, at most 253
 * characters without the optional trailing dot, which is dropped;
 * lower-cased into out (at least 254 bytes).  Returns 0, or -1. */
int web_list_name_normalize(const char *in, char *out, size_t cap);

/* ---- snapshots ------------------------------------------------------ */

/* Per-second rates (see web/README.md for the counters behind each). */
struct web_rates {
	double qps, hit_ratio, blocked_ps, servfail_ps, stale_ps;
};

/* One filter source's counters with its type ("list", "rhsbl", "dnsbl"). */
struct web_filter {
	char name[64];
	const char *type;
	bool healthy;
	uint64_t lookups, listed, errors, timeouts, blocked;
};

struct web_snapshot {
	const char *version;
	int64_t time;                   /* wall-clock seconds */
	int64_t uptime_seconds;
	uint64_t counter[STATS_COUNT];
	uint64_t inflight;
	uint64_t answers[STATS_RCODES]; /* answers sent, by rcode, since start */
	struct web_rates rates;         /* the last complete second */
	struct stats_hist_snapshot latency[STATS_LAT_COUNT]; /* since start, merged */
	bool have_cache;                /* false: "cache" is null, no cache metrics */
	struct cache_stats cache;
	const struct web_filter *filters;
	size_t filter_count;
};

/* The partition names in the order of enum cache_partition. */
extern const char *const web_partition_names[CACHE_PART_COUNT];

/* ---- JSON ------------------------------------------------------------ */

/* {"error": msg} */
char *web_render_error(const char *msg);

/* GET /api/v1/stats. */
char *web_render_stats(const struct web_snapshot *s);

/* GET /api/v1/timeseries: range "hour" or "day", points oldest first. */
char *web_render_timeseries(const char *range, uint32_t step_s, const struct stats_point *pt, size_t n);

/* GET /api/v1/top for kind: entries e[0..n) largest first. */
char *web_render_top(enum stats_topk_kind kind, const struct stats_top_entry *e, size_t n);

/* What the query-log route filters on; a field left at its zero value
 * (has_* false, name NULL or "", blocked -1) does not filter. */
struct web_qlog_filter {
	bool has_client;
	uint8_t client_len;
	uint8_t client[17];             /* a stats_client_key */
	const char *name;               /* case-insensitive substring of the presentation name */
	bool has_type;
	uint16_t type;
	bool has_rcode;
	uint8_t rcode;
	int blocked;                    /* -1 any, 0 not blocked, 1 blocked */
};

/* A filter that matches everything (blocked -1, the rest zero). */
void web_qlog_filter_init(struct web_qlog_filter *f);

/* Whether entry e passes f. */
bool web_qlog_match(const struct web_qlog_filter *f, const struct stats_qlog_entry *e);

/* Keep in e[0..n) the entries that pass f, in their order, moved to the
 * front; at most keep of them are kept.  Adds the number that passed (kept
 * or not) to *matched.  Returns how many were kept. */
size_t web_qlog_select(struct stats_qlog_entry *e, size_t n, const struct web_qlog_filter *f, size_t keep,
                       uint64_t *matched);

/* Sort e[0..n) newest first (time_ms descending). */
void web_qlog_sort(struct stats_qlog_entry *e, size_t n);

/* GET /api/v1/querylog: {"entries": [...], "matched": matched}.  An
 * entry's source k > 0 is names[k - 1] (null beyond name_count). */
char *web_render_querylog(const struct stats_qlog_entry *e, size_t n, uint64_t matched,
                          const char *const *names, size_t name_count);

/* GET /api/v1/clients/{ip}: client is the address text shown, counters
 * NULL when the client is not among the tracked ones. */
char *web_render_client(const char *client, const struct stats_top_entry *counters,
                        const struct stats_qlog_entry *e, size_t n, const char *const *names,
                        size_t name_count);

/* GET /api/v1/cache: from the reply of control_run("cache lookup NAME
 * TYPE"); name and type are shown when the entry is not found.  Sets
 * *status to 200 (found or not), 400 (the control rejected the name or
 * type) or 500 (any other error, or a reply that does not parse; the
 * JSON is then an error object). */
char *web_render_cache_entry(const char *name, const char *type, const char *reply, int *status);

/* POST /api/v1/cache/flush: {"flushed": N} from the reply of control_run
 * ("cache flush ..."), with *status as for web_render_cache_entry. */
char *web_render_flush(const char *reply, int *status);

/* ---- Prometheus ---------------------------------------------------- */

/* GET /metrics: text exposition format 0.0.4. */
char *web_render_metrics(const struct web_snapshot *s);

/* Escape v for a label value (backslash, double quote and newline) into
 * out (cap bytes, NUL-terminated; cut when too small).  Returns out. */
char *web_prom_label_escape(const char *v, char *out, size_t cap);

#endif
