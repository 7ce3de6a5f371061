/*
 * Superblock I/O: read the primary copy, fall back to the backup.
 *
 * The primary lives at LUNFS_SB_OFFSET; the backup in the last whole 4 KiB
 * block of the device. A primary that is merely absent or corrupt sends us
 * to the backup; a primary from a newer major version does not, because
 * the backup was written by the same mkfs.
 */
#include <errno.h>
#include <string.h>

#include "lunfs/dev.h"
#include "lunfs/format.h"
#include "lunfs/probe.h"

static int sb_read_copy(struct lunfs_dev *dev, uint64_t addr, void *buf, struct lunfs_super *out)
{
	int err;

	if (addr + LUNFS_META_BLOCK_SIZE > dev->size) {
		return -ENODATA;
	}
	err = dev_read(dev, buf, LUNFS_META_BLOCK_SIZE, addr);
	if (err < 0) {
		return err;
	}
	return sb_decode(buf, addr, out);
}

int sb_read(struct lunfs_dev *dev, struct lunfs_super *out, enum lunfs_sb_copy *copy,
	    int *primary_err)
{
	void *buf = dev_buf_alloc(LUNFS_META_BLOCK_SIZE);
	enum lunfs_sb_copy used = LUNFS_SB_PRIMARY;
	int perr, err;

	if (buf == NULL) {
		return -ENOMEM;
	}
	perr = sb_read_copy(dev, LUNFS_SB_OFFSET, buf, out);
	err = perr;
	if (perr == -ENODATA || perr == -EUCLEAN || perr == -ESTALE) {
		if (dev->size >= 2 * LUNFS_META_BLOCK_SIZE + LUNFS_SB_OFFSET) {
			int berr = sb_read_copy(dev, sb_backup_addr(dev->size), buf, out);

			if (berr == 0) {
				used = LUNFS_SB_BACKUP;
				err = 0;
			} else if (perr == -ENODATA && berr == -EUCLEAN) {
				/* Something is at the end, nothing at the start:
				 * say "no filesystem", the primary's verdict. */
				err = perr;
			}
		}
	}
	if (err == 0 && out->sector_size < dev->sector_size) {
		err = -EOPNOTSUPP;
	}
	if (err == 0 && out->volume_size > dev->size) {
		/* The device shrank, or this is a truncated image: addresses
		 * past its end would fail later, in the middle of work. */
		err = -EUCLEAN;
	}
	if (copy != NULL) {
		*copy = used;
	}
	if (primary_err != NULL) {
		*primary_err = perr;
	}
	dev_buf_free(buf);
	return err;
}
