/* test_config.c -- unit tests for the YAML configuration loader */
#include "config.h"
#include "log.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The built-in root-hints and trust-anchor paths come from Debian's
 * dns-root-data; every load checks them, so the suite needs them. */
#define TEST_ROOT_HINTS "/usr/share/dns/root.hints"
#define TEST_ROOT_KEY "/usr/share/dns/root.key"

/* One config_load of some YAML text: the file it was written to, what
 * config_load returned, and everything it printed. */
struct load {
	char path[64];
	int rc;
	struct config *cfg;
	char *errs;
};

/* Write yaml to a fresh file in /tmp and load it, capturing the errors. */
static void load_yaml(const char *yaml, struct load *l)
{
	memset(l, 0, sizeof *l);
	strcpy(l->path, "/tmp/test_config_XXXXXX");
	int fd = mkstemp(l->path);
	CU_ASSERT_FATAL(fd >= 0);
	size_t len = strlen(yaml);
	CU_ASSERT_FATAL(write(fd, yaml, len) == (ssize_t)len);
	close(fd);

	size_t errs_len = 0;
	FILE *errs = open_memstream(&l->errs, &errs_len);
	CU_ASSERT_FATAL(errs != NULL);
	l->cfg = (struct config *)0x1;  /* config_load must overwrite it */
	l->rc = config_load(l->path, &l->cfg, errs);
	fclose(errs);
	unlink(l->path);
}

static void load_done(struct load *l)
{
	config_free(l->cfg);
	free(l->errs);
}

/* Load yaml and expect it to be rejected with exactly one error, whose whole
 * text is "FILE:line: msg". */
static void expect_error(const char *yaml, unsigned line, const char *msg)
{
	struct load l;
	load_yaml(yaml, &l);
	char want[512];
	snprintf(want, sizeof want, "%s:%u: %s\n", l.path, line, msg);
	CU_ASSERT_EQUAL(l.rc, 1);
	CU_ASSERT_PTR_NULL(l.cfg);
	CU_ASSERT_STRING_EQUAL(l.errs, want);
	if (strcmp(l.errs, want) != 0)
		fprintf(stderr, "\n  want: %s  got:  %s", want, l.errs);
	load_done(&l);
}

/* Load yaml and expect it to be rejected with one error on line that
 * contains text (for libyaml's messages, whose wording is its own). */
static void expect_error_containing(const char *yaml, unsigned line, const char *text)
{
	struct load l;
	load_yaml(yaml, &l);
	char prefix[128];
	snprintf(prefix, sizeof prefix, "%s:%u: ", l.path, line);
	CU_ASSERT_EQUAL(l.rc, 1);
	CU_ASSERT_PTR_NULL(l.cfg);
	CU_ASSERT_EQUAL(strncmp(l.errs, prefix, strlen(prefix)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(l.errs, text));
	CU_ASSERT_EQUAL(strchr(l.errs, '\n'), l.errs + strlen(l.errs) - 1);
	if (strncmp(l.errs, prefix, strlen(prefix)) != 0 || strstr(l.errs, text) == NULL)
		fprintf(stderr, "\n  want: %s...%s\n  got:  %s", prefix, text, l.errs);
	load_done(&l);
}

static void check_v4(const struct sockaddr_storage *ss, const char *addr, unsigned port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	char buf[INET_ADDRSTRLEN];
	CU_ASSERT_EQUAL_FATAL(ss->ss_family, AF_INET);
	CU_ASSERT_PTR_NOT_NULL_FATAL(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf));
	CU_ASSERT_STRING_EQUAL(buf, addr);
	CU_ASSERT_EQUAL(ntohs(sin->sin_port), port);
}

static void check_v6(const struct sockaddr_storage *ss, const char *addr, unsigned port)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	char buf[INET6_ADDRSTRLEN];
	CU_ASSERT_EQUAL_FATAL(ss->ss_family, AF_INET6);
	CU_ASSERT_PTR_NOT_NULL_FATAL(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf));
	CU_ASSERT_STRING_EQUAL(buf, addr);
	CU_ASSERT_EQUAL(ntohs(sin6->sin6_port), port);
}

static unsigned test_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
}

/* Every default but listen and directory, as the schema promises them. */
static void check_most_defaults(const struct config *cfg)
{
	CU_ASSERT_EQUAL(cfg->workers, test_cores());
	CU_ASSERT_EQUAL(cfg->log_level, LOG_LEVEL_INFO);
	CU_ASSERT_EQUAL(cfg->tcp_idle_timeout_ms, 10000);
	CU_ASSERT_EQUAL(cfg->tcp_max_connections, 256);
	CU_ASSERT_STRING_EQUAL(cfg->root_hints, TEST_ROOT_HINTS);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg->trust_anchor);
	CU_ASSERT_STRING_EQUAL(cfg->trust_anchor, TEST_ROOT_KEY);
	CU_ASSERT_TRUE(cfg->dnssec);
	CU_ASSERT_FALSE(cfg->query_loopback);
	CU_ASSERT_EQUAL(cfg->client_timeout_ms, 5000);
	CU_ASSERT_EQUAL(cfg->max_pending, 10000);
	CU_ASSERT_EQUAL(cfg->outgoing_range, 4096);
	CU_ASSERT_EQUAL(cfg->upstream_cache_bytes, 24ull << 20);
	CU_ASSERT_EQUAL(cfg->resolver_threads, 2);
	CU_ASSERT_EQUAL(cfg->cache_size, 256ull << 20);
	CU_ASSERT_EQUAL(cfg->hot_size, 8ull << 20);
	CU_ASSERT_EQUAL(cfg->max_ttl, 86400);
	CU_ASSERT_EQUAL(cfg->negative_max_ttl, 3600);
	CU_ASSERT_EQUAL(cfg->servfail_ttl, 5);
	CU_ASSERT_EQUAL(cfg->stale_window, 86400);
	CU_ASSERT_EQUAL(cfg->sync_interval_ms, 1000);

	CU_ASSERT_EQUAL(cfg->tcp_max_per_client, 16);
	CU_ASSERT_PTR_NULL(cfg->user);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg->control_socket);
	CU_ASSERT_STRING_EQUAL(cfg->control_socket, "./var/mxresolved.ctl");
	CU_ASSERT_PTR_NULL(cfg->control_group);

	CU_ASSERT_EQUAL(cfg->access_default, CONFIG_ACCESS_REFUSE);
	CU_ASSERT_EQUAL_FATAL(cfg->access_rule_count, 2);
	CU_ASSERT_STRING_EQUAL(cfg->access_rules[0].network, "127.0.0.0/8");
	CU_ASSERT_EQUAL(cfg->access_rules[0].action, CONFIG_ACCESS_ALLOW);
	CU_ASSERT_STRING_EQUAL(cfg->access_rules[1].network, "::1/128");
	CU_ASSERT_EQUAL(cfg->access_rules[1].action, CONFIG_ACCESS_ALLOW);

	CU_ASSERT_EQUAL(cfg->ratelimit_qps, 200);
	CU_ASSERT_EQUAL(cfg->ratelimit_burst, 0);
	CU_ASSERT_EQUAL(cfg->ratelimit_slip, 2);
	CU_ASSERT_EQUAL(cfg->ratelimit_v4_prefix, 24);
	CU_ASSERT_EQUAL(cfg->ratelimit_v6_prefix, 56);
	CU_ASSERT_EQUAL_FATAL(cfg->ratelimit_exempt_count, 2);
	CU_ASSERT_STRING_EQUAL(cfg->ratelimit_exempt[0].network, "127.0.0.0/8");
	CU_ASSERT_STRING_EQUAL(cfg->ratelimit_exempt[1].network, "::1/128");

	CU_ASSERT_EQUAL(cfg->max_pending_per_client, 200);
	CU_ASSERT_EQUAL(cfg->max_waiters, 1000);

	CU_ASSERT_TRUE(cfg->serve_stale);
	CU_ASSERT_TRUE(cfg->serve_stale_nxdomain);
	CU_ASSERT_EQUAL(cfg->stale_answer_after_ms, 1800);
	CU_ASSERT_EQUAL(cfg->stale_ttl, 30);
	CU_ASSERT_TRUE(cfg->prefetch);
	CU_ASSERT_EQUAL(cfg->prefetch_percent, 10);
	CU_ASSERT_EQUAL(cfg->prefetch_max, 100);
	for (int p = 0; p < CONFIG_PARTITIONS; p++) {
		const struct config_partition *part = &cfg->partitions[p];
		CU_ASSERT_EQUAL(part->quota, 0);
		CU_ASSERT_EQUAL(part->ttl.min_ttl, 0);
		CU_ASSERT_EQUAL(part->ttl.max_ttl, 0);
		CU_ASSERT_EQUAL(part->ttl.negative_min_ttl, 0);
		CU_ASSERT_EQUAL(part->ttl.negative_max_ttl, 0);
		CU_ASSERT_EQUAL(part->type_count, 0);
	}
	CU_ASSERT_EQUAL(cfg->dnsbl_zone_count, 0);

	/* No filter section: no filtering. */
	CU_ASSERT_EQUAL(cfg->filter_source_count, 0);
	CU_ASSERT_EQUAL(cfg->filter_scope_count, 0);
	check_v4(&cfg->sinkhole_a, "0.0.0.0", 0);
	check_v6(&cfg->sinkhole_aaaa, "::", 0);
	CU_ASSERT_EQUAL(cfg->filter_ttl, 300);
	CU_ASSERT_EQUAL(cfg->health_interval_ms, 300000);
}

/* Every default. */
static void check_defaults(const struct config *cfg)
{
	CU_ASSERT_EQUAL_FATAL(cfg->listen_count, 2);
	check_v4(&cfg->listen[0], "127.0.0.1", 53);
	check_v6(&cfg->listen[1], "::1", 53);
	CU_ASSERT_STRING_EQUAL(cfg->cache_dir, "./var/cache");
	check_most_defaults(cfg);
	/* Built-in rules were written nowhere. */
	CU_ASSERT_EQUAL(cfg->access_rules[0].line, 0);
	CU_ASSERT_EQUAL(cfg->access_rules[1].line, 0);
	CU_ASSERT_EQUAL(cfg->ratelimit_exempt[0].line, 0);
}

/* ---- files that load ---- */

static void test_config_loads_every_field(void)
{
	/* Point root-hints and trust-anchor at files of our own, to see them used. */
	char hints[] = "/tmp/test_config_hints_XXXXXX", key[] = "/tmp/test_config_key_XXXXXX";
	int fd1 = mkstemp(hints), fd2 = mkstemp(key);
	CU_ASSERT_FATAL(fd1 >= 0 && fd2 >= 0);
	close(fd1);
	close(fd2);
	/* user and control-group must exist: take the ones running the test. */
	const struct passwd *pw = getpwuid(getuid());
	const struct group *gr = getgrgid(getgid());
	CU_ASSERT_PTR_NOT_NULL_FATAL(pw);
	CU_ASSERT_PTR_NOT_NULL_FATAL(gr);
	char user[64], group[64];
	snprintf(user, sizeof user, "%s", pw->pw_name);
	snprintf(group, sizeof group, "%s", gr->gr_name);
	char yaml[4096];
	snprintf(yaml, sizeof yaml,
	         "# every key, none at its default\n"
	         "server:\n"
	         "  listen: [\"127.0.0.1:5353\", \"[::1]:5354\", \"0.0.0.0:53\"]\n"
	         "  workers: 3\n"
	         "  log-level: debug\n"
	         "  tcp-idle-timeout: 1500ms\n"
	         "  tcp-max-connections: 1000\n"
	         "  tcp-max-per-client: 4\n"
	         "  user: %s\n"
	         "  control-socket: /run/mxresolved/ctl\n"
	         "  control-group: \"%s\"\n"
	         "access:\n"
	         "  default: drop\n"
	         "  rules:\n"
	         "    - {network: 10.0.0.0/8, action: allow}\n"
	         "    - network: \"2001:db8::/32\"\n"
	         "      action: refuse\n"
	         "    - {action: drop, network: 192.0.2.1}\n"
	         "ratelimit:\n"
	         "  qps: 50\n"
	         "  burst: 100\n"
	         "  slip: 0\n"
	         "  ipv4-prefix: 32\n"
	         "  ipv6-prefix: 64\n"
	         "  exempt: [192.0.2.0/24, \"2001:db8:1::/48\"]\n"
	         "recursion:\n"
	         "  max-pending-per-client: 20\n"
	         "  max-waiters: 50\n"
	         "  root-hints: %s\n"
	         "  trust-anchor: \"%s\"\n"
	         "  dnssec: yes\n"
	         "  query-loopback: on\n"
	         "  client-timeout: 2s\n"
	         "  max-pending: 500\n"
	         "  outgoing-range: 16\n"
	         "  upstream-cache-size: 64MiB\n"
	         "  resolver-threads: 5\n"
	         "cache:\n"
	         "  directory: /var/lib/mxresolved\n"
	         "  size: 2G\n"
	         "  max-ttl: 2h\n"
	         "  negative-max-ttl: 15m\n"
	         "  servfail-ttl: 0\n"
	         "  stale-window: 3d\n"
	         "  sync-interval: 250ms\n"
	         "  hot-size: 0\n"
	         "  serve-stale: false\n"
	         "  serve-stale-nxdomain: no\n"
	         "  stale-answer-after: 500ms\n"
	         "  stale-ttl: 1m\n"
	         "  prefetch: off\n"
	         "  prefetch-percent: 25\n"
	         "  prefetch-max: 7\n"
	         "  partitions:\n"
	         "    general:\n"
	         "      quota: 1G\n"
	         "    mail:\n"
	         "      types:\n"                       /* before the keys they inherit */
	         "        MX: {min-ttl: 5m}\n"
	         "        txt:\n"
	         "          max-ttl: 2h\n"
	         "          negative-max-ttl: 0\n"
	         "        TYPE99: {}\n"
	         "      quota: 512M\n"
	         "      min-ttl: 1m\n"
	         "      max-ttl: 1d\n"
	         "      negative-min-ttl: 30s\n"
	         "      negative-max-ttl: 10m\n"
	         "    dnsbl:\n"
	         "      quota: 256M\n"
	         "      negative-min-ttl: 1m\n"
	         "      types:\n"
	         "        A: {min-ttl: 0, max-ttl: 15m}\n"
	         "  dnsbl-zones:\n"
	         "    - zen.spamhaus.org\n"
	         "    - {zone: \"DBL.Spamhaus.org.\", negative-min-ttl: 5m}\n"
	         "    - multi.surbl.org\n",
	         user, group, hints, key);
	struct load l;
	load_yaml(yaml, &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	const struct config *c = l.cfg;
	CU_ASSERT_STRING_EQUAL(c->path, l.path);
	CU_ASSERT_EQUAL_FATAL(c->listen_count, 3);
	check_v4(&c->listen[0], "127.0.0.1", 5353);
	check_v6(&c->listen[1], "::1", 5354);
	check_v4(&c->listen[2], "0.0.0.0", 53);
	CU_ASSERT_EQUAL(c->workers, 3);
	CU_ASSERT_EQUAL(c->log_level, LOG_LEVEL_DEBUG);
	CU_ASSERT_EQUAL(c->tcp_idle_timeout_ms, 1500);
	CU_ASSERT_EQUAL(c->tcp_max_connections, 1000);
	CU_ASSERT_STRING_EQUAL(c->root_hints, hints);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->trust_anchor);
	CU_ASSERT_STRING_EQUAL(c->trust_anchor, key);
	CU_ASSERT_TRUE(c->dnssec);
	CU_ASSERT_TRUE(c->query_loopback);
	CU_ASSERT_EQUAL(c->client_timeout_ms, 2000);
	CU_ASSERT_EQUAL(c->max_pending, 500);
	CU_ASSERT_EQUAL(c->outgoing_range, 16);
	CU_ASSERT_EQUAL(c->upstream_cache_bytes, 64ull << 20);
	CU_ASSERT_EQUAL(c->resolver_threads, 5);
	CU_ASSERT_EQUAL(c->hot_size, 0);
	CU_ASSERT_STRING_EQUAL(c->cache_dir, "/var/lib/mxresolved");
	CU_ASSERT_EQUAL(c->cache_size, 2ull << 30);
	CU_ASSERT_EQUAL(c->max_ttl, 7200);
	CU_ASSERT_EQUAL(c->negative_max_ttl, 900);
	CU_ASSERT_EQUAL(c->servfail_ttl, 0);
	CU_ASSERT_EQUAL(c->stale_window, 3 * 86400);
	CU_ASSERT_EQUAL(c->sync_interval_ms, 250);

	CU_ASSERT_EQUAL(c->tcp_max_per_client, 4);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->user);
	CU_ASSERT_STRING_EQUAL(c->user, user);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->control_socket);
	CU_ASSERT_STRING_EQUAL(c->control_socket, "/run/mxresolved/ctl");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->control_group);
	CU_ASSERT_STRING_EQUAL(c->control_group, group);

	CU_ASSERT_EQUAL(c->access_default, CONFIG_ACCESS_DROP);
	CU_ASSERT_EQUAL_FATAL(c->access_rule_count, 3);
	CU_ASSERT_STRING_EQUAL(c->access_rules[0].network, "10.0.0.0/8");
	CU_ASSERT_EQUAL(c->access_rules[0].action, CONFIG_ACCESS_ALLOW);
	CU_ASSERT_EQUAL(c->access_rules[0].line, 15);
	CU_ASSERT_STRING_EQUAL(c->access_rules[1].network, "2001:db8::/32");
	CU_ASSERT_EQUAL(c->access_rules[1].action, CONFIG_ACCESS_REFUSE);
	CU_ASSERT_EQUAL(c->access_rules[1].line, 16);
	CU_ASSERT_STRING_EQUAL(c->access_rules[2].network, "192.0.2.1");
	CU_ASSERT_EQUAL(c->access_rules[2].action, CONFIG_ACCESS_DROP);
	CU_ASSERT_EQUAL(c->access_rules[2].line, 18);

	CU_ASSERT_EQUAL(c->ratelimit_qps, 50);
	CU_ASSERT_EQUAL(c->ratelimit_burst, 100);
	CU_ASSERT_EQUAL(c->ratelimit_slip, 0);
	CU_ASSERT_EQUAL(c->ratelimit_v4_prefix, 32);
	CU_ASSERT_EQUAL(c->ratelimit_v6_prefix, 64);
	CU_ASSERT_EQUAL_FATAL(c->ratelimit_exempt_count, 2);
	CU_ASSERT_STRING_EQUAL(c->ratelimit_exempt[0].network, "192.0.2.0/24");
	CU_ASSERT_EQUAL(c->ratelimit_exempt[0].line, 25);
	CU_ASSERT_STRING_EQUAL(c->ratelimit_exempt[1].network, "2001:db8:1::/48");

	CU_ASSERT_EQUAL(c->max_pending_per_client, 20);
	CU_ASSERT_EQUAL(c->max_waiters, 50);

	CU_ASSERT_FALSE(c->serve_stale);
	CU_ASSERT_FALSE(c->serve_stale_nxdomain);
	CU_ASSERT_EQUAL(c->stale_answer_after_ms, 500);
	CU_ASSERT_EQUAL(c->stale_ttl, 60);
	CU_ASSERT_FALSE(c->prefetch);
	CU_ASSERT_EQUAL(c->prefetch_percent, 25);
	CU_ASSERT_EQUAL(c->prefetch_max, 7);

	const struct config_partition *g = &c->partitions[0], *m = &c->partitions[1], *d = &c->partitions[2];
	CU_ASSERT_EQUAL(g->quota, 1ull << 30);
	CU_ASSERT_EQUAL(g->type_count, 0);
	CU_ASSERT_EQUAL(m->quota, 512ull << 20);
	CU_ASSERT_EQUAL(m->ttl.min_ttl, 60);
	CU_ASSERT_EQUAL(m->ttl.max_ttl, 86400);
	CU_ASSERT_EQUAL(m->ttl.negative_min_ttl, 30);
	CU_ASSERT_EQUAL(m->ttl.negative_max_ttl, 600);
	CU_ASSERT_EQUAL_FATAL(m->type_count, 3);
	/* MX sets min-ttl and takes the rest from the partition, read after it. */
	CU_ASSERT_EQUAL(m->types[0].qtype, 15);
	CU_ASSERT_EQUAL(m->types[0].ttl.min_ttl, 300);
	CU_ASSERT_EQUAL(m->types[0].ttl.max_ttl, 86400);
	CU_ASSERT_EQUAL(m->types[0].ttl.negative_min_ttl, 30);
	CU_ASSERT_EQUAL(m->types[0].ttl.negative_max_ttl, 600);
	/* An explicit 0 is kept, not inherited. */
	CU_ASSERT_EQUAL(m->types[1].qtype, 16);
	CU_ASSERT_EQUAL(m->types[1].ttl.min_ttl, 60);
	CU_ASSERT_EQUAL(m->types[1].ttl.max_ttl, 7200);
	CU_ASSERT_EQUAL(m->types[1].ttl.negative_min_ttl, 30);
	CU_ASSERT_EQUAL(m->types[1].ttl.negative_max_ttl, 0);
	CU_ASSERT_EQUAL(m->types[2].qtype, 99);
	CU_ASSERT_EQUAL(m->types[2].ttl.min_ttl, 60);
	CU_ASSERT_EQUAL(m->types[2].ttl.max_ttl, 86400);
	CU_ASSERT_EQUAL(d->quota, 256ull << 20);
	CU_ASSERT_EQUAL(d->ttl.negative_min_ttl, 60);
	CU_ASSERT_EQUAL_FATAL(d->type_count, 1);
	CU_ASSERT_EQUAL(d->types[0].qtype, 1);
	CU_ASSERT_EQUAL(d->types[0].ttl.min_ttl, 0);
	CU_ASSERT_EQUAL(d->types[0].ttl.max_ttl, 900);
	CU_ASSERT_EQUAL(d->types[0].ttl.negative_min_ttl, 60);

	CU_ASSERT_EQUAL_FATAL(c->dnsbl_zone_count, 3);
	CU_ASSERT_STRING_EQUAL(c->dnsbl_zones[0].name, "zen.spamhaus.org");
	CU_ASSERT_EQUAL(c->dnsbl_zones[0].negative_min_ttl, 0);
	CU_ASSERT_STRING_EQUAL(c->dnsbl_zones[1].name, "dbl.spamhaus.org");
	CU_ASSERT_EQUAL(c->dnsbl_zones[1].negative_min_ttl, 300);
	CU_ASSERT_STRING_EQUAL(c->dnsbl_zones[2].name, "multi.surbl.org");
	load_done(&l);
	unlink(hints);
	unlink(key);
}

static void test_config_empty_file_gives_defaults(void)
{
	struct load l;
	load_yaml("", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	check_defaults(l.cfg);
	load_done(&l);
}

static void test_config_comments_only_gives_defaults(void)
{
	struct load l;
	load_yaml("# nothing here\n\n   # still nothing\n---\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	check_defaults(l.cfg);
	load_done(&l);
}

static void test_config_empty_sections_give_defaults(void)
{
	struct load l;
	load_yaml("server:\n  # workers: 4\nrecursion:\ncache: {}\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	check_defaults(l.cfg);
	load_done(&l);
}

static void test_config_listen_accepts_one_scalar(void)
{
	struct load l;
	load_yaml("server:\n  listen: \"[2001:db8::1]:8053\"\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_EQUAL_FATAL(l.cfg->listen_count, 1);
	check_v6(&l.cfg->listen[0], "2001:db8::1", 8053);
	load_done(&l);
}

static void test_config_units_and_bounds_are_inclusive(void)
{
	struct load l;
	load_yaml("server:\n"
	          "  workers: 256\n"
	          "  tcp-idle-timeout: 10m\n"
	          "  tcp-max-connections: 65536\n"
	          "recursion:\n"
	          "  client-timeout: 100ms\n"
	          "  upstream-cache-size: 4096K\n"
	          "  dnssec: FALSE\n"
	          "cache:\n"
	          "  size: 1TiB\n"
	          "  max-ttl: 7d\n"
	          "  negative-max-ttl: 0\n"
	          "  stale-window: 30d\n"
	          "  sync-interval: 0ms\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_EQUAL(l.cfg->workers, 256);
	CU_ASSERT_EQUAL(l.cfg->tcp_idle_timeout_ms, 600000);
	CU_ASSERT_EQUAL(l.cfg->tcp_max_connections, 65536);
	CU_ASSERT_EQUAL(l.cfg->client_timeout_ms, 100);
	CU_ASSERT_EQUAL(l.cfg->upstream_cache_bytes, 4ull << 20);
	CU_ASSERT_FALSE(l.cfg->dnssec);
	CU_ASSERT_EQUAL(l.cfg->cache_size, 1ull << 40);
	CU_ASSERT_EQUAL(l.cfg->max_ttl, 7 * 86400);
	CU_ASSERT_EQUAL(l.cfg->negative_max_ttl, 0);
	CU_ASSERT_EQUAL(l.cfg->stale_window, 30 * 86400);
	CU_ASSERT_EQUAL(l.cfg->sync_interval_ms, 0);
	load_done(&l);
}

static void test_config_dnssec_off_ignores_missing_trust_anchor(void)
{
	struct load l;
	load_yaml("recursion:\n  trust-anchor: /nonexistent/root.key\n  dnssec: off\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_FALSE(l.cfg->dnssec);
	CU_ASSERT_PTR_NULL(l.cfg->trust_anchor);
	load_done(&l);
}

/* The shipped file must stay loadable; the tests run from the source root. */
static void test_config_deploy_file_loads(void)
{
	struct config *cfg = NULL;
	int rc = config_load("deploy/mxresolved.yaml", &cfg, stderr);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL_FATAL(cfg->listen_count, 2);
	check_v4(&cfg->listen[0], "127.0.0.1", 5353);
	check_v6(&cfg->listen[1], "::1", 5353);
	CU_ASSERT_STRING_EQUAL(cfg->cache_dir, "./var/cache");
	check_most_defaults(cfg);
	config_free(cfg);
}

/* ---- files that do not ---- */

static void test_config_rejects_missing_file(void)
{
	struct config *cfg = (struct config *)0x1;
	char *buf = NULL;
	size_t len = 0;
	FILE *errs = open_memstream(&buf, &len);
	CU_ASSERT_FATAL(errs != NULL);
	int rc = config_load("/nonexistent/mxresolved.yaml", &cfg, errs);
	fclose(errs);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NULL(cfg);
	CU_ASSERT_STRING_EQUAL(buf, "/nonexistent/mxresolved.yaml: cannot open: No such file or directory\n");
	free(buf);
}

static void test_config_rejects_unknown_section(void)
{
	expect_error("server:\n  workers: 2\nserverr:\n  workers: 2\n", 3,
	             "unknown section 'serverr' (expected server, access, ratelimit, recursion, cache, filter or web)");
}

static void test_config_rejects_unknown_key(void)
{
	expect_error("server:\n  workers: 2\n  worker: 2\n", 3, "unknown key 'worker' in section 'server'");
}

static void test_config_rejects_key_in_wrong_section(void)
{
	expect_error("cache:\n  dnssec: true\n", 2, "unknown key 'dnssec' in section 'cache'");
}

static void test_config_rejects_duplicate_key(void)
{
	expect_error("cache:\n  size: 1G\n  max-ttl: 1h\n  size: 2G\n", 4,
	             "duplicate key 'size' in section 'cache' (first at line 2)");
}

static void test_config_rejects_duplicate_section(void)
{
	expect_error("cache:\n  size: 1G\nserver: {}\ncache:\n  max-ttl: 1h\n", 4,
	             "duplicate section 'cache' (first at line 1)");
}

static void test_config_rejects_section_that_is_not_a_mapping(void)
{
	expect_error("server: 4\n", 1, "section 'server' must be a mapping of keys");
}

static void test_config_rejects_listen_of_wrong_type(void)
{
	expect_error("server:\n  listen:\n    address: 127.0.0.1\n", 3,
	             "'listen' must be an address or a list of addresses");
}

static void test_config_rejects_listen_bad_address(void)
{
	expect_error("server:\n  listen:\n    - 127.0.0.1:53\n    - 127.0.0.256:53\n", 4,
	             "listen: '127.0.0.256:53': bad IPv4 address");
}

static void test_config_rejects_listen_hostname(void)
{
	expect_error("server:\n  listen: localhost:53\n", 2, "listen: 'localhost:53': bad IPv4 address");
}

static void test_config_rejects_listen_missing_port(void)
{
	expect_error("server:\n  listen: [\"127.0.0.1\"]\n", 2,
	             "listen: '127.0.0.1': missing port (write it as \"address:port\")");
}

static void test_config_rejects_listen_ipv6_missing_port(void)
{
	expect_error("server:\n  listen: [\"[::1]\"]\n", 2,
	             "listen: '[::1]': missing port (write it as \"[address]:port\")");
}

static void test_config_rejects_listen_port_zero(void)
{
	expect_error("server:\n  listen: [\"127.0.0.1:0\"]\n", 2,
	             "listen: '127.0.0.1:0': the port must be between 1 and 65535");
}

static void test_config_rejects_listen_port_70000(void)
{
	expect_error("server:\n  listen: [\"[::1]:70000\"]\n", 2,
	             "listen: '[::1]:70000': the port must be between 1 and 65535");
}

static void test_config_rejects_listen_port_not_a_number(void)
{
	expect_error("server:\n  listen: [\"127.0.0.1:dns\"]\n", 2,
	             "listen: '127.0.0.1:dns': the port must be a number");
}

static void test_config_rejects_ipv6_without_brackets(void)
{
	expect_error("server:\n  listen: [\"::1:53\"]\n", 2,
	             "listen: '::1:53': IPv6 addresses must be in brackets, as in \"[::1]:53\"");
}

static void test_config_rejects_too_many_listen_entries(void)
{
	char yaml[2048] = "server:\n  listen:\n";
	for (int i = 1; i <= CONFIG_MAX_LISTEN + 2; i++) {
		char line[64];
		snprintf(line, sizeof line, "    - 127.0.0.%d:53\n", i);
		strcat(yaml, line);
	}
	/* The first address past the limit is on line 2 + 17. */
	expect_error(yaml, 2 + CONFIG_MAX_LISTEN + 1, "'listen' has more than 16 addresses");
}

static void test_config_rejects_empty_listen(void)
{
	expect_error("server:\n  listen: []\n", 2, "'listen' needs at least one address");
}

static void test_config_rejects_listen_twice_same_address(void)
{
	expect_error("server:\n  listen: [\"[::1]:53\", \"[0::1]:53\"]\n", 2,
	             "listen: '[0::1]:53' is listed twice");
}

static void test_config_rejects_negative_workers(void)
{
	expect_error("server:\n  workers: -1\n", 2, "'workers' must be between 0 and 256");
}

static void test_config_rejects_workers_not_a_number(void)
{
	expect_error("server:\n  workers: four\n", 2, "'workers' must be a number");
}

static void test_config_rejects_workers_with_trailing_junk(void)
{
	expect_error("server:\n  workers: 4x\n", 2, "'workers' must be a number");
}

static void test_config_rejects_workers_too_large(void)
{
	expect_error("server:\n  workers: 257\n", 2, "'workers' must be between 0 and 256");
}

static void test_config_rejects_workers_sequence(void)
{
	expect_error("server:\n  workers: [4]\n", 2, "'workers' must be a number");
}

static void test_config_rejects_threads_and_hot_size_out_of_range(void)
{
	expect_error("recursion:\n  resolver-threads: 0\n", 2, "'resolver-threads' must be between 1 and 16");
	expect_error("recursion:\n  resolver-threads: 17\n", 2, "'resolver-threads' must be between 1 and 16");
	expect_error("cache:\n  hot-size: 2G\n", 2, "'hot-size' must be between 0 and 1G");
}

static void test_config_rejects_bad_log_level(void)
{
	expect_error("server:\n  log-level: verbose\n", 2,
	             "'log-level' must be one of error, warning, info, debug");
}

static void test_config_rejects_bad_duration_unit(void)
{
	expect_error("recursion:\n  client-timeout: 5sec\n", 2,
	             "'client-timeout' must be a duration such as 5s (units ms, s, m, h, d)");
}

static void test_config_rejects_duration_out_of_range(void)
{
	expect_error("recursion:\n  client-timeout: 2m\n", 2,
	             "'client-timeout' must be between 100ms and 60s");
}

static void test_config_rejects_duration_too_short(void)
{
	expect_error("server:\n  tcp-idle-timeout: 99ms\n", 2,
	             "'tcp-idle-timeout' must be between 100ms and 10m");
}

static void test_config_rejects_fractional_seconds_ttl(void)
{
	expect_error("cache:\n  max-ttl: 1500ms\n", 2, "'max-ttl' must be a whole number of seconds");
}

static void test_config_rejects_servfail_ttl_too_long(void)
{
	expect_error("cache:\n  servfail-ttl: 31s\n", 2, "'servfail-ttl' must be between 0 and 30s");
}

static void test_config_rejects_size_bad_suffix(void)
{
	expect_error("cache:\n  size: 256MB\n", 2,
	             "'size' must be a size such as 256M (units K, M, G, T)");
}

static void test_config_rejects_size_overflow(void)
{
	expect_error("cache:\n  size: 99999999999999999999G\n", 2, "'size' must be between 1M and 1T");
}

static void test_config_rejects_size_multiplication_overflow(void)
{
	expect_error("recursion:\n  upstream-cache-size: 17179869184G\n", 2,
	             "'upstream-cache-size' must be between 1M and 4G");
}

static void test_config_rejects_bad_boolean(void)
{
	expect_error("recursion:\n  query-loopback: maybe\n", 2, "'query-loopback' must be true or false");
}

static void test_config_rejects_missing_root_hints(void)
{
	expect_error("recursion:\n  root-hints: /nonexistent/root.hints\n", 2,
	             "root-hints: /nonexistent/root.hints: No such file or directory");
}

static void test_config_rejects_root_hints_directory(void)
{
	expect_error("recursion:\n  root-hints: /tmp\n", 2, "root-hints: /tmp: not a regular file");
}

static void test_config_rejects_missing_trust_anchor_with_dnssec(void)
{
	expect_error("recursion:\n  dnssec: true\n  trust-anchor: /nonexistent/root.key\n", 3,
	             "trust-anchor: /nonexistent/root.key: No such file or directory");
}

static void test_config_rejects_empty_directory(void)
{
	expect_error("cache:\n  directory: \"\"\n", 2, "'directory' must not be empty");
}

static void test_config_rejects_directory_without_value(void)
{
	expect_error("cache:\n  directory:\n  size: 1G\n", 2, "'directory' must not be empty");
}

static void test_config_rejects_nul_in_string(void)
{
	expect_error("cache:\n  directory: \"/var\\0/x\"\n", 2, "'directory' must not contain a NUL character");
}

static void test_config_rejects_unclosed_bracket(void)
{
	expect_error_containing("server:\n  listen: [\"127.0.0.1:53\", \"[::1]:53\"\n  workers: 2\n", 3,
	                        "did not find expected ',' or ']' (while parsing a flow sequence started at line 2)");
}

static void test_config_rejects_top_level_sequence(void)
{
	expect_error("# a list, not a mapping\n- server\n- cache\n", 2,
	             "the top level must be a mapping of sections (server:, access:, ratelimit:, recursion:, cache:, filter:)");
}

static void test_config_rejects_top_level_scalar(void)
{
	expect_error("hello\n", 1, "the top level must be a mapping of sections (server:, access:, ratelimit:, recursion:, cache:, filter:)");
}

static void test_config_rejects_tab_indentation(void)
{
	expect_error_containing("server:\n  workers: 2\n\tlog-level: info\n", 3,
	                        "found a tab character that violates indentation");
}

static void test_config_rejects_second_document(void)
{
	expect_error("server:\n  workers: 2\n---\ncache:\n  size: 1G\n", 3, "only one YAML document is allowed");
}

static void test_config_rejects_invalid_utf8(void)
{
	expect_error_containing("server:\n  workers: 2\ncache:\n  directory: /var/\xc3\x28\n", 4,
	                        "invalid trailing UTF-8 octet at byte");
}

static void test_config_accepts_trailing_document_marker(void)
{
	struct load l;
	load_yaml("---\nserver: {workers: 1}\n...\n---\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_EQUAL(l.cfg->workers, 1);
	load_done(&l);
}

static void test_config_reports_every_error(void)
{
	struct load l;
	load_yaml("server:\n"
	          "  workers: lots\n"
	          "  log-level: info\n"
	          "cache:\n"
	          "  size: 0\n"
	          "  colour: blue\n", &l);
	CU_ASSERT_EQUAL(l.rc, 3);
	CU_ASSERT_PTR_NULL(l.cfg);
	char want[1024];
	snprintf(want, sizeof want,
	         "%s:2: 'workers' must be a number\n"
	         "%s:5: 'size' must be between 1M and 1T\n"
	         "%s:6: unknown key 'colour' in section 'cache'\n",
	         l.path, l.path, l.path);
	CU_ASSERT_STRING_EQUAL(l.errs, want);
	load_done(&l);
}

/* ---- access, ratelimit, partitions, dnsbl-zones ---- */

static void test_config_empty_rules_mean_no_rules(void)
{
	struct load l;
	load_yaml("access:\n  default: allow\n  rules: []\nratelimit:\n  exempt:\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_EQUAL(l.cfg->access_default, CONFIG_ACCESS_ALLOW);
	CU_ASSERT_EQUAL(l.cfg->access_rule_count, 0);
	CU_ASSERT_EQUAL(l.cfg->ratelimit_exempt_count, 0);
	load_done(&l);
}

static void test_config_empty_strings_mean_none(void)
{
	struct load l;
	load_yaml("server:\n  user: \"\"\n  control-socket: \"\"\n  control-group:\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_PTR_NULL(l.cfg->user);
	CU_ASSERT_PTR_NULL(l.cfg->control_socket);
	CU_ASSERT_PTR_NULL(l.cfg->control_group);
	load_done(&l);
}

static void test_config_quota_equal_to_size_is_accepted(void)
{
	struct load l;
	load_yaml("cache:\n  size: 1G\n  partitions:\n    mail: {quota: 768M}\n    dnsbl: {quota: 256M}\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_EQUAL(l.cfg->partitions[1].quota, 768ull << 20);
	load_done(&l);
}

static void test_config_rejects_bad_access_default(void)
{
	expect_error("access:\n  default: reject\n", 2, "'default' must be one of allow, refuse, drop");
}

static void test_config_rejects_bad_rule_action(void)
{
	expect_error("access:\n  rules:\n    - {network: 10.0.0.0/8, action: permit}\n", 3,
	             "'action' must be one of allow, refuse, drop");
}

static void test_config_rejects_bad_cidr(void)
{
	expect_error("access:\n  rules:\n    - {network: 10.0.0.300/8, action: allow}\n", 3,
	             "network '10.0.0.300/8': bad address");
}

static void test_config_rejects_cidr_prefix_too_long(void)
{
	expect_error("access:\n  rules:\n    - network: \"2001:db8::/129\"\n      action: allow\n", 3,
	             "network '2001:db8::/129': prefix length out of range (0..128)");
}

static void test_config_rejects_cidr_host_bits(void)
{
	expect_error("access:\n  rules:\n    - {network: 10.1.2.3/8, action: allow}\n", 3,
	             "network '10.1.2.3/8': host bits set beyond the /8 prefix (the network is 10.0.0.0/8)");
}

static void test_config_rejects_duplicate_network(void)
{
	expect_error("access:\n  rules:\n"
	             "    - {network: 192.168.0.0/16, action: allow}\n"
	             "    - {network: 10.0.0.0/8, action: allow}\n"
	             "    - {network: 192.168.0.0/16, action: drop}\n", 5,
	             "network '192.168.0.0/16': duplicate prefix");
}

static void test_config_rejects_duplicate_exempt_network(void)
{
	expect_error("ratelimit:\n  exempt:\n    - \"::1\"\n    - \"::1/128\"\n", 4,
	             "network '::1/128': duplicate prefix");
}

static void test_config_rejects_rule_not_a_mapping(void)
{
	expect_error("access:\n  rules:\n    - 10.0.0.0/8\n", 3,
	             "access rules must be mappings such as {network: 10.0.0.0/8, action: allow}");
}

static void test_config_rejects_unknown_key_in_rule(void)
{
	expect_error("access:\n  rules:\n    - network: 10.0.0.0/8\n      action: allow\n      comment: lan\n", 5,
	             "unknown key 'comment' in an access rule");
}

static void test_config_rejects_rule_without_network(void)
{
	expect_error("access:\n  rules:\n    - {action: allow}\n", 3, "an access rule needs 'network'");
}

static void test_config_rejects_rule_without_action(void)
{
	expect_error("access:\n  rules:\n    - {network: 10.0.0.0/8}\n", 3, "an access rule needs 'action'");
}

static void test_config_rejects_rules_not_a_list(void)
{
	expect_error("access:\n  rules: 10.0.0.0/8\n", 2,
	             "'rules' must be a list of {network: CIDR, action: allow|refuse|drop}");
}

static void test_config_rejects_ipv4_prefix_out_of_range(void)
{
	expect_error("ratelimit:\n  ipv4-prefix: 33\n", 2, "'ipv4-prefix' must be between 8 and 32");
}

static void test_config_rejects_ipv6_prefix_out_of_range(void)
{
	expect_error("ratelimit:\n  ipv6-prefix: 8\n", 2, "'ipv6-prefix' must be between 16 and 128");
}

static void test_config_rejects_unknown_partition(void)
{
	expect_error("cache:\n  partitions:\n    spam:\n      quota: 1M\n", 3,
	             "unknown partition 'spam' (expected general, mail or dnsbl)");
}

static void test_config_rejects_unknown_key_in_partition(void)
{
	expect_error("cache:\n  partitions:\n    mail:\n      min_ttl: 60\n", 4,
	             "unknown key 'min_ttl' in partition 'mail'");
}

static void test_config_rejects_unknown_rr_type(void)
{
	expect_error("cache:\n  partitions:\n    mail:\n      types:\n        MXX: {min-ttl: 1m}\n", 5,
	             "unknown RR type 'MXX'");
}

static void test_config_rejects_rr_type_number_out_of_range(void)
{
	expect_error("cache:\n  partitions:\n    mail:\n      types: {TYPE65536: {}}\n", 4,
	             "unknown RR type 'TYPE65536'");
}

static void test_config_rejects_duplicate_rr_type(void)
{
	expect_error("cache:\n  partitions:\n    mail:\n      types:\n"
	             "        MX: {min-ttl: 1m}\n        TXT: {}\n        mx: {max-ttl: 1h}\n", 7,
	             "duplicate type 'mx' in partition 'mail' (first at line 5)");
}

static void test_config_rejects_min_ttl_above_max_ttl(void)
{
	expect_error("cache:\n  partitions:\n    general:\n      max-ttl: 1h\n      min-ttl: 2h\n", 5,
	             "min-ttl is greater than max-ttl");
}

static void test_config_rejects_negative_min_ttl_above_max_ttl(void)
{
	expect_error("cache:\n  partitions:\n    mail:\n      types:\n"
	             "        TXT: {negative-min-ttl: 10m, negative-max-ttl: 5m}\n", 5,
	             "negative-min-ttl is greater than negative-max-ttl");
}

static void test_config_rejects_type_min_ttl_above_inherited_max(void)
{
	expect_error("cache:\n  partitions:\n    mail:\n      types:\n        MX: {min-ttl: 2h}\n"
	             "      max-ttl: 1h\n", 5,
	             "min-ttl is greater than max-ttl (max-ttl inherited from partition 'mail')");
}

static void test_config_rejects_quotas_above_size(void)
{
	expect_error("cache:\n  size: 1G\n  partitions:\n    mail: {quota: 768M}\n    dnsbl: {quota: 512M}\n", 3,
	             "partition quotas (1342177280 bytes) exceed cache.size (1073741824 bytes)");
}

static void test_config_rejects_bad_dnsbl_zone_name(void)
{
	expect_error("cache:\n  dnsbl-zones:\n    - zen.spamhaus.org\n    - zen..spamhaus.org\n", 4,
	             "dnsbl-zones: 'zen..spamhaus.org': empty label");
}

static void test_config_rejects_dnsbl_zone_bad_character(void)
{
	expect_error("cache:\n  dnsbl-zones:\n    - {zone: \"bl.example.org/24\"}\n", 3,
	             "dnsbl-zones: 'bl.example.org/24': bad character (letters, digits, '-' and '_' only)");
}

static void test_config_rejects_dnsbl_zone_long_label(void)
{
	char yaml[256];
	snprintf(yaml, sizeof yaml, "cache:\n  dnsbl-zones: [%.64s.example]\n",
	         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	expect_error(yaml, 2, "dnsbl-zones: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example': "
	                      "label longer than 63 characters");
}

static void test_config_rejects_duplicate_dnsbl_zone(void)
{
	expect_error("cache:\n  dnsbl-zones:\n    - zen.spamhaus.org\n    - dbl.spamhaus.org\n"
	             "    - {zone: ZEN.Spamhaus.org., negative-min-ttl: 5m}\n", 5,
	             "dnsbl-zones: 'zen.spamhaus.org' is listed twice (first at line 3)");
}

static void test_config_rejects_dnsbl_zone_without_zone(void)
{
	expect_error("cache:\n  dnsbl-zones:\n    - {negative-min-ttl: 5m}\n", 3, "a dnsbl zone needs 'zone'");
}

static void test_config_rejects_unknown_user(void)
{
	expect_error("server:\n  user: no-such-user-mxr\n", 2, "user 'no-such-user-mxr' does not exist");
}

static void test_config_rejects_unknown_group(void)
{
	expect_error("server:\n  control-group: no-such-group-mxr\n", 2, "group 'no-such-group-mxr' does not exist");
}

static void test_config_rejects_control_socket_path_too_long(void)
{
	char yaml[512];
	snprintf(yaml, sizeof yaml, "server:\n  control-socket: /%0108d\n", 0);
	expect_error(yaml, 2, "control-socket: the path is longer than 107 bytes");
}

static void test_config_rejects_stale_ttl_out_of_range(void)
{
	expect_error("cache:\n  stale-ttl: 2h\n", 2, "'stale-ttl' must be between 1s and 1h");
}

static void test_config_rejects_stale_answer_after_too_short(void)
{
	expect_error("cache:\n  stale-answer-after: 50ms\n", 2, "'stale-answer-after' must be between 100ms and 60s");
}

static void test_config_rejects_prefetch_percent_out_of_range(void)
{
	expect_error("cache:\n  prefetch-percent: 51\n", 2, "'prefetch-percent' must be between 1 and 50");
}

static void test_config_reports_every_error_in_nested_sections(void)
{
	struct load l;
	load_yaml("access:\n"
	          "  rules:\n"
	          "    - {network: 10.0.0.0/33, action: allow}\n"
	          "    - {network: 10.0.0.0/8, action: maybe}\n"
	          "cache:\n"
	          "  partitions:\n"
	          "    mail:\n"
	          "      types: {BOGUS: {}, A: {min-ttl: 1x}}\n", &l);
	CU_ASSERT_EQUAL(l.rc, 4);
	CU_ASSERT_PTR_NULL(l.cfg);
	char want[1024];
	snprintf(want, sizeof want,
	         "%s:3: network '10.0.0.0/33': prefix length out of range (0..32)\n"
	         "%s:4: 'action' must be one of allow, refuse, drop\n"
	         "%s:8: unknown RR type 'BOGUS'\n"
	         "%s:8: 'min-ttl' must be a duration such as 5s (units ms, s, m, h, d)\n",
	         l.path, l.path, l.path, l.path);
	CU_ASSERT_STRING_EQUAL(l.errs, want);
	if (strcmp(l.errs, want) != 0)
		fprintf(stderr, "\n  want: %s  got:  %s", want, l.errs);
	load_done(&l);
}

/* ---- filter: ---- */

/* A fresh directory with readable files a.hosts, b.hosts and allow.txt. */
struct filter_dir {
	char dir[64];
	char a[128], b[128], allow[128];
};

static void filter_dir_make(struct filter_dir *d)
{
	strcpy(d->dir, "/tmp/test_config_filter_XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(d->dir));
	snprintf(d->a, sizeof d->a, "%s/a.hosts", d->dir);
	snprintf(d->b, sizeof d->b, "%s/b.hosts", d->dir);
	snprintf(d->allow, sizeof d->allow, "%s/allow.txt", d->dir);
	const char *paths[] = { d->a, d->b, d->allow };
	for (size_t i = 0; i < 3; i++) {
		FILE *f = fopen(paths[i], "w");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		fputs("0.0.0.0 ads.example\n", f);
		fclose(f);
	}
}

static void filter_dir_remove(struct filter_dir *d)
{
	unlink(d->a);
	unlink(d->b);
	unlink(d->allow);
	rmdir(d->dir);
}

static void test_config_filter_loads_every_key(void)
{
	struct filter_dir d;
	filter_dir_make(&d);
	char yaml[4096];
	snprintf(yaml, sizeof yaml,
	         "filter:\n"                                                          /* 1 */
	         "  sinkhole-a: 192.0.2.1\n"
	         "  sinkhole-aaaa: \"2001:db8::1\"\n"
	         "  ttl: 1h\n"
	         "  health-interval: 30s\n"                                           /* 5 */
	         "  scope:\n"                                   /* before the sources it names */
	         "    - {network: 192.168.0.0/16, sources: [dbl, ads]}\n"
	         "    - network: \"2001:db8::/32\"\n"
	         "      sources: zen\n"
	         "    - {network: 10.0.0.0/8, sources: []}\n"                         /* 10 */
	         "  sources:\n"
	         "    - name: ads\n"
	         "      type: list\n"
	         "      format: hosts\n"
	         "      files: [%s, %s]\n"                                            /* 15 */
	         "      allow: false\n"
	         "      action: sinkhole\n"
	         "    - {name: ok_list-2, type: list, files: %s, allow: true, format: adblock, action: log-only}\n"
	         "    - name: dbl\n"
	         "      type: rhsbl\n"                                                /* 20 */
	         "      zone: DBL.Spamhaus.org.\n"
	         "      codes: [\"127.0.1.2-127.0.1.99\", 127.0.1.255]\n"
	         "      timeout: 2s\n"
	         "      fail-open: false\n"
	         "      servers: [\"127.0.10.3\", \"127.0.10.4:5353\", \"[::1]:5300\", \"2001:db8::53\"]\n" /* 25 */
	         "      forward: true\n"
	         "      action: nodata\n"
	         "    - {name: zen, type: dnsbl, zone: zen.spamhaus.org, action: refused}\n"
	         "    - {name: rpz, type: list, format: rpz, files: [%s], action: nxdomain}\n"
	         "cache:\n"                                                           /* 30 */
	         "  dnsbl-zones: [zen.spamhaus.org]\n",
	         d.a, d.b, d.allow, d.a);
	struct load l;
	load_yaml(yaml, &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	if (l.errs[0] != '\0')
		fprintf(stderr, "\n%s", l.errs);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	const struct config *c = l.cfg;
	check_v4(&c->sinkhole_a, "192.0.2.1", 0);
	check_v6(&c->sinkhole_aaaa, "2001:db8::1", 0);
	CU_ASSERT_EQUAL(c->filter_ttl, 3600);
	CU_ASSERT_EQUAL(c->health_interval_ms, 30000);

	CU_ASSERT_EQUAL_FATAL(c->filter_source_count, 5);
	const struct config_source *s = &c->filter_sources[0];
	CU_ASSERT_STRING_EQUAL(s->name, "ads");
	CU_ASSERT_EQUAL(s->type, CONFIG_SOURCE_LIST);
	CU_ASSERT_EQUAL(s->format, CONFIG_FORMAT_HOSTS);
	CU_ASSERT_EQUAL_FATAL(s->file_count, 2);
	CU_ASSERT_STRING_EQUAL(s->files[0], d.a);
	CU_ASSERT_STRING_EQUAL(s->files[1], d.b);
	CU_ASSERT_FALSE(s->allow);
	CU_ASSERT_EQUAL(s->action, CONFIG_ACTION_SINKHOLE);
	CU_ASSERT_EQUAL(s->line, 12);

	s = &c->filter_sources[1];
	CU_ASSERT_STRING_EQUAL(s->name, "ok_list-2");
	CU_ASSERT_EQUAL(s->type, CONFIG_SOURCE_LIST);
	CU_ASSERT_EQUAL(s->format, CONFIG_FORMAT_ADBLOCK);
	CU_ASSERT_EQUAL_FATAL(s->file_count, 1);
	CU_ASSERT_STRING_EQUAL(s->files[0], d.allow);
	CU_ASSERT_TRUE(s->allow);
	CU_ASSERT_EQUAL(s->action, CONFIG_ACTION_LOG_ONLY);
	CU_ASSERT_EQUAL(s->line, 18);

	s = &c->filter_sources[2];
	CU_ASSERT_STRING_EQUAL(s->name, "dbl");
	CU_ASSERT_EQUAL(s->type, CONFIG_SOURCE_RHSBL);
	CU_ASSERT_STRING_EQUAL(s->zone, "dbl.spamhaus.org");
	CU_ASSERT_EQUAL_FATAL(s->code_count, 2);
	CU_ASSERT_STRING_EQUAL(s->codes[0], "127.0.1.2-127.0.1.99");
	CU_ASSERT_STRING_EQUAL(s->codes[1], "127.0.1.255");
	CU_ASSERT_EQUAL(s->timeout_ms, 2000);
	CU_ASSERT_FALSE(s->fail_open);
	CU_ASSERT_EQUAL_FATAL(s->server_count, 4);
	check_v4(&s->servers[0], "127.0.10.3", 53);
	check_v4(&s->servers[1], "127.0.10.4", 5353);
	check_v6(&s->servers[2], "::1", 5300);
	check_v6(&s->servers[3], "2001:db8::53", 53);
	CU_ASSERT_TRUE(s->forward);
	CU_ASSERT_EQUAL(s->action, CONFIG_ACTION_NODATA);
	CU_ASSERT_EQUAL(s->file_count, 0);
	CU_ASSERT_EQUAL(s->line, 19);

	/* Everything left out takes its default. */
	s = &c->filter_sources[3];
	CU_ASSERT_STRING_EQUAL(s->name, "zen");
	CU_ASSERT_EQUAL(s->type, CONFIG_SOURCE_DNSBL);
	CU_ASSERT_STRING_EQUAL(s->zone, "zen.spamhaus.org");
	CU_ASSERT_EQUAL(s->action, CONFIG_ACTION_REFUSED);
	CU_ASSERT_EQUAL(s->code_count, 0);
	CU_ASSERT_EQUAL(s->timeout_ms, 500);
	CU_ASSERT_TRUE(s->fail_open);
	CU_ASSERT_EQUAL(s->server_count, 0);
	CU_ASSERT_FALSE(s->forward);
	CU_ASSERT_EQUAL(s->line, 28);

	s = &c->filter_sources[4];
	CU_ASSERT_STRING_EQUAL(s->name, "rpz");
	CU_ASSERT_EQUAL(s->format, CONFIG_FORMAT_RPZ);
	CU_ASSERT_EQUAL(s->action, CONFIG_ACTION_NXDOMAIN);
	CU_ASSERT_FALSE(s->allow);

	CU_ASSERT_EQUAL_FATAL(c->filter_scope_count, 3);
	CU_ASSERT_STRING_EQUAL(c->filter_scopes[0].network, "192.168.0.0/16");
	CU_ASSERT_EQUAL(c->filter_scopes[0].sources, (1u << 0) | (1u << 2));
	CU_ASSERT_EQUAL(c->filter_scopes[0].line, 7);
	CU_ASSERT_STRING_EQUAL(c->filter_scopes[1].network, "2001:db8::/32");
	CU_ASSERT_EQUAL(c->filter_scopes[1].sources, 1u << 3);
	CU_ASSERT_EQUAL(c->filter_scopes[1].line, 8);
	CU_ASSERT_STRING_EQUAL(c->filter_scopes[2].network, "10.0.0.0/8");
	CU_ASSERT_EQUAL(c->filter_scopes[2].sources, 0);

	/* zen was listed already; dbl is added after it, list sources are not. */
	CU_ASSERT_EQUAL_FATAL(c->dnsbl_zone_count, 2);
	CU_ASSERT_STRING_EQUAL(c->dnsbl_zones[0].name, "zen.spamhaus.org");
	CU_ASSERT_STRING_EQUAL(c->dnsbl_zones[1].name, "dbl.spamhaus.org");
	CU_ASSERT_EQUAL(c->dnsbl_zones[1].negative_min_ttl, 0);
	load_done(&l);
	filter_dir_remove(&d);
}

static void test_config_filter_bounds_are_inclusive(void)
{
	struct load l;
	load_yaml("filter:\n"
	          "  ttl: 0\n"
	          "  health-interval: 1d\n"
	          "  sources:\n"
	          "    - {name: a, type: dnsbl, zone: a.example, timeout: 10ms}\n"
	          "    - {name: b, type: rhsbl, zone: b.example, timeout: 10s, codes: 127.0.0.2}\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_EQUAL(l.cfg->filter_ttl, 0);
	CU_ASSERT_EQUAL(l.cfg->health_interval_ms, 86400000);
	CU_ASSERT_EQUAL_FATAL(l.cfg->filter_source_count, 2);
	CU_ASSERT_EQUAL(l.cfg->filter_sources[0].timeout_ms, 10);
	CU_ASSERT_EQUAL(l.cfg->filter_sources[1].timeout_ms, 10000);
	CU_ASSERT_EQUAL_FATAL(l.cfg->filter_sources[1].code_count, 1);
	CU_ASSERT_STRING_EQUAL(l.cfg->filter_sources[1].codes[0], "127.0.0.2");
	load_done(&l);
}

static void test_config_filter_empty_section_gives_defaults(void)
{
	struct load l;
	load_yaml("filter:\n  # sources: []\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	check_defaults(l.cfg);
	load_done(&l);
}

static void test_config_filter_zones_join_dnsbl_zones(void)
{
	struct load l;
	load_yaml("filter:\n"
	          "  sources:\n"
	          "    - {name: one, type: rhsbl, zone: dbl.example.}\n"
	          "    - {name: two, type: dnsbl, zone: ZEN.example}\n"
	          "    - {name: three, type: dnsbl, zone: zen.example, servers: [127.0.10.3]}\n"
	          "cache:\n"
	          "  dnsbl-zones: [{zone: other.example, negative-min-ttl: 1m}]\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_EQUAL_FATAL(l.cfg->dnsbl_zone_count, 3);
	CU_ASSERT_STRING_EQUAL(l.cfg->dnsbl_zones[0].name, "other.example");
	CU_ASSERT_EQUAL(l.cfg->dnsbl_zones[0].negative_min_ttl, 60);
	CU_ASSERT_STRING_EQUAL(l.cfg->dnsbl_zones[1].name, "dbl.example");
	CU_ASSERT_STRING_EQUAL(l.cfg->dnsbl_zones[2].name, "zen.example");
	load_done(&l);
}

static void test_config_filter_rejects_too_many_dnsbl_zones(void)
{
	char yaml[8192];
	size_t n = (size_t)snprintf(yaml, sizeof yaml, "cache:\n  dnsbl-zones:\n");
	for (int i = 0; i < 64; i++)
		n += (size_t)snprintf(yaml + n, sizeof yaml - n, "    - z%d.example\n", i);
	snprintf(yaml + n, sizeof yaml - n, "filter:\n  sources:\n    - {name: extra, type: dnsbl, zone: z63.example}\n"
	                                    "    - {name: over, type: dnsbl, zone: z64.example}\n");
	expect_error(yaml, 70, "source 'over': 'dnsbl-zones' and the zones of the filter sources make more than 64 zones");
}

static void test_config_filter_rejects_source_without_name(void)
{
	expect_error("filter:\n  sources:\n    - {type: dnsbl, zone: zen.spamhaus.org}\n", 3, "a source needs 'name'");
}

static void test_config_filter_rejects_bad_source_name(void)
{
	expect_error("filter:\n  sources:\n    - {name: Ads!, type: dnsbl, zone: zen.spamhaus.org}\n", 3,
	             "source name 'Ads!': bad character (a-z, 0-9, '-' and '_' only)");
}

static void test_config_filter_rejects_long_source_name(void)
{
	char yaml[256];
	snprintf(yaml, sizeof yaml, "filter:\n  sources:\n    - {name: %064d, type: dnsbl, zone: a.example}\n", 0);
	char want[160];
	snprintf(want, sizeof want, "source name '%064d': longer than 63 characters", 0);
	expect_error(yaml, 3, want);
}

static void test_config_filter_rejects_duplicate_source_name(void)
{
	expect_error("filter:\n  sources:\n"
	             "    - {name: zen, type: dnsbl, zone: zen.spamhaus.org}\n"
	             "    - name: zen\n"
	             "      type: rhsbl\n"
	             "      zone: dbl.spamhaus.org\n", 4,
	             "duplicate source name 'zen'");
}

static void test_config_filter_rejects_source_without_type(void)
{
	expect_error("filter:\n  sources:\n    - {name: zen, zone: zen.spamhaus.org}\n", 3, "source 'zen' needs 'type'");
}

static void test_config_filter_rejects_bad_source_type(void)
{
	expect_error("filter:\n  sources:\n    - name: zen\n      type: blocklist\n      zone: zen.spamhaus.org\n", 4,
	             "'type' must be one of list, rhsbl, dnsbl");
}

static void test_config_filter_rejects_bad_format(void)
{
	expect_error("filter:\n  sources:\n"
	             "    - {name: ads, type: list, format: csv, files: [" TEST_ROOT_HINTS "]}\n", 3,
	             "'format' must be one of hosts, domains, adblock, rpz");
}

static void test_config_filter_rejects_list_without_files(void)
{
	expect_error("filter:\n  sources:\n    - {name: ads, type: list}\n", 3,
	             "a list source needs at least one file in 'files'");
}

static void test_config_filter_rejects_list_with_empty_files(void)
{
	expect_error("filter:\n  sources:\n    - name: ads\n      type: list\n      files: []\n", 3,
	             "a list source needs at least one file in 'files'");
}

static void test_config_filter_rejects_unreadable_file(void)
{
	expect_error("filter:\n  sources:\n    - name: ads\n      type: list\n"
	             "      files:\n        - " TEST_ROOT_HINTS "\n        - /nonexistent/ads.hosts\n", 7,
	             "file '/nonexistent/ads.hosts': No such file or directory");
}

static void test_config_filter_rejects_directory_as_file(void)
{
	expect_error("filter:\n  sources:\n    - {name: ads, type: list, files: /tmp}\n", 3,
	             "file '/tmp': not a regular file");
}

static void test_config_filter_rejects_too_many_files(void)
{
	expect_error("filter:\n  sources:\n    - name: ads\n      type: list\n      files:\n"
	             "        - " TEST_ROOT_HINTS "\n        - " TEST_ROOT_HINTS "\n        - " TEST_ROOT_HINTS "\n"
	             "        - " TEST_ROOT_HINTS "\n        - " TEST_ROOT_HINTS "\n        - " TEST_ROOT_HINTS "\n"
	             "        - " TEST_ROOT_HINTS "\n        - " TEST_ROOT_HINTS "\n        - " TEST_ROOT_HINTS "\n", 14,
	             "'files' has more than 8 paths");
}

static void test_config_filter_rejects_bad_action(void)
{
	expect_error("filter:\n  sources:\n    - {name: zen, type: dnsbl, zone: zen.spamhaus.org, action: block}\n", 3,
	             "'action' must be one of nxdomain, nodata, refused, sinkhole, log-only");
}

static void test_config_filter_rejects_zone_on_a_list(void)
{
	expect_error("filter:\n  sources:\n    - name: ads\n      type: list\n      files: " TEST_ROOT_HINTS "\n"
	             "      zone: ads.example\n", 6,
	             "'zone' does not apply to a list source");
}

static void test_config_filter_rejects_files_on_a_dnsbl(void)
{
	/* The file does not exist either: a dnsbl source has no files to check. */
	expect_error("filter:\n  sources:\n    - name: zen\n      files: [/nonexistent/zen]\n      type: dnsbl\n"
	             "      zone: zen.spamhaus.org\n", 4,
	             "'files' does not apply to a dnsbl source");
}

static void test_config_filter_rejects_codes_on_a_list(void)
{
	expect_error("filter:\n  sources:\n"
	             "    - {name: ads, type: list, files: " TEST_ROOT_HINTS ", codes: [127.0.0.2]}\n", 3,
	             "'codes' does not apply to a list source");
}

static void test_config_filter_rejects_allow_on_an_rhsbl(void)
{
	expect_error("filter:\n  sources:\n    - name: dbl\n      type: rhsbl\n      zone: dbl.spamhaus.org\n"
	             "      allow: true\n", 6,
	             "'allow' does not apply to an rhsbl source");
}

static void test_config_filter_rejects_dnsbl_without_zone(void)
{
	expect_error("filter:\n  sources:\n    - {name: dbl, type: rhsbl, codes: [127.0.1.2]}\n", 3,
	             "an rhsbl source needs 'zone'");
}

static void test_config_filter_rejects_bad_zone_name(void)
{
	expect_error("filter:\n  sources:\n    - name: zen\n      type: dnsbl\n      zone: zen..spamhaus.org\n", 5,
	             "zone: 'zen..spamhaus.org': empty label");
}

static void test_config_filter_rejects_bad_code(void)
{
	expect_error("filter:\n  sources:\n    - name: zen\n      type: dnsbl\n      zone: zen.spamhaus.org\n"
	             "      codes:\n        - 127.0.0.2\n        - 127.0.0.2-127.0.0.x\n", 8,
	             "code '127.0.0.2-127.0.0.x': bad IPv4 address");
}

static void test_config_filter_rejects_reversed_code_range(void)
{
	expect_error("filter:\n  sources:\n"
	             "    - {name: zen, type: dnsbl, zone: zen.spamhaus.org, codes: [\"127.0.0.11-127.0.0.2\"]}\n", 3,
	             "code '127.0.0.11-127.0.0.2': the range starts above its end");
}

static void test_config_filter_rejects_too_many_codes(void)
{
	char yaml[1024];
	size_t n = (size_t)snprintf(yaml, sizeof yaml,
	                            "filter:\n  sources:\n    - name: zen\n      type: dnsbl\n      zone: zen.spamhaus.org\n"
	                            "      codes:\n");
	for (int i = 0; i < 17; i++)
		n += (size_t)snprintf(yaml + n, sizeof yaml - n, "        - 127.0.0.%d\n", i + 2);
	expect_error(yaml, 23, "'codes' has more than 16 codes");
}

static void test_config_filter_rejects_timeout_out_of_range(void)
{
	expect_error("filter:\n  sources:\n    - {name: zen, type: dnsbl, zone: zen.spamhaus.org, timeout: 11s}\n", 3,
	             "'timeout' must be between 10ms and 10s");
	expect_error("filter:\n  sources:\n    - {name: zen, type: dnsbl, zone: zen.spamhaus.org, timeout: 9ms}\n", 3,
	             "'timeout' must be between 10ms and 10s");
}

static void test_config_filter_rejects_bad_server(void)
{
	expect_error("filter:\n  sources:\n    - name: zen\n      type: dnsbl\n      zone: zen.spamhaus.org\n"
	             "      servers: [127.0.10.3, 127.0.10.300]\n", 6,
	             "server '127.0.10.300': bad IPv4 address");
	expect_error("filter:\n  sources:\n    - name: zen\n      type: dnsbl\n      zone: zen.spamhaus.org\n"
	             "      servers: [ns1.example]\n", 6,
	             "server 'ns1.example': bad address (an IPv4 or IPv6 address, not a name)");
	expect_error("filter:\n  sources:\n    - name: zen\n      type: dnsbl\n      zone: zen.spamhaus.org\n"
	             "      servers: \"127.0.10.3:0\"\n", 6,
	             "server '127.0.10.3:0': the port must be between 1 and 65535");
	expect_error("filter:\n  sources:\n    - name: zen\n      type: dnsbl\n      zone: zen.spamhaus.org\n"
	             "      servers: [\"[::1]\", \"::1\"]\n", 6,
	             "server '::1' is listed twice");
}

static void test_config_filter_rejects_unknown_key_in_source(void)
{
	expect_error("filter:\n  sources:\n    - {name: zen, type: dnsbl, zone: zen.spamhaus.org, zones: [x]}\n", 3,
	             "unknown key 'zones' in a filter source");
}

static void test_config_filter_rejects_source_not_a_mapping(void)
{
	expect_error("filter:\n  sources:\n    - zen.spamhaus.org\n", 3,
	             "filter sources must be mappings such as {name: ads, type: list, files: [/etc/ads.hosts]}");
}

static void test_config_filter_rejects_scope_unknown_source(void)
{
	expect_error("filter:\n  sources:\n    - {name: zen, type: dnsbl, zone: zen.spamhaus.org}\n"
	             "  scope:\n    - network: 10.0.0.0/8\n      sources:\n        - zen\n        - zne\n", 8,
	             "unknown source 'zne'");
}

static void test_config_filter_scope_names_no_rejected_source_twice(void)
{
	/* The source's own error is enough: its name is not "unknown" as well. */
	expect_error("filter:\n  scope: [{network: 10.0.0.0/8, sources: [zen]}]\n"
	             "  sources:\n    - {name: zen, type: dnsbl, zone: zen.spamhaus.org, timeout: 1h}\n", 4,
	             "'timeout' must be between 10ms and 10s");
}

static void test_config_filter_rejects_scope_bad_cidr(void)
{
	expect_error("filter:\n  scope:\n    - {network: 10.0.0.300/8, sources: []}\n", 3,
	             "network '10.0.0.300/8': bad address");
}

static void test_config_filter_rejects_scope_duplicate_network(void)
{
	expect_error("filter:\n  scope:\n    - {network: 10.0.0.0/8, sources: []}\n"
	             "    - {network: 10.0.0.0/8, sources: []}\n", 4,
	             "network '10.0.0.0/8': duplicate prefix");
}

static void test_config_filter_rejects_scope_without_network(void)
{
	expect_error("filter:\n  scope:\n    - {sources: []}\n", 3, "a scope entry needs 'network'");
}

static void test_config_filter_rejects_sinkhole_a_not_ipv4(void)
{
	expect_error("filter:\n  sinkhole-a: \"::1\"\n", 2, "'sinkhole-a' must be an IPv4 address such as 0.0.0.0");
}

static void test_config_filter_rejects_sinkhole_aaaa_not_ipv6(void)
{
	expect_error("filter:\n  sinkhole-aaaa: 0.0.0.0\n", 2, "'sinkhole-aaaa' must be an IPv6 address such as ::");
}

static void test_config_filter_rejects_ttl_out_of_range(void)
{
	expect_error("filter:\n  ttl: 2d\n", 2, "'ttl' must be between 0 and 1d");
}

static void test_config_filter_rejects_health_interval_too_short(void)
{
	expect_error("filter:\n  health-interval: 9s\n", 2, "'health-interval' must be between 10s and 1d");
}

static void test_config_filter_rejects_sources_not_a_list(void)
{
	expect_error("filter:\n  sources: {name: zen}\n", 2,
	             "'sources' must be a list of sources such as {name: ads, type: list, files: [/etc/ads.hosts]}");
}

static void test_config_filter_reports_every_error(void)
{
	struct load l;
	load_yaml("filter:\n"
	          "  sources:\n"
	          "    - {name: a, type: list, zone: x.example}\n"
	          "    - {name: b, type: dnsbl, zone: b.example, codes: [1.2.3]}\n"
	          "  scope: [{network: 10.0.0.0/8, sources: [b]}]\n", &l);
	CU_ASSERT_EQUAL(l.rc, 3);
	CU_ASSERT_PTR_NULL(l.cfg);
	char want[1024];
	snprintf(want, sizeof want,
	         "%s:3: 'zone' does not apply to a list source\n"
	         "%s:3: a list source needs at least one file in 'files'\n"
	         "%s:4: code '1.2.3': bad IPv4 address\n",
	         l.path, l.path, l.path);
	CU_ASSERT_STRING_EQUAL(l.errs, want);
	if (strcmp(l.errs, want) != 0)
		fprintf(stderr, "\n  want: %s  got:  %s", want, l.errs);
	load_done(&l);
}

/* The shipped profiles must stay loadable too, from the source root. */
static void test_config_mail_server_profile_loads(void)
{
	struct config *cfg = NULL;
	int rc = config_load("deploy/profiles/mail-server.yaml", &cfg, stderr);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL_FATAL(cfg->listen_count, 2);
	check_v4(&cfg->listen[0], "127.0.0.1", 53);
	check_v6(&cfg->listen[1], "::1", 53);
	CU_ASSERT_PTR_NULL(cfg->user);
	CU_ASSERT_STRING_EQUAL(cfg->cache_dir, "/var/lib/mxresolved");
	CU_ASSERT_EQUAL(cfg->cache_size, 1ull << 30);
	CU_ASSERT_EQUAL(cfg->access_default, CONFIG_ACCESS_REFUSE);
	CU_ASSERT_EQUAL(cfg->access_rule_count, 2);
	const struct config_partition *mail = &cfg->partitions[1];
	CU_ASSERT(mail->quota > 0);
	static const uint16_t floored[] = { 15, 16, 12, 1, 28, 52 };  /* MX TXT PTR A AAAA TLSA */
	CU_ASSERT_EQUAL_FATAL(mail->type_count, sizeof floored / sizeof floored[0]);
	for (unsigned i = 0; i < mail->type_count; i++) {
		CU_ASSERT_EQUAL(mail->types[i].qtype, floored[i]);
		CU_ASSERT_EQUAL(mail->types[i].ttl.min_ttl, 60);
	}
	CU_ASSERT_EQUAL_FATAL(cfg->dnsbl_zone_count, 3);
	CU_ASSERT_STRING_EQUAL(cfg->dnsbl_zones[0].name, "zen.spamhaus.org");
	CU_ASSERT_STRING_EQUAL(cfg->dnsbl_zones[1].name, "dbl.spamhaus.org");
	CU_ASSERT_STRING_EQUAL(cfg->dnsbl_zones[2].name, "multi.surbl.org");
	for (unsigned i = 0; i < cfg->dnsbl_zone_count; i++)
		CU_ASSERT_EQUAL(cfg->dnsbl_zones[i].negative_min_ttl, 300);
	/* Both filter zones are among dnsbl-zones already: none is added. */
	CU_ASSERT_EQUAL_FATAL(cfg->filter_source_count, 2);
	const struct config_source *dbl = &cfg->filter_sources[0], *zen = &cfg->filter_sources[1];
	CU_ASSERT_EQUAL(dbl->type, CONFIG_SOURCE_RHSBL);
	CU_ASSERT_STRING_EQUAL(dbl->zone, "dbl.spamhaus.org");
	CU_ASSERT_EQUAL_FATAL(dbl->code_count, 1);
	CU_ASSERT_STRING_EQUAL(dbl->codes[0], "127.0.1.2-127.0.1.99");
	CU_ASSERT_EQUAL(dbl->action, CONFIG_ACTION_NXDOMAIN);
	CU_ASSERT_EQUAL(zen->type, CONFIG_SOURCE_DNSBL);
	CU_ASSERT_STRING_EQUAL(zen->zone, "zen.spamhaus.org");
	CU_ASSERT_EQUAL_FATAL(zen->code_count, 1);
	CU_ASSERT_STRING_EQUAL(zen->codes[0], "127.0.0.2-127.0.0.11");
	CU_ASSERT_EQUAL(zen->action, CONFIG_ACTION_NXDOMAIN);
	CU_ASSERT_EQUAL(cfg->filter_scope_count, 0);
	config_free(cfg);
}

static void test_config_network_filter_profile_loads(void)
{
	struct config *cfg = NULL;
	int rc = config_load("deploy/profiles/network-filter.yaml", &cfg, stderr);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL_FATAL(cfg->listen_count, 2);
	check_v4(&cfg->listen[0], "0.0.0.0", 53);
	check_v6(&cfg->listen[1], "::", 53);
	CU_ASSERT_EQUAL(cfg->access_default, CONFIG_ACCESS_REFUSE);
	static const char *const allowed[] = { "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8",
		                               "127.0.0.0/8", "::1/128" };
	CU_ASSERT_EQUAL_FATAL(cfg->access_rule_count, sizeof allowed / sizeof allowed[0]);
	for (unsigned i = 0; i < cfg->access_rule_count; i++) {
		CU_ASSERT_STRING_EQUAL(cfg->access_rules[i].network, allowed[i]);
		CU_ASSERT_EQUAL(cfg->access_rules[i].action, CONFIG_ACCESS_ALLOW);
	}
	CU_ASSERT_EQUAL(cfg->ratelimit_qps, 200);
	CU_ASSERT_EQUAL(cfg->ratelimit_slip, 2);
	CU_ASSERT(cfg->partitions[0].quota > cfg->partitions[1].quota);
	/* Its list source is an example: the file it names does not exist here. */
	CU_ASSERT_EQUAL(cfg->filter_source_count, 0);
	config_free(cfg);
}

static void test_config_accepts_null_errs_stream(void)
{
	char path[] = "/tmp/test_config_XXXXXX";
	int fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, "bogus: 1\n", 9) == 9);
	close(fd);
	struct config *cfg = (struct config *)0x1;
	CU_ASSERT_EQUAL(config_load(path, &cfg, NULL), 1);
	CU_ASSERT_PTR_NULL(cfg);
	unlink(path);
	config_free(NULL);
}

/* The defaults name Debian's root data files: without them nothing loads. */
static int suite_init(void)
{
	if (access(TEST_ROOT_HINTS, R_OK) != 0 || access(TEST_ROOT_KEY, R_OK) != 0) {
		fprintf(stderr, "test_config: %s and %s are needed (apt-get install dns-root-data)\n",
		        TEST_ROOT_HINTS, TEST_ROOT_KEY);
		return -1;
	}
	return 0;
}

/* ---- web: ---------------------------------------------------------- */

static void test_config_web_defaults(void)
{
	struct load l;
	load_yaml("", &l);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_EQUAL_FATAL(l.cfg->web_listen_count, 1);
	check_v4(&l.cfg->web_listen[0], "127.0.0.1", 8053);
	CU_ASSERT_EQUAL(l.cfg->web_allow_count, 2);
	CU_ASSERT_STRING_EQUAL(l.cfg->web_allow[0].network, "127.0.0.0/8");
	CU_ASSERT_PTR_NULL(l.cfg->web_token);
	CU_ASSERT_PTR_NULL(l.cfg->web_tls_cert);
	CU_ASSERT_EQUAL(l.cfg->web_max_connections, 32);
	CU_ASSERT_EQUAL(l.cfg->web_timeout_ms, 10000);
	CU_ASSERT_FALSE(l.cfg->web_anonymize);
	CU_ASSERT_EQUAL(l.cfg->web_query_log_size, 4096);
	CU_ASSERT_EQUAL(l.cfg->web_save_interval_ms, 300000);
	load_done(&l);
}

static void test_config_web_every_key(void)
{
	struct load l;
	load_yaml("web:\n"
	          "  listen: [\"127.0.0.1:9053\", \"[::1]:9053\"]\n"
	          "  allow: [10.0.0.0/8]\n"
	          "  token: abcdefghijklmnopqrstuvwxyz\n"
	          "  max-connections: 8\n"
	          "  connection-timeout: 3s\n"
	          "  anonymize-clients: yes\n"
	          "  query-log-size: 1024\n"
	          "  save-interval: 1m\n",
	          &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_STRING_EQUAL(l.errs, "");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_EQUAL_FATAL(l.cfg->web_listen_count, 2);
	check_v4(&l.cfg->web_listen[0], "127.0.0.1", 9053);
	check_v6(&l.cfg->web_listen[1], "::1", 9053);
	CU_ASSERT_EQUAL_FATAL(l.cfg->web_allow_count, 1);
	CU_ASSERT_STRING_EQUAL(l.cfg->web_allow[0].network, "10.0.0.0/8");
	CU_ASSERT_STRING_EQUAL(l.cfg->web_token, "abcdefghijklmnopqrstuvwxyz");
	CU_ASSERT_EQUAL(l.cfg->web_max_connections, 8);
	CU_ASSERT_EQUAL(l.cfg->web_timeout_ms, 3000);
	CU_ASSERT_TRUE(l.cfg->web_anonymize);
	CU_ASSERT_EQUAL(l.cfg->web_query_log_size, 1024);
	CU_ASSERT_EQUAL(l.cfg->web_save_interval_ms, 60000);
	/* The DNS side keeps its own listen addresses and exemptions. */
	CU_ASSERT_EQUAL(l.cfg->listen_count, 2);
	CU_ASSERT_EQUAL(l.cfg->ratelimit_exempt_count, 2);
	load_done(&l);
}

static void test_config_web_listen_may_be_empty(void)
{
	struct load l;
	load_yaml("web:\n  listen: []\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_EQUAL(l.cfg->web_listen_count, 0);
	load_done(&l);
	load_yaml("web:\n  listen:\n", &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_EQUAL(l.cfg->web_listen_count, 0);
	load_done(&l);
	/* ... but the DNS side may not. */
	expect_error("server:\n  listen: []\n", 2, "'listen' needs at least one address");
}

static void test_config_web_errors(void)
{
	expect_error("web:\n  token: short\n", 2, "'token' must be at least 16 characters long");
	expect_error("web:\n  token: \"0123456789 abcdef\"\n", 2, "'token' must be printable ASCII without spaces");
	expect_error("web:\n  tls-cert: /etc/hostname\n", 2, "'tls-cert' and 'tls-key' go together: set both or neither");
	expect_error("web:\n  tls-cert: /etc/hostname\n  tls-key: /nonexistent/key.pem\n", 3,
	             "tls-key: /nonexistent/key.pem: No such file or directory");
	expect_error("web:\n  query-log-size: 1000\n", 2, "'query-log-size' must be 0 or a power of two, such as 4096");
	expect_error("web:\n  listen: [\"127.0.0.1:9053\", \"127.0.0.1:9053\"]\n", 2,
	             "listen: '127.0.0.1:9053' is listed twice");
	expect_error("web:\n  allow: [10.0.0.0/33]\n", 2, "network '10.0.0.0/33': prefix length out of range (0..32)");
	expect_error("web:\n  max-connections: 0\n", 2, "'max-connections' must be between 1 and 1024");
	expect_error("web:\n  colour: blue\n", 2, "unknown key 'colour' in section 'web'");
}

static void test_config_editable_source(void)
{
	char path[] = "/tmp/test_config_list_XXXXXX";
	int fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	char yaml[512];
	snprintf(yaml, sizeof yaml,
	         "filter:\n  sources:\n    - name: mine\n      type: list\n      format: domains\n"
	         "      editable: true\n      files: [%s]\n", path);
	struct load l;
	load_yaml(yaml, &l);
	CU_ASSERT_EQUAL(l.rc, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l.cfg);
	CU_ASSERT_TRUE(l.cfg->filter_sources[0].editable);
	load_done(&l);
	snprintf(yaml, sizeof yaml,
	         "filter:\n  sources:\n    - name: mine\n      type: list\n      format: hosts\n"
	         "      editable: true\n      files: [%s]\n", path);
	expect_error(yaml, 6, "source 'mine': 'editable' needs 'format: domains'");
	expect_error("filter:\n  sources:\n    - name: bl\n      type: dnsbl\n      zone: bl.example\n"
	             "      editable: true\n",
	             6, "'editable' does not apply to a dnsbl source");
	unlink(path);
}

int main(void)
{
	static const struct unit_test tests[] = {
		T(test_config_loads_every_field),
		T(test_config_web_defaults),
		T(test_config_web_every_key),
		T(test_config_web_listen_may_be_empty),
		T(test_config_web_errors),
		T(test_config_editable_source),
		T(test_config_empty_file_gives_defaults),
		T(test_config_comments_only_gives_defaults),
		T(test_config_empty_sections_give_defaults),
		T(test_config_listen_accepts_one_scalar),
		T(test_config_units_and_bounds_are_inclusive),
		T(test_config_dnssec_off_ignores_missing_trust_anchor),
		T(test_config_deploy_file_loads),
		T(test_config_rejects_missing_file),
		T(test_config_rejects_unknown_section),
		T(test_config_rejects_unknown_key),
		T(test_config_rejects_key_in_wrong_section),
		T(test_config_rejects_duplicate_key),
		T(test_config_rejects_duplicate_section),
		T(test_config_rejects_section_that_is_not_a_mapping),
		T(test_config_rejects_listen_of_wrong_type),
		T(test_config_rejects_listen_bad_address),
		T(test_config_rejects_listen_hostname),
		T(test_config_rejects_listen_missing_port),
		T(test_config_rejects_listen_ipv6_missing_port),
		T(test_config_rejects_listen_port_zero),
		T(test_config_rejects_listen_port_70000),
		T(test_config_rejects_listen_port_not_a_number),
		T(test_config_rejects_ipv6_without_brackets),
		T(test_config_rejects_too_many_listen_entries),
		T(test_config_rejects_empty_listen),
		T(test_config_rejects_listen_twice_same_address),
		T(test_config_rejects_negative_workers),
		T(test_config_rejects_workers_not_a_number),
		T(test_config_rejects_workers_with_trailing_junk),
		T(test_config_rejects_workers_too_large),
		T(test_config_rejects_workers_sequence),
		T(test_config_rejects_threads_and_hot_size_out_of_range),
		T(test_config_rejects_bad_log_level),
		T(test_config_rejects_bad_duration_unit),
		T(test_config_rejects_duration_out_of_range),
		T(test_config_rejects_duration_too_short),
		T(test_config_rejects_fractional_seconds_ttl),
		T(test_config_rejects_servfail_ttl_too_long),
		T(test_config_rejects_size_bad_suffix),
		T(test_config_rejects_size_overflow),
		T(test_config_rejects_size_multiplication_overflow),
		T(test_config_rejects_bad_boolean),
		T(test_config_rejects_missing_root_hints),
		T(test_config_rejects_root_hints_directory),
		T(test_config_rejects_missing_trust_anchor_with_dnssec),
		T(test_config_rejects_empty_directory),
		T(test_config_rejects_directory_without_value),
		T(test_config_rejects_nul_in_string),
		T(test_config_rejects_unclosed_bracket),
		T(test_config_rejects_top_level_sequence),
		T(test_config_rejects_top_level_scalar),
		T(test_config_rejects_tab_indentation),
		T(test_config_rejects_second_document),
		T(test_config_rejects_invalid_utf8),
		T(test_config_accepts_trailing_document_marker),
		T(test_config_reports_every_error),
		T(test_config_empty_rules_mean_no_rules),
		T(test_config_empty_strings_mean_none),
		T(test_config_quota_equal_to_size_is_accepted),
		T(test_config_rejects_bad_access_default),
		T(test_config_rejects_bad_rule_action),
		T(test_config_rejects_bad_cidr),
		T(test_config_rejects_cidr_prefix_too_long),
		T(test_config_rejects_cidr_host_bits),
		T(test_config_rejects_duplicate_network),
		T(test_config_rejects_duplicate_exempt_network),
		T(test_config_rejects_rule_not_a_mapping),
		T(test_config_rejects_unknown_key_in_rule),
		T(test_config_rejects_rule_without_network),
		T(test_config_rejects_rule_without_action),
		T(test_config_rejects_rules_not_a_list),
		T(test_config_rejects_ipv4_prefix_out_of_range),
		T(test_config_rejects_ipv6_prefix_out_of_range),
		T(test_config_rejects_unknown_partition),
		T(test_config_rejects_unknown_key_in_partition),
		T(test_config_rejects_unknown_rr_type),
		T(test_config_rejects_rr_type_number_out_of_range),
		T(test_config_rejects_duplicate_rr_type),
		T(test_config_rejects_min_ttl_above_max_ttl),
		T(test_config_rejects_negative_min_ttl_above_max_ttl),
		T(test_config_rejects_type_min_ttl_above_inherited_max),
		T(test_config_rejects_quotas_above_size),
		T(test_config_rejects_bad_dnsbl_zone_name),
		T(test_config_rejects_dnsbl_zone_bad_character),
		T(test_config_rejects_dnsbl_zone_long_label),
		T(test_config_rejects_duplicate_dnsbl_zone),
		T(test_config_rejects_dnsbl_zone_without_zone),
		T(test_config_rejects_unknown_user),
		T(test_config_rejects_unknown_group),
		T(test_config_rejects_control_socket_path_too_long),
		T(test_config_rejects_stale_ttl_out_of_range),
		T(test_config_rejects_stale_answer_after_too_short),
		T(test_config_rejects_prefetch_percent_out_of_range),
		T(test_config_reports_every_error_in_nested_sections),
		T(test_config_filter_loads_every_key),
		T(test_config_filter_bounds_are_inclusive),
		T(test_config_filter_empty_section_gives_defaults),
		T(test_config_filter_zones_join_dnsbl_zones),
		T(test_config_filter_rejects_too_many_dnsbl_zones),
		T(test_config_filter_rejects_source_without_name),
		T(test_config_filter_rejects_bad_source_name),
		T(test_config_filter_rejects_long_source_name),
		T(test_config_filter_rejects_duplicate_source_name),
		T(test_config_filter_rejects_source_without_type),
		T(test_config_filter_rejects_bad_source_type),
		T(test_config_filter_rejects_bad_format),
		T(test_config_filter_rejects_list_without_files),
		T(test_config_filter_rejects_list_with_empty_files),
		T(test_config_filter_rejects_unreadable_file),
		T(test_config_filter_rejects_directory_as_file),
		T(test_config_filter_rejects_too_many_files),
		T(test_config_filter_rejects_bad_action),
		T(test_config_filter_rejects_zone_on_a_list),
		T(test_config_filter_rejects_files_on_a_dnsbl),
		T(test_config_filter_rejects_codes_on_a_list),
		T(test_config_filter_rejects_allow_on_an_rhsbl),
		T(test_config_filter_rejects_dnsbl_without_zone),
		T(test_config_filter_rejects_bad_zone_name),
		T(test_config_filter_rejects_bad_code),
		T(test_config_filter_rejects_reversed_code_range),
		T(test_config_filter_rejects_too_many_codes),
		T(test_config_filter_rejects_timeout_out_of_range),
		T(test_config_filter_rejects_bad_server),
		T(test_config_filter_rejects_unknown_key_in_source),
		T(test_config_filter_rejects_source_not_a_mapping),
		T(test_config_filter_rejects_scope_unknown_source),
		T(test_config_filter_scope_names_no_rejected_source_twice),
		T(test_config_filter_rejects_scope_bad_cidr),
		T(test_config_filter_rejects_scope_duplicate_network),
		T(test_config_filter_rejects_scope_without_network),
		T(test_config_filter_rejects_sinkhole_a_not_ipv4),
		T(test_config_filter_rejects_sinkhole_aaaa_not_ipv6),
		T(test_config_filter_rejects_ttl_out_of_range),
		T(test_config_filter_rejects_health_interval_too_short),
		T(test_config_filter_rejects_sources_not_a_list),
		T(test_config_filter_reports_every_error),
		T(test_config_mail_server_profile_loads),
		T(test_config_network_filter_profile_loads),
		T(test_config_accepts_null_errs_stream),
	};
	return unit_run("config", suite_init, NULL, tests, UNIT_COUNT(tests));
}
