/*
 * Clones, copy_file_range, snapshots and revert: the fsop_* operations
 * over fs/snap.c (include/lunfs/fs.h "Clones, snapshots and shared
 * blocks"; docs/DESIGN.md "Snapshots and clones").
 *
 * Where snapshots live. Image I (inode ino, generation g) keeps its
 * snapshots in the directory "/.lunfs-snapshots/<ino>-<g>", found by that
 * name (the generation makes it unique forever: a later file that reuses
 * the inode number gets another directory). The directory's inode carries
 * snap_parent = ino, set by the first snapshot, and I's snap_dir records
 * it; a directory of that name that belongs to something else is never
 * used (-EEXIST). A snapshot is a plain read-only file in it, so `ls`,
 * `cp` and QEMU (as a read-only backing file) read it by path.
 *
 * The shape of every operation (the fsops.c pattern, plus clusters):
 *   1. directories the operation needs are found or made first, with the
 *      ordinary fsop_* calls, holding nothing;
 *   2. the on-disk inode locks (fscl_*: directories, then files, each in
 *      ino order), then meta_lock for the checks;
 *   3. meta_lock dropped, the clusters holding the blocks whose refcounts
 *      change are collected from the maps and pinned in index order
 *      (alloc_clusters_pin: waits for other hosts here, with no lock of
 *      ours but the inode locks, which come first in the order);
 *   4. meta_lock again, checks again, the inodes' rwlocks in ino order,
 *      and the work in journal handles; the image stays locked for
 *      writing from the first handle to the last, so no write lands in
 *      the middle of a snapshot (point in time);
 *   5. unlock in reverse, unpin, drop the inode locks.
 *
 * Atomicity for the user: a clone or a snapshot is built in an inode that
 * no directory names yet and that is on this host's orphan table; the last
 * handle links it. A crash before leaves an orphan that the next mount (or
 * whoever recovers us) reclaims, releasing what the finished steps shared.
 * Revert rewrites the image itself: its steps join one compound
 * transaction unless they pass a quarter of the journal; the first step
 * sets the xattr SNAP_REVERT_XATTR, the last removes it, and an image that
 * carries it is not opened for write, truncated or written (fsop_snap_
 * write_check), so an image cut half-way by a crash is never used until a
 * revert completes.
 *
 * Lock order: as fsops.c (on-disk inode locks < cluster pins < meta_lock
 * < inode rwlocks, ascending ino).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"
#include "lunfs/inode.h"
#include "lunfs/map.h"

/* Journal credits. */
#define SNAPS_CR_IALLOC 8u      /* an inode slot (fsops.c CR_IALLOC) */
#define SNAPS_CR_INODES 4u      /* the inode records a handle touches */
#define SNAPS_CR_ORPHAN 1u

/* Set on an image while a revert runs (see the top). trusted.*: only root
 * sees it through the kernel. */
#define SNAP_REVERT_XATTR "trusted.lunfs.revert"

#define SNAPS_COPY_CHUNK (1u << 20)  /* bytes per read/write of a byte copy */

/* ---- small helpers -------------------------------------------------------- */

/* "<ino>-<generation>": the name of an image's snapshot directory. */
static void snaps_dir_name(const struct inode_mem *im, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIu64 "-%" PRIu32, im->ino, im->di.generation);
}

/* The inode of `name` in directory dir, read under dir's lock (SHARED),
 * holding nothing after. -ENOENT when absent. */
static int snaps_lookup(struct lunfs_vol *v, uint64_t dir, const char *name, uint64_t *ino)
{
	struct fsop_cl cl = { .n = 0 };
	struct inode_mem *dim;
	uint8_t type;
	int err;

	(void)fscl_add(&cl, dir, false, true);
	err = fscl_enter(v, &cl, true);
	if (err < 0) {
		return err;
	}
	err = inode_get(v, dir, &dim);
	if (err == 0) {
		if (!S_ISDIR(dim->di.mode)) {
			err = dim->di.mode == 0 ? -ENOENT : -ENOTDIR;
		} else {
			err = fsop_dir_find(v, dim, name, strlen(name), ino, &type);
		}
		inode_put_locked(v, dim);
	}
	pthread_mutex_unlock(&v->meta_lock);
	fscl_drop(v, &cl);
	return err;
}

/* Find (or, with create, make) directory `name` in dir. */
static int snaps_mkdir(struct lunfs_vol *v, uint64_t dir, const char *name, uint32_t uid, uint32_t gid,
		       bool create, uint64_t *ino)
{
	struct lunfs_cred cr = { .uid = uid, .gid = gid, .umask = 022 };
	struct lunfs_attr a;
	int err = snaps_lookup(v, dir, name, ino);

	if (err != -ENOENT || !create) {
		return err;
	}
	err = fsop_mkdir(v, &cr, dir, name, 0755, &a);
	if (err == 0) {
		fsop_forget(v, a.ino, 1); /* fsop_mkdir's lookup reference */
		*ino = a.ino;
		return 0;
	}
	if (err == -EEXIST) {
		/* Another thread or host made it first. */
		return snaps_lookup(v, dir, name, ino);
	}
	return err;
}

/* The snapshot directory of image im: its ino (making it, with create).
 * -ENOENT when it does not exist (and !create). */
static int snaps_dir_find(struct lunfs_vol *v, struct inode_mem *im, bool create, uint64_t *dir)
{
	char name[48];
	uint64_t root;
	int err;

	err = snaps_mkdir(v, vol_root_ino(v), LUNFS_SNAP_ROOT, 0, 0, create, &root);
	if (err < 0) {
		return err;
	}
	snaps_dir_name(im, name, sizeof(name));
	return snaps_mkdir(v, root, name, im->di.uid, im->di.gid, create, dir);
}

/* Is im a snapshot of image `image`? */
static bool snaps_is_snap_of(const struct inode_mem *im, uint64_t image)
{
	return S_ISREG(im->di.mode) && (im->di.flags & LUNFS_INODE_SNAPSHOT) != 0 &&
	       im->di.snap_parent == image && im->di.nlink > 0;
}

/* Lock two inodes' rwlocks for writing in ino order (one if the same). */
static void snaps_wrlock2(struct inode_mem *a, struct inode_mem *b)
{
	if (a == b || b == NULL) {
		pthread_rwlock_wrlock(&a->lock);
		return;
	}
	if (a->ino > b->ino) {
		struct inode_mem *t = a;

		a = b;
		b = t;
	}
	pthread_rwlock_wrlock(&a->lock);
	pthread_rwlock_wrlock(&b->lock);
}

static void snaps_unlock2(struct inode_mem *a, struct inode_mem *b)
{
	pthread_rwlock_unlock(&a->lock);
	if (b != NULL && b != a) {
		pthread_rwlock_unlock(&b->lock);
	}
}

/* Collect and pin the clusters of im's blocks [first, last] (and of im2's,
 * if given: the other side of a copy), without meta_lock. */
static int snaps_pin(struct lunfs_vol *v, struct inode_mem *im, struct inode_mem *im2, uint64_t first,
		     uint64_t last, uint64_t first2, uint64_t last2, struct snap_cis *set)
{
	int err;

	pthread_rwlock_rdlock(&im->lock);
	err = snap_cis_collect(v, im, first, last, set);
	pthread_rwlock_unlock(&im->lock);
	if (err == 0 && im2 != NULL) {
		pthread_rwlock_rdlock(&im2->lock);
		err = snap_cis_collect(v, im2, first2, last2, set);
		pthread_rwlock_unlock(&im2->lock);
	}
	if (err == 0) {
		snap_cis_finish(set);
		err = alloc_clusters_pin(v->alloc, set->ci, set->n);
		if (err < 0) {
			set->n = 0; /* nothing pinned */
		}
	}
	return err;
}

static void snaps_unpin(struct lunfs_vol *v, struct snap_cis *set)
{
	alloc_clusters_unpin(v->alloc, set->ci, set->n);
	snap_cis_free(set);
}

/* Logical blocks a map can hold at im's height (0: none). */
static uint64_t snaps_reach(const struct inode_mem *im)
{
	return im->di.map_height == 0 ? 0 : map_span(im->di.map_height);
}

int fsop_snap_write_check(struct lunfs_vol *v, struct inode_mem *im)
{
	ssize_t r;

	if (!S_ISREG(im->di.mode)) {
		return 0;
	}
	if ((im->di.flags & LUNFS_INODE_SNAPSHOT) != 0) {
		return -EPERM;
	}
	if (im->di.xattr_blk == 0) {
		return 0;
	}
	r = xattr_get(v, im, SNAP_REVERT_XATTR, NULL, 0);
	if (r >= 0) {
		char msg[200];

		snprintf(msg, sizeof(msg), "inode %" PRIu64 ": a snapshot revert was interrupted; "
			 "not written until `lunfs snapshot revert` runs again", im->ino);
		cluster_log(v, msg);
		return -EIO;
	}
	return 0;
}

/* ---- building a copy: clone and snapshot ---------------------------------- */

struct snaps_new {
	uint32_t mode, uid, gid, flags;
	uint64_t snap_parent, snap_id;
	uint64_t mtime_ns;
};

/* The end of a snapshot operation on up to two inodes (either may be
 * NULL), in this order: let them go, unpin the snapshot clusters, drop
 * the on-disk locks. */
static void snaps_op_end(struct lunfs_vol *v, struct inode_mem *a, struct inode_mem *b,
			 struct snap_cis *set, struct fsop_cl *cl)
{
	if (a != NULL) {
		inode_put(v, a);
	}
	if (b != NULL) {
		inode_put(v, b);
	}
	snaps_unpin(v, set);
	fscl_drop(v, cl);
}

/* The middle of clone and snapshot create, called with meta_lock held and
 * `err` what their checks said (0: the name is free in dim). meta_lock is
 * let go: snaps_pin may wait for other hosts' cluster locks. Then it is
 * taken again and the name asked about again, since another thread here
 * may have taken it meanwhile. Returns 0 with meta_lock held, else the
 * error with meta_lock not held. */
static int snaps_unlock_pin_relock(struct lunfs_vol *v, int err, struct inode_mem *dim,
				   struct inode_mem *sim, const char *name, size_t len, struct snap_cis *set)
{
	pthread_mutex_unlock(&v->meta_lock);
	if (err < 0) {
		return err;
	}
	err = snaps_pin(v, sim, NULL, 0, UINT64_MAX, 0, 0, set);
	if (err < 0) {
		return err;
	}
	pthread_mutex_lock(&v->meta_lock);
	err = fsop_name_free(v, dim, name, len);
	if (err < 0) {
		pthread_mutex_unlock(&v->meta_lock);
	}
	return err;
}
/* Under meta_lock, with dim (the directory that will name it) and src
 * locked for writing: a new inode, unlinked and on the orphan table, that
 * reads as src (size included), and then its name in dim. On error the
 * inode (if made) has nlink 0: the caller's put reclaims it. *out gets a
 * reference either way (NULL if none was made). */
static int snaps_build(struct lunfs_vol *v, struct inode_mem *dim, struct inode_mem *src,
		       const char *name, size_t len, const struct snaps_new *nw,
		       struct inode_mem **out)
{
	struct inode_mem *im = NULL;
	struct jnl_handle *h = NULL;
	int64_t now = vol_now_ns();
	int err;

	*out = NULL;
	err = fsop_start(v, SNAPS_CR_IALLOC + SNAPS_CR_INODES + SNAPS_CR_ORPHAN, &h);
	if (err < 0) {
		return err;
	}
	err = inode_alloc(v, h, S_IFREG | (nw->mode & 07777), nw->uid, nw->gid, src->ino, &im);
	if (err < 0) {
		return fsop_stop(h, err);
	}
	/* Nobody can reach it: its lock after the others' cannot deadlock. */
	pthread_rwlock_wrlock(&im->lock);
	im->di.nlink = 0;
	im->di.flags = nw->flags | LUNFS_INODE_ORPHAN;
	im->di.snap_parent = nw->snap_parent;
	im->di.snap_id = nw->snap_id;
	im->di.parent_ino = dim->ino;
	im->di.size = src->di.size;
	im->di.mtime_ns = nw->mtime_ns;
	err = orphan_add(v, h, im->ino);
	if (err == 0) {
		err = inode_dirty(h, im);
	}
	err = fsop_stop(h, err);
	*out = im;
	if (err < 0) {
		goto out;
	}
	/* The blocks, in as many handles as they need. */
	err = snap_share(v, src, im, 0, 0, snaps_reach(src));
	if (err < 0) {
		goto out;
	}
	/* The name: from here on it exists. Ordered: data written in place
	 * before the snapshot must be durable when the snapshot is. */
	err = fsop_start(v, dir_change_credits(dim) + SNAPS_CR_INODES + SNAPS_CR_ORPHAN, &h);
	if (err < 0) {
		goto out;
	}
	jnl_order_data(h);
	err = dir_add(v, h, dim, name, len, im->ino, DT_REG);
	if (err == 0) {
		im->di.nlink = 1;
		im->di.flags &= ~LUNFS_INODE_ORPHAN;
		im->di.ctime_ns = (uint64_t)now;
		err = orphan_del(v, h, im->ino);
	}
	if (err == 0) {
		err = inode_dirty(h, im);
	}
	if (err == 0) {
		dim->di.mtime_ns = dim->di.ctime_ns = (uint64_t)now;
		err = inode_dirty(h, dim);
	}
	if (err < 0 && im->di.nlink == 1) {
		/* dir_add went in but the rest did not: the put below must not
		 * see a linked inode that the orphan table still lists. Make it
		 * consistent both ways: unlinked, orphan. */
		im->di.nlink = 0;
		im->di.flags |= LUNFS_INODE_ORPHAN;
	}
	err = fsop_stop(h, err);
out:
	pthread_rwlock_unlock(&im->lock);
	return err;
}

int fsop_clone(struct lunfs_vol *v, const struct lunfs_cred *cr, uint64_t src, uint64_t dir,
	       const char *name, struct lunfs_attr *out)
{
	struct fsop_cl cl = { .n = 0 };
	struct snap_cis set = { 0 };
	struct inode_mem *dim = NULL, *sim = NULL, *im = NULL;
	struct snaps_new nw;
	size_t len;
	int err;

	err = fsop_link_enter(v, &cl, dir, src, name, &len);
	if (err < 0) {
		return err;
	}
	err = inode_get(v, dir, &dim);
	if (err == 0) {
		err = inode_get(v, src, &sim);
	}
	if (err < 0) {
		goto out_unlock;
	}
	if (!S_ISDIR(dim->di.mode)) {
		err = dim->di.mode == 0 ? -ENOENT : -ENOTDIR;
	} else if (dim->di.nlink == 0) {
		err = -ENOENT;
	} else if (S_ISDIR(sim->di.mode)) {
		err = -EISDIR;
	} else if (!S_ISREG(sim->di.mode)) {
		err = sim->di.mode == 0 ? -ENOENT : -EINVAL;
	} else {
		err = fsop_name_free(v, dim, name, len);
	}
	err = snaps_unlock_pin_relock(v, err, dim, sim, name, len, &set);
	if (err < 0) {
		goto out_put;
	}
	memset(&nw, 0, sizeof(nw));
	nw.mode = sim->di.mode & 0777 & ~cr->umask;
	nw.uid = cr->uid;
	nw.gid = (dim->di.mode & S_ISGID) ? dim->di.gid : cr->gid;
	nw.mtime_ns = (uint64_t)vol_now_ns();
	snaps_wrlock2(dim, sim);
	err = snaps_build(v, dim, sim, name, len, &nw, &im);
	snaps_unlock2(dim, sim);
	if (err == 0 && out != NULL) {
		pthread_rwlock_rdlock(&im->lock);
		inode_to_attr(v, im, out);
		pthread_rwlock_unlock(&im->lock);
	}
	if (im != NULL) {
		inode_put_locked(v, im); /* reclaims a clone that did not make it */
	}
out_unlock:
	pthread_mutex_unlock(&v->meta_lock);
out_put:
	snaps_op_end(v, sim, dim, &set, &cl);
	return err;
}

int fsop_snapshot_create(struct lunfs_vol *v, uint64_t image, const char *name, struct lunfs_attr *out)
{
	struct fsop_cl cl = { .n = 0 };
	struct snap_cis set = { 0 };
	struct inode_mem *dim = NULL, *sim = NULL, *im = NULL;
	struct jnl_handle *h = NULL;
	struct snaps_new nw;
	uint64_t dir = 0;
	size_t len;
	int err;

	err = fsop_name(name, &len);
	if (err < 0) {
		return err;
	}
	if (fsop_is_dot(name)) {
		return -EINVAL;
	}
	err = fsop_rw(v);
	if (err < 0) {
		return err;
	}
	err = inode_get(v, image, &sim);
	if (err < 0) {
		return err;
	}
	if (!S_ISREG(sim->di.mode) || (sim->di.flags & LUNFS_INODE_SNAPSHOT) != 0) {
		err = S_ISDIR(sim->di.mode) ? -EISDIR : -EINVAL;
		goto out_put;
	}
	err = snaps_dir_find(v, sim, true, &dir);
	if (err < 0) {
		goto out_put;
	}
	(void)fscl_add(&cl, dir, true, true);
	(void)fscl_add(&cl, image, true, false);
	err = fscl_enter(v, &cl, true);
	if (err < 0) {
		goto out_put;
	}
	err = inode_get(v, dir, &dim);
	if (err < 0) {
		goto out_unlock;
	}
	if (!S_ISDIR(dim->di.mode) || dim->di.nlink == 0) {
		err = -ENOENT; /* removed meanwhile: the user may try again */
	} else if (dim->di.snap_parent != 0 && dim->di.snap_parent != image) {
		err = -EEXIST; /* a directory of that name that is not ours */
	} else if (sim->di.nlink == 0 || !S_ISREG(sim->di.mode)) {
		err = -ENOENT;
	} else {
		err = fsop_name_free(v, dim, name, len);
	}
	err = snaps_unlock_pin_relock(v, err, dim, sim, name, len, &set);
	if (err < 0) {
		goto out_put;
	}
	/* The image is locked from here to the snapshot's last handle: every
	 * write acknowledged before is in, none after. */
	snaps_wrlock2(dim, sim);
	err = fsop_start(v, SNAPS_CR_INODES, &h);
	if (err == 0) {
		/* The id and the directory first: an id is never used twice,
		 * even by a snapshot that does not make it. */
		sim->di.snap_id++;
		sim->di.snap_dir = dir;
		sim->di.ctime_ns = (uint64_t)vol_now_ns();
		err = inode_dirty(h, sim);
		if (err == 0 && dim->di.snap_parent == 0) {
			dim->di.snap_parent = image;
			err = inode_dirty(h, dim);
		}
		err = fsop_stop(h, err);
	}
	if (err == 0) {
		memset(&nw, 0, sizeof(nw));
		nw.mode = sim->di.mode & 0444;
		nw.uid = sim->di.uid;
		nw.gid = sim->di.gid;
		nw.flags = LUNFS_INODE_SNAPSHOT;
		nw.snap_parent = image;
		nw.snap_id = sim->di.snap_id;
		nw.mtime_ns = sim->di.mtime_ns;
		err = snaps_build(v, dim, sim, name, len, &nw, &im);
	}
	snaps_unlock2(dim, sim);
	if (err == 0) {
		/* A snapshot is durable when the command returns. */
		err = jnl_sync(v->jnl);
	}
	if (err == 0 && out != NULL) {
		pthread_rwlock_rdlock(&im->lock);
		inode_to_attr(v, im, out);
		pthread_rwlock_unlock(&im->lock);
	}
	if (im != NULL) {
		inode_put_locked(v, im);
	}
out_unlock:
	pthread_mutex_unlock(&v->meta_lock);
out_put:
	snaps_op_end(v, dim, sim, &set, &cl);
	return err;
}

/* ---- list, delete, revert ------------------------------------------------- */

/* Image `image`'s snapshot directory and the snapshot `name` in it, both
 * by name (no lock kept). */
static int snaps_find(struct lunfs_vol *v, uint64_t image, const char *name, uint64_t *dir,
		      uint64_t *snap)
{
	struct inode_mem *im;
	size_t len;
	int err;

	err = fsop_name(name, &len);
	if (err < 0) {
		return err;
	}
	err = inode_get(v, image, &im);
	if (err < 0) {
		return err;
	}
	if (!S_ISREG(im->di.mode)) {
		err = S_ISDIR(im->di.mode) ? -EISDIR : im->di.mode == 0 ? -ENOENT : -EINVAL;
	} else {
		err = snaps_dir_find(v, im, false, dir);
	}
	inode_put(v, im);
	if (err == 0) {
		err = snaps_lookup(v, *dir, name, snap);
	}
	return err;
}

int fsop_snapshot_delete(struct lunfs_vol *v, uint64_t image, const char *name, uint64_t *dir_out,
			 uint64_t *snap_out)
{
	struct fsop_cl cl = { .n = 0 };
	struct snap_cis set = { 0 };
	struct inode_mem *dim = NULL, *im = NULL;
	struct jnl_handle *h = NULL;
	uint64_t dir = 0, snap = 0, gone = 0;
	uint8_t type;
	int err;

	err = fsop_rw(v);
	if (err < 0) {
		return err;
	}
	err = snaps_find(v, image, name, &dir, &snap);
	if (err < 0) {
		return err;
	}
	(void)fscl_add(&cl, dir, true, true);
	(void)fscl_add(&cl, snap, true, false);
	err = fscl_enter(v, &cl, false);
	if (err < 0) {
		return err;
	}
	err = inode_get(v, snap, &im);
	if (err < 0) {
		goto out_drop;
	}
	if (!snaps_is_snap_of(im, image)) {
		err = -ENOENT; /* not (or no longer) this image's snapshot */
		goto out_drop;
	}
	/* Its blocks' clusters, so that the reclaim below can drop their
	 * references without waiting under meta_lock. */
	err = snaps_pin(v, im, NULL, 0, UINT64_MAX, 0, 0, &set);
	if (err < 0) {
		goto out_drop;
	}
	pthread_mutex_lock(&v->meta_lock);
	err = inode_get(v, dir, &dim);
	if (err == 0) {
		err = fsop_dir_find(v, dim, name, strlen(name), &gone, &type);
		if (err == 0 && gone != snap) {
			err = -ENOENT; /* renamed meanwhile */
		}
	}
	if (err == 0) {
		err = fsop_start(v, 2 * SNAPS_CR_INODES + dir_change_credits(dim) + SNAPS_CR_ORPHAN, &h);
	}
	if (err == 0) {
		int64_t now = vol_now_ns();

		snaps_wrlock2(dim, im);
		err = dir_remove(v, h, dim, name, strlen(name), &gone);
		if (err == 0) {
			dim->di.mtime_ns = dim->di.ctime_ns = (uint64_t)now;
			err = inode_dirty(h, dim);
		}
		if (err == 0) {
			err = fsop_drop_link(v, h, im, now);
		}
		snaps_unlock2(dim, im);
		err = fsop_stop(h, err);
	}
	/* The last reference (unless the snapshot is open or the kernel
	 * remembers it) reclaims it now, in bounded steps. */
	inode_put_locked(v, im);
	im = NULL;
	if (dim != NULL) {
		inode_put_locked(v, dim);
	}
	pthread_mutex_unlock(&v->meta_lock);
out_drop:
	snaps_op_end(v, im, NULL, &set, &cl);
	if (err == 0 && dir_out != NULL) {
		*dir_out = dir;
	}
	if (err == 0 && snap_out != NULL) {
		*snap_out = snap;
	}
	return err;
}

/* Is image open here through a handle other than self? */
static bool snaps_open_elsewhere(struct lunfs_vol *v, uint64_t image, const struct lunfs_fh *self)
{
	bool busy = false;

	pthread_mutex_lock(&v->fh_lock);
	for (struct lunfs_fh *fh = v->fh_list; fh != NULL && !busy; fh = fh->next) {
		busy = fh != self && fh->im->ino == image;
	}
	pthread_mutex_unlock(&v->fh_lock);
	return busy;
}

int fsop_snapshot_revert(struct lunfs_vol *v, uint64_t image, const char *name,
			 const struct lunfs_fh *self)
{
	struct fsop_cl cl = { .n = 0 };
	struct snap_cis set = { 0 };
	struct inode_mem *im = NULL, *sn = NULL;
	struct jnl_handle *h = NULL;
	uint64_t dir = 0, snap = 0, reach;
	int err;

	err = fsop_rw(v);
	if (err < 0) {
		return err;
	}
	err = snaps_find(v, image, name, &dir, &snap);
	if (err < 0) {
		return err;
	}
	if (snaps_open_elsewhere(v, image, self)) {
		return -EBUSY;
	}
	/* The image: EXCLUSIVE, so any host with it open refuses (-EBUSY,
	 * logged with its name). The snapshot too: its map is read and
	 * (should an entry lack SHARED) flagged. */
	(void)fscl_add(&cl, image, true, false);
	(void)fscl_add(&cl, snap, true, false);
	err = fscl_enter(v, &cl, false);
	if (err < 0) {
		return err;
	}
	err = inode_get(v, image, &im);
	if (err == 0) {
		err = inode_get(v, snap, &sn);
	}
	if (err < 0) {
		goto out;
	}
	if (!S_ISREG(im->di.mode) || im->di.nlink == 0 || (im->di.flags & LUNFS_INODE_SNAPSHOT) != 0) {
		err = -EINVAL;
		goto out;
	}
	if (!snaps_is_snap_of(sn, image)) {
		err = -ENOENT;
		goto out;
	}
	err = snaps_pin(v, sn, im, 0, UINT64_MAX, 0, UINT64_MAX, &set);
	if (err < 0) {
		goto out;
	}
	pthread_mutex_lock(&v->meta_lock);
	if (snaps_open_elsewhere(v, image, self)) {
		err = -EBUSY;
		goto out_unlock;
	}
	snaps_wrlock2(im, sn);
	/* 1. The marker, and a size that covers both: bytes of the
	 *    snapshot's blocks never lie beyond the image's end meanwhile
	 *    (every byte past the size reads as zero, file.c (Z)). */
	err = fsop_start(v, SNAPS_CR_INODES + xattr_change_credits(im), &h);
	if (err == 0) {
		err = xattr_set(v, h, im, SNAP_REVERT_XATTR, name, strlen(name), 0);
		if (err == 0 && sn->di.size > im->di.size) {
			im->di.size = sn->di.size;
			err = inode_dirty(h, im);
		}
		err = fsop_stop(h, err);
	}
	/* 2. The image's map becomes the snapshot's. */
	reach = snaps_reach(im) > snaps_reach(sn) ? snaps_reach(im) : snaps_reach(sn);
	if (err == 0 && reach > 0) {
		err = snap_share(v, sn, im, 0, 0, reach);
	}
	/* 3. The snapshot's size, and the marker goes. */
	if (err == 0) {
		err = fsop_start(v, SNAPS_CR_INODES + xattr_change_credits(im), &h);
	}
	if (err == 0) {
		int64_t now = vol_now_ns();

		im->di.size = sn->di.size;
		im->di.mtime_ns = im->di.ctime_ns = (uint64_t)now;
		err = xattr_remove(v, h, im, SNAP_REVERT_XATTR);
		if (err == 0) {
			err = inode_dirty(h, im);
		}
		err = fsop_stop(h, err);
	}
	snaps_unlock2(im, sn);
	if (err == 0) {
		err = jnl_sync(v->jnl);
	}
out_unlock:
	pthread_mutex_unlock(&v->meta_lock);
out:
	snaps_op_end(v, sn, im, &set, &cl);
	return err;
}

struct snaps_ent {
	char name[LUNFS_NAME_MAX + 1];
	uint64_t ino;
};

struct snaps_list {
	struct snaps_ent *e;
	size_t n, cap;
	int err;
};

static int snaps_list_add(void *arg, const char *name, size_t len, uint64_t ino, uint8_t type,
			  uint64_t next_cookie)
{
	struct snaps_list *l = arg;

	(void)next_cookie;
	if (type != DT_REG || len > LUNFS_NAME_MAX) {
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct snaps_ent *ne = realloc(l->e, cap * sizeof(*ne));

		if (ne == NULL) {
			l->err = -ENOMEM;
			return 1;
		}
		l->e = ne;
		l->cap = cap;
	}
	memcpy(l->e[l->n].name, name, len);
	l->e[l->n].name[len] = '\0';
	l->e[l->n].ino = ino;
	l->n++;
	return 0;
}

int fsop_snapshot_list(struct lunfs_vol *v, uint64_t image, lunfs_snap_fn fn, void *arg)
{
	struct fsop_cl cl = { .n = 0 };
	struct snaps_list l = { .e = NULL };
	struct inode_mem *im, *dim = NULL;
	uint64_t dir = 0;
	int err;

	err = inode_get(v, image, &im);
	if (err < 0) {
		return err;
	}
	if (!S_ISREG(im->di.mode)) {
		err = S_ISDIR(im->di.mode) ? -EISDIR : im->di.mode == 0 ? -ENOENT : -EINVAL;
	} else {
		err = snaps_dir_find(v, im, false, &dir);
	}
	inode_put(v, im);
	if (err == -ENOENT) {
		return 0; /* no snapshot ever taken */
	}
	if (err < 0) {
		return err;
	}
	(void)fscl_add(&cl, dir, false, true);
	err = fscl_enter(v, &cl, true);
	if (err < 0) {
		return err;
	}
	err = inode_get(v, dir, &dim);
	if (err == 0) {
		pthread_rwlock_rdlock(&dim->lock);
		err = dir_iterate(v, dim, 0, snaps_list_add, &l);
		pthread_rwlock_unlock(&dim->lock);
		inode_put_locked(v, dim);
	}
	pthread_mutex_unlock(&v->meta_lock);
	fscl_drop(v, &cl);
	err = err < 0 ? err : l.err;
	for (size_t i = 0; i < l.n && err == 0; i++) {
		struct lunfs_snap_info si;
		struct lunfs_attr a;
		struct inode_mem *s;

		if (inode_get(v, l.e[i].ino, &s) < 0) {
			continue; /* deleted meanwhile */
		}
		fsop_attr_fresh(v, s, false, &a);
		memset(&si, 0, sizeof(si));
		pthread_rwlock_rdlock(&s->lock);
		if (snaps_is_snap_of(s, image)) {
			si.ino = s->ino;
			si.id = s->di.snap_id;
			si.size = s->di.size;
			si.btime_ns = (int64_t)s->di.btime_ns;
			err = snap_du(v, s, &si.excl_bytes, &si.shared_bytes);
		}
		pthread_rwlock_unlock(&s->lock);
		inode_put(v, s);
		if (err == 0 && si.ino != 0 && fn(arg, l.e[i].name, &si) != 0) {
			break;
		}
	}
	free(l.e);
	return err;
}

int fsop_snapshot_dir(struct lunfs_vol *v, uint64_t image, char *path, size_t len, uint64_t *dir)
{
	struct inode_mem *im;
	char name[48];
	int err;

	*dir = 0;
	err = inode_get(v, image, &im);
	if (err < 0) {
		return err;
	}
	if (!S_ISREG(im->di.mode)) {
		err = S_ISDIR(im->di.mode) ? -EISDIR : im->di.mode == 0 ? -ENOENT : -EINVAL;
		goto out;
	}
	snaps_dir_name(im, name, sizeof(name));
	if ((size_t)snprintf(path, len, "/%s/%s", LUNFS_SNAP_ROOT, name) >= len) {
		err = -ERANGE;
		goto out;
	}
	err = snaps_dir_find(v, im, false, dir);
	if (err == -ENOENT) {
		*dir = 0;
		err = 0;
	}
out:
	inode_put(v, im);
	return err;
}

int fsop_space(struct lunfs_vol *v, uint64_t ino, struct lunfs_space *out)
{
	struct inode_mem *im;
	struct lunfs_attr a;
	int err = inode_get(v, ino, &im);

	if (err < 0) {
		return err;
	}
	memset(out, 0, sizeof(*out));
	fsop_attr_fresh(v, im, false, &a);
	pthread_rwlock_rdlock(&im->lock);
	if (im->di.mode == 0) {
		err = -ENOENT;
	} else {
		out->size = im->di.size;
		out->alloc_bytes = im->di.alloc_bytes;
		out->flags = im->di.flags;
		out->snap_parent = im->di.snap_parent;
		out->snap_id = im->di.snap_id;
		out->snap_dir = im->di.snap_dir;
		if (S_ISREG(im->di.mode)) {
			err = snap_du(v, im, &out->excl_bytes, &out->shared_bytes);
		}
	}
	pthread_rwlock_unlock(&im->lock);
	inode_put(v, im);
	return err;
}

/* ---- copy_file_range ------------------------------------------------------ */

/* May src's block (entry se, the range [s, t) of it copied) replace dst's
 * (entry de) whole? Yes when dst's block is a hole and every chunk src
 * has written lies inside the range, or past src's end (reads as zero):
 * then the bytes outside the range read as zero on both sides. */
static bool snaps_partial_shareable(const struct lunfs_vol *v, const struct lunfs_map_entry *se,
				    const struct lunfs_map_entry *de, uint64_t s, uint64_t t,
				    uint64_t blk_start, uint64_t src_size)
{
	uint64_t chunk = v->sb.file_block_size / LUNFS_MAP_CHUNKS;
	uint64_t t_eff = blk_start + t >= src_size ? v->sb.file_block_size : t;

	if (se->addr == 0 || de->addr != 0) {
		return false;
	}
	for (unsigned c = 0; c < LUNFS_MAP_CHUNKS; c++) {
		if ((se->written & (1ull << c)) != 0 && (c * chunk < s || (c + 1) * chunk > t_eff)) {
			return false;
		}
	}
	return true;
}

/* Copy bytes [off_in, off_in + len) of in to off_out of out, through the
 * data path (it takes its own locks). */
static int snaps_copy_bytes(struct lunfs_vol *v, struct inode_mem *in, uint64_t off_in,
			    struct inode_mem *out, uint64_t off_out, uint64_t len)
{
	uint8_t *buf = malloc(SNAPS_COPY_CHUNK);
	int err = 0;

	if (buf == NULL) {
		return -ENOMEM;
	}
	while (len > 0 && err == 0) {
		size_t n = len < SNAPS_COPY_CHUNK ? (size_t)len : SNAPS_COPY_CHUNK;
		ssize_t r = file_read(v, in, buf, n, off_in);

		if (r < 0) {
			err = (int)r;
			break;
		}
		if ((size_t)r < n) {
			memset(buf + r, 0, n - (size_t)r); /* past in's end: zeros */
		}
		r = file_write(v, out, buf, n, off_out);
		if (r < 0) {
			err = (int)r;
		} else if ((size_t)r < n) {
			err = -ENOSPC;
		}
		off_in += n;
		off_out += n;
		len -= n;
	}
	free(buf);
	return err;
}

ssize_t fsop_copy_range(struct lunfs_vol *v, struct lunfs_fh *in, uint64_t off_in, struct lunfs_fh *out,
			uint64_t off_out, uint64_t len)
{
	uint64_t bs = v->sb.file_block_size;
	struct fsop_cl cl = { .n = 0 };
	struct snap_cis set = { 0 };
	struct inode_mem *si = in->im, *di = out->im;
	struct { uint64_t off_in, off_out, len; } bytes[2];
	unsigned nbytes = 0;
	uint64_t src_size, first_blk, last_blk, nfull = 0, full_s = 0;
	int err;

	err = fsop_rw(v);
	if (err < 0) {
		return err;
	}
	if (!S_ISREG(si->di.mode) || !S_ISREG(di->di.mode)) {
		return S_ISDIR(si->di.mode) || S_ISDIR(di->di.mode) ? -EISDIR : -EINVAL;
	}
	if ((out->flags & O_ACCMODE) == O_RDONLY || (in->flags & O_ACCMODE) == O_WRONLY) {
		return -EBADF;
	}
	if (off_out + len < off_out || off_in + len < off_in || off_out + len > (uint64_t)INT64_MAX) {
		return -EFBIG;
	}
	if (len == 0) {
		return 0;
	}
	if (off_in % bs != off_out % bs) {
		return -EOPNOTSUPP; /* no block lines up: bytes it is, the caller's */
	}
	if (si == di && off_in < off_out + len && off_out < off_in + len) {
		return -EINVAL;     /* overlapping ranges of one file (as the kernel says) */
	}
	(void)fscl_add(&cl, si->ino, true, false);
	(void)fscl_add(&cl, di->ino, true, false);
	err = fscl_enter(v, &cl, false);
	if (err == -EBUSY) {
		/* The source is open on another host (a base image read by
		 * several): its map cannot be flagged SHARED, so no block can
		 * be shared. Nothing is done; the caller copies bytes through
		 * its read-only open, which that host allows. */
		return -EOPNOTSUPP;
	}
	if (err < 0) {
		return err;
	}
	pthread_rwlock_rdlock(&si->lock);
	src_size = si->di.size;
	pthread_rwlock_unlock(&si->lock);
	if (off_in >= src_size) {
		fscl_drop(v, &cl);
		return 0;
	}
	if (len > src_size - off_in) {
		len = src_size - off_in;
	}
	pthread_rwlock_rdlock(&di->lock);
	err = fsop_snap_write_check(v, di);
	pthread_rwlock_unlock(&di->lock);
	if (err < 0) {
		fscl_drop(v, &cl);
		return err;
	}
	first_blk = off_in / bs;
	last_blk = (off_in + len - 1) / bs;
	err = snaps_pin(v, si, di, first_blk, last_blk, off_out / bs, (off_out + len - 1) / bs, &set);
	if (err < 0) {
		fscl_drop(v, &cl);
		return err == -EBUSY ? -EOPNOTSUPP : err; /* nothing done yet: bytes, then */
	}
	pthread_mutex_lock(&v->meta_lock);
	snaps_wrlock2(si, di);
	/* The size first: shared blocks must never lie past the end
	 * (file.c (Z)); until the blocks follow, the new part reads as what
	 * was there, or zeros. */
	if (off_out + len > di->di.size) {
		struct jnl_handle *h;

		err = fsop_start(v, SNAPS_CR_INODES, &h);
		if (err == 0) {
			di->di.size = off_out + len;
			err = fsop_stop(h, inode_dirty(h, di));
		}
	}
	for (uint64_t b = first_blk; b <= last_blk && err == 0; b++) {
		uint64_t s = b == first_blk ? off_in % bs : 0;
		uint64_t t = b == last_blk ? (off_in + len - 1) % bs + 1 : bs;
		uint64_t db = b - first_blk + off_out / bs;
		struct lunfs_map_entry se, de;
		uint64_t run;
		bool share = s == 0 && t == bs;

		if (!share) {
			err = bmap_lookup(v, si, b, &se, &run);
			if (err == 0) {
				err = bmap_lookup(v, di, db, &de, &run);
			}
			if (err < 0) {
				break;
			}
			share = snaps_partial_shareable(v, &se, &de, s, t, b * bs, src_size);
			if (!share && (se.addr != 0 || de.addr != 0)) {
				/* Bytes, after the locks are let go. */
				bytes[nbytes].off_in = b * bs + s;
				bytes[nbytes].off_out = db * bs + s;
				bytes[nbytes].len = t - s;
				nbytes++;
			}
		}
		if (share) {
			if (nfull == 0) {
				full_s = b;
			}
			nfull++;
		}
		if (nfull > 0 && (!share || b == last_blk)) {
			err = snap_share(v, si, di, full_s, full_s - first_blk + off_out / bs, nfull);
			nfull = 0;
		}
	}
	if (err == 0) {
		struct jnl_handle *h;

		err = fsop_start(v, SNAPS_CR_INODES, &h);
		if (err == 0) {
			di->di.mtime_ns = di->di.ctime_ns = (uint64_t)vol_now_ns();
			err = fsop_stop(h, inode_dirty(h, di));
		}
	}
	snaps_unlock2(si, di);
	pthread_mutex_unlock(&v->meta_lock);
	for (unsigned i = 0; i < nbytes && err == 0; i++) {
		err = snaps_copy_bytes(v, si, bytes[i].off_in, di, bytes[i].off_out, bytes[i].len);
	}
	snaps_unpin(v, &set);
	fscl_drop(v, &cl);
	return err < 0 ? err : (ssize_t)len;
}
