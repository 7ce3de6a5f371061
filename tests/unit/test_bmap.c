/*
 * Unit tests of the block maps (fs/bmap.c) on a mounted memory volume:
 * set/lookup across heights 1..4 up to a 64 TiB offset on a sparse 64 TiB
 * volume (and back down to no map, every node freed), run computation for
 * mapped and hole runs, punch over several leaves in bounded steps (file
 * units and map nodes returned), next_mapped over a sparse map, META maps
 * forcing written = ~0, persistence across a remount, and a corrupt node
 * giving -EUCLEAN.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_testvol.h"
#include "lunfs/cluster.h"
#include "lunfs/inode.h"
#include "lunfs/map.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define TiB (1024ull * GiB)

static struct fs_testvol T;

static void teardown(void)
{
	fs_testvol_destroy(&T);
}

static void vol_up(uint64_t size, uint32_t bs)
{
	struct fs_testvol_opts o;

	memset(&o, 0, sizeof(o));
	o.size = size;
	o.file_block_size = bs;
	ck_assert_int_eq(fs_testvol_create(&o, &T), 0);
}

static int map_set(struct inode_mem *im, uint64_t lblk, uint64_t addr, uint64_t flags, uint64_t written)
{
	struct lunfs_vol *v = T.v;
	struct lunfs_map_entry e = { .addr = addr, .flags = flags, .written = written };
	struct jnl_handle *h;
	int r, r2;

	pthread_mutex_lock(&v->meta_lock);
	r = jnl_start(v->jnl, bmap_set_credits(im), &h);
	if (r == 0) {
		pthread_rwlock_wrlock(&im->lock);
		r = bmap_set(v, h, im, lblk, &e);
		pthread_rwlock_unlock(&im->lock);
		r2 = jnl_stop(h, false);
		r = r != 0 ? r : r2;
	}
	pthread_mutex_unlock(&v->meta_lock);
	return r;
}

static void map_expect(struct inode_mem *im, uint64_t lblk, uint64_t addr, uint64_t written,
		       uint64_t run)
{
	struct lunfs_map_entry e;
	uint64_t r;

	pthread_rwlock_rdlock(&im->lock);
	ck_assert_int_eq(bmap_lookup(T.v, im, lblk, &e, &r), 0);
	pthread_rwlock_unlock(&im->lock);
	ck_assert_msg(e.addr == addr, "lblk %llu: addr %llx, expected %llx", (unsigned long long)lblk,
		      (unsigned long long)e.addr, (unsigned long long)addr);
	if (addr != 0) {
		ck_assert_uint_eq(e.written, written);
	}
	if (run != 0) {
		ck_assert_msg(r == run, "lblk %llu: run %llu, expected %llu", (unsigned long long)lblk,
			      (unsigned long long)r, (unsigned long long)run);
	}
}

static uint64_t meta_used(void)
{
	uint64_t u;

	ck_assert_int_eq(fs_testvol_units_used(&T, LUNFS_CLUSTER_META, &u), 0);
	return u;
}

static uint64_t file_used(void)
{
	uint64_t u;

	ck_assert_int_eq(fs_testvol_units_used(&T, LUNFS_CLUSTER_FILE, &u), 0);
	return u;
}

/* A fake physical address: maps that are only looked up need no real
 * allocation (bmap_set does not free or check data blocks). */
static uint64_t fake(uint64_t lblk)
{
	return 1 * TiB + (lblk % 1000000) * MiB;
}

START_TEST(test_bmap_heights)
{
	/* 64 TiB offset at 1 MiB blocks = lblk 2^26, which needs height 4. */
	const uint64_t lblks[] = { 0, 250, 251, 126252, 126253, 63505258, 63505259,
				   64 * TiB / MiB, 64 * TiB / MiB + 1 };
	const uint8_t heights[] = { 1, 1, 2, 2, 3, 3, 4, 4, 4 };
	const size_t n = sizeof(lblks) / sizeof(lblks[0]);
	struct inode_mem *im;
	uint64_t meta0;

	vol_up(64 * TiB, 0);
	ck_assert_uint_eq(T.v->sb.file_block_size, MiB);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	meta0 = meta_used();
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(map_set(im, lblks[i], fake(lblks[i]), 0, ~0ull), 0);
		ck_assert_uint_eq(im->di.map_height, heights[i]);
		for (size_t j = 0; j <= i; j++) {
			map_expect(im, lblks[j], fake(lblks[j]), ~0ull, 0);
		}
	}
	/* Neighbours are holes. */
	map_expect(im, 1, 0, 0, 0);
	map_expect(im, 64 * TiB / MiB + 2, 0, 0, 0);
	/* Beyond the reach of height 4: a hole up to the end of everything. */
	map_expect(im, map_span(4), 0, 0, UINT64_MAX - map_span(4));
	ck_assert_int_eq(map_set(im, map_span(6), fake(1), 0, 1), -EFBIG);
	/* Entries survive a remount. */
	{
		uint64_t ino = im->ino;

		inode_put(T.v, im);
		ck_assert_int_eq(fs_testvol_unmount(&T), 0);
		ck_assert_int_eq(fs_testvol_mount(&T), 0);
		ck_assert_int_eq(inode_get(T.v, ino, &im), 0);
	}
	ck_assert_uint_eq(im->di.map_height, 4);
	for (size_t j = 0; j < n; j++) {
		map_expect(im, lblks[j], fake(lblks[j]), ~0ull, 0);
	}
	/* Removing everything frees every node and leaves no map. */
	for (size_t i = n; i-- > 0;) {
		ck_assert_int_eq(map_set(im, lblks[i], 0, 0, 0), 0);
		map_expect(im, lblks[i], 0, 0, 0);
		for (size_t j = 0; j < i; j++) {
			map_expect(im, lblks[j], fake(lblks[j]), ~0ull, 0);
		}
	}
	ck_assert_uint_eq(im->di.map_height, 0);
	ck_assert_uint_eq(im->di.map_root, 0);
	ck_assert_uint_eq(meta_used(), meta0);
	/* Removing a hole is a no-op. */
	ck_assert_int_eq(map_set(im, 77, 0, 0, 0), 0);
	inode_put(T.v, im);
}
END_TEST

START_TEST(test_bmap_runs)
{
	struct inode_mem *im;
	const uint64_t bs = 64 * KiB;
	const uint64_t base = 1 * GiB;

	vol_up(4 * GiB, 64 * KiB);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	/* No map at all: one hole to the end. */
	map_expect(im, 5, 0, 0, UINT64_MAX - 5);
	for (uint64_t l = 10; l < 20; l++) {
		ck_assert_int_eq(map_set(im, l, base + l * bs, 0, ~0ull), 0);
	}
	map_expect(im, 10, base + 10 * bs, ~0ull, 10);
	map_expect(im, 15, base + 15 * bs, ~0ull, 5);
	/* A hole inside a leaf runs to the next entry or the leaf's end. */
	map_expect(im, 0, 0, 0, 10);
	map_expect(im, 20, 0, 0, 251 - 20);
	/* A different written mask or flag ends a run; so does a jump. */
	ck_assert_int_eq(map_set(im, 17, base + 17 * bs, 0, 0xff), 0);
	map_expect(im, 10, base + 10 * bs, ~0ull, 7);
	map_expect(im, 17, base + 17 * bs, 0xff, 1);
	ck_assert_int_eq(map_set(im, 13, base + 13 * bs, LUNFS_MAPE_SHARED, ~0ull), 0);
	map_expect(im, 10, base + 10 * bs, ~0ull, 3);
	ck_assert_int_eq(map_set(im, 19, base + 100 * bs, 0, ~0ull), 0);
	map_expect(im, 18, base + 18 * bs, ~0ull, 1);
	/* Runs never cross a leaf. */
	for (uint64_t l = 245; l < 260; l++) {
		ck_assert_int_eq(map_set(im, l, base + l * bs, 0, ~0ull), 0);
	}
	map_expect(im, 245, base + 245 * bs, ~0ull, 6);
	map_expect(im, 251, base + 251 * bs, ~0ull, 9);
	/* A missing subtree: the hole spans the whole missing child and the
	 * missing ones after it. */
	ck_assert_int_eq(map_set(im, 5 * 251 + 3, base, 0, 1), 0);
	map_expect(im, 2 * 251 + 7, 0, 0, 3 * 251 - 7);
	inode_put(T.v, im);
}
END_TEST

static int punch(struct inode_mem *im, uint64_t first, uint64_t last, unsigned *calls)
{
	struct lunfs_vol *v = T.v;
	uint64_t next = first;
	int r = 1;

	*calls = 0;
	pthread_mutex_lock(&v->meta_lock);
	while (r > 0) {
		struct jnl_handle *h;
		int r2;

		r = jnl_start(v->jnl, bmap_punch_credits(im), &h);
		if (r != 0) {
			break;
		}
		pthread_rwlock_wrlock(&im->lock);
		r = bmap_punch(v, h, im, next, last, &next);
		pthread_rwlock_unlock(&im->lock);
		r2 = jnl_stop(h, false);
		if (r >= 0 && r2 != 0) {
			r = r2;
		}
		(*calls)++;
		ck_assert_uint_lt(*calls, 100000);
	}
	pthread_mutex_unlock(&v->meta_lock);
	return r;
}

/* Map [first, first+n) to real file units, in runs of `stride`
 * contiguous blocks, so punch has several runs to free per leaf. */
static void map_real(struct inode_mem *im, uint64_t first, uint64_t n)
{
	struct lunfs_vol *v = T.v;
	uint64_t l = first;

	while (l < first + n) {
		struct jnl_handle *h;
		uint64_t addr, got;

		pthread_mutex_lock(&v->meta_lock);
		ck_assert_int_eq(jnl_start(v->jnl, 64, &h), 0);
		ck_assert_int_eq(alloc_units(v->alloc, h, LUNFS_CLUSTER_FILE, 1, 0, &addr, &got), 0);
		pthread_rwlock_wrlock(&im->lock);
		{
			struct lunfs_map_entry e = { .addr = addr, .flags = 0, .written = ~0ull };

			ck_assert_int_eq(bmap_set(v, h, im, l, &e), 0);
		}
		im->di.alloc_bytes += v->sb.file_block_size;
		ck_assert_int_eq(inode_dirty(h, im), 0);
		pthread_rwlock_unlock(&im->lock);
		ck_assert_int_eq(jnl_stop(h, false), 0);
		pthread_mutex_unlock(&v->meta_lock);
		l++;
	}
}

START_TEST(test_bmap_punch)
{
	struct inode_mem *im;
	uint64_t meta0, file0;
	unsigned calls;

	vol_up(4 * GiB, 64 * KiB);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	meta0 = meta_used();
	file0 = file_used();
	map_real(im, 0, 600);          /* three leaves */
	map_real(im, 200000, 10);      /* a second subtree (height 3) */
	ck_assert_uint_eq(im->di.map_height, 3);
	ck_assert_uint_eq(file_used(), file0 + 610);
	ck_assert_uint_eq(im->di.alloc_bytes, 610 * 64 * KiB);
	/* Punch the middle: steps are bounded, the edges stay. */
	ck_assert_int_eq(punch(im, 100, 500, &calls), 0);
	ck_assert_uint_ge(calls, 2); /* a leaf per call at least */
	ck_assert_uint_eq(file_used(), file0 + 610 - 401);
	ck_assert_uint_eq(im->di.alloc_bytes, (610 - 401) * 64 * KiB);
	for (uint64_t l = 95; l < 505; l++) {
		struct lunfs_map_entry e;
		uint64_t run;

		ck_assert_int_eq(bmap_lookup(T.v, im, l, &e, &run), 0);
		ck_assert_msg((e.addr == 0) == (l >= 100 && l <= 500), "lblk %llu", (unsigned long long)l);
	}
	/* The leaf of 251..501 lost all but one entry; the one of 0..250
	 * keeps 100. A punch of a pure hole range is cheap and a no-op. */
	ck_assert_int_eq(punch(im, 1000, 100000, &calls), 0);
	ck_assert_uint_le(calls, 2);
	/* Everything else: the whole map goes, nodes included. */
	ck_assert_int_eq(punch(im, 0, UINT64_MAX, &calls), 0);
	ck_assert_uint_eq(im->di.map_height, 0);
	ck_assert_uint_eq(im->di.alloc_bytes, 0);
	ck_assert_uint_eq(file_used(), file0);
	ck_assert_uint_eq(meta_used(), meta0);
	inode_put(T.v, im);
}
END_TEST

START_TEST(test_bmap_next_mapped)
{
	struct inode_mem *im;
	uint64_t out;

	vol_up(64 * TiB, 0);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	ck_assert_int_eq(bmap_next_mapped(T.v, im, 0, &out), -ENXIO);
	ck_assert_int_eq(map_set(im, 5, fake(5), 0, 1), 0);
	ck_assert_int_eq(map_set(im, 1000, fake(1000), 0, 1), 0);
	ck_assert_int_eq(map_set(im, 64 * TiB / MiB - 1, fake(7), 0, 1), 0);
	ck_assert_int_eq(bmap_next_mapped(T.v, im, 0, &out), 0);
	ck_assert_uint_eq(out, 5);
	ck_assert_int_eq(bmap_next_mapped(T.v, im, 5, &out), 0);
	ck_assert_uint_eq(out, 5);
	ck_assert_int_eq(bmap_next_mapped(T.v, im, 6, &out), 0);
	ck_assert_uint_eq(out, 1000);
	ck_assert_int_eq(bmap_next_mapped(T.v, im, 1001, &out), 0);
	ck_assert_uint_eq(out, 64 * TiB / MiB - 1);
	ck_assert_int_eq(bmap_next_mapped(T.v, im, 64 * TiB / MiB, &out), -ENXIO);
	ck_assert_int_eq(bmap_next_mapped(T.v, im, UINT64_MAX, &out), -ENXIO);
	inode_put(T.v, im);
}
END_TEST

START_TEST(test_bmap_meta_written)
{
	struct inode_mem *im;

	vol_up(1 * GiB, 64 * KiB);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFDIR | 0755, &im), 0);
	ck_assert_uint_eq(im->di.map_unit, LUNFS_MAP_META);
	ck_assert_int_eq(map_set(im, 3, 512 * MiB, 0, 0), 0);
	map_expect(im, 3, 512 * MiB, ~0ull, 1);
	ck_assert_int_eq(map_set(im, 3, 0, 0, 0), 0);
	ck_assert_uint_eq(im->di.map_height, 0);
	inode_put(T.v, im);
}
END_TEST

START_TEST(test_bmap_corrupt)
{
	struct inode_mem *im;
	struct lunfs_map_entry e;
	struct mc_entry *me;
	uint64_t run, leaf, ino;
	uint8_t *blk;

	vol_up(1 * GiB, 64 * KiB);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	ck_assert_int_eq(map_set(im, 3, 512 * MiB, 0, ~0ull), 0);
	leaf = im->di.map_root;
	ino = im->ino;
	inode_put(T.v, im);
	ck_assert_int_eq(fs_testvol_unmount(&T), 0);
	/* Flip a byte of the leaf on disk. */
	blk = dev_buf_alloc(4096);
	ck_assert_ptr_nonnull(blk);
	ck_assert_int_eq(dev_read(T.dev, blk, 4096, leaf), 0);
	blk[100] ^= 0x40;
	ck_assert_int_eq(dev_write(T.dev, blk, 4096, leaf), 0);
	dev_buf_free(blk);
	ck_assert_int_eq(fs_testvol_mount(&T), 0);
	ck_assert_int_eq(inode_get(T.v, ino, &im), 0);
	ck_assert_int_eq(bmap_lookup(T.v, im, 3, &e, &run), -EUCLEAN);
	ck_assert_int_eq(bmap_next_mapped(T.v, im, 0, &e.addr), -EUCLEAN);
	/* A node of another inode is refused too. */
	ck_assert_int_eq(mc_get(T.v->mc, leaf, 4096, 0, &me), 0);
	{
		struct lunfs_map_leaf l;

		memset(&l, 0, sizeof(l));
		l.ino = ino + 1;
		l.e[3].addr = 512 * MiB;
		l.e[3].written = 1;
		map_leaf_encode(&T.v->codec, &l, leaf, me->buf);
	}
	mc_put(T.v->mc, me);
	ck_assert_int_eq(bmap_lookup(T.v, im, 3, &e, &run), -EUCLEAN);
	inode_put(T.v, im);
}
END_TEST

/* The frame check of a cached map node is remembered (the crc is not
 * recomputed on every lookup), but only for the cached copy: a node that
 * the cache dropped and read again, damaged on disk meanwhile, is found;
 * a node rewritten through the encoder is parsed as written. */
START_TEST(test_bmap_checked_cache)
{
	struct inode_mem *im;
	struct lunfs_map_entry e;
	struct mc_entry *me;
	uint64_t run, leaf;
	uint8_t *blk;

	vol_up(1 * GiB, 64 * KiB);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	ck_assert_int_eq(map_set(im, 3, 512 * MiB, 0, ~0ull), 0);
	leaf = im->di.map_root;
	ck_assert_int_eq(bmap_lookup(T.v, im, 3, &e, &run), 0);
	ck_assert_int_eq(mc_get(T.v->mc, leaf, 4096, 0, &me), 0);
	ck_assert_uint_eq(me->checked_magic, LUNFS_MAP_LEAF_MAGIC);
	/* Rewritten through the encoder: still valid, read as written. */
	{
		struct lunfs_map_leaf l;

		ck_assert_int_eq(map_leaf_decode(&T.v->codec, me->buf, leaf, &l), 0);
		l.e[3].written = 3;
		map_leaf_encode(&T.v->codec, &l, leaf, me->buf);
	}
	mc_put(T.v->mc, me);
	ck_assert_int_eq(bmap_lookup(T.v, im, 3, &e, &run), 0);
	ck_assert_uint_eq(e.written, 3);
	/* Home, then damaged on disk behind the cache's back, then dropped
	 * from the cache: the next lookup reads it again and checks it. */
	pthread_mutex_lock(&T.v->meta_lock);
	ck_assert_int_eq(jnl_flush_home(T.v->jnl), 0);
	pthread_mutex_unlock(&T.v->meta_lock);
	blk = dev_buf_alloc(4096);
	ck_assert_ptr_nonnull(blk);
	ck_assert_int_eq(dev_read(T.dev, blk, 4096, leaf), 0);
	blk[100] ^= 0x40;
	ck_assert_int_eq(dev_write(T.dev, blk, 4096, leaf), 0);
	dev_buf_free(blk);
	mc_drop_clean(T.v->mc);
	ck_assert_int_eq(bmap_lookup(T.v, im, 3, &e, &run), -EUCLEAN);
	inode_put(T.v, im);
}
END_TEST

static Suite *bmap_suite(void)
{
	Suite *s = suite_create("bmap");
	TCase *tc = tcase_create("bmap");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_bmap_heights);
	tcase_add_test(tc, test_bmap_runs);
	tcase_add_test(tc, test_bmap_punch);
	tcase_add_test(tc, test_bmap_next_mapped);
	tcase_add_test(tc, test_bmap_meta_written);
	tcase_add_test(tc, test_bmap_corrupt);
	tcase_add_test(tc, test_bmap_checked_cache);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(bmap_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
