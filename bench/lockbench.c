/*
 * lockbench: latency of lunfs's on-disk locks, measured at the lockd
 * interface (include/lunfs/lockd.h), without a mount.
 *
 * Usage: lockbench IMAGE local|paxos uncontended|handoff [N]
 *   IMAGE   a freshly made lunfs volume (mkfs.lunfs) that nothing mounts
 *   uncontended  one host joins, then N times (default 1000): lockd_lock of
 *           an inode lock record (exclusive), lockd_unlock. Each call is
 *           timed on CLOCK_MONOTONIC.
 *   handoff two hosts join: two lockd instances in this process, each
 *           with its own device handle (its own open file description, so
 *           the LOCAL backend's OFD locks separate them) and its own
 *           heartbeat and monitor threads, as two mounts would have. N rounds (default 10): A takes
 *           the lock; B asks with lockd_lock_wait; A's release callback
 *           (run by A's monitor when it sees B's request) unlocks; B's
 *           wait is timed; B unlocks.
 * Output: one line per figure, "name value" (microseconds), for bench/run
 * to parse, plus the volume's heartbeat interval and the join time.
 *
 * It measures and reports; it asserts nothing about the figures.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lunfs/dev.h"
#include "lunfs/format.h"
#include "lunfs/lock.h"
#include "lunfs/lockd.h"
#include "lunfs/probe.h"

struct lb_host {
	struct lunfs_dev *dev;
	struct lunfs_lockd *ld;
};

static uint64_t lb_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int lb_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Print median and p99 of n samples (sorts them). */
static void lb_report(const char *name, uint64_t *s, size_t n)
{
	qsort(s, n, sizeof(*s), lb_cmp);
	printf("%s_median_us %llu\n", name, (unsigned long long)s[n / 2]);
	printf("%s_p99_us %llu\n", name, (unsigned long long)s[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1]);
	printf("%s_max_us %llu\n", name, (unsigned long long)s[n - 1]);
}

/* The release callback: what a mount does when asked, minus the flush. */
static int lb_release(void *arg, uint64_t lock_addr, uint8_t wanted_mode)
{
	(void)wanted_mode;
	return lockd_unlock(arg, lock_addr);
}

static int lb_join(const char *image, enum lunfs_caw_backend caw, uint8_t id, const struct lunfs_super *sb,
		   const struct lunfs_codec *c, struct lb_host *h)
{
	struct lockd_opts o;
	uint64_t t0;
	int ret;

	ret = dev_file_open(image, NULL, &h->dev);
	if (ret < 0) {
		return ret;
	}
	memset(&o, 0, sizeof(o));
	o.host_name = id == 0 ? "bench-a" : "bench-b";
	memset(o.host_uuid, 0x5a, sizeof(o.host_uuid));
	o.host_uuid[0] = (uint8_t)(0xb0 + id);
	o.host_uuid[6] = 0x46; /* a version-4 UUID, as a real host has */
	o.host_uuid[8] = 0x88;
	o.caw = caw;
	t0 = lb_now_us();
	ret = lockd_join(h->dev, sb, c, &o, &h->ld);
	if (ret < 0) {
		dev_close(h->dev);
		h->dev = NULL;
		return ret;
	}
	printf("join_%c_us %llu\n", 'a' + id, (unsigned long long)(lb_now_us() - t0));
	return 0;
}

static void lb_leave(struct lb_host *h)
{
	if (h->ld != NULL) {
		lockd_leave(h->ld);
	}
	if (h->dev != NULL) {
		dev_close(h->dev);
	}
}

static int lb_uncontended(struct lb_host *a, uint64_t addr, uint64_t ino, size_t n)
{
	uint64_t *acq = calloc(n, sizeof(*acq)), *rel = calloc(n, sizeof(*rel));
	uint64_t *pair = calloc(n, sizeof(*pair));
	int ret = -ENOMEM;

	if (acq == NULL || rel == NULL || pair == NULL) {
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = lb_now_us(), t1, t2;

		ret = lockd_lock(a->ld, addr, LUNFS_LOCK_KIND_INODE, ino, LUNFS_LOCK_EXCLUSIVE, NULL);
		t1 = lb_now_us();
		if (ret == 0) {
			ret = lockd_unlock(a->ld, addr);
		}
		t2 = lb_now_us();
		if (ret < 0) {
			fprintf(stderr, "lockbench: lock/unlock: %s\n", strerror(-ret));
			goto out;
		}
		acq[i] = t1 - t0;
		rel[i] = t2 - t1;
		pair[i] = t2 - t0;
	}
	lb_report("acquire", acq, n);
	lb_report("release", rel, n);
	lb_report("acqrel", pair, n);
	ret = 0;
out:
	free(pair);
	free(rel);
	free(acq);
	return ret;
}

static int lb_handoff(struct lb_host *a, struct lb_host *b, uint64_t addr, uint64_t ino, size_t n)
{
	uint64_t *w = calloc(n, sizeof(*w));
	uint32_t holder = 0;
	int ret = -ENOMEM;

	if (w == NULL) {
		return ret;
	}
	lockd_set_release(a->ld, lb_release, a->ld);
	for (size_t i = 0; i < n; i++) {
		uint64_t t0;

		ret = lockd_lock(a->ld, addr, LUNFS_LOCK_KIND_INODE, ino, LUNFS_LOCK_EXCLUSIVE, NULL);
		if (ret < 0) {
			fprintf(stderr, "lockbench: A lock: %s\n", strerror(-ret));
			goto out;
		}
		t0 = lb_now_us();
		ret = lockd_lock_wait(b->ld, addr, LUNFS_LOCK_KIND_INODE, ino, LUNFS_LOCK_EXCLUSIVE, 30000,
				      &holder);
		w[i] = lb_now_us() - t0;
		if (ret < 0) {
			fprintf(stderr, "lockbench: B lock_wait: %s (holder %u)\n", strerror(-ret), holder);
			goto out;
		}
		ret = lockd_unlock(b->ld, addr);
		if (ret < 0) {
			fprintf(stderr, "lockbench: B unlock: %s\n", strerror(-ret));
			goto out;
		}
	}
	lb_report("handoff", w, n);
	ret = 0;
out:
	free(w);
	return ret;
}

int main(int argc, char **argv)
{
	struct lb_host a = { 0 }, b = { 0 };
	struct lunfs_dev *probe = NULL;
	struct lunfs_super sb;
	struct lunfs_codec c;
	enum lunfs_caw_backend caw;
	uint64_t addr = 0;
	size_t n;
	int ret;

	if (argc < 4 || argc > 5 || (strcmp(argv[2], "local") != 0 && strcmp(argv[2], "paxos") != 0) ||
	    (strcmp(argv[3], "uncontended") != 0 && strcmp(argv[3], "handoff") != 0)) {
		fprintf(stderr, "usage: %s IMAGE local|paxos uncontended|handoff [N]\n", argv[0]);
		return 2;
	}
	caw = strcmp(argv[2], "paxos") == 0 ? LUNFS_CAW_PAXOS : LUNFS_CAW_LOCAL;
	n = argc == 5 ? strtoul(argv[4], NULL, 10) : (argv[3][0] == 'u' ? 1000 : 10);
	if (n == 0) {
		n = 1;
	}
	ret = dev_file_open(argv[1], NULL, &probe);
	if (ret == 0) {
		ret = sb_read(probe, &sb, NULL, NULL);
		dev_close(probe);
	}
	if (ret == 0) {
		sb_codec(&sb, &c);
		ret = layout_ino_addr(&sb, sb.root_ino, &addr);
	}
	if (ret < 0) {
		fprintf(stderr, "lockbench: %s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	printf("hb_interval_us %llu\n", (unsigned long long)sb.hb_interval_ms * 1000u);
	ret = lb_join(argv[1], caw, 0, &sb, &c, &a);
	if (ret == 0 && argv[3][0] == 'h') {
		ret = lb_join(argv[1], caw, 1, &sb, &c, &b);
	}
	if (ret < 0) {
		fprintf(stderr, "lockbench: join: %s\n", strerror(-ret));
		goto out;
	}
	if (argv[3][0] == 'u') {
		ret = lb_uncontended(&a, addr, sb.root_ino, n);
	} else {
		ret = lb_handoff(&a, &b, addr, sb.root_ino, n);
	}
out:
	lb_leave(&b);
	lb_leave(&a);
	return ret < 0 ? 1 : 0;
}
