/* lists.c -- block and allow lists: file parsers and the compiled set.
 *
 * The set is one open-addressing hash table keyed by canonical wire names.
 * To keep a million rules within a few tens of megabytes, nothing per rule is
 * a separate allocation:
 *   - names live in one growing arena, each as a length byte and the wire name;
 *   - an entry is four 32-bit words kept in its hash table slot: the name's
 *     hash, its arena offset (0 marks an empty slot), an index into a table
 *     of interned mask tuples, and the head of its RPZ action chain;
 *   - the four 64-bit source masks of an entry (block exact, block below,
 *     allow exact, allow below) are interned: almost every entry of a list
 *     shares the tuple "this one source blocks the name and its subtree";
 *   - a probe reads one 16-byte slot (one cache line) and touches the arena
 *     only to confirm a slot whose hash matches; the slot table, the arena
 *     and the Bloom filter are asked for transparent huge pages.
 * "Subtree" in the masks means the names strictly below the entry: "name" in
 * a domains list sets exact and subtree, "*.name" sets subtree only.
 *
 * The hash of a wire name is computed over its labels from the last to the
 * first, so lists_match gets the hash of every suffix of the query name in one
 * pass over it.  RPZ local data (rare) is the only thing allocated per rule.
 */
#include "lists.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#define LISTS_MAX_LABELS 128
#define LISTS_MAX_TOKENS 128

struct lists_masks {
	uint64_t block_exact, block_below, allow_exact, allow_below;
};

/* An entry lives in its hash table slot: 16 bytes, so that a probe reads one
 * cache line and finds the masks with the hash, the arena being read only to
 * confirm the name of a slot whose hash matches. */
struct lists_entry {
	uint32_t hash;
	uint32_t name_off; /* arena offset of the length byte; 0 for an empty slot */
	uint32_t masks;    /* index into masks[] (0: all clear) */
	uint32_t action;   /* first RPZ action + 1, 0 for none */
};

struct lists_action {
	uint32_t next; /* next action of the same entry + 1, 0 at the end */
	uint8_t source;
	uint8_t below; /* the "*.name" trigger rather than the name itself */
	uint8_t verdict;
	unsigned nrec, caprec;
	struct lists_record *recs; /* rdata of each allocated separately */
};

struct lists_set {
	struct lists_entry *slots;
	size_t slot_cap; /* power of two */
	uint64_t *bloom; /* slot_cap / 16 words: 4 bits per slot, 2 set per name */
	size_t nentries;
	uint8_t *arena;
	size_t arena_len, arena_cap;
	struct lists_masks *masks;
	size_t nmasks, masks_cap;
	uint32_t *mask_slots; /* interning table: mask index + 1 */
	size_t mask_slot_cap;
	struct lists_action *actions;
	size_t nactions, actions_cap;
	size_t rdata_bytes;
	size_t rules;            /* distinct (name, kind, source) bits set */
	uint64_t allow_any;      /* union of every allow bit: skip the allow pass when clear */
	uint64_t depths[2];      /* bit n-1: some entry has n labels */
};

/* ------------------------------------------------------------------ */
/* Hashing */

/* The running hash absorbs whole labels (length byte included), eight bytes
 * at a time, from the last label of the name towards the first, so the hash
 * of a name extends the hash of its parent. */
#define HASH_SEED 0xcbf29ce484222325ULL
#define HASH_MUL 0x9E3779B97F4A7C15ULL

/* The n (1..8 or more) bytes at p as a little-endian word, zero-padded; the
 * buffer runs to end. */
static inline uint64_t load_le(const uint8_t *p, size_t n, const uint8_t *end)
{
	uint64_t w = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (end - p >= 8) {
		memcpy(&w, p, 8);
		return n >= 8 ? w : w & ((1ULL << (8 * n)) - 1);
	}
#else
	(void)end;
#endif
	for (size_t i = 0; i < n && i < 8; i++)
		w |= (uint64_t)p[i] << (8 * i);
	return w;
}

/* h with the label at p (its length byte first) absorbed. */
static inline uint64_t hash_label(uint64_t h, const uint8_t *p, const uint8_t *end)
{
	size_t n = (size_t)p[0] + 1;
	for (size_t i = 0; i < n; i += 8) {
		h = (h ^ load_le(p + i, n - i, end)) * HASH_MUL;
		h ^= h >> 29;
	}
	return h;
}

static inline uint32_t hash_final(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (uint32_t)(h >> 32);
}

/* The hash of a well-formed wire name of len bytes. */
static uint32_t name_hash(const uint8_t *name, size_t len)
{
	uint16_t off[LISTS_MAX_LABELS];
	unsigned nl = 0;
	for (size_t p = 0; name[p] != 0 && nl < LISTS_MAX_LABELS; p += (size_t)name[p] + 1)
		off[nl++] = (uint16_t)p;
	uint64_t h = HASH_SEED;
	while (nl-- > 0)
		h = hash_label(h, name + off[nl], name + len);
	return hash_final(h);
}

/* Number of labels (root excluded) of a well-formed wire name. */
static unsigned name_labels(const uint8_t *name)
{
	unsigned n = 0;
	for (size_t p = 0; name[p] != 0; p += (size_t)name[p] + 1)
		n++;
	return n;
}

/* A blocked Bloom filter over the entries' hashes, small enough (1 MB for a
 * million names) to stay in cache and in the TLB, unlike the slot table:
 * most suffixes of a query name are in no list, and this answers "no" for
 * about 19 in 20 of them without touching the table. */
static inline size_t bloom_word(const struct lists_set *s, uint32_t h)
{
	return ((h * 0x9E3779B1u) >> 12) & (s->slot_cap / 16 - 1);
}

static inline uint64_t bloom_bits(uint32_t h)
{
	uint32_t x = h * 0x85EBCA6Bu;
	return (1ULL << (x >> 26)) | (1ULL << ((x >> 20) & 63));
}

/* The entry for name (hash h), probing from slot i on. */
static inline const struct lists_entry *find_from(const struct lists_set *s, const uint8_t *name, size_t len,
                                                  uint32_t h, size_t i)
{
	size_t mask = s->slot_cap - 1;
	for (;; i = (i + 1) & mask) {
		const struct lists_entry *e = &s->slots[i];
		if (e->name_off == 0)
			return NULL;
		if (e->hash == h) {
			const uint8_t *n = s->arena + e->name_off;
			if (n[0] == len && memcmp(n + 1, name, len) == 0)
				return e;
		}
	}
}

static inline const struct lists_entry *find(const struct lists_set *s, const uint8_t *name, size_t len,
                                             uint32_t h)
{
	return find_from(s, name, len, h, h & (s->slot_cap - 1));
}

/* ------------------------------------------------------------------ */
/* Building */

/* Ask for transparent huge pages on the 2 MB pages wholly inside [p, p+n):
 * lookups touch the slot table and the arena at random, and with 4 kB pages
 * nearly every such access would miss the TLB as well as the cache.  A hint
 * only: without it (or where it is refused) nothing changes but speed. */
static void advise_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
	const uintptr_t huge = (uintptr_t)2 << 20;
	uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1);
	uintptr_t b = ((uintptr_t)p + n) & ~(huge - 1);
	if (n >= huge && b > a)
		(void)madvise((void *)a, b - a, MADV_HUGEPAGE);
#else
	(void)p;
	(void)n;
#endif
}

/* n bytes, cleared if zero, on 2 MB boundaries with the huge page hint when
 * that large; freed with free(). */
static void *big_alloc(size_t n, bool zero)
{
	const size_t huge = (size_t)2 << 20;
	if (n < huge / 2)
		return zero ? calloc(1, n) : malloc(n);
	/* From 1 MB (the Bloom filter of a million names), a whole huge page. */
	size_t r = (n + huge - 1) & ~(huge - 1);
	void *p = NULL;
	if (posix_memalign(&p, huge, r) != 0)
		return NULL;
	advise_huge(p, r);
	if (zero)
		memset(p, 0, n);
	return p;
}

/* Room for need bytes in the arena (its first arena_len bytes kept). */
static int arena_grow(struct lists_set *s, size_t need)
{
	if (need <= s->arena_cap)
		return 0;
	size_t n = s->arena_cap ? s->arena_cap : 65536;
	while (n < need)
		n *= 2;
	uint8_t *q = big_alloc(n, false);
	if (q == NULL)
		return -1;
	if (s->arena_len)
		memcpy(q, s->arena, s->arena_len);
	free(s->arena);
	s->arena = q;
	s->arena_cap = n;
	return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem, size_t first)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : first;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * elem);
	if (q == NULL)
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

static int slots_resize(struct lists_set *s, size_t cap)
{
	struct lists_entry *ns = big_alloc(cap * sizeof(*ns), true);
	uint64_t *nb = big_alloc(cap / 16 * sizeof(*nb), true);
	if (ns == NULL || nb == NULL) {
		free(ns);
		free(nb);
		return -1;
	}
	free(s->bloom);
	s->bloom = nb;
	for (size_t i = 0; i < s->slot_cap; i++) {
		if (s->slots[i].name_off == 0)
			continue;
		size_t j = s->slots[i].hash & (cap - 1);
		while (ns[j].name_off != 0)
			j = (j + 1) & (cap - 1);
		ns[j] = s->slots[i];
	}
	free(s->slots);
	s->slots = ns;
	s->slot_cap = cap;
	for (size_t i = 0; i < cap; i++)
		if (ns[i].name_off != 0)
			nb[bloom_word(s, ns[i].hash)] |= bloom_bits(ns[i].hash);
	return 0;
}

static uint32_t masks_hash(const struct lists_masks *m)
{
	uint64_t h = m->block_exact * 0x9E3779B97F4A7C15ULL;
	h ^= (m->block_below + 0x632BE59BD9B4E019ULL) * 0xBF58476D1CE4E5B9ULL;
	h ^= (m->allow_exact + 0x8CB92BA72F3D8DD7ULL) * 0x94D049BB133111EBULL;
	h ^= (m->allow_below + 0xD6E8FEB86659FD93ULL) * 0xFF51AFD7ED558CCDULL;
	return hash_final(h);
}

/* The index of tuple m in masks[], added if new; -1 on memory exhaustion. */
static long masks_intern(struct lists_set *s, const struct lists_masks *m)
{
	if ((s->nmasks + 1) * 2 > s->mask_slot_cap) {
		size_t cap = s->mask_slot_cap ? s->mask_slot_cap * 2 : 64;
		uint32_t *ns = calloc(cap, sizeof(*ns));
		if (ns == NULL)
			return -1;
		for (size_t i = 0; i < s->nmasks; i++) {
			size_t j = masks_hash(&s->masks[i]) & (cap - 1);
			while (ns[j] != 0)
				j = (j + 1) & (cap - 1);
			ns[j] = (uint32_t)i + 1;
		}
		free(s->mask_slots);
		s->mask_slots = ns;
		s->mask_slot_cap = cap;
	}
	size_t j = masks_hash(m) & (s->mask_slot_cap - 1);
	for (; s->mask_slots[j] != 0; j = (j + 1) & (s->mask_slot_cap - 1))
		if (memcmp(&s->masks[s->mask_slots[j] - 1], m, sizeof(*m)) == 0)
			return (long)s->mask_slots[j] - 1;
	if (s->nmasks >= UINT32_MAX - 1 ||
	    grow((void **)&s->masks, &s->masks_cap, s->nmasks + 1, sizeof(*s->masks), 16) != 0)
		return -1;
	s->masks[s->nmasks] = *m;
	s->mask_slots[j] = (uint32_t)s->nmasks + 1;
	return (long)s->nmasks++;
}

/* The entry for name, created (with no rule) if absent; NULL on exhaustion. */
static struct lists_entry *entry_get(struct lists_set *s, const uint8_t *name, size_t len)
{
	uint32_t h = name_hash(name, len);
	const struct lists_entry *found = find(s, name, len, h);
	if (found != NULL)
		return (struct lists_entry *)found;

	if ((s->nentries + 1) * 10 > s->slot_cap * 7 && slots_resize(s, s->slot_cap * 2) != 0)
		return NULL;
	/* Arena offset 0 is never a name's: it marks the empty slot. */
	size_t base = s->arena_len ? s->arena_len : 1;
	if (s->nentries >= UINT32_MAX - 1 || base + len + 1 > UINT32_MAX ||
	    arena_grow(s, base + len + 1) != 0)
		return NULL;
	s->arena[0] = 0;
	s->arena_len = base;
	size_t i = h & (s->slot_cap - 1);
	while (s->slots[i].name_off != 0)
		i = (i + 1) & (s->slot_cap - 1);
	struct lists_entry *e = &s->slots[i];
	e->hash = h;
	e->name_off = (uint32_t)s->arena_len;
	e->masks = 0;
	e->action = 0;
	s->arena[s->arena_len] = (uint8_t)len;
	memcpy(s->arena + s->arena_len + 1, name, len);
	s->arena_len += len + 1;
	s->nentries++;
	s->bloom[bloom_word(s, h)] |= bloom_bits(h);
	unsigned depth = name_labels(name);
	if (depth >= 1 && depth <= 128)
		s->depths[(depth - 1) / 64] |= 1ULL << ((depth - 1) % 64);
	return e;
}

/* Set the source's bits on name: exact, below (the names under it), as a
 * block or an allow rule.  Returns 0 or -1 on memory exhaustion. */
static int add_rule(struct lists_set *s, const uint8_t *name, size_t len, bool exact, bool below, int source,
                    bool allow)
{
	struct lists_entry *e = entry_get(s, name, len);
	if (e == NULL)
		return -1;
	uint64_t bit = 1ULL << source;
	struct lists_masks m = s->masks[e->masks];
	uint64_t *ex = allow ? &m.allow_exact : &m.block_exact;
	uint64_t *be = allow ? &m.allow_below : &m.block_below;
	size_t added = 0;
	if (exact && !(*ex & bit)) {
		*ex |= bit;
		added++;
	}
	if (below && !(*be & bit)) {
		*be |= bit;
		added++;
	}
	if (added == 0)
		return 0;
	long idx = masks_intern(s, &m);
	if (idx < 0)
		return -1;
	e->masks = (uint32_t)idx;
	s->rules += added;
	if (allow)
		s->allow_any |= bit;
	return 0;
}

enum rpz_add_status { RPZ_ADDED = 0, RPZ_NOMEM = -1, RPZ_CONFLICT = 1 };

/* An RPZ trigger with its verdict (NXDOMAIN, NODATA or LOCAL_DATA, then
 * with rec, whose rdata is copied). */
static int add_rpz(struct lists_set *s, const uint8_t *name, size_t len, bool below, int source,
                   enum lists_verdict verdict, const struct lists_record *rec)
{
	struct lists_entry *e = entry_get(s, name, len);
	if (e == NULL)
		return RPZ_NOMEM;
	struct lists_action *a = NULL;
	for (uint32_t i = e->action; i != 0; i = s->actions[i - 1].next)
		if (s->actions[i - 1].source == source && s->actions[i - 1].below == below) {
			a = &s->actions[i - 1];
			break;
		}
	if (a != NULL && (a->verdict != verdict || verdict != LISTS_LOCAL_DATA))
		return a->verdict == verdict ? RPZ_ADDED : RPZ_CONFLICT;
	if (a == NULL) {
		if (s->nactions >= UINT32_MAX - 1 ||
		    grow((void **)&s->actions, &s->actions_cap, s->nactions + 1, sizeof(*s->actions), 16) != 0)
			return RPZ_NOMEM;
		a = &s->actions[s->nactions];
		memset(a, 0, sizeof(*a));
		a->source = (uint8_t)source;
		a->below = below;
		a->verdict = (uint8_t)verdict;
		a->next = e->action;
		e->action = (uint32_t)++s->nactions;
	}
	if (rec != NULL) {
		if (a->nrec == a->caprec) {
			unsigned cap = a->caprec ? a->caprec * 2 : 2;
			struct lists_record *r = realloc(a->recs, cap * sizeof(*r));
			if (r == NULL)
				return RPZ_NOMEM;
			a->recs = r;
			a->caprec = cap;
		}
		uint8_t *rd = malloc(rec->rdlength ? rec->rdlength : 1);
		if (rd == NULL)
			return RPZ_NOMEM;
		memcpy(rd, rec->rdata, rec->rdlength);
		a->recs[a->nrec] = *rec;
		a->recs[a->nrec].rdata = rd;
		a->nrec++;
		s->rdata_bytes += rec->rdlength;
	}
	return add_rule(s, name, len, !below, below, source, false) == 0 ? RPZ_ADDED : RPZ_NOMEM;
}

/* ------------------------------------------------------------------ */
/* Names in presentation form */

/* Parse text[0..len) ("www.Example.com", trailing dot optional) into a
 * lower-case wire name in out (WIRE_MAX_NAME bytes).  Labels hold letters,
 * digits, '-' and '_'; with allow_wild a first label "*" means "the names
 * below": it is left out of out and *wild is set.  Returns the wire length,
 * or 0 if the name is invalid (empty, the root, a label over 63, over 253
 * characters). */
static size_t name_parse(const char *text, size_t len, bool allow_wild, uint8_t *out, bool *wild)
{
	*wild = false;
	if (len > 1 && text[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return 0;
	if (len >= 2 && text[0] == '*' && text[1] == '.') {
		if (!allow_wild)
			return 0;
		*wild = true;
		text += 2;
		len -= 2;
		if (len == 0)
			return 0;
	}
	size_t n = 0, lab = 0;
	out[n++] = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || text[i] == '.') {
			size_t ll = n - lab - 1;
			if (ll == 0 || ll > 63)
				return 0;
			out[lab] = (uint8_t)ll;
			lab = n;
			out[n++] = 0;
			continue;
		}
		unsigned char c = (unsigned char)text[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
		if (n - lab > 63)
			return 0;
		out[n++] = c;
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Reading lines */

struct reader {
	FILE *in;
	char *buf;
	size_t cap;
	unsigned long lineno;
	struct lists_report *rep;
	struct lists_set *set;
	int source;
	bool allow;
	bool nomem;
	bool nul; /* the current line holds a NUL byte: it is bad */
};

/* The next line without its end of line (LF or CRLF) in *line, its length in
 * *len.  Returns 1, 0 at the end, or -1 on a read error.  r->nul tells
 * whether the line holds a NUL byte (no format allows one). */
static int next_line(struct reader *r, char **line, size_t *len);

static void count_bad(struct reader *r, unsigned long lineno)
{
	if (r->rep->bad < sizeof(r->rep->first_bad_lines) / sizeof(r->rep->first_bad_lines[0]))
		r->rep->first_bad_lines[r->rep->bad] = lineno;
	r->rep->bad++;
}

static int next_line(struct reader *r, char **line, size_t *len)
{
	for (;;) {
		errno = 0;
		ssize_t n = getline(&r->buf, &r->cap, r->in);
		if (n < 0)
			return ferror(r->in) ? -1 : 0;
		r->lineno++;
		size_t l = (size_t)n;
		if (l > 0 && r->buf[l - 1] == '\n')
			l--;
		if (l > 0 && r->buf[l - 1] == '\r')
			l--;
		r->buf[l] = '\0';
		r->nul = memchr(r->buf, '\0', l) != NULL;
		*line = r->buf;
		*len = l;
		return 1;
	}
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Split line (NUL-terminated, modified) at whitespace, stopping at a
 * comment character.  Returns the number of tokens, at most max. */
static size_t split(char *line, char comment, char **tok, size_t max)
{
	size_t n = 0;
	char *p = line;
	for (;;) {
		while (is_space(*p))
			p++;
		if (*p == '\0' || *p == comment)
			return n;
		if (n == max)
			return max + 1;
		tok[n++] = p;
		while (*p != '\0' && !is_space(*p) && *p != comment)
			p++;
		if (*p == comment) {
			*p = '\0';
			return n;
		}
		if (*p != '\0')
			*p++ = '\0';
	}
}

/* ------------------------------------------------------------------ */
/* hosts and domains */

static bool hosts_ignored_name(const char *t)
{
	static const char *const names[] = {
		"localhost", "localhost.localdomain", "local", "broadcasthost", "0.0.0.0",
		"ip6-localhost", "ip6-loopback", "ip6-localnet", "ip6-mcastprefix", "ip6-allnodes",
		"ip6-allrouters", "ip6-allhosts", "localhost4", "localhost6", "localhost4.localdomain4",
		"localhost6.localdomain6",
	};
	size_t len = strlen(t);
	if (len > 1 && t[len - 1] == '.')
		len--;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && strncasecmp(t, names[i], len) == 0)
			return true;
	return false;
}

static int add_text_rule(struct reader *r, const char *text, bool exact_and_below, bool exact_only)
{
	uint8_t w[WIRE_MAX_NAME];
	bool wild;
	size_t wl = name_parse(text, strlen(text), true, w, &wild);
	if (wl == 0)
		return 1;
	bool exact = !wild;
	bool below = wild || (exact_and_below && !exact_only);
	if (add_rule(r->set, w, wl, exact, below, r->source, r->allow) != 0) {
		r->nomem = true;
		return -1;
	}
	r->rep->rules++;
	return 0;
}

static void parse_hosts_line(struct reader *r, char *line)
{
	char *tok[LISTS_MAX_TOKENS];
	size_t n = split(line, '#', tok, LISTS_MAX_TOKENS);
	if (n == 0)
		return;
	unsigned char addr[16];
	if (n > LISTS_MAX_TOKENS || n < 2 ||
	    (inet_pton(AF_INET, tok[0], addr) != 1 && inet_pton(AF_INET6, tok[0], addr) != 1)) {
		count_bad(r, r->lineno);
		return;
	}
	bool bad = false;
	for (size_t i = 1; i < n && !r->nomem; i++) {
		if (hosts_ignored_name(tok[i])) {
			r->rep->skipped++;
			continue;
		}
		if (add_text_rule(r, tok[i], false, true) > 0)
			bad = true;
	}
	if (bad)
		count_bad(r, r->lineno);
}

static void parse_domains_line(struct reader *r, char *line)
{
	char *tok[2];
	size_t n = split(line, '#', tok, 1);
	if (n == 0)
		return;
	if (n != 1 || add_text_rule(r, tok[0], true, false) > 0)
		count_bad(r, r->lineno);
}

/* ------------------------------------------------------------------ */
/* adblock */

static void parse_adblock_line(struct reader *r, char *line)
{
	char *p = line, *end = line + strlen(line);
	while (is_space(*p))
		p++;
	while (end > p && is_space(end[-1]))
		end--;
	*end = '\0';
	if (*p == '\0' || *p == '!' || *p == '[')
		return; /* comment, or the "[Adblock Plus 2.0]" header */
	if (*p == '#' && (p[1] == ' ' || p[1] == '\t' || p[1] == '\0'))
		return; /* "# comment"; "##selector" is a cosmetic rule, skipped below */
	bool allow = r->allow;
	if (strncmp(p, "@@", 2) == 0) {
		allow = true;
		p += 2;
	}
	if (strncmp(p, "||", 2) != 0) {
		r->rep->skipped++; /* URL rules, regexes, cosmetic rules, plain substrings */
		return;
	}
	p += 2;
	char *name = p;
	if (strncmp(p, "*.", 2) == 0)
		p += 2; /* "||*.name^": the names below only */
	p += strcspn(p, "^$|/*?:=");
	if (*p != '^') {
		r->rep->skipped++; /* not anchored to a whole domain name */
		return;
	}
	char *stop = p;
	p++;
	if (*p == '|')
		p++;
	if (*p != '\0' && *p != '$') {
		r->rep->skipped++; /* a path or more after the name */
		return;
	}
	*stop = '\0';
	uint8_t w[WIRE_MAX_NAME];
	bool wild;
	size_t wl = name_parse(name, strlen(name), true, w, &wild);
	if (wl == 0) {
		count_bad(r, r->lineno);
		return;
	}
	if (add_rule(r->set, w, wl, !wild, true, r->source, allow) != 0) {
		r->nomem = true;
		return;
	}
	r->rep->rules++;
}

/* ------------------------------------------------------------------ */
/* RPZ (zone-file syntax) */

struct rpz_state {
	uint8_t origin[WIRE_MAX_NAME];
	size_t origin_len; /* 0: no origin yet */
	uint32_t default_ttl;
	bool have_default_ttl;
	char owner[1024]; /* the last owner field, for lines that leave it out */
	bool have_owner;
	char *rec;        /* one logical record: physical lines joined while parentheses are open */
	size_t rec_len, rec_cap;
	unsigned long rec_line;
	int depth;
	bool rec_bad;
	bool rec_indented;
	uint8_t data[65535]; /* RDATA being built: here rather than on a thread's stack */
};

struct rpz_token {
	char *text; /* NUL-terminated, escapes resolved for quoted strings */
	size_t len;
	bool quoted;
};

/* Parse a TTL: digits, optionally with BIND units ("1h30m").  Returns true
 * and *ttl when t is one. */
static bool parse_ttl(const char *t, uint32_t *ttl)
{
	uint64_t total = 0, cur = 0;
	bool digits = false;
	if (!(*t >= '0' && *t <= '9'))
		return false;
	for (; *t; t++) {
		if (*t >= '0' && *t <= '9') {
			cur = cur * 10 + (uint64_t)(*t - '0');
			if (cur > 0xFFFFFFFFULL)
				return false;
			digits = true;
			continue;
		}
		uint64_t mul;
		switch (*t | 0x20) {
		case 's': mul = 1; break;
		case 'm': mul = 60; break;
		case 'h': mul = 3600; break;
		case 'd': mul = 86400; break;
		case 'w': mul = 604800; break;
		default: return false;
		}
		if (!digits)
			return false;
		total += cur * mul;
		cur = 0;
		digits = false;
		if (total > 0xFFFFFFFFULL)
			return false;
	}
	total += cur;
	if (total > 0x7FFFFFFFULL)
		total = 0x7FFFFFFFULL; /* RFC 2181 8 */
	*ttl = (uint32_t)total;
	return true;
}

/* Tokenize one logical record in place: whitespace separates, parentheses
 * are whitespace, "..." is one token with \X and \DDD escapes.  Returns the
 * count, or -1 when malformed or too many. */
static int rpz_tokenize(char *p, struct rpz_token *tok, int max)
{
	int n = 0;
	for (;;) {
		while (is_space(*p) || *p == '(' || *p == ')')
			p++;
		if (*p == '\0')
			return n;
		if (n == max)
			return -1;
		if (*p == '"') {
			char *o = ++p;
			tok[n].text = o;
			for (;;) {
				if (*p == '\0')
					return -1;
				if (*p == '"')
					break;
				if (*p == '\\') {
					p++;
					if (p[0] >= '0' && p[0] <= '9') {
						if (!(p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9'))
							return -1;
						int v = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
						if (v > 255)
							return -1;
						*o++ = (char)v;
						p += 3;
						continue;
					}
					if (*p == '\0')
						return -1;
				}
				*o++ = *p++;
			}
			tok[n].len = (size_t)(o - tok[n].text);
			*o = '\0'; /* o <= p: the closing quote's place at the latest */
			p++;
			tok[n].quoted = true;
			n++;
			if (*p != '\0' && !is_space(*p) && *p != '(' && *p != ')')
				return -1;
			continue;
		}
		tok[n].text = p;
		tok[n].quoted = false;
		while (*p != '\0' && !is_space(*p) && *p != '(' && *p != ')' && *p != '"')
			p++;
		tok[n].len = (size_t)(p - tok[n].text);
		if (*p == '"')
			return -1;
		if (*p != '\0')
			*p++ = '\0';
		n++;
	}
}

enum owner_kind { OWNER_BAD, OWNER_SKIP, OWNER_APEX, OWNER_TRIGGER };

/* An absolute ("x.") or relative name of the zone in wire form in out;
 * relative names get the origin appended.  Returns the length or 0. */
static size_t rpz_absolute(const struct rpz_state *st, const char *t, bool allow_wild, uint8_t *out, bool *wild)
{
	size_t len = strlen(t);
	if (strcmp(t, "@") == 0) {
		*wild = false;
		if (st->origin_len == 0)
			return 0;
		memcpy(out, st->origin, st->origin_len);
		return st->origin_len;
	}
	if (strcmp(t, ".") == 0) {
		*wild = false;
		out[0] = 0;
		return 1;
	}
	size_t wl = name_parse(t, len, allow_wild, out, wild);
	if (wl == 0)
		return 0;
	if (t[len - 1] != '.' && st->origin_len > 1) {
		if (wl - 1 + st->origin_len > WIRE_MAX_NAME)
			return 0;
		memcpy(out + wl - 1, st->origin, st->origin_len);
		wl = wl - 1 + st->origin_len;
	}
	return wl;
}

/* Resolve an owner field to the trigger it names (relative to the origin). */
static enum owner_kind rpz_owner(const struct rpz_state *st, const char *t, uint8_t *trig, size_t *tlen,
                                 bool *wild)
{
	uint8_t abs[WIRE_MAX_NAME];
	size_t al = rpz_absolute(st, t, true, abs, wild);
	if (al == 0)
		return OWNER_BAD;
	size_t cut = al; /* where the origin starts in abs */
	if (st->origin_len == 0 || st->origin_len == 1) {
		cut = al - 1;
	} else {
		for (size_t p = 0;; p += (size_t)abs[p] + 1) {
			if (al - p == st->origin_len && memcmp(abs + p, st->origin, st->origin_len) == 0) {
				cut = p;
				break;
			}
			if (abs[p] == 0)
				return OWNER_BAD; /* outside the zone */
		}
	}
	if (cut == 0)
		return *wild ? OWNER_SKIP : OWNER_APEX; /* "*.origin." would match everything */
	memcpy(trig, abs, cut);
	trig[cut] = 0;
	*tlen = cut + 1;
	/* Triggers on IP addresses and name servers are not QNAME triggers. */
	size_t last = 0;
	for (size_t p = 0; trig[p] != 0; p += (size_t)trig[p] + 1)
		last = p;
	static const char *const kinds[] = { "rpz-ip", "rpz-nsip", "rpz-nsdname", "rpz-client-ip" };
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (trig[last] == strlen(kinds[i]) && memcmp(trig + last + 1, kinds[i], trig[last]) == 0)
			return OWNER_SKIP;
	return OWNER_TRIGGER;
}

/* Outcome of one record: 0 applied or ignored, 1 bad, 2 skipped, -1 no memory. */
static int rpz_record(struct reader *r, struct rpz_state *st, struct rpz_token *tok, int n, bool indented)
{
	int i = 0;
	if (n == 0)
		return 0;
	if (!indented && tok[0].text[0] == '$') {
		if (strcasecmp(tok[0].text, "$ORIGIN") == 0) {
			uint8_t o[WIRE_MAX_NAME];
			bool wild;
			if (n != 2 || tok[1].quoted)
				return 1;
			size_t ol = rpz_absolute(st, tok[1].text, false, o, &wild);
			if (ol == 0)
				return 1;
			memcpy(st->origin, o, ol);
			st->origin_len = ol;
			return 0;
		}
		if (strcasecmp(tok[0].text, "$TTL") == 0) {
			if (n != 2 || !parse_ttl(tok[1].text, &st->default_ttl))
				return 1;
			st->have_default_ttl = true;
			return 0;
		}
		if (strcasecmp(tok[0].text, "$INCLUDE") == 0)
			return 2; /* a list names no other files */
		return 1;
	}
	if (!indented) {
		if (tok[0].quoted || tok[0].len >= sizeof(st->owner))
			return 1;
		memcpy(st->owner, tok[0].text, tok[0].len + 1);
		st->have_owner = true;
		i = 1;
	} else if (!st->have_owner) {
		return 1;
	}
	uint32_t ttl = st->have_default_ttl ? st->default_ttl : 3600;
	bool have_ttl = false, have_class = false;
	const char *type = NULL;
	for (; i < n && type == NULL; i++) {
		if (tok[i].quoted)
			return 1;
		if (!have_ttl && parse_ttl(tok[i].text, &ttl)) {
			have_ttl = true;
		} else if (!have_class && strcasecmp(tok[i].text, "IN") == 0) {
			have_class = true;
		} else {
			type = tok[i].text;
		}
	}
	if (type == NULL)
		return 1;
	struct rpz_token *rd = tok + i;
	int nrd = n - i;

	if (strcasecmp(type, "SOA") == 0) {
		if (nrd != 7)
			return 1;
		if (st->origin_len == 0) {
			/* The first SOA's owner is the zone's origin. */
			uint8_t o[WIRE_MAX_NAME];
			bool wild;
			size_t ol = rpz_absolute(st, st->owner, false, o, &wild);
			if (ol == 0)
				return 1;
			memcpy(st->origin, o, ol);
			st->origin_len = ol;
			return 0;
		}
	}

	uint8_t trig[WIRE_MAX_NAME];
	size_t tlen = 0;
	bool wild = false;
	switch (rpz_owner(st, st->owner, trig, &tlen, &wild)) {
	case OWNER_BAD:
		return 1;
	case OWNER_SKIP:
		return 2;
	case OWNER_APEX:
		if (strcasecmp(type, "SOA") == 0 || strcasecmp(type, "NS") == 0)
			return 0; /* the zone's own records */
		return 2;
	case OWNER_TRIGGER:
		break;
	}

	struct lists_record rec = { .ttl = ttl };
	uint8_t *data = st->data;
	size_t dl = 0;
	enum lists_verdict verdict = LISTS_LOCAL_DATA;

	if (strcasecmp(type, "CNAME") == 0) {
		if (nrd != 1 || rd[0].quoted)
			return 1;
		const char *t = rd[0].text;
		if (strcmp(t, ".") == 0) {
			verdict = LISTS_NXDOMAIN;
		} else if (strcmp(t, "*.") == 0) {
			verdict = LISTS_NODATA;
		} else if (strcasecmp(t, "rpz-passthru.") == 0) {
			verdict = LISTS_ALLOW;
		} else if (strcasecmp(t, "rpz-drop.") == 0 || strcasecmp(t, "rpz-tcp-only.") == 0 ||
		           strncmp(t, "*.", 2) == 0) {
			return 2; /* actions we do not take, and CNAMEs built from the query name */
		} else {
			bool w;
			dl = rpz_absolute(st, t, false, data, &w);
			if (dl == 0)
				return 1;
			rec.type = WIRE_TYPE_CNAME;
		}
	} else if (strcasecmp(type, "A") == 0) {
		if (nrd != 1 || rd[0].quoted || inet_pton(AF_INET, rd[0].text, data) != 1)
			return 1;
		dl = 4;
		rec.type = WIRE_TYPE_A;
	} else if (strcasecmp(type, "AAAA") == 0) {
		if (nrd != 1 || rd[0].quoted || inet_pton(AF_INET6, rd[0].text, data) != 1)
			return 1;
		dl = 16;
		rec.type = WIRE_TYPE_AAAA;
	} else if (strcasecmp(type, "TXT") == 0) {
		if (nrd < 1)
			return 1;
		for (int k = 0; k < nrd; k++) {
			if (rd[k].len > 255 || dl + 1 + rd[k].len > sizeof(st->data))
				return 1;
			data[dl++] = (uint8_t)rd[k].len;
			memcpy(data + dl, rd[k].text, rd[k].len);
			dl += rd[k].len;
		}
		rec.type = WIRE_TYPE_TXT;
	} else if (strcasecmp(type, "MX") == 0) {
		uint32_t pref = 0;
		if (nrd != 2 || rd[0].quoted || rd[1].quoted)
			return 1;
		for (const char *p = rd[0].text; *p; p++) {
			if (*p < '0' || *p > '9' || pref > 65535)
				return 1;
			pref = pref * 10 + (uint32_t)(*p - '0');
		}
		if (pref > 65535 || rd[0].len == 0)
			return 1;
		bool w;
		size_t nl = rpz_absolute(st, rd[1].text, false, data + 2, &w);
		if (nl == 0)
			return 1;
		data[0] = (uint8_t)(pref >> 8);
		data[1] = (uint8_t)pref;
		dl = nl + 2;
		rec.type = WIRE_TYPE_MX;
	} else {
		/* A type we do not serve (PTR, SRV...) or junk in its place. */
		if (!((type[0] | 0x20) >= 'a' && (type[0] | 0x20) <= 'z'))
			return 1;
		for (const char *p = type; *p; p++)
			if (!((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') && !(*p >= '0' && *p <= '9') && *p != '-')
				return 1;
		return 2;
	}

	if (r->allow || verdict == LISTS_ALLOW) {
		if (add_rule(r->set, trig, tlen, !wild, wild, r->source, true) != 0)
			return -1;
		r->rep->rules++;
		return 0;
	}
	rec.rdlength = (uint16_t)dl;
	rec.rdata = data;
	int rc = add_rpz(r->set, trig, tlen, wild, r->source, verdict, verdict == LISTS_LOCAL_DATA ? &rec : NULL);
	if (rc == RPZ_NOMEM)
		return -1;
	if (rc == RPZ_CONFLICT)
		return 1;
	r->rep->rules++;
	return 0;
}

/* Append a physical line to the logical record, without its comment,
 * counting parentheses outside quoted strings. */
static int rpz_append(struct rpz_state *st, const char *line, size_t len)
{
	bool q = false;
	size_t end = len;
	for (size_t k = 0; k < len; k++) {
		char c = line[k];
		if (q) {
			if (c == '\\' && k + 1 < len)
				k++;
			else if (c == '"')
				q = false;
			continue;
		}
		if (c == '"')
			q = true;
		else if (c == ';') {
			end = k;
			break;
		} else if (c == '(')
			st->depth++;
		else if (c == ')') {
			if (--st->depth < 0)
				st->rec_bad = true;
		}
	}
	if (q)
		st->rec_bad = true; /* strings do not span lines */
	if (st->rec_len + end + 2 > st->rec_cap) {
		size_t cap = st->rec_cap ? st->rec_cap : 256;
		while (cap < st->rec_len + end + 2)
			cap *= 2;
		char *n = realloc(st->rec, cap);
		if (n == NULL)
			return -1;
		st->rec = n;
		st->rec_cap = cap;
	}
	memcpy(st->rec + st->rec_len, line, end);
	st->rec_len += end;
	st->rec[st->rec_len++] = ' ';
	st->rec[st->rec_len] = '\0';
	return 0;
}

static void rpz_finish_record(struct reader *r, struct rpz_state *st)
{
	struct rpz_token tok[LISTS_MAX_TOKENS];
	int n = st->rec_bad ? -1 : rpz_tokenize(st->rec, tok, LISTS_MAX_TOKENS);
	int rc = n < 0 ? 1 : rpz_record(r, st, tok, n, st->rec_indented);
	if (rc < 0)
		r->nomem = true;
	else if (rc == 1)
		count_bad(r, st->rec_line);
	else if (rc == 2)
		r->rep->skipped++;
	st->rec_len = 0;
	st->depth = 0;
	st->rec_bad = false;
}

static int parse_rpz(struct reader *r)
{
	struct rpz_state *st = calloc(1, sizeof(*st));
	char *line;
	size_t len;
	int rc = 0;

	if (st == NULL) {
		r->nomem = true;
		return 0;
	}
	while (!r->nomem && (rc = next_line(r, &line, &len)) > 0) {
		/* A line with a NUL byte makes its record bad, in line order. */
		if (r->nul)
			len = strlen(line);
		if (st->depth == 0) {
			size_t k = 0;
			while (k < len && is_space(line[k]))
				k++;
			if (!r->nul && (k == len || line[k] == ';' || (k == 0 && line[0] == '#')))
				continue;
			st->rec_line = r->lineno;
			st->rec_indented = k > 0;
		}
		if (r->nul)
			st->rec_bad = true;
		if (rpz_append(st, line, len) != 0) {
			r->nomem = true;
			break;
		}
		if (st->depth <= 0)
			rpz_finish_record(r, st);
	}
	if (!r->nomem && st->depth > 0) {
		st->rec_bad = true; /* parentheses still open at the end */
		rpz_finish_record(r, st);
	}
	free(st->rec);
	free(st);
	return rc < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Public functions */

struct lists_set *lists_new(void)
{
	struct lists_set *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->slots = calloc(1024, sizeof(*s->slots));
	s->bloom = calloc(1024 / 16, sizeof(*s->bloom));
	s->slot_cap = 1024;
	struct lists_masks zero = { 0, 0, 0, 0 };
	if (s->slots == NULL || s->bloom == NULL || masks_intern(s, &zero) != 0) {
		lists_free(s);
		return NULL;
	}
	return s;
}

int lists_load_stream(struct lists_set *set, FILE *in, enum lists_format fmt, int source, bool allow,
                      struct lists_report *report)
{
	struct lists_report dummy;
	struct reader r = { .in = in, .set = set, .source = source, .allow = allow };
	char *line;
	size_t len;
	int rc = 0;

	r.rep = report ? report : &dummy;
	memset(r.rep, 0, sizeof(*r.rep));
	if (set == NULL || in == NULL || source < 0 || source >= LISTS_MAX_SOURCES || (unsigned)fmt > LISTS_RPZ)
		return -1;
	if (fmt == LISTS_RPZ) {
		rc = parse_rpz(&r);
	} else {
		while (!r.nomem && (rc = next_line(&r, &line, &len)) > 0) {
			if (r.nul)
				count_bad(&r, r.lineno);
			else if (fmt == LISTS_HOSTS)
				parse_hosts_line(&r, line);
			else if (fmt == LISTS_DOMAINS)
				parse_domains_line(&r, line);
			else
				parse_adblock_line(&r, line);
		}
	}
	free(r.buf);
	if (r.nomem) {
		errno = ENOMEM;
		return -1;
	}
	return rc < 0 ? -1 : 0;
}

int lists_load_file(struct lists_set *set, const char *path, enum lists_format fmt, int source, bool allow,
                    struct lists_report *report, char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (source < 0 || source >= LISTS_MAX_SOURCES) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: source %d out of range", path, source);
		return -1;
	}
	FILE *in = fopen(path, "r");
	if (in == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	int rc = lists_load_stream(set, in, fmt, source, allow, report);
	int e = errno;
	fclose(in);
	if (rc != 0 && err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: %s", path, strerror(e ? e : EIO));
	return rc;
}

int lists_add_name(struct lists_set *set, const char *name, bool subtree, int source, bool allow)
{
	uint8_t w[WIRE_MAX_NAME];
	bool wild;
	if (set == NULL || name == NULL || source < 0 || source >= LISTS_MAX_SOURCES)
		return -1;
	size_t wl = name_parse(name, strlen(name), true, w, &wild);
	if (wl == 0)
		return -1;
	return add_rule(set, w, wl, !wild, wild || subtree, source, allow);
}

static enum lists_verdict verdict_of(const struct lists_set *s, const struct lists_entry *e, uint64_t bits,
                                     bool below, struct lists_match *m)
{
	int src = __builtin_ctzll(bits);
	m->source = src;
	m->verdict = LISTS_BLOCK;
	for (uint32_t i = e->action; i != 0; i = s->actions[i - 1].next) {
		const struct lists_action *a = &s->actions[i - 1];
		if (a->source == src && a->below == below) {
			m->verdict = (enum lists_verdict)a->verdict;
			if (m->verdict == LISTS_LOCAL_DATA) {
				m->records = a->recs;
				m->record_count = a->nrec;
			}
			break;
		}
	}
	return m->verdict;
}

enum lists_verdict lists_match(const struct lists_set *set, const uint8_t *qname, size_t qname_len,
                               uint64_t source_mask, struct lists_match *match)
{
	struct lists_match dummy;
	struct lists_match *m = match ? match : &dummy;
	uint16_t off[LISTS_MAX_LABELS];
	const struct lists_entry *ent[LISTS_MAX_LABELS];
	unsigned nl = 0;

	m->verdict = LISTS_NONE;
	m->source = -1;
	m->records = NULL;
	m->record_count = 0;
	if (set == NULL || qname == NULL || qname_len == 0 || qname_len > WIRE_MAX_NAME || source_mask == 0)
		return LISTS_NONE;

	/* Label starts; a malformed name matches nothing. */
	size_t p = 0;
	while (p < qname_len && qname[p] != 0) {
		if (qname[p] > 63 || nl == LISTS_MAX_LABELS)
			return LISTS_NONE;
		off[nl++] = (uint16_t)p;
		p += (size_t)qname[p] + 1;
	}
	if (p != qname_len - 1 || nl == 0)
		return LISTS_NONE;

	/* Hash every suffix, from the shortest: the hash runs from the end.
	 * Suffixes with a label count no rule has are not looked up.  The slots
	 * of the others are prefetched together so that their cache misses
	 * overlap instead of following one another. */
	uint32_t hs[LISTS_MAX_LABELS];
	bool want[LISTS_MAX_LABELS];
	uint64_t h = HASH_SEED;
	for (unsigned k = nl; k-- > 0;) {
		unsigned depth = nl - k;
		h = hash_label(h, qname + off[k], qname + qname_len);
		hs[k] = hash_final(h);
		uint64_t bits = bloom_bits(hs[k]);
		want[k] = (set->depths[(depth - 1) / 64] >> ((depth - 1) % 64)) & 1;
		if (want[k])
			__builtin_prefetch(&set->slots[hs[k] & (set->slot_cap - 1)]);
		want[k] = want[k] && (set->bloom[bloom_word(set, hs[k])] & bits) == bits;
	}
	/* Find the slot whose hash matches for each suffix: the masks are in
	 * it.  Then read the names of those candidates from the arena, their
	 * misses overlapping too, to confirm them. */
	size_t smask = set->slot_cap - 1;
	for (unsigned k = 0; k < nl; k++) {
		ent[k] = NULL;
		if (!want[k])
			continue;
		for (size_t i = hs[k] & smask;; i = (i + 1) & smask) {
			const struct lists_entry *e = &set->slots[i];
			if (e->name_off == 0)
				break;
			if (e->hash == hs[k]) {
				ent[k] = e;
				__builtin_prefetch(set->arena + e->name_off);
				break;
			}
		}
	}
	for (unsigned k = 0; k < nl; k++) {
		const struct lists_entry *e = ent[k];
		if (e == NULL)
			continue;
		const uint8_t *n = set->arena + e->name_off;
		size_t len = qname_len - off[k];
		if (n[0] != len || memcmp(n + 1, qname + off[k], len) != 0)
			ent[k] = find_from(set, qname + off[k], len, hs[k], (size_t)(e - set->slots + 1) & smask);
	}

	/* Allow rules anywhere above or at the name win. */
	if (set->allow_any & source_mask) {
		for (unsigned k = 0; k < nl; k++) {
			if (ent[k] == NULL)
				continue;
			const struct lists_masks *mk = &set->masks[ent[k]->masks];
			uint64_t bits = (k == 0 ? mk->allow_exact : mk->allow_below) & source_mask;
			if (bits) {
				m->verdict = LISTS_ALLOW;
				m->source = __builtin_ctzll(bits);
				return LISTS_ALLOW;
			}
		}
	}
	/* Then the most specific blocking rule. */
	for (unsigned k = 0; k < nl; k++) {
		if (ent[k] == NULL)
			continue;
		const struct lists_masks *mk = &set->masks[ent[k]->masks];
		uint64_t bits = (k == 0 ? mk->block_exact : mk->block_below) & source_mask;
		if (bits)
			return verdict_of(set, ent[k], bits, k != 0, m);
	}
	return LISTS_NONE;
}

size_t lists_count(const struct lists_set *set)
{
	return set ? set->rules : 0;
}

size_t lists_bytes(const struct lists_set *set)
{
	if (set == NULL)
		return 0;
	size_t n = sizeof(*set) + set->slot_cap * sizeof(*set->slots) + set->slot_cap / 16 * 8 +
	           set->arena_cap + set->masks_cap * sizeof(*set->masks) +
	           set->mask_slot_cap * sizeof(*set->mask_slots) + set->actions_cap * sizeof(*set->actions) +
	           set->rdata_bytes;
	for (size_t i = 0; i < set->nactions; i++)
		n += set->actions[i].caprec * sizeof(struct lists_record);
	return n;
}

void lists_free(struct lists_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->nactions; i++) {
		for (unsigned k = 0; k < set->actions[i].nrec; k++)
			free((void *)set->actions[i].recs[k].rdata);
		free(set->actions[i].recs);
	}
	free(set->actions);
	free(set->slots);
	free(set->bloom);
	free(set->arena);
	free(set->masks);
	free(set->mask_slots);
	free(set);
}
