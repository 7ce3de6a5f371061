/*
 * lockd: this host's membership of the volume (heartbeat slot) and its
 * on-disk locks. The filesystem core takes locks only through this
 * interface; the cluster issue fills in hand-off requests, dead-host
 * recovery and the Paxos CAW backend behind the same calls.
 *
 * Every lock record change is a compare-and-write (dev_caw) of the record's
 * sector, expecting the image last read, so two hosts can never both win.
 */
#ifndef LUNFS_LOCKD_H
#define LUNFS_LOCKD_H

#include <stdbool.h>
#include <stdint.h>

#include "lunfs/dev.h"
#include "lunfs/format.h"

struct lunfs_lockd;

/* The clock lockd judges its own lease by (and waits with while it watches
 * another slot). Injectable so that tests run lease expiry without
 * sleeping. now_ns must never go backwards; the default is CLOCK_BOOTTIME
 * (it keeps counting through a suspend, so a resumed host knows its lease
 * may be gone) and sleep_ns a nanosleep. */
struct lockd_clock {
	uint64_t (*now_ns)(void *arg);
	void (*sleep_ns)(void *arg, uint64_t ns);
	void *arg;
};

/* Every duration lockd uses, derived from one host's three settings
 * (lockd/timeouts.c; docs/DESIGN.md section 3). */
struct lockd_timeouts {
	uint64_t interval_ns;   /* I: renew this often */
	uint64_t io_deadline_ns;/* D: an I/O not done by then has failed */
	uint64_t dead_ns;       /* T: unchanged this long on the observer's clock = dead */
	uint64_t fence_ns;      /* F = T - D - I: no write submitted after this since the last good renewal */
	uint64_t watch_ns;      /* 2 I: how long to watch a slot to see it renewed */
	uint64_t claim_ns;      /* C = D / 8: delta-lease join, read submit to claim submit */
	uint64_t join_wait_ns;  /* W = (C + D)(1 + 1/1024): claim completed to read-back */
};
/* -EINVAL when the settings break T >= 3I + 2D or the bounds of FORMAT.md 3. */
int lockd_timeouts_compute(uint32_t hb_interval_ms, uint32_t dead_timeout_ms,
			   uint32_t io_deadline_ms, struct lockd_timeouts *out);

struct lockd_opts {
	const char *host_name;              /* <= 64 bytes */
	uint8_t host_uuid[LUNFS_UUID_SIZE]; /* identity of this host */
	bool no_thread;                     /* tests: no heartbeat thread; call lockd_beat() */
	const struct lockd_clock *clock;    /* NULL = the real clock; copied at join */
	/* How slots are claimed and records compare-and-written. LOCAL (0):
	 * dev_caw of `dev` (one machine). PAXOS: the slot is claimed with a
	 * delta lease (plain writes and a wait of timeouts.join_wait_ns),
	 * then every CAW goes through a Disk Paxos wrapper of `dev`
	 * (lockd/paxos.c) run under our slot and generation; lockd_dev()
	 * returns it. It must be the volume's: lockd_caw_backend(sb). */
	enum lunfs_caw_backend caw;
	/* Claim the slot as JOINING and stay so until lockd_activate: while
	 * a slot is JOINING, every lock of its EARLIER generations still
	 * counts as held (lockd_slot_alive), because the journal they wrote
	 * may not be replayed yet. A mount sets it and activates once it has
	 * replayed its own journal; without it the slot goes LIVE at once. */
	bool stay_joining;
	/* Test facility: append every lock grant, release, takeover,
	 * recovery, join and leave to this file (lockd/grantlog.c), for the
	 * torture's double-grant checker. NULL or "" = no log. */
	const char *lock_log;
	/* PAXOS: how long a Paxos round of ours stays ours after its last
	 * compare-and-write (paxos_host.sticky_idle_ns); 0 = the default.
	 * Tests set it long to hold a round on purpose. */
	uint64_t paxos_sticky_idle_ns;
};

/* The backend every host of the volume must use, fixed at mkfs
 * (docs/FORMAT.md 18.8): PAXOS when the superblock has
 * LUNFS_FEAT_INCOMPAT_PAXOS, else LOCAL. */
enum lunfs_caw_backend lockd_caw_backend(const struct lunfs_super *sb);

/* Claim a heartbeat slot and start renewing it.
 * - A slot already claimed by this host_uuid (a previous mount that
 *   crashed) is reclaimed with a new generation, so its journal is replayed
 *   by the caller; if that slot is still being renewed (the same host is
 *   mounted already), -EBUSY.
 * - Otherwise the first free (never written, stale or FREE) slot.
 * -ENOSPC when every slot is taken. -EMEDIUMTYPE when o->caw is LOCAL on
 * a PAXOS volume: LOCAL's locks and Paxos rounds do not exclude each
 * other, and LOCAL is the zero value a caller gets by not choosing. (PAXOS
 * on a LOCAL volume is let through for the lockd unit tests and benchmarks,
 * which run both backends on one kind of volume; a mount always passes
 * lockd_caw_backend.) */
int lockd_join(struct lunfs_dev *dev, const struct lunfs_super *sb, const struct lunfs_codec *c,
	       const struct lockd_opts *o, struct lunfs_lockd **out);
/* JOINING -> LIVE (lockd_opts.stay_joining): the earlier generations of
 * our slot no longer hold anything. 0 when already LIVE. Written by
 * compare-and-write of our last image, and flushed. */
int lockd_activate(struct lunfs_lockd *ld);
/* Stop renewing and free the slot (state FREE, generation kept). */
int lockd_leave(struct lunfs_lockd *ld);
/* Stop renewing and free the memory, writing nothing: what a crash leaves
 * on disk (tests), or a fenced mount dropping its state before it rejoins. */
void lockd_abandon(struct lunfs_lockd *ld);
uint32_t lockd_slot(const struct lunfs_lockd *ld);
uint64_t lockd_gen(const struct lunfs_lockd *ld);
/* The device lockd does its I/O on: `dev` of lockd_join, or its Paxos
 * wrapper in PAXOS mode (whose dev_caw is correct between machines). Owned
 * by lockd: valid until lockd_leave/lockd_abandon. */
struct lunfs_dev *lockd_dev(const struct lunfs_lockd *ld);
/* The slot image we claimed (journal location etc.). */
const struct lunfs_hb_slot *lockd_self(const struct lunfs_lockd *ld);
/* One renewal (the heartbeat thread calls it every hb_interval). */
int lockd_beat(struct lunfs_lockd *ld);
/* Self-fencing gate: 0 while our lease is valid, -EIO once we could not
 * renew within the fence time. Checked right before metadata writes. */
int lockd_check_lease(struct lunfs_lockd *ld);
/* Has this incarnation lost its slot for good (a recoverer wrote it, or it
 * was freed or claimed again under us: the renewal's compare-and-write
 * failed or the monitor read it)? Unlike a lapsed lease, which becomes
 * valid again once a renewal succeeds, a fence never lifts: the mount must
 * drop everything and join again as a new generation. No I/O. */
bool lockd_fenced(struct lunfs_lockd *ld);
/* Fence this incarnation now (a mount being abandoned): from here on lockd
 * writes nothing (no renewal, no lock record, no slot change) and every
 * lease check fails, exactly as if the slot had been taken. */
void lockd_fence(struct lunfs_lockd *ld);
/* Our timing (the superblock's, as written into our slot). */
const struct lockd_timeouts *lockd_timeouts(const struct lunfs_lockd *ld);

/* Acquire lock record at lock_addr (kind, id: written into a FREE record)
 * in `mode`. Returns 0; -EBUSY when a live host holds it in a conflicting
 * mode (*holder_slot, if not NULL, gets its slot index); -EUCLEAN when the
 * record is corrupt. A record held by a dead generation of a slot, or by a
 * previous generation of our own slot, is taken over. Reentrant for the
 * same mode: acquiring a lock we hold is a no-op. */
int lockd_lock(struct lunfs_lockd *ld, uint64_t lock_addr, uint8_t kind, uint64_t id,
	       uint8_t mode, uint32_t *holder_slot);
int lockd_unlock(struct lunfs_lockd *ld, uint64_t lock_addr);
/* Read the record (for summaries and `lunfs locks`). */
int lockd_read(struct lunfs_lockd *ld, uint64_t lock_addr, struct lunfs_lock *out);
/* Replace the payload (cluster summary) of a lock we hold. */
int lockd_set_payload(struct lunfs_lockd *ld, uint64_t lock_addr, const uint8_t payload[64]);
/* Do we hold lock_addr (in our table)? Returns the mode, or LUNFS_LOCK_FREE. */
uint8_t lockd_held(struct lunfs_lockd *ld, uint64_t lock_addr);

/* ---- the monitor: every host watches every slot (lockd/monitor.c) ------
 * The whole heartbeat region is read every hb_interval. For each slot the
 * monitor remembers when, on THIS host's monotonic clock, it first read the
 * slot's current (generation, seq, state). A claimed slot is DEAD once the
 * value has stayed the same for that slot's OWN dead_timeout_ms, measured
 * between reads of ours (never from the timestamps hosts write). */
enum lockd_host_state {
	LOCKD_HOST_UNKNOWN = 0,  /* not read yet, or the slot is corrupt */
	LOCKD_HOST_FREE,         /* FREE, never written or left by another volume */
	LOCKD_HOST_LIVE,         /* LIVE and not (yet) judged dead */
	LOCKD_HOST_DEAD,         /* claimed, unchanged for its own dead timeout */
	LOCKD_HOST_RECOVERING,   /* a recoverer has claimed it */
	LOCKD_HOST_JOINING,      /* JOINING, not judged dead */
	LOCKD_HOST_LEAVING,      /* LEAVING, not judged dead */
};
const char *lockd_host_state_name(enum lockd_host_state s);

/* One slot as a monitor sees it (tools, logs). */
struct lockd_host_info {
	int status;                  /* hb_decode result of the last read */
	struct lunfs_hb_slot rec;    /* as recorded (zeroed unless status 0) */
	enum lockd_host_state state; /* as observed */
	uint64_t age_ms;             /* since we first read the current value */
	uint64_t watched_ms;         /* since our first read of the slot */
	uint64_t changes;            /* changes seen since our first read */
};

/* A monitor without a membership, for tools: reads only. clock NULL =
 * CLOCK_MONOTONIC (an injected clock: its now_ns). */
struct lockd_monitor;
int lockd_monitor_open(struct lunfs_dev *dev, const struct lunfs_super *sb,
		       const struct lunfs_codec *c, const struct lockd_clock *clock,
		       struct lockd_monitor **out);
void lockd_monitor_close(struct lockd_monitor *m);
/* One read of the whole region; updates the change times. */
int lockd_monitor_read(struct lockd_monitor *m);
/* out[] has sb->max_hosts entries. */
void lockd_monitor_snapshot(struct lockd_monitor *m, struct lockd_host_info *out);

/* The member's monitor. With the heartbeat thread (opts.no_thread false) a
 * monitor thread calls lockd_monitor_scan every interval; with no_thread
 * the caller does. One scan: read the region, fence ourselves if our slot
 * was taken, recover dead hosts (only when a recover callback is set), and
 * serve hand-off requests aimed at us. Callbacks run inside it. */
int lockd_monitor_scan(struct lunfs_lockd *ld);
/* State of `slot` as observed (our own slot: LIVE); *gen (may be NULL)
 * gets its recorded generation. */
enum lockd_host_state lockd_host_state(struct lunfs_lockd *ld, uint32_t slot, uint64_t *gen);
/* Can the incarnation (slot, gen) no longer act? True when the slot is
 * judged DEAD at that generation, is RECOVERING or FREE, or has moved to a
 * later generation. False when not observed long enough (safe side). No
 * I/O: answers from the last scan (the Paxos backend's host_dead). */
bool lockd_host_dead(struct lunfs_lockd *ld, uint32_t slot, uint64_t gen);
/* out[] has max_hosts entries. */
void lockd_hosts_snapshot(struct lunfs_lockd *ld, struct lockd_host_info *out);

/* ---- dead-host recovery (lockd/recover.c) -------------------------------
 * Called by the one survivor that won the compare-and-write of the dead
 * slot to RECOVERING (dead = that image: its generation, its journal).
 * Replays the dead host's journal and reclaims its orphans; must be
 * idempotent (a recoverer that dies is taken over and the next one starts
 * again). 0: the slot is then freed; < 0: it stays RECOVERING by us and is
 * retried on a later scan. Without a callback nobody recovers: a dead
 * host's journal must never be skipped. Not to be set from a callback. */
typedef int (*lockd_recover_fn)(void *arg, uint32_t slot, const struct lunfs_hb_slot *dead);
void lockd_set_recover(struct lunfs_lockd *ld, lockd_recover_fn fn, void *arg);

/* ---- lock hand-off (lockd/handoff.c) ------------------------------------
 * Called when another host asks for lock_addr, which we hold (in our
 * table), in wanted_mode: flush what it covers, then lockd_unlock (or
 * keep it and return -EBUSY: asked again next scan while the request
 * stands). Without a callback a lock we hold is never given up behind the
 * upper layer's back; a stale holder bit or ownership of an earlier
 * incarnation of our slot is cleared by lockd itself. */
typedef int (*lockd_release_fn)(void *arg, uint64_t lock_addr, uint8_t wanted_mode);
void lockd_set_release(struct lunfs_lockd *ld, lockd_release_fn fn, void *arg);
/* Called at the end of every monitor scan (about every quarter interval),
 * after recovery and hand-offs, under the same rules as the other
 * callbacks: for the upper layer's periodic lock housekeeping (giving up
 * locks nobody here uses any more). NULL: none. */
typedef void (*lockd_tick_fn)(void *arg);
void lockd_set_tick(struct lunfs_lockd *ld, lockd_tick_fn fn, void *arg);
/* lockd_lock, but while a live host holds the lock in a conflicting mode,
 * ask it (request in the record and in our heartbeat slot) and wait, up to
 * timeout_ms on our clock. -EBUSY at the timeout, *holder_slot = holder. */
int lockd_lock_wait(struct lunfs_lockd *ld, uint64_t lock_addr, uint8_t kind, uint64_t id,
		    uint8_t mode, uint32_t timeout_ms, uint32_t *holder_slot);

#endif
