/* test_cachepolicy.c -- unit tests of resolver/cachepolicy: the partition an
 * answer goes to, DNSBL zone matching on label boundaries, the TTL policy
 * (clamps, per-type entries, negative caching, failures, bogus answers),
 * serve-stale eligibility and the prefetch trigger.  Every test builds its
 * struct config by hand, zeroed, with only what it needs set. */
#include "cachepolicy.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Helpers */

/* A zeroed config with the global bounds every test shares. */
static void cfg_base(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_ttl = 86400;
	cfg->negative_max_ttl = 3600;
	cfg->servfail_ttl = 5;
}

/* Append a DNSBL zone to cfg (negative_min_ttl 0 = the partition's floor). */
static void cfg_add_zone(struct config *cfg, const char *name, uint32_t negative_min_ttl)
{
	CU_ASSERT_FATAL(cfg->dnsbl_zone_count < CONFIG_MAX_DNSBL_ZONES);
	struct config_dnsbl_zone *dz = &cfg->dnsbl_zones[cfg->dnsbl_zone_count++];
	snprintf(dz->name, sizeof(dz->name), "%s", name);
	dz->negative_min_ttl = negative_min_ttl;
}

/* Append a per-type policy to partition part. */
static void cfg_add_type(struct config *cfg, enum cache_partition part, uint16_t qtype,
                         struct config_ttl_policy ttl)
{
	struct config_partition *cp = &cfg->partitions[part];
	CU_ASSERT_FATAL(cp->type_count < CONFIG_MAX_TYPE_POLICIES);
	cp->types[cp->type_count].qtype = qtype;
	cp->types[cp->type_count].ttl = ttl;
	cp->type_count++;
}

static void zones_init_ok(struct cachepolicy_zones *z, const struct config *cfg)
{
	memset(z, 0, sizeof(*z));
	CU_ASSERT_EQUAL_FATAL(cachepolicy_zones_init(z, cfg), 0);
}

/* A qname in canonical wire form, from text. */
struct name {
	uint8_t b[WIRE_MAX_NAME];
	size_t len;
};

static struct name N(const char *text)
{
	struct name n;
	memset(&n, 0, sizeof(n));
	n.len = wire_name_from_text(text, n.b);
	CU_ASSERT_FATAL(n.len > 0);
	return n;
}

static enum cache_partition partition_of(const struct cachepolicy_zones *z, const char *qname, uint16_t qtype,
                                         bool mx_target)
{
	struct name n = N(qname);
	return cachepolicy_partition(z, n.b, n.len, qtype, mx_target);
}

static int zone_of(const struct cachepolicy_zones *z, const char *qname)
{
	struct name n = N(qname);
	return cachepolicy_dnsbl_zone(z, n.b, n.len);
}

static struct wire_answer_info positive(uint32_t ttl)
{
	struct wire_answer_info i = { .rcode = WIRE_RCODE_NOERROR, .negative = false, .has_soa = false, .ttl = ttl,
		                          .answer_count = 1 };
	return i;
}

static struct wire_answer_info nxdomain(uint32_t soa_ttl)
{
	struct wire_answer_info i = { .rcode = WIRE_RCODE_NXDOMAIN, .negative = true, .has_soa = true,
		                          .ttl = soa_ttl, .answer_count = 0 };
	return i;
}

static struct wire_answer_info nodata(uint32_t soa_ttl)
{
	struct wire_answer_info i = { .rcode = WIRE_RCODE_NOERROR, .negative = true, .has_soa = true,
		                          .ttl = soa_ttl, .answer_count = 0 };
	return i;
}

static struct wire_answer_info failure(uint8_t rcode)
{
	struct wire_answer_info i = { .rcode = rcode, .negative = false, .has_soa = false, .ttl = 0,
		                          .answer_count = 0 };
	return i;
}

/* entry_ttl for (qname, qtype) in the partition cachepolicy_partition chooses. */
static struct cachepolicy_ttl ttl_of(const struct config *cfg, const struct cachepolicy_zones *z,
                                     const char *qname, uint16_t qtype, const struct wire_answer_info *info,
                                     bool bogus)
{
	struct name n = N(qname);
	enum cache_partition part = cachepolicy_partition(z, n.b, n.len, qtype, false);
	return cachepolicy_entry_ttl(cfg, z, n.b, n.len, qtype, part, info, bogus);
}

/* A record stored at 1000 with ttl, for the stale and prefetch rules. */
static struct cache_record record(uint8_t rcode, enum cache_dnssec dnssec, uint32_t ttl)
{
	struct cache_record r;
	memset(&r, 0, sizeof(r));
	r.rcode = rcode;
	r.dnssec = (uint8_t)dnssec;
	r.stored_at = 1000;
	r.ttl = ttl;
	r.expires = r.stored_at + ttl;
	r.stale_until = r.expires + 86400;
	r.last_hit = r.stored_at;
	return r;
}

/* ------------------------------------------------------------------ */
/* Partitions */

static void test_cachepolicy_partition_mail_types_go_to_mail(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	zones_init_ok(&z, &cfg);
	static const uint16_t mail[] = { WIRE_TYPE_MX, WIRE_TYPE_TXT, WIRE_TYPE_PTR, WIRE_TYPE_TLSA, WIRE_TYPE_SRV };
	for (size_t i = 0; i < sizeof(mail) / sizeof(mail[0]); i++) {
		CU_ASSERT_EQUAL(partition_of(&z, "example.com", mail[i], false), CACHE_PART_MAIL);
		CU_ASSERT_EQUAL(partition_of(&z, "example.com", mail[i], true), CACHE_PART_MAIL);
	}
}

static void test_cachepolicy_partition_address_is_general_unless_mx_target(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	zones_init_ok(&z, &cfg);
	CU_ASSERT_EQUAL(partition_of(&z, "www.example.com", WIRE_TYPE_A, false), CACHE_PART_GENERAL);
	CU_ASSERT_EQUAL(partition_of(&z, "www.example.com", WIRE_TYPE_AAAA, false), CACHE_PART_GENERAL);
	CU_ASSERT_EQUAL(partition_of(&z, "mx1.example.com", WIRE_TYPE_A, true), CACHE_PART_MAIL);
	CU_ASSERT_EQUAL(partition_of(&z, "mx1.example.com", WIRE_TYPE_AAAA, true), CACHE_PART_MAIL);
}

static void test_cachepolicy_partition_other_types_are_general_even_for_mx_target(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	zones_init_ok(&z, &cfg);
	CU_ASSERT_EQUAL(partition_of(&z, "example.com", WIRE_TYPE_NS, false), CACHE_PART_GENERAL);
	CU_ASSERT_EQUAL(partition_of(&z, "example.com", WIRE_TYPE_SOA, false), CACHE_PART_GENERAL);
	CU_ASSERT_EQUAL(partition_of(&z, "www.example.com", WIRE_TYPE_CNAME, true), CACHE_PART_GENERAL);
	CU_ASSERT_EQUAL(partition_of(&z, "example.com", WIRE_TYPE_DNSKEY, false), CACHE_PART_GENERAL);
}

static void test_cachepolicy_partition_under_dnsbl_zone_is_dnsbl_whatever_the_type(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg_add_zone(&cfg, "zen.dnsbl.example.net", 0);
	zones_init_ok(&z, &cfg);
	const char *q = "2.0.0.127.zen.dnsbl.example.net";
	CU_ASSERT_EQUAL(partition_of(&z, q, WIRE_TYPE_A, false), CACHE_PART_DNSBL);
	CU_ASSERT_EQUAL(partition_of(&z, q, WIRE_TYPE_A, true), CACHE_PART_DNSBL);
	CU_ASSERT_EQUAL(partition_of(&z, q, WIRE_TYPE_TXT, false), CACHE_PART_DNSBL);
	CU_ASSERT_EQUAL(partition_of(&z, q, WIRE_TYPE_MX, false), CACHE_PART_DNSBL);
	CU_ASSERT_EQUAL(partition_of(&z, q, WIRE_TYPE_AAAA, false), CACHE_PART_DNSBL);
}

static void test_cachepolicy_partition_dnsbl_zone_apex_is_dnsbl(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg_add_zone(&cfg, "zen.dnsbl.example.net", 0);
	zones_init_ok(&z, &cfg);
	CU_ASSERT_EQUAL(partition_of(&z, "zen.dnsbl.example.net", WIRE_TYPE_SOA, false), CACHE_PART_DNSBL);
	CU_ASSERT_EQUAL(partition_of(&z, "zen.dnsbl.example.net", WIRE_TYPE_A, false), CACHE_PART_DNSBL);
	/* Canonical names are lower-case, and so are the zones after init. */
	CU_ASSERT_EQUAL(partition_of(&z, "ZEN.Dnsbl.Example.NET", WIRE_TYPE_TXT, false), CACHE_PART_DNSBL);
}

static void test_cachepolicy_partition_dnsbl_respects_label_boundary(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg_add_zone(&cfg, "zen.dnsbl.example.net", 0);
	zones_init_ok(&z, &cfg);
	CU_ASSERT_EQUAL(partition_of(&z, "badzen.dnsbl.example.net", WIRE_TYPE_A, false), CACHE_PART_GENERAL);
	CU_ASSERT_EQUAL(partition_of(&z, "badzen.dnsbl.example.net", WIRE_TYPE_TXT, false), CACHE_PART_MAIL);
	CU_ASSERT_EQUAL(partition_of(&z, "2.0.0.127.other.dnsbl.example.net", WIRE_TYPE_A, false),
	                CACHE_PART_GENERAL);
	CU_ASSERT_EQUAL(partition_of(&z, "zen.dnsbl.example.org", WIRE_TYPE_A, false), CACHE_PART_GENERAL);
}

static void test_cachepolicy_partition_names_shorter_than_zone_are_not_dnsbl(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg_add_zone(&cfg, "zen.dnsbl.example.net", 0);
	zones_init_ok(&z, &cfg);
	CU_ASSERT_EQUAL(partition_of(&z, "dnsbl.example.net", WIRE_TYPE_A, false), CACHE_PART_GENERAL);
	CU_ASSERT_EQUAL(partition_of(&z, "net", WIRE_TYPE_A, false), CACHE_PART_GENERAL);
	CU_ASSERT_EQUAL(partition_of(&z, ".", WIRE_TYPE_NS, false), CACHE_PART_GENERAL);
}

static void test_cachepolicy_partition_without_zones_never_dnsbl(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	zones_init_ok(&z, &cfg);
	CU_ASSERT_EQUAL(z.count, 0);
	CU_ASSERT_EQUAL(partition_of(&z, "2.0.0.127.zen.dnsbl.example.net", WIRE_TYPE_A, false),
	                CACHE_PART_GENERAL);
}

/* ------------------------------------------------------------------ */
/* DNSBL zone index */

static void test_cachepolicy_dnsbl_zone_returns_index_of_matching_zone(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg_add_zone(&cfg, "zen.dnsbl.example.net", 0);
	cfg_add_zone(&cfg, "dbl.example.org", 0);
	cfg_add_zone(&cfg, "Bl.Example.COM.", 0);
	zones_init_ok(&z, &cfg);
	CU_ASSERT_EQUAL(z.count, 3);
	CU_ASSERT_EQUAL(zone_of(&z, "2.0.0.127.zen.dnsbl.example.net"), 0);
	CU_ASSERT_EQUAL(zone_of(&z, "zen.dnsbl.example.net"), 0);
	CU_ASSERT_EQUAL(zone_of(&z, "spam.example.dbl.example.org"), 1);
	CU_ASSERT_EQUAL(zone_of(&z, "dbl.example.org"), 1);
	CU_ASSERT_EQUAL(zone_of(&z, "1.2.3.4.bl.example.com"), 2);
}

static void test_cachepolicy_dnsbl_zone_not_under_any_is_minus_one(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg_add_zone(&cfg, "zen.dnsbl.example.net", 0);
	cfg_add_zone(&cfg, "dbl.example.org", 0);
	zones_init_ok(&z, &cfg);
	CU_ASSERT_EQUAL(zone_of(&z, "www.example.com"), -1);
	CU_ASSERT_EQUAL(zone_of(&z, "badzen.dnsbl.example.net"), -1);
	CU_ASSERT_EQUAL(zone_of(&z, "xdbl.example.org"), -1);
	CU_ASSERT_EQUAL(zone_of(&z, "example.org"), -1);
	CU_ASSERT_EQUAL(zone_of(&z, "."), -1);
}

/* The zone's bytes appear at the end of the name, starting with the zone's
 * first length byte, but inside a label ("x\003zen"): a byte match of the
 * tail alone would call it under the zone; the label walk must not. */
static void test_cachepolicy_dnsbl_zone_tail_match_inside_label_is_not_under(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg_add_zone(&cfg, "zen.dnsbl.example.net", 0);
	zones_init_ok(&z, &cfg);
	uint8_t name[WIRE_MAX_NAME];
	size_t n = 0;
	name[n++] = 5;
	name[n++] = 'x';
	memcpy(name + n, z.name[0], z.len[0]); /* \003zen\005dnsbl\007example\003net\000 */
	n += z.len[0];
	/* The first label is 5 bytes: 'x' \003 'z' 'e' 'n'; then dnsbl.example.net. */
	CU_ASSERT_EQUAL(memcmp(name + n - z.len[0], z.name[0], z.len[0]), 0);
	CU_ASSERT_EQUAL(cachepolicy_dnsbl_zone(&z, name, n), -1);
	CU_ASSERT_EQUAL(cachepolicy_partition(&z, name, n, WIRE_TYPE_A, false), CACHE_PART_GENERAL);
}

static void test_cachepolicy_zones_init_rejects_invalid_name(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg_add_zone(&cfg, "good.example.net", 0);
	cfg_add_zone(&cfg, "bad..example.net", 0);
	memset(&z, 0, sizeof(z));
	CU_ASSERT_EQUAL(cachepolicy_zones_init(&z, &cfg), -1);
}

/* ------------------------------------------------------------------ */
/* Entry TTL: positive answers */

static void test_cachepolicy_entry_ttl_positive_within_bounds_unchanged(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = positive(3600);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 3600);
	CU_ASSERT_EQUAL(t.min, 0);
	CU_ASSERT_EQUAL(t.max, 86400);
}

static void test_cachepolicy_entry_ttl_positive_above_global_max_capped(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = positive(604800);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 86400);
	CU_ASSERT_EQUAL(t.max, 86400);
	CU_ASSERT_TRUE(t.clamp);
}

static void test_cachepolicy_entry_ttl_partition_max_overrides_global(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg.partitions[CACHE_PART_GENERAL].ttl.max_ttl = 300;
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = positive(3600);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 300);
	CU_ASSERT_EQUAL(t.max, 300);
	/* Only the general partition has it: mail keeps the global max. */
	info = positive(3600);
	t = ttl_of(&cfg, &z, "example.com", WIRE_TYPE_MX, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 3600);
	CU_ASSERT_EQUAL(t.max, 86400);
}

/* A partition max-ttl replaces cache.max-ttl ("0 = cache.max-ttl"), so it
 * may also be longer than the global one. */
static void test_cachepolicy_entry_ttl_partition_max_replaces_global_even_above_it(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg.partitions[CACHE_PART_MAIL].ttl.max_ttl = 172800;
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = positive(100000);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "example.com", WIRE_TYPE_MX, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 100000);
	CU_ASSERT_EQUAL(t.max, 172800);
}

/* The mail profile: types: MX: {min-ttl: 60s}. */
static void test_cachepolicy_entry_ttl_type_min_floor_raises_zero_ttl_and_sets_clamp(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg_add_type(&cfg, CACHE_PART_MAIL, WIRE_TYPE_MX, (struct config_ttl_policy){ .min_ttl = 60 });
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = positive(0);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "example.com", WIRE_TYPE_MX, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 60);
	CU_ASSERT_EQUAL(t.min, 60);
	CU_ASSERT_EQUAL(t.max, 86400);
	CU_ASSERT_TRUE(t.clamp);
	/* A TTL above the floor is left alone. */
	info = positive(300);
	t = ttl_of(&cfg, &z, "example.com", WIRE_TYPE_MX, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 300);
	/* The floor is MX's only: TXT in the same partition keeps TTL 0. */
	info = positive(0);
	t = ttl_of(&cfg, &z, "example.com", WIRE_TYPE_TXT, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 0);
	CU_ASSERT_EQUAL(t.min, 0);
}

static void test_cachepolicy_entry_ttl_type_entry_overrides_partition(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg.partitions[CACHE_PART_MAIL].ttl = (struct config_ttl_policy){ .min_ttl = 30, .max_ttl = 600 };
	cfg_add_type(&cfg, CACHE_PART_MAIL, WIRE_TYPE_TXT, (struct config_ttl_policy){ .min_ttl = 10, .max_ttl = 20 });
	cfg_add_type(&cfg, CACHE_PART_MAIL, WIRE_TYPE_MX, (struct config_ttl_policy){ .min_ttl = 60, .max_ttl = 1200 });
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = positive(0);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "example.com", WIRE_TYPE_MX, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 60);
	info = positive(1000);
	t = ttl_of(&cfg, &z, "example.com", WIRE_TYPE_MX, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 1000);
	CU_ASSERT_EQUAL(t.max, 1200);
	info = positive(5000);
	t = ttl_of(&cfg, &z, "example.com", WIRE_TYPE_MX, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 1200);
	/* A type without an entry takes the partition's clamps. */
	info = positive(0);
	t = ttl_of(&cfg, &z, "_25._tcp.mx.example.com", WIRE_TYPE_TLSA, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 30);
	info = positive(1000);
	t = ttl_of(&cfg, &z, "_25._tcp.mx.example.com", WIRE_TYPE_TLSA, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 600);
	/* Another type's entry does not leak. */
	info = positive(100);
	t = ttl_of(&cfg, &z, "example.com", WIRE_TYPE_TXT, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 20);
}

/* The loader fills a type entry's unset keys from its partition, so the
 * entry stands alone here: its max 0 means the global max-ttl. */
static void test_cachepolicy_entry_ttl_type_entry_zero_max_means_global(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg.partitions[CACHE_PART_MAIL].ttl.max_ttl = 600;
	cfg_add_type(&cfg, CACHE_PART_MAIL, WIRE_TYPE_MX, (struct config_ttl_policy){ .min_ttl = 60 });
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = positive(100000);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "example.com", WIRE_TYPE_MX, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 86400);
	CU_ASSERT_EQUAL(t.max, 86400);
}

static void test_cachepolicy_entry_ttl_min_above_max_never_stretches_beyond_max(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg.partitions[CACHE_PART_GENERAL].ttl = (struct config_ttl_policy){ .min_ttl = 7200, .max_ttl = 3600 };
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = positive(0);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 3600);
	CU_ASSERT_EQUAL(t.min, 3600);
	CU_ASSERT_EQUAL(t.max, 3600);
	/* A floor above the global max (partition max 0) is lowered to it too. */
	cfg_base(&cfg);
	cfg.partitions[CACHE_PART_GENERAL].ttl.min_ttl = 100000;
	info = positive(10);
	t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 86400);
	CU_ASSERT_EQUAL(t.min, 86400);
}

/* The clamp flag says whether the stored forms' TTLs need clamping: the
 * answer's TTL is only the smallest of its records, so any finite max (and
 * max-ttl is always finite after the loader's defaults) sets it, even when
 * that smallest TTL is within bounds.  Only min 0 with max UINT32_MAX
 * leaves it false. */
static void test_cachepolicy_entry_ttl_clamp_flag_set_whenever_a_bound_applies(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = positive(3600);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 3600);
	CU_ASSERT_TRUE(t.clamp);
}

static void test_cachepolicy_entry_ttl_clamp_flag_false_without_bounds(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg.max_ttl = UINT32_MAX;
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = positive(3600);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 3600);
	CU_ASSERT_EQUAL(t.min, 0);
	CU_ASSERT_EQUAL(t.max, UINT32_MAX);
	CU_ASSERT_FALSE(t.clamp);
	/* A floor alone is a bound. */
	cfg.partitions[CACHE_PART_GENERAL].ttl.min_ttl = 1;
	t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 3600);
	CU_ASSERT_TRUE(t.clamp);
}

/* ------------------------------------------------------------------ */
/* Entry TTL: negative answers */

static void test_cachepolicy_entry_ttl_negative_with_soa_uses_soa_ttl(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = nxdomain(900);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "nope.example.com", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 900);
	CU_ASSERT_EQUAL(t.max, 3600);
	info = nodata(300);
	t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_AAAA, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 300);
}

static void test_cachepolicy_entry_ttl_negative_capped_by_negative_max_ttl(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = nxdomain(86400);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "nope.example.com", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 3600);
	CU_ASSERT_EQUAL(t.max, 3600);
	CU_ASSERT_TRUE(t.clamp);
	/* The positive max does not apply to negative answers. */
	cfg.partitions[CACHE_PART_GENERAL].ttl.max_ttl = 60;
	info = nodata(1800);
	t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_AAAA, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 1800);
	/* A partition's negative max replaces the global one. */
	cfg.partitions[CACHE_PART_GENERAL].ttl.negative_max_ttl = 120;
	t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_AAAA, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 120);
}

static void test_cachepolicy_entry_ttl_negative_without_soa_not_stored(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg.partitions[CACHE_PART_GENERAL].ttl.negative_min_ttl = 60; /* a floor does not save it */
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = nxdomain(900);
	info.has_soa = false;
	info.ttl = 0;
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "nope.example.com", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 0);
	CU_ASSERT_FALSE(t.clamp);
	info = nodata(0);
	info.has_soa = false;
	t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_AAAA, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 0);
}

static void test_cachepolicy_entry_ttl_dnsbl_zone_negative_floor_raises_nxdomain(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg_add_zone(&cfg, "zen.dnsbl.example.net", 900);
	cfg_add_zone(&cfg, "dbl.example.org", 0);
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = nxdomain(10);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "2.0.0.127.zen.dnsbl.example.net", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 900);
	CU_ASSERT_EQUAL(t.min, 900);
	CU_ASSERT_TRUE(t.clamp);
	/* A listing (positive answer) keeps its own TTL. */
	info = positive(10);
	t = ttl_of(&cfg, &z, "2.0.0.127.zen.dnsbl.example.net", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 10);
	/* The floor is that zone's only. */
	info = nxdomain(10);
	t = ttl_of(&cfg, &z, "spam.example.dbl.example.org", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 10);
}

static void test_cachepolicy_entry_ttl_dnsbl_floor_not_applied_outside_zone(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg_add_zone(&cfg, "zen.dnsbl.example.net", 900);
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = nxdomain(10);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "badzen.dnsbl.example.net", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 10);
	CU_ASSERT_EQUAL(t.min, 0);
	t = ttl_of(&cfg, &z, "nope.example.com", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 10);
}

static void test_cachepolicy_entry_ttl_dnsbl_floor_bounded_by_negative_max(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg_add_zone(&cfg, "zen.dnsbl.example.net", 7200);
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = nxdomain(10);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "2.0.0.127.zen.dnsbl.example.net", WIRE_TYPE_A, &info, false);
	CU_ASSERT_EQUAL(t.ttl, 3600);
	CU_ASSERT_EQUAL(t.min, 3600);
}

/* ------------------------------------------------------------------ */
/* Entry TTL: failures and bogus answers */

static void test_cachepolicy_entry_ttl_servfail_and_refused_get_servfail_ttl(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg.partitions[CACHE_PART_GENERAL].ttl.min_ttl = 300; /* clamps do not apply to failures */
	zones_init_ok(&z, &cfg);
	static const uint8_t rcodes[] = { WIRE_RCODE_SERVFAIL, WIRE_RCODE_REFUSED };
	for (size_t i = 0; i < sizeof(rcodes) / sizeof(rcodes[0]); i++) {
		struct wire_answer_info info = failure(rcodes[i]);
		struct cachepolicy_ttl t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_A, &info, false);
		CU_ASSERT_EQUAL(t.ttl, 5);
		CU_ASSERT_FALSE(t.clamp);
	}
}

static void test_cachepolicy_entry_ttl_bogus_capped_at_bogus_ttl(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	zones_init_ok(&z, &cfg);
	CU_ASSERT_EQUAL(CACHEPOLICY_BOGUS_TTL, 60);
	struct wire_answer_info info = positive(86400);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_A, &info, true);
	CU_ASSERT_EQUAL(t.ttl, CACHEPOLICY_BOGUS_TTL);
	info = nxdomain(3000);
	t = ttl_of(&cfg, &z, "nope.example.com", WIRE_TYPE_A, &info, true);
	CU_ASSERT_EQUAL(t.ttl, CACHEPOLICY_BOGUS_TTL);
	/* Shorter TTLs stay as they are. */
	info = positive(30);
	t = ttl_of(&cfg, &z, "www.example.com", WIRE_TYPE_A, &info, true);
	CU_ASSERT_EQUAL(t.ttl, 30);
}

static void test_cachepolicy_entry_ttl_bogus_cap_wins_over_floor(void)
{
	struct config cfg;
	struct cachepolicy_zones z;
	cfg_base(&cfg);
	cfg_add_type(&cfg, CACHE_PART_MAIL, WIRE_TYPE_MX, (struct config_ttl_policy){ .min_ttl = 600 });
	zones_init_ok(&z, &cfg);
	struct wire_answer_info info = positive(0);
	struct cachepolicy_ttl t = ttl_of(&cfg, &z, "example.com", WIRE_TYPE_MX, &info, true);
	CU_ASSERT_EQUAL(t.ttl, CACHEPOLICY_BOGUS_TTL);
}

/* ------------------------------------------------------------------ */
/* Serve stale */

static void test_cachepolicy_stale_noerror_secure_or_insecure_servable(void)
{
	struct config cfg;
	cfg_base(&cfg);
	cfg.serve_stale = true;
	struct cache_record r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_SECURE, 300);
	CU_ASSERT_TRUE(cachepolicy_stale_servable(&cfg, &r));
	r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_INSECURE, 300);
	CU_ASSERT_TRUE(cachepolicy_stale_servable(&cfg, &r));
}

static void test_cachepolicy_stale_bogus_not_servable(void)
{
	struct config cfg;
	cfg_base(&cfg);
	cfg.serve_stale = true;
	cfg.serve_stale_nxdomain = true;
	struct cache_record r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_BOGUS, 300);
	CU_ASSERT_FALSE(cachepolicy_stale_servable(&cfg, &r));
	r = record(WIRE_RCODE_NXDOMAIN, CACHE_DNSSEC_BOGUS, 300);
	CU_ASSERT_FALSE(cachepolicy_stale_servable(&cfg, &r));
}

static void test_cachepolicy_stale_indeterminate_not_servable(void)
{
	struct config cfg;
	cfg_base(&cfg);
	cfg.serve_stale = true;
	cfg.serve_stale_nxdomain = true;
	struct cache_record r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_INDETERMINATE, 300);
	CU_ASSERT_FALSE(cachepolicy_stale_servable(&cfg, &r));
}

static void test_cachepolicy_stale_nxdomain_only_with_serve_stale_nxdomain(void)
{
	struct config cfg;
	cfg_base(&cfg);
	cfg.serve_stale = true;
	struct cache_record r = record(WIRE_RCODE_NXDOMAIN, CACHE_DNSSEC_INSECURE, 300);
	CU_ASSERT_FALSE(cachepolicy_stale_servable(&cfg, &r));
	cfg.serve_stale_nxdomain = true;
	CU_ASSERT_TRUE(cachepolicy_stale_servable(&cfg, &r));
	r = record(WIRE_RCODE_NXDOMAIN, CACHE_DNSSEC_SECURE, 300);
	CU_ASSERT_TRUE(cachepolicy_stale_servable(&cfg, &r));
}

static void test_cachepolicy_stale_failures_not_servable(void)
{
	struct config cfg;
	cfg_base(&cfg);
	cfg.serve_stale = true;
	cfg.serve_stale_nxdomain = true;
	struct cache_record r = record(WIRE_RCODE_SERVFAIL, CACHE_DNSSEC_INSECURE, 5);
	CU_ASSERT_FALSE(cachepolicy_stale_servable(&cfg, &r));
	r = record(WIRE_RCODE_REFUSED, CACHE_DNSSEC_INSECURE, 5);
	CU_ASSERT_FALSE(cachepolicy_stale_servable(&cfg, &r));
}

static void test_cachepolicy_stale_off_never_servable(void)
{
	struct config cfg;
	cfg_base(&cfg);
	cfg.serve_stale = false;
	cfg.serve_stale_nxdomain = true;
	struct cache_record r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_SECURE, 300);
	CU_ASSERT_FALSE(cachepolicy_stale_servable(&cfg, &r));
	r = record(WIRE_RCODE_NXDOMAIN, CACHE_DNSSEC_INSECURE, 300);
	CU_ASSERT_FALSE(cachepolicy_stale_servable(&cfg, &r));
}

/* ------------------------------------------------------------------ */
/* Prefetch */

static void cfg_prefetch(struct config *cfg, unsigned percent)
{
	cfg_base(cfg);
	cfg->prefetch = true;
	cfg->prefetch_percent = percent;
}

static void test_cachepolicy_prefetch_due_in_last_percent_of_ttl(void)
{
	struct config cfg;
	cfg_prefetch(&cfg, 10);
	struct cache_record r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_INSECURE, 100); /* 1000..1100 */
	CU_ASSERT_TRUE(cachepolicy_prefetch_due(&cfg, &r, 1095));
	CU_ASSERT_TRUE(cachepolicy_prefetch_due(&cfg, &r, 1099));
	CU_ASSERT_TRUE(cachepolicy_prefetch_due(&cfg, &r, 1091));
	r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_SECURE, 86400);
	CU_ASSERT_TRUE(cachepolicy_prefetch_due(&cfg, &r, 1000 + 86400 - 100));
}

static void test_cachepolicy_prefetch_not_due_earlier(void)
{
	struct config cfg;
	cfg_prefetch(&cfg, 10);
	struct cache_record r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_INSECURE, 100);
	CU_ASSERT_FALSE(cachepolicy_prefetch_due(&cfg, &r, 1000));
	CU_ASSERT_FALSE(cachepolicy_prefetch_due(&cfg, &r, 1050));
	CU_ASSERT_FALSE(cachepolicy_prefetch_due(&cfg, &r, 1089));
}

/* Due means strictly less than N% of the TTL left: with TTL 100 and 10%,
 * exactly 10 s left is not due yet, 9 s left is. */
static void test_cachepolicy_prefetch_boundary_is_not_due(void)
{
	struct config cfg;
	cfg_prefetch(&cfg, 10);
	struct cache_record r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_INSECURE, 100);
	CU_ASSERT_FALSE(cachepolicy_prefetch_due(&cfg, &r, 1090));
	CU_ASSERT_TRUE(cachepolicy_prefetch_due(&cfg, &r, 1091));
	/* The same with 25% of 40 s: 10 s left is the boundary. */
	cfg_prefetch(&cfg, 25);
	r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_INSECURE, 40);
	CU_ASSERT_FALSE(cachepolicy_prefetch_due(&cfg, &r, 1030));
	CU_ASSERT_TRUE(cachepolicy_prefetch_due(&cfg, &r, 1031));
}

static void test_cachepolicy_prefetch_short_ttl_never_due(void)
{
	struct config cfg;
	cfg_prefetch(&cfg, 50);
	struct cache_record r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_INSECURE, CACHEPOLICY_PREFETCH_MIN_TTL - 1);
	CU_ASSERT_FALSE(cachepolicy_prefetch_due(&cfg, &r, r.expires - 1));
	/* The minimum itself is long enough. */
	r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_INSECURE, CACHEPOLICY_PREFETCH_MIN_TTL);
	CU_ASSERT_TRUE(cachepolicy_prefetch_due(&cfg, &r, r.expires - 1));
}

static void test_cachepolicy_prefetch_bogus_never_due(void)
{
	struct config cfg;
	cfg_prefetch(&cfg, 10);
	struct cache_record r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_BOGUS, 100);
	CU_ASSERT_FALSE(cachepolicy_prefetch_due(&cfg, &r, 1099));
}

static void test_cachepolicy_prefetch_expired_never_due(void)
{
	struct config cfg;
	cfg_prefetch(&cfg, 10);
	struct cache_record r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_INSECURE, 100);
	CU_ASSERT_FALSE(cachepolicy_prefetch_due(&cfg, &r, 1100));
	CU_ASSERT_FALSE(cachepolicy_prefetch_due(&cfg, &r, 1101));
	CU_ASSERT_FALSE(cachepolicy_prefetch_due(&cfg, &r, 5000));
}

static void test_cachepolicy_prefetch_off_never_due(void)
{
	struct config cfg;
	cfg_prefetch(&cfg, 10);
	cfg.prefetch = false;
	struct cache_record r = record(WIRE_RCODE_NOERROR, CACHE_DNSSEC_SECURE, 100);
	CU_ASSERT_FALSE(cachepolicy_prefetch_due(&cfg, &r, 1095));
}

/* ------------------------------------------------------------------ */

int main(void)
{
	static const struct unit_test tests[] = {
		T(test_cachepolicy_partition_mail_types_go_to_mail),
		T(test_cachepolicy_partition_address_is_general_unless_mx_target),
		T(test_cachepolicy_partition_other_types_are_general_even_for_mx_target),
		T(test_cachepolicy_partition_under_dnsbl_zone_is_dnsbl_whatever_the_type),
		T(test_cachepolicy_partition_dnsbl_zone_apex_is_dnsbl),
		T(test_cachepolicy_partition_dnsbl_respects_label_boundary),
		T(test_cachepolicy_partition_names_shorter_than_zone_are_not_dnsbl),
		T(test_cachepolicy_partition_without_zones_never_dnsbl),
		T(test_cachepolicy_dnsbl_zone_returns_index_of_matching_zone),
		T(test_cachepolicy_dnsbl_zone_not_under_any_is_minus_one),
		T(test_cachepolicy_dnsbl_zone_tail_match_inside_label_is_not_under),
		T(test_cachepolicy_zones_init_rejects_invalid_name),
		T(test_cachepolicy_entry_ttl_positive_within_bounds_unchanged),
		T(test_cachepolicy_entry_ttl_positive_above_global_max_capped),
		T(test_cachepolicy_entry_ttl_partition_max_overrides_global),
		T(test_cachepolicy_entry_ttl_partition_max_replaces_global_even_above_it),
		T(test_cachepolicy_entry_ttl_type_min_floor_raises_zero_ttl_and_sets_clamp),
		T(test_cachepolicy_entry_ttl_type_entry_overrides_partition),
		T(test_cachepolicy_entry_ttl_type_entry_zero_max_means_global),
		T(test_cachepolicy_entry_ttl_min_above_max_never_stretches_beyond_max),
		T(test_cachepolicy_entry_ttl_clamp_flag_set_whenever_a_bound_applies),
		T(test_cachepolicy_entry_ttl_clamp_flag_false_without_bounds),
		T(test_cachepolicy_entry_ttl_negative_with_soa_uses_soa_ttl),
		T(test_cachepolicy_entry_ttl_negative_capped_by_negative_max_ttl),
		T(test_cachepolicy_entry_ttl_negative_without_soa_not_stored),
		T(test_cachepolicy_entry_ttl_dnsbl_zone_negative_floor_raises_nxdomain),
		T(test_cachepolicy_entry_ttl_dnsbl_floor_not_applied_outside_zone),
		T(test_cachepolicy_entry_ttl_dnsbl_floor_bounded_by_negative_max),
		T(test_cachepolicy_entry_ttl_servfail_and_refused_get_servfail_ttl),
		T(test_cachepolicy_entry_ttl_bogus_capped_at_bogus_ttl),
		T(test_cachepolicy_entry_ttl_bogus_cap_wins_over_floor),
		T(test_cachepolicy_stale_noerror_secure_or_insecure_servable),
		T(test_cachepolicy_stale_bogus_not_servable),
		T(test_cachepolicy_stale_indeterminate_not_servable),
		T(test_cachepolicy_stale_nxdomain_only_with_serve_stale_nxdomain),
		T(test_cachepolicy_stale_failures_not_servable),
		T(test_cachepolicy_stale_off_never_servable),
		T(test_cachepolicy_prefetch_due_in_last_percent_of_ttl),
		T(test_cachepolicy_prefetch_not_due_earlier),
		T(test_cachepolicy_prefetch_boundary_is_not_due),
		T(test_cachepolicy_prefetch_short_ttl_never_due),
		T(test_cachepolicy_prefetch_bogus_never_due),
		T(test_cachepolicy_prefetch_expired_never_due),
		T(test_cachepolicy_prefetch_off_never_due),
	};
	return unit_run("cachepolicy", NULL, NULL, tests, UNIT_COUNT(tests));
}
