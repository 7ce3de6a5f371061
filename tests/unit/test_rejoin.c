/*
 * Fence and rejoin (vol_fenced, vol_abandon; docs/DESIGN.md 5.5): a host
 * that was frozen while a survivor recovered it learns that its slot was
 * taken, drops its whole mount without writing anything, and mounts again
 * as a new generation that sees the survivor's changes.
 *
 * Two "hosts", A and B, are two vol_mounts of one memory device, each with
 * its own injected lockd clock and no lockd threads: the test drives their
 * renewals and monitor scans by hand, so a freeze is simply "A's clock and
 * A's beats stop while B's go on", and nothing depends on real time. A
 * runs on a fault layer over the device, whose counters tell exactly which
 * I/Os A issued: after A wakes fenced, its writes, compare-and-writes and
 * discards must stay where they were. When a host waits for a lock the
 * other one holds, its clock's sleep runs the other host's renewal and
 * scan (the holder serves the request while we wait).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../fs/fs_internal.h"
#include "fs_testcheck.h"
#include "lunfs/check.h"
#include "lunfs/dev.h"
#include "lunfs/fs.h"
#include "lunfs/heartbeat.h"
#include "lunfs/lockd.h"
#include "lunfs/volume.h"

#define MiB (1024ull * 1024ull)
#define MS 1000000ull
#define STEP_MS 100u           /* the volume's hb_interval */
#define DEAD_MS 1000u          /* its dead timeout */
#define DATA_LEN (64u * 1024u)
#define MAX_STEPS 200u         /* bound on "until recovered" loops */

struct fixture;

struct host {
	const char *name;
	struct fixture *fx;
	struct lunfs_dev *dev;
	struct lunfs_vol *v;
	_Atomic uint64_t now;
	struct lockd_clock clk;
	struct host *peer;         /* ticked while we sleep; NULL = nobody */
};

struct fixture {
	struct lunfs_dev *mem;     /* B's device; A's fault layer owns it */
	struct lunfs_fault *fault; /* A's */
	struct host a, b;
	bool in_hook;              /* a hook never nests (act_mu is not recursive) */
};

static const struct lunfs_cred cred = { .uid = 0, .gid = 0, .umask = 022 };

static uint64_t host_now(void *arg)
{
	return atomic_load(&((struct host *)arg)->now);
}

static void host_tick(struct host *h);

static void host_sleep(void *arg, uint64_t ns)
{
	struct host *h = arg;

	atomic_fetch_add(&h->now, ns);
	if (h->peer != NULL && !h->fx->in_hook) {
		h->fx->in_hook = true;
		host_tick(h->peer);
		h->fx->in_hook = false;
	}
}

/* One renewal and one monitor scan: what the two lockd threads do every
 * interval. Errors are the protocol's business (a fenced host's beat
 * fails), not the test's. */
static void host_tick(struct host *h)
{
	if (h->v == NULL) {
		return;
	}
	(void)lockd_beat(h->v->ld);
	(void)lockd_monitor_scan(h->v->ld);
}

static void host_advance(struct host *h, unsigned ms)
{
	atomic_fetch_add(&h->now, (uint64_t)ms * MS);
}

static int host_mount(struct host *h)
{
	struct lunfs_mount_opts mo;

	memset(&mo, 0, sizeof(mo));
	mo.host_name = h->name;
	mo.commit_interval_ms = 600000;  /* commits only when asked */
	mo.no_hb_thread = true;
	mo.clock = &h->clk;
	return vol_mount(h->dev, &mo, &h->v);
}

static void host_init(struct fixture *fx, struct host *h, const char *name, struct lunfs_dev *dev)
{
	h->name = name;
	h->fx = fx;
	h->dev = dev;
	atomic_store(&h->now, 1000 * MS);
	h->clk.now_ns = host_now;
	h->clk.sleep_ns = host_sleep;
	h->clk.arg = h;
}

static void fx_init(struct fixture *fx)
{
	struct lunfs_vol_create_opts o;
	struct lunfs_dev *adev = NULL;

	memset(fx, 0, sizeof(*fx));
	ck_assert_int_eq(dev_mem_open(128 * MiB, 512, &fx->mem), 0);
	memset(&o, 0, sizeof(o));
	o.layout.max_hosts = 4;
	o.layout.file_block_size = 64 * 1024;
	o.layout.cluster_size = 4 * MiB;
	o.layout.journal_size = 1 * MiB;
	o.layout.hb_interval_ms = STEP_MS;
	o.layout.io_deadline_ms = 100;
	o.layout.dead_timeout_ms = DEAD_MS;
	o.label = "rejoin";
	ck_assert_int_eq(vol_create(fx->mem, &o, NULL, NULL, NULL), 0);
	ck_assert_int_eq(dev_fault_open(fx->mem, &adev, &fx->fault), 0);
	host_init(fx, &fx->a, "hostA", adev);
	host_init(fx, &fx->b, "hostB", fx->mem);
}

/* Teardown that never asserts. B's device is the one under A's fault
 * layer, so B goes first and closing A's device closes both. */
static void fx_fini(struct fixture *fx)
{
	fx->a.peer = NULL;
	fx->b.peer = NULL;
	if (fx->b.v != NULL) {
		(void)vol_unmount(fx->b.v);
		fx->b.v = NULL;
	}
	if (fx->a.v != NULL) {
		(void)vol_unmount(fx->a.v);
		fx->a.v = NULL;
	}
	dev_close(fx->a.dev);
}

/* The end of a test: the hosts still mounted unmount cleanly (B first,
 * see fx_fini), the volume checks clean with no journal left to replay,
 * and the fixture goes. */
static void fx_finish_clean(struct fixture *fx)
{
	struct check_result r;

	fx->a.peer = NULL;
	fx->b.peer = NULL;
	if (fx->b.v != NULL) {
		ck_assert_int_eq(vol_unmount(fx->b.v), 0);
		fx->b.v = NULL;
	}
	if (fx->a.v != NULL) {
		ck_assert_int_eq(vol_unmount(fx->a.v), 0);
		fx->a.v = NULL;
	}
	fs_testcheck_clean(fx->mem, "check", &r);
	ck_assert_uint_eq(r.journals_pending, 0);
	fx_fini(fx);
}

static uint64_t file_create(struct host *h, const char *name, uint8_t byte, struct lunfs_fh **keep)
{
	static uint8_t buf[DATA_LEN];
	struct lunfs_fh *fh = NULL;
	struct lunfs_attr a;

	memset(buf, byte, sizeof(buf));
	ck_assert_int_eq(fsop_create(h->v, &cred, vol_root_ino(h->v), name, 0644, O_RDWR, &a, &fh), 0);
	ck_assert_int_eq(fsop_write(h->v, fh, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	if (keep != NULL) {
		*keep = fh;
	} else {
		ck_assert_int_eq(fsop_release(h->v, fh), 0);
		fsop_forget(h->v, a.ino, 1);
	}
	return a.ino;
}

/* name reads back as DATA_LEN bytes of `byte`; returns its ino (the lookup
 * reference is given back). */
static uint64_t file_expect(struct host *h, const char *name, uint8_t byte)
{
	static uint8_t buf[DATA_LEN];
	struct lunfs_fh *fh = NULL;
	struct lunfs_attr a;

	ck_assert_int_eq(fsop_lookup(h->v, vol_root_ino(h->v), name, &a), 0);
	ck_assert_uint_eq(a.size, DATA_LEN);
	ck_assert_int_eq(fsop_open(h->v, a.ino, O_RDONLY, &fh), 0);
	ck_assert_int_eq(fsop_read(h->v, fh, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++) {
		ck_assert_msg(buf[i] == byte, "%s: byte %zu is %#x, not %#x", name, i, buf[i], byte);
	}
	ck_assert_int_eq(fsop_release(h->v, fh), 0);
	fsop_forget(h->v, a.ino, 1);
	return a.ino;
}

static void file_overwrite(struct host *h, const char *name, uint8_t byte)
{
	static uint8_t buf[DATA_LEN];
	struct lunfs_fh *fh = NULL;
	struct lunfs_attr a;

	memset(buf, byte, sizeof(buf));
	ck_assert_int_eq(fsop_lookup(h->v, vol_root_ino(h->v), name, &a), 0);
	ck_assert_int_eq(fsop_open(h->v, a.ino, O_RDWR, &fh), 0);
	ck_assert_int_eq(fsop_write(h->v, fh, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	ck_assert_int_eq(fsop_fsync(h->v, a.ino, false), 0);
	ck_assert_int_eq(fsop_release(h->v, fh), 0);
	fsop_forget(h->v, a.ino, 1);
}

/* The I/Os that change the device (reads, flushes and compare-and-writes
 * that found another image change nothing: a fenced host's renewal is
 * such a CAW). */
static uint64_t fault_changes(struct fixture *fx)
{
	struct lunfs_fault_stats st;

	dev_fault_stats(fx->fault, &st);
	return st.writes + st.caws_applied + st.discards;
}

/* B keeps renewing and scanning while A is frozen, until A's slot (at
 * A's generation) is no longer claimed: B has recovered A. */
static void b_recovers_a(struct fixture *fx, uint32_t a_slot, uint64_t a_gen)
{
	for (unsigned step = 0; step < MAX_STEPS; step++) {
		uint64_t gen = 0;
		enum lockd_host_state st;

		host_advance(&fx->b, STEP_MS);
		host_tick(&fx->b);
		st = lockd_host_state(fx->b.v->ld, a_slot, &gen);
		if (st == LOCKD_HOST_FREE || gen != a_gen) {
			return;
		}
	}
	ck_abort_msg("B did not recover A within %u steps", MAX_STEPS);
}

/* A is frozen (mid-work: an open handle, an unlinked-open file, an
 * uncommitted create), B recovers it and changes A's file; A wakes,
 * finds itself fenced, abandons its mount without a single write, mounts
 * again as a new generation and sees B's changes; the two go on sharing
 * the volume and it checks clean. */
START_TEST(test_fenced_host_rejoins)
{
	struct fixture fx;
	struct lunfs_fh *fh_shared = NULL, *fh_gone = NULL;
	static uint8_t buf[DATA_LEN];
	struct lunfs_attr a;
	uint64_t shared_ino, fromb_ino, changes;
	uint32_t old_slot;
	uint64_t old_gen;

	fx_init(&fx);
	ck_assert_int_eq(host_mount(&fx.a), 0);
	ck_assert_int_eq(host_mount(&fx.b), 0);
	fx.a.peer = &fx.b;
	fx.b.peer = &fx.a;
	host_tick(&fx.a);
	host_tick(&fx.b);
	old_slot = vol_slot(fx.a.v);
	old_gen = vol_gen(fx.a.v);

	/* A's work: a file it keeps open for write, a file unlinked while
	 * open (an orphan of A's), a directory; all committed. Then one
	 * create that never commits. */
	shared_ino = file_create(&fx.a, "shared", 0x11, &fh_shared);
	(void)file_create(&fx.a, "gone", 0x33, &fh_gone);
	ck_assert_int_eq(fsop_mkdir(fx.a.v, &cred, vol_root_ino(fx.a.v), "dirA", 0755, &a), 0);
	fsop_forget(fx.a.v, a.ino, 1);
	ck_assert_int_eq(fsop_unlink(fx.a.v, vol_root_ino(fx.a.v), "gone"), 0);
	ck_assert_int_eq(fsop_syncfs(fx.a.v), 0);
	ck_assert_int_eq(fsop_mknod(fx.a.v, &cred, vol_root_ino(fx.a.v), "late", S_IFREG | 0644, 0, &a), 0);
	fsop_forget(fx.a.v, a.ino, 1);
	ck_assert(!vol_fenced(fx.a.v));

	/* A freezes. B judges it dead on B's clock and recovers it. */
	fx.b.peer = NULL;
	b_recovers_a(&fx, old_slot, old_gen);
	/* B takes A's file over (A's open-for-write lock died with A's
	 * generation) and rewrites it, and creates a file of its own. */
	file_overwrite(&fx.b, "shared", 0x22);
	fromb_ino = file_create(&fx.b, "fromB", 0x44, NULL);
	ck_assert_int_eq(fsop_syncfs(fx.b.v), 0);

	/* A wakes: its clock moved on (CLOCK_BOOTTIME counts the freeze), its
	 * lease has lapsed. From here on nothing it does may reach the disk. */
	host_advance(&fx.a, 10 * DEAD_MS);
	changes = fault_changes(&fx);
	memset(buf, 0x55, sizeof(buf));
	ck_assert_int_eq(fsop_write(fx.a.v, fh_shared, buf, sizeof(buf), 0), -EIO);
	ck_assert_int_lt(fsop_fsync(fx.a.v, shared_ino, false), 0);
	ck_assert_int_lt(fsop_mkdir(fx.a.v, &cred, vol_root_ino(fx.a.v), "dirA2", 0755, &a), 0);
	/* A lapsed lease alone is not a fence... */
	ck_assert(!vol_fenced(fx.a.v));
	/* ...but the first renewal finds the slot taken. */
	ck_assert_int_eq(lockd_beat(fx.a.v->ld), -EIO);
	ck_assert(vol_fenced(fx.a.v));
	ck_assert_int_eq(lockd_check_lease(fx.a.v->ld), -EIO);
	(void)lockd_monitor_scan(fx.a.v->ld);
	ck_assert_int_eq(fsop_write(fx.a.v, fh_shared, buf, sizeof(buf), 0), -EIO);
	{
		uint64_t inos[4];

		ck_assert_uint_eq(fsop_open_inos(fx.a.v, inos, 4), 2);
	}
	/* The handles are never released: vol_abandon drops them. */
	vol_abandon(fx.a.v);
	fx.a.v = NULL;
	ck_assert_uint_eq(fault_changes(&fx), changes);

	/* A joins again: a new incarnation (the old slot was freed by its
	 * recovery, so it may well be the same slot, one generation on). */
	ck_assert_int_eq(host_mount(&fx.a), 0);
	ck_assert(!vol_fenced(fx.a.v));
	ck_assert(vol_slot(fx.a.v) != old_slot || vol_gen(fx.a.v) > old_gen);
	fx.b.peer = &fx.a;

	/* The kernel still holds node ids of the old mount and forgets them
	 * later: counts this mount never handed out are clamped. */
	fsop_forget(fx.a.v, fromb_ino, 7);
	fsop_forget(fx.a.v, shared_ino, 1u << 20);

	/* Fresh data: B's bytes, B's file; A's uncommitted create and its
	 * orphan are gone, its committed directory is there. */
	ck_assert_uint_eq(file_expect(&fx.a, "shared", 0x22), shared_ino);
	ck_assert_uint_eq(file_expect(&fx.a, "fromB", 0x44), fromb_ino);
	ck_assert_int_eq(fsop_lookup(fx.a.v, vol_root_ino(fx.a.v), "late", &a), -ENOENT);
	ck_assert_int_eq(fsop_lookup(fx.a.v, vol_root_ino(fx.a.v), "gone", &a), -ENOENT);
	ck_assert_int_eq(fsop_lookup(fx.a.v, vol_root_ino(fx.a.v), "dirA", &a), 0);
	fsop_forget(fx.a.v, a.ino, 1);
	fsop_forget(fx.a.v, a.ino, 3);   /* one too many: harmless */

	/* The new A works: B sees what it creates. */
	(void)file_create(&fx.a, "fromA2", 0x66, NULL);
	ck_assert_int_eq(fsop_syncfs(fx.a.v), 0);
	(void)file_expect(&fx.b, "fromA2", 0x66);

	fx_finish_clean(&fx);
}
END_TEST

/* A's old slot is still RECOVERING when A rejoins: the slot is its
 * recoverer's, so A joins in another one, and waits at the old
 * incarnation's locks until the recovery ends. */
START_TEST(test_rejoin_while_recovering)
{
	struct fixture fx;
	struct lunfs_hb_slot s;
	uint8_t *img, *rep;
	uint32_t old_slot, ss;
	uint64_t addr;

	fx_init(&fx);
	ck_assert_int_eq(host_mount(&fx.a), 0);
	ck_assert_int_eq(host_mount(&fx.b), 0);
	host_tick(&fx.a);
	host_tick(&fx.b);
	old_slot = vol_slot(fx.a.v);
	(void)file_create(&fx.a, "a1", 0x11, NULL);
	ck_assert_int_eq(fsop_syncfs(fx.a.v), 0);

	/* B claims A's slot for recovery (as its monitor does once A is
	 * dead), and is then slow to finish it. */
	ss = vol_super(fx.b.v)->sector_size;
	addr = layout_hb_addr(vol_super(fx.b.v), old_slot);
	img = dev_buf_alloc(ss);
	rep = dev_buf_alloc(ss);
	ck_assert_ptr_nonnull(img);
	ck_assert_ptr_nonnull(rep);
	ck_assert_int_eq(dev_read(fx.mem, img, ss, addr), 0);
	ck_assert_int_eq(hb_decode(&fx.b.v->codec, img, addr, &s), 0);
	s.state = LUNFS_HB_RECOVERING;
	s.recoverer_slot = (uint16_t)(vol_slot(fx.b.v) + 1);
	s.recoverer_gen = vol_gen(fx.b.v);
	s.seq++;
	hb_encode(&fx.b.v->codec, &s, addr, rep);
	ck_assert_int_eq(dev_caw(fx.mem, addr, img, rep, NULL), 0);
	dev_buf_free(rep);
	dev_buf_free(img);

	/* A notices at its next scan, abandons, joins again. */
	(void)lockd_monitor_scan(fx.a.v->ld);
	ck_assert(vol_fenced(fx.a.v));
	vol_abandon(fx.a.v);
	fx.a.v = NULL;
	ck_assert_int_eq(host_mount(&fx.a), 0);
	ck_assert_uint_ne(vol_slot(fx.a.v), old_slot);
	ck_assert_int_eq(lockd_host_state(fx.a.v->ld, old_slot, NULL) == LOCKD_HOST_RECOVERING ||
			 lockd_host_state(fx.a.v->ld, old_slot, NULL) == LOCKD_HOST_UNKNOWN, 1);

	/* The root directory's lock is still the old incarnation's: A's
	 * lookup waits, and while it waits B finishes the recovery (its scan
	 * finds the slot RECOVERING by itself and runs the callback again). */
	fx.a.peer = &fx.b;
	(void)file_expect(&fx.a, "a1", 0x11);
	/* B's view is that of its last scan, which ran the recovery: the
	 * next one reads the slot freed. */
	fx.a.peer = NULL;
	host_tick(&fx.b);
	ck_assert_int_eq(lockd_host_state(fx.b.v->ld, old_slot, NULL), LOCKD_HOST_FREE);

	fx_finish_clean(&fx);
}
END_TEST

/* A lapsed lease (a freeze nobody acted on) re-validates by itself: the
 * mount is not fenced, writes fail only until the next good renewal. */
START_TEST(test_lapsed_lease_not_fenced)
{
	struct fixture fx;
	struct lunfs_fh *fh = NULL;
	static uint8_t buf[DATA_LEN];

	fx_init(&fx);
	ck_assert_int_eq(host_mount(&fx.a), 0);
	(void)file_create(&fx.a, "f", 0x11, &fh);
	host_advance(&fx.a, 10 * DEAD_MS);
	memset(buf, 0x22, sizeof(buf));
	ck_assert_int_eq(fsop_write(fx.a.v, fh, buf, sizeof(buf), 0), -EIO);
	ck_assert(!vol_fenced(fx.a.v));
	host_tick(&fx.a);
	ck_assert(!vol_fenced(fx.a.v));
	ck_assert_int_eq(fsop_write(fx.a.v, fh, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	ck_assert_int_eq(fsop_release(fx.a.v, fh), 0);
	fx_finish_clean(&fx);
}
END_TEST

/* vol_abandon of a mount that nobody fenced writes nothing either: to the
 * disk it is a crash, and the next mount of the same host replays. */
START_TEST(test_abandon_unfenced_writes_nothing)
{
	struct fixture fx;
	struct lunfs_fh *fh_w = NULL, *fh_gone = NULL, *fh_r = NULL;
	struct lunfs_attr a;
	uint64_t changes, ino;
	uint32_t old_slot;
	uint64_t old_gen;

	fx_init(&fx);
	ck_assert_int_eq(host_mount(&fx.a), 0);
	old_slot = vol_slot(fx.a.v);
	old_gen = vol_gen(fx.a.v);
	(void)file_create(&fx.a, "kept", 0x11, &fh_w);
	ino = file_create(&fx.a, "ro", 0x12, NULL);
	ck_assert_int_eq(fsop_open(fx.a.v, ino, O_RDONLY, &fh_r), 0);
	(void)file_create(&fx.a, "gone", 0x33, &fh_gone);
	ck_assert_int_eq(fsop_unlink(fx.a.v, vol_root_ino(fx.a.v), "gone"), 0);
	ck_assert_int_eq(fsop_syncfs(fx.a.v), 0);
	ck_assert_int_eq(fsop_mkdir(fx.a.v, &cred, vol_root_ino(fx.a.v), "uncommitted", 0755, &a), 0);

	changes = fault_changes(&fx);
	vol_abandon(fx.a.v);
	fx.a.v = NULL;
	ck_assert_uint_eq(fault_changes(&fx), changes);

	/* Same host again: its own slot back (still claimed under its
	 * identity, unchanged), a new generation, its journal replayed and
	 * its orphan reclaimed. */
	ck_assert_int_eq(host_mount(&fx.a), 0);
	ck_assert_uint_eq(vol_slot(fx.a.v), old_slot);
	ck_assert_uint_gt(vol_gen(fx.a.v), old_gen);
	(void)file_expect(&fx.a, "kept", 0x11);
	(void)file_expect(&fx.a, "ro", 0x12);
	ck_assert_int_eq(fsop_lookup(fx.a.v, vol_root_ino(fx.a.v), "gone", &a), -ENOENT);
	ck_assert_int_eq(fsop_lookup(fx.a.v, vol_root_ino(fx.a.v), "uncommitted", &a), -ENOENT);
	fx_finish_clean(&fx);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("rejoin");
	TCase *tc = tcase_create("rejoin");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_fenced_host_rejoins);
	tcase_add_test(tc, test_rejoin_while_recovering);
	tcase_add_test(tc, test_lapsed_lease_not_fenced);
	tcase_add_test(tc, test_abandon_unfenced_writes_nothing);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
