/* test_control.c -- unit tests of resolver/control: the control socket's
 * commands, driven through a real UNIX socket against a real cache.
 *
 * Each test opens a cache in its own mkdtemp() directory, stores a few
 * answers made by wire_prepare_forms from hand-built upstream messages, and
 * starts the control thread on DIR/ctl.  server_get_stats is a test double
 * (defined below, so the test links without server.c): it fills known
 * values, which the stats test looks for in the reply. */
#include "cache.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "server.h"
#include "stats.h"
#include "unit.h"
#include "wire.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* The server test double */

#define FAKE_INFLIGHT 7u

static uint64_t fake_value(int i)
{
	return 1000u + 17u * (uint64_t)i;
}

void server_get_stats(struct server *s, uint64_t *out, uint64_t *inflight)
{
	for (int i = 0; i < STATS_COUNT; i++)
		out[i] = fake_value(i);
	*inflight = FAKE_INFLIGHT;
}

/* One fake filter source, so the stats test sees its lines. */
unsigned server_filter_stats(struct server *s, struct server_filter_stat *out, unsigned max)
{
	if (max == 0)
		return 0;
	memset(out, 0, sizeof *out);
	snprintf(out->name, sizeof out->name, "zen");
	out->healthy = true;
	out->lookups = 11;
	out->blocked = 3;
	return 1;
}

/* Reloading lists is the server's business; here it always fails. */
int server_reload_lists(struct server *s, char *err, size_t errlen)
{
	snprintf(err, errlen, "test double: no lists");
	return -1;
}

/* Only its address is used: control passes it back to server_get_stats. */
static char fake_server_storage;
#define FAKE_SERVER ((struct server *)(void *)&fake_server_storage)

/* ------------------------------------------------------------------ */
/* Temporary directory, cache and control */

static char tdir[64];
static char sock_path[96];
static struct cache *cache;
static struct control *ctl;
static struct config cfg;

/* ------------------------------------------------------------------ */
/* Upstream answers, built by hand */

static void pk_name(struct pk *p, const char *name)
{
	uint8_t w[WIRE_MAX_NAME];
	size_t n = wire_name_from_text(name, w);
	CU_ASSERT_FATAL(n > 0);
	pk_bytes(p, w, n);
}

/* Header, question; the counts are patched by up_end. */
struct up {
	struct pk p;
	unsigned count[3];
	int sect;
	size_t rdlen_at;
};

static void up_begin(struct up *u, const char *qname, unsigned qtype, unsigned rcode)
{
	memset(u, 0, sizeof *u);
	pk_u16(&u->p, 0);
	pk_u16(&u->p, 0x8180 | rcode);
	pk_u16(&u->p, 1);
	pk_u16(&u->p, 0);
	pk_u16(&u->p, 0);
	pk_u16(&u->p, 0);
	pk_name(&u->p, qname);
	pk_u16(&u->p, qtype);
	pk_u16(&u->p, WIRE_CLASS_IN);
}

/* Start an RR in section sect (0 answer, 1 authority); the rdata follows. */
static void up_rr(struct up *u, int sect, const char *owner, unsigned type, uint32_t ttl)
{
	u->count[sect]++;
	pk_name(&u->p, owner);
	pk_u16(&u->p, type);
	pk_u16(&u->p, WIRE_CLASS_IN);
	pk_u32(&u->p, ttl);
	u->rdlen_at = u->p.n;
	pk_u16(&u->p, 0);
}

static void up_rr_end(struct up *u)
{
	size_t l = u->p.n - u->rdlen_at - 2;
	u->p.b[u->rdlen_at] = (uint8_t)(l >> 8);
	u->p.b[u->rdlen_at + 1] = (uint8_t)l;
}

/* An OPT with DO, as libunbound hands answers back, and the counts. */
static void up_end(struct up *u)
{
	pk_u8(&u->p, 0);
	pk_u16(&u->p, WIRE_TYPE_OPT);
	pk_u16(&u->p, 1232);
	pk_u32(&u->p, 0x8000);
	pk_u16(&u->p, 0);
	u->p.b[6] = (uint8_t)(u->count[0] >> 8);
	u->p.b[7] = (uint8_t)u->count[0];
	u->p.b[8] = (uint8_t)(u->count[1] >> 8);
	u->p.b[9] = (uint8_t)u->count[1];
	u->p.b[11] = 1;
}

/* An RRSIG rdata over type covered, signed by signer. */
static void pk_rrsig(struct pk *p, unsigned covered, uint32_t ttl, const char *signer)
{
	pk_u16(p, covered);
	pk_u8(p, 13);
	pk_u8(p, 3);
	pk_u32(p, ttl);
	pk_u32(p, 2000000000);
	pk_u32(p, 1900000000);
	pk_u16(p, 4242);
	pk_name(p, signer);
	pk_bytes(p, "SIGNATURE", 9);
}

/* What was stored per entry, for the size column. */
struct stored {
	const char *name;
	unsigned qtype;
	size_t size;
};

#define MAX_STORED 16
static struct stored stored[MAX_STORED];
static int stored_count;

/* Turn u into forms for (qname, qtype) and queue them in partition part. */
static void store(struct up *u, const char *qname, unsigned qtype, enum cache_partition part,
                  enum cache_dnssec sec, int64_t stored_at)
{
	static uint8_t full[WIRE_FORM_MAX], plain[WIRE_FORM_MAX];
	struct pk q = { .n = 0 };
	struct wire_query wq;
	struct wire_answer_info info;
	size_t flen = 0, plen = 0;

	up_end(u);
	pk_u16(&q, 0x4242);
	pk_u16(&q, 0x0100);
	pk_u16(&q, 1);
	pk_u16(&q, 0);
	pk_u16(&q, 0);
	pk_u16(&q, 0);
	pk_name(&q, qname);
	pk_u16(&q, qtype);
	pk_u16(&q, WIRE_CLASS_IN);
	CU_ASSERT_FATAL(wire_parse_query(q.b, q.n, &wq) == WIRE_PARSE_OK);
	CU_ASSERT_FATAL(wire_prepare_forms(u->p.b, u->p.n, &wq, full, &flen, plain, &plen, &info) == 0);

	struct cache_record r = {
		.rcode = info.rcode,
		.dnssec = (uint8_t)sec,
		.stored_at = stored_at,
		.ttl = info.ttl,
		.expires = stored_at + info.ttl,
		.stale_until = stored_at + info.ttl + 86400,
		.last_hit = stored_at,
		.partition = (uint8_t)part,
		.full = full,
		.full_len = (uint32_t)flen,
		.plain = plain,
		.plain_len = (uint32_t)plen,
	};
	CU_ASSERT_FATAL(cache_put(cache, wq.qname, wq.qname_len, (uint16_t)qtype, WIRE_CLASS_IN, &r) == 0);
	CU_ASSERT_FATAL(stored_count < MAX_STORED);
	stored[stored_count++] = (struct stored){ qname, qtype, flen + plen };
}

static size_t stored_size(const char *name, unsigned qtype)
{
	for (int i = 0; i < stored_count; i++)
		if (strcmp(stored[i].name, name) == 0 && stored[i].qtype == qtype)
			return stored[i].size;
	return 0;
}

/* The entries every test starts with: 6 general, 3 mail, 1 dnsbl. */
static void fill_cache(void)
{
	struct up u;
	int64_t now = (int64_t)time(NULL);

	up_begin(&u, "www.example.com", WIRE_TYPE_A, 0);
	up_rr(&u, 0, "www.example.com", WIRE_TYPE_A, 300);
	pk_bytes(&u.p, "\xC0\x00\x02\x01", 4);
	up_rr_end(&u);
	up_rr(&u, 0, "www.example.com", WIRE_TYPE_RRSIG, 300);
	pk_rrsig(&u.p, WIRE_TYPE_A, 300, "example.com");
	up_rr_end(&u);
	store(&u, "www.example.com", WIRE_TYPE_A, CACHE_PART_GENERAL, CACHE_DNSSEC_SECURE, now);

	up_begin(&u, "badexample.com", WIRE_TYPE_A, 0);
	up_rr(&u, 0, "badexample.com", WIRE_TYPE_A, 300);
	pk_bytes(&u.p, "\xC0\x00\x02\x09", 4);
	up_rr_end(&u);
	store(&u, "badexample.com", WIRE_TYPE_A, CACHE_PART_GENERAL, CACHE_DNSSEC_INSECURE, now);

	up_begin(&u, "example.org", WIRE_TYPE_TXT, 0);
	up_rr(&u, 0, "example.org", WIRE_TYPE_TXT, 600);
	pk_u8(&u.p, 11);
	pk_bytes(&u.p, "v=spf1 -all", 11);
	pk_u8(&u.p, 3);
	pk_bytes(&u.p, "x\"y", 3);
	up_rr_end(&u);
	store(&u, "example.org", WIRE_TYPE_TXT, CACHE_PART_GENERAL, CACHE_DNSSEC_INSECURE, now);

	up_begin(&u, "nx.example.com", WIRE_TYPE_A, WIRE_RCODE_NXDOMAIN);
	up_rr(&u, 1, "example.com", WIRE_TYPE_SOA, 900);
	pk_name(&u.p, "ns1.example.com");
	pk_name(&u.p, "hostmaster.example.com");
	pk_u32(&u.p, 2024010101);
	pk_u32(&u.p, 7200);
	pk_u32(&u.p, 3600);
	pk_u32(&u.p, 1209600);
	pk_u32(&u.p, 900);
	up_rr_end(&u);
	store(&u, "nx.example.com", WIRE_TYPE_A, CACHE_PART_GENERAL, CACHE_DNSSEC_SECURE, now);

	up_begin(&u, "_sip._tcp.example.com", WIRE_TYPE_SRV, 0);
	up_rr(&u, 0, "_sip._tcp.example.com", WIRE_TYPE_SRV, 300);
	pk_u16(&u.p, 10);
	pk_u16(&u.p, 5);
	pk_u16(&u.p, 5060);
	pk_name(&u.p, "sip.example.com");
	up_rr_end(&u);
	store(&u, "_sip._tcp.example.com", WIRE_TYPE_SRV, CACHE_PART_GENERAL, CACHE_DNSSEC_INSECURE, now);

	/* Stored 1000 s ago with a TTL of 300: stale, still kept. */
	up_begin(&u, "old.example.org", WIRE_TYPE_A, 0);
	up_rr(&u, 0, "old.example.org", WIRE_TYPE_A, 300);
	pk_bytes(&u.p, "\xC6\x33\x64\x01", 4);
	up_rr_end(&u);
	store(&u, "old.example.org", WIRE_TYPE_A, CACHE_PART_GENERAL, CACHE_DNSSEC_INSECURE, now - 1000);

	up_begin(&u, "example.com", WIRE_TYPE_MX, 0);
	up_rr(&u, 0, "example.com", WIRE_TYPE_MX, 600);
	pk_u16(&u.p, 10);
	pk_name(&u.p, "mail.example.com");
	up_rr_end(&u);
	store(&u, "example.com", WIRE_TYPE_MX, CACHE_PART_MAIL, CACHE_DNSSEC_SECURE, now);

	up_begin(&u, "mail.example.com", WIRE_TYPE_AAAA, 0);
	up_rr(&u, 0, "mail.example.com", WIRE_TYPE_AAAA, 600);
	pk_bytes(&u.p, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x25", 16);
	up_rr_end(&u);
	store(&u, "mail.example.com", WIRE_TYPE_AAAA, CACHE_PART_MAIL, CACHE_DNSSEC_SECURE, now);

	up_begin(&u, "_25._tcp.mail.example.com", WIRE_TYPE_TLSA, 0);
	up_rr(&u, 0, "_25._tcp.mail.example.com", WIRE_TYPE_TLSA, 600);
	pk_bytes(&u.p, "\x03\x01\x01\xAB\xCD\xEF\x01", 7);
	up_rr_end(&u);
	store(&u, "_25._tcp.mail.example.com", WIRE_TYPE_TLSA, CACHE_PART_MAIL, CACHE_DNSSEC_SECURE, now);

	up_begin(&u, "2.0.0.127.zen.example.net", WIRE_TYPE_A, 0);
	up_rr(&u, 0, "2.0.0.127.zen.example.net", WIRE_TYPE_A, 60);
	pk_bytes(&u.p, "\x7F\x00\x00\x02", 4);
	up_rr_end(&u);
	store(&u, "2.0.0.127.zen.example.net", WIRE_TYPE_A, CACHE_PART_DNSBL, CACHE_DNSSEC_INSECURE, now);

	cache_flush_writes(cache);
}

/* Make the directory, the cache with its entries, and a running control. */
static void setup(struct server *srv)
{
	char err[256] = "", cdir[128];
	snprintf(tdir, sizeof tdir, "/tmp/test_control.XXXXXX");
	CU_ASSERT_FATAL(mkdtemp(tdir) != NULL);
	snprintf(cdir, sizeof cdir, "%s/db", tdir);
	snprintf(sock_path, sizeof sock_path, "%s/ctl", tdir);

	struct cache_options o = { .dir = cdir, .max_bytes = 64u << 20, .max_readers = 16, .sync_interval_ms = 100 };
	cache = cache_open(&o, err, sizeof err);
	if (cache == NULL)
		fprintf(stderr, "cache_open: %s\n", err);
	CU_ASSERT_FATAL(cache != NULL);
	stored_count = 0;
	fill_cache();

	memset(&cfg, 0, sizeof cfg);
	cfg.control_socket = sock_path;
	ctl = control_new(&cfg, (uid_t)-1, (gid_t)-1, err, sizeof err);
	if (ctl == NULL)
		fprintf(stderr, "control_new: %s\n", err);
	CU_ASSERT_FATAL(ctl != NULL);
	CU_ASSERT_FATAL(control_start(ctl, srv, cache, err, sizeof err) == 0);
}

static void teardown(void)
{
	control_free(ctl);
	ctl = NULL;
	cache_close(cache);
	cache = NULL;
	unit_rmtree(tdir);
}

/* ------------------------------------------------------------------ */
/* The client side */

static int connect_ctl(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	return fd;
}

/* Read until end of stream (5 s at most); the caller frees the result. */
static char *read_reply(int fd)
{
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap);
	CU_ASSERT_FATAL(buf != NULL);
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 5000) <= 0)
			break;
		if (len + 4096 + 1 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			CU_ASSERT_FATAL(buf != NULL);
		}
		ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

/* Send line (a newline is added) and return the whole reply. */
static char *request(const char *line)
{
	int fd = connect_ctl();
	size_t l = strlen(line);
	char *msg = malloc(l + 2);
	CU_ASSERT_FATAL(msg != NULL);
	memcpy(msg, line, l);
	msg[l] = '\n';
	CU_ASSERT_FATAL(send(fd, msg, l + 1, MSG_NOSIGNAL) == (ssize_t)(l + 1));
	free(msg);
	char *reply = read_reply(fd);
	close(fd);
	return reply;
}

/* Does reply contain line as one whole line? */
static int has_line(const char *reply, const char *line)
{
	size_t l = strlen(line);
	for (const char *p = reply; (p = strstr(p, line)) != NULL; p++)
		if ((p == reply || p[-1] == '\n') && (p[l] == '\n' || p[l] == '\0'))
			return 1;
	return 0;
}

/* Does some line of reply start with prefix? */
static int has_line_prefix(const char *reply, const char *prefix)
{
	size_t l = strlen(prefix);
	for (const char *p = reply; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, prefix, l) == 0)
			return 1;
	return 0;
}

static int count_lines(const char *reply)
{
	int n = 0;
	for (const char *p = reply; *p; p++)
		n += *p == '\n';
	return n;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Tests */

static void test_control_stats_without_server_shows_cache_part(void)
{
	setup(NULL);
	char *r = request("stats");
	CU_ASSERT(strncmp(r, "ok\n", 3) == 0);
	CU_ASSERT(has_line(r, "cache_entries_general 6"));
	CU_ASSERT(has_line(r, "cache_entries_mail 3"));
	CU_ASSERT(has_line(r, "cache_entries_dnsbl 1"));
	CU_ASSERT(has_line_prefix(r, "cache_bytes_general "));
	CU_ASSERT(has_line_prefix(r, "cache_quota_dnsbl "));
	CU_ASSERT(has_line_prefix(r, "cache_map_size "));
	CU_ASSERT(has_line_prefix(r, "cache_map_used "));
	CU_ASSERT(has_line(r, "cache_puts 10"));
	CU_ASSERT(has_line(r, "cache_put_drops 0"));
	CU_ASSERT(has_line_prefix(r, "cache_evictions "));
	/* No server: none of its counters. */
	CU_ASSERT(!has_line_prefix(r, "queries "));
	CU_ASSERT(!has_line_prefix(r, "inflight "));
	free(r);
	teardown();
}

static void test_control_stats_with_server_prints_every_counter(void)
{
	setup(FAKE_SERVER);
	char *r = request("stats");
	char want[128];
	CU_ASSERT(strncmp(r, "ok\n", 3) == 0);
	for (int i = 0; i < STATS_COUNT; i++) {
		snprintf(want, sizeof want, "%s %llu", stats_name((enum stats_counter)i),
		         (unsigned long long)fake_value(i));
		CU_ASSERT(has_line(r, want));
		if (!has_line(r, want))
			fprintf(stderr, "missing line: %s\n", want);
	}
	snprintf(want, sizeof want, "inflight %u", FAKE_INFLIGHT);
	CU_ASSERT(has_line(r, want));
	CU_ASSERT(has_line(r, "cache_entries_general 6"));
	CU_ASSERT(has_line(r, "filter_zen_healthy 1"));
	CU_ASSERT(has_line(r, "filter_zen_lookups 11"));
	CU_ASSERT(has_line(r, "filter_zen_blocked 3"));
	free(r);
	r = request("lists reload");
	CU_ASSERT(strncmp(r, "error: test double: no lists", 28) == 0);
	free(r);
	teardown();
}

/* Find the dump line of (name, type) and split its columns. */
struct dump_line {
	char name[300], type[32], part[16], state[16], rcode[16], dnssec[16];
	long long ttl;
	unsigned long long size;
};

static int find_dump_line(const char *reply, const char *name, const char *type, struct dump_line *d)
{
	char prefix[320];
	snprintf(prefix, sizeof prefix, "%s %s ", name, type);
	for (const char *p = reply; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, prefix, strlen(prefix)) != 0)
			continue;
		return sscanf(p, "%299s %31s %15s %lld %15s %15s %15s %llu", d->name, d->type, d->part, &d->ttl,
		              d->state, d->rcode, d->dnssec, &d->size) == 8;
	}
	return 0;
}

static void test_control_dump_lists_every_entry(void)
{
	setup(NULL);
	char *r = request("cache dump");
	struct dump_line d;
	CU_ASSERT(strncmp(r, "ok\n", 3) == 0);
	CU_ASSERT_EQUAL(count_lines(r), 1 + 10);

	CU_ASSERT_FATAL(find_dump_line(r, "www.example.com.", "A", &d));
	CU_ASSERT_STRING_EQUAL(d.part, "general");
	CU_ASSERT(d.ttl > 290 && d.ttl <= 300);
	CU_ASSERT_STRING_EQUAL(d.state, "fresh");
	CU_ASSERT_STRING_EQUAL(d.rcode, "NOERROR");
	CU_ASSERT_STRING_EQUAL(d.dnssec, "secure");
	CU_ASSERT_EQUAL(d.size, stored_size("www.example.com", WIRE_TYPE_A));

	CU_ASSERT_FATAL(find_dump_line(r, "nx.example.com.", "A", &d));
	CU_ASSERT_STRING_EQUAL(d.rcode, "NXDOMAIN");

	CU_ASSERT_FATAL(find_dump_line(r, "old.example.org.", "A", &d));
	CU_ASSERT_EQUAL(d.ttl, 0);
	CU_ASSERT_STRING_EQUAL(d.state, "stale");
	CU_ASSERT_STRING_EQUAL(d.dnssec, "insecure");

	CU_ASSERT_FATAL(find_dump_line(r, "example.com.", "MX", &d));
	CU_ASSERT_STRING_EQUAL(d.part, "mail");
	CU_ASSERT(find_dump_line(r, "_25._tcp.mail.example.com.", "TLSA", &d));
	CU_ASSERT(find_dump_line(r, "_sip._tcp.example.com.", "SRV", &d));
	CU_ASSERT(find_dump_line(r, "example.org.", "TXT", &d));
	CU_ASSERT_FATAL(find_dump_line(r, "2.0.0.127.zen.example.net.", "A", &d));
	CU_ASSERT_STRING_EQUAL(d.part, "dnsbl");
	free(r);
	teardown();
}

static void test_control_dump_suffix_filters_on_label_boundary(void)
{
	setup(NULL);
	struct dump_line d;
	char *r = request("cache dump Example.COM.");
	CU_ASSERT(strncmp(r, "ok\n", 3) == 0);
	CU_ASSERT_EQUAL(count_lines(r), 1 + 6);
	CU_ASSERT(find_dump_line(r, "www.example.com.", "A", &d));
	CU_ASSERT(find_dump_line(r, "nx.example.com.", "A", &d));
	CU_ASSERT(find_dump_line(r, "example.com.", "MX", &d));
	CU_ASSERT(find_dump_line(r, "mail.example.com.", "AAAA", &d));
	CU_ASSERT(find_dump_line(r, "_25._tcp.mail.example.com.", "TLSA", &d));
	CU_ASSERT(find_dump_line(r, "_sip._tcp.example.com.", "SRV", &d));
	CU_ASSERT(!find_dump_line(r, "badexample.com.", "A", &d));
	CU_ASSERT(!find_dump_line(r, "example.org.", "TXT", &d));
	free(r);

	r = request("cache dump nothing.invalid");
	CU_ASSERT_STRING_EQUAL(r, "ok\n");
	free(r);
	teardown();
}

static void test_control_flush_name_removes_that_name_only(void)
{
	setup(NULL);
	char *r = request("cache flush www.example.com AAAA");
	CU_ASSERT_STRING_EQUAL(r, "ok\nflushed 0\n");
	free(r);
	r = request("cache flush www.example.com A");
	CU_ASSERT_STRING_EQUAL(r, "ok\nflushed 1\n");
	free(r);
	r = request("cache flush mail.example.com");
	CU_ASSERT_STRING_EQUAL(r, "ok\nflushed 1\n");
	free(r);

	struct dump_line d;
	r = request("cache dump");
	CU_ASSERT_EQUAL(count_lines(r), 1 + 8);
	CU_ASSERT(!find_dump_line(r, "www.example.com.", "A", &d));
	CU_ASSERT(!find_dump_line(r, "mail.example.com.", "AAAA", &d));
	CU_ASSERT(find_dump_line(r, "_25._tcp.mail.example.com.", "TLSA", &d));
	CU_ASSERT(find_dump_line(r, "example.com.", "MX", &d));
	free(r);
	r = request("cache lookup www.example.com A");
	CU_ASSERT_STRING_EQUAL(r, "error: not cached\n");
	free(r);
	teardown();
}

static void test_control_flush_suffix_removes_the_subtree(void)
{
	setup(NULL);
	char *r = request("cache flush --suffix example.com");
	CU_ASSERT_STRING_EQUAL(r, "ok\nflushed 6\n");
	free(r);
	struct dump_line d;
	r = request("cache dump");
	CU_ASSERT_EQUAL(count_lines(r), 1 + 4);
	CU_ASSERT(find_dump_line(r, "badexample.com.", "A", &d));
	CU_ASSERT(find_dump_line(r, "example.org.", "TXT", &d));
	CU_ASSERT(find_dump_line(r, "old.example.org.", "A", &d));
	CU_ASSERT(find_dump_line(r, "2.0.0.127.zen.example.net.", "A", &d));
	free(r);
	teardown();
}

static void test_control_flush_partition_empties_it(void)
{
	setup(NULL);
	char *r = request("cache flush --partition dnsbl");
	CU_ASSERT_STRING_EQUAL(r, "ok\nflushed 1\n");
	free(r);
	r = request("cache flush --partition mail");
	CU_ASSERT_STRING_EQUAL(r, "ok\nflushed 3\n");
	free(r);
	r = request("stats");
	CU_ASSERT(has_line(r, "cache_entries_general 6"));
	CU_ASSERT(has_line(r, "cache_entries_mail 0"));
	CU_ASSERT(has_line(r, "cache_entries_dnsbl 0"));
	free(r);
	r = request("cache flush --partition secret");
	CU_ASSERT(strncmp(r, "error: ", 7) == 0);
	free(r);
	teardown();
}

static void test_control_lookup_prints_records(void)
{
	setup(NULL);
	struct dump_line d;
	char *r = request("cache lookup WWW.Example.COM. a");
	CU_ASSERT(strncmp(r, "ok\n", 3) == 0);
	CU_ASSERT(find_dump_line(r, "www.example.com.", "A", &d));
	CU_ASSERT(has_line(r, ";; answer"));
	/* TTL as served now: 300 less the seconds since it was stored. */
	CU_ASSERT(has_line(r, "www.example.com. 300 IN A 192.0.2.1") ||
	          has_line(r, "www.example.com. 299 IN A 192.0.2.1"));
	CU_ASSERT(strstr(r, "RRSIG") == NULL); /* the plain form */
	free(r);

	r = request("cache lookup example.com MX");
	CU_ASSERT(strstr(r, " IN MX 10 mail.example.com.\n") != NULL);
	free(r);
	r = request("cache lookup mail.example.com AAAA");
	CU_ASSERT(strstr(r, " IN AAAA 2001:db8::25\n") != NULL);
	free(r);
	r = request("cache lookup example.org TXT");
	CU_ASSERT(strstr(r, " IN TXT \"v=spf1 -all\" \"x\\\"y\"\n") != NULL);
	free(r);
	r = request("cache lookup _sip._tcp.example.com SRV");
	CU_ASSERT(strstr(r, " IN SRV 10 5 5060 sip.example.com.\n") != NULL);
	free(r);
	r = request("cache lookup _25._tcp.mail.example.com TYPE52");
	CU_ASSERT(strstr(r, " IN TLSA 3 1 1 ABCDEF01\n") != NULL);
	free(r);
	r = request("cache lookup nx.example.com A");
	CU_ASSERT(find_dump_line(r, "nx.example.com.", "A", &d));
	CU_ASSERT_STRING_EQUAL(d.rcode, "NXDOMAIN");
	CU_ASSERT(has_line(r, ";; authority"));
	CU_ASSERT(!has_line(r, ";; answer"));
	CU_ASSERT(strstr(r, " IN SOA ns1.example.com. hostmaster.example.com. 2024010101 7200 3600 1209600 900\n") !=
	          NULL);
	free(r);
	r = request("cache lookup old.example.org A");
	CU_ASSERT(has_line(r, "old.example.org. 0 IN A 198.51.100.1"));
	free(r);

	r = request("cache lookup www.example.com MX");
	CU_ASSERT_STRING_EQUAL(r, "error: not cached\n");
	free(r);
	teardown();
}

static void test_control_rejects_bad_requests(void)
{
	setup(NULL);
	char *r = request("frobnicate now");
	CU_ASSERT(strncmp(r, "error: unknown command 'frobnicate now'", 39) == 0);
	CU_ASSERT(strstr(r, "usage:") != NULL);
	CU_ASSERT_EQUAL(count_lines(r), 1);
	free(r);
	r = request("cache");
	CU_ASSERT(strncmp(r, "error: unknown command 'cache'", 30) == 0);
	free(r);
	r = request("");
	CU_ASSERT(strncmp(r, "error: empty request", 20) == 0);
	free(r);
	r = request("cache lookup a..b A");
	CU_ASSERT(strncmp(r, "error: invalid name 'a..b'", 26) == 0);
	free(r);
	r = request("cache lookup www.example.com BOGUSTYPE");
	CU_ASSERT(strncmp(r, "error: invalid type 'BOGUSTYPE'", 31) == 0);
	free(r);
	r = request("cache flush www.example.com A extra");
	CU_ASSERT(strncmp(r, "error: usage: cache flush", 25) == 0);
	free(r);
	r = request("cache flush --bogus x");
	CU_ASSERT(strncmp(r, "error: unknown option '--bogus'", 31) == 0);
	free(r);
	r = request("cache flush --suffix");
	CU_ASSERT(strncmp(r, "error: usage: cache flush --suffix", 34) == 0);
	free(r);
	/* Nothing was flushed by any of that. */
	r = request("cache dump");
	CU_ASSERT_EQUAL(count_lines(r), 1 + 10);
	free(r);
	teardown();
}

static void test_control_silent_client_delays_others_at_most_the_timeout(void)
{
	setup(NULL);
	int silent = connect_ctl();
	/* Let the control thread take the silent one first. */
	usleep(100 * 1000);
	int64_t t0 = mono_ms();
	char *r = request("stats");
	int64_t took = mono_ms() - t0;
	CU_ASSERT(strncmp(r, "ok\n", 3) == 0);
	CU_ASSERT(took < 3000);
	free(r);
	char *late = read_reply(silent);
	CU_ASSERT(strncmp(late, "error: timed out", 16) == 0);
	free(late);
	close(silent);
	teardown();
}

static void test_control_free_does_not_wait_for_a_silent_client(void)
{
	setup(NULL);
	int silent = connect_ctl();
	usleep(100 * 1000);
	int64_t t0 = mono_ms();
	control_free(ctl);
	ctl = NULL;
	CU_ASSERT(mono_ms() - t0 < 1000);
	close(silent);
	teardown();
}

static void test_control_overlong_line_is_rejected_cleanly(void)
{
	setup(NULL);
	char *big = malloc(5001);
	CU_ASSERT_FATAL(big != NULL);
	memset(big, 'x', 5000);
	big[5000] = '\0';
	char *r = request(big);
	CU_ASSERT_STRING_EQUAL(r, "error: request line too long (max 1024 bytes)\n");
	free(r);
	free(big);
	/* The thread is fine afterwards. */
	r = request("cache dump");
	CU_ASSERT_EQUAL(count_lines(r), 1 + 10);
	free(r);
	teardown();
}

static void test_control_socket_mode_and_stale_file(void)
{
	setup(NULL);
	struct stat st;
	char err[256];
	CU_ASSERT_FATAL(lstat(sock_path, &st) == 0);
	CU_ASSERT(S_ISSOCK(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0660);

	/* A live socket is not taken over. */
	CU_ASSERT(control_new(&cfg, (uid_t)-1, (gid_t)-1, err, sizeof err) == NULL);
	CU_ASSERT(strstr(err, "listening") != NULL);
	control_free(ctl);
	ctl = NULL;
	CU_ASSERT(lstat(sock_path, &st) != 0); /* free removed it */

	/* A stale socket (bound, nobody listening) is replaced. */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	close(fd);
	ctl = control_new(&cfg, (uid_t)-1, (gid_t)-1, err, sizeof err);
	CU_ASSERT_FATAL(ctl != NULL);
	CU_ASSERT(control_start(ctl, NULL, cache, err, sizeof err) == 0);
	char *r = request("cache dump");
	CU_ASSERT_EQUAL(count_lines(r), 1 + 10);
	free(r);
	control_free(ctl);
	ctl = NULL;

	/* Anything else at the path is left alone. */
	FILE *f = fopen(sock_path, "w");
	CU_ASSERT_FATAL(f != NULL);
	fclose(f);
	CU_ASSERT(control_new(&cfg, (uid_t)-1, (gid_t)-1, err, sizeof err) == NULL);
	CU_ASSERT(strstr(err, "not a socket") != NULL);
	CU_ASSERT(lstat(sock_path, &st) == 0 && S_ISREG(st.st_mode));
	teardown();
}

/* ------------------------------------------------------------------ */
/* control_run: the same commands without the socket */

/* control_run's reply must equal the socket's for the same line.  The TTL
 * column may tick between the two requests, so a few tries are allowed. */
static int same_as_socket(struct server *srv, const char *line)
{
	for (int i = 0; i < 3; i++) {
		char *a = control_run(srv, cache, line);
		char *b = request(line);
		int same = a != NULL && strcmp(a, b) == 0;
		if (!same && i == 2)
			fprintf(stderr, "control_run: %s\nsocket: %s\n", a ? a : "(null)", b);
		free(a);
		free(b);
		if (same)
			return 1;
	}
	return 0;
}

static void test_control_run_lookup_matches_socket(void)
{
	setup(NULL);
	struct dump_line d;
	char *r = control_run(NULL, cache, "cache lookup www.example.com A");
	CU_ASSERT_FATAL(r != NULL);
	CU_ASSERT(strncmp(r, "ok\n", 3) == 0);
	CU_ASSERT(find_dump_line(r, "www.example.com.", "A", &d));
	CU_ASSERT_STRING_EQUAL(d.part, "general");
	CU_ASSERT(has_line(r, ";; answer"));
	CU_ASSERT(has_line(r, "www.example.com. 300 IN A 192.0.2.1") ||
	          has_line(r, "www.example.com. 299 IN A 192.0.2.1"));
	free(r);
	CU_ASSERT(same_as_socket(NULL, "cache lookup nx.example.com A"));
	CU_ASSERT(same_as_socket(NULL, "cache lookup example.org TXT"));
	CU_ASSERT(same_as_socket(NULL, "cache dump example.com"));
	CU_ASSERT(same_as_socket(NULL, "cache lookup www.example.com MX"));
	CU_ASSERT(same_as_socket(NULL, "help"));
	r = control_run(NULL, cache, "cache lookup www.example.com MX");
	CU_ASSERT_STRING_EQUAL(r, "error: not cached\n");
	free(r);
	teardown();
}

static void test_control_run_flush_then_lookup_misses(void)
{
	setup(NULL);
	char *r = control_run(NULL, cache, "cache flush www.example.com A");
	CU_ASSERT_STRING_EQUAL(r, "ok\nflushed 1\n");
	free(r);
	r = control_run(NULL, cache, "cache lookup www.example.com A");
	CU_ASSERT_STRING_EQUAL(r, "error: not cached\n");
	free(r);
	/* The socket sees the same cache. */
	r = request("cache lookup www.example.com A");
	CU_ASSERT_STRING_EQUAL(r, "error: not cached\n");
	free(r);
	r = control_run(NULL, cache, "cache flush --suffix example.com");
	CU_ASSERT_STRING_EQUAL(r, "ok\nflushed 5\n");
	free(r);
	r = control_run(NULL, cache, "cache flush --partition dnsbl");
	CU_ASSERT_STRING_EQUAL(r, "ok\nflushed 1\n");
	free(r);
	r = control_run(NULL, cache, "cache dump");
	CU_ASSERT_EQUAL(count_lines(r), 1 + 3);
	free(r);
	teardown();
}

static void test_control_run_rejects_bad_requests(void)
{
	setup(NULL);
	char *r = control_run(NULL, cache, "frobnicate now");
	CU_ASSERT_FATAL(r != NULL);
	CU_ASSERT(strncmp(r, "error: unknown command 'frobnicate now'", 39) == 0);
	CU_ASSERT(strstr(r, "usage:") != NULL);
	CU_ASSERT_EQUAL(count_lines(r), 1);
	free(r);
	CU_ASSERT(same_as_socket(NULL, "frobnicate now"));
	CU_ASSERT(same_as_socket(NULL, "cache lookup a..b A"));
	CU_ASSERT(same_as_socket(NULL, "cache flush --bogus x"));
	r = control_run(NULL, cache, "");
	CU_ASSERT(strncmp(r, "error: empty request", 20) == 0);
	free(r);
	r = control_run(NULL, cache, NULL);
	CU_ASSERT(r != NULL && strncmp(r, "error: empty request", 20) == 0);
	free(r);

	/* The socket's framing: too long is an error, a newline ends the
	 * line and a CR before it is dropped. */
	char *big = malloc(5001);
	CU_ASSERT_FATAL(big != NULL);
	memset(big, 'x', 5000);
	big[5000] = '\0';
	r = control_run(NULL, cache, big);
	CU_ASSERT_STRING_EQUAL(r, "error: request line too long (max 1024 bytes)\n");
	free(r);
	free(big);
	r = control_run(NULL, cache, "cache flush --partition dnsbl\r\ncache flush --partition mail\n");
	CU_ASSERT_STRING_EQUAL(r, "ok\nflushed 1\n");
	free(r);
	r = control_run(NULL, cache, "stats");
	CU_ASSERT(has_line(r, "cache_entries_mail 3"));
	CU_ASSERT(has_line(r, "cache_entries_dnsbl 0"));
	free(r);
	teardown();
}

static void test_control_run_with_server_and_without_cache(void)
{
	setup(FAKE_SERVER);
	char *r = control_run(FAKE_SERVER, cache, "stats");
	char want[128];
	CU_ASSERT(strncmp(r, "ok\n", 3) == 0);
	snprintf(want, sizeof want, "%s %llu", stats_name((enum stats_counter)0),
	         (unsigned long long)fake_value(0));
	CU_ASSERT(has_line(r, want));
	snprintf(want, sizeof want, "inflight %u", FAKE_INFLIGHT);
	CU_ASSERT(has_line(r, want));
	CU_ASSERT(has_line(r, "cache_entries_general 6"));
	CU_ASSERT(has_line(r, "filter_zen_blocked 3"));
	free(r);
	r = control_run(FAKE_SERVER, cache, "lists reload");
	CU_ASSERT_STRING_EQUAL(r, "error: test double: no lists\n");
	free(r);
	r = control_run(NULL, cache, "lists reload");
	CU_ASSERT_STRING_EQUAL(r, "error: no server\n");
	free(r);
	r = control_run(FAKE_SERVER, NULL, "cache dump");
	CU_ASSERT_STRING_EQUAL(r, "error: no cache\n");
	free(r);
	r = control_run(NULL, NULL, "stats");
	CU_ASSERT_STRING_EQUAL(r, "ok\n");
	free(r);
	teardown();
}

static void test_control_run_needs_no_control_socket(void)
{
	setup(NULL);
	control_free(ctl);
	ctl = NULL;
	char *r = control_run(NULL, cache, "cache lookup example.com MX");
	CU_ASSERT(r != NULL && strstr(r, " IN MX 10 mail.example.com.\n") != NULL);
	free(r);
	r = control_run(NULL, cache, "cache flush example.com MX");
	CU_ASSERT_STRING_EQUAL(r, "ok\nflushed 1\n");
	free(r);
	teardown();
}

struct run_thread {
	int ok;
};

static void *run_thread_main(void *arg)
{
	struct run_thread *t = arg;
	t->ok = 1;
	for (int i = 0; i < 50; i++) {
		char *r = control_run(NULL, cache, i % 2 ? "cache lookup mail.example.com AAAA" :
		                                           "cache lookup _25._tcp.mail.example.com TLSA");
		if (r == NULL || strncmp(r, "ok\n", 3) != 0 ||
		    strstr(r, i % 2 ? " IN AAAA 2001:db8::25\n" : " IN TLSA 3 1 1 ABCDEF01\n") == NULL)
			t->ok = 0;
		free(r);
	}
	return NULL;
}

/* Web threads call control_run at the same time as each other and as the
 * control thread: each call must have buffers of its own. */
static void test_control_run_from_several_threads(void)
{
	setup(NULL);
	pthread_t th[4];
	struct run_thread st[4];
	for (int i = 0; i < 4; i++)
		CU_ASSERT_FATAL(pthread_create(&th[i], NULL, run_thread_main, &st[i]) == 0);
	for (int i = 0; i < 10; i++) {
		char *r = request("cache lookup example.com MX");
		CU_ASSERT(strstr(r, " IN MX 10 mail.example.com.\n") != NULL);
		free(r);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT(st[i].ok);
	}
	teardown();
}

int main(void)
{
	static const struct unit_test tests[] = {
		T(test_control_stats_without_server_shows_cache_part),
		T(test_control_stats_with_server_prints_every_counter),
		T(test_control_dump_lists_every_entry),
		T(test_control_dump_suffix_filters_on_label_boundary),
		T(test_control_flush_name_removes_that_name_only),
		T(test_control_flush_suffix_removes_the_subtree),
		T(test_control_flush_partition_empties_it),
		T(test_control_lookup_prints_records),
		T(test_control_rejects_bad_requests),
		T(test_control_silent_client_delays_others_at_most_the_timeout),
		T(test_control_free_does_not_wait_for_a_silent_client),
		T(test_control_overlong_line_is_rejected_cleanly),
		T(test_control_socket_mode_and_stale_file),
		T(test_control_run_lookup_matches_socket),
		T(test_control_run_flush_then_lookup_misses),
		T(test_control_run_rejects_bad_requests),
		T(test_control_run_with_server_and_without_cache),
		T(test_control_run_needs_no_control_socket),
		T(test_control_run_from_several_threads),
	};

	log_set_level(getenv("TEST_CONTROL_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
	return unit_run("control", NULL, NULL, tests, UNIT_COUNT(tests));
}
