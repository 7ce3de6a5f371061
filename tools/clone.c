/*
 * `lunfs clone SRC DST`: an instant writable copy of a file on a mounted
 * volume. The copy shares every block of SRC (copy-on-write: the first
 * write to a shared block copies that block), so it costs map nodes, not
 * data, and takes the same time for 1 GiB as for 64 TiB.
 *
 * One ioctl on SRC (opened read-only) names DST's directory by its inode
 * number and DST's name; the mount makes the whole copy at once, so a
 * crash leaves DST complete or absent. DST must not exist and must be on
 * the same volume.
 */
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

int cmd_clone(const struct tool_cmd *cmd, int argc, char **argv)
{
	struct lunfs_ioc_clone cl;
	char dcopy[PATH_MAX], ncopy[PATH_MAX];
	const char *src, *dst, *dir, *name;
	struct stat sst, dst_st;
	bool json = false;
	const struct tool_flag flags[] = { { "json", &json }, { NULL, NULL } };
	int fd, err, ret;

	ret = tool_flags_parse(cmd, argc, argv, "h", flags);
	if (ret != TOOL_FLAGS_GO_ON) {
		return ret;
	}
	if (argc - optind != 2) {
		return tool_usage_error(cmd, argc - optind < 2 ? "missing SRC or DST" : "too many arguments");
	}
	src = argv[optind];
	dst = argv[optind + 1];
	snprintf(dcopy, sizeof(dcopy), "%s", dst);
	snprintf(ncopy, sizeof(ncopy), "%s", dst);
	dir = dirname(dcopy);
	name = basename(ncopy);
	if (name[0] == '\0' || strcmp(name, "/") == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
	    strlen(name) >= sizeof(cl.name)) {
		return tool_usage_error(cmd, "'%s' does not name a new file", dst);
	}
	if (lstat(dst, &dst_st) == 0) {
		tool_err(cmd->name, "%s: exists already", dst);
		return TOOL_EXIT_ERROR;
	}
	fd = ioc_open(cmd->name, src, O_RDONLY);
	if (fd < 0) {
		return TOOL_EXIT_ERROR;
	}
	if (fstat(fd, &sst) != 0 || !S_ISREG(sst.st_mode)) {
		tool_err(cmd->name, "%s: not a regular file", src);
		close(fd);
		return TOOL_EXIT_ERROR;
	}
	if (stat(dir, &dst_st) != 0 || !S_ISDIR(dst_st.st_mode)) {
		tool_err(cmd->name, "%s: no such directory", dir);
		close(fd);
		return TOOL_EXIT_ERROR;
	}
	if (dst_st.st_dev != sst.st_dev) {
		tool_err(cmd->name, "%s and %s are not on the same lunfs volume", src, dst);
		close(fd);
		return TOOL_EXIT_ERROR;
	}
	memset(&cl, 0, sizeof(cl));
	cl.dir = (uint64_t)dst_st.st_ino;
	snprintf(cl.name, sizeof(cl.name), "%s", name);
	err = ioc_call(cmd->name, src, fd, LUNFS_IOC_CLONE, &cl, false);
	close(fd);
	if (err < 0) {
		return TOOL_EXIT_ERROR;
	}
	if (json) {
		struct json_object *o = json_object_new_object();

		view_j_str(o, "source", src);
		view_j_str(o, "clone", dst);
		view_j_u64(o, "ino", cl.ino);
		view_j_u64(o, "size", (uint64_t)sst.st_size);
		view_j_print(o);
		json_object_put(o);
	} else {
		char sz[CLI_SIZE_STRLEN];

		printf("%s: clone of %s (%s, blocks shared)\n", dst, src,
		       cli_fmt_size((uint64_t)sst.st_size, sz, sizeof(sz)));
	}
	return TOOL_EXIT_OK;
}
