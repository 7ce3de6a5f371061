/*
 * Disk Paxos blocks: docs/FORMAT.md "Paxos region".
 *
 * For a plain shared disk (no SCSI COMPARE AND WRITE), compare-and-write is
 * emulated: a lock record's sector is guarded by Paxos instance
 * hash(sector) % paxos_instances, and the instance decides which host may do
 * the read-compare-write (Gafni & Lamport, Disk Paxos, 2003; docs/DESIGN.md).
 * Instance k = crc32c(le64 byte address of the sector) % paxos_instances.
 * Instance k has max_hosts host blocks and one leader record, contiguous so
 * that one read returns the whole instance:
 *   host block i: regions[PAXOS].offset + (k * (max_hosts + 1) + i) * sector_size
 *   leader:       regions[PAXOS].offset + (k * (max_hosts + 1) + max_hosts) * sector_size
 * Only host i writes its own block of an instance; everybody reads all.
 * Anyone who learns the outcome of a round may write the leader: it is a
 * hint, never the authority (lockd/paxos.c).
 */
#ifndef LUNFS_PAXOS_H
#define LUNFS_PAXOS_H

#include <stddef.h>
#include "lunfs/record.h"

#define LUNFS_PAXOS_MAGIC LUNFS_FOURCC('P', 'X', 'B', 'K')

struct lunfs_paxos_disk {
	struct lunfs_rechdr_disk hdr; /*   0 */
	le32 instance;                /*  32 */
	le16 slot;                    /*  36 writer's slot index */
	le16 reserved0;               /*  38 */
	le64 writer_gen;              /*  40 writer's heartbeat generation */
	le64 mbal;                    /*  48 highest ballot this host started */
	le64 bal;                     /*  56 ballot of the accepted value */
	/* the value: which host holds the instance, for which round */
	le16 inp_owner_slot;          /*  64 slot index + 1; 0 = released */
	le16 reserved1;               /*  66 */
	le32 reserved2;               /*  68 */
	le64 inp_owner_gen;           /*  72 */
	le64 inp_round;               /*  80 instance round (lease version) */
	le64 inp_target;              /*  88 byte address of the guarded sector */
	le64 released_round;          /*  96 last round this host owned and released */
	uint8_t reserved[368];        /* 104 */
	struct lunfs_rectail_disk tail; /* 472 */
};
_Static_assert(sizeof(struct lunfs_paxos_disk) == LUNFS_RECORD_SIZE, "paxos block");
_Static_assert(offsetof(struct lunfs_paxos_disk, tail) == LUNFS_RECORD_TAIL_OFFSET, "paxos tail");
_Static_assert(offsetof(struct lunfs_paxos_disk, released_round) == 96, "paxos released_round");

/* The leader record of an instance: who owns which round, and whether the
 * owner has finished with it. Written by the owner (owned, then released)
 * and by any host that learns a round's outcome from a ballot. */
#define LUNFS_PAXOS_LEADER_MAGIC LUNFS_FOURCC('P', 'X', 'L', 'D')

struct lunfs_paxos_leader_disk {
	struct lunfs_rechdr_disk hdr; /*   0 */
	le32 instance;                /*  32 */
	le16 writer_slot;             /*  36 slot index of the writer (not + 1) */
	le16 reserved0;               /*  38 */
	le64 writer_gen;              /*  40 writer's heartbeat generation */
	le64 round;                   /*  48 the round this record is about */
	le16 owner_slot;              /*  56 slot index + 1 of the round's owner; 0 = none */
	uint8_t released;             /*  58 1 = the owner has finished with the round */
	uint8_t reserved1;            /*  59 */
	le32 reserved2;               /*  60 */
	le64 owner_gen;               /*  64 the owner's generation */
	le64 target;                  /*  72 byte address the owner guards */
	uint8_t reserved[392];        /*  80 */
	struct lunfs_rectail_disk tail; /* 472 */
};
_Static_assert(sizeof(struct lunfs_paxos_leader_disk) == LUNFS_RECORD_SIZE, "paxos leader");
_Static_assert(offsetof(struct lunfs_paxos_leader_disk, tail) == LUNFS_RECORD_TAIL_OFFSET, "leader tail");
_Static_assert(offsetof(struct lunfs_paxos_leader_disk, owner_gen) == 64, "leader owner_gen");

#endif
