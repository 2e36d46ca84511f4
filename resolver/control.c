/* control.c -- the local control socket that mxresolvectl talks to
 *
 * One thread polls the listening socket and an eventfd that control_free
 * writes to stop it.  Requests are served one at a time: accept, read one
 * line (at most CONTROL_LINE_MAX bytes, within CONTROL_READ_TIMEOUT_MS of
 * the accept, so a client that connects and says nothing costs the others
 * at most that long), carry it out, write the reply, close.  Serving one at
 * a time is deliberate: the commands are rare and operator-driven, and
 * flushes are serialized by the cache's writer anyway.
 *
 * A reply is built whole in memory before the first byte is sent, so that a
 * failure half-way (an LMDB error during a dump) still turns into a clean
 * "error: ..." and a slow reader never holds a cache transaction.  Dumps are
 * capped at CONTROL_DUMP_MAX_LINES lines and CONTROL_REPLY_MAX_BYTES bytes.
 *
 * Every send uses MSG_NOSIGNAL: a client that went away must not raise
 * SIGPIPE in the daemon.
 *
 * control_run is the same command path without the socket, for the web API
 * in its own threads: one control_execute serves both, and each call gets
 * its own struct control_env so that it shares no buffer with the control
 * thread.  Access to the socket is decided by the file's mode; an in-process
 * caller has already been let in by its own rules (the web token).
 */
#include "control.h"

#include "cache.h"
#include "config.h"
#include "log.h"
#include "server.h"
#include "stats.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CONTROL_LINE_MAX 1024             /* request bytes, without the newline */
#define CONTROL_READ_TIMEOUT_MS 2000      /* from accept to a complete line */
#define CONTROL_WRITE_TIMEOUT_MS 5000     /* longest wait for the client to take more bytes */
#define CONTROL_DRAIN_MS 100              /* reading what a rejected client still sends */
#define CONTROL_DRAIN_MAX_BYTES 65536
#ifndef CONTROL_DUMP_MAX_LINES /* overridable so that a test build can reach it */
#define CONTROL_DUMP_MAX_LINES 100000
#endif
#define CONTROL_REPLY_MAX_BYTES (64u << 20)
#define CONTROL_MAX_ARGS 8

#define CONTROL_USAGE                                                                                  \
	"usage: stats | cache dump [SUFFIX] | cache lookup NAME TYPE | cache flush NAME [TYPE] | "  \
	"cache flush --suffix SUFFIX | cache flush --partition general|mail|dnsbl | lists reload"

/* What the commands work on.  The socket thread keeps one for its life;
 * control_run makes one per call, so that callers in other threads (the web
 * server's) never share the lookup buffer with it or with each other. */
struct control_env {
	struct server *srv;     /* may be NULL: stats then shows the cache part only */
	struct cache *cache;    /* may be NULL: cache commands answer "error: no cache" */
	uint8_t *lookup_buf;    /* forms copied by cache_lookup; grown on demand */
	size_t lookup_cap;
};

struct control {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd;
	int stop_fd;            /* eventfd: readable once control_free wants the thread gone */
	dev_t sock_dev;         /* the socket file we made, so that free unlinks only ours */
	ino_t sock_ino;
	bool started;
	pthread_t thread;
	struct control_env env;
};

/* ------------------------------------------------------------------ */
/* The reply buffer */

struct reply {
	char *p;
	size_t len, cap;
	bool oom;               /* an append failed: the reply is replaced by an error */
	bool full;              /* CONTROL_REPLY_MAX_BYTES reached: appends are dropped */
};

static void reply_add(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reply_add(struct reply *r, const char *fmt, ...)
{
	if (r->oom || r->full)
		return;
	for (;;) {
		va_list ap;
		size_t room = r->cap - r->len;
		va_start(ap, fmt);
		int n = vsnprintf(r->p ? r->p + r->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			r->oom = true;
			return;
		}
		if ((size_t)n < room) {
			r->len += (size_t)n;
			return;
		}
		if (r->len + (size_t)n + 1 > CONTROL_REPLY_MAX_BYTES) {
			r->full = true;
			return;
		}
		size_t ncap = r->cap ? r->cap : 4096;
		while (ncap < r->len + (size_t)n + 1)
			ncap *= 2;
		char *np = realloc(r->p, ncap);
		if (np == NULL) {
			r->oom = true;
			return;
		}
		r->p = np;
		r->cap = ncap;
	}
}

static void reply_reset(struct reply *r)
{
	r->len = 0;
	r->oom = false;
	r->full = false;
	if (r->p)
		r->p[0] = '\0';
}

/* Replace whatever was built with "error: <msg>". */
static void reply_error(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reply_error(struct reply *r, const char *fmt, ...)
{
	char msg[CONTROL_LINE_MAX + 256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	reply_reset(r);
	reply_add(r, "error: %s\n", msg);
}

static void reply_too_long(struct reply *r)
{
	reply_error(r, "request line too long (max %d bytes)", CONTROL_LINE_MAX);
}

/* ------------------------------------------------------------------ */
/* Names of things (types and rcodes are wire's) */

static const char *dnssec_name(unsigned d)
{
	switch (d) {
	case CACHE_DNSSEC_SECURE: return "secure";
	case CACHE_DNSSEC_INSECURE: return "insecure";
	case CACHE_DNSSEC_BOGUS: return "bogus";
	case CACHE_DNSSEC_INDETERMINATE: return "indeterminate";
	default: return "unknown";
	}
}

static const char *const control_part_names[CACHE_PART_COUNT] = { "general", "mail", "dnsbl" };

static const char *part_name(unsigned p)
{
	return p < CACHE_PART_COUNT ? control_part_names[p] : "unknown";
}

/* ------------------------------------------------------------------ */
/* Entry header lines and records */

/* "NAME TYPE PARTITION TTL_LEFT STATE RCODE DNSSEC SIZE" (see control.h). */
static void add_entry_line(struct reply *r, const uint8_t *qname, size_t qname_len, uint16_t qtype,
                           uint16_t qclass, const struct cache_record *rec, int64_t now)
{
	char name[WIRE_MAX_NAME * 4 + 2], tbuf[16], rbuf[16];
	if (wire_name_to_text(qname, qname_len, name, sizeof name) == 0)
		snprintf(name, sizeof name, "<malformed>");
	int64_t left = rec->expires > now ? rec->expires - now : 0;
	const char *ty = wire_type_name(qtype, tbuf, sizeof tbuf);
	char tcls[32];
	/* The resolver only caches IN; another class is shown after the type. */
	if (qclass != WIRE_CLASS_IN)
		snprintf(tcls, sizeof tcls, "%s/CLASS%u", ty, (unsigned)qclass);
	else
		snprintf(tcls, sizeof tcls, "%s", ty);
	reply_add(r, "%s %s %s %" PRId64 " %s %s %s %" PRIu64 "\n", name, tcls, part_name(rec->partition), left,
	          now < rec->expires ? "fresh" : "stale", wire_rcode_name(rec->rcode, rbuf, sizeof rbuf),
	          dnssec_name(rec->dnssec), (uint64_t)rec->full_len + rec->plain_len);
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read the possibly compressed name at *off in msg into uncompressed wire
 * form (out: WIRE_MAX_NAME bytes); advance *off past it.  Pointers must go
 * backwards, which also bounds the loop.  Returns the length or 0. */
static size_t read_name(const uint8_t *msg, size_t len, size_t *off, uint8_t *out)
{
	size_t p = *off, n = 0, end = 0;
	bool jumped = false;
	for (;;) {
		if (p >= len)
			return 0;
		uint8_t l = msg[p];
		if ((l & 0xC0) == 0xC0) {
			if (p + 1 >= len)
				return 0;
			size_t to = (size_t)(l & 0x3F) << 8 | msg[p + 1];
			if (!jumped)
				end = p + 2;
			jumped = true;
			if (to >= p)
				return 0;
			p = to;
			continue;
		}
		if (l & 0xC0)
			return 0;
		if (p + 1 + l > len || n + 1 + l > WIRE_MAX_NAME)
			return 0;
		memcpy(out + n, msg + p, (size_t)l + 1);
		n += (size_t)l + 1;
		p += (size_t)l + 1;
		if (l == 0)
			break;
	}
	*off = jumped ? end : p;
	return n;
}

/* Append the presentation form of the name at *off (advanced); false if malformed. */
static bool add_name(struct reply *r, const uint8_t *msg, size_t len, size_t *off)
{
	uint8_t w[WIRE_MAX_NAME];
	char t[WIRE_MAX_NAME * 4 + 2];
	size_t wl = read_name(msg, len, off, w);
	if (wl == 0 || wire_name_to_text(w, wl, t, sizeof t) == 0)
		return false;
	reply_add(r, "%s", t);
	return true;
}

static void add_hex(struct reply *r, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		reply_add(r, "%02X", p[i]);
}

/* The rdata of one RR (rd..rd+rdlen inside msg) in presentation form; the
 * RFC 3597 \# form when the type is not one we spell out or the rdata does
 * not parse as that type. */
static void add_rdata(struct reply *r, const uint8_t *msg, size_t len, uint16_t type, size_t rd, size_t rdlen)
{
	size_t mark = r->len, off = rd, end = rd + rdlen;
	char a[INET6_ADDRSTRLEN];
	bool ok = false;

	switch (type) {
	case WIRE_TYPE_A:
		if (rdlen == 4 && inet_ntop(AF_INET, msg + rd, a, sizeof a)) {
			reply_add(r, "%s", a);
			ok = true;
		}
		break;
	case WIRE_TYPE_AAAA:
		if (rdlen == 16 && inet_ntop(AF_INET6, msg + rd, a, sizeof a)) {
			reply_add(r, "%s", a);
			ok = true;
		}
		break;
	case WIRE_TYPE_NS:
	case WIRE_TYPE_CNAME:
	case WIRE_TYPE_PTR:
		ok = add_name(r, msg, end, &off) && off == end;
		break;
	case WIRE_TYPE_MX:
		if (rdlen > 2) {
			reply_add(r, "%u ", (unsigned)rd16(msg + rd));
			off += 2;
			ok = add_name(r, msg, end, &off) && off == end;
		}
		break;
	case WIRE_TYPE_SRV:
		if (rdlen > 6) {
			reply_add(r, "%u %u %u ", (unsigned)rd16(msg + rd), (unsigned)rd16(msg + rd + 2),
			          (unsigned)rd16(msg + rd + 4));
			off += 6;
			ok = add_name(r, msg, end, &off) && off == end;
		}
		break;
	case WIRE_TYPE_SOA:
		ok = add_name(r, msg, end, &off);
		if (ok) {
			reply_add(r, " ");
			ok = add_name(r, msg, end, &off) && end - off == 20;
		}
		if (ok)
			reply_add(r, " %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32, rd32(msg + off),
			          rd32(msg + off + 4), rd32(msg + off + 8), rd32(msg + off + 12), rd32(msg + off + 16));
		break;
	case WIRE_TYPE_TXT:
		ok = rdlen > 0;
		while (ok && off < end) {
			size_t sl = msg[off++];
			if (off + sl > end) {
				ok = false;
				break;
			}
			reply_add(r, "%s\"", off - 1 == rd ? "" : " ");
			for (size_t i = 0; i < sl; i++) {
				uint8_t c = msg[off + i];
				if (c == '"' || c == '\\')
					reply_add(r, "\\%c", c);
				else if (c < 0x20 || c > 0x7E)
					reply_add(r, "\\%03u", c);
				else
					reply_add(r, "%c", c);
			}
			reply_add(r, "\"");
			off += sl;
		}
		break;
	case WIRE_TYPE_TLSA:
		if (rdlen >= 3) {
			reply_add(r, "%u %u %u ", msg[rd], msg[rd + 1], msg[rd + 2]);
			add_hex(r, msg + rd + 3, rdlen - 3);
			ok = true;
		}
		break;
	default:
		break;
	}
	if (ok)
		return;
	/* Undo a partial rendering (appends only ever grow len) and fall back. */
	if (!r->oom && !r->full && r->p) {
		r->len = mark;
		r->p[mark] = '\0';
	}
	reply_add(r, "\\# %zu", rdlen);
	if (rdlen) {
		reply_add(r, " ");
		add_hex(r, msg + rd, rdlen);
	}
}

/* Print every RR of the message inside form, one line each, under a
 * ";; answer" / ";; authority" / ";; additional" line per non-empty
 * section; TTLs are shown as they would be served now (stored minus age).
 * Returns 0, or -1 if the message does not parse. */
static int add_records(struct reply *r, const uint8_t *form, size_t form_len, uint32_t age)
{
	static const char *const sect[3] = { "answer", "authority", "additional" };
	const uint8_t *msg;
	size_t len;
	if (wire_form_message(form, form_len, &msg, &len) != 0 || len < WIRE_HEADER_LEN)
		return -1;
	unsigned qd = rd16(msg + 4), counts[3] = { rd16(msg + 6), rd16(msg + 8), rd16(msg + 10) };
	size_t off = WIRE_HEADER_LEN;
	uint8_t w[WIRE_MAX_NAME];
	for (unsigned i = 0; i < qd; i++) {
		if (read_name(msg, len, &off, w) == 0 || off + 4 > len)
			return -1;
		off += 4;
	}
	for (int s = 0; s < 3; s++) {
		if (counts[s])
			reply_add(r, ";; %s\n", sect[s]);
		for (unsigned i = 0; i < counts[s]; i++) {
			char owner[WIRE_MAX_NAME * 4 + 2], tbuf[16];
			size_t wl = read_name(msg, len, &off, w);
			if (wl == 0 || off + 10 > len || wire_name_to_text(w, wl, owner, sizeof owner) == 0)
				return -1;
			uint16_t type = rd16(msg + off), cls = rd16(msg + off + 2);
			uint32_t ttl = rd32(msg + off + 4);
			size_t rdlen = rd16(msg + off + 8);
			off += 10;
			if (off + rdlen > len)
				return -1;
			ttl = ttl > age ? ttl - age : 0;
			reply_add(r, "%s %" PRIu32 " ", owner, ttl);
			if (cls == WIRE_CLASS_IN)
				reply_add(r, "IN ");
			else
				reply_add(r, "CLASS%u ", (unsigned)cls);
			reply_add(r, "%s ", wire_type_name(type, tbuf, sizeof tbuf));
			add_rdata(r, msg, len, type, off, rdlen);
			reply_add(r, "\n");
			off += rdlen;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Commands */

static int64_t wall_now(void)
{
	return (int64_t)time(NULL);
}

static void cmd_stats(struct control_env *env, struct reply *r)
{
	reply_add(r, "ok\n");
	if (env->srv != NULL) {
		uint64_t v[STATS_COUNT], inflight = 0;
		server_get_stats(env->srv, v, &inflight);
		for (int i = 0; i < STATS_COUNT; i++)
			reply_add(r, "%s %" PRIu64 "\n", stats_name((enum stats_counter)i), v[i]);
		reply_add(r, "inflight %" PRIu64 "\n", inflight);
		struct server_filter_stat fs[64];
		unsigned n = server_filter_stats(env->srv, fs, 64);
		for (unsigned i = 0; i < n; i++)
			reply_add(r,
			          "filter_%s_healthy %d\nfilter_%s_lookups %" PRIu64 "\nfilter_%s_listed %" PRIu64 "\n"
			          "filter_%s_errors %" PRIu64 "\nfilter_%s_timeouts %" PRIu64 "\nfilter_%s_blocked %" PRIu64 "\n",
			          fs[i].name, fs[i].healthy ? 1 : 0, fs[i].name, fs[i].lookups, fs[i].name, fs[i].listed,
			          fs[i].name, fs[i].errors, fs[i].name, fs[i].timeouts, fs[i].name, fs[i].blocked);
	}
	if (env->cache != NULL) {
		struct cache_stats st;
		memset(&st, 0, sizeof st);
		cache_get_stats(env->cache, &st);
		for (int p = 0; p < CACHE_PART_COUNT; p++)
			reply_add(r, "cache_entries_%s %" PRIu64 "\n", control_part_names[p], st.entries[p]);
		for (int p = 0; p < CACHE_PART_COUNT; p++)
			reply_add(r, "cache_bytes_%s %" PRIu64 "\n", control_part_names[p], st.bytes[p]);
		for (int p = 0; p < CACHE_PART_COUNT; p++)
			reply_add(r, "cache_quota_%s %" PRIu64 "\n", control_part_names[p], st.quota[p]);
		reply_add(r, "cache_map_size %" PRIu64 "\n", st.map_size);
		reply_add(r, "cache_map_used %" PRIu64 "\n", st.map_used);
		reply_add(r, "cache_puts %" PRIu64 "\n", st.puts);
		reply_add(r, "cache_put_drops %" PRIu64 "\n", st.put_drops);
		reply_add(r, "cache_evictions %" PRIu64 "\n", st.evictions);
		reply_add(r, "cache_commits %" PRIu64 "\n", st.commits);
		reply_add(r, "cache_set_aside %" PRIu64 "\n", st.set_aside);
		reply_add(r, "cache_damaged %" PRIu64 "\n", st.damaged);
		reply_add(r, "cache_hot_hits %" PRIu64 "\n", st.hot_hits);
		reply_add(r, "cache_write_errors %" PRIu64 "\n", st.write_errors);
	}
}

struct dump_state {
	struct reply *r;
	int64_t now;
	unsigned lines;
	bool truncated;
};

static int dump_one(void *arg, const uint8_t *qname, size_t qname_len, uint16_t qtype, uint16_t qclass,
                    const struct cache_record *rec)
{
	struct dump_state *d = arg;
	/* An entry line is at most about 1.1 kB (a name of \DDD escapes). */
	if (d->lines >= CONTROL_DUMP_MAX_LINES || d->r->len > CONTROL_REPLY_MAX_BYTES - 4096) {
		d->truncated = true;
		return 1;
	}
	add_entry_line(d->r, qname, qname_len, qtype, qclass, rec, d->now);
	d->lines++;
	return 0;
}

/* Convert a presentation name for a command, or reply with an error. */
static size_t name_arg(struct reply *r, const char *text, uint8_t *out)
{
	size_t n = wire_name_from_text(text, out);
	if (n == 0)
		reply_error(r, "invalid name '%s'", text);
	return n;
}

static void cmd_dump(struct control_env *env, struct reply *r, int argc, char **argv)
{
	uint8_t suffix[WIRE_MAX_NAME] = { 0 };
	size_t suffix_len = 1; /* the root: everything */
	if (argc > 3) {
		reply_error(r, "usage: cache dump [SUFFIX]");
		return;
	}
	if (argc == 3 && (suffix_len = name_arg(r, argv[2], suffix)) == 0)
		return;
	struct dump_state d = { .r = r, .now = wall_now() };
	reply_add(r, "ok\n");
	if (cache_walk(env->cache, suffix, suffix_len, -1, d.now, dump_one, &d) < 0) {
		reply_error(r, "cache walk failed");
		return;
	}
	if (d.truncated)
		reply_add(r, "... truncated\n");
}

static void cmd_lookup(struct control_env *env, struct reply *r, int argc, char **argv)
{
	uint8_t qname[WIRE_MAX_NAME];
	size_t qname_len;
	if (argc != 4) {
		reply_error(r, "usage: cache lookup NAME TYPE");
		return;
	}
	if ((qname_len = name_arg(r, argv[2], qname)) == 0)
		return;
	int qtype = wire_type_parse(argv[3]);
	if (qtype < 0) {
		reply_error(r, "invalid type '%s'", argv[3]);
		return;
	}
	int64_t now = wall_now();
	struct cache_record rec;
	int rc;
	for (;;) {
		rc = cache_lookup(env->cache, qname, qname_len, (uint16_t)qtype, WIRE_CLASS_IN, now, &rec,
		                  env->lookup_buf, env->lookup_cap);
		if (rc != -2)
			break;
		size_t need = (size_t)rec.full_len + rec.plain_len;
		uint8_t *nb = realloc(env->lookup_buf, need);
		if (nb == NULL) {
			reply_error(r, "out of memory");
			return;
		}
		env->lookup_buf = nb;
		env->lookup_cap = need;
	}
	if (rc != 0) {
		reply_error(r, "not cached");
		return;
	}
	reply_add(r, "ok\n");
	add_entry_line(r, qname, qname_len, (uint16_t)qtype, WIRE_CLASS_IN, &rec, now);
	uint32_t age = now > rec.stored_at ? (uint32_t)(now - rec.stored_at) : 0;
	if (add_records(r, rec.plain, rec.plain_len, age) != 0)
		reply_add(r, ";; the stored message does not parse\n");
}

static int part_parse(const char *s)
{
	for (int p = 0; p < CACHE_PART_COUNT; p++)
		if (strcmp(s, control_part_names[p]) == 0)
			return p;
	return -1;
}

static void cmd_flush(struct control_env *env, struct reply *r, int argc, char **argv)
{
	uint8_t name[WIRE_MAX_NAME];
	size_t name_len;
	int n;
	if (argc < 3 || argc > 4) {
		reply_error(r, "usage: cache flush NAME [TYPE] | --suffix SUFFIX | --partition general|mail|dnsbl");
		return;
	}
	if (strcmp(argv[2], "--suffix") == 0) {
		if (argc != 4) {
			reply_error(r, "usage: cache flush --suffix SUFFIX");
			return;
		}
		if ((name_len = name_arg(r, argv[3], name)) == 0)
			return;
		n = cache_flush_suffix(env->cache, name, name_len);
	} else if (strcmp(argv[2], "--partition") == 0) {
		int p = argc == 4 ? part_parse(argv[3]) : -1;
		if (p < 0) {
			reply_error(r, "usage: cache flush --partition general|mail|dnsbl");
			return;
		}
		n = cache_flush_partition(env->cache, (enum cache_partition)p);
	} else if (argv[2][0] == '-') {
		reply_error(r, "unknown option '%s'; usage: cache flush NAME [TYPE] | --suffix SUFFIX | "
		               "--partition general|mail|dnsbl", argv[2]);
		return;
	} else {
		int qtype = -1;
		if ((name_len = name_arg(r, argv[2], name)) == 0)
			return;
		if (argc == 4 && (qtype = wire_type_parse(argv[3])) < 0) {
			reply_error(r, "invalid type '%s'", argv[3]);
			return;
		}
		n = cache_flush_name(env->cache, name, name_len, qtype);
	}
	if (n < 0) {
		reply_error(r, "flush failed");
		return;
	}
	reply_add(r, "ok\nflushed %d\n", n);
}

/* Split line in place on blanks; returns the number of words, or -1 if
 * there are more than max. */
static int split_words(char *line, char **argv, int max)
{
	int argc = 0;
	char *save = NULL;
	for (char *w = strtok_r(line, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		if (argc == max)
			return -1;
		argv[argc++] = w;
	}
	return argc;
}

/* Carry out one request line (NUL-terminated, no newline, at most
 * CONTROL_LINE_MAX bytes) into r.  who names the requester in the log lines
 * of commands that change something.  This is the one place both the
 * socket and control_run go through, so the two cannot drift apart. */
static void control_execute(struct control_env *env, const char *line, struct reply *r, const char *who)
{
	char copy[CONTROL_LINE_MAX + 2];
	char *argv[CONTROL_MAX_ARGS];
	snprintf(copy, sizeof copy, "%s", line);
	int argc = split_words(copy, argv, CONTROL_MAX_ARGS);

	if (argc == 0) {
		reply_error(r, "empty request; " CONTROL_USAGE);
		return;
	}
	if (argc < 0) {
		reply_error(r, "too many words; " CONTROL_USAGE);
		return;
	}
	if (strcmp(argv[0], "stats") == 0 && argc == 1) {
		cmd_stats(env, r);
		return;
	}
	if (strcmp(argv[0], "lists") == 0 && argc == 2 && strcmp(argv[1], "reload") == 0) {
		char err[512];
		log_info("control: %s: %s", who, line);
		if (env->srv == NULL || server_reload_lists(env->srv, err, sizeof err) < 0)
			reply_error(r, "%s", env->srv == NULL ? "no server" : err);
		else
			reply_add(r, "ok\n");
		return;
	}
	if (strcmp(argv[0], "help") == 0 && argc == 1) {
		reply_add(r, "ok\n%s\n", CONTROL_USAGE);
		return;
	}
	if (strcmp(argv[0], "cache") == 0 && argc >= 2) {
		bool dump = strcmp(argv[1], "dump") == 0, lookup = strcmp(argv[1], "lookup") == 0,
		     flush = strcmp(argv[1], "flush") == 0;
		if (dump || lookup || flush) {
			if (env->cache == NULL) {
				reply_error(r, "no cache");
				return;
			}
			if (flush) {
				/* Changes are worth a log line naming who asked. */
				log_info("control: %s: %s", who, line);
				cmd_flush(env, r, argc, argv);
			} else if (dump) {
				cmd_dump(env, r, argc, argv);
			} else {
				cmd_lookup(env, r, argc, argv);
			}
			return;
		}
	}
	reply_error(r, "unknown command '%s'; %s", line, CONTROL_USAGE);
}

/* ------------------------------------------------------------------ */
/* Connections */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd (or the stop eventfd) until deadline_ms
 * (CLOCK_MONOTONIC).  Returns 1 ready, 0 timed out, -1 stopping or error. */
static int wait_fd(struct control *ctl, int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		int64_t left = deadline_ms - mono_ms();
		if (left <= 0)
			return 0;
		struct pollfd pf[2] = { { .fd = fd, .events = events }, { .fd = ctl->stop_fd, .events = POLLIN } };
		int n = poll(pf, 2, (int)left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 0;
		if (pf[1].revents)
			return -1;
		return 1;
	}
}

/* Read the request line.  Returns its length (line NUL-terminated without
 * the newline or a trailing CR), -1 on timeout, -2 if too long, -3 on a
 * read error or a stop. */
static int read_line(struct control *ctl, int fd, char *line, size_t cap)
{
	size_t n = 0;
	int64_t deadline = mono_ms() + CONTROL_READ_TIMEOUT_MS;
	for (;;) {
		int w = wait_fd(ctl, fd, POLLIN, deadline);
		if (w == 0)
			return -1;
		if (w < 0)
			return -3;
		ssize_t got = recv(fd, line + n, cap - 1 - n, 0);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return -3;
		}
		char *nl = got > 0 ? memchr(line + n, '\n', (size_t)got) : NULL;
		n += (size_t)got;
		if (nl != NULL || got == 0) {
			/* A newline ends the line; so does EOF (a client without one). */
			size_t l = nl ? (size_t)(nl - line) : n;
			if (l > CONTROL_LINE_MAX)
				return -2;
			if (l > 0 && line[l - 1] == '\r')
				l--;
			line[l] = '\0';
			return (int)l;
		}
		if (n >= cap - 1)
			return -2;
	}
}

/* Send all of buf, giving up when the client takes nothing for
 * CONTROL_WRITE_TIMEOUT_MS or the thread is stopping. */
static void write_all(struct control *ctl, int fd, const char *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(ctl, fd, POLLOUT, mono_ms() + CONTROL_WRITE_TIMEOUT_MS) == 1)
				continue;
		}
		return;
	}
}

/* After the reply: tell the client we are done, and read for a moment what
 * it may still be sending (the tail of an over-long line), so that it sees
 * a clean end of stream rather than a reset. */
static void finish(struct control *ctl, int fd)
{
	char sink[4096];
	size_t total = 0;
	int64_t deadline = mono_ms() + CONTROL_DRAIN_MS;
	shutdown(fd, SHUT_WR);
	while (total < CONTROL_DRAIN_MAX_BYTES && wait_fd(ctl, fd, POLLIN, deadline) == 1) {
		ssize_t n = recv(fd, sink, sizeof sink, 0);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			break;
		if (n > 0)
			total += (size_t)n;
	}
}

static void serve_connection(struct control *ctl, int fd, struct reply *r)
{
	char line[CONTROL_LINE_MAX + 2]; /* the line, a newline, a NUL */
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t cl = sizeof cred;
	getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl);

	reply_reset(r);
	int l = read_line(ctl, fd, line, sizeof line);
	if (l == -3)
		return;
	if (l == -1) {
		reply_error(r, "timed out reading the request (%d ms)", CONTROL_READ_TIMEOUT_MS);
	} else if (l == -2) {
		reply_too_long(r);
	} else {
		char who[64];
		snprintf(who, sizeof who, "uid %ld pid %ld", (long)cred.uid, (long)cred.pid);
		control_execute(&ctl->env, line, r, who);
	}
	if (r->oom) {
		reply_reset(r);
		/* A small static reply cannot fail the way the big one did. */
		static const char msg[] = "error: out of memory\n";
		write_all(ctl, fd, msg, sizeof msg - 1);
	} else if (r->len > 0) {
		write_all(ctl, fd, r->p, r->len);
	}
	finish(ctl, fd);
}

static void *control_thread(void *arg)
{
	struct control *ctl = arg;
	struct reply r = { 0 };
	for (;;) {
		struct pollfd pf[2] = { { .fd = ctl->listen_fd, .events = POLLIN },
			                { .fd = ctl->stop_fd, .events = POLLIN } };
		int n = poll(pf, 2, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_err("control: poll: %s", strerror(errno));
			break;
		}
		if (pf[1].revents)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED) {
				log_warn("control: accept: %s", strerror(errno));
				/* Out of descriptors: do not spin on a listening socket that stays readable. */
				if (wait_fd(ctl, -1, 0, mono_ms() + 100) < 0)
					break;
			}
			continue;
		}
		serve_connection(ctl, fd, &r);
		close(fd);
		/* Do not keep a dump's worth of memory between requests. */
		if (r.cap > (1u << 20)) {
			free(r.p);
			r = (struct reply){ 0 };
		}
	}
	free(r.p);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Life cycle */

struct control *control_new(const struct config *cfg, uid_t owner, gid_t group, char *err, size_t errlen)
{
	struct control *ctl = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	const char *path = cfg ? cfg->control_socket : NULL;

	if (path == NULL || *path == '\0') {
		snprintf(err, errlen, "control: no control socket configured");
		return NULL;
	}
	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(err, errlen, "control socket %s: path longer than %zu bytes", path, sizeof sa.sun_path - 1);
		return NULL;
	}
	ctl = calloc(1, sizeof *ctl);
	if (ctl == NULL) {
		snprintf(err, errlen, "control: out of memory");
		return NULL;
	}
	ctl->listen_fd = -1;
	ctl->stop_fd = -1;
	snprintf(ctl->path, sizeof ctl->path, "%s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "control socket %s: exists and is not a socket", path);
			goto fail;
		}
		/* A socket someone still listens on is not stale: another daemon owns it. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (probe >= 0 && (connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0 || errno == EAGAIN)) {
			close(probe);
			snprintf(err, errlen, "control socket %s: another process is listening on it", path);
			goto fail;
		}
		if (probe >= 0)
			close(probe);
		if (unlink(path) != 0 && errno != ENOENT) {
			snprintf(err, errlen, "control socket %s: removing the stale socket: %s", path, strerror(errno));
			goto fail;
		}
	} else if (errno != ENOENT) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		goto fail;
	}

	ctl->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (ctl->listen_fd < 0) {
		snprintf(err, errlen, "control socket %s: socket: %s", path, strerror(errno));
		goto fail;
	}
	if (bind(ctl->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		snprintf(err, errlen, "control socket %s: bind: %s", path, strerror(errno));
		goto fail;
	}
	if (lstat(path, &st) == 0) {
		ctl->sock_dev = st.st_dev;
		ctl->sock_ino = st.st_ino;
	}
	/* Permissions are set before listen(), so nobody can connect through
	 * the wider mode the umask may have left for a moment. */
	if (chmod(path, 0660) != 0) {
		snprintf(err, errlen, "control socket %s: chmod: %s", path, strerror(errno));
		goto fail_unlink;
	}
	if ((owner != (uid_t)-1 || group != (gid_t)-1) && chown(path, owner, group) != 0) {
		snprintf(err, errlen, "control socket %s: chown: %s", path, strerror(errno));
		goto fail_unlink;
	}
	if (listen(ctl->listen_fd, 16) != 0) {
		snprintf(err, errlen, "control socket %s: listen: %s", path, strerror(errno));
		goto fail_unlink;
	}
	ctl->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctl->stop_fd < 0) {
		snprintf(err, errlen, "control: eventfd: %s", strerror(errno));
		goto fail_unlink;
	}
	ctl->env.lookup_cap = 2 * 65536;
	ctl->env.lookup_buf = malloc(ctl->env.lookup_cap);
	if (ctl->env.lookup_buf == NULL) {
		snprintf(err, errlen, "control: out of memory");
		goto fail_unlink;
	}
	return ctl;

fail_unlink:
	unlink(path);
fail:
	if (ctl->stop_fd >= 0)
		close(ctl->stop_fd);
	if (ctl->listen_fd >= 0)
		close(ctl->listen_fd);
	free(ctl);
	return NULL;
}

int control_start(struct control *ctl, struct server *srv, struct cache *cache, char *err, size_t errlen)
{
	if (ctl == NULL || ctl->started) {
		snprintf(err, errlen, "control: not created or already started");
		return -1;
	}
	ctl->env.srv = srv;
	ctl->env.cache = cache;
	int rc = pthread_create(&ctl->thread, NULL, control_thread, ctl);
	if (rc != 0) {
		snprintf(err, errlen, "control: pthread_create: %s", strerror(rc));
		return -1;
	}
	ctl->started = true;
	return 0;
}

void control_free(struct control *ctl)
{
	struct stat st;
	if (ctl == NULL)
		return;
	if (ctl->started) {
		uint64_t one = 1;
		if (write(ctl->stop_fd, &one, sizeof one) != (ssize_t)sizeof one)
			log_err("control: cannot signal the thread to stop: %s", strerror(errno));
		pthread_join(ctl->thread, NULL);
	}
	/* Unlink only the socket we made, not one a newer daemon put there. */
	if (lstat(ctl->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == ctl->sock_dev &&
	    st.st_ino == ctl->sock_ino)
		unlink(ctl->path);
	close(ctl->listen_fd);
	close(ctl->stop_fd);
	free(ctl->env.lookup_buf);
	free(ctl);
}

char *control_run(struct server *srv, struct cache *cache, const char *line)
{
	struct control_env env = { .srv = srv, .cache = cache };
	struct reply r = { 0 };
	char buf[CONTROL_LINE_MAX + 1];

	/* The same framing as read_line: the line ends at a newline, its
	 * length is checked before a trailing CR is dropped. */
	size_t l = line ? strcspn(line, "\n") : 0;
	if (l > CONTROL_LINE_MAX) {
		reply_too_long(&r);
	} else {
		if (l > 0 && line[l - 1] == '\r')
			l--;
		if (l > 0)
			memcpy(buf, line, l);
		buf[l] = '\0';
		control_execute(&env, buf, &r, "in-process request");
	}
	free(env.lookup_buf);
	if (r.oom || r.p == NULL) {
		free(r.p);
		return NULL;
	}
	return r.p;
}
