/*
 * Journal block codecs (include/lunfs/journal.h): journal superblock,
 * orphan table, descriptor and commit blocks.
 *
 * Decoders check what replay would otherwise index blindly: the ring lies
 * inside the journal, the tail is inside the ring, each tag's update is a
 * whole number of 512-byte sectors (at most one block) at a sector-aligned
 * address, and its payload range lies inside the transaction's payload
 * blocks. A replayer can then copy tag by tag without further checks.
 */
#include <errno.h>
#include <string.h>

#include "fmt_private.h"
#include "lunfs/format.h"
#include "lunfs/journal.h"

#define JSECTOR 512u

void jsb_init(struct lunfs_jsb *j, uint16_t slot, uint64_t journal_size)
{
	uint64_t blocks = journal_size / LUNFS_META_BLOCK_SIZE;

	memset(j, 0, sizeof(*j));
	j->slot = slot;
	j->state = LUNFS_JOURNAL_EMPTY;
	j->ring_first = 1 + LUNFS_JOURNAL_ORPHAN_BLOCKS;
	j->ring_blocks = blocks > j->ring_first ? blocks - j->ring_first : 0;
	j->tail_block = j->ring_first;
	/* Transactions are numbered from 1, so seq 0 never looks like one. */
	j->tail_seq = 1;
}

void jsb_encode(const struct lunfs_codec *c, const struct lunfs_jsb *in, uint64_t addr, void *blk)
{
	struct lunfs_jsb_disk d;

	memset(&d, 0, sizeof(d));
	d.state = le32_make(in->state);
	d.slot = le16_make(in->slot);
	d.owner_gen = le64_make(in->owner_gen);
	d.tail_seq = le64_make(in->tail_seq);
	d.tail_block = le64_make(in->tail_block);
	d.ring_first = le64_make(in->ring_first);
	d.ring_blocks = le64_make(in->ring_blocks);
	d.norphans = le64_make(in->norphans);
	memcpy(blk, &d, sizeof(d));
	blk_seal(c, blk, LUNFS_JSB_MAGIC, 0, addr, in->slot, in->seq, 0);
}

int jsb_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, uint64_t journal_size,
	       struct lunfs_jsb *out)
{
	struct lunfs_jsb_disk d;
	uint64_t blocks = journal_size / LUNFS_META_BLOCK_SIZE;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = blk_verify(c, blk, LUNFS_JSB_MAGIC, addr);
	if (ret != 0) {
		goto out;
	}
	ret = -EUCLEAN;
	memcpy(&d, blk, sizeof(d));
	out->state = le32_get(d.state);
	out->slot = le16_get(d.slot);
	out->owner_gen = le64_get(d.owner_gen);
	out->tail_seq = le64_get(d.tail_seq);
	out->tail_block = le64_get(d.tail_block);
	out->ring_first = le64_get(d.ring_first);
	out->ring_blocks = le64_get(d.ring_blocks);
	out->norphans = le64_get(d.norphans);
	out->seq = le64_get(d.hdr.seq);
	if (out->state > LUNFS_JOURNAL_DIRTY || le64_get(d.hdr.owner) != out->slot ||
	    out->slot >= LUNFS_HOSTS_MAX) {
		goto out;
	}
	/* ring_first is fixed by the format; ring_blocks <= blocks keeps the
	 * sum below from overflowing. */
	if (out->ring_first != 1 + LUNFS_JOURNAL_ORPHAN_BLOCKS || out->ring_blocks == 0 ||
	    out->ring_blocks > blocks || out->ring_first + out->ring_blocks > blocks) {
		goto out;
	}
	if (out->tail_block < out->ring_first || out->tail_block >= out->ring_first + out->ring_blocks) {
		goto out;
	}
	if (out->norphans > (uint64_t)LUNFS_JOURNAL_ORPHAN_BLOCKS * LUNFS_JORPHANS_PER_BLOCK) {
		goto out;
	}
	ret = 0;
out:
	if (ret != 0) {
		memset(out, 0, sizeof(*out));
	}
	return ret;
}

void jorphan_encode(const struct lunfs_codec *c, const struct lunfs_jorphan *in, uint64_t addr, void *blk)
{
	struct lunfs_jorphan_disk d;

	memset(&d, 0, sizeof(d));
	for (unsigned i = 0; i < LUNFS_JORPHANS_PER_BLOCK; i++) {
		d.ino[i] = le64_make(in->ino[i]);
	}
	memcpy(blk, &d, sizeof(d));
	blk_seal(c, blk, LUNFS_JORPHAN_MAGIC, 0, addr, in->slot, in->seq, in->first);
}

int jorphan_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_jorphan *out)
{
	struct lunfs_jorphan_disk d;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = blk_verify(c, blk, LUNFS_JORPHAN_MAGIC, addr);
	if (ret != 0) {
		goto out;
	}
	memcpy(&d, blk, sizeof(d));
	out->slot = le64_get(d.hdr.owner);
	out->first = le64_get(d.hdr.aux);
	out->seq = le64_get(d.hdr.seq);
	for (unsigned i = 0; i < LUNFS_JORPHANS_PER_BLOCK; i++) {
		out->ino[i] = le64_get(d.ino[i]);
	}
	if (out->slot >= LUNFS_HOSTS_MAX || out->first % LUNFS_JORPHANS_PER_BLOCK != 0 ||
	    out->first >= (uint64_t)LUNFS_JOURNAL_ORPHAN_BLOCKS * LUNFS_JORPHANS_PER_BLOCK) {
		ret = -EUCLEAN;
		goto out;
	}
out:
	if (ret != 0) {
		memset(out, 0, sizeof(*out));
	}
	return ret;
}

void jdesc_encode(const struct lunfs_codec *c, const struct lunfs_jdesc *in, uint64_t addr, void *blk)
{
	struct lunfs_jdesc_disk d;
	uint32_t n = in->ntags <= LUNFS_JTAGS_PER_DESC ? in->ntags : LUNFS_JTAGS_PER_DESC;

	memset(&d, 0, sizeof(d));
	d.ntags = le32_make(n);
	d.ndesc = le32_make(in->ndesc);
	d.npayload = le32_make(in->npayload);
	for (uint32_t i = 0; i < n; i++) {
		d.tags[i].dest = le64_make(in->tags[i].dest);
		d.tags[i].len = le32_make(in->tags[i].len);
		d.tags[i].payload_off = le32_make(in->tags[i].payload_off);
	}
	memcpy(blk, &d, sizeof(d));
	blk_seal(c, blk, LUNFS_JDESC_MAGIC, 0, addr, in->slot, in->seq, in->index);
}

int jdesc_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_jdesc *out)
{
	struct lunfs_jdesc_disk d;
	uint64_t index, payload_bytes;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = blk_verify(c, blk, LUNFS_JDESC_MAGIC, addr);
	if (ret != 0) {
		goto out;
	}
	ret = -EUCLEAN;
	memcpy(&d, blk, sizeof(d));
	index = le64_get(d.hdr.aux);
	out->seq = le64_get(d.hdr.seq);
	out->slot = le64_get(d.hdr.owner);
	out->ntags = le32_get(d.ntags);
	out->ndesc = le32_get(d.ndesc);
	out->npayload = le32_get(d.npayload);
	if (out->slot >= LUNFS_HOSTS_MAX || out->ntags > LUNFS_JTAGS_PER_DESC || index >= out->ndesc) {
		goto out;
	}
	out->index = (uint32_t)index;
	payload_bytes = (uint64_t)out->npayload * LUNFS_META_BLOCK_SIZE;
	for (uint32_t i = 0; i < out->ntags; i++) {
		struct lunfs_jtag *t = &out->tags[i];

		t->dest = le64_get(d.tags[i].dest);
		t->len = le32_get(d.tags[i].len);
		t->payload_off = le32_get(d.tags[i].payload_off);
		if (t->len < JSECTOR || t->len > LUNFS_META_BLOCK_SIZE || t->len % JSECTOR != 0 ||
		    t->payload_off % JSECTOR != 0 || t->dest % JSECTOR != 0 ||
		    (uint64_t)t->payload_off + t->len > payload_bytes) {
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

void jcommit_encode(const struct lunfs_codec *c, const struct lunfs_jcommit *in, uint64_t addr, void *blk)
{
	struct lunfs_jcommit_disk d;

	memset(&d, 0, sizeof(d));
	d.ndesc = le32_make(in->ndesc);
	d.npayload = le32_make(in->npayload);
	d.body_crc = le32_make(in->body_crc);
	d.commit_time_ns = le64_make(in->commit_time_ns);
	d.writer_gen = le64_make(in->writer_gen);
	memcpy(blk, &d, sizeof(d));
	blk_seal(c, blk, LUNFS_JCOMMIT_MAGIC, 0, addr, in->slot, in->seq, 0);
}

int jcommit_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_jcommit *out)
{
	struct lunfs_jcommit_disk d;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = blk_verify(c, blk, LUNFS_JCOMMIT_MAGIC, addr);
	if (ret != 0) {
		goto out;
	}
	memcpy(&d, blk, sizeof(d));
	out->seq = le64_get(d.hdr.seq);
	out->slot = le64_get(d.hdr.owner);
	out->ndesc = le32_get(d.ndesc);
	out->npayload = le32_get(d.npayload);
	out->body_crc = le32_get(d.body_crc);
	out->commit_time_ns = le64_get(d.commit_time_ns);
	out->writer_gen = le64_get(d.writer_gen);
	if (out->slot >= LUNFS_HOSTS_MAX) {
		ret = -EUCLEAN;
		goto out;
	}
out:
	if (ret != 0) {
		memset(out, 0, sizeof(*out));
	}
	return ret;
}
