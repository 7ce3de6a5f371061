/*
 * The FUSE low-level adapter: each libfuse3 request becomes one fsop_* call
 * on the mounted volume (include/lunfs/fs.h) and exactly one reply.
 *
 * Shape (after libfuse's example/passthrough_ll.c): one context struct per
 * mount, reached through fuse_req_userdata(); the fsop_* functions are the
 * "do" functions that return a negative errno; each op_ handler below
 * translates arguments, calls one of them, and replies once.
 *
 * Node ids. FUSE names the root 1 (FUSE_ROOT_ID); lunfs names it
 * vol_root_ino(). Every other inode number is used as the node id
 * unchanged. That is a bijection because inode number 1 is never a valid
 * non-root lunfs inode: it would be unit 1 of cluster 0, which lies inside
 * that cluster's header area (docs/FORMAT.md "Inode numbers": a slot is an
 * inode only if its unit >= header_units, and an inode cluster's header is
 * at least two units). reply_entry() refuses ino 1 for a non-root inode
 * all the same, so a violation shows up as EIO rather than as two inodes
 * sharing a node. The generation of an entry is the inode's generation.
 *
 * Lookup counts. Every entry reply (lookup, mknod, mkdir, symlink, link,
 * create, and each readdirplus entry other than "." and "..") hands the
 * kernel one reference that fsop_* took for it; the kernel gives them back
 * with FORGET. When a reply cannot be delivered (the request was
 * interrupted), the kernel never learns of the entry, so the reference is
 * dropped here at once; likewise an open handle whose reply fails is
 * released.
 *
 * Caching. Names and attributes are not cached by the kernel at all
 * (entry_timeout = attr_timeout = 0): any volume may have other hosts,
 * and the core answers from what it caches under its inode locks, which
 * costs one request but no I/O while the lock stays here (DESIGN 6).
 * When this host hands a lock over, fusemnt.c also tells the kernel to
 * drop the inode's pages. File pages are not kept across opens
 * (keep_cache = 0), and there is no
 * writeback cache: every write reaches the core before write() returns, so
 * fsync only has to commit what the core holds. O_DIRECT opens get
 * direct_io, so their I/O bypasses the page cache entirely (QEMU
 * cache=none).
 *
 * Open handles. fi->fh is a struct fuseops_fh: the core's struct lunfs_fh
 * and the epoch (see "Rejoin") it was opened in. Handles the kernel never
 * releases (lazy unmount, aborted connection) are released by vol_unmount,
 * which keeps its own list. Directory handles carry nothing: readdir
 * positions are the core's stable cookies.
 *
 * Rejoin (docs/DESIGN.md 5.5). A host whose heartbeat slot was taken over
 * while it was frozen is fenced: fusemnt.c then swaps the volume under the
 * session. Every request runs inside a gate, the read side of vol_rw, for
 * its whole length (handler and reply), so the swap (the write side)
 * knows that nobody uses the old volume any more when it abandons it;
 * while no volume is mounted requests answer EIO at once. Each swap bumps
 * the epoch: a handle of an earlier epoch belongs to the abandoned mount
 * (its writes since the last fsync are lost), so everything done through
 * it, fsync included, answers EIO, and its release only frees the wrapper.
 * Node ids stay valid: they are inode numbers, which the new mount finds
 * on disk (an inode removed meanwhile answers ENOENT).
 *
 * readdirplus runs its fill callback under the core's meta_lock and the
 * directory's lock, so the callback only packs the buffer; references of
 * entries that never reach the kernel are given back after fsop_readdir
 * returns.
 *
 * Locks: vol_rw (the gate) only. Every request may run on any worker
 * thread at once; the core is thread-safe (include/lunfs/fs.h).
 */
#include "fuseops.h"

#include "lunfs/ioctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* Largest errno the kernel accepts in a reply is 511. */
#define FUSEOPS_ERRNO_MAX 511

static struct fuseops_ctx *ctx_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static uint64_t ino_of(const struct fuseops_ctx *c, fuse_ino_t node)
{
	return node == FUSE_ROOT_ID ? c->root_ino : (uint64_t)node;
}

static fuse_ino_t node_of(const struct fuseops_ctx *c, uint64_t ino)
{
	return ino == c->root_ino ? FUSE_ROOT_ID : (fuse_ino_t)ino;
}

/* A negative errno from the core as the positive one fuse_reply_err wants. */
static int err_pos(long ret)
{
	if (ret >= 0) {
		return 0;
	}
	if (ret < -FUSEOPS_ERRNO_MAX) {
		return EIO;
	}
	return (int)-ret;
}

static void reply_status(fuse_req_t req, long ret)
{
	fuse_reply_err(req, err_pos(ret));
}

static struct timespec ts_of_ns(int64_t ns)
{
	struct timespec ts;
	int64_t sec = ns / 1000000000;
	int64_t rem = ns % 1000000000;

	/* Before 1970 the remainder is negative; tv_nsec must not be. */
	if (rem < 0) {
		rem += 1000000000;
		sec -= 1;
	}
	ts.tv_sec = (time_t)sec;
	ts.tv_nsec = (long)rem;
	return ts;
}

static int64_t ns_of_ts(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ns_of_ts(&ts);
}

static void stat_of_attr(const struct fuseops_ctx *c, const struct lunfs_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	/* The kernel shows attr.ino as st_ino (not the node id), so the root
	 * keeps its real inode number for userspace. */
	st->st_ino = (ino_t)a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks512;
	st->st_blksize = (blksize_t)c->blksize;
	st->st_atim = ts_of_ns(a->atime_ns);
	st->st_mtim = ts_of_ns(a->mtime_ns);
	st->st_ctim = ts_of_ns(a->ctime_ns);
}

static void entry_of_attr(const struct fuseops_ctx *c, const struct lunfs_attr *a,
			  struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = node_of(c, a->ino);
	e->generation = a->generation;
	stat_of_attr(c, a, &e->attr);
	e->attr_timeout = c->attr_timeout;
	e->entry_timeout = c->entry_timeout;
}

/* See "Node ids" at the top. */
static bool ino_aliases_root(const struct fuseops_ctx *c, uint64_t ino)
{
	return ino == FUSE_ROOT_ID && c->root_ino != FUSE_ROOT_ID;
}

/* Reply with an entry whose lookup reference the core has taken. */
static void reply_entry(fuse_req_t req, struct fuseops_ctx *c, const struct lunfs_attr *a)
{
	struct fuse_entry_param e;

	if (ino_aliases_root(c, a->ino)) {
		fuse_log(FUSE_LOG_ERR, "lunfs: inode 1 is not the root: refusing it\n");
		fsop_forget(c->vol, a->ino, 1);
		fuse_reply_err(req, EIO);
		return;
	}
	entry_of_attr(c, a, &e);
	if (fuse_reply_entry(req, &e) != 0) {
		fsop_forget(c->vol, a->ino, 1);
	}
}

static struct lunfs_cred cred_of(fuse_req_t req)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	struct lunfs_cred cr = {
		.uid = fc->uid,
		.gid = fc->gid,
		.umask = fc->umask,
	};

	return cr;
}

/* ---- open handles ------------------------------------------------------ */

struct fuseops_fh {
	struct lunfs_fh *fh;
	uint64_t epoch;              /* fuseops_ctx.epoch at open */
};

static struct fuseops_fh *wrap_of(const struct fuse_file_info *fi)
{
	return (struct fuseops_fh *)(uintptr_t)fi->fh;
}

/* The core's handle, or NULL if it belongs to an abandoned mount (see
 * "Rejoin" at the top). Called inside the gate. */
static struct lunfs_fh *fh_of(const struct fuseops_ctx *c, const struct fuse_file_info *fi)
{
	struct fuseops_fh *w = wrap_of(fi);

	return w != NULL && w->epoch == c->epoch ? w->fh : NULL;
}

/* A handle of an abandoned mount (0 for directories and handle-less ops). */
static bool fi_stale(const struct fuseops_ctx *c, const struct fuse_file_info *fi)
{
	return fi != NULL && fi->fh != 0 && wrap_of(fi)->epoch != c->epoch;
}

/* Set up fi for a freshly opened handle. -ENOMEM: fh is not published
 * (the caller releases it). */
static int fh_publish(struct fuseops_ctx *c, struct lunfs_fh *fh, struct fuse_file_info *fi)
{
	struct fuseops_fh *w = malloc(sizeof(*w));

	if (w == NULL) {
		return -ENOMEM;
	}
	w->fh = fh;
	w->epoch = c->epoch;
	fi->fh = (uint64_t)(uintptr_t)w;
	/* A multi-writer file is written by several hosts at once: no page
	 * cache at all (the core says which files are). */
	fi->direct_io = (fi->flags & O_DIRECT) != 0 || fsop_fh_direct(fh);
	/* Other hosts may have changed the file since our last open (they
	 * could only once we gave its lock up), so pages cached from then
	 * are dropped at each open. Within one open the lock is ours and
	 * the cache stays valid. */
	fi->keep_cache = 0;
	return 0;
}

/* Undo fh_publish for a reply that could not be sent. */
static void fh_unpublish(struct fuseops_ctx *c, struct fuse_file_info *fi)
{
	struct fuseops_fh *w = wrap_of(fi);

	fsop_release(c->vol, w->fh);
	free(w);
	fi->fh = 0;
}

/* ---- session ------------------------------------------------------------ */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fuseops_ctx *c = userdata;
	unsigned want = FUSE_CAP_ASYNC_READ | FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_ASYNC_DIO |
			FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_READDIRPLUS |
			FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_CACHE_SYMLINKS;
	/* No writeback cache: fsync must find the data in the core, and the
	 * cluster issue needs writes to reach the core in order. No export
	 * support: node ids are not stable handles across remounts yet. The
	 * kernel truncates and kills suid bits itself (a setattr) rather than
	 * folding them into open and write. Splice buys little over a 1 MiB
	 * copy here and is off. */
	unsigned refuse = FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_EXPORT_SUPPORT |
			  FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_HANDLE_KILLPRIV |
			  FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;

	/* libfuse aborts the session if we want what the kernel cannot do. */
	conn->want |= want & conn->capable;
	conn->want &= ~refuse;
	conn->max_write = c->max_write;
	/* libfuse aborts unless this repeats the max_read mount option. */
	conn->max_read = c->max_read;
	/* Async direct I/O splits a large O_DIRECT request into concurrent
	 * background requests; let enough of them run at once. */
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->time_gran = 1;
}

static void op_destroy(void *userdata)
{
	(void)userdata;
}

/* ---- names and attributes ---------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_attr a;
	int ret = fsop_lookup(c->vol, ino_of(c, parent), name, &a);

	if (ret == -ENOENT) {
		/* A negative entry: the kernel remembers the miss for
		 * entry_timeout, which spares repeated lookups of missing
		 * names (PATH searches, create after stat). */
		struct fuse_entry_param e;

		memset(&e, 0, sizeof(e));
		e.entry_timeout = c->entry_timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (ret < 0) {
		reply_status(req, ret);
		return;
	}
	reply_entry(req, c, &a);
}

static void op_forget(fuse_req_t req, fuse_ino_t node, uint64_t nlookup)
{
	struct fuseops_ctx *c = ctx_of(req);

	/* The kernel holds the root without a lookup; it never forgets it. */
	if (node != FUSE_ROOT_ID) {
		fsop_forget(c->vol, ino_of(c, node), nlookup);
	}
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fuseops_ctx *c = ctx_of(req);

	for (size_t i = 0; i < count; i++) {
		if (forgets[i].ino != FUSE_ROOT_ID) {
			fsop_forget(c->vol, ino_of(c, forgets[i].ino), forgets[i].nlookup);
		}
	}
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t node, struct fuse_file_info *fi)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_attr a;
	struct stat st;
	int ret;

	(void)fi;
	ret = fsop_getattr(c->vol, ino_of(c, node), &a);
	if (ret < 0) {
		reply_status(req, ret);
		return;
	}
	stat_of_attr(c, &a, &st);
	fuse_reply_attr(req, &st, c->attr_timeout);
}

static void setattr_of_fuse(const struct stat *st, int to_set, struct lunfs_setattr *sa)
{
	memset(sa, 0, sizeof(*sa));
	if (to_set & FUSE_SET_ATTR_MODE) {
		sa->valid |= LUNFS_SET_MODE;
		sa->mode = st->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		sa->valid |= LUNFS_SET_UID;
		sa->uid = st->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		sa->valid |= LUNFS_SET_GID;
		sa->gid = st->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		sa->valid |= LUNFS_SET_SIZE;
		sa->size = (uint64_t)st->st_size;
	}
	/* The kernel sends ATIME together with ATIME_NOW for "now"; the time
	 * is filled in as well, so the core may read either flag. */
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		sa->valid |= LUNFS_SET_ATIME | LUNFS_SET_ATIME_NOW;
		sa->atime_ns = now_ns();
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		sa->valid |= LUNFS_SET_ATIME;
		sa->atime_ns = ns_of_ts(&st->st_atim);
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		sa->valid |= LUNFS_SET_MTIME | LUNFS_SET_MTIME_NOW;
		sa->mtime_ns = now_ns();
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		sa->valid |= LUNFS_SET_MTIME;
		sa->mtime_ns = ns_of_ts(&st->st_mtim);
	}
	if (to_set & FUSE_SET_ATTR_CTIME) {
		sa->valid |= LUNFS_SET_CTIME;
		sa->ctime_ns = ns_of_ts(&st->st_ctim);
	}
}

static void op_setattr(fuse_req_t req, fuse_ino_t node, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_setattr sa;
	struct lunfs_attr a;
	struct stat st;
	int ret;

	/* ftruncate through a handle of an abandoned mount. */
	if (fi_stale(c, fi)) {
		fuse_reply_err(req, EIO);
		return;
	}
	setattr_of_fuse(attr, to_set, &sa);
	ret = fsop_setattr(c->vol, ino_of(c, node), &sa, &a);
	if (ret < 0) {
		reply_status(req, ret);
		return;
	}
	stat_of_attr(c, &a, &st);
	fuse_reply_attr(req, &st, c->attr_timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t node)
{
	struct fuseops_ctx *c = ctx_of(req);
	size_t cap = 4096;
	char *buf = NULL;
	ssize_t n;

	/* Targets are short; one retry covers a longer one. */
	for (int attempt = 0; attempt < 2; attempt++) {
		char *nb = realloc(buf, cap + 1);

		if (nb == NULL) {
			n = -ENOMEM;
			goto out;
		}
		buf = nb;
		n = fsop_readlink(c->vol, ino_of(c, node), buf, cap);
		if (n < 0 || (size_t)n <= cap) {
			break;
		}
		cap = (size_t)n;
	}
	if (n >= 0 && (size_t)n > cap) {
		n = -EIO;  /* the target grew between the two reads */
	}
out:
	if (n < 0) {
		reply_status(req, n);
	} else {
		buf[n] = '\0';
		fuse_reply_readlink(req, buf);
	}
	free(buf);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_cred cr = cred_of(req);
	struct lunfs_attr a;
	int ret = fsop_mknod(c->vol, &cr, ino_of(c, parent), name, mode, (uint32_t)rdev, &a);

	if (ret < 0) {
		reply_status(req, ret);
		return;
	}
	reply_entry(req, c, &a);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_cred cr = cred_of(req);
	struct lunfs_attr a;
	int ret = fsop_mkdir(c->vol, &cr, ino_of(c, parent), name, mode, &a);

	if (ret < 0) {
		reply_status(req, ret);
		return;
	}
	reply_entry(req, c, &a);
}

static void op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_cred cr = cred_of(req);
	struct lunfs_attr a;
	int ret = fsop_symlink(c->vol, &cr, ino_of(c, parent), name, target, &a);

	if (ret < 0) {
		reply_status(req, ret);
		return;
	}
	reply_entry(req, c, &a);
}

static void op_link(fuse_req_t req, fuse_ino_t node, fuse_ino_t newparent, const char *newname)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_attr a;
	int ret = fsop_link(c->vol, ino_of(c, node), ino_of(c, newparent), newname, &a);

	if (ret < 0) {
		reply_status(req, ret);
		return;
	}
	reply_entry(req, c, &a);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuseops_ctx *c = ctx_of(req);

	reply_status(req, fsop_unlink(c->vol, ino_of(c, parent), name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuseops_ctx *c = ctx_of(req);

	reply_status(req, fsop_rmdir(c->vol, ino_of(c, parent), name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fuseops_ctx *c = ctx_of(req);

	reply_status(req, fsop_rename(c->vol, ino_of(c, parent), name, ino_of(c, newparent),
				      newname, flags));
}

/* ---- files --------------------------------------------------------------- */

static void op_open(fuse_req_t req, fuse_ino_t node, struct fuse_file_info *fi)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_fh *fh = NULL;
	int ret = fsop_open(c->vol, ino_of(c, node), fi->flags, &fh);

	if (ret == 0) {
		ret = fh_publish(c, fh, fi);
		if (ret < 0) {
			fsop_release(c->vol, fh);
		}
	}
	if (ret < 0) {
		reply_status(req, ret);
		return;
	}
	if (fuse_reply_open(req, fi) != 0) {
		fh_unpublish(c, fi);
	}
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_cred cr = cred_of(req);
	struct lunfs_fh *fh = NULL;
	struct fuse_entry_param e;
	struct lunfs_attr a;
	int ret;

	ret = fsop_create(c->vol, &cr, ino_of(c, parent), name, mode, fi->flags, &a, &fh);
	if (ret < 0) {
		reply_status(req, ret);
		return;
	}
	if (ino_aliases_root(c, a.ino)) {
		fuse_log(FUSE_LOG_ERR, "lunfs: inode 1 is not the root: refusing it\n");
		fsop_release(c->vol, fh);
		fsop_forget(c->vol, a.ino, 1);
		fuse_reply_err(req, EIO);
		return;
	}
	ret = fh_publish(c, fh, fi);
	if (ret < 0) {
		fsop_release(c->vol, fh);
		fsop_forget(c->vol, a.ino, 1);
		reply_status(req, ret);
		return;
	}
	entry_of_attr(c, &a, &e);
	if (fuse_reply_create(req, &e, fi) != 0) {
		fh_unpublish(c, fi);
		fsop_forget(c->vol, a.ino, 1);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t node, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_fh *fh;
	void *buf = NULL;
	ssize_t n;

	(void)node;
	if (size > FUSEOPS_MAX_IO) {
		size = FUSEOPS_MAX_IO;
	}
	/* Page-aligned, so the core may read into it with O_DIRECT. */
	if (posix_memalign(&buf, 4096, size > 0 ? size : 1) != 0) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fh = fh_of(c, fi);
	n = fh != NULL ? fsop_read(c->vol, fh, buf, size, (uint64_t)off) : -EIO;
	if (n < 0) {
		reply_status(req, n);
	} else {
		fuse_reply_buf(req, buf, (size_t)n);
	}
	free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t node, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_fh *fh;
	ssize_t n;

	(void)node;
	fh = fh_of(c, fi);
	n = fh != NULL ? fsop_write(c->vol, fh, buf, size, (uint64_t)off) : -EIO;
	if (n < 0) {
		reply_status(req, n);
		return;
	}
	fuse_reply_write(req, (size_t)n);
}

/* copy_file_range: blocks are shared (fsop_copy_range). The reply's count
 * is 32 bits wide, so one call does at most FUSEOPS_COPY_MAX bytes (the
 * kernel's caller loops). When no block can be shared (the offsets differ
 * within a block), EOPNOTSUPP makes the kernel copy the bytes itself. */
#define FUSEOPS_COPY_MAX (1ull << 30)

static void op_copy_file_range(fuse_req_t req, fuse_ino_t node_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t node_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_fh *fin, *fout;
	uint64_t n = len;
	ssize_t r;

	(void)node_in;
	(void)node_out;
	if (flags != 0 || off_in < 0 || off_out < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (n > FUSEOPS_COPY_MAX) {
		n = FUSEOPS_COPY_MAX - FUSEOPS_COPY_MAX % c->blksize;
	}
	fin = fh_of(c, fi_in);
	fout = fh_of(c, fi_out);
	r = fin != NULL && fout != NULL ? fsop_copy_range(c->vol, fin, (uint64_t)off_in, fout, (uint64_t)off_out, n)
					: -EIO; /* a handle of an abandoned mount */
	if (r < 0) {
		reply_status(req, r);
		return;
	}
	fuse_reply_write(req, (size_t)r);
}

/* ---- ioctls: what the lunfs command asks (include/lunfs/ioctl.h) ---------- */

/* May the caller of req do `want` (a mask of 4 read, 2 write, 1 search)
 * on a file with attributes a? The kernel checks permissions of the
 * ordinary operations (default_permissions); an ioctl's meaning is ours,
 * so we check it: root, else the owner, group or other bits. */
static bool ioc_may(fuse_req_t req, const struct lunfs_attr *a, uint32_t want)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	gid_t groups[64];
	uint32_t bits;
	int ng;

	if (fc->uid == 0) {
		return true;
	}
	if (fc->uid == a->uid) {
		bits = (a->mode >> 6) & 7;
		return (bits & want) == want;
	}
	bits = a->mode & 7;
	if (fc->gid == a->gid) {
		bits = (a->mode >> 3) & 7;
	} else {
		ng = fuse_req_getgroups(req, (int)(sizeof(groups) / sizeof(groups[0])), groups);
		for (int i = 0; i < ng && i < (int)(sizeof(groups) / sizeof(groups[0])); i++) {
			if (groups[i] == a->gid) {
				bits = (a->mode >> 3) & 7;
				break;
			}
		}
	}
	return (bits & want) == want;
}

/* Snapshots are the image owner's (or root's) business, like chattr. */
static bool ioc_owner(fuse_req_t req, const struct lunfs_attr *a)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);

	return fc->uid == 0 || fc->uid == a->uid;
}

/* A NUL-terminated name field. */
static int ioc_name(const char *field)
{
	return memchr(field, '\0', LUNFS_IOC_NAME_MAX) != NULL ? 0 : -ENAMETOOLONG;
}

static int ioc_snap(fuse_req_t req, struct fuseops_ctx *c, uint64_t ino, unsigned int cmd,
		    struct lunfs_fh *fh, struct lunfs_ioc_snap *s)
{
	struct lunfs_attr a;
	int err = ioc_name(s->name);

	if (err == 0) {
		err = fsop_getattr(c->vol, ino, &a);
	}
	if (err == 0 && !ioc_owner(req, &a)) {
		err = -EPERM;
	}
	if (err < 0) {
		return err;
	}
	if (cmd == LUNFS_IOC_SNAP_CREATE) {
		struct lunfs_space sp;

		err = fsop_snapshot_create(c->vol, ino, s->name, &a);
		if (err == 0) {
			s->ino = a.ino;
			err = fsop_space(c->vol, a.ino, &sp);
			s->id = sp.snap_id;
		}
		return err;
	}
	if (cmd == LUNFS_IOC_SNAP_REVERT) {
		err = fsop_snapshot_revert(c->vol, ino, s->name, fh);
		if (err == 0 && c->se != NULL) {
			/* New contents under the kernel's cached pages and
			 * attributes. Not under a lock of the kernel's: an
			 * ioctl holds none. */
			(void)fuse_lowlevel_notify_inval_inode(c->se, node_of(c, ino), 0, 0);
		}
		return err;
	}
	{
		uint64_t dir = 0, snap = 0;

		err = fsop_snapshot_delete(c->vol, ino, s->name, &dir, &snap);
		if (err == 0 && c->se != NULL) {
			/* The kernel may still know the snapshot (someone read
			 * it by path): until it forgets it, it stays allocated.
			 * Tell it the name is gone, so it lets go now. */
			(void)fuse_lowlevel_notify_delete(c->se, node_of(c, dir), node_of(c, snap), s->name,
							  strlen(s->name));
		}
		return err;
	}
}

static int ioc_clone(fuse_req_t req, struct fuseops_ctx *c, uint64_t ino, struct lunfs_ioc_clone *cl)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	struct lunfs_cred cr = { .uid = fc->uid, .gid = fc->gid, .umask = fc->umask };
	struct lunfs_attr src, dir, out;
	int err = ioc_name(cl->name);

	if (err == 0) {
		err = fsop_getattr(c->vol, ino, &src);
	}
	if (err == 0) {
		err = fsop_getattr(c->vol, cl->dir == FUSE_ROOT_ID ? c->root_ino : cl->dir, &dir);
	}
	if (err < 0) {
		return err;
	}
	if (!ioc_may(req, &src, 4) || !ioc_may(req, &dir, 3)) {
		return -EACCES;
	}
	err = fsop_clone(c->vol, &cr, ino, dir.ino, cl->name, &out);
	if (err == 0) {
		cl->ino = out.ino;
	}
	return err;
}

static int ioc_info(struct fuseops_ctx *c, uint64_t ino, bool is_dir, struct lunfs_ioc_info *in)
{
	struct lunfs_space sp;
	uint64_t dir = 0;
	int err = ioc_name(in->name);

	if (err == 0 && in->name[0] != '\0') {
		struct lunfs_attr a;

		/* An entry of the directory: no open, so no lock of the file
		 * is asked for (a VM image open on another host is measured
		 * all the same). */
		err = is_dir ? fsop_lookup(c->vol, ino, in->name, &a) : -ENOTDIR;
		if (err == 0) {
			fsop_forget(c->vol, a.ino, 1);
			ino = a.ino;
		}
	}
	if (err == 0) {
		err = fsop_space(c->vol, ino, &sp);
	}
	if (err < 0) {
		return err;
	}
	memset(in, 0, sizeof(*in));
	in->ino = ino;
	in->size = sp.size;
	in->alloc_bytes = sp.alloc_bytes;
	in->excl_bytes = sp.excl_bytes;
	in->shared_bytes = sp.shared_bytes;
	in->flags = sp.flags;
	in->snap_parent = sp.snap_parent;
	in->snap_id = sp.snap_id;
	if (fsop_snapshot_dir(c->vol, ino, in->snap_path, sizeof(in->snap_path), &dir) == 0) {
		in->snap_dir = dir;
	} else {
		in->snap_path[0] = '\0'; /* not a regular file: no snapshots */
	}
	return 0;
}

static void op_ioctl(fuse_req_t req, fuse_ino_t node, unsigned int cmd, void *arg,
		     struct fuse_file_info *fi, unsigned flags, const void *in_buf, size_t in_bufsz,
		     size_t out_bufsz)
{
	struct fuseops_ctx *c = ctx_of(req);
	uint64_t ino = ino_of(c, node);
	int err;

	(void)arg;
	(void)out_bufsz;
	if (flags & FUSE_IOCTL_COMPAT) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	switch (cmd) {
	case LUNFS_IOC_SNAP_CREATE:
	case LUNFS_IOC_SNAP_REVERT:
	case LUNFS_IOC_SNAP_DELETE: {
		struct lunfs_ioc_snap s;

		if (in_bufsz < sizeof(s) || (flags & FUSE_IOCTL_DIR)) {
			fuse_reply_err(req, (flags & FUSE_IOCTL_DIR) ? EISDIR : EINVAL);
			return;
		}
		memcpy(&s, in_buf, sizeof(s));
		err = fi_stale(c, fi) ? -EIO : ioc_snap(req, c, ino, cmd, fh_of(c, fi), &s);
		if (err < 0) {
			reply_status(req, err);
		} else if (cmd == LUNFS_IOC_SNAP_CREATE) {
			fuse_reply_ioctl(req, 0, &s, sizeof(s));
		} else {
			fuse_reply_ioctl(req, 0, NULL, 0);
		}
		return;
	}
	case LUNFS_IOC_CLONE: {
		struct lunfs_ioc_clone cl;

		if (in_bufsz < sizeof(cl)) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		memcpy(&cl, in_buf, sizeof(cl));
		err = ioc_clone(req, c, ino, &cl);
		if (err < 0) {
			reply_status(req, err);
		} else {
			fuse_reply_ioctl(req, 0, &cl, sizeof(cl));
		}
		return;
	}
	case LUNFS_IOC_INFO: {
		struct lunfs_ioc_info in;

		if (in_bufsz < sizeof(in)) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		memcpy(&in, in_buf, sizeof(in));
		err = ioc_info(c, ino, (flags & FUSE_IOCTL_DIR) != 0, &in);
		if (err < 0) {
			reply_status(req, err);
		} else {
			fuse_reply_ioctl(req, 0, &in, sizeof(in));
		}
		return;
	}
	default:
		fuse_reply_err(req, ENOTTY);
		return;
	}
}

static void op_flush(fuse_req_t req, fuse_ino_t node, struct fuse_file_info *fi)
{
	/* Nothing is cached above the core (no writeback cache), so close()
	 * has nothing to push; durability is fsync's job. */
	(void)node;
	(void)fi;
	fuse_reply_err(req, 0);
}

/* A handle of an abandoned mount is only freed: the abandon dropped the
 * core's handle, and the new mount never knew it. */
static void op_release(fuse_req_t req, fuse_ino_t node, struct fuse_file_info *fi)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_fh *fh = fh_of(c, fi);
	int ret = fh != NULL ? fsop_release(c->vol, fh) : 0;

	(void)node;
	free(wrap_of(fi));
	fi->fh = 0;
	reply_status(req, ret);
}

/* Through a handle of an abandoned mount nothing is durable: its writes
 * since the last fsync were dropped with the mount. */
static void op_fsync(fuse_req_t req, fuse_ino_t node, int datasync, struct fuse_file_info *fi)
{
	struct fuseops_ctx *c = ctx_of(req);

	if (fi_stale(c, fi)) {
		fuse_reply_err(req, EIO);
		return;
	}
	reply_status(req, fsop_fsync(c->vol, ino_of(c, node), datasync != 0));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t node, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct fuseops_ctx *c = ctx_of(req);

	if (fi_stale(c, fi)) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	reply_status(req, fsop_fallocate(c->vol, ino_of(c, node), mode, (uint64_t)off,
					 (uint64_t)len));
}

static void op_lseek(fuse_req_t req, fuse_ino_t node, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct fuseops_ctx *c = ctx_of(req);
	uint64_t out = 0;
	int ret;

	(void)fi;
	/* The kernel resolves SEEK_SET/CUR/END itself. */
	if ((whence != SEEK_DATA && whence != SEEK_HOLE) || off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	ret = fsop_lseek(c->vol, ino_of(c, node), (uint64_t)off, whence, &out);
	if (ret < 0) {
		reply_status(req, ret);
		return;
	}
	fuse_reply_lseek(req, (off_t)out);
}

/* ---- directories ------------------------------------------------------- */

static void op_opendir(fuse_req_t req, fuse_ino_t node, struct fuse_file_info *fi)
{
	(void)node;
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t node, struct fuse_file_info *fi)
{
	(void)node;
	(void)fi;
	fuse_reply_err(req, 0);
}

struct readdir_state {
	fuse_req_t req;
	struct fuseops_ctx *c;
	bool plus;
	char *buf;
	size_t size, used;
	/* plus: inodes handed to the kernel with a reference, to give back
	 * if the reply cannot be sent */
	uint64_t *refs;
	size_t nrefs, caprefs;
};

static bool name_is_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/* Room for one more reference in s->refs. */
static int readdir_ref_reserve(struct readdir_state *s)
{
	if (s->nrefs == s->caprefs) {
		size_t cap = s->caprefs > 0 ? 2 * s->caprefs : 64;
		uint64_t *n = realloc(s->refs, cap * sizeof(*n));

		if (n == NULL) {
			return -ENOMEM;
		}
		s->refs = n;
		s->caprefs = cap;
	}
	return 0;
}

/*
 * The fill callback of fsop_readdir: nonzero = stop, this entry was not
 * taken (the core then keeps no reference for it).
 */
static int readdir_fill(void *arg, const char *name, const struct lunfs_attr *a,
			uint64_t next_cookie)
{
	struct readdir_state *s = arg;
	char *p = s->buf + s->used;
	size_t left = s->size - s->used;
	size_t need;

	if (s->plus) {
		struct fuse_entry_param e;
		bool dot = name_is_dot(name);

		if (dot || ino_aliases_root(s->c, a->ino)) {
			/* Node 0: the kernel links no dentry for it, so
			 * no reference travels ("." and ".." never carry
			 * one). */
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = (ino_t)a->ino;
			e.attr.st_mode = a->mode;
		} else {
			entry_of_attr(s->c, a, &e);
		}
		/* Reserve the bookkeeping first: an entry we could not
		 * remember must not be handed out. */
		if (!dot && readdir_ref_reserve(s) < 0) {
			return 1;
		}
		need = fuse_add_direntry_plus(s->req, p, left, name, &e, (off_t)next_cookie);
		if (need > left) {
			return 1;
		}
		if (!dot) {
			s->refs[s->nrefs++] = a->ino;
		}
	} else {
		struct stat st;

		memset(&st, 0, sizeof(st));
		st.st_ino = (ino_t)a->ino;
		st.st_mode = a->mode;
		need = fuse_add_direntry(s->req, p, left, name, &st, (off_t)next_cookie);
		if (need > left) {
			return 1;
		}
	}
	s->used += need;
	return 0;
}

static void readdir_common(fuse_req_t req, fuse_ino_t node, size_t size, off_t off, bool plus)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct readdir_state s = {
		.req = req,
		.c = c,
		.plus = plus,
		.size = size,
	};
	int ret;

	s.buf = malloc(size > 0 ? size : 1);
	if (s.buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ret = fsop_readdir(c->vol, ino_of(c, node), (uint64_t)off, plus, readdir_fill, &s);
	/* Entries already packed are sent even after an error: their
	 * references are taken, and the error comes back on the next call. */
	if (ret < 0 && s.used == 0) {
		reply_status(req, ret);
	} else {
		bool sent = fuse_reply_buf(req, s.buf, s.used) == 0;

		/* Give back what the kernel did not get: everything if the
		 * reply failed, else only entries sent as node 0. */
		for (size_t i = 0; i < s.nrefs; i++) {
			if (!sent || ino_aliases_root(c, s.refs[i])) {
				fsop_forget(c->vol, s.refs[i], 1);
			}
		}
	}
	free(s.refs);
	free(s.buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t node, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	readdir_common(req, node, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t node, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	readdir_common(req, node, size, off, true);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t node, int datasync, struct fuse_file_info *fi)
{
	struct fuseops_ctx *c = ctx_of(req);

	(void)fi;
	reply_status(req, fsop_fsync(c->vol, ino_of(c, node), datasync != 0));
}

/* ---- the volume ------------------------------------------------------- */

static void op_statfs(fuse_req_t req, fuse_ino_t node)
{
	struct fuseops_ctx *c = ctx_of(req);
	struct lunfs_statfs sf;
	struct statvfs st;
	int ret;

	(void)node;
	ret = fsop_statfs(c->vol, &sf);
	if (ret < 0) {
		reply_status(req, ret);
		return;
	}
	memset(&st, 0, sizeof(st));
	st.f_bsize = sf.block_size;
	st.f_frsize = sf.block_size;
	st.f_blocks = sf.blocks;
	st.f_bfree = sf.blocks_free;
	st.f_bavail = sf.blocks_free;  /* nothing is reserved for root */
	st.f_files = sf.files;
	st.f_ffree = sf.files_free;
	st.f_favail = sf.files_free;
	st.f_namemax = sf.name_max;
	fuse_reply_statfs(req, &st);
}

/* ---- extended attributes ------------------------------------------------ */

static void op_setxattr(fuse_req_t req, fuse_ino_t node, const char *name, const char *value,
			size_t size, int flags)
{
	struct fuseops_ctx *c = ctx_of(req);

	reply_status(req, fsop_setxattr(c->vol, ino_of(c, node), name, value, size, flags));
}

/* size 0 asks for the length only (fuse_reply_xattr); otherwise the value,
 * or ERANGE when it does not fit. */
static void op_getxattr(fuse_req_t req, fuse_ino_t node, const char *name, size_t size)
{
	struct fuseops_ctx *c = ctx_of(req);
	char *buf = NULL;
	ssize_t n;

	if (size > 0) {
		buf = malloc(size);
		if (buf == NULL) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	n = fsop_getxattr(c->vol, ino_of(c, node), name, buf, size);
	if (n < 0) {
		reply_status(req, n);
	} else if (size == 0) {
		fuse_reply_xattr(req, (size_t)n);
	} else {
		fuse_reply_buf(req, buf, (size_t)n);
	}
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t node, size_t size)
{
	struct fuseops_ctx *c = ctx_of(req);
	char *buf = NULL;
	ssize_t n;

	if (size > 0) {
		buf = malloc(size);
		if (buf == NULL) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	n = fsop_listxattr(c->vol, ino_of(c, node), buf, size);
	if (n < 0) {
		reply_status(req, n);
	} else if (size == 0) {
		fuse_reply_xattr(req, (size_t)n);
	} else {
		fuse_reply_buf(req, buf, (size_t)n);
	}
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t node, const char *name)
{
	struct fuseops_ctx *c = ctx_of(req);

	reply_status(req, fsop_removexattr(c->vol, ino_of(c, node), name));
}

/* ---- the gate (see "Rejoin" at the top) ------------------------------------ */

/* Enter: true with the volume pinned until gate_leave; false (nothing
 * held) while no volume is mounted. */
static bool gate_enter(struct fuseops_ctx *c)
{
	pthread_rwlock_rdlock(&c->vol_rw);
	if (c->vol == NULL) {
		pthread_rwlock_unlock(&c->vol_rw);
		return false;
	}
	return true;
}

static void gate_leave(struct fuseops_ctx *c)
{
	pthread_rwlock_unlock(&c->vol_rw);
}

/* gated_OP runs op_OP inside the gate, or answers EIO. */
#define FUSEOPS_GATED(op, params, args)                                  \
	static void gated_##op params                                     \
	{                                                                 \
		struct fuseops_ctx *c = ctx_of(req);                      \
                                                                          \
		if (!gate_enter(c)) {                                     \
			fuse_reply_err(req, EIO);                         \
			return;                                           \
		}                                                         \
		op_##op args;                                             \
		gate_leave(c);                                            \
	}

typedef struct fuse_file_info ffi;
FUSEOPS_GATED(lookup, (fuse_req_t req, fuse_ino_t p, const char *n), (req, p, n))
FUSEOPS_GATED(getattr, (fuse_req_t req, fuse_ino_t i, ffi *fi), (req, i, fi))
FUSEOPS_GATED(setattr, (fuse_req_t req, fuse_ino_t i, struct stat *a, int s, ffi *fi), (req, i, a, s, fi))
FUSEOPS_GATED(readlink, (fuse_req_t req, fuse_ino_t i), (req, i))
FUSEOPS_GATED(mknod, (fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t r), (req, p, n, m, r))
FUSEOPS_GATED(mkdir, (fuse_req_t req, fuse_ino_t p, const char *n, mode_t m), (req, p, n, m))
FUSEOPS_GATED(unlink, (fuse_req_t req, fuse_ino_t p, const char *n), (req, p, n))
FUSEOPS_GATED(rmdir, (fuse_req_t req, fuse_ino_t p, const char *n), (req, p, n))
FUSEOPS_GATED(symlink, (fuse_req_t req, const char *t, fuse_ino_t p, const char *n), (req, t, p, n))
FUSEOPS_GATED(rename, (fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn,
		       unsigned int f), (req, p, n, np, nn, f))
FUSEOPS_GATED(link, (fuse_req_t req, fuse_ino_t i, fuse_ino_t np, const char *nn), (req, i, np, nn))
FUSEOPS_GATED(open, (fuse_req_t req, fuse_ino_t i, ffi *fi), (req, i, fi))
FUSEOPS_GATED(create, (fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, ffi *fi), (req, p, n, m, fi))
FUSEOPS_GATED(read, (fuse_req_t req, fuse_ino_t i, size_t n, off_t o, ffi *fi), (req, i, n, o, fi))
FUSEOPS_GATED(write, (fuse_req_t req, fuse_ino_t i, const char *b, size_t n, off_t o, ffi *fi),
	      (req, i, b, n, o, fi))
FUSEOPS_GATED(fsync, (fuse_req_t req, fuse_ino_t i, int d, ffi *fi), (req, i, d, fi))
FUSEOPS_GATED(fallocate, (fuse_req_t req, fuse_ino_t i, int m, off_t o, off_t l, ffi *fi), (req, i, m, o, l, fi))
FUSEOPS_GATED(lseek, (fuse_req_t req, fuse_ino_t i, off_t o, int w, ffi *fi), (req, i, o, w, fi))
FUSEOPS_GATED(copy_file_range, (fuse_req_t req, fuse_ino_t i, off_t o, ffi *fi, fuse_ino_t i2, off_t o2, ffi *fi2,
				size_t n, int f), (req, i, o, fi, i2, o2, fi2, n, f))
FUSEOPS_GATED(ioctl, (fuse_req_t req, fuse_ino_t i, unsigned int cmd, void *arg, ffi *fi, unsigned f,
		      const void *in, size_t insz, size_t outsz), (req, i, cmd, arg, fi, f, in, insz, outsz))
FUSEOPS_GATED(readdir, (fuse_req_t req, fuse_ino_t i, size_t n, off_t o, ffi *fi), (req, i, n, o, fi))
FUSEOPS_GATED(readdirplus, (fuse_req_t req, fuse_ino_t i, size_t n, off_t o, ffi *fi), (req, i, n, o, fi))
FUSEOPS_GATED(fsyncdir, (fuse_req_t req, fuse_ino_t i, int d, ffi *fi), (req, i, d, fi))
FUSEOPS_GATED(statfs, (fuse_req_t req, fuse_ino_t i), (req, i))
FUSEOPS_GATED(setxattr, (fuse_req_t req, fuse_ino_t i, const char *n, const char *v, size_t z, int f),
	      (req, i, n, v, z, f))
FUSEOPS_GATED(getxattr, (fuse_req_t req, fuse_ino_t i, const char *n, size_t z), (req, i, n, z))
FUSEOPS_GATED(listxattr, (fuse_req_t req, fuse_ino_t i, size_t z), (req, i, z))
FUSEOPS_GATED(removexattr, (fuse_req_t req, fuse_ino_t i, const char *n), (req, i, n))

/* release must free the wrapper whatever happens; forgets have no reply
 * but none. With no volume mounted their references went with the old
 * mount. */
static void gated_release(fuse_req_t req, fuse_ino_t node, ffi *fi)
{
	struct fuseops_ctx *c = ctx_of(req);

	if (!gate_enter(c)) {
		free(wrap_of(fi));
		fi->fh = 0;
		fuse_reply_err(req, 0);
		return;
	}
	op_release(req, node, fi);
	gate_leave(c);
}

static void gated_forget(fuse_req_t req, fuse_ino_t node, uint64_t nlookup)
{
	struct fuseops_ctx *c = ctx_of(req);

	if (!gate_enter(c)) {
		fuse_reply_none(req);
		return;
	}
	op_forget(req, node, nlookup);
	gate_leave(c);
}

static void gated_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fuseops_ctx *c = ctx_of(req);

	if (!gate_enter(c)) {
		fuse_reply_none(req);
		return;
	}
	op_forget_multi(req, count, forgets);
	gate_leave(c);
}

/*
 * Not implemented, on purpose: access (default_permissions: the kernel
 * checks), locks (the kernel keeps POSIX/OFD/flock locks locally, which is
 * right on one host; QEMU's image locks are OFD locks), copy_file_range
 * (ENOSYS: the kernel falls back to read/write), ioctl, poll, bmap.
 */
const struct fuse_lowlevel_ops fuseops_table = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = gated_lookup,
	.forget = gated_forget,
	.forget_multi = gated_forget_multi,
	.getattr = gated_getattr,
	.setattr = gated_setattr,
	.readlink = gated_readlink,
	.mknod = gated_mknod,
	.mkdir = gated_mkdir,
	.unlink = gated_unlink,
	.rmdir = gated_rmdir,
	.symlink = gated_symlink,
	.rename = gated_rename,
	.link = gated_link,
	.open = gated_open,
	.create = gated_create,
	.read = gated_read,
	.write = gated_write,
	.flush = op_flush,
	.release = gated_release,
	.fsync = gated_fsync,
	.fallocate = gated_fallocate,
	.copy_file_range = gated_copy_file_range,
	.ioctl = gated_ioctl,
	.lseek = gated_lseek,
	.opendir = op_opendir,
	.readdir = gated_readdir,
	.readdirplus = gated_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = gated_fsyncdir,
	.statfs = gated_statfs,
	.setxattr = gated_setxattr,
	.getxattr = gated_getxattr,
	.listxattr = gated_listxattr,
	.removexattr = gated_removexattr,
};

void fuseops_ctx_init(struct fuseops_ctx *c, struct lunfs_vol *vol, bool read_only,
		      uint32_t max_read)
{
	pthread_rwlockattr_t ra;

	memset(c, 0, sizeof(*c));
	/* A swap must not wait behind an endless stream of requests. */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&c->vol_rw, &ra);
	pthread_rwlockattr_destroy(&ra);
	c->vol = vol;
	c->root_ino = vol_root_ino(vol);
	c->blksize = vol_super(vol)->file_block_size;
	/* Another host may change any name or inode once we give its lock
	 * up; the kernel asks every time (see the top). */
	c->entry_timeout = 0.0;
	c->attr_timeout = 0.0;
	c->max_write = FUSEOPS_MAX_IO;
	c->max_read = max_read;
	c->read_only = read_only;
}

void fuseops_ctx_fini(struct fuseops_ctx *c)
{
	pthread_rwlock_destroy(&c->vol_rw);
}

struct lunfs_vol *fuseops_vol_swap(struct fuseops_ctx *c, struct lunfs_vol *nv)
{
	struct lunfs_vol *old;

	pthread_rwlock_wrlock(&c->vol_rw);
	old = c->vol;
	c->vol = nv;
	c->epoch++;
	pthread_rwlock_unlock(&c->vol_rw);
	return old;
}
