/*
 * Directories: docs/FORMAT.md "Directories".
 *
 * A directory is an extendible hash table (Fagin et al., 1979, as in GFS2)
 * over 64-bit SipHash-2-4 hashes of the names, keyed by sb.dir_hash_key.
 * Its inode maps 4 KiB logical blocks (map_unit = META):
 *   logical 0 .. LUNFS_DIR_TABLE_BLOCKS-1   hash table blocks (sparse)
 *   logical LUNFS_DIR_FIRST_LEAF ..          leaf blocks
 * Table slot s (0 <= s < 2^global_depth) holds the logical block of the
 * leaf for hashes whose top global_depth bits equal s. A leaf of local depth
 * d is referenced by 2^(global_depth - d) consecutive slots. An empty
 * directory (global_depth 0, no table block) has no blocks at all.
 * Lookup and insert read one table block and one leaf: O(1) in the size.
 */
#ifndef LUNFS_DIR_H
#define LUNFS_DIR_H

#include <stddef.h>
#include "lunfs/record.h"

#define LUNFS_DIR_TABLE_MAGIC LUNFS_FOURCC('D', 'R', 'T', 'B')
#define LUNFS_DIR_LEAF_MAGIC LUNFS_FOURCC('D', 'R', 'L', 'F')

#define LUNFS_DIR_TABLE_SLOTS 503u     /* slots per table block */
#define LUNFS_DIR_TABLE_BLOCKS 4096u   /* 4096 * 503 slots >= 2^20 */
#define LUNFS_DIR_MAX_DEPTH 20u        /* global and local depth */
_Static_assert((1ull << LUNFS_DIR_MAX_DEPTH) <= 4096ull * 503u, "table reaches max depth");
#define LUNFS_DIR_FIRST_LEAF LUNFS_DIR_TABLE_BLOCKS
#define LUNFS_NAME_MAX 255u

/* hdr.owner = directory ino, hdr.aux = index of its first slot. */
struct lunfs_dir_table_disk {
	struct lunfs_blkhdr_disk hdr;  /*    0 */
	le64 leaf[LUNFS_DIR_TABLE_SLOTS]; /* 64 logical block of the leaf */
	le32 reserved;                 /* 4088 */
	le32 crc;                      /* 4092 */
};
_Static_assert(sizeof(struct lunfs_dir_table_disk) == LUNFS_META_BLOCK_SIZE, "dir table");

/* An entry in a leaf: 24-byte head, then the name, padded to 8 bytes. */
struct lunfs_dirent_disk {
	le64 hash;       /*  0 SipHash-2-4 of the name; readdir cookie = (hash >> 2) + 3 */
	le64 ino;        /*  8 */
	le16 rec_len;    /* 16 bytes of this entry, multiple of 8 */
	uint8_t type;    /* 18 DT_* value (DT_REG 8, DT_DIR 4, DT_LNK 10, ...) */
	uint8_t name_len;/* 19 1..255 */
	le32 reserved;   /* 20 */
	/* char name[name_len] at 24, not NUL-terminated */
};
_Static_assert(sizeof(struct lunfs_dirent_disk) == 24, "dirent head");

#define LUNFS_DIR_LEAF_DATA 3996u

/* hdr.owner = directory ino. Entries are sorted by hash and packed from
 * offset 0 of data[]; used bytes = sum of rec_len. */
struct lunfs_dir_leaf_disk {
	struct lunfs_blkhdr_disk hdr; /*    0 */
	le16 local_depth;             /*   64 */
	le16 nentries;                /*   66 */
	le32 used;                    /*   68 bytes of data[] in use */
	le64 prefix;                  /*   72 hash prefix: top local_depth bits, left aligned */
	le64 next;                    /*   80 logical block of an overflow leaf (depth at max); 0 = none */
	le64 reserved0;               /*   88 */
	uint8_t data[LUNFS_DIR_LEAF_DATA]; /* 96 */
	le32 crc;                     /* 4092 */
};
_Static_assert(sizeof(struct lunfs_dir_leaf_disk) == LUNFS_META_BLOCK_SIZE, "dir leaf");
_Static_assert(offsetof(struct lunfs_dir_leaf_disk, crc) == LUNFS_BLOCK_CRC_OFFSET, "leaf crc");

#endif
