/*
 * Memory types of the on-disk structures and the codecs between them
 * (format/). Disk types (`*_disk`, include/lunfs/<family>.h) are only ever
 * touched by these functions; the rest of lunfs works on memory types.
 *
 * Decoders never trust the buffer. They return:
 *   0            valid
 *   -ENODATA     all zeros: never written (free/empty by convention)
 *   -ESTALE      a valid record of another volume (an earlier mkfs): treat
 *                as never written
 *   -EUCLEAN     anything else wrong: magic, version, checksum, own address,
 *                HMAC, or a field out of range
 * Encoders fill a whole record/block (zeroing reserved bytes) and seal it
 * with the checksum (and the HMAC when the codec context has a key).
 */
#ifndef LUNFS_FORMAT_H
#define LUNFS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lunfs/layout.h"
#include "lunfs/super.h"

/* What every codec call needs to know about the volume. */
struct lunfs_codec {
	uint8_t uuid[LUNFS_UUID_SIZE];
	bool have_hmac;                 /* seal with, and verify, the HMAC */
	uint8_t hmac_key[32];           /* derived from the volume secret */
};
/* A codec with have_hmac false does not look at the HMAC field at all, so a
 * read-only tool without the secret can still decode an HMAC volume. */

/* --- frames (format/frame.c) -------------------------------------------- */
/* 512-byte records. `addr` is the record's byte address on the volume. */
void rec_seal(const struct lunfs_codec *c, void *rec, uint32_t magic, uint16_t flags, uint64_t addr);
int rec_verify(const struct lunfs_codec *c, const void *rec, uint32_t magic, uint64_t addr);
/* 4 KiB metadata blocks. */
void blk_seal(const struct lunfs_codec *c, void *blk, uint32_t magic, uint16_t flags,
	      uint64_t addr, uint64_t owner, uint64_t seq, uint64_t aux);
int blk_verify(const struct lunfs_codec *c, const void *blk, uint32_t magic, uint64_t addr);
bool buf_is_zero(const void *buf, size_t len);

/* --- superblock (format/super.c) ----------------------------------------- */
struct lunfs_region {
	uint64_t offset;
	uint64_t length;
};

struct lunfs_super {
	uint16_t major, minor;
	uint32_t flags;
	uint32_t feat_compat, feat_ro_compat, feat_incompat;
	uint8_t uuid[LUNFS_UUID_SIZE];
	char label[65];                 /* NUL-terminated */
	uint8_t dir_hash_key[16];
	uint64_t volume_size;
	uint64_t create_time_ns;
	uint32_t sector_size;
	uint32_t meta_block_size;
	uint32_t file_block_size;
	uint32_t max_hosts;
	uint32_t hb_interval_ms;
	uint32_t dead_timeout_ms;
	uint32_t io_deadline_ms;
	uint32_t paxos_instances;
	uint64_t cluster_size;
	uint64_t cluster_count;
	uint64_t journal_size;
	uint64_t root_ino;
	struct lunfs_region regions[LUNFS_REGION_COUNT];
	uint32_t inode_slot_size;
	uint32_t kdf_iterations;
	uint8_t kdf_salt[16];
	uint8_t hmac_check[32];
	uint8_t enc_check[32];
};

/* Encode to a 4096-byte buffer at byte address addr (LUNFS_SB_OFFSET or the
 * backup address; sets/clears LUNFS_SB_FLAG_BACKUP to match). */
void sb_encode(const struct lunfs_super *sb, uint64_t addr, void *buf);
/* Decode and validate everything, geometry included (sb_geometry_check):
 * a superblock that decodes is safe to compute addresses from. Returns
 * -EPROTONOSUPPORT for an unknown major version. Feature bits are not
 * judged here: see sb_features_check. */
int sb_decode(const void *buf, uint64_t addr, struct lunfs_super *out);
/* 0 if this build can use the volume (read-write if `rw`), else
 * -EOPNOTSUPP, with the unknown bits in *unknown if not NULL. */
int sb_features_check(const struct lunfs_super *sb, bool rw, uint32_t *unknown);
/* The byte address of the backup superblock of a volume of `volume_size`
 * (0 if the volume is smaller than two 4 KiB blocks). */
uint64_t sb_backup_addr(uint64_t volume_size);
/* uuid and have_hmac from the superblock; hmac_key is zeroed: the caller
 * that has the volume secret fills it in. */
void sb_codec(const struct lunfs_super *sb, struct lunfs_codec *out);

/* --- geometry (format/layout.c) ------------------------------------------ */
/* What a user chooses at mkfs. Zero fields take the defaults. */
struct lunfs_layout_params {
	uint64_t volume_size;      /* bytes to use (default: the device size) */
	uint32_t sector_size;      /* the device's */
	uint32_t file_block_size;
	uint32_t max_hosts;
	uint64_t journal_size;
	uint64_t cluster_size;
	uint32_t paxos_instances;
	uint32_t hb_interval_ms;
	uint32_t dead_timeout_ms;
	uint32_t io_deadline_ms;
};

/* Fill the geometry fields of *sb (sizes, counts, regions, timing) from the
 * parameters. Returns -EINVAL for an invalid parameter and -ENOSPC when the
 * volume is too small for the fixed regions plus LUNFS_MIN_CLUSTERS
 * clusters. *why gets a static message for the user on failure. */
#define LUNFS_MIN_CLUSTERS 4u
int layout_compute(const struct lunfs_layout_params *p, struct lunfs_super *sb, const char **why);
/* Check the invariants that layout_compute guarantees, on a decoded
 * superblock: regions aligned, ordered, inside the volume, sized for the
 * counts, timing inequality, powers of two. 0 or -EUCLEAN (*why says). */
int sb_geometry_check(const struct lunfs_super *sb, const char **why);

/* Addresses (valid only for a superblock that passed sb_geometry_check).
 * An index out of range (slot >= max_hosts, cluster >= cluster_count, ...)
 * returns 0, which is never the address of a record or block. */
uint64_t layout_hb_addr(const struct lunfs_super *sb, uint32_t slot);
uint64_t layout_syslock_addr(const struct lunfs_super *sb, uint32_t id);
uint64_t layout_paxos_addr(const struct lunfs_super *sb, uint32_t instance, uint32_t slot);
/* The leader record of an instance (right after its max_hosts host blocks). */
uint64_t layout_paxos_leader_addr(const struct lunfs_super *sb, uint32_t instance);
/* The instance that guards the sector at byte address sector_addr:
 * crc32c(le64(sector_addr)) % paxos_instances. */
uint32_t layout_paxos_instance(const struct lunfs_super *sb, uint64_t sector_addr);
uint64_t layout_cluster_lock_addr(const struct lunfs_super *sb, uint64_t cluster);
uint64_t layout_cluster_addr(const struct lunfs_super *sb, uint64_t cluster);
uint64_t layout_journal_addr(const struct lunfs_super *sb, uint32_t slot);
uint64_t layout_inodes_per_cluster(const struct lunfs_super *sb);
/* Inode slot of ino: the lock record is at *lock_addr, the inode record at
 * *lock_addr + sector_size. -EINVAL if ino cannot name an inode slot. */
int layout_ino_addr(const struct lunfs_super *sb, uint64_t ino, uint64_t *lock_addr);

/* --- heartbeat slots (format/heartbeat.c) --------------------------------- */
struct lunfs_hb_request {
	uint64_t lock_addr;
	uint16_t target_slot;  /* slot index + 1; 0 = unused */
	uint8_t mode;
	uint32_t serial;
};

struct lunfs_hb_slot {
	uint16_t slot;
	uint8_t state;         /* enum lunfs_hb_state */
	uint64_t generation;
	uint64_t seq;
	uint8_t host_uuid[LUNFS_UUID_SIZE];
	char host_name[65];    /* NUL-terminated */
	uint32_t hb_interval_ms, dead_timeout_ms, io_deadline_ms;
	uint64_t journal_offset, journal_size;
	uint16_t recoverer_slot; /* slot index + 1; 0 = none */
	uint64_t recoverer_gen;
	uint64_t mount_time_ns, beat_time_ns;
	struct lunfs_hb_request requests[8];
	uint32_t pid;
};
void hb_encode(const struct lunfs_codec *c, const struct lunfs_hb_slot *in, uint64_t addr, void *rec);
int hb_decode(const struct lunfs_codec *c, const void *rec, uint64_t addr, struct lunfs_hb_slot *out);

/* --- lock records (format/lock.c) ------------------------------------------ */
struct lunfs_cluster_summary {
	uint8_t type;          /* enum lunfs_cluster_type */
	uint64_t units_total, units_free, updated_seq;
};

struct lunfs_lock {
	uint8_t kind;          /* enum lunfs_lock_kind */
	uint8_t mode;          /* enum lunfs_lock_mode */
	uint16_t nholders;
	uint64_t lock_id;
	uint64_t version;
	uint16_t owner_slot;   /* slot index + 1; 0 = none */
	uint64_t owner_gen;
	uint64_t acquired_ns;
	uint16_t req_slot;     /* slot index + 1; 0 = none */
	uint8_t req_mode;
	uint32_t req_serial;
	uint64_t req_gen;
	uint8_t payload[64];   /* kind specific; see lock_summary_get/set */
	uint8_t holders[LUNFS_HOSTS_MAX / 8]; /* bit i = slot i */
};
void lock_encode(const struct lunfs_codec *c, const struct lunfs_lock *in, uint64_t addr, void *rec);
/* Also checks nholders == popcount(holders) and mode/owner consistency. */
int lock_decode(const struct lunfs_codec *c, const void *rec, uint64_t addr, struct lunfs_lock *out);
void lock_summary_get(const struct lunfs_lock *l, struct lunfs_cluster_summary *out);
void lock_summary_set(struct lunfs_lock *l, const struct lunfs_cluster_summary *in);
bool lock_holder_test(const struct lunfs_lock *l, uint32_t slot);
void lock_holder_set(struct lunfs_lock *l, uint32_t slot, bool on); /* keeps nholders */

/* --- Paxos blocks (format/paxos.c) ----------------------------------------- */
struct lunfs_paxos {
	uint32_t instance;
	uint16_t slot;
	uint64_t writer_gen;
	uint64_t mbal, bal;
	uint16_t inp_owner_slot; /* slot index + 1; 0 = released */
	uint64_t inp_owner_gen, inp_round, inp_target;
	uint64_t released_round; /* last round this host owned and released */
};
void paxos_encode(const struct lunfs_codec *c, const struct lunfs_paxos *in, uint64_t addr, void *rec);
int paxos_decode(const struct lunfs_codec *c, const void *rec, uint64_t addr, struct lunfs_paxos *out);

struct lunfs_paxos_leader {
	uint32_t instance;
	uint16_t writer_slot;    /* slot index */
	uint64_t writer_gen;
	uint64_t round;
	uint16_t owner_slot;     /* slot index + 1; 0 = none */
	bool released;
	uint64_t owner_gen;
	uint64_t target;
};
void paxos_leader_encode(const struct lunfs_codec *c, const struct lunfs_paxos_leader *in, uint64_t addr,
			 void *rec);
/* Also checks instance and slots in range, released in {0, 1}, and that a
 * record with an owner names a round >= 1. */
int paxos_leader_decode(const struct lunfs_codec *c, const void *rec, uint64_t addr,
			struct lunfs_paxos_leader *out);

/* --- resource clusters (format/cluster.c) ---------------------------------- */
struct lunfs_cluster_hdr {
	uint8_t type;          /* enum lunfs_cluster_type */
	uint32_t unit_size;
	uint64_t cluster_index, cluster_start;
	uint64_t units_total, units_free;
	uint32_t header_units, bitmap_blocks, refcount_blocks;
	uint64_t type_gen, alloc_hint;
	uint64_t seq;          /* blkhdr seq */
};
void cluster_hdr_encode(const struct lunfs_codec *c, const struct lunfs_cluster_hdr *in, uint64_t addr, void *blk);
/* Also checks the counts against unit_size and cluster geometry it carries. */
int cluster_hdr_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_cluster_hdr *out);
/* Geometry of a cluster of `type` in volume `sb`: unit size, units, and how
 * many bitmap/refcount blocks and header units it needs; units_free =
 * units_total - header_units, alloc_hint = header_units, the rest 0.
 * -EINVAL for FREE. */
int cluster_geometry(const struct lunfs_super *sb, uint8_t type, struct lunfs_cluster_hdr *out);

struct lunfs_bitmap {
	uint64_t cluster_index; /* blkhdr owner */
	uint64_t first_unit;    /* blkhdr aux */
	uint64_t seq;
	uint64_t words[503];    /* LUNFS_BITMAP_WORDS */
};
void bitmap_encode(const struct lunfs_codec *c, const struct lunfs_bitmap *in, uint64_t addr, void *blk);
int bitmap_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_bitmap *out);

struct lunfs_refcount {
	uint64_t cluster_index;
	uint64_t first_unit;
	uint64_t seq;
	uint16_t extra[2014];   /* LUNFS_REFCOUNTS_PER_BLOCK */
};
void refcount_encode(const struct lunfs_codec *c, const struct lunfs_refcount *in, uint64_t addr, void *blk);
int refcount_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_refcount *out);

/* --- inodes (format/inode.c) ----------------------------------------------- */
struct lunfs_dir_state {
	uint32_t global_depth;
	uint64_t nentries, next_lblk, nleaves;
};

struct lunfs_inode {
	uint64_t ino;
	uint32_t generation;
	uint32_t mode, uid, gid, nlink, flags;
	uint64_t size, alloc_bytes;
	uint64_t atime_ns, mtime_ns, ctime_ns, btime_ns;
	uint64_t parent_ino;
	uint64_t map_root;
	uint8_t map_height, map_unit;
	uint32_t rdev;
	uint64_t xattr_blk;
	uint64_t version;
	uint64_t snap_parent, snap_id, snap_dir;
	uint16_t writer_slot;   /* slot index + 1 */
	uint64_t writer_gen;
	uint8_t inline_data[192]; /* LUNFS_INODE_INLINE_SIZE: raw; see inode_dir_state_* */
};
void inode_encode(const struct lunfs_codec *c, const struct lunfs_inode *in, uint64_t addr, void *rec);
/* Also checks: ino matches the slot (caller passes expect_ino, 0 = skip),
 * a known file type in mode, map_height <= LUNFS_MAP_MAX_HEIGHT, map_unit
 * valid, map_root/map_height both zero or both set. */
int inode_decode(const struct lunfs_codec *c, const void *rec, uint64_t addr, uint64_t expect_ino,
		 struct lunfs_inode *out);
void inode_dir_state_get(const struct lunfs_inode *i, struct lunfs_dir_state *out);
void inode_dir_state_set(struct lunfs_inode *i, const struct lunfs_dir_state *in);

/* --- block maps (format/map.c) --------------------------------------------- */
struct lunfs_map_entry {
	uint64_t addr;          /* byte address of the physical block; 0 = hole */
	uint64_t flags;         /* LUNFS_MAPE_* (already shifted, as in the header) */
	uint64_t written;       /* chunk bitmap */
};
struct lunfs_map_leaf {
	uint64_t ino, first_lblk, seq;
	struct lunfs_map_entry e[251]; /* LUNFS_MAP_LEAF_FANOUT */
};
struct lunfs_map_inner {
	uint64_t ino, first_lblk, seq;
	uint8_t level;          /* >= 2 */
	uint64_t child[503];    /* LUNFS_MAP_INNER_FANOUT: byte addresses, 0 = hole */
};
void map_leaf_encode(const struct lunfs_codec *c, const struct lunfs_map_leaf *in, uint64_t addr, void *blk);
int map_leaf_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_map_leaf *out);
/* The fields of a block whose frame (blk_verify) has passed before and
 * that has not changed since but through the encoder: the decoders above
 * without the frame check (crc32c of 4 KiB), for a cache that remembers
 * the check. The semantic checks still run. */
int map_leaf_parse(const void *blk, struct lunfs_map_leaf *out);
void map_inner_encode(const struct lunfs_codec *c, const struct lunfs_map_inner *in, uint64_t addr, void *blk);
int map_inner_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_map_inner *out);
int map_inner_parse(const void *blk, struct lunfs_map_inner *out);
/* Single fields of a node block that a decoder above accepted (or the
 * encoder wrote) and that has not changed since but through the encoder:
 * nothing else is read and nothing checked, so a lookup in a cached node
 * costs a few loads instead of a parse of all 251 or 503 entries. */
struct lunfs_map_node_id {
	uint64_t ino, first_lblk;
	unsigned level;         /* 0 in a leaf */
};
struct lunfs_map_node_id map_node_peek_id(const void *blk);
struct lunfs_map_entry map_leaf_peek(const void *blk, unsigned i);   /* i < 251 */
uint64_t map_inner_peek(const void *blk, unsigned i);                /* i < 503 */
/* Logical blocks covered by one node at `level` (1 = leaf; 0 gives 1, a
 * single entry). Saturates at UINT64_MAX. */
uint64_t map_span(unsigned level);

/* --- directories (format/dir.c) -------------------------------------------- */
struct lunfs_dir_table {
	uint64_t ino, first_slot, seq;
	uint64_t leaf[503];     /* LUNFS_DIR_TABLE_SLOTS */
};
void dir_table_encode(const struct lunfs_codec *c, const struct lunfs_dir_table *in, uint64_t addr, void *blk);
int dir_table_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_dir_table *out);
/* Without the frame check, like map_leaf_parse. */
int dir_table_parse(const void *blk, struct lunfs_dir_table *out);

struct lunfs_dirent {
	uint64_t hash;
	uint64_t ino;
	uint8_t type;           /* DT_* */
	uint8_t name_len;
	char name[256];         /* NUL-terminated copy */
};
struct lunfs_dir_leaf {
	uint64_t ino, seq;
	uint16_t local_depth;
	uint64_t prefix;
	uint64_t next;
	uint16_t nentries;
	struct lunfs_dirent *ents; /* caller-provided array; capacity LUNFS_DIR_LEAF_MAX_ENTRIES */
};
/* Most entries a leaf can hold (all names of length 1). */
#define LUNFS_DIR_LEAF_MAX_ENTRIES 124u
/* Bytes one entry with a name of `name_len` takes in a leaf. */
uint32_t dirent_rec_len(uint32_t name_len);
/* -ENOSPC if the entries do not fit; entries must be sorted by hash. */
int dir_leaf_encode(const struct lunfs_codec *c, const struct lunfs_dir_leaf *in, uint64_t addr, void *blk);
/* Checks: sorted by hash, rec_len sane, names non-empty without '/' or NUL,
 * not "." or "..", used matches, entries within data[]. */
int dir_leaf_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_dir_leaf *out);
/* Without the frame check, like map_leaf_parse. */
int dir_leaf_parse(const void *blk, struct lunfs_dir_leaf *out);
/* SipHash-2-4 of the name with the volume's key. */
uint64_t dir_name_hash(const uint8_t key[16], const char *name, size_t len);

/* --- extended attributes and symlinks (format/xattr.c) --------------------- */
struct lunfs_xattr {
	uint8_t ns;             /* enum lunfs_xattr_ns */
	uint8_t name_len;
	uint16_t value_len;
	char name[256];         /* NUL-terminated, without the namespace prefix */
	const uint8_t *value;   /* decode: points into the caller's block buffer */
};
struct lunfs_xattr_blk {
	uint64_t ino, seq, next;
	uint16_t nentries;
	struct lunfs_xattr *ents; /* caller-provided, capacity LUNFS_XATTR_MAX_ENTRIES */
};
#define LUNFS_XATTR_MAX_ENTRIES 250u
uint32_t xattr_rec_len(uint32_t name_len, uint32_t value_len);
int xattr_blk_encode(const struct lunfs_codec *c, const struct lunfs_xattr_blk *in, uint64_t addr, void *blk);
int xattr_blk_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_xattr_blk *out);

struct lunfs_symlink_blk {
	uint64_t ino, seq;
	uint32_t len;           /* bytes of target in this block, <= LUNFS_BLOCK_PAYLOAD */
	char data[4028];
};
void symlink_blk_encode(const struct lunfs_codec *c, const struct lunfs_symlink_blk *in, uint64_t addr, void *blk);
int symlink_blk_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_symlink_blk *out);

/* --- journals (format/journal.c) ------------------------------------------- */
struct lunfs_jsb {
	uint16_t slot;
	uint32_t state;         /* enum lunfs_jsb_state */
	uint64_t owner_gen;
	uint64_t tail_seq, tail_block;
	uint64_t ring_first, ring_blocks;
	uint64_t norphans;
	uint64_t seq;
};
void jsb_encode(const struct lunfs_codec *c, const struct lunfs_jsb *in, uint64_t addr, void *blk);
/* Also checks ring_first/ring_blocks/tail_block against journal_size. */
int jsb_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, uint64_t journal_size,
	       struct lunfs_jsb *out);
/* Initial state for slot's journal of journal_size bytes (mkfs). */
void jsb_init(struct lunfs_jsb *j, uint16_t slot, uint64_t journal_size);

struct lunfs_jorphan {
	uint64_t slot, first, seq;
	uint64_t ino[503];      /* LUNFS_JORPHANS_PER_BLOCK */
};
void jorphan_encode(const struct lunfs_codec *c, const struct lunfs_jorphan *in, uint64_t addr, void *blk);
int jorphan_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_jorphan *out);

struct lunfs_jtag {
	uint64_t dest;
	uint32_t len, payload_off;
};
struct lunfs_jdesc {
	uint64_t seq;           /* transaction sequence */
	uint64_t slot;          /* blkhdr owner: journal's slot */
	uint32_t index;         /* descriptor index within the transaction */
	uint32_t ntags, ndesc, npayload;
	struct lunfs_jtag tags[250]; /* LUNFS_JTAGS_PER_DESC */
};
void jdesc_encode(const struct lunfs_codec *c, const struct lunfs_jdesc *in, uint64_t addr, void *blk);
/* Also checks tag alignment (512) and that payload ranges fit npayload. */
int jdesc_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_jdesc *out);

struct lunfs_jcommit {
	uint64_t seq, slot;
	uint32_t ndesc, npayload, body_crc;
	uint64_t commit_time_ns, writer_gen;
};
void jcommit_encode(const struct lunfs_codec *c, const struct lunfs_jcommit *in, uint64_t addr, void *blk);
int jcommit_decode(const struct lunfs_codec *c, const void *blk, uint64_t addr, struct lunfs_jcommit *out);

#endif
