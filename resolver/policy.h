/* policy.h -- what is filtered for whom: the sources of the configuration
 * (lists, RHSBL and IP DNSBL zones), the client scopes, the decisions on a
 * question and the blocked answers.
 *
 * A policy is built whole from a configuration (reading the list files) and
 * is then read-only, apart from the per-source health flags and counters,
 * which are atomics.  A reload builds a new one aside; the server swaps the
 * pointer.  The DNS lookups a DNSBL check needs are the server's to make:
 * this module says which names to ask and what their answers mean.
 */
#ifndef MXR_POLICY_H
#define MXR_POLICY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "dnsbl.h"
#include "wire.h"

struct lists_set;
struct acl;

struct policy_source {
	char name[64];
	enum config_source_type type;
	enum config_action action;
	uint8_t zone[WIRE_MAX_NAME];    /* RHSBL/DNSBL: wire form */
	size_t zone_len;
	struct dnsbl_codes codes;
	unsigned timeout_ms;
	bool fail_open;
	/* Written by the resolver thread, read by anyone. */
	_Atomic bool healthy;           /* RFC 5782 §5 probes passed (true until a probe fails) */
	_Atomic uint64_t lookups, listed, errors, timeouts, blocked;
	_Atomic int64_t last_error_log; /* wall-clock second of the last error line */
};

struct policy {
	struct policy_source sources[CONFIG_MAX_SOURCES];
	unsigned source_count;
	uint64_t list_mask;             /* sources that are lists */
	uint64_t rhsbl_mask, dnsbl_mask;
	struct lists_set *lists;
	struct acl *scopes;             /* value: scope index + 1; 0 = no scope matched */
	uint64_t scope_sources[CONFIG_MAX_SCOPES + 1];
	uint8_t sinkhole_a[4], sinkhole_aaaa[16];
	uint32_t ttl;
};

/* Build the policy of cfg, reading every list file.  A file with bad lines
 * loads the good ones and logs the bad line numbers; an unreadable file is
 * an error.  Returns NULL with a message in err. */
struct policy *policy_new(const struct config *cfg, char *err, size_t errlen);

/* Free a policy.  Accepts NULL. */
void policy_free(struct policy *p);

/* The sources that apply to client (bit i = sources[i]): the longest
 * matching scope's, every source when no scope is configured, none when
 * scopes exist and none matches. */
uint64_t policy_client_sources(const struct policy *p, const struct sockaddr *client);

/* Whether qname is under a configured RHSBL/DNSBL zone: such names are
 * never filtered (mail software asks them through us). */
bool policy_exempt(const struct policy *p, const uint8_t *qname, size_t qname_len);

/* What the list sources in mask say about q's name. */
struct policy_verdict {
	bool block;                     /* a reply must be synthesized */
	int source;                     /* index into sources, or -1 */
	enum config_action action;      /* for the block */
	int ede;                        /* WIRE_EDE_BLOCKED or WIRE_EDE_FILTERED */
	const void *local;              /* RPZ local data (struct lists_match), or NULL */
};

/* Check q against the list sources in mask.  Returns true when the name is
 * blocked (or answered from RPZ local data) and fills *v; false when it
 * passes, which includes an allow rule and log-only sources (counted). */
bool policy_check_lists(struct policy *p, const struct wire_query *q, uint64_t mask, struct policy_verdict *v);

/* The reply for a blocked question: the source's action (NXDOMAIN, NODATA,
 * REFUSED, the sinkhole address for A/AAAA and NODATA for other types, or
 * the RPZ local data), EDE 15 "Blocked" for lists or 17 "Filtered" for DNSBL
 * blocks with the source's name as text.  Returns the length, or 0. */
size_t policy_build_reply(const struct policy *p, const struct wire_query *q, const struct policy_verdict *v,
                          size_t limit, uint8_t *out, size_t cap);

/* A verdict for source i (an RHSBL or DNSBL source) that listed the name. */
void policy_dnsbl_verdict(const struct policy *p, int source, struct policy_verdict *v);

/* Count a DNSBL error code for source i and log it at most once a minute. */
void policy_note_error(struct policy *p, int source, uint32_t code);

#endif
