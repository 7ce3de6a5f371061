/*
 * fs_testcheck: the checker must find a volume clean (fs_testcheck.h).
 * The tests call it once every host has unmounted, so there is no
 * heartbeat worth watching: live_wait_max_ms 1 instead of 30 s.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fs_testcheck.h"

void fs_testcheck_clean(struct lunfs_dev *dev, const char *ctx, struct check_result *res)
{
	struct check_opts o = { .repair = false, .live_wait_max_ms = 1 };
	struct check_result r;
	const char *why = NULL;
	uint64_t problems = 0;
	int err;

	memset(&r, 0, sizeof(r));
	err = check_run(dev, &o, &r, &why);
	ck_assert_msg(err == 0, "%s: check_run %d (%s)", ctx, err, why != NULL ? why : "?");
	for (int pb = 0; pb < CHECK_PB_COUNT; pb++) {
		problems += r.found[pb];
		if (r.found[pb] != 0) {
			fprintf(stderr, "%s: %" PRIu64 " x %s\n", ctx, r.found[pb], check_pb_name(pb));
		}
	}
	ck_assert_msg(problems == 0, "%s: %" PRIu64 " problems", ctx, problems);
	if (res != NULL) {
		*res = r;
	}
}
