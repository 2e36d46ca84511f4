/* fuzz_acl.c -- libFuzzer harness: any bytes as lines of CIDR rules.
 *
 * Each line goes to acl_add (actions in turn), and a naive reference decides
 * independently whether it should have been accepted: byte-wise host-bit and
 * duplicate checks, a prefix of 1-3 digits without a leading zero.  Then
 * addresses near every accepted rule, their IPv4-mapped forms and a few
 * random ones are checked against a linear longest-prefix scan.  Any
 * disagreement aborts, so the fuzzer looks for wrong answers, not only for
 * crashes. */
#include "acl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RULES 64

struct ref_rule {
	int v6;
	unsigned char net[16];
	int len;
	enum acl_action action;
};

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* splitmix64: the addresses are a function of the input, so a crash
	 * reproduces from its file. */
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* What acl_add should make of the text: 1 and the rule, or 0. */
static int ref_parse(const char *text, struct ref_rule *r)
{
	char addr[64];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);

	memset(r, 0, sizeof(*r));
	if (alen == 0 || alen >= sizeof(addr))
		return 0;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	r->v6 = memchr(addr, ':', alen) != NULL;
	if (inet_pton(r->v6 ? AF_INET6 : AF_INET, addr, r->net) != 1)
		return 0;
	int max = r->v6 ? 128 : 32;
	if (slash) {
		const char *p = slash + 1;
		size_t n = strlen(p);
		if (n == 0 || n > 3 || (p[0] == '0' && n > 1))
			return 0;
		r->len = 0;
		for (size_t i = 0; i < n; i++) {
			if (p[i] < '0' || p[i] > '9')
				return 0;
			r->len = r->len * 10 + (p[i] - '0');
		}
		if (r->len > max)
			return 0;
	} else {
		r->len = max;
	}
	for (int i = r->len; i < max; i++)
		if (r->net[i / 8] & (0x80 >> (i % 8)))
			return 0;
	/* A mapped rule is the IPv4 rule it spells. */
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF };
	if (r->v6 && r->len >= 96 && memcmp(r->net, mapped, 12) == 0) {
		memmove(r->net, r->net + 12, 4);
		memset(r->net + 4, 0, 12);
		r->len -= 96;
		r->v6 = 0;
	}
	return 1;
}

static int ref_match(const unsigned char *a, const unsigned char *net, int len)
{
	for (int i = 0; i < len; i++)
		if ((a[i / 8] ^ net[i / 8]) & (0x80 >> (i % 8)))
			return 0;
	return 1;
}

static enum acl_action ref_check(const struct ref_rule *r, size_t n, int v6, const unsigned char *a)
{
	int best = -1;
	enum acl_action act = ACL_REFUSE; /* the list's default below */
	for (size_t i = 0; i < n; i++)
		if (r[i].v6 == v6 && r[i].len > best && ref_match(a, r[i].net, r[i].len)) {
			best = r[i].len;
			act = r[i].action;
		}
	return act;
}

static void check_one(const struct acl *a, const struct ref_rule *r, size_t n, int v6, const unsigned char *b)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, b, 16);
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF };
		int is_mapped = memcmp(b, mapped, 12) == 0;
		enum acl_action want = is_mapped ? ref_check(r, n, 0, b + 12) : ref_check(r, n, 1, b);
		if (acl_check(a, (const struct sockaddr *)&ss) != want)
			abort();
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, b, 4);
		if (acl_check(a, (const struct sockaddr *)&ss) != ref_check(r, n, 0, b))
			abort();
		/* The same client arriving on a dual-stack socket. */
		unsigned char m[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF };
		memcpy(m + 12, b, 4);
		check_one(a, r, n, 1, m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ref_rule rules[MAX_RULES];
	size_t nrules = 0, lines = 0;
	char line[256];
	char err[128];
	struct acl *a = acl_new(ACL_REFUSE);

	if (a == NULL)
		abort();
	rng_state = 0;
	for (size_t i = 0; i < size; i++)
		rng_state = (rng_state ^ data[i]) * 0x100000001B3ULL;

	for (size_t pos = 0; pos < size && lines < MAX_RULES; lines++) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t end = nl ? (size_t)(nl - data) : size;
		size_t len = end - pos < sizeof(line) - 1 ? end - pos : sizeof(line) - 1;
		memcpy(line, data + pos, len);
		line[len] = '\0';
		pos = end + 1;

		struct ref_rule r;
		int want = ref_parse(line, &r);
		for (size_t j = 0; want && j < nrules; j++)
			if (rules[j].v6 == r.v6 && rules[j].len == r.len && memcmp(rules[j].net, r.net, 16) == 0)
				want = 0;
		r.action = (enum acl_action)(lines % 3);
		memset(err, 'x', sizeof(err));
		int rc = acl_add(a, line, r.action, err, sizeof(err));
		if (memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		if (rc != (want ? 0 : -1) || (rc == 0) != (err[0] == '\0'))
			abort();
		if (rc == 0)
			rules[nrules++] = r;
	}

	for (size_t i = 0; i < nrules; i++) {
		/* The network, and a few addresses with bits below some random
		 * depth flipped: inside, at the edge, just outside. */
		int bits = rules[i].v6 ? 128 : 32;
		for (int k = 0; k < 4; k++) {
			unsigned char b[16];
			memcpy(b, rules[i].net, 16);
			if (k > 0) {
				int from = (int)(rng() % (uint64_t)bits);
				for (int j = from; j < bits; j++)
					if (k == 1 ? j == from : (rng() & 1))
						b[j / 8] ^= (unsigned char)(0x80 >> (j % 8));
			}
			check_one(a, rules, nrules, rules[i].v6, b);
		}
	}
	for (int k = 0; k < 4; k++) {
		unsigned char b[16];
		for (int j = 0; j < 16; j++)
			b[j] = (unsigned char)rng();
		check_one(a, rules, nrules, k & 1, b);
	}
	acl_free(a);
	return 0;
}
