/*
 * Internal interfaces between the modules of the filesystem core (fs/).
 * Nothing outside fs/ includes this; the public interface is lunfs/fs.h.
 *
 * Modules, bottom up:
 *   mcache   cache of metadata records (512 B) and blocks (4 KiB)
 *   journal  this host's journal: handles, compound transactions, commit,
 *            checkpoint, replay
 *   alloc    units from resource clusters (file blocks, metadata blocks,
 *            inode slots)
 *   inode    in-memory inodes: cache, read, dirty, allocate, free, orphans
 *   bmap     block maps: logical block -> physical block, COW-ready
 *   snap     sharing file blocks between inodes (clones, snapshots)
 *   file     the data path: read, write, truncate, fallocate, seek
 *   dir      extendible-hash directories
 *   xattr    extended attributes, symlink targets
 *   vol      mount/unmount, statfs, the fsop_* glue
 *
 * Concurrency inside one host (docs/DESIGN.md "Inside a host"):
 *   vol.meta_lock (a mutex) serialises every change of metadata on this
 *     host: namespace operations, allocation, map and size changes, xattrs,
 *     and the journal itself (handles, commit, checkpoint). One handle is
 *     open at a time, always under meta_lock.
 *   inode_mem.lock (an rwlock) lets the data path run in parallel: readers
 *     of an inode's map and data (read, overwrite of written chunks) hold it
 *     shared without meta_lock; anyone changing the inode's record, map or
 *     size holds meta_lock and then this lock exclusive.
 *   icache and mcache have internal mutexes, always innermost.
 * Lock order: meta_lock < inode locks (ascending ino) < icache/mcache.
 * Across hosts, the on-disk locks of lockd order things (the cluster issue):
 * inode locks (directories, then files, ascending ino) < cluster locks
 * (ascending index: alloc_clusters_pin) < meta_lock.
 */
#ifndef LUNFS_FS_INTERNAL_H
#define LUNFS_FS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lunfs/dev.h"
#include "lunfs/format.h"
#include "lunfs/fs.h"

struct lunfs_lockd;
struct inode_mem;

/* ---- htab (fs/htab.c) ------------------------------------------------------
 * A hash table of intrusive chains keyed by a uint64_t (an inode number),
 * growing 4x whenever it holds more than two entries per chain. The caller
 * locks it. An entry embeds a struct htab_link, its key set before insert.
 */
struct htab_link {
	struct htab_link *next;
	uint64_t key;
};
struct htab {
	struct htab_link **tab;      /* 1 << shift chains */
	unsigned shift;
	size_t count;
};
#define HTAB_ENTRY(link, type, member) \
	((type *)(void *)((char *)(link) - offsetof(type, member)))
int htab_init(struct htab *t, unsigned shift);    /* 2^shift chains to start; -ENOMEM */
void htab_fini(struct htab *t);                   /* frees the chains array only */
struct htab_link *htab_find(const struct htab *t, uint64_t key);
void htab_insert(struct htab *t, struct htab_link *l);
void htab_remove(struct htab *t, struct htab_link *l);
/* Empty the table, calling fn on each entry once it is out (fn may free it). */
void htab_drain(struct htab *t, void (*fn)(struct htab_link *l, void *arg), void *arg);

/* ---- mcache -------------------------------------------------------------
 * A bounded cache of encoded metadata, keyed by byte address. An entry is a
 * record (sector_size bytes, of which the first 512 are the record) or a
 * 4 KiB block. Entries are modified in place by their owners while they hold
 * the lock that covers the structure (an inode lock, an alloc lock) and a
 * journal handle, after calling jnl_dirty(). Clean entries are evicted LRU
 * when the cache is over its bound; dirty ones, and ones whose home write is
 * in flight, never are.
 */
struct mc_entry {
	uint64_t addr;
	uint32_t len;                /* sector_size or 4096 */
	void *buf;                   /* aligned, len bytes */
	int valid;                   /* 0 read ok; else the decode error */
	/* The magic of the block type whose frame check (crc, volume,
	 * magic, self address: blk_verify) passed on buf as it is now; 0 =
	 * not checked. mcache clears it whenever it fills buf (a read, or
	 * zeros); encoders keep the frame valid. Set by bmap (after a whole
	 * decode: it then reads single fields) and by mc_frame_check (dir
	 * blocks), which skip the crc of hot blocks (atomic: shared readers). */
	uint32_t checked_magic;
	/* private to mcache/journal: */
	uint32_t refs;
	uint64_t dirty_tid;          /* running transaction that dirtied it; 0 = clean */
	uint32_t home_pending;       /* home writes in flight */
	struct mc_entry *hnext;
	struct mc_entry *lru_prev, *lru_next;
	struct mc_entry *tx_next;    /* in its transaction's dirty list */
};

struct mcache;
int mc_create(struct lunfs_dev *dev, uint64_t bound_bytes, struct mcache **out);
void mc_destroy(struct mcache *mc);
/* Get the entry for [addr, addr+len), reading it from the device if it is
 * not cached (MC_NOREAD: don't read, start from zeros: for a block being
 * freshly allocated). Takes a reference. */
#define MC_NOREAD 1u
int mc_get(struct mcache *mc, uint64_t addr, uint32_t len, unsigned flags, struct mc_entry **out);
void mc_put(struct mcache *mc, struct mc_entry *e);
/* blk_verify of e's block as a `magic` block, done once per fill of the
 * entry (checked_magic remembers it): 0, or blk_verify's error. */
int mc_frame_check(struct mc_entry *e, const struct lunfs_codec *c, uint32_t magic);
/* Drop every clean entry (tests; remount). */
void mc_drop_clean(struct mcache *mc);
/* Take one more reference on an entry already held (the journal pins the
 * entries of its running transaction this way). */
void mc_hold(struct mcache *mc, struct mc_entry *e);
/* Device reads that failed since the cache was created. The journal
 * compares it across a handle: see jnl_stop. */
uint64_t mc_read_errors(struct mcache *mc);
/* Bytes charged against the bound and number of entries (statistics, tests). */
void mc_stats(struct mcache *mc, uint64_t *bytes, uint64_t *entries);

/* ---- journal -------------------------------------------------------------
 * A compound transaction collects every entry dirtied by the handles since
 * the last commit (like jbd2). Commit (on jnl_sync, jnl_stop(sync), the
 * commit timer, or when the transaction nears a quarter of the ring) copies
 * the dirty entries' images, flushes the device first if data ordering was
 * requested, writes descriptor + payload + commit as one write, flushes,
 * then writes the images home. The checkpoint (when the ring is half full,
 * and at close) flushes and advances the journal superblock's tail.
 * All functions except jnl_replay require vol.meta_lock.
 */
struct jnl;
struct jnl_handle;

/* Open this host's journal (slot), replaying it first if it is dirty. */
int jnl_open(struct lunfs_vol *v, uint32_t slot, uint64_t owner_gen, struct jnl **out);
/* Commit, checkpoint, mark clean. */
int jnl_close(struct jnl *j);
/* Stop the commit timer and free, writing nothing (vol_abandon). */
void jnl_abandon(struct jnl *j);
/* Start an atomic operation that will dirty at most `credits` sectors or
 * blocks; joins the running compound transaction. */
int jnl_start(struct jnl *j, unsigned credits, struct jnl_handle **out);
/* Declare that e is about to be modified under this handle. */
int jnl_dirty(struct jnl_handle *h, struct mc_entry *e);
/* The transaction must flush data writes before it commits (new blocks'
 * contents became reachable). */
void jnl_order_data(struct jnl_handle *h);
/* End the operation. With `sync`, wait until its transaction is durable. */
int jnl_stop(struct jnl_handle *h, bool sync);
/* Sequence number of the running transaction: changes made now commit
 * with it, and every transaction with a smaller number is durable. */
uint64_t jnl_running_seq(struct jnl *j);
/* Commit everything so far and wait (fsync, syncfs). */
int jnl_sync(struct jnl *j);
/* Commit, then checkpoint (or just flush when the ring is empty): every
 * change made so far is durable and home, and the ring holds nothing. Run
 * before a lock covering metadata is given to another host (cluster.c). */
int jnl_flush_home(struct jnl *j);
/* Replay a journal without a mounted volume (fsck, recovery, mount). Writes
 * home, flushes, marks the journal clean. *applied = transactions replayed. */
int jnl_replay(struct lunfs_dev *dev, const struct lunfs_super *sb,
	       const struct lunfs_codec *c, uint32_t slot, uint64_t *applied);

/* ---- alloc -------------------------------------------------------------- */
struct alloc;
int alloc_open(struct lunfs_vol *v, struct alloc **out);
void alloc_close(struct alloc *a);
/* Allocate up to `want` contiguous units of `type` (FILE, META, INODE),
 * at least one; near `hint` (a byte address, 0 = none) when possible.
 * Returns the byte address of the first and the count in *got. -ENOSPC. */
int alloc_units(struct alloc *a, struct jnl_handle *h, uint8_t type, uint64_t want,
		uint64_t hint, uint64_t *addr, uint64_t *got);
/* Free `count` units of `type` starting at byte address addr. A FILE unit
 * whose reference count is above one (refcount extra > 0) loses one
 * reference instead of being freed, so callers free shared blocks
 * (snapshots, clones) without knowing that they are shared. -EUCLEAN (and
 * nothing changed) for an address outside the data region, not aligned to
 * the unit, in the header area or in a cluster of another type, or for a
 * unit already free (double free). */
int alloc_free(struct alloc *a, struct jnl_handle *h, uint8_t type, uint64_t addr, uint64_t count);
/* File blocks freed by a transaction that has not committed are not handed
 * out again until it has (a crash would undo the free after new data was
 * written into them). True when some are waiting: an allocation that found
 * no space may then succeed after jnl_sync. */
bool alloc_busy_pending(struct alloc *a);
/* Forget the busy ranges whose freeing transaction has committed, passing
 * them down as discards with the discard mount option (called every
 * monitor scan, and by every allocation search). Caller holds meta_lock. */
void alloc_busy_release(struct alloc *a);
/* The journal has closed clean (unmount): every busy range has committed;
 * discard them all (with the option) while the clusters are still ours. */
void alloc_busy_release_all(struct alloc *a);
/* File-block reference counts (snapshots, clones). extra = references - 1.
 * alloc_ref_add: -EMLINK when extra would pass 65535 (saturated: the
 * caller copies the block instead), -EUCLEAN below 0 or on a free block. */
int alloc_ref_get(struct alloc *a, uint64_t addr, uint32_t *extra);
int alloc_ref_add(struct alloc *a, struct jnl_handle *h, uint64_t addr, int delta);
/* The counter without taking the cluster's lock: ours from the cache if
 * we hold the cluster, else the home copy on the disk, which may lag its
 * holder's journal. Safe for one decision only: whether a block that a
 * file references is shared, asked while holding that file's inode lock.
 * A counter goes from 0 to 1 only by cloning a file that references the
 * block, which needs that file's lock, and a host flushes its journal
 * home before it gives an inode lock up; so the value read is never below
 * the truth for such a block (it may be above: a decrement not home yet,
 * which costs one needless copy). Display (lunfs du) uses it too. */
int alloc_ref_peek(struct alloc *a, uint64_t addr, uint32_t *extra);
/* Take (waiting for their holders) and pin clusters ci[0..n), which must
 * be strictly ascending, for one operation that changes their refcounts;
 * without meta_lock or any allocator lock. A pinned cluster is not given
 * to another host until unpinned. On error nothing stays pinned. */
int alloc_clusters_pin(struct alloc *a, const uint64_t *ci, size_t n);
void alloc_clusters_unpin(struct alloc *a, const uint64_t *ci, size_t n);
/* Totals for statfs: units of each type free, and whole free clusters. A
 * FREE cluster counts as capacity for file blocks AND for inodes (it becomes
 * whichever is needed first), so the two totals overlap. META clusters
 * count in neither. */
struct alloc_stats {
	uint64_t file_free_bytes, file_total_bytes;
	uint64_t inodes_free, inodes_total;
};
int alloc_stats(struct alloc *a, struct alloc_stats *st);

/* ---- alloc and the cluster protocol (fs/cluster.c) ---------------------- */
/* Give cluster ci back (another host asked for it). Caller holds
 * meta_lock and has run jnl_flush_home: summary pushed, cluster
 * forgotten, cached blocks dropped, lock released. */
int alloc_cluster_giveup(struct alloc *a, uint64_t ci);
/* Recovery of `slot` (meta_lock held): clusters whose lock that dead slot
 * still holds are borrowed by frees until alloc_recover_end, which
 * forgets them (the caller has made the frees durable and home). */
void alloc_recover_begin(struct alloc *a, uint32_t slot);
void alloc_recover_end(struct alloc *a);

/* ---- the mount context ----------------------------------------------------
 * Fields are set at mount and read-only after, unless a comment names the
 * lock that protects them.
 */
struct lunfs_vol {
	/* What the fs core reads and writes through: a write gate
	 * (dev/dev_gate.c) over raw_dev that checks our lease before every
	 * write, from the heartbeat claim to the slot's release. raw_dev is
	 * the caller's device, which lockd uses itself. */
	struct lunfs_dev *dev;
	struct lunfs_dev *raw_dev;
	struct lunfs_super sb;
	struct lunfs_codec codec;
	struct lunfs_mount_opts opts;
	struct lunfs_lockd *ld;
	uint32_t slot;               /* our heartbeat slot */
	uint64_t gen;                /* its generation */
	struct mcache *mc;
	struct jnl *jnl;
	struct alloc *alloc;
	struct icache *ic;
	pthread_mutex_t meta_lock;   /* see the top of this file */
	/* vol.c / fsops.c: */
	char host_name[65];          /* opts.host_name points here */
	pthread_mutex_t fh_lock;     /* protects fh_list; innermost, never held across I/O */
	struct lunfs_fh *fh_list;    /* open handles, so unmount can release leaked ones */
	struct cluster *cl;          /* cluster.c: inode locks of opens (its own mutex) */
};

/* ---- vol (fs/vol.c, fs/fsops*.c) ------------------------------------------ */
/* Release every open handle still on fh_list (unmount). */
void fsop_release_all(struct lunfs_vol *v);
/* Free every handle still on fh_list without releasing it: no lock, no
 * open count, no reclaim (vol_abandon: the inodes and locks go with the
 * whole context). */
void fsop_fh_abandon_all(struct lunfs_vol *v);

/* ---- fsops internals shared by fs/fsops.c and fs/fsops_snap.c ------------- */
/* An open file (fs.h). */
struct lunfs_fh {
	struct inode_mem *im;
	int flags;
	bool locked;                  /* holds an open of the inode lock (cluster.c) */
	bool write;                   /* ... for write */
	bool multiwriter;             /* the file is multi-writer: no page cache */
	struct lunfs_fh *prev, *next; /* vol.fh_list, under vol.fh_lock */
};

/* -EROFS on a read-only mount. */
int fsop_rw(const struct lunfs_vol *v);
/* A path component from the kernel: non-empty, no '/', at most 255 bytes. */
int fsop_name(const char *name, size_t *len);
/* "." or "..": names every directory has, that no operation makes. */
bool fsop_is_dot(const char *name);
/* jnl_start with the credits capped at what the smallest journal takes. */
int fsop_start(struct lunfs_vol *v, unsigned credits, struct jnl_handle **h);
/* Stop the handle, keeping the first error. */
int fsop_stop(struct jnl_handle *h, int err);
/* Look a name up in dim (meta_lock held). */
int fsop_dir_find(struct lunfs_vol *v, struct inode_mem *dim, const char *name, size_t len,
		  uint64_t *ino, uint8_t *type);
/* May an entry `name` be made in dim (meta_lock held)? 0 when dim has no
 * such entry, -EEXIST when it has, or the lookup's error. */
int fsop_name_free(struct lunfs_vol *v, struct inode_mem *dim, const char *name, size_t len);
/* Take one link from victim (locked, under a handle); at zero it goes on
 * the orphan table. */
int fsop_drop_link(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *victim, int64_t now);
/* Attributes of im, re-read from the disk when we do not hold its lock. */
void fsop_attr_fresh(struct lunfs_vol *v, struct inode_mem *im, bool with_meta,
		     struct lunfs_attr *out);

/* May im's contents change? -EPERM for a snapshot, -EIO (logged) for an
 * image whose revert was cut short (fsops_snap.c). im->lock held (read). */
int fsop_snap_write_check(struct lunfs_vol *v, struct inode_mem *im);

/* The on-disk inode locks of one operation (fsops.c "on-disk inode locks
 * of one operation"): added with fscl_add, taken in the cluster-wide order
 * (directories, then other inodes, ascending ino) by fscl_enter without
 * meta_lock (keep_meta: meta_lock held on success, stale inodes
 * re-read), dropped with fscl_drop. */
#define FSOP_CL_MAX 6
#define FSOP_CL_TRIES 8

struct fsop_cl_e {
	uint64_t ino;
	bool excl, dir;
	bool taken;                  /* cluster_use succeeded */
	bool stale;                  /* ... and said our copy is stale */
};

struct fsop_cl {
	struct fsop_cl_e e[FSOP_CL_MAX];
	unsigned n;
};

int fscl_add(struct fsop_cl *cl, uint64_t ino, bool excl, bool dir);
void fscl_drop(struct lunfs_vol *v, struct fsop_cl *cl);
int fscl_enter(struct lunfs_vol *v, struct fsop_cl *cl, bool keep_meta);
/* The start of an operation that gives inode ino a new name in dir (link,
 * clone): the name checked ("." and "..": -EEXIST), the volume writable,
 * the on-disk locks of dir and ino taken EXCLUSIVE into the empty set cl.
 * On success meta_lock is held (fscl_enter keep_meta); on error nothing. */
int fsop_link_enter(struct lunfs_vol *v, struct fsop_cl *cl, uint64_t dir, uint64_t ino,
		    const char *name, size_t *len);

/* ---- cluster (fs/cluster.c) ------------------------------------------------
 * Dead-host recovery and lock hand-off as lockd callbacks. attach/detach
 * without meta_lock (they wait for a running callback).
 */
int cluster_attach(struct lunfs_vol *v);
void cluster_detach(struct lunfs_vol *v);
/* How long to wait for a live host to hand a lock over. */
uint32_t cluster_wait_ms(const struct lunfs_vol *v);
/* A message for the administrator (opts.log, else stderr). */
void cluster_log(const struct lunfs_vol *v, const char *msg);
void cluster_free(struct lunfs_vol *v);
/* VMFS open semantics: an open takes the inode's lock SHARED (read-only),
 * EXCLUSIVE (for write) or MULTIWRITER (for write, multiwriter file), kept
 * cached after the last close until another host asks. -EBUSY (logged,
 * naming the holder) when another live host holds it in a conflicting
 * mode. Without meta_lock. */
int cluster_open_lock(struct lunfs_vol *v, struct inode_mem *im, bool write, bool multiwriter,
		      bool is_new);
void cluster_open_unlock(struct lunfs_vol *v, uint64_t ino, bool write);
/* Take ino's lock EXCLUSIVE (kept cached) before unlink/truncate/setattr:
 * -EBUSY (logged) when another live host has the file open and will not
 * give it up (VMFS protects open images). */
int cluster_inode_busy(struct lunfs_vol *v, uint64_t ino);
uint32_t cluster_open_wait_ms(const struct lunfs_vol *v);
/* The RENAME system lock, for a rename that moves a directory to another
 * parent: taken before any inode lock (without meta_lock), released after
 * the journal is home. -EAGAIN when another host held it too long. */
int cluster_rename_lock(struct lunfs_vol *v);
void cluster_rename_unlock(struct lunfs_vol *v);
/* Drop clean cached metadata and re-read im's record (a lock we did not
 * hold was just granted). Takes meta_lock. */
int cluster_inode_refresh(struct lunfs_vol *v, struct inode_mem *im);
/* Coherence (DESIGN 6): use ino's lock for one operation, EXCLUSIVE
 * (changes to the inode or, for a directory, its entries) or SHARED
 * (lookup, readdir, getattr of a directory). Cached: no I/O when held in
 * a covering mode. wait: ask a holder and wait (cluster_open_wait_ms for
 * EXCLUSIVE, cluster_wait_ms for SHARED; -EBUSY, logged, when it will
 * not give it up, e.g. a file open there); !wait: one try, -EBUSY. Returns
 * 1 when our cached copy of the inode is stale (a lock we did not hold):
 * the caller, under meta_lock, drops clean cached metadata, re-reads the
 * record (inode_refresh) and calls cluster_refreshed. A read-only mount
 * takes no lock and always returns 1. Without meta_lock (it may wait for
 * another host, whose request our monitor serves under meta_lock). Every
 * successful cluster_use is paired with cluster_unuse. */
int cluster_use(struct lunfs_vol *v, uint64_t ino, bool excl, bool wait);
void cluster_unuse(struct lunfs_vol *v, uint64_t ino);
void cluster_refreshed(struct lunfs_vol *v, uint64_t ino);
/* Do we hold ino's lock in some mode, with a copy that is not stale? (No
 * I/O; an answer that may change as soon as it is given unless the caller
 * holds a use.) */
bool cluster_holds(struct lunfs_vol *v, uint64_t ino);
/* vol_set_inval (lunfs/fs.h): the hook runs under the cluster's own
 * inval mutex, never under meta_lock or an inode lock. */
void cluster_set_inval(struct lunfs_vol *v, void (*fn)(void *arg, uint64_t ino), void *arg);

/* ---- inode ----------------------------------------------------------------
 * In-memory inodes, one per ino, found through the icache (a hash table with
 * its own mutex). An inode_mem is pinned by refs (transient users), nlookup
 * (the kernel's lookup count) and nopen (open handles); it is freed from
 * memory when all three are zero, and freed on disk too when in addition
 * nlink is zero (an unlinked file whose last user went away).
 */
struct inode_mem {
	uint64_t ino;
	pthread_rwlock_t lock;       /* protects di, the map, dir/xattr blocks, data layout */
	struct lunfs_inode di;       /* decoded record; written back with inode_dirty() */
	struct mc_entry *rec;        /* its record in the mcache, pinned */
	/* icache mutex: */
	uint32_t refs;
	uint64_t nlookup;
	uint32_t nopen;
	bool dead;                   /* being reclaimed: inode_get says -ENOENT */
	struct htab_link hlink;      /* in the icache, keyed by ino */
	struct lunfs_vol *vol;       /* set at creation, read-only */
};

struct icache;
int icache_create(struct lunfs_vol *v, struct icache **out);
void icache_destroy(struct icache *ic);
/* Get a reference to ino, reading it if needed. -ENOENT if the slot is not
 * an allocated inode (bitmap clear, or record free), -EUCLEAN if corrupt. */
int inode_get(struct lunfs_vol *v, uint64_t ino, struct inode_mem **out);
/* Drop a reference. The last user of an nlink-0 inode reclaims it, which
 * takes vol.meta_lock: call inode_put without meta_lock and without any
 * inode lock; inode_put_locked with meta_lock held (and no inode lock). */
void inode_put(struct lunfs_vol *v, struct inode_mem *im);
void inode_put_locked(struct lunfs_vol *v, struct inode_mem *im);
void inode_lookup_add(struct lunfs_vol *v, struct inode_mem *im, uint64_t n);
/* Like inode_put: may reclaim, so without meta_lock. */
void inode_forget(struct lunfs_vol *v, uint64_t ino, uint64_t n);
/* Open handles (nopen): open adds one while holding a reference; release
 * drops it (like inode_put: without meta_lock; may reclaim). */
void inode_open_add(struct lunfs_vol *v, struct inode_mem *im);
void inode_open_drop(struct lunfs_vol *v, struct inode_mem *im);
/* Caller holds im->lock (write) and a handle: bump version, writer
 * slot/gen, encode di into the record, journal it. */
int inode_dirty(struct jnl_handle *h, struct inode_mem *im);
/* Allocate and initialise a new inode (near `near_ino`); returns it with
 * one reference and di filled (mode, uid, gid, times, nlink 1 or 2). */
int inode_alloc(struct lunfs_vol *v, struct jnl_handle *h, uint32_t mode, uint32_t uid,
		uint32_t gid, uint64_t near_ino, struct inode_mem **out);
/* Put an nlink-0 inode on this host's orphan table, or take it off. */
int orphan_add(struct lunfs_vol *v, struct jnl_handle *h, uint64_t ino);
int orphan_del(struct lunfs_vol *v, struct jnl_handle *h, uint64_t ino);
/* Mount (vol_mount, meta_lock held): reclaim every inode left in this
 * host's orphan table by a previous incarnation (nobody has it open now). */
int orphan_recover(struct lunfs_vol *v);
/* Free everything an unlinked, unused inode owns, in as many transactions
 * as needed, then its slot (keeping its generation), and take it off the
 * orphan table. Caller holds meta_lock, no handle, not im->lock. */
int inode_reclaim(struct lunfs_vol *v, struct inode_mem *im);
/* Recovery (meta_lock held, no handle): ino was on a dead host's orphan
 * table. Reclaim it if it is still an unlinked inode; if this host uses
 * it too, put it on our own orphan table instead (our last user reclaims
 * it). Gone already, or linked again: nothing to do. */
int inode_reclaim_foreign(struct lunfs_vol *v, uint64_t ino);
/* The ino whose slot (lock record) is at byte address slot_addr. */
int inode_ino_of_slot(const struct lunfs_vol *v, uint64_t slot_addr, uint64_t *ino);
/* Re-read im's record from the disk into di (meta_lock held, im->lock
 * not): another host may have changed it under its lock. A record with
 * uncommitted changes of ours is left alone. */
int inode_refresh(struct lunfs_vol *v, struct inode_mem *im);
void inode_to_attr(const struct lunfs_vol *v, const struct inode_mem *im, struct lunfs_attr *out);
int64_t vol_now_ns(void);

/* ---- bmap ---------------------------------------------------------------
 * Block maps (include/lunfs/map.h). Caller holds im->lock: read for lookups,
 * write for changes (with a handle). Logical block numbers are in the map's
 * unit (file_block_size for files, 4096 for META maps).
 */
/* The entry for lblk (addr 0 = hole); *run = how many following logical
 * blocks are mapped physically contiguous with the same flags/written (>= 1
 * when mapped; for a hole, how many logical blocks the hole spans, bounded
 * by the map's reach). */
int bmap_lookup(struct lunfs_vol *v, struct inode_mem *im, uint64_t lblk,
		struct lunfs_map_entry *out, uint64_t *run);
/* bmap_lookup for a caller that needs `want` (>= 1) blocks from lblk:
 * *run stops counting at want (a 4 KiB I/O does not scan the leaf for
 * the rest of its run). */
int bmap_lookup_n(struct lunfs_vol *v, struct inode_mem *im, uint64_t lblk, uint64_t want,
		  struct lunfs_map_entry *out, uint64_t *run);
/* Set the entry for lblk (growing the tree or allocating nodes as needed;
 * addr 0 removes the mapping and frees empty nodes). Does not free the
 * old physical block: callers do that; nor does it touch alloc_bytes.
 * -EFBIG beyond the reach of a height-6 map. Calls inode_dirty itself when
 * the root or the height change. */
int bmap_set(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im, uint64_t lblk,
	     const struct lunfs_map_entry *e);
/* bmap_set of n consecutive logical blocks from lblk, all in one leaf
 * (lblk % 251 + n <= 251), to physically consecutive blocks from e->addr
 * with e's flags and written (fallocate, sequential writes). */
int bmap_set_run(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im, uint64_t lblk,
		 const struct lunfs_map_entry *e, unsigned n);
/* Unmap [first, last] and free the blocks (respecting refcounts: a shared
 * block loses a reference instead). Works a leaf at a time; *next = first
 * logical block not yet done (last+1 when finished) so callers can split
 * huge ranges across transactions. Returns 1 while work remains, 0 when
 * finished (last is clamped to the map's reach, so last = UINT64_MAX
 * means "to the end"). Adjusts di.alloc_bytes and calls inode_dirty. */
int bmap_punch(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im,
	       uint64_t first, uint64_t last, uint64_t *next);
/* The entries of the leaf covering lblk, all of them (holes as zeros):
 * 1 when that leaf exists, 0 when it does not (all holes). */
int bmap_leaf_get(struct lunfs_vol *v, struct inode_mem *im, uint64_t lblk,
		  struct lunfs_map_entry *e /* [LUNFS_MAP_LEAF_FANOUT] */);
/* Set entries [lblk, lblk + n), all in one leaf (lblk % 251 + n <= 251),
 * to ents (addr 0 = hole), building the path when a new entry needs it
 * and freeing the leaf (and emptied ancestors) when it ends up empty. The
 * entries replaced go to old[0..n). Frees no data block and leaves
 * alloc_bytes alone (the caller decides: refcounts). */
int bmap_leaf_replace(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im, uint64_t lblk,
		      unsigned n, const struct lunfs_map_entry *ents, struct lunfs_map_entry *old);
/* Credits one bmap_leaf_replace may need. */
unsigned bmap_replace_credits(const struct inode_mem *im);
/* First mapped logical block >= lblk, or -ENXIO. */
int bmap_next_mapped(struct lunfs_vol *v, struct inode_mem *im, uint64_t lblk, uint64_t *out);
/* Credits a bmap_set may need (nodes on the path + allocations). */
unsigned bmap_set_credits(const struct inode_mem *im);
/* Credits one bmap_punch call may need. */
unsigned bmap_punch_credits(const struct inode_mem *im);

/* ---- snap (fs/snap.c): sharing file blocks ------------------------------
 * The machinery under clones, copy_file_range, snapshots and revert; the
 * operations themselves are in fs/fsops_snap.c.
 */
/* A set of cluster indexes: collect, then finish (sorted, unique) for
 * alloc_clusters_pin. */
struct snap_cis {
	uint64_t *ci;
	size_t n, cap;
};
/* Add the clusters of im's mapped file blocks in [first, last]; im->lock
 * held (read). */
int snap_cis_collect(struct lunfs_vol *v, struct inode_mem *im, uint64_t first, uint64_t last,
		     struct snap_cis *set);
void snap_cis_finish(struct snap_cis *set);
void snap_cis_free(struct snap_cis *set);
/* Make dst's blocks [d, d + n) read as src's [s, s + n) do, sharing src's
 * blocks (one more reference each, SHARED in both maps) and releasing
 * the blocks dst had there; src holes become dst holes. In bounded steps,
 * each one journal handle that leaves the volume consistent; on error the
 * steps done stay done. Adjusts dst's alloc_bytes (not its size). Caller
 * holds meta_lock and src->lock, dst->lock for writing (once if src ==
 * dst; the ranges must not overlap then), and has pinned the clusters. */
int snap_share(struct lunfs_vol *v, struct inode_mem *src, struct inode_mem *dst, uint64_t s,
	       uint64_t d, uint64_t n);
/* Bytes of im's mapped blocks referenced by im alone, and shared with
 * another referrer (refcounts peeked: display only). im->lock held. */
int snap_du(struct lunfs_vol *v, struct inode_mem *im, uint64_t *excl, uint64_t *shared);

/* ---- file (regular file data) ----------------------------------------- */
ssize_t file_read(struct lunfs_vol *v, struct inode_mem *im, void *buf, size_t len, uint64_t off);
ssize_t file_write(struct lunfs_vol *v, struct inode_mem *im, const void *buf, size_t len, uint64_t off);
int file_truncate(struct lunfs_vol *v, struct inode_mem *im, uint64_t size);
int file_fallocate(struct lunfs_vol *v, struct inode_mem *im, int mode, uint64_t off, uint64_t len);
int file_seek(struct lunfs_vol *v, struct inode_mem *im, uint64_t off, int whence, uint64_t *out);

/* ---- dir ------------------------------------------------------------------
 * Caller holds dim->lock (read for lookup/iterate, write for changes).
 */
int dir_lookup(struct lunfs_vol *v, struct inode_mem *dim, const char *name, size_t len,
	       uint64_t *ino, uint8_t *type);
int dir_add(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim, const char *name,
	    size_t len, uint64_t ino, uint8_t type);             /* -EEXIST, -ENOSPC */
int dir_remove(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim, const char *name,
	       size_t len, uint64_t *ino);                       /* -ENOENT */
/* Point an existing name at another inode (rename over / exchange). */
int dir_replace(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim, const char *name,
		size_t len, uint64_t ino, uint8_t type, uint64_t *old_ino);
typedef int (*dir_iter_fn)(void *arg, const char *name, size_t len, uint64_t ino, uint8_t type,
			   uint64_t next_cookie);
int dir_iterate(struct lunfs_vol *v, struct inode_mem *dim, uint64_t cookie, dir_iter_fn fn, void *arg);
bool dir_is_empty(const struct inode_mem *dim);
/* Free the blocks of an empty directory. */
int dir_free(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *dim);
unsigned dir_change_credits(const struct inode_mem *dim);

/* ---- xattr and symlink ---------------------------------------------------- */
int xattr_get(struct lunfs_vol *v, struct inode_mem *im, const char *name, void *buf, size_t len);
int xattr_set(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im, const char *name,
	      const void *value, size_t len, int flags);
int xattr_list(struct lunfs_vol *v, struct inode_mem *im, char *buf, size_t len);
int xattr_remove(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im, const char *name);
int xattr_free(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im);
/* Credits one xattr_set, xattr_remove or symlink_set may need. */
unsigned xattr_change_credits(const struct inode_mem *im);
int symlink_set(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im, const char *target,
		size_t len);
ssize_t symlink_get(struct lunfs_vol *v, struct inode_mem *im, char *buf, size_t len);

#endif
