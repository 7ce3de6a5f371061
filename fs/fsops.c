/*
 * The fsop_* layer: POSIX semantics over the fs-core modules (include/
 * lunfs/fs.h). The FUSE front end calls these; so do the unit tests.
 *
 * Contract
 *   Permission checks are the kernel's (default_permissions). Here: name
 *   validity, file types, emptiness, link limits, the rename rules, and
 *   the timestamps POSIX asks for (parent mtime/ctime on entry changes,
 *   ctime on every attribute or link change, mtime/ctime on truncate).
 *   Every change on a read-only mount is -EROFS before anything is
 *   touched; a device error aborts the journal (journal.c) and every
 *   later change fails with that error, so the disk keeps the last
 *   durable, consistent state for replay.
 *
 * The shape of a metadata change
 *   1. validate what can be validated without a handle (names, flags);
 *   1a. take the on-disk inode locks of the directories and inodes it
 *      changes (cluster.c, "on-disk inode locks of one operation" below),
 *      without meta_lock, and re-read what another host changed since
 *      we last held them; a lookup in step 3 that names an inode whose
 *      lock is missing goes back here with it added;
 *   2. take vol.meta_lock: from here nobody else changes the namespace or
 *      any inode record on this host, so lookups done now stay true;
 *   3. look up and check everything (existence, types, emptiness, limits,
 *      the rename subtree rule), so that the steps under the handle can
 *      only fail for lack of space or a device error;
 *   4. take the inode locks (write) in ascending ino order, start one
 *      journal handle with credits for every record and block the
 *      operation may dirty, do the work through the modules, inode_dirty
 *      each changed inode, stop the handle;
 *   5. unlock, drop references with inode_put_locked (which reclaims an
 *      inode whose last link and last user are gone), drop meta_lock.
 *   A step-4 failure after a new inode was allocated unlinks it again
 *   (nlink 0), so the put in step 5 reclaims it rather than leak it.
 *
 * Unlinked inodes: whenever nlink reaches 0 the inode goes on this host's
 *   orphan table in the same transaction, because the kernel almost always
 *   still holds a lookup reference (and maybe open files). The last
 *   forget/release/put reclaims it (inode.c), which takes it off the
 *   table; a crash in between leaves it there for orphan_recover.
 *
 * readdirplus: the fill callback receives each entry's attributes, and in
 *   plus mode fsop_readdir takes one lookup reference for every entry the
 *   callback accepted (returned 0), except "." and "..", which the kernel
 *   does not count (fs/fuse/readdir.c skips them). The front end must
 *   therefore never call fuse_add_direntry_plus for an entry it then drops.
 *
 * Open files: a struct lunfs_fh holds one inode reference and one open
 *   count (inode_open_add), and sits on vol.fh_list so that unmount can
 *   release handles a torn-down session never released.
 *
 * Lock order: on-disk inode locks (cluster_use: directories, then other
 * inodes, ascending ino) < meta_lock < inode locks (ascending ino) <
 * fh_lock / icache / mcache. The data path (read, write) takes no lock here: file.c takes
 * the inode lock shared, or meta_lock then the inode lock when it
 * allocates, itself.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <linux/falloc.h>

#include "fs_internal.h"
#include "lunfs/inode.h"
#include "lunfs/map.h"

/* Journal credits (sectors or blocks an operation may dirty). */
#define CR_INODE 1u        /* one inode record */
#define CR_IALLOC 8u       /* an inode slot: bitmap, header, cluster summary; typing a
			    * new inode cluster is covered by the journal's slack */
#define CR_ORPHAN 1u       /* one orphan table block */
#define CR_XATTR 8u        /* an xattr chain rewrite */
#define CR_SYMLINK 4u      /* a symlink block and its map */

/* No handle asks for more than the smallest journal's ring holds (the
 * estimates are generous; the journal bounds a handle by its ring). */
#define CR_MAX (LUNFS_JOURNAL_MIN / LUNFS_META_BLOCK_SIZE - 16u)

/* The deepest directory tree the rename subtree walk accepts before it
 * calls the parent chain corrupt (a cycle). */
#define FSOP_MAX_DEPTH 65536u

/* Marks a file that several hosts may open for write at once. */
#define FSOP_MULTIWRITER_XATTR "user.lunfs.multiwriter"

/* ---- helpers -------------------------------------------------------------- */

int fsop_rw(const struct lunfs_vol *v)
{
	return v->opts.read_only ? -EROFS : 0;
}

/* A path component from the kernel: non-empty, no '/', at most 255 bytes. */
int fsop_name(const char *name, size_t *len)
{
	size_t n;

	if (name == NULL || name[0] == '\0') {
		return -ENOENT;
	}
	n = strnlen(name, LUNFS_NAME_MAX + 1);
	if (n > LUNFS_NAME_MAX) {
		return -ENAMETOOLONG;
	}
	if (memchr(name, '/', n) != NULL) {
		return -EINVAL;
	}
	*len = n;
	return 0;
}

bool fsop_is_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

static uint8_t fsop_dtype(uint32_t mode)
{
	return (uint8_t)IFTODT(mode);
}

/* A directory we may change or read: -ENOTDIR otherwise. */
static int fsop_dir_get(struct lunfs_vol *v, uint64_t ino, struct inode_mem **out)
{
	struct inode_mem *im;
	int err = inode_get(v, ino, &im);

	if (err < 0) {
		return err;
	}
	if (!S_ISDIR(im->di.mode)) {
		inode_put_locked(v, im);
		return -ENOTDIR;
	}
	*out = im;
	return 0;
}

/* The inode locks of one operation, taken in ascending ino order. */
struct fsop_lockset {
	struct inode_mem *im[4];
	unsigned n;
};

static void lockset_add(struct fsop_lockset *ls, struct inode_mem *im)
{
	if (im == NULL) {
		return;
	}
	for (unsigned i = 0; i < ls->n; i++) {
		if (ls->im[i] == im) {
			return;
		}
	}
	ls->im[ls->n++] = im;
}

static void lockset_lock(struct fsop_lockset *ls)
{
	for (unsigned i = 1; i < ls->n; i++) {
		for (unsigned k = i; k > 0 && ls->im[k - 1]->ino > ls->im[k]->ino; k--) {
			struct inode_mem *t = ls->im[k];

			ls->im[k] = ls->im[k - 1];
			ls->im[k - 1] = t;
		}
	}
	for (unsigned i = 0; i < ls->n; i++) {
		pthread_rwlock_wrlock(&ls->im[i]->lock);
	}
}

static void lockset_unlock(struct fsop_lockset *ls)
{
	for (unsigned i = ls->n; i > 0; i--) {
		pthread_rwlock_unlock(&ls->im[i - 1]->lock);
	}
}

/* ---- on-disk inode locks of one operation (coherence across hosts) --------
 *
 * Namespace operations use (cluster_use) the EXCLUSIVE lock of every
 * directory whose entries they change and of every inode whose record
 * they change (nlink, ctime, parent); lookups, readdir and getattr of a
 * directory use the directory's lock SHARED. The locks are taken before
 * meta_lock, directories first and then the other inodes, each in
 * ascending ino order: the same order on every host. Which inodes a
 * name stands for is known only after a lookup, under meta_lock; an
 * operation that finds it needs a lock it has not taken drops meta_lock
 * and every use, adds it and starts again (cached locks make that cheap),
 * and the lookups are redone, so a name that changed meanwhile is seen.
 */
/* Add ino (or strengthen it to excl). 1 = the set changed (the caller
 * must drop and take again), 0 = covered already, -EAGAIN = full. */
int fscl_add(struct fsop_cl *cl, uint64_t ino, bool excl, bool dir)
{
	for (unsigned i = 0; i < cl->n; i++) {
		if (cl->e[i].ino == ino) {
			if (excl && !cl->e[i].excl) {
				cl->e[i].excl = true;
				return 1;
			}
			return 0;
		}
	}
	if (cl->n == FSOP_CL_MAX) {
		return -EAGAIN;
	}
	cl->e[cl->n].ino = ino;
	cl->e[cl->n].excl = excl;
	cl->e[cl->n].dir = dir;
	cl->e[cl->n].taken = false;
	cl->e[cl->n].stale = false;
	cl->n++;
	return 1;
}

void fscl_drop(struct lunfs_vol *v, struct fsop_cl *cl)
{
	for (unsigned i = cl->n; i > 0; i--) {
		if (cl->e[i - 1].taken) {
			cluster_unuse(v, cl->e[i - 1].ino);
			cl->e[i - 1].taken = false;
		}
	}
}

static bool fscl_before(const struct fsop_cl *cl, unsigned a, unsigned b)
{
	if (cl->e[a].dir != cl->e[b].dir) {
		return cl->e[a].dir;
	}
	return cl->e[a].ino < cl->e[b].ino;
}

/* Take every lock of the set in the cluster-wide order. Without meta_lock. */
static int fscl_take(struct lunfs_vol *v, struct fsop_cl *cl)
{
	for (unsigned i = 1; i < cl->n; i++) {
		for (unsigned k = i; k > 0 && fscl_before(cl, k, k - 1); k--) {
			struct fsop_cl_e t = cl->e[k];

			cl->e[k] = cl->e[k - 1];
			cl->e[k - 1] = t;
		}
	}
	for (unsigned i = 0; i < cl->n; i++) {
		int r;

		if (cl->e[i].taken) {
			continue;
		}
		r = cluster_use(v, cl->e[i].ino, cl->e[i].excl, true);
		/* A directory is never open elsewhere in a way that keeps its
		 * lock: a holder that did not let go in time was busy with
		 * its own operations (or slow), so ask again rather than
		 * fail a mkdir with EBUSY. Files keep VMFS's answer. */
		for (unsigned t = 1; r == -EBUSY && cl->e[i].dir && t < FSOP_CL_TRIES; t++) {
			r = cluster_use(v, cl->e[i].ino, cl->e[i].excl, true);
		}
		if (r < 0) {
			fscl_drop(v, cl);
			return r;
		}
		cl->e[i].taken = true;
		cl->e[i].stale = r > 0;
	}
	return 0;
}

/* meta_lock held: re-read what the stale locks of the set cover. The
 * clean metadata cache goes once (directory blocks, map nodes), then
 * each stale inode's record is read again. */
static int fscl_refresh_locked(struct lunfs_vol *v, struct fsop_cl *cl)
{
	bool dropped = false;

	for (unsigned i = 0; i < cl->n; i++) {
		struct inode_mem *im;
		int err;

		if (!cl->e[i].taken || !cl->e[i].stale) {
			continue;
		}
		if (!dropped) {
			mc_drop_clean(v->mc);
			dropped = true;
		}
		err = inode_get(v, cl->e[i].ino, &im);
		if (err == 0) {
			err = inode_refresh(v, im);
			inode_put_locked(v, im);
		}
		if (err < 0 && err != -ENOENT) {
			return err;
		}
		/* Gone (-ENOENT): the refresh marked our copy so. */
		cluster_refreshed(v, cl->e[i].ino);
		cl->e[i].stale = false;
	}
	return 0;
}

static bool fscl_any_stale(const struct fsop_cl *cl)
{
	for (unsigned i = 0; i < cl->n; i++) {
		if (cl->e[i].taken && cl->e[i].stale) {
			return true;
		}
	}
	return false;
}

/* Take the set, then refresh what is stale under meta_lock; with
 * keep_meta meta_lock stays held on success. On error meta_lock is not
 * held and the set is dropped. */
int fscl_enter(struct lunfs_vol *v, struct fsop_cl *cl, bool keep_meta)
{
	int err = fscl_take(v, cl);

	if (err < 0) {
		return err;
	}
	if (!keep_meta && !fscl_any_stale(cl)) {
		return 0;
	}
	pthread_mutex_lock(&v->meta_lock);
	err = fscl_refresh_locked(v, cl);
	if (err < 0 || !keep_meta) {
		pthread_mutex_unlock(&v->meta_lock);
	}
	if (err < 0) {
		fscl_drop(v, cl);
	}
	return err;
}

/* One lock (a directory SHARED for reading it, an inode EXCLUSIVE for
 * changing it), taken and refreshed; dropped with fscl_drop. */
static int fscl_one(struct lunfs_vol *v, struct fsop_cl *cl, uint64_t ino, bool excl, bool dir,
		    bool keep_meta)
{
	cl->n = 0;
	(void)fscl_add(cl, ino, excl, dir);
	return fscl_enter(v, cl, keep_meta);
}

/* Attributes of im for a reply: under a lock we hold, our copy is the
 * truth; otherwise read the record from the disk (another host may hold
 * the lock: a file open for write there keeps it for as long as its VM
 * runs, and stat must not wait for that; the disk then lags that host's
 * last commit). with_meta: the caller holds meta_lock. */
void fsop_attr_fresh(struct lunfs_vol *v, struct inode_mem *im, bool with_meta,
			    struct lunfs_attr *out)
{
	if (!cluster_holds(v, im->ino)) {
		if (!with_meta) {
			pthread_mutex_lock(&v->meta_lock);
		}
		(void)inode_refresh(v, im);
		if (!with_meta) {
			pthread_mutex_unlock(&v->meta_lock);
		}
	}
	pthread_rwlock_rdlock(&im->lock);
	inode_to_attr(v, im, out);
	pthread_rwlock_unlock(&im->lock);
}

/* Look a name up in dim (meta_lock held). */
int fsop_dir_find(struct lunfs_vol *v, struct inode_mem *dim, const char *name, size_t len,
			 uint64_t *ino, uint8_t *type)
{
	int err;

	pthread_rwlock_rdlock(&dim->lock);
	err = dir_lookup(v, dim, name, len, ino, type);
	pthread_rwlock_unlock(&dim->lock);
	return err;
}

int fsop_name_free(struct lunfs_vol *v, struct inode_mem *dim, const char *name, size_t len)
{
	uint64_t ino;
	uint8_t type;
	int err = fsop_dir_find(v, dim, name, len, &ino, &type);

	return err == 0 ? -EEXIST : err == -ENOENT ? 0 : err;
}

static void fsop_stamp_dir(struct inode_mem *dim, int64_t now)
{
	dim->di.mtime_ns = (uint64_t)now;
	dim->di.ctime_ns = (uint64_t)now;
}

int fsop_start(struct lunfs_vol *v, unsigned credits, struct jnl_handle **h)
{
	return jnl_start(v->jnl, credits < CR_MAX ? credits : CR_MAX, h);
}

/* Stop the handle, keeping the first error. */
int fsop_stop(struct jnl_handle *h, int err)
{
	int e = jnl_stop(h, false);

	return err < 0 ? err : e;
}

static void fsop_attr_of(const struct lunfs_vol *v, struct inode_mem *im, struct lunfs_attr *out)
{
	if (out != NULL) {
		inode_to_attr(v, im, out);
	}
}

/* ---- lookup, getattr, forget ---------------------------------------------------- */

int fsop_lookup(struct lunfs_vol *v, uint64_t dir, const char *name, struct lunfs_attr *out)
{
	struct inode_mem *dim = NULL, *im = NULL;
	struct fsop_cl cl = { .n = 0 };
	uint64_t ino = 0;
	uint8_t type;
	size_t len;
	int err;

	err = fsop_name(name, &len);
	if (err < 0) {
		return err;
	}
	/* The directory's entries are ours to read only under its lock. */
	err = fscl_one(v, &cl, dir, false, true, false);
	if (err < 0) {
		return err;
	}
	err = inode_get(v, dir, &dim);
	if (err < 0) {
		fscl_drop(v, &cl);
		return err;
	}
	if (!S_ISDIR(dim->di.mode)) {
		err = dim->di.mode == 0 ? -ENOENT : -ENOTDIR; /* 0: removed elsewhere */
		goto out;
	}
	/* Hold the directory while we get the child: an unlink needs the
	 * directory's lock exclusive, so the child cannot be reclaimed (and
	 * its slot reused) between the lookup and inode_get. */
	pthread_rwlock_rdlock(&dim->lock);
	if (strcmp(name, ".") == 0) {
		ino = dir;
		err = 0;
	} else if (strcmp(name, "..") == 0) {
		ino = dim->di.parent_ino;
		err = 0;
	} else {
		err = dir_lookup(v, dim, name, len, &ino, &type);
	}
	if (err == 0) {
		err = inode_get(v, ino, &im);
		if (err == 0) {
			inode_lookup_add(v, im, 1);
		} else if (err == -ENOENT) {
			err = -EUCLEAN; /* a name pointing at no inode */
		}
	}
	pthread_rwlock_unlock(&dim->lock);
	if (err < 0) {
		goto out;
	}
	if (im == dim) {
		pthread_rwlock_rdlock(&im->lock);
		inode_to_attr(v, im, out);
		pthread_rwlock_unlock(&im->lock);
	} else {
		fsop_attr_fresh(v, im, false, out);
	}
	inode_put(v, im);
out:
	inode_put(v, dim);
	fscl_drop(v, &cl);
	return err;
}

void fsop_forget(struct lunfs_vol *v, uint64_t ino, uint64_t nlookup)
{
	inode_forget(v, ino, nlookup);
}

int fsop_getattr(struct lunfs_vol *v, uint64_t ino, struct lunfs_attr *out)
{
	struct fsop_cl cl = { .n = 0 };
	struct inode_mem *im;
	int err = inode_get(v, ino, &im);

	if (err < 0) {
		return err;
	}
	if (S_ISDIR(im->di.mode) && !cluster_holds(v, ino)) {
		/* A directory's lock has no opens to wait for: take it
		 * SHARED, and its attributes are exact. */
		err = fscl_one(v, &cl, ino, false, true, false);
		if (err == 0) {
			pthread_rwlock_rdlock(&im->lock);
			inode_to_attr(v, im, out);
			pthread_rwlock_unlock(&im->lock);
			fscl_drop(v, &cl);
		}
	} else {
		fsop_attr_fresh(v, im, false, out);
	}
	if (err == 0 && im->di.mode == 0) {
		err = -ENOENT; /* removed by another host */
	}
	inode_put(v, im);
	return err;
}

/* ---- setattr ------------------------------------------------------------------- */

/* Truncate: file.c takes meta_lock and the inode lock itself, and runs as
 * many transactions as the size change needs. */
static int fsop_truncate(struct lunfs_vol *v, struct inode_mem *im, uint64_t size)
{
	if (S_ISDIR(im->di.mode)) {
		return -EISDIR;
	}
	if (!S_ISREG(im->di.mode)) {
		return -EINVAL;
	}
	return file_truncate(v, im, size);
}

static void fsop_setattr_apply(struct inode_mem *im, const struct lunfs_setattr *sa, int64_t now)
{
	struct lunfs_inode *d = &im->di;

	if (sa->valid & LUNFS_SET_MODE) {
		d->mode = (d->mode & S_IFMT) | (sa->mode & 07777);
	}
	if (sa->valid & LUNFS_SET_UID) {
		d->uid = sa->uid;
	}
	if (sa->valid & LUNFS_SET_GID) {
		d->gid = sa->gid;
	}
	/* The kernel asks for these when the front end handles killpriv
	 * (FUSE_SET_ATTR_KILL_SUID/SGID); it has already decided who loses
	 * them, and only regular files carry them with that meaning. */
	if (S_ISREG(d->mode) && (sa->valid & LUNFS_SET_KILL_SUID)) {
		d->mode &= ~(uint32_t)S_ISUID;
	}
	if (S_ISREG(d->mode) && (sa->valid & LUNFS_SET_KILL_SGID)) {
		d->mode &= ~(uint32_t)S_ISGID;
	}
	if (sa->valid & LUNFS_SET_ATIME_NOW) {
		d->atime_ns = (uint64_t)now;
	} else if (sa->valid & LUNFS_SET_ATIME) {
		d->atime_ns = (uint64_t)sa->atime_ns;
	}
	if (sa->valid & LUNFS_SET_MTIME_NOW) {
		d->mtime_ns = (uint64_t)now;
	} else if (sa->valid & LUNFS_SET_MTIME) {
		d->mtime_ns = (uint64_t)sa->mtime_ns;
	}
	if (sa->valid & LUNFS_SET_SIZE) {
		/* truncate(2) and open(O_TRUNC) update both, size change or not. */
		if (!(sa->valid & (LUNFS_SET_MTIME | LUNFS_SET_MTIME_NOW))) {
			d->mtime_ns = (uint64_t)now;
		}
	}
	d->ctime_ns = (sa->valid & LUNFS_SET_CTIME) ? (uint64_t)sa->ctime_ns : (uint64_t)now;
}

int fsop_setattr(struct lunfs_vol *v, uint64_t ino, const struct lunfs_setattr *sa,
		 struct lunfs_attr *out)
{
	struct fsop_cl cl = { .n = 0 };
	struct inode_mem *im = NULL;
	struct jnl_handle *h = NULL;
	int64_t now;
	int err;

	if (sa->valid == 0) {
		return fsop_getattr(v, ino, out);
	}
	err = fsop_rw(v);
	if (err < 0) {
		return err;
	}
	err = inode_get(v, ino, &im);
	if (err < 0) {
		return err;
	}
	/* VMFS: a file open on another host is not changed (-EBUSY). */
	err = fscl_one(v, &cl, ino, true, S_ISDIR(im->di.mode), false);
	if (err < 0) {
		goto out_put;
	}
	if (im->di.mode == 0) {
		err = -ENOENT; /* removed by another host */
		goto out_put;
	}
	if (sa->valid & LUNFS_SET_SIZE) {
		pthread_rwlock_rdlock(&im->lock);
		err = fsop_snap_write_check(v, im);
		pthread_rwlock_unlock(&im->lock);
		if (err < 0) {
			goto out_put;
		}
	}
	/* The size first (its own transactions), then the attributes in one
	 * more: a crash between leaves the new size with the old times, which
	 * is what a truncate that finished just before the crash looks like. */
	if (sa->valid & LUNFS_SET_SIZE) {
		err = fsop_truncate(v, im, sa->size);
		if (err < 0) {
			goto out_put;
		}
	}
	pthread_mutex_lock(&v->meta_lock);
	err = fsop_start(v, CR_INODE, &h);
	if (err < 0) {
		goto out_unlock;
	}
	now = vol_now_ns();
	pthread_rwlock_wrlock(&im->lock);
	fsop_setattr_apply(im, sa, now);
	err = inode_dirty(h, im);
	fsop_attr_of(v, im, out);
	pthread_rwlock_unlock(&im->lock);
	err = fsop_stop(h, err);
out_unlock:
	pthread_mutex_unlock(&v->meta_lock);
out_put:
	fscl_drop(v, &cl);
	inode_put(v, im);
	return err;
}

/* ---- creating names ------------------------------------------------------------ */

struct fsop_new {
	uint32_t mode;           /* type and permission bits, final */
	uint32_t rdev;
	const char *target;      /* symlinks */
	size_t target_len;
};

/* Create `name` in `dir` as described by nw. On success *out_im has a
 * reference and one lookup reference (the caller may turn the former
 * into an open handle). meta_lock is taken and dropped here. */
static int fsop_make(struct lunfs_vol *v, const struct lunfs_cred *cr, uint64_t dir,
		     const char *name, struct fsop_new *nw, struct lunfs_attr *out,
		     struct inode_mem **out_im)
{
	struct fsop_cl cl = { .n = 0 };
	struct inode_mem *dim = NULL, *im = NULL;
	struct jnl_handle *h = NULL;
	uint32_t gid, mode = nw->mode;
	size_t len;
	int64_t now;
	unsigned credits;
	int err;

	err = fsop_name(name, &len);
	if (err < 0) {
		return err;
	}
	if (fsop_is_dot(name)) {
		return -EEXIST;
	}
	err = fsop_rw(v);
	if (err < 0) {
		return err;
	}
	/* The new inode needs no lock: nobody can reach it but through
	 * the directory, and another host gets the directory's lock only
	 * after we have written everything home (cluster.c). */
	err = fscl_one(v, &cl, dir, true, true, true);
	if (err < 0) {
		*out_im = NULL;
		return err;
	}
	err = fsop_dir_get(v, dir, &dim);
	if (err < 0) {
		goto out_unlock;
	}
	if (dim->di.nlink == 0) {
		err = -ENOENT; /* the directory was removed */
		goto out_put;
	}
	err = fsop_name_free(v, dim, name, len);
	if (err < 0) {
		goto out_put;
	}
	if (S_ISDIR(mode) && dim->di.nlink >= LUNFS_LINK_MAX) {
		err = -EMLINK;
		goto out_put;
	}
	/* BSD/SysV group semantics: a set-gid directory hands its group down,
	 * and its set-gid bit to subdirectories. */
	gid = cr->gid;
	if (dim->di.mode & S_ISGID) {
		gid = dim->di.gid;
		if (S_ISDIR(mode)) {
			mode |= S_ISGID;
		}
	}

	credits = 2 * CR_INODE + CR_IALLOC + dir_change_credits(dim) + CR_ORPHAN;
	if (S_ISLNK(mode)) {
		credits += CR_SYMLINK;
	}
	err = fsop_start(v, credits, &h);
	if (err < 0) {
		goto out_put;
	}
	now = vol_now_ns();
	pthread_rwlock_wrlock(&dim->lock);
	err = inode_alloc(v, h, mode, cr->uid, gid, dir, &im);
	if (err < 0) {
		goto out_stop;
	}
	/* Nobody can reach the new inode yet: taking its lock after the
	 * directory's cannot deadlock whatever the ino order. */
	pthread_rwlock_wrlock(&im->lock);
	im->di.parent_ino = dir;
	im->di.rdev = (S_ISCHR(mode) || S_ISBLK(mode)) ? nw->rdev : 0;
	if (S_ISLNK(mode)) {
		err = symlink_set(v, h, im, nw->target, nw->target_len); /* sets size */
	}
	if (err == 0) {
		err = dir_add(v, h, dim, name, len, im->ino, fsop_dtype(mode));
	}
	if (err == 0) {
		if (S_ISDIR(mode)) {
			dim->di.nlink++;
		}
		fsop_stamp_dir(dim, now);
		err = inode_dirty(h, dim);
	} else {
		/* Not linked anywhere: make the put below reclaim it. */
		im->di.nlink = 0;
	}
	if (err == 0 || im->di.nlink == 0) {
		int e = inode_dirty(h, im);

		err = err < 0 ? err : e;
	}
	if (err == 0) {
		fsop_attr_of(v, im, out);
	}
	pthread_rwlock_unlock(&im->lock);
out_stop:
	pthread_rwlock_unlock(&dim->lock);
	err = fsop_stop(h, err);
	if (im != NULL) {
		if (err < 0) {
			inode_put_locked(v, im);
			im = NULL;
		} else {
			inode_lookup_add(v, im, 1);
		}
	}
out_put:
	inode_put_locked(v, dim);
out_unlock:
	pthread_mutex_unlock(&v->meta_lock);
	fscl_drop(v, &cl);
	*out_im = im;
	return err;
}

static uint32_t fsop_perm(const struct lunfs_cred *cr, uint32_t mode)
{
	return mode & ~cr->umask & 07777;
}

int fsop_mknod(struct lunfs_vol *v, const struct lunfs_cred *cr, uint64_t dir, const char *name,
	       uint32_t mode, uint32_t rdev, struct lunfs_attr *out)
{
	struct fsop_new nw = { .rdev = rdev };
	struct inode_mem *im = NULL;
	uint32_t type = mode & S_IFMT;
	int err;

	if (type == 0) {
		type = S_IFREG;
	}
	if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR &&
	    type != S_IFBLK) {
		return -EINVAL;
	}
	nw.mode = type | fsop_perm(cr, mode);
	err = fsop_make(v, cr, dir, name, &nw, out, &im);
	if (err == 0) {
		inode_put(v, im);
	}
	return err;
}

int fsop_mkdir(struct lunfs_vol *v, const struct lunfs_cred *cr, uint64_t dir, const char *name,
	       uint32_t mode, struct lunfs_attr *out)
{
	struct fsop_new nw = { .mode = S_IFDIR | fsop_perm(cr, mode) };
	struct inode_mem *im = NULL;
	int err = fsop_make(v, cr, dir, name, &nw, out, &im);

	if (err == 0) {
		inode_put(v, im);
	}
	return err;
}

int fsop_symlink(struct lunfs_vol *v, const struct lunfs_cred *cr, uint64_t dir, const char *name,
		 const char *target, struct lunfs_attr *out)
{
	struct fsop_new nw = { .mode = S_IFLNK | 0777, .target = target };
	struct inode_mem *im = NULL;
	int err;

	if (target == NULL || target[0] == '\0') {
		return -ENOENT;
	}
	nw.target_len = strnlen(target, LUNFS_SYMLINK_MAX + 1);
	if (nw.target_len > LUNFS_SYMLINK_MAX) {
		return -ENAMETOOLONG;
	}
	err = fsop_make(v, cr, dir, name, &nw, out, &im);
	if (err == 0) {
		inode_put(v, im);
	}
	return err;
}

/* ---- link, unlink, rmdir ------------------------------------------------------- */

int fsop_link_enter(struct lunfs_vol *v, struct fsop_cl *cl, uint64_t dir, uint64_t ino,
		    const char *name, size_t *len)
{
	int err = fsop_name(name, len);

	if (err < 0) {
		return err;
	}
	if (fsop_is_dot(name)) {
		return -EEXIST;
	}
	err = fsop_rw(v);
	if (err < 0) {
		return err;
	}
	(void)fscl_add(cl, dir, true, true);
	(void)fscl_add(cl, ino, true, false);
	return fscl_enter(v, cl, true);
}

int fsop_link(struct lunfs_vol *v, uint64_t ino, uint64_t dir, const char *name,
	      struct lunfs_attr *out)
{
	struct inode_mem *dim = NULL, *im = NULL;
	struct fsop_lockset ls = { .n = 0 };
	struct fsop_cl cl = { .n = 0 };
	struct jnl_handle *h = NULL;
	size_t len;
	int64_t now;
	int err;

	err = fsop_link_enter(v, &cl, dir, ino, name, &len);
	if (err < 0) {
		return err;
	}
	err = inode_get(v, ino, &im);
	if (err < 0) {
		goto out_unlock;
	}
	if (S_ISDIR(im->di.mode)) {
		err = -EPERM;
		goto out_put;
	}
	if (im->di.nlink == 0) {
		err = -ENOENT; /* no new names for an unlinked file */
		goto out_put;
	}
	if (im->di.nlink >= LUNFS_LINK_MAX) {
		err = -EMLINK;
		goto out_put;
	}
	err = fsop_dir_get(v, dir, &dim);
	if (err < 0) {
		goto out_put;
	}
	if (dim->di.nlink == 0) {
		err = -ENOENT;
		goto out_put;
	}
	err = fsop_name_free(v, dim, name, len);
	if (err < 0) {
		goto out_put;
	}
	err = fsop_start(v, 2 * CR_INODE + dir_change_credits(dim), &h);
	if (err < 0) {
		goto out_put;
	}
	now = vol_now_ns();
	lockset_add(&ls, dim);
	lockset_add(&ls, im);
	lockset_lock(&ls);
	err = dir_add(v, h, dim, name, len, im->ino, fsop_dtype(im->di.mode));
	if (err == 0) {
		im->di.nlink++;
		im->di.ctime_ns = (uint64_t)now;
		fsop_stamp_dir(dim, now);
		err = inode_dirty(h, im);
	}
	if (err == 0) {
		err = inode_dirty(h, dim);
	}
	if (err == 0) {
		fsop_attr_of(v, im, out);
	}
	lockset_unlock(&ls);
	err = fsop_stop(h, err);
	if (err == 0) {
		inode_lookup_add(v, im, 1);
	}
out_put:
	if (dim != NULL) {
		inode_put_locked(v, dim);
	}
	inode_put_locked(v, im);
out_unlock:
	pthread_mutex_unlock(&v->meta_lock);
	fscl_drop(v, &cl);
	return err;
}

/* Take one link from victim (locked, under a handle); a directory loses
 * both its links. At zero it goes on the orphan table: see the top. */
int fsop_drop_link(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *victim,
			  int64_t now)
{
	int err;

	if (S_ISDIR(victim->di.mode)) {
		victim->di.nlink = 0;
	} else if (victim->di.nlink > 0) {
		victim->di.nlink--;
	}
	victim->di.ctime_ns = (uint64_t)now;
	if (victim->di.nlink == 0) {
		err = orphan_add(v, h, victim->ino);
		if (err < 0) {
			return err;
		}
		victim->di.flags |= LUNFS_INODE_ORPHAN;
	}
	return inode_dirty(h, victim);
}

/* Locks of an operation were missing one: drop everything (references
 * first: inode_put_locked needs meta_lock) and say whether to try again.
 * r is fscl_add's answer. */
static int fsop_relock(struct lunfs_vol *v, struct fsop_cl *cl, int r, unsigned *tries)
{
	pthread_mutex_unlock(&v->meta_lock);
	fscl_drop(v, cl);
	if (r < 0) {
		return r;
	}
	if (++*tries >= FSOP_CL_TRIES) {
		return -EBUSY; /* the names keep changing under us */
	}
	return 0;
}

static int fsop_remove(struct lunfs_vol *v, uint64_t dir, const char *name, bool want_dir)
{
	struct inode_mem *dim = NULL, *im = NULL;
	struct fsop_lockset ls = { .n = 0 };
	struct fsop_cl cl = { .n = 0 };
	struct jnl_handle *h = NULL;
	uint64_t ino, gone;
	uint8_t type;
	unsigned tries = 0;
	size_t len;
	int64_t now;
	int err, r;

	err = fsop_name(name, &len);
	if (err < 0) {
		return err;
	}
	if (strcmp(name, ".") == 0) {
		return want_dir ? -EINVAL : -EISDIR;
	}
	if (strcmp(name, "..") == 0) {
		return want_dir ? -ENOTEMPTY : -EISDIR;
	}
	err = fsop_rw(v);
	if (err < 0) {
		return err;
	}
	(void)fscl_add(&cl, dir, true, true);
retry:
	/* The directory, and (VMFS) the victim: a file open on another
	 * host is not unlinked (-EBUSY); an emptied directory's lock also
	 * covers its entries, which another host may have added to. */
	err = fscl_enter(v, &cl, true);
	if (err < 0) {
		return err;
	}
	err = fsop_dir_get(v, dir, &dim);
	if (err < 0) {
		goto out_unlock;
	}
	err = fsop_dir_find(v, dim, name, len, &ino, &type);
	if (err < 0) {
		goto out_put;
	}
	err = inode_get(v, ino, &im);
	if (err < 0) {
		err = err == -ENOENT ? -EUCLEAN : err;
		goto out_put;
	}
	r = fscl_add(&cl, ino, true, S_ISDIR(im->di.mode));
	if (r != 0) {
		inode_put_locked(v, im);
		inode_put_locked(v, dim);
		im = dim = NULL;
		err = fsop_relock(v, &cl, r, &tries);
		if (err < 0) {
			return err;
		}
		goto retry;
	}
	if (want_dir && !S_ISDIR(im->di.mode)) {
		err = -ENOTDIR;
		goto out_put;
	}
	if (!want_dir && S_ISDIR(im->di.mode)) {
		err = -EISDIR;
		goto out_put;
	}
	if (want_dir && !dir_is_empty(im)) {
		err = -ENOTEMPTY;
		goto out_put;
	}
	err = fsop_start(v, 2 * CR_INODE + dir_change_credits(dim) + CR_ORPHAN, &h);
	if (err < 0) {
		goto out_put;
	}
	now = vol_now_ns();
	lockset_add(&ls, dim);
	lockset_add(&ls, im);
	lockset_lock(&ls);
	err = dir_remove(v, h, dim, name, len, &gone);
	if (err == 0 && want_dir && dim->di.nlink > 2) {
		dim->di.nlink--; /* the child's ".." */
	}
	if (err == 0) {
		fsop_stamp_dir(dim, now);
		err = inode_dirty(h, dim);
	}
	if (err == 0) {
		err = fsop_drop_link(v, h, im, now);
	}
	lockset_unlock(&ls);
	err = fsop_stop(h, err);
out_put:
	if (im != NULL) {
		inode_put_locked(v, im);
	}
	if (dim != NULL) {
		inode_put_locked(v, dim);
	}
out_unlock:
	pthread_mutex_unlock(&v->meta_lock);
	fscl_drop(v, &cl);
	return err;
}

int fsop_unlink(struct lunfs_vol *v, uint64_t dir, const char *name)
{
	return fsop_remove(v, dir, name, false);
}

int fsop_rmdir(struct lunfs_vol *v, uint64_t dir, const char *name)
{
	return fsop_remove(v, dir, name, true);
}

/* ---- rename -------------------------------------------------------------------- */

/* Is `anc` dir itself or one of its ancestors? (meta_lock held: the
 * parent chain cannot change under us.) */
static int fsop_is_ancestor(struct lunfs_vol *v, uint64_t anc, uint64_t dir, bool *yes)
{
	uint64_t ino = dir;

	*yes = false;
	for (unsigned depth = 0; depth < FSOP_MAX_DEPTH; depth++) {
		struct inode_mem *im;
		uint64_t parent;
		int err;

		if (ino == anc) {
			*yes = true;
			return 0;
		}
		if (ino == v->sb.root_ino) {
			return 0;
		}
		err = inode_get(v, ino, &im);
		if (err < 0) {
			return err == -ENOENT ? -EUCLEAN : err;
		}
		if (!cluster_holds(v, ino)) {
			/* Another host may have moved it: its ".." as on the
			 * disk, where every earlier move of a directory is
			 * home before the rename lock we hold was let go. */
			(void)inode_refresh(v, im);
		}
		parent = im->di.parent_ino;
		inode_put_locked(v, im);
		if (parent == ino || parent == 0) {
			return -EUCLEAN; /* only the root names itself */
		}
		ino = parent;
	}
	return -EUCLEAN;
}

struct fsop_rename_ctx {
	struct inode_mem *sd, *dd, *src, *dst;
	const char *name, *newname;
	size_t len, newlen;
	unsigned flags;
};

/* Every check of rename(2) that needs no handle. 1 = nothing to do. */
static int fsop_rename_check(struct lunfs_vol *v, struct fsop_rename_ctx *c)
{
	bool src_dir = S_ISDIR(c->src->di.mode);
	bool moves = c->sd != c->dd;
	bool under;
	int err;

	if (c->dst == NULL) {
		if (c->flags & RENAME_EXCHANGE) {
			return -ENOENT;
		}
	} else {
		bool dst_dir = S_ISDIR(c->dst->di.mode);

		if (c->flags & RENAME_NOREPLACE) {
			return -EEXIST;
		}
		if (c->src == c->dst) {
			return 1; /* two names of one inode: POSIX says do nothing */
		}
		if (!(c->flags & RENAME_EXCHANGE)) {
			if (src_dir && !dst_dir) {
				return -ENOTDIR;
			}
			if (!src_dir && dst_dir) {
				return -EISDIR;
			}
			if (dst_dir && !dir_is_empty(c->dst)) {
				return -ENOTEMPTY;
			}
		} else if (dst_dir && moves) {
			err = fsop_is_ancestor(v, c->dst->ino, c->sd->ino, &under);
			if (err < 0) {
				return err;
			}
			if (under) {
				return -EINVAL;
			}
		}
	}
	if (src_dir && moves) {
		err = fsop_is_ancestor(v, c->src->ino, c->dd->ino, &under);
		if (err < 0) {
			return err;
		}
		if (under) {
			return -EINVAL;
		}
		/* dd gains a subdirectory unless it loses one in exchange. */
		if (c->dd->di.nlink >= LUNFS_LINK_MAX &&
		    !(c->dst != NULL && S_ISDIR(c->dst->di.mode))) {
			return -EMLINK;
		}
	}
	if ((c->flags & RENAME_EXCHANGE) && moves && S_ISDIR(c->dst->di.mode) && !src_dir &&
	    c->sd->di.nlink >= LUNFS_LINK_MAX) {
		return -EMLINK;
	}
	return 0;
}

/* A directory `child` moves from `from` to `to`: its ".." and both
 * parents' link counts follow. */
static void fsop_move_dir(struct inode_mem *child, struct inode_mem *from, struct inode_mem *to)
{
	child->di.parent_ino = to->ino;
	if (from->di.nlink > 2) {
		from->di.nlink--;
	}
	to->di.nlink++;
}

static int fsop_rename_do(struct lunfs_vol *v, struct jnl_handle *h, struct fsop_rename_ctx *c,
			  int64_t now)
{
	uint64_t old;
	bool moves = c->sd != c->dd;
	int err;

	if (c->flags & RENAME_EXCHANGE) {
		err = dir_replace(v, h, c->sd, c->name, c->len, c->dst->ino,
				  fsop_dtype(c->dst->di.mode), &old);
		if (err == 0) {
			err = dir_replace(v, h, c->dd, c->newname, c->newlen, c->src->ino,
					  fsop_dtype(c->src->di.mode), &old);
		}
		if (err < 0) {
			return err;
		}
		if (moves && S_ISDIR(c->src->di.mode)) {
			fsop_move_dir(c->src, c->sd, c->dd);
		}
		if (moves && S_ISDIR(c->dst->di.mode)) {
			fsop_move_dir(c->dst, c->dd, c->sd);
		}
		c->dst->di.ctime_ns = (uint64_t)now;
		err = inode_dirty(h, c->dst);
	} else {
		if (c->dst != NULL) {
			err = dir_replace(v, h, c->dd, c->newname, c->newlen, c->src->ino,
					  fsop_dtype(c->src->di.mode), &old);
			if (err == 0 && S_ISDIR(c->dst->di.mode) && c->dd->di.nlink > 2) {
				c->dd->di.nlink--; /* the replaced directory's ".." */
			}
			if (err == 0) {
				err = fsop_drop_link(v, h, c->dst, now);
			}
		} else {
			err = dir_add(v, h, c->dd, c->newname, c->newlen, c->src->ino,
				      fsop_dtype(c->src->di.mode));
		}
		if (err == 0) {
			err = dir_remove(v, h, c->sd, c->name, c->len, &old);
		}
		if (err == 0 && moves && S_ISDIR(c->src->di.mode)) {
			fsop_move_dir(c->src, c->sd, c->dd);
		}
	}
	if (err < 0) {
		return err;
	}
	c->src->di.ctime_ns = (uint64_t)now;
	err = inode_dirty(h, c->src);
	fsop_stamp_dir(c->sd, now);
	fsop_stamp_dir(c->dd, now);
	if (err == 0) {
		err = inode_dirty(h, c->sd);
	}
	if (err == 0 && moves) {
		err = inode_dirty(h, c->dd);
	}
	return err;
}

/* fsop_rename_once: the move needs the rename lock, which it does not
 * hold (everything has been let go: take it and start again). */
#define FSOP_RENAME_NEEDS_LOCK 2

static int fsop_rename_once(struct lunfs_vol *v, uint64_t dir, const char *name, uint64_t newdir,
			    const char *newname, unsigned flags, bool rename_locked)
{
	struct fsop_rename_ctx c = { .name = name, .newname = newname, .flags = flags };
	struct fsop_lockset ls = { .n = 0 };
	struct fsop_cl cl = { .n = 0 };
	struct jnl_handle *h = NULL;
	uint64_t sino, dino;
	uint8_t type;
	unsigned credits, tries = 0;
	int err, r;

	if ((flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0 ||
	    ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))) {
		return -EINVAL;
	}
	err = fsop_name(name, &c.len);
	if (err == 0) {
		err = fsop_name(newname, &c.newlen);
	}
	if (err < 0) {
		return err;
	}
	if (fsop_is_dot(name) || fsop_is_dot(newname)) {
		return -EINVAL;
	}
	err = fsop_rw(v);
	if (err < 0) {
		return err;
	}
	(void)fscl_add(&cl, dir, true, true);
	(void)fscl_add(&cl, newdir, true, true);
retry:
	err = fscl_enter(v, &cl, true);
	if (err < 0) {
		return err;
	}
	err = fsop_dir_get(v, dir, &c.sd);
	if (err < 0) {
		goto out_unlock;
	}
	err = fsop_dir_get(v, newdir, &c.dd);
	if (err < 0) {
		goto out_put;
	}
	err = fsop_dir_find(v, c.sd, name, c.len, &sino, &type);
	if (err < 0) {
		goto out_put;
	}
	err = inode_get(v, sino, &c.src);
	if (err < 0) {
		err = err == -ENOENT ? -EUCLEAN : err;
		goto out_put;
	}
	err = fsop_dir_find(v, c.dd, newname, c.newlen, &dino, &type);
	if (err == 0) {
		err = inode_get(v, dino, &c.dst);
		if (err == -ENOENT) {
			err = -EUCLEAN;
		}
	} else if (err == -ENOENT) {
		err = 0;
	}
	if (err < 0) {
		goto out_put;
	}
	/* What moves changes its ctime (a directory its ".."); what is
	 * replaced loses a link: VMFS, neither may be open elsewhere. */
	r = fscl_add(&cl, c.src->ino, true, S_ISDIR(c.src->di.mode));
	if (r == 0 && c.dst != NULL) {
		r = fscl_add(&cl, c.dst->ino, true, S_ISDIR(c.dst->di.mode));
	}
	if (r != 0) {
		if (c.dst != NULL) {
			inode_put_locked(v, c.dst);
		}
		inode_put_locked(v, c.src);
		inode_put_locked(v, c.dd);
		inode_put_locked(v, c.sd);
		c.sd = c.dd = c.src = c.dst = NULL;
		err = fsop_relock(v, &cl, r, &tries);
		if (err < 0) {
			return err;
		}
		goto retry;
	}
	/* A directory changing parents: the rename lock first (cluster.c). */
	if (!rename_locked && c.sd != c.dd &&
	    (S_ISDIR(c.src->di.mode) ||
	     (c.dst != NULL && (flags & RENAME_EXCHANGE) && S_ISDIR(c.dst->di.mode)))) {
		err = FSOP_RENAME_NEEDS_LOCK;
		goto out_put;
	}
	err = fsop_rename_check(v, &c);
	if (err != 0) {
		err = err > 0 ? 0 : err;
		goto out_put;
	}
	credits = 4 * CR_INODE + dir_change_credits(c.sd) + CR_ORPHAN;
	if (c.dd != c.sd) {
		credits += dir_change_credits(c.dd);
	}
	err = fsop_start(v, credits, &h);
	if (err < 0) {
		goto out_put;
	}
	lockset_add(&ls, c.sd);
	lockset_add(&ls, c.dd);
	lockset_add(&ls, c.src);
	lockset_add(&ls, c.dst);
	lockset_lock(&ls);
	err = fsop_rename_do(v, h, &c, vol_now_ns());
	lockset_unlock(&ls);
	err = fsop_stop(h, err);
out_put:
	if (c.dst != NULL) {
		inode_put_locked(v, c.dst);
	}
	if (c.src != NULL) {
		inode_put_locked(v, c.src);
	}
	if (c.dd != NULL) {
		inode_put_locked(v, c.dd);
	}
	if (c.sd != NULL) {
		inode_put_locked(v, c.sd);
	}
out_unlock:
	pthread_mutex_unlock(&v->meta_lock);
	fscl_drop(v, &cl);
	return err;
}

int fsop_rename(struct lunfs_vol *v, uint64_t dir, const char *name, uint64_t newdir,
		const char *newname, unsigned flags)
{
	int err = fsop_rename_once(v, dir, name, newdir, newname, flags, false);

	if (err == FSOP_RENAME_NEEDS_LOCK) {
		err = cluster_rename_lock(v);
		if (err == 0) {
			err = fsop_rename_once(v, dir, name, newdir, newname, flags, true);
			cluster_rename_unlock(v);
		}
	}
	/* Holding the lock, no second answer can ask for it. */
	return err == FSOP_RENAME_NEEDS_LOCK ? -EIO : err;
}

ssize_t fsop_readlink(struct lunfs_vol *v, uint64_t ino, char *buf, size_t len)
{
	struct inode_mem *im;
	ssize_t ret;
	int err = inode_get(v, ino, &im);

	if (err < 0) {
		return err;
	}
	if (!S_ISLNK(im->di.mode)) {
		inode_put(v, im);
		return -EINVAL;
	}
	pthread_rwlock_rdlock(&im->lock);
	ret = symlink_get(v, im, buf, len);
	pthread_rwlock_unlock(&im->lock);
	inode_put(v, im);
	return ret;
}

/* ---- open files ------------------------------------------------------------------ */

/* Open semantics across hosts (VMFS): see cluster.c. Files only. */
static int fsop_open_lock(struct lunfs_vol *v, struct inode_mem *im, bool write, bool multiwriter,
			  bool is_new)
{
	return cluster_open_lock(v, im, write, multiwriter && !is_new, is_new);
}

/* A multi-writer file is written from several hosts at once, each
 * holding only MULTIWRITER, so nothing may change its map or size: such
 * files are preallocated and written once (eager-zeroed, as VMFS asks),
 * and then only overwritten in place. A write that would allocate, fill
 * an unwritten chunk, copy a shared block or grow the file is refused. */
static int fsop_mw_check(struct lunfs_vol *v, struct inode_mem *im, size_t len, uint64_t off)
{
	uint64_t bs = v->sb.file_block_size;
	int err = 0;

	pthread_rwlock_rdlock(&im->lock);
	if (off + len > im->di.size || off + len < off) {
		err = -EINVAL;
	}
	for (uint64_t b = off / bs; err == 0 && b <= (off + len - 1) / bs; b++) {
		struct lunfs_map_entry e;
		uint64_t run;

		err = bmap_lookup(v, im, b, &e, &run);
		if (err == 0 && (e.addr == 0 || e.written != ~0ull || (e.flags & LUNFS_MAPE_SHARED))) {
			err = -EINVAL;
		}
	}
	pthread_rwlock_unlock(&im->lock);
	if (err == -EINVAL) {
		char msg[200];

		snprintf(msg, sizeof(msg), "inode %llu is multi-writer: a write at %llu of %zu bytes would "
			 "allocate or grow it (preallocate and zero multi-writer files): refused",
			 (unsigned long long)im->ino, (unsigned long long)off, len);
		cluster_log(v, msg);
	}
	return err;
}

static int fsop_fh_new(struct lunfs_vol *v, struct inode_mem *im, int flags, struct lunfs_fh **out)
{
	struct lunfs_fh *fh = calloc(1, sizeof(*fh));

	if (fh == NULL) {
		return -ENOMEM;
	}
	fh->im = im;
	fh->flags = flags;
	inode_open_add(v, im);
	pthread_mutex_lock(&v->fh_lock);
	fh->next = v->fh_list;
	if (v->fh_list != NULL) {
		v->fh_list->prev = fh;
	}
	v->fh_list = fh;
	pthread_mutex_unlock(&v->fh_lock);
	*out = fh;
	return 0;
}

static void fsop_fh_unlink(struct lunfs_vol *v, struct lunfs_fh *fh)
{
	pthread_mutex_lock(&v->fh_lock);
	if (fh->prev != NULL) {
		fh->prev->next = fh->next;
	} else {
		v->fh_list = fh->next;
	}
	if (fh->next != NULL) {
		fh->next->prev = fh->prev;
	}
	pthread_mutex_unlock(&v->fh_lock);
}

int fsop_create(struct lunfs_vol *v, const struct lunfs_cred *cr, uint64_t dir, const char *name,
		uint32_t mode, int flags, struct lunfs_attr *out, struct lunfs_fh **fh)
{
	struct fsop_new nw = { .mode = S_IFREG | fsop_perm(cr, mode) };
	struct inode_mem *im = NULL;

	bool write = (flags & O_ACCMODE) != O_RDONLY;
	int err;

	*fh = NULL;
	err = fsop_make(v, cr, dir, name, &nw, out, &im);
	if (err < 0) {
		return err;
	}
	/* Nobody else can know the new inode yet: the lock is free, and
	 * our copy is the truth (no refresh). */
	err = fsop_open_lock(v, im, write, false, true);
	if (err == 0) {
		err = fsop_fh_new(v, im, flags, fh);
		if (err < 0) {
			cluster_open_unlock(v, im->ino, write);
		} else {
			(*fh)->locked = true;
			(*fh)->write = write;
		}
	}
	if (err < 0) {
		/* The name exists and the kernel has its lookup reference;
		 * only the open failed. */
		inode_put(v, im);
	}
	return err;
}

int fsop_open(struct lunfs_vol *v, uint64_t ino, int flags, struct lunfs_fh **fh)
{
	struct inode_mem *im;
	int acc = flags & O_ACCMODE;
	bool locked = false, multiwriter = false;
	int err;

	*fh = NULL;
	err = inode_get(v, ino, &im);
	if (err < 0) {
		return err;
	}
	if (S_ISDIR(im->di.mode) && acc != O_RDONLY) {
		err = -EISDIR;
		goto out_put;
	}
	if (S_ISLNK(im->di.mode)) {
		err = -ELOOP;
		goto out_put;
	}
	if (acc != O_RDONLY && v->opts.read_only) {
		err = -EROFS;
		goto out_put;
	}
	if (S_ISREG(im->di.mode)) {
		ssize_t mw;

		pthread_rwlock_rdlock(&im->lock);
		mw = xattr_get(v, im, FSOP_MULTIWRITER_XATTR, NULL, 0);
		/* Snapshots are read-only; an image cut half-way through a
		 * revert is not used. */
		err = acc != O_RDONLY ? fsop_snap_write_check(v, im) : 0;
		pthread_rwlock_unlock(&im->lock);
		if (err < 0) {
			goto out_put;
		}
		multiwriter = mw >= 0;
		err = fsop_open_lock(v, im, acc != O_RDONLY, multiwriter, false);
		if (err < 0) {
			goto out_put;
		}
		locked = true;
	}
	if ((flags & O_TRUNC) && acc != O_RDONLY && S_ISREG(im->di.mode)) {
		/* The kernel sends O_TRUNC only with FUSE_CAP_ATOMIC_O_TRUNC;
		 * otherwise it truncates through setattr first. */
		struct lunfs_setattr sa = { .valid = LUNFS_SET_SIZE, .size = 0 };

		err = fsop_setattr(v, ino, &sa, NULL);
		if (err < 0) {
			goto out_put;
		}
	}
	err = fsop_fh_new(v, im, flags, fh);
	if (err < 0) {
		goto out_put;
	}
	(*fh)->locked = locked;
	(*fh)->write = acc != O_RDONLY;
	(*fh)->multiwriter = multiwriter;
	return 0;
out_put:
	if (locked) {
		cluster_open_unlock(v, ino, acc != O_RDONLY);
	}
	inode_put(v, im);
	return err;
}

bool fsop_fh_direct(const struct lunfs_fh *fh)
{
	return fh != NULL && fh->multiwriter;
}

int fsop_release(struct lunfs_vol *v, struct lunfs_fh *fh)
{
	struct inode_mem *im;

	if (fh == NULL) {
		return 0;
	}
	im = fh->im;
	fsop_fh_unlink(v, fh);
	if (fh->locked) {
		cluster_open_unlock(v, im->ino, fh->write);
	}
	free(fh);
	/* Drop the open count while our reference still pins the inode, so
	 * the reclaim (if this was the last user of an unlinked file) runs
	 * once, in inode_put. */
	inode_open_drop(v, im);
	inode_put(v, im);
	return 0;
}

void fsop_release_all(struct lunfs_vol *v)
{
	for (;;) {
		struct lunfs_fh *fh;

		pthread_mutex_lock(&v->fh_lock);
		fh = v->fh_list;
		pthread_mutex_unlock(&v->fh_lock);
		if (fh == NULL) {
			return;
		}
		(void)fsop_release(v, fh);
	}
}

void fsop_fh_abandon_all(struct lunfs_vol *v)
{
	pthread_mutex_lock(&v->fh_lock);
	while (v->fh_list != NULL) {
		struct lunfs_fh *fh = v->fh_list;

		v->fh_list = fh->next;
		free(fh);
	}
	pthread_mutex_unlock(&v->fh_lock);
}

size_t fsop_open_inos(struct lunfs_vol *v, uint64_t *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&v->fh_lock);
	for (struct lunfs_fh *fh = v->fh_list; fh != NULL; fh = fh->next) {
		if (n < max) {
			out[n] = fh->im->ino;
		}
		n++;
	}
	pthread_mutex_unlock(&v->fh_lock);
	return n;
}

ssize_t fsop_read(struct lunfs_vol *v, struct lunfs_fh *fh, void *buf, size_t len, uint64_t off)
{
	if (S_ISDIR(fh->im->di.mode)) {
		return -EISDIR;
	}
	if (!S_ISREG(fh->im->di.mode)) {
		return -EINVAL;
	}
	if (len == 0) {
		return 0;
	}
	return file_read(v, fh->im, buf, len, off);
}

ssize_t fsop_write(struct lunfs_vol *v, struct lunfs_fh *fh, const void *buf, size_t len, uint64_t off)
{
	int err = fsop_rw(v);

	if (err < 0) {
		return err;
	}
	if (S_ISDIR(fh->im->di.mode)) {
		return -EISDIR;
	}
	if (!S_ISREG(fh->im->di.mode)) {
		return -EINVAL;
	}
	if ((fh->flags & O_ACCMODE) == O_RDONLY) {
		return -EBADF;
	}
	if (len == 0) {
		return 0;
	}
	if (fh->multiwriter) {
		err = fsop_mw_check(v, fh->im, len, off);
		if (err < 0) {
			return err;
		}
	}
	return file_write(v, fh->im, buf, len, off);
}

int fsop_fsync(struct lunfs_vol *v, uint64_t ino, bool datasync)
{
	(void)ino;
	(void)datasync; /* we do not track data-only changes: a full sync */
	return fsop_syncfs(v);
}

int fsop_fallocate(struct lunfs_vol *v, uint64_t ino, int mode, uint64_t off, uint64_t len)
{
	struct inode_mem *im;
	int err;

	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		return -EOPNOTSUPP;
	}
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) {
		return -EOPNOTSUPP;
	}
	if ((mode & FALLOC_FL_PUNCH_HOLE) && (mode & FALLOC_FL_ZERO_RANGE)) {
		return -EOPNOTSUPP;
	}
	if (len == 0) {
		return -EINVAL;
	}
	if (off + len < off) {
		return -EFBIG;
	}
	err = fsop_rw(v);
	if (err < 0) {
		return err;
	}
	err = inode_get(v, ino, &im);
	if (err < 0) {
		return err;
	}
	if (S_ISDIR(im->di.mode)) {
		err = -EISDIR;
	} else if (S_ISFIFO(im->di.mode)) {
		err = -ESPIPE;
	} else if (!S_ISREG(im->di.mode)) {
		err = -ENODEV;
	} else {
		pthread_rwlock_rdlock(&im->lock);
		err = fsop_snap_write_check(v, im);
		pthread_rwlock_unlock(&im->lock);
		if (err == 0) {
			err = file_fallocate(v, im, mode, off, len);
		}
	}
	inode_put(v, im);
	return err;
}

int fsop_lseek(struct lunfs_vol *v, uint64_t ino, uint64_t off, int whence, uint64_t *out)
{
	struct inode_mem *im;
	int err;

	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		return -EINVAL;
	}
	err = inode_get(v, ino, &im);
	if (err < 0) {
		return err;
	}
	if (!S_ISREG(im->di.mode)) {
		err = S_ISDIR(im->di.mode) ? -EISDIR : -EINVAL;
	} else if (off >= im->di.size) {
		err = -ENXIO;
	} else {
		err = file_seek(v, im, off, whence, out);
	}
	inode_put(v, im);
	return err;
}

/* ---- readdir ---------------------------------------------------------------------- */

struct fsop_rd {
	struct lunfs_vol *v;
	bool plus;
	lunfs_fill_fn fill;
	void *arg;
	int err;
};

/* Under dim->lock (shared) and, in plus mode, meta_lock: nobody changes
 * an inode record, so reading the child's di needs no lock of its own
 * (and taking one here could deadlock against a writer that holds the
 * child's lock and waits for the directory's). */
static int fsop_rd_entry(void *arg, const char *name, size_t len, uint64_t ino, uint8_t type,
			 uint64_t next_cookie)
{
	struct fsop_rd *rd = arg;
	struct lunfs_attr attr;
	struct inode_mem *im = NULL;
	int stop;

	(void)len;
	memset(&attr, 0, sizeof(attr));
	attr.ino = ino;
	attr.mode = (uint32_t)type << 12;
	if (rd->plus) {
		int err = inode_get(rd->v, ino, &im);

		if (err < 0) {
			rd->err = err == -ENOENT ? -EUCLEAN : err;
			return 1;
		}
		if (!cluster_holds(rd->v, ino)) {
			/* Not ours to cache: as on the disk (see
			 * fsop_attr_fresh). meta_lock is held. */
			(void)inode_refresh(rd->v, im);
		}
		inode_to_attr(rd->v, im, &attr);
	}
	stop = rd->fill(rd->arg, name, &attr, next_cookie);
	if (im != NULL) {
		if (stop == 0) {
			inode_lookup_add(rd->v, im, 1);
		}
		inode_put_locked(rd->v, im);
	}
	return stop;
}

int fsop_readdir(struct lunfs_vol *v, uint64_t dir, uint64_t cookie, bool plus,
		 lunfs_fill_fn fill, void *arg)
{
	struct fsop_rd rd = { .v = v, .plus = plus, .fill = fill, .arg = arg, .err = 0 };
	struct inode_mem *dim = NULL, *pim = NULL;
	struct fsop_cl cl = { .n = 0 };
	struct lunfs_attr attr;
	int err;

	/* The entries are ours to read only under the directory's lock.
	 * Each call takes it again (cached: no I/O), so a listing resumed
	 * after another host changed the directory reads the new blocks;
	 * cookies are hashes, so it neither repeats nor skips an entry
	 * that stayed. */
	err = fscl_one(v, &cl, dir, false, true, false);
	if (err < 0) {
		return err;
	}
	if (plus) {
		pthread_mutex_lock(&v->meta_lock);
	}
	err = inode_get(v, dir, &dim);
	if (err < 0) {
		goto out_unlock;
	}
	if (!S_ISDIR(dim->di.mode)) {
		err = -ENOTDIR;
		goto out_put;
	}
	pthread_rwlock_rdlock(&dim->lock);
	if (cookie == 0) {
		inode_to_attr(v, dim, &attr);
		if (fill(arg, ".", &attr, 1) != 0) {
			goto out_rdunlock;
		}
		cookie = 1;
	}
	if (cookie == 1) {
		uint64_t parent = dim->di.parent_ino;

		memset(&attr, 0, sizeof(attr));
		attr.ino = parent;
		attr.mode = S_IFDIR;
		if (plus && parent != dir && inode_get(v, parent, &pim) == 0) {
			inode_to_attr(v, pim, &attr);
		} else if (parent == dir) {
			inode_to_attr(v, dim, &attr);
		}
		if (fill(arg, "..", &attr, 2) != 0) {
			goto out_rdunlock;
		}
		cookie = 2;
	}
	err = dir_iterate(v, dim, cookie, fsop_rd_entry, &rd);
	if (err > 0) {
		err = 0; /* the callback stopped it */
	}
	if (err == 0) {
		err = rd.err;
	}
out_rdunlock:
	pthread_rwlock_unlock(&dim->lock);
	if (pim != NULL) {
		inode_put_locked(v, pim);
	}
out_put:
	if (plus) {
		inode_put_locked(v, dim);
	} else {
		inode_put(v, dim);
	}
out_unlock:
	if (plus) {
		pthread_mutex_unlock(&v->meta_lock);
	}
	fscl_drop(v, &cl);
	return err;
}

/* ---- extended attributes ------------------------------------------------------------ */

static int fsop_xattr_change(struct lunfs_vol *v, uint64_t ino, const char *name, const void *value,
			     size_t len, int flags, bool remove)
{
	struct fsop_cl cl = { .n = 0 };
	struct inode_mem *im = NULL;
	struct jnl_handle *h = NULL;
	int err;

	if (name == NULL || name[0] == '\0') {
		return -EINVAL;
	}
	if (strlen(name) > XATTR_NAME_MAX) {
		return -ERANGE;
	}
	if (!remove && len > XATTR_SIZE_MAX) {
		return -E2BIG;
	}
	if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
		return -EINVAL;
	}
	err = fsop_rw(v);
	if (err < 0) {
		return err;
	}
	err = inode_get(v, ino, &im);
	if (err < 0) {
		return err;
	}
	/* The chain hangs off the record: the inode's lock EXCLUSIVE. */
	err = fscl_one(v, &cl, ino, true, S_ISDIR(im->di.mode), true);
	if (err < 0) {
		inode_put(v, im);
		return err;
	}
	err = fsop_start(v, CR_INODE + CR_XATTR, &h);
	if (err < 0) {
		goto out_put;
	}
	pthread_rwlock_wrlock(&im->lock);
	if (remove) {
		err = xattr_remove(v, h, im, name);
	} else {
		err = xattr_set(v, h, im, name, value, len, flags);
	}
	if (err == 0) {
		im->di.ctime_ns = (uint64_t)vol_now_ns();
		err = inode_dirty(h, im);
	}
	pthread_rwlock_unlock(&im->lock);
	err = fsop_stop(h, err);
out_put:
	inode_put_locked(v, im);
	pthread_mutex_unlock(&v->meta_lock);
	fscl_drop(v, &cl);
	return err;
}

int fsop_setxattr(struct lunfs_vol *v, uint64_t ino, const char *name, const void *value,
		  size_t len, int flags)
{
	return fsop_xattr_change(v, ino, name, value, len, flags, false);
}

int fsop_removexattr(struct lunfs_vol *v, uint64_t ino, const char *name)
{
	return fsop_xattr_change(v, ino, name, NULL, 0, 0, true);
}

ssize_t fsop_getxattr(struct lunfs_vol *v, uint64_t ino, const char *name, void *buf, size_t len)
{
	struct inode_mem *im;
	int err;

	if (name == NULL || name[0] == '\0') {
		return -EINVAL;
	}
	if (strlen(name) > XATTR_NAME_MAX) {
		return -ERANGE;
	}
	err = inode_get(v, ino, &im);
	if (err < 0) {
		return err;
	}
	pthread_rwlock_rdlock(&im->lock);
	err = xattr_get(v, im, name, buf, len);
	pthread_rwlock_unlock(&im->lock);
	inode_put(v, im);
	return err;
}

ssize_t fsop_listxattr(struct lunfs_vol *v, uint64_t ino, char *buf, size_t len)
{
	struct inode_mem *im;
	int err = inode_get(v, ino, &im);

	if (err < 0) {
		return err;
	}
	pthread_rwlock_rdlock(&im->lock);
	err = xattr_list(v, im, buf, len);
	pthread_rwlock_unlock(&im->lock);
	inode_put(v, im);
	return err;
}
