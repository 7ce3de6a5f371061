/*
 * A mounted volume on a memory device for fs-core unit tests, without FUSE:
 * vol_create on dev_mem_open (optionally pre-filled with a byte pattern,
 * optionally under a dev_fault layer), then vol_mount. Linked into every
 * unit test binary, so it stays small and uses only the library.
 * Functions return 0 or a negative errno; they never abort.
 */
#ifndef LUNFS_TESTS_FS_TESTVOL_H
#define LUNFS_TESTS_FS_TESTVOL_H

#include <stdbool.h>
#include <stdint.h>

#include "../../fs/fs_internal.h"
#include "lunfs/lockd.h"

struct fs_testvol_opts {
	uint64_t size;             /* bytes of the memory device */
	uint32_t sector_size;      /* 0 = 512 */
	uint32_t file_block_size;  /* 0 = the default */
	uint64_t cluster_size;     /* 0 = the default */
	uint32_t max_hosts;        /* 0 = 4 */
	uint64_t journal_size;     /* 0 = 4 MiB */
	bool fault;                /* stack a dev_fault layer on the memory device */
	bool prefill;              /* fill the device with prefill_byte before vol_create */
	uint8_t prefill_byte;
	/* The volume's compare-and-write backend. LOCAL (0) unless a test
	 * asks for PAXOS: one process on a memory device needs nothing more,
	 * and Paxos costs every lock change a few more I/Os. */
	enum lunfs_caw_backend caw;
	bool discard;              /* mount with the discard option */
	uint32_t mem_align;        /* the device's buffer alignment; 0 = its sector size */
};

struct fs_testvol {
	struct lunfs_dev *dev;     /* what the volume runs on (the fault layer, or the memory device) */
	struct lunfs_fault *fault; /* NULL without opts.fault */
	struct lunfs_vol *v;       /* NULL while unmounted */
	struct lunfs_super sb;
	/* lockd's clock: it moves only when lockd sleeps, so leases never
	 * expire under a slow test (sanitizers, a loaded machine) and waits
	 * cost no real time. */
	struct lockd_clock clock;
	uint64_t clock_ns;
	bool discard;              /* opts.discard: every mount uses it */
};

int fs_testvol_create(const struct fs_testvol_opts *o, struct fs_testvol *t);
int fs_testvol_mount(struct fs_testvol *t);
/* Clean unmount. */
int fs_testvol_unmount(struct fs_testvol *t);
/* After a crash (device dead): tear the mount down, ignoring the errors of
 * the writes that can no longer happen. */
void fs_testvol_abandon(struct fs_testvol *t);
/* Unmount (abandoning on error) and close the device. Safe on a partly
 * set up or zeroed struct. */
void fs_testvol_destroy(struct fs_testvol *t);
/* An inode of its own (no directory entry) with one reference. */
int fs_testvol_inode_new(struct fs_testvol *t, uint32_t mode, struct inode_mem **out);

/* Units of `type` (LUNFS_CLUSTER_*) in use, from the cluster headers as
 * the cache holds them (header units not counted). */
int fs_testvol_units_used(struct fs_testvol *t, uint8_t type, uint64_t *used);

#endif
