/*
 * Several hosts on one volume, for the multi-host unit tests: an image
 * file on /dev/shm, and each "host" its own vol_mount over its own open
 * of that file, with its own lockd, heartbeat and monitor threads on the
 * real clock and short timing (hb 100 ms, io 300 ms, dead 1000 ms), so
 * that the hosts share nothing but the disk, as separate machines would.
 * Each host's device sits under a fault layer so that a test can "crash"
 * it: every later I/O fails, and its teardown writes nothing.
 *
 * Linked into every unit test binary. The functions assert (Check), so
 * only tests and their fixtures call them.
 */
#ifndef LUNFS_TESTS_FS_TESTHOSTS_H
#define LUNFS_TESTS_FS_TESTHOSTS_H

#include <stddef.h>

#include "../../fs/fs_internal.h"
#include "lunfs/lockd.h"

#define FS_TESTHOSTS_VOL_SIZE (256ull << 20)
#define FS_TESTHOSTS_FBS (64u * 1024u)      /* the volume's file block size */
#define FS_TESTHOSTS_PATH_LEN 64

struct fs_testhost {
	struct lunfs_dev *dev;       /* the fault layer over our own open of the image */
	struct lunfs_fault *fault;
	struct lunfs_vol *v;         /* NULL while unmounted */
	char name[16];
};

/* A fresh volume in a new image file "/dev/shm/lunfs-test-TAG-XXXXXX",
 * labelled TAG, with compare-and-write backend caw; its name goes to
 * path (FS_TESTHOSTS_PATH_LEN bytes). */
void fs_testhosts_img_create(char *path, const char *tag, enum lunfs_caw_backend caw);
/* Remove the image (if path names one) and forget its name. */
void fs_testhosts_img_remove(char *path);

/* Mount the image as host `name`. */
void fs_testhosts_mount(struct fs_testhost *h, const char *img, const char *name);
/* Clean unmount (asserted); nothing to do for what is not mounted. */
void fs_testhosts_unmount(struct fs_testhost *h);
/* Power off: from now on nothing this host does reaches the disk, then
 * its memory is torn down. Its slot stops being renewed. */
void fs_testhosts_crash(struct fs_testhost *h);
/* Test teardown that never asserts (a failed test still cleans up). */
void fs_testhosts_drop(struct fs_testhost *h);

/* With every host unmounted: the checker finds the image clean, and no
 * journal is left to replay. */
void fs_testhosts_check_clean(const char *img, const char *ctx);

#endif
