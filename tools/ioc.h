/*
 * Talking to a mounted volume from the `lunfs` command (tools/ioc.c):
 * finding the lunfs mount a path lies on, opening files there with clear
 * errors, the ioctls of include/lunfs/ioctl.h, and naming the host that
 * holds a file when the mount says EBUSY. User interface only.
 */
#ifndef LUNFS_TOOLS_IOC_H
#define LUNFS_TOOLS_IOC_H

#include <stdbool.h>
#include <stddef.h>

#include "lunfs/ioctl.h"

/* The lunfs mount `path` lies on: its mount point and device (either may
 * be NULL). -ENOENT (explained on stderr as "lunfs CMD: ...") when the
 * path is on no lunfs mount. */
int ioc_mount_of(const char *cmd, const char *path, char *mnt, size_t mlen, char *dev, size_t dlen);
/* open(2) of a path that must be on a lunfs mount; a file open for write
 * on another host (EBUSY) is explained with that host's name. Returns the
 * fd or a negative errno (explained). */
int ioc_open(const char *cmd, const char *path, int flags);
/* "host 'esx2' (slot 1)": who holds path's inode lock, read from the
 * device (read-only). -ENOENT when nobody does. Prints nothing. */
int ioc_holder(const char *path, char *out, size_t len);
/* ioctl(fd, req, arg), errors explained ("in use by host ..." for EBUSY;
 * with quiet_names, ENOENT and EEXIST are left to the caller, who knows
 * which name). 0 or a negative errno. */
int ioc_call(const char *cmd, const char *path, int fd, unsigned long req, void *arg, bool quiet_names);
/* LUNFS_IOC_INFO on fd (name NULL) or on entry `name` of directory fd. */
int ioc_info_at(const char *cmd, const char *path, int dirfd, const char *name,
		struct lunfs_ioc_info *out);

#endif
