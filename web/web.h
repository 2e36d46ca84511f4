/* web.h -- the HTTP front: dashboard, JSON API (/api/v1/...), Prometheus
 * metrics (/metrics) and admin actions, on libmicrohttpd, in threads of its
 * own.  It reads the workers' statistics through server and stats, and acts
 * through the public calls of server, cache and control; it never touches
 * a worker's sockets or holds a transaction across requests.  Only this
 * module includes <microhttpd.h>.  The routes and their JSON are described
 * in web/README.md. */
#ifndef MXR_WEB_H
#define MXR_WEB_H

#include <stddef.h>

struct config;
struct server;
struct cache;
struct web;

/* Bind every cfg->web_listen address (TCP, SO_REUSEADDR) and read the TLS
 * certificate and key when configured, so that it can happen before
 * privileges are dropped.  cfg must outlive the web.  Returns the web (also
 * when no address is configured: it then does nothing), or NULL with a
 * message in err. */
struct web *web_new(const struct config *cfg, char *err, size_t errlen);

/* Serve HTTP on the bound sockets and start the sampler that fills the
 * time series every second; the series saved in the cache's meta database
 * by an earlier run are loaded first.  srv and cache must outlive the web;
 * version is shown on the dashboard and in the metrics.  Returns 0, or -1
 * with a message in err. */
int web_start(struct web *w, struct server *srv, struct cache *cache, const char *version, char *err,
              size_t errlen);

/* Stop serving, save the time series to the cache, close the sockets and
 * free.  Call before freeing the server and the cache.  Accepts NULL. */
void web_free(struct web *w);

#endif
