/*
 * Volume-level operations of the fs core that the tools drive: creating a
 * volume (mkfs is a thin driver over vol_create).
 */
#ifndef LUNFS_VOLUME_H
#define LUNFS_VOLUME_H

#include <stdint.h>

#include "lunfs/dev.h"
#include "lunfs/format.h"

#define LUNFS_LABEL_MAX 64u /* bytes, not counting the NUL */

/* What mkfs decides. Zero fields take the defaults. */
struct lunfs_vol_create_opts {
	/* Geometry and timing. volume_size 0 = the whole device; sector_size
	 * 0 = the device's (a smaller one than the device's is refused). */
	struct lunfs_layout_params layout;
	const char *label;          /* NULL = none; at most LUNFS_LABEL_MAX bytes */
	uint8_t uuid[LUNFS_UUID_SIZE]; /* all zero = generate one (libuuid) */
	uint32_t root_uid;
	uint32_t root_gid;
	uint32_t root_mode;         /* permission bits (07777); 0 = 0755 */
	uint64_t now_ns;            /* creation time; 0 = CLOCK_REALTIME now */
	/* The compare-and-write backend every host of the volume will use
	 * (LUNFS_FEAT_INCOMPAT_PAXOS, docs/FORMAT.md 18.8). Not a "zero =
	 * default" field: the enum's zero is LOCAL, the one-machine backend
	 * that the memory-device unit tests use; mkfs.lunfs passes PAXOS
	 * unless told otherwise. SCSI: -EOPNOTSUPP. */
	enum lunfs_caw_backend caw;
	const char **why;           /* if not NULL, a static message on failure */
};

/*
 * Format `dev` as a new lunfs volume. On success returns 0 and fills
 * *sb_out (if not NULL) with the superblock written. On failure returns a
 * negative errno and, if o->why is set, a message for the user:
 *   -EINVAL   a parameter is invalid (layout_compute's reason)
 *   -ENOSPC   the device is too small
 *   -EEXIST   the device holds a lunfs volume with the UUID requested: a
 *             volume's records are told from an earlier volume's only by the
 *             UUID, so reusing it would bring the old records back to life
 *   -EIO etc. from the device
 * The superblocks are destroyed first and written last (backup, then
 * primary), so an interrupted vol_create leaves a device that does not
 * look like a volume, never an old superblock over a half-made layout.
 *
 * Writes only bounded metadata (the fixed regions, the journal heads and
 * cluster 0's header area and root slot): the cost does not grow with the
 * data region, so a 64 TiB volume formats in seconds.
 *
 * progress(done, total, arg), if not NULL, is called as bytes are written.
 */
int vol_create(struct lunfs_dev *dev, const struct lunfs_vol_create_opts *o,
	       struct lunfs_super *sb_out,
	       void (*progress)(uint64_t done, uint64_t total, void *arg), void *arg);

#endif
