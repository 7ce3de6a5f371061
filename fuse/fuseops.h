/*
 * The FUSE low-level adapter (fuse/fuseops.c): libfuse3 requests in, fsop_*
 * calls on a mounted volume (include/lunfs/fs.h) out. The session runner
 * (fuse/fusemnt.c) creates one fuseops_ctx per mount, passes it to
 * fuse_session_new() as userdata and the table below as the operations.
 *
 * Nothing but fuse/ includes this header (it pulls in libfuse's).
 */
#ifndef LUNFS_FUSEOPS_H
#define LUNFS_FUSEOPS_H

/* 3.12: fuse_loop_cfg_* and the struct fuse_loop_config of the mt loop. */
#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>

#include "lunfs/fs.h"

/* The largest read or write the kernel sends us in one request. libfuse
 * 3.14 receives into a buffer of 256 pages plus the header, so 1 MiB is
 * also the most it can carry. */
#define FUSEOPS_MAX_IO (1u << 20)

/*
 * One mount. Set before the session starts and read-only after: the
 * request handlers share it without a lock.
 */
struct fuseops_ctx {
	struct lunfs_vol *vol;
	uint64_t root_ino;           /* vol_root_ino(vol): FUSE's node 1 */
	uint32_t blksize;            /* st_blksize: the file block size */
	double entry_timeout;        /* seconds the kernel may cache a name */
	double attr_timeout;         /* seconds it may cache attributes */
	uint32_t max_write;          /* asked of the kernel at init */
	uint32_t max_read;           /* must equal the max_read mount option */
	bool read_only;
};

extern const struct fuse_lowlevel_ops fuseops_table;

/* Fill in a context for a mounted volume (it owns nothing to free). */
void fuseops_ctx_init(struct fuseops_ctx *c, struct lunfs_vol *vol, bool read_only,
		      uint32_t max_read);

#endif
