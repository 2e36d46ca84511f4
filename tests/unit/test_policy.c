/* test_policy.c -- unit tests of resolver/policy: client scopes to source
 * masks, names under DNSBL/RHSBL zones exempt, list checks (exact and
 * subtree rules, allow over block, masks, log-only, RPZ verdicts) and the
 * blocked replies, decoded back from their bytes. */
#include "policy.h"
#include "unit.h"
#include "wire.h"

#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* The configuration every test uses, built by hand in a mkdtemp directory. */

enum {
	SRC_HOSTS = 0,  /* hosts, nxdomain */
	SRC_DOMAINS,    /* domains, nodata */
	SRC_ADBLOCK,    /* adblock, refused */
	SRC_RPZ,        /* rpz, nxdomain (its triggers decide) */
	SRC_ALLOW,      /* domains allow list */
	SRC_WATCH,      /* domains, log-only */
	SRC_SINK,       /* domains, sinkhole */
	SRC_DBL,        /* rhsbl dbl.example.test, refused */
	SRC_ZEN,        /* dnsbl zen.dnsbl.test, nxdomain */
	SRC_COUNT
};

static char tmpdir[64];
static struct config *cfg;
static struct policy *pol;

static const char hosts_text[] =
	"# hosts\n"
	"0.0.0.0 ads.example.com\n"
	"127.0.0.1 Tracker.Example.NET\n";
static const char domains_text[] =
	"tracker.example.net\n"
	"*.wild.example.net\n";
static const char adblock_text[] =
	"! adblock\n"
	"||adnet.example.org^\n"
	"##.banner\n";
static const char rpz_text[] =
	"$TTL 300\n"
	"$ORIGIN rpz.local.\n"
	"nx.example.com CNAME .\n"
	"nodata.example.com CNAME *.\n"
	"local.example.com 120 A 192.0.2.1\n"
	"local.example.com 120 A 192.0.2.2\n"
	"local.example.com TXT \"walled\"\n";
static const char allow_text[] =
	"good.tracker.example.net\n";
static const char watch_text[] =
	"watched.example\n"
	"ads.example.com\n";
static const char sink_text[] =
	"sink.example\n";

static char *write_file(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return NULL;
	fputs(text, f);
	fclose(f);
	return strdup(path);
}

static void add_list(struct config *c, unsigned i, const char *name, enum config_list_format fmt,
                     enum config_action action, bool allow, const char *file, const char *text)
{
	struct config_source *s = &c->filter_sources[i];
	snprintf(s->name, sizeof s->name, "%s", name);
	s->type = CONFIG_SOURCE_LIST;
	s->format = fmt;
	s->action = action;
	s->allow = allow;
	s->files[0] = write_file(file, text);
	s->file_count = 1;
	if (i >= c->filter_source_count)
		c->filter_source_count = i + 1;
}

static void add_zone(struct config *c, unsigned i, const char *name, enum config_source_type type,
                     enum config_action action, const char *zone)
{
	struct config_source *s = &c->filter_sources[i];
	snprintf(s->name, sizeof s->name, "%s", name);
	s->type = type;
	s->action = action;
	snprintf(s->zone, sizeof s->zone, "%s", zone);
	s->timeout_ms = 500;
	s->fail_open = true;
	if (i >= c->filter_source_count)
		c->filter_source_count = i + 1;
}

static void add_scope(struct config *c, const char *cidr, uint64_t sources)
{
	struct config_scope *s = &c->filter_scopes[c->filter_scope_count++];
	snprintf(s->network, sizeof s->network, "%s", cidr);
	s->sources = sources;
	s->line = 10 + c->filter_scope_count;
}

static struct config *new_config(void)
{
	struct config *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->path = strdup("test.yaml");
	struct sockaddr_in *a = (struct sockaddr_in *)&c->sinkhole_a;
	a->sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.53", &a->sin_addr);
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&c->sinkhole_aaaa;
	a6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::53", &a6->sin6_addr);
	c->filter_ttl = 42;
	return c;
}

static void free_config(struct config *c)
{
	if (c == NULL)
		return;
	for (unsigned i = 0; i < CONFIG_MAX_SOURCES; i++)
		for (unsigned f = 0; f < c->filter_sources[i].file_count; f++)
			free(c->filter_sources[i].files[f]);
	free(c->path);
	free(c);
}

static int suite_init(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_policy.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	cfg = new_config();
	if (cfg == NULL)
		return -1;
	add_list(cfg, SRC_HOSTS, "hosts", CONFIG_FORMAT_HOSTS, CONFIG_ACTION_NXDOMAIN, false, "hosts.txt", hosts_text);
	add_list(cfg, SRC_DOMAINS, "domains", CONFIG_FORMAT_DOMAINS, CONFIG_ACTION_NODATA, false, "domains.txt",
	         domains_text);
	add_list(cfg, SRC_ADBLOCK, "adblock", CONFIG_FORMAT_ADBLOCK, CONFIG_ACTION_REFUSED, false, "adblock.txt",
	         adblock_text);
	add_list(cfg, SRC_RPZ, "rpz", CONFIG_FORMAT_RPZ, CONFIG_ACTION_NXDOMAIN, false, "rpz.zone", rpz_text);
	add_list(cfg, SRC_ALLOW, "allow", CONFIG_FORMAT_DOMAINS, CONFIG_ACTION_NXDOMAIN, true, "allow.txt",
	         allow_text);
	add_list(cfg, SRC_WATCH, "watch", CONFIG_FORMAT_DOMAINS, CONFIG_ACTION_LOG_ONLY, false, "watch.txt",
	         watch_text);
	add_list(cfg, SRC_SINK, "sink", CONFIG_FORMAT_DOMAINS, CONFIG_ACTION_SINKHOLE, false, "sink.txt", sink_text);
	add_zone(cfg, SRC_DBL, "dbl", CONFIG_SOURCE_RHSBL, CONFIG_ACTION_REFUSED, "dbl.example.test");
	add_zone(cfg, SRC_ZEN, "zen", CONFIG_SOURCE_DNSBL, CONFIG_ACTION_NXDOMAIN, "zen.dnsbl.test");
	for (unsigned i = 0; i < SRC_COUNT; i++)
		if (cfg->filter_sources[i].type == CONFIG_SOURCE_LIST && cfg->filter_sources[i].files[0] == NULL)
			return -1;
	add_scope(cfg, "10.0.0.0/8", 1u << SRC_HOSTS | 1u << SRC_DOMAINS);
	add_scope(cfg, "10.1.0.0/16", 1u << SRC_ADBLOCK);
	add_scope(cfg, "2001:db8::/32", 1u << SRC_SINK | 1u << SRC_ZEN);
	char err[512] = "";
	pol = policy_new(cfg, err, sizeof err);
	if (pol == NULL) {
		fprintf(stderr, "policy_new: %s\n", err);
		return -1;
	}
	return 0;
}

static int suite_cleanup(void)
{
	policy_free(pol);
	pol = NULL;
	for (unsigned i = 0; cfg != NULL && i < cfg->filter_source_count; i++)
		if (cfg->filter_sources[i].files[0] != NULL)
			unlink(cfg->filter_sources[i].files[0]);
	free_config(cfg);
	cfg = NULL;
	rmdir(tmpdir);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Queries and clients */

/* Write a query packet for name/qtype (EDNS with udp_size when edns) and
 * parse it into q with wire_parse_query. */
static void make_query(struct wire_query *q, const char *name, uint16_t qtype, bool edns, uint16_t udp_size)
{
	uint8_t pkt[512];
	size_t n = 0;
	memset(pkt, 0, sizeof pkt);
	pkt[0] = 0x12, pkt[1] = 0x34;
	pkt[2] = 0x01; /* RD */
	pkt[5] = 1;    /* QDCOUNT */
	pkt[11] = edns ? 1 : 0;
	n = WIRE_HEADER_LEN;
	/* Labels as written, case kept: the parser canonicalizes. */
	n += wname(pkt + n, name);
	pkt[n++] = (uint8_t)(qtype >> 8), pkt[n++] = (uint8_t)qtype;
	pkt[n++] = 0, pkt[n++] = WIRE_CLASS_IN;
	if (edns) {
		pkt[n++] = 0;                                  /* root owner */
		pkt[n++] = 0, pkt[n++] = WIRE_TYPE_OPT;
		pkt[n++] = (uint8_t)(udp_size >> 8), pkt[n++] = (uint8_t)udp_size;
		n += 4;                                        /* ext rcode, version, flags */
		n += 2;                                        /* rdlength 0 */
	}
	memset(q, 0, sizeof *q);
	CU_ASSERT_EQUAL_FATAL(wire_parse_query(pkt, n, q), WIRE_PARSE_OK);
	CU_ASSERT_FATAL(q->has_question);
}

static struct sockaddr_storage client4(const char *addr)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;
	a->sin_family = AF_INET;
	a->sin_port = htons(5353);
	CU_ASSERT_EQUAL(inet_pton(AF_INET, addr, &a->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage client6(const char *addr)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
	a->sin6_family = AF_INET6;
	a->sin6_port = htons(5353);
	CU_ASSERT_EQUAL(inet_pton(AF_INET6, addr, &a->sin6_addr), 1);
	return ss;
}

static uint64_t sources_of(const struct policy *p, struct sockaddr_storage ss)
{
	return policy_client_sources(p, (const struct sockaddr *)&ss);
}

/* ------------------------------------------------------------------ */
/* A tiny reply decoder */

struct reply {
	bool ok;            /* the message parsed to its end */
	uint16_t id, flags, qdcount, ancount, nscount, arcount;
	int rcode;          /* header rcode */
	bool tc;
	uint16_t an_type;   /* first answer's */
	uint32_t an_ttl;
	uint16_t an_rdlen;
	uint8_t an_rdata[256];
	uint16_t an_types[16];
	unsigned an_seen;
	bool has_opt;
	int ede;            /* -1 when no EDE option */
	char ede_text[128];
};

static size_t skip_name(const uint8_t *m, size_t len, size_t at)
{
	while (at < len) {
		uint8_t l = m[at];
		if (l == 0)
			return at + 1;
		if ((l & 0xC0) == 0xC0)
			return at + 2 <= len ? at + 2 : 0;
		if (l & 0xC0)
			return 0;
		at += 1u + l;
	}
	return 0;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static struct reply decode(const uint8_t *m, size_t len)
{
	struct reply r;
	memset(&r, 0, sizeof r);
	r.ede = -1;
	if (len < WIRE_HEADER_LEN)
		return r;
	r.id = rd16(m);
	r.flags = rd16(m + 2);
	r.rcode = r.flags & 0x0F;
	r.tc = (r.flags & 0x0200) != 0;
	r.qdcount = rd16(m + 4);
	r.ancount = rd16(m + 6);
	r.nscount = rd16(m + 8);
	r.arcount = rd16(m + 10);
	size_t at = WIRE_HEADER_LEN;
	for (unsigned i = 0; i < r.qdcount; i++) {
		at = skip_name(m, len, at);
		if (at == 0 || at + 4 > len)
			return r;
		at += 4;
	}
	unsigned total = (unsigned)r.ancount + r.nscount + r.arcount;
	for (unsigned i = 0; i < total; i++) {
		size_t owner = at;
		at = skip_name(m, len, at);
		if (at == 0 || at + 10 > len)
			return r;
		uint16_t type = rd16(m + at), rdlen = rd16(m + at + 8);
		uint32_t ttl = (uint32_t)rd16(m + at + 4) << 16 | rd16(m + at + 6);
		const uint8_t *rdata = m + at + 10;
		if (at + 10 + rdlen > len)
			return r;
		if (i < r.ancount) {
			if (r.an_seen < 16)
				r.an_types[r.an_seen] = type;
			if (r.an_seen++ == 0) {
				r.an_type = type;
				r.an_ttl = ttl;
				r.an_rdlen = rdlen;
				memcpy(r.an_rdata, rdata, rdlen < sizeof r.an_rdata ? rdlen : sizeof r.an_rdata);
			}
		} else if (i >= (unsigned)r.ancount + r.nscount && type == WIRE_TYPE_OPT && m[owner] == 0) {
			r.has_opt = true;
			for (size_t o = 0; o + 4 <= rdlen;) {
				uint16_t code = rd16(rdata + o), olen = rd16(rdata + o + 2);
				if (o + 4 + olen > rdlen)
					return r;
				if (code == 15 && olen >= 2) {
					r.ede = rd16(rdata + o + 4);
					size_t tl = olen - 2u < sizeof r.ede_text - 1 ? olen - 2u : sizeof r.ede_text - 1;
					memcpy(r.ede_text, rdata + o + 6, tl);
					r.ede_text[tl] = 0;
				}
				o += 4u + olen;
			}
		}
		at += 10u + rdlen;
	}
	r.ok = at == len;
	return r;
}

/* Check q's name under mask and build the reply for the verdict into r. */
static bool check_and_reply(const char *name, uint16_t qtype, uint64_t mask, bool edns, struct policy_verdict *v,
                            struct reply *r)
{
	struct wire_query q;
	make_query(&q, name, qtype, edns, 1232);
	memset(v, 0, sizeof *v);
	v->source = -1;
	if (!policy_check_lists(pol, &q, mask, v))
		return false;
	uint8_t out[1232];
	size_t n = policy_build_reply(pol, &q, v, wire_udp_limit(&q), out, sizeof out);
	CU_ASSERT(n > 0);
	*r = decode(out, n);
	CU_ASSERT(r->ok);
	CU_ASSERT_EQUAL(r->id, 0x1234);
	CU_ASSERT(r->flags & 0x8000); /* QR */
	CU_ASSERT_EQUAL(r->qdcount, 1);
	return true;
}

static bool blocked(const char *name, uint64_t mask, struct policy_verdict *v)
{
	struct wire_query q;
	make_query(&q, name, WIRE_TYPE_A, true, 1232);
	memset(v, 0, sizeof *v);
	v->source = -1;
	return policy_check_lists(pol, &q, mask, v);
}

#define ALL_SOURCES (~0ULL)

/* ------------------------------------------------------------------ */
/* Client scopes */

static void test_policy_scope_longest_prefix_wins(void)
{
	CU_ASSERT_EQUAL(sources_of(pol, client4("10.2.3.4")), 1u << SRC_HOSTS | 1u << SRC_DOMAINS);
	CU_ASSERT_EQUAL(sources_of(pol, client4("10.1.3.4")), 1u << SRC_ADBLOCK);
	CU_ASSERT_EQUAL(sources_of(pol, client4("10.0.0.1")), 1u << SRC_HOSTS | 1u << SRC_DOMAINS);
}

static void test_policy_scope_unmatched_client_gets_no_source(void)
{
	CU_ASSERT_EQUAL(sources_of(pol, client4("192.0.2.1")), 0);
	CU_ASSERT_EQUAL(sources_of(pol, client4("11.0.0.1")), 0);
	CU_ASSERT_EQUAL(sources_of(pol, client6("2001:db9::1")), 0);
}

static void test_policy_scope_ipv6_client(void)
{
	CU_ASSERT_EQUAL(sources_of(pol, client6("2001:db8::1")), 1u << SRC_SINK | 1u << SRC_ZEN);
	CU_ASSERT_EQUAL(sources_of(pol, client6("2001:db8:ffff::1")), 1u << SRC_SINK | 1u << SRC_ZEN);
	/* IPv4-mapped addresses are matched as IPv4. */
	CU_ASSERT_EQUAL(sources_of(pol, client6("::ffff:10.1.0.9")), 1u << SRC_ADBLOCK);
}

static void test_policy_no_scopes_means_every_source(void)
{
	struct config *c = new_config();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	add_list(c, 0, "a", CONFIG_FORMAT_DOMAINS, CONFIG_ACTION_NXDOMAIN, false, "noscope-a.txt", "a.example\n");
	add_list(c, 1, "b", CONFIG_FORMAT_HOSTS, CONFIG_ACTION_NXDOMAIN, false, "noscope-b.txt", "0.0.0.0 b.example\n");
	add_zone(c, 2, "rbl", CONFIG_SOURCE_DNSBL, CONFIG_ACTION_NXDOMAIN, "rbl.example.test");
	add_zone(c, 3, "dom", CONFIG_SOURCE_RHSBL, CONFIG_ACTION_NXDOMAIN, "dom.example.test");
	char err[512] = "";
	struct policy *p = policy_new(c, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL(p);
	if (p != NULL) {
		CU_ASSERT_EQUAL(sources_of(p, client4("192.0.2.1")), 0xF);
		CU_ASSERT_EQUAL(sources_of(p, client6("2001:db8::1")), 0xF);
		CU_ASSERT_EQUAL(p->list_mask, 0x3);
		CU_ASSERT_EQUAL(p->dnsbl_mask, 0x4);
		CU_ASSERT_EQUAL(p->rhsbl_mask, 0x8);
	}
	policy_free(p);
	unlink(c->filter_sources[0].files[0]);
	unlink(c->filter_sources[1].files[0]);
	free_config(c);
}

/* ------------------------------------------------------------------ */
/* Exempt names */

static bool exempt(const char *name)
{
	uint8_t w[WIRE_MAX_NAME];
	size_t wl = wire_name_from_text(name, w);
	CU_ASSERT_FATAL(wl > 0);
	return policy_exempt(pol, w, wl);
}

static void test_policy_names_under_dnsbl_zones_are_exempt(void)
{
	CU_ASSERT(exempt("2.0.0.127.zen.dnsbl.test"));
	CU_ASSERT(exempt("zen.dnsbl.test"));
	CU_ASSERT(exempt("ZEN.DNSBL.test"));
	CU_ASSERT(exempt("ads.example.com.dbl.example.test"));
	CU_ASSERT(exempt("test.dbl.example.test"));
}

static void test_policy_exempt_needs_a_label_boundary(void)
{
	CU_ASSERT_FALSE(exempt("xzen.dnsbl.test"));
	CU_ASSERT_FALSE(exempt("2.0.0.127.xzen.dnsbl.test"));
	CU_ASSERT_FALSE(exempt("dnsbl.test"));
	CU_ASSERT_FALSE(exempt("notdbl.example.test"));
	CU_ASSERT_FALSE(exempt("example.test"));
	CU_ASSERT_FALSE(exempt("ads.example.com"));
	/* A label whose bytes spell the zone's tail does not count either. */
	uint8_t w[WIRE_MAX_NAME];
	static const uint8_t tricky[] = "\x10" "a\x03zen\x05" "dnsbl\x04test" "\x03zen\x05" "dnsbl\x04test";
	size_t wl = sizeof tricky; /* includes the final root byte (the NUL) */
	memcpy(w, tricky, wl);
	CU_ASSERT_TRUE(policy_exempt(pol, w, wl)); /* genuinely under the zone */
	static const uint8_t inside[] = "\x10" "x\x03zen\x05" "dnsbl\x04test"; /* then the root */
	CU_ASSERT_FALSE(policy_exempt(pol, inside, sizeof inside));
}

static void test_policy_exempt_names_are_never_blocked_by_lists(void)
{
	struct config *c = new_config();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	add_list(c, 0, "wide", CONFIG_FORMAT_DOMAINS, CONFIG_ACTION_NXDOMAIN, false, "wide.txt", "test\n");
	add_zone(c, 1, "zen", CONFIG_SOURCE_DNSBL, CONFIG_ACTION_NXDOMAIN, "zen.dnsbl.test");
	char err[512] = "";
	struct policy *p = policy_new(c, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL(p);
	if (p != NULL) {
		struct wire_query q;
		struct policy_verdict v;
		make_query(&q, "2.0.0.127.zen.dnsbl.test", WIRE_TYPE_A, true, 1232);
		CU_ASSERT_FALSE(policy_check_lists(p, &q, ALL_SOURCES, &v));
		make_query(&q, "2.0.0.127.xzen.dnsbl.test", WIRE_TYPE_A, true, 1232);
		CU_ASSERT_TRUE(policy_check_lists(p, &q, ALL_SOURCES, &v));
		CU_ASSERT_EQUAL(v.source, 0);
	}
	policy_free(p);
	unlink(c->filter_sources[0].files[0]);
	free_config(c);
}

/* ------------------------------------------------------------------ */
/* policy_check_lists */

static void test_policy_hosts_rule_blocks_exact_name_only(void)
{
	struct policy_verdict v;
	uint64_t m = 1u << SRC_HOSTS;
	CU_ASSERT_TRUE(blocked("ads.example.com", m, &v));
	CU_ASSERT_TRUE(v.block);
	CU_ASSERT_EQUAL(v.source, SRC_HOSTS);
	CU_ASSERT_EQUAL(v.action, CONFIG_ACTION_NXDOMAIN);
	CU_ASSERT_EQUAL(v.ede, WIRE_EDE_BLOCKED);
	CU_ASSERT_PTR_NULL(v.local);
	CU_ASSERT_TRUE(blocked("ADS.Example.COM", m, &v));
	CU_ASSERT_FALSE(blocked("x.ads.example.com", m, &v));
	CU_ASSERT_FALSE(blocked("example.com", m, &v));
}

static void test_policy_domains_rule_blocks_subtree(void)
{
	struct policy_verdict v;
	uint64_t m = 1u << SRC_DOMAINS;
	CU_ASSERT_TRUE(blocked("tracker.example.net", m, &v));
	CU_ASSERT_EQUAL(v.source, SRC_DOMAINS);
	CU_ASSERT_EQUAL(v.action, CONFIG_ACTION_NODATA);
	CU_ASSERT_TRUE(blocked("a.b.tracker.example.net", m, &v));
	CU_ASSERT_EQUAL(v.source, SRC_DOMAINS);
	CU_ASSERT_FALSE(blocked("example.net", m, &v));
	CU_ASSERT_FALSE(blocked("xtracker.example.net", m, &v));
	/* "*.name" covers only the names below. */
	CU_ASSERT_TRUE(blocked("a.wild.example.net", m, &v));
	CU_ASSERT_FALSE(blocked("wild.example.net", m, &v));
}

static void test_policy_adblock_rule_blocks_subtree(void)
{
	struct policy_verdict v;
	CU_ASSERT_TRUE(blocked("cdn.adnet.example.org", 1u << SRC_ADBLOCK, &v));
	CU_ASSERT_EQUAL(v.source, SRC_ADBLOCK);
	CU_ASSERT_EQUAL(v.action, CONFIG_ACTION_REFUSED);
}

static void test_policy_allow_beats_block(void)
{
	struct policy_verdict v;
	uint64_t m = 1u << SRC_DOMAINS | 1u << SRC_ALLOW;
	CU_ASSERT_FALSE(blocked("good.tracker.example.net", m, &v));
	CU_ASSERT_FALSE(blocked("x.good.tracker.example.net", m, &v));
	CU_ASSERT_TRUE(blocked("bad.tracker.example.net", m, &v));
	/* Without the allow list in the mask, the block applies. */
	CU_ASSERT_TRUE(blocked("good.tracker.example.net", 1u << SRC_DOMAINS, &v));
}

static void test_policy_mask_excludes_a_source(void)
{
	struct policy_verdict v;
	CU_ASSERT_FALSE(blocked("ads.example.com", ~(1ULL << SRC_HOSTS) & ~(1ULL << SRC_WATCH), &v));
	CU_ASSERT_FALSE(blocked("a.b.tracker.example.net", 1u << SRC_HOSTS | 1u << SRC_ADBLOCK, &v));
	CU_ASSERT_FALSE(blocked("ads.example.com", 0, &v));
	/* DNSBL bits in the mask do not make list checks happen. */
	CU_ASSERT_FALSE(blocked("ads.example.com", 1u << SRC_ZEN | 1u << SRC_DBL, &v));
	/* A client's scope mask used as-is. */
	CU_ASSERT_TRUE(blocked("ads.example.com", sources_of(pol, client4("10.9.9.9")), &v));
	CU_ASSERT_FALSE(blocked("ads.example.com", sources_of(pol, client4("10.1.9.9")), &v));
}

static void test_policy_log_only_passes_and_counts(void)
{
	struct policy_verdict v;
	uint64_t before = atomic_load(&pol->sources[SRC_WATCH].blocked);
	CU_ASSERT_FALSE(blocked("watched.example", 1u << SRC_WATCH, &v));
	CU_ASSERT_FALSE(blocked("www.watched.example", 1u << SRC_WATCH, &v));
	CU_ASSERT_EQUAL(atomic_load(&pol->sources[SRC_WATCH].blocked), before + 2);
	CU_ASSERT_FALSE(blocked("other.example", 1u << SRC_WATCH, &v));
	CU_ASSERT_EQUAL(atomic_load(&pol->sources[SRC_WATCH].blocked), before + 2);
}

static void test_policy_log_only_does_not_hide_another_block(void)
{
	struct policy_verdict v;
	/* hosts (nxdomain) and watch (log-only) both list ads.example.com. */
	CU_ASSERT_TRUE(blocked("ads.example.com", 1u << SRC_HOSTS | 1u << SRC_WATCH, &v));
	CU_ASSERT_EQUAL(v.source, SRC_HOSTS);
	CU_ASSERT_TRUE(blocked("ads.example.com", ALL_SOURCES, &v));
	CU_ASSERT_EQUAL(v.source, SRC_HOSTS);
}

/* A more specific log-only rule, and an RPZ source that is log-only: both
 * logged, neither blocks, and neither hides another source's block. */
static void test_policy_log_only_is_never_a_block_and_hides_none(void)
{
	struct config *c = new_config();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	add_list(c, 0, "trk", CONFIG_FORMAT_DOMAINS, CONFIG_ACTION_NODATA, false, "trk.txt", "tracker.example.net\n");
	add_list(c, 1, "deep", CONFIG_FORMAT_DOMAINS, CONFIG_ACTION_LOG_ONLY, false, "deep.txt",
	         "deep.tracker.example.net\n");
	add_list(c, 2, "rpzwatch", CONFIG_FORMAT_RPZ, CONFIG_ACTION_LOG_ONLY, false, "rpzwatch.zone",
	         "$TTL 60\n@ SOA a. b. 1 1 1 1 1\nnx.example.com CNAME .\n");
	char err[512] = "";
	struct policy *p = policy_new(c, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	struct wire_query q;
	struct policy_verdict v;
	make_query(&q, "deep.tracker.example.net", WIRE_TYPE_A, true, 1232);
	CU_ASSERT_TRUE(policy_check_lists(p, &q, 7, &v));
	CU_ASSERT_EQUAL(v.source, 0);
	CU_ASSERT_EQUAL(v.action, CONFIG_ACTION_NODATA);
	CU_ASSERT_EQUAL(atomic_load(&p->sources[1].blocked), 1);
	make_query(&q, "nx.example.com", WIRE_TYPE_A, true, 1232);
	CU_ASSERT_FALSE(policy_check_lists(p, &q, 7, &v));
	CU_ASSERT_EQUAL(atomic_load(&p->sources[2].blocked), 1);
	policy_free(p);
	for (unsigned i = 0; i < c->filter_source_count; i++)
		unlink(c->filter_sources[i].files[0]);
	free_config(c);
}

static void test_policy_blocks_are_counted_per_source(void)
{
	struct policy_verdict v;
	uint64_t before = atomic_load(&pol->sources[SRC_ADBLOCK].blocked);
	CU_ASSERT_TRUE(blocked("adnet.example.org", 1u << SRC_ADBLOCK, &v));
	CU_ASSERT_EQUAL(atomic_load(&pol->sources[SRC_ADBLOCK].blocked), before + 1);
}

static void test_policy_rpz_verdicts(void)
{
	struct policy_verdict v;
	uint64_t m = 1u << SRC_RPZ;
	CU_ASSERT_TRUE(blocked("nx.example.com", m, &v));
	CU_ASSERT_EQUAL(v.source, SRC_RPZ);
	CU_ASSERT_EQUAL(v.action, CONFIG_ACTION_NXDOMAIN);
	CU_ASSERT_PTR_NULL(v.local);
	CU_ASSERT_TRUE(blocked("nodata.example.com", m, &v));
	CU_ASSERT_EQUAL(v.action, CONFIG_ACTION_NODATA);
	CU_ASSERT_PTR_NULL(v.local);
	CU_ASSERT_TRUE(blocked("local.example.com", m, &v));
	CU_ASSERT_PTR_NOT_NULL(v.local);
	CU_ASSERT_EQUAL(v.ede, WIRE_EDE_BLOCKED);
	CU_ASSERT_FALSE(blocked("example.com", m, &v));
}

/* ------------------------------------------------------------------ */
/* policy_build_reply */

static void test_policy_reply_nxdomain_has_ede_15_and_source_name(void)
{
	struct policy_verdict v;
	struct reply r;
	CU_ASSERT_TRUE_FATAL(check_and_reply("ads.example.com", WIRE_TYPE_A, ALL_SOURCES & ~(1ULL << SRC_WATCH), true,
	                                     &v, &r));
	CU_ASSERT_EQUAL(r.rcode, WIRE_RCODE_NXDOMAIN);
	CU_ASSERT_EQUAL(r.ancount, 0);
	CU_ASSERT_FALSE(r.tc);
	CU_ASSERT_TRUE(r.has_opt);
	CU_ASSERT_EQUAL(r.ede, WIRE_EDE_BLOCKED);
	CU_ASSERT_STRING_EQUAL(r.ede_text, "hosts");
}

static void test_policy_reply_nodata_is_noerror_without_answers(void)
{
	struct policy_verdict v;
	struct reply r;
	CU_ASSERT_TRUE_FATAL(check_and_reply("tracker.example.net", WIRE_TYPE_A, 1u << SRC_DOMAINS, true, &v, &r));
	CU_ASSERT_EQUAL(r.rcode, WIRE_RCODE_NOERROR);
	CU_ASSERT_EQUAL(r.ancount, 0);
	CU_ASSERT_EQUAL(r.ede, WIRE_EDE_BLOCKED);
	CU_ASSERT_STRING_EQUAL(r.ede_text, "domains");
}

static void test_policy_reply_refused(void)
{
	struct policy_verdict v;
	struct reply r;
	CU_ASSERT_TRUE_FATAL(check_and_reply("adnet.example.org", WIRE_TYPE_AAAA, 1u << SRC_ADBLOCK, true, &v, &r));
	CU_ASSERT_EQUAL(r.rcode, WIRE_RCODE_REFUSED);
	CU_ASSERT_EQUAL(r.ancount, 0);
	CU_ASSERT_EQUAL(r.ede, WIRE_EDE_BLOCKED);
	CU_ASSERT_STRING_EQUAL(r.ede_text, "adblock");
}

static void test_policy_reply_sinkhole_a_is_configured_address(void)
{
	struct policy_verdict v;
	struct reply r;
	CU_ASSERT_TRUE_FATAL(check_and_reply("www.sink.example", WIRE_TYPE_A, 1u << SRC_SINK, true, &v, &r));
	CU_ASSERT_EQUAL(r.rcode, WIRE_RCODE_NOERROR);
	CU_ASSERT_EQUAL_FATAL(r.ancount, 1);
	CU_ASSERT_EQUAL(r.an_type, WIRE_TYPE_A);
	CU_ASSERT_EQUAL(r.an_ttl, 42);
	CU_ASSERT_EQUAL(r.an_rdlen, 4);
	CU_ASSERT_EQUAL(memcmp(r.an_rdata, "\xc0\x00\x02\x35", 4), 0);
	CU_ASSERT_EQUAL(r.ede, WIRE_EDE_BLOCKED);
	CU_ASSERT_STRING_EQUAL(r.ede_text, "sink");
}

static void test_policy_reply_sinkhole_aaaa_is_configured_address(void)
{
	struct policy_verdict v;
	struct reply r;
	CU_ASSERT_TRUE_FATAL(check_and_reply("sink.example", WIRE_TYPE_AAAA, 1u << SRC_SINK, true, &v, &r));
	CU_ASSERT_EQUAL(r.rcode, WIRE_RCODE_NOERROR);
	CU_ASSERT_EQUAL_FATAL(r.ancount, 1);
	CU_ASSERT_EQUAL(r.an_type, WIRE_TYPE_AAAA);
	CU_ASSERT_EQUAL(r.an_ttl, 42);
	CU_ASSERT_EQUAL(r.an_rdlen, 16);
	uint8_t want[16];
	inet_pton(AF_INET6, "2001:db8::53", want);
	CU_ASSERT_EQUAL(memcmp(r.an_rdata, want, 16), 0);
}

static void test_policy_reply_sinkhole_other_type_is_nodata(void)
{
	struct policy_verdict v;
	struct reply r;
	CU_ASSERT_TRUE_FATAL(check_and_reply("sink.example", WIRE_TYPE_MX, 1u << SRC_SINK, true, &v, &r));
	CU_ASSERT_EQUAL(r.rcode, WIRE_RCODE_NOERROR);
	CU_ASSERT_EQUAL(r.ancount, 0);
	CU_ASSERT_EQUAL(r.ede, WIRE_EDE_BLOCKED);
	CU_ASSERT_STRING_EQUAL(r.ede_text, "sink");
}

static void test_policy_reply_rpz_nxdomain_and_nodata(void)
{
	struct policy_verdict v;
	struct reply r;
	CU_ASSERT_TRUE_FATAL(check_and_reply("nx.example.com", WIRE_TYPE_A, 1u << SRC_RPZ, true, &v, &r));
	CU_ASSERT_EQUAL(r.rcode, WIRE_RCODE_NXDOMAIN);
	CU_ASSERT_EQUAL(r.ancount, 0);
	CU_ASSERT_STRING_EQUAL(r.ede_text, "rpz");
	CU_ASSERT_TRUE_FATAL(check_and_reply("nodata.example.com", WIRE_TYPE_A, 1u << SRC_RPZ, true, &v, &r));
	CU_ASSERT_EQUAL(r.rcode, WIRE_RCODE_NOERROR);
	CU_ASSERT_EQUAL(r.ancount, 0);
	CU_ASSERT_EQUAL(r.ede, WIRE_EDE_BLOCKED);
}

static void test_policy_reply_rpz_local_data(void)
{
	struct policy_verdict v;
	struct reply r;
	CU_ASSERT_TRUE_FATAL(check_and_reply("local.example.com", WIRE_TYPE_A, 1u << SRC_RPZ, true, &v, &r));
	CU_ASSERT_EQUAL(r.rcode, WIRE_RCODE_NOERROR);
	CU_ASSERT_EQUAL_FATAL(r.ancount, 2); /* the two A records, not the TXT */
	CU_ASSERT_EQUAL(r.an_types[0], WIRE_TYPE_A);
	CU_ASSERT_EQUAL(r.an_types[1], WIRE_TYPE_A);
	CU_ASSERT_EQUAL(r.an_ttl, 120);
	CU_ASSERT_EQUAL(r.an_rdlen, 4);
	CU_ASSERT_EQUAL(memcmp(r.an_rdata, "\xc0\x00\x02\x01", 4), 0);
	CU_ASSERT_EQUAL(r.ede, WIRE_EDE_BLOCKED);
	CU_ASSERT_STRING_EQUAL(r.ede_text, "rpz");
	/* A type the rule has no record of: NOERROR, no answer. */
	CU_ASSERT_TRUE_FATAL(check_and_reply("local.example.com", WIRE_TYPE_AAAA, 1u << SRC_RPZ, true, &v, &r));
	CU_ASSERT_EQUAL(r.rcode, WIRE_RCODE_NOERROR);
	CU_ASSERT_EQUAL(r.ancount, 0);
	CU_ASSERT_TRUE_FATAL(check_and_reply("local.example.com", WIRE_TYPE_TXT, 1u << SRC_RPZ, true, &v, &r));
	CU_ASSERT_EQUAL_FATAL(r.ancount, 1);
	CU_ASSERT_EQUAL(r.an_type, WIRE_TYPE_TXT);
}

static void test_policy_reply_dnsbl_verdict_has_ede_17(void)
{
	struct policy_verdict v;
	memset(&v, 0, sizeof v);
	policy_dnsbl_verdict(pol, SRC_DBL, &v);
	CU_ASSERT_TRUE(v.block);
	CU_ASSERT_EQUAL(v.source, SRC_DBL);
	CU_ASSERT_EQUAL(v.action, CONFIG_ACTION_REFUSED);
	CU_ASSERT_EQUAL(v.ede, WIRE_EDE_FILTERED);
	CU_ASSERT_PTR_NULL(v.local);
	struct wire_query q;
	make_query(&q, "spam.example.com", WIRE_TYPE_MX, true, 1232);
	uint8_t out[1232];
	size_t n = policy_build_reply(pol, &q, &v, wire_udp_limit(&q), out, sizeof out);
	CU_ASSERT_FATAL(n > 0);
	struct reply r = decode(out, n);
	CU_ASSERT(r.ok);
	CU_ASSERT_EQUAL(r.rcode, WIRE_RCODE_REFUSED);
	CU_ASSERT_EQUAL(r.ede, WIRE_EDE_FILTERED);
	CU_ASSERT_STRING_EQUAL(r.ede_text, "dbl");

	memset(&v, 0, sizeof v);
	policy_dnsbl_verdict(pol, SRC_ZEN, &v);
	CU_ASSERT_TRUE(v.block);
	n = policy_build_reply(pol, &q, &v, wire_udp_limit(&q), out, sizeof out);
	CU_ASSERT_FATAL(n > 0);
	r = decode(out, n);
	CU_ASSERT(r.ok);
	CU_ASSERT_EQUAL(r.rcode, WIRE_RCODE_NXDOMAIN);
	CU_ASSERT_EQUAL(r.ede, WIRE_EDE_FILTERED);
	CU_ASSERT_STRING_EQUAL(r.ede_text, "zen");
}

static void test_policy_reply_without_edns_has_no_opt(void)
{
	struct policy_verdict v;
	struct reply r;
	CU_ASSERT_TRUE_FATAL(check_and_reply("ads.example.com", WIRE_TYPE_A, 1u << SRC_HOSTS, false, &v, &r));
	CU_ASSERT_EQUAL(r.rcode, WIRE_RCODE_NXDOMAIN);
	CU_ASSERT_EQUAL(r.arcount, 0);
	CU_ASSERT_FALSE(r.has_opt);
	CU_ASSERT_EQUAL(r.ede, -1);
	CU_ASSERT_TRUE_FATAL(check_and_reply("sink.example", WIRE_TYPE_A, 1u << SRC_SINK, false, &v, &r));
	CU_ASSERT_EQUAL(r.ancount, 1);
	CU_ASSERT_FALSE(r.has_opt);
}

static void test_policy_reply_never_exceeds_the_limit(void)
{
	struct wire_query q;
	struct policy_verdict v;
	make_query(&q, "local.example.com", WIRE_TYPE_A, true, 1232);
	CU_ASSERT_TRUE_FATAL(policy_check_lists(pol, &q, 1u << SRC_RPZ, &v));
	uint8_t out[1232];
	size_t full = policy_build_reply(pol, &q, &v, sizeof out, out, sizeof out);
	CU_ASSERT_FATAL(full > 0);
	/* header + question + bare OPT: room for a TC reply, not for the answers */
	size_t tiny = WIRE_HEADER_LEN + q.qname_len + 4 + 11;
	CU_ASSERT_FATAL(tiny < full);
	for (size_t limit = tiny; limit < full; limit++) {
		size_t n = policy_build_reply(pol, &q, &v, limit, out, sizeof out);
		CU_ASSERT(n > 0 && n <= limit);
		if (n == 0)
			continue;
		struct reply r = decode(out, n);
		CU_ASSERT(r.ok);
		CU_ASSERT_TRUE(r.tc);
		CU_ASSERT_EQUAL(r.ancount, 0);
	}
	size_t n = policy_build_reply(pol, &q, &v, full, out, sizeof out);
	CU_ASSERT_EQUAL(n, full);
	CU_ASSERT_FALSE(decode(out, n).tc);
	/* Below even a TC reply, nothing is written rather than too much. */
	n = policy_build_reply(pol, &q, &v, 12, out, sizeof out);
	CU_ASSERT(n <= 12);
}

/* ------------------------------------------------------------------ */
/* Loading */

static void test_policy_new_unreadable_file_fails_naming_it(void)
{
	struct config *c = new_config();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	add_list(c, 0, "fine", CONFIG_FORMAT_DOMAINS, CONFIG_ACTION_NXDOMAIN, false, "fine.txt", "a.example\n");
	struct config_source *s = &c->filter_sources[1];
	snprintf(s->name, sizeof s->name, "missing");
	s->type = CONFIG_SOURCE_LIST;
	s->format = CONFIG_FORMAT_HOSTS;
	char path[128];
	snprintf(path, sizeof path, "%s/does-not-exist.txt", tmpdir);
	s->files[0] = strdup(path);
	s->file_count = 1;
	c->filter_source_count = 2;
	char err[512] = "";
	struct policy *p = policy_new(c, err, sizeof err);
	CU_ASSERT_PTR_NULL(p);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "does-not-exist.txt"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "missing"));
	policy_free(p);
	unlink(c->filter_sources[0].files[0]);
	free_config(c);
}

static void test_policy_new_bad_zone_fails(void)
{
	struct config *c = new_config();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	add_zone(c, 0, "broken", CONFIG_SOURCE_DNSBL, CONFIG_ACTION_NXDOMAIN, "bad..zone");
	char err[512] = "";
	struct policy *p = policy_new(c, err, sizeof err);
	CU_ASSERT_PTR_NULL(p);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "broken"));
	policy_free(p);
	free_config(c);
}

static void test_policy_new_bad_lines_load_the_good_ones(void)
{
	struct config *c = new_config();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	add_list(c, 0, "messy", CONFIG_FORMAT_HOSTS, CONFIG_ACTION_NXDOMAIN, false, "messy.txt",
	         "0.0.0.0 one.example\n"
	         "not-an-ip two.example\n"
	         "0.0.0.0 bad!name.example\n"
	         "0.0.0.0\n"
	         "0.0.0.0 three.example\n");
	char err[512] = "";
	struct policy *p = policy_new(c, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL(p);
	if (p != NULL) {
		struct wire_query q;
		struct policy_verdict v;
		make_query(&q, "one.example", WIRE_TYPE_A, true, 1232);
		CU_ASSERT_TRUE(policy_check_lists(p, &q, ALL_SOURCES, &v));
		make_query(&q, "three.example", WIRE_TYPE_A, true, 1232);
		CU_ASSERT_TRUE(policy_check_lists(p, &q, ALL_SOURCES, &v));
		make_query(&q, "two.example", WIRE_TYPE_A, true, 1232);
		CU_ASSERT_FALSE(policy_check_lists(p, &q, ALL_SOURCES, &v));
	}
	policy_free(p);
	unlink(c->filter_sources[0].files[0]);
	free_config(c);
}

static void test_policy_new_bad_scope_fails_with_file_and_line(void)
{
	struct config *c = new_config();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	add_scope(c, "10.0.0.0/8", 1);
	add_scope(c, "not-a-network", 1);
	char err[512] = "";
	struct policy *p = policy_new(c, err, sizeof err);
	CU_ASSERT_PTR_NULL(p);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "test.yaml:12"));
	policy_free(p);
	free_config(c);
}

int main(void)
{
	static const struct unit_test tests[] = {
		T(test_policy_scope_longest_prefix_wins),
		T(test_policy_scope_unmatched_client_gets_no_source),
		T(test_policy_scope_ipv6_client),
		T(test_policy_no_scopes_means_every_source),
		T(test_policy_names_under_dnsbl_zones_are_exempt),
		T(test_policy_exempt_needs_a_label_boundary),
		T(test_policy_exempt_names_are_never_blocked_by_lists),
		T(test_policy_hosts_rule_blocks_exact_name_only),
		T(test_policy_domains_rule_blocks_subtree),
		T(test_policy_adblock_rule_blocks_subtree),
		T(test_policy_allow_beats_block),
		T(test_policy_mask_excludes_a_source),
		T(test_policy_log_only_passes_and_counts),
		T(test_policy_log_only_does_not_hide_another_block),
		T(test_policy_log_only_is_never_a_block_and_hides_none),
		T(test_policy_blocks_are_counted_per_source),
		T(test_policy_rpz_verdicts),
		T(test_policy_reply_nxdomain_has_ede_15_and_source_name),
		T(test_policy_reply_nodata_is_noerror_without_answers),
		T(test_policy_reply_refused),
		T(test_policy_reply_sinkhole_a_is_configured_address),
		T(test_policy_reply_sinkhole_aaaa_is_configured_address),
		T(test_policy_reply_sinkhole_other_type_is_nodata),
		T(test_policy_reply_rpz_nxdomain_and_nodata),
		T(test_policy_reply_rpz_local_data),
		T(test_policy_reply_dnsbl_verdict_has_ede_17),
		T(test_policy_reply_without_edns_has_no_opt),
		T(test_policy_reply_never_exceeds_the_limit),
		T(test_policy_new_unreadable_file_fails_naming_it),
		T(test_policy_new_bad_zone_fails),
		T(test_policy_new_bad_lines_load_the_good_ones),
		T(test_policy_new_bad_scope_fails_with_file_and_line),
	};
	return unit_run("policy", suite_init, suite_cleanup, tests, UNIT_COUNT(tests));
}
