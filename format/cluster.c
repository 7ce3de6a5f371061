/*
 * Resource cluster header, bitmap and refcount blocks
 * (include/lunfs/cluster.h), and the geometry of a typed cluster.
 *
 * Geometry of a cluster of cluster_size bytes cut into units of unit_size:
 *   units_total     = cluster_size / unit_size
 *   bitmap_blocks   = ceil(units_total / LUNFS_BITMAP_BITS)
 *   refcount_blocks = ceil(units_total / LUNFS_REFCOUNTS_PER_BLOCK) for FILE, else 0
 *   header_units    = ceil((1 + bitmap_blocks + refcount_blocks) * 4096 / unit_size)
 * The header area is the first header_units units, so unit u is always at
 * cluster_start + u * unit_size. A decoded header must satisfy exactly these
 * relations, so a caller can index bitmaps and refcounts from it without
 * further checks.
 */
#include <errno.h>
#include <string.h>

#include "fmt_private.h"
#include "lunfs/cluster.h"
#include "lunfs/format.h"

int fmt_cluster_geometry(uint64_t cluster_size, uint32_t unit_size, uint8_t type,
			 struct lunfs_cluster_hdr *out)
{
	uint64_t units, bm, rc, bytes, hdr;

	if (type != LUNFS_CLUSTER_FILE && type != LUNFS_CLUSTER_META && type != LUNFS_CLUSTER_INODE) {
		return -EINVAL;
	}
	if (!fmt_is_pow2(unit_size) || !fmt_is_pow2(cluster_size) || cluster_size < unit_size) {
		return -EINVAL;
	}
	units = cluster_size / unit_size;
	bm = fmt_div_round_up(units, LUNFS_BITMAP_BITS);
	rc = type == LUNFS_CLUSTER_FILE ? fmt_div_round_up(units, LUNFS_REFCOUNTS_PER_BLOCK) : 0;
	if (__builtin_mul_overflow(1 + bm + rc, (uint64_t)LUNFS_META_BLOCK_SIZE, &bytes)) {
		return -EINVAL;
	}
	hdr = fmt_div_round_up(bytes, unit_size);
	if (hdr >= units || bm > UINT32_MAX || rc > UINT32_MAX || hdr > UINT32_MAX) {
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	out->type = type;
	out->unit_size = unit_size;
	out->units_total = units;
	out->bitmap_blocks = (uint32_t)bm;
	out->refcount_blocks = (uint32_t)rc;
	out->header_units = (uint32_t)hdr;
	out->units_free = units - hdr;
	out->alloc_hint = hdr;
	return 0;
}

int cluster_geometry(const struct lunfs_super *sb, uint8_t type, struct lunfs_cluster_hdr *out)
{
	uint32_t unit;

	switch (type) {
	case LUNFS_CLUSTER_FILE:
		unit = sb->file_block_size;
		break;
	case LUNFS_CLUSTER_META:
		unit = LUNFS_META_BLOCK_SIZE;
		break;
	case LUNFS_CLUSTER_INODE:
		unit = sb->inode_slot_size;
		break;
	default:
		return -EINVAL;
	}
	return fmt_cluster_geometry(sb->cluster_size, unit, type, out);
}

void cluster_hdr_encode(const struct lunfs_codec *c, const struct lunfs_cluster_hdr *in, uint64_t addr, void *blk)
{
	struct lunfs_cluster_hdr_disk d;

	memset(&d, 0, sizeof(d));
	d.type = in->type;
	d.unit_size = le32_make(in->unit_size);
	d.cluster_index = le64_make(in->cluster_index);
	d.cluster_start = le64_make(in->cluster_start);
	d.units_total = le64_make(in->units_total);
	d.units_free = le64_make(in->units_free);
	d.header_units = le32_make(in->header_units);
	d.bitmap_blocks = le32_make(in->bitmap_blocks);
	d.refcount_blocks = le32_make(in->refcount_blocks);
	d.type_gen = le64_make(in->type_gen);
	d.alloc_hint = le64_make(in->alloc_hint);
	memcpy(blk, &d, sizeof(d));
	blk_seal(c, blk, LUNFS_CLUSTER_MAGIC, 0, addr, in->cluster_index, in->seq, 0);
}

static bool unit_size_ok(uint8_t type, uint32_t unit)
{
	switch (type) {
	case LUNFS_CLUSTER_FILE:
		return fmt_is_pow2(unit) && unit >= LUNFS_FILE_BLOCK_MIN && unit <= LUNFS_FILE_BLOCK_MAX;
	case LUNFS_CLUSTER_META:
		return unit == LUNFS_META_BLOCK_SIZE;
	case LUNFS_CLUSTER_INODE:
		return unit == 2 * LUNFS_SECTOR_MIN || unit == 2 * LUNFS_SECTOR_MAX;
	default:
		return false;
	}
}

static int cluster_hdr_decode_fields(const struct lunfs_codec *c, const void *blk, uint64_t addr,
				     struct lunfs_cluster_hdr *out)
{
	struct lunfs_cluster_hdr_disk d;
	struct lunfs_cluster_hdr g;
	uint64_t cs;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = blk_verify(c, blk, LUNFS_CLUSTER_MAGIC, addr);
	if (ret != 0) {
		return ret;
	}
	memcpy(&d, blk, sizeof(d));
	out->type = d.type;
	out->unit_size = le32_get(d.unit_size);
	out->cluster_index = le64_get(d.cluster_index);
	out->cluster_start = le64_get(d.cluster_start);
	out->units_total = le64_get(d.units_total);
	out->units_free = le64_get(d.units_free);
	out->header_units = le32_get(d.header_units);
	out->bitmap_blocks = le32_get(d.bitmap_blocks);
	out->refcount_blocks = le32_get(d.refcount_blocks);
	out->type_gen = le64_get(d.type_gen);
	out->alloc_hint = le64_get(d.alloc_hint);
	out->seq = le64_get(d.hdr.seq);

	if (!unit_size_ok(out->type, out->unit_size)) {
		return -EUCLEAN;
	}
	if (out->cluster_index != le64_get(d.hdr.owner) || out->cluster_start != addr) {
		return -EUCLEAN;
	}
	if (__builtin_mul_overflow(out->units_total, (uint64_t)out->unit_size, &cs) ||
	    cs > LUNFS_CLUSTER_MAX || fmt_cluster_geometry(cs, out->unit_size, out->type, &g) != 0) {
		return -EUCLEAN;
	}
	if (g.units_total != out->units_total || g.bitmap_blocks != out->bitmap_blocks ||
	    g.refcount_blocks != out->refcount_blocks || g.header_units != out->header_units) {
		return -EUCLEAN;
	}
	if (out->units_free > out->units_total - out->header_units || out->alloc_hint > out->units_total) {
		return -EUCLEAN;
	}
	return 0;
}

int cluster_hdr_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_cluster_hdr *out)
{
	int ret = cluster_hdr_decode_fields(c, blk, addr, out);

	if (ret != 0) {
		memset(out, 0, sizeof(*out));
	}
	return ret;
}

void bitmap_encode(const struct lunfs_codec *c, const struct lunfs_bitmap *in, uint64_t addr, void *blk)
{
	struct lunfs_bitmap_disk d;

	memset(&d, 0, sizeof(d));
	for (unsigned i = 0; i < LUNFS_BITMAP_WORDS; i++) {
		d.words[i] = le64_make(in->words[i]);
	}
	memcpy(blk, &d, sizeof(d));
	blk_seal(c, blk, LUNFS_BITMAP_MAGIC, 0, addr, in->cluster_index, in->seq, in->first_unit);
}

int bitmap_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_bitmap *out)
{
	struct lunfs_bitmap_disk d;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = blk_verify(c, blk, LUNFS_BITMAP_MAGIC, addr);
	if (ret != 0) {
		return ret;
	}
	memcpy(&d, blk, sizeof(d));
	out->cluster_index = le64_get(d.hdr.owner);
	out->first_unit = le64_get(d.hdr.aux);
	out->seq = le64_get(d.hdr.seq);
	for (unsigned i = 0; i < LUNFS_BITMAP_WORDS; i++) {
		out->words[i] = le64_get(d.words[i]);
	}
	/* Bitmap block k covers units k * LUNFS_BITMAP_BITS onwards. */
	if (out->first_unit % LUNFS_BITMAP_BITS != 0) {
		memset(out, 0, sizeof(*out));
		return -EUCLEAN;
	}
	return 0;
}

void refcount_encode(const struct lunfs_codec *c, const struct lunfs_refcount *in, uint64_t addr, void *blk)
{
	struct lunfs_refcount_disk d;

	memset(&d, 0, sizeof(d));
	for (unsigned i = 0; i < LUNFS_REFCOUNTS_PER_BLOCK; i++) {
		d.extra[i] = le16_make(in->extra[i]);
	}
	memcpy(blk, &d, sizeof(d));
	blk_seal(c, blk, LUNFS_REFCOUNT_MAGIC, 0, addr, in->cluster_index, in->seq, in->first_unit);
}

int refcount_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_refcount *out)
{
	struct lunfs_refcount_disk d;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = blk_verify(c, blk, LUNFS_REFCOUNT_MAGIC, addr);
	if (ret != 0) {
		return ret;
	}
	memcpy(&d, blk, sizeof(d));
	out->cluster_index = le64_get(d.hdr.owner);
	out->first_unit = le64_get(d.hdr.aux);
	out->seq = le64_get(d.hdr.seq);
	for (unsigned i = 0; i < LUNFS_REFCOUNTS_PER_BLOCK; i++) {
		out->extra[i] = le16_get(d.extra[i]);
	}
	if (out->first_unit % LUNFS_REFCOUNTS_PER_BLOCK != 0) {
		memset(out, 0, sizeof(*out));
		return -EUCLEAN;
	}
	return 0;
}
