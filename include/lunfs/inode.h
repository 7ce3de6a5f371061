/*
 * Inodes: docs/FORMAT.md "Inodes".
 *
 * An inode slot is two records: the inode's lock record, then the inode
 * record, each in its own sector (slot size 2 * sector_size). Inode number:
 *   ino = cluster_index * units_per_inode_cluster + unit
 * where units_per_inode_cluster = cluster_size / inode_slot_size.
 * The cluster's bitmap says whether a slot is allocated. A freed inode keeps
 * its record with mode 0 and nlink 0, so the generation continues.
 */
#ifndef LUNFS_INODE_H
#define LUNFS_INODE_H

#include <stddef.h>
#include "lunfs/record.h"

#define LUNFS_INODE_MAGIC LUNFS_FOURCC('I', 'N', 'O', 'D')

/* inode.flags */
#define LUNFS_INODE_SNAPSHOT    (1u << 0) /* read-only point-in-time image */
#define LUNFS_INODE_MULTIWRITER (1u << 1) /* opens take MULTIWRITER locks */
#define LUNFS_INODE_ORPHAN      (1u << 2) /* nlink 0, still open somewhere */
#define LUNFS_INODE_INLINE      (1u << 3) /* data (symlink target) in inline[] */
#define LUNFS_INODE_IMMUTABLE   (1u << 4)

/* Which space the block map points into. */
enum lunfs_map_unit {
	LUNFS_MAP_FILE = 0, /* leaf addresses are file blocks (regular files) */
	LUNFS_MAP_META = 1, /* leaf addresses are 4 KiB metadata blocks (dirs, symlinks) */
};

#define LUNFS_INODE_INLINE_SIZE 192u
#define LUNFS_MAP_MAX_HEIGHT 6u

/* Directory state, in inline[] of a directory inode. */
struct lunfs_dir_inline_disk {
	le32 global_depth;  /*  0 extendible hash depth; table has 2^depth slots */
	le32 reserved0;     /*  4 */
	le64 nentries;      /*  8 entries, . and .. excluded */
	le64 next_lblk;     /* 16 next unused logical block for leaves */
	le64 nleaves;       /* 24 */
};

struct lunfs_inode_disk {
	struct lunfs_rechdr_disk hdr; /*   0 flags: 0 */
	le64 ino;                     /*  32 */
	le32 generation;              /*  40 +1 each time the slot is reused */
	le32 mode;                    /*  44 type and permission bits (S_IF*, 07777) */
	le32 uid;                     /*  48 */
	le32 gid;                     /*  52 */
	le32 nlink;                   /*  56 */
	le32 flags;                   /*  60 LUNFS_INODE_* */
	le64 size;                    /*  64 bytes */
	le64 alloc_bytes;             /*  72 bytes of blocks mapped (shared ones included) */
	le64 atime_ns;                /*  80 ns since the epoch */
	le64 mtime_ns;                /*  88 */
	le64 ctime_ns;                /*  96 */
	le64 btime_ns;                /* 104 creation */
	le64 parent_ino;              /* 112 directories: "..". Files: hint */
	le64 map_root;                /* 120 byte address of the root map node; 0 = none */
	uint8_t map_height;           /* 128 levels of map nodes; 0 = no map */
	uint8_t map_unit;             /* 129 lunfs_map_unit */
	le16 reserved0;               /* 130 */
	le32 rdev;                    /* 132 device number of char/block nodes */
	le64 xattr_blk;               /* 136 byte address of the first xattr block; 0 = none */
	le64 version;                 /* 144 +1 on every change, for cache coherence */
	le64 snap_parent;             /* 152 snapshots: the image's ino */
	le64 snap_id;                 /* 160 snapshots: id within the image; images: last id used */
	le64 snap_dir;                /* 168 images: ino of the directory holding its snapshots */
	le16 writer_slot;             /* 176 host that last wrote this record, slot + 1 */
	le16 reserved1;               /* 178 */
	le32 reserved2;               /* 180 */
	le64 writer_gen;              /* 184 that host's generation (stale-writer check) */
	le64 reserved3[4];            /* 192 */
	uint8_t inline_data[LUNFS_INODE_INLINE_SIZE]; /* 224 symlink target or dir state */
	le32 reserved4[14];           /* 416 */
	struct lunfs_rectail_disk tail; /* 472 */
};
_Static_assert(sizeof(struct lunfs_inode_disk) == LUNFS_RECORD_SIZE, "inode record");
_Static_assert(offsetof(struct lunfs_inode_disk, map_root) == 120, "inode map root");
_Static_assert(offsetof(struct lunfs_inode_disk, inline_data) == 224, "inode inline");
_Static_assert(offsetof(struct lunfs_inode_disk, tail) == LUNFS_RECORD_TAIL_OFFSET, "inode tail");
_Static_assert(sizeof(struct lunfs_dir_inline_disk) <= LUNFS_INODE_INLINE_SIZE, "dir inline");

#endif
