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
 *      compare, write replace. The round is then kept (below); letting it
 *      go writes L = (T, us, released) and our block's released_round = T
 *      together (the release).
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
 * Kept ("sticky") rounds, as a sanlock Paxos lease is held. A round of
 * ours is not released right after its CAW. While we hold round T of
 * instance k, unreleased, nobody ballots T + 1 (step 1: T is neither
 * released nor is its owner dead), so a further CAW of ANY sector that k
 * guards needs no ballot (the fast path):
 *     read L and s in one batch; L must still be (T, us, owned), else MISS;
 *     compare; write replace (lease-checked, as every write).
 *   MISS: read the instance. L or any block of a round > T (or L of round
 *   T naming anyone but us, owned): someone went past T, which happens
 *   only once we were judged dead: drop the round, write nothing, -EIO.
 *   Otherwise (L stale or corrupt: a hint, see above): release T, step 1.
 * A kept round is released (the step-3 release writes):
 *   - by the device's idle thread once unused for sticky_idle_ns (2 ms):
 *     a host that finds it owned waits and polls (step 1) at most that
 *     much longer than it waited before kept rounds;
 *   - by our next CAW of k once it was decided PX_HOLD_NS ago; that CAW
 *     then waits PX_YIELD_NS (more than the longest poll, PX_WAIT_MAX_US)
 *     before its own ballot, so a host that CAWs k without pause cannot
 *     starve the others (they see the release and ballot first);
 *   - before any ballot of ours on k (the MISS path; an I/O error in the
 *     fast path ends the round as one in px_owned does);
 *   - by dev_paxos_unstick (lockd_leave, while the slot is still ours).
 * It is dropped WITHOUT writing its release: when a lease check fails (the
 * release is then owed, below), on a MISS that shows it was lost, and at
 * close (lockd_abandon and a fenced lockd_leave write nothing; a clean
 * leave has unstuck first).
 *
 * Kept state: struct paxos_inst, under its mu: held, round, mine (our block
 * as written in round T, released_round not yet T), target (the latest
 * CAW's sector, which the release's L names), since_ns (when T was decided
 * for us), yield_ns. A release inside a CAW is lease-checked for that
 * CAW's sector, as before; one by the idle thread or unstick for no sector
 * (PAXOS_TARGET_NONE): the plain lease, never the longer window lockd
 * gives renewals of our own slot (and the fence past it, which lockd
 * decides under its renewal lock). last_ns and hint are
 * atomics written under mu and read by the idle thread without it, only
 * to choose what to trylock (the decision is re-made under mu). The idle
 * thread sleeps on dev_paxos.st_cv (st_mu) while n_held == 0.
 *
 * Why the fast path is safe. Round T was decided for us by a ballot, as in
 * the full path; the only question is whether T can have ended since. It
 * ends by our release (we hold mu, the state is ours: we know) or by the
 * others judging us dead and balloting T + 1. Every fast-path write is
 * lease-checked immediately before its submit, and a write submitted
 * within the lease lands before anyone can judge us dead (DESIGN 5.5 (3)),
 * exactly as the full path's replace write. The cases:
 *  - A host frozen while holding a kept round wakes with its lease gone
 *    (CLOCK_BOOTTIME counted the freeze): every check fails, it writes
 *    nothing, and the idle thread's release is refused too (owed: paid
 *    only after a good renewal, which a host judged dead never makes).
 *  - A host judged dead while holding one: the others ballot T + 1 after
 *    host_dead; our lease check fails by then. Second line: the L read of
 *    every fast CAW. Whoever owns a round > T wrote L for it before its
 *    read-compare-write (step 3), so we MISS and write nothing. (A second
 *    line only: a stale L written in between could hide it from one read.)
 *  - A lapse followed by a good renewal: nobody judged us dead (the
 *    renewal landed before anyone could; DESIGN 4.3), the round is still
 *    ours, and nothing was written under it while the lease was bad.
 *  - Our slot passing to a new generation: the kept state lives in the
 *    dev_paxos of one incarnation; lockd opens one per join under (slot,
 *    gen) and closes it on leave or abandon, writing nothing at close. A
 *    new incarnation starts with nothing kept and treats our round as that
 *    of a dead incarnation (host_dead(slot, old gen)): it ballots T + 1.
 *  - Our own slot's sector may be guarded by a kept instance: a PAXOS
 *    renewal with a valid lease is a plain write outside Paxos (unchanged);
 *    one by CAW (lapsed lease) takes the fast path, its replace write
 *    checked against the T - D window like the full path's. A recoverer's
 *    CAW of our slot needs round T + 1, so a judgement of us first. The
 *    delta-lease join writes before this device exists. Recovery CAWs of
 *    other slots and lock records read s afresh and compare, as before.
 *  - Fairness is liveness, not safety: the hold limit above.
 * The trace reports OWNED when a round is decided for us and EXIT when it
 * stops being kept, so the tests' ownership check ("no two hosts inside
 * one instance") now covers every CAW of the round.
 *
 * Not guarded: a host that passed a lease check and then froze past the
 *   dead timeout before the write it checked for was submitted or landed
 *   (DESIGN 5.5 (4)); the windows are a few instructions long.
 *
 * Uncontended cost: the first CAW of a round 8 I/Os in 6 round trips
 * (read; write, read; write, read; write leader + read s; write replace)
 * and 5 lease checks; each further CAW while the round is kept 3 I/Os in 2
 * round trips (read leader + read s; write replace) and 2 lease checks;
 * the release (2 writes, 1 round trip) later, on the idle thread.
 *
 * Lock order: paxos_inst.mu < dev_paxos.st_mu (the idle thread only
 * trylocks mu, and never holds st_mu meanwhile). mu is never held across
 * a call into lockd other than the callbacks, which take no lock that a
 * CAW may wait for.
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
/* A kept round decided this long ago is released by our next CAW of the
 * instance, which then waits PX_YIELD_NS before it ballots: more than a
 * waiter's longest poll (PX_WAIT_MAX_US) plus a read, so that a waiter
 * sees the release before we can take the instance again. */
#define PX_HOLD_NS 100000000ull
#define PX_YIELD_NS (2ull * PX_WAIT_MAX_US * 1000ull)

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
	/* mu: the kept round (see "Kept rounds" at the top). */
	bool held;
	uint64_t round;
	struct lunfs_paxos mine;    /* our block as written in `round` */
	uint64_t target;            /* sector of the latest CAW under it */
	uint64_t since_ns;          /* when `round` was decided for us */
	uint64_t yield_ns;          /* no ballot of ours before this */
	/* Written under mu; the idle thread reads them without it. */
	_Atomic uint64_t last_ns;   /* end of the latest CAW under the round */
	atomic_bool hint;           /* == held */
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
	_Atomic uint64_t n_caws, n_ballots, n_aborts, n_adopted, n_waits, n_timeouts, n_fast, n_idle_rel;
	_Atomic unsigned n_owed;    /* instances with `owed` set */
	_Atomic unsigned n_held;    /* instances with `held` set */
	uint64_t idle_ns;           /* a kept round unused this long is released */
	atomic_bool unstuck;        /* dev_paxos_unstick: keep no round */
	/* The idle thread: sleeps on st_cv while n_held == 0. */
	pthread_t st_thread;
	pthread_mutex_t st_mu;
	pthread_cond_t st_cv;
	bool st_stop;               /* st_mu */
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

/* Aim x at instance k, before its mutex is taken: nothing written yet. */
static void px_call_at(struct px_call *x, uint32_t k)
{
	x->k = k;
	x->in = &x->p->inst[k];
	x->base = layout_paxos_addr(&x->p->sb, k, 0);
	x->lease_lost = false;
}

/* The two blocks a release writes (own, lead): 0 or -ENOMEM. Freed by
 * px_call_release_free, also after a failure. */
static int px_call_release_bufs(struct px_call *x)
{
	x->own = dev_buf_alloc(x->p->rs);
	x->lead = dev_buf_alloc(x->p->rs);
	return x->own != NULL && x->lead != NULL ? 0 : -ENOMEM;
}

static void px_call_release_free(struct px_call *x)
{
	dev_buf_free(x->lead);
	dev_buf_free(x->own);
	x->lead = x->own = NULL;
}

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

/* Keep round T of x->in after its CAW (mu held): see "Kept rounds". */
static void px_keep_locked(struct px_call *x, uint64_t T)
{
	struct dev_paxos *p = x->p;
	struct paxos_inst *in = x->in;
	uint64_t now = px_now_ns();

	in->held = true;
	in->round = T;
	in->mine = x->mine;
	in->target = x->off;
	in->since_ns = now;
	atomic_store(&in->last_ns, now);
	atomic_store(&in->hint, true);
	atomic_fetch_add(&p->n_held, 1);
	pthread_mutex_lock(&p->st_mu);
	pthread_cond_signal(&p->st_cv);
	pthread_mutex_unlock(&p->st_mu);
}

/* The kept round of x->in ends here (mu held); nothing is written. */
static void px_unkeep_locked(struct px_call *x)
{
	struct paxos_inst *in = x->in;

	in->held = false;
	atomic_store(&in->hint, false);
	atomic_fetch_sub(&x->p->n_held, 1);
	px_trace(x, PAXOS_EV_EXIT, in->round);
}

/* Let the kept round of x->in go: the step-3 release, lease-checked for
 * x->off (inside a CAW its sector, as the release right after a CAW; on
 * the idle thread and in unstick PAXOS_TARGET_NONE, the plain lease: the
 * T - D window lockd allows for our own slot, and the fence it imposes
 * past it, belong to renewals, which lockd serialises). A refusal leaves
 * it owed. mu held; x->own, x->lead, x->k and x->base set. */
static int px_release_kept_locked(struct px_call *x)
{
	struct dev_paxos *p = x->p;
	struct paxos_inst *in = x->in;
	struct lunfs_io ios[2];
	uint64_t off = x->off;
	int err;

	if (!in->held) {
		return 0;
	}
	px_unkeep_locked(x);
	x->mine = in->mine;
	x->mine.released_round = in->round;
	px_own_encode(x);
	px_leader_encode(x, in->round, (uint16_t)(p->me.slot + 1), p->me.gen, true, in->target);
	ios[0] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = x->lead, .len = p->rs,
				    .off = x->base + (uint64_t)p->hosts * p->rs };
	ios[1] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = x->own, .len = p->rs,
				    .off = x->base + (uint64_t)p->me.slot * p->rs };
	err = px_write_checked(x, ios, 2);
	if (err < 0 && x->lease_lost) {
		x->off = in->target;    /* what the owed release's leader names */
		px_owe_release_locked(x);
		x->off = off;
	}
	return err;
}

/* The fast path: a CAW under the kept round of x->in (mu held). *miss:
 * the leader no longer names our round (nothing done; px_miss_locked
 * decides). Otherwise the CAW's result; an error ends the round as in
 * px_owned (released, or owed when the lease refused it). */
static int px_fast_locked(struct px_call *x, const void *expect, const void *replace, void *current, bool *miss)
{
	struct dev_paxos *p = x->p;
	struct paxos_inst *in = x->in;
	uint32_t ss = p->dev.sector_size;
	uint64_t laddr = x->base + (uint64_t)p->hosts * p->rs;
	struct lunfs_paxos_leader l;
	struct lunfs_io ios[2];
	int ret;

	*miss = false;
	ios[0] = (struct lunfs_io){ .op = LUNFS_IO_READ, .buf = x->ibuf + (uint64_t)p->hosts * p->rs, .len = p->rs,
				    .off = laddr };
	ios[1] = (struct lunfs_io){ .op = LUNFS_IO_READ, .buf = x->tgt, .len = ss, .off = x->off };
	x->reads++;     /* the host blocks in ibuf are not of this read */
	ret = dev_submit(p->lower, ios, 2);
	if (ret < 0) {
		goto end;
	}
	if (px_leader_get(x, &l) != 0 || l.round != in->round || l.owner_slot != p->me.slot + 1u ||
	    l.owner_gen != p->me.gen || l.released) {
		*miss = true;
		return 0;
	}
	atomic_fetch_add(&p->n_fast, 1);
	in->target = x->off;
	if (memcmp(x->tgt, expect, ss) != 0) {
		if (current != NULL) {
			memcpy(current, x->tgt, ss);
		}
		atomic_store(&in->last_ns, px_now_ns());
		return -ECANCELED;
	}
	/* The one write that matters (DESIGN 5.5 (4)). */
	memcpy(x->tgt, replace, ss);
	ios[0] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = x->tgt, .len = ss, .off = x->off };
	ret = px_write_checked(x, ios, 1);
	if (ret == 0) {
		atomic_store(&in->last_ns, px_now_ns());
		return 0;
	}
end:
	/* Refused by the lease (-EIO, the release owed and never written
	 * now) or an I/O error (released at once, as px_owned does). */
	in->target = x->off;
	(void)px_release_kept_locked(x);
	return ret;
}

/* The leader did not name our kept round T: re-read the instance. Gone
 * past T (only after a judgement of us): drop it writing nothing, -EIO.
 * Else release it, 0: the caller goes on to step 1. */
static int px_miss_locked(struct px_call *x)
{
	struct dev_paxos *p = x->p;
	struct paxos_inst *in = x->in;
	struct lunfs_paxos_leader l;
	uint64_t T = in->round;
	bool lost = false;
	int ret;

	ret = px_read_instance(x);
	if (ret < 0) {
		(void)px_release_kept_locked(x);
		return ret;
	}
	if (px_leader_get(x, &l) == 0 && l.owner_slot != 0 &&
	    (l.round > T || (l.round == T && (l.owner_slot != p->me.slot + 1u || l.owner_gen != p->me.gen ||
					      l.released)))) {
		lost = true;
	}
	for (uint32_t i = 0; i < p->hosts && !lost; i++) {
		struct lunfs_paxos q;

		if (px_block_get(x, i, &q) == 0 && q.inp_round > T) {
			lost = true;
		}
	}
	if (lost) {
		px_unkeep_locked(x);
		return -EIO;
	}
	ret = px_release_kept_locked(x);
	return ret < 0 && x->lease_lost ? -EIO : ret;
}

/* Round T is ours: the guarded read-compare-write; then the round is kept
 * (or, once unstuck or after a failure, released at once). */
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
		goto done;
	}
	/* The one write that matters (DESIGN 5.5 (4)). */
	memcpy(x->tgt, replace, ss);
	ios[0] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = x->tgt, .len = ss, .off = x->off };
	ret = px_write_checked(x, ios, 1);
	if (ret < 0) {
		goto release;
	}
	wrote = true;
done:
	if (!atomic_load(&p->unstuck)) {
		px_keep_locked(x, T);
		return ret;
	}
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
	px_call_at(&x, layout_paxos_instance(&p->sb, off));
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
	if (x.in->held) {
		uint64_t now = px_now_ns();
		bool over = now - x.in->since_ns >= PX_HOLD_NS;

		if (!over && !atomic_load(&p->unstuck)) {
			bool miss;

			ret = px_fast_locked(&x, expect, replace, current, &miss);
			if (!miss) {
				goto out;
			}
			ret = px_miss_locked(&x);
		} else {
			/* Held long enough (let the waiters in first), or
			 * unstuck: this CAW ballots afresh. */
			ret = px_release_kept_locked(&x);
			if (over) {
				x.in->yield_ns = now + PX_YIELD_NS;
			}
		}
		if (ret < 0) {
			goto out;
		}
	}
	start = px_now_ns();
	if (x.in->yield_ns > start) {
		uint64_t ns = x.in->yield_ns - start;
		struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };

		nanosleep(&ts, NULL);
		start = px_now_ns();
	}
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

/* ---- the idle thread: releases kept rounds nobody used for idle_ns ------- */

static uint64_t px_sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Release every kept round idle for idle_ns. Returns when the next one may
 * become idle (UINT64_MAX: none held, or idle_ns is infinite). */
static uint64_t px_idle_sweep(struct dev_paxos *p, struct px_call *x)
{
	uint64_t now = px_now_ns(), next = UINT64_MAX;

	for (uint32_t k = 0; k < p->sb.paxos_instances; k++) {
		struct paxos_inst *in = &p->inst[k];
		uint64_t due;

		if (!atomic_load(&in->hint)) {
			continue;
		}
		due = px_sat_add(atomic_load(&in->last_ns), p->idle_ns);
		if (due <= now && pthread_mutex_trylock(&in->mu) == 0) {
			/* Decide again under mu: a CAW may have used it. */
			due = px_sat_add(atomic_load(&in->last_ns), p->idle_ns);
			if (in->held && due <= now) {
				px_call_at(x, k);
				x->off = PAXOS_TARGET_NONE;
				atomic_fetch_add(&p->n_idle_rel, 1);
				(void)px_release_kept_locked(x);
			}
			pthread_mutex_unlock(&in->mu);
			if (!atomic_load(&in->hint)) {
				continue;
			}
		} else if (due <= now) {
			/* A CAW runs on it: it will be used again, or released. */
			due = px_sat_add(now, p->idle_ns);
		}
		next = due < next ? due : next;
	}
	return next;
}

static void *px_idle_main(void *arg)
{
	struct dev_paxos *p = arg;
	struct px_call x = { .p = p };

	bool bufs = px_call_release_bufs(&x) == 0;

	pthread_mutex_lock(&p->st_mu);
	while (!p->st_stop) {
		uint64_t next;
		struct timespec ts;

		if (atomic_load(&p->n_held) == 0 || !bufs) {
			pthread_cond_wait(&p->st_cv, &p->st_mu);
			continue;
		}
		pthread_mutex_unlock(&p->st_mu);
		next = px_idle_sweep(p, &x);
		pthread_mutex_lock(&p->st_mu);
		if (p->st_stop) {
			break;
		}
		if (next == UINT64_MAX) {
			pthread_cond_wait(&p->st_cv, &p->st_mu);
			continue;
		}
		ts.tv_sec = (time_t)(next / 1000000000ull);
		ts.tv_nsec = (long)(next % 1000000000ull);
		(void)pthread_cond_timedwait(&p->st_cv, &p->st_mu, &ts);
	}
	pthread_mutex_unlock(&p->st_mu);
	px_call_release_free(&x);
	return NULL;
}

/* Close writes nothing: kept rounds are dropped unreleased (a clean leave
 * has called dev_paxos_unstick before; abandon must not write). */
static void px_close(struct lunfs_dev *dev)
{
	struct dev_paxos *p = px_from_dev(dev);

	pthread_mutex_lock(&p->st_mu);
	p->st_stop = true;
	pthread_cond_broadcast(&p->st_cv);
	pthread_mutex_unlock(&p->st_mu);
	pthread_join(p->st_thread, NULL);
	pthread_cond_destroy(&p->st_cv);
	pthread_mutex_destroy(&p->st_mu);
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
	pthread_condattr_t ca;
	int err;

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
	p->idle_ns = me->sticky_idle_ns != 0 ? me->sticky_idle_ns : PAXOS_STICKY_IDLE_NS_DEFAULT;
	for (uint32_t i = 0; i < sb->paxos_instances; i++) {
		pthread_mutex_init(&p->inst[i].mu, NULL);
		p->inst[i].rng = (seed ^ ((uint64_t)(me->slot + 1) * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)i << 40)) | 1;
	}
	pthread_mutex_init(&p->st_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->st_cv, &ca);
	pthread_condattr_destroy(&ca);
	err = -pthread_create(&p->st_thread, NULL, px_idle_main, p);
	if (err < 0) {
		pthread_cond_destroy(&p->st_cv);
		pthread_mutex_destroy(&p->st_mu);
		for (uint32_t i = 0; i < sb->paxos_instances; i++) {
			pthread_mutex_destroy(&p->inst[i].mu);
		}
		free(p->inst);
		free(p);
		return err;
	}
	snprintf(p->name, sizeof(p->name), "paxos(%s)", lower->name != NULL ? lower->name : "?");
	p->dev.ops = &px_ops;
	p->dev.size = lower->size;
	p->dev.sector_size = lower->sector_size;
	p->dev.mem_align = lower->mem_align;
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
	out->fast = atomic_load(&p->n_fast);
	out->idle_releases = atomic_load(&p->n_idle_rel);
	out->held = atomic_load(&p->n_held);
	out->owed = atomic_load(&p->n_owed);
}

int dev_paxos_unstick(struct lunfs_dev *dev)
{
	struct dev_paxos *p = px_from_dev(dev);
	struct px_call x = { .p = p };
	int ret = 0;

	atomic_store(&p->unstuck, true);
	if (atomic_load(&p->n_held) == 0 && atomic_load(&p->n_owed) == 0) {
		return 0;
	}
	ret = px_call_release_bufs(&x);
	if (ret < 0) {
		goto out;
	}
	for (uint32_t k = 0; k < p->sb.paxos_instances; k++) {
		int err;

		px_call_at(&x, k);
		/* Not a trylock: a CAW running on the instance finishes first
		 * (and, seeing unstuck, releases its round itself). */
		pthread_mutex_lock(&x.in->mu);
		x.off = PAXOS_TARGET_NONE;
		err = px_release_kept_locked(&x);
		if (err == 0 && !x.lease_lost) {
			err = px_pay_release_locked(&x);
		}
		pthread_mutex_unlock(&x.in->mu);
		if (ret == 0) {
			ret = err;
		}
	}
out:
	px_call_release_free(&x);
	return ret;
}

int dev_paxos_release_owed(struct lunfs_dev *dev)
{
	struct dev_paxos *p = px_from_dev(dev);
	struct px_call x = { .p = p };
	int ret = 0;

	if (atomic_load(&p->n_owed) == 0) {
		return 0;
	}
	ret = px_call_release_bufs(&x);
	if (ret < 0) {
		goto out;
	}
	for (uint32_t k = 0; k < p->sb.paxos_instances && ret == 0; k++) {
		px_call_at(&x, k);
		/* A CAW running on the instance pays it itself. */
		if (pthread_mutex_trylock(&x.in->mu) != 0) {
			continue;
		}
		ret = px_pay_release_locked(&x);
		pthread_mutex_unlock(&x.in->mu);
	}
out:
	px_call_release_free(&x);
	return ret;
}
