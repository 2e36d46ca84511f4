/* fuzz_wire_query.c -- libFuzzer harness: any bytes as a client query.
 *
 * Parses the input, then builds every reply the server could build from
 * what was parsed, and checks the invariants the server relies on: replies
 * fit their buffer, the canonical qname is the lower-cased client name and
 * survives a trip through presentation format. */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[1024];
	struct wire_query q;
	enum wire_parse_status st = wire_parse_query(data, size, &q);

	if (st == WIRE_PARSE_DROP)
		return 0;
	static const int rcodes[] = { WIRE_RCODE_FORMERR, WIRE_RCODE_SERVFAIL, WIRE_RCODE_NOTIMP,
	                              WIRE_RCODE_REFUSED, WIRE_RCODE_BADVERS };
	for (size_t i = 0; i < sizeof(rcodes) / sizeof(rcodes[0]); i++) {
		int ede = i % 2 ? WIRE_EDE_BLOCKED : WIRE_EDE_NONE;
		size_t n = wire_build_error(&q, rcodes[i], ede, "fuzz", out, sizeof(out));
		if (n == 0 || n > sizeof(out) || n < WIRE_HEADER_LEN)
			abort();
		/* A buffer one byte short must be refused, not overrun. */
		if (wire_build_error(&q, rcodes[i], ede, "fuzz", out, n - 1) != 0)
			abort();
	}
	if (st != WIRE_PARSE_OK)
		return 0;

	size_t limit = wire_udp_limit(&q);
	if (limit < WIRE_MIN_UDP || limit > WIRE_EDNS_PAYLOAD)
		abort();
	size_t n = wire_build_any_refusal(&q, out, sizeof(out));
	if (n == 0 || n > limit)
		abort();

	/* The canonical name is the client's name lower-cased... */
	if (q.qname_len == 0 || q.qname_len > WIRE_MAX_NAME)
		abort();
	for (size_t i = 0; i < q.qname_len; i++)
		if (q.qname[i] != lower(q.qname_case[i]))
			abort();
	/* ...and presentation format round-trips it. */
	char text[4 * WIRE_MAX_NAME + 2];
	uint8_t back[WIRE_MAX_NAME];
	size_t tl = wire_name_to_text(q.qname, q.qname_len, text, sizeof(text));
	if (tl == 0)
		abort();
	if (wire_name_from_text(text, back) != q.qname_len || memcmp(back, q.qname, q.qname_len) != 0)
		abort();

	/* The input as a presentation name must not crash either. */
	char t2[600];
	size_t k = size < sizeof(t2) - 1 ? size : sizeof(t2) - 1;
	memcpy(t2, data, k);
	t2[k] = '\0';
	(void)wire_name_from_text(t2, back);
	return 0;
}
