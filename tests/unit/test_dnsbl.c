/* test_dnsbl.c -- unit tests of resolver/dnsbl: RFC 5782 query names for
 * IPv4, IPv6 and domains, the meaning of return codes (test points, refusal
 * codes, operator ranges), the codes parser, registrable domains by the
 * Public Suffix List, and the RFC 5782 §5 probe names. */
#include "dnsbl.h"
#include "unit.h"
#include "wire.h"

#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Helpers */

/* name (wire form) as presentation text with the trailing dot, for
 * readable string comparisons; "" when it does not convert. */
static const char *text_of(const uint8_t *name, size_t len)
{
	static char buf[WIRE_MAX_NAME * 4 + 1];
	if (len == 0 || wire_name_to_text(name, len, buf, sizeof(buf)) == 0)
		buf[0] = '\0';
	return buf;
}

static uint32_t ip(const char *text)
{
	struct in_addr a;
	CU_ASSERT_FATAL(inet_pton(AF_INET, text, &a) == 1);
	return ntohl(a.s_addr);
}

/* The registrable domain of text, as text ("" when there is none). */
static const char *regdom(const char *text)
{
	uint8_t name[WIRE_MAX_NAME], out[WIRE_MAX_NAME];
	size_t len = wire_name_from_text(text, name);
	CU_ASSERT_FATAL(len > 0);
	size_t n = dnsbl_registrable_domain(name, len, out);
	if (n == 0)
		return "";
	return text_of(out, n);
}

/* A name of exactly wire_len bytes (root label included) made of labels of
 * 'a', in out; returns wire_len. */
static size_t long_name(size_t wire_len, uint8_t *out)
{
	size_t n = 0, rem = wire_len - 1;
	while (rem > 0) {
		size_t k = rem - 1 > 63 ? 63 : rem - 1;
		if (rem - (k + 1) == 1)
			k--; /* never leave one byte: a label needs two */
		out[n++] = (uint8_t)k;
		memset(out + n, 'a', k);
		n += k;
		rem -= k + 1;
	}
	out[n++] = 0;
	CU_ASSERT_EQUAL(n, wire_len);
	return n;
}

static const uint8_t ZEN[] = "\3zen\5dnsbl\7example\3net"; /* + the NUL: the root label */
#define ZEN_LEN sizeof(ZEN)

/* ------------------------------------------------------------------ */
/* Query names */

static void test_dnsbl_ipv4_query_reverses_octets(void)
{
	const uint8_t addr[4] = {1, 2, 3, 4};
	uint8_t out[WIRE_MAX_NAME];
	size_t n = dnsbl_ip_query(addr, 4, ZEN, ZEN_LEN, out);
	CU_ASSERT_EQUAL(n, 8 + ZEN_LEN);
	CU_ASSERT_STRING_EQUAL(text_of(out, n), "4.3.2.1.zen.dnsbl.example.net.");

	const uint8_t addr2[4] = {45, 67, 89, 66};
	n = dnsbl_ip_query(addr2, 4, ZEN, ZEN_LEN, out);
	CU_ASSERT_STRING_EQUAL(text_of(out, n), "66.89.67.45.zen.dnsbl.example.net.");

	const uint8_t addr3[4] = {127, 0, 0, 2};
	n = dnsbl_ip_query(addr3, 4, ZEN, ZEN_LEN, out);
	CU_ASSERT_STRING_EQUAL(text_of(out, n), "2.0.0.127.zen.dnsbl.example.net.");

	const uint8_t addr4[4] = {255, 0, 10, 100};
	n = dnsbl_ip_query(addr4, 4, ZEN, ZEN_LEN, out);
	CU_ASSERT_STRING_EQUAL(text_of(out, n), "100.10.0.255.zen.dnsbl.example.net.");
}

static void test_dnsbl_ipv6_query_is_reversed_nibbles(void)
{
	/* RFC 5782 §2.4's example. */
	uint8_t addr[16], out[WIRE_MAX_NAME];
	CU_ASSERT_FATAL(inet_pton(AF_INET6, "2001:db8:1:2:3:4:567:89ab", addr) == 1);
	size_t n = dnsbl_ip_query(addr, 16, ZEN, ZEN_LEN, out);
	CU_ASSERT_EQUAL(n, 64 + ZEN_LEN);
	CU_ASSERT_STRING_EQUAL(text_of(out, n),
	                       "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.zen.dnsbl.example.net.");

	/* The test-bed's listed IPv6 address. */
	CU_ASSERT_FATAL(inet_pton(AF_INET6, "2a01:4f8:10:20::66", addr) == 1);
	n = dnsbl_ip_query(addr, 16, ZEN, ZEN_LEN, out);
	CU_ASSERT_STRING_EQUAL(text_of(out, n),
	                       "6.6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.8.f.4.0.1.0.a.2.zen.dnsbl.example.net.");
}

static void test_dnsbl_ip_query_too_long_or_bad_input_is_zero(void)
{
	uint8_t zone[WIRE_MAX_NAME], out[WIRE_MAX_NAME];
	uint8_t addr[16] = {0x20, 0x01, 0x0d, 0xb8};
	const uint8_t v4[4] = {1, 2, 3, 4}; /* "4.3.2.1." takes 8 bytes */
	size_t zl;

	zl = long_name(200, zone);
	CU_ASSERT_EQUAL(dnsbl_ip_query(v4, 4, zone, zl, out), 208);
	CU_ASSERT_EQUAL(dnsbl_ip_query(addr, 16, zone, zl, out), 0); /* nibbles take 64 */
	zl = long_name(191, zone); /* 64 + 191 = 255: just fits */
	CU_ASSERT_EQUAL(dnsbl_ip_query(addr, 16, zone, zl, out), 255);
	zl = long_name(192, zone);
	CU_ASSERT_EQUAL(dnsbl_ip_query(addr, 16, zone, zl, out), 0);
	zl = long_name(247, zone);
	CU_ASSERT_EQUAL(dnsbl_ip_query(v4, 4, zone, zl, out), 255);
	zl = long_name(248, zone);
	CU_ASSERT_EQUAL(dnsbl_ip_query(v4, 4, zone, zl, out), 0);

	CU_ASSERT_EQUAL(dnsbl_ip_query(addr, 5, ZEN, ZEN_LEN, out), 0);   /* neither IPv4 nor IPv6 */
	CU_ASSERT_EQUAL(dnsbl_ip_query(addr, 0, ZEN, ZEN_LEN, out), 0);
	CU_ASSERT_EQUAL(dnsbl_ip_query(addr, 4, ZEN, ZEN_LEN - 1, out), 0); /* zone without root label */
	CU_ASSERT_EQUAL(dnsbl_ip_query(addr, 4, NULL, 0, out), 0);
}

static void test_dnsbl_domain_query_prepends_domain(void)
{
	uint8_t dom[WIRE_MAX_NAME], zone[WIRE_MAX_NAME], out[WIRE_MAX_NAME];
	size_t dl = wire_name_from_text("bad.example.com", dom);
	size_t zl = wire_name_from_text("dbl.example.org.", zone);
	size_t n = dnsbl_domain_query(dom, dl, zone, zl, out);
	CU_ASSERT_EQUAL(n, dl - 1 + zl);
	CU_ASSERT_STRING_EQUAL(text_of(out, n), "bad.example.com.dbl.example.org.");

	/* Too long: 250 - 1 + 17 bytes. */
	dl = long_name(250, dom);
	CU_ASSERT_EQUAL(dnsbl_domain_query(dom, dl, zone, zl, out), 0);
	dl = long_name(239, dom); /* 238 + 17 = 255 */
	CU_ASSERT_EQUAL(dnsbl_domain_query(dom, dl, zone, zl, out), 255);

	/* The root and malformed names have no query. */
	const uint8_t root[1] = {0}, broken[3] = {5, 'a', 'b'};
	CU_ASSERT_EQUAL(dnsbl_domain_query(root, 1, zone, zl, out), 0);
	CU_ASSERT_EQUAL(dnsbl_domain_query(broken, 3, zone, zl, out), 0);
}

/* ------------------------------------------------------------------ */
/* Return codes */

static void test_dnsbl_interpret_rfc5782_test_points(void)
{
	uint32_t code = 99;
	uint32_t a = ip("127.0.0.2");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, NULL, &code), DNSBL_LISTED);
	CU_ASSERT_EQUAL(code, 0);

	a = ip("127.0.0.1"); /* never a listing: the "not listed" test point answering means a broken list */
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, NULL, &code), DNSBL_ERROR);
	CU_ASSERT_EQUAL(code, ip("127.0.0.1"));

	struct dnsbl_codes c = {.count = 0};
	a = ip("127.0.0.4");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, &c, &code), DNSBL_LISTED);
	a = ip("127.1.2.3");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, &c, NULL), DNSBL_LISTED);
}

static void test_dnsbl_interpret_refusal_codes_are_errors(void)
{
	const char *refusals[] = {"127.255.255.252", "127.255.255.254", "127.255.255.255", "127.255.255.0"};
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		uint32_t code = 0, a = ip(refusals[i]);
		CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, NULL, &code), DNSBL_ERROR);
		CU_ASSERT_EQUAL(code, a);
	}
	/* Just below the refusal /24 is an ordinary listing. */
	uint32_t a = ip("127.255.254.255");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, NULL, NULL), DNSBL_LISTED);
}

static void test_dnsbl_interpret_outside_127_is_error(void)
{
	uint32_t code = 0, a = ip("45.67.89.66"); /* a wildcarded or hijacked zone answering real addresses */
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, NULL, &code), DNSBL_ERROR);
	CU_ASSERT_EQUAL(code, a);
	a = ip("126.255.255.255");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, NULL, &code), DNSBL_ERROR);
	a = ip("128.0.0.0");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, NULL, &code), DNSBL_ERROR);
}

static void test_dnsbl_interpret_explicit_ranges(void)
{
	struct dnsbl_codes c;
	uint32_t code = 0, a;
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL_FATAL(dnsbl_codes_add(&c, "127.0.0.2-127.0.0.11"), 0);

	a = ip("127.0.0.2");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, &c, &code), DNSBL_LISTED);
	a = ip("127.0.0.11");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, &c, &code), DNSBL_LISTED);
	a = ip("127.0.0.12");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, &c, &code), DNSBL_ERROR);
	CU_ASSERT_EQUAL(code, a);
	a = ip("127.0.1.5");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, &c, &code), DNSBL_ERROR);
	CU_ASSERT_EQUAL(code, a);
	a = ip("127.255.255.254");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, &c, &code), DNSBL_ERROR);
	CU_ASSERT_EQUAL(code, a);

	/* A second range; and a range that covers them cannot make refusals or 127.0.0.1 listings. */
	CU_ASSERT_EQUAL_FATAL(dnsbl_codes_add(&c, "127.0.1.2"), 0);
	a = ip("127.0.1.2");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, &c, &code), DNSBL_LISTED);
	CU_ASSERT_EQUAL_FATAL(dnsbl_codes_add(&c, "127.0.0.0-127.255.255.255"), 0);
	a = ip("127.255.255.255");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, &c, &code), DNSBL_ERROR);
	a = ip("127.0.0.1");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 1, &c, &code), DNSBL_ERROR);
}

static void test_dnsbl_interpret_listed_wins_over_errors(void)
{
	uint32_t code = 7;
	uint32_t mixed[3] = {ip("127.255.255.254"), ip("127.0.0.1"), ip("127.0.0.3")};
	CU_ASSERT_EQUAL(dnsbl_interpret(mixed, 3, NULL, &code), DNSBL_LISTED);
	CU_ASSERT_EQUAL(code, 0);

	/* Errors only: the first one is reported. */
	uint32_t errs[2] = {ip("127.0.0.1"), ip("127.255.255.255")};
	CU_ASSERT_EQUAL(dnsbl_interpret(errs, 2, NULL, &code), DNSBL_ERROR);
	CU_ASSERT_EQUAL(code, ip("127.0.0.1"));

	struct dnsbl_codes c;
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL_FATAL(dnsbl_codes_add(&c, "127.0.0.2-127.0.0.11"), 0);
	uint32_t m2[2] = {ip("127.0.1.5"), ip("127.0.0.10")};
	CU_ASSERT_EQUAL(dnsbl_interpret(m2, 2, &c, &code), DNSBL_LISTED);
}

static void test_dnsbl_interpret_no_addresses_is_not_listed(void)
{
	uint32_t code = 7, a = ip("127.0.0.2");
	CU_ASSERT_EQUAL(dnsbl_interpret(&a, 0, NULL, &code), DNSBL_NOT_LISTED);
	CU_ASSERT_EQUAL(code, 0);
	CU_ASSERT_EQUAL(dnsbl_interpret(NULL, 0, NULL, &code), DNSBL_NOT_LISTED);
	CU_ASSERT_EQUAL(dnsbl_interpret(NULL, 0, NULL, NULL), DNSBL_NOT_LISTED);
}

/* ------------------------------------------------------------------ */
/* The codes parser */

static void test_dnsbl_codes_add_accepts_addresses_and_ranges(void)
{
	struct dnsbl_codes c;
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(dnsbl_codes_add(&c, "127.0.0.2"), 0);
	CU_ASSERT_EQUAL(dnsbl_codes_add(&c, "127.0.0.2-127.0.0.11"), 0);
	CU_ASSERT_EQUAL(dnsbl_codes_add(&c, "127.0.0.4-127.0.0.4"), 0);
	CU_ASSERT_EQUAL(dnsbl_codes_add(&c, "127.0.1.2 - 127.0.1.9"), 0);
	CU_ASSERT_EQUAL_FATAL(c.count, 4);
	CU_ASSERT_EQUAL(c.lo[0], ip("127.0.0.2"));
	CU_ASSERT_EQUAL(c.hi[0], ip("127.0.0.2"));
	CU_ASSERT_EQUAL(c.lo[1], ip("127.0.0.2"));
	CU_ASSERT_EQUAL(c.hi[1], ip("127.0.0.11"));
	CU_ASSERT_EQUAL(c.lo[3], ip("127.0.1.2"));
	CU_ASSERT_EQUAL(c.hi[3], ip("127.0.1.9"));
}

static void test_dnsbl_codes_add_rejects_junk_reversed_and_too_many(void)
{
	struct dnsbl_codes c;
	memset(&c, 0, sizeof(c));
	const char *bad[] = {
		"127.0.0.2-127.0.0.1", /* reversed */
		"", "-", "127.0.0.2-", "-127.0.0.2", "127.0.0", "127.0.0.256", "127.2", "localhost",
		"127.0.0.2-127.0.0.3-127.0.0.4", "127.0.0.2x", "::1", "127.0.0.2/32", "0x7f.0.0.2",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT_EQUAL(dnsbl_codes_add(&c, bad[i]), -1);
	CU_ASSERT_EQUAL(c.count, 0);
	CU_ASSERT_EQUAL(dnsbl_codes_add(&c, NULL), -1);
	CU_ASSERT_EQUAL(dnsbl_codes_add(NULL, "127.0.0.2"), -1);

	for (unsigned i = 0; i < DNSBL_MAX_RANGES; i++)
		CU_ASSERT_EQUAL(dnsbl_codes_add(&c, "127.0.0.2"), 0);
	CU_ASSERT_EQUAL(dnsbl_codes_add(&c, "127.0.0.3"), -1);
	CU_ASSERT_EQUAL(c.count, DNSBL_MAX_RANGES);
}

/* ------------------------------------------------------------------ */
/* Registrable domains */

static void test_dnsbl_registrable_domain_by_public_suffix_list(void)
{
	CU_ASSERT_STRING_EQUAL(regdom("www.example.com"), "example.com.");
	CU_ASSERT_STRING_EQUAL(regdom("a.b.example.co.uk"), "example.co.uk.");
	CU_ASSERT_STRING_EQUAL(regdom("example.com"), "example.com.");
	CU_ASSERT_STRING_EQUAL(regdom("mail.bad.example.com"), "example.com.");
	CU_ASSERT_STRING_EQUAL(regdom("WWW.Example.COM."), "example.com.");
	CU_ASSERT_STRING_EQUAL(regdom("mail.insecure.com"), "insecure.com.");
}

static void test_dnsbl_registrable_domain_of_public_suffix_is_zero(void)
{
	CU_ASSERT_STRING_EQUAL(regdom("co.uk"), "");
	CU_ASSERT_STRING_EQUAL(regdom("com"), "");
	CU_ASSERT_STRING_EQUAL(regdom("."), "");

	uint8_t out[WIRE_MAX_NAME];
	const uint8_t broken[4] = {9, 'a', 'b', 0};
	CU_ASSERT_EQUAL(dnsbl_registrable_domain(broken, sizeof(broken), out), 0);
	const uint8_t escaped[] = "\7ex ample\3com"; /* a space inside a label: no host name */
	CU_ASSERT_EQUAL(dnsbl_registrable_domain(escaped, sizeof(escaped), out), 0);
	CU_ASSERT_EQUAL(dnsbl_registrable_domain(NULL, 0, out), 0);
}

/* ------------------------------------------------------------------ */
/* Probe names */

static void test_dnsbl_probe_names_for_ip_and_domain_lists(void)
{
	uint8_t l[WIRE_MAX_NAME], u[WIRE_MAX_NAME];
	size_t ll = 0, ul = 0;
	CU_ASSERT_EQUAL_FATAL(dnsbl_probe_names(false, ZEN, ZEN_LEN, l, &ll, u, &ul), 0);
	CU_ASSERT_STRING_EQUAL(text_of(l, ll), "2.0.0.127.zen.dnsbl.example.net.");
	CU_ASSERT_STRING_EQUAL(text_of(u, ul), "1.0.0.127.zen.dnsbl.example.net.");

	uint8_t zone[WIRE_MAX_NAME];
	size_t zl = wire_name_from_text("dbl.example.org", zone);
	CU_ASSERT_EQUAL_FATAL(dnsbl_probe_names(true, zone, zl, l, &ll, u, &ul), 0);
	CU_ASSERT_STRING_EQUAL(text_of(l, ll), "test.dbl.example.org.");
	CU_ASSERT_STRING_EQUAL(text_of(u, ul), "invalid.dbl.example.org.");
}

static void test_dnsbl_probe_names_that_do_not_fit_fail(void)
{
	uint8_t zone[WIRE_MAX_NAME], l[WIRE_MAX_NAME], u[WIRE_MAX_NAME];
	size_t ll = 0, ul = 0, zl;

	zl = long_name(245, zone); /* "2.0.0.127." is 10 bytes: 255 */
	CU_ASSERT_EQUAL(dnsbl_probe_names(false, zone, zl, l, &ll, u, &ul), 0);
	CU_ASSERT_EQUAL(ll, 255);
	zl = long_name(246, zone);
	CU_ASSERT_EQUAL(dnsbl_probe_names(false, zone, zl, l, &ll, u, &ul), -1);
	/* "test." fits (5 + 248) but "invalid." does not (8 + 248): both must. */
	zl = long_name(248, zone);
	CU_ASSERT_EQUAL(dnsbl_probe_names(true, zone, zl, l, &ll, u, &ul), -1);
	CU_ASSERT_EQUAL(dnsbl_probe_names(false, NULL, 0, l, &ll, u, &ul), -1);
}

int main(void)
{
	static const struct unit_test tests[] = {
		T(test_dnsbl_ipv4_query_reverses_octets),
		T(test_dnsbl_ipv6_query_is_reversed_nibbles),
		T(test_dnsbl_ip_query_too_long_or_bad_input_is_zero),
		T(test_dnsbl_domain_query_prepends_domain),
		T(test_dnsbl_interpret_rfc5782_test_points),
		T(test_dnsbl_interpret_refusal_codes_are_errors),
		T(test_dnsbl_interpret_outside_127_is_error),
		T(test_dnsbl_interpret_explicit_ranges),
		T(test_dnsbl_interpret_listed_wins_over_errors),
		T(test_dnsbl_interpret_no_addresses_is_not_listed),
		T(test_dnsbl_codes_add_accepts_addresses_and_ranges),
		T(test_dnsbl_codes_add_rejects_junk_reversed_and_too_many),
		T(test_dnsbl_registrable_domain_by_public_suffix_list),
		T(test_dnsbl_registrable_domain_of_public_suffix_is_zero),
		T(test_dnsbl_probe_names_for_ip_and_domain_lists),
		T(test_dnsbl_probe_names_that_do_not_fit_fail),
	};
	return unit_run("dnsbl", NULL, NULL, tests, UNIT_COUNT(tests));
}
