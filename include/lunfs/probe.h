/*
 * Reading a volume's fixed structures from a device: the superblock (with
 * fallback to the backup) and the heartbeat region. Used by mkfs (is there
 * a volume here, is it in use), inspect, and later mount and fsck.
 */
#ifndef LUNFS_PROBE_H
#define LUNFS_PROBE_H

#include <stdbool.h>
#include <stdint.h>

#include "lunfs/dev.h"
#include "lunfs/format.h"

enum lunfs_sb_copy {
	LUNFS_SB_PRIMARY = 0,
	LUNFS_SB_BACKUP = 1,
};

/* Read and decode the primary superblock; if it does not decode, the backup
 * at sb_backup_addr(dev->size). Returns 0 and which copy was used, or the
 * primary's error: -ENODATA (no lunfs superblock there), -EUCLEAN (both
 * copies corrupt), -EPROTONOSUPPORT (a newer format: the backup is not
 * tried, it would be just as new), -EIO. *primary_err (if not NULL) gets the
 * primary's own result, so callers can warn that the backup was used. A
 * volume whose record stride is smaller than the device's sector size
 * cannot be used safely (records would share a sector): -EOPNOTSUPP. */
int sb_read(struct lunfs_dev *dev, struct lunfs_super *out, enum lunfs_sb_copy *copy,
	    int *primary_err);

/* Read every heartbeat slot in one I/O. slots[] and status[] have
 * sb->max_hosts entries; status[i] is the slot's decode result (0,
 * -ENODATA, -ESTALE or -EUCLEAN; slots[i] is zeroed unless 0). */
int hb_scan_read(struct lunfs_dev *dev, const struct lunfs_super *sb,
		 const struct lunfs_codec *c, struct lunfs_hb_slot *slots, int *status);

/* Is any host renewing its heartbeat? If no slot is claimed (JOINING, LIVE,
 * LEAVING or RECOVERING), answers at once. Otherwise reads the region, waits
 * for twice the longest heartbeat interval that a claimed slot advertises
 * (at most max_wait_ms), and reads again: a slot whose seq or generation
 * moved is live. This is the read-wait-reread of ext4's MMP, judged on this
 * host's clock only. Returns the number of live slots, or a negative errno;
 * live[] (max_hosts entries, may be NULL) marks them. *claimed (may be NULL)
 * gets the number of claimed slots, live or not. */
int hb_scan_live(struct lunfs_dev *dev, const struct lunfs_super *sb,
		 const struct lunfs_codec *c, uint32_t max_wait_ms, bool *live,
		 uint32_t *claimed);

#endif
