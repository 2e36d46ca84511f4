/* test_cache.c -- unit tests for the LMDB answer cache
 *
 * Each test works in its own mkdtemp() directory; the cache lives in DIR/db
 * so that a set-aside DIR/db.bad-* lands inside it too and is removed with
 * it.  Some tests open the environment directly with LMDB, after
 * cache_close(), to damage it or to look at the on-disk keys. */
#include "cache.h"
#include "log.h"

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <ftw.h>
#include <lmdb.h>
#include <pthread.h>
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

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void tmp_teardown(void)
{
	nftw(tdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* "www.example.com" -> wire form; returns its length. */
static size_t wname(uint8_t *out, const char *name)
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
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 7, 300, 120, now, 300, CACHE_PART_GENERAL);
	t.rec.dnssec = CACHE_DNSSEC_BOGUS;
	t.rec.rcode = 0;
	CU_ASSERT(put_name(c, "www.example.com", 1, &t.rec) == 0);
	cache_flush_writes(c);

	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "www.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(rec_matches(&out, 7, 300, 120));
	CU_ASSERT(out.rcode == 0);
	CU_ASSERT(out.dnssec == CACHE_DNSSEC_BOGUS);
	CU_ASSERT(out.stored_at == now);
	CU_ASSERT(out.ttl == 300);
	CU_ASSERT(out.expires == now + 300);
	CU_ASSERT(out.stale_until == now + 300 + 3600);
	CU_ASSERT(out.partition == CACHE_PART_GENERAL);
	/* Names are keyed case-insensitively; other types and names miss. */
	CU_ASSERT(get_name(r, "WWW.Example.COM", 1, CACHE_PART_MAIL, now, &out) == 0);
	CU_ASSERT(get_name(r, "www.example.com", 28, CACHE_PART_GENERAL, now, &out) == -1);
	CU_ASSERT(get_name(r, "example.com", 1, CACHE_PART_GENERAL, now, &out) == -1);
	/* A malformed qname is a miss, not a crash. */
	const uint8_t bad[] = { 5, 'a', 'b', 0 };
	CU_ASSERT(cache_get(r, bad, sizeof bad, 1, 1, CACHE_PART_GENERAL, now, &out) == -1);
	cache_reader_end(r);
	/* After end, a get without begin is a miss. */
	CU_ASSERT(get_name(r, "www.example.com", 1, CACHE_PART_GENERAL, now, &out) == -1);
	cache_reader_free(r);

	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.entries[CACHE_PART_GENERAL] == 1);
	CU_ASSERT(st.puts == 1);
	CU_ASSERT(st.commits >= 1);
	CU_ASSERT(st.map_size >= (16u << 20));
	CU_ASSERT(st.set_aside == 0);
	cache_close(c);
	tmp_teardown();
}

static void test_cache_get_expired_beyond_stale_is_miss(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 1, 50, 50, now - 1000, 100, CACHE_PART_GENERAL);
	t.rec.stale_until = now - 10;
	CU_ASSERT(put_name(c, "old.example.com", 1, &t.rec) == 0);
	cache_flush_writes(c);
	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "old.example.com", 1, CACHE_PART_GENERAL, now, &out) == -1);
	/* Exactly at stale_until it is gone; one second before, it is there. */
	CU_ASSERT(get_name(r, "old.example.com", 1, CACHE_PART_GENERAL, now - 10, &out) == -1);
	CU_ASSERT(get_name(r, "old.example.com", 1, CACHE_PART_GENERAL, now - 11, &out) == 0);
	cache_reader_end(r);
	cache_reader_free(r);
	cache_close(c);
	tmp_teardown();
}

static void test_cache_get_within_stale_window_is_found(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 2, 60, 40, now - 105, 100, CACHE_PART_GENERAL);
	t.rec.stale_until = now + 100;
	CU_ASSERT(put_name(c, "stale.example.com", 1, &t.rec) == 0);
	cache_flush_writes(c);
	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "stale.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(out.expires <= now);
	CU_ASSERT(out.expires == now - 5);
	CU_ASSERT(rec_matches(&out, 2, 60, 40));
	cache_reader_end(r);
	cache_reader_free(r);
	cache_close(c);
	tmp_teardown();
}

static void test_cache_ttl_countdown_by_wall_clock(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 3, 80, 80, now - 30, 300, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(c, "ttl.example.com", 1, &t.rec) == 0);
	cache_flush_writes(c);
	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "ttl.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(out.stored_at == now - 30);
	CU_ASSERT(out.ttl == 300);
	CU_ASSERT(out.expires - now == 270);
	/* Later, the same entry has less left. */
	CU_ASSERT(get_name(r, "ttl.example.com", 1, CACHE_PART_GENERAL, now + 100, &out) == 0);
	CU_ASSERT(out.expires - (now + 100) == 170);
	cache_reader_end(r);
	cache_reader_free(r);
	cache_close(c);
	tmp_teardown();
}

static void test_cache_negative_entry_roundtrip(void)
{
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 4, 400, 90, now, 900, CACHE_PART_MAIL);
	t.rec.rcode = 3;
	t.rec.dnssec = CACHE_DNSSEC_INSECURE;
	CU_ASSERT(put_name(c, "nx.example.org", 15, &t.rec) == 0);
	/* An empty plain form is allowed too (NODATA without proofs). */
	struct test_rec e;
	make_rec(&e, 5, 33, 0, now, 900, CACHE_PART_MAIL);
	CU_ASSERT(put_name(c, "nodata.example.org", 15, &e.rec) == 0);
	cache_flush_writes(c);
	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "nx.example.org", 15, CACHE_PART_MAIL, now, &out) == 0);
	CU_ASSERT(out.rcode == 3);
	CU_ASSERT(out.dnssec == CACHE_DNSSEC_INSECURE);
	CU_ASSERT(out.partition == CACHE_PART_MAIL);
	CU_ASSERT(rec_matches(&out, 4, 400, 90));
	CU_ASSERT(get_name(r, "nodata.example.org", 15, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(rec_matches(&out, 5, 33, 0));
	cache_reader_end(r);
	cache_reader_free(r);
	cache_close(c);
	tmp_teardown();
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
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 8, 64, 64, now, 600, CACHE_PART_GENERAL);
	t.rec.last_hit = now - 1000;
	CU_ASSERT(put_name(c, "hot.example.com", 1, &t.rec) == 0);
	cache_flush_writes(c);
	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "hot.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(out.last_hit == now - 1000);
	cache_reader_end(r);
	cache_flush_writes(c);
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	CU_ASSERT(get_name(r, "hot.example.com", 1, CACHE_PART_GENERAL, now, &out) == 0);
	CU_ASSERT(out.last_hit >= now);
	CU_ASSERT(rec_matches(&out, 8, 64, 64));
	cache_reader_end(r);
	cache_reader_free(r);
	cache_close(c);
	tmp_teardown();
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
	tmp_setup();
	struct cache *c = open_cache(16u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	make_rec(&t, 1, 40, 40, now, 600, CACHE_PART_MAIL);
	CU_ASSERT(put_name(c, "mx.example.com", 15, &t.rec) == 0);
	cache_flush_writes(c);
	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.entries[CACHE_PART_MAIL] == 1);

	make_rec(&t, 2, 50, 30, now, 600, CACHE_PART_GENERAL);
	CU_ASSERT(put_name(c, "mx.example.com", 15, &t.rec) == 0);
	cache_flush_writes(c);
	cache_get_stats(c, &st);
	CU_ASSERT(st.entries[CACHE_PART_MAIL] == 0);
	CU_ASSERT(st.entries[CACHE_PART_GENERAL] == 1);

	struct cache_reader *r = cache_reader_new(c);
	CU_ASSERT_FATAL(r != NULL);
	struct cache_record out;
	CU_ASSERT_FATAL(cache_reader_begin(r) == 0);
	/* Found through the wrong hint, in its new home, with the new data. */
	CU_ASSERT(get_name(r, "mx.example.com", 15, CACHE_PART_MAIL, now, &out) == 0);
	CU_ASSERT(out.partition == CACHE_PART_GENERAL);
	CU_ASSERT(rec_matches(&out, 2, 50, 30));
	cache_reader_end(r);
	cache_reader_free(r);
	cache_close(c);
	tmp_teardown();
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
	tmp_setup();
	struct cache *c = open_cache(32u << 20);
	CU_ASSERT_FATAL(c != NULL);
	int64_t now = time(NULL);
	struct test_rec t;
	char name[64];
	for (int i = 0; i < PRELOADED; i++) {
		make_rec(&t, (uint32_t)i, 120, 80, now, 3600, CACHE_PART_GENERAL);
		t.rec.last_hit = now - 120;     /* readers will report hits */
		snprintf(name, sizeof name, "pre%d.example.com", i);
		CU_ASSERT(put_name(c, name, 1, &t.rec) == 0);
	}
	cache_flush_writes(c);

	pthread_t th[READER_THREADS];
	struct reader_arg args[READER_THREADS];
	for (int i = 0; i < READER_THREADS; i++) {
		args[i] = (struct reader_arg){ .c = c, .now = now };
		CU_ASSERT_FATAL(pthread_create(&th[i], NULL, reader_main, &args[i]) == 0);
	}
	int fails = 0;
	for (int i = 0; i < 2000; i++) {
		make_rec(&t, (uint32_t)i, 120, 80, now, 3600, CACHE_PART_GENERAL);
		snprintf(name, sizeof name, "new%d.example.com", i);
		fails += put_name(c, name, 1, &t.rec) != 0;
		if (i % 100 == 99)
			cache_flush_writes(c);
	}
	for (int i = 0; i < READER_THREADS; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT(args[i].errors == 0);
		CU_ASSERT(args[i].hits == 200 * 50);
	}
	CU_ASSERT(fails == 0);
	cache_flush_writes(c);
	struct cache_stats st;
	cache_get_stats(c, &st);
	CU_ASSERT(st.entries[CACHE_PART_GENERAL] == PRELOADED + 2000);
	CU_ASSERT(st.damaged == 0);
	cache_close(c);
	tmp_teardown();
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

int main(void)
{
	/* TEST_CACHE_DEBUG=1 shows the cache's debug lines (evictions, map full). */
	log_set_level(getenv("TEST_CACHE_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("cache", NULL, NULL);
	if (s == NULL)
		return 1;
	CU_add_test(s, "test_cache_put_then_get_returns_forms", test_cache_put_then_get_returns_forms);
	CU_add_test(s, "test_cache_get_expired_beyond_stale_is_miss",
	            test_cache_get_expired_beyond_stale_is_miss);
	CU_add_test(s, "test_cache_get_within_stale_window_is_found",
	            test_cache_get_within_stale_window_is_found);
	CU_add_test(s, "test_cache_ttl_countdown_by_wall_clock", test_cache_ttl_countdown_by_wall_clock);
	CU_add_test(s, "test_cache_negative_entry_roundtrip", test_cache_negative_entry_roundtrip);
	CU_add_test(s, "test_cache_persists_across_close_open", test_cache_persists_across_close_open);
	CU_add_test(s, "test_cache_hit_refreshes_last_hit", test_cache_hit_refreshes_last_hit);
	CU_add_test(s, "test_cache_evicts_when_partition_over_quota",
	            test_cache_evicts_when_partition_over_quota);
	CU_add_test(s, "test_cache_map_full_never_fails_put", test_cache_map_full_never_fails_put);
	CU_add_test(s, "test_cache_corrupt_value_is_miss", test_cache_corrupt_value_is_miss);
	CU_add_test(s, "test_cache_wrong_format_version_is_set_aside",
	            test_cache_wrong_format_version_is_set_aside);
	CU_add_test(s, "test_cache_garbage_file_is_set_aside", test_cache_garbage_file_is_set_aside);
	CU_add_test(s, "test_cache_partition_move_removes_old_copy",
	            test_cache_partition_move_removes_old_copy);
	CU_add_test(s, "test_cache_readers_in_threads", test_cache_readers_in_threads);
	CU_add_test(s, "test_cache_suffix_keys_are_contiguous", test_cache_suffix_keys_are_contiguous);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	int failed = CU_get_number_of_tests_failed() || CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failed;
}
