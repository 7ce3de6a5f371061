/*
 * The monitor: how one host judges every other host's liveness
 * (docs/DESIGN.md sections 3 and 5.4, docs/FORMAT.md section 3).
 *
 * Every hb_interval the whole heartbeat region is read in one I/O. For
 * each slot the monitor keeps the value (generation, seq, state) and
 * `since`: the completion time, on our monotonic clock, of the first read
 * that returned that value. A claimed slot (LIVE, JOINING, LEAVING) is
 * DEAD when
 *
 *     submit time of our latest read - since >= the slot's own dead_timeout
 *
 * Why these two instants: the value cannot have changed between them
 * (seq only grows and a new claim bumps the generation, so a slot never
 * returns to an earlier value), and the real period without a change can
 * only be longer than what they measure (the host's write landed before
 * our first read sampled it, and our latest read sampled after it was
 * submitted). A monitor that stalls (its thread frozen) therefore never
 * judges from the stall itself: only reads count, not "now".
 *
 * Rules that follow from the mission:
 *   - each slot is judged by the dead_timeout_ms in ITS record, never by
 *     ours: a volume may be mounted by hosts with different timing;
 *   - no timestamp written by another host is ever used (beat_time_ns is
 *     display only);
 *   - a slot first seen is not judged until it has been watched for its
 *     whole timeout (since starts at our first read);
 *   - a corrupt slot (torn write) is UNKNOWN, never dead: it counts as a
 *     change when it becomes readable again.
 *
 * The member's scan (lockd_monitor_scan) acts on what it read: it fences
 * us at once if our own slot was taken (a recoverer wrote RECOVERING, or
 * it was freed under us), then recovers dead hosts (lockd/recover.c) and
 * serves hand-off requests aimed at us (lockd/handoff.c). It runs on its
 * own thread, not the heartbeat thread: a journal replay or a release that
 * flushes a large file must never delay our own renewal.
 *
 * Lock order: act_mu < scan_mu < mu (struct lockd_monitor, lockd_int.h);
 * mu is never held across I/O or a callback.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lockd_int.h"
#include "lunfs/heartbeat.h"

#define NS_PER_MS 1000000ull

const char *lockd_host_state_name(enum lockd_host_state s)
{
	switch (s) {
	case LOCKD_HOST_FREE:
		return "free";
	case LOCKD_HOST_LIVE:
		return "live";
	case LOCKD_HOST_DEAD:
		return "dead";
	case LOCKD_HOST_RECOVERING:
		return "recovering";
	case LOCKD_HOST_JOINING:
		return "joining";
	case LOCKD_HOST_LEAVING:
		return "leaving";
	case LOCKD_HOST_UNKNOWN:
		break;
	}
	return "unknown";
}

static uint64_t mon_now(const struct lockd_monitor *m)
{
	return m->clock.now_ns(m->clock.arg);
}

int lockd_monitor_open(struct lunfs_dev *dev, const struct lunfs_super *sb,
		       const struct lunfs_codec *c, const struct lockd_clock *clock,
		       struct lockd_monitor **out)
{
	struct lockd_monitor *m;
	uint64_t rlen = (uint64_t)sb->max_hosts * sb->sector_size;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		return -ENOMEM;
	}
	m->dev = dev;
	m->sb = *sb;
	m->codec = *c;
	if (clock != NULL) {
		m->clock = *clock;
	} else {
		lockd_clock_monotonic(&m->clock);
	}
	m->buf = dev_buf_alloc(rlen);
	m->image = malloc(rlen);
	m->slots = calloc(sb->max_hosts, sizeof(*m->slots));
	m->rec = calloc(sb->max_hosts, sizeof(*m->rec));
	if (m->buf == NULL || m->image == NULL || m->slots == NULL || m->rec == NULL) {
		dev_buf_free(m->buf);
		free(m->image);
		free(m->slots);
		free(m->rec);
		free(m);
		return -ENOMEM;
	}
	pthread_mutex_init(&m->scan_mu, NULL);
	pthread_mutex_init(&m->mu, NULL);
	*out = m;
	return 0;
}

void lockd_monitor_close(struct lockd_monitor *m)
{
	if (m == NULL) {
		return;
	}
	pthread_mutex_destroy(&m->mu);
	pthread_mutex_destroy(&m->scan_mu);
	free(m->rec);
	free(m->slots);
	free(m->image);
	dev_buf_free(m->buf);
	free(m);
}

int lockd_monitor_read(struct lockd_monitor *m)
{
	uint32_t n = m->sb.max_hosts, ss = m->sb.sector_size;
	uint64_t submit, done;
	int err;

	pthread_mutex_lock(&m->scan_mu);
	submit = mon_now(m);
	err = dev_read(m->dev, m->buf, (uint64_t)n * ss, m->sb.regions[LUNFS_REGION_HEARTBEAT].offset);
	done = mon_now(m);
	if (err < 0) {
		goto out;
	}
	pthread_mutex_lock(&m->mu);
	for (uint32_t i = 0; i < n; i++) {
		struct lockd_mon_slot *s = &m->slots[i];
		const uint8_t *img = m->buf + (uint64_t)i * ss;
		struct lunfs_hb_slot r;
		int st = hb_decode(&m->codec, img, layout_hb_addr(&m->sb, i), &r);
		bool changed;

		if (st != 0) {
			memset(&r, 0, sizeof(r));
		}
		changed = !s->seen || st != s->status ||
			  (st == 0 && (r.generation != s->gen || r.seq != s->seq || r.state != s->state));
		if (changed) {
			if (!s->seen) {
				s->first_read_ns = done;
			} else {
				s->changes++;
			}
			s->since_ns = done;
			s->seen = true;
			s->status = st;
			s->gen = r.generation;
			s->seq = r.seq;
			s->state = r.state;
			s->dead_timeout_ms = r.dead_timeout_ms;
		}
		m->rec[i] = r;
		memcpy(m->image + (uint64_t)i * ss, img, ss);
	}
	m->last_submit_ns = submit;
	m->reads++;
	pthread_mutex_unlock(&m->mu);
	err = 0;
out:
	pthread_mutex_unlock(&m->scan_mu);
	return err;
}

/* How long the current value has been seen unchanged, by our reads. */
static uint64_t mon_unchanged_ns(const struct lockd_monitor *m, const struct lockd_mon_slot *s)
{
	return m->last_submit_ns > s->since_ns ? m->last_submit_ns - s->since_ns : 0;
}

enum lockd_host_state lockd_mon_judge_locked(const struct lockd_monitor *m, uint32_t i)
{
	const struct lockd_mon_slot *s = &m->slots[i];
	bool timed_out;

	if (!s->seen) {
		return LOCKD_HOST_UNKNOWN;
	}
	if (s->status == -ENODATA || s->status == -ESTALE) {
		return LOCKD_HOST_FREE;
	}
	if (s->status != 0) {
		return LOCKD_HOST_UNKNOWN;
	}
	/* The decoder accepted the record, so a claimed slot's timing obeys
	 * FORMAT.md 3 and dead_timeout_ms is at least 300 ms. */
	timed_out = mon_unchanged_ns(m, s) >= (uint64_t)s->dead_timeout_ms * NS_PER_MS;
	switch (s->state) {
	case LUNFS_HB_FREE:
		return LOCKD_HOST_FREE;
	case LUNFS_HB_RECOVERING:
		return LOCKD_HOST_RECOVERING;
	case LUNFS_HB_LIVE:
		return timed_out ? LOCKD_HOST_DEAD : LOCKD_HOST_LIVE;
	case LUNFS_HB_JOINING:
		return timed_out ? LOCKD_HOST_DEAD : LOCKD_HOST_JOINING;
	case LUNFS_HB_LEAVING:
		return timed_out ? LOCKD_HOST_DEAD : LOCKD_HOST_LEAVING;
	default:
		return LOCKD_HOST_UNKNOWN;
	}
}

bool lockd_mon_replayed_locked(const struct lockd_monitor *m, uint32_t slot, uint64_t gen)
{
	const struct lockd_mon_slot *s;

	if (slot >= m->sb.max_hosts) {
		return false;
	}
	s = &m->slots[slot];
	if (!s->seen || (s->status != 0 && s->status != -ENODATA && s->status != -ESTALE)) {
		return false;
	}
	if (s->status != 0 || s->state == LUNFS_HB_FREE) {
		return true;
	}
	return s->gen > gen && s->state == LUNFS_HB_LIVE;
}

bool lockd_mon_dead_locked(const struct lockd_monitor *m, uint32_t slot, uint64_t gen)
{
	const struct lockd_mon_slot *s;

	if (slot >= m->sb.max_hosts) {
		return false;
	}
	s = &m->slots[slot];
	if (!s->seen || (s->status != 0 && s->status != -ENODATA && s->status != -ESTALE)) {
		return false;   /* cannot tell: the safe answer */
	}
	if (s->status != 0) {
		return true;    /* nobody has ever claimed it on this volume */
	}
	if (s->gen != gen) {
		/* A later claim means (slot, gen) is over; an earlier
		 * generation than the one asked about makes no sense: do
		 * not call that dead. */
		return s->gen > gen;
	}
	switch (lockd_mon_judge_locked(m, slot)) {
	case LOCKD_HOST_DEAD:
	case LOCKD_HOST_RECOVERING:
	case LOCKD_HOST_FREE:
		return true;
	default:
		return false;
	}
}

static void mon_info_fill(const struct lockd_monitor *m, uint32_t i, struct lockd_host_info *o)
{
	const struct lockd_mon_slot *s = &m->slots[i];

	memset(o, 0, sizeof(*o));
	o->status = s->seen ? s->status : -ENODATA;
	o->rec = m->rec[i];
	o->state = lockd_mon_judge_locked(m, i);
	o->changes = s->changes;
	if (s->seen) {
		o->age_ms = mon_unchanged_ns(m, s) / NS_PER_MS;
		o->watched_ms = (m->last_submit_ns > s->first_read_ns ?
				 m->last_submit_ns - s->first_read_ns : 0) / NS_PER_MS;
	}
}

void lockd_monitor_snapshot(struct lockd_monitor *m, struct lockd_host_info *out)
{
	pthread_mutex_lock(&m->mu);
	for (uint32_t i = 0; i < m->sb.max_hosts; i++) {
		mon_info_fill(m, i, &out[i]);
	}
	pthread_mutex_unlock(&m->mu);
}

/* ---- the member's monitor ---------------------------------------------------- */

int lockd_mon_init(struct lunfs_lockd *ld, const struct lockd_clock *injected)
{
	uint32_t n = ld->sb.max_hosts;
	pthread_condattr_t ca;
	int err;

	/* An injected clock (tests) times everything; the real one times
	 * others on CLOCK_MONOTONIC (lockd/timeouts.c says why). */
	err = lockd_monitor_open(ld->dev, &ld->sb, &ld->codec, injected, &ld->mon);
	if (err < 0) {
		return err;
	}
	ld->req_done = calloc((size_t)n * LUNFS_HB_REQUESTS, sizeof(*ld->req_done));
	ld->req_done_gen = calloc(n, sizeof(*ld->req_done_gen));
	if (ld->req_done == NULL || ld->req_done_gen == NULL) {
		free(ld->req_done);
		free(ld->req_done_gen);
		lockd_monitor_close(ld->mon);
		ld->mon = NULL;
		return -ENOMEM;
	}
	pthread_mutex_init(&ld->act_mu, NULL);
	pthread_mutex_init(&ld->mon_stop_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ld->mon_stop_cv, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

void lockd_mon_fini(struct lunfs_lockd *ld)
{
	if (ld->mon == NULL) {
		return;
	}
	pthread_cond_destroy(&ld->mon_stop_cv);
	pthread_mutex_destroy(&ld->mon_stop_mu);
	pthread_mutex_destroy(&ld->act_mu);
	free(ld->req_done_gen);
	free(ld->req_done);
	lockd_monitor_close(ld->mon);
	ld->mon = NULL;
}

/* Our own slot as the scan read it: if it is no longer our incarnation
 * (a recoverer wrote RECOVERING, or freed it), fence now rather than at
 * the next beat. Our own writes only ever go LIVE -> LIVE while the
 * monitor runs (it is stopped before leave writes FREE). */
static void mon_self_check(struct lunfs_lockd *ld)
{
	struct lockd_monitor *m = ld->mon;
	const struct lockd_mon_slot *s;
	bool taken;

	pthread_mutex_lock(&m->mu);
	s = &m->slots[ld->slot];
	taken = s->seen && s->status == 0 &&
		(s->gen != ld->gen || s->state == LUNFS_HB_RECOVERING || s->state == LUNFS_HB_FREE);
	pthread_mutex_unlock(&m->mu);
	if (!taken) {
		return;
	}
	pthread_mutex_lock(&ld->hb_mu);
	if (!ld->fenced && !ld->left) {
		ld->fenced = true;
		fprintf(stderr, "lunfs: heartbeat slot %u (generation %llu) was taken over by another "
			"host: fenced, no more writes\n", ld->slot, (unsigned long long)ld->gen);
	}
	pthread_mutex_unlock(&ld->hb_mu);
}

int lockd_monitor_scan(struct lunfs_lockd *ld)
{
	int err, e;

	pthread_mutex_lock(&ld->act_mu);
	err = lockd_monitor_read(ld->mon);
	if (err < 0) {
		goto out;
	}
	mon_self_check(ld);
	err = lockd_recover_run(ld);
	e = lockd_handoff_serve(ld);
	if (err == 0) {
		err = e;
	}
	if (ld->tick != NULL) {
		ld->tick(ld->tick_arg);
	}
out:
	pthread_mutex_unlock(&ld->act_mu);
	return err;
}

void lockd_set_tick(struct lunfs_lockd *ld, lockd_tick_fn fn, void *arg)
{
	pthread_mutex_lock(&ld->act_mu);
	ld->tick = fn;
	ld->tick_arg = arg;
	pthread_mutex_unlock(&ld->act_mu);
}

enum lockd_host_state lockd_host_state(struct lunfs_lockd *ld, uint32_t slot, uint64_t *gen)
{
	struct lockd_monitor *m = ld->mon;
	enum lockd_host_state st;

	if (slot >= ld->sb.max_hosts) {
		return LOCKD_HOST_UNKNOWN;
	}
	if (slot == ld->slot) {
		if (gen != NULL) {
			*gen = ld->gen;
		}
		return LOCKD_HOST_LIVE;
	}
	pthread_mutex_lock(&m->mu);
	st = lockd_mon_judge_locked(m, slot);
	if (gen != NULL) {
		*gen = m->slots[slot].gen;
	}
	pthread_mutex_unlock(&m->mu);
	return st;
}

bool lockd_host_dead(struct lunfs_lockd *ld, uint32_t slot, uint64_t gen)
{
	bool dead;

	if (slot == ld->slot) {
		/* We know our own incarnations: only earlier ones are over. */
		return gen < ld->gen;
	}
	pthread_mutex_lock(&ld->mon->mu);
	dead = lockd_mon_dead_locked(ld->mon, slot, gen);
	pthread_mutex_unlock(&ld->mon->mu);
	return dead;
}

void lockd_hosts_snapshot(struct lunfs_lockd *ld, struct lockd_host_info *out)
{
	lockd_monitor_snapshot(ld->mon, out);
	if (ld->slot < ld->sb.max_hosts) {
		out[ld->slot].state = LOCKD_HOST_LIVE;
	}
}

/* ---- the monitor thread ----------------------------------------------------- */

static void *mon_thread_main(void *arg)
{
	struct lunfs_lockd *ld = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&ld->mon_stop_mu);
	while (!ld->mon_stop) {
		/* A quarter interval: requests aimed at us are served well
		 * within one interval (the hand-off target). Death judgements
		 * do not depend on the scan rate: they compare the times of
		 * our own reads with each slot's own timeout. */
		uint64_t ns = (uint64_t)next.tv_nsec + ld->to.interval_ns / 4;
		struct timespec now;
		int err;

		next.tv_sec += (time_t)(ns / 1000000000ull);
		next.tv_nsec = (long)(ns % 1000000000ull);
		while (!ld->mon_stop &&
		       pthread_cond_timedwait(&ld->mon_stop_cv, &ld->mon_stop_mu, &next) == 0) {
		}
		if (ld->mon_stop) {
			break;
		}
		pthread_mutex_unlock(&ld->mon_stop_mu);
		/* A failed read only delays judgements: nothing is decided
		 * from a read that did not happen. */
		err = lockd_monitor_scan(ld);
		if (err < 0 && err != -EIO && err != -ETIMEDOUT) {
			fprintf(stderr, "lunfs: heartbeat monitor scan failed: %s\n", strerror(-err));
		}
		pthread_mutex_lock(&ld->mon_stop_mu);
		/* A scan that ran long (a recovery) is not followed by a
		 * burst of catch-up scans. */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next.tv_sec + 1) {
			next = now;
		}
	}
	pthread_mutex_unlock(&ld->mon_stop_mu);
	return NULL;
}

int lockd_mon_start(struct lunfs_lockd *ld)
{
	int err;

	ld->mon_stop = false;
	err = -pthread_create(&ld->mon_thread, NULL, mon_thread_main, ld);
	if (err == 0) {
		ld->mon_running = true;
	}
	return err;
}

void lockd_mon_stop(struct lunfs_lockd *ld)
{
	if (!ld->mon_running) {
		return;
	}
	pthread_mutex_lock(&ld->mon_stop_mu);
	ld->mon_stop = true;
	pthread_cond_broadcast(&ld->mon_stop_cv);
	pthread_mutex_unlock(&ld->mon_stop_mu);
	pthread_join(ld->mon_thread, NULL);
	ld->mon_running = false;
}
