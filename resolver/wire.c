/* wire.c -- DNS message parsing and building on byte buffers.
 *
 * Everything here runs on untrusted bytes, so every read is checked against
 * the length it was given, compression pointers may only point backwards
 * (which makes loops impossible) and names are capped at 255 bytes with
 * labels of at most 63.  Nothing allocates: scratch space is on the stack.
 */
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Header flag bits (RFC 1035 4.1.1, RFC 4035 for AD/CD). */
#define F_QR 0x8000u
#define F_OPCODE 0x7800u
#define F_AA 0x0400u
#define F_TC 0x0200u
#define F_RD 0x0100u
#define F_RA 0x0080u
#define F_AD 0x0020u
#define F_CD 0x0010u
#define F_RCODE 0x000Fu

#define EDNS_DO 0x8000u
#define EDNS_OPT_EDE 15

/* A legitimate name has at most 127 labels, so more hops than that can only
 * be an attack; backward-only pointers already bound it, this is a seatbelt. */
#define MAX_HOPS 128

/* EDE text is a diagnostic: keep it short enough that an error reply with
 * the longest question still fits comfortably in 512 bytes. */
#define EDE_TEXT_MAX 160

/* Offsets a compression pointer can express (14 bits). */
#define PTR_MAX_OFFSET 0x3FFFu

/* Names remembered per built message for compression.  Past this, names are
 * written uncompressed, which is still correct. */
#define CTAB_MAX 1024

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint8_t lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + ('a' - 'A')) : c;
}

/* Case-insensitive byte comparison of two wire names of the same length.
 * Label length bytes are < 64 and so are never changed by lower(). */
static bool name_eq_nocase(const uint8_t *a, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

/* Read the possibly compressed name at *pos of msg[0..len) into out
 * (WIRE_MAX_NAME bytes, may be NULL) and advance *pos past its in-line part.
 * Each pointer must point strictly before the start of the label run that
 * contains it, so the walk always terminates.  Returns 0 or -1. */
static int name_read(const uint8_t *msg, size_t len, size_t *pos, uint8_t *out, size_t *out_len)
{
	size_t p = *pos, seg = *pos, end = 0, n = 0;
	unsigned hops = 0;

	for (;;) {
		if (p >= len)
			return -1;
		uint8_t c = msg[p];
		if ((c & 0xC0) == 0xC0) {
			if (p + 1 >= len)
				return -1;
			size_t t = (size_t)(c & 0x3F) << 8 | msg[p + 1];
			if (t >= seg || t < WIRE_HEADER_LEN || ++hops > MAX_HOPS)
				return -1;
			if (hops == 1)
				end = p + 2;
			p = seg = t;
			continue;
		}
		if (c > 63) /* 0x40 and 0x80 label types are obsolete or unassigned */
			return -1;
		if (n + 1 + c > WIRE_MAX_NAME || p + 1 + c > len)
			return -1;
		if (out)
			memcpy(out + n, msg + p, 1 + (size_t)c);
		n += 1 + (size_t)c;
		p += 1 + (size_t)c;
		if (c == 0)
			break;
	}
	*pos = hops ? end : p;
	if (out_len)
		*out_len = n;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Queries */

/* Parse the uncompressed question name at *pos.  Queries never need
 * compression in the question, so a pointer there is malformed. */
static int qname_read(const uint8_t *pkt, size_t len, size_t *pos, struct wire_query *q)
{
	size_t p = *pos, n = 0;

	for (;;) {
		if (p >= len)
			return -1;
		uint8_t c = pkt[p];
		if (c > 63)
			return -1;
		if (n + 1 + c > WIRE_MAX_NAME || p + 1 + c > len)
			return -1;
		q->qname_case[n] = c;
		q->qname[n] = c;
		for (size_t i = 1; i <= c; i++) {
			q->qname_case[n + i] = pkt[p + i];
			q->qname[n + i] = lower(pkt[p + i]);
		}
		n += 1 + (size_t)c;
		p += 1 + (size_t)c;
		if (c == 0)
			break;
	}
	q->qname_len = (uint16_t)n;
	*pos = p;
	return 0;
}

/* Check the options inside an OPT RDATA: each must fit exactly. */
static int edns_options_ok(const uint8_t *rd, size_t rdlen)
{
	size_t p = 0;

	while (p < rdlen) {
		if (rdlen - p < 4)
			return -1;
		size_t olen = rd16(rd + p + 2);
		if (olen > rdlen - p - 4)
			return -1;
		p += 4 + olen;
	}
	return 0;
}

/* Walk count RRs at *pos; in the additional section (is_ar) pick up the
 * OPT record into q.  Returns a parse status. */
static enum wire_parse_status rrs_walk(const uint8_t *pkt, size_t len, size_t *pos, unsigned count,
                                       bool is_ar, struct wire_query *q, bool *badvers)
{
	uint8_t owner[WIRE_MAX_NAME];
	size_t olen;

	for (unsigned i = 0; i < count; i++) {
		if (name_read(pkt, len, pos, owner, &olen) < 0)
			return WIRE_PARSE_FORMERR;
		if (len - *pos < 10)
			return WIRE_PARSE_FORMERR;
		const uint8_t *f = pkt + *pos;
		uint16_t type = rd16(f);
		size_t rdlen = rd16(f + 8);
		if (rdlen > len - *pos - 10)
			return WIRE_PARSE_FORMERR;
		if (type == WIRE_TYPE_OPT) {
			/* RFC 6891 6.1.1: only in the additional section, at the
			 * root, at most once. */
			if (!is_ar || olen != 1 || q->has_edns)
				return WIRE_PARSE_FORMERR;
			q->has_edns = true;
			uint16_t size = rd16(f + 2);
			q->udp_size = size < WIRE_MIN_UDP ? WIRE_MIN_UDP : size;
			q->edns_version = f[5];
			q->do_bit = (rd16(f + 6) & EDNS_DO) != 0;
			if (q->edns_version > 0)
				*badvers = true; /* options of a future version are not ours to judge */
			else if (edns_options_ok(f + 10, rdlen) < 0)
				return WIRE_PARSE_FORMERR;
		}
		*pos += 10 + rdlen;
	}
	return WIRE_PARSE_OK;
}

enum wire_parse_status wire_parse_query(const uint8_t *pkt, size_t len, struct wire_query *q)
{
	memset(q, 0, sizeof(*q));
	q->udp_size = WIRE_MIN_UDP;
	if (pkt == NULL || len < WIRE_HEADER_LEN)
		return WIRE_PARSE_DROP;

	uint16_t flags = rd16(pkt + 2);
	if (flags & F_QR)
		return WIRE_PARSE_DROP; /* never answer a response: reflection loops */
	q->id = rd16(pkt);
	q->opcode = (uint8_t)((flags & F_OPCODE) >> 11);
	q->rd = (flags & F_RD) != 0;
	q->ad = (flags & F_AD) != 0;
	q->cd = (flags & F_CD) != 0;

	unsigned qd = rd16(pkt + 4), an = rd16(pkt + 6), ns = rd16(pkt + 8), ar = rd16(pkt + 10);
	enum wire_parse_status st = WIRE_PARSE_OK;
	bool badvers = false;
	size_t pos = WIRE_HEADER_LEN;

	/* Other opcodes have sections of their own shape (UPDATE, DSO): parse
	 * what we can for the echo, but the answer is NOTIMP whatever we find. */
	bool notimp = q->opcode != 0;

	if (qd == 0) {
		st = WIRE_PARSE_FORMERR; /* no question to answer, but look for EDNS */
	} else {
		if (qname_read(pkt, len, &pos, q) < 0 || len - pos < 4)
			return notimp ? WIRE_PARSE_NOTIMP : WIRE_PARSE_FORMERR;
		q->qtype = rd16(pkt + pos);
		q->qclass = rd16(pkt + pos + 2);
		pos += 4;
		q->has_question = true;
	}
	if (qd > 1) {
		st = WIRE_PARSE_FORMERR;
		/* Still skip the extra questions to find the OPT for the reply. */
		for (unsigned i = 1; i < qd; i++) {
			if (name_read(pkt, len, &pos, NULL, NULL) < 0 || len - pos < 4)
				return notimp ? WIRE_PARSE_NOTIMP : st;
			pos += 4;
		}
	}
	enum wire_parse_status r = rrs_walk(pkt, len, &pos, an + ns, false, q, &badvers);
	if (r == WIRE_PARSE_OK)
		r = rrs_walk(pkt, len, &pos, ar, true, q, &badvers);
	if (notimp)
		return WIRE_PARSE_NOTIMP;
	if (r != WIRE_PARSE_OK)
		return r;
	if (st != WIRE_PARSE_OK)
		return st;
	return badvers ? WIRE_PARSE_BADVERS : WIRE_PARSE_OK;
}

size_t wire_udp_limit(const struct wire_query *q)
{
	if (!q->has_edns || q->udp_size <= WIRE_MIN_UDP)
		return WIRE_MIN_UDP;
	return q->udp_size > WIRE_EDNS_PAYLOAD ? WIRE_EDNS_PAYLOAD : q->udp_size;
}

/* ------------------------------------------------------------------ */
/* OPT records we send */

/* How many bytes of ede_text we send: at most EDE_TEXT_MAX, cut at a UTF-8
 * character boundary so the text stays valid UTF-8 (RFC 8914 2). */
static size_t ede_text_len(int ede_code, const char *text)
{
	if (ede_code < 0 || ede_code > 0xFFFF || text == NULL)
		return 0;
	size_t n = 0;
	while (n <= EDE_TEXT_MAX && text[n] != '\0')
		n++;
	if (n > EDE_TEXT_MAX) {
		n = EDE_TEXT_MAX;
		while (n > 0 && ((uint8_t)text[n] & 0xC0) == 0x80)
			n--;
	}
	return n;
}

static bool ede_wanted(int ede_code)
{
	return ede_code >= 0 && ede_code <= 0xFFFF;
}

static size_t opt_size(int ede_code, size_t text_len)
{
	return 11 + (ede_wanted(ede_code) ? 6 + text_len : 0);
}

/* Write our OPT record (its size is opt_size()): root owner, our payload
 * size, the extended rcode bits, version 0, DO echoed, optional EDE. */
static void opt_write(uint8_t *p, int rcode, bool do_bit, int ede_code, const char *text, size_t text_len)
{
	p[0] = 0;
	wr16(p + 1, WIRE_TYPE_OPT);
	wr16(p + 3, WIRE_EDNS_PAYLOAD);
	uint32_t ttl = ((uint32_t)(rcode >> 4) & 0xFFu) << 24;
	if (do_bit)
		ttl |= EDNS_DO;
	wr32(p + 5, ttl);
	if (!ede_wanted(ede_code)) {
		wr16(p + 9, 0);
		return;
	}
	wr16(p + 9, (uint16_t)(6 + text_len));
	wr16(p + 11, EDNS_OPT_EDE);
	wr16(p + 13, (uint16_t)(2 + text_len));
	wr16(p + 15, (uint16_t)ede_code);
	if (text_len)
		memcpy(p + 17, text, text_len);
}

/* Header of a reply to q with no records counted yet. */
static void reply_header(const struct wire_query *q, int rcode, uint8_t *out)
{
	uint16_t flags = F_QR | F_RA | (uint16_t)(((unsigned)q->opcode & 0xF) << 11) | ((unsigned)rcode & F_RCODE);
	if (q->rd)
		flags |= F_RD;
	if (q->cd)
		flags |= F_CD;
	wr16(out, q->id);
	wr16(out + 2, flags);
	wr16(out + 4, q->has_question ? 1 : 0);
	wr16(out + 6, 0);
	wr16(out + 8, 0);
	wr16(out + 10, 0);
}

static bool question_ok(const struct wire_query *q)
{
	return q->has_question && q->qname_len >= 1 && q->qname_len <= WIRE_MAX_NAME;
}

size_t wire_build_error(const struct wire_query *q, int rcode, int ede_code,
                        const char *ede_text, uint8_t *out, size_t cap)
{
	bool has_q = question_ok(q);
	size_t tlen = ede_text_len(ede_code, ede_text);
	size_t need = WIRE_HEADER_LEN + (has_q ? q->qname_len + 4u : 0) + (q->has_edns ? opt_size(ede_code, tlen) : 0);

	if (out == NULL || need > cap)
		return 0;
	reply_header(q, rcode, out);
	if (!has_q)
		wr16(out + 4, 0);
	size_t p = WIRE_HEADER_LEN;
	if (has_q) {
		memcpy(out + p, q->qname_case, q->qname_len);
		p += q->qname_len;
		wr16(out + p, q->qtype);
		wr16(out + p + 2, q->qclass);
		p += 4;
	}
	if (q->has_edns) {
		wr16(out + 10, 1);
		opt_write(out + p, rcode, q->do_bit, ede_code, ede_text, tlen);
		p += opt_size(ede_code, tlen);
	}
	return p;
}

size_t wire_build_truncated(const struct wire_query *q, uint8_t *out, size_t cap)
{
	size_t n = wire_build_error(q, WIRE_RCODE_NOERROR, WIRE_EDE_NONE, NULL, out, cap);
	if (n > 0)
		out[2] |= 0x02; /* TC */
	return n;
}

size_t wire_build_synth(const struct wire_query *q, int rcode, const struct wire_synth_rr *rrs, size_t count,
                        int ede_code, const char *ede_text, size_t limit, uint8_t *out, size_t cap)
{
	if (!question_ok(q) || out == NULL)
		return 0;
	int ede = q->has_edns ? ede_code : WIRE_EDE_NONE;
	size_t tlen = ede_text_len(ede, ede_text);
	size_t opt = q->has_edns ? opt_size(ede, tlen) : 0;
	size_t need = WIRE_HEADER_LEN + q->qname_len + 4u + opt;
	for (size_t i = 0; i < count; i++)
		need += 12u + rrs[i].rdlength;
	if (count > 0xFFFF || need > limit || need > cap) {
		size_t n = wire_build_truncated(q, out, cap < limit ? cap : limit);
		if (n > 0)
			out[3] = (uint8_t)((out[3] & ~F_RCODE) | ((unsigned)rcode & F_RCODE));
		return n;
	}
	reply_header(q, rcode, out);
	wr16(out + 6, (uint16_t)count);
	size_t p = WIRE_HEADER_LEN;
	memcpy(out + p, q->qname_case, q->qname_len);
	p += q->qname_len;
	wr16(out + p, q->qtype);
	wr16(out + p + 2, q->qclass);
	p += 4;
	for (size_t i = 0; i < count; i++) {
		/* The owner points at the question name, right after the header. */
		wr16(out + p, 0xC000 | WIRE_HEADER_LEN);
		wr16(out + p + 2, rrs[i].type);
		wr16(out + p + 4, q->qclass);
		wr32(out + p + 6, rrs[i].ttl);
		wr16(out + p + 10, rrs[i].rdlength);
		if (rrs[i].rdlength > 0)
			memcpy(out + p + 12, rrs[i].rdata, rrs[i].rdlength);
		p += 12u + rrs[i].rdlength;
	}
	if (q->has_edns) {
		wr16(out + 10, 1);
		opt_write(out + p, rcode, q->do_bit, ede, ede_text, tlen);
		p += opt;
	}
	return p;
}

size_t wire_build_any_refusal(const struct wire_query *q, uint8_t *out, size_t cap)
{
	static const uint8_t hinfo[] = { 7, 'R', 'F', 'C', '8', '4', '8', '2', 0 };

	if (!question_ok(q))
		return 0;
	size_t need = WIRE_HEADER_LEN + q->qname_len + 4u + 12 + sizeof(hinfo) + (q->has_edns ? opt_size(WIRE_EDE_NONE, 0) : 0);
	if (out == NULL || need > cap)
		return 0;
	reply_header(q, WIRE_RCODE_NOERROR, out);
	wr16(out + 6, 1);
	size_t p = WIRE_HEADER_LEN;
	memcpy(out + p, q->qname_case, q->qname_len);
	p += q->qname_len;
	wr16(out + p, q->qtype);
	wr16(out + p + 2, q->qclass);
	p += 4;
	/* The owner points at the question name, right after the header. */
	wr16(out + p, 0xC000 | WIRE_HEADER_LEN);
	wr16(out + p + 2, WIRE_TYPE_HINFO);
	wr16(out + p + 4, q->qclass);
	wr32(out + p + 6, 3600);
	wr16(out + p + 10, sizeof(hinfo));
	memcpy(out + p + 12, hinfo, sizeof(hinfo));
	p += 12 + sizeof(hinfo);
	if (q->has_edns) {
		wr16(out + 10, 1);
		opt_write(out + p, WIRE_RCODE_NOERROR, q->do_bit, WIRE_EDE_NONE, NULL, 0);
		p += opt_size(WIRE_EDE_NONE, 0);
	}
	return p;
}

/* ------------------------------------------------------------------ */
/* Building forms */

/* One message under construction, with its compression table: the offset,
 * length and case-folded hash of every name suffix written so far. */
struct builder {
	uint8_t *msg;
	size_t cap, len;
	bool overflow;
	uint8_t *ttl_tab;   /* where the next TTL offset goes (network order) */
	unsigned ttl_count;
	unsigned counts[3]; /* AN, NS, AR */
	unsigned ctab_n;
	uint16_t ctab_off[CTAB_MAX];
	uint8_t ctab_len[CTAB_MAX]; /* suffix length - 1 (1..255 fits) */
	uint32_t ctab_hash[CTAB_MAX];
};

static uint32_t name_hash(const uint8_t *name, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ lower(name[i])) * 16777619u;
	return h;
}

static void b_put(struct builder *b, const void *data, size_t n)
{
	if (b->overflow || n > b->cap - b->len) {
		b->overflow = true;
		return;
	}
	memcpy(b->msg + b->len, data, n);
	b->len += n;
}

static void b_put16(struct builder *b, uint16_t v)
{
	uint8_t t[2];
	wr16(t, v);
	b_put(b, t, 2);
}

/* Does the (trusted, self-built) name at off in b->msg equal name[0..n)
 * case-insensitively? */
static bool b_name_eq(const struct builder *b, size_t off, const uint8_t *name, size_t n)
{
	size_t i = 0;
	unsigned hops = 0;

	while (off < b->len && i < n) {
		uint8_t c = b->msg[off];
		if ((c & 0xC0) == 0xC0) {
			if (off + 1 >= b->len || ++hops > MAX_HOPS)
				return false;
			off = (size_t)(c & 0x3F) << 8 | b->msg[off + 1];
			continue;
		}
		if (c != name[i] || off + 1 + c > b->len || i + 1 + c > n)
			return false;
		if (!name_eq_nocase(b->msg + off + 1, name + i + 1, c))
			return false;
		if (c == 0)
			return i + 1 == n;
		off += 1 + (size_t)c;
		i += 1 + (size_t)c;
	}
	return false;
}

/* Write the uncompressed name[0..n) (valid, from name_read).  With compress,
 * reuse the longest suffix already in the message and remember the new
 * suffixes for later names. */
static void b_name(struct builder *b, const uint8_t *name, size_t n, bool compress)
{
	size_t lab[128];
	unsigned nl = 0;

	if (!compress) {
		b_put(b, name, n);
		return;
	}
	for (size_t i = 0; name[i] != 0 && nl < 128; i += 1 + (size_t)name[i])
		lab[nl++] = i;

	unsigned hit = nl;
	uint16_t hit_off = 0;
	uint32_t hashes[128];
	for (unsigned k = 0; k < nl; k++) {
		const uint8_t *suf = name + lab[k];
		size_t slen = n - lab[k];
		hashes[k] = name_hash(suf, slen);
		if (hit != nl)
			continue;
		for (unsigned e = 0; e < b->ctab_n; e++) {
			if (b->ctab_hash[e] == hashes[k] && (size_t)b->ctab_len[e] + 1 == slen &&
			    b_name_eq(b, b->ctab_off[e], suf, slen)) {
				hit = k;
				hit_off = b->ctab_off[e];
				break;
			}
		}
	}
	for (unsigned k = 0; k < hit; k++) {
		size_t at = b->len;
		b_put(b, name + lab[k], (size_t)name[lab[k]] + 1);
		if (b->overflow)
			return;
		if (at <= PTR_MAX_OFFSET && b->ctab_n < CTAB_MAX) {
			b->ctab_off[b->ctab_n] = (uint16_t)at;
			b->ctab_len[b->ctab_n] = (uint8_t)(n - lab[k] - 1);
			b->ctab_hash[b->ctab_n] = hashes[k];
			b->ctab_n++;
		}
	}
	if (hit == nl)
		b_put(b, "", 1);
	else
		b_put16(b, (uint16_t)(0xC000 | hit_off));
}

/* How the RDATA of a type is laid out, for the types that carry names:
 *   C  a name we may compress (RFC 1035 types)
 *   N  a name we expand but never compress (RFC 3597 4, RFC 4034)
 *   2, 6, S, T  2, 6, 18 or 20 fixed bytes
 *   s  a character-string
 *   R  the rest, opaque
 * Types not listed are copied as opaque bytes.  Without R the fields must
 * use the RDATA exactly. */
static const char *rdata_layout(uint16_t type)
{
	switch (type) {
	case WIRE_TYPE_NS: case 3: case 4: case WIRE_TYPE_CNAME: /* NS MD MF CNAME */
	case 7: case 8: case 9: case WIRE_TYPE_PTR:             /* MB MG MR PTR */
		return "C";
	case WIRE_TYPE_SOA:
		return "CCT";
	case 14: /* MINFO */
		return "CC";
	case WIRE_TYPE_MX:
		return "2C";
	case 17: /* RP */
		return "NN";
	case 18: case 21: case 36: /* AFSDB RT KX */
		return "2N";
	case 26: /* PX */
		return "2NN";
	case 30: /* NXT */
	case WIRE_TYPE_NSEC:
		return "NR";
	case WIRE_TYPE_SRV:
		return "6N";
	case 35: /* NAPTR */
		return "22sssN";
	case 39: /* DNAME */
		return "N";
	case 24: /* SIG */
	case WIRE_TYPE_RRSIG:
		return "SNR";
	default:
		return "R";
	}
}

/* Copy one RDATA of type from the upstream message into b, expanding names
 * and recompressing the ones we may.  Returns -1 if it is malformed. */
static int b_rdata(struct builder *b, const uint8_t *pkt, size_t len, size_t rd, size_t rdlen, uint16_t type)
{
	uint8_t name[WIRE_MAX_NAME];
	size_t nlen, p = rd, end = rd + rdlen;
	const char *lay = rdata_layout(type);
	bool rest = false;

	for (; *lay; lay++) {
		size_t fixed = 0;
		switch (*lay) {
		case 'C':
		case 'N':
			/* Pointers may target anything earlier in the message, but
			 * the in-line part must stay inside this RDATA. */
			if (name_read(pkt, end, &p, name, &nlen) < 0)
				return -1;
			b_name(b, name, nlen, *lay == 'C');
			continue;
		case '2': fixed = 2; break;
		case '6': fixed = 6; break;
		case 'S': fixed = 18; break;
		case 'T': fixed = 20; break;
		case 's':
			if (p >= end)
				return -1;
			fixed = 1 + (size_t)pkt[p];
			break;
		case 'R':
			fixed = end - p;
			rest = true;
			break;
		}
		if (fixed > end - p)
			return -1;
		b_put(b, pkt + p, fixed);
		p += fixed;
	}
	(void)len;
	return (rest || p == end) ? 0 : -1;
}

/* Emit one RR into b.  The TTL offset goes into the form's table. */
static int b_rr(struct builder *b, unsigned section, const uint8_t *owner, size_t olen,
                const uint8_t *pkt, size_t len, size_t f)
{
	uint16_t type = rd16(pkt + f);
	size_t rdlen = rd16(pkt + f + 8);

	b_name(b, owner, olen, true);
	b_put(b, pkt + f, 4); /* type, class */
	size_t ttl_at = b->len;
	b_put(b, pkt + f + 4, 4);
	size_t rdlen_at = b->len;
	b_put16(b, 0);
	if (b_rdata(b, pkt, len, f + 10, rdlen, type) < 0)
		return -1;
	if (b->overflow)
		return 0; /* reported by the caller */
	wr16(b->msg + rdlen_at, (uint16_t)(b->len - rdlen_at - 2));
	wr16(b->ttl_tab + 2 * b->ttl_count, (uint16_t)ttl_at);
	b->ttl_count++;
	b->counts[section]++;
	return 0;
}

static void b_init(struct builder *b, uint8_t *form, size_t table_slots, const struct wire_query *q, uint8_t rcode)
{
	b->ttl_tab = form + 4;
	b->msg = form + 4 + 2 * table_slots;
	b->cap = WIRE_MAX_MSG;
	b->len = 0;
	b->overflow = false;
	b->ttl_count = 0;
	b->counts[0] = b->counts[1] = b->counts[2] = 0;
	b->ctab_n = 0;

	uint8_t h[WIRE_HEADER_LEN] = { 0 };
	wr16(h + 2, (uint16_t)(F_QR | F_RD | F_RA | (rcode & F_RCODE)));
	wr16(h + 4, 1);
	b_put(b, h, sizeof(h));
	b_name(b, q->qname, q->qname_len, true);
	b_put16(b, q->qtype);
	b_put16(b, q->qclass);
}

/* Close the form: counts into the header, the message moved down to follow
 * the TTL table, the form header written. */
static int b_finish(struct builder *b, uint8_t *form, size_t *form_len)
{
	if (b->overflow || b->len > WIRE_MAX_MSG)
		return -1;
	wr16(b->msg + 6, (uint16_t)b->counts[0]);
	wr16(b->msg + 8, (uint16_t)b->counts[1]);
	wr16(b->msg + 10, (uint16_t)b->counts[2]);
	uint8_t *dst = form + 4 + 2 * (size_t)b->ttl_count;
	memmove(dst, b->msg, b->len);
	wr16(form, (uint16_t)b->len);
	wr16(form + 2, (uint16_t)b->ttl_count);
	*form_len = 4 + 2 * (size_t)b->ttl_count + b->len;
	return 0;
}

static bool dnssec_type(uint16_t t)
{
	return t == WIRE_TYPE_RRSIG || t == WIRE_TYPE_NSEC || t == WIRE_TYPE_NSEC3;
}

/* RFC 2181 8: a TTL with the top bit set means zero. */
static uint32_t ttl_sane(uint32_t t)
{
	return (t & 0x80000000u) ? 0 : t;
}

int wire_prepare_forms(const uint8_t *pkt, size_t len, const struct wire_query *q,
                       uint8_t *full, size_t *full_len,
                       uint8_t *plain, size_t *plain_len,
                       struct wire_answer_info *info)
{
	/* Two builders with their compression tables take about 15 KB of
	 * stack: fine for any worker thread, and no allocation. */
	struct builder bf, bp;
	uint8_t owner[WIRE_MAX_NAME], qn[WIRE_MAX_NAME];
	size_t olen, qnlen;

	if (pkt == NULL || len < WIRE_HEADER_LEN || len > WIRE_MAX_MSG || !question_ok(q))
		return -1;
	if (rd16(pkt + 4) != 1)
		return -1;
	uint8_t rcode = pkt[3] & F_RCODE;
	unsigned an = rd16(pkt + 6), ns = rd16(pkt + 8), ar = rd16(pkt + 10);

	size_t pos = WIRE_HEADER_LEN;
	if (name_read(pkt, len, &pos, qn, &qnlen) < 0 || len - pos < 4)
		return -1;
	if (qnlen != q->qname_len || !name_eq_nocase(qn, q->qname, qnlen) ||
	    rd16(pkt + pos) != q->qtype || rd16(pkt + pos + 2) != q->qclass)
		return -1;
	pos += 4;

	/* Every RR takes at least 11 bytes, which bounds the TTL table; the
	 * messages are built after room for it and moved down at the end. */
	size_t slots = (len - WIRE_HEADER_LEN) / 11 + 1;
	b_init(&bf, full, slots, q, rcode);
	b_init(&bp, plain, slots, q, rcode);

	uint32_t ans_ttl = UINT32_MAX, neg_ttl = 0;
	bool has_soa = false;
	unsigned total = an + ns + ar;
	for (unsigned i = 0; i < total; i++) {
		unsigned section = i < an ? 0 : i < an + ns ? 1 : 2;
		if (name_read(pkt, len, &pos, owner, &olen) < 0 || len - pos < 10)
			return -1;
		size_t f = pos;
		uint16_t type = rd16(pkt + f);
		size_t rdlen = rd16(pkt + f + 8);
		if (rdlen > len - f - 10)
			return -1;
		pos = f + 10 + rdlen;
		if (type == WIRE_TYPE_OPT)
			continue; /* EDNS is per hop: we write our own when serving */
		uint32_t ttl = ttl_sane(rd32(pkt + f + 4));
		if (b_rr(&bf, section, owner, olen, pkt, len, f) < 0)
			return -1;
		if (!dnssec_type(type) || type == q->qtype) {
			if (b_rr(&bp, section, owner, olen, pkt, len, f) < 0)
				return -1;
		}
		if (section == 0 && ttl < ans_ttl)
			ans_ttl = ttl;
		if (section == 1 && type == WIRE_TYPE_SOA && !has_soa) {
			/* b_rr validated the SOA layout: MINIMUM is the last 4 bytes. */
			uint32_t min = ttl_sane(rd32(pkt + f + 10 + rdlen - 4));
			neg_ttl = ttl < min ? ttl : min;
			has_soa = true;
		}
	}
	if (b_finish(&bf, full, full_len) < 0 || b_finish(&bp, plain, plain_len) < 0)
		return -1;

	memset(info, 0, sizeof(*info));
	info->rcode = rcode;
	info->answer_count = (uint16_t)bp.counts[0];
	info->negative = rcode == WIRE_RCODE_NXDOMAIN || (rcode == WIRE_RCODE_NOERROR && bp.counts[0] == 0);
	if (info->negative) {
		info->has_soa = has_soa;
		info->ttl = neg_ttl;
	} else {
		info->ttl = ans_ttl == UINT32_MAX ? 0 : ans_ttl;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Serving forms */

int wire_form_message(const uint8_t *form, size_t form_len, const uint8_t **msg, size_t *msg_len)
{
	if (form == NULL || form_len < 4)
		return -1;
	size_t mlen = rd16(form), count = rd16(form + 2);
	size_t off = 4 + 2 * count;
	if (mlen < WIRE_HEADER_LEN || off > form_len || mlen > form_len - off)
		return -1;
	*msg = form + off;
	*msg_len = mlen;
	return 0;
}

int wire_form_answer_names(const uint8_t *form, size_t form_len, uint16_t rrtype,
                           void (*fn)(void *arg, const uint8_t *name, size_t name_len), void *arg)
{
	/* Where the name sits in each type's RDATA: after a 2-byte preference
	 * for MX, at the start for the others. */
	size_t skip;
	switch (rrtype) {
	case WIRE_TYPE_MX: skip = 2; break;
	case WIRE_TYPE_CNAME:
	case WIRE_TYPE_NS:
	case WIRE_TYPE_PTR: skip = 0; break;
	default: return -1;
	}
	const uint8_t *msg;
	size_t mlen;
	if (wire_form_message(form, form_len, &msg, &mlen) < 0)
		return -1;
	size_t pos = WIRE_HEADER_LEN;
	unsigned qd = rd16(msg + 4), an = rd16(msg + 6);
	for (unsigned i = 0; i < qd; i++) {
		if (name_read(msg, mlen, &pos, NULL, NULL) < 0 || pos + 4 > mlen)
			return -1;
		pos += 4;
	}
	int found = 0;
	for (unsigned i = 0; i < an; i++) {
		if (name_read(msg, mlen, &pos, NULL, NULL) < 0 || pos + 10 > mlen)
			return -1;
		uint16_t type = rd16(msg + pos);
		size_t rdlen = rd16(msg + pos + 8);
		size_t rd = pos + 10;
		if (rd + rdlen > mlen)
			return -1;
		if (type == rrtype && rdlen > skip) {
			uint8_t name[WIRE_MAX_NAME];
			size_t nlen, np = rd + skip;
			if (name_read(msg, mlen, &np, name, &nlen) < 0 || np > rd + rdlen)
				return -1;
			for (size_t k = 0; k < nlen; k++)
				name[k] = lower(name[k]);
			fn(arg, name, nlen);
			found++;
		}
		pos = rd + rdlen;
	}
	return found;
}

int wire_form_answer_rdata(const uint8_t *form, size_t form_len, uint16_t rrtype,
                           void (*fn)(void *arg, const uint8_t *rdata, size_t rdlength), void *arg)
{
	const uint8_t *msg;
	size_t mlen;
	if (wire_form_message(form, form_len, &msg, &mlen) < 0)
		return -1;
	size_t pos = WIRE_HEADER_LEN;
	unsigned qd = rd16(msg + 4), an = rd16(msg + 6);
	for (unsigned i = 0; i < qd; i++) {
		if (name_read(msg, mlen, &pos, NULL, NULL) < 0 || pos + 4 > mlen)
			return -1;
		pos += 4;
	}
	int found = 0;
	for (unsigned i = 0; i < an; i++) {
		if (name_read(msg, mlen, &pos, NULL, NULL) < 0 || pos + 10 > mlen)
			return -1;
		uint16_t type = rd16(msg + pos);
		size_t rdlen = rd16(msg + pos + 8);
		size_t rd = pos + 10;
		if (rd + rdlen > mlen)
			return -1;
		if (type == rrtype) {
			fn(arg, msg + rd, rdlen);
			found++;
		}
		pos = rd + rdlen;
	}
	return found;
}

int wire_form_clamp_ttls(uint8_t *form, size_t form_len, uint32_t min_ttl, uint32_t max_ttl)
{
	const uint8_t *msg;
	size_t mlen;
	if (wire_form_message(form, form_len, &msg, &mlen) < 0)
		return -1;
	size_t count = rd16(form + 2);
	uint8_t *m = form + (msg - form);
	/* Check every offset first so a bad table changes nothing. */
	for (size_t i = 0; i < count; i++) {
		size_t off = rd16(form + 4 + 2 * i);
		if (off < WIRE_HEADER_LEN || mlen < 4 || off > mlen - 4)
			return -1;
	}
	for (size_t i = 0; i < count; i++) {
		size_t off = rd16(form + 4 + 2 * i);
		uint32_t t = rd32(m + off);
		if (t < min_ttl)
			t = min_ttl;
		if (max_ttl != 0 && t > max_ttl)
			t = max_ttl;
		wr32(m + off, t);
	}
	return 0;
}

size_t wire_serve_form(const uint8_t *form, size_t form_len, const struct wire_query *q,
                       const struct wire_serve *s, uint8_t *out, size_t cap)
{
	const uint8_t *msg;
	size_t mlen;

	if (out == NULL || !question_ok(q) || wire_form_message(form, form_len, &msg, &mlen) < 0)
		return 0;
	size_t qend = WIRE_HEADER_LEN + q->qname_len + 4u;
	if (mlen < qend || rd16(msg + 4) != 1 || !name_eq_nocase(msg + WIRE_HEADER_LEN, q->qname, q->qname_len))
		return 0;

	size_t count = rd16(form + 2);
	const uint8_t *tab = form + 4;
	int rcode = s->rcode >= 0 ? s->rcode : (int)(msg[3] & F_RCODE);
	int ede = q->has_edns ? s->ede_code : WIRE_EDE_NONE;
	size_t tlen = ede_text_len(ede, s->ede_text);
	size_t opt = q->has_edns ? opt_size(ede, tlen) : 0;
	uint16_t arcount = rd16(msg + 10);
	bool tc = mlen + opt > s->limit || (q->has_edns && arcount == 0xFFFF);

	size_t n;
	if (!tc) {
		if (mlen + opt > cap)
			return 0;
		memcpy(out, msg, mlen);
		for (size_t i = 0; i < count; i++) {
			size_t off = rd16(tab + 2 * i);
			if (off < qend || off > mlen - 4)
				return 0;
			uint32_t t;
			if (s->ttl_override)
				t = s->ttl_override;
			else {
				t = rd32(out + off);
				t = t > s->age ? t - s->age : 0;
			}
			wr32(out + off, t);
		}
		n = mlen;
	} else {
		/* Header and question only; an EDE that would not fit the limit
		 * is dropped rather than the OPT. */
		if (q->has_edns && qend + opt > s->limit) {
			ede = WIRE_EDE_NONE;
			tlen = 0;
			opt = opt_size(ede, 0);
		}
		if (qend + opt > cap)
			return 0;
		memcpy(out, msg, qend);
		wr16(out + 6, 0);
		wr16(out + 8, 0);
		wr16(out + 10, 0);
		arcount = 0;
		n = qend;
	}

	uint16_t flags = F_QR | F_RA | ((unsigned)rcode & F_RCODE);
	if (tc)
		flags |= F_TC;
	if (q->rd)
		flags |= F_RD;
	if (q->cd)
		flags |= F_CD;
	if (s->set_ad)
		flags |= F_AD;
	wr16(out, q->id);
	wr16(out + 2, flags);
	memcpy(out + WIRE_HEADER_LEN, q->qname_case, q->qname_len);
	if (q->has_edns) {
		opt_write(out + n, rcode, q->do_bit, ede, s->ede_text, tlen);
		n += opt;
		wr16(out + 10, (uint16_t)(arcount + 1));
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Presentation format */

bool wire_name_under(const uint8_t *name, size_t name_len, const uint8_t *zone, size_t zone_len)
{
	if (zone_len == 0 || zone_len > name_len || memcmp(name + name_len - zone_len, zone, zone_len) != 0)
		return false;
	/* A byte match of the tail counts only if it starts at a label. */
	for (size_t p = 0; p < name_len; p += (size_t)name[p] + 1) {
		if (p == name_len - zone_len)
			return true;
		if (name[p] == 0)
			break;
	}
	return false;
}

size_t wire_name_from_text(const char *text, uint8_t *out)
{
	size_t n = 0, lab = 0; /* lab: where the current label's length byte is */
	const char *p = text;

	if (text == NULL || *text == '\0')
		return 0;
	if (strcmp(text, ".") == 0) {
		out[0] = 0;
		return 1;
	}
	out[0] = 0;
	n = 1;
	for (;;) {
		if (*p == '\0' || *p == '.') {
			size_t ll = n - lab - 1;
			if (ll == 0)
				return 0; /* empty label */
			out[lab] = (uint8_t)ll;
			if (*p == '\0' || p[1] == '\0')
				break;
			p++;
			if (n >= WIRE_MAX_NAME)
				return 0;
			lab = n;
			out[n++] = 0;
			continue;
		}
		unsigned c;
		if (*p == '\\') {
			p++;
			if (p[0] >= '0' && p[0] <= '9') {
				if (!(p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9'))
					return 0;
				c = (unsigned)(p[0] - '0') * 100 + (unsigned)(p[1] - '0') * 10 + (unsigned)(p[2] - '0');
				if (c > 255)
					return 0;
				p += 3;
			} else if (*p == '\0') {
				return 0;
			} else {
				c = (unsigned char)*p++;
			}
		} else {
			c = (unsigned char)*p++;
		}
		if (n - lab > 63 || n >= WIRE_MAX_NAME)
			return 0;
		out[n++] = lower((uint8_t)c);
	}
	if (n >= WIRE_MAX_NAME)
		return 0;
	out[n++] = 0;
	return n;
}

size_t wire_name_to_text(const uint8_t *name, size_t name_len, char *out, size_t cap)
{
	size_t p = 0, o = 0;

	if (name == NULL || out == NULL || cap == 0 || name_len == 0 || name_len > WIRE_MAX_NAME)
		return 0;
	if (name[0] == 0) {
		if (name_len != 1 || cap < 2)
			return 0;
		out[0] = '.';
		out[1] = '\0';
		return 1;
	}
	while (p < name_len) {
		size_t c = name[p];
		if (c == 0)
			break;
		if (c > 63 || p + 1 + c >= name_len)
			return 0;
		for (size_t i = 1; i <= c; i++) {
			uint8_t ch = name[p + i];
			char buf[5];
			size_t k;
			if (ch <= 0x20 || ch >= 0x7F) {
				buf[0] = '\\';
				buf[1] = (char)('0' + ch / 100);
				buf[2] = (char)('0' + ch / 10 % 10);
				buf[3] = (char)('0' + ch % 10);
				k = 4;
			} else if (strchr(".\\\"();@$", ch) != NULL) {
				buf[0] = '\\';
				buf[1] = (char)ch;
				k = 2;
			} else {
				buf[0] = (char)ch;
				k = 1;
			}
			if (o + k >= cap)
				return 0;
			memcpy(out + o, buf, k);
			o += k;
		}
		if (o + 1 >= cap)
			return 0;
		out[o++] = '.';
		p += 1 + c;
	}
	if (p != name_len - 1)
		return 0; /* no terminating root label, or bytes after it */
	out[o] = '\0';
	return o;
}

/* ---- names of types and rcodes, for people ---- */

static const struct {
	uint16_t type;
	const char *name;
} wire_types[] = {
	{ 1, "A" },          { 2, "NS" },        { 5, "CNAME" },     { 6, "SOA" },      { 10, "NULL" },
	{ 12, "PTR" },       { 13, "HINFO" },    { 15, "MX" },       { 16, "TXT" },     { 17, "RP" },
	{ 18, "AFSDB" },     { 28, "AAAA" },     { 29, "LOC" },      { 33, "SRV" },     { 35, "NAPTR" },
	{ 39, "DNAME" },     { 41, "OPT" },      { 43, "DS" },       { 44, "SSHFP" },   { 46, "RRSIG" },
	{ 47, "NSEC" },      { 48, "DNSKEY" },   { 50, "NSEC3" },    { 51, "NSEC3PARAM" },
	{ 52, "TLSA" },      { 59, "CDS" },      { 60, "CDNSKEY" },  { 64, "SVCB" },    { 65, "HTTPS" },
	{ 99, "SPF" },       { 251, "IXFR" },    { 252, "AXFR" },    { 255, "ANY" },    { 256, "URI" },
	{ 257, "CAA" },
};

const char *wire_type_name(uint16_t t, char *buf, size_t cap)
{
	for (size_t i = 0; i < sizeof wire_types / sizeof wire_types[0]; i++)
		if (wire_types[i].type == t)
			return wire_types[i].name;
	snprintf(buf, cap, "TYPE%u", (unsigned)t);
	return buf;
}

/* The number after a prefix ("TYPE", "RCODE"), decimal digits only, at
 * most max; -1 otherwise. */
static long wire_number_after(const char *s, size_t prefix_len, long max)
{
	const char *d = s + prefix_len;
	if (*d < '0' || *d > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long v = strtoul(d, &end, 10);
	if (errno != 0 || *end != '\0' || v > (unsigned long)max)
		return -1;
	return (long)v;
}

int wire_type_parse(const char *s)
{
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < sizeof wire_types / sizeof wire_types[0]; i++)
		if (strcasecmp(s, wire_types[i].name) == 0)
			return wire_types[i].type;
	if (strncasecmp(s, "TYPE", 4) == 0)
		return (int)wire_number_after(s, 4, 65535);
	return -1;
}

static const char *const wire_rcodes[] = { "NOERROR", "FORMERR",  "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
                                          "YXDOMAIN", "YXRRSET", "NXRRSET",  "NOTAUTH",  "NOTZONE" };

const char *wire_rcode_name(unsigned rc, char *buf, size_t cap)
{
	if (rc < sizeof wire_rcodes / sizeof wire_rcodes[0])
		return wire_rcodes[rc];
	snprintf(buf, cap, "RCODE%u", rc);
	return buf;
}

int wire_rcode_parse(const char *s)
{
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < sizeof wire_rcodes / sizeof wire_rcodes[0]; i++)
		if (strcasecmp(s, wire_rcodes[i]) == 0)
			return (int)i;
	if (strncasecmp(s, "RCODE", 5) == 0)
		return (int)wire_number_after(s, 5, 4095);
	return -1;
}
