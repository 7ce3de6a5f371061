/*
 * Extended attributes: docs/FORMAT.md "Extended attributes".
 *
 * inode.xattr_blk points to a chain of 4 KiB xattr blocks. Each holds packed
 * entries; a value lives whole in one block, so one value is at most
 * 4000 - name length bytes (about 3.9 KiB): rec_len is a multiple of 8,
 * so at most 4008 of the LUNFS_XATTR_DATA bytes hold one entry.
 */
#ifndef LUNFS_XATTR_H
#define LUNFS_XATTR_H

#include <stddef.h>
#include "lunfs/record.h"

#define LUNFS_XATTR_MAGIC LUNFS_FOURCC('X', 'A', 'T', 'R')

enum lunfs_xattr_ns {
	LUNFS_XATTR_USER = 1,     /* "user." */
	LUNFS_XATTR_TRUSTED = 2,  /* "trusted." */
	LUNFS_XATTR_SECURITY = 3, /* "security." */
	LUNFS_XATTR_SYSTEM = 4,   /* "system." (POSIX ACLs) */
};

/* Entry: 8-byte head, name (without namespace prefix), value, padded to 8. */
struct lunfs_xattr_entry_disk {
	uint8_t ns;       /* 0 lunfs_xattr_ns */
	uint8_t name_len; /* 1 1..255 */
	le16 value_len;   /* 2 */
	le16 rec_len;     /* 4 multiple of 8 */
	le16 reserved;    /* 6 */
};
_Static_assert(sizeof(struct lunfs_xattr_entry_disk) == 8, "xattr entry head");

#define LUNFS_XATTR_DATA 4012u

/* hdr.owner = ino. */
struct lunfs_xattr_blk_disk {
	struct lunfs_blkhdr_disk hdr; /*    0 */
	le64 next;                    /*   64 byte address of the next block; 0 = end */
	le16 nentries;                /*   72 */
	le16 used;                    /*   74 */
	le32 reserved;                /*   76 */
	uint8_t data[LUNFS_XATTR_DATA]; /* 80 */
	le32 crc;                     /* 4092 */
};
_Static_assert(sizeof(struct lunfs_xattr_blk_disk) == LUNFS_META_BLOCK_SIZE, "xattr block");

/* Symlink targets longer than the inode's inline area live in logical
 * blocks 0 and 1 of the symlink's map (map_unit META) as raw payload
 * following a block header; hdr.aux = bytes of the target in this block. */
#define LUNFS_SYMLINK_MAGIC LUNFS_FOURCC('S', 'Y', 'M', 'L')
struct lunfs_symlink_blk_disk {
	struct lunfs_blkhdr_disk hdr; /*    0 */
	char data[LUNFS_BLOCK_PAYLOAD]; /* 64 */
	le32 crc;                     /* 4092 */
};
_Static_assert(sizeof(struct lunfs_symlink_blk_disk) == LUNFS_META_BLOCK_SIZE, "symlink block");

#endif
