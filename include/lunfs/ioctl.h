/*
 * The ioctls by which the `lunfs` command asks a mounted volume for
 * snapshots, clones and space figures (fuse/fuseops.c serves them; tools/
 * snapshot.c, clone.c and du.c send them). An ABI between two programs of
 * one build, not an on-disk format: fixed-size structs, naturally aligned,
 * so that the kernel's FUSE ioctl path (which copies _IOC_SIZE bytes each
 * way for a "restricted" ioctl) carries them unchanged.
 *
 * Every one goes to an open file of the mount:
 *   SNAP_CREATE, SNAP_REVERT, SNAP_DELETE   the image (read-only open is
 *                                           enough); caller root or owner
 *   CLONE                                   the source; caller may write
 *                                           the destination directory
 *   INFO                                    any file, or a directory with
 *                                           the name of an entry
 * Errors come back as the ioctl's errno (EBUSY: the image is open for
 * write on another host; its name is in that host's log and in `lunfs
 * locks`).
 */
#ifndef LUNFS_IOCTL_H
#define LUNFS_IOCTL_H

#include <linux/ioctl.h>
#include <stddef.h>
#include <stdint.h>

#define LUNFS_IOC_NAME_MAX 256          /* bytes of a name field, NUL included */
/* The directory under a volume's root that holds every image's snapshot
 * directory (LUNFS_SNAP_ROOT of lunfs/fs.h). */
#define LUNFS_IOC_SNAP_ROOT ".lunfs-snapshots"

/* SNAP_CREATE, SNAP_REVERT, SNAP_DELETE. */
struct lunfs_ioc_snap {
	char name[LUNFS_IOC_NAME_MAX];  /* the snapshot's name, NUL-terminated */
	uint64_t ino;                   /* out (create): the snapshot file's inode */
	uint64_t id;                    /* out (create): its snap_id */
};
_Static_assert(sizeof(struct lunfs_ioc_snap) == 272, "lunfs_ioc_snap");

/* CLONE. */
struct lunfs_ioc_clone {
	uint64_t dir;                   /* inode of the destination directory (its st_ino) */
	char name[LUNFS_IOC_NAME_MAX];  /* the new file's name, NUL-terminated */
	uint64_t ino;                   /* out: the new file's inode */
};
_Static_assert(sizeof(struct lunfs_ioc_clone) == 272, "lunfs_ioc_clone");

/* INFO. On a directory with a name: about that entry of it, so that
 * `lunfs du` and `snapshot list` never open (and lock) the files they
 * measure. */
struct lunfs_ioc_info {
	char name[LUNFS_IOC_NAME_MAX];  /* in: "" = the file itself, else an entry
	                                 * of the directory the ioctl goes to */
	uint64_t ino;
	uint64_t size;
	uint64_t alloc_bytes;           /* every mapped block, shared ones included */
	uint64_t excl_bytes;            /* blocks this file alone references */
	uint64_t shared_bytes;          /* blocks it shares with others */
	uint32_t flags;                 /* inode flags: 1 = snapshot (lunfs/inode.h) */
	uint32_t reserved;
	uint64_t snap_parent;           /* a snapshot: its image */
	uint64_t snap_id;               /* a snapshot: its number; an image: the last one */
	uint64_t snap_dir;              /* an image: inode of its snapshot directory, 0 = none */
	char snap_path[LUNFS_IOC_NAME_MAX]; /* an image: that directory's path from the
	                                     * volume's root (set even while it has none) */
};
_Static_assert(sizeof(struct lunfs_ioc_info) == 584, "lunfs_ioc_info");
_Static_assert(offsetof(struct lunfs_ioc_info, snap_path) == 328, "lunfs_ioc_info.snap_path");

/* 'L' with numbers from 0x80: the loop driver's 'L' ioctls are 0x00-0x0f
 * and carry no size, so the full command values cannot meet. */
#define LUNFS_IOC_SNAP_CREATE _IOWR('L', 0x80, struct lunfs_ioc_snap)
#define LUNFS_IOC_SNAP_REVERT _IOW('L', 0x81, struct lunfs_ioc_snap)
#define LUNFS_IOC_SNAP_DELETE _IOW('L', 0x82, struct lunfs_ioc_snap)
#define LUNFS_IOC_CLONE _IOWR('L', 0x83, struct lunfs_ioc_clone)
#define LUNFS_IOC_INFO _IOWR('L', 0x84, struct lunfs_ioc_info)

#endif
