/* unit.h -- what the CUnit suites under tests/unit share: the runner behind
 * each main() and a few helpers that more than one suite needs.
 *
 * Everything here is static inline, so a suite that uses only part of it
 * compiles without unused-function warnings. */
#ifndef UNIT_H
#define UNIT_H

#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------ */
/* The runner */

struct unit_test {
	const char *name;
	CU_TestFunc fn;
};

/* The test's name is its function's, so the output names what to grep for. */
#define T(f) { #f, f }
#define UNIT_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Run tests as one suite with CUnit's verbose basic runner, whose summary
 * lines tests/run-all parses.  Returns non-zero when a test or the suite's
 * init fails, and when the registry cannot be set up: CU_basic_run_tests()
 * reports success even when tests fail. */
static inline int unit_run(const char *suite_name, CU_InitializeFunc init, CU_CleanupFunc cleanup,
                           const struct unit_test *tests, size_t n)
{
	int setup_failures = 0;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite suite = CU_add_suite(suite_name, init, cleanup);
	if (suite == NULL)
		setup_failures++;
	for (size_t i = 0; suite && i < n; i++)
		if (CU_add_test(suite, tests[i].name, tests[i].fn) == NULL)
			setup_failures++;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS)
		setup_failures++;
	int failed = CU_get_number_of_tests_failed() || CU_get_number_of_suites_failed() || setup_failures;
	CU_cleanup_registry();
	return failed ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* Helpers */

/* A client address from "192.0.2.1" or "2001:db8::1", port 0. */
static inline struct sockaddr_storage sa_from_text(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		CU_ASSERT_FATAL(inet_pton(AF_INET6, text, &s6->sin6_addr) == 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		CU_ASSERT_FATAL(inet_pton(AF_INET, text, &s4->sin_addr) == 1);
	}
	return ss;
}

/* "www.example.com" -> wire form, labels as written ("" = the root);
 * returns its length.  Built here rather than by wire.c, which some of the
 * suites test. */
static inline size_t wname(uint8_t *out, const char *name)
{
	size_t n = 0;
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);
		out[n++] = (uint8_t)l;
		memcpy(out + n, name, l);
		n += l;
		name += l + (dot ? 1 : 0);
	}
	out[n++] = 0;
	return n;
}

/* A DNS message written by hand, big-endian, with no bounds checks: the
 * tests know what they write. */
struct pk {
	uint8_t b[8192];
	size_t n;
};

static inline void pk_u8(struct pk *p, unsigned v)
{
	p->b[p->n++] = (uint8_t)v;
}

static inline void pk_u16(struct pk *p, unsigned v)
{
	pk_u8(p, v >> 8);
	pk_u8(p, v);
}

static inline void pk_u32(struct pk *p, uint32_t v)
{
	pk_u16(p, v >> 16);
	pk_u16(p, v & 0xFFFF);
}

static inline void pk_bytes(struct pk *p, const void *d, size_t n)
{
	memcpy(p->b + p->n, d, n);
	p->n += n;
}

static inline int unit_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Remove dir and everything below it; a test's leftovers in /tmp are not
 * worth failing it for. */
static inline void unit_rmtree(const char *dir)
{
	nftw(dir, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
