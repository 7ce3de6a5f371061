/*
 * Superblock: docs/FORMAT.md "Superblock".
 *
 * One 4 KiB block at LUNFS_SB_OFFSET, and a backup copy in the last whole
 * 4 KiB block of the volume. Both are written only by mkfs (and by a future
 * offline resize/tune tool); a mounted volume never writes them, so hosts
 * can cache the superblock for the life of the mount.
 */
#ifndef LUNFS_SUPER_H
#define LUNFS_SUPER_H

#include <stddef.h>
#include "lunfs/layout.h"
#include "lunfs/le.h"

/* On-disk bytes "LUNFSSB1". */
#define LUNFS_SB_MAGIC 0x31425353464E554CULL

/* Feature flags. An implementation must refuse to mount a volume with an
 * unknown incompat bit, and refuse read-write with an unknown ro_compat bit. */
#define LUNFS_FEAT_INCOMPAT_HMAC    (1u << 0) /* records carry HMAC-SHA256 */
#define LUNFS_FEAT_INCOMPAT_ENCRYPT (1u << 1) /* file data is AES-256-XTS */
/* Every host compare-and-writes through Disk Paxos over plain reads and
 * writes (FORMAT 9), and claims its slot with a delta lease. Without it the
 * volume is LOCAL: one machine's OFD locks, which a host on another machine
 * (or a build that does not know this bit) would not exclude; that is why
 * it is an incompat bit, not a field: an older build must refuse to mount
 * the volume rather than join it with the other backend. Set by mkfs only. */
#define LUNFS_FEAT_INCOMPAT_PAXOS   (1u << 2)
/* HMAC and encryption come with the security work, and a build that does
 * not implement a feature must refuse volumes that use it. */
#define LUNFS_FEAT_INCOMPAT_SUPPORTED LUNFS_FEAT_INCOMPAT_PAXOS
#define LUNFS_FEAT_RO_COMPAT_SUPPORTED 0u
#define LUNFS_FEAT_COMPAT_SUPPORTED 0u

/* sb.flags */
#define LUNFS_SB_FLAG_BACKUP (1u << 0) /* this copy is the backup */

/* A region of the volume: byte offset and length, both 1 MiB aligned. */
struct lunfs_region_disk {
	le64 offset; /* 0 */
	le64 length; /* 8 */
};
_Static_assert(sizeof(struct lunfs_region_disk) == 16, "region size");

enum lunfs_region_id {
	LUNFS_REGION_HEARTBEAT = 0, /* max_hosts slots, stride sector_size */
	LUNFS_REGION_SYSLOCK = 1,   /* LUNFS_SYSLOCKS lock records */
	LUNFS_REGION_PAXOS = 2,     /* paxos_instances * max_hosts blocks */
	LUNFS_REGION_CLUSTER = 3,   /* cluster_count lock records (lock + summary) */
	LUNFS_REGION_JOURNAL = 4,   /* max_hosts journals of journal_size */
	LUNFS_REGION_DATA = 5,      /* cluster_count clusters of cluster_size */
	LUNFS_REGION_COUNT = 6,
};

struct lunfs_super_disk {
	le64 magic;                  /*    0 LUNFS_SB_MAGIC */
	le16 major;                  /*    8 LUNFS_FORMAT_MAJOR */
	le16 minor;                  /*   10 LUNFS_FORMAT_MINOR */
	le32 flags;                  /*   12 LUNFS_SB_FLAG_* */
	le32 feat_compat;            /*   16 */
	le32 feat_ro_compat;         /*   20 */
	le32 feat_incompat;          /*   24 */
	le32 reserved0;              /*   28 */
	le64 self;                   /*   32 byte offset of this copy */
	uint8_t uuid[16];            /*   40 volume UUID, in every record */
	char label[64];              /*   56 NUL-padded UTF-8 */
	uint8_t dir_hash_key[16];    /*  120 SipHash-2-4 key for directory names */
	le64 volume_size;            /*  136 bytes the volume spans */
	le64 create_time_ns;         /*  144 CLOCK_REALTIME at mkfs, for display */
	le32 sector_size;            /*  152 record stride: 512 or 4096 */
	le32 meta_block_size;        /*  156 4096 */
	le32 file_block_size;        /*  160 power of two, 64 KiB..64 MiB */
	le32 max_hosts;              /*  164 heartbeat slots and journals */
	le32 hb_interval_ms;         /*  168 heartbeat renewal interval */
	le32 dead_timeout_ms;        /*  172 unchanged heartbeat => host dead */
	le32 io_deadline_ms;         /*  176 an I/O not done by then has failed */
	le32 paxos_instances;        /*  180 */
	le64 cluster_size;           /*  184 bytes, power of two */
	le64 cluster_count;          /*  192 */
	le64 journal_size;           /*  200 bytes per host, power of two */
	le64 root_ino;               /*  208 */
	struct lunfs_region_disk regions[LUNFS_REGION_COUNT]; /* 216 .. 312 */
	le32 inode_slot_size;        /*  312 2 * sector_size: lock + inode */
	le32 kdf_iterations;         /*  316 PBKDF2 rounds for secret/key checks */
	uint8_t kdf_salt[16];        /*  320 */
	uint8_t hmac_check[32];      /*  336 HMAC(secret key, "lunfs-hmac-check") */
	uint8_t enc_check[32];       /*  368 HMAC(data key, "lunfs-enc-check") */
	uint8_t reserved[3692];      /*  400 zero */
	le32 crc;                    /* 4092 crc32c of bytes 0..4091 */
};
_Static_assert(sizeof(struct lunfs_super_disk) == 4096, "superblock is one block");
_Static_assert(offsetof(struct lunfs_super_disk, uuid) == 40, "sb uuid");
_Static_assert(offsetof(struct lunfs_super_disk, sector_size) == 152, "sb sector");
_Static_assert(offsetof(struct lunfs_super_disk, regions) == 216, "sb regions");
_Static_assert(offsetof(struct lunfs_super_disk, inode_slot_size) == 312, "sb islot");
_Static_assert(offsetof(struct lunfs_super_disk, reserved) == 400, "sb reserved");
_Static_assert(offsetof(struct lunfs_super_disk, crc) == 4092, "sb crc last");

#endif
