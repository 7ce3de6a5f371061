/*
 * In-memory inodes: the icache, reading and writing inode records,
 * allocating and freeing inode slots, and the orphan table
 * (fs_internal.h "inode"; docs/FORMAT.md "Inodes", "Orphan table").
 *
 * icache
 *   A hash table of struct inode_mem keyed by ino, under ic->lock (the
 *   innermost lock together with the mcache's). An inode_mem holds its
 *   record's mcache entry pinned (im->rec), so im->di and the record stay
 *   in step: inode_dirty() re-encodes di into the pinned entry under a
 *   journal handle, and the journal writes it home.
 *   Lifetime: an inode_mem lives while refs + nlookup + nopen > 0. When the
 *   three reach zero it leaves memory; if in addition nlink is 0 (an
 *   unlinked file whose last user went away) it is first reclaimed on disk
 *   (inode_reclaim). While that happens the inode stays hashed with `dead`
 *   set, so nobody can get it or allocate a second inode_mem for its ino.
 *   A miss reads and decodes the record without ic->lock held; if another
 *   thread inserted the same ino meanwhile, the loser's copy is dropped.
 *
 * Reclaim needs vol.meta_lock, which sits above every inode lock and the
 *   icache mutex. inode_put/inode_forget/inode_open_drop may therefore
 *   take meta_lock themselves and must be called without it; the _locked
 *   variant is for callers that already hold meta_lock (and no inode lock).
 *
 * Slots and generations
 *   An inode slot is a unit of an INODE cluster: its lock record, then its
 *   inode record one sector later. The bitmap decides whether a slot is in
 *   use; a freed inode keeps its record with mode 0 and nlink 0 so that
 *   the next inode in the slot continues the generation.
 *
 * Orphans
 *   An inode with nlink 0 that is still open is listed in this host's
 *   orphan table (journal blocks 1..8), journaled like any other metadata,
 *   so after a crash the recoverer (or our own next mount, orphan_recover)
 *   frees what the dead users left behind.
 *
 * Lock order: meta_lock < im->lock < ic->lock (< mcache).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fs_internal.h"
#include "lunfs/cluster.h"
#include "lunfs/inode.h"
#include "lunfs/journal.h"

#define ICACHE_SHIFT0 12u /* 4096 chains to start; the table grows */

struct icache {
	struct lunfs_vol *v;
	pthread_mutex_t lock;        /* the table and every inode_mem's counters */
	struct htab table;
};

int64_t vol_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

int icache_create(struct lunfs_vol *v, struct icache **out)
{
	struct icache *ic = calloc(1, sizeof(*ic));

	if (ic == NULL) {
		return -ENOMEM;
	}
	ic->v = v;
	if (htab_init(&ic->table, ICACHE_SHIFT0) != 0) {
		free(ic);
		return -ENOMEM;
	}
	if (pthread_mutex_init(&ic->lock, NULL) != 0) {
		htab_fini(&ic->table);
		free(ic);
		return -ENOMEM;
	}
	*out = ic;
	return 0;
}

static void inode_mem_free(struct lunfs_vol *v, struct inode_mem *im)
{
	if (im->rec != NULL) {
		mc_put(v->mc, im->rec);
	}
	pthread_rwlock_destroy(&im->lock);
	free(im);
}

static void icache_drop_one(struct htab_link *l, void *v)
{
	inode_mem_free(v, HTAB_ENTRY(l, struct inode_mem, hlink));
}

/* At unmount: whatever is still cached goes (an unlinked inode that is
 * still cached stays on the orphan table for the next mount). */
void icache_destroy(struct icache *ic)
{
	if (ic == NULL) {
		return;
	}
	htab_drain(&ic->table, icache_drop_one, ic->v);
	htab_fini(&ic->table);
	pthread_mutex_destroy(&ic->lock);
	free(ic);
}

static struct inode_mem *icache_find_locked(struct icache *ic, uint64_t ino)
{
	struct htab_link *l = htab_find(&ic->table, ino);

	return l != NULL ? HTAB_ENTRY(l, struct inode_mem, hlink) : NULL;
}

static void icache_insert_locked(struct icache *ic, struct inode_mem *im)
{
	im->hlink.key = im->ino;
	htab_insert(&ic->table, &im->hlink);
}

static void icache_remove_locked(struct icache *ic, struct inode_mem *im)
{
	htab_remove(&ic->table, &im->hlink);
}

static int inode_mem_new(struct lunfs_vol *v, uint64_t ino, struct inode_mem **out)
{
	struct inode_mem *im = calloc(1, sizeof(*im));

	if (im == NULL) {
		return -ENOMEM;
	}
	if (pthread_rwlock_init(&im->lock, NULL) != 0) {
		free(im);
		return -ENOMEM;
	}
	im->ino = ino;
	im->vol = v;
	*out = im;
	return 0;
}

static int inode_rec_addr(const struct lunfs_vol *v, uint64_t ino, uint64_t *rec_addr)
{
	uint64_t lock_addr;
	int ret = layout_ino_addr(&v->sb, ino, &lock_addr);

	if (ret != 0) {
		return ret;
	}
	*rec_addr = lock_addr + v->sb.sector_size;
	return 0;
}

/* Inverse of layout_ino_addr: the ino of the slot at byte address slot_addr. */
int inode_ino_of_slot(const struct lunfs_vol *v, uint64_t slot_addr, uint64_t *ino)
{
	const struct lunfs_super *sb = &v->sb;
	uint64_t base = sb->regions[LUNFS_REGION_DATA].offset;
	uint64_t rel, cl, unit, check;

	if (slot_addr < base || sb->inode_slot_size == 0) {
		return -EUCLEAN;
	}
	rel = slot_addr - base;
	cl = rel / sb->cluster_size;
	unit = (rel % sb->cluster_size) / sb->inode_slot_size;
	*ino = cl * layout_inodes_per_cluster(sb) + unit;
	if (layout_ino_addr(sb, *ino, &check) != 0 || check != slot_addr) {
		return -EUCLEAN;
	}
	return 0;
}

/* A cached inode gets one more reference, unless it is being reclaimed. */
static int icache_take_locked(struct inode_mem *found, struct inode_mem **out)
{
	if (found->dead) {
		return -ENOENT;
	}
	found->refs++;
	*out = found;
	return 0;
}

int inode_get(struct lunfs_vol *v, uint64_t ino, struct inode_mem **out)
{
	struct icache *ic = v->ic;
	struct inode_mem *im = NULL, *found;
	uint64_t rec_addr;
	int ret;

	pthread_mutex_lock(&ic->lock);
	found = icache_find_locked(ic, ino);
	if (found != NULL) {
		ret = icache_take_locked(found, out);
		pthread_mutex_unlock(&ic->lock);
		return ret;
	}
	pthread_mutex_unlock(&ic->lock);

	ret = inode_rec_addr(v, ino, &rec_addr);
	if (ret != 0) {
		return -ENOENT;
	}
	ret = inode_mem_new(v, ino, &im);
	if (ret != 0) {
		return ret;
	}
	ret = mc_get(v->mc, rec_addr, v->sb.sector_size, 0, &im->rec);
	if (ret != 0) {
		goto out;
	}
	ret = inode_decode(&v->codec, im->rec->buf, rec_addr, ino, &im->di);
	if (ret == -ENODATA || ret == -ESTALE || (ret == 0 && im->di.mode == 0)) {
		/* Never written, an earlier volume's, or freed: no inode here. */
		ret = -ENOENT;
	}
	if (ret != 0) {
		goto out;
	}
	pthread_mutex_lock(&ic->lock);
	found = icache_find_locked(ic, ino);
	if (found != NULL) {
		/* Another thread read it meanwhile: use its copy. */
		ret = icache_take_locked(found, out);
		pthread_mutex_unlock(&ic->lock);
		goto out;
	}
	im->refs = 1;
	icache_insert_locked(ic, im);
	pthread_mutex_unlock(&ic->lock);
	*out = im;
	return 0;
out:
	inode_mem_free(v, im);
	return ret;
}

/* Counters are all zero (ic->lock held). Returns true if the caller must
 * reclaim the inode on disk; otherwise im has been unhashed and the caller
 * frees it. Either way im is no longer findable as a live inode. */
static bool inode_last_user_locked(struct icache *ic, struct inode_mem *im)
{
	/* Nobody else holds the inode, so di cannot change under us. Mode 0:
	 * reclaimed already (orphan_recover reclaims explicitly). */
	if (im->di.nlink == 0 && im->di.mode != 0 && !im->dead && !ic->v->opts.read_only) {
		im->dead = true;
		im->refs = 1; /* the reclaimer's */
		return true;
	}
	icache_remove_locked(ic, im);
	return false;
}

static bool inode_idle(const struct inode_mem *im)
{
	return im->refs == 0 && im->nlookup == 0 && im->nopen == 0;
}

/* The inode lost its last user: free it from memory, and on disk too when
 * it has no link left. with_meta: the caller holds vol.meta_lock. */
static void inode_release_idle(struct lunfs_vol *v, struct inode_mem *im, bool reclaim,
			       bool with_meta)
{
	struct icache *ic = v->ic;

	if (reclaim) {
		if (!with_meta) {
			pthread_mutex_lock(&v->meta_lock);
		}
		/* An error leaves the inode on the orphan table (if it was on
		 * it): the next mount finishes the job. */
		(void)inode_reclaim(v, im);
		pthread_mutex_lock(&ic->lock);
		icache_remove_locked(ic, im);
		pthread_mutex_unlock(&ic->lock);
		if (!with_meta) {
			pthread_mutex_unlock(&v->meta_lock);
		}
	}
	inode_mem_free(v, im);
}

static void inode_put_common(struct lunfs_vol *v, struct inode_mem *im, bool with_meta)
{
	struct icache *ic = v->ic;
	bool idle = false, reclaim = false;

	pthread_mutex_lock(&ic->lock);
	im->refs--;
	if (inode_idle(im)) {
		idle = true;
		reclaim = inode_last_user_locked(ic, im);
	}
	pthread_mutex_unlock(&ic->lock);
	if (idle) {
		inode_release_idle(v, im, reclaim, with_meta);
	}
}

void inode_put(struct lunfs_vol *v, struct inode_mem *im)
{
	inode_put_common(v, im, false);
}

void inode_put_locked(struct lunfs_vol *v, struct inode_mem *im)
{
	inode_put_common(v, im, true);
}

void inode_lookup_add(struct lunfs_vol *v, struct inode_mem *im, uint64_t n)
{
	pthread_mutex_lock(&v->ic->lock);
	im->nlookup += n;
	pthread_mutex_unlock(&v->ic->lock);
}

void inode_forget(struct lunfs_vol *v, uint64_t ino, uint64_t n)
{
	struct icache *ic = v->ic;
	struct inode_mem *im;
	bool idle = false, reclaim = false;

	pthread_mutex_lock(&ic->lock);
	im = icache_find_locked(ic, ino);
	if (im == NULL || im->dead) {
		pthread_mutex_unlock(&ic->lock);
		return;
	}
	im->nlookup = n >= im->nlookup ? 0 : im->nlookup - n;
	if (inode_idle(im)) {
		idle = true;
		reclaim = inode_last_user_locked(ic, im);
	}
	pthread_mutex_unlock(&ic->lock);
	if (idle) {
		inode_release_idle(v, im, reclaim, false);
	}
}

void inode_open_add(struct lunfs_vol *v, struct inode_mem *im)
{
	pthread_mutex_lock(&v->ic->lock);
	im->nopen++;
	pthread_mutex_unlock(&v->ic->lock);
}

void inode_open_drop(struct lunfs_vol *v, struct inode_mem *im)
{
	struct icache *ic = v->ic;
	bool idle = false, reclaim = false;

	pthread_mutex_lock(&ic->lock);
	if (im->nopen > 0) {
		im->nopen--;
	}
	if (inode_idle(im)) {
		idle = true;
		reclaim = inode_last_user_locked(ic, im);
	}
	pthread_mutex_unlock(&ic->lock);
	if (idle) {
		inode_release_idle(v, im, reclaim, false);
	}
}

int inode_dirty(struct jnl_handle *h, struct inode_mem *im)
{
	struct lunfs_vol *v = im->vol;
	int ret = jnl_dirty(h, im->rec);

	if (ret != 0) {
		return ret;
	}
	im->di.version++;
	im->di.writer_slot = (uint16_t)(v->slot + 1);
	im->di.writer_gen = v->gen;
	inode_encode(&v->codec, &im->di, im->rec->addr, im->rec->buf);
	return 0;
}

static void inode_di_init(struct lunfs_inode *d, uint64_t ino, uint32_t mode, uint32_t uid,
			  uint32_t gid, int64_t now)
{
	d->ino = ino;
	d->mode = mode;
	d->uid = uid;
	d->gid = gid;
	d->nlink = S_ISDIR(mode) ? 2 : 1;
	d->atime_ns = d->mtime_ns = d->ctime_ns = d->btime_ns = (uint64_t)now;
	d->map_unit = (S_ISDIR(mode) || S_ISLNK(mode)) ? LUNFS_MAP_META : LUNFS_MAP_FILE;
}

/* The slot's previous inode may still be in our icache although another
 * host deleted it (the kernel still knew it; inode_refresh marked it mode
 * 0): that inode_mem becomes the new inode (the kernel's node id is the
 * ino either way). -ENOENT: no such inode_mem, allocate one. */
static int inode_alloc_zombie(struct lunfs_vol *v, struct jnl_handle *h, uint64_t ino,
			      uint32_t mode, uint32_t uid, uint32_t gid, int64_t now,
			      struct inode_mem **out)
{
	struct icache *ic = v->ic;
	struct inode_mem *im;
	uint32_t gen;
	int ret;

	pthread_mutex_lock(&ic->lock);
	im = icache_find_locked(ic, ino);
	if (im == NULL) {
		pthread_mutex_unlock(&ic->lock);
		return -ENOENT;
	}
	if (im->dead || im->di.mode != 0) {
		/* A slot the bitmap called free has a live inode in memory. */
		pthread_mutex_unlock(&ic->lock);
		return -EUCLEAN;
	}
	im->refs++;
	pthread_mutex_unlock(&ic->lock);
	pthread_rwlock_wrlock(&im->lock);
	gen = im->di.generation + 1;
	memset(&im->di, 0, sizeof(im->di));
	inode_di_init(&im->di, ino, mode, uid, gid, now);
	im->di.generation = gen;
	ret = inode_dirty(h, im);
	pthread_rwlock_unlock(&im->lock);
	if (ret != 0) {
		im->di.mode = 0;
		inode_put_locked(v, im);
		return ret;
	}
	*out = im;
	return 0;
}

int inode_alloc(struct lunfs_vol *v, struct jnl_handle *h, uint32_t mode, uint32_t uid,
		uint32_t gid, uint64_t near_ino, struct inode_mem **out)
{
	struct icache *ic = v->ic;
	struct inode_mem *im = NULL;
	struct lunfs_inode old;
	uint64_t hint = 0, slot_addr, got, ino;
	int64_t now = vol_now_ns();
	bool slot_taken = false;
	int ret;

	if (near_ino != 0 && layout_ino_addr(&v->sb, near_ino, &hint) != 0) {
		hint = 0;
	}
	ret = alloc_units(v->alloc, h, LUNFS_CLUSTER_INODE, 1, hint, &slot_addr, &got);
	if (ret != 0) {
		return ret;
	}
	slot_taken = true;
	ret = inode_ino_of_slot(v, slot_addr, &ino);
	if (ret != 0) {
		goto out;
	}
	ret = inode_alloc_zombie(v, h, ino, mode, uid, gid, now, out);
	if (ret != -ENOENT) {
		if (ret == 0) {
			return 0;
		}
		goto out;
	}
	ret = inode_mem_new(v, ino, &im);
	if (ret != 0) {
		goto out;
	}
	ret = mc_get(v->mc, slot_addr + v->sb.sector_size, v->sb.sector_size, 0, &im->rec);
	if (ret != 0) {
		goto out;
	}
	/* A freed record (mode 0) still decodes: its generation continues. */
	if (inode_decode(&v->codec, im->rec->buf, im->rec->addr, ino, &old) == 0) {
		im->di.generation = old.generation + 1;
	} else {
		im->di.generation = 1;
	}
	im->di.ino = ino;
	im->di.mode = mode;
	im->di.uid = uid;
	im->di.gid = gid;
	im->di.nlink = S_ISDIR(mode) ? 2 : 1;
	im->di.atime_ns = im->di.mtime_ns = im->di.ctime_ns = im->di.btime_ns = (uint64_t)now;
	im->di.map_unit = (S_ISDIR(mode) || S_ISLNK(mode)) ? LUNFS_MAP_META : LUNFS_MAP_FILE;
	im->di.version = 0; /* inode_dirty makes it 1 */
	ret = inode_dirty(h, im);
	if (ret != 0) {
		goto out;
	}
	pthread_mutex_lock(&ic->lock);
	if (icache_find_locked(ic, ino) != NULL) {
		/* A slot the bitmap called free has a live inode in memory. */
		pthread_mutex_unlock(&ic->lock);
		ret = -EUCLEAN;
		goto out;
	}
	im->refs = 1;
	icache_insert_locked(ic, im);
	pthread_mutex_unlock(&ic->lock);
	*out = im;
	return 0;
out:
	if (im != NULL) {
		inode_mem_free(v, im);
	}
	if (slot_taken) {
		(void)alloc_free(v->alloc, h, LUNFS_CLUSTER_INODE, slot_addr, 1);
	}
	return ret;
}

void inode_to_attr(const struct lunfs_vol *v, const struct inode_mem *im, struct lunfs_attr *out)
{
	const struct lunfs_inode *d = &im->di;

	(void)v;
	memset(out, 0, sizeof(*out));
	out->ino = d->ino;
	out->generation = d->generation;
	out->mode = d->mode;
	out->nlink = d->nlink;
	out->uid = d->uid;
	out->gid = d->gid;
	/* new_encode_dev's 32-bit value is also glibc's dev_t for 12-bit
	 * majors and 20-bit minors, so it passes through unchanged. */
	out->rdev = d->rdev;
	out->size = d->size;
	out->blocks512 = d->alloc_bytes / 512;
	out->atime_ns = (int64_t)d->atime_ns;
	out->mtime_ns = (int64_t)d->mtime_ns;
	out->ctime_ns = (int64_t)d->ctime_ns;
	out->btime_ns = (int64_t)d->btime_ns;
}

/* ---- orphan table ------------------------------------------------------ */

static uint64_t orphan_blk_addr(const struct lunfs_vol *v, unsigned k)
{
	return layout_journal_addr(&v->sb, v->slot) + LUNFS_META_BLOCK_SIZE * (1ull + k);
}

/* Decode orphan block k; a never-written or earlier volume's block is an
 * empty one. */
static int orphan_blk_read(struct lunfs_vol *v, unsigned k, struct mc_entry **e,
			   struct lunfs_jorphan *t)
{
	uint64_t addr = orphan_blk_addr(v, k);
	int ret = mc_get(v->mc, addr, LUNFS_META_BLOCK_SIZE, 0, e);

	if (ret != 0) {
		return ret;
	}
	ret = jorphan_decode(&v->codec, (*e)->buf, addr, t);
	if (ret == -ENODATA || ret == -ESTALE) {
		memset(t, 0, sizeof(*t));
		t->slot = v->slot;
		t->first = (uint64_t)k * LUNFS_JORPHANS_PER_BLOCK;
		ret = 0;
	}
	if (ret != 0) {
		mc_put(v->mc, *e);
		*e = NULL;
	}
	return ret;
}

/* Replace the first entry equal to `from` by `to`. -ENOENT if none. */
static int orphan_swap(struct lunfs_vol *v, struct jnl_handle *h, uint64_t from, uint64_t to)
{
	struct lunfs_jorphan *t = malloc(sizeof(*t));
	int ret = -ENOENT;

	if (t == NULL) {
		return -ENOMEM;
	}
	for (unsigned k = 0; k < LUNFS_JOURNAL_ORPHAN_BLOCKS && ret == -ENOENT; k++) {
		struct mc_entry *e;
		int r = orphan_blk_read(v, k, &e, t);

		if (r != 0) {
			ret = r;
			break;
		}
		for (unsigned i = 0; i < LUNFS_JORPHANS_PER_BLOCK; i++) {
			if (t->ino[i] != from) {
				continue;
			}
			ret = jnl_dirty(h, e);
			if (ret == 0) {
				t->ino[i] = to;
				t->seq++;
				jorphan_encode(&v->codec, t, e->addr, e->buf);
			}
			break;
		}
		mc_put(v->mc, e);
	}
	free(t);
	return ret;
}

int orphan_add(struct lunfs_vol *v, struct jnl_handle *h, uint64_t ino)
{
	int ret = orphan_swap(v, h, 0, ino);

	/* 4024 inodes unlinked while open on one host: refuse the unlink
	 * rather than lose track of one. */
	return ret == -ENOENT ? -ENOSPC : ret;
}

int orphan_del(struct lunfs_vol *v, struct jnl_handle *h, uint64_t ino)
{
	if (ino == 0) {
		return -EINVAL;
	}
	return orphan_swap(v, h, ino, 0);
}

/* Mount, meta_lock held: nobody has any inode open yet. */
int orphan_recover(struct lunfs_vol *v)
{
	struct lunfs_jorphan *t = malloc(sizeof(*t));
	int ret = 0;

	if (t == NULL) {
		return -ENOMEM;
	}
	for (unsigned k = 0; k < LUNFS_JOURNAL_ORPHAN_BLOCKS && ret == 0; k++) {
		struct mc_entry *e;

		ret = orphan_blk_read(v, k, &e, t);
		if (ret != 0) {
			break;
		}
		mc_put(v->mc, e);
		for (unsigned i = 0; i < LUNFS_JORPHANS_PER_BLOCK && ret == 0; i++) {
			struct inode_mem *im;
			struct jnl_handle *h;
			uint64_t ino = t->ino[i];

			if (ino == 0) {
				continue;
			}
			ret = inode_get(v, ino, &im);
			if (ret == 0 && im->di.nlink == 0) {
				ret = inode_reclaim(v, im);
				inode_put_locked(v, im);
				continue;
			}
			if (ret == 0) {
				inode_put_locked(v, im);
			} else if (ret != -ENOENT) {
				break;
			}
			/* Gone already, or linked again: just drop the entry. */
			ret = jnl_start(v->jnl, 2, &h);
			if (ret != 0) {
				break;
			}
			ret = orphan_del(v, h, ino);
			if (ret == -ENOENT) {
				ret = 0;
			}
			int r = jnl_stop(h, false);

			ret = ret != 0 ? ret : r;
		}
	}
	free(t);
	return ret;
}

/* ---- reclaim ------------------------------------------------------------ */

int inode_reclaim(struct lunfs_vol *v, struct inode_mem *im)
{
	struct jnl_handle *h = NULL;
	uint64_t slot_addr, next = 0, last;
	int ret, r;

	/* Data first, a leaf per transaction: a 64 TiB file does not fit in
	 * one. A crash in between leaves the inode on the orphan table with
	 * fewer blocks: the next reclaim continues. */
	if (im->di.map_height > 0 && !S_ISDIR(im->di.mode)) {
		last = map_span(im->di.map_height) - 1;
		do {
			ret = jnl_start(v->jnl, bmap_punch_credits(im), &h);
			if (ret != 0) {
				return ret;
			}
			pthread_rwlock_wrlock(&im->lock);
			ret = bmap_punch(v, h, im, next, last, &next);
			pthread_rwlock_unlock(&im->lock);
			r = jnl_stop(h, false);
			ret = ret < 0 ? ret : (r != 0 ? r : ret);
			if (ret < 0) {
				return ret;
			}
		} while (ret > 0 && im->di.map_height > 0);
	}
	ret = jnl_start(v->jnl, 64, &h);
	if (ret != 0) {
		return ret;
	}
	pthread_rwlock_wrlock(&im->lock);
	if (S_ISDIR(im->di.mode) && im->di.map_height > 0) {
		ret = dir_free(v, h, im);
		if (ret != 0) {
			goto out;
		}
	}
	if (im->di.xattr_blk != 0) {
		ret = xattr_free(v, h, im);
		if (ret != 0) {
			goto out;
		}
	}
	ret = layout_ino_addr(&v->sb, im->ino, &slot_addr);
	if (ret != 0) {
		goto out;
	}
	ret = alloc_free(v->alloc, h, LUNFS_CLUSTER_INODE, slot_addr, 1);
	if (ret != 0) {
		goto out;
	}
	{
		uint32_t gen = im->di.generation;
		uint64_t version = im->di.version;

		memset(&im->di, 0, sizeof(im->di));
		im->di.ino = im->ino;
		im->di.generation = gen;
		im->di.version = version;
	}
	ret = inode_dirty(h, im);
	if (ret != 0) {
		goto out;
	}
	ret = orphan_del(v, h, im->ino);
	if (ret == -ENOENT) {
		ret = 0;
	}
	/* Gone: a lookup by number must not find it while it drains. */
	pthread_mutex_lock(&v->ic->lock);
	im->dead = true;
	pthread_mutex_unlock(&v->ic->lock);
out:
	pthread_rwlock_unlock(&im->lock);
	r = jnl_stop(h, false);
	return ret != 0 ? ret : r;
}

int inode_reclaim_foreign(struct lunfs_vol *v, uint64_t ino)
{
	struct inode_mem *im;
	struct jnl_handle *h;
	bool used;
	int ret, r;

	ret = inode_get(v, ino, &im);
	if (ret == -ENOENT) {
		return 0;
	}
	if (ret != 0) {
		return ret;
	}
	if (im->di.nlink != 0 || im->dead) {
		inode_put_locked(v, im);
		return 0;
	}
	pthread_mutex_lock(&v->ic->lock);
	used = im->refs > 1 || im->nlookup > 0 || im->nopen > 0;
	pthread_mutex_unlock(&v->ic->lock);
	if (!used) {
		ret = inode_reclaim(v, im);
	} else {
		/* Our last user reclaims it (inode_put); the table entry
		 * keeps it safe across our own crash. */
		ret = jnl_start(v->jnl, 2, &h);
		if (ret == 0) {
			ret = orphan_add(v, h, ino);
			r = jnl_stop(h, false);
			ret = ret != 0 ? ret : r;
		}
	}
	inode_put_locked(v, im);
	return ret;
}

int inode_refresh(struct lunfs_vol *v, struct inode_mem *im)
{
	struct lunfs_inode di;
	int ret = 0;

	pthread_rwlock_wrlock(&im->lock);
	if (im->rec->dirty_tid != 0 || im->rec->home_pending != 0) {
		goto out;       /* ours and newer than the disk */
	}
	/* Whatever was checked of the old contents says nothing of these. */
	__atomic_store_n(&im->rec->checked_magic, 0, __ATOMIC_RELAXED);
	ret = dev_read(v->dev, im->rec->buf, im->rec->len, im->rec->addr);
	if (ret != 0) {
		goto out;
	}
	ret = inode_decode(&v->codec, im->rec->buf, im->rec->addr, im->ino, &di);
	if (ret == -ENODATA || ret == -ESTALE || (ret == 0 && di.mode == 0)) {
		/* Deleted by another host: our copy says so too (mode 0,
		 * no link), so that we never reclaim it a second time
		 * (inode_last_user_locked skips mode 0) and inode_alloc may
		 * reuse this inode_mem for the slot's next inode. */
		im->di.mode = 0;
		im->di.nlink = 0;
		if (ret == 0) {
			im->di.generation = di.generation;
			im->di.version = di.version;
		}
		ret = -ENOENT;
	}
	if (ret == 0) {
		im->di = di;
	}
out:
	pthread_rwlock_unlock(&im->lock);
	return ret;
}
