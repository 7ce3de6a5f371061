/*
 * Heartbeat membership: claiming a slot (join), renewing it (beat), the
 * self-fencing lease, and giving the slot back (leave). docs/DESIGN.md
 * sections 3-5, docs/FORMAT.md section 7.
 *
 * Join. Read the whole heartbeat region in one I/O and pick a slot:
 *   1. a slot claimed (not FREE, not RECOVERING) under our host_uuid is a
 *      previous mount of this host. Watch it for twice its own interval on
 *      our clock: if its image changed, that mount is alive (-EBUSY);
 *      otherwise it crashed and we reclaim it, so the caller replays its
 *      journal. A RECOVERING slot belongs to its recoverer: we leave it.
 *   2. otherwise the first slot that is never written (-ENODATA), left by
 *      an earlier volume (-ESTALE) or FREE. A corrupt slot is skipped.
 * The claim is one compare-and-write expecting the exact sector we read, so
 * two hosts racing for one slot cannot both win: the loser sees -ECANCELED,
 * re-reads and picks again. The new image is LIVE with generation = old + 1
 * (1 for a never-written slot), which is what makes every lock granted to
 * an earlier incarnation of the slot recognisably stale. The claim is
 * flushed before join returns: a generation must never be handed out twice,
 * even across a power cut.
 * (The cluster issue claims slots with a delta lease instead, because Disk
 * Paxos needs a slot to take part; the choice of slot stays the same.)
 *
 * Beat. Every interval: seq + 1, compare-and-write against the image we
 * last wrote. If anyone else wrote our slot (a recoverer marking it
 * RECOVERING after deciding we were dead), the compare fails, nothing is
 * written, and we are fenced for good: the mount must drop everything and
 * rejoin as a new generation. (PAXOS: see hb_renew_write.)
 *
 * Lease. We record when each successful renewal was SUBMITTED (not when it
 * completed: a slow completion can only make us fence earlier).
 * lockd_check_lease fails once now - last_ok_submit > F (lockd/timeouts.c).
 * Where it is checked in this file, and why there:
 *  - PAXOS plain renewal (hb_renew_write): before the read, to choose
 *    between the plain write and a CAW, and AGAIN immediately before the
 *    plain write is submitted. Only the second one makes the write safe: a
 *    write submitted within F of the last good renewal lands before T - I,
 *    before anyone can judge us dead. A host frozen between its read and
 *    its write (SIGSTOP, a VM pause) wakes past F, fails that check and
 *    falls back to the Paxos CAW, which sees the recoverer's RECOVERING
 *    and fences us instead of overwriting it.
 *  - PAXOS CAW of our own slot (a renewal with a lapsed lease, leave): the
 *    Paxos layer calls hb_paxos_lease_ok right before each of its writes;
 *    for our own slot it allows T - D after the last good renewal (each
 *    write then lands by T, before a judgement). Once that window is gone
 *    no renewal can ever succeed again: the incarnation is fenced there,
 *    so the mount is abandoned and rejoins as a new generation instead of
 *    answering EIO forever (also on a one-host volume, where no survivor
 *    would ever take the slot and let the monitor fence us).
 *  - LOCAL: every renewal is a CAW that only succeeds if nobody wrote our
 *    slot, so a lapsed host may still renew, at any age; nothing to check.
 *
 * The monitor (lockd/monitor.c) runs on its own thread next to the
 * heartbeat thread, started and stopped with it.
 *
 * Leave. Stop the monitor, release every lock we hold, release the Paxos
 * rounds we keep (dev_paxos_unstick), stop the heartbeat thread,
 * compare-and-write the slot to FREE (generation kept, so the next claim
 * moves past it), flush.
 *
 * Lock order: see lockd_int.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lockd_int.h"
#include "lunfs/heartbeat.h"
#include "lunfs/paxos_caw.h"

/* How many times join re-reads after losing a race before giving up. Each
 * lost race means another host won a slot, so max_hosts + a margin bounds
 * the honest cases. */
#define HB_JOIN_RETRIES_EXTRA 16u

static uint64_t hb_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool hb_claimed(const struct lunfs_hb_slot *s, int status)
{
	return status == 0 && s->state != LUNFS_HB_FREE;
}

/* Watch slot i (image `img`, decoded `s`) for twice its own interval.
 * *moved = it changed in any way. On return img holds the latest image. */
static int hb_slot_watch(struct lunfs_lockd *ld, uint32_t i, const struct lunfs_hb_slot *s,
			 uint8_t *img, uint8_t *tmp, bool *moved)
{
	struct lockd_timeouts to;
	uint64_t addr = layout_hb_addr(&ld->sb, i);
	int err;

	/* Judge the slot by its own timing; fall back to ours if it
	 * advertises none that is valid (the decoder checks this, so only a
	 * FREE slot could). */
	if (lockd_timeouts_compute(s->hb_interval_ms, s->dead_timeout_ms, s->io_deadline_ms, &to) < 0) {
		to = ld->to;
	}
	ld->clock.sleep_ns(ld->clock.arg, to.watch_ns);
	err = dev_read(ld->dev, tmp, ld->sb.sector_size, addr);
	if (err < 0) {
		return err;
	}
	*moved = memcmp(tmp, img, ld->sb.sector_size) != 0;
	memcpy(img, tmp, ld->sb.sector_size);
	return 0;
}

/* Pick a slot from a decoded region. Returns the slot index, -ENOSPC, or
 * -EAGAIN (the region changed while we watched a slot: scan again).
 * *watched_img gets the image to expect when the slot was watched. */
static int hb_slot_choose(struct lunfs_lockd *ld, const struct lockd_opts *o, uint8_t *region,
			  const struct lunfs_hb_slot *slots, const int *status, uint8_t *tmp)
{
	uint32_t n = ld->sb.max_hosts;
	uint32_t ss = ld->sb.sector_size;
	int err;

	for (uint32_t i = 0; i < n; i++) {
		const struct lunfs_hb_slot *s = &slots[i];
		uint8_t *img = region + (uint64_t)i * ss;
		struct lunfs_hb_slot now;
		bool moved = false;

		if (!hb_claimed(s, status[i]) || s->state == LUNFS_HB_RECOVERING ||
		    memcmp(s->host_uuid, o->host_uuid, LUNFS_UUID_SIZE) != 0) {
			continue;
		}
		err = hb_slot_watch(ld, i, s, img, tmp, &moved);
		if (err < 0) {
			return err;
		}
		if (!moved) {
			return (int)i;
		}
		if (hb_decode(&ld->codec, img, layout_hb_addr(&ld->sb, i), &now) == 0 &&
		    now.state != LUNFS_HB_FREE &&
		    memcmp(now.host_uuid, o->host_uuid, LUNFS_UUID_SIZE) == 0) {
			return -EBUSY;
		}
		return -EAGAIN;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (status[i] == -ENODATA || status[i] == -ESTALE ||
		    (status[i] == 0 && slots[i].state == LUNFS_HB_FREE)) {
			return (int)i;
		}
	}
	return -ENOSPC;
}

static void hb_slot_fill(struct lunfs_lockd *ld, const struct lockd_opts *o, uint32_t i,
			 const struct lunfs_hb_slot *old, int old_status, struct lunfs_hb_slot *s)
{
	uint64_t now = hb_realtime_ns();

	memset(s, 0, sizeof(*s));
	s->slot = (uint16_t)i;
	s->state = o->stay_joining ? LUNFS_HB_JOINING : LUNFS_HB_LIVE;
	s->generation = old_status == 0 ? old->generation + 1 : 1;
	s->seq = 1;
	memcpy(s->host_uuid, o->host_uuid, LUNFS_UUID_SIZE);
	if (o->host_name != NULL) {
		memcpy(s->host_name, o->host_name, strlen(o->host_name));
	}
	s->hb_interval_ms = ld->sb.hb_interval_ms;
	s->dead_timeout_ms = ld->sb.dead_timeout_ms;
	s->io_deadline_ms = ld->sb.io_deadline_ms;
	s->journal_offset = layout_journal_addr(&ld->sb, i);
	s->journal_size = ld->sb.journal_size;
	s->mount_time_ns = now;
	s->beat_time_ns = now;
	s->pid = (uint32_t)getpid();
}

/*
 * PAXOS mode (lockd_opts.caw). Disk Paxos needs a slot to take part, so the
 * slot itself is won by timing: a delta lease (Chockler and Malkhi 2004, as
 * sanlock's delta_lease.c). With D = io_deadline, C = D / 8 (the claim
 * window) and W = (C + D)(1 + 1/1024) (the join wait; both derived in
 * lockd/timeouts.c, which also gives the proof):
 *   re-read the chosen slot; if it is not the image the choice was made on,
 *   lose. Write our claim (JOINING, generation + 1) with a plain write, at
 *   most C after that read was submitted (else lose, having written
 *   nothing: the read is too old to act on), flush, wait W, read it back:
 *   ours still -> write LIVE.
 * Why W: a rival claim that can overwrite ours comes from a read submitted
 * before our claim landed (<= t, t = our write's completion); it was
 * submitted within C of that read and lands within D of its submission
 * (<= t + C + D): by the time we read back, every such claim has landed,
 * and the last writer is the only one that reads its own claim back. Both
 * can lose; both cannot win.
 * Renewals: plain writes while our lease is valid (nobody may judge us dead
 * before T, and a write submitted before F lands before T - I), each after
 * reading the slot back (a changed slot: fenced, as a failed CAW is in LOCAL
 * mode), the lease checked again right before the write. Once the lease has
 * expired a renewal is a Paxos CAW against our last image, allowed until
 * T - D after the last good renewal, so a recoverer's RECOVERING is never
 * overwritten (DESIGN 5.4); past T - D we are fenced (hb_paxos_lease_ok).
 */
static int hb_delta_claim(struct lunfs_lockd *ld, uint32_t i, const uint8_t *expect,
			  struct lunfs_hb_slot *s, uint8_t *rep, uint8_t *tmp, uint64_t *submit)
{
	uint32_t ss = ld->sb.sector_size;
	uint64_t addr = layout_hb_addr(&ld->sb, i);
	uint64_t t_read;
	int err;

	t_read = lockd_now(ld);
	err = dev_read(ld->lower, tmp, ss, addr);
	if (err < 0) {
		return err;
	}
	if (memcmp(tmp, expect, ss) != 0) {
		return -ECANCELED;
	}
	s->state = LUNFS_HB_JOINING;
	hb_encode(&ld->codec, s, addr, rep);
	if (lockd_now(ld) - t_read > ld->to.claim_ns) {
		return -ECANCELED;
	}
	err = dev_write(ld->lower, rep, ss, addr);
	if (err == 0) {
		err = dev_flush(ld->lower);
	}
	if (err < 0) {
		return err;
	}
	ld->clock.sleep_ns(ld->clock.arg, ld->to.join_wait_ns);
	err = dev_read(ld->lower, tmp, ss, addr);
	if (err < 0) {
		return err;
	}
	if (memcmp(tmp, rep, ss) != 0) {
		return -ECANCELED;
	}
	if (ld->stay_joining) {
		return 0;   /* the slot is ours, JOINING until lockd_activate */
	}
	s->state = LUNFS_HB_LIVE;
	s->seq++;
	hb_encode(&ld->codec, s, addr, rep);
	*submit = lockd_now(ld);
	err = dev_write(ld->lower, rep, ss, addr);
	if (err == 0) {
		err = dev_flush(ld->lower);
	}
	return err;
}

/* One renewal write of image `rep` over ld->last_image. -ECANCELED: the
 * slot is no longer what we last wrote (taken over). beat_mu held. */
static int hb_renew_write(struct lunfs_lockd *ld, const uint8_t *rep)
{
	uint32_t ss = ld->sb.sector_size;
	uint8_t *tmp;
	bool lapsed = false;
	int err;

	if (ld->caw != LUNFS_CAW_PAXOS || lockd_check_lease(ld) < 0) {
		/* LOCAL, or an expired lease: only a CAW may renew. */
		return dev_caw(ld->dev, ld->hb_addr, ld->last_image, rep, NULL);
	}
	tmp = dev_buf_alloc(ss);
	if (tmp == NULL) {
		return -ENOMEM;
	}
	err = dev_read(ld->dev, tmp, ss, ld->hb_addr);
	if (err == 0 && memcmp(tmp, ld->last_image, ss) != 0) {
		err = -ECANCELED;
	}
	if (err == 0) {
		/* The check above was made before the read, which may have
		 * taken up to D, and we may have been stopped since: a plain
		 * write is only safe if it is submitted within F of the last
		 * good renewal (it then lands before anyone can judge us dead
		 * and write RECOVERING), so check again, and submit at once.
		 * Keep nothing between this check and dev_write. Lapsed: the
		 * CAW below, which never overwrites a recoverer's image. */
		if (lockd_check_lease(ld) < 0) {
			lapsed = true;
		} else {
			err = dev_write(ld->dev, rep, ss, ld->hb_addr);
		}
	}
	dev_buf_free(tmp);
	if (lapsed) {
		err = dev_caw(ld->dev, ld->hb_addr, ld->last_image, rep, NULL);
	}
	return err;
}

/* The Paxos backend's lease check, called immediately before every write
 * it submits (ballot blocks, leader, the replace write, the release;
 * lockd/paxos.c). Any sector but our own slot needs a valid lease; our own
 * slot may be renewed by CAW until T - D after the last good renewal (each
 * write submitted by then lands by T, before anyone can judge us dead and
 * take the instance or the slot from us). Not `left`: leave frees the slot
 * through it.
 * Past T - D no renewal can succeed any more, so we fence here: only our
 * own renewals and leave CAW our own slot, and they hold beat_mu, so
 * last_ok_submit cannot move under this judgement. Without it a host whose
 * disk path came back after T - D, with nobody to recover it (one host, or
 * the whole farm's storage stalled), answered EIO until remounted by hand. */
static int hb_paxos_lease_ok(void *arg, uint64_t target)
{
	struct lunfs_lockd *ld = arg;
	uint64_t now, window = ld->to.dead_ns - ld->to.io_deadline_ns;
	int err = 0;

	if (target != ld->hb_addr) {
		return lockd_check_lease(ld);
	}
	now = lockd_now(ld);
	pthread_mutex_lock(&ld->hb_mu);
	if (ld->fenced) {
		err = -EIO;
	} else if (now > ld->last_ok_submit_ns && now - ld->last_ok_submit_ns > window) {
		err = -EIO;
		if (!ld->left) {
			ld->fenced = true;
			fprintf(stderr, "lunfs: heartbeat slot %u (generation %llu) not renewed for "
				"T - D = %llu ms: fenced, no more writes\n", ld->slot,
				(unsigned long long)ld->gen, (unsigned long long)(window / 1000000ull));
		}
	}
	pthread_mutex_unlock(&ld->hb_mu);
	return err;
}

/* The Paxos backend's judge of other hosts: the monitor's, from its last
 * scan (no I/O). gen 0: whoever holds the slot now. */
static int hb_paxos_host_dead(void *arg, uint32_t slot, uint64_t gen)
{
	struct lunfs_lockd *ld = arg;
	enum lockd_host_state st;

	if (gen != 0) {
		return lockd_host_dead(ld, slot, gen) ? 1 : 0;
	}
	st = lockd_host_state(ld, slot, NULL);
	return st == LOCKD_HOST_DEAD || st == LOCKD_HOST_FREE || st == LOCKD_HOST_RECOVERING;
}

/* After the claim: every later CAW (lock records, our slot, recovery of
 * others' slots) goes through the Paxos wrapper under our slot. */
static int hb_paxos_attach(struct lunfs_lockd *ld)
{
	struct paxos_host me = {
		.slot = ld->slot,
		.gen = ld->gen,
		.lease_ok = hb_paxos_lease_ok,
		.host_dead = hb_paxos_host_dead,
		.arg = ld,
		.sticky_idle_ns = ld->paxos_idle_ns,
	};
	int err;

	err = dev_paxos_open(ld->lower, &ld->sb, &ld->codec, &me, &ld->pdev);
	if (err < 0) {
		return err;
	}
	ld->dev = ld->pdev;
	return 0;
}

/* The join loop: scan, choose, claim by CAW, until a claim sticks. */
static int hb_claim(struct lunfs_lockd *ld, const struct lockd_opts *o)
{
	uint32_t n = ld->sb.max_hosts, ss = ld->sb.sector_size;
	uint64_t rlen = (uint64_t)n * ss;
	uint8_t *region = dev_buf_alloc(rlen);
	uint8_t *tmp = dev_buf_alloc(ss);
	uint8_t *rep = dev_buf_alloc(ss);
	struct lunfs_hb_slot *slots = calloc(n, sizeof(*slots));
	int *status = calloc(n, sizeof(*status));
	int err = -EAGAIN;

	if (region == NULL || tmp == NULL || rep == NULL || slots == NULL || status == NULL) {
		err = -ENOMEM;
		goto out;
	}
	for (uint32_t attempt = 0; attempt < n + HB_JOIN_RETRIES_EXTRA; attempt++) {
		struct lunfs_hb_slot s;
		uint64_t submit;
		int i;

		err = dev_read(ld->dev, region, rlen, ld->sb.regions[LUNFS_REGION_HEARTBEAT].offset);
		if (err < 0) {
			goto out;
		}
		hb_scan_decode(&ld->sb, &ld->codec, region, slots, status);
		i = hb_slot_choose(ld, o, region, slots, status, tmp);
		if (i == -EAGAIN) {
			continue;
		}
		if (i < 0) {
			err = i;
			goto out;
		}
		/* Re-decode: a watched slot's image may have been refreshed
		 * (unchanged, but be exact about what we expect). */
		status[i] = hb_decode(&ld->codec, region + (uint64_t)i * ss, layout_hb_addr(&ld->sb, (uint32_t)i),
				      &slots[i]);
		hb_slot_fill(ld, o, (uint32_t)i, &slots[i], status[i], &s);
		ld->hb_addr = layout_hb_addr(&ld->sb, (uint32_t)i);
		memset(rep, 0, ss);
		hb_encode(&ld->codec, &s, ld->hb_addr, rep);
		/* Grant log: a new generation of slot i ends every hold of
		 * the earlier ones; logged before the claim is written. */
		lockd_grantlog_slot(ld, "join", (uint32_t)i, s.generation, lockd_grantlog_now());
		submit = lockd_now(ld);
		if (ld->caw == LUNFS_CAW_PAXOS) {
			err = hb_delta_claim(ld, (uint32_t)i, region + (uint64_t)i * ss, &s, rep, tmp, &submit);
		} else {
			err = dev_caw(ld->dev, ld->hb_addr, region + (uint64_t)i * ss, rep, NULL);
		}
		if (err == -ECANCELED) {
			err = -EAGAIN;
			continue;
		}
		if (err < 0) {
			goto out;
		}
		err = dev_flush(ld->dev);
		if (err < 0) {
			goto out;
		}
		ld->slot = (uint32_t)i;
		ld->gen = s.generation;
		ld->joining = ld->stay_joining;
		ld->self = s;
		ld->joined = s;
		memcpy(ld->last_image, rep, ss);
		ld->last_ok_submit_ns = submit;
		break;
	}
out:
	free(status);
	free(slots);
	dev_buf_free(rep);
	dev_buf_free(tmp);
	dev_buf_free(region);
	return err;
}

static void *hb_thread_main(void *arg)
{
	struct lunfs_lockd *ld = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&ld->stop_mu);
	while (!ld->stop) {
		uint64_t ns = (uint64_t)next.tv_nsec + ld->to.interval_ns;

		next.tv_sec += (time_t)(ns / 1000000000ull);
		next.tv_nsec = (long)(ns % 1000000000ull);
		while (!ld->stop && pthread_cond_timedwait(&ld->stop_cv, &ld->stop_mu, &next) == 0) {
		}
		if (ld->stop) {
			break;
		}
		pthread_mutex_unlock(&ld->stop_mu);
		/* Failures are judged by the lease (lockd_check_lease): a
		 * missed beat is only fatal once F has passed. */
		(void)lockd_beat(ld);
		pthread_mutex_lock(&ld->stop_mu);
		/* After a long stall, do not fire a burst of catch-up beats. */
		{
			struct timespec now;

			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > next.tv_sec + 1) {
				next = now;
			}
		}
	}
	pthread_mutex_unlock(&ld->stop_mu);
	return NULL;
}

static void hb_state_free(struct lunfs_lockd *ld)
{
	/* First: the Paxos device's idle thread calls hb_paxos_lease_ok
	 * (hb_mu) until it is closed. Closing writes nothing: kept rounds
	 * were released by lockd_leave (dev_paxos_unstick), or must not be
	 * (abandon, fenced). */
	if (ld->pdev != NULL) {
		dev_close(ld->pdev);
		ld->pdev = NULL;
	}
	lockd_grantlog_close(ld);
	lockd_mon_fini(ld);
	lockd_table_free(ld);
	pthread_mutex_destroy(&ld->lock_mu);
	pthread_cond_destroy(&ld->stop_cv);
	pthread_mutex_destroy(&ld->stop_mu);
	pthread_mutex_destroy(&ld->hb_mu);
	pthread_mutex_destroy(&ld->beat_mu);
	dev_buf_free(ld->last_image);
	free(ld);
}

static int hb_state_alloc(struct lunfs_dev *dev, const struct lunfs_super *sb,
			  const struct lunfs_codec *c, const struct lockd_opts *o,
			  struct lunfs_lockd **out)
{
	struct lunfs_lockd *ld = calloc(1, sizeof(*ld));
	pthread_condattr_t ca;
	int err;

	if (ld == NULL) {
		return -ENOMEM;
	}
	ld->grantlog_fd = -1;
	ld->stay_joining = o->stay_joining;
	ld->paxos_idle_ns = o->paxos_sticky_idle_ns;
	ld->dev = dev;
	ld->lower = dev;
	ld->caw = o->caw;
	ld->sb = *sb;
	ld->codec = *c;
	if (o->clock != NULL) {
		ld->clock = *o->clock;
	} else {
		lockd_clock_default(&ld->clock);
	}
	err = lockd_timeouts_compute(sb->hb_interval_ms, sb->dead_timeout_ms, sb->io_deadline_ms, &ld->to);
	if (err < 0) {
		free(ld);
		return err;
	}
	ld->last_image = dev_buf_alloc(sb->sector_size);
	if (ld->last_image == NULL) {
		free(ld);
		return -ENOMEM;
	}
	pthread_mutex_init(&ld->beat_mu, NULL);
	pthread_mutex_init(&ld->hb_mu, NULL);
	pthread_mutex_init(&ld->stop_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ld->stop_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&ld->lock_mu, NULL);
	err = lockd_mon_init(ld, o->clock);
	if (err == 0) {
		err = lockd_grantlog_open(ld, o->lock_log);
	}
	if (err < 0) {
		hb_state_free(ld);
		return err;
	}
	*out = ld;
	return 0;
}

enum lunfs_caw_backend lockd_caw_backend(const struct lunfs_super *sb)
{
	return (sb->feat_incompat & LUNFS_FEAT_INCOMPAT_PAXOS) != 0 ? LUNFS_CAW_PAXOS : LUNFS_CAW_LOCAL;
}

int lockd_join(struct lunfs_dev *dev, const struct lunfs_super *sb, const struct lunfs_codec *c,
	       const struct lockd_opts *o, struct lunfs_lockd **out)
{
	struct lunfs_lockd *ld = NULL;
	int err;

	*out = NULL;
	if (o->host_name != NULL && strlen(o->host_name) > 64) {
		return -EINVAL;
	}
	if (dev->sector_size > sb->sector_size ||
	    (o->caw != LUNFS_CAW_LOCAL && o->caw != LUNFS_CAW_PAXOS)) {
		return -EOPNOTSUPP;
	}
	if (o->caw == LUNFS_CAW_LOCAL && lockd_caw_backend(sb) == LUNFS_CAW_PAXOS) {
		return -EMEDIUMTYPE;
	}
	err = hb_state_alloc(dev, sb, c, o, &ld);
	if (err < 0) {
		return err;
	}
	err = hb_claim(ld, o);
	if (err < 0) {
		goto fail;
	}
	if (ld->caw == LUNFS_CAW_PAXOS) {
		err = hb_paxos_attach(ld);
		if (err < 0) {
			goto fail_claimed;
		}
	}
	if (!o->no_thread) {
		err = -pthread_create(&ld->thread, NULL, hb_thread_main, ld);
		if (err < 0) {
			goto fail_claimed;
		}
		ld->thread_running = true;
		err = lockd_mon_start(ld);
		if (err < 0) {
			(void)lockd_leave(ld);  /* stops the heartbeat thread too */
			return err;
		}
	}
	*out = ld;
	return 0;
fail_claimed:
	/* Give the slot back; nothing was done under it. */
	ld->thread_running = false;
	(void)lockd_leave(ld);
	return err;
fail:
	hb_state_free(ld);
	return err;
}

/* One renewal, moving the slot to `state` (0: keep it). */
static int hb_renew(struct lunfs_lockd *ld, uint8_t state)
{
	uint32_t ss = ld->sb.sector_size;
	struct lunfs_hb_slot next;
	uint8_t *rep = dev_buf_alloc(ss);
	uint64_t submit;
	int err;

	if (rep == NULL) {
		return -ENOMEM;
	}
	pthread_mutex_lock(&ld->beat_mu);
	pthread_mutex_lock(&ld->hb_mu);
	err = ld->fenced || ld->left ? -EIO : 0;
	pthread_mutex_unlock(&ld->hb_mu);
	if (err < 0) {
		goto out;
	}
	next = ld->self;
	if (state != 0) {
		next.state = state;
	}
	next.seq++;
	next.beat_time_ns = hb_realtime_ns();
	hb_encode(&ld->codec, &next, ld->hb_addr, rep);
	submit = lockd_now(ld);
	err = hb_renew_write(ld, rep);
	if (err == -ECANCELED) {
		pthread_mutex_lock(&ld->hb_mu);
		ld->fenced = true;
		pthread_mutex_unlock(&ld->hb_mu);
		fprintf(stderr, "lunfs: heartbeat slot %u (generation %llu) was taken by another host: "
			"fenced, no more writes\n", ld->slot, (unsigned long long)ld->gen);
		err = -EIO;
		goto out;
	}
	if (err < 0) {
		goto out;
	}
	memcpy(ld->last_image, rep, ss);
	ld->self = next;
	pthread_mutex_lock(&ld->hb_mu);
	ld->last_ok_submit_ns = submit;
	pthread_mutex_unlock(&ld->hb_mu);
out:
	pthread_mutex_unlock(&ld->beat_mu);
	dev_buf_free(rep);
	return err;
}

int lockd_beat(struct lunfs_lockd *ld)
{
	int err = hb_renew(ld, 0);

	/* A good renewal: Paxos releases that a lapsed lease held back can
	 * be written now, so nobody waits for them past this interval. */
	if (err == 0 && ld->pdev != NULL) {
		(void)dev_paxos_release_owed(ld->pdev);
	}
	return err;
}

int lockd_activate(struct lunfs_lockd *ld)
{
	int err;

	if (ld->self.state == LUNFS_HB_LIVE) {
		return 0;
	}
	/* Still JOINING, so only our own renewals change the slot. */
	err = hb_renew(ld, LUNFS_HB_LIVE);
	if (err == 0) {
		err = dev_flush(ld->dev);
	}
	if (err == 0) {
		pthread_mutex_lock(&ld->hb_mu);
		ld->joining = false;
		pthread_mutex_unlock(&ld->hb_mu);
	}
	return err;
}

int lockd_check_lease(struct lunfs_lockd *ld)
{
	uint64_t now = lockd_now(ld);
	int err = 0;

	pthread_mutex_lock(&ld->hb_mu);
	/* now may predate a renewal that completed while we waited for
	 * hb_mu: that is no lapse (and no unsigned wrap). */
	if (ld->fenced || ld->left ||
	    (now > ld->last_ok_submit_ns && now - ld->last_ok_submit_ns > ld->to.fence_ns)) {
		err = -EIO;
	}
	pthread_mutex_unlock(&ld->hb_mu);
	return err;
}

static void hb_thread_stop(struct lunfs_lockd *ld)
{
	/* The monitor first: its callbacks may still take and drop locks. */
	lockd_mon_stop(ld);
	if (!ld->thread_running) {
		return;
	}
	pthread_mutex_lock(&ld->stop_mu);
	ld->stop = true;
	pthread_cond_broadcast(&ld->stop_cv);
	pthread_mutex_unlock(&ld->stop_mu);
	pthread_join(ld->thread, NULL);
	ld->thread_running = false;
}

int lockd_leave(struct lunfs_lockd *ld)
{
	uint32_t ss;
	struct lunfs_hb_slot next;
	uint8_t *rep;
	bool fenced;
	int err, ret;

	if (ld == NULL) {
		return 0;
	}
	ss = ld->sb.sector_size;
	/* The monitor first: its callbacks may still take and drop locks. */
	lockd_mon_stop(ld);
	/* Renewals go on while we give our locks back: a host with many
	 * cached locks (100k files created) takes longer than the fence time
	 * to release them, and a lapsed lease refuses every release. */
	ret = lockd_release_all(ld);
	/* PAXOS: let go of every round we keep (lockd/paxos.c), while the
	 * lease is renewed and the slot still ours: once it is FREE, another
	 * host may claim it and write our host blocks. The FREE CAW below
	 * then releases its round at once.
	 * A release the lease refuses is only late: the others take the
	 * round once they see the slot FREE or dead. */
	if (ld->pdev != NULL) {
		(void)dev_paxos_unstick(ld->pdev);
	}
	hb_thread_stop(ld);

	rep = dev_buf_alloc(ss);
	if (rep == NULL) {
		ret = ret < 0 ? ret : -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&ld->beat_mu);
	pthread_mutex_lock(&ld->hb_mu);
	fenced = ld->fenced;
	ld->left = true;
	pthread_mutex_unlock(&ld->hb_mu);
	if (!fenced) {
		next = ld->self;
		next.state = LUNFS_HB_FREE;
		next.seq++;
		next.beat_time_ns = hb_realtime_ns();
		memset(next.requests, 0, sizeof(next.requests));
		hb_encode(&ld->codec, &next, ld->hb_addr, rep);
		err = dev_caw(ld->dev, ld->hb_addr, ld->last_image, rep, NULL);
		if (err == 0) {
			err = dev_flush(ld->dev);
		} else if (err == -ECANCELED) {
			err = -EIO;     /* someone else owns the slot now: not ours to free */
		}
		if (ret == 0) {
			ret = err;
		}
	}
	pthread_mutex_unlock(&ld->beat_mu);
	dev_buf_free(rep);
out:
	hb_state_free(ld);
	return ret;
}

void lockd_abandon(struct lunfs_lockd *ld)
{
	if (ld == NULL) {
		return;
	}
	hb_thread_stop(ld);
	hb_state_free(ld);
}

int lockd_slot_alive(struct lunfs_lockd *ld, uint32_t slot, uint64_t gen, bool *alive)
{
	uint32_t ss = ld->sb.sector_size;
	struct lunfs_hb_slot s;
	uint8_t *img;
	int err;

	*alive = false;
	if (slot >= ld->sb.max_hosts) {
		return 0;
	}
	if (slot == ld->slot) {
		/* We know our own incarnation better than the disk does. */
		*alive = gen == 0 || gen == ld->gen;
		return 0;
	}
	img = dev_buf_alloc(ss);
	if (img == NULL) {
		return -ENOMEM;
	}
	err = dev_read(ld->dev, img, ss, layout_hb_addr(&ld->sb, slot));
	if (err < 0) {
		goto out;
	}
	/* A corrupt slot cannot be judged: treat it as holding (safe side). */
	err = hb_decode(&ld->codec, img, layout_hb_addr(&ld->sb, slot), &s);
	if (err == -EUCLEAN) {
		*alive = true;
		err = 0;
		goto out;
	}
	err = 0;
	/* A slot holds its locks while it is claimed by the same
	 * incarnation: LEAVING is still releasing, RECOVERING is not yet
	 * replayed, a DEAD one is not recovered yet (all on the safe side).
	 * A JOINING slot also holds the locks of its earlier generations: a
	 * host that crashed and mounted again claims its own slot with a new
	 * generation, and until it has replayed the journal of the old one
	 * (lockd_activate), a new holder would read home blocks that the
	 * replay then writes over (found by the 5-minute torture: lost
	 * directory entries after kill -9 and restart). */
	/* Not only JOINING: a slot that died while JOINING goes to
	 * RECOVERING at its new generation, and the recoverer replays the
	 * transactions of the earlier ones too. Only FREE (recovered) or
	 * LIVE at a later generation (replayed, activated) ends them. */
	if (s.state != LUNFS_HB_FREE &&
	    (gen == 0 || s.generation == gen || (gen < s.generation && s.state != LUNFS_HB_LIVE))) {
		*alive = true;
	}
out:
	dev_buf_free(img);
	return err;
}

struct lunfs_dev *lockd_dev(const struct lunfs_lockd *ld)
{
	return ld->dev;
}

uint32_t lockd_slot(const struct lunfs_lockd *ld)
{
	return ld->slot;
}

uint64_t lockd_gen(const struct lunfs_lockd *ld)
{
	return ld->gen;
}

const struct lunfs_hb_slot *lockd_self(const struct lunfs_lockd *ld)
{
	return &ld->joined;
}

const struct lockd_timeouts *lockd_timeouts(const struct lunfs_lockd *ld)
{
	return &ld->to;
}

bool lockd_fenced(struct lunfs_lockd *ld)
{
	bool fenced;

	pthread_mutex_lock(&ld->hb_mu);
	fenced = ld->fenced;
	pthread_mutex_unlock(&ld->hb_mu);
	return fenced;
}

void lockd_fence(struct lunfs_lockd *ld)
{
	pthread_mutex_lock(&ld->hb_mu);
	ld->fenced = true;
	pthread_mutex_unlock(&ld->hb_mu);
}
