/*
 * Snapshots and clones across hosts (fs/fsops_snap.c, docs/DESIGN.md
 * "Snapshots and clones", the cross-host refcount rule). Two "hosts"
 * (fs_testhosts.h) are two vol_mounts of one image file on /dev/shm, each
 * with its own lockd threads on the real clock and short timing (hb 100
 * ms, io 300 ms, dead 1000 ms): they share nothing but the disk.
 *   - a clone made on A reads the same on B;
 *   - B's snapshot of an image that A has open for write: EBUSY; once A
 *     has closed it, B's snapshot has every byte A wrote;
 *   - refcounts of clusters another host holds: B snapshots and clones
 *     files whose blocks lie in A's clusters (A hands them over), then A
 *     writes the image (copy-on-write: the reference it drops lies in a
 *     cluster B took), B deletes, A reverts; the checker is clean after.
 * No timing assertions: the hosts wait for each other within generous
 * bounds.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../fs/fs_internal.h"
#include "fs_testhosts.h"
#include "lunfs/layout.h"
#include "lunfs/lock.h"
#include "lunfs/lockd.h"
#include "lunfs/crc32c.h"
#include "lunfs/dev.h"
#include "lunfs/fs.h"
#include "lunfs/volume.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)

static char img_path[FS_TESTHOSTS_PATH_LEN];
static const struct lunfs_cred CR = { .uid = 0, .gid = 0, .umask = 022 };

static void setup(void)
{
	fs_testhosts_img_create(img_path, "snaphosts", LUNFS_CAW_LOCAL);
}

static void teardown(void)
{
	fs_testhosts_img_remove(img_path);
}

static uint64_t lookup(struct fs_testhost *h, uint64_t dir, const char *name)
{
	struct lunfs_attr a;

	ck_assert_int_eq(fsop_lookup(h->v, dir, name, &a), 0);
	fsop_forget(h->v, a.ino, 1);
	return a.ino;
}

static void put(struct fs_testhost *h, uint64_t ino, uint32_t seed, uint64_t off, uint64_t len)
{
	struct lunfs_fh *fh;
	uint8_t *buf = malloc(len);

	ck_assert_ptr_nonnull(buf);
	for (uint64_t i = 0; i < len; i++) {
		buf[i] = (uint8_t)((off + i) * 131u + seed * 7u + 1u);
	}
	ck_assert_int_eq(fsop_open(h->v, ino, O_RDWR, &fh), 0);
	ck_assert_int_eq(fsop_write(h->v, fh, buf, len, off), (ssize_t)len);
	ck_assert_int_eq(fsop_release(h->v, fh), 0);
	free(buf);
}

/* The mode in which h holds the lock of the FILE cluster of ino's block
 * lblk (LUNFS_LOCK_FREE: it does not). */
static uint8_t cluster_held(struct fs_testhost *h, uint64_t ino, uint64_t lblk)
{
	const struct lunfs_super *sb = vol_super(h->v);
	struct lunfs_map_entry e;
	struct inode_mem *im;
	uint64_t run, ci;

	ck_assert_int_eq(inode_get(h->v, ino, &im), 0);
	pthread_rwlock_rdlock(&im->lock);
	ck_assert_int_eq(bmap_lookup(h->v, im, lblk, &e, &run), 0);
	pthread_rwlock_unlock(&im->lock);
	inode_put(h->v, im);
	ck_assert_uint_ne(e.addr, 0);
	ci = (e.addr - sb->regions[LUNFS_REGION_DATA].offset) / sb->cluster_size;
	return lockd_held(h->v->ld, layout_cluster_lock_addr(sb, ci));
}

static uint32_t sum(struct fs_testhost *h, uint64_t ino)
{
	struct lunfs_attr a;
	struct lunfs_fh *fh;
	uint8_t *buf = malloc(1 * MiB);
	uint32_t c;

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(fsop_open(h->v, ino, O_RDONLY, &fh), 0);
	ck_assert_int_eq(fsop_getattr(h->v, ino, &a), 0);
	c = crc32c(0, &a.size, sizeof(a.size));
	for (uint64_t off = 0; off < a.size; off += 1 * MiB) {
		uint64_t n = a.size - off < 1 * MiB ? a.size - off : 1 * MiB;

		ck_assert_int_eq(fsop_read(h->v, fh, buf, n, off), (ssize_t)n);
		c = crc32c(c, buf, n);
	}
	ck_assert_int_eq(fsop_release(h->v, fh), 0);
	free(buf);
	return c;
}

START_TEST(test_hosts_clone_read_elsewhere)
{
	struct fs_testhost a, b;
	struct lunfs_attr at;
	struct lunfs_fh *fh = NULL;
	uint64_t f, g;
	uint32_t cf;

	fs_testhosts_mount(&a, img_path, "a");
	fs_testhosts_mount(&b, img_path, "b");
	ck_assert_int_eq(fsop_create(a.v, &CR, vol_root_ino(a.v), "f", 0644, O_RDWR, &at, &fh), 0);
	ck_assert_int_eq(fsop_release(a.v, fh), 0);
	f = at.ino;
	fsop_forget(a.v, f, 1);
	put(&a, f, 1, 0, 3 * MiB + 100);
	cf = sum(&a, f);
	ck_assert_int_eq(fsop_clone(a.v, &CR, f, vol_root_ino(a.v), "g", &at), 0);
	g = at.ino;
	/* B reads the clone: it asks A for the directory and the file. */
	ck_assert_uint_eq(lookup(&b, vol_root_ino(b.v), "g"), g);
	ck_assert_uint_eq(sum(&b, g), cf);
	/* copy_file_range from a file B has open: nothing can be shared, so
	 * A is told to copy bytes (EOPNOTSUPP), and nothing changed. */
	{
		struct lunfs_fh *rb = NULL, *ra = NULL, *wa = NULL;
		struct lunfs_attr h;

		ck_assert_int_eq(fsop_open(b.v, g, O_RDONLY, &rb), 0);
		ck_assert_int_eq(fsop_create(a.v, &CR, vol_root_ino(a.v), "h", 0644, O_RDWR, &h, &wa), 0);
		fsop_forget(a.v, h.ino, 1);
		ck_assert_int_eq(fsop_open(a.v, g, O_RDONLY, &ra), 0);
		ck_assert_int_eq(fsop_copy_range(a.v, ra, 0, wa, 0, 1 * MiB), -EOPNOTSUPP);
		ck_assert_int_eq(fsop_getattr(a.v, h.ino, &h), 0);
		ck_assert_uint_eq(h.size, 0);
		ck_assert_int_eq(fsop_release(a.v, ra), 0);
		ck_assert_int_eq(fsop_release(a.v, wa), 0);
		ck_assert_int_eq(fsop_release(b.v, rb), 0);
	}
	/* B writes its side; A's original is untouched. */
	put(&b, g, 2, 10, 1000);
	ck_assert_uint_eq(sum(&a, f), cf);
	ck_assert_uint_ne(sum(&a, g), cf);
	fs_testhosts_unmount(&b);
	fs_testhosts_unmount(&a);
	fs_testhosts_check_clean(img_path, "clone read elsewhere");
}
END_TEST

START_TEST(test_hosts_snapshot_busy_and_refcounts)
{
	struct fs_testhost a, b;
	struct lunfs_attr at;
	struct lunfs_fh *fa = NULL;
	uint64_t img, s1;
	uint32_t c1, c2;

	fs_testhosts_mount(&a, img_path, "a");
	fs_testhosts_mount(&b, img_path, "b");
	ck_assert_int_eq(fsop_create(a.v, &CR, vol_root_ino(a.v), "vm.img", 0644, O_RDWR, &at, &fa), 0);
	img = at.ino;
	fsop_forget(a.v, img, 1);
	/* A runs the VM: the image is open for write there. */
	{
		uint8_t buf[4096];

		memset(buf, 0x42, sizeof(buf));
		for (uint64_t off = 0; off < 2 * MiB; off += sizeof(buf)) {
			ck_assert_int_eq(fsop_write(a.v, fa, buf, sizeof(buf), off), (ssize_t)sizeof(buf));
		}
	}
	ck_assert_uint_eq(lookup(&b, vol_root_ino(b.v), "vm.img"), img);
	ck_assert_int_eq(fsop_snapshot_create(b.v, img, "from-b", NULL), -EBUSY);
	/* On A, the host running it, a snapshot works. */
	ck_assert_int_eq(fsop_snapshot_create(a.v, img, "on-a", NULL), 0);
	ck_assert_int_eq(fsop_release(a.v, fa), 0);
	c1 = sum(&a, img);
	ck_assert_uint_eq(cluster_held(&a, img, 0), LUNFS_LOCK_EXCLUSIVE);
	/* A closed it: B may snapshot now; the blocks' refcounts lie in
	 * clusters A holds, which A hands over. */
	ck_assert_int_eq(fsop_snapshot_create(b.v, img, "from-b", &at), 0);
	ck_assert_uint_eq(cluster_held(&b, img, 0), LUNFS_LOCK_EXCLUSIVE);
	ck_assert_uint_eq(cluster_held(&a, img, 0), LUNFS_LOCK_FREE);
	s1 = at.ino;
	ck_assert_uint_eq(sum(&b, s1), c1);
	ck_assert_int_eq(fsop_clone(b.v, &CR, img, vol_root_ino(b.v), "copy.img", &at), 0);
	/* A writes again: copy-on-write drops references in clusters B
	 * took. */
	put(&a, img, 3, 100, 3 * FS_TESTHOSTS_FBS);
	ck_assert_uint_eq(cluster_held(&a, s1, 0), LUNFS_LOCK_EXCLUSIVE);
	ck_assert_uint_eq(cluster_held(&b, s1, 0), LUNFS_LOCK_FREE);
	c2 = sum(&a, img);
	ck_assert_uint_ne(c2, c1);
	ck_assert_uint_eq(sum(&a, s1), c1);
	/* B deletes A's snapshot, A reverts to B's. */
	ck_assert_int_eq(fsop_snapshot_delete(b.v, img, "on-a", NULL, NULL), 0);
	ck_assert_int_eq(fsop_snapshot_revert(a.v, img, "from-b", NULL), 0);
	ck_assert_uint_eq(sum(&a, img), c1);
	ck_assert_uint_eq(sum(&b, img), c1);
	ck_assert_int_eq(fsop_syncfs(a.v), 0);
	ck_assert_int_eq(fsop_syncfs(b.v), 0);
	fs_testhosts_unmount(&b);
	fs_testhosts_unmount(&a);
	fs_testhosts_check_clean(img_path, "snapshot across hosts");
}
END_TEST

static Suite *hosts_suite(void)
{
	Suite *s = suite_create("snapshot_hosts");
	TCase *tc = tcase_create("hosts");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_hosts_clone_read_elsewhere);
	tcase_add_test(tc, test_hosts_snapshot_busy_and_refcounts);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hosts_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
