/*
 * The device layer: the bottom of lunfs (docs/DESIGN.md "Layers").
 *
 * A device is a vtable plus geometry. Backends:
 *   dev_file   regular file or block device: O_DIRECT, io_uring (liburing),
 *              batched submission, a deadline per I/O
 *   dev_mem    sparse memory, for unit tests
 *   dev_fault  stacks on any device; injects errors, torn writes, power
 *              loss, latency and freezes
 *   dev_gate   stacks on any device; asks a callback (the lease) before
 *              every write it passes down
 *
 * Conventions: offsets and lengths of read/write/CAW are multiples of the
 * device's sector size; buffers are aligned to dev_mem_align(dev), which
 * is never more than LUNFS_DEV_BUF_ALIGN (so dev_buf_alloc always does). Functions return 0 (or a byte count) on success and a
 * negative errno on failure. A device is safe to use from many threads at
 * once; I/Os to overlapping ranges issued concurrently have no defined order.
 *
 * The generic helpers (dev/dev.c) check every request before a backend sees
 * it: offset and length multiples of sector_size, length > 0, the range
 * inside [0, size), the buffer aligned to dev_mem_align(dev). A bad
 * request returns -EINVAL and never reaches the backend; in a batch with a
 * bad element nothing is submitted, the bad elements get res = -EINVAL and
 * the others res = -ECANCELED. Backends may therefore assume valid
 * requests. discard and dev_zero_range accept len == 0 as a no-op.
 *
 * Compare-and-write (CAW) is the single atomic primitive the lock layer
 * builds on: compare one sector with `expect`; if equal, replace it with
 * `replace` atomically with respect to every other CAW on that sector (from
 * any process that uses the same backend), else fail with -ECANCELED and
 * copy the current contents to `current` (if not NULL). This is the
 * contract of SCSI COMPARE AND WRITE; the backend that provides it is
 * chosen at open time (enum lunfs_caw_backend) and the lock code never knows
 * which one it got. CAW buffers need no alignment (backends copy them).
 */
#ifndef LUNFS_DEV_H
#define LUNFS_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LUNFS_DEV_BUF_ALIGN 4096u

struct lunfs_dev;

enum lunfs_io_op {
	LUNFS_IO_READ = 0,
	LUNFS_IO_WRITE = 1,
};

/* One element of a batch. `res` is filled in: bytes done, or negative errno
 * (-ETIMEDOUT when the I/O missed its deadline). */
struct lunfs_io {
	enum lunfs_io_op op;
	void *buf;
	size_t len;
	uint64_t off;
	ssize_t res;
};

struct lunfs_dev_ops {
	/* Submit n I/Os together and wait for all. Returns 0 if every one
	 * completed in full, else the first negative errno among them (each
	 * element's res tells which). */
	int (*submit)(struct lunfs_dev *dev, struct lunfs_io *ios, unsigned n);
	/* Make every completed write durable (a cache flush). */
	int (*flush)(struct lunfs_dev *dev);
	/* Tell the device a range is unused; reads of it may return anything
	 * afterwards (-EOPNOTSUPP if it cannot). */
	int (*discard)(struct lunfs_dev *dev, uint64_t off, uint64_t len);
	/* See the header comment. len == dev->sector_size. */
	int (*caw)(struct lunfs_dev *dev, uint64_t off, const void *expect,
		   const void *replace, void *current);
	void (*close)(struct lunfs_dev *dev);
};

struct lunfs_dev {
	const struct lunfs_dev_ops *ops;
	uint64_t size;        /* bytes */
	uint32_t sector_size; /* 512 or 4096: I/O alignment and record stride */
	uint32_t io_deadline_ms; /* 0 = none; file backend enforces it */
	uint32_t mem_align;   /* buffer alignment the backend needs, a power of
	                       * two; 0 = min(sector_size, 4096). Stacked
	                       * devices copy their lower device's. */
	const char *name;     /* for messages */
};

/* How compare-and-write is provided. */
enum lunfs_caw_backend {
	LUNFS_CAW_LOCAL = 0, /* OFD byte-range lock + mutex: correct between the
	                      * processes and threads of one machine only */
	LUNFS_CAW_PAXOS = 1, /* Disk Paxos over plain reads and writes: correct
	                      * between machines (lockd, the cluster issue) */
	LUNFS_CAW_SCSI = 2,  /* SCSI COMPARE AND WRITE (reserved) */
};

struct lunfs_dev_file_opts {
	bool read_only;
	bool exclusive;        /* O_EXCL on block devices (mkfs, fsck -y) */
	uint32_t io_deadline_ms;
	unsigned queue_depth;  /* io_uring entries per ring; 0 = default (64) */
	uint32_t max_io_bytes; /* largest single kernel request; a bigger I/O
	                        * is continued like a short one. 0 = 1 GiB.
	                        * Small values exist for tests. */
	enum lunfs_caw_backend caw;
	/* Regular files only: serve every request with pread/pwrite in the
	 * calling thread instead of io_uring, without the deadline (an image
	 * file on a local file system, where io_uring would hand each
	 * request to a worker thread; dev/dev_file.c says why). Ignored for
	 * block devices. */
	bool sync_io;
};

/* --- generic helpers (dev/dev.c) --------------------------------------- */
int dev_read(struct lunfs_dev *dev, void *buf, size_t len, uint64_t off);
int dev_write(struct lunfs_dev *dev, const void *buf, size_t len, uint64_t off);
int dev_submit(struct lunfs_dev *dev, struct lunfs_io *ios, unsigned n);
int dev_flush(struct lunfs_dev *dev);
int dev_discard(struct lunfs_dev *dev, uint64_t off, uint64_t len);
int dev_caw(struct lunfs_dev *dev, uint64_t off, const void *expect,
	    const void *replace, void *current);
void dev_close(struct lunfs_dev *dev);
/* Zero [off, off+len): discard-then-write is not assumed to read zeros, so
 * this writes zeros in large batches. progress(done, total, arg) if set. */
int dev_zero_range(struct lunfs_dev *dev, uint64_t off, uint64_t len,
		   void (*progress)(uint64_t done, uint64_t total, void *arg), void *arg);
/* The alignment a buffer of dev_submit needs: O_DIRECT's memory alignment
 * for a file or block device (often less than the sector size: a FUSE
 * write payload can then go to the device without a copy). */
uint32_t dev_mem_align(const struct lunfs_dev *dev);
void *dev_buf_alloc(size_t len);   /* zeroed, LUNFS_DEV_BUF_ALIGN aligned; NULL on ENOMEM */
void dev_buf_free(void *buf);

/* --- backends ------------------------------------------------------------ */
/* Open a regular file or block device. Detects size and logical sector
 * size (BLKGETSIZE64/BLKSSZGET on block devices; for files, the size and a
 * probe of the O_DIRECT alignment the host filesystem needs). opts may be
 * NULL (read-write, no deadline, LUNFS_CAW_LOCAL). A file's size is rounded
 * down to the sector size. Only LUNFS_CAW_LOCAL is built in: PAXOS and
 * SCSI return -EOPNOTSUPP (the lock layer wraps a device to provide them).
 * The device holds io_uring rings: do not use it across fork(); open it
 * again in the child. */
int dev_file_open(const char *path, const struct lunfs_dev_file_opts *opts,
		  struct lunfs_dev **out);

/* A sparse memory device of `size` bytes (unwritten ranges read as zero).
 * sector_size is a power of two in [512, 65536] and divides size. Memory
 * grows with the data written, not with size: writing zeros to a range
 * never written allocates nothing, discard frees whole 64 KiB chunks. */
int dev_mem_open(uint64_t size, uint32_t sector_size, struct lunfs_dev **out);

/* --- the write gate (dev/dev_gate.c) ----------------------------------- */
/* A device over `lower` that calls allow(arg) right before it passes any
 * write, discard or CAW down (in waves of at most 32 I/Os, one call per
 * wave that has writes); a negative return fails those writes with it, and
 * nothing of them reaches `lower`. Reads and flushes pass unchecked. The
 * fs core stacks it under everything it writes, with its lease check as
 * `allow`. Closing it does not close `lower`. */
int dev_gate_open(struct lunfs_dev *lower, int (*allow)(void *arg), void *arg, struct lunfs_dev **out);

/* --- fault injection (dev/dev_fault.c) ---------------------------------- */
struct lunfs_fault;

/* Stack a fault layer on `lower`; the fault device owns `lower` and closes it
 * (also when this fails). Operations are counted one I/O at a time: each
 * element of a batch is one operation. Writes and CAWs are "writes" for
 * crash_after and the undo log; tear applies to plain writes only.
 * Discards are passed through and are not undone by a power cycle (a
 * discarded range may read as anything, so either outcome is legal).
 * Memory: the undo log keeps the old contents of every unflushed write,
 * so flush now and then when writing a lot through a fault device. */
int dev_fault_open(struct lunfs_dev *lower, struct lunfs_dev **out, struct lunfs_fault **fault);

enum lunfs_fault_opmask {
	LUNFS_FAULT_READ = 1u << 0,
	LUNFS_FAULT_WRITE = 1u << 1,
	LUNFS_FAULT_FLUSH = 1u << 2,
	LUNFS_FAULT_CAW = 1u << 3,
	LUNFS_FAULT_DISCARD = 1u << 4,
	LUNFS_FAULT_ALL = 0x1f,
};

/* Fail the nth (1-based, counted from now) operation matching `ops` with
 * `err` (EIO or -EIO alike); with `sticky`, fail every later matching one
 * too. A failed operation never reaches the lower device. n = 0 disarms. */
void dev_fault_fail_nth(struct lunfs_fault *f, unsigned ops, uint64_t n, int err, bool sticky);
/* Tear the nth plain write from now: only its first `keep_sectors` sectors
 * reach the lower device, and the write reports success (the host did not
 * see). n = 0 disarms. One-shot. */
void dev_fault_tear_nth(struct lunfs_fault *f, uint64_t n, uint32_t keep_sectors);
/* Power cut at the nth write from now (plain writes and CAWs count, also
 * ones another rule fails): that write and every later I/O (reads,
 * flushes, CAWs, discards too) fail with -EIO without reaching the lower
 * device, until dev_fault_power_cycle. n = 0 disarms. */
void dev_fault_crash_after(struct lunfs_fault *f, uint64_t nth_write);
/* Simulate power loss now and come back up: every write not yet covered by
 * a flush is dropped (its sectors return to their old contents), except
 * that with keep_seed != 0 each unflushed write is independently kept, torn
 * at a random sector, or dropped, chosen by a PRNG seeded with keep_seed
 * (the same seed over the same writes gives the same image). Armed
 * fail/tear rules survive a power cycle; the crash state does not. */
int dev_fault_power_cycle(struct lunfs_fault *f, uint64_t keep_seed);
/* Delay every operation by `us` microseconds (a batch is delayed once:
 * its I/Os are in flight together). 0 turns it off. */
void dev_fault_latency(struct lunfs_fault *f, uint32_t us);
/* While frozen, I/Os block (a host paused mid-I/O); thaw releases them. */
void dev_fault_freeze(struct lunfs_fault *f, bool frozen);
/* Counters since open. */
struct lunfs_fault_stats {
	uint64_t reads, writes, flushes, caws, discards, injected;
	uint64_t caws_applied;     /* CAWs that matched and replaced the sector */
	uint64_t unflushed_writes; /* writes a power cut would drop now */
	uint64_t frozen_waiters;   /* operations blocked by a freeze now */
};
void dev_fault_stats(struct lunfs_fault *f, struct lunfs_fault_stats *st);

#endif
