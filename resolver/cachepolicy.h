/* cachepolicy.h -- what the cache keeps, in which partition and for how
 * long: pure decisions from the configuration, shared by the workers (hint
 * for a lookup, prefetch, stale) and the resolver thread (storing).
 *
 * No I/O, no allocation, no globals; every function may be called from any
 * thread on a configuration that does not change under it.
 */
#ifndef MXR_CACHEPOLICY_H
#define MXR_CACHEPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "config.h"
#include "wire.h"

#define CACHEPOLICY_BOGUS_TTL 60    /* as unbound's val-bogus-ttl: retry validation soon */
#define CACHEPOLICY_PREFETCH_MIN_TTL 5 /* shorter TTLs are not worth refreshing ahead */

/* The DNSBL/RHSBL zones of the configuration in wire form. */
struct cachepolicy_zones {
	uint8_t name[CONFIG_MAX_DNSBL_ZONES][WIRE_MAX_NAME];
	size_t len[CONFIG_MAX_DNSBL_ZONES];
	unsigned count;
};

/* Fill z from cfg->dnsbl_zones.  Returns 0, or -1 if a name is not a
 * domain name (the config loader has already checked them). */
int cachepolicy_zones_init(struct cachepolicy_zones *z, const struct config *cfg);

/* The index of the zone qname (canonical wire form) equals or falls under,
 * on label boundaries, or -1. */
int cachepolicy_dnsbl_zone(const struct cachepolicy_zones *z, const uint8_t *qname, size_t qname_len);

/* The partition an answer belongs to: dnsbl under a DNSBL zone, mail for
 * MX, TXT, PTR, TLSA and SRV and for the A/AAAA of a name learned as an MX
 * exchange (mx_target), general for the rest. */
enum cache_partition cachepolicy_partition(const struct cachepolicy_zones *z, const uint8_t *qname,
                                           size_t qname_len, uint16_t qtype, bool mx_target);

/* How long an answer is kept and the bounds its record TTLs are clamped to. */
struct cachepolicy_ttl {
	uint32_t ttl;       /* the entry's life in seconds; 0 = do not store */
	uint32_t min, max;  /* clamp for the TTLs inside the stored forms */
	bool clamp;         /* whether the forms are to be clamped (min > 0 or a finite max) */
};

/* The TTL policy for an answer described by info (rcode, negative, SOA,
 * the TTL the answer carries) to (qname, qtype) stored in part: the
 * partition's clamps, overridden by a per-type entry, 0 maxima meaning the
 * global max-ttl/negative-max-ttl, a DNSBL zone's own negative floor;
 * negative answers without SOA are not kept (RFC 2308 §5), failures are kept
 * servfail-ttl, bogus answers at most CACHEPOLICY_BOGUS_TTL. */
struct cachepolicy_ttl cachepolicy_entry_ttl(const struct config *cfg, const struct cachepolicy_zones *z,
                                             const uint8_t *qname, size_t qname_len, uint16_t qtype,
                                             enum cache_partition part, const struct wire_answer_info *info,
                                             bool bogus);

/* RFC 8767: whether an expired entry may be served stale: serve-stale on,
 * the data validated or insecure (never bogus or indeterminate), NOERROR, or
 * NXDOMAIN when serve-stale-nxdomain is on. */
bool cachepolicy_stale_servable(const struct config *cfg, const struct cache_record *rec);

/* Whether a fresh hit at now comes in the last prefetch-percent of the
 * entry's TTL, so that a refresh is due (prefetch on, TTL long enough, not
 * bogus). */
bool cachepolicy_prefetch_due(const struct config *cfg, const struct cache_record *rec, int64_t now);

#endif
