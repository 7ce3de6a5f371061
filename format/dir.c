/*
 * Directory blocks (include/lunfs/dir.h) and the name hash.
 *
 * Name hash: SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast
 * short-input PRF", 2012), 64-bit output, keyed by sb.dir_hash_key so that
 * nobody can choose names that all land in one leaf. The key is read as two
 * little-endian 64-bit words k0, k1; state v0..v3 starts as k0^"somepseu",
 * k1^"dorandom", k0^"lygenera", k1^"tedbytes". The message is taken in
 * 8-byte little-endian words m, each mixed as v3^=m, 2 SipRounds, v0^=m; the
 * last word holds the remaining 0..7 bytes with (len mod 256) in its top
 * byte. Finalisation: v2^=0xff, 4 SipRounds, result v0^v1^v2^v3. Test
 * vector (paper, appendix A): key 00..0f, message 00..0e -> a129ca6149be45e5.
 *
 * Leaf: entries packed from data[0] in non-decreasing hash order, each
 * exactly dirent_rec_len(name_len) bytes; used = sum of rec_len. Decode
 * walks at most nentries entries and never past `used`, which is itself at
 * most LUNFS_DIR_LEAF_DATA, so it is bounded and stays inside the block.
 */
#include <errno.h>
#include <string.h>

#include "fmt_private.h"
#include "lunfs/dir.h"
#include "lunfs/format.h"

/* DT_* values (<dirent.h> needs _DEFAULT_SOURCE; the numbers are ABI). */
#define DT_FIFO_ 1u
#define DT_CHR_ 2u
#define DT_DIR_ 4u
#define DT_BLK_ 6u
#define DT_REG_ 8u
#define DT_LNK_ 10u
#define DT_SOCK_ 12u

static inline uint64_t rotl64(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++) {
		v |= (uint64_t)p[i] << (8 * i);
	}
	return v;
}

#define SIPROUND(v0, v1, v2, v3)                                              \
	do {                                                                  \
		v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32); \
		v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2;                      \
		v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0;                      \
		v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32); \
	} while (0)

uint64_t dir_name_hash(const uint8_t key[16], const char *name, size_t len)
{
	const uint8_t *p = (const uint8_t *)name;
	uint64_t k0 = load_le64(key);
	uint64_t k1 = load_le64(key + 8);
	uint64_t v0 = k0 ^ 0x736f6d6570736575ull;
	uint64_t v1 = k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ull;
	uint64_t v3 = k1 ^ 0x7465646279746573ull;
	size_t full = len - len % 8;
	uint64_t m;

	for (size_t i = 0; i < full; i += 8) {
		m = load_le64(p + i);
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	m = (uint64_t)(len & 0xff) << 56;
	for (size_t i = 0; i < len % 8; i++) {
		m |= (uint64_t)p[full + i] << (8 * i);
	}
	v3 ^= m;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	v0 ^= m;
	v2 ^= 0xff;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

void dir_table_encode(const struct lunfs_codec *c, const struct lunfs_dir_table *in, uint64_t addr, void *blk)
{
	struct lunfs_dir_table_disk d;

	memset(&d, 0, sizeof(d));
	for (unsigned i = 0; i < LUNFS_DIR_TABLE_SLOTS; i++) {
		d.leaf[i] = le64_make(in->leaf[i]);
	}
	memcpy(blk, &d, sizeof(d));
	blk_seal(c, blk, LUNFS_DIR_TABLE_MAGIC, 0, addr, in->ino, in->seq, in->first_slot);
}

int dir_table_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_dir_table *out)
{
	int ret = blk_verify(c, blk, LUNFS_DIR_TABLE_MAGIC, addr);

	if (ret != 0) {
		memset(out, 0, sizeof(*out));
		return ret;
	}
	return dir_table_parse(blk, out);
}

int dir_table_parse(const void *blk, struct lunfs_dir_table *out)
{
	struct lunfs_dir_table_disk d;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = -EUCLEAN;
	memcpy(&d, blk, sizeof(d));
	out->ino = le64_get(d.hdr.owner);
	out->first_slot = le64_get(d.hdr.aux);
	out->seq = le64_get(d.hdr.seq);
	/* Table block b holds slots b * 503 .. b * 503 + 502 of 2^21 at most. */
	if (out->first_slot % LUNFS_DIR_TABLE_SLOTS != 0 ||
	    out->first_slot >= (uint64_t)LUNFS_DIR_TABLE_SLOTS * LUNFS_DIR_TABLE_BLOCKS) {
		goto out;
	}
	for (unsigned i = 0; i < LUNFS_DIR_TABLE_SLOTS; i++) {
		out->leaf[i] = le64_get(d.leaf[i]);
		/* A slot is unset (0, sparse table) or names a leaf block. */
		if (out->leaf[i] != 0 && out->leaf[i] < LUNFS_DIR_FIRST_LEAF) {
			goto out;
		}
	}
	ret = 0;
out:
	if (ret != 0) {
		memset(out, 0, sizeof(*out));
	}
	return ret;
}

uint32_t dirent_rec_len(uint32_t name_len)
{
	uint64_t n = (uint64_t)sizeof(struct lunfs_dirent_disk) + name_len;

	n = (n + 7) & ~7ull;
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

static bool dirent_type_ok(uint8_t t)
{
	switch (t) {
	case DT_FIFO_:
	case DT_CHR_:
	case DT_DIR_:
	case DT_BLK_:
	case DT_REG_:
	case DT_LNK_:
	case DT_SOCK_:
		return true;
	default:
		return false;
	}
}

/* A name a directory may hold: 1..255 bytes, no '/' or NUL, not . or .. */
static bool dirent_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > LUNFS_NAME_MAX) {
		return false;
	}
	if (memchr(name, '/', len) != NULL || memchr(name, '\0', len) != NULL) {
		return false;
	}
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) {
		return false;
	}
	return true;
}

int dir_leaf_encode(const struct lunfs_codec *c, const struct lunfs_dir_leaf *in, uint64_t addr, void *blk)
{
	struct lunfs_dir_leaf_disk d;
	uint32_t used = 0;

	if (in->nentries > LUNFS_DIR_LEAF_MAX_ENTRIES) {
		return -ENOSPC;
	}
	if (in->local_depth > LUNFS_DIR_MAX_DEPTH) {
		return -EINVAL;
	}
	memset(&d, 0, sizeof(d));
	for (unsigned i = 0; i < in->nentries; i++) {
		const struct lunfs_dirent *e = &in->ents[i];
		struct lunfs_dirent_disk h;
		uint32_t rl = dirent_rec_len(e->name_len);

		if (!dirent_name_ok(e->name, e->name_len) || !dirent_type_ok(e->type) ||
		    e->ino == LUNFS_INO_NONE) {
			return -EINVAL;
		}
		if (i > 0 && e->hash < in->ents[i - 1].hash) {
			return -EINVAL;
		}
		if (rl > LUNFS_DIR_LEAF_DATA - used) {
			return -ENOSPC;
		}
		memset(&h, 0, sizeof(h));
		h.hash = le64_make(e->hash);
		h.ino = le64_make(e->ino);
		h.rec_len = le16_make((uint16_t)rl);
		h.type = e->type;
		h.name_len = e->name_len;
		memcpy(d.data + used, &h, sizeof(h));
		memcpy(d.data + used + sizeof(h), e->name, e->name_len);
		used += rl;
	}
	d.local_depth = le16_make(in->local_depth);
	d.nentries = le16_make(in->nentries);
	d.used = le32_make(used);
	d.prefix = le64_make(in->prefix);
	d.next = le64_make(in->next);
	memcpy(blk, &d, sizeof(d));
	blk_seal(c, blk, LUNFS_DIR_LEAF_MAGIC, 0, addr, in->ino, in->seq, 0);
	return 0;
}

int dir_leaf_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_dir_leaf *out)
{
	int ret = blk_verify(c, blk, LUNFS_DIR_LEAF_MAGIC, addr);

	if (ret != 0) {
		struct lunfs_dirent *ents = out->ents;

		memset(out, 0, sizeof(*out));
		out->ents = ents;
		return ret;
	}
	return dir_leaf_parse(blk, out);
}

int dir_leaf_parse(const void *blk, struct lunfs_dir_leaf *out)
{
	struct lunfs_dir_leaf_disk d;
	struct lunfs_dirent *ents = out->ents;
	uint32_t used, pos = 0;
	uint64_t low_mask;
	int ret;

	memset(out, 0, sizeof(*out));
	out->ents = ents;
	ret = -EUCLEAN;
	memcpy(&d, blk, sizeof(d));
	out->ino = le64_get(d.hdr.owner);
	out->seq = le64_get(d.hdr.seq);
	out->local_depth = le16_get(d.local_depth);
	out->prefix = le64_get(d.prefix);
	out->next = le64_get(d.next);
	out->nentries = le16_get(d.nentries);
	used = le32_get(d.used);
	if (out->local_depth > LUNFS_DIR_MAX_DEPTH || out->nentries > LUNFS_DIR_LEAF_MAX_ENTRIES ||
	    used > LUNFS_DIR_LEAF_DATA) {
		goto out;
	}
	/* Only the top local_depth bits of the prefix may be set. */
	low_mask = out->local_depth == 0 ? UINT64_MAX : UINT64_MAX >> out->local_depth;
	if ((out->prefix & low_mask) != 0) {
		goto out;
	}
	if (out->next != 0 && out->next < LUNFS_DIR_FIRST_LEAF) {
		goto out;
	}
	for (unsigned i = 0; i < out->nentries; i++) {
		struct lunfs_dirent_disk h;
		struct lunfs_dirent *e = &ents[i];
		const char *name;

		if (used - pos < sizeof(h)) {
			goto out;
		}
		memcpy(&h, d.data + pos, sizeof(h));
		e->hash = le64_get(h.hash);
		e->ino = le64_get(h.ino);
		e->type = h.type;
		e->name_len = h.name_len;
		if (le16_get(h.rec_len) != dirent_rec_len(h.name_len) ||
		    le16_get(h.rec_len) > used - pos) {
			goto out;
		}
		name = (const char *)d.data + pos + sizeof(h);
		if (!dirent_name_ok(name, h.name_len) || !dirent_type_ok(h.type) ||
		    e->ino == LUNFS_INO_NONE) {
			goto out;
		}
		if (i > 0 && e->hash < ents[i - 1].hash) {
			goto out;
		}
		memcpy(e->name, name, h.name_len);
		e->name[h.name_len] = '\0';
		pos += le16_get(h.rec_len);
	}
	if (pos != used) {
		goto out;
	}
	ret = 0;
out:
	if (ret != 0) {
		memset(out, 0, sizeof(*out));
		out->ents = ents;
	}
	return ret;
}
