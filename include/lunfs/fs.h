/*
 * The filesystem core's public interface: mount a volume on a device and
 * run POSIX operations on it. The FUSE front end (fs/fuse_ops.c) is a thin
 * adapter over these functions, and unit tests call them directly on a
 * memory or fault device, without FUSE.
 *
 * Conventions: 0 or a byte count on success, negative errno on failure.
 * Permission checks are the kernel's (default_permissions); the core checks
 * only what the kernel cannot: name validity, types, emptiness, limits.
 * Every function is safe to call from many threads at once.
 *
 * Inode references: fsop_lookup, fsop_create, fsop_mknod, fsop_mkdir,
 * fsop_symlink and fsop_link each take one reference on the inode they
 * return (FUSE's lookup count); fsop_forget drops them. An unlinked inode
 * lives until its last reference and its last open are gone.
 */
#ifndef LUNFS_FS_H
#define LUNFS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lunfs/dev.h"
#include "lunfs/format.h"

struct lunfs_vol;
struct lockd_clock;                     /* lunfs/lockd.h */

struct lunfs_mount_opts {
	const char *host_name;          /* identity in the heartbeat slot */
	uint8_t host_uuid[LUNFS_UUID_SIZE]; /* all zero: derived from host_name */
	bool read_only;
	bool discard;                   /* pass freed ranges down as discards */
	uint32_t commit_interval_ms;    /* journal commit period; 0 = 5000 */
	uint64_t cache_bytes;           /* metadata cache bound; 0 = 64 MiB */
	const char **why;               /* if set: a message for the user on failure */
	bool no_hb_thread;              /* tests: no heartbeat thread, so the I/O
	                                 * sequence is deterministic (power-loss tests) */
	const struct lockd_clock *clock; /* tests: lockd's clock; NULL = the real one */
	const char *lock_log;           /* tests: lockd's grant log file (lockd_opts.lock_log);
	                                 * NULL = none */
	/* Messages for the administrator (a dead host recovered, a
	 * write-open refused and who holds the file): the front end sends
	 * them to its log. NULL = stderr. Called from any thread, with fs
	 * locks held: it must not call back into the fs. */
	void (*log)(void *arg, const char *msg);
	void *log_arg;
};

#define LUNFS_NAME_MAX 255u             /* bytes in one path component */
#define LUNFS_LINK_MAX 65000u           /* hard links per inode (-EMLINK beyond) */
#define LUNFS_SYMLINK_MAX 4095u         /* bytes of a symlink target (PATH_MAX - 1) */

/* The host identity used when opts.host_uuid is all zero: the first 16
 * bytes of SHA-256("lunfs-host:" + name). Stable across reboots, so a
 * host that crashed finds its own heartbeat slot and journal again. */
int vol_host_uuid_derive(const char *name, uint8_t out[LUNFS_UUID_SIZE]);

int vol_mount(struct lunfs_dev *dev, const struct lunfs_mount_opts *o, struct lunfs_vol **out);
/* The front end's hook to make the kernel forget what it cached of ino
 * (names, attributes, pages): called when this host hands ino's lock to
 * another host, from the monitor thread with no fs lock held. Set it
 * after vol_mount and clear it (NULL) before the session goes away. */
void vol_set_inval(struct lunfs_vol *v, void (*fn)(void *arg, uint64_t ino), void *arg);
/* Commit, checkpoint, mark the journal clean, release locks and the slot.
 * The device is not closed (the caller owns it). */
int vol_unmount(struct lunfs_vol *v);
const struct lunfs_super *vol_super(const struct lunfs_vol *v);
uint64_t vol_root_ino(const struct lunfs_vol *v);
/* Our heartbeat slot and its generation: who we are on the volume now. */
uint32_t vol_slot(const struct lunfs_vol *v);
uint64_t vol_gen(const struct lunfs_vol *v);
/*
 * Fence and rejoin (docs/DESIGN.md 5.5). vol_fenced: our heartbeat slot was
 * taken over (a survivor recovered us while we were frozen) or lost for
 * good; from then on every write of this mount fails with EIO, forever. A
 * merely lapsed lease is not a fence (it becomes valid again when a
 * renewal succeeds). Cheap (a mutex, no I/O): poll it.
 * vol_abandon: tear a mount down WITHOUT writing anything to the device:
 * no journal commit or checkpoint, no lock or slot release (the recoverer
 * replays our journal and frees our slot; our locks die with our
 * generation). Stops every thread of the mount (heartbeat, monitor,
 * journal timer) before it returns, then frees all memory, open handles
 * included (a handle of the abandoned mount must never be used again).
 * Like vol_unmount, the caller guarantees that no fsop_* call on v is in
 * flight. A fenced mount then joins again with vol_mount and the same
 * options: same host identity, new generation (possibly another slot: a
 * slot still being recovered belongs to its recoverer). Also fine on a
 * mount that is not fenced: it fences itself first, and is then what a
 * crash leaves on disk.
 */
bool vol_fenced(struct lunfs_vol *v);
void vol_abandon(struct lunfs_vol *v);

struct lunfs_attr {
	uint64_t ino;
	uint32_t generation;
	uint32_t mode, nlink, uid, gid, rdev;
	uint64_t size;
	uint64_t blocks512;             /* st_blocks */
	int64_t atime_ns, mtime_ns, ctime_ns, btime_ns;
};

/* Who is asking (from fuse_req_ctx). */
struct lunfs_cred {
	uint32_t uid, gid;
	uint32_t umask;
};

int fsop_lookup(struct lunfs_vol *v, uint64_t dir, const char *name, struct lunfs_attr *out);
void fsop_forget(struct lunfs_vol *v, uint64_t ino, uint64_t nlookup);
int fsop_getattr(struct lunfs_vol *v, uint64_t ino, struct lunfs_attr *out);

/* setattr: which fields to change. */
#define LUNFS_SET_MODE  (1u << 0)
#define LUNFS_SET_UID   (1u << 1)
#define LUNFS_SET_GID   (1u << 2)
#define LUNFS_SET_SIZE  (1u << 3)
#define LUNFS_SET_ATIME (1u << 4)
#define LUNFS_SET_MTIME (1u << 5)
#define LUNFS_SET_ATIME_NOW (1u << 6)
#define LUNFS_SET_MTIME_NOW (1u << 7)
#define LUNFS_SET_CTIME (1u << 8)
/* Clear S_ISUID / S_ISGID of a regular file (FUSE_SET_ATTR_KILL_SUID /
 * KILL_SGID: the kernel has decided, with the caller's credentials). */
#define LUNFS_SET_KILL_SUID (1u << 9)
#define LUNFS_SET_KILL_SGID (1u << 10)
struct lunfs_setattr {
	uint32_t valid;                 /* LUNFS_SET_* */
	uint32_t mode, uid, gid;
	uint64_t size;
	int64_t atime_ns, mtime_ns, ctime_ns;
};
int fsop_setattr(struct lunfs_vol *v, uint64_t ino, const struct lunfs_setattr *sa,
		 struct lunfs_attr *out);

int fsop_mknod(struct lunfs_vol *v, const struct lunfs_cred *cr, uint64_t dir, const char *name,
	       uint32_t mode, uint32_t rdev, struct lunfs_attr *out);
int fsop_mkdir(struct lunfs_vol *v, const struct lunfs_cred *cr, uint64_t dir, const char *name,
	       uint32_t mode, struct lunfs_attr *out);
int fsop_symlink(struct lunfs_vol *v, const struct lunfs_cred *cr, uint64_t dir, const char *name,
		 const char *target, struct lunfs_attr *out);
int fsop_link(struct lunfs_vol *v, uint64_t ino, uint64_t dir, const char *name,
	      struct lunfs_attr *out);
int fsop_unlink(struct lunfs_vol *v, uint64_t dir, const char *name);
int fsop_rmdir(struct lunfs_vol *v, uint64_t dir, const char *name);
/* flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE. */
int fsop_rename(struct lunfs_vol *v, uint64_t dir, const char *name, uint64_t newdir,
		const char *newname, unsigned flags);
/* Returns the target length; copies at most len bytes (no NUL added). */
ssize_t fsop_readlink(struct lunfs_vol *v, uint64_t ino, char *buf, size_t len);

/* Open files. A handle pins the inode; the core keeps its orphan state. */
struct lunfs_fh;
int fsop_create(struct lunfs_vol *v, const struct lunfs_cred *cr, uint64_t dir, const char *name,
		uint32_t mode, int flags, struct lunfs_attr *out, struct lunfs_fh **fh);
int fsop_open(struct lunfs_vol *v, uint64_t ino, int flags, struct lunfs_fh **fh);
int fsop_release(struct lunfs_vol *v, struct lunfs_fh *fh);
/* Inode numbers of the handles open on v: up to max of them into out;
 * returns how many there are (call again with more room if that is more
 * than max). A front end about to vol_abandon asks, because the kernel may
 * still cache pages of those files. */
size_t fsop_open_inos(struct lunfs_vol *v, uint64_t *out, size_t max);
/* Must the front end bypass the page cache for this handle (a
 * multi-writer file, written by several hosts at once)? */
bool fsop_fh_direct(const struct lunfs_fh *fh);
ssize_t fsop_read(struct lunfs_vol *v, struct lunfs_fh *fh, void *buf, size_t len, uint64_t off);
/* Does not clear S_ISUID/S_ISGID: the front end should turn off
 * FUSE_CAP_HANDLE_KILLPRIV(_V2) so that the kernel, which knows the
 * writer's credentials, sends a setattr(mode) itself; or map
 * FUSE_SET_ATTR_KILL_SUID/SGID to LUNFS_SET_KILL_SUID/SGID. */
ssize_t fsop_write(struct lunfs_vol *v, struct lunfs_fh *fh, const void *buf, size_t len, uint64_t off);
int fsop_fsync(struct lunfs_vol *v, uint64_t ino, bool datasync);
/* mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE,
 * FALLOC_FL_ZERO_RANGE (| KEEP_SIZE). */
int fsop_fallocate(struct lunfs_vol *v, uint64_t ino, int mode, uint64_t off, uint64_t len);
/* whence SEEK_DATA or SEEK_HOLE. */
int fsop_lseek(struct lunfs_vol *v, uint64_t ino, uint64_t off, int whence, uint64_t *out);

/* Directory listing. fill() returns nonzero to stop (buffer full); the
 * cookie it gets is the position after that entry. Positions 0 (start),
 * 1 (after "."), 2 (after "..") are fixed; entries' cookies are >= 3. */
typedef int (*lunfs_fill_fn)(void *arg, const char *name, const struct lunfs_attr *attr,
			     uint64_t next_cookie);
/* plus = readdirplus: attr is complete, and fsop_readdir takes one lookup
 * reference for every entry fill() accepted (returned 0), except "." and
 * "..", which the kernel does not count. So fill() must return nonzero
 * (and add nothing) when the entry does not fit. Without plus, attr has
 * only ino and the type bits of mode. */
int fsop_readdir(struct lunfs_vol *v, uint64_t dir, uint64_t cookie, bool plus,
		 lunfs_fill_fn fill, void *arg);

struct lunfs_statfs {
	uint64_t block_size;            /* file block size */
	uint64_t blocks, blocks_free;   /* in block_size units */
	uint64_t files, files_free;
	uint32_t name_max;
};
int fsop_statfs(struct lunfs_vol *v, struct lunfs_statfs *out);

/* Extended attributes. name includes the namespace prefix ("user.x").
 * flags: XATTR_CREATE / XATTR_REPLACE. get/list return the size needed when
 * len is 0, -ERANGE when len is too small. */
int fsop_setxattr(struct lunfs_vol *v, uint64_t ino, const char *name, const void *value,
		  size_t len, int flags);
ssize_t fsop_getxattr(struct lunfs_vol *v, uint64_t ino, const char *name, void *buf, size_t len);
ssize_t fsop_listxattr(struct lunfs_vol *v, uint64_t ino, char *buf, size_t len);
int fsop_removexattr(struct lunfs_vol *v, uint64_t ino, const char *name);

/* Commit the journal and flush the device (syncfs). */
int fsop_syncfs(struct lunfs_vol *v);

/*
 * Clones, snapshots and shared blocks (fs/fsops_snap.c; docs/USER_GUIDE.md
 * "Snapshots and clones", docs/DESIGN.md "Snapshots and clones").
 *
 * Blocks are shared copy-on-write: a clone or a snapshot copies map nodes
 * and takes one more reference on every block, whatever the file's size;
 * the first write to a shared block copies it. Each operation is atomic
 * for the user: a crash leaves it done or not done (revert: see there).
 *
 * The snapshots of an image (a regular file) live in the hidden directory
 * "/" LUNFS_SNAP_ROOT "/<ino>-<generation>" of the image, created at its
 * first snapshot, one read-only file per snapshot under the name the user
 * gave it. A snapshot file has inode flag SNAPSHOT, snap_parent = the
 * image, snap_id = its number; it cannot be opened for write, truncated or
 * written; unlinking it (or fsop_snapshot_delete) deletes the snapshot.
 */
#define LUNFS_SNAP_ROOT ".lunfs-snapshots"

/* An instant writable copy of regular file src, as new file `name` in
 * directory dir: mode = src's permission bits less the umask, owner = cr.
 * -EBUSY when another host has src open for write. */
int fsop_clone(struct lunfs_vol *v, const struct lunfs_cred *cr, uint64_t src, uint64_t dir,
	       const char *name, struct lunfs_attr *out);
/* copy_file_range: make [off_out, off_out + len) of out's file read as
 * [off_in, off_in + len) of in's (len clipped at in's size), sharing every
 * block the two ranges cover whole at the same position within a block and
 * copying the bytes of partial blocks. Returns the bytes done. -EOPNOTSUPP
 * (nothing done) when no block can be shared: the offsets differ modulo
 * the block size, or another host has in's file open (its map cannot be
 * flagged); the caller then copies bytes (the kernel does, for FUSE). */
ssize_t fsop_copy_range(struct lunfs_vol *v, struct lunfs_fh *in, uint64_t off_in, struct lunfs_fh *out,
			uint64_t off_out, uint64_t len);

/* Snapshot `name` of image: every write acknowledged before the call is
 * in it (a host with the image open for write may take it; any other
 * host gets -EBUSY, naming the holder in the log). -EEXIST if the name is
 * taken, -EINVAL if image is not a regular file or is a snapshot itself.
 * Durable when it returns. out: the snapshot file's attributes. */
int fsop_snapshot_create(struct lunfs_vol *v, uint64_t image, const char *name, struct lunfs_attr *out);

struct lunfs_snap_info {
	uint64_t ino;                   /* the snapshot file */
	uint64_t id;                    /* snap_id: 1, 2, ... within the image */
	uint64_t size;
	int64_t btime_ns;               /* when it was taken */
	uint64_t excl_bytes;            /* blocks only it references: what deleting it frees */
	uint64_t shared_bytes;          /* blocks it shares with the image or other snapshots */
};
/* fn per snapshot of image, in directory order; nonzero from fn stops. */
typedef int (*lunfs_snap_fn)(void *arg, const char *name, const struct lunfs_snap_info *si);
int fsop_snapshot_list(struct lunfs_vol *v, uint64_t image, lunfs_snap_fn fn, void *arg);
/* Make image read exactly as snapshot `name` (size included). Refused
 * (-EBUSY) while the image is open for write anywhere, or open here other
 * than through `self` (the handle the request came on; may be NULL). In
 * one transaction when the maps are small; otherwise in steps, with a
 * marker that refuses write opens of the image (EIO) until a revert
 * finishes, so an image cut by a crash half-way is never used: run the
 * revert again. */
int fsop_snapshot_revert(struct lunfs_vol *v, uint64_t image, const char *name,
			 const struct lunfs_fh *self);
/* Delete snapshot `name` of image: frees exactly the blocks nothing else
 * references (once nothing uses the file: the kernel may still know it,
 * so a front end tells it, with *dir and *snap, when not NULL: the
 * snapshot directory and the snapshot that went). */
int fsop_snapshot_delete(struct lunfs_vol *v, uint64_t image, const char *name, uint64_t *dir,
			 uint64_t *snap);
/* Where image's snapshots live: the path from the volume's root (always
 * set) and the directory's ino (0 while the image has none). */
int fsop_snapshot_dir(struct lunfs_vol *v, uint64_t image, char *path, size_t len, uint64_t *dir);

/* Space and snapshot state of one inode (lunfs du, lunfs snapshot list). */
struct lunfs_space {
	uint64_t size, alloc_bytes;     /* alloc_bytes: every mapped block, shared ones included */
	uint64_t excl_bytes;            /* mapped blocks nothing else references */
	uint64_t shared_bytes;          /* mapped blocks with other referrers */
	uint32_t flags;                 /* LUNFS_INODE_* (lunfs/inode.h) */
	uint64_t snap_parent, snap_id, snap_dir;
};
int fsop_space(struct lunfs_vol *v, uint64_t ino, struct lunfs_space *out);

#endif
