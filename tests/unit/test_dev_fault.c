/*
 * Unit tests of the fault-injection device (dev/dev_fault.c): every
 * injection on its own, power loss with and without a keep seed (checked
 * against a brute-force model for overlapping writes), freeze and thaw
 * from another thread, latency, counters, and the same on a file device.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lunfs/dev.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define SS 512u

static int is_fill(const void *buf, size_t len, unsigned char v)
{
	const unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] != v) {
			return 0;
		}
	}
	return 1;
}

/* A fault device over a fresh 1 MiB memory device; *lower is kept for
 * looking underneath (the fault device owns and closes it). */
static struct lunfs_dev *fault_mem(struct lunfs_fault **f, struct lunfs_dev **lower)
{
	struct lunfs_dev *mem;
	struct lunfs_dev *dev;

	ck_assert_int_eq(dev_mem_open(1 * MiB, SS, &mem), 0);
	ck_assert_int_eq(dev_fault_open(mem, &dev, f), 0);
	if (lower != NULL) {
		*lower = mem;
	}
	return dev;
}

/* Writes `nsect` sectors of byte v at sector `sect`. */
static int put(struct lunfs_dev *dev, uint64_t sect, unsigned nsect, unsigned char v)
{
	unsigned char *b = dev_buf_alloc(nsect * SS);
	int err;

	memset(b, v, nsect * SS);
	err = dev_write(dev, b, nsect * SS, sect * SS);
	dev_buf_free(b);
	return err;
}

/* First byte of a sector (tests fill whole sectors with one byte), or -1
 * if the sector is not uniform, or an errno. */
static int get(struct lunfs_dev *dev, uint64_t sect)
{
	unsigned char *b = dev_buf_alloc(SS);
	int r;

	r = dev_read(dev, b, SS, sect * SS);
	if (r == 0) {
		r = is_fill(b, SS, b[0]) ? b[0] : -1;
	}
	dev_buf_free(b);
	return r;
}

START_TEST(test_fault_passthrough)
{
	struct lunfs_fault *f;
	struct lunfs_dev *lower;
	struct lunfs_dev *dev = fault_mem(&f, &lower);
	struct lunfs_fault_stats st;
	unsigned char e[SS] = { 0 }, r[SS];

	ck_assert_uint_eq(dev->size, lower->size);
	ck_assert_uint_eq(dev->sector_size, lower->sector_size);
	ck_assert_str_eq(dev->name, lower->name);
	ck_assert_int_eq(put(dev, 3, 2, 0x11), 0);
	ck_assert_int_eq(get(dev, 3), 0x11);
	ck_assert_int_eq(get(lower, 4), 0x11);
	ck_assert_int_eq(get(dev, 5), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	memset(r, 0x22, sizeof(r));
	ck_assert_int_eq(dev_caw(dev, 10 * SS, e, r, NULL), 0);
	ck_assert_int_eq(dev_caw(dev, 10 * SS, e, r, NULL), -ECANCELED);
	ck_assert_int_eq(dev_discard(dev, 3 * SS, SS), 0);
	ck_assert_int_eq(get(dev, 3), 0);
	/* Generic checks still apply above the fault layer. */
	ck_assert_int_eq(put(dev, 1 * MiB / SS, 1, 1), -EINVAL);
	dev_fault_stats(f, &st);
	ck_assert_uint_eq(st.writes, 1);
	ck_assert_uint_eq(st.reads, 3);
	ck_assert_uint_eq(st.flushes, 1);
	ck_assert_uint_eq(st.caws, 2);
	ck_assert_uint_eq(st.discards, 1);
	ck_assert_uint_eq(st.injected, 0);
	ck_assert_uint_eq(st.unflushed_writes, 1); /* the successful CAW */
	ck_assert_uint_eq(st.frozen_waiters, 0);
	dev_close(dev);
}
END_TEST

START_TEST(test_fault_fail_nth_oneshot)
{
	struct lunfs_fault *f;
	struct lunfs_dev *dev = fault_mem(&f, NULL);
	struct lunfs_fault_stats st;

	ck_assert_int_eq(put(dev, 0, 1, 0x33), 0);
	/* A positive errno is taken as its negative. */
	dev_fault_fail_nth(f, LUNFS_FAULT_READ, 3, EIO, false);
	ck_assert_int_eq(get(dev, 0), 0x33);
	ck_assert_int_eq(put(dev, 1, 1, 0x34), 0); /* writes do not count */
	ck_assert_int_eq(get(dev, 0), 0x33);
	ck_assert_int_eq(get(dev, 0), -EIO);
	ck_assert_int_eq(get(dev, 0), 0x33);
	ck_assert_int_eq(get(dev, 0), 0x33);
	dev_fault_stats(f, &st);
	ck_assert_uint_eq(st.injected, 1);

	/* Disarm before it fires. */
	dev_fault_fail_nth(f, LUNFS_FAULT_READ, 2, -EIO, false);
	dev_fault_fail_nth(f, LUNFS_FAULT_READ, 0, -EIO, false);
	ck_assert_int_eq(get(dev, 0), 0x33);
	ck_assert_int_eq(get(dev, 0), 0x33);
	dev_close(dev);
}
END_TEST

START_TEST(test_fault_fail_nth_sticky)
{
	struct lunfs_fault *f;
	struct lunfs_dev *lower;
	struct lunfs_dev *dev = fault_mem(&f, &lower);
	struct lunfs_fault_stats st;

	dev_fault_fail_nth(f, LUNFS_FAULT_WRITE, 2, -ENOSPC, true);
	ck_assert_int_eq(put(dev, 0, 1, 1), 0);
	ck_assert_int_eq(put(dev, 1, 1, 2), -ENOSPC);
	ck_assert_int_eq(put(dev, 2, 1, 3), -ENOSPC);
	ck_assert_int_eq(put(dev, 3, 1, 4), -ENOSPC);
	ck_assert_int_eq(get(dev, 0), 1); /* reads unaffected */
	/* Failed writes never reached the lower device, nor the log. */
	ck_assert_int_eq(get(lower, 1), 0);
	ck_assert_int_eq(get(lower, 3), 0);
	dev_fault_stats(f, &st);
	ck_assert_uint_eq(st.injected, 3);
	ck_assert_uint_eq(st.unflushed_writes, 1);
	dev_fault_fail_nth(f, 0, 0, 0, false);
	ck_assert_int_eq(put(dev, 3, 1, 4), 0);
	ck_assert_int_eq(get(lower, 3), 4);
	dev_close(dev);
}
END_TEST

START_TEST(test_fault_fail_in_batch)
{
	struct lunfs_fault *f;
	struct lunfs_dev *lower;
	struct lunfs_dev *dev = fault_mem(&f, &lower);
	unsigned char *b = dev_buf_alloc(6 * SS);
	struct lunfs_io ios[6];
	unsigned i;

	for (i = 0; i < 6; i++) {
		memset(b + i * SS, 0x40 + i, SS);
		ios[i] = (struct lunfs_io){
			.op = LUNFS_IO_WRITE, .buf = b + i * SS, .len = SS, .off = (uint64_t)i * 2 * SS,
		};
	}
	/* Each I/O of a batch is one operation. */
	dev_fault_fail_nth(f, LUNFS_FAULT_WRITE, 4, -EIO, false);
	ck_assert_int_eq(dev_submit(dev, ios, 6), -EIO);
	for (i = 0; i < 6; i++) {
		if (i == 3) {
			ck_assert_int_eq(ios[i].res, -EIO);
			ck_assert_int_eq(get(lower, i * 2), 0);
		} else {
			ck_assert_int_eq(ios[i].res, SS);
			ck_assert_int_eq(get(lower, i * 2), 0x40 + (int)i);
		}
	}
	dev_buf_free(b);
	dev_close(dev);
}
END_TEST

START_TEST(test_fault_fail_other_ops)
{
	struct lunfs_fault *f;
	struct lunfs_dev *dev = fault_mem(&f, NULL);
	unsigned char e[SS] = { 0 }, r[SS];

	memset(r, 0x5A, sizeof(r));
	dev_fault_fail_nth(f, LUNFS_FAULT_FLUSH, 1, -EIO, false);
	ck_assert_int_eq(dev_flush(dev), -EIO);
	ck_assert_int_eq(dev_flush(dev), 0);

	dev_fault_fail_nth(f, LUNFS_FAULT_CAW, 2, -ETIMEDOUT, false);
	ck_assert_int_eq(dev_caw(dev, 0, e, r, NULL), 0);
	ck_assert_int_eq(dev_caw(dev, 0, r, e, NULL), -ETIMEDOUT);
	ck_assert_int_eq(get(dev, 0), 0x5A); /* the failed CAW did nothing */
	ck_assert_int_eq(dev_caw(dev, 0, r, e, NULL), 0);

	dev_fault_fail_nth(f, LUNFS_FAULT_DISCARD, 1, -EOPNOTSUPP, false);
	ck_assert_int_eq(dev_discard(dev, 0, SS), -EOPNOTSUPP);

	/* A mask of several kinds counts them all. */
	dev_fault_fail_nth(f, LUNFS_FAULT_READ | LUNFS_FAULT_FLUSH, 2, -EIO, false);
	ck_assert_int_eq(dev_flush(dev), 0);
	ck_assert_int_eq(get(dev, 0), -EIO);
	ck_assert_int_eq(dev_flush(dev), 0);
	dev_fault_fail_nth(f, LUNFS_FAULT_ALL, 1, -EIO, true);
	ck_assert_int_eq(get(dev, 0), -EIO);
	ck_assert_int_eq(put(dev, 0, 1, 1), -EIO);
	ck_assert_int_eq(dev_flush(dev), -EIO);
	ck_assert_int_eq(dev_caw(dev, 0, e, r, NULL), -EIO);
	ck_assert_int_eq(dev_discard(dev, 0, SS), -EIO);
	dev_close(dev);
}
END_TEST

START_TEST(test_fault_tear)
{
	struct lunfs_fault *f;
	struct lunfs_dev *lower;
	struct lunfs_dev *dev = fault_mem(&f, &lower);
	struct lunfs_fault_stats st;
	unsigned s;

	ck_assert_int_eq(put(dev, 0, 8, 0xA0), 0);
	dev_fault_tear_nth(f, 2, 3);
	ck_assert_int_eq(put(dev, 0, 8, 0xA1), 0);
	/* The torn write reports success; only its first 3 sectors land. */
	ck_assert_int_eq(put(dev, 0, 8, 0xA2), 0);
	for (s = 0; s < 8; s++) {
		ck_assert_int_eq(get(lower, s), s < 3 ? 0xA2 : 0xA1);
	}
	/* One-shot: the next write is whole. */
	ck_assert_int_eq(put(dev, 0, 8, 0xA3), 0);
	ck_assert_int_eq(get(lower, 7), 0xA3);
	/* Keep nothing: the write vanishes. */
	dev_fault_tear_nth(f, 1, 0);
	ck_assert_int_eq(put(dev, 0, 8, 0xA4), 0);
	ck_assert_int_eq(get(lower, 0), 0xA3);
	/* Keep more than the write: whole. */
	dev_fault_tear_nth(f, 1, 100);
	ck_assert_int_eq(put(dev, 0, 8, 0xA5), 0);
	ck_assert_int_eq(get(lower, 7), 0xA5);
	dev_fault_stats(f, &st);
	ck_assert_uint_eq(st.injected, 3);
	dev_close(dev);
}
END_TEST

START_TEST(test_fault_crash_after)
{
	struct lunfs_fault *f;
	struct lunfs_dev *lower;
	struct lunfs_dev *dev = fault_mem(&f, &lower);
	unsigned char e[SS] = { 0 }, r[SS] = { 1 };

	dev_fault_crash_after(f, 3);
	ck_assert_int_eq(put(dev, 0, 1, 1), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	ck_assert_int_eq(put(dev, 1, 1, 2), 0);
	ck_assert_int_eq(get(dev, 1), 2);
	ck_assert_int_eq(put(dev, 2, 1, 3), -EIO); /* the power goes here */
	ck_assert_int_eq(get(lower, 2), 0);
	/* ... and everything after fails. */
	ck_assert_int_eq(get(dev, 0), -EIO);
	ck_assert_int_eq(put(dev, 4, 1, 5), -EIO);
	ck_assert_int_eq(dev_flush(dev), -EIO);
	ck_assert_int_eq(dev_caw(dev, 0, e, r, NULL), -EIO);
	ck_assert_int_eq(dev_discard(dev, 0, SS), -EIO);
	ck_assert_int_eq(dev_fault_power_cycle(f, 0), 0);
	/* Back up: the flushed write survived, the unflushed one did not. */
	ck_assert_int_eq(get(dev, 0), 1);
	ck_assert_int_eq(get(dev, 1), 0);
	ck_assert_int_eq(get(dev, 2), 0);
	ck_assert_int_eq(put(dev, 2, 1, 3), 0);
	ck_assert_int_eq(get(dev, 2), 3);
	dev_close(dev);
}
END_TEST

START_TEST(test_fault_crash_in_batch_and_caw)
{
	struct lunfs_fault *f;
	struct lunfs_dev *lower;
	struct lunfs_dev *dev = fault_mem(&f, &lower);
	unsigned char *b = dev_buf_alloc(4 * SS);
	struct lunfs_io ios[4];
	unsigned char e[SS] = { 0 }, r[SS];
	unsigned i;

	memset(b, 0x77, 4 * SS);
	for (i = 0; i < 4; i++) {
		ios[i] = (struct lunfs_io){
			.op = LUNFS_IO_WRITE, .buf = b + i * SS, .len = SS, .off = (uint64_t)i * SS,
		};
	}
	dev_fault_crash_after(f, 2);
	ck_assert_int_eq(dev_submit(dev, ios, 4), -EIO);
	ck_assert_int_eq(ios[0].res, SS);
	ck_assert_int_eq(ios[1].res, -EIO);
	ck_assert_int_eq(ios[2].res, -EIO);
	ck_assert_int_eq(ios[3].res, -EIO);
	ck_assert_int_eq(get(lower, 0), 0x77);
	ck_assert_int_eq(get(lower, 1), 0);
	ck_assert_int_eq(dev_fault_power_cycle(f, 0), 0);
	ck_assert_int_eq(get(dev, 0), 0);

	/* CAW counts as a write. */
	memset(r, 0x78, sizeof(r));
	dev_fault_crash_after(f, 2);
	ck_assert_int_eq(put(dev, 5, 1, 9), 0);
	ck_assert_int_eq(dev_caw(dev, 0, e, r, NULL), -EIO);
	ck_assert_int_eq(get(lower, 0), 0);
	ck_assert_int_eq(dev_fault_power_cycle(f, 0), 0);
	ck_assert_int_eq(dev_caw(dev, 0, e, r, NULL), 0);

	/* A write failed by the fail rule still counts for crash and tear. */
	dev_fault_fail_nth(f, LUNFS_FAULT_WRITE, 1, -ENOSPC, false);
	dev_fault_crash_after(f, 3);
	dev_fault_tear_nth(f, 2, 1);
	ck_assert_int_eq(put(dev, 8, 2, 0x81), -ENOSPC);
	ck_assert_int_eq(put(dev, 8, 2, 0x82), 0);
	ck_assert_int_eq(get(lower, 8), 0x82);
	ck_assert_int_eq(get(lower, 9), 0);
	ck_assert_int_eq(put(dev, 8, 2, 0x83), -EIO);
	ck_assert_int_eq(dev_fault_power_cycle(f, 0), 0);
	dev_buf_free(b);
	dev_close(dev);
}
END_TEST

START_TEST(test_fault_power_cycle_drops_unflushed)
{
	struct lunfs_fault *f;
	struct lunfs_dev *dev = fault_mem(&f, NULL);
	struct lunfs_fault_stats st;
	unsigned s;

	ck_assert_int_eq(put(dev, 0, 8, 0x01), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	ck_assert_int_eq(put(dev, 4, 8, 0x02), 0);  /* over the flushed one */
	ck_assert_int_eq(put(dev, 20, 2, 0x03), 0); /* fresh space */
	dev_fault_stats(f, &st);
	ck_assert_uint_eq(st.unflushed_writes, 2);
	ck_assert_int_eq(dev_fault_power_cycle(f, 0), 0);
	dev_fault_stats(f, &st);
	ck_assert_uint_eq(st.unflushed_writes, 0);
	for (s = 0; s < 12; s++) {
		ck_assert_int_eq(get(dev, s), s < 8 ? 0x01 : 0);
	}
	ck_assert_int_eq(get(dev, 20), 0);
	ck_assert_int_eq(get(dev, 21), 0);
	/* A second cycle with nothing unflushed changes nothing. */
	ck_assert_int_eq(dev_fault_power_cycle(f, 0), 0);
	ck_assert_int_eq(get(dev, 0), 0x01);
	dev_close(dev);
}
END_TEST

START_TEST(test_fault_power_cycle_overlap)
{
	struct lunfs_fault *f;
	struct lunfs_dev *dev = fault_mem(&f, NULL);
	unsigned s;

	for (s = 0; s < 16; s++) {
		ck_assert_int_eq(put(dev, s, 1, (unsigned char)(0xE0 + s)), 0);
	}
	ck_assert_int_eq(dev_flush(dev), 0);
	/* Overlapping, unflushed, some written twice: only newest-first
	 * restoring gets back to the flushed image. */
	ck_assert_int_eq(put(dev, 0, 8, 0x01), 0);
	ck_assert_int_eq(put(dev, 4, 8, 0x02), 0);
	ck_assert_int_eq(put(dev, 2, 4, 0x03), 0);
	ck_assert_int_eq(put(dev, 0, 16, 0x04), 0);
	ck_assert_int_eq(put(dev, 6, 1, 0x05), 0);
	ck_assert_int_eq(dev_fault_power_cycle(f, 0), 0);
	for (s = 0; s < 16; s++) {
		ck_assert_int_eq(get(dev, s), 0xE0 + (int)s);
	}
	dev_close(dev);
}
END_TEST

START_TEST(test_fault_flush_boundary)
{
	struct lunfs_fault *f;
	struct lunfs_dev *dev = fault_mem(&f, NULL);

	ck_assert_int_eq(put(dev, 0, 1, 1), 0);
	ck_assert_int_eq(put(dev, 1, 1, 2), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	ck_assert_int_eq(put(dev, 0, 1, 3), 0);
	ck_assert_int_eq(put(dev, 2, 1, 4), 0);
	/* A failed flush covers nothing. */
	dev_fault_fail_nth(f, LUNFS_FAULT_FLUSH, 1, -EIO, false);
	ck_assert_int_eq(dev_flush(dev), -EIO);
	ck_assert_int_eq(dev_fault_power_cycle(f, 0), 0);
	ck_assert_int_eq(get(dev, 0), 1);
	ck_assert_int_eq(get(dev, 1), 2);
	ck_assert_int_eq(get(dev, 2), 0);
	dev_close(dev);
}
END_TEST

START_TEST(test_fault_power_cycle_caw_and_tear)
{
	struct lunfs_fault *f;
	struct lunfs_dev *dev = fault_mem(&f, NULL);
	unsigned char e[SS] = { 0 }, r1[SS], r2[SS];
	unsigned s;

	memset(r1, 0x61, sizeof(r1));
	memset(r2, 0x62, sizeof(r2));
	ck_assert_int_eq(dev_caw(dev, 0, e, r1, NULL), 0);
	ck_assert_int_eq(put(dev, 8, 8, 0x70), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	ck_assert_int_eq(dev_caw(dev, 0, r1, r2, NULL), 0);
	ck_assert_int_eq(dev_caw(dev, SS, e, r2, NULL), 0);
	/* A torn write is undone whole, too. */
	dev_fault_tear_nth(f, 1, 2);
	ck_assert_int_eq(put(dev, 8, 8, 0x71), 0);
	ck_assert_int_eq(get(dev, 8), 0x71);
	ck_assert_int_eq(dev_fault_power_cycle(f, 0), 0);
	ck_assert_int_eq(get(dev, 0), 0x61);
	ck_assert_int_eq(get(dev, 1), 0);
	for (s = 8; s < 16; s++) {
		ck_assert_int_eq(get(dev, s), 0x70);
	}
	dev_close(dev);
}
END_TEST

/* Sector j of write w holds this byte; never 0 and never an initial value. */
static unsigned char wval(unsigned w, unsigned j)
{
	return (unsigned char)(1 + w * 16 + j);
}

/* Non-overlapping writes: each one must come out as a prefix of itself
 * (kept, dropped or torn), a seed must give the same image every time,
 * and over a few seeds all three outcomes must show up. */
#define PREFIX_WRITES 40u
#define PREFIX_LEN 8u

static void prefix_run(uint64_t seed, int *k_out)
{
	struct lunfs_fault *f;
	struct lunfs_dev *dev = fault_mem(&f, NULL);
	unsigned char *b = dev_buf_alloc(PREFIX_LEN * SS);
	unsigned w;
	unsigned j;

	for (w = 0; w < PREFIX_WRITES; w++) {
		for (j = 0; j < PREFIX_LEN; j++) {
			memset(b + j * SS, wval(w % 15, j), SS);
		}
		ck_assert_int_eq(dev_write(dev, b, PREFIX_LEN * SS, (uint64_t)w * PREFIX_LEN * SS), 0);
	}
	ck_assert_int_eq(dev_fault_power_cycle(f, seed), 0);
	for (w = 0; w < PREFIX_WRITES; w++) {
		int k = 0;

		while (k < (int)PREFIX_LEN && get(dev, w * PREFIX_LEN + (unsigned)k) == wval(w % 15, (unsigned)k)) {
			k++;
		}
		for (j = (unsigned)k; j < PREFIX_LEN; j++) {
			ck_assert_int_eq(get(dev, w * PREFIX_LEN + j), 0);
		}
		k_out[w] = k;
	}
	dev_buf_free(b);
	dev_close(dev);
}

START_TEST(test_fault_seeded_prefixes)
{
	int k1[PREFIX_WRITES], k2[PREFIX_WRITES];
	unsigned kept = 0, dropped = 0, torn = 0;
	uint64_t seed;
	unsigned w;

	for (seed = 1; seed <= 10; seed++) {
		prefix_run(seed, k1);
		prefix_run(seed, k2);
		ck_assert_int_eq(memcmp(k1, k2, sizeof(k1)), 0);
		for (w = 0; w < PREFIX_WRITES; w++) {
			if (k1[w] == 0) {
				dropped++;
			} else if (k1[w] == (int)PREFIX_LEN) {
				kept++;
			} else {
				torn++;
			}
		}
	}
	ck_assert_uint_gt(kept, 0);
	ck_assert_uint_gt(dropped, 0);
	ck_assert_uint_gt(torn, 0);
	/* Seed 0: drop everything. */
	prefix_run(0, k1);
	for (w = 0; w < PREFIX_WRITES; w++) {
		ck_assert_int_eq(k1[w], 0);
	}
}
END_TEST

/* Overlapping writes with a seed: the image after the power cycle must be
 * what some choice of kept prefixes (k_w in 0..4 for each write w, applied
 * in order over the flushed image) produces. Checked by trying all 5^4
 * choices. */
#define MODEL_SECT 16u
#define MODEL_WRITES 4u
#define MODEL_LEN 4u

static uint64_t model_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

START_TEST(test_fault_seeded_overlap_model)
{
	uint64_t seed;
	unsigned outcomes_seen = 0;
	int first_image[MODEL_SECT] = { 0 };

	for (seed = 1; seed <= 300; seed++) {
		struct lunfs_fault *f;
		struct lunfs_dev *dev = fault_mem(&f, NULL);
		unsigned char *b = dev_buf_alloc(MODEL_LEN * SS);
		uint64_t rs = seed * 7919;
		unsigned off[MODEL_WRITES];
		int image[MODEL_SECT];
		unsigned combo;
		unsigned w, j, s;
		int matched = 0;

		for (s = 0; s < MODEL_SECT; s++) {
			ck_assert_int_eq(put(dev, s, 1, (unsigned char)(0xE0 + s)), 0);
		}
		ck_assert_int_eq(dev_flush(dev), 0);
		for (w = 0; w < MODEL_WRITES; w++) {
			off[w] = (unsigned)(model_rand(&rs) % (MODEL_SECT - MODEL_LEN + 1));
			for (j = 0; j < MODEL_LEN; j++) {
				memset(b + j * SS, wval(w, j), SS);
			}
			ck_assert_int_eq(dev_write(dev, b, MODEL_LEN * SS, (uint64_t)off[w] * SS), 0);
		}
		ck_assert_int_eq(dev_fault_power_cycle(f, seed), 0);
		for (s = 0; s < MODEL_SECT; s++) {
			image[s] = get(dev, s);
		}
		for (combo = 0; combo < 625 && !matched; combo++) {
			int model[MODEL_SECT];
			unsigned c = combo;

			for (s = 0; s < MODEL_SECT; s++) {
				model[s] = 0xE0 + (int)s;
			}
			for (w = 0; w < MODEL_WRITES; w++) {
				unsigned k = c % 5;

				c /= 5;
				for (j = 0; j < k; j++) {
					model[off[w] + j] = wval(w, j);
				}
			}
			matched = memcmp(model, image, sizeof(model)) == 0;
		}
		ck_assert_msg(matched, "seed %llu: image matches no kept-prefix choice",
			      (unsigned long long)seed);
		if (seed == 1) {
			memcpy(first_image, image, sizeof(image));
		} else if (memcmp(first_image, image, sizeof(image)) != 0) {
			outcomes_seen++;
		}
		dev_buf_free(b);
		dev_close(dev);
	}
	/* The seed matters. */
	ck_assert_uint_gt(outcomes_seen, 0);
}
END_TEST

struct frozen_reader {
	struct lunfs_dev *dev;
	atomic_int done;
	int err;
};

static void *frozen_reader_thread(void *p)
{
	struct frozen_reader *a = p;
	unsigned char *b = dev_buf_alloc(SS);

	a->err = dev_read(a->dev, b, SS, 0);
	if (a->err == 0 && b[0] != 0x66) {
		a->err = -EBADMSG;
	}
	atomic_store(&a->done, 1);
	dev_buf_free(b);
	return NULL;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)ms * 1000000L };

	nanosleep(&ts, NULL);
}

START_TEST(test_fault_freeze_thaw)
{
	struct lunfs_fault *f;
	struct lunfs_dev *dev = fault_mem(&f, NULL);
	struct lunfs_fault_stats st;
	struct frozen_reader a = { .dev = dev };
	pthread_t th;
	unsigned waited;

	ck_assert_int_eq(put(dev, 0, 1, 0x66), 0);
	dev_fault_freeze(f, true);
	ck_assert_int_eq(pthread_create(&th, NULL, frozen_reader_thread, &a), 0);
	/* Wait (polling, no deadline assumed) until the reader is parked. */
	for (waited = 0; waited < 60000; waited++) {
		dev_fault_stats(f, &st);
		if (st.frozen_waiters == 1) {
			break;
		}
		sleep_ms(1);
	}
	ck_assert_uint_eq(st.frozen_waiters, 1);
	ck_assert_int_eq(atomic_load(&a.done), 0);
	/* Stats and the control calls do not block while frozen. */
	dev_fault_latency(f, 0);
	dev_fault_freeze(f, false);
	pthread_join(th, NULL);
	ck_assert_int_eq(atomic_load(&a.done), 1);
	ck_assert_int_eq(a.err, 0);
	dev_fault_stats(f, &st);
	ck_assert_uint_eq(st.frozen_waiters, 0);
	dev_close(dev);
}
END_TEST

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

START_TEST(test_fault_latency)
{
	struct lunfs_fault *f;
	struct lunfs_dev *dev = fault_mem(&f, NULL);
	uint64_t t0;
	unsigned i;

	/* Only a lower bound: a sleep is never shorter than asked. */
	dev_fault_latency(f, 3000);
	t0 = mono_us();
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(get(dev, i), 0);
	}
	ck_assert_int_eq(dev_flush(dev), 0);
	ck_assert_uint_ge(mono_us() - t0, 6 * 3000);
	dev_fault_latency(f, 0);
	ck_assert_int_eq(get(dev, 0), 0);
	dev_close(dev);
}
END_TEST

START_TEST(test_fault_on_file)
{
	char path[] = "/dev/shm/lunfs-test-dev-fault-XXXXXX";
	struct lunfs_dev *lower;
	struct lunfs_dev *dev;
	struct lunfs_fault *f;
	unsigned char *b;
	uint32_t ss;
	int fd;

	fd = mkstemp(path);
	if (fd < 0) {
		strcpy(path, "/tmp/lunfs-test-dev-fault-XXXXXX");
		fd = mkstemp(path);
	}
	ck_assert_int_ge(fd, 0);
	/* Unlinked as soon as the device holds it: nothing left behind even
	 * if an assertion below fails. */
	ck_assert_int_eq(ftruncate(fd, 4 * MiB), 0);
	close(fd);
	ck_assert_int_eq(dev_file_open(path, NULL, &lower), 0);
	unlink(path);
	ss = lower->sector_size;
	ck_assert_int_eq(dev_fault_open(lower, &dev, &f), 0);
	ck_assert_uint_eq(dev->size, 4 * MiB);
	ck_assert_uint_eq(dev->sector_size, ss);
	b = dev_buf_alloc(64 * KiB);
	memset(b, 0x31, 64 * KiB);
	ck_assert_int_eq(dev_write(dev, b, 64 * KiB, 0), 0);
	ck_assert_int_eq(dev_flush(dev), 0);
	memset(b, 0x32, 64 * KiB);
	ck_assert_int_eq(dev_write(dev, b, 32 * KiB, 16 * KiB), 0);
	ck_assert_int_eq(dev_write(dev, b, 64 * KiB, 1 * MiB), 0);
	ck_assert_int_eq(dev_fault_power_cycle(f, 0), 0);
	ck_assert_int_eq(dev_read(dev, b, 64 * KiB, 0), 0);
	ck_assert(is_fill(b, 64 * KiB, 0x31));
	ck_assert_int_eq(dev_read(dev, b, 64 * KiB, 1 * MiB), 0);
	ck_assert(is_fill(b, 64 * KiB, 0));
	dev_buf_free(b);
	dev_close(dev);
}
END_TEST

/* Writers racing through one fault device, then a power cycle: whatever
 * interleaving happened, the undo log brings back the flushed image. */
struct racer_arg {
	struct lunfs_dev *dev;
	unsigned id;
	int err;
};

static void *racer_thread(void *p)
{
	struct racer_arg *a = p;
	unsigned char *b = dev_buf_alloc(8 * SS);
	unsigned i;

	memset(b, 0x90 + (int)a->id, 8 * SS);
	for (i = 0; i < 200 && a->err == 0; i++) {
		/* Overlapping ranges across threads on purpose. */
		uint64_t sect = (i * 7 + a->id * 3) % 56;

		a->err = dev_write(a->dev, b, 8 * SS, sect * SS);
	}
	dev_buf_free(b);
	return NULL;
}

START_TEST(test_fault_concurrent_writes_undo)
{
	struct lunfs_fault *f;
	struct lunfs_dev *dev = fault_mem(&f, NULL);
	struct racer_arg args[4];
	pthread_t th[4];
	unsigned s;
	unsigned i;

	for (s = 0; s < 64; s++) {
		ck_assert_int_eq(put(dev, s, 1, (unsigned char)(0xC0 + (s % 32))), 0);
	}
	ck_assert_int_eq(dev_flush(dev), 0);
	for (i = 0; i < 4; i++) {
		args[i] = (struct racer_arg){ .dev = dev, .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, racer_thread, &args[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(args[i].err, 0);
	}
	ck_assert_int_eq(dev_fault_power_cycle(f, 0), 0);
	for (s = 0; s < 64; s++) {
		ck_assert_int_eq(get(dev, s), 0xC0 + (int)(s % 32));
	}
	dev_close(dev);
}
END_TEST

static Suite *dev_fault_suite(void)
{
	Suite *s = suite_create("dev_fault");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_fault_passthrough);
	tcase_add_test(tc, test_fault_fail_nth_oneshot);
	tcase_add_test(tc, test_fault_fail_nth_sticky);
	tcase_add_test(tc, test_fault_fail_in_batch);
	tcase_add_test(tc, test_fault_fail_other_ops);
	tcase_add_test(tc, test_fault_tear);
	tcase_add_test(tc, test_fault_crash_after);
	tcase_add_test(tc, test_fault_crash_in_batch_and_caw);
	tcase_add_test(tc, test_fault_power_cycle_drops_unflushed);
	tcase_add_test(tc, test_fault_power_cycle_overlap);
	tcase_add_test(tc, test_fault_flush_boundary);
	tcase_add_test(tc, test_fault_power_cycle_caw_and_tear);
	tcase_add_test(tc, test_fault_seeded_prefixes);
	tcase_add_test(tc, test_fault_seeded_overlap_model);
	tcase_add_test(tc, test_fault_freeze_thaw);
	tcase_add_test(tc, test_fault_latency);
	tcase_add_test(tc, test_fault_on_file);
	tcase_add_test(tc, test_fault_concurrent_writes_undo);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dev_fault_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
