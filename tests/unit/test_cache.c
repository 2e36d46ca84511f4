/* test_cache.c -- unit tests for the LMDB answer cache
 *
 * Each test works in its own mkdtemp() directory; the cache lives in DIR/db
 * so that a set-aside DIR/db.bad-* lands inside it too and is removed with
 * it.  Some tests open the environment directly with LMDB, after
 * cache_close(), to damage it or to look at the on-disk keys. */
#include "cache.h"
#include "log.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <lmdb.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tdir[64];
static char cdir[128];

static void tmp_setup(void)
{
	snprintf(tdir, sizeof tdir, "/tmp/test_cache.XXXXXX");
	CU_ASSERT_FATAL(mkdtemp(tdir) != NULL);
	snprintf(cdir, sizeof cdir, "%s/db", tdir);
}

static void tmp_teardown(void)
{
	unit_rmtree(tdir);
}

static struct cache *open_cache(uint64_t max_bytes)
{
	struct cache_options o = { .dir = cdir, .max_bytes = max_bytes, .max_readers = 16,
	                           .sync_interval_ms = 100 };
	char err[256] = "";
	struct cache *c = cache_open(&o, err, sizeof err);
	if (c == NULL)
		fprintf(stderr, "cache_open: %s\n", err);
	return c;
}

/* A cache in a fresh directory, and a reader of it only once the test asks
 * with fix_reader, at the point where its reader's life is meant to begin. */
struct fix {
	struct cache *c;
	struct cache_reader *r;
};

static void fix_open(struct fix *f, uint64_t max_bytes)
{
	tmp_setup();
	f->c = open_cache(max_bytes);
	CU_ASSERT_FATAL(f->c != NULL);
	f->r = NULL;
}

static void fix_reader(struct fix *f)
{
	f->r = cache_reader_new(f->c);
	CU_ASSERT_FATAL(f->r != NULL);
}

/* A test that frees the reader early sets f->r to NULL. */
static void fix_close(struct fix *f)
{
	cache_reader_free(f->r);
	cache_close(f->c);
	tmp_teardown();
}

/* A record whose forms are filled with a pattern derived from seed, so a
 * reader can check it got the right bytes. */
struct test_rec {
	struct cache_record rec;
	uint8_t full[2048];
	uint8_t plain[2048];
};

static void make_rec(struct test_rec *t, uint32_t seed, uint32_t full_len, uint32_t plain_len,
                     int64_t now, uint32_t ttl, enum cache_partition part)
{
	memset(&t->rec, 0, sizeof t->rec);
	for (uint32_t i = 0; i < full_len; i++)
		t->full[i] = (uint8_t)(seed * 31 + i);
	for (uint32_t i = 0; i < plain_len; i++)
		t->plain[i] = (uint8_t)(seed * 17 + i * 3);
	t->rec.rcode = 0;
	t->rec.dnssec = CACHE_DNSSEC_SECURE;
	t->rec.stored_at = now;
	t->rec.ttl = ttl;
	t->rec.expires = now + ttl;
	t->rec.stale_until = now + ttl + 3600;
	t->rec.last_hit = now;
	t->rec.partition = (uint8_t)part;
	t->rec.full = t->full;
	t->rec.full_len = full_len;
	t->rec.plain = t->plain;
	t->rec.plain_len = plain_len;
}

static int rec_matches(const struct cache_record *got, uint32_t seed, uint32_t full_len,
                       uint32_t plain_len)
{
	if (got->full_len != full_len || got->plain_len != plain_len)
		return 0;
	for (uint32_t i = 0; i < full_len; i++)
		if (got->full[i] != (uint8_t)(seed * 31 + i))
			return 0;
	for (uint32_t i = 0; i < plain_len; i++)
		if (got->plain[i] != (uint8_t)(seed * 17 + i * 3))
			return 0;
	return 1;
}

static int put_name(struct cache *c, const char *name, uint16_t qtype, const struct cache_record *r)
{
	uint8_t q[256];
	size_t ql = wname(q, name);
	return cache_put(c, q, ql, qtype, 1, r);
}

static int get_name(struct cache_reader *r, const char *name, uint16_t qtype,
                    enum cache_partition hint, int64_t now, struct cache_record *out)
{
	uint8_t q[256];
	size_t ql = wname(q, name);
	return cache_get(r, q, ql, qtype, 1, hint, now, out);
}

/* The key format from cache.c's opening comment, built independently. */
static size_t test_key(uint8_t *key, const char *name, uint16_t qtype, uint16_t qclass)
{
	const char *labels[64];
	size_t lens[64], n = 0, k = 0;
	while (*name) {
		const char *dot = strchr(name, '.');
		lens[n] = dot ? (size_t)(dot - name) : strlen(name);
		labels[n++] = name;
		name += lens[n - 1] + (dot ? 1 : 0);
	}
	while (n--) {
		key[k++] = (uint8_t)lens[n];
		memcpy(key + k, labels[n], lens[n]);
		k += lens[n];
	}
	key[k++] = (uint8_t)(qtype >> 8);
	key[k++] = (uint8_t)qtype;
	key[k++] = (uint8_t)(qclass >> 8);
	key[k++] = (uint8_t)qclass;
	return k;
}

/* Open the (closed) cache environment directly with LMDB. */
static MDB_env *raw_open(void)
{
	MDB_env *env = NULL;
	CU_ASSERT_FATAL(mdb_env_create(&env) == 0);
	mdb_env_set_maxdbs(env, 8);
	mdb_env_set_mapsize(env, 64u << 20);
	if (mdb_env_open(env, cdir, 0, 0600) != 0) {
		mdb_env_close(env);
		return NULL;
	}
	return env;
}

static int raw_put(MDB_env *env, const char *db, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	if (mdb_txn_begin(env, NULL, 0, &txn) != 0)
		return -1;
	if (mdb_dbi_open(txn, db, 0, &dbi) != 0) {
		mdb_txn_abort(txn);
		return -1;
	}
	MDB_val k = { .mv_size = klen, .mv_data = (void *)key };
	MDB_val v = { .mv_size = vlen, .mv_data = (void *)val };
	if (mdb_put(txn, dbi, &k, &v, 0) != 0) {
		mdb_txn_abort(txn);
		return -1;
	}
	return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

/* Count entries of DB db whose key starts with prefix; returns -1 when they
 * are not one contiguous run in key order. */
static int raw_count_prefix(MDB_env *env, const char *db, const uint8_t *prefix, size_t plen,
                            int *total)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	int count = 0, runs = 0, in_run = 0;
	*total = 0;
	if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	if (mdb_dbi_open(txn, db, 0, &dbi) != 0 || mdb_cursor_open(txn, dbi, &cur) != 0) {
		mdb_txn_abort(txn);
		return -1;
	}
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		int match = k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0;
		(*total)++;
		if (match) {
			count++;
			if (!in_run)
				runs++;
		}
		in_run = match;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return runs <= 1 ? count : -1;
}

static int count_bad_dirs(void)
{
	DIR *d = opendir(tdir);
	struct dirent *e;
	int n = 0;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "db.bad-", 7) == 0)
			n++;
	closedir(d);
	return n;
}

/* ---- tests ---- */

static void test_cache_put_then_get_returns_forms(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 7, 300, 120, now, 300, CACHE_PART_GENERAL);
	t.rec.dnssec = CACHE_DNSSEC_BOGUS;
	t.rec.rcode = 0;
	CU_ASSERT(put_name(f.c, "www.example.com", 1, &t.rec) == 0);
	cache_flush_writes(f.c);

	fix_reader(&f);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
	CU_ASSERT(get_name(f.r, "www.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(rec_matches(&out, 7, 300, 120));
	CU_ASSERT(out.rcode == 0);
	CU_ASSERT(out.dnssec == CACHE_DNSSEC_BOGUS);
	CU_ASSERT(out.stored_at == now);
	CU_ASSERT(out.ttl == 300);
	CU_ASSERT(out.expires == now + 300);
	CU_ASSERT(out.stale_until == now + 300 + 3600);
	CU_ASSERT(out.partition == CACHE_PART_GENERAL);
	/* Names are keyed case-insensitively; other types and names miss. */
	CU_ASSERT(get_name(f.r, "WWW.Example.COM", 1, CACHE_PART_MAIL, now, &out) == 0);
	CU_ASSERT(get_name(f.r, "www.example.com", 28, CACHE_PART_GENERAL, now, &out) == -1);
	CU_ASSERT(get_name(f.r, "example.com", 1, CACHE_PART_GENERAL, now, &out) == -1);
	/* A malformed qname is a miss, not a crash. */
	const uint8_t bad[] = { 5, 'a', 'b', 0 };
	CU_ASSERT(cache_get(f.r, bad, sizeof bad, 1, 1, CACHE_PART_GENERAL, now, &out) == -1);
	cache_reader_end(f.r);
	/* After end, a get without begin is a miss. */
	CU_ASSERT(get_name(f.r, "www.example.com", 1, CACHE_PART_GENERAL, now, &out) == -1);

	struct cache_stats st;
	cache_get_stats(f.c, &st);
	CU_ASSERT(st.entries[CACHE_PART_GENERAL] == 1);
	CU_ASSERT(st.puts == 1);
	CU_ASSERT(st.commits >= 1);
	CU_ASSERT(st.map_size >= (16u << 20));
	CU_ASSERT(st.set_aside == 0);
	fix_close(&f);
}

static void test_cache_get_expired_beyond_stale_is_miss(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 1, 50, 50, now - 1000, 100, CACHE_PART_GENERAL);
	t.rec.stale_until = now - 10;
	CU_ASSERT(put_name(f.c, "old.example.com", 1, &t.rec) == 0);
	cache_flush_writes(f.c);
	fix_reader(&f);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
	CU_ASSERT(get_name(f.r, "old.example.com", 1, CACHE_PART_GENERAL, now, &out) == -1);
	/* Exactly at stale_until it is gone; one second before, it is there. */
	CU_ASSERT(get_name(f.r, "old.example.com", 1, CACHE_PART_GENERAL, now - 10, &out) == -1);
	CU_ASSERT(get_name(f.r, "old.example.com", 1, CACHE_PART_GENERAL, now - 11, &out) == 0);
	cache_reader_end(f.r);
	fix_close(&f);
}

static void test_cache_get_within_stale_window_is_found(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 2, 60, 40, now - 105, 100, CACHE_PART_GENERAL);
	t.rec.stale_until = now + 100;
	CU_ASSERT(put_name(f.c, "stale.example.com", 1, &t.rec) == 0);
	cache_flush_writes(f.c);
	fix_reader(&f);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
	CU_ASSERT(get_name(f.r, "stale.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(out.expires <= now);
	CU_ASSERT(out.expires == now - 5);
	CU_ASSERT(rec_matches(&out, 2, 60, 40));
	cache_reader_end(f.r);
	fix_close(&f);
}

static void test_cache_ttl_countdown_by_wall_clock(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 3, 80, 80, now - 30, 300, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(f.c, "ttl.example.com", 1, &t.rec) == 0);
	cache_flush_writes(f.c);
	fix_reader(&f);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
	CU_ASSERT(get_name(f.r, "ttl.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(out.stored_at == now - 30);
	CU_ASSERT(out.ttl == 300);
	CU_ASSERT(out.expires - now == 270);
	/* Later, the same entry has less left. */
	CU_ASSERT(get_name(f.r, "ttl.example.com", 1, CACHE_PART_GENERAL, now + 100, &out) == 0);
	CU_ASSERT(out.expires - (now + 100) == 170);
	cache_reader_end(f.r);
	fix_close(&f);
}

static void test_cache_negative_entry_roundtrip(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 4, 400, 90, now, 900, CACHE_PART_MAIL);
	t.rec.rcode = 3;
	t.rec.dnssec = CACHE_DNSSEC_INSECURE;
	CU_ASSERT(put_name(f.c, "nx.example.org", 15, &t.rec) == 0);
	/* An empty plain form is allowed too (NODATA without proofs). */
	struct test_rec e;
	make_rec(&e, 5, 33, 0, now, 900, CACHE_PART_MAIL);
	CU_ASSERT(put_name(f.c, "nodata.example.org", 15, &e.rec) == 0);
	cache_flush_writes(f.c);
	fix_reader(&f);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
	CU_ASSERT(get_name(f.r, "nx.example.org", 15, CACHE_PART_MAIL, now, &out) == 0);
	CU_ASSERT(out.rcode == 3);
	CU_ASSERT(out.dnssec == CACHE_DNSSEC_INSECURE);
	CU_ASSERT(out.partition == CACHE_PART_MAIL);
	CU_ASSERT(rec_matches(&out, 4, 400, 90));
	CU_ASSERT(get_name(f.r, "nodata.example.org", 15, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(rec_matches(&out, 5, 33, 0));
	cache_reader_end(f.r);
	fix_close(&f);
}

static void test_cache_persists_across_close_open(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 6, 100, 100, now, 600, CACHE_PART_DNSBL);
	CU_ASSERT(put_name(c, "2.0.0.127.zen.example", 1, &t.rec) == 0);
	/* No flush: close must commit what was queued. */
	cache_close(c);

	c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.set_aside == 0);
	CU_ASSERT(st.entries[CACHE_PART_DNSBL] == 1);
	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "2.0.0.127.zen.example", 1, CACHE_PART_DNSBL, now, &out) == 0);
	CU_ASSERT(rec_matches(&out, 6, 100, 100));
	cache_reader_end(r);
	cache_reader_free(r);
	cache_close(c);

	/* The meta database says the last shutdown was clean. */
	MDB_env *env = raw_open();
	CU_ASSERT_FATAL(env != NULL);
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { .mv_size = 14, .mv_data = "clean-shutdown" }, v;
	CU_ASSERT_FATAL(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
	CU_ASSERT(mdb_dbi_open(txn, "meta", 0, &dbi) == 0);
	CU_ASSERT(mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 1 && *(char *)v.mv_data == '1');
	mdb_txn_abort(txn);
	mdb_env_close(env);
	tmp_teardown();
}

static void test_cache_hit_refreshes_last_hit(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 8, 64, 64, now, 600, CACHE_PART_GENERAL);
	t.rec.last_hit = now - 1000;
	CU_ASSERT(put_name(f.c, "hot.example.com", 1, &t.rec) == 0);
	cache_flush_writes(f.c);
	fix_reader(&f);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
	CU_ASSERT(get_name(f.r, "hot.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(out.last_hit == now - 1000);
	cache_reader_end(f.r);
	cache_flush_writes(f.c);
	CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
	CU_ASSERT(get_name(f.r, "hot.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(out.last_hit >= now);
	CU_ASSERT(rec_matches(&out, 8, 64, 64));
	cache_reader_end(f.r);
	fix_close(&f);
}

static void test_cache_set_quotas_shrinks_one_partition_live(void)
{
	struct fix f;
	fix_open(&f, 32u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	for (int i = 0; i < 8000; i++) {
		make_rec(&t, (uint32_t)i, 200, 150, now, 3600, CACHE_PART_GENERAL);
		t.rec.last_hit = now - 8000 + i;
		snprintf(name, sizeof name, "g%d.example.net", i);
		CU_ASSERT(put_name(f.c, name, 1, &t.rec) == 0);
	}
	for (int i = 0; i < 200; i++) {
		make_rec(&t, (uint32_t)i, 200, 150, now, 3600, CACHE_PART_MAIL);
		snprintf(name, sizeof name, "m%d.example.com", i);
		CU_ASSERT(put_name(f.c, name, 15, &t.rec) == 0);
	}
	cache_flush_writes(f.c);
	struct cache_stats before;
	cache_get_stats(f.c, &before);
	CU_ASSERT(before.entries[CACHE_PART_GENERAL] == 8000);
	CU_ASSERT(before.evictions == 0);

	uint64_t quota[CACHE_PART_COUNT] = { 1u << 20, 0, 0 };
	cache_set_quotas(f.c, quota);
	cache_flush_writes(f.c);
	struct cache_stats after;
	cache_get_stats(f.c, &after);
	CU_ASSERT(after.quota[CACHE_PART_GENERAL] == 1u << 20);
	CU_ASSERT(after.evictions > 0);
	CU_ASSERT(after.entries[CACHE_PART_GENERAL] < 8000);
	/* Another partition's quota is not another partition's problem. */
	CU_ASSERT(after.entries[CACHE_PART_MAIL] == 200);
	/* The most recently hit survive. */
	fix_reader(&f);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
	CU_ASSERT(get_name(f.r, "g7999.example.net", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(get_name(f.r, "g0.example.net", 1, CACHE_PART_GENERAL, now, &out) == -1);
	cache_reader_end(f.r);
	fix_close(&f);
}

static void test_cache_evicts_when_partition_over_quota(void)
{
	tmp_setup();
	struct cache *c = open_cache(4u << 20);     /* general: 2 MiB */
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	int fails = 0;

	/* Hot entries, stored long ago and never hit since... */
	for (int i = 0; i < 100; i++) {
		make_rec(&t, (uint32_t)i, 200, 150, now, 3600, CACHE_PART_GENERAL);
		t.rec.last_hit = now - 50000;
		snprintf(name, sizeof name, "hot%d.example.com", i);
		fails += put_name(c, name, 1, &t.rec) != 0;
	}
	/* ...expired ones, recently hit but past stale_until... */
	for (int i = 0; i < 100; i++) {
		make_rec(&t, (uint32_t)i, 200, 150, now - 7200, 60, CACHE_PART_GENERAL);
		t.rec.stale_until = now - 60;
		t.rec.last_hit = now;
		snprintf(name, sizeof name, "expired%d.example.com", i);
		fails += put_name(c, name, 1, &t.rec) != 0;
	}
	cache_flush_writes(c);
	/* ...then the hot ones are hit, which refreshes them. */
	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "hot%d.example.com", i);
		CU_ASSERT(get_name(r, name, 1, CACHE_PART_GENERAL, now, &out) == 0);
	}
	cache_reader_end(r);
	cache_flush_writes(c);

	/* Far more than 2 MiB of cold entries, hit a while ago. */
	for (int i = 0; i < 40000; i++) {
		make_rec(&t, (uint32_t)i, 200, 150, now, 3600, CACHE_PART_GENERAL);
		t.rec.last_hit = now - 10000 + i / 8;
		snprintf(name, sizeof name, "cold%d.example.net", i);
		fails += put_name(c, name, 1, &t.rec) != 0;
		if (i % 5000 == 4999)
			cache_flush_writes(c);
	}
	cache_flush_writes(c);
	CU_ASSERT(fails == 0);

	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.put_drops == 0);
	CU_ASSERT(st.evictions > 0);
	CU_ASSERT(st.write_errors == 0);
	CU_ASSERT(st.entries[CACHE_PART_GENERAL] < 40000);
	/* Pages stay near the quota (LMDB pages are never partly freed). */
	CU_ASSERT(st.bytes[CACHE_PART_GENERAL] <= st.quota[CACHE_PART_GENERAL] + st.quota[CACHE_PART_GENERAL] / 4);
	fprintf(stderr, "\n    general: %llu entries, %llu bytes of quota %llu, %llu evictions, map %llu/%llu\n",
	        (unsigned long long)st.entries[CACHE_PART_GENERAL],
	        (unsigned long long)st.bytes[CACHE_PART_GENERAL],
	        (unsigned long long)st.quota[CACHE_PART_GENERAL], (unsigned long long)st.evictions,
	        (unsigned long long)st.map_used, (unsigned long long)st.map_size);

	int hot = 0, newest = 0;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "hot%d.example.com", i);
		hot += get_name(r, name, 1, CACHE_PART_GENERAL, now, &out) == 0;
		snprintf(name, sizeof name, "cold%d.example.net", 39999 - i);
		newest += get_name(r, name, 1, CACHE_PART_GENERAL, now, &out) == 0;
	}
	CU_ASSERT(get_name(r, "cold0.example.net", 1, CACHE_PART_GENERAL, now, &out) == -1);
	cache_reader_end(r);
	cache_reader_free(r);
	CU_ASSERT(hot == 100);
	CU_ASSERT(newest == 100);
	cache_close(c);

	/* The expired entries are gone from disk, not just unserved. */
	MDB_env *env = raw_open();
	CU_ASSERT_FATAL(env != NULL);
	int total;
	uint8_t prefix[64];
	size_t plen = test_key(prefix, "example.com", 0, 0) - 4;
	int n = raw_count_prefix(env, "general", prefix, plen, &total);
	CU_ASSERT(n == 100);    /* only hot*.example.com remain under example.com */
	mdb_env_close(env);
	tmp_teardown();
}

static void test_cache_map_full_never_fails_put(void)
{
	tmp_setup();
	/* A quota far above max_bytes: only the map's size stops growth. */
	struct cache_options o = { .dir = cdir, .max_bytes = 1u << 20, .max_readers = 4,
	                           .sync_interval_ms = 1000 };
	o.quota[CACHE_PART_GENERAL] = 1ull << 30;
	char err[256];
	struct cache *c = cache_open(&o, err, sizeof err);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	int fails = 0;
	const int n = 20000;

	for (int i = 0; i < n; i++) {
		make_rec(&t, (uint32_t)i, 900, 600, now, 3600, CACHE_PART_GENERAL);
		t.rec.last_hit = now - 2 * (n - i);
		snprintf(name, sizeof name, "m%d.example.com", i);
		fails += put_name(c, name, 1, &t.rec) != 0;
		if (i % 2000 == 1999)
			cache_flush_writes(c);
	}
	cache_flush_writes(c);
	CU_ASSERT(fails == 0);
	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.put_drops == 0);
	CU_ASSERT(st.evictions > 0);
	CU_ASSERT(st.map_used <= st.map_size);
	fprintf(stderr, "\n    map %llu/%llu, %llu entries, %llu evictions, %llu write errors\n",
	        (unsigned long long)st.map_used, (unsigned long long)st.map_size,
	        (unsigned long long)st.entries[CACHE_PART_GENERAL], (unsigned long long)st.evictions,
	        (unsigned long long)st.write_errors);

	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	int found = 0;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	for (int i = n - 50; i < n; i++) {
		snprintf(name, sizeof name, "m%d.example.com", i);
		if (get_name(r, name, 1, CACHE_PART_GENERAL, now, &out) == 0 &&
		    rec_matches(&out, (uint32_t)i, 900, 600))
			found++;
	}
	cache_reader_end(r);
	cache_reader_free(r);
	CU_ASSERT(found == 50);
	/* A form larger than any DNS message is refused and counted. */
	static uint8_t huge[70000];
	make_rec(&t, 0, 10, 10, now, 60, CACHE_PART_GENERAL);
	t.rec.full = huge;
	t.rec.full_len = sizeof huge;
	CU_ASSERT(put_name(c, "huge.example.com", 1, &t.rec) == -1);
	cache_get_stats(c, &st);
	CU_ASSERT(st.put_drops == 1);
	cache_close(c);
	tmp_teardown();
}

static void test_cache_corrupt_value_is_miss(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	/* Twenty names, so the damaged ones sit in the middle, away from the
	 * first and last values that the open-time check samples. */
	for (int i = 0; i < 20; i++) {
		make_rec(&t, (uint32_t)i, 100, 50, now, 600, CACHE_PART_GENERAL);
		snprintf(name, sizeof name, "n%02d.example.com", i);
		CU_ASSERT(put_name(c, name, 1, &t.rec) == 0);
	}
	cache_close(c);

	MDB_env *env = raw_open();
	CU_ASSERT_FATAL(env != NULL);
	uint8_t key[300];
	size_t klen = test_key(key, "n10.example.com", 1, 1);
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { .mv_size = klen, .mv_data = key }, v;
	uint8_t copy[1024];
	size_t vlen = 0;
	CU_ASSERT_FATAL(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
	CU_ASSERT_FATAL(mdb_dbi_open(txn, "general", 0, &dbi) == 0);
	CU_ASSERT_FATAL(mdb_get(txn, dbi, &k, &v) == 0);
	CU_ASSERT_FATAL(v.mv_size <= sizeof copy);
	memcpy(copy, v.mv_data, v.mv_size);
	vlen = v.mv_size;
	mdb_txn_abort(txn);
	copy[vlen - 7] ^= 0x40;         /* one flipped bit in the plain form */
	CU_ASSERT(raw_put(env, "general", key, klen, copy, vlen) == 0);
	klen = test_key(key, "n11.example.com", 1, 1);
	CU_ASSERT(raw_put(env, "general", key, klen, "\1\0\0", 3) == 0);   /* too short */
	klen = test_key(key, "n12.example.com", 1, 1);
	copy[0] = 1;
	CU_ASSERT(raw_put(env, "general", key, klen, copy, vlen - 1) == 0); /* lengths off */
	mdb_env_close(env);

	c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.set_aside == 0);
	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "n10.example.com", 1, CACHE_PART_GENERAL, now, &out) == -1);
	CU_ASSERT(get_name(r, "n11.example.com", 1, CACHE_PART_GENERAL, now, &out) == -1);
	CU_ASSERT(get_name(r, "n12.example.com", 1, CACHE_PART_GENERAL, now, &out) == -1);
	CU_ASSERT(get_name(r, "n09.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(rec_matches(&out, 9, 100, 50));
	cache_reader_end(r);
	cache_get_stats(c, &st);
	CU_ASSERT(st.damaged == 3);
	/* The writer deletes what readers reported. */
	cache_flush_writes(c);
	cache_get_stats(c, &st);
	CU_ASSERT(st.entries[CACHE_PART_GENERAL] == 17);
	/* A fresh put replaces a damaged value. */
	make_rec(&t, 99, 10, 10, now, 600, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(c, "n10.example.com", 1, &t.rec) == 0);
	cache_flush_writes(c);
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "n10.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(rec_matches(&out, 99, 10, 10));
	cache_reader_end(r);
	cache_reader_free(r);
	cache_close(c);
	tmp_teardown();
}

static void test_cache_wrong_format_version_is_set_aside(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 1, 10, 10, now, 600, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(c, "v.example.com", 1, &t.rec) == 0);
	cache_close(c);

	MDB_env *env = raw_open();
	CU_ASSERT_FATAL(env != NULL);
	const uint8_t ver[4] = { 0, 0, 3, 231 };
	CU_ASSERT(raw_put(env, "meta", "format-version", 14, ver, 4) == 0);
	mdb_env_close(env);

	CU_ASSERT(count_bad_dirs() == 0);
	c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.set_aside == 1);
	CU_ASSERT(st.entries[CACHE_PART_GENERAL] == 0);
	CU_ASSERT(count_bad_dirs() == 1);
	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "v.example.com", 1, CACHE_PART_GENERAL, now, &out) == -1);
	cache_reader_end(r);
	cache_reader_free(r);
	cache_close(c);

	/* The fresh cache is a good one: the next open keeps it. */
	c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	cache_get_stats(c, &st);
	CU_ASSERT(st.set_aside == 0);
	cache_close(c);
	CU_ASSERT(count_bad_dirs() == 1);
	tmp_teardown();
}

static void test_cache_garbage_file_is_set_aside(void)
{
	tmp_setup();
	CU_ASSERT_FATAL(mkdir(cdir, 0700) == 0);
	char path[192];
	snprintf(path, sizeof path, "%s/data.mdb", cdir);
	FILE *f = fopen(path, "wb");
	CU_ASSERT_FATAL(f != NULL);
	srand(12345);
	for (int i = 0; i < 65536; i++)
		fputc(rand() & 0xff, f);
	fclose(f);

	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.set_aside == 1);
	CU_ASSERT(count_bad_dirs() == 1);
	/* And it works. */
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 5, 20, 20, now, 600, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(c, "after.example.com", 1, &t.rec) == 0);
	cache_flush_writes(c);
	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "after.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	cache_reader_end(r);
	cache_reader_free(r);
	cache_close(c);
	tmp_teardown();
}

static void test_cache_partition_move_removes_old_copy(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 1, 40, 40, now, 600, CACHE_PART_MAIL);
	CU_ASSERT(put_name(f.c, "mx.example.com", 15, &t.rec) == 0);
	cache_flush_writes(f.c);
	struct cache_stats st;
	cache_get_stats(f.c, &st);
	CU_ASSERT(st.entries[CACHE_PART_MAIL] == 1);

	make_rec(&t, 2, 50, 30, now, 600, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(f.c, "mx.example.com", 15, &t.rec) == 0);
	cache_flush_writes(f.c);
	cache_get_stats(f.c, &st);
	CU_ASSERT(st.entries[CACHE_PART_MAIL] == 0);
	CU_ASSERT(st.entries[CACHE_PART_GENERAL] == 1);

	fix_reader(&f);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
	/* Found through the wrong hint, in its new home, with the new data. */
	CU_ASSERT(get_name(f.r, "mx.example.com", 15, CACHE_PART_MAIL, now, &out) == 0);
	CU_ASSERT(out.partition == CACHE_PART_GENERAL);
	CU_ASSERT(rec_matches(&out, 2, 50, 30));
	cache_reader_end(f.r);
	fix_close(&f);
}

#define READER_THREADS 4
#define PRELOADED 500

struct reader_arg {
	struct cache *c;
	int64_t now;
	int errors;
	int hits;
};

static void *reader_main(void *p)
{
	struct reader_arg *a = p;
	struct cache_reader *r = cache_reader_new(a->c);
	char name[64];
	struct cache_record out;
	if (r == NULL) {
		a->errors++;
		return NULL;
	}
	for (int round = 0; round < 200; round++) {
		if (cache_reader_begin(r) != 0) {
			a->errors++;
			break;
		}
		for (int i = 0; i < 50; i++) {
			int j = (round * 50 + i * 7) % PRELOADED;
			snprintf(name, sizeof name, "pre%d.example.com", j);
			if (get_name(r, name, 1, CACHE_PART_GENERAL, a->now, &out) != 0 ||
			    !rec_matches(&out, (uint32_t)j, 120, 80))
				a->errors++;
			else
				a->hits++;
			/* Names being written now: a miss or a whole record. */
			snprintf(name, sizeof name, "new%d.example.com", round * 10 + i);
			if (get_name(r, name, 1, CACHE_PART_GENERAL, a->now, &out) == 0 &&
			    !rec_matches(&out, (uint32_t)(round * 10 + i), 120, 80))
				a->errors++;
		}
		cache_reader_end(r);
	}
	cache_reader_free(r);
	return NULL;
}

static void test_cache_readers_in_threads(void)
{
	struct fix f;
	fix_open(&f, 32u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	for (int i = 0; i < PRELOADED; i++) {
		make_rec(&t, (uint32_t)i, 120, 80, now, 3600, CACHE_PART_GENERAL);
		t.rec.last_hit = now - 120;     /* readers will report hits */
		snprintf(name, sizeof name, "pre%d.example.com", i);
		CU_ASSERT(put_name(f.c, name, 1, &t.rec) == 0);
	}
	cache_flush_writes(f.c);

	pthread_t th[READER_THREADS];
	struct reader_arg args[READER_THREADS];
	for (int i = 0; i < READER_THREADS; i++) {
		args[i] = (struct reader_arg){ .c = f.c, .now = now };
		CU_ASSERT_FATAL(pthread_create(&th[i], NULL, reader_main, &args[i]) == 0);
	}
	int fails = 0;
	for (int i = 0; i < 2000; i++) {
		make_rec(&t, (uint32_t)i, 120, 80, now, 3600, CACHE_PART_GENERAL);
		snprintf(name, sizeof name, "new%d.example.com", i);
		fails += put_name(f.c, name, 1, &t.rec) != 0;
		if (i % 100 == 99)
			cache_flush_writes(f.c);
	}
	for (int i = 0; i < READER_THREADS; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT(args[i].errors == 0);
		CU_ASSERT(args[i].hits == 200 * 50);
	}
	CU_ASSERT(fails == 0);
	cache_flush_writes(f.c);
	struct cache_stats st;
	cache_get_stats(f.c, &st);
	CU_ASSERT(st.entries[CACHE_PART_GENERAL] == PRELOADED + 2000);
	CU_ASSERT(st.damaged == 0);
	fix_close(&f);
}

static void test_cache_suffix_keys_are_contiguous(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	static const char *const names[] = {
		"example.com", "a.example.com", "deep.a.example.com", "z.example.com",
		"example.net", "x.example.net", "com", "examplf.com", "exampla.com",
		"a.b.c.d.com", "www.example.org", "Mixed.EXAMPLE.com",
	};
	static const uint16_t types[] = { 1, 28, 15, 256, 65535 };
	make_rec(&t, 1, 10, 10, now, 600, CACHE_PART_GENERAL);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		for (size_t j = 0; j < sizeof types / sizeof types[0]; j++)
			CU_ASSERT(put_name(c, names[i], types[j], &t.rec) == 0);
	cache_close(c);

	MDB_env *env = raw_open();
	CU_ASSERT_FATAL(env != NULL);
	uint8_t prefix[64];
	int total;
	size_t plen = test_key(prefix, "example.com", 0, 0) - 4;
	/* example.com, a., deep.a., z., mixed. -- each with five types. */
	CU_ASSERT(raw_count_prefix(env, "general", prefix, plen, &total) == 25);
	CU_ASSERT(total == 60);
	plen = test_key(prefix, "a.example.com", 0, 0) - 4;
	CU_ASSERT(raw_count_prefix(env, "general", prefix, plen, &total) == 10);
	plen = test_key(prefix, "com", 0, 0) - 4;
	CU_ASSERT(raw_count_prefix(env, "general", prefix, plen, &total) == 45);
	/* The key is exactly the documented bytes. */
	uint8_t key[300];
	size_t klen = test_key(key, "mixed.example.com", 256, 1);
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { .mv_size = klen, .mv_data = key }, v;
	CU_ASSERT_FATAL(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
	CU_ASSERT_FATAL(mdb_dbi_open(txn, "general", 0, &dbi) == 0);
	CU_ASSERT(mdb_get(txn, dbi, &k, &v) == 0);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	tmp_teardown();
}

/* ---- inspection and control ---- */

/* What a walk saw, as dotted names, for the walk and flush tests. */
#define SEEN_MAX 4096

struct seen {
	int n;
	int stop_after;         /* return non-zero from the callback on this visit; 0 = never */
	int bad;                /* callbacks with arguments that make no sense */
	char name[SEEN_MAX][64];
	uint16_t qtype[SEEN_MAX];
	uint16_t qclass[SEEN_MAX];
	uint8_t part[SEEN_MAX];
	uint32_t full_len[SEEN_MAX];
};

/* Wire form -> "www.example.com" ("." for the root); returns 0, or -1 if it
 * does not fit or is malformed. */
static int dotted(char *out, size_t cap, const uint8_t *q, size_t qlen)
{
	size_t i = 0, o = 0;
	if (qlen == 1 && q[0] == 0) {
		snprintf(out, cap, ".");
		return 0;
	}
	while (i < qlen && q[i] != 0) {
		size_t l = q[i++];
		if (i + l > qlen || o + l + 2 > cap)
			return -1;
		if (o)
			out[o++] = '.';
		memcpy(out + o, q + i, l);
		o += l;
		i += l;
	}
	if (i + 1 != qlen)
		return -1;
	out[o] = '\0';
	return 0;
}

static int seen_cb(void *arg, const uint8_t *qname, size_t qname_len, uint16_t qtype,
                   uint16_t qclass, const struct cache_record *rec)
{
	struct seen *s = arg;
	if (s->n >= SEEN_MAX) {
		s->bad++;
		return 1;
	}
	if (dotted(s->name[s->n], sizeof s->name[s->n], qname, qname_len) != 0 || rec == NULL ||
	    rec->partition >= CACHE_PART_COUNT || (rec->full_len && rec->full == NULL))
		s->bad++;
	s->qtype[s->n] = qtype;
	s->qclass[s->n] = qclass;
	s->part[s->n] = rec ? rec->partition : 255;
	s->full_len[s->n] = rec ? rec->full_len : 0;
	s->n++;
	return s->stop_after && s->n >= s->stop_after;
}

/* How many visits had this name (and qtype, unless 0). */
static int seen_count(const struct seen *s, const char *name, uint16_t qtype)
{
	int n = 0;
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->name[i], name) == 0 && (qtype == 0 || s->qtype[i] == qtype))
			n++;
	return n;
}

static int walk_name(struct cache *c, const char *suffix, int partition, struct seen *s)
{
	uint8_t q[256];
	size_t ql = wname(q, suffix);
	memset(s, 0, sizeof *s);
	return cache_walk(c, q, ql, partition, time(NULL), seen_cb, s);
}

static int lookup_name(struct cache *c, const char *name, uint16_t qtype, uint16_t qclass,
                       int64_t now, struct cache_record *out, uint8_t *buf, size_t cap)
{
	uint8_t q[256];
	size_t ql = wname(q, name);
	return cache_lookup(c, q, ql, qtype, qclass, now, out, buf, cap);
}

static int flush_name(struct cache *c, const char *name, int qtype)
{
	uint8_t q[256];
	size_t ql = wname(q, name);
	return cache_flush_name(c, q, ql, qtype);
}

static int flush_suffix(struct cache *c, const char *name)
{
	uint8_t q[256];
	size_t ql = wname(q, name);
	return cache_flush_suffix(c, q, ql);
}

static void test_cache_walk_visits_suffix_only(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	static struct seen s;
	make_rec(&t, 1, 30, 20, now, 600, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(f.c, "example.com", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "example.com", 28, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "www.example.com", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "badexample.com", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "example.community", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "com", 2, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "examplf.com", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "example.net", 1, &t.rec) == 0);
	make_rec(&t, 2, 40, 10, now, 600, CACHE_PART_MAIL);
	CU_ASSERT(put_name(f.c, "a.b.example.com", 15, &t.rec) == 0);
	cache_flush_writes(f.c);

	/* The name itself and what is under it, in every partition. */
	CU_ASSERT(walk_name(f.c, "example.com", -1, &s) == 4);
	CU_ASSERT(s.n == 4 && s.bad == 0);
	CU_ASSERT(seen_count(&s, "example.com", 1) == 1);
	CU_ASSERT(seen_count(&s, "example.com", 28) == 1);
	CU_ASSERT(seen_count(&s, "www.example.com", 1) == 1);
	CU_ASSERT(seen_count(&s, "a.b.example.com", 15) == 1);
	CU_ASSERT(seen_count(&s, "badexample.com", 0) == 0);
	CU_ASSERT(seen_count(&s, "example.community", 0) == 0);
	for (int i = 0; i < s.n; i++) {
		CU_ASSERT(s.qclass[i] == 1);
		if (strcmp(s.name[i], "a.b.example.com") == 0)
			CU_ASSERT(s.part[i] == CACHE_PART_MAIL && s.full_len[i] == 40);
	}
	/* Suffixes match case-insensitively, like gets. */
	CU_ASSERT(walk_name(f.c, "EXAMPLE.Com", -1, &s) == 4);
	/* com: everything but example.community and example.net. */
	CU_ASSERT(walk_name(f.c, "com", -1, &s) == 7);
	CU_ASSERT(seen_count(&s, "com", 2) == 1);
	CU_ASSERT(seen_count(&s, "badexample.com", 1) == 1);
	CU_ASSERT(seen_count(&s, "examplf.com", 1) == 1);
	CU_ASSERT(seen_count(&s, "example.community", 0) == 0);
	CU_ASSERT(walk_name(f.c, "www.example.com", -1, &s) == 1);
	CU_ASSERT(walk_name(f.c, "b.example.com", -1, &s) == 1);
	CU_ASSERT(walk_name(f.c, "nothere.example.com", -1, &s) == 0);
	CU_ASSERT(walk_name(f.c, "community", -1, &s) == 1);
	CU_ASSERT(walk_name(f.c, "org", -1, &s) == 0);
	/* A malformed suffix is refused. */
	const uint8_t bad[] = { 5, 'a', 'b', 0 };
	CU_ASSERT(cache_walk(f.c, bad, sizeof bad, -1, now, seen_cb, &s) == -1);
	fix_close(&f);
}

static void test_cache_walk_root_visits_everything(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	static struct seen s;
	/* More than one walk chunk, so the walk renews its snapshot on the way. */
	const int n = 1000;
	for (int i = 0; i < n; i++) {
		make_rec(&t, (uint32_t)i, 20, 10, now, 600, (enum cache_partition)(i % CACHE_PART_COUNT));
		snprintf(name, sizeof name, "n%04d.example.org", i);
		CU_ASSERT(put_name(c, name, 1, &t.rec) == 0);
	}
	/* Stale, and past stale_until but not evicted yet: both shown. */
	make_rec(&t, 1, 20, 10, now - 1000, 100, CACHE_PART_GENERAL);
	t.rec.stale_until = now + 100;
	CU_ASSERT(put_name(c, "stale.example.net", 1, &t.rec) == 0);
	make_rec(&t, 2, 20, 10, now - 1000, 100, CACHE_PART_GENERAL);
	t.rec.stale_until = now - 100;
	CU_ASSERT(put_name(c, "expired.example.net", 1, &t.rec) == 0);
	cache_close(c);

	/* And one damaged value, which is skipped: in the middle of general,
	 * away from the values the open-time check samples. */
	MDB_env *env = raw_open();
	CU_ASSERT_FATAL(env != NULL);
	uint8_t key[300];
	size_t klen = test_key(key, "n0501.example.org", 1, 1);
	CU_ASSERT(raw_put(env, "general", key, klen, "\1\0\0", 3) == 0);
	mdb_env_close(env);

	c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	const uint8_t root[] = { 0 };
	memset(&s, 0, sizeof s);
	CU_ASSERT(cache_walk(c, root, sizeof root, -1, now, seen_cb, &s) == n + 1);
	CU_ASSERT(s.n == n + 1 && s.bad == 0);
	int each_once = 1;
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof name, "n%04d.example.org", i);
		if (seen_count(&s, name, 1) != (i == 501 ? 0 : 1))
			each_once = 0;
	}
	CU_ASSERT(each_once);
	CU_ASSERT(seen_count(&s, "stale.example.net", 1) == 1);
	CU_ASSERT(seen_count(&s, "expired.example.net", 1) == 1);
	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.set_aside == 0);
	CU_ASSERT(st.damaged == 1);
	/* Partition after partition, each in key order. */
	int ordered = 1;
	for (int i = 1; i < s.n; i++)
		if (s.part[i] < s.part[i - 1] ||
		    (s.part[i] == s.part[i - 1] && strcmp(s.name[i - 1], s.name[i]) >= 0 &&
		     strstr(s.name[i], "example.org") && strstr(s.name[i - 1], "example.org")))
			ordered = 0;
	CU_ASSERT(ordered);
	cache_close(c);
	tmp_teardown();
}

static void test_cache_walk_filters_partition(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	static struct seen s;
	const int per[CACHE_PART_COUNT] = { 5, 7, 3 };
	for (int p = 0; p < CACHE_PART_COUNT; p++)
		for (int i = 0; i < per[p]; i++) {
			make_rec(&t, (uint32_t)i, 20, 10, now, 600, (enum cache_partition)p);
			snprintf(name, sizeof name, "p%d-%d.example.com", p, i);
			CU_ASSERT(put_name(f.c, name, 1, &t.rec) == 0);
		}
	cache_flush_writes(f.c);
	const uint8_t root[] = { 0 };
	for (int p = 0; p < CACHE_PART_COUNT; p++) {
		memset(&s, 0, sizeof s);
		CU_ASSERT(cache_walk(f.c, root, sizeof root, p, now, seen_cb, &s) == per[p]);
		int all_here = 1;
		for (int i = 0; i < s.n; i++)
			if (s.part[i] != p || s.name[i][1] != '0' + p)
				all_here = 0;
		CU_ASSERT(all_here);
	}
	CU_ASSERT(walk_name(f.c, "example.com", CACHE_PART_MAIL, &s) == 7);
	CU_ASSERT(walk_name(f.c, "p0-1.example.com", CACHE_PART_MAIL, &s) == 0);
	CU_ASSERT(walk_name(f.c, "p0-1.example.com", CACHE_PART_GENERAL, &s) == 1);
	CU_ASSERT(walk_name(f.c, "example.com", -1, &s) == 15);
	CU_ASSERT(walk_name(f.c, "example.com", CACHE_PART_COUNT, &s) == -1);
	CU_ASSERT(walk_name(f.c, "example.com", -2, &s) == -1);
	fix_close(&f);
}

static void test_cache_walk_stops_when_fn_returns_nonzero(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	static struct seen s;
	for (int i = 0; i < 600; i++) {
		make_rec(&t, (uint32_t)i, 20, 10, now, 600, (enum cache_partition)(i % 2));
		snprintf(name, sizeof name, "s%03d.example.com", i);
		CU_ASSERT(put_name(f.c, name, 1, &t.rec) == 0);
	}
	cache_flush_writes(f.c);
	const uint8_t root[] = { 0 };
	memset(&s, 0, sizeof s);
	s.stop_after = 3;
	CU_ASSERT(cache_walk(f.c, root, sizeof root, -1, now, seen_cb, &s) == 3);
	CU_ASSERT(s.n == 3);
	/* Across a snapshot renewal and a partition boundary too. */
	memset(&s, 0, sizeof s);
	s.stop_after = 400;
	CU_ASSERT(cache_walk(f.c, root, sizeof root, -1, now, seen_cb, &s) == 400);
	CU_ASSERT(s.n == 400);
	CU_ASSERT(s.part[299] == CACHE_PART_GENERAL && s.part[300] == CACHE_PART_MAIL);
	fix_close(&f);
}

static void test_cache_flush_name_all_types(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	static struct seen s;
	uint8_t q[256];
	size_t ql = wname(q, "example.com");
	/* Types whose first key byte equals a label length byte (256: \1,
	 * 0x0361: \3 'a') interleave with the keys of names below. */
	static const uint16_t types[] = { 1, 28, 256, 0x0361, 65535 };
	make_rec(&t, 1, 20, 10, now, 600, CACHE_PART_GENERAL);
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		CU_ASSERT(put_name(f.c, "example.com", types[i], &t.rec) == 0);
	CU_ASSERT(cache_put(f.c, q, ql, 16, 3, &t.rec) == 0);        /* class CH */
	make_rec(&t, 2, 20, 10, now, 600, CACHE_PART_MAIL);
	CU_ASSERT(put_name(f.c, "example.com", 15, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "a.example.com", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "abc.example.com", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "x.a.example.com", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "zzz.example.com", 0x0361, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "badexample.com", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "com", 1, &t.rec) == 0);
	cache_flush_writes(f.c);

	CU_ASSERT(flush_name(f.c, "Example.COM", -1) == 7);
	CU_ASSERT(walk_name(f.c, "example.com", -1, &s) == 4);
	CU_ASSERT(seen_count(&s, "example.com", 0) == 0);
	CU_ASSERT(seen_count(&s, "a.example.com", 1) == 1);
	CU_ASSERT(seen_count(&s, "abc.example.com", 1) == 1);
	CU_ASSERT(seen_count(&s, "x.a.example.com", 1) == 1);
	CU_ASSERT(seen_count(&s, "zzz.example.com", 0x0361) == 1);
	CU_ASSERT(walk_name(f.c, "com", -1, &s) == 6);
	/* Nothing left to flush; a malformed name is refused. */
	CU_ASSERT(flush_name(f.c, "example.com", -1) == 0);
	const uint8_t bad[] = { 5, 'a', 'b', 0 };
	CU_ASSERT(cache_flush_name(f.c, bad, sizeof bad, -1) == -1);
	struct cache_stats st;
	cache_get_stats(f.c, &st);
	CU_ASSERT(st.entries[CACHE_PART_GENERAL] == 0);
	CU_ASSERT(st.entries[CACHE_PART_MAIL] == 6);
	CU_ASSERT(st.write_errors == 0);
	fix_close(&f);
}

static void test_cache_flush_name_one_type(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	static struct seen s;
	uint8_t q[256];
	size_t ql = wname(q, "example.com");
	make_rec(&t, 1, 20, 10, now, 600, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(f.c, "example.com", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "example.com", 28, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "example.com", 0x0361, &t.rec) == 0);
	CU_ASSERT(cache_put(f.c, q, ql, 0x0361, 3, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "abc.example.com", 0x0361, &t.rec) == 0);   /* key: \3abc... */
	CU_ASSERT(put_name(f.c, "www.example.com", 0x0361, &t.rec) == 0);
	make_rec(&t, 2, 20, 10, now, 600, CACHE_PART_DNSBL);
	CU_ASSERT(put_name(f.c, "example.com", 1, &t.rec) == 0);     /* moves it to dnsbl */
	cache_flush_writes(f.c);

	/* Every class of that type, nothing else. */
	CU_ASSERT(flush_name(f.c, "example.com", 0x0361) == 2);
	CU_ASSERT(walk_name(f.c, "example.com", -1, &s) == 4);
	CU_ASSERT(seen_count(&s, "example.com", 1) == 1);
	CU_ASSERT(seen_count(&s, "example.com", 28) == 1);
	CU_ASSERT(seen_count(&s, "abc.example.com", 0x0361) == 1);
	CU_ASSERT(seen_count(&s, "www.example.com", 0x0361) == 1);
	/* Found wherever it is stored. */
	CU_ASSERT(flush_name(f.c, "example.com", 1) == 1);
	CU_ASSERT(flush_name(f.c, "example.com", 1) == 0);
	CU_ASSERT(flush_name(f.c, "example.com", 99) == 0);
	CU_ASSERT(walk_name(f.c, "example.com", -1, &s) == 3);
	CU_ASSERT(seen_count(&s, "example.com", 28) == 1);
	CU_ASSERT(flush_name(f.c, "example.com", 65536) == -1);
	CU_ASSERT(flush_name(f.c, "example.com", -2) == -1);
	fix_close(&f);
}

static void test_cache_flush_suffix_removes_subtree_only(void)
{
	struct fix f;
	fix_open(&f, 32u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	static struct seen s;
	make_rec(&t, 1, 20, 10, now, 600, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(f.c, "example.com", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "www.example.com", 28, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "badexample.com", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "example.community", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "com", 1, &t.rec) == 0);
	make_rec(&t, 2, 20, 10, now, 600, CACHE_PART_MAIL);
	CU_ASSERT(put_name(f.c, "a.b.example.com", 15, &t.rec) == 0);
	make_rec(&t, 3, 20, 10, now, 600, CACHE_PART_DNSBL);
	CU_ASSERT(put_name(f.c, "example.net", 1, &t.rec) == 0);
	/* Enough under one suffix for several delete transactions. */
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof name, "h%d.big.example.org", i);
		CU_ASSERT(put_name(f.c, name, 1, &t.rec) == 0);
	}
	CU_ASSERT(put_name(f.c, "big.example.org", 1, &t.rec) == 0);
	CU_ASSERT(put_name(f.c, "other.example.org", 1, &t.rec) == 0);
	cache_flush_writes(f.c);

	CU_ASSERT(flush_suffix(f.c, "EXAMPLE.com") == 3);
	CU_ASSERT(walk_name(f.c, "example.com", -1, &s) == 0);
	CU_ASSERT(walk_name(f.c, "com", -1, &s) == 2);
	CU_ASSERT(seen_count(&s, "badexample.com", 1) == 1);
	CU_ASSERT(seen_count(&s, "com", 1) == 1);
	CU_ASSERT(walk_name(f.c, "community", -1, &s) == 1);
	CU_ASSERT(walk_name(f.c, "net", -1, &s) == 1);

	CU_ASSERT(flush_suffix(f.c, "big.example.org") == 3001);
	CU_ASSERT(walk_name(f.c, "org", -1, &s) == 1);
	CU_ASSERT(seen_count(&s, "other.example.org", 1) == 1);
	CU_ASSERT(flush_suffix(f.c, "nothere.example.org") == 0);

	/* The root is everything. */
	const uint8_t root[] = { 0 };
	CU_ASSERT(cache_flush_suffix(f.c, root, sizeof root) == 5);
	struct cache_stats st;
	cache_get_stats(f.c, &st);
	for (int p = 0; p < CACHE_PART_COUNT; p++)
		CU_ASSERT(st.entries[p] == 0);
	CU_ASSERT(st.write_errors == 0);
	fix_close(&f);
}

static void test_cache_flush_partition_leaves_others(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	const int per[CACHE_PART_COUNT] = { 5, 7, 3 };
	for (int p = 0; p < CACHE_PART_COUNT; p++)
		for (int i = 0; i < per[p]; i++) {
			make_rec(&t, (uint32_t)i, 20, 10, now, 600, (enum cache_partition)p);
			snprintf(name, sizeof name, "p%d-%d.example.com", p, i);
			CU_ASSERT(put_name(c, name, 1, &t.rec) == 0);
		}
	cache_flush_writes(c);

	CU_ASSERT(cache_flush_partition(c, CACHE_PART_MAIL) == 7);
	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.entries[CACHE_PART_GENERAL] == 5);
	CU_ASSERT(st.entries[CACHE_PART_MAIL] == 0);
	CU_ASSERT(st.entries[CACHE_PART_DNSBL] == 3);
	CU_ASSERT(cache_flush_partition(c, CACHE_PART_MAIL) == 0);
	CU_ASSERT(cache_flush_partition(c, CACHE_PART_COUNT) == -1);

	/* The others still answer, and the emptied one takes puts again. */
	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "p0-4.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(get_name(r, "p2-0.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(get_name(r, "p1-0.example.com", 1, CACHE_PART_MAIL, now, &out) == -1);
	cache_reader_end(r);
	make_rec(&t, 9, 20, 10, now, 600, CACHE_PART_MAIL);
	CU_ASSERT(put_name(c, "p1-0.example.com", 1, &t.rec) == 0);
	cache_flush_writes(c);
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "p1-0.example.com", 1, CACHE_PART_MAIL, now, &out) == 0);
	CU_ASSERT(rec_matches(&out, 9, 20, 10));
	cache_reader_end(r);
	cache_reader_free(r);
	cache_close(c);

	/* Emptied, not destroyed: the database is still there after reopening. */
	c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	cache_get_stats(c, &st);
	CU_ASSERT(st.set_aside == 0);
	CU_ASSERT(st.entries[CACHE_PART_MAIL] == 1);
	cache_close(c);
	tmp_teardown();
}

static void test_cache_flush_after_queued_put_wins(void)
{
	tmp_setup();
	struct cache *c = open_cache(32u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	static struct seen s;
	struct cache_record out;
	uint8_t buf[256];
	int gone = 0;

	/* No cache_flush_writes between the put and the flush. */
	for (int i = 0; i < 200; i++) {
		make_rec(&t, (uint32_t)i, 20, 10, now, 600, (enum cache_partition)(i % 3));
		snprintf(name, sizeof name, "q%d.example.com", i);
		CU_ASSERT(put_name(c, name, 1, &t.rec) == 0);
		CU_ASSERT(flush_name(c, name, -1) == 1);
		gone += lookup_name(c, name, 1, 1, now, &out, buf, sizeof buf) == -1;
	}
	CU_ASSERT(gone == 200);
	/* Many queued puts, so the writer is busy with them when the flush
	 * arrives: it must still come after all of them. */
	for (int i = 0; i < 5000; i++) {
		make_rec(&t, (uint32_t)i, 20, 10, now, 600, CACHE_PART_GENERAL);
		snprintf(name, sizeof name, "w%d.example.net", i);
		CU_ASSERT(put_name(c, name, 1, &t.rec) == 0);
	}
	CU_ASSERT(flush_suffix(c, "example.net") == 5000);
	CU_ASSERT(walk_name(c, "example.net", -1, &s) == 0);
	make_rec(&t, 1, 20, 10, now, 600, CACHE_PART_MAIL);
	CU_ASSERT(put_name(c, "m.example.org", 15, &t.rec) == 0);
	CU_ASSERT(cache_flush_partition(c, CACHE_PART_MAIL) == 1);
	/* A put after the flush returned is kept. */
	CU_ASSERT(put_name(c, "m.example.org", 15, &t.rec) == 0);
	cache_flush_writes(c);
	CU_ASSERT(lookup_name(c, "m.example.org", 15, 1, now, &out, buf, sizeof buf) == 0);
	cache_close(c);

	/* And the flushes are on disk. */
	c = open_cache(32u << 20);
	CU_ASSERT_FATAL(c != NULL);
	const uint8_t root[] = { 0 };
	memset(&s, 0, sizeof s);
	CU_ASSERT(cache_walk(c, root, sizeof root, -1, now, seen_cb, &s) == 1);
	cache_close(c);
	tmp_teardown();
}

static void test_cache_lookup_copies_record(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 11, 300, 120, now - 10, 300, CACHE_PART_MAIL);
	t.rec.rcode = 3;
	t.rec.dnssec = CACHE_DNSSEC_INSECURE;
	CU_ASSERT(put_name(c, "mx.example.com", 15, &t.rec) == 0);
	make_rec(&t, 12, 50, 40, now - 200, 100, CACHE_PART_GENERAL);
	t.rec.stale_until = now + 50;
	CU_ASSERT(put_name(c, "stale.example.com", 1, &t.rec) == 0);
	make_rec(&t, 13, 50, 40, now - 200, 100, CACHE_PART_GENERAL);
	t.rec.stale_until = now - 50;
	CU_ASSERT(put_name(c, "expired.example.com", 1, &t.rec) == 0);
	cache_flush_writes(c);

	static uint8_t buf[1024];
	struct cache_record out;
	memset(&out, 0, sizeof out);
	CU_ASSERT(lookup_name(c, "MX.example.com", 15, 1, now, &out, buf, sizeof buf) == 0);
	CU_ASSERT(out.full == buf);
	CU_ASSERT(out.plain == buf + 300);
	CU_ASSERT(out.rcode == 3);
	CU_ASSERT(out.dnssec == CACHE_DNSSEC_INSECURE);
	CU_ASSERT(out.partition == CACHE_PART_MAIL);
	CU_ASSERT(out.stored_at == now - 10);
	CU_ASSERT(out.ttl == 300);
	CU_ASSERT(out.expires == now + 290);
	CU_ASSERT(rec_matches(&out, 11, 300, 120));
	/* Stale but within stale_until is found; beyond, and absent, not. */
	struct cache_record st_out;
	static uint8_t buf2[1024];
	CU_ASSERT(lookup_name(c, "stale.example.com", 1, 1, now, &st_out, buf2, sizeof buf2) == 0);
	CU_ASSERT(st_out.expires <= now);
	CU_ASSERT(rec_matches(&st_out, 12, 50, 40));
	CU_ASSERT(lookup_name(c, "expired.example.com", 1, 1, now, &st_out, buf2, sizeof buf2) == -1);
	CU_ASSERT(lookup_name(c, "mx.example.com", 1, 1, now, &st_out, buf2, sizeof buf2) == -1);
	CU_ASSERT(lookup_name(c, "mx.example.com", 15, 3, now, &st_out, buf2, sizeof buf2) == -1);
	CU_ASSERT(lookup_name(c, "nothere.example.com", 15, 1, now, &st_out, buf2, sizeof buf2) == -1);
	/* A lookup is not a hit: last_hit is untouched. */
	cache_flush_writes(c);
	CU_ASSERT(lookup_name(c, "mx.example.com", 15, 1, now, &st_out, buf2, sizeof buf2) == 0);
	CU_ASSERT(st_out.last_hit == now - 10);
	cache_close(c);
	/* The bytes are the caller's: still right with the map gone. */
	CU_ASSERT(rec_matches(&out, 11, 300, 120));
	tmp_teardown();
}

static void test_cache_lookup_small_buffer(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 21, 300, 120, now, 300, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(f.c, "big.example.com", 1, &t.rec) == 0);
	make_rec(&t, 22, 0, 0, now, 300, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(f.c, "empty.example.com", 1, &t.rec) == 0);
	cache_flush_writes(f.c);

	static uint8_t buf[420];
	struct cache_record out;
	memset(buf, 0xaa, sizeof buf);
	CU_ASSERT(lookup_name(f.c, "big.example.com", 1, 1, now, &out, buf, 419) == -2);
	/* The header tells how much is needed; nothing was written. */
	CU_ASSERT(out.full == NULL && out.plain == NULL);
	CU_ASSERT(out.full_len == 300 && out.plain_len == 120);
	CU_ASSERT(out.ttl == 300);
	int untouched = 1;
	for (size_t i = 0; i < sizeof buf; i++)
		if (buf[i] != 0xaa)
			untouched = 0;
	CU_ASSERT(untouched);
	CU_ASSERT(lookup_name(f.c, "big.example.com", 1, 1, now, &out, NULL, 0) == -2);
	/* Exactly enough is enough. */
	CU_ASSERT(lookup_name(f.c, "big.example.com", 1, 1, now, &out, buf, 420) == 0);
	CU_ASSERT(rec_matches(&out, 21, 300, 120));
	/* Empty forms need no buffer at all. */
	CU_ASSERT(lookup_name(f.c, "empty.example.com", 1, 1, now, &out, NULL, 0) == 0);
	CU_ASSERT(out.full_len == 0 && out.plain_len == 0);
	fix_close(&f);
}

/* ---- the meta database ---- */

static void test_cache_meta_put_get_roundtrip(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	uint8_t val[300];
	for (size_t i = 0; i < sizeof val; i++)
		val[i] = (uint8_t)(i * 7);
	/* Binary values with NULs inside come back byte for byte. */
	CU_ASSERT(cache_meta_put(f.c, "web.series.hour", val, sizeof val) == 0);
	size_t len = 0;
	uint8_t *got = cache_meta_get(f.c, "web.series.hour", &len);
	CU_ASSERT_FATAL(got != NULL);
	CU_ASSERT(len == sizeof val);
	CU_ASSERT(memcmp(got, val, sizeof val) == 0);
	free(got);
	/* An empty value is stored and found, not taken for "none". */
	CU_ASSERT(cache_meta_put(f.c, "web.empty", NULL, 0) == 0);
	len = 99;
	got = cache_meta_get(f.c, "web.empty", &len);
	CU_ASSERT(got != NULL);
	CU_ASSERT(len == 0);
	free(got);
	fix_close(&f);
}

static void test_cache_meta_put_overwrites(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	CU_ASSERT(cache_meta_put(f.c, "web.k", "a longer first value", 20) == 0);
	CU_ASSERT(cache_meta_put(f.c, "web.k", "short", 5) == 0);
	size_t len = 0;
	uint8_t *got = cache_meta_get(f.c, "web.k", &len);
	CU_ASSERT_FATAL(got != NULL);
	CU_ASSERT(len == 5 && memcmp(got, "short", 5) == 0);
	free(got);
	fix_close(&f);
}

static void test_cache_meta_get_missing_is_null(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	size_t len = 42;
	CU_ASSERT(cache_meta_get(f.c, "web.nothing", &len) == NULL);
	CU_ASSERT(len == 0);
	CU_ASSERT(cache_meta_get(f.c, "", &len) == NULL);
	/* A key that is a prefix of a stored one is another key. */
	CU_ASSERT(cache_meta_put(f.c, "web.abc", "x", 1) == 0);
	CU_ASSERT(cache_meta_get(f.c, "web.ab", &len) == NULL);
	fix_close(&f);
}

static void test_cache_meta_put_rejects_reserved_and_oversize(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT(cache_meta_put(c, "", "x", 1) == -1);
	CU_ASSERT(cache_meta_put(c, NULL, "x", 1) == -1);
	CU_ASSERT(cache_meta_put(c, "web.", "x", 1) == -1);
	CU_ASSERT(cache_meta_put(c, "web", "x", 1) == -1);
	CU_ASSERT(cache_meta_put(c, "WEB.x", "x", 1) == -1);
	CU_ASSERT(cache_meta_put(c, "format-version", "\0\0\0\1", 4) == -1);
	CU_ASSERT(cache_meta_put(c, "clean-shutdown", "1", 1) == -1);

	size_t big = (1u << 20) + 1;
	uint8_t *buf = calloc(1, big);
	CU_ASSERT_FATAL(buf != NULL);
	CU_ASSERT(cache_meta_put(c, "web.big", buf, big) == -1);
	size_t len;
	CU_ASSERT(cache_meta_get(c, "web.big", &len) == NULL);
	/* Exactly 1 MiB is allowed. */
	buf[0] = 1;
	buf[big - 2] = 2;
	CU_ASSERT(cache_meta_put(c, "web.big", buf, big - 1) == 0);
	uint8_t *got = cache_meta_get(c, "web.big", &len);
	CU_ASSERT(got != NULL && len == big - 1 && got[0] == 1 && got[big - 2] == 2);
	free(got);
	free(buf);

	/* The cache's own keys are untouched and still readable. */
	got = cache_meta_get(c, "format-version", &len);
	CU_ASSERT(got != NULL && len == 4);
	free(got);
	cache_close(c);

	/* And the next open trusts the cache as before. */
	c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.set_aside == 0);
	cache_close(c);
	CU_ASSERT(count_bad_dirs() == 0);
	tmp_teardown();
}

static void test_cache_meta_survives_close_open(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	/* Mixed with queued puts, which must not disturb it either way. */
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 31, 40, 40, now, 600, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(c, "meta.example.com", 1, &t.rec) == 0);
	CU_ASSERT(cache_meta_put(c, "web.timeseries", "points", 6) == 0);
	cache_close(c);

	c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	size_t len = 0;
	uint8_t *got = cache_meta_get(c, "web.timeseries", &len);
	CU_ASSERT_FATAL(got != NULL);
	CU_ASSERT(len == 6 && memcmp(got, "points", 6) == 0);
	free(got);
	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.set_aside == 0);
	CU_ASSERT(st.entries[CACHE_PART_GENERAL] == 1);
	cache_close(c);
	tmp_teardown();
}

static void test_cache_meta_gone_after_set_aside(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT(cache_meta_put(c, "web.timeseries", "old", 3) == 0);
	cache_close(c);

	MDB_env *env = raw_open();
	CU_ASSERT_FATAL(env != NULL);
	const uint8_t ver[4] = { 0, 0, 3, 231 };
	CU_ASSERT(raw_put(env, "meta", "format-version", 14, ver, 4) == 0);
	mdb_env_close(env);

	c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.set_aside == 1);
	size_t len = 0;
	CU_ASSERT(cache_meta_get(c, "web.timeseries", &len) == NULL);
	/* The new cache takes web keys again. */
	CU_ASSERT(cache_meta_put(c, "web.timeseries", "new", 3) == 0);
	uint8_t *got = cache_meta_get(c, "web.timeseries", &len);
	CU_ASSERT(got != NULL && len == 3 && memcmp(got, "new", 3) == 0);
	free(got);
	cache_close(c);
	tmp_teardown();
}

/* ---- hot tables ---- */

static uint64_t hot_hits(struct cache *c)
{
	struct cache_stats st;
	cache_get_stats(c, &st);
	return st.hot_hits;
}

/* One get in a batch of its own, as a worker does it. */
static int get_batch(struct cache_reader *r, const char *name, uint16_t qtype, int64_t now,
                     struct cache_record *out)
{
	if (cache_reader_begin(r) != 0)
		return -2;
	int rc = get_name(r, name, qtype, CACHE_PART_GENERAL, now, out);
	cache_reader_end(r);
	return rc;
}

static void test_cache_hot_serves_copy_and_sees_replacement(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 1, 200, 80, now, 300, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(f.c, "mx.example.com", 1, &t.rec) == 0);
	cache_flush_writes(f.c);
	fix_reader(&f);
	CU_ASSERT_FATAL(cache_reader_hot(f.r, 1u << 20) == 0);
	struct cache_record out;

	CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
	CU_ASSERT(get_name(f.r, "mx.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(hot_hits(f.c) == 0);
	/* The second get, even in the same batch, is the copy. */
	CU_ASSERT(get_name(f.r, "MX.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(hot_hits(f.c) == 1);
	CU_ASSERT(rec_matches(&out, 1, 200, 80));
	CU_ASSERT(out.expires == now + 300);
	CU_ASSERT(out.dnssec == CACHE_DNSSEC_SECURE);
	CU_ASSERT(out.partition == CACHE_PART_GENERAL);
	cache_reader_end(f.r);

	/* A new answer for the key: the next batch gets it, not the copy. */
	make_rec(&t, 2, 210, 90, now, 600, CACHE_PART_MAIL);
	CU_ASSERT(put_name(f.c, "mx.example.com", 1, &t.rec) == 0);
	cache_flush_writes(f.c);
	CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
	CU_ASSERT(get_name(f.r, "mx.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(rec_matches(&out, 2, 210, 90));
	CU_ASSERT(out.expires == now + 600);
	CU_ASSERT(out.partition == CACHE_PART_MAIL);
	CU_ASSERT(hot_hits(f.c) == 1);
	CU_ASSERT(get_name(f.r, "mx.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(rec_matches(&out, 2, 210, 90));
	CU_ASSERT(out.partition == CACHE_PART_MAIL);
	CU_ASSERT(hot_hits(f.c) == 2);
	/* Another type of the same name is another key. */
	CU_ASSERT(get_name(f.r, "mx.example.com", 28, CACHE_PART_GENERAL, now, &out) == -1);
	cache_reader_end(f.r);
	/* The copy ages like the entry: gone at stale_until, not a second later. */
	CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
	CU_ASSERT(get_name(f.r, "mx.example.com", 1, CACHE_PART_GENERAL, now + 600 + 3599, &out) == 0);
	CU_ASSERT(get_name(f.r, "mx.example.com", 1, CACHE_PART_GENERAL, now + 600 + 3600, &out) == -1);
	cache_reader_end(f.r);
	/* Hits counted by a freed reader stay counted. */
	uint64_t before = hot_hits(f.c);
	cache_reader_free(f.r);
	f.r = NULL;
	CU_ASSERT(hot_hits(f.c) == before);
	fix_close(&f);
}

static void test_cache_hot_copies_do_not_outlive_flushes(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	const char *names[] = { "a.one.test", "b.two.test", "c.two.test", "keep.three.test" };
	for (unsigned i = 0; i < 4; i++) {
		make_rec(&t, i, 100, 50, now, 300, i == 3 ? CACHE_PART_GENERAL : CACHE_PART_MAIL);
		CU_ASSERT(put_name(f.c, names[i], 15, &t.rec) == 0);
	}
	make_rec(&t, 5, 100, 50, now, 300, CACHE_PART_DNSBL);
	CU_ASSERT(put_name(f.c, "2.0.0.127.bl.test", 1, &t.rec) == 0);
	cache_flush_writes(f.c);
	fix_reader(&f);
	CU_ASSERT_FATAL(cache_reader_hot(f.r, 1u << 20) == 0);
	struct cache_record out;
	for (int round = 0; round < 2; round++) {
		for (unsigned i = 0; i < 4; i++)
			CU_ASSERT(get_batch(f.r, names[i], 15, now, &out) == 0);
		CU_ASSERT(get_batch(f.r, "2.0.0.127.bl.test", 1, now, &out) == 0);
	}
	CU_ASSERT(hot_hits(f.c) == 5);

	uint8_t q[256];
	size_t ql = wname(q, names[0]);
	CU_ASSERT(cache_flush_name(f.c, q, ql, -1) == 1);
	CU_ASSERT(get_batch(f.r, names[0], 15, now, &out) == -1);
	ql = wname(q, "two.test");
	CU_ASSERT(cache_flush_suffix(f.c, q, ql) == 2);
	CU_ASSERT(get_batch(f.r, names[1], 15, now, &out) == -1);
	CU_ASSERT(get_batch(f.r, names[2], 15, now, &out) == -1);
	CU_ASSERT(cache_flush_partition(f.c, CACHE_PART_DNSBL) >= 0);
	CU_ASSERT(get_batch(f.r, "2.0.0.127.bl.test", 1, now, &out) == -1);
	/* What no flush touched is still there. */
	CU_ASSERT(get_batch(f.r, names[3], 15, now, &out) == 0);
	CU_ASSERT(rec_matches(&out, 3, 100, 50));
	fix_close(&f);
}

static void test_cache_hot_copy_of_evicted_entry_not_served(void)
{
	struct fix f;
	fix_open(&f, 32u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	for (int i = 0; i < 8000; i++) {
		make_rec(&t, (uint32_t)i, 200, 150, now, 3600, CACHE_PART_GENERAL);
		t.rec.last_hit = now - 8000 + i;
		snprintf(name, sizeof name, "g%d.example.net", i);
		CU_ASSERT(put_name(f.c, name, 1, &t.rec) == 0);
	}
	cache_flush_writes(f.c);
	fix_reader(&f);
	CU_ASSERT_FATAL(cache_reader_hot(f.r, 1u << 20) == 0);
	struct cache_record out;
	/* Asked "at" its own last hit, so that the get does not refresh it
	 * and it stays the first to go. */
	CU_ASSERT(get_batch(f.r, "g0.example.net", 1, now - 8000, &out) == 0);
	CU_ASSERT(get_batch(f.r, "g0.example.net", 1, now - 8000, &out) == 0);
	CU_ASSERT(hot_hits(f.c) == 1);
	uint64_t quota[CACHE_PART_COUNT] = { 1u << 20, 0, 0 };
	cache_set_quotas(f.c, quota);
	cache_flush_writes(f.c);
	struct cache_stats st;
	cache_get_stats(f.c, &st);
	CU_ASSERT_FATAL(st.evictions > 0);
	CU_ASSERT(get_batch(f.r, "g0.example.net", 1, now - 8000, &out) == -1);
	CU_ASSERT(get_batch(f.r, "g7999.example.net", 1, now, &out) == 0);
	fix_close(&f);
}

static void test_cache_hot_small_table_never_mixes_keys(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	for (uint32_t i = 0; i < 100; i++) {
		make_rec(&t, i, 40 + i, 20 + i, now, 300, CACHE_PART_GENERAL);
		snprintf(name, sizeof name, "n%u.mix.test", i);
		CU_ASSERT(put_name(f.c, name, 16, &t.rec) == 0);
	}
	/* Over 4 KiB: served from LMDB every time. */
	make_rec(&t, 200, 2048, 2048, now, 300, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(f.c, "big.mix.test", 16, &t.rec) == 0);
	cache_flush_writes(f.c);
	fix_reader(&f);
	/* The smallest table, 16 KiB, holds about 60 of these 100: constant
	 * replacement. */
	CU_ASSERT_FATAL(cache_reader_hot(f.r, 1) == 0);
	struct cache_record out;
	unsigned wrong = 0, missing = 0;
	for (int round = 0; round < 3; round++) {
		for (uint32_t i = 0; i < 100; i++) {
			snprintf(name, sizeof name, "n%u.mix.test", (i * 37u + (uint32_t)round) % 100u);
			uint32_t want = (i * 37u + (uint32_t)round) % 100u;
			CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
			for (int twice = 0; twice < 2; twice++) {
				if (get_name(f.r, name, 16, CACHE_PART_GENERAL, now, &out) != 0)
					missing++;
				else if (!rec_matches(&out, want, 40 + want, 20 + want))
					wrong++;
			}
			cache_reader_end(f.r);
		}
	}
	CU_ASSERT(missing == 0);
	CU_ASSERT(wrong == 0);
	/* Every second get is a copy; of the first ones, only those whose copy
	 * the ring still held since the last round. */
	CU_ASSERT(hot_hits(f.c) >= 300);
	CU_ASSERT(hot_hits(f.c) < 500);
	uint64_t before = hot_hits(f.c);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT(get_batch(f.r, "big.mix.test", 16, now, &out) == 0);
		CU_ASSERT(rec_matches(&out, 200, 2048, 2048));
	}
	CU_ASSERT(hot_hits(f.c) == before);
	/* Turned off again, a reader still answers, from LMDB. */
	CU_ASSERT(cache_reader_hot(f.r, 0) == 0);
	CU_ASSERT(get_batch(f.r, "n5.mix.test", 16, now, &out) == 0);
	CU_ASSERT(get_batch(f.r, "n5.mix.test", 16, now, &out) == 0);
	CU_ASSERT(rec_matches(&out, 5, 45, 25));
	CU_ASSERT(hot_hits(f.c) == before);
	fix_close(&f);
}

/* A writer replaces one answer over and over while a reader with a hot
 * table reads it: a batch begun after a version was committed never sees
 * an older one. */
struct hot_race {
	struct cache *c;
	_Atomic uint32_t committed;
	_Atomic uint32_t batches;       /* the reader's, so that the two interleave */
	_Atomic int stop;
	int64_t now;
	unsigned stale_reads, reads;
};

static void *hot_race_writer(void *arg)
{
	struct hot_race *h = arg;
	struct test_rec t;
	for (uint32_t v = 1; v < 400; v++) {
		make_rec(&t, v, 64, 32, h->now, 300, CACHE_PART_GENERAL);
		/* The version is in the first four bytes, readable whatever v is. */
		memcpy(t.full, &v, 4);
		put_name(h->c, "race.hot.test", 1, &t.rec);
		if (v % 3 == 0) {
			make_rec(&t, v, 64, 32, h->now, 300, CACHE_PART_GENERAL);
			put_name(h->c, "other.hot.test", 1, &t.rec);
		}
		cache_flush_writes(h->c);
		atomic_store(&h->committed, v);
		uint32_t seen = atomic_load(&h->batches);
		while (atomic_load(&h->batches) < seen + 2)
			sched_yield();
	}
	atomic_store(&h->stop, 1);
	return NULL;
}

static void test_cache_hot_never_older_than_committed(void)
{
	struct fix f;
	fix_open(&f, 16u << 20);
	fix_reader(&f);
	struct hot_race h = { .c = f.c, .now = time(NULL) };
	CU_ASSERT_FATAL(cache_reader_hot(f.r, 1u << 20) == 0);
	pthread_t th;
	CU_ASSERT_FATAL(pthread_create(&th, NULL, hot_race_writer, &h) == 0);
	struct cache_record out;
	while (!atomic_load(&h.stop)) {
		uint32_t floor = atomic_load(&h.committed);
		CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
		for (int i = 0; i < 4; i++) {
			if (get_name(f.r, "race.hot.test", 1, CACHE_PART_GENERAL, h.now, &out) != 0) {
				if (floor > 0)
					h.stale_reads++;
				continue;
			}
			uint32_t v;
			memcpy(&v, out.full, 4);
			h.reads++;
			if (v < floor)
				h.stale_reads++;
		}
		cache_reader_end(f.r);
		atomic_fetch_add(&h.batches, 1);
	}
	pthread_join(th, NULL);
	CU_ASSERT(h.stale_reads == 0);
	CU_ASSERT(h.reads > 0);
	/* And at the end, the last version, from the copy the second time. */
	uint64_t before = hot_hits(h.c);
	for (int i = 0; i < 2; i++) {
		CU_ASSERT_FATAL(cache_reader_begin(f.r) == 0);
		CU_ASSERT(get_name(f.r, "race.hot.test", 1, CACHE_PART_GENERAL, h.now, &out) == 0);
		uint32_t v;
		memcpy(&v, out.full, 4);
		CU_ASSERT(v == 399);
		cache_reader_end(f.r);
	}
	CU_ASSERT(hot_hits(h.c) > before);
	fix_close(&f);
}

int main(void)
{
	static const struct unit_test tests[] = {
		T(test_cache_put_then_get_returns_forms),
		T(test_cache_get_expired_beyond_stale_is_miss),
		T(test_cache_get_within_stale_window_is_found),
		T(test_cache_ttl_countdown_by_wall_clock),
		T(test_cache_negative_entry_roundtrip),
		T(test_cache_persists_across_close_open),
		T(test_cache_hit_refreshes_last_hit),
		T(test_cache_evicts_when_partition_over_quota),
		T(test_cache_set_quotas_shrinks_one_partition_live),
		T(test_cache_map_full_never_fails_put),
		T(test_cache_corrupt_value_is_miss),
		T(test_cache_wrong_format_version_is_set_aside),
		T(test_cache_garbage_file_is_set_aside),
		T(test_cache_partition_move_removes_old_copy),
		T(test_cache_readers_in_threads),
		T(test_cache_suffix_keys_are_contiguous),
		T(test_cache_walk_visits_suffix_only),
		T(test_cache_walk_root_visits_everything),
		T(test_cache_walk_filters_partition),
		T(test_cache_walk_stops_when_fn_returns_nonzero),
		T(test_cache_flush_name_all_types),
		T(test_cache_flush_name_one_type),
		T(test_cache_flush_suffix_removes_subtree_only),
		T(test_cache_flush_partition_leaves_others),
		T(test_cache_flush_after_queued_put_wins),
		T(test_cache_lookup_copies_record),
		T(test_cache_lookup_small_buffer),
		T(test_cache_meta_put_get_roundtrip),
		T(test_cache_meta_put_overwrites),
		T(test_cache_meta_get_missing_is_null),
		T(test_cache_meta_put_rejects_reserved_and_oversize),
		T(test_cache_meta_survives_close_open),
		T(test_cache_meta_gone_after_set_aside),
		T(test_cache_hot_serves_copy_and_sees_replacement),
		T(test_cache_hot_copies_do_not_outlive_flushes),
		T(test_cache_hot_copy_of_evicted_entry_not_served),
		T(test_cache_hot_small_table_never_mixes_keys),
		T(test_cache_hot_never_older_than_committed),
	};

	/* TEST_CACHE_DEBUG=1 shows the cache's debug lines (evictions, map full). */
	log_set_level(getenv("TEST_CACHE_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
	return unit_run("cache", NULL, NULL, tests, UNIT_COUNT(tests));
}
