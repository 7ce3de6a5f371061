/*
 * `lunfs`: one command for everything but mkfs and fsck (docs/mission.md
 * "Tools and interfaces"), in the style of git and ip:
 *
 *   lunfs COMMAND [options] ARGS...
 *   lunfs help [COMMAND]      lunfs COMMAND --help
 *   lunfs --version
 *
 * Each command is one row of `commands` below; its handler lives in its own
 * file and is declared in tools/commands.h. A new command (mount, hosts,
 * locks, df, snapshot, clone, du) is a new row and a new file: the
 * dispatcher, `lunfs help` and the usage messages pick it up from the table.
 *
 * Exit codes (enum tool_exit): 0 done, 1 the command failed, 2 usage error.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "lunfs/layout.h"

#ifndef LUNFS_VERSION
#define LUNFS_VERSION "0.1.0"
#endif

static const struct tool_cmd commands[] = {
	{
		.name = "inspect",
		.summary = "show a volume's on-disk state: superblock, hosts, locks, space",
		.synopsis = "[--json] [--all-slots] [--clusters] DEVICE",
		.help =
			"Read a lunfs volume (a block device or an image file) and show what\n"
			"is on it: the superblock and which copy of it was used, the regions,\n"
			"the claimed heartbeat slots (hosts), system locks that are held, the\n"
			"state of every host's journal, free space by cluster type, and the\n"
			"root directory's inode. Never writes; safe on a mounted volume.\n"
			"\n"
			"Heartbeat slots are shown as recorded: deciding whether a host is\n"
			"alive needs watching its heartbeat for a while, which inspect does not.\n"
			"Free space comes from the cluster summaries, which the hosts holding\n"
			"clusters update when they let go of them.\n"
			"\n"
			"Options:\n"
			"  --json         one JSON object on stdout, for scripts\n"
			"  --all-slots    list every heartbeat slot, not just claimed ones\n"
			"  --clusters     list every typed cluster and check its summary\n"
			"                 against the cluster's header block\n"
			"  -h, --help     this text\n"
			"\n"
			"Exit status: 0 when the volume was shown (problems found in it are\n"
			"reported in the output), 1 when it could not be read (no lunfs\n"
			"superblock, both copies corrupt, newer format, I/O error), 2 on a\n"
			"usage error.\n",
		.run = cmd_inspect,
	},
	{
		.name = "mount",
		.summary = "mount a volume with FUSE and serve it",
		.synopsis = "[-f] [-d] [-o OPTIONS] DEVICE MOUNTPOINT",
		.help =
			"Mount the lunfs volume on DEVICE (a block device or an image file) at\n"
			"MOUNTPOINT with FUSE, and serve it until it is unmounted (umount,\n"
			"fusermount3 -u) or the daemon gets SIGTERM, SIGINT or SIGHUP; then the\n"
			"volume is flushed and its journal left clean. Without -f the command\n"
			"returns once the mount is in place (or has failed, with the reason)\n"
			"and the daemon logs to syslog. `mount -t lunfs` and /etc/fstab run\n"
			"mount.lunfs, which does the same.\n"
			"\n"
			"Options:\n"
			"  -o OPTIONS     comma-separated mount options (may be repeated):\n"
			"                   host=NAME   this host's name in the heartbeat region\n"
			"                               (default: the hostname, identified by\n"
			"                               /etc/machine-id); give each mount of one\n"
			"                               machine its own name to simulate a farm\n"
			"                   ro, rw      read-only / read-write (default rw)\n"
			"                   discard     pass freed space down as discards\n"
			"                   commit=MS   journal commit period (default 5000)\n"
			"                   cache=SIZE  metadata cache bound (default 64M)\n"
			"                 allow_other and default_permissions are always on;\n"
			"                 other options (noatime, nosuid, max_read=N...) go to FUSE\n"
			"  -f, --foreground  stay in the foreground, log to stderr\n"
			"  -d, --debug    trace FUSE requests (implies -f)\n"
			"  -h, --help     this text\n"
			"\n"
			"Exit status: 0 mounted (with -f: served and unmounted cleanly), 1 the\n"
			"volume or FUSE could not be mounted, 2 on a usage error.\n",
		.run = cmd_mount,
	},
	{
		.name = "hosts",
		.summary = "list the hosts (heartbeat slots): recorded and observed state",
		.synopsis = "[--json] [--all] [--no-wait|--confirm-dead] DEVICE|MOUNTPOINT",
		.help =
			"List the volume's heartbeat slots: slot, host name and UUID, the state\n"
			"the slot records (live, joining, leaving, recovering, free) and the\n"
			"state observed from here, generation, seq, how long the slot has been\n"
			"seen unchanged here, pid and timing (interval/dead timeout/I/O\n"
			"deadline, ms). MOUNTPOINT: the device of the lunfs mount there.\n"
			"\n"
			"Observation: the heartbeat region is read for twice the longest\n"
			"interval a host advertises. A slot that changed is live; one that did\n"
			"not is silent. A host is dead only when its slot has stayed unchanged\n"
			"for its own dead timeout, measured on this machine's clock (never from\n"
			"the times hosts write), which --confirm-dead waits out. Never writes.\n"
			"\n"
			"Options:\n"
			"  --json          one JSON object on stdout, for scripts\n"
			"  --all           list every slot, not just claimed ones\n"
			"  --no-wait       do not observe: show the recorded state only\n"
			"  --confirm-dead  watch silent slots until they move or reach their\n"
			"                  dead timeout (at most 10 minutes)\n"
			"  -h, --help      this text\n"
			"\n"
			"Exit status: 0 shown, 1 the volume could not be read, 2 usage error.\n",
		.run = cmd_hosts,
	},
	{
		.name = "locks",
		.summary = "list held locks: who holds what, in which mode, since when",
		.synopsis = "[--json] [--all] DEVICE|MOUNTPOINT",
		.help =
			"List the lock records that are held: system locks, resource cluster\n"
			"locks (with a count of clusters by type) and the locks of allocated\n"
			"inodes. For each: kind, id (inode number), mode, owner (slot, host\n"
			"name, generation; [stale] when the slot has moved past it) or shared\n"
			"holders, when it was granted, and a pending hand-off request.\n"
			"MOUNTPOINT: the device of the lunfs mount there. Never writes.\n"
			"\n"
			"Options:\n"
			"  --json      one JSON object on stdout, for scripts\n"
			"  --all       also list lock records that are written but free\n"
			"  -h, --help  this text\n"
			"\n"
			"Exit status: 0 shown, 1 the volume could not be read, 2 usage error.\n",
		.run = cmd_locks,
	},
	{
		.name = "snapshot",
		.summary = "take, list, revert to and delete snapshots of a VM image",
		.synopsis = "create|list|revert|delete [--json] IMAGE [NAME]",
		.help =
			"  create IMAGE NAME   take snapshot NAME of IMAGE: a read-only copy of it\n"
			"                      as it is now, instant whatever its size (blocks are\n"
			"                      shared, copy-on-write). Every write acknowledged\n"
			"                      before is in it. Works on the host that has IMAGE\n"
			"                      open for write (the one running the VM), or anywhere\n"
			"                      when no host has it open for write\n"
			"  list IMAGE          its snapshots: id, name, when taken, size, the bytes\n"
			"                      each owns alone (what deleting it frees) and shares\n"
			"  revert IMAGE NAME   IMAGE becomes what snapshot NAME holds (size too);\n"
			"                      refused while IMAGE is open (stop the VM first)\n"
			"  delete IMAGE NAME   delete snapshot NAME, freeing what nothing else uses\n"
			"\n"
			"IMAGE is a regular file on a mounted lunfs volume. Its snapshots are\n"
			"read-only files in MOUNT/.lunfs-snapshots/<inode>-<generation>/NAME\n"
			"(`list` prints the directory): read them, copy them, give them to QEMU\n"
			"as read-only disks. Deleting such a file deletes the snapshot. A\n"
			"snapshot outlives its image: deleting the image keeps its snapshots.\n"
			"Needs root or the owner of IMAGE.\n"
			"\n"
			"Options:\n"
			"  --json      one JSON object on stdout, for scripts\n"
			"  -h, --help  this text\n"
			"\n"
			"Exit status: 0 done, 1 refused or failed (EBUSY names the host that has\n"
			"IMAGE open), 2 usage error.\n",
		.run = cmd_snapshot,
	},
	{
		.name = "clone",
		.summary = "an instant writable copy of a file (blocks shared)",
		.synopsis = "[--json] SRC DST",
		.help =
			"Make DST, a new file on the same mounted volume, a copy of SRC. The\n"
			"copy shares SRC's blocks copy-on-write, so it is instant whatever the\n"
			"size and takes no space until either side is written. DST must not\n"
			"exist; it gets SRC's permission bits (less the umask) and is yours.\n"
			"A crash leaves DST whole or absent. Refused (EBUSY, naming the host)\n"
			"while SRC is open for write on another host. `cp --reflink=auto` on\n"
			"the mount shares blocks too (copy_file_range), range by range.\n"
			"\n"
			"Options:\n"
			"  --json      one JSON object on stdout, for scripts\n"
			"  -h, --help  this text\n"
			"\n"
			"Exit status: 0 done, 1 failed, 2 usage error.\n",
		.run = cmd_clone,
	},
	{
		.name = "du",
		.summary = "per file: space it owns alone and space it shares",
		.synopsis = "[--json] PATH...",
		.help =
			"For each file (directories are walked), on a mounted volume:\n"
			"  OWNS    blocks no other file references: deleting the file frees them\n"
			"  SHARES  blocks shared with clones and snapshots\n"
			"  SIZE    the file's size (sparse files own less)\n"
			"Files are not opened, so images open on other hosts are measured too\n"
			"(from what those hosts have written home). Snapshots are under\n"
			"MOUNT/.lunfs-snapshots, which a walk skips unless it is named.\n"
			"\n"
			"Options:\n"
			"  --json      one JSON object on stdout, for scripts\n"
			"  -h, --help  this text\n"
			"\n"
			"Exit status: 0 shown, 1 some path could not be measured, 2 usage error.\n",
		.run = cmd_du,
	},
	{
		.name = "df",
		.summary = "size, used and free space of mounted volumes",
		.synopsis = "[--json] PATH...",
		.help =
			"Size, used and free file-block space of the mounted volume each PATH\n"
			"lies on. Blocks shared by clones and snapshots count once.\n"
			"\n"
			"Options:\n"
			"  --json      one JSON object on stdout, for scripts\n"
			"  -h, --help  this text\n"
			"\n"
			"Exit status: 0 shown, 1 a PATH is not on a lunfs mount, 2 usage error.\n",
		.run = cmd_df,
	},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct tool_cmd *cmd_find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strcmp(commands[i].name, name) == 0) {
			return &commands[i];
		}
	}
	return NULL;
}

static void main_usage(FILE *f)
{
	size_t width = 0;

	for (size_t i = 0; i < NCOMMANDS; i++) {
		size_t n = strlen(commands[i].name);

		if (n > width) {
			width = n;
		}
	}
	fprintf(f, "Usage: lunfs COMMAND [options] ARGS...\n"
		   "       lunfs help [COMMAND]\n"
		   "       lunfs --version\n"
		   "\n"
		   "Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		fprintf(f, "  %-*s  %s\n", (int)width, commands[i].name, commands[i].summary);
	}
	fprintf(f, "\n"
		   "Every command takes --help. Volumes are made with mkfs.lunfs and\n"
		   "checked with fsck.lunfs.\n");
}

static int main_help(int argc, char **argv)
{
	const struct tool_cmd *cmd;

	if (argc < 2) {
		main_usage(stdout);
		return TOOL_EXIT_OK;
	}
	if (argc > 2) {
		fprintf(stderr, "lunfs help: too many arguments\n");
		return TOOL_EXIT_USAGE;
	}
	cmd = cmd_find(argv[1]);
	if (cmd == NULL) {
		fprintf(stderr, "lunfs help: unknown command '%s'. Try 'lunfs help'.\n", argv[1]);
		return TOOL_EXIT_USAGE;
	}
	tool_help(cmd);
	return TOOL_EXIT_OK;
}

int main(int argc, char **argv)
{
	const struct tool_cmd *cmd;
	const char *name;

	if (argc < 2) {
		main_usage(stderr);
		return TOOL_EXIT_USAGE;
	}
	name = argv[1];
	if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0 ||
	    strcmp(name, "version") == 0) {
		printf("lunfs %s (on-disk format %u.%u)\n", LUNFS_VERSION,
		       LUNFS_FORMAT_MAJOR, LUNFS_FORMAT_MINOR);
		return TOOL_EXIT_OK;
	}
	if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
		return main_help(argc - 1, argv + 1);
	}
	cmd = cmd_find(name);
	if (cmd == NULL) {
		if (name[0] == '-') {
			fprintf(stderr, "lunfs: unknown option '%s'. Try 'lunfs help'.\n", name);
		} else {
			fprintf(stderr, "lunfs: unknown command '%s'. Try 'lunfs help'.\n", name);
		}
		return TOOL_EXIT_USAGE;
	}
	/* The handler sees its own name as argv[0], as getopt expects. */
	return cmd->run(cmd, argc - 1, argv + 1);
}
