/* cache.c -- the LMDB answer cache
 *
 * On-disk format, version CACHE_FORMAT_VERSION (bump it whenever anything
 * below changes: an old cache is then set aside at open, never misread).
 *
 * One LMDB environment in the configured directory (data.mdb, lock.mdb) with
 * four named databases:
 *
 *   general, mail, dnsbl   one per enum cache_partition; a key lives in at
 *                          most one of them (a put removes the others' copy)
 *   meta                   "format-version" -> u32 big-endian
 *                          "clean-shutdown" -> one byte, '0' while open, '1'
 *                          after cache_close
 *                          "web.<anything>" -> up to 1 MiB of bytes the web
 *                          module keeps across restarts (its time series);
 *                          opaque here, written through cache_meta_put, and
 *                          lost with the rest when a cache is set aside
 *
 * Key: the qname's labels in reverse order, each with its length byte,
 * lower-cased, without the root label, then qtype and qclass (2 bytes each,
 * big-endian).  www.example.com IN A is
 *
 *   \3com \7example \3www  00 01  00 01
 *
 * Reverse order puts every name under a suffix into one contiguous key range
 * (all keys starting with \3com\7example), so flush-by-suffix and dumps are
 * range scans.  Label lengths are 1..63 and the name is parsed from the
 * front, so no two questions share a key.  Keys are at most 258 bytes.
 *
 * Value: a 52-byte header, then the full form (with DNSSEC records), then the
 * plain form (without).  Integers are host byte order (LMDB files are not
 * portable between byte orders either) at these unaligned offsets, so every
 * field is read and written with memcpy:
 *
 *    0 u8  format version     12 u32 ttl             40 u32 full_len
 *    1 u8  rcode              16 i64 expires         44 u32 plain_len
 *    2 u8  dnssec state       24 i64 stale_until     48 u32 checksum
 *    3 u8  partition          32 i64 last_hit
 *    4 i64 stored_at
 *
 * The checksum covers bytes 0..47 and the two forms: a multiply-xorshift hash
 * over 8-byte words folded to 32 bits (cheaper on the hit path than a
 * byte-wise FNV or a table CRC, and enough to catch torn or flipped pages).
 * A value that is too short, whose lengths do not add up, that has another
 * version or a bad checksum is a miss, is counted in stats.damaged, and is
 * reported to the writer, which deletes it.
 *
 * Threads: cache_put copies into a bounded queue drained by the one writer
 * thread, which commits in batches, enforces the partition quotas by
 * eviction and applies last-hit updates that readers hand it through
 * per-reader lock-free rings.  Readers each keep one read transaction that is
 * renewed and reset around every batch of gets.
 *
 * Flushes (by name, by suffix, by partition) are operations queued to the
 * same writer, which takes them together with the puts queued before them and
 * applies the puts first: so an older queued put can never bring back an
 * entry a flush removed.  The caller waits for its operation, like
 * cache_flush_writes.  Meta writes (cache_meta_put) take the same road, so
 * that the writer stays the only thread with a write transaction.  Walks,
 * cache_lookup and cache_meta_get need no writer: they run in the
 * calling thread in read transactions of their own, and a walk lets go of its
 * snapshot every CACHE_WALK_CHUNK entries so that a slow consumer does not
 * pin old pages that the writer needs back.
 */
#include "cache.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CACHE_FORMAT_VERSION 1u

/* Value header layout; see the opening comment. */
#define CACHE_HDR_LEN 52
#define CACHE_OFF_VERSION 0
#define CACHE_OFF_RCODE 1
#define CACHE_OFF_DNSSEC 2
#define CACHE_OFF_PART 3
#define CACHE_OFF_STORED 4
#define CACHE_OFF_TTL 12
#define CACHE_OFF_EXPIRES 16
#define CACHE_OFF_STALE 24
#define CACHE_OFF_LASTHIT 32
#define CACHE_OFF_FULLLEN 40
#define CACHE_OFF_PLAINLEN 44
#define CACHE_OFF_SUM 48

#define CACHE_MSG_MAX 65535u    /* a DNS message never exceeds this */
#define CACHE_VALUE_MAX (CACHE_HDR_LEN + 2 * CACHE_MSG_MAX)
#define CACHE_KEY_BUF 260       /* 254 bytes of labels + 4, rounded */
#define CACHE_LMDB_KEY_MAX 511  /* LMDB's compiled-in limit */

/* The put queue is bounded so a stalled disk cannot eat the memory. */
#define CACHE_QUEUE_MAX_ITEMS 65536u
#define CACHE_QUEUE_MAX_BYTES (64u << 20)
/* Wake the writer early when this many puts wait, instead of batching. */
#define CACHE_QUEUE_EAGER 4096u
#define CACHE_BATCH_WAIT_MS 2
/* One write transaction takes at most this many puts, so that its dirty
 * pages stay well inside the map's headroom and quotas are checked often. */
#define CACHE_CHUNK_ITEMS 4096u
/* Eviction deletes in transactions of 16 entries growing to 1024, so that a
 * nearly full map can free pages before it needs many new ones. */
#define CACHE_EVICT_TXN_FIRST 16u
#define CACHE_EVICT_TXN_DELETES 1024u

#define CACHE_TICK_MS 250
#define CACHE_READER_CHECK_S 60
#define CACHE_TOUCH_EVERY_S 60

/* A walk renews its snapshot after this many entries. */
#define CACHE_WALK_CHUNK 256u
/* LMDB reader slots beyond max_readers: the writer's, and transient ones
 * for cache_get_stats, cache_walk and cache_lookup from control threads. */
#define CACHE_SPARE_READERS 8u

/* Slots of the table of last-change ids that hot tables check against;
 * a power of two.  A collision only costs a re-read from LMDB. */
#define CACHE_EPOCH_SLOTS 16384u
/* A hot table: copies in a ring of bytes, found through a 4-way set
 * associative index of one cache line per set, with an index slot per
 * CACHE_HOT_AVG bytes of ring.  A copy larger than CACHE_HOT_MAX is never
 * made: it would push out many small ones. */
#define CACHE_HOT_WAYS 4u
#define CACHE_HOT_AVG 256u
#define CACHE_HOT_MAX 4096u

#define CACHE_RING_SIZE 128u    /* power of two */
#define CACHE_SEEN_SIZE 64u
#define CACHE_TOUCH_BATCH 4096u
#define CACHE_HIST_SIZE 1024

static const char *const cache_part_names[CACHE_PART_COUNT] = { "general", "mail", "dnsbl" };
static const unsigned cache_part_share[CACHE_PART_COUNT] = { 50, 30, 20 };

enum cache_touch_kind { CACHE_TOUCH_HIT = 0, CACHE_TOUCH_DAMAGED = 1 };

/* A message from a reader to the writer: refresh last_hit, or delete a
 * damaged value. */
struct cache_touch {
	uint16_t key_len;
	uint8_t part;
	uint8_t kind;
	uint8_t key[CACHE_KEY_BUF];
};

/* A copy in the ring: this header, the key, the value, padded to 8 bytes. */
struct cache_hot_entry {
	uint64_t fill_id;       /* the LMDB snapshot (txn id) it was copied from */
	uint32_t val_len;
	uint16_t key_len;
	uint8_t part;
	uint8_t pad;
	uint8_t data[];
};

/* An index way: where in the ring a copy of the key with this hash starts.
 * Positions count every byte ever written, so a copy is intact while the
 * ring's head is at most one ring size past it. */
struct cache_hot_way {
	uint32_t hash;          /* 0 = empty (real hashes are forced odd) */
	uint64_t pos;
};

struct cache_hot_set {
	struct cache_hot_way way[CACHE_HOT_WAYS];
};

struct cache_reader {
	struct cache *c;
	MDB_txn *txn;
	int active;
	/* The hot table (cache_reader_hot): none when hot_sets is 0. */
	unsigned hot_sets;              /* a power of two */
	struct cache_hot_set *hot_index;
	uint8_t *hot_ring;
	size_t hot_size;                /* bytes in hot_ring */
	uint64_t hot_head;              /* ring position of the next copy */
	uint64_t snapshot_id;           /* mdb_txn_id of the current batch */
	_Atomic uint64_t hot_hits;
	struct cache_reader *next;      /* registry, under c->reg_lock */
	/* Recently reported keys (hash, time), so that a hot key read many
	 * times before the writer catches up fills one ring slot, not all. */
	uint32_t seen_hash[CACHE_SEEN_SIZE];
	int64_t seen_at[CACHE_SEEN_SIZE];
	/* Single-producer (this reader) single-consumer (the writer) ring;
	 * the padding keeps the two indexes on separate cache lines. */
	char pad0[64];
	_Atomic uint32_t head;
	char pad1[64];
	_Atomic uint32_t tail;
	char pad2[64];
	struct cache_touch ring[CACHE_RING_SIZE];
};

enum cache_op_kind {
	CACHE_OP_FLUSH_NAME,
	CACHE_OP_FLUSH_SUFFIX,
	CACHE_OP_FLUSH_PART,
	CACHE_OP_META_PUT
};

/* A flush or meta write handed to the writer.  It lives on the caller's
 * stack: the caller waits (under q_lock) until the writer sets done, and the
 * writer does not touch it after that.  That wait is also why a meta write
 * can point at the caller's key and value instead of copying them. */
struct cache_op {
	struct cache_op *next;
	enum cache_op_kind kind;
	unsigned part;                  /* CACHE_OP_FLUSH_PART */
	int qtype;                      /* CACHE_OP_FLUSH_NAME: -1 = every type */
	size_t name_len;                /* the name's labels in key form */
	uint8_t name[CACHE_KEY_BUF];
	const char *meta_key;           /* CACHE_OP_META_PUT */
	size_t meta_key_len;
	const void *meta_val;
	size_t meta_val_len;
	int result;
	int done;
};

struct cache_item {
	struct cache_item *next;
	uint32_t key_len;
	uint32_t val_len;
	uint8_t part;
	uint8_t data[];         /* key, then value */
};

/* The writer's view of one partition's quota.  LMDB pages do not shrink when
 * scattered entries are deleted (pages merge only below a quarter full), so
 * the quota is enforced on the logical bytes that fitted in the quota when it
 * was first reached: "target".  Eviction runs when the pages are over quota
 * and the logical bytes have grown past the target again. */
struct cache_part_state {
	_Atomic uint64_t quota;     /* written by the writer only; read by stats */
	_Atomic uint64_t requested; /* cache_set_quotas: applied by the writer */
	_Atomic uint64_t limit; /* lower cap learnt from MAP_FULL; 0 = none */
	uint64_t target;
	uint64_t logical_est;
	int have_target;
	int have_estimate;
};

struct cache {
	MDB_env *env;
	MDB_dbi dbi[CACHE_PART_COUNT];
	MDB_dbi meta;
	char *dir;
	uint64_t max_bytes;
	uint64_t map_size;
	unsigned max_readers;
	unsigned sync_interval_ms;
	size_t psize;
	size_t chunk_bytes;

	/* The put queue and the flush handshake. */
	pthread_mutex_t q_lock;
	pthread_cond_t q_cond;          /* writer waits here (CLOCK_MONOTONIC) */
	pthread_cond_t done_cond;       /* flushers wait here */
	struct cache_item *q_head;
	struct cache_item **q_tail;
	size_t q_items;
	size_t q_bytes;
	uint64_t flush_req;
	uint64_t flush_done;
	struct cache_op *op_head;       /* flushes waiting for the writer */
	struct cache_op **op_tail;
	int stop;
	pthread_t writer;
	int writer_started;
	int locks_ready;

	/* Readers, so that the writer can drain their rings. */
	pthread_mutex_t reg_lock;
	struct cache_reader *readers;
	unsigned n_readers;

	/* Owned by the writer thread (and by open/close before and after it). */
	struct cache_part_state part[CACHE_PART_COUNT];
	MDB_txn *wro;                   /* the writer's reset read txn, for stats */
	struct cache_touch *touches;
	uint8_t *scratch;
	uint64_t hist[CACHE_HIST_SIZE]; /* eviction's age histogram */
	int dirty;
	struct timespec last_sync;
	struct timespec last_reader_check;
	int last_err_logged;

	_Atomic uint64_t puts, put_drops, evictions, commits, damaged, write_errors;
	uint64_t set_aside;

	/* For the readers' hot tables: per key hash, the id of the last write
	 * transaction that changed or deleted such a key; epoch_all, of the
	 * last one that dropped keys wholesale.  Set by the writer before its
	 * commit: a copy taken from an older snapshot is then never used
	 * again, and one taken from the commit's snapshot or later stays good.
	 * The commit's write of the meta page is a system call, so a reader
	 * whose snapshot includes the commit also sees the id stored here. */
	_Atomic uint64_t *epoch;
	_Atomic uint64_t epoch_all;
	uint64_t hot_hits_gone;         /* of freed readers; under reg_lock */
};

/* ---- small helpers ---- */

static struct timespec cache_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

static int64_t cache_ms_since(struct timespec since)
{
	struct timespec now = cache_mono();
	return (int64_t)(now.tv_sec - since.tv_sec) * 1000 + (now.tv_nsec - since.tv_nsec) / 1000000;
}

static struct timespec cache_deadline(unsigned ms)
{
	struct timespec ts = cache_mono();
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

#define CACHE_HASH_K 0x9e3779b97f4a7c15ull

static uint64_t cache_hash_words(uint64_t h, const uint8_t *p, size_t n)
{
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * CACHE_HASH_K;
		h ^= h >> 29;
		p += 8;
		n -= 8;
	}
	if (n) {
		uint64_t w = 0;
		memcpy(&w, p, n);
		h = (h ^ w ^ ((uint64_t)n << 56)) * CACHE_HASH_K;
		h ^= h >> 29;
	}
	return h;
}

static uint32_t cache_hash_fold(uint64_t h)
{
	h ^= h >> 32;
	h *= CACHE_HASH_K;
	h ^= h >> 32;
	return (uint32_t)h;
}

/* The hash of a key, shared by the hot tables and the epoch table. */
static uint32_t cache_key_hash(const uint8_t *key, size_t len)
{
	return cache_hash_fold(cache_hash_words(0x6d78, key, len)) | 1u;
}

/* Writer thread: key is about to change or go in write transaction txn. */
static void cache_epoch_key(struct cache *c, MDB_txn *txn, const void *key, size_t len)
{
	uint32_t h = cache_key_hash(key, len);
	atomic_store_explicit(&c->epoch[(h >> 7) & (CACHE_EPOCH_SLOTS - 1)], (uint64_t)mdb_txn_id(txn),
	                      memory_order_release);
}

/* Writer thread: keys are about to go that nobody looks at one by one. */
static void cache_epoch_all(struct cache *c, MDB_txn *txn)
{
	atomic_store_explicit(&c->epoch_all, (uint64_t)mdb_txn_id(txn), memory_order_release);
}

/* The checksum of a whole value: header bytes before the checksum field,
 * then the forms.  The length is mixed in so truncation changes it. */
static uint32_t cache_checksum(const uint8_t *v, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)len;
	h = cache_hash_words(h, v, CACHE_OFF_SUM);
	h = cache_hash_words(h, v + CACHE_HDR_LEN, len - CACHE_HDR_LEN);
	return cache_hash_fold(h);
}

/* Lower-case ASCII letters in place, eight bytes at a time: every name
 * byte of every query passes here.  Label length bytes (1..63) are below
 * 'A', so a whole key's name part can go through as it is. */
static void cache_lower(uint8_t *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		uint64_t low7 = w & ~highs;
		/* Per byte, the high bit of low7 + c is set when the byte is >= 128 - c. */
		uint64_t at_least_a = low7 + (0x80 - 'A') * ones;
		uint64_t above_z = low7 + (0x7f - 'Z') * ones;
		uint64_t upper = (at_least_a ^ above_z) & ~w & highs;
		w |= upper >> 2;    /* 0x80 >> 2 is the 0x20 that lower-cases */
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] = (uint8_t)(p[i] + 32);
}

/* Build the name part of a key (the reversed, length-prefixed, lower-cased
 * labels) into key (CACHE_KEY_BUF bytes).  qname must be uncompressed wire
 * form ending in the root label.  Every key of a name at or under qname
 * starts with these bytes, and only those do: the length bytes make the
 * match whole-label (\7example is not a prefix of \12badexample).  Returns
 * the length (0 for the root), or -1 if the name is malformed. */
static int cache_name_key(uint8_t *key, const uint8_t *qname, size_t qname_len)
{
	uint8_t starts[128];
	size_t n = 0, i = 0;

	if (qname == NULL || qname_len == 0 || qname_len > 255)
		return -1;
	for (;;) {
		if (i >= qname_len)
			return -1;
		uint8_t l = qname[i];
		if (l == 0)
			break;
		if (l > 63 || i + 1 + l >= qname_len || n == sizeof starts)
			return -1;
		starts[n++] = (uint8_t)i;
		i += 1u + l;
	}
	if (i + 1 != qname_len)
		return -1;

	size_t k = 0;
	while (n > 0) {
		const uint8_t *lab = qname + starts[--n];
		memcpy(key + k, lab, 1u + lab[0]);
		k += 1u + lab[0];
	}
	cache_lower(key, k);
	return (int)k;
}

/* Build the key for a question into key (CACHE_KEY_BUF bytes).  Returns the
 * key length, or -1 if the name is malformed. */
static int cache_key(uint8_t *key, const uint8_t *qname, size_t qname_len, uint16_t qtype,
                     uint16_t qclass)
{
	int n = cache_name_key(key, qname, qname_len);
	if (n < 0)
		return -1;
	size_t k = (size_t)n;
	key[k++] = (uint8_t)(qtype >> 8);
	key[k++] = (uint8_t)qtype;
	key[k++] = (uint8_t)(qclass >> 8);
	key[k++] = (uint8_t)qclass;
	if (k > CACHE_LMDB_KEY_MAX || k > CACHE_KEY_BUF)
		return -1;
	return (int)k;
}

/* The inverse of cache_key: the wire-form name (at most 255 bytes into
 * qname), qtype and qclass of a key.  The labels are parsed from the front
 * until exactly four bytes remain, as cache_key laid them out.  Returns the
 * name's length, or -1 if the key is not one cache_key can make. */
static int cache_key_decode(const uint8_t *key, size_t klen, uint8_t *qname, uint16_t *qtype,
                            uint16_t *qclass)
{
	uint8_t starts[128];
	size_t n = 0, i = 0;

	if (klen < 4 || klen > 254 + 4)
		return -1;
	while (klen - i > 4) {
		uint8_t l = key[i];
		if (l == 0 || l > 63 || i + 1 + l > klen - 4 || n == sizeof starts)
			return -1;
		starts[n++] = (uint8_t)i;
		i += 1u + l;
	}
	size_t q = 0;
	while (n > 0) {
		const uint8_t *lab = key + starts[--n];
		memcpy(qname + q, lab, 1u + lab[0]);
		q += 1u + lab[0];
	}
	qname[q++] = 0;
	*qtype = (uint16_t)(key[i] << 8 | key[i + 1]);
	*qclass = (uint16_t)(key[i + 2] << 8 | key[i + 3]);
	return (int)q;
}

/* Whether key k lies in the range of keys that start with prefix. */
static int cache_key_has_prefix(const MDB_val *k, const uint8_t *prefix, size_t plen)
{
	return k->mv_size >= plen && (plen == 0 || memcmp(k->mv_data, prefix, plen) == 0);
}

/* Decode and validate a value.  With check, the checksum is verified too
 * (the hit path and anything that rewrites a value); eviction scans only
 * need the header to be sane.  Pointers in out point into v. */
static int cache_value_decode(const uint8_t *v, size_t len, struct cache_record *out, int check)
{
	uint32_t full_len, plain_len;

	if (len < CACHE_HDR_LEN || v[CACHE_OFF_VERSION] != CACHE_FORMAT_VERSION)
		return -1;
	memcpy(&full_len, v + CACHE_OFF_FULLLEN, 4);
	memcpy(&plain_len, v + CACHE_OFF_PLAINLEN, 4);
	if (full_len > CACHE_MSG_MAX || plain_len > CACHE_MSG_MAX ||
	    (size_t)CACHE_HDR_LEN + full_len + plain_len != len)
		return -1;
	if (check) {
		uint32_t sum;
		memcpy(&sum, v + CACHE_OFF_SUM, 4);
		if (sum != cache_checksum(v, len))
			return -1;
	}
	out->rcode = v[CACHE_OFF_RCODE];
	out->dnssec = v[CACHE_OFF_DNSSEC];
	out->partition = v[CACHE_OFF_PART];
	memcpy(&out->stored_at, v + CACHE_OFF_STORED, 8);
	memcpy(&out->ttl, v + CACHE_OFF_TTL, 4);
	memcpy(&out->expires, v + CACHE_OFF_EXPIRES, 8);
	memcpy(&out->stale_until, v + CACHE_OFF_STALE, 8);
	memcpy(&out->last_hit, v + CACHE_OFF_LASTHIT, 8);
	out->full = v + CACHE_HDR_LEN;
	out->full_len = full_len;
	out->plain = v + CACHE_HDR_LEN + full_len;
	out->plain_len = plain_len;
	return 0;
}

static void cache_value_encode(uint8_t *v, const struct cache_record *rec)
{
	int64_t stale = rec->stale_until < rec->expires ? rec->expires : rec->stale_until;
	int64_t last_hit = rec->last_hit ? rec->last_hit : rec->stored_at;
	size_t len = CACHE_HDR_LEN + (size_t)rec->full_len + rec->plain_len;
	uint32_t sum;

	v[CACHE_OFF_VERSION] = CACHE_FORMAT_VERSION;
	v[CACHE_OFF_RCODE] = rec->rcode;
	v[CACHE_OFF_DNSSEC] = rec->dnssec;
	v[CACHE_OFF_PART] = rec->partition;
	memcpy(v + CACHE_OFF_STORED, &rec->stored_at, 8);
	memcpy(v + CACHE_OFF_TTL, &rec->ttl, 4);
	memcpy(v + CACHE_OFF_EXPIRES, &rec->expires, 8);
	memcpy(v + CACHE_OFF_STALE, &stale, 8);
	memcpy(v + CACHE_OFF_LASTHIT, &last_hit, 8);
	memcpy(v + CACHE_OFF_FULLLEN, &rec->full_len, 4);
	memcpy(v + CACHE_OFF_PLAINLEN, &rec->plain_len, 4);
	if (rec->full_len)
		memcpy(v + CACHE_HDR_LEN, rec->full, rec->full_len);
	if (rec->plain_len)
		memcpy(v + CACHE_HDR_LEN + rec->full_len, rec->plain, rec->plain_len);
	sum = cache_checksum(v, len);
	memcpy(v + CACHE_OFF_SUM, &sum, 4);
}

/* Errors that mean the files are not a cache we can trust: set them aside. */
static int cache_rc_is_damage(int rc)
{
	return rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH ||
	       rc == MDB_PAGE_NOTFOUND || rc == MDB_INCOMPATIBLE || rc == MDB_BAD_VALSIZE;
}

/* Count a write error and log it, once per distinct error in a row, so that
 * a full disk does not flood the log. */
static void cache_write_error(struct cache *c, const char *what, int rc)
{
	atomic_fetch_add_explicit(&c->write_errors, 1, memory_order_relaxed);
	if (c->last_err_logged != rc) {
		log_err("cache: %s failed: %s", what, mdb_strerror(rc));
		c->last_err_logged = rc;
	}
}

/* ---- the reader side ---- */

static int cache_ring_push(struct cache_reader *r, const uint8_t *key, size_t key_len,
                           unsigned part, unsigned kind)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (h - t >= CACHE_RING_SIZE)
		return -1;
	struct cache_touch *slot = &r->ring[h & (CACHE_RING_SIZE - 1)];
	slot->key_len = (uint16_t)key_len;
	slot->part = (uint8_t)part;
	slot->kind = (uint8_t)kind;
	memcpy(slot->key, key, key_len);
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return 0;
}

static int cache_ring_pop(struct cache_reader *r, struct cache_touch *out)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);
	if (t == h)
		return -1;
	const struct cache_touch *slot = &r->ring[t & (CACHE_RING_SIZE - 1)];
	out->key_len = slot->key_len;
	out->part = slot->part;
	out->kind = slot->kind;
	memcpy(out->key, slot->key, slot->key_len);
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	return 0;
}

struct cache_reader *cache_reader_new(struct cache *c)
{
	struct cache_reader *r = NULL;
	int rc;

	/* Reserve a slot first: LMDB's table has CACHE_SPARE_READERS more
	 * slots than max_readers, kept for the writer and the control calls. */
	pthread_mutex_lock(&c->reg_lock);
	if (c->n_readers >= c->max_readers) {
		pthread_mutex_unlock(&c->reg_lock);
		return NULL;
	}
	c->n_readers++;
	pthread_mutex_unlock(&c->reg_lock);

	r = calloc(1, sizeof *r);
	if (r == NULL)
		goto fail;
	rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &r->txn);
	if (rc != 0) {
		log_warn("cache: no read transaction: %s", mdb_strerror(rc));
		goto fail;
	}
	/* Keep the reader slot but release the snapshot until the first begin. */
	mdb_txn_reset(r->txn);
	r->c = c;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);

	pthread_mutex_lock(&c->reg_lock);
	r->next = c->readers;
	c->readers = r;
	pthread_mutex_unlock(&c->reg_lock);
	return r;

fail:
	free(r);
	pthread_mutex_lock(&c->reg_lock);
	c->n_readers--;
	pthread_mutex_unlock(&c->reg_lock);
	return NULL;
}

void cache_reader_free(struct cache_reader *r)
{
	if (r == NULL)
		return;
	struct cache *c = r->c;
	pthread_mutex_lock(&c->reg_lock);
	for (struct cache_reader **pp = &c->readers; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	c->n_readers--;
	c->hot_hits_gone += atomic_load_explicit(&r->hot_hits, memory_order_relaxed);
	pthread_mutex_unlock(&c->reg_lock);
	mdb_txn_abort(r->txn);
	free(r->hot_index);
	free(r->hot_ring);
	free(r);
}

int cache_reader_hot(struct cache_reader *r, size_t bytes)
{
	free(r->hot_index);
	free(r->hot_ring);
	r->hot_index = NULL;
	r->hot_ring = NULL;
	r->hot_sets = 0;
	r->hot_size = 0;
	r->hot_head = 0;
	if (bytes == 0)
		return 0;
	if (bytes < 4 * CACHE_HOT_MAX)
		bytes = 4 * CACHE_HOT_MAX;
	unsigned sets = 1;
	while (sets < 1u << 24 && (size_t)sets * CACHE_HOT_WAYS * CACHE_HOT_AVG < bytes)
		sets <<= 1;
	/* calloc: the ring costs memory only as it fills. */
	r->hot_index = calloc(sets, sizeof *r->hot_index);
	r->hot_ring = calloc(1, bytes);
	if (r->hot_index == NULL || r->hot_ring == NULL) {
		free(r->hot_index);
		free(r->hot_ring);
		r->hot_index = NULL;
		r->hot_ring = NULL;
		return -1;
	}
	r->hot_sets = sets;
	r->hot_size = bytes;
	return 0;
}

int cache_reader_begin(struct cache_reader *r)
{
	if (r->active)
		return 0;
	if (mdb_txn_renew(r->txn) != 0)
		return -1;
	r->active = 1;
	r->snapshot_id = (uint64_t)mdb_txn_id(r->txn);
	return 0;
}

void cache_reader_end(struct cache_reader *r)
{
	if (!r->active)
		return;
	mdb_txn_reset(r->txn);
	r->active = 0;
}

/* Tell the writer a key was hit, unless this reader told it recently. */
static void cache_note_hit(struct cache_reader *r, const uint8_t *key, size_t key_len,
                           unsigned part, int64_t now)
{
	uint32_t h = cache_hash_fold(cache_hash_words(part, key, key_len));
	unsigned i = h & (CACHE_SEEN_SIZE - 1);
	if (r->seen_hash[i] == h && now - r->seen_at[i] < CACHE_TOUCH_EVERY_S)
		return;
	if (cache_ring_push(r, key, key_len, part, CACHE_TOUCH_HIT) == 0) {
		r->seen_hash[i] = h;
		r->seen_at[i] = now;
	}
}

/* Whether the copy a way points at has not been written over since.  A
 * copy's header goes before its tail, so the key compare alone would
 * nearly always notice; but the bytes of a newer answer, which whoever
 * serves that zone chooses, could imitate a header and a key.  The
 * positions decide. */
static int cache_hot_intact(const struct cache_reader *r, const struct cache_hot_way *w)
{
	return w->hash != 0 && r->hot_head - w->pos <= r->hot_size;
}

/* The copy of key (hash h), if the ring still holds it and it is still
 * what LMDB has: no write since the snapshot it came from touched a key of
 * this hash. */
static struct cache_hot_entry *cache_hot_find(struct cache_reader *r, uint32_t h, const uint8_t *key,
                                              size_t klen)
{
	struct cache_hot_set *set = &r->hot_index[(h >> 1) & (r->hot_sets - 1)];  /* bit 0 is always 1 */
	for (unsigned i = 0; i < CACHE_HOT_WAYS; i++) {
		struct cache_hot_way *w = &set->way[i];
		if (w->hash != h || !cache_hot_intact(r, w))
			continue;
		struct cache_hot_entry *e = (struct cache_hot_entry *)(r->hot_ring + w->pos % r->hot_size);
		if (e->key_len != klen || memcmp(e->data, key, klen) != 0)
			continue;
		uint64_t changed = atomic_load_explicit(&r->c->epoch[(h >> 7) & (CACHE_EPOCH_SLOTS - 1)],
		                                        memory_order_acquire);
		uint64_t dropped = atomic_load_explicit(&r->c->epoch_all, memory_order_acquire);
		if (changed > e->fill_id || dropped > e->fill_id) {
			w->hash = 0;
			return NULL;
		}
		return e;
	}
	return NULL;
}

/* Keep a copy of a value just read and verified: at the ring's head, in
 * the index way of the same key, or else an empty or overwritten way, or
 * else the oldest copy's. */
static void cache_hot_fill(struct cache_reader *r, uint32_t h, const uint8_t *key, size_t klen,
                           const MDB_val *v, unsigned part)
{
	size_t need = (sizeof(struct cache_hot_entry) + klen + v->mv_size + 7) & ~(size_t)7;
	if (need > CACHE_HOT_MAX)
		return;
	struct cache_hot_set *set = &r->hot_index[(h >> 1) & (r->hot_sets - 1)];
	unsigned victim = 0;
	for (unsigned i = 0; i < CACHE_HOT_WAYS; i++) {
		const struct cache_hot_way *w = &set->way[i];
		if (w->hash == h || !cache_hot_intact(r, w)) {
			victim = i;
			break;
		}
		if (w->pos < set->way[victim].pos)
			victim = i;
	}
	/* A copy never wraps around the ring's end: skip to its start. */
	uint64_t pos = r->hot_head;
	size_t off = pos % r->hot_size;
	if (off + need > r->hot_size)
		pos += r->hot_size - off;
	struct cache_hot_entry *e = (struct cache_hot_entry *)(r->hot_ring + pos % r->hot_size);
	e->fill_id = r->snapshot_id;
	e->val_len = (uint32_t)v->mv_size;
	e->key_len = (uint16_t)klen;
	e->part = (uint8_t)part;
	memcpy(e->data, key, klen);
	memcpy(e->data + klen, v->mv_data, v->mv_size);
	r->hot_head = pos + need;
	set->way[victim] = (struct cache_hot_way){ .hash = h, .pos = pos };
}

int cache_get(struct cache_reader *r, const uint8_t *qname, size_t qname_len, uint16_t qtype,
              uint16_t qclass, enum cache_partition hint, int64_t now, struct cache_record *out)
{
	uint8_t key[CACHE_KEY_BUF];
	struct cache *c = r->c;

	if (!r->active)
		return -1;
	int klen = cache_key(key, qname, qname_len, qtype, qclass);
	if (klen < 0)
		return -1;
	uint32_t h = r->hot_sets ? cache_key_hash(key, (size_t)klen) : 0;
	if (r->hot_sets) {
		struct cache_hot_entry *e = cache_hot_find(r, h, key, (size_t)klen);
		/* Verified when copied: no checksum again. */
		if (e != NULL && cache_value_decode(e->data + klen, e->val_len, out, 0) == 0) {
			if (now >= out->stale_until)
				return -1;
			atomic_store_explicit(&r->hot_hits, atomic_load_explicit(&r->hot_hits, memory_order_relaxed) + 1,
			                      memory_order_relaxed);
			out->partition = e->part;
			if (now - out->last_hit >= CACHE_TOUCH_EVERY_S) {
				cache_note_hit(r, key, (size_t)klen, e->part, now);
				/* The copy's own clock, so the next hit does not ask again. */
				memcpy(e->data + klen + CACHE_OFF_LASTHIT, &now, 8);
			}
			return 0;
		}
	}
	unsigned first = (unsigned)hint < CACHE_PART_COUNT ? (unsigned)hint : CACHE_PART_GENERAL;

	for (unsigned n = 0; n < CACHE_PART_COUNT; n++) {
		unsigned p = n == 0 ? first : (n <= first ? n - 1 : n);
		MDB_val k = { .mv_size = (size_t)klen, .mv_data = key };
		MDB_val v;
		int rc = mdb_get(r->txn, c->dbi[p], &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0 || cache_value_decode(v.mv_data, v.mv_size, out, 1) != 0) {
			/* Never served; the writer re-checks and deletes it. */
			atomic_fetch_add_explicit(&c->damaged, 1, memory_order_relaxed);
			if (rc == 0)
				cache_ring_push(r, key, (size_t)klen, p, CACHE_TOUCH_DAMAGED);
			continue;
		}
		if (now >= out->stale_until)
			return -1;
		out->partition = (uint8_t)p;
		if (now - out->last_hit >= CACHE_TOUCH_EVERY_S)
			cache_note_hit(r, key, (size_t)klen, p, now);
		if (r->hot_sets)
			cache_hot_fill(r, h, key, (size_t)klen, &v, p);
		return 0;
	}
	return -1;
}

/* ---- the put queue ---- */

int cache_put(struct cache *c, const uint8_t *qname, size_t qname_len, uint16_t qtype,
              uint16_t qclass, const struct cache_record *rec)
{
	uint8_t key[CACHE_KEY_BUF];
	int klen = cache_key(key, qname, qname_len, qtype, qclass);

	if (klen < 0 || rec->partition >= CACHE_PART_COUNT || rec->full_len > CACHE_MSG_MAX ||
	    rec->plain_len > CACHE_MSG_MAX || (rec->full_len && !rec->full) ||
	    (rec->plain_len && !rec->plain))
		goto drop;

	size_t val_len = CACHE_HDR_LEN + (size_t)rec->full_len + rec->plain_len;
	size_t size = sizeof(struct cache_item) + (size_t)klen + val_len;
	struct cache_item *it = malloc(size);
	if (it == NULL)
		goto drop;
	it->next = NULL;
	it->key_len = (uint32_t)klen;
	it->val_len = (uint32_t)val_len;
	it->part = rec->partition;
	memcpy(it->data, key, (size_t)klen);
	cache_value_encode(it->data + klen, rec);

	pthread_mutex_lock(&c->q_lock);
	if (c->stop || c->q_items >= CACHE_QUEUE_MAX_ITEMS || c->q_bytes + size > CACHE_QUEUE_MAX_BYTES) {
		pthread_mutex_unlock(&c->q_lock);
		free(it);
		goto drop;
	}
	*c->q_tail = it;
	c->q_tail = &it->next;
	c->q_items++;
	c->q_bytes += size;
	/* The writer batches for a moment after the first put; a long queue
	 * wakes it at once. */
	if (c->q_items == 1 || c->q_items == CACHE_QUEUE_EAGER)
		pthread_cond_signal(&c->q_cond);
	pthread_mutex_unlock(&c->q_lock);
	atomic_fetch_add_explicit(&c->puts, 1, memory_order_relaxed);
	return 0;

drop:
	atomic_fetch_add_explicit(&c->put_drops, 1, memory_order_relaxed);
	return -1;
}

void cache_flush_writes(struct cache *c)
{
	pthread_mutex_lock(&c->q_lock);
	uint64_t mine = ++c->flush_req;
	pthread_cond_signal(&c->q_cond);
	while (c->flush_done < mine)
		pthread_cond_wait(&c->done_cond, &c->q_lock);
	pthread_mutex_unlock(&c->q_lock);
}

/* ---- eviction (writer thread) ---- */

/* Histogram buckets by age since last hit: exact below 16 s, then 16 steps
 * per power of two (about 6% wide), so 1024 buckets cover any age. */
static int cache_age_bucket(int64_t age)
{
	if (age < 16)
		return age < 0 ? 0 : (int)age;
	int b = 63 - __builtin_clzll((unsigned long long)age);
	int idx = 16 + (b - 4) * 16 + (int)((age >> (b - 4)) & 15);
	return idx < CACHE_HIST_SIZE ? idx : CACHE_HIST_SIZE - 1;
}

static size_t cache_entry_size(const MDB_val *k, const MDB_val *v)
{
	return k->mv_size + v->mv_size + 16;   /* node header and page index */
}

/* Delete from partition p: every entry past stale_until and every damaged
 * one, then the least recently hit until about need bytes (logical) are
 * gone.  Two passes: a read-only scan builds a histogram of ages, so memory
 * stays constant whatever the partition's size; then deletions run in small
 * transactions.  Returns the logical bytes left, or -1 on error. */
static int64_t cache_evict(struct cache *c, unsigned p, int64_t now,
                           uint64_t (*need_fn)(struct cache *, unsigned, uint64_t))
{
	uint64_t *hist = c->hist;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct cache_record rec;
	uint64_t total = 0, doomed = 0, freed = 0, deleted = 0;
	int rc;

	memset(c->hist, 0, sizeof c->hist);
	rc = mdb_txn_renew(c->wro);
	if (rc != 0)
		goto fail_rc;
	rc = mdb_cursor_open(c->wro, c->dbi[p], &cur);
	if (rc != 0)
		goto fail_rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		size_t sz = cache_entry_size(&k, &v);
		total += sz;
		if (cache_value_decode(v.mv_data, v.mv_size, &rec, 0) != 0 || rec.stale_until <= now)
			doomed += sz;
		else
			hist[cache_age_bucket(now - rec.last_hit)] += sz;
	}
	mdb_cursor_close(cur);
	cur = NULL;
	mdb_txn_reset(c->wro);
	if (rc != MDB_NOTFOUND)
		goto fail_rc;

	uint64_t need = need_fn(c, p, total);
	/* Everything in buckets above thr goes; in bucket thr only thr_budget
	 * bytes' worth, so a burst of entries of the same age is not wiped out
	 * whole. */
	int thr = CACHE_HIST_SIZE;
	uint64_t thr_budget = 0;
	if (need > doomed) {
		uint64_t acc = doomed;
		for (thr = CACHE_HIST_SIZE - 1; thr >= 0; thr--) {
			if (acc + hist[thr] >= need) {
				thr_budget = need - acc;
				break;
			}
			acc += hist[thr];
		}
		if (thr < 0) {
			thr = 0;
			thr_budget = UINT64_MAX;
		}
	}
	if (doomed == 0 && thr == CACHE_HIST_SIZE)
		return (int64_t)total;

	/* Deleting copies every touched page first, and pages freed by a
	 * transaction are reusable only by later ones: so deletions run in
	 * transactions that start small and grow while they succeed, and on
	 * MAP_FULL shrink and retry from the last committed key. */
	uint8_t resume[CACHE_KEY_BUF], done_key[CACHE_KEY_BUF];
	size_t resume_len = 0, done_len = 0;
	int more = 1, started = 0;
	unsigned batch = CACHE_EVICT_TXN_FIRST;
	while (more) {
		uint64_t freed0 = freed, deleted0 = deleted, budget0 = thr_budget;
		more = 0;
		rc = mdb_txn_begin(c->env, NULL, 0, &txn);
		if (rc != 0)
			goto fail_rc;
		rc = mdb_cursor_open(txn, c->dbi[p], &cur);
		if (rc != 0)
			goto fail_rc;
		if (started) {
			k.mv_size = done_len;
			k.mv_data = done_key;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		} else {
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		}
		unsigned in_txn = 0;
		while (rc == 0) {
			int del;
			if (cache_value_decode(v.mv_data, v.mv_size, &rec, 0) != 0 || rec.stale_until <= now) {
				del = 1;
			} else {
				int b = cache_age_bucket(now - rec.last_hit);
				del = b > thr || (b == thr && thr_budget > 0);
				if (b == thr && del) {
					size_t sz = cache_entry_size(&k, &v);
					thr_budget = thr_budget > sz ? thr_budget - sz : 0;
				}
			}
			if (del) {
				size_t sz = cache_entry_size(&k, &v);
				if (k.mv_size > sizeof resume) {
					rc = MDB_BAD_VALSIZE;
					break;
				}
				memcpy(resume, k.mv_data, k.mv_size);
				resume_len = k.mv_size;
				cache_epoch_key(c, txn, k.mv_data, k.mv_size);
				rc = mdb_cursor_del(cur, 0);
				if (rc != 0)
					break;
				freed += sz;
				deleted++;
				if (++in_txn >= batch) {
					more = 1;
					break;
				}
			}
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(cur);
		cur = NULL;
		if (rc == MDB_NOTFOUND)
			rc = 0;
		if (rc == 0) {
			rc = mdb_txn_commit(txn);
		} else {
			mdb_txn_abort(txn);
		}
		txn = NULL;
		if (rc == MDB_MAP_FULL && batch > 1) {
			freed = freed0;
			deleted = deleted0;
			thr_budget = budget0;
			batch /= 2;
			more = 1;
			continue;
		}
		if (rc != 0)
			goto fail_rc;
		atomic_fetch_add_explicit(&c->commits, 1, memory_order_relaxed);
		c->dirty = 1;
		started = 1;
		memcpy(done_key, resume, resume_len);
		done_len = resume_len;
		if (batch < CACHE_EVICT_TXN_DELETES)
			batch *= 2;
	}
	atomic_fetch_add_explicit(&c->evictions, deleted, memory_order_relaxed);
	log_debug("cache: evicted %llu entries (%llu bytes) from %s", (unsigned long long)deleted,
	          (unsigned long long)freed, cache_part_names[p]);
	return (int64_t)(total - freed);

fail_rc:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		mdb_txn_abort(txn);
	mdb_txn_reset(c->wro);
	/* Count what was committed before the failure. */
	atomic_fetch_add_explicit(&c->evictions, deleted, memory_order_relaxed);
	cache_write_error(c, "eviction", rc);
	return -1;
}

/* Quota pressure: the first time, remember the logical bytes that fitted
 * (scaled to 90% of the quota); later, bring the content back to 95% of that.
 * If pages keep growing well past the quota anyway (fill dropping), lower
 * the target. */
static uint64_t cache_part_cap(struct cache_part_state *ps)
{
	uint64_t lim = atomic_load_explicit(&ps->limit, memory_order_relaxed);
	return lim && lim < ps->quota ? lim : ps->quota;
}

static uint64_t cache_need_quota(struct cache *c, unsigned p, uint64_t total)
{
	struct cache_part_state *ps = &c->part[p];
	uint64_t cap = cache_part_cap(ps);
	MDB_stat st;
	uint64_t used = cap;

	if (mdb_txn_renew(c->wro) == 0) {
		if (mdb_stat(c->wro, c->dbi[p], &st) == 0)
			used = (uint64_t)(st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) *
			       st.ms_psize;
		mdb_txn_reset(c->wro);
	}
	if (used == 0)
		used = 1;
	if (!ps->have_target) {
		ps->target = (uint64_t)((double)total * 0.9 * (double)cap / (double)used);
		ps->have_target = 1;
	} else if (used > cap + cap / 4) {
		ps->target -= ps->target / 10;
	}
	uint64_t goal = ps->target - ps->target / 20;
	return total > goal ? total - goal : 0;
}

static void cache_evict_part(struct cache *c, unsigned p, uint64_t (*need_fn)(struct cache *, unsigned,
                             uint64_t))
{
	int64_t left = cache_evict(c, p, (int64_t)time(NULL), need_fn);
	if (left >= 0) {
		c->part[p].logical_est = (uint64_t)left;
		c->part[p].have_estimate = 1;
	} else {
		c->part[p].have_estimate = 0;
	}
}

/* Check every partition's pages against its quota; cheap (mdb_stat reads
 * the DB record), so it runs before every write transaction. */
static void cache_part_used(struct cache *c, uint64_t *used)
{
	MDB_stat st;

	memset(used, 0, CACHE_PART_COUNT * sizeof *used);
	if (mdb_txn_renew(c->wro) != 0)
		return;
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++) {
		if (mdb_stat(c->wro, c->dbi[p], &st) == 0)
			used[p] = (uint64_t)(st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) *
			          st.ms_psize;
	}
	mdb_txn_reset(c->wro);
}

static void cache_enforce_quotas(struct cache *c)
{
	uint64_t used[CACHE_PART_COUNT];

	/* A quota changed on reload starts over: no learnt target or cap. */
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++) {
		struct cache_part_state *ps = &c->part[p];
		uint64_t want = atomic_load(&ps->requested);
		if (want != atomic_load(&ps->quota)) {
			atomic_store(&ps->quota, want);
			atomic_store(&ps->limit, 0);
			ps->have_target = 0;
			log_info("cache: %s quota now %llu bytes", cache_part_names[p], (unsigned long long)want);
		}
	}
	cache_part_used(c, used);
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++) {
		struct cache_part_state *ps = &c->part[p];
		if (used[p] <= cache_part_cap(ps))
			continue;
		if (ps->have_target && ps->have_estimate && ps->logical_est <= ps->target)
			continue;
		cache_evict_part(c, p, cache_need_quota);
	}
}

/* The map filled before the quotas did (quotas above max_bytes, or free
 * pages held by slow readers).  Cap every partition at three quarters of
 * what it uses now and evict to that, so that quota eviction, not MAP_FULL,
 * bounds it from here on. */
static void cache_map_full(struct cache *c)
{
	uint64_t used[CACHE_PART_COUNT];

	cache_part_used(c, used);
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++) {
		struct cache_part_state *ps = &c->part[p];
		if (used[p] < (256u << 10))
			continue;
		uint64_t lim = used[p] - used[p] / 4;
		if (lim < cache_part_cap(ps)) {
			if (atomic_load_explicit(&ps->limit, memory_order_relaxed) == 0)
				log_info("cache: map full before %s reached its quota; capping it at %llu bytes",
				         cache_part_names[p], (unsigned long long)lim);
			atomic_store_explicit(&ps->limit, lim, memory_order_relaxed);
		}
		ps->have_target = 0;
		cache_evict_part(c, p, cache_need_quota);
	}
}

/* ---- the writer thread ---- */

/* Commit n queued puts in one transaction.  MAP_FULL, from a put or from
 * the commit, makes room and retries; it never reaches a caller. */
static void cache_write_chunk(struct cache *c, struct cache_item *first, size_t n)
{
	int rc = 0;

	for (int attempt = 0; attempt < 4; attempt++) {
		MDB_txn *txn;
		cache_enforce_quotas(c);
		rc = mdb_txn_begin(c->env, NULL, 0, &txn);
		if (rc != 0)
			break;
		struct cache_item *it = first;
		for (size_t i = 0; i < n && rc == 0; i++, it = it->next) {
			MDB_val k = { .mv_size = it->key_len, .mv_data = it->data };
			MDB_val v = { .mv_size = it->val_len, .mv_data = it->data + it->key_len };
			cache_epoch_key(c, txn, k.mv_data, k.mv_size);
			rc = mdb_put(txn, c->dbi[it->part], &k, &v, 0);
			for (unsigned q = 0; q < CACHE_PART_COUNT && rc == 0; q++) {
				if (q == it->part)
					continue;
				rc = mdb_del(txn, c->dbi[q], &k, NULL);
				if (rc == MDB_NOTFOUND)
					rc = 0;
			}
		}
		if (rc == 0)
			rc = mdb_txn_commit(txn);   /* frees txn even when it fails */
		else
			mdb_txn_abort(txn);
		if (rc == 0) {
			atomic_fetch_add_explicit(&c->commits, 1, memory_order_relaxed);
			c->dirty = 1;
			c->last_err_logged = 0;
			it = first;
			for (size_t i = 0; i < n; i++, it = it->next)
				c->part[it->part].logical_est += it->key_len + it->val_len + 16;
			return;
		}
		if (rc != MDB_MAP_FULL)
			break;
		log_debug("cache: map full, evicting");
		cache_map_full(c);
	}
	cache_write_error(c, "write transaction", rc);
	atomic_fetch_add_explicit(&c->put_drops, n, memory_order_relaxed);
}

static void cache_write_batch(struct cache *c, struct cache_item *list)
{
	while (list) {
		struct cache_item *first = list, *it = list;
		size_t n = 0, bytes = 0;
		while (it && n < CACHE_CHUNK_ITEMS &&
		       (n == 0 || bytes + it->key_len + it->val_len <= c->chunk_bytes)) {
			bytes += it->key_len + it->val_len;
			n++;
			it = it->next;
		}
		cache_write_chunk(c, first, n);
		while (first != it) {
			struct cache_item *next = first->next;
			free(first);
			first = next;
		}
		list = it;
	}
}

/* Apply what readers reported: refresh last_hit of entries hit after a
 * minute, delete values a reader found damaged (checked again here, since
 * a put may have replaced them meanwhile). */
static void cache_apply_touches(struct cache *c)
{
	size_t n = 0;
	MDB_txn *txn;
	int rc;

	pthread_mutex_lock(&c->reg_lock);
	for (struct cache_reader *r = c->readers; r; r = r->next)
		while (n < CACHE_TOUCH_BATCH && cache_ring_pop(r, &c->touches[n]) == 0)
			n++;
	pthread_mutex_unlock(&c->reg_lock);
	if (n == 0)
		return;

	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc != 0) {
		cache_write_error(c, "touch transaction", rc);
		return;
	}
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct cache_touch *t = &c->touches[i];
		MDB_val k = { .mv_size = t->key_len, .mv_data = (void *)t->key };
		MDB_val v;
		struct cache_record rec;
		if (t->part >= CACHE_PART_COUNT)
			continue;
		rc = mdb_get(txn, c->dbi[t->part], &k, &v);
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc != 0)
			break;
		int bad = cache_value_decode(v.mv_data, v.mv_size, &rec, 1) != 0;
		if (t->kind == CACHE_TOUCH_DAMAGED) {
			if (bad) {
				cache_epoch_key(c, txn, k.mv_data, k.mv_size);
				rc = mdb_del(txn, c->dbi[t->part], &k, NULL);
				log_info("cache: deleted a damaged entry from %s", cache_part_names[t->part]);
			}
			continue;
		}
		/* A damaged value is never re-checksummed here: that would
		 * bless it. */
		if (bad || now - rec.last_hit < CACHE_TOUCH_EVERY_S)
			continue;
		memcpy(c->scratch, v.mv_data, v.mv_size);
		memcpy(c->scratch + CACHE_OFF_LASTHIT, &now, 8);
		uint32_t sum = cache_checksum(c->scratch, v.mv_size);
		memcpy(c->scratch + CACHE_OFF_SUM, &sum, 4);
		v.mv_data = c->scratch;
		rc = mdb_put(txn, c->dbi[t->part], &k, &v, 0);
	}
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	if (rc == 0) {
		atomic_fetch_add_explicit(&c->commits, 1, memory_order_relaxed);
		c->dirty = 1;
	} else if (rc != MDB_MAP_FULL) {
		/* Touches are hints: under MAP_FULL they are simply dropped. */
		cache_write_error(c, "touch commit", rc);
	}
}

/* ---- flushes (writer thread) ---- */

/* Take n entries of logical bytes off partition p's estimate. */
static void cache_forget_bytes(struct cache *c, unsigned p, uint64_t bytes)
{
	struct cache_part_state *ps = &c->part[p];
	ps->logical_est = ps->logical_est > bytes ? ps->logical_est - bytes : 0;
}

/* Delete from partition p the keys that start with prefix (plen bytes, 0 =
 * every key).  With exact_len non-zero, only keys of exactly that length go
 * (the name's own entries, not the names under it): a longer key means a
 * name below, and the cursor jumps past every key that shares its bytes up
 * to exact_len, since the next key of the right length must differ there.
 * As in eviction, deletions run in transactions that start small and grow
 * while they commit, and shrink on MAP_FULL, so a flush works in a full map.
 * Adds what was deleted to *deleted.  Returns 0 or an LMDB error. */
static int cache_delete_range(struct cache *c, unsigned p, const uint8_t *prefix, size_t plen,
                              size_t exact_len, uint64_t *deleted)
{
	uint8_t pos[CACHE_LMDB_KEY_MAX + 1], last[CACHE_LMDB_KEY_MAX + 1], seek[CACHE_KEY_BUF];
	size_t pos_len = plen, last_len = 0;
	unsigned batch = CACHE_EVICT_TXN_FIRST;
	int more = 1, relieved = 0, rc = 0;

	if (plen > sizeof seek || exact_len > sizeof seek || (exact_len && exact_len <= plen))
		return EINVAL;
	if (plen)
		memcpy(pos, prefix, plen);
	while (more) {
		MDB_txn *txn;
		MDB_cursor *cur;
		MDB_val k, v;
		uint64_t n = 0, bytes = 0;

		more = 0;
		last_len = 0;
		rc = mdb_txn_begin(c->env, NULL, 0, &txn);
		if (rc != 0)
			return rc;
		rc = mdb_cursor_open(txn, c->dbi[p], &cur);
		if (rc != 0) {
			mdb_txn_abort(txn);
			return rc;
		}
		if (pos_len == 0) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		} else {
			k.mv_size = pos_len;
			k.mv_data = pos;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		}
		while (rc == 0) {
			if (!cache_key_has_prefix(&k, prefix, plen)) {
				rc = MDB_NOTFOUND;
				break;
			}
			if (exact_len && k.mv_size != exact_len) {
				if (k.mv_size < exact_len) {
					rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
					continue;
				}
				/* Increment bytes plen..exact_len-1 as one big-endian
				 * number; past the largest, nothing of ours is left. */
				memcpy(seek, k.mv_data, exact_len);
				size_t i = exact_len;
				while (i > plen && ++seek[i - 1] == 0)
					i--;
				if (i == plen) {
					rc = MDB_NOTFOUND;
					break;
				}
				k.mv_size = exact_len;
				k.mv_data = seek;
				rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
				continue;
			}
			memcpy(last, k.mv_data, k.mv_size);
			last_len = k.mv_size;
			bytes += cache_entry_size(&k, &v);
			cache_epoch_key(c, txn, k.mv_data, k.mv_size);
			rc = mdb_cursor_del(cur, 0);
			if (rc != 0)
				break;
			if (++n >= batch) {
				more = 1;
				break;
			}
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(cur);
		if (rc == MDB_NOTFOUND)
			rc = 0;
		if (rc == 0 && n == 0) {
			mdb_txn_abort(txn);
			return 0;
		}
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc == MDB_MAP_FULL) {
			/* Retry from the last commit with fewer deletes; at one,
			 * let eviction make room once. */
			more = 1;
			if (batch > 1) {
				batch /= 2;
				continue;
			}
			if (!relieved) {
				relieved = 1;
				cache_map_full(c);
				continue;
			}
		}
		if (rc != 0)
			return rc;
		atomic_fetch_add_explicit(&c->commits, 1, memory_order_relaxed);
		c->dirty = 1;
		*deleted += n;
		cache_forget_bytes(c, p, bytes);
		/* The last deleted key is gone: a range seek to it finds the
		 * next one. */
		memcpy(pos, last, last_len);
		pos_len = last_len;
		if (batch < CACHE_EVICT_TXN_DELETES)
			batch *= 2;
	}
	return 0;
}

/* Empty partition p.  mdb_drop frees whole pages without copying them, so
 * it is the cheap way; if even that finds the map full, delete in small
 * transactions instead. */
static int cache_drop_part(struct cache *c, unsigned p, uint64_t *deleted)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc = mdb_txn_begin(c->env, NULL, 0, &txn);

	if (rc != 0)
		return rc;
	rc = mdb_stat(txn, c->dbi[p], &st);
	if (rc == 0 && st.ms_entries == 0) {
		mdb_txn_abort(txn);
		return 0;
	}
	if (rc == 0) {
		cache_epoch_all(c, txn);
		rc = mdb_drop(txn, c->dbi[p], 0);
	}
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	if (rc == MDB_MAP_FULL)
		return cache_delete_range(c, p, NULL, 0, 0, deleted);
	if (rc != 0)
		return rc;
	atomic_fetch_add_explicit(&c->commits, 1, memory_order_relaxed);
	c->dirty = 1;
	*deleted += st.ms_entries;
	c->part[p].logical_est = 0;
	return 0;
}

/* Store one meta value.  A large value in a full map gets one round of
 * eviction, as puts do: the time series must not be lost to answers. */
static int cache_meta_write(struct cache *c, const struct cache_op *op)
{
	int rc = 0;

	for (int attempt = 0; attempt < 2; attempt++) {
		MDB_txn *txn;
		MDB_val k = { .mv_size = op->meta_key_len, .mv_data = (void *)op->meta_key };
		MDB_val v = { .mv_size = op->meta_val_len, .mv_data = (void *)op->meta_val };
		rc = mdb_txn_begin(c->env, NULL, 0, &txn);
		if (rc != 0)
			return rc;
		rc = mdb_put(txn, c->meta, &k, &v, 0);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc != MDB_MAP_FULL)
			break;
		cache_map_full(c);
	}
	if (rc == 0) {
		atomic_fetch_add_explicit(&c->commits, 1, memory_order_relaxed);
		c->dirty = 1;
	}
	return rc;
}

/* Carry out one flush or meta write; sets op->result. */
static void cache_run_op(struct cache *c, struct cache_op *op)
{
	uint64_t deleted = 0;
	int rc = 0;

	if (op->kind == CACHE_OP_META_PUT) {
		rc = cache_meta_write(c, op);
		if (rc != 0)
			cache_write_error(c, "meta write", rc);
		op->result = rc == 0 ? 0 : -1;
		return;
	}
	for (unsigned p = 0; p < CACHE_PART_COUNT && rc == 0; p++) {
		switch (op->kind) {
		case CACHE_OP_FLUSH_PART:
			if (p == op->part)
				rc = cache_drop_part(c, p, &deleted);
			break;
		case CACHE_OP_FLUSH_SUFFIX:
			if (op->name_len == 0)
				rc = cache_drop_part(c, p, &deleted);
			else
				rc = cache_delete_range(c, p, op->name, op->name_len, 0, &deleted);
			break;
		case CACHE_OP_FLUSH_NAME:
			/* The name's own keys are name + qtype + qclass: with a
			 * type, those starting with name + qtype (any class). */
			if (op->qtype >= 0)
				rc = cache_delete_range(c, p, op->name, op->name_len + 2,
				                        op->name_len + 4, &deleted);
			else
				rc = cache_delete_range(c, p, op->name, op->name_len,
				                        op->name_len + 4, &deleted);
			break;
		case CACHE_OP_META_PUT:
			break;
		}
	}
	if (rc != 0) {
		cache_write_error(c, "flush", rc);
		op->result = -1;
	} else {
		op->result = deleted > INT_MAX ? INT_MAX : (int)deleted;
		log_debug("cache: flush deleted %llu entries", (unsigned long long)deleted);
	}
}

static void cache_periodic(struct cache *c)
{
	if (c->dirty && (c->sync_interval_ms == 0 ||
	                 cache_ms_since(c->last_sync) >= (int64_t)c->sync_interval_ms)) {
		int rc = mdb_env_sync(c->env, 1);
		if (rc != 0)
			cache_write_error(c, "sync", rc);
		c->dirty = 0;
		c->last_sync = cache_mono();
	}
	if (cache_ms_since(c->last_reader_check) >= CACHE_READER_CHECK_S * 1000) {
		int dead = 0;
		mdb_reader_check(c->env, &dead);
		if (dead > 0)
			log_info("cache: cleared %d stale reader slots", dead);
		c->last_reader_check = cache_mono();
	}
}

static void *cache_writer_main(void *arg)
{
	struct cache *c = arg;
	unsigned tick = CACHE_TICK_MS;

	if (c->sync_interval_ms > 0 && c->sync_interval_ms < tick)
		tick = c->sync_interval_ms < 10 ? 10 : c->sync_interval_ms;
	pthread_mutex_lock(&c->q_lock);
	for (;;) {
		if (!c->stop && c->q_head == NULL && c->op_head == NULL &&
		    c->flush_req == c->flush_done) {
			struct timespec dl = cache_deadline(tick);
			pthread_cond_timedwait(&c->q_cond, &c->q_lock, &dl);
		}
		if (c->q_head && !c->stop && c->op_head == NULL && c->flush_req == c->flush_done &&
		    c->q_items < CACHE_QUEUE_EAGER) {
			/* Group commit: puts arriving together share one
			 * transaction. */
			struct timespec dl = cache_deadline(CACHE_BATCH_WAIT_MS);
			pthread_cond_timedwait(&c->q_cond, &c->q_lock, &dl);
		}
		struct cache_item *list = c->q_head;
		c->q_head = NULL;
		c->q_tail = &c->q_head;
		c->q_items = 0;
		c->q_bytes = 0;
		/* Flushes taken with the puts run after them: every put queued
		 * before a flush is in this list or an earlier one. */
		struct cache_op *ops = c->op_head;
		c->op_head = NULL;
		c->op_tail = &c->op_head;
		uint64_t gen = c->flush_req;
		int stopping = c->stop;
		pthread_mutex_unlock(&c->q_lock);

		if (list)
			cache_write_batch(c, list);
		for (struct cache_op *op = ops; op; op = op->next)
			cache_run_op(c, op);
		cache_apply_touches(c);
		cache_periodic(c);
		for (unsigned p = 0; p < CACHE_PART_COUNT; p++) {
			if (atomic_load(&c->part[p].requested) != atomic_load(&c->part[p].quota)) {
				cache_enforce_quotas(c);
				break;
			}
		}

		pthread_mutex_lock(&c->q_lock);
		c->flush_done = gen;
		while (ops) {
			struct cache_op *next = ops->next;
			ops->done = 1;
			ops = next;
		}
		pthread_cond_broadcast(&c->done_cond);
		if (stopping && c->q_head == NULL && c->op_head == NULL)
			break;
	}
	pthread_mutex_unlock(&c->q_lock);
	return NULL;
}

/* ---- open and close ---- */

static int cache_mkdir_p(const char *dir)
{
	char path[4096];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof path)
		return -1;
	memcpy(path, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char saved = path[i];
		path[i] = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -1;
		path[i] = saved;
	}
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/* Validate the first and last few values of a partition: a cheap check
 * that catches a torn tail or a file from something else. */
static int cache_sample_check(MDB_txn *txn, MDB_dbi dbi, char *why, size_t whylen)
{
	MDB_cursor *cur;
	MDB_val k, v;
	struct cache_record rec;
	int rc = mdb_cursor_open(txn, dbi, &cur);

	if (rc != 0)
		return rc;
	static const MDB_cursor_op dirs[2][2] = { { MDB_FIRST, MDB_NEXT }, { MDB_LAST, MDB_PREV } };
	for (int d = 0; d < 2 && rc == 0; d++) {
		rc = mdb_cursor_get(cur, &k, &v, dirs[d][0]);
		for (int i = 0; i < 4 && rc == 0; i++) {
			if (cache_value_decode(v.mv_data, v.mv_size, &rec, 1) != 0) {
				snprintf(why, whylen, "a damaged value");
				rc = MDB_CORRUPTED;
				break;
			}
			rc = mdb_cursor_get(cur, &k, &v, dirs[d][1]);
		}
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	mdb_cursor_close(cur);
	return rc;
}

/* Open the environment and check it.  Returns 0 if usable, 1 if the files
 * are damaged or of another version (why says how), -1 on another error
 * (disk, permissions, memory). */
static int cache_env_open(struct cache *c, char *why, size_t whylen)
{
	MDB_txn *txn = NULL;
	MDB_val k, v;
	int rc, bad = 0;

	why[0] = '\0';
	rc = mdb_env_create(&c->env);
	if (rc != 0)
		goto fail;
	if ((rc = mdb_env_set_mapsize(c->env, (size_t)c->map_size)) != 0 ||
	    (rc = mdb_env_set_maxreaders(c->env, c->max_readers + CACHE_SPARE_READERS)) != 0 ||
	    (rc = mdb_env_set_maxdbs(c->env, 8)) != 0)
		goto fail;
	/* NOTLS: read txns move between threads and one thread may hold
	 * several.  NOSYNC: the writer syncs on its own schedule.  NORDAHEAD:
	 * gets are random, read-ahead would only evict useful pages. */
	rc = mdb_env_open(c->env, c->dir, MDB_NOTLS | MDB_NOSYNC | MDB_NORDAHEAD, 0600);
	if (rc != 0)
		goto fail;
	int dead = 0;
	mdb_reader_check(c->env, &dead);

	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &c->meta)) != 0)
		goto fail;
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++)
		if ((rc = mdb_dbi_open(txn, cache_part_names[p], MDB_CREATE, &c->dbi[p])) != 0)
			goto fail;

	uint8_t ver[4];
	k.mv_data = (void *)"format-version";
	k.mv_size = strlen("format-version");
	rc = mdb_get(txn, c->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		/* A new cache, unless entries exist without a version. */
		for (unsigned p = 0; p < CACHE_PART_COUNT; p++) {
			MDB_stat st;
			if ((rc = mdb_stat(txn, c->dbi[p], &st)) != 0)
				goto fail;
			if (st.ms_entries > 0) {
				snprintf(why, whylen, "entries without a format version");
				bad = 1;
				goto fail;
			}
		}
		ver[0] = (uint8_t)(CACHE_FORMAT_VERSION >> 24);
		ver[1] = (uint8_t)(CACHE_FORMAT_VERSION >> 16);
		ver[2] = (uint8_t)(CACHE_FORMAT_VERSION >> 8);
		ver[3] = (uint8_t)CACHE_FORMAT_VERSION;
		v.mv_data = ver;
		v.mv_size = 4;
		if ((rc = mdb_put(txn, c->meta, &k, &v, 0)) != 0)
			goto fail;
	} else if (rc != 0) {
		goto fail;
	} else {
		const uint8_t *b = v.mv_data;
		uint32_t found = v.mv_size == 4 ? ((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
		                                   (uint32_t)b[2] << 8 | b[3]) : 0;
		if (found != CACHE_FORMAT_VERSION) {
			snprintf(why, whylen, "format version %u, expected %u", found,
			         CACHE_FORMAT_VERSION);
			bad = 1;
			goto fail;
		}
	}
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++) {
		rc = cache_sample_check(txn, c->dbi[p], why, whylen);
		if (rc != 0)
			goto fail;
	}

	k.mv_data = (void *)"clean-shutdown";
	k.mv_size = strlen("clean-shutdown");
	if (mdb_get(txn, c->meta, &k, &v) == 0 && v.mv_size == 1 && *(const char *)v.mv_data == '0')
		log_warn("cache: %s was not closed cleanly; keeping its committed entries", c->dir);
	v.mv_data = (void *)"0";
	v.mv_size = 1;
	if ((rc = mdb_put(txn, c->meta, &k, &v, 0)) != 0)
		goto fail;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0)
		goto fail;
	if ((rc = mdb_env_sync(c->env, 1)) != 0)
		goto fail;

	MDB_stat est;
	mdb_env_stat(c->env, &est);
	c->psize = est.ms_psize;
	return 0;

fail:
	if (txn)
		mdb_txn_abort(txn);
	if (c->env) {
		mdb_env_close(c->env);
		c->env = NULL;
	}
	if (bad || cache_rc_is_damage(rc)) {
		if (why[0] == '\0')
			snprintf(why, whylen, "%s", mdb_strerror(rc));
		return 1;
	}
	snprintf(why, whylen, "%s", mdb_strerror(rc));
	return -1;
}

/* Move a damaged cache directory out of the way, to DIR.bad-<unixtime>
 * (with a counter if that exists), and make a new empty one. */
static int cache_set_aside(const char *dir, char *to, size_t tolen)
{
	long long now = (long long)time(NULL);
	for (int i = 0; i < 100; i++) {
		if (i == 0)
			snprintf(to, tolen, "%s.bad-%lld", dir, now);
		else
			snprintf(to, tolen, "%s.bad-%lld.%d", dir, now, i);
		if (access(to, F_OK) == 0)
			continue;
		if (rename(dir, to) != 0)
			return -1;
		return cache_mkdir_p(dir);
	}
	errno = EEXIST;
	return -1;
}

static void cache_free(struct cache *c)
{
	if (c->wro)
		mdb_txn_abort(c->wro);
	if (c->env)
		mdb_env_close(c->env);
	while (c->q_head) {
		struct cache_item *next = c->q_head->next;
		free(c->q_head);
		c->q_head = next;
	}
	if (c->locks_ready) {
		pthread_mutex_destroy(&c->q_lock);
		pthread_cond_destroy(&c->q_cond);
		pthread_cond_destroy(&c->done_cond);
		pthread_mutex_destroy(&c->reg_lock);
	}
	free(c->touches);
	free(c->scratch);
	free(c->epoch);
	free(c->dir);
	free(c);
}

struct cache *cache_open(const struct cache_options *opt, char *err, size_t errlen)
{
	struct cache *c = NULL;
	char why[256], aside[4096];
	int rc;

	if (opt == NULL || opt->dir == NULL || opt->dir[0] == '\0' || opt->max_bytes == 0) {
		snprintf(err, errlen, "cache: a directory and max_bytes are required");
		return NULL;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL)
		goto fail_errno;
	/* Without trailing slashes, so DIR.bad-<time> is a sibling. */
	c->dir = strdup(opt->dir);
	if (c->dir == NULL)
		goto fail_errno;
	for (size_t n = strlen(c->dir); n > 1 && c->dir[n - 1] == '/'; n--)
		c->dir[n - 1] = '\0';
	c->epoch = calloc(CACHE_EPOCH_SLOTS, sizeof *c->epoch);
	if (c->epoch == NULL)
		goto fail_errno;
	c->max_bytes = opt->max_bytes;
	c->max_readers = opt->max_readers ? opt->max_readers : 256;
	c->sync_interval_ms = opt->sync_interval_ms;
	/* Copy-on-write needs free pages beyond the data, and freed pages are
	 * reusable only once no reader sees them: a quarter more plus 8 MiB. */
	uint64_t map = opt->max_bytes + opt->max_bytes / 4 + (8u << 20);
	c->map_size = (map + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
	uint64_t quota_sum = 0;
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++) {
		c->part[p].quota = opt->quota[p] ? opt->quota[p] :
		                   opt->max_bytes / 100 * cache_part_share[p];
		c->part[p].requested = c->part[p].quota;
		quota_sum += c->part[p].quota;
	}
	if (quota_sum > opt->max_bytes)
		log_info("cache: partition quotas (%llu bytes) exceed max_bytes (%llu); the map fills first",
		         (unsigned long long)quota_sum, (unsigned long long)opt->max_bytes);
	/* A write transaction carries at most 1/16 of the budget. */
	c->chunk_bytes = (size_t)(opt->max_bytes / 16);
	if (c->chunk_bytes > (4u << 20))
		c->chunk_bytes = 4u << 20;
	if (c->chunk_bytes < (64u << 10))
		c->chunk_bytes = 64u << 10;

	c->touches = calloc(CACHE_TOUCH_BATCH, sizeof *c->touches);
	c->scratch = malloc(CACHE_VALUE_MAX);
	if (c->touches == NULL || c->scratch == NULL)
		goto fail_errno;

	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&c->q_lock, NULL);
	pthread_cond_init(&c->q_cond, &ca);
	pthread_cond_init(&c->done_cond, NULL);
	pthread_mutex_init(&c->reg_lock, NULL);
	pthread_condattr_destroy(&ca);
	c->locks_ready = 1;
	c->q_tail = &c->q_head;
	c->op_tail = &c->op_head;

	if (cache_mkdir_p(c->dir) != 0) {
		snprintf(err, errlen, "cache: cannot create %s: %s", c->dir, strerror(errno));
		goto fail;
	}
	rc = cache_env_open(c, why, sizeof why);
	if (rc == 1) {
		if (cache_set_aside(c->dir, aside, sizeof aside) != 0) {
			snprintf(err, errlen, "cache: %s is unusable (%s) and cannot be moved aside: %s",
			         c->dir, why, strerror(errno));
			goto fail;
		}
		log_warn("cache: %s is unusable (%s); moved it to %s and starting empty", c->dir, why,
		         aside);
		c->set_aside = 1;
		rc = cache_env_open(c, why, sizeof why);
	}
	if (rc != 0) {
		snprintf(err, errlen, "cache: cannot open %s: %s", c->dir, why);
		goto fail;
	}
	rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &c->wro);
	if (rc != 0) {
		snprintf(err, errlen, "cache: read transaction: %s", mdb_strerror(rc));
		goto fail;
	}
	mdb_txn_reset(c->wro);

	c->last_sync = cache_mono();
	c->last_reader_check = c->last_sync;
	atomic_init(&c->puts, 0);
	atomic_init(&c->put_drops, 0);
	atomic_init(&c->evictions, 0);
	atomic_init(&c->commits, 0);
	atomic_init(&c->damaged, 0);
	atomic_init(&c->write_errors, 0);
	rc = pthread_create(&c->writer, NULL, cache_writer_main, c);
	if (rc != 0) {
		snprintf(err, errlen, "cache: writer thread: %s", strerror(rc));
		goto fail;
	}
	c->writer_started = 1;
	return c;

fail_errno:
	snprintf(err, errlen, "cache: %s", strerror(errno));
fail:
	if (c)
		cache_free(c);
	return NULL;
}

void cache_close(struct cache *c)
{
	MDB_txn *txn;
	int rc;

	if (c == NULL)
		return;
	if (c->readers)
		log_warn("cache: closing with %u readers still open", c->n_readers);
	if (c->writer_started) {
		cache_flush_writes(c);
		pthread_mutex_lock(&c->q_lock);
		c->stop = 1;
		pthread_cond_signal(&c->q_cond);
		pthread_mutex_unlock(&c->q_lock);
		pthread_join(c->writer, NULL);
	}
	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc == 0) {
		MDB_val k = { .mv_size = strlen("clean-shutdown"), .mv_data = (void *)"clean-shutdown" };
		MDB_val v = { .mv_size = 1, .mv_data = (void *)"1" };
		rc = mdb_put(txn, c->meta, &k, &v, 0);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (rc != 0)
		log_err("cache: cannot mark a clean shutdown: %s", mdb_strerror(rc));
	rc = mdb_env_sync(c->env, 1);
	if (rc != 0)
		log_err("cache: final sync failed: %s", mdb_strerror(rc));
	cache_free(c);
}

void cache_get_stats(struct cache *c, struct cache_stats *st)
{
	MDB_txn *txn;
	MDB_envinfo ei;
	MDB_stat es;

	memset(st, 0, sizeof *st);
	/* The quota in force: lower than configured after a MAP_FULL. */
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++)
		st->quota[p] = cache_part_cap(&c->part[p]);
	st->puts = atomic_load_explicit(&c->puts, memory_order_relaxed);
	st->put_drops = atomic_load_explicit(&c->put_drops, memory_order_relaxed);
	st->evictions = atomic_load_explicit(&c->evictions, memory_order_relaxed);
	st->commits = atomic_load_explicit(&c->commits, memory_order_relaxed);
	st->damaged = atomic_load_explicit(&c->damaged, memory_order_relaxed);
	st->write_errors = atomic_load_explicit(&c->write_errors, memory_order_relaxed);
	st->set_aside = c->set_aside;
	pthread_mutex_lock(&c->reg_lock);
	st->hot_hits = c->hot_hits_gone;
	for (struct cache_reader *r = c->readers; r; r = r->next)
		st->hot_hits += atomic_load_explicit(&r->hot_hits, memory_order_relaxed);
	pthread_mutex_unlock(&c->reg_lock);
	if (mdb_env_info(c->env, &ei) == 0 && mdb_env_stat(c->env, &es) == 0) {
		st->map_size = ei.me_mapsize;
		st->map_used = (uint64_t)(ei.me_last_pgno + 1) * es.ms_psize;
	}
	if (mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn) != 0)
		return;
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++) {
		MDB_stat ps;
		if (mdb_stat(txn, c->dbi[p], &ps) != 0)
			continue;
		st->entries[p] = ps.ms_entries;
		st->bytes[p] = (uint64_t)(ps.ms_branch_pages + ps.ms_leaf_pages + ps.ms_overflow_pages) *
		               ps.ms_psize;
	}
	mdb_txn_abort(txn);
}

/* ---- inspection and control (control and web threads) ---- */

/* Queue op for the writer and wait until it is done.  Returns its result,
 * or -1 if the cache is closing. */
static int cache_submit_op(struct cache *c, struct cache_op *op)
{
	op->next = NULL;
	op->done = 0;
	op->result = -1;
	pthread_mutex_lock(&c->q_lock);
	if (c->stop) {
		pthread_mutex_unlock(&c->q_lock);
		return -1;
	}
	*c->op_tail = op;
	c->op_tail = &op->next;
	pthread_cond_signal(&c->q_cond);
	while (!op->done)
		pthread_cond_wait(&c->done_cond, &c->q_lock);
	pthread_mutex_unlock(&c->q_lock);
	return op->result;
}

int cache_flush_name(struct cache *c, const uint8_t *qname, size_t qname_len, int qtype)
{
	struct cache_op op = { .kind = CACHE_OP_FLUSH_NAME, .qtype = qtype };
	int n = cache_name_key(op.name, qname, qname_len);

	if (n < 0 || qtype < -1 || qtype > 65535)
		return -1;
	op.name_len = (size_t)n;
	if (qtype >= 0) {
		op.name[op.name_len] = (uint8_t)(qtype >> 8);
		op.name[op.name_len + 1] = (uint8_t)qtype;
	}
	return cache_submit_op(c, &op);
}

int cache_flush_suffix(struct cache *c, const uint8_t *suffix, size_t suffix_len)
{
	struct cache_op op = { .kind = CACHE_OP_FLUSH_SUFFIX };
	int n = cache_name_key(op.name, suffix, suffix_len);

	if (n < 0)
		return -1;
	op.name_len = (size_t)n;
	return cache_submit_op(c, &op);
}

int cache_flush_partition(struct cache *c, enum cache_partition p)
{
	struct cache_op op = { .kind = CACHE_OP_FLUSH_PART, .part = (unsigned)p };

	if ((unsigned)p >= CACHE_PART_COUNT)
		return -1;
	return cache_submit_op(c, &op);
}

/* Let go of a walk's snapshot and take a fresh one, with the cursor on the
 * first key after last (last_len bytes).  Returns 0 with *k and *v set, or
 * an LMDB error (MDB_NOTFOUND at the end). */
static int cache_walk_renew(struct cache *c, unsigned p, MDB_txn *txn, MDB_cursor **cur,
                            const uint8_t *last, size_t last_len, MDB_val *k, MDB_val *v)
{
	int rc;

	mdb_cursor_close(*cur);
	*cur = NULL;
	mdb_txn_reset(txn);
	if ((rc = mdb_txn_renew(txn)) != 0 || (rc = mdb_cursor_open(txn, c->dbi[p], cur)) != 0)
		return rc;
	k->mv_size = last_len;
	k->mv_data = (void *)last;
	rc = mdb_cursor_get(*cur, k, v, MDB_SET_RANGE);
	/* Still there (not flushed or evicted meanwhile): it was visited. */
	if (rc == 0 && k->mv_size == last_len && memcmp(k->mv_data, last, last_len) == 0)
		rc = mdb_cursor_get(*cur, k, v, MDB_NEXT);
	return rc;
}

int cache_walk(struct cache *c, const uint8_t *suffix, size_t suffix_len, int partition,
               int64_t now, cache_walk_fn *fn, void *arg)
{
	uint8_t prefix[CACHE_KEY_BUF], last[CACHE_LMDB_KEY_MAX + 1], qname[256];
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct cache_record rec;
	int visited = 0, stop = 0, rc;
	int plen = cache_name_key(prefix, suffix, suffix_len);

	(void)now;
	if (plen < 0 || fn == NULL || partition < -1 || partition >= CACHE_PART_COUNT)
		return -1;
	rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		goto fail;
	for (unsigned p = 0; p < CACHE_PART_COUNT && !stop; p++) {
		if (partition >= 0 && p != (unsigned)partition)
			continue;
		unsigned in_txn = 0;
		if ((rc = mdb_cursor_open(txn, c->dbi[p], &cur)) != 0)
			goto fail;
		if (plen == 0) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		} else {
			k.mv_size = (size_t)plen;
			k.mv_data = prefix;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		}
		while (rc == 0 && cache_key_has_prefix(&k, prefix, (size_t)plen)) {
			uint16_t qtype, qclass;
			int qlen = cache_key_decode(k.mv_data, k.mv_size, qname, &qtype, &qclass);
			if (qlen < 0 || cache_value_decode(v.mv_data, v.mv_size, &rec, 1) != 0) {
				/* Not shown; cache_get or eviction will meet it. */
				atomic_fetch_add_explicit(&c->damaged, 1, memory_order_relaxed);
			} else {
				rec.partition = (uint8_t)p;
				if (visited < INT_MAX)
					visited++;
				if (fn(arg, qname, (size_t)qlen, qtype, qclass, &rec) != 0) {
					stop = 1;
					break;
				}
			}
			if (++in_txn < CACHE_WALK_CHUNK) {
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
				continue;
			}
			in_txn = 0;
			size_t last_len = k.mv_size;
			memcpy(last, k.mv_data, last_len);
			rc = cache_walk_renew(c, p, txn, &cur, last, last_len, &k, &v);
		}
		if (rc != 0 && rc != MDB_NOTFOUND)
			goto fail;
		rc = 0;
		mdb_cursor_close(cur);
		cur = NULL;
	}
	mdb_txn_abort(txn);
	return visited;

fail:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		mdb_txn_abort(txn);
	log_warn("cache: walk failed: %s", mdb_strerror(rc));
	return -1;
}

int cache_lookup(struct cache *c, const uint8_t *qname, size_t qname_len, uint16_t qtype,
                 uint16_t qclass, int64_t now, struct cache_record *out, uint8_t *buf,
                 size_t buf_cap)
{
	uint8_t key[CACHE_KEY_BUF];
	MDB_txn *txn;
	int klen = cache_key(key, qname, qname_len, qtype, qclass);
	int ret = -1, rc;

	if (klen < 0)
		return -1;
	rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		log_warn("cache: lookup failed: %s", mdb_strerror(rc));
		return -1;
	}
	/* A key lives in at most one partition, so the order does not matter. */
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++) {
		MDB_val k = { .mv_size = (size_t)klen, .mv_data = key };
		MDB_val v;
		rc = mdb_get(txn, c->dbi[p], &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0 || cache_value_decode(v.mv_data, v.mv_size, out, 1) != 0) {
			atomic_fetch_add_explicit(&c->damaged, 1, memory_order_relaxed);
			continue;
		}
		if (now >= out->stale_until)
			break;
		out->partition = (uint8_t)p;
		/* Copy before the transaction ends: the map pages may be reused
		 * by the writer after that. */
		if ((size_t)out->full_len + out->plain_len > buf_cap) {
			out->full = NULL;
			out->plain = NULL;
			ret = -2;
			break;
		}
		if (out->full_len)
			memcpy(buf, out->full, out->full_len);
		if (out->plain_len)
			memcpy(buf + out->full_len, out->plain, out->plain_len);
		out->full = buf;
		out->plain = buf + out->full_len;
		ret = 0;
		break;
	}
	mdb_txn_abort(txn);
	return ret;
}

void cache_set_quotas(struct cache *c, const uint64_t quota[CACHE_PART_COUNT])
{
	for (unsigned p = 0; p < CACHE_PART_COUNT; p++)
		atomic_store(&c->part[p].requested,
		             quota[p] ? quota[p] : c->max_bytes / 100 * cache_part_share[p]);
	/* The writer applies them before its next transaction; wake it. */
	cache_flush_writes(c);
}

/* ---- the meta database ---- */

#define CACHE_META_PREFIX "web."
#define CACHE_META_VALUE_MAX (1u << 20)

int cache_meta_put(struct cache *c, const char *key, const void *val, size_t len)
{
	size_t plen = strlen(CACHE_META_PREFIX);
	size_t klen = key ? strlen(key) : 0;

	/* Only the web module's namespace: a caller must never be able to
	 * overwrite format-version or clean-shutdown, which decide whether
	 * the cache is trusted at the next open. */
	if (c == NULL || klen <= plen || klen > CACHE_LMDB_KEY_MAX ||
	    strncmp(key, CACHE_META_PREFIX, plen) != 0 || len > CACHE_META_VALUE_MAX ||
	    (val == NULL && len > 0))
		return -1;
	struct cache_op op = { .kind = CACHE_OP_META_PUT, .meta_key = key, .meta_key_len = klen,
	                       .meta_val = len ? val : "", .meta_val_len = len };
	return cache_submit_op(c, &op);
}

uint8_t *cache_meta_get(struct cache *c, const char *key, size_t *len)
{
	MDB_txn *txn;
	uint8_t *out = NULL;
	size_t klen = key ? strlen(key) : 0;
	int rc;

	if (len)
		*len = 0;
	if (c == NULL || len == NULL || klen == 0 || klen > CACHE_LMDB_KEY_MAX)
		return NULL;
	rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		log_warn("cache: meta read failed: %s", mdb_strerror(rc));
		return NULL;
	}
	MDB_val k = { .mv_size = klen, .mv_data = (void *)key };
	MDB_val v;
	rc = mdb_get(txn, c->meta, &k, &v);
	if (rc == 0) {
		/* Copy inside the transaction: the pages may be reused by the
		 * writer once it ends.  One byte more so that an empty value is
		 * still a non-NULL "found". */
		out = malloc(v.mv_size + 1);
		if (out != NULL) {
			memcpy(out, v.mv_data, v.mv_size);
			*len = v.mv_size;
		}
	} else if (rc != MDB_NOTFOUND) {
		log_warn("cache: meta read failed: %s", mdb_strerror(rc));
	}
	mdb_txn_abort(txn);
	return out;
}
