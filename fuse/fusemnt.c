/*
 * The mount daemon: from a device and a mount point to a served FUSE mount,
 * and back to a clean volume at the end (fuse/fusemnt.h has the contract).
 *
 * Order of work, and why:
 *   1. Parse options and check the mount point: usage errors cost nothing.
 *   2. Fork (unless foreground). The parent only waits on a pipe for one
 *      status byte and exits with it. Everything else happens in the child,
 *      because io_uring rings and threads do not survive fork(): this is
 *      why libfuse's fuse_daemonize(), which forks after the setup, does
 *      not fit. Until it reports success, the child still writes to the
 *      caller's stderr, so a failure is explained where it was asked for.
 *   3. Create the FUSE session (this validates the FUSE options) before
 *      touching the volume, which may replay a journal.
 *   4. Open the device (O_DIRECT, local compare-and-write), read the
 *      superblock for the I/O deadline, vol_mount.
 *   5. SIGTERM/SIGINT/SIGHUP stay blocked from before vol_mount until
 *      libfuse's handlers are installed: the core's threads inherit the
 *      blocked mask, so a signal always lands in the main thread, the one
 *      that waits in the session loop and can stop it; and a signal during
 *      setup cannot kill the process with a dirty journal.
 *   6. Mount FUSE, report success, detach stdio, log to syslog.
 *   7. Serve with the multi-threaded loop (one /dev/fuse clone per
 *      worker). When it ends (signal, umount, fusermount3 -u): stop the
 *      fence watcher, unmount FUSE if still mounted, destroy the session,
 *      vol_unmount (which also releases handles the kernel never released;
 *      journal clean), close the device.
 *
 * Fence and rejoin (docs/DESIGN.md 5.5): a watcher thread polls
 * vol_fenced (a mutex, no I/O) every FUSEMNT_WATCH_MS. A fenced mount lost
 * its heartbeat slot to a recoverer (we were frozen past the dead
 * timeout) and must never write again: the watcher swaps it out of the
 * session (fuseops_vol_swap waits for the requests using it; new ones
 * answer EIO), abandons it without a single write (vol_abandon: no
 * journal commit, no lock or slot release; the recoverer replays our
 * journal), tells the kernel to drop the pages of the files that were open
 * (they may hold data that never became durable, or that another host has
 * rewritten since), and mounts the volume again with the same identity:
 * a new generation, which sees everything the other hosts did. Handles of
 * the old mount answer EIO for good. Until the new mount is up (a Paxos
 * join takes about 2.3 s), every request answers EIO at once; a failed
 * mount is retried every second until it works or the daemon stops.
 */
#include "fusemnt.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fuseops.h"
#include "lunfs/dev.h"
#include "lunfs/fs.h"
#include "lunfs/probe.h"

/* Worker threads of the session loop: enough for the kernel's concurrent
 * async direct I/O (max_background in fuseops), bounded because each one
 * owns a 1 MiB receive buffer. Idle threads are kept up to the maximum:
 * with fewer, libfuse creates and destroys a thread (and its io_uring
 * context) for nearly every burst of I/O; bench/profile.sh measured 4 KiB
 * random reads at 19k IOPS with 8 idle threads and 26-30k with 32. */
#define FUSEMNT_MAX_THREADS 32
#define FUSEMNT_IDLE_THREADS FUSEMNT_MAX_THREADS
/* How often the watcher asks whether we were fenced: a fraction of the
 * smallest heartbeat interval (100 ms), so a rejoin starts well before a
 * thawed VM's next I/O could matter, for the price of a mutex per tick. */
#define FUSEMNT_WATCH_MS 50
/* Between two attempts to mount again after a fence. */
#define FUSEMNT_REJOIN_RETRY_MS 1000

/* ---- options ------------------------------------------------------------- */

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Options that belong to mount(8)/fstab or that we always set ourselves. */
static bool opt_is_ignored(const char *o)
{
	static const char *const exact[] = {
		"defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group",
		"_netdev", "nofail", "allow_other", "default_permissions", "rw",
	};

	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
		if (strcmp(o, exact[i]) == 0) {
			return true;
		}
	}
	return starts_with(o, "x-") || starts_with(o, "comment=") || starts_with(o, "fsname=") ||
	       starts_with(o, "subtype=");
}

/* "64M", "1G", "4096", "16MiB": powers of 1024. */
static int parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGTPE";
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!isdigit((unsigned char)s[0])) {
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0) {
		return -ERANGE;
	}
	if (*end != '\0') {
		const char *u = strchr(units, toupper((unsigned char)*end));

		if (u == NULL) {
			return -EINVAL;
		}
		shift = 10u * (unsigned)(u - units + 1);
		end++;
		if (strcmp(end, "iB") != 0 && strcmp(end, "B") != 0 && *end != '\0') {
			return -EINVAL;
		}
	}
	if (shift > 0 && v > (UINT64_MAX >> shift)) {
		return -ERANGE;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)s[0])) {
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || v > UINT32_MAX) {
		return -ERANGE;
	}
	if (*end != '\0') {
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

/* Append ",opt" (or "opt") to a malloc'd list. */
static int list_append(char **list, const char *opt)
{
	size_t have = *list != NULL ? strlen(*list) : 0;
	size_t add = strlen(opt);
	char *n = realloc(*list, have + add + 2);

	if (n == NULL) {
		return -ENOMEM;
	}
	if (have > 0) {
		n[have++] = ',';
	}
	memcpy(n + have, opt, add + 1);
	*list = n;
	return 0;
}

static int opt_error(char *err, size_t errlen, const char *fmt, const char *what)
{
	snprintf(err, errlen, fmt, what);
	return -EINVAL;
}

static int opt_one(const char *o, struct fusemnt_opts *out, char *err, size_t errlen)
{
	if (o[0] == '\0' || opt_is_ignored(o)) {
		return 0;
	}
	if (starts_with(o, "host=")) {
		const char *name = o + 5;
		size_t n = strlen(name);

		if (n == 0 || n > FUSEMNT_HOST_NAME_MAX) {
			return opt_error(err, errlen, "host= needs a name of 1 to 64 bytes: '%s'", o);
		}
		for (size_t i = 0; i < n; i++) {
			if (iscntrl((unsigned char)name[i])) {
				return opt_error(err, errlen, "host= has a control character: '%s'", o);
			}
		}
		memcpy(out->host_name, name, n + 1);
		return 0;
	}
	if (strcmp(o, "ro") == 0) {
		out->read_only = true;
		return 0;
	}
	if (strcmp(o, "discard") == 0 || strcmp(o, "nodiscard") == 0) {
		out->discard = o[0] == 'd';
		return 0;
	}
	if (starts_with(o, "commit=")) {
		if (parse_u32(o + 7, &out->commit_ms) < 0 || out->commit_ms == 0) {
			return opt_error(err, errlen,
					 "commit= takes a period in milliseconds (> 0): '%s'", o);
		}
		return 0;
	}
	if (starts_with(o, "cache=")) {
		if (parse_size(o + 6, &out->cache_bytes) < 0 || out->cache_bytes == 0) {
			return opt_error(err, errlen, "cache= takes a size such as 64M: '%s'", o);
		}
		return 0;
	}
	if (starts_with(o, "max_read=")) {
		/* FUSE needs it twice (option and init), so we keep it. */
		if (parse_u32(o + 9, &out->max_read) < 0 || out->max_read == 0) {
			return opt_error(err, errlen, "max_read= takes a byte count: '%s'", o);
		}
	}
	return list_append(&out->fuse_opts, o);
}

int fusemnt_opts_parse(const char *s, struct fusemnt_opts *o, char *err, size_t errlen)
{
	char *copy = NULL;
	char *save = NULL;
	int ret = 0;

	memset(o, 0, sizeof(*o));
	if (errlen > 0) {
		err[0] = '\0';
	}
	o->fuse_opts = strdup("");
	if (o->fuse_opts == NULL) {
		return -ENOMEM;
	}
	if (s == NULL) {
		return 0;
	}
	copy = strdup(s);
	if (copy == NULL) {
		return -ENOMEM;
	}
	/* A later "rw" after "ro" wins, as in mount(8); "rw" itself is in the
	 * ignored list, so undo ro here. */
	for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "rw") == 0) {
			o->read_only = false;
			continue;
		}
		ret = opt_one(tok, o, err, errlen);
		if (ret < 0) {
			break;
		}
	}
	free(copy);
	return ret;
}

void fusemnt_opts_free(struct fusemnt_opts *o)
{
	free(o->fuse_opts);
	o->fuse_opts = NULL;
}

/* ---- the daemon -------------------------------------------------------- */

struct fusemnt {
	const struct fusemnt_args *a;
	struct fusemnt_opts o;
	/* Absolute paths: the daemon changes to "/", and unmounting at the
	 * end needs the mount point's path. */
	char *device;
	char *mountpoint;
	bool foreground;             /* -f or -d: no fork, stderr stays */
	bool daemonized;             /* logging goes to syslog */
	int status_fd;               /* write end of the pipe to the parent; -1 */
	char host_name[FUSEMNT_HOST_NAME_MAX + 1];
	struct lunfs_mount_opts mo;
	struct lunfs_dev *dev;
	/* The mounted volume; NULL between an abandon and the next mount.
	 * Written by the watcher only, while it runs (and by setup and
	 * teardown around it). */
	struct lunfs_vol *vol;
	struct fuseops_ctx ctx;
	bool ctx_ready;              /* ctx initialised (fuseops_ctx_fini due) */
	bool ctx_was_ready;          /* teardown: it was (a volume was mounted) */
	struct fuse_args fargs;
	struct fuse_session *se;
	bool handlers_set;
	bool fuse_mounted;
	/* The fence watcher; watch_stop under watch_mu. */
	pthread_t watch_thread;
	bool watch_running;
	pthread_mutex_t watch_mu;
	pthread_cond_t watch_cv;
	bool watch_stop;
	unsigned rejoins;            /* how many times we rejoined */
};

static void fm_log(const struct fusemnt *m, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fm_log(const struct fusemnt *m, int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (m->daemonized) {
		vsyslog(prio, fmt, ap);
	} else {
		fprintf(stderr, "%s: ", m->a->prog);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}

/* The core's messages for the administrator (a write-open refused and who
 * holds the file, a dead host recovered): the daemon's log. */
static void fm_core_log(void *arg, const char *msg)
{
	fm_log(arg, LOG_NOTICE, "%s", msg);
}

static void fm_fuse_syslog(enum fuse_log_level level, const char *fmt, va_list ap)
{
	/* libfuse's levels are syslog's. */
	vsyslog((int)level, fmt, ap);
}

/* The parent side of the fork: wait for the child's verdict. */
static int fm_parent_wait(int fd, pid_t child)
{
	unsigned char status = FUSEMNT_FAIL;
	ssize_t n;

	do {
		n = read(fd, &status, 1);
	} while (n < 0 && errno == EINTR);
	close(fd);
	if (n != 1) {
		/* The child died before it could report: reap it to tell how. */
		int ws = 0;

		if (waitpid(child, &ws, 0) == child && WIFSIGNALED(ws)) {
			fprintf(stderr, "lunfs: mount daemon killed by signal %d\n", WTERMSIG(ws));
		}
		return FUSEMNT_FAIL;
	}
	return status;
}

static void fm_report(struct fusemnt *m, int status)
{
	unsigned char b = (unsigned char)status;

	if (m->status_fd < 0) {
		return;
	}
	if (write(m->status_fd, &b, 1) != 1) {
		/* The parent is gone; nobody is left to tell. */
	}
	close(m->status_fd);
	m->status_fd = -1;
}

/* Serve in the background from now on: stdio to /dev/null, logs to syslog. */
static void fm_detach(struct fusemnt *m)
{
	int fd = open("/dev/null", O_RDWR);

	openlog("lunfs", LOG_PID, LOG_DAEMON);
	fuse_set_log_func(fm_fuse_syslog);
	m->daemonized = true;
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO) {
			close(fd);
		}
	}
	if (chdir("/") != 0) {
		/* Harmless: only keeps a directory busy. */
	}
}

/* /etc/machine-id: 32 hex digits, stable for the life of the installation. */
static int fm_machine_id(uint8_t uuid[LUNFS_UUID_SIZE])
{
	char buf[64];
	FILE *f = fopen("/etc/machine-id", "r");
	int ret = -ENOENT;

	if (f == NULL) {
		return -errno;
	}
	if (fgets(buf, sizeof(buf), f) == NULL) {
		goto out;
	}
	ret = -EINVAL;
	for (unsigned i = 0; i < LUNFS_UUID_SIZE; i++) {
		unsigned v;

		if (!isxdigit((unsigned char)buf[2 * i]) || !isxdigit((unsigned char)buf[2 * i + 1]) ||
		    sscanf(buf + 2 * i, "%2x", &v) != 1) {
			goto out;
		}
		uuid[i] = (uint8_t)v;
	}
	ret = 0;
out:
	fclose(f);
	return ret;
}

/* Who we are in the heartbeat region. */
static void fm_identity(struct fusemnt *m)
{
	m->mo.log = fm_core_log;
	m->mo.log_arg = m;
	if (m->o.host_name[0] != '\0') {
		/* Named explicitly (several hosts on one machine): the core
		 * derives the identity from the name. */
		memcpy(m->host_name, m->o.host_name, sizeof(m->host_name));
		return;
	}
	if (gethostname(m->host_name, sizeof(m->host_name) - 1) != 0 || m->host_name[0] == '\0') {
		snprintf(m->host_name, sizeof(m->host_name), "localhost");
	}
	m->host_name[sizeof(m->host_name) - 1] = '\0';
	if (fm_machine_id(m->mo.host_uuid) < 0) {
		memset(m->mo.host_uuid, 0, sizeof(m->mo.host_uuid));
	}
}

/* "fsname=DEV" with fuse_opt's escapes for ',' and '\'. */
static int fm_fsname_opt(const char *dev, char **out)
{
	size_t n = strlen(dev);
	char *s = malloc(7 + 2 * n + 1);
	char *p;

	if (s == NULL) {
		return -ENOMEM;
	}
	p = s + sprintf(s, "fsname=");
	for (size_t i = 0; i < n; i++) {
		if (dev[i] == ',' || dev[i] == '\\') {
			*p++ = '\\';
		}
		*p++ = dev[i];
	}
	*p = '\0';
	*out = s;
	return 0;
}

static int fm_fuse_args(struct fusemnt *m)
{
	char *opts = NULL;
	char *fsname = NULL;
	char num[32];
	int ret;

	ret = fm_fsname_opt(m->device, &fsname);
	if (ret < 0) {
		goto out;
	}
	ret = list_append(&opts, "allow_other,default_permissions,subtype=lunfs");
	if (ret == 0) {
		ret = list_append(&opts, fsname);
	}
	if (ret == 0 && m->o.read_only) {
		ret = list_append(&opts, "ro");
	}
	if (ret == 0 && m->o.max_read == 0) {
		/* Direct reads come in requests of at most max_read. */
		m->o.max_read = FUSEOPS_MAX_IO;
		snprintf(num, sizeof(num), "max_read=%u", m->o.max_read);
		ret = list_append(&opts, num);
	}
	if (ret == 0 && m->o.fuse_opts[0] != '\0') {
		ret = list_append(&opts, m->o.fuse_opts);
	}
	if (ret < 0) {
		goto out;
	}
	if (fuse_opt_add_arg(&m->fargs, m->a->prog) != 0 || fuse_opt_add_arg(&m->fargs, "-o") != 0 ||
	    fuse_opt_add_arg(&m->fargs, opts) != 0 ||
	    (m->a->debug && fuse_opt_add_arg(&m->fargs, "-d") != 0)) {
		ret = -ENOMEM;
	}
out:
	free(fsname);
	free(opts);
	return ret;
}

/* vol_mount with the daemon's options; logs why it failed. */
static int fm_vol_mount(struct fusemnt *m, struct lunfs_vol **out)
{
	const char *why = NULL;
	int ret;

	m->mo.why = &why;
	ret = vol_mount(m->dev, &m->mo, out);
	m->mo.why = NULL;
	if (ret < 0) {
		*out = NULL;
		fm_log(m, LOG_ERR, "cannot mount %s: %s (%s)", m->device,
		       why != NULL ? why : "mount failed", strerror(-ret));
	}
	return ret;
}

static int fm_open_volume(struct fusemnt *m)
{
	struct lunfs_dev_file_opts dopts = {
		.caw = LUNFS_CAW_LOCAL, /* the device's own; vol_mount runs the volume's (mkfs --caw) */
		/* An image file: pread/pwrite in the request's thread (io_uring
		 * would pass each request to a worker). Block devices keep
		 * the rings and their deadline. */
		.sync_io = true,
	};
	struct lunfs_super sb;
	int ret;

	/* Even a read-only mount writes: its heartbeat slot and lock records
	 * tell the other hosts it is there (and what it reads). So the device
	 * is opened read-write; only a device that refuses that (a
	 * write-protected LUN) is opened read-only, and then the volume
	 * decides whether it can mount at all. */
	ret = dev_file_open(m->device, &dopts, &m->dev);
	if ((ret == -EROFS || ret == -EACCES || ret == -EPERM) && m->o.read_only) {
		dopts.read_only = true;
		ret = dev_file_open(m->device, &dopts, &m->dev);
	}
	if (ret < 0) {
		fm_log(m, LOG_ERR, "cannot open %s: %s", m->device, strerror(-ret));
		return ret;
	}
	/* The deadline is a property of the volume (the failure timeline
	 * depends on it); the file backend reads it per I/O, so setting it
	 * before the volume's first I/O covers the journal replay too. If the
	 * superblock does not read, vol_mount explains why. */
	if (sb_read(m->dev, &sb, NULL, NULL) == 0) {
		m->dev->io_deadline_ms = sb.io_deadline_ms;
	}
	fm_identity(m);
	m->mo.host_name = m->host_name;
	m->mo.read_only = m->o.read_only;
	m->mo.discard = m->o.discard;
	m->mo.commit_interval_ms = m->o.commit_ms;
	m->mo.cache_bytes = m->o.cache_bytes;
	m->mo.lock_log = getenv("LUNFS_LOCK_LOG");  /* test farms' grant log (lockd/grantlog.c) */
	return fm_vol_mount(m, &m->vol);
}

static int fm_serve(struct fusemnt *m)
{
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	int ret;

	if (cfg == NULL) {
		fm_log(m, LOG_ERR, "out of memory");
		return -ENOMEM;
	}
	fuse_loop_cfg_set_clone_fd(cfg, 1);
	fuse_loop_cfg_set_max_threads(cfg, FUSEMNT_MAX_THREADS);
	fuse_loop_cfg_set_idle_threads(cfg, FUSEMNT_IDLE_THREADS);
	ret = fuse_session_loop_mt(m->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	if (ret < 0) {
		fm_log(m, LOG_ERR, "session ended with an error: %s", strerror(-ret));
		return ret;
	}
	if (ret > 0) {
		fm_log(m, LOG_INFO, "%s: signal %d, unmounting", m->mountpoint, ret);
	}
	return 0;
}

/* The core hands an inode's lock to another host: the kernel forgets its
 * pages and attributes (names are not cached: entry_timeout 0). An inode
 * the kernel does not know answers -ENOENT, which is fine. */
static void fm_inval(void *arg, uint64_t ino)
{
	struct fusemnt *m = arg;
	fuse_ino_t node = ino == m->ctx.root_ino ? FUSE_ROOT_ID : (fuse_ino_t)ino;

	(void)fuse_lowlevel_notify_inval_inode(m->se, node, 0, 0);
}

/* ---- fence and rejoin (see the top) ------------------------------------- */

/* Sleep up to ms; false once the watcher is asked to stop. */
static bool fm_watch_sleep(struct fusemnt *m, unsigned ms)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
	ts.tv_sec += (time_t)(ms / 1000u) + ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&m->watch_mu);
	while (!m->watch_stop) {
		if (pthread_cond_timedwait(&m->watch_cv, &m->watch_mu, &ts) != 0) {
			break;
		}
	}
	stop = m->watch_stop;
	pthread_mutex_unlock(&m->watch_mu);
	return !stop;
}

/* Our mount was fenced: drop it without writing, tell the kernel to forget
 * what it cached of the files that were open, mount again. */
static void fm_rejoin(struct fusemnt *m)
{
	struct lunfs_vol *old, *nv = NULL;
	uint64_t *inos = NULL;
	size_t n, got = 0;

	fm_log(m, LOG_WARNING, "%s: this host was fenced (its heartbeat slot was taken over: "
	       "it was judged dead, frozen or cut off from the disk, and recovered by another host); "
	       "dropping every cache, lock and open handle, and joining again", m->device);
	old = fuseops_vol_swap(&m->ctx, NULL);
	n = fsop_open_inos(old, NULL, 0);
	if (n > 0) {
		inos = calloc(n, sizeof(*inos));
		if (inos != NULL) {
			got = fsop_open_inos(old, inos, n);
			got = got < n ? got : n;
		}
	}
	vol_set_inval(old, NULL, NULL);
	vol_abandon(old);
	m->vol = NULL;
	/* Outside the gate: an invalidation may wait for pages that a
	 * request holds, and requests must never wait for the swap. */
	for (size_t i = 0; i < got; i++) {
		fm_inval(m, inos[i]);
	}
	if (inos == NULL && n > 0) {
		/* Out of memory: the root at least, and the pages of the
		 * files are dropped at their next open (keep_cache 0). */
		fm_inval(m, m->ctx.root_ino);
	}
	free(inos);
	while (fm_vol_mount(m, &nv) < 0) {
		if (!fm_watch_sleep(m, FUSEMNT_REJOIN_RETRY_MS)) {
			return;
		}
	}
	vol_set_inval(nv, fm_inval, m);
	m->vol = nv;
	(void)fuseops_vol_swap(&m->ctx, nv);
	m->rejoins++;
	fm_log(m, LOG_NOTICE, "%s: joined again as host '%s', slot %u generation %llu (rejoin %u); "
	       "files open before the fence answer EIO until closed", m->device, m->host_name,
	       vol_slot(nv), (unsigned long long)vol_gen(nv), m->rejoins);
}

static void *fm_watch_main(void *arg)
{
	struct fusemnt *m = arg;

	while (fm_watch_sleep(m, FUSEMNT_WATCH_MS)) {
		if (m->vol != NULL && vol_fenced(m->vol)) {
			fm_rejoin(m);
		}
	}
	return NULL;
}

static int fm_watch_start(struct fusemnt *m)
{
	pthread_condattr_t ca;
	int err;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->watch_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&m->watch_mu, NULL);
	m->watch_stop = false;
	err = pthread_create(&m->watch_thread, NULL, fm_watch_main, m);
	if (err != 0) {
		pthread_cond_destroy(&m->watch_cv);
		pthread_mutex_destroy(&m->watch_mu);
		return -err;
	}
	m->watch_running = true;
	return 0;
}

static void fm_watch_stop(struct fusemnt *m)
{
	if (!m->watch_running) {
		return;
	}
	pthread_mutex_lock(&m->watch_mu);
	m->watch_stop = true;
	pthread_cond_broadcast(&m->watch_cv);
	pthread_mutex_unlock(&m->watch_mu);
	pthread_join(m->watch_thread, NULL);
	pthread_cond_destroy(&m->watch_cv);
	pthread_mutex_destroy(&m->watch_mu);
	m->watch_running = false;
}

/* Take down whatever is up, in reverse order. Returns 0 if the volume (if
 * it was mounted) unmounted cleanly. */
static int fm_teardown(struct fusemnt *m)
{
	int ret = 0;

	/* First: it swaps volumes under the session. */
	fm_watch_stop(m);
	if (m->vol != NULL) {
		/* Before the session goes: the hook uses it. */
		vol_set_inval(m->vol, NULL, NULL);
	}
	if (m->se != NULL) {
		if (m->fuse_mounted) {
			fuse_session_unmount(m->se);
		}
		if (m->handlers_set) {
			fuse_remove_signal_handlers(m->se);
		}
		fuse_session_destroy(m->se);
		m->se = NULL;
	}
	if (m->ctx_ready) {
		fuseops_ctx_fini(&m->ctx);
		m->ctx_ready = false;
		m->ctx_was_ready = true;
	}
	if (m->vol != NULL && vol_fenced(m->vol)) {
		/* Fenced after the watcher's last look: nothing of it may be
		 * written; the recoverer replays its journal. */
		fm_log(m, LOG_WARNING, "%s: fenced at unmount: its unsynced changes are dropped",
		       m->device);
		vol_abandon(m->vol);
		m->vol = NULL;
		ret = -EIO;
	} else if (m->vol == NULL && m->ctx_was_ready) {
		/* Abandoned after a fence, not mounted again before the end. */
		ret = -EIO;
	}
	if (m->vol != NULL) {
		ret = vol_unmount(m->vol);
		if (ret < 0) {
			fm_log(m, LOG_ERR, "unmounting %s failed: %s; the journal will be replayed "
			       "at the next mount", m->device, strerror(-ret));
		}
		m->vol = NULL;
	}
	if (m->dev != NULL) {
		dev_close(m->dev);
		m->dev = NULL;
	}
	fuse_opt_free_args(&m->fargs);
	return ret;
}

static int fm_main(struct fusemnt *m)
{
	sigset_t stop, old;
	int ret;

	ret = fm_fuse_args(m);
	if (ret < 0) {
		fm_log(m, LOG_ERR, "out of memory");
		return FUSEMNT_FAIL;
	}
	/* Validates the FUSE options before the volume is touched. The
	 * context is filled in below; libfuse reads it only once requests
	 * arrive, after fuse_session_mount. */
	m->se = fuse_session_new(&m->fargs, &fuseops_table, sizeof(fuseops_table), &m->ctx);
	if (m->se == NULL) {
		fm_log(m, LOG_ERR, "invalid mount options (see above)");
		fm_teardown(m);
		return FUSEMNT_USAGE;
	}
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	ret = fm_open_volume(m);
	if (ret == 0) {
		fuseops_ctx_init(&m->ctx, m->vol, m->o.read_only, m->o.max_read);
		m->ctx_ready = true;
		m->ctx.se = m->se;
	}
	if (ret == 0 && fuse_set_signal_handlers(m->se) != 0) {
		fm_log(m, LOG_ERR, "cannot install signal handlers");
		ret = -EINVAL;
	}
	m->handlers_set = ret == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret == 0 && fuse_session_mount(m->se, m->mountpoint) != 0) {
		fm_log(m, LOG_ERR, "cannot mount FUSE on %s (see above)", m->mountpoint);
		ret = -EIO;
	}
	m->fuse_mounted = ret == 0;
	if (ret == 0) {
		vol_set_inval(m->vol, fm_inval, m);
		ret = fm_watch_start(m);
		if (ret < 0) {
			fm_log(m, LOG_ERR, "cannot start the fence watcher: %s", strerror(-ret));
		}
	}
	if (ret < 0) {
		fm_teardown(m);
		return FUSEMNT_FAIL;
	}
	fm_report(m, FUSEMNT_OK);
	if (!m->foreground) {
		fm_detach(m);
	}
	fm_log(m, LOG_INFO, "%s mounted on %s as host '%s'%s", m->device, m->mountpoint,
	       m->host_name, m->o.read_only ? " (read-only)" : "");
	ret = fm_serve(m);
	if (fm_teardown(m) < 0 || ret < 0) {
		return FUSEMNT_FAIL;
	}
	fm_log(m, LOG_INFO, "%s unmounted cleanly", m->device);
	return FUSEMNT_OK;
}

static void fm_free(struct fusemnt *m)
{
	fusemnt_opts_free(&m->o);
	free(m->device);
	free(m->mountpoint);
	m->device = NULL;
	m->mountpoint = NULL;
}

int fusemnt_run(const struct fusemnt_args *a)
{
	struct fusemnt m;
	struct stat st;
	char err[160];
	int pipefd[2];
	int ret;
	pid_t pid;

	memset(&m, 0, sizeof(m));
	m.a = a;
	m.foreground = a->foreground || a->debug;
	m.status_fd = -1;
	m.fargs = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	ret = fusemnt_opts_parse(a->options, &m.o, err, sizeof(err));
	if (ret < 0) {
		fm_log(&m, LOG_ERR, "%s", ret == -EINVAL ? err : strerror(-ret));
		fm_free(&m);
		return ret == -EINVAL ? FUSEMNT_USAGE : FUSEMNT_FAIL;
	}
	if (stat(a->mountpoint, &st) != 0) {
		fm_log(&m, LOG_ERR, "%s: %s", a->mountpoint, strerror(errno));
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		fm_log(&m, LOG_ERR, "%s: not a directory", a->mountpoint);
		goto fail;
	}
	m.mountpoint = realpath(a->mountpoint, NULL);
	m.device = realpath(a->device, NULL);
	if (m.device == NULL) {
		fm_log(&m, LOG_ERR, "%s: %s", a->device, strerror(errno));
		goto fail;
	}
	if (m.mountpoint == NULL) {
		fm_log(&m, LOG_ERR, "%s: %s", a->mountpoint, strerror(errno));
		goto fail;
	}
	if (!m.foreground) {
		if (pipe2(pipefd, O_CLOEXEC) != 0) {
			fm_log(&m, LOG_ERR, "pipe: %s", strerror(errno));
			goto fail;
		}
		fflush(NULL);
		pid = fork();
		if (pid < 0) {
			fm_log(&m, LOG_ERR, "fork: %s", strerror(errno));
			close(pipefd[0]);
			close(pipefd[1]);
			goto fail;
		}
		if (pid > 0) {
			close(pipefd[1]);
			fm_free(&m);
			exit(fm_parent_wait(pipefd[0], pid));
		}
		close(pipefd[0]);
		m.status_fd = pipefd[1];
		/* Out of the caller's session: a terminal's ^C or hangup
		 * must not reach the daemon. */
		setsid();
	}
	ret = fm_main(&m);
	fm_report(&m, ret);
	if (m.daemonized) {
		closelog();
	}
	fm_free(&m);
	return ret;
fail:
	fm_free(&m);
	return FUSEMNT_FAIL;
}
