/*
 * Unit tests of the generic device helpers (dev/dev.c) and of the sparse
 * memory device (dev/dev_mem.c): read-after-write, zeros where nothing was
 * written, request checking, big batches, discard, CAW (including many
 * threads racing on one counter), a 64 TiB device, dev_zero_range.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lunfs/dev.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define TiB (1024ull * 1024ull * MiB)

static uint64_t test_mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* A pattern that differs per seed and per byte position. */
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

START_TEST(test_buf_alloc)
{
	size_t sizes[] = { 0, 1, 512, 4096, 5000, 1 << 20 };
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *b = dev_buf_alloc(sizes[i]);

		ck_assert_ptr_nonnull(b);
		ck_assert_uint_eq((uintptr_t)b % LUNFS_DEV_BUF_ALIGN, 0);
		ck_assert(is_zero(b, sizes[i]));
		dev_buf_free(b);
	}
	dev_buf_free(NULL);
}
END_TEST

START_TEST(test_mem_open_invalid)
{
	struct lunfs_dev *dev = (struct lunfs_dev *)1;

	ck_assert_int_eq(dev_mem_open(1 * MiB, 1000, &dev), -EINVAL);
	ck_assert_ptr_null(dev);
	ck_assert_int_eq(dev_mem_open(1 * MiB, 256, &dev), -EINVAL);
	ck_assert_int_eq(dev_mem_open(1 * MiB + 512, 4096, &dev), -EINVAL);
	ck_assert_int_eq(dev_mem_open(0, 512, &dev), 0);
	ck_assert_uint_eq(dev->size, 0);
	dev_close(dev);
	dev_close(NULL);
}
END_TEST

START_TEST(test_mem_read_after_write)
{
	struct lunfs_dev *dev;
	unsigned char *w = dev_buf_alloc(256 * KiB);
	unsigned char *r = dev_buf_alloc(256 * KiB);

	ck_assert_int_eq(dev_mem_open(4 * MiB, 512, &dev), 0);
	ck_assert_uint_eq(dev->size, 4 * MiB);
	ck_assert_uint_eq(dev->sector_size, 512);
	ck_assert_str_eq(dev->name, "mem");

	/* Crosses two 64 KiB chunk boundaries, starts mid-chunk. */
	pattern_fill(w, 200 * KiB, 1);
	ck_assert_int_eq(dev_write(dev, w, 200 * KiB, 60 * KiB + 512), 0);
	ck_assert_int_eq(dev_read(dev, r, 200 * KiB, 60 * KiB + 512), 0);
	ck_assert(pattern_check(r, 200 * KiB, 1));

	/* Rewrite a piece inside, check the seams. */
	pattern_fill(w, 1024, 2);
	ck_assert_int_eq(dev_write(dev, w, 1024, 64 * KiB - 512), 0);
	ck_assert_int_eq(dev_read(dev, r, 3 * KiB, 64 * KiB - 1536), 0);
	pattern_fill(w, 200 * KiB, 1);
	ck_assert_int_eq(memcmp(r, w + (64 * KiB - 1536 - (60 * KiB + 512)), 1024), 0);
	ck_assert(pattern_check(r + 1024, 1024, 2));

	/* The last sector of the device. */
	pattern_fill(w, 512, 3);
	ck_assert_int_eq(dev_write(dev, w, 512, 4 * MiB - 512), 0);
	ck_assert_int_eq(dev_read(dev, r, 512, 4 * MiB - 512), 0);
	ck_assert(pattern_check(r, 512, 3));

	dev_close(dev);
	dev_buf_free(w);
	dev_buf_free(r);
}
END_TEST

START_TEST(test_mem_unwritten_reads_zero)
{
	struct lunfs_dev *dev;
	unsigned char *b = dev_buf_alloc(192 * KiB);

	ck_assert_int_eq(dev_mem_open(1 * MiB, 512, &dev), 0);
	memset(b, 0xAA, 192 * KiB);
	ck_assert_int_eq(dev_read(dev, b, 192 * KiB, 0), 0);
	ck_assert(is_zero(b, 192 * KiB));

	/* One sector written inside a chunk: the rest of the chunk is zero. */
	memset(b, 0x5C, 512);
	ck_assert_int_eq(dev_write(dev, b, 512, 70 * KiB), 0);
	memset(b, 0xAA, 192 * KiB);
	ck_assert_int_eq(dev_read(dev, b, 192 * KiB, 0), 0);
	ck_assert(is_zero(b, 70 * KiB));
	ck_assert_uint_eq(b[70 * KiB], 0x5C);
	ck_assert_uint_eq(b[70 * KiB + 511], 0x5C);
	ck_assert(is_zero(b + 70 * KiB + 512, 192 * KiB - 70 * KiB - 512));
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

START_TEST(test_mem_request_checks)
{
	struct lunfs_dev *dev;
	unsigned char *b = dev_buf_alloc(8192);
	struct lunfs_io ios[3];

	ck_assert_int_eq(dev_mem_open(1 * MiB, 512, &dev), 0);
	ck_assert_int_eq(dev_read(dev, b, 512, 100), -EINVAL);         /* offset */
	ck_assert_int_eq(dev_read(dev, b, 100, 0), -EINVAL);           /* length */
	ck_assert_int_eq(dev_read(dev, b, 0, 0), -EINVAL);             /* empty */
	ck_assert_int_eq(dev_read(dev, b + 8, 512, 0), -EINVAL);       /* buffer */
	ck_assert_int_eq(dev_read(dev, NULL, 512, 0), -EINVAL);
	ck_assert_int_eq(dev_read(dev, b, 1024, 1 * MiB - 512), -EINVAL); /* past end */
	ck_assert_int_eq(dev_read(dev, b, 512, 1 * MiB), -EINVAL);
	ck_assert_int_eq(dev_write(dev, b, 512, 2 * MiB), -EINVAL);
	ck_assert_int_eq(dev_write(dev, b, 1024, UINT64_MAX - 511), -EINVAL); /* wraps */
	ck_assert_int_eq(dev_read(dev, b, 512, 1 * MiB - 512), 0);
	ck_assert_int_eq(dev_submit(dev, NULL, 0), 0);

	/* A batch with one bad element: nothing happens at all. */
	memset(b, 0x11, 8192);
	ios[0] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = b, .len = 512, .off = 0 };
	ios[1] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = b, .len = 512, .off = 1 * MiB };
	ios[2] = (struct lunfs_io){ .op = (enum lunfs_io_op)7, .buf = b, .len = 512, .off = 512 };
	ck_assert_int_eq(dev_submit(dev, ios, 3), -EINVAL);
	ck_assert_int_eq(ios[0].res, -ECANCELED);
	ck_assert_int_eq(ios[1].res, -EINVAL);
	ck_assert_int_eq(ios[2].res, -EINVAL);
	ck_assert_int_eq(dev_read(dev, b, 512, 0), 0);
	ck_assert(is_zero(b, 512));

	/* CAW and discard go through the same checks. */
	ck_assert_int_eq(dev_caw(dev, 100, b, b, NULL), -EINVAL);
	ck_assert_int_eq(dev_caw(dev, 1 * MiB, b, b, NULL), -EINVAL);
	ck_assert_int_eq(dev_caw(dev, 0, NULL, b, NULL), -EINVAL);
	ck_assert_int_eq(dev_discard(dev, 100, 512), -EINVAL);
	ck_assert_int_eq(dev_discard(dev, 0, 100), -EINVAL);
	ck_assert_int_eq(dev_discard(dev, 512, 1 * MiB), -EINVAL);
	ck_assert_int_eq(dev_discard(dev, 0, 0), 0);
	ck_assert_int_eq(dev_zero_range(dev, 0, 2 * MiB, NULL, NULL), -EINVAL);
	ck_assert_int_eq(dev_zero_range(dev, 3, 512, NULL, NULL), -EINVAL);
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

START_TEST(test_mem_sector_4k)
{
	struct lunfs_dev *dev;
	unsigned char *b = dev_buf_alloc(8192);

	ck_assert_int_eq(dev_mem_open(1 * MiB, 4096, &dev), 0);
	ck_assert_int_eq(dev_write(dev, b, 512, 0), -EINVAL);
	ck_assert_int_eq(dev_write(dev, b, 4096, 512), -EINVAL);
	ck_assert_int_eq(dev_write(dev, b + 512, 4096, 0), -EINVAL);
	pattern_fill(b, 8192, 9);
	ck_assert_int_eq(dev_write(dev, b, 8192, 4096), 0);
	memset(b, 0, 8192);
	ck_assert_int_eq(dev_read(dev, b, 8192, 4096), 0);
	ck_assert(pattern_check(b, 8192, 9));
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

#define BATCH_N 1000u

START_TEST(test_mem_batch)
{
	struct lunfs_dev *dev;
	struct lunfs_io *ios = calloc(BATCH_N, sizeof(*ios));
	unsigned char *bufs = dev_buf_alloc(BATCH_N * 4096);
	unsigned i;

	ck_assert_int_eq(dev_mem_open(64 * MiB, 512, &dev), 0);
	for (i = 0; i < BATCH_N; i++) {
		/* Scattered, non-overlapping: 4 KiB every 64 KiB + i sectors. */
		ios[i] = (struct lunfs_io){
			.op = LUNFS_IO_WRITE,
			.buf = bufs + i * 4096,
			.len = 4096,
			.off = (uint64_t)i * 64 * KiB + (i % 100) * 512,
		};
		pattern_fill(ios[i].buf, 4096, 100 + i);
	}
	ck_assert_int_eq(dev_submit(dev, ios, BATCH_N), 0);
	for (i = 0; i < BATCH_N; i++) {
		ck_assert_int_eq(ios[i].res, 4096);
		ios[i].op = LUNFS_IO_READ;
	}
	memset(bufs, 0, BATCH_N * 4096);
	ck_assert_int_eq(dev_submit(dev, ios, BATCH_N), 0);
	for (i = 0; i < BATCH_N; i++) {
		ck_assert_int_eq(ios[i].res, 4096);
		ck_assert(pattern_check(ios[i].buf, 4096, 100 + i));
	}
	dev_close(dev);
	dev_buf_free(bufs);
	free(ios);
}
END_TEST

START_TEST(test_mem_flush_discard)
{
	struct lunfs_dev *dev;
	unsigned char *b = dev_buf_alloc(256 * KiB);

	ck_assert_int_eq(dev_mem_open(1 * MiB, 512, &dev), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	pattern_fill(b, 256 * KiB, 5);
	ck_assert_int_eq(dev_write(dev, b, 256 * KiB, 0), 0);
	ck_assert_int_eq(dev_flush(dev), 0);

	/* Partial chunk at both ends, whole chunks in the middle. */
	ck_assert_int_eq(dev_discard(dev, 10 * KiB, 200 * KiB), 0);
	memset(b, 0xEE, 256 * KiB);
	ck_assert_int_eq(dev_read(dev, b, 256 * KiB, 0), 0);
	{
		unsigned char *want = malloc(256 * KiB);

		pattern_fill(want, 256 * KiB, 5);
		ck_assert_int_eq(memcmp(b, want, 10 * KiB), 0);
		ck_assert(is_zero(b + 10 * KiB, 200 * KiB));
		ck_assert_int_eq(memcmp(b + 210 * KiB, want + 210 * KiB, 46 * KiB), 0);
		free(want);
	}
	/* The whole device: walks the table, not the range. */
	ck_assert_int_eq(dev_discard(dev, 0, 1 * MiB), 0);
	ck_assert_int_eq(dev_read(dev, b, 256 * KiB, 0), 0);
	ck_assert(is_zero(b, 256 * KiB));
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

START_TEST(test_mem_caw)
{
	struct lunfs_dev *dev;
	unsigned char expect[512], replace[512], current[512], r[512];
	unsigned char *b = dev_buf_alloc(512);

	ck_assert_int_eq(dev_mem_open(1 * MiB, 512, &dev), 0);
	memset(expect, 0, sizeof(expect));
	memset(replace, 0x42, sizeof(replace));
	/* Unwritten sector reads as zeros, so expect = zeros matches. */
	ck_assert_int_eq(dev_caw(dev, 4096, expect, replace, current), 0);
	ck_assert_int_eq(dev_read(dev, b, 512, 4096), 0);
	ck_assert_int_eq(memcmp(b, replace, 512), 0);

	/* Same expect again: miscompare, current gets the sector. */
	memset(current, 0, sizeof(current));
	memset(r, 0x43, sizeof(r));
	ck_assert_int_eq(dev_caw(dev, 4096, expect, r, current), -ECANCELED);
	ck_assert_int_eq(memcmp(current, replace, 512), 0);
	ck_assert_int_eq(dev_read(dev, b, 512, 4096), 0);
	ck_assert_int_eq(memcmp(b, replace, 512), 0);
	/* current may be NULL. */
	ck_assert_int_eq(dev_caw(dev, 4096, expect, r, NULL), -ECANCELED);
	/* Unaligned caller buffers are fine for CAW. */
	{
		unsigned char big[1025];

		memcpy(big + 1, replace, 512);
		ck_assert_int_eq(dev_caw(dev, 4096, big + 1, r, NULL), 0);
		ck_assert_int_eq(dev_read(dev, b, 512, 4096), 0);
		ck_assert_int_eq(memcmp(b, r, 512), 0);
	}
	/* Last sector of the device. */
	ck_assert_int_eq(dev_caw(dev, 1 * MiB - 512, expect, replace, NULL), 0);
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

struct caw_counter_arg {
	struct lunfs_dev *dev;
	uint64_t off;
	unsigned iters;
	unsigned long retries;
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
			a->retries++;
		}
	}
out:
	free(cur);
	free(next);
	return NULL;
}

#define CAW_THREADS 8u
#define CAW_ITERS 2000u

START_TEST(test_mem_caw_threads)
{
	struct lunfs_dev *dev;
	struct caw_counter_arg args[CAW_THREADS];
	pthread_t th[CAW_THREADS];
	unsigned char *b = dev_buf_alloc(512);
	uint64_t v;
	unsigned i;

	ck_assert_int_eq(dev_mem_open(1 * MiB, 512, &dev), 0);
	for (i = 0; i < CAW_THREADS; i++) {
		args[i] = (struct caw_counter_arg){ .dev = dev, .off = 8192, .iters = CAW_ITERS };
		ck_assert_int_eq(pthread_create(&th[i], NULL, caw_counter_thread, &args[i]), 0);
	}
	for (i = 0; i < CAW_THREADS; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(args[i].err, 0);
	}
	ck_assert_int_eq(dev_read(dev, b, 512, 8192), 0);
	memcpy(&v, b, sizeof(v));
	ck_assert_uint_eq(v, (uint64_t)CAW_THREADS * CAW_ITERS);
	ck_assert(is_zero(b + 8, 504));
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

struct rw_thread_arg {
	struct lunfs_dev *dev;
	unsigned id;
	int ok;
};

/* Each thread owns a 256 KiB region: write, read back, many rounds. */
static void *rw_thread(void *p)
{
	struct rw_thread_arg *a = p;
	unsigned char *b = dev_buf_alloc(16 * KiB);
	unsigned round;

	a->ok = 1;
	for (round = 0; round < 200; round++) {
		uint64_t off = a->id * 256 * KiB + (round % 16) * 16 * KiB;
		uint64_t seed = a->id * 100000u + round;

		pattern_fill(b, 16 * KiB, seed);
		if (dev_write(a->dev, b, 16 * KiB, off) != 0) {
			a->ok = 0;
			break;
		}
		memset(b, 0, 16 * KiB);
		if (dev_read(a->dev, b, 16 * KiB, off) != 0 || !pattern_check(b, 16 * KiB, seed)) {
			a->ok = 0;
			break;
		}
	}
	dev_buf_free(b);
	return NULL;
}

START_TEST(test_mem_threads_rw)
{
	struct lunfs_dev *dev;
	struct rw_thread_arg args[8];
	pthread_t th[8];
	unsigned i;

	ck_assert_int_eq(dev_mem_open(2 * MiB, 512, &dev), 0);
	for (i = 0; i < 8; i++) {
		args[i] = (struct rw_thread_arg){ .dev = dev, .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, rw_thread, &args[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ck_assert(args[i].ok);
	}
	dev_close(dev);
}
END_TEST

START_TEST(test_mem_huge)
{
	struct lunfs_dev *dev;
	unsigned char *b = dev_buf_alloc(128 * KiB);
	uint64_t size = 64 * TiB;

	/* 64 TiB must cost nothing until written (a table of every chunk
	 * would be 2^30 pointers and this would not finish). */
	ck_assert_int_eq(dev_mem_open(size, 4096, &dev), 0);
	ck_assert_uint_eq(dev->size, size);
	ck_assert_int_eq(dev_read(dev, b, 4096, size - 4096), 0);
	ck_assert(is_zero(b, 4096));
	pattern_fill(b, 8192, 77);
	ck_assert_int_eq(dev_write(dev, b, 8192, size - 8192), 0);
	ck_assert_int_eq(dev_write(dev, b, 8192, size / 2), 0);
	memset(b, 0, 8192);
	ck_assert_int_eq(dev_read(dev, b, 8192, size - 8192), 0);
	ck_assert(pattern_check(b, 8192, 77));
	ck_assert_int_eq(dev_write(dev, b, 4096, size), -EINVAL);

	/* Zeroing a fresh range allocates nothing and works. */
	ck_assert_int_eq(dev_zero_range(dev, 0, 64 * MiB, NULL, NULL), 0);

	/* Discard of the whole device is proportional to the data. */
	ck_assert_int_eq(dev_discard(dev, 0, size), 0);
	memset(b, 0xFF, 8192);
	ck_assert_int_eq(dev_read(dev, b, 8192, size - 8192), 0);
	ck_assert(is_zero(b, 8192));
	ck_assert_int_eq(dev_read(dev, b, 8192, size / 2), 0);
	ck_assert(is_zero(b, 8192));
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

struct progress_log {
	unsigned calls;
	uint64_t last_done;
	uint64_t total;
	int monotonic;
};

static void progress_cb(uint64_t done, uint64_t total, void *arg)
{
	struct progress_log *p = arg;

	if (done < p->last_done) {
		p->monotonic = 0;
	}
	p->calls++;
	p->last_done = done;
	p->total = total;
}

START_TEST(test_mem_zero_range)
{
	struct lunfs_dev *dev;
	uint64_t len = 20 * MiB + 3 * 512;
	unsigned char *b = dev_buf_alloc(64 * KiB);
	struct progress_log pl = { .monotonic = 1 };
	uint64_t off;

	ck_assert_int_eq(dev_mem_open(32 * MiB, 512, &dev), 0);
	pattern_fill(b, 64 * KiB, 8);
	for (off = 0; off < 32 * MiB; off += 64 * KiB) {
		ck_assert_int_eq(dev_write(dev, b, 64 * KiB, off), 0);
	}
	ck_assert_int_eq(dev_zero_range(dev, 512, len, progress_cb, &pl), 0);
	/* 8 MiB per batch: 20 MiB and change is three batches. */
	ck_assert_uint_eq(pl.calls, 3);
	ck_assert_uint_eq(pl.last_done, len);
	ck_assert_uint_eq(pl.total, len);
	ck_assert(pl.monotonic);
	ck_assert_int_eq(dev_read(dev, b, 64 * KiB, 0), 0);
	ck_assert_uint_ne(b[0], 0); /* sector 0 untouched (pattern, nonzero here) */
	ck_assert(is_zero(b + 512, 64 * KiB - 512));
	for (off = 64 * KiB; off < 512 + len - 64 * KiB; off += 64 * KiB) {
		ck_assert_int_eq(dev_read(dev, b, 64 * KiB, off), 0);
		ck_assert(is_zero(b, 64 * KiB));
	}
	/* The first sector after the range kept its data. */
	ck_assert_int_eq(dev_read(dev, b, 512, 512 + len), 0);
	ck_assert(!is_zero(b, 512));
	/* A small range: one write, smaller buffer. */
	pl = (struct progress_log){ .monotonic = 1 };
	ck_assert_int_eq(dev_zero_range(dev, 30 * MiB, 1024, progress_cb, &pl), 0);
	ck_assert_uint_eq(pl.calls, 1);
	ck_assert_int_eq(dev_zero_range(dev, 0, 0, NULL, NULL), 0);
	dev_close(dev);
	dev_buf_free(b);
}
END_TEST

static Suite *dev_mem_suite(void)
{
	Suite *s = suite_create("dev_mem");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_buf_alloc);
	tcase_add_test(tc, test_mem_open_invalid);
	tcase_add_test(tc, test_mem_read_after_write);
	tcase_add_test(tc, test_mem_unwritten_reads_zero);
	tcase_add_test(tc, test_mem_request_checks);
	tcase_add_test(tc, test_mem_sector_4k);
	tcase_add_test(tc, test_mem_batch);
	tcase_add_test(tc, test_mem_flush_discard);
	tcase_add_test(tc, test_mem_caw);
	tcase_add_test(tc, test_mem_caw_threads);
	tcase_add_test(tc, test_mem_threads_rw);
	tcase_add_test(tc, test_mem_huge);
	tcase_add_test(tc, test_mem_zero_range);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dev_mem_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
