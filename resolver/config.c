/* config.c -- the YAML configuration file, read into a validated struct config */
#include "config.h"
#include "acl.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml.h>

/*
 * The schema is tables: section, key, kind, where the value goes, and its
 * lower bound, upper bound and default written as they would be in the file.
 * Writing bounds as text keeps the error messages ("between 100ms and 60s")
 * and the checks from drifting apart: the bounds are parsed with the same
 * parser as the user's values.
 *
 * The top-level sections share one table whose offsets are into struct
 * config.  Nested mappings (a cache partition, a per-type TTL entry, an
 * access rule, a DNSBL zone, a filter source, a filter scope) have small
 * tables of their own whose offsets are into their own structs, and are read
 * by the same mapping loader; the sequences and mappings holding them have
 * dedicated handlers, named by their kind.
 */

enum config_kind {
	CONFIG_KIND_LISTEN,
	CONFIG_KIND_NUMBER,     /* unsigned */
	CONFIG_KIND_MSEC,       /* duration stored in ms, unsigned */
	CONFIG_KIND_SEC,        /* duration stored in whole seconds, uint32_t */
	CONFIG_KIND_SIZE,       /* bytes, uint64_t */
	CONFIG_KIND_BOOL,
	CONFIG_KIND_STRING,     /* non-empty, char * */
	CONFIG_KIND_OPT_STRING, /* char *, NULL when empty or null */
	CONFIG_KIND_LOG_LEVEL,  /* int holding an enum log_level */
	CONFIG_KIND_ACTION,     /* enum config_access_action */
	CONFIG_KIND_NETWORK,    /* CIDR text in a char[64]; checked by the list holding it */
	CONFIG_KIND_ZONE,       /* a DNSBL zone name, normalized, in a char[256] */
	CONFIG_KIND_ADDR4,      /* an IPv4 address without port, in a sockaddr_storage */
	CONFIG_KIND_ADDR6,      /* an IPv6 address without port, in a sockaddr_storage */
	CONFIG_KIND_SOURCE_NAME,/* [a-z0-9_-]{1,63} in a char[64] */
	CONFIG_KIND_SOURCE_TYPE,/* enum config_source_type */
	CONFIG_KIND_LIST_FORMAT,/* enum config_list_format */
	CONFIG_KIND_FILTER_ACTION, /* enum config_action */
	/* Structures, each with its handler. */
	CONFIG_KIND_ACCESS_RULES,
	CONFIG_KIND_NETWORKS,   /* ratelimit.exempt */
	CONFIG_KIND_PARTITIONS,
	CONFIG_KIND_TYPES,
	CONFIG_KIND_DNSBL_ZONES,
	CONFIG_KIND_SOURCES,    /* filter.sources */
	CONFIG_KIND_SCOPES,     /* filter.scope */
	CONFIG_KIND_FILES,      /* a source's files */
	CONFIG_KIND_CODES,      /* a source's codes */
	CONFIG_KIND_SERVERS,    /* a source's servers */
	CONFIG_KIND_SCOPE_SOURCES, /* a scope entry's source names */
};

struct config_key {
	const char *section;
	const char *name;
	enum config_kind kind;
	size_t offset;
	const char *min, *max, *def;
};

#define CONFIG_OFF(field) offsetof(struct config, field)

static const char *const config_sections[] = { "server", "access", "ratelimit", "recursion", "cache", "filter",
                                                "web" };
#define CONFIG_NSECTIONS (sizeof config_sections / sizeof config_sections[0])
#define CONFIG_SECTION_LIST "server, access, ratelimit, recursion, cache, filter or web"

static const struct config_key config_keys[] = {
	{ "server", "listen", CONFIG_KIND_LISTEN, 0, NULL, NULL, NULL },
	{ "server", "workers", CONFIG_KIND_NUMBER, CONFIG_OFF(workers), "0", "256", "0" },
	{ "server", "log-level", CONFIG_KIND_LOG_LEVEL, CONFIG_OFF(log_level), NULL, NULL, "info" },
	{ "server", "tcp-idle-timeout", CONFIG_KIND_MSEC, CONFIG_OFF(tcp_idle_timeout_ms), "100ms", "10m", "10s" },
	{ "server", "tcp-max-connections", CONFIG_KIND_NUMBER, CONFIG_OFF(tcp_max_connections), "1", "65536", "256" },
	{ "server", "tcp-max-per-client", CONFIG_KIND_NUMBER, CONFIG_OFF(tcp_max_per_client), "1", "65536", "16" },
	{ "server", "user", CONFIG_KIND_OPT_STRING, CONFIG_OFF(user), NULL, NULL, "" },
	{ "server", "control-socket", CONFIG_KIND_OPT_STRING, CONFIG_OFF(control_socket), NULL, NULL,
	  "./var/mxresolved.ctl" },
	{ "server", "control-group", CONFIG_KIND_OPT_STRING, CONFIG_OFF(control_group), NULL, NULL, "" },

	{ "access", "default", CONFIG_KIND_ACTION, CONFIG_OFF(access_default), NULL, NULL, "refuse" },
	{ "access", "rules", CONFIG_KIND_ACCESS_RULES, 0, NULL, NULL, NULL },

	{ "ratelimit", "qps", CONFIG_KIND_NUMBER, CONFIG_OFF(ratelimit_qps), "0", "1000000", "200" },
	{ "ratelimit", "burst", CONFIG_KIND_NUMBER, CONFIG_OFF(ratelimit_burst), "0", "10000000", "0" },
	{ "ratelimit", "slip", CONFIG_KIND_NUMBER, CONFIG_OFF(ratelimit_slip), "0", "100", "2" },
	{ "ratelimit", "ipv4-prefix", CONFIG_KIND_NUMBER, CONFIG_OFF(ratelimit_v4_prefix), "8", "32", "24" },
	{ "ratelimit", "ipv6-prefix", CONFIG_KIND_NUMBER, CONFIG_OFF(ratelimit_v6_prefix), "16", "128", "56" },
	{ "ratelimit", "exempt", CONFIG_KIND_NETWORKS, 0, NULL, NULL, NULL },

	{ "recursion", "root-hints", CONFIG_KIND_STRING, CONFIG_OFF(root_hints), NULL, NULL, "/usr/share/dns/root.hints" },
	{ "recursion", "trust-anchor", CONFIG_KIND_STRING, CONFIG_OFF(trust_anchor), NULL, NULL, "/usr/share/dns/root.key" },
	{ "recursion", "dnssec", CONFIG_KIND_BOOL, CONFIG_OFF(dnssec), NULL, NULL, "true" },
	{ "recursion", "query-loopback", CONFIG_KIND_BOOL, CONFIG_OFF(query_loopback), NULL, NULL, "false" },
	{ "recursion", "client-timeout", CONFIG_KIND_MSEC, CONFIG_OFF(client_timeout_ms), "100ms", "60s", "5s" },
	{ "recursion", "max-pending", CONFIG_KIND_NUMBER, CONFIG_OFF(max_pending), "1", "1000000", "10000" },
	{ "recursion", "max-pending-per-client", CONFIG_KIND_NUMBER, CONFIG_OFF(max_pending_per_client), "1",
	  "1000000", "200" },
	{ "recursion", "max-waiters", CONFIG_KIND_NUMBER, CONFIG_OFF(max_waiters), "1", "1000000", "1000" },
	{ "recursion", "outgoing-range", CONFIG_KIND_NUMBER, CONFIG_OFF(outgoing_range), "16", "65536", "4096" },
	{ "recursion", "upstream-cache-size", CONFIG_KIND_SIZE, CONFIG_OFF(upstream_cache_bytes), "1M", "4G", "24M" },
	{ "recursion", "resolver-threads", CONFIG_KIND_NUMBER, CONFIG_OFF(resolver_threads), "1", "16", "2" },

	{ "cache", "directory", CONFIG_KIND_STRING, CONFIG_OFF(cache_dir), NULL, NULL, "./var/cache" },
	{ "cache", "size", CONFIG_KIND_SIZE, CONFIG_OFF(cache_size), "1M", "1T", "256M" },
	{ "cache", "max-ttl", CONFIG_KIND_SEC, CONFIG_OFF(max_ttl), "1s", "7d", "1d" },
	{ "cache", "negative-max-ttl", CONFIG_KIND_SEC, CONFIG_OFF(negative_max_ttl), "0", "1d", "1h" },
	{ "cache", "servfail-ttl", CONFIG_KIND_SEC, CONFIG_OFF(servfail_ttl), "0", "30s", "5s" },
	{ "cache", "stale-window", CONFIG_KIND_SEC, CONFIG_OFF(stale_window), "0", "30d", "1d" },
	{ "cache", "sync-interval", CONFIG_KIND_MSEC, CONFIG_OFF(sync_interval_ms), "0", "10m", "1s" },
	{ "cache", "hot-size", CONFIG_KIND_SIZE, CONFIG_OFF(hot_size), "0", "1G", "8M" },
	{ "cache", "serve-stale", CONFIG_KIND_BOOL, CONFIG_OFF(serve_stale), NULL, NULL, "true" },
	{ "cache", "serve-stale-nxdomain", CONFIG_KIND_BOOL, CONFIG_OFF(serve_stale_nxdomain), NULL, NULL, "true" },
	{ "cache", "stale-answer-after", CONFIG_KIND_MSEC, CONFIG_OFF(stale_answer_after_ms), "100ms", "60s",
	  "1800ms" },
	{ "cache", "stale-ttl", CONFIG_KIND_SEC, CONFIG_OFF(stale_ttl), "1s", "1h", "30s" },
	{ "cache", "prefetch", CONFIG_KIND_BOOL, CONFIG_OFF(prefetch), NULL, NULL, "true" },
	{ "cache", "prefetch-percent", CONFIG_KIND_NUMBER, CONFIG_OFF(prefetch_percent), "1", "50", "10" },
	{ "cache", "prefetch-max", CONFIG_KIND_NUMBER, CONFIG_OFF(prefetch_max), "1", "100000", "100" },
	{ "cache", "partitions", CONFIG_KIND_PARTITIONS, 0, NULL, NULL, NULL },
	{ "cache", "dnsbl-zones", CONFIG_KIND_DNSBL_ZONES, 0, NULL, NULL, NULL },

	{ "filter", "sinkhole-a", CONFIG_KIND_ADDR4, CONFIG_OFF(sinkhole_a), NULL, NULL, "0.0.0.0" },
	{ "filter", "sinkhole-aaaa", CONFIG_KIND_ADDR6, CONFIG_OFF(sinkhole_aaaa), NULL, NULL, "::" },
	{ "filter", "ttl", CONFIG_KIND_SEC, CONFIG_OFF(filter_ttl), "0", "1d", "5m" },
	{ "filter", "health-interval", CONFIG_KIND_MSEC, CONFIG_OFF(health_interval_ms), "10s", "1d", "5m" },
	{ "filter", "sources", CONFIG_KIND_SOURCES, 0, NULL, NULL, NULL },
	{ "filter", "scope", CONFIG_KIND_SCOPES, 0, NULL, NULL, NULL },

	{ "web", "listen", CONFIG_KIND_LISTEN, 0, NULL, NULL, NULL },
	{ "web", "allow", CONFIG_KIND_NETWORKS, 0, NULL, NULL, NULL },
	{ "web", "token", CONFIG_KIND_OPT_STRING, CONFIG_OFF(web_token), NULL, NULL, "" },
	{ "web", "tls-cert", CONFIG_KIND_OPT_STRING, CONFIG_OFF(web_tls_cert), NULL, NULL, "" },
	{ "web", "tls-key", CONFIG_KIND_OPT_STRING, CONFIG_OFF(web_tls_key), NULL, NULL, "" },
	{ "web", "max-connections", CONFIG_KIND_NUMBER, CONFIG_OFF(web_max_connections), "1", "1024", "32" },
	{ "web", "connection-timeout", CONFIG_KIND_MSEC, CONFIG_OFF(web_timeout_ms), "1s", "10m", "10s" },
	{ "web", "anonymize-clients", CONFIG_KIND_BOOL, CONFIG_OFF(web_anonymize), NULL, NULL, "false" },
	{ "web", "query-log-size", CONFIG_KIND_NUMBER, CONFIG_OFF(web_query_log_size), "0", "1048576", "4096" },
	{ "web", "save-interval", CONFIG_KIND_MSEC, CONFIG_OFF(web_save_interval_ms), "10s", "1d", "5m" },
};
#define CONFIG_NKEYS (sizeof config_keys / sizeof config_keys[0])

/* The four TTL keys, first in both the partition and the per-type table and
 * in this order, so that their key_line and key_bad entries line up. */
enum { CONFIG_TTL_MIN, CONFIG_TTL_MAX, CONFIG_TTL_NEG_MIN, CONFIG_TTL_NEG_MAX, CONFIG_TTL_KEYS };

#define CONFIG_TTL_ROWS(type, member)                                                                    \
	{ #type, "min-ttl", CONFIG_KIND_SEC, offsetof(struct type, member.min_ttl), "0", "1d", "0" },          \
	{ #type, "max-ttl", CONFIG_KIND_SEC, offsetof(struct type, member.max_ttl), "0", "7d", "0" },          \
	{ #type, "negative-min-ttl", CONFIG_KIND_SEC, offsetof(struct type, member.negative_min_ttl), "0",     \
	  "1d", "0" },                                                                                         \
	{ #type, "negative-max-ttl", CONFIG_KIND_SEC, offsetof(struct type, member.negative_max_ttl), "0",     \
	  "1d", "0" }

/* cache: partitions: NAME: */
static const struct config_key config_partition_keys[] = {
	CONFIG_TTL_ROWS(config_partition, ttl),
	{ "config_partition", "quota", CONFIG_KIND_SIZE, offsetof(struct config_partition, quota), "0", "1T", "0" },
	{ "config_partition", "types", CONFIG_KIND_TYPES, 0, NULL, NULL, NULL },
};
#define CONFIG_NPARTITION_KEYS (sizeof config_partition_keys / sizeof config_partition_keys[0])
#define CONFIG_PARTITION_QUOTA 4

/* cache: partitions: NAME: types: TYPE: */
static const struct config_key config_type_keys[] = {
	CONFIG_TTL_ROWS(config_type_policy, ttl),
};
#define CONFIG_NTYPE_KEYS (sizeof config_type_keys / sizeof config_type_keys[0])
_Static_assert(CONFIG_NTYPE_KEYS == CONFIG_TTL_KEYS, "a type entry has the four TTL keys");

/* Where each TTL key's value lives in a struct config_ttl_policy. */
static const size_t config_ttl_fields[CONFIG_TTL_KEYS] = {
	offsetof(struct config_ttl_policy, min_ttl),
	offsetof(struct config_ttl_policy, max_ttl),
	offsetof(struct config_ttl_policy, negative_min_ttl),
	offsetof(struct config_ttl_policy, negative_max_ttl),
};

/* access: rules: - {network, action} */
static const struct config_key config_rule_keys[] = {
	{ "rule", "network", CONFIG_KIND_NETWORK, offsetof(struct config_access_rule, network), NULL, NULL, NULL },
	{ "rule", "action", CONFIG_KIND_ACTION, offsetof(struct config_access_rule, action), NULL, NULL, NULL },
};
#define CONFIG_NRULE_KEYS (sizeof config_rule_keys / sizeof config_rule_keys[0])
enum { CONFIG_RULE_NETWORK, CONFIG_RULE_ACTION };

/* cache: dnsbl-zones: - NAME or {zone, negative-min-ttl} */
static const struct config_key config_zone_keys[] = {
	{ "zone", "zone", CONFIG_KIND_ZONE, offsetof(struct config_dnsbl_zone, name), NULL, NULL, NULL },
	{ "zone", "negative-min-ttl", CONFIG_KIND_SEC, offsetof(struct config_dnsbl_zone, negative_min_ttl), "0",
	  "1d", "0" },
};
#define CONFIG_NZONE_KEYS (sizeof config_zone_keys / sizeof config_zone_keys[0])
enum { CONFIG_ZONE_NAME };

/* filter: sources: - {name, type, ...}.  Some keys belong to one kind of
 * source only; a key of the other kind is more likely a mistake than
 * something to ignore, so it is an error. */
#define CONFIG_FOR_LIST (1u << CONFIG_SOURCE_LIST)
#define CONFIG_FOR_BL ((1u << CONFIG_SOURCE_RHSBL) | (1u << CONFIG_SOURCE_DNSBL))
static const struct config_key config_source_keys[] = {
	{ "source", "name", CONFIG_KIND_SOURCE_NAME, offsetof(struct config_source, name), NULL, NULL, NULL },
	{ "source", "type", CONFIG_KIND_SOURCE_TYPE, offsetof(struct config_source, type), NULL, NULL, NULL },
	{ "source", "files", CONFIG_KIND_FILES, 0, NULL, NULL, NULL },
	{ "source", "zone", CONFIG_KIND_ZONE, offsetof(struct config_source, zone), NULL, NULL, NULL },
	{ "source", "action", CONFIG_KIND_FILTER_ACTION, offsetof(struct config_source, action), NULL, NULL,
	  "nxdomain" },
	{ "source", "format", CONFIG_KIND_LIST_FORMAT, offsetof(struct config_source, format), NULL, NULL,
	  "domains" },
	{ "source", "allow", CONFIG_KIND_BOOL, offsetof(struct config_source, allow), NULL, NULL, "false" },
	{ "source", "codes", CONFIG_KIND_CODES, 0, NULL, NULL, NULL },
	{ "source", "timeout", CONFIG_KIND_MSEC, offsetof(struct config_source, timeout_ms), "10ms", "10s", "500ms" },
	{ "source", "fail-open", CONFIG_KIND_BOOL, offsetof(struct config_source, fail_open), NULL, NULL, "true" },
	{ "source", "servers", CONFIG_KIND_SERVERS, 0, NULL, NULL, NULL },
	{ "source", "forward", CONFIG_KIND_BOOL, offsetof(struct config_source, forward), NULL, NULL, "false" },
	{ "source", "editable", CONFIG_KIND_BOOL, offsetof(struct config_source, editable), NULL, NULL, "false" },
};
#define CONFIG_NSOURCE_KEYS (sizeof config_source_keys / sizeof config_source_keys[0])
enum { CONFIG_SOURCE_NAME, CONFIG_SOURCE_TYPE, CONFIG_SOURCE_FILES, CONFIG_SOURCE_ZONE };
#define CONFIG_SOURCE_EDITABLE (CONFIG_NSOURCE_KEYS - 1)

/* The source types each row above applies to (bit 1 << enum
 * config_source_type), row by row. */
static const unsigned config_source_key_types[] = {
	CONFIG_FOR_LIST | CONFIG_FOR_BL,  /* name */
	CONFIG_FOR_LIST | CONFIG_FOR_BL,  /* type */
	CONFIG_FOR_LIST,                  /* files */
	CONFIG_FOR_BL,                    /* zone */
	CONFIG_FOR_LIST | CONFIG_FOR_BL,  /* action */
	CONFIG_FOR_LIST,                  /* format */
	CONFIG_FOR_LIST,                  /* allow */
	CONFIG_FOR_BL,                    /* codes */
	CONFIG_FOR_BL,                    /* timeout */
	CONFIG_FOR_BL,                    /* fail-open */
	CONFIG_FOR_BL,                    /* servers */
	CONFIG_FOR_BL,                    /* forward */
	CONFIG_FOR_LIST,                  /* editable */
};
_Static_assert(sizeof config_source_key_types / sizeof config_source_key_types[0] == CONFIG_NSOURCE_KEYS,
               "a type mask for every source key");

/* filter: scope: - {network, sources} */
static const struct config_key config_scope_keys[] = {
	{ "scope", "network", CONFIG_KIND_NETWORK, offsetof(struct config_scope, network), NULL, NULL, NULL },
	{ "scope", "sources", CONFIG_KIND_SCOPE_SOURCES, 0, NULL, NULL, NULL },
};
#define CONFIG_NSCOPE_KEYS (sizeof config_scope_keys / sizeof config_scope_keys[0])
enum { CONFIG_SCOPE_NETWORK, CONFIG_SCOPE_SOURCES };
_Static_assert(sizeof ((struct config_scope *)0)->network == sizeof ((struct config_access_rule *)0)->network,
               "a scope's network holds what an access rule's does");

/* The longest nested table, for the key_line arrays of a nested mapping. */
#define CONFIG_SUBKEYS_MAX 16
_Static_assert(CONFIG_NPARTITION_KEYS <= CONFIG_SUBKEYS_MAX && CONFIG_NRULE_KEYS <= CONFIG_SUBKEYS_MAX &&
               CONFIG_NZONE_KEYS <= CONFIG_SUBKEYS_MAX && CONFIG_NSOURCE_KEYS <= CONFIG_SUBKEYS_MAX &&
               CONFIG_NSCOPE_KEYS <= CONFIG_SUBKEYS_MAX, "CONFIG_SUBKEYS_MAX covers every nested table");

static const char *const config_default_listen[] = { "127.0.0.1:53", "[::1]:53" };
static const char *const config_default_web_listen[] = { "127.0.0.1:8053" };

/* Loopback only: the safe default for both who may ask and who is never limited. */
static const char *const config_default_networks[] = { "127.0.0.0/8", "::1/128" };

/* Names of enum log_level values, in enum order. */
static const char *const config_log_levels[] = { "error", "warning", "info", "debug" };
_Static_assert(sizeof config_log_levels / sizeof config_log_levels[0] == LOG_LEVEL_DEBUG + 1,
               "a name for every log level");

/* Names of enum config_access_action values, in enum order.  The acl module
 * has the same three in the same order, so a value converts by a cast. */
static const char *const config_actions[] = { "allow", "refuse", "drop" };
_Static_assert((int)CONFIG_ACCESS_ALLOW == (int)ACL_ALLOW && (int)CONFIG_ACCESS_REFUSE == (int)ACL_REFUSE &&
               (int)CONFIG_ACCESS_DROP == (int)ACL_DROP, "config and acl actions agree");

/* Names of the filter enums' values, in enum order. */
static const char *const config_source_types[] = { "list", "rhsbl", "dnsbl" };
static const char *const config_source_articles[] = { "a list source", "an rhsbl source", "a dnsbl source" };
static const char *const config_list_formats[] = { "hosts", "domains", "adblock", "rpz" };
static const char *const config_filter_actions[] = { "nxdomain", "nodata", "refused", "sinkhole", "log-only" };
_Static_assert(sizeof config_source_types / sizeof config_source_types[0] == CONFIG_SOURCE_DNSBL + 1 &&
               sizeof config_list_formats / sizeof config_list_formats[0] == CONFIG_FORMAT_RPZ + 1 &&
               sizeof config_filter_actions / sizeof config_filter_actions[0] == CONFIG_ACTION_LOG_ONLY + 1,
               "a name for every filter enum value");
/* Every enum the tables set is stored as an int. */
_Static_assert(sizeof(enum config_access_action) == sizeof(int) && sizeof(enum config_source_type) == sizeof(int) &&
               sizeof(enum config_list_format) == sizeof(int) && sizeof(enum config_action) == sizeof(int),
               "enums are int-sized");

/* Names of the cache partitions, in the order of config.partitions. */
static const char *const config_partition_names[CONFIG_PARTITIONS] = { "general", "mail", "dnsbl" };

/* RR type mnemonics a per-type TTL entry may name; any other is TYPEnnn. */
static const struct {
	const char *name;
	uint16_t type;
} config_rrtypes[] = {
	{ "A", 1 },     { "NS", 2 },     { "CNAME", 5 }, { "SOA", 6 },     { "PTR", 12 },  { "MX", 15 },
	{ "TXT", 16 },  { "AAAA", 28 },  { "SRV", 33 },  { "NAPTR", 35 },  { "DS", 43 },   { "DNSKEY", 48 },
	{ "TLSA", 52 }, { "SVCB", 64 },  { "HTTPS", 65 }, { "CAA", 257 },
};

/* One unit suffix and what it multiplies by. */
struct config_unit {
	const char *suffix;
	uint64_t factor;
};

/* Durations are parsed into milliseconds; a bare number is seconds. */
static const struct config_unit config_duration_units[] = {
	{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
	{ NULL, 0 },
};

/* Sizes are binary, as memory sizes are everywhere else on the system. */
static const struct config_unit config_size_units[] = {
	{ "", 1 },
	{ "K", 1ull << 10 }, { "M", 1ull << 20 }, { "G", 1ull << 30 }, { "T", 1ull << 40 },
	{ "KiB", 1ull << 10 }, { "MiB", 1ull << 20 }, { "GiB", 1ull << 30 }, { "TiB", 1ull << 40 },
	{ NULL, 0 },
};

/* The state of one config_load call. */
struct config_loader {
	const char *path;
	FILE *errs;
	int nerr;
	yaml_document_t *doc;
	struct config *cfg;
	unsigned section_line[CONFIG_NSECTIONS];  /* where each section was seen; 0 = not yet */
	unsigned key_line[CONFIG_NKEYS];          /* where each key was set; 0 = default */
	bool key_bad[CONFIG_NKEYS];               /* its value (or something in it) was rejected */
	/* The type entries of the partition being read, filled by its "types:"
	 * and used once the whole partition is read, for inheritance. */
	unsigned type_line[CONFIG_MAX_TYPE_POLICIES];
	unsigned type_key_line[CONFIG_MAX_TYPE_POLICIES][CONFIG_TTL_KEYS];
	bool type_key_bad[CONFIG_MAX_TYPE_POLICIES][CONFIG_TTL_KEYS];
	/* Where each file of the source being read was written: the files
	 * are checked once its type is known, which may come after them. */
	unsigned file_line[CONFIG_MAX_SOURCE_FILES];
	/* The "sources:" node of the scope entry being read, and of each scope
	 * kept: names are looked up once the whole filter section is read,
	 * since "scope:" may come before "sources:". */
	const yaml_node_t *scope_names;
	const yaml_node_t *scope_names_of[CONFIG_MAX_SCOPES];
};

enum config_parse {
	CONFIG_PARSE_OK,
	CONFIG_PARSE_BAD,      /* not of the right form at all */
	CONFIG_PARSE_RANGE,    /* well formed but negative or beyond 64 bits */
};

static void config_error(struct config_loader *ld, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Count and print one error; line 0 means "not tied to a line". */
static void config_error(struct config_loader *ld, unsigned line, const char *fmt, ...)
{
	ld->nerr++;
	if (ld->errs == NULL)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (line > 0)
		fprintf(ld->errs, "%s:%u: %s\n", ld->path, line, msg);
	else
		fprintf(ld->errs, "%s: %s\n", ld->path, msg);
}

/* Copy text from the file into buf for an error message: short, and with
 * control characters replaced, so a hostile file cannot garble a terminal. */
static const char *config_quote(char *buf, size_t size, const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 4 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (n < len) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

static unsigned config_line(const yaml_node_t *node)
{
	return (unsigned)node->start_mark.line + 1;
}

/* A plain empty, "~" or "null" scalar is YAML's null: "key:" with nothing after it. */
static bool config_is_null(const yaml_node_t *node)
{
	if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *v = (const char *)node->data.scalar.value;
	return node->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* The scalar's text, or NULL when it holds a NUL byte (from a "\0" escape),
 * which no value of ours may contain and C strings cannot carry. */
static const char *config_scalar(const yaml_node_t *node)
{
	const char *v = (const char *)node->data.scalar.value;
	return strlen(v) == node->data.scalar.length ? v : NULL;
}

/* Parse a decimal number with an optional unit from units into *out (value
 * times the unit's factor).  Only digits are accepted before the unit:
 * strtoull alone would take spaces, '+' and, worse, wrap "-1" around. */
static enum config_parse config_parse_scaled(const char *s, const struct config_unit *units,
                                             uint64_t *out)
{
	bool negative = false;
	if (*s == '-') {
		negative = true;
		s++;
	}
	if (*s < '0' || *s > '9')
		return CONFIG_PARSE_BAD;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	bool overflow = errno == ERANGE;
	for (const struct config_unit *u = units; u->suffix != NULL; u++) {
		if (strcmp(end, u->suffix) != 0)
			continue;
		if (negative && v > 0)
			return CONFIG_PARSE_RANGE;
		if (overflow || v > UINT64_MAX / u->factor)
			return CONFIG_PARSE_RANGE;
		*out = v * u->factor;
		return CONFIG_PARSE_OK;
	}
	return CONFIG_PARSE_BAD;
}

static const struct config_unit config_no_units[] = { { "", 1 }, { NULL, 0 } };

static const struct config_unit *config_units(enum config_kind kind)
{
	switch (kind) {
	case CONFIG_KIND_MSEC:
	case CONFIG_KIND_SEC:
		return config_duration_units;
	case CONFIG_KIND_SIZE:
		return config_size_units;
	default:
		return config_no_units;
	}
}

/* The bounds in the table are constants of ours; a bad one is a bug here. */
static uint64_t config_bound(const struct config_key *k, const char *text)
{
	uint64_t v = 0;
	if (config_parse_scaled(text, config_units(k->kind), &v) != CONFIG_PARSE_OK)
		abort();
	return v;
}

static bool config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };
	for (size_t i = 0; i < 3; i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*out = strcasecmp(s, yes[i]) == 0;
			return true;
		}
	}
	return false;
}

/* Parse "a.b.c.d:port" or "[v6]:port" into ss.  Returns NULL or why not. */
static const char *config_parse_address(const char *s, struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port;
	bool v6 = s[0] == '[';
	if (v6) {
		const char *close = strchr(s, ']');
		if (close == NULL)
			return "missing ']' after the IPv6 address";
		if ((size_t)(close - s - 1) >= sizeof host)
			return "bad IPv6 address";
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		if (close[1] == '\0')
			return "missing port (write it as \"[address]:port\")";
		if (close[1] != ':')
			return "expected ':port' after ']'";
		port = close + 2;
	} else {
		const char *colon = strchr(s, ':');
		if (colon == NULL)
			return "missing port (write it as \"address:port\")";
		if (strchr(colon + 1, ':') != NULL)
			return "IPv6 addresses must be in brackets, as in \"[::1]:53\"";
		if ((size_t)(colon - s) >= sizeof host)
			return "bad IPv4 address";
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		port = colon + 1;
	}
	uint64_t p;
	if (*port == '\0')
		return "missing port";
	if (config_parse_scaled(port, config_no_units, &p) == CONFIG_PARSE_BAD)
		return "the port must be a number";
	if (config_parse_scaled(port, config_no_units, &p) != CONFIG_PARSE_OK || p < 1 || p > 65535)
		return "the port must be between 1 and 65535";

	memset(ss, 0, sizeof *ss);
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return "bad IPv6 address";
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return "bad IPv4 address";
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
	}
	return NULL;
}

static bool config_same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return memcmp(a, b, sizeof(struct sockaddr_in)) == 0;
	return memcmp(a, b, sizeof(struct sockaddr_in6)) == 0;
}

/* Where a listen key stores its addresses: server: listen or web: listen. */
struct config_listen_target {
	struct sockaddr_storage *addr;
	unsigned *count;
};

static struct config_listen_target config_listen_target(struct config *cfg, const struct config_key *k)
{
	if (strcmp(k->section, "web") == 0)
		return (struct config_listen_target){ cfg->web_listen, &cfg->web_listen_count };
	return (struct config_listen_target){ cfg->listen, &cfg->listen_count };
}

/* Add one listen entry to t; node is a scalar. */
static void config_add_listen(struct config_loader *ld, struct config_listen_target t, const yaml_node_t *node)
{
	char q[80];
	const char *s = config_scalar(node);
	if (s == NULL || config_is_null(node)) {
		config_error(ld, config_line(node), "'listen' entries must be addresses such as \"127.0.0.1:53\"");
		return;
	}
	if (*t.count == CONFIG_MAX_LISTEN) {
		config_error(ld, config_line(node), "'listen' has more than %d addresses", CONFIG_MAX_LISTEN);
		(*t.count)++;  /* so that the error is reported once */
		return;
	}
	if (*t.count > CONFIG_MAX_LISTEN)
		return;
	struct sockaddr_storage ss;
	const char *why = config_parse_address(s, &ss);
	if (why != NULL) {
		config_error(ld, config_line(node), "listen: '%s': %s",
		             config_quote(q, sizeof q, s, node->data.scalar.length), why);
		return;
	}
	/* A second bind to the same address would fail at start-up, far from here. */
	for (unsigned i = 0; i < *t.count; i++) {
		if (config_same_address(&t.addr[i], &ss)) {
			config_error(ld, config_line(node), "listen: '%s' is listed twice",
			             config_quote(q, sizeof q, s, node->data.scalar.length));
			return;
		}
	}
	t.addr[(*t.count)++] = ss;
}

/* server: listen needs an address; web: listen may be empty ([] or null),
 * which turns the HTTP server off. */
static void config_set_listen(struct config_loader *ld, const struct config_key *k, const yaml_node_t *value)
{
	struct config_listen_target t = config_listen_target(ld->cfg, k);
	bool may_be_empty = t.count == &ld->cfg->web_listen_count;
	*t.count = 0;
	if (may_be_empty && config_is_null(value))
		return;
	if (value->type == YAML_SCALAR_NODE && !config_is_null(value)) {
		config_add_listen(ld, t, value);
	} else if (value->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *it = value->data.sequence.items.start;
		     it < value->data.sequence.items.top; it++) {
			yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
			if (item == NULL)
				continue;
			if (item->type != YAML_SCALAR_NODE) {
				config_error(ld, config_line(item),
				             "'listen' entries must be addresses such as \"127.0.0.1:53\"");
				continue;
			}
			config_add_listen(ld, t, item);
		}
		if (!may_be_empty && value->data.sequence.items.top == value->data.sequence.items.start)
			config_error(ld, config_line(value), "'listen' needs at least one address");
	} else {
		config_error(ld, config_line(value), "'listen' must be an address or a list of addresses");
	}
	if (*t.count > CONFIG_MAX_LISTEN)
		*t.count = CONFIG_MAX_LISTEN;
}

static const char *config_kind_wants(enum config_kind kind)
{
	switch (kind) {
	case CONFIG_KIND_NUMBER:
		return "a number";
	case CONFIG_KIND_MSEC:
	case CONFIG_KIND_SEC:
		return "a duration such as 5s (units ms, s, m, h, d)";
	case CONFIG_KIND_SIZE:
		return "a size such as 256M (units K, M, G, T)";
	case CONFIG_KIND_BOOL:
		return "true or false";
	case CONFIG_KIND_STRING:
	case CONFIG_KIND_OPT_STRING:
		return "a string";
	case CONFIG_KIND_LOG_LEVEL:
		return "one of error, warning, info, debug";
	case CONFIG_KIND_ACTION:
		return "one of allow, refuse, drop";
	case CONFIG_KIND_NETWORK:
		return "a network such as 10.0.0.0/8";
	case CONFIG_KIND_ZONE:
		return "a zone name";
	case CONFIG_KIND_ACCESS_RULES:
		return "a list of {network: CIDR, action: allow|refuse|drop}";
	case CONFIG_KIND_NETWORKS:
		return "a list of networks such as 127.0.0.0/8";
	case CONFIG_KIND_PARTITIONS:
		return "a mapping of general, mail and dnsbl to their settings";
	case CONFIG_KIND_TYPES:
		return "a mapping of RR types (MX, TXT, ...) to TTL settings";
	case CONFIG_KIND_DNSBL_ZONES:
		return "a list of zone names or {zone: NAME, negative-min-ttl: DURATION}";
	case CONFIG_KIND_ADDR4:
		return "an IPv4 address such as 0.0.0.0";
	case CONFIG_KIND_ADDR6:
		return "an IPv6 address such as ::";
	case CONFIG_KIND_SOURCE_NAME:
		return "a name of 1 to 63 characters a-z, 0-9, '-' and '_'";
	case CONFIG_KIND_SOURCE_TYPE:
		return "one of list, rhsbl, dnsbl";
	case CONFIG_KIND_LIST_FORMAT:
		return "one of hosts, domains, adblock, rpz";
	case CONFIG_KIND_FILTER_ACTION:
		return "one of nxdomain, nodata, refused, sinkhole, log-only";
	case CONFIG_KIND_SOURCES:
		return "a list of sources such as {name: ads, type: list, files: [/etc/ads.hosts]}";
	case CONFIG_KIND_SCOPES:
		return "a list of {network: CIDR, sources: [NAME, ...]}";
	case CONFIG_KIND_FILES:
		return "a path or a list of paths";
	case CONFIG_KIND_CODES:
		return "an address such as 127.0.0.2, a range such as 127.0.0.2-127.0.0.11, or a list of them";
	case CONFIG_KIND_SERVERS:
		return "an address such as 192.0.2.53, \"192.0.2.53:5353\" or \"[2001:db8::53]:53\", or a list of them";
	case CONFIG_KIND_SCOPE_SOURCES:
		return "a source name or a list of source names";
	case CONFIG_KIND_LISTEN:
		break;
	}
	return "an address or a list of addresses";
}

/* Write the DNSBL zone name s into out (256 bytes) as it is stored:
 * lower-case, without the trailing dot.  Returns NULL or why it is not a
 * name we accept.  Labels are the hostname alphabet plus '_', which some
 * list operators use; anything else is more likely a typo than a zone. */
static const char *config_normalize_zone(const char *s, char *out)
{
	size_t len = strlen(s);
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0)
		return "empty name";
	if (len > 253)
		return "name longer than 253 characters";
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0)
				return "empty label";
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		           c == '-' || c == '_') {
			if (++label > 63)
				return "label longer than 63 characters";
		} else {
			return "bad character (letters, digits, '-' and '_' only)";
		}
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	if (label == 0)
		return "empty label";
	out[len] = '\0';
	return NULL;
}

/* The RR type named by s (a mnemonic of config_rrtypes in any case, or
 * TYPEnnn as in RFC 3597), or 0 when it names none. */
static uint16_t config_parse_rrtype(const char *s)
{
	for (size_t i = 0; i < sizeof config_rrtypes / sizeof config_rrtypes[0]; i++) {
		if (strcasecmp(s, config_rrtypes[i].name) == 0)
			return config_rrtypes[i].type;
	}
	if (strncasecmp(s, "TYPE", 4) != 0)
		return 0;
	const char *d = s + 4;
	size_t digits = strspn(d, "0123456789");
	if (digits == 0 || digits > 5 || d[digits] != '\0' || d[0] == '0')
		return 0;
	unsigned long v = strtoul(d, NULL, 10);
	return v <= 65535 ? (uint16_t)v : 0;
}

/* The names of an enum kind's values, in enum order, and how many; NULL
 * for a kind that is not an enum. */
static const char *const *config_enum_names(enum config_kind kind, size_t *n)
{
#define CONFIG_NAMES(a) (*n = sizeof a / sizeof a[0], a)
	switch (kind) {
	case CONFIG_KIND_LOG_LEVEL:
		return CONFIG_NAMES(config_log_levels);
	case CONFIG_KIND_ACTION:
		return CONFIG_NAMES(config_actions);
	case CONFIG_KIND_SOURCE_TYPE:
		return CONFIG_NAMES(config_source_types);
	case CONFIG_KIND_LIST_FORMAT:
		return CONFIG_NAMES(config_list_formats);
	case CONFIG_KIND_FILTER_ACTION:
		return CONFIG_NAMES(config_filter_actions);
	default:
		*n = 0;
		return NULL;
	}
#undef CONFIG_NAMES
}

/* Returns NULL when s is a good source name, else why not.  Names show up
 * in logs, statistics labels and EDE texts: a small alphabet keeps them
 * safe in all three. */
static const char *config_check_source_name(const char *s)
{
	size_t len = strlen(s);
	if (len == 0)
		return "empty name";
	if (len > 63)
		return "longer than 63 characters";
	if (strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_") != len)
		return "bad character (a-z, 0-9, '-' and '_' only)";
	return NULL;
}

/* Parse a DNSBL answer code, "a.b.c.d" or a range "a.b.c.d-e.f.g.h" with
 * the start at most the end, and write it to out (size bytes) in canonical
 * form.  Returns NULL or why not. */
static const char *config_parse_code(const char *s, char *out, size_t size)
{
	char text[2][INET_ADDRSTRLEN];
	struct in_addr a[2];
	const char *dash = strchr(s, '-');
	const char *part[2] = { s, dash != NULL ? dash + 1 : NULL };
	size_t len[2] = { dash != NULL ? (size_t)(dash - s) : strlen(s), dash != NULL ? strlen(dash + 1) : 0 };
	int n = dash != NULL ? 2 : 1;
	for (int i = 0; i < n; i++) {
		if (len[i] >= sizeof text[i])
			return "bad IPv4 address";
		memcpy(text[i], part[i], len[i]);
		text[i][len[i]] = '\0';
		if (inet_pton(AF_INET, text[i], &a[i]) != 1)
			return "bad IPv4 address";
		inet_ntop(AF_INET, &a[i], text[i], sizeof text[i]);
	}
	if (n == 2 && ntohl(a[0].s_addr) > ntohl(a[1].s_addr))
		return "the range starts above its end";
	if (n == 1)
		snprintf(out, size, "%s", text[0]);
	else
		snprintf(out, size, "%s-%s", text[0], text[1]);
	return NULL;
}

/* Parse a DNSBL source's server: an address alone (port 53), "[v6]",
 * "a.b.c.d:port" or "[v6]:port".  Returns NULL or why not. */
static const char *config_parse_server(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char host[INET6_ADDRSTRLEN + 1];
	size_t len = strlen(s);

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(53);
		return NULL;
	}
	const char *v6 = s;
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		if (len - 2 >= sizeof host)
			return "bad IPv6 address";
		memcpy(host, s + 1, len - 2);
		host[len - 2] = '\0';
		v6 = host;
	}
	if (inet_pton(AF_INET6, v6, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(53);
		return NULL;
	}
	if (v6 == host)
		return "bad IPv6 address";
	/* No colon: not an address with a port either; perhaps a host name,
	 * which would need a resolver to find the resolver's servers. */
	if (strspn(s, "0123456789.") == len)
		return "bad IPv4 address";
	if (strchr(s, ':') == NULL)
		return "bad address (an IPv4 or IPv6 address, not a name)";
	return config_parse_address(s, ss);
}

/* Store text s as key k's value in the struct at base.  line is 0 for the
 * built-in defaults, which are known good.  Returns 0, or -1 after
 * reporting why not. */
static int config_set_text(struct config_loader *ld, const struct config_key *k, void *base, const char *s,
                           unsigned line)
{
	char *field = (char *)base + k->offset;
	char q[80];
	uint64_t v = 0;
	bool b;

	switch (k->kind) {
	case CONFIG_KIND_NUMBER:
	case CONFIG_KIND_MSEC:
	case CONFIG_KIND_SEC:
	case CONFIG_KIND_SIZE: {
		enum config_parse r = config_parse_scaled(s, config_units(k->kind), &v);
		if (r == CONFIG_PARSE_BAD) {
			config_error(ld, line, "'%s' must be %s", k->name, config_kind_wants(k->kind));
			return -1;
		}
		if (r == CONFIG_PARSE_RANGE || v < config_bound(k, k->min) || v > config_bound(k, k->max)) {
			config_error(ld, line, "'%s' must be between %s and %s", k->name, k->min, k->max);
			return -1;
		}
		if (k->kind == CONFIG_KIND_SEC && v % 1000 != 0) {
			config_error(ld, line, "'%s' must be a whole number of seconds", k->name);
			return -1;
		}
		/* The bounds keep every value within its field's type. */
		if (k->kind == CONFIG_KIND_SIZE)
			memcpy(field, &v, sizeof(uint64_t));
		else if (k->kind == CONFIG_KIND_SEC) {
			uint32_t sec = (uint32_t)(v / 1000);
			memcpy(field, &sec, sizeof sec);
		} else {
			unsigned u = (unsigned)v;
			memcpy(field, &u, sizeof u);
		}
		return 0;
	}
	case CONFIG_KIND_BOOL:
		if (!config_parse_bool(s, &b)) {
			config_error(ld, line, "'%s' must be true or false", k->name);
			return -1;
		}
		memcpy(field, &b, sizeof b);
		return 0;
	case CONFIG_KIND_LOG_LEVEL:
	case CONFIG_KIND_ACTION:
	case CONFIG_KIND_SOURCE_TYPE:
	case CONFIG_KIND_LIST_FORMAT:
	case CONFIG_KIND_FILTER_ACTION: {
		/* Every one of these enums is int-sized (asserted above). */
		size_t n;
		const char *const *names = config_enum_names(k->kind, &n);
		for (int i = 0; i < (int)n; i++) {
			if (strcmp(s, names[i]) == 0) {
				memcpy(field, &i, sizeof i);
				return 0;
			}
		}
		config_error(ld, line, "'%s' must be %s", k->name, config_kind_wants(k->kind));
		return -1;
	}
	case CONFIG_KIND_ADDR4:
	case CONFIG_KIND_ADDR6: {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof ss);
		int ok;
		if (k->kind == CONFIG_KIND_ADDR4) {
			ss.ss_family = AF_INET;
			ok = inet_pton(AF_INET, s, &((struct sockaddr_in *)&ss)->sin_addr);
		} else {
			ss.ss_family = AF_INET6;
			ok = inet_pton(AF_INET6, s, &((struct sockaddr_in6 *)&ss)->sin6_addr);
		}
		if (ok != 1) {
			config_error(ld, line, "'%s' must be %s", k->name, config_kind_wants(k->kind));
			return -1;
		}
		memcpy(field, &ss, sizeof ss);
		return 0;
	}
	case CONFIG_KIND_SOURCE_NAME: {
		const char *why = config_check_source_name(s);
		if (why != NULL) {
			config_error(ld, line, "source name '%s': %s", config_quote(q, sizeof q, s, strlen(s)), why);
			return -1;
		}
		memcpy(field, s, strlen(s) + 1);
		return 0;
	}
	case CONFIG_KIND_NETWORK:
		/* Checked in full by the list, which alone can see duplicates;
		 * here only that it fits (every valid CIDR text does). */
		if (strlen(s) >= sizeof ((struct config_access_rule *)0)->network) {
			config_error(ld, line, "network '%s': bad address", config_quote(q, sizeof q, s, strlen(s)));
			return -1;
		}
		strcpy(field, s);
		return 0;
	case CONFIG_KIND_ZONE: {
		char name[sizeof ((struct config_dnsbl_zone *)0)->name];
		const char *why = config_normalize_zone(s, name);
		if (why != NULL) {
			/* The same kind reads cache.dnsbl-zones and a source's zone. */
			config_error(ld, line, "%s: '%s': %s", strcmp(k->section, "source") == 0 ? "zone" : "dnsbl-zones",
			             config_quote(q, sizeof q, s, strlen(s)), why);
			return -1;
		}
		memcpy(field, name, strlen(name) + 1);
		return 0;
	}
	case CONFIG_KIND_STRING:
	case CONFIG_KIND_OPT_STRING: {
		if (*s == '\0' && k->kind == CONFIG_KIND_STRING) {
			config_error(ld, line, "'%s' must not be empty", k->name);
			return -1;
		}
		/* An optional string left empty means "none": NULL. */
		char *copy = NULL;
		if (*s != '\0' && (copy = strdup(s)) == NULL) {
			config_error(ld, line, "out of memory");
			return -1;
		}
		char *old;
		memcpy(&old, field, sizeof old);
		free(old);
		memcpy(field, &copy, sizeof copy);
		return 0;
	}
	case CONFIG_KIND_LISTEN:
	case CONFIG_KIND_ACCESS_RULES:
	case CONFIG_KIND_NETWORKS:
	case CONFIG_KIND_PARTITIONS:
	case CONFIG_KIND_TYPES:
	case CONFIG_KIND_DNSBL_ZONES:
	case CONFIG_KIND_SOURCES:
	case CONFIG_KIND_SCOPES:
	case CONFIG_KIND_FILES:
	case CONFIG_KIND_CODES:
	case CONFIG_KIND_SERVERS:
	case CONFIG_KIND_SCOPE_SOURCES:
		break;
	}
	abort();
}

/* Set scalar key k in the struct at base from node.  Returns 0, or -1
 * after reporting why not. */
static int config_set_scalar(struct config_loader *ld, const struct config_key *k, void *base,
                             const yaml_node_t *value)
{
	unsigned line = config_line(value);
	if (value->type != YAML_SCALAR_NODE) {
		config_error(ld, line, "'%s' must be %s", k->name, config_kind_wants(k->kind));
		return -1;
	}
	const char *s = config_scalar(value);
	if (s == NULL) {
		config_error(ld, line, "'%s' must not contain a NUL character", k->name);
		return -1;
	}
	/* "key:" with no value is null: for a path it is an empty one. */
	if (config_is_null(value))
		s = "";
	return config_set_text(ld, k, base, s, line);
}

/* Fill the struct at base with the defaults of a nested table. */
static void config_sub_defaults(struct config_loader *ld, const struct config_key *keys, size_t nkeys,
                                void *base)
{
	for (size_t i = 0; i < nkeys; i++) {
		if (keys[i].def != NULL)
			config_set_text(ld, &keys[i], base, keys[i].def, 0);
	}
}

static void config_load_mapping(struct config_loader *ld, const struct config_key *keys, size_t nkeys,
                                const char *section, void *base, const yaml_node_t *map, const char *where,
                                unsigned *key_line, bool *key_bad);
static size_t config_key_index(const char *section, const char *name);

/* Add the network cidr to the list acl, which holds the others of its list
 * so that a prefix written twice is caught.  The acl module's message starts
 * with the network; it is said once, in front. */
static int config_add_network(struct config_loader *ld, struct acl *acl, const char *cidr,
                              enum config_access_action action, unsigned line)
{
	char err[256], q[80], qe[256];
	if (acl_add(acl, cidr, (enum acl_action)action, err, sizeof err) == 0)
		return 0;
	const char *msg = err;
	size_t n = strlen(cidr);
	if (strncmp(err, cidr, n) == 0 && err[n] == ':' && err[n + 1] == ' ')
		msg = err + n + 2;
	config_error(ld, line, "network '%s': %s", config_quote(q, sizeof q, cidr, n),
	             config_quote(qe, sizeof qe, msg, strlen(msg)));
	return -1;
}

/* access: rules: a sequence of {network, action}, each checked as the acl
 * module will read it.  Null or [] means no rules at all. */
static void config_set_rules(struct config_loader *ld, const yaml_node_t *value)
{
	struct config *cfg = ld->cfg;
	cfg->access_rule_count = 0;
	if (config_is_null(value))
		return;
	if (value->type != YAML_SEQUENCE_NODE) {
		config_error(ld, config_line(value), "'rules' must be %s", config_kind_wants(CONFIG_KIND_ACCESS_RULES));
		return;
	}
	struct acl *acl = acl_new(ACL_REFUSE);
	if (acl == NULL) {
		config_error(ld, config_line(value), "out of memory");
		return;
	}
	bool full = false;
	for (yaml_node_item_t *it = value->data.sequence.items.start; it < value->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
		if (item == NULL)
			continue;
		unsigned line = config_line(item);
		if (item->type != YAML_MAPPING_NODE) {
			config_error(ld, line, "access rules must be mappings such as {network: 10.0.0.0/8, action: allow}");
			continue;
		}
		struct config_access_rule r = { .line = line };
		unsigned key_line[CONFIG_NRULE_KEYS] = { 0 };
		bool key_bad[CONFIG_NRULE_KEYS] = { false };
		int before = ld->nerr;
		config_load_mapping(ld, config_rule_keys, CONFIG_NRULE_KEYS, "rule", &r, item, "an access rule",
		                    key_line, key_bad);
		if (key_line[CONFIG_RULE_NETWORK] == 0)
			config_error(ld, line, "an access rule needs 'network'");
		if (key_line[CONFIG_RULE_ACTION] == 0)
			config_error(ld, line, "an access rule needs 'action'");
		if (ld->nerr != before)
			continue;
		if (config_add_network(ld, acl, r.network, r.action, key_line[CONFIG_RULE_NETWORK]) != 0)
			continue;
		if (cfg->access_rule_count == CONFIG_MAX_ACCESS_RULES) {
			if (!full)
				config_error(ld, line, "'rules' has more than %d entries", CONFIG_MAX_ACCESS_RULES);
			full = true;
			continue;
		}
		cfg->access_rules[cfg->access_rule_count++] = r;
	}
	acl_free(acl);
}

/* Where a list of networks is stored: ratelimit: exempt or web: allow. */
struct config_networks_target {
	const char *name;
	struct config_access_rule *rules;
	unsigned *count;
};

static struct config_networks_target config_networks_target(struct config *cfg, const struct config_key *k)
{
	if (strcmp(k->section, "web") == 0)
		return (struct config_networks_target){ "allow", cfg->web_allow, &cfg->web_allow_count };
	return (struct config_networks_target){ "exempt", cfg->ratelimit_exempt, &cfg->ratelimit_exempt_count };
}

/* Add one entry, item, to t, checked against the others in acl. */
static void config_add_networks_entry(struct config_loader *ld, struct config_networks_target t, struct acl *acl,
                              const yaml_node_t *item, bool *full)
{
	static const struct config_key k = { "ratelimit", "exempt", CONFIG_KIND_NETWORK,
	                                     offsetof(struct config_access_rule, network), NULL, NULL, NULL };
	unsigned line = config_line(item);
	if (item->type != YAML_SCALAR_NODE) {
		config_error(ld, line, "'%s' entries must be networks such as 127.0.0.0/8", t.name);
		return;
	}
	struct config_access_rule r = { .action = CONFIG_ACCESS_ALLOW, .line = line };
	if (config_set_scalar(ld, &k, &r, item) != 0 || config_add_network(ld, acl, r.network, r.action, line) != 0)
		return;
	if (*t.count == CONFIG_MAX_ACCESS_RULES) {
		if (!*full)
			config_error(ld, line, "'%s' has more than %d networks", t.name, CONFIG_MAX_ACCESS_RULES);
		*full = true;
		return;
	}
	t.rules[(*t.count)++] = r;
}

/* ratelimit: exempt, web: allow: one network or a sequence of them.  Null
 * or [] means none (nobody exempt; no web client allowed). */
static void config_set_networks(struct config_loader *ld, const struct config_key *key, const yaml_node_t *value)
{
	struct config_networks_target t = config_networks_target(ld->cfg, key);
	*t.count = 0;
	if (config_is_null(value))
		return;
	if (value->type != YAML_SCALAR_NODE && value->type != YAML_SEQUENCE_NODE) {
		config_error(ld, config_line(value), "'%s' must be %s", t.name, config_kind_wants(CONFIG_KIND_NETWORKS));
		return;
	}
	struct acl *acl = acl_new(ACL_ALLOW);
	if (acl == NULL) {
		config_error(ld, config_line(value), "out of memory");
		return;
	}
	bool full = false;
	if (value->type == YAML_SCALAR_NODE) {
		config_add_networks_entry(ld, t, acl, value, &full);
	} else {
		for (yaml_node_item_t *it = value->data.sequence.items.start; it < value->data.sequence.items.top;
		     it++) {
			yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
			if (item != NULL)
				config_add_networks_entry(ld, t, acl, item, &full);
		}
	}
	acl_free(acl);
}

/* cache: partitions: NAME: types: a mapping of RR type to TTL keys, for the
 * partition at part.  What each entry sets is kept in the loader: a key it
 * leaves out takes the partition's value, known only once the whole
 * partition is read (config_load_partition does it). */
static void config_set_types(struct config_loader *ld, struct config_partition *part, const yaml_node_t *value)
{
	const char *pname = config_partition_names[part - ld->cfg->partitions];
	char q[80], where[160];
	if (config_is_null(value))
		return;
	if (value->type != YAML_MAPPING_NODE) {
		config_error(ld, config_line(value), "'types' must be %s", config_kind_wants(CONFIG_KIND_TYPES));
		return;
	}
	bool full = false;
	for (yaml_node_pair_t *p = value->data.mapping.pairs.start; p < value->data.mapping.pairs.top; p++) {
		yaml_node_t *key = yaml_document_get_node(ld->doc, p->key);
		yaml_node_t *tv = yaml_document_get_node(ld->doc, p->value);
		if (key == NULL || tv == NULL)
			continue;
		if (key->type != YAML_SCALAR_NODE || config_scalar(key) == NULL) {
			config_error(ld, config_line(key), "keys must be plain strings");
			continue;
		}
		const char *name = config_scalar(key);
		config_quote(q, sizeof q, name, key->data.scalar.length);
		uint16_t qtype = config_parse_rrtype(name);
		if (qtype == 0) {
			config_error(ld, config_line(key), "unknown RR type '%s'", q);
			continue;
		}
		unsigned i;
		for (i = 0; i < part->type_count; i++) {
			if (part->types[i].qtype == qtype)
				break;
		}
		if (i < part->type_count) {
			config_error(ld, config_line(key), "duplicate type '%s' in partition '%s' (first at line %u)", q,
			             pname, ld->type_line[i]);
			continue;
		}
		if (part->type_count == CONFIG_MAX_TYPE_POLICIES) {
			if (!full)
				config_error(ld, config_line(key), "'types' has more than %d entries",
				             CONFIG_MAX_TYPE_POLICIES);
			full = true;
			continue;
		}
		i = part->type_count++;
		struct config_type_policy *t = &part->types[i];
		t->qtype = qtype;
		ld->type_line[i] = config_line(key);
		memset(ld->type_key_line[i], 0, sizeof ld->type_key_line[i]);
		memset(ld->type_key_bad[i], 0, sizeof ld->type_key_bad[i]);
		/* "MX:" alone takes everything from the partition. */
		if (config_is_null(tv))
			continue;
		snprintf(where, sizeof where, "type '%s' of partition '%s'", q, pname);
		if (tv->type != YAML_MAPPING_NODE) {
			config_error(ld, config_line(tv),
			             "%s must be a mapping of min-ttl, max-ttl, negative-min-ttl, negative-max-ttl", where);
			continue;
		}
		config_load_mapping(ld, config_type_keys, CONFIG_NTYPE_KEYS, "config_type_policy", t, tv, where,
		                    ld->type_key_line[i], ld->type_key_bad[i]);
	}
}

/* Report a minimum TTL above its maximum, for both pairs of policy t.
 * key_line and key_bad say where each key was set in this mapping (0: not
 * here); a pair set nowhere here was checked where it was set.  from names
 * the partition a per-type entry inherits from, NULL for a partition. */
static void config_check_ttl(struct config_loader *ld, const struct config_ttl_policy *t,
                             const unsigned *key_line, const bool *key_bad, const char *from)
{
	static const char *const names[CONFIG_TTL_KEYS] = { "min-ttl", "max-ttl", "negative-min-ttl",
		                                                "negative-max-ttl" };
	const uint32_t v[CONFIG_TTL_KEYS] = { t->min_ttl, t->max_ttl, t->negative_min_ttl, t->negative_max_ttl };
	for (int lo = CONFIG_TTL_MIN; lo < CONFIG_TTL_KEYS; lo += 2) {
		int hi = lo + 1;
		if (key_bad[lo] || key_bad[hi] || v[lo] == 0 || v[hi] == 0 || v[lo] <= v[hi])
			continue;
		if (key_line[lo] == 0 && key_line[hi] == 0)
			continue;
		unsigned line = key_line[lo] != 0 ? key_line[lo] : key_line[hi];
		if (from != NULL && (key_line[lo] == 0 || key_line[hi] == 0))
			config_error(ld, line, "%s is greater than %s (%s %s from partition '%s')", names[lo], names[hi],
			             key_line[lo] == 0 ? names[lo] : names[hi], "inherited", from);
		else
			config_error(ld, line, "%s is greater than %s", names[lo], names[hi]);
	}
}

/* cache: partitions: NAME: one partition's quota, TTL clamps and types. */
static void config_load_partition(struct config_loader *ld, size_t p, const yaml_node_t *value)
{
	struct config_partition *part = &ld->cfg->partitions[p];
	const char *pname = config_partition_names[p];
	char where[64];
	if (config_is_null(value))
		return;
	snprintf(where, sizeof where, "partition '%s'", pname);
	if (value->type != YAML_MAPPING_NODE) {
		config_error(ld, config_line(value), "%s must be a mapping of keys", where);
		return;
	}
	unsigned key_line[CONFIG_SUBKEYS_MAX] = { 0 };
	bool key_bad[CONFIG_SUBKEYS_MAX] = { false };
	config_load_mapping(ld, config_partition_keys, CONFIG_NPARTITION_KEYS, "config_partition", part, value,
	                    where, key_line, key_bad);
	config_check_ttl(ld, &part->ttl, key_line, key_bad, NULL);

	/* A per-type entry takes each key it does not set from its partition. */
	for (unsigned i = 0; i < part->type_count; i++) {
		struct config_type_policy *t = &part->types[i];
		bool bad[CONFIG_TTL_KEYS];
		for (int f = 0; f < CONFIG_TTL_KEYS; f++) {
			bad[f] = ld->type_key_bad[i][f];
			if (ld->type_key_line[i][f] != 0)
				continue;
			memcpy((char *)&t->ttl + config_ttl_fields[f], (const char *)&part->ttl + config_ttl_fields[f],
			       sizeof(uint32_t));
			bad[f] = key_bad[f];
		}
		config_check_ttl(ld, &t->ttl, ld->type_key_line[i], bad, pname);
	}
}

/* cache: partitions: a mapping of partition names to their settings. */
static void config_set_partitions(struct config_loader *ld, const yaml_node_t *value)
{
	char q[80];
	if (config_is_null(value))
		return;
	if (value->type != YAML_MAPPING_NODE) {
		config_error(ld, config_line(value), "'partitions' must be %s", config_kind_wants(CONFIG_KIND_PARTITIONS));
		return;
	}
	unsigned seen[CONFIG_PARTITIONS] = { 0 };
	for (yaml_node_pair_t *p = value->data.mapping.pairs.start; p < value->data.mapping.pairs.top; p++) {
		yaml_node_t *key = yaml_document_get_node(ld->doc, p->key);
		yaml_node_t *pv = yaml_document_get_node(ld->doc, p->value);
		if (key == NULL || pv == NULL)
			continue;
		if (key->type != YAML_SCALAR_NODE || config_scalar(key) == NULL) {
			config_error(ld, config_line(key), "keys must be plain strings");
			continue;
		}
		const char *name = config_scalar(key);
		size_t i;
		for (i = 0; i < CONFIG_PARTITIONS; i++) {
			if (strcmp(name, config_partition_names[i]) == 0)
				break;
		}
		if (i == CONFIG_PARTITIONS) {
			config_error(ld, config_line(key), "unknown partition '%s' (expected general, mail or dnsbl)",
			             config_quote(q, sizeof q, name, key->data.scalar.length));
			continue;
		}
		if (seen[i] != 0) {
			config_error(ld, config_line(key), "duplicate partition '%s' (first at line %u)", name, seen[i]);
			continue;
		}
		seen[i] = config_line(key);
		config_load_partition(ld, i, pv);
	}
}

/* cache: dnsbl-zones: a sequence of zone names or {zone, negative-min-ttl}. */
static void config_set_dnsbl_zones(struct config_loader *ld, const yaml_node_t *value)
{
	struct config *cfg = ld->cfg;
	unsigned lines[CONFIG_MAX_DNSBL_ZONES];
	cfg->dnsbl_zone_count = 0;
	if (config_is_null(value))
		return;
	if (value->type != YAML_SEQUENCE_NODE) {
		config_error(ld, config_line(value), "'dnsbl-zones' must be %s", config_kind_wants(CONFIG_KIND_DNSBL_ZONES));
		return;
	}
	bool full = false;
	for (yaml_node_item_t *it = value->data.sequence.items.start; it < value->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
		if (item == NULL)
			continue;
		unsigned line = config_line(item);
		struct config_dnsbl_zone z;
		memset(&z, 0, sizeof z);
		if (item->type == YAML_SCALAR_NODE) {
			if (config_set_scalar(ld, &config_zone_keys[CONFIG_ZONE_NAME], &z, item) != 0)
				continue;
		} else if (item->type == YAML_MAPPING_NODE) {
			unsigned key_line[CONFIG_NZONE_KEYS] = { 0 };
			bool key_bad[CONFIG_NZONE_KEYS] = { false };
			int before = ld->nerr;
			config_sub_defaults(ld, config_zone_keys, CONFIG_NZONE_KEYS, &z);
			config_load_mapping(ld, config_zone_keys, CONFIG_NZONE_KEYS, "zone", &z, item, "a dnsbl zone",
			                    key_line, key_bad);
			if (key_line[CONFIG_ZONE_NAME] == 0)
				config_error(ld, line, "a dnsbl zone needs 'zone'");
			if (ld->nerr != before)
				continue;
		} else {
			config_error(ld, line, "'dnsbl-zones' entries must be zone names or mappings such as "
			                       "{zone: NAME, negative-min-ttl: 5m}");
			continue;
		}
		unsigned i;
		for (i = 0; i < cfg->dnsbl_zone_count; i++) {
			if (strcmp(cfg->dnsbl_zones[i].name, z.name) == 0)
				break;
		}
		if (i < cfg->dnsbl_zone_count) {
			config_error(ld, line, "dnsbl-zones: '%s' is listed twice (first at line %u)", z.name, lines[i]);
			continue;
		}
		if (cfg->dnsbl_zone_count == CONFIG_MAX_DNSBL_ZONES) {
			if (!full)
				config_error(ld, line, "'dnsbl-zones' has more than %d zones", CONFIG_MAX_DNSBL_ZONES);
			full = true;
			continue;
		}
		lines[cfg->dnsbl_zone_count] = line;
		cfg->dnsbl_zones[cfg->dnsbl_zone_count++] = z;
	}
}

/* The add function of config_each_scalar: takes one entry, with its text. */
#define CONFIG_ADD_FN(name) void name(struct config_loader *ld, void *base, const yaml_node_t *item, const char *s)

/* One entry of config_each_scalar; *n counts those taken.  Returns false
 * once there are too many, to stop. */
static bool config_each_one(struct config_loader *ld, const struct config_key *k, const yaml_node_t *item,
                            unsigned max, const char *noun, CONFIG_ADD_FN((*add)), void *base, unsigned *n)
{
	const char *text = item->type == YAML_SCALAR_NODE ? config_scalar(item) : NULL;
	if (text == NULL || config_is_null(item)) {
		config_error(ld, config_line(item), "'%s' must be %s", k->name, config_kind_wants(k->kind));
		return true;
	}
	if ((*n)++ == max) {
		config_error(ld, config_line(item), "'%s' has more than %u %s", k->name, max, noun);
		return false;
	}
	if (add != NULL)
		add(ld, base, item, text);
	return true;
}

/* Call add(ld, base, item, text) for value, a scalar, or for each item of
 * value, a sequence of scalars, at most max of them (noun says what they
 * are, for the message).  Null or [] calls nothing; anything else is
 * reported against key k.  add may be NULL, to check the shape only. */
static void config_each_scalar(struct config_loader *ld, const struct config_key *k, const yaml_node_t *value,
                               unsigned max, const char *noun, CONFIG_ADD_FN((*add)), void *base)
{
	unsigned n = 0;
	if (config_is_null(value))
		return;
	if (value->type == YAML_SCALAR_NODE) {
		config_each_one(ld, k, value, max, noun, add, base, &n);
		return;
	}
	if (value->type != YAML_SEQUENCE_NODE) {
		config_error(ld, config_line(value), "'%s' must be %s", k->name, config_kind_wants(k->kind));
		return;
	}
	for (yaml_node_item_t *it = value->data.sequence.items.start; it < value->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
		if (item != NULL && !config_each_one(ld, k, item, max, noun, add, base, &n))
			break;
	}
}

/* A list source's file: kept with its line, checked once the type is known. */
static CONFIG_ADD_FN(config_add_file)
{
	struct config_source *src = base;
	char *copy = strdup(s);
	if (copy == NULL) {
		config_error(ld, config_line(item), "out of memory");
		return;
	}
	ld->file_line[src->file_count] = config_line(item);
	src->files[src->file_count++] = copy;
}

static CONFIG_ADD_FN(config_add_code)
{
	struct config_source *src = base;
	char q[80];
	const char *why = config_parse_code(s, src->codes[src->code_count], sizeof src->codes[0]);
	if (why != NULL) {
		config_error(ld, config_line(item), "code '%s': %s", config_quote(q, sizeof q, s, strlen(s)), why);
		return;
	}
	src->code_count++;
}

static CONFIG_ADD_FN(config_add_server)
{
	struct config_source *src = base;
	struct sockaddr_storage ss;
	char q[80];
	const char *why = config_parse_server(s, &ss);
	if (why != NULL) {
		config_error(ld, config_line(item), "server '%s': %s", config_quote(q, sizeof q, s, strlen(s)), why);
		return;
	}
	for (unsigned i = 0; i < src->server_count; i++) {
		if (config_same_address(&src->servers[i], &ss)) {
			config_error(ld, config_line(item), "server '%s' is listed twice",
			             config_quote(q, sizeof q, s, strlen(s)));
			return;
		}
	}
	src->servers[src->server_count++] = ss;
}

/* Free what a source owns (its file names), for one that is not kept. */
static void config_source_clear(struct config_source *src)
{
	for (unsigned i = 0; i < src->file_count; i++)
		free(src->files[i]);
	src->file_count = 0;
}

/* Checks of one source that need its whole mapping read: what is required,
 * what belongs to its type, and that its files can be read now (so that a
 * typo shows up in "mxresolved -n", not when the lists are loaded). */
static void config_check_source(struct config_loader *ld, const struct config_source *src,
                                const unsigned *key_line, const bool *key_bad)
{
	const struct config *cfg = ld->cfg;
	bool named = key_line[CONFIG_SOURCE_NAME] != 0 && !key_bad[CONFIG_SOURCE_NAME];
	char q[160];

	if (key_line[CONFIG_SOURCE_NAME] == 0)
		config_error(ld, src->line, "a source needs 'name'");
	for (unsigned i = 0; named && i < cfg->filter_source_count; i++) {
		if (strcmp(cfg->filter_sources[i].name, src->name) == 0) {
			config_error(ld, key_line[CONFIG_SOURCE_NAME], "duplicate source name '%s'", src->name);
			break;
		}
	}
	if (key_line[CONFIG_SOURCE_TYPE] == 0) {
		if (named)
			config_error(ld, src->line, "source '%s' needs 'type'", src->name);
		else
			config_error(ld, src->line, "a source needs 'type'");
	}
	if (key_line[CONFIG_SOURCE_TYPE] == 0 || key_bad[CONFIG_SOURCE_TYPE])
		return;  /* what else is right depends on it */

	const char *what = config_source_articles[src->type];
	for (size_t i = 0; i < CONFIG_NSOURCE_KEYS; i++) {
		if (key_line[i] != 0 && (config_source_key_types[i] & (1u << src->type)) == 0)
			config_error(ld, key_line[i], "'%s' does not apply to %s", config_source_keys[i].name, what);
	}
	if (src->type == CONFIG_SOURCE_LIST) {
		/* The web API appends one bare name per line. */
		if (src->editable && src->format != CONFIG_FORMAT_DOMAINS)
			config_error(ld, key_line[CONFIG_SOURCE_EDITABLE], "source '%s': 'editable' needs 'format: domains'",
			             src->name);
		if (key_bad[CONFIG_SOURCE_FILES])
			return;
		if (src->file_count == 0)
			config_error(ld, src->line, "a list source needs at least one file in 'files'");
		for (unsigned i = 0; i < src->file_count; i++) {
			const char *path = src->files[i];
			struct stat st;
			config_quote(q, sizeof q, path, strlen(path));
			if (access(path, R_OK) != 0 || stat(path, &st) != 0)
				config_error(ld, ld->file_line[i], "file '%s': %s", q, strerror(errno));
			else if (!S_ISREG(st.st_mode))
				config_error(ld, ld->file_line[i], "file '%s': not a regular file", q);
		}
	} else if (key_line[CONFIG_SOURCE_ZONE] == 0) {
		config_error(ld, src->line, "%s needs 'zone'", what);
	}
}

/* filter: sources: a sequence of source mappings.  Null or [] means none. */
static void config_set_sources(struct config_loader *ld, const yaml_node_t *value)
{
	struct config *cfg = ld->cfg;
	cfg->filter_source_count = 0;
	if (config_is_null(value))
		return;
	if (value->type != YAML_SEQUENCE_NODE) {
		config_error(ld, config_line(value), "'sources' must be %s", config_kind_wants(CONFIG_KIND_SOURCES));
		return;
	}
	bool full = false;
	for (yaml_node_item_t *it = value->data.sequence.items.start; it < value->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
		if (item == NULL)
			continue;
		unsigned line = config_line(item);
		if (item->type != YAML_MAPPING_NODE) {
			config_error(ld, line, "filter sources must be mappings such as {name: ads, type: list, files: "
			                       "[/etc/ads.hosts]}");
			continue;
		}
		struct config_source src;
		memset(&src, 0, sizeof src);
		src.line = line;
		unsigned key_line[CONFIG_NSOURCE_KEYS] = { 0 };
		bool key_bad[CONFIG_NSOURCE_KEYS] = { false };
		int before = ld->nerr;
		config_sub_defaults(ld, config_source_keys, CONFIG_NSOURCE_KEYS, &src);
		config_load_mapping(ld, config_source_keys, CONFIG_NSOURCE_KEYS, "source", &src, item, "a filter source",
		                    key_line, key_bad);
		config_check_source(ld, &src, key_line, key_bad);
		if (ld->nerr == before && cfg->filter_source_count == CONFIG_MAX_SOURCES) {
			if (!full)
				config_error(ld, line, "'sources' has more than %d entries", CONFIG_MAX_SOURCES);
			full = true;
		}
		if (ld->nerr != before) {
			config_source_clear(&src);
			continue;
		}
		cfg->filter_sources[cfg->filter_source_count++] = src;
	}
}

/* filter: scope: a sequence of {network, sources}; the networks are checked
 * as the acl module will read them, the names later (config_resolve_scopes). */
static void config_set_scopes(struct config_loader *ld, const yaml_node_t *value)
{
	struct config *cfg = ld->cfg;
	cfg->filter_scope_count = 0;
	if (config_is_null(value))
		return;
	if (value->type != YAML_SEQUENCE_NODE) {
		config_error(ld, config_line(value), "'scope' must be %s", config_kind_wants(CONFIG_KIND_SCOPES));
		return;
	}
	struct acl *acl = acl_new(ACL_ALLOW);
	if (acl == NULL) {
		config_error(ld, config_line(value), "out of memory");
		return;
	}
	bool full = false;
	for (yaml_node_item_t *it = value->data.sequence.items.start; it < value->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
		if (item == NULL)
			continue;
		unsigned line = config_line(item);
		if (item->type != YAML_MAPPING_NODE) {
			config_error(ld, line, "scope entries must be mappings such as {network: 10.0.0.0/8, sources: [ads]}");
			continue;
		}
		struct config_scope sc = { .line = line };
		unsigned key_line[CONFIG_NSCOPE_KEYS] = { 0 };
		bool key_bad[CONFIG_NSCOPE_KEYS] = { false };
		int before = ld->nerr;
		ld->scope_names = NULL;
		config_load_mapping(ld, config_scope_keys, CONFIG_NSCOPE_KEYS, "scope", &sc, item, "a scope entry",
		                    key_line, key_bad);
		if (key_line[CONFIG_SCOPE_NETWORK] == 0)
			config_error(ld, line, "a scope entry needs 'network'");
		if (key_line[CONFIG_SCOPE_SOURCES] == 0)
			config_error(ld, line, "a scope entry needs 'sources'");
		if (ld->nerr != before)
			continue;
		if (config_add_network(ld, acl, sc.network, CONFIG_ACCESS_ALLOW, key_line[CONFIG_SCOPE_NETWORK]) != 0)
			continue;
		if (cfg->filter_scope_count == CONFIG_MAX_SCOPES) {
			if (!full)
				config_error(ld, line, "'scope' has more than %d entries", CONFIG_MAX_SCOPES);
			full = true;
			continue;
		}
		ld->scope_names_of[cfg->filter_scope_count] = ld->scope_names;
		cfg->filter_scopes[cfg->filter_scope_count++] = sc;
	}
	acl_free(acl);
}

/* Set the bit of the source named s in the scope at base. */
static CONFIG_ADD_FN(config_scope_add_source)
{
	struct config_scope *sc = base;
	const struct config *cfg = ld->cfg;
	char q[80];
	for (unsigned i = 0; i < cfg->filter_source_count; i++) {
		if (strcmp(cfg->filter_sources[i].name, s) == 0) {
			sc->sources |= UINT64_C(1) << i;
			return;
		}
	}
	/* A source rejected for another reason was reported already. */
	if (!ld->key_bad[config_key_index("filter", "sources")])
		config_error(ld, config_line(item), "unknown source '%s'", config_quote(q, sizeof q, s, strlen(s)));
}

/* Turn the source names of every scope kept into its bitmask, once the whole
 * filter section is read.  Their shape was checked when they were read. */
static void config_resolve_scopes(struct config_loader *ld)
{
	static const struct config_key *const k = &config_scope_keys[CONFIG_SCOPE_SOURCES];
	struct config *cfg = ld->cfg;
	for (unsigned i = 0; i < cfg->filter_scope_count; i++) {
		if (ld->scope_names_of[i] != NULL)
			config_each_scalar(ld, k, ld->scope_names_of[i], CONFIG_MAX_SOURCES, "names",
			                   config_scope_add_source, &cfg->filter_scopes[i]);
	}
}

/* Set key k of the struct at base from its value node.  Returns 0, or -1
 * after reporting why not (for a structure: anything wrong inside it). */
static int config_set_value(struct config_loader *ld, const struct config_key *k, void *base,
                            const yaml_node_t *value)
{
	int before = ld->nerr;
	switch (k->kind) {
	case CONFIG_KIND_LISTEN:
		config_set_listen(ld, k, value);
		break;
	case CONFIG_KIND_ACCESS_RULES:
		config_set_rules(ld, value);
		break;
	case CONFIG_KIND_NETWORKS:
		config_set_networks(ld, k, value);
		break;
	case CONFIG_KIND_PARTITIONS:
		config_set_partitions(ld, value);
		break;
	case CONFIG_KIND_TYPES:
		config_set_types(ld, base, value);
		break;
	case CONFIG_KIND_DNSBL_ZONES:
		config_set_dnsbl_zones(ld, value);
		break;
	case CONFIG_KIND_SOURCES:
		config_set_sources(ld, value);
		break;
	case CONFIG_KIND_SCOPES:
		config_set_scopes(ld, value);
		break;
	case CONFIG_KIND_FILES:
		config_each_scalar(ld, k, value, CONFIG_MAX_SOURCE_FILES, "paths", config_add_file, base);
		break;
	case CONFIG_KIND_CODES:
		config_each_scalar(ld, k, value, CONFIG_MAX_CODE_RANGES, "codes", config_add_code, base);
		break;
	case CONFIG_KIND_SERVERS:
		config_each_scalar(ld, k, value, CONFIG_MAX_SOURCE_SERVERS, "servers", config_add_server, base);
		break;
	case CONFIG_KIND_SCOPE_SOURCES:
		ld->scope_names = value;
		config_each_scalar(ld, k, value, CONFIG_MAX_SOURCES, "names", NULL, base);
		break;
	default:
		return config_set_scalar(ld, k, base, value);
	}
	return ld->nerr == before ? 0 : -1;
}

/* The key node's name, or NULL (reported) when it is not a plain string:
 * YAML allows sequences and mappings as keys, we do not. */
static const char *config_key_name(struct config_loader *ld, const yaml_node_t *key)
{
	if (key->type != YAML_SCALAR_NODE || config_scalar(key) == NULL) {
		config_error(ld, config_line(key), "keys must be plain strings");
		return NULL;
	}
	return config_scalar(key);
}

/* Read the mapping map into the struct at base, by the rows of keys
 * (nkeys of them) whose section is section.  where names the mapping in
 * messages ("section 'cache'").  key_line[i] and key_bad[i] receive where
 * row i was set and whether its value was rejected; they start zeroed. */
static void config_load_mapping(struct config_loader *ld, const struct config_key *keys, size_t nkeys,
                                const char *section, void *base, const yaml_node_t *map, const char *where,
                                unsigned *key_line, bool *key_bad)
{
	char q[80];
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *key = yaml_document_get_node(ld->doc, p->key);
		yaml_node_t *value = yaml_document_get_node(ld->doc, p->value);
		if (key == NULL || value == NULL)
			continue;
		const char *name = config_key_name(ld, key);
		if (name == NULL)
			continue;
		size_t i;
		for (i = 0; i < nkeys; i++) {
			if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
				break;
		}
		if (i == nkeys) {
			config_error(ld, config_line(key), "unknown key '%s' in %s",
			             config_quote(q, sizeof q, name, key->data.scalar.length), where);
			continue;
		}
		/* libyaml keeps both copies of a repeated key; which one wins would be
		 * a guess, so neither is taken silently. */
		if (key_line[i] != 0) {
			config_error(ld, config_line(key), "duplicate key '%s' in %s (first at line %u)", name, where,
			             key_line[i]);
			continue;
		}
		key_line[i] = config_line(key);
		key_bad[i] = config_set_value(ld, &keys[i], base, value) != 0;
	}
}

static void config_load_root(struct config_loader *ld, const yaml_node_t *root)
{
	char q[80], where[64];
	/* A file of comments only, or a lone "---", is an empty configuration. */
	if (root == NULL || config_is_null(root))
		return;
	if (root->type != YAML_MAPPING_NODE) {
		config_error(ld, config_line(root),
		             "the top level must be a mapping of sections (server:, access:, ratelimit:, "
		             "recursion:, cache:, filter:)");
		return;
	}
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *key = yaml_document_get_node(ld->doc, p->key);
		yaml_node_t *value = yaml_document_get_node(ld->doc, p->value);
		if (key == NULL || value == NULL)
			continue;
		const char *name = config_key_name(ld, key);
		if (name == NULL)
			continue;
		size_t s;
		for (s = 0; s < CONFIG_NSECTIONS; s++) {
			if (strcmp(config_sections[s], name) == 0)
				break;
		}
		if (s == CONFIG_NSECTIONS) {
			config_error(ld, config_line(key), "unknown section '%s' (expected " CONFIG_SECTION_LIST ")",
			             config_quote(q, sizeof q, name, key->data.scalar.length));
			continue;
		}
		if (ld->section_line[s] != 0) {
			config_error(ld, config_line(key), "duplicate section '%s' (first at line %u)",
			             name, ld->section_line[s]);
			continue;
		}
		ld->section_line[s] = config_line(key);
		if (config_is_null(value))
			continue;  /* "server:" with every key commented out */
		if (value->type != YAML_MAPPING_NODE) {
			config_error(ld, config_line(value), "section '%s' must be a mapping of keys", name);
			continue;
		}
		snprintf(where, sizeof where, "section '%s'", config_sections[s]);
		config_load_mapping(ld, config_keys, CONFIG_NKEYS, config_sections[s], ld->cfg, value, where,
		                    ld->key_line, ld->key_bad);
		if (strcmp(config_sections[s], "filter") == 0)
			config_resolve_scopes(ld);
	}
}

static size_t config_key_index(const char *section, const char *name)
{
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		if (strcmp(config_keys[i].section, section) == 0 && strcmp(config_keys[i].name, name) == 0)
			return i;
	}
	abort();
}

/* Check that the file named by key name is a regular file, readable now
 * unless readable is false (a file read once at start, as root, perhaps by
 * root alone), so that a typo shows up in "mxresolved -n", not as a failure
 * after start-up.  line is where it was set, or 0 for the default. */
static void config_check_file(struct config_loader *ld, const char *name, const char *path, unsigned line,
                              bool readable)
{
	struct stat st;
	if ((readable && access(path, R_OK) != 0) || stat(path, &st) != 0) {
		config_error(ld, line, "%s: %s: %s", name, path, strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode))
		config_error(ld, line, "%s: %s: not a regular file", name, path);
}

/* Whether the user (or, when group is true, the group) name exists: 1 or
 * 0, or -1 with errno when the lookup itself failed.  The reentrant calls,
 * since a reload may run while other threads look up names. */
static int config_id_exists(const char *name, bool group)
{
	size_t size = 1024;
	for (;;) {
		char *buf = malloc(size);
		if (buf == NULL)
			return -1;
		bool found;
		int rc;
		if (group) {
			struct group gr, *res = NULL;
			rc = getgrnam_r(name, &gr, buf, size, &res);
			found = res != NULL;
		} else {
			struct passwd pw, *res = NULL;
			rc = getpwnam_r(name, &pw, buf, size, &res);
			found = res != NULL;
		}
		free(buf);
		if (rc == ERANGE && size < (1u << 20)) {
			size *= 2;
			continue;
		}
		if (found)
			return 1;
		/* The errors POSIX lists for "no such name", as NSS modules return them. */
		if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
			return 0;
		errno = rc;
		return -1;
	}
}

/* Check that the user or group name set by key (in section server) exists
 * now: the daemon needs it only after binding, too late for a clear error. */
static void config_check_id(struct config_loader *ld, const char *key, const char *name, bool group)
{
	size_t k = config_key_index("server", key);
	char q[80];
	if (name == NULL || ld->key_bad[k])
		return;
	const char *what = group ? "group" : "user";
	int r = config_id_exists(name, group);
	config_quote(q, sizeof q, name, strlen(name));
	if (r == 0)
		config_error(ld, ld->key_line[k], "%s '%s' does not exist", what, q);
	else if (r < 0)
		config_error(ld, ld->key_line[k], "cannot look up %s '%s': %s", what, q, strerror(errno));
}

/* Checks that need the whole file read: defaults count as much as set values.
 * A value already rejected is not checked again, lest its default be blamed. */
/* web: the token guards cache flushes and list edits, so a guessable one is
 * refused; TLS needs both halves, readable now rather than at start-up. */
static void config_check_web(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;
	size_t token = config_key_index("web", "token");
	size_t cert = config_key_index("web", "tls-cert");
	size_t key = config_key_index("web", "tls-key");
	size_t qlog = config_key_index("web", "query-log-size");

	if (cfg->web_token != NULL && !ld->key_bad[token]) {
		size_t n = strlen(cfg->web_token);
		bool printable = true;
		for (size_t i = 0; i < n; i++)
			printable = printable && cfg->web_token[i] > ' ' && cfg->web_token[i] < 0x7f;
		if (n < 16)
			config_error(ld, ld->key_line[token], "'token' must be at least 16 characters long");
		else if (!printable)
			config_error(ld, ld->key_line[token], "'token' must be printable ASCII without spaces");
	}
	if ((cfg->web_tls_cert == NULL) != (cfg->web_tls_key == NULL)) {
		unsigned line = ld->key_line[cert] != 0 ? ld->key_line[cert] : ld->key_line[key];
		config_error(ld, line, "'tls-cert' and 'tls-key' go together: set both or neither");
	} else if (cfg->web_tls_cert != NULL) {
		/* Only existence: the files are read at start, as root, and a
		 * key readable by root alone must not fail a later reload. */
		if (!ld->key_bad[cert])
			config_check_file(ld, "tls-cert", cfg->web_tls_cert, ld->key_line[cert], false);
		if (!ld->key_bad[key])
			config_check_file(ld, "tls-key", cfg->web_tls_key, ld->key_line[key], false);
	}
	/* The ring is indexed with a mask. */
	unsigned n = cfg->web_query_log_size;
	if (n != 0 && (n & (n - 1)) != 0 && !ld->key_bad[qlog])
		config_error(ld, ld->key_line[qlog], "'query-log-size' must be 0 or a power of two, such as 4096");
}

static void config_finish(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;
	size_t hints = config_key_index("recursion", "root-hints");
	size_t anchor = config_key_index("recursion", "trust-anchor");
	size_t dnssec = config_key_index("recursion", "dnssec");
	size_t ctl = config_key_index("server", "control-socket");
	size_t parts = config_key_index("cache", "partitions");
	size_t size = config_key_index("cache", "size");
	char *old;

	if (!ld->key_bad[hints])
		config_check_file(ld, "root-hints", cfg->root_hints, ld->key_line[hints], true);
	if (cfg->dnssec && !ld->key_bad[anchor] && !ld->key_bad[dnssec]) {
		/* Point at the key that asks for validation when the path is the default. */
		unsigned line = ld->key_line[anchor] != 0 ? ld->key_line[anchor] : ld->key_line[dnssec];
		config_check_file(ld, "trust-anchor", cfg->trust_anchor, line, true);
	}
	if (!cfg->dnssec) {
		old = cfg->trust_anchor;
		cfg->trust_anchor = NULL;
		free(old);
	}

	config_check_web(ld);

	config_check_id(ld, "user", cfg->user, false);
	config_check_id(ld, "control-group", cfg->control_group, true);
	/* bind() would fail on a longer path, after the privileges are gone. */
	if (cfg->control_socket != NULL && !ld->key_bad[ctl] &&
	    strlen(cfg->control_socket) >= sizeof ((struct sockaddr_un *)0)->sun_path)
		config_error(ld, ld->key_line[ctl], "control-socket: the path is longer than %zu bytes",
		             sizeof ((struct sockaddr_un *)0)->sun_path - 1);

	/* Quotas are carved out of cache.size; the partitions without one share the rest. */
	if (!ld->key_bad[parts] && !ld->key_bad[size]) {
		uint64_t sum = 0;
		for (size_t p = 0; p < CONFIG_PARTITIONS; p++)
			sum += cfg->partitions[p].quota;  /* at most 3T: no overflow */
		if (sum > cfg->cache_size)
			config_error(ld, ld->key_line[parts],
			             "partition quotas (%" PRIu64 " bytes) exceed cache.size (%" PRIu64 " bytes)", sum,
			             cfg->cache_size);
	}

	/* The answers of every DNSBL and RHSBL source go to the dnsbl partition,
	 * like those of the zones listed there. */
	bool full = false;
	for (unsigned i = 0; i < cfg->filter_source_count; i++) {
		const struct config_source *src = &cfg->filter_sources[i];
		if (src->type == CONFIG_SOURCE_LIST)
			continue;
		unsigned z;
		for (z = 0; z < cfg->dnsbl_zone_count; z++) {
			if (strcmp(cfg->dnsbl_zones[z].name, src->zone) == 0)
				break;
		}
		if (z < cfg->dnsbl_zone_count)
			continue;
		if (cfg->dnsbl_zone_count == CONFIG_MAX_DNSBL_ZONES) {
			if (!full)
				config_error(ld, src->line,
				             "source '%s': 'dnsbl-zones' and the zones of the filter sources make more than "
				             "%d zones", src->name, CONFIG_MAX_DNSBL_ZONES);
			full = true;
			continue;
		}
		struct config_dnsbl_zone *dz = &cfg->dnsbl_zones[cfg->dnsbl_zone_count++];
		memset(dz, 0, sizeof *dz);
		memcpy(dz->name, src->zone, sizeof dz->name);
	}

	if (cfg->workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->workers = n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
	}
}

/* Fill cfg with the built-in defaults. */
static void config_defaults(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].def != NULL)
			config_set_text(ld, &config_keys[i], cfg, config_keys[i].def, 0);
	}
	for (size_t i = 0; i < sizeof config_default_listen / sizeof config_default_listen[0]; i++) {
		if (config_parse_address(config_default_listen[i], &cfg->listen[i]) != NULL)
			abort();
		cfg->listen_count++;
	}
	for (size_t i = 0; i < sizeof config_default_networks / sizeof config_default_networks[0]; i++) {
		struct config_access_rule r = { .action = CONFIG_ACCESS_ALLOW, .line = 0 };
		strcpy(r.network, config_default_networks[i]);
		cfg->access_rules[cfg->access_rule_count++] = r;
		cfg->ratelimit_exempt[cfg->ratelimit_exempt_count++] = r;
		cfg->web_allow[cfg->web_allow_count++] = r;
	}
	for (size_t i = 0; i < sizeof config_default_web_listen / sizeof config_default_web_listen[0]; i++) {
		if (config_parse_address(config_default_web_listen[i], &cfg->web_listen[i]) != NULL)
			abort();
		cfg->web_listen_count++;
	}
	for (size_t p = 0; p < CONFIG_PARTITIONS; p++)
		config_sub_defaults(ld, config_partition_keys, CONFIG_NPARTITION_KEYS, &cfg->partitions[p]);
}

/* The 1-based line holding byte offset off of f, found by counting newlines
 * again, since libyaml's reader tracks bytes but not lines. */
static unsigned config_offset_line(FILE *f, size_t off)
{
	unsigned line = 1;
	int c;
	if (fseek(f, 0, SEEK_SET) != 0)
		return 0;
	for (size_t i = 0; i < off && (c = getc(f)) != EOF; i++)
		line += c == '\n';
	return line;
}

/* Report libyaml's error: it stops at the first one, so this is the only one. */
static void config_yaml_error(struct config_loader *ld, const yaml_parser_t *parser, FILE *f)
{
	char q[160];
	const char *problem = parser->problem ? parser->problem : "unknown error";
	switch (parser->error) {
	case YAML_MEMORY_ERROR:
		config_error(ld, 0, "out of memory while reading the file");
		break;
	case YAML_READER_ERROR:
		config_error(ld, config_offset_line(f, parser->problem_offset), "%s at byte %zu", problem,
		             parser->problem_offset);
		break;
	default:
		if (parser->context != NULL) {
			config_error(ld, (unsigned)parser->problem_mark.line + 1, "%s (%s started at line %zu)",
			             config_quote(q, sizeof q, problem, strlen(problem)), parser->context,
			             parser->context_mark.line + 1);
		} else {
			config_error(ld, (unsigned)parser->problem_mark.line + 1, "%s",
			             config_quote(q, sizeof q, problem, strlen(problem)));
		}
		break;
	}
}

int config_load(const char *path, struct config **out, FILE *errs)
{
	struct config_loader ld = { .path = path, .errs = errs };
	yaml_parser_t parser;
	yaml_document_t doc;
	bool parser_ok = false, doc_ok = false;
	FILE *f = NULL;

	*out = NULL;
	ld.cfg = calloc(1, sizeof *ld.cfg);
	if (ld.cfg == NULL || (ld.cfg->path = strdup(path)) == NULL) {
		config_error(&ld, 0, "out of memory");
		goto fail;
	}
	config_defaults(&ld);
	if (ld.nerr > 0)
		goto fail;

	f = fopen(path, "rb");
	if (f == NULL) {
		config_error(&ld, 0, "cannot open: %s", strerror(errno));
		goto fail;
	}
	if (!yaml_parser_initialize(&parser)) {
		config_error(&ld, 0, "out of memory");
		goto fail;
	}
	parser_ok = true;
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		config_yaml_error(&ld, &parser, f);
		goto fail;
	}
	doc_ok = true;
	ld.doc = &doc;
	config_load_root(&ld, yaml_document_get_root_node(&doc));
	yaml_document_delete(&doc);
	doc_ok = false;

	/* A second document ("---" again) would be ignored by a single load:
	 * say so rather than drop half of someone's configuration. */
	if (!yaml_parser_load(&parser, &doc)) {
		config_yaml_error(&ld, &parser, f);
		goto fail;
	}
	doc_ok = true;
	yaml_node_t *extra = yaml_document_get_root_node(&doc);
	if (extra != NULL && !config_is_null(extra))
		config_error(&ld, (unsigned)doc.start_mark.line + 1, "only one YAML document is allowed");

	config_finish(&ld);
	if (ld.nerr > 0)
		goto fail;

	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
	*out = ld.cfg;
	return 0;

fail:
	if (doc_ok)
		yaml_document_delete(&doc);
	if (parser_ok)
		yaml_parser_delete(&parser);
	if (f != NULL)
		fclose(f);
	config_free(ld.cfg);
	return ld.nerr;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->user);
	free(cfg->control_socket);
	free(cfg->control_group);
	free(cfg->root_hints);
	free(cfg->trust_anchor);
	free(cfg->cache_dir);
	free(cfg->web_token);
	free(cfg->web_tls_cert);
	free(cfg->web_tls_key);
	for (unsigned i = 0; i < cfg->filter_source_count; i++)
		config_source_clear(&cfg->filter_sources[i]);
	free(cfg);
}
