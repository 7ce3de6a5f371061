/*
 * Helpers shared by the `lunfs` commands that show things (tools/view.h).
 *
 * Mount points: /proc/self/mountinfo lines are
 *   ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
 * with spaces, tabs, newlines and backslashes in paths written as \ooo.
 * A lunfs mount has FSTYPE "fuse.lunfs" and SOURCE the device (the FUSE
 * fsname the mount daemon sets).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "view.h"

/* Undo mountinfo's \ooo escapes in place. */
static void mi_unescape(char *s)
{
	char *o = s;

	while (*s != '\0') {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
}

int view_mountinfo_split(char *line, struct view_mount *m)
{
	char *save = NULL, *fields[6] = { NULL }, *sep, *tok;
	unsigned n = 0;

	memset(m, 0, sizeof(*m));
	sep = strstr(line, " - ");
	if (sep == NULL) {
		return -EINVAL;
	}
	*sep = '\0';
	for (tok = strtok_r(line, " ", &save); tok != NULL && n < 6; tok = strtok_r(NULL, " ", &save)) {
		fields[n++] = tok;
	}
	if (n < 5) {
		return -EINVAL;
	}
	m->point = fields[4];
	mi_unescape(m->point);
	save = NULL;
	m->type = strtok_r(sep + 3, " \n", &save);
	m->source = strtok_r(NULL, " \n", &save);
	if (m->source != NULL) {
		mi_unescape(m->source);
	}
	return 0;
}

int view_device_resolve(const char *cmd, const char *arg, char *dev, size_t len)
{
	char real[PATH_MAX];
	char *line = NULL;
	size_t cap = 0;
	struct stat st;
	FILE *f;
	int err = -ENOENT;

	if (stat(arg, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(dev, len, "%s", arg);
		return 0;
	}
	if (realpath(arg, real) == NULL) {
		snprintf(real, sizeof(real), "%s", arg);
	}
	f = fopen("/proc/self/mountinfo", "r");
	if (f == NULL) {
		tool_err(cmd, "%s: is a directory, and /proc/self/mountinfo cannot be read", arg);
		return -ENOENT;
	}
	while (getline(&line, &cap, f) > 0) {
		struct view_mount m;

		if (view_mountinfo_split(line, &m) < 0 || strcmp(m.point, real) != 0) {
			continue;
		}
		if (m.type == NULL || strcmp(m.type, "fuse.lunfs") != 0) {
			/* A later line may mount over it: keep looking. */
			err = -EMEDIUMTYPE;
			continue;
		}
		if (m.source == NULL) {
			continue;
		}
		snprintf(dev, len, "%s", m.source);
		err = 0;
	}
	free(line);
	fclose(f);
	if (err == -EMEDIUMTYPE) {
		tool_err(cmd, "%s: the file system mounted there is not lunfs", arg);
		err = -ENOENT;
	} else if (err < 0) {
		tool_err(cmd, "%s: is a directory with no lunfs volume mounted on it", arg);
	}
	return err;
}

void view_j_put(struct json_object *o, const char *k, struct json_object *v)
{
	if (o == NULL || v == NULL) {
		json_object_put(v);
		return;
	}
	json_object_object_add(o, k, v);
}

void view_j_u64(struct json_object *o, const char *k, uint64_t v)
{
	view_j_put(o, k, json_object_new_uint64(v));
}

void view_j_int(struct json_object *o, const char *k, int64_t v)
{
	view_j_put(o, k, json_object_new_int64(v));
}

void view_j_str(struct json_object *o, const char *k, const char *s)
{
	view_j_put(o, k, json_object_new_string(s));
}

void view_j_null(struct json_object *o, const char *k)
{
	if (o != NULL) {
		json_object_object_add(o, k, NULL);
	}
}

void view_j_time(struct json_object *o, const char *k, uint64_t ns)
{
	char key[64], t[TOOL_TIME_STRLEN];

	snprintf(key, sizeof(key), "%s_ns", k);
	view_j_u64(o, key, ns);
	if (ns == 0) {
		view_j_null(o, k);
	} else {
		view_j_str(o, k, tool_fmt_time(ns, t, sizeof(t)));
	}
}

struct json_object *view_j_push_obj(struct json_object *arr)
{
	struct json_object *o = arr != NULL ? json_object_new_object() : NULL;

	if (o != NULL && json_object_array_add(arr, o) != 0) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

void view_j_print(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							 JSON_C_TO_STRING_NOSLASHESCAPE));
}

char *view_fmt_ago(uint64_t ns, char *buf, size_t len)
{
	struct timespec ts;
	uint64_t now, s;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (ns == 0) {
		snprintf(buf, len, "-");
	} else if (ns > now) {
		/* Another host's clock: display only, and it may be ahead. */
		snprintf(buf, len, "in the future");
	} else {
		s = (now - ns) / 1000000000ull;
		if (s < 120) {
			snprintf(buf, len, "%" PRIu64 " s ago", s);
		} else if (s < 7200) {
			snprintf(buf, len, "%" PRIu64 " min ago", s / 60);
		} else if (s < 172800) {
			snprintf(buf, len, "%" PRIu64 " h ago", s / 3600);
		} else {
			snprintf(buf, len, "%" PRIu64 " days ago", s / 86400);
		}
	}
	return buf;
}
