/*
 * Extended attribute blocks and symlink target blocks
 * (include/lunfs/xattr.h).
 *
 * Xattr block: entries packed from data[0], each exactly
 * xattr_rec_len(name_len, value_len) bytes; used = sum of rec_len. Decode
 * walks at most nentries entries and never past `used` (itself at most
 * LUNFS_XATTR_DATA), so it is bounded and stays inside the block. Decoded
 * values point into the caller's block buffer, which must outlive them.
 */
#include <errno.h>
#include <string.h>

#include "fmt_private.h"
#include "lunfs/format.h"
#include "lunfs/xattr.h"

uint32_t xattr_rec_len(uint32_t name_len, uint32_t value_len)
{
	uint64_t n = (uint64_t)sizeof(struct lunfs_xattr_entry_disk) + name_len + value_len;

	n = (n + 7) & ~7ull;
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

static bool xattr_ns_ok(uint8_t ns)
{
	return ns >= LUNFS_XATTR_USER && ns <= LUNFS_XATTR_SYSTEM;
}

static bool xattr_name_ok(const char *name, size_t len)
{
	return len >= 1 && len <= 255 && memchr(name, '\0', len) == NULL;
}

int xattr_blk_encode(const struct lunfs_codec *c, const struct lunfs_xattr_blk *in, uint64_t addr, void *blk)
{
	struct lunfs_xattr_blk_disk d;
	uint32_t used = 0;

	if (in->nentries > LUNFS_XATTR_MAX_ENTRIES) {
		return -ENOSPC;
	}
	if (in->next % LUNFS_META_BLOCK_SIZE != 0) {
		return -EINVAL;
	}
	memset(&d, 0, sizeof(d));
	for (unsigned i = 0; i < in->nentries; i++) {
		const struct lunfs_xattr *e = &in->ents[i];
		struct lunfs_xattr_entry_disk h;
		uint32_t rl = xattr_rec_len(e->name_len, e->value_len);

		if (!xattr_ns_ok(e->ns) || !xattr_name_ok(e->name, e->name_len) ||
		    (e->value_len != 0 && e->value == NULL)) {
			return -EINVAL;
		}
		if (rl > LUNFS_XATTR_DATA - used) {
			return -ENOSPC;
		}
		memset(&h, 0, sizeof(h));
		h.ns = e->ns;
		h.name_len = e->name_len;
		h.value_len = le16_make(e->value_len);
		h.rec_len = le16_make((uint16_t)rl);
		memcpy(d.data + used, &h, sizeof(h));
		memcpy(d.data + used + sizeof(h), e->name, e->name_len);
		if (e->value_len != 0) {
			memcpy(d.data + used + sizeof(h) + e->name_len, e->value, e->value_len);
		}
		used += rl;
	}
	d.next = le64_make(in->next);
	d.nentries = le16_make(in->nentries);
	d.used = le16_make((uint16_t)used);
	memcpy(blk, &d, sizeof(d));
	blk_seal(c, blk, LUNFS_XATTR_MAGIC, 0, addr, in->ino, in->seq, 0);
	return 0;
}

int xattr_blk_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_xattr_blk *out)
{
	const uint8_t *data = (const uint8_t *)blk + offsetof(struct lunfs_xattr_blk_disk, data);
	struct lunfs_xattr_blk_disk d;
	struct lunfs_xattr *ents = out->ents;
	uint32_t used, pos = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	out->ents = ents;
	ret = blk_verify(c, blk, LUNFS_XATTR_MAGIC, addr);
	if (ret != 0) {
		goto out;
	}
	ret = -EUCLEAN;
	memcpy(&d, blk, sizeof(d));
	out->ino = le64_get(d.hdr.owner);
	out->seq = le64_get(d.hdr.seq);
	out->next = le64_get(d.next);
	out->nentries = le16_get(d.nentries);
	used = le16_get(d.used);
	if (out->nentries > LUNFS_XATTR_MAX_ENTRIES || used > LUNFS_XATTR_DATA ||
	    out->next % LUNFS_META_BLOCK_SIZE != 0) {
		goto out;
	}
	for (unsigned i = 0; i < out->nentries; i++) {
		struct lunfs_xattr_entry_disk h;
		struct lunfs_xattr *e = &ents[i];
		uint32_t rl;

		if (used - pos < sizeof(h)) {
			goto out;
		}
		memcpy(&h, d.data + pos, sizeof(h));
		rl = le16_get(h.rec_len);
		if (rl != xattr_rec_len(h.name_len, le16_get(h.value_len)) || rl > used - pos) {
			goto out;
		}
		if (!xattr_ns_ok(h.ns) || !xattr_name_ok((const char *)d.data + pos + sizeof(h), h.name_len)) {
			goto out;
		}
		memset(e, 0, sizeof(*e));
		e->ns = h.ns;
		e->name_len = h.name_len;
		e->value_len = le16_get(h.value_len);
		memcpy(e->name, d.data + pos + sizeof(h), h.name_len);
		e->name[h.name_len] = '\0';
		e->value = data + pos + sizeof(h) + h.name_len;
		pos += rl;
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

void symlink_blk_encode(const struct lunfs_codec *c, const struct lunfs_symlink_blk *in, uint64_t addr, void *blk)
{
	struct lunfs_symlink_blk_disk d;
	uint32_t len = in->len <= LUNFS_BLOCK_PAYLOAD ? in->len : LUNFS_BLOCK_PAYLOAD;

	memset(&d, 0, sizeof(d));
	memcpy(d.data, in->data, len);
	memcpy(blk, &d, sizeof(d));
	blk_seal(c, blk, LUNFS_SYMLINK_MAGIC, 0, addr, in->ino, in->seq, len);
}

int symlink_blk_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_symlink_blk *out)
{
	struct lunfs_symlink_blk_disk d;
	uint64_t len;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = blk_verify(c, blk, LUNFS_SYMLINK_MAGIC, addr);
	if (ret != 0) {
		goto out;
	}
	ret = -EUCLEAN;
	memcpy(&d, blk, sizeof(d));
	len = le64_get(d.hdr.aux);
	/* A symlink target is a C string: no NUL inside it. */
	if (len > LUNFS_BLOCK_PAYLOAD || memchr(d.data, '\0', len) != NULL) {
		goto out;
	}
	out->ino = le64_get(d.hdr.owner);
	out->seq = le64_get(d.hdr.seq);
	out->len = (uint32_t)len;
	memcpy(out->data, d.data, len);
	ret = 0;
out:
	if (ret != 0) {
		memset(out, 0, sizeof(*out));
	}
	return ret;
}
