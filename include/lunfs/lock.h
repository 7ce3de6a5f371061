/*
 * Lock records: docs/FORMAT.md "Lock records".
 *
 * Every lock is one 512-byte record alone in its sector:
 *   - system locks: regions[SYSLOCK], LUNFS_SYSLOCKS of them;
 *   - resource cluster locks: regions[CLUSTER], one per cluster, whose
 *     payload carries the cluster's summary;
 *   - inode locks: the first sector of each inode slot, right before the
 *     inode record (files and directories alike).
 * Lock records are never journaled. Every change is a compare-and-write of
 * the whole sector (include/lunfs/dev.h), which bumps `version`.
 */
#ifndef LUNFS_LOCK_H
#define LUNFS_LOCK_H

#include <stddef.h>
#include "lunfs/record.h"

#define LUNFS_LOCK_MAGIC LUNFS_FOURCC('L', 'K', 'R', 'C')

enum lunfs_lock_kind {
	LUNFS_LOCK_KIND_NONE = 0,
	LUNFS_LOCK_KIND_SYSTEM = 1,
	LUNFS_LOCK_KIND_CLUSTER = 2,
	LUNFS_LOCK_KIND_INODE = 3,
};

enum lunfs_lock_mode {
	LUNFS_LOCK_FREE = 0,
	LUNFS_LOCK_EXCLUSIVE = 1,   /* one holder: owner_slot/owner_gen */
	LUNFS_LOCK_SHARED = 2,      /* read-only; holders bitmap */
	LUNFS_LOCK_MULTIWRITER = 3, /* several writers; holders bitmap */
};

/* Cluster summary, in the payload of a LOCK_KIND_CLUSTER record. Its type is
 * the authority on whether the cluster is typed; its free count is a hint
 * kept by the cluster's holder (the bitmap is the truth for units). */
struct lunfs_cluster_summary_disk {
	uint8_t type;      /*  0 lunfs_cluster_type, 0 = free/untyped */
	uint8_t reserved0; /*  1 */
	le16 reserved1;    /*  2 */
	le32 reserved2;    /*  4 */
	le64 units_total;  /*  8 */
	le64 units_free;   /* 16 */
	le64 updated_seq;  /* 24 lock version at which the hint was written */
};
_Static_assert(sizeof(struct lunfs_cluster_summary_disk) == 32, "cluster summary");

#define LUNFS_LOCK_PAYLOAD 64u
#define LUNFS_LOCK_HOLDER_BYTES (LUNFS_HOSTS_MAX / 8u)

struct lunfs_lock_disk {
	struct lunfs_rechdr_disk hdr; /*   0 flags: 0 */
	uint8_t kind;                 /*  32 lunfs_lock_kind */
	uint8_t mode;                 /*  33 lunfs_lock_mode */
	le16 nholders;                /*  34 bits set in holders[] */
	le32 reserved0;               /*  36 */
	le64 lock_id;                 /*  40 ino, cluster index or syslock number */
	le64 version;                 /*  48 +1 on every change */
	le16 owner_slot;              /*  56 EXCLUSIVE: slot index + 1; 0 = none */
	le16 reserved1;               /*  58 */
	le32 reserved2;               /*  60 */
	le64 owner_gen;               /*  64 EXCLUSIVE: owner's heartbeat generation */
	le64 acquired_ns;             /*  72 CLOCK_REALTIME of the grant, display only */
	le16 req_slot;                /*  80 latest requester, slot index + 1; 0 = none */
	uint8_t req_mode;             /*  82 mode it wants */
	uint8_t reserved3;            /*  83 */
	le32 req_serial;              /*  84 matches its heartbeat request entry */
	le64 req_gen;                 /*  88 requester's generation */
	uint8_t payload[LUNFS_LOCK_PAYLOAD]; /* 96 kind specific (cluster summary) */
	uint8_t holders[LUNFS_LOCK_HOLDER_BYTES]; /* 160 SHARED/MULTIWRITER: bit i = slot i */
	uint8_t reserved[56];         /* 416 */
	struct lunfs_rectail_disk tail; /* 472 */
};
_Static_assert(sizeof(struct lunfs_lock_disk) == LUNFS_RECORD_SIZE, "lock record");
_Static_assert(offsetof(struct lunfs_lock_disk, version) == 48, "lock version");
_Static_assert(offsetof(struct lunfs_lock_disk, payload) == 96, "lock payload");
_Static_assert(offsetof(struct lunfs_lock_disk, holders) == 160, "lock holders");
_Static_assert(offsetof(struct lunfs_lock_disk, tail) == LUNFS_RECORD_TAIL_OFFSET, "lock tail");

#endif
