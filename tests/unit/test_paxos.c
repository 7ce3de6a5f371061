/*
 * Unit tests of the PAXOS compare-and-write backend (lockd/paxos.c) and the
 * delta-lease join of lockd in PAXOS mode (lockd/hb.c).
 *
 * Several "hosts" are threads, each with its own paxos_host and its own
 * Paxos device over ONE memory device (through a fault layer each, so a
 * host can lose its disk path or run slower). host_dead is the test's:
 * a flag per slot. The trace callback keeps an ownership log: every decided
 * round of an instance has exactly one owner, and an atomic counter per
 * instance proves that no two hosts are ever inside the read-compare-write
 * of one instance at once. Assertions are made on the main thread; workers
 * only count violations. A host can also be stopped right after one of its
 * I/Os (a hook on its device, share_dev.after) while the others act: the
 * freeze tests, and a renewal stopped between its read and its write.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lunfs/dev.h"
#include "lunfs/format.h"
#include "lunfs/heartbeat.h"
#include "lunfs/lock.h"
#include "lunfs/lockd.h"
#include "lunfs/paxos_caw.h"
#include "lunfs/volume.h"

#define MiB (1024ull * 1024ull)
#define TP_HOSTS 8u
#define TP_LOG_MAX 200000u

static const uint8_t uuid_vol[16] = { 0x99, 1, 2, 3, 4, 5, 0x46, 7, 0x88, 9, 10, 11, 12, 13, 14, 15 };

/* ---- a passthrough that does not own the shared device ------------------ */

/* It counts the writes it passes down, and may run a hook after each batch
 * has completed on the shared device: "this host stops right after that
 * I/O" (a SIGSTOP or VM pause between a read and the next write), while
 * the hook lets the rest of the world act. */
struct share_dev {
	struct lunfs_dev dev;
	struct lunfs_dev *lower;
	atomic_uint writes;
	void (*after)(void *arg, const struct lunfs_io *ios, unsigned n);
	void *after_arg;
};

static int share_submit(struct lunfs_dev *d, struct lunfs_io *ios, unsigned n)
{
	struct share_dev *s = (struct share_dev *)d;
	int err;

	for (unsigned i = 0; i < n; i++) {
		if (ios[i].op == LUNFS_IO_WRITE) {
			atomic_fetch_add(&s->writes, 1);
		}
	}
	err = dev_submit(s->lower, ios, n);
	if (s->after != NULL) {
		s->after(s->after_arg, ios, n);
	}
	return err;
}

static int share_flush(struct lunfs_dev *d)
{
	return dev_flush(((struct share_dev *)d)->lower);
}

static int share_discard(struct lunfs_dev *d, uint64_t off, uint64_t len)
{
	return dev_discard(((struct share_dev *)d)->lower, off, len);
}

static int share_caw(struct lunfs_dev *d, uint64_t off, const void *e, const void *r, void *c)
{
	return dev_caw(((struct share_dev *)d)->lower, off, e, r, c);
}

static void share_close(struct lunfs_dev *d)
{
	free(d);
}

static const struct lunfs_dev_ops share_ops = {
	.submit = share_submit, .flush = share_flush, .discard = share_discard,
	.caw = share_caw, .close = share_close,
};

static struct share_dev *share_open(struct lunfs_dev *lower)
{
	struct share_dev *s = calloc(1, sizeof(*s));

	ck_assert_ptr_nonnull(s);
	s->dev = *lower;
	s->dev.ops = &share_ops;
	s->lower = lower;
	atomic_init(&s->writes, 0);
	return s;
}

/* ---- the world: one volume, several hosts ------------------------------- */

struct tp_log {
	uint32_t instance;
	uint32_t slot;
	uint64_t gen;
	uint64_t round;
};

struct world {
	struct lunfs_dev *mem;
	struct lunfs_super sb;
	struct lunfs_codec c;
	atomic_bool dead[TP_HOSTS];
	/* Incarnations of slot i up to generation dead_gen[i] are dead (a
	 * freeze test's judgement of one incarnation; a later one lives). */
	_Atomic uint64_t dead_gen[TP_HOSTS];
	atomic_int inside[LUNFS_PAXOS_INSTANCES_MAX];
	atomic_int violations;
	pthread_mutex_t log_mu;
	struct tp_log *log;
	size_t nlog;
};

struct thost {
	struct world *w;
	uint32_t slot;
	uint64_t gen;
	/* Judged dead while stopped (a freeze test): from then on its trace
	 * events still go to the ownership log, but no longer count as being
	 * inside the read-compare-write (the others may enter, by design). */
	atomic_bool out;
	/* Per instance: between OWNED and EXIT. A round is kept after its
	 * CAW, so a host may hold several instances at once, and EXIT may
	 * come from the device's idle thread. */
	atomic_bool in_inst[LUNFS_PAXOS_INSTANCES_MAX];
	pthread_mutex_t tr_mu;    /* in_inst and out, against the idle thread */
	struct lunfs_dev *fdev;   /* fault(share(mem)) */
	struct lunfs_fault *fault;
	struct share_dev *share;  /* under fdev: write count, freeze hook */
	struct lunfs_dev *pdev;
	atomic_int lease_calls;
	int die_at_lease_call;    /* 0 = never; on that call: lose the disk */
	atomic_bool lease_bad;
	/* On lease call number hook_at_lease_call (0 = never), after the
	 * check has passed: run lease_hook (a host stopped right after a good
	 * check while the world acts). */
	int hook_at_lease_call;
	void (*lease_hook)(void *arg);
	void *lease_hook_arg;
	/* worker parameters and results */
	unsigned iters;
	uint64_t *sectors;
	unsigned nsectors;
	atomic_uint *counts;      /* per sector: increments done */
	unsigned burst;           /* 0, or pause up to 4 ms after every burst increments */
	int err;
	atomic_bool done;
};

static void world_init(struct world *w, uint32_t max_hosts, uint32_t instances)
{
	struct lunfs_vol_create_opts o;

	memset(w, 0, sizeof(*w));
	ck_assert_int_eq(dev_mem_open(256 * MiB, 512, &w->mem), 0);
	memset(&o, 0, sizeof(o));
	memcpy(o.uuid, uuid_vol, 16);
	o.layout.max_hosts = max_hosts;
	o.layout.paxos_instances = instances;
	o.layout.file_block_size = 64 * 1024;
	o.layout.journal_size = 1 * MiB;
	o.layout.hb_interval_ms = 100;
	o.layout.io_deadline_ms = 2;
	o.layout.dead_timeout_ms = 1000;
	o.now_ns = 1700000000000000000ull;
	ck_assert_int_eq(vol_create(w->mem, &o, &w->sb, NULL, NULL), 0);
	sb_codec(&w->sb, &w->c);
	pthread_mutex_init(&w->log_mu, NULL);
	w->log = calloc(TP_LOG_MAX, sizeof(*w->log));
	ck_assert_ptr_nonnull(w->log);
}

static void world_fini(struct world *w)
{
	free(w->log);
	pthread_mutex_destroy(&w->log_mu);
	dev_close(w->mem);
}

static int th_lease_ok(void *arg, uint64_t target)
{
	struct thost *h = arg;
	int n = atomic_fetch_add(&h->lease_calls, 1) + 1;

	(void)target;
	if (h->die_at_lease_call != 0 && n == h->die_at_lease_call) {
		/* The host loses its disk right here: nothing more lands. */
		dev_fault_fail_nth(h->fault, LUNFS_FAULT_ALL, 1, EIO, true);
		return 0;
	}
	if (atomic_load(&h->lease_bad)) {
		return -EIO;
	}
	if (h->hook_at_lease_call != 0 && n == h->hook_at_lease_call) {
		h->lease_hook(h->lease_hook_arg);
	}
	return 0;
}

static int th_host_dead(void *arg, uint32_t slot, uint64_t gen)
{
	struct thost *h = arg;

	if (slot >= TP_HOSTS) {
		return 0;
	}
	return atomic_load(&h->w->dead[slot]) || (gen != 0 && gen <= atomic_load(&h->w->dead_gen[slot])) ? 1 : 0;
}

static void th_trace(void *arg, enum paxos_event ev, uint32_t instance, uint64_t round)
{
	struct thost *h = arg;
	struct world *w = h->w;

	pthread_mutex_lock(&h->tr_mu);
	if (ev == PAXOS_EV_OWNED) {
		if (!atomic_load(&h->out) && atomic_fetch_add(&w->inside[instance], 1) != 0) {
			atomic_fetch_add(&w->violations, 1);
		}
		atomic_store(&h->in_inst[instance], true);
		pthread_mutex_lock(&w->log_mu);
		if (w->nlog < TP_LOG_MAX) {
			w->log[w->nlog++] = (struct tp_log){ .instance = instance, .slot = h->slot, .gen = h->gen,
							     .round = round };
		}
		pthread_mutex_unlock(&w->log_mu);
	} else {
		/* Judged dead meanwhile: host_judged_dead took it out. */
		if (atomic_exchange(&h->in_inst[instance], false) && !atomic_load(&h->out)) {
			atomic_fetch_sub(&w->inside[instance], 1);
		}
	}
	pthread_mutex_unlock(&h->tr_mu);
}

/* The others judge h dead (it is stopped): it no longer counts as inside
 * any instance, and only its own incarnation of the slot is dead. */
static void host_judged_dead(struct thost *h)
{
	pthread_mutex_lock(&h->tr_mu);
	if (!atomic_exchange(&h->out, true)) {
		for (uint32_t k = 0; k < LUNFS_PAXOS_INSTANCES_MAX; k++) {
			if (atomic_load(&h->in_inst[k])) {
				atomic_fetch_sub(&h->w->inside[k], 1);
			}
		}
	}
	pthread_mutex_unlock(&h->tr_mu);
	atomic_store(&h->w->dead_gen[h->slot], h->gen);
}

/* Host in `slot` at generation `gen` (two incarnations of one slot are
 * two hosts with the same slot); idle_ns: how long it keeps an unused
 * round (0: the default). */
static void host_open_idle(struct world *w, struct thost *h, uint32_t slot, uint64_t gen, uint64_t wait_ns,
			   uint64_t idle_ns)
{
	struct paxos_host me;

	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->tr_mu, NULL);
	h->w = w;
	h->slot = slot;
	h->gen = gen;
	h->share = share_open(w->mem);
	ck_assert_int_eq(dev_fault_open(&h->share->dev, &h->fdev, &h->fault), 0);
	memset(&me, 0, sizeof(me));
	me.slot = slot;
	me.gen = gen;
	me.lease_ok = th_lease_ok;
	me.host_dead = th_host_dead;
	me.trace = th_trace;
	me.arg = h;
	me.wait_ns = wait_ns;
	me.sticky_idle_ns = idle_ns;
	ck_assert_int_eq(dev_paxos_open(h->fdev, &w->sb, &w->c, &me, &h->pdev), 0);
}

static void host_open_gen(struct world *w, struct thost *h, uint32_t slot, uint64_t gen, uint64_t wait_ns)
{
	host_open_idle(w, h, slot, gen, wait_ns, 0);
}

static void host_open(struct world *w, struct thost *h, uint32_t slot, uint64_t wait_ns)
{
	host_open_gen(w, h, slot, 1, wait_ns);
}

/* A clean close: kept rounds are released first (lockd_leave does the
 * same); a host whose lease is bad writes nothing. */
static void host_close(struct thost *h)
{
	(void)dev_paxos_unstick(h->pdev);
	dev_close(h->pdev);
	dev_close(h->fdev);
	pthread_mutex_destroy(&h->tr_mu);
}

static int tp_cmp_log(const void *a, const void *b)
{
	const struct tp_log *x = a, *y = b;

	if (x->instance != y->instance) {
		return x->instance < y->instance ? -1 : 1;
	}
	if (x->round != y->round) {
		return x->round < y->round ? -1 : 1;
	}
	return 0;
}

/* Every (instance, round) entered by exactly one host. */
static void world_check_log(struct world *w)
{
	qsort(w->log, w->nlog, sizeof(*w->log), tp_cmp_log);
	for (size_t i = 1; i < w->nlog; i++) {
		ck_assert_msg(!(w->log[i].instance == w->log[i - 1].instance &&
				w->log[i].round == w->log[i - 1].round),
			      "instance %u round %llu owned by slot %u gen %llu and slot %u gen %llu",
			      w->log[i].instance, (unsigned long long)w->log[i].round, w->log[i - 1].slot,
			      (unsigned long long)w->log[i - 1].gen, w->log[i].slot,
			      (unsigned long long)w->log[i].gen);
	}
	ck_assert_int_eq(atomic_load(&w->violations), 0);
}

/* A sector of the cluster table region past its records (zero, unused):
 * lock-record-like, free to use. */
static uint64_t tp_sector(struct world *w, unsigned i)
{
	uint64_t a = w->sb.regions[LUNFS_REGION_CLUSTER].offset +
		     (w->sb.cluster_count + i) * (uint64_t)w->sb.sector_size;

	ck_assert_uint_lt(a, w->sb.regions[LUNFS_REGION_CLUSTER].offset + w->sb.regions[LUNFS_REGION_CLUSTER].length);
	return a;
}

/* CAW-increment the counter in the first 8 bytes of sector `off`. */
static int tp_increment(struct thost *h, uint64_t off)
{
	uint8_t *cur = dev_buf_alloc(512), *rep = dev_buf_alloc(512);
	int err;

	if (cur == NULL || rep == NULL) {
		err = -ENOMEM;
		goto out;
	}
	err = dev_read(h->pdev, cur, 512, off);
	while (err == 0) {
		uint64_t v;

		memcpy(rep, cur, 512);
		memcpy(&v, rep, 8);
		v++;
		memcpy(rep, &v, 8);
		err = dev_caw(h->pdev, off, cur, rep, cur);
		if (err == -ECANCELED) {
			err = 0;
			continue;
		}
		break;
	}
out:
	dev_buf_free(rep);
	dev_buf_free(cur);
	return err;
}

static void *tp_worker(void *arg)
{
	struct thost *h = arg;
	uint64_t seed = 0x9E3779B97F4A7C15ull * (h->slot + 1);

	for (unsigned i = 0; i < h->iters && h->err == 0; i++) {
		unsigned s;

		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		s = (unsigned)(seed % h->nsectors);
		h->err = tp_increment(h, h->sectors[s]);
		if (h->err == 0) {
			atomic_fetch_add(&h->counts[s], 1);
		}
		if (h->burst != 0 && i % h->burst == h->burst - 1) {
			/* Idle now and then: kept rounds are released, or not
			 * quite yet, while the others wait. */
			usleep((useconds_t)(seed % 4000));
		}
	}
	atomic_store(&h->done, true);
	return NULL;
}

static uint64_t tp_read_counter(struct world *w, uint64_t off)
{
	uint8_t *b = dev_buf_alloc(512);
	uint64_t v;

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(dev_read(w->mem, b, 512, off), 0);
	memcpy(&v, b, 8);
	dev_buf_free(b);
	return v;
}

/* Run `nhosts` incrementing workers over `nsectors` sectors (bursts: see
 * thost.burst); *sum, if not NULL, gets the sum of their Paxos counters. */
static void tp_run_counters_burst(struct world *w, unsigned nhosts, unsigned iters, unsigned nsectors,
				  uint32_t slow_us, void *(*extra)(void *), void *extra_arg, unsigned burst,
				  struct paxos_stats *sum)
{
	struct thost *hs = calloc(nhosts, sizeof(*hs));
	pthread_t *t = calloc(nhosts, sizeof(*t));
	uint64_t *sectors = calloc(nsectors, sizeof(*sectors));
	atomic_uint *counts = calloc(nsectors, sizeof(*counts));
	pthread_t xt;
	uint64_t total = 0;

	ck_assert(hs != NULL && t != NULL && sectors != NULL && counts != NULL);
	for (unsigned i = 0; i < nsectors; i++) {
		uint8_t *z = dev_buf_alloc(512);

		ck_assert_ptr_nonnull(z);
		sectors[i] = tp_sector(w, i);
		ck_assert_int_eq(dev_write(w->mem, z, 512, sectors[i]), 0);
		dev_buf_free(z);
	}
	for (unsigned i = 0; i < nhosts; i++) {
		host_open(w, &hs[i], i, 30ull * 1000000000ull);
		hs[i].iters = iters;
		hs[i].sectors = sectors;
		hs[i].nsectors = nsectors;
		hs[i].counts = counts;
		hs[i].burst = burst;
		if (slow_us != 0 && i % 2 == 1) {
			dev_fault_latency(hs[i].fault, slow_us);
		}
	}
	for (unsigned i = 0; i < nhosts; i++) {
		ck_assert_int_eq(pthread_create(&t[i], NULL, tp_worker, &hs[i]), 0);
	}
	if (extra != NULL) {
		ck_assert_int_eq(pthread_create(&xt, NULL, extra, extra_arg), 0);
	}
	for (unsigned i = 0; i < nhosts; i++) {
		pthread_join(t[i], NULL);
	}
	if (extra != NULL) {
		pthread_join(xt, NULL);
	}
	if (sum != NULL) {
		memset(sum, 0, sizeof(*sum));
	}
	for (unsigned i = 0; i < nhosts; i++) {
		ck_assert_int_eq(hs[i].err, 0);
		if (sum != NULL) {
			struct paxos_stats st;

			dev_paxos_stats(hs[i].pdev, &st);
			sum->caws += st.caws;
			sum->ballots += st.ballots;
			sum->fast += st.fast;
			sum->waits += st.waits;
			sum->idle_releases += st.idle_releases;
		}
		host_close(&hs[i]);
	}
	for (unsigned i = 0; i < nsectors; i++) {
		ck_assert_uint_eq(tp_read_counter(w, sectors[i]), atomic_load(&counts[i]));
		total += atomic_load(&counts[i]);
	}
	ck_assert_uint_eq(total, (uint64_t)nhosts * iters);
	world_check_log(w);
	free(counts);
	free(sectors);
	free(t);
	free(hs);
}

static void tp_run_counters(struct world *w, unsigned nhosts, unsigned iters, unsigned nsectors,
			    uint32_t slow_us, void *(*extra)(void *), void *extra_arg)
{
	tp_run_counters_burst(w, nhosts, iters, nsectors, slow_us, extra, extra_arg, 0, NULL);
}

/* ---- tests ---------------------------------------------------------------- */

START_TEST(test_single_host)
{
	struct world w;
	struct thost h;
	struct paxos_stats st;
	uint8_t *a = dev_buf_alloc(512), *b = dev_buf_alloc(512), *cur = dev_buf_alloc(512);
	uint64_t off;

	world_init(&w, 8, 4);
	host_open_idle(&w, &h, 3, 1, 0, UINT64_MAX);
	off = tp_sector(&w, 5);
	memset(a, 0, 512);
	memset(b, 0xb5, 512);
	/* Zeros on disk: expect zeros, write b. */
	ck_assert_int_eq(dev_caw(h.pdev, off, a, b, cur), 0);
	ck_assert_int_eq(dev_read(w.mem, cur, 512, off), 0);
	ck_assert_int_eq(memcmp(cur, b, 512), 0);
	/* Miscompare: current is returned, nothing written. */
	memset(cur, 0, 512);
	ck_assert_int_eq(dev_caw(h.pdev, off, a, a, cur), -ECANCELED);
	ck_assert_int_eq(memcmp(cur, b, 512), 0);
	ck_assert_int_eq(dev_read(w.mem, cur, 512, off), 0);
	ck_assert_int_eq(memcmp(cur, b, 512), 0);
	/* A fenced host does nothing. */
	atomic_store(&h.lease_bad, true);
	ck_assert_int_eq(dev_caw(h.pdev, off, b, a, NULL), -EIO);
	atomic_store(&h.lease_bad, false);
	ck_assert_int_eq(dev_caw(h.pdev, off, b, a, NULL), 0);
	dev_paxos_stats(h.pdev, &st);
	ck_assert_uint_eq(st.caws, 4);
	/* One ballot, then the round is kept (the idle release is off):
	 * the miscompare and the last CAW take the fast path; the fenced
	 * one wrote nothing and left the round as it was. (Before kept
	 * rounds: 3 ballots, 3 rounds.) */
	ck_assert_uint_eq(st.ballots, 1);
	ck_assert_uint_eq(st.fast, 2);
	ck_assert_uint_eq(st.held, 1);
	ck_assert_uint_eq(st.aborts, 0);
	ck_assert_uint_eq(st.waits, 0);
	host_close(&h);
	world_check_log(&w);
	ck_assert_uint_eq(w.nlog, 1);
	dev_buf_free(cur);
	dev_buf_free(b);
	dev_buf_free(a);
	world_fini(&w);
}
END_TEST

START_TEST(test_counter_one_sector)
{
	struct world w;

	world_init(&w, 8, 4);
	tp_run_counters(&w, 6, 150, 1, 0, NULL, NULL);
	world_fini(&w);
}
END_TEST

START_TEST(test_counter_many_sectors_few_instances)
{
	struct world w;

	/* 24 sectors on 2 instances, half the hosts slower. */
	world_init(&w, 8, 2);
	tp_run_counters(&w, 8, 120, 24, 20, NULL, NULL);
	world_fini(&w);
}
END_TEST

/* A saboteur: keeps writing an old leader image back over the current one
 * (a frozen former owner's late write), for every instance. */
struct stale_arg {
	struct world *w;
	uint8_t *old;             /* instances * 512: old leader images */
	atomic_bool *stop;
};

static void *tp_stale_writer(void *arg)
{
	struct stale_arg *s = arg;
	struct world *w = s->w;

	for (unsigned n = 0; n < 400 && !atomic_load(s->stop); n++) {
		for (uint32_t k = 0; k < w->sb.paxos_instances; k++) {
			(void)dev_write(w->mem, s->old + (uint64_t)k * 512, 512, layout_paxos_leader_addr(&w->sb, k));
		}
		usleep(200);
	}
	return NULL;
}

START_TEST(test_stale_leader)
{
	struct world w;
	struct stale_arg sa;
	atomic_bool stop = false;
	struct thost h;

	world_init(&w, 8, 2);
	/* Make every instance reach a round, and keep those leaders. */
	host_open(&w, &h, 7, 0);
	for (unsigned i = 0; i < 16; i++) {
		ck_assert_int_eq(tp_increment(&h, tp_sector(&w, i)), 0);
	}
	host_close(&h);
	sa.w = &w;
	sa.stop = &stop;
	sa.old = dev_buf_alloc((size_t)w.sb.paxos_instances * 512);
	ck_assert_ptr_nonnull(sa.old);
	for (uint32_t k = 0; k < w.sb.paxos_instances; k++) {
		ck_assert_int_eq(dev_read(w.mem, sa.old + (uint64_t)k * 512, 512,
					  layout_paxos_leader_addr(&w.sb, k)), 0);
	}
	tp_run_counters(&w, 4, 150, 16, 0, tp_stale_writer, &sa);
	dev_buf_free(sa.old);
	world_fini(&w);
}
END_TEST

struct caw_arg {
	struct thost *h;
	uint64_t off;
	int err;
	atomic_bool done;
};

static void *tp_one_increment(void *arg)
{
	struct caw_arg *a = arg;

	a->err = tp_increment(a->h, a->off);
	atomic_store(&a->done, true);
	return NULL;
}

START_TEST(test_owner_dies)
{
	struct world w;
	struct thost a, b;
	struct caw_arg ca;
	struct paxos_stats st;
	pthread_t t;
	uint64_t off;

	world_init(&w, 8, 4);
	host_open(&w, &a, 1, 0);
	host_open(&w, &b, 2, 30ull * 1000000000ull);
	off = tp_sector(&w, 3);
	/* A: lease check at entry (1), before each ballot write (2, 3), before
	 * the leader write (4), before the replace write (5): dies there, the
	 * leader names it, unreleased. */
	a.die_at_lease_call = 5;
	ck_assert_int_eq(tp_increment(&a, off), -EIO);
	ck_assert_uint_eq(tp_read_counter(&w, off), 0);
	/* B must wait for A while A is not dead. */
	memset(&ca, 0, sizeof(ca));
	ca.h = &b;
	ca.off = off;
	ck_assert_int_eq(pthread_create(&t, NULL, tp_one_increment, &ca), 0);
	usleep(50000);
	ck_assert(!atomic_load(&ca.done));
	dev_paxos_stats(b.pdev, &st);
	ck_assert_uint_gt(st.waits, 0);
	ck_assert_uint_eq(st.ballots, 0);
	atomic_store(&w.dead[1], true);
	pthread_join(t, NULL);
	ck_assert_int_eq(ca.err, 0);
	ck_assert_uint_eq(tp_read_counter(&w, off), 1);
	host_close(&b);
	host_close(&a);
	world_check_log(&w);
	world_fini(&w);
}
END_TEST

START_TEST(test_corrupt_records)
{
	struct world w;
	struct thost h;
	uint8_t *junk = dev_buf_alloc(512);
	uint64_t off;
	uint32_t k;

	world_init(&w, 8, 4);
	host_open(&w, &h, 0, 100ull * 1000000ull);
	off = tp_sector(&w, 9);
	k = layout_paxos_instance(&w.sb, off);
	ck_assert_int_eq(tp_increment(&h, off), 0);
	for (unsigned i = 0; i < 512; i++) {
		junk[i] = (uint8_t)(i * 37 + 11);
	}
	/* A corrupt leader is unknown: run a ballot. */
	ck_assert_int_eq(dev_write(w.mem, junk, 512, layout_paxos_leader_addr(&w.sb, k)), 0);
	ck_assert_int_eq(tp_increment(&h, off), 0);
	/* Our own corrupt block: rewritten. */
	ck_assert_int_eq(dev_write(w.mem, junk, 512, layout_paxos_addr(&w.sb, k, 0)), 0);
	ck_assert_int_eq(tp_increment(&h, off), 0);
	/* A live host's corrupt block cannot be judged: no progress... */
	ck_assert_int_eq(dev_write(w.mem, junk, 512, layout_paxos_addr(&w.sb, k, 5)), 0);
	ck_assert_int_eq(dev_write(w.mem, junk, 512, layout_paxos_leader_addr(&w.sb, k)), 0);
	ck_assert_int_eq(tp_increment(&h, off), -ETIMEDOUT);
	/* ...until that host is known dead. */
	atomic_store(&w.dead[5], true);
	ck_assert_int_eq(tp_increment(&h, off), 0);
	ck_assert_uint_eq(tp_read_counter(&w, off), 4);
	host_close(&h);
	world_check_log(&w);
	dev_buf_free(junk);
	world_fini(&w);
}
END_TEST

/* ---- a host stopped in the middle of a round --------------------------------
 *
 * Host A (slot 1, generation 1) stops right after one of its I/Os. While
 * it is stopped its lease lapses (lease_bad), the others judge it dead, and
 * its slot passes to a new incarnation A2 (slot 1, generation 2, the same
 * host block of every instance), which runs a CAW on the same sector. Then
 * A resumes. It must write nothing more: one stale write of its host block
 * erases what A2 wrote there, and another round gets a second owner. */
enum freeze_at {
	FREEZE_AFTER_INSTANCE_READ = 1, /* px_caw's first read: before the ballot writes */
	FREEZE_AFTER_TARGET_READ = 2,   /* leader write + read of s: before the replace write */
};

struct freeze {
	enum freeze_at at;
	struct world *w;
	struct thost *frozen, *next;
	uint64_t off;                   /* the guarded sector */
	bool fired;
	unsigned writes_then;           /* the frozen host's writes when it stopped */
	int next_err;
};

static void freeze_hook(void *arg, const struct lunfs_io *ios, unsigned n)
{
	struct freeze *f = arg;
	struct world *w = f->w;
	uint32_t k = layout_paxos_instance(&w->sb, f->off);
	bool hit;

	if (f->fired) {
		return;
	}
	if (f->at == FREEZE_AFTER_INSTANCE_READ) {
		hit = n == 1 && ios[0].op == LUNFS_IO_READ && ios[0].off == layout_paxos_addr(&w->sb, k, 0);
	} else {
		hit = n == 2 && ios[0].op == LUNFS_IO_WRITE && ios[1].op == LUNFS_IO_READ && ios[1].off == f->off;
	}
	if (!hit) {
		return;
	}
	f->fired = true;
	f->writes_then = atomic_load(&f->frozen->share->writes);
	atomic_store(&f->frozen->lease_bad, true);  /* its clock counted the stop */
	host_judged_dead(f->frozen);
	f->next_err = tp_increment(f->next, f->off);
}

static void freeze_run(enum freeze_at at)
{
	struct world w;
	struct thost a, a2, c;
	struct freeze f;
	uint64_t off;

	world_init(&w, 8, 4);
	host_open_gen(&w, &a, 1, 1, 100ull * 1000000ull);
	host_open_gen(&w, &a2, 1, 2, 100ull * 1000000ull);
	host_open(&w, &c, 2, 100ull * 1000000ull);
	off = tp_sector(&w, 4);
	memset(&f, 0, sizeof(f));
	f.at = at;
	f.w = &w;
	f.frozen = &a;
	f.next = &a2;
	f.off = off;
	a.share->after = freeze_hook;
	a.share->after_arg = &f;

	ck_assert_int_eq(tp_increment(&a, off), -EIO);
	ck_assert(f.fired);
	ck_assert_int_eq(f.next_err, 0);
	/* Somebody else's CAW on the instance after A came back. */
	ck_assert_int_eq(tp_increment(&c, off), 0);
	/* No round of the instance has two owners... */
	world_check_log(&w);
	/* ...because A wrote nothing once it had resumed. */
	ck_assert_uint_eq(atomic_load(&a.share->writes), f.writes_then);
	ck_assert_uint_eq(tp_read_counter(&w, off), 2);
	host_close(&c);
	host_close(&a2);
	host_close(&a);
	world_fini(&w);
}

/* Stopped between its entry check and its first ballot write: resumed,
 * A's phase-1 write would blank A2's block (accepted value and release)
 * and A would own a round A2 already owned. */
START_TEST(test_freeze_before_ballot)
{
	freeze_run(FREEZE_AFTER_INSTANCE_READ);
}
END_TEST

/* Stopped while owning a round, before its replace write: the replace is
 * refused by the lease, and so must the release be. A's release of its
 * host block would overwrite A2's newer round, and the next ballot would
 * give that round a second owner. */
START_TEST(test_freeze_before_release)
{
	freeze_run(FREEZE_AFTER_TARGET_READ);
}
END_TEST

/* The lease lapses right after A's replace write (a disk stall, say), so
 * its release is refused, but A is not judged dead: its next renewal comes
 * in time. The round stays A's, and B can only wait (and time out). Once
 * A's lease is good again, the owed release is written
 * (dev_paxos_release_owed, which lockd calls after every good renewal),
 * and B goes on without A ever being judged dead. (Before, B waited until
 * A's next CAW of that instance, for ever if none came.) */
struct lapse {
	struct thost *h;
	uint64_t off;
	bool fired;
};

static void lapse_hook(void *arg, const struct lunfs_io *ios, unsigned n)
{
	struct lapse *l = arg;

	if (!l->fired && n == 1 && ios[0].op == LUNFS_IO_WRITE && ios[0].off == l->off) {
		l->fired = true;
		atomic_store(&l->h->lease_bad, true);
	}
}

static void tp_wait_owed(struct thost *h, uint64_t n)
{
	struct paxos_stats st;

	for (unsigned i = 0; i < 2000; i++) {
		dev_paxos_stats(h->pdev, &st);
		if (st.owed == n) {
			return;
		}
		usleep(1000);
	}
	ck_abort_msg("slot %u owes %llu releases, not %llu", h->slot, (unsigned long long)st.owed,
		     (unsigned long long)n);
}

START_TEST(test_owed_release)
{
	struct world w;
	struct thost a, b;
	struct lapse l;
	uint64_t off;

	world_init(&w, 8, 4);
	host_open(&w, &a, 1, 100ull * 1000000ull);
	host_open(&w, &b, 2, 100ull * 1000000ull);
	off = tp_sector(&w, 6);
	l = (struct lapse){ .h = &a, .off = off };
	a.share->after = lapse_hook;
	a.share->after_arg = &l;
	/* The replace landed: the CAW happened, its release did not. */
	ck_assert_int_eq(tp_increment(&a, off), 0);
	ck_assert(l.fired);
	ck_assert_uint_eq(tp_read_counter(&w, off), 1);
	ck_assert_int_eq(tp_increment(&b, off), -ETIMEDOUT);
	/* The round was kept after the CAW; the idle thread's release of it
	 * was refused by the lease, so it is owed (before kept rounds, the
	 * CAW's own release was refused). */
	tp_wait_owed(&a, 1);
	/* Still lapsed: nothing is written. */
	ck_assert_int_eq(dev_paxos_release_owed(a.pdev), -EIO);
	ck_assert_int_eq(tp_increment(&b, off), -ETIMEDOUT);
	/* A renewed: it pays, and B takes the next round. */
	atomic_store(&a.lease_bad, false);
	ck_assert_int_eq(dev_paxos_release_owed(a.pdev), 0);
	ck_assert_int_eq(dev_paxos_release_owed(a.pdev), 0);   /* nothing owed any more */
	ck_assert_int_eq(tp_increment(&b, off), 0);
	ck_assert_int_eq(tp_increment(&a, off), 0);
	ck_assert_uint_eq(tp_read_counter(&w, off), 3);
	host_close(&b);
	host_close(&a);
	world_check_log(&w);
	world_fini(&w);
}
END_TEST

/* ---- join: the delta lease ------------------------------------------------ */

/* An injected clock that is the real one, counting its sleeps. */
struct join_clock {
	atomic_uint sleeps;
};

static uint64_t jc_now(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void jc_sleep(void *arg, uint64_t ns)
{
	struct join_clock *jc = arg;
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };

	atomic_fetch_add(&jc->sleeps, 1);
	nanosleep(&ts, NULL);
}

struct join_arg {
	struct world *w;
	struct lockd_clock *clock;
	unsigned idx;
	pthread_barrier_t *bar;
	struct lunfs_lockd *ld;
	int err;
};

static void *tp_joiner(void *arg)
{
	struct join_arg *j = arg;
	struct lockd_opts o;

	memset(&o, 0, sizeof(o));
	o.host_uuid[0] = (uint8_t)(0x10 + j->idx);
	o.host_uuid[6] = 0x40;
	o.host_name = "joiner";
	o.no_thread = true;
	o.clock = j->clock;
	o.caw = LUNFS_CAW_PAXOS;
	pthread_barrier_wait(j->bar);
	j->err = lockd_join(j->w->mem, &j->w->sb, &j->w->c, &o, &j->ld);
	return NULL;
}

START_TEST(test_join_race)
{
	struct world w;
	struct join_clock jc;
	struct lockd_clock clk = { .now_ns = jc_now, .sleep_ns = jc_sleep, .arg = &jc };
	struct join_arg ja[8];
	pthread_t t[8];
	pthread_barrier_t bar;
	bool used[4] = { false };
	unsigned won = 0;

	world_init(&w, 4, 4);
	atomic_init(&jc.sleeps, 0);
	pthread_barrier_init(&bar, NULL, 8);
	for (unsigned i = 0; i < 8; i++) {
		ja[i] = (struct join_arg){ .w = &w, .clock = &clk, .idx = i, .bar = &bar };
		ck_assert_int_eq(pthread_create(&t[i], NULL, tp_joiner, &ja[i]), 0);
	}
	for (unsigned i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
	}
	pthread_barrier_destroy(&bar);
	for (unsigned i = 0; i < 8; i++) {
		if (ja[i].err == 0) {
			uint32_t s = lockd_slot(ja[i].ld);

			ck_assert_uint_lt(s, 4);
			ck_assert_msg(!used[s], "slot %u won twice", s);
			used[s] = true;
			won++;
		} else {
			ck_assert_int_eq(ja[i].err, -ENOSPC);
		}
	}
	ck_assert_uint_eq(won, 4);
	ck_assert_uint_gt(atomic_load(&jc.sleeps), 0);
	/* The winners hold LIVE slots of distinct generations' claims, and
	 * their CAWs go through Paxos. */
	for (unsigned i = 0; i < 8; i++) {
		if (ja[i].err == 0) {
			ck_assert_ptr_ne(lockd_dev(ja[i].ld), w.mem);
			ck_assert_int_eq(lockd_beat(ja[i].ld), 0);
		}
	}
	for (unsigned i = 0; i < 8; i++) {
		if (ja[i].err == 0) {
			ck_assert_int_eq(lockd_leave(ja[i].ld), 0);
		}
	}
	world_fini(&w);
}
END_TEST

/* Renewal after the lease expired goes through the Paxos CAW, so a
 * recoverer's RECOVERING is never overwritten. */
struct man_clock {
	uint64_t now;
};

static uint64_t mc_now(void *arg)
{
	return ((struct man_clock *)arg)->now;
}

static void mc_sleep(void *arg, uint64_t ns)
{
	((struct man_clock *)arg)->now += ns;
}

START_TEST(test_renew_after_expiry)
{
	struct world w;
	struct man_clock mc = { .now = 1000000000ull };
	struct lockd_clock clk = { .now_ns = mc_now, .sleep_ns = mc_sleep, .arg = &mc };
	struct lockd_opts o;
	struct lunfs_lockd *ld;
	struct lunfs_hb_slot s;
	uint8_t *img = dev_buf_alloc(512), *rec = dev_buf_alloc(512);
	uint64_t addr;

	world_init(&w, 4, 4);
	memset(&o, 0, sizeof(o));
	o.host_uuid[0] = 0x42;
	o.no_thread = true;
	o.clock = &clk;
	o.caw = LUNFS_CAW_PAXOS;
	ck_assert_int_eq(lockd_join(w.mem, &w.sb, &w.c, &o, &ld), 0);
	addr = layout_hb_addr(&w.sb, lockd_slot(ld));
	ck_assert_int_eq(lockd_beat(ld), 0);
	ck_assert_int_eq(lockd_check_lease(ld), 0);
	/* Lease expired (past F, before T - D): renewal by CAW works. */
	mc.now += lockd_timeouts(ld)->fence_ns + 1;
	ck_assert_int_eq(lockd_check_lease(ld), -EIO);
	ck_assert_int_eq(lockd_beat(ld), 0);
	ck_assert_int_eq(lockd_check_lease(ld), 0);
	/* Expired again, and meanwhile a recoverer marked us RECOVERING:
	 * the renewal must not overwrite it. */
	mc.now += lockd_timeouts(ld)->fence_ns + 1;
	ck_assert_int_eq(dev_read(w.mem, img, 512, addr), 0);
	ck_assert_int_eq(hb_decode(&w.c, img, addr, &s), 0);
	s.state = LUNFS_HB_RECOVERING;
	s.recoverer_slot = 4;
	hb_encode(&w.c, &s, addr, rec);
	ck_assert_int_eq(dev_write(w.mem, rec, 512, addr), 0);
	ck_assert_int_eq(lockd_beat(ld), -EIO);
	ck_assert_int_eq(dev_read(w.mem, img, 512, addr), 0);
	ck_assert_int_eq(memcmp(img, rec, 512), 0);
	ck_assert_int_eq(lockd_check_lease(ld), -EIO);
	lockd_abandon(ld);
	dev_buf_free(rec);
	dev_buf_free(img);
	world_fini(&w);
}
END_TEST

/* A PAXOS renewal with a valid lease reads our slot, compares, then writes
 * it plain. Here the host stops right after that read (the hook on its
 * device); while it is stopped its lease lapses and a recoverer marks the
 * slot RECOVERING. Resumed, the renewal must not write over it. Twice: a
 * stop past F only (the renewal falls back to the Paxos CAW, which
 * miscompares), and a stop past T (beyond T - D: fenced with no I/O). */
struct renew_freeze {
	struct man_clock *mc;
	struct world *w;
	uint64_t addr;            /* our slot */
	uint64_t advance_ns;      /* how long we are stopped */
	uint8_t *rec;             /* the recoverer's image of our slot */
	bool armed;
	bool fired;
};

static void renew_freeze_hook(void *arg, const struct lunfs_io *ios, unsigned n)
{
	struct renew_freeze *f = arg;

	if (!f->armed || f->fired || n != 1 || ios[0].op != LUNFS_IO_READ || ios[0].off != f->addr) {
		return;
	}
	f->fired = true;
	f->mc->now += f->advance_ns;
	ck_assert_int_eq(dev_write(f->w->mem, f->rec, 512, f->addr), 0);
}

START_TEST(test_renew_freeze_before_write)
{
	for (unsigned pass = 0; pass < 2; pass++) {
		struct world w;
		struct man_clock mc = { .now = 1000000000ull };
		struct lockd_clock clk = { .now_ns = mc_now, .sleep_ns = mc_sleep, .arg = &mc };
		struct lockd_opts o;
		struct lunfs_lockd *ld;
		struct lunfs_hb_slot s;
		struct share_dev *sd;
		struct renew_freeze f;
		uint8_t *img = dev_buf_alloc(512), *rec = dev_buf_alloc(512);

		world_init(&w, 4, 4);
		sd = share_open(w.mem);
		memset(&o, 0, sizeof(o));
		o.host_uuid[0] = 0x43;
		o.no_thread = true;
		o.clock = &clk;
		o.caw = LUNFS_CAW_PAXOS;
		ck_assert_int_eq(lockd_join(&sd->dev, &w.sb, &w.c, &o, &ld), 0);
		memset(&f, 0, sizeof(f));
		f.mc = &mc;
		f.w = &w;
		f.addr = layout_hb_addr(&w.sb, lockd_slot(ld));
		/* The renewal comes I after the previous one: stopped until just
		 * past F, or for T. */
		f.advance_ns = pass == 0 ? lockd_timeouts(ld)->fence_ns - lockd_timeouts(ld)->interval_ns + 1
					 : lockd_timeouts(ld)->dead_ns;
		f.rec = rec;
		sd->after = renew_freeze_hook;
		sd->after_arg = &f;
		ck_assert_int_eq(lockd_beat(ld), 0);
		/* The recoverer's image: our current one, RECOVERING by slot 2. */
		ck_assert_int_eq(dev_read(w.mem, img, 512, f.addr), 0);
		ck_assert_int_eq(hb_decode(&w.c, img, f.addr, &s), 0);
		s.state = LUNFS_HB_RECOVERING;
		s.recoverer_slot = 2;
		s.recoverer_gen = 1;
		hb_encode(&w.c, &s, f.addr, rec);
		mc.now += lockd_timeouts(ld)->interval_ns;
		ck_assert_int_eq(lockd_check_lease(ld), 0);
		f.armed = true;
		ck_assert_int_eq(lockd_beat(ld), -EIO);
		ck_assert(f.fired);
		ck_assert_int_eq(dev_read(w.mem, img, 512, f.addr), 0);
		ck_assert_msg(memcmp(img, rec, 512) == 0, "pass %u: the recoverer's RECOVERING was overwritten", pass);
		ck_assert(lockd_fenced(ld));
		ck_assert_int_eq(lockd_check_lease(ld), -EIO);
		lockd_abandon(ld);
		dev_close(&sd->dev);
		dev_buf_free(rec);
		dev_buf_free(img);
		world_fini(&w);
	}
}
END_TEST

/* A PAXOS host that could not renew for T - D can never renew again (a
 * renewal landing after T could hide a recoverer's judgement): it must be
 * fenced, so that its mount is abandoned and joins again, instead of
 * answering EIO for ever when nobody recovers it. Failed I/O alone, and a
 * lapsed lease, are no fence. */
START_TEST(test_renew_window_gone_fences)
{
	struct world w;
	struct man_clock mc = { .now = 1000000000ull };
	struct lockd_clock clk = { .now_ns = mc_now, .sleep_ns = mc_sleep, .arg = &mc };
	struct lockd_opts o;
	struct lunfs_lockd *ld;
	const struct lockd_timeouts *to;
	struct share_dev *sd;
	struct lunfs_dev *fdev;
	struct lunfs_fault *fault;
	uint8_t *before = dev_buf_alloc(512), *after = dev_buf_alloc(512);
	uint64_t addr;
	unsigned writes;

	world_init(&w, 4, 4);
	sd = share_open(w.mem);
	ck_assert_int_eq(dev_fault_open(&sd->dev, &fdev, &fault), 0);
	memset(&o, 0, sizeof(o));
	o.host_uuid[0] = 0x44;
	o.no_thread = true;
	o.clock = &clk;
	o.caw = LUNFS_CAW_PAXOS;
	ck_assert_int_eq(lockd_join(fdev, &w.sb, &w.c, &o, &ld), 0);
	to = lockd_timeouts(ld);
	addr = layout_hb_addr(&w.sb, lockd_slot(ld));
	ck_assert_int_eq(lockd_beat(ld), 0);
	ck_assert_int_eq(dev_read(w.mem, before, 512, addr), 0);
	/* The disk path fails: renewals fail, within the lease and past F. */
	dev_fault_fail_nth(fault, LUNFS_FAULT_ALL, 1, EIO, true);
	mc.now += to->interval_ns;
	ck_assert_int_eq(lockd_beat(ld), -EIO);
	ck_assert(!lockd_fenced(ld));
	mc.now += to->fence_ns;
	ck_assert_int_eq(lockd_check_lease(ld), -EIO);
	ck_assert_int_eq(lockd_beat(ld), -EIO);
	ck_assert(!lockd_fenced(ld));
	/* The path comes back just past T - D: the renewal is refused, and
	 * this incarnation is over. */
	dev_fault_fail_nth(fault, LUNFS_FAULT_ALL, 0, 0, false);
	mc.now += to->dead_ns - to->io_deadline_ns - to->fence_ns - to->interval_ns + 1;
	writes = atomic_load(&sd->writes);
	ck_assert_int_eq(lockd_beat(ld), -EIO);
	ck_assert(lockd_fenced(ld));
	ck_assert_uint_eq(atomic_load(&sd->writes), writes);
	ck_assert_int_eq(dev_read(w.mem, after, 512, addr), 0);
	ck_assert_int_eq(memcmp(before, after, 512), 0);
	ck_assert_int_eq(lockd_check_lease(ld), -EIO);
	ck_assert_int_eq(lockd_beat(ld), -EIO);
	lockd_abandon(ld);
	dev_close(fdev);
	dev_buf_free(after);
	dev_buf_free(before);
	world_fini(&w);
}
END_TEST

/* ---- kept ("sticky") rounds --------------------------------------------------
 *
 * After its CAW a round of ours is kept: further CAWs of any sector of the
 * instance take the fast path (read leader + target, write), and the round
 * is released once idle, at its hold limit, or by dev_paxos_unstick. */

static uint64_t tp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sector number j >= from (tp_sector) on the same instance as sector i. */
static unsigned tp_sector_same_instance(struct world *w, unsigned i, unsigned from)
{
	uint32_t k = layout_paxos_instance(&w->sb, tp_sector(w, i));

	for (unsigned j = from;; j++) {
		if (j != i && layout_paxos_instance(&w->sb, tp_sector(w, j)) == k) {
			return j;
		}
	}
}

/* (1) Many CAWs of one instance: one ballot, the rest on the fast path at
 * one read batch and one write each; another host gets the instance once
 * the round has been idle for the idle time, plus its poll, with nobody
 * judged dead. */
START_TEST(test_sticky_fast_path)
{
	struct world w;
	struct thost a, b;
	struct paxos_stats st, sb;
	uint64_t off, off2, t0, el;
	const uint64_t idle = 50ull * 1000000ull;

	world_init(&w, 8, 4);
	host_open_idle(&w, &a, 1, 1, 100ull * 1000000ull, idle);
	host_open(&w, &b, 2, 2000ull * 1000000ull);
	off = tp_sector(&w, 2);
	off2 = tp_sector(&w, tp_sector_same_instance(&w, 2, 3));
	for (unsigned i = 0; i < 100; i++) {
		ck_assert_int_eq(tp_increment(&a, i % 2 == 0 ? off : off2), 0);
	}
	dev_paxos_stats(a.pdev, &st);
	ck_assert_uint_eq(st.caws, 100);
	ck_assert_uint_eq(st.ballots, 1);
	ck_assert_uint_eq(st.fast, 99);
	ck_assert_uint_eq(st.held, 1);
	ck_assert_uint_eq(st.waits, 0);
	/* Ballot (2 writes), leader, replace; then one write per CAW, and no
	 * release yet. Lease checks: 5, then 2 per CAW. */
	ck_assert_uint_eq(atomic_load(&a.share->writes), 4 + 99);
	ck_assert_int_eq(atomic_load(&a.lease_calls), 5 + 2 * 99);
	ck_assert_uint_eq(tp_read_counter(&w, off), 50);
	ck_assert_uint_eq(tp_read_counter(&w, off2), 50);

	/* B wants the instance while A keeps it, alive. */
	t0 = tp_now_ns();
	ck_assert_int_eq(tp_increment(&b, off), 0);
	el = tp_now_ns() - t0;
	printf("kept round: another host got the instance after %.1f ms (idle time %.0f ms)\n",
	       (double)el / 1e6, (double)idle / 1e6);
	dev_paxos_stats(b.pdev, &sb);
	ck_assert_uint_gt(sb.waits, 0);
	ck_assert_uint_eq(sb.timeouts, 0);
	/* idle + B's longest poll (5 ms) + a loaded machine's slack */
	ck_assert_uint_lt(el, idle + 500ull * 1000000ull);
	dev_paxos_stats(a.pdev, &st);
	ck_assert_uint_eq(st.held, 0);
	ck_assert_uint_eq(st.idle_releases, 1);
	ck_assert_uint_eq(atomic_load(&a.share->writes), 4 + 99 + 2);
	ck_assert_uint_eq(tp_read_counter(&w, off), 51);
	ck_assert(!atomic_load(&w.dead[1]));
	host_close(&b);
	host_close(&a);
	world_check_log(&w);
	ck_assert_uint_eq(w.nlog, 2);
	world_fini(&w);
}
END_TEST

/* (2) Several hosts over one instance, in bursts with pauses around the
 * idle time: rounds are kept, used on the fast path, released when idle,
 * and still every round has one owner, no two hosts are ever inside the
 * instance at once, and every increment counts. */
START_TEST(test_sticky_contention)
{
	struct world w;
	struct paxos_stats sum;

	world_init(&w, 8, 1);
	tp_run_counters_burst(&w, 5, 80, 3, 0, NULL, NULL, 4, &sum);
	printf("kept rounds, 5 hosts on one instance: %llu CAWs, %llu ballots, %llu fast, %llu idle releases, "
	       "%llu polls\n", (unsigned long long)sum.caws, (unsigned long long)sum.ballots,
	       (unsigned long long)sum.fast, (unsigned long long)sum.idle_releases, (unsigned long long)sum.waits);
	ck_assert_uint_gt(sum.fast, 0);
	ck_assert_uint_gt(sum.idle_releases, 0);
	ck_assert_uint_lt(sum.ballots, sum.caws);
	world_fini(&w);
}
END_TEST

/* (3) A host keeping a round is stopped, and judged dead while stopped: C
 * takes the next round, and A2 (the next incarnation of A's slot) the one
 * after. A, resumed, must write nothing. Three places to stop:
 *   pass 0: between CAWs (the round idle; its release is then refused);
 *   pass 1: in a fast-path CAW, after its read of leader and target: the
 *           lease check before the replace write refuses it;
 *   pass 2: right after a fast-path CAW's entry check, with a lease that
 *           (wrongly) stays good: the leader read is the second line, it
 *           names C's round, and A drops its round writing nothing. */
struct sticky_freeze {
	struct world *w;
	struct thost *a, *c;
	uint64_t off;
	bool lease_lapses;
	bool fired;
	unsigned writes_then;
	int c_err;
};

static void sticky_freeze_now(struct sticky_freeze *f)
{
	f->fired = true;
	f->writes_then = atomic_load(&f->a->share->writes);
	if (f->lease_lapses) {
		atomic_store(&f->a->lease_bad, true);
	}
	host_judged_dead(f->a);
	f->c_err = tp_increment(f->c, f->off);
}

static void sticky_freeze_io_hook(void *arg, const struct lunfs_io *ios, unsigned n)
{
	struct sticky_freeze *f = arg;

	if (!f->fired && n == 2 && ios[0].op == LUNFS_IO_READ && ios[1].op == LUNFS_IO_READ &&
	    ios[1].off == f->off) {
		sticky_freeze_now(f);
	}
}

static void sticky_freeze_lease_hook(void *arg)
{
	sticky_freeze_now(arg);
}

START_TEST(test_sticky_frozen_holder)
{
	for (unsigned pass = 0; pass < 3; pass++) {
		struct world w;
		struct thost a, a2, c;
		struct sticky_freeze f;
		struct paxos_stats st;
		uint64_t off;

		world_init(&w, 8, 4);
		host_open_idle(&w, &a, 1, 1, 100ull * 1000000ull, UINT64_MAX);
		host_open_gen(&w, &a2, 1, 2, 2000ull * 1000000ull);
		host_open(&w, &c, 2, 2000ull * 1000000ull);
		off = tp_sector(&w, 7);
		memset(&f, 0, sizeof(f));
		f = (struct sticky_freeze){ .w = &w, .a = &a, .c = &c, .off = off, .lease_lapses = pass != 2 };
		ck_assert_int_eq(tp_increment(&a, off), 0);
		ck_assert_int_eq(tp_increment(&a, off), 0);
		dev_paxos_stats(a.pdev, &st);
		ck_assert_uint_eq(st.held, 1);
		ck_assert_uint_eq(st.fast, 1);
		if (pass == 0) {
			sticky_freeze_now(&f);
		} else if (pass == 1) {
			a.share->after = sticky_freeze_io_hook;
			a.share->after_arg = &f;
		} else {
			a.lease_hook = sticky_freeze_lease_hook;
			a.lease_hook_arg = &f;
			a.hook_at_lease_call = atomic_load(&a.lease_calls) + 1;
		}
		/* Resumed (or running on, in passes 1 and 2). */
		ck_assert_int_eq(tp_increment(&a, off), -EIO);
		ck_assert(f.fired);
		ck_assert_int_eq(f.c_err, 0);
		ck_assert_uint_eq(atomic_load(&a.share->writes), f.writes_then);
		/* The next incarnation of A's slot takes the instance after C. */
		ck_assert_int_eq(tp_increment(&a2, off), 0);
		/* A's leave: it holds nothing it may release. */
		(void)dev_paxos_unstick(a.pdev);
		ck_assert_uint_eq(atomic_load(&a.share->writes), f.writes_then);
		dev_paxos_stats(a.pdev, &st);
		ck_assert_uint_eq(st.held, 0);
		ck_assert_uint_eq(tp_read_counter(&w, off), 4);
		ck_assert_msg(atomic_load(&w.violations) == 0, "pass %u: two hosts inside one instance", pass);
		host_close(&c);
		host_close(&a2);
		/* host_close(&a), checking that closing writes nothing either. */
		(void)dev_paxos_unstick(a.pdev);
		dev_close(a.pdev);
		ck_assert_uint_eq(atomic_load(&a.share->writes), f.writes_then);
		dev_close(a.fdev);
		pthread_mutex_destroy(&a.tr_mu);
		world_check_log(&w);
		world_fini(&w);
	}
}
END_TEST

/* (4) lockd_leave releases the rounds lockd keeps: another host gets the
 * instance at once, without a judgement of the leaver. lockd_abandon writes
 * nothing: the other host waits until the abandoned incarnation is dead. */
START_TEST(test_sticky_leave)
{
	for (unsigned pass = 0; pass < 2; pass++) {
		struct world w;
		struct thost b;
		struct share_dev *sd;
		struct lockd_opts o;
		struct lunfs_lockd *ld;
		struct paxos_stats st, s0, s1;
		uint64_t rec, off;
		unsigned writes;

		world_init(&w, 8, 4);
		sd = share_open(w.mem);
		memset(&o, 0, sizeof(o));
		o.host_uuid[0] = 0x45;
		o.no_thread = true;
		o.caw = LUNFS_CAW_PAXOS;
		o.paxos_sticky_idle_ns = UINT64_MAX;
		ck_assert_int_eq(lockd_join(&sd->dev, &w.sb, &w.c, &o, &ld), 0);
		ck_assert_uint_ne(lockd_slot(ld), 5);
		rec = tp_sector(&w, 11);
		off = tp_sector(&w, tp_sector_same_instance(&w, 11, 12));
		ck_assert_int_eq(lockd_lock(ld, rec, LUNFS_LOCK_KIND_INODE, 77, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
		ck_assert_int_eq(lockd_unlock(ld, rec), 0);
		dev_paxos_stats(lockd_dev(ld), &st);
		ck_assert_uint_eq(st.caws, 2);
		ck_assert_uint_eq(st.ballots, 1);
		ck_assert_uint_eq(st.fast, 1);
		ck_assert_uint_ge(st.held, 1);
		host_open(&w, &b, 5, 100ull * 1000000ull);
		/* Kept by a live host: B waits, and gives up. */
		ck_assert_int_eq(tp_increment(&b, off), -ETIMEDOUT);
		if (pass == 0) {
			ck_assert_int_eq(lockd_leave(ld), 0);
			dev_paxos_stats(b.pdev, &s0);
			ck_assert_int_eq(tp_increment(&b, off), 0);
			dev_paxos_stats(b.pdev, &s1);
			ck_assert_uint_eq(s1.waits, s0.waits);     /* at once */
		} else {
			writes = atomic_load(&sd->writes);
			lockd_abandon(ld);
			ck_assert_uint_eq(atomic_load(&sd->writes), writes);
			ck_assert_int_eq(tp_increment(&b, off), -ETIMEDOUT);
			atomic_store(&w.dead_gen[0], 1);
			ck_assert_int_eq(tp_increment(&b, off), 0);
		}
		ck_assert_uint_eq(tp_read_counter(&w, off), 1);
		host_close(&b);
		dev_close(&sd->dev);
		world_check_log(&w);
		world_fini(&w);
	}
}
END_TEST

/* (5) A host that CAWs an instance without pause gives it up at the hold
 * limit: another host's CAW of the instance gets through while it goes
 * on, well within that host's wait (without the limit it timed out). */
struct hammer {
	struct thost *h;
	uint64_t off;
	atomic_bool stop;
	unsigned n;
	int err;
};

static void *tp_hammer(void *arg)
{
	struct hammer *hm = arg;
	uint64_t end = tp_now_ns() + 8ull * 1000000000ull;

	while (!atomic_load(&hm->stop) && tp_now_ns() < end && hm->err == 0) {
		hm->err = tp_increment(hm->h, hm->off);
		hm->n += hm->err == 0;
	}
	return NULL;
}

START_TEST(test_sticky_hold_limit)
{
	struct world w;
	struct thost a, b;
	struct hammer hm;
	pthread_t t;
	uint64_t off, off2, t0, el;

	world_init(&w, 8, 4);
	host_open(&w, &a, 1, 5000ull * 1000000ull);
	host_open(&w, &b, 2, 4000ull * 1000000ull);
	off = tp_sector(&w, 1);
	off2 = tp_sector(&w, tp_sector_same_instance(&w, 1, 2));
	memset(&hm, 0, sizeof(hm));
	hm.h = &a;
	hm.off = off;
	ck_assert_int_eq(pthread_create(&t, NULL, tp_hammer, &hm), 0);
	usleep(20000);
	t0 = tp_now_ns();
	ck_assert_int_eq(tp_increment(&b, off2), 0);
	el = tp_now_ns() - t0;
	ck_assert(!atomic_load(&hm.stop));
	atomic_store(&hm.stop, true);
	pthread_join(t, NULL);
	ck_assert_int_eq(hm.err, 0);
	printf("kept round: a host CAWing without pause let another in after %.1f ms\n", (double)el / 1e6);
	ck_assert_uint_lt(el, 3000ull * 1000000ull);
	ck_assert_uint_eq(tp_read_counter(&w, off), hm.n);
	ck_assert_uint_eq(tp_read_counter(&w, off2), 1);
	host_close(&b);
	host_close(&a);
	world_check_log(&w);
	world_fini(&w);
}
END_TEST

/* ---- latency (printed, not asserted) -------------------------------------- */

static int tp_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* kept: the round is kept between CAWs (one ballot, then the fast path);
 * otherwise unstuck, so every CAW ballots and releases (before kept rounds,
 * every CAW). */
static void tp_latency(const char *what, struct lunfs_dev *dev, const struct lunfs_super *sb,
		       const struct lunfs_codec *c, bool kept)
{
	struct paxos_host me = { .slot = 0, .gen = 1 };
	struct lunfs_dev *pdev;
	uint8_t *a = dev_buf_alloc(sb->sector_size), *b = dev_buf_alloc(sb->sector_size);
	uint64_t *ns = calloc(1000, sizeof(*ns));
	uint64_t off = sb->regions[LUNFS_REGION_CLUSTER].offset;

	ck_assert(a != NULL && b != NULL && ns != NULL);
	ck_assert_int_eq(dev_paxos_open(dev, sb, c, &me, &pdev), 0);
	if (!kept) {
		ck_assert_int_eq(dev_paxos_unstick(pdev), 0);
	}
	ck_assert_int_eq(dev_read(dev, a, sb->sector_size, off), 0);
	for (unsigned i = 0; i < 1000; i++) {
		uint64_t t0 = jc_now(NULL);

		memcpy(b, a, sb->sector_size);
		b[0]++;
		ck_assert_int_eq(dev_caw(pdev, off, a, b, NULL), 0);
		ns[i] = jc_now(NULL) - t0;
		memcpy(a, b, sb->sector_size);
	}
	qsort(ns, 1000, sizeof(*ns), tp_u64_cmp);
	printf("paxos CAW uncontended on %s, %s: median %.1f us (p90 %.1f us, 1000 CAWs)\n", what,
	       kept ? "round kept (fast path)" : "a ballot each", (double)ns[500] / 1000.0, (double)ns[900] / 1000.0);
	dev_close(pdev);
	free(ns);
	dev_buf_free(b);
	dev_buf_free(a);
}

START_TEST(test_latency_print)
{
	struct world w;
	char path[] = "/dev/shm/lunfs_test_paxos_XXXXXX";
	struct lunfs_dev_file_opts fo;
	struct lunfs_vol_create_opts o;
	struct lunfs_super sb;
	struct lunfs_codec c;
	struct lunfs_dev *fdev = NULL;
	int fd;

	world_init(&w, 64, 64);
	tp_latency("dev_mem, 64 hosts", w.mem, &w.sb, &w.c, false);
	tp_latency("dev_mem, 64 hosts", w.mem, &w.sb, &w.c, true);
	world_fini(&w);

	fd = mkstemp(path);
	if (fd < 0) {
		printf("paxos CAW latency on a /dev/shm file: skipped (mkstemp: %s)\n", strerror(errno));
		return;
	}
	ck_assert_int_eq(ftruncate(fd, (off_t)(256 * MiB)), 0);
	close(fd);
	memset(&fo, 0, sizeof(fo));
	if (dev_file_open(path, &fo, &fdev) != 0) {
		printf("paxos CAW latency on a /dev/shm file: skipped (no O_DIRECT there)\n");
		unlink(path);
		return;
	}
	memset(&o, 0, sizeof(o));
	memcpy(o.uuid, uuid_vol, 16);
	o.now_ns = 1700000000000000000ull;
	if (vol_create(fdev, &o, &sb, NULL, NULL) == 0) {
		sb_codec(&sb, &c);
		tp_latency("a dev_file image in /dev/shm, 64 hosts", fdev, &sb, &c, false);
		tp_latency("a dev_file image in /dev/shm, 64 hosts", fdev, &sb, &c, true);
	}
	dev_close(fdev);
	unlink(path);
}
END_TEST

static Suite *paxos_suite(void)
{
	Suite *s = suite_create("paxos");
	TCase *tc = tcase_create("caw");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_single_host);
	tcase_add_test(tc, test_counter_one_sector);
	tcase_add_test(tc, test_counter_many_sectors_few_instances);
	tcase_add_test(tc, test_stale_leader);
	tcase_add_test(tc, test_owner_dies);
	tcase_add_test(tc, test_corrupt_records);
	tcase_add_test(tc, test_freeze_before_ballot);
	tcase_add_test(tc, test_freeze_before_release);
	tcase_add_test(tc, test_owed_release);
	tcase_add_test(tc, test_join_race);
	tcase_add_test(tc, test_renew_after_expiry);
	tcase_add_test(tc, test_renew_freeze_before_write);
	tcase_add_test(tc, test_renew_window_gone_fences);
	tcase_add_test(tc, test_sticky_fast_path);
	tcase_add_test(tc, test_sticky_contention);
	tcase_add_test(tc, test_sticky_frozen_holder);
	tcase_add_test(tc, test_sticky_leave);
	tcase_add_test(tc, test_sticky_hold_limit);
	tcase_add_test(tc, test_latency_print);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(paxos_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
