/* wire.h -- DNS message parsing and building on byte buffers.
 *
 * Pure code: no I/O, no globals, no logging, no allocation.  Every function
 * works on caller-owned buffers and never reads or writes past the lengths it
 * is given, whatever the input bytes are.
 *
 * A "form" is the stored shape of an answer, produced once when an upstream
 * answer is cached and served many times:
 *
 *   u16 msg_len | u16 ttl_count | u16 ttl_offset[ttl_count] | msg[msg_len]
 *
 * all integers in network byte order.  msg is a complete DNS message with
 * ID 0, no OPT record, a lower-case question, and valid compression; the
 * offsets point at the 32-bit TTL field of every RR in msg, so serving patches
 * TTLs in place without walking the message.  Forms are read with memcpy
 * only: they live unaligned in LMDB pages.
 */
#ifndef MXR_WIRE_H
#define MXR_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_HEADER_LEN 12
#define WIRE_MAX_NAME 255
#define WIRE_EDNS_PAYLOAD 1232 /* our advertised and maximum UDP payload (DNS flag day 2020) */
#define WIRE_MIN_UDP 512
#define WIRE_MAX_MSG 65535
/* A form adds at most 4 + 2 * (RR count) bytes; an RR takes at least 11 bytes. */
#define WIRE_FORM_MAX (WIRE_MAX_MSG + 4 + 2 * (WIRE_MAX_MSG / 11) + 2)

#define WIRE_TYPE_A 1
#define WIRE_TYPE_NS 2
#define WIRE_TYPE_CNAME 5
#define WIRE_TYPE_SOA 6
#define WIRE_TYPE_PTR 12
#define WIRE_TYPE_HINFO 13
#define WIRE_TYPE_MX 15
#define WIRE_TYPE_TXT 16
#define WIRE_TYPE_AAAA 28
#define WIRE_TYPE_SRV 33
#define WIRE_TYPE_OPT 41
#define WIRE_TYPE_DS 43
#define WIRE_TYPE_RRSIG 46
#define WIRE_TYPE_NSEC 47
#define WIRE_TYPE_DNSKEY 48
#define WIRE_TYPE_NSEC3 50
#define WIRE_TYPE_NSEC3PARAM 51
#define WIRE_TYPE_TLSA 52
#define WIRE_TYPE_IXFR 251
#define WIRE_TYPE_AXFR 252
#define WIRE_TYPE_ANY 255
#define WIRE_CLASS_IN 1

#define WIRE_RCODE_NOERROR 0
#define WIRE_RCODE_FORMERR 1
#define WIRE_RCODE_SERVFAIL 2
#define WIRE_RCODE_NXDOMAIN 3
#define WIRE_RCODE_NOTIMP 4
#define WIRE_RCODE_REFUSED 5
#define WIRE_RCODE_BADVERS 16 /* extended: 4 bits in the header, the rest in OPT */

/* RFC 8914 Extended DNS Error codes we send. */
#define WIRE_EDE_NONE (-1)
#define WIRE_EDE_STALE_ANSWER 3
#define WIRE_EDE_DNSSEC_BOGUS 6
#define WIRE_EDE_BLOCKED 15
#define WIRE_EDE_FILTERED 17
#define WIRE_EDE_NO_REACHABLE_AUTHORITY 22
#define WIRE_EDE_PROHIBITED 18
#define WIRE_EDE_NOT_SUPPORTED 21

enum wire_parse_status {
	WIRE_PARSE_OK = 0,
	WIRE_PARSE_DROP,     /* no usable header, or QR set: send nothing */
	WIRE_PARSE_FORMERR,  /* header usable, question or OPT malformed */
	WIRE_PARSE_NOTIMP,   /* opcode other than QUERY */
	WIRE_PARSE_BADVERS,  /* EDNS version above 0 */
};

/* A parsed query.  Self-contained (no pointers into the packet), so it can
 * be copied to another thread. */
struct wire_query {
	uint16_t id;
	uint8_t opcode;
	bool rd, cd, ad;
	bool has_question;          /* false when the question could not be parsed */
	uint8_t qname[WIRE_MAX_NAME];      /* canonical: lower-case, uncompressed wire form */
	uint8_t qname_case[WIRE_MAX_NAME]; /* the same name as the client sent it */
	uint16_t qname_len;
	uint16_t qtype, qclass;
	bool has_edns;
	bool do_bit;
	uint8_t edns_version;
	uint16_t udp_size;          /* the client's EDNS payload size, 512 without EDNS */
};

/* Parse a query packet into q.  Never reads beyond len.  On FORMERR/NOTIMP/
 * BADVERS the fields needed for an error reply (id, flags, question when it
 * parsed, EDNS) are filled in as far as they could be.  Returns the status. */
enum wire_parse_status wire_parse_query(const uint8_t *pkt, size_t len, struct wire_query *q);

/* The largest response we may send to q over UDP: the client's EDNS size
 * bounded by WIRE_EDNS_PAYLOAD, or 512 without EDNS. */
size_t wire_udp_limit(const struct wire_query *q);

/* Build a response with no records: header, q's question when it has one,
 * and an OPT record when q has EDNS (carrying ede_code/ede_text when
 * ede_code != WIRE_EDE_NONE; ede_text may be NULL).  rcode may be an extended
 * rcode (BADVERS).  Writes at most cap bytes into out; returns the length, or
 * 0 if it does not fit. */
size_t wire_build_error(const struct wire_query *q, int rcode, int ede_code,
                        const char *ede_text, uint8_t *out, size_t cap);

/* Build an empty reply with TC set (header, question, OPT when q has EDNS):
 * what rate limiting "slips" so that a real client retries over TCP.
 * Returns the length or 0. */
size_t wire_build_truncated(const struct wire_query *q, uint8_t *out, size_t cap);

/* A record synthesized at the question's name (block answers, local data). */
struct wire_synth_rr {
	uint16_t type;
	uint32_t ttl;
	const uint8_t *rdata;   /* uncompressed wire RDATA */
	uint16_t rdlength;
};

/* Build a reply to q with rcode and the given answer records, each owned
 * by the question's name, plus an OPT record (with the EDE when ede_code is
 * not WIRE_EDE_NONE) when q has EDNS.  Past limit, only header and question
 * with TC set.  Returns the length, or 0 if it does not fit in cap. */
size_t wire_build_synth(const struct wire_query *q, int rcode, const struct wire_synth_rr *rrs, size_t count,
                        int ede_code, const char *ede_text, size_t limit, uint8_t *out, size_t cap);

/* Build the RFC 8482 minimal answer to an ANY query: one synthesized HINFO
 * "RFC8482" "" at the question's name, TTL 3600.  Returns the length or 0. */
size_t wire_build_any_refusal(const struct wire_query *q, uint8_t *out, size_t cap);

/* What wire_prepare_forms learned about an upstream answer. */
struct wire_answer_info {
	uint8_t rcode;       /* header rcode (4 bits) */
	bool negative;       /* NXDOMAIN, or NOERROR with no answer for the question (NODATA) */
	bool has_soa;        /* negative answer with an SOA in authority */
	uint32_t ttl;        /* positive: smallest answer TTL; negative: min(SOA TTL, SOA MINIMUM);
	                        0 when there is nothing to take it from */
	uint16_t answer_count;
};

/* Turn an upstream answer message (as libunbound returns it: ID 0, OPT with
 * DO, DNSSEC records included) into two forms: full (every record except OPT)
 * and plain (without RRSIG, NSEC, NSEC3 records unless the question asked for
 * that type).  Both are recompressed; the question is written from q's
 * canonical qname.  full and plain must each hold WIRE_FORM_MAX bytes.
 * Returns 0, or -1 if pkt is malformed or does not answer q. */
int wire_prepare_forms(const uint8_t *pkt, size_t len, const struct wire_query *q,
                       uint8_t *full, size_t *full_len,
                       uint8_t *plain, size_t *plain_len,
                       struct wire_answer_info *info);

/* How one response is shaped from a form. */
struct wire_serve {
	uint32_t age;          /* seconds since the form was stored: subtracted from every TTL */
	uint32_t ttl_override; /* when non-zero, every TTL is set to this (stale answers) */
	bool set_ad;           /* set AD (caller checked: secure data and client asked DO or AD) */
	int rcode;             /* rcode to send, or -1 for the form's own */
	int ede_code;          /* WIRE_EDE_NONE or an RFC 8914 code, sent only to EDNS clients */
	const char *ede_text;  /* may be NULL */
	size_t limit;          /* largest response allowed: wire_udp_limit() for UDP, 65535 for TCP */
};

/* Build the response to q from a stored form into out (cap bytes): q's ID,
 * RD and CD, QR and RA set, the question in the client's case, TTLs patched,
 * an OPT record when the client sent one.  If the result would exceed
 * s->limit, the response is the header and question only with TC set.
 * Returns the length, or 0 if the form is malformed or cap is too small. */
size_t wire_serve_form(const uint8_t *form, size_t form_len, const struct wire_query *q,
                       const struct wire_serve *s, uint8_t *out, size_t cap);

/* Clamp every TTL stored in form (in place) to [min_ttl, max_ttl]; max_ttl 0
 * means no upper bound.  Used when a TTL policy stretches or caps what the
 * authority published, so that served TTLs agree with how long the entry
 * lives.  Returns 0, or -1 if the form is malformed (then nothing changed). */
int wire_form_clamp_ttls(uint8_t *form, size_t form_len, uint32_t min_ttl, uint32_t max_ttl);

/* Call fn(arg, name, name_len) for the domain name inside the RDATA of every
 * answer-section record of type rrtype in form (MX exchange, CNAME target,
 * NS, PTR), decompressed and lower-cased.  Returns the number of names, or
 * -1 if the form is malformed or rrtype has no single name to give. */
int wire_form_answer_names(const uint8_t *form, size_t form_len, uint16_t rrtype,
                           void (*fn)(void *arg, const uint8_t *name, size_t name_len), void *arg);

/* Call fn(arg, rdata, rdlength) for every answer-section record of type
 * rrtype in form (the addresses of A/AAAA answers, say).  Returns the number
 * of records, or -1 if the form is malformed. */
int wire_form_answer_rdata(const uint8_t *form, size_t form_len, uint16_t rrtype,
                           void (*fn)(void *arg, const uint8_t *rdata, size_t rdlength), void *arg);

/* The message inside a form (for inspection and tests): sets *msg, *msg_len.
 * Returns 0, or -1 if the form is malformed. */
int wire_form_message(const uint8_t *form, size_t form_len, const uint8_t **msg, size_t *msg_len);

/* Whether name equals zone or lies under it, on label boundaries (both in
 * canonical wire form): "badexample.com" is not under "example.com". */
bool wire_name_under(const uint8_t *name, size_t name_len, const uint8_t *zone, size_t zone_len);

/* Convert a presentation name ("www.Example.com", trailing dot optional) to
 * wire form in out (WIRE_MAX_NAME bytes), lower-cased.  Returns the length or
 * 0 if the name is invalid. */
size_t wire_name_from_text(const char *text, uint8_t *out);

/* Write the presentation form of wire name (e.g. "www.example.com.") into
 * out (cap bytes, NUL-terminated), escaping unusual bytes as \DDD.  Returns
 * the length without the NUL, or 0 if it does not fit or name is malformed. */
size_t wire_name_to_text(const uint8_t *name, size_t name_len, char *out, size_t cap);

/* The mnemonic of RR type t ("A", "MX"), or "TYPEnnn" written into buf
 * (at least 16 bytes).  Returns buf or a static string. */
const char *wire_type_name(uint16_t t, char *buf, size_t cap);

/* The type named by s: a mnemonic of wire_type_name in any case, or TYPEnnn.
 * Returns the type, or -1. */
int wire_type_parse(const char *s);

/* The name of rcode rc ("NOERROR", "NXDOMAIN"), or "RCODEnn" written into
 * buf (at least 16 bytes). */
const char *wire_rcode_name(unsigned rc, char *buf, size_t cap);

/* The rcode named by s (a name of wire_rcode_name in any case, or RCODEnn
 * up to 4095).  Returns it, or -1. */
int wire_rcode_parse(const char *s);

#endif
