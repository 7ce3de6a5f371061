/*
 * passthrough_ll: the FUSE baseline of bench/run. It mirrors one directory
 * of the host filesystem under a mount point with the libfuse3 low-level
 * API, doing the least a FUSE filesystem can do, so that "lunfs vs this"
 * measures what lunfs costs beyond FUSE itself.
 *
 * Usage: passthrough_ll SOURCE_DIR MOUNTPOINT   (stays in the foreground;
 * unmount with fusermount3 -u, or SIGTERM)
 *
 * Fairness contract: the FUSE session is configured exactly like lunfs's
 * (fuse/fuseops.c op_init, fuse/fusemnt.c): the same capabilities, no
 * writeback cache, no splice, max_write 1 MiB, max_background 64, 1 s
 * entry/attribute timeouts, the multi-threaded loop with clone_fd and up to
 * 32 workers; O_DIRECT opens get direct_io. Any difference measured is
 * then in the filesystem behind the requests, not in the FUSE setup.
 *
 * Node ids: one struct pt_inode per (st_dev, st_ino) seen; the node id is
 * the struct's address (as in libfuse's example/passthrough_ll.c). It
 * keeps the inode's file handle (name_to_handle_at) rather than an O_PATH
 * descriptor: the kernel holds a lookup on every inode in its dentry cache,
 * 100k and more in the metadata benchmark, beyond RLIMIT_NOFILE, which we
 * may not raise here. Each request opens the inode by handle (one
 * open_by_handle_at, a few hundred ns) and closes it. A hash table finds
 * the inode of a looked-up name in O(1), which matters in a 100k-file
 * directory. An inode lives while the kernel holds lookups on it
 * (nlookup > 0); the root never goes away. File handles are descriptors.
 * Not provided (ENOSYS): mkdir, rmdir, readdir, links, symlinks, mknod,
 * xattrs, chown, statfs, locks: the benchmarks never call them (bench/run
 * prepares directories in the source directory itself).
 */
#define FUSE_USE_VERSION 314
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PT_BUCKETS (1u << 18)
#define PT_MAX_IO (1u << 20)

struct pt_inode {
	struct file_handle *h;
	dev_t dev;
	ino_t ino;
	uint64_t nlookup;
	struct pt_inode *next;
};

struct pt_ctx {
	pthread_mutex_t lock; /* the hash table and every nlookup */
	int mount_fd; /* the source directory, for open_by_handle_at */
	struct pt_inode root;
	struct pt_inode **table;
};

static struct pt_ctx *pt_ctx(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct pt_inode *pt_inode(fuse_req_t req, fuse_ino_t node)
{
	return node == FUSE_ROOT_ID ? &pt_ctx(req)->root : (struct pt_inode *)(uintptr_t)node;
}

static size_t pt_hash(dev_t dev, ino_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) ^ dev) & (PT_BUCKETS - 1);
}

/* A new descriptor of node (O_PATH, or opened for I/O); -1 and errno. */
static int pt_fd(fuse_req_t req, fuse_ino_t node, int flags)
{
	return open_by_handle_at(pt_ctx(req)->mount_fd, pt_inode(req, node)->h, flags);
}

static struct file_handle *pt_handle_at(int dirfd, const char *name)
{
	struct file_handle *h = malloc(sizeof(*h) + MAX_HANDLE_SZ);
	int mount_id;

	if (h == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	h->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(dirfd, name, h, &mount_id, name[0] == 0 ? AT_EMPTY_PATH : 0) < 0) {
		free(h);
		return NULL;
	}
	return h;
}

/* Look name up under parent, take one lookup reference and fill e. */
static int pt_do_lookup(fuse_req_t req, fuse_ino_t parent, const char *name, struct fuse_entry_param *e)
{
	struct pt_ctx *c = pt_ctx(req);
	struct file_handle *h = NULL;
	struct pt_inode *in;
	int pfd, ret = 0;
	size_t i;

	memset(e, 0, sizeof(*e));
	e->attr_timeout = 1.0;
	e->entry_timeout = 1.0;
	pfd = pt_fd(req, parent, O_PATH);
	if (pfd < 0) {
		return errno;
	}
	if (fstatat(pfd, name, &e->attr, AT_SYMLINK_NOFOLLOW) < 0 || (h = pt_handle_at(pfd, name)) == NULL) {
		ret = errno;
		close(pfd);
		return ret;
	}
	close(pfd);
	i = pt_hash(e->attr.st_dev, e->attr.st_ino);
	pthread_mutex_lock(&c->lock);
	for (in = c->table[i]; in != NULL; in = in->next) {
		if (in->dev == e->attr.st_dev && in->ino == e->attr.st_ino) {
			break;
		}
	}
	if (in != NULL) {
		free(h); /* known already */
	} else {
		in = calloc(1, sizeof(*in));
		if (in == NULL) {
			pthread_mutex_unlock(&c->lock);
			free(h);
			return ENOMEM;
		}
		in->h = h;
		in->dev = e->attr.st_dev;
		in->ino = e->attr.st_ino;
		in->next = c->table[i];
		c->table[i] = in;
	}
	in->nlookup++;
	pthread_mutex_unlock(&c->lock);
	e->ino = (fuse_ino_t)(uintptr_t)in;
	return 0;
}

static void pt_forget_one(fuse_req_t req, fuse_ino_t node, uint64_t n)
{
	struct pt_ctx *c = pt_ctx(req);
	struct pt_inode *in = pt_inode(req, node), **pp;

	if (in == &c->root) {
		return;
	}
	pthread_mutex_lock(&c->lock);
	in->nlookup -= n;
	if (in->nlookup == 0) {
		for (pp = &c->table[pt_hash(in->dev, in->ino)]; *pp != in; pp = &(*pp)->next) {
		}
		*pp = in->next;
		free(in->h);
		free(in);
	}
	pthread_mutex_unlock(&c->lock);
}

static void pt_reply_entry(fuse_req_t req, int err, const struct fuse_entry_param *e)
{
	if (err != 0) {
		fuse_reply_err(req, err);
	} else {
		fuse_reply_entry(req, e);
	}
}

/* ---- operations ------------------------------------------------------- */

static void pt_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* The same as lunfs's op_init (fuse/fuseops.c). */
	conn->want |= (FUSE_CAP_ASYNC_READ | FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_ASYNC_DIO) & conn->capable;
	conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
			FUSE_CAP_SPLICE_MOVE);
	conn->max_write = PT_MAX_IO;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;

	pt_reply_entry(req, pt_do_lookup(req, parent, name, &e), &e);
}

static void pt_forget(fuse_req_t req, fuse_ino_t node, uint64_t n)
{
	pt_forget_one(req, node, n);
	fuse_reply_none(req);
}

static void pt_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++) {
		pt_forget_one(req, f[i].ino, f[i].nlookup);
	}
	fuse_reply_none(req);
}

static void pt_getattr(fuse_req_t req, fuse_ino_t node, struct fuse_file_info *fi)
{
	struct stat st;
	int fd = pt_fd(req, node, O_PATH);

	(void)fi;
	if (fd < 0 || fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		fuse_reply_err(req, errno);
		if (fd >= 0) {
			close(fd);
		}
		return;
	}
	close(fd);
	fuse_reply_attr(req, &st, 1.0);
}

static void pt_setattr(fuse_req_t req, fuse_ino_t node, struct stat *a, int set, struct fuse_file_info *fi)
{
	struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
	char path[64];
	int r = 0, fd = pt_fd(req, node, O_PATH);

	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (set & FUSE_SET_ATTR_MODE) {
		r = chmod(path, a->st_mode);
	}
	if (r == 0 && (set & FUSE_SET_ATTR_SIZE)) {
		r = fi != NULL ? ftruncate((int)fi->fh, a->st_size) : truncate(path, a->st_size);
	}
	if (set & FUSE_SET_ATTR_ATIME) {
		tv[0] = (set & FUSE_SET_ATTR_ATIME_NOW) ? (struct timespec){ .tv_nsec = UTIME_NOW } : a->st_atim;
	}
	if (set & FUSE_SET_ATTR_MTIME) {
		tv[1] = (set & FUSE_SET_ATTR_MTIME_NOW) ? (struct timespec){ .tv_nsec = UTIME_NOW } : a->st_mtim;
	}
	if (r == 0 && (set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		r = utimensat(AT_FDCWD, path, tv, 0);
	}
	r = r < 0 ? errno : 0;
	close(fd);
	if (r != 0) {
		fuse_reply_err(req, r);
		return;
	}
	pt_getattr(req, node, fi);
}

static void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int fd = pt_fd(req, parent, O_PATH);
	int r = fd < 0 || unlinkat(fd, name, 0) < 0 ? errno : 0;

	if (fd >= 0) {
		close(fd);
	}
	fuse_reply_err(req, r);
}

static void pt_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	int fd = pt_fd(req, parent, O_PATH), nfd = pt_fd(req, newparent, O_PATH);
	int r = fd < 0 || nfd < 0 || renameat2(fd, name, nfd, newname, flags) < 0 ? errno : 0;

	if (fd >= 0) {
		close(fd);
	}
	if (nfd >= 0) {
		close(nfd);
	}
	fuse_reply_err(req, r);
}

static void pt_set_fh(struct fuse_file_info *fi, int fd)
{
	fi->fh = (uint64_t)fd;
	fi->direct_io = (fi->flags & O_DIRECT) != 0;
	fi->keep_cache = !fi->direct_io;
}

static void pt_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int fd, pfd, err;

	pfd = pt_fd(req, parent, O_PATH);
	if (pfd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fd = openat(pfd, name, (fi->flags | O_CREAT) & ~O_NOFOLLOW, mode);
	err = errno;
	close(pfd);
	if (fd < 0) {
		errno = err;
		fuse_reply_err(req, errno);
		return;
	}
	err = pt_do_lookup(req, parent, name, &e);
	if (err != 0) {
		close(fd);
		fuse_reply_err(req, err);
		return;
	}
	pt_set_fh(fi, fd);
	if (fuse_reply_create(req, &e, fi) != 0) {
		close(fd);
		pt_forget_one(req, e.ino, 1);
	}
}

static void pt_open(fuse_req_t req, fuse_ino_t node, struct fuse_file_info *fi)
{
	int fd = pt_fd(req, node, fi->flags & ~O_NOFOLLOW);

	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	pt_set_fh(fi, fd);
	if (fuse_reply_open(req, fi) != 0) {
		close(fd);
	}
}

static void pt_release(fuse_req_t req, fuse_ino_t node, struct fuse_file_info *fi)
{
	(void)node;
	close((int)fi->fh);
	fuse_reply_err(req, 0);
}

static void pt_fsync(fuse_req_t req, fuse_ino_t node, int datasync, struct fuse_file_info *fi)
{
	int fd = (int)fi->fh;

	(void)node;
	fuse_reply_err(req, (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0);
}

static void pt_read(fuse_req_t req, fuse_ino_t node, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)node;
	/* Without splice libfuse reads the descriptor into its own buffer:
	 * one copy, as lunfs's bounce buffer costs. */
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = (int)fi->fh;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void pt_write(fuse_req_t req, fuse_ino_t node, const char *data, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	ssize_t n;

	(void)node;
	n = pwrite((int)fi->fh, data, size, off);
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_write(req, (size_t)n);
}

static void pt_fallocate(fuse_req_t req, fuse_ino_t node, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	(void)node;
	fuse_reply_err(req, fallocate((int)fi->fh, mode, off, len) < 0 ? errno : 0);
}

static const struct fuse_lowlevel_ops pt_ops = {
	.init = pt_init,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.forget_multi = pt_forget_multi,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.unlink = pt_unlink,
	.rename = pt_rename,
	.create = pt_create,
	.open = pt_open,
	.release = pt_release,
	.fsync = pt_fsync,
	.read = pt_read,
	.write = pt_write,
	.fallocate = pt_fallocate,
};

int main(int argc, char **argv)
{
	char *fargv[] = { argv[0], "-o", "default_permissions,allow_other,fsname=passthrough_ll", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_session *se = NULL;
	struct fuse_loop_config *cfg = NULL;
	struct pt_ctx c;
	int ret = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: %s SOURCE_DIR MOUNTPOINT\n", argv[0]);
		return 2;
	}
	memset(&c, 0, sizeof(c));
	pthread_mutex_init(&c.lock, NULL);
	c.root.nlookup = 1;
	c.mount_fd = open(argv[1], O_RDONLY | O_DIRECTORY); /* open_by_handle_at refuses O_PATH */
	c.table = calloc(PT_BUCKETS, sizeof(*c.table));
	if (c.mount_fd < 0 || c.table == NULL || (c.root.h = pt_handle_at(c.mount_fd, "")) == NULL) {
		perror(argv[1]);
		goto out;
	}
	se = fuse_session_new(&args, &pt_ops, sizeof(pt_ops), &c);
	if (se == NULL) {
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0) {
		goto out_destroy;
	}
	if (fuse_session_mount(se, argv[2]) != 0) {
		goto out_signals;
	}
	/* The loop lunfs serves with (fuse/fusemnt.c). */
	cfg = fuse_loop_cfg_create();
	if (cfg == NULL) {
		goto out_unmount;
	}
	fuse_loop_cfg_set_clone_fd(cfg, 1);
	fuse_loop_cfg_set_max_threads(cfg, 32);
	fuse_loop_cfg_set_idle_threads(cfg, 8);
	ret = fuse_session_loop_mt(se, cfg) != 0;
	fuse_loop_cfg_destroy(cfg);
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
out:
	free(c.table);
	free(c.root.h);
	if (c.mount_fd >= 0) {
		close(c.mount_fd);
	}
	fuse_opt_free_args(&args);
	return ret;
}
