/*
 * vol_create: write a new, empty lunfs volume (docs/FORMAT.md).
 *
 * The order of writes is what makes an interrupted mkfs safe:
 *   1. zero both superblock locations, flush: from here on the device is
 *      "not a volume" to every reader, so nothing can mount the
 *      half-written layout below, and no old superblock points into it;
 *   2. zero the fixed record regions (heartbeat, system locks, Paxos,
 *      cluster locks): an all-zero record is free by the format's rule;
 *   3. write each host's journal head (superblock CLEAN, empty orphan table);
 *   4. type cluster 0 as an inode cluster (header, bitmap, lock + summary)
 *      and write the root directory's slot (lock record + inode);
 *   5. flush, write the backup superblock, flush, write the primary, flush.
 *      The primary is the commit point.
 *
 * Nothing else is written. Everything beyond is free because it is either
 * all zeros or carries the UUID of an earlier volume (decoders say -ENODATA
 * or -ESTALE), which is why the new volume's UUID must differ from the old
 * one's: see the -EEXIST check below.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <uuid/uuid.h>

#include "lunfs/cluster.h"
#include "lunfs/inode.h"
#include "lunfs/journal.h"
#include "lunfs/lock.h"
#include "lunfs/probe.h"
#include "lunfs/volume.h"

/* Cumulative progress over the steps above. */
struct vol_progress {
	void (*cb)(uint64_t done, uint64_t total, void *arg);
	void *arg;
	uint64_t base;  /* bytes done by finished steps */
	uint64_t total;
};

static void vol_progress_zero_cb(uint64_t done, uint64_t total, void *arg)
{
	struct vol_progress *vp = arg;

	(void)total;
	vp->cb(vp->base + done, vp->total, vp->arg);
}

static void vol_progress_add(struct vol_progress *vp, uint64_t bytes)
{
	vp->base += bytes;
	if (vp->cb != NULL) {
		vp->cb(vp->base, vp->total, vp->arg);
	}
}

static void set_why(const struct lunfs_vol_create_opts *o, const char *why)
{
	if (o->why != NULL) {
		*o->why = why;
	}
}

static int fill_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Build the superblock in memory; writes nothing. */
static int vol_super_build(struct lunfs_dev *dev, const struct lunfs_vol_create_opts *o,
			   struct lunfs_super *sb)
{
	static const uint8_t zero_uuid[LUNFS_UUID_SIZE];
	struct lunfs_layout_params p = o->layout;
	const char *why = NULL;
	size_t label_len = o->label == NULL ? 0 : strlen(o->label);
	int err;

	if (label_len > LUNFS_LABEL_MAX) {
		set_why(o, "the label is longer than 64 bytes");
		return -EINVAL;
	}
	if (o->caw != LUNFS_CAW_LOCAL && o->caw != LUNFS_CAW_PAXOS) {
		set_why(o, "the compare-and-write backend must be local or paxos");
		return o->caw == LUNFS_CAW_SCSI ? -EOPNOTSUPP : -EINVAL;
	}
	if (p.sector_size == 0) {
		p.sector_size = dev->sector_size;
	}
	if (p.sector_size < dev->sector_size) {
		set_why(o, "the record stride is smaller than the device's sector size");
		return -EINVAL;
	}
	if (p.volume_size == 0) {
		p.volume_size = dev->size;
	}
	if (p.volume_size > dev->size) {
		set_why(o, "the volume size is larger than the device");
		return -ENOSPC;
	}
	memset(sb, 0, sizeof(*sb));
	err = layout_compute(&p, sb, &why);
	if (err < 0) {
		set_why(o, why != NULL ? why : "invalid volume geometry");
		return err;
	}
	sb->major = LUNFS_FORMAT_MAJOR;
	sb->minor = LUNFS_FORMAT_MINOR;
	sb->flags = 0;
	sb->feat_compat = 0;
	sb->feat_ro_compat = 0;
	/* The backend is the volume's, not a host's (FORMAT 18.8). */
	sb->feat_incompat = o->caw == LUNFS_CAW_PAXOS ? LUNFS_FEAT_INCOMPAT_PAXOS : 0;
	sb->meta_block_size = LUNFS_META_BLOCK_SIZE;
	if (memcmp(o->uuid, zero_uuid, sizeof(zero_uuid)) != 0) {
		memcpy(sb->uuid, o->uuid, LUNFS_UUID_SIZE);
	} else {
		uuid_generate(sb->uuid);
	}
	memset(sb->label, 0, sizeof(sb->label));
	if (label_len > 0) {
		memcpy(sb->label, o->label, label_len);
	}
	err = fill_random(sb->dir_hash_key, sizeof(sb->dir_hash_key));
	if (err < 0) {
		set_why(o, "cannot get random bytes for the directory hash key");
		return err;
	}
	if (o->now_ns != 0) {
		sb->create_time_ns = o->now_ns;
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		sb->create_time_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	}
	/* root_ino needs cluster geometry; vol_root_ino fills it in. */
	return 0;
}

/* Would any copy of an existing superblock on dev carry our UUID? */
static bool vol_uuid_in_use(struct lunfs_dev *dev, const uint8_t uuid[LUNFS_UUID_SIZE])
{
	struct lunfs_super old;

	if (sb_read(dev, &old, NULL, NULL) != 0) {
		return false;
	}
	return memcmp(old.uuid, uuid, LUNFS_UUID_SIZE) == 0;
}

/* Step 1: no superblock at either place a reader looks, durably. The
 * backup is looked for at the end of the device, and, if the volume does not
 * span the device, at the end of the volume too. */
static int vol_super_destroy(struct lunfs_dev *dev, const struct lunfs_super *sb, uint8_t *zblk)
{
	uint64_t addrs[3] = { LUNFS_SB_OFFSET, sb_backup_addr(dev->size),
			      sb_backup_addr(sb->volume_size) };
	int err;

	memset(zblk, 0, LUNFS_META_BLOCK_SIZE);
	for (unsigned i = 0; i < 3; i++) {
		if (i == 2 && addrs[2] == addrs[1]) {
			break;
		}
		err = dev_write(dev, zblk, LUNFS_META_BLOCK_SIZE, addrs[i]);
		if (err < 0) {
			return err;
		}
	}
	return dev_flush(dev);
}

/* Step 3: journal superblock and an empty orphan table, per slot. */
static int vol_journals_write(struct lunfs_dev *dev, const struct lunfs_super *sb,
			      const struct lunfs_codec *c, struct vol_progress *vp)
{
	const size_t len = (1u + LUNFS_JOURNAL_ORPHAN_BLOCKS) * LUNFS_META_BLOCK_SIZE;
	uint8_t *buf = dev_buf_alloc(len);
	int err = 0;

	if (buf == NULL) {
		return -ENOMEM;
	}
	for (uint32_t j = 0; j < sb->max_hosts; j++) {
		uint64_t addr = layout_journal_addr(sb, j);
		struct lunfs_jsb jsb;

		jsb_init(&jsb, (uint16_t)j, sb->journal_size);
		jsb.state = LUNFS_JOURNAL_CLEAN;
		memset(buf, 0, len);
		jsb_encode(c, &jsb, addr, buf);
		/* Orphan blocks stay all zero: the format reads zero as an
		 * empty table, and stale ones from an earlier volume must not
		 * survive under the same address. */
		err = dev_write(dev, buf, len, addr);
		if (err < 0) {
			goto out;
		}
		vol_progress_add(vp, len);
	}
out:
	dev_buf_free(buf);
	return err;
}

/*
 * Step 4: cluster 0 becomes an inode cluster holding the root directory.
 * The header area (header block, bitmap blocks, and the rest of the units
 * they cover) is written in one I/O; then the root's slot; then the
 * cluster's lock record with its summary.
 */
static int vol_cluster0_write(struct lunfs_dev *dev, const struct lunfs_super *sb,
			      const struct lunfs_cluster_hdr *geo, const struct lunfs_codec *c,
			      const struct lunfs_vol_create_opts *o, struct vol_progress *vp)
{
	struct lunfs_cluster_hdr ch = *geo;
	struct lunfs_bitmap *bm = NULL;
	struct lunfs_lock *lk = NULL;
	struct lunfs_inode *ino = NULL;
	struct lunfs_cluster_summary sum;
	struct lunfs_dir_state ds;
	uint64_t start = layout_cluster_addr(sb, 0);
	uint64_t root_unit = ch.header_units;
	uint64_t area_len, lock_addr;
	uint8_t *area = NULL, *slot = NULL, *rec = NULL;
	int err;

	ch.cluster_index = 0;
	ch.cluster_start = start;
	ch.type_gen = 1;
	ch.units_free = ch.units_total - ch.header_units - 1;
	ch.alloc_hint = root_unit + 1;
	ch.seq = 0;

	area_len = (uint64_t)ch.header_units * ch.unit_size;
	area = dev_buf_alloc(area_len);
	bm = calloc(1, sizeof(*bm));
	lk = calloc(1, sizeof(*lk));
	ino = calloc(1, sizeof(*ino));
	slot = dev_buf_alloc(2u * sb->sector_size);
	rec = dev_buf_alloc(sb->sector_size);
	if (area == NULL || bm == NULL || lk == NULL || ino == NULL || slot == NULL || rec == NULL) {
		err = -ENOMEM;
		goto out;
	}
	cluster_hdr_encode(c, &ch, start, area);

	/* Units 0..header_units-1 (the header area) and the root's unit are
	 * allocated; everything else starts free. */
	for (uint32_t b = 0; b < ch.bitmap_blocks; b++) {
		uint64_t first = (uint64_t)b * LUNFS_BITMAP_BITS;
		uint64_t addr = start + (1u + (uint64_t)b) * LUNFS_META_BLOCK_SIZE;

		memset(bm, 0, sizeof(*bm));
		bm->cluster_index = 0;
		bm->first_unit = first;
		bm->seq = 0;
		for (uint64_t u = first; u < first + LUNFS_BITMAP_BITS && u <= root_unit; u++) {
			bm->words[(u - first) / 64u] |= 1ull << ((u - first) % 64u);
		}
		bitmap_encode(c, bm, addr, area + (1u + (uint64_t)b) * LUNFS_META_BLOCK_SIZE);
	}
	err = dev_write(dev, area, area_len, start);
	if (err < 0) {
		goto out;
	}
	vol_progress_add(vp, area_len);

	/* The root directory: its lock record, then its inode, one sector each. */
	err = layout_ino_addr(sb, sb->root_ino, &lock_addr);
	if (err < 0) {
		set_why(o, "the root inode number does not name a slot");
		goto out;
	}
	memset(lk, 0, sizeof(*lk));
	lk->kind = LUNFS_LOCK_KIND_INODE;
	lk->mode = LUNFS_LOCK_FREE;
	lk->lock_id = sb->root_ino;
	lk->version = 1;
	lock_encode(c, lk, lock_addr, slot);

	memset(ino, 0, sizeof(*ino));
	ino->ino = sb->root_ino;
	ino->generation = 1;
	ino->mode = S_IFDIR | (o->root_mode != 0 ? (o->root_mode & 07777u) : 0755u);
	ino->uid = o->root_uid;
	ino->gid = o->root_gid;
	ino->nlink = 2;
	ino->atime_ns = sb->create_time_ns;
	ino->mtime_ns = sb->create_time_ns;
	ino->ctime_ns = sb->create_time_ns;
	ino->btime_ns = sb->create_time_ns;
	ino->parent_ino = sb->root_ino;
	ino->map_unit = LUNFS_MAP_META;
	ino->version = 1;
	memset(&ds, 0, sizeof(ds));
	inode_dir_state_set(ino, &ds);
	inode_encode(c, ino, lock_addr + sb->sector_size, slot + sb->sector_size);
	err = dev_write(dev, slot, 2u * sb->sector_size, lock_addr);
	if (err < 0) {
		goto out;
	}
	vol_progress_add(vp, 2u * sb->sector_size);

	/* The cluster's lock record: free, with a summary that matches. */
	memset(lk, 0, sizeof(*lk));
	lk->kind = LUNFS_LOCK_KIND_CLUSTER;
	lk->mode = LUNFS_LOCK_FREE;
	lk->lock_id = 0;
	lk->version = 1;
	memset(&sum, 0, sizeof(sum));
	sum.type = LUNFS_CLUSTER_INODE;
	sum.units_total = ch.units_total;
	sum.units_free = ch.units_free;
	sum.updated_seq = lk->version;
	lock_summary_set(lk, &sum);
	memset(rec, 0, sb->sector_size);
	lock_encode(c, lk, layout_cluster_lock_addr(sb, 0), rec);
	err = dev_write(dev, rec, sb->sector_size, layout_cluster_lock_addr(sb, 0));
	if (err < 0) {
		goto out;
	}
	vol_progress_add(vp, sb->sector_size);
out:
	dev_buf_free(rec);
	dev_buf_free(slot);
	free(ino);
	free(lk);
	free(bm);
	dev_buf_free(area);
	return err;
}

int vol_create(struct lunfs_dev *dev, const struct lunfs_vol_create_opts *o,
	       struct lunfs_super *sb_out,
	       void (*progress)(uint64_t done, uint64_t total, void *arg), void *arg)
{
	static const enum lunfs_region_id zeroed[] = {
		LUNFS_REGION_HEARTBEAT, LUNFS_REGION_SYSLOCK,
		LUNFS_REGION_PAXOS, LUNFS_REGION_CLUSTER,
	};
	struct vol_progress vp = { .cb = progress, .arg = arg };
	struct lunfs_super sb, check;
	struct lunfs_cluster_hdr ch;
	struct lunfs_codec c;
	uint8_t *blk = NULL;
	uint64_t backup;
	int err;

	if (o->why != NULL) {
		*o->why = NULL;
	}
	err = vol_super_build(dev, o, &sb);
	if (err < 0) {
		return err;
	}
	if (vol_uuid_in_use(dev, sb.uuid)) {
		set_why(o, "the device holds a volume with this UUID already");
		return -EEXIST;
	}
	err = cluster_geometry(&sb, LUNFS_CLUSTER_INODE, &ch);
	if (err < 0) {
		set_why(o, "cannot compute inode cluster geometry");
		return err;
	}
	if (ch.bitmap_blocks == 0 || ch.units_total <= (uint64_t)ch.header_units + 1u ||
	    (uint64_t)ch.header_units * ch.unit_size <
		    (1u + (uint64_t)ch.bitmap_blocks) * LUNFS_META_BLOCK_SIZE) {
		set_why(o, "the cluster is too small to hold the root directory");
		return -ENOSPC;
	}
	/* The root is the first slot after cluster 0's header area. */
	sb.root_ino = 0 * layout_inodes_per_cluster(&sb) + ch.header_units;
	sb_codec(&sb, &c);
	backup = sb_backup_addr(sb.volume_size);

	blk = dev_buf_alloc(LUNFS_META_BLOCK_SIZE);
	if (blk == NULL) {
		return -ENOMEM;
	}
	/* Refuse before writing anything if what we would write does not
	 * read back: a geometry bug must not cost the user their old data. */
	sb_encode(&sb, LUNFS_SB_OFFSET, blk);
	err = sb_decode(blk, LUNFS_SB_OFFSET, &check);
	if (err < 0) {
		set_why(o, "the computed superblock does not validate (a bug)");
		goto out;
	}

	for (size_t i = 0; i < sizeof(zeroed) / sizeof(zeroed[0]); i++) {
		vp.total += sb.regions[zeroed[i]].length;
	}
	vp.total += (uint64_t)sb.max_hosts * (1u + LUNFS_JOURNAL_ORPHAN_BLOCKS) * LUNFS_META_BLOCK_SIZE;
	vp.total += (uint64_t)ch.header_units * ch.unit_size + 3u * sb.sector_size;
	vp.total += 2u * LUNFS_META_BLOCK_SIZE;

	err = vol_super_destroy(dev, &sb, blk);
	if (err < 0) {
		goto out;
	}
	for (size_t i = 0; i < sizeof(zeroed) / sizeof(zeroed[0]); i++) {
		const struct lunfs_region *r = &sb.regions[zeroed[i]];

		err = dev_zero_range(dev, r->offset, r->length,
				     progress != NULL ? vol_progress_zero_cb : NULL, &vp);
		if (err < 0) {
			goto out;
		}
		vol_progress_add(&vp, r->length);
	}
	err = vol_journals_write(dev, &sb, &c, &vp);
	if (err < 0) {
		goto out;
	}
	err = vol_cluster0_write(dev, &sb, &ch, &c, o, &vp);
	if (err < 0) {
		goto out;
	}

	/* Everything the superblock points at is durable before it exists. */
	err = dev_flush(dev);
	if (err < 0) {
		goto out;
	}
	sb_encode(&sb, backup, blk);
	err = dev_write(dev, blk, LUNFS_META_BLOCK_SIZE, backup);
	if (err < 0) {
		goto out;
	}
	err = dev_flush(dev);
	if (err < 0) {
		goto out;
	}
	vol_progress_add(&vp, LUNFS_META_BLOCK_SIZE);
	sb_encode(&sb, LUNFS_SB_OFFSET, blk);
	err = dev_write(dev, blk, LUNFS_META_BLOCK_SIZE, LUNFS_SB_OFFSET);
	if (err < 0) {
		goto out;
	}
	err = dev_flush(dev);
	if (err < 0) {
		goto out;
	}
	vol_progress_add(&vp, LUNFS_META_BLOCK_SIZE);
	if (sb_out != NULL) {
		*sb_out = sb;
	}
out:
	dev_buf_free(blk);
	return err;
}
