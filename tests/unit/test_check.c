/*
 * Unit tests of check_run (fs/check.c) on a memory device.
 *
 * Each test formats a volume, populates it through the fs core (vol_mount +
 * fsop_*), unmounts, checks that the volume is clean, then corrupts one
 * thing through the device with the codecs (so that the corruption is
 * exactly the one named, checksums and all) and asserts: a read-only run
 * finds that problem class, a repair run repairs it, and a second run is
 * clean. The same populate + corrupt code is the golden-image generator of
 * tests/integration/test_fsck.sh:
 *   test_check --golden IMAGE NAME    populate IMAGE (a fresh mkfs) and
 *                                     apply corruption NAME ("none" = none)
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_testvol.h"
#include "lunfs/check.h"
#include "lunfs/cluster.h"
#include "lunfs/crc32c.h"
#include "lunfs/dir.h"
#include "lunfs/inode.h"
#include "lunfs/journal.h"
#include "lunfs/map.h"
#include "lunfs/probe.h"
#include "lunfs/volume.h"

#define MiB (1024ull * 1024ull)
#define GiB (1024ull * MiB)

/* What populate made, found again by name after unmount. */
struct tree {
	uint64_t root, d, f, g, h;   /* /d, /d/f (3 blocks), /g (1 block), /d/h (empty) */
};

struct tctx {
	struct lunfs_dev *dev;
	struct lunfs_super sb;
	struct lunfs_codec c;
	struct tree t;
	uint8_t *blk;
	uint8_t *rec;
};

/* ---- populate through the fs core ----------------------------------------- */
static int populate(struct lunfs_dev *dev, struct tree *t)
{
	struct lunfs_mount_opts mo;
	struct lunfs_vol *v = NULL;
	struct lunfs_cred cr = { 0, 0, 022 };
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	char *data = malloc(3 * MiB);
	int err;

	if (data == NULL) {
		return -ENOMEM;
	}
	memset(data, 0xab, 3 * MiB);
	memset(&mo, 0, sizeof(mo));
	mo.host_name = "populate";
	mo.no_hb_thread = true;
	err = vol_mount(dev, &mo, &v);
	if (err < 0) {
		goto out;
	}
	t->root = vol_root_ino(v);
	err = fsop_mkdir(v, &cr, t->root, "d", 0755, &a);
	t->d = a.ino;
	if (err == 0) {
		err = fsop_create(v, &cr, t->d, "f", 0644, O_RDWR, &a, &fh);
		t->f = a.ino;
	}
	if (err == 0) {
		err = fsop_write(v, fh, data, 3 * MiB, 0) == (ssize_t)(3 * MiB) ? 0 : -EIO;
		fsop_release(v, fh);
		fh = NULL;
	}
	if (err == 0) {
		err = fsop_create(v, &cr, t->root, "g", 0644, O_RDWR, &a, &fh);
		t->g = a.ino;
	}
	if (err == 0) {
		err = fsop_write(v, fh, data, 4096, 0) == 4096 ? 0 : -EIO;
		fsop_release(v, fh);
		fh = NULL;
	}
	if (err == 0) {
		err = fsop_create(v, &cr, t->d, "h", 0600, O_RDWR, &a, &fh);
		t->h = a.ino;
		fsop_release(v, fh);
	}
	if (err == 0) {
		err = fsop_symlink(v, &cr, t->d, "link", "../g", &a);
	}
	if (err == 0) {
		err = fsop_mkdir(v, &cr, t->d, "sub", 0755, &a);
	}
	if (err == 0) {
		err = fsop_syncfs(v);
	}
	{
		int e2 = vol_unmount(v);

		err = err < 0 ? err : e2;
	}
out:
	free(data);
	return err;
}

/* ---- codec-level helpers ------------------------------------------------------ */
static uint64_t rec_addr_of(struct tctx *x, uint64_t ino)
{
	uint64_t la = 0;

	ck_assert_int_eq(layout_ino_addr(&x->sb, ino, &la), 0);
	return la + x->sb.sector_size;
}

static void ino_get(struct tctx *x, uint64_t ino, struct lunfs_inode *di)
{
	uint64_t a = rec_addr_of(x, ino);

	ck_assert_int_eq(dev_read(x->dev, x->rec, x->sb.sector_size, a), 0);
	ck_assert_int_eq(inode_decode(&x->c, x->rec, a, ino, di), 0);
}

static void ino_put(struct tctx *x, const struct lunfs_inode *di)
{
	uint64_t a = rec_addr_of(x, di->ino);

	memset(x->rec, 0, x->sb.sector_size);
	inode_encode(&x->c, di, a, x->rec);
	ck_assert_int_eq(dev_write(x->dev, x->rec, x->sb.sector_size, a), 0);
}

static void blk_get(struct tctx *x, uint64_t addr)
{
	ck_assert_int_eq(dev_read(x->dev, x->blk, 4096, addr), 0);
}

static void blk_put(struct tctx *x, uint64_t addr)
{
	ck_assert_int_eq(dev_write(x->dev, x->blk, 4096, addr), 0);
}

/* Walk a map with the codecs: the leaf node holding lblk, and its index. */
static uint64_t map_leaf_of(struct tctx *x, const struct lunfs_inode *di, uint64_t lblk, unsigned *idx)
{
	uint64_t addr = di->map_root;
	struct lunfs_map_inner in;

	ck_assert_uint_ne(di->map_height, 0);
	for (unsigned level = di->map_height; level >= 2; level--) {
		blk_get(x, addr);
		ck_assert_int_eq(map_inner_decode(&x->c, x->blk, addr, &in), 0);
		addr = in.child[(lblk - in.first_lblk) / map_span(level - 1)];
		ck_assert_uint_ne(addr, 0);
	}
	*idx = (unsigned)(lblk % LUNFS_MAP_LEAF_FANOUT);
	return addr;
}

static uint64_t map_lookup(struct tctx *x, const struct lunfs_inode *di, uint64_t lblk)
{
	struct lunfs_map_leaf lf;
	unsigned idx;
	uint64_t a = map_leaf_of(x, di, lblk, &idx);

	blk_get(x, a);
	ck_assert_int_eq(map_leaf_decode(&x->c, x->blk, a, &lf), 0);
	return lf.e[idx].addr;
}

static struct lunfs_cluster_hdr cluster_of(struct tctx *x, uint64_t addr)
{
	uint64_t c = (addr - x->sb.regions[LUNFS_REGION_DATA].offset) / x->sb.cluster_size;
	uint64_t start = layout_cluster_addr(&x->sb, c);
	struct lunfs_cluster_hdr h;

	blk_get(x, start);
	ck_assert_int_eq(cluster_hdr_decode(&x->c, x->blk, start, &h), 0);
	return h;
}

/* Rewrite directory dir's first leaf through fn. */
static void dir_leaf_edit(struct tctx *x, uint64_t dir, void (*fn)(struct tctx *, struct lunfs_dir_leaf *, void *),
			  void *arg)
{
	static struct lunfs_dirent ents[LUNFS_DIR_LEAF_MAX_ENTRIES];
	struct lunfs_inode di;
	struct lunfs_dir_leaf lf;
	struct lunfs_dir_state ds;
	uint64_t a;
	uint16_t before;

	ino_get(x, dir, &di);
	a = map_lookup(x, &di, LUNFS_DIR_FIRST_LEAF);
	blk_get(x, a);
	lf.ents = ents;
	ck_assert_int_eq(dir_leaf_decode(&x->c, x->blk, a, &lf), 0);
	before = lf.nentries;
	fn(x, &lf, arg);
	ck_assert_int_eq(dir_leaf_encode(&x->c, &lf, a, x->blk), 0);
	blk_put(x, a);
	inode_dir_state_get(&di, &ds);
	ds.nentries = ds.nentries + lf.nentries - before;
	inode_dir_state_set(&di, &ds);
	ino_put(x, &di);
}

static void leaf_remove_ino(struct tctx *x, struct lunfs_dir_leaf *lf, void *arg)
{
	uint64_t ino = *(uint64_t *)arg;

	(void)x;
	for (unsigned i = 0; i < lf->nentries; i++) {
		if (lf->ents[i].ino == ino) {
			memmove(&lf->ents[i], &lf->ents[i + 1], (lf->nentries - i - 1) * sizeof(lf->ents[0]));
			lf->nentries--;
			return;
		}
	}
	ck_abort_msg("entry not found");
}

static void leaf_add_ghost(struct tctx *x, struct lunfs_dir_leaf *lf, void *arg)
{
	struct lunfs_dirent e;
	unsigned i;

	memset(&e, 0, sizeof(e));
	strcpy(e.name, "ghost");
	e.name_len = 5;
	e.type = 8;
	e.ino = *(uint64_t *)arg;
	e.hash = dir_name_hash(x->sb.dir_hash_key, e.name, 5);
	for (i = lf->nentries; i > 0 && lf->ents[i - 1].hash > e.hash; i--) {
		lf->ents[i] = lf->ents[i - 1];
	}
	lf->ents[i] = e;
	lf->nentries++;
}

/* ---- the corruptions ------------------------------------------------------------- */
static void corrupt(struct tctx *x, const char *name)
{
	struct lunfs_inode di;

	if (strcmp(name, "none") == 0) {
		return;
	}
	if (strcmp(name, "leak") == 0 || strcmp(name, "units_free") == 0) {
		/* Mark a free unit of g's FILE cluster allocated (leak), or only
		 * lower the header's count (units_free). */
		uint64_t b;
		struct lunfs_cluster_hdr h;
		struct lunfs_bitmap bm;
		uint64_t u;

		ino_get(x, x->t.g, &di);
		b = map_lookup(x, &di, 0);
		h = cluster_of(x, b);
		if (strcmp(name, "leak") == 0) {
			blk_get(x, h.cluster_start + 4096);
			ck_assert_int_eq(bitmap_decode(&x->c, x->blk, h.cluster_start + 4096, &bm), 0);
			for (u = h.header_units; u < h.units_total && (bm.words[u / 64] >> (u % 64) & 1); u++) {
			}
			ck_assert_uint_lt(u, h.units_total);
			bm.words[u / 64] |= 1ull << (u % 64);
			bitmap_encode(&x->c, &bm, h.cluster_start + 4096, x->blk);
			blk_put(x, h.cluster_start + 4096);
		}
		h.units_free--;
		cluster_hdr_encode(&x->c, &h, h.cluster_start, x->blk);
		blk_put(x, h.cluster_start);
		return;
	}
	if (strcmp(name, "multiref") == 0) {
		/* g's block 5 (a hole) also points at f's block 0. */
		struct lunfs_map_leaf lf;
		unsigned idx;
		uint64_t fb, a;

		ino_get(x, x->t.f, &di);
		fb = map_lookup(x, &di, 0);
		ino_get(x, x->t.g, &di);
		a = map_leaf_of(x, &di, 5, &idx);
		blk_get(x, a);
		ck_assert_int_eq(map_leaf_decode(&x->c, x->blk, a, &lf), 0);
		lf.e[idx].addr = fb;
		lf.e[idx].written = ~0ull;
		map_leaf_encode(&x->c, &lf, a, x->blk);
		blk_put(x, a);
		di.alloc_bytes += x->sb.file_block_size;
		ino_put(x, &di);
		return;
	}
	if (strcmp(name, "refcount") == 0) {
		uint64_t fb;
		struct lunfs_cluster_hdr h;
		struct lunfs_refcount rc;
		uint64_t ra, u;

		ino_get(x, x->t.f, &di);
		fb = map_lookup(x, &di, 0);
		h = cluster_of(x, fb);
		u = (fb - h.cluster_start) / h.unit_size;
		ra = h.cluster_start + (1u + h.bitmap_blocks) * 4096ull;
		blk_get(x, ra);
		ck_assert_int_eq(refcount_decode(&x->c, x->blk, ra, &rc), 0);
		rc.extra[u] = 3;
		refcount_encode(&x->c, &rc, ra, x->blk);
		blk_put(x, ra);
		return;
	}
	if (strcmp(name, "nlink") == 0) {
		ino_get(x, x->t.f, &di);
		di.nlink = 3;
		ino_put(x, &di);
		return;
	}
	if (strcmp(name, "dangling") == 0) {
		/* An entry naming a free inode slot: the one after h's, unused. */
		uint64_t ghost = x->t.root + 1000;

		dir_leaf_edit(x, x->t.d, leaf_add_ghost, &ghost);
		return;
	}
	if (strcmp(name, "unreachable") == 0) {
		dir_leaf_edit(x, x->t.d, leaf_remove_ino, &x->t.f);
		return;
	}
	if (strcmp(name, "orphan") == 0) {
		/* h unlinked while open on host slot 1, which then died. */
		struct lunfs_jorphan jo;
		uint64_t oa = layout_journal_addr(&x->sb, 1) + 4096;

		dir_leaf_edit(x, x->t.d, leaf_remove_ino, &x->t.h);
		ino_get(x, x->t.h, &di);
		di.nlink = 0;
		di.flags |= LUNFS_INODE_ORPHAN;
		ino_put(x, &di);
		memset(&jo, 0, sizeof(jo));
		jo.slot = 1;
		jo.ino[7] = x->t.h;
		jorphan_encode(&x->c, &jo, oa, x->blk);
		blk_put(x, oa);
		return;
	}
	if (strcmp(name, "map_node") == 0 || strcmp(name, "dir_leaf") == 0) {
		/* A bit flip: the checksum no longer matches. */
		uint64_t a;
		unsigned idx;

		if (name[0] == 'm') {
			ino_get(x, x->t.f, &di);
			a = map_leaf_of(x, &di, 0, &idx);
		} else {
			ino_get(x, x->t.d, &di);
			a = map_lookup(x, &di, LUNFS_DIR_FIRST_LEAF);
		}
		blk_get(x, a);
		x->blk[200] ^= 0x10;
		blk_put(x, a);
		return;
	}
	if (strcmp(name, "superblock") == 0) {
		blk_get(x, LUNFS_SB_OFFSET);
		x->blk[300] ^= 0xff;
		blk_put(x, LUNFS_SB_OFFSET);
		return;
	}
	if (strcmp(name, "journal") == 0) {
		/* A committed, unreplayed transaction of slot 2 that sets f's uid. */
		uint64_t ja = layout_journal_addr(&x->sb, 2), ra = rec_addr_of(x, x->t.f);
		struct lunfs_jsb jsb;
		struct lunfs_jdesc *jd = calloc(1, sizeof(*jd));
		struct lunfs_jcommit jc;
		uint8_t *tx = dev_buf_alloc(3 * 4096);
		uint32_t crc;

		ck_assert_ptr_nonnull(jd);
		ck_assert_ptr_nonnull(tx);
		ino_get(x, x->t.f, &di);
		di.uid = 4242;
		di.version++;
		inode_encode(&x->c, &di, ra, tx + 4096);
		jd->seq = 1;
		jd->slot = 2;
		jd->ntags = 1;
		jd->ndesc = 1;
		jd->npayload = 1;
		jd->tags[0].dest = ra;
		jd->tags[0].len = x->sb.sector_size;
		jd->tags[0].payload_off = 0;
		jdesc_encode(&x->c, jd, ja + 9 * 4096, tx);
		crc = crc32c(0, tx, 2 * 4096);
		memset(&jc, 0, sizeof(jc));
		jc.seq = 1;
		jc.slot = 2;
		jc.ndesc = 1;
		jc.npayload = 1;
		jc.body_crc = crc;
		jcommit_encode(&x->c, &jc, ja + 11 * 4096, tx + 2 * 4096);
		ck_assert_int_eq(dev_write(x->dev, tx, 3 * 4096, ja + 9 * 4096), 0);
		jsb_init(&jsb, 2, x->sb.journal_size);
		jsb.state = LUNFS_JOURNAL_DIRTY;
		jsb.tail_seq = 1;
		jsb.tail_block = 9;
		jsb_encode(&x->c, &jsb, ja, x->blk);
		blk_put(x, ja);
		dev_buf_free(tx);
		free(jd);
		return;
	}
	ck_abort_msg("unknown corruption %s", name);
}

/* Find the tree again after populate (by name, through the codecs). */
static uint64_t dir_find(struct tctx *x, uint64_t dir, const char *name)
{
	static struct lunfs_dirent ents[LUNFS_DIR_LEAF_MAX_ENTRIES];
	struct lunfs_inode di;
	struct lunfs_dir_leaf lf;
	uint64_t a;

	ino_get(x, dir, &di);
	a = map_lookup(x, &di, LUNFS_DIR_FIRST_LEAF);
	blk_get(x, a);
	lf.ents = ents;
	ck_assert_int_eq(dir_leaf_decode(&x->c, x->blk, a, &lf), 0);
	for (unsigned i = 0; i < lf.nentries; i++) {
		if (strcmp(ents[i].name, name) == 0) {
			return ents[i].ino;
		}
	}
	return 0;
}

static void tctx_open(struct tctx *x, struct lunfs_dev *dev)
{
	memset(x, 0, sizeof(*x));
	x->dev = dev;
	x->blk = dev_buf_alloc(4096);
	x->rec = dev_buf_alloc(4096);
	ck_assert_int_eq(sb_read(dev, &x->sb, NULL, NULL), 0);
	sb_codec(&x->sb, &x->c);
	x->t.root = x->sb.root_ino;
}

static void tctx_close(struct tctx *x)
{
	dev_buf_free(x->blk);
	dev_buf_free(x->rec);
}

/* ---- running the checker ----------------------------------------------------------- */
static void quiet_report(void *arg, int pb, bool fixed, const char *msg)
{
	(void)arg;
	(void)fixed;
	if (getenv("CHECK_VERBOSE") != NULL) {
		fprintf(stderr, "  [%d] %s\n", pb, msg);
	}
}

static int run(struct lunfs_dev *dev, bool repair, struct check_result *r)
{
	struct check_opts o;
	const char *why = NULL;
	int err;

	memset(&o, 0, sizeof(o));
	o.repair = repair;
	o.take_lock = repair;
	o.live_wait_max_ms = 20;
	o.report = quiet_report;
	err = check_run(dev, &o, r, &why);
	if (err < 0) {
		fprintf(stderr, "check_run: %s\n", why);
	}
	return err;
}

static uint64_t total_found(const struct check_result *r)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < CHECK_PB_COUNT; i++) {
		n += r->found[i];
	}
	return n;
}

static struct lunfs_dev *fresh_volume(struct tree *t)
{
	struct lunfs_dev *dev = NULL;
	struct lunfs_vol_create_opts vo;
	struct check_result r;

	ck_assert_int_eq(dev_mem_open(1 * GiB, 512, &dev), 0);
	memset(&vo, 0, sizeof(vo));
	vo.layout.max_hosts = 4;
	vo.layout.journal_size = 4 * MiB;
	vo.now_ns = 1700000000000000000ull;
	ck_assert_int_eq(vol_create(dev, &vo, NULL, NULL, NULL), 0);
	ck_assert_int_eq(run(dev, false, &r), 0);
	ck_assert_uint_eq(total_found(&r), 0);
	ck_assert_int_eq(populate(dev, t), 0);
	ck_assert_int_eq(run(dev, false, &r), 0);
	ck_assert_uint_eq(total_found(&r), 0);
	ck_assert_int_eq(check_exit_code(&r), 0);
	return dev;
}

/* Corrupt, then: read-only finds `pb` and writes nothing; repair fixes
 * everything it finds; a second run is clean. */
static void corrupt_and_repair(const char *name, enum check_pb pb, bool only)
{
	struct tree t;
	struct lunfs_dev *dev = fresh_volume(&t);
	struct tctx x;
	struct check_result r, r2;

	tctx_open(&x, dev);
	x.t = t;
	corrupt(&x, name);
	ck_assert_int_eq(run(dev, false, &r), 0);
	ck_assert_msg(r.found[pb] >= 1, "%s: class %s not found", name, check_pb_name(pb));
	ck_assert_uint_eq(r.fixed[pb], 0);
	if (only) {
		ck_assert_msg(total_found(&r) == r.found[pb], "%s: other problems reported too", name);
	}
	ck_assert_int_eq(check_exit_code(&r), CHECK_EXIT_UNCORRECTED);
	/* Read-only really is: the same findings again. */
	ck_assert_int_eq(run(dev, false, &r2), 0);
	ck_assert_uint_eq(total_found(&r2), total_found(&r));
	ck_assert_int_eq(run(dev, true, &r), 0);
	ck_assert_msg(r.fixed[pb] >= 1, "%s: not repaired", name);
	ck_assert_int_eq(check_exit_code(&r), CHECK_EXIT_CORRECTED);
	ck_assert_int_eq(run(dev, false, &r2), 0);
	if (total_found(&r2) != 0) {
		for (unsigned i = 0; i < CHECK_PB_COUNT; i++) {
			if (r2.found[i] != 0) {
				fprintf(stderr, "%s: after repair: %s %llu\n", name, check_pb_name(i),
					(unsigned long long)r2.found[i]);
			}
		}
	}
	ck_assert_uint_eq(total_found(&r2), 0);
	ck_assert_int_eq(check_exit_code(&r2), 0);
	/* The fs core mounts what fsck left. */
	{
		struct lunfs_mount_opts mo;
		struct lunfs_vol *v = NULL;
		struct lunfs_attr a;

		memset(&mo, 0, sizeof(mo));
		mo.host_name = "after";
		mo.no_hb_thread = true;
		ck_assert_int_eq(vol_mount(dev, &mo, &v), 0);
		ck_assert_int_eq(fsop_getattr(v, t.root, &a), 0);
		if (strcmp(name, "unreachable") == 0) {
			char nm[32];
			struct lunfs_attr lf;

			ck_assert_int_eq(fsop_lookup(v, t.root, "lost+found", &lf), 0);
			snprintf(nm, sizeof(nm), "#%llu", (unsigned long long)t.f);
			ck_assert_int_eq(fsop_lookup(v, lf.ino, nm, &a), 0);
			ck_assert_uint_eq(a.ino, t.f);
			ck_assert_uint_eq(a.nlink, 1);
		}
		if (strcmp(name, "journal") == 0) {
			ck_assert_int_eq(fsop_getattr(v, t.f, &a), 0);
			ck_assert_uint_eq(a.uid, 4242);
		}
		if (strcmp(name, "orphan") == 0) {
			ck_assert_int_eq(fsop_getattr(v, t.h, &a), -ENOENT);
		}
		ck_assert_int_eq(vol_unmount(v), 0);
	}
	ck_assert_int_eq(run(dev, false, &r2), 0);
	ck_assert_uint_eq(total_found(&r2), 0);
	tctx_close(&x);
	dev_close(dev);
}

START_TEST(test_fresh_clean)
{
	struct tree t;
	struct lunfs_dev *dev = fresh_volume(&t);
	struct check_result r;

	/* A repair run of a clean volume changes nothing and says so. */
	ck_assert_int_eq(run(dev, true, &r), 0);
	ck_assert_uint_eq(total_found(&r), 0);
	ck_assert_uint_eq(r.dirs, 3);
	ck_assert_uint_ge(r.file_blocks, 4);
	dev_close(dev);
}
END_TEST

START_TEST(test_leak) { corrupt_and_repair("leak", CHECK_PB_LEAK, true); }
END_TEST
START_TEST(test_multiref) { corrupt_and_repair("multiref", CHECK_PB_MULTIREF, true); }
END_TEST
START_TEST(test_refcount) { corrupt_and_repair("refcount", CHECK_PB_REFCOUNT, true); }
END_TEST
START_TEST(test_units_free) { corrupt_and_repair("units_free", CHECK_PB_UNITS_FREE, true); }
END_TEST
START_TEST(test_nlink) { corrupt_and_repair("nlink", CHECK_PB_NLINK, true); }
END_TEST
START_TEST(test_dangling) { corrupt_and_repair("dangling", CHECK_PB_DIRENT, true); }
END_TEST
START_TEST(test_unreachable) { corrupt_and_repair("unreachable", CHECK_PB_UNREACHABLE, true); }
END_TEST
START_TEST(test_orphan) { corrupt_and_repair("orphan", CHECK_PB_ORPHAN, true); }
END_TEST
START_TEST(test_map_node) { corrupt_and_repair("map_node", CHECK_PB_MAP, false); }
END_TEST
START_TEST(test_dir_leaf) { corrupt_and_repair("dir_leaf", CHECK_PB_DIR, false); }
END_TEST
START_TEST(test_superblock) { corrupt_and_repair("superblock", CHECK_PB_SUPER, true); }
END_TEST
START_TEST(test_journal) { corrupt_and_repair("journal", CHECK_PB_JOURNAL, true); }
END_TEST

/* ---- shared blocks: refcounts of clones and snapshots ------------------------ */

/* Mount dev, run fn, unmount. */
static void with_mount(struct lunfs_dev *dev, void (*fn)(struct lunfs_vol *, void *), void *arg)
{
	struct lunfs_mount_opts mo;
	struct lunfs_vol *v = NULL;

	memset(&mo, 0, sizeof(mo));
	mo.host_name = "shared";
	mo.no_hb_thread = true;
	ck_assert_int_eq(vol_mount(dev, &mo, &v), 0);
	fn(v, arg);
	ck_assert_int_eq(vol_unmount(v), 0);
}

struct shared_ctx {
	struct tree t;
	uint64_t clone, snap;
	uint8_t *want;          /* /d/f's 3 MiB */
};

static void shared_read(struct lunfs_vol *v, uint64_t ino, uint8_t *buf, size_t len)
{
	struct lunfs_fh *fh = NULL;

	ck_assert_int_eq(fsop_open(v, ino, O_RDONLY, &fh), 0);
	ck_assert_int_eq(fsop_read(v, fh, buf, len, 0), (ssize_t)len);
	ck_assert_int_eq(fsop_release(v, fh), 0);
}

static void shared_make(struct lunfs_vol *v, void *arg)
{
	struct shared_ctx *s = arg;
	struct lunfs_cred cr = { 0, 0, 022 };
	struct lunfs_attr a;

	ck_assert_int_eq(fsop_clone(v, &cr, s->t.f, s->t.d, "f-clone", &a), 0);
	s->clone = a.ino;
	ck_assert_int_eq(fsop_snapshot_create(v, s->t.f, "s", &a), 0);
	s->snap = a.ino;
}

/* After the repair: all three read /d/f's bytes, and a write to the clone
 * copies the block (the others keep theirs). */
static void shared_verify(struct lunfs_vol *v, void *arg)
{
	struct shared_ctx *s = arg;
	uint8_t *got = malloc(3 * MiB), x[4096];
	struct lunfs_fh *fh = NULL;
	uint64_t inos[3] = { s->t.f, s->clone, s->snap };

	ck_assert_ptr_nonnull(got);
	for (unsigned i = 0; i < 3; i++) {
		shared_read(v, inos[i], got, 3 * MiB);
		ck_assert_mem_eq(got, s->want, 3 * MiB);
	}
	memset(x, 0x11, sizeof(x));
	ck_assert_int_eq(fsop_open(v, s->clone, O_RDWR, &fh), 0);
	ck_assert_int_eq(fsop_write(v, fh, x, sizeof(x), 0), (ssize_t)sizeof(x));
	ck_assert_int_eq(fsop_release(v, fh), 0);
	shared_read(v, s->t.f, got, 3 * MiB);
	ck_assert_mem_eq(got, s->want, 3 * MiB);
	shared_read(v, s->snap, got, 3 * MiB);
	ck_assert_mem_eq(got, s->want, 3 * MiB);
	free(got);
}

/* A volume where /d/f, a clone of it and a snapshot of it share every
 * block (3 references each, extra = 2); then one corruption:
 *   low   a counter says fewer references than there are (a later delete
 *         would free a block others still use)
 *   high  more than there are (a leak once the others go)
 *   flag  one entry of a shared block lacks SHARED (a write would go in
 *         place, under the others' feet)
 * A read-only run finds it, a repair fixes it, a second run is clean, and
 * the files are right, copy-on-write included. */
static void shared_corrupt_and_repair(const char *what, enum check_pb pb)
{
	struct shared_ctx s;
	struct lunfs_dev *dev;
	struct check_result r;
	struct lunfs_inode di;
	struct tctx x;
	uint64_t fb;

	memset(&s, 0, sizeof(s));
	dev = fresh_volume(&s.t);
	s.want = malloc(3 * MiB);
	ck_assert_ptr_nonnull(s.want);
	memset(s.want, 0xab, 3 * MiB); /* populate's bytes */
	with_mount(dev, shared_make, &s);
	ck_assert_int_eq(run(dev, false, &r), 0);
	ck_assert_msg(total_found(&r) == 0, "shared blocks: not clean before the corruption");
	tctx_open(&x, dev);
	x.t = s.t;
	ino_get(&x, s.t.f, &di);
	fb = map_lookup(&x, &di, 1);
	if (strcmp(what, "flag") == 0) {
		struct lunfs_map_leaf lf;
		unsigned idx;
		uint64_t a;

		ino_get(&x, s.clone, &di);
		a = map_leaf_of(&x, &di, 1, &idx);
		blk_get(&x, a);
		ck_assert_int_eq(map_leaf_decode(&x.c, x.blk, a, &lf), 0);
		ck_assert_uint_eq(lf.e[idx].addr, fb);
		ck_assert_uint_ne(lf.e[idx].flags & LUNFS_MAPE_SHARED, 0);
		lf.e[idx].flags &= ~LUNFS_MAPE_SHARED;
		map_leaf_encode(&x.c, &lf, a, x.blk);
		blk_put(&x, a);
	} else {
		struct lunfs_cluster_hdr h = cluster_of(&x, fb);
		struct lunfs_refcount rc;
		uint64_t u = (fb - h.cluster_start) / h.unit_size;
		uint64_t ra = h.cluster_start + (1u + h.bitmap_blocks + u / LUNFS_REFCOUNTS_PER_BLOCK) * 4096ull;

		blk_get(&x, ra);
		ck_assert_int_eq(refcount_decode(&x.c, x.blk, ra, &rc), 0);
		ck_assert_uint_eq(rc.extra[u - rc.first_unit], 2);
		rc.extra[u - rc.first_unit] = strcmp(what, "low") == 0 ? 0 : 7;
		refcount_encode(&x.c, &rc, ra, x.blk);
		blk_put(&x, ra);
	}
	tctx_close(&x);
	ck_assert_int_eq(run(dev, false, &r), 0);
	ck_assert_msg(r.found[pb] >= 1, "%s: class %s not found", what, check_pb_name(pb));
	ck_assert_msg(total_found(&r) == r.found[pb], "%s: other problems reported too", what);
	ck_assert_int_eq(run(dev, true, &r), 0);
	ck_assert_msg(r.fixed[pb] >= 1, "%s: not repaired", what);
	ck_assert_int_eq(run(dev, false, &r), 0);
	ck_assert_msg(total_found(&r) == 0, "%s: not clean after the repair", what);
	with_mount(dev, shared_verify, &s);
	ck_assert_int_eq(run(dev, false, &r), 0);
	ck_assert_msg(total_found(&r) == 0, "%s: not clean after the writes", what);
	free(s.want);
	dev_close(dev);
}

START_TEST(test_shared_refcount_low) { shared_corrupt_and_repair("low", CHECK_PB_REFCOUNT); }
END_TEST
START_TEST(test_shared_refcount_high) { shared_corrupt_and_repair("high", CHECK_PB_REFCOUNT); }
END_TEST
START_TEST(test_shared_flag) { shared_corrupt_and_repair("flag", CHECK_PB_MULTIREF); }
END_TEST

/* Random byte damage in metadata: never a crash, and what a repair run
 * calls done, a second run finds clean. Fixed seeds. */
START_TEST(test_hostile)
{
	struct tree t;
	struct lunfs_dev *dev = fresh_volume(&t);
	struct tctx x;
	uint64_t seed = 12345;
	struct lunfs_inode di;
	uint64_t targets[8];
	unsigned nt = 0;

	tctx_open(&x, dev);
	x.t = t;
	ino_get(&x, t.d, &di);
	targets[nt++] = di.map_root;
	targets[nt++] = map_lookup(&x, &di, LUNFS_DIR_FIRST_LEAF);
	ino_get(&x, t.f, &di);
	targets[nt++] = di.map_root;
	targets[nt++] = rec_addr_of(&x, t.f) & ~4095ull;
	targets[nt++] = rec_addr_of(&x, t.root) & ~4095ull;
	targets[nt++] = layout_cluster_addr(&x.sb, 0);
	targets[nt++] = x.sb.regions[LUNFS_REGION_CLUSTER].offset;
	targets[nt++] = layout_cluster_addr(&x.sb, 0) + 4096;
	for (int it = 0; it < 30; it++) {
		struct check_result r;
		uint64_t a;
		int err;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		a = targets[(seed >> 33) % nt];
		blk_get(&x, a);
		for (int k = 0; k < 4; k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			x.blk[(seed >> 33) % 4096] ^= (uint8_t)(1u << ((seed >> 20) % 8));
		}
		blk_put(&x, a);
		err = run(dev, true, &r);
		if (err == 0 && (check_exit_code(&r) & CHECK_EXIT_UNCORRECTED) == 0) {
			ck_assert_int_eq(run(dev, false, &r), 0);
			ck_assert_msg(total_found(&r) == 0, "iteration %d: not clean after repair", it);
		}
	}
	tctx_close(&x);
	dev_close(dev);
}
END_TEST

/* The generator runs as a one-test suite: the helpers' ck_asserts need a
 * running test. */
static const char *golden_path, *golden_name;

START_TEST(test_golden)
{
	struct lunfs_dev *dev = NULL;
	struct tctx x;
	struct tree t;

	ck_assert_int_eq(dev_file_open(golden_path, NULL, &dev), 0);
	ck_assert_int_eq(populate(dev, &t), 0);
	tctx_open(&x, dev);
	x.t = t;
	corrupt(&x, golden_name);
	tctx_close(&x);
	ck_assert_int_eq(dev_flush(dev), 0);
	dev_close(dev);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s;
	SRunner *sr;
	TCase *tc;
	int nfail;

	(void)dir_find;
	s = suite_create("check");
	tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	if (argc == 4 && strcmp(argv[1], "--golden") == 0) {
		golden_path = argv[2];
		golden_name = argv[3];
		tcase_add_test(tc, test_golden);
		suite_add_tcase(s, tc);
		sr = srunner_create(s);
		srunner_run_all(sr, CK_SILENT);
		nfail = srunner_ntests_failed(sr);
		srunner_free(sr);
		return nfail == 0 ? 0 : 1;
	}
	tcase_add_test(tc, test_fresh_clean);
	tcase_add_test(tc, test_leak);
	tcase_add_test(tc, test_multiref);
	tcase_add_test(tc, test_refcount);
	tcase_add_test(tc, test_units_free);
	tcase_add_test(tc, test_nlink);
	tcase_add_test(tc, test_dangling);
	tcase_add_test(tc, test_unreachable);
	tcase_add_test(tc, test_orphan);
	tcase_add_test(tc, test_map_node);
	tcase_add_test(tc, test_dir_leaf);
	tcase_add_test(tc, test_superblock);
	tcase_add_test(tc, test_journal);
	tcase_add_test(tc, test_shared_refcount_low);
	tcase_add_test(tc, test_shared_refcount_high);
	tcase_add_test(tc, test_shared_flag);
	tcase_add_test(tc, test_hostile);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nfail = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfail == 0 ? 0 : 1;
}
