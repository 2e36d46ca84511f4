/* acl.c -- client access lists: longest-prefix match of networks to actions.
 *
 * Rules are kept per address family in one array sorted by prefix length,
 * longest first, then by network.  Rules of equal length form a group with
 * one mask, so a lookup masks the client address once per group and binary
 * searches that group; the first group with a hit holds the longest match.
 * A list of a few dozen rules uses a handful of lengths, so a check costs a
 * few masks and compares, touches no pointers but the arrays and never
 * allocates.  Building is O(n) per rule (an insertion), which is fine for
 * lists read once from the configuration.
 *
 * IPv6 addresses are two 64-bit words in host order so masking and ordering
 * are plain integer operations.  Rules written as IPv4-mapped IPv6
 * (::ffff:192.0.2.0/120) are stored as the IPv4 rules they mean, because
 * mapped clients are matched as IPv4: kept as IPv6 they could never match.
 */
#include "acl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct acl_v4_rule {
	uint32_t net;
	unsigned len;
	unsigned value;
};

struct acl_v6_rule {
	uint64_t hi, lo;
	unsigned len;
	unsigned value;
};

/* A run of rules with one prefix length: [start, start + count). */
struct acl_v4_group {
	uint32_t mask;
	uint32_t start, count;
};

struct acl_v6_group {
	uint64_t mask_hi, mask_lo;
	uint32_t start, count;
};

struct acl_family_v4 {
	struct acl_v4_rule *rules;
	size_t n, cap;
	struct acl_v4_group groups[33];
	size_t ngroups;
};

struct acl_family_v6 {
	struct acl_v6_rule *rules;
	size_t n, cap;
	struct acl_v6_group groups[129];
	size_t ngroups;
};

struct acl {
	unsigned default_value;
	struct acl_family_v4 v4;
	struct acl_family_v6 v6;
};

static uint32_t acl_mask32(unsigned len)
{
	/* A shift by 32 is undefined, hence the special case. */
	return len == 0 ? 0 : UINT32_MAX << (32 - len);
}

static void acl_mask128(unsigned len, uint64_t *hi, uint64_t *lo)
{
	if (len == 0) {
		*hi = 0;
		*lo = 0;
	} else if (len <= 64) {
		*hi = UINT64_MAX << (64 - len);
		*lo = 0;
	} else {
		*hi = UINT64_MAX;
		*lo = len == 128 ? UINT64_MAX : ~(UINT64_MAX >> (len - 64));
	}
}

static uint64_t acl_load_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t acl_load_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct acl *acl_new(enum acl_action default_action)
{
	struct acl *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->default_value = (unsigned)default_action;
	return a;
}

void acl_free(struct acl *a)
{
	if (a == NULL)
		return;
	free(a->v4.rules);
	free(a->v6.rules);
	free(a);
}

/* ------------------------------------------------------------------ */
/* Building */

__attribute__((format(printf, 3, 4)))
static void acl_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Order: longer prefixes first, then ascending network, so that each
 * length is one contiguous sorted run. */
static int acl_v4_cmp(const struct acl_v4_rule *x, uint32_t net, unsigned len)
{
	if (x->len != len)
		return x->len > len ? -1 : 1;
	if (x->net != net)
		return x->net < net ? -1 : 1;
	return 0;
}

static int acl_v6_cmp(const struct acl_v6_rule *x, uint64_t hi, uint64_t lo, unsigned len)
{
	if (x->len != len)
		return x->len > len ? -1 : 1;
	if (x->hi != hi)
		return x->hi < hi ? -1 : 1;
	if (x->lo != lo)
		return x->lo < lo ? -1 : 1;
	return 0;
}

static void acl_v4_regroup(struct acl_family_v4 *f)
{
	f->ngroups = 0;
	for (size_t i = 0; i < f->n; i++) {
		if (i == 0 || f->rules[i].len != f->rules[i - 1].len) {
			struct acl_v4_group *g = &f->groups[f->ngroups++];
			g->mask = acl_mask32(f->rules[i].len);
			g->start = (uint32_t)i;
			g->count = 0;
		}
		f->groups[f->ngroups - 1].count++;
	}
}

static void acl_v6_regroup(struct acl_family_v6 *f)
{
	f->ngroups = 0;
	for (size_t i = 0; i < f->n; i++) {
		if (i == 0 || f->rules[i].len != f->rules[i - 1].len) {
			struct acl_v6_group *g = &f->groups[f->ngroups++];
			acl_mask128(f->rules[i].len, &g->mask_hi, &g->mask_lo);
			g->start = (uint32_t)i;
			g->count = 0;
		}
		f->groups[f->ngroups - 1].count++;
	}
}

/* Grow an array of rules by one slot; 0 or -1 on memory exhaustion.  Group
 * offsets are 32-bit, which bounds a list at 4G rules per family. */
static int acl_grow(void **rules, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	if (n >= UINT32_MAX)
		return -1;
	size_t ncap = *cap ? *cap * 2 : 16;
	void *p = realloc(*rules, ncap * size);
	if (p == NULL)
		return -1;
	*rules = p;
	*cap = ncap;
	return 0;
}

static int acl_add_v4(struct acl *a, const char *cidr, uint32_t net, unsigned len, unsigned value,
                      char *err, size_t errlen)
{
	struct acl_family_v4 *f = &a->v4;
	size_t lo = 0, hi = f->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (acl_v4_cmp(&f->rules[mid], net, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < f->n && acl_v4_cmp(&f->rules[lo], net, len) == 0) {
		acl_seterr(err, errlen, "%s: duplicate prefix", cidr);
		return -1;
	}
	if (acl_grow((void **)&f->rules, &f->cap, f->n, sizeof(f->rules[0])) < 0) {
		acl_seterr(err, errlen, "%s: out of memory", cidr);
		return -1;
	}
	memmove(&f->rules[lo + 1], &f->rules[lo], (f->n - lo) * sizeof(f->rules[0]));
	f->rules[lo] = (struct acl_v4_rule){ .net = net, .len = len, .value = value };
	f->n++;
	acl_v4_regroup(f);
	return 0;
}

static int acl_add_v6(struct acl *a, const char *cidr, uint64_t nhi, uint64_t nlo, unsigned len,
                      unsigned value, char *err, size_t errlen)
{
	struct acl_family_v6 *f = &a->v6;
	size_t lo = 0, hi = f->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (acl_v6_cmp(&f->rules[mid], nhi, nlo, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < f->n && acl_v6_cmp(&f->rules[lo], nhi, nlo, len) == 0) {
		acl_seterr(err, errlen, "%s: duplicate prefix", cidr);
		return -1;
	}
	if (acl_grow((void **)&f->rules, &f->cap, f->n, sizeof(f->rules[0])) < 0) {
		acl_seterr(err, errlen, "%s: out of memory", cidr);
		return -1;
	}
	memmove(&f->rules[lo + 1], &f->rules[lo], (f->n - lo) * sizeof(f->rules[0]));
	f->rules[lo] = (struct acl_v6_rule){ .hi = nhi, .lo = nlo, .len = len, .value = value };
	f->n++;
	acl_v6_regroup(f);
	return 0;
}

/* Host bits set usually means a typo or a misunderstanding of the prefix
 * (10.1.2.3/8 meant as "that host's network"): refuse it, and show the
 * network it would have meant so the fix is obvious. */
static void acl_host_bits_err(char *err, size_t errlen, const char *cidr, int family, int len)
{
	char addr[INET6_ADDRSTRLEN + 1];
	char meant[INET6_ADDRSTRLEN];
	unsigned char b[16];
	const char *slash = strchr(cidr, '/');
	size_t alen = (size_t)(slash - cidr);

	/* Only called after the address parsed, so it fits and has a slash. */
	memcpy(addr, cidr, alen);
	addr[alen] = '\0';
	if (inet_pton(family, addr, b) != 1)
		return;
	for (int i = 0; i < (family == AF_INET ? 4 : 16); i++) {
		int keep = len - 8 * i;
		b[i] &= keep >= 8 ? 0xFF : keep <= 0 ? 0 : (unsigned char)(0xFF << (8 - keep));
	}
	if (inet_ntop(family, b, meant, sizeof(meant)) == NULL)
		return;
	acl_seterr(err, errlen, "%s: host bits set beyond the /%d prefix (the network is %s/%d)", cidr, len,
	           meant, len);
}

int acl_add(struct acl *a, const char *cidr, enum acl_action action, char *err, size_t errlen)
{
	if (action != ACL_ALLOW && action != ACL_REFUSE && action != ACL_DROP) {
		acl_seterr(err, errlen, "%s: unknown action %u", cidr ? cidr : "?", (unsigned)action);
		return -1;
	}
	return acl_add_value(a, cidr, (unsigned)action, err, errlen);
}

int acl_add_value(struct acl *a, const char *cidr, unsigned value, char *err, size_t errlen)
{
	/* Long enough for any IPv6 text form, including an embedded IPv4 tail. */
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char bytes[16];
	const char *slash;
	size_t alen;
	int len = -1;
	int v6;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (a == NULL || cidr == NULL) {
		acl_seterr(err, errlen, "no list or no network given");
		return -1;
	}
	slash = strchr(cidr, '/');
	alen = slash ? (size_t)(slash - cidr) : strlen(cidr);
	if (alen == 0 || alen >= sizeof(addr)) {
		acl_seterr(err, errlen, "%s: bad address", cidr);
		return -1;
	}
	memcpy(addr, cidr, alen);
	addr[alen] = '\0';
	v6 = strchr(addr, ':') != NULL;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, bytes) != 1) {
		acl_seterr(err, errlen, "%s: bad address", cidr);
		return -1;
	}
	if (slash != NULL) {
		/* Decimal digits only: no sign, no spaces, no leading zero, so
		 * "/08", "/+8" or "/8 # lan" are not silently accepted. */
		const char *p = slash + 1;
		size_t digits = strspn(p, "0123456789");
		if (digits == 0 || p[digits] != '\0' || (p[0] == '0' && digits > 1)) {
			acl_seterr(err, errlen, "%s: junk after the address (want /0..%d)", cidr, v6 ? 128 : 32);
			return -1;
		}
		len = digits > 3 ? 1000 : atoi(p);
		if (len > (v6 ? 128 : 32)) {
			acl_seterr(err, errlen, "%s: prefix length out of range (0..%d)", cidr, v6 ? 128 : 32);
			return -1;
		}
	} else {
		len = v6 ? 128 : 32;
	}

	if (!v6) {
		uint32_t net = acl_load_be32(bytes);
		if ((net & ~acl_mask32((unsigned)len)) != 0) {
			acl_host_bits_err(err, errlen, cidr, AF_INET, len);
			return -1;
		}
		return acl_add_v4(a, cidr, net, (unsigned)len, value, err, errlen);
	}

	uint64_t hi = acl_load_be64(bytes), lo = acl_load_be64(bytes + 8);
	uint64_t mhi, mlo;
	acl_mask128((unsigned)len, &mhi, &mlo);
	if ((hi & ~mhi) != 0 || (lo & ~mlo) != 0) {
		acl_host_bits_err(err, errlen, cidr, AF_INET6, len);
		return -1;
	}
	/* ::ffff:a.b.c.d/96+n is the IPv4 rule a.b.c.d/n (see the top). */
	if (len >= 96 && hi == 0 && (lo >> 32) == 0xFFFF)
		return acl_add_v4(a, cidr, (uint32_t)lo, (unsigned)len - 96, value, err, errlen);
	return acl_add_v6(a, cidr, hi, lo, (unsigned)len, value, err, errlen);
}

/* ------------------------------------------------------------------ */
/* Lookup */

static unsigned acl_check_v4(const struct acl *a, uint32_t addr)
{
	const struct acl_family_v4 *f = &a->v4;

	for (size_t g = 0; g < f->ngroups; g++) {
		uint32_t key = addr & f->groups[g].mask;
		const struct acl_v4_rule *r = f->rules + f->groups[g].start;
		size_t n = f->groups[g].count;
		/* Lower bound in the run; the run is short, the loop tight. */
		while (n > 1) {
			size_t half = n / 2;
			if (r[half].net <= key) {
				r += half;
				n -= half;
			} else {
				n = half;
			}
		}
		if (r->net == key)
			return r->value;
	}
	return a->default_value;
}

static unsigned acl_check_v6(const struct acl *a, uint64_t hi, uint64_t lo)
{
	const struct acl_family_v6 *f = &a->v6;

	for (size_t g = 0; g < f->ngroups; g++) {
		uint64_t khi = hi & f->groups[g].mask_hi, klo = lo & f->groups[g].mask_lo;
		const struct acl_v6_rule *r = f->rules + f->groups[g].start;
		size_t n = f->groups[g].count;
		while (n > 1) {
			size_t half = n / 2;
			if (r[half].hi < khi || (r[half].hi == khi && r[half].lo <= klo)) {
				r += half;
				n -= half;
			} else {
				n = half;
			}
		}
		if (r->hi == khi && r->lo == klo)
			return r->value;
	}
	return a->default_value;
}

enum acl_action acl_check(const struct acl *a, const struct sockaddr *client)
{
	return (enum acl_action)acl_lookup(a, client);
}

unsigned acl_lookup(const struct acl *a, const struct sockaddr *client)
{
	unsigned char b[16];

	/* The caller's storage may be a sockaddr_in, sockaddr_in6 or
	 * sockaddr_storage: read the address bytes out with memcpy rather than
	 * through a pointer of another struct type. */
	if (client->sa_family == AF_INET) {
		memcpy(b, (const char *)client + offsetof(struct sockaddr_in, sin_addr), 4);
		return acl_check_v4(a, acl_load_be32(b));
	}
	if (client->sa_family == AF_INET6) {
		memcpy(b, (const char *)client + offsetof(struct sockaddr_in6, sin6_addr), 16);
		uint64_t hi = acl_load_be64(b), lo = acl_load_be64(b + 8);
		if (hi == 0 && (lo >> 32) == 0xFFFF)
			return acl_check_v4(a, (uint32_t)lo);
		return acl_check_v6(a, hi, lo);
	}
	/* No rule can name another family (a UNIX socket control client, say):
	 * the list's default decides. */
	return a->default_value;
}
