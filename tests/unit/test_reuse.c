/*
 * A file block freed by a transaction that has not committed must not be
 * handed to another file before that commit.
 *
 * File A is written and fsynced, and a filler file takes every other free
 * block. Then A is truncated to 0 (its block is freed in the running
 * transaction) and file B is written: the only block it could get is A's
 * (data goes to the disk before B's map entry commits). Power is cut
 * with no commit in between, keeping a random subset of the unflushed
 * writes (so B's data write may well survive while the journal commit does
 * not). After replay, A's truncate never happened, so A must read its own
 * bytes: never B's. Before the allocator kept such blocks back, some seeds
 * showed A holding B's data.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_testvol.h"
#include "lunfs/fs.h"

#define BLK (64u * 1024u)

static void write_file(struct lunfs_vol *v, const char *name, uint8_t byte, bool sync,
		       uint64_t *ino)
{
	struct lunfs_cred cr = { .umask = 022 };
	struct lunfs_attr a;
	struct lunfs_fh *fh;
	static uint8_t buf[BLK];

	memset(buf, byte, sizeof(buf));
	ck_assert_int_eq(fsop_create(v, &cr, vol_root_ino(v), name, S_IFREG | 0644, O_RDWR, &a, &fh), 0);
	ck_assert_int_eq(fsop_write(v, fh, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	if (sync) {
		ck_assert_int_eq(fsop_fsync(v, a.ino, false), 0);
	}
	ck_assert_int_eq(fsop_release(v, fh), 0);
	*ino = a.ino;
}

/* Write a file until the volume is full, and make that durable. */
static void fill_volume(struct lunfs_vol *v)
{
	struct lunfs_cred cr = { .umask = 022 };
	struct lunfs_attr a;
	struct lunfs_fh *fh;
	static uint8_t buf[1u << 20];
	uint64_t off = 0;
	ssize_t n;

	memset(buf, 0xCC, sizeof(buf));
	ck_assert_int_eq(fsop_create(v, &cr, vol_root_ino(v), "filler", S_IFREG | 0644, O_RDWR, &a, &fh), 0);
	while ((n = fsop_write(v, fh, buf, sizeof(buf), off)) > 0) {
		off += (uint64_t)n;
	}
	ck_assert_int_eq(n, -ENOSPC);
	ck_assert_int_eq(fsop_fsync(v, a.ino, false), 0);
	ck_assert_int_eq(fsop_release(v, fh), 0);
	fsop_forget(v, a.ino, 1);
}

START_TEST(test_freed_block_not_reused_before_commit)
{
	/* A small file block, so the volume has few blocks and B's
	 * allocation lands near A's freed one. */
	struct fs_testvol_opts o = { .size = 64ull << 20, .fault = true, .max_hosts = 2,
				     .file_block_size = BLK };
	int seen_b_data = 0;

	for (uint64_t seed = 1; seed <= 40; seed++) {
		struct fs_testvol t;
		struct lunfs_setattr sa = { .valid = LUNFS_SET_SIZE, .size = 0 };
		struct lunfs_attr a;
		struct lunfs_fh *fh;
		static uint8_t buf[BLK];
		uint64_t ino_a, ino_b;
		ssize_t n;

		memset(&t, 0, sizeof(t));
		ck_assert_int_eq(fs_testvol_create(&o, &t), 0);
		ck_assert_int_eq(fs_testvol_mount(&t), 0);
		write_file(t.v, "a", 0xAA, true, &ino_a);
		fill_volume(t.v);
		ck_assert_int_eq(fsop_setattr(t.v, ino_a, &sa, &a), 0);
		write_file(t.v, "b", 0xBB, false, &ino_b);
		fsop_forget(t.v, ino_a, 1);
		fsop_forget(t.v, ino_b, 1);

		/* The machine dies now: nothing more reaches the disk (not even
		 * the teardown's writes), then power comes back. */
		dev_fault_crash_after(t.fault, 1);
		fs_testvol_abandon(&t);
		ck_assert_int_eq(dev_fault_power_cycle(t.fault, seed), 0);
		ck_assert_int_eq(fs_testvol_mount(&t), 0);

		ck_assert_int_eq(fsop_lookup(t.v, vol_root_ino(t.v), "a", &a), 0);
		ck_assert_int_eq(fsop_open(t.v, a.ino, O_RDONLY, &fh), 0);
		n = fsop_read(t.v, fh, buf, sizeof(buf), 0);
		ck_assert(n == 0 || n == (ssize_t)sizeof(buf));
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == 0xBB) {
				seen_b_data++;
			}
			ck_assert_msg(buf[i] == 0xAA, "seed %llu: a[%zd] = %#x", (unsigned long long)seed,
				      i, buf[i]);
		}
		ck_assert_int_eq(fsop_release(t.v, fh), 0);
		fsop_forget(t.v, a.ino, 1);
		fs_testvol_destroy(&t);
	}
	ck_assert_int_eq(seen_b_data, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("reuse");
	TCase *tc = tcase_create("crash");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_freed_block_not_reused_before_commit);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
