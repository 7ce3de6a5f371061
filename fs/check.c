/*
 * check_run: the offline checker and repairer behind fsck.lunfs.
 *
 * Contract. Read-only unless opts.repair; a repair run refuses to start
 * while any host is seen renewing its heartbeat, and (opts.take_lock) holds
 * the VOLUME system lock exclusively, so no host can mount meanwhile. It
 * reads every structure through the codecs (format/) and never through the
 * fs core's in-memory modules: the checker must not trust the code it
 * checks. Every loop is bounded by a count validated against the volume's
 * geometry, every node is visited at most once (a second visit is itself a
 * problem), so a hostile image can neither crash nor hang it.
 *
 * Passes (e2fsck's structure, on lunfs's format):
 *   1 superblocks: primary, else backup; repair rewrites the bad copy.
 *   2 heartbeat slots (corrupt -> zeroed) and journals: a DIRTY journal is
 *     replayed with repair (jnl_replay), else reported as pending (exit 4):
 *     the volume is then checked as it is on disk. Orphan tables are read.
 *   3 clusters: summary (authority on typing), header, bitmap, refcounts.
 *     The model keeps, per typed cluster, the on-disk bitmap and a "used"
 *     bitmap built from references; references beyond the first are counted
 *     in a hash map only for the (few) units that have them, so a 64 TiB
 *     volume with little data checks in little memory.
 *   4 inodes: every allocated INODE unit must hold a live inode record.
 *   5 usage: every good inode's map tree (owner, level, first block, unit
 *     type, reach), xattr chain and symlink blocks mark their units used.
 *     A bad pointer is dropped (repair) and the rest accounted.
 *   6 directories: table and leaves through the META map; slots, depths,
 *     prefixes, hashes, names, entry types, targets. A directory with any
 *     structural problem, or entries to drop, is planned for a rewrite.
 *   7 namespace: reachability from the root over directory edges (one
 *     keeper edge per directory: the one that matches its parent_ino,
 *     else the first), cycles, unreachable inodes (-> /lost+found, created
 *     if missing), orphans of dead hosts (-> reclaimed).
 *   8 apply (repair): reclaim, lost+found, directory rewrites (a bulk
 *     build of the extendible hash: split a prefix until its entries fit a
 *     leaf), then link counts and parents.
 *   9 allocation: used vs bitmap (leaks, unallocated), refcounts (extra =
 *     references - 1; a file block referenced by entries without SHARED is
 *     fixed by setting SHARED in those entries and the refcount), header
 *     units_free, summaries (hints: refreshed silently).
 *
 * Repairs are plain block writes of freshly encoded structures, flushed at
 * the end; there is no journal because nobody else uses the volume.
 * After a repair run, a second run must find nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "fs_internal.h"
#include "lunfs/check.h"
#include "lunfs/cluster.h"
#include "lunfs/dir.h"
#include "lunfs/heartbeat.h"
#include "lunfs/inode.h"
#include "lunfs/journal.h"
#include "lunfs/lock.h"
#include "lunfs/lockd.h"
#include "lunfs/map.h"
#include "lunfs/probe.h"
#include "lunfs/record.h"
#include "lunfs/xattr.h"

#define CK_LIVE_WAIT_DEFAULT_MS 30000u
#define CK_DROP 1                 /* a walker asks its caller to drop the pointer */
#define CK_INODE_CHUNK 256u       /* inode slots read per I/O */
#define CK_MAX_DIR_ENTRIES (1u << 24) /* more entries than this in one directory: give up on it */
#define CK_LOST_FOUND "lost+found"


/* qsort and bsearch must not be given a NULL array even with a count of 0,
 * and empty lists here are NULL. */
static void ck_qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	if (n > 1) {
		qsort(base, n, size, cmp);
	}
}

static void *ck_bsearch(const void *key, const void *base, size_t n, size_t size,
			int (*cmp)(const void *, const void *))
{
	return n == 0 ? NULL : bsearch(key, base, n, size, cmp);
}

static const char *const ck_pb_names[CHECK_PB_COUNT] = {
	[CHECK_PB_SUPER] = "superblock",
	[CHECK_PB_JOURNAL] = "journal",
	[CHECK_PB_JOURNAL_BAD] = "journal_corrupt",
	[CHECK_PB_HEARTBEAT] = "heartbeat",
	[CHECK_PB_CLUSTER] = "cluster",
	[CHECK_PB_UNITS_FREE] = "units_free",
	[CHECK_PB_LEAK] = "leak",
	[CHECK_PB_UNALLOCATED] = "unallocated",
	[CHECK_PB_MULTIREF] = "multiref",
	[CHECK_PB_REFCOUNT] = "refcount",
	[CHECK_PB_INODE] = "inode",
	[CHECK_PB_MAP] = "map",
	[CHECK_PB_DIR] = "dir",
	[CHECK_PB_DIRENT] = "dirent",
	[CHECK_PB_NLINK] = "nlink",
	[CHECK_PB_PARENT] = "parent",
	[CHECK_PB_DIR_LINK] = "dir_link",
	[CHECK_PB_UNREACHABLE] = "unreachable",
	[CHECK_PB_ORPHAN] = "orphan",
	[CHECK_PB_XATTR] = "xattr",
	[CHECK_PB_SYMLINK] = "symlink",
	[CHECK_PB_INODE_FIELD] = "inode_field",
};

const char *check_pb_name(enum check_pb pb)
{
	if ((unsigned)pb >= CHECK_PB_COUNT) {
		return "unknown";
	}
	return ck_pb_names[pb];
}

int check_exit_code(const struct check_result *r)
{
	bool left = r->journals_pending > 0, fixed = false;

	for (unsigned i = 0; i < CHECK_PB_COUNT; i++) {
		if (r->found[i] > r->fixed[i]) {
			left = true;
		}
		if (r->fixed[i] > 0) {
			fixed = true;
		}
	}
	return (left ? CHECK_EXIT_UNCORRECTED : 0) | (fixed ? CHECK_EXIT_CORRECTED : 0);
}

/* ---- a u64 -> u64 open-addressing hash map (keys never 0) ---------------- */
struct ck_map {
	uint64_t *keys, *vals;
	size_t cap, n;
};

static uint64_t ck_hash64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return k;
}

static void ck_map_free(struct ck_map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

static uint64_t *ck_map_get(const struct ck_map *m, uint64_t key)
{
	if (m->cap == 0) {
		return NULL;
	}
	for (size_t i = ck_hash64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			return &m->vals[i];
		}
		if (m->keys[i] == 0) {
			return NULL;
		}
	}
}

static int ck_map_put(struct ck_map *m, uint64_t key, uint64_t val)
{
	uint64_t *v = ck_map_get(m, key);

	if (v != NULL) {
		*v = val;
		return 0;
	}
	if ((m->n + 1) * 2 > m->cap) {
		size_t ncap = m->cap == 0 ? 64 : m->cap * 2;
		uint64_t *nk = calloc(ncap, sizeof(*nk)), *nv = calloc(ncap, sizeof(*nv));

		if (nk == NULL || nv == NULL) {
			free(nk);
			free(nv);
			return -ENOMEM;
		}
		for (size_t i = 0; i < m->cap; i++) {
			if (m->keys[i] != 0) {
				size_t j = ck_hash64(m->keys[i]) & (ncap - 1);

				while (nk[j] != 0) {
					j = (j + 1) & (ncap - 1);
				}
				nk[j] = m->keys[i];
				nv[j] = m->vals[i];
			}
		}
		free(m->keys);
		free(m->vals);
		m->keys = nk;
		m->vals = nv;
		m->cap = ncap;
	}
	for (size_t i = ck_hash64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == 0) {
			m->keys[i] = key;
			m->vals[i] = val;
			m->n++;
			return 0;
		}
	}
}

/* ---- bitmaps ------------------------------------------------------------- */
static bool bit_get(const uint64_t *w, uint64_t i)
{
	return (w[i / 64] >> (i % 64)) & 1u;
}

static void bit_set(uint64_t *w, uint64_t i, bool on)
{
	if (on) {
		w[i / 64] |= 1ull << (i % 64);
	} else {
		w[i / 64] &= ~(1ull << (i % 64));
	}
}

/* ---- the model ------------------------------------------------------------ */
struct ck_cluster {
	uint8_t type;                /* FREE unless summary typed and header decodes */
	uint8_t sum_type;            /* summary's type as read */
	bool fresh;                  /* typed by this run */
	bool hdr_bad, bm_bad, rc_bad;/* corrupt blocks seen (rewritten by repair) */
	int lock_status;
	struct lunfs_lock lock;      /* decoded lock record (summary) */
	struct lunfs_cluster_hdr hdr;
	uint64_t *disk;              /* bitmap as read */
	uint64_t *used;              /* references found */
	uint64_t *quiet;             /* units a repair released or took: not reported */
	uint64_t *noshared;          /* FILE: some reference lacks SHARED */
};

enum ck_istate {
	CK_I_OK = 0,
	CK_I_BAD,                    /* allocated slot, record unusable */
	CK_I_RECLAIM,                /* orphan to reclaim / bad to free (repair) */
};

struct ck_inode {
	uint64_t ino;
	uint64_t parent_ino;         /* as recorded */
	uint64_t keeper_parent;      /* directory whose entry we keep (dirs) */
	uint32_t mode, nlink, flags;
	uint32_t links;              /* entries naming it, after planned repairs */
	uint32_t subdirs;            /* kept child directory edges (dirs) */
	uint8_t state;
	bool reached;
	bool orphan_listed;
	bool rewrite_dir;            /* repair: rebuild this directory */
	bool fix_map;                /* its record needs rewriting (map root dropped etc.) */
};

/* A planned change to a directory's entries. */
struct ck_dchange {
	uint64_t dir;
	uint64_t ino;                /* add: target; remove: 0 */
	uint8_t type;                /* add/retype: DT_*; remove: 0 */
	bool add;
	char name[LUNFS_NAME_MAX + 1];
};

/* An entry naming a directory. */
struct ck_edge {
	uint64_t parent, child;
	bool keep;
	char name[LUNFS_NAME_MAX + 1];
};

struct ck {
	struct lunfs_dev *dev;
	const struct check_opts *o;
	struct check_result *r;
	struct lunfs_super sb;
	struct lunfs_codec codec;
	bool repair;
	uint64_t data_off, data_end;
	struct ck_cluster *cl;       /* cluster_count entries */
	struct ck_map refs;          /* unit addr -> references, only when > 1 */
	struct ck_map rc_disk;       /* unit addr -> on-disk extra, only when != 0 */
	struct ck_map orphans;       /* ino -> slot + 1 of a dead host's orphan table */
	struct ck_map itab;          /* ino -> index + 1 in inodes[] */
	struct ck_inode *inodes;
	size_t ninodes, cap_inodes;
	struct ck_edge *edges;
	size_t nedges, cap_edges;
	struct ck_dchange *changes;
	size_t nchanges, cap_changes;
	bool *live;                  /* max_hosts: slots seen renewing */
	uint32_t self_slot;          /* our own lockd slot, or UINT32_MAX */
	uint64_t lost_found;         /* ino of /lost+found, 0 = none */
	bool need_shared_pass;
	uint8_t *blk;                /* scratch 4 KiB, aligned */
	uint8_t *blk2;
	uint8_t *rec;                /* scratch 2 sectors, aligned */
	struct lunfs_dirent *ents;   /* scratch leaf entries */
	bool wrote;
};

static void ck_note(struct ck *ck, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ck_note(struct ck *ck, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (ck->o->report == NULL) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ck->o->report(ck->o->arg, -1, false, msg);
}

/* Count and report a problem. `fixed` says whether this run repairs it
 * (the caller does the writing). */
static void ck_problem(struct ck *ck, enum check_pb pb, bool fixed, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void ck_problem(struct ck *ck, enum check_pb pb, bool fixed, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	ck->r->found[pb]++;
	if (fixed) {
		ck->r->fixed[pb]++;
	}
	if (ck->o->report == NULL) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ck->o->report(ck->o->arg, (int)pb, fixed, msg);
}

static int ck_write(struct ck *ck, const void *buf, size_t len, uint64_t off)
{
	ck->wrote = true;
	return dev_write(ck->dev, buf, len, off);
}

static const char *ck_err(int err)
{
	switch (err) {
	case -EUCLEAN:
		return "corrupt";
	case -ENODATA:
		return "never written";
	case -ESTALE:
		return "left by an earlier volume";
	default:
		return "unreadable";
	}
}

/* ---- units ---------------------------------------------------------------- */
/* The cluster and unit of byte address addr if it is a usable unit (past
 * the header area) of a cluster typed `type`. */
static int ck_unit(struct ck *ck, uint64_t addr, uint8_t type, struct ck_cluster **clp, uint64_t *unit)
{
	uint64_t c, rel;
	struct ck_cluster *cl;

	if (addr < ck->data_off || addr >= ck->data_end) {
		return -ERANGE;
	}
	c = (addr - ck->data_off) / ck->sb.cluster_size;
	cl = &ck->cl[c];
	if (cl->type != type) {
		return -ERANGE;
	}
	rel = addr - cl->hdr.cluster_start;
	if (rel % cl->hdr.unit_size != 0) {
		return -ERANGE;
	}
	rel /= cl->hdr.unit_size;
	if (rel < cl->hdr.header_units || rel >= cl->hdr.units_total) {
		return -ERANGE;
	}
	*clp = cl;
	*unit = rel;
	return 0;
}

static uint64_t ck_unit_addr(const struct ck_cluster *cl, uint64_t u)
{
	return cl->hdr.cluster_start + u * cl->hdr.unit_size;
}

/* Add a reference; returns the references it had before, or -ENOMEM. */
static int64_t ck_ref(struct ck *ck, struct ck_cluster *cl, uint64_t u)
{
	uint64_t addr = ck_unit_addr(cl, u), *v;

	if (!bit_get(cl->used, u)) {
		bit_set(cl->used, u, true);
		return 0;
	}
	v = ck_map_get(&ck->refs, addr);
	if (v != NULL && *v >= 2) {
		(*v)++;
		return (int64_t)*v - 1;
	}
	if (ck_map_put(&ck->refs, addr, 2) < 0) {
		return -ENOMEM;
	}
	return 1;
}

static uint64_t ck_refs(struct ck *ck, struct ck_cluster *cl, uint64_t u)
{
	uint64_t *v;

	if (!bit_get(cl->used, u)) {
		return 0;
	}
	v = ck_map_get(&ck->refs, ck_unit_addr(cl, u));
	return v != NULL && *v >= 2 ? *v : 1;
}

/* Drop a reference added by ck_ref; the unit's bitmap change is then a
 * repair's doing, not a problem to report. */
static void ck_unref(struct ck *ck, struct ck_cluster *cl, uint64_t u)
{
	uint64_t *v = ck_map_get(&ck->refs, ck_unit_addr(cl, u));

	if (v != NULL && *v >= 2) {
		(*v)--;
		if (*v == 1) {
			*v = 0;
		}
		return;
	}
	bit_set(cl->used, u, false);
	if (cl->quiet != NULL) {
		bit_set(cl->quiet, u, true);
	}
}

static void ck_unref_addr(struct ck *ck, uint64_t addr, uint8_t type)
{
	struct ck_cluster *cl;
	uint64_t u;

	if (ck_unit(ck, addr, type, &cl, &u) == 0) {
		ck_unref(ck, cl, u);
	}
}

/* ---- inode table ----------------------------------------------------------- */
static struct ck_inode *ck_inode_find(struct ck *ck, uint64_t ino)
{
	uint64_t *v = ck_map_get(&ck->itab, ino);

	return v == NULL ? NULL : &ck->inodes[*v - 1];
}

static struct ck_inode *ck_inode_add(struct ck *ck, uint64_t ino)
{
	if (ck->ninodes == ck->cap_inodes) {
		size_t ncap = ck->cap_inodes == 0 ? 256 : ck->cap_inodes * 2;
		struct ck_inode *n = realloc(ck->inodes, ncap * sizeof(*n));

		if (n == NULL) {
			return NULL;
		}
		ck->inodes = n;
		ck->cap_inodes = ncap;
	}
	if (ck_map_put(&ck->itab, ino, ck->ninodes + 1) < 0) {
		return NULL;
	}
	memset(&ck->inodes[ck->ninodes], 0, sizeof(ck->inodes[0]));
	ck->inodes[ck->ninodes].ino = ino;
	return &ck->inodes[ck->ninodes++];
}

static bool ck_inode_good(const struct ck_inode *ci)
{
	return ci != NULL && ci->state == CK_I_OK;
}

static uint8_t ck_mode_dt(uint32_t mode)
{
	return (uint8_t)((mode & S_IFMT) >> 12);
}

/* Read, decode, and return the inode record of ino (its slot's second sector). */
static int ck_inode_read(struct ck *ck, uint64_t ino, struct lunfs_inode *out, uint64_t *rec_addr)
{
	uint64_t lock_addr;
	int err = layout_ino_addr(&ck->sb, ino, &lock_addr);

	if (err < 0) {
		return err;
	}
	*rec_addr = lock_addr + ck->sb.sector_size;
	err = dev_read(ck->dev, ck->rec, ck->sb.sector_size, *rec_addr);
	if (err < 0) {
		return err;
	}
	return inode_decode(&ck->codec, ck->rec, *rec_addr, ino, out);
}

static int ck_inode_write(struct ck *ck, struct lunfs_inode *in, uint64_t rec_addr)
{
	in->version++;
	memset(ck->rec, 0, ck->sb.sector_size);
	inode_encode(&ck->codec, in, rec_addr, ck->rec);
	return ck_write(ck, ck->rec, ck->sb.sector_size, rec_addr);
}

/* ---- pass 1: superblocks ----------------------------------------------------- */
static int ck_super(struct ck *ck, const char **why)
{
	enum lunfs_sb_copy copy;
	int perr = 0, err;
	uint64_t backup;
	struct lunfs_super other;
	uint32_t unknown = 0;

	err = sb_read(ck->dev, &ck->sb, &copy, &perr);
	if (err < 0) {
		*why = err == -ENODATA ? "no lunfs superblock: not a lunfs volume"
		     : err == -EPROTONOSUPPORT ? "the volume has a newer format version"
		     : err == -EUCLEAN ? "no valid lunfs superblock (not a lunfs volume, or both copies corrupt)"
		     : err == -EOPNOTSUPP ? "the volume's sector size is smaller than the device's"
		     : "cannot read the superblock";
		return err;
	}
	err = sb_features_check(&ck->sb, ck->repair, &unknown);
	if (err < 0) {
		*why = "the volume uses features this fsck does not know";
		return err;
	}
	sb_codec(&ck->sb, &ck->codec);
	backup = sb_backup_addr(ck->sb.volume_size);
	if (copy == LUNFS_SB_BACKUP) {
		ck->r->used_backup_sb = true;
		ck_problem(ck, CHECK_PB_SUPER, ck->repair,
			   "primary superblock at 4096 is %s: using the backup at %" PRIu64 "%s",
			   ck_err(perr), backup, ck->repair ? "; primary restored from the backup" : "");
		if (ck->repair) {
			sb_encode(&ck->sb, LUNFS_SB_OFFSET, ck->blk);
			err = ck_write(ck, ck->blk, LUNFS_META_BLOCK_SIZE, LUNFS_SB_OFFSET);
			if (err < 0) {
				*why = "cannot write the primary superblock";
				return err;
			}
		}
		return 0;
	}
	err = backup + LUNFS_META_BLOCK_SIZE <= ck->dev->size ?
		      dev_read(ck->dev, ck->blk, LUNFS_META_BLOCK_SIZE, backup) : -EIO;
	if (err == 0) {
		err = sb_decode(ck->blk, backup, &other);
		if (err == 0 && memcmp(other.uuid, ck->sb.uuid, LUNFS_UUID_SIZE) != 0) {
			err = -ESTALE;
		}
	}
	if (err < 0) {
		ck_problem(ck, CHECK_PB_SUPER, ck->repair, "backup superblock at %" PRIu64 " is %s%s",
			   backup, ck_err(err), ck->repair ? ": rewritten from the primary" : "");
		if (ck->repair) {
			sb_encode(&ck->sb, backup, ck->blk);
			err = ck_write(ck, ck->blk, LUNFS_META_BLOCK_SIZE, backup);
			if (err < 0) {
				*why = "cannot write the backup superblock";
				return err;
			}
		}
	}
	return 0;
}

/* ---- pass 2: heartbeats and journals ---------------------------------------- */
static int ck_heartbeats(struct ck *ck)
{
	uint32_t n = ck->sb.max_hosts;
	struct lunfs_hb_slot *slots = calloc(n, sizeof(*slots));
	int *status = calloc(n, sizeof(*status));
	int err;

	if (slots == NULL || status == NULL) {
		err = -ENOMEM;
		goto out;
	}
	err = hb_scan_read(ck->dev, &ck->sb, &ck->codec, slots, status);
	if (err < 0) {
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		bool fix = ck->repair && !ck->live[i] && i != ck->self_slot;

		if (status[i] != -EUCLEAN) {
			continue;
		}
		ck_problem(ck, CHECK_PB_HEARTBEAT, fix, "heartbeat slot %" PRIu32 " is corrupt%s", i,
			   fix ? ": reset to free" : "");
		if (fix) {
			memset(ck->rec, 0, ck->sb.sector_size);
			err = ck_write(ck, ck->rec, ck->sb.sector_size, layout_hb_addr(&ck->sb, i));
			if (err < 0) {
				goto out;
			}
		}
	}
	err = 0;
out:
	free(slots);
	free(status);
	return err;
}

static int ck_journal_orphans(struct ck *ck, uint32_t slot, uint64_t jaddr)
{
	for (uint32_t k = 0; k < LUNFS_JOURNAL_ORPHAN_BLOCKS; k++) {
		uint64_t addr = jaddr + (1u + (uint64_t)k) * LUNFS_META_BLOCK_SIZE;
		struct lunfs_jorphan jo;
		int err = dev_read(ck->dev, ck->blk, LUNFS_META_BLOCK_SIZE, addr);

		if (err < 0) {
			return err;
		}
		err = jorphan_decode(&ck->codec, ck->blk, addr, &jo);
		if (err == -EUCLEAN || (err == 0 && (jo.slot != slot ||
				       jo.first != (uint64_t)k * LUNFS_JORPHANS_PER_BLOCK))) {
			bool fix = ck->repair && !ck->live[slot];

			ck_problem(ck, CHECK_PB_JOURNAL_BAD, fix,
				   "orphan table block %" PRIu32 " of slot %" PRIu32 " at %" PRIu64
				   " is corrupt%s", k, slot, addr, fix ? ": cleared" : "");
			if (fix) {
				memset(ck->blk, 0, LUNFS_META_BLOCK_SIZE);
				err = ck_write(ck, ck->blk, LUNFS_META_BLOCK_SIZE, addr);
				if (err < 0) {
					return err;
				}
			}
			continue;
		}
		if (err != 0 || ck->live[slot]) {
			continue;
		}
		for (unsigned i = 0; i < LUNFS_JORPHANS_PER_BLOCK; i++) {
			if (jo.ino[i] != 0 && ck_map_put(&ck->orphans, jo.ino[i], slot + 1u) < 0) {
				return -ENOMEM;
			}
		}
	}
	return 0;
}

static int ck_journals(struct ck *ck)
{
	for (uint32_t j = 0; j < ck->sb.max_hosts; j++) {
		uint64_t jaddr = layout_journal_addr(&ck->sb, j);
		struct lunfs_jsb jsb;
		int err = dev_read(ck->dev, ck->blk, LUNFS_META_BLOCK_SIZE, jaddr);

		if (err < 0) {
			return err;
		}
		err = jsb_decode(&ck->codec, ck->blk, jaddr, ck->sb.journal_size, &jsb);
		if (err == 0 && jsb.slot != j) {
			err = -EUCLEAN;
		}
		if (err == -EUCLEAN) {
			bool fix = ck->repair && !ck->live[j];

			ck_problem(ck, CHECK_PB_JOURNAL_BAD, fix,
				   "journal superblock of slot %" PRIu32 " at %" PRIu64 " is corrupt%s",
				   j, jaddr, fix ? ": reset to clean (its transactions are lost)" : "");
			if (fix) {
				jsb_init(&jsb, (uint16_t)j, ck->sb.journal_size);
				jsb.state = LUNFS_JOURNAL_CLEAN;
				memset(ck->blk, 0, LUNFS_META_BLOCK_SIZE);
				jsb_encode(&ck->codec, &jsb, jaddr, ck->blk);
				err = ck_write(ck, ck->blk, LUNFS_META_BLOCK_SIZE, jaddr);
				if (err < 0) {
					return err;
				}
			}
		} else if (err == 0 && jsb.state == LUNFS_JOURNAL_DIRTY && !ck->live[j] &&
			   j != ck->self_slot) {
			if (ck->repair) {
				uint64_t applied = 0;

				err = jnl_replay(ck->dev, &ck->sb, &ck->codec, j, &applied);
				if (err < 0) {
					ck_problem(ck, CHECK_PB_JOURNAL, false,
						   "journal of slot %" PRIu32 " needs replay, and the replay "
						   "failed (%s)", j, strerror(-err));
				} else {
					ck->r->journals_replayed++;
					ck->wrote = true;
					ck_problem(ck, CHECK_PB_JOURNAL, true,
						   "journal of slot %" PRIu32 " was dirty: replayed %" PRIu64
						   " transactions", j, applied);
				}
			} else {
				ck->r->journals_pending++;
				ck_problem(ck, CHECK_PB_JOURNAL, false,
					   "journal of slot %" PRIu32 " needs replay; run with -y. The "
					   "volume is checked as it is on disk: unreplayed transactions "
					   "may explain the differences reported below", j);
			}
		}
		err = ck_journal_orphans(ck, j, jaddr);
		if (err < 0) {
			return err;
		}
	}
	return 0;
}

/* ---- pass 3: clusters ------------------------------------------------------- */
static int ck_cluster_alloc_maps(struct ck *ck, struct ck_cluster *cl)
{
	size_t words = (size_t)((cl->hdr.units_total + 63) / 64);

	cl->disk = calloc(words, sizeof(uint64_t));
	cl->used = calloc(words, sizeof(uint64_t));
	cl->quiet = calloc(words, sizeof(uint64_t));
	if (cl->type == LUNFS_CLUSTER_FILE) {
		cl->noshared = calloc(words, sizeof(uint64_t));
	}
	if (cl->disk == NULL || cl->used == NULL || cl->quiet == NULL ||
	    (cl->type == LUNFS_CLUSTER_FILE && cl->noshared == NULL)) {
		return -ENOMEM;
	}
	/* The header area is always in use. */
	for (uint64_t u = 0; u < cl->hdr.header_units; u++) {
		bit_set(cl->used, u, true);
	}
	(void)ck;
	return 0;
}

/* Header area of a typed cluster: bitmap and refcount blocks into the model. */
static int ck_cluster_area(struct ck *ck, uint64_t c, struct ck_cluster *cl)
{
	const struct lunfs_cluster_hdr *h = &cl->hdr;
	size_t nblk = 1u + h->bitmap_blocks + h->refcount_blocks;
	uint8_t *area = dev_buf_alloc(nblk * LUNFS_META_BLOCK_SIZE);
	struct lunfs_bitmap *bm = malloc(sizeof(*bm));
	struct lunfs_refcount *rc = malloc(sizeof(*rc));
	int err;

	if (area == NULL || bm == NULL || rc == NULL) {
		err = -ENOMEM;
		goto out;
	}
	err = dev_read(ck->dev, area, nblk * LUNFS_META_BLOCK_SIZE, h->cluster_start);
	if (err < 0) {
		goto out;
	}
	for (uint32_t b = 0; b < h->bitmap_blocks; b++) {
		uint64_t addr = h->cluster_start + (1u + (uint64_t)b) * LUNFS_META_BLOCK_SIZE;
		uint64_t first = (uint64_t)b * LUNFS_BITMAP_BITS;
		bool bad = false;

		err = bitmap_decode(&ck->codec, area + (1u + (size_t)b) * LUNFS_META_BLOCK_SIZE, addr, bm);
		if (err != 0 || bm->cluster_index != c || bm->first_unit != first) {
			bad = true;
		}
		for (uint64_t i = 0; !bad && i < LUNFS_BITMAP_BITS; i++) {
			bool on = bit_get(bm->words, i);

			if (first + i >= h->units_total) {
				bad = on ? true : bad;
				continue;
			}
			if (first + i < h->header_units && !on) {
				bad = true;
			}
			bit_set(cl->disk, first + i, on);
		}
		if (bad) {
			/* Nothing it says can be trusted: its units are judged by
			 * the references alone, and repair rewrites it. */
			cl->bm_bad = true;
			for (uint64_t i = 0; i < LUNFS_BITMAP_BITS && first + i < h->units_total; i++) {
				bit_set(cl->quiet, first + i, true);
				bit_set(cl->disk, first + i, first + i < h->header_units);
			}
			ck_problem(ck, CHECK_PB_CLUSTER, ck->repair,
				   "cluster %" PRIu64 ": bitmap block %" PRIu32 " at %" PRIu64 " is %s%s", c, b,
				   addr, err != 0 ? ck_err(err) : "inconsistent",
				   ck->repair ? ": rebuilt from the references found" : "");
		}
	}
	for (uint32_t r = 0; r < h->refcount_blocks; r++) {
		uint64_t blkno = 1u + (uint64_t)h->bitmap_blocks + r;
		uint64_t addr = h->cluster_start + blkno * LUNFS_META_BLOCK_SIZE;
		uint64_t first = (uint64_t)r * LUNFS_REFCOUNTS_PER_BLOCK;

		err = refcount_decode(&ck->codec, area + blkno * LUNFS_META_BLOCK_SIZE, addr, rc);
		if (err != 0 || rc->cluster_index != c || rc->first_unit != first) {
			cl->rc_bad = true;
			ck_problem(ck, CHECK_PB_CLUSTER, ck->repair,
				   "cluster %" PRIu64 ": refcount block %" PRIu32 " at %" PRIu64 " is %s%s", c, r,
				   addr, err != 0 ? ck_err(err) : "misplaced",
				   ck->repair ? ": rebuilt from the references found" : "");
			continue;
		}
		for (uint32_t i = 0; i < LUNFS_REFCOUNTS_PER_BLOCK && first + i < h->units_total; i++) {
			if (rc->extra[i] != 0 &&
			    ck_map_put(&ck->rc_disk, ck_unit_addr(cl, first + i), rc->extra[i]) < 0) {
				err = -ENOMEM;
				goto out;
			}
		}
	}
	err = 0;
out:
	free(rc);
	free(bm);
	dev_buf_free(area);
	return err;
}

static int ck_clusters(struct ck *ck)
{
	const uint64_t per_chunk = (1024u * 1024u) / ck->sb.sector_size;
	uint8_t *tab = dev_buf_alloc(1024u * 1024u);
	int err = 0;

	if (tab == NULL) {
		return -ENOMEM;
	}
	for (uint64_t c = 0; c < ck->sb.cluster_count; c++) {
		struct ck_cluster *cl = &ck->cl[c];
		uint64_t laddr = layout_cluster_lock_addr(&ck->sb, c);
		uint64_t start = layout_cluster_addr(&ck->sb, c);
		struct lunfs_cluster_summary sum;
		struct lunfs_cluster_hdr geo;

		if (c % per_chunk == 0) {
			uint64_t n = ck->sb.cluster_count - c < per_chunk ? ck->sb.cluster_count - c : per_chunk;

			err = dev_read(ck->dev, tab, n * ck->sb.sector_size, laddr);
			if (err < 0) {
				goto out;
			}
		}
		cl->lock_status = lock_decode(&ck->codec, tab + (c % per_chunk) * ck->sb.sector_size,
					      laddr, &cl->lock);
		if (cl->lock_status == 0 && (cl->lock.kind != LUNFS_LOCK_KIND_CLUSTER || cl->lock.lock_id != c)) {
			cl->lock_status = -EUCLEAN;
		}
		memset(&sum, 0, sizeof(sum));
		if (cl->lock_status == 0) {
			lock_summary_get(&cl->lock, &sum);
		}
		err = dev_read(ck->dev, ck->blk, LUNFS_META_BLOCK_SIZE, start);
		if (err < 0) {
			goto out;
		}
		err = cluster_hdr_decode(&ck->codec, ck->blk, start, &cl->hdr);
		if (err == 0 && (cl->hdr.cluster_index != c || cluster_geometry(&ck->sb, cl->hdr.type, &geo) < 0 ||
				 geo.unit_size != cl->hdr.unit_size || geo.units_total != cl->hdr.units_total ||
				 geo.header_units != cl->hdr.header_units)) {
			err = -EUCLEAN;
		}
		if (cl->lock_status == -EUCLEAN) {
			/* The summary is lost; a header that decodes tells the type. */
			ck_problem(ck, CHECK_PB_CLUSTER, ck->repair,
				   "cluster %" PRIu64 ": lock record at %" PRIu64 " is corrupt%s", c, laddr,
				   ck->repair ? ": rewritten" : "");
			sum.type = err == 0 ? cl->hdr.type : LUNFS_CLUSTER_FREE;
		}
		cl->sum_type = sum.type;
		if (sum.type == LUNFS_CLUSTER_FREE || sum.type > LUNFS_CLUSTER_INODE) {
			continue;
		}
		if (err == -ENODATA || err == -ESTALE) {
			continue; /* the typing never committed: free (FORMAT.md 10) */
		}
		if (err == 0 && cl->hdr.type != sum.type) {
			continue; /* an older typing's header: free (FORMAT.md 20, point 1) */
		}
		if (err != 0) {
			cl->hdr_bad = true;
			ck_problem(ck, CHECK_PB_CLUSTER, ck->repair,
				   "cluster %" PRIu64 ": header at %" PRIu64 " is %s%s", c, start, ck_err(err),
				   ck->repair ? ": rebuilt" : "");
			err = cluster_geometry(&ck->sb, sum.type, &cl->hdr);
			if (err < 0) {
				continue;
			}
			cl->hdr.cluster_index = c;
			cl->hdr.cluster_start = start;
			cl->hdr.type_gen = 1;
		}
		cl->type = sum.type;
		err = ck_cluster_alloc_maps(ck, cl);
		if (err < 0) {
			goto out;
		}
		err = ck_cluster_area(ck, c, cl);
		if (err < 0) {
			goto out;
		}
		if (cl->hdr_bad) {
			/* units_free is rebuilt too; don't report it on top. */
			cl->hdr.units_free = UINT64_MAX;
		}
	}
	err = 0;
out:
	dev_buf_free(tab);
	return err;
}

/* ---- map walker ------------------------------------------------------------- */
enum ck_walk_mode {
	CK_WALK_MARK,      /* pass 5: validate, reference, report, drop (repair) */
	CK_WALK_COLLECT,   /* list nodes and mapped blocks, no references */
	CK_WALK_SHARED,    /* repair: set SHARED on entries of multiply referenced blocks */
	CK_WALK_UNMARK,    /* reclaim: drop the references of nodes and blocks */
};

struct ck_wblk {
	uint64_t lblk, addr;
};

struct ck_walk {
	struct ck *ck;
	enum ck_walk_mode mode;
	uint64_t ino;
	uint8_t data_type;           /* cluster type of mapped blocks */
	uint64_t mapped;
	struct ck_wblk *blks;        /* COLLECT (and MARK of META maps): mapped blocks */
	size_t nblks, cap_blks;
	uint64_t *nodes;             /* COLLECT: map node addresses */
	size_t nnodes, cap_nodes;
	struct ck_map seen;          /* COLLECT/SHARED: nodes visited (bounds hostile DAGs) */
	struct lunfs_map_inner inner[LUNFS_MAP_MAX_HEIGHT + 1];
	struct lunfs_map_leaf leaf;
	uint8_t *buf;                /* 4 KiB */
};

static int ck_walk_push(struct ck_walk *w, uint64_t lblk, uint64_t addr)
{
	if (w->nblks == w->cap_blks) {
		size_t ncap = w->cap_blks == 0 ? 64 : w->cap_blks * 2;
		struct ck_wblk *n = realloc(w->blks, ncap * sizeof(*n));

		if (n == NULL) {
			return -ENOMEM;
		}
		w->blks = n;
		w->cap_blks = ncap;
	}
	w->blks[w->nblks].lblk = lblk;
	w->blks[w->nblks++].addr = addr;
	return 0;
}

static int ck_walk_push_node(struct ck_walk *w, uint64_t addr)
{
	if (w->nnodes == w->cap_nodes) {
		size_t ncap = w->cap_nodes == 0 ? 16 : w->cap_nodes * 2;
		uint64_t *n = realloc(w->nodes, ncap * sizeof(*n));

		if (n == NULL) {
			return -ENOMEM;
		}
		w->nodes = n;
		w->cap_nodes = ncap;
	}
	w->nodes[w->nnodes++] = addr;
	return 0;
}

static int ck_walk_init(struct ck_walk *w, struct ck *ck, enum ck_walk_mode mode, uint64_t ino,
			uint8_t map_unit)
{
	memset(w, 0, sizeof(*w));
	w->ck = ck;
	w->mode = mode;
	w->ino = ino;
	w->data_type = map_unit == LUNFS_MAP_FILE ? LUNFS_CLUSTER_FILE : LUNFS_CLUSTER_META;
	w->buf = dev_buf_alloc(LUNFS_META_BLOCK_SIZE);
	return w->buf == NULL ? -ENOMEM : 0;
}

static void ck_walk_fini(struct ck_walk *w)
{
	free(w->blks);
	free(w->nodes);
	ck_map_free(&w->seen);
	dev_buf_free(w->buf);
}

static int ck_walk_leaf(struct ck_walk *w, uint64_t addr)
{
	struct ck *ck = w->ck;
	struct lunfs_map_leaf *lf = &w->leaf;
	bool dirty = false;
	int err;

	for (unsigned i = 0; i < LUNFS_MAP_LEAF_FANOUT; i++) {
		struct lunfs_map_entry *e = &lf->e[i];
		uint64_t lblk = lf->first_lblk + i, u;
		struct ck_cluster *cl;

		if (e->addr == 0) {
			continue;
		}
		if (ck_unit(ck, e->addr, w->data_type, &cl, &u) < 0) {
			if (w->mode == CK_WALK_MARK) {
				ck_problem(ck, CHECK_PB_MAP, ck->repair,
					   "inode %" PRIu64 ": block %" PRIu64 " maps to %" PRIu64
					   ", which is not a %s unit%s", w->ino, lblk, e->addr,
					   w->data_type == LUNFS_CLUSTER_FILE ? "file" : "metadata",
					   ck->repair ? ": unmapped" : "");
				if (ck->repair) {
					memset(e, 0, sizeof(*e));
					dirty = true;
				}
			}
			continue;
		}
		if (w->mode == CK_WALK_MARK) {
			int64_t prev = ck_ref(ck, cl, u);

			if (prev < 0) {
				return (int)prev;
			}
			if (w->data_type == LUNFS_CLUSTER_META && prev > 0) {
				ck_problem(ck, CHECK_PB_MULTIREF, ck->repair,
					   "inode %" PRIu64 ": block %" PRIu64 " maps to metadata block %" PRIu64
					   ", which is also used elsewhere%s", w->ino, lblk, e->addr,
					   ck->repair ? ": unmapped here" : "");
				if (ck->repair) {
					ck_unref(ck, cl, u);
					memset(e, 0, sizeof(*e));
					dirty = true;
				}
				continue;
			}
			if (w->data_type == LUNFS_CLUSTER_FILE) {
				if ((e->flags & LUNFS_MAPE_SHARED) == 0) {
					bit_set(cl->noshared, u, true);
				}
				if (prev > 0) {
					ck->need_shared_pass = true;
				}
			}
		} else if (w->mode == CK_WALK_UNMARK) {
			ck_unref(ck, cl, u);
		} else if (w->mode == CK_WALK_SHARED) {
			if ((e->flags & LUNFS_MAPE_SHARED) == 0 && ck_refs(ck, cl, u) > 1) {
				e->flags |= LUNFS_MAPE_SHARED;
				dirty = true;
			}
		}
		w->mapped++;
		if (w->data_type == LUNFS_CLUSTER_META || w->mode == CK_WALK_COLLECT) {
			err = ck_walk_push(w, lblk, e->addr);
			if (err < 0) {
				return err;
			}
		}
	}
	if (dirty && ck->repair) {
		map_leaf_encode(&ck->codec, lf, addr, w->buf);
		err = ck_write(ck, w->buf, LUNFS_META_BLOCK_SIZE, addr);
		if (err < 0) {
			return err;
		}
	}
	return 0;
}

/* Visit the node at addr of `level` covering blocks from `first`. Returns 0,
 * CK_DROP (the caller removes its pointer when repairing), or -errno.
 * Recursion depth is bounded by the level (at most LUNFS_MAP_MAX_HEIGHT),
 * and each node is entered at most once per walk. */
static int ck_walk_node(struct ck_walk *w, uint64_t addr, unsigned level, uint64_t first)
{
	struct ck *ck = w->ck;
	struct ck_cluster *cl = NULL;
	uint64_t u = 0;
	const char *why = NULL;
	int err;

	if (ck_unit(ck, addr, LUNFS_CLUSTER_META, &cl, &u) < 0) {
		if (w->mode == CK_WALK_MARK) {
			ck_problem(ck, CHECK_PB_MAP, ck->repair,
				   "inode %" PRIu64 ": map node at %" PRIu64 " (level %u) is not a metadata "
				   "unit%s", w->ino, addr, level, ck->repair ? ": subtree dropped" : "");
		}
		return CK_DROP;
	}
	if (w->mode == CK_WALK_MARK) {
		int64_t prev = ck_ref(ck, cl, u);

		if (prev < 0) {
			return (int)prev;
		}
		if (prev > 0) {
			ck_problem(ck, CHECK_PB_MULTIREF, ck->repair,
				   "inode %" PRIu64 ": map node at %" PRIu64 " is also used elsewhere%s",
				   w->ino, addr, ck->repair ? ": dropped here" : "");
			if (ck->repair) {
				ck_unref(ck, cl, u);
			}
			return CK_DROP;
		}
	} else {
		if (ck_map_get(&w->seen, addr) != NULL) {
			return CK_DROP;
		}
		err = ck_map_put(&w->seen, addr, 1);
		if (err < 0) {
			return err;
		}
		if (w->mode == CK_WALK_UNMARK) {
			ck_unref(ck, cl, u);
		}
		if (w->mode == CK_WALK_COLLECT) {
			err = ck_walk_push_node(w, addr);
			if (err < 0) {
				return err;
			}
		}
	}
	err = dev_read(ck->dev, w->buf, LUNFS_META_BLOCK_SIZE, addr);
	if (err < 0) {
		return err;
	}
	if (level >= 2) {
		struct lunfs_map_inner *in = &w->inner[level];
		bool dirty = false;
		uint64_t span = map_span(level - 1);

		err = map_inner_decode(&ck->codec, w->buf, addr, in);
		if (err != 0) {
			why = ck_err(err);
		} else if (in->ino != w->ino || in->level != level || in->first_lblk != first) {
			why = "misplaced (wrong owner, level or first block)";
		}
		if (why == NULL) {
			for (unsigned i = 0; i < LUNFS_MAP_INNER_FANOUT; i++) {
				if (in->child[i] == 0) {
					continue;
				}
				err = ck_walk_node(w, in->child[i], level - 1, first + i * span);
				if (err < 0) {
					return err;
				}
				if (err == CK_DROP && w->mode == CK_WALK_MARK && ck->repair) {
					in->child[i] = 0;
					dirty = true;
				}
			}
			if (dirty) {
				map_inner_encode(&ck->codec, in, addr, w->buf);
				err = ck_write(ck, w->buf, LUNFS_META_BLOCK_SIZE, addr);
				if (err < 0) {
					return err;
				}
			}
		}
	} else {
		err = map_leaf_decode(&ck->codec, w->buf, addr, &w->leaf);
		if (err != 0) {
			why = ck_err(err);
		} else if (w->leaf.ino != w->ino || w->leaf.first_lblk != first) {
			why = "misplaced (wrong owner or first block)";
		}
		if (why == NULL) {
			err = ck_walk_leaf(w, addr);
			if (err < 0) {
				return err;
			}
		}
	}
	if (why != NULL) {
		if (w->mode == CK_WALK_MARK) {
			ck_problem(ck, CHECK_PB_MAP, ck->repair,
				   "inode %" PRIu64 ": map node at %" PRIu64 " (level %u, first block %" PRIu64
				   ") is %s%s", w->ino, addr, level, first, why,
				   ck->repair ? ": subtree dropped" : "");
			if (ck->repair) {
				ck_unref(ck, cl, u);
			}
		}
		return CK_DROP;
	}
	return 0;
}

/* Walk ino's map. In MARK mode with repair, a dropped root is cleared in
 * *di (the caller rewrites the record when *changed). */
static int ck_walk_map(struct ck_walk *w, struct lunfs_inode *di, bool *changed)
{
	int err;

	if (di->map_height == 0) {
		return 0;
	}
	err = ck_walk_node(w, di->map_root, di->map_height, 0);
	if (err == CK_DROP) {
		if (w->mode == CK_WALK_MARK && w->ck->repair) {
			di->map_root = 0;
			di->map_height = 0;
			*changed = true;
		}
		err = 0;
	}
	return err;
}

/* ---- pass 4+5: inodes and what they reference ---------------------------------- */
static int ck_xattrs(struct ck *ck, struct lunfs_inode *di, bool *changed)
{
	struct lunfs_xattr_blk xb;
	struct lunfs_xattr *ents = malloc(LUNFS_XATTR_MAX_ENTRIES * sizeof(*ents));
	uint64_t addr = di->xattr_blk, prev = 0;
	int err = 0;

	if (ents == NULL) {
		return -ENOMEM;
	}
	/* Each step references a new metadata unit or stops: bounded. */
	while (addr != 0) {
		struct ck_cluster *cl;
		uint64_t u;
		const char *why = NULL;

		if (ck_unit(ck, addr, LUNFS_CLUSTER_META, &cl, &u) < 0) {
			why = "not a metadata unit";
		} else {
			int64_t p = ck_ref(ck, cl, u);

			if (p < 0) {
				err = (int)p;
				goto out;
			}
			if (p > 0) {
				why = "also used elsewhere";
			} else {
				err = dev_read(ck->dev, ck->blk, LUNFS_META_BLOCK_SIZE, addr);
				if (err < 0) {
					goto out;
				}
				xb.ents = ents;
				err = xattr_blk_decode(&ck->codec, ck->blk, addr, &xb);
				if (err != 0) {
					why = ck_err(err);
				} else if (xb.ino != di->ino) {
					why = "owned by another inode";
				}
				err = 0;
			}
			if (why != NULL && ck->repair) {
				ck_unref(ck, cl, u);
			}
		}
		if (why != NULL) {
			ck_problem(ck, CHECK_PB_XATTR, ck->repair,
				   "inode %" PRIu64 ": xattr block at %" PRIu64 " is %s%s", di->ino, addr, why,
				   ck->repair ? ": chain cut there" : "");
			if (!ck->repair) {
				break;
			}
			if (prev == 0) {
				di->xattr_blk = 0;
				*changed = true;
				break;
			}
			err = dev_read(ck->dev, ck->blk, LUNFS_META_BLOCK_SIZE, prev);
			if (err < 0) {
				goto out;
			}
			xb.ents = ents;
			err = xattr_blk_decode(&ck->codec, ck->blk, prev, &xb);
			if (err == 0) {
				xb.next = 0;
				err = xattr_blk_encode(&ck->codec, &xb, prev, ck->blk);
			}
			if (err == 0) {
				err = ck_write(ck, ck->blk, LUNFS_META_BLOCK_SIZE, prev);
			}
			goto out;
		}
		ck->r->meta_blocks++;
		prev = addr;
		addr = xb.next;
	}
out:
	free(ents);
	return err;
}

static int ck_wblk_cmp(const void *a, const void *b)
{
	const struct ck_wblk *x = a, *y = b;

	return x->lblk < y->lblk ? -1 : x->lblk > y->lblk;
}

/* A symlink's target must be readable: inline, or in blocks 0 and 1. */
static const char *ck_symlink_why(struct ck *ck, const struct lunfs_inode *di, struct ck_walk *w)
{
	struct lunfs_symlink_blk *sl;
	uint64_t left = di->size;
	const char *why = NULL;

	if (di->flags & LUNFS_INODE_INLINE) {
		return di->size > LUNFS_INODE_INLINE_SIZE || di->map_height != 0 || di->size == 0 ?
			       "inline target of a wrong size" : NULL;
	}
	if (di->size == 0 || di->size > 2u * LUNFS_BLOCK_PAYLOAD) {
		return "target length out of range";
	}
	ck_qsort(w->blks, w->nblks, sizeof(w->blks[0]), ck_wblk_cmp);
	if (w->nblks != (di->size > LUNFS_BLOCK_PAYLOAD ? 2u : 1u)) {
		return "target blocks missing";
	}
	sl = malloc(sizeof(*sl));
	if (sl == NULL) {
		return "out of memory";
	}
	for (size_t i = 0; i < w->nblks && why == NULL; i++) {
		uint64_t want = left > LUNFS_BLOCK_PAYLOAD ? LUNFS_BLOCK_PAYLOAD : left;

		if (w->blks[i].lblk != i || dev_read(ck->dev, ck->blk, LUNFS_META_BLOCK_SIZE, w->blks[i].addr) < 0 ||
		    symlink_blk_decode(&ck->codec, ck->blk, w->blks[i].addr, sl) != 0 || sl->ino != di->ino ||
		    sl->len != want) {
			why = "target block corrupt";
		}
		left -= want;
	}
	free(sl);
	return why;
}

static int ck_inode_usage(struct ck *ck, struct ck_inode *ci, struct lunfs_inode *di, uint64_t rec_addr)
{
	uint32_t type = di->mode & S_IFMT;
	bool changed = false;
	struct ck_walk w;
	int err = ck_walk_init(&w, ck, CK_WALK_MARK, di->ino, di->map_unit);

	if (err < 0) {
		return err;
	}
	err = ck_walk_map(&w, di, &changed);
	if (err < 0) {
		goto out;
	}
	if (type == S_IFREG) {
		uint64_t want = w.mapped * ck->sb.file_block_size;

		ck->r->file_blocks += w.mapped;
		if (di->alloc_bytes != want) {
			ck_problem(ck, CHECK_PB_INODE_FIELD, ck->repair,
				   "inode %" PRIu64 ": alloc_bytes %" PRIu64 ", its map holds %" PRIu64 " bytes%s",
				   di->ino, di->alloc_bytes, want, ck->repair ? ": fixed" : "");
			di->alloc_bytes = want;
			changed = true;
		}
	} else {
		ck->r->meta_blocks += w.mapped;
	}
	if (type == S_IFLNK) {
		const char *why = ck_symlink_why(ck, di, &w);

		if (why != NULL) {
			ck_problem(ck, CHECK_PB_SYMLINK, ck->repair, "symlink %" PRIu64 ": %s%s", di->ino, why,
				   ck->repair ? ": removed" : "");
			if (ck->repair) {
				ci->state = CK_I_RECLAIM;
			}
		}
	}
	err = ck_xattrs(ck, di, &changed);
	if (err < 0) {
		goto out;
	}
	if (changed && ck->repair && ci->state == CK_I_OK) {
		err = ck_inode_write(ck, di, rec_addr);
	}
out:
	ck_walk_fini(&w);
	return err;
}

/* Does the record fit the format's rules for its type? */
static const char *ck_inode_why(const struct lunfs_inode *di)
{
	uint32_t type = di->mode & S_IFMT;

	if (di->mode == 0) {
		return "a freed record";
	}
	if (type == S_IFREG) {
		return di->map_height != 0 && di->map_unit != LUNFS_MAP_FILE ? "a file with a metadata map" : NULL;
	}
	if (type == S_IFDIR || type == S_IFLNK) {
		return di->map_height != 0 && di->map_unit != LUNFS_MAP_META ? "a file map on a directory or symlink" : NULL;
	}
	return di->map_height != 0 ? "a map on a special file" : NULL;
}

static int ck_inodes(struct ck *ck)
{
	uint64_t total = 0, done = 0, slot = ck->sb.inode_slot_size;
	uint8_t *buf = dev_buf_alloc(CK_INODE_CHUNK * slot);
	struct lunfs_inode *di = malloc(sizeof(*di));
	int err = 0;

	if (buf == NULL || di == NULL) {
		err = -ENOMEM;
		goto out;
	}
	for (uint64_t c = 0; c < ck->sb.cluster_count; c++) {
		struct ck_cluster *cl = &ck->cl[c];

		if (cl->type == LUNFS_CLUSTER_INODE) {
			for (uint64_t w = 0; w < (cl->hdr.units_total + 63) / 64; w++) {
				total += (uint64_t)__builtin_popcountll(cl->disk[w]);
			}
			total -= cl->hdr.header_units;
		}
	}
	for (uint64_t c = 0; c < ck->sb.cluster_count; c++) {
		struct ck_cluster *cl = &ck->cl[c];

		if (cl->type != LUNFS_CLUSTER_INODE) {
			continue;
		}
		for (uint64_t u0 = cl->hdr.header_units; u0 < cl->hdr.units_total; u0 += CK_INODE_CHUNK) {
			uint64_t n = cl->hdr.units_total - u0 < CK_INODE_CHUNK ? cl->hdr.units_total - u0 : CK_INODE_CHUNK;
			bool any = false;

			for (uint64_t u = u0; u < u0 + n && !any; u++) {
				any = bit_get(cl->disk, u) || (cl->bm_bad && bit_get(cl->quiet, u));
			}
			if (!any) {
				continue;
			}
			err = dev_read(ck->dev, buf, n * slot, ck_unit_addr(cl, u0));
			if (err < 0) {
				goto out;
			}
			for (uint64_t u = u0; u < u0 + n; u++) {
				bool alloc = bit_get(cl->disk, u);
				bool guess = !alloc && cl->bm_bad && bit_get(cl->quiet, u);
				uint64_t ino = c * cl->hdr.units_total + u;
				uint64_t rec_addr = ck_unit_addr(cl, u) + ck->sb.sector_size;
				const char *why;
				struct ck_inode *ci;
				int derr;

				if (!alloc && !guess) {
					continue;
				}
				derr = inode_decode(&ck->codec, buf + (u - u0) * slot + ck->sb.sector_size, rec_addr, ino, di);
				if (guess && (derr != 0 || di->mode == 0)) {
					continue; /* an untrusted bitmap: a slot without a live record is free */
				}
				ci = ck_inode_add(ck, ino);
				if (ci == NULL) {
					err = -ENOMEM;
					goto out;
				}
				why = derr != 0 ? ck_err(derr) : ck_inode_why(di);
				if (why != NULL) {
					ci->state = CK_I_BAD;
					ck_problem(ck, CHECK_PB_INODE, ck->repair,
						   "inode %" PRIu64 ": its slot is allocated but the record at %" PRIu64
						   " is %s%s", ino, rec_addr, why, ck->repair ? ": slot freed" : "");
					if (ck->repair) {
						bit_set(cl->quiet, u, true);
					} else if (ck_ref(ck, cl, u) < 0) {
						err = -ENOMEM;
						goto out;
					}
					continue;
				}
				if (ck_ref(ck, cl, u) < 0) {
					err = -ENOMEM;
					goto out;
				}
				ci->mode = di->mode;
				ci->nlink = di->nlink;
				ci->flags = di->flags;
				ci->parent_ino = di->parent_ino;
				ck->r->inodes++;
				if ((di->mode & S_IFMT) == S_IFDIR) {
					ck->r->dirs++;
				}
				err = ck_inode_usage(ck, ci, di, rec_addr);
				if (err < 0) {
					goto out;
				}
				done++;
				if (ck->o->progress != NULL) {
					ck->o->progress(done, total > done ? total : done, ck->o->arg);
				}
			}
		}
	}
	err = 0;
out:
	free(di);
	dev_buf_free(buf);
	return err;
}

/* ---- directories: read ------------------------------------------------------------ */
struct ck_leafinfo {
	uint64_t lblk, prefix, next;
	uint32_t refs;
	uint16_t depth;
	bool overflow;
};

static int ck_leafinfo_cmp(const void *a, const void *b)
{
	const struct ck_leafinfo *x = a, *y = b;

	return x->lblk < y->lblk ? -1 : x->lblk > y->lblk;
}

static struct ck_leafinfo *ck_leaf_find(struct ck_leafinfo *l, size_t n, uint64_t lblk)
{
	struct ck_leafinfo key = { .lblk = lblk };

	return ck_bsearch(&key, l, n, sizeof(*l), ck_leafinfo_cmp);
}

struct ck_dirbuf {
	struct lunfs_dirent *e;
	size_t n, cap;
};

static int ck_dirbuf_add(struct ck_dirbuf *d, const struct lunfs_dirent *e)
{
	if (d->n == d->cap) {
		size_t ncap = d->cap == 0 ? 64 : d->cap * 2;
		struct lunfs_dirent *p;

		if (ncap > CK_MAX_DIR_ENTRIES) {
			return -EFBIG;
		}
		p = realloc(d->e, ncap * sizeof(*p));
		if (p == NULL) {
			return -ENOMEM;
		}
		d->e = p;
		d->cap = ncap;
	}
	d->e[d->n++] = *e;
	return 0;
}

/* Report a directory problem once per directory and category. */
#define CK_DIR_PB(ck, report, bad, ...) do {                                  \
		if (report) {                                                   \
			ck_problem(ck, CHECK_PB_DIR, (ck)->repair, __VA_ARGS__); \
		}                                                               \
		*(bad) = true;                                                  \
	} while (0)

/*
 * Read directory di: every entry of every leaf that decodes (hashes
 * recomputed and checked), and whether its structure is consistent (*bad):
 * table blocks cover 2^global_depth slots, each slot names a leaf whose
 * local depth and prefix fit the slot, each leaf is named by exactly the
 * 2^(global - local) slots of its prefix, state counters match.
 */
static int ck_dir_read(struct ck *ck, const struct lunfs_inode *di, bool report, struct ck_dirbuf *out,
		       bool *bad)
{
	struct lunfs_dir_state ds;
	struct ck_walk w;
	struct lunfs_dir_table *tb = malloc(sizeof(*tb));
	struct lunfs_dir_leaf lf;
	struct ck_leafinfo *leaves = NULL;
	size_t nleaves = 0;
	uint64_t *slots = NULL, nslots = 0, ntb = 0, maxleaf = 0;
	const char *fix = ck->repair ? ": directory rebuilt" : "";
	bool gd_ok;
	int err;

	*bad = false;
	inode_dir_state_get(di, &ds);
	gd_ok = ds.global_depth <= LUNFS_DIR_MAX_DEPTH;
	err = ck_walk_init(&w, ck, CK_WALK_COLLECT, di->ino, LUNFS_MAP_META);
	if (err < 0 || tb == NULL) {
		free(tb);
		return err < 0 ? err : -ENOMEM;
	}
	err = ck_walk_map(&w, (struct lunfs_inode *)di, NULL);
	if (err < 0) {
		goto out;
	}
	ck_qsort(w.blks, w.nblks, sizeof(w.blks[0]), ck_wblk_cmp);
	if (!gd_ok) {
		CK_DIR_PB(ck, report, bad, "directory %" PRIu64 ": global depth %" PRIu32 " is over 20%s", di->ino,
			  ds.global_depth, fix);
	} else if (w.nblks > 0) {
		nslots = 1ull << ds.global_depth;
		ntb = (nslots + LUNFS_DIR_TABLE_SLOTS - 1) / LUNFS_DIR_TABLE_SLOTS;
		slots = calloc(nslots, sizeof(*slots));
		if (slots == NULL) {
			err = -ENOMEM;
			goto out;
		}
	}
	leaves = calloc(w.nblks + 1, sizeof(*leaves));
	if (leaves == NULL) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < w.nblks; i++) {
		uint64_t lblk = w.blks[i].lblk, addr = w.blks[i].addr;

		err = dev_read(ck->dev, ck->blk, LUNFS_META_BLOCK_SIZE, addr);
		if (err < 0) {
			goto out;
		}
		if (lblk < LUNFS_DIR_FIRST_LEAF) {
			if (!gd_ok) {
				continue;
			}
			if (lblk >= ntb) {
				CK_DIR_PB(ck, report, bad, "directory %" PRIu64 ": table block %" PRIu64
					  " is beyond its depth%s", di->ino, lblk, fix);
				continue;
			}
			err = dir_table_decode(&ck->codec, ck->blk, addr, tb);
			if (err != 0 || tb->ino != di->ino || tb->first_slot != lblk * LUNFS_DIR_TABLE_SLOTS) {
				CK_DIR_PB(ck, report, bad, "directory %" PRIu64 ": table block %" PRIu64 " at %" PRIu64
					  " is %s%s", di->ino, lblk, addr, err != 0 ? ck_err(err) : "misplaced", fix);
				err = 0;
				continue;
			}
			for (unsigned s = 0; s < LUNFS_DIR_TABLE_SLOTS; s++) {
				uint64_t slot = tb->first_slot + s;

				if (slot < nslots) {
					slots[slot] = tb->leaf[s];
				} else if (tb->leaf[s] != 0) {
					CK_DIR_PB(ck, report, bad, "directory %" PRIu64 ": slot %" PRIu64
						  " is set beyond the table%s", di->ino, slot, fix);
					break;
				}
			}
			continue;
		}
		lf.ents = ck->ents;
		err = dir_leaf_decode(&ck->codec, ck->blk, addr, &lf);
		if (err != 0 || lf.ino != di->ino) {
			CK_DIR_PB(ck, report, bad, "directory %" PRIu64 ": leaf block %" PRIu64 " at %" PRIu64
				  " is %s: its entries are lost%s", di->ino, lblk, addr,
				  err != 0 ? ck_err(err) : "owned by another inode", fix);
			err = 0;
			continue;
		}
		leaves[nleaves].lblk = lblk;
		leaves[nleaves].prefix = lf.prefix;
		leaves[nleaves].depth = lf.local_depth;
		leaves[nleaves].next = lf.next;
		nleaves++;
		maxleaf = lblk;
		for (unsigned k = 0; k < lf.nentries; k++) {
			struct lunfs_dirent *e = &lf.ents[k];
			uint64_t h = dir_name_hash(ck->sb.dir_hash_key, e->name, e->name_len);
			uint64_t mask = lf.local_depth == 0 ? 0 : ~0ull << (64 - lf.local_depth);

			if (h != e->hash || (h & mask) != lf.prefix) {
				CK_DIR_PB(ck, report, bad, "directory %" PRIu64 ": entry '%s' has a wrong hash or "
					  "is in the wrong leaf%s", di->ino, e->name, fix);
				e->hash = h;
			}
			if (k > 0 && e->hash == lf.ents[k - 1].hash && strcmp(e->name, lf.ents[k - 1].name) == 0) {
				CK_DIR_PB(ck, report, bad, "directory %" PRIu64 ": name '%s' appears twice%s",
					  di->ino, e->name, fix);
				continue;
			}
			err = ck_dirbuf_add(out, e);
			if (err < 0) {
				goto out;
			}
		}
	}
	/* Slots against leaves. */
	for (uint64_t s = 0; s < nslots; s++) {
		struct ck_leafinfo *l = ck_leaf_find(leaves, nleaves, slots[s]);
		uint64_t top;

		if (l == NULL) {
			CK_DIR_PB(ck, report, bad, "directory %" PRIu64 ": slot %" PRIu64 " names no readable leaf%s",
				  di->ino, s, fix);
			break;
		}
		top = ds.global_depth == 0 ? 0 : s << (64 - ds.global_depth);
		if (l->depth > ds.global_depth ||
		    (l->depth > 0 && (top & (~0ull << (64 - l->depth))) != l->prefix)) {
			CK_DIR_PB(ck, report, bad, "directory %" PRIu64 ": slot %" PRIu64 " names leaf %" PRIu64
				  " whose depth or prefix does not fit%s", di->ino, s, l->lblk, fix);
			break;
		}
		l->refs++;
	}
	for (size_t i = 0; i < nleaves; i++) {
		struct ck_leafinfo *n = leaves[i].next != 0 ? ck_leaf_find(leaves, nleaves, leaves[i].next) : NULL;

		if (n != NULL) {
			n->overflow = true;
		}
	}
	for (size_t i = 0; i < nleaves && !*bad; i++) {
		struct ck_leafinfo *l = &leaves[i];
		uint64_t want = l->overflow ? 0 : 1ull << (ds.global_depth - l->depth);

		if (l->depth <= ds.global_depth && l->refs != want) {
			CK_DIR_PB(ck, report, bad, "directory %" PRIu64 ": leaf %" PRIu64 " is named by %" PRIu32
				  " slots, not %" PRIu64 "%s", di->ino, l->lblk, l->refs, want, fix);
		}
	}
	if (!*bad && (ds.nentries != out->n || ds.nleaves != nleaves ||
		      (nleaves > 0 && ds.next_lblk <= maxleaf))) {
		if (report) {
			ck_problem(ck, CHECK_PB_INODE_FIELD, ck->repair,
				   "directory %" PRIu64 ": state says %" PRIu64 " entries and %" PRIu64
				   " leaves, found %zu and %zu%s", di->ino, ds.nentries, ds.nleaves, out->n,
				   nleaves, fix);
		}
		*bad = true;
	}
	err = 0;
out:
	free(slots);
	free(leaves);
	free(tb);
	ck_walk_fini(&w);
	return err;
}

/* ---- allocation by the repairer ----------------------------------------------------- */
/* Type a free cluster as `type` in the model; pass 9 writes its header area
 * and then its summary (so an interrupted run leaves a summary-less cluster
 * or a header nobody reads, both free by the format's rules). */
static int ck_type_cluster(struct ck *ck, uint8_t type, struct ck_cluster **out)
{
	for (uint64_t c = 0; c < ck->sb.cluster_count; c++) {
		struct ck_cluster *cl = &ck->cl[c];
		struct lunfs_cluster_hdr old;
		uint64_t start = layout_cluster_addr(&ck->sb, c);
		int err;

		if (cl->type != LUNFS_CLUSTER_FREE) {
			continue;
		}
		err = cluster_geometry(&ck->sb, type, &cl->hdr);
		if (err < 0) {
			return err;
		}
		cl->hdr.cluster_index = c;
		cl->hdr.cluster_start = start;
		cl->hdr.type_gen = 1;
		err = dev_read(ck->dev, ck->blk, LUNFS_META_BLOCK_SIZE, start);
		if (err < 0) {
			return err;
		}
		if (cluster_hdr_decode(&ck->codec, ck->blk, start, &old) == 0) {
			cl->hdr.type_gen = old.type_gen + 1;
		}
		cl->type = type;
		cl->fresh = true;
		cl->bm_bad = true;
		cl->rc_bad = type == LUNFS_CLUSTER_FILE;
		cl->hdr_bad = true;
		err = ck_cluster_alloc_maps(ck, cl);
		if (err < 0) {
			return err;
		}
		for (uint64_t u = 0; u < cl->hdr.header_units; u++) {
			bit_set(cl->disk, u, true);
		}
		for (uint64_t u = 0; u < cl->hdr.units_total; u++) {
			bit_set(cl->quiet, u, true);
		}
		*out = cl;
		return 0;
	}
	return -ENOSPC;
}

/* Take a unit nobody references (preferring ones the bitmap has free). */
static int ck_alloc(struct ck *ck, uint8_t type, uint64_t *addr)
{
	for (int pass = 0; pass < 3; pass++) {
		for (uint64_t c = 0; c < ck->sb.cluster_count; c++) {
			struct ck_cluster *cl = &ck->cl[c];

			if (cl->type != type) {
				continue;
			}
			for (uint64_t u = cl->hdr.header_units; u < cl->hdr.units_total; u++) {
				if (bit_get(cl->used, u) || (pass == 0 && bit_get(cl->disk, u))) {
					continue;
				}
				bit_set(cl->used, u, true);
				bit_set(cl->quiet, u, true);
				*addr = ck_unit_addr(cl, u);
				return 0;
			}
		}
		if (pass == 1) {
			struct ck_cluster *cl;
			int err = ck_type_cluster(ck, type, &cl);

			if (err < 0) {
				return err;
			}
		}
	}
	return -ENOSPC;
}

/* ---- directories: build ------------------------------------------------------------- */
static int ck_dirent_cmp(const void *a, const void *b)
{
	const struct lunfs_dirent *x = a, *y = b;

	if (x->hash != y->hash) {
		return x->hash < y->hash ? -1 : 1;
	}
	return strcmp(x->name, y->name);
}

struct ck_bleaf {
	size_t lo, hi;
	uint64_t prefix;
	uint16_t depth;
};

struct ck_mnode {
	uint64_t first, addr;
	unsigned level;
	size_t lo, hi;                /* children (or blocks) range in the level below */
};

/* Write a map covering blocks[] (sorted by lblk, addresses allocated) and
 * return its root and height. Bottom-up: group by the span of each level. */
static int ck_map_build(struct ck *ck, uint64_t ino, const struct ck_wblk *blks, size_t n,
			uint64_t *root, uint8_t *height, uint64_t **nodes_out, size_t *nnodes_out)
{
	struct ck_mnode *lv = NULL, *up = NULL;
	struct lunfs_map_leaf *ml = malloc(sizeof(*ml));
	struct lunfs_map_inner *mi = malloc(sizeof(*mi));
	uint64_t *nodes = NULL;
	size_t nlv = 0, nnodes = 0, cap_nodes = 0;
	unsigned h = 1;
	int err = 0;

	if (ml == NULL || mi == NULL) {
		err = -ENOMEM;
		goto out;
	}
	while (map_span(h) <= blks[n - 1].lblk) {
		h++;
	}
	lv = calloc(n, sizeof(*lv));
	if (lv == NULL) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n;) {
		size_t j = i;
		uint64_t first = blks[i].lblk - blks[i].lblk % LUNFS_MAP_LEAF_FANOUT;

		while (j < n && blks[j].lblk < first + LUNFS_MAP_LEAF_FANOUT) {
			j++;
		}
		lv[nlv++] = (struct ck_mnode){ .first = first, .level = 1, .lo = i, .hi = j };
		i = j;
	}
	for (unsigned level = 1;; level++) {
		for (size_t k = 0; k < nlv; k++) {
			err = ck_alloc(ck, LUNFS_CLUSTER_META, &lv[k].addr);
			if (err < 0) {
				goto out;
			}
			if (nnodes == cap_nodes) {
				size_t nc = cap_nodes == 0 ? 16 : cap_nodes * 2;
				uint64_t *p = realloc(nodes, nc * sizeof(*p));

				if (p == NULL) {
					err = -ENOMEM;
					goto out;
				}
				nodes = p;
				cap_nodes = nc;
			}
			nodes[nnodes++] = lv[k].addr;
			if (level == 1) {
				memset(ml, 0, sizeof(*ml));
				ml->ino = ino;
				ml->first_lblk = lv[k].first;
				for (size_t b = lv[k].lo; b < lv[k].hi; b++) {
					struct lunfs_map_entry *e = &ml->e[blks[b].lblk - lv[k].first];

					e->addr = blks[b].addr;
					e->written = ~0ull;
				}
				map_leaf_encode(&ck->codec, ml, lv[k].addr, ck->blk);
			} else {
				memset(mi, 0, sizeof(*mi));
				mi->ino = ino;
				mi->first_lblk = lv[k].first;
				mi->level = (uint8_t)level;
				for (size_t b = lv[k].lo; b < lv[k].hi; b++) {
					mi->child[(up[b].first - lv[k].first) / map_span(level - 1)] = up[b].addr;
				}
				map_inner_encode(&ck->codec, mi, lv[k].addr, ck->blk);
			}
			err = ck_write(ck, ck->blk, LUNFS_META_BLOCK_SIZE, lv[k].addr);
			if (err < 0) {
				goto out;
			}
		}
		if (level == h) {
			break;
		}
		/* Group this level's nodes under the next level. */
		free(up);
		up = lv;
		lv = calloc(nlv, sizeof(*lv));
		if (lv == NULL) {
			err = -ENOMEM;
			goto out;
		}
		{
			size_t nup = nlv;
			uint64_t span = map_span(level + 1);

			nlv = 0;
			for (size_t i = 0; i < nup;) {
				size_t j = i;
				uint64_t first = up[i].first - up[i].first % span;

				while (j < nup && up[j].first < first + span) {
					j++;
				}
				lv[nlv++] = (struct ck_mnode){ .first = first, .level = level + 1, .lo = i, .hi = j };
				i = j;
			}
		}
	}
	*root = lv[0].addr;
	*height = (uint8_t)h;
	*nodes_out = nodes;
	*nnodes_out = nnodes;
	nodes = NULL;
out:
	free(nodes);
	free(up);
	free(lv);
	free(mi);
	free(ml);
	return err;
}

static bool ck_leaf_fits(const struct lunfs_dirent *e, size_t lo, size_t hi)
{
	uint32_t used = 0;

	if (hi - lo > LUNFS_DIR_LEAF_MAX_ENTRIES) {
		return false;
	}
	for (size_t i = lo; i < hi; i++) {
		used += dirent_rec_len(e[i].name_len);
	}
	return used <= LUNFS_DIR_LEAF_DATA;
}

/*
 * Rewrite directory `ino` (record *di at rec_addr) to hold exactly ents[]:
 * an extendible hash built in bulk: a prefix whose entries do not fit one
 * leaf is split on its next bit, up to depth 20 (entries that still do not
 * fit are dropped and reported). New blocks are allocated; the old ones are
 * released once the inode points at the new tree.
 */
static int ck_dir_build(struct ck *ck, struct lunfs_inode *di, uint64_t rec_addr, struct lunfs_dirent *ents,
			size_t n)
{
	struct ck_walk old;
	struct ck_bleaf *lv = NULL;
	struct ck_wblk *blks = NULL;
	uint64_t *slots = NULL, *nodes = NULL, nslots, ntb;
	size_t nlv = 0, cap_lv = 0, nnodes = 0, nblks = 0;
	struct ck_bleaf *stack = NULL;
	size_t nstack = 0;
	unsigned gd = 0;
	struct lunfs_dir_state ds;
	struct lunfs_dir_table *tb = malloc(sizeof(*tb));
	int err = ck_walk_init(&old, ck, CK_WALK_COLLECT, di->ino, LUNFS_MAP_META);

	if (err < 0 || tb == NULL) {
		err = err < 0 ? err : -ENOMEM;
		goto out;
	}
	err = ck_walk_map(&old, di, NULL);
	if (err < 0) {
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		ents[i].hash = dir_name_hash(ck->sb.dir_hash_key, ents[i].name, ents[i].name_len);
	}
	ck_qsort(ents, n, sizeof(*ents), ck_dirent_cmp);
	memset(&ds, 0, sizeof(ds));
	di->map_root = 0;
	di->map_height = 0;
	di->map_unit = LUNFS_MAP_META;
	di->size = 0;
	if (n > 0) {
		stack = malloc((LUNFS_DIR_MAX_DEPTH + 2) * sizeof(*stack));
		if (stack == NULL) {
			err = -ENOMEM;
			goto out;
		}
		stack[nstack++] = (struct ck_bleaf){ .lo = 0, .hi = n, .prefix = 0, .depth = 0 };
		while (nstack > 0) {
			struct ck_bleaf b = stack[--nstack];

			if (ck_leaf_fits(ents, b.lo, b.hi) || b.depth == LUNFS_DIR_MAX_DEPTH) {
				if (nlv == cap_lv) {
					size_t nc = cap_lv == 0 ? 16 : cap_lv * 2;
					struct ck_bleaf *p = realloc(lv, nc * sizeof(*p));

					if (p == NULL) {
						err = -ENOMEM;
						goto out;
					}
					lv = p;
					cap_lv = nc;
				}
				while (!ck_leaf_fits(ents, b.lo, b.hi)) {
					b.hi--;
					ck_note(ck, "directory %" PRIu64 ": entry '%s' cannot be kept (hash collisions)",
						di->ino, ents[b.hi].name);
					ents[b.hi].ino = 0;
				}
				lv[nlv++] = b;
				gd = b.depth > gd ? b.depth : gd;
				continue;
			}
			{
				uint64_t bit = 1ull << (63 - b.depth);
				size_t mid = b.lo;

				while (mid < b.hi && (ents[mid].hash & bit) == 0) {
					mid++;
				}
				/* Depth-first, the "1" half below the "0" half: the
				 * stack never holds more than one item per depth. */
				stack[nstack++] = (struct ck_bleaf){ .lo = mid, .hi = b.hi, .prefix = b.prefix | bit,
								     .depth = (uint16_t)(b.depth + 1) };
				stack[nstack++] = (struct ck_bleaf){ .lo = b.lo, .hi = mid, .prefix = b.prefix,
								     .depth = (uint16_t)(b.depth + 1) };
			}
		}
		nslots = 1ull << gd;
		ntb = (nslots + LUNFS_DIR_TABLE_SLOTS - 1) / LUNFS_DIR_TABLE_SLOTS;
		slots = calloc(nslots, sizeof(*slots));
		blks = calloc(ntb + nlv, sizeof(*blks));
		if (slots == NULL || blks == NULL) {
			err = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < ntb + nlv; i++) {
			blks[i].lblk = i < ntb ? i : LUNFS_DIR_FIRST_LEAF + (i - ntb);
			err = ck_alloc(ck, LUNFS_CLUSTER_META, &blks[i].addr);
			if (err < 0) {
				goto out;
			}
		}
		nblks = ntb + nlv;
		for (size_t i = 0; i < nlv; i++) {
			uint64_t first = gd == 0 ? 0 : lv[i].prefix >> (64 - gd);
			uint64_t count = 1ull << (gd - lv[i].depth);
			struct lunfs_dir_leaf dl;
			size_t k = 0;

			for (uint64_t s = first; s < first + count; s++) {
				slots[s] = LUNFS_DIR_FIRST_LEAF + i;
			}
			memset(&dl, 0, sizeof(dl));
			dl.ino = di->ino;
			dl.local_depth = lv[i].depth;
			dl.prefix = lv[i].prefix;
			dl.ents = ck->ents;
			for (size_t e = lv[i].lo; e < lv[i].hi; e++) {
				if (ents[e].ino != 0) {
					ck->ents[k++] = ents[e];
				}
			}
			dl.nentries = (uint16_t)k;
			ds.nentries += k;
			err = dir_leaf_encode(&ck->codec, &dl, blks[ntb + i].addr, ck->blk);
			if (err == 0) {
				err = ck_write(ck, ck->blk, LUNFS_META_BLOCK_SIZE, blks[ntb + i].addr);
			}
			if (err < 0) {
				goto out;
			}
		}
		for (uint64_t b = 0; b < ntb; b++) {
			memset(tb, 0, sizeof(*tb));
			tb->ino = di->ino;
			tb->first_slot = b * LUNFS_DIR_TABLE_SLOTS;
			for (unsigned s = 0; s < LUNFS_DIR_TABLE_SLOTS && tb->first_slot + s < nslots; s++) {
				tb->leaf[s] = slots[tb->first_slot + s];
			}
			dir_table_encode(&ck->codec, tb, blks[b].addr, ck->blk);
			err = ck_write(ck, ck->blk, LUNFS_META_BLOCK_SIZE, blks[b].addr);
			if (err < 0) {
				goto out;
			}
		}
		err = ck_map_build(ck, di->ino, blks, nblks, &di->map_root, &di->map_height, &nodes, &nnodes);
		if (err < 0) {
			goto out;
		}
		ds.global_depth = gd;
		ds.nleaves = nlv;
		ds.next_lblk = LUNFS_DIR_FIRST_LEAF + nlv;
		di->size = (uint64_t)LUNFS_META_BLOCK_SIZE * nblks;
	}
	inode_dir_state_set(di, &ds);
	err = ck_inode_write(ck, di, rec_addr);
	if (err < 0) {
		goto out;
	}
	/* The old tree is unreferenced now. */
	for (size_t i = 0; i < old.nnodes; i++) {
		ck_unref_addr(ck, old.nodes[i], LUNFS_CLUSTER_META);
	}
	for (size_t i = 0; i < old.nblks; i++) {
		ck_unref_addr(ck, old.blks[i].addr, LUNFS_CLUSTER_META);
	}
out:
	free(nodes);
	free(slots);
	free(blks);
	free(stack);
	free(lv);
	free(tb);
	ck_walk_fini(&old);
	return err;
}

/* ---- pass 6: directory contents ------------------------------------------------------ */
static int ck_change_add(struct ck *ck, uint64_t dir, bool add, uint64_t ino, uint8_t type, const char *name)
{
	struct ck_dchange *c;

	if (ck->nchanges == ck->cap_changes) {
		size_t nc = ck->cap_changes == 0 ? 16 : ck->cap_changes * 2;
		struct ck_dchange *p = realloc(ck->changes, nc * sizeof(*p));

		if (p == NULL) {
			return -ENOMEM;
		}
		ck->changes = p;
		ck->cap_changes = nc;
	}
	c = &ck->changes[ck->nchanges++];
	memset(c, 0, sizeof(*c));
	c->dir = dir;
	c->add = add;
	c->ino = ino;
	c->type = type;
	snprintf(c->name, sizeof(c->name), "%s", name);
	return 0;
}

static int ck_edge_add(struct ck *ck, uint64_t parent, uint64_t child, const char *name)
{
	struct ck_edge *e;

	if (ck->nedges == ck->cap_edges) {
		size_t nc = ck->cap_edges == 0 ? 16 : ck->cap_edges * 2;
		struct ck_edge *p = realloc(ck->edges, nc * sizeof(*p));

		if (p == NULL) {
			return -ENOMEM;
		}
		ck->edges = p;
		ck->cap_edges = nc;
	}
	e = &ck->edges[ck->nedges++];
	memset(e, 0, sizeof(*e));
	e->parent = parent;
	e->child = child;
	snprintf(e->name, sizeof(e->name), "%s", name);
	return 0;
}

static int ck_dirs(struct ck *ck)
{
	struct lunfs_inode *di = malloc(sizeof(*di));
	int err = 0;

	if (di == NULL) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < ck->ninodes; i++) {
		struct ck_dirbuf db = { 0 };
		uint64_t dino = ck->inodes[i].ino, rec_addr;
		bool bad = false;

		if (ck->inodes[i].state != CK_I_OK || (ck->inodes[i].mode & S_IFMT) != S_IFDIR) {
			continue;
		}
		err = ck_inode_read(ck, dino, di, &rec_addr);
		if (err < 0) {
			break;
		}
		err = ck_dir_read(ck, di, true, &db, &bad);
		if (err == -EFBIG) {
			ck_problem(ck, CHECK_PB_DIR, false, "directory %" PRIu64 ": too many entries to check", dino);
			err = 0;
			free(db.e);
			continue;
		}
		if (err < 0) {
			free(db.e);
			break;
		}
		if (bad && ck->repair) {
			ck->inodes[i].rewrite_dir = true;
		}
		for (size_t k = 0; k < db.n && err == 0; k++) {
			struct lunfs_dirent *e = &db.e[k];
			struct ck_inode *t = ck_inode_find(ck, e->ino);

			if (t == NULL || t->state == CK_I_BAD) {
				ck_problem(ck, CHECK_PB_DIRENT, ck->repair,
					   "directory %" PRIu64 ": entry '%s' names inode %" PRIu64
					   ", which is not in use%s", dino, e->name, e->ino,
					   ck->repair ? ": entry removed" : "");
				err = ck_change_add(ck, dino, false, 0, 0, e->name);
				ck->inodes[i].rewrite_dir |= ck->repair;
				continue;
			}
			if (t->state == CK_I_RECLAIM) {
				err = ck_change_add(ck, dino, false, 0, 0, e->name);
				ck->inodes[i].rewrite_dir = true;
				continue;
			}
			if (e->type != ck_mode_dt(t->mode)) {
				ck_problem(ck, CHECK_PB_DIRENT, ck->repair,
					   "directory %" PRIu64 ": entry '%s' has type %u, but inode %" PRIu64
					   " has type %u%s", dino, e->name, e->type, e->ino, ck_mode_dt(t->mode),
					   ck->repair ? ": fixed" : "");
				err = ck_change_add(ck, dino, false, e->ino, ck_mode_dt(t->mode), e->name);
				ck->inodes[i].rewrite_dir |= ck->repair;
			}
			if ((t->mode & S_IFMT) == S_IFDIR) {
				if (err == 0) {
					err = ck_edge_add(ck, dino, e->ino, e->name);
				}
				if (dino == ck->sb.root_ino && strcmp(e->name, CK_LOST_FOUND) == 0) {
					ck->lost_found = e->ino;
				}
			} else {
				t->links++;
			}
		}
		free(db.e);
		if (err < 0) {
			break;
		}
	}
	free(di);
	return err;
}

/* ---- pass 7: namespace --------------------------------------------------------------- */
static int ck_edge_cmp(const void *a, const void *b)
{
	const struct ck_edge *x = a, *y = b;

	return x->parent < y->parent ? -1 : x->parent > y->parent;
}

/* Mark everything reachable from `from` over kept edges (edges sorted by
 * parent). Iterative, with a queue bounded by the number of inodes. */
static int ck_reach(struct ck *ck, uint64_t from)
{
	uint64_t *q = malloc((ck->ninodes + 1) * sizeof(*q));
	size_t head = 0, tail = 0;
	struct ck_inode *ci = ck_inode_find(ck, from);

	if (q == NULL) {
		return -ENOMEM;
	}
	if (ci == NULL || ci->reached) {
		free(q);
		return 0;
	}
	ci->reached = true;
	q[tail++] = from;
	while (head < tail) {
		struct ck_edge key = { .parent = q[head++] };
		struct ck_edge *e = ck_bsearch(&key, ck->edges, ck->nedges, sizeof(key), ck_edge_cmp);

		if (e == NULL) {
			continue;
		}
		while (e > ck->edges && e[-1].parent == key.parent) {
			e--;
		}
		for (; e < ck->edges + ck->nedges && e->parent == key.parent; e++) {
			struct ck_inode *c = ck_inode_find(ck, e->child);

			if (e->keep && c != NULL && !c->reached && tail <= ck->ninodes) {
				c->reached = true;
				q[tail++] = e->child;
			}
		}
	}
	free(q);
	return 0;
}

#define CK_LF_PENDING UINT64_MAX /* lost+found to be created by apply */

static int ck_reconnect(struct ck *ck, struct ck_inode *ci, bool is_dir)
{
	char name[32];
	uint64_t lf = ck->lost_found != 0 ? ck->lost_found : CK_LF_PENDING;
	int err;

	snprintf(name, sizeof(name), "#%" PRIu64, ci->ino);
	ck_problem(ck, CHECK_PB_UNREACHABLE, ck->repair,
		   "%s %" PRIu64 " is not reachable from the root%s%s", is_dir ? "directory" : "inode", ci->ino,
		   ck->repair ? ": reconnected as /lost+found/" : "", ck->repair ? name : "");
	if (is_dir) {
		err = ck_edge_add(ck, lf, ci->ino, name);
		if (err < 0) {
			return err;
		}
		ck->edges[ck->nedges - 1].keep = true;
		ci->keeper_parent = lf;
	} else {
		ci->links++;
	}
	return ck->repair ? ck_change_add(ck, lf, true, ci->ino, ck_mode_dt(ci->mode), name) : 0;
}

static int ck_namespace(struct ck *ck)
{
	struct ck_inode *root = ck_inode_find(ck, ck->sb.root_ino);
	int err;

	/* Keeper edges: the entry that agrees with the child's parent_ino, else
	 * the first; an entry naming the root or its own directory never. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < ck->nedges; i++) {
			struct ck_edge *e = &ck->edges[i];
			struct ck_inode *c = ck_inode_find(ck, e->child);

			if (e->child == ck->sb.root_ino || e->child == e->parent || c->keeper_parent != 0) {
				continue;
			}
			if (pass == 1 || e->parent == c->parent_ino) {
				e->keep = true;
				c->keeper_parent = e->parent;
			}
		}
	}
	for (size_t i = 0; i < ck->nedges; i++) {
		struct ck_edge *e = &ck->edges[i];

		if (e->keep) {
			continue;
		}
		ck_problem(ck, CHECK_PB_DIR_LINK, ck->repair,
			   "directory %" PRIu64 ": entry '%s' names directory %" PRIu64
			   ", which already has a parent%s", e->parent, e->name, e->child,
			   ck->repair ? ": entry removed" : "");
		if (ck->repair) {
			err = ck_change_add(ck, e->parent, false, 0, 0, e->name);
			if (err < 0) {
				return err;
			}
		}
	}
	ck_qsort(ck->edges, ck->nedges, sizeof(ck->edges[0]), ck_edge_cmp);
	err = ck_reach(ck, ck->sb.root_ino);
	if (err < 0) {
		return err;
	}
	(void)root;
	/* Unreachable directories: tops first, then the cycles. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < ck->ninodes; i++) {
			struct ck_inode *ci = &ck->inodes[i];

			if (ci->state != CK_I_OK || (ci->mode & S_IFMT) != S_IFDIR || ci->reached) {
				continue;
			}
			if (pass == 0 && ci->keeper_parent != 0) {
				continue;
			}
			if (ci->keeper_parent != 0) {
				/* In a cycle (or under one): cut its entry. */
				for (size_t k = 0; k < ck->nedges; k++) {
					struct ck_edge *e = &ck->edges[k];

					if (e->keep && e->child == ci->ino) {
						e->keep = false;
						ck_problem(ck, CHECK_PB_DIR_LINK, ck->repair,
							   "directory %" PRIu64 " is in a cycle: entry '%s' in "
							   "directory %" PRIu64 "%s", ci->ino, e->name, e->parent,
							   ck->repair ? " removed" : "");
						if (ck->repair) {
							err = ck_change_add(ck, e->parent, false, 0, 0, e->name);
							if (err < 0) {
								return err;
							}
						}
					}
				}
			}
			err = ck_reconnect(ck, ci, true);
			if (err < 0) {
				return err;
			}
			ck_qsort(ck->edges, ck->nedges, sizeof(ck->edges[0]), ck_edge_cmp);
			err = ck_reach(ck, ci->ino);
			if (err < 0) {
				return err;
			}
		}
	}
	/* Other inodes nobody names: a dead host's orphan is reclaimed, any
	 * other goes to lost+found. */
	for (size_t i = 0; i < ck->ninodes; i++) {
		struct ck_inode *ci = &ck->inodes[i];
		uint64_t *slot = ck_map_get(&ck->orphans, ci->ino);

		if (ci->state != CK_I_OK || (ci->mode & S_IFMT) == S_IFDIR) {
			continue;
		}
		if (ci->links == 0 && (slot != NULL || (ci->flags & LUNFS_INODE_ORPHAN))) {
			if (slot != NULL) {
				ck_problem(ck, CHECK_PB_ORPHAN, ck->repair,
					   "inode %" PRIu64 ": orphan of host slot %" PRIu64 ", which is not "
					   "running%s", ci->ino, *slot - 1, ck->repair ? ": reclaimed" : "");
			} else {
				ck_problem(ck, CHECK_PB_ORPHAN, ck->repair,
					   "inode %" PRIu64 ": unlinked orphan in no orphan table%s", ci->ino,
					   ck->repair ? ": reclaimed" : "");
			}
			if (ck->repair) {
				ci->state = CK_I_RECLAIM;
			}
			continue;
		}
		if (ci->links == 0) {
			err = ck_reconnect(ck, ci, false);
			if (err < 0) {
				return err;
			}
		}
		if (slot != NULL && ci->links > 0) {
			ck_problem(ck, CHECK_PB_ORPHAN, ck->repair,
				   "inode %" PRIu64 " is in the orphan table of slot %" PRIu64 " but is linked%s",
				   ci->ino, *slot - 1, ck->repair ? ": removed from the table" : "");
		}
	}
	for (size_t i = 0; i < ck->nedges; i++) {
		struct ck_inode *p = ck_inode_find(ck, ck->edges[i].parent);

		if (ck->edges[i].keep && p != NULL) {
			p->subdirs++;
		}
	}
	return 0;
}

/* ---- pass 8: apply ----------------------------------------------------------------- */
static int ck_reclaim(struct ck *ck, struct ck_inode *ci)
{
	struct lunfs_inode *di = malloc(sizeof(*di));
	struct ck_walk w;
	uint64_t rec_addr, addr, lock_addr;
	struct ck_cluster *cl;
	uint64_t u;
	int err;

	if (di == NULL) {
		return -ENOMEM;
	}
	err = ck_inode_read(ck, ci->ino, di, &rec_addr);
	if (err != 0) {
		goto out;
	}
	err = ck_walk_init(&w, ck, CK_WALK_UNMARK, ci->ino, di->map_unit);
	if (err < 0) {
		goto out;
	}
	err = ck_walk_map(&w, di, NULL);
	ck_walk_fini(&w);
	if (err < 0) {
		goto out;
	}
	/* The xattr chain was validated in pass 5 (cut where bad). */
	for (addr = di->xattr_blk; addr != 0;) {
		struct lunfs_xattr_blk xb;
		struct lunfs_xattr *ents = malloc(LUNFS_XATTR_MAX_ENTRIES * sizeof(*ents));

		if (ents == NULL || ck_unit(ck, addr, LUNFS_CLUSTER_META, &cl, &u) < 0 ||
		    !bit_get(cl->used, u) || dev_read(ck->dev, ck->blk, LUNFS_META_BLOCK_SIZE, addr) < 0) {
			free(ents);
			break;
		}
		xb.ents = ents;
		err = xattr_blk_decode(&ck->codec, ck->blk, addr, &xb);
		free(ents);
		ck_unref(ck, cl, u);
		addr = err == 0 ? xb.next : 0;
	}
	err = layout_ino_addr(&ck->sb, ci->ino, &lock_addr);
	if (err == 0 && ck_unit(ck, lock_addr, LUNFS_CLUSTER_INODE, &cl, &u) == 0) {
		ck_unref(ck, cl, u);
	}
	/* A freed record keeps ino and generation (FORMAT.md 11). */
	{
		uint32_t gen = di->generation;

		memset(di, 0, sizeof(*di));
		di->ino = ci->ino;
		di->generation = gen;
		err = ck_inode_write(ck, di, rec_addr);
	}
out:
	free(di);
	return err;
}

static int ck_orphan_tables_clear(struct ck *ck)
{
	for (uint32_t j = 0; j < ck->sb.max_hosts; j++) {
		uint64_t jaddr = layout_journal_addr(&ck->sb, j);
		struct lunfs_jsb jsb;
		bool had = false;
		int err;

		if (ck->live[j] || j == ck->self_slot) {
			continue;
		}
		for (uint32_t k = 0; k < LUNFS_JOURNAL_ORPHAN_BLOCKS; k++) {
			uint64_t addr = jaddr + (1u + (uint64_t)k) * LUNFS_META_BLOCK_SIZE;
			struct lunfs_jorphan jo;

			err = dev_read(ck->dev, ck->blk, LUNFS_META_BLOCK_SIZE, addr);
			if (err < 0) {
				return err;
			}
			if (jorphan_decode(&ck->codec, ck->blk, addr, &jo) != 0) {
				continue;
			}
			for (unsigned i = 0; i < LUNFS_JORPHANS_PER_BLOCK; i++) {
				had |= jo.ino[i] != 0;
			}
			memset(ck->blk, 0, LUNFS_META_BLOCK_SIZE);
			err = ck_write(ck, ck->blk, LUNFS_META_BLOCK_SIZE, addr);
			if (err < 0) {
				return err;
			}
		}
		err = dev_read(ck->dev, ck->blk, LUNFS_META_BLOCK_SIZE, jaddr);
		if (err < 0) {
			return err;
		}
		if (jsb_decode(&ck->codec, ck->blk, jaddr, ck->sb.journal_size, &jsb) == 0 &&
		    (jsb.norphans != 0 || had)) {
			jsb.norphans = 0;
			jsb_encode(&ck->codec, &jsb, jaddr, ck->blk);
			err = ck_write(ck, ck->blk, LUNFS_META_BLOCK_SIZE, jaddr);
			if (err < 0) {
				return err;
			}
		}
	}
	return 0;
}

static int64_t ck_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int ck_lost_found_create(struct ck *ck)
{
	struct lunfs_inode *di = malloc(sizeof(*di));
	struct lunfs_lock lk;
	struct ck_inode *ci;
	struct ck_cluster *cl;
	uint64_t addr, u, ino;
	uint32_t gen = 1;
	int64_t now = ck_now_ns();
	struct lunfs_dir_state ds;
	int err;

	if (di == NULL) {
		return -ENOMEM;
	}
	err = ck_alloc(ck, LUNFS_CLUSTER_INODE, &addr);
	if (err < 0) {
		goto out;
	}
	ck_unit(ck, addr, LUNFS_CLUSTER_INODE, &cl, &u);
	ino = cl->hdr.cluster_index * cl->hdr.units_total + u;
	err = dev_read(ck->dev, ck->rec, ck->sb.sector_size, addr + ck->sb.sector_size);
	if (err < 0) {
		goto out;
	}
	if (inode_decode(&ck->codec, ck->rec, addr + ck->sb.sector_size, ino, di) == 0) {
		gen = di->generation + 1;
	}
	memset(&lk, 0, sizeof(lk));
	lk.kind = LUNFS_LOCK_KIND_INODE;
	lk.lock_id = ino;
	lk.version = 1;
	memset(ck->rec, 0, ck->sb.sector_size);
	lock_encode(&ck->codec, &lk, addr, ck->rec);
	err = ck_write(ck, ck->rec, ck->sb.sector_size, addr);
	if (err < 0) {
		goto out;
	}
	memset(di, 0, sizeof(*di));
	di->ino = ino;
	di->generation = gen;
	di->mode = S_IFDIR | 0700;
	di->nlink = 2;
	di->parent_ino = ck->sb.root_ino;
	di->map_unit = LUNFS_MAP_META;
	di->atime_ns = di->mtime_ns = di->ctime_ns = di->btime_ns = (uint64_t)now;
	memset(&ds, 0, sizeof(ds));
	inode_dir_state_set(di, &ds);
	err = ck_inode_write(ck, di, addr + ck->sb.sector_size);
	if (err < 0) {
		goto out;
	}
	ci = ck_inode_add(ck, ino);
	if (ci == NULL) {
		err = -ENOMEM;
		goto out;
	}
	ci->mode = di->mode;
	ci->nlink = 2;
	ci->parent_ino = ck->sb.root_ino;
	ci->keeper_parent = ck->sb.root_ino;
	ci->reached = true;
	ck->lost_found = ino;
	ck_note(ck, "created /lost+found (inode %" PRIu64 ")", ino);
	/* Pending references become real ones. */
	for (size_t i = 0; i < ck->nchanges; i++) {
		if (ck->changes[i].dir == CK_LF_PENDING) {
			ck->changes[i].dir = ino;
		}
		if (ck->changes[i].add && (ck->changes[i].type == 4) && ck->changes[i].dir == ino) {
			ci->subdirs++;
		}
	}
	for (size_t i = 0; i < ck->ninodes; i++) {
		if (ck->inodes[i].keeper_parent == CK_LF_PENDING) {
			ck->inodes[i].keeper_parent = ino;
		}
	}
	ck_inode_find(ck, ck->sb.root_ino)->subdirs++;
	err = ck_change_add(ck, ck->sb.root_ino, true, ino, 4, CK_LOST_FOUND);
out:
	free(di);
	return err;
}

static int ck_change_cmp(const void *a, const void *b)
{
	const struct ck_dchange *x = a, *y = b;

	return x->dir < y->dir ? -1 : x->dir > y->dir;
}

static int ck_dir_apply(struct ck *ck, uint64_t dino, const struct ck_dchange *ch, size_t nch)
{
	struct lunfs_inode *di = malloc(sizeof(*di));
	struct ck_dirbuf db = { 0 };
	uint64_t rec_addr;
	bool bad;
	int err;

	if (di == NULL) {
		return -ENOMEM;
	}
	err = ck_inode_read(ck, dino, di, &rec_addr);
	if (err != 0) {
		goto out;
	}
	err = ck_dir_read(ck, di, false, &db, &bad);
	if (err < 0) {
		goto out;
	}
	for (size_t c = 0; c < nch; c++) {
		size_t k;

		for (k = 0; k < db.n && strcmp(db.e[k].name, ch[c].name) != 0; k++) {
		}
		if (!ch[c].add && k < db.n) {
			if (ch[c].ino == 0) {
				db.e[k] = db.e[--db.n];
			} else {
				db.e[k].type = ch[c].type;
			}
		} else if (ch[c].add && k == db.n) {
			struct lunfs_dirent e;

			memset(&e, 0, sizeof(e));
			e.ino = ch[c].ino;
			e.type = ch[c].type;
			e.name_len = (uint8_t)strlen(ch[c].name);
			memcpy(e.name, ch[c].name, e.name_len);
			err = ck_dirbuf_add(&db, &e);
			if (err < 0) {
				goto out;
			}
		}
	}
	err = ck_dir_build(ck, di, rec_addr, db.e, db.n);
out:
	free(db.e);
	free(di);
	return err;
}

static int ck_apply(struct ck *ck)
{
	int err;

	for (size_t i = 0; i < ck->ninodes; i++) {
		if (ck->inodes[i].state == CK_I_RECLAIM) {
			err = ck_reclaim(ck, &ck->inodes[i]);
			if (err < 0) {
				return err;
			}
		}
	}
	if (ck->orphans.n > 0) {
		err = ck_orphan_tables_clear(ck);
		if (err < 0) {
			return err;
		}
	}
	for (size_t i = 0; i < ck->nchanges; i++) {
		if (ck->changes[i].dir == CK_LF_PENDING) {
			err = ck_lost_found_create(ck);
			if (err < 0) {
				ck_note(ck, "cannot create /lost+found (%s)", strerror(-err));
				return err;
			}
			break;
		}
	}
	for (size_t i = 0; i < ck->ninodes; i++) {
		if (ck->inodes[i].rewrite_dir && ck->inodes[i].state == CK_I_OK) {
			err = ck_change_add(ck, ck->inodes[i].ino, false, 0, 0, "");
			if (err < 0) {
				return err;
			}
		}
	}
	ck_qsort(ck->changes, ck->nchanges, sizeof(ck->changes[0]), ck_change_cmp);
	for (size_t i = 0; i < ck->nchanges;) {
		size_t j = i;
		struct ck_inode *d = ck_inode_find(ck, ck->changes[i].dir);

		while (j < ck->nchanges && ck->changes[j].dir == ck->changes[i].dir) {
			j++;
		}
		if (ck_inode_good(d)) {
			err = ck_dir_apply(ck, ck->changes[i].dir, &ck->changes[i], j - i);
			if (err < 0) {
				return err;
			}
		}
		i = j;
	}
	return 0;
}

/* Link counts and parents, after the namespace plan. */
static int ck_links(struct ck *ck)
{
	struct lunfs_inode *di = malloc(sizeof(*di));
	int err = 0;

	if (di == NULL) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < ck->ninodes && err == 0; i++) {
		struct ck_inode *ci = &ck->inodes[i];
		bool dir = (ci->mode & S_IFMT) == S_IFDIR;
		uint32_t want = dir ? 2u + ci->subdirs : ci->links;
		uint64_t parent = ci->ino == ck->sb.root_ino ? ci->ino : ci->keeper_parent;
		bool fix_n = ci->nlink != want;
		bool fix_p = dir && parent != 0 && parent != CK_LF_PENDING && parent != ci->parent_ino;
		bool fix_o = !dir && want > 0 && (ci->flags & LUNFS_INODE_ORPHAN) != 0;
		uint64_t rec_addr;

		if (ci->state != CK_I_OK || (!fix_n && !fix_p && !fix_o)) {
			continue;
		}
		if (fix_n) {
			ck_problem(ck, CHECK_PB_NLINK, ck->repair,
				   "inode %" PRIu64 ": link count %" PRIu32 ", found %" PRIu32 " %s%s", ci->ino,
				   ci->nlink, want, dir ? "(2 + subdirectories)" : "entries",
				   ck->repair ? ": fixed" : "");
		}
		if (fix_p) {
			ck_problem(ck, CHECK_PB_PARENT, ck->repair,
				   "directory %" PRIu64 ": '..' is %" PRIu64 ", but it is entered in %" PRIu64 "%s",
				   ci->ino, ci->parent_ino, parent, ck->repair ? ": fixed" : "");
		}
		if (fix_o) {
			ck_problem(ck, CHECK_PB_INODE_FIELD, ck->repair,
				   "inode %" PRIu64 ": marked orphan but linked%s", ci->ino, ck->repair ? ": fixed" : "");
		}
		if (!ck->repair) {
			continue;
		}
		err = ck_inode_read(ck, ci->ino, di, &rec_addr);
		if (err != 0) {
			break;
		}
		di->nlink = want;
		if (fix_p) {
			di->parent_ino = parent;
		}
		if (fix_o) {
			di->flags &= ~(uint32_t)LUNFS_INODE_ORPHAN;
		}
		err = ck_inode_write(ck, di, rec_addr);
	}
	free(di);
	return err;
}

/* ---- pass 9: allocation ------------------------------------------------------------- */
static int ck_shared_pass(struct ck *ck)
{
	struct lunfs_inode *di = malloc(sizeof(*di));
	int err = 0;

	if (di == NULL) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < ck->ninodes && err == 0; i++) {
		struct ck_walk w;
		uint64_t rec_addr;

		if (ck->inodes[i].state != CK_I_OK || (ck->inodes[i].mode & S_IFMT) != S_IFREG) {
			continue;
		}
		err = ck_inode_read(ck, ck->inodes[i].ino, di, &rec_addr);
		if (err != 0) {
			break;
		}
		err = ck_walk_init(&w, ck, CK_WALK_SHARED, di->ino, di->map_unit);
		if (err == 0) {
			err = ck_walk_map(&w, di, NULL);
			ck_walk_fini(&w);
		}
	}
	free(di);
	return err;
}

static int ck_cluster_write(struct ck *ck, struct ck_cluster *cl, const uint64_t *final, bool bm_diff, bool rc_diff,
			    uint64_t units_free)
{
	struct lunfs_cluster_hdr *h = &cl->hdr;
	uint64_t c = h->cluster_index;
	int err = 0;

	if (bm_diff) {
		struct lunfs_bitmap *bm = calloc(1, sizeof(*bm));

		if (bm == NULL) {
			return -ENOMEM;
		}
		for (uint32_t b = 0; b < h->bitmap_blocks && err == 0; b++) {
			uint64_t first = (uint64_t)b * LUNFS_BITMAP_BITS;
			uint64_t addr = h->cluster_start + (1u + (uint64_t)b) * LUNFS_META_BLOCK_SIZE;

			memset(bm, 0, sizeof(*bm));
			bm->cluster_index = c;
			bm->first_unit = first;
			for (uint64_t i = 0; i < LUNFS_BITMAP_BITS && first + i < h->units_total; i++) {
				bit_set(bm->words, i, bit_get(final, first + i));
			}
			bitmap_encode(&ck->codec, bm, addr, ck->blk);
			err = ck_write(ck, ck->blk, LUNFS_META_BLOCK_SIZE, addr);
		}
		free(bm);
	}
	if (rc_diff && err == 0) {
		struct lunfs_refcount *rc = calloc(1, sizeof(*rc));

		if (rc == NULL) {
			return -ENOMEM;
		}
		for (uint32_t r = 0; r < h->refcount_blocks && err == 0; r++) {
			uint64_t first = (uint64_t)r * LUNFS_REFCOUNTS_PER_BLOCK;
			uint64_t addr = h->cluster_start + (1u + (uint64_t)h->bitmap_blocks + r) * LUNFS_META_BLOCK_SIZE;

			memset(rc, 0, sizeof(*rc));
			rc->cluster_index = c;
			rc->first_unit = first;
			for (uint32_t i = 0; i < LUNFS_REFCOUNTS_PER_BLOCK && first + i < h->units_total; i++) {
				uint64_t refs = ck_refs(ck, cl, first + i);

				rc->extra[i] = refs <= 1 ? 0 : refs - 1 > 65535 ? 65535 : (uint16_t)(refs - 1);
			}
			refcount_encode(&ck->codec, rc, addr, ck->blk);
			err = ck_write(ck, ck->blk, LUNFS_META_BLOCK_SIZE, addr);
		}
		free(rc);
	}
	if (err == 0 && (h->units_free != units_free || cl->hdr_bad)) {
		h->units_free = units_free;
		if (h->alloc_hint > h->units_total) {
			h->alloc_hint = h->header_units;
		}
		cluster_hdr_encode(&ck->codec, h, h->cluster_start, ck->blk);
		err = ck_write(ck, ck->blk, LUNFS_META_BLOCK_SIZE, h->cluster_start);
	}
	return err;
}

static int ck_summary(struct ck *ck, struct ck_cluster *cl, uint64_t c, uint64_t units_free)
{
	struct lunfs_cluster_summary sum;
	uint64_t laddr = layout_cluster_lock_addr(&ck->sb, c);

	memset(&sum, 0, sizeof(sum));
	if (cl->lock_status == 0) {
		lock_summary_get(&cl->lock, &sum);
	}
	if (cl->lock_status == 0 && sum.type == cl->type && sum.units_total == cl->hdr.units_total &&
	    sum.units_free == units_free) {
		return 0;
	}
	if (cl->lock_status == 0 && sum.type == cl->type && !cl->fresh) {
		/* Only the hints differ: not an error (FORMAT.md 8.2). */
		ck->r->hints_fixed++;
		if (!ck->repair) {
			return 0;
		}
	}
	if (!ck->repair) {
		return 0;
	}
	if (cl->lock_status != 0) {
		memset(&cl->lock, 0, sizeof(cl->lock));
		cl->lock.kind = LUNFS_LOCK_KIND_CLUSTER;
		cl->lock.lock_id = c;
	}
	cl->lock.version++;
	sum.type = cl->type;
	sum.units_total = cl->hdr.units_total;
	sum.units_free = units_free;
	sum.updated_seq = cl->lock.version;
	lock_summary_set(&cl->lock, &sum);
	memset(ck->rec, 0, ck->sb.sector_size);
	lock_encode(&ck->codec, &cl->lock, laddr, ck->rec);
	cl->lock_status = 0;
	return ck_write(ck, ck->rec, ck->sb.sector_size, laddr);
}

static int ck_alloc_compare(struct ck *ck)
{
	int err;

	if (ck->repair && ck->need_shared_pass) {
		err = ck_shared_pass(ck);
		if (err < 0) {
			return err;
		}
	}
	for (uint64_t c = 0; c < ck->sb.cluster_count; c++) {
		struct ck_cluster *cl = &ck->cl[c];
		struct lunfs_cluster_hdr *h = &cl->hdr;
		uint64_t disk_used = 0, final_used = 0, *final;
		bool bm_diff = cl->bm_bad, rc_diff = cl->rc_bad;

		if (cl->type == LUNFS_CLUSTER_FREE) {
			if (ck->repair && cl->lock_status == -EUCLEAN) {
				/* A free cluster's lock: all zeros is FREE (FORMAT.md 8). */
				memset(ck->rec, 0, ck->sb.sector_size);
				err = ck_write(ck, ck->rec, ck->sb.sector_size, layout_cluster_lock_addr(&ck->sb, c));
				if (err < 0) {
					return err;
				}
			}
			continue;
		}
		final = cl->used;
		for (uint64_t u = 0; u < h->units_total; u++) {
			bool d = bit_get(cl->disk, u), used = bit_get(cl->used, u), q = bit_get(cl->quiet, u);
			uint64_t addr = ck_unit_addr(cl, u);

			disk_used += d;
			final_used += used;
			if (d != used) {
				bm_diff = true;
				if (!q) {
					ck_problem(ck, d ? CHECK_PB_LEAK : CHECK_PB_UNALLOCATED, ck->repair,
						   "cluster %" PRIu64 ": unit %" PRIu64 " at %" PRIu64 " is %s%s", c, u,
						   addr, d ? "allocated but used by nothing" : "used but free in the bitmap",
						   ck->repair ? (d ? ": freed" : ": marked allocated") : "");
				}
			}
			if (cl->type == LUNFS_CLUSTER_FILE && u >= h->header_units) {
				uint64_t refs = ck_refs(ck, cl, u), *ex = ck_map_get(&ck->rc_disk, addr);
				uint64_t extra = ex != NULL ? *ex : 0, want = refs <= 1 ? 0 : refs - 1;

				want = want > 65535 ? 65535 : want;
				if (extra == want) {
					/* The count is right, but a writer through an
					 * entry without SHARED would write in place
					 * under the other referrers' feet. */
					if (refs > 1 && bit_get(cl->noshared, u) && !cl->rc_bad) {
						ck_problem(ck, CHECK_PB_MULTIREF, ck->repair,
							   "file block %" PRIu64 " is referenced %" PRIu64 " times, not all "
							   "marked shared%s", addr, refs,
							   ck->repair ? ": marked shared" : "");
					}
					continue;
				}
				rc_diff = true;
				if (cl->rc_bad) {
					continue;
				}
				if (refs > 1 && bit_get(cl->noshared, u)) {
					ck_problem(ck, CHECK_PB_MULTIREF, ck->repair,
						   "file block %" PRIu64 " is referenced %" PRIu64 " times, not all marked "
						   "shared, and its refcount says %" PRIu64 "%s", addr, refs, extra + 1,
						   ck->repair ? ": marked shared, refcount fixed" : "");
				} else if (!q || refs > 0) {
					ck_problem(ck, CHECK_PB_REFCOUNT, ck->repair,
						   "file block %" PRIu64 " has %" PRIu64 " references, its refcount says %"
						   PRIu64 "%s", addr, refs, extra + (refs > 0),
						   ck->repair ? ": fixed" : "");
				}
			}
		}
		if (h->units_free != UINT64_MAX && h->units_free != h->units_total - disk_used && !cl->bm_bad) {
			ck_problem(ck, CHECK_PB_UNITS_FREE, ck->repair,
				   "cluster %" PRIu64 ": header says %" PRIu64 " units free, its bitmap has %" PRIu64
				   "%s", c, h->units_free, h->units_total - disk_used, ck->repair ? ": fixed" : "");
		}
		if (ck->repair) {
			err = ck_cluster_write(ck, cl, final, bm_diff, rc_diff, h->units_total - final_used);
			if (err < 0) {
				return err;
			}
		}
		err = ck_summary(ck, cl, c, ck->repair ? h->units_total - final_used : h->units_total - disk_used);
		if (err < 0) {
			return err;
		}
	}
	return 0;
}

/* ---- driver --------------------------------------------------------------------------- */
static void ck_free(struct ck *ck)
{
	if (ck->cl != NULL) {
		for (uint64_t c = 0; c < ck->sb.cluster_count; c++) {
			free(ck->cl[c].disk);
			free(ck->cl[c].used);
			free(ck->cl[c].quiet);
			free(ck->cl[c].noshared);
		}
	}
	free(ck->cl);
	ck_map_free(&ck->refs);
	ck_map_free(&ck->rc_disk);
	ck_map_free(&ck->orphans);
	ck_map_free(&ck->itab);
	free(ck->inodes);
	free(ck->edges);
	free(ck->changes);
	free(ck->live);
	free(ck->ents);
	dev_buf_free(ck->blk);
	dev_buf_free(ck->blk2);
	dev_buf_free(ck->rec);
}

static int ck_lock_volume(struct ck *ck, struct lunfs_lockd **ld, const char **why)
{
	struct lockd_opts lo;
	uint32_t holder = 0;
	int err;

	memset(&lo, 0, sizeof(lo));
	lo.host_name = "fsck.lunfs";
	if (getrandom(lo.host_uuid, sizeof(lo.host_uuid), 0) != (ssize_t)sizeof(lo.host_uuid)) {
		memset(lo.host_uuid, 0x5a, sizeof(lo.host_uuid));
	}
	err = lockd_join(ck->dev, &ck->sb, &ck->codec, &lo, ld);
	if (err < 0) {
		*ld = NULL;
		ck_note(ck, "cannot join the volume to lock it (%s); relying on the heartbeat check",
			strerror(-err));
		return 0;
	}
	ck->self_slot = lockd_slot(*ld);
	err = lockd_lock(*ld, layout_syslock_addr(&ck->sb, LUNFS_SYSLOCK_VOLUME), LUNFS_LOCK_KIND_SYSTEM,
			 LUNFS_SYSLOCK_VOLUME, LUNFS_LOCK_EXCLUSIVE, &holder);
	if (err < 0) {
		*why = err == -EBUSY ? "the volume is held by a host (VOLUME lock): unmount it everywhere first"
				     : "cannot take the VOLUME lock";
		lockd_leave(*ld);
		*ld = NULL;
		return err == -EBUSY ? -EBUSY : err;
	}
	return 0;
}

int check_run(struct lunfs_dev *dev, const struct check_opts *o, struct check_result *r, const char **why)
{
	struct ck ck;
	struct lunfs_lockd *ld = NULL;
	const char *dummy = NULL;
	uint32_t claimed = 0;
	int nlive, err;

	if (why == NULL) {
		why = &dummy;
	}
	*why = NULL;
	memset(r, 0, sizeof(*r));
	memset(&ck, 0, sizeof(ck));
	ck.dev = dev;
	ck.o = o;
	ck.r = r;
	ck.repair = o->repair;
	ck.self_slot = UINT32_MAX;
	ck.blk = dev_buf_alloc(LUNFS_META_BLOCK_SIZE);
	ck.blk2 = dev_buf_alloc(LUNFS_META_BLOCK_SIZE);
	ck.rec = dev_buf_alloc(2u * LUNFS_SECTOR_MAX);
	ck.ents = calloc(LUNFS_DIR_LEAF_MAX_ENTRIES, sizeof(*ck.ents));
	if (ck.blk == NULL || ck.blk2 == NULL || ck.rec == NULL || ck.ents == NULL) {
		err = -ENOMEM;
		goto out;
	}
	err = ck_super(&ck, why);
	if (err < 0) {
		goto out;
	}
	ck.data_off = ck.sb.regions[LUNFS_REGION_DATA].offset;
	ck.data_end = ck.data_off + ck.sb.cluster_count * ck.sb.cluster_size;
	ck.live = calloc(ck.sb.max_hosts, sizeof(*ck.live));
	ck.cl = calloc(ck.sb.cluster_count, sizeof(*ck.cl));
	if (ck.live == NULL || ck.cl == NULL) {
		err = -ENOMEM;
		goto out;
	}
	nlive = hb_scan_live(dev, &ck.sb, &ck.codec,
			     o->live_wait_max_ms != 0 ? o->live_wait_max_ms : CK_LIVE_WAIT_DEFAULT_MS, ck.live,
			     &claimed);
	if (nlive < 0) {
		err = nlive;
		*why = "cannot read the heartbeat region";
		goto out;
	}
	r->live_hosts = (uint32_t)nlive;
	if (nlive > 0 && ck.repair) {
		*why = "the volume is in use: hosts are renewing their heartbeats; unmount it everywhere first";
		err = -EBUSY;
		goto out;
	}
	if (nlive > 0) {
		ck_note(&ck, "warning: %d host(s) are using the volume: it changes while it is checked, "
			"so problems may be reported that are not there", nlive);
	}
	if (ck.repair && o->take_lock) {
		err = ck_lock_volume(&ck, &ld, why);
		if (err < 0) {
			goto out;
		}
	}
	err = ck_heartbeats(&ck);
	if (err == 0) {
		err = ck_journals(&ck);
	}
	if (err == 0) {
		err = ck_clusters(&ck);
	}
	if (err == 0) {
		err = ck_inodes(&ck);
	}
	if (err < 0) {
		*why = "I/O error or out of memory while checking";
		goto out;
	}
	if (!ck_inode_good(ck_inode_find(&ck, ck.sb.root_ino)) ||
	    (ck_inode_find(&ck, ck.sb.root_ino)->mode & S_IFMT) != S_IFDIR) {
		ck_problem(&ck, CHECK_PB_INODE, false, "the root directory (inode %" PRIu64 ") is unusable: "
			   "the namespace cannot be checked", ck.sb.root_ino);
	} else {
		err = ck_dirs(&ck);
		if (err == 0) {
			err = ck_namespace(&ck);
		}
		if (err == 0 && ck.repair) {
			err = ck_apply(&ck);
		}
		if (err == 0) {
			err = ck_links(&ck);
		}
		if (err < 0) {
			*why = "I/O error or out of memory while checking the namespace";
			goto out;
		}
	}
	err = ck_alloc_compare(&ck);
	if (err < 0) {
		*why = "I/O error or out of memory while checking allocation";
		goto out;
	}
	if (ck.wrote) {
		err = dev_flush(dev);
		if (err < 0) {
			*why = "cannot flush the device";
			goto out;
		}
	}
out:
	if (ld != NULL) {
		(void)lockd_unlock(ld, layout_syslock_addr(&ck.sb, LUNFS_SYSLOCK_VOLUME));
		(void)lockd_leave(ld);
	}
	if (err < 0 && *why == NULL) {
		*why = strerror(-err);
	}
	ck_free(&ck);
	return err;
}
