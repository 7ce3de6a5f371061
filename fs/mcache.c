/*
 * mcache: the bounded cache of encoded metadata (fs_internal.h "mcache").
 *
 * Contract
 *   An entry caches [addr, addr + len) of the device, len being a record
 *   (the volume's sector size) or a 4 KiB block. mc_get returns the one
 *   entry for an address with a reference taken; mc_put drops it. The
 *   journal pins every entry of the running transaction with its own
 *   reference (mc_hold) until the entry's home write is done, so an entry
 *   whose contents differ from the disk always has refs > 0.
 *
 * Structure
 *   A hash table of all entries (chained through hnext) and an LRU list of
 *   the entries with refs == 0 (most recently released at the head). Only
 *   LRU entries are evictable: with refs == 0 they are neither dirty nor
 *   in a home write (the journal holds a reference across both), and the
 *   checks on dirty_tid and home_pending are a second line of defence.
 *   When the cache holds more than its bound, entries are evicted from the
 *   LRU tail until it is under the bound or the LRU is empty: pinned
 *   entries may push it over the bound, never evicted ones.
 *
 * Loading
 *   A miss inserts the entry in state "loading" before the read, drops the
 *   mutex for the I/O and takes it again to publish the result. Anyone else
 *   who finds a loading entry takes a reference and waits on the condvar,
 *   so two threads asking for the same address get the same entry and the
 *   read is issued once. A failed read unhashes the entry; the waiters see
 *   the error, and whoever drops the last reference frees it.
 *
 * Locking
 *   mc->lock (innermost of the fs core: fs_internal.h) protects the table,
 *   the LRU, refs, bytes and the private loading state. dirty_tid and
 *   home_pending belong to the journal (vol.meta_lock); they are only
 *   read here for entries on the LRU, which the journal no longer touches.
 *   buf contents belong to whoever holds the structure's lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_internal.h"

/* An mc_entry plus the state nobody outside this file may see. The entry
 * is the first member so a struct mc_entry * converts back. */
struct mc_node {
	struct mc_entry e;
	bool loading;        /* read in flight; waiters sleep on mc->cond */
	bool unhashed;       /* load failed: no longer findable */
	int load_err;
	size_t cost;         /* bytes charged against the bound */
};

struct mcache {
	struct lunfs_dev *dev;
	uint64_t bound;
	pthread_mutex_t lock;
	pthread_cond_t cond;         /* a load finished */
	struct mc_entry **table;
	size_t nbuckets;             /* a power of two */
	uint64_t bytes;              /* sum of cost over all entries */
	uint64_t nentries;
	struct mc_entry lru;         /* sentinel: lru.lru_next = most recent */
	uint64_t read_errors;        /* atomic: failed device reads, ever */
};

#define MC_BUCKETS_MIN 256u
#define MC_BUCKETS_MAX (1u << 20)

static struct mc_node *mc_node_of(struct mc_entry *e)
{
	return (struct mc_node *)e;
}

static size_t mc_hash(const struct mcache *mc, uint64_t addr)
{
	/* Addresses are multiples of 512: drop those bits, then mix. */
	uint64_t h = (addr >> 9) * 0x9E3779B97F4A7C15ull;

	return (size_t)(h >> 32) & (mc->nbuckets - 1);
}

static bool mc_lru_linked(const struct mc_entry *e)
{
	return e->lru_next != NULL;
}

static void mc_lru_unlink_locked(struct mc_entry *e)
{
	if (!mc_lru_linked(e)) {
		return;
	}
	e->lru_prev->lru_next = e->lru_next;
	e->lru_next->lru_prev = e->lru_prev;
	e->lru_prev = NULL;
	e->lru_next = NULL;
}

static void mc_lru_push_locked(struct mcache *mc, struct mc_entry *e)
{
	e->lru_next = mc->lru.lru_next;
	e->lru_prev = &mc->lru;
	mc->lru.lru_next->lru_prev = e;
	mc->lru.lru_next = e;
}

static void mc_unhash_locked(struct mcache *mc, struct mc_entry *e)
{
	struct mc_entry **pp = &mc->table[mc_hash(mc, e->addr)];

	while (*pp != NULL) {
		if (*pp == e) {
			*pp = e->hnext;
			e->hnext = NULL;
			return;
		}
		pp = &(*pp)->hnext;
	}
}

static void mc_node_free(struct mcache *mc, struct mc_node *n)
{
	mc->bytes -= n->cost;
	mc->nentries--;
	free(n->e.buf);
	free(n);
}

static bool mc_evictable(const struct mc_entry *e)
{
	return e->refs == 0 && e->dirty_tid == 0 && e->home_pending == 0;
}

static void mc_evict_locked(struct mcache *mc)
{
	struct mc_entry *e = mc->lru.lru_prev;

	while (mc->bytes > mc->bound && e != &mc->lru) {
		struct mc_entry *prev = e->lru_prev;

		if (mc_evictable(e)) {
			mc_lru_unlink_locked(e);
			mc_unhash_locked(mc, e);
			mc_node_free(mc, mc_node_of(e));
		}
		e = prev;
	}
}

int mc_create(struct lunfs_dev *dev, uint64_t bound_bytes, struct mcache **out)
{
	struct mcache *mc;
	size_t nb = MC_BUCKETS_MIN;
	int err;

	*out = NULL;
	mc = calloc(1, sizeof(*mc));
	if (mc == NULL) {
		return -ENOMEM;
	}
	/* About two buckets per 4 KiB of bound: chains stay short for blocks
	 * and a few entries long for records. */
	while (nb < MC_BUCKETS_MAX && (uint64_t)nb * 2048 < bound_bytes) {
		nb *= 2;
	}
	mc->table = calloc(nb, sizeof(*mc->table));
	if (mc->table == NULL) {
		err = -ENOMEM;
		goto out_mc;
	}
	err = -pthread_mutex_init(&mc->lock, NULL);
	if (err != 0) {
		goto out_table;
	}
	err = -pthread_cond_init(&mc->cond, NULL);
	if (err != 0) {
		goto out_mutex;
	}
	mc->dev = dev;
	mc->bound = bound_bytes;
	mc->nbuckets = nb;
	mc->lru.lru_next = &mc->lru;
	mc->lru.lru_prev = &mc->lru;
	*out = mc;
	return 0;

out_mutex:
	pthread_mutex_destroy(&mc->lock);
out_table:
	free(mc->table);
out_mc:
	free(mc);
	return err;
}

/* Frees every entry, referenced or not: after a journal abort the pinned
 * entries hold changes that must never reach the disk. */
void mc_destroy(struct mcache *mc)
{
	if (mc == NULL) {
		return;
	}
	for (size_t i = 0; i < mc->nbuckets; i++) {
		struct mc_entry *e = mc->table[i];

		while (e != NULL) {
			struct mc_entry *next = e->hnext;

			mc_node_free(mc, mc_node_of(e));
			e = next;
		}
	}
	pthread_cond_destroy(&mc->cond);
	pthread_mutex_destroy(&mc->lock);
	free(mc->table);
	free(mc);
}

static struct mc_entry *mc_find_locked(struct mcache *mc, uint64_t addr)
{
	struct mc_entry *e = mc->table[mc_hash(mc, addr)];

	while (e != NULL && e->addr != addr) {
		e = e->hnext;
	}
	return e;
}

/* A buffer aligned for O_DIRECT. Not dev_buf_alloc: it rounds up to 4 KiB,
 * which would cost a 512-byte record eight times its size. Alignment to
 * the length (a power of two up to 4 KiB) satisfies the device's rule of
 * min(sector_size, 4096). */
static void *mc_buf_alloc(uint32_t len)
{
	void *buf = NULL;
	size_t align = len < LUNFS_DEV_BUF_ALIGN ? len : LUNFS_DEV_BUF_ALIGN;

	if (posix_memalign(&buf, align, len) != 0) {
		return NULL;
	}
	memset(buf, 0, len);
	return buf;
}

static int mc_len_check(const struct mcache *mc, uint64_t addr, uint32_t len)
{
	if (len == 0 || len > LUNFS_META_BLOCK_SIZE || (len & (len - 1)) != 0 ||
	    len % mc->dev->sector_size != 0 || addr % mc->dev->sector_size != 0) {
		return -EINVAL;
	}
	return 0;
}

int mc_get(struct mcache *mc, uint64_t addr, uint32_t len, unsigned flags, struct mc_entry **out)
{
	struct mc_node *n = NULL;
	struct mc_entry *e;
	int err;

	*out = NULL;
	err = mc_len_check(mc, addr, len);
	if (err != 0) {
		return err;
	}
	pthread_mutex_lock(&mc->lock);
	e = mc_find_locked(mc, addr);
	if (e != NULL && e->len != len && mc_evictable(e) && !mc_node_of(e)->loading) {
		/* The space was reused for a structure of another size (a
		 * retyped cluster): the old entry is clean, forget it. */
		mc_lru_unlink_locked(e);
		mc_unhash_locked(mc, e);
		mc_node_free(mc, mc_node_of(e));
		e = NULL;
	}
	if (e != NULL) {
		if (e->len != len) {
			err = -EINVAL;
			goto out_unlock;
		}
		n = mc_node_of(e);
		e->refs++;
		mc_lru_unlink_locked(e);
		while (n->loading) {
			pthread_cond_wait(&mc->cond, &mc->lock);
		}
		if (n->unhashed) {
			err = n->load_err;
			if (--e->refs == 0) {
				mc_node_free(mc, n);
			}
			goto out_unlock;
		}
		if ((flags & MC_NOREAD) != 0) {
			/* A freshly allocated block: whatever was cached
			 * from its previous life must not leak into it. */
			memset(e->buf, 0, len);
			e->valid = 0;
			__atomic_store_n(&e->checked_magic, 0, __ATOMIC_RELAXED);
		}
		*out = e;
		goto out_unlock;
	}

	n = calloc(1, sizeof(*n));
	if (n == NULL) {
		err = -ENOMEM;
		goto out_unlock;
	}
	n->e.buf = mc_buf_alloc(len);
	if (n->e.buf == NULL) {
		free(n);
		err = -ENOMEM;
		goto out_unlock;
	}
	e = &n->e;
	e->addr = addr;
	e->len = len;
	e->refs = 1;
	n->cost = sizeof(*n) + len;
	mc->bytes += n->cost;
	mc->nentries++;
	{
		size_t b = mc_hash(mc, addr);

		e->hnext = mc->table[b];
		mc->table[b] = e;
	}
	if ((flags & MC_NOREAD) == 0) {
		n->loading = true;
		pthread_mutex_unlock(&mc->lock);
		err = dev_read(mc->dev, e->buf, len, addr);
		pthread_mutex_lock(&mc->lock);
		n->loading = false;
		pthread_cond_broadcast(&mc->cond);
		if (err != 0) {
			__atomic_add_fetch(&mc->read_errors, 1, __ATOMIC_RELAXED);
			n->unhashed = true;
			n->load_err = err;
			mc_unhash_locked(mc, e);
			if (--e->refs == 0) {
				mc_node_free(mc, n);
			}
			goto out_unlock;
		}
	}
	*out = e;
	mc_evict_locked(mc);
out_unlock:
	pthread_mutex_unlock(&mc->lock);
	return err;
}

uint64_t mc_read_errors(struct mcache *mc)
{
	return __atomic_load_n(&mc->read_errors, __ATOMIC_RELAXED);
}

void mc_hold(struct mcache *mc, struct mc_entry *e)
{
	pthread_mutex_lock(&mc->lock);
	e->refs++;
	mc_lru_unlink_locked(e);
	pthread_mutex_unlock(&mc->lock);
}

void mc_put(struct mcache *mc, struct mc_entry *e)
{
	if (e == NULL) {
		return;
	}
	pthread_mutex_lock(&mc->lock);
	if (--e->refs == 0) {
		mc_lru_push_locked(mc, e);
		mc_evict_locked(mc);
	}
	pthread_mutex_unlock(&mc->lock);
}

void mc_drop_clean(struct mcache *mc)
{
	struct mc_entry *e;

	pthread_mutex_lock(&mc->lock);
	e = mc->lru.lru_prev;
	while (e != &mc->lru) {
		struct mc_entry *prev = e->lru_prev;

		if (mc_evictable(e)) {
			mc_lru_unlink_locked(e);
			mc_unhash_locked(mc, e);
			mc_node_free(mc, mc_node_of(e));
		}
		e = prev;
	}
	pthread_mutex_unlock(&mc->lock);
}

void mc_stats(struct mcache *mc, uint64_t *bytes, uint64_t *entries)
{
	pthread_mutex_lock(&mc->lock);
	if (bytes != NULL) {
		*bytes = mc->bytes;
	}
	if (entries != NULL) {
		*entries = mc->nentries;
	}
	pthread_mutex_unlock(&mc->lock);
}

int mc_frame_check(struct mc_entry *e, const struct lunfs_codec *c, uint32_t magic)
{
	int ret;

	if (__atomic_load_n(&e->checked_magic, __ATOMIC_RELAXED) == magic) {
		return 0;
	}
	ret = blk_verify(c, e->buf, magic, e->addr);
	if (ret == 0) {
		__atomic_store_n(&e->checked_magic, magic, __ATOMIC_RELAXED);
	}
	return ret;
}
