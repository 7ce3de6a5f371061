/*
 * Unit tests of the extendible-hash directories (fs/dir.c) on the memory
 * device, through a real volume (vol_create + vol_mount) and a directory
 * inode of their own: add/lookup/remove/replace and their errors, splits
 * and table doublings (every name found after every doubling), a 100k-entry
 * directory (insert, lookup, full readdir: each name once, cookies strictly
 * increasing; the elapsed time is printed, never asserted), readdir resumed
 * at every cookie while names are added in between, removal of everything
 * returning every META unit, names with every byte value and of maximum
 * length, and corrupt leaf and table blocks giving -EUCLEAN.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../../fs/fs_internal.h"
#include "lunfs/cluster.h"
#include "lunfs/dev.h"
#include "lunfs/dir.h"
#include "lunfs/volume.h"

#define MiB (1024ull * 1024ull)
#define DEV_SIZE (2048ull * MiB)
#define DT_REG_ 8u
#define DT_DIR_ 4u

/* The volume under test; one per test (Check forks each test). */
struct dt {
	struct lunfs_dev *dev;
	struct lunfs_vol *v;
	struct inode_mem *dim;
	uint64_t dino;
};

static struct dt T;

static void dt_mount(struct dt *t)
{
	struct lunfs_mount_opts mo;
	const char *why = NULL;
	int r;

	memset(&mo, 0, sizeof(mo));
	mo.host_name = "dirtest";
	mo.commit_interval_ms = 60000; /* commits come from handles filling up, not a timer */
	mo.why = &why;
	r = vol_mount(t->dev, &mo, &t->v);
	ck_assert_msg(r == 0, "vol_mount: %d %s", r, why != NULL ? why : "");
}

static void dt_unmount(struct dt *t)
{
	if (t->dim != NULL) {
		inode_put(t->v, t->dim);
		t->dim = NULL;
	}
	if (t->v != NULL) {
		ck_assert_int_eq(vol_unmount(t->v), 0);
		t->v = NULL;
	}
}

static void dt_create(uint64_t journal_size)
{
	struct lunfs_vol_create_opts co;
	struct jnl_handle *h;
	const char *why = NULL;
	int r;

	memset(&T, 0, sizeof(T));
	ck_assert_int_eq(dev_mem_open(DEV_SIZE, 512, &T.dev), 0);
	memset(&co, 0, sizeof(co));
	co.why = &why;
	co.layout.journal_size = journal_size;
	co.layout.max_hosts = 4;
	r = vol_create(T.dev, &co, NULL, NULL, NULL);
	ck_assert_msg(r == 0, "vol_create: %d %s", r, why != NULL ? why : "");
	dt_mount(&T);
	pthread_mutex_lock(&T.v->meta_lock);
	ck_assert_int_eq(jnl_start(T.v->jnl, 64, &h), 0);
	r = inode_alloc(T.v, h, S_IFDIR | 0755, 0, 0, vol_root_ino(T.v), &T.dim);
	ck_assert_int_eq(jnl_stop(h, false), 0);
	pthread_mutex_unlock(&T.v->meta_lock);
	ck_assert_int_eq(r, 0);
	T.dino = T.dim->ino;
}

/* A 16 MiB journal: a table doubling to the maximum depth (2085 blocks)
 * is one transaction. */
static void dt_setup(void)
{
	dt_create(16 * MiB);
}

static void dt_teardown(void)
{
	if (T.v != NULL) {
		dt_unmount(&T);
	}
	if (T.dev != NULL) {
		dev_close(T.dev);
		T.dev = NULL;
	}
}

/* META units in use, from the cluster headers as the cache holds them. */
static uint64_t meta_used(struct lunfs_vol *v)
{
	uint64_t used = 0;

	for (uint64_t c = 0; c < v->sb.cluster_count; c++) {
		struct lunfs_cluster_hdr ch;
		struct mc_entry *e;
		uint64_t addr = layout_cluster_addr(&v->sb, c);

		ck_assert_int_eq(mc_get(v->mc, addr, LUNFS_META_BLOCK_SIZE, 0, &e), 0);
		if (cluster_hdr_decode(&v->codec, e->buf, addr, &ch) == 0 && ch.type == LUNFS_CLUSTER_META) {
			used += ch.units_total - ch.units_free - ch.header_units;
		}
		mc_put(v->mc, e);
	}
	return used;
}

/* ---- one operation per handle, with the locks fsops would hold ---------- */

enum dt_op { OP_ADD, OP_REMOVE, OP_REPLACE, OP_FREE };

static int dt_change(struct dt *t, enum dt_op op, const char *name, size_t len, uint64_t ino, uint64_t *old)
{
	struct jnl_handle *h;
	int r, r2;

	pthread_mutex_lock(&t->v->meta_lock);
	pthread_rwlock_wrlock(&t->dim->lock);
	r = jnl_start(t->v->jnl, dir_change_credits(t->dim), &h);
	if (r == 0) {
		switch (op) {
		case OP_ADD:
			r = dir_add(t->v, h, t->dim, name, len, ino, DT_REG_);
			break;
		case OP_REMOVE:
			r = dir_remove(t->v, h, t->dim, name, len, old);
			break;
		case OP_REPLACE:
			r = dir_replace(t->v, h, t->dim, name, len, ino, DT_DIR_, old);
			break;
		case OP_FREE:
			r = dir_free(t->v, h, t->dim);
			break;
		}
		r2 = jnl_stop(h, false);
		if (r == 0) {
			r = r2;
		}
	}
	pthread_rwlock_unlock(&t->dim->lock);
	pthread_mutex_unlock(&t->v->meta_lock);
	return r;
}

static int dt_add(struct dt *t, const char *name, uint64_t ino)
{
	return dt_change(t, OP_ADD, name, strlen(name), ino, NULL);
}

static int dt_lookup(struct dt *t, const char *name, size_t len, uint64_t *ino, uint8_t *type)
{
	int r;

	pthread_rwlock_rdlock(&t->dim->lock);
	r = dir_lookup(t->v, t->dim, name, len, ino, type);
	pthread_rwlock_unlock(&t->dim->lock);
	return r;
}

static int dt_iterate(struct dt *t, uint64_t cookie, dir_iter_fn fn, void *arg)
{
	int r;

	pthread_rwlock_rdlock(&t->dim->lock);
	r = dir_iterate(t->v, t->dim, cookie, fn, arg);
	pthread_rwlock_unlock(&t->dim->lock);
	return r;
}

static uint32_t dt_depth(struct dt *t)
{
	struct lunfs_dir_state ds;

	inode_dir_state_get(&t->dim->di, &ds);
	return ds.global_depth;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void name_of(char *buf, size_t cap, const char *prefix, unsigned i)
{
	snprintf(buf, cap, "%s%07u", prefix, i);
}

/* ---- readdir collector ----------------------------------------------------- */

struct coll {
	const char *prefix;     /* names counted are prefix + index */
	uint32_t *seen;         /* per index */
	unsigned nmax;
	uint64_t last_cookie;
	bool increasing;
	uint64_t count, foreign;
	unsigned stop_after;    /* 0 = never stop */
	unsigned taken;
};

static int coll_fn(void *arg, const char *name, size_t len, uint64_t ino, uint8_t type, uint64_t next_cookie)
{
	struct coll *c = arg;
	size_t pl = strlen(c->prefix);

	(void)ino;
	(void)type;
	if (next_cookie <= c->last_cookie || next_cookie < 3) {
		c->increasing = false;
	}
	c->last_cookie = next_cookie;
	c->count++;
	if (len > pl && memcmp(name, c->prefix, pl) == 0) {
		unsigned long i = strtoul(name + pl, NULL, 10);

		if (i < c->nmax) {
			c->seen[i]++;
		}
	} else {
		c->foreign++;
	}
	c->taken++;
	return c->stop_after != 0 && c->taken >= c->stop_after ? 1 : 0;
}

/* ---- tests ------------------------------------------------------------------ */

START_TEST(test_dir_basic)
{
	uint64_t ino, old;
	uint8_t type;
	char big[300];

	ck_assert(dir_is_empty(T.dim));
	ck_assert_int_eq(dt_lookup(&T, "a", 1, &ino, &type), -ENOENT);
	ck_assert_int_eq(T.dim->di.map_height, 0);

	ck_assert_int_eq(dt_add(&T, "a", 100), 0);
	ck_assert(!dir_is_empty(T.dim));
	ck_assert_int_eq(dt_add(&T, "b", 101), 0);
	ck_assert_int_eq(dt_add(&T, "a", 102), -EEXIST);
	ck_assert_int_eq(dt_lookup(&T, "a", 1, &ino, &type), 0);
	ck_assert_uint_eq(ino, 100);
	ck_assert_uint_eq(type, DT_REG_);
	ck_assert_int_eq(dt_lookup(&T, "b", 1, &ino, NULL), 0);
	ck_assert_uint_eq(ino, 101);
	ck_assert_int_eq(dt_lookup(&T, "c", 1, &ino, NULL), -ENOENT);
	/* Lookup compares lengths too: "ab" is not "a". */
	ck_assert_int_eq(dt_lookup(&T, "ab", 2, &ino, NULL), -ENOENT);
	/* One table block and one leaf: size says so. */
	ck_assert_uint_eq(T.dim->di.size, 2 * 4096);

	ck_assert_int_eq(dt_change(&T, OP_REPLACE, "a", 1, 200, &old), 0);
	ck_assert_uint_eq(old, 100);
	ck_assert_int_eq(dt_lookup(&T, "a", 1, &ino, &type), 0);
	ck_assert_uint_eq(ino, 200);
	ck_assert_uint_eq(type, DT_DIR_);
	ck_assert_int_eq(dt_change(&T, OP_REPLACE, "zz", 2, 200, &old), -ENOENT);

	/* Invalid names. */
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(dt_change(&T, OP_ADD, big, 256, 5, NULL), -ENAMETOOLONG);
	ck_assert_int_eq(dt_lookup(&T, big, 256, &ino, NULL), -ENAMETOOLONG);
	ck_assert_int_eq(dt_change(&T, OP_ADD, "", 0, 5, NULL), -EINVAL);
	ck_assert_int_eq(dt_change(&T, OP_ADD, ".", 1, 5, NULL), -EINVAL);
	ck_assert_int_eq(dt_change(&T, OP_ADD, "..", 2, 5, NULL), -EINVAL);
	ck_assert_int_eq(dt_change(&T, OP_ADD, "a/b", 3, 5, NULL), -EINVAL);
	ck_assert_int_eq(dt_change(&T, OP_ADD, "a\0b", 3, 5, NULL), -EINVAL);
	ck_assert_int_eq(dt_change(&T, OP_ADD, "ok", 2, 0, NULL), -EINVAL);
	/* "..." and ".x" are ordinary names. */
	ck_assert_int_eq(dt_add(&T, "...", 7), 0);
	ck_assert_int_eq(dt_add(&T, ".x", 8), 0);

	ck_assert_int_eq(dt_change(&T, OP_FREE, NULL, 0, 0, NULL), -ENOTEMPTY);
	ck_assert_int_eq(dt_change(&T, OP_REMOVE, "a", 1, 0, &old), 0);
	ck_assert_uint_eq(old, 200);
	ck_assert_int_eq(dt_change(&T, OP_REMOVE, "a", 1, 0, &old), -ENOENT);
	ck_assert_int_eq(dt_lookup(&T, "a", 1, &ino, NULL), -ENOENT);
	ck_assert_int_eq(dt_change(&T, OP_REMOVE, "b", 1, 0, NULL), 0);
	ck_assert_int_eq(dt_change(&T, OP_REMOVE, "...", 3, 0, NULL), 0);
	ck_assert(!dir_is_empty(T.dim));
	ck_assert_int_eq(dt_change(&T, OP_REMOVE, ".x", 2, 0, NULL), 0);
	/* The last entry took every block with it (FORMAT 13). */
	ck_assert(dir_is_empty(T.dim));
	ck_assert_int_eq(T.dim->di.map_height, 0);
	ck_assert_uint_eq(T.dim->di.size, 0);
	ck_assert_uint_eq(T.dim->di.alloc_bytes, 0);
	ck_assert_int_eq(dt_change(&T, OP_FREE, NULL, 0, 0, NULL), 0);
	/* And it works again from nothing. */
	ck_assert_int_eq(dt_add(&T, "again", 9), 0);
	ck_assert_int_eq(dt_lookup(&T, "again", 5, &ino, NULL), 0);
	ck_assert_uint_eq(ino, 9);
}
END_TEST

START_TEST(test_dir_splits_and_doublings)
{
	enum { N = 6000 };
	char name[64];
	uint32_t depth = dt_depth(&T);
	unsigned doublings = 0;
	uint64_t ino;

	for (unsigned i = 0; i < N; i++) {
		name_of(name, sizeof(name), "split-", i);
		ck_assert_int_eq(dt_add(&T, name, 1000 + i), 0);
		if (dt_depth(&T) != depth) {
			depth = dt_depth(&T);
			doublings++;
			/* After every doubling, every name so far is found. */
			for (unsigned j = 0; j <= i; j++) {
				name_of(name, sizeof(name), "split-", j);
				ck_assert_int_eq(dt_lookup(&T, name, strlen(name), &ino, NULL), 0);
				ck_assert_uint_eq(ino, 1000 + j);
			}
		}
	}
	ck_assert_uint_ge(doublings, 5);
	for (unsigned i = 0; i < N; i++) {
		name_of(name, sizeof(name), "split-", i);
		ck_assert_int_eq(dt_add(&T, name, 1), -EEXIST);
	}
}
END_TEST

START_TEST(test_dir_100k)
{
	enum { N = 100000 };
	struct coll c;
	char name[64];
	uint64_t ino, used_before = meta_used(T.v);
	double t0, t1, t2, t3;
	int r;

	t0 = now_s();
	for (unsigned i = 0; i < N; i++) {
		name_of(name, sizeof(name), "vm-disk-", i);
		r = dt_add(&T, name, 1000 + i);
		ck_assert_msg(r == 0, "add %u: %d", i, r);
	}
	t1 = now_s();
	for (unsigned i = 0; i < N; i++) {
		name_of(name, sizeof(name), "vm-disk-", i);
		ck_assert_int_eq(dt_lookup(&T, name, strlen(name), &ino, NULL), 0);
		ck_assert_uint_eq(ino, 1000 + i);
	}
	t2 = now_s();
	memset(&c, 0, sizeof(c));
	c.prefix = "vm-disk-";
	c.nmax = N;
	c.seen = calloc(N, sizeof(*c.seen));
	ck_assert_ptr_nonnull(c.seen);
	c.increasing = true;
	ck_assert_int_eq(dt_iterate(&T, 0, coll_fn, &c), 0);
	t3 = now_s();
	ck_assert_uint_eq(c.count, N);
	ck_assert_uint_eq(c.foreign, 0);
	ck_assert(c.increasing);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_uint_eq(c.seen[i], 1);
	}
	printf("dir 100k: insert %.2f s, lookup %.2f s, readdir %.2f s; depth %u, %llu blocks\n", t1 - t0,
	       t2 - t1, t3 - t2, dt_depth(&T), (unsigned long long)(T.dim->di.size / 4096));

	/* Remove everything: every META unit comes back (map nodes too). */
	for (unsigned i = 0; i < N; i++) {
		name_of(name, sizeof(name), "vm-disk-", i);
		ck_assert_int_eq(dt_change(&T, OP_REMOVE, name, strlen(name), 0, &ino), 0);
		ck_assert_uint_eq(ino, 1000 + i);
	}
	ck_assert(dir_is_empty(T.dim));
	ck_assert_int_eq(dt_change(&T, OP_FREE, NULL, 0, 0, NULL), 0);
	ck_assert_int_eq(T.dim->di.map_height, 0);
	ck_assert_uint_eq(meta_used(T.v), used_before);
	free(c.seen);
}
END_TEST

/* Readdir one entry per call, resuming at each cookie, while names are
 * added between the calls (splits and doublings included). */
START_TEST(test_dir_resume_while_inserting)
{
	enum { N = 3000, M = 3000 };
	struct coll c, cb;
	char name[64];
	uint64_t cookie = 0;
	unsigned added = 0, calls = 0;
	uint32_t *seen_b;

	for (unsigned i = 0; i < N; i++) {
		name_of(name, sizeof(name), "old-", i);
		ck_assert_int_eq(dt_add(&T, name, 1000 + i), 0);
	}
	memset(&c, 0, sizeof(c));
	c.prefix = "old-";
	c.nmax = N;
	c.seen = calloc(N, sizeof(*c.seen));
	seen_b = calloc(M, sizeof(*seen_b));
	ck_assert_ptr_nonnull(c.seen);
	ck_assert_ptr_nonnull(seen_b);
	c.increasing = true;
	c.stop_after = 1;
	for (;;) {
		uint64_t before = c.count;

		c.taken = 0;
		ck_assert_int_eq(dt_iterate(&T, cookie, coll_fn, &c), 0);
		calls++;
		if (c.count == before) {
			break;
		}
		cookie = c.last_cookie;
		if (added < M) {
			name_of(name, sizeof(name), "new-", added);
			ck_assert_int_eq(dt_add(&T, name, 50000 + added), 0);
			added++;
		}
	}
	ck_assert(c.increasing);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_msg(c.seen[i] == 1, "old-%u seen %u times", i, c.seen[i]);
	}
	/* New names show up at most once (those behind the cursor do not). */
	ck_assert_uint_eq(c.count, N + c.foreign);
	memset(&cb, 0, sizeof(cb));
	cb.prefix = "new-";
	cb.nmax = M;
	cb.seen = seen_b;
	cb.increasing = true;
	ck_assert_int_eq(dt_iterate(&T, 0, coll_fn, &cb), 0);
	ck_assert_uint_eq(cb.count, N + added);
	for (unsigned i = 0; i < added; i++) {
		ck_assert_uint_eq(seen_b[i], 1);
	}
	ck_assert_uint_gt(calls, N);
	/* Past the last cookie there is nothing. */
	c.taken = 0;
	c.stop_after = 0;
	{
		uint64_t before = c.count;

		ck_assert_int_eq(dt_iterate(&T, (1ull << 62) + 2, coll_fn, &c), 0);
		ck_assert_int_eq(dt_iterate(&T, UINT64_MAX, coll_fn, &c), 0);
		ck_assert_uint_eq(c.count, before);
	}
	free(seen_b);
	free(c.seen);
}
END_TEST

/* Names whose hashes share their top 20 bits (found by brute force under
 * the volume's key) end up in one leaf at maximum depth and then in an
 * overflow chain: lookups, readdir (each once, cookies increasing),
 * resumption inside the chain and removal (chain leaves freed, then all). */
START_TEST(test_dir_overflow_chain)
{
	enum { N = 230 };
	const uint64_t mask = ~0ull << (64 - LUNFS_DIR_MAX_DEPTH);
	char (*names)[16] = calloc(N, sizeof(*names));
	uint64_t target, ino, used_before = meta_used(T.v), cookie = 0;
	struct lunfs_dir_state ds;
	unsigned found = 0;
	struct coll c;
	double t0 = now_s();

	ck_assert_ptr_nonnull(names);
	target = dir_name_hash(T.v->sb.dir_hash_key, "seed", 4) & mask;
	/* 12-byte names "c" + 11 hex digits of a counter, kept by hand:
	 * about 2^20 candidates per hit, so no snprintf in the loop. */
	{
		char name[13];
		uint64_t k = 0;

		while (found < N) {
			uint64_t x = k++;

			name[0] = 'c';
			for (int d = 11; d >= 1; d--) {
				name[d] = "0123456789abcdef"[x & 15];
				x >>= 4;
			}
			name[12] = '\0';
			if ((dir_name_hash(T.v->sb.dir_hash_key, name, 12) & mask) == target) {
				memcpy(names[found++], name, 13);
			}
		}
	}
	printf("dir overflow: %u colliding names in %.2f s\n", N, now_s() - t0);
	ck_assert_int_eq(dt_add(&T, "plain-1", 7), 0);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_int_eq(dt_add(&T, names[i], 1000 + i), 0);
	}
	ck_assert_int_eq(dt_add(&T, "plain-2", 8), 0);
	ck_assert_int_eq(dt_add(&T, names[N / 2], 5), -EEXIST);
	inode_dir_state_get(&T.dim->di, &ds);
	ck_assert_uint_eq(ds.global_depth, LUNFS_DIR_MAX_DEPTH);
	ck_assert_uint_eq(ds.nentries, N + 2);
	/* 21 leaves from the splits down to depth 20, and 99 of these names
	 * fill a leaf: at least two overflow leaves. */
	ck_assert_uint_ge(ds.nleaves, LUNFS_DIR_MAX_DEPTH + 1 + 2);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_int_eq(dt_lookup(&T, names[i], 12, &ino, NULL), 0);
		ck_assert_uint_eq(ino, 1000 + i);
	}
	ck_assert_int_eq(dt_lookup(&T, "plain-2", 7, &ino, NULL), 0);
	ck_assert_uint_eq(ino, 8);

	/* Whole listing, then one entry per call. */
	memset(&c, 0, sizeof(c));
	c.prefix = "c";
	c.increasing = true;
	ck_assert_int_eq(dt_iterate(&T, 0, coll_fn, &c), 0);
	ck_assert_uint_eq(c.count, N + 2);
	ck_assert(c.increasing);
	memset(&c, 0, sizeof(c));
	c.prefix = "c";
	c.increasing = true;
	c.stop_after = 1;
	for (;;) {
		uint64_t before = c.count;

		c.taken = 0;
		ck_assert_int_eq(dt_iterate(&T, cookie, coll_fn, &c), 0);
		if (c.count == before) {
			break;
		}
		cookie = c.last_cookie;
	}
	ck_assert_uint_eq(c.count, N + 2);
	ck_assert(c.increasing);

	/* Remove the colliding names from the middle out: chain leaves empty
	 * and go; then the rest. */
	for (unsigned i = 0; i < N; i++) {
		unsigned k = (i * 7) % N;

		ck_assert_int_eq(dt_change(&T, OP_REMOVE, names[k], 12, 0, &ino), 0);
		ck_assert_uint_eq(ino, 1000 + k);
		ck_assert_int_eq(dt_lookup(&T, names[k], 12, &ino, NULL), -ENOENT);
	}
	inode_dir_state_get(&T.dim->di, &ds);
	ck_assert_uint_eq(ds.nentries, 2);
	ck_assert_int_eq(dt_change(&T, OP_REMOVE, "plain-1", 7, 0, NULL), 0);
	ck_assert_int_eq(dt_change(&T, OP_REMOVE, "plain-2", 7, 0, NULL), 0);
	ck_assert(dir_is_empty(T.dim));
	ck_assert_uint_eq(meta_used(T.v), used_before);
	free(names);
}
END_TEST

/* Names that collide in their top 16 bits on a volume with a 1 MiB
 * journal: the table may double to depth 15 (66 blocks) but not to 16
 * (131 blocks, more than the journal allows in one transaction). The
 * insert that would need it fails with -ENOSPC; the directory stays whole
 * and usable. */
START_TEST(test_dir_depth_bounded_by_journal)
{
	enum { N = 160 };
	const uint64_t mask = ~0ull << 48;
	char (*names)[16] = calloc(N, sizeof(*names));
	uint64_t target, ino, used_before;
	struct lunfs_dir_state ds;
	unsigned found = 0, added = 0;
	struct coll c;
	int r = 0;

	dt_teardown();
	dt_create(1 * MiB);
	used_before = meta_used(T.v);
	ck_assert_ptr_nonnull(names);
	target = dir_name_hash(T.v->sb.dir_hash_key, "seed", 4) & mask;
	for (uint64_t k = 0; found < N; k++) {
		char name[16];

		snprintf(name, sizeof(name), "d%011llx", (unsigned long long)k);
		if ((dir_name_hash(T.v->sb.dir_hash_key, name, 12) & mask) == target) {
			memcpy(names[found++], name, 13);
		}
	}
	for (added = 0; added < N; added++) {
		r = dt_add(&T, names[added], 1000 + added);
		if (r != 0) {
			break;
		}
	}
	ck_assert_int_eq(r, -ENOSPC);
	ck_assert_uint_ge(added, 90);
	inode_dir_state_get(&T.dim->di, &ds);
	ck_assert_uint_eq(ds.global_depth, 15);
	ck_assert_uint_eq(ds.nentries, added);
	ck_assert_int_eq(dt_lookup(&T, names[added], 12, &ino, NULL), -ENOENT);
	for (unsigned i = 0; i < added; i++) {
		ck_assert_int_eq(dt_lookup(&T, names[i], 12, &ino, NULL), 0);
		ck_assert_uint_eq(ino, 1000 + i);
	}
	memset(&c, 0, sizeof(c));
	c.prefix = "d";
	c.increasing = true;
	ck_assert_int_eq(dt_iterate(&T, 0, coll_fn, &c), 0);
	ck_assert_uint_eq(c.count, added);
	ck_assert(c.increasing);
	/* Other names still go in; then everything comes out again. */
	ck_assert_int_eq(dt_add(&T, "elsewhere", 3), 0);
	ck_assert_int_eq(dt_change(&T, OP_REMOVE, "elsewhere", 9, 0, NULL), 0);
	for (unsigned i = 0; i < added; i++) {
		ck_assert_int_eq(dt_change(&T, OP_REMOVE, names[i], 12, 0, NULL), 0);
	}
	ck_assert(dir_is_empty(T.dim));
	ck_assert_uint_eq(meta_used(T.v), used_before);
	free(names);
}
END_TEST

/* A stop (positive return) ends the walk with 0; an error is passed on. */
static int stop_err_fn(void *arg, const char *name, size_t len, uint64_t ino, uint8_t type, uint64_t next_cookie)
{
	(void)arg;
	(void)name;
	(void)len;
	(void)ino;
	(void)type;
	(void)next_cookie;
	return -EIO;
}

START_TEST(test_dir_iterate_errors)
{
	ck_assert_int_eq(dt_iterate(&T, 0, stop_err_fn, NULL), 0); /* empty: not called */
	ck_assert_int_eq(dt_add(&T, "x", 3), 0);
	ck_assert_int_eq(dt_iterate(&T, 0, stop_err_fn, NULL), -EIO);
}
END_TEST

START_TEST(test_dir_names_every_byte)
{
	char name[LUNFS_NAME_MAX + 1];
	unsigned n = 0, added = 0;
	uint64_t ino, used_before = meta_used(T.v);

	/* One-byte names of every allowed value. */
	for (unsigned b = 1; b < 256; b++) {
		int r;

		name[0] = (char)b;
		r = dt_change(&T, OP_ADD, name, 1, 10 + b, NULL);
		if (b == '/' || b == '.') {
			ck_assert_int_eq(r, -EINVAL);
		} else {
			ck_assert_int_eq(r, 0);
			added++;
		}
	}
	/* Long names holding every byte value but '/' in turn. */
	for (unsigned start = 1; start < 256; start += 7) {
		size_t len = 0;

		for (unsigned k = 0; k < LUNFS_NAME_MAX; k++) {
			unsigned b = 1 + (start + k) % 255;

			if (b == '/') {
				b = 'A';
			}
			name[len++] = (char)b;
		}
		ck_assert_int_eq(dt_change(&T, OP_ADD, name, len, 5000 + start, NULL), 0);
		added++;
		n++;
	}
	/* Maximum-length names (14 per leaf: many splits). */
	for (unsigned i = 0; i < 400; i++) {
		memset(name, 'm', LUNFS_NAME_MAX);
		snprintf(name, sizeof(name), "%05u", i);
		name[5] = 'm'; /* keep the full 255 bytes */
		ck_assert_int_eq(dt_change(&T, OP_ADD, name, LUNFS_NAME_MAX, 9000 + i, NULL), 0);
		added++;
	}
	for (unsigned b = 1; b < 256; b++) {
		name[0] = (char)b;
		if (b == '/' || b == '.') {
			continue;
		}
		ck_assert_int_eq(dt_lookup(&T, name, 1, &ino, NULL), 0);
		ck_assert_uint_eq(ino, 10 + b);
	}
	for (unsigned i = 0; i < 400; i++) {
		memset(name, 'm', LUNFS_NAME_MAX);
		snprintf(name, sizeof(name), "%05u", i);
		name[5] = 'm';
		ck_assert_int_eq(dt_lookup(&T, name, LUNFS_NAME_MAX, &ino, NULL), 0);
		ck_assert_uint_eq(ino, 9000 + i);
		ck_assert_int_eq(dt_change(&T, OP_REMOVE, name, LUNFS_NAME_MAX, 0, NULL), 0);
	}
	for (unsigned start = 1; start < 256; start += 7) {
		size_t len = 0;

		for (unsigned k = 0; k < LUNFS_NAME_MAX; k++) {
			unsigned b = 1 + (start + k) % 255;

			if (b == '/') {
				b = 'A';
			}
			name[len++] = (char)b;
		}
		ck_assert_int_eq(dt_lookup(&T, name, len, &ino, NULL), 0);
		ck_assert_uint_eq(ino, 5000 + start);
		ck_assert_int_eq(dt_change(&T, OP_REMOVE, name, len, 0, NULL), 0);
	}
	for (unsigned b = 1; b < 256; b++) {
		name[0] = (char)b;
		if (b == '/' || b == '.') {
			continue;
		}
		ck_assert_int_eq(dt_change(&T, OP_REMOVE, name, 1, 0, NULL), 0);
	}
	ck_assert(n > 30);
	ck_assert(added > 600);
	ck_assert(dir_is_empty(T.dim));
	ck_assert_uint_eq(meta_used(T.v), used_before);
}
END_TEST

/* Flip one byte of a block on the device (volume unmounted). */
static void flip_byte(struct lunfs_dev *dev, uint64_t addr, unsigned off)
{
	uint8_t *buf = dev_buf_alloc(4096);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(dev_read(dev, buf, 4096, addr), 0);
	buf[off] ^= 0x5a;
	ck_assert_int_eq(dev_write(dev, buf, 4096, addr), 0);
	dev_buf_free(buf);
}

static int first_name_fn(void *arg, const char *name, size_t len, uint64_t ino, uint8_t type,
			 uint64_t next_cookie)
{
	char *out = arg;

	(void)ino;
	(void)type;
	(void)next_cookie;
	memcpy(out, name, len);
	out[len] = '\0';
	return 1;
}

/* Fill the directory, note the first listed name, unmount, flip byte `off`
 * of the block at logical lblk (unless off is -1), mount again. */
static void hostile_setup(uint64_t lblk, int off, char *victim)
{
	struct lunfs_map_entry me;
	uint64_t run;
	char name[64];

	for (unsigned i = 0; i < 2000; i++) {
		name_of(name, sizeof(name), "h-", i);
		ck_assert_int_eq(dt_add(&T, name, 1000 + i), 0);
	}
	/* Leaf 4096 keeps prefix 0 through every split: it holds the first
	 * entry of a listing. Table block 0 holds slot 0. */
	ck_assert_int_eq(dt_iterate(&T, 0, first_name_fn, victim), 0);
	ck_assert_int_eq(bmap_lookup(T.v, T.dim, lblk, &me, &run), 0);
	ck_assert_uint_ne(me.addr, 0);
	dt_unmount(&T);
	if (off >= 0) {
		flip_byte(T.dev, me.addr, (unsigned)off);
	}
	dt_mount(&T);
	ck_assert_int_eq(inode_get(T.v, T.dino, &T.dim), 0);
}

START_TEST(test_dir_corrupt_leaf)
{
	char victim[300];
	uint64_t ino;
	struct coll c;

	hostile_setup(LUNFS_DIR_FIRST_LEAF, 200, victim);
	ck_assert_int_eq(dt_lookup(&T, victim, strlen(victim), &ino, NULL), -EUCLEAN);
	memset(&c, 0, sizeof(c));
	c.prefix = "h-";
	ck_assert_int_eq(dt_iterate(&T, 0, coll_fn, &c), -EUCLEAN);
	ck_assert_int_eq(dt_add(&T, victim, 5), -EUCLEAN);
	ck_assert_int_eq(dt_change(&T, OP_REMOVE, victim, strlen(victim), 0, NULL), -EUCLEAN);
}
END_TEST

START_TEST(test_dir_corrupt_table)
{
	char victim[300];
	uint64_t ino;

	hostile_setup(0, 64 + 8 * 3, victim);
	ck_assert_int_eq(dt_lookup(&T, victim, strlen(victim), &ino, NULL), -EUCLEAN);
}
END_TEST

/* Directory blocks are frame-checked (crc) once per fill of their cache
 * entry: a block rewritten through the encoder meanwhile reads back, and
 * one damaged on disk behind the cache is caught when the cache reads it
 * again. */
START_TEST(test_dir_checked_cache)
{
	char victim[300];
	uint64_t ino, run;
	struct lunfs_map_entry me;
	int r;

	hostile_setup(LUNFS_DIR_FIRST_LEAF, -1, victim);
	ck_assert_int_eq(dt_lookup(&T, victim, strlen(victim), &ino, NULL), 0);
	ck_assert_int_eq(dt_add(&T, "after-the-check", 77), 0);
	ck_assert_int_eq(dt_lookup(&T, "after-the-check", strlen("after-the-check"), &ino, NULL), 0);
	ck_assert_uint_eq(ino, 77);
	pthread_mutex_lock(&T.v->meta_lock);
	r = jnl_flush_home(T.v->jnl);
	pthread_mutex_unlock(&T.v->meta_lock);
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(bmap_lookup(T.v, T.dim, LUNFS_DIR_FIRST_LEAF, &me, &run), 0);
	flip_byte(T.dev, me.addr, 200);
	ck_assert_int_eq(dt_lookup(&T, victim, strlen(victim), &ino, NULL), 0); /* still cached */
	mc_drop_clean(T.v->mc);
	ck_assert_int_eq(dt_lookup(&T, victim, strlen(victim), &ino, NULL), -EUCLEAN);
}
END_TEST

/* A table slot pointing at a leaf that does not cover it (a well-formed
 * but inconsistent table) must not make readdir loop or crash. */
START_TEST(test_dir_inconsistent_table)
{
	char victim[300];
	struct lunfs_dir_table t;
	struct lunfs_map_entry me;
	struct mc_entry *e;
	uint64_t run, ino;
	struct coll c;
	struct jnl_handle *h;

	hostile_setup(0, -1, victim);
	ck_assert_int_eq(bmap_lookup(T.v, T.dim, 0, &me, &run), 0);
	ck_assert_int_eq(mc_get(T.v->mc, me.addr, 4096, 0, &e), 0);
	/* Rebuild the table block validly, with every slot on the last leaf. */
	{
		struct lunfs_dir_state ds;

		inode_dir_state_get(&T.dim->di, &ds);
		memset(&t, 0, sizeof(t));
		t.ino = T.dino;
		for (unsigned i = 0; i < LUNFS_DIR_TABLE_SLOTS && i < (1u << ds.global_depth); i++) {
			t.leaf[i] = ds.next_lblk - 1;
		}
	}
	pthread_mutex_lock(&T.v->meta_lock);
	ck_assert_int_eq(jnl_start(T.v->jnl, 4, &h), 0);
	ck_assert_int_eq(jnl_dirty(h, e), 0);
	dir_table_encode(&T.v->codec, &t, me.addr, e->buf);
	ck_assert_int_eq(jnl_stop(h, false), 0);
	pthread_mutex_unlock(&T.v->meta_lock);
	mc_put(T.v->mc, e);
	ck_assert_int_eq(dt_lookup(&T, victim, strlen(victim), &ino, NULL), -EUCLEAN);
	memset(&c, 0, sizeof(c));
	c.prefix = "h-";
	ck_assert_int_eq(dt_iterate(&T, 0, coll_fn, &c), -EUCLEAN);
}
END_TEST

static Suite *dir_suite(void)
{
	Suite *s = suite_create("dir");
	TCase *tc = tcase_create("dir");

	tcase_add_checked_fixture(tc, dt_setup, dt_teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_dir_basic);
	tcase_add_test(tc, test_dir_splits_and_doublings);
	tcase_add_test(tc, test_dir_100k);
	tcase_add_test(tc, test_dir_resume_while_inserting);
	tcase_add_test(tc, test_dir_iterate_errors);
	tcase_add_test(tc, test_dir_overflow_chain);
	tcase_add_test(tc, test_dir_depth_bounded_by_journal);
	tcase_add_test(tc, test_dir_names_every_byte);
	tcase_add_test(tc, test_dir_corrupt_leaf);
	tcase_add_test(tc, test_dir_corrupt_table);
	tcase_add_test(tc, test_dir_checked_cache);
	tcase_add_test(tc, test_dir_inconsistent_table);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dir_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
