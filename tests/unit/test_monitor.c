/*
 * Unit tests of the heartbeat monitor, dead-host recovery and lock
 * hand-off (lockd/monitor.c, lockd/recover.c, lockd/handoff.c) on a memory
 * device. Several lockd instances on one device are several hosts; they
 * run without threads, and the test drives their renewals and scans by
 * hand on one injected clock, so nothing depends on timing: "time passes"
 * only when the test advances the clock.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../fs/fs_internal.h"
#include "lunfs/dev.h"
#include "lunfs/format.h"
#include "lunfs/heartbeat.h"
#include "lunfs/lock.h"
#include "lunfs/lockd.h"
#include "lunfs/volume.h"

#define MiB (1024ull * 1024ull)
#define MS (1000000ull)
#define STEP_MS 100u       /* the volume's hb_interval */
#define DEAD_MS 1000u      /* the volume's dead_timeout */
#define NHOSTS 4u

static const uint8_t uuid_vol[16] = { 0x77, 1, 2, 3, 4, 5, 0x46, 7, 0x88, 9, 10, 11, 12, 13, 14, 15 };

/* One clock for every host (they are on one machine here); each host has
 * its own lockd_clock so that a host's sleep can run a hook (another
 * host's renewal and scan: "the holder works while we wait"). */
struct host_clock {
	_Atomic uint64_t *now;
	void (*hook)(void *arg);
	void *hook_arg;
};

static uint64_t hc_now(void *arg)
{
	return atomic_load(((struct host_clock *)arg)->now);
}

static void hc_sleep(void *arg, uint64_t ns)
{
	struct host_clock *hc = arg;

	atomic_fetch_add(hc->now, ns);
	if (hc->hook != NULL) {
		hc->hook(hc->hook_arg);
	}
}

struct fixture {
	struct lunfs_dev *dev;
	struct lunfs_super sb;
	struct lunfs_codec c;
	_Atomic uint64_t now;
	struct host_clock hc[NHOSTS + 2];
	struct lockd_clock clk[NHOSTS + 2];
	struct lunfs_lockd *ld[NHOSTS + 2];
	/* recovery callback bookkeeping */
	atomic_uint recovered[8];
	atomic_uint calls;
	int fail_with;            /* the callback "crashes" with this */
	int fail_slot_plus1;      /* ...only when recovering this slot (+1); 0 = any */
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
	o.layout.hb_interval_ms = STEP_MS;
	o.layout.io_deadline_ms = 100;
	o.layout.dead_timeout_ms = DEAD_MS;
	o.now_ns = 1700000000000000000ull;
	ck_assert_int_eq(vol_create(fx->dev, &o, &fx->sb, NULL, NULL), 0);
	sb_codec(&fx->sb, &fx->c);
	atomic_store(&fx->now, 1000000000ull);
	for (unsigned i = 0; i < NHOSTS + 2; i++) {
		fx->hc[i].now = &fx->now;
		fx->clk[i].now_ns = hc_now;
		fx->clk[i].sleep_ns = hc_sleep;
		fx->clk[i].arg = &fx->hc[i];
	}
}

static void fx_fini(struct fixture *fx)
{
	for (unsigned i = 0; i < NHOSTS + 2; i++) {
		if (fx->ld[i] != NULL) {
			lockd_abandon(fx->ld[i]);
			fx->ld[i] = NULL;
		}
	}
	dev_close(fx->dev);
}

static void host_join(struct fixture *fx, unsigned h)
{
	struct lockd_opts o;
	char name[16];

	memset(&o, 0, sizeof(o));
	snprintf(name, sizeof(name), "host%u", h);
	o.host_name = name;
	memset(o.host_uuid, 0x10 + (int)h, 16);
	o.no_thread = true;
	o.clock = &fx->clk[h];
	ck_assert_int_eq(lockd_join(fx->dev, &fx->sb, &fx->c, &o, &fx->ld[h]), 0);
}

/* Host h "crashes": its state is dropped, nothing is written. */
static void host_crash(struct fixture *fx, unsigned h)
{
	lockd_abandon(fx->ld[h]);
	fx->ld[h] = NULL;
}

static void clock_advance(struct fixture *fx, uint64_t ms)
{
	atomic_fetch_add(&fx->now, ms * MS);
}

/* Hosts in mask renew; hosts in scan_mask scan. */
static void hosts_beat(struct fixture *fx, unsigned mask)
{
	for (unsigned h = 0; h < NHOSTS + 2; h++) {
		if ((mask & (1u << h)) && fx->ld[h] != NULL) {
			ck_assert_int_eq(lockd_beat(fx->ld[h]), 0);
		}
	}
}

static void hosts_scan(struct fixture *fx, unsigned mask)
{
	for (unsigned h = 0; h < NHOSTS + 2; h++) {
		if ((mask & (1u << h)) && fx->ld[h] != NULL) {
			ck_assert_int_eq(lockd_monitor_scan(fx->ld[h]), 0);
		}
	}
}

static void read_slot(struct fixture *fx, uint32_t i, struct lunfs_hb_slot *s)
{
	uint8_t *buf = dev_buf_alloc(fx->sb.sector_size);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(dev_read(fx->dev, buf, fx->sb.sector_size, layout_hb_addr(&fx->sb, i)), 0);
	ck_assert_int_eq(hb_decode(&fx->c, buf, layout_hb_addr(&fx->sb, i), s), 0);
	dev_buf_free(buf);
}

static void read_lock(struct fixture *fx, uint64_t addr, struct lunfs_lock *l)
{
	uint8_t *buf = dev_buf_alloc(fx->sb.sector_size);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(dev_read(fx->dev, buf, fx->sb.sector_size, addr), 0);
	ck_assert_int_eq(lock_decode(&fx->c, buf, addr, l), 0);
	dev_buf_free(buf);
}

/* A slot written by hand: a "host" whose timing we choose. */
static void fake_slot_write(struct fixture *fx, uint32_t i, uint64_t seq, uint32_t dead_ms,
			    uint64_t beat_time_ns)
{
	struct lunfs_hb_slot s;
	uint8_t *buf = dev_buf_alloc(fx->sb.sector_size);

	ck_assert_ptr_nonnull(buf);
	memset(&s, 0, sizeof(s));
	s.slot = (uint16_t)i;
	s.state = LUNFS_HB_LIVE;
	s.generation = 1;
	s.seq = seq;
	memset(s.host_uuid, 0xf0 + (int)i, 16);
	snprintf(s.host_name, sizeof(s.host_name), "fake%u", i);
	s.hb_interval_ms = STEP_MS;
	s.dead_timeout_ms = dead_ms;
	s.io_deadline_ms = 100;
	s.journal_offset = layout_journal_addr(&fx->sb, i);
	s.journal_size = fx->sb.journal_size;
	s.beat_time_ns = beat_time_ns;
	memset(buf, 0, fx->sb.sector_size);
	hb_encode(&fx->c, &s, layout_hb_addr(&fx->sb, i), buf);
	ck_assert_int_eq(dev_write(fx->dev, buf, fx->sb.sector_size, layout_hb_addr(&fx->sb, i)), 0);
	dev_buf_free(buf);
}

/* ---- death detection ------------------------------------------------------ */

START_TEST(test_dead_by_own_timeout)
{
	struct fixture fx;
	struct lockd_host_info info[8];
	uint64_t gen = 0;
	struct lunfs_lockd *a;

	fx_init(&fx);
	host_join(&fx, 0);
	a = fx.ld[0];
	/* Slot 5: timeout 1 s, beat time "now" forever (a timestamp that
	 * looks fresh must not keep it alive). Slot 6: timeout 3 s, beat
	 * time far in the past (must not make it dead early). Slot 7 keeps
	 * renewing, with a beat time of 1 ns since the epoch. */
	fake_slot_write(&fx, 5, 1, 1000, UINT64_MAX / 2);
	fake_slot_write(&fx, 6, 1, 3000, 1);
	fake_slot_write(&fx, 7, 1, 1000, 1);
	ck_assert_int_eq(lockd_host_state(a, 5, NULL), LOCKD_HOST_UNKNOWN);
	hosts_scan(&fx, 1u);
	for (unsigned step = 1; step <= 50; step++) {
		clock_advance(&fx, STEP_MS);
		fake_slot_write(&fx, 7, 1 + step, 1000, 1);
		hosts_beat(&fx, 1u);
		hosts_scan(&fx, 1u);
		/* slot 5: dead exactly when unchanged for its own 1 s */
		ck_assert_int_eq(lockd_host_state(a, 5, &gen),
				 step * STEP_MS >= 1000 ? LOCKD_HOST_DEAD : LOCKD_HOST_LIVE);
		ck_assert_uint_eq(gen, 1);
		/* slot 6: judged by its own 3 s, not by ours (1 s) */
		ck_assert_int_eq(lockd_host_state(a, 6, NULL),
				 step * STEP_MS >= 3000 ? LOCKD_HOST_DEAD : LOCKD_HOST_LIVE);
		ck_assert_int_eq(lockd_host_state(a, 7, NULL), LOCKD_HOST_LIVE);
		ck_assert(lockd_host_dead(a, 5, 1) == (step * STEP_MS >= 1000));
		ck_assert(!lockd_host_dead(a, 7, 1));
		ck_assert_int_eq(lockd_host_state(a, 0, NULL), LOCKD_HOST_LIVE);
		ck_assert_int_eq(lockd_host_state(a, 3, NULL), LOCKD_HOST_FREE);
	}
	/* Generations: a later one is not judged by an earlier's death. */
	ck_assert(!lockd_host_dead(a, 5, 2));
	ck_assert(lockd_host_dead(a, 3, 1));      /* never claimed */
	ck_assert(lockd_host_dead(a, 0, 0));      /* our own earlier incarnation */
	ck_assert(!lockd_host_dead(a, 0, lockd_gen(a)));

	lockd_hosts_snapshot(a, info);
	ck_assert_int_eq(info[5].state, LOCKD_HOST_DEAD);
	ck_assert_uint_eq(info[5].age_ms, 5000);
	ck_assert_uint_eq(info[5].changes, 0);
	ck_assert_uint_eq(info[7].changes, 50);
	ck_assert_uint_eq(info[7].age_ms, 0);
	ck_assert_str_eq(info[6].rec.host_name, "fake6");
	fx_fini(&fx);
}
END_TEST

/* A slot first seen is not judged until watched for its own timeout, even
 * if it has in fact been silent much longer; and a monitor that stalls
 * does not judge from the stall (only its reads count). */
START_TEST(test_first_sight_and_stall)
{
	struct fixture fx;
	struct lockd_monitor *m;
	struct lockd_host_info info[8];

	fx_init(&fx);
	fake_slot_write(&fx, 2, 7, 1000, 0);
	clock_advance(&fx, 60000);
	ck_assert_int_eq(lockd_monitor_open(fx.dev, &fx.sb, &fx.c, &fx.clk[0], &m), 0);
	ck_assert_int_eq(lockd_monitor_read(m), 0);
	lockd_monitor_snapshot(m, info);
	ck_assert_int_eq(info[2].state, LOCKD_HOST_LIVE);
	ck_assert_int_eq(info[0].state, LOCKD_HOST_FREE);
	clock_advance(&fx, 900);
	ck_assert_int_eq(lockd_monitor_read(m), 0);
	lockd_monitor_snapshot(m, info);
	ck_assert_int_eq(info[2].state, LOCKD_HOST_LIVE);
	ck_assert_uint_eq(info[2].watched_ms, 900);
	/* The monitor stalls for a minute, during which the host renews
	 * once: the next read sees a change, not a death. */
	clock_advance(&fx, 60000);
	fake_slot_write(&fx, 2, 8, 1000, 0);
	ck_assert_int_eq(lockd_monitor_read(m), 0);
	lockd_monitor_snapshot(m, info);
	ck_assert_int_eq(info[2].state, LOCKD_HOST_LIVE);
	ck_assert_uint_eq(info[2].changes, 1);
	clock_advance(&fx, 1000);
	ck_assert_int_eq(lockd_monitor_read(m), 0);
	lockd_monitor_snapshot(m, info);
	ck_assert_int_eq(info[2].state, LOCKD_HOST_DEAD);
	lockd_monitor_close(m);
	fx_fini(&fx);
}
END_TEST

/* ---- recovery ------------------------------------------------------------- */

static int cb_recover(void *arg, uint32_t slot, const struct lunfs_hb_slot *dead)
{
	struct fixture *fx = arg;
	uint64_t applied = 0;
	int err;

	ck_assert_int_eq(dead->state, LUNFS_HB_RECOVERING);
	ck_assert_uint_eq(dead->slot, slot);
	atomic_fetch_add(&fx->calls, 1);
	if (fx->fail_with != 0 && (fx->fail_slot_plus1 == 0 || fx->fail_slot_plus1 == (int)slot + 1)) {
		return fx->fail_with;
	}
	/* What the fs layer will do first: replay the dead host's journal
	 * (idempotent; never used here, so nothing to apply). */
	err = jnl_replay(fx->dev, &fx->sb, &fx->c, slot, &applied);
	if (err == 0) {
		atomic_fetch_add(&fx->recovered[slot], 1);
	}
	return err;
}

static void *scan_thread(void *p)
{
	struct lunfs_lockd *ld = p;

	ck_assert_int_eq(lockd_monitor_scan(ld), 0);
	return NULL;
}

START_TEST(test_recover_exactly_one)
{
	for (unsigned iter = 0; iter < 100; iter++) {
		struct fixture fx;
		struct lunfs_hb_slot s;
		pthread_t th[3];
		uint64_t dgen;

		fx_init(&fx);
		for (unsigned h = 0; h < NHOSTS; h++) {
			host_join(&fx, h);
		}
		for (unsigned h = 0; h < 3; h++) {
			lockd_set_recover(fx.ld[h], cb_recover, &fx);
		}
		dgen = lockd_gen(fx.ld[3]);
		hosts_scan(&fx, 0xf);
		/* Host 3 dies. The survivors renew and scan; at the scan
		 * where its timeout is reached, all three race. */
		for (unsigned step = 1; step < DEAD_MS / STEP_MS; step++) {
			clock_advance(&fx, STEP_MS);
			hosts_beat(&fx, 0x7);
			hosts_scan(&fx, 0x7);
			ck_assert_int_eq(lockd_host_state(fx.ld[0], 3, NULL), LOCKD_HOST_LIVE);
		}
		clock_advance(&fx, STEP_MS);
		hosts_beat(&fx, 0x7);
		for (unsigned h = 0; h < 3; h++) {
			ck_assert_int_eq(pthread_create(&th[h], NULL, scan_thread, fx.ld[h]), 0);
		}
		for (unsigned h = 0; h < 3; h++) {
			pthread_join(th[h], NULL);
		}
		ck_assert_uint_eq(atomic_load(&fx.calls), 1);
		ck_assert_uint_eq(atomic_load(&fx.recovered[3]), 1);
		read_slot(&fx, 3, &s);
		ck_assert_int_eq(s.state, LUNFS_HB_FREE);
		ck_assert_uint_eq(s.generation, dgen);
		ck_assert_uint_eq(s.recoverer_slot, 0);
		/* Later scans see it FREE and leave it alone. */
		clock_advance(&fx, STEP_MS);
		hosts_beat(&fx, 0x7);
		hosts_scan(&fx, 0x7);
		ck_assert_uint_eq(atomic_load(&fx.calls), 1);
		ck_assert_int_eq(lockd_host_state(fx.ld[1], 3, NULL), LOCKD_HOST_FREE);
		for (unsigned h = 0; h < 3; h++) {
			ck_assert_int_eq(lockd_check_lease(fx.ld[h]), 0);
		}
		fx_fini(&fx);
	}
}
END_TEST

START_TEST(test_recoverer_dies)
{
	struct fixture fx;
	struct lunfs_hb_slot s;
	uint64_t dgen, agen;

	fx_init(&fx);
	for (unsigned h = 0; h < NHOSTS; h++) {
		host_join(&fx, h);
		lockd_set_recover(fx.ld[h], cb_recover, &fx);
	}
	dgen = lockd_gen(fx.ld[3]);
	agen = lockd_gen(fx.ld[0]);
	hosts_scan(&fx, 0xf);
	for (unsigned step = 1; step < DEAD_MS / STEP_MS; step++) {
		clock_advance(&fx, STEP_MS);
		hosts_beat(&fx, 0x7);
		hosts_scan(&fx, 0x7);
	}
	/* Only host 0 scans when 3's timeout is reached: it wins, and
	 * "crashes" inside the callback. */
	clock_advance(&fx, STEP_MS);
	hosts_beat(&fx, 0x7);
	fx.fail_with = -EINTR;
	ck_assert_int_eq(lockd_monitor_scan(fx.ld[0]), -EINTR);
	fx.fail_with = 0;
	ck_assert_uint_eq(atomic_load(&fx.calls), 1);
	read_slot(&fx, 3, &s);
	ck_assert_int_eq(s.state, LUNFS_HB_RECOVERING);
	ck_assert_uint_eq(s.recoverer_slot, 1);
	ck_assert_uint_eq(s.recoverer_gen, agen);
	host_crash(&fx, 0);
	/* Hosts 1 and 2 carry on. Slot 3 stays RECOVERING while its
	 * recoverer's own timeout runs (they first read host 0's last
	 * renewal at their next scan, one step after it was written). */
	for (unsigned step = 1; step <= DEAD_MS / STEP_MS; step++) {
		clock_advance(&fx, STEP_MS);
		hosts_beat(&fx, 0x6);
		hosts_scan(&fx, 0x6);
		read_slot(&fx, 3, &s);
		ck_assert_int_eq(s.state, LUNFS_HB_RECOVERING);
	}
	clock_advance(&fx, STEP_MS);
	hosts_beat(&fx, 0x6);
	hosts_scan(&fx, 0x6);
	/* Host 0 is dead: one survivor recovered it, and took over 3. */
	read_slot(&fx, 3, &s);
	ck_assert_int_eq(s.state, LUNFS_HB_FREE);
	ck_assert_uint_eq(s.generation, dgen);
	read_slot(&fx, 0, &s);
	ck_assert_int_eq(s.state, LUNFS_HB_FREE);
	ck_assert_uint_eq(s.generation, agen);
	ck_assert_uint_eq(atomic_load(&fx.recovered[3]), 1);
	ck_assert_uint_eq(atomic_load(&fx.recovered[0]), 1);
	ck_assert_uint_eq(atomic_load(&fx.calls), 3);
	fx_fini(&fx);
}
END_TEST

/* A dead recoverer is recovered BEFORE its half-done recovery is taken
 * over: its journal may hold part of that recovery (D's orphans freed in
 * D's clusters), and freeing D first would let a later replay of that
 * journal write over the next holder of D's locks. Here the recovery of
 * the recoverer (host 0) keeps failing: D (host 3) must stay RECOVERING,
 * with host 0 as its recoverer, until host 0 is recovered. (Before, D was
 * taken over and freed as soon as host 0 was judged dead.) */
START_TEST(test_recoverer_recovered_first)
{
	struct fixture fx;
	struct lunfs_hb_slot s;
	uint64_t agen;

	fx_init(&fx);
	for (unsigned h = 0; h < NHOSTS; h++) {
		host_join(&fx, h);
		lockd_set_recover(fx.ld[h], cb_recover, &fx);
	}
	agen = lockd_gen(fx.ld[0]);
	hosts_scan(&fx, 0xf);
	for (unsigned step = 1; step < DEAD_MS / STEP_MS; step++) {
		clock_advance(&fx, STEP_MS);
		hosts_beat(&fx, 0x7);
		hosts_scan(&fx, 0x7);
	}
	clock_advance(&fx, STEP_MS);
	hosts_beat(&fx, 0x7);
	fx.fail_with = -EINTR;
	ck_assert_int_eq(lockd_monitor_scan(fx.ld[0]), -EINTR);
	host_crash(&fx, 0);
	/* Recovering host 0 fails from now on; recovering 3 would work. */
	fx.fail_slot_plus1 = 1;
	for (unsigned step = 1; step <= 3 * DEAD_MS / STEP_MS; step++) {
		clock_advance(&fx, STEP_MS);
		hosts_beat(&fx, 0x6);
		(void)lockd_monitor_scan(fx.ld[1]);
		(void)lockd_monitor_scan(fx.ld[2]);
		read_slot(&fx, 3, &s);
		ck_assert_int_eq(s.state, LUNFS_HB_RECOVERING);
		ck_assert_uint_eq(s.recoverer_slot, 1);
		ck_assert_uint_eq(s.recoverer_gen, agen);
	}
	read_slot(&fx, 0, &s);
	ck_assert_int_eq(s.state, LUNFS_HB_RECOVERING);
	ck_assert_uint_eq(atomic_load(&fx.recovered[3]), 0);
	/* Host 0's recovery goes through: then 3's is taken over. */
	fx.fail_with = 0;
	fx.fail_slot_plus1 = 0;
	for (unsigned step = 0; step < 3; step++) {
		clock_advance(&fx, STEP_MS);
		hosts_beat(&fx, 0x6);
		hosts_scan(&fx, 0x6);
	}
	read_slot(&fx, 0, &s);
	ck_assert_int_eq(s.state, LUNFS_HB_FREE);
	read_slot(&fx, 3, &s);
	ck_assert_int_eq(s.state, LUNFS_HB_FREE);
	ck_assert_uint_eq(atomic_load(&fx.recovered[0]), 1);
	ck_assert_uint_eq(atomic_load(&fx.recovered[3]), 1);
	fx_fini(&fx);
}
END_TEST

/* Without a recover callback nobody recovers: a journal is never skipped. */
START_TEST(test_no_callback_no_recovery)
{
	struct fixture fx;
	struct lunfs_hb_slot s;

	fx_init(&fx);
	host_join(&fx, 0);
	host_join(&fx, 1);
	hosts_scan(&fx, 0x3);
	for (unsigned step = 1; step <= 30; step++) {
		clock_advance(&fx, STEP_MS);
		hosts_beat(&fx, 0x1);
		hosts_scan(&fx, 0x1);
	}
	ck_assert_int_eq(lockd_host_state(fx.ld[0], 1, NULL), LOCKD_HOST_DEAD);
	read_slot(&fx, 1, &s);
	ck_assert_int_eq(s.state, LUNFS_HB_LIVE);
	fx_fini(&fx);
}
END_TEST

START_TEST(test_frozen_host_fenced)
{
	struct fixture fx;
	struct lunfs_hb_slot s;
	uint64_t old_gen;
	uint64_t x;

	fx_init(&fx);
	host_join(&fx, 0);
	host_join(&fx, 1);
	lockd_set_recover(fx.ld[0], cb_recover, &fx);
	x = layout_syslock_addr(&fx.sb, 9);
	ck_assert_int_eq(lockd_lock(fx.ld[1], x, LUNFS_LOCK_KIND_SYSTEM, 9, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	old_gen = lockd_gen(fx.ld[1]);
	hosts_scan(&fx, 0x3);
	/* Host 1 freezes (no renewals, no scans) past its timeout. */
	for (unsigned step = 1; step <= DEAD_MS / STEP_MS + 1; step++) {
		clock_advance(&fx, STEP_MS);
		hosts_beat(&fx, 0x1);
		hosts_scan(&fx, 0x1);
	}
	read_slot(&fx, 1, &s);
	ck_assert_int_eq(s.state, LUNFS_HB_FREE);
	ck_assert_uint_eq(atomic_load(&fx.recovered[1]), 1);
	/* Host 0 can now take the frozen host's lock. */
	ck_assert_int_eq(lockd_lock(fx.ld[0], x, LUNFS_LOCK_KIND_SYSTEM, 9, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	/* Host 1 wakes up: its renewal fails, it is fenced for good. */
	ck_assert_int_eq(lockd_beat(fx.ld[1]), -EIO);
	ck_assert_int_eq(lockd_check_lease(fx.ld[1]), -EIO);
	ck_assert_int_eq(lockd_beat(fx.ld[1]), -EIO);
	ck_assert_int_eq(lockd_lock(fx.ld[1], layout_syslock_addr(&fx.sb, 10), LUNFS_LOCK_KIND_SYSTEM, 10,
				    LUNFS_LOCK_EXCLUSIVE, NULL), -EIO);
	read_slot(&fx, 1, &s);
	ck_assert_int_eq(s.state, LUNFS_HB_FREE);
	/* It rejoins as a new generation. */
	host_crash(&fx, 1);
	host_join(&fx, 1);
	ck_assert_uint_gt(lockd_gen(fx.ld[1]), old_gen);
	ck_assert_int_eq(lockd_check_lease(fx.ld[1]), 0);
	ck_assert_int_eq(lockd_lock(fx.ld[1], x, LUNFS_LOCK_KIND_SYSTEM, 9, LUNFS_LOCK_EXCLUSIVE, NULL),
			 -EBUSY);
	fx_fini(&fx);
}
END_TEST

/* The frozen host's own monitor fences it as soon as it reads its slot
 * taken, before it tries to renew. */
START_TEST(test_monitor_fences_self)
{
	struct fixture fx;

	fx_init(&fx);
	host_join(&fx, 0);
	host_join(&fx, 1);
	lockd_set_recover(fx.ld[0], cb_recover, &fx);
	hosts_scan(&fx, 0x3);
	for (unsigned step = 1; step <= DEAD_MS / STEP_MS + 1; step++) {
		clock_advance(&fx, STEP_MS);
		hosts_beat(&fx, 0x1);
		hosts_scan(&fx, 0x1);
	}
	ck_assert_int_eq(lockd_monitor_scan(fx.ld[1]), 0);
	ck_assert_int_eq(lockd_check_lease(fx.ld[1]), -EIO);
	ck_assert_int_eq(lockd_beat(fx.ld[1]), -EIO);
	fx_fini(&fx);
}
END_TEST

/* ---- hand-off --------------------------------------------------------------- */

struct handoff_ctx {
	struct fixture *fx;
	unsigned holder;           /* host index of the holder */
	unsigned holder_scans;     /* scans the holder ran while we waited */
	unsigned release_calls;
	unsigned released_at_scan;
	uint64_t addr;
	bool refuse;
};

static int cb_release(void *arg, uint64_t lock_addr, uint8_t wanted)
{
	struct handoff_ctx *hx = arg;

	ck_assert_uint_eq(lock_addr, hx->addr);
	ck_assert_int_eq(wanted, LUNFS_LOCK_EXCLUSIVE);
	hx->release_calls++;
	if (hx->refuse) {
		return -EBUSY;
	}
	hx->released_at_scan = hx->holder_scans;
	return lockd_unlock(hx->fx->ld[hx->holder], lock_addr);
}

/* While the requester sleeps, the holder renews and scans once. */
static void hook_holder_works(void *arg)
{
	struct handoff_ctx *hx = arg;

	hosts_beat(hx->fx, 1u << hx->holder);
	hx->holder_scans++;
	ck_assert_int_eq(lockd_monitor_scan(hx->fx->ld[hx->holder]), 0);
}

START_TEST(test_handoff_exclusive)
{
	struct fixture fx;
	struct handoff_ctx hx;
	struct lunfs_lock l;
	uint32_t holder = 99;
	uint64_t x;

	fx_init(&fx);
	host_join(&fx, 0);
	host_join(&fx, 1);
	x = layout_syslock_addr(&fx.sb, 12);
	memset(&hx, 0, sizeof(hx));
	hx.fx = &fx;
	hx.holder = 0;
	hx.addr = x;
	lockd_set_release(fx.ld[0], cb_release, &hx);
	fx.hc[1].hook = hook_holder_works;
	fx.hc[1].hook_arg = &hx;
	hosts_scan(&fx, 0x3);
	ck_assert_int_eq(lockd_lock(fx.ld[0], x, LUNFS_LOCK_KIND_SYSTEM, 12, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	ck_assert_int_eq(lockd_lock(fx.ld[1], x, LUNFS_LOCK_KIND_SYSTEM, 12, LUNFS_LOCK_EXCLUSIVE, &holder),
			 -EBUSY);
	ck_assert_uint_eq(holder, 0);
	ck_assert_int_eq(lockd_lock_wait(fx.ld[1], x, LUNFS_LOCK_KIND_SYSTEM, 12, LUNFS_LOCK_EXCLUSIVE,
					 5000, &holder), 0);
	/* The holder saw the request at its first scan after it was made. */
	ck_assert_uint_eq(hx.release_calls, 1);
	ck_assert_uint_eq(hx.released_at_scan, 1);
	ck_assert_int_eq(lockd_held(fx.ld[1], x), LUNFS_LOCK_EXCLUSIVE);
	ck_assert_int_eq(lockd_held(fx.ld[0], x), LUNFS_LOCK_FREE);
	read_lock(&fx, x, &l);
	ck_assert_int_eq(l.mode, LUNFS_LOCK_EXCLUSIVE);
	ck_assert_uint_eq(l.owner_slot, lockd_slot(fx.ld[1]) + 1u);
	ck_assert_uint_eq(l.req_slot, 0);   /* our request was satisfied */
	/* The request entry leaves our slot with the next renewal, and the
	 * old holder is not asked again. */
	fx.hc[1].hook = NULL;
	hosts_beat(&fx, 0x3);
	hosts_scan(&fx, 0x1);
	ck_assert_uint_eq(hx.release_calls, 1);
	fx_fini(&fx);
}
END_TEST

START_TEST(test_handoff_refused_timeout)
{
	struct fixture fx;
	struct handoff_ctx hx;
	struct lunfs_lock l;
	uint32_t holder = 99;
	uint64_t x;

	fx_init(&fx);
	host_join(&fx, 0);
	host_join(&fx, 1);
	x = layout_syslock_addr(&fx.sb, 13);
	memset(&hx, 0, sizeof(hx));
	hx.fx = &fx;
	hx.holder = 0;
	hx.addr = x;
	hx.refuse = true;
	lockd_set_release(fx.ld[0], cb_release, &hx);
	fx.hc[1].hook = hook_holder_works;
	fx.hc[1].hook_arg = &hx;
	hosts_scan(&fx, 0x3);
	ck_assert_int_eq(lockd_lock(fx.ld[0], x, LUNFS_LOCK_KIND_SYSTEM, 13, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	ck_assert_int_eq(lockd_lock_wait(fx.ld[1], x, LUNFS_LOCK_KIND_SYSTEM, 13, LUNFS_LOCK_EXCLUSIVE,
					 500, &holder), -EBUSY);
	ck_assert_uint_eq(holder, 0);
	/* Asked at every scan while the request stood. */
	ck_assert_uint_eq(hx.release_calls, hx.holder_scans);
	ck_assert_uint_ge(hx.release_calls, 4);
	read_lock(&fx, x, &l);
	ck_assert_uint_eq(l.owner_slot, 1);
	ck_assert_uint_eq(l.req_slot, lockd_slot(fx.ld[1]) + 1u);   /* visible to `lunfs locks` */
	ck_assert_uint_eq(l.req_mode, LUNFS_LOCK_EXCLUSIVE);
	ck_assert_uint_eq(l.req_gen, lockd_gen(fx.ld[1]));
	fx_fini(&fx);
}
END_TEST

/* A shared holder bit left by a dead host counts until the host has been
 * recovered, then is ignored. */
START_TEST(test_stale_bit_dead_host)
{
	struct fixture fx;
	uint32_t holder = 99;
	uint64_t x;

	fx_init(&fx);
	host_join(&fx, 0);
	host_join(&fx, 1);
	x = layout_syslock_addr(&fx.sb, 14);
	ck_assert_int_eq(lockd_lock(fx.ld[1], x, LUNFS_LOCK_KIND_SYSTEM, 14, LUNFS_LOCK_SHARED, NULL), 0);
	hosts_scan(&fx, 0x3);
	host_crash(&fx, 1);
	for (unsigned step = 1; step <= DEAD_MS / STEP_MS; step++) {
		clock_advance(&fx, STEP_MS);
		hosts_beat(&fx, 0x1);
		hosts_scan(&fx, 0x1);
	}
	ck_assert_int_eq(lockd_host_state(fx.ld[0], 1, NULL), LOCKD_HOST_DEAD);
	/* Dead but not recovered: its journal may still hold the truth
	 * about what the lock covers, so the lock is still held. */
	ck_assert_int_eq(lockd_lock(fx.ld[0], x, LUNFS_LOCK_KIND_SYSTEM, 14, LUNFS_LOCK_EXCLUSIVE, &holder),
			 -EBUSY);
	ck_assert_uint_eq(holder, 1);
	lockd_set_recover(fx.ld[0], cb_recover, &fx);
	hosts_scan(&fx, 0x1);
	ck_assert_uint_eq(atomic_load(&fx.recovered[1]), 1);
	ck_assert_int_eq(lockd_lock(fx.ld[0], x, LUNFS_LOCK_KIND_SYSTEM, 14, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	fx_fini(&fx);
}
END_TEST

/* A holder bit left by an earlier incarnation of a live slot is cleared
 * by that slot when asked, with no release callback involved. */
START_TEST(test_stale_bit_own_incarnation)
{
	struct fixture fx;
	struct handoff_ctx hx;
	struct lunfs_lock l;
	uint32_t holder = 99;
	uint64_t x;

	fx_init(&fx);
	host_join(&fx, 0);
	host_join(&fx, 1);
	x = layout_syslock_addr(&fx.sb, 15);
	ck_assert_int_eq(lockd_lock(fx.ld[0], x, LUNFS_LOCK_KIND_SYSTEM, 15, LUNFS_LOCK_SHARED, NULL), 0);
	host_crash(&fx, 0);
	host_join(&fx, 0);   /* same machine: reclaims slot 0, generation 2 */
	ck_assert_uint_eq(lockd_slot(fx.ld[0]), 0);
	ck_assert_uint_eq(lockd_gen(fx.ld[0]), 2);
	memset(&hx, 0, sizeof(hx));
	hx.fx = &fx;
	hx.holder = 0;
	hx.addr = x;
	fx.hc[1].hook = hook_holder_works;
	fx.hc[1].hook_arg = &hx;
	hosts_scan(&fx, 0x3);
	ck_assert_int_eq(lockd_lock_wait(fx.ld[1], x, LUNFS_LOCK_KIND_SYSTEM, 15, LUNFS_LOCK_EXCLUSIVE,
					 5000, &holder), 0);
	ck_assert_uint_eq(hx.holder_scans, 1);
	ck_assert_uint_eq(hx.release_calls, 0);
	read_lock(&fx, x, &l);
	ck_assert_int_eq(l.mode, LUNFS_LOCK_EXCLUSIVE);
	ck_assert_uint_eq(l.nholders, 0);
	fx_fini(&fx);
}
END_TEST

/* Without a release callback a lock in use is never dropped behind the
 * upper layer's back: the requester times out. */
START_TEST(test_handoff_no_callback_keeps_lock)
{
	struct fixture fx;
	struct handoff_ctx hx;
	uint32_t holder = 99;
	uint64_t x;

	fx_init(&fx);
	host_join(&fx, 0);
	host_join(&fx, 1);
	x = layout_syslock_addr(&fx.sb, 16);
	memset(&hx, 0, sizeof(hx));
	hx.fx = &fx;
	hx.holder = 0;
	hx.addr = x;
	fx.hc[1].hook = hook_holder_works;
	fx.hc[1].hook_arg = &hx;
	hosts_scan(&fx, 0x3);
	ck_assert_int_eq(lockd_lock(fx.ld[0], x, LUNFS_LOCK_KIND_SYSTEM, 16, LUNFS_LOCK_EXCLUSIVE, NULL), 0);
	ck_assert_int_eq(lockd_lock_wait(fx.ld[1], x, LUNFS_LOCK_KIND_SYSTEM, 16, LUNFS_LOCK_EXCLUSIVE,
					 300, &holder), -EBUSY);
	ck_assert_uint_eq(holder, 0);
	ck_assert_int_eq(lockd_held(fx.ld[0], x), LUNFS_LOCK_EXCLUSIVE);
	fx_fini(&fx);
}
END_TEST

/* The threaded monitor starts and stops with the membership. */
START_TEST(test_thread_start_stop)
{
	struct fixture fx;
	struct lockd_opts o;
	struct lunfs_lockd *ld;

	fx_init(&fx);
	memset(&o, 0, sizeof(o));
	o.host_name = "threaded";
	memset(o.host_uuid, 0x55, 16);
	ck_assert_int_eq(lockd_join(fx.dev, &fx.sb, &fx.c, &o, &ld), 0);
	ck_assert_int_eq(lockd_host_state(ld, lockd_slot(ld), NULL), LOCKD_HOST_LIVE);
	ck_assert_int_eq(lockd_leave(ld), 0);
	fx_fini(&fx);
}
END_TEST

static Suite *monitor_suite(void)
{
	Suite *s = suite_create("monitor");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_dead_by_own_timeout);
	tcase_add_test(tc, test_first_sight_and_stall);
	tcase_add_test(tc, test_recover_exactly_one);
	tcase_add_test(tc, test_recoverer_dies);
	tcase_add_test(tc, test_recoverer_recovered_first);
	tcase_add_test(tc, test_no_callback_no_recovery);
	tcase_add_test(tc, test_frozen_host_fenced);
	tcase_add_test(tc, test_monitor_fences_self);
	tcase_add_test(tc, test_handoff_exclusive);
	tcase_add_test(tc, test_handoff_refused_timeout);
	tcase_add_test(tc, test_stale_bit_dead_host);
	tcase_add_test(tc, test_stale_bit_own_incarnation);
	tcase_add_test(tc, test_handoff_no_callback_keeps_lock);
	tcase_add_test(tc, test_thread_start_stop);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(monitor_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
