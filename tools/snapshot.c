/*
 * `lunfs snapshot create|list|revert|delete IMAGE [NAME]`: snapshots of a
 * VM image on a mounted volume (docs/USER_GUIDE.md "Snapshots and
 * clones").
 *
 * The work is the mount's: create, revert and delete are ioctls on the
 * image, opened read-only (include/lunfs/ioctl.h); the mount's daemon takes
 * the locks. A snapshot is a read-only file in the image's snapshot
 * directory, "MOUNT/.lunfs-snapshots/<ino>-<generation>/NAME": `list`
 * reads that directory and asks the mount about each entry (INFO on the
 * directory, so no snapshot is opened).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
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

struct snap_row {
	char name[LUNFS_IOC_NAME_MAX];
	struct lunfs_ioc_info in;
	int64_t ctime_ns;
};

static int snap_row_cmp(const void *a, const void *b)
{
	const struct snap_row *x = a, *y = b;

	return x->in.snap_id < y->in.snap_id ? -1 : x->in.snap_id > y->in.snap_id;
}

/* The name as the ioctl carries it: short enough, no '/'. */
static int snap_name_ok(const struct tool_cmd *cmd, const char *name)
{
	if (name[0] == '\0' || strlen(name) >= LUNFS_IOC_NAME_MAX || strchr(name, '/') != NULL ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		tool_usage_error(cmd, "'%s' is not a valid snapshot name (1..255 bytes, no '/')", name);
		return -EINVAL;
	}
	return 0;
}

static int snap_change(const struct tool_cmd *cmd, const char *verb, const char *image, const char *name,
		       bool json)
{
	unsigned long req = strcmp(verb, "create") == 0   ? LUNFS_IOC_SNAP_CREATE :
			    strcmp(verb, "revert") == 0   ? LUNFS_IOC_SNAP_REVERT :
							    LUNFS_IOC_SNAP_DELETE;
	struct lunfs_ioc_snap s;
	struct lunfs_ioc_info in;
	char mnt[PATH_MAX];
	int fd, err;

	if (snap_name_ok(cmd, name) < 0) {
		return TOOL_EXIT_USAGE;
	}
	fd = ioc_open(cmd->name, image, O_RDONLY);
	if (fd < 0) {
		return TOOL_EXIT_ERROR;
	}
	memset(&s, 0, sizeof(s));
	snprintf(s.name, sizeof(s.name), "%s", name);
	err = ioc_call(cmd->name, image, fd, req, &s, true);
	if (err == -ENOENT && req != LUNFS_IOC_SNAP_CREATE) {
		fprintf(stderr, "lunfs %s: %s has no snapshot named '%s' (lunfs snapshot list %s)\n",
			cmd->name, image, name, image);
	} else if (err == -EEXIST) {
		fprintf(stderr, "lunfs %s: %s already has a snapshot named '%s'\n", cmd->name, image, name);
	}
	if (err == 0 && req == LUNFS_IOC_SNAP_CREATE) {
		err = ioc_info_at(cmd->name, image, fd, NULL, &in);
		if (err == 0) {
			err = ioc_mount_of(cmd->name, image, mnt, sizeof(mnt), NULL, 0);
		}
		if (err == 0 && json) {
			struct json_object *o = json_object_new_object();
			char path[2 * PATH_MAX];

			snprintf(path, sizeof(path), "%s%s/%s", strcmp(mnt, "/") == 0 ? "" : mnt, in.snap_path, name);
			view_j_str(o, "image", image);
			view_j_str(o, "name", name);
			view_j_u64(o, "id", s.id);
			view_j_u64(o, "ino", s.ino);
			view_j_str(o, "path", path);
			view_j_print(o);
			json_object_put(o);
		} else if (err == 0) {
			printf("snapshot '%s' of %s taken (id %" PRIu64 "): %s%s/%s\n", name, image, s.id,
			       strcmp(mnt, "/") == 0 ? "" : mnt, in.snap_path, name);
		}
	} else if (err == 0 && json) {
		struct json_object *o = json_object_new_object();

		view_j_str(o, "image", image);
		view_j_str(o, "name", name);
		view_j_str(o, "done", req == LUNFS_IOC_SNAP_REVERT ? "reverted" : "deleted");
		view_j_print(o);
		json_object_put(o);
	} else if (err == 0 && req == LUNFS_IOC_SNAP_REVERT) {
		printf("%s: reverted to snapshot '%s'\n", image, name);
	} else if (err == 0) {
		printf("%s: snapshot '%s' deleted\n", image, name);
	}
	close(fd);
	return err == 0 ? TOOL_EXIT_OK : TOOL_EXIT_ERROR;
}

static int snap_list(const struct tool_cmd *cmd, const char *image, bool json)
{
	struct snap_row *rows = NULL;
	size_t n = 0, cap = 0;
	struct lunfs_ioc_info img;
	char mnt[PATH_MAX], dir[2 * PATH_MAX];
	struct json_object *root = NULL, *arr = NULL;
	DIR *d = NULL;
	int fd, err, ret = TOOL_EXIT_ERROR;

	fd = ioc_open(cmd->name, image, O_RDONLY);
	if (fd < 0) {
		return TOOL_EXIT_ERROR;
	}
	err = ioc_info_at(cmd->name, image, fd, NULL, &img);
	close(fd);
	if (err == 0) {
		err = ioc_mount_of(cmd->name, image, mnt, sizeof(mnt), NULL, 0);
	}
	if (err < 0) {
		return TOOL_EXIT_ERROR;
	}
	if (img.snap_path[0] == '\0') {
		tool_err(cmd->name, "%s: not a regular file: no snapshots", image);
		return TOOL_EXIT_ERROR;
	}
	snprintf(dir, sizeof(dir), "%s%s", strcmp(mnt, "/") == 0 ? "" : mnt, img.snap_path);
	if (img.snap_dir != 0) {
		d = opendir(dir);
		if (d == NULL && errno != ENOENT) {
			tool_err(cmd->name, "%s: %s", dir, strerror(errno));
			return TOOL_EXIT_ERROR;
		}
	}
	for (struct dirent *de = d != NULL ? readdir(d) : NULL; de != NULL; de = readdir(d)) {
		struct snap_row r;
		struct stat st;

		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' || strcmp(de->d_name, "..") == 0)) {
			continue;
		}
		memset(&r, 0, sizeof(r));
		snprintf(r.name, sizeof(r.name), "%s", de->d_name);
		if (ioc_info_at(cmd->name, dir, dirfd(d), de->d_name, &r.in) < 0) {
			continue; /* deleted meanwhile, or not ours: explained */
		}
		if ((r.in.flags & 1u) == 0 || r.in.snap_parent != img.ino) {
			continue; /* not a snapshot of this image */
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			r.ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
		}
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 16;
			struct snap_row *nr = realloc(rows, nc * sizeof(*nr));

			if (nr == NULL) {
				tool_err(cmd->name, "out of memory");
				goto out;
			}
			rows = nr;
			cap = nc;
		}
		rows[n++] = r;
	}
	if (n > 1) {
		qsort(rows, n, sizeof(*rows), snap_row_cmp);
	}
	if (json) {
		root = json_object_new_object();
		arr = json_object_new_array();
		view_j_str(root, "image", image);
		view_j_str(root, "directory", dir);
		view_j_u64(root, "image_owns_bytes", img.excl_bytes);
		view_j_u64(root, "image_shares_bytes", img.shared_bytes);
		for (size_t i = 0; i < n; i++) {
			struct json_object *o = view_j_push_obj(arr);
			char path[3 * PATH_MAX];

			snprintf(path, sizeof(path), "%s/%s", dir, rows[i].name);
			view_j_str(o, "name", rows[i].name);
			view_j_u64(o, "id", rows[i].in.snap_id);
			view_j_time(o, "created", (uint64_t)rows[i].ctime_ns);
			view_j_u64(o, "size", rows[i].in.size);
			view_j_u64(o, "owns_bytes", rows[i].in.excl_bytes);
			view_j_u64(o, "shares_bytes", rows[i].in.shared_bytes);
			view_j_str(o, "path", path);
		}
		view_j_put(root, "snapshots", arr);
		arr = NULL;
		view_j_print(root);
	} else if (n == 0) {
		printf("%s has no snapshots\n", image);
	} else {
		char t[TOOL_TIME_STRLEN], sz[CLI_SIZE_STRLEN], own[CLI_SIZE_STRLEN], sh[CLI_SIZE_STRLEN];

		printf("%-5s %-24s %-24s %10s %10s %10s\n", "ID", "NAME", "CREATED", "SIZE", "OWNS", "SHARES");
		for (size_t i = 0; i < n; i++) {
			printf("%-5" PRIu64 " %-24s %-24s %10s %10s %10s\n", rows[i].in.snap_id, rows[i].name,
			       tool_fmt_time((uint64_t)rows[i].ctime_ns, t, sizeof(t)),
			       cli_fmt_size(rows[i].in.size, sz, sizeof(sz)),
			       cli_fmt_size(rows[i].in.excl_bytes, own, sizeof(own)),
			       cli_fmt_size(rows[i].in.shared_bytes, sh, sizeof(sh)));
		}
		printf("\n%zu snapshot(s) in %s\n"
		       "OWNS: blocks only that snapshot references (deleting it frees them)\n", n, dir);
	}
	ret = TOOL_EXIT_OK;
out:
	json_object_put(arr);
	json_object_put(root);
	free(rows);
	if (d != NULL) {
		closedir(d);
	}
	return ret;
}

int cmd_snapshot(const struct tool_cmd *cmd, int argc, char **argv)
{
	const char *verb;
	bool json = false;
	const struct tool_flag flags[] = { { "json", &json }, { NULL, NULL } };
	int ret;

	ret = tool_flags_parse(cmd, argc, argv, "+h", flags);
	if (ret != TOOL_FLAGS_GO_ON) {
		return ret;
	}
	if (optind >= argc) {
		return tool_usage_error(cmd, "missing create, list, revert or delete");
	}
	verb = argv[optind++];
	/* Options may also follow the verb. */
	ret = tool_flags_parse(cmd, argc, argv, "h", flags);
	if (ret != TOOL_FLAGS_GO_ON) {
		return ret;
	}
	if (strcmp(verb, "list") == 0 || strcmp(verb, "ls") == 0) {
		if (argc - optind != 1) {
			return tool_usage_error(cmd, argc - optind < 1 ? "missing IMAGE" : "too many arguments");
		}
		return snap_list(cmd, argv[optind], json);
	}
	if (strcmp(verb, "create") == 0 || strcmp(verb, "revert") == 0 || strcmp(verb, "delete") == 0) {
		if (argc - optind != 2) {
			return tool_usage_error(cmd, argc - optind < 2 ? "missing IMAGE or NAME" : "too many arguments");
		}
		return snap_change(cmd, verb, argv[optind], argv[optind + 1], json);
	}
	return tool_usage_error(cmd, "unknown subcommand '%s' (create, list, revert, delete)", verb);
}
