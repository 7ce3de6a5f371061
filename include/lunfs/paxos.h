/*
 * Disk Paxos blocks: docs/FORMAT.md "Paxos region".
 *
 * For a plain shared disk (no SCSI COMPARE AND WRITE), compare-and-write is
 * emulated: a lock record's sector is guarded by Paxos instance
 * hash(sector) % paxos_instances, and the instance decides which host may do
 * the read-compare-write (Gafni & Lamport, Disk Paxos, 2003; docs/DESIGN.md).
 * Instance k, host slot i: regions[PAXOS].offset + (k * max_hosts + i) * sector_size.
 * Only host i writes its own block of an instance; everybody reads all.
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
	uint8_t reserved[376];        /*  96 */
	struct lunfs_rectail_disk tail; /* 472 */
};
_Static_assert(sizeof(struct lunfs_paxos_disk) == LUNFS_RECORD_SIZE, "paxos block");
_Static_assert(offsetof(struct lunfs_paxos_disk, tail) == LUNFS_RECORD_TAIL_OFFSET, "paxos tail");

#endif
