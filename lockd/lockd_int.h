/*
 * lockd's private state, shared by lockd/hb.c (membership: join, beat,
 * leave, the lease), lockd/lockd.c (lock records) and lockd/timeouts.c.
 * Nothing outside lockd/ includes this.
 *
 * Lock order: lock_mu < hb_mu. lock_mu is held across the I/O of one lock
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

struct lunfs_lockd {
	/* Set at join, read-only after. */
	struct lunfs_dev *dev;
	struct lunfs_super sb;
	struct lunfs_codec codec;
	struct lockd_clock clock;
	struct lockd_timeouts to;      /* ours, from the superblock */
	uint32_t slot;
	uint64_t gen;
	uint64_t hb_addr;
	struct lunfs_hb_slot joined;   /* the image we claimed (lockd_self) */

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
};

/* lockd/timeouts.c */
void lockd_clock_default(struct lockd_clock *out);
uint64_t lockd_now(const struct lunfs_lockd *ld);

/* lockd/hb_scan.c: decode a raw heartbeat region image (max_hosts sectors). */
void hb_scan_decode(const struct lunfs_super *sb, const struct lunfs_codec *c, const uint8_t *buf,
		    struct lunfs_hb_slot *slots, int *status);

/* lockd/hb.c: is (slot, gen) an incarnation that may still hold locks?
 * gen 0 = any generation (holder bits carry none). */
int lockd_slot_alive(struct lunfs_lockd *ld, uint32_t slot, uint64_t gen, bool *alive);

/* lockd/lockd.c: release every lock in the table (leave). */
int lockd_release_all(struct lunfs_lockd *ld);
void lockd_table_free(struct lunfs_lockd *ld);

#endif
