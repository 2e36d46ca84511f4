/* dnsbl.c -- DNS blocklists (RFC 5782): the names to look up and what the answers mean.
 *
 * Everything here is a pure function of its arguments except the Public
 * Suffix List used by dnsbl_registrable_domain: it is loaded once, on first
 * use, and then only read, so any thread may call any function at any time.
 */
#include "dnsbl.h"

#include "wire.h"

#include <arpa/inet.h>
#include <libpsl.h>
#include <pthread.h>
#include <string.h>

/* Debian's copy of the list (package "publicsuffix"), newer than the one
 * compiled into libpsl. */
#define DNSBL_PSL_FILE "/usr/share/publicsuffix/public_suffix_list.dat"

/* ------------------------------------------------------------------ */
/* Return codes */

/* RFC 5782 §2.1 default: 127.0.0.0/8 means listed ... */
#define DNSBL_DEFAULT_LO 0x7F000000u
#define DNSBL_DEFAULT_HI 0x7FFFFFFFu
/* ... except 127.0.0.1 (the "not listed" test point, never a listing) and
 * 127.255.255.0/24, which operators such as Spamhaus use to say the query
 * itself was refused (typing error, open resolver, over the limit). */
#define DNSBL_LOCALHOST 0x7F000001u
#define DNSBL_REFUSAL_NET 0x7FFFFF00u
#define DNSBL_REFUSAL_MASK 0xFFFFFF00u

/* Parse one dotted-quad address, with optional blanks around it, into
 * *out (host byte order).  Returns 0 or -1. */
static int parse_addr(const char *p, size_t len, uint32_t *out)
{
	char buf[INET_ADDRSTRLEN];
	struct in_addr a;

	while (len > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, p, len);
	buf[len] = '\0';
	/* inet_pton, not inet_aton: no octal, no short forms like "127.2". */
	if (inet_pton(AF_INET, buf, &a) != 1)
		return -1;
	*out = ntohl(a.s_addr);
	return 0;
}

int dnsbl_codes_add(struct dnsbl_codes *codes, const char *text)
{
	const char *dash;
	uint32_t lo, hi;

	if (codes == NULL || text == NULL || codes->count >= DNSBL_MAX_RANGES)
		return -1;
	dash = strchr(text, '-');
	if (dash == NULL) {
		if (parse_addr(text, strlen(text), &lo) < 0)
			return -1;
		hi = lo;
	} else {
		if (parse_addr(text, (size_t)(dash - text), &lo) < 0 ||
		    parse_addr(dash + 1, strlen(dash + 1), &hi) < 0)
			return -1;
		if (hi < lo)
			return -1; /* a reversed range is a typing error, not an empty range */
	}
	codes->lo[codes->count] = lo;
	codes->hi[codes->count] = hi;
	codes->count++;
	return 0;
}

/* Is addr a "listed" code under codes?  127.0.0.1 and 127.255.255.0/24 never
 * are, whatever the ranges say: they are the RFC's negative test point and
 * the operators' refusal codes. */
static bool code_is_listed(uint32_t addr, const struct dnsbl_codes *codes)
{
	if (addr == DNSBL_LOCALHOST || (addr & DNSBL_REFUSAL_MASK) == DNSBL_REFUSAL_NET)
		return false;
	if (codes == NULL || codes->count == 0)
		return addr >= DNSBL_DEFAULT_LO && addr <= DNSBL_DEFAULT_HI;
	for (unsigned i = 0; i < codes->count && i < DNSBL_MAX_RANGES; i++)
		if (addr >= codes->lo[i] && addr <= codes->hi[i])
			return true;
	return false;
}

enum dnsbl_result dnsbl_interpret(const uint32_t *addrs, size_t count, const struct dnsbl_codes *codes,
                                  uint32_t *error_code)
{
	bool have_error = false;
	uint32_t first_error = 0;

	if (error_code != NULL)
		*error_code = 0;
	if (addrs == NULL)
		count = 0;
	for (size_t i = 0; i < count; i++) {
		if (code_is_listed(addrs[i], codes))
			return DNSBL_LISTED; /* one listing is enough; error codes beside it do not matter */
		if (!have_error) {
			have_error = true;
			first_error = addrs[i];
		}
	}
	if (!have_error)
		return DNSBL_NOT_LISTED;
	if (error_code != NULL)
		*error_code = first_error;
	return DNSBL_ERROR;
}

/* ------------------------------------------------------------------ */
/* Query names */

/* The length of wire name, root label included, if it is a well-formed
 * uncompressed name that ends within len bytes; else 0. */
static size_t name_wire_len(const uint8_t *name, size_t len)
{
	size_t p = 0;

	if (name == NULL || len == 0)
		return 0;
	while (p < len && p < WIRE_MAX_NAME) {
		size_t c = name[p];
		if (c == 0)
			return p + 1;
		if (c > 63 || p + 1 + c >= len)
			return 0;
		p += 1 + c;
	}
	return 0;
}

/* Append zone (wire form, ending in the root label) after n bytes of out.
 * Returns the total length, or 0 if zone is not one well-formed name or the
 * result would exceed WIRE_MAX_NAME. */
static size_t append_zone(uint8_t *out, size_t n, const uint8_t *zone, size_t zone_len)
{
	if (zone_len == 0 || name_wire_len(zone, zone_len) != zone_len || n + zone_len > WIRE_MAX_NAME)
		return 0; /* zone must be exactly one well-formed name */
	memcpy(out + n, zone, zone_len);
	return n + zone_len;
}

size_t dnsbl_ip_query(const uint8_t *addr, size_t addr_len, const uint8_t *zone, size_t zone_len, uint8_t *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	if (addr == NULL || out == NULL)
		return 0;
	if (addr_len == 4) {
		/* 1.2.3.4 -> 4.3.2.1.<zone> (§2.1): each octet a decimal label. */
		for (size_t i = 4; i-- > 0;) {
			unsigned v = addr[i];
			uint8_t lab[3];
			size_t l = 0;
			if (v >= 100)
				lab[l++] = (uint8_t)('0' + v / 100);
			if (v >= 10)
				lab[l++] = (uint8_t)('0' + v / 10 % 10);
			lab[l++] = (uint8_t)('0' + v % 10);
			out[n++] = (uint8_t)l;
			memcpy(out + n, lab, l);
			n += l;
		}
	} else if (addr_len == 16) {
		/* §2.4: 32 nibbles, least significant first, lower-case hex. */
		for (size_t i = 16; i-- > 0;) {
			out[n++] = 1;
			out[n++] = (uint8_t)hex[addr[i] & 0x0F];
			out[n++] = 1;
			out[n++] = (uint8_t)hex[addr[i] >> 4];
		}
	} else {
		return 0;
	}
	return append_zone(out, n, zone, zone_len);
}

size_t dnsbl_domain_query(const uint8_t *domain, size_t domain_len, const uint8_t *zone, size_t zone_len,
                          uint8_t *out)
{
	size_t n;

	if (out == NULL)
		return 0;
	n = name_wire_len(domain, domain_len);
	if (n <= 1) /* invalid, or the root: no domain to look up */
		return 0;
	n--; /* the domain's labels, without its root label */
	if (n + zone_len > WIRE_MAX_NAME)
		return 0;
	memcpy(out, domain, n);
	return append_zone(out, n, zone, zone_len);
}

int dnsbl_probe_names(bool domain_list, const uint8_t *zone, size_t zone_len,
                      uint8_t *listed, size_t *listed_len, uint8_t *unlisted, size_t *unlisted_len)
{
	/* RFC 5782 §5: IP lists must list 127.0.0.2 and must not list 127.0.0.1;
	 * domain lists must list TEST and must not list INVALID. */
	static const uint8_t ip_listed[] = {1, '2', 1, '0', 1, '0', 3, '1', '2', '7'};
	static const uint8_t ip_unlisted[] = {1, '1', 1, '0', 1, '0', 3, '1', '2', '7'};
	static const uint8_t dom_listed[] = {4, 't', 'e', 's', 't'};
	static const uint8_t dom_unlisted[] = {7, 'i', 'n', 'v', 'a', 'l', 'i', 'd'};
	const uint8_t *l = domain_list ? dom_listed : ip_listed;
	const uint8_t *u = domain_list ? dom_unlisted : ip_unlisted;
	size_t ll = domain_list ? sizeof(dom_listed) : sizeof(ip_listed);
	size_t ul = domain_list ? sizeof(dom_unlisted) : sizeof(ip_unlisted);
	size_t a, b;

	if (listed == NULL || listed_len == NULL || unlisted == NULL || unlisted_len == NULL)
		return -1;
	memcpy(listed, l, ll);
	memcpy(unlisted, u, ul);
	a = append_zone(listed, ll, zone, zone_len);
	b = append_zone(unlisted, ul, zone, zone_len);
	if (a == 0 || b == 0)
		return -1;
	*listed_len = a;
	*unlisted_len = b;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Registrable domains */

/* The Public Suffix List: this module's one piece of global state.  It is
 * loaded once (pthread_once), then only read, which libpsl allows from any
 * number of threads; it lives as long as the process and is never freed. */
static const psl_ctx_t *dnsbl_psl;
static pthread_once_t dnsbl_psl_once = PTHREAD_ONCE_INIT;

static void dnsbl_psl_load(void)
{
	psl_ctx_t *ctx = psl_load_file(DNSBL_PSL_FILE);

	/* The file missing (package not installed): the list built into libpsl,
	 * older but far better than none.  It may be NULL too; then every name
	 * is "invalid" and RHSBL checks are skipped rather than guessed. */
	dnsbl_psl = ctx != NULL ? ctx : psl_builtin();
}

size_t dnsbl_registrable_domain(const uint8_t *qname, size_t qname_len, uint8_t *out)
{
	char text[WIRE_MAX_NAME * 4 + 1]; /* every byte as \DDD at worst */
	size_t len;
	const char *reg;

	if (qname == NULL || out == NULL)
		return 0;
	len = wire_name_to_text(qname, qname_len, text, sizeof(text));
	if (len < 2) /* invalid, or the root "." */
		return 0;
	/* An escaped byte (a dot inside a label, a space, binary) cannot be in a
	 * host name the list knows about, and libpsl would misread the escape. */
	if (strchr(text, '\\') != NULL)
		return 0;
	if (text[len - 1] == '.')
		text[--len] = '\0';
	for (size_t i = 0; i < len; i++)
		if (text[i] >= 'A' && text[i] <= 'Z')
			text[i] = (char)(text[i] - 'A' + 'a');

	pthread_once(&dnsbl_psl_once, dnsbl_psl_load);
	if (dnsbl_psl == NULL)
		return 0;
	/* NULL when the name is itself a public suffix ("com", "co.uk"). */
	reg = psl_registrable_domain(dnsbl_psl, text);
	if (reg == NULL || *reg == '\0')
		return 0;
	return wire_name_from_text(reg, out);
}
