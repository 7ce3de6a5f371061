/*
 * Codec tests for format/: every structure round-trips with all fields set
 * to distinctive values; every decoder reports corruption (-EUCLEAN), a
 * wrong address (-EUCLEAN), another volume (-ESTALE) and an empty buffer
 * (-ENODATA); records honour the HMAC; semantic checks reject what the
 * checksum alone cannot (tested with the checksum recomputed).
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lunfs/cluster.h"
#include "lunfs/crc32c.h"
#include "lunfs/dir.h"
#include "lunfs/format.h"
#include "lunfs/heartbeat.h"
#include "lunfs/inode.h"
#include "lunfs/journal.h"
#include "lunfs/lock.h"
#include "lunfs/map.h"
#include "lunfs/paxos.h"
#include "lunfs/xattr.h"

#define REC_ADDR 0x123400ull
#define BLK_ADDR 0x5678000ull
#define GiB (1024ull * 1024ull * 1024ull)

static void codec_init(struct lunfs_codec *c, uint8_t uuid_byte)
{
	memset(c, 0, sizeof(*c));
	for (unsigned i = 0; i < LUNFS_UUID_SIZE; i++) {
		c->uuid[i] = (uint8_t)(uuid_byte + i);
	}
}

/* Recompute the checksum of a buffer after a deliberate edit, so that the
 * semantic checks behind it are exercised. */
static void reseal_rec(void *rec)
{
	uint8_t *p = rec;
	le32 crc = le32_make(crc32c(0, p, LUNFS_RECORD_SIZE - 4));

	memcpy(p + LUNFS_RECORD_SIZE - 4, &crc, 4);
}

static void reseal_blk(void *blk)
{
	uint8_t *p = blk;
	le32 crc = le32_make(crc32c(0, p, LUNFS_BLOCK_CRC_OFFSET));

	memcpy(p + LUNFS_BLOCK_CRC_OFFSET, &crc, 4);
}

static void put16(void *buf, size_t off, uint16_t v)
{
	le16 x = le16_make(v);

	memcpy((uint8_t *)buf + off, &x, sizeof(x));
}

static void put32(void *buf, size_t off, uint32_t v)
{
	le32 x = le32_make(v);

	memcpy((uint8_t *)buf + off, &x, sizeof(x));
}

static void put64(void *buf, size_t off, uint64_t v)
{
	le64 x = le64_make(v);

	memcpy((uint8_t *)buf + off, &x, sizeof(x));
}

/* --- samples --------------------------------------------------------------- */

static void sample_sb(struct lunfs_super *sb)
{
	struct lunfs_layout_params p;
	const char *why = NULL;
	uint64_t a;

	memset(sb, 0, sizeof(*sb));
	memset(&p, 0, sizeof(p));
	p.volume_size = 1 * GiB + 12345;
	p.max_hosts = 16;
	ck_assert_int_eq(layout_compute(&p, sb, &why), 0);
	sb->feat_incompat = LUNFS_FEAT_INCOMPAT_HMAC;
	sb->feat_compat = 0x40000000u;
	for (unsigned i = 0; i < 16; i++) {
		sb->uuid[i] = (uint8_t)(0x10 + i);
		sb->dir_hash_key[i] = (uint8_t)(0xa0 + i);
		sb->kdf_salt[i] = (uint8_t)(0x50 + i);
	}
	strcpy(sb->label, "vmstore-01");
	sb->create_time_ns = 0x1700000000000001ull;
	sb->kdf_iterations = 200000;
	for (unsigned i = 0; i < 32; i++) {
		sb->hmac_check[i] = (uint8_t)(0xc0 + i);
		sb->enc_check[i] = (uint8_t)(0x30 + i);
	}
	/* First usable slot of an inode cluster 2. */
	sb->root_ino = 2 * layout_inodes_per_cluster(sb) + 1;
	while (layout_ino_addr(sb, sb->root_ino, &a) != 0) {
		sb->root_ino++;
	}
}

static void sample_hb(struct lunfs_hb_slot *s)
{
	memset(s, 0, sizeof(*s));
	s->slot = 5;
	s->state = LUNFS_HB_LIVE;
	s->generation = 0x1111222233334444ull;
	s->seq = 0x5555666677778888ull;
	for (unsigned i = 0; i < 16; i++) {
		s->host_uuid[i] = (uint8_t)(0xe0 + i);
	}
	strcpy(s->host_name, "hypervisor-a.example.com");
	s->hb_interval_ms = 1000;
	s->dead_timeout_ms = 8000;
	s->io_deadline_ms = 2000;
	s->journal_offset = 0x4000000ull;
	s->journal_size = 0x1000000ull;
	s->recoverer_slot = 3;
	s->recoverer_gen = 0x99;
	s->mount_time_ns = 0x1700000000000002ull;
	s->beat_time_ns = 0x1700000000000003ull;
	for (unsigned i = 0; i < LUNFS_HB_REQUESTS; i++) {
		s->requests[i].lock_addr = 0x10000000ull + i * 512;
		s->requests[i].target_slot = (uint16_t)(i + 1);
		s->requests[i].mode = (uint8_t)(i % 4);
		s->requests[i].serial = 0xabc00000u + i;
	}
	s->pid = 424242;
}

static void sample_lock(struct lunfs_lock *l, bool exclusive)
{
	struct lunfs_cluster_summary cs = { .type = LUNFS_CLUSTER_FILE, .units_total = 1024,
					    .units_free = 999, .updated_seq = 77 };

	memset(l, 0, sizeof(*l));
	l->kind = LUNFS_LOCK_KIND_CLUSTER;
	l->lock_id = 0x123456789ull;
	l->version = 0xfeedull;
	l->owner_gen = 0x42;
	l->acquired_ns = 0x1700000000000004ull;
	l->req_slot = 17;
	l->req_mode = LUNFS_LOCK_SHARED;
	l->req_serial = 0xdeadbeefu;
	l->req_gen = 0x43;
	lock_summary_set(l, &cs);
	if (exclusive) {
		l->mode = LUNFS_LOCK_EXCLUSIVE;
		l->owner_slot = 2048;
	} else {
		l->mode = LUNFS_LOCK_MULTIWRITER;
		lock_holder_set(l, 0, true);
		lock_holder_set(l, 9, true);
		lock_holder_set(l, 2047, true);
	}
}

static void sample_paxos(struct lunfs_paxos *x)
{
	memset(x, 0, sizeof(*x));
	x->instance = 4095;
	x->slot = 2047;
	x->writer_gen = 0x1234;
	x->mbal = 0x5000;
	x->bal = 0x4fff;
	x->inp_owner_slot = 2048;
	x->inp_owner_gen = 0x777;
	x->inp_round = 0x888;
	x->inp_target = 0x999000;
	x->released_round = 0x887;
}

static void sample_paxos_leader(struct lunfs_paxos_leader *x)
{
	memset(x, 0, sizeof(*x));
	x->instance = 4095;
	x->writer_slot = 2047;
	x->writer_gen = 0x4321;
	x->round = 0x888;
	x->owner_slot = 2048;
	x->released = true;
	x->owner_gen = 0x777;
	x->target = 0x999000;
}

static void sample_cluster_hdr(struct lunfs_cluster_hdr *h, uint8_t type)
{
	struct lunfs_super sb;

	sample_sb(&sb);
	ck_assert_int_eq(cluster_geometry(&sb, type, h), 0);
	h->cluster_index = 7;
	h->cluster_start = BLK_ADDR;
	h->units_free -= 3;
	h->type_gen = 0x11;
	h->alloc_hint = h->units_total - 1;
	h->seq = 0x22;
}

static void sample_bitmap(struct lunfs_bitmap *b)
{
	memset(b, 0, sizeof(*b));
	b->cluster_index = 9;
	b->first_unit = 2 * LUNFS_BITMAP_BITS;
	b->seq = 0x33;
	for (unsigned i = 0; i < LUNFS_BITMAP_WORDS; i++) {
		b->words[i] = 0x0123456789abcdefull * (i + 1);
	}
}

static void sample_refcount(struct lunfs_refcount *r)
{
	memset(r, 0, sizeof(*r));
	r->cluster_index = 10;
	r->first_unit = 3 * LUNFS_REFCOUNTS_PER_BLOCK;
	r->seq = 0x44;
	for (unsigned i = 0; i < LUNFS_REFCOUNTS_PER_BLOCK; i++) {
		r->extra[i] = (uint16_t)(i * 31 + 1);
	}
}

static void sample_inode(struct lunfs_inode *n)
{
	memset(n, 0, sizeof(*n));
	n->ino = 0x10203;
	n->generation = 0x55;
	n->mode = S_IFREG | 0640;
	n->uid = 1000;
	n->gid = 1001;
	n->nlink = 2;
	n->flags = LUNFS_INODE_SNAPSHOT | LUNFS_INODE_MULTIWRITER;
	n->size = 0x123456789aull;
	n->alloc_bytes = 0x1234500000ull;
	n->atime_ns = 1;
	n->mtime_ns = 2;
	n->ctime_ns = 3;
	n->btime_ns = 4;
	n->parent_ino = 0x10;
	n->map_root = 0x77000ull;
	n->map_height = 3;
	n->map_unit = LUNFS_MAP_FILE;
	n->rdev = 0x0801;
	n->xattr_blk = 0x88000ull;
	n->version = 0x99;
	n->snap_parent = 0x111;
	n->snap_id = 0x222;
	n->snap_dir = 0x333;
	n->writer_slot = 12;
	n->writer_gen = 0x444;
	for (unsigned i = 0; i < LUNFS_INODE_INLINE_SIZE; i++) {
		n->inline_data[i] = (uint8_t)(i + 1);
	}
}

static void sample_map_leaf(struct lunfs_map_leaf *m)
{
	memset(m, 0, sizeof(*m));
	m->ino = 0x10203;
	m->first_lblk = 5ull * LUNFS_MAP_LEAF_FANOUT;
	m->seq = 0x66;
	for (unsigned i = 0; i < LUNFS_MAP_LEAF_FANOUT; i++) {
		if (i % 7 == 3) {
			continue; /* a hole */
		}
		m->e[i].addr = (0x100000ull + i) * 4096;
		m->e[i].flags = i % 2 ? LUNFS_MAPE_SHARED : 0;
		m->e[i].written = ~0ull / (i + 1);
	}
	/* The largest address the 52-bit field can hold. */
	m->e[0].addr = LUNFS_MAPE_ADDR_MASK * 4096;
}

static void sample_map_inner(struct lunfs_map_inner *m)
{
	memset(m, 0, sizeof(*m));
	m->ino = 0x10203;
	m->level = 3;
	m->first_lblk = 2 * map_span(3);
	m->seq = 0x67;
	for (unsigned i = 0; i < LUNFS_MAP_INNER_FANOUT; i++) {
		m->child[i] = i % 5 == 0 ? 0 : (0x200000ull + i) * 4096;
	}
}

static void sample_dir_table(struct lunfs_dir_table *t)
{
	memset(t, 0, sizeof(*t));
	t->ino = 0x10203;
	t->first_slot = 2ull * LUNFS_DIR_TABLE_SLOTS;
	t->seq = 0x68;
	for (unsigned i = 0; i < LUNFS_DIR_TABLE_SLOTS; i++) {
		t->leaf[i] = i % 3 == 0 ? 0 : LUNFS_DIR_FIRST_LEAF + i / 4;
	}
}

static const uint8_t dir_types[] = { 8, 4, 10, 1, 2, 6, 12 };

static void sample_dir_leaf(struct lunfs_dir_leaf *l, struct lunfs_dirent *ents, unsigned n)
{
	memset(l, 0, sizeof(*l));
	memset(ents, 0, n * sizeof(*ents));
	l->ino = 0x10203;
	l->seq = 0x69;
	l->local_depth = 3;
	l->prefix = 0xa000000000000000ull;
	l->next = LUNFS_DIR_FIRST_LEAF + 9;
	l->nentries = (uint16_t)n;
	l->ents = ents;
	for (unsigned i = 0; i < n; i++) {
		struct lunfs_dirent *e = &ents[i];

		e->hash = 0xa000000000000000ull + (uint64_t)(i / 2) * 0x1000; /* equal pairs */
		e->ino = 100 + i;
		e->type = dir_types[i % sizeof(dir_types)];
		e->name_len = (uint8_t)(1 + (i * 13) % 40);
		for (unsigned k = 0; k < e->name_len; k++) {
			e->name[k] = (char)('a' + (i + k) % 26);
		}
	}
}

static const uint8_t xattr_vals[64] = { 1, 2, 3, 0, 0, 4, 5, 0xff };

static void sample_xattr(struct lunfs_xattr_blk *b, struct lunfs_xattr *ents, unsigned n)
{
	memset(b, 0, sizeof(*b));
	memset(ents, 0, n * sizeof(*ents));
	b->ino = 0x10203;
	b->seq = 0x6a;
	b->next = 0xabc000;
	b->nentries = (uint16_t)n;
	b->ents = ents;
	for (unsigned i = 0; i < n; i++) {
		struct lunfs_xattr *e = &ents[i];

		e->ns = (uint8_t)(1 + i % 4);
		e->name_len = (uint8_t)(3 + i % 20);
		for (unsigned k = 0; k < e->name_len; k++) {
			e->name[k] = (char)('A' + (i + k) % 26);
		}
		e->value_len = (uint16_t)(i * 7 % sizeof(xattr_vals));
		e->value = xattr_vals;
	}
}

static void sample_symlink(struct lunfs_symlink_blk *s)
{
	memset(s, 0, sizeof(*s));
	s->ino = 0x10204;
	s->seq = 0x6b;
	s->len = LUNFS_BLOCK_PAYLOAD;
	for (unsigned i = 0; i < s->len; i++) {
		s->data[i] = (char)('a' + i % 26);
	}
}

static void sample_jsb(struct lunfs_jsb *j)
{
	jsb_init(j, 63, 16ull << 20);
	j->state = LUNFS_JOURNAL_DIRTY;
	j->owner_gen = 0x71;
	j->tail_seq = 0x72;
	j->tail_block = j->ring_first + j->ring_blocks - 1;
	j->norphans = 11;
	j->seq = 0x73;
}

static void sample_jorphan(struct lunfs_jorphan *o)
{
	memset(o, 0, sizeof(*o));
	o->slot = 63;
	o->first = 7ull * LUNFS_JORPHANS_PER_BLOCK;
	o->seq = 0x74;
	for (unsigned i = 0; i < LUNFS_JORPHANS_PER_BLOCK; i++) {
		o->ino[i] = i % 2 ? 0 : 1000 + i;
	}
}

static void sample_jdesc(struct lunfs_jdesc *d)
{
	memset(d, 0, sizeof(*d));
	d->seq = 0x75;
	d->slot = 63;
	d->index = 2;
	d->ndesc = 3;
	d->npayload = 250;
	d->ntags = LUNFS_JTAGS_PER_DESC;
	for (unsigned i = 0; i < d->ntags; i++) {
		d->tags[i].dest = 0x100000ull + i * 4096 + (i % 8) * 512;
		d->tags[i].len = 512u * (1 + i % 8);
		d->tags[i].payload_off = i * 4096;
	}
}

static void sample_jcommit(struct lunfs_jcommit *c)
{
	memset(c, 0, sizeof(*c));
	c->seq = 0x75;
	c->slot = 63;
	c->ndesc = 3;
	c->npayload = 250;
	c->body_crc = 0xcafef00du;
	c->commit_time_ns = 0x1700000000000005ull;
	c->writer_gen = 0x76;
}

/* --- the generic table ----------------------------------------------------- */

/* enc: encode the sample at addr. dec: decode; when it returns 0 and `cmp`,
 * assert that the result equals the sample field for field. */
struct codec_case {
	const char *name;
	size_t size;
	void (*enc)(const struct lunfs_codec *c, uint64_t addr, void *buf);
	int (*dec)(const struct lunfs_codec *c, const void *buf, uint64_t addr, bool cmp);
};

#define MEMCMP_EQ(a, b) ck_assert_int_eq(memcmp((a), (b), sizeof(*(a))), 0)

static void enc_hb(const struct lunfs_codec *c, uint64_t addr, void *buf)
{
	struct lunfs_hb_slot s;

	sample_hb(&s);
	hb_encode(c, &s, addr, buf);
}

static int dec_hb(const struct lunfs_codec *c, const void *buf, uint64_t addr, bool cmp)
{
	struct lunfs_hb_slot s, o;
	int ret = hb_decode(c, buf, addr, &o);

	if (ret == 0 && cmp) {
		sample_hb(&s);
		MEMCMP_EQ(&s, &o);
	}
	return ret;
}

static void enc_lock_x(const struct lunfs_codec *c, uint64_t addr, void *buf)
{
	struct lunfs_lock l;

	sample_lock(&l, true);
	lock_encode(c, &l, addr, buf);
}

static int dec_lock_x(const struct lunfs_codec *c, const void *buf, uint64_t addr, bool cmp)
{
	struct lunfs_lock l, o;
	int ret = lock_decode(c, buf, addr, &o);

	if (ret == 0 && cmp) {
		sample_lock(&l, true);
		MEMCMP_EQ(&l, &o);
	}
	return ret;
}

static void enc_lock_s(const struct lunfs_codec *c, uint64_t addr, void *buf)
{
	struct lunfs_lock l;

	sample_lock(&l, false);
	lock_encode(c, &l, addr, buf);
}

static int dec_lock_s(const struct lunfs_codec *c, const void *buf, uint64_t addr, bool cmp)
{
	struct lunfs_lock l, o;
	int ret = lock_decode(c, buf, addr, &o);

	if (ret == 0 && cmp) {
		sample_lock(&l, false);
		MEMCMP_EQ(&l, &o);
	}
	return ret;
}

static void enc_paxos(const struct lunfs_codec *c, uint64_t addr, void *buf)
{
	struct lunfs_paxos x;

	sample_paxos(&x);
	paxos_encode(c, &x, addr, buf);
}

static int dec_paxos(const struct lunfs_codec *c, const void *buf, uint64_t addr, bool cmp)
{
	struct lunfs_paxos x, o;
	int ret = paxos_decode(c, buf, addr, &o);

	if (ret == 0 && cmp) {
		sample_paxos(&x);
		MEMCMP_EQ(&x, &o);
	}
	return ret;
}

static void enc_paxos_leader(const struct lunfs_codec *c, uint64_t addr, void *buf)
{
	struct lunfs_paxos_leader x;

	sample_paxos_leader(&x);
	paxos_leader_encode(c, &x, addr, buf);
}

static int dec_paxos_leader(const struct lunfs_codec *c, const void *buf, uint64_t addr, bool cmp)
{
	struct lunfs_paxos_leader x, o;
	int ret = paxos_leader_decode(c, buf, addr, &o);

	if (ret == 0 && cmp) {
		sample_paxos_leader(&x);
		MEMCMP_EQ(&x, &o);
	}
	return ret;
}

static void enc_inode(const struct lunfs_codec *c, uint64_t addr, void *buf)
{
	struct lunfs_inode n;

	sample_inode(&n);
	inode_encode(c, &n, addr, buf);
}

static int dec_inode(const struct lunfs_codec *c, const void *buf, uint64_t addr, bool cmp)
{
	struct lunfs_inode n, o;
	int ret = inode_decode(c, buf, addr, 0x10203, &o);

	if (ret == 0 && cmp) {
		sample_inode(&n);
		MEMCMP_EQ(&n, &o);
	}
	return ret;
}

#define CLUSTER_CASE(T, NAME)                                                              \
	static void enc_cl_##NAME(const struct lunfs_codec *c, uint64_t addr, void *buf)   \
	{                                                                                  \
		struct lunfs_cluster_hdr h;                                                \
                                                                                           \
		sample_cluster_hdr(&h, T);                                                 \
		h.cluster_start = addr;                                                    \
		cluster_hdr_encode(c, &h, addr, buf);                                      \
	}                                                                                  \
	static int dec_cl_##NAME(const struct lunfs_codec *c, const void *buf, uint64_t addr, bool cmp) \
	{                                                                                  \
		struct lunfs_cluster_hdr h, o;                                             \
		int ret = cluster_hdr_decode(c, buf, addr, &o);                            \
                                                                                           \
		if (ret == 0 && cmp) {                                                     \
			sample_cluster_hdr(&h, T);                                         \
			h.cluster_start = addr;                                            \
			MEMCMP_EQ(&h, &o);                                                 \
		}                                                                          \
		return ret;                                                                \
	}
CLUSTER_CASE(LUNFS_CLUSTER_FILE, file)
CLUSTER_CASE(LUNFS_CLUSTER_META, meta)
CLUSTER_CASE(LUNFS_CLUSTER_INODE, inode)

/* Block codecs with the common void encode / int decode shape. */
#define BLOCK_CASE(NAME, TYPE, SAMPLE, ENC, DEC)                                           \
	static void enc_##NAME(const struct lunfs_codec *c, uint64_t addr, void *buf)      \
	{                                                                                  \
		TYPE *x = malloc(sizeof(*x));                                              \
                                                                                           \
		ck_assert_ptr_nonnull(x);                                                  \
		SAMPLE(x);                                                                 \
		ENC(c, x, addr, buf);                                                      \
		free(x);                                                                   \
	}                                                                                  \
	static int dec_##NAME(const struct lunfs_codec *c, const void *buf, uint64_t addr, bool cmp) \
	{                                                                                  \
		TYPE *x = malloc(sizeof(*x)), *o = malloc(sizeof(*o));                     \
		int ret;                                                                   \
                                                                                           \
		ck_assert_ptr_nonnull(x);                                                  \
		ck_assert_ptr_nonnull(o);                                                  \
		ret = DEC(c, buf, addr, o);                                                \
		if (ret == 0 && cmp) {                                                     \
			SAMPLE(x);                                                         \
			MEMCMP_EQ(x, o);                                                   \
		}                                                                          \
		free(x);                                                                   \
		free(o);                                                                   \
		return ret;                                                                \
	}
BLOCK_CASE(bitmap, struct lunfs_bitmap, sample_bitmap, bitmap_encode, bitmap_decode)
BLOCK_CASE(refcount, struct lunfs_refcount, sample_refcount, refcount_encode, refcount_decode)
BLOCK_CASE(map_leaf, struct lunfs_map_leaf, sample_map_leaf, map_leaf_encode, map_leaf_decode)
BLOCK_CASE(map_inner, struct lunfs_map_inner, sample_map_inner, map_inner_encode, map_inner_decode)
BLOCK_CASE(dir_table, struct lunfs_dir_table, sample_dir_table, dir_table_encode, dir_table_decode)
BLOCK_CASE(symlink, struct lunfs_symlink_blk, sample_symlink, symlink_blk_encode, symlink_blk_decode)
BLOCK_CASE(jorphan, struct lunfs_jorphan, sample_jorphan, jorphan_encode, jorphan_decode)
BLOCK_CASE(jdesc, struct lunfs_jdesc, sample_jdesc, jdesc_encode, jdesc_decode)
BLOCK_CASE(jcommit, struct lunfs_jcommit, sample_jcommit, jcommit_encode, jcommit_decode)

static int jsb_decode_16m(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_jsb *out)
{
	return jsb_decode(c, blk, addr, 16ull << 20, out);
}
BLOCK_CASE(jsb, struct lunfs_jsb, sample_jsb, jsb_encode, jsb_decode_16m)

/* Directory leaves and xattr blocks carry variable entries: compare those. */
static void enc_dir_leaf_n(const struct lunfs_codec *c, uint64_t addr, void *buf, unsigned n)
{
	struct lunfs_dirent ents[LUNFS_DIR_LEAF_MAX_ENTRIES];
	struct lunfs_dir_leaf l;

	sample_dir_leaf(&l, ents, n);
	ck_assert_int_eq(dir_leaf_encode(c, &l, addr, buf), 0);
}

static int dec_dir_leaf_n(const struct lunfs_codec *c, const void *buf, uint64_t addr, bool cmp, unsigned n)
{
	struct lunfs_dirent ents[LUNFS_DIR_LEAF_MAX_ENTRIES], oents[LUNFS_DIR_LEAF_MAX_ENTRIES];
	struct lunfs_dir_leaf l, o;
	int ret;

	memset(oents, 0, sizeof(oents));
	memset(&o, 0, sizeof(o));
	o.ents = oents;
	ret = dir_leaf_decode(c, buf, addr, &o);
	ck_assert_ptr_eq(o.ents, oents);
	if (ret == 0 && cmp) {
		sample_dir_leaf(&l, ents, n);
		l.ents = o.ents;
		MEMCMP_EQ(&l, &o);
		ck_assert_int_eq(memcmp(ents, oents, n * sizeof(ents[0])), 0);
	}
	return ret;
}

static void enc_dir_leaf(const struct lunfs_codec *c, uint64_t addr, void *buf)
{
	enc_dir_leaf_n(c, addr, buf, 60);
}

static int dec_dir_leaf(const struct lunfs_codec *c, const void *buf, uint64_t addr, bool cmp)
{
	return dec_dir_leaf_n(c, buf, addr, cmp, 60);
}

static void enc_xattr(const struct lunfs_codec *c, uint64_t addr, void *buf)
{
	struct lunfs_xattr ents[LUNFS_XATTR_MAX_ENTRIES];
	struct lunfs_xattr_blk b;

	sample_xattr(&b, ents, 40);
	ck_assert_int_eq(xattr_blk_encode(c, &b, addr, buf), 0);
}

static int dec_xattr(const struct lunfs_codec *c, const void *buf, uint64_t addr, bool cmp)
{
	struct lunfs_xattr ents[LUNFS_XATTR_MAX_ENTRIES], oents[LUNFS_XATTR_MAX_ENTRIES];
	struct lunfs_xattr_blk b, o;
	int ret;

	memset(&o, 0, sizeof(o));
	o.ents = oents;
	ret = xattr_blk_decode(c, buf, addr, &o);
	ck_assert_ptr_eq(o.ents, oents);
	if (ret == 0 && cmp) {
		sample_xattr(&b, ents, 40);
		ck_assert_uint_eq(o.ino, b.ino);
		ck_assert_uint_eq(o.seq, b.seq);
		ck_assert_uint_eq(o.next, b.next);
		ck_assert_uint_eq(o.nentries, b.nentries);
		for (unsigned i = 0; i < b.nentries; i++) {
			const uint8_t *lo = buf, *hi = lo + LUNFS_META_BLOCK_SIZE;

			ck_assert_uint_eq(oents[i].ns, ents[i].ns);
			ck_assert_uint_eq(oents[i].name_len, ents[i].name_len);
			ck_assert_str_eq(oents[i].name, ents[i].name);
			ck_assert_uint_eq(oents[i].value_len, ents[i].value_len);
			/* The value lies in the caller's buffer. */
			ck_assert(oents[i].value >= lo && oents[i].value + oents[i].value_len <= hi);
			ck_assert_int_eq(memcmp(oents[i].value, ents[i].value, ents[i].value_len), 0);
		}
	}
	return ret;
}

static const struct codec_case cases[] = {
	{ "hb", LUNFS_RECORD_SIZE, enc_hb, dec_hb },
	{ "lock-excl", LUNFS_RECORD_SIZE, enc_lock_x, dec_lock_x },
	{ "lock-multi", LUNFS_RECORD_SIZE, enc_lock_s, dec_lock_s },
	{ "paxos", LUNFS_RECORD_SIZE, enc_paxos, dec_paxos },
	{ "paxos-leader", LUNFS_RECORD_SIZE, enc_paxos_leader, dec_paxos_leader },
	{ "inode", LUNFS_RECORD_SIZE, enc_inode, dec_inode },
	{ "cluster-file", LUNFS_META_BLOCK_SIZE, enc_cl_file, dec_cl_file },
	{ "cluster-meta", LUNFS_META_BLOCK_SIZE, enc_cl_meta, dec_cl_meta },
	{ "cluster-inode", LUNFS_META_BLOCK_SIZE, enc_cl_inode, dec_cl_inode },
	{ "bitmap", LUNFS_META_BLOCK_SIZE, enc_bitmap, dec_bitmap },
	{ "refcount", LUNFS_META_BLOCK_SIZE, enc_refcount, dec_refcount },
	{ "map-leaf", LUNFS_META_BLOCK_SIZE, enc_map_leaf, dec_map_leaf },
	{ "map-inner", LUNFS_META_BLOCK_SIZE, enc_map_inner, dec_map_inner },
	{ "dir-table", LUNFS_META_BLOCK_SIZE, enc_dir_table, dec_dir_table },
	{ "dir-leaf", LUNFS_META_BLOCK_SIZE, enc_dir_leaf, dec_dir_leaf },
	{ "xattr", LUNFS_META_BLOCK_SIZE, enc_xattr, dec_xattr },
	{ "symlink", LUNFS_META_BLOCK_SIZE, enc_symlink, dec_symlink },
	{ "jsb", LUNFS_META_BLOCK_SIZE, enc_jsb, dec_jsb },
	{ "jorphan", LUNFS_META_BLOCK_SIZE, enc_jorphan, dec_jorphan },
	{ "jdesc", LUNFS_META_BLOCK_SIZE, enc_jdesc, dec_jdesc },
	{ "jcommit", LUNFS_META_BLOCK_SIZE, enc_jcommit, dec_jcommit },
};
#define NCASES ((int)(sizeof(cases) / sizeof(cases[0])))

static uint64_t case_addr(const struct codec_case *k)
{
	return k->size == LUNFS_RECORD_SIZE ? REC_ADDR : BLK_ADDR;
}

/* Round trip, and the encoder writes every byte (no stale buffer content). */
START_TEST(test_roundtrip)
{
	const struct codec_case *k = &cases[_i];
	struct lunfs_codec c;
	uint8_t *a = malloc(k->size), *b = malloc(k->size);

	codec_init(&c, 0x10);
	memset(a, 0x00, k->size);
	memset(b, 0xa5, k->size);
	k->enc(&c, case_addr(k), a);
	k->enc(&c, case_addr(k), b);
	ck_assert_msg(memcmp(a, b, k->size) == 0, "%s: encoder leaves bytes unset", k->name);
	ck_assert_msg(k->dec(&c, a, case_addr(k), true) == 0, "%s: round trip", k->name);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_corruption)
{
	const struct codec_case *k = &cases[_i];
	struct lunfs_codec c, other;
	uint8_t *a = malloc(k->size), *z = calloc(1, k->size);

	codec_init(&c, 0x10);
	codec_init(&other, 0x20);
	k->enc(&c, case_addr(k), a);
	/* Every single byte flip is caught by the checksum. */
	for (size_t off = 0; off < k->size; off++) {
		a[off] ^= 0x01;
		ck_assert_msg(k->dec(&c, a, case_addr(k), false) == -EUCLEAN, "%s: flip at %zu",
			      k->name, off);
		a[off] ^= 0x01;
	}
	ck_assert_int_eq(k->dec(&c, a, case_addr(k), true), 0);
	ck_assert_int_eq(k->dec(&c, a, case_addr(k) + k->size, false), -EUCLEAN);
	ck_assert_int_eq(k->dec(&c, a, 0, false), -EUCLEAN);
	ck_assert_int_eq(k->dec(&other, a, case_addr(k), false), -ESTALE);
	ck_assert_int_eq(k->dec(&c, z, case_addr(k), false), -ENODATA);
	/* Another volume's structure is stale wherever it lies: an earlier
	 * mkfs with another geometry left structures at every address. */
	ck_assert_int_eq(k->dec(&other, a, case_addr(k) + k->size, false), -ESTALE);
	/* A wrong version is corruption even with a good crc. */
	put16(a, 4, 2);
	if (k->size == LUNFS_RECORD_SIZE) {
		reseal_rec(a);
	} else {
		reseal_blk(a);
	}
	ck_assert_int_eq(k->dec(&c, a, case_addr(k), false), -EUCLEAN);
	free(a);
	free(z);
}
END_TEST

/* Blocks: a block of one kind never decodes as another. */
START_TEST(test_wrong_magic)
{
	const struct codec_case *k = &cases[_i];
	struct lunfs_codec c;
	uint8_t *a = malloc(k->size);

	codec_init(&c, 0x10);
	k->enc(&c, case_addr(k), a);
	for (int j = 0; j < NCASES; j++) {
		int ret;

		if (cases[j].size != k->size || cases[j].dec == k->dec ||
		    strncmp(cases[j].name, k->name, 4) == 0) {
			continue;
		}
		ret = cases[j].dec(&c, a, case_addr(k), false);
		ck_assert_msg(ret == -EUCLEAN, "%s decoded as %s: %d", k->name, cases[j].name, ret);
	}
	free(a);
}
END_TEST

START_TEST(test_hmac)
{
	const struct codec_case *k = &cases[_i];
	struct lunfs_codec plain, kc, kc2;
	uint8_t *a;

	if (k->size != LUNFS_RECORD_SIZE) {
		return;
	}
	a = malloc(k->size);
	codec_init(&plain, 0x10);
	kc = plain;
	kc.have_hmac = true;
	for (unsigned i = 0; i < 32; i++) {
		kc.hmac_key[i] = (uint8_t)(i * 3 + 1);
	}
	kc2 = kc;
	kc2.hmac_key[31] ^= 0x80;

	k->enc(&kc, REC_ADDR, a);
	ck_assert(!buf_is_zero(a + LUNFS_RECORD_TAIL_OFFSET, 32));
	ck_assert_int_eq(k->dec(&kc, a, REC_ADDR, true), 0);
	ck_assert_int_eq(k->dec(&kc2, a, REC_ADDR, false), -EUCLEAN);
	/* Without the key the HMAC is not looked at (read-only tools). */
	ck_assert_int_eq(k->dec(&plain, a, REC_ADDR, true), 0);
	/* A forged body with a recomputed crc fails the HMAC. */
	a[40] ^= 0x01;
	reseal_rec(a);
	ck_assert_int_eq(k->dec(&kc, a, REC_ADDR, false), -EUCLEAN);

	/* Sealed without a key: no HMAC, rejected by a keyed codec. */
	k->enc(&plain, REC_ADDR, a);
	ck_assert(buf_is_zero(a + LUNFS_RECORD_TAIL_OFFSET, 32));
	ck_assert_int_eq(k->dec(&kc, a, REC_ADDR, false), -EUCLEAN);
	ck_assert_int_eq(k->dec(&plain, a, REC_ADDR, true), 0);
	free(a);
}
END_TEST

/* --- superblock ------------------------------------------------------------ */

START_TEST(test_sb_roundtrip)
{
	struct lunfs_super sb, o;
	uint8_t buf[4096];
	uint64_t backup;

	sample_sb(&sb);
	backup = sb_backup_addr(sb.volume_size);
	sb_encode(&sb, LUNFS_SB_OFFSET, buf);
	ck_assert_int_eq(sb_decode(buf, LUNFS_SB_OFFSET, &o), 0);
	MEMCMP_EQ(&sb, &o);
	ck_assert_int_eq(sb_decode(buf, backup, &o), -EUCLEAN);

	sb_encode(&sb, backup, buf);
	ck_assert_int_eq(sb_decode(buf, backup, &o), 0);
	ck_assert_uint_eq(o.flags, LUNFS_SB_FLAG_BACKUP);
	o.flags = 0;
	MEMCMP_EQ(&sb, &o);
	ck_assert_int_eq(sb_decode(buf, LUNFS_SB_OFFSET, &o), -EUCLEAN);
	/* Backup flag set but at an address that is not the backup's. */
	sb_encode(&sb, backup - 4096, buf);
	ck_assert_int_eq(sb_decode(buf, backup - 4096, &o), -EUCLEAN);

	/* A 64-byte label has no NUL on disk. */
	memset(sb.label, 'L', 64);
	sb.label[64] = '\0';
	sb_encode(&sb, LUNFS_SB_OFFSET, buf);
	ck_assert_int_eq(sb_decode(buf, LUNFS_SB_OFFSET, &o), 0);
	ck_assert_uint_eq(strlen(o.label), 64);
	MEMCMP_EQ(&sb, &o);
}
END_TEST

START_TEST(test_sb_errors)
{
	struct lunfs_super sb, o;
	uint8_t buf[4096], z[4096];

	sample_sb(&sb);
	memset(z, 0, sizeof(z));
	ck_assert_int_eq(sb_decode(z, LUNFS_SB_OFFSET, &o), -ENODATA);
	sb_encode(&sb, LUNFS_SB_OFFSET, buf);
	for (size_t off = 0; off < sizeof(buf); off++) {
		buf[off] ^= 0x10;
		ck_assert_int_eq(sb_decode(buf, LUNFS_SB_OFFSET, &o), -EUCLEAN);
		buf[off] ^= 0x10;
	}
	/* Major 2 with a valid crc: not ours. */
	put16(buf, 8, 2);
	reseal_blk(buf);
	ck_assert_int_eq(sb_decode(buf, LUNFS_SB_OFFSET, &o), -EPROTONOSUPPORT);
	/* Garbage after the label's NUL. */
	sb_encode(&sb, LUNFS_SB_OFFSET, buf);
	buf[56 + 63] = 'x';
	reseal_blk(buf);
	ck_assert_int_eq(sb_decode(buf, LUNFS_SB_OFFSET, &o), -EUCLEAN);
	/* Geometry is checked too: a region moved by 4 KiB. */
	sb_encode(&sb, LUNFS_SB_OFFSET, buf);
	put64(buf, 216 + 16 * 2, sb.regions[2].offset + 4096);
	reseal_blk(buf);
	ck_assert_int_eq(sb_decode(buf, LUNFS_SB_OFFSET, &o), -EUCLEAN);
	/* A root_ino that is not an inode slot. */
	sb.root_ino = 0;
	sb_encode(&sb, LUNFS_SB_OFFSET, buf);
	ck_assert_int_eq(sb_decode(buf, LUNFS_SB_OFFSET, &o), -EUCLEAN);
}
END_TEST

START_TEST(test_sb_features_codec)
{
	struct lunfs_super sb;
	struct lunfs_codec c;
	uint32_t unk = 0;

	sample_sb(&sb);
	/* HMAC and encryption are not implemented yet: such volumes are refused. */
	ck_assert_uint_ne(sb.feat_incompat & LUNFS_FEAT_INCOMPAT_HMAC, 0);
	ck_assert_int_eq(sb_features_check(&sb, false, &unk), -EOPNOTSUPP);
	ck_assert_uint_eq(unk & LUNFS_FEAT_INCOMPAT_HMAC, LUNFS_FEAT_INCOMPAT_HMAC);
	uint32_t hmac_incompat = sb.feat_incompat;
	sb.feat_incompat = 0;
	ck_assert_int_eq(sb_features_check(&sb, true, &unk), 0);
	ck_assert_uint_eq(unk, 0);
	sb.feat_ro_compat = 1u << 7;
	ck_assert_int_eq(sb_features_check(&sb, false, &unk), 0);
	ck_assert_int_eq(sb_features_check(&sb, true, &unk), -EOPNOTSUPP);
	ck_assert_uint_eq(unk, 1u << 7);
	sb.feat_incompat |= 1u << 9;
	ck_assert_int_eq(sb_features_check(&sb, false, &unk), -EOPNOTSUPP);
	ck_assert_uint_eq(unk, 1u << 9);
	ck_assert_int_eq(sb_features_check(&sb, false, NULL), -EOPNOTSUPP);

	sb.feat_incompat = hmac_incompat;
	sb_codec(&sb, &c);
	ck_assert(c.have_hmac);
	ck_assert_int_eq(memcmp(c.uuid, sb.uuid, 16), 0);
	ck_assert(buf_is_zero(c.hmac_key, sizeof(c.hmac_key)));
	sb.feat_incompat = 0;
	sb_codec(&sb, &c);
	ck_assert(!c.have_hmac);
	ck_assert_uint_eq(sb_backup_addr(1 << 20), (1 << 20) - 4096);
	ck_assert_uint_eq(sb_backup_addr((1 << 20) + 4095), (1 << 20) - 4096);
	ck_assert_uint_eq(sb_backup_addr(8191), 0);
}
END_TEST

/* --- semantic checks, with the checksum recomputed ------------------------- */

START_TEST(test_hb_semantic)
{
	struct lunfs_codec c;
	struct lunfs_hb_slot s, o;
	uint8_t buf[512];

	codec_init(&c, 0x10);
	sample_hb(&s);
	s.dead_timeout_ms = 3 * s.hb_interval_ms + 2 * s.io_deadline_ms - 1;
	hb_encode(&c, &s, REC_ADDR, buf);
	ck_assert_int_eq(hb_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
	/* A free slot's timing is not judged. */
	s.state = LUNFS_HB_FREE;
	hb_encode(&c, &s, REC_ADDR, buf);
	ck_assert_int_eq(hb_decode(&c, buf, REC_ADDR, &o), 0);
	sample_hb(&s);
	s.state = 5;
	hb_encode(&c, &s, REC_ADDR, buf);
	ck_assert_int_eq(hb_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
	sample_hb(&s);
	s.requests[3].target_slot = LUNFS_HOSTS_MAX + 1;
	hb_encode(&c, &s, REC_ADDR, buf);
	ck_assert_int_eq(hb_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
	/* Host name: 64 bytes without NUL is fine, garbage after NUL is not. */
	sample_hb(&s);
	memset(s.host_name, 'h', 64);
	s.host_name[64] = '\0';
	hb_encode(&c, &s, REC_ADDR, buf);
	ck_assert_int_eq(hb_decode(&c, buf, REC_ADDR, &o), 0);
	ck_assert_uint_eq(strlen(o.host_name), 64);
	sample_hb(&s);
	hb_encode(&c, &s, REC_ADDR, buf);
	buf[72 + 63] = 'z';
	reseal_rec(buf);
	ck_assert_int_eq(hb_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
	ck_assert(buf_is_zero(&o, sizeof(o)));
}
END_TEST

START_TEST(test_lock_semantic)
{
	struct lunfs_codec c;
	struct lunfs_lock l, o;
	struct lunfs_cluster_summary cs;
	uint8_t buf[512];

	codec_init(&c, 0x10);
	sample_lock(&l, false);
	ck_assert_uint_eq(l.nholders, 3);
	ck_assert(lock_holder_test(&l, 9));
	ck_assert(!lock_holder_test(&l, 8));
	ck_assert(!lock_holder_test(&l, 5000));
	lock_holder_set(&l, 9, true);
	ck_assert_uint_eq(l.nholders, 3);
	lock_holder_set(&l, 9, false);
	lock_holder_set(&l, 9, false);
	ck_assert_uint_eq(l.nholders, 2);
	lock_summary_get(&l, &cs);
	ck_assert_uint_eq(cs.type, LUNFS_CLUSTER_FILE);
	ck_assert_uint_eq(cs.units_total, 1024);
	ck_assert_uint_eq(cs.units_free, 999);
	ck_assert_uint_eq(cs.updated_seq, 77);

	l.nholders = 3; /* popcount is 2 */
	lock_encode(&c, &l, REC_ADDR, buf);
	ck_assert_int_eq(lock_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
	sample_lock(&l, false);
	l.owner_slot = 4; /* MULTIWRITER has no owner */
	lock_encode(&c, &l, REC_ADDR, buf);
	ck_assert_int_eq(lock_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
	sample_lock(&l, true);
	l.owner_slot = 0; /* EXCLUSIVE needs one */
	lock_encode(&c, &l, REC_ADDR, buf);
	ck_assert_int_eq(lock_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
	sample_lock(&l, true);
	lock_holder_set(&l, 1, true); /* EXCLUSIVE has no holders */
	lock_encode(&c, &l, REC_ADDR, buf);
	ck_assert_int_eq(lock_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
	memset(&l, 0, sizeof(l)); /* FREE, nothing set */
	lock_encode(&c, &l, REC_ADDR, buf);
	ck_assert_int_eq(lock_decode(&c, buf, REC_ADDR, &o), 0);
	l.mode = 4;
	lock_encode(&c, &l, REC_ADDR, buf);
	ck_assert_int_eq(lock_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
}
END_TEST

START_TEST(test_paxos_semantic)
{
	struct lunfs_codec c;
	struct lunfs_paxos x, o;
	uint8_t buf[512];

	codec_init(&c, 0x10);
	sample_paxos(&x);
	x.bal = x.mbal + 1;
	paxos_encode(&c, &x, REC_ADDR, buf);
	ck_assert_int_eq(paxos_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
	sample_paxos(&x);
	x.instance = LUNFS_PAXOS_INSTANCES_MAX;
	paxos_encode(&c, &x, REC_ADDR, buf);
	ck_assert_int_eq(paxos_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
}
END_TEST

START_TEST(test_paxos_leader_semantic)
{
	struct lunfs_codec c;
	struct lunfs_paxos_leader x, o;
	struct lunfs_paxos px;
	uint8_t buf[512];

	codec_init(&c, 0x10);
	/* An owner needs a round. */
	sample_paxos_leader(&x);
	x.round = 0;
	paxos_leader_encode(&c, &x, REC_ADDR, buf);
	ck_assert_int_eq(paxos_leader_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
	sample_paxos_leader(&x);
	x.owner_slot = LUNFS_HOSTS_MAX + 1;
	paxos_leader_encode(&c, &x, REC_ADDR, buf);
	ck_assert_int_eq(paxos_leader_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
	/* released is a byte that must be 0 or 1. */
	sample_paxos_leader(&x);
	paxos_leader_encode(&c, &x, REC_ADDR, buf);
	buf[58] = 2;
	rec_seal(&c, buf, LUNFS_PAXOS_LEADER_MAGIC, 0, REC_ADDR);
	ck_assert_int_eq(paxos_leader_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
	/* A host block is not a leader, nor the other way round. */
	sample_paxos(&px);
	paxos_encode(&c, &px, REC_ADDR, buf);
	ck_assert_int_eq(paxos_leader_decode(&c, buf, REC_ADDR, &o), -EUCLEAN);
	sample_paxos_leader(&x);
	paxos_leader_encode(&c, &x, REC_ADDR, buf);
	ck_assert_int_eq(paxos_decode(&c, buf, REC_ADDR, &px), -EUCLEAN);
}
END_TEST

START_TEST(test_inode_semantic)
{
	struct lunfs_codec c;
	struct lunfs_inode n, o;
	struct lunfs_dir_state ds = { .global_depth = 5, .nentries = 1234, .next_lblk = 4100, .nleaves = 9 };
	struct lunfs_dir_state ds2;
	uint8_t buf[512];

	codec_init(&c, 0x10);
	sample_inode(&n);
	inode_encode(&c, &n, REC_ADDR, buf);
	ck_assert_int_eq(inode_decode(&c, buf, REC_ADDR, n.ino + 1, &o), -EUCLEAN);
	ck_assert_int_eq(inode_decode(&c, buf, REC_ADDR, n.ino, &o), 0);

	n.mode = 0170000 | 0644; /* not a file type */
	inode_encode(&c, &n, REC_ADDR, buf);
	ck_assert_int_eq(inode_decode(&c, buf, REC_ADDR, 0, &o), -EUCLEAN);
	sample_inode(&n);
	n.map_height = LUNFS_MAP_MAX_HEIGHT + 1;
	inode_encode(&c, &n, REC_ADDR, buf);
	ck_assert_int_eq(inode_decode(&c, buf, REC_ADDR, 0, &o), -EUCLEAN);
	sample_inode(&n);
	n.map_root = 0; /* height without a root */
	inode_encode(&c, &n, REC_ADDR, buf);
	ck_assert_int_eq(inode_decode(&c, buf, REC_ADDR, 0, &o), -EUCLEAN);
	n.map_height = 0;
	inode_encode(&c, &n, REC_ADDR, buf);
	ck_assert_int_eq(inode_decode(&c, buf, REC_ADDR, 0, &o), 0);
	sample_inode(&n);
	n.map_unit = 2;
	inode_encode(&c, &n, REC_ADDR, buf);
	ck_assert_int_eq(inode_decode(&c, buf, REC_ADDR, 0, &o), -EUCLEAN);
	sample_inode(&n);
	n.ino = 0;
	inode_encode(&c, &n, REC_ADDR, buf);
	ck_assert_int_eq(inode_decode(&c, buf, REC_ADDR, 0, &o), -EUCLEAN);

	sample_inode(&n);
	n.mode = S_IFDIR | 0755;
	inode_dir_state_set(&n, &ds);
	inode_encode(&c, &n, REC_ADDR, buf);
	ck_assert_int_eq(inode_decode(&c, buf, REC_ADDR, 0, &o), 0);
	inode_dir_state_get(&o, &ds2);
	ck_assert_uint_eq(ds2.global_depth, ds.global_depth);
	ck_assert_uint_eq(ds2.nentries, ds.nentries);
	ck_assert_uint_eq(ds2.next_lblk, ds.next_lblk);
	ck_assert_uint_eq(ds2.nleaves, ds.nleaves);
	ck_assert(buf_is_zero(o.inline_data + 32, LUNFS_INODE_INLINE_SIZE - 32));
}
END_TEST

START_TEST(test_cluster_semantic)
{
	struct lunfs_codec c;
	struct lunfs_cluster_hdr h, o;
	struct lunfs_super sb;
	uint8_t buf[4096];

	codec_init(&c, 0x10);
	sample_sb(&sb);
	ck_assert_int_eq(cluster_geometry(&sb, LUNFS_CLUSTER_FREE, &h), -EINVAL);
	ck_assert_int_eq(cluster_geometry(&sb, 4, &h), -EINVAL);

	/* The geometry relations, independently. */
	ck_assert_int_eq(cluster_geometry(&sb, LUNFS_CLUSTER_FILE, &h), 0);
	ck_assert_uint_eq(h.unit_size, sb.file_block_size);
	ck_assert_uint_eq(h.units_total, sb.cluster_size / sb.file_block_size);
	ck_assert_uint_eq(h.bitmap_blocks, (h.units_total + LUNFS_BITMAP_BITS - 1) / LUNFS_BITMAP_BITS);
	ck_assert_uint_eq(h.refcount_blocks,
			  (h.units_total + LUNFS_REFCOUNTS_PER_BLOCK - 1) / LUNFS_REFCOUNTS_PER_BLOCK);
	ck_assert_uint_eq(h.header_units, ((1 + h.bitmap_blocks + h.refcount_blocks) * 4096ull +
					   h.unit_size - 1) / h.unit_size);
	ck_assert_uint_eq(h.units_free, h.units_total - h.header_units);
	ck_assert_int_eq(cluster_geometry(&sb, LUNFS_CLUSTER_META, &h), 0);
	ck_assert_uint_eq(h.unit_size, 4096);
	ck_assert_uint_eq(h.refcount_blocks, 0);
	ck_assert_uint_eq(h.header_units, 1 + h.bitmap_blocks);
	ck_assert_int_eq(cluster_geometry(&sb, LUNFS_CLUSTER_INODE, &h), 0);
	ck_assert_uint_eq(h.unit_size, sb.inode_slot_size);

	sample_cluster_hdr(&h, LUNFS_CLUSTER_FILE);
	h.header_units++;
	cluster_hdr_encode(&c, &h, BLK_ADDR, buf);
	ck_assert_int_eq(cluster_hdr_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	sample_cluster_hdr(&h, LUNFS_CLUSTER_FILE);
	h.units_free = h.units_total - h.header_units + 1;
	cluster_hdr_encode(&c, &h, BLK_ADDR, buf);
	ck_assert_int_eq(cluster_hdr_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	sample_cluster_hdr(&h, LUNFS_CLUSTER_FILE);
	h.cluster_start = BLK_ADDR + 4096;
	cluster_hdr_encode(&c, &h, BLK_ADDR, buf);
	ck_assert_int_eq(cluster_hdr_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	sample_cluster_hdr(&h, LUNFS_CLUSTER_META);
	h.refcount_blocks = 1;
	cluster_hdr_encode(&c, &h, BLK_ADDR, buf);
	ck_assert_int_eq(cluster_hdr_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	sample_cluster_hdr(&h, LUNFS_CLUSTER_META);
	h.units_total = 1ull << 40; /* 4 PiB cluster */
	cluster_hdr_encode(&c, &h, BLK_ADDR, buf);
	ck_assert_int_eq(cluster_hdr_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	sample_cluster_hdr(&h, LUNFS_CLUSTER_FILE);
	h.type = 0;
	cluster_hdr_encode(&c, &h, BLK_ADDR, buf);
	ck_assert_int_eq(cluster_hdr_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
}
END_TEST

START_TEST(test_map_semantic)
{
	struct lunfs_codec c;
	struct lunfs_map_leaf *l = malloc(sizeof(*l)), *lo = malloc(sizeof(*lo));
	struct lunfs_map_inner *n = malloc(sizeof(*n)), *no = malloc(sizeof(*no));
	uint8_t buf[4096];

	ck_assert_uint_eq(map_span(0), 1);
	ck_assert_uint_eq(map_span(1), 251);
	ck_assert_uint_eq(map_span(2), 251ull * 503);
	ck_assert_uint_eq(map_span(4), 251ull * 503 * 503 * 503);
	ck_assert_uint_eq(map_span(6), 251ull * 503 * 503 * 503 * 503 * 503);
	ck_assert_uint_eq(map_span(7), 251ull * 503 * 503 * 503 * 503 * 503 * 503);
	ck_assert_uint_eq(map_span(8), UINT64_MAX);
	ck_assert_uint_eq(map_span(100), UINT64_MAX);

	codec_init(&c, 0x10);
	/* The peeks read what the encoder wrote, field by field. */
	sample_map_leaf(l);
	map_leaf_encode(&c, l, BLK_ADDR, buf);
	ck_assert_uint_eq(map_node_peek_id(buf).ino, l->ino);
	ck_assert_uint_eq(map_node_peek_id(buf).first_lblk, l->first_lblk);
	ck_assert_uint_eq(map_node_peek_id(buf).level, 0);
	for (unsigned i = 0; i < LUNFS_MAP_LEAF_FANOUT; i++) {
		struct lunfs_map_entry e = map_leaf_peek(buf, i);

		ck_assert_uint_eq(e.addr, l->e[i].addr);
		ck_assert_uint_eq(e.flags, l->e[i].flags);
		ck_assert_uint_eq(e.written, l->e[i].written);
	}
	sample_map_inner(n);
	map_inner_encode(&c, n, BLK_ADDR, buf);
	ck_assert_uint_eq(map_node_peek_id(buf).ino, n->ino);
	ck_assert_uint_eq(map_node_peek_id(buf).first_lblk, n->first_lblk);
	ck_assert_uint_eq(map_node_peek_id(buf).level, n->level);
	for (unsigned i = 0; i < LUNFS_MAP_INNER_FANOUT; i++) {
		ck_assert_uint_eq(map_inner_peek(buf, i), n->child[i]);
	}

	sample_map_leaf(l);
	l->first_lblk += 1;
	map_leaf_encode(&c, l, BLK_ADDR, buf);
	ck_assert_int_eq(map_leaf_decode(&c, buf, BLK_ADDR, lo), -EUCLEAN);
	sample_map_leaf(l);
	map_leaf_encode(&c, l, BLK_ADDR, buf);
	put64(buf, 64 + 16 * 3 + 8, 1); /* written bits on a hole */
	reseal_blk(buf);
	ck_assert_int_eq(map_leaf_decode(&c, buf, BLK_ADDR, lo), -EUCLEAN);
	map_leaf_encode(&c, l, BLK_ADDR, buf);
	put64(buf, 64 + 16 * 4, 0x100004ull | (1ull << 60)); /* unknown flag */
	reseal_blk(buf);
	ck_assert_int_eq(map_leaf_decode(&c, buf, BLK_ADDR, lo), -EUCLEAN);

	sample_map_inner(n);
	n->level = 1;
	map_inner_encode(&c, n, BLK_ADDR, buf);
	ck_assert_int_eq(map_inner_decode(&c, buf, BLK_ADDR, no), -EUCLEAN);
	n->level = LUNFS_MAP_MAX_HEIGHT + 1;
	map_inner_encode(&c, n, BLK_ADDR, buf);
	ck_assert_int_eq(map_inner_decode(&c, buf, BLK_ADDR, no), -EUCLEAN);
	sample_map_inner(n);
	n->child[7] += 512;
	map_inner_encode(&c, n, BLK_ADDR, buf);
	ck_assert_int_eq(map_inner_decode(&c, buf, BLK_ADDR, no), -EUCLEAN);
	sample_map_inner(n);
	n->first_lblk = map_span(2);
	map_inner_encode(&c, n, BLK_ADDR, buf);
	ck_assert_int_eq(map_inner_decode(&c, buf, BLK_ADDR, no), -EUCLEAN);
	free(l);
	free(lo);
	free(n);
	free(no);
}
END_TEST

START_TEST(test_siphash)
{
	uint8_t key[16], msg[64];

	for (unsigned i = 0; i < sizeof(key); i++) {
		key[i] = (uint8_t)i;
	}
	for (unsigned i = 0; i < sizeof(msg); i++) {
		msg[i] = (uint8_t)i;
	}
	/* SipHash paper, appendix A. */
	ck_assert_uint_eq(dir_name_hash(key, (const char *)msg, 15), 0xa129ca6149be45e5ull);
	/* Reference implementation's vectors (bytes read little-endian),
	 * message lengths 0, 1, 7 and 8. */
	ck_assert_uint_eq(dir_name_hash(key, (const char *)msg, 0), 0x726fdb47dd0e0e31ull);
	ck_assert_uint_eq(dir_name_hash(key, (const char *)msg, 1), 0x74f839c593dc67fdull);
	ck_assert_uint_eq(dir_name_hash(key, (const char *)msg, 7), 0xab0200f58b01d137ull);
	ck_assert_uint_eq(dir_name_hash(key, (const char *)msg, 8), 0x93f5f5799a932462ull);
	/* The key matters. */
	key[0] ^= 1;
	ck_assert_uint_ne(dir_name_hash(key, (const char *)msg, 15), 0xa129ca6149be45e5ull);
}
END_TEST

START_TEST(test_dir_leaf)
{
	struct lunfs_codec c;
	struct lunfs_dirent ents[LUNFS_DIR_LEAF_MAX_ENTRIES + 1], oents[LUNFS_DIR_LEAF_MAX_ENTRIES];
	struct lunfs_dir_leaf l, o;
	uint8_t buf[4096];

	codec_init(&c, 0x10);
	ck_assert_uint_eq(dirent_rec_len(1), 32);
	ck_assert_uint_eq(dirent_rec_len(8), 32);
	ck_assert_uint_eq(dirent_rec_len(9), 40);
	ck_assert_uint_eq(dirent_rec_len(255), 280);
	ck_assert_uint_eq(dirent_rec_len(UINT32_MAX), UINT32_MAX);
	ck_assert_uint_eq(LUNFS_DIR_LEAF_MAX_ENTRIES, LUNFS_DIR_LEAF_DATA / dirent_rec_len(1));

	/* Full leaf of one-byte names; one more does not fit. */
	sample_dir_leaf(&l, ents, LUNFS_DIR_LEAF_MAX_ENTRIES);
	for (unsigned i = 0; i < LUNFS_DIR_LEAF_MAX_ENTRIES; i++) {
		ents[i].name_len = 1;
		memset(ents[i].name, 0, sizeof(ents[i].name));
		ents[i].name[0] = 'x';
	}
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), 0);
	o.ents = oents;
	ck_assert_int_eq(dir_leaf_decode(&c, buf, BLK_ADDR, &o), 0);
	ck_assert_uint_eq(o.nentries, LUNFS_DIR_LEAF_MAX_ENTRIES);
	ck_assert_int_eq(memcmp(ents, oents, LUNFS_DIR_LEAF_MAX_ENTRIES * sizeof(ents[0])), 0);
	l.nentries++;
	ents[LUNFS_DIR_LEAF_MAX_ENTRIES] = ents[LUNFS_DIR_LEAF_MAX_ENTRIES - 1];
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), -ENOSPC);

	/* Long names: 14 of 255 bytes fit (14 * 280 = 3920), 15 do not. */
	sample_dir_leaf(&l, ents, 15);
	for (unsigned i = 0; i < 15; i++) {
		ents[i].name_len = 255;
		memset(ents[i].name, 'n', 255);
	}
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), -ENOSPC);
	l.nentries = 14;
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), 0);
	ck_assert_int_eq(dir_leaf_decode(&c, buf, BLK_ADDR, &o), 0);
	ck_assert_uint_eq(o.ents[13].name_len, 255);
	ck_assert_uint_eq(strlen(o.ents[13].name), 255);

	/* Encoder refuses what the decoder would refuse. */
	sample_dir_leaf(&l, ents, 4);
	ents[2].hash = ents[1].hash - 1;
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), -EINVAL);
	sample_dir_leaf(&l, ents, 4);
	ents[1].name_len = 1;
	ents[1].name[0] = '.';
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), -EINVAL);
	sample_dir_leaf(&l, ents, 4);
	ents[1].name_len = 2;
	ents[1].name[0] = '.';
	ents[1].name[1] = '.';
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), -EINVAL);
	sample_dir_leaf(&l, ents, 4);
	ents[1].name[0] = '/';
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), -EINVAL);
	sample_dir_leaf(&l, ents, 4);
	ents[1].name_len = 0;
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), -EINVAL);
	sample_dir_leaf(&l, ents, 4);
	ents[1].ino = 0;
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), -EINVAL);

	/* Decoder: each field edited, crc recomputed. Entry 0 is at 96. */
	sample_dir_leaf(&l, ents, 4);
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), 0);
	put16(buf, 96 + 16, 8); /* rec_len smaller than the head */
	reseal_blk(buf);
	ck_assert_int_eq(dir_leaf_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	ck_assert_ptr_eq(o.ents, oents);
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), 0);
	put32(buf, 68, 4000); /* used beyond data[] */
	reseal_blk(buf);
	ck_assert_int_eq(dir_leaf_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), 0);
	put16(buf, 66, 5); /* more entries than used holds */
	reseal_blk(buf);
	ck_assert_int_eq(dir_leaf_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), 0);
	put16(buf, 66, 3); /* fewer entries than used holds */
	reseal_blk(buf);
	ck_assert_int_eq(dir_leaf_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), 0);
	put64(buf, 96, ~0ull); /* first hash above the second */
	reseal_blk(buf);
	ck_assert_int_eq(dir_leaf_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), 0);
	buf[96 + 24] = '\0'; /* NUL inside a name */
	reseal_blk(buf);
	ck_assert_int_eq(dir_leaf_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), 0);
	put16(buf, 64, LUNFS_DIR_MAX_DEPTH + 1);
	reseal_blk(buf);
	ck_assert_int_eq(dir_leaf_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), 0);
	put64(buf, 72, 0xa000000000000001ull); /* prefix bits below local_depth */
	reseal_blk(buf);
	ck_assert_int_eq(dir_leaf_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);

	/* An empty leaf is valid. */
	sample_dir_leaf(&l, ents, 0);
	ck_assert_int_eq(dir_leaf_encode(&c, &l, BLK_ADDR, buf), 0);
	ck_assert_int_eq(dir_leaf_decode(&c, buf, BLK_ADDR, &o), 0);
	ck_assert_uint_eq(o.nentries, 0);
}
END_TEST

START_TEST(test_xattr)
{
	struct lunfs_codec c;
	struct lunfs_xattr ents[LUNFS_XATTR_MAX_ENTRIES + 1], oents[LUNFS_XATTR_MAX_ENTRIES];
	struct lunfs_xattr_blk b, o;
	uint8_t big[LUNFS_XATTR_DATA];
	uint8_t buf[4096];

	codec_init(&c, 0x10);
	ck_assert_uint_eq(xattr_rec_len(1, 0), 16);
	ck_assert_uint_eq(xattr_rec_len(4, 4), 16);
	ck_assert_uint_eq(xattr_rec_len(4, 5), 24);
	ck_assert_uint_eq(LUNFS_XATTR_MAX_ENTRIES, LUNFS_XATTR_DATA / xattr_rec_len(1, 0));

	/* Largest single value: rec_len 4008, the last multiple of 8 <= 4012. */
	memset(big, 0x5a, sizeof(big));
	sample_xattr(&b, ents, 1);
	ents[0].name_len = 1;
	ents[0].name[1] = '\0';
	ents[0].value = big;
	ents[0].value_len = (uint16_t)(4008 - 8 - 1);
	ck_assert_int_eq(xattr_blk_encode(&c, &b, BLK_ADDR, buf), 0);
	o.ents = oents;
	ck_assert_int_eq(xattr_blk_decode(&c, buf, BLK_ADDR, &o), 0);
	ck_assert_uint_eq(o.ents[0].value_len, ents[0].value_len);
	ck_assert_int_eq(memcmp(o.ents[0].value, big, ents[0].value_len), 0);
	ents[0].value_len += 1;
	ck_assert_int_eq(xattr_blk_encode(&c, &b, BLK_ADDR, buf), -ENOSPC);

	/* Full of minimal entries; one more does not fit. */
	sample_xattr(&b, ents, LUNFS_XATTR_MAX_ENTRIES);
	for (unsigned i = 0; i < LUNFS_XATTR_MAX_ENTRIES; i++) {
		ents[i].name_len = 1;
		ents[i].value_len = 0;
	}
	ck_assert_int_eq(xattr_blk_encode(&c, &b, BLK_ADDR, buf), 0);
	ck_assert_int_eq(xattr_blk_decode(&c, buf, BLK_ADDR, &o), 0);
	ck_assert_uint_eq(o.nentries, LUNFS_XATTR_MAX_ENTRIES);
	b.nentries++;
	ents[LUNFS_XATTR_MAX_ENTRIES] = ents[0];
	ck_assert_int_eq(xattr_blk_encode(&c, &b, BLK_ADDR, buf), -ENOSPC);

	sample_xattr(&b, ents, 3);
	ents[1].ns = 0;
	ck_assert_int_eq(xattr_blk_encode(&c, &b, BLK_ADDR, buf), -EINVAL);
	sample_xattr(&b, ents, 3);
	ents[1].ns = 5;
	ck_assert_int_eq(xattr_blk_encode(&c, &b, BLK_ADDR, buf), -EINVAL);
	sample_xattr(&b, ents, 3);
	ents[1].name_len = 0;
	ck_assert_int_eq(xattr_blk_encode(&c, &b, BLK_ADDR, buf), -EINVAL);

	/* Decoder, crc recomputed. Entry 0 head at 80. */
	sample_xattr(&b, ents, 3);
	ck_assert_int_eq(xattr_blk_encode(&c, &b, BLK_ADDR, buf), 0);
	put16(buf, 80 + 2, 200); /* value_len past rec_len */
	reseal_blk(buf);
	ck_assert_int_eq(xattr_blk_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	ck_assert_int_eq(xattr_blk_encode(&c, &b, BLK_ADDR, buf), 0);
	buf[80] = 9; /* namespace */
	reseal_blk(buf);
	ck_assert_int_eq(xattr_blk_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	ck_assert_int_eq(xattr_blk_encode(&c, &b, BLK_ADDR, buf), 0);
	put16(buf, 74, 4090); /* used past data[] */
	reseal_blk(buf);
	ck_assert_int_eq(xattr_blk_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	ck_assert_int_eq(xattr_blk_encode(&c, &b, BLK_ADDR, buf), 0);
	put16(buf, 72, 251);
	reseal_blk(buf);
	ck_assert_int_eq(xattr_blk_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	ck_assert_ptr_eq(o.ents, oents);
}
END_TEST

START_TEST(test_symlink_semantic)
{
	struct lunfs_codec c;
	struct lunfs_symlink_blk s, o;
	uint8_t buf[4096];

	codec_init(&c, 0x10);
	sample_symlink(&s);
	s.len = 100;
	symlink_blk_encode(&c, &s, BLK_ADDR, buf);
	ck_assert(buf_is_zero(buf + 64 + 100, LUNFS_BLOCK_PAYLOAD - 100));
	ck_assert_int_eq(symlink_blk_decode(&c, buf, BLK_ADDR, &o), 0);
	ck_assert_uint_eq(o.len, 100);
	ck_assert_int_eq(memcmp(o.data, s.data, 100), 0);
	put64(buf, 48, LUNFS_BLOCK_PAYLOAD + 1);
	reseal_blk(buf);
	ck_assert_int_eq(symlink_blk_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
	s.data[50] = '\0';
	symlink_blk_encode(&c, &s, BLK_ADDR, buf);
	ck_assert_int_eq(symlink_blk_decode(&c, buf, BLK_ADDR, &o), -EUCLEAN);
}
END_TEST

START_TEST(test_journal_semantic)
{
	struct lunfs_codec c;
	struct lunfs_jsb j, jo;
	struct lunfs_jdesc *d = malloc(sizeof(*d)), *dout = malloc(sizeof(*dout));
	struct lunfs_jorphan *orph = malloc(sizeof(*orph)), *oout = malloc(sizeof(*oout));
	uint8_t buf[4096];

	codec_init(&c, 0x10);
	jsb_init(&j, 3, 1u << 20);
	ck_assert_uint_eq(j.slot, 3);
	ck_assert_uint_eq(j.ring_first, 1 + LUNFS_JOURNAL_ORPHAN_BLOCKS);
	ck_assert_uint_eq(j.ring_first + j.ring_blocks, 256);
	ck_assert_uint_eq(j.tail_block, j.ring_first);
	jsb_encode(&c, &j, BLK_ADDR, buf);
	ck_assert_int_eq(jsb_decode(&c, buf, BLK_ADDR, 1u << 20, &jo), 0);
	MEMCMP_EQ(&j, &jo);
	/* Same block, judged against a smaller journal. */
	ck_assert_int_eq(jsb_decode(&c, buf, BLK_ADDR, 512u << 10, &jo), -EUCLEAN);
	j.tail_block = j.ring_first + j.ring_blocks;
	jsb_encode(&c, &j, BLK_ADDR, buf);
	ck_assert_int_eq(jsb_decode(&c, buf, BLK_ADDR, 1u << 20, &jo), -EUCLEAN);
	jsb_init(&j, 3, 1u << 20);
	j.ring_first = 1;
	jsb_encode(&c, &j, BLK_ADDR, buf);
	ck_assert_int_eq(jsb_decode(&c, buf, BLK_ADDR, 1u << 20, &jo), -EUCLEAN);
	jsb_init(&j, 3, 1u << 20);
	j.state = 3;
	jsb_encode(&c, &j, BLK_ADDR, buf);
	ck_assert_int_eq(jsb_decode(&c, buf, BLK_ADDR, 1u << 20, &jo), -EUCLEAN);
	jsb_init(&j, 3, 1u << 20);
	j.norphans = LUNFS_JOURNAL_ORPHAN_BLOCKS * LUNFS_JORPHANS_PER_BLOCK + 1;
	jsb_encode(&c, &j, BLK_ADDR, buf);
	ck_assert_int_eq(jsb_decode(&c, buf, BLK_ADDR, 1u << 20, &jo), -EUCLEAN);

	sample_jorphan(orph);
	orph->first = LUNFS_JOURNAL_ORPHAN_BLOCKS * LUNFS_JORPHANS_PER_BLOCK;
	jorphan_encode(&c, orph, BLK_ADDR, buf);
	ck_assert_int_eq(jorphan_decode(&c, buf, BLK_ADDR, oout), -EUCLEAN);

	/* Descriptor tags. */
	sample_jdesc(d);
	d->tags[17].len = 0;
	jdesc_encode(&c, d, BLK_ADDR, buf);
	ck_assert_int_eq(jdesc_decode(&c, buf, BLK_ADDR, dout), -EUCLEAN);
	sample_jdesc(d);
	d->tags[17].len = 4096 + 512;
	jdesc_encode(&c, d, BLK_ADDR, buf);
	ck_assert_int_eq(jdesc_decode(&c, buf, BLK_ADDR, dout), -EUCLEAN);
	sample_jdesc(d);
	d->tags[17].len = 1000;
	jdesc_encode(&c, d, BLK_ADDR, buf);
	ck_assert_int_eq(jdesc_decode(&c, buf, BLK_ADDR, dout), -EUCLEAN);
	sample_jdesc(d);
	d->tags[17].payload_off += 100;
	jdesc_encode(&c, d, BLK_ADDR, buf);
	ck_assert_int_eq(jdesc_decode(&c, buf, BLK_ADDR, dout), -EUCLEAN);
	sample_jdesc(d);
	d->tags[249].payload_off = d->npayload * 4096 - 512;
	d->tags[249].len = 512;
	jdesc_encode(&c, d, BLK_ADDR, buf);
	ck_assert_int_eq(jdesc_decode(&c, buf, BLK_ADDR, dout), 0);
	d->tags[249].len = 1024; /* one sector past the payload */
	jdesc_encode(&c, d, BLK_ADDR, buf);
	ck_assert_int_eq(jdesc_decode(&c, buf, BLK_ADDR, dout), -EUCLEAN);
	sample_jdesc(d);
	d->tags[0].payload_off = 0xfffffe00u; /* would wrap a 32-bit sum */
	d->tags[0].len = 4096;
	jdesc_encode(&c, d, BLK_ADDR, buf);
	ck_assert_int_eq(jdesc_decode(&c, buf, BLK_ADDR, dout), -EUCLEAN);
	sample_jdesc(d);
	d->index = d->ndesc;
	jdesc_encode(&c, d, BLK_ADDR, buf);
	ck_assert_int_eq(jdesc_decode(&c, buf, BLK_ADDR, dout), -EUCLEAN);
	sample_jdesc(d);
	jdesc_encode(&c, d, BLK_ADDR, buf);
	put32(buf, 64, LUNFS_JTAGS_PER_DESC + 1);
	reseal_blk(buf);
	ck_assert_int_eq(jdesc_decode(&c, buf, BLK_ADDR, dout), -EUCLEAN);
	sample_jdesc(d);
	d->tags[3].dest += 1;
	jdesc_encode(&c, d, BLK_ADDR, buf);
	ck_assert_int_eq(jdesc_decode(&c, buf, BLK_ADDR, dout), -EUCLEAN);
	free(d);
	free(dout);
	free(orph);
	free(oout);
}
END_TEST

/* Decoders accept unaligned buffers (callers may pass any byte pointer). */
START_TEST(test_unaligned)
{
	const struct codec_case *k = &cases[_i];
	struct lunfs_codec c;
	uint8_t *mem = malloc(k->size + 8);

	codec_init(&c, 0x10);
	for (unsigned off = 1; off < 8; off += 3) {
		k->enc(&c, case_addr(k), mem + off);
		ck_assert_int_eq(k->dec(&c, mem + off, case_addr(k), true), 0);
	}
	free(mem);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("format_codec");
	TCase *tc = tcase_create("generic");
	TCase *ts = tcase_create("specific");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_roundtrip, 0, NCASES);
	tcase_add_loop_test(tc, test_corruption, 0, NCASES);
	tcase_add_loop_test(tc, test_wrong_magic, 0, NCASES);
	tcase_add_loop_test(tc, test_hmac, 0, NCASES);
	tcase_add_loop_test(tc, test_unaligned, 0, NCASES);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tcase_add_test(ts, test_sb_roundtrip);
	tcase_add_test(ts, test_sb_errors);
	tcase_add_test(ts, test_sb_features_codec);
	tcase_add_test(ts, test_hb_semantic);
	tcase_add_test(ts, test_lock_semantic);
	tcase_add_test(ts, test_paxos_semantic);
	tcase_add_test(ts, test_paxos_leader_semantic);
	tcase_add_test(ts, test_inode_semantic);
	tcase_add_test(ts, test_cluster_semantic);
	tcase_add_test(ts, test_map_semantic);
	tcase_add_test(ts, test_siphash);
	tcase_add_test(ts, test_dir_leaf);
	tcase_add_test(ts, test_xattr);
	tcase_add_test(ts, test_symlink_semantic);
	tcase_add_test(ts, test_journal_semantic);
	suite_add_tcase(s, ts);

	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
