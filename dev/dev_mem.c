/*
 * Sparse memory device, for unit tests and for fault loops that must be
 * fast.
 *
 * Storage: a hash table (chained, power-of-two buckets, doubled when the
 * load passes 1) of 64 KiB chunks keyed by chunk index (offset >> 16). A
 * chunk that is not in the table reads as zeros. So memory is proportional
 * to the data written, never to the device size: an empty 64 TiB device
 * costs one 512-byte bucket array. Writing zeros into a missing chunk
 * allocates nothing (dev_zero_range over a fresh device stays free);
 * discard frees the chunks it covers whole and zeroes the partial ones.
 *
 * Concurrency: one rwlock. Batches without writes take it shared; writes,
 * CAW and discard take it exclusive, so a CAW's compare and write are one
 * step with respect to everything else on the device. flush has nothing
 * to do: memory is as durable as this device gets.
 *
 * Lock order: dev_mem.lock only.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lunfs/dev.h"

#define MEM_CHUNK_SHIFT 16u
#define MEM_CHUNK_SIZE (1u << MEM_CHUNK_SHIFT)
#define MEM_BUCKETS_MIN_SHIFT 6u

struct mem_chunk {
	struct mem_chunk *next;
	uint64_t idx; /* offset >> MEM_CHUNK_SHIFT */
	unsigned char data[];
};

struct dev_mem {
	struct lunfs_dev dev; /* first: the vtable hands us &dev */
	pthread_rwlock_t lock;
	/* Protected by lock: */
	struct mem_chunk **buckets;
	unsigned bucket_shift; /* log2 of the number of buckets */
	uint64_t nchunks;
};

static struct dev_mem *mem_from_dev(struct lunfs_dev *dev)
{
	return (struct dev_mem *)dev;
}

static size_t mem_bucket_of(uint64_t idx, unsigned shift)
{
	/* Fibonacci hashing: consecutive chunk indices spread evenly. */
	return (size_t)((idx * 0x9E3779B97F4A7C15ull) >> (64u - shift));
}

static struct mem_chunk *mem_chunk_find(struct dev_mem *m, uint64_t idx)
{
	struct mem_chunk *c = m->buckets[mem_bucket_of(idx, m->bucket_shift)];

	while (c != NULL && c->idx != idx) {
		c = c->next;
	}
	return c;
}

/* Double the bucket array. Failure is harmless: chains just get longer. */
static void mem_table_grow_locked(struct dev_mem *m)
{
	unsigned shift = m->bucket_shift + 1;
	size_t nold = (size_t)1 << m->bucket_shift;
	struct mem_chunk **nb;
	size_t i;

	if (shift >= 48) {
		return;
	}
	nb = calloc((size_t)1 << shift, sizeof(*nb));
	if (nb == NULL) {
		return;
	}
	for (i = 0; i < nold; i++) {
		struct mem_chunk *c = m->buckets[i];

		while (c != NULL) {
			struct mem_chunk *next = c->next;
			size_t b = mem_bucket_of(c->idx, shift);

			c->next = nb[b];
			nb[b] = c;
			c = next;
		}
	}
	free(m->buckets);
	m->buckets = nb;
	m->bucket_shift = shift;
}

static struct mem_chunk *mem_chunk_insert_locked(struct dev_mem *m, uint64_t idx)
{
	struct mem_chunk *c;
	size_t b;

	c = calloc(1, sizeof(*c) + MEM_CHUNK_SIZE);
	if (c == NULL) {
		return NULL;
	}
	c->idx = idx;
	b = mem_bucket_of(idx, m->bucket_shift);
	c->next = m->buckets[b];
	m->buckets[b] = c;
	m->nchunks++;
	if (m->nchunks > ((uint64_t)1 << m->bucket_shift)) {
		mem_table_grow_locked(m);
	}
	return c;
}

static void mem_chunk_remove_locked(struct dev_mem *m, uint64_t idx)
{
	struct mem_chunk **pp = &m->buckets[mem_bucket_of(idx, m->bucket_shift)];

	while (*pp != NULL) {
		if ((*pp)->idx == idx) {
			struct mem_chunk *c = *pp;

			*pp = c->next;
			free(c);
			m->nchunks--;
			return;
		}
		pp = &(*pp)->next;
	}
}

static bool mem_is_zero(const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] != 0) {
			return false;
		}
	}
	return true;
}

static void mem_read_locked(struct dev_mem *m, unsigned char *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		uint64_t idx = off >> MEM_CHUNK_SHIFT;
		size_t in = (size_t)(off & (MEM_CHUNK_SIZE - 1));
		size_t n = MEM_CHUNK_SIZE - in;
		struct mem_chunk *c;

		if (n > len) {
			n = len;
		}
		c = mem_chunk_find(m, idx);
		if (c != NULL) {
			memcpy(buf, c->data + in, n);
		} else {
			memset(buf, 0, n);
		}
		buf += n;
		off += n;
		len -= n;
	}
}

static int mem_write_locked(struct dev_mem *m, const unsigned char *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		uint64_t idx = off >> MEM_CHUNK_SHIFT;
		size_t in = (size_t)(off & (MEM_CHUNK_SIZE - 1));
		size_t n = MEM_CHUNK_SIZE - in;
		struct mem_chunk *c;

		if (n > len) {
			n = len;
		}
		c = mem_chunk_find(m, idx);
		if (c == NULL && !mem_is_zero(buf, n)) {
			c = mem_chunk_insert_locked(m, idx);
			if (c == NULL) {
				return -ENOMEM;
			}
		}
		if (c != NULL) {
			memcpy(c->data + in, buf, n);
		}
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int dev_mem_submit(struct lunfs_dev *dev, struct lunfs_io *ios, unsigned n)
{
	struct dev_mem *m = mem_from_dev(dev);
	bool writes = false;
	int first = 0;
	unsigned i;

	for (i = 0; i < n; i++) {
		if (ios[i].op == LUNFS_IO_WRITE) {
			writes = true;
		}
	}
	if (writes) {
		pthread_rwlock_wrlock(&m->lock);
	} else {
		pthread_rwlock_rdlock(&m->lock);
	}
	for (i = 0; i < n; i++) {
		struct lunfs_io *io = &ios[i];
		int err = 0;

		if (io->op == LUNFS_IO_READ) {
			mem_read_locked(m, io->buf, io->len, io->off);
		} else {
			err = mem_write_locked(m, io->buf, io->len, io->off);
		}
		io->res = err < 0 ? err : (ssize_t)io->len;
		if (err < 0 && first == 0) {
			first = err;
		}
	}
	pthread_rwlock_unlock(&m->lock);
	return first;
}

static int dev_mem_flush(struct lunfs_dev *dev)
{
	(void)dev;
	return 0;
}

static void mem_discard_chunk_locked(struct dev_mem *m, struct mem_chunk *c, uint64_t off, uint64_t end)
{
	uint64_t base = c->idx << MEM_CHUNK_SHIFT;
	uint64_t a = off > base ? off : base;
	uint64_t b = end < base + MEM_CHUNK_SIZE ? end : base + MEM_CHUNK_SIZE;

	if (a == base && b == base + MEM_CHUNK_SIZE) {
		mem_chunk_remove_locked(m, c->idx);
	} else if (a < b) {
		memset(c->data + (a - base), 0, (size_t)(b - a));
	}
}

static int dev_mem_discard(struct lunfs_dev *dev, uint64_t off, uint64_t len)
{
	struct dev_mem *m = mem_from_dev(dev);
	uint64_t end = off + len;
	uint64_t first = off >> MEM_CHUNK_SHIFT;
	uint64_t last = (end - 1) >> MEM_CHUNK_SHIFT;

	pthread_rwlock_wrlock(&m->lock);
	if (last - first + 1 <= m->nchunks) {
		uint64_t idx;

		for (idx = first; idx <= last; idx++) {
			struct mem_chunk *c = mem_chunk_find(m, idx);

			if (c != NULL) {
				mem_discard_chunk_locked(m, c, off, end);
			}
		}
	} else {
		/* The range holds more chunk slots than there are chunks (a
		 * discard of a whole big device): walk the table instead of
		 * the range, so the cost follows the data, not the size. */
		size_t nb = (size_t)1 << m->bucket_shift;
		size_t b;

		for (b = 0; b < nb; b++) {
			struct mem_chunk *c = m->buckets[b];

			while (c != NULL) {
				struct mem_chunk *next = c->next;

				if (c->idx >= first && c->idx <= last) {
					mem_discard_chunk_locked(m, c, off, end);
				}
				c = next;
			}
		}
	}
	pthread_rwlock_unlock(&m->lock);
	return 0;
}

static int dev_mem_caw(struct lunfs_dev *dev, uint64_t off, const void *expect,
		       const void *replace, void *current)
{
	struct dev_mem *m = mem_from_dev(dev);
	uint32_t ss = dev->sector_size;
	unsigned char *cur;
	int err;

	cur = malloc(ss);
	if (cur == NULL) {
		return -ENOMEM;
	}
	pthread_rwlock_wrlock(&m->lock);
	mem_read_locked(m, cur, ss, off);
	if (memcmp(cur, expect, ss) != 0) {
		if (current != NULL) {
			memcpy(current, cur, ss);
		}
		err = -ECANCELED;
		goto out_unlock;
	}
	err = mem_write_locked(m, replace, ss, off);
out_unlock:
	pthread_rwlock_unlock(&m->lock);
	free(cur);
	return err;
}

static void dev_mem_close(struct lunfs_dev *dev)
{
	struct dev_mem *m = mem_from_dev(dev);
	size_t nb = (size_t)1 << m->bucket_shift;
	size_t b;

	for (b = 0; b < nb; b++) {
		struct mem_chunk *c = m->buckets[b];

		while (c != NULL) {
			struct mem_chunk *next = c->next;

			free(c);
			c = next;
		}
	}
	free(m->buckets);
	pthread_rwlock_destroy(&m->lock);
	free(m);
}

static const struct lunfs_dev_ops dev_mem_ops = {
	.submit = dev_mem_submit,
	.flush = dev_mem_flush,
	.discard = dev_mem_discard,
	.caw = dev_mem_caw,
	.close = dev_mem_close,
};

int dev_mem_open(uint64_t size, uint32_t sector_size, struct lunfs_dev **out)
{
	struct dev_mem *m = NULL;
	int err;

	*out = NULL;
	if (sector_size < 512 || sector_size > MEM_CHUNK_SIZE ||
	    (sector_size & (sector_size - 1)) != 0 || size % sector_size != 0) {
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		return -ENOMEM;
	}
	m->bucket_shift = MEM_BUCKETS_MIN_SHIFT;
	m->buckets = calloc((size_t)1 << m->bucket_shift, sizeof(*m->buckets));
	if (m->buckets == NULL) {
		err = -ENOMEM;
		goto out_free;
	}
	err = -pthread_rwlock_init(&m->lock, NULL);
	if (err < 0) {
		goto out_free_buckets;
	}
	m->dev.ops = &dev_mem_ops;
	m->dev.size = size;
	m->dev.sector_size = sector_size;
	m->dev.io_deadline_ms = 0;
	m->dev.name = "mem";
	*out = &m->dev;
	return 0;

out_free_buckets:
	free(m->buckets);
out_free:
	free(m);
	return err;
}
