/* dnsbl.h -- DNS blocklists (RFC 5782): the names to look up and what the
 * answers mean.  Pure functions: the lookups themselves go through the
 * resolver like any other query, so their answers are cached (in the dnsbl
 * partition) and a repeated name costs nothing.
 */
#ifndef MXR_DNSBL_H
#define MXR_DNSBL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNSBL_MAX_RANGES 16

/* The return codes a zone's operator documents as "listed", as inclusive
 * ranges of IPv4 addresses in host byte order.  No range = the RFC 5782
 * default: anything in 127.0.0.0/8 except 127.0.0.1 and 127.255.255.0/24. */
struct dnsbl_codes {
	uint32_t lo[DNSBL_MAX_RANGES], hi[DNSBL_MAX_RANGES];
	unsigned count;
};

/* Parse "127.0.0.2" or "127.0.0.2-127.0.0.11" and add it to codes.  Returns
 * 0, or -1 if the text is not an address or range (or codes is full). */
int dnsbl_codes_add(struct dnsbl_codes *codes, const char *text);

/* In the name builders below, zone is one complete wire name (root label
 * included) and out holds 255 bytes. */

/* The query name for an IP DNSBL (RFC 5782 §2.1 and §2.4): the address's
 * octets (IPv4, 4 bytes) or nibbles (IPv6, 16 bytes) reversed, then zone
 * (wire form).  Writes into out (255 bytes); returns the length or 0 if it
 * does not fit. */
size_t dnsbl_ip_query(const uint8_t *addr, size_t addr_len, const uint8_t *zone, size_t zone_len, uint8_t *out);

/* The query name for a domain list (RHSBL): domain (wire form) then zone.
 * Returns the length or 0 if it does not fit in 255 bytes. */
size_t dnsbl_domain_query(const uint8_t *domain, size_t domain_len, const uint8_t *zone, size_t zone_len,
                          uint8_t *out);

enum dnsbl_result {
	DNSBL_NOT_LISTED = 0, /* NXDOMAIN, or no A record */
	DNSBL_LISTED,         /* an A record among the accepted codes */
	DNSBL_ERROR,          /* 127.255.255.0/24 (…252 typing error, …254 open resolver, …255 over limit),
	                         127.0.0.1, or an A outside the accepted codes: not listed, but counted */
};

/* What the A records of a DNSBL answer (addrs: count IPv4 addresses in
 * host byte order) mean under codes.  Any listed code wins over errors;
 * 127.0.0.1 and 127.255.255.0/24 are errors even inside explicit ranges.
 * *error_code (error_code may be NULL) is the first error address with
 * DNSBL_ERROR, else 0. */
enum dnsbl_result dnsbl_interpret(const uint32_t *addrs, size_t count, const struct dnsbl_codes *codes,
                                  uint32_t *error_code);

/* The registrable domain of qname (canonical wire form; a.b.example.co.uk
 * -> example.co.uk) by the Public Suffix List (libpsl with Debian's
 * publicsuffix data, loaded on the first call; thread-safe), written in wire
 * form to out (255 bytes).  Returns the length, or 0 when the name is itself
 * a public suffix, has escaped bytes, or is invalid. */
size_t dnsbl_registrable_domain(const uint8_t *qname, size_t qname_len, uint8_t *out);

/* RFC 5782 §5 test points for a zone: the names that must be listed and
 * must not be, in wire form under zone (IP lists: 2.0.0.127 and 1.0.0.127;
 * domain lists: TEST and INVALID).  Return 0, or -1 if they do not fit. */
int dnsbl_probe_names(bool domain_list, const uint8_t *zone, size_t zone_len,
                      uint8_t *listed, size_t *listed_len, uint8_t *unlisted, size_t *unlisted_len);

#endif
