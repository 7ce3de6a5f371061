/*
 * Block maps: docs/FORMAT.md "Block maps".
 *
 * A file's logical blocks (file_block_size each for regular files, 4 KiB for
 * directories and symlinks) map to physical blocks through a radix tree of
 * 4 KiB nodes. inode.map_height = h: the root is a leaf if h == 1, else an
 * interior node; an interior node covers LEAF_FANOUT * INNER_FANOUT^(level-1)
 * blocks. With 1 MiB file blocks, h = 4 reaches 64 TiB. Missing subtrees are
 * holes and read as zeros.
 */
#ifndef LUNFS_MAP_H
#define LUNFS_MAP_H

#include <stddef.h>
#include "lunfs/record.h"

#define LUNFS_MAP_LEAF_MAGIC LUNFS_FOURCC('M', 'P', 'L', 'F')
#define LUNFS_MAP_INNER_MAGIC LUNFS_FOURCC('M', 'P', 'I', 'N')

/* Leaf entry: addr_flags bits 0..51 = physical address in 4 KiB units
 * (0 = hole), bits 52..63 = LUNFS_MAPE_* flags. written is a bitmap of the
 * block's 64 equal chunks: a chunk whose bit is clear reads as zeros
 * (allocated but unwritten, e.g. by fallocate, or not yet written since
 * allocation). */
#define LUNFS_MAPE_ADDR_MASK ((1ull << 52) - 1)
#define LUNFS_MAPE_SHARED (1ull << 52) /* may be shared: check the refcount before writing in place */
#define LUNFS_MAPE_FLAGS_MASK (~LUNFS_MAPE_ADDR_MASK)
#define LUNFS_MAP_CHUNKS 64u

struct lunfs_map_entry_disk {
	le64 addr_flags; /* 0 */
	le64 written;    /* 8 */
};
_Static_assert(sizeof(struct lunfs_map_entry_disk) == 16, "map entry");

#define LUNFS_MAP_LEAF_FANOUT 251u
#define LUNFS_MAP_INNER_FANOUT 503u

/* hdr.owner = ino, hdr.aux = first logical block covered. */
struct lunfs_map_leaf_disk {
	struct lunfs_blkhdr_disk hdr; /*    0 */
	struct lunfs_map_entry_disk e[LUNFS_MAP_LEAF_FANOUT]; /* 64 */
	uint8_t reserved[12];         /* 4080 */
	le32 crc;                     /* 4092 */
};
_Static_assert(sizeof(struct lunfs_map_leaf_disk) == LUNFS_META_BLOCK_SIZE, "map leaf");
_Static_assert(offsetof(struct lunfs_map_leaf_disk, crc) == LUNFS_BLOCK_CRC_OFFSET, "leaf crc");

/* hdr.owner = ino, hdr.aux = first logical block covered, hdr.flags = level (>= 2). */
struct lunfs_map_inner_disk {
	struct lunfs_blkhdr_disk hdr; /*    0 */
	le64 child[LUNFS_MAP_INNER_FANOUT]; /* 64 byte address of child node; 0 = hole */
	le32 reserved;                /* 4088 */
	le32 crc;                     /* 4092 */
};
_Static_assert(sizeof(struct lunfs_map_inner_disk) == LUNFS_META_BLOCK_SIZE, "map inner");

#endif
