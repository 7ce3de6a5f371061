/*
 * Lock records: acquire, release, read, payload updates
 * (docs/DESIGN.md section 5, docs/FORMAT.md section 8).
 *
 * Every change is read -> decide -> compare-and-write of the record's whole
 * sector, expecting the exact image read, with version + 1. Two hosts can
 * therefore never both win a grant: the loser's compare fails, it re-reads
 * and decides again (bounded retries). A never-written or stale record
 * (-ENODATA/-ESTALE) is a FREE lock with version 0.
 *
 * Grant rules for a request of mode M by us (slot s, generation g):
 *
 *   record            holders other than us          result
 *   ----------------  -----------------------------  --------------------
 *   FREE              -                              take it in M
 *   EXCLUSIVE (s,g)   -                              ours: no-op (an
 *                                                    exclusive lock covers
 *                                                    SHARED/MULTIWRITER)
 *   EXCLUSIVE (o,h)   o alive at generation h        -EBUSY, holder o
 *                     otherwise (stale)              take it in M
 *   SHARED/MW, = M    any                            set our bit
 *   SHARED/MW, != M   or M EXCLUSIVE: a live holder  -EBUSY, that holder
 *                     none alive (stale bits)        take it in M, holders
 *                                                    reset to just us
 *
 * "Alive" (lockd_slot_alive): a slot holds its locks while its heartbeat
 * record is claimed (any state but FREE) by the same generation. A slot
 * the monitor judges DEAD, or that is RECOVERING, still holds them until
 * its recoverer frees the slot (lockd/recover.c): the dead host's journal
 * may hold committed changes to what the lock covers, which replay would
 * write over a new holder's, and a frozen host is fenced only once its
 * slot has been taken. Failover therefore costs T + one scan + replay.
 * Holder bits carry no generation, so a bit of a live slot always counts
 * (on the safe side: a stale bit can delay a grant, never double it). Our
 * own bit or ownership left by an earlier generation of our slot is stale
 * by definition and is taken over.
 *
 * Release: EXCLUSIVE -> FREE; a shared bit cleared, the lock becoming FREE
 * with its last holder. The payload (a cluster summary) survives both. A
 * fenced incarnation (lockd_fenced) only forgets its table: it writes
 * nothing, and recovery has freed or will free what it held.
 *
 * The table of locks we hold (address -> mode) makes lockd_lock reentrant
 * and lets lockd_leave release everything. lock_mu is held across each
 * whole operation: the table always matches what we last wrote, and the
 * callers (the fs core) serialise metadata changes anyway.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lockd_int.h"
#include "lunfs/lock.h"

/* CAW retries before giving up with -EAGAIN: each miscompare means another
 * host changed the record in between, which is rare and short. */
#define LOCK_CAW_RETRIES 64u

static uint64_t lock_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the table of held locks (lock_mu) ---------------------------------- */

static unsigned lock_table_bucket(uint64_t addr)
{
	return (unsigned)((addr * 0x9e3779b97f4a7c15ull) >> 54) & (LOCKD_HELD_BUCKETS - 1u);
}

static struct lockd_held_lock *lock_table_find(struct lunfs_lockd *ld, uint64_t addr)
{
	struct lockd_held_lock *h = ld->held[lock_table_bucket(addr)];

	while (h != NULL && h->addr != addr) {
		h = h->next;
	}
	return h;
}

static int lock_table_set(struct lunfs_lockd *ld, uint64_t addr, uint8_t mode)
{
	struct lockd_held_lock *h = lock_table_find(ld, addr);
	unsigned b;

	if (h != NULL) {
		h->mode = mode;
		return 0;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		return -ENOMEM;
	}
	b = lock_table_bucket(addr);
	h->addr = addr;
	h->mode = mode;
	h->next = ld->held[b];
	ld->held[b] = h;
	ld->nheld++;
	return 0;
}

static void lock_table_del(struct lunfs_lockd *ld, uint64_t addr)
{
	struct lockd_held_lock **pp = &ld->held[lock_table_bucket(addr)];

	while (*pp != NULL) {
		if ((*pp)->addr == addr) {
			struct lockd_held_lock *h = *pp;

			*pp = h->next;
			free(h);
			ld->nheld--;
			return;
		}
		pp = &(*pp)->next;
	}
}

void lockd_table_free(struct lunfs_lockd *ld)
{
	for (unsigned b = 0; b < LOCKD_HELD_BUCKETS; b++) {
		while (ld->held[b] != NULL) {
			struct lockd_held_lock *h = ld->held[b];

			ld->held[b] = h->next;
			free(h);
		}
	}
	ld->nheld = 0;
}

/* ---- record I/O ------------------------------------------------------------ */

/* Read the record at addr into img (sector_size) and decode it; a free
 * record (never written or stale) decodes as FREE, version 0. */
static int lock_record_read(struct lunfs_lockd *ld, uint64_t addr, uint8_t *img, struct lunfs_lock *l)
{
	int err;

	if (addr == 0 || addr % ld->sb.sector_size != 0 || addr >= ld->sb.volume_size) {
		return -EINVAL;
	}
	err = dev_read(ld->dev, img, ld->sb.sector_size, addr);
	if (err < 0) {
		return err;
	}
	err = lock_decode(&ld->codec, img, addr, l);
	if (err == -ENODATA || err == -ESTALE) {
		memset(l, 0, sizeof(*l));
		return 1;
	}
	return err;
}

static int lock_record_caw(struct lunfs_lockd *ld, uint64_t addr, const uint8_t *expect,
			   struct lunfs_lock *l, uint8_t *rep)
{
	l->version++;
	memset(rep, 0, ld->sb.sector_size);
	lock_encode(&ld->codec, l, addr, rep);
	return dev_caw(ld->dev, addr, expect, rep, NULL);
}

/* Is our own slot the exclusive owner at our generation? */
static bool lock_is_ours_excl(const struct lunfs_lockd *ld, const struct lunfs_lock *l)
{
	return l->mode == LUNFS_LOCK_EXCLUSIVE && l->owner_slot == ld->slot + 1u && l->owner_gen == ld->gen;
}

/* Find a live holder of l other than us. *busy = true and *holder set if
 * there is one. */
static int lock_other_holder(struct lunfs_lockd *ld, const struct lunfs_lock *l, bool *busy,
			     uint32_t *holder)
{
	bool alive = false;
	int err;

	*busy = false;
	if (l->mode == LUNFS_LOCK_EXCLUSIVE) {
		uint32_t o = l->owner_slot - 1u;

		if (o == ld->slot) {
			return 0;   /* ours, or an earlier incarnation of ours */
		}
		err = lockd_slot_alive(ld, o, l->owner_gen, &alive);
		if (err < 0) {
			return err;
		}
		if (alive) {
			*busy = true;
			*holder = o;
		}
		return 0;
	}
	if (l->mode == LUNFS_LOCK_FREE) {
		return 0;
	}
	for (uint32_t byte = 0; byte < LUNFS_LOCK_HOLDER_BYTES; byte++) {
		if (l->holders[byte] == 0) {
			continue;
		}
		for (uint32_t bit = 0; bit < 8; bit++) {
			uint32_t s = byte * 8u + bit;

			if (s == ld->slot || !lock_holder_test(l, s)) {
				continue;
			}
			err = lockd_slot_alive(ld, s, 0, &alive);
			if (err < 0) {
				return err;
			}
			if (alive) {
				*busy = true;
				*holder = s;
				return 0;
			}
		}
	}
	return 0;
}

static void lock_grant(struct lunfs_lockd *ld, struct lunfs_lock *l, uint8_t mode, bool reset)
{
	if (reset) {
		memset(l->holders, 0, sizeof(l->holders));
		l->nholders = 0;
		l->owner_slot = 0;
		l->owner_gen = 0;
	}
	l->mode = mode;
	if (mode == LUNFS_LOCK_EXCLUSIVE) {
		l->owner_slot = (uint16_t)(ld->slot + 1u);
		l->owner_gen = ld->gen;
	} else {
		lock_holder_set(l, ld->slot, true);
	}
	l->acquired_ns = lock_realtime_ns();
	/* Our own request, if it was pending, is satisfied. */
	if (l->req_slot == ld->slot + 1u) {
		l->req_slot = 0;
		l->req_mode = 0;
		l->req_serial = 0;
		l->req_gen = 0;
	}
}

/* The grant log's lines for a grant that has just succeeded: first every
 * claim the CAW displaced (`old` is the record before lock_grant), then
 * the grant. A takeover is only ever of an incarnation that is over (the
 * grant rules above), which the checker verifies against the log. Our own
 * bit is ours now when our table had the lock (a mode change of a hold of
 * this incarnation); otherwise an earlier incarnation of our slot left it. */
static void lock_log_grant(struct lunfs_lockd *ld, const struct lunfs_lock *old, uint8_t mode,
			   bool reset, bool in_table)
{
	uint64_t ts;

	if (!lockd_grantlog_on(ld)) {
		return;
	}
	ts = lockd_grantlog_now();
	if (old->mode == LUNFS_LOCK_EXCLUSIVE && old->owner_slot != 0 &&
	    !(old->owner_slot == ld->slot + 1u && old->owner_gen == ld->gen)) {
		lockd_grantlog_takeover(ld, old->kind, old->lock_id, LUNFS_LOCK_EXCLUSIVE,
					old->owner_slot - 1u, old->owner_gen, ts);
	} else if (old->mode == LUNFS_LOCK_SHARED || old->mode == LUNFS_LOCK_MULTIWRITER) {
		for (uint32_t s = 0; s < LUNFS_LOCK_HOLDER_BYTES * 8u; s++) {
			if (!lock_holder_test(old, s) || (s == ld->slot ? in_table : !reset)) {
				continue;
			}
			lockd_grantlog_takeover(ld, old->kind, old->lock_id, old->mode, s, 0, ts);
		}
	}
	lockd_grantlog_lock(ld, "grant", old->kind, old->lock_id, mode, ts);
}

int lockd_lock(struct lunfs_lockd *ld, uint64_t lock_addr, uint8_t kind, uint64_t id,
	       uint8_t mode, uint32_t *holder_slot)
{
	uint32_t ss = ld->sb.sector_size;
	struct lockd_held_lock *h;
	struct lunfs_lock l, old;
	uint8_t *img = NULL, *rep = NULL;
	int err;

	if (mode < LUNFS_LOCK_EXCLUSIVE || mode > LUNFS_LOCK_MULTIWRITER ||
	    kind == LUNFS_LOCK_KIND_NONE || kind > LUNFS_LOCK_KIND_INODE) {
		return -EINVAL;
	}
	err = lockd_check_lease(ld);
	if (err < 0) {
		return err;
	}
	pthread_mutex_lock(&ld->lock_mu);
	h = lock_table_find(ld, lock_addr);
	if (h != NULL && (h->mode == mode || h->mode == LUNFS_LOCK_EXCLUSIVE)) {
		err = 0;
		goto out;
	}
	img = dev_buf_alloc(ss);
	rep = dev_buf_alloc(ss);
	if (img == NULL || rep == NULL) {
		err = -ENOMEM;
		goto out;
	}
	for (unsigned attempt = 0; attempt < LOCK_CAW_RETRIES; attempt++) {
		uint32_t holder = 0;
		bool busy = false, reset;

		err = lock_record_read(ld, lock_addr, img, &l);
		if (err < 0) {
			goto out;
		}
		if (err == 1) {
			l.kind = kind;
			l.lock_id = id;
		} else if (l.kind != kind || l.lock_id != id) {
			/* A record of this volume naming another lock: the
			 * caller's address is wrong, or the record is. */
			err = -EUCLEAN;
			goto out;
		}
		if (lock_is_ours_excl(ld, &l)) {
			/* Ours on disk but not (exclusively) in our table:
			 * the hold is real from at least this read on. */
			lockd_grantlog_lock(ld, "grant", l.kind, l.lock_id, LUNFS_LOCK_EXCLUSIVE,
					    lockd_grantlog_now());
			err = lock_table_set(ld, lock_addr, LUNFS_LOCK_EXCLUSIVE);
			goto out;
		}
		err = lock_other_holder(ld, &l, &busy, &holder);
		if (err < 0) {
			goto out;
		}
		if (busy && (l.mode != mode || mode == LUNFS_LOCK_EXCLUSIVE)) {
			if (holder_slot != NULL) {
				*holder_slot = holder;
			}
			err = -EBUSY;
			goto out;
		}
		/* Keep the other holders' bits only when joining them in
		 * the same shared mode; otherwise nobody else (alive) holds
		 * it and stale bits and owners are dropped. */
		reset = !(l.mode == mode && mode != LUNFS_LOCK_EXCLUSIVE);
		old = l;
		lock_grant(ld, &l, mode, reset);
		err = lock_record_caw(ld, lock_addr, img, &l, rep);
		if (err == -ECANCELED) {
			err = -EAGAIN;
			continue;
		}
		if (err < 0) {
			goto out;
		}
		/* Logged only now that the CAW has succeeded: the logged
		 * hold starts inside the real one (lockd/grantlog.c). */
		lock_log_grant(ld, &old, mode, reset, h != NULL);
		err = lock_table_set(ld, lock_addr, mode);
		goto out;
	}
out:
	pthread_mutex_unlock(&ld->lock_mu);
	dev_buf_free(rep);
	dev_buf_free(img);
	return err;
}

/* Release under lock_mu. Returns 0, -ENOLCK (not ours on disk), -EIO (our
 * lease has lapsed: we may have been judged dead, and our locks are then
 * the recoverer's to free, after the replay of our journal; the lock stays
 * ours in the table and on disk). */
static int lock_release_locked(struct lunfs_lockd *ld, uint64_t lock_addr, uint8_t *img, uint8_t *rep)
{
	struct lunfs_lock l;
	uint8_t held_mode;
	bool logged = false;
	int err = -EAGAIN;

	/* A fenced incarnation owns nothing on disk any more, and must not
	 * write: its slot may already be another host's (or our own next
	 * incarnation's), and a SHARED holder bit carries no generation, so
	 * clearing "ours" could clear theirs. Its locks are released by
	 * recovery (the generation is gone). */
	if (lockd_fenced(ld)) {
		return -ENOLCK;
	}
	for (unsigned attempt = 0; attempt < LOCK_CAW_RETRIES; attempt++) {
		err = lock_record_read(ld, lock_addr, img, &l);
		if (err < 0) {
			return err;
		}
		if (err == 1) {
			return -ENOLCK;
		}
		held_mode = l.mode;
		if (lock_is_ours_excl(ld, &l)) {
			l.mode = LUNFS_LOCK_FREE;
			l.owner_slot = 0;
			l.owner_gen = 0;
		} else if ((l.mode == LUNFS_LOCK_SHARED || l.mode == LUNFS_LOCK_MULTIWRITER) &&
			   lock_holder_test(&l, ld->slot)) {
			lock_holder_set(&l, ld->slot, false);
			if (l.nholders == 0) {
				l.mode = LUNFS_LOCK_FREE;
			}
		} else {
			return -ENOLCK;
		}
		/* Check, then act: the window is this one CAW. */
		err = lockd_check_lease(ld);
		if (err < 0) {
			return err;
		}
		/* Logged before the releasing CAW is submitted (the logged
		 * hold ends inside the real one); once, however many
		 * attempts the CAW takes. */
		if (!logged) {
			lockd_grantlog_lock(ld, "release", l.kind, l.lock_id, held_mode, lockd_grantlog_now());
			logged = true;
		}
		err = lock_record_caw(ld, lock_addr, img, &l, rep);
		if (err != -ECANCELED) {
			return err;
		}
		err = -EAGAIN;
	}
	return err;
}

int lockd_unlock(struct lunfs_lockd *ld, uint64_t lock_addr)
{
	uint32_t ss = ld->sb.sector_size;
	uint8_t *img = dev_buf_alloc(ss);
	uint8_t *rep = dev_buf_alloc(ss);
	int err;

	if (img == NULL || rep == NULL) {
		err = -ENOMEM;
		goto out_free;
	}
	pthread_mutex_lock(&ld->lock_mu);
	if (lock_table_find(ld, lock_addr) == NULL) {
		err = -ENOLCK;
		goto out;
	}
	err = lock_release_locked(ld, lock_addr, img, rep);
	/* Not ours on disk any more (taken over after we were judged
	 * dead): forget it all the same, there is nothing to release. A
	 * lapsed lease (-EIO) keeps it: still ours, in the table as on
	 * disk, released again later or freed by our recoverer. */
	if (err == 0 || err == -ENOLCK) {
		lock_table_del(ld, lock_addr);
		err = err == -ENOLCK ? -ESTALE : 0;
	}
out:
	pthread_mutex_unlock(&ld->lock_mu);
out_free:
	dev_buf_free(rep);
	dev_buf_free(img);
	return err;
}

int lockd_release_all(struct lunfs_lockd *ld)
{
	uint32_t ss = ld->sb.sector_size;
	uint8_t *img = dev_buf_alloc(ss);
	uint8_t *rep = dev_buf_alloc(ss);
	unsigned excl_released = 0;
	int ret = 0;

	if (img == NULL || rep == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&ld->lock_mu);
	/* Every hold of this incarnation ends here: the slot goes FREE
	 * after these releases, which frees whatever one of them misses. */
	lockd_grantlog_slot(ld, "leave", ld->slot, ld->gen, lockd_grantlog_now());
	for (unsigned b = 0; b < LOCKD_HELD_BUCKETS; b++) {
		while (ld->held[b] != NULL) {
			uint64_t addr = ld->held[b]->addr;
			int err = 0;

			/* Exclusive holds name our generation, which the FREE
			 * slot voids: past the first few, releasing them one
			 * compare-and-write at a time would only make the
			 * unmount of a host that created 100k files take
			 * minutes. Shared bits carry no generation and would
			 * outlive us in the slot's next incarnation: always
			 * released. */
			if (ld->held[b]->mode != LUNFS_LOCK_EXCLUSIVE) {
				err = lock_release_locked(ld, addr, img, rep);
			} else if (excl_released < LOCKD_LEAVE_RELEASE_MAX) {
				err = lock_release_locked(ld, addr, img, rep);
				excl_released++;
			}
			if (err < 0 && err != -ENOLCK && ret == 0) {
				ret = err;
			}
			lock_table_del(ld, addr);
		}
	}
	pthread_mutex_unlock(&ld->lock_mu);
out:
	dev_buf_free(rep);
	dev_buf_free(img);
	return ret;
}

int lockd_read(struct lunfs_lockd *ld, uint64_t lock_addr, struct lunfs_lock *out)
{
	uint8_t *img = dev_buf_alloc(ld->sb.sector_size);
	int err;

	if (img == NULL) {
		return -ENOMEM;
	}
	err = lock_record_read(ld, lock_addr, img, out);
	dev_buf_free(img);
	return err < 0 ? err : 0;
}

int lockd_set_payload(struct lunfs_lockd *ld, uint64_t lock_addr, const uint8_t payload[64])
{
	uint32_t ss = ld->sb.sector_size;
	struct lunfs_lock l;
	uint8_t *img = NULL, *rep = NULL;
	int err;

	err = lockd_check_lease(ld);
	if (err < 0) {
		return err;
	}
	pthread_mutex_lock(&ld->lock_mu);
	if (lock_table_find(ld, lock_addr) == NULL) {
		err = -ENOLCK;
		goto out;
	}
	img = dev_buf_alloc(ss);
	rep = dev_buf_alloc(ss);
	if (img == NULL || rep == NULL) {
		err = -ENOMEM;
		goto out;
	}
	err = -EAGAIN;
	for (unsigned attempt = 0; attempt < LOCK_CAW_RETRIES; attempt++) {
		err = lock_record_read(ld, lock_addr, img, &l);
		if (err < 0) {
			goto out;
		}
		/* Only the holder writes the payload: EXCLUSIVE by us, or a
		 * shared mode we hold (then the callers coordinate). */
		if (err == 1 || !(lock_is_ours_excl(ld, &l) ||
				  (l.mode != LUNFS_LOCK_EXCLUSIVE && lock_holder_test(&l, ld->slot)))) {
			err = -ENOLCK;
			goto out;
		}
		if (memcmp(l.payload, payload, LUNFS_LOCK_PAYLOAD) == 0) {
			err = 0;
			goto out;
		}
		memcpy(l.payload, payload, LUNFS_LOCK_PAYLOAD);
		err = lock_record_caw(ld, lock_addr, img, &l, rep);
		if (err != -ECANCELED) {
			goto out;
		}
		err = -EAGAIN;
	}
out:
	pthread_mutex_unlock(&ld->lock_mu);
	dev_buf_free(rep);
	dev_buf_free(img);
	return err;
}

uint8_t lockd_held(struct lunfs_lockd *ld, uint64_t lock_addr)
{
	struct lockd_held_lock *h;
	uint8_t mode;

	pthread_mutex_lock(&ld->lock_mu);
	h = lock_table_find(ld, lock_addr);
	mode = h != NULL ? h->mode : LUNFS_LOCK_FREE;
	pthread_mutex_unlock(&ld->lock_mu);
	return mode;
}

/* ---- hand-off support (lockd/handoff.c) ------------------------------------ */

int lockd_request_note(struct lunfs_lockd *ld, uint64_t lock_addr, uint8_t mode, uint32_t serial)
{
	uint32_t ss = ld->sb.sector_size;
	uint8_t *img = dev_buf_alloc(ss);
	uint8_t *rep = dev_buf_alloc(ss);
	struct lunfs_lock l;
	int err;

	if (img == NULL || rep == NULL) {
		err = -ENOMEM;
		goto out_free;
	}
	err = lockd_check_lease(ld);
	if (err < 0) {
		goto out_free;
	}
	pthread_mutex_lock(&ld->lock_mu);
	err = -EAGAIN;
	for (unsigned attempt = 0; attempt < LOCK_CAW_RETRIES; attempt++) {
		err = lock_record_read(ld, lock_addr, img, &l);
		if (err < 0) {
			goto out;
		}
		if (err == 1 || l.mode == LUNFS_LOCK_FREE) {
			err = 1;    /* nobody to ask: the caller tries the lock again */
			goto out;
		}
		if (l.req_slot == ld->slot + 1u && l.req_serial == serial && l.req_gen == ld->gen &&
		    l.req_mode == mode) {
			err = 0;
			goto out;
		}
		l.req_slot = (uint16_t)(ld->slot + 1u);
		l.req_mode = mode;
		l.req_serial = serial;
		l.req_gen = ld->gen;
		err = lock_record_caw(ld, lock_addr, img, &l, rep);
		if (err != -ECANCELED) {
			goto out;
		}
		err = -EAGAIN;
	}
out:
	pthread_mutex_unlock(&ld->lock_mu);
out_free:
	dev_buf_free(rep);
	dev_buf_free(img);
	return err;
}

int lockd_release_stale(struct lunfs_lockd *ld, uint64_t lock_addr)
{
	uint32_t ss = ld->sb.sector_size;
	uint8_t *img = dev_buf_alloc(ss);
	uint8_t *rep = dev_buf_alloc(ss);
	struct lunfs_lock l;
	uint8_t held_mode;
	uint64_t old_gen;
	bool logged = false;
	int err;

	if (img == NULL || rep == NULL) {
		err = -ENOMEM;
		goto out_free;
	}
	err = lockd_check_lease(ld);
	if (err < 0) {
		goto out_free;
	}
	/* What our earlier generations held stays held until our journal
	 * is replayed (lockd_activate): the same rule as lockd_slot_alive
	 * applies to others. Asked again by the requester's next poll. */
	pthread_mutex_lock(&ld->hb_mu);
	err = ld->joining ? -EAGAIN : 0;
	pthread_mutex_unlock(&ld->hb_mu);
	if (err < 0) {
		goto out_free;
	}
	pthread_mutex_lock(&ld->lock_mu);
	if (lock_table_find(ld, lock_addr) != NULL) {
		err = 2;
		goto out;
	}
	err = -EAGAIN;
	for (unsigned attempt = 0; attempt < LOCK_CAW_RETRIES; attempt++) {
		err = lock_record_read(ld, lock_addr, img, &l);
		if (err < 0) {
			goto out;
		}
		if (err == 1) {
			err = 0;
			goto out;
		}
		/* Not in our table, so whatever the record says about our
		 * slot was written by an earlier incarnation of it. */
		held_mode = l.mode;
		old_gen = l.mode == LUNFS_LOCK_EXCLUSIVE ? l.owner_gen : 0;
		if (l.mode == LUNFS_LOCK_EXCLUSIVE && l.owner_slot == ld->slot + 1u) {
			l.mode = LUNFS_LOCK_FREE;
			l.owner_slot = 0;
			l.owner_gen = 0;
		} else if ((l.mode == LUNFS_LOCK_SHARED || l.mode == LUNFS_LOCK_MULTIWRITER) &&
			   lock_holder_test(&l, ld->slot)) {
			lock_holder_set(&l, ld->slot, false);
			if (l.nholders == 0) {
				l.mode = LUNFS_LOCK_FREE;
			}
		} else {
			err = 0;
			goto out;
		}
		/* Or by this one, if a grant's table entry could not be
		 * made (ENOMEM): a release of ours, logged before the CAW
		 * like every release (a no-op for the checker otherwise). */
		if (!logged) {
			lockd_grantlog_lock(ld, "release", l.kind, l.lock_id, held_mode, lockd_grantlog_now());
			logged = true;
		}
		err = lock_record_caw(ld, lock_addr, img, &l, rep);
		if (err == 0) {
			if (old_gen != 0 && old_gen != ld->gen) {
				lockd_grantlog_takeover(ld, l.kind, l.lock_id, held_mode, ld->slot, old_gen,
							lockd_grantlog_now());
			}
			err = 1;
			goto out;
		}
		if (err != -ECANCELED) {
			goto out;
		}
		err = -EAGAIN;
	}
out:
	pthread_mutex_unlock(&ld->lock_mu);
out_free:
	dev_buf_free(rep);
	dev_buf_free(img);
	return err;
}
