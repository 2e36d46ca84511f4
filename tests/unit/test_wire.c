/* test_wire.c -- unit tests of resolver/wire: query parsing, error and ANY
 * replies, answer forms and serving them, presentation names, robustness.
 *
 * Packets are built by hand with the small pk_* helpers below, and answers
 * we produce are read back with an independent decoder (dec_*), so the tests
 * do not trust wire.c to check itself. */
#include "unit.h"
#include "wire.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ */
/* Packet building */

/* Write the labels of a dotted name; with root, end it with the 0 byte
 * (without, the caller follows with a pointer). */
static void pk_labels(struct pk *p, const char *name, int root)
{
	const char *s = name;
	while (*s && strcmp(s, ".") != 0) {
		const char *dot = strchr(s, '.');
		size_t l = dot ? (size_t)(dot - s) : strlen(s);
		pk_u8(p, (unsigned)l);
		pk_bytes(p, s, l);
		s += l;
		if (*s == '.')
			s++;
	}
	if (root)
		pk_u8(p, 0);
}

static void pk_name(struct pk *p, const char *name)
{
	pk_labels(p, name, 1);
}

static void pk_ptr(struct pk *p, unsigned off)
{
	pk_u16(p, 0xC000 | off);
}

static void pk_header(struct pk *p, unsigned id, unsigned flags, unsigned qd, unsigned an, unsigned ns, unsigned ar)
{
	p->n = 0;
	pk_u16(p, id);
	pk_u16(p, flags);
	pk_u16(p, qd);
	pk_u16(p, an);
	pk_u16(p, ns);
	pk_u16(p, ar);
}

/* Type, class, TTL and a placeholder RDLENGTH; returns where it is. */
static size_t pk_rr(struct pk *p, unsigned type, unsigned cls, uint32_t ttl)
{
	pk_u16(p, type);
	pk_u16(p, cls);
	pk_u32(p, ttl);
	size_t at = p->n;
	pk_u16(p, 0);
	return at;
}

static void pk_rr_end(struct pk *p, size_t at)
{
	size_t l = p->n - at - 2;
	p->b[at] = (uint8_t)(l >> 8);
	p->b[at + 1] = (uint8_t)l;
}

/* An OPT record with root owner. */
static void pk_opt(struct pk *p, unsigned size, unsigned version, int do_bit, const uint8_t *rdata, size_t rdlen)
{
	pk_u8(p, 0);
	pk_u16(p, WIRE_TYPE_OPT);
	pk_u16(p, size);
	pk_u8(p, 0);
	pk_u8(p, version);
	pk_u16(p, do_bit ? 0x8000 : 0);
	pk_u16(p, (unsigned)rdlen);
	if (rdlen)
		pk_bytes(p, rdata, rdlen);
}

/* A query: id, RD set, one question, optional EDNS. */
static void pk_query(struct pk *p, unsigned id, unsigned flags, const char *name, unsigned qtype, int edns, int do_bit)
{
	pk_header(p, id, flags, 1, 0, 0, edns ? 1 : 0);
	pk_name(p, name);
	pk_u16(p, qtype);
	pk_u16(p, WIRE_CLASS_IN);
	if (edns)
		pk_opt(p, 4096, 0, do_bit, NULL, 0);
}

static uint16_t get16(const uint8_t *b)
{
	return (uint16_t)(b[0] << 8 | b[1]);
}

static uint32_t get32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* ------------------------------------------------------------------ */
/* An independent decoder for what wire.c produces */

#define DEC_MAX_RR 64

struct drr {
	char owner[1100];
	uint16_t type, cls;
	uint32_t ttl;
	size_t rdata_off, rdlen;
	char rtext[1400]; /* names in RDATA expanded, for the types we know */
};

struct dmsg {
	uint16_t id, flags, qd, an, ns, ar;
	char qname[1100];
	uint16_t qtype, qclass;
	unsigned nrr;
	struct drr rr[DEC_MAX_RR];
	int has_opt;
	uint16_t opt_size;
	uint32_t opt_ttl;
	size_t opt_rdata_off, opt_rdlen;
};

/* Decode a name, allowing only backward pointers to positions after the
 * header; writes dotted text with a trailing dot.  Returns 0 or -1. */
static int dec_name(const uint8_t *m, size_t len, size_t *pos, char *out)
{
	size_t p = *pos, o = 0, total = 0;
	int jumped = 0, hops = 0;
	out[0] = '\0';
	for (;;) {
		if (p >= len)
			return -1;
		uint8_t c = m[p];
		if ((c & 0xC0) == 0xC0) {
			if (p + 1 >= len || ++hops > 128)
				return -1;
			size_t t = (size_t)(c & 0x3F) << 8 | m[p + 1];
			if (t >= p || t < 12)
				return -1;
			if (!jumped)
				*pos = p + 2;
			jumped = 1;
			p = t;
			continue;
		}
		if (c > 63 || p + 1 + c > len)
			return -1;
		total += 1 + c;
		if (total > 255)
			return -1;
		if (c == 0)
			break;
		memcpy(out + o, m + p + 1, c);
		o += c;
		out[o++] = '.';
		p += 1 + c;
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	if (!jumped)
		*pos = p + 1;
	return 0;
}

static int dec_rdata(const uint8_t *m, size_t len, size_t rd, size_t rdlen, uint16_t type, char *out)
{
	char a[300], b[300];
	size_t p = rd, end = rd + rdlen;
	switch (type) {
	case WIRE_TYPE_NS:
	case WIRE_TYPE_CNAME:
	case WIRE_TYPE_PTR:
		if (dec_name(m, end, &p, a) < 0 || p != end)
			return -1;
		sprintf(out, "%s", a);
		return 0;
	case WIRE_TYPE_MX:
		p += 2;
		if (dec_name(m, end, &p, a) < 0 || p != end)
			return -1;
		sprintf(out, "%u %s", get16(m + rd), a);
		return 0;
	case WIRE_TYPE_SOA:
		if (dec_name(m, end, &p, a) < 0 || dec_name(m, end, &p, b) < 0 || end - p != 20)
			return -1;
		sprintf(out, "%s %s %u %u %u %u %u", a, b, get32(m + p), get32(m + p + 4), get32(m + p + 8),
		        get32(m + p + 12), get32(m + p + 16));
		return 0;
	case WIRE_TYPE_SRV:
		p += 6;
		if (dec_name(m, end, &p, a) < 0 || p != end)
			return -1;
		sprintf(out, "%u %u %u %s", get16(m + rd), get16(m + rd + 2), get16(m + rd + 4), a);
		return 0;
	case WIRE_TYPE_RRSIG:
		p += 18;
		if (rdlen < 19 || dec_name(m, end, &p, a) < 0)
			return -1;
		sprintf(out, "%u %s siglen=%zu", get16(m + rd), a, end - p);
		return 0;
	case WIRE_TYPE_A:
		if (rdlen != 4) /* wire.c copies unknown shapes opaquely */
			break;
		sprintf(out, "%u.%u.%u.%u", m[rd], m[rd + 1], m[rd + 2], m[rd + 3]);
		return 0;
	default:
		break;
	}
	sprintf(out, "len=%zu", rdlen);
	return 0;
}

/* Decode a whole message; every byte must be accounted for. */
static int dec_msg(const uint8_t *m, size_t len, struct dmsg *d)
{
	memset(d, 0, sizeof(*d));
	if (len < 12)
		return -1;
	d->id = get16(m);
	d->flags = get16(m + 2);
	d->qd = get16(m + 4);
	d->an = get16(m + 6);
	d->ns = get16(m + 8);
	d->ar = get16(m + 10);
	size_t p = 12;
	if (d->qd > 1)
		return -1;
	if (d->qd == 1) {
		if (dec_name(m, len, &p, d->qname) < 0 || len - p < 4)
			return -1;
		d->qtype = get16(m + p);
		d->qclass = get16(m + p + 2);
		p += 4;
	}
	unsigned total = (unsigned)d->an + d->ns + d->ar;
	for (unsigned i = 0; i < total; i++) {
		char owner[1100];
		if (dec_name(m, len, &p, owner) < 0 || len - p < 10)
			return -1;
		uint16_t type = get16(m + p);
		size_t rdlen = get16(m + p + 8);
		if (len - p - 10 < rdlen)
			return -1;
		if (type == WIRE_TYPE_OPT) {
			if (d->has_opt || i < (unsigned)d->an + d->ns || strcmp(owner, ".") != 0)
				return -1;
			d->has_opt = 1;
			d->opt_size = get16(m + p + 2);
			d->opt_ttl = get32(m + p + 4);
			d->opt_rdata_off = p + 10;
			d->opt_rdlen = rdlen;
		} else {
			if (d->nrr >= DEC_MAX_RR)
				return -1;
			struct drr *r = &d->rr[d->nrr++];
			strcpy(r->owner, owner);
			r->type = type;
			r->cls = get16(m + p + 2);
			r->ttl = get32(m + p + 4);
			r->rdata_off = p + 10;
			r->rdlen = rdlen;
			if (dec_rdata(m, len, p + 10, rdlen, type, r->rtext) < 0)
				return -1;
		}
		p += 10 + rdlen;
	}
	return p == len ? 0 : -1;
}

static unsigned dec_count_type(const struct dmsg *d, uint16_t type)
{
	unsigned n = 0;
	for (unsigned i = 0; i < d->nrr; i++)
		n += d->rr[i].type == type;
	return n;
}

static const struct drr *dec_find(const struct dmsg *d, uint16_t type, unsigned nth)
{
	for (unsigned i = 0; i < d->nrr; i++)
		if (d->rr[i].type == type && nth-- == 0)
			return &d->rr[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Fixtures */

static uint8_t full_form[WIRE_FORM_MAX], plain_form[WIRE_FORM_MAX];
static uint8_t out[WIRE_FORM_MAX];
static struct dmsg dm, dm2;

static void parse_ok(struct wire_query *q, const char *name, unsigned qtype, int edns, int do_bit)
{
	struct pk p;
	pk_query(&p, 0x1234, 0x0100, name, qtype, edns, do_bit);
	CU_ASSERT_EQUAL_FATAL(wire_parse_query(p.b, p.n, q), WIRE_PARSE_OK);
}

/* The upstream answer to www.example.com A: two A records and an RRSIG in
 * the answer (the RRSIG's signer name compressed, which RFC 4034 forbids but
 * must still decode), an NS in authority, glue A plus RRSIG and an OPT with
 * DO in additional.  All owners compressed against earlier names. */
static void upstream_positive(struct pk *p)
{
	size_t at;
	pk_header(p, 0, 0x8180, 1, 3, 1, 3);
	pk_name(p, "www.example.com"); /* 12; example.com at 16 */
	pk_u16(p, WIRE_TYPE_A);
	pk_u16(p, WIRE_CLASS_IN);

	pk_ptr(p, 12);
	at = pk_rr(p, WIRE_TYPE_A, 1, 300);
	pk_bytes(p, "\xC0\x00\x02\x01", 4);
	pk_rr_end(p, at);
	pk_ptr(p, 12);
	at = pk_rr(p, WIRE_TYPE_A, 1, 300);
	pk_bytes(p, "\xC0\x00\x02\x02", 4);
	pk_rr_end(p, at);
	pk_ptr(p, 12);
	at = pk_rr(p, WIRE_TYPE_RRSIG, 1, 250);
	pk_u16(p, WIRE_TYPE_A);
	pk_u8(p, 13);
	pk_u8(p, 3);
	pk_u32(p, 300);
	pk_u32(p, 2000000000);
	pk_u32(p, 1900000000);
	pk_u16(p, 4242);
	pk_ptr(p, 16);
	pk_bytes(p, "SIGNATURESIGNATURESIGNATURE", 27);
	pk_rr_end(p, at);

	pk_ptr(p, 16);
	at = pk_rr(p, WIRE_TYPE_NS, 1, 86400);
	size_t ns1 = p->n;
	pk_labels(p, "ns1", 0);
	pk_ptr(p, 16);
	pk_rr_end(p, at);

	pk_ptr(p, (unsigned)ns1);
	at = pk_rr(p, WIRE_TYPE_A, 1, 3600);
	pk_bytes(p, "\xC0\x00\x02\x35", 4);
	pk_rr_end(p, at);
	pk_ptr(p, (unsigned)ns1);
	at = pk_rr(p, WIRE_TYPE_RRSIG, 1, 3600);
	pk_u16(p, WIRE_TYPE_A);
	pk_u8(p, 13);
	pk_u8(p, 3);
	pk_u32(p, 3600);
	pk_u32(p, 2000000000);
	pk_u32(p, 1900000000);
	pk_u16(p, 4242);
	pk_name(p, "example.com");
	pk_bytes(p, "SIG2", 4);
	pk_rr_end(p, at);
	pk_opt(p, 1232, 0, 1, NULL, 0);
}

/* A negative answer for nx.example.com A: SOA (ttl, minimum), its RRSIG and
 * an NSEC in authority. */
static void upstream_negative(struct pk *p, unsigned rcode, uint32_t soa_ttl, uint32_t minimum)
{
	size_t at;
	pk_header(p, 0, 0x8180 | rcode, 1, 0, 3, 1);
	pk_name(p, "nx.example.com"); /* example.com at 15 */
	pk_u16(p, WIRE_TYPE_A);
	pk_u16(p, WIRE_CLASS_IN);
	pk_ptr(p, 15);
	at = pk_rr(p, WIRE_TYPE_SOA, 1, soa_ttl);
	pk_labels(p, "ns1", 0);
	pk_ptr(p, 15);
	pk_labels(p, "hostmaster", 0);
	pk_ptr(p, 15);
	pk_u32(p, 2024010101);
	pk_u32(p, 7200);
	pk_u32(p, 3600);
	pk_u32(p, 1209600);
	pk_u32(p, minimum);
	pk_rr_end(p, at);
	pk_ptr(p, 15);
	at = pk_rr(p, WIRE_TYPE_RRSIG, 1, soa_ttl);
	pk_u16(p, WIRE_TYPE_SOA);
	pk_u8(p, 13);
	pk_u8(p, 2);
	pk_u32(p, soa_ttl);
	pk_u32(p, 2000000000);
	pk_u32(p, 1900000000);
	pk_u16(p, 4242);
	pk_name(p, "example.com");
	pk_bytes(p, "SIG3", 4);
	pk_rr_end(p, at);
	pk_ptr(p, 15);
	at = pk_rr(p, WIRE_TYPE_NSEC, 1, minimum);
	pk_name(p, "a.example.com");
	pk_bytes(p, "\x00\x01\x40", 3);
	pk_rr_end(p, at);
	pk_opt(p, 1232, 0, 1, NULL, 0);
}

static void forms_positive(struct wire_query *q, size_t *flen, size_t *plen, struct wire_answer_info *info)
{
	struct pk up;
	upstream_positive(&up);
	parse_ok(q, "WwW.ExAmple.COM", WIRE_TYPE_A, 1, 1);
	CU_ASSERT_EQUAL_FATAL(wire_prepare_forms(up.b, up.n, q, full_form, flen, plain_form, plen, info), 0);
}

static struct wire_serve serve_default(void)
{
	struct wire_serve s;
	memset(&s, 0, sizeof(s));
	s.rcode = -1;
	s.ede_code = WIRE_EDE_NONE;
	s.limit = 65535;
	return s;
}

/* ------------------------------------------------------------------ */
/* wire_parse_query */

static void test_wire_parse_accepts_plain_query(void)
{
	struct pk p;
	struct wire_query q;
	pk_query(&p, 0xBEEF, 0x0100, "www.example.com", WIRE_TYPE_AAAA, 0, 0);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	CU_ASSERT_EQUAL(q.id, 0xBEEF);
	CU_ASSERT(q.rd);
	CU_ASSERT(!q.cd);
	CU_ASSERT(q.has_question);
	CU_ASSERT_EQUAL(q.qtype, WIRE_TYPE_AAAA);
	CU_ASSERT_EQUAL(q.qclass, WIRE_CLASS_IN);
	CU_ASSERT_EQUAL(q.qname_len, 17);
	CU_ASSERT(memcmp(q.qname, "\3www\7example\3com\0", 17) == 0);
	CU_ASSERT(!q.has_edns);
	CU_ASSERT(!q.do_bit);
	CU_ASSERT_EQUAL(q.udp_size, 512);
}

static void test_wire_parse_reads_edns_and_do(void)
{
	struct pk p;
	struct wire_query q;
	pk_query(&p, 1, 0x0110, "example.com", WIRE_TYPE_A, 1, 1);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	CU_ASSERT(q.has_edns);
	CU_ASSERT(q.do_bit);
	CU_ASSERT(q.cd);
	CU_ASSERT_EQUAL(q.edns_version, 0);
	CU_ASSERT_EQUAL(q.udp_size, 4096);
	CU_ASSERT_EQUAL(wire_udp_limit(&q), WIRE_EDNS_PAYLOAD);

	pk_query(&p, 1, 0x0100, "example.com", WIRE_TYPE_A, 1, 0);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	CU_ASSERT(q.has_edns);
	CU_ASSERT(!q.do_bit);
}

static void test_wire_parse_udp_size_at_least_512(void)
{
	struct pk p;
	struct wire_query q;
	pk_header(&p, 1, 0, 1, 0, 0, 1);
	pk_name(&p, "example.com");
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	pk_opt(&p, 100, 0, 0, NULL, 0);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	CU_ASSERT_EQUAL(q.udp_size, 512);
	CU_ASSERT_EQUAL(wire_udp_limit(&q), 512);

	p.b[p.n - 8] = 0x03; /* class = 1000 */
	p.b[p.n - 7] = 0xE8;
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	CU_ASSERT_EQUAL(q.udp_size, 1000);
	CU_ASSERT_EQUAL(wire_udp_limit(&q), 1000);
}

static void test_wire_parse_lowercases_qname_keeps_case(void)
{
	struct pk p;
	struct wire_query q;
	pk_query(&p, 1, 0, "WwW.ExAmPlE.CoM", WIRE_TYPE_A, 0, 0);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	CU_ASSERT(memcmp(q.qname, "\3www\7example\3com\0", 17) == 0);
	CU_ASSERT(memcmp(q.qname_case, "\3WwW\7ExAmPlE\3CoM\0", 17) == 0);
}

static void test_wire_parse_rejects_short_header(void)
{
	uint8_t b[11] = { 0 };
	struct wire_query q;
	for (size_t n = 0; n < sizeof(b); n++)
		CU_ASSERT_EQUAL(wire_parse_query(b, n, &q), WIRE_PARSE_DROP);
}

static void test_wire_parse_drops_responses(void)
{
	struct pk p;
	struct wire_query q;
	pk_query(&p, 1, 0x8100, "example.com", WIRE_TYPE_A, 0, 0);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_DROP);
}

static void test_wire_parse_formerr_on_qdcount_0(void)
{
	struct pk p;
	struct wire_query q;
	pk_header(&p, 7, 0x0100, 0, 0, 0, 1);
	pk_opt(&p, 1232, 0, 1, NULL, 0);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);
	CU_ASSERT_EQUAL(q.id, 7);
	CU_ASSERT(!q.has_question);
	CU_ASSERT(q.has_edns); /* so the FORMERR carries an OPT */
}

static void test_wire_parse_formerr_on_qdcount_2(void)
{
	struct pk p;
	struct wire_query q;
	pk_header(&p, 7, 0x0100, 2, 0, 0, 0);
	pk_name(&p, "a.example");
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	pk_name(&p, "b.example");
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);
	CU_ASSERT_EQUAL(q.id, 7);
}

static void test_wire_parse_notimp_on_opcode(void)
{
	struct pk p;
	struct wire_query q;
	pk_query(&p, 9, 0x2900, "example.com", WIRE_TYPE_SOA, 1, 1); /* opcode 5 UPDATE, RD */
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_NOTIMP);
	CU_ASSERT_EQUAL(q.opcode, 5);
	CU_ASSERT(q.has_question);
	CU_ASSERT(q.has_edns);

	uint8_t r[600];
	size_t n = wire_build_error(&q, WIRE_RCODE_NOTIMP, WIRE_EDE_NONE, NULL, r, sizeof(r));
	CU_ASSERT(n > 12);
	CU_ASSERT_EQUAL(get16(r + 2), 0x8000 | (5 << 11) | 0x0100 | 0x0080 | WIRE_RCODE_NOTIMP);
}

static void test_wire_parse_badvers_on_edns_version_1(void)
{
	struct pk p;
	struct wire_query q;
	pk_header(&p, 1, 0, 1, 0, 0, 1);
	pk_name(&p, "example.com");
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	pk_opt(&p, 1232, 1, 1, NULL, 0);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_BADVERS);
	CU_ASSERT(q.has_edns);
	CU_ASSERT(q.do_bit);
	CU_ASSERT_EQUAL(q.edns_version, 1);
}

static void test_wire_parse_formerr_on_two_opts(void)
{
	struct pk p;
	struct wire_query q;
	pk_header(&p, 1, 0, 1, 0, 0, 2);
	pk_name(&p, "example.com");
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	pk_opt(&p, 1232, 0, 0, NULL, 0);
	pk_opt(&p, 1232, 0, 0, NULL, 0);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);
}

static void test_wire_parse_formerr_on_truncated_option(void)
{
	struct pk p;
	struct wire_query q;
	/* Cookie option claiming 8 bytes with 4 present. */
	static const uint8_t bad[] = { 0, 10, 0, 8, 1, 2, 3, 4 };
	static const uint8_t stub[] = { 0, 10, 0 };
	static const uint8_t good[] = { 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0xFF, 0xFE, 0, 0 };
	pk_header(&p, 1, 0, 1, 0, 0, 1);
	pk_name(&p, "example.com");
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	size_t base = p.n;
	pk_opt(&p, 1232, 0, 0, bad, sizeof(bad));
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);
	p.n = base;
	pk_opt(&p, 1232, 0, 0, stub, sizeof(stub));
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);
	p.n = base;
	pk_opt(&p, 1232, 0, 0, good, sizeof(good)); /* unknown option 0xFFFE is ignored */
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
}

static void test_wire_parse_formerr_on_opt_rdata_past_end(void)
{
	struct pk p;
	struct wire_query q;
	pk_header(&p, 1, 0, 1, 0, 0, 1);
	pk_name(&p, "example.com");
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	pk_opt(&p, 1232, 0, 0, NULL, 0);
	p.b[p.n - 1] = 20; /* RDLENGTH beyond the packet */
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);
}

static void test_wire_parse_formerr_on_opt_with_owner(void)
{
	struct pk p;
	struct wire_query q;
	pk_header(&p, 1, 0, 1, 0, 0, 1);
	pk_name(&p, "example.com");
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	pk_name(&p, "x");
	pk_u16(&p, WIRE_TYPE_OPT);
	pk_u16(&p, 1232);
	pk_u32(&p, 0);
	pk_u16(&p, 0);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);
}

static void test_wire_parse_formerr_on_compression_loop_in_question(void)
{
	struct pk p;
	struct wire_query q;
	pk_header(&p, 1, 0, 1, 0, 0, 0);
	pk_ptr(&p, 12); /* points at itself */
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);
	CU_ASSERT(!q.has_question);

	/* A legal-looking pointer is still not allowed in a query's question. */
	pk_header(&p, 1, 0, 1, 0, 0, 0);
	pk_labels(&p, "www", 0);
	pk_ptr(&p, 12);
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);
}

static void test_wire_parse_formerr_on_pointer_loop_in_answer(void)
{
	struct pk p;
	struct wire_query q;
	pk_header(&p, 1, 0, 1, 1, 0, 0);
	pk_name(&p, "example.com");
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	size_t self = p.n;
	pk_ptr(&p, (unsigned)self);
	pk_rr_end(&p, pk_rr(&p, 1, 1, 0));
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);
	/* Two labels pointing at each other, forward then back. */
	pk_header(&p, 1, 0, 1, 1, 0, 0);
	pk_name(&p, "example.com");
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	size_t a = p.n;
	pk_u8(&p, 1);
	pk_u8(&p, 'a');
	pk_ptr(&p, (unsigned)a + 4);
	pk_u8(&p, 1);
	pk_u8(&p, 'b');
	pk_ptr(&p, (unsigned)a);
	pk_rr_end(&p, pk_rr(&p, 1, 1, 0));
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);
}

static void test_wire_parse_formerr_on_long_label(void)
{
	struct pk p;
	struct wire_query q;
	pk_header(&p, 1, 0, 1, 0, 0, 0);
	pk_u8(&p, 64);
	memset(p.b + p.n, 'a', 64);
	p.n += 64;
	pk_u8(&p, 0);
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);

	/* 63 is fine. */
	pk_header(&p, 1, 0, 1, 0, 0, 0);
	pk_u8(&p, 63);
	memset(p.b + p.n, 'a', 63);
	p.n += 63;
	pk_u8(&p, 0);
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	CU_ASSERT_EQUAL(q.qname_len, 65);
}

static void test_wire_parse_formerr_on_long_name(void)
{
	struct pk p;
	struct wire_query q;
	/* 4 labels of 63 = 256 bytes with the root: one too many. */
	pk_header(&p, 1, 0, 1, 0, 0, 0);
	for (int i = 0; i < 4; i++) {
		pk_u8(&p, 63);
		memset(p.b + p.n, 'a', 63);
		p.n += 63;
	}
	pk_u8(&p, 0);
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);

	/* 3 x 63 + 61 + root = 255: the longest legal name. */
	pk_header(&p, 1, 0, 1, 0, 0, 0);
	for (int i = 0; i < 3; i++) {
		pk_u8(&p, 63);
		memset(p.b + p.n, 'a', 63);
		p.n += 63;
	}
	pk_u8(&p, 61);
	memset(p.b + p.n, 'b', 61);
	p.n += 61;
	pk_u8(&p, 0);
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	CU_ASSERT_EQUAL(q.qname_len, 255);
}

static void test_wire_parse_formerr_on_truncated_question(void)
{
	struct pk p;
	struct wire_query q;
	pk_query(&p, 3, 0, "www.example.com", WIRE_TYPE_A, 0, 0);
	for (size_t n = 12; n < p.n; n++) {
		CU_ASSERT_EQUAL(wire_parse_query(p.b, n, &q), WIRE_PARSE_FORMERR);
		CU_ASSERT_EQUAL(q.id, 3);
	}
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
}

static void test_wire_parse_walks_answer_records_and_ignores_trailing_bytes(void)
{
	struct pk p;
	struct wire_query q;
	pk_header(&p, 1, 0, 1, 1, 1, 1);
	pk_name(&p, "example.com");
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	pk_ptr(&p, 12);
	size_t at = pk_rr(&p, WIRE_TYPE_A, 1, 60);
	pk_u32(&p, 0x01020304);
	pk_rr_end(&p, at);
	pk_ptr(&p, 12);
	at = pk_rr(&p, WIRE_TYPE_NS, 1, 60);
	pk_labels(&p, "ns", 0);
	pk_ptr(&p, 12);
	pk_rr_end(&p, at);
	pk_opt(&p, 1400, 0, 1, NULL, 0);
	pk_bytes(&p, "garbage", 7);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	CU_ASSERT(q.has_edns);
	CU_ASSERT(q.do_bit);
	CU_ASSERT_EQUAL(q.udp_size, 1400);
}

static void test_wire_parse_formerr_on_missing_records(void)
{
	struct pk p;
	struct wire_query q;
	pk_query(&p, 1, 0, "example.com", WIRE_TYPE_A, 0, 0);
	p.b[11] = 1; /* ARCOUNT 1, nothing there */
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);
	CU_ASSERT(q.has_question);
}

static void test_wire_parse_accepts_axfr(void)
{
	struct pk p;
	struct wire_query q;
	pk_query(&p, 1, 0, "example.com", WIRE_TYPE_AXFR, 0, 0);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	CU_ASSERT_EQUAL(q.qtype, WIRE_TYPE_AXFR);
	pk_query(&p, 1, 0, "example.com", WIRE_TYPE_IXFR, 0, 0);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
}

static void test_wire_parse_accepts_root_question(void)
{
	struct pk p;
	struct wire_query q;
	pk_query(&p, 1, 0, ".", WIRE_TYPE_NS, 0, 0);
	CU_ASSERT_EQUAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	CU_ASSERT_EQUAL(q.qname_len, 1);
	CU_ASSERT_EQUAL(q.qname[0], 0);
}

static void test_wire_udp_limit_bounds(void)
{
	struct wire_query q;
	memset(&q, 0, sizeof(q));
	q.udp_size = 4096;
	CU_ASSERT_EQUAL(wire_udp_limit(&q), 512);
	q.has_edns = true;
	CU_ASSERT_EQUAL(wire_udp_limit(&q), 1232);
	q.udp_size = 800;
	CU_ASSERT_EQUAL(wire_udp_limit(&q), 800);
	q.udp_size = 100;
	CU_ASSERT_EQUAL(wire_udp_limit(&q), 512);
}

/* ------------------------------------------------------------------ */
/* wire_build_error, wire_build_any_refusal */

static void test_wire_error_without_edns(void)
{
	struct pk p;
	struct wire_query q;
	uint8_t r[600];
	pk_query(&p, 0xABCD, 0x0110, "Mail.Example.com", WIRE_TYPE_MX, 0, 0);
	CU_ASSERT_EQUAL_FATAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	size_t n = wire_build_error(&q, WIRE_RCODE_SERVFAIL, WIRE_EDE_DNSSEC_BOGUS, "bogus", r, sizeof(r));
	CU_ASSERT_EQUAL(n, p.n);
	CU_ASSERT_EQUAL(get16(r), 0xABCD);
	CU_ASSERT_EQUAL(get16(r + 2), 0x8000 | 0x0100 | 0x0080 | 0x0010 | WIRE_RCODE_SERVFAIL);
	CU_ASSERT_EQUAL(get16(r + 4), 1);
	CU_ASSERT_EQUAL(get16(r + 6), 0);
	CU_ASSERT_EQUAL(get16(r + 8), 0);
	CU_ASSERT_EQUAL(get16(r + 10), 0);
	CU_ASSERT(memcmp(r + 12, p.b + 12, p.n - 12) == 0); /* question as sent, case kept */
	/* Too small a buffer: 0, never a partial write past cap. */
	CU_ASSERT_EQUAL(wire_build_error(&q, 2, WIRE_EDE_NONE, NULL, r, n - 1), 0);
}

static void test_wire_error_with_edns_ede_bytes_exact(void)
{
	struct pk p;
	struct wire_query q;
	uint8_t r[600];
	pk_query(&p, 0x0102, 0x0100, "a.example", WIRE_TYPE_A, 1, 1);
	CU_ASSERT_EQUAL_FATAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	size_t n = wire_build_error(&q, WIRE_RCODE_REFUSED, WIRE_EDE_BLOCKED, "blocked", r, sizeof(r));
	size_t qend = 12 + 11 + 4;
	static const uint8_t opt[] = {
		0x00, 0x00, 0x29, 0x04, 0xD0, /* root, OPT, 1232 */
		0x00, 0x00, 0x80, 0x00,       /* ext rcode 0, version 0, DO */
		0x00, 0x0D,                   /* RDLENGTH 13 */
		0x00, 0x0F, 0x00, 0x09,       /* EDE, length 9 */
		0x00, 0x0F,                   /* info code 15 Blocked */
		'b', 'l', 'o', 'c', 'k', 'e', 'd',
	};
	CU_ASSERT_EQUAL_FATAL(n, qend + sizeof(opt));
	CU_ASSERT_EQUAL(get16(r + 2), 0x8000 | 0x0100 | 0x0080 | WIRE_RCODE_REFUSED);
	CU_ASSERT_EQUAL(get16(r + 10), 1);
	CU_ASSERT(memcmp(r + qend, opt, sizeof(opt)) == 0);

	/* Without an EDE code: an empty OPT. */
	n = wire_build_error(&q, WIRE_RCODE_SERVFAIL, WIRE_EDE_NONE, "ignored", r, sizeof(r));
	CU_ASSERT_EQUAL(n, qend + 11);
	CU_ASSERT_EQUAL(get16(r + qend + 9), 0);

	/* EDE with no text. */
	n = wire_build_error(&q, WIRE_RCODE_SERVFAIL, WIRE_EDE_NO_REACHABLE_AUTHORITY, NULL, r, sizeof(r));
	CU_ASSERT_EQUAL(n, qend + 17);
	CU_ASSERT_EQUAL(get16(r + qend + 13), 2);
	CU_ASSERT_EQUAL(get16(r + qend + 15), 22);
}

static void test_wire_error_badvers_extended_rcode(void)
{
	struct pk p;
	struct wire_query q;
	uint8_t r[600];
	pk_header(&p, 5, 0x0100, 1, 0, 0, 1);
	pk_name(&p, "example.com");
	pk_u16(&p, 1);
	pk_u16(&p, 1);
	pk_opt(&p, 1232, 2, 1, NULL, 0);
	CU_ASSERT_EQUAL_FATAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_BADVERS);
	size_t n = wire_build_error(&q, WIRE_RCODE_BADVERS, WIRE_EDE_NONE, NULL, r, sizeof(r));
	size_t qend = 12 + 13 + 4;
	CU_ASSERT_EQUAL_FATAL(n, qend + 11);
	CU_ASSERT_EQUAL(get16(r + 2) & 0xF, 0);
	CU_ASSERT_EQUAL(get32(r + qend + 5), 0x01008000u); /* ext rcode 1, version 0, DO */
}

static void test_wire_error_without_question(void)
{
	struct pk p;
	struct wire_query q;
	uint8_t r[600];
	pk_header(&p, 5, 0x0100, 0, 0, 0, 0);
	CU_ASSERT_EQUAL_FATAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_FORMERR);
	CU_ASSERT_EQUAL(wire_build_error(&q, WIRE_RCODE_FORMERR, WIRE_EDE_NONE, NULL, r, sizeof(r)), 12);
	CU_ASSERT_EQUAL(get16(r + 4), 0);
	CU_ASSERT_EQUAL(get16(r + 2) & 0xF, WIRE_RCODE_FORMERR);
}

static void test_wire_error_truncates_long_ede_text_at_utf8_boundary(void)
{
	struct pk p;
	struct wire_query q;
	uint8_t r[2000];
	char text[1000];
	for (int i = 0; i < 300; i++)
		memcpy(text + 3 * i, "\xE2\x82\xAC", 3); /* the euro sign */
	text[900] = '\0';
	pk_query(&p, 1, 0, "a.example", WIRE_TYPE_A, 1, 0);
	CU_ASSERT_EQUAL_FATAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	size_t n = wire_build_error(&q, 2, WIRE_EDE_BLOCKED, text, r, sizeof(r));
	CU_ASSERT_FATAL(n > 0 && n <= 512);
	size_t qend = 12 + 11 + 4;
	size_t tlen = get16(r + qend + 13) - 2;
	CU_ASSERT(tlen > 0 && tlen % 3 == 0);
	CU_ASSERT_EQUAL(n, qend + 17 + tlen);
}

static void test_wire_any_refusal_is_rfc8482_hinfo(void)
{
	struct pk p;
	struct wire_query q;
	uint8_t r[600];
	pk_query(&p, 0x4444, 0x0100, "Example.COM", WIRE_TYPE_ANY, 1, 1);
	CU_ASSERT_EQUAL_FATAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	size_t n = wire_build_any_refusal(&q, r, sizeof(r));
	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT_EQUAL_FATAL(dec_msg(r, n, &dm), 0);
	CU_ASSERT_EQUAL(dm.id, 0x4444);
	CU_ASSERT_EQUAL(dm.flags, 0x8000 | 0x0100 | 0x0080);
	CU_ASSERT_EQUAL(dm.an, 1);
	CU_ASSERT_EQUAL(dm.ar, 1);
	CU_ASSERT(dm.has_opt);
	CU_ASSERT_EQUAL(dm.opt_ttl, 0x8000);
	CU_ASSERT_STRING_EQUAL(dm.qname, "Example.COM.");
	CU_ASSERT_EQUAL(dm.nrr, 1);
	CU_ASSERT_EQUAL(dm.rr[0].type, WIRE_TYPE_HINFO);
	CU_ASSERT_EQUAL(dm.rr[0].ttl, 3600);
	CU_ASSERT_STRING_EQUAL(dm.rr[0].owner, "Example.COM.");
	CU_ASSERT_EQUAL(dm.rr[0].rdlen, 9);
	CU_ASSERT(memcmp(r + dm.rr[0].rdata_off, "\7RFC8482\0", 9) == 0);
	/* The owner is a pointer to the question. */
	size_t owner_at = 12 + 13 + 4;
	CU_ASSERT_EQUAL(get16(r + owner_at), 0xC00C);

	pk_query(&p, 1, 0, "example.com", WIRE_TYPE_ANY, 0, 0);
	CU_ASSERT_EQUAL_FATAL(wire_parse_query(p.b, p.n, &q), WIRE_PARSE_OK);
	n = wire_build_any_refusal(&q, r, sizeof(r));
	CU_ASSERT_EQUAL(n, p.n + 2 + 10 + 9);
	CU_ASSERT_EQUAL(wire_build_any_refusal(&q, r, n - 1), 0);
}

/* ------------------------------------------------------------------ */
/* wire_prepare_forms */

static void test_wire_forms_plain_lacks_rrsig_full_has_it(void)
{
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	const uint8_t *m;
	size_t mlen;
	forms_positive(&q, &flen, &plen, &info);

	CU_ASSERT_EQUAL_FATAL(wire_form_message(full_form, flen, &m, &mlen), 0);
	CU_ASSERT_EQUAL_FATAL(dec_msg(m, mlen, &dm), 0);
	CU_ASSERT_EQUAL(dm.id, 0);
	CU_ASSERT_EQUAL(dm.flags, 0x8180);
	CU_ASSERT_EQUAL(dm.an, 3);
	CU_ASSERT_EQUAL(dm.ns, 1);
	CU_ASSERT_EQUAL(dm.ar, 2);
	CU_ASSERT(!dm.has_opt);
	CU_ASSERT_STRING_EQUAL(dm.qname, "www.example.com.");
	CU_ASSERT_EQUAL(dec_count_type(&dm, WIRE_TYPE_RRSIG), 2);
	const struct drr *sig = dec_find(&dm, WIRE_TYPE_RRSIG, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sig);
	CU_ASSERT_STRING_EQUAL(sig->rtext, "1 example.com. siglen=27");
	/* The signer name must be written out in full (RFC 4034 3.1.7). */
	CU_ASSERT(memcmp(m + sig->rdata_off + 18, "\7example\3com\0", 13) == 0);
	CU_ASSERT_STRING_EQUAL(dec_find(&dm, WIRE_TYPE_NS, 0)->rtext, "ns1.example.com.");
	CU_ASSERT_STRING_EQUAL(dec_find(&dm, WIRE_TYPE_A, 2)->owner, "ns1.example.com.");
	CU_ASSERT_STRING_EQUAL(dec_find(&dm, WIRE_TYPE_A, 0)->rtext, "192.0.2.1");
	CU_ASSERT_STRING_EQUAL(dec_find(&dm, WIRE_TYPE_A, 1)->rtext, "192.0.2.2");

	CU_ASSERT_EQUAL_FATAL(wire_form_message(plain_form, plen, &m, &mlen), 0);
	CU_ASSERT_EQUAL_FATAL(dec_msg(m, mlen, &dm2), 0);
	CU_ASSERT_EQUAL(dm2.an, 2);
	CU_ASSERT_EQUAL(dm2.ns, 1);
	CU_ASSERT_EQUAL(dm2.ar, 1);
	CU_ASSERT_EQUAL(dec_count_type(&dm2, WIRE_TYPE_RRSIG), 0);
	CU_ASSERT_STRING_EQUAL(dec_find(&dm2, WIRE_TYPE_A, 2)->owner, "ns1.example.com.");
	CU_ASSERT(mlen < flen);

	CU_ASSERT_EQUAL(info.rcode, 0);
	CU_ASSERT(!info.negative);
	CU_ASSERT(!info.has_soa);
	CU_ASSERT_EQUAL(info.ttl, 250);
	CU_ASSERT_EQUAL(info.answer_count, 2);
}

static void test_wire_forms_ttl_table_points_at_every_ttl(void)
{
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	const uint8_t *m;
	size_t mlen;
	forms_positive(&q, &flen, &plen, &info);
	CU_ASSERT_EQUAL_FATAL(wire_form_message(full_form, flen, &m, &mlen), 0);
	CU_ASSERT_EQUAL_FATAL(dec_msg(m, mlen, &dm), 0);
	unsigned count = get16(full_form + 2);
	CU_ASSERT_EQUAL_FATAL(count, dm.nrr);
	CU_ASSERT_EQUAL(flen, 4 + 2 * count + mlen);
	CU_ASSERT_EQUAL(get16(full_form), mlen);
	for (unsigned i = 0; i < count; i++) {
		size_t off = get16(full_form + 4 + 2 * i);
		CU_ASSERT_EQUAL(off, dm.rr[i].rdata_off - 6);
	}
}

static void test_wire_forms_compress_names(void)
{
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	const uint8_t *m;
	size_t mlen;
	forms_positive(&q, &flen, &plen, &info);
	CU_ASSERT_EQUAL_FATAL(wire_form_message(plain_form, plen, &m, &mlen), 0);
	/* Header 12 + question 21; then the first answer's owner is a pointer. */
	CU_ASSERT_EQUAL(get16(m + 33), 0xC00C);
	/* Plain: 2 A (2+10+4), NS (2+10+ "ns1"+ptr = 6), glue A (2+10+4). */
	CU_ASSERT_EQUAL(mlen, 33 + 16 + 16 + 18 + 16);
}

static void test_wire_forms_reject_other_question(void)
{
	struct pk up;
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	upstream_positive(&up);
	parse_ok(&q, "www.example.org", WIRE_TYPE_A, 0, 0);
	CU_ASSERT_EQUAL(wire_prepare_forms(up.b, up.n, &q, full_form, &flen, plain_form, &plen, &info), -1);
	parse_ok(&q, "www.example.com", WIRE_TYPE_AAAA, 0, 0);
	CU_ASSERT_EQUAL(wire_prepare_forms(up.b, up.n, &q, full_form, &flen, plain_form, &plen, &info), -1);
	parse_ok(&q, "WWW.EXAMPLE.COM", WIRE_TYPE_A, 0, 0);
	CU_ASSERT_EQUAL(wire_prepare_forms(up.b, up.n, &q, full_form, &flen, plain_form, &plen, &info), 0);
}

static void test_wire_forms_reject_truncated_answers(void)
{
	struct pk up;
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	upstream_positive(&up);
	parse_ok(&q, "www.example.com", WIRE_TYPE_A, 0, 0);
	for (size_t n = 0; n < up.n; n++) {
		/* Cutting inside the OPT is the only cut that may still parse:
		 * no, ARCOUNT says 3, so every cut must fail. */
		CU_ASSERT_EQUAL(wire_prepare_forms(up.b, n, &q, full_form, &flen, plain_form, &plen, &info), -1);
	}
}

static void test_wire_forms_negative_ttl_is_min_of_soa_ttl_and_minimum(void)
{
	struct pk up;
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	const uint8_t *m;
	size_t mlen;

	upstream_negative(&up, 0, 3600, 300);
	parse_ok(&q, "nx.example.com", WIRE_TYPE_A, 0, 0);
	CU_ASSERT_EQUAL_FATAL(wire_prepare_forms(up.b, up.n, &q, full_form, &flen, plain_form, &plen, &info), 0);
	CU_ASSERT(info.negative);
	CU_ASSERT(info.has_soa);
	CU_ASSERT_EQUAL(info.rcode, 0);
	CU_ASSERT_EQUAL(info.ttl, 300);
	CU_ASSERT_EQUAL(info.answer_count, 0);

	CU_ASSERT_EQUAL_FATAL(wire_form_message(plain_form, plen, &m, &mlen), 0);
	CU_ASSERT_EQUAL_FATAL(dec_msg(m, mlen, &dm), 0);
	CU_ASSERT_EQUAL(dm.ns, 1);
	CU_ASSERT_STRING_EQUAL(dm.rr[0].rtext, "ns1.example.com. hostmaster.example.com. 2024010101 7200 3600 1209600 300");
	CU_ASSERT_EQUAL_FATAL(wire_form_message(full_form, flen, &m, &mlen), 0);
	CU_ASSERT_EQUAL_FATAL(dec_msg(m, mlen, &dm), 0);
	CU_ASSERT_EQUAL(dm.ns, 3);
	CU_ASSERT_EQUAL(dec_count_type(&dm, WIRE_TYPE_NSEC), 1);

	upstream_negative(&up, 0, 60, 300);
	CU_ASSERT_EQUAL_FATAL(wire_prepare_forms(up.b, up.n, &q, full_form, &flen, plain_form, &plen, &info), 0);
	CU_ASSERT_EQUAL(info.ttl, 60);
}

static void test_wire_forms_nxdomain_is_negative(void)
{
	struct pk up;
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	const uint8_t *m;
	size_t mlen;
	upstream_negative(&up, WIRE_RCODE_NXDOMAIN, 900, 900);
	parse_ok(&q, "nx.example.com", WIRE_TYPE_A, 0, 0);
	CU_ASSERT_EQUAL_FATAL(wire_prepare_forms(up.b, up.n, &q, full_form, &flen, plain_form, &plen, &info), 0);
	CU_ASSERT(info.negative);
	CU_ASSERT_EQUAL(info.rcode, WIRE_RCODE_NXDOMAIN);
	CU_ASSERT_EQUAL(info.ttl, 900);
	CU_ASSERT_EQUAL_FATAL(wire_form_message(plain_form, plen, &m, &mlen), 0);
	CU_ASSERT_EQUAL(get16(m + 2) & 0xF, WIRE_RCODE_NXDOMAIN);
}

static void test_wire_forms_negative_without_soa_has_ttl_0(void)
{
	struct pk up;
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	pk_header(&up, 0, 0x8183, 1, 0, 0, 0);
	pk_name(&up, "nx.example");
	pk_u16(&up, 1);
	pk_u16(&up, 1);
	parse_ok(&q, "nx.example", WIRE_TYPE_A, 0, 0);
	CU_ASSERT_EQUAL_FATAL(wire_prepare_forms(up.b, up.n, &q, full_form, &flen, plain_form, &plen, &info), 0);
	CU_ASSERT(info.negative);
	CU_ASSERT(!info.has_soa);
	CU_ASSERT_EQUAL(info.ttl, 0);
}

static void test_wire_forms_keep_dnssec_type_when_asked(void)
{
	struct pk up;
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	const uint8_t *m;
	size_t mlen;
	size_t at;
	pk_header(&up, 0, 0x8180, 1, 1, 0, 0);
	pk_name(&up, "example.com");
	pk_u16(&up, WIRE_TYPE_NSEC);
	pk_u16(&up, 1);
	pk_ptr(&up, 12);
	at = pk_rr(&up, WIRE_TYPE_NSEC, 1, 100);
	pk_name(&up, "a.example.com");
	pk_bytes(&up, "\x00\x01\x40", 3);
	pk_rr_end(&up, at);
	parse_ok(&q, "example.com", WIRE_TYPE_NSEC, 0, 0);
	CU_ASSERT_EQUAL_FATAL(wire_prepare_forms(up.b, up.n, &q, full_form, &flen, plain_form, &plen, &info), 0);
	CU_ASSERT_EQUAL_FATAL(wire_form_message(plain_form, plen, &m, &mlen), 0);
	CU_ASSERT_EQUAL(get16(m + 6), 1);
	CU_ASSERT(!info.negative);
	CU_ASSERT_EQUAL(info.ttl, 100);
}

static void test_wire_forms_expand_compressed_srv_target(void)
{
	struct pk up;
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	const uint8_t *m;
	size_t mlen;
	size_t at;
	/* _sip._tcp.example.com SRV, target "sip" + pointer to example.com,
	 * and a CNAME whose target is compressed. */
	pk_header(&up, 0, 0x8180, 1, 2, 0, 0);
	pk_name(&up, "_sip._tcp.example.com"); /* example.com at 12+5+5 = 22 */
	pk_u16(&up, WIRE_TYPE_SRV);
	pk_u16(&up, 1);
	pk_ptr(&up, 12);
	at = pk_rr(&up, WIRE_TYPE_SRV, 1, 60);
	pk_u16(&up, 10);
	pk_u16(&up, 20);
	pk_u16(&up, 5060);
	pk_labels(&up, "sip", 0);
	pk_ptr(&up, 22);
	pk_rr_end(&up, at);
	pk_ptr(&up, 12);
	at = pk_rr(&up, WIRE_TYPE_MX, 1, 60); /* odd in an SRV answer, but fine */
	pk_u16(&up, 5);
	pk_labels(&up, "mx", 0);
	pk_ptr(&up, 22);
	pk_rr_end(&up, at);
	parse_ok(&q, "_sip._tcp.example.com", WIRE_TYPE_SRV, 0, 0);
	CU_ASSERT_EQUAL_FATAL(wire_prepare_forms(up.b, up.n, &q, full_form, &flen, plain_form, &plen, &info), 0);
	CU_ASSERT_EQUAL_FATAL(wire_form_message(plain_form, plen, &m, &mlen), 0);
	CU_ASSERT_EQUAL_FATAL(dec_msg(m, mlen, &dm), 0);
	CU_ASSERT_STRING_EQUAL(dm.rr[0].rtext, "10 20 5060 sip.example.com.");
	CU_ASSERT_EQUAL(dm.rr[0].rdlen, 6 + 17); /* SRV target never compressed */
	CU_ASSERT_STRING_EQUAL(dm.rr[1].rtext, "5 mx.example.com.");
	CU_ASSERT_EQUAL(dm.rr[1].rdlen, 2 + 3 + 2); /* MX target compressed */
}

static void test_wire_forms_reject_malformed_rdata(void)
{
	struct pk up;
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	size_t at;
	/* A CNAME whose RDATA has a byte after the name. */
	pk_header(&up, 0, 0x8180, 1, 1, 0, 0);
	pk_name(&up, "a.example");
	pk_u16(&up, 1);
	pk_u16(&up, 1);
	pk_ptr(&up, 12);
	at = pk_rr(&up, WIRE_TYPE_CNAME, 1, 60);
	pk_name(&up, "b.example");
	pk_u8(&up, 0);
	pk_rr_end(&up, at);
	parse_ok(&q, "a.example", WIRE_TYPE_A, 0, 0);
	CU_ASSERT_EQUAL(wire_prepare_forms(up.b, up.n, &q, full_form, &flen, plain_form, &plen, &info), -1);
	/* An SOA short of its 20 fixed bytes. */
	pk_header(&up, 0, 0x8180, 1, 0, 1, 0);
	pk_name(&up, "a.example");
	pk_u16(&up, 1);
	pk_u16(&up, 1);
	pk_ptr(&up, 14);
	at = pk_rr(&up, WIRE_TYPE_SOA, 1, 60);
	pk_ptr(&up, 14);
	pk_ptr(&up, 14);
	pk_u32(&up, 1);
	pk_rr_end(&up, at);
	CU_ASSERT_EQUAL(wire_prepare_forms(up.b, up.n, &q, full_form, &flen, plain_form, &plen, &info), -1);
	/* A forward pointer in an owner name. */
	pk_header(&up, 0, 0x8180, 1, 1, 0, 0);
	pk_name(&up, "a.example");
	pk_u16(&up, 1);
	pk_u16(&up, 1);
	pk_ptr(&up, 40);
	at = pk_rr(&up, WIRE_TYPE_A, 1, 60);
	pk_u32(&up, 1);
	pk_rr_end(&up, at);
	CU_ASSERT_EQUAL(wire_prepare_forms(up.b, up.n, &q, full_form, &flen, plain_form, &plen, &info), -1);
}

/* ------------------------------------------------------------------ */
/* wire_serve_form */

static size_t serve_plain(const struct wire_query *q, const struct wire_serve *s, size_t plen, size_t cap)
{
	return wire_serve_form(plain_form, plen, q, s, out, cap);
}

static void test_wire_serve_sets_id_flags_and_case(void)
{
	struct wire_query q, c;
	struct wire_answer_info info;
	size_t flen, plen;
	struct pk p;
	forms_positive(&q, &flen, &plen, &info);

	pk_query(&p, 0x7777, 0x0010, "wWw.eXample.cOm", WIRE_TYPE_A, 0, 0); /* CD, no RD */
	CU_ASSERT_EQUAL_FATAL(wire_parse_query(p.b, p.n, &c), WIRE_PARSE_OK);
	struct wire_serve s = serve_default();
	s.set_ad = true;
	size_t n = serve_plain(&c, &s, plen, sizeof(out));
	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT_EQUAL_FATAL(dec_msg(out, n, &dm), 0);
	CU_ASSERT_EQUAL(dm.id, 0x7777);
	CU_ASSERT_EQUAL(dm.flags, 0x8000 | 0x0080 | 0x0020 | 0x0010);
	CU_ASSERT_STRING_EQUAL(dm.qname, "wWw.eXample.cOm.");
	CU_ASSERT(!dm.has_opt);
	CU_ASSERT_EQUAL(dm.an, 2);

	pk_query(&p, 0x8888, 0x0100, "WWW.EXAMPLE.COM", WIRE_TYPE_A, 0, 0);
	CU_ASSERT_EQUAL_FATAL(wire_parse_query(p.b, p.n, &c), WIRE_PARSE_OK);
	s.set_ad = false;
	s.rcode = WIRE_RCODE_SERVFAIL;
	n = serve_plain(&c, &s, plen, sizeof(out));
	CU_ASSERT_EQUAL_FATAL(dec_msg(out, n, &dm), 0);
	CU_ASSERT_EQUAL(dm.flags, 0x8000 | 0x0100 | 0x0080 | WIRE_RCODE_SERVFAIL);
	CU_ASSERT_STRING_EQUAL(dm.qname, "WWW.EXAMPLE.COM.");
}

static void test_wire_serve_patches_ttls_by_age(void)
{
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	forms_positive(&q, &flen, &plen, &info);
	struct wire_serve s = serve_default();
	s.age = 100;
	size_t n = wire_serve_form(full_form, flen, &q, &s, out, sizeof(out));
	CU_ASSERT_EQUAL_FATAL(dec_msg(out, n, &dm), 0);
	CU_ASSERT_EQUAL(dm.rr[0].ttl, 200);
	CU_ASSERT_EQUAL(dm.rr[1].ttl, 200);
	CU_ASSERT_EQUAL(dm.rr[2].ttl, 150); /* RRSIG */
	CU_ASSERT_EQUAL(dm.rr[3].ttl, 86300);
	CU_ASSERT_EQUAL(dm.rr[4].ttl, 3500);
	/* The RRSIG's original TTL field inside RDATA is not touched. */
	CU_ASSERT_EQUAL(get32(out + dm.rr[2].rdata_off + 4), 300);

	s.age = 1000; /* past some TTLs: 0, never a wrap-around */
	n = wire_serve_form(full_form, flen, &q, &s, out, sizeof(out));
	CU_ASSERT_EQUAL_FATAL(dec_msg(out, n, &dm), 0);
	CU_ASSERT_EQUAL(dm.rr[0].ttl, 0);
	CU_ASSERT_EQUAL(dm.rr[2].ttl, 0);
	CU_ASSERT_EQUAL(dm.rr[3].ttl, 85400);
	CU_ASSERT_EQUAL(dm.rr[4].ttl, 2600);

	/* The form itself is never modified. */
	s.age = 0;
	n = wire_serve_form(full_form, flen, &q, &s, out, sizeof(out));
	CU_ASSERT_EQUAL_FATAL(dec_msg(out, n, &dm), 0);
	CU_ASSERT_EQUAL(dm.rr[0].ttl, 300);
}

static void test_wire_clamp_raises_floor_and_caps_ttls(void)
{
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	forms_positive(&q, &flen, &plen, &info);
	/* Stored TTLs are 300, 300, 250 (RRSIG), 86400, 3600. */
	CU_ASSERT_EQUAL_FATAL(wire_form_clamp_ttls(full_form, flen, 3000, 7200), 0);
	struct wire_serve s = serve_default();
	size_t n = wire_serve_form(full_form, flen, &q, &s, out, sizeof(out));
	CU_ASSERT_EQUAL_FATAL(dec_msg(out, n, &dm), 0);
	CU_ASSERT_EQUAL(dm.rr[0].ttl, 3000);
	CU_ASSERT_EQUAL(dm.rr[2].ttl, 3000);
	CU_ASSERT_EQUAL(dm.rr[3].ttl, 7200);
	CU_ASSERT_EQUAL(dm.rr[4].ttl, 3600);
	/* max 0 means no cap. */
	CU_ASSERT_EQUAL_FATAL(wire_form_clamp_ttls(full_form, flen, 0, 0), 0);
	n = wire_serve_form(full_form, flen, &q, &s, out, sizeof(out));
	CU_ASSERT_EQUAL_FATAL(dec_msg(out, n, &dm), 0);
	CU_ASSERT_EQUAL(dm.rr[3].ttl, 7200);
}

static void test_wire_clamp_rejects_bad_form_unchanged(void)
{
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	forms_positive(&q, &flen, &plen, &info);
	uint8_t copy[sizeof full_form];
	memcpy(copy, full_form, flen);
	/* Point the last TTL offset past the message. */
	size_t count = (size_t)full_form[2] << 8 | full_form[3];
	full_form[4 + 2 * (count - 1)] = 0xff;
	full_form[5 + 2 * (count - 1)] = 0xff;
	memcpy(copy + 4 + 2 * (count - 1), full_form + 4 + 2 * (count - 1), 2);
	CU_ASSERT_EQUAL(wire_form_clamp_ttls(full_form, flen, 9999, 0), -1);
	CU_ASSERT_EQUAL(memcmp(copy, full_form, flen), 0);
	CU_ASSERT_EQUAL(wire_form_clamp_ttls(full_form, 3, 1, 0), -1);
}

static void test_wire_serve_ttl_override_sets_every_ttl(void)
{
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	forms_positive(&q, &flen, &plen, &info);
	struct wire_serve s = serve_default();
	s.age = 999999;
	s.ttl_override = 30;
	size_t n = wire_serve_form(full_form, flen, &q, &s, out, sizeof(out));
	CU_ASSERT_EQUAL_FATAL(dec_msg(out, n, &dm), 0);
	for (unsigned i = 0; i < dm.nrr; i++)
		CU_ASSERT_EQUAL(dm.rr[i].ttl, 30);
}

static void test_wire_serve_appends_opt_with_ede(void)
{
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	forms_positive(&q, &flen, &plen, &info); /* q has EDNS with DO */
	struct wire_serve s = serve_default();
	s.ede_code = WIRE_EDE_STALE_ANSWER;
	s.ede_text = "stale";
	size_t n = wire_serve_form(plain_form, plen, &q, &s, out, sizeof(out));
	CU_ASSERT_EQUAL_FATAL(dec_msg(out, n, &dm), 0);
	CU_ASSERT(dm.has_opt);
	CU_ASSERT_EQUAL(dm.ar, 2);
	CU_ASSERT_EQUAL(dm.opt_size, WIRE_EDNS_PAYLOAD);
	CU_ASSERT_EQUAL(dm.opt_ttl, 0x8000);
	CU_ASSERT_EQUAL_FATAL(dm.opt_rdlen, 4 + 2 + 5);
	CU_ASSERT(memcmp(out + dm.opt_rdata_off, "\x00\x0F\x00\x07\x00\x03stale", 11) == 0);

	/* Clients without EDNS get neither OPT nor EDE. */
	struct wire_query c;
	parse_ok(&c, "www.example.com", WIRE_TYPE_A, 0, 0);
	n = wire_serve_form(plain_form, plen, &c, &s, out, sizeof(out));
	CU_ASSERT_EQUAL_FATAL(dec_msg(out, n, &dm), 0);
	CU_ASSERT(!dm.has_opt);
	CU_ASSERT_EQUAL(dm.ar, 1);
}

static void test_wire_serve_truncates_over_limit(void)
{
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	forms_positive(&q, &flen, &plen, &info);
	const uint8_t *m;
	size_t mlen;
	CU_ASSERT_EQUAL_FATAL(wire_form_message(full_form, flen, &m, &mlen), 0);
	struct wire_serve s = serve_default();
	s.limit = mlen + 11 - 1; /* one byte short of message + OPT */
	size_t n = wire_serve_form(full_form, flen, &q, &s, out, sizeof(out));
	CU_ASSERT_EQUAL_FATAL(dec_msg(out, n, &dm), 0);
	CU_ASSERT(dm.flags & 0x0200);
	CU_ASSERT_EQUAL(dm.an, 0);
	CU_ASSERT_EQUAL(dm.ns, 0);
	CU_ASSERT_EQUAL(dm.ar, 1);
	CU_ASSERT(dm.has_opt);
	CU_ASSERT_EQUAL(dm.id, 0x1234);
	CU_ASSERT_STRING_EQUAL(dm.qname, "WwW.ExAmple.COM.");
	CU_ASSERT_EQUAL(n, 12 + 17 + 4 + 11);

	s.limit = mlen + 11; /* exactly fits */
	n = wire_serve_form(full_form, flen, &q, &s, out, sizeof(out));
	CU_ASSERT_EQUAL(n, mlen + 11);
	CU_ASSERT_EQUAL(get16(out + 2) & 0x0200, 0);
}

static void test_wire_serve_never_exceeds_limit_or_cap(void)
{
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	forms_positive(&q, &flen, &plen, &info);
	struct wire_serve s = serve_default();
	s.ede_code = WIRE_EDE_STALE_ANSWER;
	s.ede_text = "served stale because every authority was unreachable";
	for (size_t limit = 100; limit < 400; limit++) {
		s.limit = limit;
		size_t n = wire_serve_form(full_form, flen, &q, &s, out, sizeof(out));
		CU_ASSERT(n > 0 && n <= limit);
		CU_ASSERT_EQUAL(dec_msg(out, n, &dm), 0);
	}
	/* A small cap: 0 and not a byte past it (ASan would see). */
	static uint8_t small[40];
	s.limit = 65535;
	for (size_t cap = 0; cap <= sizeof(small); cap++) {
		uint8_t *heap = malloc(cap ? cap : 1);
		size_t n = wire_serve_form(full_form, flen, &q, &s, heap, cap);
		CU_ASSERT(n == 0);
		free(heap);
	}
}

static void test_wire_serve_rejects_malformed_forms(void)
{
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;
	forms_positive(&q, &flen, &plen, &info);
	struct wire_serve s = serve_default();
	static uint8_t bad[WIRE_FORM_MAX];

	CU_ASSERT_EQUAL(wire_serve_form(full_form, 0, &q, &s, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(wire_serve_form(full_form, 3, &q, &s, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(wire_serve_form(full_form, flen - 1, &q, &s, out, sizeof(out)), 0);

	/* A TTL offset past the message. */
	memcpy(bad, full_form, flen);
	bad[4] = 0xFF;
	CU_ASSERT_EQUAL(wire_serve_form(bad, flen, &q, &s, out, sizeof(out)), 0);
	/* A TTL offset in the header. */
	memcpy(bad, full_form, flen);
	bad[4] = 0;
	bad[5] = 2;
	CU_ASSERT_EQUAL(wire_serve_form(bad, flen, &q, &s, out, sizeof(out)), 0);
	/* A TTL count larger than the form. */
	memcpy(bad, full_form, flen);
	bad[2] = 0x7F;
	CU_ASSERT_EQUAL(wire_serve_form(bad, flen, &q, &s, out, sizeof(out)), 0);

	/* A form for another name. */
	struct wire_query other;
	parse_ok(&other, "www.example.net", WIRE_TYPE_A, 1, 0);
	CU_ASSERT_EQUAL(wire_serve_form(full_form, flen, &other, &s, out, sizeof(out)), 0);
	parse_ok(&other, "ww.example.com", WIRE_TYPE_A, 1, 0);
	CU_ASSERT_EQUAL(wire_serve_form(full_form, flen, &other, &s, out, sizeof(out)), 0);

	const uint8_t *m;
	size_t mlen;
	CU_ASSERT_EQUAL(wire_form_message(full_form, 2, &m, &mlen), -1);
	CU_ASSERT_EQUAL(wire_form_message(full_form, flen, &m, &mlen), 0);
	CU_ASSERT_PTR_EQUAL(m, full_form + 4 + 2 * get16(full_form + 2));
}

/* ------------------------------------------------------------------ */
/* Presentation names */

static void test_wire_name_from_text_parses_and_lowercases(void)
{
	uint8_t n[WIRE_MAX_NAME];
	CU_ASSERT_EQUAL(wire_name_from_text("www.Example.COM", n), 17);
	CU_ASSERT(memcmp(n, "\3www\7example\3com\0", 17) == 0);
	CU_ASSERT_EQUAL(wire_name_from_text("www.example.com.", n), 17);
	CU_ASSERT_EQUAL(wire_name_from_text(".", n), 1);
	CU_ASSERT_EQUAL(n[0], 0);
	CU_ASSERT_EQUAL(wire_name_from_text("a\\.b.c", n), 7);
	CU_ASSERT(memcmp(n, "\3a.b\1c\0", 7) == 0);
	CU_ASSERT_EQUAL(wire_name_from_text("\\065\\032x", n), 5);
	CU_ASSERT(memcmp(n, "\3a x\0", 5) == 0);
}

static void test_wire_name_from_text_rejects_bad_names(void)
{
	uint8_t n[WIRE_MAX_NAME];
	char t[600];
	CU_ASSERT_EQUAL(wire_name_from_text("", n), 0);
	CU_ASSERT_EQUAL(wire_name_from_text("a..b", n), 0);
	CU_ASSERT_EQUAL(wire_name_from_text(".a", n), 0);
	CU_ASSERT_EQUAL(wire_name_from_text("a..", n), 0);
	CU_ASSERT_EQUAL(wire_name_from_text("a\\", n), 0);
	CU_ASSERT_EQUAL(wire_name_from_text("a\\25", n), 0);
	CU_ASSERT_EQUAL(wire_name_from_text("a\\256", n), 0);
	memset(t, 'a', 64);
	t[64] = '\0';
	CU_ASSERT_EQUAL(wire_name_from_text(t, n), 0);
	t[63] = '\0';
	CU_ASSERT_EQUAL(wire_name_from_text(t, n), 65);
	/* 3 x 63 + 61: 255 with the root, the limit; one more byte is too long. */
	size_t o = 0;
	for (int i = 0; i < 3; i++) {
		memset(t + o, 'a', 63);
		o += 63;
		t[o++] = '.';
	}
	memset(t + o, 'b', 61);
	o += 61;
	t[o] = '\0';
	CU_ASSERT_EQUAL(wire_name_from_text(t, n), 255);
	t[o] = 'b';
	t[o + 1] = '\0';
	CU_ASSERT_EQUAL(wire_name_from_text(t, n), 0);
	t[o] = '.';
	t[o + 1] = 'c';
	t[o + 2] = '\0';
	CU_ASSERT_EQUAL(wire_name_from_text(t, n), 0);
}

static void test_wire_name_to_text_escapes_and_round_trips(void)
{
	char t[1100];
	uint8_t n[WIRE_MAX_NAME];
	CU_ASSERT_EQUAL(wire_name_to_text((const uint8_t *)"\3www\7example\3com", 17, t, sizeof(t)), 16);
	CU_ASSERT_STRING_EQUAL(t, "www.example.com.");
	CU_ASSERT_EQUAL(wire_name_to_text((const uint8_t *)"", 1, t, sizeof(t)), 1);
	CU_ASSERT_STRING_EQUAL(t, ".");
	static const uint8_t odd[] = { 4, 'a', '.', ' ', 0xFF, 0 };
	CU_ASSERT_EQUAL(wire_name_to_text(odd, sizeof(odd), t, sizeof(t)), 12);
	CU_ASSERT_STRING_EQUAL(t, "a\\.\\032\\255.");
	CU_ASSERT_EQUAL(wire_name_from_text(t, n), sizeof(odd));
	CU_ASSERT(memcmp(n, odd, sizeof(odd)) == 0);
	/* Does not fit: 0, and the buffer end is respected. */
	CU_ASSERT_EQUAL(wire_name_to_text((const uint8_t *)"\3www\7example\3com", 17, t, 16), 0);
	CU_ASSERT_EQUAL(wire_name_to_text((const uint8_t *)"\3www\7example\3com", 17, t, 17), 16);
	/* Malformed: no root label, a label past the end, bytes after root. */
	CU_ASSERT_EQUAL(wire_name_to_text((const uint8_t *)"\3www", 4, t, sizeof(t)), 0);
	CU_ASSERT_EQUAL(wire_name_to_text((const uint8_t *)"\5ww", 4, t, sizeof(t)), 0);
	CU_ASSERT_EQUAL(wire_name_to_text((const uint8_t *)"\1a\0\0", 4, t, sizeof(t)), 0);
	CU_ASSERT_EQUAL(wire_name_to_text((const uint8_t *)"\100aaaa", 6, t, sizeof(t)), 0);
}

/* ------------------------------------------------------------------ */
/* Robustness: random and mutated input must never crash (ASan/UBSan see
 * any out-of-bounds access); outputs that succeed must decode. */

static uint64_t rng_state;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13; /* xorshift64 */
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 32);
}

static void exercise_query(const uint8_t *b, size_t n)
{
	struct wire_query q;
	uint8_t r[700];
	enum wire_parse_status st = wire_parse_query(b, n, &q);
	if (st == WIRE_PARSE_DROP)
		return;
	size_t len = wire_build_error(&q, st == WIRE_PARSE_BADVERS ? 16 : 1, WIRE_EDE_BLOCKED, "x", r, sizeof(r));
	CU_ASSERT(len > 0 && len <= sizeof(r));
	if (len && dec_msg(r, len, &dm) != 0)
		CU_FAIL("error reply does not decode");
	if (st == WIRE_PARSE_OK) {
		len = wire_build_any_refusal(&q, r, sizeof(r));
		if (len && dec_msg(r, len, &dm) != 0)
			CU_FAIL("ANY refusal does not decode");
	}
}

static void exercise_forms(const uint8_t *b, size_t n, const struct wire_query *q)
{
	struct wire_answer_info info;
	size_t flen, plen;
	if (wire_prepare_forms(b, n, q, full_form, &flen, plain_form, &plen, &info) != 0) {
		struct wire_serve s = serve_default();
		(void)wire_serve_form(b, n, q, &s, out, sizeof(out)); /* raw bytes as a form */
		return;
	}
	const uint8_t *m;
	size_t mlen;
	if (wire_form_message(full_form, flen, &m, &mlen) != 0 || dec_msg(m, mlen, &dm) != 0) {
		CU_FAIL("full form does not decode");
		if (getenv("WIRE_DUMP")) {
			for (size_t i = 0; i < n; i++)
				fprintf(stderr, "%02x", b[i]);
			fprintf(stderr, "\n");
			for (size_t i = 0; i < mlen; i++)
				fprintf(stderr, "%02x", m[i]);
			fprintf(stderr, "\n");
		}
	}
	if (wire_form_message(plain_form, plen, &m, &mlen) != 0 || dec_msg(m, mlen, &dm) != 0)
		CU_FAIL("plain form does not decode");
	struct wire_serve s = serve_default();
	s.age = rng() % 4000;
	s.limit = 512 + rng() % 1000;
	size_t len = wire_serve_form(full_form, flen, q, &s, out, sizeof(out));
	if (len == 0 || len > s.limit || dec_msg(out, len, &dm) != 0)
		CU_FAIL("served full form is wrong");
	len = wire_serve_form(plain_form, plen, q, &s, out, sizeof(out));
	if (len == 0 || len > s.limit || dec_msg(out, len, &dm) != 0)
		CU_FAIL("served plain form is wrong");
}

static void test_wire_parse_survives_random_packets(void)
{
	static uint8_t b[1024];
	struct pk seed;
	rng_state = 0x9E3779B97F4A7C15ull;
	for (int i = 0; i < 20000; i++) {
		size_t n = rng() % sizeof(b);
		for (size_t k = 0; k < n; k++)
			b[k] = (uint8_t)rng();
		b[2] &= 0x7F; /* mostly not responses, to reach the body */
		exercise_query(b, n);
	}
	pk_query(&seed, 1, 0x0100, "www.example.com", WIRE_TYPE_A, 1, 1);
	for (int i = 0; i < 20000; i++) {
		memcpy(b, seed.b, seed.n);
		unsigned flips = 1 + rng() % 4;
		for (unsigned k = 0; k < flips; k++)
			b[rng() % seed.n] ^= (uint8_t)(1u << (rng() % 8));
		exercise_query(b, seed.n - (rng() % 4 == 0 ? rng() % seed.n : 0));
	}
}

static void test_wire_forms_survive_mutated_answers(void)
{
	static uint8_t b[8192];
	struct pk up;
	struct wire_query q;
	rng_state = 0x0123456789ABCDEFull;

	for (int which = 0; which < 2; which++) {
		if (which == 0) {
			upstream_positive(&up);
			parse_ok(&q, "www.example.com", WIRE_TYPE_A, 1, 1);
		} else {
			upstream_negative(&up, 3, 3600, 300);
			parse_ok(&q, "nx.example.com", WIRE_TYPE_A, 1, 0);
		}
		size_t qend = 12 + q.qname_len + 4;
		exercise_forms(up.b, up.n, &q);
		for (int i = 0; i < 10000; i++) {
			memcpy(b, up.b, up.n);
			unsigned flips = 1 + rng() % 6;
			for (unsigned k = 0; k < flips; k++) {
				/* Mostly after the question, else it rarely matches. */
				size_t at = rng() % 8 ? qend + rng() % (up.n - qend) : rng() % up.n;
				if (rng() % 2)
					b[at] ^= (uint8_t)(1u << (rng() % 8));
				else
					b[at] = (uint8_t)rng();
			}
			size_t n = up.n;
			if (rng() % 4 == 0)
				n = rng() % up.n;
			else if (rng() % 8 == 0) {
				size_t extra = rng() % 200;
				for (size_t k = 0; k < extra; k++)
					b[n + k] = (uint8_t)rng();
				n += extra;
			}
			exercise_forms(b, n, &q);
		}
	}
	for (int i = 0; i < 5000; i++) {
		size_t n = rng() % 600;
		for (size_t k = 0; k < n; k++)
			b[k] = (uint8_t)rng();
		exercise_forms(b, n, &q);
	}
}

/* ------------------------------------------------------------------ */

static void test_wire_type_names_and_parse(void)
{
	char buf[16];
	CU_ASSERT_STRING_EQUAL(wire_type_name(1, buf, sizeof buf), "A");
	CU_ASSERT_STRING_EQUAL(wire_type_name(15, buf, sizeof buf), "MX");
	CU_ASSERT_STRING_EQUAL(wire_type_name(28, buf, sizeof buf), "AAAA");
	CU_ASSERT_STRING_EQUAL(wire_type_name(65534, buf, sizeof buf), "TYPE65534");
	CU_ASSERT_EQUAL(wire_type_parse("mx"), 15);
	CU_ASSERT_EQUAL(wire_type_parse("Https"), 65);
	CU_ASSERT_EQUAL(wire_type_parse("TYPE99"), 99);
	CU_ASSERT_EQUAL(wire_type_parse("type65535"), 65535);
	CU_ASSERT_EQUAL(wire_type_parse("TYPE65536"), -1);
	CU_ASSERT_EQUAL(wire_type_parse("TYPE"), -1);
	CU_ASSERT_EQUAL(wire_type_parse("TYPE-1"), -1);
	CU_ASSERT_EQUAL(wire_type_parse("TYPE1x"), -1);
	CU_ASSERT_EQUAL(wire_type_parse("NOPE"), -1);
	CU_ASSERT_EQUAL(wire_type_parse(NULL), -1);
}

static void test_wire_rcode_names_and_parse(void)
{
	char buf[16];
	CU_ASSERT_STRING_EQUAL(wire_rcode_name(0, buf, sizeof buf), "NOERROR");
	CU_ASSERT_STRING_EQUAL(wire_rcode_name(2, buf, sizeof buf), "SERVFAIL");
	CU_ASSERT_STRING_EQUAL(wire_rcode_name(3, buf, sizeof buf), "NXDOMAIN");
	CU_ASSERT_STRING_EQUAL(wire_rcode_name(5, buf, sizeof buf), "REFUSED");
	CU_ASSERT_STRING_EQUAL(wire_rcode_name(11, buf, sizeof buf), "RCODE11");
	CU_ASSERT_EQUAL(wire_rcode_parse("nxdomain"), 3);
	CU_ASSERT_EQUAL(wire_rcode_parse("NOERROR"), 0);
	CU_ASSERT_EQUAL(wire_rcode_parse("RCODE11"), 11);
	CU_ASSERT_EQUAL(wire_rcode_parse("RCODE4096"), -1);
	CU_ASSERT_EQUAL(wire_rcode_parse("OK"), -1);
}

int main(void)
{
	static const struct unit_test tests[] = {
		T(test_wire_parse_accepts_plain_query),
		T(test_wire_clamp_raises_floor_and_caps_ttls),
		T(test_wire_clamp_rejects_bad_form_unchanged),
		T(test_wire_parse_reads_edns_and_do),
		T(test_wire_parse_udp_size_at_least_512),
		T(test_wire_parse_lowercases_qname_keeps_case),
		T(test_wire_parse_rejects_short_header),
		T(test_wire_parse_drops_responses),
		T(test_wire_parse_formerr_on_qdcount_0),
		T(test_wire_parse_formerr_on_qdcount_2),
		T(test_wire_parse_notimp_on_opcode),
		T(test_wire_parse_badvers_on_edns_version_1),
		T(test_wire_parse_formerr_on_two_opts),
		T(test_wire_parse_formerr_on_truncated_option),
		T(test_wire_parse_formerr_on_opt_rdata_past_end),
		T(test_wire_parse_formerr_on_opt_with_owner),
		T(test_wire_parse_formerr_on_compression_loop_in_question),
		T(test_wire_parse_formerr_on_pointer_loop_in_answer),
		T(test_wire_parse_formerr_on_long_label),
		T(test_wire_parse_formerr_on_long_name),
		T(test_wire_parse_formerr_on_truncated_question),
		T(test_wire_parse_walks_answer_records_and_ignores_trailing_bytes),
		T(test_wire_parse_formerr_on_missing_records),
		T(test_wire_parse_accepts_axfr),
		T(test_wire_parse_accepts_root_question),
		T(test_wire_udp_limit_bounds),
		T(test_wire_error_without_edns),
		T(test_wire_error_with_edns_ede_bytes_exact),
		T(test_wire_error_badvers_extended_rcode),
		T(test_wire_error_without_question),
		T(test_wire_error_truncates_long_ede_text_at_utf8_boundary),
		T(test_wire_any_refusal_is_rfc8482_hinfo),
		T(test_wire_forms_plain_lacks_rrsig_full_has_it),
		T(test_wire_forms_ttl_table_points_at_every_ttl),
		T(test_wire_forms_compress_names),
		T(test_wire_forms_reject_other_question),
		T(test_wire_forms_reject_truncated_answers),
		T(test_wire_forms_negative_ttl_is_min_of_soa_ttl_and_minimum),
		T(test_wire_forms_nxdomain_is_negative),
		T(test_wire_forms_negative_without_soa_has_ttl_0),
		T(test_wire_forms_keep_dnssec_type_when_asked),
		T(test_wire_forms_expand_compressed_srv_target),
		T(test_wire_forms_reject_malformed_rdata),
		T(test_wire_serve_sets_id_flags_and_case),
		T(test_wire_serve_patches_ttls_by_age),
		T(test_wire_serve_ttl_override_sets_every_ttl),
		T(test_wire_serve_appends_opt_with_ede),
		T(test_wire_serve_truncates_over_limit),
		T(test_wire_serve_never_exceeds_limit_or_cap),
		T(test_wire_serve_rejects_malformed_forms),
		T(test_wire_name_from_text_parses_and_lowercases),
		T(test_wire_name_from_text_rejects_bad_names),
		T(test_wire_name_to_text_escapes_and_round_trips),
		T(test_wire_type_names_and_parse),
		T(test_wire_rcode_names_and_parse),
		T(test_wire_parse_survives_random_packets),
		T(test_wire_forms_survive_mutated_answers),
	};
	return unit_run("wire", NULL, NULL, tests, UNIT_COUNT(tests));
}
