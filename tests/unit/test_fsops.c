/*
 * Unit tests of vol_mount and the fsop_* layer (fs/vol.c, fs/fsops.c): a
 * POSIX conformance suite of our own on the fsop API, on a 64 MiB memory
 * device. Every error number the brief lists, the rename rules one by
 * one, link counts of files and directories, hard links, symlinks, device
 * nodes, xattrs, setattr and its timestamps (compared before/after, >=
 * only: no sleeping), truncate/extend zeros, unlink while open, statfs,
 * read-only mounts, device errors, and a remount that must preserve it all.
 *
 * Each test formats its own device and cleans up (Check forks per test, so
 * a failed assertion cannot leak into the next one).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "lunfs/dev.h"
#include "lunfs/fs.h"
#include "lunfs/lockd.h"
#include "lunfs/volume.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define VOL_SIZE (64 * MiB)
#define FBS (64 * KiB)

/* lockd's clock: time moves only when lockd sleeps, so a remount after a
 * crash watches our old slot without waiting, and the lease never runs
 * out in a slow (ASan) run. */
struct tclock {
	uint64_t now;
};

static uint64_t tclock_now(void *arg)
{
	return ((struct tclock *)arg)->now;
}

static void tclock_sleep(void *arg, uint64_t ns)
{
	((struct tclock *)arg)->now += ns;
}

struct tv {
	struct lunfs_dev *dev;
	struct lunfs_fault *fault;   /* NULL unless tv_open_fault */
	struct lunfs_vol *v;
	struct tclock clk;
	struct lockd_clock lc;
	uint64_t root;
	bool read_only;
};

static const struct lunfs_cred cred0 = { .uid = 0, .gid = 0, .umask = 022 };

static void tv_format(struct lunfs_dev *dev)
{
	struct lunfs_vol_create_opts o;
	const char *why = NULL;
	int err;

	memset(&o, 0, sizeof(o));
	o.layout.file_block_size = FBS;
	o.layout.max_hosts = 4;
	o.layout.journal_size = 1 * MiB;
	o.layout.paxos_instances = 4;
	o.label = "fsops";
	o.root_mode = 0755;
	o.why = &why;
	err = vol_create(dev, &o, NULL, NULL, NULL);
	ck_assert_msg(err == 0, "vol_create: %d %s", err, why ? why : "");
}

static int tv_mount(struct tv *t)
{
	struct lunfs_mount_opts o;
	const char *why = NULL;
	int err;

	memset(&o, 0, sizeof(o));
	o.host_name = "fsops-test";
	o.read_only = t->read_only;
	o.no_hb_thread = true;
	o.commit_interval_ms = 3600u * 1000u;
	o.cache_bytes = 8 * MiB;
	o.why = &why;
	t->lc.now_ns = tclock_now;
	t->lc.sleep_ns = tclock_sleep;
	t->lc.arg = &t->clk;
	o.clock = &t->lc;
	err = vol_mount(t->dev, &o, &t->v);
	if (err == 0) {
		t->root = vol_root_ino(t->v);
	} else {
		fprintf(stderr, "vol_mount: %d (%s)\n", err, why ? why : "no reason");
	}
	return err;
}

static void tv_open(struct tv *t)
{
	memset(t, 0, sizeof(*t));
	t->clk.now = 1000000000000ull;
	ck_assert_int_eq(dev_mem_open(VOL_SIZE, 512, &t->dev), 0);
	tv_format(t->dev);
	ck_assert_int_eq(tv_mount(t), 0);
}

static void tv_close(struct tv *t)
{
	if (t->v != NULL) {
		ck_assert_int_eq(vol_unmount(t->v), 0);
		t->v = NULL;
	}
	dev_close(t->dev);
	t->dev = NULL;
}

static void tv_remount(struct tv *t)
{
	ck_assert_int_eq(vol_unmount(t->v), 0);
	t->v = NULL;
	ck_assert_int_eq(tv_mount(t), 0);
}

/* ---- small wrappers --------------------------------------------------------- */

static uint64_t mkdir_ok(struct tv *t, uint64_t dir, const char *name)
{
	struct lunfs_attr a;
	int err = fsop_mkdir(t->v, &cred0, dir, name, 0755, &a);

	ck_assert_msg(err == 0, "mkdir %s: %d", name, err);
	fsop_forget(t->v, a.ino, 1); /* as the kernel does, sooner or later */
	return a.ino;
}

static uint64_t create_ok(struct tv *t, uint64_t dir, const char *name)
{
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	int err = fsop_create(t->v, &cred0, dir, name, 0644, O_RDWR, &a, &fh);

	ck_assert_msg(err == 0, "create %s: %d", name, err);
	ck_assert_int_eq(fsop_release(t->v, fh), 0);
	fsop_forget(t->v, a.ino, 1);
	return a.ino;
}

static struct lunfs_attr attr_of(struct tv *t, uint64_t ino)
{
	struct lunfs_attr a;

	ck_assert_int_eq(fsop_getattr(t->v, ino, &a), 0);
	return a;
}

static int lookup_ino(struct tv *t, uint64_t dir, const char *name, uint64_t *ino)
{
	struct lunfs_attr a;
	int err = fsop_lookup(t->v, dir, name, &a);

	if (err == 0) {
		*ino = a.ino;
		fsop_forget(t->v, a.ino, 1);
	}
	return err;
}

static void fill_pattern(uint8_t *buf, size_t len, uint64_t off, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (off + i) * 2654435761u + seed;

		buf[i] = (uint8_t)(x ^ (x >> 13));
	}
}

static void write_ok(struct tv *t, struct lunfs_fh *fh, uint64_t off, size_t len, uint32_t seed)
{
	uint8_t *buf = malloc(len);
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	fill_pattern(buf, len, off, seed);
	n = fsop_write(t->v, fh, buf, len, off);
	ck_assert_msg(n == (ssize_t)len, "write %zu at %llu: %zd", len, (unsigned long long)off, n);
	free(buf);
}

static void read_check(struct tv *t, struct lunfs_fh *fh, uint64_t off, size_t len, uint32_t seed)
{
	uint8_t *buf = malloc(len), *want = malloc(len);
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	ck_assert_ptr_nonnull(want);
	fill_pattern(want, len, off, seed);
	n = fsop_read(t->v, fh, buf, len, off);
	ck_assert_msg(n == (ssize_t)len, "read %zu at %llu: %zd", len, (unsigned long long)off, n);
	ck_assert_msg(memcmp(buf, want, len) == 0, "data mismatch at %llu", (unsigned long long)off);
	free(buf);
	free(want);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != 0) {
			return false;
		}
	}
	return true;
}

/* Clusters are typed on first use and stay typed, which moves statfs's
 * estimates once: run the same kind of allocation once before a test
 * takes its baseline. */
static void warm_up(struct tv *t, unsigned blocks)
{
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	uint64_t d;

	d = mkdir_ok(t, t->root, "warm-up");
	ck_assert_int_eq(fsop_create(t->v, &cred0, d, "f", 0644, O_RDWR, &a, &fh), 0);
	write_ok(t, fh, 0, blocks * FBS, 1);
	ck_assert_int_eq(fsop_setxattr(t->v, a.ino, "user.w", "1", 1, 0), 0);
	ck_assert_int_eq(fsop_release(t->v, fh), 0);
	fsop_forget(t->v, a.ino, 1);
	ck_assert_int_eq(fsop_unlink(t->v, d, "f"), 0);
	ck_assert_int_eq(fsop_rmdir(t->v, t->root, "warm-up"), 0);
}

/* ---- mount -------------------------------------------------------------------- */

START_TEST(test_mount_basic)
{
	struct tv t;
	struct lunfs_attr a;
	struct lunfs_statfs st;

	tv_open(&t);
	a = attr_of(&t, t.root);
	ck_assert(S_ISDIR(a.mode));
	ck_assert_uint_eq(a.nlink, 2);
	ck_assert_uint_eq(vol_super(t.v)->file_block_size, FBS);
	ck_assert_int_eq(fsop_statfs(t.v, &st), 0);
	ck_assert_uint_eq(st.block_size, FBS);
	ck_assert_uint_eq(st.name_max, 255);
	ck_assert_uint_gt(st.blocks, 0);
	ck_assert_uint_le(st.blocks_free, st.blocks);
	ck_assert_uint_gt(st.files, 0);
	ck_assert_uint_le(st.files_free, st.files);
	tv_remount(&t);
	ck_assert_int_eq(fsop_syncfs(t.v), 0);
	tv_close(&t);
}
END_TEST

START_TEST(test_mount_not_a_volume)
{
	struct lunfs_dev *dev;
	struct lunfs_vol *v = (struct lunfs_vol *)1;
	struct lunfs_mount_opts o;
	const char *why = NULL;

	ck_assert_int_eq(dev_mem_open(VOL_SIZE, 512, &dev), 0);
	memset(&o, 0, sizeof(o));
	o.host_name = "x";
	o.no_hb_thread = true;
	o.why = &why;
	ck_assert_int_eq(vol_mount(dev, &o, &v), -EINVAL);
	ck_assert_ptr_null(v);
	ck_assert_ptr_nonnull(why);
	dev_close(dev);
}
END_TEST

START_TEST(test_host_uuid_derive)
{
	uint8_t a[16], b[16], c[16];

	ck_assert_int_eq(vol_host_uuid_derive("host-a", a), 0);
	ck_assert_int_eq(vol_host_uuid_derive("host-a", b), 0);
	ck_assert_int_eq(vol_host_uuid_derive("host-b", c), 0);
	ck_assert_mem_eq(a, b, 16);
	ck_assert(memcmp(a, c, 16) != 0);
}
END_TEST

/* ---- names and basic errors ------------------------------------------------------- */

START_TEST(test_names)
{
	struct tv t;
	struct lunfs_attr a;
	char name[300];
	uint64_t ino;

	tv_open(&t);
	ck_assert_int_eq(fsop_lookup(t.v, t.root, "missing", &a), -ENOENT);
	ck_assert_int_eq(fsop_lookup(t.v, t.root, "", &a), -ENOENT);
	memset(name, 'n', 256);
	name[256] = '\0';
	ck_assert_int_eq(fsop_lookup(t.v, t.root, name, &a), -ENAMETOOLONG);
	ck_assert_int_eq(fsop_mkdir(t.v, &cred0, t.root, name, 0755, &a), -ENAMETOOLONG);
	name[255] = '\0';
	ino = create_ok(&t, t.root, name);
	ck_assert_int_eq(lookup_ino(&t, t.root, name, &ino), 0);
	ck_assert_int_eq(lookup_ino(&t, t.root, ".", &ino), 0);
	ck_assert_uint_eq(ino, t.root);
	ck_assert_int_eq(lookup_ino(&t, t.root, "..", &ino), 0);
	ck_assert_uint_eq(ino, t.root);
	/* lookup in a file */
	ck_assert_int_eq(lookup_ino(&t, t.root, name, &ino), 0);
	ck_assert_int_eq(fsop_lookup(t.v, ino, "x", &a), -ENOTDIR);
	ck_assert_int_eq(fsop_mkdir(t.v, &cred0, ino, "x", 0755, &a), -ENOTDIR);
	tv_close(&t);
}
END_TEST

START_TEST(test_exists)
{
	struct tv t;
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	uint64_t f;

	tv_open(&t);
	f = create_ok(&t, t.root, "f");
	mkdir_ok(&t, t.root, "d");
	ck_assert_int_eq(fsop_create(t.v, &cred0, t.root, "f", 0644, O_RDWR, &a, &fh), -EEXIST);
	ck_assert_ptr_null(fh);
	ck_assert_int_eq(fsop_mkdir(t.v, &cred0, t.root, "f", 0755, &a), -EEXIST);
	ck_assert_int_eq(fsop_mkdir(t.v, &cred0, t.root, "d", 0755, &a), -EEXIST);
	ck_assert_int_eq(fsop_mknod(t.v, &cred0, t.root, "d", S_IFIFO | 0644, 0, &a), -EEXIST);
	ck_assert_int_eq(fsop_symlink(t.v, &cred0, t.root, "f", "target", &a), -EEXIST);
	ck_assert_int_eq(fsop_link(t.v, f, t.root, "d", &a), -EEXIST);
	ck_assert_int_eq(fsop_mkdir(t.v, &cred0, t.root, ".", 0755, &a), -EEXIST);
	tv_close(&t);
}
END_TEST

START_TEST(test_remove_errors)
{
	struct tv t;
	struct lunfs_attr a;
	uint64_t d, f;

	tv_open(&t);
	f = create_ok(&t, t.root, "f");
	d = mkdir_ok(&t, t.root, "d");
	create_ok(&t, d, "inner");
	ck_assert_int_eq(fsop_unlink(t.v, t.root, "d"), -EISDIR);
	ck_assert_int_eq(fsop_rmdir(t.v, t.root, "f"), -ENOTDIR);
	ck_assert_int_eq(fsop_rmdir(t.v, t.root, "d"), -ENOTEMPTY);
	ck_assert_int_eq(fsop_unlink(t.v, t.root, "missing"), -ENOENT);
	ck_assert_int_eq(fsop_rmdir(t.v, t.root, "missing"), -ENOENT);
	ck_assert_int_eq(fsop_link(t.v, d, t.root, "dlink", &a), -EPERM);
	ck_assert_int_eq(fsop_rmdir(t.v, d, "."), -EINVAL);
	ck_assert_int_eq(fsop_rmdir(t.v, d, ".."), -ENOTEMPTY);
	ck_assert_int_eq(fsop_unlink(t.v, d, "inner"), 0);
	ck_assert_int_eq(fsop_rmdir(t.v, t.root, "d"), 0);
	ck_assert_int_eq(fsop_unlink(t.v, t.root, "f"), 0);
	ck_assert_int_eq(fsop_getattr(t.v, f, &a), -ENOENT);
	ck_assert_int_eq(fsop_lookup(t.v, t.root, "f", &a), -ENOENT);
	tv_close(&t);
}
END_TEST

/* ---- link counts ------------------------------------------------------------------- */

START_TEST(test_link_counts)
{
	struct tv t;
	struct lunfs_attr a, before;
	uint64_t d1, d2, f;

	tv_open(&t);
	d1 = mkdir_ok(&t, t.root, "d1");
	ck_assert_uint_eq(attr_of(&t, t.root).nlink, 3);
	ck_assert_uint_eq(attr_of(&t, d1).nlink, 2);
	d2 = mkdir_ok(&t, d1, "d2");
	ck_assert_uint_eq(attr_of(&t, d1).nlink, 3);
	ck_assert_uint_eq(attr_of(&t, d2).nlink, 2);
	f = create_ok(&t, d1, "f");
	ck_assert_uint_eq(attr_of(&t, d1).nlink, 3); /* files don't count */
	before = attr_of(&t, f);
	ck_assert_int_eq(fsop_link(t.v, f, d2, "f2", &a), 0);
	fsop_forget(t.v, f, 1);
	ck_assert_uint_eq(a.nlink, 2);
	ck_assert_int_ge(a.ctime_ns, before.ctime_ns);
	ck_assert_int_eq(fsop_link(t.v, f, t.root, "f3", &a), 0);
	fsop_forget(t.v, f, 1);
	ck_assert_uint_eq(attr_of(&t, f).nlink, 3);
	ck_assert_int_eq(fsop_unlink(t.v, d1, "f"), 0);
	ck_assert_uint_eq(attr_of(&t, f).nlink, 2);
	ck_assert_int_eq(fsop_unlink(t.v, d2, "f2"), 0);
	ck_assert_uint_eq(attr_of(&t, f).nlink, 1);
	ck_assert_int_eq(fsop_rmdir(t.v, d1, "d2"), 0);
	ck_assert_uint_eq(attr_of(&t, d1).nlink, 2);
	ck_assert_int_eq(fsop_rmdir(t.v, t.root, "d1"), 0);
	ck_assert_uint_eq(attr_of(&t, t.root).nlink, 2);
	tv_remount(&t);
	ck_assert_uint_eq(attr_of(&t, t.root).nlink, 2);
	ck_assert_uint_eq(attr_of(&t, f).nlink, 1);
	tv_close(&t);
}
END_TEST

START_TEST(test_parent_times)
{
	struct tv t;
	struct lunfs_attr r0, r1;
	uint64_t d;

	tv_open(&t);
	r0 = attr_of(&t, t.root);
	d = mkdir_ok(&t, t.root, "d");
	r1 = attr_of(&t, t.root);
	ck_assert_int_ge(r1.mtime_ns, r0.mtime_ns);
	ck_assert_int_ge(r1.ctime_ns, r0.ctime_ns);
	ck_assert_int_ge(attr_of(&t, d).btime_ns, r0.mtime_ns);
	r0 = r1;
	ck_assert_int_eq(fsop_rmdir(t.v, t.root, "d"), 0);
	r1 = attr_of(&t, t.root);
	ck_assert_int_ge(r1.mtime_ns, r0.mtime_ns);
	tv_close(&t);
}
END_TEST

/* ---- rename ------------------------------------------------------------------------ */

START_TEST(test_rename_rules)
{
	struct tv t;
	uint64_t a, b, f, g, ino;
	struct lunfs_attr at;

	tv_open(&t);
	a = mkdir_ok(&t, t.root, "a");
	b = mkdir_ok(&t, t.root, "b");
	f = create_ok(&t, t.root, "f");
	g = create_ok(&t, t.root, "g");
	create_ok(&t, mkdir_ok(&t, b, "full"), "x");

	ck_assert_int_eq(fsop_rename(t.v, t.root, "missing", t.root, "z", 0), -ENOENT);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "f", t.root, "g", RENAME_NOREPLACE), -EEXIST);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "f", t.root, "zz", RENAME_EXCHANGE), -ENOENT);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "a", t.root, "f", 0), -ENOTDIR);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "f", t.root, "a", 0), -EISDIR);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "a", b, "full", 0), -ENOTEMPTY);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "a", a, "sub", 0), -EINVAL);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "f", t.root, "g",
				     RENAME_EXCHANGE | RENAME_NOREPLACE), -EINVAL);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "f", t.root, "g", 1u << 5), -EINVAL);
	ck_assert_int_eq(fsop_rename(t.v, f, "x", t.root, "g", 0), -ENOTDIR);

	/* same inode: no-op */
	ck_assert_int_eq(fsop_link(t.v, f, t.root, "f-link", &at), 0);
	fsop_forget(t.v, f, 1);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "f", t.root, "f-link", 0), 0);
	ck_assert_int_eq(lookup_ino(&t, t.root, "f", &ino), 0);
	ck_assert_uint_eq(ino, f);
	ck_assert_uint_eq(attr_of(&t, f).nlink, 2);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "f", t.root, "f", 0), 0);

	/* plain rename in one directory, then over an existing file */
	ck_assert_int_eq(fsop_rename(t.v, t.root, "f-link", t.root, "h", 0), 0);
	ck_assert_int_eq(lookup_ino(&t, t.root, "f-link", &ino), -ENOENT);
	ck_assert_int_eq(lookup_ino(&t, t.root, "h", &ino), 0);
	ck_assert_uint_eq(ino, f);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "h", t.root, "g", 0), 0);
	ck_assert_int_eq(lookup_ino(&t, t.root, "g", &ino), 0);
	ck_assert_uint_eq(ino, f);
	ck_assert_int_eq(fsop_getattr(t.v, g, &at), -ENOENT); /* reclaimed */
	ck_assert_uint_eq(attr_of(&t, f).nlink, 2);

	/* a directory over an empty directory */
	mkdir_ok(&t, b, "empty");
	ck_assert_uint_eq(attr_of(&t, b).nlink, 4);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "a", b, "empty", 0), 0);
	ck_assert_uint_eq(attr_of(&t, b).nlink, 4);
	ck_assert_uint_eq(attr_of(&t, t.root).nlink, 3);
	ck_assert_int_eq(lookup_ino(&t, b, "empty", &ino), 0);
	ck_assert_uint_eq(ino, a);
	ck_assert_int_eq(lookup_ino(&t, a, "..", &ino), 0);
	ck_assert_uint_eq(ino, b);
	tv_remount(&t);
	ck_assert_uint_eq(attr_of(&t, b).nlink, 4);
	ck_assert_int_eq(lookup_ino(&t, a, "..", &ino), 0);
	ck_assert_uint_eq(ino, b);
	tv_close(&t);
}
END_TEST

START_TEST(test_rename_dir_moves)
{
	struct tv t;
	uint64_t a, b, c, d, ino;

	tv_open(&t);
	a = mkdir_ok(&t, t.root, "a");
	b = mkdir_ok(&t, a, "b");
	c = mkdir_ok(&t, b, "c");
	d = mkdir_ok(&t, t.root, "d");
	/* into its own subtree, at any depth */
	ck_assert_int_eq(fsop_rename(t.v, t.root, "a", c, "a", 0), -EINVAL);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "a", b, "a", 0), -EINVAL);
	ck_assert_int_eq(fsop_rename(t.v, a, "b", b, "b2", 0), -EINVAL);
	/* b moves from a to d */
	ck_assert_int_eq(fsop_rename(t.v, a, "b", d, "b", 0), 0);
	ck_assert_uint_eq(attr_of(&t, a).nlink, 2);
	ck_assert_uint_eq(attr_of(&t, d).nlink, 3);
	ck_assert_int_eq(lookup_ino(&t, b, "..", &ino), 0);
	ck_assert_uint_eq(ino, d);
	ck_assert_int_eq(lookup_ino(&t, c, "..", &ino), 0);
	ck_assert_uint_eq(ino, b);
	/* now a can go under c */
	ck_assert_int_eq(fsop_rename(t.v, t.root, "a", c, "a", 0), 0);
	ck_assert_uint_eq(attr_of(&t, t.root).nlink, 3);
	ck_assert_uint_eq(attr_of(&t, c).nlink, 3);
	tv_remount(&t);
	ck_assert_uint_eq(attr_of(&t, t.root).nlink, 3);
	ck_assert_uint_eq(attr_of(&t, c).nlink, 3);
	ck_assert_int_eq(lookup_ino(&t, a, "..", &ino), 0);
	ck_assert_uint_eq(ino, c);
	tv_close(&t);
}
END_TEST

START_TEST(test_rename_exchange)
{
	struct tv t;
	uint64_t a, b, f, sub, ino;

	tv_open(&t);
	a = mkdir_ok(&t, t.root, "a");
	b = mkdir_ok(&t, t.root, "b");
	f = create_ok(&t, a, "f");
	sub = mkdir_ok(&t, b, "sub");
	/* file a/f <-> dir b/sub: the directory changes parent */
	ck_assert_int_eq(fsop_rename(t.v, a, "f", b, "sub", RENAME_EXCHANGE), 0);
	ck_assert_int_eq(lookup_ino(&t, a, "f", &ino), 0);
	ck_assert_uint_eq(ino, sub);
	ck_assert_int_eq(lookup_ino(&t, b, "sub", &ino), 0);
	ck_assert_uint_eq(ino, f);
	ck_assert_uint_eq(attr_of(&t, a).nlink, 3);
	ck_assert_uint_eq(attr_of(&t, b).nlink, 2);
	ck_assert_int_eq(lookup_ino(&t, sub, "..", &ino), 0);
	ck_assert_uint_eq(ino, a);
	/* exchanging a directory with its own ancestor's entry */
	ck_assert_int_eq(fsop_rename(t.v, t.root, "a", a, "f", RENAME_EXCHANGE), -EINVAL);
	/* exchange in one directory */
	ck_assert_int_eq(fsop_rename(t.v, t.root, "a", t.root, "b", RENAME_EXCHANGE), 0);
	ck_assert_int_eq(lookup_ino(&t, t.root, "a", &ino), 0);
	ck_assert_uint_eq(ino, b);
	ck_assert_uint_eq(attr_of(&t, t.root).nlink, 4);
	tv_remount(&t);
	ck_assert_int_eq(lookup_ino(&t, t.root, "b", &ino), 0);
	ck_assert_uint_eq(ino, a);
	ck_assert_uint_eq(attr_of(&t, a).nlink, 3);
	tv_close(&t);
}
END_TEST

START_TEST(test_rename_over_open)
{
	struct tv t;
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	struct lunfs_statfs s0, s1, s2;
	uint64_t victim;

	tv_open(&t);
	warm_up(&t, 3);
	ck_assert_int_eq(fsop_statfs(t.v, &s0), 0);
	ck_assert_int_eq(fsop_create(t.v, &cred0, t.root, "victim", 0644, O_RDWR, &a, &fh), 0);
	victim = a.ino;
	write_ok(&t, fh, 0, 3 * FBS, 7);
	create_ok(&t, t.root, "new");
	ck_assert_int_eq(fsop_statfs(t.v, &s1), 0);
	ck_assert_uint_lt(s1.blocks_free, s0.blocks_free);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "new", t.root, "victim", 0), 0);
	/* still readable and writable through the open handle */
	read_check(&t, fh, 0, 3 * FBS, 7);
	write_ok(&t, fh, FBS, 100, 7);
	ck_assert_uint_eq(attr_of(&t, victim).nlink, 0);
	ck_assert_int_eq(fsop_release(t.v, fh), 0);
	fsop_forget(t.v, victim, 1);
	ck_assert_int_eq(fsop_getattr(t.v, victim, &a), -ENOENT);
	ck_assert_int_eq(fsop_statfs(t.v, &s2), 0);
	ck_assert_uint_eq(s2.blocks_free, s0.blocks_free);
	tv_close(&t);
}
END_TEST

/* ---- node types -------------------------------------------------------------------- */

START_TEST(test_symlink_mknod)
{
	struct tv t;
	struct lunfs_attr a;
	char buf[5000], target[4096];
	uint64_t ino;

	tv_open(&t);
	ck_assert_int_eq(fsop_symlink(t.v, &cred0, t.root, "s", "some/where", &a), 0);
	fsop_forget(t.v, a.ino, 1);
	ck_assert(S_ISLNK(a.mode));
	ck_assert_uint_eq(a.mode & 07777, 0777);
	ck_assert_uint_eq(a.size, 10);
	ck_assert_int_eq(fsop_readlink(t.v, a.ino, buf, sizeof(buf)), 10);
	ck_assert_mem_eq(buf, "some/where", 10);
	ck_assert_int_eq(fsop_readlink(t.v, a.ino, buf, 4), 10);
	memset(target, 't', 4095);
	target[4095] = '\0';
	ck_assert_int_eq(fsop_symlink(t.v, &cred0, t.root, "long", target, &a), 0);
	fsop_forget(t.v, a.ino, 1);
	ck_assert_int_eq(fsop_readlink(t.v, a.ino, buf, sizeof(buf)), 4095);
	ck_assert_mem_eq(buf, target, 4095);
	ck_assert_int_eq(fsop_symlink(t.v, &cred0, t.root, "empty", "", &a), -ENOENT);
	ck_assert_int_eq(fsop_readlink(t.v, t.root, buf, sizeof(buf)), -EINVAL);

	ck_assert_int_eq(fsop_mknod(t.v, &cred0, t.root, "fifo", S_IFIFO | 0644, 0, &a), 0);
	fsop_forget(t.v, a.ino, 1);
	ck_assert(S_ISFIFO(a.mode));
	ck_assert_int_eq(fsop_mknod(t.v, &cred0, t.root, "sock", S_IFSOCK | 0644, 0, &a), 0);
	fsop_forget(t.v, a.ino, 1);
	ck_assert(S_ISSOCK(a.mode));
	ck_assert_int_eq(fsop_mknod(t.v, &cred0, t.root, "chr", S_IFCHR | 0600,
				    (uint32_t)makedev(1, 3), &a), 0);
	fsop_forget(t.v, a.ino, 1);
	ck_assert(S_ISCHR(a.mode));
	ck_assert_uint_eq(a.rdev, (uint32_t)makedev(1, 3));
	ck_assert_int_eq(fsop_mknod(t.v, &cred0, t.root, "blk", S_IFBLK | 0600,
				    (uint32_t)makedev(8, 1), &a), 0);
	fsop_forget(t.v, a.ino, 1);
	ck_assert(S_ISBLK(a.mode));
	ck_assert_int_eq(fsop_mknod(t.v, &cred0, t.root, "reg", 0644, 0, &a), 0);
	fsop_forget(t.v, a.ino, 1);
	ck_assert(S_ISREG(a.mode));
	ck_assert_int_eq(fsop_mknod(t.v, &cred0, t.root, "dir", S_IFDIR | 0644, 0, &a), -EINVAL);
	tv_remount(&t);
	ck_assert_int_eq(lookup_ino(&t, t.root, "chr", &ino), 0);
	ck_assert_uint_eq(attr_of(&t, ino).rdev, (uint32_t)makedev(1, 3));
	ck_assert_int_eq(lookup_ino(&t, t.root, "long", &ino), 0);
	ck_assert_int_eq(fsop_readlink(t.v, ino, buf, sizeof(buf)), 4095);
	ck_assert_mem_eq(buf, target, 4095);
	tv_close(&t);
}
END_TEST

START_TEST(test_modes_sgid)
{
	struct tv t;
	struct lunfs_cred user = { .uid = 1000, .gid = 1000, .umask = 027 };
	struct lunfs_attr a;
	struct lunfs_setattr sa = { .valid = LUNFS_SET_MODE | LUNFS_SET_GID, .mode = 02775, .gid = 50 };
	uint64_t d;

	tv_open(&t);
	ck_assert_int_eq(fsop_mkdir(t.v, &user, t.root, "plain", 0777, &a), 0);
	fsop_forget(t.v, a.ino, 1);
	ck_assert_uint_eq(a.mode, S_IFDIR | 0750);
	ck_assert_uint_eq(a.uid, 1000);
	ck_assert_uint_eq(a.gid, 1000);
	d = mkdir_ok(&t, t.root, "sgid");
	ck_assert_int_eq(fsop_setattr(t.v, d, &sa, &a), 0);
	ck_assert_uint_eq(a.mode, S_IFDIR | 02775);
	ck_assert_int_eq(fsop_mkdir(t.v, &user, d, "sub", 0777, &a), 0);
	fsop_forget(t.v, a.ino, 1);
	ck_assert_uint_eq(a.gid, 50);
	ck_assert(a.mode & S_ISGID);
	ck_assert_int_eq(fsop_mknod(t.v, &user, d, "file", S_IFREG | 0666, 0, &a), 0);
	fsop_forget(t.v, a.ino, 1);
	ck_assert_uint_eq(a.gid, 50);
	ck_assert_uint_eq(a.mode, S_IFREG | 0640);
	tv_close(&t);
}
END_TEST

/* ---- setattr -------------------------------------------------------------------------- */

START_TEST(test_setattr)
{
	struct tv t;
	struct lunfs_attr a, b;
	struct lunfs_setattr sa;
	uint64_t f;

	tv_open(&t);
	f = create_ok(&t, t.root, "f");
	a = attr_of(&t, f);

	memset(&sa, 0, sizeof(sa));
	sa.valid = LUNFS_SET_MODE;
	sa.mode = S_IFDIR | 04711; /* type bits must be ignored */
	ck_assert_int_eq(fsop_setattr(t.v, f, &sa, &b), 0);
	ck_assert_uint_eq(b.mode, S_IFREG | 04711);
	ck_assert_int_ge(b.ctime_ns, a.ctime_ns);
	ck_assert_int_eq(b.mtime_ns, a.mtime_ns);

	memset(&sa, 0, sizeof(sa));
	sa.valid = LUNFS_SET_UID | LUNFS_SET_GID | LUNFS_SET_KILL_SUID;
	sa.uid = 42;
	sa.gid = 43;
	ck_assert_int_eq(fsop_setattr(t.v, f, &sa, &b), 0);
	ck_assert_uint_eq(b.uid, 42);
	ck_assert_uint_eq(b.gid, 43);
	ck_assert_uint_eq(b.mode, S_IFREG | 0711);

	memset(&sa, 0, sizeof(sa));
	sa.valid = LUNFS_SET_ATIME | LUNFS_SET_MTIME;
	sa.atime_ns = 1000000001;
	sa.mtime_ns = 2000000002;
	a = b;
	ck_assert_int_eq(fsop_setattr(t.v, f, &sa, &b), 0);
	ck_assert_int_eq(b.atime_ns, 1000000001);
	ck_assert_int_eq(b.mtime_ns, 2000000002);
	ck_assert_int_ge(b.ctime_ns, a.ctime_ns);

	sa.valid = LUNFS_SET_ATIME_NOW | LUNFS_SET_MTIME_NOW;
	ck_assert_int_eq(fsop_setattr(t.v, f, &sa, &b), 0);
	ck_assert_int_ge(b.atime_ns, a.ctime_ns);
	ck_assert_int_ge(b.mtime_ns, a.ctime_ns);

	/* truncate: size and times */
	a = b;
	memset(&sa, 0, sizeof(sa));
	sa.valid = LUNFS_SET_SIZE;
	sa.size = 12345;
	ck_assert_int_eq(fsop_setattr(t.v, f, &sa, &b), 0);
	ck_assert_uint_eq(b.size, 12345);
	ck_assert_int_ge(b.mtime_ns, a.mtime_ns);
	ck_assert_int_ge(b.ctime_ns, a.ctime_ns);
	ck_assert_int_eq(fsop_setattr(t.v, t.root, &sa, &b), -EISDIR);
	tv_remount(&t);
	b = attr_of(&t, f);
	ck_assert_uint_eq(b.size, 12345);
	ck_assert_uint_eq(b.uid, 42);
	tv_close(&t);
}
END_TEST

START_TEST(test_truncate_zeros)
{
	struct tv t;
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	struct lunfs_setattr sa = { .valid = LUNFS_SET_SIZE };
	uint8_t *buf = malloc(4 * FBS);
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	tv_open(&t);
	ck_assert_int_eq(fsop_create(t.v, &cred0, t.root, "f", 0644, O_RDWR, &a, &fh), 0);
	write_ok(&t, fh, 0, 2 * FBS + 100, 3);
	/* shrink into the middle of a block, then extend: the tail is zeros */
	sa.size = FBS + 10;
	ck_assert_int_eq(fsop_setattr(t.v, a.ino, &sa, NULL), 0);
	sa.size = 3 * FBS;
	ck_assert_int_eq(fsop_setattr(t.v, a.ino, &sa, NULL), 0);
	read_check(&t, fh, 0, FBS + 10, 3);
	n = fsop_read(t.v, fh, buf, 4 * FBS, FBS + 10);
	ck_assert_int_eq(n, 2 * FBS - 10);
	ck_assert(all_zero(buf, (size_t)n));
	/* read past EOF */
	ck_assert_int_eq(fsop_read(t.v, fh, buf, 100, 3 * FBS), 0);
	/* write far beyond EOF leaves a hole of zeros */
	write_ok(&t, fh, 10 * FBS + 5, 10, 9);
	n = fsop_read(t.v, fh, buf, 4 * FBS, 5 * FBS);
	ck_assert_int_eq(n, 4 * FBS);
	ck_assert(all_zero(buf, (size_t)n));
	ck_assert_uint_eq(attr_of(&t, a.ino).size, 10 * FBS + 15);
	ck_assert_int_eq(fsop_release(t.v, fh), 0);
	tv_close(&t);
	free(buf);
}
END_TEST

/* ---- open files --------------------------------------------------------------------- */

START_TEST(test_unlink_open)
{
	struct tv t;
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL, *fh2 = NULL;
	struct lunfs_statfs s0, s1, s2;

	tv_open(&t);
	warm_up(&t, 5);
	ck_assert_int_eq(fsop_statfs(t.v, &s0), 0);
	ck_assert_int_eq(fsop_create(t.v, &cred0, t.root, "f", 0644, O_RDWR, &a, &fh), 0);
	write_ok(&t, fh, 0, 4 * FBS, 11);
	ck_assert_int_eq(fsop_open(t.v, a.ino, O_RDONLY, &fh2), 0);
	ck_assert_int_eq(fsop_statfs(t.v, &s1), 0);
	ck_assert_uint_le(s1.blocks_free + 4, s0.blocks_free);
	ck_assert_uint_eq(s1.files_free + 1, s0.files_free);
	ck_assert_int_eq(fsop_unlink(t.v, t.root, "f"), 0);
	ck_assert_int_eq(fsop_lookup(t.v, t.root, "f", &a), -ENOENT);
	read_check(&t, fh, 0, 4 * FBS, 11);
	write_ok(&t, fh, 4 * FBS, FBS, 11);
	read_check(&t, fh2, 0, 5 * FBS, 11);
	ck_assert_int_eq(fsop_release(t.v, fh), 0);
	read_check(&t, fh2, 0, 5 * FBS, 11);
	fsop_forget(t.v, a.ino, 1);
	ck_assert_int_eq(fsop_getattr(t.v, a.ino, &a), 0); /* still open */
	ck_assert_uint_eq(a.nlink, 0);
	ck_assert_int_eq(fsop_release(t.v, fh2), 0);
	ck_assert_int_eq(fsop_getattr(t.v, a.ino, &a), -ENOENT);
	ck_assert_int_eq(fsop_statfs(t.v, &s2), 0);
	ck_assert_uint_eq(s2.blocks_free, s0.blocks_free);
	ck_assert_uint_eq(s2.files_free, s0.files_free);
	tv_close(&t);
}
END_TEST

/* Unlinked while open, then the host "crashes" (unmount without release is
 * the closest we get here: the handle leaks); the next mount's orphan
 * recovery must free the space. */
START_TEST(test_orphan_across_remount)
{
	struct tv t;
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	struct lunfs_statfs s0, s1;

	tv_open(&t);
	warm_up(&t, 2);
	ck_assert_int_eq(fsop_statfs(t.v, &s0), 0);
	ck_assert_int_eq(fsop_create(t.v, &cred0, t.root, "f", 0644, O_RDWR, &a, &fh), 0);
	write_ok(&t, fh, 0, 2 * FBS, 1);
	ck_assert_int_eq(fsop_unlink(t.v, t.root, "f"), 0);
	/* the kernel still holds its lookup reference at unmount */
	tv_remount(&t);
	ck_assert_int_eq(fsop_statfs(t.v, &s1), 0);
	ck_assert_uint_eq(s1.blocks_free, s0.blocks_free);
	ck_assert_uint_eq(s1.files_free, s0.files_free);
	tv_close(&t);
}
END_TEST

START_TEST(test_open_rules)
{
	struct tv t;
	struct lunfs_fh *fh = NULL;
	struct lunfs_attr a;
	uint8_t buf[16];
	uint64_t f;

	tv_open(&t);
	ck_assert_int_eq(fsop_open(t.v, t.root, O_RDWR, &fh), -EISDIR);
	ck_assert_int_eq(fsop_open(t.v, t.root, O_WRONLY, &fh), -EISDIR);
	ck_assert_int_eq(fsop_open(t.v, t.root, O_RDONLY, &fh), 0);
	ck_assert_int_eq(fsop_read(t.v, fh, buf, sizeof(buf), 0), -EISDIR);
	ck_assert_int_eq(fsop_release(t.v, fh), 0);
	ck_assert_int_eq(fsop_create(t.v, &cred0, t.root, "f", 0644, O_RDWR, &a, &fh), 0);
	f = a.ino;
	write_ok(&t, fh, 0, 1000, 5);
	ck_assert_int_eq(fsop_release(t.v, fh), 0);
	/* O_TRUNC */
	ck_assert_int_eq(fsop_open(t.v, f, O_WRONLY | O_TRUNC, &fh), 0);
	ck_assert_uint_eq(attr_of(&t, f).size, 0);
	ck_assert_int_eq(fsop_release(t.v, fh), 0);
	ck_assert_int_eq(fsop_open(t.v, 999999, O_RDONLY, &fh), -ENOENT);
	tv_close(&t);
}
END_TEST

START_TEST(test_seek_fallocate)
{
	struct tv t;
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	uint64_t off = 0;
	uint8_t *buf = malloc(FBS);

	ck_assert_ptr_nonnull(buf);
	tv_open(&t);
	ck_assert_int_eq(fsop_create(t.v, &cred0, t.root, "f", 0644, O_RDWR, &a, &fh), 0);
	write_ok(&t, fh, 4 * FBS, FBS, 2);
	ck_assert_int_eq(fsop_lseek(t.v, a.ino, 0, SEEK_DATA, &off), 0);
	ck_assert_uint_eq(off, 4 * FBS);
	ck_assert_int_eq(fsop_lseek(t.v, a.ino, 0, SEEK_HOLE, &off), 0);
	ck_assert_uint_eq(off, 0);
	ck_assert_int_eq(fsop_lseek(t.v, a.ino, 4 * FBS, SEEK_HOLE, &off), 0);
	ck_assert_uint_eq(off, 5 * FBS);
	ck_assert_int_eq(fsop_lseek(t.v, a.ino, 5 * FBS, SEEK_DATA, &off), -ENXIO);
	ck_assert_int_eq(fsop_lseek(t.v, a.ino, 5 * FBS, SEEK_HOLE, &off), -ENXIO);
	/* preallocate beyond EOF, keep size */
	ck_assert_int_eq(fsop_fallocate(t.v, a.ino, FALLOC_FL_KEEP_SIZE, 5 * FBS, 2 * FBS), 0);
	ck_assert_uint_eq(attr_of(&t, a.ino).size, 5 * FBS);
	ck_assert_int_eq(fsop_fallocate(t.v, a.ino, 0, 0, 8 * FBS), 0);
	ck_assert_uint_eq(attr_of(&t, a.ino).size, 8 * FBS);
	ck_assert_int_eq(fsop_read(t.v, fh, buf, FBS, 6 * FBS), FBS);
	ck_assert(all_zero(buf, FBS));
	/* punch the data out again */
	ck_assert_int_eq(fsop_fallocate(t.v, a.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					4 * FBS, FBS), 0);
	ck_assert_int_eq(fsop_read(t.v, fh, buf, FBS, 4 * FBS), FBS);
	ck_assert(all_zero(buf, FBS));
	ck_assert_int_eq(fsop_fallocate(t.v, t.root, 0, 0, FBS), -EISDIR);
	ck_assert_int_eq(fsop_fallocate(t.v, a.ino, FALLOC_FL_PUNCH_HOLE, 0, FBS), -EOPNOTSUPP);
	ck_assert_int_eq(fsop_release(t.v, fh), 0);
	tv_close(&t);
	free(buf);
}
END_TEST

/* ---- readdir ------------------------------------------------------------------------ */

struct rd_log {
	unsigned n, cap;
	char names[64][32];
	uint64_t inos[64];
	uint64_t last_cookie;
};

static int rd_fill(void *arg, const char *name, const struct lunfs_attr *attr, uint64_t next_cookie)
{
	struct rd_log *l = arg;

	if (l->n >= l->cap) {
		return 1;
	}
	snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
	l->inos[l->n] = attr->ino;
	l->n++;
	l->last_cookie = next_cookie;
	return 0;
}

START_TEST(test_readdir)
{
	struct tv t;
	struct rd_log l;
	uint64_t d, seen = 0, cookie = 0;
	char name[32];

	tv_open(&t);
	d = mkdir_ok(&t, t.root, "d");
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "e%02d", i);
		create_ok(&t, d, name);
	}
	memset(&l, 0, sizeof(l));
	l.cap = 64;
	ck_assert_int_eq(fsop_readdir(t.v, d, 0, false, rd_fill, &l), 0);
	ck_assert_uint_eq(l.n, 22);
	ck_assert_str_eq(l.names[0], ".");
	ck_assert_uint_eq(l.inos[0], d);
	ck_assert_str_eq(l.names[1], "..");
	ck_assert_uint_eq(l.inos[1], t.root);
	/* in small pieces, plus mode: every entry once */
	for (int round = 0; round < 50; round++) {
		memset(&l, 0, sizeof(l));
		l.cap = 3;
		l.last_cookie = cookie;
		ck_assert_int_eq(fsop_readdir(t.v, d, cookie, true, rd_fill, &l), 0);
		if (l.n == 0) {
			break;
		}
		for (unsigned i = 0; i < l.n; i++) {
			if (strcmp(l.names[i], ".") != 0 && strcmp(l.names[i], "..") != 0) {
				fsop_forget(t.v, l.inos[i], 1); /* plus took a lookup reference */
				seen++;
			}
		}
		cookie = l.last_cookie;
	}
	ck_assert_uint_eq(seen, 20);
	ck_assert_int_eq(fsop_readdir(t.v, create_ok(&t, t.root, "file"), 0, false, rd_fill, &l),
			 -ENOTDIR);
	tv_close(&t);
}
END_TEST

/* ---- xattrs --------------------------------------------------------------------------- */

START_TEST(test_xattr)
{
	struct tv t;
	struct lunfs_attr a0, a1;
	char buf[256];
	uint64_t f;

	tv_open(&t);
	f = create_ok(&t, t.root, "f");
	a0 = attr_of(&t, f);
	ck_assert_int_eq(fsop_setxattr(t.v, f, "user.one", "value1", 6, 0), 0);
	a1 = attr_of(&t, f);
	ck_assert_int_ge(a1.ctime_ns, a0.ctime_ns);
	ck_assert_int_eq(fsop_setxattr(t.v, f, "user.two", "2", 1, XATTR_CREATE), 0);
	ck_assert_int_eq(fsop_setxattr(t.v, f, "user.two", "2", 1, XATTR_CREATE), -EEXIST);
	ck_assert_int_eq(fsop_setxattr(t.v, f, "user.three", "3", 1, XATTR_REPLACE), -ENODATA);
	ck_assert_int_eq(fsop_getxattr(t.v, f, "user.one", NULL, 0), 6);
	ck_assert_int_eq(fsop_getxattr(t.v, f, "user.one", buf, 2), -ERANGE);
	ck_assert_int_eq(fsop_getxattr(t.v, f, "user.one", buf, sizeof(buf)), 6);
	ck_assert_mem_eq(buf, "value1", 6);
	ck_assert_int_eq(fsop_getxattr(t.v, f, "user.nope", buf, sizeof(buf)), -ENODATA);
	ck_assert_int_eq(fsop_listxattr(t.v, f, NULL, 0), 18);
	ck_assert_int_eq(fsop_listxattr(t.v, f, buf, sizeof(buf)), 18);
	ck_assert_int_eq(fsop_setxattr(t.v, f, "bogus.x", "1", 1, 0), -EOPNOTSUPP);
	ck_assert_int_eq(fsop_removexattr(t.v, f, "user.one"), 0);
	ck_assert_int_eq(fsop_removexattr(t.v, f, "user.one"), -ENODATA);
	ck_assert_int_eq(fsop_setxattr(t.v, t.root, "user.dir", "d", 1, 0), 0);
	tv_remount(&t);
	ck_assert_int_eq(fsop_getxattr(t.v, f, "user.two", buf, sizeof(buf)), 1);
	ck_assert_int_eq(fsop_getxattr(t.v, f, "user.one", buf, sizeof(buf)), -ENODATA);
	ck_assert_int_eq(fsop_getxattr(t.v, t.root, "user.dir", buf, sizeof(buf)), 1);
	tv_close(&t);
}
END_TEST

/* ---- statfs, remount, read-only, EIO -------------------------------------------------------- */

START_TEST(test_statfs_changes)
{
	struct tv t;
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	struct lunfs_statfs s0, s1, s2;

	tv_open(&t);
	warm_up(&t, 8);
	ck_assert_int_eq(fsop_statfs(t.v, &s0), 0);
	ck_assert_int_eq(fsop_create(t.v, &cred0, t.root, "f", 0644, O_RDWR, &a, &fh), 0);
	write_ok(&t, fh, 0, 8 * FBS, 4);
	ck_assert_int_eq(fsop_release(t.v, fh), 0);
	ck_assert_int_eq(fsop_statfs(t.v, &s1), 0);
	ck_assert_uint_le(s1.blocks_free + 8, s0.blocks_free);
	ck_assert_uint_eq(s1.files_free + 1, s0.files_free);
	fsop_forget(t.v, a.ino, 1);
	ck_assert_int_eq(fsop_unlink(t.v, t.root, "f"), 0);
	ck_assert_int_eq(fsop_statfs(t.v, &s2), 0);
	ck_assert_uint_eq(s2.blocks_free, s0.blocks_free);
	ck_assert_uint_eq(s2.files_free, s0.files_free);
	tv_close(&t);
}
END_TEST

START_TEST(test_remount_preserves)
{
	struct tv t;
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	uint64_t d, f, ino;
	char buf[64];

	tv_open(&t);
	d = mkdir_ok(&t, t.root, "dir");
	ck_assert_int_eq(fsop_create(t.v, &cred0, d, "file", 0640, O_RDWR, &a, &fh), 0);
	f = a.ino;
	write_ok(&t, fh, 0, 3 * FBS + 17, 77);
	ck_assert_int_eq(fsop_release(t.v, fh), 0);
	ck_assert_int_eq(fsop_link(t.v, f, t.root, "hard", &a), 0);
	ck_assert_int_eq(fsop_symlink(t.v, &cred0, d, "sym", "../hard", &a), 0);
	ck_assert_int_eq(fsop_setxattr(t.v, f, "user.k", "v", 1, 0), 0);
	tv_remount(&t);
	ck_assert_int_eq(lookup_ino(&t, t.root, "dir", &ino), 0);
	ck_assert_uint_eq(ino, d);
	ck_assert_int_eq(lookup_ino(&t, d, "file", &ino), 0);
	ck_assert_uint_eq(ino, f);
	a = attr_of(&t, f);
	ck_assert_uint_eq(a.size, 3 * FBS + 17);
	ck_assert_uint_eq(a.nlink, 2);
	ck_assert_uint_eq(a.mode, S_IFREG | (0640 & ~022u));
	ck_assert_int_eq(fsop_open(t.v, f, O_RDONLY, &fh), 0);
	read_check(&t, fh, 0, 3 * FBS + 17, 77);
	ck_assert_int_eq(fsop_release(t.v, fh), 0);
	ck_assert_int_eq(lookup_ino(&t, d, "sym", &ino), 0);
	ck_assert_int_eq(fsop_readlink(t.v, ino, buf, sizeof(buf)), 7);
	ck_assert_int_eq(fsop_getxattr(t.v, f, "user.k", buf, sizeof(buf)), 1);
	ck_assert_uint_eq(attr_of(&t, t.root).nlink, 3);
	tv_close(&t);
}
END_TEST

START_TEST(test_read_only)
{
	struct tv t;
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	struct lunfs_setattr sa = { .valid = LUNFS_SET_MODE, .mode = 0600 };
	uint64_t f, ino;

	tv_open(&t);
	f = create_ok(&t, t.root, "f");
	mkdir_ok(&t, t.root, "d");
	t.read_only = true;
	tv_remount(&t);
	ck_assert_int_eq(lookup_ino(&t, t.root, "f", &ino), 0);
	ck_assert_int_eq(fsop_create(t.v, &cred0, t.root, "g", 0644, O_RDWR, &a, &fh), -EROFS);
	ck_assert_int_eq(fsop_mkdir(t.v, &cred0, t.root, "g", 0755, &a), -EROFS);
	ck_assert_int_eq(fsop_mknod(t.v, &cred0, t.root, "g", S_IFIFO | 0644, 0, &a), -EROFS);
	ck_assert_int_eq(fsop_symlink(t.v, &cred0, t.root, "g", "x", &a), -EROFS);
	ck_assert_int_eq(fsop_link(t.v, f, t.root, "g", &a), -EROFS);
	ck_assert_int_eq(fsop_unlink(t.v, t.root, "f"), -EROFS);
	ck_assert_int_eq(fsop_rmdir(t.v, t.root, "d"), -EROFS);
	ck_assert_int_eq(fsop_rename(t.v, t.root, "f", t.root, "g", 0), -EROFS);
	ck_assert_int_eq(fsop_setattr(t.v, f, &sa, &a), -EROFS);
	ck_assert_int_eq(fsop_setxattr(t.v, f, "user.x", "1", 1, 0), -EROFS);
	ck_assert_int_eq(fsop_removexattr(t.v, f, "user.x"), -EROFS);
	ck_assert_int_eq(fsop_fallocate(t.v, f, 0, 0, FBS), -EROFS);
	ck_assert_int_eq(fsop_open(t.v, f, O_RDWR, &fh), -EROFS);
	ck_assert_int_eq(fsop_open(t.v, f, O_RDONLY, &fh), 0);
	ck_assert_int_eq(fsop_release(t.v, fh), 0);
	ck_assert_int_eq(fsop_fsync(t.v, f, false), 0);
	tv_close(&t);
}
END_TEST

START_TEST(test_eio)
{
	struct tv t;
	struct lunfs_dev *mem;
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	uint64_t ino;
	int err;

	memset(&t, 0, sizeof(t));
	t.clk.now = 1000000000000ull;
	ck_assert_int_eq(dev_mem_open(VOL_SIZE, 512, &mem), 0);
	ck_assert_int_eq(dev_fault_open(mem, &t.dev, &t.fault), 0);
	tv_format(t.dev);
	ck_assert_int_eq(tv_mount(&t), 0);
	mkdir_ok(&t, t.root, "before");
	ck_assert_int_eq(fsop_syncfs(t.v), 0);
	/* the disk dies: every write and flush fails from now on */
	dev_fault_fail_nth(t.fault, LUNFS_FAULT_WRITE | LUNFS_FAULT_FLUSH | LUNFS_FAULT_CAW, 1, EIO,
			   true);
	err = fsop_mkdir(t.v, &cred0, t.root, "during", 0755, &a);
	if (err == 0) {
		fsop_forget(t.v, a.ino, 1);
		err = fsop_syncfs(t.v);
	}
	ck_assert_int_eq(err, -EIO);
	ck_assert_int_eq(fsop_create(t.v, &cred0, t.root, "after", 0644, O_RDWR, &a, &fh), -EIO);
	ck_assert_int_ne(vol_unmount(t.v), 0);
	t.v = NULL;
	/* the disk comes back: the last durable state is there */
	dev_fault_fail_nth(t.fault, LUNFS_FAULT_ALL, 0, EIO, false);
	ck_assert_int_eq(dev_fault_power_cycle(t.fault, 0), 0);
	ck_assert_int_eq(tv_mount(&t), 0);
	ck_assert_int_eq(lookup_ino(&t, t.root, "before", &ino), 0);
	ck_assert_int_eq(lookup_ino(&t, t.root, "during", &ino), -ENOENT);
	ck_assert_int_eq(lookup_ino(&t, t.root, "after", &ino), -ENOENT);
	tv_close(&t);
}
END_TEST

static Suite *fsops_suite(void)
{
	Suite *s = suite_create("fsops");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_mount_basic);
	tcase_add_test(tc, test_mount_not_a_volume);
	tcase_add_test(tc, test_host_uuid_derive);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_exists);
	tcase_add_test(tc, test_remove_errors);
	tcase_add_test(tc, test_link_counts);
	tcase_add_test(tc, test_parent_times);
	tcase_add_test(tc, test_rename_rules);
	tcase_add_test(tc, test_rename_dir_moves);
	tcase_add_test(tc, test_rename_exchange);
	tcase_add_test(tc, test_rename_over_open);
	tcase_add_test(tc, test_symlink_mknod);
	tcase_add_test(tc, test_modes_sgid);
	tcase_add_test(tc, test_setattr);
	tcase_add_test(tc, test_truncate_zeros);
	tcase_add_test(tc, test_unlink_open);
	tcase_add_test(tc, test_orphan_across_remount);
	tcase_add_test(tc, test_open_rules);
	tcase_add_test(tc, test_seek_fallocate);
	tcase_add_test(tc, test_readdir);
	tcase_add_test(tc, test_xattr);
	tcase_add_test(tc, test_statfs_changes);
	tcase_add_test(tc, test_remount_preserves);
	tcase_add_test(tc, test_read_only);
	tcase_add_test(tc, test_eio);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fsops_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
