/*
 * Unit tests of the file data path (fs/file.c) and of inode reclaim and
 * orphans (fs/inode.c) on mounted memory volumes:
 *   - a random exerciser (seed printed; LUNFS_TEST_SEED overrides it):
 *     writes, truncates, punches, zero-ranges, fallocates and reads on a
 *     sparse file over a multi-GiB offset range, each checked against a
 *     sparse in-memory model after every step, then everything again after
 *     a remount; with 512 and 4096-byte sectors, 64 KiB and 1 MiB blocks;
 *   - the same over a device pre-filled with 0xAB: no 0xAB byte is ever
 *     read (the data written never contains one);
 *   - unaligned writes across sector, chunk and block edges;
 *   - offsets up to 2^62 and the off_t limit (EFBIG), SEEK_DATA/SEEK_HOLE;
 *   - ENOSPC: fill the volume, data before is intact, truncate frees, write
 *     again;
 *   - 4 threads writing different files, and disjoint ranges of one file;
 *   - reclaim of an unlinked file, and orphan recovery at mount;
 *   - a power cut at every write of a small workload with syncs, remount
 *     (journal replay): every byte written before the last successful sync
 *     and not touched since is there, and the file's map matches the FILE
 *     bitmaps exactly (no leak, nothing mapped that is free).
 */
#include <check.h>
#include <errno.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_testvol.h"
#include "lunfs/cluster.h"
#include "lunfs/inode.h"
#include "lunfs/map.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define TiB (1024ull * GiB)
#define PG 4096ull

static struct fs_testvol T;

static void teardown(void)
{
	fs_testvol_destroy(&T);
}

/* The buffer alignment the next vol_up gives its device (0 = the sector
 * size): 8 lets the data path hand unaligned callers' buffers to the device
 * without a bounce copy, as on tmpfs. */
static uint32_t next_mem_align;

static void vol_up_opts(uint64_t size, uint32_t ss, uint32_t bs, bool fault, bool prefill)
{
	struct fs_testvol_opts o;
	int r;

	memset(&o, 0, sizeof(o));
	o.mem_align = next_mem_align;
	o.size = size;
	o.sector_size = ss;
	o.file_block_size = bs;
	o.fault = fault;
	o.prefill = prefill;
	o.prefill_byte = 0xAB;
	if (bs != 0 && size <= 1 * GiB) {
		o.cluster_size = 16ull * bs < 4 * MiB ? 4 * MiB : 16ull * bs;
	}
	r = fs_testvol_create(&o, &T);
	ck_assert_msg(r == 0, "fs_testvol_create: %d", r);
}

static void vol_up(uint64_t size, uint32_t ss, uint32_t bs)
{
	vol_up_opts(size, ss, bs, false, false);
}

static uint64_t units_used(uint8_t type)
{
	uint64_t u;

	ck_assert_int_eq(fs_testvol_units_used(&T, type, &u), 0);
	return u;
}

/* ---- data patterns -------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Byte p of the data written by the op with seed s: never 0 (so a zero
 * read where data belongs is caught) and never 0xAB (the garbage marker). */
static uint8_t pat(uint64_t s, uint64_t p)
{
	uint8_t b = (uint8_t)mix64(s * 0x9E3779B97F4A7C15ull + (p >> 3)) ^ (uint8_t)p;

	if (b == 0 || b == 0xAB) {
		b = 0x5A;
	}
	return b;
}

static void pat_fill(uint8_t *buf, uint64_t s, uint64_t off, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++) {
		buf[i] = pat(s, off + i);
	}
}

/* ---- sparse model of a file: 4 KiB pages in an open-addressing table ---- */

struct mpage {
	uint64_t idx;   /* page index + 1; 0 = empty slot */
	uint8_t *data;
};

struct model {
	struct mpage *tab;
	size_t cap, n;
	uint64_t size;
};

static void model_init(struct model *m)
{
	m->cap = 1024;
	m->n = 0;
	m->size = 0;
	m->tab = calloc(m->cap, sizeof(*m->tab));
	ck_assert_ptr_nonnull(m->tab);
}

static void model_free(struct model *m)
{
	for (size_t i = 0; i < m->cap; i++) {
		free(m->tab[i].data);
	}
	free(m->tab);
	m->tab = NULL;
}

static size_t model_slot(const struct model *m, uint64_t idx)
{
	size_t i = (size_t)mix64(idx + 1) & (m->cap - 1);

	while (m->tab[i].idx != 0 && m->tab[i].idx != idx + 1) {
		i = (i + 1) & (m->cap - 1);
	}
	return i;
}

static uint8_t *model_get(const struct model *m, uint64_t idx)
{
	size_t i = model_slot(m, idx);

	return m->tab[i].idx != 0 ? m->tab[i].data : NULL;
}

static uint8_t *model_page(struct model *m, uint64_t idx)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap) {
		struct model g = { .cap = m->cap * 2, .n = m->n, .size = m->size };

		g.tab = calloc(g.cap, sizeof(*g.tab));
		ck_assert_ptr_nonnull(g.tab);
		for (size_t k = 0; k < m->cap; k++) {
			if (m->tab[k].idx != 0) {
				g.tab[model_slot(&g, m->tab[k].idx - 1)] = m->tab[k];
			}
		}
		free(m->tab);
		*m = g;
	}
	i = model_slot(m, idx);
	if (m->tab[i].idx == 0) {
		m->tab[i].idx = idx + 1;
		m->tab[i].data = calloc(1, PG);
		ck_assert_ptr_nonnull(m->tab[i].data);
		m->n++;
	}
	return m->tab[i].data;
}

static void model_clone(const struct model *src, struct model *dst)
{
	*dst = *src;
	dst->tab = calloc(src->cap, sizeof(*dst->tab));
	ck_assert_ptr_nonnull(dst->tab);
	for (size_t i = 0; i < src->cap; i++) {
		dst->tab[i].idx = src->tab[i].idx;
		if (src->tab[i].data != NULL) {
			dst->tab[i].data = malloc(PG);
			ck_assert_ptr_nonnull(dst->tab[i].data);
			memcpy(dst->tab[i].data, src->tab[i].data, PG);
		}
	}
}

static void model_write(struct model *m, uint64_t s, uint64_t off, uint64_t len)
{
	for (uint64_t p = off; p < off + len;) {
		uint64_t idx = p / PG, in = p % PG, n = PG - in < off + len - p ? PG - in : off + len - p;
		uint8_t *d = model_page(m, idx);

		for (uint64_t k = 0; k < n; k++) {
			d[in + k] = pat(s, p + k);
		}
		p += n;
	}
	if (off + len > m->size) {
		m->size = off + len;
	}
}

/* Zero [a, z): over the table, so a huge range costs nothing. */
static void model_zero(struct model *m, uint64_t a, uint64_t z)
{
	for (size_t i = 0; i < m->cap; i++) {
		uint64_t ps, pe, x, y;

		if (m->tab[i].idx == 0) {
			continue;
		}
		ps = (m->tab[i].idx - 1) * PG;
		pe = ps + PG;
		x = a > ps ? a : ps;
		y = z < pe ? z : pe;
		if (x < y) {
			memset(m->tab[i].data + (x - ps), 0, y - x);
		}
	}
}

static void model_read(const struct model *m, uint64_t off, uint64_t len, uint8_t *out)
{
	for (uint64_t p = off; p < off + len;) {
		uint64_t idx = p / PG, in = p % PG, n = PG - in < off + len - p ? PG - in : off + len - p;
		const uint8_t *d = model_get(m, idx);

		if (d != NULL) {
			memcpy(out + (p - off), d + in, n);
		} else {
			memset(out + (p - off), 0, n);
		}
		p += n;
	}
}

/* ---- checks ---------------------------------------------------------------- */

static bool no_garbage; /* the device was pre-filled with 0xAB */

static void check_range(struct inode_mem *im, const struct model *m, uint64_t off, uint64_t len,
			const char *what)
{
	uint64_t want = off >= m->size ? 0 : (len < m->size - off ? len : m->size - off);
	uint8_t *got = malloc(len + 1), *exp = malloc(len + 1);
	ssize_t r;

	ck_assert_ptr_nonnull(got);
	ck_assert_ptr_nonnull(exp);
	r = file_read(T.v, im, got, len, off);
	ck_assert_msg(r == (ssize_t)want, "%s: read %llu@%llu = %zd, want %llu (size %llu)", what,
		      (unsigned long long)len, (unsigned long long)off, r, (unsigned long long)want,
		      (unsigned long long)m->size);
	model_read(m, off, want, exp);
	if (memcmp(got, exp, want) != 0) {
		uint64_t i = 0;

		while (got[i] == exp[i]) {
			i++;
		}
		ck_abort_msg("%s: byte %llu (read %llu@%llu): got %02x want %02x", what,
			     (unsigned long long)(off + i), (unsigned long long)len,
			     (unsigned long long)off, got[i], exp[i]);
	}
	if (no_garbage) {
		ck_assert_msg(memchr(got, 0xAB, want) == NULL, "%s: garbage byte read", what);
	}
	free(got);
	free(exp);
}

/* Every page the model has, plus the data regions SEEK_DATA reports. */
static void check_all(struct inode_mem *im, const struct model *m, const char *what)
{
	uint64_t pos = 0;
	unsigned regions = 0;

	ck_assert_uint_eq(im->di.size, m->size);
	for (size_t i = 0; i < m->cap; i++) {
		if (m->tab[i].idx != 0) {
			check_range(im, m, (m->tab[i].idx - 1) * PG, PG, what);
		}
	}
	while (pos < m->size) {
		uint64_t d, h;
		int r = file_seek(T.v, im, pos, SEEK_DATA, &d);

		if (r == -ENXIO) {
			break;
		}
		ck_assert_int_eq(r, 0);
		ck_assert_uint_ge(d, pos);
		ck_assert_int_eq(file_seek(T.v, im, d, SEEK_HOLE, &h), 0);
		ck_assert_uint_gt(h, d);
		for (uint64_t p = d; p < h; p += 4 * MiB) {
			check_range(im, m, p, h - p < 4 * MiB ? h - p : 4 * MiB, what);
		}
		pos = h;
		ck_assert_uint_lt(++regions, 1000000);
	}
}

/* ---- the exerciser ---------------------------------------------------------- */

struct ex {
	struct inode_mem *im;
	struct model m;
	uint64_t rng;
	uint64_t range;      /* file offsets used: [0, range) */
	uint64_t hot;        /* most ops fall in [0, hot) */
	uint64_t bs;
};

static uint64_t rnd(struct ex *x)
{
	x->rng = x->rng * 6364136223846793005ull + 1442695040888963407ull;
	return mix64(x->rng);
}

static uint64_t rnd_below(struct ex *x, uint64_t n)
{
	return n == 0 ? 0 : rnd(x) % n;
}

static uint64_t rnd_off(struct ex *x)
{
	uint64_t o, r = rnd_below(x, 100);

	if (r < 60) {
		o = rnd_below(x, x->hot);
	} else if (r < 75 && x->m.size > 0) {
		/* around the end of the file */
		o = x->m.size > 256 * KiB ? x->m.size - 256 * KiB + rnd_below(x, 512 * KiB)
					  : rnd_below(x, 512 * KiB);
	} else {
		o = rnd_below(x, x->range);
	}
	switch (rnd_below(x, 5)) {
	case 0:
		o -= o % 512;
		break;
	case 1:
		o -= o % 4096;
		break;
	case 2:
		o -= o % (x->bs / 64);
		break;
	case 3:
		o -= o % x->bs;
		break;
	default:
		break;
	}
	return o < x->range ? o : x->range - 1;
}

static uint64_t rnd_len(struct ex *x)
{
	uint64_t r = rnd_below(x, 100), l;

	if (r < 55) {
		l = 1 + rnd_below(x, 16 * KiB);
	} else if (r < 90) {
		l = 1 + rnd_below(x, 256 * KiB);
	} else {
		l = 1 + rnd_below(x, 2 * MiB + 12345);
	}
	if (rnd_below(x, 3) == 0) {
		l = (l + 511) & ~511ull;
	}
	return l;
}

static void ex_step(struct ex *x, unsigned step)
{
	uint64_t off = rnd_off(x), len = rnd_len(x), op = rnd_below(x, 100);
	char what[96];
	int r;

	if (off + len > x->range) {
		len = x->range - off;
	}
	if (op < 45) {
		uint64_t s = rnd(x);
		uint8_t *buf = malloc(len);
		ssize_t w;

		ck_assert_ptr_nonnull(buf);
		pat_fill(buf, s, off, len);
		w = file_write(T.v, x->im, buf, len, off);
		free(buf);
		ck_assert_msg(w == (ssize_t)len, "step %u write %llu@%llu: %zd", step,
			      (unsigned long long)len, (unsigned long long)off, w);
		model_write(&x->m, s, off, len);
		snprintf(what, sizeof(what), "step %u write %llu@%llu", step, (unsigned long long)len,
			 (unsigned long long)off);
	} else if (op < 55) {
		/* truncate: mostly shrink within the file, sometimes grow */
		uint64_t ns = rnd_below(x, 4) == 0 ? off : (x->m.size > 0 ? rnd_below(x, x->m.size) : off);

		if (rnd_below(x, 4) == 0) {
			ns -= ns % x->bs;
		}
		ck_assert_int_eq(file_truncate(T.v, x->im, ns), 0);
		if (ns < x->m.size) {
			model_zero(&x->m, ns, UINT64_MAX);
		}
		x->m.size = ns;
		snprintf(what, sizeof(what), "step %u truncate %llu", step, (unsigned long long)ns);
		off = ns > 4096 ? ns - 4096 : 0;
		len = 8192;
	} else if (op < 65) {
		if (rnd_below(x, 5) == 0) {
			len += rnd_below(x, 64) * x->bs; /* whole blocks too */
			if (off + len > x->range) {
				len = x->range - off;
			}
		}
		r = file_fallocate(T.v, x->im, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
		ck_assert_msg(r == 0, "step %u punch: %d", step, r);
		model_zero(&x->m, off, off + len);
		snprintf(what, sizeof(what), "step %u punch %llu@%llu", step, (unsigned long long)len,
			 (unsigned long long)off);
	} else if (op < 72) {
		bool keep = rnd_below(x, 2) == 0;

		r = file_fallocate(T.v, x->im, FALLOC_FL_ZERO_RANGE | (keep ? FALLOC_FL_KEEP_SIZE : 0),
				   off, len);
		ck_assert_msg(r == 0, "step %u zero range: %d", step, r);
		model_zero(&x->m, off, off + len);
		if (!keep && off + len > x->m.size) {
			x->m.size = off + len;
		}
		snprintf(what, sizeof(what), "step %u zero %llu@%llu", step, (unsigned long long)len,
			 (unsigned long long)off);
	} else if (op < 80) {
		bool keep = rnd_below(x, 2) == 0;

		r = file_fallocate(T.v, x->im, keep ? FALLOC_FL_KEEP_SIZE : 0, off, len);
		ck_assert_msg(r == 0, "step %u fallocate: %d", step, r);
		if (!keep && off + len > x->m.size) {
			x->m.size = off + len;
		}
		snprintf(what, sizeof(what), "step %u falloc %llu@%llu", step, (unsigned long long)len,
			 (unsigned long long)off);
	} else {
		snprintf(what, sizeof(what), "step %u read %llu@%llu", step, (unsigned long long)len,
			 (unsigned long long)off);
	}
	/* The op's range with a margin, and somewhere else. */
	{
		uint64_t a = off > 70000 ? off - 70000 : 0;

		check_range(x->im, &x->m, a, (off - a) + (len < 3 * MiB ? len : 3 * MiB) + 70000, what);
		off = rnd_off(x);
		check_range(x->im, &x->m, off, 1 + rnd_below(x, 300 * KiB), what);
	}
	ck_assert_uint_eq(x->im->di.size, x->m.size);
	/* SEEK_DATA never skips data. */
	if (x->m.size > 0) {
		uint64_t p = rnd_below(x, x->m.size), d;

		r = file_seek(T.v, x->im, p, SEEK_DATA, &d);
		if (r == -ENXIO) {
			d = x->m.size;
		} else {
			ck_assert_int_eq(r, 0);
		}
		ck_assert_uint_ge(d, p);
		if (d - p <= 4 * MiB) {
			uint8_t *z = calloc(1, d - p + 1), *e = malloc(d - p + 1);

			model_read(&x->m, p, d - p, e);
			ck_assert_msg(memcmp(z, e, d - p) == 0, "%s: SEEK_DATA %llu -> %llu skips data",
				      what, (unsigned long long)p, (unsigned long long)d);
			free(z);
			free(e);
		}
	}
}

static uint64_t test_seed(void)
{
	const char *s = getenv("LUNFS_TEST_SEED");

	return s != NULL ? strtoull(s, NULL, 0) : 0x1f2e3d4c5b6a7988ull;
}

static void exercise(uint32_t ss, uint32_t bs, uint64_t vol, uint64_t range, unsigned steps,
		     bool garbage)
{
	struct ex x;
	uint64_t ino, file0;

	memset(&x, 0, sizeof(x));
	x.rng = test_seed() ^ ss ^ ((uint64_t)bs << 20) ^ garbage;
	printf("file exerciser: seed %#llx (sectors %u, blocks %u, %u steps%s)\n",
	       (unsigned long long)x.rng, ss, bs, steps, garbage ? ", 0xAB device" : "");
	fflush(stdout);
	vol_up_opts(vol, ss, bs, false, garbage);
	no_garbage = garbage;
	x.bs = T.v->sb.file_block_size;
	x.range = range;
	x.hot = 48 * MiB < range ? 48 * MiB : range;
	model_init(&x.m);
	file0 = units_used(LUNFS_CLUSTER_FILE);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &x.im), 0);
	ino = x.im->ino;
	for (unsigned i = 0; i < steps; i++) {
		ex_step(&x, i);
		ck_assert_uint_eq(x.im->di.alloc_bytes / x.bs, units_used(LUNFS_CLUSTER_FILE) - file0);
	}
	check_all(x.im, &x.m, "before remount");
	/* Remount: everything comes from the disk again. */
	inode_put(T.v, x.im);
	ck_assert_int_eq(fs_testvol_unmount(&T), 0);
	ck_assert_int_eq(fs_testvol_mount(&T), 0);
	ck_assert_int_eq(inode_get(T.v, ino, &x.im), 0);
	check_all(x.im, &x.m, "after remount");
	/* Truncating to zero gives every block back. */
	ck_assert_int_eq(file_truncate(T.v, x.im, 0), 0);
	ck_assert_uint_eq(x.im->di.alloc_bytes, 0);
	ck_assert_uint_eq(x.im->di.map_height, 0);
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_FILE), file0);
	inode_put(T.v, x.im);
	model_free(&x.m);
	no_garbage = false;
}

START_TEST(test_file_exercise_512_64k)
{
	exercise(512, 64 * KiB, 16 * GiB, 6 * GiB, 700, false);
}
END_TEST

START_TEST(test_file_exercise_4096_64k)
{
	/* Chunks (1 KiB) smaller than a sector. */
	exercise(4096, 64 * KiB, 16 * GiB, 6 * GiB, 700, false);
}
END_TEST

START_TEST(test_file_exercise_512_1m)
{
	exercise(512, 1 * MiB, 64 * GiB, 40 * GiB, 500, false);
}
END_TEST

START_TEST(test_file_exercise_mem_align)
{
	/* Buffers go to the device as they are wherever 8-byte aligned:
	 * the no-copy writes (whole chunks, and overwrites) and reads. */
	next_mem_align = 8;
	exercise(512, 64 * KiB, 384 * MiB, 160 * MiB, 500, true);
	next_mem_align = 0;
}
END_TEST

START_TEST(test_file_exercise_garbage)
{
	exercise(512, 64 * KiB, 384 * MiB, 160 * MiB, 500, true);
}
END_TEST

START_TEST(test_file_exercise_garbage_4096)
{
	exercise(4096, 64 * KiB, 384 * MiB, 160 * MiB, 300, true);
}
END_TEST

/* ---- targeted cases ------------------------------------------------------------ */

START_TEST(test_file_unaligned)
{
	struct inode_mem *im;
	struct model m;
	const uint64_t offs[] = { 0, 1, 511, 512, 513, 1023, 1024, 1025, 4095, 4097, 65535, 65536,
				  65537, 131071 };
	uint64_t s = 1;

	vol_up(1 * GiB, 4096, 64 * KiB);
	model_init(&m);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	/* Every edge pair, into holes, unwritten chunks and written ones. */
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		for (size_t j = 0; j < sizeof(offs) / sizeof(offs[0]); j++) {
			uint64_t off = offs[i] + 3 * (j % 3) * 65536, len = offs[j] + 1;
			uint8_t *buf = malloc(len);

			pat_fill(buf, ++s, off, len);
			ck_assert_int_eq(file_write(T.v, im, buf, len, off), (ssize_t)len);
			model_write(&m, s, off, len);
			free(buf);
			check_range(im, &m, off > 5000 ? off - 5000 : 0, len + 10000, "unaligned");
		}
		if (i % 4 == 3) {
			ck_assert_int_eq(file_fallocate(T.v, im, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
							offs[i], 70000), 0);
			model_zero(&m, offs[i], offs[i] + 70000);
		}
	}
	check_all(im, &m, "unaligned");
	inode_put(T.v, im);
	model_free(&m);
}
END_TEST

START_TEST(test_file_huge_offsets)
{
	struct inode_mem *im;
	uint8_t buf[1000], got[1000];
	const uint64_t offs[] = { (1ull << 46) - 300, 1ull << 46, 64 * TiB + 12345, 1ull << 50,
				  1ull << 62 };
	uint64_t out;

	vol_up(1 * GiB, 512, 64 * KiB);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		pat_fill(buf, i + 1, offs[i], sizeof(buf));
		ck_assert_int_eq(file_write(T.v, im, buf, sizeof(buf), offs[i]), (ssize_t)sizeof(buf));
		ck_assert_uint_eq(im->di.size, offs[i] + sizeof(buf));
	}
	ck_assert_uint_ge(im->di.map_height, 5);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		pat_fill(buf, i + 1, offs[i], sizeof(buf));
		if (i == 0) {
			/* the next write overlapped its tail */
			pat_fill(buf + 300, 2, offs[1], sizeof(buf) - 300);
		}
		ck_assert_int_eq(file_read(T.v, im, got, sizeof(got), offs[i]), (ssize_t)sizeof(got));
		ck_assert_int_eq(memcmp(buf, got, sizeof(buf)), 0);
	}
	/* SEEK_DATA across 2^62 bytes of holes. */
	ck_assert_int_eq(file_seek(T.v, im, (1ull << 50) + 5000, SEEK_DATA, &out), 0);
	ck_assert_uint_eq(out, 1ull << 62);
	ck_assert_int_eq(file_seek(T.v, im, (1ull << 50) + 5000, SEEK_HOLE, &out), 0);
	ck_assert_uint_eq(out, (1ull << 50) + 5000);
	/* Data is found at chunk granularity: the zero-filled rest of a
	 * written chunk is data. */
	ck_assert_int_eq(file_seek(T.v, im, (1ull << 50) + 1000, SEEK_DATA, &out), 0);
	ck_assert_uint_eq(out, (1ull << 50) + 1000);
	ck_assert_int_eq(file_seek(T.v, im, (1ull << 50) + 10, SEEK_HOLE, &out), 0);
	ck_assert_uint_eq(out, (1ull << 50) + 1024);
	ck_assert_int_eq(file_seek(T.v, im, 1ull << 62, SEEK_HOLE, &out), 0);
	ck_assert_uint_ge(out, (1ull << 62) + 1000);
	ck_assert_int_eq(file_seek(T.v, im, im->di.size, SEEK_DATA, &out), -ENXIO);
	/* The off_t limit. */
	ck_assert_int_eq(file_write(T.v, im, buf, 100, (uint64_t)INT64_MAX - 10), 10);
	ck_assert_uint_eq(im->di.size, (uint64_t)INT64_MAX);
	ck_assert_int_eq(file_write(T.v, im, buf, 100, (uint64_t)INT64_MAX), -EFBIG);
	ck_assert_int_eq(file_truncate(T.v, im, (uint64_t)INT64_MAX + 1), -EFBIG);
	ck_assert_int_eq(file_fallocate(T.v, im, 0, (uint64_t)INT64_MAX - 10, 100), -EFBIG);
	/* Everything goes again. */
	ck_assert_int_eq(file_truncate(T.v, im, 0), 0);
	ck_assert_uint_eq(im->di.map_height, 0);
	ck_assert_uint_eq(im->di.alloc_bytes, 0);
	inode_put(T.v, im);
}
END_TEST

START_TEST(test_file_fallocate_modes)
{
	struct inode_mem *im;
	uint8_t *buf = malloc(4 * MiB);
	uint64_t out, bs;

	vol_up(1 * GiB, 512, 64 * KiB);
	bs = T.v->sb.file_block_size;
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	ck_assert_int_eq(file_fallocate(T.v, im, FALLOC_FL_PUNCH_HOLE, 0, 10), -EOPNOTSUPP);
	ck_assert_int_eq(file_fallocate(T.v, im, FALLOC_FL_COLLAPSE_RANGE, 0, bs), -EOPNOTSUPP);
	ck_assert_int_eq(file_fallocate(T.v, im, 0, 0, 0), -EINVAL);
	/* Preallocation: blocks but no data, size unless KEEP_SIZE. */
	ck_assert_int_eq(file_fallocate(T.v, im, FALLOC_FL_KEEP_SIZE, 0, 4 * MiB), 0);
	ck_assert_uint_eq(im->di.size, 0);
	ck_assert_uint_eq(im->di.alloc_bytes, 4 * MiB);
	ck_assert_int_eq(file_fallocate(T.v, im, 0, 0, 4 * MiB + 1), 0);
	ck_assert_uint_eq(im->di.size, 4 * MiB + 1);
	ck_assert_uint_eq(im->di.alloc_bytes, 4 * MiB + bs);
	ck_assert_int_eq(file_read(T.v, im, buf, 4 * MiB, 0), (ssize_t)(4 * MiB));
	for (uint64_t i = 0; i < 4 * MiB; i++) {
		ck_assert_uint_eq(buf[i], 0);
	}
	/* Unwritten counts as a hole for SEEK_DATA. */
	ck_assert_int_eq(file_seek(T.v, im, 0, SEEK_DATA, &out), -ENXIO);
	ck_assert_int_eq(file_seek(T.v, im, 0, SEEK_HOLE, &out), 0);
	ck_assert_uint_eq(out, 0);
	memset(buf, 0x11, 4 * MiB);
	ck_assert_int_eq(file_write(T.v, im, buf, 3000, 100000), 3000);
	ck_assert_int_eq(file_seek(T.v, im, 0, SEEK_DATA, &out), 0);
	ck_assert_uint_eq(out, 100000 - 100000 % (bs / 64));
	/* Punch whole blocks: space comes back. */
	ck_assert_int_eq(file_fallocate(T.v, im, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, bs, 2 * bs), 0);
	ck_assert_uint_eq(im->di.alloc_bytes, 4 * MiB + bs - 2 * bs);
	ck_assert_uint_eq(im->di.size, 4 * MiB + 1);
	/* Zero range beyond EOF without KEEP_SIZE grows the file. */
	ck_assert_int_eq(file_fallocate(T.v, im, FALLOC_FL_ZERO_RANGE, 5 * MiB, 1000), 0);
	ck_assert_uint_eq(im->di.size, 5 * MiB + 1000);
	ck_assert_int_eq(file_fallocate(T.v, im, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 6 * MiB, 1000), 0);
	ck_assert_uint_eq(im->di.size, 5 * MiB + 1000);
	ck_assert_int_eq(file_truncate(T.v, im, 0), 0);
	ck_assert_uint_eq(im->di.alloc_bytes, 0);
	inode_put(T.v, im);
	free(buf);
}
END_TEST

/* -o discard: blocks freed by a punch (or a truncate) are passed down as
 * discards once the freeing transaction has committed, never before (a
 * crash could still bring them back into the file); without the option,
 * never. */
static uint64_t discards_seen(void)
{
	struct lunfs_fault_stats st;

	dev_fault_stats(T.fault, &st);
	return st.discards;
}

static void discard_run(bool discard)
{
	struct fs_testvol_opts o;
	struct inode_mem *im;
	uint8_t *buf = malloc(4 * MiB);
	uint64_t bs, before;

	memset(&o, 0, sizeof(o));
	o.size = 256 * MiB;
	o.file_block_size = 64 * KiB;
	o.cluster_size = 4 * MiB;
	o.fault = true;
	o.discard = discard;
	ck_assert_int_eq(fs_testvol_create(&o, &T), 0);
	bs = T.v->sb.file_block_size;
	ck_assert_ptr_nonnull(buf);
	memset(buf, 0x5c, 4 * MiB);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	ck_assert_int_eq(file_write(T.v, im, buf, 8 * bs, 0), (ssize_t)(8 * bs));
	pthread_mutex_lock(&T.v->meta_lock);
	ck_assert_int_eq(jnl_sync(T.v->jnl), 0);
	pthread_mutex_unlock(&T.v->meta_lock);
	before = discards_seen();
	ck_assert_int_eq(file_fallocate(T.v, im, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * bs, 3 * bs), 0);
	/* Freed, not committed: nothing may be discarded yet. */
	pthread_mutex_lock(&T.v->meta_lock);
	alloc_busy_release(T.v->alloc);
	ck_assert_uint_eq(discards_seen(), before);
	ck_assert_int_eq(jnl_sync(T.v->jnl), 0);
	alloc_busy_release(T.v->alloc);
	pthread_mutex_unlock(&T.v->meta_lock);
	if (discard) {
		ck_assert_uint_gt(discards_seen(), before);
	} else {
		ck_assert_uint_eq(discards_seen(), before);
	}
	/* What was not punched reads back; the hole reads as zeros. */
	ck_assert_int_eq(file_read(T.v, im, buf, 8 * bs, 0), (ssize_t)(8 * bs));
	for (uint64_t i = 0; i < 8 * bs; i++) {
		ck_assert_uint_eq(buf[i], i >= 2 * bs && i < 5 * bs ? 0 : 0x5c);
	}
	inode_put(T.v, im);
	free(buf);
}

START_TEST(test_file_discard)
{
	discard_run(_i == 1);
}
END_TEST

/* Overwrites stamp mtime and ctime at a grain of a few milliseconds (not
 * one journal handle per 4 KiB write): a write more than the grain after
 * the last stamp always moves them, and they never go backwards. */
START_TEST(test_file_mtime_grain)
{
	struct inode_mem *im;
	uint8_t buf[4096];
	uint64_t m1, m2, m3;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 20 * 1000000L };

	vol_up(256 * MiB, 512, 64 * KiB);
	memset(buf, 0x33, sizeof(buf));
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	ck_assert_int_eq(file_write(T.v, im, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	m1 = im->di.mtime_ns;
	/* Overwrites in place (the fast path), in a burst: */
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(file_write(T.v, im, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	}
	m2 = im->di.mtime_ns;
	ck_assert_uint_ge(m2, m1);
	nanosleep(&ts, NULL);
	ck_assert_int_eq(file_write(T.v, im, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	m3 = im->di.mtime_ns;
	ck_assert_uint_gt(m3, m2);
	ck_assert_uint_eq(im->di.ctime_ns, m3);
	inode_put(T.v, im);
}
END_TEST

START_TEST(test_file_enospc)
{
	struct inode_mem *im, *im2;
	const uint64_t piece = 1 * MiB;
	uint8_t *buf = malloc(piece), *got = malloc(piece);
	uint64_t off = 0, file0;
	ssize_t w;

	vol_up(96 * MiB, 512, 64 * KiB);
	file0 = units_used(LUNFS_CLUSTER_FILE);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	for (;;) {
		pat_fill(buf, 7, off, piece);
		w = file_write(T.v, im, buf, piece, off);
		if (w != (ssize_t)piece) {
			break;
		}
		off += piece;
		ck_assert_uint_lt(off, 96 * MiB);
	}
	ck_assert_msg(w == -ENOSPC || (w > 0 && w < (ssize_t)piece), "write at %llu: %zd",
		      (unsigned long long)off, w);
	if (w > 0) {
		off += (uint64_t)w;
		ck_assert_int_eq(file_write(T.v, im, buf, piece, off), -ENOSPC);
	}
	ck_assert_uint_gt(off, 32 * MiB);
	ck_assert_uint_eq(im->di.size, off);
	/* Preallocation fails cleanly too. */
	ck_assert_int_eq(file_fallocate(T.v, im, FALLOC_FL_KEEP_SIZE, off, 10 * MiB), -ENOSPC);
	/* Everything written is intact. */
	for (uint64_t p = 0; p < off; p += piece) {
		uint64_t n = off - p < piece ? off - p : piece;

		pat_fill(buf, 7, p, n);
		ck_assert_int_eq(file_read(T.v, im, got, n, p), (ssize_t)n);
		ck_assert_int_eq(memcmp(buf, got, n), 0);
	}
	/* Overwrites need no space. */
	memset(buf, 0x33, piece);
	ck_assert_int_eq(file_write(T.v, im, buf, piece, 0), (ssize_t)piece);
	/* Truncate gives the space back; another file can use it. */
	ck_assert_int_eq(file_truncate(T.v, im, 0), 0);
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_FILE), file0);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im2), 0);
	for (uint64_t p = 0; p < 16 * MiB; p += piece) {
		ck_assert_int_eq(file_write(T.v, im2, buf, piece, p), (ssize_t)piece);
	}
	ck_assert_int_eq(file_read(T.v, im2, got, piece, 15 * MiB), (ssize_t)piece);
	ck_assert_int_eq(memcmp(buf, got, piece), 0);
	inode_put(T.v, im2);
	inode_put(T.v, im);
	free(buf);
	free(got);
}
END_TEST

/* ---- parallel writers --------------------------------------------------------- */

struct pw {
	struct inode_mem *im;
	uint64_t base, len, seed;
	int err;
};

static void *pw_run(void *arg)
{
	struct pw *p = arg;
	uint8_t *buf = malloc(300 * KiB);
	uint64_t pos = p->base, rng = p->seed;

	/* Sequential pieces of odd sizes, then overwrites of what is there. */
	while (pos < p->base + p->len && p->err == 0) {
		uint64_t n = 1 + (mix64(++rng) % (300 * KiB));
		ssize_t w;

		if (n > p->base + p->len - pos) {
			n = p->base + p->len - pos;
		}
		pat_fill(buf, p->seed, pos, n);
		w = file_write(T.v, p->im, buf, n, pos);
		if (w != (ssize_t)n) {
			p->err = w < 0 ? (int)w : -EIO;
		}
		pos += n;
	}
	for (unsigned i = 0; i < 200 && p->err == 0; i++) {
		uint64_t n = 4096 * (1 + mix64(++rng) % 16);
		uint64_t at = p->base + (mix64(++rng) % (p->len - n));
		ssize_t w;

		at -= at % 4096;
		pat_fill(buf, p->seed, at, n);
		w = file_write(T.v, p->im, buf, n, at);
		if (w != (ssize_t)n) {
			p->err = w < 0 ? (int)w : -EIO;
		}
	}
	free(buf);
	return NULL;
}

static void pw_check(struct pw *p)
{
	uint8_t *buf = malloc(1 * MiB), *exp = malloc(1 * MiB);

	ck_assert_int_eq(p->err, 0);
	for (uint64_t pos = p->base; pos < p->base + p->len; pos += 1 * MiB) {
		uint64_t n = p->base + p->len - pos < 1 * MiB ? p->base + p->len - pos : 1 * MiB;

		ck_assert_int_eq(file_read(T.v, p->im, buf, n, pos), (ssize_t)n);
		pat_fill(exp, p->seed, pos, n);
		ck_assert_msg(memcmp(buf, exp, n) == 0, "parallel data at %llu", (unsigned long long)pos);
	}
	free(buf);
	free(exp);
}

START_TEST(test_file_parallel)
{
	struct pw p[4];
	pthread_t th[4];
	struct inode_mem *shared;

	vol_up(4 * GiB, 512, 64 * KiB);
	/* Four files. */
	for (int i = 0; i < 4; i++) {
		memset(&p[i], 0, sizeof(p[i]));
		ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &p[i].im), 0);
		p[i].base = (uint64_t)i * 777;
		p[i].len = 24 * MiB + 1234;
		p[i].seed = 100 + (uint64_t)i;
	}
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_create(&th[i], NULL, pw_run, &p[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
	}
	for (int i = 0; i < 4; i++) {
		pw_check(&p[i]);
		inode_put(T.v, p[i].im);
	}
	/* Disjoint ranges of one file. */
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &shared), 0);
	for (int i = 0; i < 4; i++) {
		memset(&p[i], 0, sizeof(p[i]));
		p[i].im = shared;
		p[i].base = (uint64_t)i * 20 * MiB + 4096;
		p[i].len = 20 * MiB - 8192;
		p[i].seed = 200 + (uint64_t)i;
	}
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_create(&th[i], NULL, pw_run, &p[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
	}
	for (int i = 0; i < 4; i++) {
		pw_check(&p[i]);
	}
	ck_assert_uint_eq(shared->di.size, 80 * MiB - 4096);
	inode_put(T.v, shared);
}
END_TEST

/* ---- reclaim and orphans -------------------------------------------------------- */

static void unlink_sim(struct inode_mem *im, bool orphan)
{
	struct lunfs_vol *v = T.v;
	struct jnl_handle *h;

	pthread_mutex_lock(&v->meta_lock);
	ck_assert_int_eq(jnl_start(v->jnl, 8, &h), 0);
	pthread_rwlock_wrlock(&im->lock);
	im->di.nlink = 0;
	if (orphan) {
		im->di.flags |= LUNFS_INODE_ORPHAN;
		ck_assert_int_eq(orphan_add(v, h, im->ino), 0);
	}
	ck_assert_int_eq(inode_dirty(h, im), 0);
	pthread_rwlock_unlock(&im->lock);
	ck_assert_int_eq(jnl_stop(h, false), 0);
	pthread_mutex_unlock(&v->meta_lock);
}

static void write_some(struct inode_mem *im, uint64_t len)
{
	uint8_t *buf = malloc(1 * MiB);

	memset(buf, 0x77, 1 * MiB);
	for (uint64_t p = 0; p < len; p += 1 * MiB) {
		ck_assert_int_eq(file_write(T.v, im, buf, 1 * MiB, p * 3), (ssize_t)(1 * MiB));
	}
	free(buf);
}

START_TEST(test_file_reclaim)
{
	struct inode_mem *im, *im2;
	uint64_t file0, meta0, inode0, ino;
	uint32_t gen;

	vol_up(1 * GiB, 512, 64 * KiB);
	file0 = units_used(LUNFS_CLUSTER_FILE);
	meta0 = units_used(LUNFS_CLUSTER_META);
	inode0 = units_used(LUNFS_CLUSTER_INODE);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	ino = im->ino;
	gen = im->di.generation;
	write_some(im, 40 * MiB); /* spread over 120 MiB: several leaves */
	ck_assert_uint_gt(units_used(LUNFS_CLUSTER_FILE), file0);
	/* Open (a second user), unlinked: stays until the last user goes. */
	inode_open_add(T.v, im);
	unlink_sim(im, true);
	inode_put(T.v, im);
	ck_assert_uint_gt(units_used(LUNFS_CLUSTER_FILE), file0);
	ck_assert_int_eq(inode_get(T.v, ino, &im2), 0);
	ck_assert_ptr_eq(im2, im);
	inode_put(T.v, im2);
	inode_open_drop(T.v, im);
	ck_assert_int_eq(inode_get(T.v, ino, &im2), -ENOENT);
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_FILE), file0);
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_META), meta0);
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_INODE), inode0);
	/* The slot's next inode continues the generation. */
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	if (im->ino == ino) {
		ck_assert_uint_eq(im->di.generation, gen + 1);
	}
	inode_put(T.v, im);
	/* And across a remount the freed record still says so. */
	ck_assert_int_eq(fs_testvol_unmount(&T), 0);
	ck_assert_int_eq(fs_testvol_mount(&T), 0);
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_FILE), file0);
}
END_TEST

START_TEST(test_file_orphan_recover)
{
	struct inode_mem *im;
	uint64_t file0, inode0, ino;

	vol_up(1 * GiB, 512, 64 * KiB);
	file0 = units_used(LUNFS_CLUSTER_FILE);
	inode0 = units_used(LUNFS_CLUSTER_INODE);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	ino = im->ino;
	write_some(im, 8 * MiB);
	inode_open_add(T.v, im);
	unlink_sim(im, true);
	/* The mount goes away with the file still open (a crash would do the
	 * same): it stays on the orphan table. */
	ck_assert_int_eq(fs_testvol_unmount(&T), 0);
	ck_assert_int_eq(fs_testvol_mount(&T), 0);
	ck_assert_int_eq(inode_get(T.v, ino, &im), -ENOENT);
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_FILE), file0);
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_INODE), inode0);
	/* The table is empty again: 4024 more orphans fit... at least many. */
	{
		struct jnl_handle *h;

		pthread_mutex_lock(&T.v->meta_lock);
		ck_assert_int_eq(jnl_start(T.v->jnl, 16, &h), 0);
		for (uint64_t i = 1; i <= 4024; i++) {
			ck_assert_int_eq(orphan_add(T.v, h, 1000000 + i), 0);
		}
		ck_assert_int_eq(orphan_add(T.v, h, 7), -ENOSPC);
		ck_assert_int_eq(orphan_del(T.v, h, 1000000 + 4024), 0);
		ck_assert_int_eq(orphan_del(T.v, h, 1000000 + 4024), -ENOENT);
		ck_assert_int_eq(orphan_add(T.v, h, 7), 0);
		ck_assert_int_eq(jnl_stop(h, false), 0);
		pthread_mutex_unlock(&T.v->meta_lock);
	}
}
END_TEST

/* ---- copy-on-write of shared blocks ------------------------------------------- */

/* Make b share a's blocks [0, n) the way a clone would: same addresses,
 * SHARED on both sides, one more reference each. */
static void share_blocks(struct inode_mem *a, struct inode_mem *b, uint64_t n)
{
	struct lunfs_vol *v = T.v;
	struct jnl_handle *h;

	pthread_mutex_lock(&v->meta_lock);
	ck_assert_int_eq(jnl_start(v->jnl, 64, &h), 0);
	pthread_rwlock_wrlock(&a->lock);
	pthread_rwlock_wrlock(&b->lock);
	for (uint64_t l = 0; l < n; l++) {
		struct lunfs_map_entry e;
		uint64_t run;

		ck_assert_int_eq(bmap_lookup(v, a, l, &e, &run), 0);
		ck_assert_uint_ne(e.addr, 0);
		e.flags |= LUNFS_MAPE_SHARED;
		ck_assert_int_eq(bmap_set(v, h, a, l, &e), 0);
		ck_assert_int_eq(bmap_set(v, h, b, l, &e), 0);
		ck_assert_int_eq(alloc_ref_add(v->alloc, h, e.addr, 1), 0);
		b->di.alloc_bytes += v->sb.file_block_size;
	}
	b->di.size = a->di.size;
	ck_assert_int_eq(inode_dirty(h, a), 0);
	ck_assert_int_eq(inode_dirty(h, b), 0);
	pthread_rwlock_unlock(&b->lock);
	pthread_rwlock_unlock(&a->lock);
	ck_assert_int_eq(jnl_stop(h, false), 0);
	pthread_mutex_unlock(&v->meta_lock);
}

static uint32_t ref_extra(uint64_t addr)
{
	uint32_t extra = 99;

	ck_assert_int_eq(alloc_ref_get(T.v->alloc, addr, &extra), 0);
	return extra;
}

START_TEST(test_file_cow)
{
	struct inode_mem *a, *b;
	struct model ma, mb;
	struct lunfs_map_entry e0, e1;
	uint64_t bs, run, file0;
	uint8_t *buf;

	vol_up(1 * GiB, 512, 64 * KiB);
	bs = T.v->sb.file_block_size;
	buf = malloc(bs * 4);
	model_init(&ma);
	file0 = units_used(LUNFS_CLUSTER_FILE);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &a), 0);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &b), 0);
	/* Block 0 fully written, block 1 partly (unwritten chunks inside). */
	pat_fill(buf, 1, 0, bs + 5000);
	ck_assert_int_eq(file_write(T.v, a, buf, bs + 5000, 0), (ssize_t)(bs + 5000));
	model_write(&ma, 1, 0, bs + 5000);
	ck_assert_int_eq(file_fallocate(T.v, a, 0, 0, 3 * bs), 0);
	ma.size = 3 * bs;
	share_blocks(a, b, 3);
	model_clone(&ma, &mb);
	ck_assert_int_eq(bmap_lookup(T.v, a, 0, &e0, &run), 0);
	ck_assert_int_eq(bmap_lookup(T.v, a, 1, &e1, &run), 0);
	ck_assert_uint_eq(ref_extra(e0.addr), 1);
	/* A small unaligned write into each shared block: a copies. */
	pat_fill(buf, 2, 100, 3000);
	ck_assert_int_eq(file_write(T.v, a, buf, 3000, 100), 3000);
	model_write(&ma, 2, 100, 3000);
	pat_fill(buf, 3, bs + 20000, 1000);
	ck_assert_int_eq(file_write(T.v, a, buf, 1000, bs + 20000), 1000);
	model_write(&ma, 3, bs + 20000, 1000);
	{
		struct lunfs_map_entry n0, n1;

		ck_assert_int_eq(bmap_lookup(T.v, a, 0, &n0, &run), 0);
		ck_assert_int_eq(bmap_lookup(T.v, a, 1, &n1, &run), 0);
		ck_assert_uint_ne(n0.addr, e0.addr);
		ck_assert_uint_ne(n1.addr, e1.addr);
		ck_assert_uint_eq(n0.flags & LUNFS_MAPE_SHARED, 0);
		ck_assert_uint_eq(n1.written, e1.written | (3ull << (20000 / (bs / 64)))); /* chunks 19, 20 */
	}
	ck_assert_uint_eq(ref_extra(e0.addr), 0);
	ck_assert_uint_eq(ref_extra(e1.addr), 0);
	check_all(a, &ma, "cow a");
	check_all(b, &mb, "cow b");
	/* b is now the only owner: its write goes in place. */
	pat_fill(buf, 4, 0, 4096);
	ck_assert_int_eq(file_write(T.v, b, buf, 4096, 0), 4096);
	model_write(&mb, 4, 0, 4096);
	{
		struct lunfs_map_entry n0;

		ck_assert_int_eq(bmap_lookup(T.v, b, 0, &n0, &run), 0);
		ck_assert_uint_eq(n0.addr, e0.addr);
	}
	check_all(b, &mb, "cow b in place");
	check_all(a, &ma, "cow a after b");
	/* Punching a shared block drops a reference; the other keeps it. */
	ck_assert_int_eq(bmap_lookup(T.v, a, 2, &e0, &run), 0);
	ck_assert_uint_eq(ref_extra(e0.addr), 1);
	ck_assert_int_eq(file_fallocate(T.v, b, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * bs, bs), 0);
	ck_assert_uint_eq(ref_extra(e0.addr), 0);
	ck_assert_int_eq(file_truncate(T.v, a, 0), 0);
	ck_assert_int_eq(file_truncate(T.v, b, 0), 0);
	ck_assert_uint_eq(units_used(LUNFS_CLUSTER_FILE), file0);
	inode_put(T.v, a);
	inode_put(T.v, b);
	model_free(&ma);
	model_free(&mb);
	free(buf);
}
END_TEST

/* ---- power loss at every write ------------------------------------------------- */

/* FILE units the bitmaps say are allocated, as addresses. */
static size_t bitmap_file_units(uint64_t *out, size_t cap)
{
	struct lunfs_vol *v = T.v;
	size_t n = 0;

	for (uint64_t c = 0; c < v->sb.cluster_count; c++) {
		struct lunfs_cluster_hdr ch;
		struct mc_entry *e;
		uint64_t addr = layout_cluster_addr(&v->sb, c);

		ck_assert_int_eq(mc_get(v->mc, addr, 4096, 0, &e), 0);
		if (cluster_hdr_decode(&v->codec, e->buf, addr, &ch) != 0 || ch.type != LUNFS_CLUSTER_FILE) {
			mc_put(v->mc, e);
			continue;
		}
		mc_put(v->mc, e);
		for (uint32_t b = 0; b < ch.bitmap_blocks; b++) {
			struct lunfs_bitmap *bm = malloc(sizeof(*bm));
			uint64_t ba = addr + 4096ull * (1 + b);

			ck_assert_int_eq(mc_get(v->mc, ba, 4096, 0, &e), 0);
			ck_assert_int_eq(bitmap_decode(&v->codec, e->buf, ba, bm), 0);
			mc_put(v->mc, e);
			for (uint64_t u = 0; u < 503 * 64; u++) {
				uint64_t unit = bm->first_unit + u;

				if (unit < ch.header_units || unit >= ch.units_total) {
					continue;
				}
				if (bm->words[u / 64] & (1ull << (u % 64))) {
					ck_assert_uint_lt(n, cap);
					out[n++] = ch.cluster_start + unit * ch.unit_size;
				}
			}
			free(bm);
		}
	}
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The map and the FILE bitmaps agree exactly (the file is the only one
 * with data), and alloc_bytes counts the mapped blocks. */
static void check_map_vs_bitmaps(struct inode_mem *im)
{
	uint64_t mapped[4096], alloc[4096], l = 0, nm = 0, na;

	for (;;) {
		struct lunfs_map_entry e;
		uint64_t run;
		int r = bmap_next_mapped(T.v, im, l, &l);

		if (r == -ENXIO) {
			break;
		}
		ck_assert_int_eq(r, 0);
		ck_assert_int_eq(bmap_lookup(T.v, im, l, &e, &run), 0);
		ck_assert_uint_ne(e.addr, 0);
		ck_assert_uint_lt(nm, 4096);
		mapped[nm++] = e.addr;
		l++;
	}
	na = bitmap_file_units(alloc, 4096);
	qsort(mapped, nm, sizeof(mapped[0]), cmp_u64);
	qsort(alloc, na, sizeof(alloc[0]), cmp_u64);
	ck_assert_uint_eq(nm, na);
	for (uint64_t i = 0; i < nm; i++) {
		ck_assert_uint_eq(mapped[i], alloc[i]);
	}
	ck_assert_uint_eq(im->di.alloc_bytes, nm * T.v->sb.file_block_size);
}

/* What the workload did since its last successful sync. */
struct cw {
	struct model synced;        /* state at the last successful sync */
	struct model cur;
	bool have_sync;
	uint64_t dirty_a[32], dirty_z[32]; /* byte ranges touched since */
	unsigned ndirty;
	uint64_t sizes[32];         /* sizes the file had since */
	unsigned nsizes;
};

static void cw_touch(struct cw *c, uint64_t a, uint64_t z)
{
	ck_assert_uint_lt(c->ndirty, 32);
	c->dirty_a[c->ndirty] = a;
	c->dirty_z[c->ndirty] = z;
	c->ndirty++;
	ck_assert_uint_lt(c->nsizes, 32);
	c->sizes[c->nsizes++] = c->cur.size;
}

static int cw_sync(struct cw *c)
{
	int r;

	pthread_mutex_lock(&T.v->meta_lock);
	r = jnl_sync(T.v->jnl);
	pthread_mutex_unlock(&T.v->meta_lock);
	if (r == 0) {
		model_free(&c->synced);
		model_clone(&c->cur, &c->synced);
		c->have_sync = true;
		c->ndirty = 0;
		c->nsizes = 0;
	}
	return r;
}

static int cw_write(struct cw *c, struct inode_mem *im, uint64_t s, uint64_t off, uint64_t len)
{
	uint8_t *buf = malloc(len);
	ssize_t w;

	pat_fill(buf, s, off, len);
	model_write(&c->cur, s, off, len);
	cw_touch(c, off, off + len);
	w = file_write(T.v, im, buf, len, off);
	free(buf);
	return w == (ssize_t)len ? 0 : (w < 0 ? (int)w : -EIO);
}

static int cw_trunc(struct cw *c, struct inode_mem *im, uint64_t size)
{
	if (size < c->cur.size) {
		model_zero(&c->cur, size, UINT64_MAX);
	}
	c->cur.size = size;
	cw_touch(c, size, UINT64_MAX);
	return file_truncate(T.v, im, size);
}

static int cw_falloc(struct cw *c, struct inode_mem *im, int mode, uint64_t off, uint64_t len)
{
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		model_zero(&c->cur, off, off + len);
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > c->cur.size) {
		c->cur.size = off + len;
	}
	cw_touch(c, off, off + len);
	return file_fallocate(T.v, im, mode, off, len);
}

/* Stops at the first error (the power cut). */
static int cw_workload(struct cw *c, struct inode_mem *im)
{
	int r;

	if ((r = cw_write(c, im, 1, 0, 100000)) != 0 || (r = cw_sync(c)) != 0) {
		return r;
	}
	if ((r = cw_write(c, im, 2, 70001, 5000)) != 0 || (r = cw_write(c, im, 3, 4096, 8192)) != 0 ||
	    (r = cw_sync(c)) != 0) {
		return r;
	}
	if ((r = cw_trunc(c, im, 50000)) != 0 || (r = cw_sync(c)) != 0) {
		return r;
	}
	if ((r = cw_write(c, im, 4, 200000, 40000)) != 0 ||
	    (r = cw_falloc(c, im, FALLOC_FL_KEEP_SIZE, 300000, 200000)) != 0 ||
	    (r = cw_falloc(c, im, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 210000, 10000)) != 0 ||
	    (r = cw_sync(c)) != 0) {
		return r;
	}
	if ((r = cw_falloc(c, im, FALLOC_FL_ZERO_RANGE, 0, 30000)) != 0 ||
	    (r = cw_write(c, im, 5, 131072, 3000)) != 0 || (r = cw_sync(c)) != 0) {
		return r;
	}
	if ((r = cw_trunc(c, im, 1000000)) != 0 || (r = cw_write(c, im, 6, 999999, 1)) != 0 ||
	    (r = cw_write(c, im, 7, 65536, 65536)) != 0 || (r = cw_sync(c)) != 0) {
		return r;
	}
	return 0;
}

static void cw_verify(struct cw *c, struct inode_mem *im)
{
	uint64_t size = im->di.size, end;
	bool size_ok = size == c->synced.size;
	uint8_t *got, *exp;

	for (unsigned i = 0; i < c->nsizes; i++) {
		size_ok = size_ok || size == c->sizes[i];
	}
	size_ok = size_ok || size == c->cur.size;
	ck_assert_msg(size_ok, "size %llu after the crash, synced %llu", (unsigned long long)size,
		      (unsigned long long)c->synced.size);
	end = size > c->synced.size ? size : c->synced.size;
	got = calloc(1, end + 1);
	exp = calloc(1, end + 1);
	ck_assert_int_eq(file_read(T.v, im, got, end, 0), (ssize_t)size);
	model_read(&c->synced, 0, c->synced.size, exp);
	for (uint64_t p = 0; p < end; p++) {
		bool dirty = false;

		for (unsigned i = 0; i < c->ndirty && !dirty; i++) {
			dirty = p >= c->dirty_a[i] && p < c->dirty_z[i];
		}
		if (dirty) {
			continue;
		}
		/* Stable bytes: as synced (zeros past the synced size). */
		ck_assert_msg(p >= size || got[p] == exp[p], "byte %llu: %02x, synced %02x (size %llu)",
			      (unsigned long long)p, got[p], exp[p], (unsigned long long)size);
	}
	free(got);
	free(exp);
	check_map_vs_bitmaps(im);
}

START_TEST(test_file_crash)
{
	struct lunfs_fault_stats st0, st1;
	uint64_t total, ino;
	struct inode_mem *im;
	struct cw c;

	/* A dry run counts the workload's writes. */
	vol_up_opts(64 * MiB, 512, 64 * KiB, true, false);
	ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
	memset(&c, 0, sizeof(c));
	model_init(&c.cur);
	model_init(&c.synced);
	ck_assert_int_eq(cw_sync(&c), 0);
	dev_fault_stats(T.fault, &st0);
	ck_assert_int_eq(cw_workload(&c, im), 0);
	dev_fault_stats(T.fault, &st1);
	total = st1.writes - st0.writes;
	ck_assert_uint_gt(total, 10);
	cw_verify(&c, im);
	inode_put(T.v, im);
	model_free(&c.cur);
	model_free(&c.synced);
	fs_testvol_destroy(&T);

	for (uint64_t k = 1; k <= total; k++) {
		for (int keep = 0; keep < 2; keep++) {
			int r;

			vol_up_opts(64 * MiB, 512, 64 * KiB, true, false);
			ck_assert_int_eq(fs_testvol_inode_new(&T, S_IFREG | 0644, &im), 0);
			ino = im->ino;
			memset(&c, 0, sizeof(c));
			model_init(&c.cur);
			model_init(&c.synced);
			ck_assert_int_eq(cw_sync(&c), 0);
			dev_fault_crash_after(T.fault, k);
			r = cw_workload(&c, im);
			ck_assert_msg(r != 0 || k == total, "crash at write %llu of %llu: workload ok",
				      (unsigned long long)k, (unsigned long long)total);
			inode_put(T.v, im);
			fs_testvol_abandon(&T);
			ck_assert_int_eq(dev_fault_power_cycle(T.fault, keep ? k * 7919 : 0), 0);
			r = fs_testvol_mount(&T);
			ck_assert_msg(r == 0, "remount after crash at write %llu: %d", (unsigned long long)k, r);
			ck_assert_int_eq(inode_get(T.v, ino, &im), 0);
			cw_verify(&c, im);
			inode_put(T.v, im);
			model_free(&c.cur);
			model_free(&c.synced);
			fs_testvol_destroy(&T);
		}
	}
}
END_TEST

static TCase *file_tcase(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 900);
	suite_add_tcase(s, tc);
	return tc;
}

/* Cases can be run alone: CK_RUN_CASE=basic|crash|exercise. */
static Suite *file_suite(void)
{
	Suite *s = suite_create("file");
	TCase *tc = file_tcase(s, "basic");

	tcase_add_test(tc, test_file_unaligned);
	tcase_add_test(tc, test_file_huge_offsets);
	tcase_add_test(tc, test_file_fallocate_modes);
	tcase_add_test(tc, test_file_mtime_grain);
	tcase_add_loop_test(tc, test_file_discard, 0, 2);
	tcase_add_test(tc, test_file_enospc);
	tcase_add_test(tc, test_file_parallel);
	tcase_add_test(tc, test_file_reclaim);
	tcase_add_test(tc, test_file_orphan_recover);
	tcase_add_test(tc, test_file_cow);
	tc = file_tcase(s, "crash");
	tcase_add_test(tc, test_file_crash);
	tc = file_tcase(s, "exercise");
	tcase_add_test(tc, test_file_exercise_512_64k);
	tcase_add_test(tc, test_file_exercise_4096_64k);
	tcase_add_test(tc, test_file_exercise_512_1m);
	tcase_add_test(tc, test_file_exercise_garbage);
	tcase_add_test(tc, test_file_exercise_mem_align);
	tcase_add_test(tc, test_file_exercise_garbage_4096);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(file_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
