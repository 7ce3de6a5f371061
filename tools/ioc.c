/*
 * Talking to a mounted volume (tools/ioc.h): what `lunfs snapshot`,
 * `clone`, `du` and `df` share. The commands reach the filesystem through
 * the mount itself, never the device: ioctls (include/lunfs/ioctl.h) on
 * files of the mount, served by the mount's daemon, which holds the locks
 * and the journal. The device is read (read-only, like `lunfs locks`) only
 * to name the host that holds a file when the mount answers EBUSY.
 *
 * Mounts are found in /proc/self/mountinfo (view_mountinfo_split): the
 * lunfs mount (type fuse.lunfs) whose mount point is the longest prefix
 * of the path's real path. Its source is the device (the FUSE fsname the
 * daemon sets).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "ioc.h"
#include "lunfs/layout.h"
#include "lunfs/lock.h"
#include "lunfs/probe.h"
#include "view.h"

/* Is mount point m a prefix of path p at a component boundary? */
static bool ioc_under(const char *m, const char *p)
{
	size_t n = strlen(m);

	if (strcmp(m, "/") == 0) {
		return true;
	}
	return strncmp(m, p, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

int ioc_mount_of(const char *cmd, const char *path, char *mnt, size_t mlen, char *dev, size_t dlen)
{
	char real[PATH_MAX], best[PATH_MAX] = "", src[PATH_MAX] = "";
	char *line = NULL;
	size_t cap = 0, bestlen = 0;
	bool best_lunfs = false;
	FILE *f;

	if (realpath(path, real) == NULL) {
		tool_err(cmd, "%s: %s", path, strerror(errno));
		return -errno;
	}
	f = fopen("/proc/self/mountinfo", "r");
	if (f == NULL) {
		tool_err(cmd, "cannot read /proc/self/mountinfo: %s", strerror(errno));
		return -ENOENT;
	}
	while (getline(&line, &cap, f) > 0) {
		struct view_mount m;
		size_t len;

		if (view_mountinfo_split(line, &m) < 0 || !ioc_under(m.point, real)) {
			continue;
		}
		len = strlen(m.point);
		/* The deepest mount wins; a later line for the same point is
		 * a mount over the earlier one. */
		if (len >= bestlen) {
			bestlen = len;
			snprintf(best, sizeof(best), "%s", m.point);
			best_lunfs = m.type != NULL && strcmp(m.type, "fuse.lunfs") == 0 && m.source != NULL;
			if (best_lunfs) {
				snprintf(src, sizeof(src), "%s", m.source);
			}
		}
	}
	free(line);
	fclose(f);
	if (!best_lunfs) {
		tool_err(cmd, "%s: not on a lunfs mount", path);
		return -ENOENT;
	}
	if (mnt != NULL) {
		snprintf(mnt, mlen, "%s", best);
	}
	if (dev != NULL) {
		snprintf(dev, dlen, "%s", src);
	}
	return 0;
}

int ioc_open(const char *cmd, const char *path, int flags)
{
	int fd;

	if (ioc_mount_of(cmd, path, NULL, 0, NULL, 0) < 0) {
		return -ENOENT;
	}
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;

		if (err == EBUSY) {
			char who[160];

			/* VMFS semantics: a file open for write on another
			 * host cannot be opened here at all. */
			if (ioc_holder(path, who, sizeof(who)) == 0) {
				tool_err(cmd, "%s: open for write on %s", path, who);
			} else {
				tool_err(cmd, "%s: in use on another host", path);
			}
		} else {
			tool_err(cmd, "%s: %s", path, strerror(err));
		}
		return -err;
	}
	return fd;
}

int ioc_holder(const char *path, char *out, size_t len)
{
	char dev[PATH_MAX];
	struct tool_volume vol;
	struct lunfs_hb_slot *hosts = NULL;
	int *status = NULL;
	struct lunfs_lock l;
	struct stat st;
	uint8_t *rec = NULL;
	uint64_t addr = 0;
	uint32_t slot = UINT32_MAX;
	int err, saved;

	if (stat(path, &st) != 0) {
		return -errno;
	}
	/* Quietly: a holder we cannot name is reported without a name. */
	saved = dup(STDERR_FILENO);
	if (saved >= 0) {
		int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (nul >= 0) {
			dup2(nul, STDERR_FILENO);
			close(nul);
		}
	}
	err = ioc_mount_of("", path, NULL, 0, dev, sizeof(dev));
	if (err == 0) {
		err = tool_volume_open("", dev, &vol);
	}
	if (saved >= 0) {
		dup2(saved, STDERR_FILENO);
		close(saved);
	}
	if (err < 0) {
		return err;
	}
	rec = dev_buf_alloc(vol.sb.sector_size);
	hosts = calloc(vol.sb.max_hosts, sizeof(*hosts));
	status = calloc(vol.sb.max_hosts, sizeof(*status));
	if (rec == NULL || hosts == NULL || status == NULL) {
		err = -ENOMEM;
		goto out;
	}
	err = layout_ino_addr(&vol.sb, (uint64_t)st.st_ino, &addr) == 0 ? 0 : -EINVAL;
	if (err == 0) {
		err = dev_read(vol.dev, rec, vol.sb.sector_size, addr);
	}
	if (err == 0) {
		err = lock_decode(&vol.codec, rec, addr, &l);
	}
	if (err == 0) {
		err = hb_scan_read(vol.dev, &vol.sb, &vol.codec, hosts, status);
	}
	if (err < 0) {
		goto out;
	}
	if (l.mode == LUNFS_LOCK_EXCLUSIVE && l.owner_slot != 0 && l.owner_slot <= vol.sb.max_hosts) {
		slot = l.owner_slot - 1u;
	} else {
		for (uint32_t i = 0; i < vol.sb.max_hosts && slot == UINT32_MAX; i++) {
			if (l.mode != LUNFS_LOCK_FREE && lock_holder_test(&l, i)) {
				slot = i;
			}
		}
	}
	if (slot == UINT32_MAX) {
		err = -ENOENT;
		goto out;
	}
	{
		char name[TOOL_SAFE_STR(sizeof(hosts[0].host_name))];

		tool_str_safe(hosts[slot].host_name, name, sizeof(name));
		snprintf(out, len, "host '%s' (slot %" PRIu32 ")", name, slot);
	}
out:
	free(status);
	free(hosts);
	dev_buf_free(rec);
	tool_volume_close(&vol);
	return err;
}

int ioc_call(const char *cmd, const char *path, int fd, unsigned long req, void *arg, bool quiet_names)
{
	int err;

	if (ioctl(fd, req, arg) == 0) {
		return 0;
	}
	err = errno;
	if (quiet_names && (err == ENOENT || err == EEXIST)) {
		/* The caller says which name. */
	} else if (err == EBUSY) {
		char who[160];

		if (ioc_holder(path, who, sizeof(who)) == 0) {
			tool_err(cmd, "%s: in use by %s (open there, or a hand-over is pending)", path, who);
		} else {
			tool_err(cmd, "%s: in use (open on this or another host)", path);
		}
	} else if (err == ENOTTY || err == ENOSYS) {
		tool_err(cmd, "%s: the mount does not answer lunfs requests (an older lunfs?)", path);
	} else {
		tool_err(cmd, "%s: %s", path, strerror(err));
	}
	return -err;
}

int ioc_info_at(const char *cmd, const char *path, int dirfd, const char *name,
		struct lunfs_ioc_info *out)
{
	memset(out, 0, sizeof(*out));
	if (name != NULL) {
		if (strlen(name) >= sizeof(out->name)) {
			tool_err(cmd, "%s: name too long", path);
			return -ENAMETOOLONG;
		}
		snprintf(out->name, sizeof(out->name), "%s", name);
	}
	return ioc_call(cmd, path, dirfd, LUNFS_IOC_INFO, out, false);
}
