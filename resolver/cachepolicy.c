/* cachepolicy.c -- what the cache keeps, in which partition and for how long */
#include "cachepolicy.h"

#include <string.h>

int cachepolicy_zones_init(struct cachepolicy_zones *z, const struct config *cfg)
{
	z->count = 0;
	for (unsigned i = 0; i < cfg->dnsbl_zone_count && i < CONFIG_MAX_DNSBL_ZONES; i++) {
		size_t n = wire_name_from_text(cfg->dnsbl_zones[i].name, z->name[z->count]);
		if (n == 0)
			return -1;
		z->len[z->count++] = n;
	}
	return 0;
}

int cachepolicy_dnsbl_zone(const struct cachepolicy_zones *z, const uint8_t *qname, size_t qname_len)
{
	for (unsigned i = 0; i < z->count; i++)
		if (wire_name_under(qname, qname_len, z->name[i], z->len[i]))
			return (int)i;
	return -1;
}

enum cache_partition cachepolicy_partition(const struct cachepolicy_zones *z, const uint8_t *qname,
                                           size_t qname_len, uint16_t qtype, bool mx_target)
{
	if (z->count > 0 && cachepolicy_dnsbl_zone(z, qname, qname_len) >= 0)
		return CACHE_PART_DNSBL;
	switch (qtype) {
	case WIRE_TYPE_MX:
	case WIRE_TYPE_TXT:
	case WIRE_TYPE_PTR:
	case WIRE_TYPE_TLSA:
	case WIRE_TYPE_SRV:
		return CACHE_PART_MAIL;
	case WIRE_TYPE_A:
	case WIRE_TYPE_AAAA:
		return mx_target ? CACHE_PART_MAIL : CACHE_PART_GENERAL;
	default:
		return CACHE_PART_GENERAL;
	}
}

static uint32_t cachepolicy_clamp(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

struct cachepolicy_ttl cachepolicy_entry_ttl(const struct config *cfg, const struct cachepolicy_zones *z,
                                             const uint8_t *qname, size_t qname_len, uint16_t qtype,
                                             enum cache_partition part, const struct wire_answer_info *info,
                                             bool bogus)
{
	struct cachepolicy_ttl out = { 0, 0, 0, false };
	if (info->rcode != WIRE_RCODE_NOERROR && info->rcode != WIRE_RCODE_NXDOMAIN) {
		out.ttl = cfg->servfail_ttl;
		return out;
	}
	const struct config_partition *cp = &cfg->partitions[part];
	struct config_ttl_policy pol = cp->ttl;
	for (unsigned i = 0; i < cp->type_count; i++)
		if (cp->types[i].qtype == qtype)
			pol = cp->types[i].ttl;
	if (pol.max_ttl == 0)
		pol.max_ttl = cfg->max_ttl;
	if (pol.negative_max_ttl == 0)
		pol.negative_max_ttl = cfg->negative_max_ttl;
	if (part == CACHE_PART_DNSBL) {
		int zi = cachepolicy_dnsbl_zone(z, qname, qname_len);
		if (zi >= 0 && cfg->dnsbl_zones[zi].negative_min_ttl > 0)
			pol.negative_min_ttl = cfg->dnsbl_zones[zi].negative_min_ttl;
	}
	if (info->negative) {
		if (!info->has_soa)
			return out;
		out.min = pol.negative_min_ttl;
		out.max = pol.negative_max_ttl;
	} else {
		out.min = pol.min_ttl;
		out.max = pol.max_ttl;
	}
	/* A floor above the cap would stretch past what the config allows. */
	if (out.min > out.max)
		out.min = out.max;
	out.ttl = cachepolicy_clamp(info->ttl, out.min, out.max);
	if (bogus && out.ttl > CACHEPOLICY_BOGUS_TTL)
		out.ttl = CACHEPOLICY_BOGUS_TTL;
	out.clamp = out.min > 0 || out.max < UINT32_MAX;
	return out;
}

bool cachepolicy_stale_servable(const struct config *cfg, const struct cache_record *rec)
{
	if (!cfg->serve_stale || rec->dnssec == CACHE_DNSSEC_BOGUS || rec->dnssec == CACHE_DNSSEC_INDETERMINATE)
		return false;
	return rec->rcode == WIRE_RCODE_NOERROR || (rec->rcode == WIRE_RCODE_NXDOMAIN && cfg->serve_stale_nxdomain);
}

bool cachepolicy_prefetch_due(const struct config *cfg, const struct cache_record *rec, int64_t now)
{
	if (!cfg->prefetch || rec->ttl < CACHEPOLICY_PREFETCH_MIN_TTL || rec->dnssec == CACHE_DNSSEC_BOGUS ||
	    now >= rec->expires)
		return false;
	uint64_t left = (uint64_t)(rec->expires - now);
	return left * 100 < (uint64_t)rec->ttl * cfg->prefetch_percent;
}
