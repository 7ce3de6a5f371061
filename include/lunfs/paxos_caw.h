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
 *   host_dead(arg, s, g)   1 when incarnation (slot s, generation g) can no
 *                          longer act (dead, fenced, or the slot has moved
 *                          to another generation), 0 while it may, < 0 on
 *                          error (treated as alive: the safe side). g = 0
 *                          asks about whoever holds slot s now.
 * An optional trace callback reports entering and leaving the guarded
 * read-compare-write (tests build an ownership log from it).
 */
#ifndef LUNFS_PAXOS_CAW_H
#define LUNFS_PAXOS_CAW_H

#include <stdint.h>

#include "lunfs/dev.h"
#include "lunfs/format.h"

enum paxos_event {
	PAXOS_EV_OWNED = 1, /* round decided for us: entering read-compare-write */
	PAXOS_EV_EXIT = 2,  /* leaving it: nothing more will be written under the round */
};

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
};

/* Wrap `lower` (not owned: closing the wrapper leaves it open). The
 * superblock gives the Paxos region and timing; *me is copied. The lower
 * device's sector size must not exceed sb->sector_size. */
int dev_paxos_open(struct lunfs_dev *lower, const struct lunfs_super *sb, const struct lunfs_codec *c,
		   const struct paxos_host *me, struct lunfs_dev **out);

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
};
void dev_paxos_stats(struct lunfs_dev *dev, struct paxos_stats *out);

#endif
