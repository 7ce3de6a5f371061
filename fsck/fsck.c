/*
 * fsck.lunfs: check, and with -y repair, a lunfs volume offline.
 *
 * A thin driver over check_run (fs/check.c): options, one line per
 * problem, a summary (or --json), a progress bar, and fsck(8)'s exit
 * codes, which combine as bits:
 *   0 no errors, 1 errors corrected, 2 corrected (reboot: never used),
 *   4 errors left uncorrected, 8 operational error, 16 usage error,
 *   32 cancelled.
 * Read-only unless -y (-n is the default and wins over nothing: -n and -y
 * together are a usage error). -p/-a (preen) are taken as -y, as fsck(8)
 * front ends pass them.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "../tools/cli/cli.h"
#include "lunfs/check.h"
#include "lunfs/dev.h"

#define PROG "fsck.lunfs"
#define FSCK_MSG_CAP 200u /* lines printed per problem class */

struct fsck_ctx {
	bool verbose, quiet, json;
	struct cli_progress bar;
	uint64_t printed[CHECK_PB_COUNT];
	uint64_t suppressed;
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: " PROG " [-n] [-y] [-f] [-v] [-q] [--json] DEVICE|FILE\n"
"\n"
"Check a lunfs volume offline, and with -y repair it. Read-only by default.\n"
"Repair refuses to run while any host is renewing its heartbeat (the volume is\n"
"mounted somewhere); a read-only check of a volume in use warns instead.\n"
"Dirty journals are replayed with -y; without it they are reported.\n"
"\n"
"  -n, --no          check only, write nothing (default)\n"
"  -y, --yes         repair every problem found (-p and -a mean the same)\n"
"  -f, --force       check even if the volume seems clean (it always does)\n"
"  -v, --verbose     also print notes and the statistics\n"
"  -q, --quiet       print problems only, no progress bar and no summary\n"
"      --json        print a JSON summary on stdout (problems go to stderr)\n"
"  -V, --version     print the version\n"
"  -h, --help        this text\n"
"\n"
"Exit status (bits, as fsck(8)): 0 clean, 1 errors corrected, 4 errors left\n"
"uncorrected, 8 operational error, 16 usage error, 32 cancelled.\n");
}

static void fsck_report(void *arg, int pb, bool fixed, const char *msg)
{
	struct fsck_ctx *fc = arg;
	FILE *out = fc->json ? stderr : stdout;

	if (pb < 0) {
		if (fc->verbose || strncmp(msg, "warning", 7) == 0) {
			cli_progress_finish(&fc->bar, true);
			fprintf(stderr, PROG ": %s\n", msg);
		}
		return;
	}
	(void)fixed;
	if (fc->printed[pb] >= FSCK_MSG_CAP) {
		fc->suppressed++;
		return;
	}
	fc->printed[pb]++;
	cli_progress_finish(&fc->bar, true);
	fprintf(out, "%s\n", msg);
}

static void fsck_progress(uint64_t done, uint64_t total, void *arg)
{
	struct fsck_ctx *fc = arg;

	cli_progress_update(&fc->bar, done, total);
}

static void fsck_json(const char *path, const struct check_result *r, int code, const char *why)
{
	struct json_object *o = json_object_new_object(), *pbs = json_object_new_object();

	json_object_object_add(o, "device", json_object_new_string(path));
	json_object_object_add(o, "exit_code", json_object_new_int(code));
	if (why != NULL) {
		json_object_object_add(o, "error", json_object_new_string(why));
	}
	for (unsigned i = 0; i < CHECK_PB_COUNT; i++) {
		struct json_object *p;

		if (r->found[i] == 0) {
			continue;
		}
		p = json_object_new_object();
		json_object_object_add(p, "found", json_object_new_int64((int64_t)r->found[i]));
		json_object_object_add(p, "repaired", json_object_new_int64((int64_t)r->fixed[i]));
		json_object_object_add(pbs, check_pb_name((enum check_pb)i), p);
	}
	json_object_object_add(o, "problems", pbs);
	json_object_object_add(o, "hints_refreshed", json_object_new_int64((int64_t)r->hints_fixed));
	json_object_object_add(o, "journals_replayed", json_object_new_int64(r->journals_replayed));
	json_object_object_add(o, "journals_pending", json_object_new_int64(r->journals_pending));
	json_object_object_add(o, "live_hosts", json_object_new_int64(r->live_hosts));
	json_object_object_add(o, "used_backup_superblock", json_object_new_boolean(r->used_backup_sb));
	json_object_object_add(o, "inodes", json_object_new_int64((int64_t)r->inodes));
	json_object_object_add(o, "directories", json_object_new_int64((int64_t)r->dirs));
	json_object_object_add(o, "file_blocks", json_object_new_int64((int64_t)r->file_blocks));
	json_object_object_add(o, "meta_blocks", json_object_new_int64((int64_t)r->meta_blocks));
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "no", no_argument, NULL, 'n' },     { "yes", no_argument, NULL, 'y' },
		{ "force", no_argument, NULL, 'f' },  { "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },  { "json", no_argument, NULL, 'J' },
		{ "version", no_argument, NULL, 'V' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fsck_ctx fc;
	struct check_opts co;
	struct check_result r;
	struct lunfs_dev_file_opts fo;
	struct lunfs_dev *dev = NULL;
	const char *why = NULL, *path;
	bool yes = false, no = false;
	int c, err, code;

	memset(&fc, 0, sizeof(fc));
	memset(&r, 0, sizeof(r));
	while ((c = getopt_long(argc, argv, "nyfvqpaVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			no = true;
			break;
		case 'y':
		case 'p':
		case 'a':
			yes = true;
			break;
		case 'f':
			break;
		case 'v':
			fc.verbose = true;
			break;
		case 'q':
			fc.quiet = true;
			break;
		case 'J':
			fc.json = true;
			break;
		case 'V':
			printf(PROG " " LUNFS_VERSION "\n");
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return CHECK_EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || (yes && no)) {
		fprintf(stderr, PROG ": %s\n", yes && no ? "-n and -y exclude each other" : "one DEVICE is required");
		usage(stderr);
		return CHECK_EXIT_USAGE;
	}
	path = argv[optind];
	/* A terminal's ^C should leave a clean exit code, not a signal death. */
	signal(SIGPIPE, SIG_IGN);

	memset(&fo, 0, sizeof(fo));
	fo.read_only = !yes;
	fo.exclusive = yes;
	err = dev_file_open(path, &fo, &dev);
	if (err < 0) {
		why = "cannot open the device";
		fprintf(stderr, PROG ": %s: %s: %s\n", path, why, strerror(-err));
		code = CHECK_EXIT_OPERATIONAL;
		goto out;
	}
	cli_progress_init(&fc.bar, "Checking", fc.quiet || fc.json);
	memset(&co, 0, sizeof(co));
	co.repair = yes;
	co.take_lock = yes;
	co.report = fsck_report;
	co.progress = fsck_progress;
	co.arg = &fc;
	err = check_run(dev, &co, &r, &why);
	cli_progress_finish(&fc.bar, err == 0);
	if (err < 0) {
		fprintf(stderr, PROG ": %s: %s\n", path, why != NULL ? why : strerror(-err));
		code = CHECK_EXIT_OPERATIONAL | check_exit_code(&r);
		goto out;
	}
	code = check_exit_code(&r);
	if (fc.suppressed > 0 && !fc.json) {
		printf("... and %" PRIu64 " more problems (see the counts below)\n", fc.suppressed);
	}
	if (!fc.quiet && !fc.json) {
		uint64_t found = 0, fixed = 0;

		for (unsigned i = 0; i < CHECK_PB_COUNT; i++) {
			found += r.found[i];
			fixed += r.fixed[i];
		}
		printf("%s: %" PRIu64 " inodes (%" PRIu64 " directories), %" PRIu64 " file blocks, %" PRIu64
		       " metadata blocks\n", path, r.inodes, r.dirs, r.file_blocks, r.meta_blocks);
		if (found == 0 && r.journals_pending == 0) {
			printf("%s: clean\n", path);
		} else {
			printf("%s: %" PRIu64 " problems found, %" PRIu64 " repaired%s\n", path, found, fixed,
			       code & CHECK_EXIT_UNCORRECTED ? (yes ? "; some remain" : "; run with -y to repair") : "");
		}
		if (fc.verbose) {
			for (unsigned i = 0; i < CHECK_PB_COUNT; i++) {
				if (r.found[i] != 0) {
					printf("  %-16s found %" PRIu64 ", repaired %" PRIu64 "\n",
					       check_pb_name((enum check_pb)i), r.found[i], r.fixed[i]);
				}
			}
			if (r.hints_fixed != 0) {
				printf("  cluster summaries %s: %" PRIu64 "\n", yes ? "refreshed" : "stale",
				       r.hints_fixed);
			}
		}
	}
out:
	if (fc.json) {
		fsck_json(path, &r, code, code & CHECK_EXIT_OPERATIONAL ? why : NULL);
	}
	if (dev != NULL) {
		dev_close(dev);
	}
	return code;
}
