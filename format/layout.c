/*
 * Volume geometry: where every region lives (docs/FORMAT.md "Geometry").
 *
 * Regions, in this order, each starting on a LUNFS_REGION_ALIGN (1 MiB)
 * boundary and rounded up to a whole MiB; the first MiB holds the primary
 * superblock (at 4096) and the last whole 4 KiB block the backup:
 *
 *   HEARTBEAT  max_hosts * sector_size
 *   SYSLOCK    LUNFS_SYSLOCKS * sector_size
 *   PAXOS      paxos_instances * (max_hosts + 1) * sector_size (host blocks
 *              plus one leader record per instance)
 *   CLUSTER    cluster_count * sector_size
 *   JOURNAL    max_hosts * journal_size
 *   DATA       cluster_count * cluster_size, starting on a file block
 *              boundary, ending at or before the backup superblock
 *
 * The CLUSTER region's length depends on cluster_count, which depends on
 * where DATA starts, which depends on the CLUSTER region. End(cc) = the
 * end of DATA for cc clusters is non-decreasing in cc (every term is), so
 * "End(cc) <= backup" holds for all cc up to some maximum and for none
 * beyond: layout_compute binary-searches that maximum between 0 and an
 * upper bound (the whole volume past the first MiB as clusters). That is
 * at most 64 steps of pure arithmetic, so a 64 TiB (or 16 EiB) volume is as
 * fast as a small one, and it always terminates.
 *
 * sb_geometry_check re-derives these invariants from a superblock that may
 * be hostile, with overflow-checked arithmetic. Once it passes, every
 * layout_*() address for an in-range index is inside the volume and
 * computed without overflow: each region's end is <= the backup address,
 * which is < volume_size < 2^64.
 */
#include <errno.h>
#include <string.h>

#include "fmt_private.h"
#include "lunfs/crc32c.h"
#include "lunfs/cluster.h"
#include "lunfs/format.h"
#include "lunfs/layout.h"
#include "lunfs/super.h"

#define MiB (1024ull * 1024ull)

/* Place a region of `need` bytes at the first 1 MiB boundary at or after
 * *cursor; false on overflow. */
static bool region_place(uint64_t *cursor, uint64_t need, struct lunfs_region *r)
{
	uint64_t off, len, end;

	if (!fmt_round_up(*cursor, LUNFS_REGION_ALIGN, &off) ||
	    !fmt_round_up(need, LUNFS_REGION_ALIGN, &len) ||
	    __builtin_add_overflow(off, len, &end)) {
		return false;
	}
	r->offset = off;
	r->length = len;
	*cursor = end;
	return true;
}

/* All regions for `cc` clusters, from the sizes already in *sb. Returns
 * false if they overflow or DATA does not end by `limit`. */
static bool layout_regions(const struct lunfs_super *sb, uint64_t cc, uint64_t limit,
			   struct lunfs_region r[LUNFS_REGION_COUNT])
{
	uint64_t cur = LUNFS_REGION_ALIGN;
	uint64_t sec = sb->sector_size;
	uint64_t hosts = sb->max_hosts;
	uint64_t align = sb->file_block_size > LUNFS_REGION_ALIGN ? sb->file_block_size
								   : LUNFS_REGION_ALIGN;
	uint64_t need, off, len, end;

	/* hosts <= 2^11, instances <= 2^12, sector <= 2^12, journal <= 2^30:
	 * these products cannot overflow; cc * sec and cc * cluster_size can. */
	if (!region_place(&cur, hosts * sec, &r[LUNFS_REGION_HEARTBEAT]) ||
	    !region_place(&cur, (uint64_t)LUNFS_SYSLOCKS * sec, &r[LUNFS_REGION_SYSLOCK]) ||
	    !region_place(&cur, (uint64_t)sb->paxos_instances * (hosts + 1) * sec, &r[LUNFS_REGION_PAXOS])) {
		return false;
	}
	if (__builtin_mul_overflow(cc, sec, &need) ||
	    !region_place(&cur, need, &r[LUNFS_REGION_CLUSTER]) ||
	    !region_place(&cur, hosts * sb->journal_size, &r[LUNFS_REGION_JOURNAL])) {
		return false;
	}
	if (!fmt_round_up(cur, align, &off) ||
	    __builtin_mul_overflow(cc, sb->cluster_size, &len) ||
	    __builtin_add_overflow(off, len, &end) || end > limit) {
		return false;
	}
	r[LUNFS_REGION_DATA].offset = off;
	r[LUNFS_REGION_DATA].length = len;
	return true;
}

static uint64_t pow2_floor(uint64_t x)
{
	if (x == 0) {
		return 0;
	}
	return 1ull << (63 - __builtin_clzll(x));
}

/* Checks shared by layout_compute (on its own result) and
 * sb_geometry_check: everything except root_ino, which mkfs picks later. */
static int geometry_core_check(const struct lunfs_super *sb, const char **why)
{
	uint64_t backup = sb_backup_addr(sb->volume_size);
	uint64_t prev_end = LUNFS_REGION_ALIGN;
	uint64_t need[LUNFS_REGION_COUNT];
	uint64_t sec = sb->sector_size;
	uint64_t timing;

	if (sb->meta_block_size != LUNFS_META_BLOCK_SIZE) {
		*why = "meta_block_size is not 4096";
		return -EUCLEAN;
	}
	if (sb->sector_size != 512 && sb->sector_size != 4096) {
		*why = "sector_size is neither 512 nor 4096";
		return -EUCLEAN;
	}
	if (sb->inode_slot_size != 2 * sb->sector_size) {
		*why = "inode_slot_size is not twice the sector size";
		return -EUCLEAN;
	}
	if (!fmt_is_pow2(sb->file_block_size) || sb->file_block_size < LUNFS_FILE_BLOCK_MIN ||
	    sb->file_block_size > LUNFS_FILE_BLOCK_MAX) {
		*why = "file_block_size is not a power of two in [64 KiB, 64 MiB]";
		return -EUCLEAN;
	}
	if (sb->max_hosts < LUNFS_HOSTS_MIN || sb->max_hosts > LUNFS_HOSTS_MAX) {
		*why = "max_hosts out of range";
		return -EUCLEAN;
	}
	if (sb->paxos_instances < 1 || sb->paxos_instances > LUNFS_PAXOS_INSTANCES_MAX) {
		*why = "paxos_instances out of range";
		return -EUCLEAN;
	}
	if (sb->hb_interval_ms < LUNFS_HB_INTERVAL_MIN_MS || sb->io_deadline_ms < 1 ||
	    sb->hb_interval_ms > LUNFS_TIMING_MAX_MS || sb->dead_timeout_ms > LUNFS_TIMING_MAX_MS ||
	    sb->io_deadline_ms > LUNFS_TIMING_MAX_MS) {
		*why = "timing value out of range";
		return -EUCLEAN;
	}
	timing = 3ull * sb->hb_interval_ms + 2ull * sb->io_deadline_ms;
	if (sb->dead_timeout_ms < timing) {
		*why = "dead_timeout < 3 * hb_interval + 2 * io_deadline";
		return -EUCLEAN;
	}
	if (!fmt_is_pow2(sb->cluster_size) ||
	    sb->cluster_size < (uint64_t)LUNFS_CLUSTER_MIN_FILE_BLOCKS * sb->file_block_size ||
	    sb->cluster_size > LUNFS_CLUSTER_MAX) {
		*why = "cluster_size is not a power of two in [16 file blocks, 4 GiB]";
		return -EUCLEAN;
	}
	if (!fmt_is_pow2(sb->journal_size) || sb->journal_size < LUNFS_JOURNAL_MIN ||
	    sb->journal_size > LUNFS_JOURNAL_MAX) {
		*why = "journal_size is not a power of two in [1 MiB, 1 GiB]";
		return -EUCLEAN;
	}
	if (backup == 0) {
		*why = "volume too small";
		return -EUCLEAN;
	}
	if (sb->cluster_count < 1) {
		*why = "cluster_count is zero";
		return -EUCLEAN;
	}

	need[LUNFS_REGION_HEARTBEAT] = (uint64_t)sb->max_hosts * sec;
	need[LUNFS_REGION_SYSLOCK] = (uint64_t)LUNFS_SYSLOCKS * sec;
	need[LUNFS_REGION_PAXOS] = (uint64_t)sb->paxos_instances * (sb->max_hosts + 1ull) * sec;
	need[LUNFS_REGION_JOURNAL] = (uint64_t)sb->max_hosts * sb->journal_size;
	if (__builtin_mul_overflow(sb->cluster_count, sec, &need[LUNFS_REGION_CLUSTER]) ||
	    __builtin_mul_overflow(sb->cluster_count, sb->cluster_size, &need[LUNFS_REGION_DATA])) {
		*why = "cluster_count too large";
		return -EUCLEAN;
	}
	for (unsigned i = 0; i < LUNFS_REGION_COUNT; i++) {
		const struct lunfs_region *r = &sb->regions[i];
		uint64_t end;

		if (r->offset % LUNFS_REGION_ALIGN != 0 || r->length % LUNFS_REGION_ALIGN != 0) {
			*why = "region not aligned to 1 MiB";
			return -EUCLEAN;
		}
		if (r->offset < prev_end) {
			*why = "regions overlap or are out of order";
			return -EUCLEAN;
		}
		if (__builtin_add_overflow(r->offset, r->length, &end) || end > backup) {
			*why = "region extends past the backup superblock";
			return -EUCLEAN;
		}
		if (r->length < need[i]) {
			*why = "region too short for its count";
			return -EUCLEAN;
		}
		prev_end = end;
	}
	if (sb->regions[LUNFS_REGION_DATA].length != need[LUNFS_REGION_DATA]) {
		*why = "data region length != cluster_count * cluster_size";
		return -EUCLEAN;
	}
	if (sb->regions[LUNFS_REGION_DATA].offset % sb->file_block_size != 0) {
		*why = "data region not aligned to the file block size";
		return -EUCLEAN;
	}
	return 0;
}

int sb_geometry_check(const struct lunfs_super *sb, const char **why)
{
	const char *dummy;
	uint64_t addr;
	int ret;

	if (why == NULL) {
		why = &dummy;
	}
	ret = geometry_core_check(sb, why);
	if (ret != 0) {
		goto out;
	}
	if (layout_ino_addr(sb, sb->root_ino, &addr) != 0) {
		*why = "root_ino does not name an inode slot";
		ret = -EUCLEAN;
		goto out;
	}
out:
	return ret;
}

int layout_compute(const struct lunfs_layout_params *p, struct lunfs_super *sb, const char **why)
{
	struct lunfs_super g;
	struct lunfs_region r[LUNFS_REGION_COUNT];
	uint64_t vs = p->volume_size;
	uint64_t backup, lo, hi, dead_min;
	const char *dummy;
	int ret = -EINVAL;

	if (why == NULL) {
		why = &dummy;
	}
	*why = NULL;
	/* Work on a copy so that *sb is untouched on failure. */
	g = *sb;
	g.major = LUNFS_FORMAT_MAJOR;
	g.minor = LUNFS_FORMAT_MINOR;
	g.volume_size = vs;
	g.meta_block_size = LUNFS_META_BLOCK_SIZE;
	if (vs == 0) {
		*why = "volume size is zero";
		goto out;
	}

	g.sector_size = p->sector_size != 0 ? p->sector_size : LUNFS_SECTOR_MIN;
	if (g.sector_size != 512 && g.sector_size != 4096) {
		*why = "sector size must be 512 or 4096";
		goto out;
	}
	g.inode_slot_size = 2 * g.sector_size;

	g.file_block_size = p->file_block_size != 0 ? p->file_block_size : LUNFS_FILE_BLOCK_DEFAULT;
	if (!fmt_is_pow2(g.file_block_size) || g.file_block_size < LUNFS_FILE_BLOCK_MIN ||
	    g.file_block_size > LUNFS_FILE_BLOCK_MAX) {
		*why = "file block size must be a power of two between 64 KiB and 64 MiB";
		goto out;
	}

	g.max_hosts = p->max_hosts != 0 ? p->max_hosts : LUNFS_HOSTS_DEFAULT;
	if (g.max_hosts > LUNFS_HOSTS_MAX) {
		*why = "max hosts must be between 1 and 2048";
		goto out;
	}

	g.paxos_instances = p->paxos_instances != 0 ? p->paxos_instances : LUNFS_PAXOS_INSTANCES_DEFAULT;
	if (g.paxos_instances > LUNFS_PAXOS_INSTANCES_MAX) {
		*why = "paxos instances must be between 1 and 4096";
		goto out;
	}

	g.hb_interval_ms = p->hb_interval_ms != 0 ? p->hb_interval_ms : LUNFS_HB_INTERVAL_DEFAULT_MS;
	g.io_deadline_ms = p->io_deadline_ms != 0 ? p->io_deadline_ms : LUNFS_IO_DEADLINE_DEFAULT_MS;
	if (g.hb_interval_ms < LUNFS_HB_INTERVAL_MIN_MS || g.hb_interval_ms > LUNFS_TIMING_MAX_MS ||
	    g.io_deadline_ms > LUNFS_TIMING_MAX_MS) {
		*why = "heartbeat interval or I/O deadline out of range (100 ms .. 600 s)";
		goto out;
	}
	/* A user who only raises the interval or the deadline should not have
	 * to work out the dead timeout too: the default grows to satisfy the
	 * inequality. An explicit dead timeout is taken as given and checked. */
	dead_min = 3ull * g.hb_interval_ms + 2ull * g.io_deadline_ms;
	if (p->dead_timeout_ms != 0) {
		g.dead_timeout_ms = p->dead_timeout_ms;
	} else if (dead_min > LUNFS_DEAD_TIMEOUT_DEFAULT_MS) {
		g.dead_timeout_ms = dead_min <= LUNFS_TIMING_MAX_MS ? (uint32_t)dead_min : LUNFS_TIMING_MAX_MS;
	} else {
		g.dead_timeout_ms = LUNFS_DEAD_TIMEOUT_DEFAULT_MS;
	}
	if (g.dead_timeout_ms > LUNFS_TIMING_MAX_MS) {
		*why = "dead timeout out of range (at most 600 s)";
		goto out;
	}
	if (g.dead_timeout_ms < dead_min) {
		*why = "dead timeout must be >= 3 * heartbeat interval + 2 * I/O deadline";
		goto out;
	}

	if (p->journal_size != 0) {
		g.journal_size = p->journal_size;
		if (!fmt_is_pow2(g.journal_size) || g.journal_size < LUNFS_JOURNAL_MIN ||
		    g.journal_size > LUNFS_JOURNAL_MAX) {
			*why = "journal size must be a power of two between 1 MiB and 1 GiB";
			goto out;
		}
	} else {
		/* Journals should not eat more than 1/16 of a small volume. */
		g.journal_size = LUNFS_JOURNAL_DEFAULT;
		while (g.journal_size > LUNFS_JOURNAL_MIN &&
		       (uint64_t)g.max_hosts * g.journal_size > vs / 16) {
			g.journal_size /= 2;
		}
	}

	if (p->cluster_size != 0) {
		g.cluster_size = p->cluster_size;
		if (!fmt_is_pow2(g.cluster_size) ||
		    g.cluster_size < (uint64_t)LUNFS_CLUSTER_MIN_FILE_BLOCKS * g.file_block_size ||
		    g.cluster_size > LUNFS_CLUSTER_MAX) {
			*why = "cluster size must be a power of two, at least 16 file blocks, at most 4 GiB";
			goto out;
		}
	} else {
		/* About 256 clusters, so that hosts rarely contend for one. */
		uint64_t min = (uint64_t)LUNFS_CLUSTER_MIN_FILE_BLOCKS * g.file_block_size;

		g.cluster_size = pow2_floor(vs / 256);
		if (g.cluster_size > 1024 * MiB) {
			g.cluster_size = 1024 * MiB;
		}
		if (g.cluster_size < min) {
			g.cluster_size = min;
		}
	}

	backup = sb_backup_addr(vs);
	if (backup <= LUNFS_REGION_ALIGN || !layout_regions(&g, 0, backup, r)) {
		*why = "volume too small for the fixed regions";
		ret = -ENOSPC;
		goto out;
	}
	/* Largest cc with layout_regions(cc) fitting; see the top comment.
	 * Invariant: lo fits, hi + 1 does not (or hi is the upper bound). */
	lo = 0;
	hi = (backup - LUNFS_REGION_ALIGN) / g.cluster_size;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo + 1) / 2;

		if (layout_regions(&g, mid, backup, r)) {
			lo = mid;
		} else {
			hi = mid - 1;
		}
	}
	if (lo < LUNFS_MIN_CLUSTERS) {
		*why = "volume too small: fewer than 4 resource clusters would fit (a smaller file block size, -b, makes clusters smaller)";
		ret = -ENOSPC;
		goto out;
	}
	if (!layout_regions(&g, lo, backup, r)) {
		*why = "internal error: layout does not fit";
		goto out;
	}
	g.cluster_count = lo;
	memcpy(g.regions, r, sizeof(g.regions));
	ret = geometry_core_check(&g, why);
	if (ret != 0) {
		/* Cannot happen for parameters that passed the checks above. */
		ret = -EINVAL;
		goto out;
	}
	*sb = g;
	ret = 0;
out:
	return ret;
}

/*
 * Address functions. They trust a superblock that passed
 * sb_geometry_check; an index out of range returns 0, which is never the
 * address of a record or block (the first MiB holds only the superblock).
 */
uint64_t layout_hb_addr(const struct lunfs_super *sb, uint32_t slot)
{
	if (slot >= sb->max_hosts) {
		return 0;
	}
	return sb->regions[LUNFS_REGION_HEARTBEAT].offset + (uint64_t)slot * sb->sector_size;
}

uint64_t layout_syslock_addr(const struct lunfs_super *sb, uint32_t id)
{
	if (id >= LUNFS_SYSLOCKS) {
		return 0;
	}
	return sb->regions[LUNFS_REGION_SYSLOCK].offset + (uint64_t)id * sb->sector_size;
}

uint64_t layout_paxos_addr(const struct lunfs_super *sb, uint32_t instance, uint32_t slot)
{
	if (instance >= sb->paxos_instances || slot >= sb->max_hosts) {
		return 0;
	}
	return sb->regions[LUNFS_REGION_PAXOS].offset +
	       ((uint64_t)instance * (sb->max_hosts + 1ull) + slot) * sb->sector_size;
}

uint64_t layout_paxos_leader_addr(const struct lunfs_super *sb, uint32_t instance)
{
	if (instance >= sb->paxos_instances) {
		return 0;
	}
	return sb->regions[LUNFS_REGION_PAXOS].offset +
	       ((uint64_t)instance * (sb->max_hosts + 1ull) + sb->max_hosts) * sb->sector_size;
}

uint32_t layout_paxos_instance(const struct lunfs_super *sb, uint64_t sector_addr)
{
	uint8_t le[8];

	if (sb->paxos_instances == 0) {
		return 0;
	}
	for (unsigned i = 0; i < 8; i++) {
		le[i] = (uint8_t)(sector_addr >> (8 * i));
	}
	return crc32c(0, le, sizeof(le)) % sb->paxos_instances;
}

uint64_t layout_cluster_lock_addr(const struct lunfs_super *sb, uint64_t cluster)
{
	if (cluster >= sb->cluster_count) {
		return 0;
	}
	return sb->regions[LUNFS_REGION_CLUSTER].offset + cluster * sb->sector_size;
}

uint64_t layout_cluster_addr(const struct lunfs_super *sb, uint64_t cluster)
{
	if (cluster >= sb->cluster_count) {
		return 0;
	}
	return sb->regions[LUNFS_REGION_DATA].offset + cluster * sb->cluster_size;
}

uint64_t layout_journal_addr(const struct lunfs_super *sb, uint32_t slot)
{
	if (slot >= sb->max_hosts) {
		return 0;
	}
	return sb->regions[LUNFS_REGION_JOURNAL].offset + (uint64_t)slot * sb->journal_size;
}

uint64_t layout_inodes_per_cluster(const struct lunfs_super *sb)
{
	if (sb->inode_slot_size == 0) {
		return 0;
	}
	return sb->cluster_size / sb->inode_slot_size;
}

/* Checked arithmetic throughout: sb_geometry_check calls this for root_ino
 * before the caller may trust anything, and others may call it on a
 * superblock that has not been checked. */
int layout_ino_addr(const struct lunfs_super *sb, uint64_t ino, uint64_t *lock_addr)
{
	struct lunfs_cluster_hdr g;
	uint64_t ipc = layout_inodes_per_cluster(sb);
	uint64_t cl, unit, off, a;

	if (ino == LUNFS_INO_NONE || ipc == 0) {
		return -EINVAL;
	}
	cl = ino / ipc;
	unit = ino % ipc;
	if (cl >= sb->cluster_count) {
		return -EINVAL;
	}
	if (fmt_cluster_geometry(sb->cluster_size, sb->inode_slot_size, LUNFS_CLUSTER_INODE, &g) != 0 ||
	    unit < g.header_units) {
		return -EINVAL;
	}
	if (__builtin_mul_overflow(cl, sb->cluster_size, &off) ||
	    __builtin_add_overflow(off, unit * sb->inode_slot_size, &off) ||
	    __builtin_add_overflow(off, sb->regions[LUNFS_REGION_DATA].offset, &a)) {
		return -EINVAL;
	}
	*lock_addr = a;
	return 0;
}
