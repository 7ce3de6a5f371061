/*
 * Unit tests of the journal (fs/journal.c) over the mcache, on a memory
 * device and on a fault device stacked on it. A test volume is a 256 MiB
 * vol_create'd memory device with 4 hosts; the journal runs on a struct
 * lunfs_vol built by hand (dev, sb, codec, mc, meta_lock).
 *
 * The workload model: a set of addresses (4 KiB blocks and sector-sized
 * records in the data region, and two blocks of the journal's own orphan
 * table); transaction i writes a pseudo-random handful of them with an
 * image that names (address, i). The state "after prefix k" gives every
 * address the image of the last transaction <= k that wrote it, or what
 * it held at the start. After a crash and replay the device must be
 * exactly some prefix state at a commit boundary, at or after the last
 * transaction whose synchronous stop returned 0.
 *
 * What is covered: commit and read-back through a dropped cache; crash at
 * every write index of a workload, power cycle with and without torn
 * unflushed writes, replay, idempotent re-replay, remount; ring wrap and
 * checkpoints; a flush or write error aborting the journal; hostile
 * journals (garbage, forged tags outside the allowed regions, torn
 * commits, random bit flips) never crashing replay or writing outside the
 * data region and orphan table; the commit timer; handle misuse.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../fs/fs_internal.h"
#include "lunfs/crc32c.h"
#include "lunfs/dev.h"
#include "lunfs/format.h"
#include "lunfs/journal.h"
#include "lunfs/volume.h"

#define MiB (1024ull * 1024ull)
#define BLK 4096u
#define VOL_SIZE (256ull * MiB)
#define SLOT 2u
#define GEN 7u

static const uint8_t test_uuid[16] = { 0x10, 1, 2, 3, 4, 5, 0x46, 7, 0x88, 9, 10, 11, 12, 13, 14, 15 };

struct tj {
	struct lunfs_dev *dev;       /* what the journal uses */
	struct lunfs_fault *f;       /* NULL without a fault layer */
	struct lunfs_vol v;
	uint64_t jbase;
};

static void tj_setup(struct tj *t, bool fault, uint64_t journal_size, uint32_t sector)
{
	struct lunfs_dev *mem;
	struct lunfs_vol_create_opts o;

	memset(t, 0, sizeof(*t));
	memset(&o, 0, sizeof(o));
	ck_assert_int_eq(dev_mem_open(VOL_SIZE, sector, &mem), 0);
	o.layout.max_hosts = 4;
	o.layout.journal_size = journal_size;
	memcpy(o.uuid, test_uuid, 16);
	o.now_ns = 1700000000000000000ull;
	ck_assert_int_eq(vol_create(mem, &o, &t->v.sb, NULL, NULL), 0);
	if (fault) {
		ck_assert_int_eq(dev_fault_open(mem, &t->dev, &t->f), 0);
	} else {
		t->dev = mem;
	}
	t->v.dev = t->dev;
	sb_codec(&t->v.sb, &t->v.codec);
	/* The timer must not add commits the tests do not expect. */
	t->v.opts.commit_interval_ms = 3600u * 1000u;
	ck_assert_int_eq(mc_create(t->dev, 4 * MiB, &t->v.mc), 0);
	ck_assert_int_eq(pthread_mutex_init(&t->v.meta_lock, NULL), 0);
	t->jbase = layout_journal_addr(&t->v.sb, SLOT);
}

static void tj_teardown(struct tj *t)
{
	mc_destroy(t->v.mc);
	pthread_mutex_destroy(&t->v.meta_lock);
	dev_close(t->dev);
}

/* A fresh cache, as after a remount. */
static void tj_new_cache(struct tj *t)
{
	mc_destroy(t->v.mc);
	ck_assert_int_eq(mc_create(t->dev, 4 * MiB, &t->v.mc), 0);
}

static void *tj_read(struct tj *t, uint64_t off, size_t len)
{
	void *buf = dev_buf_alloc(len);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(dev_read(t->dev, buf, len, off), 0);
	return buf;
}

static void tj_jsb(struct tj *t, struct lunfs_jsb *out)
{
	void *b = tj_read(t, t->jbase, BLK);

	ck_assert_int_eq(jsb_decode(&t->v.codec, b, t->jbase, t->v.sb.journal_size, out), 0);
	dev_buf_free(b);
}

/* crc of everything replay must never write: all but the data region and
 * the journal's superblock and orphan table. With whole_journal, the ring
 * is left out too (for a writer, which writes it). */
static uint32_t tj_protected_crc_of(struct tj *t, bool whole_journal)
{
	const struct lunfs_region *d = &t->v.sb.regions[LUNFS_REGION_DATA];
	uint64_t skip_lo = t->jbase;
	uint64_t skip_hi = t->jbase + (whole_journal ? t->v.sb.journal_size : 9ull * BLK);
	uint32_t crc = 0;
	size_t chunk = 1 * MiB;
	uint8_t *buf = dev_buf_alloc(chunk);

	ck_assert_ptr_nonnull(buf);
	for (uint64_t off = 0; off < d->offset; off += chunk) {
		size_t len = d->offset - off < chunk ? (size_t)(d->offset - off) : chunk;

		ck_assert_int_eq(dev_read(t->dev, buf, len, off), 0);
		for (size_t i = 0; i < len; i += BLK) {
			uint64_t a = off + i;

			if (a >= skip_lo && a < skip_hi) {
				continue;
			}
			crc = crc32c(crc, buf + i, BLK);
		}
	}
	for (uint64_t off = d->offset + d->length; off < t->dev->size; off += BLK) {
		ck_assert_int_eq(dev_read(t->dev, buf, BLK, off), 0);
		crc = crc32c(crc, buf, BLK);
	}
	dev_buf_free(buf);
	return crc;
}

static uint32_t tj_protected_crc(struct tj *t)
{
	return tj_protected_crc_of(t, false);
}

/* ---- the workload model ---- */

#define NBLOCKS 16u
#define NRECS 16u
#define NORPH 2u
#define NW (NBLOCKS + NRECS + NORPH)
#define NTX_MAX 1200u
#define PER_TX 5u

struct witem {
	uint64_t addr;
	uint32_t len;
};

struct model {
	unsigned ntx;
	struct witem w[NW];
	uint8_t *init[NW];                /* contents before the workload */
	uint8_t pick[NTX_MAX + 1][PER_TX]; /* items of tx i */
	uint16_t (*ver)[NW];             /* ver[k][w]: after prefix k */
};

static void model_init(struct model *m, struct tj *t, unsigned ntx)
{
	uint64_t d0 = t->v.sb.regions[LUNFS_REGION_DATA].offset;
	uint32_t ss = t->v.sb.sector_size;
	uint32_t rnd = 12345;

	ck_assert_uint_le(ntx, NTX_MAX);
	memset(m, 0, sizeof(*m));
	m->ntx = ntx;
	for (unsigned i = 0; i < NBLOCKS; i++) {
		m->w[i] = (struct witem){ d0 + 8 * MiB + (uint64_t)i * 3 * BLK, BLK };
	}
	for (unsigned i = 0; i < NRECS; i++) {
		m->w[NBLOCKS + i] = (struct witem){ d0 + 16 * MiB + (uint64_t)i * ss, ss };
	}
	for (unsigned i = 0; i < NORPH; i++) {
		m->w[NBLOCKS + NRECS + i] = (struct witem){ t->jbase + (1 + 3 * (uint64_t)i) * BLK, BLK };
	}
	for (unsigned w = 0; w < NW; w++) {
		m->init[w] = tj_read(t, m->w[w].addr, m->w[w].len);
	}
	m->ver = calloc(ntx + 1, sizeof(*m->ver));
	ck_assert_ptr_nonnull(m->ver);
	for (unsigned i = 1; i <= ntx; i++) {
		memcpy(m->ver[i], m->ver[i - 1], sizeof(m->ver[i]));
		for (unsigned k = 0; k < PER_TX; k++) {
			uint8_t w;
			bool dup;

			do {
				rnd = rnd * 1103515245u + 12345u;
				w = (uint8_t)((rnd >> 16) % NW);
				dup = false;
				for (unsigned q = 0; q < k; q++) {
					dup = dup || m->pick[i][q] == w;
				}
			} while (dup);
			m->pick[i][k] = w;
			m->ver[i][w] = (uint16_t)i;
		}
	}
}

static void model_free(struct model *m)
{
	for (unsigned w = 0; w < NW; w++) {
		dev_buf_free(m->init[w]);
	}
	free(m->ver);
}

static void image_fill(uint8_t *buf, uint32_t len, uint64_t addr, unsigned ver)
{
	for (uint32_t i = 0; i < len; i += 8) {
		uint64_t x = (addr + i) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)ver << 40) ^ ver;

		memcpy(buf + i, &x, 8);
	}
}

static bool image_is(const struct model *m, unsigned w, const uint8_t *buf, unsigned ver)
{
	uint8_t tmp[BLK];

	if (ver == 0) {
		return memcmp(buf, m->init[w], m->w[w].len) == 0;
	}
	image_fill(tmp, m->w[w].len, m->w[w].addr, ver);
	return memcmp(buf, tmp, m->w[w].len) == 0;
}

/* Does the device hold exactly the state after prefix k? */
static bool model_state_is(const struct model *m, struct tj *t, unsigned k)
{
	bool ok = true;

	for (unsigned w = 0; w < NW && ok; w++) {
		uint8_t *b = tj_read(t, m->w[w].addr, m->w[w].len);

		ok = image_is(m, w, b, m->ver[k][w]);
		dev_buf_free(b);
	}
	return ok;
}

struct wl_result {
	unsigned last_ok;            /* last tx known durable */
	unsigned last_tried;         /* last tx whose handle was stopped */
	bool boundary[NTX_MAX + 1];  /* a commit was attempted after tx i */
	int close_err;
	unsigned errors;
};

/* Run transactions [from, to] on an open journal. Every `nosync_every`-th
 * stop is asynchronous (it joins the next commit). Stops at the first
 * error. Caller holds meta_lock. */
static int wl_txs(struct tj *t, struct jnl *j, const struct model *m, unsigned from, unsigned to,
		  unsigned nosync_every, struct wl_result *res)
{
	for (unsigned i = from; i <= to; i++) {
		bool sync = nosync_every == 0 || i % nosync_every != 0;
		struct jnl_handle *h;
		int err = jnl_start(j, 8, &h);

		if (err != 0) {
			return err;
		}
		for (unsigned k = 0; k < PER_TX && err == 0; k++) {
			const struct witem *wi = &m->w[m->pick[i][k]];
			struct mc_entry *e;

			err = mc_get(t->v.mc, wi->addr, wi->len, 0, &e);
			if (err != 0) {
				break;
			}
			err = jnl_dirty(h, e);
			if (err == 0) {
				image_fill(e->buf, wi->len, wi->addr, i);
			}
			mc_put(t->v.mc, e);
		}
		if (i % 3 == 0) {
			jnl_order_data(h);
		}
		res->last_tried = i;
		if (err != 0) {
			(void)jnl_stop(h, true);
			res->boundary[i] = true;
			return err;
		}
		if (sync) {
			res->boundary[i] = true;
		}
		err = jnl_stop(h, sync);
		if (err != 0) {
			res->boundary[i] = true;
			return err;
		}
		if (sync) {
			res->last_ok = i;
		}
	}
	return 0;
}

/* Open, run the whole model, close. */
static void wl_run(struct tj *t, const struct model *m, unsigned nosync_every, struct wl_result *res)
{
	struct jnl *j;
	int err;

	memset(res, 0, sizeof(*res));
	res->boundary[0] = true;
	pthread_mutex_lock(&t->v.meta_lock);
	err = jnl_open(&t->v, SLOT, GEN, &j);
	if (err != 0) {
		res->errors++;
		pthread_mutex_unlock(&t->v.meta_lock);
		return;
	}
	err = wl_txs(t, j, m, 1, m->ntx, nosync_every, res);
	if (err != 0) {
		res->errors++;
		/* Aborted: everything else fails the same way. */
		{
			struct jnl_handle *h;

			ck_assert_int_ne(jnl_start(j, 1, &h), 0);
		}
	}
	res->boundary[res->last_tried] = true;
	res->close_err = jnl_close(j);
	if (res->close_err == 0) {
		ck_assert_int_eq(err, 0);
		res->last_ok = res->last_tried;
	}
	pthread_mutex_unlock(&t->v.meta_lock);
}

/* The device holds a prefix state at a commit boundary >= last_ok:
 * returns it, or -1. */
static int model_match(const struct model *m, struct tj *t, const struct wl_result *res)
{
	for (int k = (int)res->last_tried; k >= (int)res->last_ok; k--) {
		if (res->boundary[k] && model_state_is(m, t, (unsigned)k)) {
			return k;
		}
	}
	return -1;
}

/* ---- tests ---- */

START_TEST(test_jnl_commit_readback)
{
	struct tj t;
	struct model m;
	struct wl_result res;
	struct lunfs_jsb jsb;

	tj_setup(&t, false, 4 * MiB, 512);
	model_init(&m, &t, 20);
	wl_run(&t, &m, 4, &res);
	ck_assert_int_eq(res.close_err, 0);
	ck_assert_uint_eq(res.last_ok, 20);
	tj_jsb(&t, &jsb);
	ck_assert_uint_eq(jsb.state, LUNFS_JOURNAL_CLEAN);
	ck_assert_uint_eq(jsb.owner_gen, GEN);
	/* 20 handles, every 4th asynchronous: 15 synchronous commits and
	 * the one at close for handle 20: seq 1..16. */
	ck_assert_uint_eq(jsb.tail_seq, 17);
	ck_assert(model_state_is(&m, &t, 20));

	/* Through the cache after dropping it: the same. */
	tj_new_cache(&t);
	for (unsigned w = 0; w < NW; w++) {
		struct mc_entry *e;

		ck_assert_int_eq(mc_get(t.v.mc, m.w[w].addr, m.w[w].len, 0, &e), 0);
		ck_assert(image_is(&m, w, e->buf, m.ver[20][w]));
		mc_put(t.v.mc, e);
	}
	/* Nothing to replay on a clean journal. */
	{
		uint64_t applied = 99;

		ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
		ck_assert_uint_eq(applied, 0);
	}
	/* A journal never used since mkfs replays as nothing too. */
	{
		uint64_t applied = 99;

		ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, 0, &applied), 0);
		ck_assert_uint_eq(applied, 0);
		ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, 4, &applied), -EINVAL);
	}
	model_free(&m);
	tj_teardown(&t);
}
END_TEST

/* Crash (power cut) at write n of the workload, come back with seed. With
 * at_flush, the cut comes just before flush n instead (that flush and all
 * later ones fail; what was written since the last good flush is kept,
 * torn or dropped by the seed): the window between a write and its flush
 * that a cut at a write index cannot express. *count_out = writes (or
 * flushes) of the whole workload. */
static void crash_one(uint32_t sector, uint64_t n, uint64_t seed, unsigned ntx, bool at_flush,
		      uint64_t *count_out)
{
	struct tj t;
	struct model m;
	struct wl_result res;
	struct lunfs_fault_stats st0, st1;
	uint64_t applied;
	uint32_t pcrc;
	void *saved_jsb;
	bool check_protected;
	int k, k2;

	tj_setup(&t, true, 1 * MiB, sector);
	model_init(&m, &t, ntx);
	/* The protected-region check reads ~10 MiB: every fifth crash point
	 * is enough (the hostile-journal tests check it every time). */
	check_protected = n % 5 == 0;
	pcrc = check_protected ? tj_protected_crc_of(&t, true) : 0;
	dev_fault_stats(t.f, &st0);
	if (n != 0 && at_flush) {
		dev_fault_fail_nth(t.f, LUNFS_FAULT_FLUSH, n, EIO, true);
	} else if (n != 0) {
		dev_fault_crash_after(t.f, n);
	}
	wl_run(&t, &m, 5, &res);
	dev_fault_stats(t.f, &st1);
	if (count_out != NULL) {
		*count_out = at_flush ? st1.flushes - st0.flushes : st1.writes - st0.writes;
	}
	/* The cache may hold what never became durable: throw it away. */
	tj_new_cache(&t);
	ck_assert_int_eq(dev_fault_power_cycle(t.f, seed), 0);
	dev_fault_crash_after(t.f, 0);
	dev_fault_fail_nth(t.f, LUNFS_FAULT_FLUSH, 0, 0, false);

	saved_jsb = tj_read(&t, t.jbase, BLK);
	ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
	k = model_match(&m, &t, &res);
	if (k < 0) {
		ck_abort_msg("crash at write %llu seed %llu: no prefix state >= %u (tried %u)",
			     (unsigned long long)n, (unsigned long long)seed, res.last_ok, res.last_tried);
	}
	if (check_protected) {
		ck_assert_uint_eq(tj_protected_crc_of(&t, true), pcrc);
	}

	/* Again: nothing to do. */
	ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
	ck_assert_uint_eq(applied, 0);
	ck_assert(model_state_is(&m, &t, (unsigned)k));

	/* Idempotent: put the dirty superblock back and replay it all again. */
	ck_assert_int_eq(dev_write(t.dev, saved_jsb, BLK, t.jbase), 0);
	ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
	ck_assert(model_state_is(&m, &t, (unsigned)k));
	dev_buf_free(saved_jsb);

	/* Remount: open (replays nothing), one more transaction, close. */
	{
		struct jnl *j;
		struct wl_result r2;

		memset(&r2, 0, sizeof(r2));
		pthread_mutex_lock(&t.v.meta_lock);
		ck_assert_int_eq(jnl_open(&t.v, SLOT, GEN + 1, &j), 0);
		ck_assert_int_eq(jnl_close(j), 0);
		pthread_mutex_unlock(&t.v.meta_lock);
		k2 = model_match(&m, &t, &res);
		ck_assert_int_eq(k2, k);
	}
	model_free(&m);
	tj_teardown(&t);
}

START_TEST(test_jnl_crash_every_write)
{
	uint64_t total = 0;
	const uint64_t seeds[] = { 0, 1, 0xC0FFEE, 977 };

	/* A dry run counts the writes of the workload. */
	crash_one(512, 0, 0, 40, false, &total);
	ck_assert_uint_gt(total, 100);
	for (uint64_t n = 1; n <= total + 1; n++) {
		for (unsigned s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
			crash_one(512, n, seeds[s], 40, false, NULL);
		}
	}
}
END_TEST

START_TEST(test_jnl_crash_every_flush)
{
	uint64_t total = 0;
	const uint64_t seeds[] = { 0, 1, 0xC0FFEE, 977, 31337, 5 };

	crash_one(512, 0, 0, 40, true, &total);
	ck_assert_uint_gt(total, 40);
	for (uint64_t n = 1; n <= total + 1; n++) {
		for (unsigned s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
			crash_one(512, n, seeds[s], 40, true, NULL);
		}
	}
}
END_TEST

START_TEST(test_jnl_crash_every_write_4k)
{
	uint64_t total = 0;

	crash_one(4096, 0, 0, 25, false, &total);
	for (uint64_t n = 1; n <= total + 1; n++) {
		crash_one(4096, n, 0, 25, false, NULL);
		crash_one(4096, n, n * 7919, 25, false, NULL);
	}
}
END_TEST

/* Crash now: every write and flush fails from here (close's checkpoint
 * must not flush the last home writes), then power comes back. */
static void tj_crash_close(struct tj *t, struct jnl *j, uint64_t seed)
{
	dev_fault_fail_nth(t->f, LUNFS_FAULT_FLUSH, 1, EIO, true);
	dev_fault_crash_after(t->f, 1);
	ck_assert_int_ne(jnl_close(j), 0);
	tj_new_cache(t);
	ck_assert_int_eq(dev_fault_power_cycle(t->f, seed), 0);
	dev_fault_crash_after(t->f, 0);
	dev_fault_fail_nth(t->f, LUNFS_FAULT_FLUSH, 0, 0, false);
}

START_TEST(test_jnl_ring_wrap)
{
	struct tj t;
	struct model m;
	struct wl_result res;
	struct jnl *j;
	struct lunfs_jsb jsb;
	uint64_t applied, last_tail = 1;
	unsigned ckpts = 0;

	tj_setup(&t, true, 1 * MiB, 512);
	model_init(&m, &t, 1000);
	memset(&res, 0, sizeof(res));
	pthread_mutex_lock(&t.v.meta_lock);
	ck_assert_int_eq(jnl_open(&t.v, SLOT, GEN, &j), 0);
	for (unsigned i = 1; i <= 1000; i += 10) {
		ck_assert_int_eq(wl_txs(&t, j, &m, i, i + 9, 0, &res), 0);
		tj_jsb(&t, &jsb);
		ck_assert_uint_eq(jsb.state, LUNFS_JOURNAL_DIRTY);
		ck_assert_uint_ge(jsb.tail_seq, last_tail);
		if (jsb.tail_seq > last_tail) {
			ckpts++;
		}
		last_tail = jsb.tail_seq;
		/* The live ring (247 blocks, checkpointed past half) holds
		 * at most ~42 transactions of 3+ blocks; 1000 of them make
		 * it wrap many times. */
		ck_assert_uint_le(i + 9 - (jsb.tail_seq - 1), 45);
	}
	ck_assert_uint_gt(ckpts, 20);
	ck_assert(model_state_is(&m, &t, 1000));
	/* Crash with the last home writes unflushed; replay across the wrap. */
	tj_crash_close(&t, j, 0);
	pthread_mutex_unlock(&t.v.meta_lock);
	ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
	ck_assert_uint_gt(applied, 0);
	ck_assert(model_state_is(&m, &t, 1000));

	/* Reopen: sequence numbers continue where replay left them. */
	tj_jsb(&t, &jsb);
	ck_assert_uint_eq(jsb.state, LUNFS_JOURNAL_CLEAN);
	ck_assert_uint_eq(jsb.tail_seq, 1001);
	pthread_mutex_lock(&t.v.meta_lock);
	ck_assert_int_eq(jnl_open(&t.v, SLOT, GEN, &j), 0);
	ck_assert_int_eq(jnl_close(j), 0);
	pthread_mutex_unlock(&t.v.meta_lock);
	tj_jsb(&t, &jsb);
	ck_assert_uint_eq(jsb.tail_seq, 1001);
	model_free(&m);
	tj_teardown(&t);
}
END_TEST

START_TEST(test_jnl_open_replays_dirty)
{
	struct tj t;
	struct model m;
	struct wl_result res;
	struct jnl *j;
	struct mc_entry *e;

	tj_setup(&t, true, 2 * MiB, 512);
	model_init(&m, &t, 30);
	memset(&res, 0, sizeof(res));
	pthread_mutex_lock(&t.v.meta_lock);
	ck_assert_int_eq(jnl_open(&t.v, SLOT, GEN, &j), 0);
	ck_assert_int_eq(wl_txs(&t, j, &m, 1, 30, 0, &res), 0);
	/* Power cut dropping every unflushed write: the last transaction's
	 * home writes are lost, and its images are only in the journal. */
	tj_crash_close(&t, j, 0);
	ck_assert(!model_state_is(&m, &t, 30));
	/* A stale entry in the cache must not survive the replay. */
	ck_assert_int_eq(mc_get(t.v.mc, m.w[m.pick[30][0]].addr, m.w[m.pick[30][0]].len, 0, &e), 0);
	mc_put(t.v.mc, e);
	ck_assert_int_eq(jnl_open(&t.v, SLOT, GEN + 1, &j), 0);
	ck_assert(model_state_is(&m, &t, 30));
	ck_assert_int_eq(mc_get(t.v.mc, m.w[m.pick[30][0]].addr, m.w[m.pick[30][0]].len, 0, &e), 0);
	ck_assert(image_is(&m, m.pick[30][0], e->buf, 30));
	mc_put(t.v.mc, e);
	ck_assert_int_eq(jnl_close(j), 0);
	pthread_mutex_unlock(&t.v.meta_lock);
	model_free(&m);
	tj_teardown(&t);
}
END_TEST

/* Fail the nth I/O of kind `ops` from tx 9 on; after remount the volume
 * must hold exactly the state after `expect` (8, or 9 when the failure
 * came after tx 9's commit was durable). */
static void io_error_case(unsigned ops, uint64_t nth, unsigned expect)
{
	struct tj t;
	struct model m;
	struct wl_result res;
	struct jnl *j;
	struct jnl_handle *h;
	uint64_t applied;
	int err;

	tj_setup(&t, true, 1 * MiB, 512);
	model_init(&m, &t, 12);
	memset(&res, 0, sizeof(res));
	pthread_mutex_lock(&t.v.meta_lock);
	ck_assert_int_eq(jnl_open(&t.v, SLOT, GEN, &j), 0);
	ck_assert_int_eq(wl_txs(&t, j, &m, 1, 8, 0, &res), 0);
	dev_fault_fail_nth(t.f, ops, nth, EIO, false);
	err = wl_txs(&t, j, &m, 9, 12, 0, &res);
	ck_assert_int_eq(err, -EIO);
	ck_assert_uint_eq(res.last_ok, 8);
	/* Aborted: nothing more goes through, even with the disk back. */
	ck_assert_int_eq(jnl_start(j, 1, &h), -EIO);
	ck_assert_int_eq(jnl_sync(j), -EIO);
	ck_assert_int_eq(jnl_close(j), -EIO);
	pthread_mutex_unlock(&t.v.meta_lock);
	/* Remount after power loss: the last durable state. */
	tj_new_cache(&t);
	ck_assert_int_eq(dev_fault_power_cycle(t.f, 0), 0);
	ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
	ck_assert(model_state_is(&m, &t, expect));
	pthread_mutex_lock(&t.v.meta_lock);
	ck_assert_int_eq(jnl_open(&t.v, SLOT, GEN + 1, &j), 0);
	ck_assert_int_eq(wl_txs(&t, j, &m, 9, 12, 0, &res), 0);
	ck_assert_int_eq(jnl_close(j), 0);
	pthread_mutex_unlock(&t.v.meta_lock);
	ck_assert(model_state_is(&m, &t, 12));
	model_free(&m);
	tj_teardown(&t);
}

START_TEST(test_jnl_flush_error_aborts)
{
	/* The flush after the commit write of tx 9 (order_data adds one
	 * before it for tx 9, since 9 % 3 == 0: fail the second). */
	io_error_case(LUNFS_FAULT_FLUSH, 2, 8);
	io_error_case(LUNFS_FAULT_FLUSH, 1, 8);
}
END_TEST

START_TEST(test_jnl_write_error_aborts)
{
	io_error_case(LUNFS_FAULT_WRITE, 1, 8); /* the ring write */
	io_error_case(LUNFS_FAULT_WRITE, 3, 9); /* a home write, after the commit */
}
END_TEST

/* Build a journal with 10 committed transactions, crashed before
 * checkpoint. Returns the model; the jsb is DIRTY. */
static void hostile_base(struct tj *t, struct model *m)
{
	struct wl_result res;
	struct jnl *j;

	tj_setup(t, true, 1 * MiB, 512);
	model_init(m, t, 10);
	memset(&res, 0, sizeof(res));
	pthread_mutex_lock(&t->v.meta_lock);
	ck_assert_int_eq(jnl_open(&t->v, SLOT, GEN, &j), 0);
	ck_assert_int_eq(wl_txs(t, j, m, 1, 10, 0, &res), 0);
	tj_crash_close(t, j, 0);
	pthread_mutex_unlock(&t->v.meta_lock);
}

/* Ring position of the commit block of tx seq (scan). */
static uint64_t find_commit(struct tj *t, uint64_t seq)
{
	uint8_t *b = dev_buf_alloc(BLK);
	uint64_t nblk = t->v.sb.journal_size / BLK;

	ck_assert_ptr_nonnull(b);
	for (uint64_t p = 9; p < nblk; p++) {
		struct lunfs_jcommit cm;

		ck_assert_int_eq(dev_read(t->dev, b, BLK, t->jbase + p * BLK), 0);
		if (jcommit_decode(&t->v.codec, b, t->jbase + p * BLK, &cm) == 0 && cm.seq == seq) {
			dev_buf_free(b);
			return p;
		}
	}
	dev_buf_free(b);
	ck_abort_msg("commit %llu not found", (unsigned long long)seq);
	return 0;
}

static void flip_byte(struct tj *t, uint64_t off)
{
	uint64_t blk = off / BLK * BLK;
	uint8_t *b = tj_read(t, blk, BLK);

	b[off - blk] ^= 0x5A;
	ck_assert_int_eq(dev_write(t->dev, b, BLK, blk), 0);
	dev_buf_free(b);
}

START_TEST(test_jnl_replay_torn_commit)
{
	struct tj t;
	struct model m;
	uint64_t applied, p10, p9;

	/* A damaged commit block ends the log before it. */
	hostile_base(&t, &m);
	p10 = find_commit(&t, 10);
	flip_byte(&t, t.jbase + p10 * BLK + 100);
	ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
	ck_assert_uint_eq(applied, 9);
	ck_assert(model_state_is(&m, &t, 9));
	model_free(&m);
	tj_teardown(&t);

	/* A damaged payload block (body_crc) too. */
	hostile_base(&t, &m);
	p9 = find_commit(&t, 9);
	flip_byte(&t, t.jbase + (p9 - 1) * BLK + 4000);
	ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
	ck_assert_uint_eq(applied, 8);
	model_free(&m);
	tj_teardown(&t);

	/* Transactions after a gap are not applied even though valid. */
	hostile_base(&t, &m);
	p9 = find_commit(&t, 5);
	flip_byte(&t, t.jbase + p9 * BLK + 64);
	ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
	ck_assert_uint_eq(applied, 4);
	model_free(&m);
	tj_teardown(&t);
}
END_TEST

/* A superblock write torn between its first sector (the fields) and its
 * last (the crc) is read as the version its fields come from. */
START_TEST(test_jnl_replay_torn_jsb)
{
	struct tj t;
	struct model m;
	struct lunfs_jsb jsb;
	uint64_t applied;
	uint8_t *dirty, *clean;

	for (unsigned variant = 0; variant < 2; variant++) {
		hostile_base(&t, &m);
		dirty = tj_read(&t, t.jbase, BLK);
		clean = dev_buf_alloc(BLK);
		ck_assert_ptr_nonnull(clean);
		tj_jsb(&t, &jsb);
		ck_assert_uint_eq(jsb.state, LUNFS_JOURNAL_DIRTY);
		jsb.state = LUNFS_JOURNAL_CLEAN;
		jsb.tail_seq = 11;
		jsb_encode(&t.v.codec, &jsb, t.jbase, clean);
		if (variant == 0) {
			/* DIRTY fields, CLEAN crc: replays everything. */
			memcpy(dirty + 512, clean + 512, BLK - 512);
			ck_assert_int_eq(dev_write(t.dev, dirty, BLK, t.jbase), 0);
			ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
			ck_assert_uint_eq(applied, 10);
			ck_assert(model_state_is(&m, &t, 10));
		} else {
			/* CLEAN fields, DIRTY crc: nothing to replay. */
			memcpy(clean + 512, dirty + 512, BLK - 512);
			ck_assert_int_eq(dev_write(t.dev, clean, BLK, t.jbase), 0);
			ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
			ck_assert_uint_eq(applied, 0);
		}
		/* Either way it is sealed again. */
		tj_jsb(&t, &jsb);
		ck_assert_uint_eq(jsb.state, LUNFS_JOURNAL_CLEAN);
		ck_assert_uint_eq(jsb.tail_seq, 11);
		dev_buf_free(clean);
		dev_buf_free(dirty);
		model_free(&m);
		tj_teardown(&t);
	}
}
END_TEST

/* Write a forged but well-sealed transaction at ring block p. */
static void forge_tx(struct tj *t, uint64_t p, uint64_t seq, uint64_t dest, uint32_t len,
		     uint32_t npayload_claim)
{
	struct lunfs_jdesc *d = calloc(1, sizeof(*d));
	struct lunfs_jcommit cm;
	uint8_t *buf = dev_buf_alloc(3 * BLK);

	ck_assert_ptr_nonnull(d);
	ck_assert_ptr_nonnull(buf);
	d->seq = seq;
	d->slot = SLOT;
	d->ndesc = 1;
	d->npayload = npayload_claim;
	d->ntags = 1;
	d->tags[0].dest = dest;
	d->tags[0].len = len;
	memset(buf + BLK, 0xEE, BLK);
	jdesc_encode(&t->v.codec, d, t->jbase + p * BLK, buf);
	memset(&cm, 0, sizeof(cm));
	cm.seq = seq;
	cm.slot = SLOT;
	cm.ndesc = 1;
	cm.npayload = npayload_claim;
	cm.body_crc = crc32c(0, buf, 2 * BLK);
	jcommit_encode(&t->v.codec, &cm, t->jbase + (p + 2) * BLK, buf + 2 * BLK);
	ck_assert_int_eq(dev_write(t->dev, buf, 3 * BLK, t->jbase + p * BLK), 0);
	dev_buf_free(buf);
	free(d);
}

static void set_dirty_jsb(struct tj *t, uint64_t tail_seq, uint64_t tail_block)
{
	struct lunfs_jsb jsb;
	uint8_t *b = dev_buf_alloc(BLK);

	jsb_init(&jsb, SLOT, t->v.sb.journal_size);
	jsb.state = LUNFS_JOURNAL_DIRTY;
	jsb.tail_seq = tail_seq;
	jsb.tail_block = tail_block;
	jsb_encode(&t->v.codec, &jsb, t->jbase, b);
	ck_assert_int_eq(dev_write(t->dev, b, BLK, t->jbase), 0);
	dev_buf_free(b);
}

START_TEST(test_jnl_replay_forged_tags)
{
	struct tj t;
	uint64_t applied, d0;
	uint32_t pcrc;
	const struct {
		uint64_t dest;
		uint32_t len;
	} bad[] = {
		{ 0, BLK },                    /* label area */
		{ 4096, BLK },                 /* primary superblock */
		{ 1 * MiB, 512 },              /* heartbeat region */
		{ 0, 0 },                      /* filled below: the jsb itself */
		{ 0, 0 },                      /* the ring */
		{ 0, 0 },                      /* another host's orphan table */
		{ 0, 0 },                      /* straddles the data region's end */
		{ 0, 0 },                      /* beyond the device */
	};
	uint64_t dests[8];

	tj_setup(&t, false, 1 * MiB, 512);
	d0 = t.v.sb.regions[LUNFS_REGION_DATA].offset;
	for (unsigned i = 0; i < 8; i++) {
		dests[i] = bad[i].dest;
	}
	dests[3] = t.jbase;
	dests[4] = t.jbase + 20 * BLK;
	dests[5] = layout_journal_addr(&t.v.sb, SLOT + 1) + BLK;
	dests[6] = d0 + t.v.sb.regions[LUNFS_REGION_DATA].length - 512;
	dests[7] = VOL_SIZE + 8 * MiB;
	pcrc = tj_protected_crc(&t);
	for (unsigned i = 0; i < 8; i++) {
		uint32_t len = bad[i].len != 0 ? bad[i].len : BLK;

		forge_tx(&t, 9, 1, dests[i], len, 1);
		set_dirty_jsb(&t, 1, 9);
		pcrc = tj_protected_crc(&t); /* includes the forged ring */
		ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
		ck_assert_uint_eq(applied, 0);
		ck_assert_uint_eq(tj_protected_crc(&t), pcrc);
	}
	/* A forged length the ring cannot hold, and a bad tag length. */
	forge_tx(&t, 9, 1, d0, BLK, 0x7FFFFFFF);
	set_dirty_jsb(&t, 1, 9);
	ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
	ck_assert_uint_eq(applied, 0);
	forge_tx(&t, 9, 1, d0, 700, 1);
	set_dirty_jsb(&t, 1, 9);
	ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
	ck_assert_uint_eq(applied, 0);

	/* The same transaction aimed inside the data region is applied, and
	 * so is one at the orphan table: the forgery test is not vacuous. */
	forge_tx(&t, 9, 1, d0 + 4 * MiB, BLK, 1);
	forge_tx(&t, 12, 2, t.jbase + 2 * BLK, BLK, 1);
	set_dirty_jsb(&t, 1, 9);
	ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
	ck_assert_uint_eq(applied, 2);
	{
		uint8_t *b = tj_read(&t, d0 + 4 * MiB, BLK);

		ck_assert_uint_eq(b[0], 0xEE);
		ck_assert_uint_eq(b[BLK - 1], 0xEE);
		dev_buf_free(b);
	}
	/* The wrap rule: expected at the tail, found at ring_first. */
	forge_tx(&t, 9, 5, d0 + 5 * MiB, BLK, 1);
	set_dirty_jsb(&t, 5, 200);
	ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
	ck_assert_uint_eq(applied, 1);
	(void)pcrc;
	tj_teardown(&t);
}
END_TEST

START_TEST(test_jnl_replay_garbage)
{
	struct tj t;
	struct model m;
	uint64_t applied, ring_bytes;
	uint8_t *ring, *orig;
	uint32_t pcrc, rnd = 99;

	hostile_base(&t, &m);
	ring_bytes = t.v.sb.journal_size - 9ull * BLK;
	orig = tj_read(&t, t.jbase + 9ull * BLK, ring_bytes);
	ring = dev_buf_alloc(ring_bytes);
	ck_assert_ptr_nonnull(ring);
	pcrc = tj_protected_crc(&t);
	{
		void *jsb = tj_read(&t, t.jbase, BLK);

		/* Random bit flips over a valid journal, many times over. */
		for (unsigned iter = 0; iter < 150; iter++) {
			unsigned nflips = 1 + iter % 8;
			int err;

			memcpy(ring, orig, ring_bytes);
			for (unsigned f = 0; f < nflips; f++) {
				rnd = rnd * 1103515245u + 12345u;
				/* Mostly where the transactions are. */
				uint64_t off = (rnd >> 3) % (iter % 2 ? 80ull * BLK : ring_bytes);

				ring[off] ^= (uint8_t)(1u << (rnd % 8));
			}
			ck_assert_int_eq(dev_write(t.dev, ring, ring_bytes, t.jbase + 9ull * BLK), 0);
			ck_assert_int_eq(dev_write(t.dev, jsb, BLK, t.jbase), 0);
			pcrc = tj_protected_crc(&t); /* the ring is protected too */
			err = jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied);
			ck_assert_int_eq(err, 0);
			ck_assert_uint_le(applied, 10);
			ck_assert_uint_eq(tj_protected_crc(&t) , pcrc);
		}
		/* Pure garbage in the whole ring. */
		for (unsigned iter = 0; iter < 10; iter++) {
			for (uint64_t i = 0; i < ring_bytes; i++) {
				rnd = rnd * 1103515245u + 12345u;
				ring[i] = (uint8_t)(rnd >> 16);
			}
			ck_assert_int_eq(dev_write(t.dev, ring, ring_bytes, t.jbase + 9ull * BLK), 0);
			ck_assert_int_eq(dev_write(t.dev, jsb, BLK, t.jbase), 0);
			pcrc = tj_protected_crc(&t);
			ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), 0);
			ck_assert_uint_eq(applied, 0);
			ck_assert_uint_eq(tj_protected_crc(&t), pcrc);
		}
		/* A garbage journal superblock: an error, nothing written. */
		memset(ring, 0x33, BLK);
		ck_assert_int_eq(dev_write(t.dev, ring, BLK, t.jbase), 0);
		ck_assert_int_eq(jnl_replay(t.dev, &t.v.sb, &t.v.codec, SLOT, &applied), -EUCLEAN);
		ck_assert_uint_eq(applied, 0);
		dev_buf_free(jsb);
	}
	dev_buf_free(ring);
	dev_buf_free(orig);
	model_free(&m);
	tj_teardown(&t);
}
END_TEST

START_TEST(test_jnl_checkpoint_and_close)
{
	struct tj t;
	struct model m;
	struct wl_result res;
	struct jnl *j;
	struct lunfs_jsb jsb;

	tj_setup(&t, false, 1 * MiB, 512);
	model_init(&m, &t, 60);
	memset(&res, 0, sizeof(res));
	pthread_mutex_lock(&t.v.meta_lock);
	ck_assert_int_eq(jnl_open(&t.v, SLOT, GEN, &j), 0);
	tj_jsb(&t, &jsb);
	ck_assert_uint_eq(jsb.state, LUNFS_JOURNAL_DIRTY);
	ck_assert_uint_eq(jsb.tail_seq, 1);
	ck_assert_uint_eq(jsb.tail_block, 9);
	ck_assert_uint_eq(jsb.owner_gen, GEN);
	/* Up to half the ring (123 blocks, ~7 per tx) no checkpoint. */
	ck_assert_int_eq(wl_txs(&t, j, &m, 1, 15, 0, &res), 0);
	tj_jsb(&t, &jsb);
	ck_assert_uint_eq(jsb.tail_seq, 1);
	ck_assert_int_eq(wl_txs(&t, j, &m, 16, 60, 0, &res), 0);
	tj_jsb(&t, &jsb);
	ck_assert_uint_gt(jsb.tail_seq, 1);
	ck_assert_uint_eq(jsb.state, LUNFS_JOURNAL_DIRTY);
	ck_assert_int_eq(jnl_close(j), 0);
	tj_jsb(&t, &jsb);
	ck_assert_uint_eq(jsb.state, LUNFS_JOURNAL_CLEAN);
	ck_assert_uint_eq(jsb.tail_seq, 61);
	/* Reopen and commit one: it carries seq 61. */
	ck_assert_int_eq(jnl_open(&t.v, SLOT, GEN + 1, &j), 0);
	ck_assert_int_eq(jnl_sync(j), 0); /* nothing to commit: no-op */
	{
		struct jnl_handle *h;
		struct mc_entry *e;

		ck_assert_int_eq(jnl_start(j, 1, &h), 0);
		ck_assert_int_eq(mc_get(t.v.mc, m.w[0].addr, BLK, 0, &e), 0);
		ck_assert_int_eq(jnl_dirty(h, e), 0);
		ck_assert_int_eq(jnl_dirty(h, e), 0); /* once only */
		image_fill(e->buf, BLK, m.w[0].addr, 999);
		mc_put(t.v.mc, e);
		ck_assert_int_eq(jnl_stop(h, false), 0);
		ck_assert_int_eq(jnl_sync(j), 0);
	}
	(void)find_commit(&t, 61);
	ck_assert_int_eq(jnl_close(j), 0);
	pthread_mutex_unlock(&t.v.meta_lock);
	tj_jsb(&t, &jsb);
	ck_assert_uint_eq(jsb.tail_seq, 62);
	ck_assert_uint_eq(jsb.owner_gen, GEN + 1);
	model_free(&m);
	tj_teardown(&t);
}
END_TEST

START_TEST(test_jnl_handle_rules)
{
	struct tj t;
	struct jnl *j;
	struct jnl_handle *h, *h2;
	struct mc_entry *e;
	uint64_t d0;

	tj_setup(&t, false, 1 * MiB, 512);
	d0 = t.v.sb.regions[LUNFS_REGION_DATA].offset;
	pthread_mutex_lock(&t.v.meta_lock);
	ck_assert_int_eq(jnl_open(&t.v, SLOT, GEN, &j), 0);
	/* More than the ring can ever hold. */
	ck_assert_int_eq(jnl_start(j, 100000, &h), -E2BIG);
	ck_assert_int_eq(jnl_start(j, 4, &h), 0);
	ck_assert_int_eq(jnl_start(j, 4, &h2), -EBUSY);
	/* Outside the data region and orphan table: refused up front. */
	ck_assert_int_eq(mc_get(t.v.mc, 4096, BLK, 0, &e), 0);
	ck_assert_int_eq(jnl_dirty(h, e), -EINVAL);
	mc_put(t.v.mc, e);
	ck_assert_int_eq(mc_get(t.v.mc, t.jbase + 9 * BLK, BLK, 0, &e), 0);
	ck_assert_int_eq(jnl_dirty(h, e), -EINVAL);
	mc_put(t.v.mc, e);
	ck_assert_int_eq(jnl_sync(j), -EBUSY);
	ck_assert_int_eq(jnl_stop(h, false), 0);
	ck_assert_int_eq(jnl_stop(h, false), -EINVAL);

	/* Dirty entries are pinned until committed: a clean drop keeps
	 * them, and their changes reach the disk at commit. */
	ck_assert_int_eq(jnl_start(j, 2, &h), 0);
	ck_assert_int_eq(mc_get(t.v.mc, d0 + BLK, BLK, MC_NOREAD, &e), 0);
	ck_assert_int_eq(jnl_dirty(h, e), 0);
	memset(e->buf, 0x42, BLK);
	mc_put(t.v.mc, e);
	ck_assert_int_eq(jnl_stop(h, false), 0);
	mc_drop_clean(t.v.mc);
	ck_assert_int_eq(mc_get(t.v.mc, d0 + BLK, BLK, 0, &e), 0);
	ck_assert_uint_eq(((uint8_t *)e->buf)[17], 0x42);
	ck_assert_uint_ne(e->dirty_tid, 0);
	mc_put(t.v.mc, e);
	ck_assert_int_eq(jnl_sync(j), 0);
	mc_drop_clean(t.v.mc);
	{
		uint64_t entries;

		mc_stats(t.v.mc, NULL, &entries);
		ck_assert_uint_eq(entries, 0);
	}
	ck_assert_int_eq(mc_get(t.v.mc, d0 + BLK, BLK, 0, &e), 0);
	ck_assert_uint_eq(((uint8_t *)e->buf)[17], 0x42);
	ck_assert_uint_eq(e->dirty_tid, 0);
	mc_put(t.v.mc, e);

	/* Asynchronous handles pile up until a quarter of the ring, then
	 * jnl_start commits on its own: 247 / 4 = 61 blocks. */
	{
		bool committed = false;

		for (unsigned i = 0; i < 80 && !committed; i++) {
			uint8_t *b;

			ck_assert_int_eq(jnl_start(j, 2, &h), 0);
			ck_assert_int_eq(mc_get(t.v.mc, d0 + (100 + i) * BLK, BLK, MC_NOREAD, &e), 0);
			ck_assert_int_eq(jnl_dirty(h, e), 0);
			memset(e->buf, 0x60, BLK);
			mc_put(t.v.mc, e);
			ck_assert_int_eq(jnl_stop(h, false), 0);
			b = tj_read(&t, d0 + 100 * BLK, BLK);
			committed = b[0] == 0x60;
			dev_buf_free(b);
		}
		ck_assert(committed);
	}
	ck_assert_int_eq(jnl_close(j), 0);
	pthread_mutex_unlock(&t.v.meta_lock);
	tj_teardown(&t);
}
END_TEST

START_TEST(test_jnl_commit_timer)
{
	struct tj t;
	struct jnl *j;
	struct jnl_handle *h;
	struct mc_entry *e;
	uint64_t d0;
	bool seen = false;

	tj_setup(&t, false, 1 * MiB, 512);
	t.v.opts.commit_interval_ms = 20;
	d0 = t.v.sb.regions[LUNFS_REGION_DATA].offset;
	pthread_mutex_lock(&t.v.meta_lock);
	ck_assert_int_eq(jnl_open(&t.v, SLOT, GEN, &j), 0);
	ck_assert_int_eq(jnl_start(j, 1, &h), 0);
	ck_assert_int_eq(mc_get(t.v.mc, d0 + 7 * BLK, BLK, MC_NOREAD, &e), 0);
	ck_assert_int_eq(jnl_dirty(h, e), 0);
	memset(e->buf, 0x5C, BLK);
	mc_put(t.v.mc, e);
	ck_assert_int_eq(jnl_stop(h, false), 0);
	pthread_mutex_unlock(&t.v.meta_lock);
	/* No timing assertion: wait (up to a minute) for the timer to do it. */
	for (unsigned i = 0; i < 6000 && !seen; i++) {
		uint8_t *b = tj_read(&t, d0 + 7 * BLK, BLK);

		seen = b[0] == 0x5C;
		dev_buf_free(b);
		if (!seen) {
			usleep(10000);
		}
	}
	ck_assert(seen);
	pthread_mutex_lock(&t.v.meta_lock);
	ck_assert_int_eq(jnl_close(j), 0);
	pthread_mutex_unlock(&t.v.meta_lock);
	tj_teardown(&t);
}
END_TEST

static Suite *journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("core");
	TCase *crash = tcase_create("crash");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_jnl_commit_readback);
	tcase_add_test(tc, test_jnl_ring_wrap);
	tcase_add_test(tc, test_jnl_open_replays_dirty);
	tcase_add_test(tc, test_jnl_flush_error_aborts);
	tcase_add_test(tc, test_jnl_write_error_aborts);
	tcase_add_test(tc, test_jnl_replay_torn_commit);
	tcase_add_test(tc, test_jnl_replay_torn_jsb);
	tcase_add_test(tc, test_jnl_replay_forged_tags);
	tcase_add_test(tc, test_jnl_replay_garbage);
	tcase_add_test(tc, test_jnl_checkpoint_and_close);
	tcase_add_test(tc, test_jnl_handle_rules);
	tcase_add_test(tc, test_jnl_commit_timer);
	suite_add_tcase(s, tc);
	tcase_set_timeout(crash, 600);
	tcase_add_test(crash, test_jnl_crash_every_write);
	tcase_add_test(crash, test_jnl_crash_every_write_4k);
	tcase_add_test(crash, test_jnl_crash_every_flush);
	suite_add_tcase(s, crash);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(journal_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
