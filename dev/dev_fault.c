/*
 * Fault-injection device: stacks on any device and misbehaves on demand
 * (the e2fsprogs test I/O manager and littlefs's emulated block device are
 * the models).
 *
 * Injections (include/lunfs/dev.h):
 *   fail_nth     the nth matching operation (one-shot or sticky) fails
 *                with a chosen errno and never reaches the lower device
 *   tear_nth     the nth plain write reaches the lower device only in part
 *                (its first keep_sectors sectors) and reports success
 *   crash_after  the nth write (plain write or CAW) and every operation
 *                after it fail with -EIO until power_cycle
 *   power_cycle  unflushed writes are undone (see below)
 *   latency      every operation sleeps first
 *   freeze       every operation blocks until thaw
 * Each element of a batch is one operation for the counters.
 *
 * Power loss: the undo log. Before a write reaches the lower device, the
 * old contents of its range are read from the lower device and appended
 * to the log together with a sequence number; a successful CAW logs its
 * `expect` (which is what the sector held). A flush snapshots the next
 * sequence number, flushes the lower device, and on success frees every
 * entry older than the snapshot: those writes had completed before the
 * flush began, so the flush covers them. power_cycle rolls back.
 *
 * Rolling back with keep_seed. Each logged write i is given a kept prefix
 * of k_i sectors (k_i = 0: dropped, all: kept, between: torn), drawn in
 * log order from splitmix64 seeded with keep_seed at each call (no state
 * survives between calls, so a seed replays exactly: a test that finds a
 * bad seed can rerun it); keep_seed == 0 means k_i = 0 for all. The wanted contents of a sector s are what the newest write that
 * covers s in its kept prefix wrote there, or, if there is none, what s
 * held before the oldest logged write. We have only old contents, but
 * they are enough: walk the log newest to oldest, keeping the set D of
 * sectors already decided (covered by the kept prefix of a newer write).
 * For write i, restore old(i) on its dropped part minus D, then add its
 * kept prefix to D. Why that is right: when the walk reaches write i, every
 * newer write covering s (s not in D) has restored its old contents at s,
 * the last of them restoring exactly what write i left there; so if i keeps
 * s, s already holds i's data, and if i drops s, writing old(i) goes one
 * step further back. With no kept prefixes this is the plain "restore every
 * old copy, newest first", which is what makes overlapping writes come out
 * right.
 *
 * Ordering: the log must list writes in the order they hit the lower device,
 * and the old contents of a write must be read with no other write to the
 * range in between. So every batch containing a write, every CAW and every
 * discard runs under order_lock from the capture to the lower completion.
 * Read-only batches do not take it. Writes through a fault device are thus
 * serialized; that is a test device, correctness beats throughput.
 *
 * Lock order: order_lock -> mu. A frozen operation waits on thaw_cv under
 * mu only, before it takes order_lock, so a freeze never blocks flush
 * bookkeeping or power_cycle of other threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lunfs/dev.h"

struct fault_undo {
	uint64_t seq;
	uint64_t off;
	size_t len;
	size_t keep;       /* bytes of the kept prefix, chosen by power_cycle */
	void *old;         /* dev_buf_alloc'd, len bytes */
};

/* A sorted list of disjoint, non-adjacent [start, end) byte ranges. */
struct fault_ranges {
	uint64_t (*r)[2];
	size_t n;
	size_t cap;
};

struct lunfs_fault {
	struct lunfs_dev dev; /* first: the vtable hands us &dev */
	struct lunfs_dev *lower;

	pthread_mutex_t order_lock;
	/* Protected by order_lock: */
	struct fault_undo *log;
	size_t nlog;
	size_t caplog;
	uint64_t next_seq;

	pthread_mutex_t mu;
	pthread_cond_t thaw_cv;
	/* Protected by mu: */
	unsigned fail_ops;      /* lunfs_fault_opmask; 0 = disarmed */
	uint64_t fail_n;
	uint64_t fail_seen;
	int fail_err;
	bool fail_sticky;
	uint64_t tear_n;        /* 0 = disarmed */
	uint64_t tear_seen;
	uint32_t tear_keep;
	uint64_t crash_n;       /* 0 = disarmed */
	uint64_t crash_seen;
	bool crashed;
	uint32_t latency_us;
	bool frozen;
	struct lunfs_fault_stats stats; /* unflushed_writes is filled on read */
};

/* What the fault layer does with one I/O of a batch. */
enum fault_action {
	FAULT_PASS = 0, /* goes to the lower device as is */
	FAULT_FAIL,     /* fails with an errno, lower device untouched */
	FAULT_TEAR,     /* write: only a prefix goes down, success reported */
};

/* Decided under mu, carried out after it is dropped. */
struct fault_plan {
	enum fault_action act;
	int err;       /* FAULT_FAIL */
	uint64_t keep; /* FAULT_TEAR: bytes that go down */
};

static struct lunfs_fault *fault_from_dev(struct lunfs_dev *dev)
{
	return (struct lunfs_fault *)dev;
}

static uint64_t fault_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Blocks while frozen, then sleeps the latency. */
static void fault_gate(struct lunfs_fault *f)
{
	uint32_t us;

	pthread_mutex_lock(&f->mu);
	while (f->frozen) {
		f->stats.frozen_waiters++;
		pthread_cond_wait(&f->thaw_cv, &f->mu);
		f->stats.frozen_waiters--;
	}
	us = f->latency_us;
	pthread_mutex_unlock(&f->mu);
	if (us > 0) {
		struct timespec ts = {
			.tv_sec = us / 1000000u,
			.tv_nsec = (long)(us % 1000000u) * 1000L,
		};

		/* clock_nanosleep reports EINTR with the remainder in ts. */
		while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR) {
		}
	}
}

/* Does the fail rule hit this operation? Counts it if it matches. */
static bool fault_fail_hits_locked(struct lunfs_fault *f, unsigned op)
{
	bool hit;

	if ((f->fail_ops & op) == 0 || f->fail_n == 0) {
		return false;
	}
	f->fail_seen++;
	hit = f->fail_seen == f->fail_n || (f->fail_sticky && f->fail_seen > f->fail_n);
	if (hit && !f->fail_sticky) {
		f->fail_ops = 0;
		f->fail_n = 0;
	}
	return hit;
}

/* Counts a write (plain or CAW) towards crash_after; true if the power
 * goes at this one. */
static bool fault_crash_hits_locked(struct lunfs_fault *f)
{
	if (f->crash_n == 0) {
		return false;
	}
	f->crash_seen++;
	if (f->crash_seen == f->crash_n) {
		f->crashed = true;
		f->crash_n = 0;
		return true;
	}
	return false;
}

static int fault_log_append_locked(struct lunfs_fault *f, uint64_t off, size_t len, void *old)
{
	if (f->nlog == f->caplog) {
		size_t cap = f->caplog ? f->caplog * 2 : 64;
		struct fault_undo *nl = realloc(f->log, cap * sizeof(*nl));

		if (nl == NULL) {
			return -ENOMEM;
		}
		f->log = nl;
		f->caplog = cap;
	}
	f->log[f->nlog++] = (struct fault_undo){
		.seq = f->next_seq++,
		.off = off,
		.len = len,
		.old = old,
	};
	return 0;
}

/* Frees the entries with seq < before (they are a prefix of the log). */
static void fault_log_trim_locked(struct lunfs_fault *f, uint64_t before)
{
	size_t k = 0;
	size_t i;

	while (k < f->nlog && f->log[k].seq < before) {
		dev_buf_free(f->log[k].old);
		k++;
	}
	for (i = k; i < f->nlog; i++) {
		f->log[i - k] = f->log[i];
	}
	f->nlog -= k;
}

/* Carries out the plan: capture old contents of the writes that go down,
 * log them, then send reads, writes and torn prefixes in one lower batch.
 * Caller holds order_lock if the batch has writes. */
static int fault_batch_run(struct lunfs_fault *f, struct lunfs_io *ios, unsigned n,
			   struct fault_plan *plan)
{
	struct lunfs_io *cap = NULL;  /* captures of old contents */
	struct lunfs_io *down = NULL; /* the lower batch */
	unsigned *down_of = NULL;     /* down[k] serves ios[down_of[k]] */
	unsigned ncap = 0;
	unsigned ndown = 0;
	int first = 0;
	unsigned i;
	unsigned k;

	cap = calloc(n, sizeof(*cap));
	down = calloc(n, sizeof(*down));
	down_of = calloc(n, sizeof(*down_of));
	if (cap == NULL || down == NULL || down_of == NULL) {
		for (i = 0; i < n; i++) {
			ios[i].res = -ENOMEM;
		}
		first = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (plan[i].act == FAULT_FAIL || ios[i].op != LUNFS_IO_WRITE) {
			continue;
		}
		cap[ncap] = (struct lunfs_io){
			.op = LUNFS_IO_READ,
			.buf = dev_buf_alloc(ios[i].len),
			.len = ios[i].len,
			.off = ios[i].off,
		};
		if (cap[ncap].buf == NULL) {
			plan[i].act = FAULT_FAIL;
			plan[i].err = -ENOMEM;
			continue;
		}
		ncap++;
	}
	if (ncap > 0) {
		/* A failed capture fails its write: a write we could not undo
		 * must not happen, or power_cycle would lie. */
		(void)dev_submit(f->lower, cap, ncap);
	}
	k = 0;
	for (i = 0; i < n; i++) {
		if (plan[i].act == FAULT_FAIL || ios[i].op != LUNFS_IO_WRITE) {
			continue;
		}
		if (cap[k].res < 0) {
			plan[i].act = FAULT_FAIL;
			plan[i].err = (int)cap[k].res;
			dev_buf_free(cap[k].buf);
		} else if (fault_log_append_locked(f, ios[i].off, ios[i].len, cap[k].buf) < 0) {
			plan[i].act = FAULT_FAIL;
			plan[i].err = -ENOMEM;
			dev_buf_free(cap[k].buf);
		}
		cap[k].buf = NULL; /* owned by the log now, or freed */
		k++;
	}
	for (i = 0; i < n; i++) {
		size_t len = ios[i].len;

		if (plan[i].act == FAULT_FAIL) {
			continue;
		}
		if (plan[i].act == FAULT_TEAR) {
			len = plan[i].keep < len ? (size_t)plan[i].keep : len;
			if (len == 0) {
				continue;
			}
		}
		down[ndown] = ios[i];
		down[ndown].len = len;
		down_of[ndown] = i;
		ndown++;
	}
	if (ndown > 0) {
		(void)dev_submit(f->lower, down, ndown);
	}
	for (i = 0; i < n; i++) {
		if (plan[i].act == FAULT_FAIL) {
			ios[i].res = plan[i].err;
		} else {
			/* A tear dropped to nothing never went down. */
			ios[i].res = (ssize_t)ios[i].len;
		}
	}
	for (k = 0; k < ndown; k++) {
		i = down_of[k];
		ios[i].res = down[k].res < 0 ? down[k].res : (ssize_t)ios[i].len;
	}
	for (i = 0; i < n; i++) {
		if (ios[i].res < 0) {
			first = (int)ios[i].res;
			break;
		}
	}
out:
	free(cap);
	free(down);
	free(down_of);
	return first;
}

static int dev_fault_submit(struct lunfs_dev *dev, struct lunfs_io *ios, unsigned n)
{
	struct lunfs_fault *f = fault_from_dev(dev);
	struct fault_plan plan_small[8];
	struct fault_plan *plan = plan_small;
	bool has_write = false;
	int first = 0;
	unsigned i;

	if (n > 8) {
		plan = calloc(n, sizeof(*plan));
		if (plan == NULL) {
			first = -ENOMEM;
			for (i = 0; i < n; i++) {
				ios[i].res = -ENOMEM;
			}
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		if (ios[i].op == LUNFS_IO_WRITE) {
			has_write = true;
		}
	}
	fault_gate(f);
	if (has_write) {
		pthread_mutex_lock(&f->order_lock);
	}
	pthread_mutex_lock(&f->mu);
	for (i = 0; i < n; i++) {
		bool is_write = ios[i].op == LUNFS_IO_WRITE;
		bool tear;

		plan[i] = (struct fault_plan){ .act = FAULT_PASS };
		if (is_write) {
			f->stats.writes++;
		} else {
			f->stats.reads++;
		}
		if (f->crashed) {
			plan[i].act = FAULT_FAIL;
			plan[i].err = -EIO;
			continue;
		}
		/* The crash and tear counters see every write, whatever the
		 * fail rule does to it, so "write N" means the same whether
		 * or not a fail rule is armed too (a failed write is not
		 * torn: it never went down). */
		if (is_write && fault_crash_hits_locked(f)) {
			plan[i].act = FAULT_FAIL;
			plan[i].err = -EIO;
			f->stats.injected++;
			continue;
		}
		tear = is_write && f->tear_n != 0 && ++f->tear_seen == f->tear_n;
		if (tear) {
			f->tear_n = 0;
		}
		if (fault_fail_hits_locked(f, is_write ? LUNFS_FAULT_WRITE : LUNFS_FAULT_READ)) {
			plan[i].act = FAULT_FAIL;
			plan[i].err = f->fail_err;
			f->stats.injected++;
			continue;
		}
		if (tear) {
			plan[i].act = FAULT_TEAR;
			plan[i].keep = (uint64_t)f->tear_keep * f->dev.sector_size;
			f->stats.injected++;
		}
	}
	pthread_mutex_unlock(&f->mu);

	first = fault_batch_run(f, ios, n, plan);
	if (has_write) {
		pthread_mutex_unlock(&f->order_lock);
	}
out:
	if (plan != plan_small) {
		free(plan);
	}
	return first;
}

/* The common front of flush, CAW and discard: gate, count, crash and fail
 * rules. Returns 0 to go on or the errno to fail with. */
static int fault_op_begin(struct lunfs_fault *f, unsigned op)
{
	int err = 0;

	fault_gate(f);
	pthread_mutex_lock(&f->mu);
	switch (op) {
	case LUNFS_FAULT_FLUSH:
		f->stats.flushes++;
		break;
	case LUNFS_FAULT_CAW:
		f->stats.caws++;
		break;
	default:
		f->stats.discards++;
		break;
	}
	if (f->crashed) {
		err = -EIO;
	} else if (op == LUNFS_FAULT_CAW && fault_crash_hits_locked(f)) {
		err = -EIO;
		f->stats.injected++;
	} else if (fault_fail_hits_locked(f, op)) {
		err = f->fail_err;
		f->stats.injected++;
	}
	pthread_mutex_unlock(&f->mu);
	return err;
}

static int dev_fault_flush(struct lunfs_dev *dev)
{
	struct lunfs_fault *f = fault_from_dev(dev);
	uint64_t snap;
	int err;

	err = fault_op_begin(f, LUNFS_FAULT_FLUSH);
	if (err < 0) {
		return err;
	}
	/* Writes log under order_lock and finish before releasing it, so
	 * every entry below snap is complete on the lower device now. */
	pthread_mutex_lock(&f->order_lock);
	snap = f->next_seq;
	pthread_mutex_unlock(&f->order_lock);
	err = dev_flush(f->lower);
	if (err < 0) {
		return err;
	}
	pthread_mutex_lock(&f->order_lock);
	fault_log_trim_locked(f, snap);
	pthread_mutex_unlock(&f->order_lock);
	return 0;
}

static int dev_fault_discard(struct lunfs_dev *dev, uint64_t off, uint64_t len)
{
	struct lunfs_fault *f = fault_from_dev(dev);
	int err;

	err = fault_op_begin(f, LUNFS_FAULT_DISCARD);
	if (err < 0) {
		return err;
	}
	pthread_mutex_lock(&f->order_lock);
	err = dev_discard(f->lower, off, len);
	pthread_mutex_unlock(&f->order_lock);
	return err;
}

static int dev_fault_caw(struct lunfs_dev *dev, uint64_t off, const void *expect,
			 const void *replace, void *current)
{
	struct lunfs_fault *f = fault_from_dev(dev);
	uint32_t ss = dev->sector_size;
	void *old;
	int err;

	err = fault_op_begin(f, LUNFS_FAULT_CAW);
	if (err < 0) {
		return err;
	}
	old = dev_buf_alloc(ss);
	if (old == NULL) {
		return -ENOMEM;
	}
	memcpy(old, expect, ss);
	pthread_mutex_lock(&f->order_lock);
	err = dev_caw(f->lower, off, expect, replace, current);
	if (err == 0) {
		/* On success the sector held `expect`: that is the old copy. */
		if (fault_log_append_locked(f, off, ss, old) < 0) {
			/* Cannot undo it; restore now and report the failure, so
			 * the caller retries instead of trusting a lost write. */
			(void)dev_write(f->lower, old, ss, off);
			err = -ENOMEM;
		} else {
			old = NULL;
			pthread_mutex_lock(&f->mu);
			f->stats.caws_applied++;
			pthread_mutex_unlock(&f->mu);
		}
	}
	pthread_mutex_unlock(&f->order_lock);
	dev_buf_free(old);
	return err;
}

static void fault_log_free_locked(struct lunfs_fault *f)
{
	size_t i;

	for (i = 0; i < f->nlog; i++) {
		dev_buf_free(f->log[i].old);
	}
	f->nlog = 0;
}

static void dev_fault_close(struct lunfs_dev *dev)
{
	struct lunfs_fault *f = fault_from_dev(dev);

	dev_close(f->lower);
	fault_log_free_locked(f);
	free(f->log);
	pthread_cond_destroy(&f->thaw_cv);
	pthread_mutex_destroy(&f->mu);
	pthread_mutex_destroy(&f->order_lock);
	free(f);
}

static const struct lunfs_dev_ops dev_fault_ops = {
	.submit = dev_fault_submit,
	.flush = dev_fault_flush,
	.discard = dev_fault_discard,
	.caw = dev_fault_caw,
	.close = dev_fault_close,
};

int dev_fault_open(struct lunfs_dev *lower, struct lunfs_dev **out, struct lunfs_fault **fault)
{
	struct lunfs_fault *f;

	*out = NULL;
	*fault = NULL;
	f = calloc(1, sizeof(*f));
	if (f == NULL) {
		dev_close(lower);
		return -ENOMEM;
	}
	f->lower = lower;
	pthread_mutex_init(&f->order_lock, NULL);
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->thaw_cv, NULL);
	f->dev.ops = &dev_fault_ops;
	f->dev.size = lower->size;
	f->dev.sector_size = lower->sector_size;
	f->dev.mem_align = lower->mem_align;
	f->dev.io_deadline_ms = lower->io_deadline_ms;
	f->dev.name = lower->name;
	*out = &f->dev;
	*fault = f;
	return 0;
}

void dev_fault_fail_nth(struct lunfs_fault *f, unsigned ops, uint64_t n, int err, bool sticky)
{
	pthread_mutex_lock(&f->mu);
	f->fail_ops = n == 0 ? 0 : ops & LUNFS_FAULT_ALL;
	f->fail_n = n;
	f->fail_seen = 0;
	/* Accept either sign: an errno must come out negative. */
	f->fail_err = err > 0 ? -err : (err == 0 ? -EIO : err);
	f->fail_sticky = sticky;
	pthread_mutex_unlock(&f->mu);
}

void dev_fault_tear_nth(struct lunfs_fault *f, uint64_t n, uint32_t keep_sectors)
{
	pthread_mutex_lock(&f->mu);
	f->tear_n = n;
	f->tear_seen = 0;
	f->tear_keep = keep_sectors;
	pthread_mutex_unlock(&f->mu);
}

void dev_fault_crash_after(struct lunfs_fault *f, uint64_t nth_write)
{
	pthread_mutex_lock(&f->mu);
	f->crash_n = nth_write;
	f->crash_seen = 0;
	pthread_mutex_unlock(&f->mu);
}

/* Adds [a, b) to the set, merging neighbours. */
static int fault_ranges_add(struct fault_ranges *rs, uint64_t a, uint64_t b)
{
	size_t lo = 0;
	size_t hi;

	if (a >= b) {
		return 0;
	}
	/* First range that ends at or after a: it may merge with [a, b). */
	while (lo < rs->n && rs->r[lo][1] < a) {
		lo++;
	}
	hi = lo;
	while (hi < rs->n && rs->r[hi][0] <= b) {
		if (rs->r[hi][0] < a) {
			a = rs->r[hi][0];
		}
		if (rs->r[hi][1] > b) {
			b = rs->r[hi][1];
		}
		hi++;
	}
	if (hi == lo) {
		if (rs->n == rs->cap) {
			size_t cap = rs->cap ? rs->cap * 2 : 16;
			uint64_t (*nr)[2] = realloc(rs->r, cap * sizeof(*nr));

			if (nr == NULL) {
				return -ENOMEM;
			}
			rs->r = nr;
			rs->cap = cap;
		}
		memmove(&rs->r[lo + 1], &rs->r[lo], (rs->n - lo) * sizeof(*rs->r));
		rs->n++;
	} else if (hi > lo + 1) {
		memmove(&rs->r[lo + 1], &rs->r[hi], (rs->n - hi) * sizeof(*rs->r));
		rs->n -= hi - lo - 1;
	}
	rs->r[lo][0] = a;
	rs->r[lo][1] = b;
	return 0;
}

/* Restores e->old on [a, b) minus the decided set. */
static int fault_restore_gaps(struct lunfs_fault *f, const struct fault_undo *e,
			      const struct fault_ranges *decided, uint64_t a, uint64_t b)
{
	size_t j = 0;
	int err = 0;

	while (a < b) {
		uint64_t gap_end = b;

		while (j < decided->n && decided->r[j][1] <= a) {
			j++;
		}
		if (j < decided->n && decided->r[j][0] <= a) {
			a = decided->r[j][1];
			continue;
		}
		if (j < decided->n && decided->r[j][0] < gap_end) {
			gap_end = decided->r[j][0];
		}
		err = dev_write(f->lower, (const char *)e->old + (a - e->off), (size_t)(gap_end - a), a);
		if (err < 0) {
			return err;
		}
		a = gap_end;
	}
	return err;
}

int dev_fault_power_cycle(struct lunfs_fault *f, uint64_t keep_seed)
{
	struct fault_ranges decided = { 0 };
	uint64_t ss = f->dev.sector_size;
	uint64_t rng = keep_seed;
	size_t i;
	int err = 0;

	pthread_mutex_lock(&f->order_lock);
	/* Decide oldest first so that a seed gives the same outcome for the
	 * same sequence of writes, however many came after. */
	for (i = 0; i < f->nlog; i++) {
		struct fault_undo *e = &f->log[i];
		uint64_t nsect = e->len / ss;

		e->keep = 0;
		if (keep_seed == 0) {
			continue;
		}
		switch (fault_splitmix64(&rng) % 3) {
		case 0:
			e->keep = e->len;
			break;
		case 1:
			break;
		default:
			if (nsect > 1) {
				e->keep = (size_t)((1 + fault_splitmix64(&rng) % (nsect - 1)) * ss);
			}
			break;
		}
	}
	for (i = f->nlog; i-- > 0;) {
		const struct fault_undo *e = &f->log[i];
		int rerr;

		rerr = fault_restore_gaps(f, e, &decided, e->off + e->keep, e->off + e->len);
		if (rerr == 0) {
			rerr = fault_ranges_add(&decided, e->off, e->off + e->keep);
		}
		if (rerr < 0 && err == 0) {
			err = rerr;
		}
	}
	if (err == 0) {
		err = dev_flush(f->lower);
	}
	fault_log_free_locked(f);
	pthread_mutex_lock(&f->mu);
	f->crashed = false;
	pthread_mutex_unlock(&f->mu);
	pthread_mutex_unlock(&f->order_lock);
	free(decided.r);
	return err;
}

void dev_fault_latency(struct lunfs_fault *f, uint32_t us)
{
	pthread_mutex_lock(&f->mu);
	f->latency_us = us;
	pthread_mutex_unlock(&f->mu);
}

void dev_fault_freeze(struct lunfs_fault *f, bool frozen)
{
	pthread_mutex_lock(&f->mu);
	f->frozen = frozen;
	if (!frozen) {
		pthread_cond_broadcast(&f->thaw_cv);
	}
	pthread_mutex_unlock(&f->mu);
}

void dev_fault_stats(struct lunfs_fault *f, struct lunfs_fault_stats *st)
{
	size_t nlog;

	pthread_mutex_lock(&f->order_lock);
	nlog = f->nlog;
	pthread_mutex_lock(&f->mu);
	*st = f->stats;
	pthread_mutex_unlock(&f->mu);
	pthread_mutex_unlock(&f->order_lock);
	st->unflushed_writes = nlog;
}
