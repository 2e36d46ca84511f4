/* server.h -- the query front end: listening sockets, worker threads with
 * their event loops, TCP connections, and the resolver thread that owns
 * libunbound and the table of questions in flight. */
#ifndef MXR_SERVER_H
#define MXR_SERVER_H

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

/* Create the libunbound context and start the resolver thread and the
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

/* Merge every thread's counters into out[STATS_COUNT] (see stats.h), and
 * report the questions in flight now in *inflight.  Any thread, any time
 * after server_start. */
void server_get_stats(struct server *s, uint64_t *out, uint64_t *inflight);

/* Close the sockets and free everything.  Accepts NULL. */
void server_free(struct server *s);

#endif
