/*
 * Superblock codec (include/lunfs/super.h).
 *
 * The superblock has no record frame: it defines the volume UUID rather than
 * being checked against it, and it has no HMAC (the key check values live in
 * it). Decode order: all zeros, magic, crc32c, own address, major version,
 * primary/backup flag against the address, string padding, then the whole
 * geometry (sb_geometry_check), so that a superblock that decodes is safe to
 * compute addresses from.
 */
#include <errno.h>
#include <string.h>

#include "fmt_private.h"
#include "lunfs/crc32c.h"
#include "lunfs/format.h"
#include "lunfs/super.h"

uint64_t sb_backup_addr(uint64_t volume_size)
{
	uint64_t last = volume_size & ~(uint64_t)(LUNFS_META_BLOCK_SIZE - 1);

	/* A volume without room for two superblocks has no backup address;
	 * 0 never matches a real copy (the primary is at 4096). */
	if (last < 2ull * LUNFS_META_BLOCK_SIZE) {
		return 0;
	}
	return last - LUNFS_META_BLOCK_SIZE;
}

void sb_encode(const struct lunfs_super *sb, uint64_t addr, void *buf)
{
	struct lunfs_super_disk d;
	uint32_t flags = sb->flags & ~LUNFS_SB_FLAG_BACKUP;

	if (addr != LUNFS_SB_OFFSET) {
		flags |= LUNFS_SB_FLAG_BACKUP;
	}
	memset(&d, 0, sizeof(d));
	d.magic = le64_make(LUNFS_SB_MAGIC);
	d.major = le16_make(sb->major);
	d.minor = le16_make(sb->minor);
	d.flags = le32_make(flags);
	d.feat_compat = le32_make(sb->feat_compat);
	d.feat_ro_compat = le32_make(sb->feat_ro_compat);
	d.feat_incompat = le32_make(sb->feat_incompat);
	d.self = le64_make(addr);
	memcpy(d.uuid, sb->uuid, sizeof(d.uuid));
	fmt_padded_str_put(d.label, sizeof(d.label), sb->label);
	memcpy(d.dir_hash_key, sb->dir_hash_key, sizeof(d.dir_hash_key));
	d.volume_size = le64_make(sb->volume_size);
	d.create_time_ns = le64_make(sb->create_time_ns);
	d.sector_size = le32_make(sb->sector_size);
	d.meta_block_size = le32_make(sb->meta_block_size);
	d.file_block_size = le32_make(sb->file_block_size);
	d.max_hosts = le32_make(sb->max_hosts);
	d.hb_interval_ms = le32_make(sb->hb_interval_ms);
	d.dead_timeout_ms = le32_make(sb->dead_timeout_ms);
	d.io_deadline_ms = le32_make(sb->io_deadline_ms);
	d.paxos_instances = le32_make(sb->paxos_instances);
	d.cluster_size = le64_make(sb->cluster_size);
	d.cluster_count = le64_make(sb->cluster_count);
	d.journal_size = le64_make(sb->journal_size);
	d.root_ino = le64_make(sb->root_ino);
	for (unsigned i = 0; i < LUNFS_REGION_COUNT; i++) {
		d.regions[i].offset = le64_make(sb->regions[i].offset);
		d.regions[i].length = le64_make(sb->regions[i].length);
	}
	d.inode_slot_size = le32_make(sb->inode_slot_size);
	d.kdf_iterations = le32_make(sb->kdf_iterations);
	memcpy(d.kdf_salt, sb->kdf_salt, sizeof(d.kdf_salt));
	memcpy(d.hmac_check, sb->hmac_check, sizeof(d.hmac_check));
	memcpy(d.enc_check, sb->enc_check, sizeof(d.enc_check));
	d.crc = le32_make(crc32c(0, &d, offsetof(struct lunfs_super_disk, crc)));
	memcpy(buf, &d, sizeof(d));
}

static int sb_decode_fields(const void *buf, uint64_t addr, struct lunfs_super *out)
{
	struct lunfs_super_disk d;
	const char *why = NULL;
	bool backup;

	memset(out, 0, sizeof(*out));
	if (buf_is_zero(buf, sizeof(d))) {
		return -ENODATA;
	}
	memcpy(&d, buf, sizeof(d));
	if (le64_get(d.magic) != LUNFS_SB_MAGIC) {
		return -EUCLEAN;
	}
	if (le32_get(d.crc) != crc32c(0, &d, offsetof(struct lunfs_super_disk, crc))) {
		return -EUCLEAN;
	}
	if (le64_get(d.self) != addr) {
		return -EUCLEAN;
	}
	if (le16_get(d.major) != LUNFS_FORMAT_MAJOR) {
		return -EPROTONOSUPPORT;
	}
	out->major = le16_get(d.major);
	out->minor = le16_get(d.minor);
	out->flags = le32_get(d.flags);
	out->feat_compat = le32_get(d.feat_compat);
	out->feat_ro_compat = le32_get(d.feat_ro_compat);
	out->feat_incompat = le32_get(d.feat_incompat);
	memcpy(out->uuid, d.uuid, sizeof(out->uuid));
	if (!fmt_padded_str_get(d.label, sizeof(d.label), out->label)) {
		return -EUCLEAN;
	}
	memcpy(out->dir_hash_key, d.dir_hash_key, sizeof(out->dir_hash_key));
	out->volume_size = le64_get(d.volume_size);
	out->create_time_ns = le64_get(d.create_time_ns);
	out->sector_size = le32_get(d.sector_size);
	out->meta_block_size = le32_get(d.meta_block_size);
	out->file_block_size = le32_get(d.file_block_size);
	out->max_hosts = le32_get(d.max_hosts);
	out->hb_interval_ms = le32_get(d.hb_interval_ms);
	out->dead_timeout_ms = le32_get(d.dead_timeout_ms);
	out->io_deadline_ms = le32_get(d.io_deadline_ms);
	out->paxos_instances = le32_get(d.paxos_instances);
	out->cluster_size = le64_get(d.cluster_size);
	out->cluster_count = le64_get(d.cluster_count);
	out->journal_size = le64_get(d.journal_size);
	out->root_ino = le64_get(d.root_ino);
	for (unsigned i = 0; i < LUNFS_REGION_COUNT; i++) {
		out->regions[i].offset = le64_get(d.regions[i].offset);
		out->regions[i].length = le64_get(d.regions[i].length);
	}
	out->inode_slot_size = le32_get(d.inode_slot_size);
	out->kdf_iterations = le32_get(d.kdf_iterations);
	memcpy(out->kdf_salt, d.kdf_salt, sizeof(out->kdf_salt));
	memcpy(out->hmac_check, d.hmac_check, sizeof(out->hmac_check));
	memcpy(out->enc_check, d.enc_check, sizeof(out->enc_check));

	/* The copy must say which one it is: a backup found at the primary
	 * address (or vice versa) was written somewhere it does not belong. */
	backup = (out->flags & LUNFS_SB_FLAG_BACKUP) != 0;
	if (addr == LUNFS_SB_OFFSET) {
		if (backup) {
			return -EUCLEAN;
		}
	} else if (!backup || addr != sb_backup_addr(out->volume_size)) {
		return -EUCLEAN;
	}
	if (sb_geometry_check(out, &why) != 0) {
		return -EUCLEAN;
	}
	return 0;
}

int sb_decode(const void *buf, uint64_t addr, struct lunfs_super *out)
{
	int ret = sb_decode_fields(buf, addr, out);

	/* Never hand back half a superblock. */
	if (ret != 0) {
		memset(out, 0, sizeof(*out));
	}
	return ret;
}

int sb_features_check(const struct lunfs_super *sb, bool rw, uint32_t *unknown)
{
	uint32_t bad = sb->feat_incompat & ~LUNFS_FEAT_INCOMPAT_SUPPORTED;

	/* Unknown compat bits are harmless by definition; unknown ro_compat
	 * bits only forbid writing. */
	if (bad == 0 && rw) {
		bad = sb->feat_ro_compat & ~LUNFS_FEAT_RO_COMPAT_SUPPORTED;
	}
	if (unknown != NULL) {
		*unknown = bad;
	}
	return bad != 0 ? -EOPNOTSUPP : 0;
}

void sb_codec(const struct lunfs_super *sb, struct lunfs_codec *out)
{
	/* The HMAC key is derived from the volume secret, which the superblock
	 * does not hold: the caller that has the secret fills hmac_key. */
	memset(out, 0, sizeof(*out));
	memcpy(out->uuid, sb->uuid, sizeof(out->uuid));
	out->have_hmac = (sb->feat_incompat & LUNFS_FEAT_INCOMPAT_HMAC) != 0;
}
