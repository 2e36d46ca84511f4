/* bench_cache.c -- throughput and footprint of the LMDB answer cache
 *
 * A benchmark, not a test: it prints figures and fails only when the cache
 * API itself fails.  In a fresh mkdtemp() directory it stores N answers
 * (default 1,000,000), then looks random ones up from one thread the way a
 * worker does, and reports:
 *
 *   puts/s      from the first cache_put to cache_flush_writes returning,
 *               so the writer's batched commits are inside the figure; a put
 *               refused because the queue is full is retried after a short
 *               sleep (the daemon would drop it instead) and counted
 *   gets/s      hit path only: cache_reader_begin once per batch of 32
 *               cache_get calls on random stored keys, then cache_reader_end
 *   hits/s      the same plus wire_serve_form into a reply buffer (a mix of
 *               DO and non-DO clients): the full cost of a hit short of the
 *               socket
 *   bytes/answer  data.mdb's size and allocated blocks over N, and the
 *               partitions' page bytes from cache_get_stats over N
 *
 * The answers are real messages: three upstream answers shaped like what
 * libunbound hands back for a signed zone (ID 0, QR RD RA AD, the answer
 * with its ECDSA P-256 RRSIG, an OPT with DO) are built by hand once, turned
 * into the two stored forms by wire_prepare_forms once, and each key's
 * question name is then patched into a copy (every name has the same length,
 * so offsets and compression pointers stay valid).  Keys cycle MX, MX, TXT
 * (SPF), A, as a mail server's lookups roughly do; MX and TXT go to the mail
 * partition, A to general.
 *
 * usage: bench_cache [-n ANSWERS] [-l LOOKUPS] [-k]
 *   -k keeps the directory (its path is printed).
 */
#include "cache.h"
#include "log.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BENCH_BATCH 32          /* gets per read transaction, like a worker's recvmmsg batch */
#define BENCH_DIGITS 8          /* d00000000.example.com: up to 10^8 names */
#define BENCH_NTEMPL 3

/* ---- building upstream messages ---------------------------------------- */

struct pk {
	uint8_t b[4096];
	size_t n;
};

static void pk_u8(struct pk *p, unsigned v) { p->b[p->n++] = (uint8_t)v; }
static void pk_u16(struct pk *p, unsigned v) { pk_u8(p, v >> 8); pk_u8(p, v & 0xFF); }
static void pk_u32(struct pk *p, uint32_t v) { pk_u16(p, v >> 16); pk_u16(p, v & 0xFFFF); }
static void pk_bytes(struct pk *p, const void *d, size_t n) { memcpy(p->b + p->n, d, n); p->n += n; }
static void pk_ptr(struct pk *p, size_t off) { pk_u16(p, 0xC000 | (unsigned)off); }

/* The labels of a dotted name, with the root label when root is set (else
 * the caller follows with a compression pointer). */
static void pk_labels(struct pk *p, const char *name, int root)
{
	const char *s = name;
	while (*s) {
		const char *dot = strchr(s, '.');
		size_t l = dot ? (size_t)(dot - s) : strlen(s);
		pk_u8(p, (unsigned)l);
		pk_bytes(p, s, l);
		s += l;
		if (*s == '.')
			s++;
	}
	if (root)
		pk_u8(p, 0);
}

/* Type, class, TTL and a placeholder RDLENGTH; returns where it is. */
static size_t pk_rr(struct pk *p, unsigned type, uint32_t ttl)
{
	pk_u16(p, type);
	pk_u16(p, WIRE_CLASS_IN);
	pk_u32(p, ttl);
	size_t at = p->n;
	pk_u16(p, 0);
	return at;
}

static void pk_rr_end(struct pk *p, size_t at)
{
	size_t l = p->n - at - 2;
	p->b[at] = (uint8_t)(l >> 8);
	p->b[at + 1] = (uint8_t)l;
}

/* An RRSIG over covered by example.com's ZSK: algorithm 13, a 64-byte
 * signature, the signer name uncompressed as RFC 4034 requires. */
static void pk_rrsig(struct pk *p, size_t owner, unsigned covered, unsigned labels, uint32_t ttl)
{
	pk_ptr(p, owner);
	size_t at = pk_rr(p, WIRE_TYPE_RRSIG, ttl);
	pk_u16(p, covered);
	pk_u8(p, 13);
	pk_u8(p, labels);
	pk_u32(p, ttl);
	pk_u32(p, 1900000000u + 2592000u);
	pk_u32(p, 1900000000u - 3600u);
	pk_u16(p, 31337);
	pk_labels(p, "example.com", 1);
	for (unsigned i = 0; i < 64; i++)
		pk_u8(p, (i * 97u + covered) & 0xFF);
	pk_rr_end(p, at);
}

/* The answer libunbound would give for d00000000.example.com of qtype:
 * header, question, the RRset with its RRSIG, OPT with DO. */
static void upstream_answer(struct pk *p, unsigned qtype)
{
	static const char spf[] = "v=spf1 ip4:45.67.89.0/24 ip6:2a01:4f8:10:20::/64 include:_spf.example.net -all";
	unsigned an = qtype == WIRE_TYPE_MX ? 3 : qtype == WIRE_TYPE_A ? 2 : 1;
	size_t at;

	p->n = 0;
	pk_u16(p, 0);
	pk_u16(p, 0x81A0);           /* QR RD RA AD */
	pk_u16(p, 1);
	pk_u16(p, an + 1);
	pk_u16(p, 0);
	pk_u16(p, 1);
	size_t qn = p->n;            /* 12 */
	pk_labels(p, "d00000000.example.com", 1);
	size_t apex = qn + 10;       /* example.com */
	pk_u16(p, qtype);
	pk_u16(p, WIRE_CLASS_IN);

	if (qtype == WIRE_TYPE_MX) {
		static const char *const ex[] = { "mx1", "mx2", "mx3" };
		for (unsigned i = 0; i < 3; i++) {
			pk_ptr(p, qn);
			at = pk_rr(p, WIRE_TYPE_MX, 3600);
			pk_u16(p, 10 * (i + 1));
			pk_labels(p, ex[i], 0);
			pk_ptr(p, apex);
			pk_rr_end(p, at);
		}
		pk_rrsig(p, qn, WIRE_TYPE_MX, 3, 3600);
	} else if (qtype == WIRE_TYPE_TXT) {
		pk_ptr(p, qn);
		at = pk_rr(p, WIRE_TYPE_TXT, 3600);
		pk_u8(p, (unsigned)strlen(spf));
		pk_bytes(p, spf, strlen(spf));
		pk_rr_end(p, at);
		pk_rrsig(p, qn, WIRE_TYPE_TXT, 3, 3600);
	} else {
		for (unsigned i = 0; i < 2; i++) {
			pk_ptr(p, qn);
			at = pk_rr(p, WIRE_TYPE_A, 3600);
			pk_bytes(p, i ? "\x2d\x43\x59\x0b" : "\x2d\x43\x59\x0a", 4);
			pk_rr_end(p, at);
		}
		pk_rrsig(p, qn, WIRE_TYPE_A, 3, 3600);
	}
	/* OPT: payload 1232, DO. */
	pk_u8(p, 0);
	pk_u16(p, WIRE_TYPE_OPT);
	pk_u16(p, 1232);
	pk_u32(p, 0x00008000u);
	pk_u16(p, 0);
}

/* A client query for d00000000.example.com, with EDNS, DO as asked. */
static void client_query(struct pk *p, unsigned qtype, int do_bit)
{
	p->n = 0;
	pk_u16(p, 0x4242);
	pk_u16(p, 0x0100);
	pk_u16(p, 1);
	pk_u16(p, 0);
	pk_u16(p, 0);
	pk_u16(p, 1);
	pk_labels(p, "d00000000.example.com", 1);
	pk_u16(p, qtype);
	pk_u16(p, WIRE_CLASS_IN);
	pk_u8(p, 0);
	pk_u16(p, WIRE_TYPE_OPT);
	pk_u16(p, 1232);
	pk_u32(p, do_bit ? 0x00008000u : 0);
	pk_u16(p, 0);
}

/* ---- keys ----------------------------------------------------------------- */

/* Key i: name d<i, 8 digits>.example.com, and a qtype that cycles
 * MX, MX, TXT, A. */
static unsigned key_template(uint64_t i)
{
	static const unsigned t[4] = { 0, 0, 1, 2 };
	return t[i & 3];
}

static const unsigned templ_type[BENCH_NTEMPL] = { WIRE_TYPE_MX, WIRE_TYPE_TXT, WIRE_TYPE_A };
static const uint8_t templ_part[BENCH_NTEMPL] = { CACHE_PART_MAIL, CACHE_PART_MAIL, CACHE_PART_GENERAL };

/* Write i's 8 digits over the digits of a d00000000 label whose first digit
 * is at p. */
static inline void put_digits(uint8_t *p, uint64_t i)
{
	for (int d = BENCH_DIGITS - 1; d >= 0; d--) {
		p[d] = (uint8_t)('0' + i % 10);
		i /= 10;
	}
}

struct templ {
	uint8_t full[WIRE_FORM_MAX];
	uint8_t plain[WIRE_FORM_MAX];
	size_t full_len, plain_len;
	size_t full_digits, plain_digits; /* offset of the question's first digit in each form */
	struct wire_query q[2];           /* parsed client queries: [0] without DO, [1] with */
};

static size_t form_digits(const uint8_t *form, size_t len)
{
	const uint8_t *msg;
	size_t mlen;
	if (wire_form_message(form, len, &msg, &mlen) < 0)
		return 0;
	return (size_t)(msg - form) + WIRE_HEADER_LEN + 2; /* length byte, 'd' */
}

static int templ_build(struct templ *t, unsigned qtype)
{
	struct pk up, cq;
	struct wire_answer_info info;

	for (int d = 0; d < 2; d++) {
		client_query(&cq, qtype, d);
		if (wire_parse_query(cq.b, cq.n, &t->q[d]) != WIRE_PARSE_OK)
			return -1;
	}
	upstream_answer(&up, qtype);
	if (wire_prepare_forms(up.b, up.n, &t->q[1], t->full, &t->full_len, t->plain, &t->plain_len, &info) < 0)
		return -1;
	t->full_digits = form_digits(t->full, t->full_len);
	t->plain_digits = form_digits(t->plain, t->plain_len);
	if (t->full_digits == 0 || t->plain_digits == 0 || t->full[t->full_digits - 1] != 'd')
		return -1;
	return 0;
}

/* ---- helpers --------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static inline uint64_t rng(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static void human(double v, char *out, size_t cap)
{
	if (v >= 1e6)
		snprintf(out, cap, "%.2f M", v / 1e6);
	else if (v >= 1e3)
		snprintf(out, cap, "%.1f k", v / 1e3);
	else
		snprintf(out, cap, "%.0f", v);
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_cache [-n ANSWERS] [-l LOOKUPS] [-k]\n");
	exit(2);
}

/* ---- the benchmark ---------------------------------------------------------- */

int main(int argc, char **argv)
{
	uint64_t n = 1000000, lookups = 4000000;
	int keep = 0, opt;
	static struct templ templ[BENCH_NTEMPL];
	static uint8_t reply[WIRE_FORM_MAX];
	char err[256], dir[64] = "/tmp/bench_cache.XXXXXX", cdir[96], path[160];

	while ((opt = getopt(argc, argv, "n:l:k")) != -1) {
		switch (opt) {
		case 'n': n = strtoull(optarg, NULL, 10); break;
		case 'l': lookups = strtoull(optarg, NULL, 10); break;
		case 'k': keep = 1; break;
		default: usage();
		}
	}
	if (n == 0 || n >= 100000000ull || lookups == 0)
		usage();
	log_set_level(LOG_LEVEL_WARN);

	for (unsigned t = 0; t < BENCH_NTEMPL; t++)
		if (templ_build(&templ[t], templ_type[t]) < 0) {
			fprintf(stderr, "bench_cache: could not build the forms of template %u\n", t);
			return 1;
		}
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(cdir, sizeof cdir, "%s/cache", dir);

	/* Room for every answer with no eviction: values are under 600 bytes,
	 * a B-tree page holds them at least half full. */
	struct cache_options co = {
		.dir = cdir,
		.max_bytes = n * 1536 + (64u << 20),
		.max_readers = 16,
		.sync_interval_ms = 1000,       /* the daemon's default sync-interval */
	};
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++)
		co.quota[p] = co.max_bytes;
	struct cache *c = cache_open(&co, err, sizeof err);
	if (c == NULL) {
		fprintf(stderr, "bench_cache: %s\n", err);
		return 1;
	}

	uint64_t value_bytes = 0;
	for (unsigned t = 0; t < BENCH_NTEMPL; t++) {
		unsigned share = t == 0 ? 2 : 1;
		value_bytes += share * (52 + templ[t].full_len + templ[t].plain_len);
	}
	printf("bench_cache: %" PRIu64 " answers in %s (MX:TXT:A = 2:1:1, forms MX %zu+%zu, TXT %zu+%zu, "
	       "A %zu+%zu bytes, mean value %.0f bytes + key 26)\n",
	       n, cdir, templ[0].full_len, templ[0].plain_len, templ[1].full_len, templ[1].plain_len,
	       templ[2].full_len, templ[2].plain_len, (double)value_bytes / 4.0);

	/* ---- puts ---- */
	uint8_t qname[WIRE_MAX_NAME];
	size_t qname_len = wire_name_from_text("d00000000.example.com", qname);
	int64_t wall = (int64_t)time(NULL);
	uint64_t retries = 0;
	double t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		struct templ *t = &templ[key_template(i)];
		unsigned ti = (unsigned)(t - templ);
		put_digits(qname + 2, i);
		put_digits(t->full + t->full_digits, i);
		put_digits(t->plain + t->plain_digits, i);
		struct cache_record rec = {
			.rcode = 0,
			.dnssec = CACHE_DNSSEC_SECURE,
			.stored_at = wall,
			.ttl = 3600,
			.expires = wall + 3600,
			.stale_until = wall + 3600 + 86400,
			.last_hit = wall,
			.partition = templ_part[ti],
			.full = t->full,
			.full_len = (uint32_t)t->full_len,
			.plain = t->plain,
			.plain_len = (uint32_t)t->plain_len,
		};
		while (cache_put(c, qname, qname_len, (uint16_t)templ_type[ti], WIRE_CLASS_IN, &rec) < 0) {
			retries++;
			struct timespec ts = { 0, 50000 };
			nanosleep(&ts, NULL);
		}
	}
	double t_queued = now_s();
	cache_flush_writes(c);
	double t1 = now_s();
	double put_rate = (double)n / (t1 - t0);

	struct cache_stats st;
	cache_get_stats(c, &st);
	if (st.evictions || st.write_errors) {
		fprintf(stderr, "bench_cache: %" PRIu64 " evictions, %" PRIu64 " write errors while filling\n",
		        st.evictions, st.write_errors);
		return 1;
	}

	/* ---- gets: hit path only ---- */
	struct cache_reader *r = cache_reader_new(c);
	if (r == NULL) {
		fprintf(stderr, "bench_cache: no reader\n");
		return 1;
	}
	uint64_t found = 0, sum = 0;
	double g0 = now_s();
	for (uint64_t done = 0; done < lookups; done += BENCH_BATCH) {
		int64_t now = (int64_t)time(NULL);
		if (cache_reader_begin(r) < 0) {
			fprintf(stderr, "bench_cache: cache_reader_begin failed\n");
			return 1;
		}
		for (unsigned b = 0; b < BENCH_BATCH; b++) {
			uint64_t i = rng() % n;
			unsigned ti = key_template(i);
			struct cache_record rec;
			put_digits(qname + 2, i);
			if (cache_get(r, qname, qname_len, (uint16_t)templ_type[ti], WIRE_CLASS_IN,
			              (enum cache_partition)templ_part[ti], now, &rec) == 0) {
				found++;
				sum += rec.full_len;
			}
		}
		cache_reader_end(r);
	}
	double g1 = now_s();
	uint64_t gets = (lookups + BENCH_BATCH - 1) / BENCH_BATCH * BENCH_BATCH;
	double get_rate = (double)gets / (g1 - g0);
	uint64_t get_misses = gets - found;

	/* ---- full hits: get + wire_serve_form ---- */
	found = 0;
	uint64_t served = 0, reply_bytes = 0;
	double h0 = now_s();
	for (uint64_t done = 0; done < lookups; done += BENCH_BATCH) {
		int64_t now = (int64_t)time(NULL);
		if (cache_reader_begin(r) < 0) {
			fprintf(stderr, "bench_cache: cache_reader_begin failed\n");
			return 1;
		}
		for (unsigned b = 0; b < BENCH_BATCH; b++) {
			uint64_t x = rng();
			uint64_t i = (x >> 1) % n;
			unsigned ti = key_template(i);
			struct wire_query *q = &templ[ti].q[x & 1];
			struct cache_record rec;
			put_digits(q->qname + 2, i);
			put_digits(q->qname_case + 2, i);
			if (cache_get(r, q->qname, q->qname_len, q->qtype, q->qclass,
			              (enum cache_partition)templ_part[ti], now, &rec) != 0)
				continue;
			found++;
			struct wire_serve s = {
				.age = now > rec.stored_at ? (uint32_t)(now - rec.stored_at) : 0,
				.set_ad = rec.dnssec == CACHE_DNSSEC_SECURE && (q->do_bit || q->ad),
				.rcode = -1,
				.ede_code = WIRE_EDE_NONE,
				.limit = wire_udp_limit(q),
			};
			size_t len = q->do_bit ? wire_serve_form(rec.full, rec.full_len, q, &s, reply, sizeof reply)
			                       : wire_serve_form(rec.plain, rec.plain_len, q, &s, reply, sizeof reply);
			if (len > 0) {
				served++;
				reply_bytes += len;
			}
		}
		cache_reader_end(r);
	}
	double h1 = now_s();
	double hit_rate = (double)gets / (h1 - h0);
	uint64_t hit_misses = gets - served;
	cache_reader_free(r);

	/* ---- footprint ---- */
	cache_get_stats(c, &st);
	uint64_t part_bytes = 0, entries = 0;
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++) {
		part_bytes += st.bytes[p];
		entries += st.entries[p];
	}
	cache_close(c);
	struct stat sb;
	snprintf(path, sizeof path, "%s/data.mdb", cdir);
	if (stat(path, &sb) < 0) {
		perror(path);
		return 1;
	}

	char a[32], b2[32], c2[32];
	printf("\n%-44s %14s %12s\n", "measure", "value", "per answer");
	printf("%-44s %14s %12s\n", "--------------------------------------------", "--------------",
	       "------------");
	human(put_rate, a, sizeof a);
	printf("%-44s %12s/s %9.2f us\n", "cache_put .. cache_flush_writes", a, 1e6 / put_rate);
	printf("%-44s %12.2f s %12s\n", "  of which queueing (writer still behind)", t_queued - t0, "");
	human(get_rate, b2, sizeof b2);
	printf("%-44s %12s/s %9.3f us\n", "cache_get hit, 1 thread, 32 per txn", b2, 1e6 / get_rate);
	human(hit_rate, c2, sizeof c2);
	printf("%-44s %12s/s %9.3f us\n", "cache_get + wire_serve_form (50% DO)", c2, 1e6 / hit_rate);
	printf("%-44s %14.0f %12s\n", "  mean reply size (bytes)",
	       served ? (double)reply_bytes / (double)served : 0.0, "");
	printf("%-44s %11.1f MB %9.0f B\n", "data.mdb size", (double)sb.st_size / 1e6,
	       (double)sb.st_size / (double)n);
	printf("%-44s %11.1f MB %9.0f B\n", "data.mdb allocated blocks", (double)sb.st_blocks * 512 / 1e6,
	       (double)sb.st_blocks * 512 / (double)n);
	printf("%-44s %11.1f MB %9.0f B\n", "stats: partition bytes (pages in use)", (double)part_bytes / 1e6,
	       (double)part_bytes / (double)n);
	printf("%-44s %14.0f %12s\n", "  value bytes stored (header + 2 forms)", (double)value_bytes / 4.0, "");
	printf("\nentries %" PRIu64 " (general %" PRIu64 ", mail %" PRIu64 "), commits %" PRIu64
	       ", queue-full retries %" PRIu64 ", get misses %" PRIu64 ", serve misses %" PRIu64
	       ", evictions %" PRIu64 ", full bytes read %" PRIu64 "\n",
	       entries, st.entries[CACHE_PART_GENERAL], st.entries[CACHE_PART_MAIL], st.commits, retries,
	       get_misses, hit_misses, st.evictions, sum);

	int rc = entries == n && get_misses == 0 && hit_misses == 0 ? 0 : 1;
	if (rc)
		fprintf(stderr, "bench_cache: expected %" PRIu64 " entries and no misses\n", n);
	if (keep) {
		printf("kept %s\n", dir);
	} else {
		unlink(path);
		snprintf(path, sizeof path, "%s/lock.mdb", cdir);
		unlink(path);
		rmdir(cdir);
		rmdir(dir);
	}
	return rc;
}
