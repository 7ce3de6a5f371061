/*
 * Robustness of the decoders against hostile buffers.
 *
 * For a valid superblock, heartbeat slot, lock record, inode, directory
 * leaf, xattr block and journal descriptor: set every byte in turn to
 * several values and decode, once as is (the checksum catches it) and once
 * with the checksum recomputed, so that the semantic checks behind it see
 * the damage. Then random multi-byte damage, resealed. Decoders must never
 * crash or read outside the buffer (buffers are exactly sized heap blocks,
 * so ASan sees any overread), must return 0 or one of the documented
 * errors, and whatever decodes must be safe to use: for the superblock,
 * every address the layout functions compute lies inside its region and
 * the volume; for leaves and xattr blocks, names and values lie inside
 * their bounds. Run it under ASan and UBSan (make asan / make ubsan).
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lunfs/crc32c.h"
#include "lunfs/dir.h"
#include "lunfs/format.h"
#include "lunfs/heartbeat.h"
#include "lunfs/inode.h"
#include "lunfs/journal.h"
#include "lunfs/lock.h"
#include "lunfs/xattr.h"

#define REC_ADDR 0x200200ull
#define BLK_ADDR 0x7000000ull
#define GiB (1024ull * 1024ull * 1024ull)

enum frame_kind { FRAME_SB, FRAME_REC, FRAME_BLK };

struct fuzz_case {
	const char *name;
	size_t size;
	enum frame_kind frame;
	void (*make)(const struct lunfs_codec *c, void *buf);
	/* Decode; on success check that the result is safe to use. */
	int (*dec)(const struct lunfs_codec *c, const void *buf);
};

static void codec_init(struct lunfs_codec *c, bool hmac)
{
	memset(c, 0, sizeof(*c));
	for (unsigned i = 0; i < LUNFS_UUID_SIZE; i++) {
		c->uuid[i] = (uint8_t)(0x10 + i);
		c->hmac_key[i] = (uint8_t)(0x80 + i);
	}
	c->have_hmac = hmac;
}

static void reseal(const struct fuzz_case *k, uint8_t *buf)
{
	size_t at = k->size - 4;
	le32 crc = le32_make(crc32c(0, buf, at));

	memcpy(buf + at, &crc, 4);
}

static bool errno_ok(int ret, bool sb)
{
	return ret == 0 || ret == -ENODATA || ret == -ESTALE || ret == -EUCLEAN ||
	       (sb && ret == -EPROTONOSUPPORT);
}

/* --- superblock ------------------------------------------------------------ */

static void make_sb(const struct lunfs_codec *c, void *buf)
{
	struct lunfs_layout_params p;
	struct lunfs_super sb;
	const char *why;

	memset(&p, 0, sizeof(p));
	memset(&sb, 0, sizeof(sb));
	p.volume_size = 4 * GiB + 3 * 4096 + 100;
	p.max_hosts = 32;
	ck_assert_int_eq(layout_compute(&p, &sb, &why), 0);
	memcpy(sb.uuid, c->uuid, sizeof(sb.uuid));
	strcpy(sb.label, "fuzz");
	sb.root_ino = layout_inodes_per_cluster(&sb) + 100;
	sb_encode(&sb, LUNFS_SB_OFFSET, buf);
}

static void within(uint64_t a, uint64_t len, const struct lunfs_region *r, uint64_t vol)
{
	ck_assert_uint_ge(a, r->offset);
	ck_assert_uint_le(len, r->length);
	ck_assert_uint_le(a - r->offset, r->length - len);
	ck_assert_uint_le(r->offset + r->length, vol);
}

static int dec_sb(const struct lunfs_codec *c, const void *buf)
{
	struct lunfs_super sb;
	const struct lunfs_region *r = sb.regions;
	uint64_t backup, a;
	int ret;

	(void)c;
	ret = sb_decode(buf, LUNFS_SB_OFFSET, &sb);
	if (ret != 0) {
		return ret;
	}
	/* Decoded means safe: every layout address is in its region, every
	 * region before the backup superblock, inside the volume. */
	ck_assert_int_eq(sb_geometry_check(&sb, NULL), 0);
	backup = sb_backup_addr(sb.volume_size);
	ck_assert_uint_gt(backup, 0);
	ck_assert_uint_lt(backup, sb.volume_size);
	for (unsigned i = 0; i < LUNFS_REGION_COUNT; i++) {
		ck_assert_uint_ge(r[i].offset, 1u << 20);
		ck_assert_uint_le(r[i].length, backup - r[i].offset);
		if (i > 0) {
			ck_assert_uint_ge(r[i].offset, r[i - 1].offset + r[i - 1].length);
		}
	}
	within(layout_hb_addr(&sb, 0), sb.sector_size, &r[LUNFS_REGION_HEARTBEAT], backup);
	within(layout_hb_addr(&sb, sb.max_hosts - 1), sb.sector_size, &r[LUNFS_REGION_HEARTBEAT], backup);
	within(layout_syslock_addr(&sb, LUNFS_SYSLOCKS - 1), sb.sector_size, &r[LUNFS_REGION_SYSLOCK], backup);
	within(layout_paxos_addr(&sb, sb.paxos_instances - 1, sb.max_hosts - 1), sb.sector_size,
	       &r[LUNFS_REGION_PAXOS], backup);
	within(layout_cluster_lock_addr(&sb, sb.cluster_count - 1), sb.sector_size,
	       &r[LUNFS_REGION_CLUSTER], backup);
	within(layout_cluster_addr(&sb, 0), sb.cluster_size, &r[LUNFS_REGION_DATA], backup);
	within(layout_cluster_addr(&sb, sb.cluster_count - 1), sb.cluster_size, &r[LUNFS_REGION_DATA], backup);
	within(layout_journal_addr(&sb, sb.max_hosts - 1), sb.journal_size, &r[LUNFS_REGION_JOURNAL], backup);
	ck_assert_int_eq(layout_ino_addr(&sb, sb.root_ino, &a), 0);
	within(a, sb.inode_slot_size, &r[LUNFS_REGION_DATA], backup);
	ck_assert_uint_le(strlen(sb.label), 64);
	return 0;
}

/* --- records --------------------------------------------------------------- */

static void make_hb(const struct lunfs_codec *c, void *buf)
{
	struct lunfs_hb_slot s;

	memset(&s, 0, sizeof(s));
	s.slot = 3;
	s.state = LUNFS_HB_LIVE;
	s.generation = 7;
	s.seq = 1000;
	strcpy(s.host_name, "fuzz-host");
	s.hb_interval_ms = 1000;
	s.dead_timeout_ms = 8000;
	s.io_deadline_ms = 2000;
	s.journal_offset = 1ull << 30;
	s.journal_size = 1ull << 24;
	s.requests[0].lock_addr = 0x1234000;
	s.requests[0].target_slot = 2;
	s.requests[0].mode = LUNFS_LOCK_EXCLUSIVE;
	s.requests[0].serial = 5;
	hb_encode(c, &s, REC_ADDR, buf);
}

static int dec_hb(const struct lunfs_codec *c, const void *buf)
{
	struct lunfs_hb_slot s;
	int ret = hb_decode(c, buf, REC_ADDR, &s);

	if (ret == 0) {
		ck_assert_uint_le(strlen(s.host_name), 64);
		ck_assert_uint_lt(s.slot, LUNFS_HOSTS_MAX);
		ck_assert_uint_le(s.state, LUNFS_HB_LEAVING);
	}
	return ret;
}

static void make_lock(const struct lunfs_codec *c, void *buf)
{
	struct lunfs_lock l;

	memset(&l, 0, sizeof(l));
	l.kind = LUNFS_LOCK_KIND_INODE;
	l.mode = LUNFS_LOCK_SHARED;
	l.lock_id = 4242;
	l.version = 17;
	lock_holder_set(&l, 1, true);
	lock_holder_set(&l, 30, true);
	l.req_slot = 5;
	l.req_mode = LUNFS_LOCK_EXCLUSIVE;
	lock_encode(c, &l, REC_ADDR, buf);
}

static int dec_lock(const struct lunfs_codec *c, const void *buf)
{
	struct lunfs_lock l;
	int ret = lock_decode(c, buf, REC_ADDR, &l);

	if (ret == 0) {
		unsigned n = 0;

		for (uint32_t s = 0; s < LUNFS_HOSTS_MAX; s++) {
			n += lock_holder_test(&l, s);
		}
		ck_assert_uint_eq(n, l.nholders);
		ck_assert_uint_le(l.mode, LUNFS_LOCK_MULTIWRITER);
	}
	return ret;
}

static void make_inode(const struct lunfs_codec *c, void *buf)
{
	struct lunfs_inode n;
	struct lunfs_dir_state ds = { .global_depth = 2, .nentries = 10, .next_lblk = 4097, .nleaves = 2 };

	memset(&n, 0, sizeof(n));
	n.ino = 9000;
	n.mode = S_IFDIR | 0755;
	n.nlink = 2;
	n.size = 8192;
	n.map_root = 0x40000;
	n.map_height = 1;
	n.map_unit = LUNFS_MAP_META;
	inode_dir_state_set(&n, &ds);
	inode_encode(c, &n, REC_ADDR, buf);
}

static int dec_inode(const struct lunfs_codec *c, const void *buf)
{
	struct lunfs_inode n;
	int ret = inode_decode(c, buf, REC_ADDR, 9000, &n);

	if (ret == 0) {
		ck_assert_uint_eq(n.ino, 9000);
		ck_assert_uint_le(n.map_height, LUNFS_MAP_MAX_HEIGHT);
	}
	return ret;
}

/* --- blocks ---------------------------------------------------------------- */

static void make_dir_leaf(const struct lunfs_codec *c, void *buf)
{
	struct lunfs_dirent ents[6];
	struct lunfs_dir_leaf l;
	static const char *const names[] = { "a", "disk0.qcow2", "vm-1.vmx", "snapshot-2024-01-01",
					     "x", "very-long-name-for-a-suspend-image.vmss" };

	memset(&l, 0, sizeof(l));
	memset(ents, 0, sizeof(ents));
	l.ino = 9000;
	l.local_depth = 1;
	l.prefix = 1ull << 63;
	l.nentries = 6;
	l.ents = ents;
	for (unsigned i = 0; i < 6; i++) {
		ents[i].hash = (1ull << 63) + i * 1000;
		ents[i].ino = 100 + i;
		ents[i].type = 8;
		ents[i].name_len = (uint8_t)strlen(names[i]);
		memcpy(ents[i].name, names[i], ents[i].name_len);
	}
	ck_assert_int_eq(dir_leaf_encode(c, &l, BLK_ADDR, buf), 0);
}

static int dec_dir_leaf(const struct lunfs_codec *c, const void *buf)
{
	struct lunfs_dirent ents[LUNFS_DIR_LEAF_MAX_ENTRIES];
	struct lunfs_dir_leaf l;
	int ret;

	l.ents = ents;
	ret = dir_leaf_decode(c, buf, BLK_ADDR, &l);
	ck_assert_ptr_eq(l.ents, ents);
	if (ret == 0) {
		ck_assert_uint_le(l.nentries, LUNFS_DIR_LEAF_MAX_ENTRIES);
		for (unsigned i = 0; i < l.nentries; i++) {
			ck_assert_uint_ge(ents[i].name_len, 1);
			ck_assert_uint_eq(strlen(ents[i].name), ents[i].name_len);
			ck_assert_ptr_null(strchr(ents[i].name, '/'));
			if (i > 0) {
				ck_assert_uint_le(ents[i - 1].hash, ents[i].hash);
			}
		}
	}
	return ret;
}

static void make_xattr(const struct lunfs_codec *c, void *buf)
{
	static const uint8_t val[100] = { 1, 2, 3 };
	struct lunfs_xattr ents[4];
	struct lunfs_xattr_blk b;

	memset(&b, 0, sizeof(b));
	memset(ents, 0, sizeof(ents));
	b.ino = 9000;
	b.next = 0x99000;
	b.nentries = 4;
	b.ents = ents;
	for (unsigned i = 0; i < 4; i++) {
		ents[i].ns = (uint8_t)(1 + i);
		ents[i].name_len = (uint8_t)(4 + i);
		memcpy(ents[i].name, "attrname", ents[i].name_len);
		ents[i].value_len = (uint16_t)(i * 33);
		ents[i].value = val;
	}
	ck_assert_int_eq(xattr_blk_encode(c, &b, BLK_ADDR, buf), 0);
}

static int dec_xattr(const struct lunfs_codec *c, const void *buf)
{
	struct lunfs_xattr ents[LUNFS_XATTR_MAX_ENTRIES];
	struct lunfs_xattr_blk b;
	const uint8_t *lo = buf, *hi = lo + LUNFS_META_BLOCK_SIZE - 4;
	int ret;

	b.ents = ents;
	ret = xattr_blk_decode(c, buf, BLK_ADDR, &b);
	if (ret == 0) {
		for (unsigned i = 0; i < b.nentries; i++) {
			uint8_t sum = 0;

			ck_assert_uint_eq(strlen(ents[i].name), ents[i].name_len);
			ck_assert(ents[i].value >= lo + 80);
			ck_assert(ents[i].value <= hi && ents[i].value_len <= (size_t)(hi - ents[i].value));
			/* Touch every value byte, so ASan would see an overread. */
			for (unsigned v = 0; v < ents[i].value_len; v++) {
				sum ^= ents[i].value[v];
			}
			(void)sum;
		}
	}
	return ret;
}

static void make_jdesc(const struct lunfs_codec *c, void *buf)
{
	struct lunfs_jdesc *d = calloc(1, sizeof(*d));

	ck_assert_ptr_nonnull(d);
	d->seq = 77;
	d->slot = 3;
	d->index = 0;
	d->ndesc = 1;
	d->npayload = 4;
	d->ntags = 5;
	for (unsigned i = 0; i < d->ntags; i++) {
		d->tags[i].dest = 0x100000ull * (i + 1);
		d->tags[i].len = 512 * (i + 1);
		d->tags[i].payload_off = 512 * i;
	}
	jdesc_encode(c, d, BLK_ADDR, buf);
	free(d);
}

static int dec_jdesc(const struct lunfs_codec *c, const void *buf)
{
	struct lunfs_jdesc *d = malloc(sizeof(*d));
	int ret;

	ck_assert_ptr_nonnull(d);
	ret = jdesc_decode(c, buf, BLK_ADDR, d);
	if (ret == 0) {
		ck_assert_uint_le(d->ntags, LUNFS_JTAGS_PER_DESC);
		for (unsigned i = 0; i < d->ntags; i++) {
			ck_assert_uint_le((uint64_t)d->tags[i].payload_off + d->tags[i].len,
					  (uint64_t)d->npayload * 4096);
			ck_assert_uint_eq(d->tags[i].len % 512, 0);
		}
	}
	free(d);
	return ret;
}

static const struct fuzz_case cases[] = {
	{ "superblock", LUNFS_META_BLOCK_SIZE, FRAME_SB, make_sb, dec_sb },
	{ "heartbeat", LUNFS_RECORD_SIZE, FRAME_REC, make_hb, dec_hb },
	{ "lock", LUNFS_RECORD_SIZE, FRAME_REC, make_lock, dec_lock },
	{ "inode", LUNFS_RECORD_SIZE, FRAME_REC, make_inode, dec_inode },
	{ "dir-leaf", LUNFS_META_BLOCK_SIZE, FRAME_BLK, make_dir_leaf, dec_dir_leaf },
	{ "xattr", LUNFS_META_BLOCK_SIZE, FRAME_BLK, make_xattr, dec_xattr },
	{ "jdesc", LUNFS_META_BLOCK_SIZE, FRAME_BLK, make_jdesc, dec_jdesc },
};
#define NCASES ((int)(sizeof(cases) / sizeof(cases[0])))

static uint8_t mutate_byte(uint8_t b, int how)
{
	switch (how) {
	case 0: return (uint8_t)(b ^ 0xff);
	case 1: return 0x00;
	case 2: return 0x80;
	case 3: return (uint8_t)(b + 1);
	case 4: return (uint8_t)(b - 1);
	case 5: return (uint8_t)(b ^ 0x01);
	default: return 0xff;
	}
}
#define NMUT 7

/*
 * Every byte, every mutation. `resealed`: recompute the crc afterwards
 * (with a keyed codec the HMAC still fails; resealing is done with the
 * keyless codec so the semantic checks run).
 */
static void fuzz_each_byte(const struct fuzz_case *k, bool hmac, bool resealed, unsigned *accepted)
{
	struct lunfs_codec c;
	uint8_t *good = malloc(k->size);
	uint8_t *buf = malloc(k->size); /* exactly sized: ASan catches overreads */

	ck_assert_ptr_nonnull(good);
	ck_assert_ptr_nonnull(buf);
	codec_init(&c, hmac);
	memset(good, 0, k->size);
	k->make(&c, good);
	ck_assert_int_eq(k->dec(&c, good), 0);
	for (size_t off = 0; off < k->size; off++) {
		for (int how = 0; how < NMUT; how++) {
			int ret;

			memcpy(buf, good, k->size);
			buf[off] = mutate_byte(buf[off], how);
			if (buf[off] == good[off]) {
				continue;
			}
			if (resealed) {
				reseal(k, buf);
			}
			ret = k->dec(&c, buf);
			ck_assert_msg(errno_ok(ret, k->frame == FRAME_SB), "%s: byte %zu how %d: %d",
				      k->name, off, how, ret);
			if (!resealed) {
				/* Without resealing, every change is caught: by the
				 * crc, or by the all-zero check. */
				ck_assert_msg(ret != 0, "%s: byte %zu how %d accepted without reseal",
					      k->name, off, how);
			}
			if (ret == 0) {
				(*accepted)++;
			}
		}
	}
	free(good);
	free(buf);
}

START_TEST(test_bytes_raw)
{
	unsigned accepted = 0;

	fuzz_each_byte(&cases[_i], false, false, &accepted);
	fuzz_each_byte(&cases[_i], true, false, &accepted);
	ck_assert_uint_eq(accepted, 0);
}
END_TEST

START_TEST(test_bytes_resealed)
{
	unsigned accepted = 0;

	fuzz_each_byte(&cases[_i], false, true, &accepted);
	/* Some changes are legitimately valid (a timestamp, a reserved or
	 * name byte), and k->dec checked each of those results. There are
	 * always some, so this proves the success path was exercised. */
	ck_assert_uint_gt(accepted, 0);
}
END_TEST

/* Random damage to 1..8 bytes, resealed; also truncated-looking buffers
 * (a tail of zeros) and all-0xff. */
START_TEST(test_random_resealed)
{
	const struct fuzz_case *k = &cases[_i];
	struct lunfs_codec c;
	uint8_t *good = malloc(k->size), *buf = malloc(k->size);
	uint64_t s = 0x243f6a8885a308d3ull ^ (uint64_t)_i;
	int ret;

	codec_init(&c, false);
	memset(good, 0, k->size);
	k->make(&c, good);
	for (int n = 0; n < 20000; n++) {
		unsigned nbytes;

		memcpy(buf, good, k->size);
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		nbytes = 1 + (unsigned)(s % 8);
		for (unsigned j = 0; j < nbytes; j++) {
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			/* Bias towards the header and first fields, where the
			 * counts and lengths live. */
			buf[(s >> 8) % (j % 2 ? k->size : 256)] = (uint8_t)(s >> 40);
		}
		reseal(k, buf);
		ret = k->dec(&c, buf);
		ck_assert_msg(errno_ok(ret, k->frame == FRAME_SB), "%s: iteration %d: %d", k->name, n, ret);
	}
	for (size_t cut = 0; cut < k->size; cut += 8) {
		memcpy(buf, good, k->size);
		memset(buf + cut, 0, k->size - cut);
		reseal(k, buf);
		ret = k->dec(&c, buf);
		ck_assert(errno_ok(ret, k->frame == FRAME_SB));
	}
	memset(buf, 0xff, k->size);
	ck_assert_int_eq(k->dec(&c, buf), -EUCLEAN);
	reseal(k, buf);
	/* Resealed, the 0xff UUID is not ours: stale (or corrupt, for the
	 * superblock, which has no UUID to compare). */
	ret = k->dec(&c, buf);
	ck_assert(ret == -EUCLEAN || ret == -ESTALE);
	free(good);
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("format_fuzz");
	TCase *tc = tcase_create("fuzz");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_bytes_raw, 0, NCASES);
	tcase_add_loop_test(tc, test_bytes_resealed, 0, NCASES);
	tcase_add_loop_test(tc, test_random_resealed, 0, NCASES);
	tcase_set_timeout(tc, 300);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
