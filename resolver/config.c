/* config.c -- the YAML configuration file, read into a validated struct config */
#include "config.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/*
 * The schema is one table: section, key, kind, where the value goes, and its
 * lower bound, upper bound and default written as they would be in the file.
 * Writing bounds as text keeps the error messages ("between 100ms and 60s")
 * and the checks from drifting apart: the bounds are parsed with the same
 * parser as the user's values.
 */

enum config_kind {
	CONFIG_KIND_LISTEN,
	CONFIG_KIND_NUMBER,     /* unsigned */
	CONFIG_KIND_MSEC,       /* duration stored in ms, unsigned */
	CONFIG_KIND_SEC,        /* duration stored in whole seconds, uint32_t */
	CONFIG_KIND_SIZE,       /* bytes, uint64_t */
	CONFIG_KIND_BOOL,
	CONFIG_KIND_STRING,     /* non-empty, char * */
	CONFIG_KIND_LOG_LEVEL,  /* int holding an enum log_level */
};

struct config_key {
	const char *section;
	const char *name;
	enum config_kind kind;
	size_t offset;
	const char *min, *max, *def;
};

#define CONFIG_OFF(field) offsetof(struct config, field)

static const char *const config_sections[] = { "server", "recursion", "cache" };
#define CONFIG_NSECTIONS (sizeof config_sections / sizeof config_sections[0])

static const struct config_key config_keys[] = {
	{ "server", "listen", CONFIG_KIND_LISTEN, 0, NULL, NULL, NULL },
	{ "server", "workers", CONFIG_KIND_NUMBER, CONFIG_OFF(workers), "0", "256", "0" },
	{ "server", "log-level", CONFIG_KIND_LOG_LEVEL, CONFIG_OFF(log_level), NULL, NULL, "info" },
	{ "server", "tcp-idle-timeout", CONFIG_KIND_MSEC, CONFIG_OFF(tcp_idle_timeout_ms), "100ms", "10m", "10s" },
	{ "server", "tcp-max-connections", CONFIG_KIND_NUMBER, CONFIG_OFF(tcp_max_connections), "1", "65536", "256" },

	{ "recursion", "root-hints", CONFIG_KIND_STRING, CONFIG_OFF(root_hints), NULL, NULL, "/usr/share/dns/root.hints" },
	{ "recursion", "trust-anchor", CONFIG_KIND_STRING, CONFIG_OFF(trust_anchor), NULL, NULL, "/usr/share/dns/root.key" },
	{ "recursion", "dnssec", CONFIG_KIND_BOOL, CONFIG_OFF(dnssec), NULL, NULL, "true" },
	{ "recursion", "query-loopback", CONFIG_KIND_BOOL, CONFIG_OFF(query_loopback), NULL, NULL, "false" },
	{ "recursion", "client-timeout", CONFIG_KIND_MSEC, CONFIG_OFF(client_timeout_ms), "100ms", "60s", "5s" },
	{ "recursion", "max-pending", CONFIG_KIND_NUMBER, CONFIG_OFF(max_pending), "1", "1000000", "10000" },
	{ "recursion", "outgoing-range", CONFIG_KIND_NUMBER, CONFIG_OFF(outgoing_range), "16", "65536", "4096" },
	{ "recursion", "upstream-cache-size", CONFIG_KIND_SIZE, CONFIG_OFF(upstream_cache_bytes), "1M", "4G", "32M" },

	{ "cache", "directory", CONFIG_KIND_STRING, CONFIG_OFF(cache_dir), NULL, NULL, "./var/cache" },
	{ "cache", "size", CONFIG_KIND_SIZE, CONFIG_OFF(cache_size), "1M", "1T", "256M" },
	{ "cache", "max-ttl", CONFIG_KIND_SEC, CONFIG_OFF(max_ttl), "1s", "7d", "1d" },
	{ "cache", "negative-max-ttl", CONFIG_KIND_SEC, CONFIG_OFF(negative_max_ttl), "0", "1d", "1h" },
	{ "cache", "servfail-ttl", CONFIG_KIND_SEC, CONFIG_OFF(servfail_ttl), "0", "30s", "5s" },
	{ "cache", "stale-window", CONFIG_KIND_SEC, CONFIG_OFF(stale_window), "0", "30d", "1d" },
	{ "cache", "sync-interval", CONFIG_KIND_MSEC, CONFIG_OFF(sync_interval_ms), "0", "10m", "1s" },
};
#define CONFIG_NKEYS (sizeof config_keys / sizeof config_keys[0])

static const char *const config_default_listen[] = { "127.0.0.1:53", "[::1]:53" };

/* Names of enum log_level values, in enum order. */
static const char *const config_log_levels[] = { "error", "warning", "info", "debug" };
_Static_assert(sizeof config_log_levels / sizeof config_log_levels[0] == LOG_LEVEL_DEBUG + 1,
               "a name for every log level");

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
	bool key_bad[CONFIG_NKEYS];               /* its value was rejected (and reported) */
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

/* Add one listen entry; node is a scalar. */
static void config_add_listen(struct config_loader *ld, const yaml_node_t *node)
{
	struct config *cfg = ld->cfg;
	char q[80];
	const char *s = config_scalar(node);
	if (s == NULL || config_is_null(node)) {
		config_error(ld, config_line(node), "'listen' entries must be addresses such as \"127.0.0.1:53\"");
		return;
	}
	if (cfg->listen_count == CONFIG_MAX_LISTEN) {
		config_error(ld, config_line(node), "'listen' has more than %d addresses", CONFIG_MAX_LISTEN);
		cfg->listen_count++;  /* so that the error is reported once */
		return;
	}
	if (cfg->listen_count > CONFIG_MAX_LISTEN)
		return;
	struct sockaddr_storage ss;
	const char *why = config_parse_address(s, &ss);
	if (why != NULL) {
		config_error(ld, config_line(node), "listen: '%s': %s",
		             config_quote(q, sizeof q, s, node->data.scalar.length), why);
		return;
	}
	/* A second bind to the same address would fail at start-up, far from here. */
	for (unsigned i = 0; i < cfg->listen_count; i++) {
		if (config_same_address(&cfg->listen[i], &ss)) {
			config_error(ld, config_line(node), "listen: '%s' is listed twice",
			             config_quote(q, sizeof q, s, node->data.scalar.length));
			return;
		}
	}
	cfg->listen[cfg->listen_count++] = ss;
}

static void config_set_listen(struct config_loader *ld, const yaml_node_t *value)
{
	ld->cfg->listen_count = 0;
	if (value->type == YAML_SCALAR_NODE && !config_is_null(value)) {
		config_add_listen(ld, value);
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
			config_add_listen(ld, item);
		}
		if (value->data.sequence.items.top == value->data.sequence.items.start)
			config_error(ld, config_line(value), "'listen' needs at least one address");
	} else {
		config_error(ld, config_line(value), "'listen' must be an address or a list of addresses");
	}
	if (ld->cfg->listen_count > CONFIG_MAX_LISTEN)
		ld->cfg->listen_count = CONFIG_MAX_LISTEN;
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
		return "a string";
	case CONFIG_KIND_LOG_LEVEL:
		return "one of error, warning, info, debug";
	case CONFIG_KIND_LISTEN:
		break;
	}
	return "an address or a list of addresses";
}

/* Store text s as key k's value.  line is 0 for the built-in defaults, which
 * are known good.  Returns 0, or -1 after reporting why not. */
static int config_set_text(struct config_loader *ld, const struct config_key *k, const char *s,
                           unsigned line)
{
	char *field = (char *)ld->cfg + k->offset;
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
		for (int i = 0; i < (int)(sizeof config_log_levels / sizeof config_log_levels[0]); i++) {
			if (strcmp(s, config_log_levels[i]) == 0) {
				memcpy(field, &i, sizeof i);
				return 0;
			}
		}
		config_error(ld, line, "'%s' must be one of error, warning, info, debug", k->name);
		return -1;
	case CONFIG_KIND_STRING: {
		if (*s == '\0') {
			config_error(ld, line, "'%s' must not be empty", k->name);
			return -1;
		}
		char *copy = strdup(s);
		if (copy == NULL) {
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
		break;
	}
	abort();
}

/* Set key k from its value node.  Returns 0, or -1 after reporting why not. */
static int config_set_value(struct config_loader *ld, const struct config_key *k,
                            const yaml_node_t *value)
{
	if (k->kind == CONFIG_KIND_LISTEN) {
		int before = ld->nerr;
		config_set_listen(ld, value);
		return ld->nerr == before ? 0 : -1;
	}
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
	return config_set_text(ld, k, s, line);
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

static void config_load_section(struct config_loader *ld, const char *section,
                                const yaml_node_t *map)
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
		for (i = 0; i < CONFIG_NKEYS; i++) {
			if (strcmp(config_keys[i].section, section) == 0 && strcmp(config_keys[i].name, name) == 0)
				break;
		}
		if (i == CONFIG_NKEYS) {
			config_error(ld, config_line(key), "unknown key '%s' in section '%s'",
			             config_quote(q, sizeof q, name, key->data.scalar.length), section);
			continue;
		}
		/* libyaml keeps both copies of a repeated key; which one wins would be
		 * a guess, so neither is taken silently. */
		if (ld->key_line[i] != 0) {
			config_error(ld, config_line(key), "duplicate key '%s' in section '%s' (first at line %u)",
			             name, section, ld->key_line[i]);
			continue;
		}
		ld->key_line[i] = config_line(key);
		ld->key_bad[i] = config_set_value(ld, &config_keys[i], value) != 0;
	}
}

static void config_load_root(struct config_loader *ld, const yaml_node_t *root)
{
	char q[80];
	/* A file of comments only, or a lone "---", is an empty configuration. */
	if (root == NULL || config_is_null(root))
		return;
	if (root->type != YAML_MAPPING_NODE) {
		config_error(ld, config_line(root),
		             "the top level must be a mapping of sections (server:, recursion:, cache:)");
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
			config_error(ld, config_line(key), "unknown section '%s' (expected server, recursion or cache)",
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
		config_load_section(ld, config_sections[s], value);
	}
}

static size_t config_key_index(const char *name)
{
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		if (strcmp(config_keys[i].name, name) == 0)
			return i;
	}
	abort();
}

/* Check that the file named by key name is a readable regular file now, so
 * that a typo shows up in "mxresolved -n", not as a failure after start-up.
 * line is where it was set, or 0 for the default. */
static void config_check_file(struct config_loader *ld, const char *name, const char *path,
                              unsigned line)
{
	struct stat st;
	if (access(path, R_OK) != 0 || stat(path, &st) != 0) {
		config_error(ld, line, "%s: %s: %s", name, path, strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode))
		config_error(ld, line, "%s: %s: not a regular file", name, path);
}

/* Checks that need the whole file read: defaults count as much as set values.
 * A value already rejected is not checked again, lest its default be blamed. */
static void config_finish(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;
	size_t hints = config_key_index("root-hints");
	size_t anchor = config_key_index("trust-anchor");
	size_t dnssec = config_key_index("dnssec");
	char *old;

	if (!ld->key_bad[hints])
		config_check_file(ld, "root-hints", cfg->root_hints, ld->key_line[hints]);
	if (cfg->dnssec && !ld->key_bad[anchor] && !ld->key_bad[dnssec]) {
		/* Point at the key that asks for validation when the path is the default. */
		unsigned line = ld->key_line[anchor] != 0 ? ld->key_line[anchor] : ld->key_line[dnssec];
		config_check_file(ld, "trust-anchor", cfg->trust_anchor, line);
	}
	if (!cfg->dnssec) {
		old = cfg->trust_anchor;
		cfg->trust_anchor = NULL;
		free(old);
	}

	if (cfg->workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->workers = n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
	}
}

/* Fill cfg with the built-in defaults. */
static void config_defaults(struct config_loader *ld)
{
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].kind != CONFIG_KIND_LISTEN)
			config_set_text(ld, &config_keys[i], config_keys[i].def, 0);
	}
	for (size_t i = 0; i < sizeof config_default_listen / sizeof config_default_listen[0]; i++) {
		if (config_parse_address(config_default_listen[i], &ld->cfg->listen[i]) != NULL)
			abort();
		ld->cfg->listen_count++;
	}
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
	free(cfg->root_hints);
	free(cfg->trust_anchor);
	free(cfg->cache_dir);
	free(cfg);
}
