/* config.h -- the YAML configuration file, read into a validated, immutable
 * struct config.  The file's keys are documented in deploy/mxresolved.yaml. */
#ifndef MXR_CONFIG_H
#define MXR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_ACCESS_RULES 256
#define CONFIG_MAX_TYPE_POLICIES 32
#define CONFIG_MAX_DNSBL_ZONES 64
#define CONFIG_PARTITIONS 3   /* general, mail, dnsbl: the order of enum cache_partition */

/* What happens to a client, by network (server: access:). */
enum config_access_action { CONFIG_ACCESS_ALLOW = 0, CONFIG_ACCESS_REFUSE, CONFIG_ACCESS_DROP };

struct config_access_rule {
	char network[64];               /* CIDR text as written, validated ("10.0.0.0/8", "::1") */
	enum config_access_action action;
	unsigned line;                  /* where it was written, for later messages */
};

/* TTL clamps applied when an answer is stored.  0 in a max means "no cap
 * beyond the global one"; a per-type entry overrides its partition's. */
struct config_ttl_policy {
	uint32_t min_ttl, max_ttl;                    /* positive answers, seconds */
	uint32_t negative_min_ttl, negative_max_ttl;  /* NXDOMAIN/NODATA (RFC 2308), seconds */
};

struct config_type_policy {
	uint16_t qtype;                 /* from a mnemonic (MX, TXT, ...) or TYPEnnn */
	struct config_ttl_policy ttl;
};

struct config_partition {
	uint64_t quota;                 /* bytes; 0 = the default share of cache.size */
	struct config_ttl_policy ttl;
	struct config_type_policy types[CONFIG_MAX_TYPE_POLICIES];
	unsigned type_count;
};

#define CONFIG_MAX_SOURCES 64
#define CONFIG_MAX_SCOPES 64
#define CONFIG_MAX_SOURCE_FILES 8
#define CONFIG_MAX_SOURCE_SERVERS 4
#define CONFIG_MAX_CODE_RANGES 16

/* filter: sources: what a source is. */
enum config_source_type { CONFIG_SOURCE_LIST = 0, CONFIG_SOURCE_RHSBL, CONFIG_SOURCE_DNSBL };
/* The lists formats, in the order of enum lists_format. */
enum config_list_format { CONFIG_FORMAT_HOSTS = 0, CONFIG_FORMAT_DOMAINS, CONFIG_FORMAT_ADBLOCK, CONFIG_FORMAT_RPZ };
enum config_action {
	CONFIG_ACTION_NXDOMAIN = 0, CONFIG_ACTION_NODATA, CONFIG_ACTION_REFUSED, CONFIG_ACTION_SINKHOLE,
	CONFIG_ACTION_LOG_ONLY
};

struct config_source {
	char name[64];                  /* [a-z0-9_-]+, unique; shown in EDE text and logs */
	enum config_source_type type;
	enum config_action action;      /* default nxdomain */
	unsigned line;
	/* list: */
	enum config_list_format format;
	bool allow;                     /* an allowlist */
	char *files[CONFIG_MAX_SOURCE_FILES]; /* readable at load */
	bool editable;                  /* the web API may append names to files[0] (domains format) */
	unsigned file_count;
	/* rhsbl / dnsbl: */
	char zone[256];                 /* lower-case, no trailing dot */
	char codes[CONFIG_MAX_CODE_RANGES][40]; /* "127.0.0.2" or "127.0.0.2-127.0.0.11", validated */
	unsigned code_count;            /* 0 = RFC 5782 default */
	unsigned timeout_ms;            /* default 500 */
	bool fail_open;                 /* default true */
	struct sockaddr_storage servers[CONFIG_MAX_SOURCE_SERVERS]; /* stub (or forward) servers; port default 53 */
	unsigned server_count;
	bool forward;                   /* servers are recursive forwarders, not authorities */
};

/* filter: scope: which sources apply to a client network. */
struct config_scope {
	char network[64];               /* CIDR, validated */
	uint64_t sources;               /* bit i = filter_sources[i] */
	unsigned line;
};

/* A DNSBL/RHSBL zone whose answers go to the dnsbl partition. */
struct config_dnsbl_zone {
	char name[256];                 /* presentation form, lower-case, no trailing dot */
	uint32_t negative_min_ttl;      /* floor for NXDOMAIN under this zone; 0 = partition's */
};

struct config {
	char *path;                     /* the file it was read from */

	/* server: */
	struct sockaddr_storage listen[CONFIG_MAX_LISTEN];
	unsigned listen_count;
	unsigned workers;               /* 0 in the file means "number of cores"; resolved here */
	int log_level;                  /* enum log_level */
	unsigned tcp_idle_timeout_ms;
	unsigned tcp_max_connections;   /* per worker */
	unsigned tcp_max_per_client;    /* connections one client address may hold in all */
	char *user;                     /* drop to this user after binding; NULL = stay */
	char *control_socket;           /* UNIX socket for mxresolvectl; NULL = none */
	char *control_group;            /* group that may use it (mode 0660); NULL = the daemon's */

	/* access: */
	enum config_access_action access_default;
	struct config_access_rule access_rules[CONFIG_MAX_ACCESS_RULES];
	unsigned access_rule_count;

	/* ratelimit: */
	unsigned ratelimit_qps;         /* answers/s per client prefix; 0 = off */
	unsigned ratelimit_burst;
	unsigned ratelimit_slip;
	unsigned ratelimit_v4_prefix, ratelimit_v6_prefix;
	struct config_access_rule ratelimit_exempt[CONFIG_MAX_ACCESS_RULES]; /* action unused */
	unsigned ratelimit_exempt_count;

	/* recursion: */
	char *root_hints;
	char *trust_anchor;             /* NULL when dnssec is off */
	bool dnssec;
	bool query_loopback;            /* allow upstream servers on loopback (the test-bed) */
	unsigned client_timeout_ms;     /* a client waits at most this long, then gets SERVFAIL */
	unsigned max_pending;           /* recursions in flight at once */
	unsigned max_pending_per_client;/* questions one client address may have in flight */
	unsigned max_waiters;           /* clients coalesced on one question */
	unsigned outgoing_range;
	uint64_t upstream_cache_bytes;  /* libunbound's own caches, all threads together */
	unsigned resolver_threads;      /* libunbound contexts, each on its own thread; questions sharded by hash */

	/* cache: */
	char *cache_dir;
	uint64_t cache_size;            /* bytes */
	uint32_t max_ttl;               /* seconds; longer TTLs are clamped when stored */
	uint32_t negative_max_ttl;
	uint32_t servfail_ttl;
	uint32_t stale_window;          /* seconds an expired entry is kept */
	unsigned sync_interval_ms;
	uint64_t hot_size;              /* bytes per worker: copies of recently served answers in front of LMDB */
	bool serve_stale;               /* RFC 8767 */
	bool serve_stale_nxdomain;
	unsigned stale_answer_after_ms; /* client-response timer: stale answer sent after this */
	uint32_t stale_ttl;             /* TTL of a stale answer (RFC 8767: 30 s) */
	bool prefetch;
	unsigned prefetch_percent;      /* refresh when a hit comes in the last N% of the TTL */
	unsigned prefetch_max;          /* refreshes in flight at once */
	struct config_partition partitions[CONFIG_PARTITIONS];
	struct config_dnsbl_zone dnsbl_zones[CONFIG_MAX_DNSBL_ZONES];
	unsigned dnsbl_zone_count;

	/* filter: */
	struct config_source filter_sources[CONFIG_MAX_SOURCES];
	unsigned filter_source_count;
	struct config_scope filter_scopes[CONFIG_MAX_SCOPES];
	unsigned filter_scope_count;    /* none: every source applies to every client */
	struct sockaddr_storage sinkhole_a, sinkhole_aaaa; /* sin_addr / sin6_addr used */
	uint32_t filter_ttl;            /* TTL of synthesized block answers */
	unsigned health_interval_ms;    /* RFC 5782 §5 probes of every zone */

	/* web: */
	struct sockaddr_storage web_listen[CONFIG_MAX_LISTEN]; /* none = no HTTP server */
	unsigned web_listen_count;
	struct config_access_rule web_allow[CONFIG_MAX_ACCESS_RULES]; /* who may connect; action unused */
	unsigned web_allow_count;       /* default: 127.0.0.0/8 and ::1 */
	char *web_token;                /* bearer token for POSTs; NULL = admin actions disabled */
	char *web_tls_cert, *web_tls_key; /* PEM files; both or neither; read at load */
	unsigned web_max_connections;   /* default 32 */
	unsigned web_timeout_ms;        /* idle connection timeout, default 10 s */
	bool web_anonymize;             /* clients in the query log and top list: /24 and /48 only */
	unsigned web_query_log_size;    /* entries per worker, default 4096; 0 = no query log */
	unsigned web_save_interval_ms;  /* time series saved to the cache's meta this often, default 300 s */
};

/* Read and validate the file at path.  Every problem is printed to errs as
 * "file:line: message" (all of them, not just the first).  On success
 * returns 0 and a new config in *out (free with config_free); otherwise
 * returns the number of errors (> 0) and *out is NULL. */
int config_load(const char *path, struct config **out, FILE *errs);

/* Free a config from config_load.  Accepts NULL. */
void config_free(struct config *cfg);

#endif
