/* policy.c -- what is filtered for whom, and the blocked answers */
#include "policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "lists.h"
#include "log.h"

static int policy_load_lists(struct policy *p, const struct config *cfg, char *err, size_t errlen)
{
	for (unsigned i = 0; i < cfg->filter_source_count; i++) {
		const struct config_source *src = &cfg->filter_sources[i];
		if (src->type != CONFIG_SOURCE_LIST)
			continue;
		for (unsigned f = 0; f < src->file_count; f++) {
			struct lists_report rep;
			memset(&rep, 0, sizeof rep);
			char why[256];
			if (lists_load_file(p->lists, src->files[f], (enum lists_format)src->format, (int)i, src->allow, &rep,
			                    why, sizeof why) < 0) {
				snprintf(err, errlen, "source '%s': %s", src->name, why);
				return -1;
			}
			log_info("source '%s': %s: %lu rules, %lu skipped, %lu bad lines", src->name, src->files[f],
			         rep.rules, rep.skipped, rep.bad);
			for (unsigned b = 0; b < rep.bad && b < sizeof rep.first_bad_lines / sizeof rep.first_bad_lines[0]; b++)
				log_warn("%s:%lu: not a rule this format allows; skipped", src->files[f], rep.first_bad_lines[b]);
		}
	}
	return 0;
}

struct policy *policy_new(const struct config *cfg, char *err, size_t errlen)
{
	struct policy *p = calloc(1, sizeof *p);
	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->lists = lists_new();
	p->scopes = acl_new((enum acl_action)0);
	if (p->lists == NULL || p->scopes == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	p->source_count = cfg->filter_source_count;
	for (unsigned i = 0; i < cfg->filter_source_count; i++) {
		const struct config_source *src = &cfg->filter_sources[i];
		struct policy_source *ps = &p->sources[i];
		snprintf(ps->name, sizeof ps->name, "%s", src->name);
		ps->type = src->type;
		ps->action = src->action;
		ps->timeout_ms = src->timeout_ms;
		ps->fail_open = src->fail_open;
		atomic_store(&ps->healthy, true);
		uint64_t bit = 1ull << i;
		if (src->type == CONFIG_SOURCE_LIST) {
			p->list_mask |= bit;
			continue;
		}
		if (src->type == CONFIG_SOURCE_RHSBL)
			p->rhsbl_mask |= bit;
		else
			p->dnsbl_mask |= bit;
		ps->zone_len = wire_name_from_text(src->zone, ps->zone);
		if (ps->zone_len == 0) {
			snprintf(err, errlen, "source '%s': zone '%s' is not a domain name", src->name, src->zone);
			goto fail;
		}
		for (unsigned c = 0; c < src->code_count; c++) {
			if (dnsbl_codes_add(&ps->codes, src->codes[c]) < 0) {
				snprintf(err, errlen, "source '%s': bad code '%s'", src->name, src->codes[c]);
				goto fail;
			}
		}
	}
	for (unsigned i = 0; i < cfg->filter_scope_count; i++) {
		char why[256];
		if (acl_add_value(p->scopes, cfg->filter_scopes[i].network, i + 1, why, sizeof why) < 0) {
			snprintf(err, errlen, "%s:%u: %s", cfg->path, cfg->filter_scopes[i].line, why);
			goto fail;
		}
		p->scope_sources[i + 1] = cfg->filter_scopes[i].sources;
	}
	/* Without scopes every source applies to everyone. */
	p->scope_sources[0] = cfg->filter_scope_count == 0 ? p->list_mask | p->rhsbl_mask | p->dnsbl_mask : 0;
	memcpy(p->sinkhole_a, &((const struct sockaddr_in *)&cfg->sinkhole_a)->sin_addr, 4);
	memcpy(p->sinkhole_aaaa, &((const struct sockaddr_in6 *)&cfg->sinkhole_aaaa)->sin6_addr, 16);
	p->ttl = cfg->filter_ttl;
	if (policy_load_lists(p, cfg, err, errlen) < 0)
		goto fail;
	return p;
fail:
	policy_free(p);
	return NULL;
}

void policy_free(struct policy *p)
{
	if (p == NULL)
		return;
	lists_free(p->lists);
	acl_free(p->scopes);
	free(p);
}

uint64_t policy_client_sources(const struct policy *p, const struct sockaddr *client)
{
	unsigned scope = acl_lookup(p->scopes, client);
	return scope <= CONFIG_MAX_SCOPES ? p->scope_sources[scope] : 0;
}

bool policy_exempt(const struct policy *p, const uint8_t *qname, size_t qname_len)
{
	for (unsigned i = 0; i < p->source_count; i++)
		if (wire_name_under(qname, qname_len, p->sources[i].zone, p->sources[i].zone_len))
			return true;
	return false;
}

static void policy_count_block(struct policy *p, int source)
{
	if (source >= 0)
		atomic_fetch_add_explicit(&p->sources[source].blocked, 1, memory_order_relaxed);
}

bool policy_check_lists(struct policy *p, const struct wire_query *q, uint64_t mask, struct policy_verdict *v)
{
	mask &= p->list_mask;
	if (mask == 0 || policy_exempt(p, q->qname, q->qname_len))
		return false;
	/* The match is read by policy_build_reply in the same thread, right
	 * after this returns. */
	static _Thread_local struct lists_match m;
	for (;;) {
		enum lists_verdict lv = lists_match(p->lists, q->qname, q->qname_len, mask, &m);
		if (lv == LISTS_NONE || lv == LISTS_ALLOW || m.source < 0)
			return false;
		const struct policy_source *ps = &p->sources[m.source];
		policy_count_block(p, m.source);
		if (ps->action == CONFIG_ACTION_LOG_ONLY) {
			/* Logged, and the other sources still have their say: a
			 * log-only rule must not hide another source's block. */
			char name[WIRE_MAX_NAME * 4 + 2];
			if (wire_name_to_text(q->qname, q->qname_len, name, sizeof name) > 0)
				log_info("source '%s' lists %s (log-only)", ps->name, name);
			mask &= ~(1ull << m.source);
			continue;
		}
		v->source = m.source;
		v->ede = WIRE_EDE_BLOCKED;
		v->local = NULL;
		v->block = true;
		switch (lv) {
		case LISTS_NXDOMAIN: v->action = CONFIG_ACTION_NXDOMAIN; break;
		case LISTS_NODATA: v->action = CONFIG_ACTION_NODATA; break;
		case LISTS_LOCAL_DATA: v->action = CONFIG_ACTION_SINKHOLE; v->local = &m; break;
		default: v->action = ps->action; break;
		}
		return true;
	}
}

void policy_dnsbl_verdict(const struct policy *p, int source, struct policy_verdict *v)
{
	v->source = source;
	v->action = p->sources[source].action;
	v->ede = WIRE_EDE_FILTERED;
	v->local = NULL;
	v->block = v->action != CONFIG_ACTION_LOG_ONLY;
}

void policy_note_error(struct policy *p, int source, uint32_t code)
{
	struct policy_source *ps = &p->sources[source];
	atomic_fetch_add_explicit(&ps->errors, 1, memory_order_relaxed);
	int64_t now = time(NULL);
	int64_t last = atomic_load(&ps->last_error_log);
	if (now - last >= 60 && atomic_compare_exchange_strong(&ps->last_error_log, &last, now))
		log_warn("source '%s': error answer %u.%u.%u.%u from the zone (not a listing); %llu so far", ps->name,
		         code >> 24, (code >> 16) & 255, (code >> 8) & 255, code & 255,
		         (unsigned long long)atomic_load(&ps->errors));
}

size_t policy_build_reply(const struct policy *p, const struct wire_query *q, const struct policy_verdict *v,
                          size_t limit, uint8_t *out, size_t cap)
{
	const char *text = v->source >= 0 ? p->sources[v->source].name : NULL;
	struct wire_synth_rr rr[16];
	size_t n = 0;
	if (v->local != NULL) {
		const struct lists_match *m = v->local;
		for (unsigned i = 0; i < m->record_count && n < sizeof rr / sizeof rr[0]; i++) {
			const struct lists_record *r = &m->records[i];
			if (r->type != q->qtype && r->type != WIRE_TYPE_CNAME)
				continue;
			rr[n++] = (struct wire_synth_rr){ r->type, r->ttl, r->rdata, r->rdlength };
		}
		return wire_build_synth(q, WIRE_RCODE_NOERROR, rr, n, v->ede, text, limit, out, cap);
	}
	switch (v->action) {
	case CONFIG_ACTION_NXDOMAIN:
		return wire_build_synth(q, WIRE_RCODE_NXDOMAIN, NULL, 0, v->ede, text, limit, out, cap);
	case CONFIG_ACTION_REFUSED:
		return wire_build_synth(q, WIRE_RCODE_REFUSED, NULL, 0, v->ede, text, limit, out, cap);
	case CONFIG_ACTION_SINKHOLE:
		if (q->qtype == WIRE_TYPE_A)
			rr[n++] = (struct wire_synth_rr){ WIRE_TYPE_A, p->ttl, p->sinkhole_a, 4 };
		else if (q->qtype == WIRE_TYPE_AAAA)
			rr[n++] = (struct wire_synth_rr){ WIRE_TYPE_AAAA, p->ttl, p->sinkhole_aaaa, 16 };
		return wire_build_synth(q, WIRE_RCODE_NOERROR, rr, n, v->ede, text, limit, out, cap);
	case CONFIG_ACTION_NODATA:
	case CONFIG_ACTION_LOG_ONLY:
	default:
		return wire_build_synth(q, WIRE_RCODE_NOERROR, NULL, 0, v->ede, text, limit, out, cap);
	}
}
