/*
 * THE power-loss acceptance test: cut the power at every kind of instant
 * of a metadata-heavy workload, replay, and demand a consistent volume
 * that still holds every byte that was fsynced.
 *
 * Method (littlefs's emulated power cut, on our fault device):
 *   1. a reference run of the deterministic workload on dev_fault over
 *      dev_mem counts the writes W (plain writes and CAWs) from just
 *      before mount to just after unmount;
 *   2. for each crash point N spread over [1, W] and each seed: format a
 *      fresh device, arm crash_after(N), mount and run the workload (it
 *      stops at the first error, which is the power cut), "unmount" (all
 *      I/O fails, memory is freed), power_cycle(seed): seed 0 drops every
 *      unflushed write, a nonzero seed keeps, tears or drops each one at
 *      random, so torn and reordered writes happen;
 *   3. vol_mount must succeed (journal replay, orphan recovery), every
 *      file whose fsync returned 0 must be there, whole, with its xattr;
 *      the namespace must be coherent (every entry resolves, link counts
 *      match the entries, every directory's ".." is its parent); after a
 *      clean unmount the offline checker (check_run, fs/check.c, which
 *      reads everything through the codecs: maps vs bitmaps, no block used
 *      twice, units_free vs bitmaps, inode records, directories) must
 *      find nothing.
 * A failure prints the seed and the crash point, which reproduce it.
 *
 * The workload only ever leaves fsynced files alone after their fsync
 * (never renamed, rewritten or unlinked), so "the fsynced state or any
 * later one" is exactly "the fsynced content": the model stays trivial
 * while everything around those files changes (renames, links, unlinks,
 * truncates, xattrs, directory moves, unlink of an open file).
 *
 * LUNFS_SOAK=1 runs every crash point for more seeds (make soak).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lunfs/check.h"
#include "lunfs/dev.h"
#include "lunfs/fs.h"
#include "lunfs/lockd.h"
#include "lunfs/volume.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define VOL_SIZE (64 * MiB)
#define FBS (64 * KiB)

#define NDIRS 3
#define NFILES 24
#define DEFAULT_POINTS_PER_SEED 260u
#define DEFAULT_SEEDS 4u
#define SOAK_SEEDS 16u

static const struct lunfs_cred cred0 = { .uid = 0, .gid = 0, .umask = 022 };

struct tclock {
	uint64_t now;
};

static uint64_t tclock_now(void *arg)
{
	return ((struct tclock *)arg)->now;
}

static void tclock_sleep(void *arg, uint64_t ns)
{
	((struct tclock *)arg)->now += ns;
}

/* One run: a device, its fault layer, maybe a mounted volume. */
struct run {
	struct lunfs_dev *dev;
	struct lunfs_fault *fault;
	struct lunfs_vol *v;
	struct tclock clk;
	struct lockd_clock lc;
	/* the model: files whose fsync returned 0 */
	bool durable[NFILES];
	char msg[512];             /* the first failure, for the report */
};

static int run_open(struct run *r)
{
	struct lunfs_dev *mem;
	struct lunfs_vol_create_opts o;
	const char *why = NULL;
	int err;

	memset(r, 0, sizeof(*r));
	r->clk.now = 1000000000000ull;
	r->lc.now_ns = tclock_now;
	r->lc.sleep_ns = tclock_sleep;
	r->lc.arg = &r->clk;
	err = dev_mem_open(VOL_SIZE, 512, &mem);
	if (err < 0) {
		return err;
	}
	err = dev_fault_open(mem, &r->dev, &r->fault);
	if (err < 0) {
		return err;
	}
	memset(&o, 0, sizeof(o));
	o.layout.file_block_size = FBS;
	o.layout.max_hosts = 4;
	o.layout.journal_size = 1 * MiB;
	o.layout.paxos_instances = 4;
	o.label = "powerloss";
	o.now_ns = 1700000000000000000ull;
	o.uuid[0] = 0x5a; /* fixed: the same image every run */
	o.uuid[6] = 0x40;
	o.uuid[8] = 0x80;
	o.why = &why;
	err = vol_create(r->dev, &o, NULL, NULL, NULL);
	if (err < 0) {
		return err;
	}
	return dev_flush(r->dev);
}

static int run_mount(struct run *r)
{
	struct lunfs_mount_opts o;
	const char *why = NULL;
	int err;

	memset(&o, 0, sizeof(o));
	o.host_name = "powerloss-host";
	o.no_hb_thread = true;
	o.commit_interval_ms = 3600u * 1000u; /* no timer commits: determinism */
	o.cache_bytes = 8 * MiB;
	o.clock = &r->lc;
	o.why = &why;
	err = vol_mount(r->dev, &o, &r->v);
	if (err < 0) {
		r->v = NULL;
		snprintf(r->msg, sizeof(r->msg), "vol_mount: %d (%s)", err, why ? why : "?");
	}
	return err;
}

static void run_close(struct run *r)
{
	if (r->v != NULL) {
		(void)vol_unmount(r->v);
		r->v = NULL;
	}
	if (r->dev != NULL) {
		dev_close(r->dev);
		r->dev = NULL;
	}
}

static uint64_t run_writes(struct run *r)
{
	struct lunfs_fault_stats st;

	dev_fault_stats(r->fault, &st);
	return st.writes + st.caws;
}

/* ---- the workload ------------------------------------------------------------ */

static void pattern(uint8_t *buf, size_t len, uint64_t off, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (off + i) * 2654435761u + seed * 40503u;

		buf[i] = (uint8_t)(x ^ (x >> 11));
	}
}

static uint64_t file_size(unsigned i)
{
	return (uint64_t)(i % 4 + 1) * FBS / 2 + i * 37u;
}

static bool file_is_durable_kind(unsigned i)
{
	return i % 3 == 0;
}

#define TRY(expr)                                                                             \
	do {                                                                                  \
		int try_err_ = (int)(expr);                                                   \
		if (try_err_ < 0) {                                                           \
			return try_err_;                                                      \
		}                                                                             \
	} while (0)

static int wl_write(struct lunfs_vol *v, struct lunfs_fh *fh, uint64_t off, size_t len, uint32_t seed)
{
	uint8_t *buf = malloc(len);
	ssize_t n;

	if (buf == NULL) {
		return -ENOMEM;
	}
	pattern(buf, len, off, seed);
	n = fsop_write(v, fh, buf, len, off);
	free(buf);
	if (n < 0) {
		return (int)n;
	}
	return n == (ssize_t)len ? 0 : -EIO;
}

static int wl_lookup(struct lunfs_vol *v, uint64_t dir, const char *name, uint64_t *ino)
{
	struct lunfs_attr a;
	int err = fsop_lookup(v, dir, name, &a);

	if (err == 0) {
		*ino = a.ino;
		fsop_forget(v, a.ino, 1);
	}
	return err;
}

/* Deterministic: the same calls in the same order every run. Stops at the
 * first error (after a power cut every I/O fails). */
static int workload(struct run *r)
{
	struct lunfs_vol *v = r->v;
	uint64_t root = vol_root_ino(v), dirs[NDIRS], ino;
	struct lunfs_fh *held = NULL;
	struct lunfs_attr a;
	char name[32], name2[32];
	int err = 0;

	for (unsigned d = 0; d < NDIRS; d++) {
		snprintf(name, sizeof(name), "d%u", d);
		TRY(fsop_mkdir(v, &cred0, root, name, 0755, &a));
		fsop_forget(v, a.ino, 1);
		dirs[d] = a.ino;
	}
	for (unsigned i = 0; i < NFILES && err == 0; i++) {
		uint64_t dir = dirs[i % NDIRS], size = file_size(i), half = size / 2;
		struct lunfs_fh *fh = NULL;
		char val[16];

		snprintf(name, sizeof(name), "f%02u", i);
		TRY(fsop_create(v, &cred0, dir, name, 0644, O_RDWR, &a, &fh));
		fsop_forget(v, a.ino, 1);
		ino = a.ino;
		err = wl_write(v, fh, 0, half, i);
		if (err == 0) {
			err = wl_write(v, fh, half, size - half, i);
		}
		if (err == 0 && file_is_durable_kind(i)) {
			snprintf(val, sizeof(val), "v%u", i);
			err = fsop_setxattr(v, ino, "user.k", val, strlen(val), 0);
			if (err == 0) {
				err = fsop_fsync(v, ino, i % 2 == 0);
			}
			if (err == 0) {
				r->durable[i] = true;
			}
		}
		if (err == 0 && i % 3 == 1) {
			/* a hard link elsewhere, then shrink the file */
			struct lunfs_setattr sa = { .valid = LUNFS_SET_SIZE, .size = half / 3 };

			snprintf(name2, sizeof(name2), "l%02u", i);
			err = fsop_link(v, ino, dirs[(i + 1) % NDIRS], name2, &a);
			if (err == 0) {
				fsop_forget(v, ino, 1);
				err = fsop_setattr(v, ino, &sa, NULL);
			}
		}
		if (err == 0 && i % 3 == 2) {
			/* move it, tag it, and drop an earlier mutable file */
			snprintf(name2, sizeof(name2), "r%02u", i);
			err = fsop_rename(v, dir, name, dirs[(i + 2) % NDIRS], name2, 0);
			if (err == 0) {
				err = fsop_setxattr(v, ino, "user.moved", "1", 1, 0);
			}
			if (err == 0 && i >= 3) {
				snprintf(name2, sizeof(name2), "l%02u", i - 1);
				err = fsop_unlink(v, dirs[i % NDIRS], name2);
			}
		}
		if (err == 0 && i % 5 == 4) {
			/* a subdirectory with a file, moved between directories, emptied, removed */
			uint64_t sub;

			snprintf(name2, sizeof(name2), "s%02u", i);
			err = fsop_mkdir(v, &cred0, dir, name2, 0700, &a);
			if (err == 0) {
				fsop_forget(v, a.ino, 1);
				sub = a.ino;
				err = fsop_mknod(v, &cred0, sub, "node", S_IFIFO | 0600, 0, &a);
			}
			if (err == 0) {
				fsop_forget(v, a.ino, 1);
				err = fsop_rename(v, dir, name2, dirs[(i + 1) % NDIRS], name2, 0);
			}
			if (err == 0 && i % 2 == 0) {
				err = fsop_unlink(v, sub, "node");
				if (err == 0) {
					err = fsop_rmdir(v, dirs[(i + 1) % NDIRS], name2);
				}
			}
		}
		if (err == 0 && i % 7 == 3) {
			/* unlink while open: keep writing to it, release later */
			if (held != NULL) {
				err = fsop_release(v, held);
				held = NULL;
			}
			snprintf(name2, sizeof(name2), "tmp%02u", i);
			if (err == 0) {
				err = fsop_create(v, &cred0, dir, name2, 0600, O_RDWR, &a, &held);
			}
			if (err == 0) {
				fsop_forget(v, a.ino, 1);
				err = wl_write(v, held, 0, FBS + 100, 99);
			}
			if (err == 0) {
				err = fsop_unlink(v, dir, name2);
			}
			if (err == 0) {
				err = wl_write(v, held, FBS, 2 * FBS, 98);
			}
		}
		if (fh != NULL) {
			int e = fsop_release(v, fh);

			err = err < 0 ? err : e;
		}
		if (err == 0 && i % 8 == 7) {
			err = fsop_syncfs(v);
		}
	}
	if (held != NULL) {
		int e = fsop_release(v, held);

		err = err < 0 ? err : e;
	}
	if (err == 0) {
		/* a symlink and an exchange at the end */
		err = fsop_symlink(v, &cred0, dirs[0], "link", "../d1/f01", &a);
		if (err == 0) {
			fsop_forget(v, a.ino, 1);
			err = fsop_rename(v, dirs[1], "f01", dirs[2], "s19", RENAME_EXCHANGE);
		}
	}
	(void)wl_lookup;
	return err;
}

/* ---- verification -------------------------------------------------------------- */

static int verify_durable(struct run *r)
{
	struct lunfs_vol *v = r->v;
	uint64_t root = vol_root_ino(v);
	char name[32], val[16], got[16];
	int err;

	for (unsigned i = 0; i < NFILES; i++) {
		uint64_t dir, ino = 0, size = file_size(i);
		struct lunfs_attr a;
		struct lunfs_fh *fh = NULL;
		uint8_t *buf, *want;
		ssize_t n;

		if (!r->durable[i]) {
			continue;
		}
		snprintf(name, sizeof(name), "d%u", i % NDIRS);
		err = wl_lookup(v, root, name, &dir);
		if (err == 0) {
			snprintf(name, sizeof(name), "f%02u", i);
			err = wl_lookup(v, dir, name, &ino);
		}
		if (err < 0) {
			snprintf(r->msg, sizeof(r->msg), "fsynced file %u: lookup %d", i, err);
			return -1;
		}
		err = fsop_getattr(v, ino, &a);
		if (err < 0 || a.size != size) {
			snprintf(r->msg, sizeof(r->msg), "fsynced file %u: getattr %d size %" PRIu64
				 " want %" PRIu64, i, err, a.size, size);
			return -1;
		}
		buf = malloc(size);
		want = malloc(size);
		if (buf == NULL || want == NULL) {
			free(buf);
			free(want);
			return -ENOMEM;
		}
		pattern(want, size, 0, i);
		err = fsop_open(v, ino, O_RDONLY, &fh);
		n = err < 0 ? err : fsop_read(v, fh, buf, size, 0);
		if (fh != NULL) {
			(void)fsop_release(v, fh);
		}
		if (n != (ssize_t)size || memcmp(buf, want, size) != 0) {
			snprintf(r->msg, sizeof(r->msg), "fsynced file %u: read %zd, content %s", i, n,
				 n == (ssize_t)size ? "differs" : "short");
			free(buf);
			free(want);
			return -1;
		}
		free(buf);
		free(want);
		snprintf(val, sizeof(val), "v%u", i);
		n = fsop_getxattr(v, ino, "user.k", got, sizeof(got));
		if (n != (ssize_t)strlen(val) || memcmp(got, val, (size_t)n) != 0) {
			snprintf(r->msg, sizeof(r->msg), "fsynced file %u: xattr %zd", i, n);
			return -1;
		}
	}
	return 0;
}

/* The namespace through the fsop API: every entry resolves, every
 * directory's ".." is the directory it was found in, and link counts
 * match what the walk saw. */
#define WALK_MAX 512

struct walk {
	struct run *r;
	uint64_t ino[WALK_MAX];
	uint32_t seen[WALK_MAX];     /* entries naming it */
	uint32_t subdirs[WALK_MAX];  /* for directories */
	uint32_t nlink[WALK_MAX];
	bool is_dir[WALK_MAX];
	unsigned n;
	int err;
	/* entries of the directory being listed */
	char names[WALK_MAX][32];
	unsigned nnames;
};

static int walk_slot(struct walk *w, uint64_t ino)
{
	for (unsigned i = 0; i < w->n; i++) {
		if (w->ino[i] == ino) {
			return (int)i;
		}
	}
	if (w->n == WALK_MAX) {
		return -1;
	}
	w->ino[w->n] = ino;
	return (int)w->n++;
}

static int walk_fill(void *arg, const char *name, const struct lunfs_attr *attr, uint64_t next)
{
	struct walk *w = arg;

	(void)attr;
	(void)next;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		return 0;
	}
	if (w->nnames == WALK_MAX || strlen(name) >= sizeof(w->names[0])) {
		w->err = -E2BIG;
		return 1;
	}
	strcpy(w->names[w->nnames++], name);
	return 0;
}

static int walk_dir(struct walk *w, uint64_t dir, unsigned depth)
{
	struct lunfs_vol *v = w->r->v;
	char (*names)[32];
	unsigned count;
	int err, ds = walk_slot(w, dir);

	if (ds < 0 || depth > 16) {
		snprintf(w->r->msg, sizeof(w->r->msg), "walk: too many inodes or too deep");
		return -1;
	}
	w->nnames = 0;
	w->err = 0;
	err = fsop_readdir(v, dir, 0, false, walk_fill, w);
	if (err < 0 || w->err < 0) {
		snprintf(w->r->msg, sizeof(w->r->msg), "walk: readdir of %" PRIu64 ": %d/%d", dir, err,
			 w->err);
		return -1;
	}
	count = w->nnames;
	names = malloc(sizeof(*names) * (count + 1));
	if (names == NULL) {
		return -ENOMEM;
	}
	memcpy(names, w->names, sizeof(*names) * count);
	for (unsigned k = 0; k < count; k++) {
		struct lunfs_attr a;
		int s;

		err = fsop_lookup(v, dir, names[k], &a);
		if (err < 0) {
			snprintf(w->r->msg, sizeof(w->r->msg), "walk: entry %s of %" PRIu64 ": lookup %d",
				 names[k], dir, err);
			free(names);
			return -1;
		}
		fsop_forget(v, a.ino, 1);
		s = walk_slot(w, a.ino);
		if (s < 0) {
			free(names);
			return -1;
		}
		w->seen[s]++;
		w->nlink[s] = a.nlink;
		if (S_ISDIR(a.mode)) {
			uint64_t parent = 0;

			w->is_dir[s] = true;
			w->subdirs[ds]++;
			if (w->seen[s] > 1) {
				snprintf(w->r->msg, sizeof(w->r->msg), "walk: directory %" PRIu64
					 " has two names", a.ino);
				free(names);
				return -1;
			}
			if (wl_lookup(v, a.ino, "..", &parent) < 0 || parent != dir) {
				snprintf(w->r->msg, sizeof(w->r->msg), "walk: %" PRIu64 "/.. is %" PRIu64
					 ", found in %" PRIu64, a.ino, parent, dir);
				free(names);
				return -1;
			}
			if (walk_dir(w, a.ino, depth + 1) < 0) {
				free(names);
				return -1;
			}
		}
	}
	free(names);
	return 0;
}

static int verify_namespace(struct run *r)
{
	struct walk *w = calloc(1, sizeof(*w));
	uint64_t root = vol_root_ino(r->v);
	struct lunfs_attr ra;
	int ret = 0;

	if (w == NULL) {
		return -ENOMEM;
	}
	w->r = r;
	if (walk_dir(w, root, 0) < 0) {
		free(w);
		return -1;
	}
	(void)fsop_getattr(r->v, root, &ra);
	w->is_dir[0] = true;
	w->nlink[0] = ra.nlink;
	for (unsigned i = 0; i < w->n && ret == 0; i++) {
		uint32_t want = w->is_dir[i] ? 2 + w->subdirs[i] : w->seen[i];

		if (w->nlink[i] != want) {
			snprintf(r->msg, sizeof(r->msg), "inode %" PRIu64 ": nlink %u, the tree says %u",
				 w->ino[i], w->nlink[i], want);
			ret = -1;
		}
	}
	free(w);
	return ret;
}

struct ck_log {
	char first[256];
	unsigned n;
};

static void ck_report(void *arg, int pb, bool fixed, const char *msg)
{
	struct ck_log *l = arg;

	(void)fixed;
	if (pb < 0) {
		return;
	}
	if (l->n++ == 0) {
		snprintf(l->first, sizeof(l->first), "%s: %s", check_pb_name((enum check_pb)pb), msg);
	}
}

static int verify_offline(struct run *r)
{
	struct check_opts o;
	struct check_result res;
	struct ck_log log;
	const char *why = NULL;
	uint64_t problems = 0;
	int err;

	memset(&o, 0, sizeof(o));
	memset(&log, 0, sizeof(log));
	o.live_wait_max_ms = 1;
	o.report = ck_report;
	o.arg = &log;
	err = check_run(r->dev, &o, &res, &why);
	if (err < 0) {
		snprintf(r->msg, sizeof(r->msg), "check_run: %d (%s)", err, why ? why : "?");
		return -1;
	}
	for (unsigned pb = 0; pb < CHECK_PB_COUNT; pb++) {
		problems += res.found[pb];
	}
	if (problems != 0) {
		snprintf(r->msg, sizeof(r->msg), "fsck: %" PRIu64 " problems, first: %s", problems,
			 log.first);
		return -1;
	}
	return 0;
}

/* ---- the driver ----------------------------------------------------------------- */

/* The reference run: W, and the workload must succeed. */
static uint64_t reference_writes(void)
{
	struct run r;
	uint64_t w0, w;

	ck_assert_int_eq(run_open(&r), 0);
	w0 = run_writes(&r);
	ck_assert_int_eq(run_mount(&r), 0);
	ck_assert_int_eq(workload(&r), 0);
	ck_assert_int_eq(vol_unmount(r.v), 0);
	r.v = NULL;
	w = run_writes(&r) - w0;
	/* The reference itself must pass every check. */
	ck_assert_int_eq(run_mount(&r), 0);
	ck_assert_msg(verify_durable(&r) == 0, "reference: %s", r.msg);
	ck_assert_msg(verify_namespace(&r) == 0, "reference: %s", r.msg);
	ck_assert_int_eq(vol_unmount(r.v), 0);
	r.v = NULL;
	ck_assert_msg(verify_offline(&r) == 0, "reference: %s", r.msg);
	run_close(&r);
	return w;
}

/* One crash at write `point`, power back with `seed`. 0 = all good. */
static int crash_once(uint64_t point, uint64_t seed, char *msg, size_t msglen)
{
	struct run r;
	int ret = -1;

	if (run_open(&r) < 0) {
		snprintf(msg, msglen, "setup failed");
		return -1;
	}
	dev_fault_crash_after(r.fault, point);
	if (run_mount(&r) == 0) {
		(void)workload(&r);
		(void)vol_unmount(r.v); /* fails after the cut; frees memory */
		r.v = NULL;
	}
	r.msg[0] = '\0';
	if (dev_fault_power_cycle(r.fault, seed) < 0) {
		snprintf(r.msg, sizeof(r.msg), "power_cycle failed");
		goto out;
	}
	dev_fault_crash_after(r.fault, 0);
	if (run_mount(&r) < 0) {
		goto out;
	}
	if (verify_durable(&r) != 0 || verify_namespace(&r) != 0) {
		goto out;
	}
	if (vol_unmount(r.v) != 0) {
		r.v = NULL;
		snprintf(r.msg, sizeof(r.msg), "clean unmount after replay failed");
		goto out;
	}
	r.v = NULL;
	if (verify_offline(&r) != 0) {
		goto out;
	}
	ret = 0;
out:
	if (ret != 0) {
		snprintf(msg, msglen, "%s", r.msg);
	}
	run_close(&r);
	return ret;
}

START_TEST(test_powerloss)
{
	const char *soak = getenv("LUNFS_SOAK");
	bool is_soak = soak != NULL && soak[0] != '\0' && soak[0] != '0';
	unsigned seeds = is_soak ? SOAK_SEEDS : DEFAULT_SEEDS;
	uint64_t w = reference_writes(), total = 0, failures = 0;
	char msg[512];

	ck_assert_uint_gt(w, 10);
	fprintf(stderr, "powerloss: the workload does %" PRIu64 " writes; %u seeds%s\n", w, seeds,
		is_soak ? " (soak: every crash point)" : "");
	for (unsigned s = 0; s < seeds; s++) {
		/* Alternate seed 0 (drop everything unflushed) with nonzero
		 * seeds (keep, tear or drop each unflushed write). */
		uint64_t seed = s % 2 == 0 ? 0 : 0x9e3779b97f4a7c15ull * s;
		uint64_t npoints = is_soak ? w : (DEFAULT_POINTS_PER_SEED < w ? DEFAULT_POINTS_PER_SEED : w);

		for (uint64_t k = 0; k < npoints; k++) {
			/* Spread over [1, w]; each seed starts at a different offset. */
			uint64_t point = is_soak ? k + 1 : 1 + (k * w + s * (w / npoints / seeds + 1)) / npoints;

			if (point > w) {
				point = w;
			}
			total++;
			if (crash_once(point, seed, msg, sizeof(msg)) != 0) {
				failures++;
				fprintf(stderr, "powerloss FAIL seed=%" PRIu64 " crash_point=%" PRIu64 ": %s\n",
					seed, point, msg);
			}
		}
	}
	fprintf(stderr, "powerloss: %" PRIu64 " crash points, %" PRIu64 " failures\n", total,
		failures);
	ck_assert_uint_ge(total, is_soak ? w : 1000);
	ck_assert_uint_eq(failures, 0);
}
END_TEST

static Suite *powerloss_suite(void)
{
	Suite *s = suite_create("powerloss");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 3600);
	tcase_add_test(tc, test_powerloss);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(powerloss_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
