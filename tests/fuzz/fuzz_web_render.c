/* fuzz_web_render.c -- libFuzzer harness: the web module's text conversions
 * and JSON rendering with bytes from the network.
 *
 * Query-log entries hold whatever names and client keys the workers saw, and
 * the API takes names, types, rcodes and addresses from URLs and bodies.
 * The input is used as all of these at once, and properties are checked, so
 * the fuzzer looks for wrong answers as well as crashes:
 *   - a rendered name is printable ASCII and never longer than its buffer;
 *   - the query-log JSON of an entry made from the input parses back, with
 *     the name rendered the same way;
 *   - a name accepted for a list is normalised idempotently, to lower-case
 *     letters, digits, '-', '_' and '.';
 *   - a type or rcode that parses renders to a text that parses to it again;
 *   - an address that parses round-trips through its client key. */
#include "web_render.h"
#include "wire.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name_text(const uint8_t *name, size_t len)
{
	char text[1024];
	size_t n = web_name_to_text(name, len, text, sizeof text);
	if (n == 0)
		return;
	if (n >= sizeof text || strlen(text) != n)
		abort();
	for (size_t i = 0; i < n; i++)
		if (text[i] <= ' ' || text[i] >= 0x7f)
			abort();
}

static void check_querylog(const uint8_t *data, size_t size)
{
	struct stats_qlog_entry e;
	memset(&e, 0, sizeof e);
	e.time_ms = 1765000000123;
	e.latency_us = size;
	e.qtype = size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 1;
	e.rcode = size >= 3 ? data[2] & 0x0f : 0;
	e.flags = size >= 4 ? data[3] : 0;
	e.source = size >= 5 ? data[4] : 0;
	e.client_len = size >= 6 ? data[5] % 18 : 0;
	size_t off = 6;
	for (size_t i = 0; i < e.client_len; i++)
		e.client[i] = off + i < size ? data[off + i] : 0;
	off += e.client_len;
	size_t rest = size > off ? size - off : 0;
	e.qname_len = (uint8_t)(rest > sizeof e.qname ? sizeof e.qname : rest);
	memcpy(e.qname, data + off, e.qname_len);

	static const char *const names[] = { "ads", "dbl" };
	char *json = web_render_querylog(&e, 1, 1, names, 2);
	if (json == NULL)
		abort();
	json_error_t err;
	json_t *root = json_loads(json, 0, &err);
	if (root == NULL)
		abort();
	json_t *entry = json_array_get(json_object_get(root, "entries"), 0);
	if (!json_is_object(entry))
		abort();
	char text[1024];
	if (web_name_to_text(e.qname, e.qname_len, text, sizeof text) > 0) {
		const char *shown = json_string_value(json_object_get(entry, "name"));
		if (shown == NULL || strcmp(shown, text) != 0)
			abort();
	}
	json_decref(root);
	free(json);
}

static void check_text_inputs(const uint8_t *data, size_t size)
{
	char s[300];
	size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
	memcpy(s, data, n);
	s[n] = '\0';

	char norm[256], again[256];
	if (web_list_name_normalize(s, norm, sizeof norm) == 0) {
		if (web_list_name_normalize(norm, again, sizeof again) != 0 || strcmp(norm, again) != 0)
			abort();
		for (const char *p = norm; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
				abort();
	}

	char buf[32];
	int t = wire_type_parse(s);
	if (t >= 0 && wire_type_parse(wire_type_name((uint16_t)t, buf, sizeof buf)) != t)
		abort();
	int rc = wire_rcode_parse(s);
	if (rc >= 0 && wire_rcode_parse(wire_rcode_name((unsigned)rc, buf, sizeof buf)) != rc)
		abort();

	uint8_t key[17], key2[17];
	char addr[64];
	size_t klen = web_client_key_from_text(s, false, key);
	if (klen > 0) {
		if (!web_client_to_text(key, klen, addr, sizeof addr))
			abort();
		if (web_client_key_from_text(addr, false, key2) != klen || memcmp(key, key2, klen) != 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_name_text(data, size);
	check_querylog(data, size);
	check_text_inputs(data, size);
	return 0;
}
