/*
 * The frame shared by every 512-byte record (docs/FORMAT.md "Records"):
 * heartbeat slots, lock records, Paxos blocks and inodes.
 *
 *   0 .. 31    header: magic, kind-specific small fields, own address, volume UUID
 *  32 .. 471   body (440 bytes)
 * 472 .. 511   tail: HMAC, reserved, crc32c
 *
 * The record's own byte address and the volume UUID are inside the checksum,
 * so a misdirected write, or a record left over from an earlier mkfs, fails
 * verification. A record of all zeros is "empty" (never written): decoders
 * report it as such, distinct from corruption, so that mkfs need not write
 * the parts of the volume it leaves free.
 */
#ifndef LUNFS_RECORD_H
#define LUNFS_RECORD_H

#include <stddef.h>
#include "lunfs/layout.h"
#include "lunfs/le.h"

struct lunfs_rechdr_disk {
	le32 magic;       /*  0 fourcc of the record kind */
	le16 version;     /*  4 record layout version, 1 */
	le16 flags;       /*  6 kind specific */
	le64 self;        /*  8 byte address of this record */
	uint8_t uuid[16]; /* 16 volume UUID */
};
_Static_assert(sizeof(struct lunfs_rechdr_disk) == 32, "record header");

struct lunfs_rectail_disk {
	uint8_t hmac[32]; /* 472 HMAC-SHA256 over 0..471 when FEAT_INCOMPAT_HMAC, else 0 */
	le32 reserved;    /* 504 */
	le32 crc;         /* 508 crc32c over 0..507 */
};
_Static_assert(sizeof(struct lunfs_rectail_disk) == 40, "record tail");

#define LUNFS_RECORD_BODY 440u
#define LUNFS_RECORD_TAIL_OFFSET 472u

/*
 * The frame shared by every 4 KiB metadata block (docs/FORMAT.md "Metadata
 * blocks"): a 64-byte header, 4028 bytes of payload, crc32c in the last 4.
 */
struct lunfs_blkhdr_disk {
	le32 magic;       /*  0 fourcc of the block kind */
	le16 version;     /*  4 1 */
	le16 flags;       /*  6 kind specific */
	le64 self;        /*  8 byte address of this block */
	uint8_t uuid[16]; /* 16 volume UUID */
	le64 owner;       /* 32 owning inode, or cluster index for cluster metadata */
	le64 seq;         /* 40 journal sequence of the transaction that last wrote it */
	le64 aux;         /* 48 kind specific */
	le64 reserved;    /* 56 */
};
_Static_assert(sizeof(struct lunfs_blkhdr_disk) == 64, "block header");

#define LUNFS_BLOCK_PAYLOAD 4028u /* 64 .. 4091 */
#define LUNFS_BLOCK_CRC_OFFSET 4092u

#endif
