/* test_lists.c -- unit tests of resolver/lists: the four parsers (rules,
 * skipped and bad lines with their numbers), exact and subtree semantics,
 * allow over block, source masks, RPZ verdicts and local data. */
#include "lists.h"
#include "unit.h"
#include "wire.h"

#include <CUnit/Basic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Helpers */

/* Load text into set as source, failing the test if loading fails. */
static struct lists_report load(struct lists_set *set, const char *text, enum lists_format fmt, int source,
                                bool allow)
{
	struct lists_report rep;
	memset(&rep, 0xAA, sizeof(rep));
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(lists_load_stream(set, f, fmt, source, allow, &rep), 0);
	fclose(f);
	return rep;
}

static enum lists_verdict match_src(const struct lists_set *set, const char *name, uint64_t mask,
                                    struct lists_match *m)
{
	uint8_t w[WIRE_MAX_NAME];
	size_t wl = wire_name_from_text(name, w);
	CU_ASSERT_FATAL(wl > 0);
	return lists_match(set, w, wl, mask, m);
}

static enum lists_verdict match(const struct lists_set *set, const char *name)
{
	struct lists_match m;
	return match_src(set, name, ~0ULL, &m);
}

static int source_of(const struct lists_set *set, const char *name, uint64_t mask)
{
	struct lists_match m;
	match_src(set, name, mask, &m);
	return m.source;
}

/* ------------------------------------------------------------------ */
/* hosts */

static void test_lists_hosts_parses_rules_skips_and_bad_lines(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	struct lists_report r = load(s,
	                             "# StevenBlack-style header\n"             /* 1 */
	                             "127.0.0.1 localhost\n"                    /* 2 skipped */
	                             "127.0.0.1 localhost.localdomain\n"        /* 3 skipped */
	                             "255.255.255.255 broadcasthost\n"          /* 4 skipped */
	                             "::1 localhost ip6-localhost ip6-loopback\n" /* 5 three skipped */
	                             "0.0.0.0 0.0.0.0\n"                        /* 6 skipped */
	                             "\n"                                       /* 7 */
	                             "0.0.0.0 ads.example.com # trailing\n"     /* 8 rule */
	                             "127.0.0.1\tTracker.Example.NET\r\n"       /* 9 rule, CRLF, case */
	                             ":: a.example.org b.example.org\n"         /* 10 two rules */
	                             "0.0.0.0\n"                                /* 11 bad: no name */
	                             "not-an-ip foo.example\n"                  /* 12 bad address */
	                             "0.0.0.0 bad!name.example\n"               /* 13 bad name */
	                             "0.0.0.0 good.example bad..example\n"      /* 14 one rule, bad */
	                             "   # indented comment\n",                 /* 15 */
	                             LISTS_HOSTS, 0, false);
	CU_ASSERT_EQUAL(r.rules, 5);
	CU_ASSERT_EQUAL(r.skipped, 7);
	CU_ASSERT_EQUAL(r.bad, 4);
	CU_ASSERT_EQUAL(r.first_bad_lines[0], 11);
	CU_ASSERT_EQUAL(r.first_bad_lines[1], 12);
	CU_ASSERT_EQUAL(r.first_bad_lines[2], 13);
	CU_ASSERT_EQUAL(r.first_bad_lines[3], 14);
	CU_ASSERT_EQUAL(match(s, "ads.example.com"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "tracker.example.net"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "a.example.org"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "b.example.org"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "good.example"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "localhost"), LISTS_NONE);
	CU_ASSERT_EQUAL(lists_count(s), 5);
	lists_free(s);
}

static void test_lists_hosts_rule_is_exact_name_only(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	load(s, "0.0.0.0 ads.example.com\n", LISTS_HOSTS, 3, false);
	CU_ASSERT_EQUAL(match(s, "ads.example.com"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(source_of(s, "ads.example.com", ~0ULL), 3);
	CU_ASSERT_EQUAL(match(s, "x.ads.example.com"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "example.com"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "ads.example.co"), LISTS_NONE);
	lists_free(s);
}

/* ------------------------------------------------------------------ */
/* domains */

static void test_lists_domains_parses_rules_and_bad_lines(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	char longlabel[80];
	memset(longlabel, 'a', 64);
	strcpy(longlabel + 64, ".com\n");
	char text[1024];
	snprintf(text, sizeof(text),
	         "# comment\n"               /* 1 */
	         "example.com\n"             /* 2 */
	         "Sub.Example.ORG. # why\n"  /* 3 */
	         "*.wild.example\r\n"        /* 4 */
	         "two names.example\n"       /* 5 bad */
	         "%s"                        /* 6 bad: 64-octet label */
	         "under_score.example\n"     /* 7 */
	         "a.*.example\n"             /* 8 bad: '*' not first */
	         "..\n"                      /* 9 bad */
	         "\n",
	         longlabel);
	struct lists_report r = load(s, text, LISTS_DOMAINS, 0, false);
	CU_ASSERT_EQUAL(r.rules, 4);
	CU_ASSERT_EQUAL(r.skipped, 0);
	CU_ASSERT_EQUAL(r.bad, 4);
	CU_ASSERT_EQUAL(r.first_bad_lines[0], 5);
	CU_ASSERT_EQUAL(r.first_bad_lines[1], 6);
	CU_ASSERT_EQUAL(r.first_bad_lines[2], 8);
	CU_ASSERT_EQUAL(r.first_bad_lines[3], 9);
	lists_free(s);
}

static void test_lists_domains_counts_dotdot_and_overlong_names_bad(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	/* 254 characters: 50 labels "abcd" (250) + "ab" would be 253; build 255. */
	char name[300] = "";
	for (int i = 0; i < 51; i++)
		strcat(name, "abcd.");
	name[254] = '\0'; /* 254 characters, last one a letter */
	char text[400];
	snprintf(text, sizeof(text), "..\n%s\nok.example\n", name);
	struct lists_report r = load(s, text, LISTS_DOMAINS, 0, false);
	CU_ASSERT_EQUAL(r.rules, 1);
	CU_ASSERT_EQUAL(r.bad, 2);
	CU_ASSERT_EQUAL(r.first_bad_lines[0], 1);
	CU_ASSERT_EQUAL(r.first_bad_lines[1], 2);
	/* 253 characters are fine. */
	name[253] = '\0';
	if (name[252] == '.')
		name[252] = 'x';
	CU_ASSERT_EQUAL(lists_add_name(s, name, false, 0, false), 0);
	lists_free(s);
}

static void test_lists_domains_rule_covers_name_and_subtree(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	load(s, "example.com\n", LISTS_DOMAINS, 0, false);
	CU_ASSERT_EQUAL(match(s, "example.com"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "www.example.com"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "a.b.c.d.example.com"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "com"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "notexample.com"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "example.com.evil"), LISTS_NONE);
	lists_free(s);
}

static void test_lists_wildcard_matches_only_below(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	load(s, "*.wild.example\n", LISTS_DOMAINS, 0, false);
	CU_ASSERT_EQUAL(match(s, "wild.example"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "a.wild.example"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "b.a.wild.example"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "example"), LISTS_NONE);
	lists_free(s);
}

static void test_lists_parent_of_rule_is_not_matched(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	load(s, "deep.ads.example.com\n", LISTS_DOMAINS, 0, false);
	CU_ASSERT_EQUAL(match(s, "ads.example.com"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "example.com"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "com"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "deep.ads.example.com"), LISTS_BLOCK);
	lists_free(s);
}

static void test_lists_matching_ignores_case(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	load(s, "MiXeD.Example.COM\n", LISTS_DOMAINS, 0, false);
	/* wire_name_from_text lower-cases, as wire_parse_query does. */
	CU_ASSERT_EQUAL(match(s, "mixed.example.com"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "WWW.MIXED.EXAMPLE.COM"), LISTS_BLOCK);
	lists_free(s);
}

static void test_lists_deep_names_match_their_ancestors(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	load(s, "example.com\n", LISTS_DOMAINS, 0, false);
	/* 120 labels "a." then example.com: 253 characters at most. */
	char name[260] = "";
	for (int i = 0; i < 120; i++)
		strcat(name, "a.");
	strcat(name, "example.com");
	CU_ASSERT_EQUAL(match(s, name), LISTS_BLOCK);
	CU_ASSERT_EQUAL(lists_add_name(s, name, false, 1, false), 0);
	CU_ASSERT_EQUAL(source_of(s, name, ~0ULL), 1); /* the most specific rule */
	CU_ASSERT_EQUAL(source_of(s, name + 2, ~0ULL), 0);
	lists_free(s);
}

/* ------------------------------------------------------------------ */
/* adblock */

static void test_lists_adblock_parses_rules_and_skips_other_kinds(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	struct lists_report r = load(s,
	                             "[Adblock Plus 2.0]\n"                 /* 1 header */
	                             "! Title: test\n"                      /* 2 comment */
	                             "||ads.example.com^\n"                 /* 3 rule */
	                             "||tracker.example.net^$important\n"   /* 4 rule */
	                             "@@||good.ads.example.com^\n"          /* 5 allow rule */
	                             "|http://example.org/ad.js\n"          /* 6 skipped */
	                             "example.com##.banner\n"               /* 7 skipped */
	                             "##.global-ad\n"                       /* 8 skipped */
	                             "/banner[0-9]+/\n"                     /* 9 skipped */
	                             "adserver\n"                           /* 10 skipped */
	                             "||example.org/path^\n"                /* 11 skipped */
	                             "||ads*.example.org^\n"                /* 12 skipped */
	                             "||bad..example^\n"                    /* 13 bad */
	                             "||^\n"                                /* 14 bad */
	                             "||*.wild.example^\r\n"                /* 15 rule, below only */
	                             "# hosts-style comment\n",             /* 16 comment */
	                             LISTS_ADBLOCK, 2, false);
	CU_ASSERT_EQUAL(r.rules, 4);
	CU_ASSERT_EQUAL(r.skipped, 7);
	CU_ASSERT_EQUAL(r.bad, 2);
	CU_ASSERT_EQUAL(r.first_bad_lines[0], 13);
	CU_ASSERT_EQUAL(r.first_bad_lines[1], 14);
	CU_ASSERT_EQUAL(match(s, "ads.example.com"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "x.ads.example.com"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "tracker.example.net"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "good.ads.example.com"), LISTS_ALLOW);
	CU_ASSERT_EQUAL(match(s, "x.good.ads.example.com"), LISTS_ALLOW);
	CU_ASSERT_EQUAL(match(s, "wild.example"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "a.wild.example"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "example.org"), LISTS_NONE);
	CU_ASSERT_EQUAL(source_of(s, "ads.example.com", ~0ULL), 2);
	lists_free(s);
}

/* ------------------------------------------------------------------ */
/* allow and sources */

static void test_lists_allow_list_beats_block_list(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	load(s, "example.com\n", LISTS_DOMAINS, 0, false);
	load(s, "0.0.0.0 ok.example.com\n", LISTS_HOSTS, 1, true);
	struct lists_match m;
	CU_ASSERT_EQUAL(match_src(s, "ok.example.com", ~0ULL, &m), LISTS_ALLOW);
	CU_ASSERT_EQUAL(m.source, 1);
	CU_ASSERT_EQUAL(match(s, "x.ok.example.com"), LISTS_BLOCK); /* hosts allow is exact */
	CU_ASSERT_EQUAL(match(s, "other.example.com"), LISTS_BLOCK);
	/* An allow rule above a more specific block still wins. */
	load(s, "deep.example.net\n", LISTS_DOMAINS, 2, false);
	load(s, "example.net\n", LISTS_DOMAINS, 3, true);
	CU_ASSERT_EQUAL(match(s, "deep.example.net"), LISTS_ALLOW);
	CU_ASSERT_EQUAL(match_src(s, "deep.example.net", 1ULL << 2, &m), LISTS_BLOCK);
	CU_ASSERT_EQUAL(m.source, 2);
	lists_free(s);
}

static void test_lists_adblock_exception_beats_block_of_other_source(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	load(s, "cdn.example.com\n", LISTS_DOMAINS, 0, false);
	load(s, "@@||cdn.example.com^\n||example.com^\n", LISTS_ADBLOCK, 1, false);
	CU_ASSERT_EQUAL(match(s, "cdn.example.com"), LISTS_ALLOW);
	CU_ASSERT_EQUAL(match(s, "img.cdn.example.com"), LISTS_ALLOW);
	CU_ASSERT_EQUAL(match(s, "www.example.com"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match_src(s, "cdn.example.com", 1, NULL), LISTS_BLOCK);
	lists_free(s);
}

static void test_lists_source_mask_filters_rules(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	load(s, "a.example\nshared.example\n", LISTS_DOMAINS, 5, false);
	load(s, "b.example\nshared.example\n", LISTS_DOMAINS, 63, false);
	CU_ASSERT_EQUAL(match_src(s, "a.example", 1ULL << 5, NULL), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match_src(s, "a.example", 1ULL << 63, NULL), LISTS_NONE);
	CU_ASSERT_EQUAL(match_src(s, "b.example", 1ULL << 63, NULL), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match_src(s, "b.example", 1ULL << 5, NULL), LISTS_NONE);
	CU_ASSERT_EQUAL(match_src(s, "b.example", 0, NULL), LISTS_NONE);
	CU_ASSERT_EQUAL(source_of(s, "shared.example", ~0ULL), 5); /* the lowest source */
	CU_ASSERT_EQUAL(source_of(s, "shared.example", 1ULL << 63), 63);
	CU_ASSERT_EQUAL(source_of(s, "x.example", ~0ULL), -1);
	/* An allow rule of a source outside the mask does not count. */
	CU_ASSERT_EQUAL(lists_add_name(s, "a.example", false, 7, true), 0);
	CU_ASSERT_EQUAL(match_src(s, "a.example", 1ULL << 5, NULL), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match_src(s, "a.example", (1ULL << 5) | (1ULL << 7), NULL), LISTS_ALLOW);
	lists_free(s);
}

static void test_lists_rejects_bad_source_and_unreadable_file(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	char err[256] = "x";
	struct lists_report rep;
	CU_ASSERT_EQUAL(lists_load_file(s, "/nonexistent/list.txt", LISTS_DOMAINS, 0, false, &rep, err, sizeof(err)),
	                -1);
	CU_ASSERT_STRING_EQUAL(err, "/nonexistent/list.txt: No such file or directory");
	CU_ASSERT_EQUAL(lists_load_file(s, "/dev/null", LISTS_DOMAINS, 64, false, &rep, err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(lists_add_name(s, "x.example", false, -1, false), -1);
	CU_ASSERT_EQUAL(lists_add_name(s, "x.example", false, 64, false), -1);
	CU_ASSERT_EQUAL(lists_count(s), 0);
	lists_free(s);
}

static void test_lists_load_file_reads_a_file(void)
{
	char path[] = "/tmp/test_lists_XXXXXX";
	int fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	const char text[] = "one.example\ntwo.example\nbad name\n";
	CU_ASSERT_EQUAL(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	struct lists_report rep;
	char err[128];
	CU_ASSERT_EQUAL(lists_load_file(s, path, LISTS_DOMAINS, 0, false, &rep, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(rep.rules, 2);
	CU_ASSERT_EQUAL(rep.bad, 1);
	CU_ASSERT_EQUAL(rep.first_bad_lines[0], 3);
	CU_ASSERT_EQUAL(match(s, "two.example"), LISTS_BLOCK);
	CU_ASSERT(lists_bytes(s) > 0);
	unlink(path);
	lists_free(s);
}

/* ------------------------------------------------------------------ */
/* RPZ */

static const char rpz_zone[] =
	"$TTL 300\n"                                                        /* 1 */
	"$ORIGIN rpz.local.\n"                                              /* 2 */
	"@ IN SOA ns.rpz.local. hostmaster.rpz.local. (\n"                  /* 3 */
	"      1 ; serial\n"                                                /* 4 */
	"      3600 600 86400 60 )\n"                                       /* 5 */
	"  IN NS ns.rpz.local.\n"                                           /* 6 */
	"nx.example.com CNAME .\n"                                          /* 7 NXDOMAIN */
	"*.nx.example.com CNAME .\n"                                        /* 8 NXDOMAIN below */
	"nodata.example.com. IN CNAME *.\n"                                 /* 9: absolute, outside: bad */
	"nodata.example.com.rpz.local. 60 IN CNAME *.\n"                    /* 10 NODATA */
	"ok.nx.example.com CNAME rpz-passthru.\n"                           /* 11 allow */
	"local.example.com 120 A 192.0.2.1\n"                               /* 12 */
	"                  A 192.0.2.2\n"                                   /* 13 same owner */
	"local.example.com TXT \"blocked by policy\" \"see admin\" ; why\n" /* 14 */
	"v6.example.com IN 60 AAAA 2001:db8::1\r\n"                         /* 15 */
	"mail.example.com MX 10 mx.example.net.\n"                          /* 16 */
	"alias.example.com CNAME walled.example.net.\n"                     /* 17 */
	"drop.example.com CNAME rpz-drop.\n"                                /* 18 skipped */
	"32.1.2.0.192.rpz-ip CNAME .\n"                                     /* 19 skipped */
	"ptr.example.com PTR host.example.\n"                               /* 20 skipped */
	"badaddr.example.com A 300.1.1.1\n"                                 /* 21 bad */
	"bad..example.com CNAME .\n"                                        /* 22 bad */
	"nx.example.com A 192.0.2.9\n"                                      /* 23 bad: conflicts */
	"# a comment\n"                                                     /* 24 */
	"; another\n";                                                      /* 25 */

static void test_lists_rpz_parses_triggers_and_counts_lines(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	struct lists_report r = load(s, rpz_zone, LISTS_RPZ, 4, false);
	CU_ASSERT_EQUAL(r.rules, 10);
	CU_ASSERT_EQUAL(r.skipped, 3);
	CU_ASSERT_EQUAL(r.bad, 4);
	CU_ASSERT_EQUAL(r.first_bad_lines[0], 9);
	CU_ASSERT_EQUAL(r.first_bad_lines[1], 21);
	CU_ASSERT_EQUAL(r.first_bad_lines[2], 22);
	CU_ASSERT_EQUAL(r.first_bad_lines[3], 23);
	lists_free(s);
}

static void test_lists_rpz_verdicts(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	load(s, rpz_zone, LISTS_RPZ, 4, false);
	struct lists_match m;
	CU_ASSERT_EQUAL(match_src(s, "nx.example.com", ~0ULL, &m), LISTS_NXDOMAIN);
	CU_ASSERT_EQUAL(m.source, 4);
	CU_ASSERT_EQUAL(match(s, "a.nx.example.com"), LISTS_NXDOMAIN);
	CU_ASSERT_EQUAL(match(s, "ok.nx.example.com"), LISTS_ALLOW);
	CU_ASSERT_EQUAL(match(s, "nodata.example.com"), LISTS_NODATA);
	CU_ASSERT_EQUAL(match(s, "x.nodata.example.com"), LISTS_NONE); /* exact trigger */
	CU_ASSERT_EQUAL(match(s, "drop.example.com"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "example.com"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "rpz.local"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "ns.rpz.local"), LISTS_NONE);
	lists_free(s);
}

static const struct lists_record *find_record(const struct lists_match *m, uint16_t type, unsigned nth)
{
	for (unsigned i = 0; i < m->record_count; i++)
		if (m->records[i].type == type && nth-- == 0)
			return &m->records[i];
	return NULL;
}

static void test_lists_rpz_local_data_returns_records(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	load(s, rpz_zone, LISTS_RPZ, 4, false);
	struct lists_match m;
	CU_ASSERT_EQUAL_FATAL(match_src(s, "local.example.com", ~0ULL, &m), LISTS_LOCAL_DATA);
	CU_ASSERT_EQUAL(m.source, 4);
	CU_ASSERT_EQUAL(m.record_count, 3);
	const struct lists_record *a1 = find_record(&m, WIRE_TYPE_A, 0), *a2 = find_record(&m, WIRE_TYPE_A, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a2);
	CU_ASSERT_EQUAL(a1->ttl, 120);
	CU_ASSERT_EQUAL(a1->rdlength, 4);
	CU_ASSERT_EQUAL(memcmp(a1->rdata, "\xc0\x00\x02\x01", 4), 0);
	CU_ASSERT_EQUAL(a2->ttl, 300); /* $TTL */
	CU_ASSERT_EQUAL(memcmp(a2->rdata, "\xc0\x00\x02\x02", 4), 0);
	const struct lists_record *t = find_record(&m, WIRE_TYPE_TXT, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	static const char txt[] = "\x11" "blocked by policy" "\x09" "see admin";
	CU_ASSERT_EQUAL(t->rdlength, sizeof(txt) - 1);
	CU_ASSERT_EQUAL(memcmp(t->rdata, txt, sizeof(txt) - 1), 0);

	CU_ASSERT_EQUAL_FATAL(match_src(s, "v6.example.com", ~0ULL, &m), LISTS_LOCAL_DATA);
	CU_ASSERT_EQUAL_FATAL(m.record_count, 1);
	CU_ASSERT_EQUAL(m.records[0].type, WIRE_TYPE_AAAA);
	CU_ASSERT_EQUAL(m.records[0].ttl, 60);
	CU_ASSERT_EQUAL(m.records[0].rdlength, 16);

	CU_ASSERT_EQUAL_FATAL(match_src(s, "mail.example.com", ~0ULL, &m), LISTS_LOCAL_DATA);
	CU_ASSERT_EQUAL_FATAL(m.record_count, 1);
	static const uint8_t mx[] = "\x00\x0a\x02mx\x07" "example\x03net";
	CU_ASSERT_EQUAL(m.records[0].type, WIRE_TYPE_MX);
	CU_ASSERT_EQUAL(m.records[0].rdlength, sizeof(mx));
	CU_ASSERT_EQUAL(memcmp(m.records[0].rdata, mx, sizeof(mx)), 0);

	CU_ASSERT_EQUAL_FATAL(match_src(s, "alias.example.com", ~0ULL, &m), LISTS_LOCAL_DATA);
	CU_ASSERT_EQUAL_FATAL(m.record_count, 1);
	static const uint8_t cn[] = "\x06walled\x07" "example\x03net";
	CU_ASSERT_EQUAL(m.records[0].type, WIRE_TYPE_CNAME);
	CU_ASSERT_EQUAL(m.records[0].rdlength, sizeof(cn));
	CU_ASSERT_EQUAL(memcmp(m.records[0].rdata, cn, sizeof(cn)), 0);
	lists_free(s);
}

static void test_lists_rpz_origin_from_soa_and_relative_names(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	struct lists_report r = load(s,
	                             "policy.example. 3600 SOA ns. admin. 1 2 3 4 5\n"
	                             "policy.example. NS ns.\n"
	                             "Bad.Example.Com.Policy.Example. CNAME .\n"
	                             "*.wild.example CNAME *.\n"
	                             "cn.example CNAME target\n", /* relative target: origin appended */
	                             LISTS_RPZ, 0, false);
	CU_ASSERT_EQUAL(r.rules, 3);
	CU_ASSERT_EQUAL(r.bad, 0);
	CU_ASSERT_EQUAL(r.skipped, 0);
	CU_ASSERT_EQUAL(match(s, "bad.example.com"), LISTS_NXDOMAIN);
	CU_ASSERT_EQUAL(match(s, "wild.example"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "x.wild.example"), LISTS_NODATA);
	CU_ASSERT_EQUAL(match(s, "policy.example"), LISTS_NONE);
	struct lists_match m;
	CU_ASSERT_EQUAL_FATAL(match_src(s, "cn.example", ~0ULL, &m), LISTS_LOCAL_DATA);
	static const uint8_t cn[] = "\x06target\x06policy\x07" "example";
	CU_ASSERT_EQUAL_FATAL(m.records[0].rdlength, sizeof(cn));
	CU_ASSERT_EQUAL(memcmp(m.records[0].rdata, cn, sizeof(cn)), 0);
	lists_free(s);
}

static void test_lists_rpz_malformed_records_are_bad(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	struct lists_report r = load(s,
	                             "$ORIGIN rpz.\n"               /* 1 */
	                             "a.example CNAME\n"            /* 2 bad: no target */
	                             "b.example TXT \"unterminated\n" /* 3 bad */
	                             "c.example MX 70000 mx.\n"      /* 4 bad */
	                             "d.example CH A 192.0.2.1\n"    /* 5 bad class: taken as type, skipped */
	                             "$BOGUS x\n"                    /* 6 bad */
	                             "e.example A (192.0.2.1\n"      /* 7 bad: open at end */
	                             "f.example A 192.0.2.1\n",      /* 8 swallowed by 7 */
	                             LISTS_RPZ, 0, false);
	CU_ASSERT_EQUAL(r.rules, 0);
	CU_ASSERT_EQUAL(r.bad, 5);
	CU_ASSERT_EQUAL(r.skipped, 1);
	CU_ASSERT_EQUAL(r.first_bad_lines[0], 2);
	CU_ASSERT_EQUAL(r.first_bad_lines[1], 3);
	CU_ASSERT_EQUAL(r.first_bad_lines[2], 4);
	CU_ASSERT_EQUAL(r.first_bad_lines[3], 6);
	CU_ASSERT_EQUAL(r.first_bad_lines[4], 7);
	lists_free(s);
}

static void test_lists_lines_with_nul_bytes_are_bad_in_order(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	static const char dom[] = "a.example\n# c\0x\nb b\nc.example\n";
	FILE *f = fmemopen((void *)dom, sizeof(dom) - 1, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	struct lists_report r;
	CU_ASSERT_EQUAL(lists_load_stream(s, f, LISTS_DOMAINS, 0, false, &r), 0);
	fclose(f);
	CU_ASSERT_EQUAL(r.rules, 2);
	CU_ASSERT_EQUAL(r.bad, 2);
	CU_ASSERT_EQUAL(r.first_bad_lines[0], 2);
	CU_ASSERT_EQUAL(r.first_bad_lines[1], 3);
	/* In RPZ the record that the line belongs to is bad, counted where it starts. */
	static const char rpz[] = "x.example A (\n\0\n 192.0.2.1 )\ny.example CNAME .\n\0\n";
	f = fmemopen((void *)rpz, sizeof(rpz) - 1, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(lists_load_stream(s, f, LISTS_RPZ, 1, false, &r), 0);
	fclose(f);
	CU_ASSERT_EQUAL(r.rules, 1);
	CU_ASSERT_EQUAL(r.bad, 2);
	CU_ASSERT_EQUAL(r.first_bad_lines[0], 1);
	CU_ASSERT_EQUAL(r.first_bad_lines[1], 5);
	CU_ASSERT_EQUAL(match(s, "x.example"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "y.example"), LISTS_NXDOMAIN);
	lists_free(s);
}

static void test_lists_rpz_in_allow_list_allows(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	load(s, "example.com\n", LISTS_DOMAINS, 0, false);
	load(s, "$ORIGIN allow.rpz.\nfine.example.com CNAME .\n", LISTS_RPZ, 1, true);
	CU_ASSERT_EQUAL(match(s, "fine.example.com"), LISTS_ALLOW);
	CU_ASSERT_EQUAL(match(s, "other.example.com"), LISTS_BLOCK);
	lists_free(s);
}

/* ------------------------------------------------------------------ */
/* The set itself */

static void test_lists_empty_set_matches_nothing(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	struct lists_match m;
	CU_ASSERT_EQUAL(match_src(s, "example.com", ~0ULL, &m), LISTS_NONE);
	CU_ASSERT_EQUAL(m.verdict, LISTS_NONE);
	CU_ASSERT_EQUAL(m.source, -1);
	CU_ASSERT_EQUAL(lists_match(s, (const uint8_t *)"", 1, ~0ULL, &m), LISTS_NONE); /* the root */
	CU_ASSERT_EQUAL(lists_count(s), 0);
	struct lists_report r = load(s, "", LISTS_DOMAINS, 0, false);
	CU_ASSERT_EQUAL(r.rules + r.bad + r.skipped, 0);
	lists_free(s);
	lists_free(NULL);
}

static void test_lists_match_rejects_malformed_wire_names(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(lists_add_name(s, "com", true, 0, false), 0);
	static const uint8_t overrun[] = "\x07" "example\x09" "com";   /* label past the end */
	static const uint8_t noroot[] = "\x07" "example\x03" "com";    /* length without the root */
	struct lists_match m;
	CU_ASSERT_EQUAL(lists_match(s, overrun, sizeof(overrun), ~0ULL, &m), LISTS_NONE);
	CU_ASSERT_EQUAL(lists_match(s, noroot, sizeof(noroot) - 1, ~0ULL, &m), LISTS_NONE);
	CU_ASSERT_EQUAL(lists_match(s, noroot, sizeof(noroot), ~0ULL, &m), LISTS_BLOCK);
	lists_free(s);
}

static void test_lists_add_name_exact_subtree_and_invalid(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(lists_add_name(s, "exact.example", false, 0, false), 0);
	CU_ASSERT_EQUAL(lists_add_name(s, "Tree.Example.", true, 1, false), 0);
	CU_ASSERT_EQUAL(lists_add_name(s, "*.below.example", false, 2, false), 0);
	CU_ASSERT_EQUAL(lists_add_name(s, "bad name", false, 0, false), -1);
	CU_ASSERT_EQUAL(lists_add_name(s, "", false, 0, false), -1);
	CU_ASSERT_EQUAL(lists_add_name(s, ".", false, 0, false), -1);
	CU_ASSERT_EQUAL(lists_add_name(s, "*", false, 0, false), -1);
	CU_ASSERT_EQUAL(lists_add_name(s, "a.*.example", false, 0, false), -1);
	CU_ASSERT_EQUAL(match(s, "exact.example"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "x.exact.example"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "tree.example"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "x.tree.example"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(match(s, "below.example"), LISTS_NONE);
	CU_ASSERT_EQUAL(match(s, "x.below.example"), LISTS_BLOCK);
	CU_ASSERT_EQUAL(lists_count(s), 4); /* exact, tree + tree's subtree, below */
	/* Adding a rule twice changes nothing. */
	CU_ASSERT_EQUAL(lists_add_name(s, "exact.example", false, 0, false), 0);
	CU_ASSERT_EQUAL(lists_count(s), 4);
	lists_free(s);
}

static void test_lists_many_rules_grow_the_table(void)
{
	struct lists_set *s = lists_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	char name[64];
	for (int i = 0; i < 50000; i++) {
		snprintf(name, sizeof(name), "host%d.zone%d.example", i, i % 97);
		CU_ASSERT_EQUAL_FATAL(lists_add_name(s, name, i % 2 == 0, i % 64, false), 0);
	}
	CU_ASSERT_EQUAL(lists_count(s), 75000);
	for (int i = 0; i < 50000; i += 7) {
		snprintf(name, sizeof(name), "host%d.zone%d.example", i, i % 97);
		CU_ASSERT_EQUAL(source_of(s, name, ~0ULL), i % 64);
		snprintf(name, sizeof(name), "sub.host%d.zone%d.example", i, i % 97);
		CU_ASSERT_EQUAL(match(s, name), i % 2 == 0 ? LISTS_BLOCK : LISTS_NONE);
		snprintf(name, sizeof(name), "host%d.zone%d.example", i, (i + 1) % 97);
		CU_ASSERT_EQUAL(match(s, name), LISTS_NONE);
	}
	lists_free(s);
}

int main(void)
{
	static const struct unit_test tests[] = {
		T(test_lists_hosts_parses_rules_skips_and_bad_lines),
		T(test_lists_hosts_rule_is_exact_name_only),
		T(test_lists_domains_parses_rules_and_bad_lines),
		T(test_lists_domains_counts_dotdot_and_overlong_names_bad),
		T(test_lists_domains_rule_covers_name_and_subtree),
		T(test_lists_wildcard_matches_only_below),
		T(test_lists_parent_of_rule_is_not_matched),
		T(test_lists_matching_ignores_case),
		T(test_lists_deep_names_match_their_ancestors),
		T(test_lists_adblock_parses_rules_and_skips_other_kinds),
		T(test_lists_allow_list_beats_block_list),
		T(test_lists_adblock_exception_beats_block_of_other_source),
		T(test_lists_source_mask_filters_rules),
		T(test_lists_rejects_bad_source_and_unreadable_file),
		T(test_lists_load_file_reads_a_file),
		T(test_lists_rpz_parses_triggers_and_counts_lines),
		T(test_lists_rpz_verdicts),
		T(test_lists_rpz_local_data_returns_records),
		T(test_lists_rpz_origin_from_soa_and_relative_names),
		T(test_lists_rpz_malformed_records_are_bad),
		T(test_lists_lines_with_nul_bytes_are_bad_in_order),
		T(test_lists_rpz_in_allow_list_allows),
		T(test_lists_empty_set_matches_nothing),
		T(test_lists_match_rejects_malformed_wire_names),
		T(test_lists_add_name_exact_subtree_and_invalid),
		T(test_lists_many_rules_grow_the_table),
	};
	return unit_run("lists", NULL, NULL, tests, UNIT_COUNT(tests));
}
