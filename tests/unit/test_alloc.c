/*
 * Unit tests of the allocator (fs/alloc.c) on memory devices formatted
 * with vol_create. A "host" is a minimal struct lunfs_vol built by hand:
 * lockd slot (no heartbeat thread), mcache, journal, allocator. Two hosts
 * on one device are two lockd instances with their own caches and
 * journals, as two machines would be.
 *
 * After each phase the hosts are closed and an fsck-like check reads the
 * disk directly: for every typed cluster the header decodes with the
 * summary's type, the bitmap's clear bits == header units_free == summary
 * units_free, the header area is allocated, no bit past units_total.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../fs/fs_internal.h"
#include "lunfs/cluster.h"
#include "lunfs/dev.h"
#include "lunfs/format.h"
#include "lunfs/lock.h"
#include "lunfs/lockd.h"
#include "lunfs/volume.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)

static const uint8_t uuid_vol[16] = { 0x55, 1, 2, 3, 4, 5, 0x46, 7, 0x88, 9, 10, 11, 12, 13, 14, 15 };
static const uint8_t uuid_h1[16] = { 0xc1, 1, 2, 3, 4, 5, 0x46, 7, 0x88, 9, 10, 11, 12, 13, 14, 15 };
static const uint8_t uuid_h2[16] = { 0xc2, 1, 2, 3, 4, 5, 0x46, 7, 0x88, 9, 10, 11, 12, 13, 14, 15 };

static struct lunfs_dev *vol_make(uint64_t size, uint64_t cluster_size, struct lunfs_super *sb)
{
	struct lunfs_vol_create_opts o;
	struct lunfs_dev *dev = NULL;

	ck_assert_int_eq(dev_mem_open(size, 512, &dev), 0);
	memset(&o, 0, sizeof(o));
	memcpy(o.uuid, uuid_vol, 16);
	o.layout.max_hosts = 4;
	o.layout.file_block_size = 64 * KiB;
	o.layout.journal_size = 1 * MiB;
	o.layout.cluster_size = cluster_size;
	o.now_ns = 1700000000000000000ull;
	ck_assert_int_eq(vol_create(dev, &o, sb, NULL, NULL), 0);
	return dev;
}

static struct lunfs_vol *host_open(struct lunfs_dev *dev, const struct lunfs_super *sb, const uint8_t *uuid)
{
	struct lunfs_vol *v = calloc(1, sizeof(*v));
	struct lockd_opts lo;

	ck_assert_ptr_nonnull(v);
	v->dev = dev;
	v->sb = *sb;
	sb_codec(sb, &v->codec);
	pthread_mutex_init(&v->meta_lock, NULL);
	memset(&lo, 0, sizeof(lo));
	lo.host_name = "test-host";
	memcpy(lo.host_uuid, uuid, 16);
	lo.no_thread = true;
	ck_assert_int_eq(lockd_join(dev, &v->sb, &v->codec, &lo, &v->ld), 0);
	v->slot = lockd_slot(v->ld);
	v->gen = lockd_gen(v->ld);
	ck_assert_int_eq(mc_create(dev, 16 * MiB, &v->mc), 0);
	pthread_mutex_lock(&v->meta_lock);
	ck_assert_int_eq(jnl_open(v, v->slot, v->gen, &v->jnl), 0);
	pthread_mutex_unlock(&v->meta_lock);
	ck_assert_int_eq(alloc_open(v, &v->alloc), 0);
	return v;
}

static void host_close(struct lunfs_vol *v)
{
	pthread_mutex_lock(&v->meta_lock);
	ck_assert_int_eq(jnl_close(v->jnl), 0);
	alloc_close(v->alloc);
	pthread_mutex_unlock(&v->meta_lock);
	mc_destroy(v->mc);
	ck_assert_int_eq(lockd_leave(v->ld), 0);
	pthread_mutex_destroy(&v->meta_lock);
	free(v);
}

static int do_alloc(struct lunfs_vol *v, uint8_t type, uint64_t want, uint64_t hint, uint64_t *addr,
		    uint64_t *got)
{
	struct jnl_handle *h;
	int err, e2;

	pthread_mutex_lock(&v->meta_lock);
	ck_assert_int_eq(jnl_start(v->jnl, 64, &h), 0);
	err = alloc_units(v->alloc, h, type, want, hint, addr, got);
	e2 = jnl_stop(h, false);
	ck_assert_int_eq(e2, 0);
	pthread_mutex_unlock(&v->meta_lock);
	return err;
}

static int do_free(struct lunfs_vol *v, uint8_t type, uint64_t addr, uint64_t count)
{
	struct jnl_handle *h;
	int err;

	pthread_mutex_lock(&v->meta_lock);
	ck_assert_int_eq(jnl_start(v->jnl, 64, &h), 0);
	err = alloc_free(v->alloc, h, type, addr, count);
	ck_assert_int_eq(jnl_stop(h, false), 0);
	pthread_mutex_unlock(&v->meta_lock);
	return err;
}

static int do_ref_add(struct lunfs_vol *v, uint64_t addr, int delta)
{
	struct jnl_handle *h;
	int err;

	pthread_mutex_lock(&v->meta_lock);
	ck_assert_int_eq(jnl_start(v->jnl, 8, &h), 0);
	err = alloc_ref_add(v->alloc, h, addr, delta);
	ck_assert_int_eq(jnl_stop(h, false), 0);
	pthread_mutex_unlock(&v->meta_lock);
	return err;
}

/* fsck-like check of every cluster on disk. used[t] = allocated units of
 * type t outside header areas; ntyped[t] = clusters of type t. */
struct fsck_totals {
	uint64_t used[4];
	uint64_t ntyped[4];
};

static void fsck_clusters(struct lunfs_dev *dev, const struct lunfs_super *sb, struct fsck_totals *tot)
{
	struct lunfs_codec c;
	uint8_t *rec = dev_buf_alloc(sb->sector_size);
	uint8_t *blk = dev_buf_alloc(4096);
	struct lunfs_bitmap *bm = calloc(1, sizeof(*bm));

	ck_assert_ptr_nonnull(rec);
	ck_assert_ptr_nonnull(blk);
	ck_assert_ptr_nonnull(bm);
	sb_codec(sb, &c);
	memset(tot, 0, sizeof(*tot));
	for (uint64_t ci = 0; ci < sb->cluster_count; ci++) {
		uint64_t laddr = layout_cluster_lock_addr(sb, ci), start = layout_cluster_addr(sb, ci);
		struct lunfs_cluster_summary s;
		struct lunfs_cluster_hdr h;
		struct lunfs_lock l;
		uint64_t clear = 0, set = 0, bad = 0;
		int err;

		ck_assert_int_eq(dev_read(dev, rec, sb->sector_size, laddr), 0);
		err = lock_decode(&c, rec, laddr, &l);
		if (err == -ENODATA) {
			continue;
		}
		ck_assert_int_eq(err, 0);
		ck_assert_uint_eq(l.mode, LUNFS_LOCK_FREE); /* everyone closed */
		lock_summary_get(&l, &s);
		if (s.type == LUNFS_CLUSTER_FREE) {
			continue;
		}
		ck_assert_int_eq(dev_read(dev, blk, 4096, start), 0);
		ck_assert_int_eq(cluster_hdr_decode(&c, blk, start, &h), 0);
		ck_assert_uint_eq(h.type, s.type);
		ck_assert_uint_eq(h.cluster_index, ci);
		ck_assert_uint_ge(h.type_gen, 1);
		for (uint64_t b = 0; b < h.bitmap_blocks; b++) {
			uint64_t addr = start + (1 + b) * 4096;

			ck_assert_int_eq(dev_read(dev, blk, 4096, addr), 0);
			ck_assert_int_eq(bitmap_decode(&c, blk, addr, bm), 0);
			for (uint64_t i = 0; i < LUNFS_BITMAP_BITS; i++) {
				uint64_t u = b * LUNFS_BITMAP_BITS + i;
				bool on = (bm->words[i / 64] >> (i % 64)) & 1;

				/* Count, assert once: Check logs every assertion. */
				if (u >= h.units_total) {
					bad += on;
					continue;
				}
				if (u < h.header_units) {
					bad += !on;
					continue;
				}
				if (on) {
					set++;
				} else {
					clear++;
				}
			}
		}
		ck_assert_uint_eq(bad, 0);
		ck_assert_uint_eq(clear, h.units_free);
		ck_assert_uint_eq(s.units_free, h.units_free);
		ck_assert_uint_eq(s.units_total, h.units_total);
		tot->used[h.type] += set;
		tot->ntyped[h.type]++;
	}
	free(bm);
	dev_buf_free(blk);
	dev_buf_free(rec);
}

struct extent {
	uint64_t addr, n;
};

static int ext_cmp(const void *x, const void *y)
{
	const struct extent *a = x, *b = y;

	return a->addr < b->addr ? -1 : a->addr > b->addr;
}

/* Sorted, no overlap, all inside the data region. */
static void extents_check_disjoint(struct extent *e, size_t n, const struct lunfs_super *sb, uint64_t unit)
{
	const struct lunfs_region *d = &sb->regions[LUNFS_REGION_DATA];

	qsort(e, n, sizeof(*e), ext_cmp);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_ge(e[i].addr, d->offset);
		ck_assert_uint_le(e[i].addr + e[i].n * unit, d->offset + sb->cluster_count * sb->cluster_size);
		if (i > 0) {
			ck_assert_uint_le(e[i - 1].addr + e[i - 1].n * unit, e[i].addr);
		}
	}
}

/* Allocate FILE units (want at a time) until -ENOSPC. */
static size_t fill_file(struct lunfs_vol *v, uint64_t want, struct extent **out, uint64_t *units)
{
	size_t n = 0, cap = 256;
	struct extent *e = malloc(cap * sizeof(*e));

	ck_assert_ptr_nonnull(e);
	*units = 0;
	for (;;) {
		uint64_t addr, got;
		int err = do_alloc(v, LUNFS_CLUSTER_FILE, want, 0, &addr, &got);

		if (err == -ENOSPC) {
			break;
		}
		ck_assert_int_eq(err, 0);
		ck_assert_uint_ge(got, 1);
		ck_assert_uint_le(got, want);
		ck_assert_uint_eq(addr % v->sb.file_block_size, 0);
		if (n == cap) {
			cap *= 2;
			e = realloc(e, cap * sizeof(*e));
			ck_assert_ptr_nonnull(e);
		}
		e[n].addr = addr;
		e[n].n = got;
		n++;
		*units += got;
	}
	*out = e;
	return n;
}

START_TEST(test_alloc_enospc_free_reuse)
{
	struct lunfs_super sb;
	struct lunfs_dev *dev = vol_make(64 * MiB, 0, &sb);
	struct lunfs_vol *v = host_open(dev, &sb, uuid_h1);
	struct extent *ext = NULL, *ext2 = NULL;
	struct fsck_totals t;
	struct alloc_stats st0, st1;
	uint64_t units = 0, units2 = 0, maddr, mgot, iaddr, igot;
	size_t n, n2;

	/* META and INODE clusters appear on demand; inodes come from the
	 * inode cluster mkfs made (cluster 0) first. */
	ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_META, 3, 0, &maddr, &mgot), 0);
	ck_assert_uint_eq(mgot, 3);
	ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_INODE, 1, 0, &iaddr, &igot), 0);
	ck_assert_uint_eq(igot, 1);
	ck_assert_uint_ge(iaddr, layout_cluster_addr(&sb, 0));
	ck_assert_uint_lt(iaddr, layout_cluster_addr(&sb, 1));
	ck_assert_int_eq(alloc_stats(v->alloc, &st0), 0);
	ck_assert_uint_gt(st0.file_free_bytes, 0);
	ck_assert_uint_eq(st0.file_free_bytes, st0.file_total_bytes);
	ck_assert_uint_gt(st0.inodes_total, st0.inodes_free);

	n = fill_file(v, 5, &ext, &units);
	ck_assert_uint_gt(units, 0);
	extents_check_disjoint(ext, n, &sb, sb.file_block_size);
	ck_assert_int_eq(alloc_stats(v->alloc, &st1), 0);
	ck_assert_uint_eq(st1.file_free_bytes, 0);
	ck_assert_uint_eq(st0.file_free_bytes - st1.file_free_bytes, units * sb.file_block_size);
	/* META has no room left either: everything became FILE. */
	ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_META, 300, 0, &maddr, &mgot), 0); /* rest of its cluster */
	ck_assert_int_eq(do_free(v, LUNFS_CLUSTER_META, maddr, mgot), 0);
	host_close(v);

	fsck_clusters(dev, &sb, &t);
	ck_assert_uint_eq(t.used[LUNFS_CLUSTER_FILE], units);
	ck_assert_uint_eq(t.used[LUNFS_CLUSTER_META], 3);
	ck_assert_uint_eq(t.used[LUNFS_CLUSTER_INODE], 2); /* root + ours */
	ck_assert_uint_eq(t.ntyped[LUNFS_CLUSTER_META], 1);
	ck_assert_uint_eq(t.ntyped[LUNFS_CLUSTER_INODE], 1);
	ck_assert_uint_eq(t.ntyped[LUNFS_CLUSTER_FILE] + 2, sb.cluster_count);

	/* Free everything (after a remount), then it is all usable again. */
	v = host_open(dev, &sb, uuid_h1);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(do_free(v, LUNFS_CLUSTER_FILE, ext[i].addr, ext[i].n), 0);
	}
	ck_assert_int_eq(alloc_stats(v->alloc, &st1), 0);
	ck_assert_uint_eq(st1.file_free_bytes, units * sb.file_block_size);
	n2 = fill_file(v, 7, &ext2, &units2);
	ck_assert_uint_eq(units2, units);
	extents_check_disjoint(ext2, n2, &sb, sb.file_block_size);
	host_close(v);
	fsck_clusters(dev, &sb, &t);
	ck_assert_uint_eq(t.used[LUNFS_CLUSTER_FILE], units);
	free(ext);
	free(ext2);
	dev_close(dev);
}
END_TEST

START_TEST(test_alloc_contiguous)
{
	struct lunfs_super sb;
	struct lunfs_dev *dev = vol_make(64 * MiB, 4 * MiB, &sb);
	struct lunfs_vol *v = host_open(dev, &sb, uuid_h1);
	uint64_t a[10], got, addr, big, bigot, usable;
	struct fsck_totals t;

	usable = sb.cluster_size / sb.file_block_size - 1; /* 64 units, 1 header unit */
	ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_FILE, 16, 0, &addr, &got), 0);
	ck_assert_uint_eq(got, 16);
	/* Ten single blocks, then punch every other one: holes of 1. */
	for (unsigned i = 0; i < 10; i++) {
		ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_FILE, 1, 0, &a[i], &got), 0);
		ck_assert_uint_eq(got, 1);
		if (i > 0) {
			ck_assert_uint_eq(a[i], a[i - 1] + sb.file_block_size);
		}
	}
	for (unsigned i = 0; i < 10; i += 2) {
		ck_assert_int_eq(do_free(v, LUNFS_CLUSTER_FILE, a[i], 1), 0);
	}
	/* A request for 4 skips the 1-block holes for a whole run. */
	ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_FILE, 4, 0, &addr, &got), 0);
	ck_assert_uint_eq(got, 4);
	ck_assert_uint_gt(addr, a[9]);
	/* More than a cluster holds: the longest run there is. */
	ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_FILE, 1000, 0, &big, &bigot), 0);
	ck_assert_uint_le(bigot, usable);
	ck_assert_uint_ge(bigot, usable - 16 - 10 - 4);
	/* A hint inside a held cluster is honoured: the freed hole a[4]. */
	ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_FILE, 1, a[4], &addr, &got), 0);
	ck_assert_uint_eq(addr, a[4]);
	host_close(v);
	fsck_clusters(dev, &sb, &t);
	ck_assert_uint_eq(t.used[LUNFS_CLUSTER_FILE], 16 + 5 + 4 + bigot + 1);
	dev_close(dev);
}
END_TEST

START_TEST(test_alloc_meta_inode_many)
{
	/* Word-level scans across several bitmap blocks, and typing more
	 * than one cluster of a type. */
	struct lunfs_super sb;
	struct lunfs_dev *dev = vol_make(256 * MiB, 0, &sb);
	struct lunfs_vol *v = host_open(dev, &sb, uuid_h1);
	struct fsck_totals t;
	uint64_t addr, got, prev = 0, total = 0, per, inodes = 0;

	per = sb.cluster_size / 4096;
	while (total < per + 100) {
		ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_META, 64, 0, &addr, &got), 0);
		ck_assert_uint_ne(addr, prev);
		prev = addr;
		total += got;
	}
	for (unsigned i = 0; i < 3000; i++) {
		ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_INODE, 1, prev, &addr, &got), 0);
		ck_assert_uint_eq(addr % (2 * sb.sector_size), 0);
		prev = addr;
		inodes++;
	}
	/* Bad frees change nothing. */
	ck_assert_int_eq(do_free(v, LUNFS_CLUSTER_INODE, addr + 1, 1), -EUCLEAN);       /* misaligned */
	ck_assert_int_eq(do_free(v, LUNFS_CLUSTER_INODE, layout_cluster_addr(&sb, 0), 1), -EUCLEAN); /* header */
	ck_assert_int_eq(do_free(v, LUNFS_CLUSTER_META, addr, 1), -EUCLEAN);           /* wrong type */
	ck_assert_int_eq(do_free(v, LUNFS_CLUSTER_INODE, 4096, 1), -EUCLEAN);          /* not data */
	ck_assert_int_eq(do_free(v, LUNFS_CLUSTER_INODE, addr, 1), 0);
	ck_assert_int_eq(do_free(v, LUNFS_CLUSTER_INODE, addr, 1), -EUCLEAN);          /* double */
	host_close(v);
	fsck_clusters(dev, &sb, &t);
	ck_assert_uint_eq(t.used[LUNFS_CLUSTER_META], total);
	ck_assert_uint_eq(t.ntyped[LUNFS_CLUSTER_META], 2);
	ck_assert_uint_eq(t.used[LUNFS_CLUSTER_INODE], inodes - 1 + 1); /* + root - freed */
	dev_close(dev);
}
END_TEST

START_TEST(test_alloc_refcount)
{
	struct lunfs_super sb;
	struct lunfs_dev *dev = vol_make(64 * MiB, 0, &sb);
	struct lunfs_vol *v = host_open(dev, &sb, uuid_h1);
	uint64_t addr, got, other, ogot;
	uint32_t extra = 99;
	struct fsck_totals t;

	ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_FILE, 1, 0, &addr, &got), 0);
	ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_FILE, 1, 0, &other, &ogot), 0);
	ck_assert_int_eq(alloc_ref_get(v->alloc, addr, &extra), 0);
	ck_assert_uint_eq(extra, 0);
	ck_assert_int_eq(do_ref_add(v, addr, 1), 0);
	ck_assert_int_eq(alloc_ref_get(v->alloc, addr, &extra), 0);
	ck_assert_uint_eq(extra, 1);
	ck_assert_int_eq(do_ref_add(v, addr, 65534), 0);
	ck_assert_int_eq(alloc_ref_get(v->alloc, addr, &extra), 0);
	ck_assert_uint_eq(extra, 65535);
	ck_assert_int_eq(do_ref_add(v, addr, 1), -EMLINK);
	ck_assert_int_eq(do_ref_add(v, addr, -65534), 0);
	ck_assert_int_eq(do_ref_add(v, other, -1), -EUCLEAN);
	/* Freeing a shared block drops a reference; the last one frees. */
	ck_assert_int_eq(do_free(v, LUNFS_CLUSTER_FILE, addr, 2), 0);  /* addr shared, other not */
	ck_assert_int_eq(alloc_ref_get(v->alloc, addr, &extra), 0);
	ck_assert_uint_eq(extra, 0);
	ck_assert_int_eq(alloc_ref_get(v->alloc, other, &extra), -EUCLEAN); /* freed */
	ck_assert_int_eq(do_free(v, LUNFS_CLUSTER_FILE, addr, 1), 0);
	ck_assert_int_eq(do_free(v, LUNFS_CLUSTER_FILE, addr, 1), -EUCLEAN);
	ck_assert_int_eq(do_ref_add(v, addr, 1), -EUCLEAN);
	host_close(v);
	fsck_clusters(dev, &sb, &t);
	ck_assert_uint_eq(t.used[LUNFS_CLUSTER_FILE], 0);
	dev_close(dev);
}
END_TEST

struct filler {
	struct lunfs_vol *v;
	struct extent *ext;
	size_t n;
	uint64_t units;
};

static void *filler_main(void *p)
{
	struct filler *f = p;

	f->n = fill_file(f->v, 3, &f->ext, &f->units);
	return NULL;
}

START_TEST(test_alloc_two_hosts)
{
	struct lunfs_super sb;
	struct lunfs_dev *dev = vol_make(64 * MiB, 0, &sb);
	struct filler f[2];
	pthread_t th[2];
	struct extent *all;
	struct fsck_totals t;

	memset(f, 0, sizeof(f));
	f[0].v = host_open(dev, &sb, uuid_h1);
	f[1].v = host_open(dev, &sb, uuid_h2);
	ck_assert_uint_ne(f[0].v->slot, f[1].v->slot);
	for (unsigned k = 0; k < 2; k++) {
		ck_assert_int_eq(pthread_create(&th[k], NULL, filler_main, &f[k]), 0);
	}
	for (unsigned k = 0; k < 2; k++) {
		pthread_join(th[k], NULL);
	}
	ck_assert_uint_gt(f[0].units, 0);
	ck_assert_uint_gt(f[1].units, 0);
	all = malloc((f[0].n + f[1].n) * sizeof(*all));
	ck_assert_ptr_nonnull(all);
	memcpy(all, f[0].ext, f[0].n * sizeof(*all));
	memcpy(all + f[0].n, f[1].ext, f[1].n * sizeof(*all));
	extents_check_disjoint(all, f[0].n + f[1].n, &sb, sb.file_block_size);
	host_close(f[0].v);
	host_close(f[1].v);
	fsck_clusters(dev, &sb, &t);
	ck_assert_uint_eq(t.used[LUNFS_CLUSTER_FILE], f[0].units + f[1].units);
	ck_assert_uint_eq(t.ntyped[LUNFS_CLUSTER_FILE] + 1, sb.cluster_count);
	free(all);
	free(f[0].ext);
	free(f[1].ext);
	dev_close(dev);
}
END_TEST

START_TEST(test_alloc_retype_uncommitted)
{
	/* A summary typed by a host that crashed before its journal
	 * committed the header: the cluster counts as free and is typed
	 * again by whoever locks it. */
	struct lunfs_super sb;
	struct lunfs_dev *dev = vol_make(64 * MiB, 0, &sb);
	struct lunfs_vol *v;
	struct lunfs_lock l;
	struct lunfs_cluster_summary s;
	struct fsck_totals t;
	uint8_t *rec;
	uint64_t addr, got, ci = 1, laddr;

	rec = dev_buf_alloc(sb.sector_size);
	ck_assert_ptr_nonnull(rec);
	memset(&l, 0, sizeof(l));
	l.kind = LUNFS_LOCK_KIND_CLUSTER;
	l.lock_id = ci;
	l.version = 3;
	memset(&s, 0, sizeof(s));
	s.type = LUNFS_CLUSTER_FILE;
	s.units_total = 16;
	s.units_free = 15;
	lock_summary_set(&l, &s);
	{
		struct lunfs_codec c;

		sb_codec(&sb, &c);
		laddr = layout_cluster_lock_addr(&sb, ci);
		lock_encode(&c, &l, laddr, rec);
	}
	ck_assert_int_eq(dev_write(dev, rec, sb.sector_size, laddr), 0);
	dev_buf_free(rec);

	v = host_open(dev, &sb, uuid_h1);
	/* The summary promises FILE units in cluster 1; the header is
	 * missing, so it is (re)typed as META when META is needed first. */
	ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_META, 1, 0, &addr, &got), 0);
	ck_assert_int_eq(do_alloc(v, LUNFS_CLUSTER_FILE, 1, 0, &addr, &got), 0);
	host_close(v);
	fsck_clusters(dev, &sb, &t);
	ck_assert_uint_eq(t.used[LUNFS_CLUSTER_FILE], 1);
	ck_assert_uint_eq(t.used[LUNFS_CLUSTER_META], 1);
	dev_close(dev);
}
END_TEST

static Suite *alloc_suite(void)
{
	Suite *s = suite_create("alloc");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_alloc_enospc_free_reuse);
	tcase_add_test(tc, test_alloc_contiguous);
	tcase_add_test(tc, test_alloc_meta_inode_many);
	tcase_add_test(tc, test_alloc_refcount);
	tcase_add_test(tc, test_alloc_two_hosts);
	tcase_add_test(tc, test_alloc_retype_uncommitted);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(alloc_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
