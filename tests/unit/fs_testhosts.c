/*
 * fs_testhosts: hosts on one image file (fs_testhosts.h). Every host
 * opens the image itself, as another machine would open the shared LUN;
 * the only state they share is on the disk.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_testcheck.h"
#include "fs_testhosts.h"
#include "lunfs/dev.h"
#include "lunfs/volume.h"

void fs_testhosts_img_create(char *path, const char *tag, enum lunfs_caw_backend caw)
{
	struct lunfs_vol_create_opts co;
	struct lunfs_dev *d = NULL;
	int fd;

	snprintf(path, FS_TESTHOSTS_PATH_LEN, "/dev/shm/lunfs-test-%s-XXXXXX", tag);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)FS_TESTHOSTS_VOL_SIZE), 0);
	close(fd);
	ck_assert_int_eq(dev_file_open(path, NULL, &d), 0);
	memset(&co, 0, sizeof(co));
	co.layout.file_block_size = FS_TESTHOSTS_FBS;
	co.layout.cluster_size = 4u << 20;
	co.layout.max_hosts = 4;
	co.layout.journal_size = 2u << 20;
	co.layout.hb_interval_ms = 100;
	co.layout.io_deadline_ms = 300;
	co.layout.dead_timeout_ms = 1000;
	co.label = tag;
	co.caw = caw;
	ck_assert_int_eq(vol_create(d, &co, NULL, NULL, NULL), 0);
	dev_close(d);
}

void fs_testhosts_img_remove(char *path)
{
	if (path[0] != '\0') {
		unlink(path);
		path[0] = '\0';
	}
}

void fs_testhosts_mount(struct fs_testhost *h, const char *img, const char *name)
{
	struct lunfs_mount_opts mo;
	struct lunfs_dev *d = NULL;
	const char *why = NULL;
	int err;

	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", name);
	ck_assert_int_eq(dev_file_open(img, NULL, &d), 0);
	ck_assert_int_eq(dev_fault_open(d, &h->dev, &h->fault), 0);
	memset(&mo, 0, sizeof(mo));
	mo.host_name = h->name;
	mo.why = &why;
	err = vol_mount(h->dev, &mo, &h->v);
	ck_assert_msg(err == 0, "mount %s: %d (%s)", name, err, why ? why : "?");
}

void fs_testhosts_unmount(struct fs_testhost *h)
{
	if (h->v != NULL) {
		ck_assert_int_eq(vol_unmount(h->v), 0);
		h->v = NULL;
	}
	if (h->dev != NULL) {
		dev_close(h->dev);
		h->dev = NULL;
	}
}

void fs_testhosts_crash(struct fs_testhost *h)
{
	dev_fault_fail_nth(h->fault, LUNFS_FAULT_ALL, 1, -EIO, true);
	if (h->v != NULL) {
		(void)vol_unmount(h->v);
		h->v = NULL;
	}
	dev_close(h->dev);
	h->dev = NULL;
}

void fs_testhosts_drop(struct fs_testhost *h)
{
	if (h->v != NULL) {
		(void)vol_unmount(h->v);
		h->v = NULL;
	}
	if (h->dev != NULL) {
		dev_close(h->dev);
		h->dev = NULL;
	}
}

void fs_testhosts_check_clean(const char *img, const char *ctx)
{
	struct check_result res;
	struct lunfs_dev *d = NULL;

	ck_assert_int_eq(dev_file_open(img, NULL, &d), 0);
	/* The device stays open if the check fails: the test process ends. */
	fs_testcheck_clean(d, ctx, &res);
	dev_close(d);
	ck_assert_int_eq(res.journals_pending, 0);
}
