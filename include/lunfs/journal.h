/*
 * Per-host metadata journals: docs/FORMAT.md "Journals".
 *
 * Journal j (= heartbeat slot j) occupies journal_size bytes at
 * regions[JOURNAL].offset + j * journal_size, in 4 KiB blocks:
 *   block 0                      journal superblock
 *   blocks 1 .. ORPHAN_BLOCKS    orphan table (host's open-but-unlinked inodes)
 *   the rest                     the ring of transactions
 * A transaction is contiguous in the ring (it never wraps; a too-short tail
 * is skipped), written with one write and made durable with one flush:
 *   descriptor block(s) | payload blocks | commit block
 * Replay starts at jsb.tail_seq / tail_block and applies transactions while
 * each has the next sequence number and a valid commit whose crc covers the
 * descriptors and payload. The first gap or mismatch ends the log.
 */
#ifndef LUNFS_JOURNAL_H
#define LUNFS_JOURNAL_H

#include <stddef.h>
#include "lunfs/record.h"

#define LUNFS_JSB_MAGIC LUNFS_FOURCC('J', 'N', 'S', 'B')
#define LUNFS_JORPHAN_MAGIC LUNFS_FOURCC('J', 'N', 'O', 'R')
#define LUNFS_JDESC_MAGIC LUNFS_FOURCC('J', 'N', 'D', 'S')
#define LUNFS_JCOMMIT_MAGIC LUNFS_FOURCC('J', 'N', 'C', 'M')

#define LUNFS_JOURNAL_ORPHAN_BLOCKS 8u

enum lunfs_jsb_state {
	LUNFS_JOURNAL_EMPTY = 0, /* never used since mkfs */
	LUNFS_JOURNAL_CLEAN = 1, /* fully checkpointed: nothing to replay */
	LUNFS_JOURNAL_DIRTY = 2, /* in use, or its host died: replay from tail */
};

/* hdr.owner = slot index. */
struct lunfs_jsb_disk {
	struct lunfs_blkhdr_disk hdr; /*    0 */
	le32 state;                   /*   64 lunfs_jsb_state */
	le16 slot;                    /*   68 */
	le16 reserved0;               /*   70 */
	le64 owner_gen;               /*   72 generation of the host that last wrote it */
	le64 tail_seq;                /*   80 oldest transaction not yet checkpointed */
	le64 tail_block;              /*   88 its ring block (absolute block index in the journal) */
	le64 ring_first;              /*   96 first ring block (1 + ORPHAN_BLOCKS) */
	le64 ring_blocks;             /*  104 ring length in blocks */
	le64 norphans;                /*  112 entries in the orphan table */
	uint8_t reserved[3972];       /*  120 */
	le32 crc;                     /* 4092 */
};
_Static_assert(sizeof(struct lunfs_jsb_disk) == LUNFS_META_BLOCK_SIZE, "journal super");

/* Orphan table block: hdr.aux = index of its first entry. */
#define LUNFS_JORPHANS_PER_BLOCK 503u
struct lunfs_jorphan_disk {
	struct lunfs_blkhdr_disk hdr; /*    0 */
	le64 ino[LUNFS_JORPHANS_PER_BLOCK]; /* 64 0 = unused entry */
	le32 reserved;                /* 4088 */
	le32 crc;                     /* 4092 */
};
_Static_assert(sizeof(struct lunfs_jorphan_disk) == LUNFS_META_BLOCK_SIZE, "orphan block");

/* A logged update: len bytes (a multiple of 512, at most 4096) to be written
 * at dest, taken from the payload area at byte payload_off (a multiple of
 * 512) counted from the first payload block. */
struct lunfs_jtag_disk {
	le64 dest;        /*  0 byte address on the volume */
	le32 len;         /*  8 */
	le32 payload_off; /* 12 */
};
_Static_assert(sizeof(struct lunfs_jtag_disk) == 16, "journal tag");

#define LUNFS_JTAGS_PER_DESC 250u

/* Descriptor: hdr.seq = transaction sequence, hdr.aux = descriptor index
 * within the transaction. */
struct lunfs_jdesc_disk {
	struct lunfs_blkhdr_disk hdr; /*    0 */
	le32 ntags;                   /*   64 tags in this block */
	le32 ndesc;                   /*   68 descriptor blocks in the transaction */
	le32 npayload;                /*   72 payload blocks in the transaction */
	le32 reserved0;               /*   76 */
	struct lunfs_jtag_disk tags[LUNFS_JTAGS_PER_DESC]; /* 80 */
	uint8_t reserved[12];         /* 4080 */
	le32 crc;                     /* 4092 */
};
_Static_assert(sizeof(struct lunfs_jdesc_disk) == LUNFS_META_BLOCK_SIZE, "journal descriptor");

/* Commit: hdr.seq = transaction sequence. */
struct lunfs_jcommit_disk {
	struct lunfs_blkhdr_disk hdr; /*    0 */
	le32 ndesc;                   /*   64 */
	le32 npayload;                /*   68 */
	le32 body_crc;                /*   72 crc32c over descriptor and payload blocks, in order */
	le32 reserved0;               /*   76 */
	le64 commit_time_ns;          /*   80 CLOCK_REALTIME, display only */
	le64 writer_gen;              /*   88 journal owner's generation */
	uint8_t reserved[3996];       /*   96 */
	le32 crc;                     /* 4092 */
};
_Static_assert(sizeof(struct lunfs_jcommit_disk) == LUNFS_META_BLOCK_SIZE, "journal commit");

#endif
