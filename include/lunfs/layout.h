/*
 * Volume-wide constants of format v1. docs/FORMAT.md section "Geometry" is
 * the normative text; this header mirrors it.
 */
#ifndef LUNFS_LAYOUT_H
#define LUNFS_LAYOUT_H

#include <stdint.h>

#define LUNFS_FORMAT_MAJOR 1
#define LUNFS_FORMAT_MINOR 0

#define LUNFS_UUID_SIZE 16

/* A "record" is a 512-byte structure that sits alone in one device sector
 * (heartbeat slot, lock record, Paxos block, inode). Records are placed at a
 * stride of sb.sector_size, so a torn write never mixes two records. */
#define LUNFS_RECORD_SIZE 512u
#define LUNFS_SECTOR_MIN 512u  /* the only two sector sizes: 512 and 4096 */
#define LUNFS_SECTOR_MAX 4096u

/* Metadata blocks: superblock, cluster headers, bitmaps, map nodes,
 * directory and xattr blocks, journal blocks. */
#define LUNFS_META_BLOCK_SIZE 4096u
#define LUNFS_META_BLOCK_SHIFT 12

/* Every region offset is aligned to this, for O_DIRECT and array stripes. */
#define LUNFS_REGION_ALIGN (1024u * 1024u)

/* Byte offsets of the fixed structures. */
#define LUNFS_SB_OFFSET 4096u              /* primary superblock */
/* The backup superblock is the last whole 4 KiB block of the volume:
 * round_down(sb.volume_size, 4096) - 4096. */

/* File block size: power of two. */
#define LUNFS_FILE_BLOCK_MIN (64u * 1024u)
#define LUNFS_FILE_BLOCK_MAX (64u * 1024u * 1024u)
#define LUNFS_FILE_BLOCK_DEFAULT (1024u * 1024u)

/* Hosts. Holder bitmaps in lock records have room for LUNFS_HOSTS_MAX. */
#define LUNFS_HOSTS_MIN 1u
#define LUNFS_HOSTS_MAX 2048u
#define LUNFS_HOSTS_DEFAULT 64u

/* Journal size per host: power of two. */
#define LUNFS_JOURNAL_MIN (1024u * 1024u)
#define LUNFS_JOURNAL_MAX (1024u * 1024u * 1024u)
#define LUNFS_JOURNAL_DEFAULT (16u * 1024u * 1024u)

/* Resource cluster size: power of two, at least 16 file blocks. */
#define LUNFS_CLUSTER_MIN_FILE_BLOCKS 16u
#define LUNFS_CLUSTER_MAX (1ull << 32)     /* 4 GiB */

/* Paxos instances that guard emulated compare-and-write (docs/DESIGN.md). */
#define LUNFS_PAXOS_INSTANCES_DEFAULT 64u
#define LUNFS_PAXOS_INSTANCES_MAX 4096u

/* Fixed system lock records (lock_id of a LOCK_KIND_SYSTEM record). */
#define LUNFS_SYSLOCKS 64u
enum lunfs_syslock {
	LUNFS_SYSLOCK_VOLUME = 0,   /* shared by mounts, exclusive by fsck -y / resize */
	LUNFS_SYSLOCK_CLUSTER_TYPE = 1, /* serialises typing free clusters (hint refresh) */
	LUNFS_SYSLOCK_RECOVERY = 2, /* reserved: cluster-wide recovery barrier */
	LUNFS_SYSLOCK_RENAME = 3,   /* a directory moving to another parent: one
	                             * such move at a time in the volume */
};

/* Timing defaults, milliseconds. See docs/DESIGN.md "Timeouts" for the
 * inequality they must satisfy (checked by sb validation):
 *   dead_timeout >= 3 * hb_interval + 2 * io_deadline */
#define LUNFS_HB_INTERVAL_DEFAULT_MS 1000u
#define LUNFS_IO_DEADLINE_DEFAULT_MS 2000u
#define LUNFS_DEAD_TIMEOUT_DEFAULT_MS 8000u
#define LUNFS_HB_INTERVAL_MIN_MS 100u
#define LUNFS_TIMING_MAX_MS 600000u

/* Inodes. Inode numbers: cluster_index * inodes_per_cluster + slot.
 * The first units of every inode cluster are covered by its header and
 * bitmap, so ino 0 is never valid. mkfs puts the root directory in the
 * first free unit of cluster 0 (ino 8 with 512-byte sectors, 1 with 4096);
 * the superblock records root_ino rather than anyone assuming it. */
#define LUNFS_INO_NONE 0ull

#endif
