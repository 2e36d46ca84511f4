/* lists.h -- block and allow lists: file parsers and the compiled set that
 * answers "is this name listed, and by which source?".
 *
 * A set is built by one thread (start-up or reload) and then only read:
 * any number of threads may call lists_match on it without locks.  A reload
 * builds a new set aside and the caller swaps the pointer.
 *
 * Rule semantics, by format:
 *   hosts   "0.0.0.0 name" / "127.0.0.1 name" / "::" ... : the name exactly.
 *   domains one name per line: the name and every name under it.
 *           "*.name": only the names under it.
 *   adblock "||name^" (optionally "$important" etc. options are ignored):
 *           the name and every name under it; "@@||name^" is an allow rule
 *           even in a block list; any other rule kind is counted as skipped.
 *   rpz     RFC-draft Response Policy Zone QNAME triggers (zone-file syntax,
 *           owner names relative to the RPZ origin): "name CNAME ." NXDOMAIN,
 *           "name CNAME *." NODATA, "name CNAME rpz-passthru." allow,
 *           "*.name" for the names under it; any other record is local data
 *           answered instead (A, AAAA, TXT, CNAME to a real name, ...).
 * Allow beats block: if any allow rule matches a name, it is not blocked.
 * Comments: lines starting with '#' (and ';' in rpz, '!' in adblock).
 */
#ifndef MXR_LISTS_H
#define MXR_LISTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LISTS_MAX_SOURCES 64

enum lists_format { LISTS_HOSTS = 0, LISTS_DOMAINS, LISTS_ADBLOCK, LISTS_RPZ };

enum lists_verdict {
	LISTS_NONE = 0,     /* no rule matches */
	LISTS_ALLOW,        /* an allow rule matches (it wins) */
	LISTS_BLOCK,        /* blocked: the source's configured action applies */
	LISTS_NXDOMAIN,     /* RPZ CNAME . */
	LISTS_NODATA,       /* RPZ CNAME *. */
	LISTS_LOCAL_DATA,   /* RPZ local data: answer with match->records */
};

/* One RPZ local-data record, owned by the set. */
struct lists_record {
	uint16_t type;
	uint32_t ttl;
	uint16_t rdlength;
	const uint8_t *rdata;   /* uncompressed wire RDATA */
};

struct lists_match {
	enum lists_verdict verdict;
	int source;                         /* index given at load, -1 with LISTS_NONE */
	const struct lists_record *records; /* LISTS_LOCAL_DATA: every record of the rule */
	unsigned record_count;
};

/* What loading one file found. */
struct lists_report {
	unsigned long rules;      /* rules added */
	unsigned long skipped;    /* lines of rule kinds we do not apply (adblock cosmetic rules...) */
	unsigned long bad;        /* malformed lines */
	unsigned long first_bad_lines[8]; /* their line numbers, the first few */
};

struct lists_set;

/* An empty set.  Returns NULL on memory exhaustion. */
struct lists_set *lists_new(void);

/* Read the file at path in format fmt into set, its rules belonging to
 * source (0..LISTS_MAX_SOURCES-1); allow makes every rule of the file an
 * allow rule.  Bad lines are skipped and counted, never fatal.  Returns 0,
 * or -1 if the file cannot be read (message in err). */
int lists_load_file(struct lists_set *set, const char *path, enum lists_format fmt, int source, bool allow,
                    struct lists_report *report, char *err, size_t errlen);

/* The same from an open stream (tests, fuzzing).  Each load resets *report
 * (which may be NULL).  Returns -1 on memory exhaustion or a source outside
 * 0..LISTS_MAX_SOURCES-1. */
int lists_load_stream(struct lists_set *set, FILE *in, enum lists_format fmt, int source, bool allow,
                      struct lists_report *report);

/* Add one rule by hand (admin actions): name in presentation form, exact
 * or with its subtree.  Returns 0, or -1 if the name is invalid. */
int lists_add_name(struct lists_set *set, const char *name, bool subtree, int source, bool allow);

/* Find the verdict for qname (canonical lower-case wire form, as
 * wire_parse_query makes it: the name is not lower-cased here) among the
 * rules of the sources whose bit is set in source_mask: allow rules first,
 * then the most specific blocking rule.  Never allocates.  Returns the
 * verdict (also in *match). */
enum lists_verdict lists_match(const struct lists_set *set, const uint8_t *qname, size_t qname_len,
                               uint64_t source_mask, struct lists_match *match);

/* Rules in the set, and bytes it holds. */
size_t lists_count(const struct lists_set *set);
size_t lists_bytes(const struct lists_set *set);

/* Free the set and everything in it.  Accepts NULL. */
void lists_free(struct lists_set *set);

#endif
