/*
 * Block maps: logical block -> physical block (fs_internal.h "bmap";
 * docs/FORMAT.md "Block maps").
 *
 * The map is a radix tree of 4 KiB nodes in META clusters: leaves of 251
 * entries, inner nodes of 503 children, height di.map_height (0 = no map),
 * root at di.map_root. A node of level L covers map_span(L) logical blocks
 * starting at a multiple of that span (its aux). Missing children and zero
 * entries are holes.
 *
 * Invariants kept here:
 *   - no node is empty: removing the last entry of a leaf frees the leaf,
 *     and an inner node whose last child goes is freed too; a map that
 *     becomes empty has height 0 (so a walk never visits empty subtrees and
 *     bmap_next_mapped is cheap on sparse files);
 *   - the tree only grows at the top: a lblk beyond the reach gets a new
 *     root whose child 0 is the old root (the old root's aux stays valid);
 *     we never shrink the height except to 0;
 *   - every node change is jnl_dirty'd first and re-encoded whole into its
 *     mcache entry (new nodes come from MC_NOREAD entries, so a block's
 *     earlier contents are never decoded);
 *   - nodes carry their owner ino and aux, and a walk checks both, level
 *     included: a corrupt or misdirected node is -EUCLEAN, never followed.
 * Physical addresses are byte addresses in memory; the codec stores 4 KiB
 * units. bmap_set does not free what it replaces (callers decide: COW,
 * refcounts); bmap_punch does, through alloc_free, which handles refcounts.
 *
 * Locking: im->lock (read for lookups, write for changes) plus, for
 * changes, meta_lock and a journal handle (fs_internal.h).
 */
#include <errno.h>
#include <string.h>

#include "fs_internal.h"
#include "lunfs/cluster.h"
#include "lunfs/inode.h"
#include "lunfs/map.h"

/* Separate alloc_free calls one bmap_punch call may make: bounds its credits. */
#define BMAP_PUNCH_MAX_RUNS 8u

/* A walk from the root: for each level L (1 = leaf .. height) the node's
 * address, the first block it covers, and the index taken in it. */
struct bmap_path {
	unsigned height;
	uint64_t addr[LUNFS_MAP_MAX_HEIGHT + 1];
	uint64_t base[LUNFS_MAP_MAX_HEIGHT + 1];
	unsigned idx[LUNFS_MAP_MAX_HEIGHT + 1];
};

static uint64_t bmap_unit_bytes(const struct lunfs_vol *v, const struct inode_mem *im)
{
	return im->di.map_unit == LUNFS_MAP_FILE ? v->sb.file_block_size : LUNFS_META_BLOCK_SIZE;
}

static uint8_t bmap_data_type(const struct inode_mem *im)
{
	return im->di.map_unit == LUNFS_MAP_FILE ? LUNFS_CLUSTER_FILE : LUNFS_CLUSTER_META;
}

unsigned bmap_set_credits(const struct inode_mem *im)
{
	(void)im;
	/* Every level may be modified or created (with its allocation: a
	 * cluster header and a bitmap block), plus the inode. */
	return 3u * (LUNFS_MAP_MAX_HEIGHT + 1u) + 2u;
}

unsigned bmap_punch_credits(const struct inode_mem *im)
{
	(void)im;
	/* The path, the inode, each run freed (header, bitmap, refcount) and
	 * each node freed on the way up (header, bitmap). */
	return (LUNFS_MAP_MAX_HEIGHT + 1u) + 1u + 3u * BMAP_PUNCH_MAX_RUNS +
	       2u * LUNFS_MAP_MAX_HEIGHT;
}

static int bmap_inner_read(struct lunfs_vol *v, const struct inode_mem *im, uint64_t addr,
			   unsigned level, uint64_t base, struct mc_entry **e,
			   struct lunfs_map_inner *out)
{
	int ret = mc_get(v->mc, addr, LUNFS_META_BLOCK_SIZE, 0, e);

	if (ret != 0) {
		return ret;
	}
	if (__atomic_load_n(&(*e)->checked_magic, __ATOMIC_RELAXED) == LUNFS_MAP_INNER_MAGIC) {
		ret = map_inner_parse((*e)->buf, out);
	} else {
		ret = map_inner_decode(&v->codec, (*e)->buf, addr, out);
		if (ret == 0) {
			__atomic_store_n(&(*e)->checked_magic, LUNFS_MAP_INNER_MAGIC, __ATOMIC_RELAXED);
		}
	}
	if (ret == 0 && (out->level != level || out->first_lblk != base || out->ino != im->ino)) {
		ret = -EUCLEAN;
	}
	if (ret != 0) {
		mc_put(v->mc, *e);
		*e = NULL;
		return ret == -ENODATA || ret == -ESTALE ? -EUCLEAN : ret;
	}
	return 0;
}

static int bmap_leaf_read(struct lunfs_vol *v, const struct inode_mem *im, uint64_t addr,
			  uint64_t base, struct mc_entry **e, struct lunfs_map_leaf *out)
{
	int ret = mc_get(v->mc, addr, LUNFS_META_BLOCK_SIZE, 0, e);

	if (ret != 0) {
		return ret;
	}
	if (__atomic_load_n(&(*e)->checked_magic, __ATOMIC_RELAXED) == LUNFS_MAP_LEAF_MAGIC) {
		ret = map_leaf_parse((*e)->buf, out);
	} else {
		ret = map_leaf_decode(&v->codec, (*e)->buf, addr, out);
		if (ret == 0) {
			__atomic_store_n(&(*e)->checked_magic, LUNFS_MAP_LEAF_MAGIC, __ATOMIC_RELAXED);
		}
	}
	if (ret == 0 && (out->first_lblk != base || out->ino != im->ino)) {
		ret = -EUCLEAN;
	}
	if (ret != 0) {
		mc_put(v->mc, *e);
		*e = NULL;
		return ret == -ENODATA || ret == -ESTALE ? -EUCLEAN : ret;
	}
	return 0;
}

/* A node's cache entry for reading single fields (map_*_peek), held: its
 * block decoded and checked whole once since mcache filled it (then
 * checked_magic says so), its owner, level and first block checked on
 * every call. Lookups run this on every I/O; parsing the whole node each
 * time was 7% of the daemon's CPU on 4 KiB random reads (perf). */
static int bmap_node_get(struct lunfs_vol *v, const struct inode_mem *im, uint64_t addr,
			 unsigned level, uint64_t base, struct mc_entry **e)
{
	uint32_t magic = level == 1 ? LUNFS_MAP_LEAF_MAGIC : LUNFS_MAP_INNER_MAGIC;
	struct lunfs_map_node_id id;
	int ret;

	ret = mc_get(v->mc, addr, LUNFS_META_BLOCK_SIZE, 0, e);
	if (ret != 0) {
		return ret;
	}
	if (__atomic_load_n(&(*e)->checked_magic, __ATOMIC_RELAXED) != magic) {
		mc_put(v->mc, *e);
		*e = NULL;
		if (level == 1) {
			struct lunfs_map_leaf leaf;

			ret = bmap_leaf_read(v, im, addr, base, e, &leaf);
		} else {
			struct lunfs_map_inner in;

			ret = bmap_inner_read(v, im, addr, level, base, e, &in);
		}
		return ret;
	}
	id = map_node_peek_id((*e)->buf);
	if (id.ino != im->ino || id.first_lblk != base || (level > 1 && id.level != level)) {
		mc_put(v->mc, *e);
		*e = NULL;
		return -EUCLEAN;
	}
	return 0;
}

/* Walk the inner levels towards lblk (< span(height)). Returns 0 with the
 * path filled down to the leaf (p->addr[1] is the leaf), or 1 when a hole
 * at *hole_level stops the walk (levels >= hole_level are filled, and
 * idx[hole_level] is the missing child). */
static int bmap_walk(struct lunfs_vol *v, const struct inode_mem *im, uint64_t lblk,
		     struct bmap_path *p, unsigned *hole_level)
{
	unsigned level = im->di.map_height;
	uint64_t addr = im->di.map_root, base = 0;

	p->height = level;
	while (level > 1) {
		struct mc_entry *e;
		uint64_t span = map_span(level - 1), child;
		unsigned idx;
		int ret = bmap_node_get(v, im, addr, level, base, &e);

		if (ret != 0) {
			return ret;
		}
		idx = (unsigned)((lblk - base) / span);
		child = map_inner_peek(e->buf, idx);
		mc_put(v->mc, e);
		p->addr[level] = addr;
		p->base[level] = base;
		p->idx[level] = idx;
		if (child == 0) {
			*hole_level = level;
			return 1;
		}
		addr = child;
		base += (uint64_t)idx * span;
		level--;
	}
	p->addr[1] = addr;
	p->base[1] = base;
	p->idx[1] = (unsigned)(lblk - base);
	return 0;
}

int bmap_lookup(struct lunfs_vol *v, struct inode_mem *im, uint64_t lblk,
		struct lunfs_map_entry *out, uint64_t *run)
{
	return bmap_lookup_n(v, im, lblk, UINT64_MAX, out, run);
}

int bmap_lookup_n(struct lunfs_vol *v, struct inode_mem *im, uint64_t lblk, uint64_t want,
		  struct lunfs_map_entry *out, uint64_t *run)
{
	struct bmap_path p;
	struct mc_entry *e;
	uint64_t ub = bmap_unit_bytes(v, im), r;
	unsigned hole_level, i;
	int ret;

	memset(out, 0, sizeof(*out));
	if (im->di.map_height == 0 || lblk >= map_span(im->di.map_height)) {
		*run = lblk == UINT64_MAX ? 1 : UINT64_MAX - lblk;
		return 0;
	}
	ret = bmap_walk(v, im, lblk, &p, &hole_level);
	if (ret < 0) {
		return ret;
	}
	if (ret == 1) {
		/* The hole is the missing child and every missing one after it. */
		uint64_t span = map_span(hole_level - 1);
		uint64_t cstart = p.base[hole_level] + (uint64_t)p.idx[hole_level] * span;

		ret = bmap_node_get(v, im, p.addr[hole_level], hole_level, p.base[hole_level], &e);
		if (ret != 0) {
			return ret;
		}
		r = span - (lblk - cstart);
		for (i = p.idx[hole_level] + 1;
		     r < want && i < LUNFS_MAP_INNER_FANOUT && map_inner_peek(e->buf, i) == 0; i++) {
			r += span;
		}
		mc_put(v->mc, e);
		*run = r;
		return 0;
	}
	ret = bmap_node_get(v, im, p.addr[1], 1, p.base[1], &e);
	if (ret != 0) {
		return ret;
	}
	i = p.idx[1];
	*out = map_leaf_peek(e->buf, i);
	for (r = 1; r < want && i + r < LUNFS_MAP_LEAF_FANOUT; r++) {
		struct lunfs_map_entry n = map_leaf_peek(e->buf, i + (unsigned)r);

		if (out->addr == 0 ? n.addr != 0
				   : n.addr != out->addr + r * ub || n.flags != out->flags ||
					     n.written != out->written) {
			break;
		}
	}
	mc_put(v->mc, e);
	*run = r;
	return 0;
}

/* Allocate and write an empty node of `level` covering from `base`. */
static int bmap_node_new(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im,
			 unsigned level, uint64_t base, uint64_t hint, uint64_t *addr)
{
	struct mc_entry *e = NULL;
	uint64_t got;
	int ret;

	ret = alloc_units(v->alloc, h, LUNFS_CLUSTER_META, 1, hint, addr, &got);
	if (ret != 0) {
		return ret;
	}
	ret = mc_get(v->mc, *addr, LUNFS_META_BLOCK_SIZE, MC_NOREAD, &e);
	if (ret != 0) {
		goto out_free;
	}
	ret = jnl_dirty(h, e);
	if (ret != 0) {
		goto out_put;
	}
	if (level == 1) {
		struct lunfs_map_leaf leaf;

		memset(&leaf, 0, sizeof(leaf));
		leaf.ino = im->ino;
		leaf.first_lblk = base;
		leaf.seq = 1;
		map_leaf_encode(&v->codec, &leaf, *addr, e->buf);
	} else {
		struct lunfs_map_inner in;

		memset(&in, 0, sizeof(in));
		in.ino = im->ino;
		in.first_lblk = base;
		in.seq = 1;
		in.level = (uint8_t)level;
		map_inner_encode(&v->codec, &in, *addr, e->buf);
	}
	mc_put(v->mc, e);
	return 0;
out_put:
	mc_put(v->mc, e);
out_free:
	(void)alloc_free(v->alloc, h, LUNFS_CLUSTER_META, *addr, 1);
	return ret;
}

/* Set child idx of the inner node at p->addr[level] to child. */
static int bmap_inner_set(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im,
			  const struct bmap_path *p, unsigned level, uint64_t child, bool *empty)
{
	struct lunfs_map_inner in;
	struct mc_entry *e;
	int ret = bmap_inner_read(v, im, p->addr[level], level, p->base[level], &e, &in);

	if (ret != 0) {
		return ret;
	}
	ret = jnl_dirty(h, e);
	if (ret == 0) {
		in.child[p->idx[level]] = child;
		in.seq++;
		map_inner_encode(&v->codec, &in, p->addr[level], e->buf);
		if (empty != NULL) {
			*empty = true;
			for (unsigned i = 0; i < LUNFS_MAP_INNER_FANOUT; i++) {
				if (in.child[i] != 0) {
					*empty = false;
					break;
				}
			}
		}
	}
	mc_put(v->mc, e);
	return ret;
}

/* The node at level `level` of the path became empty: free it, and its
 * ancestors as they empty in turn; an empty root leaves no map. */
static int bmap_prune(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im,
		      const struct bmap_path *p, unsigned level)
{
	for (;;) {
		bool empty = false;
		int ret = alloc_free(v->alloc, h, LUNFS_CLUSTER_META, p->addr[level], 1);

		if (ret != 0) {
			return ret;
		}
		if (level == p->height) {
			im->di.map_root = 0;
			im->di.map_height = 0;
			return inode_dirty(h, im);
		}
		level++;
		ret = bmap_inner_set(v, h, im, p, level, 0, &empty);
		if (ret != 0 || !empty) {
			return ret;
		}
	}
}

/* No entry left: the leaf is to be freed (the invariant at the top). */
static bool bmap_leaf_empty(const struct lunfs_map_leaf *leaf)
{
	for (unsigned i = 0; i < LUNFS_MAP_LEAF_FANOUT; i++) {
		if (leaf->e[i].addr != 0) {
			return false;
		}
	}
	return true;
}

static int bmap_clear(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im, uint64_t lblk)
{
	struct lunfs_map_leaf leaf;
	struct bmap_path p;
	struct mc_entry *e;
	unsigned hole_level;
	bool empty = true;
	int ret;

	if (im->di.map_height == 0 || lblk >= map_span(im->di.map_height)) {
		return 0;
	}
	ret = bmap_walk(v, im, lblk, &p, &hole_level);
	if (ret != 0) {
		return ret < 0 ? ret : 0;
	}
	ret = bmap_leaf_read(v, im, p.addr[1], p.base[1], &e, &leaf);
	if (ret != 0) {
		return ret;
	}
	if (leaf.e[p.idx[1]].addr == 0) {
		mc_put(v->mc, e);
		return 0;
	}
	ret = jnl_dirty(h, e);
	if (ret == 0) {
		memset(&leaf.e[p.idx[1]], 0, sizeof(leaf.e[0]));
		leaf.seq++;
		map_leaf_encode(&v->codec, &leaf, p.addr[1], e->buf);
		empty = bmap_leaf_empty(&leaf);
	}
	mc_put(v->mc, e);
	if (ret != 0 || !empty) {
		return ret;
	}
	return bmap_prune(v, h, im, &p, 1);
}

int bmap_set(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im, uint64_t lblk,
	     const struct lunfs_map_entry *ent)
{
	struct lunfs_map_leaf leaf;
	struct mc_entry *e;
	uint64_t addr, base = 0, newaddr;
	unsigned level;
	bool root_changed = false;
	int ret = 0;

	if (lblk >= map_span(LUNFS_MAP_MAX_HEIGHT)) {
		return -EFBIG;
	}
	if (ent->addr == 0) {
		return bmap_clear(v, h, im, lblk);
	}
	if (im->di.map_height == 0) {
		/* Start at the height lblk needs: growing from a leaf at 0
		 * would leave that leaf empty under the new root. */
		unsigned hgt = 1;

		while (lblk >= map_span(hgt)) {
			hgt++;
		}
		ret = bmap_node_new(v, h, im, hgt, 0, im->rec->addr, &newaddr);
		if (ret != 0) {
			return ret;
		}
		im->di.map_root = newaddr;
		im->di.map_height = (uint8_t)hgt;
		root_changed = true;
	}
	while (lblk >= map_span(im->di.map_height)) {
		struct bmap_path p = { .height = im->di.map_height + 1u };

		ret = bmap_node_new(v, h, im, im->di.map_height + 1u, 0, im->di.map_root, &newaddr);
		if (ret != 0) {
			goto out;
		}
		p.addr[p.height] = newaddr;
		p.base[p.height] = 0;
		p.idx[p.height] = 0;
		ret = bmap_inner_set(v, h, im, &p, p.height, im->di.map_root, NULL);
		if (ret != 0) {
			(void)alloc_free(v->alloc, h, LUNFS_CLUSTER_META, newaddr, 1);
			goto out;
		}
		im->di.map_root = newaddr;
		im->di.map_height++;
		root_changed = true;
	}
	addr = im->di.map_root;
	level = im->di.map_height;
	while (level > 1) {
		struct lunfs_map_inner in;
		uint64_t span = map_span(level - 1);
		unsigned idx = (unsigned)((lblk - base) / span);

		ret = bmap_inner_read(v, im, addr, level, base, &e, &in);
		if (ret != 0) {
			goto out;
		}
		if (in.child[idx] == 0) {
			/* Allocate next to the parent: map nodes of one file
			 * end up close together. */
			ret = bmap_node_new(v, h, im, level - 1, base + (uint64_t)idx * span,
					    addr + LUNFS_META_BLOCK_SIZE, &newaddr);
			if (ret == 0) {
				ret = jnl_dirty(h, e);
				if (ret != 0) {
					(void)alloc_free(v->alloc, h, LUNFS_CLUSTER_META, newaddr, 1);
				}
			}
			if (ret == 0) {
				in.child[idx] = newaddr;
				in.seq++;
				map_inner_encode(&v->codec, &in, addr, e->buf);
			}
		}
		mc_put(v->mc, e);
		if (ret != 0) {
			goto out;
		}
		addr = in.child[idx];
		base += (uint64_t)idx * span;
		level--;
	}
	ret = bmap_leaf_read(v, im, addr, base, &e, &leaf);
	if (ret != 0) {
		goto out;
	}
	ret = jnl_dirty(h, e);
	if (ret == 0) {
		struct lunfs_map_entry *le = &leaf.e[lblk - base];

		*le = *ent;
		if (im->di.map_unit == LUNFS_MAP_META) {
			le->written = ~0ull; /* FORMAT: META maps do not track chunks */
		}
		leaf.seq++;
		map_leaf_encode(&v->codec, &leaf, addr, e->buf);
	}
	mc_put(v->mc, e);
out:
	if (root_changed) {
		int r = inode_dirty(h, im);

		ret = ret != 0 ? ret : r;
	}
	return ret;
}

int bmap_set_run(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im, uint64_t lblk,
		 const struct lunfs_map_entry *ent, unsigned n)
{
	struct lunfs_map_leaf leaf;
	struct bmap_path p;
	struct mc_entry *e;
	uint64_t ub = bmap_unit_bytes(v, im);
	unsigned hole_level;
	int ret;

	if (n == 0 || ent->addr == 0 || lblk % LUNFS_MAP_LEAF_FANOUT + n > LUNFS_MAP_LEAF_FANOUT) {
		return -EINVAL;
	}
	/* The first entry builds the path; the rest share its leaf, which
	 * is then decoded and encoded once instead of n times. */
	ret = bmap_set(v, h, im, lblk, ent);
	if (ret != 0 || n == 1) {
		return ret;
	}
	ret = bmap_walk(v, im, lblk, &p, &hole_level);
	if (ret > 0) {
		ret = -EUCLEAN;
	}
	if (ret == 0) {
		ret = bmap_leaf_read(v, im, p.addr[1], p.base[1], &e, &leaf);
	}
	if (ret != 0) {
		/* All or nothing: the caller frees the whole run. */
		(void)bmap_clear(v, h, im, lblk);
		return ret;
	}
	ret = jnl_dirty(h, e);
	if (ret != 0) {
		mc_put(v->mc, e);
		(void)bmap_clear(v, h, im, lblk);
		return ret;
	}
	for (unsigned k = 1; k < n; k++) {
		struct lunfs_map_entry *le = &leaf.e[p.idx[1] + k];

		le->addr = ent->addr + k * ub;
		le->flags = ent->flags;
		le->written = im->di.map_unit == LUNFS_MAP_META ? ~0ull : ent->written;
	}
	leaf.seq++;
	map_leaf_encode(&v->codec, &leaf, p.addr[1], e->buf);
	mc_put(v->mc, e);
	return 0;
}

int bmap_punch(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im,
	       uint64_t first, uint64_t last, uint64_t *next)
{
	struct lunfs_map_leaf leaf;
	struct bmap_path p;
	struct mc_entry *e;
	uint64_t ub = bmap_unit_bytes(v, im);
	uint64_t end, reach;
	unsigned hole_level, i, i1, runs = 0;
	bool empty, changed = false;
	int ret;

	if (last == UINT64_MAX) {
		last = UINT64_MAX - 1;
	}
	*next = last + 1;
	if (first > last || im->di.map_height == 0) {
		return 0;
	}
	reach = map_span(im->di.map_height);
	end = last < reach ? last : reach - 1;
	/* Skip holes without touching anything, then do one leaf. */
	for (;;) {
		if (first > end) {
			return 0;
		}
		ret = bmap_walk(v, im, first, &p, &hole_level);
		if (ret < 0) {
			return ret;
		}
		if (ret == 0) {
			break;
		}
		/* An inner node left empty (a bmap_set that failed half way
		 * with ENOSPC) goes now; otherwise skip the missing child. */
		{
			struct lunfs_map_inner in;
			uint64_t span = map_span(hole_level - 1);
			bool node_empty = true;

			ret = bmap_inner_read(v, im, p.addr[hole_level], hole_level, p.base[hole_level], &e,
					      &in);
			if (ret != 0) {
				return ret;
			}
			mc_put(v->mc, e);
			for (unsigned k = 0; k < LUNFS_MAP_INNER_FANOUT && node_empty; k++) {
				node_empty = in.child[k] == 0;
			}
			if (node_empty) {
				ret = bmap_prune(v, h, im, &p, hole_level);
				if (ret == 0 && im->di.map_height != 0) {
					ret = inode_dirty(h, im);
				}
				*next = first;
				return ret != 0 ? ret : 1;
			}
			first = p.base[hole_level] + ((uint64_t)p.idx[hole_level] + 1) * span;
		}
	}
	ret = bmap_leaf_read(v, im, p.addr[1], p.base[1], &e, &leaf);
	if (ret != 0) {
		return ret;
	}
	i = p.idx[1];
	i1 = end - p.base[1] < LUNFS_MAP_LEAF_FANOUT ? (unsigned)(end - p.base[1])
						      : LUNFS_MAP_LEAF_FANOUT - 1;
	while (i <= i1) {
		struct lunfs_map_entry *s = &leaf.e[i];
		unsigned n = 1;

		if (s->addr == 0) {
			i++;
			continue;
		}
		if (runs == BMAP_PUNCH_MAX_RUNS) {
			break;
		}
		if (!changed) {
			ret = jnl_dirty(h, e);
			if (ret != 0) {
				break;
			}
			changed = true;
		}
		while (i + n <= i1 && leaf.e[i + n].addr == s->addr + n * ub &&
		       leaf.e[i + n].flags == s->flags) {
			n++;
		}
		ret = alloc_free(v->alloc, h, bmap_data_type(im), s->addr, n);
		if (ret != 0) {
			break;
		}
		runs++;
		memset(s, 0, n * sizeof(*s));
		im->di.alloc_bytes = im->di.alloc_bytes >= n * ub ? im->di.alloc_bytes - n * ub : 0;
		i += n;
	}
	if (changed) {
		leaf.seq++;
		map_leaf_encode(&v->codec, &leaf, p.addr[1], e->buf);
	}
	empty = bmap_leaf_empty(&leaf);
	mc_put(v->mc, e);
	/* An empty leaf (see above) goes even when nothing was freed. */
	if (changed || (empty && ret == 0)) {
		int r = empty ? bmap_prune(v, h, im, &p, 1) : 0;

		if (r == 0 && im->di.map_height != 0) {
			r = inode_dirty(h, im);
		}
		ret = ret != 0 ? ret : r;
	}
	if (ret != 0) {
		return ret;
	}
	if (p.base[1] + i > last) {
		*next = last + 1;
		return 0;
	}
	*next = p.base[1] + i;
	if (*next > end) {
		/* Nothing mapped beyond the reach: done. */
		*next = last + 1;
		return 0;
	}
	return 1;
}

int bmap_leaf_get(struct lunfs_vol *v, struct inode_mem *im, uint64_t lblk,
		  struct lunfs_map_entry *e)
{
	struct lunfs_map_leaf leaf;
	struct bmap_path p;
	struct mc_entry *me;
	unsigned hole_level;
	int ret;

	memset(e, 0, LUNFS_MAP_LEAF_FANOUT * sizeof(*e));
	if (im->di.map_height == 0 || lblk >= map_span(im->di.map_height)) {
		return 0;
	}
	ret = bmap_walk(v, im, lblk, &p, &hole_level);
	if (ret != 0) {
		return ret < 0 ? ret : 0;
	}
	ret = bmap_leaf_read(v, im, p.addr[1], p.base[1], &me, &leaf);
	if (ret != 0) {
		return ret;
	}
	mc_put(v->mc, me);
	memcpy(e, leaf.e, sizeof(leaf.e));
	return 1;
}

unsigned bmap_replace_credits(const struct inode_mem *im)
{
	/* A bmap_set building the path, the leaf, and a prune up the tree. */
	return bmap_set_credits(im) + 1u + 2u * LUNFS_MAP_MAX_HEIGHT;
}

int bmap_leaf_replace(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im, uint64_t lblk,
		      unsigned n, const struct lunfs_map_entry *ents, struct lunfs_map_entry *old)
{
	struct lunfs_map_leaf leaf;
	struct bmap_path p;
	struct mc_entry *e;
	unsigned hole_level, first = n, i0;
	bool empty = true, built = false;
	int ret;

	if (n == 0 || lblk % LUNFS_MAP_LEAF_FANOUT + n > LUNFS_MAP_LEAF_FANOUT) {
		return -EINVAL;
	}
	for (unsigned k = 0; k < n && first == n; k++) {
		if (ents[k].addr != 0) {
			first = k;
		}
	}
	memset(old, 0, n * sizeof(*old));
	ret = 1;
	if (im->di.map_height != 0 && lblk < map_span(im->di.map_height)) {
		ret = bmap_walk(v, im, lblk, &p, &hole_level);
		if (ret < 0) {
			return ret;
		}
	}
	if (ret == 1) {
		/* No leaf: only new entries to write, and the path to build.
		 * bmap_set builds it (and writes the first entry). */
		if (first == n) {
			return 0;
		}
		ret = bmap_set(v, h, im, lblk + first, &ents[first]);
		if (ret != 0) {
			return ret;
		}
		built = true;
		ret = bmap_walk(v, im, lblk, &p, &hole_level);
		if (ret != 0) {
			return ret < 0 ? ret : -EUCLEAN;
		}
	}
	ret = bmap_leaf_read(v, im, p.addr[1], p.base[1], &e, &leaf);
	if (ret != 0) {
		return ret;
	}
	i0 = p.idx[1];
	/* A leaf just built held nothing before: old stays all holes. */
	if (!built) {
		memcpy(old, &leaf.e[i0], n * sizeof(*old));
	}
	ret = jnl_dirty(h, e);
	if (ret == 0) {
		for (unsigned k = 0; k < n; k++) {
			struct lunfs_map_entry *le = &leaf.e[i0 + k];

			*le = ents[k];
			if (le->addr == 0) {
				memset(le, 0, sizeof(*le));
			} else if (im->di.map_unit == LUNFS_MAP_META) {
				le->written = ~0ull;
			}
		}
		leaf.seq++;
		map_leaf_encode(&v->codec, &leaf, p.addr[1], e->buf);
		empty = bmap_leaf_empty(&leaf);
	}
	mc_put(v->mc, e);
	if (ret != 0 || !empty) {
		return ret;
	}
	return bmap_prune(v, h, im, &p, 1);
}

static int bmap_search(struct lunfs_vol *v, struct inode_mem *im, uint64_t addr, unsigned level,
		       uint64_t base, uint64_t lblk, uint64_t *out)
{
	struct mc_entry *e;
	int ret;

	if (level == 1) {
		struct lunfs_map_leaf leaf;

		ret = bmap_leaf_read(v, im, addr, base, &e, &leaf);
		if (ret != 0) {
			return ret;
		}
		mc_put(v->mc, e);
		for (uint64_t i = lblk > base ? lblk - base : 0; i < LUNFS_MAP_LEAF_FANOUT; i++) {
			if (leaf.e[i].addr != 0) {
				*out = base + i;
				return 0;
			}
		}
		return -ENXIO;
	}
	{
		struct lunfs_map_inner in;
		uint64_t span = map_span(level - 1);

		ret = bmap_inner_read(v, im, addr, level, base, &e, &in);
		if (ret != 0) {
			return ret;
		}
		mc_put(v->mc, e);
		for (uint64_t i = lblk > base ? (lblk - base) / span : 0; i < LUNFS_MAP_INNER_FANOUT; i++) {
			if (in.child[i] == 0) {
				continue;
			}
			ret = bmap_search(v, im, in.child[i], level - 1, base + i * span, lblk, out);
			if (ret != -ENXIO) {
				return ret;
			}
		}
	}
	return -ENXIO;
}

int bmap_next_mapped(struct lunfs_vol *v, struct inode_mem *im, uint64_t lblk, uint64_t *out)
{
	if (im->di.map_height == 0 || lblk >= map_span(im->di.map_height)) {
		return -ENXIO;
	}
	return bmap_search(v, im, im->di.map_root, im->di.map_height, 0, lblk, out);
}
