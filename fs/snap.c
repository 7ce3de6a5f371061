/*
 * snap: sharing file blocks between inodes, the machinery under clones,
 * copy_file_range, snapshots and revert (fs_internal.h "snap";
 * docs/DESIGN.md "Snapshots and clones"; docs/FORMAT.md 10.5, 12.3).
 *
 * One primitive, snap_share: make blocks [d, d + n) of dst read exactly as
 * blocks [s, s + n) of src do, by pointing dst's map entries at src's
 * physical blocks. Every block that gains a referrer gets one more
 * reference (the refcount `extra` of its FILE cluster, FORMAT 10.5) and
 * SHARED in both entries; every block dst referred to in the range loses
 * one (alloc_free: the last reference frees it). Map nodes are never
 * shared (a node names its owner inode), so dst gets nodes of its own:
 * the cost is one leaf per 251 mapped blocks plus the refcount blocks, and
 * holes cost nothing. A clone, a snapshot and a revert are snap_share over
 * the whole map; copy_file_range over a block range.
 *
 * Invariants (what makes the write path's copy-on-write safe):
 *   (R) a block's references beyond the first = extra: every map entry
 *       naming it counts one;
 *   (F) a block with extra > 0 has SHARED in every entry naming it, so the
 *       write path, which writes in place without looking at the refcount
 *       when SHARED is clear, never writes into a block another file sees.
 * SHARED is a hint in the other direction: a flag on a block that is no
 * longer shared costs one refcount read at its next write (file.c then
 * clears it).
 *
 * Crash consistency. The work goes in steps, each one journal handle that
 * leaves (R) and (F) true on its own: within a step, src's entries get
 * SHARED first (harmless alone), then the counters go up, then dst's
 * entries are written, then dst's old blocks are released. A step is at
 * most one leaf of each side and at most SNAP_STEP_CREDITS journal
 * blocks, so a 64 TiB image is shared in bounded transactions, as
 * truncate frees it. A step that fails half-way (no space for a map node)
 * takes its counters back down before it ends. Which steps belong to one
 * user-visible operation is the caller's business: a clone or a snapshot
 * fills an inode that no directory names yet and that sits on the orphan
 * table, so a crash before its last step leaves an orphan that the next
 * mount (or the host that recovers us) reclaims, dropping exactly the
 * references the finished steps took.
 *
 * Saturation: a counter at 65535 cannot go up (FORMAT 10.5): that block is
 * copied (its written chunks) into a new block that dst owns alone.
 *
 * Across hosts: the refcount blocks of a FILE cluster are covered by the
 * cluster's lock, like its bitmap. The caller pins (alloc_clusters_pin)
 * every cluster whose counters the operation will change, after its inode
 * locks and before meta_lock, in index order (snap_cis_*); a block met
 * later in a cluster not pinned is still handled (alloc takes the lock
 * then, see alloc.c).
 *
 * Locking: snap_share runs under meta_lock with src->lock and dst->lock
 * held for writing (one lock when src == dst); snap_cis_collect and
 * snap_du under the inode's lock (read is enough).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_internal.h"
#include "lunfs/cluster.h"
#include "lunfs/inode.h"
#include "lunfs/lockd.h"
#include "lunfs/map.h"

#define SNAP_FAN LUNFS_MAP_LEAF_FANOUT
/* Journal blocks one step may dirty. The smallest journal's ring holds
 * 247 blocks; steps join the running compound transaction, which commits
 * when it passes a quarter of the ring. */
#define SNAP_STEP_CREDITS 128u
/* Counter value at which a block is copied instead of shared. */
#define SNAP_REF_MAX 65535u

/* ---- which clusters an operation touches ------------------------------- */

static int snap_cis_push(struct snap_cis *set, uint64_t ci)
{
	if (set->n > 0 && set->ci[set->n - 1] == ci) {
		return 0;       /* runs of blocks mostly stay in one cluster */
	}
	if (set->n == set->cap) {
		size_t cap = set->cap ? 2 * set->cap : 16;
		uint64_t *nc = realloc(set->ci, cap * sizeof(*nc));

		if (nc == NULL) {
			return -ENOMEM;
		}
		set->ci = nc;
		set->cap = cap;
	}
	set->ci[set->n++] = ci;
	return 0;
}

static int snap_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool snap_cluster_of(const struct lunfs_vol *v, uint64_t addr, uint64_t *ci)
{
	const struct lunfs_region *d = &v->sb.regions[LUNFS_REGION_DATA];

	if (addr < d->offset || (addr - d->offset) / v->sb.cluster_size >= v->sb.cluster_count) {
		return false;
	}
	*ci = (addr - d->offset) / v->sb.cluster_size;
	return true;
}

int snap_cis_collect(struct lunfs_vol *v, struct inode_mem *im, uint64_t first, uint64_t last,
		     struct snap_cis *set)
{
	struct lunfs_map_entry *e = malloc(SNAP_FAN * sizeof(*e));
	uint64_t lblk = first;
	int ret = 0;

	if (e == NULL) {
		return -ENOMEM;
	}
	if (im->di.map_unit != LUNFS_MAP_FILE) {
		goto out;
	}
	while (lblk <= last) {
		uint64_t base;

		ret = bmap_next_mapped(v, im, lblk, &lblk);
		if (ret == -ENXIO || (ret == 0 && lblk > last)) {
			ret = 0;
			break;
		}
		if (ret < 0) {
			break;
		}
		base = lblk - lblk % SNAP_FAN;
		ret = bmap_leaf_get(v, im, lblk, e);
		if (ret < 0) {
			break;
		}
		ret = 0;
		for (uint64_t i = lblk - base; i < SNAP_FAN && base + i <= last; i++) {
			uint64_t ci;

			if (e[i].addr != 0 && snap_cluster_of(v, e[i].addr, &ci)) {
				ret = snap_cis_push(set, ci);
				if (ret < 0) {
					goto out;
				}
			}
		}
		if (base + SNAP_FAN > last) {
			break;
		}
		lblk = base + SNAP_FAN;
	}
out:
	free(e);
	return ret;
}

void snap_cis_finish(struct snap_cis *set)
{
	size_t k = 0;

	if (set->n > 1) {
		qsort(set->ci, set->n, sizeof(set->ci[0]), snap_cmp_u64);
	}
	for (size_t i = 0; i < set->n; i++) {
		if (k == 0 || set->ci[k - 1] != set->ci[i]) {
			set->ci[k++] = set->ci[i];
		}
	}
	set->n = k;
}

void snap_cis_free(struct snap_cis *set)
{
	free(set->ci);
	memset(set, 0, sizeof(*set));
}

/* ---- one step ------------------------------------------------------------ */

/* Keys of the allocation metadata blocks a step may dirty for a block at
 * addr: its refcount block, its bitmap block, its cluster header. Counted
 * once each per step (a run of blocks shares them). */
#define SNAP_KEY_RC 1ull
#define SNAP_KEY_BM 2ull
#define SNAP_KEY_HDR 3ull
static uint64_t snap_key(const struct lunfs_vol *v, uint64_t addr, uint64_t kind)
{
	const struct lunfs_region *d = &v->sb.regions[LUNFS_REGION_DATA];
	uint64_t off = addr - d->offset;
	uint64_t ci = off / v->sb.cluster_size, u = off % v->sb.cluster_size / v->sb.file_block_size;

	switch (kind) {
	case SNAP_KEY_RC:
		return ci << 24 | u / LUNFS_REFCOUNTS_PER_BLOCK << 2 | kind;
	case SNAP_KEY_BM:
		return ci << 24 | u / LUNFS_BITMAP_BITS << 2 | kind;
	default:
		return ci << 24 | kind;
	}
}

struct snap_keys {
	uint64_t k[4 * SNAP_FAN];
	unsigned n;
};

/* Add key; true if it is new. */
static bool snap_keys_add(struct snap_keys *ks, uint64_t key)
{
	for (unsigned i = 0; i < ks->n; i++) {
		if (ks->k[i] == key) {
			return false;
		}
	}
	ks->k[ks->n++] = key;
	return true;
}

/* Copy the written chunks of block `from` into a new block for dst (a
 * counter that cannot go up). Data first: the handle is ordered. */
static int snap_copy_block(struct lunfs_vol *v, struct jnl_handle *h, const struct lunfs_map_entry *se,
			   uint64_t hint, struct lunfs_map_entry *out)
{
	uint64_t bs = v->sb.file_block_size, chunk = bs / LUNFS_MAP_CHUNKS;
	uint64_t addr, got, lo, hi;
	uint8_t *buf = NULL;
	int ret;

	ret = alloc_units(v->alloc, h, LUNFS_CLUSTER_FILE, 1, hint, &addr, &got);
	if (ret != 0) {
		return ret;
	}
	memset(out, 0, sizeof(*out));
	out->addr = addr;
	out->written = se->written;
	if (se->written != 0) {
		lo = (uint64_t)__builtin_ctzll(se->written) * chunk;
		hi = (64u - (uint64_t)__builtin_clzll(se->written)) * chunk;
		buf = dev_buf_alloc((size_t)(hi - lo));
		if (buf == NULL) {
			ret = -ENOMEM;
			goto fail;
		}
		ret = dev_read(v->dev, buf, (size_t)(hi - lo), se->addr + lo);
		if (ret == 0 && v->ld != NULL) {
			ret = lockd_check_lease(v->ld); /* DESIGN 5.5: no write without a lease */
		}
		if (ret == 0) {
			ret = dev_write(v->dev, buf, (size_t)(hi - lo), addr + lo);
		}
		dev_buf_free(buf);
		if (ret != 0) {
			goto fail;
		}
		jnl_order_data(h);
	}
	return 0;
fail:
	(void)alloc_free(v->alloc, h, LUNFS_CLUSTER_FILE, addr, 1);
	return ret;
}

/* Entries [0, m) of se (src's, from lblk s) become dst's [d, d + m). One
 * handle. */
static int snap_step(struct lunfs_vol *v, struct inode_mem *src, struct inode_mem *dst, uint64_t s,
		     uint64_t d, unsigned m, const struct lunfs_map_entry *se, unsigned credits)
{
	struct lunfs_map_entry ne[SNAP_FAN], old[SNAP_FAN];
	bool refd[SNAP_FAN], copied[SNAP_FAN];
	uint64_t bs = v->sb.file_block_size;
	struct jnl_handle *h = NULL;
	bool flag_src = false;
	unsigned i;
	int ret, r;

	ret = jnl_start(v->jnl, credits, &h);
	if (ret != 0) {
		return ret;
	}
	memset(refd, 0, sizeof(refd));
	memset(copied, 0, sizeof(copied));
	for (i = 0; i < m; i++) {
		ne[i] = se[i];
		if (se[i].addr != 0) {
			ne[i].flags |= LUNFS_MAPE_SHARED;
			flag_src |= (se[i].flags & LUNFS_MAPE_SHARED) == 0;
		}
	}
	/* 1. SHARED on src's entries: alone it only costs a refcount read. */
	if (flag_src) {
		ret = bmap_leaf_replace(v, h, src, s, m, ne, old);
		if (ret != 0) {
			goto out;
		}
	}
	/* 2. One more reference per block (a copy where that is impossible). */
	for (i = 0; i < m; i++) {
		if (se[i].addr == 0) {
			continue;
		}
		ret = alloc_ref_add(v->alloc, h, se[i].addr, 1);
		if (ret == -EMLINK) {
			ret = snap_copy_block(v, h, &se[i], se[i].addr, &ne[i]);
			copied[i] = ret == 0;
		} else {
			refd[i] = ret == 0;
		}
		if (ret != 0) {
			goto undo;
		}
	}
	/* 3. dst's entries. */
	ret = bmap_leaf_replace(v, h, dst, d, m, ne, old);
	if (ret != 0) {
		goto undo;
	}
	/* 4. What dst referred to before loses a reference. */
	for (i = 0; i < m; i++) {
		if (ne[i].addr != 0) {
			dst->di.alloc_bytes += bs;
		}
		if (old[i].addr == 0) {
			continue;
		}
		dst->di.alloc_bytes = dst->di.alloc_bytes >= bs ? dst->di.alloc_bytes - bs : 0;
		r = alloc_free(v->alloc, h, LUNFS_CLUSTER_FILE, old[i].addr, 1);
		ret = ret != 0 ? ret : r;
	}
	r = inode_dirty(h, dst);
	ret = ret != 0 ? ret : r;
	goto out;
undo:
	/* Nothing names these yet: take back what this step gave. */
	for (i = 0; i < m; i++) {
		if (refd[i]) {
			(void)alloc_ref_add(v->alloc, h, se[i].addr, -1);
		} else if (copied[i]) {
			(void)alloc_free(v->alloc, h, LUNFS_CLUSTER_FILE, ne[i].addr, 1);
		}
	}
out:
	r = jnl_stop(h, false);
	return ret != 0 ? ret : r;
}

/* Blocks [s, s + n) of src and [d, d + n) of dst, n within one leaf of
 * each: split into steps that fit SNAP_STEP_CREDITS. */
static int snap_window(struct lunfs_vol *v, struct inode_mem *src, struct inode_mem *dst, uint64_t s,
		       uint64_t d, unsigned n)
{
	struct lunfs_map_entry *se = malloc(2 * SNAP_FAN * sizeof(*se)), *de;
	struct snap_keys *ks = malloc(sizeof(*ks));
	/* Both inodes, src's leaf (it exists), dst's path and leaf, the
	 * allocation of a copy, slack. */
	unsigned fixed = 2u + 1u + bmap_replace_credits(dst) + 2u + 4u;
	unsigned k = 0;
	int ret = 0;

	if (se == NULL || ks == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	de = se + SNAP_FAN;
	ret = bmap_leaf_get(v, src, s, se);
	if (ret >= 0) {
		ret = bmap_leaf_get(v, dst, d, de);
	}
	if (ret < 0) {
		goto out;
	}
	ret = 0;
	while (k < n && ret == 0) {
		unsigned si = (unsigned)(s % SNAP_FAN) + k, di = (unsigned)(d % SNAP_FAN) + k;
		unsigned m = 0, credits = fixed;
		bool any = false;

		ks->n = 0;
		while (k + m < n) {
			const struct lunfs_map_entry *a = &se[si + m], *b = &de[di + m];
			unsigned more = 0;

			if (a->addr != 0) {
				uint32_t extra = 0;

				more += snap_keys_add(ks, snap_key(v, a->addr, SNAP_KEY_RC));
				/* A saturated counter means a copy instead. */
				if (alloc_ref_get(v->alloc, a->addr, &extra) == 0 && extra >= SNAP_REF_MAX) {
					more += 2;
				}
			}
			if (b->addr != 0) {
				more += snap_keys_add(ks, snap_key(v, b->addr, SNAP_KEY_RC));
				more += snap_keys_add(ks, snap_key(v, b->addr, SNAP_KEY_BM));
				more += snap_keys_add(ks, snap_key(v, b->addr, SNAP_KEY_HDR));
			}
			if (m > 0 && credits + more > SNAP_STEP_CREDITS) {
				break;
			}
			credits += more;
			any |= a->addr != 0 || b->addr != 0;
			m++;
		}
		if (any) {
			ret = snap_step(v, src, dst, s + k, d + k, m, &se[si], credits);
		}
		k += m;
	}
out:
	free(ks);
	free(se);
	return ret;
}

int snap_share(struct lunfs_vol *v, struct inode_mem *src, struct inode_mem *dst, uint64_t s,
	       uint64_t d, uint64_t n)
{
	uint64_t pos = 0;
	int ret;

	if (src->di.map_unit != LUNFS_MAP_FILE || dst->di.map_unit != LUNFS_MAP_FILE) {
		return -EINVAL;
	}
	if (n == 0) {
		return 0;
	}
	if (s + n < s || d + n < d || s + n > map_span(LUNFS_MAP_MAX_HEIGHT) ||
	    d + n > map_span(LUNFS_MAP_MAX_HEIGHT)) {
		return -EFBIG;
	}
	if (src == dst && s < d + n && d < s + n) {
		return -EINVAL; /* overlapping ranges of one file */
	}
	while (pos < n) {
		uint64_t ns = UINT64_MAX, nd = UINT64_MAX, p, wend;

		/* Skip what is a hole on both sides. */
		ret = bmap_next_mapped(v, src, s + pos, &ns);
		if (ret == 0) {
			ns -= s;
		} else if (ret == -ENXIO) {
			ns = UINT64_MAX;
		} else {
			return ret;
		}
		ret = bmap_next_mapped(v, dst, d + pos, &nd);
		if (ret == 0) {
			nd -= d;
		} else if (ret == -ENXIO) {
			nd = UINT64_MAX;
		} else {
			return ret;
		}
		p = ns < nd ? ns : nd;
		if (p >= n) {
			break;
		}
		pos = p;
		wend = n;
		if (pos + (SNAP_FAN - (s + pos) % SNAP_FAN) < wend) {
			wend = pos + (SNAP_FAN - (s + pos) % SNAP_FAN);
		}
		if (pos + (SNAP_FAN - (d + pos) % SNAP_FAN) < wend) {
			wend = pos + (SNAP_FAN - (d + pos) % SNAP_FAN);
		}
		ret = snap_window(v, src, dst, s + pos, d + pos, (unsigned)(wend - pos));
		if (ret != 0) {
			return ret;
		}
		pos = wend;
	}
	return 0;
}

int snap_du(struct lunfs_vol *v, struct inode_mem *im, uint64_t *excl, uint64_t *shared)
{
	struct lunfs_map_entry *e = malloc(SNAP_FAN * sizeof(*e));
	uint64_t bs = v->sb.file_block_size, lblk = 0;
	int ret = 0;

	*excl = *shared = 0;
	if (e == NULL) {
		return -ENOMEM;
	}
	if (im->di.map_unit != LUNFS_MAP_FILE) {
		goto out;
	}
	for (;;) {
		uint64_t base;

		ret = bmap_next_mapped(v, im, lblk, &lblk);
		if (ret == -ENXIO) {
			ret = 0;
			break;
		}
		if (ret < 0) {
			break;
		}
		base = lblk - lblk % SNAP_FAN;
		ret = bmap_leaf_get(v, im, lblk, e);
		if (ret < 0) {
			break;
		}
		ret = 0;
		for (unsigned i = 0; i < SNAP_FAN; i++) {
			uint32_t extra = 0;

			if (e[i].addr == 0) {
				continue;
			}
			if ((e[i].flags & LUNFS_MAPE_SHARED) != 0) {
				ret = alloc_ref_peek(v->alloc, e[i].addr, &extra);
				if (ret < 0) {
					goto out;
				}
			}
			if (extra > 0) {
				*shared += bs;
			} else {
				*excl += bs;
			}
		}
		lblk = base + SNAP_FAN;
	}
out:
	free(e);
	return ret;
}
