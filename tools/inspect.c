/*
 * `lunfs inspect [--json] [--all-slots] [--clusters] DEVICE`: show what is
 * on a volume, read-only (docs/mission.md: "admins see at a glance which
 * hosts are live, who holds which file, how full the volume is").
 *
 * The image may be corrupt or hostile, so the rules are:
 *   - every count and address comes from the superblock, which sb_read has
 *     validated (sb_geometry_check); we re-check the products we use to
 *     size reads against the region lengths before trusting them;
 *   - every decoder result is checked; a bad record is reported as a
 *     problem of its section and the report goes on;
 *   - memory is bounded: the heartbeat and syslock regions are small by
 *     construction (<= 2048 and 64 records), the cluster region (up to
 *     gigabytes on a big volume with small clusters) is read in chunks of
 *     at most INSP_CHUNK bytes, journal superblocks and cluster headers in
 *     batches of INSP_BATCH blocks;
 *   - strings from the disk (label, host names) pass through tool_str_safe
 *     before they are printed, so they cannot inject terminal escapes or
 *     invalid UTF-8 into the JSON.
 *
 * Each section reads, then prints either text or its part of the JSON
 * object. Problems found on the way are collected and listed at the end
 * (and under "problems" in JSON). Corruption does not change the exit
 * status, since showing it is the point; an I/O error on a section does.
 *
 * Liveness is deliberately not judged here: it takes a read-wait-reread of
 * the heartbeat region (hb_scan_live), and a quick look should stay quick.
 * Slots are shown with the state their owners recorded.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "commands.h"
#include "lunfs/cluster.h"
#include "lunfs/heartbeat.h"
#include "lunfs/inode.h"
#include "lunfs/journal.h"
#include "lunfs/lock.h"

/* Largest single read of the cluster lock region. */
#define INSP_CHUNK (16u * 1024u * 1024u)
/* Metadata blocks read per batch (journal superblocks, cluster headers). */
#define INSP_BATCH 64u
/* Problems kept word for word; beyond that they are only counted. */
#define INSP_PROBLEMS_KEPT 100u
#define INSP_PROBLEM_LEN 200u

#define CLUSTER_TYPES 4u /* enum lunfs_cluster_type: FREE..INODE */

struct insp {
	struct tool_volume vol;
	bool json, all_slots, clusters;
	bool io_failed;              /* some section could not be read */
	struct json_object *out;     /* --json: the object being built */
	unsigned nproblems;
	char (*problems)[INSP_PROBLEM_LEN];
};

static void problem(struct insp *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct insp *in, const char *fmt, ...)
{
	va_list ap;

	if (in->nproblems < INSP_PROBLEMS_KEPT && in->problems != NULL) {
		va_start(ap, fmt);
		vsnprintf(in->problems[in->nproblems], INSP_PROBLEM_LEN, fmt, ap);
		va_end(ap);
	}
	in->nproblems++;
}

/* --- JSON helpers ----------------------------------------------------------
 * json_object_new_* return NULL only when out of memory. Adding a NULL
 * value stores a JSON null, which keeps the output valid; adding to a NULL
 * parent would trip json-c's asserts, so every helper takes a NULL parent
 * and then just drops the value. Callers need not check.
 */

static void j_put(struct json_object *o, const char *k, struct json_object *v)
{
	if (o == NULL) {
		json_object_put(v);
		return;
	}
	json_object_object_add(o, k, v);
}

static void j_push(struct json_object *arr, struct json_object *v)
{
	if (arr == NULL) {
		json_object_put(v);
		return;
	}
	json_object_array_add(arr, v);
}

static void j_u64(struct json_object *o, const char *k, uint64_t v)
{
	j_put(o, k, json_object_new_uint64(v));
}

static void j_int(struct json_object *o, const char *k, int64_t v)
{
	j_put(o, k, json_object_new_int64(v));
}

/* s must already be safe text (tool_str_safe or a literal). */
static void j_str(struct json_object *o, const char *k, const char *s)
{
	j_put(o, k, json_object_new_string(s));
}

static void j_bool(struct json_object *o, const char *k, bool v)
{
	j_put(o, k, json_object_new_boolean(v));
}

static void j_null(struct json_object *o, const char *k)
{
	j_put(o, k, NULL);
}

static struct json_object *j_obj(struct json_object *parent, const char *k)
{
	struct json_object *o = parent != NULL ? json_object_new_object() : NULL;

	j_put(parent, k, o);
	return o;
}

static struct json_object *j_arr(struct json_object *parent, const char *k)
{
	struct json_object *a = parent != NULL ? json_object_new_array() : NULL;

	j_put(parent, k, a);
	return a;
}

static struct json_object *j_push_obj(struct json_object *arr)
{
	struct json_object *o = arr != NULL ? json_object_new_object() : NULL;

	j_push(arr, o);
	return o;
}

/* A section could not be read at all: say so in the text, or as
 * jsec[key] in the JSON. */
static void section_failed_key(struct insp *in, struct json_object *jsec, const char *key,
			       const char *what, int err)
{
	char msg[INSP_PROBLEM_LEN];

	snprintf(msg, sizeof(msg), "%s: %s", what, err == -EUCLEAN ? "corrupt" : strerror(-err));
	if (err != -EUCLEAN && err != -EINVAL) {
		in->io_failed = true;
	}
	problem(in, "%s", msg);
	if (in->json) {
		j_str(jsec, key, msg);
	} else {
		printf("  ERROR: %s\n", msg);
	}
}

static void section_failed(struct insp *in, struct json_object *jsec, const char *what, int err)
{
	section_failed_key(in, jsec, "error", what, err);
}

static void j_time(struct json_object *o, const char *k, uint64_t ns)
{
	char key[64], t[TOOL_TIME_STRLEN];

	snprintf(key, sizeof(key), "%s_ns", k);
	j_u64(o, key, ns);
	if (ns == 0) {
		j_null(o, k);
	} else {
		j_str(o, k, tool_fmt_time(ns, t, sizeof(t)));
	}
}

/* --- names ------------------------------------------------------------------ */

static const char *region_name(unsigned r)
{
	static const char *const names[LUNFS_REGION_COUNT] = {
		[LUNFS_REGION_HEARTBEAT] = "heartbeat",
		[LUNFS_REGION_SYSLOCK] = "syslock",
		[LUNFS_REGION_PAXOS] = "paxos",
		[LUNFS_REGION_CLUSTER] = "cluster",
		[LUNFS_REGION_JOURNAL] = "journal",
		[LUNFS_REGION_DATA] = "data",
	};

	return r < LUNFS_REGION_COUNT ? names[r] : "?";
}

static const char *hb_state_name(uint8_t s)
{
	static const char *const names[] = {
		[LUNFS_HB_FREE] = "free",
		[LUNFS_HB_JOINING] = "joining",
		[LUNFS_HB_LIVE] = "live",
		[LUNFS_HB_RECOVERING] = "recovering",
		[LUNFS_HB_LEAVING] = "leaving",
	};

	return s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static const char *lock_mode_name(uint8_t m)
{
	static const char *const names[] = {
		[LUNFS_LOCK_FREE] = "free",
		[LUNFS_LOCK_EXCLUSIVE] = "exclusive",
		[LUNFS_LOCK_SHARED] = "shared",
		[LUNFS_LOCK_MULTIWRITER] = "multiwriter",
	};

	return m < sizeof(names) / sizeof(names[0]) ? names[m] : "unknown";
}

static const char *lock_kind_name(uint8_t k)
{
	static const char *const names[] = {
		[LUNFS_LOCK_KIND_NONE] = "none",
		[LUNFS_LOCK_KIND_SYSTEM] = "system",
		[LUNFS_LOCK_KIND_CLUSTER] = "cluster",
		[LUNFS_LOCK_KIND_INODE] = "inode",
	};

	return k < sizeof(names) / sizeof(names[0]) ? names[k] : "unknown";
}

static const char *syslock_name(uint32_t id)
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
		return "reserved";
	}
}

static const char *cluster_type_name(uint8_t t)
{
	static const char *const names[CLUSTER_TYPES] = {
		[LUNFS_CLUSTER_FREE] = "free",
		[LUNFS_CLUSTER_FILE] = "file",
		[LUNFS_CLUSTER_META] = "meta",
		[LUNFS_CLUSTER_INODE] = "inode",
	};

	return t < CLUSTER_TYPES ? names[t] : "unknown";
}

static const char *file_type_name(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR:
		return "directory";
	case S_IFREG:
		return "regular file";
	case S_IFLNK:
		return "symlink";
	case S_IFCHR:
		return "character device";
	case S_IFBLK:
		return "block device";
	case S_IFIFO:
		return "fifo";
	case S_IFSOCK:
		return "socket";
	default:
		return "unknown";
	}
}

/* Bytes per allocation unit in a cluster of type t (FORMAT.md "Resource
 * clusters"); 0 for FREE and unknown types. */
static uint64_t cluster_unit_size(const struct lunfs_super *sb, uint8_t t)
{
	switch (t) {
	case LUNFS_CLUSTER_FILE:
		return sb->file_block_size;
	case LUNFS_CLUSTER_META:
		return sb->meta_block_size;
	case LUNFS_CLUSTER_INODE:
		return sb->inode_slot_size;
	default:
		return 0;
	}
}

static char *fmt_size(uint64_t v, char *buf, size_t len)
{
	return cli_fmt_size(v, buf, len);
}

/* "slot 3 gen 7" for an owner stored as slot index + 1. */
static char *fmt_owner(uint16_t slot_plus1, uint64_t gen, char *buf, size_t len)
{
	if (slot_plus1 == 0) {
		snprintf(buf, len, "-");
	} else {
		snprintf(buf, len, "slot %u gen %" PRIu64, (unsigned)(slot_plus1 - 1), gen);
	}
	return buf;
}

/* The holders of a lock within the volume's slots; bits beyond max_hosts
 * cannot name a host and are reported. */
static unsigned lock_holders_in_range(const struct lunfs_lock *l, uint32_t max_hosts)
{
	unsigned n = 0;

	for (uint32_t s = 0; s < max_hosts; s++) {
		if (lock_holder_test(l, s)) {
			n++;
		}
	}
	return n;
}

static void lock_check(struct insp *in, const char *what, const struct lunfs_lock *l)
{
	uint32_t max = in->vol.sb.max_hosts;

	if (l->owner_slot > max) {
		problem(in, "%s: owner slot %u is beyond the volume's %u slots", what,
			(unsigned)(l->owner_slot - 1), max);
	}
	if (l->req_slot > max) {
		problem(in, "%s: requester slot %u is beyond the volume's %u slots", what,
			(unsigned)(l->req_slot - 1), max);
	}
	if (lock_holders_in_range(l, max) != l->nholders) {
		problem(in, "%s: holder bits set beyond the volume's %u slots", what, max);
	}
}

/* "exclusive: slot 0 gen 3", "shared: 2 holders (0,4)", "-". */
static char *fmt_holder(const struct lunfs_lock *l, uint32_t max_hosts, char *buf, size_t len)
{
	char own[64];
	size_t o;
	unsigned shown = 0;

	switch (l->mode) {
	case LUNFS_LOCK_FREE:
		snprintf(buf, len, "-");
		break;
	case LUNFS_LOCK_EXCLUSIVE:
		snprintf(buf, len, "%s", fmt_owner(l->owner_slot, l->owner_gen, own, sizeof(own)));
		break;
	default:
		o = (size_t)snprintf(buf, len, "%u holder%s", (unsigned)l->nholders,
				     l->nholders == 1 ? "" : "s");
		for (uint32_t s = 0; s < max_hosts && o + 16 < len; s++) {
			if (!lock_holder_test(l, s)) {
				continue;
			}
			if (shown == 4) {
				o += (size_t)snprintf(buf + o, len - o, ",...");
				break;
			}
			o += (size_t)snprintf(buf + o, len - o, "%s%u", shown == 0 ? " (slots " : ",",
					      (unsigned)s);
			shown++;
		}
		if (shown > 0 && o + 2 < len) {
			snprintf(buf + o, len - o, ")");
		}
		break;
	}
	return buf;
}

static void lock_json(struct json_object *o, const struct lunfs_lock *l, uint32_t max_hosts)
{
	struct json_object *h;

	j_str(o, "kind", lock_kind_name(l->kind));
	j_str(o, "mode", lock_mode_name(l->mode));
	j_u64(o, "version", l->version);
	if (l->owner_slot != 0) {
		j_int(o, "owner_slot", l->owner_slot - 1);
		j_u64(o, "owner_gen", l->owner_gen);
	} else {
		j_null(o, "owner_slot");
		j_null(o, "owner_gen");
	}
	j_u64(o, "nholders", l->nholders);
	h = j_arr(o, "holders");
	for (uint32_t s = 0; s < max_hosts && h != NULL; s++) {
		if (lock_holder_test(l, s)) {
			j_push(h, json_object_new_int64(s));
		}
	}
	j_time(o, "acquired", l->acquired_ns);
	if (l->req_slot != 0) {
		struct json_object *r = j_obj(o, "request");

		if (r != NULL) {
			j_int(r, "slot", l->req_slot - 1);
			j_u64(r, "gen", l->req_gen);
			j_str(r, "mode", lock_mode_name(l->req_mode));
			j_u64(r, "serial", l->req_serial);
		}
	} else {
		j_null(o, "request");
	}
}

/* --- superblock ------------------------------------------------------------ */

static void features_str(uint32_t incompat, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	if (incompat & LUNFS_FEAT_INCOMPAT_HMAC) {
		o += (size_t)snprintf(buf + o, len - o, "hmac");
	}
	if ((incompat & LUNFS_FEAT_INCOMPAT_ENCRYPT) && o < len) {
		o += (size_t)snprintf(buf + o, len - o, "%sencrypt", o ? ", " : "");
	}
	if ((incompat & LUNFS_FEAT_INCOMPAT_PAXOS) && o < len) {
		o += (size_t)snprintf(buf + o, len - o, "%spaxos", o ? ", " : "");
	}
	if (o == 0) {
		snprintf(buf, len, "none");
	}
}

/* The compare-and-write backend every host of the volume uses (FORMAT
 * 18.8): a property of the volume, fixed at mkfs. */
static const char *caw_backend_name(const struct lunfs_super *sb)
{
	return (sb->feat_incompat & LUNFS_FEAT_INCOMPAT_PAXOS) != 0 ? "paxos" : "local";
}

static void show_superblock(struct insp *in)
{
	const struct lunfs_super *sb = &in->vol.sb;
	char label[TOOL_SAFE_STR(sizeof(sb->label))], uuid[CLI_UUID_STRLEN];
	char t[TOOL_TIME_STRLEN], feat[64], s1[CLI_SIZE_STRLEN], s2[CLI_SIZE_STRLEN];
	uint64_t copy_off = in->vol.copy == LUNFS_SB_BACKUP ? sb_backup_addr(in->vol.dev->size)
							     : LUNFS_SB_OFFSET;

	tool_str_safe(sb->label, label, sizeof(label));
	cli_fmt_uuid(sb->uuid, uuid, sizeof(uuid));
	features_str(sb->feat_incompat, feat, sizeof(feat));
	if (in->vol.copy == LUNFS_SB_BACKUP) {
		problem(in, "primary superblock unusable (%s): the backup copy was used; run fsck.lunfs",
			in->vol.primary_why);
	}
	if (in->vol.unknown_incompat != 0) {
		problem(in, "unknown incompatible features 0x%x: parts of the volume may be "
			"misread by this version", in->vol.unknown_incompat);
	}

	if (in->json) {
		struct json_object *o = j_obj(in->out, "superblock");
		struct json_object *f;
		char ver[32];

		if (o == NULL) {
			return;
		}
		j_str(o, "copy", in->vol.copy == LUNFS_SB_BACKUP ? "backup" : "primary");
		j_u64(o, "copy_offset", copy_off);
		if (in->vol.copy == LUNFS_SB_BACKUP) {
			j_str(o, "primary_error", in->vol.primary_why);
		} else {
			j_null(o, "primary_error");
		}
		snprintf(ver, sizeof(ver), "%u.%u", (unsigned)sb->major, (unsigned)sb->minor);
		j_str(o, "format_version", ver);
		j_u64(o, "major", sb->major);
		j_u64(o, "minor", sb->minor);
		f = j_obj(o, "features");
		if (f != NULL) {
			struct json_object *names = j_arr(f, "incompat_names");

			j_u64(f, "compat", sb->feat_compat);
			j_u64(f, "ro_compat", sb->feat_ro_compat);
			j_u64(f, "incompat", sb->feat_incompat);
			j_u64(f, "unknown_incompat", in->vol.unknown_incompat);
			if (names != NULL && (sb->feat_incompat & LUNFS_FEAT_INCOMPAT_HMAC)) {
				j_push(names, json_object_new_string("hmac"));
			}
			if (names != NULL && (sb->feat_incompat & LUNFS_FEAT_INCOMPAT_ENCRYPT)) {
				j_push(names, json_object_new_string("encrypt"));
			}
			if (names != NULL && (sb->feat_incompat & LUNFS_FEAT_INCOMPAT_PAXOS)) {
				j_push(names, json_object_new_string("paxos"));
			}
		}
		j_str(o, "caw_backend", caw_backend_name(sb));
		j_bool(o, "hmac_verified", false);
		j_str(o, "label", label);
		j_str(o, "uuid", uuid);
		j_time(o, "create_time", sb->create_time_ns);
		j_u64(o, "volume_size", sb->volume_size);
		j_u64(o, "device_size", in->vol.dev->size);
		j_u64(o, "sector_size", sb->sector_size);
		j_u64(o, "meta_block_size", sb->meta_block_size);
		j_u64(o, "file_block_size", sb->file_block_size);
		j_u64(o, "inode_slot_size", sb->inode_slot_size);
		j_u64(o, "max_hosts", sb->max_hosts);
		j_u64(o, "cluster_size", sb->cluster_size);
		j_u64(o, "cluster_count", sb->cluster_count);
		j_u64(o, "journal_size", sb->journal_size);
		j_u64(o, "paxos_instances", sb->paxos_instances);
		j_u64(o, "hb_interval_ms", sb->hb_interval_ms);
		j_u64(o, "dead_timeout_ms", sb->dead_timeout_ms);
		j_u64(o, "io_deadline_ms", sb->io_deadline_ms);
		j_u64(o, "root_ino", sb->root_ino);
		j_u64(o, "kdf_iterations", sb->kdf_iterations);
		return;
	}

	printf("Volume %s\n", in->vol.path);
	if (in->vol.copy == LUNFS_SB_BACKUP) {
		printf("  !! PRIMARY SUPERBLOCK UNUSABLE (%s): showing the BACKUP copy at offset %" PRIu64 "\n"
		       "  !! Run fsck.lunfs to restore the primary.\n",
		       in->vol.primary_why, copy_off);
	}
	printf("  %-18s %s\n", "Label", label[0] != '\0' ? label : "(none)");
	printf("  %-18s %s\n", "UUID", uuid);
	printf("  %-18s %u.%u\n", "Format version", (unsigned)sb->major, (unsigned)sb->minor);
	printf("  %-18s %s (compat 0x%x, ro_compat 0x%x, incompat 0x%x)\n", "Features", feat,
	       sb->feat_compat, sb->feat_ro_compat, sb->feat_incompat);
	if (in->vol.unknown_incompat != 0) {
		printf("  %-18s 0x%x UNKNOWN to this version: the rest may be misread\n", "",
		       in->vol.unknown_incompat);
	}
	if (sb->feat_incompat & LUNFS_FEAT_INCOMPAT_HMAC) {
		printf("  %-18s not verified (inspect does not use the volume secret)\n", "Record HMACs");
	}
	printf("  %-18s %s\n", "CAW backend",
	       (sb->feat_incompat & LUNFS_FEAT_INCOMPAT_PAXOS) != 0
		       ? "paxos (Disk Paxos on plain reads and writes: hosts on any machines)"
		       : "local (one machine only: hosts on other machines must not mount it)");
	printf("  %-18s %s\n", "Created", tool_fmt_time(sb->create_time_ns, t, sizeof(t)));
	printf("  %-18s %s (%" PRIu64 " bytes)\n", "Volume size",
	       fmt_size(sb->volume_size, s1, sizeof(s1)), sb->volume_size);
	if (in->vol.dev->size != sb->volume_size) {
		printf("  %-18s %s (%" PRIu64 " bytes)\n", "Device size",
		       fmt_size(in->vol.dev->size, s1, sizeof(s1)), in->vol.dev->size);
	}
	printf("  %-18s %u B (record stride)\n", "Sector size", sb->sector_size);
	printf("  %-18s %s\n", "Metadata block", fmt_size(sb->meta_block_size, s1, sizeof(s1)));
	printf("  %-18s %s\n", "File block", fmt_size(sb->file_block_size, s1, sizeof(s1)));
	printf("  %-18s %s\n", "Inode slot", fmt_size(sb->inode_slot_size, s1, sizeof(s1)));
	printf("  %-18s %u\n", "Max hosts", sb->max_hosts);
	printf("  %-18s %" PRIu64 " x %s\n", "Clusters", sb->cluster_count,
	       fmt_size(sb->cluster_size, s1, sizeof(s1)));
	printf("  %-18s %s per host (%s in all)\n", "Journal", fmt_size(sb->journal_size, s1, sizeof(s1)),
	       fmt_size(sb->regions[LUNFS_REGION_JOURNAL].length, s2, sizeof(s2)));
	printf("  %-18s %u\n", "Paxos instances", sb->paxos_instances);
	printf("  %-18s heartbeat every %u ms, dead after %u ms, I/O deadline %u ms\n", "Timing",
	       sb->hb_interval_ms, sb->dead_timeout_ms, sb->io_deadline_ms);
	printf("  %-18s %" PRIu64 "\n", "Root inode", sb->root_ino);
	printf("  %-18s %s copy, offset %" PRIu64 "\n", "Superblock",
	       in->vol.copy == LUNFS_SB_BACKUP ? "BACKUP" : "primary", copy_off);
}

/* --- regions --------------------------------------------------------------- */

static void region_contents(const struct lunfs_super *sb, unsigned r, char *buf, size_t len)
{
	char s[CLI_SIZE_STRLEN];

	switch (r) {
	case LUNFS_REGION_HEARTBEAT:
		snprintf(buf, len, "%u slots", sb->max_hosts);
		break;
	case LUNFS_REGION_SYSLOCK:
		snprintf(buf, len, "%u lock records", LUNFS_SYSLOCKS);
		break;
	case LUNFS_REGION_PAXOS:
		snprintf(buf, len, "%u instances x %u hosts", sb->paxos_instances, sb->max_hosts);
		break;
	case LUNFS_REGION_CLUSTER:
		snprintf(buf, len, "%" PRIu64 " cluster locks", sb->cluster_count);
		break;
	case LUNFS_REGION_JOURNAL:
		snprintf(buf, len, "%u journals x %s", sb->max_hosts,
			 fmt_size(sb->journal_size, s, sizeof(s)));
		break;
	case LUNFS_REGION_DATA:
		snprintf(buf, len, "%" PRIu64 " clusters x %s", sb->cluster_count,
			 fmt_size(sb->cluster_size, s, sizeof(s)));
		break;
	default:
		buf[0] = '\0';
		break;
	}
}

static void show_regions(struct insp *in)
{
	const struct lunfs_super *sb = &in->vol.sb;
	struct json_object *arr = NULL;
	char s1[CLI_SIZE_STRLEN], what[96];

	if (in->json) {
		arr = j_arr(in->out, "regions");
	} else {
		printf("\nRegions\n");
		printf("  %-10s %16s %16s %10s  %s\n", "NAME", "OFFSET", "END", "LENGTH", "CONTENTS");
	}
	for (unsigned r = 0; r < LUNFS_REGION_COUNT; r++) {
		const struct lunfs_region *g = &sb->regions[r];

		region_contents(sb, r, what, sizeof(what));
		if (in->json) {
			struct json_object *o = j_push_obj(arr);

			if (o != NULL) {
				j_str(o, "name", region_name(r));
				j_u64(o, "offset", g->offset);
				j_u64(o, "length", g->length);
				j_u64(o, "end", g->offset + g->length);
			}
			continue;
		}
		printf("  %-10s %16" PRIu64 " %16" PRIu64 " %10s  %s\n", region_name(r), g->offset,
		       g->offset + g->length, fmt_size(g->length, s1, sizeof(s1)), what);
	}
}

/* --- heartbeat ------------------------------------------------------------- */

struct hb_counts {
	uint32_t state[LUNFS_HB_LEAVING + 1];
	uint32_t empty, stale, corrupt;
};

static bool hb_show_slot(const struct insp *in, const struct lunfs_hb_slot *s, int st)
{
	if (in->all_slots) {
		return true;
	}
	return st == -EUCLEAN || (st == 0 && s->state != LUNFS_HB_FREE);
}

static void hb_slot_json(struct json_object *arr, uint32_t i, const struct lunfs_hb_slot *s,
			 int st)
{
	struct json_object *o = j_push_obj(arr);
	struct json_object *reqs;
	char name[TOOL_SAFE_STR(sizeof(s->host_name))], uuid[CLI_UUID_STRLEN];

	if (o == NULL) {
		return;
	}
	j_u64(o, "slot", i);
	j_str(o, "status", tool_decode_str(st));
	if (st != 0) {
		if (st == -EUCLEAN) {
			j_str(o, "error", "corrupt heartbeat record");
		}
		return;
	}
	j_str(o, "state", hb_state_name(s->state));
	j_str(o, "host_name", tool_str_safe(s->host_name, name, sizeof(name)));
	j_str(o, "host_uuid", cli_fmt_uuid(s->host_uuid, uuid, sizeof(uuid)));
	j_u64(o, "generation", s->generation);
	j_u64(o, "seq", s->seq);
	j_u64(o, "pid", s->pid);
	j_u64(o, "hb_interval_ms", s->hb_interval_ms);
	j_u64(o, "dead_timeout_ms", s->dead_timeout_ms);
	j_u64(o, "io_deadline_ms", s->io_deadline_ms);
	j_u64(o, "journal_offset", s->journal_offset);
	j_u64(o, "journal_size", s->journal_size);
	j_time(o, "mount_time", s->mount_time_ns);
	j_time(o, "beat_time", s->beat_time_ns);
	if (s->recoverer_slot != 0) {
		j_int(o, "recoverer_slot", s->recoverer_slot - 1);
		j_u64(o, "recoverer_gen", s->recoverer_gen);
	} else {
		j_null(o, "recoverer_slot");
		j_null(o, "recoverer_gen");
	}
	reqs = j_arr(o, "requests");
	for (unsigned r = 0; r < LUNFS_HB_REQUESTS && reqs != NULL; r++) {
		const struct lunfs_hb_request *q = &s->requests[r];
		struct json_object *ro;

		if (q->target_slot == 0) {
			continue;
		}
		ro = j_push_obj(reqs);
		if (ro != NULL) {
			j_u64(ro, "lock_addr", q->lock_addr);
			j_int(ro, "target_slot", q->target_slot - 1);
			j_str(ro, "mode", lock_mode_name(q->mode));
			j_u64(ro, "serial", q->serial);
		}
	}
}

static void hb_slot_print(uint32_t i, const struct lunfs_hb_slot *s, int st, int name_w)
{
	char name[TOOL_SAFE_STR(sizeof(s->host_name))], uuid[CLI_UUID_STRLEN];
	char timing[48], jour[CLI_SIZE_STRLEN], t[TOOL_TIME_STRLEN];

	if (st != 0) {
		printf("  %4u  %s\n", i, tool_decode_str(st));
		return;
	}
	tool_str_safe(s->host_name, name, sizeof(name));
	snprintf(timing, sizeof(timing), "%u/%u/%u", s->hb_interval_ms, s->dead_timeout_ms,
		 s->io_deadline_ms);
	fmt_size(s->journal_offset, jour, sizeof(jour));
	printf("  %4u  %-10s  %-*s  %6" PRIu64 "  %10" PRIu64 "  %7u  %-16s  %-10s  %s  %s", i,
	       hb_state_name(s->state),
	       name_w, name[0] != '\0' ? name : "-", s->generation, s->seq, s->pid, timing, jour,
	       cli_fmt_uuid(s->host_uuid, uuid, sizeof(uuid)),
	       tool_fmt_time(s->beat_time_ns, t, sizeof(t)));
	if (s->state == LUNFS_HB_RECOVERING && s->recoverer_slot != 0) {
		printf("  (by slot %u gen %" PRIu64 ")", (unsigned)(s->recoverer_slot - 1),
		       s->recoverer_gen);
	}
	printf("\n");
}

static void show_heartbeat(struct insp *in)
{
	const struct lunfs_super *sb = &in->vol.sb;
	uint32_t n = sb->max_hosts;
	struct lunfs_hb_slot *slots = NULL;
	int *status = NULL;
	struct json_object *jsec = NULL, *jslots = NULL, *jc;
	struct hb_counts c;
	int err, name_w = 4;
	uint32_t shown = 0;

	memset(&c, 0, sizeof(c));
	if (in->json) {
		jsec = j_obj(in->out, "heartbeat");
		if (jsec != NULL) {
			j_u64(jsec, "max_hosts", n);
		}
	} else {
		printf("\nHeartbeat slots\n");
	}
	/* hb_scan_read reads max_hosts records from the region: make sure the
	 * region really holds them before trusting the count. */
	if (n == 0 || n > LUNFS_HOSTS_MAX ||
	    sb->regions[LUNFS_REGION_HEARTBEAT].length < (uint64_t)n * sb->sector_size) {
		section_failed(in, jsec, "heartbeat region", -EUCLEAN);
		return;
	}
	slots = calloc(n, sizeof(*slots));
	status = calloc(n, sizeof(*status));
	if (slots == NULL || status == NULL) {
		section_failed(in, jsec, "heartbeat region", -ENOMEM);
		goto out;
	}
	err = hb_scan_read(in->vol.dev, sb, &in->vol.codec, slots, status);
	if (err < 0) {
		section_failed(in, jsec, "heartbeat region", err);
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct lunfs_hb_slot *s = &slots[i];

		switch (status[i]) {
		case 0:
			if (s->state <= LUNFS_HB_LEAVING) {
				c.state[s->state]++;
			}
			if (s->slot != i) {
				problem(in, "heartbeat slot %u: record says it is slot %u", i,
					(unsigned)s->slot);
			}
			if (s->state != LUNFS_HB_FREE && s->journal_offset != layout_journal_addr(sb, i)) {
				problem(in, "heartbeat slot %u: journal offset %" PRIu64
					" is not this slot's journal (%" PRIu64 ")", i,
					s->journal_offset, layout_journal_addr(sb, i));
			}
			if (s->recoverer_slot > n) {
				problem(in, "heartbeat slot %u: recoverer slot %u is beyond the volume's %u slots",
					i, (unsigned)(s->recoverer_slot - 1), n);
			}
			break;
		case -ENODATA:
			c.empty++;
			break;
		case -ESTALE:
			c.stale++;
			break;
		default:
			c.corrupt++;
			problem(in, "heartbeat slot %u: %s record", i, tool_decode_str(status[i]));
			break;
		}
		if (hb_show_slot(in, s, status[i]) && status[i] == 0) {
			char name[TOOL_SAFE_STR(sizeof(s->host_name))];
			int w = (int)strlen(tool_str_safe(s->host_name, name, sizeof(name)));

			if (w > name_w) {
				name_w = w;
			}
		}
	}

	if (in->json) {
		if (jsec == NULL) {
			goto out;
		}
		jc = j_obj(jsec, "counts");
		if (jc != NULL) {
			for (unsigned st = 0; st <= LUNFS_HB_LEAVING; st++) {
				j_u64(jc, hb_state_name((uint8_t)st), c.state[st]);
			}
			j_u64(jc, "empty", c.empty);
			j_u64(jc, "stale", c.stale);
			j_u64(jc, "corrupt", c.corrupt);
		}
		j_bool(jsec, "liveness_judged", false);
		jslots = j_arr(jsec, "slots");
		for (uint32_t i = 0; i < n; i++) {
			if (hb_show_slot(in, &slots[i], status[i])) {
				hb_slot_json(jslots, i, &slots[i], status[i]);
			}
		}
		goto out;
	}

	printf("  %u slots: %u live, %u joining, %u leaving, %u recovering, %u free, %u never used",
	       n, c.state[LUNFS_HB_LIVE], c.state[LUNFS_HB_JOINING], c.state[LUNFS_HB_LEAVING],
	       c.state[LUNFS_HB_RECOVERING], c.state[LUNFS_HB_FREE], c.empty);
	if (c.stale != 0) {
		printf(", %u left over from an earlier mkfs", c.stale);
	}
	if (c.corrupt != 0) {
		printf(", %u CORRUPT", c.corrupt);
	}
	printf("\n  States are as recorded by each host; liveness is not judged here.\n");
	for (uint32_t i = 0; i < n; i++) {
		if (!hb_show_slot(in, &slots[i], status[i])) {
			continue;
		}
		if (shown++ == 0) {
			printf("  %4s  %-10s  %-*s  %6s  %10s  %7s  %-16s  %-10s  %-36s  %s\n", "SLOT",
			       "STATE", name_w, "HOST", "GEN", "SEQ", "PID", "BEAT/DEAD/IO ms",
			       "JOURNAL", "HOST UUID", "LAST BEAT (host's clock)");
		}
		hb_slot_print(i, &slots[i], status[i], name_w);
	}
	if (shown == 0) {
		printf("  No slot is claimed: by the records, no host has this volume mounted.\n");
	}
out:
	free(slots);
	free(status);
}

/* --- system locks ----------------------------------------------------------- */

static void show_syslocks(struct insp *in)
{
	const struct lunfs_super *sb = &in->vol.sb;
	uint64_t len = (uint64_t)LUNFS_SYSLOCKS * sb->sector_size;
	uint8_t *buf = NULL;
	struct json_object *jsec = NULL;
	uint32_t held = 0, corrupt = 0;
	int err;

	if (in->json) {
		jsec = j_arr(in->out, "syslocks");
	} else {
		printf("\nSystem locks\n");
	}
	if (sb->regions[LUNFS_REGION_SYSLOCK].length < len) {
		section_failed_key(in, in->out, "syslocks_error", "system lock region", -EUCLEAN);
		goto out;
	}
	buf = dev_buf_alloc(len);
	if (buf == NULL) {
		section_failed_key(in, in->out, "syslocks_error", "system lock region", -ENOMEM);
		goto out;
	}
	err = dev_read(in->vol.dev, buf, len, sb->regions[LUNFS_REGION_SYSLOCK].offset);
	if (err < 0) {
		section_failed_key(in, in->out, "syslocks_error", "system lock region", err);
		goto out;
	}
	for (uint32_t id = 0; id < LUNFS_SYSLOCKS; id++) {
		struct lunfs_lock l;
		char what[64], holder[96], t[TOOL_TIME_STRLEN];
		int st = lock_decode(&in->vol.codec, buf + (uint64_t)id * sb->sector_size,
				     layout_syslock_addr(sb, id), &l);

		snprintf(what, sizeof(what), "system lock %u (%s)", id, syslock_name(id));
		if (st == -ENODATA || st == -ESTALE) {
			continue; /* never taken since mkfs: free */
		}
		if (st != 0) {
			corrupt++;
			problem(in, "%s: %s record", what, tool_decode_str(st));
		} else {
			if (l.kind != LUNFS_LOCK_KIND_SYSTEM || l.lock_id != id) {
				problem(in, "%s: record has kind %s and id %" PRIu64, what,
					lock_kind_name(l.kind), l.lock_id);
			}
			lock_check(in, what, &l);
			if (l.mode == LUNFS_LOCK_FREE) {
				continue;
			}
			held++;
		}
		if (in->json) {
			struct json_object *o = j_push_obj(jsec);

			if (o == NULL) {
				continue;
			}
			j_u64(o, "id", id);
			j_str(o, "name", syslock_name(id));
			j_str(o, "status", tool_decode_str(st));
			if (st != 0) {
				j_str(o, "error", "corrupt lock record");
			} else {
				lock_json(o, &l, sb->max_hosts);
			}
			continue;
		}
		if (held + corrupt == 1) {
			printf("  %3s  %-13s %-12s %-28s %8s  %s\n", "ID", "NAME", "MODE", "HOLDER",
			       "VERSION", "SINCE (holder's clock)");
		}
		if (st != 0) {
			printf("  %3u  %-13s CORRUPT\n", id, syslock_name(id));
			continue;
		}
		printf("  %3u  %-13s %-12s %-28s %8" PRIu64 "  %s\n", id, syslock_name(id),
		       lock_mode_name(l.mode), fmt_holder(&l, sb->max_hosts, holder, sizeof(holder)),
		       l.version, tool_fmt_time(l.acquired_ns, t, sizeof(t)));
	}
	if (!in->json && held + corrupt == 0) {
		printf("  None held.\n");
	}
out:
	dev_buf_free(buf);
}

/* --- journals ---------------------------------------------------------------- */

struct jr_counts {
	uint32_t empty, clean, dirty, unwritten, stale, corrupt;
};

/* A dirty journal, kept to be listed after the counts. */
struct jr_dirty {
	uint32_t slot;
	struct lunfs_jsb jsb;
};

/* Read every journal's superblock (block 0 of the journal), INSP_BATCH at
 * a time; count the states and keep the dirty ones. */
static int journals_read(struct insp *in, struct jr_counts *c, struct jr_dirty *dirty,
			 struct json_object *jbad)
{
	const struct lunfs_super *sb = &in->vol.sb;
	uint32_t n = sb->max_hosts;
	struct lunfs_io ios[INSP_BATCH];
	uint8_t *buf = dev_buf_alloc((size_t)INSP_BATCH * LUNFS_META_BLOCK_SIZE);
	int err = 0;

	if (buf == NULL) {
		return -ENOMEM;
	}
	for (uint32_t first = 0; first < n; first += INSP_BATCH) {
		uint32_t cnt = n - first < INSP_BATCH ? n - first : INSP_BATCH;

		for (uint32_t k = 0; k < cnt; k++) {
			ios[k] = (struct lunfs_io){
				.op = LUNFS_IO_READ,
				.buf = buf + (size_t)k * LUNFS_META_BLOCK_SIZE,
				.len = LUNFS_META_BLOCK_SIZE,
				.off = layout_journal_addr(sb, first + k),
			};
		}
		err = dev_submit(in->vol.dev, ios, cnt);
		if (err < 0) {
			goto out;
		}
		for (uint32_t k = 0; k < cnt; k++) {
			uint32_t j = first + k;
			struct lunfs_jsb jsb;
			int st = jsb_decode(&in->vol.codec, ios[k].buf, ios[k].off, sb->journal_size, &jsb);

			if (st == -ENODATA) {
				c->unwritten++;
				continue;
			}
			if (st == -ESTALE) {
				c->stale++;
				continue;
			}
			if (st != 0) {
				c->corrupt++;
				problem(in, "journal %u: %s superblock", j, tool_decode_str(st));
				j_push(jbad, json_object_new_int64(j));
				continue;
			}
			if (jsb.slot != j) {
				problem(in, "journal %u: its superblock says slot %u", j, (unsigned)jsb.slot);
			}
			if (jsb.state == LUNFS_JOURNAL_EMPTY) {
				c->empty++;
			} else if (jsb.state == LUNFS_JOURNAL_CLEAN) {
				c->clean++;
			} else {
				/* jsb_decode admits no other state. */
				dirty[c->dirty].slot = j;
				dirty[c->dirty].jsb = jsb;
				c->dirty++;
			}
		}
	}
out:
	dev_buf_free(buf);
	return err;
}

static void show_journals(struct insp *in)
{
	const struct lunfs_super *sb = &in->vol.sb;
	uint32_t n = sb->max_hosts;
	struct jr_dirty *dirty = NULL;
	struct json_object *jsec = NULL, *jdirty = NULL, *jbad = NULL;
	struct jr_counts c;
	char s1[CLI_SIZE_STRLEN];
	int err;

	memset(&c, 0, sizeof(c));
	if (in->json) {
		jsec = j_obj(in->out, "journals");
		j_u64(jsec, "count", n);
		j_u64(jsec, "journal_size", sb->journal_size);
		jdirty = j_arr(jsec, "dirty_slots");
		jbad = j_arr(jsec, "corrupt_slots");
	} else {
		printf("\nJournals\n");
	}
	if (n == 0 || n > LUNFS_HOSTS_MAX || sb->journal_size < LUNFS_META_BLOCK_SIZE ||
	    sb->regions[LUNFS_REGION_JOURNAL].length / sb->journal_size < n) {
		section_failed(in, jsec, "journal region", -EUCLEAN);
		return;
	}
	dirty = calloc(n, sizeof(*dirty));
	if (dirty == NULL) {
		section_failed(in, jsec, "journal region", -ENOMEM);
		return;
	}
	err = journals_read(in, &c, dirty, jbad);
	if (err < 0) {
		section_failed(in, jsec, "journal superblocks", err);
		goto out;
	}
	if (in->json) {
		j_u64(jsec, "clean", c.clean);
		j_u64(jsec, "dirty", c.dirty);
		j_u64(jsec, "empty", c.empty);
		j_u64(jsec, "unwritten", c.unwritten);
		j_u64(jsec, "stale", c.stale);
		j_u64(jsec, "corrupt", c.corrupt);
		for (uint32_t i = 0; i < c.dirty; i++) {
			struct json_object *o = j_push_obj(jdirty);

			j_u64(o, "slot", dirty[i].slot);
			j_u64(o, "owner_gen", dirty[i].jsb.owner_gen);
			j_u64(o, "tail_seq", dirty[i].jsb.tail_seq);
			j_u64(o, "tail_block", dirty[i].jsb.tail_block);
			j_u64(o, "ring_blocks", dirty[i].jsb.ring_blocks);
			j_u64(o, "orphans", dirty[i].jsb.norphans);
		}
		goto out;
	}
	printf("  %u journals of %s: %u dirty, %u clean, %u empty", n,
	       fmt_size(sb->journal_size, s1, sizeof(s1)), c.dirty, c.clean, c.empty + c.unwritten);
	if (c.stale != 0) {
		printf(", %u left over from an earlier mkfs", c.stale);
	}
	if (c.corrupt != 0) {
		printf(", %u CORRUPT", c.corrupt);
	}
	printf("\n");
	if (c.dirty == 0) {
		goto out;
	}
	/* Dirty is normal for a mounted host; for a dead one it means replay. */
	printf("  Dirty journals (in use, or awaiting replay if their host died):\n");
	printf("  %4s  %10s  %12s  %12s  %8s\n", "SLOT", "OWNER GEN", "TAIL SEQ", "TAIL BLOCK",
	       "ORPHANS");
	for (uint32_t i = 0; i < c.dirty; i++) {
		const struct lunfs_jsb *j = &dirty[i].jsb;

		printf("  %4u  %10" PRIu64 "  %12" PRIu64 "  %12" PRIu64 "  %8" PRIu64 "\n",
		       dirty[i].slot, j->owner_gen, j->tail_seq, j->tail_block, j->norphans);
	}
out:
	free(dirty);
}

/* --- free space ------------------------------------------------------------------ */

struct type_acc {
	uint64_t clusters;
	uint64_t units_total, units_free;
	uint64_t free_bytes;
	uint64_t locked;
};

struct space_acc {
	struct type_acc t[CLUSTER_TYPES]; /* [FREE] counts free (untyped) clusters */
	uint64_t corrupt;                 /* lock record unreadable: space unknown, counted used */
	uint64_t unknown_type;
	uint64_t bad_summary;
	uint64_t hdr_checked, hdr_mismatch;
};

/* A typed cluster waiting for its header to be read (--clusters). */
struct pending {
	uint64_t index;
	struct lunfs_lock lock;
	struct lunfs_cluster_summary sum;
};

struct space_ctx {
	struct insp *in;
	struct space_acc acc;
	struct json_object *jclusters;
	struct pending pend[INSP_BATCH];
	unsigned npend;
	uint8_t *hdrbuf;                  /* INSP_BATCH meta blocks */
	bool header_line;
};

/* Compare one typed cluster's summary with its header block and print or
 * record the cluster's line. */
static void cluster_report(struct space_ctx *sc, const struct pending *p, int hst,
			   const struct lunfs_cluster_hdr *h)
{
	struct insp *in = sc->in;
	const struct lunfs_super *sb = &in->vol.sb;
	uint64_t unit = cluster_unit_size(sb, p->sum.type);
	char mism[4][96], holder[96], hdr_txt[256], s1[CLI_SIZE_STRLEN];
	unsigned nm = 0;
	bool locked = p->lock.mode != LUNFS_LOCK_FREE;

	if (hst == 0) {
		if (h->type != p->sum.type) {
			snprintf(mism[nm++], sizeof(mism[0]), "type %s (summary %s)",
				 cluster_type_name(h->type), cluster_type_name(p->sum.type));
		}
		if (h->cluster_index != p->index) {
			snprintf(mism[nm++], sizeof(mism[0]), "cluster index %" PRIu64, h->cluster_index);
		}
		if (h->units_total != p->sum.units_total) {
			snprintf(mism[nm++], sizeof(mism[0]), "units_total %" PRIu64 " (summary %" PRIu64 ")",
				 h->units_total, p->sum.units_total);
		}
		/* The holder updates the summary when it lets go: while the
		 * cluster is locked, a stale free count is expected. */
		if (h->units_free != p->sum.units_free && !locked) {
			snprintf(mism[nm++], sizeof(mism[0]), "units_free %" PRIu64 " (summary %" PRIu64 ")",
				 h->units_free, p->sum.units_free);
		}
	}
	sc->acc.hdr_checked++;
	if (hst != 0 || nm > 0) {
		sc->acc.hdr_mismatch++;
	}
	if (hst != 0) {
		problem(in, "cluster %" PRIu64 ": summary says %s but the header block is %s", p->index,
			cluster_type_name(p->sum.type), tool_decode_str(hst));
	}
	for (unsigned k = 0; k < nm; k++) {
		problem(in, "cluster %" PRIu64 ": header disagrees with summary: %s", p->index, mism[k]);
	}

	if (in->json) {
		struct json_object *o = j_push_obj(sc->jclusters);
		struct json_object *m;

		if (o == NULL) {
			return;
		}
		j_u64(o, "index", p->index);
		j_str(o, "type", cluster_type_name(p->sum.type));
		j_u64(o, "unit_size", unit);
		j_u64(o, "units_total", p->sum.units_total);
		j_u64(o, "units_free", p->sum.units_free);
		if (locked) {
			lock_json(j_obj(o, "lock"), &p->lock, sb->max_hosts);
		} else {
			j_null(o, "lock");
		}
		j_str(o, "header", tool_decode_str(hst));
		if (hst == 0) {
			j_u64(o, "header_units_free", h->units_free);
		} else {
			j_null(o, "header_units_free");
		}
		m = j_arr(o, "mismatches");
		for (unsigned k = 0; k < nm && m != NULL; k++) {
			j_push(m, json_object_new_string(mism[k]));
		}
		return;
	}
	if (!sc->header_line) {
		printf("  %10s  %-6s %8s %12s %12s  %-28s %s\n", "CLUSTER", "TYPE", "UNIT", "UNITS",
		       "FREE", "HOLDER", "HEADER CHECK");
		sc->header_line = true;
	}
	if (hst != 0) {
		snprintf(hdr_txt, sizeof(hdr_txt), "header %s", tool_decode_str(hst));
	} else if (nm == 0 && h->units_free != p->sum.units_free) {
		snprintf(hdr_txt, sizeof(hdr_txt), "ok; %" PRIu64 " free now (summary lags while locked)",
			 h->units_free);
	} else if (nm == 0) {
		snprintf(hdr_txt, sizeof(hdr_txt), "ok");
	} else {
		size_t o = 0;

		for (unsigned k = 0; k < nm && o < sizeof(hdr_txt); k++) {
			o += (size_t)snprintf(hdr_txt + o, sizeof(hdr_txt) - o, "%s%s", k ? "; " : "",
					      mism[k]);
		}
	}
	printf("  %10" PRIu64 "  %-6s %8s %12" PRIu64 " %12" PRIu64 "  %-28s %s\n", p->index,
	       cluster_type_name(p->sum.type), fmt_size(unit, s1, sizeof(s1)), p->sum.units_total,
	       p->sum.units_free, fmt_holder(&p->lock, sb->max_hosts, holder, sizeof(holder)), hdr_txt);
}

static int pending_flush(struct space_ctx *sc)
{
	struct insp *in = sc->in;
	struct lunfs_io ios[INSP_BATCH];
	int err;

	if (sc->npend == 0) {
		return 0;
	}
	for (unsigned k = 0; k < sc->npend; k++) {
		ios[k] = (struct lunfs_io){
			.op = LUNFS_IO_READ,
			.buf = sc->hdrbuf + (size_t)k * LUNFS_META_BLOCK_SIZE,
			.len = LUNFS_META_BLOCK_SIZE,
			.off = layout_cluster_addr(&in->vol.sb, sc->pend[k].index),
		};
	}
	err = dev_submit(in->vol.dev, ios, sc->npend);
	for (unsigned k = 0; k < sc->npend; k++) {
		struct lunfs_cluster_hdr h;
		/* res is the byte count on success, a negative errno if not. */
		int hst = ios[k].res < 0 ? (int)ios[k].res : 0;

		memset(&h, 0, sizeof(h));
		if (hst == 0) {
			hst = cluster_hdr_decode(&in->vol.codec, ios[k].buf, ios[k].off, &h);
		}
		cluster_report(sc, &sc->pend[k], hst < 0 ? hst : 0, &h);
	}
	sc->npend = 0;
	return err < 0 && err != -EINVAL ? err : 0;
}

/* Account one cluster lock record. */
static void space_account(struct space_ctx *sc, uint64_t c, const void *rec)
{
	struct insp *in = sc->in;
	const struct lunfs_super *sb = &in->vol.sb;
	struct lunfs_lock l;
	struct lunfs_cluster_summary sum;
	struct type_acc *t;
	uint64_t unit, max_units, nfree;
	int st = lock_decode(&in->vol.codec, rec, layout_cluster_lock_addr(sb, c), &l);

	if (st == -ENODATA || st == -ESTALE) {
		sc->acc.t[LUNFS_CLUSTER_FREE].clusters++;
		return;
	}
	if (st != 0) {
		sc->acc.corrupt++;
		problem(in, "cluster %" PRIu64 ": %s lock record (its space is counted as used)", c,
			tool_decode_str(st));
		return;
	}
	if (l.kind != LUNFS_LOCK_KIND_CLUSTER || l.lock_id != c) {
		sc->acc.corrupt++;
		problem(in, "cluster %" PRIu64 ": lock record has kind %s and id %" PRIu64
			" (its space is counted as used)", c, lock_kind_name(l.kind), l.lock_id);
		return;
	}
	lock_summary_get(&l, &sum);
	if (sum.type >= CLUSTER_TYPES) {
		sc->acc.unknown_type++;
		problem(in, "cluster %" PRIu64 ": unknown type %u in its summary (counted as used)", c,
			(unsigned)sum.type);
		return;
	}
	t = &sc->acc.t[sum.type];
	t->clusters++;
	if (l.mode != LUNFS_LOCK_FREE) {
		t->locked++;
	}
	if (sum.type == LUNFS_CLUSTER_FREE) {
		return;
	}
	/* The summary is a hint written by the cluster's holder: bound it by
	 * the cluster's size before adding it up, so a wild value cannot
	 * overflow the totals or make free exceed total. */
	unit = cluster_unit_size(sb, sum.type);
	max_units = unit != 0 ? sb->cluster_size / unit : 0;
	nfree = sum.units_free;
	if (sum.units_total > max_units || sum.units_free > sum.units_total) {
		sc->acc.bad_summary++;
		problem(in, "cluster %" PRIu64 ": summary out of range (%" PRIu64 " of %" PRIu64
			" units free, at most %" PRIu64 " units fit)", c, sum.units_free,
			sum.units_total, max_units);
		if (nfree > sum.units_total) {
			nfree = sum.units_total;
		}
		if (nfree > max_units) {
			nfree = max_units;
		}
	}
	t->units_total += sum.units_total <= max_units ? sum.units_total : max_units;
	t->units_free += nfree;
	t->free_bytes += nfree * unit;

	if (in->clusters) {
		struct pending *p = &sc->pend[sc->npend++];

		p->index = c;
		p->lock = l;
		p->sum = sum;
	}
}

static void space_json(struct space_ctx *sc, struct json_object *jsec, uint64_t total,
		       uint64_t free_b)
{
	const struct lunfs_super *sb = &sc->in->vol.sb;
	const struct space_acc *a = &sc->acc;
	struct json_object *bt;

	j_u64(jsec, "total_bytes", total);
	j_u64(jsec, "free_bytes", free_b);
	j_u64(jsec, "used_bytes", total - free_b);
	{
		/* Two decimals, printed as such (json-c would print %.17g). */
		double pct = total ? 100.0 * (double)(total - free_b) / (double)total : 0.0;
		char txt[32];

		snprintf(txt, sizeof(txt), "%.2f", pct);
		j_put(jsec, "used_percent", json_object_new_double_s(pct, txt));
	}
	j_u64(jsec, "cluster_size", sb->cluster_size);
	j_u64(jsec, "clusters_total", sb->cluster_count);
	j_u64(jsec, "clusters_free", a->t[LUNFS_CLUSTER_FREE].clusters);
	j_u64(jsec, "clusters_corrupt", a->corrupt);
	j_u64(jsec, "clusters_unknown_type", a->unknown_type);
	j_u64(jsec, "summaries_out_of_range", a->bad_summary);
	bt = j_obj(jsec, "by_type");
	for (unsigned ty = LUNFS_CLUSTER_FILE; ty < CLUSTER_TYPES && bt != NULL; ty++) {
		const struct type_acc *t = &a->t[ty];
		struct json_object *o = j_obj(bt, cluster_type_name((uint8_t)ty));
		uint64_t bytes = t->clusters * sb->cluster_size;

		if (o == NULL) {
			continue;
		}
		j_u64(o, "clusters", t->clusters);
		j_u64(o, "locked", t->locked);
		j_u64(o, "unit_size", cluster_unit_size(sb, (uint8_t)ty));
		j_u64(o, "units_total", t->units_total);
		j_u64(o, "units_free", t->units_free);
		j_u64(o, "total_bytes", bytes);
		j_u64(o, "free_bytes", t->free_bytes);
		j_u64(o, "used_bytes", bytes - t->free_bytes);
	}
	if (sc->in->clusters) {
		j_u64(jsec, "headers_checked", a->hdr_checked);
		j_u64(jsec, "header_mismatches", a->hdr_mismatch);
	}
}

static void space_print(struct space_ctx *sc, uint64_t total, uint64_t free_b)
{
	const struct lunfs_super *sb = &sc->in->vol.sb;
	const struct space_acc *a = &sc->acc;
	char s1[CLI_SIZE_STRLEN], s2[CLI_SIZE_STRLEN], s3[CLI_SIZE_STRLEN];
	uint64_t used = total - free_b;
	/* Tenths of a percent; used <= total, so this is 0..1000. */
	unsigned permille = total ? (unsigned)((double)used * 1000.0 / (double)total) : 0;

	if (sc->header_line) {
		printf("\n");
	}
	printf("  %-8s %11s\n", "Data", fmt_size(total, s1, sizeof(s1)));
	printf("  %-8s %11s  (%u.%u%%)\n", "Used", fmt_size(used, s1, sizeof(s1)), permille / 10,
	       permille % 10);
	printf("  %-8s %11s\n", "Free", fmt_size(free_b, s1, sizeof(s1)));
	printf("  %-6s %10s %11s %11s %11s\n", "TYPE", "CLUSTERS", "SIZE", "USED", "FREE");
	printf("  %-6s %10" PRIu64 " %11s %11s %11s  %s\n", "free", a->t[LUNFS_CLUSTER_FREE].clusters,
	       fmt_size(a->t[LUNFS_CLUSTER_FREE].clusters * sb->cluster_size, s1, sizeof(s1)), "-",
	       fmt_size(a->t[LUNFS_CLUSTER_FREE].clusters * sb->cluster_size, s2, sizeof(s2)),
	       "untyped, available to any type");
	for (unsigned ty = LUNFS_CLUSTER_FILE; ty < CLUSTER_TYPES; ty++) {
		const struct type_acc *t = &a->t[ty];
		uint64_t bytes = t->clusters * sb->cluster_size;
		char note[96] = "";

		if (ty == LUNFS_CLUSTER_INODE) {
			snprintf(note, sizeof(note), "%" PRIu64 " of %" PRIu64 " inode slots free",
				 t->units_free, t->units_total);
		}
		if (t->locked != 0) {
			size_t o = strlen(note);

			snprintf(note + o, sizeof(note) - o, "%s%" PRIu64 " locked by hosts", o ? "; " : "",
				 t->locked);
		}
		printf("  %-6s %10" PRIu64 " %11s %11s %11s%s%s\n", cluster_type_name((uint8_t)ty),
		       t->clusters, fmt_size(bytes, s1, sizeof(s1)),
		       fmt_size(bytes - t->free_bytes, s2, sizeof(s2)),
		       fmt_size(t->free_bytes, s3, sizeof(s3)), note[0] ? "  " : "", note);
	}
	if (a->corrupt + a->unknown_type != 0) {
		printf("  %" PRIu64 " clusters with unreadable records are counted as used.\n",
		       a->corrupt + a->unknown_type);
	}
	if (sc->in->clusters) {
		printf("  Checked %" PRIu64 " cluster headers against their summaries: %" PRIu64
		       " disagree.\n", a->hdr_checked, a->hdr_mismatch);
	}
	printf("  Free space is from the cluster summaries that hosts update when they\n"
	       "  release a cluster; clusters locked by a host may have changed since.\n");
}

static void show_space(struct insp *in)
{
	const struct lunfs_super *sb = &in->vol.sb;
	struct space_ctx *sc = NULL;
	struct json_object *jsec = NULL;
	uint64_t need, total, free_b, chunk_recs;
	uint8_t *buf = NULL;
	int err;

	if (in->json) {
		jsec = j_obj(in->out, "space");
	} else {
		printf("\nSpace\n");
	}
	sc = calloc(1, sizeof(*sc));
	if (sc == NULL) {
		section_failed(in, jsec, "cluster lock region", -ENOMEM);
		return;
	}
	sc->in = in;
	if (__builtin_mul_overflow(sb->cluster_count, (uint64_t)sb->sector_size, &need) ||
	    need > sb->regions[LUNFS_REGION_CLUSTER].length ||
	    __builtin_mul_overflow(sb->cluster_count, sb->cluster_size, &total) ||
	    sb->cluster_count == 0) {
		section_failed(in, jsec, "cluster lock region", -EUCLEAN);
		goto out;
	}
	if (in->clusters && jsec != NULL) {
		sc->jclusters = j_arr(jsec, "clusters");
	}
	chunk_recs = INSP_CHUNK / sb->sector_size;
	if (chunk_recs > sb->cluster_count) {
		chunk_recs = sb->cluster_count;
	}
	buf = dev_buf_alloc((size_t)(chunk_recs * sb->sector_size));
	sc->hdrbuf = in->clusters ? dev_buf_alloc((size_t)INSP_BATCH * LUNFS_META_BLOCK_SIZE) : NULL;
	if (buf == NULL || (in->clusters && sc->hdrbuf == NULL)) {
		section_failed(in, jsec, "cluster lock region", -ENOMEM);
		goto out;
	}
	if (in->clusters && !in->json) {
		printf("  Typed clusters (summary from the cluster's lock record, checked against its header block):\n");
	}
	for (uint64_t first = 0; first < sb->cluster_count; first += chunk_recs) {
		uint64_t cnt = sb->cluster_count - first < chunk_recs ? sb->cluster_count - first : chunk_recs;

		err = dev_read(in->vol.dev, buf, (size_t)(cnt * sb->sector_size),
			       layout_cluster_lock_addr(sb, first));
		if (err < 0) {
			section_failed(in, jsec, "cluster lock region", err);
			goto out;
		}
		for (uint64_t k = 0; k < cnt; k++) {
			space_account(sc, first + k, buf + k * sb->sector_size);
			if (sc->npend == INSP_BATCH) {
				err = pending_flush(sc);
				if (err < 0) {
					section_failed(in, jsec, "cluster headers", err);
					goto out;
				}
			}
		}
	}
	err = pending_flush(sc);
	if (err < 0) {
		section_failed(in, jsec, "cluster headers", err);
		goto out;
	}
	free_b = sc->acc.t[LUNFS_CLUSTER_FREE].clusters * sb->cluster_size;
	for (unsigned ty = LUNFS_CLUSTER_FILE; ty < CLUSTER_TYPES; ty++) {
		free_b += sc->acc.t[ty].free_bytes;
	}
	/* Per-cluster clamping keeps free_b <= total, but say so in code too. */
	if (free_b > total) {
		free_b = total;
	}
	if (in->json) {
		if (jsec != NULL) {
			space_json(sc, jsec, total, free_b);
		}
	} else {
		space_print(sc, total, free_b);
	}
out:
	dev_buf_free(buf);
	dev_buf_free(sc->hdrbuf);
	free(sc);
}

/* --- root inode ------------------------------------------------------------------ */

static void show_root(struct insp *in)
{
	const struct lunfs_super *sb = &in->vol.sb;
	uint64_t ino = sb->root_ino, lock_addr = 0;
	uint32_t ss = sb->sector_size;
	struct lunfs_inode node;
	struct lunfs_lock l;
	struct json_object *jsec = NULL;
	uint8_t *buf = NULL;
	char mode[16], t[TOOL_TIME_STRLEN], holder[96], s1[CLI_SIZE_STRLEN];
	int err, ist, lst;

	if (in->json) {
		jsec = j_obj(in->out, "root");
		j_u64(jsec, "ino", ino);
	} else {
		printf("\nRoot directory (inode %" PRIu64 ")\n", ino);
	}
	err = layout_ino_addr(sb, ino, &lock_addr);
	if (err < 0) {
		section_failed(in, jsec, "root inode number names no inode slot", -EUCLEAN);
		return;
	}
	buf = dev_buf_alloc(2u * ss);
	if (buf == NULL) {
		section_failed(in, jsec, "root inode", -ENOMEM);
		return;
	}
	err = dev_read(in->vol.dev, buf, 2u * ss, lock_addr);
	if (err < 0) {
		section_failed(in, jsec, "root inode", err);
		goto out;
	}
	lst = lock_decode(&in->vol.codec, buf, lock_addr, &l);
	ist = inode_decode(&in->vol.codec, buf + ss, lock_addr + ss, ino, &node);
	if (lst == -ENODATA || lst == -ESTALE) {
		memset(&l, 0, sizeof(l)); /* never locked since mkfs */
		lst = 0;
	} else if (lst != 0) {
		problem(in, "root inode's lock record: %s", tool_decode_str(lst));
	} else if (l.kind != LUNFS_LOCK_KIND_INODE || l.lock_id != ino) {
		problem(in, "root inode's lock record has kind %s and id %" PRIu64,
			lock_kind_name(l.kind), l.lock_id);
	} else {
		lock_check(in, "root inode's lock", &l);
	}
	if (ist != 0) {
		const char *why = ist == -ENODATA ? "missing (empty inode record)" :
				  ist == -ESTALE ? "missing (record of an earlier volume)" :
				  tool_decode_str(ist);

		problem(in, "root inode %" PRIu64 ": %s", ino, why);
		if (in->json) {
			j_str(jsec, "status", tool_decode_str(ist));
			j_str(jsec, "error", why);
		} else {
			printf("  ERROR: %s\n", why);
		}
		goto out;
	}
	if (!S_ISDIR(node.mode)) {
		problem(in, "root inode %" PRIu64 " is a %s, not a directory", ino, file_type_name(node.mode));
	}
	snprintf(mode, sizeof(mode), "%04o", node.mode & 07777u);
	if (in->json) {
		j_str(jsec, "status", "ok");
		j_str(jsec, "type", file_type_name(node.mode));
		j_u64(jsec, "mode", node.mode);
		j_str(jsec, "mode_octal", mode);
		j_u64(jsec, "nlink", node.nlink);
		j_u64(jsec, "uid", node.uid);
		j_u64(jsec, "gid", node.gid);
		j_u64(jsec, "size", node.size);
		j_u64(jsec, "alloc_bytes", node.alloc_bytes);
		j_u64(jsec, "generation", node.generation);
		j_u64(jsec, "version", node.version);
		j_time(jsec, "mtime", node.mtime_ns);
		j_time(jsec, "ctime", node.ctime_ns);
		j_time(jsec, "btime", node.btime_ns);
		if (S_ISDIR(node.mode)) {
			struct lunfs_dir_state ds;

			inode_dir_state_get(&node, &ds);
			j_u64(jsec, "entries", ds.nentries);
		}
		if (lst == 0) {
			lock_json(j_obj(jsec, "lock"), &l, sb->max_hosts);
		} else {
			j_str(jsec, "lock_error", tool_decode_str(lst));
		}
		goto out;
	}
	printf("  %s, mode %s, nlink %u, uid %u, gid %u, size %s", file_type_name(node.mode), mode,
	       node.nlink, node.uid, node.gid, fmt_size(node.size, s1, sizeof(s1)));
	if (S_ISDIR(node.mode)) {
		struct lunfs_dir_state ds;

		inode_dir_state_get(&node, &ds);
		printf(", %" PRIu64 " entr%s", ds.nentries, ds.nentries == 1 ? "y" : "ies");
	}
	printf("\n  modified %s, version %" PRIu64 "\n", tool_fmt_time(node.mtime_ns, t, sizeof(t)),
	       node.version);
	if (lst == 0) {
		printf("  lock: %s%s%s\n", lock_mode_name(l.mode), l.mode != LUNFS_LOCK_FREE ? ", " : "",
		       l.mode != LUNFS_LOCK_FREE ? fmt_holder(&l, sb->max_hosts, holder, sizeof(holder)) : "");
	} else {
		printf("  lock: %s record\n", tool_decode_str(lst));
	}
out:
	dev_buf_free(buf);
}

/* --- problems and the command --------------------------------------------------- */

static void show_problems(struct insp *in)
{
	unsigned kept = in->nproblems < INSP_PROBLEMS_KEPT ? in->nproblems : INSP_PROBLEMS_KEPT;

	if (in->json) {
		struct json_object *a = j_arr(in->out, "problems");

		/* Problems hold our own words and numbers, never disk strings. */
		for (unsigned i = 0; i < kept && in->problems != NULL; i++) {
			j_push(a, json_object_new_string(in->problems[i]));
		}
		j_u64(in->out, "problems_count", in->nproblems);
		return;
	}
	printf("\n");
	if (in->nproblems == 0) {
		printf("No problems found.\n");
		return;
	}
	printf("PROBLEMS (%u):\n", in->nproblems);
	for (unsigned i = 0; i < kept && in->problems != NULL; i++) {
		printf("  - %s\n", in->problems[i]);
	}
	if (in->nproblems > kept) {
		printf("  ... and %u more\n", in->nproblems - kept);
	}
	printf("Run fsck.lunfs on the unmounted volume to check it fully.\n");
}

enum { OPT_JSON = 1000, OPT_ALL_SLOTS, OPT_CLUSTERS };

int cmd_inspect(const struct tool_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "all-slots", no_argument, NULL, OPT_ALL_SLOTS },
		{ "clusters", no_argument, NULL, OPT_CLUSTERS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct insp in;
	int opt, ret = TOOL_EXIT_ERROR;

	memset(&in, 0, sizeof(in));
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_JSON:
			in.json = true;
			break;
		case OPT_ALL_SLOTS:
			in.all_slots = true;
			break;
		case OPT_CLUSTERS:
			in.clusters = true;
			break;
		case 'h':
			tool_help(cmd);
			return TOOL_EXIT_OK;
		default:
			if (optopt != 0 && optopt < OPT_JSON) {
				return tool_usage_error(cmd, "unknown option '-%c'", optopt);
			}
			return tool_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc) {
		return tool_usage_error(cmd, "missing DEVICE");
	}
	if (argc - optind > 1) {
		return tool_usage_error(cmd, "too many arguments ('%s')", argv[optind + 1]);
	}
	if (tool_volume_open(cmd->name, argv[optind], &in.vol) < 0) {
		return TOOL_EXIT_ERROR;
	}
	in.problems = calloc(INSP_PROBLEMS_KEPT, sizeof(*in.problems));
	if (in.problems == NULL) {
		tool_err(cmd->name, "out of memory");
		goto out;
	}
	if (in.json) {
		in.out = json_object_new_object();
		if (in.out == NULL) {
			tool_err(cmd->name, "out of memory");
			goto out;
		}
		/* The path is the user's own, but it may be any bytes. */
		if (strlen(in.vol.path) < 4096) {
			char safe[TOOL_SAFE_STR(4096)];

			j_str(in.out, "device", tool_str_safe(in.vol.path, safe, sizeof(safe)));
		}
	}
	show_superblock(&in);
	show_regions(&in);
	show_heartbeat(&in);
	show_syslocks(&in);
	show_journals(&in);
	show_space(&in);
	show_root(&in);
	show_problems(&in);
	if (in.json) {
		const char *txt = json_object_to_json_string_ext(in.out, JSON_C_TO_STRING_PRETTY |
							     JSON_C_TO_STRING_NOSLASHESCAPE);
		if (txt == NULL) {
			tool_err(cmd->name, "out of memory");
			goto out;
		}
		printf("%s\n", txt);
	}
	if (fflush(stdout) != 0) {
		tool_err(cmd->name, "writing the output: %s", strerror(errno));
		goto out;
	}
	ret = in.io_failed ? TOOL_EXIT_ERROR : TOOL_EXIT_OK;
	if (in.io_failed) {
		tool_err(cmd->name, "%s: some parts could not be read (see above)", in.vol.path);
	}
out:
	json_object_put(in.out);
	free(in.problems);
	tool_volume_close(&in.vol);
	return ret;
}
