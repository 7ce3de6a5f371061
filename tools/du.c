/*
 * `lunfs du [--json] PATH...`: per file, the blocks it owns alone and the
 * blocks it shares with clones and snapshots.
 *
 *   OWNS    mapped blocks no other file references: deleting the file
 *           frees them
 *   SHARES  mapped blocks that other files (clones, snapshots, the image
 *           of a snapshot) reference too: they stay until the last one goes
 * A directory is walked (its files, recursively; the snapshot directory
 * .lunfs-snapshots only when named). Files are not opened: the mount is
 * asked about each entry of its directory (LUNFS_IOC_INFO with a name),
 * so a VM image open for write on another host is measured all the same,
 * from what that host has written home (it may lag by a commit interval).
 * The totals add SHARES of every file, so a block shared by two files
 * listed counts twice there; `lunfs df` counts each block once.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "commands.h"
#include "ioc.h"
#include "view.h"

#define DU_DEPTH_MAX 64

struct du_ctx {
	const char *cmd;
	bool json;
	struct json_object *files;
	uint64_t owns, shares, size, nfiles;
	unsigned errors;
};

static void du_row(struct du_ctx *x, const char *path, const struct lunfs_ioc_info *in)
{
	x->owns += in->excl_bytes;
	x->shares += in->shared_bytes;
	x->size += in->size;
	x->nfiles++;
	if (x->json) {
		struct json_object *o = view_j_push_obj(x->files);

		view_j_str(o, "path", path);
		view_j_u64(o, "size", in->size);
		view_j_u64(o, "owns_bytes", in->excl_bytes);
		view_j_u64(o, "shares_bytes", in->shared_bytes);
		view_j_put(o, "snapshot", json_object_new_boolean((in->flags & 1u) != 0));
	} else {
		char a[CLI_SIZE_STRLEN], b[CLI_SIZE_STRLEN], c[CLI_SIZE_STRLEN];

		printf("%10s %10s %10s  %s%s\n", cli_fmt_size(in->excl_bytes, a, sizeof(a)),
		       cli_fmt_size(in->shared_bytes, b, sizeof(b)), cli_fmt_size(in->size, c, sizeof(c)), path,
		       (in->flags & 1u) ? "  (snapshot)" : "");
	}
}

/* Every regular file under directory `path` (open as dfd). */
static void du_dir(struct du_ctx *x, const char *path, int dfd, unsigned depth)
{
	DIR *d = fdopendir(dfd);

	if (d == NULL) {
		tool_err(x->cmd, "%s: %s", path, strerror(errno));
		close(dfd);
		x->errors++;
		return;
	}
	for (struct dirent *de = readdir(d); de != NULL; de = readdir(d)) {
		char sub[PATH_MAX];
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		if (depth == 0 && strcmp(de->d_name, LUNFS_IOC_SNAP_ROOT) == 0) {
			continue; /* snapshots: `lunfs du MOUNT/.lunfs-snapshots` */
		}
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name) >= sizeof(sub)) {
			continue;
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			continue; /* gone meanwhile */
		}
		if (S_ISREG(st.st_mode)) {
			struct lunfs_ioc_info in;

			if (ioc_info_at(x->cmd, sub, dirfd(d), de->d_name, &in) == 0) {
				du_row(x, sub, &in);
			} else {
				x->errors++;
			}
		} else if (S_ISDIR(st.st_mode) && depth < DU_DEPTH_MAX) {
			int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (fd >= 0) {
				du_dir(x, sub, fd, depth + 1);
			}
		}
	}
	closedir(d);
}

static void du_path(struct du_ctx *x, const char *path)
{
	struct stat st;
	struct lunfs_ioc_info in;
	char dcopy[PATH_MAX], ncopy[PATH_MAX];
	int fd;

	if (ioc_mount_of(x->cmd, path, NULL, 0, NULL, 0) < 0) {
		x->errors++;
		return;
	}
	if (lstat(path, &st) != 0) {
		tool_err(x->cmd, "%s: %s", path, strerror(errno));
		x->errors++;
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			tool_err(x->cmd, "%s: %s", path, strerror(errno));
			x->errors++;
			return;
		}
		du_dir(x, path, fd, 0);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		return;
	}
	/* Through its directory: the file itself is not opened. */
	snprintf(dcopy, sizeof(dcopy), "%s", path);
	snprintf(ncopy, sizeof(ncopy), "%s", path);
	fd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		tool_err(x->cmd, "%s: %s", path, strerror(errno));
		x->errors++;
		return;
	}
	if (ioc_info_at(x->cmd, path, fd, basename(ncopy), &in) == 0) {
		du_row(x, path, &in);
	} else {
		x->errors++;
	}
	close(fd);
}

int cmd_du(const struct tool_cmd *cmd, int argc, char **argv)
{
	struct du_ctx x;
	const struct tool_flag flags[] = { { "json", &x.json }, { NULL, NULL } };
	int ret;

	memset(&x, 0, sizeof(x));
	x.cmd = cmd->name;
	ret = tool_flags_parse(cmd, argc, argv, "h", flags);
	if (ret != TOOL_FLAGS_GO_ON) {
		return ret;
	}
	if (optind >= argc) {
		return tool_usage_error(cmd, "missing PATH");
	}
	if (x.json) {
		x.files = json_object_new_array();
	} else {
		printf("%10s %10s %10s  %s\n", "OWNS", "SHARES", "SIZE", "PATH");
	}
	for (int i = optind; i < argc; i++) {
		du_path(&x, argv[i]);
	}
	if (x.json) {
		struct json_object *root = json_object_new_object(), *t = json_object_new_object();

		view_j_put(root, "files", x.files);
		view_j_u64(t, "files", x.nfiles);
		view_j_u64(t, "size", x.size);
		view_j_u64(t, "owns_bytes", x.owns);
		view_j_u64(t, "shares_bytes", x.shares);
		view_j_put(root, "total", t);
		view_j_print(root);
		json_object_put(root);
	} else if (x.nfiles > 1) {
		char a[CLI_SIZE_STRLEN], b[CLI_SIZE_STRLEN], s[CLI_SIZE_STRLEN];

		printf("%10s %10s %10s  total (%" PRIu64 " files)\n", cli_fmt_size(x.owns, a, sizeof(a)),
		       cli_fmt_size(x.shares, b, sizeof(b)), cli_fmt_size(x.size, s, sizeof(s)), x.nfiles);
	}
	return x.errors == 0 ? TOOL_EXIT_OK : TOOL_EXIT_ERROR;
}
