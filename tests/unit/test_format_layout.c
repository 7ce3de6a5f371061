/*
 * Geometry tests: layout_compute's defaults and region placement against an
 * independent restatement of the rules (docs/FORMAT.md "Geometry"),
 * parameter validation, sb_geometry_check on layout_compute's results and
 * on hostile mutations, and the address functions.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lunfs/cluster.h"
#include "lunfs/format.h"

#define MiB (1024ull * 1024ull)
#define GiB (1024ull * MiB)
#define TiB (1024ull * GiB)

static uint64_t rup(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

/* Restatement of the placement rules for `cc` clusters: the offset at which
 * DATA would start. */
static uint64_t expect_data_offset(const struct lunfs_super *sb, uint64_t cc, uint64_t *ends)
{
	uint64_t need[5] = {
		(uint64_t)sb->max_hosts * sb->sector_size,
		64ull * sb->sector_size,
		(uint64_t)sb->paxos_instances * (sb->max_hosts + 1) * sb->sector_size,
		cc * sb->sector_size,
		(uint64_t)sb->max_hosts * sb->journal_size,
	};
	uint64_t cur = MiB;

	for (int i = 0; i < 5; i++) {
		cur = rup(cur, MiB) + rup(need[i], MiB);
		if (ends != NULL) {
			ends[i] = cur;
		}
	}
	return rup(cur, sb->file_block_size > MiB ? sb->file_block_size : MiB);
}

/* Everything the spec says about a computed layout, checked independently
 * of format/layout.c. */
static void check_layout(const struct lunfs_super *sb)
{
	uint64_t backup = (sb->volume_size & ~4095ull) - 4096;
	uint64_t ends[5];
	uint64_t data = expect_data_offset(sb, sb->cluster_count, ends);
	uint64_t prev = MiB;
	struct lunfs_super t = *sb;
	const char *why = NULL;
	uint64_t a;

	ck_assert_uint_eq(sb->major, 1);
	ck_assert_uint_eq(sb->meta_block_size, 4096);
	ck_assert_uint_eq(sb->inode_slot_size, 2 * sb->sector_size);
	for (int i = 0; i < 5; i++) {
		ck_assert_uint_eq(sb->regions[i].offset, prev);
		ck_assert_uint_eq(sb->regions[i].offset + sb->regions[i].length, ends[i]);
		ck_assert_uint_eq(sb->regions[i].offset % MiB, 0);
		ck_assert_uint_eq(sb->regions[i].length % MiB, 0);
		prev = ends[i];
	}
	ck_assert_uint_eq(sb->regions[LUNFS_REGION_DATA].offset, data);
	ck_assert_uint_eq(sb->regions[LUNFS_REGION_DATA].length, sb->cluster_count * sb->cluster_size);
	ck_assert_uint_le(data + sb->cluster_count * sb->cluster_size, backup);
	/* Maximal: one more cluster would not fit (or would overflow). */
	{
		uint64_t more, end;

		if (!__builtin_mul_overflow(sb->cluster_count + 1, sb->cluster_size, &more) &&
		    !__builtin_add_overflow(expect_data_offset(sb, sb->cluster_count + 1, NULL), more, &end)) {
			ck_assert_uint_gt(end, backup);
		}
	}
	ck_assert_uint_ge(sb->cluster_count, LUNFS_MIN_CLUSTERS);
	ck_assert_uint_ge(sb->dead_timeout_ms, 3 * sb->hb_interval_ms + 2 * sb->io_deadline_ms);

	/* layout_compute leaves root_ino alone: give it one, then check. */
	t.root_ino = layout_inodes_per_cluster(&t) - 1;
	ck_assert_int_eq(layout_ino_addr(&t, t.root_ino, &a), 0);
	ck_assert_msg(sb_geometry_check(&t, &why) == 0, "geometry check: %s", why ? why : "?");
}

static int compute(uint64_t vs, uint32_t hosts, struct lunfs_super *sb)
{
	struct lunfs_layout_params p;
	const char *why = NULL;
	int ret;

	memset(&p, 0, sizeof(p));
	memset(sb, 0, sizeof(*sb));
	p.volume_size = vs;
	p.max_hosts = hosts;
	ret = layout_compute(&p, sb, &why);
	if (ret != 0) {
		ck_assert_ptr_nonnull(why);
	}
	return ret;
}

START_TEST(test_default_1g)
{
	struct lunfs_super sb;

	ck_assert_int_eq(compute(1 * GiB, 0, &sb), 0);
	check_layout(&sb);
	ck_assert_uint_eq(sb.volume_size, 1 * GiB);
	ck_assert_uint_eq(sb.sector_size, 512);
	ck_assert_uint_eq(sb.file_block_size, 1 * MiB);
	ck_assert_uint_eq(sb.max_hosts, 64);
	ck_assert_uint_eq(sb.paxos_instances, 64);
	ck_assert_uint_eq(sb.hb_interval_ms, LUNFS_HB_INTERVAL_DEFAULT_MS);
	ck_assert_uint_eq(sb.dead_timeout_ms, LUNFS_DEAD_TIMEOUT_DEFAULT_MS);
	ck_assert_uint_eq(sb.io_deadline_ms, LUNFS_IO_DEADLINE_DEFAULT_MS);
	/* 64 journals may take 1/16 of 1 GiB: 1 MiB each. */
	ck_assert_uint_eq(sb.journal_size, 1 * MiB);
	/* 1 GiB / 256 = 4 MiB, below 16 file blocks. */
	ck_assert_uint_eq(sb.cluster_size, 16 * MiB);
	/* HB 1M @1M, SYSLOCK @2M, PAXOS 3M @3M (64 x 65 records: 2080 KiB),
	 * CLUSTER @6M, JOURNAL 64M @7M. */
	ck_assert_uint_eq(sb.regions[LUNFS_REGION_PAXOS].offset, 3 * MiB);
	ck_assert_uint_eq(sb.regions[LUNFS_REGION_PAXOS].length, 3 * MiB);
	ck_assert_uint_eq(sb.regions[LUNFS_REGION_JOURNAL].offset, 7 * MiB);
	ck_assert_uint_eq(sb.regions[LUNFS_REGION_DATA].offset, 71 * MiB);
	ck_assert_uint_eq(sb.cluster_count, 59);
}
END_TEST

START_TEST(test_default_256m_8hosts)
{
	struct lunfs_super sb;

	ck_assert_int_eq(compute(256 * MiB, 8, &sb), 0);
	check_layout(&sb);
	ck_assert_uint_eq(sb.max_hosts, 8);
	ck_assert_uint_eq(sb.journal_size, 2 * MiB);
	ck_assert_uint_eq(sb.cluster_size, 16 * MiB);
	ck_assert_uint_eq(sb.regions[LUNFS_REGION_DATA].offset, 21 * MiB);
	ck_assert_uint_eq(sb.cluster_count, 14);
}
END_TEST

START_TEST(test_default_64t)
{
	struct lunfs_super sb;

	ck_assert_int_eq(compute(64 * TiB, 0, &sb), 0);
	check_layout(&sb);
	ck_assert_uint_eq(sb.journal_size, 16 * MiB);
	ck_assert_uint_eq(sb.cluster_size, 1 * GiB);
	ck_assert_uint_eq(sb.regions[LUNFS_REGION_CLUSTER].length, 32 * MiB);
	ck_assert_uint_eq(sb.regions[LUNFS_REGION_DATA].offset, 1062 * MiB);
	ck_assert_uint_eq(sb.cluster_count, 65534);
}
END_TEST

START_TEST(test_extremes)
{
	struct lunfs_layout_params p;
	struct lunfs_super sb;
	const char *why = NULL;

	/* The largest volume with the largest counts: still pure arithmetic. */
	memset(&p, 0, sizeof(p));
	memset(&sb, 0, sizeof(sb));
	p.volume_size = UINT64_MAX;
	p.sector_size = 4096;
	p.max_hosts = LUNFS_HOSTS_MAX;
	p.paxos_instances = LUNFS_PAXOS_INSTANCES_MAX;
	p.journal_size = LUNFS_JOURNAL_MAX;
	p.cluster_size = LUNFS_CLUSTER_MAX;
	p.file_block_size = LUNFS_FILE_BLOCK_MAX;
	ck_assert_int_eq(layout_compute(&p, &sb, &why), 0);
	check_layout(&sb);
	ck_assert_uint_eq(sb.inode_slot_size, 8192);

	/* The smallest default volume that works has LUNFS_MIN_CLUSTERS. */
	{
		uint64_t lo = 1 * MiB, hi = 1 * GiB;

		while (lo < hi) {
			uint64_t mid = lo + (hi - lo) / 2;

			if (compute(mid, 1, &sb) == 0) {
				hi = mid;
			} else {
				lo = mid + 1;
			}
		}
		ck_assert_int_eq(compute(lo, 1, &sb), 0);
		ck_assert_uint_eq(sb.cluster_count, LUNFS_MIN_CLUSTERS);
		check_layout(&sb);
		ck_assert_int_eq(compute(lo - 1, 1, &sb), -ENOSPC);
	}
}
END_TEST

/* Many sizes and parameter mixes: every result obeys the rules. */
START_TEST(test_sweep)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;
	unsigned ok = 0;

	for (int n = 0; n < 3000; n++) {
		struct lunfs_layout_params p;
		struct lunfs_super sb;
		const char *why = NULL;
		int ret;

		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		memset(&p, 0, sizeof(p));
		memset(&sb, 0, sizeof(sb));
		p.volume_size = (s >> (s % 40)) + 8192;
		p.sector_size = (s >> 8) & 1 ? 4096 : 512;
		p.max_hosts = (uint32_t)((s >> 9) % 300);
		p.paxos_instances = (uint32_t)((s >> 20) % 200);
		p.file_block_size = (s >> 30) & 1 ? 0 : LUNFS_FILE_BLOCK_MIN << ((s >> 31) % 11);
		ret = layout_compute(&p, &sb, &why);
		ck_assert_msg(ret == 0 || ret == -ENOSPC, "ret %d (%s)", ret, why ? why : "");
		if (ret == 0) {
			check_layout(&sb);
			ok++;
		}
	}
	ck_assert_uint_gt(ok, 500);
}
END_TEST

START_TEST(test_too_small)
{
	struct lunfs_super sb;

	ck_assert_int_eq(compute(0, 0, &sb), -EINVAL);
	ck_assert_int_eq(compute(4096, 0, &sb), -ENOSPC);
	ck_assert_int_eq(compute(8192, 0, &sb), -ENOSPC);
	ck_assert_int_eq(compute(1 * MiB, 0, &sb), -ENOSPC);
	ck_assert_int_eq(compute(16 * MiB, 0, &sb), -ENOSPC);
	ck_assert_int_eq(compute(64 * MiB, 64, &sb), -ENOSPC);
	ck_assert_int_eq(layout_compute(&(struct lunfs_layout_params){ .volume_size = 1 }, &sb, NULL),
			 -ENOSPC);
}
END_TEST

/* Each invalid parameter alone gives -EINVAL, a message, and no change. */
START_TEST(test_invalid_params)
{
	static const struct lunfs_layout_params bad[] = {
		{ .volume_size = 1ull << 30, .sector_size = 1024 },
		{ .volume_size = 1ull << 30, .sector_size = 520 },
		{ .volume_size = 1ull << 30, .file_block_size = 3u << 20 },
		{ .volume_size = 1ull << 30, .file_block_size = 32u << 10 },
		{ .volume_size = 1ull << 30, .file_block_size = 128u << 20 },
		{ .volume_size = 1ull << 30, .max_hosts = LUNFS_HOSTS_MAX + 1 },
		{ .volume_size = 1ull << 30, .paxos_instances = LUNFS_PAXOS_INSTANCES_MAX + 1 },
		{ .volume_size = 1ull << 30, .journal_size = 3u << 20 },
		{ .volume_size = 1ull << 30, .journal_size = 512u << 10 },
		{ .volume_size = 1ull << 30, .journal_size = 2ull << 30 },
		{ .volume_size = 1ull << 30, .cluster_size = 48u << 20 },
		{ .volume_size = 1ull << 30, .cluster_size = 8u << 20 },
		{ .volume_size = 1ull << 30, .cluster_size = 8ull << 30 },
		{ .volume_size = 1ull << 30, .file_block_size = 4u << 20, .cluster_size = 32u << 20 },
		{ .volume_size = 1ull << 30, .hb_interval_ms = 50 },
		{ .volume_size = 1ull << 30, .hb_interval_ms = LUNFS_TIMING_MAX_MS + 1 },
		{ .volume_size = 1ull << 30, .io_deadline_ms = LUNFS_TIMING_MAX_MS + 1 },
		{ .volume_size = 1ull << 30, .dead_timeout_ms = LUNFS_TIMING_MAX_MS + 1 },
		{ .volume_size = 1ull << 30, .dead_timeout_ms = 6999 },
		{ .volume_size = 1ull << 30, .hb_interval_ms = 3000, .dead_timeout_ms = 12999 },
		{ .volume_size = 1ull << 30, .hb_interval_ms = 200000, .io_deadline_ms = 100000 },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct lunfs_super sb, before;
		const char *why = NULL;

		memset(&sb, 0x5a, sizeof(sb));
		before = sb;
		ck_assert_msg(layout_compute(&bad[i], &sb, &why) == -EINVAL, "case %zu", i);
		ck_assert_ptr_nonnull(why);
		ck_assert_int_eq(memcmp(&sb, &before, sizeof(sb)), 0);
	}
}
END_TEST

START_TEST(test_params_taken)
{
	struct lunfs_layout_params p = {
		.volume_size = 100 * GiB, .sector_size = 4096, .file_block_size = 4u << 20,
		.max_hosts = 128, .journal_size = 32u << 20, .cluster_size = 256u << 20,
		.paxos_instances = 100, .hb_interval_ms = 500, .dead_timeout_ms = 20000,
		.io_deadline_ms = 5000,
	};
	struct lunfs_super sb;
	const char *why;

	memset(&sb, 0, sizeof(sb));
	memset(sb.uuid, 0x77, sizeof(sb.uuid));
	strcpy(sb.label, "keep me");
	sb.root_ino = 12345;
	ck_assert_int_eq(layout_compute(&p, &sb, &why), 0);
	check_layout(&sb);
	ck_assert_uint_eq(sb.sector_size, 4096);
	ck_assert_uint_eq(sb.file_block_size, 4u << 20);
	ck_assert_uint_eq(sb.max_hosts, 128);
	ck_assert_uint_eq(sb.journal_size, 32u << 20);
	ck_assert_uint_eq(sb.cluster_size, 256u << 20);
	ck_assert_uint_eq(sb.paxos_instances, 100);
	ck_assert_uint_eq(sb.hb_interval_ms, 500);
	ck_assert_uint_eq(sb.dead_timeout_ms, 20000);
	ck_assert_uint_eq(sb.io_deadline_ms, 5000);
	ck_assert_uint_eq(sb.regions[LUNFS_REGION_DATA].offset % (4u << 20), 0);
	/* Caller-owned fields are left alone. */
	ck_assert_uint_eq(sb.uuid[5], 0x77);
	ck_assert_str_eq(sb.label, "keep me");
	ck_assert_uint_eq(sb.root_ino, 12345);

	/* Raising only the interval raises the default dead timeout with it. */
	memset(&p, 0, sizeof(p));
	p.volume_size = 1 * GiB;
	p.hb_interval_ms = 3000;
	ck_assert_int_eq(layout_compute(&p, &sb, &why), 0);
	ck_assert_uint_eq(sb.dead_timeout_ms, 3 * 3000 + 2 * LUNFS_IO_DEADLINE_DEFAULT_MS);
}
END_TEST

/* A valid superblock (root_ino set) for the mutation tests. */
static void valid_sb(uint64_t vs, struct lunfs_super *sb)
{
	uint64_t a;

	ck_assert_int_eq(compute(vs, 0, sb), 0);
	sb->root_ino = layout_inodes_per_cluster(sb) - 1;
	ck_assert_int_eq(layout_ino_addr(sb, sb->root_ino, &a), 0);
	ck_assert_int_eq(sb_geometry_check(sb, NULL), 0);
}

enum mutation {
	M_OFFSET_MISALIGNED, M_LENGTH_MISALIGNED, M_OVERLAP, M_ORDER, M_BEFORE_1M, M_SHORT_CLUSTER,
	M_SHORT_PAXOS, M_SHORT_JOURNAL, M_DATA_LEN, M_CC_ZERO, M_CC_HUGE, M_CC_OVERFLOW, M_CS_HUGE,
	M_CS_NOT_POW2, M_CS_SMALL, M_PAST_BACKUP, M_VOLUME_SHRUNK, M_VOLUME_TINY, M_SECTOR,
	M_SLOT, M_META, M_FBS_ZERO, M_FBS_POW2, M_HOSTS_ZERO, M_HOSTS_MAX, M_PAXOS_ZERO,
	M_JOURNAL_ZERO, M_JOURNAL_HUGE, M_TIMING, M_HB_ZERO, M_IO_ZERO, M_WRAP, M_ROOT_ZERO,
	M_ROOT_HEADER, M_ROOT_PAST, M_ROOT_HUGE, M_DATA_UNALIGNED, M_HOSTS_BIG_HB, M_COUNT,
};

static void mutate(struct lunfs_super *sb, int m)
{
	struct lunfs_region *r = sb->regions;
	struct lunfs_cluster_hdr g;

	switch (m) {
	case M_OFFSET_MISALIGNED: r[LUNFS_REGION_SYSLOCK].offset += 4096; break;
	case M_LENGTH_MISALIGNED: r[LUNFS_REGION_PAXOS].length += 512; break;
	case M_OVERLAP: r[LUNFS_REGION_SYSLOCK].offset = r[LUNFS_REGION_HEARTBEAT].offset; break;
	case M_ORDER: {
		struct lunfs_region t = r[1];

		r[1] = r[2];
		r[2] = t;
		break;
	}
	case M_BEFORE_1M: r[LUNFS_REGION_HEARTBEAT].offset = 0; break;
	case M_SHORT_CLUSTER: r[LUNFS_REGION_CLUSTER].length = 0; break;
	case M_SHORT_PAXOS: sb->paxos_instances = LUNFS_PAXOS_INSTANCES_MAX; break;
	case M_SHORT_JOURNAL: sb->journal_size *= 2; break;
	case M_DATA_LEN: r[LUNFS_REGION_DATA].length -= sb->cluster_size; break;
	case M_CC_ZERO: sb->cluster_count = 0; r[LUNFS_REGION_DATA].length = 0; break;
	case M_CC_HUGE: sb->cluster_count = 1ull << 40; break;
	case M_CC_OVERFLOW:
		/* cc * cluster_size wraps to exactly the data length. */
		sb->cluster_count += 1ull << (64 - __builtin_ctzll(sb->cluster_size));
		break;
	case M_CS_HUGE: sb->cluster_size = 1ull << 63; break;
	case M_CS_NOT_POW2: sb->cluster_size += 4096; break;
	case M_CS_SMALL: sb->cluster_size = 8 * (uint64_t)sb->file_block_size; break;
	case M_PAST_BACKUP: r[LUNFS_REGION_DATA].offset += sb->cluster_size; break;
	case M_VOLUME_SHRUNK: sb->volume_size -= sb->cluster_size; break;
	case M_VOLUME_TINY: sb->volume_size = 4096; break;
	case M_SECTOR: sb->sector_size = 1024; sb->inode_slot_size = 2048; break;
	case M_SLOT: sb->inode_slot_size = sb->sector_size; break;
	case M_META: sb->meta_block_size = 8192; break;
	case M_FBS_ZERO: sb->file_block_size = 0; break;
	case M_FBS_POW2: sb->file_block_size += 4096; break;
	case M_HOSTS_ZERO: sb->max_hosts = 0; break;
	case M_HOSTS_MAX: sb->max_hosts = LUNFS_HOSTS_MAX + 1; break;
	case M_PAXOS_ZERO: sb->paxos_instances = 0; break;
	case M_JOURNAL_ZERO: sb->journal_size = 0; break;
	case M_JOURNAL_HUGE: sb->journal_size = 1ull << 62; break;
	case M_TIMING: sb->dead_timeout_ms = 3 * sb->hb_interval_ms + 2 * sb->io_deadline_ms - 1; break;
	case M_HB_ZERO: sb->hb_interval_ms = 0; break;
	case M_IO_ZERO: sb->io_deadline_ms = 0; break;
	case M_WRAP:
		r[LUNFS_REGION_DATA].offset = UINT64_MAX - (UINT64_MAX % (1u << 20)) - (1u << 20) * 4 + (1u << 20);
		break;
	case M_ROOT_ZERO: sb->root_ino = 0; break;
	case M_ROOT_HEADER:
		ck_assert_int_eq(cluster_geometry(sb, LUNFS_CLUSTER_INODE, &g), 0);
		sb->root_ino = layout_inodes_per_cluster(sb) * 2 + g.header_units - 1;
		break;
	case M_ROOT_PAST: sb->root_ino = layout_inodes_per_cluster(sb) * sb->cluster_count + 500; break;
	case M_ROOT_HUGE: sb->root_ino = UINT64_MAX; break;
	case M_DATA_UNALIGNED: sb->file_block_size *= 4; break;
	case M_HOSTS_BIG_HB: sb->max_hosts = LUNFS_HOSTS_MAX; break;
	default: break;
	}
}

START_TEST(test_geometry_mutations)
{
	struct lunfs_super sb;
	const char *why = NULL;

	/* 64 TiB: cluster 1 GiB, DATA at 1062 MiB (not a multiple of 4 MiB, for
	 * M_DATA_UNALIGNED). */
	valid_sb(64 * TiB, &sb);
	mutate(&sb, _i);
	ck_assert_msg(sb_geometry_check(&sb, &why) == -EUCLEAN, "mutation %d accepted", _i);
	ck_assert_ptr_nonnull(why);
}
END_TEST

START_TEST(test_addresses)
{
	struct lunfs_super sb;
	struct lunfs_cluster_hdr g;
	const struct lunfs_region *r = sb.regions;
	uint64_t ipc, a;

	valid_sb(256 * MiB, &sb);
	for (uint32_t s = 0; s < sb.max_hosts; s++) {
		a = layout_hb_addr(&sb, s);
		ck_assert_uint_eq(a, r[LUNFS_REGION_HEARTBEAT].offset + s * 512ull);
		a = layout_journal_addr(&sb, s);
		ck_assert_uint_eq(a, r[LUNFS_REGION_JOURNAL].offset + s * sb.journal_size);
		ck_assert_uint_le(a + sb.journal_size, r[LUNFS_REGION_JOURNAL].offset + r[LUNFS_REGION_JOURNAL].length);
	}
	ck_assert_uint_eq(layout_hb_addr(&sb, sb.max_hosts), 0);
	ck_assert_uint_eq(layout_journal_addr(&sb, sb.max_hosts), 0);
	ck_assert_uint_eq(layout_syslock_addr(&sb, 0), r[LUNFS_REGION_SYSLOCK].offset);
	ck_assert_uint_eq(layout_syslock_addr(&sb, 63), r[LUNFS_REGION_SYSLOCK].offset + 63 * 512);
	ck_assert_uint_eq(layout_syslock_addr(&sb, 64), 0);
	a = layout_paxos_addr(&sb, sb.paxos_instances - 1, sb.max_hosts - 1);
	ck_assert_uint_eq(a, r[LUNFS_REGION_PAXOS].offset +
				     ((uint64_t)sb.paxos_instances * (sb.max_hosts + 1) - 2) * 512);
	ck_assert_uint_lt(a, r[LUNFS_REGION_PAXOS].offset + r[LUNFS_REGION_PAXOS].length);
	ck_assert_uint_eq(layout_paxos_addr(&sb, 1, 0),
			  r[LUNFS_REGION_PAXOS].offset + (sb.max_hosts + 1) * 512ull);
	ck_assert_uint_eq(layout_paxos_addr(&sb, sb.paxos_instances, 0), 0);
	ck_assert_uint_eq(layout_paxos_addr(&sb, 0, sb.max_hosts), 0);
	/* The leader follows the instance's host blocks; the last one ends the
	 * region's records. */
	ck_assert_uint_eq(layout_paxos_leader_addr(&sb, 0), r[LUNFS_REGION_PAXOS].offset + sb.max_hosts * 512ull);
	a = layout_paxos_leader_addr(&sb, sb.paxos_instances - 1);
	ck_assert_uint_eq(a, r[LUNFS_REGION_PAXOS].offset +
				     ((uint64_t)sb.paxos_instances * (sb.max_hosts + 1) - 1) * 512);
	ck_assert_uint_le(a + 512, r[LUNFS_REGION_PAXOS].offset + r[LUNFS_REGION_PAXOS].length);
	ck_assert_uint_eq(layout_paxos_leader_addr(&sb, sb.paxos_instances), 0);
	for (uint64_t s8 = 0; s8 < 4096; s8 += 512) {
		ck_assert_uint_lt(layout_paxos_instance(&sb, r[LUNFS_REGION_CLUSTER].offset + s8),
				  sb.paxos_instances);
	}
	a = layout_cluster_lock_addr(&sb, sb.cluster_count - 1);
	ck_assert_uint_lt(a, r[LUNFS_REGION_CLUSTER].offset + r[LUNFS_REGION_CLUSTER].length);
	ck_assert_uint_eq(layout_cluster_lock_addr(&sb, sb.cluster_count), 0);
	a = layout_cluster_addr(&sb, sb.cluster_count - 1);
	ck_assert_uint_eq(a + sb.cluster_size, r[LUNFS_REGION_DATA].offset + r[LUNFS_REGION_DATA].length);
	ck_assert_uint_eq(layout_cluster_addr(&sb, sb.cluster_count), 0);

	/* Inode numbers. */
	ipc = layout_inodes_per_cluster(&sb);
	ck_assert_uint_eq(ipc, sb.cluster_size / 1024);
	ck_assert_int_eq(cluster_geometry(&sb, LUNFS_CLUSTER_INODE, &g), 0);
	ck_assert_uint_eq(g.header_units, 8); /* 16 MiB / 1 KiB: 1 bitmap block */
	for (uint64_t c = 0; c < sb.cluster_count; c += sb.cluster_count - 1) {
		for (uint64_t u = 0; u < ipc; u++) {
			uint64_t ino = c * ipc + u;
			int ret = layout_ino_addr(&sb, ino, &a);

			if (u < g.header_units) {
				ck_assert_int_eq(ret, -EINVAL);
				continue;
			}
			ck_assert_int_eq(ret, 0);
			ck_assert_uint_eq(a, layout_cluster_addr(&sb, c) + u * sb.inode_slot_size);
			ck_assert_uint_eq(a % sb.inode_slot_size, 0);
			/* And back: the ino of an address. */
			ck_assert_uint_eq((a - r[LUNFS_REGION_DATA].offset) / sb.inode_slot_size, ino);
		}
	}
	ck_assert_int_eq(layout_ino_addr(&sb, 0, &a), -EINVAL);
	ck_assert_int_eq(layout_ino_addr(&sb, ipc * sb.cluster_count + g.header_units, &a), -EINVAL);
	ck_assert_int_eq(layout_ino_addr(&sb, UINT64_MAX, &a), -EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("format_layout");
	TCase *tc = tcase_create("layout");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_default_1g);
	tcase_add_test(tc, test_default_256m_8hosts);
	tcase_add_test(tc, test_default_64t);
	tcase_add_test(tc, test_extremes);
	tcase_add_test(tc, test_sweep);
	tcase_add_test(tc, test_too_small);
	tcase_add_test(tc, test_invalid_params);
	tcase_add_test(tc, test_params_taken);
	tcase_add_loop_test(tc, test_geometry_mutations, 0, M_COUNT);
	tcase_add_test(tc, test_addresses);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
