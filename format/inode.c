/*
 * Inode record codec (include/lunfs/inode.h).
 *
 * Decode checks, besides the frame, what later code indexes or branches on
 * without checking again: the inode number matches its slot, a known file
 * type and no stray mode bits, known flags, the block map's height and unit,
 * a map root and an xattr block that are 4 KiB block addresses, and that the
 * map root and height are both zero (no map) or both set.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fmt_private.h"
#include "lunfs/format.h"
#include "lunfs/inode.h"

#define INODE_FLAGS_KNOWN (LUNFS_INODE_SNAPSHOT | LUNFS_INODE_MULTIWRITER | LUNFS_INODE_ORPHAN | \
			   LUNFS_INODE_INLINE | LUNFS_INODE_IMMUTABLE)

void inode_encode(const struct lunfs_codec *c, const struct lunfs_inode *in, uint64_t addr, void *rec)
{
	struct lunfs_inode_disk d;

	memset(&d, 0, sizeof(d));
	d.ino = le64_make(in->ino);
	d.generation = le32_make(in->generation);
	d.mode = le32_make(in->mode);
	d.uid = le32_make(in->uid);
	d.gid = le32_make(in->gid);
	d.nlink = le32_make(in->nlink);
	d.flags = le32_make(in->flags);
	d.size = le64_make(in->size);
	d.alloc_bytes = le64_make(in->alloc_bytes);
	d.atime_ns = le64_make(in->atime_ns);
	d.mtime_ns = le64_make(in->mtime_ns);
	d.ctime_ns = le64_make(in->ctime_ns);
	d.btime_ns = le64_make(in->btime_ns);
	d.parent_ino = le64_make(in->parent_ino);
	d.map_root = le64_make(in->map_root);
	d.map_height = in->map_height;
	d.map_unit = in->map_unit;
	d.rdev = le32_make(in->rdev);
	d.xattr_blk = le64_make(in->xattr_blk);
	d.version = le64_make(in->version);
	d.snap_parent = le64_make(in->snap_parent);
	d.snap_id = le64_make(in->snap_id);
	d.snap_dir = le64_make(in->snap_dir);
	d.writer_slot = le16_make(in->writer_slot);
	d.writer_gen = le64_make(in->writer_gen);
	memcpy(d.inline_data, in->inline_data, sizeof(d.inline_data));
	memcpy(rec, &d, sizeof(d));
	rec_seal(c, rec, LUNFS_INODE_MAGIC, 0, addr);
}

static bool mode_ok(uint32_t mode)
{
	if ((mode & ~(uint32_t)(S_IFMT | 07777)) != 0) {
		return false;
	}
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		return true;
	default:
		return false;
	}
}

int inode_decode(const struct lunfs_codec *c, const void *rec, uint64_t addr, uint64_t expect_ino,
		 struct lunfs_inode *out)
{
	struct lunfs_inode_disk d;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = rec_verify(c, rec, LUNFS_INODE_MAGIC, addr);
	if (ret != 0) {
		goto out;
	}
	ret = -EUCLEAN;
	memcpy(&d, rec, sizeof(d));
	out->ino = le64_get(d.ino);
	out->generation = le32_get(d.generation);
	out->mode = le32_get(d.mode);
	out->uid = le32_get(d.uid);
	out->gid = le32_get(d.gid);
	out->nlink = le32_get(d.nlink);
	out->flags = le32_get(d.flags);
	out->size = le64_get(d.size);
	out->alloc_bytes = le64_get(d.alloc_bytes);
	out->atime_ns = le64_get(d.atime_ns);
	out->mtime_ns = le64_get(d.mtime_ns);
	out->ctime_ns = le64_get(d.ctime_ns);
	out->btime_ns = le64_get(d.btime_ns);
	out->parent_ino = le64_get(d.parent_ino);
	out->map_root = le64_get(d.map_root);
	out->map_height = d.map_height;
	out->map_unit = d.map_unit;
	out->rdev = le32_get(d.rdev);
	out->xattr_blk = le64_get(d.xattr_blk);
	out->version = le64_get(d.version);
	out->snap_parent = le64_get(d.snap_parent);
	out->snap_id = le64_get(d.snap_id);
	out->snap_dir = le64_get(d.snap_dir);
	out->writer_slot = le16_get(d.writer_slot);
	out->writer_gen = le64_get(d.writer_gen);
	memcpy(out->inline_data, d.inline_data, sizeof(out->inline_data));

	if (out->ino == LUNFS_INO_NONE || (expect_ino != 0 && out->ino != expect_ino)) {
		goto out;
	}
	/* A freed inode keeps its record with mode 0 and nlink 0, so that the
	 * slot's next user can continue its generation (FORMAT.md, Inodes). */
	if (!(mode_ok(out->mode) || (out->mode == 0 && out->nlink == 0)) ||
	    (out->flags & ~(uint32_t)INODE_FLAGS_KNOWN) != 0) {
		goto out;
	}
	if (out->map_height > LUNFS_MAP_MAX_HEIGHT || out->map_unit > LUNFS_MAP_META) {
		goto out;
	}
	if ((out->map_root == 0) != (out->map_height == 0)) {
		goto out;
	}
	if (out->map_root % LUNFS_META_BLOCK_SIZE != 0 || out->xattr_blk % LUNFS_META_BLOCK_SIZE != 0) {
		goto out;
	}
	if (out->writer_slot > LUNFS_HOSTS_MAX) {
		goto out;
	}
	ret = 0;
out:
	if (ret != 0) {
		memset(out, 0, sizeof(*out));
	}
	return ret;
}

void inode_dir_state_get(const struct lunfs_inode *i, struct lunfs_dir_state *out)
{
	struct lunfs_dir_inline_disk d;

	memcpy(&d, i->inline_data, sizeof(d));
	memset(out, 0, sizeof(*out));
	out->global_depth = le32_get(d.global_depth);
	out->nentries = le64_get(d.nentries);
	out->next_lblk = le64_get(d.next_lblk);
	out->nleaves = le64_get(d.nleaves);
}

void inode_dir_state_set(struct lunfs_inode *i, const struct lunfs_dir_state *in)
{
	struct lunfs_dir_inline_disk d;

	memset(&d, 0, sizeof(d));
	d.global_depth = le32_make(in->global_depth);
	d.nentries = le64_make(in->nentries);
	d.next_lblk = le64_make(in->next_lblk);
	d.nleaves = le64_make(in->nleaves);
	memset(i->inline_data, 0, sizeof(i->inline_data));
	memcpy(i->inline_data, &d, sizeof(d));
}
