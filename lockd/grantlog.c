/*
 * The lock grant log: a TEST FACILITY that lets a checker prove, from the
 * outside, that no two hosts of a farm ever held one lock in conflicting
 * modes (tests/integration/cluster/cluster.py `grants`, run by the
 * torture). Off unless lockd_opts.lock_log names a file (the FUSE daemon
 * takes it from $LUNFS_LOCK_LOG).
 *
 * Records, one line each, all processes of a farm appending to one file:
 *   grant    LOCK MODE SLOT GEN TS              we hold LOCK in MODE from TS
 *   release  LOCK MODE SLOT GEN TS              we hold it no more from TS
 *   takeover LOCK MODE SLOT GEN TS OSLOT OGEN   (SLOT, GEN) displaced the
 *            claim of (OSLOT, OGEN) held in MODE (OGEN 0: a holder bit,
 *            which carries no generation)
 *   recover  SLOT GEN TS BYSLOT BYGEN           every hold of (SLOT, GEN) is over
 *   join     SLOT GEN TS                        every hold of (SLOT, < GEN) is over
 *   leave    SLOT GEN TS                        every hold of (SLOT, GEN) is over
 * LOCK is KIND:ID (inode:42, cluster:7, system:0); MODE is X, S or M.
 *
 * The checker's argument rests on WHEN each line's timestamp is taken:
 *   - grant: after the compare-and-write that gave us the lock returned
 *     success, so the logged start is not before the real one;
 *   - release, recover, join, leave: before the write that ends the hold
 *     (the releasing CAW, the slot going FREE, the slot moving to a new
 *     generation) is submitted, and the line is written before it too;
 * so every logged hold lies inside the real one, and two logged holds
 * that overlap are a real double grant, never an artefact of logging.
 * takeover lines are assertions, not ends: lockd takes a record over only
 * when its holder's incarnation is over, which an earlier line must
 * already say (the checker reports a takeover of a hold still open).
 *
 * Timestamps are CLOCK_MONOTONIC: one clock for every process of ONE
 * machine, so the daemons of a test farm can be ordered against each
 * other. That is exactly what the protocol itself must never do (hosts of
 * a real farm share no clock, and no liveness decision ever compares
 * timestamps of different hosts): nothing in lockd reads the log or its
 * timestamps back; it is an observer's instrument for one-machine farms.
 *
 * Each record is ONE write(2) of the whole line on an O_APPEND descriptor,
 * so lines of different processes never interleave. A kill -9 in the
 * middle of a write can in theory leave a torn line (the kernel checks for
 * a fatal signal between pages); the next record then continues it on the
 * same line, and the checker keeps only the last record of such a line
 * (the one the newline belongs to). A failed write is reported on stderr
 * and never retried (a retry could land after other processes' lines).
 *
 * The descriptor is set at join and closed with the membership
 * (lockd/hb.c); it is read-only in between, so any thread may log.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lockd_int.h"
#include "lunfs/lock.h"

/* Longest record: "takeover cluster:" + 5 numbers of 20 digits + spaces. */
#define GRANTLOG_LINE_MAX 200

int lockd_grantlog_open(struct lunfs_lockd *ld, const char *path)
{
	int fd;

	ld->grantlog_fd = -1;
	if (path == NULL || path[0] == '\0') {
		return 0;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		int err = -errno;

		fprintf(stderr, "lunfs: cannot open the lock grant log %s: %s\n", path, strerror(-err));
		return err;
	}
	ld->grantlog_fd = fd;
	return 0;
}

void lockd_grantlog_close(struct lunfs_lockd *ld)
{
	if (ld->grantlog_fd >= 0) {
		close(ld->grantlog_fd);
		ld->grantlog_fd = -1;
	}
}

bool lockd_grantlog_on(const struct lunfs_lockd *ld)
{
	return ld->grantlog_fd >= 0;
}

uint64_t lockd_grantlog_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void grantlog_put(struct lunfs_lockd *ld, const char *line, int n)
{
	ssize_t w;

	if (n <= 0 || n >= GRANTLOG_LINE_MAX) {
		return;
	}
	w = write(ld->grantlog_fd, line, (size_t)n);
	if (w != n) {
		fprintf(stderr, "lunfs: lock grant log: write failed (%s): the log is incomplete\n",
			w < 0 ? strerror(errno) : "short write");
	}
}

static const char *grantlog_kind(uint8_t kind)
{
	switch (kind) {
	case LUNFS_LOCK_KIND_SYSTEM:
		return "system";
	case LUNFS_LOCK_KIND_CLUSTER:
		return "cluster";
	case LUNFS_LOCK_KIND_INODE:
		return "inode";
	default:
		return "unknown";
	}
}

static char grantlog_mode(uint8_t mode)
{
	switch (mode) {
	case LUNFS_LOCK_EXCLUSIVE:
		return 'X';
	case LUNFS_LOCK_SHARED:
		return 'S';
	case LUNFS_LOCK_MULTIWRITER:
		return 'M';
	default:
		return '?';
	}
}

void lockd_grantlog_lock(struct lunfs_lockd *ld, const char *what, uint8_t kind, uint64_t id,
			 uint8_t mode, uint64_t ts)
{
	char line[GRANTLOG_LINE_MAX];
	int n;

	if (!lockd_grantlog_on(ld)) {
		return;
	}
	n = snprintf(line, sizeof(line), "%s %s:%llu %c %u %llu %llu\n", what, grantlog_kind(kind),
		     (unsigned long long)id, grantlog_mode(mode), ld->slot, (unsigned long long)ld->gen,
		     (unsigned long long)ts);
	grantlog_put(ld, line, n);
}

void lockd_grantlog_takeover(struct lunfs_lockd *ld, uint8_t kind, uint64_t id, uint8_t old_mode,
			     uint32_t old_slot, uint64_t old_gen, uint64_t ts)
{
	char line[GRANTLOG_LINE_MAX];
	int n;

	if (!lockd_grantlog_on(ld)) {
		return;
	}
	n = snprintf(line, sizeof(line), "takeover %s:%llu %c %u %llu %llu %u %llu\n", grantlog_kind(kind),
		     (unsigned long long)id, grantlog_mode(old_mode), ld->slot, (unsigned long long)ld->gen,
		     (unsigned long long)ts, old_slot, (unsigned long long)old_gen);
	grantlog_put(ld, line, n);
}

void lockd_grantlog_slot(struct lunfs_lockd *ld, const char *what, uint32_t slot, uint64_t gen,
			 uint64_t ts)
{
	char line[GRANTLOG_LINE_MAX];
	int n;

	if (!lockd_grantlog_on(ld)) {
		return;
	}
	if (strcmp(what, "recover") == 0) {
		/* Who recovered it: for reading the log, not for the check. */
		n = snprintf(line, sizeof(line), "recover %u %llu %llu %u %llu\n", slot,
			     (unsigned long long)gen, (unsigned long long)ts, ld->slot,
			     (unsigned long long)ld->gen);
	} else {
		n = snprintf(line, sizeof(line), "%s %u %llu %llu\n", what, slot, (unsigned long long)gen,
			     (unsigned long long)ts);
	}
	grantlog_put(ld, line, n);
}
