/*
 * `lunfs df [--json] PATH...`: size, used and free space of the mounted
 * volumes the paths lie on, like df(1), from statfs(2) on the mount. The
 * mount counts from the cluster bitmaps, so a block that clones and
 * snapshots share counts once: a clone or a snapshot changes nothing
 * here until its blocks are written (`lunfs du` shows who shares what).
 * Sizes are of file blocks: map nodes, directories and inodes live in
 * clusters of their own and are not in these figures.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "cli/cli.h"
#include "commands.h"
#include "ioc.h"
#include "view.h"

int cmd_df(const struct tool_cmd *cmd, int argc, char **argv)
{
	struct json_object *arr = NULL;
	bool json = false;
	const struct tool_flag flags[] = { { "json", &json }, { NULL, NULL } };
	unsigned errors = 0;
	int ret;

	ret = tool_flags_parse(cmd, argc, argv, "h", flags);
	if (ret != TOOL_FLAGS_GO_ON) {
		return ret;
	}
	if (optind >= argc) {
		return tool_usage_error(cmd, "missing PATH (a lunfs mount point, or a path on one)");
	}
	if (json) {
		arr = json_object_new_array();
	} else {
		printf("%-28s %10s %10s %10s %5s  %s\n", "DEVICE", "SIZE", "USED", "FREE", "USE%", "MOUNTED ON");
	}
	for (int i = optind; i < argc; i++) {
		char mnt[PATH_MAX], dev[PATH_MAX];
		struct statvfs st;
		uint64_t size, freeb, used;

		if (ioc_mount_of(cmd->name, argv[i], mnt, sizeof(mnt), dev, sizeof(dev)) < 0) {
			errors++;
			continue;
		}
		if (statvfs(mnt, &st) != 0) {
			tool_err(cmd->name, "%s: %s", mnt, strerror(errno));
			errors++;
			continue;
		}
		size = (uint64_t)st.f_blocks * st.f_frsize;
		freeb = (uint64_t)st.f_bfree * st.f_frsize;
		used = size - freeb;
		if (json) {
			struct json_object *o = view_j_push_obj(arr);

			view_j_str(o, "device", dev);
			view_j_str(o, "mountpoint", mnt);
			view_j_u64(o, "size", size);
			view_j_u64(o, "used", used);
			view_j_u64(o, "free", freeb);
			view_j_u64(o, "block_size", st.f_frsize);
			view_j_u64(o, "inodes", st.f_files);
			view_j_u64(o, "inodes_free", st.f_ffree);
		} else {
			char a[CLI_SIZE_STRLEN], b[CLI_SIZE_STRLEN], f[CLI_SIZE_STRLEN];

			printf("%-28s %10s %10s %10s %4" PRIu64 "%%  %s\n", dev, cli_fmt_size(size, a, sizeof(a)),
			       cli_fmt_size(used, b, sizeof(b)), cli_fmt_size(freeb, f, sizeof(f)),
			       size ? (used * 100 + size - 1) / size : 0, mnt);
		}
	}
	if (json) {
		struct json_object *root = json_object_new_object();

		view_j_put(root, "volumes", arr);
		view_j_print(root);
		json_object_put(root);
	}
	return errors == 0 ? TOOL_EXIT_OK : TOOL_EXIT_ERROR;
}
