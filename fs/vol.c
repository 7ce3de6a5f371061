/*
 * Mounting a volume: vol_mount, vol_unmount, statfs and syncfs.
 *
 * Mount builds the context bottom up, and every step that fails unwinds
 * the ones before it in reverse order (and says why in *o->why):
 *   1. sb_read (primary, else backup) and the feature check: an unknown
 *      incompat bit refuses the mount, an unknown ro_compat bit refuses a
 *      read-write mount; HMAC and ENCRYPT volumes are refused until the
 *      key handling exists (without the key we could neither verify nor
 *      seal their records, and writing unsealed ones would corrupt them);
 *   2. lockd_join: our heartbeat slot, with the volume's compare-and-write
 *      backend (PAXOS or LOCAL, fixed at mkfs). A stable host identity
 *      matters: a host that crashed gets its own slot back (lockd matches
 *      the UUID), so step 4 replays its own journal. With no UUID given we derive one
 *      from the host name (SHA-256("lunfs-host:" + name), first 16 bytes),
 *      which is stable across reboots without any state on the host;
 *   3. the metadata cache;
 *   4. jnl_open(slot, generation): replays our journal if our previous
 *      incarnation did not close it. A read-only mount replays too, as
 *      ext4 does: a dirty journal means the home locations are not
 *      consistent, and reading them unreplayed would show torn metadata;
 *   5. the allocator, the inode cache;
 *   6. orphan recovery (inodes unlinked while open when we crashed);
 *   7. the root must be a directory, or the volume is not usable.
 *
 * Unmount is the reverse: commit and checkpoint (jnl_close marks the
 * journal CLEAN, so the next mount replays nothing), drop the inodes,
 * release the allocator's cluster locks, leave the heartbeat slot.
 *
 * Abandon (a fenced mount, DESIGN 5.5) is unmount without a single write:
 * fence lockd first, so that every lockd write and every lease-checked
 * submit refuses from then on, whatever runs; detach the cluster callbacks
 * (waits for a running one); then free the journal (timer stopped, nothing
 * committed), the open handles (nothing released), the inodes, the
 * allocator (its lock releases are refused by the fence: the records stay
 * as the recoverer expects), the cache; last lockd (heartbeat and monitor
 * threads joined). The recoverer replays our journal and frees our slot;
 * the caller then mounts again, as a new generation.
 *
 * A read-only mount still claims a slot (others must see us as a reader,
 * the cluster issue) but never starts a journal handle: every change
 * returns -EROFS before touching anything (fsops.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fs_internal.h"
#include "lunfs/lockd.h"
#include "lunfs/probe.h"

#define VOL_CACHE_DEFAULT (64ull << 20)
#define VOL_HOST_NAME_MAX 64u

static void vol_why(const struct lunfs_mount_opts *o, const char *why)
{
	if (o != NULL && o->why != NULL) {
		*o->why = why;
	}
}

/* A host identity that is the same every time this host mounts: the first
 * 16 bytes of SHA-256("lunfs-host:" + name). */
int vol_host_uuid_derive(const char *name, uint8_t out[LUNFS_UUID_SIZE])
{
	static const char prefix[] = "lunfs-host:";
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int err = -EIO;

	if (ctx == NULL) {
		return -ENOMEM;
	}
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, prefix, sizeof(prefix) - 1) != 1 ||
	    EVP_DigestUpdate(ctx, name, strlen(name)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen < LUNFS_UUID_SIZE) {
		goto out;
	}
	memcpy(out, md, LUNFS_UUID_SIZE);
	err = 0;
out:
	EVP_MD_CTX_free(ctx);
	return err;
}

static bool uuid_is_zero(const uint8_t *u)
{
	for (unsigned i = 0; i < LUNFS_UUID_SIZE; i++) {
		if (u[i] != 0) {
			return false;
		}
	}
	return true;
}

/* Step 1: the superblock, and whether this build may use the volume. */
static int vol_super_load(struct lunfs_vol *v, const struct lunfs_mount_opts *o)
{
	enum lunfs_sb_copy copy;
	uint32_t unknown = 0;
	int perr = 0;
	int err;

	err = sb_read(v->dev, &v->sb, &copy, &perr);
	if (err == -ENODATA || err == -ESTALE) {
		vol_why(o, "no lunfs volume on this device");
		return -EINVAL;
	}
	if (err == -EUCLEAN) {
		vol_why(o, "both superblocks are corrupt (run fsck.lunfs)");
		return err;
	}
	if (err == -EPROTONOSUPPORT) {
		vol_why(o, "the volume has a newer major format version than this build supports");
		return err;
	}
	if (err == -EOPNOTSUPP) {
		vol_why(o, "the volume's sector size is smaller than the device's");
		return err;
	}
	if (err < 0) {
		vol_why(o, "cannot read the superblock");
		return err;
	}
	if (sb_features_check(&v->sb, false, &unknown) < 0) {
		vol_why(o, "the volume uses incompatible features this build does not know");
		return -EOPNOTSUPP;
	}
	if (!o->read_only && sb_features_check(&v->sb, true, &unknown) < 0) {
		vol_why(o, "the volume uses read-only-compatible features this build does not "
			   "know: it can only be mounted read-only");
		return -EROFS;
	}
	if ((v->sb.feat_incompat & LUNFS_FEAT_INCOMPAT_HMAC) != 0) {
		vol_why(o, "the volume has a secret (HMAC); mounting such volumes is not "
			   "implemented yet");
		return -EOPNOTSUPP;
	}
	if ((v->sb.feat_incompat & LUNFS_FEAT_INCOMPAT_ENCRYPT) != 0) {
		vol_why(o, "the volume is encrypted; mounting encrypted volumes is not "
			   "implemented yet");
		return -EOPNOTSUPP;
	}
	(void)copy;
	return 0;
}

/* Step 2: a host name (ours if none given) and a stable host UUID. */
static int vol_identity(struct lunfs_vol *v, const struct lunfs_mount_opts *o,
			struct lockd_opts *lo)
{
	int err;

	memset(lo, 0, sizeof(*lo));
	if (o->host_name != NULL && o->host_name[0] != '\0') {
		if (strlen(o->host_name) > VOL_HOST_NAME_MAX) {
			vol_why(o, "the host name is longer than 64 bytes");
			return -ENAMETOOLONG;
		}
		strcpy(v->host_name, o->host_name);
	} else {
		char buf[256];

		if (gethostname(buf, sizeof(buf)) != 0) {
			vol_why(o, "cannot get this host's name");
			return -errno;
		}
		buf[sizeof(buf) - 1] = '\0';
		strncpy(v->host_name, buf, VOL_HOST_NAME_MAX);
		v->host_name[VOL_HOST_NAME_MAX] = '\0';
	}
	v->opts.host_name = v->host_name;
	if (uuid_is_zero(o->host_uuid)) {
		err = vol_host_uuid_derive(v->host_name, v->opts.host_uuid);
		if (err < 0) {
			vol_why(o, "cannot derive the host UUID");
			return err;
		}
	}
	lo->host_name = v->host_name;
	memcpy(lo->host_uuid, v->opts.host_uuid, LUNFS_UUID_SIZE);
	lo->no_thread = o->no_hb_thread;
	lo->clock = o->clock;
	lo->lock_log = o->lock_log;
	return 0;
}

/* Step 7. */
static int vol_root_check(struct lunfs_vol *v, const struct lunfs_mount_opts *o)
{
	struct inode_mem *im = NULL;
	int err;

	err = inode_get(v, v->sb.root_ino, &im);
	if (err < 0) {
		vol_why(o, "the root directory cannot be read (run fsck.lunfs)");
		return err == -ENOENT ? -EUCLEAN : err;
	}
	if ((im->di.mode & S_IFMT) != S_IFDIR) {
		vol_why(o, "the root inode is not a directory (run fsck.lunfs)");
		err = -EUCLEAN;
	}
	inode_put(v, im);
	return err;
}

/* The write gate's question (dev/dev_gate.c): may we write now? */
static int vol_lease_allows(void *arg)
{
	struct lunfs_vol *v = arg;

	return lockd_check_lease(v->ld);
}

/* Close the write gate, if it is open: v->dev is the caller's device
 * again. */
static void vol_gate_close(struct lunfs_vol *v)
{
	if (v->dev != v->raw_dev) {
		dev_close(v->dev);
		v->dev = v->raw_dev;
	}
}

int vol_mount(struct lunfs_dev *dev, const struct lunfs_mount_opts *o, struct lunfs_vol **out)
{
	struct lunfs_vol *v;
	struct lockd_opts lo;
	bool locked = false;
	int err;

	*out = NULL;
	if (dev == NULL || o == NULL) {
		vol_why(o, "no device");
		return -EINVAL;
	}
	v = calloc(1, sizeof(*v));
	if (v == NULL) {
		vol_why(o, "out of memory");
		return -ENOMEM;
	}
	v->dev = dev;
	v->raw_dev = dev;
	v->opts = *o;
	v->opts.why = NULL; /* the caller's pointer is for this call only */
	if (v->opts.commit_interval_ms == 0) {
		v->opts.commit_interval_ms = 5000;
	}
	if (v->opts.cache_bytes == 0) {
		v->opts.cache_bytes = VOL_CACHE_DEFAULT;
	}
	err = pthread_mutex_init(&v->meta_lock, NULL);
	if (err != 0) {
		free(v);
		vol_why(o, "out of memory");
		return -err;
	}
	err = pthread_mutex_init(&v->fh_lock, NULL);
	if (err != 0) {
		pthread_mutex_destroy(&v->meta_lock);
		free(v);
		vol_why(o, "out of memory");
		return -err;
	}

	err = vol_super_load(v, o);
	if (err < 0) {
		goto out_free;
	}
	sb_codec(&v->sb, &v->codec);
	err = vol_identity(v, o, &lo);
	if (err < 0) {
		goto out_free;
	}
	/* The volume's backend, fixed at mkfs: there is no option to mount
	 * with the other one, which would not exclude this volume's hosts. */
	lo.caw = lockd_caw_backend(&v->sb);
	/* JOINING until our journal is replayed (step 4): until then the
	 * locks of our slot's earlier generations stay held. */
	lo.stay_joining = true;
	err = lockd_join(dev, &v->sb, &v->codec, &lo, &v->ld);
	if (err == -EBUSY) {
		vol_why(o, "this host is already mounted on the volume (its heartbeat slot is live)");
		goto out_free;
	}
	if (err == -ENOSPC) {
		vol_why(o, "every heartbeat slot of the volume is taken (max_hosts reached)");
		goto out_free;
	}
	if (err < 0) {
		vol_why(o, "cannot claim a heartbeat slot");
		goto out_free;
	}
	v->slot = lockd_slot(v->ld);
	v->gen = lockd_gen(v->ld);
	/* Everything the fs core writes from here on passes the lease check
	 * right before it goes down (dev/dev_gate.c); lockd keeps the raw
	 * device for its own renewals. */
	err = dev_gate_open(dev, vol_lease_allows, v, &v->dev);
	if (err < 0) {
		v->dev = dev;
		vol_why(o, "out of memory");
		goto out_leave;
	}

	err = mc_create(v->dev, v->opts.cache_bytes, &v->mc);
	if (err < 0) {
		vol_why(o, "cannot create the metadata cache");
		goto out_leave;
	}
	/* The journal, allocator and inode modules expect meta_lock held
	 * for everything they do, mount included. */
	pthread_mutex_lock(&v->meta_lock);
	locked = true;
	err = jnl_open(v, v->slot, v->gen, &v->jnl);
	if (err < 0) {
		vol_why(o, err == -EIO ? "I/O error while opening or replaying the journal"
				       : "cannot open or replay this host's journal (run fsck.lunfs)");
		goto out_mc;
	}
	/* Replayed and home: what our earlier generations held may go. */
	err = lockd_activate(v->ld);
	if (err < 0) {
		vol_why(o, "cannot mark our heartbeat slot live");
		goto out_jnl;
	}
	err = alloc_open(v, &v->alloc);
	if (err < 0) {
		vol_why(o, "cannot open the allocator");
		goto out_jnl;
	}
	err = icache_create(v, &v->ic);
	if (err < 0) {
		vol_why(o, "cannot create the inode cache");
		goto out_alloc;
	}
	if (!v->opts.read_only) {
		err = orphan_recover(v);
		if (err < 0) {
			vol_why(o, "cannot reclaim the files unlinked while open before a crash");
			goto out_icache;
		}
	}
	pthread_mutex_unlock(&v->meta_lock);
	locked = false;
	err = vol_root_check(v, o);
	if (err < 0) {
		pthread_mutex_lock(&v->meta_lock);
		locked = true;
		goto out_icache;
	}
	/* Last: from here lockd's monitor may recover dead hosts and ask us
	 * for locks, which needs everything above. */
	err = cluster_attach(v);
	if (err < 0) {
		vol_why(o, "cannot register with the cluster monitor");
		cluster_free(v);
		pthread_mutex_lock(&v->meta_lock);
		locked = true;
		goto out_icache;
	}
	*out = v;
	return 0;

out_icache:
	icache_destroy(v->ic);
out_alloc:
	alloc_close(v->alloc);
out_jnl:
	(void)jnl_close(v->jnl);
out_mc:
	if (locked) {
		pthread_mutex_unlock(&v->meta_lock);
	}
	mc_destroy(v->mc);
out_leave:
	vol_gate_close(v);
	(void)lockd_leave(v->ld);
out_free:
	pthread_mutex_destroy(&v->fh_lock);
	pthread_mutex_destroy(&v->meta_lock);
	free(v);
	return err;
}

int vol_unmount(struct lunfs_vol *v)
{
	int err = 0, e;

	if (v == NULL) {
		return 0;
	}
	/* No more recoveries or hand-offs through us: they need the state
	 * torn down below. (lockd_leave then gives every lock back.) */
	cluster_detach(v);
	/* Handles the front end never released (a FUSE session torn down
	 * without release calls) still pin inodes: release them first so
	 * unlinked files among them are reclaimed while we can still write. */
	fsop_release_all(v);
	pthread_mutex_lock(&v->meta_lock);
	e = jnl_close(v->jnl);
	v->jnl = NULL;
	if (e < 0 && err == 0) {
		err = e;
	}
	if (e == 0) {
		alloc_busy_release_all(v->alloc);
	}
	icache_destroy(v->ic);
	alloc_close(v->alloc);
	pthread_mutex_unlock(&v->meta_lock);
	mc_destroy(v->mc);
	vol_gate_close(v);
	/* Gives back every lock still held, inode locks of opens included. */
	e = lockd_leave(v->ld);
	if (e < 0 && err == 0) {
		err = e;
	}
	cluster_free(v);
	pthread_mutex_destroy(&v->fh_lock);
	pthread_mutex_destroy(&v->meta_lock);
	free(v);
	return err;
}

bool vol_fenced(struct lunfs_vol *v)
{
	return v != NULL && lockd_fenced(v->ld);
}

void vol_abandon(struct lunfs_vol *v)
{
	if (v == NULL) {
		return;
	}
	/* First: from here on nothing of this incarnation may reach the
	 * disk, also if it was not fenced by another host (then it is a
	 * crash as far as the disk is concerned). */
	lockd_fence(v->ld);
	cluster_detach(v);
	pthread_mutex_lock(&v->meta_lock);
	jnl_abandon(v->jnl);
	/* Before the inodes: handles point at them. */
	fsop_fh_abandon_all(v);
	icache_destroy(v->ic);
	alloc_close(v->alloc);
	pthread_mutex_unlock(&v->meta_lock);
	mc_destroy(v->mc);
	vol_gate_close(v);
	lockd_abandon(v->ld);
	cluster_free(v);
	pthread_mutex_destroy(&v->fh_lock);
	pthread_mutex_destroy(&v->meta_lock);
	free(v);
}

void vol_set_inval(struct lunfs_vol *v, void (*fn)(void *arg, uint64_t ino), void *arg)
{
	cluster_set_inval(v, fn, arg);
}

const struct lunfs_super *vol_super(const struct lunfs_vol *v)
{
	return &v->sb;
}

uint64_t vol_root_ino(const struct lunfs_vol *v)
{
	return v->sb.root_ino;
}

uint32_t vol_slot(const struct lunfs_vol *v)
{
	return v->slot;
}

uint64_t vol_gen(const struct lunfs_vol *v)
{
	return v->gen;
}

int fsop_statfs(struct lunfs_vol *v, struct lunfs_statfs *out)
{
	struct alloc_stats st;
	int err;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&v->meta_lock);
	err = alloc_stats(v->alloc, &st);
	pthread_mutex_unlock(&v->meta_lock);
	if (err < 0) {
		return err;
	}
	out->block_size = v->sb.file_block_size;
	out->blocks = st.file_total_bytes / v->sb.file_block_size;
	out->blocks_free = st.file_free_bytes / v->sb.file_block_size;
	out->files = st.inodes_total;
	out->files_free = st.inodes_free;
	out->name_max = LUNFS_NAME_MAX;
	return 0;
}

int fsop_syncfs(struct lunfs_vol *v)
{
	int err;

	if (v->opts.read_only) {
		return 0;
	}
	pthread_mutex_lock(&v->meta_lock);
	err = jnl_sync(v->jnl);
	pthread_mutex_unlock(&v->meta_lock);
	if (err < 0) {
		return err;
	}
	/* jnl_sync makes the metadata durable; file data written in place
	 * (overwrites of written blocks) needs its own cache flush. */
	return dev_flush(v->dev);
}
