/* server.h -- the query front end: listening sockets, worker threads with
 * their event loops, TCP connections, and the resolver threads (one shard of
 * the questions each, recursion.resolver-threads of them) that own a
 * libunbound context and a table of questions in flight each. */
#ifndef MXR_SERVER_H
#define MXR_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct cache;
struct server;

/* Bind every listening socket of cfg (one UDP and one TCP socket per
 * address and worker, SO_REUSEPORT), so that it can happen before
 * privileges are dropped.  cfg and cache must outlive the server.  Returns
 * the server, or NULL with a message in err (errlen bytes). */
struct server *server_new(const struct config *cfg, struct cache *cache, char *err, size_t errlen);

/* Create the libunbound contexts and start the resolver threads and the
 * workers.  Returns 0, or -1 with a message in err. */
int server_start(struct server *s, char *err, size_t errlen);

/* Stop taking queries, answer the questions in flight with SERVFAIL,
 * send what is queued, and join every thread.  Safe to call once. */
void server_stop(struct server *s);

/* Make cfg (from config_load; the server takes it and frees it at
 * server_free; the first one stays the caller's) the configuration in force: TTL policy, serve-stale,
 * prefetch, timeouts and per-client caps apply to the next query; what is
 * bound or built at start (listen addresses, workers, access control, rate
 * limits, DNSBL zones, the cache's place and size, recursion settings) is
 * kept, with a warning if it differs.  Returns 0, or -1 (cfg not taken). */
int server_reload(struct server *s, struct config *cfg);

/* Read every list file again and make the result the lists in force,
 * swapped whole; queries are neither dropped nor delayed.  On an error the
 * old lists stay.  Returns 0, or -1 with a message in err. */
int server_reload_lists(struct server *s, char *err, size_t errlen);

/* Counters of one filter source. */
struct server_filter_stat {
	char name[64];
	bool healthy;
	uint64_t lookups, listed, errors, timeouts, blocked;
};

/* Fill out (max entries) with every filter source's counters; returns how
 * many.  Any thread. */
unsigned server_filter_stats(struct server *s, struct server_filter_stat *out, unsigned max);

/* Merge every thread's counters into out[STATS_COUNT] (see stats.h), and
 * report the questions in flight now in *inflight.  Any thread, any time
 * after server_start. */
void server_get_stats(struct server *s, uint64_t *out, uint64_t *inflight);

struct stats_recorder;

/* The workers' recorders (latency histograms, top-k sketches, query logs;
 * see stats.h), one per worker, written by their workers and readable from
 * any thread with the stats_*_merge/read calls.  Fills out (max entries)
 * and returns how many; the pointers stay valid until server_free. */
unsigned server_recorders(struct server *s, const struct stats_recorder **out, unsigned max);

/* The configuration in force (the one given to server_new, or the latest
 * server_reload took); it stays valid until server_free.  Any thread. */
const struct config *server_config(struct server *s);

/* Close the sockets and free everything.  Accepts NULL. */
void server_free(struct server *s);

#endif
