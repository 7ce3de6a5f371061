/*
 * Self-fencing: a host whose lease has lapsed writes nothing.
 *
 * The test volume's lockd runs on an injected clock with no heartbeat
 * thread, so moving that clock past the fence time is exactly "this host
 * was frozen (SIGSTOP, a VM pause) for longer than its lease". After that,
 * data writes and metadata commits must fail with EIO before anything is
 * submitted, and the bytes they carried must not be on the disk after a
 * remount. Before the data path checked the lease, the write went through
 * (found by tests/integration/test_cluster_failover.sh: a thawed host's
 * writes landed in an image another host had taken over).
 *
 * Run on both compare-and-write backends (_i = 0 LOCAL, 1 PAXOS): with
 * PAXOS the lapsed host's lock and slot changes go through Disk Paxos,
 * whose own lease check must refuse them too.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_testvol.h"
#include "lunfs/fs.h"

START_TEST(test_lapsed_lease_writes_nothing)
{
	struct fs_testvol_opts o = { .size = 128ull << 20, .max_hosts = 2,
				     .caw = _i == 1 ? LUNFS_CAW_PAXOS : LUNFS_CAW_LOCAL };
	struct lunfs_cred cr = { .umask = 022 };
	struct fs_testvol t;
	struct lunfs_attr a;
	struct lunfs_fh *fh;
	static uint8_t buf[65536];
	ssize_t n;

	memset(&t, 0, sizeof(t));
	ck_assert_int_eq(fs_testvol_create(&o, &t), 0);
	ck_assert_int_eq(fs_testvol_mount(&t), 0);
	memset(buf, 0x11, sizeof(buf));
	ck_assert_int_eq(fsop_create(t.v, &cr, vol_root_ino(t.v), "img", S_IFREG | 0644, O_RDWR, &a, &fh), 0);
	ck_assert_int_eq(fsop_write(t.v, fh, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	ck_assert_int_eq(fsop_fsync(t.v, a.ino, false), 0);

	/* Frozen for a minute: far past any fence time. */
	__atomic_add_fetch(&t.clock_ns, 60ull * 1000000000ull, __ATOMIC_SEQ_CST);

	memset(buf, 0x22, sizeof(buf));
	n = fsop_write(t.v, fh, buf, sizeof(buf), 0);          /* overwrite in place */
	ck_assert_int_eq(n, -EIO);
	n = fsop_write(t.v, fh, buf, sizeof(buf), 1u << 20);   /* allocating write */
	ck_assert_int_eq(n, -EIO);
	ck_assert_int_eq(fsop_mkdir(t.v, &cr, vol_root_ino(t.v), "d", 0755, &a) < 0, 1);
	(void)fsop_release(t.v, fh);

	/* Nothing of it reached the disk. */
	fs_testvol_abandon(&t);
	ck_assert_int_eq(fs_testvol_mount(&t), 0);
	ck_assert_int_eq(fsop_lookup(t.v, vol_root_ino(t.v), "d", &a), -ENOENT);
	ck_assert_int_eq(fsop_lookup(t.v, vol_root_ino(t.v), "img", &a), 0);
	ck_assert_uint_eq(a.size, sizeof(buf));
	ck_assert_int_eq(fsop_open(t.v, a.ino, O_RDONLY, &fh), 0);
	ck_assert_int_eq(fsop_read(t.v, fh, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++) {
		ck_assert_uint_eq(buf[i], 0x11);
	}
	ck_assert_int_eq(fsop_release(t.v, fh), 0);
	fsop_forget(t.v, a.ino, 1);
	fs_testvol_destroy(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fence");
	TCase *tc = tcase_create("lease");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_lapsed_lease_writes_nothing, 0, 2);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
