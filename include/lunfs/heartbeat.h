/*
 * Heartbeat slots: docs/FORMAT.md "Heartbeat region".
 *
 * Slot i is the record at regions[HEARTBEAT].offset + i * sector_size.
 * Only the host that owns a slot writes it, except that a recovering host
 * moves a dead slot to RECOVERING and then FREE by compare-and-write. The
 * owner renews with plain writes while its lease is valid, and by
 * compare-and-write against its last image once the lease has expired, so
 * that it can never overwrite a RECOVERING state (docs/DESIGN.md 5.4).
 */
#ifndef LUNFS_HEARTBEAT_H
#define LUNFS_HEARTBEAT_H

#include <stddef.h>
#include "lunfs/record.h"

#define LUNFS_HB_MAGIC LUNFS_FOURCC('H', 'B', 'S', 'L')

enum lunfs_hb_state {
	LUNFS_HB_FREE = 0,       /* nobody; zero record is also free */
	LUNFS_HB_JOINING = 1,    /* claimed, waiting out the join delay */
	LUNFS_HB_LIVE = 2,       /* renewing */
	LUNFS_HB_RECOVERING = 3, /* declared dead; recoverer_slot is replaying it */
	LUNFS_HB_LEAVING = 4,    /* clean unmount in progress */
};

/* A lock hand-off request: "slot writing this asks target_slot to give up
 * lock_addr to mode". Seen by the target on its next heartbeat scan. */
struct lunfs_hb_request_disk {
	le64 lock_addr;   /*  0 byte address of the lock record */
	le16 target_slot; /*  8 slot index + 1; 0 = entry unused */
	uint8_t mode;     /* 10 lunfs_lock_mode wanted */
	uint8_t reserved0;/* 11 */
	le32 serial;      /* 12 bumped per new request, so repeats are seen */
};
_Static_assert(sizeof(struct lunfs_hb_request_disk) == 16, "hb request");

#define LUNFS_HB_REQUESTS 8u

struct lunfs_hb_slot_disk {
	struct lunfs_rechdr_disk hdr; /*   0 flags: 0 */
	le16 slot;                    /*  32 this slot's index */
	uint8_t state;                /*  34 lunfs_hb_state */
	uint8_t reserved0;            /*  35 */
	le32 reserved1;               /*  36 */
	le64 generation;              /*  40 +1 each time a host claims the slot */
	le64 seq;                     /*  48 +1 every beat; observers time its changes */
	uint8_t host_uuid[16];        /*  56 persistent identity of the machine */
	char host_name[64];           /*  72 NUL-padded */
	le32 hb_interval_ms;          /* 136 this host's own timing: observers */
	le32 dead_timeout_ms;         /* 140 judge the host by these, not by */
	le32 io_deadline_ms;          /* 144 their own settings */
	le32 reserved2;               /* 148 */
	le64 journal_offset;          /* 152 byte offset of this slot's journal */
	le64 journal_size;            /* 160 */
	le16 recoverer_slot;          /* 168 RECOVERING: slot index + 1 of recoverer */
	le16 reserved3;               /* 170 */
	le32 reserved4;               /* 172 */
	le64 recoverer_gen;           /* 176 generation of the recoverer */
	le64 mount_time_ns;           /* 184 CLOCK_REALTIME, display only */
	le64 beat_time_ns;            /* 192 CLOCK_REALTIME of this beat, display only */
	struct lunfs_hb_request_disk requests[LUNFS_HB_REQUESTS]; /* 200 .. 328 */
	le32 pid;                     /* 328 process id, display only */
	le32 reserved5;               /* 332 */
	uint8_t reserved[136];        /* 336 */
	struct lunfs_rectail_disk tail; /* 472 */
};
_Static_assert(sizeof(struct lunfs_hb_slot_disk) == LUNFS_RECORD_SIZE, "hb slot");
_Static_assert(offsetof(struct lunfs_hb_slot_disk, generation) == 40, "hb gen");
_Static_assert(offsetof(struct lunfs_hb_slot_disk, requests) == 200, "hb requests");
_Static_assert(offsetof(struct lunfs_hb_slot_disk, tail) == LUNFS_RECORD_TAIL_OFFSET, "hb tail");

#endif
