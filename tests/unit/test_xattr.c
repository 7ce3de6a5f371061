/*
 * Unit tests of extended attributes and symlink targets (fs/xattr.c) on
 * the memory device, through a real volume (vol_create + vol_mount):
 * set/get/list/remove, XATTR_CREATE/XATTR_REPLACE, all four namespaces and
 * unknown ones, name and value limits, size queries and -ERANGE, chains
 * over several blocks and values moving between blocks, removal and
 * xattr_free returning every META unit, a corrupt block giving -EUCLEAN;
 * symlink targets inline and in blocks at every boundary length.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "../../fs/fs_internal.h"
#include "lunfs/cluster.h"
#include "lunfs/dev.h"
#include "lunfs/inode.h"
#include "lunfs/volume.h"

#define MiB (1024ull * 1024ull)
#define DEV_SIZE (1024ull * MiB)

struct xt {
	struct lunfs_dev *dev;
	struct lunfs_vol *v;
	struct inode_mem *im;
	uint64_t ino;
};

static struct xt T;

static void xt_mount(struct xt *t)
{
	struct lunfs_mount_opts mo;
	const char *why = NULL;
	int r;

	memset(&mo, 0, sizeof(mo));
	mo.host_name = "xattrtest";
	mo.commit_interval_ms = 60000;
	mo.why = &why;
	r = vol_mount(t->dev, &mo, &t->v);
	ck_assert_msg(r == 0, "vol_mount: %d %s", r, why != NULL ? why : "");
}

static void xt_unmount(struct xt *t)
{
	if (t->im != NULL) {
		inode_put(t->v, t->im);
		t->im = NULL;
	}
	if (t->v != NULL) {
		ck_assert_int_eq(vol_unmount(t->v), 0);
		t->v = NULL;
	}
}

static struct inode_mem *xt_inode_new(struct xt *t, uint32_t mode)
{
	struct inode_mem *im = NULL;
	struct jnl_handle *h;
	int r;

	pthread_mutex_lock(&t->v->meta_lock);
	ck_assert_int_eq(jnl_start(t->v->jnl, 64, &h), 0);
	r = inode_alloc(t->v, h, mode, 0, 0, vol_root_ino(t->v), &im);
	ck_assert_int_eq(jnl_stop(h, false), 0);
	pthread_mutex_unlock(&t->v->meta_lock);
	ck_assert_int_eq(r, 0);
	return im;
}

static void xt_setup(void)
{
	struct lunfs_vol_create_opts co;
	const char *why = NULL;
	int r;

	memset(&T, 0, sizeof(T));
	ck_assert_int_eq(dev_mem_open(DEV_SIZE, 512, &T.dev), 0);
	memset(&co, 0, sizeof(co));
	co.why = &why;
	r = vol_create(T.dev, &co, NULL, NULL, NULL);
	ck_assert_msg(r == 0, "vol_create: %d %s", r, why != NULL ? why : "");
	xt_mount(&T);
	T.im = xt_inode_new(&T, S_IFREG | 0644);
	T.ino = T.im->ino;
}

static void xt_teardown(void)
{
	if (T.v != NULL) {
		xt_unmount(&T);
	}
	if (T.dev != NULL) {
		dev_close(T.dev);
		T.dev = NULL;
	}
}

static uint64_t meta_used(struct lunfs_vol *v)
{
	uint64_t used = 0;

	for (uint64_t c = 0; c < v->sb.cluster_count; c++) {
		struct lunfs_cluster_hdr ch;
		struct mc_entry *e;
		uint64_t addr = layout_cluster_addr(&v->sb, c);

		ck_assert_int_eq(mc_get(v->mc, addr, LUNFS_META_BLOCK_SIZE, 0, &e), 0);
		if (cluster_hdr_decode(&v->codec, e->buf, addr, &ch) == 0 && ch.type == LUNFS_CLUSTER_META) {
			used += ch.units_total - ch.units_free - ch.header_units;
		}
		mc_put(v->mc, e);
	}
	return used;
}

enum xt_op { OP_SET, OP_REMOVE, OP_FREE, OP_SYMLINK };

static int xt_change_im(struct xt *t, struct inode_mem *im, enum xt_op op, const char *name, const void *val,
			size_t len, int flags)
{
	struct jnl_handle *h;
	int r, r2;

	pthread_mutex_lock(&t->v->meta_lock);
	pthread_rwlock_wrlock(&im->lock);
	r = jnl_start(t->v->jnl, xattr_change_credits(im), &h);
	if (r == 0) {
		switch (op) {
		case OP_SET:
			r = xattr_set(t->v, h, im, name, val, len, flags);
			break;
		case OP_REMOVE:
			r = xattr_remove(t->v, h, im, name);
			break;
		case OP_FREE:
			r = xattr_free(t->v, h, im);
			break;
		case OP_SYMLINK:
			r = symlink_set(t->v, h, im, val, len);
			break;
		}
		r2 = jnl_stop(h, false);
		if (r == 0) {
			r = r2;
		}
	}
	pthread_rwlock_unlock(&im->lock);
	pthread_mutex_unlock(&t->v->meta_lock);
	return r;
}

static int xt_set(const char *name, const void *val, size_t len, int flags)
{
	return xt_change_im(&T, T.im, OP_SET, name, val, len, flags);
}

static int xt_remove(const char *name)
{
	return xt_change_im(&T, T.im, OP_REMOVE, name, NULL, 0, 0);
}

static int xt_get(const char *name, void *buf, size_t len)
{
	int r;

	pthread_rwlock_rdlock(&T.im->lock);
	r = xattr_get(T.v, T.im, name, buf, len);
	pthread_rwlock_unlock(&T.im->lock);
	return r;
}

static int xt_list(char *buf, size_t len)
{
	int r;

	pthread_rwlock_rdlock(&T.im->lock);
	r = xattr_list(T.v, T.im, buf, len);
	pthread_rwlock_unlock(&T.im->lock);
	return r;
}

/* Does a "a\0b\0" list contain name? */
static bool list_has(const char *list, size_t len, const char *name)
{
	for (size_t off = 0; off < len; off += strlen(list + off) + 1) {
		if (strcmp(list + off, name) == 0) {
			return true;
		}
	}
	return false;
}

static void fill_value(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++) {
		buf[i] = (uint8_t)(seed * 31u + i * 7u);
	}
}

START_TEST(test_xattr_basic)
{
	char buf[256], list[256];

	ck_assert_int_eq(xt_get("user.a", buf, sizeof(buf)), -ENODATA);
	ck_assert_int_eq(xt_list(list, sizeof(list)), 0);
	ck_assert_int_eq(xt_set("user.a", "hello", 5, 0), 0);
	ck_assert_uint_ne(T.im->di.xattr_blk, 0);
	ck_assert_int_eq(xt_get("user.a", NULL, 0), 5);
	ck_assert_int_eq(xt_get("user.a", buf, sizeof(buf)), 5);
	ck_assert_mem_eq(buf, "hello", 5);
	ck_assert_int_eq(xt_get("user.a", buf, 4), -ERANGE);
	/* Replace with a longer and then an empty value. */
	ck_assert_int_eq(xt_set("user.a", "hello world", 11, 0), 0);
	ck_assert_int_eq(xt_get("user.a", buf, sizeof(buf)), 11);
	ck_assert_mem_eq(buf, "hello world", 11);
	ck_assert_int_eq(xt_set("user.a", "", 0, 0), 0);
	ck_assert_int_eq(xt_get("user.a", buf, sizeof(buf)), 0);
	ck_assert_int_eq(xt_set("user.b", "2", 1, 0), 0);

	ck_assert_int_eq(xt_list(NULL, 0), 14);
	ck_assert_int_eq(xt_list(list, 13), -ERANGE);
	ck_assert_int_eq(xt_list(list, sizeof(list)), 14);
	ck_assert(list_has(list, 14, "user.a"));
	ck_assert(list_has(list, 14, "user.b"));

	ck_assert_int_eq(xt_remove("user.a"), 0);
	ck_assert_int_eq(xt_remove("user.a"), -ENODATA);
	ck_assert_int_eq(xt_get("user.a", buf, sizeof(buf)), -ENODATA);
	ck_assert_int_eq(xt_get("user.b", buf, sizeof(buf)), 1);
	ck_assert_int_eq(xt_remove("user.b"), 0);
	/* The last entry took its block. */
	ck_assert_uint_eq(T.im->di.xattr_blk, 0);
	ck_assert_int_eq(xt_list(NULL, 0), 0);
}
END_TEST

START_TEST(test_xattr_flags)
{
	char buf[16];

	ck_assert_int_eq(xt_set("user.f", "1", 1, XATTR_REPLACE), -ENODATA);
	ck_assert_int_eq(xt_get("user.f", buf, sizeof(buf)), -ENODATA);
	ck_assert_int_eq(xt_set("user.f", "1", 1, XATTR_CREATE), 0);
	ck_assert_int_eq(xt_set("user.f", "2", 1, XATTR_CREATE), -EEXIST);
	ck_assert_int_eq(xt_get("user.f", buf, sizeof(buf)), 1);
	ck_assert_int_eq(buf[0], '1');
	ck_assert_int_eq(xt_set("user.f", "3", 1, XATTR_REPLACE), 0);
	ck_assert_int_eq(xt_get("user.f", buf, sizeof(buf)), 1);
	ck_assert_int_eq(buf[0], '3');
	ck_assert_int_eq(xt_set("user.f", "4", 1, XATTR_CREATE | XATTR_REPLACE), -EINVAL);
	ck_assert_int_eq(xt_set("user.f", "4", 1, 0x40), -EINVAL);
}
END_TEST

START_TEST(test_xattr_namespaces_and_limits)
{
	static const char *names[] = { "user.n", "trusted.n", "security.n", "system.posix_acl_access" };
	char list[512], buf[8], longname[300];
	uint8_t *big;
	int total = 0;

	for (unsigned i = 0; i < 4; i++) {
		ck_assert_int_eq(xt_set(names[i], "v", 1, 0), 0);
		total += (int)strlen(names[i]) + 1;
	}
	/* Same name after the prefix, different namespaces: four entries. */
	for (unsigned i = 0; i < 3; i++) {
		ck_assert_int_eq(xt_get(names[i], buf, sizeof(buf)), 1);
	}
	ck_assert_int_eq(xt_list(list, sizeof(list)), total);
	for (unsigned i = 0; i < 4; i++) {
		ck_assert(list_has(list, (size_t)total, names[i]));
	}
	ck_assert_int_eq(xt_remove("trusted.n"), 0);
	ck_assert_int_eq(xt_get("user.n", buf, sizeof(buf)), 1);
	ck_assert_int_eq(xt_get("trusted.n", buf, sizeof(buf)), -ENODATA);

	ck_assert_int_eq(xt_set("foo.bar", "v", 1, 0), -EOPNOTSUPP);
	ck_assert_int_eq(xt_set("user", "v", 1, 0), -EOPNOTSUPP);
	ck_assert_int_eq(xt_get("osx.x", buf, sizeof(buf)), -EOPNOTSUPP);
	ck_assert_int_eq(xt_set("user.", "v", 1, 0), -EINVAL);
	/* 255 bytes after the prefix fit; 256 do not. */
	memcpy(longname, "user.", 5);
	memset(longname + 5, 'n', 256);
	longname[5 + 256] = '\0';
	ck_assert_int_eq(xt_set(longname, "v", 1, 0), -ERANGE);
	longname[5 + 255] = '\0';
	ck_assert_int_eq(xt_set(longname, "v", 1, 0), 0);
	ck_assert_int_eq(xt_get(longname, buf, sizeof(buf)), 1);

	/* Values: up to 4000 - name length in one block, then ENOSPC;
	 * beyond XATTR_SIZE_MAX, E2BIG. */
	big = malloc(70000);
	ck_assert_ptr_nonnull(big);
	fill_value(big, 70000, 3);
	ck_assert_int_eq(xt_set("user.big", big, 4000 - 3, 0), 0);
	ck_assert_int_eq(xt_set("user.big2", big, 4000 - 4 + 1, 0), -ENOSPC);
	ck_assert_int_eq(xt_set("user.big3", big, 65537, 0), -E2BIG);
	{
		uint8_t *back = malloc(4000);

		ck_assert_ptr_nonnull(back);
		ck_assert_int_eq(xt_get("user.big", back, 4000), 4000 - 3);
		ck_assert_mem_eq(back, big, 4000 - 3);
		free(back);
	}
	free(big);
}
END_TEST

/* Many values of 1000 bytes: a chain of several blocks; values that grow
 * move to another block; removing everything frees every block. */
START_TEST(test_xattr_chain)
{
	enum { N = 40 };
	uint8_t val[3000], back[3000];
	char name[32];
	uint64_t used_before = meta_used(T.v);
	char *list;
	int len;

	for (unsigned i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "user.k%02u", i);
		fill_value(val, 1000, i);
		ck_assert_int_eq(xt_set(name, val, 1000, XATTR_CREATE), 0);
	}
	/* 1016 bytes each, 3 per block: at least 14 blocks. */
	ck_assert_uint_ge(meta_used(T.v) - used_before, N / 3);
	for (unsigned i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "user.k%02u", i);
		fill_value(val, 1000, i);
		ck_assert_int_eq(xt_get(name, back, sizeof(back)), 1000);
		ck_assert_mem_eq(back, val, 1000);
	}
	len = xt_list(NULL, 0);
	ck_assert_int_eq(len, N * 9);
	list = malloc((size_t)len);
	ck_assert_ptr_nonnull(list);
	ck_assert_int_eq(xt_list(list, (size_t)len), len);
	for (unsigned i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "user.k%02u", i);
		ck_assert(list_has(list, (size_t)len, name));
	}
	free(list);

	/* Grow every other value to 3000 bytes: it cannot stay in a block
	 * that holds two other 1000-byte values. */
	for (unsigned i = 0; i < N; i += 2) {
		snprintf(name, sizeof(name), "user.k%02u", i);
		fill_value(val, 3000, 100 + i);
		ck_assert_int_eq(xt_set(name, val, 3000, XATTR_REPLACE), 0);
	}
	for (unsigned i = 0; i < N; i++) {
		size_t vl = i % 2 == 0 ? 3000 : 1000;

		snprintf(name, sizeof(name), "user.k%02u", i);
		fill_value(val, vl, i % 2 == 0 ? 100 + i : i);
		ck_assert_int_eq(xt_get(name, back, sizeof(back)), (int)vl);
		ck_assert_mem_eq(back, val, vl);
	}
	ck_assert_int_eq(xt_list(NULL, 0), N * 9);

	for (unsigned i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "user.k%02u", i);
		ck_assert_int_eq(xt_remove(name), 0);
	}
	ck_assert_uint_eq(T.im->di.xattr_blk, 0);
	ck_assert_uint_eq(meta_used(T.v), used_before);
}
END_TEST

START_TEST(test_xattr_free)
{
	uint8_t val[2000];
	char name[32];
	uint64_t used_before = meta_used(T.v);

	fill_value(val, sizeof(val), 1);
	for (unsigned i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "security.s%u", i);
		ck_assert_int_eq(xt_set(name, val, sizeof(val), 0), 0);
	}
	ck_assert_uint_ge(meta_used(T.v), used_before + 6);
	ck_assert_int_eq(xt_change_im(&T, T.im, OP_FREE, NULL, NULL, 0, 0), 0);
	ck_assert_uint_eq(T.im->di.xattr_blk, 0);
	ck_assert_uint_eq(meta_used(T.v), used_before);
	ck_assert_int_eq(xt_get("security.s0", val, sizeof(val)), -ENODATA);
	/* Freeing nothing is fine. */
	ck_assert_int_eq(xt_change_im(&T, T.im, OP_FREE, NULL, NULL, 0, 0), 0);
}
END_TEST

START_TEST(test_xattr_corrupt)
{
	uint8_t *buf;
	uint64_t addr;
	char v[8];

	ck_assert_int_eq(xt_set("user.c", "x", 1, 0), 0);
	addr = T.im->di.xattr_blk;
	ck_assert_uint_ne(addr, 0);
	xt_unmount(&T);
	buf = dev_buf_alloc(4096);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(dev_read(T.dev, buf, 4096, addr), 0);
	buf[100] ^= 0x21;
	ck_assert_int_eq(dev_write(T.dev, buf, 4096, addr), 0);
	dev_buf_free(buf);
	xt_mount(&T);
	ck_assert_int_eq(inode_get(T.v, T.ino, &T.im), 0);
	ck_assert_int_eq(xt_get("user.c", v, sizeof(v)), -EUCLEAN);
	ck_assert_int_eq(xt_list(NULL, 0), -EUCLEAN);
	ck_assert_int_eq(xt_set("user.d", "y", 1, 0), -EUCLEAN);
	ck_assert_int_eq(xt_remove("user.c"), -EUCLEAN);
}
END_TEST

/* ---- symlinks ---------------------------------------------------------------- */

static ssize_t sl_get(struct inode_mem *im, char *buf, size_t len)
{
	ssize_t r;

	pthread_rwlock_rdlock(&im->lock);
	r = symlink_get(T.v, im, buf, len);
	pthread_rwlock_unlock(&im->lock);
	return r;
}

START_TEST(test_symlink_lengths)
{
	static const size_t lens[] = { 1, 191, 192, 193, 4027, 4028, 4029, 4095 };
	char *target = malloc(4097), *back = malloc(4097);

	ck_assert_ptr_nonnull(target);
	ck_assert_ptr_nonnull(back);
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		size_t len = lens[k];
		struct inode_mem *im = xt_inode_new(&T, S_IFLNK | 0777);
		uint64_t used_before = meta_used(T.v);

		for (size_t i = 0; i < len; i++) {
			target[i] = (char)('a' + (i * 7 + len) % 26);
		}
		if (len > 2) {
			target[len / 2] = '/';
		}
		ck_assert_int_eq(xt_change_im(&T, im, OP_SYMLINK, NULL, target, len, 0), 0);
		ck_assert_uint_eq(im->di.size, len);
		if (len <= LUNFS_INODE_INLINE_SIZE) {
			ck_assert((im->di.flags & LUNFS_INODE_INLINE) != 0);
			ck_assert_int_eq(im->di.map_height, 0);
			ck_assert_uint_eq(meta_used(T.v), used_before);
		} else {
			/* One or two target blocks plus a map leaf. */
			uint64_t blocks = len > LUNFS_BLOCK_PAYLOAD ? 2 : 1;

			ck_assert((im->di.flags & LUNFS_INODE_INLINE) == 0);
			ck_assert_uint_eq(meta_used(T.v), used_before + blocks + 1);
			ck_assert_uint_eq(im->di.alloc_bytes, blocks * 4096);
		}
		memset(back, 0, 4097);
		ck_assert_int_eq(sl_get(im, back, 4096), (ssize_t)len);
		ck_assert_mem_eq(back, target, len);
		/* A short buffer gets a prefix; the length is still the whole. */
		memset(back, 0, 4097);
		ck_assert_int_eq(sl_get(im, back, 10), (ssize_t)len);
		ck_assert_mem_eq(back, target, len < 10 ? len : 10);
		ck_assert_int_eq(back[10], 0);
		/* Set once. */
		ck_assert_int_eq(xt_change_im(&T, im, OP_SYMLINK, NULL, target, len, 0), -EEXIST);
		inode_put(T.v, im);
	}
	{
		struct inode_mem *im = xt_inode_new(&T, S_IFLNK | 0777);

		memset(target, 'x', 4096);
		ck_assert_int_eq(xt_change_im(&T, im, OP_SYMLINK, NULL, target, 4096, 0), -ENAMETOOLONG);
		ck_assert_int_eq(xt_change_im(&T, im, OP_SYMLINK, NULL, target, 0, 0), -ENOENT);
		ck_assert_int_eq(xt_change_im(&T, im, OP_SYMLINK, NULL, "a\0b", 3, 0), -EINVAL);
		ck_assert_uint_eq(im->di.size, 0);
		inode_put(T.v, im);
	}
	free(back);
	free(target);
}
END_TEST

/* The symlink's block survives a remount (it went through the journal). */
START_TEST(test_symlink_remount)
{
	char target[1000], back[1000];
	struct inode_mem *im = xt_inode_new(&T, S_IFLNK | 0777);
	uint64_t ino = im->ino;

	memset(target, 'q', sizeof(target));
	ck_assert_int_eq(xt_change_im(&T, im, OP_SYMLINK, NULL, target, sizeof(target), 0), 0);
	ck_assert_int_eq(xt_set("user.after", "1", 1, 0), 0);
	inode_put(T.v, im);
	xt_unmount(&T);
	xt_mount(&T);
	ck_assert_int_eq(inode_get(T.v, ino, &im), 0);
	ck_assert_int_eq(sl_get(im, back, sizeof(back)), (ssize_t)sizeof(target));
	ck_assert_mem_eq(back, target, sizeof(target));
	inode_put(T.v, im);
	ck_assert_int_eq(inode_get(T.v, T.ino, &T.im), 0);
	ck_assert_int_eq(xt_get("user.after", back, sizeof(back)), 1);
}
END_TEST

static Suite *xattr_suite(void)
{
	Suite *s = suite_create("xattr");
	TCase *tc = tcase_create("xattr");

	tcase_add_checked_fixture(tc, xt_setup, xt_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_xattr_basic);
	tcase_add_test(tc, test_xattr_flags);
	tcase_add_test(tc, test_xattr_namespaces_and_limits);
	tcase_add_test(tc, test_xattr_chain);
	tcase_add_test(tc, test_xattr_free);
	tcase_add_test(tc, test_xattr_corrupt);
	tcase_add_test(tc, test_symlink_lengths);
	tcase_add_test(tc, test_symlink_remount);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(xattr_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
