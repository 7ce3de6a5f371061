/*
 * What the `lunfs` commands that show things share (tools/view.c): reading
 * /proc/self/mountinfo, finding the device behind a mount point, and small
 * json-c helpers that tolerate allocation failure. User interface only;
 * the library never calls it.
 */
#ifndef LUNFS_TOOLS_VIEW_H
#define LUNFS_TOOLS_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* One line of /proc/self/mountinfo, split in place (the line is changed):
 * the mount point and the source with their \ooo escapes undone. type and
 * source are NULL when the line stops before them. */
struct view_mount {
	char *point;
	char *type;
	char *source;
};

/* 0, or -EINVAL for a line without the fields up to the mount point. */
int view_mountinfo_split(char *line, struct view_mount *m);

/* DEVICE|MOUNTPOINT: a directory is looked up in /proc/self/mountinfo as
 * the mount point of a fuse.lunfs mount, whose source (fsname) is the
 * device. Anything else is returned as given. 0, or -ENOENT (a directory
 * with no lunfs mounted on it; explained on stderr as "lunfs CMD: ..."). */
int view_device_resolve(const char *cmd, const char *arg, char *dev, size_t len);

/* json-c helpers: a NULL object (out of memory) is skipped, never added. */
void view_j_put(struct json_object *o, const char *k, struct json_object *v);
void view_j_u64(struct json_object *o, const char *k, uint64_t v);
void view_j_int(struct json_object *o, const char *k, int64_t v);
void view_j_str(struct json_object *o, const char *k, const char *s);
void view_j_null(struct json_object *o, const char *k);
/* "k_ns": ns and "k": the UTC text, or null for 0. */
void view_j_time(struct json_object *o, const char *k, uint64_t ns);
struct json_object *view_j_push_obj(struct json_object *arr);
/* o on stdout as the commands' --json prints it: indented, '/' as is,
 * and a newline. */
void view_j_print(struct json_object *o);

/* "3 s ago", "2 min ago", "in the future" for a wall-clock ns. */
char *view_fmt_ago(uint64_t ns, char *buf, size_t len);

#endif
