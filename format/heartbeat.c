/*
 * Heartbeat slot codec (include/lunfs/heartbeat.h).
 *
 * Besides the frame, decode checks what an observer relies on to judge the
 * host: a known state, slot numbers in range, and, for any slot that is not
 * FREE, the host's own timing (observers use it instead of their own, so a
 * garbage value would make them declare a live host dead or never declare
 * a dead one).
 */
#include <errno.h>
#include <string.h>

#include "fmt_private.h"
#include "lunfs/format.h"
#include "lunfs/heartbeat.h"
#include "lunfs/lock.h"

void hb_encode(const struct lunfs_codec *c, const struct lunfs_hb_slot *in, uint64_t addr, void *rec)
{
	struct lunfs_hb_slot_disk d;

	memset(&d, 0, sizeof(d));
	d.slot = le16_make(in->slot);
	d.state = in->state;
	d.generation = le64_make(in->generation);
	d.seq = le64_make(in->seq);
	memcpy(d.host_uuid, in->host_uuid, sizeof(d.host_uuid));
	fmt_padded_str_put(d.host_name, sizeof(d.host_name), in->host_name);
	d.hb_interval_ms = le32_make(in->hb_interval_ms);
	d.dead_timeout_ms = le32_make(in->dead_timeout_ms);
	d.io_deadline_ms = le32_make(in->io_deadline_ms);
	d.journal_offset = le64_make(in->journal_offset);
	d.journal_size = le64_make(in->journal_size);
	d.recoverer_slot = le16_make(in->recoverer_slot);
	d.recoverer_gen = le64_make(in->recoverer_gen);
	d.mount_time_ns = le64_make(in->mount_time_ns);
	d.beat_time_ns = le64_make(in->beat_time_ns);
	for (unsigned i = 0; i < LUNFS_HB_REQUESTS; i++) {
		d.requests[i].lock_addr = le64_make(in->requests[i].lock_addr);
		d.requests[i].target_slot = le16_make(in->requests[i].target_slot);
		d.requests[i].mode = in->requests[i].mode;
		d.requests[i].serial = le32_make(in->requests[i].serial);
	}
	d.pid = le32_make(in->pid);
	memcpy(rec, &d, sizeof(d));
	rec_seal(c, rec, LUNFS_HB_MAGIC, 0, addr);
}

static bool hb_timing_ok(const struct lunfs_hb_slot *s)
{
	return s->hb_interval_ms >= LUNFS_HB_INTERVAL_MIN_MS && s->hb_interval_ms <= LUNFS_TIMING_MAX_MS &&
	       s->io_deadline_ms >= 1 && s->io_deadline_ms <= LUNFS_TIMING_MAX_MS &&
	       s->dead_timeout_ms <= LUNFS_TIMING_MAX_MS &&
	       s->dead_timeout_ms >= 3ull * s->hb_interval_ms + 2ull * s->io_deadline_ms;
}

int hb_decode(const struct lunfs_codec *c, const void *rec, uint64_t addr, struct lunfs_hb_slot *out)
{
	struct lunfs_hb_slot_disk d;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = rec_verify(c, rec, LUNFS_HB_MAGIC, addr);
	if (ret != 0) {
		goto out;
	}
	ret = -EUCLEAN;
	memcpy(&d, rec, sizeof(d));
	out->slot = le16_get(d.slot);
	out->state = d.state;
	out->generation = le64_get(d.generation);
	out->seq = le64_get(d.seq);
	memcpy(out->host_uuid, d.host_uuid, sizeof(out->host_uuid));
	if (!fmt_padded_str_get(d.host_name, sizeof(d.host_name), out->host_name)) {
		goto out;
	}
	out->hb_interval_ms = le32_get(d.hb_interval_ms);
	out->dead_timeout_ms = le32_get(d.dead_timeout_ms);
	out->io_deadline_ms = le32_get(d.io_deadline_ms);
	out->journal_offset = le64_get(d.journal_offset);
	out->journal_size = le64_get(d.journal_size);
	out->recoverer_slot = le16_get(d.recoverer_slot);
	out->recoverer_gen = le64_get(d.recoverer_gen);
	out->mount_time_ns = le64_get(d.mount_time_ns);
	out->beat_time_ns = le64_get(d.beat_time_ns);
	out->pid = le32_get(d.pid);
	for (unsigned i = 0; i < LUNFS_HB_REQUESTS; i++) {
		struct lunfs_hb_request *r = &out->requests[i];

		r->lock_addr = le64_get(d.requests[i].lock_addr);
		r->target_slot = le16_get(d.requests[i].target_slot);
		r->mode = d.requests[i].mode;
		r->serial = le32_get(d.requests[i].serial);
		if (r->target_slot > LUNFS_HOSTS_MAX || r->mode > LUNFS_LOCK_MULTIWRITER) {
			goto out;
		}
	}
	if (out->slot >= LUNFS_HOSTS_MAX || out->state > LUNFS_HB_LEAVING ||
	    out->recoverer_slot > LUNFS_HOSTS_MAX) {
		goto out;
	}
	if (out->state != LUNFS_HB_FREE && !hb_timing_ok(out)) {
		goto out;
	}
	ret = 0;
out:
	if (ret != 0) {
		memset(out, 0, sizeof(*out));
	}
	return ret;
}
