/*
 * A failing device surfaces EIO and never corrupts the volume.
 *
 * For each kind of I/O (read, write, flush) and for many positions N in a
 * metadata-and-data workload, the fault layer fails the Nth such I/O and
 * every one after it (a disk that went bad and stays bad). Then:
 *   1. every fsop either succeeds or returns -EIO (or -ENOENT/-EEXIST that
 *      follow from an earlier failed step): nothing crashes, nothing hangs,
 *      and at least one -EIO reaches the caller once the fault is armed and
 *      the workload still touches the disk;
 *   2. the fault is cleared, the mount is torn down without writing (as a
 *      host does when its disk path died), the volume is mounted again
 *      (journal replay), unmounted cleanly, and the offline checker
 *      (check_run, fs/check.c) must find no problem at all.
 * Caches are dropped (remount) before arming, so reads really reach the
 * device. EIO_N=n runs only fault position n; EIO_DEBUG=1 names every
 * operation that saw EIO (to reproduce a failure).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_testcheck.h"
#include "fs_testvol.h"
#include "lunfs/fs.h"

struct eio_run {
	int eio_seen;
	int other_err;
	char msg[256];
};

static void note_err(struct eio_run *r, const char *what, int err)
{
	if (err >= 0) {
		return;
	}
	if (err == -EIO) {
		r->eio_seen++;
		if (getenv("EIO_DEBUG") != NULL) {
			fprintf(stderr, "  EIO from %s\n", what);
		}
		return;
	}
	/* Once a step failed with EIO, later steps may find a name missing
	 * or present; anything else is a bug. */
	if (err == -ENOENT || err == -EEXIST || err == -ENOTEMPTY) {
		return;
	}
	r->other_err++;
	snprintf(r->msg, sizeof(r->msg), "%s returned %d", what, err);
}

/* Files and directories, data written and read back, renames, unlinks,
 * xattrs, truncates and fsyncs. Returns nothing: errors are recorded. */
static void eio_workload(struct fs_testvol *t, struct eio_run *r, int round)
{
	struct lunfs_vol *v = t->v;
	struct lunfs_cred cr = { .uid = 0, .gid = 0, .umask = 022 };
	uint64_t root = vol_root_ino(v);
	char name[64], name2[64];
	static char buf[256 * 1024];
	struct lunfs_attr a, d;
	int err;

	memset(buf, 0x30 + round, sizeof(buf));
	snprintf(name, sizeof(name), "dir%d", round);
	err = fsop_mkdir(v, &cr, root, name, 0755, &d);
	note_err(r, "mkdir", err);
	if (err < 0) {
		err = fsop_lookup(v, root, name, &d);
		note_err(r, "lookup dir", err);
		if (err < 0) {
			return;
		}
	}
	for (int i = 0; i < 6; i++) {
		struct lunfs_fh *fh = NULL;
		ssize_t n;

		snprintf(name, sizeof(name), "f%d", i);
		err = fsop_create(v, &cr, d.ino, name, S_IFREG | 0644, O_RDWR, &a, &fh);
		note_err(r, "create", err);
		if (err < 0) {
			continue;
		}
		n = fsop_write(v, fh, buf, sizeof(buf) - (size_t)i * 1000, (uint64_t)i * 3 << 20);
		note_err(r, "write", n < 0 ? (int)n : 0);
		n = fsop_read(v, fh, buf, 4096, (uint64_t)i * 3 << 20);
		note_err(r, "read", n < 0 ? (int)n : 0);
		note_err(r, "setxattr", fsop_setxattr(v, a.ino, "user.k", "value", 5, 0));
		if (i % 2 == 0) {
			note_err(r, "fsync", fsop_fsync(v, a.ino, false));
		}
		note_err(r, "release", fsop_release(v, fh));
		fsop_forget(v, a.ino, 1);
	}
	snprintf(name, sizeof(name), "f1");
	snprintf(name2, sizeof(name2), "g1");
	note_err(r, "rename", fsop_rename(v, d.ino, name, d.ino, name2, 0));
	note_err(r, "unlink", fsop_unlink(v, d.ino, "f2"));
	if (fsop_lookup(v, d.ino, "f3", &a) == 0) {
		struct lunfs_setattr sa = { .valid = LUNFS_SET_SIZE, .size = 12345 };

		note_err(r, "truncate", fsop_setattr(v, a.ino, &sa, &a));
		fsop_forget(v, a.ino, 1);
	}
	note_err(r, "syncfs", fsop_syncfs(v));
	fsop_forget(v, d.ino, 1);
}

static const unsigned eio_ops[] = { LUNFS_FAULT_READ, LUNFS_FAULT_WRITE, LUNFS_FAULT_FLUSH };
static const char *const eio_names[] = { "read", "write", "flush" };

START_TEST(test_eio_then_clean)
{
	unsigned op = eio_ops[_i];
	struct fs_testvol_opts o = { .size = 256ull << 20, .fault = true, .max_hosts = 2 };
	int runs = 0, eio_runs = 0;

	/* N from 1 to 60, then sparser: the workload issues a few hundred I/Os
	 * of each kind after the remount. */
	uint64_t only = getenv("EIO_N") != NULL ? strtoull(getenv("EIO_N"), NULL, 0) : 0;

	for (uint64_t n = only ? only : 1; n <= (only ? only : 400); n += (n < 60 ? 1 : 17)) {
		struct fs_testvol t;
		struct eio_run r;
		char ctx[96];
		int err;

		memset(&t, 0, sizeof(t));
		memset(&r, 0, sizeof(r));
		snprintf(ctx, sizeof(ctx), "%s fault at %" PRIu64, eio_names[_i], n);
		ck_assert_int_eq(fs_testvol_create(&o, &t), 0);
		ck_assert_int_eq(fs_testvol_mount(&t), 0);
		eio_workload(&t, &r, 0);
		ck_assert_msg(r.eio_seen == 0 && r.other_err == 0, "%s: clean round failed: %s", ctx, r.msg);
		ck_assert_int_eq(fs_testvol_unmount(&t), 0);
		ck_assert_int_eq(fs_testvol_mount(&t), 0);

		dev_fault_fail_nth(t.fault, op, n, EIO, true);
		eio_workload(&t, &r, 1);
		eio_workload(&t, &r, 2);
		dev_fault_fail_nth(t.fault, op, 0, 0, false);
		ck_assert_msg(r.other_err == 0, "%s: %s", ctx, r.msg);
		runs++;
		if (r.eio_seen > 0) {
			eio_runs++;
		}

		/* The host whose disk failed goes away without writing more. */
		fs_testvol_abandon(&t);
		err = fs_testvol_mount(&t);
		ck_assert_msg(err == 0, "%s: remount %d", ctx, err);
		ck_assert_int_eq(fs_testvol_unmount(&t), 0);
		fs_testcheck_clean(t.dev, ctx, NULL);
		fs_testvol_destroy(&t);
	}
	/* Every armed fault inside the workload's I/O must have reached the
	 * caller; the sparse tail of N may lie beyond what it issues. */
	ck_assert_msg(eio_runs > 0, "%s: no EIO ever surfaced", eio_names[_i]);
	fprintf(stderr, "eio %s: %d runs, %d surfaced EIO\n", eio_names[_i], runs, eio_runs);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("eio");
	TCase *tc = tcase_create("faults");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_eio_then_clean, 0, 3);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
