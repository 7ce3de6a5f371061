/*
 * Unit tests of the metadata cache (fs/mcache.c) on the memory device and
 * on a fault device stacked on it: entries read what the device holds, one
 * entry per address, MC_NOREAD starts from zeros, the bound holds for
 * unreferenced clean entries while pinned and dirty ones are never
 * evicted, read errors are not cached, and threads asking for the same
 * address at once share one entry and one read.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../fs/fs_internal.h"
#include "lunfs/dev.h"

#define MiB (1024ull * 1024ull)
#define BLK 4096u
#define DEV_SIZE (64ull * MiB)

/* Fill the device range [off, off+len) with a pattern of its address. */
static void pattern_fill(uint8_t *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = (off + i) * 0x9E3779B97F4A7C15ull;

		memcpy(buf + i, &w, 8);
	}
}

static bool pattern_check(const uint8_t *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = (off + i) * 0x9E3779B97F4A7C15ull;

		if (memcmp(buf + i, &w, 8) != 0) {
			return false;
		}
	}
	return true;
}

static void dev_pattern_write(struct lunfs_dev *dev, uint64_t off, size_t len)
{
	uint8_t *buf = dev_buf_alloc(len);

	ck_assert_ptr_nonnull(buf);
	pattern_fill(buf, len, off);
	ck_assert_int_eq(dev_write(dev, buf, len, off), 0);
	dev_buf_free(buf);
}

START_TEST(test_mc_get_reads_and_shares)
{
	struct lunfs_dev *dev;
	struct mcache *mc;
	struct mc_entry *a, *b, *r;

	ck_assert_int_eq(dev_mem_open(DEV_SIZE, 512, &dev), 0);
	dev_pattern_write(dev, 0, 1 * MiB);
	ck_assert_int_eq(mc_create(dev, 1 * MiB, &mc), 0);

	ck_assert_int_eq(mc_get(mc, 8 * BLK, BLK, 0, &a), 0);
	ck_assert_uint_eq(a->addr, 8 * BLK);
	ck_assert_uint_eq(a->len, BLK);
	ck_assert_int_eq(a->valid, 0);
	ck_assert_uint_eq(a->dirty_tid, 0);
	ck_assert(pattern_check(a->buf, BLK, 8 * BLK));
	ck_assert_int_eq(mc_get(mc, 8 * BLK, BLK, 0, &b), 0);
	ck_assert_ptr_eq(a, b);
	ck_assert_uint_eq(a->refs, 2);

	/* A record: one sector, aligned for the device. */
	ck_assert_int_eq(mc_get(mc, 3 * 512, 512, 0, &r), 0);
	ck_assert_uint_eq((uintptr_t)r->buf % 512, 0);
	ck_assert(pattern_check(r->buf, 512, 3 * 512));

	/* The same address with another length while in use is a bug. */
	{
		struct mc_entry *x;

		ck_assert_int_eq(mc_get(mc, 8 * BLK, 512, 0, &x), -EINVAL);
		ck_assert_ptr_null(x);
	}
	/* Bad geometry. */
	{
		struct mc_entry *x;

		ck_assert_int_eq(mc_get(mc, 100, 512, 0, &x), -EINVAL);
		ck_assert_int_eq(mc_get(mc, 0, 1000, 0, &x), -EINVAL);
		ck_assert_int_eq(mc_get(mc, 0, 8192, 0, &x), -EINVAL);
	}
	mc_put(mc, b);
	mc_put(mc, a);
	mc_put(mc, r);

	/* Unreferenced and clean: another length now replaces it. */
	ck_assert_int_eq(mc_get(mc, 8 * BLK, 512, 0, &a), 0);
	ck_assert_uint_eq(a->len, 512);
	ck_assert(pattern_check(a->buf, 512, 8 * BLK));
	mc_put(mc, a);

	/* Changes in the cache stay until dropped; then the device wins. */
	ck_assert_int_eq(mc_get(mc, 9 * BLK, BLK, 0, &a), 0);
	memset(a->buf, 0xAB, BLK);
	mc_put(mc, a);
	ck_assert_int_eq(mc_get(mc, 9 * BLK, BLK, 0, &a), 0);
	ck_assert_uint_eq(((uint8_t *)a->buf)[100], 0xAB);
	mc_put(mc, a);
	mc_drop_clean(mc);
	ck_assert_int_eq(mc_get(mc, 9 * BLK, BLK, 0, &a), 0);
	ck_assert(pattern_check(a->buf, BLK, 9 * BLK));

	/* MC_NOREAD: zeros, also over a cached entry. */
	ck_assert_int_eq(mc_get(mc, 9 * BLK, BLK, MC_NOREAD, &b), 0);
	ck_assert_ptr_eq(a, b);
	ck_assert(buf_is_zero(b->buf, BLK));
	mc_put(mc, b);
	mc_put(mc, a);
	ck_assert_int_eq(mc_get(mc, 20 * BLK, BLK, MC_NOREAD, &a), 0);
	ck_assert(buf_is_zero(a->buf, BLK));
	mc_put(mc, a);

	mc_destroy(mc);
	dev_close(dev);
}
END_TEST

START_TEST(test_mc_bound_respected)
{
	struct lunfs_dev *dev;
	struct mcache *mc;
	struct mc_entry *pinned[16];
	struct mc_entry *e;
	uint64_t bytes, entries, bound = 64 * 1024;

	ck_assert_int_eq(dev_mem_open(DEV_SIZE, 512, &dev), 0);
	dev_pattern_write(dev, 0, 8 * MiB);
	ck_assert_int_eq(mc_create(dev, bound, &mc), 0);

	/* Unreferenced clean entries: never over the bound after a put. */
	for (uint64_t i = 0; i < 1000; i++) {
		uint32_t len = i % 3 == 0 ? 512u : BLK;
		uint64_t addr = (i % 1500) * BLK;

		ck_assert_int_eq(mc_get(mc, addr, len, 0, &e), 0);
		ck_assert(pattern_check(e->buf, len, addr));
		mc_put(mc, e);
		mc_stats(mc, &bytes, &entries);
		ck_assert_uint_le(bytes, bound);
	}
	ck_assert_uint_gt(entries, 0);

	/* Pinned entries push it over, and survive: their in-memory changes
	 * are still there afterwards. */
	for (unsigned i = 0; i < 16; i++) {
		ck_assert_int_eq(mc_get(mc, (2000 + i) * BLK, BLK, 0, &pinned[i]), 0);
		memset(pinned[i]->buf, (int)(i + 1), BLK);
	}
	/* A dirty entry with no reference (not how the journal does it, but
	 * the eviction check must hold on its own). */
	ck_assert_int_eq(mc_get(mc, 3000 * BLK, BLK, 0, &e), 0);
	memset(e->buf, 0x77, BLK);
	e->dirty_tid = 42;
	mc_put(mc, e);
	for (uint64_t i = 0; i < 500; i++) {
		struct mc_entry *x;

		ck_assert_int_eq(mc_get(mc, (100 + i) * BLK, BLK, 0, &x), 0);
		mc_put(mc, x);
	}
	mc_drop_clean(mc);
	mc_stats(mc, &bytes, &entries);
	ck_assert_uint_eq(entries, 17);
	for (unsigned i = 0; i < 16; i++) {
		struct mc_entry *x;

		ck_assert_int_eq(mc_get(mc, (2000 + i) * BLK, BLK, 0, &x), 0);
		ck_assert_ptr_eq(x, pinned[i]);
		ck_assert_uint_eq(((uint8_t *)x->buf)[7], i + 1);
		mc_put(mc, x);
		mc_put(mc, pinned[i]);
	}
	ck_assert_int_eq(mc_get(mc, 3000 * BLK, BLK, 0, &e), 0);
	ck_assert_uint_eq(((uint8_t *)e->buf)[9], 0x77);
	e->dirty_tid = 0;
	mc_put(mc, e);
	mc_drop_clean(mc);
	mc_stats(mc, &bytes, &entries);
	ck_assert_uint_eq(entries, 0);
	ck_assert_uint_eq(bytes, 0);

	mc_destroy(mc);
	dev_close(dev);
}
END_TEST

START_TEST(test_mc_read_error_not_cached)
{
	struct lunfs_dev *mem, *dev;
	struct lunfs_fault *f;
	struct mcache *mc;
	struct mc_entry *e;

	ck_assert_int_eq(dev_mem_open(DEV_SIZE, 512, &mem), 0);
	dev_pattern_write(mem, 0, 1 * MiB);
	ck_assert_int_eq(dev_fault_open(mem, &dev, &f), 0);
	ck_assert_int_eq(mc_create(dev, 1 * MiB, &mc), 0);

	dev_fault_fail_nth(f, LUNFS_FAULT_READ, 1, EIO, false);
	ck_assert_int_eq(mc_get(mc, 5 * BLK, BLK, 0, &e), -EIO);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(mc_get(mc, 5 * BLK, BLK, 0, &e), 0);
	ck_assert(pattern_check(e->buf, BLK, 5 * BLK));
	mc_put(mc, e);
	/* MC_NOREAD does no I/O at all. */
	dev_fault_fail_nth(f, LUNFS_FAULT_READ, 1, EIO, true);
	ck_assert_int_eq(mc_get(mc, 6 * BLK, BLK, MC_NOREAD, &e), 0);
	mc_put(mc, e);
	dev_fault_fail_nth(f, LUNFS_FAULT_READ, 0, 0, false);

	mc_destroy(mc);
	dev_close(dev);
}
END_TEST

/* ---- threads ---- */

#define NTHREADS 8
#define NROUNDS 50

struct race {
	struct mcache *mc;
	pthread_barrier_t bar;
	struct mc_entry *seen[NROUNDS][NTHREADS];
	int bad;
};

struct race_arg {
	struct race *r;
	unsigned id;
};

static void *race_main(void *arg)
{
	struct race_arg *a = arg;
	struct race *r = a->r;

	for (unsigned round = 0; round < NROUNDS; round++) {
		uint64_t addr = (uint64_t)(round + 10) * BLK;
		struct mc_entry *e = NULL;

		pthread_barrier_wait(&r->bar);
		if (mc_get(r->mc, addr, BLK, 0, &e) != 0 || !pattern_check(e->buf, BLK, addr)) {
			__atomic_add_fetch(&r->bad, 1, __ATOMIC_RELAXED);
		}
		r->seen[round][a->id] = e;
		/* Everyone holds the entry before anyone lets go of it, so
		 * they must all have the same one. */
		pthread_barrier_wait(&r->bar);
		/* Unrelated traffic: churn other addresses through a small
		 * cache while holding this one. */
		for (unsigned k = 0; k < 20; k++) {
			struct mc_entry *x;
			uint64_t other = (uint64_t)(200 + (a->id * 31 + k * 7) % 100) * BLK;

			if (mc_get(r->mc, other, BLK, 0, &x) != 0 || !pattern_check(x->buf, BLK, other)) {
				__atomic_add_fetch(&r->bad, 1, __ATOMIC_RELAXED);
				continue;
			}
			mc_put(r->mc, x);
		}
		if (e != NULL) {
			mc_put(r->mc, e);
		}
	}
	return NULL;
}

START_TEST(test_mc_concurrent_get)
{
	struct lunfs_dev *mem, *dev;
	struct lunfs_fault *f;
	struct race *r;
	pthread_t th[NTHREADS];
	struct race_arg args[NTHREADS];
	uint64_t entries;

	ck_assert_int_eq(dev_mem_open(DEV_SIZE, 512, &mem), 0);
	dev_pattern_write(mem, 0, 4 * MiB);
	ck_assert_int_eq(dev_fault_open(mem, &dev, &f), 0);
	r = calloc(1, sizeof(*r));
	ck_assert_ptr_nonnull(r);
	/* Small bound: eviction runs all the time under the threads. */
	ck_assert_int_eq(mc_create(dev, 32 * 1024, &r->mc), 0);
	ck_assert_int_eq(pthread_barrier_init(&r->bar, NULL, NTHREADS), 0);

	for (unsigned i = 0; i < NTHREADS; i++) {
		args[i] = (struct race_arg){ .r = r, .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, race_main, &args[i]), 0);
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
	}
	ck_assert_int_eq(r->bad, 0);
	for (unsigned round = 0; round < NROUNDS; round++) {
		for (unsigned i = 1; i < NTHREADS; i++) {
			ck_assert_ptr_eq(r->seen[round][i], r->seen[round][0]);
		}
	}
	mc_drop_clean(r->mc);
	mc_stats(r->mc, NULL, &entries);
	ck_assert_uint_eq(entries, 0);

	pthread_barrier_destroy(&r->bar);
	mc_destroy(r->mc);
	free(r);
	dev_close(dev);
}
END_TEST

/* Many threads miss on one address while its read is slow: one read. */
struct once {
	struct mcache *mc;
	pthread_barrier_t bar;
	struct mc_entry *seen[NTHREADS];
};

static void *once_main(void *arg)
{
	struct race_arg *a = arg;
	struct once *o = (struct once *)(void *)a->r;
	struct mc_entry *e = NULL;

	pthread_barrier_wait(&o->bar);
	if (mc_get(o->mc, 77 * BLK, BLK, 0, &e) == 0) {
		o->seen[a->id] = e;
	}
	pthread_barrier_wait(&o->bar);
	return NULL;
}

START_TEST(test_mc_concurrent_miss_reads_once)
{
	struct lunfs_dev *mem, *dev;
	struct lunfs_fault *f;
	struct lunfs_fault_stats st0, st1;
	struct once *o;
	pthread_t th[NTHREADS];
	struct race_arg args[NTHREADS];

	ck_assert_int_eq(dev_mem_open(DEV_SIZE, 512, &mem), 0);
	dev_pattern_write(mem, 0, 1 * MiB);
	ck_assert_int_eq(dev_fault_open(mem, &dev, &f), 0);
	o = calloc(1, sizeof(*o));
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(mc_create(dev, 1 * MiB, &o->mc), 0);
	ck_assert_int_eq(pthread_barrier_init(&o->bar, NULL, NTHREADS), 0);
	/* A slow read makes the others find the entry loading (this
	 * widens the window; correctness does not depend on it). */
	dev_fault_latency(f, 20000);
	dev_fault_stats(f, &st0);
	for (unsigned i = 0; i < NTHREADS; i++) {
		args[i] = (struct race_arg){ .r = (struct race *)(void *)o, .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, once_main, &args[i]), 0);
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
	}
	dev_fault_stats(f, &st1);
	dev_fault_latency(f, 0);
	ck_assert_uint_eq(st1.reads - st0.reads, 1);
	for (unsigned i = 0; i < NTHREADS; i++) {
		ck_assert_ptr_nonnull(o->seen[i]);
		ck_assert_ptr_eq(o->seen[i], o->seen[0]);
	}
	ck_assert_uint_eq(o->seen[0]->refs, NTHREADS);
	ck_assert(pattern_check(o->seen[0]->buf, BLK, 77 * BLK));
	for (unsigned i = 0; i < NTHREADS; i++) {
		mc_put(o->mc, o->seen[i]);
	}
	pthread_barrier_destroy(&o->bar);
	mc_destroy(o->mc);
	free(o);
	dev_close(dev);
}
END_TEST

static Suite *mcache_suite(void)
{
	Suite *s = suite_create("mcache");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_mc_get_reads_and_shares);
	tcase_add_test(tc, test_mc_bound_respected);
	tcase_add_test(tc, test_mc_read_error_not_cached);
	tcase_add_test(tc, test_mc_concurrent_get);
	tcase_add_test(tc, test_mc_concurrent_miss_reads_once);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mcache_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
