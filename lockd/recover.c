/*
 * Dead-host recovery at the lockd level (docs/DESIGN.md section 5.4).
 *
 * After each scan, for every other slot D the monitor has judged:
 *
 *   D's slot                              what we do
 *   ------------------------------------  --------------------------------
 *   LIVE/JOINING/LEAVING, DEAD            claim D
 *   RECOVERING, recoverer R recovered     claim D (take the recovery over)
 *     (R's slot FREE, or LIVE at a later
 *      generation: R's own journal, which
 *      may hold part of D's recovery, has
 *      been replayed)
 *   RECOVERING, recoverer = us, now       run the callback again (it failed
 *                                         on an earlier scan)
 *   anything else                         nothing
 *
 * Claiming is ONE compare-and-write of D's sector, expecting exactly the
 * image the scan read, writing state RECOVERING, recoverer = (our slot + 1,
 * our generation), seq + 1 and no requests. Whatever the interleaving, at
 * most one survivor's compare can match a given image, so two survivors
 * never recover D together; a loser does nothing (the winner's new image
 * is what every later scan sees). The claim is flushed before anything
 * else happens: it is what fences D if D was only frozen (D's next renewal
 * is a compare-and-write of its own last image, which now fails, so D
 * learns it was recovered before it writes anything, and rejoins as a new
 * generation).
 *
 * The winner then calls the upper layer's recover callback (replay D's
 * journal, reclaim its orphans). On success it compare-and-writes D's slot
 * from its RECOVERING image to FREE, keeping the generation, so the next
 * claim of the slot moves past every lock D's incarnation held. If we die
 * half-way, our own slot goes dead, D's stays RECOVERING with a dead
 * recoverer; a survivor recovers us first (our journal may hold part of
 * D's recovery), then claims D the same way and starts the callback
 * again: replay is idempotent.
 *
 * Without a recover callback nobody recovers: freeing a slot without
 * replaying its journal would let a later claim replay it over newer
 * metadata. The monitor still judges, and locks of a dead host stay held
 * until it has been recovered (lockd/lockd.c).
 *
 * We recover only while our own lease is valid (checked right before each
 * compare-and-write): a host that may itself be fenced takes no part.
 *
 * Runs inside lockd_monitor_scan, under act_mu; the callback is called
 * with no other lockd mutex held.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lockd_int.h"
#include "lunfs/heartbeat.h"

static uint64_t recover_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void lockd_set_recover(struct lunfs_lockd *ld, lockd_recover_fn fn, void *arg)
{
	pthread_mutex_lock(&ld->act_mu);
	ld->recover = fn;
	ld->recover_arg = arg;
	pthread_mutex_unlock(&ld->act_mu);
}

enum recover_action {
	RECOVER_NONE,
	RECOVER_CLAIM,   /* CAW from the observed image to RECOVERING by us */
	RECOVER_RETRY,   /* already RECOVERING by us: run the callback again */
};

/* Decide about slot d from the latest scan (m->mu held). */
static enum recover_action recover_decide_locked(const struct lunfs_lockd *ld, uint32_t d)
{
	const struct lockd_monitor *m = ld->mon;
	const struct lunfs_hb_slot *r = &m->rec[d];
	enum lockd_host_state st = lockd_mon_judge_locked(m, d);

	if (st == LOCKD_HOST_DEAD) {
		return RECOVER_CLAIM;
	}
	if (st != LOCKD_HOST_RECOVERING || r->recoverer_slot == 0) {
		return RECOVER_NONE;
	}
	if (r->recoverer_slot == ld->slot + 1u) {
		if (r->recoverer_gen == ld->gen) {
			return RECOVER_RETRY;
		}
		/* An earlier incarnation of our slot died recovering D. */
		return r->recoverer_gen < ld->gen ? RECOVER_CLAIM : RECOVER_NONE;
	}
	/* Not merely dead: recovered. A recoverer that died half-way may
	 * have journaled changes to what D's locks cover (D's orphans freed
	 * in D's clusters) without writing them home; were we to free D now,
	 * a later replay of the recoverer's journal would write them over
	 * the next holder's. Its own recovery (or its replay when it mounts
	 * again) comes first. */
	return lockd_mon_replayed_locked(m, r->recoverer_slot - 1u, r->recoverer_gen) ? RECOVER_CLAIM :
											 RECOVER_NONE;
}

/* CAW slot d from `expect` to the encoding of `next`; on success `expect`
 * becomes the new image. -ECANCELED when someone else wrote it first. */
static int recover_slot_caw(struct lunfs_lockd *ld, uint32_t d, uint8_t *expect,
			    const struct lunfs_hb_slot *next, uint8_t *rep)
{
	uint64_t addr = layout_hb_addr(&ld->sb, d);
	int err;

	memset(rep, 0, ld->sb.sector_size);
	hb_encode(&ld->codec, next, addr, rep);
	err = lockd_check_lease(ld);
	if (err < 0) {
		return err;
	}
	err = dev_caw(ld->dev, addr, expect, rep, NULL);
	if (err < 0) {
		return err;
	}
	memcpy(expect, rep, ld->sb.sector_size);
	return dev_flush(ld->dev);
}

static int recover_slot(struct lunfs_lockd *ld, uint32_t d, enum recover_action act,
			struct lunfs_hb_slot *s, uint8_t *img, uint8_t *rep)
{
	int err;

	if (act == RECOVER_CLAIM) {
		uint64_t dead_gen = s->generation;

		s->state = LUNFS_HB_RECOVERING;
		s->recoverer_slot = (uint16_t)(ld->slot + 1u);
		s->recoverer_gen = ld->gen;
		s->seq++;
		s->beat_time_ns = recover_realtime_ns();
		/* The dead host's requests died with it. */
		memset(s->requests, 0, sizeof(s->requests));
		err = recover_slot_caw(ld, d, img, s, rep);
		if (err == -ECANCELED) {
			return 0;   /* another survivor got there first */
		}
		if (err < 0) {
			return err;
		}
		fprintf(stderr, "lunfs: host in slot %u (generation %llu, \"%s\") is dead: recovering it\n",
			d, (unsigned long long)dead_gen, s->host_name);
	}
	err = ld->recover(ld->recover_arg, d, s);
	if (err < 0) {
		fprintf(stderr, "lunfs: recovery of slot %u failed (%s); retrying later\n", d,
			strerror(-err));
		return err;
	}
	/* The grant log's end of every hold of D's incarnation: before the
	 * CAW that frees its slot, which is what lets others take its locks
	 * (lockd/grantlog.c). Not at the claim: from the claim to here the
	 * locks are still D's, and a grant to anyone in between must show
	 * up as the double grant it would be. */
	lockd_grantlog_slot(ld, "recover", d, s->generation, lockd_grantlog_now());
	s->state = LUNFS_HB_FREE;
	s->recoverer_slot = 0;
	s->recoverer_gen = 0;
	s->seq++;
	s->beat_time_ns = recover_realtime_ns();
	err = recover_slot_caw(ld, d, img, s, rep);
	if (err == -ECANCELED) {
		/* Someone judged US dead meanwhile and took D over; its
		 * replay is idempotent, nothing is lost. */
		return 0;
	}
	if (err == 0) {
		fprintf(stderr, "lunfs: slot %u recovered and freed\n", d);
	}
	return err;
}

int lockd_recover_run(struct lunfs_lockd *ld)
{
	struct lockd_monitor *m = ld->mon;
	uint32_t n = ld->sb.max_hosts, ss = ld->sb.sector_size;
	uint8_t *img = NULL, *rep = NULL;
	int ret = 0;

	if (ld->recover == NULL || lockd_check_lease(ld) < 0) {
		return 0;
	}
	img = dev_buf_alloc(ss);
	rep = dev_buf_alloc(ss);
	if (img == NULL || rep == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t d = 0; d < n; d++) {
		enum recover_action act;
		struct lunfs_hb_slot s;
		int err;

		if (d == ld->slot) {
			continue;
		}
		pthread_mutex_lock(&m->mu);
		act = recover_decide_locked(ld, d);
		if (act != RECOVER_NONE) {
			s = m->rec[d];
			memcpy(img, m->image + (uint64_t)d * ss, ss);
		}
		pthread_mutex_unlock(&m->mu);
		if (act == RECOVER_NONE) {
			continue;
		}
		err = recover_slot(ld, d, act, &s, img, rep);
		if (err < 0 && ret == 0) {
			ret = err;
		}
	}
out:
	dev_buf_free(rep);
	dev_buf_free(img);
	return ret;
}
