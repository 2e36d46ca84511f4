/* fuzz_wire_forms.c -- libFuzzer harness: any bytes as an upstream answer.
 *
 * A query is made for the input's own question when it has one, so that
 * wire_prepare_forms gets past the question check; both forms are then
 * served with several ages, limits and client shapes, and the raw input is
 * also served as if it were a stored form (a corrupted cache value). */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t full[WIRE_FORM_MAX], plain[WIRE_FORM_MAX], out[WIRE_MAX_MSG + 512];

static void serve_all(const uint8_t *form, size_t form_len, struct wire_query *q, bool must_work)
{
	static const size_t limits[] = { 512, 1232, 4096, 65535 };
	static const uint32_t ages[] = { 0, 1, 300, 0xFFFFFFFFu };

	for (int edns = 0; edns < 2; edns++) {
		q->has_edns = edns;
		q->do_bit = edns;
		for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
			struct wire_serve s = {
				.age = ages[i],
				.ttl_override = i == 2 ? 30 : 0,
				.set_ad = i & 1,
				.rcode = i == 3 ? WIRE_RCODE_SERVFAIL : -1,
				.ede_code = i & 1 ? WIRE_EDE_STALE_ANSWER : WIRE_EDE_NONE,
				.ede_text = "stale",
				.limit = limits[i],
			};
			size_t n = wire_serve_form(form, form_len, q, &s, out, sizeof(out));
			if (n > sizeof(out) || n > s.limit)
				abort();
			if (must_work && n == 0)
				abort();
			/* Tight caps must be refused, never overrun. */
			if (n > 0 && wire_serve_form(form, form_len, q, &s, out, n - 1) != 0)
				abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_query q;
	struct wire_answer_info info;
	size_t flen, plen;

	/* A query for the input's question: the same header with QR cleared
	 * and only the question counted. */
	if (size >= WIRE_HEADER_LEN && size <= WIRE_MAX_MSG) {
		static uint8_t qpkt[WIRE_MAX_MSG];
		memcpy(qpkt, data, size);
		qpkt[2] &= 0x07; /* QR and opcode off */
		qpkt[4] = 0;
		qpkt[5] = 1;
		memset(qpkt + 6, 0, 6);
		if (wire_parse_query(qpkt, size, &q) == WIRE_PARSE_OK) {
			if (wire_prepare_forms(data, size, &q, full, &flen, plain, &plen, &info) == 0) {
				const uint8_t *m;
				size_t mlen;
				if (flen > WIRE_FORM_MAX || plen > WIRE_FORM_MAX ||
				    wire_form_message(full, flen, &m, &mlen) != 0 ||
				    wire_form_message(plain, plen, &m, &mlen) != 0)
					abort();
				serve_all(full, flen, &q, true);
				serve_all(plain, plen, &q, true);
			}
			serve_all(data, size, &q, false);
			return 0;
		}
	}
	/* No usable question: still serve the raw bytes as a form, to a
	 * fixed query. */
	static const uint8_t fixed[] = { 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
	                                 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1 };
	if (wire_parse_query(fixed, sizeof(fixed), &q) != WIRE_PARSE_OK)
		abort();
	(void)wire_prepare_forms(data, size, &q, full, &flen, plain, &plen, &info);
	serve_all(data, size, &q, false);
	return 0;
}
