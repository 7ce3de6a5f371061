/*
 * Mounting a lunfs volume with FUSE: the code behind `lunfs mount` and
 * mount.lunfs (what mount(8) and /etc/fstab run). Both programs parse their
 * own command line and call fusemnt_run(), which opens the device, mounts
 * the volume, mounts FUSE, daemonizes and serves until unmounted.
 *
 * Mount options (-o, comma-separated):
 *   host=NAME      this host's name in its heartbeat slot; its identity is
 *                  then derived from NAME. Default: the hostname, with the
 *                  identity from /etc/machine-id (stable across reboots).
 *   ro, rw         read-only / read-write (default rw)
 *   discard        pass freed ranges to the device as discards
 *   commit=MS      journal commit period in milliseconds (default 5000)
 *   cache=SIZE     metadata cache bound, e.g. 64M (default 64 MiB)
 * Options mount(8) and fstab use for themselves (defaults, auto, noauto,
 * user, nofail, _netdev, x-*, comment=...) are ignored; allow_other and
 * default_permissions are always on (hypervisors run their VMs as other
 * users; the kernel checks permissions); fsname and subtype are set to the
 * device and "lunfs". Anything else goes to FUSE (e.g. max_read=N,
 * noatime, nosuid, nodev, noexec), which rejects what it does not know.
 */
#ifndef LUNFS_FUSEMNT_H
#define LUNFS_FUSEMNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes of fusemnt_run (mount.lunfs maps them to mount(8)'s). */
enum fusemnt_exit {
	FUSEMNT_OK = 0,     /* mounted, served, unmounted cleanly */
	FUSEMNT_FAIL = 1,   /* could not mount, or unmount was not clean */
	FUSEMNT_USAGE = 2,  /* bad options */
};

#define FUSEMNT_HOST_NAME_MAX 64

struct fusemnt_opts {
	char host_name[FUSEMNT_HOST_NAME_MAX + 1]; /* "" = not given */
	bool read_only;
	bool discard;
	uint32_t commit_ms;      /* 0 = the core's default */
	uint64_t cache_bytes;    /* 0 = the core's default */
	uint32_t max_read;       /* max_read=N given by the user; 0 = not */
	char *fuse_opts;         /* options passed on to FUSE, comma-separated
	                          * (malloc'd, "" when none) */
};

/* Parse an -o string (NULL = none) into o, which the caller frees with
 * fusemnt_opts_free() (also after a failure). Returns 0, -EINVAL with a
 * message in err, or -ENOMEM. */
int fusemnt_opts_parse(const char *s, struct fusemnt_opts *o, char *err, size_t errlen);
void fusemnt_opts_free(struct fusemnt_opts *o);

struct fusemnt_args {
	const char *prog;        /* prefix of messages: "lunfs mount" */
	const char *device;
	const char *mountpoint;
	const char *options;     /* the -o string; NULL = none */
	bool foreground;         /* stay attached, log to stderr */
	bool debug;              /* FUSE request tracing (implies foreground) */
};

/*
 * Mount and serve. Without `foreground`, the process forks first and the
 * parent waits: it exits 0 once the volume and FUSE are mounted, or 1
 * after the child has printed why it could not mount (so errors reach the
 * caller of mount(8)); the child serves in the background and logs to
 * syslog. Forking first matters: the device's io_uring rings and the
 * volume's threads do not survive a fork, so everything is opened in the
 * process that serves. Returns an enum fusemnt_exit for the process that
 * served (the parent's exit happens inside).
 *
 * SIGTERM, SIGINT, SIGHUP, umount and fusermount3 -u end the session; the
 * volume is then unmounted (everything flushed, journal clean) and the
 * device closed.
 */
int fusemnt_run(const struct fusemnt_args *a);

#endif
