/* config.h -- the YAML configuration file, read into a validated, immutable
 * struct config.  The file's keys are documented in deploy/mxresolved.yaml. */
#ifndef MXR_CONFIG_H
#define MXR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define CONFIG_MAX_LISTEN 16

struct config {
	char *path;                     /* the file it was read from */

	/* server: */
	struct sockaddr_storage listen[CONFIG_MAX_LISTEN];
	unsigned listen_count;
	unsigned workers;               /* 0 in the file means "number of cores"; resolved here */
	int log_level;                  /* enum log_level */
	unsigned tcp_idle_timeout_ms;
	unsigned tcp_max_connections;   /* per worker */

	/* recursion: */
	char *root_hints;
	char *trust_anchor;             /* NULL when dnssec is off */
	bool dnssec;
	bool query_loopback;            /* allow upstream servers on loopback (the test-bed) */
	unsigned client_timeout_ms;     /* a client waits at most this long, then gets SERVFAIL */
	unsigned max_pending;           /* recursions in flight at once */
	unsigned outgoing_range;
	uint64_t upstream_cache_bytes;  /* libunbound's own message and RRset caches, each */

	/* cache: */
	char *cache_dir;
	uint64_t cache_size;            /* bytes */
	uint32_t max_ttl;               /* seconds; longer TTLs are clamped when stored */
	uint32_t negative_max_ttl;
	uint32_t servfail_ttl;
	uint32_t stale_window;          /* seconds an expired entry is kept */
	unsigned sync_interval_ms;
};

/* Read and validate the file at path.  Every problem is printed to errs as
 * "file:line: message" (all of them, not just the first).  On success
 * returns 0 and a new config in *out (free with config_free); otherwise
 * returns the number of errors (> 0) and *out is NULL. */
int config_load(const char *path, struct config **out, FILE *errs);

/* Free a config from config_load.  Accepts NULL. */
void config_free(struct config *cfg);

#endif
