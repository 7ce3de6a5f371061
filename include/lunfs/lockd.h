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
};
/* -EINVAL when the settings break T >= 3I + 2D or the bounds of FORMAT.md 3. */
int lockd_timeouts_compute(uint32_t hb_interval_ms, uint32_t dead_timeout_ms,
			   uint32_t io_deadline_ms, struct lockd_timeouts *out);

struct lockd_opts {
	const char *host_name;              /* <= 64 bytes */
	uint8_t host_uuid[LUNFS_UUID_SIZE]; /* identity of this host */
	bool no_thread;                     /* tests: no heartbeat thread; call lockd_beat() */
	const struct lockd_clock *clock;    /* NULL = the real clock; copied at join */
};

/* Claim a heartbeat slot and start renewing it.
 * - A slot already claimed by this host_uuid (a previous mount that
 *   crashed) is reclaimed with a new generation, so its journal is replayed
 *   by the caller; if that slot is still being renewed (the same host is
 *   mounted already), -EBUSY.
 * - Otherwise the first free (never written, stale or FREE) slot.
 * -ENOSPC when every slot is taken. */
int lockd_join(struct lunfs_dev *dev, const struct lunfs_super *sb, const struct lunfs_codec *c,
	       const struct lockd_opts *o, struct lunfs_lockd **out);
/* Stop renewing and free the slot (state FREE, generation kept). */
int lockd_leave(struct lunfs_lockd *ld);
/* Stop renewing and free the memory, writing nothing: what a crash leaves
 * on disk (tests), or a fenced mount dropping its state before it rejoins. */
void lockd_abandon(struct lunfs_lockd *ld);
uint32_t lockd_slot(const struct lunfs_lockd *ld);
uint64_t lockd_gen(const struct lunfs_lockd *ld);
/* The slot image we claimed (journal location etc.). */
const struct lunfs_hb_slot *lockd_self(const struct lunfs_lockd *ld);
/* One renewal (the heartbeat thread calls it every hb_interval). */
int lockd_beat(struct lunfs_lockd *ld);
/* Self-fencing gate: 0 while our lease is valid, -EIO once we could not
 * renew within the fence time. Checked right before metadata writes. */
int lockd_check_lease(struct lunfs_lockd *ld);
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

#endif
