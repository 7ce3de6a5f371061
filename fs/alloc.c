/*
 * alloc: units from resource clusters (fs_internal.h "alloc";
 * docs/FORMAT.md sections 8.2 and 10; docs/DESIGN.md section 2).
 *
 * Authority (FORMAT 1.5, 10): a cluster's lock-record summary `type` says
 * whether the cluster is typed; inside a typed cluster the bitmap says
 * which units are allocated. units_free/units_total of a summary are hints;
 * the header's units_free is exact (journaled with the bitmap).
 *
 * Clusters per host. A host allocates only in clusters whose lock it holds
 * EXCLUSIVE, so hosts never contend on one bitmap. For each type (FILE,
 * META, INODE) we keep a current cluster. When it runs out we pick, in
 * this order: another cluster of that type we already hold; a typed
 * cluster whose summary shows free units and whose lock we can get; a FREE
 * cluster, which we type. The scan for a new cluster starts at an offset
 * derived from our slot, so hosts that start together spread out instead
 * of all trying cluster 0 first. After locking a cluster we re-read its
 * summary from the record: our cached table may be older than the lock.
 *
 * Typing (FORMAT 10, in this order): 1. summary type by compare-and-write
 * of the lock record (lockd_set_payload); 2. header, every bitmap block
 * (header units set) and, for FILE, every refcount block (zero), through
 * the journal. Until that transaction commits the header does not decode,
 * and a typed summary over a header that does not decode (or decodes as
 * another type) counts as free: whoever holds the lock types it again.
 * type_gen = the old header's + 1 when the old header decodes for this
 * volume, else 1.
 *
 * Search: first fit from the hint (the caller's, if it falls in a cluster
 * we hold of that type, else the header's alloc_hint), wrapping once, with
 * word-level scans of each bitmap block (never bit by bit over the whole
 * bitmap). For FILE units (VM images want long extents) the search goes on
 * past short runs looking for `want` contiguous units and falls back to the
 * longest run seen; META and INODE take the first free run.
 *
 * Free: the address must lie in the data region, in a cluster of the given
 * type, aligned to its unit and past its header area (else -EUCLEAN); every
 * unit of the range must be allocated (a clear bit is a double free:
 * -EUCLEAN, nothing changed). FILE units with a reference count above one
 * (refcount extra > 0) lose a reference instead of being freed, so callers
 * free shared blocks (snapshots, clones) without knowing they are shared.
 *
 * A cluster whose units are all free is NOT made FREE again here: the
 * summary is written by compare-and-write at once, while the frees are only
 * durable when the journal commits. Untyping before that commit could let
 * another host retype a cluster whose bitmap, after a crash and replay,
 * still shows allocated units. (A later issue can untype after commit.)
 *
 * Summaries of the clusters we hold are pushed (cheap CAW) at most every
 * ALLOC_SUMMARY_PUSH_NS and at alloc_close. alloc_stats works from a cached
 * copy of the whole summary table, re-read at most once per
 * ALLOC_SUMMARY_REFRESH_NS, with our exact counts for the clusters we hold.
 *
 * Coherence: when we lock a cluster we did not hold, our metadata cache may
 * hold clean copies of its blocks from before another host changed them, so
 * the clean part of the cache is dropped (rare: once per cluster taken).
 *
 * Losing clusters (fs/cluster.c): another host may ask for a cluster we
 * hold at any time between two calls; the release callback (under
 * meta_lock, after jnl_flush_home) gives it up with alloc_cluster_giveup,
 * and the next allocation just picks again. A free in a cluster another
 * host holds asks for it (lockd_lock_wait); picking a cluster to allocate
 * from never waits, it tries the next. Operations that change refcounts in
 * many clusters (clones, snapshots: fs/snap.c) take those clusters before
 * meta_lock, in index order, and pin them (alloc_clusters_pin): a pinned
 * cluster is not given up until the operation ends (DESIGN 8.4). While we recover a dead host, its
 * clusters are borrowed (its slot is RECOVERING: nobody else can take
 * them) for the frees of its orphans, never allocated from, and forgotten
 * at alloc_recover_end.
 *
 * Locking: vol.meta_lock is held by every caller that changes anything; the
 * allocator's own mutex (a.mu) also covers alloc_ref_get, alloc_ref_peek,
 * alloc_stats and the pins. Lock order: (cluster pins, taken without
 * either) < meta_lock < a.mu < lockd < mcache.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_internal.h"
#include "lunfs/cluster.h"
#include "lunfs/lock.h"
#include "lunfs/lockd.h"

#define ALLOC_NTYPES 4u  /* indexed by enum lunfs_cluster_type */
#define ALLOC_NONE UINT64_MAX
#define ALLOC_SUMMARY_REFRESH_NS 1000000000ull
#define ALLOC_SUMMARY_PUSH_NS 5000000000ull
/* Bytes of the cluster table read per I/O at open and refresh. */
#define ALLOC_TABLE_CHUNK (4u << 20)
#define ALLOC_PICK_RETRIES 8u

struct alloc_cl {
	uint8_t type;           /* summary type as last seen (ours: exact) */
	bool held;              /* we hold its lock EXCLUSIVE (or borrow it) */
	bool borrowed;          /* held only by recovery: the dead host's lock */
	bool typed_ok;          /* held: its header decodes with `type` */
	bool summary_dirty;     /* held: units_free differs from the record's */
	uint32_t pins;          /* operations that need it now (alloc_clusters_pin):
	                         * while > 0 it is not given up */
	uint64_t units_total;
	uint64_t units_free;    /* held: exact (the header's); else the hint */
};

struct alloc_busy {
	uint64_t ci;            /* cluster */
	uint64_t u, n;          /* units [u, u + n) */
	uint64_t seq;           /* journal transaction that freed them */
};

struct alloc {
	struct lunfs_vol *v;
	pthread_mutex_t mu;
	uint64_t ncl;
	struct alloc_cl *cl;            /* ncl entries */
	uint64_t cur[ALLOC_NTYPES];     /* current cluster per type, ALLOC_NONE */
	uint64_t refreshed_ns;          /* table last read (CLOCK_MONOTONIC) */
	uint64_t pushed_ns;             /* summaries last pushed */
	struct lunfs_cluster_hdr geo[ALLOC_NTYPES]; /* geometry per type */
	uint32_t recover_slot;          /* slot being recovered, or UINT32_MAX */
	struct lunfs_bitmap bm;         /* scratch */
	struct lunfs_refcount rc;       /* scratch */
	/* File blocks freed by transactions that have not committed yet. They
	 * are not handed out again until then: data written into a reused
	 * block goes straight to the disk, and a crash before the commit
	 * would undo the free and give the old file the new file's bytes
	 * (ext4 keeps such blocks back for the same reason). */
	struct alloc_busy *busy;
	size_t nbusy, busy_cap;
};

static uint64_t alloc_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool alloc_type_ok(uint8_t type)
{
	return type == LUNFS_CLUSTER_FILE || type == LUNFS_CLUSTER_META || type == LUNFS_CLUSTER_INODE;
}

/* ---- the summary table ------------------------------------------------- */

/* Read every cluster lock record (in chunks) and refresh the summaries of
 * the clusters we do not hold. */
static int alloc_table_read(struct alloc *a)
{
	const struct lunfs_super *sb = &a->v->sb;
	uint64_t ss = sb->sector_size;
	uint64_t per = ALLOC_TABLE_CHUNK / ss;
	uint8_t *buf = dev_buf_alloc((size_t)(per * ss));
	int err = 0;

	if (buf == NULL) {
		return -ENOMEM;
	}
	for (uint64_t first = 0; first < a->ncl; first += per) {
		uint64_t n = a->ncl - first < per ? a->ncl - first : per;

		err = dev_read(a->v->dev, buf, (size_t)(n * ss), layout_cluster_lock_addr(sb, first));
		if (err < 0) {
			goto out;
		}
		for (uint64_t i = 0; i < n; i++) {
			struct alloc_cl *c = &a->cl[first + i];
			struct lunfs_cluster_summary s;
			struct lunfs_lock l;
			int dr;

			if (c->held) {
				continue;
			}
			dr = lock_decode(&a->v->codec, buf + i * ss, layout_cluster_lock_addr(sb, first + i), &l);
			if (dr == 0) {
				lock_summary_get(&l, &s);
			} else {
				/* Never written, stale, or corrupt: FREE by
				 * the format's rule for the first two; a
				 * corrupt record is never taken (lockd says
				 * -EUCLEAN), so its capacity hardly matters. */
				memset(&s, 0, sizeof(s));
			}
			c->type = alloc_type_ok(s.type) ? s.type : LUNFS_CLUSTER_FREE;
			c->units_total = s.units_total;
			c->units_free = s.units_free;
		}
	}
	a->refreshed_ns = alloc_mono_ns();
out:
	dev_buf_free(buf);
	return err;
}

/* Write the summary of a held cluster (type and exact units_free). */
static int alloc_summary_push(struct alloc *a, uint64_t ci)
{
	struct alloc_cl *c = &a->cl[ci];
	uint64_t laddr = layout_cluster_lock_addr(&a->v->sb, ci);
	struct lunfs_cluster_summary s;
	struct lunfs_lock l;
	int err;

	err = lockd_read(a->v->ld, laddr, &l);
	if (err < 0) {
		return err;
	}
	memset(&s, 0, sizeof(s));
	s.type = c->type;
	s.units_total = c->units_total;
	s.units_free = c->units_free;
	s.updated_seq = l.version + 1;
	lock_summary_set(&l, &s);
	err = lockd_set_payload(a->v->ld, laddr, l.payload);
	if (err == 0) {
		c->summary_dirty = false;
	}
	return err;
}

static void alloc_summaries_push(struct alloc *a, bool force)
{
	uint64_t now = alloc_mono_ns();

	if (!force && now - a->pushed_ns < ALLOC_SUMMARY_PUSH_NS) {
		return;
	}
	a->pushed_ns = now;
	for (uint64_t i = 0; i < a->ncl; i++) {
		if (a->cl[i].held && a->cl[i].summary_dirty) {
			/* A hint: a failure only leaves it stale. */
			(void)alloc_summary_push(a, i);
		}
	}
}

/* ---- cluster metadata through the mcache ------------------------------ */

static uint64_t alloc_cl_start(const struct alloc *a, uint64_t ci)
{
	return layout_cluster_addr(&a->v->sb, ci);
}

static uint64_t alloc_bm_addr(const struct alloc *a, uint64_t ci, uint64_t b)
{
	return alloc_cl_start(a, ci) + (1u + b) * LUNFS_META_BLOCK_SIZE;
}

static uint64_t alloc_rc_addr(const struct alloc *a, uint64_t ci, const struct lunfs_cluster_hdr *h,
			      uint64_t r)
{
	return alloc_cl_start(a, ci) + (1u + (uint64_t)h->bitmap_blocks + r) * LUNFS_META_BLOCK_SIZE;
}

/* Decode the header of cluster ci; checks it against the volume. */
static int alloc_hdr_read(struct alloc *a, uint64_t ci, struct lunfs_cluster_hdr *h)
{
	struct mc_entry *e;
	int err;

	err = mc_get(a->v->mc, alloc_cl_start(a, ci), LUNFS_META_BLOCK_SIZE, 0, &e);
	if (err < 0) {
		return err;
	}
	err = cluster_hdr_decode(&a->v->codec, e->buf, e->addr, h);
	mc_put(a->v->mc, e);
	if (err < 0) {
		return err;
	}
	if (h->cluster_index != ci || (uint64_t)h->units_total * h->unit_size != a->v->sb.cluster_size ||
	    h->unit_size != a->geo[h->type].unit_size) {
		return -EUCLEAN;
	}
	return 0;
}

static int alloc_hdr_write(struct alloc *a, struct jnl_handle *h, uint64_t ci,
			   const struct lunfs_cluster_hdr *hdr)
{
	struct mc_entry *e;
	int err;

	err = mc_get(a->v->mc, alloc_cl_start(a, ci), LUNFS_META_BLOCK_SIZE, 0, &e);
	if (err < 0) {
		return err;
	}
	err = jnl_dirty(h, e);
	if (err == 0) {
		cluster_hdr_encode(&a->v->codec, hdr, e->addr, e->buf);
	}
	mc_put(a->v->mc, e);
	return err;
}

/* Decode bitmap block b of cluster ci into a->bm. */
static int alloc_bm_load(struct alloc *a, uint64_t ci, uint64_t b, struct mc_entry *e)
{
	int err = bitmap_decode(&a->v->codec, e->buf, e->addr, &a->bm);

	if (err < 0) {
		return -EUCLEAN; /* a typed cluster's bitmap must decode, whatever the reason */
	}
	if (a->bm.cluster_index != ci || a->bm.first_unit != b * LUNFS_BITMAP_BITS) {
		return -EUCLEAN;
	}
	return 0;
}

/* ---- bitmap search (word level) ---------------------------------------- */

/* A cursor over the bitmap of one cluster: keeps one decoded block. */
struct alloc_cursor {
	struct alloc *a;
	uint64_t ci;
	uint64_t block;          /* decoded block in a->bm, or ALLOC_NONE */
	bool mask_busy;          /* searching: busy units count as allocated */
};

/* Forget busy ranges whose freeing transaction has committed; with the
 * discard mount option, tell the device they are unused first. Only now:
 * the commit is durable (its flush has returned), so no crash can bring
 * the freed blocks back into a file whose data a discard would have
 * destroyed. A block reallocated later shows nothing of what a discard
 * left there: its unwritten chunks read as zeros (the map's written
 * bits). A discard that fails (not supported, or refused by the write
 * gate) costs nothing but the space hint. */
static void alloc_busy_prune(struct alloc *a)
{
	uint64_t running = jnl_running_seq(a->v->jnl);
	uint64_t unit = a->geo[LUNFS_CLUSTER_FILE].unit_size;
	size_t k = 0;

	for (size_t i = 0; i < a->nbusy; i++) {
		const struct alloc_busy *r = &a->busy[i];

		if (r->seq >= running) {
			a->busy[k++] = *r;
		} else if (a->v->opts.discard && unit != 0) {
			(void)dev_discard(a->v->dev, alloc_cl_start(a, r->ci) + r->u * unit, r->n * unit);
		}
	}
	a->nbusy = k;
}

void alloc_busy_release(struct alloc *a)
{
	pthread_mutex_lock(&a->mu);
	alloc_busy_prune(a);
	pthread_mutex_unlock(&a->mu);
}

void alloc_busy_release_all(struct alloc *a)
{
	uint64_t unit = a->geo[LUNFS_CLUSTER_FILE].unit_size;

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->nbusy && a->v->opts.discard && unit != 0; i++) {
		const struct alloc_busy *r = &a->busy[i];

		(void)dev_discard(a->v->dev, alloc_cl_start(a, r->ci) + r->u * unit, r->n * unit);
	}
	a->nbusy = 0;
	pthread_mutex_unlock(&a->mu);
}

static int alloc_busy_add(struct alloc *a, uint64_t ci, uint64_t u, uint64_t n)
{
	uint64_t seq = jnl_running_seq(a->v->jnl);

	if (a->nbusy > 0) {
		struct alloc_busy *l = &a->busy[a->nbusy - 1];

		if (l->ci == ci && l->seq == seq && l->u + l->n == u) {
			l->n += n;
			return 0;
		}
	}
	if (a->nbusy == a->busy_cap) {
		size_t cap = a->busy_cap ? 2 * a->busy_cap : 64;
		struct alloc_busy *nb = realloc(a->busy, cap * sizeof(*nb));

		if (nb == NULL) {
			return -ENOMEM;
		}
		a->busy = nb;
		a->busy_cap = cap;
	}
	a->busy[a->nbusy++] = (struct alloc_busy){ .ci = ci, .u = u, .n = n, .seq = seq };
	return 0;
}

/* Mark the busy units of the decoded bitmap block as allocated (in the
 * scratch copy only: it is never encoded back from a search). */
static void alloc_busy_mask(struct alloc *a, uint64_t ci, uint64_t b)
{
	uint64_t first = b * LUNFS_BITMAP_BITS, last = first + LUNFS_BITMAP_BITS;

	for (size_t i = 0; i < a->nbusy; i++) {
		const struct alloc_busy *r = &a->busy[i];
		uint64_t lo, hi;

		if (r->ci != ci || r->u >= last || r->u + r->n <= first) {
			continue;
		}
		lo = r->u > first ? r->u : first;
		hi = r->u + r->n < last ? r->u + r->n : last;
		for (uint64_t x = lo - first; x < hi - first; x++) {
			a->bm.words[x / 64u] |= 1ull << (x % 64u);
		}
	}
}

bool alloc_busy_pending(struct alloc *a)
{
	bool pending;

	pthread_mutex_lock(&a->mu);
	alloc_busy_prune(a);
	pending = a->nbusy > 0;
	pthread_mutex_unlock(&a->mu);
	return pending;
}

static int alloc_cursor_at(struct alloc_cursor *cu, uint64_t u)
{
	uint64_t b = u / LUNFS_BITMAP_BITS;
	struct mc_entry *e;
	int err;

	if (cu->block == b) {
		return 0;
	}
	cu->block = ALLOC_NONE;
	err = mc_get(cu->a->v->mc, alloc_bm_addr(cu->a, cu->ci, b), LUNFS_META_BLOCK_SIZE, 0, &e);
	if (err < 0) {
		return err;
	}
	err = alloc_bm_load(cu->a, cu->ci, b, e);
	mc_put(cu->a->v->mc, e);
	if (err == 0) {
		if (cu->mask_busy) {
			alloc_busy_mask(cu->a, cu->ci, b);
		}
		cu->block = b;
	}
	return err;
}

/* First clear bit in [u, end), or end. */
static int alloc_find_clear(struct alloc_cursor *cu, uint64_t u, uint64_t end, uint64_t *out)
{
	while (u < end) {
		uint64_t first, w, bit;
		int err = alloc_cursor_at(cu, u);

		if (err < 0) {
			return err;
		}
		first = cu->block * LUNFS_BITMAP_BITS;
		w = (u - first) / 64u;
		bit = (u - first) % 64u;
		for (; w < LUNFS_BITMAP_WORDS; w++, bit = 0) {
			uint64_t free_bits = ~cu->a->bm.words[w] & (~0ull << bit);

			if (free_bits != 0) {
				uint64_t f = first + w * 64u + (uint64_t)__builtin_ctzll(free_bits);

				*out = f < end ? f : end;
				return 0;
			}
			if (first + (w + 1) * 64u >= end) {
				*out = end;
				return 0;
			}
		}
		u = first + LUNFS_BITMAP_BITS;
	}
	*out = end;
	return 0;
}

/* Length of the run of clear bits starting at u (u clear), at most max,
 * not past end. */
static int alloc_clear_run(struct alloc_cursor *cu, uint64_t u, uint64_t end, uint64_t max,
			   uint64_t *len)
{
	uint64_t n = 0;

	while (u + n < end && n < max) {
		uint64_t p = u + n, first, w, bit, set;
		int err = alloc_cursor_at(cu, p);

		if (err < 0) {
			return err;
		}
		first = cu->block * LUNFS_BITMAP_BITS;
		w = (p - first) / 64u;
		bit = (p - first) % 64u;
		set = cu->a->bm.words[w] >> bit;
		if (set != 0) {
			n += (uint64_t)__builtin_ctzll(set);
			break;
		}
		n += 64u - bit;
	}
	if (u + n > end) {
		n = end - u;
	}
	*len = n < max ? n : max;
	return 0;
}

/* Find a run in [from, end): the first one for META/INODE; for FILE the
 * first of `want` units, else the longest. *len = 0 if none. */
static int alloc_search(struct alloc_cursor *cu, uint8_t type, uint64_t from, uint64_t end,
			uint64_t want, uint64_t *start, uint64_t *len)
{
	uint64_t u = from;

	while (u < end) {
		uint64_t f, n;
		int err = alloc_find_clear(cu, u, end, &f);

		if (err < 0) {
			return err;
		}
		if (f >= end) {
			break;
		}
		err = alloc_clear_run(cu, f, end, want, &n);
		if (err < 0) {
			return err;
		}
		if (n > *len) {
			*start = f;
			*len = n;
		}
		if (n >= want || type != LUNFS_CLUSTER_FILE) {
			break;
		}
		u = f + n;
	}
	return 0;
}

/* Set (on) or clear bits [u, u+n) of cluster ci through the journal. */
static int alloc_bits_change(struct alloc *a, struct jnl_handle *h, uint64_t ci, uint64_t u,
			     uint64_t n, bool on)
{
	while (n > 0) {
		uint64_t b = u / LUNFS_BITMAP_BITS;
		uint64_t first = b * LUNFS_BITMAP_BITS;
		uint64_t k = first + LUNFS_BITMAP_BITS - u < n ? first + LUNFS_BITMAP_BITS - u : n;
		struct mc_entry *e;
		int err;

		err = mc_get(a->v->mc, alloc_bm_addr(a, ci, b), LUNFS_META_BLOCK_SIZE, 0, &e);
		if (err < 0) {
			return err;
		}
		err = alloc_bm_load(a, ci, b, e);
		if (err == 0) {
			err = jnl_dirty(h, e);
		}
		if (err < 0) {
			mc_put(a->v->mc, e);
			return err;
		}
		for (uint64_t i = u - first; i < u - first + k; i++) {
			if (on) {
				a->bm.words[i / 64u] |= 1ull << (i % 64u);
			} else {
				a->bm.words[i / 64u] &= ~(1ull << (i % 64u));
			}
		}
		bitmap_encode(&a->v->codec, &a->bm, e->addr, e->buf);
		mc_put(a->v->mc, e);
		u += k;
		n -= k;
	}
	return 0;
}

/* Are all bits [u, u+n) of cluster ci set? */
static int alloc_bits_all_set(struct alloc *a, uint64_t ci, uint64_t u, uint64_t n, bool *all)
{
	struct alloc_cursor cu = { .a = a, .ci = ci, .block = ALLOC_NONE };
	uint64_t f;
	int err = alloc_find_clear(&cu, u, u + n, &f);

	if (err < 0) {
		return err;
	}
	*all = f >= u + n;
	return 0;
}

/* ---- taking and typing clusters ----------------------------------------- */

/* Format cluster ci as `type` (we hold its lock): summary first, then the
 * header area through the journal. */
static int alloc_cluster_type(struct alloc *a, struct jnl_handle *h, uint64_t ci, uint8_t type,
			      struct lunfs_cluster_hdr *out)
{
	struct lunfs_cluster_hdr hdr = a->geo[type], old;
	struct alloc_cl *c = &a->cl[ci];
	struct mc_entry *e;
	int err;

	c->type = type;
	c->units_total = hdr.units_total;
	c->units_free = hdr.units_free;
	c->typed_ok = false;
	err = alloc_summary_push(a, ci);
	if (err < 0) {
		return err;
	}
	hdr.cluster_index = ci;
	hdr.cluster_start = alloc_cl_start(a, ci);
	hdr.type_gen = 1;
	err = mc_get(a->v->mc, hdr.cluster_start, LUNFS_META_BLOCK_SIZE, 0, &e);
	if (err < 0) {
		return err;
	}
	if (cluster_hdr_decode(&a->v->codec, e->buf, e->addr, &old) == 0) {
		hdr.type_gen = old.type_gen + 1;
	}
	mc_put(a->v->mc, e);
	err = alloc_hdr_write(a, h, ci, &hdr);
	if (err < 0) {
		return err;
	}
	for (uint64_t b = 0; b < hdr.bitmap_blocks; b++) {
		uint64_t first = b * LUNFS_BITMAP_BITS;

		err = mc_get(a->v->mc, alloc_bm_addr(a, ci, b), LUNFS_META_BLOCK_SIZE, MC_NOREAD, &e);
		if (err < 0) {
			return err;
		}
		err = jnl_dirty(h, e);
		if (err == 0) {
			memset(&a->bm, 0, sizeof(a->bm));
			a->bm.cluster_index = ci;
			a->bm.first_unit = first;
			for (uint64_t u = first; u < hdr.header_units && u < first + LUNFS_BITMAP_BITS; u++) {
				a->bm.words[(u - first) / 64u] |= 1ull << ((u - first) % 64u);
			}
			bitmap_encode(&a->v->codec, &a->bm, e->addr, e->buf);
		}
		mc_put(a->v->mc, e);
		if (err < 0) {
			return err;
		}
	}
	for (uint64_t r = 0; r < hdr.refcount_blocks; r++) {
		err = mc_get(a->v->mc, alloc_rc_addr(a, ci, &hdr, r), LUNFS_META_BLOCK_SIZE, MC_NOREAD, &e);
		if (err < 0) {
			return err;
		}
		err = jnl_dirty(h, e);
		if (err == 0) {
			memset(&a->rc, 0, sizeof(a->rc));
			a->rc.cluster_index = ci;
			a->rc.first_unit = r * LUNFS_REFCOUNTS_PER_BLOCK;
			refcount_encode(&a->v->codec, &a->rc, e->addr, e->buf);
		}
		mc_put(a->v->mc, e);
		if (err < 0) {
			return err;
		}
	}
	c->typed_ok = true;
	*out = hdr;
	return 0;
}

/* We hold cluster ci's lock now (or borrow it): learn its true state.
 * a.mu held. On error the lock is given back (unless borrowed). */
static int alloc_cluster_adopt(struct alloc *a, uint64_t ci, bool borrowed)
{
	struct alloc_cl *c = &a->cl[ci];
	uint64_t laddr = layout_cluster_lock_addr(&a->v->sb, ci);
	struct lunfs_cluster_summary s;
	struct lunfs_cluster_hdr hdr;
	struct lunfs_lock l;
	int err;

	/* Another host may have changed the cluster since we cached it. */
	mc_drop_clean(a->v->mc);
	err = lockd_read(a->v->ld, laddr, &l);
	if (err < 0) {
		if (!borrowed) {
			(void)lockd_unlock(a->v->ld, laddr);
		}
		return err;
	}
	lock_summary_get(&l, &s);
	c->held = true;
	c->borrowed = borrowed;
	c->summary_dirty = false;
	c->typed_ok = false;
	c->type = alloc_type_ok(s.type) ? s.type : LUNFS_CLUSTER_FREE;
	c->units_total = s.units_total;
	c->units_free = s.units_free;
	if (c->type != LUNFS_CLUSTER_FREE) {
		/* Typed, but typing committed only if the header says so. */
		if (alloc_hdr_read(a, ci, &hdr) == 0 && hdr.type == c->type) {
			c->typed_ok = true;
			c->units_total = hdr.units_total;
			c->units_free = hdr.units_free;
			c->summary_dirty = hdr.units_free != s.units_free || hdr.units_total != s.units_total;
		}
	}
	return 0;
}

/* Lock cluster ci (if we do not hold it) and learn its true state. With
 * `wait`, a live holder is asked to give it up (a free must reach the
 * cluster its block lies in); without, a held cluster is -EBUSY (picking
 * one to allocate from: try another). During recovery the dead host's
 * clusters are borrowed: its slot is RECOVERING, so nobody else can take
 * them, and we are the one recoverer (lockd/recover.c). a.mu held (a wait
 * under it is the fallback of alloc_clusters_pin, see there). */
static int alloc_cluster_take(struct alloc *a, uint64_t ci, bool wait)
{
	struct alloc_cl *c = &a->cl[ci];
	uint64_t laddr = layout_cluster_lock_addr(&a->v->sb, ci);
	uint32_t holder = UINT32_MAX;
	bool borrowed = false;
	int err;

	if (c->held) {
		return 0;
	}
	err = lockd_lock(a->v->ld, laddr, LUNFS_LOCK_KIND_CLUSTER, ci, LUNFS_LOCK_EXCLUSIVE, &holder);
	if (err == -EBUSY && holder == a->recover_slot) {
		borrowed = true;
		err = 0;
	} else if (err == -EBUSY && wait) {
		err = lockd_lock_wait(a->v->ld, laddr, LUNFS_LOCK_KIND_CLUSTER, ci, LUNFS_LOCK_EXCLUSIVE,
				      cluster_wait_ms(a->v), NULL);
	}
	if (err < 0) {
		return err;
	}
	return alloc_cluster_adopt(a, ci, borrowed);
}

static void alloc_cluster_release(struct alloc *a, uint64_t ci)
{
	struct alloc_cl *c = &a->cl[ci];

	if (!c->held) {
		return;
	}
	if (!c->borrowed) {
		if (c->summary_dirty) {
			(void)alloc_summary_push(a, ci);
		}
		(void)lockd_unlock(a->v->ld, layout_cluster_lock_addr(&a->v->sb, ci));
	}
	c->held = false;
	c->borrowed = false;
	c->typed_ok = false;
	c->summary_dirty = false;
	for (unsigned t = 0; t < ALLOC_NTYPES; t++) {
		if (a->cur[t] == ci) {
			a->cur[t] = ALLOC_NONE;
		}
	}
}

/* Make a cluster with free units of `type` current. */
static int alloc_pick(struct alloc *a, struct jnl_handle *h, uint8_t type)
{
	uint64_t n = a->ncl;
	uint64_t start = n * lockd_slot(a->v->ld) / (a->v->sb.max_hosts ? a->v->sb.max_hosts : 1);
	struct lunfs_cluster_hdr hdr;
	int err;

	/* 1. One we hold already. */
	for (uint64_t i = 0; i < n; i++) {
		struct alloc_cl *c = &a->cl[i];

		if (c->held && !c->borrowed && c->typed_ok && c->type == type && c->units_free > 0) {
			a->cur[type] = i;
			return 0;
		}
	}
	/* 2. A typed one with free units (by its summary); 3. a free one. */
	for (unsigned pass = 0; pass < 2; pass++) {
		for (uint64_t k = 0; k < n; k++) {
			uint64_t i = (start + k) % n;
			struct alloc_cl *c = &a->cl[i];

			if (c->pins > 0 && !c->held) {
				continue; /* alloc_clusters_pin is taking it */
			}
			if (c->held) {
				/* Held clusters of this type are full; held
				 * free ones (typing never committed) can be
				 * typed in pass 2. Never allocate from a
				 * borrowed one: it goes back when recovery
				 * ends. */
				if (pass == 1 && !c->typed_ok && !c->borrowed) {
					goto type_it;
				}
				continue;
			}
			if (pass == 0 && !(c->type == type && c->units_free > 0)) {
				continue;
			}
			if (pass == 1 && c->type != LUNFS_CLUSTER_FREE) {
				continue;
			}
			err = alloc_cluster_take(a, i, false);
			if (err == -EBUSY || err == -EUCLEAN) {
				continue;
			}
			if (err < 0) {
				return err;
			}
			if (c->borrowed) {
				continue;
			}
			if (c->typed_ok && c->type == type && c->units_free > 0) {
				a->cur[type] = i;
				return 0;
			}
			if (c->typed_ok) {
				/* Not what the cached summary promised (an
				 * operation here may want it all the same). */
				if (c->pins == 0) {
					alloc_cluster_release(a, i);
				}
				continue;
			}
			/* A FREE cluster, or a typed one whose typing never
			 * committed (its header does not say so): ours to
			 * type now that we hold it. */
type_it:
			err = alloc_cluster_type(a, h, i, type, &hdr);
			if (err < 0) {
				return err;
			}
			a->cur[type] = i;
			return 0;
		}
	}
	return -ENOSPC;
}

/* Try to allocate from held cluster ci. -ENOSPC if it has nothing. */
static int alloc_from(struct alloc *a, struct jnl_handle *h, uint64_t ci, uint8_t type,
		      uint64_t want, uint64_t hint, uint64_t *addr, uint64_t *got)
{
	struct alloc_cursor cu = { .a = a, .ci = ci, .block = ALLOC_NONE,
				   .mask_busy = type == LUNFS_CLUSTER_FILE };
	struct alloc_cl *c = &a->cl[ci];
	struct lunfs_cluster_hdr hdr;
	uint64_t from, start = 0, len = 0, cs = alloc_cl_start(a, ci);
	int err;

	if (cu.mask_busy) {
		alloc_busy_prune(a);
	}

	err = alloc_hdr_read(a, ci, &hdr);
	if (err < 0) {
		return err;
	}
	if (hdr.type != type) {
		return -EUCLEAN;
	}
	c->units_free = hdr.units_free;
	if (hdr.units_free == 0) {
		return -ENOSPC;
	}
	from = hdr.alloc_hint;
	if (hint >= cs && hint - cs < a->v->sb.cluster_size) {
		from = (hint - cs) / hdr.unit_size;
	}
	if (from < hdr.header_units || from >= hdr.units_total) {
		from = hdr.header_units;
	}
	err = alloc_search(&cu, type, from, hdr.units_total, want, &start, &len);
	if (err == 0 && len < want && from > hdr.header_units) {
		uint64_t s2 = 0, l2 = 0;

		err = alloc_search(&cu, type, hdr.header_units, from, want, &s2, &l2);
		if (err == 0 && l2 > len) {
			start = s2;
			len = l2;
		}
	}
	if (err < 0) {
		return err;
	}
	if (len == 0) {
		/* Every free unit is busy (freed by an uncommitted
		 * transaction); otherwise units_free lies about the bitmap. */
		return cu.mask_busy && a->nbusy > 0 ? -ENOSPC : -EUCLEAN;
	}
	if (len > hdr.units_free) {
		return -EUCLEAN;
	}
	err = alloc_bits_change(a, h, ci, start, len, true);
	if (err < 0) {
		return err;
	}
	hdr.units_free -= len;
	hdr.alloc_hint = start + len < hdr.units_total ? start + len : hdr.header_units;
	err = alloc_hdr_write(a, h, ci, &hdr);
	if (err < 0) {
		return err;
	}
	c->units_free = hdr.units_free;
	c->summary_dirty = true;
	*addr = cs + start * hdr.unit_size;
	*got = len;
	return 0;
}

int alloc_units(struct alloc *a, struct jnl_handle *h, uint8_t type, uint64_t want,
		uint64_t hint, uint64_t *addr, uint64_t *got)
{
	int err = -ENOSPC;

	if (!alloc_type_ok(type) || want == 0) {
		return -EINVAL;
	}
	err = lockd_check_lease(a->v->ld);
	if (err < 0) {
		return err;
	}
	if (want > a->geo[type].units_total) {
		want = a->geo[type].units_total;
	}
	pthread_mutex_lock(&a->mu);
	/* A hint inside another held cluster of this type wins over the
	 * current one: keep things near what they belong to. */
	if (hint != 0) {
		const struct lunfs_region *d = &a->v->sb.regions[LUNFS_REGION_DATA];

		if (hint >= d->offset && (hint - d->offset) / a->v->sb.cluster_size < a->ncl) {
			uint64_t ci = (hint - d->offset) / a->v->sb.cluster_size;
			struct alloc_cl *c = &a->cl[ci];

			if (c->held && !c->borrowed && c->typed_ok && c->type == type &&
			    c->units_free > 0) {
				err = alloc_from(a, h, ci, type, want, hint, addr, got);
				if (err != -ENOSPC) {
					goto out;
				}
			}
		}
	}
	for (unsigned attempt = 0; attempt < ALLOC_PICK_RETRIES + a->ncl; attempt++) {
		if (a->cur[type] == ALLOC_NONE) {
			err = alloc_pick(a, h, type);
			if (err < 0) {
				goto out;
			}
		}
		err = alloc_from(a, h, a->cur[type], type, want, hint, addr, got);
		if (err != -ENOSPC) {
			goto out;
		}
		a->cur[type] = ALLOC_NONE;
	}
	err = -ENOSPC;
out:
	if (err == 0) {
		alloc_summaries_push(a, false);
	}
	pthread_mutex_unlock(&a->mu);
	return err;
}

/* Where is addr? Cluster, header, unit. -EUCLEAN for anything that is not
 * a unit of a typed cluster of `type` past its header area. Locks the
 * cluster if we do not hold it. */
static int alloc_locate(struct alloc *a, uint8_t type, uint64_t addr, uint64_t count,
			uint64_t *ci, struct lunfs_cluster_hdr *hdr, uint64_t *u)
{
	const struct lunfs_super *sb = &a->v->sb;
	const struct lunfs_region *d = &sb->regions[LUNFS_REGION_DATA];
	uint64_t off;
	int err;

	if (!alloc_type_ok(type) || addr < d->offset || (addr - d->offset) / sb->cluster_size >= a->ncl) {
		return -EUCLEAN;
	}
	*ci = (addr - d->offset) / sb->cluster_size;
	off = (addr - d->offset) % sb->cluster_size;
	if (off % a->geo[type].unit_size != 0) {
		return -EUCLEAN;
	}
	err = alloc_cluster_take(a, *ci, true);
	if (err < 0) {
		return err;
	}
	if (!a->cl[*ci].typed_ok || a->cl[*ci].type != type) {
		return -EUCLEAN;
	}
	err = alloc_hdr_read(a, *ci, hdr);
	if (err < 0) {
		return err;
	}
	if (hdr->type != type) {
		return -EUCLEAN;
	}
	*u = off / hdr->unit_size;
	if (*u < hdr->header_units || count > hdr->units_total - *u) {
		return -EUCLEAN;
	}
	return 0;
}

/* Refcount counter of unit u (FILE): read it, and optionally its entry. */
static int alloc_rc_entry(struct alloc *a, uint64_t ci, const struct lunfs_cluster_hdr *hdr,
			  uint64_t u, struct mc_entry **out)
{
	uint64_t r = u / LUNFS_REFCOUNTS_PER_BLOCK;
	struct mc_entry *e;
	int err;

	err = mc_get(a->v->mc, alloc_rc_addr(a, ci, hdr, r), LUNFS_META_BLOCK_SIZE, 0, &e);
	if (err < 0) {
		return err;
	}
	err = refcount_decode(&a->v->codec, e->buf, e->addr, &a->rc);
	if (err == 0 && (a->rc.cluster_index != ci || a->rc.first_unit != r * LUNFS_REFCOUNTS_PER_BLOCK)) {
		err = -EUCLEAN;
	}
	if (err < 0) {
		mc_put(a->v->mc, e);
		return -EUCLEAN;
	}
	*out = e;
	return 0;
}

int alloc_free(struct alloc *a, struct jnl_handle *h, uint8_t type, uint64_t addr, uint64_t count)
{
	struct lunfs_cluster_hdr hdr;
	uint64_t ci, u, freed = 0;
	bool all;
	int err;

	if (count == 0) {
		return 0;
	}
	err = lockd_check_lease(a->v->ld);
	if (err < 0) {
		return err;
	}
	pthread_mutex_lock(&a->mu);
	err = alloc_locate(a, type, addr, count, &ci, &hdr, &u);
	if (err < 0) {
		goto out;
	}
	err = alloc_bits_all_set(a, ci, u, count, &all);
	if (err < 0) {
		goto out;
	}
	if (!all) {
		err = -EUCLEAN;         /* double free: change nothing */
		goto out;
	}
	/* Shared file blocks lose a reference instead; the rest are freed
	 * in runs. */
	for (uint64_t i = u; i < u + count;) {
		uint64_t run = u + count - i;

		if (type == LUNFS_CLUSTER_FILE) {
			struct mc_entry *e;
			uint64_t first, k;

			err = alloc_rc_entry(a, ci, &hdr, i, &e);
			if (err < 0) {
				goto out;
			}
			first = a->rc.first_unit;
			if (a->rc.extra[i - first] > 0) {
				err = jnl_dirty(h, e);
				if (err == 0) {
					a->rc.extra[i - first]--;
					refcount_encode(&a->v->codec, &a->rc, e->addr, e->buf);
				}
				mc_put(a->v->mc, e);
				if (err < 0) {
					goto out;
				}
				i++;
				continue;
			}
			/* Run of units with counter 0 within this block. */
			for (k = i; k < u + count && k < first + LUNFS_REFCOUNTS_PER_BLOCK &&
				    a->rc.extra[k - first] == 0; k++) {
			}
			mc_put(a->v->mc, e);
			run = k - i;
		}
		err = alloc_bits_change(a, h, ci, i, run, false);
		if (err == 0 && type == LUNFS_CLUSTER_FILE) {
			err = alloc_busy_add(a, ci, i, run);
		}
		if (err < 0) {
			goto out;
		}
		freed += run;
		i += run;
	}
	if (freed > 0) {
		hdr.units_free += freed;
		if (hdr.units_free > hdr.units_total - hdr.header_units) {
			err = -EUCLEAN;
			goto out;
		}
		err = alloc_hdr_write(a, h, ci, &hdr);
		if (err < 0) {
			goto out;
		}
		a->cl[ci].units_free = hdr.units_free;
		a->cl[ci].summary_dirty = true;
	}
	alloc_summaries_push(a, false);
out:
	pthread_mutex_unlock(&a->mu);
	return err;
}

int alloc_ref_get(struct alloc *a, uint64_t addr, uint32_t *extra)
{
	struct lunfs_cluster_hdr hdr;
	struct mc_entry *e;
	uint64_t ci, u;
	bool all;
	int err;

	pthread_mutex_lock(&a->mu);
	err = alloc_locate(a, LUNFS_CLUSTER_FILE, addr, 1, &ci, &hdr, &u);
	if (err < 0) {
		goto out;
	}
	err = alloc_bits_all_set(a, ci, u, 1, &all);
	if (err < 0) {
		goto out;
	}
	if (!all) {
		err = -EUCLEAN;         /* a free block has no references */
		goto out;
	}
	err = alloc_rc_entry(a, ci, &hdr, u, &e);
	if (err < 0) {
		goto out;
	}
	*extra = a->rc.extra[u - a->rc.first_unit];
	mc_put(a->v->mc, e);
out:
	pthread_mutex_unlock(&a->mu);
	return err;
}

int alloc_ref_add(struct alloc *a, struct jnl_handle *h, uint64_t addr, int delta)
{
	struct lunfs_cluster_hdr hdr;
	struct mc_entry *e;
	uint64_t ci, u;
	int64_t nv;
	bool all;
	int err;

	err = lockd_check_lease(a->v->ld);
	if (err < 0) {
		return err;
	}
	pthread_mutex_lock(&a->mu);
	err = alloc_locate(a, LUNFS_CLUSTER_FILE, addr, 1, &ci, &hdr, &u);
	if (err < 0) {
		goto out;
	}
	err = alloc_bits_all_set(a, ci, u, 1, &all);
	if (err < 0) {
		goto out;
	}
	if (!all) {
		err = -EUCLEAN;
		goto out;
	}
	err = alloc_rc_entry(a, ci, &hdr, u, &e);
	if (err < 0) {
		goto out;
	}
	nv = (int64_t)a->rc.extra[u - a->rc.first_unit] + delta;
	if (nv > UINT16_MAX) {
		err = -EMLINK;
	} else if (nv < 0) {
		err = -EUCLEAN;
	} else if (delta != 0) {
		err = jnl_dirty(h, e);
		if (err == 0) {
			a->rc.extra[u - a->rc.first_unit] = (uint16_t)nv;
			refcount_encode(&a->v->codec, &a->rc, e->addr, e->buf);
		}
	}
	mc_put(a->v->mc, e);
out:
	pthread_mutex_unlock(&a->mu);
	return err;
}

/* Pinning. An operation that changes refcounts in clusters it may not
 * hold (a clone, a snapshot, a delete of shared blocks) takes those
 * clusters' locks before meta_lock, in ascending index order (DESIGN 5.1:
 * inode locks < cluster locks, clusters by index), and keeps them until
 * it is done: a pinned cluster is not given up (alloc_cluster_giveup says
 * -EBUSY and the requester asks again). Waiting for another host happens
 * here, with neither meta_lock nor a.mu held, so our own monitor keeps
 * serving that host's requests meanwhile: two hosts pinning overlapping
 * sets cannot wait for each other in a cycle, because each waits only for
 * clusters above every cluster it has pinned. (A refcount change that
 * meets a cluster it did not pin, because a write changed the map in
 * between, still takes the lock under meta_lock, as every free of a block
 * in another host's cluster does: alloc_locate, bounded by
 * cluster_wait_ms.) */
int alloc_clusters_pin(struct alloc *a, const uint64_t *ci, size_t n)
{
	size_t i;
	int err = 0;

	for (i = 0; i < n; i++) {
		struct alloc_cl *c;
		uint32_t holder = UINT32_MAX;

		if (ci[i] >= a->ncl || (i > 0 && ci[i] <= ci[i - 1])) {
			err = -EINVAL;  /* the order is what makes it deadlock-free */
			break;
		}
		c = &a->cl[ci[i]];
		pthread_mutex_lock(&a->mu);
		c->pins++;
		if (c->held) {
			pthread_mutex_unlock(&a->mu);
			continue;
		}
		pthread_mutex_unlock(&a->mu);
		err = lockd_lock_wait(a->v->ld, layout_cluster_lock_addr(&a->v->sb, ci[i]),
				      LUNFS_LOCK_KIND_CLUSTER, ci[i], LUNFS_LOCK_EXCLUSIVE,
				      cluster_wait_ms(a->v), &holder);
		pthread_mutex_lock(&a->mu);
		if (err == -EBUSY && holder == a->recover_slot) {
			/* Being recovered by us: borrowed when used. */
			err = 0;
		} else if (err == 0 && !c->held) {
			err = alloc_cluster_adopt(a, ci[i], false);
		}
		if (err < 0) {
			c->pins--;
			pthread_mutex_unlock(&a->mu);
			break;
		}
		pthread_mutex_unlock(&a->mu);
	}
	if (err < 0) {
		alloc_clusters_unpin(a, ci, i);
	}
	return err;
}

void alloc_clusters_unpin(struct alloc *a, const uint64_t *ci, size_t n)
{
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < n; i++) {
		if (ci[i] < a->ncl && a->cl[ci[i]].pins > 0) {
			a->cl[ci[i]].pins--;
		}
	}
	pthread_mutex_unlock(&a->mu);
}

int alloc_ref_peek(struct alloc *a, uint64_t addr, uint32_t *extra)
{
	const struct lunfs_super *sb = &a->v->sb;
	const struct lunfs_region *d = &sb->regions[LUNFS_REGION_DATA];
	const struct lunfs_cluster_hdr *g = &a->geo[LUNFS_CLUSTER_FILE];
	struct lunfs_refcount *rc = NULL;
	uint64_t ci, u, r, raddr;
	uint8_t *blk = NULL;
	int err;

	if (addr < d->offset || (addr - d->offset) / sb->cluster_size >= a->ncl ||
	    (addr - d->offset) % sb->cluster_size % g->unit_size != 0) {
		return -EUCLEAN;
	}
	ci = (addr - d->offset) / sb->cluster_size;
	u = (addr - d->offset) % sb->cluster_size / g->unit_size;
	if (u < g->header_units) {
		return -EUCLEAN;
	}
	pthread_mutex_lock(&a->mu);
	if (a->cl[ci].held) {
		struct lunfs_cluster_hdr hdr;
		struct mc_entry *e;

		err = alloc_hdr_read(a, ci, &hdr);
		if (err == 0 && hdr.type != LUNFS_CLUSTER_FILE) {
			err = -EUCLEAN;
		}
		if (err == 0) {
			err = alloc_rc_entry(a, ci, &hdr, u, &e);
		}
		if (err == 0) {
			*extra = a->rc.extra[u - a->rc.first_unit];
			mc_put(a->v->mc, e);
		}
		pthread_mutex_unlock(&a->mu);
		return err;
	}
	pthread_mutex_unlock(&a->mu);
	/* Not ours: the home copy, read past our cache (which may hold an
	 * older image of a cluster we gave up). */
	r = u / LUNFS_REFCOUNTS_PER_BLOCK;
	raddr = alloc_cl_start(a, ci) + (1u + (uint64_t)g->bitmap_blocks + r) * LUNFS_META_BLOCK_SIZE;
	blk = dev_buf_alloc(LUNFS_META_BLOCK_SIZE);
	rc = malloc(sizeof(*rc));
	if (blk == NULL || rc == NULL) {
		err = -ENOMEM;
		goto out;
	}
	err = dev_read(a->v->dev, blk, LUNFS_META_BLOCK_SIZE, raddr);
	if (err < 0) {
		goto out;
	}
	if (refcount_decode(&a->v->codec, blk, raddr, rc) != 0 || rc->cluster_index != ci ||
	    rc->first_unit != r * LUNFS_REFCOUNTS_PER_BLOCK) {
		err = -EUCLEAN;
		goto out;
	}
	*extra = rc->extra[u - rc->first_unit];
out:
	free(rc);
	dev_buf_free(blk);
	return err;
}

int alloc_stats(struct alloc *a, struct alloc_stats *st)
{
	const struct lunfs_cluster_hdr *gf = &a->geo[LUNFS_CLUSTER_FILE];
	const struct lunfs_cluster_hdr *gi = &a->geo[LUNFS_CLUSTER_INODE];
	uint64_t fu = gf->unit_size;
	int err = 0;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&a->mu);
	if (alloc_mono_ns() - a->refreshed_ns >= ALLOC_SUMMARY_REFRESH_NS) {
		err = alloc_table_read(a);
		if (err < 0) {
			goto out;
		}
	}
	/* A FREE cluster counts as capacity for both file blocks and inodes:
	 * it becomes whichever is needed first, so the two totals overlap. */
	for (uint64_t i = 0; i < a->ncl; i++) {
		const struct alloc_cl *c = &a->cl[i];
		uint64_t hu;

		switch (c->type) {
		case LUNFS_CLUSTER_FILE:
			hu = gf->header_units;
			st->file_free_bytes += c->units_free * fu;
			st->file_total_bytes += (c->units_total > hu ? c->units_total - hu : 0) * fu;
			break;
		case LUNFS_CLUSTER_INODE:
			hu = gi->header_units;
			st->inodes_free += c->units_free;
			st->inodes_total += c->units_total > hu ? c->units_total - hu : 0;
			break;
		case LUNFS_CLUSTER_META:
			break;
		default:
			st->file_free_bytes += gf->units_free * fu;
			st->file_total_bytes += gf->units_free * fu;
			st->inodes_free += gi->units_free;
			st->inodes_total += gi->units_free;
			break;
		}
	}
out:
	pthread_mutex_unlock(&a->mu);
	return err;
}

int alloc_open(struct lunfs_vol *v, struct alloc **out)
{
	struct alloc *a = calloc(1, sizeof(*a));
	int err;

	*out = NULL;
	if (a == NULL) {
		return -ENOMEM;
	}
	a->v = v;
	a->ncl = v->sb.cluster_count;
	a->recover_slot = UINT32_MAX;
	for (unsigned t = 0; t < ALLOC_NTYPES; t++) {
		a->cur[t] = ALLOC_NONE;
		if (alloc_type_ok((uint8_t)t)) {
			err = cluster_geometry(&v->sb, (uint8_t)t, &a->geo[t]);
			if (err < 0) {
				free(a);
				return err;
			}
		}
	}
	a->cl = calloc(a->ncl ? a->ncl : 1, sizeof(*a->cl));
	if (a->cl == NULL) {
		free(a);
		return -ENOMEM;
	}
	pthread_mutex_init(&a->mu, NULL);
	err = alloc_table_read(a);
	if (err < 0) {
		pthread_mutex_destroy(&a->mu);
		free(a->cl);
		free(a);
		return err;
	}
	a->pushed_ns = alloc_mono_ns();
	*out = a;
	return 0;
}

void alloc_close(struct alloc *a)
{
	if (a == NULL) {
		return;
	}
	pthread_mutex_lock(&a->mu);
	for (uint64_t i = 0; i < a->ncl; i++) {
		alloc_cluster_release(a, i);
	}
	pthread_mutex_unlock(&a->mu);
	pthread_mutex_destroy(&a->mu);
	free(a->busy);
	free(a->cl);
	free(a);
}

/* ---- the cluster protocol (fs/cluster.c) -------------------------------- */

int alloc_cluster_giveup(struct alloc *a, uint64_t ci)
{
	struct alloc_cl *c;
	int err = 0;

	if (ci >= a->ncl) {
		return -EINVAL;
	}
	c = &a->cl[ci];
	pthread_mutex_lock(&a->mu);
	if (c->pins > 0) {
		/* An operation on this host took it (or is taking it) for
		 * its refcounts: the requester asks again and gets it once
		 * the operation is done (alloc_clusters_pin). */
		err = -EBUSY;
	} else if (c->held && !c->borrowed) {
		/* Frees of an uncommitted transaction have committed
		 * (the caller ran jnl_flush_home): nothing of ours stays
		 * busy in a cluster we no longer hold. */
		alloc_busy_prune(a);
		alloc_cluster_release(a, ci);
		/* Its blocks are the next holder's to change. */
		mc_drop_clean(a->v->mc);
	} else if (!c->held) {
		/* In lockd's table but not ours (a take that failed half
		 * way): nothing cached depends on it. */
		err = lockd_unlock(a->v->ld, layout_cluster_lock_addr(&a->v->sb, ci));
	}
	pthread_mutex_unlock(&a->mu);
	return err;
}

void alloc_recover_begin(struct alloc *a, uint32_t slot)
{
	pthread_mutex_lock(&a->mu);
	a->recover_slot = slot;
	pthread_mutex_unlock(&a->mu);
}

void alloc_recover_end(struct alloc *a)
{
	pthread_mutex_lock(&a->mu);
	for (uint64_t i = 0; i < a->ncl; i++) {
		if (a->cl[i].held && a->cl[i].borrowed) {
			alloc_cluster_release(a, i);
		}
	}
	a->recover_slot = UINT32_MAX;
	pthread_mutex_unlock(&a->mu);
	mc_drop_clean(a->v->mc);
}
