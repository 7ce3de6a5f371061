/*
 * mkfs.lunfs: format a device or image file as a lunfs volume.
 *
 * A thin driver over vol_create (fs/volume_create.c). What it adds is the
 * part that talks to a person: options, refusing to destroy what is already
 * there (libblkid signatures, an existing lunfs volume) unless told to, and
 * refusing even then while hosts are using the volume, a progress bar and
 * a summary.
 *
 * Order of work, so that a refusal or a bad option never costs data:
 *   parse options -> (-s) size the file -> open -> compute the layout
 *   -> look for lunfs and foreign signatures -> refuse, or (-f) check for
 *   live hosts and wipe foreign signatures -> vol_create -> summary.
 *
 * Exit codes: 0 done, 1 operational error or refusal, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <blkid.h>
#include <uuid.h>

#include "../tools/cli/cli.h"
#include "lunfs/format.h"
#include "lunfs/heartbeat.h"
#include "lunfs/probe.h"
#include "lunfs/super.h"
#include "lunfs/volume.h"

#define PROG "mkfs.lunfs"

enum mkfs_exit {
	MKFS_OK = 0,
	MKFS_FAIL = 1,
	MKFS_USAGE = 2,
};

/* Longest we watch a heartbeat region for movement. hb_scan_live waits
 * twice the longest interval a claimed slot advertises; a slot claiming a
 * huge interval must not make mkfs hang for 20 minutes. */
#define MKFS_LIVE_WAIT_MAX_MS 30000u

struct mkfs_args {
	const char *path;
	const char *label;
	uint64_t size;            /* -s; 0 = not given */
	struct lunfs_layout_params layout;
	uint8_t uuid[LUNFS_UUID_SIZE];
	bool have_uuid;
	bool force, quiet, dry_run;
	enum lunfs_caw_backend caw; /* --caw; default PAXOS */
};

/* Everything mkfs opens, so that one cleanup path closes it all. */
struct mkfs_ctx {
	struct mkfs_args a;
	struct lunfs_dev *dev;
	bool is_blk;
	bool created;             /* -s created the file: remove it on failure */
	uint64_t dev_size;        /* bytes; the -s size for a dry run of a new file */
	uint32_t sector_size;
	struct lunfs_super sb;    /* the layout we will write */
};

static void usage_full(FILE *f)
{
	fprintf(f,
"Usage: " PROG " [options] DEVICE|FILE\n"
"\n"
"Create a lunfs clustered volume on DEVICE (a shared block device: a SAN LUN,\n"
"an iSCSI or NVMe-oF disk) or on an image FILE. Every host that will mount the\n"
"volume must see the same device. Formatting is fast: only the fixed metadata\n"
"regions are written, whatever the size of the device.\n"
"\n"
"mkfs.lunfs refuses to overwrite a device that holds a file system, a partition\n"
"table, another signature libblkid knows, or a lunfs volume, unless -f is given.\n"
"It always refuses a lunfs volume whose hosts are still renewing their\n"
"heartbeats (it watches the heartbeat region for a few seconds to tell).\n"
"\n"
"Options:\n"
"  -L, --label LABEL          volume label, at most 64 bytes\n"
"  -b, --block-size SIZE      file block size: the unit of allocation and of\n"
"                             copy-on-write for file data; a power of two from\n"
"                             64K to 64M (default 1M)\n"
"  -H, --max-hosts N          most hosts that may mount the volume at once:\n"
"                             heartbeat slots and journals (1..2048, default 64)\n"
"  -J, --journal-size SIZE    metadata journal per host, a power of two from\n"
"                             1M to 1G (default 16M, less on small volumes)\n"
"  -C, --cluster-size SIZE    resource cluster size: hosts allocate from clusters\n"
"                             they lock; a power of two, at least 16 file blocks,\n"
"                             at most 4G (default: about 1/256 of the volume,\n"
"                             at most 1G)\n"
"      --heartbeat-interval MS\n"
"                             how often a host renews its heartbeat (default\n"
"                             1000, at least 100)\n"
"      --io-deadline MS       an I/O not completed by then has failed (default\n"
"                             2000)\n"
"      --dead-timeout MS      a host whose heartbeat has not moved for this long\n"
"                             is dead and is recovered by the others (default\n"
"                             8000). Must satisfy\n"
"                               dead-timeout >= 3 * heartbeat-interval\n"
"                                               + 2 * io-deadline\n"
"                             Hosts may later run with their own timing; these\n"
"                             are the volume's defaults.\n"
"      --caw paxos|local      how hosts compare-and-write lock records and claim\n"
"                             heartbeat slots, fixed for the life of the volume:\n"
"                             paxos (default) runs Disk Paxos over plain reads\n"
"                             and writes, correct between machines on any shared\n"
"                             disk; local uses locks that only work between\n"
"                             processes of ONE machine (faster to mount; for\n"
"                             single-machine farms and tests). Every mount uses\n"
"                             the volume's choice\n"
"  -s, --size SIZE            FILE only: create it as a sparse file of SIZE if\n"
"                             it does not exist, or grow it if it is smaller\n"
"  -U, --uuid UUID            volume UUID (default: a random one). It must\n"
"                             differ from the UUID of the volume it replaces.\n"
"  -f, --force                overwrite existing signatures and lunfs volumes\n"
"                             (never one that live hosts are using)\n"
"  -n, --dry-run              compute and print the layout; write nothing\n"
"  -q, --quiet                no progress bar and no summary; errors only\n"
"  -V, --version              print the version and exit\n"
"  -h, --help                 print this help and exit\n"
"\n"
"SIZE is a byte count with an optional suffix K, M, G, T, P (powers of 1024),\n"
"e.g. 64K, 1M, 64T.\n"
"\n"
"Exit status: 0 formatted, 1 error or refusal, 2 usage error.\n"
"\n"
"Examples:\n"
"  " PROG " -L vmstore1 /dev/sdb\n"
"  " PROG " -s 64T -L test /dev/shm/lunfs.img\n"
"  " PROG " -n /dev/sdb                 # show the layout only\n"
"  " PROG " --caw local -s 4G /dev/shm/farm.img   # hosts of one machine only\n");
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
	return MKFS_USAGE;
}

static int parse_size_opt(const char *opt, const char *arg, uint64_t *out)
{
	int err = cli_parse_size(arg, out);

	if (err == -ERANGE) {
		fprintf(stderr, PROG ": %s %s: too large\n", opt, arg);
		return MKFS_USAGE;
	}
	if (err < 0) {
		fprintf(stderr, PROG ": %s %s: not a size (a number with an optional K, M, G, T or P suffix)\n",
			opt, arg);
		return MKFS_USAGE;
	}
	return 0;
}

static int parse_u32_opt(const char *opt, const char *arg, uint32_t *out)
{
	int err = cli_parse_u32(arg, out);

	if (err < 0) {
		fprintf(stderr, PROG ": %s %s: not a number%s\n", opt, arg,
			err == -ERANGE ? " in range" : "");
		return MKFS_USAGE;
	}
	return 0;
}

static bool is_pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

enum {
	OPT_HB_INTERVAL = 256,
	OPT_DEAD_TIMEOUT,
	OPT_IO_DEADLINE,
	OPT_CAW,
};

/* Returns -1 to go on, or an exit code (help, version, usage error). */
static int parse_args(int argc, char **argv, struct mkfs_args *a)
{
	static const struct option longopts[] = {
		{ "label", required_argument, NULL, 'L' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "max-hosts", required_argument, NULL, 'H' },
		{ "journal-size", required_argument, NULL, 'J' },
		{ "cluster-size", required_argument, NULL, 'C' },
		{ "heartbeat-interval", required_argument, NULL, OPT_HB_INTERVAL },
		{ "dead-timeout", required_argument, NULL, OPT_DEAD_TIMEOUT },
		{ "io-deadline", required_argument, NULL, OPT_IO_DEADLINE },
		{ "caw", required_argument, NULL, OPT_CAW },
		{ "size", required_argument, NULL, 's' },
		{ "uuid", required_argument, NULL, 'U' },
		{ "force", no_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v = 0;
	int c, rc;

	memset(a, 0, sizeof(*a));
	/* Correct between machines: the default for block devices and files. */
	a->caw = LUNFS_CAW_PAXOS;
	/* getopt's own messages ("unrecognized option") are prefixed with
	 * argv[0]; make them read like ours whatever path we were run by. */
	argv[0] = (char *)PROG;
	while ((c = getopt_long(argc, argv, "L:b:H:J:C:s:U:fqnVh", longopts, NULL)) != -1) {
		rc = 0;
		switch (c) {
		case 'L':
			if (strlen(optarg) > LUNFS_LABEL_MAX) {
				return usage_error("label '%s' is longer than 64 bytes", optarg);
			}
			a->label = optarg;
			break;
		case 'b':
			rc = parse_size_opt("-b", optarg, &v);
			if (rc == 0 && (!is_pow2(v) || v < LUNFS_FILE_BLOCK_MIN || v > LUNFS_FILE_BLOCK_MAX)) {
				return usage_error("-b %s: the file block size must be a power of two from 64K to 64M",
						   optarg);
			}
			a->layout.file_block_size = (uint32_t)v;
			break;
		case 'H':
			rc = parse_u32_opt("-H", optarg, &a->layout.max_hosts);
			if (rc == 0 && (a->layout.max_hosts < LUNFS_HOSTS_MIN ||
					a->layout.max_hosts > LUNFS_HOSTS_MAX)) {
				return usage_error("-H %s: the number of hosts must be from 1 to 2048", optarg);
			}
			break;
		case 'J':
			rc = parse_size_opt("-J", optarg, &v);
			if (rc == 0 && (!is_pow2(v) || v < LUNFS_JOURNAL_MIN || v > LUNFS_JOURNAL_MAX)) {
				return usage_error("-J %s: the journal size must be a power of two from 1M to 1G",
						   optarg);
			}
			a->layout.journal_size = v;
			break;
		case 'C':
			rc = parse_size_opt("-C", optarg, &v);
			if (rc == 0 && (!is_pow2(v) || v > LUNFS_CLUSTER_MAX)) {
				return usage_error("-C %s: the cluster size must be a power of two, at most 4G",
						   optarg);
			}
			a->layout.cluster_size = v;
			break;
		case OPT_HB_INTERVAL:
			rc = parse_u32_opt("--heartbeat-interval", optarg, &a->layout.hb_interval_ms);
			if (rc == 0 && a->layout.hb_interval_ms == 0) {
				return usage_error("--heartbeat-interval %s: must be at least 100 ms", optarg);
			}
			break;
		case OPT_DEAD_TIMEOUT:
			rc = parse_u32_opt("--dead-timeout", optarg, &a->layout.dead_timeout_ms);
			if (rc == 0 && a->layout.dead_timeout_ms == 0) {
				return usage_error("--dead-timeout %s: must not be zero", optarg);
			}
			break;
		case OPT_IO_DEADLINE:
			rc = parse_u32_opt("--io-deadline", optarg, &a->layout.io_deadline_ms);
			if (rc == 0 && a->layout.io_deadline_ms == 0) {
				return usage_error("--io-deadline %s: must not be zero", optarg);
			}
			break;
		case OPT_CAW:
			if (strcmp(optarg, "paxos") == 0) {
				a->caw = LUNFS_CAW_PAXOS;
			} else if (strcmp(optarg, "local") == 0) {
				a->caw = LUNFS_CAW_LOCAL;
			} else {
				return usage_error("--caw %s: the backend is paxos or local", optarg);
			}
			break;
		case 's':
			rc = parse_size_opt("-s", optarg, &a->size);
			if (rc == 0 && a->size == 0) {
				return usage_error("-s %s: the size must not be zero", optarg);
			}
			break;
		case 'U':
			if (uuid_parse(optarg, a->uuid) != 0) {
				return usage_error("-U %s: not a UUID", optarg);
			}
			if (uuid_is_null(a->uuid)) {
				return usage_error("-U %s: the nil UUID cannot name a volume", optarg);
			}
			a->have_uuid = true;
			break;
		case 'f':
			a->force = true;
			break;
		case 'q':
			a->quiet = true;
			break;
		case 'n':
			a->dry_run = true;
			break;
		case 'V':
			printf(PROG " (lunfs) %s, on-disk format %u.%u\n", LUNFS_VERSION,
			       LUNFS_FORMAT_MAJOR, LUNFS_FORMAT_MINOR);
			return MKFS_OK;
		case 'h':
			usage_full(stdout);
			return MKFS_OK;
		default:
			fprintf(stderr, "Try '" PROG " --help' for more information.\n");
			return MKFS_USAGE;
		}
		if (rc != 0) {
			return rc;
		}
	}
	if (optind >= argc) {
		return usage_error("%sno device or file given", "");
	}
	if (optind + 1 < argc) {
		return usage_error("unexpected argument '%s'", argv[optind + 1]);
	}
	a->path = argv[optind];
	return -1;
}

/*
 * -s: make the image file exist with at least a->size bytes, sparsely.
 * A block device cannot be resized, and a larger file is left alone but
 * refused: the volume spans the whole file, and silently using more (or
 * cutting it) is not what -s asked for.
 */
static int mkfs_size_file(struct mkfs_ctx *m)
{
	struct mkfs_args *a = &m->a;
	char want[CLI_SIZE_STRLEN];
	struct stat st;
	int fd, rc = MKFS_FAIL;

	cli_fmt_size(a->size, want, sizeof(want));
	if (stat(a->path, &st) != 0) {
		if (errno != ENOENT) {
			fprintf(stderr, PROG ": %s: %s\n", a->path, strerror(errno));
			return MKFS_FAIL;
		}
		if (a->dry_run) {
			return 0;
		}
		fd = open(a->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0) {
			fprintf(stderr, PROG ": cannot create %s: %s\n", a->path, strerror(errno));
			return MKFS_FAIL;
		}
		m->created = true;
	} else if (S_ISBLK(st.st_mode)) {
		fprintf(stderr, PROG ": -s applies to image files; %s is a block device\n", a->path);
		return MKFS_USAGE;
	} else if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, PROG ": -s applies to image files; %s is not a regular file\n", a->path);
		return MKFS_USAGE;
	} else if ((uint64_t)st.st_size > a->size) {
		char have[CLI_SIZE_STRLEN];

		fprintf(stderr, PROG ": %s is already larger (%s) than -s %s; omit -s to use all of it\n",
			a->path, cli_fmt_size((uint64_t)st.st_size, have, sizeof(have)), want);
		return MKFS_FAIL;
	} else if ((uint64_t)st.st_size == a->size || a->dry_run) {
		return 0;
	} else {
		fd = open(a->path, O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, PROG ": cannot open %s: %s\n", a->path, strerror(errno));
			return MKFS_FAIL;
		}
	}
	if (a->size > (uint64_t)INT64_MAX || ftruncate(fd, (off_t)a->size) != 0) {
		fprintf(stderr, PROG ": cannot size %s to %s: %s\n", a->path, want,
			a->size > (uint64_t)INT64_MAX ? strerror(EFBIG) : strerror(errno));
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

static int mkfs_open(struct mkfs_ctx *m)
{
	/* The device's own CAW, which mkfs never uses (it writes a volume
	 * that nobody has joined yet); the volume's backend is --caw, recorded
	 * in the superblock. */
	struct lunfs_dev_file_opts fo = {
		.read_only = m->a.dry_run,
		.caw = LUNFS_CAW_LOCAL,
	};
	struct stat st;
	int err;

	if (stat(m->a.path, &st) != 0) {
		if (errno == ENOENT && m->a.dry_run && m->a.size != 0) {
			/* Dry run of a file -s would create: nothing to open. */
			m->dev_size = m->a.size;
			m->sector_size = LUNFS_SECTOR_MIN;
			return 0;
		}
		fprintf(stderr, PROG ": %s: %s\n", m->a.path, strerror(errno));
		return MKFS_FAIL;
	}
	m->is_blk = S_ISBLK(st.st_mode);
	if (!m->is_blk && !S_ISREG(st.st_mode)) {
		fprintf(stderr, PROG ": %s is neither a block device nor a regular file\n", m->a.path);
		return MKFS_FAIL;
	}
	/* Exclusive on a block device: the kernel then refuses us if the
	 * device is mounted or claimed, and refuses mounts while we work. */
	fo.exclusive = m->is_blk && !m->a.dry_run;
	err = dev_file_open(m->a.path, &fo, &m->dev);
	if (err < 0) {
		fprintf(stderr, PROG ": cannot open %s: %s\n", m->a.path, strerror(-err));
		return MKFS_FAIL;
	}
	m->dev_size = m->dev->size;
	m->sector_size = m->dev->sector_size;
	return 0;
}

/* The layout mkfs will write, computed up front so that a bad option or a
 * too small device is reported before anything is wiped. */
static int mkfs_layout(struct mkfs_ctx *m)
{
	struct lunfs_layout_params p = m->a.layout;
	const char *why = NULL;
	int err;

	p.volume_size = m->dev_size;
	p.sector_size = m->sector_size;
	memset(&m->sb, 0, sizeof(m->sb));
	err = layout_compute(&p, &m->sb, &why);
	if (err == -ENOSPC) {
		char have[CLI_SIZE_STRLEN];

		fprintf(stderr, PROG ": %s is too small (%s): %s\n", m->a.path,
			cli_fmt_size(m->dev_size, have, sizeof(have)),
			why != NULL ? why : strerror(-err));
		return MKFS_FAIL;
	}
	if (err < 0) {
		/* The parameters are the user's: a usage error. */
		fprintf(stderr, PROG ": %s\n", why != NULL ? why : strerror(-err));
		return MKFS_USAGE;
	}
	return 0;
}

static const char *mkfs_caw_str(enum lunfs_caw_backend caw)
{
	return caw == LUNFS_CAW_PAXOS ? "paxos (Disk Paxos on plain reads and writes: hosts on any machines)"
				      : "local (one machine only: no host on another machine may mount it)";
}

static void print_layout(const struct mkfs_ctx *m, FILE *f)
{
	static const char *const names[LUNFS_REGION_COUNT] = {
		"heartbeat", "system locks", "paxos", "cluster locks", "journals", "data",
	};
	const struct lunfs_super *sb = &m->sb;
	char s1[CLI_SIZE_STRLEN], s2[CLI_SIZE_STRLEN], s3[CLI_SIZE_STRLEN];
	char u[CLI_UUID_STRLEN];

	fprintf(f, "  label          %s\n", m->a.label != NULL && m->a.label[0] != '\0' ? m->a.label : "(none)");
	fprintf(f, "  UUID           %s\n", m->a.have_uuid ? cli_fmt_uuid(m->a.uuid, u, sizeof(u))
								: "(random)");
	fprintf(f, "  size           %s (%" PRIu64 " bytes)\n",
		cli_fmt_size(sb->volume_size, s1, sizeof(s1)), sb->volume_size);
	fprintf(f, "  block sizes    %s file, %s metadata, %s sector\n",
		cli_fmt_size(sb->file_block_size, s1, sizeof(s1)),
		cli_fmt_size(sb->meta_block_size, s2, sizeof(s2)),
		cli_fmt_size(sb->sector_size, s3, sizeof(s3)));
	fprintf(f, "  max hosts      %" PRIu32 "\n", sb->max_hosts);
	fprintf(f, "  clusters       %" PRIu64 " x %s\n", sb->cluster_count,
		cli_fmt_size(sb->cluster_size, s1, sizeof(s1)));
	fprintf(f, "  journal        %s per host\n", cli_fmt_size(sb->journal_size, s1, sizeof(s1)));
	fprintf(f, "  timing         heartbeat %" PRIu32 " ms, I/O deadline %" PRIu32
		" ms, dead after %" PRIu32 " ms\n",
		sb->hb_interval_ms, sb->io_deadline_ms, sb->dead_timeout_ms);
	fprintf(f, "  CAW backend    %s\n", mkfs_caw_str(m->a.caw));
	fprintf(f, "  regions        %-14s %20s %12s\n", "", "offset", "length");
	for (int i = 0; i < LUNFS_REGION_COUNT; i++) {
		fprintf(f, "                 %-14s %20" PRIu64 " %12s\n", names[i],
			sb->regions[i].offset, cli_fmt_size(sb->regions[i].length, s1, sizeof(s1)));
	}
}

static const char *blkid_usage_noun(const char *usage)
{
	if (usage == NULL) {
		return "signature";
	}
	if (strcmp(usage, "filesystem") == 0) {
		return "file system";
	}
	if (strcmp(usage, "raid") == 0) {
		return "RAID member signature";
	}
	if (strcmp(usage, "crypto") == 0) {
		return "encrypted volume";
	}
	return "signature";
}

/*
 * Report every signature libblkid finds (file systems, RAID members,
 * partition tables...) and, with `wipe`, erase each as it is found, the way
 * wipefs does: blkid_do_wipe steps the prober back, so the next
 * blkid_do_probe looks again where the erased one was. `verbose` prints
 * each. Returns the number found, or a negative errno.
 */
static int mkfs_blkid_scan(struct mkfs_ctx *m, bool wipe, bool verbose, const char *note)
{
	blkid_probe pr = NULL;
	int fd, found = 0, err = 0;

	fd = open(m->a.path, (wipe ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		return -errno;
	}
	pr = blkid_new_probe();
	if (pr == NULL || blkid_probe_set_device(pr, fd, 0, 0) != 0) {
		err = -ENOMEM;
		goto out;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL |
					  BLKID_SUBLKS_UUID | BLKID_SUBLKS_USAGE |
					  BLKID_SUBLKS_MAGIC);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);

	while (blkid_do_probe(pr) == 0) {
		const char *type = NULL, *label = NULL, *uuid = NULL, *usage = NULL;
		const char *what;

		if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0) {
			blkid_probe_lookup_value(pr, "USAGE", &usage, NULL);
			what = blkid_usage_noun(usage);
		} else if (blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL) == 0) {
			what = "partition table";
		} else {
			continue;
		}
		found++;
		if (wipe) {
			if (verbose) {
				fprintf(stderr, PROG ": erasing the %s %s signature\n", type, what);
			}
			if (blkid_do_wipe(pr, 0) != 0) {
				err = errno != 0 ? -errno : -EIO;
				goto out;
			}
			continue;
		}
		if (!verbose) {
			continue;
		}
		blkid_probe_lookup_value(pr, "LABEL", &label, NULL);
		blkid_probe_lookup_value(pr, "UUID", &uuid, NULL);
		fprintf(stderr, PROG ": %s%s contains a %s %s", note, m->a.path, type, what);
		if (label != NULL && label[0] != '\0') {
			fprintf(stderr, " labelled '%s'", label);
		}
		if (uuid != NULL && uuid[0] != '\0') {
			fprintf(stderr, " (UUID %s)", uuid);
		}
		fputc('\n', stderr);
	}
	/* blkid wrote through the page cache; our own I/O is O_DIRECT. */
	if (wipe && found > 0 && fsync(fd) != 0) {
		err = -errno;
		goto out;
	}
out:
	if (pr != NULL) {
		blkid_free_probe(pr);
	}
	close(fd);
	return err < 0 ? err : found;
}

/* sb_read says -EUCLEAN for any bytes that are not a valid superblock, an
 * ext4 block as well as a torn lunfs one; only the magic tells ours. */
static bool sb_magic_present(struct lunfs_dev *dev)
{
	const uint64_t addrs[2] = { LUNFS_SB_OFFSET, sb_backup_addr(dev->size) };
	const struct lunfs_super_disk *d;
	uint8_t *buf = dev_buf_alloc(LUNFS_META_BLOCK_SIZE);
	bool found = false;

	if (buf == NULL) {
		return false;
	}
	d = (const struct lunfs_super_disk *)buf;
	for (unsigned i = 0; i < 2 && !found; i++) {
		if (addrs[i] + LUNFS_META_BLOCK_SIZE <= dev->size &&
		    dev_read(dev, buf, LUNFS_META_BLOCK_SIZE, addrs[i]) == 0 &&
		    le64_get(d->magic) == LUNFS_SB_MAGIC) {
			found = true;
		}
	}
	dev_buf_free(buf);
	return found;
}

/* What sb_read said, for a person. Returns true if a lunfs volume (or
 * what is left of one) is there. */
static bool mkfs_report_lunfs(const struct mkfs_ctx *m, int err, const struct lunfs_super *old,
			      enum lunfs_sb_copy copy, const char *note, bool verbose)
{
	char u[CLI_UUID_STRLEN];

	if (!verbose) {
		return err == 0 || err == -EOPNOTSUPP || err == -EPROTONOSUPPORT ||
		       (err == -EUCLEAN && sb_magic_present(m->dev));
	}

	switch (err) {
	case 0:
	case -EOPNOTSUPP:
		fprintf(stderr, PROG ": %s%s contains a lunfs volume%s%s%s (UUID %s, %" PRIu32 " hosts)%s%s\n",
			note, m->a.path, old->label[0] != '\0' ? " '" : "", old->label,
			old->label[0] != '\0' ? "'" : "", cli_fmt_uuid(old->uuid, u, sizeof(u)),
			old->max_hosts, copy == LUNFS_SB_BACKUP ? ", found by its backup superblock" : "",
			err == 0 ? "" : ", with a record size smaller than the device's sectors");
		return true;
	case -EPROTONOSUPPORT:
		fprintf(stderr, PROG ": %s%s contains a lunfs volume of a newer format than %u.%u\n",
			note, m->a.path, LUNFS_FORMAT_MAJOR, LUNFS_FORMAT_MINOR);
		return true;
	case -EUCLEAN:
		if (!sb_magic_present(m->dev)) {
			return false; /* something else's bytes, not ours */
		}
		fprintf(stderr, PROG ": %s%s contains a damaged lunfs superblock\n", note, m->a.path);
		return true;
	default:
		return false;
	}
}

/*
 * Refuse, whatever -f says, while any host renews its heartbeat on the
 * old volume: formatting under a mounted farm would destroy it mid-flight.
 * Slots that are claimed but still (a crashed host) only get a warning.
 * Returns 0 to go on, or an exit code.
 */
static int mkfs_check_live(struct mkfs_ctx *m, const struct lunfs_super *old)
{
	uint32_t n = old->max_hosts, claimed = 0;
	struct lunfs_hb_slot *slots = calloc(n, sizeof(*slots));
	int *status = calloc(n, sizeof(*status));
	bool *live = calloc(n, sizeof(*live));
	struct lunfs_codec c;
	int nlive, err, rc = MKFS_FAIL;

	if (slots == NULL || status == NULL || live == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		goto out;
	}
	sb_codec(old, &c);
	/* mkfs has no volume secret. Liveness needs only to see seq move, not
	 * to trust the slot, so read signed slots without checking the HMAC
	 * (a codec without the key): a forged slot can only make us refuse. */
	c.have_hmac = false;
	err = hb_scan_read(m->dev, old, &c, slots, status);
	if (err < 0) {
		fprintf(stderr, PROG ": %s: cannot read the heartbeat region: %s\n", m->a.path, strerror(-err));
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (status[i] == 0 && slots[i].state != LUNFS_HB_FREE) {
			claimed++;
		}
	}
	if (claimed > 0 && !m->a.quiet) {
		fprintf(stderr, PROG ": %" PRIu32 " heartbeat slot%s claimed; watching for live hosts...\n",
			claimed, claimed == 1 ? " is" : "s are");
	}
	nlive = hb_scan_live(m->dev, old, &c, MKFS_LIVE_WAIT_MAX_MS, live, &claimed);
	if (nlive < 0) {
		fprintf(stderr, PROG ": %s: cannot read the heartbeat region: %s\n", m->a.path,
			strerror(-nlive));
		goto out;
	}
	if (nlive > 0) {
		/* Names as the hosts wrote them at the last beat: re-read. */
		if (hb_scan_read(m->dev, old, &c, slots, status) < 0) {
			memset(slots, 0, n * sizeof(*slots));
		}
		fprintf(stderr, PROG ": %s: volume is in use by live hosts:", m->a.path);
		for (uint32_t i = 0, k = 0; i < n; i++) {
			if (live[i]) {
				fprintf(stderr, "%s slot %" PRIu32 " (host '%s', pid %" PRIu32 ")",
					k++ == 0 ? "" : ",", i, slots[i].host_name, slots[i].pid);
			}
		}
		fprintf(stderr, "; refusing to format\n");
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (status[i] == 0 && slots[i].state != LUNFS_HB_FREE) {
			fprintf(stderr, PROG ": warning: slot %" PRIu32 " (host '%s', pid %" PRIu32
				") is claimed but its heartbeat is not moving; taking the host for dead\n",
				i, slots[i].host_name, slots[i].pid);
		}
	}
	rc = 0;
out:
	free(live);
	free(status);
	free(slots);
	return rc;
}

/* Look at what is on the device and decide. Returns 0 to go on, or an
 * exit code. With -f, wipes foreign signatures. */
static int mkfs_check_existing(struct mkfs_ctx *m)
{
	const char *note = m->a.dry_run ? "note: " : "";
	/* With -f -q, what is overwritten is not worth a line; without -f it
	 * is the reason for the refusal, so it is always said. */
	bool verbose = !(m->a.force && m->a.quiet);
	struct lunfs_super old;
	enum lunfs_sb_copy copy = LUNFS_SB_PRIMARY;
	bool lunfs;
	int err, nfound, rc;

	if (m->dev == NULL) {
		return 0; /* dry run of a file -s would create */
	}
	err = sb_read(m->dev, &old, &copy, NULL);
	if (err == -EIO) {
		fprintf(stderr, PROG ": %s: cannot read: %s\n", m->a.path, strerror(-err));
		return MKFS_FAIL;
	}
	lunfs = mkfs_report_lunfs(m, err, &old, copy, note, verbose);
	nfound = mkfs_blkid_scan(m, false, verbose, note);
	if (nfound < 0) {
		fprintf(stderr, PROG ": %s: cannot probe for signatures: %s\n", m->a.path, strerror(-nfound));
		return MKFS_FAIL;
	}
	if (m->a.dry_run) {
		return 0;
	}
	if (!lunfs && nfound == 0) {
		return 0;
	}
	if (!m->a.force) {
		fprintf(stderr, PROG ": %s: use -f to overwrite\n", m->a.path);
		return MKFS_FAIL;
	}
	if (lunfs && err == 0) {
		rc = mkfs_check_live(m, &old);
		if (rc != 0) {
			return rc;
		}
		if (m->a.have_uuid && memcmp(m->a.uuid, old.uuid, LUNFS_UUID_SIZE) == 0) {
			fprintf(stderr, PROG ": %s: -U names the UUID of the volume being replaced; its old "
				"records would come back to life: choose another UUID\n", m->a.path);
			return MKFS_FAIL;
		}
	} else if (lunfs && err == -EPROTONOSUPPORT) {
		fprintf(stderr, PROG ": warning: cannot tell whether hosts are using a volume of a newer format\n");
	}
	if (nfound > 0) {
		nfound = mkfs_blkid_scan(m, true, !m->a.quiet, "");
		if (nfound < 0) {
			fprintf(stderr, PROG ": %s: cannot erase signatures: %s\n", m->a.path, strerror(-nfound));
			return MKFS_FAIL;
		}
	}
	return 0;
}

static void mkfs_summary(const struct mkfs_ctx *m, uint64_t ms)
{
	const struct lunfs_super *sb = &m->sb;
	char s1[CLI_SIZE_STRLEN], s2[CLI_SIZE_STRLEN], s3[CLI_SIZE_STRLEN];
	char u[CLI_UUID_STRLEN];

	printf("Formatted %s as lunfs in %" PRIu64 ".%02" PRIu64 " s\n", m->a.path, ms / 1000u,
	       (ms % 1000u) / 10u);
	printf("  label          %s\n", sb->label[0] != '\0' ? sb->label : "(none)");
	printf("  UUID           %s\n", cli_fmt_uuid(sb->uuid, u, sizeof(u)));
	printf("  size           %s (%" PRIu64 " bytes)\n", cli_fmt_size(sb->volume_size, s1, sizeof(s1)),
	       sb->volume_size);
	printf("  block sizes    %s file, %s metadata, %s sector\n",
	       cli_fmt_size(sb->file_block_size, s1, sizeof(s1)),
	       cli_fmt_size(sb->meta_block_size, s2, sizeof(s2)),
	       cli_fmt_size(sb->sector_size, s3, sizeof(s3)));
	printf("  max hosts      %" PRIu32 "\n", sb->max_hosts);
	printf("  clusters       %" PRIu64 " x %s\n", sb->cluster_count,
	       cli_fmt_size(sb->cluster_size, s1, sizeof(s1)));
	printf("  journal        %s per host\n", cli_fmt_size(sb->journal_size, s1, sizeof(s1)));
	printf("  timing         heartbeat %" PRIu32 " ms, I/O deadline %" PRIu32
	       " ms, dead after %" PRIu32 " ms\n",
	       sb->hb_interval_ms, sb->io_deadline_ms, sb->dead_timeout_ms);
	printf("  CAW backend    %s\n", mkfs_caw_str((sb->feat_incompat & LUNFS_FEAT_INCOMPAT_PAXOS) != 0
							  ? LUNFS_CAW_PAXOS : LUNFS_CAW_LOCAL));
}

static int mkfs_format(struct mkfs_ctx *m)
{
	struct lunfs_vol_create_opts o;
	struct cli_progress pr;
	const char *why = NULL;
	int err;

	memset(&o, 0, sizeof(o));
	o.layout = m->a.layout;
	o.layout.volume_size = m->dev_size;
	o.layout.sector_size = m->sector_size;
	o.label = m->a.label;
	o.caw = m->a.caw;
	if (m->a.have_uuid) {
		memcpy(o.uuid, m->a.uuid, LUNFS_UUID_SIZE);
	}
	o.root_uid = (uint32_t)getuid();
	o.root_gid = (uint32_t)getgid();
	o.why = &why;

	cli_progress_init(&pr, "Formatting", m->a.quiet);
	err = vol_create(m->dev, &o, &m->sb, cli_progress_cb, &pr);
	cli_progress_finish(&pr, err == 0);
	if (err < 0) {
		if (why != NULL) {
			fprintf(stderr, PROG ": %s: %s\n", m->a.path, why);
		} else {
			fprintf(stderr, PROG ": %s: formatting failed: %s\n", m->a.path, strerror(-err));
		}
		return MKFS_FAIL;
	}
	if (!m->a.quiet) {
		mkfs_summary(m, cli_progress_elapsed_ms(&pr));
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct mkfs_ctx m;
	int rc;

	memset(&m, 0, sizeof(m));
	rc = parse_args(argc, argv, &m.a);
	if (rc >= 0) {
		return rc;
	}
	if (m.a.size != 0) {
		rc = mkfs_size_file(&m);
		if (rc != 0) {
			goto out;
		}
	}
	rc = mkfs_open(&m);
	if (rc != 0) {
		goto out;
	}
	rc = mkfs_layout(&m);
	if (rc != 0) {
		goto out;
	}
	rc = mkfs_check_existing(&m);
	if (rc != 0) {
		goto out;
	}
	if (m.a.dry_run) {
		printf("%s: would format %s%s with this layout (dry run, nothing written):\n", PROG,
		       m.a.path, m.dev == NULL ? " (after creating it)" : "");
		print_layout(&m, stdout);
		goto out;
	}
	rc = mkfs_format(&m);
out:
	if (m.dev != NULL) {
		dev_close(m.dev);
	}
	if (rc != 0 && m.created) {
		/* Leave no half-made image behind that we made ourselves. */
		unlink(m.a.path);
	}
	return rc;
}
