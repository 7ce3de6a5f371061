/*
 * Lock record codec (include/lunfs/lock.h).
 *
 * Decode enforces the mode invariants every lock algorithm relies on:
 *   FREE         no owner, no holders
 *   EXCLUSIVE    owner_slot set, no holders
 *   SHARED, MULTIWRITER   no owner; holders[] says who (possibly nobody,
 *                right after the last holder left)
 * and nholders == popcount(holders[]), so a reader can trust either.
 */
#include <errno.h>
#include <string.h>

#include "fmt_private.h"
#include "lunfs/format.h"
#include "lunfs/lock.h"

void lock_encode(const struct lunfs_codec *c, const struct lunfs_lock *in, uint64_t addr, void *rec)
{
	struct lunfs_lock_disk d;

	memset(&d, 0, sizeof(d));
	d.kind = in->kind;
	d.mode = in->mode;
	d.nholders = le16_make(in->nholders);
	d.lock_id = le64_make(in->lock_id);
	d.version = le64_make(in->version);
	d.owner_slot = le16_make(in->owner_slot);
	d.owner_gen = le64_make(in->owner_gen);
	d.acquired_ns = le64_make(in->acquired_ns);
	d.req_slot = le16_make(in->req_slot);
	d.req_mode = in->req_mode;
	d.req_serial = le32_make(in->req_serial);
	d.req_gen = le64_make(in->req_gen);
	memcpy(d.payload, in->payload, sizeof(d.payload));
	memcpy(d.holders, in->holders, sizeof(d.holders));
	memcpy(rec, &d, sizeof(d));
	rec_seal(c, rec, LUNFS_LOCK_MAGIC, 0, addr);
}

static unsigned holders_count(const uint8_t *h)
{
	unsigned n = 0;

	for (unsigned i = 0; i < LUNFS_LOCK_HOLDER_BYTES; i++) {
		n += (unsigned)__builtin_popcount(h[i]);
	}
	return n;
}

int lock_decode(const struct lunfs_codec *c, const void *rec, uint64_t addr, struct lunfs_lock *out)
{
	struct lunfs_lock_disk d;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = rec_verify(c, rec, LUNFS_LOCK_MAGIC, addr);
	if (ret != 0) {
		goto out;
	}
	ret = -EUCLEAN;
	memcpy(&d, rec, sizeof(d));
	out->kind = d.kind;
	out->mode = d.mode;
	out->nholders = le16_get(d.nholders);
	out->lock_id = le64_get(d.lock_id);
	out->version = le64_get(d.version);
	out->owner_slot = le16_get(d.owner_slot);
	out->owner_gen = le64_get(d.owner_gen);
	out->acquired_ns = le64_get(d.acquired_ns);
	out->req_slot = le16_get(d.req_slot);
	out->req_mode = d.req_mode;
	out->req_serial = le32_get(d.req_serial);
	out->req_gen = le64_get(d.req_gen);
	memcpy(out->payload, d.payload, sizeof(out->payload));
	memcpy(out->holders, d.holders, sizeof(out->holders));

	if (out->kind > LUNFS_LOCK_KIND_INODE || out->mode > LUNFS_LOCK_MULTIWRITER ||
	    out->req_mode > LUNFS_LOCK_MULTIWRITER || out->owner_slot > LUNFS_HOSTS_MAX ||
	    out->req_slot > LUNFS_HOSTS_MAX) {
		goto out;
	}
	if (out->nholders != holders_count(out->holders)) {
		goto out;
	}
	switch (out->mode) {
	case LUNFS_LOCK_FREE:
		if (out->owner_slot != 0 || out->nholders != 0) {
			goto out;
		}
		break;
	case LUNFS_LOCK_EXCLUSIVE:
		if (out->owner_slot == 0 || out->nholders != 0) {
			goto out;
		}
		break;
	default:
		if (out->owner_slot != 0) {
			goto out;
		}
		break;
	}
	ret = 0;
out:
	if (ret != 0) {
		memset(out, 0, sizeof(*out));
	}
	return ret;
}

void lock_summary_get(const struct lunfs_lock *l, struct lunfs_cluster_summary *out)
{
	struct lunfs_cluster_summary_disk d;

	memcpy(&d, l->payload, sizeof(d));
	memset(out, 0, sizeof(*out));
	out->type = d.type;
	out->units_total = le64_get(d.units_total);
	out->units_free = le64_get(d.units_free);
	out->updated_seq = le64_get(d.updated_seq);
}

void lock_summary_set(struct lunfs_lock *l, const struct lunfs_cluster_summary *in)
{
	struct lunfs_cluster_summary_disk d;

	memset(&d, 0, sizeof(d));
	d.type = in->type;
	d.units_total = le64_make(in->units_total);
	d.units_free = le64_make(in->units_free);
	d.updated_seq = le64_make(in->updated_seq);
	memset(l->payload, 0, sizeof(l->payload));
	memcpy(l->payload, &d, sizeof(d));
}

bool lock_holder_test(const struct lunfs_lock *l, uint32_t slot)
{
	if (slot >= LUNFS_HOSTS_MAX) {
		return false;
	}
	return (l->holders[slot / 8] >> (slot % 8)) & 1u;
}

void lock_holder_set(struct lunfs_lock *l, uint32_t slot, bool on)
{
	uint8_t bit;

	if (slot >= LUNFS_HOSTS_MAX || lock_holder_test(l, slot) == on) {
		return;
	}
	bit = (uint8_t)(1u << (slot % 8));
	if (on) {
		l->holders[slot / 8] |= bit;
		l->nholders++;
	} else {
		l->holders[slot / 8] &= (uint8_t)~bit;
		l->nholders--;
	}
}
