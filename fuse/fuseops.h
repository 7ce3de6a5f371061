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
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lunfs/fs.h"

/* The largest read or write the kernel sends us in one request. libfuse
 * 3.14 receives into a buffer of 256 pages plus the header, so 1 MiB is
 * also the most it can carry. */
#define FUSEOPS_MAX_IO (1u << 20)

/*
 * One mount. vol and epoch change only with vol_rw held for writing
 * (fuseops_vol_swap: the rejoin of a fenced mount, fusemnt.c); every
 * request holds it for reading while it runs (the gate, fuseops.c). The
 * other fields are set before the session starts and read-only after.
 */
struct fuseops_ctx {
	pthread_rwlock_t vol_rw;
	struct lunfs_vol *vol;       /* NULL: none mounted, requests answer EIO */
	uint64_t epoch;              /* bumped by every swap: handles of an
	                              * earlier epoch belong to an abandoned mount */
	uint64_t root_ino;           /* vol_root_ino(vol): FUSE's node 1 */
	uint32_t blksize;            /* st_blksize: the file block size */
	double entry_timeout;        /* seconds the kernel may cache a name */
	double attr_timeout;         /* seconds it may cache attributes */
	uint32_t max_write;          /* asked of the kernel at init */
	uint32_t max_read;           /* must equal the max_read mount option */
	bool read_only;
	/* The session, for telling the kernel what an ioctl changed behind
	 * its back (a snapshot deleted, an image reverted); NULL = no
	 * notifications (set by the session runner after fuseops_ctx_init). */
	struct fuse_session *se;
};

extern const struct fuse_lowlevel_ops fuseops_table;

/* Fill in a context for a mounted volume; fuseops_ctx_fini frees what it
 * made (not the volume) once the session is gone. */
void fuseops_ctx_init(struct fuseops_ctx *c, struct lunfs_vol *vol, bool read_only,
		      uint32_t max_read);
void fuseops_ctx_fini(struct fuseops_ctx *c);
/* Put nv (NULL: none) in place of the current volume, which it returns:
 * waits until no request uses the old one, so that the caller may abandon
 * it. nv must be a mount of the same volume (same root and block size). */
struct lunfs_vol *fuseops_vol_swap(struct fuseops_ctx *c, struct lunfs_vol *nv);

#endif
