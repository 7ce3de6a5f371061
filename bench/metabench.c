/*
 * metabench: metadata operations per second in a large directory.
 *
 * Usage: metabench DIR [NFILES [SECONDS]]
 *   1. populate: make DIR hold NFILES (default 100000) empty files
 *      f0000000... (only the missing ones are created, so a second run on
 *      the same DIR skips this); timed, reported as "populate".
 *   2. Then, each phase for at most SECONDS (default 3) or 20000 ops,
 *      whichever comes first, in the directory of NFILES entries:
 *        create  open(O_CREAT|O_EXCL|O_WRONLY) + close of new names n*
 *        stat    stat of existing names f*, in a pseudo-random order
 *                (fixed seed), so the kernel's 1 s dentry cache rarely
 *                answers for the filesystem
 *        rename  each n* to r* (same directory)
 *        unlink  each r*
 *      The later phases work on the files the create phase made, so they
 *      run as many ops as it did.
 * Output: "name ops_per_second ops" lines, for bench/run to parse.
 * One thread, one op at a time: this is latency-bound on purpose, what a
 * management tool or a hypervisor's create-VM path sees.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MB_MAX_OPS 20000u

static double mb_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void mb_name(char *buf, size_t len, const char *dir, char prefix, unsigned i)
{
	snprintf(buf, len, "%s/%c%07u", dir, prefix, i);
}

static void mb_report(const char *what, unsigned ops, double secs)
{
	printf("%s %.1f %u\n", what, secs > 0 ? ops / secs : 0.0, ops);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	char path[4096], path2[4096];
	unsigned nfiles = 100000, made = 0, ops, i;
	double secs = 3.0, t0, t;
	struct stat st;
	uint64_t rnd = 88172645463325252ull;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: %s DIR [NFILES [SECONDS]]\n", argv[0]);
		return 2;
	}
	if (argc >= 3) {
		nfiles = (unsigned)strtoul(argv[2], NULL, 10);
	}
	if (argc >= 4) {
		secs = strtod(argv[3], NULL);
	}
	if (nfiles == 0) {
		fprintf(stderr, "metabench: NFILES must be > 0\n");
		return 2;
	}

	t0 = mb_now();
	for (i = 0; i < nfiles; i++) {
		int fd;

		mb_name(path, sizeof(path), argv[1], 'f', i);
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (fd >= 0) {
			close(fd);
			made++;
		} else if (errno != EEXIST) {
			perror(path);
			return 1;
		}
	}
	mb_report("populate", made, mb_now() - t0);

	t0 = mb_now();
	for (ops = 0, t = t0; ops < MB_MAX_OPS && t - t0 < secs; ops++) {
		int fd;

		mb_name(path, sizeof(path), argv[1], 'n', ops);
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (fd < 0) {
			perror(path);
			return 1;
		}
		close(fd);
		if ((ops & 63) == 0) {
			t = mb_now();
		}
	}
	mb_report("create", ops, mb_now() - t0);

	t0 = mb_now();
	for (i = 0; i < ops; i++) {
		/* xorshift64: a fixed, cheap pseudo-random order */
		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		mb_name(path, sizeof(path), argv[1], 'f', (unsigned)(rnd % nfiles));
		if (stat(path, &st) < 0) {
			perror(path);
			return 1;
		}
	}
	mb_report("stat", ops, mb_now() - t0);

	t0 = mb_now();
	for (i = 0; i < ops; i++) {
		mb_name(path, sizeof(path), argv[1], 'n', i);
		mb_name(path2, sizeof(path2), argv[1], 'r', i);
		if (rename(path, path2) < 0) {
			perror(path);
			return 1;
		}
	}
	mb_report("rename", ops, mb_now() - t0);

	t0 = mb_now();
	for (i = 0; i < ops; i++) {
		mb_name(path, sizeof(path), argv[1], 'r', i);
		if (unlink(path) < 0) {
			perror(path);
			return 1;
		}
	}
	mb_report("unlink", ops, mb_now() - t0);
	return 0;
}
