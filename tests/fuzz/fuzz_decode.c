/*
 * libFuzzer target for every on-disk decoder (`make fuzz`).
 *
 * The first input byte picks the decoder, the rest fills a buffer of that
 * structure's size (zero padded). Decoders must never crash, read out of
 * bounds or hang on any input, and a superblock that decodes must yield
 * addresses inside the volume: that is what lets tools trust a decoded
 * superblock on a hostile image.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lunfs/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_sb(const uint8_t *buf)
{
	struct lunfs_super sb;

	if (sb_decode(buf, LUNFS_SB_OFFSET, &sb) != 0) {
		return;
	}
	for (uint32_t r = 0; r < LUNFS_REGION_COUNT; r++) {
		if (sb.regions[r].offset + sb.regions[r].length > sb.volume_size) {
			abort();
		}
	}
	if (layout_hb_addr(&sb, sb.max_hosts - 1) + sb.sector_size > sb.volume_size ||
	    layout_journal_addr(&sb, sb.max_hosts - 1) + sb.journal_size > sb.volume_size ||
	    layout_cluster_addr(&sb, sb.cluster_count - 1) + sb.cluster_size > sb.volume_size) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[LUNFS_META_BLOCK_SIZE] __attribute__((aligned(4096)));
	static struct lunfs_dirent dents[LUNFS_DIR_LEAF_MAX_ENTRIES];
	static struct lunfs_xattr xents[LUNFS_XATTR_MAX_ENTRIES];
	struct lunfs_codec c;
	const uint64_t rec = 1u << 20, blk = 64u << 20;

	if (size < 1) {
		return 0;
	}
	memset(buf, 0, sizeof(buf));
	memcpy(buf, data + 1, size - 1 < sizeof(buf) ? size - 1 : sizeof(buf));
	memset(&c, 0, sizeof(c));
	memset(c.uuid, 0x5a, sizeof(c.uuid));

	switch (data[0] % 17) {
	case 0: fuzz_sb(buf); break;
	case 1: { struct lunfs_hb_slot o; (void)hb_decode(&c, buf, rec, &o); break; }
	case 2: { struct lunfs_lock o; (void)lock_decode(&c, buf, rec, &o); break; }
	case 3: { struct lunfs_paxos o; (void)paxos_decode(&c, buf, rec, &o); break; }
	case 4: { struct lunfs_inode o; (void)inode_decode(&c, buf, rec, 0, &o); break; }
	case 5: { struct lunfs_cluster_hdr o; (void)cluster_hdr_decode(&c, buf, blk, &o); break; }
	case 6: { struct lunfs_bitmap o; (void)bitmap_decode(&c, buf, blk, &o); break; }
	case 7: { struct lunfs_refcount o; (void)refcount_decode(&c, buf, blk, &o); break; }
	case 8: { struct lunfs_map_leaf o; (void)map_leaf_decode(&c, buf, blk, &o); break; }
	case 9: { struct lunfs_map_inner o; (void)map_inner_decode(&c, buf, blk, &o); break; }
	case 10: { struct lunfs_dir_table o; (void)dir_table_decode(&c, buf, blk, &o); break; }
	case 11: { struct lunfs_dir_leaf o = { .ents = dents }; (void)dir_leaf_decode(&c, buf, blk, &o); break; }
	case 12: { struct lunfs_xattr_blk o = { .ents = xents }; (void)xattr_blk_decode(&c, buf, blk, &o); break; }
	case 13: { struct lunfs_jsb o; (void)jsb_decode(&c, buf, blk, 16u << 20, &o); break; }
	case 14: { struct lunfs_jdesc o; (void)jdesc_decode(&c, buf, blk, &o); break; }
	case 15: { struct lunfs_paxos_leader o; (void)paxos_leader_decode(&c, buf, rec, &o); break; }
	default: { struct lunfs_jcommit o; (void)jcommit_decode(&c, buf, blk, &o); break; }
	}
	return 0;
}
