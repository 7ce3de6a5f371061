/*
 * The offline checker and repairer (fs/check.c). fsck.lunfs is a thin
 * driver over check_run(); unit tests call it on a memory device.
 *
 * check_run walks every on-disk structure with the codecs only (it never
 * trusts the fs core's in-memory modules, which it is meant to check),
 * reports each problem through a callback, one line each, and with
 * `repair` set fixes what it can by writing blocks directly. Problems are
 * grouped in classes (enum check_pb) so that tests and --json can count
 * them. Read-only by default.
 */
#ifndef LUNFS_CHECK_H
#define LUNFS_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "lunfs/dev.h"

/* Problem classes. Keep check_pb_name() in step. */
enum check_pb {
	CHECK_PB_SUPER = 0,      /* a superblock copy unreadable (the other used) */
	CHECK_PB_JOURNAL,        /* a dirty journal (needs replay) */
	CHECK_PB_JOURNAL_BAD,    /* journal superblock or orphan block corrupt */
	CHECK_PB_HEARTBEAT,      /* heartbeat slot corrupt */
	CHECK_PB_CLUSTER,        /* cluster header, bitmap or refcount block corrupt */
	CHECK_PB_UNITS_FREE,     /* header units_free disagrees with the bitmap */
	CHECK_PB_LEAK,           /* allocated in a bitmap, referenced by nothing */
	CHECK_PB_UNALLOCATED,    /* referenced, but free in its bitmap */
	CHECK_PB_MULTIREF,       /* referenced more than once where sharing is not allowed
	                          * or not declared (META/INODE units; file blocks without
	                          * the SHARED flag) */
	CHECK_PB_REFCOUNT,       /* refcount extra != references - 1 */
	CHECK_PB_INODE,          /* allocated inode slot whose record is unusable */
	CHECK_PB_MAP,            /* map node corrupt, misplaced, or bad block address */
	CHECK_PB_DIR,            /* directory table/leaf corrupt or inconsistent */
	CHECK_PB_DIRENT,         /* entry naming a free/invalid inode, or wrong type */
	CHECK_PB_NLINK,          /* link count differs from the entries found */
	CHECK_PB_PARENT,         /* directory parent_ino differs from its real parent */
	CHECK_PB_DIR_LINK,       /* directory named by several entries, or in a cycle */
	CHECK_PB_UNREACHABLE,    /* allocated inode no entry reaches (-> lost+found) */
	CHECK_PB_ORPHAN,         /* orphan of a dead host (-> reclaimed) */
	CHECK_PB_XATTR,          /* xattr chain corrupt */
	CHECK_PB_SYMLINK,        /* symlink target unreadable */
	CHECK_PB_INODE_FIELD,    /* alloc_bytes or directory state counters wrong */
	CHECK_PB_COUNT
};

/* A short stable name ("leak", "nlink", ...) for --json and tests. */
const char *check_pb_name(enum check_pb pb);

struct check_opts {
	bool repair;               /* -y: write fixes; otherwise read-only */
	bool take_lock;            /* repair: join the volume and hold the VOLUME
	                            * system lock exclusively while working */
	uint32_t live_wait_max_ms; /* longest watch of the heartbeat region (0 = 30 s) */
	/* One call per problem (pb >= 0, `fixed` says whether it was repaired)
	 * and per note (pb < 0: warnings and progress facts, not problems).
	 * msg is one line without a newline. May be NULL. */
	void (*report)(void *arg, int pb, bool fixed, const char *msg);
	/* Progress over the inode pass (the long one), may be NULL. */
	void (*progress)(uint64_t done, uint64_t total, void *arg);
	void *arg;
};

struct check_result {
	uint64_t found[CHECK_PB_COUNT];
	uint64_t fixed[CHECK_PB_COUNT];
	uint64_t hints_fixed;        /* cluster summaries refreshed (hints, not errors) */
	uint64_t inodes, dirs, files, file_blocks, meta_blocks;
	uint32_t journals_pending;   /* dirty journals left unreplayed (read-only) */
	uint32_t journals_replayed;
	uint32_t live_hosts;         /* hosts seen renewing */
	bool used_backup_sb;
};

/*
 * Check (and with o->repair, repair) the volume on dev. Returns 0 when the
 * check ran to the end, whatever it found (see r), or a negative errno for
 * an operational error: -ENODATA not a lunfs volume, -EUCLEAN both
 * superblocks unusable, -EPROTONOSUPPORT newer format, -EOPNOTSUPP unknown
 * incompatible features, -EBUSY repair refused because hosts are live or
 * hold the volume, -EIO, -ENOMEM. *why (if why is not NULL) gets a static
 * message on failure.
 */
int check_run(struct lunfs_dev *dev, const struct check_opts *o, struct check_result *r,
	      const char **why);

/* fsck(8) exit bits for a finished run: 0 clean, 1 errors corrected,
 * 4 errors left uncorrected (a pending journal counts as one). */
#define CHECK_EXIT_OK 0
#define CHECK_EXIT_CORRECTED 1
#define CHECK_EXIT_REBOOT 2
#define CHECK_EXIT_UNCORRECTED 4
#define CHECK_EXIT_OPERATIONAL 8
#define CHECK_EXIT_USAGE 16
#define CHECK_EXIT_CANCELLED 32
int check_exit_code(const struct check_result *r);

#endif
