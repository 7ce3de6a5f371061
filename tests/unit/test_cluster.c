/*
 * Several hosts on one volume (fs/cluster.c, docs/DESIGN.md 5 and 6), on
 * the fixture of fs_testhosts.h: every "host" is its own vol_mount over
 * its own open of one image file on /dev/shm, with its own lockd threads
 * on the real clock, so the hosts share nothing but the disk; a test can
 * "crash" a host through its fault layer.
 *
 * No timing assertions: waits poll for a state with a generous bound.
 *
 * The whole suite runs twice, once per compare-and-write backend of the
 * volume (LOCAL, then PAXOS: vol_caw, set by main before each run and
 * inherited by every forked test), so that every multi-host case also
 * holds with Disk Paxos and delta-lease joins.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../fs/fs_internal.h"
#include "fs_testhosts.h"
#include "lunfs/dev.h"
#include "lunfs/fs.h"
#include "lunfs/lock.h"
#include "lunfs/lockd.h"
#include "lunfs/volume.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define WAIT_MAX_MS 20000u

static char img_path[FS_TESTHOSTS_PATH_LEN];
/* The backend of the volumes setup makes (main sets it per run). */
static enum lunfs_caw_backend vol_caw = LUNFS_CAW_LOCAL;

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000l };

	nanosleep(&ts, NULL);
}

static const struct lunfs_cred cred = { .uid = 0, .gid = 0, .umask = 022 };

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		buf[i] = (uint8_t)((i * 131u + seed * 7u) >> 3);
	}
}

/* Create `name` in the root and write len bytes of pattern seed. */
static uint64_t file_make(struct fs_testhost *h, const char *name, size_t len, uint32_t seed)
{
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	uint8_t *buf = malloc(len);

	ck_assert_ptr_nonnull(buf);
	fill(buf, len, seed);
	ck_assert_int_eq(fsop_create(h->v, &cred, vol_root_ino(h->v), name, 0644, O_RDWR, &a, &fh), 0);
	ck_assert_int_eq(fsop_write(h->v, fh, buf, len, 0), (ssize_t)len);
	ck_assert_int_eq(fsop_release(h->v, fh), 0);
	fsop_forget(h->v, a.ino, 1);
	free(buf);
	return a.ino;
}

static void file_append(struct fs_testhost *h, uint64_t ino, size_t len, uint32_t seed)
{
	struct lunfs_attr a;
	struct lunfs_fh *fh = NULL;
	uint8_t *buf = malloc(len);

	ck_assert_ptr_nonnull(buf);
	fill(buf, len, seed);
	ck_assert_int_eq(fsop_getattr(h->v, ino, &a), 0);
	ck_assert_int_eq(fsop_open(h->v, ino, O_RDWR, &fh), 0);
	ck_assert_int_eq(fsop_write(h->v, fh, buf, len, a.size), (ssize_t)len);
	ck_assert_int_eq(fsop_release(h->v, fh), 0);
	free(buf);
}

static void file_expect(struct fs_testhost *h, uint64_t ino, uint64_t off, size_t len, uint32_t seed)
{
	struct lunfs_fh *fh = NULL;
	uint8_t *want = malloc(len), *got = malloc(len);

	ck_assert_ptr_nonnull(want);
	ck_assert_ptr_nonnull(got);
	fill(want, len, seed);
	ck_assert_int_eq(fsop_open(h->v, ino, O_RDONLY, &fh), 0);
	ck_assert_int_eq(fsop_read(h->v, fh, got, len, off), (ssize_t)len);
	ck_assert_int_eq(fsop_release(h->v, fh), 0);
	ck_assert_msg(memcmp(want, got, len) == 0, "%s: bytes of ino %" PRIu64 " differ", h->name, ino);
	free(want);
	free(got);
}

static uint64_t lookup_ino(struct fs_testhost *h, const char *name)
{
	struct lunfs_attr a;

	ck_assert_int_eq(fsop_lookup(h->v, vol_root_ino(h->v), name, &a), 0);
	fsop_forget(h->v, a.ino, 1);
	return a.ino;
}

/* Poll until `slot` is FREE as `obs` sees it (the recovery finished). */
static bool wait_slot_free(struct fs_testhost *obs, uint32_t slot)
{
	for (unsigned ms = 0; ms < WAIT_MAX_MS; ms += 20) {
		if (lockd_host_state(obs->v->ld, slot, NULL) == LOCKD_HOST_FREE) {
			return true;
		}
		sleep_ms(20);
	}
	return false;
}

static void setup(void)
{
	fs_testhosts_img_create(img_path, "cluster", vol_caw);
}

static void teardown(void)
{
	fs_testhosts_img_remove(img_path);
}

/* ---- increment 1: cluster hand-off and recovery ------------------------------ */

/* A writes two files; B (mounted later) truncates one of them, which
 * frees blocks in A's clusters: A must hand them over. Then both keep
 * allocating, alternately; A's allocator has lost its current clusters
 * and must pick others. The bitmaps stay consistent. */
START_TEST(test_cluster_handoff)
{
	struct fs_testhost a, b;
	uint64_t fa, fb;
	struct lunfs_setattr sa = { .valid = LUNFS_SET_SIZE, .size = 0 };
	struct lunfs_attr at;

	memset(&b, 0, sizeof(b));
	fs_testhosts_mount(&a, img_path, "a");
	fa = file_make(&a, "fa", 1 * MiB, 1);
	fb = file_make(&a, "fb", 2 * MiB, 2);
	ck_assert_int_eq(fsop_syncfs(a.v), 0);
	fs_testhosts_mount(&b, img_path, "b");
	ck_assert_uint_eq(lookup_ino(&b, "fb"), fb);
	file_expect(&b, fb, 0, 2 * MiB, 2);
	/* fb's blocks and map nodes lie in clusters A holds. */
	ck_assert_int_eq(fsop_setattr(b.v, fb, &sa, &at), 0);
	ck_assert_uint_eq(at.size, 0);
	for (unsigned round = 0; round < 4; round++) {
		file_append(&b, fb, 256 * KiB, 10 + round);
		file_append(&a, fa, 256 * KiB, 20 + round);
	}
	file_expect(&a, fa, 0, 1 * MiB, 1);
	file_expect(&a, fa, 1 * MiB + 3 * 256 * KiB, 256 * KiB, 23);
	file_expect(&b, fb, 3 * 256 * KiB, 256 * KiB, 13);
	ck_assert_int_eq(fsop_syncfs(a.v), 0);
	ck_assert_int_eq(fsop_syncfs(b.v), 0);
	fs_testhosts_unmount(&b);
	fs_testhosts_unmount(&a);
	fs_testhosts_check_clean(img_path, "handoff");
}
END_TEST

/* A unlinks a file it has open (an orphan), then crashes with metadata
 * in its journal. B's monitor finds A dead, replays A's journal, reclaims
 * the orphan and frees A's slot; fsck is clean and A's other file reads
 * back on B. */
START_TEST(test_cluster_recover)
{
	struct fs_testhost a, b;
	struct lunfs_fh *fh = NULL;
	struct lunfs_attr at;
	uint64_t keep, victim;
	uint32_t aslot;

	memset(&b, 0, sizeof(b));
	fs_testhosts_mount(&a, img_path, "a");
	fs_testhosts_mount(&b, img_path, "b");
	aslot = a.v->slot;
	keep = file_make(&a, "keep", 512 * KiB, 5);
	victim = file_make(&a, "victim", 1 * MiB, 6);
	ck_assert_int_eq(fsop_open(a.v, victim, O_RDWR, &fh), 0);
	ck_assert_int_eq(fsop_unlink(a.v, vol_root_ino(a.v), "victim"), 0);
	/* Durable in A's journal (a commit writes home too, so nothing is
	 * only in the journal afterwards: the replay then changes nothing,
	 * which is also a case to cover). */
	ck_assert_int_eq(fsop_syncfs(a.v), 0);
	(void)at;
	fs_testhosts_crash(&a);
	ck_assert_msg(wait_slot_free(&b, aslot), "slot %u was not recovered", aslot);
	/* B caches nothing of A's files yet: what it reads now is the disk. */
	mc_drop_clean(b.v->mc);
	ck_assert_uint_eq(lookup_ino(&b, "keep"), keep);
	file_expect(&b, keep, 0, 512 * KiB, 5);
	fs_testhosts_unmount(&b);
	fs_testhosts_check_clean(img_path, "recover");
	fs_testhosts_drop(&a);
}
END_TEST

/* ---- increment 2: VMFS open semantics ------------------------------------------ */

/* Write-open on A excludes a write-open on B (EBUSY) and B's unlink and
 * truncate; read-only opens share; after A closes, B opens for write and
 * reads exactly A's bytes (cold migration). */
START_TEST(test_cluster_open_excl)
{
	struct fs_testhost a, b;
	struct lunfs_fh *fa = NULL, *fb = NULL, *ra = NULL, *rb = NULL;
	struct lunfs_setattr sa = { .valid = LUNFS_SET_SIZE, .size = 0 };
	struct lunfs_attr at;
	uint64_t img, base;

	memset(&b, 0, sizeof(b));
	fs_testhosts_mount(&a, img_path, "a");
	img = file_make(&a, "vm1.img", 1 * MiB, 7);
	base = file_make(&a, "base.img", 256 * KiB, 8);
	ck_assert_int_eq(fsop_syncfs(a.v), 0);
	fs_testhosts_mount(&b, img_path, "b");
	ck_assert_uint_eq(lookup_ino(&b, "vm1.img"), img);

	ck_assert_int_eq(fsop_open(a.v, img, O_RDWR, &fa), 0);
	ck_assert_int_eq(fsop_open(b.v, img, O_RDWR, &fb), -EBUSY);
	ck_assert_int_eq(fsop_open(b.v, img, O_RDONLY, &fb), -EBUSY);
	ck_assert_int_eq(fsop_unlink(b.v, vol_root_ino(b.v), "vm1.img"), -EBUSY);
	ck_assert_int_eq(fsop_setattr(b.v, img, &sa, &at), -EBUSY);
	file_append(&a, img, 128 * KiB, 9);
	ck_assert_int_eq(fsop_release(a.v, fa), 0);

	/* Read-only sharing of a base image. */
	ck_assert_int_eq(fsop_open(a.v, base, O_RDONLY, &ra), 0);
	ck_assert_int_eq(fsop_open(b.v, base, O_RDONLY, &rb), 0);
	ck_assert_int_eq(fsop_open(b.v, base, O_RDWR, &fb), -EBUSY);
	ck_assert_int_eq(fsop_release(a.v, ra), 0);
	ck_assert_int_eq(fsop_release(b.v, rb), 0);

	/* Cold migration: A closed; B opens for write and sees A's bytes. */
	ck_assert_int_eq(fsop_open(b.v, img, O_RDWR, &fb), 0);
	ck_assert_int_eq(fsop_getattr(b.v, img, &at), 0);
	ck_assert_uint_eq(at.size, 1 * MiB + 128 * KiB);
	ck_assert_int_eq(fsop_release(b.v, fb), 0);
	file_expect(&b, img, 0, 1 * MiB, 7);
	file_expect(&b, img, 1 * MiB, 128 * KiB, 9);
	/* And now A is the one refused while B writes. */
	ck_assert_int_eq(fsop_open(b.v, img, O_WRONLY, &fb), 0);
	ck_assert_int_eq(fsop_open(a.v, img, O_WRONLY, &fa), -EBUSY);
	ck_assert_int_eq(fsop_release(b.v, fb), 0);
	fs_testhosts_unmount(&b);
	fs_testhosts_unmount(&a);
	fs_testhosts_check_clean(img_path, "open_excl");
}
END_TEST

/* The mode of ino's lock record as `obs` reads it. */
static uint8_t lock_mode_on_disk(struct fs_testhost *obs, uint64_t ino)
{
	struct lunfs_lock rec;
	uint64_t addr = 0;

	ck_assert_int_eq(layout_ino_addr(&obs->v->sb, ino, &addr), 0);
	ck_assert_int_eq(lockd_read(obs->v->ld, addr, &rec), 0);
	return rec.mode;
}

/* Closing the last open on a host gives the lock up by itself (the idle
 * sweep, about an interval later), with what the host wrote home: the
 * record is free on disk without anyone asking, and B then reads A's
 * bytes. An open again before the sweep keeps the lock. */
START_TEST(test_cluster_close_releases)
{
	struct fs_testhost a, b;
	struct lunfs_fh *fa = NULL, *fb = NULL;
	uint64_t img;
	unsigned ms;

	memset(&b, 0, sizeof(b));
	fs_testhosts_mount(&a, img_path, "a");
	fs_testhosts_mount(&b, img_path, "b");
	img = file_make(&a, "vm.img", 256 * KiB, 4);
	ck_assert_int_eq(fsop_open(a.v, img, O_RDWR, &fa), 0);
	ck_assert_uint_eq(lock_mode_on_disk(&b, img), LUNFS_LOCK_EXCLUSIVE);
	file_append(&a, img, 64 * KiB, 5);
	ck_assert_int_eq(fsop_release(a.v, fa), 0);
	for (ms = 0; ms < WAIT_MAX_MS && lock_mode_on_disk(&b, img) != LUNFS_LOCK_FREE; ms += 20) {
		sleep_ms(20);
	}
	ck_assert_msg(ms < WAIT_MAX_MS, "A still holds the lock of a file it closed");
	ck_assert_int_eq(fsop_open(b.v, img, O_RDWR, &fb), 0);
	file_expect(&b, img, 0, 256 * KiB, 4);
	file_expect(&b, img, 256 * KiB, 64 * KiB, 5);
	ck_assert_int_eq(fsop_release(b.v, fb), 0);
	fs_testhosts_unmount(&b);
	fs_testhosts_unmount(&a);
	fs_testhosts_check_clean(img_path, "close_releases");
}
END_TEST

/* Many files made and closed on one host: the lock table grows past its
 * first size, files opened again before the sweep keep their locks (they
 * leave the closed list and join it again at the end), and every lock is
 * given up in the end, the oldest closes first. */
#define MANY_FILES 1500u

START_TEST(test_cluster_many_closed)
{
	struct fs_testhost a, b;
	uint64_t *ino = malloc(MANY_FILES * sizeof(*ino));
	struct lunfs_fh *keep = NULL;
	unsigned i, ms, held;

	ck_assert_ptr_nonnull(ino);
	fs_testhosts_mount(&a, img_path, "a");
	fs_testhosts_mount(&b, img_path, "b");
	for (i = 0; i < MANY_FILES; i++) {
		char name[32];

		snprintf(name, sizeof(name), "f%u", i);
		ino[i] = file_make(&a, name, 512, i);
		if (i % 100 == 50) {
			/* Open again and closed again at once: back of the list. */
			file_append(&a, ino[i - 50], 512, i);
		}
	}
	ck_assert_int_eq(fsop_open(a.v, ino[7], O_RDWR, &keep), 0);
	for (ms = 0; ms < 3 * WAIT_MAX_MS; ms += 50) {
		for (held = 0, i = 0; i < MANY_FILES; i++) {
			held += lock_mode_on_disk(&b, ino[i]) != LUNFS_LOCK_FREE;
		}
		if (held <= 1) {
			break;
		}
		sleep_ms(50);
	}
	ck_assert_msg(held == 1, "A still holds %u locks of files it closed", held - 1);
	/* The file still open keeps its lock. */
	ck_assert_uint_eq(lock_mode_on_disk(&b, ino[7]), LUNFS_LOCK_EXCLUSIVE);
	ck_assert_int_eq(fsop_release(a.v, keep), 0);
	file_expect(&b, ino[MANY_FILES - 1], 0, 512, MANY_FILES - 1);
	fs_testhosts_unmount(&b);
	fs_testhosts_unmount(&a);
	fs_testhosts_check_clean(img_path, "many_closed");
	free(ino);
}
END_TEST

/* A multi-writer file is written from two hosts at once, in place; a
 * write that would allocate is refused. */
START_TEST(test_cluster_multiwriter)
{
	struct fs_testhost a, b;
	struct lunfs_fh *fa = NULL, *fb = NULL;
	uint64_t ino;
	uint8_t buf[4096];

	memset(&b, 0, sizeof(b));
	fs_testhosts_mount(&a, img_path, "a");
	ino = file_make(&a, "shared.disk", 1 * MiB, 3);
	ck_assert_int_eq(fsop_setxattr(a.v, ino, "user.lunfs.multiwriter", "1", 1, 0), 0);
	ck_assert_int_eq(fsop_syncfs(a.v), 0);
	fs_testhosts_mount(&b, img_path, "b");
	ck_assert_int_eq(fsop_open(a.v, ino, O_RDWR, &fa), 0);
	ck_assert_int_eq(fsop_open(b.v, ino, O_RDWR, &fb), 0);
	ck_assert(fsop_fh_direct(fa));
	memset(buf, 0xaa, sizeof(buf));
	ck_assert_int_eq(fsop_write(a.v, fa, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	memset(buf, 0xbb, sizeof(buf));
	ck_assert_int_eq(fsop_write(b.v, fb, buf, sizeof(buf), 512 * KiB), (ssize_t)sizeof(buf));
	ck_assert_int_eq(fsop_write(b.v, fb, buf, sizeof(buf), 1 * MiB), -EINVAL);
	ck_assert_int_eq(fsop_read(a.v, fa, buf, sizeof(buf), 512 * KiB), (ssize_t)sizeof(buf));
	ck_assert_uint_eq(buf[0], 0xbb);
	ck_assert_int_eq(fsop_release(a.v, fa), 0);
	ck_assert_int_eq(fsop_release(b.v, fb), 0);
	fs_testhosts_unmount(&b);
	fs_testhosts_unmount(&a);
	fs_testhosts_check_clean(img_path, "multiwriter");
}
END_TEST

/* A crashes with a file open for write; once B has recovered A, B opens
 * it for write. */
START_TEST(test_cluster_takeover)
{
	struct fs_testhost a, b;
	struct lunfs_fh *fa = NULL, *fb = NULL;
	uint64_t ino;
	uint32_t aslot;

	memset(&b, 0, sizeof(b));
	fs_testhosts_mount(&a, img_path, "a");
	fs_testhosts_mount(&b, img_path, "b");
	aslot = a.v->slot;
	ino = file_make(&a, "vm2.img", 512 * KiB, 4);
	ck_assert_int_eq(fsop_open(a.v, ino, O_RDWR, &fa), 0);
	ck_assert_int_eq(fsop_syncfs(a.v), 0);
	mc_drop_clean(b.v->mc);
	ck_assert_uint_eq(lookup_ino(&b, "vm2.img"), ino);
	ck_assert_int_eq(fsop_open(b.v, ino, O_RDWR, &fb), -EBUSY);
	fs_testhosts_crash(&a);
	ck_assert_msg(wait_slot_free(&b, aslot), "slot %u was not recovered", aslot);
	ck_assert_int_eq(fsop_open(b.v, ino, O_RDWR, &fb), 0);
	file_expect(&b, ino, 0, 512 * KiB, 4);
	ck_assert_int_eq(fsop_release(b.v, fb), 0);
	fs_testhosts_unmount(&b);
	fs_testhosts_check_clean(img_path, "takeover");
	fs_testhosts_drop(&a);
}
END_TEST

/* ---- increment 3: shared directories and attributes ---------------------------- */

/* Names of one directory, collected by readdir (without "." and ".."). */
struct names {
	char (*name)[32];
	unsigned n, cap;
};

static int names_fill(void *arg, const char *name, const struct lunfs_attr *attr, uint64_t next)
{
	struct names *ns = arg;

	(void)attr;
	(void)next;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		return 0;
	}
	if (ns->n < ns->cap) {
		snprintf(ns->name[ns->n], sizeof(ns->name[0]), "%s", name);
	}
	ns->n++;
	return 0;
}

static bool names_has(const struct names *ns, const char *name)
{
	for (unsigned i = 0; i < ns->n && i < ns->cap; i++) {
		if (strcmp(ns->name[i], name) == 0) {
			return true;
		}
	}
	return false;
}

/* List dir on h (readdirplus with plus: the lookup references it takes
 * are given back). */
static void dir_list(struct fs_testhost *h, uint64_t dir, bool plus, struct names *ns)
{
	ns->n = 0;
	ck_assert_int_eq(fsop_readdir(h->v, dir, 0, plus, names_fill, ns), 0);
	if (plus) {
		for (unsigned i = 0; i < ns->n && i < ns->cap; i++) {
			struct lunfs_attr a;

			ck_assert_int_eq(fsop_lookup(h->v, dir, ns->name[i], &a), 0);
			/* the readdirplus reference and this one */
			fsop_forget(h->v, a.ino, 2);
		}
	}
}

static uint64_t lookup_in(struct fs_testhost *h, uint64_t dir, const char *name, int want)
{
	struct lunfs_attr a;
	int err = fsop_lookup(h->v, dir, name, &a);

	ck_assert_msg(err == want, "%s: lookup %s: %d, want %d", h->name, name, err, want);
	if (err < 0) {
		return 0;
	}
	fsop_forget(h->v, a.ino, 1);
	return a.ino;
}

static uint64_t mkdir_in(struct fs_testhost *h, uint64_t dir, const char *name)
{
	struct lunfs_attr a;

	ck_assert_int_eq(fsop_mkdir(h->v, &cred, dir, name, 0755, &a), 0);
	fsop_forget(h->v, a.ino, 1);
	return a.ino;
}

static void mknod_in(struct fs_testhost *h, uint64_t dir, const char *name)
{
	struct lunfs_attr a;
	int err = fsop_mknod(h->v, &cred, dir, name, S_IFREG | 0644, 0, &a);

	ck_assert_msg(err == 0, "%s: mknod %s: %d", h->name, name, err);
	fsop_forget(h->v, a.ino, 1);
}

/* A fills a directory; B lists it, renames and unlinks in it; A sees the
 * change by lookup, readdir and the directory's attributes. Then a
 * directory A created is moved by B to another parent, and a directory B
 * emptied is removed by A. fsck is clean. */
START_TEST(test_cluster_dir_coherent)
{
	struct fs_testhost a, b;
	struct names ns = { .cap = 64 };
	struct lunfs_attr at;
	uint64_t ra, rb, d, src, sub, dst, e;
	char nm[32];

	memset(&b, 0, sizeof(b));
	ns.name = calloc(ns.cap, sizeof(ns.name[0]));
	ck_assert_ptr_nonnull(ns.name);
	fs_testhosts_mount(&a, img_path, "a");
	fs_testhosts_mount(&b, img_path, "b");
	ra = vol_root_ino(a.v);
	rb = vol_root_ino(b.v);
	d = mkdir_in(&a, ra, "d");
	for (unsigned i = 0; i < 10; i++) {
		snprintf(nm, sizeof(nm), "f%u", i);
		mknod_in(&a, d, nm);
	}
	/* B learns of them only through the directory's lock: A hands it
	 * over after writing everything home. */
	ck_assert_uint_eq(lookup_in(&b, rb, "d", 0), d);
	dir_list(&b, d, false, &ns);
	ck_assert_uint_eq(ns.n, 10);
	ck_assert(names_has(&ns, "f0") && names_has(&ns, "f9"));
	dir_list(&b, d, true, &ns);
	ck_assert_uint_eq(ns.n, 10);

	ck_assert_int_eq(fsop_rename(b.v, d, "f0", d, "g0", 0), 0);
	ck_assert_int_eq(fsop_unlink(b.v, d, "f1"), 0);
	(void)lookup_in(&a, d, "f0", -ENOENT);
	(void)lookup_in(&a, d, "f1", -ENOENT);
	(void)lookup_in(&a, d, "g0", 0);
	dir_list(&a, d, false, &ns);
	ck_assert_uint_eq(ns.n, 9);
	ck_assert(names_has(&ns, "g0") && !names_has(&ns, "f0") && !names_has(&ns, "f1"));
	/* A creates again where B changed things: no stale blocks. */
	mknod_in(&a, d, "h0");
	dir_list(&b, d, false, &ns);
	ck_assert_uint_eq(ns.n, 10);
	ck_assert(names_has(&ns, "h0"));

	/* VMFS: a file open for write on A is neither unlinked nor
	 * renamed over by B. */
	{
		struct lunfs_fh *fh = NULL;
		uint64_t g0 = lookup_in(&a, d, "g0", 0);

		ck_assert_int_eq(fsop_open(a.v, g0, O_RDWR, &fh), 0);
		ck_assert_int_eq(fsop_unlink(b.v, d, "g0"), -EBUSY);
		ck_assert_int_eq(fsop_rename(b.v, d, "h0", d, "g0", 0), -EBUSY);
		ck_assert_int_eq(fsop_release(a.v, fh), 0);
		ck_assert_int_eq(fsop_rename(b.v, d, "h0", d, "g0", 0), 0);
		(void)lookup_in(&a, d, "h0", -ENOENT);
		mknod_in(&a, d, "h0");
	}

	/* Cross-directory rename by B of a directory A created. */
	src = mkdir_in(&a, ra, "src");
	dst = mkdir_in(&a, ra, "dst");
	sub = mkdir_in(&a, src, "sub");
	mknod_in(&a, sub, "inner");
	ck_assert_int_eq(fsop_rename(b.v, src, "sub", dst, "moved", 0), 0);
	(void)lookup_in(&a, src, "sub", -ENOENT);
	ck_assert_uint_eq(lookup_in(&a, dst, "moved", 0), sub);
	(void)lookup_in(&a, sub, "inner", 0);
	ck_assert_uint_eq(lookup_in(&a, sub, "..", 0), dst);
	ck_assert_int_eq(fsop_getattr(a.v, src, &at), 0);
	ck_assert_uint_eq(at.nlink, 2);
	ck_assert_int_eq(fsop_getattr(a.v, dst, &at), 0);
	ck_assert_uint_eq(at.nlink, 3);

	/* rmdir by A of a directory B emptied. */
	e = mkdir_in(&b, rb, "e");
	mknod_in(&b, e, "x");
	ck_assert_int_eq(fsop_rmdir(a.v, ra, "e"), -ENOTEMPTY);
	ck_assert_int_eq(fsop_unlink(b.v, e, "x"), 0);
	ck_assert_int_eq(fsop_rmdir(a.v, ra, "e"), 0);
	(void)lookup_in(&b, rb, "e", -ENOENT);
	ck_assert_int_eq(fsop_getattr(b.v, e, &at), -ENOENT);

	/* Attributes: A changes a mode, B sees it. */
	ck_assert_int_eq(fsop_getattr(b.v, d, &at), 0);
	{
		struct lunfs_setattr sa = { .valid = LUNFS_SET_MODE, .mode = 0700 };

		ck_assert_int_eq(fsop_setattr(a.v, d, &sa, &at), 0);
	}
	ck_assert_int_eq(fsop_getattr(b.v, d, &at), 0);
	ck_assert_uint_eq(at.mode & 07777, 0700);

	fs_testhosts_unmount(&b);
	fs_testhosts_unmount(&a);
	fs_testhosts_check_clean(img_path, "dir_coherent");
	free(ns.name);
}
END_TEST

#define CONC_NAMES 200u

struct conc_arg {
	struct fs_testhost *h;
	uint64_t dir;
	int err;
};

static void *conc_create(void *p)
{
	struct conc_arg *ca = p;
	char nm[32];

	for (unsigned i = 0; i < CONC_NAMES && ca->err == 0; i++) {
		struct lunfs_attr a;
		int err;

		snprintf(nm, sizeof(nm), "%s-%u", ca->h->name, i);
		err = fsop_mknod(ca->h->v, &cred, ca->dir, nm, S_IFREG | 0644, 0, &a);
		if (err < 0) {
			ca->err = err;
			fprintf(stderr, "%s: mknod %s: %d\n", ca->h->name, nm, err);
			break;
		}
		fsop_forget(ca->h->v, a.ino, 1);
	}
	return NULL;
}

/* Both hosts create 200 names each in one directory at the same time;
 * both then list all 400, and fsck is clean. */
START_TEST(test_cluster_dir_concurrent)
{
	struct fs_testhost a, b;
	struct names ns = { .cap = 2 * CONC_NAMES + 8 };
	struct conc_arg ca, cb;
	pthread_t ta, tb;
	uint64_t d;
	char nm[32];

	memset(&b, 0, sizeof(b));
	ns.name = calloc(ns.cap, sizeof(ns.name[0]));
	ck_assert_ptr_nonnull(ns.name);
	fs_testhosts_mount(&a, img_path, "a");
	fs_testhosts_mount(&b, img_path, "b");
	d = mkdir_in(&a, vol_root_ino(a.v), "shared");
	ck_assert_uint_eq(lookup_in(&b, vol_root_ino(b.v), "shared", 0), d);
	ca = (struct conc_arg){ .h = &a, .dir = d };
	cb = (struct conc_arg){ .h = &b, .dir = d };
	ck_assert_int_eq(pthread_create(&ta, NULL, conc_create, &ca), 0);
	ck_assert_int_eq(pthread_create(&tb, NULL, conc_create, &cb), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	ck_assert_int_eq(ca.err, 0);
	ck_assert_int_eq(cb.err, 0);
	dir_list(&a, d, false, &ns);
	ck_assert_uint_eq(ns.n, 2 * CONC_NAMES);
	dir_list(&b, d, true, &ns);
	ck_assert_uint_eq(ns.n, 2 * CONC_NAMES);
	for (unsigned i = 0; i < CONC_NAMES; i++) {
		snprintf(nm, sizeof(nm), "a-%u", i);
		ck_assert_msg(names_has(&ns, nm), "%s missing on b", nm);
		snprintf(nm, sizeof(nm), "b-%u", i);
		ck_assert_msg(names_has(&ns, nm), "%s missing on b", nm);
	}
	fs_testhosts_unmount(&b);
	fs_testhosts_unmount(&a);
	fs_testhosts_check_clean(img_path, "dir_concurrent");
	free(ns.name);
}
END_TEST

/* Two hosts move directories into each other's subtrees at the same
 * moment: r1/P -> r2/Q/q1/P on one, r2/Q -> r1/P/p1/Q on the other.
 * Their inode lock sets are disjoint, so without the volume's rename lock
 * both ancestor walks passed and P and Q ended in a cycle cut off from the
 * root. Now at most one move succeeds in each round (the other is EINVAL:
 * into its own subtree), and fsck is clean. */
struct move_arg {
	struct fs_testhost *h;
	pthread_barrier_t *go;
	uint64_t from, to;
	const char *name;
	int err;
};

static void *move_dir(void *p)
{
	struct move_arg *m = p;

	pthread_barrier_wait(m->go);
	m->err = fsop_rename(m->h->v, m->from, m->name, m->to, m->name, 0);
	return NULL;
}

#define MOVE_ROUNDS 6u
START_TEST(test_cluster_cross_moves)
{
	struct fs_testhost a, b;
	pthread_barrier_t go;
	uint64_t r1, r2, P, Q, p1, q1;
	unsigned wins_a = 0, wins_b = 0;

	memset(&b, 0, sizeof(b));
	fs_testhosts_mount(&a, img_path, "a");
	fs_testhosts_mount(&b, img_path, "b");
	r1 = mkdir_in(&a, vol_root_ino(a.v), "r1");
	r2 = mkdir_in(&a, vol_root_ino(a.v), "r2");
	P = mkdir_in(&a, r1, "P");
	Q = mkdir_in(&a, r2, "Q");
	p1 = mkdir_in(&a, P, "p1");
	q1 = mkdir_in(&a, Q, "q1");
	ck_assert_int_eq(pthread_barrier_init(&go, NULL, 2), 0);
	for (unsigned round = 0; round < MOVE_ROUNDS; round++) {
		struct move_arg ma = { .h = &a, .go = &go, .from = r1, .to = q1, .name = "P" };
		struct move_arg mb = { .h = &b, .go = &go, .from = r2, .to = p1, .name = "Q" };
		pthread_t ta, tb;

		ck_assert_int_eq(pthread_create(&ta, NULL, move_dir, &ma), 0);
		ck_assert_int_eq(pthread_create(&tb, NULL, move_dir, &mb), 0);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		ck_assert_msg(!(ma.err == 0 && mb.err == 0), "round %u: both moves succeeded", round);
		ck_assert(ma.err == 0 || ma.err == -EINVAL);
		ck_assert(mb.err == 0 || mb.err == -EINVAL);
		/* Put the tree back for the next round. */
		if (ma.err == 0) {
			wins_a++;
			ck_assert_int_eq(fsop_rename(a.v, q1, "P", r1, "P", 0), 0);
		} else if (mb.err == 0) {
			wins_b++;
			ck_assert_int_eq(fsop_rename(b.v, p1, "Q", r2, "Q", 0), 0);
		}
	}
	pthread_barrier_destroy(&go);
	ck_assert_uint_eq(wins_a + wins_b, MOVE_ROUNDS);
	fs_testhosts_unmount(&b);
	fs_testhosts_unmount(&a);
	fs_testhosts_check_clean(img_path, "cross_moves");
}
END_TEST

static Suite *cluster_suite(void)
{
	Suite *s = suite_create(vol_caw == LUNFS_CAW_PAXOS ? "cluster (paxos)" : "cluster (local)");
	TCase *tc = tcase_create("increment1");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_cluster_handoff);
	tcase_add_test(tc, test_cluster_recover);
	suite_add_tcase(s, tc);
	tc = tcase_create("increment2");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_cluster_open_excl);
	tcase_add_test(tc, test_cluster_multiwriter);
	tcase_add_test(tc, test_cluster_takeover);
	tcase_add_test(tc, test_cluster_close_releases);
	tcase_add_test(tc, test_cluster_many_closed);
	suite_add_tcase(s, tc);
	tc = tcase_create("increment3");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_cluster_dir_coherent);
	tcase_add_test(tc, test_cluster_dir_concurrent);
	tcase_add_test(tc, test_cluster_cross_moves);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	static const enum lunfs_caw_backend backends[] = { LUNFS_CAW_LOCAL, LUNFS_CAW_PAXOS };
	int failed = 0;

	for (size_t b = 0; b < sizeof(backends) / sizeof(backends[0]); b++) {
		SRunner *sr;

		vol_caw = backends[b];
		sr = srunner_create(cluster_suite());
		srunner_run_all(sr, CK_NORMAL);
		failed += srunner_ntests_failed(sr);
		srunner_free(sr);
	}
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
