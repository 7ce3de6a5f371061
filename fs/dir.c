/*
 * Directories: extendible hashing (Fagin, Nievergelt, Pippenger and Strong,
 * "Extendible hashing: a fast access method for dynamic files", ACM TODS
 * 1979), laid out as docs/FORMAT.md section 13 and include/lunfs/dir.h say.
 *
 * Shape. The directory inode's map (map_unit META, 4 KiB logical blocks)
 * holds table blocks at logical 0..4095 (slot s in block s / 503, index
 * s % 503) and leaves from logical 4096 up; the directory state in the
 * inode's inline area (global_depth, nentries, next_lblk, nleaves) is
 * decoded with inode_dir_state_get at the start of every operation and
 * written back with inode_dir_state_set + inode_dirty by every operation
 * that changes it.
 *
 * Lookup: h = SipHash(name); slot = top global_depth bits of h; one table
 * block gives the leaf; the leaf's entries (sorted by hash) are scanned for
 * h and the name. Overflow leaves (leaf.next) exist only at local depth 20:
 * a chain is walked to its end. So lookup and insert read one table block
 * and one leaf through the mcache, whatever the size of the directory.
 *
 * Insert: if the leaf (or, at depth 20, some leaf of its chain) has room,
 * insert in hash order. Otherwise split: when local_depth == global_depth
 * the table doubles first (new slot i takes old slot i >> 1; this rewrites
 * every table block, ceil(2^(d+1) / 503) of them: 5 for 100k entries);
 * then a new leaf of depth local_depth + 1 with the decided bit set takes
 * the entries that have that bit, the upper half of the old leaf's slot
 * range is pointed at it, and the insert is retried. At depth 20 a new
 * overflow leaf is chained instead.
 *
 * Crash consistency comes from the journal (every change runs under the
 * caller's handle). Within one operation the blocks are still written in an
 * order where each intermediate state is a valid directory, so an error
 * half way (ENOSPC, EIO) leaves the directory consistent: a split writes
 * the new leaf (unreachable), then the table (entries now found through
 * the new leaf; their stale copies in the old leaf are only reachable by a
 * readdir of the old leaf's remaining range, which does not contain their
 * hashes), then the old leaf. A doubling first takes every table block
 * into the handle, then rewrites them all with no failure point between.
 *
 * A doubling is one transaction of ceil(2^(d+1) / 503) table blocks, so
 * this host's journal bounds the depth: a 16 MiB journal reaches the
 * format's maximum (20, 2085 blocks), a 2 MiB one depth 17 (about 9
 * million entries at typical fill). Beyond that dir_add fails with
 * -ENOSPC; the refused doubling changes nothing, and the steps of the same
 * insert before it (earlier doublings, splits) leave a valid directory.
 *
 * Remove deletes the entry; an overflow leaf that becomes empty is unlinked
 * and freed. Leaves are not merged. When the last entry goes, every block
 * of the directory is freed, so that "an empty directory has no blocks"
 * (FORMAT 13) holds and rmdir's dir_free has nothing left to do.
 *
 * Readdir order is slot order, each leaf visited once at the first slot of
 * its range, entries in hash order (a chain is merged and sorted). The
 * cookie of an entry is (hash >> 2) + 3; resuming at cookie c returns the
 * entries whose cookie is greater than c, starting at the leaf that covers
 * hash ((c - 3) + 1) << 2. Because a position is a hash, not a place in a
 * block, splits and inserts between two calls neither repeat nor skip an
 * existing entry (except two entries whose hashes agree in the top 62 bits:
 * FORMAT 13.1).
 *
 * Hostile images: every table slot, leaf header, chain link and entry prefix
 * is checked against the directory state before it is used, so a corrupt
 * block gives -EUCLEAN and a readdir always advances (the next slot is past
 * the current leaf's range, which must contain the current slot).
 *
 * Locking: the caller holds dim->lock (read for dir_lookup/dir_iterate,
 * write plus vol.meta_lock and a handle for changes). No lock is taken here;
 * the mcache is internally locked. Callbacks of dir_iterate run with no
 * mcache reference held.
 *
 * Inode write-back: dir_add, dir_remove and dir_free call inode_dirty(dim)
 * themselves when they changed the directory state (also after an error
 * that left a partial but consistent change, such as a table doubling
 * followed by ENOSPC). dir_replace changes no state and does not. Callers
 * that also change times call inode_dirty again; that is harmless.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_internal.h"
#include "lunfs/cluster.h"
#include "lunfs/dir.h"
#include "lunfs/inode.h"

/* DT_* values (the numbers are ABI; <dirent.h> is not needed for them). */
#define DIR_DT_FIFO 1u
#define DIR_DT_CHR 2u
#define DIR_DT_DIR 4u
#define DIR_DT_BLK 6u
#define DIR_DT_REG 8u
#define DIR_DT_LNK 10u
#define DIR_DT_SOCK 12u

#define DIR_COOKIE_FIRST 3u
/* Credits for one alloc_units or alloc_free (bitmap, cluster header,
 * summary): an estimate, see dir_change_credits. */
#define DIR_ALLOC_CREDITS 4u
/* Splits per insert that the credit estimate budgets for: with keyed
 * hashes a second split in a row is already rare. */
#define DIR_SPLITS_BUDGETED 2u
/* Blocks beside the table that a doubling's transaction may need. */
#define DIR_DOUBLE_MARGIN 64u
/* Credits asked for never exceed what the smallest journal's ring holds,
 * so that jnl_start accepts a change of any directory; the few operations
 * that dirty more (a doubling at depth >= 16) rely on the ring's room
 * beyond their credits, which dir_table_double checks. */
#define DIR_CREDITS_MAX (LUNFS_JOURNAL_MIN / LUNFS_META_BLOCK_SIZE - 16u)

/* One leaf block, decoded, with the mcache entry it came from. */
struct dir_leafbuf {
	uint64_t lblk;
	struct mc_entry *e;          /* referenced while loaded; NULL otherwise */
	uint32_t used;               /* bytes of entries, as the block's `used` */
	struct lunfs_dir_leaf leaf;  /* leaf.ents = ents */
	struct lunfs_dirent ents[LUNFS_DIR_LEAF_MAX_ENTRIES];
};

static uint64_t dir_slot_of(uint64_t hash, uint32_t depth)
{
	return depth == 0 ? 0 : hash >> (64 - depth);
}

/* The hash bit that a split of a leaf of local depth ld decides. */
static uint64_t dir_split_bit(uint32_t ld)
{
	return 1ull << (63 - ld);
}

static uint64_t dir_prefix_mask(uint32_t ld)
{
	return ld == 0 ? 0 : ~0ull << (64 - ld);
}

static uint64_t dir_table_blocks(uint32_t gd)
{
	return ((1ull << gd) + LUNFS_DIR_TABLE_SLOTS - 1) / LUNFS_DIR_TABLE_SLOTS;
}

static uint64_t dir_cookie_of(uint64_t hash)
{
	return (hash >> 2) + DIR_COOKIE_FIRST;
}

static bool dir_type_ok(uint8_t t)
{
	switch (t) {
	case DIR_DT_FIFO:
	case DIR_DT_CHR:
	case DIR_DT_DIR:
	case DIR_DT_BLK:
	case DIR_DT_REG:
	case DIR_DT_LNK:
	case DIR_DT_SOCK:
		return true;
	default:
		return false;
	}
}

/* POSIX: a component longer than NAME_MAX is ENAMETOOLONG; anything else a
 * directory cannot hold (empty, '/', NUL, "." and "..") is EINVAL here:
 * the fsop layer maps "." and ".." to their own errors before calling. */
static int dir_name_check(const char *name, size_t len)
{
	if (len > LUNFS_NAME_MAX) {
		return -ENAMETOOLONG;
	}
	if (name == NULL || len == 0) {
		return -EINVAL;
	}
	if (memchr(name, '/', len) != NULL || memchr(name, '\0', len) != NULL) {
		return -EINVAL;
	}
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) {
		return -EINVAL;
	}
	return 0;
}

/* The directory state, checked: everything below trusts these bounds. */
static int dir_state_load(const struct inode_mem *dim, struct lunfs_dir_state *ds)
{
	inode_dir_state_get(&dim->di, ds);
	if (ds->global_depth > LUNFS_DIR_MAX_DEPTH) {
		return -EUCLEAN;
	}
	if (ds->next_lblk == 0) {
		if (ds->global_depth != 0 || ds->nleaves != 0 || ds->nentries != 0) {
			return -EUCLEAN;
		}
		return 0;
	}
	if (ds->next_lblk <= LUNFS_DIR_FIRST_LEAF || ds->nleaves == 0 ||
	    ds->nleaves > ds->next_lblk - LUNFS_DIR_FIRST_LEAF) {
		return -EUCLEAN;
	}
	return 0;
}

/* FORMAT 11.1: directory size = 4096 x (table blocks + leaves). */
static void dir_state_store(struct inode_mem *dim, const struct lunfs_dir_state *ds)
{
	inode_dir_state_set(&dim->di, ds);
	if (ds->next_lblk == 0) {
		dim->di.size = 0;
	} else {
		dim->di.size = (dir_table_blocks(ds->global_depth) + ds->nleaves) * LUNFS_META_BLOCK_SIZE;
	}
}

/* ---- blocks --------------------------------------------------------------- */

/* The cached block at logical lblk, which the directory says exists. */
static int dir_blk_read(struct lunfs_vol *v, struct inode_mem *dim, uint64_t lblk, struct mc_entry **out)
{
	struct lunfs_map_entry me;
	struct mc_entry *e = NULL;
	uint64_t run;
	int ret;

	*out = NULL;
	ret = bmap_lookup(v, dim, lblk, &me, &run);
	if (ret != 0) {
		return ret;
	}
	if (me.addr == 0) {
		/* The table or a chain names a hole. */
		return -EUCLEAN;
	}
	ret = mc_get(v->mc, me.addr, LUNFS_META_BLOCK_SIZE, 0, &e);
	if (ret != 0) {
		return ret;
	}
	if (e->valid != 0) {
		ret = e->valid < 0 ? e->valid : -EIO;
		mc_put(v->mc, e);
		return ret;
	}
	*out = e;
	return 0;
}

/* Allocate a META block, map it at lblk, and return its cache entry,
 * already in the handle; the caller encodes its contents. */
static int dir_blk_new(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim, uint64_t lblk,
		       struct mc_entry **out)
{
	struct lunfs_map_entry me;
	struct mc_entry *e = NULL;
	uint64_t addr, got;
	int ret;

	*out = NULL;
	ret = alloc_units(v->alloc, h, LUNFS_CLUSTER_META, 1, dim->di.map_root, &addr, &got);
	if (ret != 0) {
		return ret;
	}
	ret = mc_get(v->mc, addr, LUNFS_META_BLOCK_SIZE, MC_NOREAD, &e);
	if (ret != 0) {
		goto out_free;
	}
	ret = jnl_dirty(h, e);
	if (ret != 0) {
		goto out_put;
	}
	memset(e->buf, 0, LUNFS_META_BLOCK_SIZE);
	e->valid = 0;
	if (dim->di.map_height == 0) {
		/* A directory's map addresses META blocks (FORMAT 11.1). */
		dim->di.map_unit = LUNFS_MAP_META;
	}
	me.addr = addr;
	me.flags = 0;
	me.written = UINT64_MAX; /* META maps: all chunks written (FORMAT 12.3) */
	ret = bmap_set(v, h, dim, lblk, &me);
	if (ret != 0) {
		goto out_put;
	}
	/* alloc_bytes counts the blocks a map points to (FORMAT 11.1);
	 * bmap_set leaves that to its callers, bmap_punch subtracts. */
	dim->di.alloc_bytes += LUNFS_META_BLOCK_SIZE;
	*out = e;
	return 0;
out_put:
	mc_put(v->mc, e);
out_free:
	(void)alloc_free(v->alloc, h, LUNFS_CLUSTER_META, addr, 1);
	return ret;
}

/* Unmap logical block lblk and free its physical block. */
static int dir_blk_free(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim, uint64_t lblk)
{
	struct lunfs_map_entry me, hole;
	uint64_t run;
	int ret;

	ret = bmap_lookup(v, dim, lblk, &me, &run);
	if (ret != 0) {
		return ret;
	}
	if (me.addr == 0) {
		return 0;
	}
	memset(&hole, 0, sizeof(hole));
	ret = bmap_set(v, h, dim, lblk, &hole);
	if (ret != 0) {
		return ret;
	}
	dim->di.alloc_bytes = dim->di.alloc_bytes >= LUNFS_META_BLOCK_SIZE ?
				      dim->di.alloc_bytes - LUNFS_META_BLOCK_SIZE : 0;
	return alloc_free(v->alloc, h, LUNFS_CLUSTER_META, me.addr, 1);
}

/* Free every block of the directory and reset its state to "no blocks".
 * bmap_punch works a map leaf at a time; bmap_next_mapped skips holes so
 * a sparse table area costs nothing. */
static int dir_blocks_free(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim,
			   struct lunfs_dir_state *ds)
{
	uint64_t last = ds->next_lblk > LUNFS_DIR_FIRST_LEAF ? ds->next_lblk - 1 : LUNFS_DIR_FIRST_LEAF - 1;
	uint64_t pos = 0, first, next;
	int ret;

	while (pos <= last) {
		ret = bmap_next_mapped(v, dim, pos, &first);
		if (ret == -ENXIO) {
			break;
		}
		if (ret != 0) {
			return ret;
		}
		if (first > last) {
			break;
		}
		/* bmap_punch returns 1 when it stopped before `last`. */
		ret = bmap_punch(v, h, dim, first, last, &next);
		if (ret < 0) {
			return ret;
		}
		if (next <= first) {
			return -EIO; /* no progress: never loop forever */
		}
		pos = next;
	}
	memset(ds, 0, sizeof(*ds));
	return 0;
}

/* ---- table ---------------------------------------------------------------- */

static int dir_table_load(struct lunfs_vol *v, struct inode_mem *dim, uint64_t blk, struct mc_entry **e,
			  struct lunfs_dir_table *t)
{
	int ret;

	ret = dir_blk_read(v, dim, blk, e);
	if (ret != 0) {
		return ret;
	}
	ret = mc_frame_check(*e, &v->codec, LUNFS_DIR_TABLE_MAGIC);
	if (ret == 0) {
		ret = dir_table_parse((*e)->buf, t);
	}
	if (ret == 0 && (t->ino != dim->ino || t->first_slot != blk * LUNFS_DIR_TABLE_SLOTS)) {
		ret = -EUCLEAN;
	}
	if (ret != 0) {
		mc_put(v->mc, *e);
		*e = NULL;
		return -EUCLEAN;
	}
	return 0;
}

/* The leaf that slot names, checked to be a leaf block of this directory. */
static int dir_slot_read(struct lunfs_vol *v, struct inode_mem *dim, const struct lunfs_dir_state *ds,
			 uint64_t slot, uint64_t *lblk)
{
	struct lunfs_dir_table *t;
	struct mc_entry *e = NULL;
	int ret;

	t = malloc(sizeof(*t));
	if (t == NULL) {
		return -ENOMEM;
	}
	ret = dir_table_load(v, dim, slot / LUNFS_DIR_TABLE_SLOTS, &e, t);
	if (ret != 0) {
		goto out;
	}
	*lblk = t->leaf[slot % LUNFS_DIR_TABLE_SLOTS];
	mc_put(v->mc, e);
	if (*lblk < LUNFS_DIR_FIRST_LEAF || *lblk >= ds->next_lblk) {
		ret = -EUCLEAN;
	}
out:
	free(t);
	return ret;
}

/* Point slots [first, first + count) at leaf lblk. */
static int dir_slots_set(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim, uint64_t first,
			 uint64_t count, uint64_t lblk)
{
	struct lunfs_dir_table *t;
	struct mc_entry *e = NULL;
	uint64_t end = first + count;
	int ret = 0;

	t = malloc(sizeof(*t));
	if (t == NULL) {
		return -ENOMEM;
	}
	for (uint64_t b = first / LUNFS_DIR_TABLE_SLOTS; b * LUNFS_DIR_TABLE_SLOTS < end; b++) {
		uint64_t lo = b * LUNFS_DIR_TABLE_SLOTS;

		ret = dir_table_load(v, dim, b, &e, t);
		if (ret != 0) {
			break;
		}
		for (uint64_t s = lo > first ? lo : first; s < end && s < lo + LUNFS_DIR_TABLE_SLOTS; s++) {
			t->leaf[s - lo] = lblk;
		}
		ret = jnl_dirty(h, e);
		if (ret == 0) {
			dir_table_encode(&v->codec, t, e->addr, e->buf);
		}
		mc_put(v->mc, e);
		if (ret != 0) {
			break;
		}
	}
	free(t);
	return ret;
}

/* Double the table: global_depth + 1, new slot i = old slot i >> 1. All
 * table blocks (old and new) are taken into the handle before any is
 * rewritten, so the rewrite itself cannot fail half way. */
static int dir_table_double(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim,
			    struct lunfs_dir_state *ds)
{
	uint32_t gd = ds->global_depth;
	uint64_t old_n = 1ull << gd, new_n = old_n << 1;
	uint64_t old_blocks = dir_table_blocks(gd), new_blocks = dir_table_blocks(gd + 1);
	struct lunfs_dir_table *t = NULL;
	struct mc_entry **ents = NULL;
	uint64_t *slots = NULL;
	uint64_t b;
	int ret = 0;

	if (gd >= LUNFS_DIR_MAX_DEPTH) {
		return -EINVAL;
	}
	/* The doubling is one atomic change: all its table blocks must fit
	 * in one transaction beside what the running one may already hold
	 * (up to a quarter of the ring). Refuse cleanly, before touching
	 * anything, when this host's journal is too small for it. */
	if (new_blocks + DIR_DOUBLE_MARGIN > v->sb.journal_size / LUNFS_META_BLOCK_SIZE * 3 / 4) {
		return -ENOSPC;
	}
	t = malloc(sizeof(*t));
	slots = malloc(old_n * sizeof(*slots));
	ents = calloc(new_blocks, sizeof(*ents));
	if (t == NULL || slots == NULL || ents == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (b = 0; b < old_blocks; b++) {
		uint64_t lo = b * LUNFS_DIR_TABLE_SLOTS;

		ret = dir_table_load(v, dim, b, &ents[b], t);
		if (ret != 0) {
			goto out;
		}
		for (uint64_t s = lo; s < old_n && s < lo + LUNFS_DIR_TABLE_SLOTS; s++) {
			slots[s] = t->leaf[s - lo];
			if (slots[s] < LUNFS_DIR_FIRST_LEAF || slots[s] >= ds->next_lblk) {
				ret = -EUCLEAN;
				goto out;
			}
		}
		ret = jnl_dirty(h, ents[b]);
		if (ret != 0) {
			goto out;
		}
	}
	/* New table blocks start as all-unset tables, which is what slots at
	 * or beyond 2^global_depth must be: consistent before the rewrite. */
	for (; b < new_blocks; b++) {
		struct lunfs_map_entry me;
		uint64_t run;

		/* A doubling that failed earlier may have mapped it already. */
		ret = bmap_lookup(v, dim, b, &me, &run);
		if (ret == 0 && me.addr != 0) {
			ret = mc_get(v->mc, me.addr, LUNFS_META_BLOCK_SIZE, MC_NOREAD, &ents[b]);
			if (ret == 0) {
				ret = jnl_dirty(h, ents[b]);
			}
		} else if (ret == 0) {
			ret = dir_blk_new(v, h, dim, b, &ents[b]);
		}
		if (ret != 0) {
			goto out;
		}
		memset(t, 0, sizeof(*t));
		t->ino = dim->ino;
		t->first_slot = b * LUNFS_DIR_TABLE_SLOTS;
		dir_table_encode(&v->codec, t, ents[b]->addr, ents[b]->buf);
	}
	for (b = 0; b < new_blocks; b++) {
		uint64_t lo = b * LUNFS_DIR_TABLE_SLOTS;

		memset(t, 0, sizeof(*t));
		t->ino = dim->ino;
		t->first_slot = lo;
		for (uint64_t s = lo; s < new_n && s < lo + LUNFS_DIR_TABLE_SLOTS; s++) {
			t->leaf[s - lo] = slots[s >> 1];
		}
		dir_table_encode(&v->codec, t, ents[b]->addr, ents[b]->buf);
	}
	ds->global_depth = gd + 1;
out:
	if (ents != NULL) {
		for (b = 0; b < new_blocks; b++) {
			if (ents[b] != NULL) {
				mc_put(v->mc, ents[b]);
			}
		}
	}
	free(ents);
	free(slots);
	free(t);
	return ret;
}

/* ---- leaves --------------------------------------------------------------- */

static void dir_leaf_release(struct lunfs_vol *v, struct dir_leafbuf *lb)
{
	if (lb->e != NULL) {
		mc_put(v->mc, lb->e);
		lb->e = NULL;
	}
}

/* Load leaf lblk and check it against the directory: owner, depth within
 * the global depth, chain links only at maximum depth and inside the leaf
 * area, every entry's hash under the leaf's prefix. */
static int dir_leaf_load(struct lunfs_vol *v, struct inode_mem *dim, const struct lunfs_dir_state *ds,
			 uint64_t lblk, struct dir_leafbuf *lb)
{
	uint64_t mask;
	int ret;

	lb->lblk = lblk;
	lb->e = NULL;
	ret = dir_blk_read(v, dim, lblk, &lb->e);
	if (ret != 0) {
		return ret;
	}
	lb->leaf.ents = lb->ents;
	ret = mc_frame_check(lb->e, &v->codec, LUNFS_DIR_LEAF_MAGIC);
	if (ret == 0) {
		ret = dir_leaf_parse(lb->e->buf, &lb->leaf);
	}
	if (ret != 0) {
		ret = -EUCLEAN;
		goto out;
	}
	ret = -EUCLEAN;
	if (lb->leaf.ino != dim->ino || lb->leaf.local_depth > ds->global_depth) {
		goto out;
	}
	if (lb->leaf.next != 0 && (lb->leaf.local_depth != LUNFS_DIR_MAX_DEPTH ||
				   lb->leaf.next < LUNFS_DIR_FIRST_LEAF || lb->leaf.next >= ds->next_lblk)) {
		goto out;
	}
	mask = dir_prefix_mask(lb->leaf.local_depth);
	lb->used = 0;
	for (unsigned i = 0; i < lb->leaf.nentries; i++) {
		if ((lb->ents[i].hash & mask) != lb->leaf.prefix) {
			goto out;
		}
		lb->used += dirent_rec_len(lb->ents[i].name_len);
	}
	ret = 0;
out:
	if (ret != 0) {
		dir_leaf_release(v, lb);
	}
	return ret;
}

/* Load the leaf a slot names and check that its range covers the slot. */
static int dir_leaf_load_slot(struct lunfs_vol *v, struct inode_mem *dim, const struct lunfs_dir_state *ds,
			      uint64_t slot, struct dir_leafbuf *lb)
{
	uint64_t lblk;
	uint32_t ld;
	int ret;

	ret = dir_slot_read(v, dim, ds, slot, &lblk);
	if (ret != 0) {
		return ret;
	}
	ret = dir_leaf_load(v, dim, ds, lblk, lb);
	if (ret != 0) {
		return ret;
	}
	ld = lb->leaf.local_depth;
	if (ld > 0 && (slot >> (ds->global_depth - ld)) != (lb->leaf.prefix >> (64 - ld))) {
		dir_leaf_release(v, lb);
		return -EUCLEAN;
	}
	return 0;
}

static int dir_leaf_write(struct lunfs_vol *v, struct jnl_handle *h, struct dir_leafbuf *lb)
{
	int ret;

	ret = jnl_dirty(h, lb->e);
	if (ret != 0) {
		return ret;
	}
	/* Encodes into a local image first and copies only on success. */
	return dir_leaf_encode(&v->codec, &lb->leaf, lb->e->addr, lb->e->buf);
}

static bool dir_leaf_fits(const struct dir_leafbuf *lb, uint32_t rec_len)
{
	return lb->leaf.nentries < LUNFS_DIR_LEAF_MAX_ENTRIES && lb->used + rec_len <= LUNFS_DIR_LEAF_DATA;
}

/* Insert in hash order (after equal hashes). The caller checked the room. */
static void dir_leaf_insert(struct dir_leafbuf *lb, const struct lunfs_dirent *d)
{
	unsigned i = lb->leaf.nentries;

	while (i > 0 && lb->ents[i - 1].hash > d->hash) {
		i--;
	}
	memmove(&lb->ents[i + 1], &lb->ents[i], (lb->leaf.nentries - i) * sizeof(lb->ents[0]));
	lb->ents[i] = *d;
	lb->leaf.nentries++;
	lb->used += dirent_rec_len(d->name_len);
}

static void dir_leaf_delete(struct dir_leafbuf *lb, unsigned i)
{
	lb->used -= dirent_rec_len(lb->ents[i].name_len);
	memmove(&lb->ents[i], &lb->ents[i + 1], (lb->leaf.nentries - i - 1) * sizeof(lb->ents[0]));
	lb->leaf.nentries--;
}

static int dir_leaf_index(const struct dir_leafbuf *lb, uint64_t hash, const char *name, size_t len)
{
	for (unsigned i = 0; i < lb->leaf.nentries; i++) {
		const struct lunfs_dirent *d = &lb->ents[i];

		if (d->hash > hash) {
			break;
		}
		if (d->hash == hash && d->name_len == len && memcmp(d->name, name, len) == 0) {
			return (int)i;
		}
	}
	return -1;
}

/* Find name. On success lb holds the leaf of the chain that has it, *idx
 * its index and *prev_lblk the chain predecessor (0 for a primary leaf).
 * -ENOENT otherwise, lb released. Chains are bounded by nleaves. */
static int dir_find(struct lunfs_vol *v, struct inode_mem *dim, const struct lunfs_dir_state *ds,
		    uint64_t hash, const char *name, size_t len, struct dir_leafbuf *lb, unsigned *idx,
		    uint64_t *prev_lblk)
{
	uint64_t prev = 0, steps = 0;
	int ret, i;

	ret = dir_leaf_load_slot(v, dim, ds, dir_slot_of(hash, ds->global_depth), lb);
	if (ret != 0) {
		return ret;
	}
	for (;;) {
		uint64_t next;

		i = dir_leaf_index(lb, hash, name, len);
		if (i >= 0) {
			*idx = (unsigned)i;
			*prev_lblk = prev;
			return 0;
		}
		next = lb->leaf.next;
		if (next == 0) {
			break;
		}
		if (++steps >= ds->nleaves) {
			dir_leaf_release(v, lb);
			return -EUCLEAN; /* a chain longer than the directory: a cycle */
		}
		prev = lb->lblk;
		dir_leaf_release(v, lb);
		ret = dir_leaf_load(v, dim, ds, next, lb);
		if (ret != 0) {
			return ret;
		}
	}
	dir_leaf_release(v, lb);
	return -ENOENT;
}

/* First leaf and table of an empty directory: slot 0 -> leaf 4096. The
 * leaf is written first so the table never names a missing leaf. */
static int dir_create(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim,
		      struct lunfs_dir_state *ds, struct dir_leafbuf *lb)
{
	struct lunfs_dir_table *t;
	struct mc_entry *e = NULL;
	int ret;

	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		return -ENOMEM;
	}
	ret = dir_blk_new(v, h, dim, LUNFS_DIR_FIRST_LEAF, &lb->e);
	if (ret != 0) {
		goto out;
	}
	lb->lblk = LUNFS_DIR_FIRST_LEAF;
	memset(&lb->leaf, 0, sizeof(lb->leaf));
	lb->leaf.ino = dim->ino;
	lb->leaf.ents = lb->ents;
	lb->used = 0;
	ret = dir_leaf_encode(&v->codec, &lb->leaf, lb->e->addr, lb->e->buf);
	dir_leaf_release(v, lb);
	if (ret != 0) {
		goto out;
	}
	ds->global_depth = 0;
	ds->nentries = 0;
	ds->next_lblk = LUNFS_DIR_FIRST_LEAF + 1;
	ds->nleaves = 1;
	ret = dir_blk_new(v, h, dim, 0, &e);
	if (ret != 0) {
		goto out;
	}
	t->ino = dim->ino;
	t->first_slot = 0;
	t->leaf[0] = LUNFS_DIR_FIRST_LEAF;
	dir_table_encode(&v->codec, t, e->addr, e->buf);
	mc_put(v->mc, e);
out:
	free(t);
	return ret;
}

/* Split the full primary leaf in lb (local depth < global depth), which
 * the caller loaded at some slot; lb is released on return. See the top
 * of the file for the write order. */
static int dir_leaf_split(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim,
			  struct lunfs_dir_state *ds, struct dir_leafbuf *lb, struct dir_leafbuf *nb)
{
	uint32_t ld = lb->leaf.local_depth, gd = ds->global_depth;
	uint64_t bit = dir_split_bit(ld);
	uint64_t first, count;
	unsigned keep = 0;
	int ret;

	nb->e = NULL;
	nb->lblk = ds->next_lblk;
	ret = dir_blk_new(v, h, dim, nb->lblk, &nb->e);
	if (ret != 0) {
		goto out;
	}
	/* The new block is mapped: account it now so that the state stays
	 * truthful even if a later step fails. */
	ds->next_lblk++;
	ds->nleaves++;
	memset(&nb->leaf, 0, sizeof(nb->leaf));
	nb->leaf.ino = dim->ino;
	nb->leaf.seq = lb->leaf.seq;
	nb->leaf.local_depth = (uint16_t)(ld + 1);
	nb->leaf.prefix = lb->leaf.prefix | bit;
	nb->leaf.ents = nb->ents;
	nb->used = 0;
	for (unsigned i = 0; i < lb->leaf.nentries; i++) {
		if ((lb->ents[i].hash & bit) != 0) {
			nb->ents[nb->leaf.nentries++] = lb->ents[i];
			nb->used += dirent_rec_len(lb->ents[i].name_len);
		} else {
			lb->ents[keep++] = lb->ents[i];
		}
	}
	ret = dir_leaf_encode(&v->codec, &nb->leaf, nb->e->addr, nb->e->buf);
	if (ret != 0) {
		goto out;
	}
	first = dir_slot_of(lb->leaf.prefix, gd);
	count = 1ull << (gd - ld);
	ret = dir_slots_set(v, h, dim, first + count / 2, count / 2, nb->lblk);
	if (ret != 0) {
		goto out;
	}
	lb->leaf.nentries = (uint16_t)keep;
	lb->used -= nb->used;
	lb->leaf.local_depth = (uint16_t)(ld + 1);
	ret = dir_leaf_write(v, h, lb);
out:
	dir_leaf_release(v, nb);
	dir_leaf_release(v, lb);
	return ret;
}

/* Chain a new overflow leaf holding d after the last leaf of a chain (lb,
 * at maximum depth and full). */
static int dir_leaf_overflow(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim,
			     struct lunfs_dir_state *ds, struct dir_leafbuf *lb, struct dir_leafbuf *nb,
			     const struct lunfs_dirent *d)
{
	int ret;

	nb->lblk = ds->next_lblk;
	ret = dir_blk_new(v, h, dim, nb->lblk, &nb->e);
	if (ret != 0) {
		return ret;
	}
	ds->next_lblk++;
	ds->nleaves++;
	memset(&nb->leaf, 0, sizeof(nb->leaf));
	nb->leaf.ino = dim->ino;
	nb->leaf.local_depth = lb->leaf.local_depth;
	nb->leaf.prefix = lb->leaf.prefix;
	nb->leaf.ents = nb->ents;
	nb->used = 0;
	dir_leaf_insert(nb, d);
	ret = dir_leaf_encode(&v->codec, &nb->leaf, nb->e->addr, nb->e->buf);
	dir_leaf_release(v, nb);
	if (ret != 0) {
		return ret;
	}
	lb->leaf.next = nb->lblk;
	return dir_leaf_write(v, h, lb);
}

/* ---- the interface ---------------------------------------------------------- */

int dir_lookup(struct lunfs_vol *v, struct inode_mem *dim, const char *name, size_t len, uint64_t *ino,
	       uint8_t *type)
{
	struct lunfs_dir_state ds;
	struct dir_leafbuf *lb = NULL;
	uint64_t prev;
	unsigned idx;
	int ret;

	ret = dir_name_check(name, len);
	if (ret != 0) {
		return ret;
	}
	ret = dir_state_load(dim, &ds);
	if (ret != 0) {
		return ret;
	}
	if (ds.next_lblk == 0) {
		return -ENOENT;
	}
	lb = malloc(sizeof(*lb));
	if (lb == NULL) {
		return -ENOMEM;
	}
	ret = dir_find(v, dim, &ds, dir_name_hash(v->sb.dir_hash_key, name, len), name, len, lb, &idx,
		       &prev);
	if (ret != 0) {
		goto out;
	}
	*ino = lb->ents[idx].ino;
	if (type != NULL) {
		*type = lb->ents[idx].type;
	}
	dir_leaf_release(v, lb);
out:
	free(lb);
	return ret;
}

int dir_add(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim, const char *name, size_t len,
	    uint64_t ino, uint8_t type)
{
	struct lunfs_dir_state ds;
	struct dir_leafbuf *lb = NULL, *nb = NULL;
	struct lunfs_dirent d;
	bool changed = false;
	uint32_t rl = dirent_rec_len((uint32_t)len);
	uint64_t prev;
	unsigned idx;
	int ret, ret2;

	ret = dir_name_check(name, len);
	if (ret != 0) {
		return ret;
	}
	if (!dir_type_ok(type) || ino == LUNFS_INO_NONE) {
		return -EINVAL;
	}
	ret = dir_state_load(dim, &ds);
	if (ret != 0) {
		return ret;
	}
	lb = malloc(sizeof(*lb));
	nb = malloc(sizeof(*nb));
	if (lb == NULL || nb == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	lb->e = NULL;
	nb->e = NULL;
	memset(&d, 0, sizeof(d));
	d.hash = dir_name_hash(v->sb.dir_hash_key, name, len);
	d.ino = ino;
	d.type = type;
	d.name_len = (uint8_t)len;
	memcpy(d.name, name, len);

	if (ds.next_lblk == 0) {
		changed = true;
		ret = dir_create(v, h, dim, &ds, lb);
		if (ret != 0) {
			goto out;
		}
	} else {
		ret = dir_find(v, dim, &ds, d.hash, name, len, lb, &idx, &prev);
		if (ret == 0) {
			dir_leaf_release(v, lb);
			ret = -EEXIST;
			goto out;
		}
		if (ret != -ENOENT) {
			goto out;
		}
	}
	for (;;) {
		uint64_t steps = 0;

		ret = dir_leaf_load_slot(v, dim, &ds, dir_slot_of(d.hash, ds.global_depth), lb);
		if (ret != 0) {
			goto out;
		}
		/* Only a leaf at maximum depth has a chain: find room in it. */
		while (!dir_leaf_fits(lb, rl) && lb->leaf.next != 0) {
			uint64_t next = lb->leaf.next;

			dir_leaf_release(v, lb);
			if (++steps >= ds.nleaves) {
				ret = -EUCLEAN;
				goto out;
			}
			ret = dir_leaf_load(v, dim, &ds, next, lb);
			if (ret != 0) {
				goto out;
			}
		}
		if (dir_leaf_fits(lb, rl)) {
			dir_leaf_insert(lb, &d);
			ret = dir_leaf_write(v, h, lb);
			dir_leaf_release(v, lb);
			if (ret != 0) {
				goto out;
			}
			ds.nentries++;
			changed = true;
			break;
		}
		changed = true;
		if (lb->leaf.local_depth >= LUNFS_DIR_MAX_DEPTH) {
			ret = dir_leaf_overflow(v, h, dim, &ds, lb, nb, &d);
			dir_leaf_release(v, lb);
			if (ret != 0) {
				goto out;
			}
			ds.nentries++;
			break;
		}
		if (lb->leaf.local_depth == ds.global_depth) {
			/* The leaf is loaded again after the doubling: its
			 * block is unchanged, but keep the order of reads
			 * simple and the references short. */
			dir_leaf_release(v, lb);
			ret = dir_table_double(v, h, dim, &ds);
			if (ret != 0) {
				goto out;
			}
			continue;
		}
		ret = dir_leaf_split(v, h, dim, &ds, lb, nb);
		if (ret != 0) {
			goto out;
		}
	}
out:
	if (changed) {
		dir_state_store(dim, &ds);
		ret2 = inode_dirty(h, dim);
		if (ret == 0) {
			ret = ret2;
		}
	}
	free(nb);
	free(lb);
	return ret;
}

int dir_remove(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim, const char *name, size_t len,
	       uint64_t *ino)
{
	struct lunfs_dir_state ds;
	struct dir_leafbuf *lb = NULL, *pb = NULL;
	bool changed = false;
	uint64_t prev;
	unsigned idx;
	int ret, ret2;

	ret = dir_name_check(name, len);
	if (ret != 0) {
		return ret;
	}
	ret = dir_state_load(dim, &ds);
	if (ret != 0) {
		return ret;
	}
	if (ds.next_lblk == 0) {
		return -ENOENT;
	}
	lb = malloc(sizeof(*lb));
	pb = malloc(sizeof(*pb));
	if (lb == NULL || pb == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	lb->e = NULL;
	pb->e = NULL;
	ret = dir_find(v, dim, &ds, dir_name_hash(v->sb.dir_hash_key, name, len), name, len, lb, &idx, &prev);
	if (ret != 0) {
		goto out;
	}
	if (ino != NULL) {
		*ino = lb->ents[idx].ino;
	}
	dir_leaf_delete(lb, idx);
	if (ds.nentries <= 1) {
		/* The last entry: the directory goes back to having no blocks. */
		dir_leaf_release(v, lb);
		changed = true;
		ret = dir_blocks_free(v, h, dim, &ds);
		goto out;
	}
	if (prev != 0 && lb->leaf.nentries == 0) {
		/* An empty overflow leaf: unlink it from its chain, free it. */
		uint64_t next = lb->leaf.next, lblk = lb->lblk;

		dir_leaf_release(v, lb);
		ret = dir_leaf_load(v, dim, &ds, prev, pb);
		if (ret != 0) {
			goto out;
		}
		pb->leaf.next = next;
		ret = dir_leaf_write(v, h, pb);
		dir_leaf_release(v, pb);
		if (ret != 0) {
			goto out;
		}
		changed = true;
		ds.nentries--;
		ds.nleaves--;
		ret = dir_blk_free(v, h, dim, lblk);
		goto out;
	}
	ret = dir_leaf_write(v, h, lb);
	dir_leaf_release(v, lb);
	if (ret != 0) {
		goto out;
	}
	changed = true;
	ds.nentries--;
out:
	if (changed) {
		dir_state_store(dim, &ds);
		ret2 = inode_dirty(h, dim);
		if (ret == 0) {
			ret = ret2;
		}
	}
	free(pb);
	free(lb);
	return ret;
}

int dir_replace(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim, const char *name,
		size_t len, uint64_t ino, uint8_t type, uint64_t *old_ino)
{
	struct lunfs_dir_state ds;
	struct dir_leafbuf *lb = NULL;
	uint64_t prev;
	unsigned idx;
	int ret;

	ret = dir_name_check(name, len);
	if (ret != 0) {
		return ret;
	}
	if (!dir_type_ok(type) || ino == LUNFS_INO_NONE) {
		return -EINVAL;
	}
	ret = dir_state_load(dim, &ds);
	if (ret != 0) {
		return ret;
	}
	if (ds.next_lblk == 0) {
		return -ENOENT;
	}
	lb = malloc(sizeof(*lb));
	if (lb == NULL) {
		return -ENOMEM;
	}
	ret = dir_find(v, dim, &ds, dir_name_hash(v->sb.dir_hash_key, name, len), name, len, lb, &idx, &prev);
	if (ret != 0) {
		goto out;
	}
	if (old_ino != NULL) {
		*old_ino = lb->ents[idx].ino;
	}
	lb->ents[idx].ino = ino;
	lb->ents[idx].type = type;
	ret = dir_leaf_write(v, h, lb);
	dir_leaf_release(v, lb);
out:
	free(lb);
	return ret;
}

static int dir_ent_cmp(const void *a, const void *b)
{
	const struct lunfs_dirent *x = a, *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c;

	if (x->hash != y->hash) {
		return x->hash < y->hash ? -1 : 1;
	}
	c = memcmp(x->name, y->name, n);
	if (c != 0) {
		return c;
	}
	return (int)x->name_len - (int)y->name_len;
}

/* Gather a leaf and its overflow chain into *list (hash order). */
static int dir_chain_collect(struct lunfs_vol *v, struct inode_mem *dim, const struct lunfs_dir_state *ds,
			     struct dir_leafbuf *lb, struct lunfs_dirent **list, size_t *cap, size_t *n)
{
	uint64_t steps = 0;
	bool chained = lb->leaf.next != 0;
	int ret = 0;

	*n = 0;
	for (;;) {
		uint64_t next = lb->leaf.next;

		if (*n + lb->leaf.nentries > *cap) {
			size_t ncap = (*n + lb->leaf.nentries) * 2;
			struct lunfs_dirent *nl = realloc(*list, ncap * sizeof(**list));

			if (nl == NULL) {
				ret = -ENOMEM;
				break;
			}
			*list = nl;
			*cap = ncap;
		}
		if (lb->leaf.nentries > 0) { /* *list may still be NULL */
			memcpy(*list + *n, lb->ents, lb->leaf.nentries * sizeof(**list));
			*n += lb->leaf.nentries;
		}
		dir_leaf_release(v, lb);
		if (next == 0) {
			break;
		}
		if (++steps >= ds->nleaves) {
			ret = -EUCLEAN;
			break;
		}
		ret = dir_leaf_load(v, dim, ds, next, lb);
		if (ret != 0) {
			break;
		}
	}
	dir_leaf_release(v, lb);
	if (ret == 0 && chained) {
		if (*n > 1) {
			qsort(*list, *n, sizeof(**list), dir_ent_cmp);
		}
	}
	return ret;
}

int dir_iterate(struct lunfs_vol *v, struct inode_mem *dim, uint64_t cookie, dir_iter_fn fn, void *arg)
{
	struct lunfs_dir_state ds;
	struct dir_leafbuf *lb = NULL;
	struct lunfs_dirent *list = NULL;
	size_t cap = 0, n = 0;
	uint64_t hmin = 0, slot, nslots;
	int ret;

	ret = dir_state_load(dim, &ds);
	if (ret != 0) {
		return ret;
	}
	if (ds.next_lblk == 0) {
		return 0;
	}
	if (cookie >= DIR_COOKIE_FIRST) {
		uint64_t c = cookie - DIR_COOKIE_FIRST;

		/* The largest cookie is 2^62 + 2: nothing follows it. */
		if (c >= (1ull << 62) - 1) {
			return 0;
		}
		/* Cookie > cookie  <=>  hash >> 2 > c  <=>  hash >= (c + 1) << 2. */
		hmin = (c + 1) << 2;
	}
	lb = malloc(sizeof(*lb));
	if (lb == NULL) {
		return -ENOMEM;
	}
	lb->e = NULL;
	nslots = 1ull << ds.global_depth;
	slot = dir_slot_of(hmin, ds.global_depth);
	while (slot < nslots) {
		uint32_t ld;
		uint64_t first;

		ret = dir_leaf_load_slot(v, dim, &ds, slot, lb);
		if (ret != 0) {
			break;
		}
		ld = lb->leaf.local_depth;
		first = dir_slot_of(lb->leaf.prefix, ds.global_depth);
		/* dir_leaf_load_slot checked first <= slot < first + span. */
		slot = first + (1ull << (ds.global_depth - ld));
		ret = dir_chain_collect(v, dim, &ds, lb, &list, &cap, &n);
		if (ret != 0) {
			break;
		}
		for (size_t i = 0; i < n && ret == 0; i++) {
			if (list[i].hash < hmin) {
				continue;
			}
			ret = fn(arg, list[i].name, list[i].name_len, list[i].ino, list[i].type,
				 dir_cookie_of(list[i].hash));
		}
		if (ret != 0) {
			/* A positive value is the caller's "stop" (buffer full). */
			if (ret > 0) {
				ret = 0;
			}
			break;
		}
	}
	free(list);
	free(lb);
	return ret;
}

bool dir_is_empty(const struct inode_mem *dim)
{
	struct lunfs_dir_state ds;

	inode_dir_state_get(&dim->di, &ds);
	return ds.nentries == 0;
}

int dir_free(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim)
{
	struct lunfs_dir_state ds;
	int ret, ret2;

	inode_dir_state_get(&dim->di, &ds);
	if (ds.nentries != 0) {
		return -ENOTEMPTY;
	}
	if (ds.next_lblk == 0 && dim->di.map_height == 0) {
		return 0;
	}
	/* Even a corrupt state is freed: whatever the map holds goes. */
	if (ds.next_lblk != 0 && ds.next_lblk < LUNFS_DIR_FIRST_LEAF) {
		ds.next_lblk = 0;
	}
	ret = dir_blocks_free(v, h, dim, &ds);
	dir_state_store(dim, &ds);
	ret2 = inode_dirty(h, dim);
	return ret != 0 ? ret : ret2;
}

/* An estimate of the sectors and blocks one dir_add, dir_remove or
 * dir_replace dirties. Blocks dirtied twice in one handle count once, so a
 * table doubling followed by splits costs every table block at the next
 * depth once; then the leaves of DIR_SPLITS_BUDGETED splits and of an
 * insert or overflow, the new blocks' map paths and allocations, and the
 * inode. When the directory is about to lose its last entry, add freeing
 * all its blocks (map leaves and allocation bitmaps, which many blocks
 * share). A cascade of several doublings in one insert (only ever seen
 * with hash prefixes colliding far beyond chance) may exceed the estimate;
 * the journal still bounds a handle by its ring. Capped at
 * DIR_CREDITS_MAX. */
unsigned dir_change_credits(const struct inode_mem *dim)
{
	struct lunfs_dir_state ds;
	uint64_t tb, per_new, c;
	uint32_t gd;

	inode_dir_state_get(&dim->di, &ds);
	gd = ds.global_depth < LUNFS_DIR_MAX_DEPTH ? ds.global_depth + 1 : LUNFS_DIR_MAX_DEPTH;
	tb = dir_table_blocks(gd);
	per_new = bmap_set_credits(dim) + DIR_ALLOC_CREDITS;
	c = 1 + tb + 2 * (DIR_SPLITS_BUDGETED + 1) + (DIR_SPLITS_BUDGETED + 2) * per_new;
	if (ds.nentries <= 1) {
		uint64_t blocks = dir_table_blocks(ds.global_depth) + ds.nleaves;

		c += 2 * LUNFS_MAP_MAX_HEIGHT + blocks / 64 + DIR_ALLOC_CREDITS * (1 + blocks / 512);
	}
	return c > DIR_CREDITS_MAX ? DIR_CREDITS_MAX : (unsigned)c;
}
