/*
 * The PAXOS compare-and-write backend (LUNFS_CAW_PAXOS, lockd/paxos.c):
 * a device wrapper whose read/write/flush/discard pass through to the lower
 * device and whose caw is emulated with Disk Paxos leases over plain reads
 * and writes, so that it is correct between machines on a plain shared disk
 * (docs/DESIGN.md section 4, docs/FORMAT.md section 9).
 *
 * A host takes part under its heartbeat slot and generation, which it must
 * own (lockd claims the slot with a delta lease first). Two callbacks tie
 * the backend to the membership layer without a dependency on it:
 *   lease_ok(arg, target)  0 while we may still write `target` (the sector
 *                          about to be replaced), else -EIO: self-fencing.
 *                          Called at entry and immediately before EVERY
 *                          write the backend submits; after one refusal
 *                          the call writes nothing more and ends -EIO.
 *                          target PAXOS_TARGET_NONE: a release the device
 *                          writes on its own (idle thread, unstick), for
 *                          no sector: 0 only while the lease itself is
 *                          valid (never a sector's longer window).
 *   host_dead(arg, s, g)   1 when incarnation (slot s, generation g) can no
 *                          longer act (dead, fenced, or the slot has moved
 *                          to another generation), 0 while it may, < 0 on
 *                          error (treated as alive: the safe side). g = 0
 *                          asks about whoever holds slot s now.
 * An optional trace callback reports entering and leaving a round of ours
 * (tests build an ownership log from it).
 * A round of ours is kept after its CAW ("sticky") and released when it
 * has been idle for sticky_idle_ns, by a thread of the device: lease_ok
 * and trace are also called from that thread, so they must be thread-safe
 * and must not wait for anything a CAW may hold.
 */
#ifndef LUNFS_PAXOS_CAW_H
#define LUNFS_PAXOS_CAW_H

#include <stdint.h>

#include "lunfs/dev.h"
#include "lunfs/format.h"

enum paxos_event {
	/* A round decided for us: from here until EXIT we may run the
	 * read-compare-write of any sector the instance guards, once or many
	 * times (a kept round, "sticky"; lockd/paxos.c). */
	PAXOS_EV_OWNED = 1,
	PAXOS_EV_EXIT = 2,  /* leaving it: nothing more will be written under the round but its release */
};

#define PAXOS_TARGET_NONE UINT64_MAX

/* How long a round of ours is kept after its last CAW when nothing else
 * asks for it (paxos_host.sticky_idle_ns = 0). */
#define PAXOS_STICKY_IDLE_NS_DEFAULT 2000000ull

struct paxos_host {
	uint32_t slot;
	uint64_t gen;
	int (*lease_ok)(void *arg, uint64_t target);
	int (*host_dead)(void *arg, uint32_t slot, uint64_t gen);
	void (*trace)(void *arg, enum paxos_event ev, uint32_t instance, uint64_t round); /* may be NULL */
	void *arg;
	/* How long one CAW waits for a live owner to release before
	 * -ETIMEDOUT; 0 = dead_timeout + io_deadline of the superblock. */
	uint64_t wait_ns;
	/* A round of ours unused this long is released by the device's own
	 * thread; 0 = PAXOS_STICKY_IDLE_NS_DEFAULT, UINT64_MAX = only at its
	 * hold limit, dev_paxos_unstick or a lease failure (tests). */
	uint64_t sticky_idle_ns;
};

/* Wrap `lower` (not owned: closing the wrapper leaves it open). The
 * superblock gives the Paxos region and timing; *me is copied. The lower
 * device's sector size must not exceed sb->sector_size. */
int dev_paxos_open(struct lunfs_dev *lower, const struct lunfs_super *sb, const struct lunfs_codec *c,
		   const struct paxos_host *me, struct lunfs_dev **out);

/* Stop keeping rounds: release every round we still own (and every owed
 * release), lease-checked as every write is, and from now on release each
 * round right after its CAW, as a plain Disk Paxos lease would. lockd_leave
 * calls it while the lease is still good, before it frees the slot: once
 * the slot is FREE another host may claim it and write our host blocks.
 * 0, or the first error (-EIO: the lease refused a release, now owed). */
int dev_paxos_unstick(struct lunfs_dev *dev);

/* Write the releases that failed lease checks held back (rounds of ours
 * whose CAW ended with the lease lapsed, while we were not judged dead).
 * Call after a good lease renewal; cheap when nothing is owed. 0, or the
 * first error (-EIO: the lease lapsed again). */
int dev_paxos_release_owed(struct lunfs_dev *dev);

/* Counters since open (tests and benchmarks). */
struct paxos_stats {
	uint64_t caws;      /* dev_caw calls */
	uint64_t ballots;   /* ballots started */
	uint64_t aborts;    /* ballots aborted (a higher ballot or round seen) */
	uint64_t adopted;   /* ballots that decided another host's value */
	uint64_t waits;     /* polls of an instance owned by a live host */
	uint64_t timeouts;  /* CAWs that gave up with -ETIMEDOUT */
	uint64_t fast;      /* CAWs run under a round we already held: no ballot */
	uint64_t idle_releases; /* kept rounds released by the idle thread */
	uint64_t held;      /* rounds kept now */
	uint64_t owed;      /* releases owed now */
};
void dev_paxos_stats(struct lunfs_dev *dev, struct paxos_stats *out);

#endif
