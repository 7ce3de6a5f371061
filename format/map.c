/*
 * Block map node codecs (include/lunfs/map.h).
 *
 * A node at level L covers map_span(L) logical blocks starting at a multiple
 * of that span: a leaf 251, each level above 503 times more. Decode checks
 * that alignment, the level range, that every address is a 4 KiB block
 * address, that only known flags are set, and that a hole carries neither
 * flags nor written chunks; the tree walker can then compute child indexes
 * without further checks.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "fmt_private.h"
#include "lunfs/format.h"
#include "lunfs/inode.h"
#include "lunfs/map.h"

#define MAPE_FLAGS_KNOWN LUNFS_MAPE_SHARED

uint64_t map_span(unsigned level)
{
	uint64_t span = 1; /* level 0: a single block, the entry itself */

	for (unsigned l = 1; l <= level; l++) {
		uint64_t f = l == 1 ? LUNFS_MAP_LEAF_FANOUT : LUNFS_MAP_INNER_FANOUT;

		if (__builtin_mul_overflow(span, f, &span)) {
			return UINT64_MAX;
		}
	}
	return span;
}

void map_leaf_encode(const struct lunfs_codec *c, const struct lunfs_map_leaf *in, uint64_t addr, void *blk)
{
	struct lunfs_map_leaf_disk d;

	memset(&d, 0, sizeof(d));
	for (unsigned i = 0; i < LUNFS_MAP_LEAF_FANOUT; i++) {
		uint64_t v = ((in->e[i].addr / LUNFS_META_BLOCK_SIZE) & LUNFS_MAPE_ADDR_MASK) |
			     (in->e[i].flags & LUNFS_MAPE_FLAGS_MASK);

		d.e[i].addr_flags = le64_make(v);
		d.e[i].written = le64_make(in->e[i].written);
	}
	memcpy(blk, &d, sizeof(d));
	blk_seal(c, blk, LUNFS_MAP_LEAF_MAGIC, 0, addr, in->ino, in->seq, in->first_lblk);
}

int map_leaf_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_map_leaf *out)
{
	int ret = blk_verify(c, blk, LUNFS_MAP_LEAF_MAGIC, addr);

	if (ret != 0) {
		memset(out, 0, sizeof(*out));
		return ret;
	}
	return map_leaf_parse(blk, out);
}

int map_leaf_parse(const void *blk, struct lunfs_map_leaf *out)
{
	struct lunfs_map_leaf_disk d;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = -EUCLEAN;
	memcpy(&d, blk, sizeof(d));
	out->ino = le64_get(d.hdr.owner);
	out->first_lblk = le64_get(d.hdr.aux);
	out->seq = le64_get(d.hdr.seq);
	if (out->first_lblk % LUNFS_MAP_LEAF_FANOUT != 0) {
		goto out;
	}
	for (unsigned i = 0; i < LUNFS_MAP_LEAF_FANOUT; i++) {
		uint64_t v = le64_get(d.e[i].addr_flags);
		struct lunfs_map_entry *e = &out->e[i];

		e->addr = (v & LUNFS_MAPE_ADDR_MASK) * LUNFS_META_BLOCK_SIZE;
		e->flags = v & LUNFS_MAPE_FLAGS_MASK;
		e->written = le64_get(d.e[i].written);
		if ((e->flags & ~MAPE_FLAGS_KNOWN) != 0) {
			goto out;
		}
		if (e->addr == 0 && (e->flags != 0 || e->written != 0)) {
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

void map_inner_encode(const struct lunfs_codec *c, const struct lunfs_map_inner *in, uint64_t addr, void *blk)
{
	struct lunfs_map_inner_disk d;

	memset(&d, 0, sizeof(d));
	for (unsigned i = 0; i < LUNFS_MAP_INNER_FANOUT; i++) {
		d.child[i] = le64_make(in->child[i]);
	}
	memcpy(blk, &d, sizeof(d));
	blk_seal(c, blk, LUNFS_MAP_INNER_MAGIC, in->level, addr, in->ino, in->seq, in->first_lblk);
}

int map_inner_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_map_inner *out)
{
	int ret = blk_verify(c, blk, LUNFS_MAP_INNER_MAGIC, addr);

	if (ret != 0) {
		memset(out, 0, sizeof(*out));
		return ret;
	}
	return map_inner_parse(blk, out);
}

int map_inner_parse(const void *blk, struct lunfs_map_inner *out)
{
	struct lunfs_map_inner_disk d;
	uint16_t level;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = -EUCLEAN;
	memcpy(&d, blk, sizeof(d));
	level = le16_get(d.hdr.flags);
	if (level < 2 || level > LUNFS_MAP_MAX_HEIGHT) {
		goto out;
	}
	out->level = (uint8_t)level;
	out->ino = le64_get(d.hdr.owner);
	out->first_lblk = le64_get(d.hdr.aux);
	out->seq = le64_get(d.hdr.seq);
	if (out->first_lblk % map_span(level) != 0) {
		goto out;
	}
	for (unsigned i = 0; i < LUNFS_MAP_INNER_FANOUT; i++) {
		out->child[i] = le64_get(d.child[i]);
		if (out->child[i] % LUNFS_META_BLOCK_SIZE != 0) {
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

struct lunfs_map_node_id map_node_peek_id(const void *blk)
{
	struct lunfs_blkhdr_disk h;

	memcpy(&h, blk, sizeof(h));
	return (struct lunfs_map_node_id){ .ino = le64_get(h.owner), .first_lblk = le64_get(h.aux),
					   .level = le16_get(h.flags) };
}

struct lunfs_map_entry map_leaf_peek(const void *blk, unsigned i)
{
	struct lunfs_map_entry_disk d;
	uint64_t v;

	memcpy(&d, (const uint8_t *)blk + offsetof(struct lunfs_map_leaf_disk, e) + (size_t)i * sizeof(d),
	       sizeof(d));
	v = le64_get(d.addr_flags);
	return (struct lunfs_map_entry){ .addr = (v & LUNFS_MAPE_ADDR_MASK) * LUNFS_META_BLOCK_SIZE,
					 .flags = v & LUNFS_MAPE_FLAGS_MASK,
					 .written = le64_get(d.written) };
}

uint64_t map_inner_peek(const void *blk, unsigned i)
{
	le64 c;

	memcpy(&c, (const uint8_t *)blk + offsetof(struct lunfs_map_inner_disk, child) + (size_t)i * sizeof(c),
	       sizeof(c));
	return le64_get(c);
}
