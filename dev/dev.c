/*
 * Generic device helpers: the only way the layers above reach a backend.
 *
 * Contract (include/lunfs/dev.h): every request is checked here, before
 * any backend sees it, so that a bad offset from a corrupt on-disk field
 * becomes -EINVAL instead of an out-of-range access in a backend (the memory
 * device would scribble on the heap, O_DIRECT would fail in odd ways).
 * Checks: offset and length are multiples of sector_size, length > 0, the
 * range lies inside [0, size) without overflow, and the buffer is aligned
 * to the sector size, at most 4 KiB (O_DIRECT needs it; enforcing it on
 * every backend makes code tested on the memory device safe on a disk).
 *
 * dev_zero_range writes one shared zero buffer many times per batch: a
 * discard is not assumed to read back as zeros (dev.h), and big batched
 * writes keep a block device's queue full.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lunfs/dev.h"

/* dev_zero_range: 1 MiB per write, 8 writes in flight per batch. */
#define DEV_ZERO_CHUNK (1u << 20)
#define DEV_ZERO_BATCH 8u

static int dev_range_check(const struct lunfs_dev *dev, uint64_t off, uint64_t len)
{
	uint64_t ss = dev->sector_size;

	if (len == 0 || off % ss != 0 || len % ss != 0) {
		return -EINVAL;
	}
	if (off > dev->size || len > dev->size - off) {
		return -EINVAL;
	}
	return 0;
}

uint32_t dev_mem_align(const struct lunfs_dev *dev)
{
	/* Without a better answer O_DIRECT wants the logical sector size; no
	 * real device has more than 4 KiB, and dev_buf_alloc gives 4 KiB. */
	if (dev->mem_align != 0) {
		return dev->mem_align;
	}
	return dev->sector_size < LUNFS_DEV_BUF_ALIGN ? dev->sector_size : LUNFS_DEV_BUF_ALIGN;
}

static int dev_io_check(const struct lunfs_dev *dev, const struct lunfs_io *io)
{
	uint32_t align = dev_mem_align(dev);

	if (io->op != LUNFS_IO_READ && io->op != LUNFS_IO_WRITE) {
		return -EINVAL;
	}
	if (io->buf == NULL || (uintptr_t)io->buf % align != 0) {
		return -EINVAL;
	}
	return dev_range_check(dev, io->off, io->len);
}

int dev_submit(struct lunfs_dev *dev, struct lunfs_io *ios, unsigned n)
{
	int err = 0;
	unsigned i;

	if (n == 0) {
		return 0;
	}
	if (ios == NULL) {
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		ios[i].res = 0;
		if (dev_io_check(dev, &ios[i]) < 0) {
			ios[i].res = -EINVAL;
			err = -EINVAL;
		}
	}
	if (err < 0) {
		/* All or nothing: a half-submitted batch would leave the caller
		 * unsure which writes happened. */
		for (i = 0; i < n; i++) {
			if (ios[i].res == 0) {
				ios[i].res = -ECANCELED;
			}
		}
		return err;
	}
	return dev->ops->submit(dev, ios, n);
}

int dev_read(struct lunfs_dev *dev, void *buf, size_t len, uint64_t off)
{
	struct lunfs_io io = {
		.op = LUNFS_IO_READ,
		.buf = buf,
		.len = len,
		.off = off,
	};

	return dev_submit(dev, &io, 1);
}

int dev_write(struct lunfs_dev *dev, const void *buf, size_t len, uint64_t off)
{
	/* The backends never write through a write's buffer; the cast only
	 * lets reads and writes share struct lunfs_io. */
	struct lunfs_io io = {
		.op = LUNFS_IO_WRITE,
		.buf = (void *)(uintptr_t)buf,
		.len = len,
		.off = off,
	};

	return dev_submit(dev, &io, 1);
}

int dev_flush(struct lunfs_dev *dev)
{
	return dev->ops->flush(dev);
}

int dev_discard(struct lunfs_dev *dev, uint64_t off, uint64_t len)
{
	int err;

	if (len == 0 && off % dev->sector_size == 0 && off <= dev->size) {
		return 0;
	}
	err = dev_range_check(dev, off, len);
	if (err < 0) {
		return err;
	}
	return dev->ops->discard(dev, off, len);
}

int dev_caw(struct lunfs_dev *dev, uint64_t off, const void *expect,
	    const void *replace, void *current)
{
	int err;

	if (expect == NULL || replace == NULL) {
		return -EINVAL;
	}
	err = dev_range_check(dev, off, dev->sector_size);
	if (err < 0) {
		return err;
	}
	return dev->ops->caw(dev, off, expect, replace, current);
}

void dev_close(struct lunfs_dev *dev)
{
	if (dev != NULL) {
		dev->ops->close(dev);
	}
}

int dev_zero_range(struct lunfs_dev *dev, uint64_t off, uint64_t len,
		   void (*progress)(uint64_t done, uint64_t total, void *arg), void *arg)
{
	struct lunfs_io ios[DEV_ZERO_BATCH];
	uint64_t done = 0;
	size_t chunk;
	void *zero = NULL;
	int err;

	if (len == 0 && off % dev->sector_size == 0 && off <= dev->size) {
		return 0;
	}
	err = dev_range_check(dev, off, len);
	if (err < 0) {
		return err;
	}
	/* DEV_ZERO_CHUNK is a multiple of every sector size we allow. */
	chunk = len < DEV_ZERO_CHUNK ? (size_t)len : DEV_ZERO_CHUNK;
	zero = dev_buf_alloc(chunk);
	if (zero == NULL) {
		err = -ENOMEM;
		goto out;
	}
	while (done < len) {
		unsigned n = 0;

		while (n < DEV_ZERO_BATCH && done < len) {
			uint64_t left = len - done;
			size_t this_len = left < chunk ? (size_t)left : chunk;

			ios[n] = (struct lunfs_io){
				.op = LUNFS_IO_WRITE,
				.buf = zero,
				.len = this_len,
				.off = off + done,
			};
			done += this_len;
			n++;
		}
		err = dev_submit(dev, ios, n);
		if (err < 0) {
			goto out;
		}
		if (progress != NULL) {
			progress(done, len, arg);
		}
	}
	err = 0;
out:
	dev_buf_free(zero);
	return err;
}

void *dev_buf_alloc(size_t len)
{
	void *buf = NULL;
	size_t alloc;

	/* Round up so that a buffer is always a whole number of 4 KiB pages:
	 * O_DIRECT on a 4K-sector disk may touch the whole last page. */
	if (len == 0) {
		len = 1;
	}
	if (len > SIZE_MAX - LUNFS_DEV_BUF_ALIGN) {
		return NULL;
	}
	alloc = (len + LUNFS_DEV_BUF_ALIGN - 1) / LUNFS_DEV_BUF_ALIGN * LUNFS_DEV_BUF_ALIGN;
	if (posix_memalign(&buf, LUNFS_DEV_BUF_ALIGN, alloc) != 0) {
		return NULL;
	}
	memset(buf, 0, alloc);
	return buf;
}

void dev_buf_free(void *buf)
{
	free(buf);
}
