/*
 * Unit tests of lockd (lockd/hb.c, lockd/lockd.c, lockd/timeouts.c) on a
 * memory device formatted with vol_create. Two lockd instances on the same
 * device are two hosts (the LOCAL compare-and-write backend is what the
 * memory device provides). Lease expiry runs on an injected clock, and the
 * "is that slot still renewed" watch of a join is driven through the
 * injected sleep, so no test depends on timing.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lockd/lockd_int.h" /* LOCKD_LEAVE_RELEASE_MAX */
#include "lunfs/cluster.h"
#include "lunfs/dev.h"
#include "lunfs/format.h"
#include "lunfs/heartbeat.h"
#include "lunfs/lock.h"
#include "lunfs/lockd.h"
#include "lunfs/volume.h"

#define MiB (1024ull * 1024ull)

static const uint8_t uuid_a[16] = { 0xa1, 1, 2, 3, 4, 5, 0x46, 7, 0x88, 9, 10, 11, 12, 13, 14, 15 };
static const uint8_t uuid_b[16] = { 0xb2, 1, 2, 3, 4, 5, 0x46, 7, 0x88, 9, 10, 11, 12, 13, 14, 15 };
static const uint8_t uuid_vol[16] = { 0x77, 1, 2, 3, 4, 5, 0x46, 7, 0x88, 9, 10, 11, 12, 13, 14, 15 };

struct fixture {
	struct lunfs_dev *dev;
	struct lunfs_super sb;
	struct lunfs_codec c;
};

static void fx_init(struct fixture *fx)
{
	struct lunfs_vol_create_opts o;

	memset(fx, 0, sizeof(*fx));
	ck_assert_int_eq(dev_mem_open(64 * MiB, 512, &fx->dev), 0);
	memset(&o, 0, sizeof(o));
	memcpy(o.uuid, uuid_vol, 16);
	o.layout.max_hosts = 8;
	o.layout.file_block_size = 64 * 1024;
	o.layout.journal_size = 1 * MiB;
	o.layout.hb_interval_ms = 100;
	o.layout.io_deadline_ms = 100;
	o.layout.dead_timeout_ms = 1000;
	o.now_ns = 1700000000000000000ull;
	ck_assert_int_eq(vol_create(fx->dev, &o, &fx->sb, NULL, NULL), 0);
	sb_codec(&fx->sb, &fx->c);
}

static void fx_fini(struct fixture *fx)
{
	dev_close(fx->dev);
}

/* A manual clock: now_ns is a variable; sleep advances it and runs an
 * optional hook (used to make another "host" beat while we watch). */
struct test_clock {
	uint64_t now;
	struct lunfs_lockd *beat_while_sleeping;
	unsigned sleeps;
};

static uint64_t tc_now(void *arg)
{
	return ((struct test_clock *)arg)->now;
}

static void tc_sleep(void *arg, uint64_t ns)
{
	struct test_clock *tc = arg;

	tc->now += ns;
	tc->sleeps++;
	if (tc->beat_while_sleeping != NULL) {
		ck_assert_int_eq(lockd_beat(tc->beat_while_sleeping), 0);
	}
}

static void tc_attach(struct test_clock *tc, struct lockd_clock *clk)
{
	memset(tc, 0, sizeof(*tc));
	tc->now = 1000000000ull;
	clk->now_ns = tc_now;
	clk->sleep_ns = tc_sleep;
	clk->arg = tc;
}

static void opts_init(struct lockd_opts *o, const char *name, const uint8_t *uuid,
		      const struct lockd_clock *clk)
{
	memset(o, 0, sizeof(*o));
	o->host_name = name;
	memcpy(o->host_uuid, uuid, 16);
	o->no_thread = true;
	o->clock = clk;
}

/* The lock tests run once per compare-and-write backend (a loop test):
 * _i = 0 LOCAL (the memory device's own CAW), _i = 1 PAXOS (the slot is
 * claimed with a delta lease and every CAW goes through lockd/paxos.c). */
#define LOCK_TEST_BACKEND (_i == 1 ? LUNFS_CAW_PAXOS : LUNFS_CAW_LOCAL)

static int read_slot(struct fixture *fx, uint32_t i, struct lunfs_hb_slot *s)
{
	uint8_t *buf = dev_buf_alloc(fx->sb.sector_size);
	int err;

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(dev_read(fx->dev, buf, fx->sb.sector_size, layout_hb_addr(&fx->sb, i)), 0);
	err = hb_decode(&fx->c, buf, layout_hb_addr(&fx->sb, i), s);
	dev_buf_free(buf);
	return err;
}

static void read_lock(struct fixture *fx, uint64_t addr, struct lunfs_lock *l)
{
	uint8_t *buf = dev_buf_alloc(fx->sb.sector_size);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(dev_read(fx->dev, buf, fx->sb.sector_size, addr), 0);
	ck_assert_int_eq(lock_decode(&fx->c, buf, addr, l), 0);
	dev_buf_free(buf);
}

START_TEST(test_timeouts)
{
	struct lockd_timeouts to;

	ck_assert_int_eq(lockd_timeouts_compute(1000, 8000, 2000, &to), 0);
	ck_assert_uint_eq(to.fence_ns, 5000ull * 1000000ull);
	ck_assert_uint_eq(to.watch_ns, 2000ull * 1000000ull);
	ck_assert_uint_eq(to.dead_ns, 8000ull * 1000000ull);
	/* T >= 3I + 2D */
	ck_assert_int_eq(lockd_timeouts_compute(1000, 6999, 2000, &to), -EINVAL);
	ck_assert_int_eq(lockd_timeouts_compute(99, 8000, 2000, &to), -EINVAL);
	ck_assert_int_eq(lockd_timeouts_compute(1000, 7000, 2000, &to), 0);
	ck_assert_uint_eq(to.fence_ns, 4000ull * 1000000ull);
}
END_TEST

START_TEST(test_join_two_hosts_leave)
{
	struct fixture fx;
	struct lunfs_lockd *a = NULL, *b = NULL;
	struct lockd_opts oa, ob;
	struct lunfs_hb_slot s;

	fx_init(&fx);
	opts_init(&oa, "host-a", uuid_a, NULL);
	opts_init(&ob, "host-b", uuid_b, NULL);
	oa.caw = LOCK_TEST_BACKEND;
	ob.caw = LOCK_TEST_BACKEND;
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	ck_assert_uint_eq(lockd_slot(a), 0);
	ck_assert_uint_eq(lockd_gen(a), 1);
	ck_assert_int_eq(read_slot(&fx, 0, &s), 0);
	ck_assert_uint_eq(s.state, LUNFS_HB_LIVE);
	ck_assert_uint_eq(s.generation, 1);
	ck_assert_uint_eq(s.seq, 1);
	ck_assert_str_eq(s.host_name, "host-a");
	ck_assert_uint_eq(s.journal_offset, layout_journal_addr(&fx.sb, 0));
	ck_assert_uint_eq(s.journal_size, fx.sb.journal_size);
	ck_assert_uint_eq(s.hb_interval_ms, fx.sb.hb_interval_ms);
	ck_assert_uint_eq(lockd_self(a)->journal_offset, s.journal_offset);

	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &ob, &b), 0);
	ck_assert_uint_eq(lockd_slot(b), 1);
	ck_assert_uint_eq(lockd_gen(b), 1);

	ck_assert_int_eq(lockd_beat(a), 0);
	ck_assert_int_eq(lockd_beat(a), 0);
	ck_assert_int_eq(read_slot(&fx, 0, &s), 0);
	ck_assert_uint_eq(s.seq, 3);

	ck_assert_int_eq(lockd_leave(a), 0);
	ck_assert_int_eq(read_slot(&fx, 0, &s), 0);
	ck_assert_uint_eq(s.state, LUNFS_HB_FREE);
	ck_assert_uint_eq(s.generation, 1);

	/* A new host takes the freed slot 0 with the next generation. */
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	ck_assert_uint_eq(lockd_slot(a), 0);
	ck_assert_uint_eq(lockd_gen(a), 2);
	ck_assert_int_eq(lockd_leave(a), 0);
	ck_assert_int_eq(lockd_leave(b), 0);
	fx_fini(&fx);
}
END_TEST

START_TEST(test_join_same_host_busy)
{
	struct fixture fx;
	struct lunfs_lockd *a = NULL, *a2 = NULL;
	struct lockd_opts oa, oa2;
	struct lockd_clock clk;
	struct test_clock tc;

	fx_init(&fx);
	opts_init(&oa, "host-a", uuid_a, NULL);
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	/* The second mount of the same host watches slot 0; host A beats
	 * while it watches (through the injected sleep). */
	tc_attach(&tc, &clk);
	tc.beat_while_sleeping = a;
	opts_init(&oa2, "host-a", uuid_a, &clk);
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa2, &a2), -EBUSY);
	ck_assert_ptr_null(a2);
	ck_assert_uint_eq(tc.sleeps, 1);
	ck_assert_uint_eq(tc.now, 1000000000ull + 2 * 100 * 1000000ull);
	ck_assert_int_eq(lockd_leave(a), 0);
	fx_fini(&fx);
}
END_TEST

START_TEST(test_join_same_host_thread_busy)
{
	/* The same with the real heartbeat thread and the real clock: the
	 * watch lasts 2 intervals, the thread beats every interval. */
	struct fixture fx;
	struct lunfs_lockd *a = NULL, *a2 = NULL;
	struct lockd_opts oa;

	fx_init(&fx);
	opts_init(&oa, "host-a", uuid_a, NULL);
	oa.no_thread = false;
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a2), -EBUSY);
	ck_assert_int_eq(lockd_check_lease(a), 0);
	ck_assert_int_eq(lockd_leave(a), 0);
	fx_fini(&fx);
}
END_TEST

START_TEST(test_rejoin_after_crash)
{
	struct fixture fx;
	struct lunfs_lockd *a = NULL, *b = NULL;
	struct lockd_opts oa, ob;
	struct lockd_clock clk;
	struct test_clock tc;
	struct lunfs_hb_slot s;

	fx_init(&fx);
	tc_attach(&tc, &clk);
	opts_init(&ob, "host-b", uuid_b, &clk);
	opts_init(&oa, "host-a", uuid_a, &clk);
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &ob, &b), 0);
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	ck_assert_uint_eq(lockd_slot(a), 1);
	lockd_abandon(a);               /* crash: slot 1 stays LIVE gen 1 */
	ck_assert_int_eq(read_slot(&fx, 1, &s), 0);
	ck_assert_uint_eq(s.state, LUNFS_HB_LIVE);

	tc.sleeps = 0;
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	ck_assert_uint_eq(tc.sleeps, 1);  /* watched it, saw no beat */
	ck_assert_uint_eq(lockd_slot(a), 1);
	ck_assert_uint_eq(lockd_gen(a), 2);
	ck_assert_int_eq(read_slot(&fx, 1, &s), 0);
	ck_assert_uint_eq(s.generation, 2);
	ck_assert_uint_eq(s.seq, 1);
	ck_assert_int_eq(lockd_leave(a), 0);
	ck_assert_int_eq(lockd_leave(b), 0);
	fx_fini(&fx);
}
END_TEST

START_TEST(test_join_full_and_corrupt_slot)
{
	struct fixture fx;
	struct lunfs_lockd *h[8] = { NULL };
	struct lunfs_lockd *extra = NULL;
	struct lockd_opts o;
	uint8_t *junk;

	fx_init(&fx);
	/* Slot 0 is corrupt: skipped, never claimed. */
	junk = dev_buf_alloc(fx.sb.sector_size);
	ck_assert_ptr_nonnull(junk);
	memset(junk, 0x5a, fx.sb.sector_size);
	ck_assert_int_eq(dev_write(fx.dev, junk, fx.sb.sector_size, layout_hb_addr(&fx.sb, 0)), 0);
	dev_buf_free(junk);
	for (unsigned i = 0; i < 7; i++) {
		uint8_t u[16];

		memcpy(u, uuid_a, 16);
		u[15] = (uint8_t)(0x40 + i);
		opts_init(&o, "h", u, NULL);
		ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &o, &h[i]), 0);
		ck_assert_uint_eq(lockd_slot(h[i]), i + 1);
	}
	opts_init(&o, "h", uuid_b, NULL);
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &o, &extra), -ENOSPC);
	for (unsigned i = 0; i < 7; i++) {
		ck_assert_int_eq(lockd_leave(h[i]), 0);
	}
	fx_fini(&fx);
}
END_TEST

START_TEST(test_lease_fence)
{
	struct fixture fx;
	struct lunfs_lockd *a = NULL;
	struct lockd_opts oa;
	struct lockd_clock clk;
	struct test_clock tc;
	const struct lockd_timeouts *to;
	struct lunfs_hb_slot s;
	uint8_t *rec;

	fx_init(&fx);
	tc_attach(&tc, &clk);
	opts_init(&oa, "host-a", uuid_a, &clk);
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	to = lockd_timeouts(a);
	ck_assert_uint_eq(to->fence_ns, (1000ull - 100 - 100) * 1000000ull);

	ck_assert_int_eq(lockd_check_lease(a), 0);
	tc.now += to->fence_ns;
	ck_assert_int_eq(lockd_check_lease(a), 0);     /* exactly F: still valid */
	tc.now += 1;
	ck_assert_int_eq(lockd_check_lease(a), -EIO);  /* past F: fenced */
	/* A late renewal that succeeds restores the lease (FORMAT 7: by CAW
	 * against our last image, so only if nobody took the slot). */
	ck_assert_int_eq(lockd_beat(a), 0);
	ck_assert_int_eq(lockd_check_lease(a), 0);

	/* A recoverer marks the slot RECOVERING: the next beat miscompares,
	 * writes nothing, and we stay fenced. */
	ck_assert_int_eq(read_slot(&fx, 0, &s), 0);
	s.state = LUNFS_HB_RECOVERING;
	s.recoverer_slot = 2;
	s.recoverer_gen = 1;
	rec = dev_buf_alloc(fx.sb.sector_size);
	ck_assert_ptr_nonnull(rec);
	hb_encode(&fx.c, &s, layout_hb_addr(&fx.sb, 0), rec);
	ck_assert_int_eq(dev_write(fx.dev, rec, fx.sb.sector_size, layout_hb_addr(&fx.sb, 0)), 0);
	dev_buf_free(rec);
	ck_assert_int_eq(lockd_beat(a), -EIO);
	ck_assert_int_eq(lockd_check_lease(a), -EIO);
	ck_assert_int_eq(read_slot(&fx, 0, &s), 0);
	ck_assert_uint_eq(s.state, LUNFS_HB_RECOVERING);
	ck_assert_int_eq(lockd_lock(a, layout_syslock_addr(&fx.sb, 5), LUNFS_LOCK_KIND_SYSTEM, 5,
				    LUNFS_LOCK_EXCLUSIVE, NULL), -EIO);
	/* Leave must not overwrite the recoverer's state either. */
	lockd_leave(a);
	ck_assert_int_eq(read_slot(&fx, 0, &s), 0);
	ck_assert_uint_eq(s.state, LUNFS_HB_RECOVERING);
	fx_fini(&fx);
}
END_TEST

/* A host that could not renew for longer than T, while nobody took its
 * slot (say the whole farm's storage stalled). LOCAL: its CAW against its
 * last image still succeeds, and the lease is back. PAXOS: past T - D a
 * renewal could land after a judgement, so it is refused for good, and
 * the incarnation must be fenced (the mount rejoins as a new generation)
 * rather than answer EIO forever. Neither writes over the slot unless it
 * is still exactly its own. */
START_TEST(test_lease_renew_after_dead_timeout)
{
	struct fixture fx;
	struct lunfs_lockd *a = NULL;
	struct lockd_opts oa;
	struct lockd_clock clk;
	struct test_clock tc;
	const struct lockd_timeouts *to;
	struct lunfs_hb_slot before, after;
	uint32_t slot;

	fx_init(&fx);
	tc_attach(&tc, &clk);
	opts_init(&oa, "host-a", uuid_a, &clk);
	oa.caw = LOCK_TEST_BACKEND;
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	to = lockd_timeouts(a);
	slot = lockd_slot(a);
	ck_assert_int_eq(lockd_beat(a), 0);
	ck_assert_int_eq(read_slot(&fx, slot, &before), 0);
	tc.now += to->dead_ns + to->interval_ns;
	ck_assert_int_eq(lockd_check_lease(a), -EIO);
	ck_assert(!lockd_fenced(a));
	if (LOCK_TEST_BACKEND == LUNFS_CAW_LOCAL) {
		ck_assert_int_eq(lockd_beat(a), 0);
		ck_assert(!lockd_fenced(a));
		ck_assert_int_eq(lockd_check_lease(a), 0);
		ck_assert_int_eq(read_slot(&fx, slot, &after), 0);
		ck_assert_uint_eq(after.seq, before.seq + 1);
		ck_assert_int_eq(lockd_leave(a), 0);
	} else {
		ck_assert_int_eq(lockd_beat(a), -EIO);
		ck_assert(lockd_fenced(a));
		ck_assert_int_eq(lockd_check_lease(a), -EIO);
		ck_assert_int_eq(read_slot(&fx, slot, &after), 0);
		ck_assert_uint_eq(after.seq, before.seq);
		ck_assert_uint_eq(after.state, LUNFS_HB_LIVE);
		/* A fenced incarnation writes nothing, not even on leave. */
		lockd_leave(a);
		ck_assert_int_eq(read_slot(&fx, slot, &after), 0);
		ck_assert_uint_eq(after.seq, before.seq);
	}
	fx_fini(&fx);
}
END_TEST

struct race_arg {
	struct fixture *fx;
	struct lockd_opts o;
	pthread_barrier_t *bar;
	struct lunfs_lockd *ld;
	int err;
};

static void *race_join(void *p)
{
	struct race_arg *ra = p;

	pthread_barrier_wait(ra->bar);
	ra->err = lockd_join(ra->fx->dev, &ra->fx->sb, &ra->fx->c, &ra->o, &ra->ld);
	return NULL;
}

START_TEST(test_join_race)
{
	struct fixture fx;
	pthread_barrier_t bar;

	fx_init(&fx);
	for (unsigned it = 0; it < 200; it++) {
		struct race_arg ra[2];
		pthread_t t[2];

		pthread_barrier_init(&bar, NULL, 2);
		for (unsigned k = 0; k < 2; k++) {
			memset(&ra[k], 0, sizeof(ra[k]));
			ra[k].fx = &fx;
			ra[k].bar = &bar;
			opts_init(&ra[k].o, k == 0 ? "racer-a" : "racer-b", k == 0 ? uuid_a : uuid_b, NULL);
			ck_assert_int_eq(pthread_create(&t[k], NULL, race_join, &ra[k]), 0);
		}
		for (unsigned k = 0; k < 2; k++) {
			pthread_join(t[k], NULL);
		}
		pthread_barrier_destroy(&bar);
		ck_assert_int_eq(ra[0].err, 0);
		ck_assert_int_eq(ra[1].err, 0);
		ck_assert_uint_ne(lockd_slot(ra[0].ld), lockd_slot(ra[1].ld));
		ck_assert_uint_lt(lockd_slot(ra[0].ld), 2);
		ck_assert_uint_lt(lockd_slot(ra[1].ld), 2);
		ck_assert_int_eq(lockd_leave(ra[0].ld), 0);
		ck_assert_int_eq(lockd_leave(ra[1].ld), 0);
	}
	fx_fini(&fx);
}
END_TEST

START_TEST(test_lock_exclusive_shared)
{
	struct fixture fx;
	struct lunfs_lockd *a = NULL, *b = NULL;
	struct lockd_opts oa, ob;
	struct lunfs_lock l;
	uint64_t x, v;
	uint32_t holder = 999;

	fx_init(&fx);
	x = layout_syslock_addr(&fx.sb, 10);
	opts_init(&oa, "host-a", uuid_a, NULL);
	opts_init(&ob, "host-b", uuid_b, NULL);
	oa.caw = LOCK_TEST_BACKEND;
	ob.caw = LOCK_TEST_BACKEND;
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &ob, &b), 0);

	ck_assert_int_eq(lockd_lock(a, x, LUNFS_LOCK_KIND_SYSTEM, 10, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	read_lock(&fx, x, &l);
	ck_assert_uint_eq(l.mode, LUNFS_LOCK_EXCLUSIVE);
	ck_assert_uint_eq(l.owner_slot, 1);
	ck_assert_uint_eq(l.owner_gen, 1);
	ck_assert_uint_eq(l.version, 1);
	ck_assert_uint_eq(l.kind, LUNFS_LOCK_KIND_SYSTEM);
	ck_assert_uint_eq(l.lock_id, 10);
	ck_assert_uint_eq(lockd_held(a, x), LUNFS_LOCK_EXCLUSIVE);

	/* Reentrant: no change on disk. */
	ck_assert_int_eq(lockd_lock(a, x, LUNFS_LOCK_KIND_SYSTEM, 10, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	ck_assert_int_eq(lockd_lock(a, x, LUNFS_LOCK_KIND_SYSTEM, 10, LUNFS_LOCK_SHARED, NULL), 0);
	read_lock(&fx, x, &l);
	ck_assert_uint_eq(l.version, 1);

	ck_assert_int_eq(lockd_lock(b, x, LUNFS_LOCK_KIND_SYSTEM, 10, LUNFS_LOCK_EXCLUSIVE, &holder), -EBUSY);
	ck_assert_uint_eq(holder, 0);
	holder = 999;
	ck_assert_int_eq(lockd_lock(b, x, LUNFS_LOCK_KIND_SYSTEM, 10, LUNFS_LOCK_SHARED, &holder), -EBUSY);
	ck_assert_uint_eq(holder, 0);
	ck_assert_int_eq(lockd_unlock(b, x), -ENOLCK);

	ck_assert_int_eq(lockd_unlock(a, x), 0);
	read_lock(&fx, x, &l);
	ck_assert_uint_eq(l.mode, LUNFS_LOCK_FREE);
	ck_assert_uint_eq(l.version, 2);
	ck_assert_uint_eq(lockd_held(a, x), LUNFS_LOCK_FREE);

	ck_assert_int_eq(lockd_lock(b, x, LUNFS_LOCK_KIND_SYSTEM, 10, LUNFS_LOCK_SHARED, NULL), 0);
	ck_assert_int_eq(lockd_lock(a, x, LUNFS_LOCK_KIND_SYSTEM, 10, LUNFS_LOCK_SHARED, NULL), 0);
	read_lock(&fx, x, &l);
	ck_assert_uint_eq(l.mode, LUNFS_LOCK_SHARED);
	ck_assert_uint_eq(l.nholders, 2);
	ck_assert(lock_holder_test(&l, 0) && lock_holder_test(&l, 1));
	ck_assert_uint_eq(l.version, 4);
	/* Upgrade blocked by the other reader; multi-writer conflicts too. */
	ck_assert_int_eq(lockd_lock(a, x, LUNFS_LOCK_KIND_SYSTEM, 10, LUNFS_LOCK_EXCLUSIVE, &holder), -EBUSY);
	ck_assert_uint_eq(holder, 1);
	ck_assert_int_eq(lockd_lock(a, x, LUNFS_LOCK_KIND_SYSTEM, 10, LUNFS_LOCK_MULTIWRITER, &holder), -EBUSY);
	ck_assert_int_eq(lockd_unlock(b, x), 0);
	/* Now a is the only reader: the upgrade goes through. */
	ck_assert_int_eq(lockd_lock(a, x, LUNFS_LOCK_KIND_SYSTEM, 10, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	read_lock(&fx, x, &l);
	ck_assert_uint_eq(l.mode, LUNFS_LOCK_EXCLUSIVE);
	ck_assert_uint_eq(l.nholders, 0);
	ck_assert_uint_eq(l.owner_slot, 1);
	v = l.version;
	ck_assert_uint_eq(v, 6);
	ck_assert_uint_eq(lockd_held(a, x), LUNFS_LOCK_EXCLUSIVE);

	/* Wrong kind or id at an address: corrupt, not granted. */
	ck_assert_int_eq(lockd_lock(b, x, LUNFS_LOCK_KIND_SYSTEM, 11, LUNFS_LOCK_SHARED, NULL), -EUCLEAN);
	ck_assert_int_eq(lockd_lock(b, x, LUNFS_LOCK_KIND_CLUSTER, 10, LUNFS_LOCK_SHARED, NULL), -EUCLEAN);
	ck_assert_int_eq(lockd_lock(b, x, LUNFS_LOCK_KIND_SYSTEM, 10, 0, NULL), -EINVAL);

	/* Leave releases what a holds. */
	ck_assert_int_eq(lockd_leave(a), 0);
	read_lock(&fx, x, &l);
	ck_assert_uint_eq(l.mode, LUNFS_LOCK_FREE);
	ck_assert_uint_gt(l.version, v);
	ck_assert_int_eq(lockd_leave(b), 0);
	fx_fini(&fx);
}
END_TEST

START_TEST(test_lock_stale_owner)
{
	struct fixture fx;
	struct lunfs_lockd *a = NULL, *b = NULL;
	struct lockd_opts oa, ob;
	struct lockd_clock clk;
	struct test_clock tc;
	struct lunfs_lock l;
	uint64_t x, y;
	uint32_t holder = 999;

	fx_init(&fx);
	x = layout_syslock_addr(&fx.sb, 20);
	y = layout_syslock_addr(&fx.sb, 21);
	tc_attach(&tc, &clk);
	opts_init(&oa, "host-a", uuid_a, &clk);
	opts_init(&ob, "host-b", uuid_b, &clk);
	oa.caw = LOCK_TEST_BACKEND;
	ob.caw = LOCK_TEST_BACKEND;
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &ob, &b), 0);
	ck_assert_int_eq(lockd_lock(a, x, LUNFS_LOCK_KIND_SYSTEM, 20, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	ck_assert_int_eq(lockd_lock(a, y, LUNFS_LOCK_KIND_SYSTEM, 21, LUNFS_LOCK_SHARED, NULL), 0);
	lockd_abandon(a);               /* crash with both locks held */

	/* Slot 0 still claimed at generation 1: a holds them as far as the
	 * single-machine rule can tell. */
	ck_assert_int_eq(lockd_lock(b, x, LUNFS_LOCK_KIND_SYSTEM, 20, LUNFS_LOCK_EXCLUSIVE, &holder), -EBUSY);
	ck_assert_uint_eq(holder, 0);
	ck_assert_int_eq(lockd_lock(b, y, LUNFS_LOCK_KIND_SYSTEM, 21, LUNFS_LOCK_EXCLUSIVE, NULL), -EBUSY);

	/* Host a comes back as generation 2: its old exclusive ownership is
	 * stale, b takes it over. The shared bit of slot 0 still counts (a
	 * bit has no generation) until a clears it. */
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	ck_assert_uint_eq(lockd_gen(a), 2);
	/* PAXOS: the crashed a kept the Paxos round of x's instance (and
	 * abandon writes nothing); b passes it once its monitor has seen
	 * slot 0 at generation 2, which its thread does within I/4. */
	ck_assert_int_eq(lockd_monitor_scan(b), 0);
	ck_assert_int_eq(lockd_lock(b, x, LUNFS_LOCK_KIND_SYSTEM, 20, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	read_lock(&fx, x, &l);
	ck_assert_uint_eq(l.owner_slot, 2);
	ck_assert_uint_eq(l.owner_gen, 1);
	ck_assert_uint_eq(l.version, 2);
	ck_assert_int_eq(lockd_lock(b, y, LUNFS_LOCK_KIND_SYSTEM, 21, LUNFS_LOCK_EXCLUSIVE, NULL), -EBUSY);
	/* a's new incarnation takes its own stale lock over too. */
	ck_assert_int_eq(lockd_lock(a, y, LUNFS_LOCK_KIND_SYSTEM, 21, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	read_lock(&fx, y, &l);
	ck_assert_uint_eq(l.owner_slot, 1);
	ck_assert_uint_eq(l.owner_gen, 2);
	ck_assert_int_eq(lockd_leave(a), 0);

	/* After a left, its slot is FREE: nothing of it counts. */
	ck_assert_int_eq(lockd_lock(b, y, LUNFS_LOCK_KIND_SYSTEM, 21, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	ck_assert_int_eq(lockd_leave(b), 0);
	fx_fini(&fx);
}
END_TEST

/* A host that leaves while it holds many exclusive locks (a farm host
 * that created 100k files) releases the first LOCKD_LEAVE_RELEASE_MAX of
 * them one by one and lets its FREE slot void the rest: the leave costs a
 * bounded number of compare-and-writes, and every lock is at once free for
 * another host. (Before, it released every one, while its lease lapsed:
 * the unmount of test_mount_scale.sh failed with EIO.) Shared holds are
 * always released: their bits carry no generation. The records are
 * zeroed sectors at the end of the data region, which decode as free
 * locks. */
#define MANY_LOCKS 600u
START_TEST(test_leave_voids_many_locks)
{
	struct fixture fx;
	struct lunfs_lockd *a = NULL, *b = NULL;
	struct lockd_opts oa, ob;
	struct lockd_clock clk;
	struct test_clock tc;
	struct lunfs_lock l;
	uint64_t base, shared;
	unsigned still_named = 0;

	fx_init(&fx);
	/* The end of the data region: nothing there is written yet. */
	base = fx.sb.regions[LUNFS_REGION_DATA].offset + fx.sb.regions[LUNFS_REGION_DATA].length -
	       (uint64_t)MANY_LOCKS * fx.sb.sector_size;
	shared = layout_syslock_addr(&fx.sb, 30);
	tc_attach(&tc, &clk);
	opts_init(&oa, "host-a", uuid_a, &clk);
	opts_init(&ob, "host-b", uuid_b, &clk);
	oa.caw = LOCK_TEST_BACKEND;
	ob.caw = LOCK_TEST_BACKEND;
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &ob, &b), 0);
	for (unsigned i = 0; i < MANY_LOCKS; i++) {
		ck_assert_int_eq(lockd_lock(a, base + (uint64_t)i * fx.sb.sector_size,
					    LUNFS_LOCK_KIND_INODE, 1000 + i, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	}
	ck_assert_int_eq(lockd_lock(a, shared, LUNFS_LOCK_KIND_SYSTEM, 30, LUNFS_LOCK_SHARED, NULL), 0);
	ck_assert_int_eq(lockd_leave(a), 0);

	for (unsigned i = 0; i < MANY_LOCKS; i++) {
		read_lock(&fx, base + (uint64_t)i * fx.sb.sector_size, &l);
		still_named += l.mode == LUNFS_LOCK_EXCLUSIVE;
	}
	ck_assert_uint_eq(still_named, MANY_LOCKS - LOCKD_LEAVE_RELEASE_MAX);
	read_lock(&fx, shared, &l);
	ck_assert_uint_eq(l.mode, LUNFS_LOCK_FREE);
	/* b reads a's slot FREE and takes every one of them. */
	(void)lockd_monitor_scan(b);
	for (unsigned i = 0; i < MANY_LOCKS; i++) {
		ck_assert_int_eq(lockd_lock(b, base + (uint64_t)i * fx.sb.sector_size,
					    LUNFS_LOCK_KIND_INODE, 1000 + i, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	}
	ck_assert_int_eq(lockd_leave(b), 0);
	fx_fini(&fx);
}
END_TEST

/* A host that crashed and joins again claims its own slot with a new
 * generation; while it is JOINING (stay_joining: it has not replayed its
 * journal yet), the locks of its earlier generation still count as held,
 * for everyone else. After lockd_activate they are stale and others take
 * them. (Before, the new generation freed them at once, and a host taking
 * one read home blocks that the replay then overwrote: lost directory
 * entries in the 5-minute torture.) */
START_TEST(test_joining_holds_earlier_generations)
{
	struct fixture fx;
	struct lunfs_lockd *a = NULL, *b = NULL;
	struct lockd_opts oa, ob;
	struct lockd_clock clk;
	struct test_clock tc;
	struct lunfs_hb_slot hs;
	uint32_t holder = 999;
	uint64_t x;

	fx_init(&fx);
	x = layout_syslock_addr(&fx.sb, 25);
	tc_attach(&tc, &clk);
	opts_init(&oa, "host-a", uuid_a, &clk);
	opts_init(&ob, "host-b", uuid_b, &clk);
	oa.caw = LOCK_TEST_BACKEND;
	ob.caw = LOCK_TEST_BACKEND;
	oa.stay_joining = true;
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	ck_assert_int_eq(read_slot(&fx, lockd_slot(a), &hs), 0);
	ck_assert_uint_eq(hs.state, LUNFS_HB_JOINING);
	ck_assert_int_eq(lockd_activate(a), 0);
	ck_assert_int_eq(read_slot(&fx, lockd_slot(a), &hs), 0);
	ck_assert_uint_eq(hs.state, LUNFS_HB_LIVE);
	ck_assert_int_eq(lockd_activate(a), 0);   /* already LIVE: nothing */
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &ob, &b), 0);
	ck_assert_int_eq(lockd_lock(a, x, LUNFS_LOCK_KIND_SYSTEM, 25, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	lockd_abandon(a);   /* crash, lock held, journal "dirty" */

	/* a mounts again: its own slot, generation 2, JOINING. */
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	ck_assert_uint_eq(lockd_gen(a), 2);
	ck_assert_int_eq(lockd_lock(b, x, LUNFS_LOCK_KIND_SYSTEM, 25, LUNFS_LOCK_EXCLUSIVE, &holder), -EBUSY);
	ck_assert_uint_eq(holder, lockd_slot(a));
	/* Replayed: generation 1 is over. PAXOS: b's monitor sees that (as
	 * its thread would) and passes the round generation 1 kept. */
	ck_assert_int_eq(lockd_activate(a), 0);
	ck_assert_int_eq(lockd_monitor_scan(b), 0);
	ck_assert_int_eq(lockd_lock(b, x, LUNFS_LOCK_KIND_SYSTEM, 25, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	ck_assert_int_eq(lockd_leave(a), 0);
	ck_assert_int_eq(lockd_leave(b), 0);
	fx_fini(&fx);
}
END_TEST

START_TEST(test_lock_payload)
{
	struct fixture fx;
	struct lunfs_lockd *a = NULL, *b = NULL;
	struct lockd_opts oa, ob;
	struct lunfs_lock l, r;
	struct lunfs_cluster_summary sum;
	uint8_t payload[64];
	uint64_t x;

	fx_init(&fx);
	x = layout_cluster_lock_addr(&fx.sb, 2);
	opts_init(&oa, "host-a", uuid_a, NULL);
	opts_init(&ob, "host-b", uuid_b, NULL);
	oa.caw = LOCK_TEST_BACKEND;
	ob.caw = LOCK_TEST_BACKEND;
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &oa, &a), 0);
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &ob, &b), 0);

	/* Never-written record: FREE, version 0. */
	ck_assert_int_eq(lockd_read(a, x, &r), 0);
	ck_assert_uint_eq(r.mode, LUNFS_LOCK_FREE);
	ck_assert_uint_eq(r.version, 0);

	memset(&l, 0, sizeof(l));
	sum.type = LUNFS_CLUSTER_META;
	sum.units_total = 100;
	sum.units_free = 42;
	sum.updated_seq = 2;
	lock_summary_set(&l, &sum);
	memcpy(payload, l.payload, 64);
	ck_assert_int_eq(lockd_set_payload(a, x, payload), -ENOLCK);
	ck_assert_int_eq(lockd_lock(a, x, LUNFS_LOCK_KIND_CLUSTER, 2, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	ck_assert_int_eq(lockd_set_payload(a, x, payload), 0);
	ck_assert_int_eq(lockd_set_payload(b, x, payload), -ENOLCK);
	ck_assert_int_eq(lockd_read(b, x, &r), 0);
	ck_assert_uint_eq(r.version, 2);
	lock_summary_get(&r, &sum);
	ck_assert_uint_eq(sum.type, LUNFS_CLUSTER_META);
	ck_assert_uint_eq(sum.units_free, 42);
	/* The payload survives release and another host's grant. */
	ck_assert_int_eq(lockd_unlock(a, x), 0);
	ck_assert_int_eq(lockd_lock(b, x, LUNFS_LOCK_KIND_CLUSTER, 2, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	ck_assert_int_eq(lockd_read(a, x, &r), 0);
	lock_summary_get(&r, &sum);
	ck_assert_uint_eq(sum.units_free, 42);
	ck_assert_uint_eq(r.owner_slot, 2);
	ck_assert_int_eq(lockd_leave(a), 0);
	ck_assert_int_eq(lockd_leave(b), 0);
	fx_fini(&fx);
}
END_TEST

struct contend_arg {
	struct lunfs_lockd *ld;
	uint64_t addr;
	unsigned *inside;
	unsigned *overlaps;
	unsigned grants;
};

static void *contend_main(void *p)
{
	struct contend_arg *ca = p;

	for (unsigned i = 0; i < 300; i++) {
		int err = lockd_lock(ca->ld, ca->addr, LUNFS_LOCK_KIND_SYSTEM, 30, LUNFS_LOCK_EXCLUSIVE, NULL);

		if (err == -EBUSY || err == -EAGAIN) {
			continue;
		}
		ck_assert_int_eq(err, 0);
		if (__atomic_add_fetch(ca->inside, 1, __ATOMIC_SEQ_CST) != 1) {
			__atomic_add_fetch(ca->overlaps, 1, __ATOMIC_SEQ_CST);
		}
		ca->grants++;
		__atomic_sub_fetch(ca->inside, 1, __ATOMIC_SEQ_CST);
		ck_assert_int_eq(lockd_unlock(ca->ld, ca->addr), 0);
	}
	return NULL;
}

START_TEST(test_lock_contention)
{
	/* Two hosts hammer one exclusive lock: never both inside. */
	struct fixture fx;
	struct lunfs_lockd *h[2] = { NULL, NULL };
	struct contend_arg ca[2];
	pthread_t t[2];
	unsigned inside = 0, overlaps = 0;
	struct lockd_opts o;

	fx_init(&fx);
	for (unsigned k = 0; k < 2; k++) {
		opts_init(&o, "h", k == 0 ? uuid_a : uuid_b, NULL);
		o.caw = LOCK_TEST_BACKEND;
		ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &o, &h[k]), 0);
		memset(&ca[k], 0, sizeof(ca[k]));
		ca[k].ld = h[k];
		ca[k].addr = layout_syslock_addr(&fx.sb, 30);
		ca[k].inside = &inside;
		ca[k].overlaps = &overlaps;
	}
	for (unsigned k = 0; k < 2; k++) {
		ck_assert_int_eq(pthread_create(&t[k], NULL, contend_main, &ca[k]), 0);
	}
	for (unsigned k = 0; k < 2; k++) {
		pthread_join(t[k], NULL);
	}
	ck_assert_uint_eq(overlaps, 0);
	ck_assert_uint_gt(ca[0].grants + ca[1].grants, 0);
	for (unsigned k = 0; k < 2; k++) {
		ck_assert_int_eq(lockd_leave(h[k]), 0);
	}
	fx_fini(&fx);
}
END_TEST

static Suite *lockd_suite(void)
{
	Suite *s = suite_create("lockd");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_timeouts);
	tcase_add_test(tc, test_join_two_hosts_leave);
	tcase_add_test(tc, test_join_same_host_busy);
	tcase_add_test(tc, test_join_same_host_thread_busy);
	tcase_add_test(tc, test_rejoin_after_crash);
	tcase_add_test(tc, test_join_full_and_corrupt_slot);
	tcase_add_test(tc, test_lease_fence);
	tcase_add_loop_test(tc, test_lease_renew_after_dead_timeout, 0, 2);
	tcase_add_test(tc, test_join_race);
	tcase_add_loop_test(tc, test_lock_exclusive_shared, 0, 2);
	tcase_add_loop_test(tc, test_lock_stale_owner, 0, 2);
	tcase_add_loop_test(tc, test_lock_payload, 0, 2);
	tcase_add_loop_test(tc, test_lock_contention, 0, 2);
	tcase_add_loop_test(tc, test_leave_voids_many_locks, 0, 2);
	tcase_add_loop_test(tc, test_joining_holds_earlier_generations, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(lockd_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
