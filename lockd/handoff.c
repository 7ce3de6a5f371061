/*
 * Lock hand-off requests (docs/DESIGN.md section 5.2, docs/FORMAT.md 7.2
 * and 8.1 req_*).
 *
 * A host keeps a lock cached after use and gives it up when asked. The
 * request travels on disk only, twice:
 *   1. in the lock record (req_slot, req_mode, req_serial, req_gen), by
 *      compare-and-write: what `lunfs locks` shows;
 *   2. as an entry of the requester's own heartbeat slot (target slot,
 *      lock address, mode, serial), written with an immediate renewal.
 * Every host reads the whole heartbeat region each interval anyway
 * (lockd/monitor.c), so the holder sees (2) within one interval without
 * polling any lock record.
 *
 * Requester (lockd_lock_wait): try lockd_lock; while it says -EBUSY, post
 * a request to the holder it names (again, with a new serial, whenever the
 * holder changes: several shared holders are asked one after the other),
 * sleep (a growing wait, up to a quarter interval) on our clock, try
 * again; give up at the timeout with
 * -EBUSY naming the holder. The slot entry is withdrawn at the end (it
 * leaves the disk with our next renewal). No lockd mutex is held while we
 * sleep, so our own monitor can meanwhile release locks others want: two
 * hosts waiting for each other's locks do not deadlock in lockd.
 *
 * Holder (lockd_handoff_serve, after each scan): for each entry of a live
 * host's slot that targets us:
 *   - the lock is in our table: call the release callback (the upper layer
 *     flushes what the lock covers and calls lockd_unlock, or refuses with
 *     -EBUSY and is asked again at the next scan while the request
 *     stands). Without a callback we never drop a lock behind the upper
 *     layer's back: the requester times out;
 *   - it is not: a holder bit or ownership on disk naming our slot is left
 *     by an earlier incarnation of it (docs/DESIGN.md 5.3); we clear it by
 *     compare-and-write, once per (requester generation, entry, serial).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lockd_int.h"
#include "lunfs/heartbeat.h"
#include "lunfs/lock.h"

#define NS_PER_MS 1000000ull

void lockd_set_release(struct lunfs_lockd *ld, lockd_release_fn fn, void *arg)
{
	pthread_mutex_lock(&ld->act_mu);
	ld->release = fn;
	ld->release_arg = arg;
	pthread_mutex_unlock(&ld->act_mu);
}

/* ---- requester side ---------------------------------------------------- */

/* Put (or refresh) our slot's entry for lock_addr aimed at `target`.
 * Returns the entry index, or -EAGAIN when all entries are in use. */
static int handoff_entry_set(struct lunfs_lockd *ld, uint64_t lock_addr, uint8_t mode,
			     uint32_t target, uint32_t *serial)
{
	int idx = -1;

	pthread_mutex_lock(&ld->beat_mu);
	for (unsigned e = 0; e < LUNFS_HB_REQUESTS; e++) {
		struct lunfs_hb_request *r = &ld->self.requests[e];

		if (r->target_slot != 0 && r->lock_addr == lock_addr) {
			idx = (int)e;
			break;
		}
		if (r->target_slot == 0 && idx < 0) {
			idx = (int)e;
		}
	}
	if (idx >= 0) {
		struct lunfs_hb_request *r = &ld->self.requests[idx];

		/* Never 0: 0 in the record means "no request". */
		if (++ld->req_serial == 0) {
			ld->req_serial = 1;
		}
		*serial = ld->req_serial;
		r->lock_addr = lock_addr;
		r->target_slot = (uint16_t)(target + 1u);
		r->mode = mode;
		r->serial = *serial;
	}
	pthread_mutex_unlock(&ld->beat_mu);
	return idx >= 0 ? idx : -EAGAIN;
}

static void handoff_entry_clear(struct lunfs_lockd *ld, uint64_t lock_addr)
{
	pthread_mutex_lock(&ld->beat_mu);
	for (unsigned e = 0; e < LUNFS_HB_REQUESTS; e++) {
		struct lunfs_hb_request *r = &ld->self.requests[e];

		if (r->target_slot != 0 && r->lock_addr == lock_addr) {
			memset(r, 0, sizeof(*r));
		}
	}
	pthread_mutex_unlock(&ld->beat_mu);
}

/* Post a request to `holder`. 0 posted (or nothing to post: the record
 * no longer shows another holder, and the caller simply tries again). */
static int handoff_post(struct lunfs_lockd *ld, uint64_t lock_addr, uint8_t mode, uint32_t holder)
{
	uint32_t serial = 0;
	int err;

	err = handoff_entry_set(ld, lock_addr, mode, holder, &serial);
	if (err == -EAGAIN) {
		/* Eight requests of ours are pending already: this one
		 * polls until an entry frees up. */
		return 0;
	}
	err = lockd_request_note(ld, lock_addr, mode, serial);
	if (err < 0) {
		handoff_entry_clear(ld, lock_addr);
		return err;
	}
	/* Put the entry on disk now rather than at the next beat: the
	 * holder then sees it within one of its intervals. */
	return lockd_beat(ld);
}

int lockd_lock_wait(struct lunfs_lockd *ld, uint64_t lock_addr, uint8_t kind, uint64_t id,
		    uint8_t mode, uint32_t timeout_ms, uint32_t *holder_slot)
{
	uint64_t start = lockd_now(ld);
	uint64_t limit = (uint64_t)timeout_ms * NS_PER_MS;
	uint32_t asked = UINT32_MAX;
	uint64_t backoff = ld->to.interval_ns / 32;
	bool posted = false;
	int err;

	for (;;) {
		uint32_t holder = UINT32_MAX;
		uint64_t now, left;

		err = lockd_lock(ld, lock_addr, kind, id, mode, &holder);
		if (err != -EBUSY) {
			break;
		}
		if (holder_slot != NULL) {
			*holder_slot = holder;
		}
		now = lockd_now(ld);
		if (now - start >= limit) {
			break;
		}
		if (holder != asked) {
			err = handoff_post(ld, lock_addr, mode, holder);
			if (err < 0) {
				break;
			}
			posted = true;
			asked = holder;
		}
		/* Poll with a growing wait, up to the holder's scan period
		 * (a quarter interval): the grant is seen soon after it
		 * happens, without hammering the record. */
		left = limit - (now - start);
		ld->clock.sleep_ns(ld->clock.arg, left < backoff ? left : backoff);
		if (backoff < ld->to.interval_ns / 4) {
			backoff *= 2;
		}
	}
	if (posted) {
		/* Goes with our next renewal; a holder that still sees it
		 * finds nothing of ours to give up. */
		handoff_entry_clear(ld, lock_addr);
	}
	return err;
}

/* ---- holder side --------------------------------------------------------- */

static void handoff_serve_one(struct lunfs_lockd *ld, uint32_t r, unsigned e,
			      const struct lunfs_hb_request *q)
{
	uint32_t *done = &ld->req_done[(size_t)r * LUNFS_HB_REQUESTS + e];
	int err;

	if (lockd_held(ld, q->lock_addr) != LUNFS_LOCK_FREE) {
		if (ld->release == NULL) {
			return;
		}
		err = ld->release(ld->release_arg, q->lock_addr, q->mode);
		if (err < 0 && err != -EBUSY) {
			fprintf(stderr, "lunfs: releasing lock %llu for slot %u failed: %s\n",
				(unsigned long long)q->lock_addr, r, strerror(-err));
		}
		return;
	}
	if (*done == q->serial) {
		return;
	}
	err = lockd_release_stale(ld, q->lock_addr);
	if (err == 2 && ld->release != NULL) {
		/* Taken into our table since we looked: ask again. */
		(void)ld->release(ld->release_arg, q->lock_addr, q->mode);
		return;
	}
	if (err >= 0 || err == -EINVAL || err == -EUCLEAN) {
		/* Done, or a request naming no lock record: never again. */
		*done = q->serial;
	}
}

int lockd_handoff_serve(struct lunfs_lockd *ld)
{
	struct lockd_monitor *m = ld->mon;
	uint32_t n = ld->sb.max_hosts;

	if (lockd_check_lease(ld) < 0) {
		return 0;
	}
	for (uint32_t r = 0; r < n; r++) {
		struct lunfs_hb_request reqs[LUNFS_HB_REQUESTS];
		enum lockd_host_state st;
		uint64_t gen;

		if (r == ld->slot) {
			continue;
		}
		pthread_mutex_lock(&m->mu);
		st = lockd_mon_judge_locked(m, r);
		gen = m->rec[r].generation;
		memcpy(reqs, m->rec[r].requests, sizeof(reqs));
		pthread_mutex_unlock(&m->mu);
		/* A dead requester waits for nothing. */
		if (st != LOCKD_HOST_LIVE && st != LOCKD_HOST_JOINING) {
			continue;
		}
		if (ld->req_done_gen[r] != gen) {
			memset(&ld->req_done[(size_t)r * LUNFS_HB_REQUESTS], 0,
			       LUNFS_HB_REQUESTS * sizeof(*ld->req_done));
			ld->req_done_gen[r] = gen;
		}
		for (unsigned e = 0; e < LUNFS_HB_REQUESTS; e++) {
			if (reqs[e].target_slot != ld->slot + 1u) {
				continue;
			}
			handoff_serve_one(ld, r, e, &reqs[e]);
		}
	}
	return 0;
}
