/*
 * cluster: the fs core's side of the multi-host protocol (docs/DESIGN.md
 * sections 5 and 6): what this host does when lockd's monitor finds a dead
 * host to recover, or when another host asks for a lock we hold.
 *
 * Both run as lockd callbacks on lockd's monitor thread, under lockd's
 * act_mu and with no other lockd mutex held. Each takes vol.meta_lock, so
 * it never runs in the middle of a metadata operation (handles are open
 * only under meta_lock). The other direction is safe too: threads holding
 * meta_lock call lockd (lockd_lock, lockd_lock_wait, lockd_unlock), which
 * never waits for act_mu or the monitor thread. The only thing that waits
 * for act_mu is lockd_set_recover/lockd_set_release: cluster_attach and
 * cluster_detach are called without meta_lock.
 *
 * Recovery of dead slot D (we won the compare-and-write of D's heartbeat
 * slot to RECOVERING, so we are its only recoverer; a recoverer that dies
 * is replaced, and everything below is idempotent):
 *   1. replay D's journal (physical redo images; marks it CLEAN);
 *   2. drop our clean cached metadata: the replay wrote home behind the
 *      cache's back;
 *   3. reclaim the inodes listed in D's orphan table (unlinked while open
 *      on D). D's cluster locks are still D's until its slot is FREE, so
 *      the allocator borrows them for the duration (alloc_recover_begin):
 *      nobody else can take them meanwhile. Clusters another live host
 *      holds are asked for (lockd_lock_wait);
 *   4. commit and checkpoint our journal (jnl_flush_home): the frees are
 *      durable and home before D's locks become free for others;
 *   5. write D's orphan blocks back empty (directly: they are D's, never
 *      in our journal), so that whoever claims D's slot next does not
 *      reclaim a later inode that reuses one of those numbers;
 *   6. hand the borrowed clusters back (forget them), return 0: lockd
 *      frees D's slot, and D's lock records are free for anyone.
 *
 * Giving up a cluster lock (another host wants to allocate there or free
 * a block in it): commit and checkpoint, so that nothing of the cluster
 * stays in our ring (were we to die later, replaying old images of its
 * bitmap over the next holder's changes would corrupt it), then the
 * allocator pushes the summary, forgets the cluster, drops cached blocks
 * and unlocks. The allocator copes with losing a cluster between any two
 * calls: it simply picks again.
 *
 * Invariant: a host's journal ring never holds an image of metadata whose
 * lock it has given up. Every release of a lock that covers metadata (a
 * cluster, an inode, a directory) runs jnl_flush_home first, and flushes
 * the WHOLE journal, not just what the lock covers: so anything another
 * host can reach only through a lock we held (a new inode behind a name in
 * a directory we held, say) is home before it can be read.
 *
 * Coherence of directories and attributes (DESIGN 6): the same inode lock
 * record covers an inode's record, its map and, for a directory, its
 * entries. Namespace operations take it EXCLUSIVE (cluster_use), lookups,
 * readdir and getattr of a directory SHARED; a file's attributes are read
 * under whatever we hold, else straight from the disk (a writer's lock is
 * held for as long as its VM runs, and stat must not wait for that). A
 * lock granted to us that we did not hold is `stale`: the first user drops
 * the clean metadata cache and re-reads the record (cluster_refreshed
 * clears it). Uses (nuse) pin the lock for one operation: a request from
 * another host while it is in use sets `wanted`, which makes new local
 * users wait, so the next scan finds it idle and hands it over (without
 * that a busy host would starve the other). When we hand a lock over we
 * tell the kernel to drop what it cached of the inode (vol.inval_fn).
 *
 * Closing the last open of a file here does not release its lock at once:
 * the idle sweep (lockd's tick, every monitor scan) gives up the locks of
 * files closed for at least an interval, with one flush for all of them.
 * So a closed VM image is free on disk about an interval after its close,
 * without a flush on every close of a small file.
 *
 * Lock order: lockd act_mu (callbacks) < vol.meta_lock < alloc.mu < lockd
 * lock_mu < icache/mcache. cluster_use waits for other hosts and is called
 * WITHOUT meta_lock: our monitor's release callback needs meta_lock, and
 * two hosts each holding it while waiting for the other would only part by
 * timeout. Across hosts: directory locks in ino order, then other inode
 * locks in ino order (fsops.c sorts them).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_internal.h"
#include "lunfs/journal.h"
#include "lunfs/lock.h"
#include "lunfs/lockd.h"

#define NS_PER_MS 1000000ull

uint32_t cluster_wait_ms(const struct lunfs_vol *v)
{
	const struct lockd_timeouts *to = lockd_timeouts(v->ld);
	/* The holder sees the request within one of its intervals and then
	 * flushes (a commit: a few I/Os of at most D each). */
	uint64_t ns = 3 * to->interval_ns + 2 * to->io_deadline_ns;

	return (uint32_t)(ns / NS_PER_MS);
}

void cluster_log(const struct lunfs_vol *v, const char *msg)
{
	if (v->opts.log != NULL) {
		v->opts.log(v->opts.log_arg, msg);
	} else {
		fprintf(stderr, "lunfs: %s\n", msg);
	}
}

/* ---- recovery ------------------------------------------------------------ */

static uint64_t cluster_orphan_addr(const struct lunfs_vol *v, uint32_t slot, unsigned k)
{
	return layout_journal_addr(&v->sb, slot) + LUNFS_META_BLOCK_SIZE * (1ull + k);
}

/* Reclaim every inode D's orphan table lists; *dirty[k] = block k had
 * entries. Read directly, not through the cache: D's blocks never belong
 * in our cache or our journal. */
static int cluster_orphans_reclaim(struct lunfs_vol *v, uint32_t slot, bool *dirty)
{
	struct lunfs_jorphan *t = malloc(sizeof(*t));
	uint8_t *blk = dev_buf_alloc(LUNFS_META_BLOCK_SIZE);
	int err = 0;

	if (t == NULL || blk == NULL) {
		err = -ENOMEM;
		goto out;
	}
	for (unsigned k = 0; k < LUNFS_JOURNAL_ORPHAN_BLOCKS; k++) {
		uint64_t addr = cluster_orphan_addr(v, slot, k);
		int dr;

		dirty[k] = false;
		err = dev_read(v->dev, blk, LUNFS_META_BLOCK_SIZE, addr);
		if (err < 0) {
			goto out;
		}
		dr = jorphan_decode(&v->codec, blk, addr, t);
		if (dr == -ENODATA || dr == -ESTALE) {
			continue;       /* never written: no orphans */
		}
		if (dr < 0) {
			/* A torn or corrupt table: leave it to fsck (its
			 * inodes stay allocated, nothing is lost). */
			fprintf(stderr, "lunfs: orphan block %u of slot %u is corrupt: skipped\n", k, slot);
			continue;
		}
		for (unsigned i = 0; i < LUNFS_JORPHANS_PER_BLOCK; i++) {
			if (t->ino[i] == 0) {
				continue;
			}
			dirty[k] = true;
			err = inode_reclaim_foreign(v, t->ino[i]);
			if (err < 0) {
				goto out;
			}
		}
	}
out:
	dev_buf_free(blk);
	free(t);
	return err;
}

/* Step 5: D's orphan blocks that had entries, written back empty. */
static int cluster_orphans_clear(struct lunfs_vol *v, uint32_t slot, const bool *dirty)
{
	struct lunfs_jorphan *t = calloc(1, sizeof(*t));
	uint8_t *blk = dev_buf_alloc(LUNFS_META_BLOCK_SIZE);
	bool wrote = false;
	int err = 0;

	if (t == NULL || blk == NULL) {
		err = -ENOMEM;
		goto out;
	}
	for (unsigned k = 0; k < LUNFS_JOURNAL_ORPHAN_BLOCKS; k++) {
		uint64_t addr = cluster_orphan_addr(v, slot, k);

		if (!dirty[k]) {
			continue;
		}
		memset(t, 0, sizeof(*t));
		t->slot = slot;
		t->first = (uint64_t)k * LUNFS_JORPHANS_PER_BLOCK;
		t->seq = 1;
		memset(blk, 0, LUNFS_META_BLOCK_SIZE);
		jorphan_encode(&v->codec, t, addr, blk);
		err = dev_write(v->dev, blk, LUNFS_META_BLOCK_SIZE, addr);
		if (err < 0) {
			goto out;
		}
		wrote = true;
	}
	if (wrote) {
		err = dev_flush(v->dev);
	}
out:
	dev_buf_free(blk);
	free(t);
	return err;
}

static int cluster_recover_cb(void *arg, uint32_t slot, const struct lunfs_hb_slot *dead)
{
	struct lunfs_vol *v = arg;
	bool dirty[LUNFS_JOURNAL_ORPHAN_BLOCKS];
	uint64_t applied = 0;
	char msg[160];
	int err;

	pthread_mutex_lock(&v->meta_lock);
	err = jnl_replay(v->dev, &v->sb, &v->codec, slot, &applied);
	/* Whatever the replay managed to write home, our clean copies may
	 * predate it. */
	mc_drop_clean(v->mc);
	if (err < 0) {
		goto out;
	}
	alloc_recover_begin(v->alloc, slot);
	err = cluster_orphans_reclaim(v, slot, dirty);
	if (err == 0) {
		err = jnl_flush_home(v->jnl);
	}
	if (err == 0) {
		err = cluster_orphans_clear(v, slot, dirty);
	}
	alloc_recover_end(v->alloc);
out:
	pthread_mutex_unlock(&v->meta_lock);
	if (err == 0) {
		snprintf(msg, sizeof(msg), "recovered host '%.64s' (slot %u): %llu journal transactions replayed",
			 dead->host_name, slot, (unsigned long long)applied);
	} else {
		snprintf(msg, sizeof(msg), "recovering host '%.64s' (slot %u) failed: %s",
			 dead->host_name, slot, strerror(-err));
	}
	cluster_log(v, msg);
	return err;
}

/* ---- lock hand-off ---------------------------------------------------------- */

/* ---- inode locks: VMFS open semantics -------------------------------------
 *
 * Per inode this host has opened, a cl_ilock counts the opens (read-only
 * and for write) and remembers the mode lockd granted us:
 *
 *   opens on this host        lock held
 *   none                      none, or kept cached (mode as last granted)
 *   read-only only            SHARED (or a cached stronger mode)
 *   some for write            EXCLUSIVE; MULTIWRITER for a file carrying
 *                             the xattr user.lunfs.multiwriter
 *
 * A mode once granted is kept until another host asks for the lock (the
 * release callback): closing the last open costs no I/O, and reopening
 * on the same host is free. Asked while any open uses it, we refuse and
 * the requester's lockd_lock_wait ends in EBUSY naming us. Asked while
 * idle, we commit and checkpoint (the next holder must find the inode's
 * metadata home, and our ring must hold no image of it), then unlock.
 * Upgrades (SHARED to EXCLUSIVE) go through lockd like a first grant.
 *
 * ilk_mu guards the table and is held across the lockd call of an open,
 * so the table always says what lockd granted. Order: meta_lock <
 * ilk_mu < lockd. The release callback takes meta_lock only after
 * dropping ilk_mu.
 */
/* The lock table's first size (2^8 chains); it grows (fs/htab.c). */
#define CL_TAB_SHIFT0 8u

struct cl_ilock {
	uint64_t ino;
	uint32_t nread, nwrite;
	uint32_t npending;           /* opens waiting in lockd for this lock */
	uint32_t nuse;               /* operations using it now (cluster_use) */
	uint32_t nwait;              /* threads in cl_wait_wanted: keep l allocated */
	uint8_t mode;                /* lockd mode held, LUNFS_LOCK_FREE = none */
	bool stale;                  /* granted, our cached copy not yet re-read */
	bool wanted;                 /* another host asked while in use */
	uint32_t touch;              /* bumped by every open and use: a hand-off
	                              * that flushed before a later touch must
	                              * flush again */
	uint64_t closed_ns;          /* CLOCK_MONOTONIC of the last close of an
	                              * open here, 0 = not closed since */
	struct htab_link link;       /* in the cluster's table, keyed by ino */
	/* On the closed list (oldest close first) exactly while closed_ns
	 * is set: the idle sweep reads its head instead of the table. */
	struct cl_ilock *cprev, *cnext;
};

struct cluster {
	pthread_mutex_t ilk_mu;
	pthread_cond_t ilk_cv;       /* nuse reached 0, or wanted was cleared */
	struct htab tab;
	struct cl_ilock *closed_head, *closed_tail;
	pthread_mutex_t inval_mu;    /* inval_fn/arg; held across the call */
	void (*inval_fn)(void *arg, uint64_t ino);
	void *inval_arg;
};

static uint64_t cl_now_ns(void)
{
	struct timespec ts;
	uint64_t ns;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	return ns != 0 ? ns : 1;
}

static struct cl_ilock *cl_ilock_find(struct cluster *c, uint64_t ino)
{
	struct htab_link *l = htab_find(&c->tab, ino);

	return l != NULL ? HTAB_ENTRY(l, struct cl_ilock, link) : NULL;
}

/* The lock entry of ino, made (FREE) if there is none; NULL on ENOMEM. */
static struct cl_ilock *cl_ilock_obtain(struct cluster *c, uint64_t ino)
{
	struct cl_ilock *l = cl_ilock_find(c, ino);

	if (l != NULL) {
		return l;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		return NULL;
	}
	l->ino = ino;
	l->link.key = ino;
	htab_insert(&c->tab, &l->link);
	return l;
}

static void cl_closed_clear(struct cluster *c, struct cl_ilock *l)
{
	if (l->closed_ns == 0) {
		return;
	}
	*(l->cprev != NULL ? &l->cprev->cnext : &c->closed_head) = l->cnext;
	*(l->cnext != NULL ? &l->cnext->cprev : &c->closed_tail) = l->cprev;
	l->cprev = l->cnext = NULL;
	l->closed_ns = 0;
}

/* Closed now: to the tail of the closed list, which stays in close order. */
static void cl_closed_mark(struct cluster *c, struct cl_ilock *l)
{
	uint64_t now = cl_now_ns();

	cl_closed_clear(c, l);
	l->closed_ns = now != 0 ? now : 1; /* 0 means "not on the list" */
	l->cprev = c->closed_tail;
	*(c->closed_tail != NULL ? &c->closed_tail->cnext : &c->closed_head) = l;
	c->closed_tail = l;
}

static void cl_ilock_free(struct cluster *c, struct cl_ilock *l)
{
	cl_closed_clear(c, l);
	htab_remove(&c->tab, &l->link);
	free(l);
}

static int cl_lock_addr(const struct lunfs_vol *v, uint64_t ino, uint64_t *addr)
{
	return layout_ino_addr(&v->sb, ino, addr) == 0 ? 0 : -EINVAL;
}

/* "host 'b' (slot 1)" for the log. */
static void cl_holder_name(struct lunfs_vol *v, uint32_t slot, char *buf, size_t len)
{
	struct lockd_host_info *hi = calloc(v->sb.max_hosts, sizeof(*hi));

	if (hi != NULL && slot < v->sb.max_hosts) {
		lockd_hosts_snapshot(v->ld, hi);
		snprintf(buf, len, "host '%.64s' (slot %u)", hi[slot].rec.host_name, slot);
	} else {
		snprintf(buf, len, "slot %u", slot);
	}
	free(hi);
}

/* Does the mode we hold cover what an open of `want` needs? */
static bool cl_mode_covers(uint8_t held, uint8_t want)
{
	if (held == LUNFS_LOCK_FREE) {
		return false;
	}
	/* MULTIWRITER is its own world: an exclusive lock does not let us
	 * write alongside other hosts' multi-writer opens. */
	return held == want || (held == LUNFS_LOCK_EXCLUSIVE && want == LUNFS_LOCK_SHARED) ||
	       (want == LUNFS_LOCK_SHARED && held == LUNFS_LOCK_MULTIWRITER);
}

/* Is l in use by anything on this host (opens, waiting opens, operations)? */
static bool cl_busy(const struct cl_ilock *l)
{
	return l != NULL && l->nread + l->nwrite + l->npending + l->nuse > 0;
}

/* Give up an idle cached lock here and now (ilk_mu held, dropped and
 * taken again around the flush): as every release, only once our journal
 * holds nothing of what it covers (the invariant at the top), with new
 * users held back by `wanted` meanwhile. Left as it was if a user came
 * in during the flush. */
static void cl_drop_idle_locked(struct lunfs_vol *v, struct cl_ilock *l, uint64_t addr)
{
	struct cluster *c = v->cl;
	uint32_t touch = l->touch;
	int err;

	l->wanted = true;
	pthread_mutex_unlock(&c->ilk_mu);
	pthread_mutex_lock(&v->meta_lock);
	err = jnl_flush_home(v->jnl);
	pthread_mutex_unlock(&v->meta_lock);
	pthread_mutex_lock(&c->ilk_mu);
	l->wanted = false;
	if (err == 0 && !cl_busy(l) && l->touch == touch && lockd_unlock(v->ld, addr) == 0) {
		l->mode = LUNFS_LOCK_FREE;
		cl_closed_clear(c, l);
	}
	pthread_cond_broadcast(&c->ilk_cv);
}

int cluster_open_lock(struct lunfs_vol *v, struct inode_mem *im, bool write, bool multiwriter,
		      bool is_new)
{
	struct cluster *c = v->cl;
	uint8_t want = !write ? LUNFS_LOCK_SHARED :
		       multiwriter ? LUNFS_LOCK_MULTIWRITER : LUNFS_LOCK_EXCLUSIVE;
	struct cl_ilock *l;
	uint32_t holder = UINT32_MAX;
	uint64_t addr;
	bool fresh = false;
	int err;

	err = cl_lock_addr(v, im->ino, &addr);
	if (err < 0) {
		return err;
	}
	pthread_mutex_lock(&c->ilk_mu);
	l = cl_ilock_obtain(c, im->ino);
	if (l == NULL) {
		pthread_mutex_unlock(&c->ilk_mu);
		return -ENOMEM;
	}
	if (!cl_mode_covers(l->mode, want)) {
		/* Switching to or from multi-writer cannot be an upgrade in
		 * lockd: an idle cached mode is dropped first. */
		if ((l->mode == LUNFS_LOCK_MULTIWRITER || want == LUNFS_LOCK_MULTIWRITER) &&
		    l->mode != LUNFS_LOCK_FREE && !cl_busy(l) && !l->wanted) {
			cl_drop_idle_locked(v, l, addr);
		}
		fresh = l->mode == LUNFS_LOCK_FREE;
		/* Pending: the release callback must not give the lock away
		 * between lockd's grant and our count (it refuses while
		 * pending). ilk_mu is not held across the wait, so our own
		 * monitor keeps serving other hosts meanwhile. */
		l->npending++;
		pthread_mutex_unlock(&c->ilk_mu);
		err = lockd_lock_wait(v->ld, addr, LUNFS_LOCK_KIND_INODE, im->ino, want,
				      cluster_open_wait_ms(v), &holder);
		pthread_mutex_lock(&c->ilk_mu);
		l->npending--;
		if (err == -EBUSY) {
			char who[120], msg[256];

			pthread_mutex_unlock(&c->ilk_mu);
			cl_holder_name(v, holder, who, sizeof(who));
			snprintf(msg, sizeof(msg), "inode %llu is open%s on %s: %s refused",
				 (unsigned long long)im->ino,
				 want == LUNFS_LOCK_SHARED ? " for write" : "", who,
				 want == LUNFS_LOCK_SHARED ? "read-only open" : "open for write");
			cluster_log(v, msg);
			return err;
		}
		if (err < 0) {
			pthread_mutex_unlock(&c->ilk_mu);
			return err;
		}
		if (!cl_mode_covers(l->mode, want)) {
			l->mode = want;
		}
	}
	if (write) {
		l->nwrite++;
	} else {
		l->nread++;
	}
	l->touch++;
	cl_closed_clear(c, l);
	fresh = fresh || l->stale;
	if (is_new) {
		l->stale = false;
	}
	pthread_mutex_unlock(&c->ilk_mu);
	if (fresh && !is_new) {
		/* A lock we did not hold: what we cached of the inode may
		 * predate another host's changes. */
		err = cluster_inode_refresh(v, im);
		if (err < 0) {
			cluster_open_unlock(v, im->ino, write);
		} else {
			cluster_refreshed(v, im->ino);
		}
	}
	return err;
}

void cluster_open_unlock(struct lunfs_vol *v, uint64_t ino, bool write)
{
	struct cluster *c = v->cl;
	struct cl_ilock *l;

	pthread_mutex_lock(&c->ilk_mu);
	l = cl_ilock_find(c, ino);
	if (l != NULL) {
		if (write && l->nwrite > 0) {
			l->nwrite--;
		} else if (!write && l->nread > 0) {
			l->nread--;
		}
		if (l->nread + l->nwrite == 0 && l->mode != LUNFS_LOCK_FREE) {
			/* The last open here is gone: the idle sweep gives
			 * the lock up unless the file is opened again soon. */
			cl_closed_mark(c, l);
		}
	}
	pthread_mutex_unlock(&c->ilk_mu);
}

int cluster_inode_busy(struct lunfs_vol *v, uint64_t ino)
{
	struct cluster *c = v->cl;
	struct cl_ilock *l;
	uint32_t holder = UINT32_MAX;
	uint64_t addr;
	int err;

	err = cl_lock_addr(v, ino, &addr);
	if (err < 0) {
		return err;
	}
	/* Another host may only cache the lock, with the file closed: so
	 * ask for it rather than judge from the record. An idle holder
	 * gives it up within an interval; one with the file open refuses. */
	pthread_mutex_lock(&c->ilk_mu);
	l = cl_ilock_obtain(c, ino);
	if (l == NULL) {
		pthread_mutex_unlock(&c->ilk_mu);
		return -ENOMEM;
	}
	if (l->mode == LUNFS_LOCK_EXCLUSIVE) {
		pthread_mutex_unlock(&c->ilk_mu);
		return 0;
	}
	if (l->mode == LUNFS_LOCK_MULTIWRITER && l->nread + l->nwrite + l->npending + l->nuse == 0) {
		(void)lockd_unlock(v->ld, addr);
		l->mode = LUNFS_LOCK_FREE;
	}
	l->npending++;
	pthread_mutex_unlock(&c->ilk_mu);
	err = lockd_lock_wait(v->ld, addr, LUNFS_LOCK_KIND_INODE, ino, LUNFS_LOCK_EXCLUSIVE,
			      cluster_open_wait_ms(v), &holder);
	pthread_mutex_lock(&c->ilk_mu);
	l->npending--;
	if (err == 0) {
		if (l->mode == LUNFS_LOCK_FREE) {
			l->stale = true;
		}
		l->mode = LUNFS_LOCK_EXCLUSIVE;
	}
	pthread_mutex_unlock(&c->ilk_mu);
	if (err == -EBUSY) {
		char who[120], msg[256];

		cl_holder_name(v, holder, who, sizeof(who));
		snprintf(msg, sizeof(msg), "inode %llu is open on %s: not changed",
			 (unsigned long long)ino, who);
		cluster_log(v, msg);
	}
	return err;
}

/* Tell the kernel to forget what it cached of ino (names, attributes,
 * pages): the lock that covered it is going to another host. */
static void cluster_inval(struct lunfs_vol *v, uint64_t ino)
{
	struct cluster *c = v->cl;

	pthread_mutex_lock(&c->inval_mu);
	if (c->inval_fn != NULL) {
		c->inval_fn(c->inval_arg, ino);
	}
	pthread_mutex_unlock(&c->inval_mu);
}

void cluster_set_inval(struct lunfs_vol *v, void (*fn)(void *arg, uint64_t ino), void *arg)
{
	struct cluster *c = v->cl;

	pthread_mutex_lock(&c->inval_mu);
	c->inval_fn = fn;
	c->inval_arg = arg;
	pthread_mutex_unlock(&c->inval_mu);
}

/* EXCLUSIVE -> SHARED for an inode only read here. lockd has no
 * downgrade, so it is an unlock and a shared grant; another host could
 * take the lock exclusively in between, and then our read-only opens go
 * on without a lock (logged): the price of not blocking the reader. The
 * re-granted lock is stale (the other host may have changed the inode in
 * between). */
static int cluster_inode_downgrade(struct lunfs_vol *v, uint64_t lock_addr, uint64_t ino)
{
	struct cluster *c = v->cl;
	struct cl_ilock *l;
	int err;

	pthread_mutex_lock(&v->meta_lock);
	err = jnl_flush_home(v->jnl);
	pthread_mutex_unlock(&v->meta_lock);
	if (err < 0) {
		return err;
	}
	pthread_mutex_lock(&c->ilk_mu);
	l = cl_ilock_find(c, ino);
	if (l == NULL || l->mode != LUNFS_LOCK_EXCLUSIVE || l->nwrite + l->npending + l->nuse > 0) {
		pthread_mutex_unlock(&c->ilk_mu);
		return -EBUSY;  /* changed meanwhile: asked again next scan */
	}
	err = lockd_unlock(v->ld, lock_addr);
	if (err == 0) {
		l->mode = LUNFS_LOCK_FREE;
		if (l->nread > 0) {
			err = lockd_lock(v->ld, lock_addr, LUNFS_LOCK_KIND_INODE, ino, LUNFS_LOCK_SHARED, NULL);
			if (err == 0) {
				l->mode = LUNFS_LOCK_SHARED;
				l->stale = true;
			} else {
				char msg[160];

				snprintf(msg, sizeof(msg), "inode %llu: lost its lock while open read-only here (%s)",
					 (unsigned long long)ino, strerror(-err));
				cluster_log(v, msg);
				err = 0;
			}
		}
	}
	pthread_mutex_unlock(&c->ilk_mu);
	if (err == 0) {
		cluster_inval(v, ino);
	}
	return err;
}

/* An inode lock another host wants.
 *
 *   open here (read or write)      refuse: VMFS, the requester gets EBUSY
 *                                  (or a downgrade for a SHARED request
 *                                  when we only read)
 *   in use by an operation         mark wanted, refuse: new local users
 *                                  wait, the next scan finds it idle
 *   idle                           flush the journal home, unlock, drop
 *                                  the kernel's cached copy
 */
static int cluster_inode_release(struct lunfs_vol *v, uint64_t lock_addr, uint8_t wanted_mode)
{
	struct cluster *c = v->cl;
	struct cl_ilock *l;
	uint64_t ino = 0;
	uint32_t touch = 0;
	int err;

	/* The lock record sits in the slot's first sector. */
	err = inode_ino_of_slot(v, lock_addr, &ino);
	if (err < 0) {
		return -EBUSY;
	}
	pthread_mutex_lock(&c->ilk_mu);
	l = cl_ilock_find(c, ino);
	if (l != NULL && wanted_mode == LUNFS_LOCK_SHARED && l->mode == LUNFS_LOCK_EXCLUSIVE &&
	    l->nwrite == 0 && l->npending == 0 && l->nread > 0) {
		/* Only read-only opens here use a cached exclusive lock:
		 * share it instead. Flushed first, like any hand-off. */
		if (l->nuse > 0) {
			l->wanted = true;
			pthread_mutex_unlock(&c->ilk_mu);
			return -EBUSY;
		}
		pthread_mutex_unlock(&c->ilk_mu);
		return cluster_inode_downgrade(v, lock_addr, ino);
	}
	if (l != NULL && l->nread + l->nwrite + l->npending > 0) {
		pthread_mutex_unlock(&c->ilk_mu);
		return -EBUSY;  /* in use by an open here: the requester gets EBUSY */
	}
	if (l != NULL && l->nuse > 0) {
		l->wanted = true;
		pthread_mutex_unlock(&c->ilk_mu);
		return -EBUSY;  /* asked again at the next scan */
	}
	if (l != NULL) {
		/* Keeps new local users out while we flush and unlock. */
		l->wanted = true;
		touch = l->touch;
	}
	pthread_mutex_unlock(&c->ilk_mu);
	pthread_mutex_lock(&v->meta_lock);
	err = jnl_flush_home(v->jnl);
	pthread_mutex_unlock(&v->meta_lock);
	pthread_mutex_lock(&c->ilk_mu);
	l = cl_ilock_find(c, ino);
	if (err < 0) {
		/* Keep the lock: what it covers may not be home. */
	} else if (cl_busy(l) || (l != NULL && l->touch != touch)) {
		/* Opened (and maybe written and closed) meanwhile: its
		 * changes may postdate the flush. Asked again next scan. */
		err = -EBUSY;
	} else {
		err = lockd_unlock(v->ld, lock_addr);
		if (l != NULL && err == 0) {
			l->mode = LUNFS_LOCK_FREE;
			l->stale = false;
			cl_closed_clear(c, l);
			if (l->nwait == 0) {
				cl_ilock_free(c, l);
				l = NULL;
			}
		}
	}
	if (l != NULL) {
		l->wanted = false;
	}
	pthread_cond_broadcast(&c->ilk_cv);
	pthread_mutex_unlock(&c->ilk_mu);
	if (err == 0) {
		cluster_inval(v, ino);
	}
	return err;
}

/* ---- giving up the locks of closed files ------------------------------------ */

/* At most this many locks per sweep: one flush covers them all, and a
 * larger backlog is simply taken by the next sweep. */
#define CL_SWEEP_MAX 64u

/* The lockd tick (every monitor scan): give up the lock of every file whose
 * last open here closed at least an interval ago and that nothing here uses.
 * The grace interval keeps a lock across the open-close-open bursts of a
 * hypervisor starting a VM, and one flush covers every lock of a sweep.
 * The flush runs with `wanted` set (new uses wait); an open meanwhile bumps
 * touch, and the lock is then kept (its changes may postdate the flush).
 * VMFS semantics: once a VM's image is closed, no host holds it, and
 * `lunfs locks` shows it free (a cached lock would be handed over on
 * request all the same; this makes the state visible and the next open on
 * another host immediate). */
static void cluster_idle_sweep(void *arg)
{
	struct lunfs_vol *v = arg;
	struct cluster *c = v->cl;
	uint64_t grace = lockd_timeouts(v->ld)->interval_ns;
	uint64_t now = cl_now_ns(), inos[CL_SWEEP_MAX], addr;
	uint32_t touch[CL_SWEEP_MAX];
	bool freed[CL_SWEEP_MAX];
	unsigned n = 0;
	int err;

	/* Committed frees: reusable, and discarded with -o discard. Never
	 * worth a wait for meta_lock (the next tick or allocation does it). */
	if (pthread_mutex_trylock(&v->meta_lock) == 0) {
		alloc_busy_release(v->alloc);
		pthread_mutex_unlock(&v->meta_lock);
	}
	pthread_mutex_lock(&c->ilk_mu);
	/* Oldest close first: the first one inside its grace ends the walk. */
	for (struct cl_ilock *l = c->closed_head, *nx; l != NULL && n < CL_SWEEP_MAX; l = nx) {
		nx = l->cnext;
		if (now - l->closed_ns < grace) {
			break;
		}
		if (l->mode == LUNFS_LOCK_FREE) {
			cl_closed_clear(c, l); /* nothing left to give up */
			continue;
		}
		if (cl_busy(l) || l->wanted) {
			continue;
		}
		l->wanted = true;
		inos[n] = l->ino;
		touch[n] = l->touch;
		n++;
	}
	pthread_mutex_unlock(&c->ilk_mu);
	if (n == 0) {
		return;
	}
	pthread_mutex_lock(&v->meta_lock);
	err = jnl_flush_home(v->jnl);
	pthread_mutex_unlock(&v->meta_lock);
	pthread_mutex_lock(&c->ilk_mu);
	for (unsigned i = 0; i < n; i++) {
		struct cl_ilock *l = cl_ilock_find(c, inos[i]);

		freed[i] = false;
		if (l == NULL) {
			continue;
		}
		l->wanted = false;
		if (err == 0 && !cl_busy(l) && l->touch == touch[i] && l->closed_ns != 0 &&
		    cl_lock_addr(v, inos[i], &addr) == 0 && lockd_unlock(v->ld, addr) == 0) {
			l->mode = LUNFS_LOCK_FREE;
			l->stale = false;
			cl_closed_clear(c, l);
			freed[i] = true;
			if (l->nwait == 0) {
				cl_ilock_free(c, l);
			}
		}
	}
	pthread_cond_broadcast(&c->ilk_cv);
	pthread_mutex_unlock(&c->ilk_mu);
	for (unsigned i = 0; i < n; i++) {
		if (freed[i]) {
			cluster_inval(v, inos[i]);
		}
	}
}

/* ---- uses: coherence of namespace operations and attributes --------------- */

/* Wait while a hand-off of l is under way (wanted), at most about two
 * intervals: if the requester gave up meanwhile nobody would clear it. */
static void cl_wait_wanted(struct lunfs_vol *v, struct cl_ilock *l)
{
	struct cluster *c = v->cl;
	const struct lockd_timeouts *to = lockd_timeouts(v->ld);
	struct timespec ts;
	uint64_t ns = 2 * to->interval_ns + to->io_deadline_ns;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ns += (uint64_t)ts.tv_nsec;
	ts.tv_sec += (time_t)(ns / 1000000000ull);
	ts.tv_nsec = (long)(ns % 1000000000ull);
	l->nwait++;
	while (l->wanted) {
		if (pthread_cond_timedwait(&c->ilk_cv, &c->ilk_mu, &ts) == ETIMEDOUT) {
			l->wanted = false;
			break;
		}
	}
	l->nwait--;
}

int cluster_use(struct lunfs_vol *v, uint64_t ino, bool excl, bool wait)
{
	struct cluster *c = v->cl;
	uint8_t want = excl ? LUNFS_LOCK_EXCLUSIVE : LUNFS_LOCK_SHARED;
	struct cl_ilock *l;
	uint32_t holder = UINT32_MAX;
	uint64_t addr;
	int err;

	if (v->opts.read_only) {
		/* We cannot hand locks back (no release callback): read
		 * without them, always from the disk. */
		return 1;
	}
	err = cl_lock_addr(v, ino, &addr);
	if (err < 0) {
		return err;
	}
	pthread_mutex_lock(&c->ilk_mu);
	l = cl_ilock_obtain(c, ino);
	if (l == NULL) {
		pthread_mutex_unlock(&c->ilk_mu);
		return -ENOMEM;
	}
	for (;;) {
		cl_wait_wanted(v, l);
		if (cl_mode_covers(l->mode, want)) {
			break;
		}
		if (l->mode == LUNFS_LOCK_MULTIWRITER && cl_busy(l)) {
			pthread_mutex_unlock(&c->ilk_mu);
			return -EBUSY; /* open multi-writer here: no changes */
		}
		if ((l->mode == LUNFS_LOCK_SHARED || l->mode == LUNFS_LOCK_MULTIWRITER) && !cl_busy(l)) {
			/* An idle shared lock: give it up rather than upgrade
			 * (two hosts upgrading at once would wait for each
			 * other until the timeout). Nothing to flush: we never
			 * change metadata under a shared (or multi-writer)
			 * lock. */
			(void)lockd_unlock(v->ld, addr);
			l->mode = LUNFS_LOCK_FREE;
		}
		l->npending++;
		pthread_mutex_unlock(&c->ilk_mu);
		if (wait) {
			err = lockd_lock_wait(v->ld, addr, LUNFS_LOCK_KIND_INODE, ino, want,
					      excl ? cluster_open_wait_ms(v) : cluster_wait_ms(v), &holder);
		} else {
			err = lockd_lock(v->ld, addr, LUNFS_LOCK_KIND_INODE, ino, want, &holder);
		}
		pthread_mutex_lock(&c->ilk_mu);
		l->npending--;
		if (err < 0) {
			pthread_mutex_unlock(&c->ilk_mu);
			if (err == -EBUSY && wait) {
				char who[120], msg[256];

				cl_holder_name(v, holder, who, sizeof(who));
				snprintf(msg, sizeof(msg), "inode %llu is in use on %s: not changed",
					 (unsigned long long)ino, who);
				cluster_log(v, msg);
			}
			return err;
		}
		if (l->mode == LUNFS_LOCK_FREE) {
			l->stale = true;
		}
		if (!cl_mode_covers(l->mode, want)) {
			l->mode = want;
		}
	}
	l->nuse++;
	l->touch++;
	err = l->stale ? 1 : 0;
	pthread_mutex_unlock(&c->ilk_mu);
	return err;
}

void cluster_unuse(struct lunfs_vol *v, uint64_t ino)
{
	struct cluster *c = v->cl;
	struct cl_ilock *l;

	if (v->opts.read_only) {
		return;
	}
	pthread_mutex_lock(&c->ilk_mu);
	l = cl_ilock_find(c, ino);
	if (l != NULL && l->nuse > 0) {
		l->nuse--;
		if (l->nuse == 0) {
			pthread_cond_broadcast(&c->ilk_cv);
		}
	}
	pthread_mutex_unlock(&c->ilk_mu);
}

void cluster_refreshed(struct lunfs_vol *v, uint64_t ino)
{
	struct cluster *c = v->cl;
	struct cl_ilock *l;

	pthread_mutex_lock(&c->ilk_mu);
	l = cl_ilock_find(c, ino);
	if (l != NULL) {
		l->stale = false;
	}
	pthread_mutex_unlock(&c->ilk_mu);
}

bool cluster_holds(struct lunfs_vol *v, uint64_t ino)
{
	struct cluster *c = v->cl;
	struct cl_ilock *l;
	bool held;

	if (v->opts.read_only) {
		return false;
	}
	pthread_mutex_lock(&c->ilk_mu);
	l = cl_ilock_find(c, ino);
	held = l != NULL && l->mode != LUNFS_LOCK_FREE && !l->stale;
	pthread_mutex_unlock(&c->ilk_mu);
	return held;
}

uint32_t cluster_open_wait_ms(const struct lunfs_vol *v)
{
	const struct lockd_timeouts *to = lockd_timeouts(v->ld);
	/* An idle holder answers within one interval; one in use never
	 * does, and that answer (EBUSY) should not keep the opener long. */
	uint64_t ns = 2 * to->interval_ns + to->io_deadline_ns;

	return (uint32_t)(ns / NS_PER_MS);
}

int cluster_inode_refresh(struct lunfs_vol *v, struct inode_mem *im)
{
	int err;

	pthread_mutex_lock(&v->meta_lock);
	mc_drop_clean(v->mc);
	err = inode_refresh(v, im);
	pthread_mutex_unlock(&v->meta_lock);
	return err;
}

/* ---- the rename lock ------------------------------------------------------
 * Two hosts moving directories into each other's subtrees at once would
 * each pass its ancestor walk (the other's move is not there yet) and
 * together cut a cycle out of the tree: their lock sets are disjoint. A
 * move of a directory to another parent therefore holds the RENAME system
 * lock, first in the lock order, for its whole length, and the ancestor
 * walk reads every ".." it does not hold the lock of from the disk. So
 * that it reads the last move of any other host, the lock is released
 * only after the journal is home (the rule of every lock that covers
 * metadata; here: the parent pointers of the moved directories). Not
 * cached: such moves are rare, and a free lock costs the next mover no
 * hand-off. */
static uint64_t cl_rename_addr(const struct lunfs_vol *v)
{
	return layout_syslock_addr(&v->sb, LUNFS_SYSLOCK_RENAME);
}

int cluster_rename_lock(struct lunfs_vol *v)
{
	uint32_t holder = UINT32_MAX;
	int err;

	err = lockd_lock_wait(v->ld, cl_rename_addr(v), LUNFS_LOCK_KIND_SYSTEM, LUNFS_SYSLOCK_RENAME,
			      LUNFS_LOCK_EXCLUSIVE, cluster_wait_ms(v), &holder);
	/* Held only for the length of one rename: a holder that did not let
	 * go in time is slow or dead, not busy. */
	return err == -EBUSY ? -EAGAIN : err;
}

void cluster_rename_unlock(struct lunfs_vol *v)
{
	int err;

	pthread_mutex_lock(&v->meta_lock);
	err = jnl_flush_home(v->jnl);
	pthread_mutex_unlock(&v->meta_lock);
	/* A journal that cannot be written home must not let the lock go:
	 * the next mover would read parent pointers older than ours. It stays
	 * ours until we unmount (the journal is aborted: we answer EIO) or die
	 * (then the recoverer replays our journal before anyone gets it). */
	if (err == 0) {
		(void)lockd_unlock(v->ld, cl_rename_addr(v));
	}
}

static int cluster_release_cb(void *arg, uint64_t lock_addr, uint8_t wanted_mode)
{
	struct lunfs_vol *v = arg;
	const struct lunfs_region *cr = &v->sb.regions[LUNFS_REGION_CLUSTER];
	int err;

	(void)wanted_mode;
	if (lock_addr == cl_rename_addr(v)) {
		return -EBUSY;   /* in use: released when its rename ends */
	}
	if (lock_addr >= cr->offset && lock_addr < cr->offset + cr->length) {
		uint64_t ci = (lock_addr - cr->offset) / v->sb.sector_size;

		pthread_mutex_lock(&v->meta_lock);
		err = jnl_flush_home(v->jnl);
		if (err == 0) {
			err = alloc_cluster_giveup(v->alloc, ci);
		}
		pthread_mutex_unlock(&v->meta_lock);
		return err;
	}
	return cluster_inode_release(v, lock_addr, wanted_mode);
}

int cluster_attach(struct lunfs_vol *v)
{
	v->cl = calloc(1, sizeof(*v->cl));
	if (v->cl == NULL) {
		return -ENOMEM;
	}
	if (htab_init(&v->cl->tab, CL_TAB_SHIFT0) != 0) {
		free(v->cl);
		v->cl = NULL;
		return -ENOMEM;
	}
	pthread_mutex_init(&v->cl->ilk_mu, NULL);
	pthread_mutex_init(&v->cl->inval_mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&v->cl->ilk_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (v->opts.read_only) {
		/* We cannot write a journal: recovering others, or handing
		 * off locks that cover metadata, is the writers' job. */
		return 0;
	}
	lockd_set_recover(v->ld, cluster_recover_cb, v);
	lockd_set_release(v->ld, cluster_release_cb, v);
	lockd_set_tick(v->ld, cluster_idle_sweep, v);
	return 0;
}

void cluster_detach(struct lunfs_vol *v)
{
	/* Waits for a scan that is running a callback to finish. */
	lockd_set_recover(v->ld, NULL, NULL);
	lockd_set_release(v->ld, NULL, NULL);
	lockd_set_tick(v->ld, NULL, NULL);
}

static void cl_ilock_drop(struct htab_link *l, void *arg)
{
	(void)arg;
	free(HTAB_ENTRY(l, struct cl_ilock, link));
}

void cluster_free(struct lunfs_vol *v)
{
	if (v->cl == NULL) {
		return;
	}
	htab_drain(&v->cl->tab, cl_ilock_drop, NULL);
	htab_fini(&v->cl->tab);
	pthread_mutex_destroy(&v->cl->ilk_mu);
	pthread_mutex_destroy(&v->cl->inval_mu);
	pthread_cond_destroy(&v->cl->ilk_cv);
	free(v->cl);
	v->cl = NULL;
}
