/*
 * `lunfs locks [--json] [--all] DEVICE|MOUNTPOINT`: who holds what.
 *
 * Lists the lock records that are held (or, with --all, every system and
 * cluster lock and the lock of every allocated inode):
 *   - system locks: the syslock region, one read;
 *   - cluster locks: the cluster table, read in chunks of at most
 *     LOCKS_CHUNK bytes; their summaries also give a count of clusters by
 *     type and of free clusters;
 *   - inode locks: for every cluster whose summary says INODE, its header
 *     and bitmap blocks, then the lock sectors of the allocated units,
 *     read in runs of consecutive allocated slots of at most LOCKS_CHUNK
 *     bytes each (never one I/O per inode).
 * For each: kind, id (the inode number for inode locks), mode, the owner
 * (slot, the host name recorded in that slot, generation), shared holders,
 * when it was granted (the granting host's wall clock, display only) and
 * a pending hand-off request.
 *
 * Owners are shown as recorded: whether an owner is still alive takes
 * watching heartbeats (`lunfs hosts`); a record naming a generation its
 * slot has moved past is marked "stale". Read-only; every decoder result
 * is checked, and a record that does not decode is reported and skipped.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "commands.h"
#include "lunfs/cluster.h"
#include "lunfs/heartbeat.h"
#include "lunfs/lock.h"
#include "lunfs/probe.h"
#include "view.h"

#define LOCKS_CHUNK (4u * 1024u * 1024u)
#define LOCKS_TYPES 4u

struct locks_ctx {
	const char *cmd;
	struct tool_volume vol;
	bool json, all;
	struct lunfs_hb_slot *hosts;   /* max_hosts, as recorded */
	int *hstatus;
	struct json_object *jlocks;
	uint64_t shown, bad;
	uint64_t clusters_by_type[LOCKS_TYPES];
	uint64_t clusters_held;
	uint8_t *buf;                  /* LOCKS_CHUNK, device-aligned */
};

static const char *mode_str(uint8_t m)
{
	switch (m) {
	case LUNFS_LOCK_FREE:
		return "free";
	case LUNFS_LOCK_EXCLUSIVE:
		return "exclusive";
	case LUNFS_LOCK_SHARED:
		return "shared";
	case LUNFS_LOCK_MULTIWRITER:
		return "multiwriter";
	default:
		return "unknown";
	}
}

static const char *kind_str(uint8_t k)
{
	switch (k) {
	case LUNFS_LOCK_KIND_SYSTEM:
		return "system";
	case LUNFS_LOCK_KIND_CLUSTER:
		return "cluster";
	case LUNFS_LOCK_KIND_INODE:
		return "inode";
	default:
		return "unknown";
	}
}

static const char *ctype_str(uint8_t t)
{
	switch (t) {
	case LUNFS_CLUSTER_FREE:
		return "free";
	case LUNFS_CLUSTER_FILE:
		return "file";
	case LUNFS_CLUSTER_META:
		return "meta";
	case LUNFS_CLUSTER_INODE:
		return "inode";
	default:
		return "unknown";
	}
}

/* The name recorded in slot s (index), safe to print; "?" when unknown. */
static const char *host_name(const struct locks_ctx *x, uint32_t s, char *buf, size_t len)
{
	if (s >= x->vol.sb.max_hosts || x->hstatus[s] != 0 || x->hosts[s].host_name[0] == '\0') {
		snprintf(buf, len, "?");
		return buf;
	}
	return tool_str_safe(x->hosts[s].host_name, buf, len);
}

/* An owner whose slot has moved to another generation (or is free) holds
 * nothing, whatever the record says. */
static bool owner_stale(const struct locks_ctx *x, uint32_t s, uint64_t gen)
{
	if (s >= x->vol.sb.max_hosts) {
		return true;
	}
	if (x->hstatus[s] != 0) {
		return x->hstatus[s] != -EUCLEAN;   /* never claimed: stale; corrupt: cannot tell */
	}
	return x->hosts[s].state == LUNFS_HB_FREE || x->hosts[s].generation != gen;
}

static void lock_show(struct locks_ctx *x, const char *label, uint64_t addr, const struct lunfs_lock *l)
{
	uint32_t max = x->vol.sb.max_hosts;
	char name[TOOL_SAFE_STR(64)], since[TOOL_TIME_STRLEN], ago[32];

	x->shown++;
	if (x->json) {
		struct json_object *o = view_j_push_obj(x->jlocks);
		struct json_object *h = json_object_new_array();

		view_j_str(o, "kind", kind_str(l->kind));
		view_j_u64(o, "id", l->lock_id);
		if (label != NULL) {
			view_j_str(o, "name", label);
		}
		view_j_u64(o, "addr", addr);
		view_j_str(o, "mode", mode_str(l->mode));
		view_j_u64(o, "version", l->version);
		if (l->owner_slot != 0) {
			struct json_object *w = json_object_new_object();
			uint32_t s = l->owner_slot - 1u;

			view_j_u64(w, "slot", s);
			view_j_str(w, "host", host_name(x, s, name, sizeof(name)));
			view_j_u64(w, "generation", l->owner_gen);
			view_j_put(w, "stale", json_object_new_boolean(owner_stale(x, s, l->owner_gen)));
			view_j_put(o, "owner", w);
		} else {
			view_j_null(o, "owner");
		}
		for (uint32_t s = 0; s < max && h != NULL; s++) {
			if (lock_holder_test(l, s)) {
				struct json_object *e = view_j_push_obj(h);

				view_j_u64(e, "slot", s);
				view_j_str(e, "host", host_name(x, s, name, sizeof(name)));
			}
		}
		view_j_put(o, "holders", h);
		view_j_time(o, "since", l->acquired_ns);
		if (l->req_slot != 0) {
			struct json_object *r = json_object_new_object();

			view_j_u64(r, "slot", l->req_slot - 1u);
			view_j_str(r, "host", host_name(x, l->req_slot - 1u, name, sizeof(name)));
			view_j_u64(r, "generation", l->req_gen);
			view_j_str(r, "mode", mode_str(l->req_mode));
			view_j_u64(r, "serial", l->req_serial);
			view_j_put(o, "request", r);
		} else {
			view_j_null(o, "request");
		}
		return;
	}
	printf("%-7s %-14" PRIu64 " %-12s ", kind_str(l->kind), l->lock_id, mode_str(l->mode));
	if (l->mode == LUNFS_LOCK_EXCLUSIVE) {
		uint32_t s = l->owner_slot - 1u;

		printf("slot %u (%s) gen %" PRIu64 "%s", s, host_name(x, s, name, sizeof(name)), l->owner_gen,
		       owner_stale(x, s, l->owner_gen) ? " [stale]" : "");
	} else if (l->mode != LUNFS_LOCK_FREE) {
		unsigned n = 0;

		printf("%u holder%s:", l->nholders, l->nholders == 1 ? "" : "s");
		for (uint32_t s = 0; s < max; s++) {
			if (lock_holder_test(l, s)) {
				if (n++ == 8) {
					printf(" ...");
					break;
				}
				printf(" %u (%s)", s, host_name(x, s, name, sizeof(name)));
			}
		}
	} else {
		printf("-");
	}
	if (l->acquired_ns != 0) {
		printf("  since %s (%s)", tool_fmt_time(l->acquired_ns, since, sizeof(since)),
		       view_fmt_ago(l->acquired_ns, ago, sizeof(ago)));
	}
	if (label != NULL) {
		printf("  [%s]", label);
	}
	if (l->req_slot != 0) {
		printf("  request: slot %u (%s) wants %s", l->req_slot - 1u,
		       host_name(x, l->req_slot - 1u, name, sizeof(name)), mode_str(l->req_mode));
	}
	printf("\n");
}

/* Decode one record; 1 when it should be shown. */
static int lock_take(struct locks_ctx *x, const void *rec, uint64_t addr, struct lunfs_lock *l)
{
	int st = lock_decode(&x->vol.codec, rec, addr, l);

	if (st == -ENODATA || st == -ESTALE) {
		memset(l, 0, sizeof(*l));
		return 0;
	}
	if (st != 0) {
		x->bad++;
		if (!x->json) {
			fprintf(stderr, "lunfs %s: lock record at %" PRIu64 " is %s; skipped\n", x->cmd, addr,
				tool_decode_str(st));
		}
		return 0;
	}
	return l->mode != LUNFS_LOCK_FREE || l->req_slot != 0 || x->all;
}

static const char *syslock_str(uint32_t id)
{
	switch (id) {
	case LUNFS_SYSLOCK_VOLUME:
		return "volume";
	case LUNFS_SYSLOCK_CLUSTER_TYPE:
		return "cluster-type";
	case LUNFS_SYSLOCK_RECOVERY:
		return "recovery";
	case LUNFS_SYSLOCK_RENAME:
		return "rename";
	default:
		return NULL;
	}
}

static int locks_system(struct locks_ctx *x)
{
	const struct lunfs_super *sb = &x->vol.sb;
	int err;

	err = dev_read(x->vol.dev, x->buf, (uint64_t)LUNFS_SYSLOCKS * sb->sector_size,
		       sb->regions[LUNFS_REGION_SYSLOCK].offset);
	if (err < 0) {
		return err;
	}
	for (uint32_t id = 0; id < LUNFS_SYSLOCKS; id++) {
		uint64_t addr = layout_syslock_addr(sb, id);
		struct lunfs_lock l;

		if (lock_take(x, x->buf + (uint64_t)id * sb->sector_size, addr, &l) &&
		    (x->all ? syslock_str(id) != NULL || l.mode != LUNFS_LOCK_FREE : true)) {
			l.kind = LUNFS_LOCK_KIND_SYSTEM;
			l.lock_id = id;
			lock_show(x, syslock_str(id), addr, &l);
		}
	}
	return 0;
}

/* The allocated inode slots of INODE cluster c: read its header and
 * bitmap, then the lock sectors of allocated units in runs. */
static int locks_inode_cluster(struct locks_ctx *x, uint64_t c)
{
	const struct lunfs_super *sb = &x->vol.sb;
	uint64_t base = layout_cluster_addr(sb, c);
	uint64_t slot = sb->inode_slot_size;
	uint64_t per_run = LOCKS_CHUNK / slot;
	struct lunfs_cluster_hdr h;
	struct lunfs_bitmap *bm = NULL;
	uint64_t *bits = NULL;
	int err;

	err = dev_read(x->vol.dev, x->buf, LUNFS_META_BLOCK_SIZE, base);
	if (err < 0) {
		return err;
	}
	if (cluster_hdr_decode(&x->vol.codec, x->buf, base, &h) != 0 || h.type != LUNFS_CLUSTER_INODE ||
	    h.unit_size != slot || h.units_total * slot != sb->cluster_size) {
		/* A typing that never committed: the cluster is free. */
		return 0;
	}
	bm = malloc(sizeof(*bm));
	bits = calloc((h.units_total + 63) / 64, sizeof(*bits));
	if (bm == NULL || bits == NULL) {
		err = -ENOMEM;
		goto out;
	}
	for (uint32_t b = 0; b < h.bitmap_blocks; b++) {
		uint64_t addr = base + (uint64_t)(1 + b) * LUNFS_META_BLOCK_SIZE;
		uint64_t first = (uint64_t)b * 32192u;

		err = dev_read(x->vol.dev, x->buf, LUNFS_META_BLOCK_SIZE, addr);
		if (err < 0) {
			goto out;
		}
		if (bitmap_decode(&x->vol.codec, x->buf, addr, bm) != 0 || bm->first_unit != first) {
			x->bad++;
			continue;
		}
		for (uint64_t u = 0; u < 32192u && first + u < h.units_total; u++) {
			if (bm->words[u / 64] & (1ull << (u % 64))) {
				bits[(first + u) / 64] |= 1ull << ((first + u) % 64);
			}
		}
	}
	for (uint64_t u = h.header_units; u < h.units_total;) {
		uint64_t run = 0;

		while (u < h.units_total && !(bits[u / 64] & (1ull << (u % 64)))) {
			u++;
		}
		while (u + run < h.units_total && run < per_run && (bits[(u + run) / 64] & (1ull << ((u + run) % 64)))) {
			run++;
		}
		if (run == 0) {
			break;
		}
		err = dev_read(x->vol.dev, x->buf, run * slot, base + u * slot);
		if (err < 0) {
			goto out;
		}
		for (uint64_t k = 0; k < run; k++) {
			uint64_t addr = base + (u + k) * slot, want = 0;
			struct lunfs_lock l;

			if (!lock_take(x, x->buf + k * slot, addr, &l)) {
				continue;
			}
			if (l.kind == LUNFS_LOCK_KIND_NONE) {
				continue;   /* --all: an inode never locked */
			}
			if (l.kind != LUNFS_LOCK_KIND_INODE || layout_ino_addr(sb, l.lock_id, &want) != 0 ||
			    want != addr) {
				x->bad++;
				continue;
			}
			lock_show(x, NULL, addr, &l);
		}
		u += run;
	}
	err = 0;
out:
	free(bits);
	free(bm);
	return err;
}

static int locks_clusters(struct locks_ctx *x)
{
	const struct lunfs_super *sb = &x->vol.sb;
	uint64_t per = LOCKS_CHUNK / sb->sector_size;
	uint64_t *inode_clusters = NULL, ninode = 0, cap = 0;
	int err = 0;

	for (uint64_t c0 = 0; c0 < sb->cluster_count; c0 += per) {
		uint64_t n = sb->cluster_count - c0 < per ? sb->cluster_count - c0 : per;

		err = dev_read(x->vol.dev, x->buf, n * sb->sector_size, layout_cluster_lock_addr(sb, c0));
		if (err < 0) {
			goto out;
		}
		for (uint64_t k = 0; k < n; k++) {
			uint64_t c = c0 + k, addr = layout_cluster_lock_addr(sb, c);
			struct lunfs_cluster_summary s;
			struct lunfs_lock l;
			char label[32];
			int show = lock_take(x, x->buf + k * sb->sector_size, addr, &l);

			lock_summary_get(&l, &s);
			x->clusters_by_type[s.type < LOCKS_TYPES ? s.type : 0]++;
			if (l.mode != LUNFS_LOCK_FREE) {
				x->clusters_held++;
			}
			if (s.type == LUNFS_CLUSTER_INODE) {
				if (ninode == cap) {
					uint64_t *p = realloc(inode_clusters, (cap ? cap * 2 : 64) * sizeof(*p));

					if (p == NULL) {
						err = -ENOMEM;
						goto out;
					}
					inode_clusters = p;
					cap = cap ? cap * 2 : 64;
				}
				inode_clusters[ninode++] = c;
			}
			if (show) {
				snprintf(label, sizeof(label), "%s, %" PRIu64 " units free", ctype_str(s.type),
					 s.units_free);
				l.kind = LUNFS_LOCK_KIND_CLUSTER;
				l.lock_id = c;
				lock_show(x, label, addr, &l);
			}
		}
	}
	for (uint64_t i = 0; i < ninode; i++) {
		err = locks_inode_cluster(x, inode_clusters[i]);
		if (err < 0) {
			goto out;
		}
	}
out:
	free(inode_clusters);
	return err;
}

int cmd_locks(const struct tool_cmd *cmd, int argc, char **argv)
{
	struct locks_ctx x;
	const struct tool_flag flags[] = { { "json", &x.json }, { "all", &x.all }, { NULL, NULL } };
	struct json_object *root = NULL;
	char dev[PATH_MAX];
	int err, ret;

	memset(&x, 0, sizeof(x));
	x.cmd = cmd->name;
	ret = tool_flags_parse(cmd, argc, argv, "h", flags);
	if (ret != TOOL_FLAGS_GO_ON) {
		return ret;
	}
	ret = TOOL_EXIT_ERROR;
	if (optind != argc - 1) {
		return tool_usage_error(cmd, optind >= argc ? "missing DEVICE|MOUNTPOINT" : "too many arguments");
	}
	if (view_device_resolve(cmd->name, argv[optind], dev, sizeof(dev)) < 0) {
		return TOOL_EXIT_ERROR;
	}
	if (tool_volume_open(cmd->name, dev, &x.vol) < 0) {
		return TOOL_EXIT_ERROR;
	}
	x.hosts = calloc(x.vol.sb.max_hosts, sizeof(*x.hosts));
	x.hstatus = calloc(x.vol.sb.max_hosts, sizeof(*x.hstatus));
	x.buf = dev_buf_alloc(LOCKS_CHUNK);
	if (x.hosts == NULL || x.hstatus == NULL || x.buf == NULL) {
		tool_err(cmd->name, "out of memory");
		goto out;
	}
	err = hb_scan_read(x.vol.dev, &x.vol.sb, &x.vol.codec, x.hosts, x.hstatus);
	if (err < 0) {
		tool_err(cmd->name, "%s: cannot read the heartbeat region: %s", dev, strerror(-err));
		goto out;
	}
	if (x.json) {
		root = json_object_new_object();
		x.jlocks = json_object_new_array();
		view_j_str(root, "device", dev);
	} else {
		printf("%-7s %-14s %-12s %s\n", "KIND", "ID", "MODE", "OWNER / HOLDERS");
	}
	err = locks_system(&x);
	if (err == 0) {
		err = locks_clusters(&x);
	}
	if (err < 0) {
		tool_err(cmd->name, "%s: cannot read lock records: %s", dev, strerror(-err));
		goto out;
	}
	if (x.json) {
		struct json_object *cl = json_object_new_object();

		for (unsigned t = 0; t < LOCKS_TYPES; t++) {
			view_j_u64(cl, ctype_str((uint8_t)t), x.clusters_by_type[t]);
		}
		view_j_u64(cl, "total", x.vol.sb.cluster_count);
		view_j_u64(cl, "held", x.clusters_held);
		view_j_put(root, "clusters", cl);
		view_j_put(root, "locks", x.jlocks);
		x.jlocks = NULL;
		view_j_u64(root, "unreadable_records", x.bad);
		view_j_print(root);
	} else {
		if (x.shown == 0) {
			printf("(no lock is held)\n");
		}
		printf("\nclusters: %" PRIu64 " total, %" PRIu64 " free, %" PRIu64 " file, %" PRIu64
		       " meta, %" PRIu64 " inode; %" PRIu64 " held\n",
		       x.vol.sb.cluster_count, x.clusters_by_type[LUNFS_CLUSTER_FREE],
		       x.clusters_by_type[LUNFS_CLUSTER_FILE], x.clusters_by_type[LUNFS_CLUSTER_META],
		       x.clusters_by_type[LUNFS_CLUSTER_INODE], x.clusters_held);
		if (x.bad > 0) {
			printf("%" PRIu64 " lock record(s) could not be read (see fsck.lunfs)\n", x.bad);
		}
	}
	ret = TOOL_EXIT_OK;
out:
	json_object_put(x.jlocks);
	json_object_put(root);
	dev_buf_free(x.buf);
	free(x.hstatus);
	free(x.hosts);
	tool_volume_close(&x.vol);
	return ret;
}
