/*
 * lockd's private state, shared by lockd/hb.c (membership: join, beat,
 * leave, the lease), lockd/lockd.c (lock records) and lockd/timeouts.c.
 * Nothing outside lockd/ includes this.
 *
 * Lock order: act_mu (the monitor's act phase; callbacks run under it and
 * may lock/unlock) < lock_mu < hb_mu. lock_mu is held across the I/O of one lock
 * operation (so operations on this host are serialised and the table always
 * matches what we last wrote); hb_mu only around reads and updates of the
 * heartbeat fields, never across I/O, except that lockd_beat holds beat_mu
 * (which nothing else nests inside) across its CAW so two beats never race
 * for the same expected image.
 */
#ifndef LUNFS_LOCKD_INT_H
#define LUNFS_LOCKD_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lunfs/lockd.h"

struct lockd_held_lock {
	uint64_t addr;
	uint8_t mode;
	struct lockd_held_lock *next;
};

#define LOCKD_HELD_BUCKETS 1024u
/* lockd_release_all releases at most this many exclusive holds one by one
 * (so that `lunfs locks` shows a cleanly departed host holding nothing);
 * the rest are voided by the slot going FREE. */
#define LOCKD_LEAVE_RELEASE_MAX 256u

struct lunfs_lockd {
	/* Set at join, read-only after. dev is what every lock record and
	 * slot CAW goes through: `lower` (the caller's device) in LOCAL mode,
	 * or pdev, the Paxos wrapper of lower (lockd/paxos.c), in PAXOS mode
	 * once the slot is claimed. */
	struct lunfs_dev *dev;
	struct lunfs_dev *lower;
	struct lunfs_dev *pdev;        /* PAXOS mode: ours to close */
	enum lunfs_caw_backend caw;
	struct lunfs_super sb;
	struct lunfs_codec codec;
	struct lockd_clock clock;
	struct lockd_timeouts to;      /* ours, from the superblock */
	uint32_t slot;
	uint64_t gen;
	uint64_t hb_addr;
	struct lunfs_hb_slot joined;   /* the image we claimed (lockd_self) */
	int grantlog_fd;               /* the lock grant log (lockd/grantlog.c); -1 = none */
	bool stay_joining;             /* lockd_opts.stay_joining */
	uint64_t paxos_idle_ns;        /* lockd_opts.paxos_sticky_idle_ns */
	bool joining;                  /* JOINING, not activated yet (hb_mu) */

	/* beat_mu: serialises renewals (lockd_beat, lockd_leave). */
	pthread_mutex_t beat_mu;
	uint8_t *last_image;           /* sector_size: what we last wrote to our slot */
	struct lunfs_hb_slot self;     /* decoded last_image */

	/* hb_mu: */
	pthread_mutex_t hb_mu;
	uint64_t last_ok_submit_ns;    /* clock time the last good renewal was submitted */
	bool fenced;                   /* our slot was taken: never write again */
	bool left;

	/* The heartbeat thread. */
	bool thread_running;
	pthread_t thread;
	pthread_mutex_t stop_mu;
	pthread_cond_t stop_cv;
	bool stop;                     /* stop_mu */

	/* lock_mu: the table of locks we hold, and every lock record change. */
	pthread_mutex_t lock_mu;
	struct lockd_held_lock *held[LOCKD_HELD_BUCKETS];
	uint64_t nheld;

	/* The monitor (lockd/monitor.c, recover.c, handoff.c). act_mu
	 * serialises the act phase of scans (recovery, serving requests) and
	 * guards the callbacks and req_done; nothing of lockd is held while a
	 * callback runs except act_mu, so callbacks may lock and unlock. */
	struct lockd_monitor *mon;
	pthread_mutex_t act_mu;
	lockd_recover_fn recover;
	void *recover_arg;
	lockd_release_fn release;
	void *release_arg;
	lockd_tick_fn tick;
	void *tick_arg;
	uint32_t *req_done;            /* [requester * 8 + entry]: serial handled */
	uint64_t *req_done_gen;        /* [requester]: its generation then */
	uint32_t req_serial;           /* beat_mu: last request serial we used */
	bool mon_running;
	pthread_t mon_thread;
	pthread_mutex_t mon_stop_mu;
	pthread_cond_t mon_stop_cv;
	bool mon_stop;                 /* mon_stop_mu */
};

/* A monitor's view of one slot (lockd/monitor.c). */
struct lockd_mon_slot {
	bool seen;                     /* read at least once */
	int status;                    /* decode result of the last read */
	uint8_t state;
	uint64_t gen, seq;
	uint32_t dead_timeout_ms;
	uint64_t first_read_ns;        /* our first read of the slot (completion) */
	uint64_t since_ns;             /* completion of the read that first saw the current value */
	uint64_t changes;
};

/* mu guards everything below it; scan_mu serialises reads (buf). Lock
 * order: lockd's act_mu < scan_mu < mu; mu is never held across I/O. */
struct lockd_monitor {
	struct lunfs_dev *dev;
	struct lunfs_super sb;
	struct lunfs_codec codec;
	struct lockd_clock clock;      /* monotonic: observing others */
	pthread_mutex_t scan_mu;
	uint8_t *buf;                  /* scan_mu: read buffer */
	pthread_mutex_t mu;
	uint64_t last_submit_ns;       /* submission of the latest read */
	uint64_t reads;
	struct lockd_mon_slot *slots;  /* max_hosts */
	struct lunfs_hb_slot *rec;     /* max_hosts, decoded latest read */
	uint8_t *image;                /* max_hosts sectors, raw latest read */
};

/* lockd/monitor.c: the member's monitor, set up by lockd/hb.c. */
int lockd_mon_init(struct lunfs_lockd *ld, const struct lockd_clock *injected);
int lockd_mon_start(struct lunfs_lockd *ld);
void lockd_mon_stop(struct lunfs_lockd *ld);
void lockd_mon_fini(struct lunfs_lockd *ld);
/* Judge slot i from the monitor's state (m->mu held). */
enum lockd_host_state lockd_mon_judge_locked(const struct lockd_monitor *m, uint32_t i);
bool lockd_mon_dead_locked(const struct lockd_monitor *m, uint32_t slot, uint64_t gen);

/* lockd/recover.c: recover what the latest scan found dead. */
int lockd_recover_run(struct lunfs_lockd *ld);
/* lockd/handoff.c: serve requests aimed at us found by the latest scan. */
int lockd_handoff_serve(struct lunfs_lockd *ld);

/* lockd/lockd.c, for hand-off: */
/* Record our request (serial, mode) in the lock record. 0, or 1 when the
 * record shows nobody else holding it (try again at once). */
int lockd_request_note(struct lunfs_lockd *ld, uint64_t lock_addr, uint8_t mode, uint32_t serial);
/* A request reached us for a lock not in our table: clear our holder bit
 * or ownership left by an earlier incarnation of our slot. 0 nothing to
 * do, 1 cleared, 2 held in our table (the caller asks the upper layer),
 * -EAGAIN while we are JOINING (ask again later). */
int lockd_release_stale(struct lunfs_lockd *ld, uint64_t lock_addr);

/* lockd/timeouts.c */
void lockd_clock_default(struct lockd_clock *out);
/* CLOCK_MONOTONIC: how we time other hosts (it stops while this machine is
 * suspended, so waking up never makes everybody look dead at once). */
void lockd_clock_monotonic(struct lockd_clock *out);
uint64_t lockd_now(const struct lunfs_lockd *ld);

/* lockd/hb_scan.c: decode a raw heartbeat region image (max_hosts sectors). */
void hb_scan_decode(const struct lunfs_super *sb, const struct lunfs_codec *c, const uint8_t *buf,
		    struct lunfs_hb_slot *slots, int *status);

/* lockd/hb.c: is (slot, gen) an incarnation that may still hold locks?
 * gen 0 = any generation (holder bits carry none). */
int lockd_slot_alive(struct lunfs_lockd *ld, uint32_t slot, uint64_t gen, bool *alive);
/* Has everything (slot, gen) journaled been replayed, as of the last
 * scan? True when the slot is FREE (recovered or left) or LIVE at a later
 * generation (which activates only after its replay). (m->mu held.) */
bool lockd_mon_replayed_locked(const struct lockd_monitor *m, uint32_t slot, uint64_t gen);

/* lockd/grantlog.c: the lock grant log, a test facility (see there for
 * the records and WHEN each must be written). open: path NULL or "" = no
 * log; sets grantlog_fd (-1 first, so close is always safe). The record
 * functions do nothing without a log; TS is lockd_grantlog_now(), taken by
 * the caller at the instant the record speaks of. */
int lockd_grantlog_open(struct lunfs_lockd *ld, const char *path);
void lockd_grantlog_close(struct lunfs_lockd *ld);
bool lockd_grantlog_on(const struct lunfs_lockd *ld);
uint64_t lockd_grantlog_now(void);
/* "grant"/"release" of KIND:ID in `mode` by our (slot, gen). */
void lockd_grantlog_lock(struct lunfs_lockd *ld, const char *what, uint8_t kind, uint64_t id,
			 uint8_t mode, uint64_t ts);
/* We displaced (old_slot, old_gen)'s claim (old_gen 0: a holder bit). */
void lockd_grantlog_takeover(struct lunfs_lockd *ld, uint8_t kind, uint64_t id, uint8_t old_mode,
			     uint32_t old_slot, uint64_t old_gen, uint64_t ts);
/* "recover", "join" or "leave" of (slot, gen). */
void lockd_grantlog_slot(struct lunfs_lockd *ld, const char *what, uint32_t slot, uint64_t gen,
			 uint64_t ts);

/* lockd/lockd.c: release every lock in the table (leave). */
int lockd_release_all(struct lunfs_lockd *ld);
void lockd_table_free(struct lunfs_lockd *ld);

#endif
