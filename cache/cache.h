/* cache.h -- the persistent LMDB answer cache.
 *
 * One LMDB environment in a directory, with one named database per partition
 * (general, mail, dnsbl) and a meta database.  Answers are opaque bytes here
 * (two forms built by wire: with and without DNSSEC records); this module
 * stores them under a key made from the question and hands them back with
 * the header fields that decide freshness.  Only this module includes
 * <lmdb.h>.
 *
 * Threads: any number of readers (one struct cache_reader per thread, never
 * shared), and one writer thread owned by the cache that takes queued puts
 * and commits them in batches.  A get never allocates and never takes a lock
 * shared with other readers.
 */
#ifndef MXR_CACHE_H
#define MXR_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cache_partition {
	CACHE_PART_GENERAL = 0,
	CACHE_PART_MAIL,
	CACHE_PART_DNSBL,
	CACHE_PART_COUNT
};

enum cache_dnssec {
	CACHE_DNSSEC_INSECURE = 0,
	CACHE_DNSSEC_SECURE = 1,
	CACHE_DNSSEC_BOGUS = 2,
	CACHE_DNSSEC_INDETERMINATE = 3
};

struct cache_options {
	const char *dir;          /* created if missing */
	uint64_t max_bytes;       /* total budget on disk; the LMDB map is sized from it */
	uint64_t quota[CACHE_PART_COUNT]; /* bytes per partition; 0 = share of max_bytes */
	unsigned max_readers;     /* reader handles that may exist at once */
	unsigned sync_interval_ms;/* how often the writer fsyncs; 0 = fsync every commit */
};

/* One cached answer.  From cache_get, the pointers point into LMDB memory (or
 * the reader's hot table) and stay valid as cache_reader_begin() says; for
 * cache_put they are the caller's and are copied. */
struct cache_record {
	uint8_t rcode;
	uint8_t dnssec;         /* enum cache_dnssec */
	int64_t stored_at;      /* wall-clock seconds */
	uint32_t ttl;           /* original TTL in seconds */
	int64_t expires;        /* stored_at + ttl */
	int64_t stale_until;    /* kept (and servable as stale) until then; >= expires */
	int64_t last_hit;       /* wall-clock seconds, approximate (updated at most once a minute) */
	uint8_t partition;      /* enum cache_partition, where it is stored */
	const uint8_t *full;    /* form with DNSSEC records */
	uint32_t full_len;
	const uint8_t *plain;   /* form without DNSSEC records */
	uint32_t plain_len;
};

struct cache_stats {
	uint64_t entries[CACHE_PART_COUNT];
	uint64_t bytes[CACHE_PART_COUNT];   /* pages in use by the partition, in bytes */
	uint64_t quota[CACHE_PART_COUNT];
	uint64_t map_size, map_used;
	uint64_t puts, put_drops, evictions, commits;
	uint64_t set_aside;                 /* 1 if this open moved a bad cache aside */
	uint64_t damaged;                   /* values found damaged (served as misses) */
	uint64_t hot_hits;                  /* gets answered from a reader's hot table */
	uint64_t write_errors;              /* failed commits, syncs, evictions */
};

struct cache;
struct cache_reader;

/* Open (creating if needed) the cache in opt->dir and start its writer
 * thread.  A cache with another format version, or that fails its integrity
 * check, is renamed to DIR.bad-<time> with a log line and a new one is made.
 * Returns the cache, or NULL with a message in err (errlen bytes). */
struct cache *cache_open(const struct cache_options *opt, char *err, size_t errlen);

/* Commit every queued put, mark the shutdown clean, stop the writer and
 * close.  All readers must be freed first.  Accepts NULL. */
void cache_close(struct cache *c);

/* Make a reader for the calling thread.  Returns NULL if the reader slots
 * are exhausted.  Free it with cache_reader_free() in the same thread. */
struct cache_reader *cache_reader_new(struct cache *c);
void cache_reader_free(struct cache_reader *r);

/* Give reader r a hot table of `bytes` (0: none, the default; at least
 * 16 KiB): verified copies of the answers it read last, oldest overwritten
 * first.  A get finds a copy without the B-tree walk and the checksum, and
 * any write to its key since the copy was made sends the get back to LMDB.
 * An answer of more than 4 KiB with its key is never copied.  The memory
 * is touched only as it fills, plus an index of 1/16 to 1/8 of it.  Returns 0, or
 * -1 when out of memory (the reader then has none). */
int cache_reader_hot(struct cache_reader *r, size_t bytes);

/* Start and end a batch of gets: a get's record pointers live until the
 * end, or until the next get on the same reader when it has a hot table.
 * Begin renews the long-lived read transaction, end resets it. */
int cache_reader_begin(struct cache_reader *r);
void cache_reader_end(struct cache_reader *r);

/* Look up the answer for (qname, qtype, qclass); qname is canonical wire
 * form.  The hinted partition is searched first, then the others.  Found
 * means stored and now < stale_until: the caller decides fresh or stale from
 * expires.  Fills *out (pointers into the map).  Returns 0 if found, -1 if
 * not (or on a damaged value, which is then never served). */
int cache_get(struct cache_reader *r, const uint8_t *qname, size_t qname_len,
              uint16_t qtype, uint16_t qclass, enum cache_partition hint,
              int64_t now, struct cache_record *out);

/* Queue rec (copied) for storing in rec->partition; any copy of the key in
 * another partition is removed.  Never blocks: returns 0, or -1 if the
 * queue is full and the put was dropped (counted). */
int cache_put(struct cache *c, const uint8_t *qname, size_t qname_len,
              uint16_t qtype, uint16_t qclass, const struct cache_record *rec);

/* Wait until every put queued before this call is committed.  For tests,
 * shutdown and control commands; not for the query path. */
void cache_flush_writes(struct cache *c);

/* Change the partition quotas (bytes; 0 = the default share of max_bytes)
 * while the cache runs, as on a configuration reload: the writer applies them
 * before its next transaction and evicts down to them.  Returns after the
 * writer has seen them. */
void cache_set_quotas(struct cache *c, const uint64_t quota[CACHE_PART_COUNT]);

/* Fill *st with a snapshot of the counters and sizes. */
void cache_get_stats(struct cache *c, struct cache_stats *st);

/* ---- inspection and control, for control and web threads ----
 *
 * These run in the calling thread with short transactions of their own (no
 * cache_reader needed), so they are not for the query path.  Each uses one
 * of a few spare LMDB reader slots while it runs; when they are all taken
 * it fails with -1. */

/* Called by cache_walk for one entry: qname is canonical wire form and rec's
 * pointers point into the map, both valid only during the call (copy what
 * you keep); return 0 to go on, non-zero to stop the walk. */
typedef int cache_walk_fn(void *arg, const uint8_t *qname, size_t qname_len, uint16_t qtype,
                          uint16_t qclass, const struct cache_record *rec);

/* Call fn for every stored entry whose name equals suffix or is under it
 * (canonical wire form; the root name "\0" means every entry), in
 * partition (-1 = all, one partition after the other) and key order, stale
 * and expired-but-not-yet-evicted ones included (now is not a filter; it is
 * accepted for the callers' display and unused here) and damaged ones
 * skipped; returns the number of entries passed to fn (the one that stopped
 * the walk included), or -1 on a malformed suffix, bad partition or LMDB
 * error. */
int cache_walk(struct cache *c, const uint8_t *suffix, size_t suffix_len, int partition,
               int64_t now, cache_walk_fn *fn, void *arg);

/* Delete qname's entries of qtype (-1 = every type; every class either way)
 * from every partition, after every put queued before the call, waiting for
 * the writer to commit; returns the number deleted, or -1 on a malformed
 * name or a write error. */
int cache_flush_name(struct cache *c, const uint8_t *qname, size_t qname_len, int qtype);

/* Delete every entry whose name equals suffix or is under it (the root
 * "\0" = everything) from every partition, after every put queued before
 * the call, waiting for the writer to commit; returns the number deleted,
 * or -1 on a malformed suffix or a write error. */
int cache_flush_suffix(struct cache *c, const uint8_t *suffix, size_t suffix_len);

/* Empty partition p, after every put queued before the call, waiting for
 * the writer to commit; returns the number deleted, or -1 on a bad
 * partition or a write error. */
int cache_flush_partition(struct cache *c, enum cache_partition p);

/* Look up (qname, qtype, qclass) in every partition and copy the record's
 * forms into buf (buf_cap bytes, the caller's), out->full and out->plain
 * pointing into it; unlike cache_get it needs no reader and does not count
 * as a hit.  Returns 0 if found and now < stale_until, -1 if not (or on a
 * damaged value or an error), -2 if buf is smaller than full_len +
 * plain_len (then *out holds the header and lengths, full and plain NULL). */
int cache_lookup(struct cache *c, const uint8_t *qname, size_t qname_len, uint16_t qtype,
                 uint16_t qclass, int64_t now, struct cache_record *out, uint8_t *buf,
                 size_t buf_cap);

/* Store len bytes of val under key in the meta database, through the
 * writer thread, and wait for the commit.  Keys beginning "web." belong to
 * the web module; the cache's own keys cannot be written.  Returns 0, or -1
 * on a reserved or empty key, a value over 1 MiB, or a write error. */
int cache_meta_put(struct cache *c, const char *key, const void *val, size_t len);

/* The value stored under key in the meta database, copied into a malloc'd
 * buffer (the caller frees it) with its length in *len; NULL when there is
 * none or on an error.  Runs in the calling thread like cache_lookup. */
uint8_t *cache_meta_get(struct cache *c, const char *key, size_t *len);

#endif
