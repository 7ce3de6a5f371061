/*
 * Unit tests of shared blocks, clones, copy_file_range and snapshots
 * (fs/snap.c, fs/fsops_snap.c) on memory volumes, through the fsop_* API:
 *   - snapshot, write more, revert: the image is the snapshot again, by
 *     checksum (size included); the snapshot never changes;
 *   - a chain of 100 snapshots, each after writes of its own, every one
 *     verified, some reverted to, then all deleted;
 *   - clone, then write both sides: each is its own model;
 *   - deletes in every order (image, clone, snapshots), with the offline
 *     checker clean (0 problems, refcounts included) after each, and the
 *     file blocks back to the start at the end: exactly what nothing else
 *     references is freed;
 *   - copy_file_range: whole blocks shared, partial ones copied, unaligned
 *     offsets refused (EOPNOTSUPP: the caller copies bytes);
 *   - space: statfs counts a shared block once, fsop_space splits owned
 *     alone / shared; a saturated counter (65535) makes a copy;
 *   - snapshots are read-only; EEXIST, ENOENT, EBUSY answers;
 *   - the metadata a snapshot costs grows with the blocks written, not
 *     with the file's size (a 64 GiB sparse image, 4 GiB allocated): the
 *     time it takes is printed, never asserted;
 *   - a power cut at every write of a snapshot, a clone, a snapshot
 *     delete and a revert: after replay the checker is clean, the image
 *     reads as before, and the new file is either absent or complete.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fs_testvol.h"
#include "lunfs/check.h"
#include "lunfs/cluster.h"
#include "lunfs/crc32c.h"
#include "lunfs/inode.h"
#include "lunfs/map.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define FBS (64 * KiB)

static struct fs_testvol T;
static const struct lunfs_cred CR = { .uid = 0, .gid = 0, .umask = 022 };

static void teardown(void)
{
	fs_testvol_destroy(&T);
}

static void up(uint64_t size, uint32_t fbs, uint64_t journal, bool fault)
{
	struct fs_testvol_opts o;
	int r;

	memset(&o, 0, sizeof(o));
	o.size = size;
	o.file_block_size = fbs;
	o.journal_size = journal;
	o.fault = fault;
	if (size <= 1 * GiB) {
		o.cluster_size = 4 * MiB; /* several FILE clusters: refcounts in more than one */
	}
	r = fs_testvol_create(&o, &T);
	ck_assert_msg(r == 0, "fs_testvol_create: %d", r);
}

static uint64_t root(void)
{
	return vol_root_ino(T.v);
}

static uint64_t units_used(uint8_t type)
{
	uint64_t u;

	ck_assert_int_eq(fs_testvol_units_used(&T, type, &u), 0);
	return u;
}

/* ---- data ------------------------------------------------------------------ */

static uint8_t pat(uint64_t s, uint64_t p)
{
	uint64_t x = s * 0x9E3779B97F4A7C15ull + (p >> 3) + 1;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return (uint8_t)(((uint8_t)x ^ (uint8_t)p) | 1); /* never 0 */
}

static uint64_t mkfile(uint64_t dir, const char *name)
{
	struct lunfs_attr a;
	struct lunfs_fh *fh;

	ck_assert_int_eq(fsop_create(T.v, &CR, dir, name, 0644, O_RDWR, &a, &fh), 0);
	ck_assert_int_eq(fsop_release(T.v, fh), 0);
	fsop_forget(T.v, a.ino, 1);
	return a.ino;
}

static void wr(uint64_t ino, uint64_t seed, uint64_t off, uint64_t len)
{
	struct lunfs_fh *fh;
	uint8_t *buf = malloc(len);

	ck_assert_ptr_nonnull(buf);
	for (uint64_t i = 0; i < len; i++) {
		buf[i] = pat(seed, off + i);
	}
	ck_assert_int_eq(fsop_open(T.v, ino, O_RDWR, &fh), 0);
	ck_assert_int_eq(fsop_write(T.v, fh, buf, len, off), (ssize_t)len);
	ck_assert_int_eq(fsop_release(T.v, fh), 0);
	free(buf);
}

/* The whole file (size, then bytes) as one crc32c. */
static uint32_t sum(uint64_t ino)
{
	struct lunfs_attr a;
	struct lunfs_fh *fh;
	uint8_t *buf = malloc(1 * MiB);
	uint32_t c;

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(fsop_getattr(T.v, ino, &a), 0);
	c = crc32c(0, &a.size, sizeof(a.size));
	ck_assert_int_eq(fsop_open(T.v, ino, O_RDONLY, &fh), 0);
	for (uint64_t off = 0; off < a.size; off += 1 * MiB) {
		uint64_t n = a.size - off < 1 * MiB ? a.size - off : 1 * MiB;

		ck_assert_int_eq(fsop_read(T.v, fh, buf, n, off), (ssize_t)n);
		c = crc32c(c, buf, n);
	}
	ck_assert_int_eq(fsop_release(T.v, fh), 0);
	free(buf);
	return c;
}

/* The ino of image's snapshot `name`, 0 if there is none. */
static uint64_t snap_of(uint64_t image, const char *name)
{
	char path[128];
	uint64_t dir = 0;
	struct lunfs_attr a;
	int r;

	ck_assert_int_eq(fsop_snapshot_dir(T.v, image, path, sizeof(path), &dir), 0);
	if (dir == 0) {
		return 0;
	}
	r = fsop_lookup(T.v, dir, name, &a);
	if (r == -ENOENT) {
		return 0;
	}
	ck_assert_int_eq(r, 0);
	fsop_forget(T.v, a.ino, 1);
	return a.ino;
}

static void ck_note(void *arg, int pb, bool fixed, const char *msg)
{
	(void)fixed;
	if (pb >= 0 && ((char *)arg)[0] == '\0') {
		snprintf(arg, 256, "%s", msg);
	}
}

/* Unmount, check offline (no problem at all), mount again. */
static void clean(const char *when)
{
	struct check_opts o;
	struct check_result r;
	const char *why = NULL;
	char first[256] = "";
	uint64_t n = 0;

	ck_assert_int_eq(fs_testvol_unmount(&T), 0);
	memset(&o, 0, sizeof(o));
	o.live_wait_max_ms = 1;
	o.report = ck_note;
	o.arg = first;
	ck_assert_int_eq(check_run(T.dev, &o, &r, &why), 0);
	for (unsigned pb = 0; pb < CHECK_PB_COUNT; pb++) {
		n += r.found[pb];
	}
	ck_assert_msg(n == 0, "%s: fsck found %" PRIu64 " problems: %s", when, n, first);
	ck_assert_int_eq(fs_testvol_mount(&T), 0);
}

/* An image: 40 blocks of 64 KiB with holes, partly written blocks and a
 * tail that ends inside a block. */
static uint64_t mkimage(const char *name, uint64_t seed)
{
	uint64_t ino = mkfile(root(), name);

	wr(ino, seed, 0, 5 * FBS);                   /* whole blocks */
	wr(ino, seed + 1, 9 * FBS + 4000, 20000);    /* a partial block after a hole */
	wr(ino, seed + 2, 30 * FBS, 3 * FBS + 777);  /* ends inside a block */
	return ino;
}

/* ---- snapshot, write more, revert ----------------------------------------- */

START_TEST(test_snap_revert)
{
	uint64_t img, s1, file0;
	uint32_t c1, c2;
	struct lunfs_attr a;
	struct lunfs_space sp;

	up(256 * MiB, FBS, 0, false);
	file0 = units_used(LUNFS_CLUSTER_FILE);
	img = mkimage("vm.img", 10);
	c1 = sum(img);
	ck_assert_int_eq(fsop_snapshot_create(T.v, img, "s1", &a), 0);
	s1 = a.ino;
	ck_assert_uint_eq(snap_of(img, "s1"), s1);
	ck_assert_uint_eq(a.mode & 0777, 0444);
	ck_assert_uint_eq(sum(s1), c1);
	/* The snapshot took no file block: every block is shared. */
	ck_assert_int_eq(fsop_space(T.v, img, &sp), 0);
	ck_assert_uint_eq(sp.excl_bytes, 0);
	ck_assert_uint_eq(sp.shared_bytes, sp.alloc_bytes);
	ck_assert_uint_eq(sp.snap_id, 1);
	ck_assert_int_eq(fsop_space(T.v, s1, &sp), 0);
	ck_assert_uint_eq(sp.flags & LUNFS_INODE_SNAPSHOT, LUNFS_INODE_SNAPSHOT);
	ck_assert_uint_eq(sp.snap_parent, img);
	ck_assert_uint_eq(sp.snap_id, 1);
	/* Write more: overwrite (copy-on-write), fill a hole, grow, punch. */
	wr(img, 20, 100, 5000);
	wr(img, 21, 6 * FBS, 2 * FBS);
	wr(img, 22, 50 * FBS, 1234);
	ck_assert_int_eq(fsop_fallocate(T.v, img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * FBS, FBS),
			 0);
	c2 = sum(img);
	ck_assert_uint_ne(c1, c2);
	ck_assert_uint_eq(sum(s1), c1);
	clean("after writes");
	/* Revert: the image reads as the snapshot, size included. */
	ck_assert_int_eq(fsop_snapshot_revert(T.v, img, "s1", NULL), 0);
	ck_assert_uint_eq(sum(img), c1);
	ck_assert_uint_eq(sum(s1), c1);
	clean("after revert");
	ck_assert_uint_eq(sum(img), c1);
	/* And the image is writable again, the snapshot still the same. */
	wr(img, 30, 3 * FBS + 17, 70000);
	ck_assert_uint_ne(sum(img), c1);
	ck_assert_uint_eq(sum(s1), c1);
	ck_assert_int_eq(fsop_snapshot_revert(T.v, img, "s1", NULL), 0);
	ck_assert_uint_eq(sum(img), c1);
	/* Delete the snapshot, then the image: every block comes back. */
	ck_assert_int_eq(fsop_snapshot_delete(T.v, img, "s1", NULL, NULL), 0);
	ck_assert_uint_eq(snap_of(img, "s1"), 0);
	ck_assert_uint_eq(sum(img), c1);
	clean("after delete");
	ck_assert_int_eq(fsop_unlink(T.v, root(), "vm.img"), 0);
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_FILE), file0);
	clean("after unlink");
}
END_TEST

/* ---- a chain of 100 ----------------------------------------------------------- */

#define CHAIN 100

START_TEST(test_snap_chain)
{
	uint64_t img, file0;
	uint32_t c[CHAIN + 1];
	char name[32];

	up(512 * MiB, FBS, 0, false);
	file0 = units_used(LUNFS_CLUSTER_FILE);
	img = mkimage("chain.img", 1);
	for (unsigned i = 1; i <= CHAIN; i++) {
		/* Writes of its own before each snapshot: one block overwritten
		 * in place or copied, one small write somewhere, sometimes a
		 * growth. */
		wr(img, 1000 + i, (uint64_t)(i % 37) * FBS + i * 13, 3000 + i * 7);
		if (i % 10 == 0) {
			wr(img, 2000 + i, (uint64_t)(40 + i) * FBS, FBS);
		}
		c[i] = sum(img);
		snprintf(name, sizeof(name), "s%u", i);
		ck_assert_int_eq(fsop_snapshot_create(T.v, img, name, NULL), 0);
	}
	wr(img, 9999, 0, 8 * FBS);
	c[0] = sum(img);
	for (unsigned i = 1; i <= CHAIN; i++) {
		snprintf(name, sizeof(name), "s%u", i);
		ck_assert_msg(sum(snap_of(img, name)) == c[i], "snapshot %u", i);
	}
	clean("chain");
	/* Revert to a few, in no particular order. */
	{
		static const unsigned to[] = { 50, 1, 100, 73 };

		for (unsigned k = 0; k < sizeof(to) / sizeof(to[0]); k++) {
			snprintf(name, sizeof(name), "s%u", to[k]);
			ck_assert_int_eq(fsop_snapshot_revert(T.v, img, name, NULL), 0);
			ck_assert_msg(sum(img) == c[to[k]], "revert to %u", to[k]);
		}
	}
	clean("chain reverts");
	/* Delete every other one, check the rest, then all. */
	for (unsigned i = 2; i <= CHAIN; i += 2) {
		snprintf(name, sizeof(name), "s%u", i);
		ck_assert_int_eq(fsop_snapshot_delete(T.v, img, name, NULL, NULL), 0);
	}
	for (unsigned i = 1; i <= CHAIN; i += 2) {
		snprintf(name, sizeof(name), "s%u", i);
		ck_assert_msg(sum(snap_of(img, name)) == c[i], "snapshot %u after deletes", i);
	}
	ck_assert_uint_eq(sum(img), c[73]);
	clean("chain half deleted");
	for (unsigned i = 1; i <= CHAIN; i += 2) {
		snprintf(name, sizeof(name), "s%u", i);
		ck_assert_int_eq(fsop_snapshot_delete(T.v, img, name, NULL, NULL), 0);
	}
	ck_assert_int_eq(fsop_unlink(T.v, root(), "chain.img"), 0);
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_FILE), file0);
	clean("chain deleted");
}
END_TEST

/* ---- clone ---------------------------------------------------------------------- */

START_TEST(test_clone_both_sides)
{
	uint64_t a, b, file0, used1;
	uint32_t ca, cb;
	struct lunfs_attr at;
	struct lunfs_statfs st0, st1;

	up(256 * MiB, FBS, 0, false);
	file0 = units_used(LUNFS_CLUSTER_FILE);
	a = mkimage("a", 5);
	used1 = units_used(LUNFS_CLUSTER_FILE);
	ck_assert_int_eq(fsop_statfs(T.v, &st0), 0);
	ca = sum(a);
	ck_assert_int_eq(fsop_clone(T.v, &CR, a, root(), "b", &at), 0);
	b = at.ino;
	ck_assert_int_eq(fsop_clone(T.v, &CR, a, root(), "b", &at), -EEXIST);
	ck_assert_uint_eq(sum(b), ca);
	ck_assert_uint_eq(at.mode & 0777, 0644);
	/* Shared blocks count once. */
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_FILE), used1);
	ck_assert_int_eq(fsop_statfs(T.v, &st1), 0);
	ck_assert_uint_eq(st1.blocks_free, st0.blocks_free);
	/* Both sides written: each sees its own writes only. */
	wr(a, 50, 10, 100);
	wr(b, 51, FBS - 10, 30);
	wr(b, 52, 31 * FBS, 2 * FBS);
	wr(a, 53, 60 * FBS, 1);
	ck_assert_uint_ne(sum(a), ca);
	ck_assert_uint_ne(sum(b), ca);
	ca = sum(a);
	cb = sum(b);
	ck_assert_uint_ne(ca, cb);
	clean("clone written");
	ck_assert_uint_eq(sum(a), ca);
	ck_assert_uint_eq(sum(b), cb);
	/* A clone of a clone, then the middle one goes. */
	ck_assert_int_eq(fsop_clone(T.v, &CR, b, root(), "c", &at), 0);
	ck_assert_int_eq(fsop_unlink(T.v, root(), "b"), 0);
	ck_assert_uint_eq(sum(at.ino), cb);
	ck_assert_uint_eq(sum(a), ca);
	clean("clone of a clone");
	ck_assert_int_eq(fsop_unlink(T.v, root(), "a"), 0);
	ck_assert_int_eq(fsop_unlink(T.v, root(), "c"), 0);
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_FILE), file0);
	clean("clones deleted");
}
END_TEST

/* A clone of a sparse file keeps its holes and unwritten chunks, and of
 * an empty file is empty. */
START_TEST(test_clone_sparse_empty)
{
	uint64_t a, e;
	struct lunfs_attr at;
	struct lunfs_space sp;

	up(256 * MiB, FBS, 0, false);
	a = mkfile(root(), "sparse");
	ck_assert_int_eq(fsop_fallocate(T.v, a, 0, 3 * FBS, 4 * FBS), 0); /* unwritten blocks */
	wr(a, 3, 100 * FBS + 5, 10);
	ck_assert_int_eq(fsop_clone(T.v, &CR, a, root(), "sparse2", &at), 0);
	ck_assert_uint_eq(sum(at.ino), sum(a));
	ck_assert_int_eq(fsop_space(T.v, at.ino, &sp), 0);
	ck_assert_uint_eq(sp.alloc_bytes, 5 * FBS);
	ck_assert_uint_eq(sp.shared_bytes, 5 * FBS);
	e = mkfile(root(), "empty");
	ck_assert_int_eq(fsop_clone(T.v, &CR, e, root(), "empty2", &at), 0);
	ck_assert_uint_eq(at.size, 0);
	ck_assert_int_eq(fsop_clone(T.v, &CR, root(), root(), "dir2", &at), -EISDIR);
	clean("sparse clones");
}
END_TEST

/* ---- deletes in every order ------------------------------------------------------ */

START_TEST(test_delete_orders)
{
	/* Four things share blocks: the image, two snapshots, a clone. Every
	 * one of the 24 orders of deleting them, checked after each step. */
	unsigned perm[4] = { 0, 1, 2, 3 };
	unsigned nperm = 0;

	up(128 * MiB, FBS, 0, false);
	for (;;) {
		uint64_t file0 = units_used(LUNFS_CLUSTER_FILE);
		uint64_t img = mkimage("img", 7), clone, sdir = 0;
		uint32_t cs1, cs2, ccl;
		struct lunfs_attr at;
		bool img_gone = false;

		ck_assert_int_eq(fsop_snapshot_create(T.v, img, "s1", NULL), 0);
		cs1 = sum(img);
		wr(img, 70, FBS / 2, FBS);
		ck_assert_int_eq(fsop_snapshot_create(T.v, img, "s2", NULL), 0);
		cs2 = sum(img);
		ck_assert_int_eq(fsop_clone(T.v, &CR, img, root(), "cl", &at), 0);
		clone = at.ino;
		{
			char path[128];

			ck_assert_int_eq(fsop_snapshot_dir(T.v, img, path, sizeof(path), &sdir), 0);
		}
		wr(clone, 71, 2 * FBS, 10);
		ccl = sum(clone);
		wr(img, 72, 0, 3 * FBS);
		for (unsigned k = 0; k < 4; k++) {
			char when[64];

			switch (perm[k]) {
			case 0:
				ck_assert_int_eq(fsop_unlink(T.v, root(), "img"), 0);
				img_gone = true;
				break;
			case 1:
			case 2: {
				/* A snapshot outlives its image: delete it by
				 * path then. */
				const char *nm = perm[k] == 1 ? "s1" : "s2";

				if (!img_gone) {
					ck_assert_int_eq(fsop_snapshot_delete(T.v, img, nm, NULL, NULL), 0);
				} else {
					ck_assert_int_eq(fsop_unlink(T.v, sdir, nm), 0);
				}
				break;
			}
			default:
				ck_assert_int_eq(fsop_unlink(T.v, root(), "cl"), 0);
				break;
			}
			snprintf(when, sizeof(when), "order %u%u%u%u step %u", perm[0], perm[1], perm[2], perm[3], k);
			clean(when);
			/* What remains reads as it did. */
			for (unsigned j = k + 1; j < 4; j++) {
				if (perm[j] == 3) {
					ck_assert_uint_eq(sum(clone), ccl);
				} else if (perm[j] == 1 && !img_gone) {
					ck_assert_uint_eq(sum(snap_of(img, "s1")), cs1);
				} else if (perm[j] == 2 && !img_gone) {
					ck_assert_uint_eq(sum(snap_of(img, "s2")), cs2);
				}
			}
		}
		ck_assert_uint_eq(units_used(LUNFS_CLUSTER_FILE), file0);
		nperm++;
		/* Next permutation (lexicographic). */
		{
			int i = 2, j = 3;

			while (i >= 0 && perm[i] > perm[i + 1]) {
				i--;
			}
			if (i < 0) {
				break;
			}
			while (perm[j] < perm[i]) {
				j--;
			}
			unsigned t = perm[i];
			perm[i] = perm[j];
			perm[j] = t;
			for (int x = i + 1, y = 3; x < y; x++, y--) {
				t = perm[x];
				perm[x] = perm[y];
				perm[y] = t;
			}
		}
	}
	ck_assert_uint_eq(nperm, 24);
}
END_TEST

/* ---- copy_file_range ---------------------------------------------------------------- */

START_TEST(test_copy_range)
{
	uint64_t a, b, used;
	struct lunfs_fh *fa, *fb;
	uint8_t *x = malloc(12 * FBS), *y = malloc(12 * FBS);
	struct lunfs_space sp;

	ck_assert_ptr_nonnull(x);
	ck_assert_ptr_nonnull(y);
	up(256 * MiB, FBS, 0, false);
	a = mkfile(root(), "a");
	b = mkfile(root(), "b");
	wr(a, 1, 0, 10 * FBS + 300);
	wr(b, 2, 0, 12 * FBS);
	used = units_used(LUNFS_CLUSTER_FILE);
	ck_assert_int_eq(fsop_open(T.v, a, O_RDONLY, &fa), 0);
	ck_assert_int_eq(fsop_open(T.v, b, O_RDWR, &fb), 0);
	/* Same phase, unaligned ends: blocks 1..3 shared, edges copied. */
	ck_assert_int_eq(fsop_copy_range(T.v, fa, FBS - 100, fb, 5 * FBS - 100, 3 * FBS + 200),
			 (ssize_t)(3 * FBS + 200));
	ck_assert_int_eq(fsop_read(T.v, fa, x, 10 * FBS + 300, 0), (ssize_t)(10 * FBS + 300));
	ck_assert_int_eq(fsop_read(T.v, fb, y, 12 * FBS, 0), (ssize_t)(12 * FBS));
	ck_assert_mem_eq(y + 5 * FBS - 100, x + FBS - 100, 3 * FBS + 200);
	for (uint64_t i = 0; i < 5 * FBS - 100; i++) {
		ck_assert_uint_eq(y[i], pat(2, i)); /* before the range: b's own */
	}
	for (uint64_t i = 8 * FBS + 100; i < 12 * FBS; i++) {
		ck_assert_uint_eq(y[i], pat(2, i)); /* after it */
	}
	ck_assert_int_eq(fsop_space(T.v, b, &sp), 0);
	ck_assert_uint_eq(sp.shared_bytes, 3 * FBS);
	/* Three of b's blocks were replaced by a's, two edge blocks copied in
	 * place: b's three old blocks are free again. */
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_FILE), used - 3);
	/* Unaligned phases: nothing can be shared. */
	ck_assert_int_eq(fsop_copy_range(T.v, fa, 1, fb, 2, FBS), -EOPNOTSUPP);
	/* Past the source's end: nothing; clipped at it. */
	ck_assert_int_eq(fsop_copy_range(T.v, fa, 11 * FBS, fb, 0, FBS), 0);
	/* To the end of a, into a new region of b: the tail block (a's EOF
	 * inside it) is shared whole, b grows to exactly the copied end. */
	ck_assert_int_eq(fsop_copy_range(T.v, fa, 8 * FBS, fb, 20 * FBS, 5 * FBS), (ssize_t)(2 * FBS + 300));
	{
		struct lunfs_attr at;

		ck_assert_int_eq(fsop_getattr(T.v, b, &at), 0);
		ck_assert_uint_eq(at.size, 22 * FBS + 300);
		ck_assert_int_eq(fsop_read(T.v, fb, y, 2 * FBS + 300, 20 * FBS), (ssize_t)(2 * FBS + 300));
		ck_assert_mem_eq(y, x + 8 * FBS, 2 * FBS + 300);
	}
	ck_assert_int_eq(fsop_space(T.v, b, &sp), 0);
	ck_assert_uint_eq(sp.shared_bytes, 6 * FBS);
	/* A source hole over destination data: the data goes. */
	{
		uint64_t c = mkfile(root(), "holey");
		struct lunfs_fh *fc;

		wr(c, 9, 5 * FBS, 10);
		ck_assert_int_eq(fsop_open(T.v, c, O_RDONLY, &fc), 0);
		ck_assert_int_eq(fsop_copy_range(T.v, fc, 0, fb, 0, 2 * FBS), (ssize_t)(2 * FBS));
		ck_assert_int_eq(fsop_read(T.v, fb, y, 2 * FBS, 0), (ssize_t)(2 * FBS));
		for (uint64_t i = 0; i < 2 * FBS; i++) {
			ck_assert_uint_eq(y[i], 0);
		}
		ck_assert_int_eq(fsop_release(T.v, fc), 0);
	}
	ck_assert_int_eq(fsop_release(T.v, fa), 0);
	ck_assert_int_eq(fsop_release(T.v, fb), 0);
	clean("copy_range");
	free(x);
	free(y);
}
END_TEST

/* ---- read-only snapshots, errors -------------------------------------------------- */

START_TEST(test_snap_rules)
{
	uint64_t img, s;
	struct lunfs_fh *fh;
	struct lunfs_attr a;
	struct lunfs_setattr sa = { .valid = LUNFS_SET_SIZE, .size = 0 };

	up(128 * MiB, FBS, 0, false);
	img = mkimage("img", 3);
	ck_assert_int_eq(fsop_snapshot_create(T.v, img, "s", &a), 0);
	s = a.ino;
	ck_assert_int_eq(fsop_snapshot_create(T.v, img, "s", NULL), -EEXIST);
	ck_assert_int_eq(fsop_snapshot_create(T.v, img, "a/b", NULL), -EINVAL);
	ck_assert_int_eq(fsop_snapshot_create(T.v, img, "..", NULL), -EINVAL);
	ck_assert_int_eq(fsop_snapshot_create(T.v, s, "x", NULL), -EINVAL);   /* of a snapshot */
	ck_assert_int_eq(fsop_snapshot_create(T.v, root(), "x", NULL), -EISDIR);
	ck_assert_int_eq(fsop_snapshot_revert(T.v, img, "nope", NULL), -ENOENT);
	ck_assert_int_eq(fsop_snapshot_delete(T.v, img, "nope", NULL, NULL), -ENOENT);
	/* Read-only: no write open, no truncate, no fallocate. */
	ck_assert_int_eq(fsop_open(T.v, s, O_RDWR, &fh), -EPERM);
	ck_assert_int_eq(fsop_setattr(T.v, s, &sa, &a), -EPERM);
	ck_assert_int_eq(fsop_fallocate(T.v, s, 0, 0, FBS), -EPERM);
	/* Revert while the image is open here (not through `self`): busy. */
	ck_assert_int_eq(fsop_open(T.v, img, O_RDWR, &fh), 0);
	ck_assert_int_eq(fsop_snapshot_revert(T.v, img, "s", NULL), -EBUSY);
	ck_assert_int_eq(fsop_snapshot_revert(T.v, img, "s", fh), 0);
	/* A snapshot while open for write here: every write so far is in. */
	{
		uint8_t buf[100];
		uint32_t c;

		memset(buf, 0x77, sizeof(buf));
		ck_assert_int_eq(fsop_write(T.v, fh, buf, sizeof(buf), 5), (ssize_t)sizeof(buf));
		c = sum(img);
		ck_assert_int_eq(fsop_snapshot_create(T.v, img, "open", NULL), 0);
		ck_assert_int_eq(fsop_write(T.v, fh, buf, sizeof(buf), 500), (ssize_t)sizeof(buf));
		ck_assert_uint_eq(sum(snap_of(img, "open")), c);
	}
	ck_assert_int_eq(fsop_release(T.v, fh), 0);
	clean("rules");
}
END_TEST

struct lst {
	unsigned n;
	uint64_t idsum;
	uint64_t excl;
};

static int lst_fn(void *arg, const char *name, const struct lunfs_snap_info *si)
{
	struct lst *l = arg;

	(void)name;
	l->n++;
	l->idsum += si->id;
	l->excl += si->excl_bytes;
	return 0;
}

START_TEST(test_snap_list)
{
	uint64_t img;
	struct lst l = { 0, 0, 0 };
	char path[128];
	uint64_t dir;

	up(128 * MiB, FBS, 0, false);
	img = mkimage("img", 4);
	ck_assert_int_eq(fsop_snapshot_list(T.v, img, lst_fn, &l), 0);
	ck_assert_uint_eq(l.n, 0);
	ck_assert_int_eq(fsop_snapshot_dir(T.v, img, path, sizeof(path), &dir), 0);
	ck_assert_uint_eq(dir, 0);
	ck_assert_int_eq(fsop_snapshot_create(T.v, img, "one", NULL), 0);
	wr(img, 40, 0, 2 * FBS);                 /* one's first two blocks become its own */
	ck_assert_int_eq(fsop_snapshot_create(T.v, img, "two", NULL), 0);
	ck_assert_int_eq(fsop_snapshot_create(T.v, img, "three", NULL), 0);
	ck_assert_int_eq(fsop_snapshot_delete(T.v, img, "two", NULL, NULL), 0);
	ck_assert_int_eq(fsop_snapshot_list(T.v, img, lst_fn, &l), 0);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_uint_eq(l.idsum, 1 + 3);
	ck_assert_uint_eq(l.excl, 2 * FBS);
	ck_assert_int_eq(fsop_snapshot_dir(T.v, img, path, sizeof(path), &dir), 0);
	ck_assert_uint_ne(dir, 0);
	ck_assert(strncmp(path, "/" LUNFS_SNAP_ROOT "/", strlen(LUNFS_SNAP_ROOT) + 2) == 0);
	clean("list");
}
END_TEST

/* A counter at its maximum: the block is copied, not shared. */
START_TEST(test_snap_saturated)
{
	uint64_t img, s;
	struct lunfs_map_entry e0, e1;
	struct inode_mem *im, *sm;
	struct jnl_handle *h;
	uint64_t run;
	uint32_t c, extra;
	struct lunfs_attr a;

	up(128 * MiB, FBS, 0, false);
	img = mkimage("img", 8);
	c = sum(img);
	ck_assert_int_eq(inode_get(T.v, img, &im), 0);
	pthread_rwlock_rdlock(&im->lock);
	ck_assert_int_eq(bmap_lookup(T.v, im, 1, &e0, &run), 0);
	pthread_rwlock_unlock(&im->lock);
	pthread_mutex_lock(&T.v->meta_lock);
	ck_assert_int_eq(jnl_start(T.v->jnl, 8, &h), 0);
	ck_assert_int_eq(alloc_ref_add(T.v->alloc, h, e0.addr, 65535), 0);
	ck_assert_int_eq(alloc_ref_add(T.v->alloc, h, e0.addr, 1), -EMLINK);
	ck_assert_int_eq(jnl_stop(h, false), 0);
	pthread_mutex_unlock(&T.v->meta_lock);
	ck_assert_int_eq(fsop_snapshot_create(T.v, img, "s", &a), 0);
	s = a.ino;
	ck_assert_uint_eq(sum(s), c);
	ck_assert_int_eq(inode_get(T.v, s, &sm), 0);
	pthread_rwlock_rdlock(&sm->lock);
	ck_assert_int_eq(bmap_lookup(T.v, sm, 1, &e1, &run), 0);
	pthread_rwlock_unlock(&sm->lock);
	ck_assert_uint_ne(e1.addr, e0.addr);               /* a copy */
	ck_assert_uint_eq(e1.written, e0.written);
	ck_assert_int_eq(alloc_ref_get(T.v->alloc, e0.addr, &extra), 0);
	ck_assert_uint_eq(extra, 65535);
	inode_put(T.v, sm);
	inode_put(T.v, im);
	pthread_mutex_lock(&T.v->meta_lock);
	ck_assert_int_eq(jnl_start(T.v->jnl, 8, &h), 0);
	ck_assert_int_eq(alloc_ref_add(T.v->alloc, h, e0.addr, -65535), 0);
	ck_assert_int_eq(jnl_stop(h, false), 0);
	pthread_mutex_unlock(&T.v->meta_lock);
	clean("saturated");
}
END_TEST

/* ---- random writes over shared blocks, against byte models ------------------------------ */

#define RND_FILES 12
#define RND_MAX (3 * MiB)

struct rnd_file {
	uint64_t ino;
	bool ro;               /* a snapshot */
	uint64_t size;
	uint8_t *m;            /* RND_MAX bytes: the model */
};

static uint64_t rnd_next(uint64_t *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 7;
	*st ^= *st << 17;
	return *st;
}

static void rnd_verify(struct rnd_file *f, unsigned nf, const char *when)
{
	uint8_t *buf = malloc(RND_MAX);

	ck_assert_ptr_nonnull(buf);
	for (unsigned i = 0; i < nf; i++) {
		struct lunfs_attr a;
		struct lunfs_fh *fh;

		ck_assert_int_eq(fsop_getattr(T.v, f[i].ino, &a), 0);
		ck_assert_msg(a.size == f[i].size, "%s: file %u size %" PRIu64 " != %" PRIu64, when, i, a.size,
			      f[i].size);
		ck_assert_int_eq(fsop_open(T.v, f[i].ino, O_RDONLY, &fh), 0);
		ck_assert_int_eq(fsop_read(T.v, fh, buf, a.size, 0), (ssize_t)a.size);
		ck_assert_int_eq(fsop_release(T.v, fh), 0);
		ck_assert_msg(memcmp(buf, f[i].m, a.size) == 0, "%s: file %u differs", when, i);
	}
	free(buf);
}

/* Writes of every shape (tiny, unaligned, chunk-aligned, whole blocks,
 * across blocks), punches and truncates on an image and its clones, with
 * snapshots and clones taken in between: every file always reads as its
 * model. 512- and 4096-byte sectors (chunks of 1 KiB are then smaller
 * than a sector). */
static void cow_random(uint32_t ss, uint64_t seed)
{
	struct rnd_file f[RND_FILES];
	unsigned nf = 1, nsnap = 0;
	uint64_t st = seed;
	struct fs_testvol_opts o;
	uint8_t *buf = malloc(RND_MAX);
	char name[32];

	ck_assert_ptr_nonnull(buf);
	memset(&o, 0, sizeof(o));
	o.size = 256 * MiB;
	o.sector_size = ss;
	o.file_block_size = FBS;
	o.cluster_size = 4 * MiB;
	ck_assert_int_eq(fs_testvol_create(&o, &T), 0);
	memset(f, 0, sizeof(f));
	f[0].ino = mkfile(root(), "img");
	for (unsigned i = 0; i < RND_FILES; i++) {
		f[i].m = calloc(1, RND_MAX);
		ck_assert_ptr_nonnull(f[i].m);
	}
	for (unsigned op = 0; op < 400; op++) {
		uint64_t r = rnd_next(&st), k = r % 100;
		unsigned w = (unsigned)(rnd_next(&st) % nf);
		struct lunfs_attr a;

		if (f[w].ro) {
			w = 0;
		}
		if (k < 70) {
			/* A write: shapes chosen to hit chunk and block edges. */
			uint64_t shape = rnd_next(&st) % 5, off, len;
			struct lunfs_fh *fh;

			off = rnd_next(&st) % (RND_MAX - FBS);
			switch (shape) {
			case 0:
				len = 1 + rnd_next(&st) % 600;
				break;
			case 1:
				off -= off % (FBS / 64);
				len = (FBS / 64) * (1 + rnd_next(&st) % 8);
				break;
			case 2:
				off -= off % FBS;
				len = FBS * (1 + rnd_next(&st) % 3);
				break;
			case 3:
				off -= off % 4096;
				len = 4096;
				break;
			default:
				len = 1 + rnd_next(&st) % (2 * FBS);
				break;
			}
			if (off + len > RND_MAX) {
				len = RND_MAX - off;
			}
			for (uint64_t i = 0; i < len; i++) {
				buf[i] = pat(op, off + i);
			}
			ck_assert_int_eq(fsop_open(T.v, f[w].ino, O_RDWR, &fh), 0);
			ck_assert_int_eq(fsop_write(T.v, fh, buf, len, off), (ssize_t)len);
			ck_assert_int_eq(fsop_release(T.v, fh), 0);
			memcpy(f[w].m + off, buf, len);
			if (off + len > f[w].size) {
				f[w].size = off + len;
			}
		} else if (k < 78) {
			uint64_t off = rnd_next(&st) % RND_MAX, len = 1 + rnd_next(&st) % (3 * FBS);

			if (off + len > RND_MAX) {
				len = RND_MAX - off;
			}
			ck_assert_int_eq(fsop_fallocate(T.v, f[w].ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
							len), 0);
			if (off < f[w].size) {
				memset(f[w].m + off, 0, (off + len < f[w].size ? off + len : f[w].size) - off);
			}
		} else if (k < 83) {
			struct lunfs_setattr sa = { .valid = LUNFS_SET_SIZE };

			sa.size = rnd_next(&st) % RND_MAX;
			ck_assert_int_eq(fsop_setattr(T.v, f[w].ino, &sa, &a), 0);
			if (sa.size < f[w].size) {
				memset(f[w].m + sa.size, 0, f[w].size - sa.size);
			}
			f[w].size = sa.size;
		} else if (nf < RND_FILES && k < 92) {
			snprintf(name, sizeof(name), "s%u", nsnap++);
			ck_assert_int_eq(fsop_snapshot_create(T.v, f[0].ino, name, &a), 0);
			f[nf].ino = a.ino;
			f[nf].ro = true;
			f[nf].size = f[0].size;
			memcpy(f[nf].m, f[0].m, RND_MAX);
			nf++;
		} else if (nf < RND_FILES) {
			unsigned from = (unsigned)(rnd_next(&st) % nf);

			snprintf(name, sizeof(name), "c%u", op);
			ck_assert_int_eq(fsop_clone(T.v, &CR, f[from].ino, root(), name, &a), 0);
			f[nf].ino = a.ino;
			f[nf].ro = false;
			f[nf].size = f[from].size;
			memcpy(f[nf].m, f[from].m, RND_MAX);
			nf++;
		}
		if (op % 50 == 49) {
			rnd_verify(f, nf, "random");
		}
	}
	rnd_verify(f, nf, "random, end");
	clean("random");
	rnd_verify(f, nf, "random, remounted");
	for (unsigned i = 0; i < RND_FILES; i++) {
		free(f[i].m);
	}
	free(buf);
}

START_TEST(test_cow_random_512) { cow_random(512, 0x9e3779b97f4a7c15ull); }
END_TEST
START_TEST(test_cow_random_4096) { cow_random(4096, 0x2545f4914f6cdd1dull); }
END_TEST

/* ---- metadata cost of a snapshot of a big sparse image -------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* META units one snapshot of an image costs, and the time (printed). */
static uint64_t snap_meta_cost(uint64_t img, const char *name)
{
	uint64_t m0 = units_used(LUNFS_CLUSTER_META), m1;
	double t0 = now_s(), dt;

	ck_assert_int_eq(fsop_snapshot_create(T.v, img, name, NULL), 0);
	dt = now_s() - t0;
	m1 = units_used(LUNFS_CLUSTER_META);
	printf("snapshot %s: %.3f s, %" PRIu64 " metadata blocks\n", name, dt, m1 - m0);
	return m1 - m0;
}

START_TEST(test_snap_sparse_cost)
{
	/* 1 MiB blocks, like a real volume. A 64 GiB sparse image with 4 GiB
	 * allocated (fallocate: blocks mapped, nothing written, so the memory
	 * device stays small) in four 1 GiB runs far apart. */
	uint64_t img, small, c4, c1;

	up(80 * GiB, 1 * MiB, 16 * MiB, false);
	img = mkfile(root(), "big.img");
	small = mkfile(root(), "small.img");
	for (unsigned k = 0; k < 4; k++) {
		ck_assert_int_eq(fsop_fallocate(T.v, img, 0, (uint64_t)k * 16 * GiB, 1 * GiB), 0);
	}
	wr(img, 1, 64 * GiB - 4096, 4096);            /* size 64 GiB */
	ck_assert_int_eq(fsop_fallocate(T.v, small, 0, 0, 1 * GiB), 0);
	wr(small, 2, 1 * GiB - 4096, 4096);
	c4 = snap_meta_cost(img, "s4g");
	c1 = snap_meta_cost(small, "s1g");
	/* The snapshot's map: one leaf per 251 blocks allocated and their
	 * inner nodes, plus the snapshot directory; nothing for the 60 GiB
	 * never written. 4 GiB / 1 MiB / 251 = 17 leaves. */
	ck_assert_uint_le(c4, 17 + 4 + 3 + 8);
	/* Four times the data, about four times the leaves; the sixteen
	 * times larger file size does not count. */
	ck_assert_uint_le(c4, 4 * c1 + 8);
	{
		struct lunfs_space sp;

		ck_assert_int_eq(fsop_space(T.v, img, &sp), 0);
		ck_assert_uint_eq(sp.size, 64 * GiB);
		ck_assert_uint_eq(sp.shared_bytes, 4 * GiB + 1 * MiB);
	}
	clean("sparse cost");
}
END_TEST

/* ---- power cuts ------------------------------------------------------------------------- */

enum pc_op { PC_SNAP, PC_CLONE, PC_DELETE, PC_REVERT };

struct pc_ref {
	uint32_t img, snap;     /* checksums before the operation */
};

/* Set up: an image and a snapshot of it, then more writes, all synced. */
static void pc_setup(struct pc_ref *r)
{
	uint64_t img = mkimage("img", 11);

	/* Enough blocks for several leaves, so that an operation takes
	 * several steps (and, with a 1 MiB journal, several commits). */
	ck_assert_int_eq(fsop_fallocate(T.v, img, 0, 100 * FBS, 600 * FBS), 0);
	wr(img, 14, 300 * FBS + 5, 3 * FBS);
	ck_assert_int_eq(fsop_snapshot_create(T.v, img, "old", NULL), 0);
	r->snap = sum(img);
	wr(img, 12, 0, 3 * FBS);
	wr(img, 13, 45 * FBS, 10);
	r->img = sum(img);
	ck_assert_int_eq(fsop_syncfs(T.v), 0);
}

static int pc_do(enum pc_op op, uint64_t img)
{
	struct lunfs_attr a;

	switch (op) {
	case PC_SNAP:
		return fsop_snapshot_create(T.v, img, "new", NULL);
	case PC_CLONE: {
		int r = fsop_clone(T.v, &CR, img, root(), "copy", &a);

		return r == 0 ? fsop_syncfs(T.v) : r;
	}
	case PC_DELETE: {
		int r = fsop_snapshot_delete(T.v, img, "old", NULL, NULL);

		return r == 0 ? fsop_syncfs(T.v) : r;
	}
	default:
		return fsop_snapshot_revert(T.v, img, "old", NULL);
	}
}

static uint64_t pc_writes(void)
{
	struct lunfs_fault_stats st;

	dev_fault_stats(T.fault, &st);
	return st.writes + st.caws;
}

/* After the crash and a remount: consistent, and the operation either
 * happened or did not. */
static void pc_verify(enum pc_op op, const struct pc_ref *r, uint64_t point, bool done)
{
	struct lunfs_attr a;
	uint64_t img;
	char when[64];

	snprintf(when, sizeof(when), "op %d, crash at write %" PRIu64, (int)op, point);
	ck_assert_msg(fsop_lookup(T.v, root(), "img", &a) == 0, "%s: image gone", when);
	img = a.ino;
	fsop_forget(T.v, img, 1);
	switch (op) {
	case PC_SNAP: {
		uint64_t s = snap_of(img, "new");

		ck_assert_msg(sum(img) == r->img, "%s: image changed", when);
		ck_assert_msg(s == 0 || sum(s) == r->img, "%s: half a snapshot", when);
		ck_assert_msg(!done || s != 0, "%s: a snapshot that returned 0 is lost", when);
		break;
	}
	case PC_CLONE: {
		int rr = fsop_lookup(T.v, root(), "copy", &a);

		ck_assert_msg(sum(img) == r->img, "%s: image changed", when);
		ck_assert_msg(rr == -ENOENT || (rr == 0 && sum(a.ino) == r->img), "%s: half a clone", when);
		ck_assert_msg(!done || rr == 0, "%s: a synced clone is lost", when);
		if (rr == 0) {
			fsop_forget(T.v, a.ino, 1);
		}
		break;
	}
	case PC_DELETE: {
		uint64_t s = snap_of(img, "old");

		ck_assert_msg(sum(img) == r->img, "%s: image changed", when);
		ck_assert_msg(s == 0 || sum(s) == r->snap, "%s: snapshot damaged", when);
		ck_assert_msg(!done || s == 0, "%s: a synced delete came back", when);
		break;
	}
	default: {
		/* Done, or not started, or cut half-way (then the image
		 * refuses writers until the revert runs again). */
		uint32_t c = sum(img);
		struct lunfs_fh *fh;
		int ro;

		ck_assert_msg(sum(snap_of(img, "old")) == r->snap, "%s: snapshot damaged", when);
		ro = fsop_open(T.v, img, O_RDWR, &fh);
		if (ro == 0) {
			ck_assert_int_eq(fsop_release(T.v, fh), 0);
			ck_assert_msg(c == r->img || c == r->snap, "%s: image neither before nor after", when);
		} else {
			ck_assert_msg(ro == -EIO, "%s: open %d", when, ro);
			ck_assert_int_eq(fsop_snapshot_revert(T.v, img, "old", NULL), 0);
			ck_assert_uint_eq(sum(img), r->snap);
		}
		ck_assert_msg(!done || c == r->snap, "%s: a revert that returned 0 is lost", when);
		break;
	}
	}
}

static void pc_run(enum pc_op op)
{
	struct pc_ref ref;
	uint64_t w0, total, img;
	struct lunfs_attr a;

	/* Reference: how many writes the operation makes. */
	up(128 * MiB, FBS, 1 * MiB, true);
	pc_setup(&ref);
	ck_assert_int_eq(fsop_lookup(T.v, root(), "img", &a), 0);
	img = a.ino;
	fsop_forget(T.v, img, 1);
	w0 = pc_writes();
	ck_assert_int_eq(pc_do(op, img), 0);
	total = pc_writes() - w0;
	pc_verify(op, &ref, 0, true);
	fs_testvol_destroy(&T);
	ck_assert_uint_gt(total, 0);
	for (uint64_t n = 1; n <= total + 1; n++) {
		int r;

		up(128 * MiB, FBS, 1 * MiB, true);
		pc_setup(&ref);
		dev_fault_crash_after(T.fault, n);
		r = pc_do(op, img);
		fs_testvol_abandon(&T);
		ck_assert_int_eq(dev_fault_power_cycle(T.fault, n % 3 == 0 ? 0 : n), 0);
		dev_fault_crash_after(T.fault, 0);
		ck_assert_msg(fs_testvol_mount(&T) == 0, "mount after the cut at %" PRIu64, n);
		pc_verify(op, &ref, n, r == 0);
		clean("after the cut");
		fs_testvol_destroy(&T);
	}
	printf("power cut at each of %" PRIu64 " writes of op %d: consistent\n", total, (int)op);
}

START_TEST(test_powercut_snapshot) { pc_run(PC_SNAP); }
END_TEST
START_TEST(test_powercut_clone) { pc_run(PC_CLONE); }
END_TEST
START_TEST(test_powercut_delete) { pc_run(PC_DELETE); }
END_TEST
START_TEST(test_powercut_revert) { pc_run(PC_REVERT); }
END_TEST

static Suite *snapshot_suite(void)
{
	Suite *s = suite_create("snapshot");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_snap_revert);
	tcase_add_test(tc, test_snap_chain);
	tcase_add_test(tc, test_clone_both_sides);
	tcase_add_test(tc, test_clone_sparse_empty);
	tcase_add_test(tc, test_delete_orders);
	tcase_add_test(tc, test_copy_range);
	tcase_add_test(tc, test_snap_rules);
	tcase_add_test(tc, test_snap_list);
	tcase_add_test(tc, test_snap_saturated);
	tcase_add_test(tc, test_snap_sparse_cost);
	tcase_add_test(tc, test_cow_random_512);
	tcase_add_test(tc, test_cow_random_4096);
	suite_add_tcase(s, tc);
	tc = tcase_create("powercut");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_powercut_snapshot);
	tcase_add_test(tc, test_powercut_clone);
	tcase_add_test(tc, test_powercut_delete);
	tcase_add_test(tc, test_powercut_revert);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(snapshot_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
