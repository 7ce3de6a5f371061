/*
 * The regular-file data path: read, write, truncate, fallocate, seek
 * (fs_internal.h "file"; docs/FORMAT.md "Block maps", "Written chunks").
 *
 * A file block (file_block_size, 64 KiB .. 64 MiB) has 64 chunks, and its
 * map entry's `written` bit per chunk says whether the chunk's bytes on
 * disk are the file's: a clear bit reads as zeros whatever the disk holds.
 * That is how a newly allocated block never shows a deleted file's bytes
 * without being zeroed first, and how fallocate preallocates terabytes
 * without writing them.
 *
 * Invariants
 *   (Z) every byte at or beyond di.size reads as zero: a write zero-fills
 *       the untouched part of every unwritten chunk it sets written (in the
 *       same aligned I/O), and a shrinking truncate zeroes the tail of the
 *       new last block before the size goes down. So growing a file needs
 *       no zeroing at all.
 *   (D) data before metadata: new blocks (and copy-on-write copies) are
 *       written and completed before the map entries that make them
 *       reachable are set, in a handle that asks the journal to flush data
 *       before the commit (jnl_order_data). A crash can lose the write, but
 *       never shows garbage.
 *   (S) a block whose entry has SHARED and whose refcount has extra > 0 is
 *       never written in place: the writer copies the written chunks into a
 *       new block, maps it, and drops one reference to the old one.
 *
 * Concurrency (fs_internal.h): reads, and overwrites that change no
 * metadata (the range lies in mapped, unshared, fully written chunks,
 * sector aligned, not beyond EOF), run under im->lock shared, so several
 * threads read and overwrite one file at once; only the mtime/ctime update
 * afterwards takes meta_lock briefly. Everything else takes meta_lock and
 * then im->lock exclusive, in batches of at most FILE_BATCH_BLOCKS blocks,
 * one journal handle per batch (allocation, map, size and times of a batch
 * commit together). Unaligned overwrites take the exclusive path because
 * their read-modify-write of the edge sectors must not race another
 * writer of the same sector.
 *
 * I/O goes through aligned bounce buffers (FUSE buffers are not aligned;
 * the device needs sector alignment for O_DIRECT), several requests per
 * dev_submit so they are in flight together; a buffer that happens to be
 * aligned is used directly.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_internal.h"
#include "lunfs/lockd.h"
#include "lunfs/cluster.h"
#include "lunfs/map.h"

#define FILE_BATCH_BLOCKS 16u              /* blocks per write transaction */
#define FILE_BATCH_BYTES (32ull << 20)     /* bounce memory per write batch */
#define FILE_READ_BATCH_BYTES (16ull << 20) /* bounce memory per read batch */
#define FILE_IO_MAX 64u                    /* requests per dev_submit */
#define FILE_ZERO_BATCH 64u                /* entries changed per zeroing transaction */
#define FILE_MAX_BYTES ((uint64_t)INT64_MAX)

/* Write flags of file_write_locked. */
#define FW_NO_EXTEND 1u                    /* never change the size (zeroing) */

static uint64_t fl_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t fl_max(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static uint64_t align_down(uint64_t x, uint64_t a)
{
	return x - x % a;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return align_down(x + a - 1, a);
}

/* Chunks cs..ce (inclusive) as a written mask. */
static uint64_t chunk_mask(unsigned cs, unsigned ce)
{
	uint64_t hi = ce >= 63 ? ~0ull : ((1ull << (ce + 1)) - 1);

	return hi & ~((1ull << cs) - 1);
}

static void *file_bounce_alloc(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, LUNFS_DEV_BUF_ALIGN, len == 0 ? LUNFS_DEV_BUF_ALIGN : len) != 0) {
		return NULL;
	}
	return p;
}

/* Submit n requests, FILE_IO_MAX at a time. Self-fencing (DESIGN 5.5): a
 * batch that writes is submitted only while our lease is valid, checked
 * right before the submit so that the window between check and submit is a
 * few instructions; a host that was frozen past its fence time, or whose
 * slot was taken over, gets EIO instead of writing into files that another
 * host may own by now. */
static int file_io_submit(struct lunfs_vol *v, struct lunfs_io *ios, unsigned n)
{
	for (unsigned i = 0; i < n; i += FILE_IO_MAX) {
		unsigned k = n - i < FILE_IO_MAX ? n - i : FILE_IO_MAX;
		bool writes = false;
		int ret;

		for (unsigned j = i; j < i + k; j++) {
			writes |= ios[j].op == LUNFS_IO_WRITE;
		}
		if (writes && v->ld != NULL) {
			ret = lockd_check_lease(v->ld);
			if (ret < 0) {
				return ret;
			}
		}
		ret = dev_submit(v->dev, ios + i, k);

		if (ret < 0) {
			return ret;
		}
	}
	return 0;
}

/* May the device take p directly, with no bounce copy? */
static bool file_buf_ok(const struct lunfs_vol *v, const void *p)
{
	return ((uintptr_t)p % dev_mem_align(v->dev)) == 0;
}

static bool file_aligned(const struct lunfs_vol *v, const void *p, uint64_t phys, uint64_t len)
{
	uint32_t ss = v->sb.sector_size;

	return file_buf_ok(v, p) && phys % ss == 0 && len % ss == 0;
}

/* ---- read ------------------------------------------------------------ */

struct rseg {
	uint64_t phys;   /* device byte address of the first byte wanted */
	uint64_t len;
	uint8_t *dst;
};

struct rbatch {
	struct rseg seg[FILE_IO_MAX];
	unsigned n;
	uint64_t bounce;  /* bytes of bounce buffer the batch needs */
};

static int rbatch_flush(struct lunfs_vol *v, struct rbatch *b)
{
	struct lunfs_io ios[FILE_IO_MAX];
	uint32_t ss = v->sb.sector_size;
	uint8_t *bounce = NULL, *p;
	int ret = 0;

	if (b->n == 0) {
		return 0;
	}
	if (b->bounce > 0) {
		bounce = file_bounce_alloc(b->bounce);
		if (bounce == NULL) {
			return -ENOMEM;
		}
	}
	p = bounce;
	for (unsigned i = 0; i < b->n; i++) {
		struct rseg *s = &b->seg[i];

		ios[i].op = LUNFS_IO_READ;
		ios[i].res = 0;
		if (file_aligned(v, s->dst, s->phys, s->len)) {
			ios[i].buf = s->dst;
			ios[i].off = s->phys;
			ios[i].len = s->len;
		} else {
			ios[i].off = align_down(s->phys, ss);
			ios[i].len = align_up(s->phys + s->len, ss) - ios[i].off;
			ios[i].buf = p;
			p += ios[i].len;
		}
	}
	ret = file_io_submit(v, ios, b->n);
	if (ret == 0) {
		for (unsigned i = 0; i < b->n; i++) {
			struct rseg *s = &b->seg[i];

			if (ios[i].buf != s->dst) {
				memcpy(s->dst, (uint8_t *)ios[i].buf + (s->phys - ios[i].off), s->len);
			}
		}
	}
	free(bounce);
	b->n = 0;
	b->bounce = 0;
	return ret;
}

static int rbatch_add(struct lunfs_vol *v, struct rbatch *b, uint64_t phys, uint64_t len, uint8_t *dst)
{
	uint32_t ss = v->sb.sector_size;

	while (len > 0) {
		uint64_t n = fl_min(len, FILE_READ_BATCH_BYTES / 2);
		struct rseg *last = b->n > 0 ? &b->seg[b->n - 1] : NULL;
		uint64_t need;
		int ret;

		if (last != NULL && last->phys + last->len == phys && last->dst + last->len == dst &&
		    last->len + n <= FILE_READ_BATCH_BYTES / 2 &&
		    b->bounce + n + ss <= FILE_READ_BATCH_BYTES) {
			/* Extends the previous request. */
			b->bounce -= align_up(last->phys + last->len, ss) - align_down(last->phys, ss);
			last->len += n;
			b->bounce += align_up(last->phys + last->len, ss) - align_down(last->phys, ss);
		} else {
			need = align_up(phys + n, ss) - align_down(phys, ss);
			if (b->n == FILE_IO_MAX || b->bounce + need > FILE_READ_BATCH_BYTES) {
				ret = rbatch_flush(v, b);
				if (ret != 0) {
					return ret;
				}
			}
			b->seg[b->n].phys = phys;
			b->seg[b->n].len = n;
			b->seg[b->n].dst = dst;
			b->n++;
			b->bounce += need;
		}
		phys += n;
		dst += n;
		len -= n;
	}
	return 0;
}

/* Caller holds im->lock (either mode). [off, off+len) lies below EOF. */
static int file_read_locked(struct lunfs_vol *v, struct inode_mem *im, uint8_t *buf, uint64_t len,
			    uint64_t off)
{
	uint64_t bs = v->sb.file_block_size, chunk = bs / LUNFS_MAP_CHUNKS;
	uint64_t pos = off, end = off + len;
	struct rbatch batch, *b = &batch; /* 1.5 KiB: no malloc per read */
	int ret = 0;

	b->n = 0;
	b->bounce = 0;
	while (pos < end) {
		struct lunfs_map_entry e;
		uint64_t lblk = pos / bs, run, run_end;

		ret = bmap_lookup_n(v, im, lblk, (end - 1) / bs - lblk + 1, &e, &run);
		if (ret != 0) {
			break;
		}
		/* Blocks past the run's end, careful with 2^64. */
		run_end = run > (end - 1) / bs - lblk ? end : (lblk + run) * bs;
		if (e.addr == 0) {
			memset(buf + (pos - off), 0, run_end - pos);
			pos = run_end;
			continue;
		}
		if (e.written == ~0ull) {
			ret = rbatch_add(v, b, e.addr + (pos - lblk * bs), run_end - pos, buf + (pos - off));
			if (ret != 0) {
				break;
			}
			pos = run_end;
			continue;
		}
		/* Chunk by chunk: written ones from the disk, the rest zeros. */
		while (pos < run_end) {
			uint64_t in = pos % bs;
			unsigned c = (unsigned)(in / chunk);
			uint64_t cend = fl_min(run_end, pos - in + (c + 1) * chunk);
			uint64_t phys = e.addr + (pos / bs - lblk) * bs + in;

			if (e.written & (1ull << c)) {
				ret = rbatch_add(v, b, phys, cend - pos, buf + (pos - off));
				if (ret != 0) {
					goto out;
				}
			} else {
				memset(buf + (pos - off), 0, cend - pos);
			}
			pos = cend;
		}
	}
out:
	if (ret == 0) {
		ret = rbatch_flush(v, b);
	}
	return ret;
}

ssize_t file_read(struct lunfs_vol *v, struct inode_mem *im, void *buf, size_t len, uint64_t off)
{
	uint64_t n;
	int ret;

	pthread_rwlock_rdlock(&im->lock);
	if (off >= im->di.size || len == 0) {
		pthread_rwlock_unlock(&im->lock);
		return 0;
	}
	n = fl_min(len, im->di.size - off);
	if (n > SSIZE_MAX) {
		n = SSIZE_MAX - (SSIZE_MAX % v->sb.file_block_size);
	}
	ret = file_read_locked(v, im, buf, n, off);
	pthread_rwlock_unlock(&im->lock);
	return ret < 0 ? ret : (ssize_t)n;
}

/* ---- write ------------------------------------------------------------ */

/* mtime and ctime after a write: a short handle of its own, unless the
 * times are younger than FILE_TIME_GRAN_NS. The kernel stamps file times
 * at a similar grain (the timer tick, 1 to 10 ms) for the same reason:
 * without it every 4 KiB overwrite took meta_lock, a journal handle and
 * the inode exclusively, and the overwrite fast path ran one at a time
 * (4 KiB random writes: 20k/s). The read is racy on purpose (im->lock is
 * held shared or not at all): a stale value only costs one touch more. */
#define FILE_TIME_GRAN_NS 4000000ull

static int file_touch(struct lunfs_vol *v, struct inode_mem *im)
{
	struct jnl_handle *h;
	uint64_t now = (uint64_t)vol_now_ns();
	int ret, r;

	if (now >= __atomic_load_n(&im->di.mtime_ns, __ATOMIC_RELAXED) &&
	    now - __atomic_load_n(&im->di.mtime_ns, __ATOMIC_RELAXED) < FILE_TIME_GRAN_NS) {
		return 0;
	}
	pthread_mutex_lock(&v->meta_lock);
	ret = jnl_start(v->jnl, 2, &h);
	if (ret == 0) {
		pthread_rwlock_wrlock(&im->lock);
		im->di.mtime_ns = im->di.ctime_ns = (uint64_t)vol_now_ns();
		ret = inode_dirty(h, im);
		pthread_rwlock_unlock(&im->lock);
		r = jnl_stop(h, false);
		ret = ret != 0 ? ret : r;
	}
	pthread_mutex_unlock(&v->meta_lock);
	return ret;
}

/* The overwrite fast path: if [off, off+len) lies in mapped, unshared,
 * fully written chunks below EOF and is sector aligned, write it in place
 * under the shared lock. Returns len, or 0 when the slow path is needed. */
static ssize_t file_write_fast(struct lunfs_vol *v, struct inode_mem *im, const uint8_t *buf,
			       uint64_t len, uint64_t off)
{
	uint64_t bs = v->sb.file_block_size, chunk = bs / LUNFS_MAP_CHUNKS;
	uint32_t ss = v->sb.sector_size;
	uint64_t pos = off, end = off + len;
	struct lunfs_io ios[FILE_IO_MAX];
	uint64_t seg_off[FILE_IO_MAX];
	unsigned n = 0;
	uint8_t *bounce = NULL;
	bool aligned = file_buf_ok(v, buf);
	int ret = 0;

	if (off % ss != 0 || len % ss != 0 || len > FILE_BATCH_BYTES) {
		return 0;
	}
	pthread_rwlock_rdlock(&im->lock);
	if (end > im->di.size) {
		goto slow;
	}
	while (pos < end) {
		struct lunfs_map_entry e;
		uint64_t lblk = pos / bs, run, run_end, phys;
		unsigned cs, ce;

		ret = bmap_lookup_n(v, im, lblk, (end - 1) / bs - lblk + 1, &e, &run);
		if (ret != 0) {
			goto out;
		}
		if (e.addr == 0 || (e.flags & LUNFS_MAPE_SHARED) != 0) {
			goto slow;
		}
		run_end = run > (end - 1) / bs - lblk ? end : (lblk + run) * bs;
		/* Every block of the run has the same written mask: check the
		 * touched chunks of the first and last block and, if the run
		 * spans more, all of them. */
		cs = (unsigned)((pos % bs) / chunk);
		ce = (unsigned)(((run_end - 1) % bs) / chunk);
		if (run_end - pos > bs || (run_end - 1) / bs != lblk) {
			if (e.written != ~0ull) {
				goto slow;
			}
		} else if ((e.written & chunk_mask(cs, ce)) != chunk_mask(cs, ce)) {
			goto slow;
		}
		phys = e.addr + (pos - lblk * bs);
		if (n > 0 && ios[n - 1].off + ios[n - 1].len == phys) {
			ios[n - 1].len += run_end - pos;
		} else {
			if (n == FILE_IO_MAX) {
				goto slow;
			}
			ios[n].op = LUNFS_IO_WRITE;
			ios[n].off = phys;
			ios[n].len = run_end - pos;
			ios[n].res = 0;
			seg_off[n] = pos - off;
			n++;
		}
		pos = run_end;
	}
	if (!aligned) {
		bounce = file_bounce_alloc(len);
		if (bounce == NULL) {
			ret = -ENOMEM;
			goto out;
		}
		memcpy(bounce, buf, len);
	}
	for (unsigned i = 0; i < n; i++) {
		ios[i].buf = (void *)((aligned ? buf : bounce) + seg_off[i]);
	}
	ret = file_io_submit(v, ios, n);
	free(bounce);
out:
	pthread_rwlock_unlock(&im->lock);
	if (ret == 0) {
		ret = file_touch(v, im);
	}
	return ret < 0 ? ret : (ssize_t)len;
slow:
	pthread_rwlock_unlock(&im->lock);
	return 0;
}

/* One block of a write batch. */
struct wblk {
	uint64_t lblk;
	struct lunfs_map_entry old, new;
	uint64_t s, t;        /* bytes written by the caller, within the block */
	uint64_t lo, hi;      /* the I/O, within the block, sector aligned */
	uint64_t src;         /* block to read old chunks from (0 = none) */
	uint64_t srcw;        /* its written mask */
	bool fresh;           /* newly allocated */
	bool cow;             /* copy of a shared block */
	bool direct;          /* the caller's bytes are the whole I/O: buf
	                       * points into them, no bounce copy */
	uint8_t *buf;         /* hi - lo bytes in the batch bounce buffer */
};

/* Decide lo/hi for b (new.addr and srcw set), given whether its source
 * must be copied whole (COW). */
static void wblk_range(const struct lunfs_vol *v, struct wblk *b)
{
	uint64_t bs = v->sb.file_block_size, chunk = bs / LUNFS_MAP_CHUNKS;
	uint32_t ss = v->sb.sector_size;
	unsigned cs = (unsigned)(b->s / chunk), ce = (unsigned)((b->t - 1) / chunk);

	if (b->cow) {
		uint64_t w = b->srcw | chunk_mask(cs, ce);
		unsigned lo_c = (unsigned)__builtin_ctzll(w), hi_c = 63u - (unsigned)__builtin_clzll(w);

		b->lo = align_down(lo_c * chunk, ss);
		b->hi = align_up((hi_c + 1) * chunk, ss);
		return;
	}
	b->lo = align_down((b->srcw & (1ull << cs)) ? b->s : cs * chunk, ss);
	b->hi = align_up((b->srcw & (1ull << ce)) ? b->t : (ce + 1) * chunk, ss);
}

/* Zero, in buf (covering [lo, hi) of the block), the bytes of [a, z) whose
 * chunk is not in `w`. */
static void wblk_zero_unwritten(const struct lunfs_vol *v, const struct wblk *b, uint64_t w,
				uint64_t a, uint64_t z)
{
	uint64_t chunk = v->sb.file_block_size / LUNFS_MAP_CHUNKS;

	while (a < z) {
		uint64_t c = a / chunk, cend = fl_min(z, (c + 1) * chunk);

		if ((w & (1ull << c)) == 0) {
			memset(b->buf + (a - b->lo), 0, cend - a);
		}
		a = cend;
	}
}

/* Does [a, z) of the block hold a byte of a chunk in w? */
static bool wblk_any_written(const struct lunfs_vol *v, uint64_t w, uint64_t a, uint64_t z)
{
	uint64_t chunk = v->sb.file_block_size / LUNFS_MAP_CHUNKS;

	if (a >= z) {
		return false;
	}
	return (w & chunk_mask((unsigned)(a / chunk), (unsigned)((z - 1) / chunk))) != 0;
}

/* Read what the batch needs from the old blocks: for a COW block the
 * chunks that hold data (written) and that the write does not cover whole
 * (the rest of its range is the caller's data or zeros: a 1 MiB write
 * over a shared block reads nothing), for an in-place block the edge
 * sectors that carry written bytes the caller does not overwrite. */
static int wbatch_read(struct lunfs_vol *v, struct wblk *bl, unsigned n)
{
	uint64_t chunk = v->sb.file_block_size / LUNFS_MAP_CHUNKS;
	uint32_t ss = v->sb.sector_size;
	/* A COW block needs at most one read per run of chunks: 33. */
	struct lunfs_io *ios = malloc((size_t)n * (LUNFS_MAP_CHUNKS / 2 + 1) * sizeof(*ios));
	unsigned k = 0;
	int ret;

	if (ios == NULL) {
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		struct wblk *b = &bl[i];

		if (b->src == 0) {
			continue;
		}
		if (b->cow) {
			unsigned first = k;

			for (uint64_t c = b->lo / chunk; c * chunk < b->hi; c++) {
				bool covered = c * chunk >= b->s && (c + 1) * chunk <= b->t;
				uint64_t a, z;

				if ((b->srcw & (1ull << c)) == 0 || covered) {
					continue;
				}
				/* Sector-aligned, inside the block's range. */
				a = fl_max(align_down(c * chunk, ss), b->lo);
				z = fl_min(align_up((c + 1) * chunk, ss), b->hi);
				if (k > first && ios[k - 1].off + ios[k - 1].len >= b->src + a) {
					ios[k - 1].len = b->src + z - ios[k - 1].off;
					continue;
				}
				ios[k++] = (struct lunfs_io){ .op = LUNFS_IO_READ, .buf = b->buf + (a - b->lo),
							      .len = z - a, .off = b->src + a };
			}
			continue;
		}
		if (wblk_any_written(v, b->srcw, b->lo, b->s)) {
			ios[k++] = (struct lunfs_io){ .op = LUNFS_IO_READ, .buf = b->buf,
						      .len = ss, .off = b->src + b->lo };
		}
		if (wblk_any_written(v, b->srcw, b->t, b->hi) &&
		    !(b->hi - ss == b->lo && k > 0 && ios[k - 1].buf == b->buf)) {
			ios[k++] = (struct lunfs_io){ .op = LUNFS_IO_READ,
						      .buf = b->buf + (b->hi - ss - b->lo),
						      .len = ss, .off = b->src + b->hi - ss };
		}
	}
	ret = k > 0 ? file_io_submit(v, ios, k) : 0;
	free(ios);
	return ret;
}

/* Write [off, off+len) (buf NULL = zeros). Caller holds meta_lock and
 * im->lock exclusive. Returns the bytes written (short on ENOSPC after
 * some progress) or a negative errno. */
static ssize_t file_write_locked(struct lunfs_vol *v, struct inode_mem *im, const uint8_t *buf,
				 uint64_t len, uint64_t off, unsigned flags)
{
	uint64_t bs = v->sb.file_block_size;
	uint64_t pos = off, end = off + len;
	struct wblk bl[FILE_BATCH_BLOCKS];
	uint8_t *bounce = NULL;
	bool retried = false;
	int ret = 0;

	while (pos < end) {
		struct jnl_handle *h = NULL;
		struct lunfs_io wios[FILE_BATCH_BLOCKS];
		uint64_t bytes = 0, hint = 0;
		unsigned n = 0, mapped = 0;
		int r;

		/* Plan the batch: which blocks, and what each needs. */
		while (pos + bytes < end && n < FILE_BATCH_BLOCKS) {
			struct wblk *b = &bl[n];
			uint64_t p = pos + bytes, run;

			memset(b, 0, sizeof(*b));
			b->lblk = p / bs;
			b->s = p % bs;
			b->t = fl_min(bs, end - b->lblk * bs);
			ret = bmap_lookup(v, im, b->lblk, &b->old, &run);
			if (ret != 0) {
				goto out;
			}
			if (b->old.addr != 0 && (b->old.flags & LUNFS_MAPE_SHARED) != 0) {
				uint32_t extra = 0;

				/* We hold the file's lock: the peek never says
				 * "alone" for a block that is shared (alloc.c). */
				ret = alloc_ref_peek(v->alloc, b->old.addr, &extra);
				if (ret != 0) {
					goto out;
				}
				b->cow = extra > 0;
			}
			b->src = b->old.addr;
			b->srcw = b->old.addr != 0 ? b->old.written : 0;
			b->fresh = b->old.addr == 0;
			wblk_range(v, b);
			if (n > 0 && bytes + (b->hi - b->lo) > FILE_BATCH_BYTES) {
				break;
			}
			bytes += b->t - b->s;
			n++;
		}
		{
			uint64_t total = 0;

			/* A block whose I/O is exactly the caller's bytes
			 * (nothing to keep, zero or read around them) is
			 * written from the caller's buffer when the device
			 * takes its alignment: a FUSE payload, on a device
			 * whose O_DIRECT needs little alignment. */
			for (unsigned i = 0; i < n; i++) {
				struct wblk *b = &bl[i];

				b->direct = buf != NULL && b->lo == b->s && b->hi == b->t &&
					    file_buf_ok(v, buf + (b->lblk * bs + b->s - off));
				total += b->direct ? 0 : b->hi - b->lo;
			}
			if (total > 0) {
				bounce = file_bounce_alloc(total);
				if (bounce == NULL) {
					ret = -ENOMEM;
					goto out;
				}
			}
			total = 0;
			for (unsigned i = 0; i < n; i++) {
				struct wblk *b = &bl[i];

				if (b->direct) {
					/* Only ever a write source. */
					b->buf = (uint8_t *)(uintptr_t)(buf + (b->lblk * bs + b->s - off));
					continue;
				}
				b->buf = bounce + total;
				total += b->hi - b->lo;
			}
		}
		ret = jnl_start(v->jnl, 2 * bmap_set_credits(im) + 4 * n + 4, &h);
		if (ret != 0) {
			goto out;
		}
		jnl_order_data(h);
		/* Allocate: fresh blocks in contiguous runs, next to the
		 * previous logical block so sequential writes stay sequential. */
		if (bl[0].lblk > 0) {
			struct lunfs_map_entry pe;
			uint64_t prun;

			if (bmap_lookup(v, im, bl[0].lblk - 1, &pe, &prun) == 0 && pe.addr != 0) {
				hint = pe.addr + bs;
			}
		}
		for (unsigned i = 0; i < n; i++) {
			struct wblk *b = &bl[i];
			uint64_t addr, got, want = 1;

			if (!b->fresh && !b->cow) {
				b->new = b->old;
				hint = b->old.addr + bs;
				continue;
			}
			if (b->new.addr != 0) {
				hint = b->new.addr + bs;
				continue; /* got with an earlier block's run */
			}
			while (b->fresh && i + want < n && bl[i + want].fresh) {
				want++;
			}
			ret = alloc_units(v->alloc, h, LUNFS_CLUSTER_FILE, want, hint, &addr, &got);
			if (ret != 0) {
				/* Write what has a block; the rest is short. */
				n = i;
				break;
			}
			for (uint64_t k = 0; k < got; k++) {
				bl[i + k].new.addr = addr + k * bs;
			}
			hint = addr + got * bs;
		}
		if (n == 0) {
			(void)jnl_stop(h, false);
			free(bounce);
			bounce = NULL;
			/* Space freed by the running transaction becomes usable
			 * once it commits: commit, then try this batch again. */
			if (ret == -ENOSPC && !retried && alloc_busy_pending(v->alloc)) {
				retried = true;
				ret = jnl_sync(v->jnl);
				if (ret == 0) {
					continue;
				}
			}
			/* Nothing allocated: the error (ENOSPC) is the answer. */
			goto out;
		}
		ret = 0;
		/* Build the new contents, then write them. */
		for (unsigned i = 0; i < n; i++) {
			struct wblk *b = &bl[i];
			uint64_t chunk = bs / LUNFS_MAP_CHUNKS;
			uint64_t touched = chunk_mask((unsigned)(b->s / chunk), (unsigned)((b->t - 1) / chunk));

			b->new.written = b->srcw | touched;
			/* A copy is ours alone; so is a block written in place
			 * (its refcount said so): without SHARED its next
			 * overwrite takes the fast path again. */
			b->new.flags &= ~LUNFS_MAPE_SHARED;
			/* A fresh block's range around the caller's bytes
			 * reads as zeros (invariant Z); the bytes themselves
			 * are copied in below. */
			if (b->fresh) {
				memset(b->buf, 0, b->s - b->lo);
				memset(b->buf + (b->t - b->lo), 0, b->hi - b->t);
			}
		}
		ret = wbatch_read(v, bl, n);
		for (unsigned i = 0; i < n && ret == 0; i++) {
			struct wblk *b = &bl[i];
			uint64_t src_off = (b->lblk * bs + b->s) - off;

			if (!b->fresh) {
				wblk_zero_unwritten(v, b, b->srcw, b->lo, b->s);
				wblk_zero_unwritten(v, b, b->srcw, b->t, b->hi);
			}
			if (b->direct) {
				/* b->buf is buf + src_off already. */
			} else if (buf != NULL) {
				memcpy(b->buf + (b->s - b->lo), buf + src_off, b->t - b->s);
			} else {
				memset(b->buf + (b->s - b->lo), 0, b->t - b->s);
			}
			wios[i] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = b->buf,
						     .len = b->hi - b->lo, .off = b->new.addr + b->lo };
		}
		if (ret == 0) {
			ret = file_io_submit(v, wios, n);
		}
		/* Data is on the device: make it reachable. */
		for (unsigned i = 0; i < n && ret == 0; i++) {
			struct wblk *b = &bl[i];

			if (memcmp(&b->new, &b->old, sizeof(b->new)) != 0) {
				ret = bmap_set(v, h, im, b->lblk, &b->new);
				if (ret != 0) {
					break;
				}
			}
			mapped = i + 1;
			if (b->fresh) {
				im->di.alloc_bytes += bs;
			} else if (b->cow) {
				/* Drops our reference; the others keep it. */
				ret = alloc_free(v->alloc, h, LUNFS_CLUSTER_FILE, b->old.addr, 1);
			}
		}
		/* Blocks allocated for the part that did not make it go back. */
		for (unsigned i = mapped; i < n; i++) {
			if (bl[i].fresh || bl[i].cow) {
				(void)alloc_free(v->alloc, h, LUNFS_CLUSTER_FILE, bl[i].new.addr, 1);
			}
		}
		if (mapped > 0) {
			/* Blocks are consecutive: the done part ends where the
			 * first block not mapped would have started. */
			uint64_t done_end = mapped == n ? bl[n - 1].lblk * bs + bl[n - 1].t
							: bl[mapped].lblk * bs + bl[mapped].s;

			if (!(flags & FW_NO_EXTEND) && done_end > im->di.size) {
				im->di.size = done_end;
			}
			im->di.mtime_ns = im->di.ctime_ns = (uint64_t)vol_now_ns();
			r = inode_dirty(h, im);
			ret = ret != 0 ? ret : r;
			pos = done_end;
		}
		r = jnl_stop(h, false);
		ret = ret != 0 ? ret : r;
		free(bounce);
		bounce = NULL;
		if (ret != 0 || mapped < n || n == 0) {
			if (ret == 0) {
				ret = -ENOSPC;
			}
			break;
		}
	}
out:
	free(bounce);
	if (pos > off) {
		return (ssize_t)(pos - off);
	}
	return ret < 0 ? ret : -ENOSPC;
}

ssize_t file_write(struct lunfs_vol *v, struct inode_mem *im, const void *buf, size_t len, uint64_t off)
{
	ssize_t ret;

	if (len == 0) {
		return 0;
	}
	if (off >= FILE_MAX_BYTES) {
		return -EFBIG;
	}
	if (len > FILE_MAX_BYTES - off) {
		len = (size_t)(FILE_MAX_BYTES - off);
	}
	if (len > SSIZE_MAX) {
		len = SSIZE_MAX;
	}
	ret = file_write_fast(v, im, buf, len, off);
	if (ret != 0) {
		return ret;
	}
	pthread_mutex_lock(&v->meta_lock);
	pthread_rwlock_wrlock(&im->lock);
	ret = file_write_locked(v, im, buf, len, off, 0);
	pthread_rwlock_unlock(&im->lock);
	pthread_mutex_unlock(&v->meta_lock);
	return ret;
}

/* ---- zeroing, truncate, fallocate ------------------------------------- */

/* Make [off, off+len) read as zeros without changing the size or the
 * allocation: whole chunks lose their written bit, written chunks that are
 * only partly inside get zeros written. Caller holds meta_lock and
 * im->lock exclusive. */
static int file_zero_locked(struct lunfs_vol *v, struct inode_mem *im, uint64_t off, uint64_t len)
{
	uint64_t bs = v->sb.file_block_size, chunk = bs / LUNFS_MAP_CHUNKS;
	uint64_t end = off + len, pos;
	int ret = 0;

	if (len == 0) {
		return 0;
	}
	/* Edges first: the chunks only partly inside, if they hold data. */
	for (int side = 0; side < 2; side++) {
		uint64_t c0 = align_down(off, chunk), c1 = align_down(end - 1, chunk);
		uint64_t a, z;
		struct lunfs_map_entry e;
		uint64_t run;

		if (side == 0) {
			if (off % chunk == 0 && end - off >= chunk) {
				continue;
			}
			a = off;
			z = fl_min(end, c0 + chunk);
		} else {
			if (c1 == c0 || end % chunk == 0) {
				continue;
			}
			a = c1;
			z = end;
		}
		ret = bmap_lookup(v, im, a / bs, &e, &run);
		if (ret != 0) {
			return ret;
		}
		if (e.addr != 0 && (e.written & (1ull << ((a % bs) / chunk))) != 0) {
			ssize_t w = file_write_locked(v, im, NULL, z - a, a, FW_NO_EXTEND);

			if (w < 0) {
				return (int)w;
			}
		}
	}
	/* Whole chunks: clear their bits, FILE_ZERO_BATCH entries per handle. */
	pos = off;
	while (pos < end && ret == 0) {
		struct jnl_handle *h;
		unsigned changed = 0;

		ret = jnl_start(v->jnl, 2 * bmap_set_credits(im) + 2, &h);
		if (ret != 0) {
			return ret;
		}
		while (pos < end && changed < FILE_ZERO_BATCH) {
			struct lunfs_map_entry e;
			uint64_t lblk = pos / bs, run, s, t;
			unsigned cs, ce;

			ret = bmap_lookup(v, im, lblk, &e, &run);
			if (ret != 0) {
				break;
			}
			if (e.addr == 0) {
				pos = run > (end - 1) / bs - lblk ? end : (lblk + run) * bs;
				continue;
			}
			s = pos % bs;
			t = fl_min(bs, end - lblk * bs);
			/* Chunks entirely inside [s, t). */
			cs = (unsigned)(align_up(s, chunk) / chunk);
			ce = (unsigned)(align_down(t, chunk) / chunk); /* exclusive */
			if (cs < ce) {
				uint64_t m = chunk_mask(cs, ce - 1);

				if ((e.written & m) != 0) {
					e.written &= ~m;
					ret = bmap_set(v, h, im, lblk, &e);
					changed++;
				}
			}
			pos = lblk * bs + t;
		}
		if (ret == 0 && changed > 0) {
			ret = inode_dirty(h, im);
		}
		int r = jnl_stop(h, false);

		ret = ret != 0 ? ret : r;
	}
	return ret;
}

/* file_zero_locked on [a, z) clipped to the size. */
static int file_zero_clip(struct lunfs_vol *v, struct inode_mem *im, uint64_t a, uint64_t z,
			  uint64_t size)
{
	z = fl_min(z, size);
	return a < z ? file_zero_locked(v, im, a, z - a) : 0;
}

/* Unmap and free the blocks [first, last], a leaf per transaction. */
static int file_punch_blocks(struct lunfs_vol *v, struct inode_mem *im, uint64_t first, uint64_t last)
{
	uint64_t next = first;
	int ret = 1;

	while (ret > 0 && next <= last) {
		struct jnl_handle *h;
		int r;

		ret = jnl_start(v->jnl, bmap_punch_credits(im), &h);
		if (ret != 0) {
			return ret;
		}
		ret = bmap_punch(v, h, im, next, last, &next);
		r = jnl_stop(h, false);
		if (ret >= 0 && r != 0) {
			ret = r;
		}
	}
	return ret < 0 ? ret : 0;
}

/* Set size, mtime and ctime in a handle of their own. */
static int file_set_size(struct lunfs_vol *v, struct inode_mem *im, uint64_t size, bool times)
{
	struct jnl_handle *h;
	int ret, r;

	ret = jnl_start(v->jnl, 2, &h);
	if (ret != 0) {
		return ret;
	}
	im->di.size = size;
	if (times) {
		im->di.mtime_ns = im->di.ctime_ns = (uint64_t)vol_now_ns();
	}
	ret = inode_dirty(h, im);
	r = jnl_stop(h, false);
	return ret != 0 ? ret : r;
}

int file_truncate(struct lunfs_vol *v, struct inode_mem *im, uint64_t size)
{
	uint64_t bs = v->sb.file_block_size;
	uint64_t old;
	int ret;

	if (size > FILE_MAX_BYTES) {
		return -EFBIG;
	}
	pthread_mutex_lock(&v->meta_lock);
	pthread_rwlock_wrlock(&im->lock);
	old = im->di.size;
	if (size >= old) {
		/* (Z): everything beyond the old size reads as zeros already. */
		ret = size == old ? 0 : file_set_size(v, im, size, true);
		goto out;
	}
	/* Zero the rest of the new last block before the size goes down, so
	 * that (Z) holds at every instant a crash could show. */
	ret = file_zero_locked(v, im, size, fl_min(old, align_up(size, bs)) - size);
	if (ret != 0) {
		goto out;
	}
	ret = file_set_size(v, im, size, true);
	if (ret != 0) {
		goto out;
	}
	/* Blocks wholly beyond: a crash in here leaves blocks past EOF, which
	 * read as nothing and go with the next truncate or the file. */
	ret = file_punch_blocks(v, im, align_up(size, bs) / bs, UINT64_MAX);
out:
	pthread_rwlock_unlock(&im->lock);
	pthread_mutex_unlock(&v->meta_lock);
	return ret;
}

/* Map every hole in blocks [first, last] to new blocks with no chunk
 * written: they read as zeros and cost no data writes. */
static int file_prealloc_locked(struct lunfs_vol *v, struct inode_mem *im, uint64_t first, uint64_t last)
{
	uint64_t bs = v->sb.file_block_size;
	uint64_t lblk = first, hint = 0;
	bool retried = false;
	int ret = 0;

	while (lblk <= last) {
		struct lunfs_map_entry e;
		struct jnl_handle *h;
		uint64_t run, want, addr, got;
		int r;

		ret = bmap_lookup(v, im, lblk, &e, &run);
		if (ret != 0) {
			return ret;
		}
		if (e.addr != 0) {
			hint = e.addr + run * bs;
			if (run > last - lblk) {
				break;
			}
			lblk += run;
			continue;
		}
		/* One leaf's worth at most per transaction. */
		want = fl_min(fl_min(run, last - lblk + 1),
			      LUNFS_MAP_LEAF_FANOUT - lblk % LUNFS_MAP_LEAF_FANOUT);
		ret = jnl_start(v->jnl, bmap_set_credits(im) + 8, &h);
		if (ret != 0) {
			return ret;
		}
		ret = alloc_units(v->alloc, h, LUNFS_CLUSTER_FILE, want, hint, &addr, &got);
		if (ret == -ENOSPC && !retried && alloc_busy_pending(v->alloc)) {
			/* Nothing changed under this handle yet: commit the
			 * frees that wait for it, and try again. */
			(void)jnl_stop(h, false);
			retried = true;
			ret = jnl_sync(v->jnl);
			if (ret != 0) {
				return ret;
			}
			continue;
		}
		if (ret == 0) {
			struct lunfs_map_entry ne = { .addr = addr, .flags = 0, .written = 0 };

			ret = bmap_set_run(v, h, im, lblk, &ne, (unsigned)got);
			if (ret != 0) {
				/* Not mapped (a map node could not be had):
				 * give the blocks back. */
				(void)alloc_free(v->alloc, h, LUNFS_CLUSTER_FILE, addr, got);
			} else {
				im->di.alloc_bytes += got * bs;
				lblk += got;
				hint = addr + got * bs;
				ret = inode_dirty(h, im);
			}
		}
		r = jnl_stop(h, false);
		ret = ret != 0 ? ret : r;
		if (ret != 0) {
			return ret;
		}
	}
	return 0;
}

int file_fallocate(struct lunfs_vol *v, struct inode_mem *im, int mode, uint64_t off, uint64_t len)
{
	uint64_t bs = v->sb.file_block_size;
	bool keep = (mode & FALLOC_FL_KEEP_SIZE) != 0;
	int kind = mode & ~FALLOC_FL_KEEP_SIZE;
	uint64_t end, size;
	int ret = 0;

	if (kind != 0 && kind != FALLOC_FL_PUNCH_HOLE && kind != FALLOC_FL_ZERO_RANGE) {
		return -EOPNOTSUPP;
	}
	if (kind == FALLOC_FL_PUNCH_HOLE && !keep) {
		return -EOPNOTSUPP;
	}
	if (len == 0) {
		return -EINVAL;
	}
	if (off >= FILE_MAX_BYTES || len > FILE_MAX_BYTES - off) {
		return -EFBIG;
	}
	end = off + len;
	pthread_mutex_lock(&v->meta_lock);
	pthread_rwlock_wrlock(&im->lock);
	size = im->di.size;
	if (kind == FALLOC_FL_PUNCH_HOLE || kind == FALLOC_FL_ZERO_RANGE) {
		uint64_t fb = align_up(off, bs) / bs, eb = end / bs; /* whole blocks [fb, eb) */

		/* Bytes at or beyond EOF read as zeros already (Z). A punch
		 * only zeroes the partial blocks at its edges: the whole
		 * ones go. */
		if (kind == FALLOC_FL_PUNCH_HOLE && fb < eb) {
			ret = file_zero_clip(v, im, off, fb * bs, size);
			if (ret == 0) {
				ret = file_zero_clip(v, im, eb * bs, end, size);
			}
		} else {
			ret = file_zero_clip(v, im, off, end, size);
		}
		if (ret == 0 && kind == FALLOC_FL_PUNCH_HOLE && fb < eb) {
			ret = file_punch_blocks(v, im, fb, eb - 1);
		}
		if (ret == 0 && kind == FALLOC_FL_ZERO_RANGE) {
			ret = file_prealloc_locked(v, im, off / bs, (end - 1) / bs);
		}
	} else {
		ret = file_prealloc_locked(v, im, off / bs, (end - 1) / bs);
	}
	if (ret == 0 && !keep && end > im->di.size) {
		ret = file_set_size(v, im, end, true);
	} else if (ret == 0 && kind != 0) {
		ret = file_set_size(v, im, im->di.size, true);
	}
	pthread_rwlock_unlock(&im->lock);
	pthread_mutex_unlock(&v->meta_lock);
	return ret;
}

/* ---- seek ----------------------------------------------------------------- */

int file_seek(struct lunfs_vol *v, struct inode_mem *im, uint64_t off, int whence, uint64_t *out)
{
	uint64_t bs = v->sb.file_block_size, chunk = bs / LUNFS_MAP_CHUNKS;
	uint64_t size, pos = off;
	int ret = 0;

	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		return -EINVAL;
	}
	pthread_rwlock_rdlock(&im->lock);
	size = im->di.size;
	if (off >= size) {
		ret = -ENXIO;
		goto out;
	}
	/* Unwritten chunks count as holes, like ext4's unwritten extents. */
	while (pos < size) {
		struct lunfs_map_entry e;
		uint64_t lblk = pos / bs, run;
		unsigned c;

		ret = bmap_lookup(v, im, lblk, &e, &run);
		if (ret != 0) {
			goto out;
		}
		if (e.addr == 0) {
			if (whence == SEEK_HOLE) {
				*out = pos;
				goto out;
			}
			ret = bmap_next_mapped(v, im, lblk + 1, &lblk);
			if (ret == -ENXIO || (ret == 0 && lblk >= (size - 1) / bs + 1)) {
				ret = -ENXIO;
				goto out;
			}
			if (ret != 0) {
				goto out;
			}
			pos = lblk * bs;
			continue;
		}
		for (c = (unsigned)((pos % bs) / chunk); c < LUNFS_MAP_CHUNKS; c++) {
			bool w = (e.written & (1ull << c)) != 0;

			if (w == (whence == SEEK_DATA)) {
				break;
			}
		}
		if (c < LUNFS_MAP_CHUNKS) {
			*out = fl_max(pos, lblk * bs + c * chunk);
			goto out;
		}
		pos = (lblk + 1) * bs;
	}
	if (whence == SEEK_HOLE) {
		*out = size;
	} else {
		ret = -ENXIO;
	}
out:
	if (ret == 0 && *out > size) {
		*out = size;
	}
	if (ret == 0 && whence == SEEK_DATA && *out >= size) {
		ret = -ENXIO;
	}
	pthread_rwlock_unlock(&im->lock);
	return ret;
}
