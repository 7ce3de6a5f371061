/*
 * The PAXOS compare-and-write backend: Disk Paxos leases over plain reads
 * and writes (Gafni and Lamport, "Disk Paxos", 2003, single disk; rounds
 * as in sanlock's paxos_lease.c). docs/DESIGN.md section 4 is the plan this
 * implements; docs/FORMAT.md section 9 the records.
 *
 * Instances. Sector s is guarded by instance k = crc32c(le64(s)) mod P. An
 * instance is a lease that one host owns at a time, in numbered rounds.
 * Instance k is max_hosts host blocks plus a leader record, contiguous, so
 * one read returns all of it. Host block i is written only by slot i:
 * mbal (highest ballot started), bal (ballot of the accepted value), the
 * value inp = (owner slot + 1, owner generation, round, target), and
 * released_round (the last round this host owned and finished). Each round
 * is a separate consensus: a block takes part in round r only if its
 * inp_round == r; a block of an older round counts as empty (sanlock's lver
 * rule), a block of a newer round means round r is already decided.
 *
 * CAW(s, expect, replace), under a per-instance mutex (one CAW per instance
 * per process; different instances run in parallel):
 *   1. Read the instance. From the leader L and the host blocks choose:
 *      - L valid and current (L.round >= every block's round):
 *        released (L says so, or its owner's block has released_round >=
 *        L.round), or its owner is a stale incarnation of ourselves, or
 *        host_dead(owner): ballot for round L.round + 1;
 *        owned by a live host: wait (poll, backoff 100 us doubling to 5 ms
 *        with jitter; -ETIMEDOUT after dead_timeout + io_deadline without
 *        progress);
 *      - L older than the blocks: ballot for the newest block round (it may
 *        be decided: the ballot will reveal it);
 *      - L corrupt: unknown, the same.
 *   2. Ballot for round T with ballot number b = n * max_hosts + slot,
 *      unique to us, above every mbal of round T seen.
 *      Phase 1: write our block (mbal = b; bal and inp kept if they are of
 *      round T, else cleared), read the instance; abort on any block of
 *      round T with mbal > b, or of a newer round. Value = the inp of the
 *      highest bal of round T, ours if none.
 *      Phase 2: write our block (bal = b, inp = value), read the instance,
 *      abort likewise. Otherwise the value is chosen for round T.
 *      Aborts retry from step 1 after a random backoff.
 *   3. Chosen for us: write L = (T, us, owned) and read s in one batch,
 *      compare, write replace, then write L = (T, us, released) and our
 *      block's released_round = T together.
 *      Chosen for another host: write L = (T, owner, released as its block
 *      says) for it, and go back to step 1 (normally to wait for it).
 *
 * Safety (no two hosts inside the read-compare-write of one instance):
 *  - Disk Paxos: once a value is chosen for round T at ballot b0 by host D,
 *    any later ballot b > b0 for T reads D's block after D's phase-2 write
 *    (else D's phase-2 read would have seen the higher mbal and aborted), so
 *    it sees (T, b0, v) and adopts v, or sees D in a newer round and aborts.
 *    So one owner per round.
 *  - Round T + 1 is only balloted after round T is released or its owner
 *    is dead. Released is written only by the owner after its last write
 *    under the round has completed (or by a host that read it from the
 *    owner's block); dead is the membership layer's judgement, and a dead
 *    host has fenced itself (lease_ok fails) before anyone judges it dead.
 *  - The leader is a hint. A stale leader (written late by a frozen host)
 *    can only make a host ballot for a round that is already decided (it
 *    learns the value and adopts it) or wait; it never grants anything.
 *    Release is recorded twice (leader and the owner's block) so that a
 *    late leader write for a round cannot hide its release forever.
 *  - A corrupt block of a live host cannot be judged: ballots abort (safe,
 *    not live). A corrupt block of a dead slot is ignored: whatever it
 *    held, its owner can no longer act. Our own corrupt block is rewritten.
 *
 * The lease. lease_ok (a mutex and a clock read, no I/O) is called at entry
 * and immediately before EVERY write this file submits (px_write_checked):
 * both ballot writes of our block, the leader write (with the read of s),
 * the replace write, the release, and a leader written for another owner.
 * The argument above needs it: "a dead host has fenced itself" only holds
 * for writes submitted right after a good check, because lockd's timing
 * (a write submitted within the lease lands before anyone judges us dead,
 * DESIGN 5.5 (3)) is what lets the others treat us as gone. A host stopped
 * in the middle of a round (SIGSTOP, a VM pause) may resume after it was
 * judged dead and after its slot passed to another incarnation, which
 * writes the same host block: one stale block write of ours can then erase
 * that incarnation's accepted value, and a later ballot choose a second
 * owner for the same round (a double grant). So once a check fails, the
 * call writes nothing more, the release included (a round decided for us
 * then stays ours, unreleased: the others wait until we are judged dead,
 * or until our next CAW of the instance moves past it), and returns -EIO;
 * except that a replace write that already landed is reported as done.
 *
 * Owed releases. A round whose release was held back by a failed lease
 * check stays ours, and the others wait for it, until we are judged dead.
 * If we are not (the lease lapsed but the next renewal came in time), the
 * release is owed: it is written by our next CAW of that instance, or by
 * dev_paxos_release_owed, which lockd calls after every good renewal, so
 * the others never wait longer than one heartbeat interval for it.
 *
 * Not guarded: a host that passed a lease check and then froze past the
 *   dead timeout before the write it checked for was submitted or landed
 *   (DESIGN 5.5 (4)); the windows are a few instructions long.
 *
 * Uncontended cost: 9 I/Os in 7 round trips (read; write, read; write,
 * read; write leader + read s; write replace; write leader + own block),
 * and 6 lease checks.
 *
 * Lock order: paxos_inst.mu only; never held across a call into lockd
 * other than the callbacks, which take no lock that a CAW may wait for.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lunfs/paxos_caw.h"

#define PX_WAIT_MIN_US 100u
#define PX_WAIT_MAX_US 5000u
#define PX_ABORT_MIN_US 50u
#define PX_ABORT_MAX_US 2000u
/* Contended CAWs keep trying while rounds make progress, but never longer
 * than this many wait periods in all. */
#define PX_HARD_WAITS 4u

enum px_result {
	PX_DECIDED = 0,
	PX_ABORT = 1, /* a higher ballot, or a block that cannot be judged */
	PX_NEWER = 2, /* a block of a newer round: re-read and choose again */
};

struct paxos_inst {
	pthread_mutex_t mu;
	uint64_t rng;               /* mu: backoff jitter */
	/* mu: a round of ours whose release a failed lease check held back
	 * (see "Owed releases" at the top): our block as it must be written,
	 * released_round set, and the target the leader names. */
	bool owed;
	struct lunfs_paxos owed_mine;
	uint64_t owed_target;
};

struct dev_paxos {
	struct lunfs_dev dev;       /* first: what callers hold */
	struct lunfs_dev *lower;
	struct lunfs_super sb;
	struct lunfs_codec codec;
	struct paxos_host me;
	uint32_t hosts;
	uint32_t rs;                /* record stride: sb.sector_size */
	uint64_t wait_ns;
	struct paxos_inst *inst;    /* paxos_instances */
	char name[64];
	_Atomic uint64_t n_caws, n_ballots, n_aborts, n_adopted, n_waits, n_timeouts;
	_Atomic unsigned n_owed;    /* instances with `owed` set */
};

/* One CAW's working state. */
struct px_call {
	struct dev_paxos *p;
	struct paxos_inst *in;
	uint32_t k;
	uint64_t base;              /* address of host block 0 */
	uint64_t off;               /* the guarded sector */
	uint8_t *ibuf;              /* (hosts + 1) * rs: the whole instance */
	uint8_t *own;               /* rs: our block to write */
	uint8_t *lead;              /* rs: leader to write */
	uint8_t *tgt;               /* lower sector size: the target */
	struct lunfs_paxos mine;    /* our block as last written */
	bool lease_lost;            /* a lease check failed: write nothing more */
	/* Host blocks of the last read, decoded at most once per read: a CAW
	 * looks at every block three or four times, and checking 64 crcs
	 * each time was half of an uncontended CAW's CPU (perf). */
	uint32_t reads;             /* bumped by every px_read_instance */
	uint32_t *dec_read;         /* hosts: reads when block i was decoded */
	int *dec_st;                /* hosts: its px_block_get result */
	struct lunfs_paxos *dec;    /* hosts: the block */
};

static struct dev_paxos *px_from_dev(struct lunfs_dev *dev)
{
	return (struct dev_paxos *)dev;
}

static uint64_t px_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t px_rand(struct paxos_inst *in)
{
	/* xorshift64*: jitter only, nothing depends on its quality. */
	in->rng ^= in->rng >> 12;
	in->rng ^= in->rng << 25;
	in->rng ^= in->rng >> 27;
	return in->rng * 2685821657736338717ull;
}

/* Sleep a random time in [*cur/2, *cur] microseconds, then double *cur up
 * to max. Random so that two hosts that collided do not collide again. */
static void px_backoff(struct paxos_inst *in, uint32_t *cur, uint32_t max)
{
	uint32_t half = *cur / 2;
	uint64_t us = half + px_rand(in) % (*cur - half + 1);
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000u), .tv_nsec = (long)(us % 1000000u) * 1000 };

	nanosleep(&ts, NULL);
	*cur = *cur * 2 > max ? max : *cur * 2;
}

static int px_host_dead(struct px_call *x, uint32_t slot, uint64_t gen)
{
	struct dev_paxos *p = x->p;

	if (p->me.host_dead == NULL) {
		return 0;
	}
	return p->me.host_dead(p->me.arg, slot, gen) == 1;
}

static int px_read_instance(struct px_call *x)
{
	x->reads++;
	return dev_read(x->p->lower, x->ibuf, (size_t)(x->p->hosts + 1) * x->p->rs, x->base);
}

/* Decode host block i of the last read: 0, -ENODATA/-ESTALE (empty: *b
 * zeroed) or -EUCLEAN (also for a block that names another instance or
 * slot: a misdirected write). */
static int px_block_get(struct px_call *x, uint32_t i, struct lunfs_paxos *b)
{
	uint64_t addr = x->base + (uint64_t)i * x->p->rs;
	struct lunfs_paxos *d = &x->dec[i];
	int st;

	if (x->dec_read[i] == x->reads) {
		*b = *d;
		return x->dec_st[i];
	}
	st = paxos_decode(&x->p->codec, x->ibuf + (uint64_t)i * x->p->rs, addr, d);
	if (st == 0 && (d->instance != x->k || d->slot != i)) {
		st = -EUCLEAN;
	}
	if (st != 0) {
		memset(d, 0, sizeof(*d));
	}
	x->dec_read[i] = x->reads;
	x->dec_st[i] = st;
	*b = *d;
	return st;
}

static int px_leader_get(struct px_call *x, struct lunfs_paxos_leader *l)
{
	uint64_t i = x->p->hosts;
	int st = paxos_leader_decode(&x->p->codec, x->ibuf + i * x->p->rs, x->base + i * x->p->rs, l);

	if (st == 0 && l->instance != x->k) {
		memset(l, 0, sizeof(*l));
		st = -EUCLEAN;
	}
	if (st == -ENODATA || st == -ESTALE) {
		memset(l, 0, sizeof(*l)); /* never used: round 0, no owner */
		st = 0;
	}
	return st;
}

static void px_own_encode(struct px_call *x)
{
	memset(x->own, 0, x->p->rs);
	paxos_encode(&x->p->codec, &x->mine, x->base + (uint64_t)x->p->me.slot * x->p->rs, x->own);
}

static void px_leader_encode(struct px_call *x, uint64_t round, uint16_t owner_slot, uint64_t owner_gen,
			     bool released, uint64_t target)
{
	struct lunfs_paxos_leader l = {
		.instance = x->k,
		.writer_slot = (uint16_t)x->p->me.slot,
		.writer_gen = x->p->me.gen,
		.round = round,
		.owner_slot = owner_slot,
		.released = released,
		.owner_gen = owner_gen,
		.target = target,
	};

	memset(x->lead, 0, x->p->rs);
	paxos_leader_encode(&x->p->codec, &l, x->base + (uint64_t)x->p->hosts * x->p->rs, x->lead);
}

/* Every write of this file goes through here: the lease is checked
 * immediately before the submit (see the top of the file), and after one
 * failed check nothing is submitted any more. Nothing may come between
 * the check and dev_submit: build the I/Os first. */
static int px_write_checked(struct px_call *x, struct lunfs_io *ios, unsigned n)
{
	struct dev_paxos *p = x->p;

	if (!x->lease_lost && p->me.lease_ok != NULL && p->me.lease_ok(p->me.arg, x->off) < 0) {
		x->lease_lost = true;
	}
	if (x->lease_lost) {
		return -EIO;
	}
	return dev_submit(p->lower, ios, n);
}

static int px_write_own(struct px_call *x)
{
	struct lunfs_io io;

	px_own_encode(x);
	io = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = x->own, .len = x->p->rs,
				.off = x->base + (uint64_t)x->p->me.slot * x->p->rs };
	return px_write_checked(x, &io, 1);
}

/* Scan the other hosts' blocks of the last read for ballot b of round T.
 * With best != NULL, also find the value of round T accepted at the
 * highest ballot (*best_bal = 0 if none). */
static int px_scan(struct px_call *x, uint64_t T, uint64_t b, struct lunfs_paxos *best, uint64_t *best_bal)
{
	struct dev_paxos *p = x->p;

	for (uint32_t i = 0; i < p->hosts; i++) {
		struct lunfs_paxos q;
		int st;

		if (i == p->me.slot) {
			continue;
		}
		st = px_block_get(x, i, &q);
		if (st == -ENODATA || st == -ESTALE) {
			continue;
		}
		if (st != 0) {
			/* Cannot be judged; only a dead slot's may be ignored. */
			if (px_host_dead(x, i, 0)) {
				continue;
			}
			return PX_ABORT;
		}
		if (q.inp_round < T) {
			continue;
		}
		if (q.inp_round > T) {
			return PX_NEWER;
		}
		if (q.mbal > b) {
			return PX_ABORT;
		}
		if (best != NULL && q.bal > 0 && q.bal > *best_bal) {
			*best_bal = q.bal;
			*best = q;
		}
	}
	return PX_DECIDED;
}

/* Run one ballot for round T on the instance image in x->ibuf. On
 * PX_DECIDED, x->mine holds our block with the chosen value. */
static int px_ballot(struct px_call *x, uint64_t T)
{
	struct dev_paxos *p = x->p;
	struct lunfs_paxos own, best;
	uint64_t maxbal, best_bal = 0, b;
	int r, err;

	atomic_fetch_add(&p->n_ballots, 1);
	if (px_block_get(x, p->me.slot, &own) != 0) {
		memset(&own, 0, sizeof(own)); /* empty, or corrupt: ours to rewrite */
	}
	if (own.inp_round > T) {
		return PX_NEWER;
	}
	maxbal = own.mbal;
	if (own.inp_round != T) {
		/* A new round: our accepted value belongs to an older one. */
		own.bal = 0;
		own.inp_owner_slot = 0;
		own.inp_owner_gen = 0;
		own.inp_target = 0;
		own.inp_round = T;
	}
	for (uint32_t i = 0; i < p->hosts; i++) {
		struct lunfs_paxos q;

		if (i != p->me.slot && px_block_get(x, i, &q) == 0 && q.inp_round == T && q.mbal > maxbal) {
			maxbal = q.mbal;
		}
	}
	b = (maxbal / p->hosts + 1) * p->hosts + p->me.slot;

	/* Phase 1. */
	x->mine = own;
	x->mine.instance = x->k;
	x->mine.slot = (uint16_t)p->me.slot;
	x->mine.writer_gen = p->me.gen;
	x->mine.mbal = b;
	err = px_write_own(x);
	if (err == 0) {
		err = px_read_instance(x);
	}
	if (err < 0) {
		return err;
	}
	r = px_scan(x, T, b, &best, &best_bal);
	if (r != PX_DECIDED) {
		return r;
	}
	if (x->mine.bal > best_bal) {
		best_bal = x->mine.bal;
		best = x->mine;
	}
	if (best_bal == 0) {
		best.inp_owner_slot = (uint16_t)(p->me.slot + 1);
		best.inp_owner_gen = p->me.gen;
		best.inp_target = x->off;
	}

	/* Phase 2. */
	x->mine.bal = b;
	x->mine.inp_owner_slot = best.inp_owner_slot;
	x->mine.inp_owner_gen = best.inp_owner_gen;
	x->mine.inp_target = best.inp_target;
	x->mine.inp_round = T;
	err = px_write_own(x);
	if (err == 0) {
		err = px_read_instance(x);
	}
	if (err < 0) {
		return err;
	}
	return px_scan(x, T, b, NULL, NULL);
}

static void px_trace(struct px_call *x, enum paxos_event ev, uint64_t round)
{
	struct dev_paxos *p = x->p;

	if (p->me.trace != NULL) {
		p->me.trace(p->me.arg, ev, x->k, round);
	}
}

/* Remember the release we could not write (x->mine holds released_round). */
static void px_owe_release_locked(struct px_call *x)
{
	if (!x->in->owed) {
		atomic_fetch_add(&x->p->n_owed, 1);
	}
	x->in->owed = true;
	x->in->owed_mine = x->mine;
	x->in->owed_target = x->off;
}

/* Write an owed release of instance x->k, if the lease allows (in->mu
 * held, x->own and x->lead allocated, x->k and x->base set). */
static int px_pay_release_locked(struct px_call *x)
{
	struct paxos_inst *in = x->in;
	struct lunfs_paxos *m = &in->owed_mine;
	struct lunfs_io ios[2];
	int err;

	if (!in->owed) {
		return 0;
	}
	x->mine = *m;
	x->off = in->owed_target;
	px_own_encode(x);
	px_leader_encode(x, m->released_round, (uint16_t)(x->p->me.slot + 1), x->p->me.gen, true,
			 in->owed_target);
	ios[0] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = x->lead, .len = x->p->rs,
				    .off = x->base + (uint64_t)x->p->hosts * x->p->rs };
	ios[1] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = x->own, .len = x->p->rs,
				    .off = x->base + (uint64_t)x->p->me.slot * x->p->rs };
	err = px_write_checked(x, ios, 2);
	if (err == 0) {
		in->owed = false;
		atomic_fetch_sub(&x->p->n_owed, 1);
	}
	return err;
}

/* Round T is ours: the guarded read-compare-write, then the release. */
static int px_owned(struct px_call *x, uint64_t T, const void *expect, const void *replace, void *current)
{
	struct dev_paxos *p = x->p;
	uint32_t ss = p->dev.sector_size;
	struct lunfs_io ios[2];
	bool wrote = false;
	int ret, rerr;

	px_trace(x, PAXOS_EV_OWNED, T);
	px_leader_encode(x, T, (uint16_t)(p->me.slot + 1), p->me.gen, false, x->off);
	ios[0] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = x->lead, .len = p->rs,
				    .off = x->base + (uint64_t)p->hosts * p->rs };
	ios[1] = (struct lunfs_io){ .op = LUNFS_IO_READ, .buf = x->tgt, .len = ss, .off = x->off };
	ret = px_write_checked(x, ios, 2);
	if (ret < 0) {
		goto release;
	}
	if (memcmp(x->tgt, expect, ss) != 0) {
		if (current != NULL) {
			memcpy(current, x->tgt, ss);
		}
		ret = -ECANCELED;
		goto release;
	}
	/* The one write that matters (DESIGN 5.5 (4)). */
	memcpy(x->tgt, replace, ss);
	ios[0] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = x->tgt, .len = ss, .off = x->off };
	ret = px_write_checked(x, ios, 1);
	if (ret < 0) {
		goto release;
	}
	wrote = true;
release:
	/* The replace write has completed (or failed) before anyone can see
	 * the release: both release writes go out only now, and not at all
	 * once a lease check has failed (px_write_checked). */
	px_trace(x, PAXOS_EV_EXIT, T);
	x->mine.released_round = T;
	px_own_encode(x);
	px_leader_encode(x, T, (uint16_t)(p->me.slot + 1), p->me.gen, true, x->off);
	ios[0] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = x->lead, .len = p->rs,
				    .off = x->base + (uint64_t)p->hosts * p->rs };
	ios[1] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = x->own, .len = p->rs,
				    .off = x->base + (uint64_t)p->me.slot * p->rs };
	rerr = px_write_checked(x, ios, 2);
	if (rerr < 0 && x->lease_lost) {
		px_owe_release_locked(x);
	}
	/* A failed or refused release leaves the leader naming us,
	 * unreleased: our next CAW on this instance sees a stale ownership of
	 * ours and moves on; the others wait until then or until we are dead.
	 * A replace write that landed is reported: the CAW has happened (our
	 * caller's view, e.g. lockd's last image of our slot, must follow the
	 * disk). Otherwise a refusal is -EIO, even after a miscompare: we are
	 * out of the protocol, and re-reading to try again is pointless. */
	if (rerr < 0 && !wrote && x->lease_lost) {
		ret = -EIO;
	}
	return ret;
}

/* Is round l->round finished (or nobody's)? */
static bool px_round_released(struct px_call *x, const struct lunfs_paxos_leader *l)
{
	struct lunfs_paxos ob;

	if (l->owner_slot == 0 || l->released) {
		return true;
	}
	return l->owner_slot - 1u < x->p->hosts && px_block_get(x, l->owner_slot - 1u, &ob) == 0 &&
	       ob.released_round >= l->round;
}

/* Step 1: *T gets the round to ballot for, or 0 when a live host owns the
 * instance (wait). *seen gets a summary of the state, to detect progress. */
static void px_choose(struct px_call *x, uint64_t *T, uint64_t *seen)
{
	struct dev_paxos *p = x->p;
	struct lunfs_paxos_leader l;
	uint64_t maxr = 0;
	int ls;

	for (uint32_t i = 0; i < p->hosts; i++) {
		struct lunfs_paxos q;

		if (px_block_get(x, i, &q) == 0 && q.inp_round > maxr) {
			maxr = q.inp_round;
		}
	}
	ls = px_leader_get(x, &l);
	*seen = maxr;
	if (ls != 0 || l.round < maxr || l.owner_slot > p->hosts) {
		/* Unknown or behind: newest round (it may be decided). */
		*T = maxr > 0 ? maxr : 1;
		return;
	}
	*seen = l.round * 4 + (l.released ? 2 : 0);
	if (px_round_released(x, &l) ||
	    (l.owner_slot == p->me.slot + 1 && l.owner_gen == p->me.gen) ||
	    px_host_dead(x, l.owner_slot - 1u, l.owner_gen)) {
		*T = l.round + 1;
		return;
	}
	*T = 0;
}

static int px_caw(struct lunfs_dev *dev, uint64_t off, const void *expect, const void *replace, void *current)
{
	struct dev_paxos *p = px_from_dev(dev);
	struct px_call x = { .p = p, .off = off };
	uint32_t wait_us = PX_WAIT_MIN_US, abort_us = PX_ABORT_MIN_US;
	uint64_t start, deadline, hard, last_seen = UINT64_MAX;
	int ret;

	atomic_fetch_add(&p->n_caws, 1);
	x.k = layout_paxos_instance(&p->sb, off);
	x.in = &p->inst[x.k];
	x.base = layout_paxos_addr(&p->sb, x.k, 0);
	x.ibuf = dev_buf_alloc((size_t)(p->hosts + 1) * p->rs);
	x.own = dev_buf_alloc(p->rs);
	x.lead = dev_buf_alloc(p->rs);
	x.tgt = dev_buf_alloc(dev->sector_size);
	x.dec_read = calloc(p->hosts, sizeof(*x.dec_read));
	x.dec_st = calloc(p->hosts, sizeof(*x.dec_st));
	x.dec = calloc(p->hosts, sizeof(*x.dec));
	/* reads starts at 1: a zeroed dec_read never matches. */
	x.reads = 1;
	if (x.ibuf == NULL || x.own == NULL || x.lead == NULL || x.tgt == NULL || x.dec_read == NULL ||
	    x.dec_st == NULL || x.dec == NULL) {
		ret = -ENOMEM;
		goto out_free;
	}
	/* A fenced host takes no part, not even in ballots. */
	ret = p->me.lease_ok != NULL ? p->me.lease_ok(p->me.arg, off) : 0;
	if (ret < 0) {
		goto out_free;
	}
	pthread_mutex_lock(&x.in->mu);
	if (x.in->owed) {
		/* Before anything else under this instance: the round we
		 * still own must be let go (or we are out of the protocol). */
		ret = px_pay_release_locked(&x);
		x.off = off;
		if (ret < 0) {
			goto out;
		}
	}
	start = px_now_ns();
	deadline = start + p->wait_ns;
	hard = start + PX_HARD_WAITS * p->wait_ns;
	for (;;) {
		uint64_t T, seen, now;

		ret = px_read_instance(&x);
		if (ret < 0) {
			goto out;
		}
		px_choose(&x, &T, &seen);
		now = px_now_ns();
		if (seen != last_seen) {
			/* Progress: someone else's turn came and went. */
			last_seen = seen;
			deadline = now + p->wait_ns < hard ? now + p->wait_ns : hard;
		}
		if (now > deadline) {
			atomic_fetch_add(&p->n_timeouts, 1);
			ret = -ETIMEDOUT;
			goto out;
		}
		if (T == 0) {
			atomic_fetch_add(&p->n_waits, 1);
			px_backoff(x.in, &wait_us, PX_WAIT_MAX_US);
			continue;
		}
		ret = px_ballot(&x, T);
		if (ret < 0) {
			goto out;
		}
		if (ret == PX_ABORT) {
			atomic_fetch_add(&p->n_aborts, 1);
			px_backoff(x.in, &abort_us, PX_ABORT_MAX_US);
			continue;
		}
		if (ret == PX_NEWER) {
			atomic_fetch_add(&p->n_aborts, 1);
			continue;
		}
		{
			struct lunfs_paxos ob;
			struct lunfs_io io;
			uint32_t os = x.mine.inp_owner_slot - 1u;
			bool mine = os == p->me.slot && x.mine.inp_owner_gen == p->me.gen;
			/* The ballot may only have re-learnt a round that is
			 * over (a stale or corrupt leader sent us back to it):
			 * its owner's block says so. Never enter it twice. */
			bool rel = mine ? x.mine.released_round >= T
					: os < p->hosts && px_block_get(&x, os, &ob) == 0 && ob.released_round >= T;

			if (mine && !rel) {
				ret = px_owned(&x, T, expect, replace, current);
				goto out;
			}
			/* Decided for another host (or over): tell everyone,
			 * then wait for it (or go on to the next round). */
			atomic_fetch_add(&p->n_adopted, 1);
			px_leader_encode(&x, T, x.mine.inp_owner_slot, x.mine.inp_owner_gen, rel, x.mine.inp_target);
			io = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = x.lead, .len = p->rs,
						.off = x.base + (uint64_t)p->hosts * p->rs };
			ret = px_write_checked(&x, &io, 1);
			if (ret < 0) {
				goto out;
			}
		}
	}
out:
	pthread_mutex_unlock(&x.in->mu);
out_free:
	free(x.dec);
	free(x.dec_st);
	free(x.dec_read);
	dev_buf_free(x.tgt);
	dev_buf_free(x.lead);
	dev_buf_free(x.own);
	dev_buf_free(x.ibuf);
	return ret;
}

static int px_submit(struct lunfs_dev *dev, struct lunfs_io *ios, unsigned n)
{
	return dev_submit(px_from_dev(dev)->lower, ios, n);
}

static int px_flush(struct lunfs_dev *dev)
{
	return dev_flush(px_from_dev(dev)->lower);
}

static int px_discard(struct lunfs_dev *dev, uint64_t off, uint64_t len)
{
	return dev_discard(px_from_dev(dev)->lower, off, len);
}

static void px_close(struct lunfs_dev *dev)
{
	struct dev_paxos *p = px_from_dev(dev);

	for (uint32_t i = 0; i < p->sb.paxos_instances; i++) {
		pthread_mutex_destroy(&p->inst[i].mu);
	}
	free(p->inst);
	free(p);
}

static const struct lunfs_dev_ops px_ops = {
	.submit = px_submit,
	.flush = px_flush,
	.discard = px_discard,
	.caw = px_caw,
	.close = px_close,
};

int dev_paxos_open(struct lunfs_dev *lower, const struct lunfs_super *sb, const struct lunfs_codec *c,
		   const struct paxos_host *me, struct lunfs_dev **out)
{
	struct dev_paxos *p;
	uint64_t seed = px_now_ns();

	*out = NULL;
	if (lower->sector_size > sb->sector_size || me->slot >= sb->max_hosts || sb->paxos_instances == 0 ||
	    layout_paxos_leader_addr(sb, sb->paxos_instances - 1) + sb->sector_size > lower->size) {
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		return -ENOMEM;
	}
	p->inst = calloc(sb->paxos_instances, sizeof(*p->inst));
	if (p->inst == NULL) {
		free(p);
		return -ENOMEM;
	}
	p->lower = lower;
	p->sb = *sb;
	p->codec = *c;
	p->me = *me;
	p->hosts = sb->max_hosts;
	p->rs = sb->sector_size;
	p->wait_ns = me->wait_ns != 0 ? me->wait_ns
				       : ((uint64_t)sb->dead_timeout_ms + sb->io_deadline_ms) * 1000000ull;
	for (uint32_t i = 0; i < sb->paxos_instances; i++) {
		pthread_mutex_init(&p->inst[i].mu, NULL);
		p->inst[i].rng = (seed ^ ((uint64_t)(me->slot + 1) * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)i << 40)) | 1;
	}
	snprintf(p->name, sizeof(p->name), "paxos(%s)", lower->name != NULL ? lower->name : "?");
	p->dev.ops = &px_ops;
	p->dev.size = lower->size;
	p->dev.sector_size = lower->sector_size;
	p->dev.io_deadline_ms = lower->io_deadline_ms;
	p->dev.name = p->name;
	*out = &p->dev;
	return 0;
}

void dev_paxos_stats(struct lunfs_dev *dev, struct paxos_stats *out)
{
	struct dev_paxos *p = px_from_dev(dev);

	out->caws = atomic_load(&p->n_caws);
	out->ballots = atomic_load(&p->n_ballots);
	out->aborts = atomic_load(&p->n_aborts);
	out->adopted = atomic_load(&p->n_adopted);
	out->waits = atomic_load(&p->n_waits);
	out->timeouts = atomic_load(&p->n_timeouts);
}

int dev_paxos_release_owed(struct lunfs_dev *dev)
{
	struct dev_paxos *p = px_from_dev(dev);
	struct px_call x = { .p = p };
	int ret = 0;

	if (atomic_load(&p->n_owed) == 0) {
		return 0;
	}
	x.own = dev_buf_alloc(p->rs);
	x.lead = dev_buf_alloc(p->rs);
	if (x.own == NULL || x.lead == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t k = 0; k < p->sb.paxos_instances && ret == 0; k++) {
		x.k = k;
		x.in = &p->inst[k];
		x.base = layout_paxos_addr(&p->sb, k, 0);
		x.lease_lost = false;
		/* A CAW running on the instance pays it itself. */
		if (pthread_mutex_trylock(&x.in->mu) != 0) {
			continue;
		}
		ret = px_pay_release_locked(&x);
		pthread_mutex_unlock(&x.in->mu);
	}
out:
	dev_buf_free(x.lead);
	dev_buf_free(x.own);
	return ret;
}
