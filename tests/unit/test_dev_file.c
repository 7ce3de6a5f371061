/*
 * Unit tests of the file/block device backend (dev/dev_file.c) on sparse
 * files in /dev/shm (tmpfs takes O_DIRECT on current kernels) and, when the
 * kernel lets us, on a loop device with 4 KiB sectors.
 *
 * Every test works in one scratch directory made by an unchecked fixture:
 * it runs in the runner process, so it removes the directory even when a
 * test fails (Check exits a failing test's process without running checked
 * teardowns).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lunfs/dev.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define TiB (1024ull * 1024ull * MiB)

/* The scratch directory: fixture state must be static in Check, and it is
 * written only by the runner's setup, before any test process forks. */
static char scratch_dir[256];

static void scratch_setup(void)
{
	snprintf(scratch_dir, sizeof(scratch_dir), "/dev/shm/lunfs-test-dev-file-XXXXXX");
	if (mkdtemp(scratch_dir) == NULL) {
		/* Fall back to /tmp when /dev/shm is missing. */
		snprintf(scratch_dir, sizeof(scratch_dir), "/tmp/lunfs-test-dev-file-XXXXXX");
		if (mkdtemp(scratch_dir) == NULL) {
			perror("mkdtemp");
			abort();
		}
	}
}

static void scratch_teardown(void)
{
	DIR *d = opendir(scratch_dir);
	struct dirent *de;
	char p[512];

	if (d != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
				continue;
			}
			snprintf(p, sizeof(p), "%s/%s", scratch_dir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(scratch_dir);
}

static void scratch_path(char *out, size_t outlen, const char *name)
{
	snprintf(out, outlen, "%s/%s", scratch_dir, name);
}

/* Creates (or truncates) a sparse file of `size` bytes. */
static void make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static uint64_t test_mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static void pattern_fill(void *buf, size_t len, uint64_t seed)
{
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		p[i] = (unsigned char)test_mix(seed * 1000003u + i / 8) ^ (unsigned char)i;
	}
}

static int pattern_check(const void *buf, size_t len, uint64_t seed)
{
	unsigned char *want = malloc(len);
	int ok;

	ck_assert_ptr_nonnull(want);
	pattern_fill(want, len, seed);
	ok = memcmp(want, buf, len) == 0;
	free(want);
	return ok;
}

static int is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] != 0) {
			return 0;
		}
	}
	return 1;
}

/* The tests marked "both" run twice: _i = 0 with the io_uring rings,
 * _i = 1 with sync_io (pread/pwrite in the calling thread). */
static const struct lunfs_dev_file_opts sync_io_opts = { .sync_io = true };

static const struct lunfs_dev_file_opts *sync_opts(int i)
{
	return i == 1 ? &sync_io_opts : NULL;
}

START_TEST(test_file_read_after_write)
{
	char path[512];
	struct lunfs_dev *dev;
	unsigned char *w = dev_buf_alloc(1 * MiB);
	unsigned char *r = dev_buf_alloc(1 * MiB);

	scratch_path(path, sizeof(path), "rw.img");
	make_file(path, 16 * MiB);
	ck_assert_int_eq(dev_file_open(path, sync_opts(_i), &dev), 0);
	ck_assert_uint_eq(dev->size, 16 * MiB);
	ck_assert(dev->sector_size == 512 || dev->sector_size == 4096);
	ck_assert_str_eq(dev->name, path);
	ck_assert_uint_eq(dev->io_deadline_ms, 0);

	/* Unwritten (a hole) reads as zeros. */
	memset(r, 0xAA, 1 * MiB);
	ck_assert_int_eq(dev_read(dev, r, 1 * MiB, 3 * MiB), 0);
	ck_assert(is_zero(r, 1 * MiB));

	pattern_fill(w, 1 * MiB, 1);
	ck_assert_int_eq(dev_write(dev, w, 1 * MiB, 5 * MiB + 4096), 0);
	ck_assert_int_eq(dev_read(dev, r, 1 * MiB, 5 * MiB + 4096), 0);
	ck_assert(pattern_check(r, 1 * MiB, 1));
	/* Last 4 KiB of the device. */
	ck_assert_int_eq(dev_write(dev, w, 4096, 16 * MiB - 4096), 0);
	ck_assert_int_eq(dev_read(dev, r, 4096, 16 * MiB - 4096), 0);
	ck_assert_int_eq(memcmp(r, w, 4096), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	dev_close(dev);

	/* It reached the file, not a cache of ours: reopen and read. */
	ck_assert_int_eq(dev_file_open(path, sync_opts(_i), &dev), 0);
	memset(r, 0, 1 * MiB);
	ck_assert_int_eq(dev_read(dev, r, 1 * MiB, 5 * MiB + 4096), 0);
	ck_assert(pattern_check(r, 1 * MiB, 1));
	dev_close(dev);
	dev_buf_free(w);
	dev_buf_free(r);
}
END_TEST

START_TEST(test_file_size_detect)
{
	char path[512];
	struct lunfs_dev *dev;
	unsigned char *b = dev_buf_alloc(4096);
	uint32_t ss;

	scratch_path(path, sizeof(path), "size.img");
	make_file(path, 1 * MiB + 700);
	ck_assert_int_eq(dev_file_open(path, NULL, &dev), 0);
	ss = dev->sector_size;
	/* Rounded down to whole sectors. */
	ck_assert_uint_eq(dev->size, (1 * MiB + 700) / ss * ss);
	dev_close(dev);

	/* An empty file opens: 512-byte sectors, nothing to read. */
	make_file(path, 0);
	ck_assert_int_eq(dev_file_open(path, NULL, &dev), 0);
	ck_assert_uint_eq(dev->size, 0);
	ck_assert_uint_eq(dev->sector_size, 512);
	ck_assert_int_eq(dev_read(dev, b, 512, 0), -EINVAL);
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

START_TEST(test_file_open_errors)
{
	char path[512];
	struct lunfs_dev *dev = (struct lunfs_dev *)1;
	struct lunfs_dev_file_opts o = { 0 };

	scratch_path(path, sizeof(path), "nope.img");
	ck_assert_int_eq(dev_file_open(path, NULL, &dev), -ENOENT);
	ck_assert_ptr_null(dev);
	ck_assert_int_eq(dev_file_open(scratch_dir, NULL, &dev), -EINVAL);
	ck_assert_int_eq(dev_file_open("/dev/null", NULL, &dev), -EINVAL);

	scratch_path(path, sizeof(path), "caw.img");
	make_file(path, 1 * MiB);
	o.caw = LUNFS_CAW_PAXOS;
	ck_assert_int_eq(dev_file_open(path, &o, &dev), -EOPNOTSUPP);
	o.caw = LUNFS_CAW_SCSI;
	ck_assert_int_eq(dev_file_open(path, &o, &dev), -EOPNOTSUPP);
	o.caw = (enum lunfs_caw_backend)42;
	ck_assert_int_eq(dev_file_open(path, &o, &dev), -EINVAL);
}
END_TEST

START_TEST(test_file_request_checks)
{
	char path[512];
	struct lunfs_dev *dev;
	unsigned char *b = dev_buf_alloc(8192);

	scratch_path(path, sizeof(path), "checks.img");
	make_file(path, 1 * MiB);
	ck_assert_int_eq(dev_file_open(path, NULL, &dev), 0);
	ck_assert_int_eq(dev_read(dev, b, 4096, 100), -EINVAL);
	ck_assert_int_eq(dev_read(dev, b, 100, 0), -EINVAL);
	/* Buffers below the device's alignment are refused; at it they work
	 * (8 on tmpfs, whose O_DIRECT needs none, else the sector size). */
	ck_assert_uint_ge(dev_mem_align(dev), 8);
	{
		struct statfs sf;

		if (statfs(path, &sf) == 0 && sf.f_type == 0x01021994 /* TMPFS_MAGIC */) {
			ck_assert_uint_eq(dev_mem_align(dev), 8);
		}
	}
	ck_assert_uint_le(dev_mem_align(dev), dev->sector_size);
	ck_assert_int_eq(dev_read(dev, b + dev_mem_align(dev) / 2, 4096, 0), -EINVAL);
	if (dev_mem_align(dev) < 4096) {
		memset(b + dev_mem_align(dev), 0x5C, 4096);
		ck_assert_int_eq(dev_write(dev, b + dev_mem_align(dev), 4096, 4096), 0);
		memset(b, 0, 8192);
		ck_assert_int_eq(dev_read(dev, b, 4096, 4096), 0);
		ck_assert_uint_eq(b[0], 0x5C);
		ck_assert_uint_eq(b[4095], 0x5C);
	}
	ck_assert_int_eq(dev_read(dev, b, 8192, 1 * MiB - 4096), -EINVAL);
	ck_assert_int_eq(dev_write(dev, b, 4096, 1 * MiB), -EINVAL);
	ck_assert_int_eq(dev_write(dev, b, 4096, UINT64_MAX - 4095), -EINVAL);
	ck_assert_int_eq(dev_caw(dev, 1 * MiB, b, b, NULL), -EINVAL);
	ck_assert_int_eq(dev_discard(dev, 0, 2 * MiB), -EINVAL);
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

#define FILE_BATCH_N 2000u

static void batch_roundtrip(struct lunfs_dev *dev, uint64_t seed)
{
	struct lunfs_io *ios = calloc(FILE_BATCH_N, sizeof(*ios));
	unsigned char *bufs = dev_buf_alloc(FILE_BATCH_N * 4096);
	unsigned i;

	for (i = 0; i < FILE_BATCH_N; i++) {
		ios[i] = (struct lunfs_io){
			.op = LUNFS_IO_WRITE,
			.buf = bufs + i * 4096,
			.len = 4096,
			/* Reverse order, scattered: nothing sequential to help. */
			.off = (uint64_t)(FILE_BATCH_N - 1 - i) * 8192,
		};
		pattern_fill(ios[i].buf, 4096, seed + i);
	}
	ck_assert_int_eq(dev_submit(dev, ios, FILE_BATCH_N), 0);
	for (i = 0; i < FILE_BATCH_N; i++) {
		ck_assert_int_eq(ios[i].res, 4096);
		ios[i].op = LUNFS_IO_READ;
	}
	memset(bufs, 0, FILE_BATCH_N * 4096);
	ck_assert_int_eq(dev_submit(dev, ios, FILE_BATCH_N), 0);
	for (i = 0; i < FILE_BATCH_N; i++) {
		ck_assert_int_eq(ios[i].res, 4096);
		ck_assert(pattern_check(ios[i].buf, 4096, seed + i));
	}
	dev_buf_free(bufs);
	free(ios);
}

START_TEST(test_file_batch)
{
	char path[512];
	struct lunfs_dev *dev;
	struct lunfs_dev_file_opts o = { .queue_depth = 8 };

	o.sync_io = _i == 1;
	scratch_path(path, sizeof(path), "batch.img");
	make_file(path, 32 * MiB);
	/* Default depth, then a tiny ring: the batch is many times the
	 * queue depth, so it has to be windowed. */
	ck_assert_int_eq(dev_file_open(path, sync_opts(_i), &dev), 0);
	batch_roundtrip(dev, 1000);
	dev_close(dev);
	ck_assert_int_eq(dev_file_open(path, &o, &dev), 0);
	batch_roundtrip(dev, 5000);
	dev_close(dev);
	/* Depth 1 is raised to 2, with a deadline (two SQEs per I/O). */
	o.queue_depth = 1;
	o.io_deadline_ms = 10000;
	ck_assert_int_eq(dev_file_open(path, &o, &dev), 0);
	batch_roundtrip(dev, 9000);
	dev_close(dev);
}
END_TEST

/* I/Os larger than max_io_bytes go down in pieces through the same path
 * as short reads and writes: each completion moves the I/O on by what it
 * did and the rest is resubmitted. */
START_TEST(test_file_continuation)
{
	char path[512];
	struct lunfs_dev *dev;
	struct lunfs_dev_file_opts o = { .max_io_bytes = 4096 + 100, .queue_depth = 4 };
	unsigned char *w = dev_buf_alloc(3 * MiB);
	unsigned char *r = dev_buf_alloc(3 * MiB);
	struct lunfs_io ios[3];
	unsigned i;

	o.sync_io = _i == 1;
	scratch_path(path, sizeof(path), "cont.img");
	make_file(path, 16 * MiB);
	ck_assert_int_eq(dev_file_open(path, &o, &dev), 0);
	pattern_fill(w, 3 * MiB, 3);
	for (i = 0; i < 3; i++) {
		ios[i] = (struct lunfs_io){
			.op = LUNFS_IO_WRITE,
			.buf = w + i * MiB,
			.len = 1 * MiB,
			.off = 1 * MiB + i * 4 * MiB,
		};
	}
	ck_assert_int_eq(dev_submit(dev, ios, 3), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(ios[i].res, 1 * MiB);
		ios[i].op = LUNFS_IO_READ;
		ios[i].buf = r + i * MiB;
	}
	ck_assert_int_eq(dev_submit(dev, ios, 3), 0);
	ck_assert(pattern_check(r, 3 * MiB, 3));
	dev_close(dev);

	/* And with a deadline on every piece. */
	o.io_deadline_ms = 10000;
	ck_assert_int_eq(dev_file_open(path, &o, &dev), 0);
	memset(r, 0, 1 * MiB);
	ck_assert_int_eq(dev_read(dev, r, 1 * MiB, 5 * MiB), 0);
	ck_assert_int_eq(memcmp(r, w + 1 * MiB, 1 * MiB), 0);
	dev_close(dev);
	dev_buf_free(w);
	dev_buf_free(r);
}
END_TEST

/* The file shrinks under the device: a read crossing the new end comes
 * back short, the remainder hits end of file, and that is -EIO rather than
 * a retry loop or zeros. */
START_TEST(test_file_short_read_eof)
{
	char path[512];
	struct lunfs_dev *dev;
	unsigned char *b = dev_buf_alloc(64 * KiB);
	struct lunfs_io ios[2];
	uint32_t ss;

	scratch_path(path, sizeof(path), "short.img");
	make_file(path, 64 * KiB);
	ck_assert_int_eq(dev_file_open(path, sync_opts(_i), &dev), 0);
	ss = dev->sector_size;
	pattern_fill(b, 64 * KiB, 4);
	ck_assert_int_eq(dev_write(dev, b, 64 * KiB, 0), 0);
	ck_assert_int_eq(truncate(path, 32 * KiB + 2 * ss), 0);

	ck_assert_int_eq(dev_read(dev, b, 64 * KiB, 0), -EIO);
	ios[0] = (struct lunfs_io){ .op = LUNFS_IO_READ, .buf = b, .len = 16 * KiB, .off = 0 };
	ios[1] = (struct lunfs_io){ .op = LUNFS_IO_READ, .buf = b + 32 * KiB, .len = 32 * KiB, .off = 32 * KiB };
	ck_assert_int_eq(dev_submit(dev, ios, 2), -EIO);
	ck_assert_int_eq(ios[0].res, 16 * KiB);
	ck_assert_int_eq(ios[1].res, -EIO);
	ck_assert(pattern_check(b, 16 * KiB, 4));
	/* Reads before the new end still work. */
	ck_assert_int_eq(dev_read(dev, b, 32 * KiB, 0), 0);
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

START_TEST(test_file_read_only)
{
	char path[512];
	struct lunfs_dev *dev;
	struct lunfs_dev_file_opts o = { .read_only = true };
	unsigned char *b = dev_buf_alloc(4096);

	o.sync_io = _i == 1;
	scratch_path(path, sizeof(path), "ro.img");
	make_file(path, 1 * MiB);
	ck_assert_int_eq(chmod(path, 0400), 0);
	ck_assert_int_eq(dev_file_open(path, &o, &dev), 0);
	ck_assert_int_eq(dev_read(dev, b, 4096, 0), 0);
	ck_assert_int_eq(dev_write(dev, b, 4096, 0), -EROFS);
	ck_assert_int_eq(dev_caw(dev, 0, b, b, NULL), -EROFS);
	ck_assert_int_eq(dev_discard(dev, 0, 4096), -EROFS);
	ck_assert_int_eq(dev_flush(dev), 0);
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

START_TEST(test_file_discard)
{
	char path[512];
	struct lunfs_dev *dev;
	unsigned char *b = dev_buf_alloc(1 * MiB);
	struct stat st_before, st_after;

	scratch_path(path, sizeof(path), "discard.img");
	make_file(path, 4 * MiB);
	ck_assert_int_eq(dev_file_open(path, NULL, &dev), 0);
	pattern_fill(b, 1 * MiB, 6);
	ck_assert_int_eq(dev_write(dev, b, 1 * MiB, 1 * MiB), 0);
	ck_assert_int_eq(stat(path, &st_before), 0);
	ck_assert_int_eq(dev_discard(dev, 1 * MiB + 64 * KiB, 512 * KiB), 0);
	ck_assert_int_eq(stat(path, &st_after), 0);
	/* The size stays (KEEP_SIZE); the blocks go. */
	ck_assert_int_eq(st_after.st_size, 4 * MiB);
	ck_assert_int_lt(st_after.st_blocks, st_before.st_blocks);
	ck_assert_int_eq(dev_read(dev, b, 1 * MiB, 1 * MiB), 0);
	/* A punched hole in a file reads as zeros (a disk may differ). */
	ck_assert(is_zero(b + 64 * KiB, 512 * KiB));
	{
		unsigned char *want = malloc(1 * MiB);

		pattern_fill(want, 1 * MiB, 6);
		ck_assert_int_eq(memcmp(b, want, 64 * KiB), 0);
		ck_assert_int_eq(memcmp(b + 576 * KiB, want + 576 * KiB, 448 * KiB), 0);
		free(want);
	}
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

START_TEST(test_file_zero_range)
{
	char path[512];
	struct lunfs_dev *dev;
	unsigned char *b = dev_buf_alloc(1 * MiB);
	uint64_t off;

	scratch_path(path, sizeof(path), "zero.img");
	make_file(path, 24 * MiB);
	ck_assert_int_eq(dev_file_open(path, NULL, &dev), 0);
	pattern_fill(b, 1 * MiB, 7);
	for (off = 0; off < 24 * MiB; off += 1 * MiB) {
		ck_assert_int_eq(dev_write(dev, b, 1 * MiB, off), 0);
	}
	ck_assert_int_eq(dev_zero_range(dev, 1 * MiB, 20 * MiB, NULL, NULL), 0);
	for (off = 1 * MiB; off < 21 * MiB; off += 1 * MiB) {
		ck_assert_int_eq(dev_read(dev, b, 1 * MiB, off), 0);
		ck_assert(is_zero(b, 1 * MiB));
	}
	ck_assert_int_eq(dev_read(dev, b, 1 * MiB, 21 * MiB), 0);
	ck_assert(pattern_check(b, 1 * MiB, 7));
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

START_TEST(test_file_huge_sparse)
{
	char path[512];
	struct lunfs_dev *dev;
	unsigned char *b = dev_buf_alloc(64 * KiB);
	uint64_t size = 64 * TiB;
	int fd;

	scratch_path(path, sizeof(path), "huge.img");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	if (ftruncate(fd, (off_t)size) != 0) {
		/* /tmp on a filesystem with a smaller file size limit. */
		fprintf(stderr, "test_file_huge_sparse: SKIP, ftruncate 64 TiB: %s\n", strerror(errno));
		close(fd);
		dev_buf_free(b);
		return;
	}
	close(fd);
	ck_assert_int_eq(dev_file_open(path, NULL, &dev), 0);
	ck_assert_uint_eq(dev->size, size);
	memset(b, 0xAA, 64 * KiB);
	ck_assert_int_eq(dev_read(dev, b, 64 * KiB, size - 64 * KiB), 0);
	ck_assert(is_zero(b, 64 * KiB));
	pattern_fill(b, 64 * KiB, 8);
	ck_assert_int_eq(dev_write(dev, b, 64 * KiB, size - 64 * KiB), 0);
	ck_assert_int_eq(dev_write(dev, b, 4096, size / 2 + 4096), 0);
	memset(b, 0, 64 * KiB);
	ck_assert_int_eq(dev_read(dev, b, 64 * KiB, size - 64 * KiB), 0);
	ck_assert(pattern_check(b, 64 * KiB, 8));
	ck_assert_int_eq(dev_read(dev, b, 4096, size), -EINVAL);
	/* CAW at the very last sector: OFD lock offsets past 2^45. */
	{
		unsigned char expect[4096], replace[4096];
		uint32_t ss = dev->sector_size;

		memcpy(expect, b + 64 * KiB - ss, ss);
		memset(replace, 0x3C, ss);
		ck_assert_int_eq(dev_caw(dev, size - ss, expect, replace, NULL), 0);
		ck_assert_int_eq(dev_read(dev, b, ss, size - ss), 0);
		ck_assert_int_eq(memcmp(b, replace, ss), 0);
	}
	ck_assert_int_eq(dev_discard(dev, size - 64 * KiB, 64 * KiB), 0);
	dev_close(dev);
	unlink(path);
	dev_buf_free(b);
}
END_TEST

START_TEST(test_file_deadline_normal_io)
{
	char path[512];
	struct lunfs_dev *dev;
	struct lunfs_dev_file_opts o = { .io_deadline_ms = 5000 };
	unsigned char *b = dev_buf_alloc(256 * KiB);
	unsigned char expect[4096] = { 0 }, replace[4096];

	scratch_path(path, sizeof(path), "deadline.img");
	make_file(path, 32 * MiB);
	ck_assert_int_eq(dev_file_open(path, &o, &dev), 0);
	ck_assert_uint_eq(dev->io_deadline_ms, 5000);
	pattern_fill(b, 256 * KiB, 10);
	ck_assert_int_eq(dev_write(dev, b, 256 * KiB, 1 * MiB), 0);
	memset(b, 0, 256 * KiB);
	ck_assert_int_eq(dev_read(dev, b, 256 * KiB, 1 * MiB), 0);
	ck_assert(pattern_check(b, 256 * KiB, 10));
	batch_roundtrip(dev, 20000);
	memset(replace, 0x77, sizeof(replace));
	ck_assert_int_eq(dev_caw(dev, 31 * MiB, expect, replace, NULL), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

/* A 1 ms deadline on big reads: whether any of them misses it depends on
 * the machine, so accept both outcomes per I/O; the point is that the
 * timeout path resolves every I/O (no hang, no stray completion left for
 * the next batch on the ring). */
START_TEST(test_file_deadline_tiny)
{
	char path[512];
	struct lunfs_dev *dev;
	struct lunfs_dev_file_opts o = { .io_deadline_ms = 1, .queue_depth = 16 };
	unsigned n = 16;
	size_t len = 4 * MiB;
	unsigned char *b = dev_buf_alloc(n * len);
	struct lunfs_io ios[16];
	unsigned round;
	unsigned i;

	scratch_path(path, sizeof(path), "tiny.img");
	make_file(path, n * len);
	ck_assert_int_eq(dev_file_open(path, &o, &dev), 0);
	for (round = 0; round < 4; round++) {
		int err;

		for (i = 0; i < n; i++) {
			ios[i] = (struct lunfs_io){
				.op = LUNFS_IO_READ, .buf = b + i * len, .len = len, .off = i * len,
			};
		}
		err = dev_submit(dev, ios, n);
		ck_assert_msg(err == 0 || err == -ETIMEDOUT, "err %d", err);
		for (i = 0; i < n; i++) {
			ck_assert_msg(ios[i].res == (ssize_t)len || ios[i].res == -ETIMEDOUT,
				      "res %zd", ios[i].res);
		}
	}
	dev_close(dev);
	/* The ring is sane afterwards: a generous deadline reads it all. */
	o.io_deadline_ms = 10000;
	ck_assert_int_eq(dev_file_open(path, &o, &dev), 0);
	ck_assert_int_eq(dev_read(dev, b, 4096, 0), 0);
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

START_TEST(test_file_caw)
{
	char path[512];
	struct lunfs_dev *dev;
	unsigned char expect[4096] = { 0 }, replace[4096], other[4096], current[4096];
	unsigned char *b = dev_buf_alloc(4096);
	uint32_t ss;

	scratch_path(path, sizeof(path), "caw.img");
	make_file(path, 1 * MiB);
	ck_assert_int_eq(dev_file_open(path, sync_opts(_i), &dev), 0);
	ss = dev->sector_size;
	memset(replace, 0x42, sizeof(replace));
	memset(other, 0x43, sizeof(other));
	ck_assert_int_eq(dev_caw(dev, 8 * ss, expect, replace, current), 0);
	ck_assert_int_eq(dev_read(dev, b, ss, 8 * ss), 0);
	ck_assert_int_eq(memcmp(b, replace, ss), 0);
	/* Neighbouring sectors untouched. */
	ck_assert_int_eq(dev_read(dev, b, ss, 9 * ss), 0);
	ck_assert(is_zero(b, ss));

	memset(current, 0, sizeof(current));
	ck_assert_int_eq(dev_caw(dev, 8 * ss, expect, other, current), -ECANCELED);
	ck_assert_int_eq(memcmp(current, replace, ss), 0);
	ck_assert_int_eq(dev_caw(dev, 8 * ss, expect, other, NULL), -ECANCELED);
	ck_assert_int_eq(dev_read(dev, b, ss, 8 * ss), 0);
	ck_assert_int_eq(memcmp(b, replace, ss), 0);
	ck_assert_int_eq(dev_caw(dev, 8 * ss, replace, other, NULL), 0);
	ck_assert_int_eq(dev_read(dev, b, ss, 8 * ss), 0);
	ck_assert_int_eq(memcmp(b, other, ss), 0);
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

struct caw_counter_arg {
	struct lunfs_dev *dev;
	uint64_t off;
	unsigned iters;
	int err;
};

/* Increments the uint64 at the start of the sector iters times, by CAW. */
static void *caw_counter_thread(void *p)
{
	struct caw_counter_arg *a = p;
	uint32_t ss = a->dev->sector_size;
	unsigned char *cur = calloc(1, ss);
	unsigned char *next = calloc(1, ss);
	unsigned i;

	for (i = 0; i < a->iters; i++) {
		for (;;) {
			uint64_t v;
			int err;

			memcpy(next, cur, ss);
			memcpy(&v, cur, sizeof(v));
			v++;
			memcpy(next, &v, sizeof(v));
			err = dev_caw(a->dev, a->off, cur, next, cur);
			if (err == 0) {
				memcpy(cur, next, ss);
				break;
			}
			if (err != -ECANCELED) {
				a->err = err;
				goto out;
			}
		}
	}
out:
	free(cur);
	free(next);
	return NULL;
}

/* Runs nthreads counter threads over `devs` (round robin); 0 or an errno. */
static int caw_counter_run(struct lunfs_dev **devs, unsigned ndevs, unsigned nthreads,
			   uint64_t off, unsigned iters)
{
	struct caw_counter_arg args[16];
	pthread_t th[16];
	unsigned i;
	int err = 0;

	for (i = 0; i < nthreads; i++) {
		args[i] = (struct caw_counter_arg){ .dev = devs[i % ndevs], .off = off, .iters = iters };
		if (pthread_create(&th[i], NULL, caw_counter_thread, &args[i]) != 0) {
			return -EAGAIN;
		}
	}
	for (i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		if (args[i].err != 0 && err == 0) {
			err = args[i].err;
		}
	}
	return err;
}

static uint64_t counter_read(struct lunfs_dev *dev, uint64_t off)
{
	unsigned char *b = dev_buf_alloc(dev->sector_size);
	uint64_t v;

	ck_assert_int_eq(dev_read(dev, b, dev->sector_size, off), 0);
	memcpy(&v, b, sizeof(v));
	dev_buf_free(b);
	return v;
}

START_TEST(test_file_caw_threads)
{
	char path[512];
	struct lunfs_dev *dev;

	scratch_path(path, sizeof(path), "cawt.img");
	make_file(path, 1 * MiB);
	ck_assert_int_eq(dev_file_open(path, NULL, &dev), 0);
	ck_assert_int_eq(caw_counter_run(&dev, 1, 8, 64 * KiB, 300), 0);
	ck_assert_uint_eq(counter_read(dev, 64 * KiB), 8 * 300);
	dev_close(dev);
}
END_TEST

/* Two opens of one file in one process: the mutexes of one device do not
 * see the other, only the OFD lock keeps them apart. */
START_TEST(test_file_caw_two_opens)
{
	char path[512];
	struct lunfs_dev *devs[2];

	scratch_path(path, sizeof(path), "caw2.img");
	make_file(path, 1 * MiB);
	ck_assert_int_eq(dev_file_open(path, sync_opts(_i), &devs[0]), 0);
	ck_assert_int_eq(dev_file_open(path, sync_opts(_i), &devs[1]), 0);
	ck_assert_int_eq(caw_counter_run(devs, 2, 8, 4096, 300), 0);
	ck_assert_uint_eq(counter_read(devs[0], 4096), 8 * 300);
	ck_assert_uint_eq(counter_read(devs[1], 4096), 8 * 300);
	dev_close(devs[0]);
	dev_close(devs[1]);
}
END_TEST

#define CAW_PROCS 4
#define CAW_PROC_THREADS 2
#define CAW_PROC_ITERS 300

START_TEST(test_file_caw_processes)
{
	char path[512];
	struct lunfs_dev *dev;
	pid_t pids[CAW_PROCS];
	int i;

	scratch_path(path, sizeof(path), "cawp.img");
	make_file(path, 1 * MiB);
	for (i = 0; i < CAW_PROCS; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			/* Each child opens the file itself: its own rings, its
			 * own open file description. */
			int err = dev_file_open(path, NULL, &dev);

			if (err == 0) {
				err = caw_counter_run(&dev, 1, CAW_PROC_THREADS, 12 * KiB, CAW_PROC_ITERS);
				dev_close(dev);
			}
			_exit(err == 0 ? 0 : 1);
		}
	}
	for (i = 0; i < CAW_PROCS; i++) {
		int status;

		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert(WIFEXITED(status));
		ck_assert_int_eq(WEXITSTATUS(status), 0);
	}
	ck_assert_int_eq(dev_file_open(path, NULL, &dev), 0);
	ck_assert_uint_eq(counter_read(dev, 12 * KiB),
			  (uint64_t)CAW_PROCS * CAW_PROC_THREADS * CAW_PROC_ITERS);
	dev_close(dev);
}
END_TEST

struct rw_thread_arg {
	struct lunfs_dev *dev;
	unsigned id;
	int ok;
};

/* Each thread owns a region: batches of writes then reads, many rounds,
 * so that the ring pool is contended. */
static void *rw_thread(void *p)
{
	struct rw_thread_arg *a = p;
	unsigned char *b = dev_buf_alloc(64 * KiB);
	struct lunfs_io ios[4];
	unsigned round;
	unsigned k;

	a->ok = 1;
	for (round = 0; round < 100 && a->ok; round++) {
		uint64_t base = a->id * 1 * MiB + (round % 8) * 64 * KiB;

		pattern_fill(b, 64 * KiB, a->id * 1000u + round);
		for (k = 0; k < 4; k++) {
			ios[k] = (struct lunfs_io){
				.op = LUNFS_IO_WRITE, .buf = b + k * 16 * KiB, .len = 16 * KiB,
				.off = base + k * 16 * KiB,
			};
		}
		if (dev_submit(a->dev, ios, 4) != 0) {
			a->ok = 0;
			break;
		}
		memset(b, 0, 64 * KiB);
		for (k = 0; k < 4; k++) {
			ios[k].op = LUNFS_IO_READ;
		}
		if (dev_submit(a->dev, ios, 4) != 0 || !pattern_check(b, 64 * KiB, a->id * 1000u + round)) {
			a->ok = 0;
		}
	}
	dev_buf_free(b);
	return NULL;
}

START_TEST(test_file_threads_rw)
{
	char path[512];
	struct lunfs_dev *dev;
	struct lunfs_dev_file_opts o = { .io_deadline_ms = 10000, .queue_depth = 4 };
	struct rw_thread_arg args[12];
	pthread_t th[12];
	unsigned i;

	o.sync_io = _i == 1;
	scratch_path(path, sizeof(path), "threads.img");
	make_file(path, 12 * MiB);
	/* More threads than rings: some wait on a ring's lock. */
	ck_assert_int_eq(dev_file_open(path, &o, &dev), 0);
	for (i = 0; i < 12; i++) {
		args[i] = (struct rw_thread_arg){ .dev = dev, .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, rw_thread, &args[i]), 0);
	}
	for (i = 0; i < 12; i++) {
		pthread_join(th[i], NULL);
		ck_assert(args[i].ok);
	}
	dev_close(dev);
}
END_TEST

/* A loop device with 4 KiB logical sectors, set up by ioctl with
 * LO_FLAGS_AUTOCLEAR so that it goes away when the last fd closes, even if
 * the test dies. Skips (passes, with a note) where loop devices are not
 * available. Returns the loop fd (keep it open while using the device) or
 * -1 to skip. */
static int loop_attach(const char *backing, char *devpath, size_t devpath_len)
{
	int ctl;
	int attempt;
	int lfd = -1;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		fprintf(stderr, "loop: SKIP, /dev/loop-control: %s\n", strerror(errno));
		return -1;
	}
	for (attempt = 0; attempt < 10 && lfd < 0; attempt++) {
		struct loop_config cfg;
		int bfd;
		int nr = ioctl(ctl, LOOP_CTL_GET_FREE);

		if (nr < 0) {
			fprintf(stderr, "loop: SKIP, LOOP_CTL_GET_FREE: %s\n", strerror(errno));
			break;
		}
		snprintf(devpath, devpath_len, "/dev/loop%d", nr);
		lfd = open(devpath, O_RDWR | O_CLOEXEC);
		if (lfd < 0) {
			fprintf(stderr, "loop: SKIP, %s: %s\n", devpath, strerror(errno));
			break;
		}
		bfd = open(backing, O_RDWR | O_CLOEXEC);
		ck_assert_int_ge(bfd, 0);
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (uint32_t)bfd;
		cfg.block_size = 4096;
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) < 0) {
			int e = errno;

			close(lfd);
			lfd = -1;
			if (e != EBUSY) {
				fprintf(stderr, "loop: SKIP, LOOP_CONFIGURE: %s\n", strerror(e));
				close(bfd);
				break;
			}
		}
		close(bfd);
	}
	close(ctl);
	return lfd;
}

START_TEST(test_file_loop_device)
{
	char path[512];
	char loopdev[64];
	struct lunfs_dev *dev;
	struct lunfs_dev *dev2;
	struct lunfs_dev_file_opts o = { .exclusive = true };
	unsigned char *b = dev_buf_alloc(64 * KiB);
	unsigned char expect[4096] = { 0 }, replace[4096];
	int lfd;

	scratch_path(path, sizeof(path), "loop.img");
	make_file(path, 8 * MiB);
	lfd = loop_attach(path, loopdev, sizeof(loopdev));
	if (lfd < 0) {
		dev_buf_free(b);
		return;
	}
	ck_assert_int_eq(dev_file_open(loopdev, &o, &dev), 0);
	ck_assert_uint_eq(dev->size, 8 * MiB);
	ck_assert_uint_eq(dev->sector_size, 4096);
	/* O_EXCL on a block device: a second exclusive open fails. */
	ck_assert_int_eq(dev_file_open(loopdev, &o, &dev2), -EBUSY);
	ck_assert_int_eq(dev_write(dev, b, 512, 0), -EINVAL);
	pattern_fill(b, 64 * KiB, 12);
	ck_assert_int_eq(dev_write(dev, b, 64 * KiB, 1 * MiB), 0);
	memset(b, 0, 64 * KiB);
	ck_assert_int_eq(dev_read(dev, b, 64 * KiB, 1 * MiB), 0);
	ck_assert(pattern_check(b, 64 * KiB, 12));
	ck_assert_int_eq(dev_flush(dev), 0);
	memset(replace, 0x21, sizeof(replace));
	ck_assert_int_eq(dev_caw(dev, 2 * MiB, expect, replace, NULL), 0);
	ck_assert_int_eq(dev_caw(dev, 2 * MiB, expect, replace, NULL), -ECANCELED);
	/* BLKDISCARD: works or says it cannot; never anything else. */
	{
		int err = dev_discard(dev, 1 * MiB, 64 * KiB);

		ck_assert(err == 0 || err == -EOPNOTSUPP);
	}
	dev_close(dev);
	close(lfd);
	dev_buf_free(b);
}
END_TEST

static Suite *dev_file_suite(void)
{
	Suite *s = suite_create("dev_file");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, scratch_setup, scratch_teardown);
	tcase_add_loop_test(tc, test_file_read_after_write, 0, 2);
	tcase_add_test(tc, test_file_size_detect);
	tcase_add_test(tc, test_file_open_errors);
	tcase_add_test(tc, test_file_request_checks);
	tcase_add_loop_test(tc, test_file_batch, 0, 2);
	tcase_add_loop_test(tc, test_file_continuation, 0, 2);
	tcase_add_loop_test(tc, test_file_short_read_eof, 0, 2);
	tcase_add_loop_test(tc, test_file_read_only, 0, 2);
	tcase_add_test(tc, test_file_discard);
	tcase_add_test(tc, test_file_zero_range);
	tcase_add_test(tc, test_file_huge_sparse);
	tcase_add_test(tc, test_file_deadline_normal_io);
	tcase_add_test(tc, test_file_deadline_tiny);
	tcase_add_loop_test(tc, test_file_caw, 0, 2);
	tcase_add_test(tc, test_file_caw_threads);
	tcase_add_loop_test(tc, test_file_caw_two_opens, 0, 2);
	tcase_add_test(tc, test_file_caw_processes);
	tcase_add_loop_test(tc, test_file_threads_rw, 0, 2);
	tcase_add_test(tc, test_file_loop_device);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dev_file_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
