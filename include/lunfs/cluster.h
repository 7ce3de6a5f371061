/*
 * Resource clusters: docs/FORMAT.md "Resource clusters".
 *
 * The data region is cut into cluster_count clusters of cluster_size bytes.
 * Cluster c starts at regions[DATA].offset + c * cluster_size, and its lock
 * record (with its summary) is at regions[CLUSTER].offset + c * sector_size.
 * A cluster is typed lazily, by the first host that locks it and needs that
 * kind of space. The summary in the cluster's lock record is the authority
 * on its type: a cluster whose summary says FREE is free whatever its first
 * block holds, and a typed summary over an undecodable header means the
 * typing never committed (docs/FORMAT.md, "Resource clusters").
 *
 * Layout inside a typed cluster, in units of the cluster's unit size:
 *   block 0             cluster header
 *   blocks 1..B         bitmap blocks (1 bit per unit, 1 = allocated)
 *   blocks B+1..B+R     refcount blocks (file clusters only)
 * The units that this header area covers are marked allocated in the
 * bitmap, so unit u is always at cluster_start + u * unit_size.
 */
#ifndef LUNFS_CLUSTER_H
#define LUNFS_CLUSTER_H

#include <stddef.h>
#include "lunfs/record.h"

#define LUNFS_CLUSTER_MAGIC LUNFS_FOURCC('C', 'L', 'H', 'D')
#define LUNFS_BITMAP_MAGIC LUNFS_FOURCC('C', 'L', 'B', 'M')
#define LUNFS_REFCOUNT_MAGIC LUNFS_FOURCC('C', 'L', 'R', 'C')

enum lunfs_cluster_type {
	LUNFS_CLUSTER_FREE = 0,
	LUNFS_CLUSTER_FILE = 1,  /* unit = file_block_size: file data */
	LUNFS_CLUSTER_META = 2,  /* unit = 4 KiB: map nodes, directory, xattr, symlink blocks */
	LUNFS_CLUSTER_INODE = 3, /* unit = inode_slot_size: lock record + inode */
};

struct lunfs_cluster_hdr_disk {
	struct lunfs_blkhdr_disk hdr; /*   0 owner = cluster index */
	uint8_t type;                 /*  64 lunfs_cluster_type */
	uint8_t reserved0;            /*  65 */
	le16 reserved1;               /*  66 */
	le32 unit_size;               /*  68 bytes */
	le64 cluster_index;           /*  72 */
	le64 cluster_start;           /*  80 byte address of unit 0 */
	le64 units_total;             /*  88 */
	le64 units_free;              /*  96 exact, journaled with the bitmap */
	le32 header_units;            /* 104 units covered by header+bitmap+refcounts */
	le32 bitmap_blocks;           /* 108 */
	le32 refcount_blocks;         /* 112 */
	le32 reserved2;               /* 116 */
	le64 type_gen;                /* 120 +1 each time the cluster is (re)typed */
	le64 alloc_hint;              /* 128 next unit to try */
	uint8_t reserved[3956];       /* 136 */
	le32 crc;                     /* 4092 */
};
_Static_assert(sizeof(struct lunfs_cluster_hdr_disk) == LUNFS_META_BLOCK_SIZE, "cluster header");
_Static_assert(offsetof(struct lunfs_cluster_hdr_disk, crc) == LUNFS_BLOCK_CRC_OFFSET, "cluster crc");

/* Bitmap block: hdr.aux = index of the first unit it covers. */
#define LUNFS_BITMAP_WORDS 503u
#define LUNFS_BITMAP_BITS (LUNFS_BITMAP_WORDS * 64u) /* 32192 units per block */
struct lunfs_bitmap_disk {
	struct lunfs_blkhdr_disk hdr; /*    0 */
	le64 words[LUNFS_BITMAP_WORDS]; /*  64 bit (u % 64) of word (u / 64) */
	le32 reserved;                /* 4088 */
	le32 crc;                     /* 4092 */
};
_Static_assert(sizeof(struct lunfs_bitmap_disk) == LUNFS_META_BLOCK_SIZE, "bitmap block");

/* Refcount block: hdr.aux = index of the first unit it covers. Each counter
 * is the number of references beyond the first: an allocated file block
 * with counter 0 has exactly one owner, so blocks that are never shared
 * never need their counter written.
 * The counter of a free unit is 0. */
#define LUNFS_REFCOUNTS_PER_BLOCK 2014u
struct lunfs_refcount_disk {
	struct lunfs_blkhdr_disk hdr;  /*    0 */
	le16 extra[LUNFS_REFCOUNTS_PER_BLOCK]; /* 64 */
	le32 crc;                      /* 4092 */
};
_Static_assert(sizeof(struct lunfs_refcount_disk) == LUNFS_META_BLOCK_SIZE, "refcount block");
_Static_assert(offsetof(struct lunfs_refcount_disk, crc) == LUNFS_BLOCK_CRC_OFFSET, "refcount crc");

#endif
