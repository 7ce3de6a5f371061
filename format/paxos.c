/*
 * Disk Paxos block codec (include/lunfs/paxos.h). Besides the frame,
 * decode checks the invariant of Disk Paxos (Gafni & Lamport 2003, sec. 4)
 * that a block's accepted ballot never exceeds the ballot it has started,
 * bal <= mbal, and that slot numbers are in range; and the leader record
 * of an instance (PXLD).
 */
#include <errno.h>
#include <string.h>

#include "fmt_private.h"
#include "lunfs/format.h"
#include "lunfs/paxos.h"

void paxos_encode(const struct lunfs_codec *c, const struct lunfs_paxos *in, uint64_t addr, void *rec)
{
	struct lunfs_paxos_disk d;

	memset(&d, 0, sizeof(d));
	d.instance = le32_make(in->instance);
	d.slot = le16_make(in->slot);
	d.writer_gen = le64_make(in->writer_gen);
	d.mbal = le64_make(in->mbal);
	d.bal = le64_make(in->bal);
	d.inp_owner_slot = le16_make(in->inp_owner_slot);
	d.inp_owner_gen = le64_make(in->inp_owner_gen);
	d.inp_round = le64_make(in->inp_round);
	d.inp_target = le64_make(in->inp_target);
	d.released_round = le64_make(in->released_round);
	memcpy(rec, &d, sizeof(d));
	rec_seal(c, rec, LUNFS_PAXOS_MAGIC, 0, addr);
}

int paxos_decode(const struct lunfs_codec *c, const void *rec, uint64_t addr, struct lunfs_paxos *out)
{
	struct lunfs_paxos_disk d;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = rec_verify(c, rec, LUNFS_PAXOS_MAGIC, addr);
	if (ret != 0) {
		goto out;
	}
	memcpy(&d, rec, sizeof(d));
	out->instance = le32_get(d.instance);
	out->slot = le16_get(d.slot);
	out->writer_gen = le64_get(d.writer_gen);
	out->mbal = le64_get(d.mbal);
	out->bal = le64_get(d.bal);
	out->inp_owner_slot = le16_get(d.inp_owner_slot);
	out->inp_owner_gen = le64_get(d.inp_owner_gen);
	out->inp_round = le64_get(d.inp_round);
	out->inp_target = le64_get(d.inp_target);
	out->released_round = le64_get(d.released_round);
	if (out->instance >= LUNFS_PAXOS_INSTANCES_MAX || out->slot >= LUNFS_HOSTS_MAX ||
	    out->inp_owner_slot > LUNFS_HOSTS_MAX || out->bal > out->mbal) {
		ret = -EUCLEAN;
		goto out;
	}
out:
	if (ret != 0) {
		memset(out, 0, sizeof(*out));
	}
	return ret;
}

void paxos_leader_encode(const struct lunfs_codec *c, const struct lunfs_paxos_leader *in, uint64_t addr,
			 void *rec)
{
	struct lunfs_paxos_leader_disk d;

	memset(&d, 0, sizeof(d));
	d.instance = le32_make(in->instance);
	d.writer_slot = le16_make(in->writer_slot);
	d.writer_gen = le64_make(in->writer_gen);
	d.round = le64_make(in->round);
	d.owner_slot = le16_make(in->owner_slot);
	d.released = in->released ? 1 : 0;
	d.owner_gen = le64_make(in->owner_gen);
	d.target = le64_make(in->target);
	memcpy(rec, &d, sizeof(d));
	rec_seal(c, rec, LUNFS_PAXOS_LEADER_MAGIC, 0, addr);
}

int paxos_leader_decode(const struct lunfs_codec *c, const void *rec, uint64_t addr,
			struct lunfs_paxos_leader *out)
{
	struct lunfs_paxos_leader_disk d;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = rec_verify(c, rec, LUNFS_PAXOS_LEADER_MAGIC, addr);
	if (ret != 0) {
		goto out;
	}
	memcpy(&d, rec, sizeof(d));
	out->instance = le32_get(d.instance);
	out->writer_slot = le16_get(d.writer_slot);
	out->writer_gen = le64_get(d.writer_gen);
	out->round = le64_get(d.round);
	out->owner_slot = le16_get(d.owner_slot);
	out->released = d.released != 0;
	out->owner_gen = le64_get(d.owner_gen);
	out->target = le64_get(d.target);
	if (out->instance >= LUNFS_PAXOS_INSTANCES_MAX || out->writer_slot >= LUNFS_HOSTS_MAX ||
	    out->owner_slot > LUNFS_HOSTS_MAX || d.released > 1 ||
	    (out->owner_slot != 0 && out->round == 0)) {
		ret = -EUCLEAN;
		goto out;
	}
out:
	if (ret != 0) {
		memset(out, 0, sizeof(*out));
	}
	return ret;
}
