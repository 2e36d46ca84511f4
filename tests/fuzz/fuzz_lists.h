/* fuzz_lists.h -- the body of the list-parser harnesses: each
 * fuzz_lists_<format>.c defines FUZZ_LISTS_FORMAT and includes this, so the
 * four formats are fuzzed by one harness.
 *
 * The input is loaded twice (as a block list from source 1, as an allow list
 * from source 2), then the names of a few typical rules and some bytes of the
 * input taken as a wire name are matched.  The report must add up (never more
 * bad line numbers recorded than lines) and a verdict must agree with the
 * source it names. */
#include "lists.h"
#include "wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

static void check(const struct lists_set *s, const uint8_t *name, size_t len)
{
	struct lists_match m;
	static const uint64_t masks[] = { ~0ULL, 1ULL << 1, 1ULL << 2, 1ULL << 3 };
	for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		enum lists_verdict v = lists_match(s, name, len, masks[i], &m);
		if (v != m.verdict || (v == LISTS_NONE) != (m.source < 0))
			abort();
		if (v != LISTS_NONE && !(masks[i] & (1ULL << m.source)))
			abort();
		if (v == LISTS_LOCAL_DATA && (m.records == NULL || m.record_count == 0))
			abort();
		for (unsigned k = 0; v == LISTS_LOCAL_DATA && k < m.record_count; k++)
			if (m.records[k].rdlength)
				sink += m.records[k].rdata[m.records[k].rdlength - 1]; /* ASan checks the read */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lists_set *s = lists_new();
	if (s == NULL)
		abort();
	for (int pass = 0; pass < 2; pass++) {
		FILE *f = fmemopen((void *)data, size, "r");
		if (f == NULL) {
			if (size == 0)
				break; /* fmemopen refuses empty buffers on some libcs */
			abort();
		}
		struct lists_report rep;
		if (lists_load_stream(s, f, FUZZ_LISTS_FORMAT, pass + 1, pass == 1, &rep) != 0)
			abort();
		fclose(f);
		for (unsigned long i = 0; i < rep.bad && i < 8; i++)
			if (rep.first_bad_lines[i] == 0 || (i > 0 && rep.first_bad_lines[i] <= rep.first_bad_lines[i - 1]))
				abort();
	}

	static const char *const names[] = {
		"example.com", "ads.example.com", "www.ads.example.com", "a.b.c.d.e", "localhost", "x",
	};
	uint8_t w[WIRE_MAX_NAME];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t wl = wire_name_from_text(names[i], w);
		check(s, w, wl);
	}
	/* The first word of each of the first lines, as a name. */
	char word[300];
	size_t pos = 0;
	for (int line = 0; line < 8 && pos < size; line++) {
		size_t n = 0;
		while (pos < size && data[pos] != '\n' && (data[pos] == ' ' || data[pos] == '\t'))
			pos++;
		while (pos < size && data[pos] != '\n' && data[pos] != ' ' && data[pos] != '\t' && n < sizeof(word) - 1)
			word[n++] = (char)data[pos++];
		word[n] = '\0';
		while (pos < size && data[pos] != '\n')
			pos++;
		pos++;
		char *p = word;
		p += strspn(p, "|@*.");
		p[strcspn(p, "^$")] = '\0';
		size_t wl = wire_name_from_text(p, w);
		if (wl > 0)
			check(s, w, wl);
	}
	/* Raw bytes as a wire name (malformed ones must match nothing, safely). */
	check(s, data, size < WIRE_MAX_NAME ? size : WIRE_MAX_NAME);
	if (lists_count(s) > 0 && lists_bytes(s) == 0)
		abort();
	lists_free(s);
	return 0;
}
