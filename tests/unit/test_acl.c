/* test_acl.c -- unit tests of resolver/acl: longest-prefix match, IPv4-mapped
 * clients, strict CIDR parsing, and a comparison with a naive matcher over
 * random rule sets. */
#include "acl.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Helpers */

static enum acl_action check(const struct acl *a, const char *client)
{
	struct sockaddr_storage ss = sa_from_text(client);
	return acl_check(a, (const struct sockaddr *)&ss);
}

/* Add a rule that must be accepted. */
static void add_ok(struct acl *a, const char *cidr, enum acl_action action)
{
	char err[256] = "";
	int rc = acl_add(a, cidr, action, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "\n  acl_add(%s) failed: %s\n", cidr, err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
}

/* Add a rule that must be refused, with a message containing want. */
static void add_fails(struct acl *a, const char *cidr, const char *want)
{
	char err[256] = "";
	int rc = acl_add(a, cidr, ACL_REFUSE, err, sizeof(err));
	if (rc != -1 || strstr(err, want) == NULL)
		fprintf(stderr, "\n  acl_add(%s) = %d, err \"%s\", wanted \"%s\"\n", cidr, rc, err, want);
	CU_ASSERT_EQUAL(rc, -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
}

/* ------------------------------------------------------------------ */
/* Matching */

static void test_acl_default_applies_when_no_rule_matches(void)
{
	struct acl *a = acl_new(ACL_REFUSE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(check(a, "192.0.2.1"), ACL_REFUSE);
	CU_ASSERT_EQUAL(check(a, "2001:db8::1"), ACL_REFUSE);
	add_ok(a, "10.0.0.0/8", ACL_ALLOW);
	add_ok(a, "2001:db8::/32", ACL_ALLOW);
	CU_ASSERT_EQUAL(check(a, "10.255.255.255"), ACL_ALLOW);
	CU_ASSERT_EQUAL(check(a, "11.0.0.0"), ACL_REFUSE);
	CU_ASSERT_EQUAL(check(a, "9.255.255.255"), ACL_REFUSE);
	CU_ASSERT_EQUAL(check(a, "2001:db9::"), ACL_REFUSE);
	acl_free(a);

	a = acl_new(ACL_DROP);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(check(a, "127.0.0.1"), ACL_DROP);
	acl_free(a);
}

/* The list as a map to values (filter scopes use it). */
static void test_acl_values_longest_prefix_and_default(void)
{
	struct acl *a = acl_new((enum acl_action)0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	char err[256];
	CU_ASSERT_EQUAL(acl_add_value(a, "10.0.0.0/8", 7, err, sizeof err), 0);
	CU_ASSERT_EQUAL(acl_add_value(a, "10.1.0.0/16", 42, err, sizeof err), 0);
	CU_ASSERT_EQUAL(acl_add_value(a, "2001:db8::/32", 9, err, sizeof err), 0);
	CU_ASSERT_EQUAL(acl_add_value(a, "10.1.0.0/16", 3, err, sizeof err), -1);
	struct sockaddr_storage c = sa_from_text("10.1.2.3");
	CU_ASSERT_EQUAL(acl_lookup(a, (struct sockaddr *)&c), 42);
	c = sa_from_text("10.9.9.9");
	CU_ASSERT_EQUAL(acl_lookup(a, (struct sockaddr *)&c), 7);
	c = sa_from_text("2001:db8::1");
	CU_ASSERT_EQUAL(acl_lookup(a, (struct sockaddr *)&c), 9);
	c = sa_from_text("192.0.2.1");
	CU_ASSERT_EQUAL(acl_lookup(a, (struct sockaddr *)&c), 0);
	acl_free(a);
}

static void test_acl_longest_prefix_wins(void)
{
	struct acl *a = acl_new(ACL_REFUSE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	/* Added in an order that is neither longest- nor shortest-first. */
	add_ok(a, "10.1.0.0/16", ACL_DROP);
	add_ok(a, "10.0.0.0/8", ACL_ALLOW);
	add_ok(a, "10.1.2.3", ACL_ALLOW);
	add_ok(a, "10.1.2.0/24", ACL_REFUSE);
	CU_ASSERT_EQUAL(check(a, "10.1.2.3"), ACL_ALLOW);   /* /32 */
	CU_ASSERT_EQUAL(check(a, "10.1.2.4"), ACL_REFUSE);  /* /24 */
	CU_ASSERT_EQUAL(check(a, "10.1.3.1"), ACL_DROP);    /* /16 */
	CU_ASSERT_EQUAL(check(a, "10.2.0.1"), ACL_ALLOW);   /* /8 */
	CU_ASSERT_EQUAL(check(a, "12.0.0.1"), ACL_REFUSE);  /* default */
	acl_free(a);
}

static void test_acl_zero_prefix_matches_everything_of_its_family(void)
{
	struct acl *a = acl_new(ACL_REFUSE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	add_ok(a, "0.0.0.0/0", ACL_ALLOW);
	add_ok(a, "192.0.2.0/24", ACL_DROP);
	CU_ASSERT_EQUAL(check(a, "0.0.0.0"), ACL_ALLOW);
	CU_ASSERT_EQUAL(check(a, "255.255.255.255"), ACL_ALLOW);
	CU_ASSERT_EQUAL(check(a, "192.0.2.9"), ACL_DROP);
	/* An IPv4 /0 says nothing about IPv6 clients. */
	CU_ASSERT_EQUAL(check(a, "2001:db8::1"), ACL_REFUSE);
	add_ok(a, "::/0", ACL_DROP);
	CU_ASSERT_EQUAL(check(a, "2001:db8::1"), ACL_DROP);
	CU_ASSERT_EQUAL(check(a, "::"), ACL_DROP);
	acl_free(a);
}

static void test_acl_v6_rules(void)
{
	struct acl *a = acl_new(ACL_REFUSE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	add_ok(a, "2001:db8::/32", ACL_ALLOW);
	add_ok(a, "2001:db8:0:1::/64", ACL_DROP);
	add_ok(a, "2001:db8:0:1::53/128", ACL_ALLOW);
	add_ok(a, "2001:db8:8000::/33", ACL_DROP);
	add_ok(a, "::1", ACL_ALLOW);
	add_ok(a, "2001:db8:0:2::/65", ACL_DROP);
	CU_ASSERT_EQUAL(check(a, "2001:db8::5"), ACL_ALLOW);
	CU_ASSERT_EQUAL(check(a, "2001:db8:0:1::1"), ACL_DROP);
	CU_ASSERT_EQUAL(check(a, "2001:db8:0:1::53"), ACL_ALLOW);
	CU_ASSERT_EQUAL(check(a, "2001:db8:0:1::54"), ACL_DROP);
	CU_ASSERT_EQUAL(check(a, "2001:db8:7fff:ffff::"), ACL_ALLOW);
	CU_ASSERT_EQUAL(check(a, "2001:db8:8000::"), ACL_DROP);
	CU_ASSERT_EQUAL(check(a, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), ACL_DROP);
	/* /65: the rule's bit 64 is clear, so ::8000:0:0:0 falls to the /32. */
	CU_ASSERT_EQUAL(check(a, "2001:db8:0:2:7fff::1"), ACL_DROP);
	CU_ASSERT_EQUAL(check(a, "2001:db8:0:2:8000::1"), ACL_ALLOW);
	CU_ASSERT_EQUAL(check(a, "::1"), ACL_ALLOW);
	CU_ASSERT_EQUAL(check(a, "::2"), ACL_REFUSE);
	CU_ASSERT_EQUAL(check(a, "2001:db9::"), ACL_REFUSE);
	/* IPv6 rules never match IPv4 clients. */
	CU_ASSERT_EQUAL(check(a, "32.1.13.184"), ACL_REFUSE);
	acl_free(a);
}

static void test_acl_ipv4_mapped_ipv6_matches_ipv4_rule(void)
{
	struct acl *a = acl_new(ACL_REFUSE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	add_ok(a, "192.0.2.0/24", ACL_ALLOW);
	add_ok(a, "192.0.2.128/25", ACL_DROP);
	CU_ASSERT_EQUAL(check(a, "::ffff:192.0.2.1"), ACL_ALLOW);
	CU_ASSERT_EQUAL(check(a, "::ffff:192.0.2.200"), ACL_DROP);
	CU_ASSERT_EQUAL(check(a, "::ffff:198.51.100.1"), ACL_REFUSE);
	/* Not mapped: the IPv4-compatible form and NAT64 are plain IPv6. */
	CU_ASSERT_EQUAL(check(a, "::192.0.2.1"), ACL_REFUSE);
	CU_ASSERT_EQUAL(check(a, "64:ff9b::192.0.2.1"), ACL_REFUSE);
	acl_free(a);
}

static void test_acl_ipv4_mapped_rule_is_an_ipv4_rule(void)
{
	struct acl *a = acl_new(ACL_REFUSE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	/* Written mapped, it must still match (mapped clients are IPv4). */
	add_ok(a, "::ffff:198.51.100.0/120", ACL_ALLOW);
	CU_ASSERT_EQUAL(check(a, "198.51.100.7"), ACL_ALLOW);
	CU_ASSERT_EQUAL(check(a, "::ffff:198.51.100.7"), ACL_ALLOW);
	CU_ASSERT_EQUAL(check(a, "198.51.101.7"), ACL_REFUSE);
	/* And so it is the same prefix as the IPv4 spelling. */
	add_fails(a, "198.51.100.0/24", "duplicate prefix");
	acl_free(a);
}

static void test_acl_unknown_family_gets_default(void)
{
	struct acl *a = acl_new(ACL_DROP);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	add_ok(a, "0.0.0.0/0", ACL_ALLOW);
	add_ok(a, "::/0", ACL_ALLOW);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	CU_ASSERT_EQUAL(acl_check(a, (const struct sockaddr *)&ss), ACL_DROP);
	acl_free(a);
}

/* ------------------------------------------------------------------ */
/* Parsing */

static void test_acl_rejects_host_bits_set(void)
{
	struct acl *a = acl_new(ACL_ALLOW);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	add_fails(a, "10.1.2.3/8", "host bits set");
	add_fails(a, "10.1.2.3/8", "10.0.0.0/8");   /* says what was meant */
	add_fails(a, "192.0.2.1/31", "host bits set");
	add_fails(a, "0.0.0.1/0", "host bits set");
	add_fails(a, "2001:db8::1/64", "host bits set");
	add_fails(a, "2001:db8::1/64", "2001:db8::/64");
	add_fails(a, "2001:db8:0:1::/63", "host bits set");
	add_fails(a, "::ffff:10.1.0.0/104", "host bits set");
	/* The exact boundaries are fine. */
	add_ok(a, "192.0.2.2/31", ACL_DROP);
	add_ok(a, "2001:db8:0:2::/63", ACL_DROP);
	add_ok(a, "128.0.0.0/1", ACL_DROP);
	acl_free(a);
}

static void test_acl_rejects_duplicate_prefix(void)
{
	struct acl *a = acl_new(ACL_ALLOW);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	add_ok(a, "10.0.0.0/8", ACL_DROP);
	add_fails(a, "10.0.0.0/8", "duplicate prefix");
	/* Another spelling of the same prefix is the same prefix. */
	add_ok(a, "2001:db8::/32", ACL_DROP);
	add_fails(a, "2001:0db8:0000::/32", "duplicate prefix");
	add_ok(a, "192.0.2.1", ACL_DROP);
	add_fails(a, "192.0.2.1/32", "duplicate prefix");
	/* The same network with another length is a different prefix. */
	add_ok(a, "10.0.0.0/9", ACL_REFUSE);
	/* The failed adds changed nothing. */
	CU_ASSERT_EQUAL(check(a, "10.200.0.1"), ACL_DROP);
	CU_ASSERT_EQUAL(check(a, "10.1.0.1"), ACL_REFUSE);
	acl_free(a);
}

static void test_acl_rejects_bad_prefix_length(void)
{
	struct acl *a = acl_new(ACL_ALLOW);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	add_fails(a, "10.0.0.0/33", "out of range");
	add_fails(a, "10.0.0.0/100", "out of range");
	add_fails(a, "10.0.0.0/4294967304", "out of range");   /* 2^32 + 8: no wrap */
	add_fails(a, "2001:db8::/129", "out of range");
	add_fails(a, "::/200", "out of range");
	add_fails(a, "10.0.0.0/-8", "junk");
	add_fails(a, "10.0.0.0/+8", "junk");
	add_fails(a, "10.0.0.0/08", "junk");
	add_fails(a, "10.0.0.0/", "junk");
	add_fails(a, "10.0.0.0/ 8", "junk");
	acl_free(a);
}

static void test_acl_rejects_junk_after_prefix(void)
{
	struct acl *a = acl_new(ACL_ALLOW);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	add_fails(a, "10.0.0.0/8x", "junk");
	add_fails(a, "10.0.0.0/8 ", "junk");
	add_fails(a, "10.0.0.0/8/8", "junk");
	add_fails(a, "2001:db8::/32#lab", "junk");
	acl_free(a);
}

static void test_acl_rejects_bad_addresses(void)
{
	struct acl *a = acl_new(ACL_ALLOW);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	const char *bad[] = {
		"", "/8", "10.0.0/24", "10.0.0.256", "10.0.0.0.0/8", "010.0.0.0/8", " 10.0.0.0/8",
		"10.0.0.0 /8", "0x0a000000/8", "localhost", "2001:db8:::/32", "2001:db8::g/32",
		"fe80::1%eth0", "1:2:3:4:5:6:7:8:9", "::ffff:1.2.3/104",
		"1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc/128",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		add_fails(a, bad[i], "bad address");
	/* Nothing got in. */
	CU_ASSERT_EQUAL(check(a, "10.0.0.1"), ACL_ALLOW);
	acl_free(a);
}

static void test_acl_rejects_unknown_action_and_null_input(void)
{
	struct acl *a = acl_new(ACL_ALLOW);
	char err[64];
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(acl_add(a, "10.0.0.0/8", (enum acl_action)7, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown action"));
	CU_ASSERT_EQUAL(acl_add(a, NULL, ACL_DROP, err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(acl_add(NULL, "10.0.0.0/8", ACL_DROP, err, sizeof(err)), -1);
	acl_free(a);
	acl_free(NULL);
}

static void test_acl_error_buffer_may_be_small_or_absent(void)
{
	struct acl *a = acl_new(ACL_ALLOW);
	char tiny[8];
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(acl_add(a, "10.1.2.3/8", ACL_DROP, NULL, 0), -1);
	memset(tiny, 'x', sizeof(tiny));
	CU_ASSERT_EQUAL(acl_add(a, "10.1.2.3/8", ACL_DROP, tiny, sizeof(tiny)), -1);
	CU_ASSERT_EQUAL(strlen(tiny), sizeof(tiny) - 1);   /* truncated, terminated */
	/* Success leaves an empty message, not a stale one. */
	char err[64] = "stale";
	CU_ASSERT_EQUAL(acl_add(a, "10.0.0.0/8", ACL_DROP, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(err, "");
	acl_free(a);
}

/* ------------------------------------------------------------------ */
/* Against a naive matcher */

struct ref_rule {
	int v6;
	unsigned char net[16];
	unsigned len;
	enum acl_action action;
};

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rng(void)
{
	/* xorshift64*: reproducible, good enough to scatter addresses. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static int prefix_match(const unsigned char *addr, const unsigned char *net, unsigned len)
{
	for (unsigned i = 0; i < len; i++) {
		unsigned bit = 0x80u >> (i % 8);
		if ((addr[i / 8] & bit) != (net[i / 8] & bit))
			return 0;
	}
	return 1;
}

static enum acl_action ref_check(const struct ref_rule *r, size_t n, int v6, const unsigned char *addr,
                                 enum acl_action def)
{
	int best = -1;
	enum acl_action act = def;
	for (size_t i = 0; i < n; i++)
		if (r[i].v6 == v6 && (int)r[i].len > best && prefix_match(addr, r[i].net, r[i].len)) {
			best = (int)r[i].len;
			act = r[i].action;
		}
	return act;
}

static void test_acl_agrees_with_naive_matcher_on_random_rules(void)
{
	for (int round = 0; round < 20; round++) {
		struct acl *a = acl_new(ACL_REFUSE);
		struct ref_rule rules[200];
		size_t n = 0;
		CU_ASSERT_PTR_NOT_NULL_FATAL(a);

		/* Rules nested inside a few base networks so that prefixes
		 * overlap; a few lengths only, like real lists. */
		while (n < sizeof(rules) / sizeof(rules[0])) {
			struct ref_rule *r = &rules[n];
			char text[INET6_ADDRSTRLEN + 8];
			char addr[INET6_ADDRSTRLEN];
			uint64_t x = rng();
			r->v6 = (int)(x & 1);
			memset(r->net, 0, sizeof(r->net));
			static const unsigned lens4[] = { 0, 8, 12, 16, 23, 24, 29, 32 };
			static const unsigned lens6[] = { 0, 16, 32, 48, 56, 64, 65, 100, 127, 128 };
			if (r->v6) {
				r->len = lens6[(x >> 8) % 10];
				r->net[0] = 0x20;
				r->net[1] = 0x01;
				for (int i = 2; i < 16; i++)
					r->net[i] = (unsigned char)((rng() & 3) == 0 ? rng() : 0);
			} else {
				r->len = lens4[(x >> 8) % 8];
				r->net[0] = 10;
				for (int i = 1; i < 4; i++)
					r->net[i] = (unsigned char)((rng() & 3) == 0 ? rng() : 0);
			}
			for (unsigned i = r->len; i < (r->v6 ? 128u : 32u); i++)
				r->net[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
			r->action = (enum acl_action)(rng() % 3);
			inet_ntop(r->v6 ? AF_INET6 : AF_INET, r->net, addr, sizeof(addr));
			snprintf(text, sizeof(text), "%s/%u", addr, r->len);

			int dup = 0;
			for (size_t j = 0; j < n; j++)
				dup |= rules[j].v6 == r->v6 && rules[j].len == r->len &&
				       memcmp(rules[j].net, r->net, 16) == 0;
			char err[128];
			int rc = acl_add(a, text, r->action, err, sizeof(err));
			CU_ASSERT_EQUAL(rc, dup ? -1 : 0);
			if (rc == 0)
				n++;
		}

		for (int k = 0; k < 5000; k++) {
			/* Clients near rules: a rule's network with random low bits. */
			const struct ref_rule *near = &rules[rng() % n];
			unsigned char b[16];
			memcpy(b, near->net, 16);
			unsigned flip = (unsigned)(rng() % (near->v6 ? 128 : 32));
			for (unsigned i = flip; i < (near->v6 ? 128u : 32u); i++)
				if (rng() & 1)
					b[i / 8] ^= (unsigned char)(0x80u >> (i % 8));
			struct sockaddr_storage ss;
			memset(&ss, 0, sizeof(ss));
			if (near->v6) {
				struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
				s6->sin6_family = AF_INET6;
				memcpy(&s6->sin6_addr, b, 16);
			} else {
				struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
				s4->sin_family = AF_INET;
				memcpy(&s4->sin_addr, b, 4);
			}
			enum acl_action want = ref_check(rules, n, near->v6, b, ACL_REFUSE);
			enum acl_action got = acl_check(a, (const struct sockaddr *)&ss);
			CU_ASSERT_EQUAL(got, want);
			if (got != want)
				break;
		}
		acl_free(a);
	}
}

int main(void)
{
	static const struct unit_test tests[] = {
		T(test_acl_default_applies_when_no_rule_matches),
		T(test_acl_longest_prefix_wins),
		T(test_acl_values_longest_prefix_and_default),
		T(test_acl_zero_prefix_matches_everything_of_its_family),
		T(test_acl_v6_rules),
		T(test_acl_ipv4_mapped_ipv6_matches_ipv4_rule),
		T(test_acl_ipv4_mapped_rule_is_an_ipv4_rule),
		T(test_acl_unknown_family_gets_default),
		T(test_acl_rejects_host_bits_set),
		T(test_acl_rejects_duplicate_prefix),
		T(test_acl_rejects_bad_prefix_length),
		T(test_acl_rejects_junk_after_prefix),
		T(test_acl_rejects_bad_addresses),
		T(test_acl_rejects_unknown_action_and_null_input),
		T(test_acl_error_buffer_may_be_small_or_absent),
		T(test_acl_agrees_with_naive_matcher_on_random_rules),
	};
	return unit_run("acl", NULL, NULL, tests, UNIT_COUNT(tests));
}
