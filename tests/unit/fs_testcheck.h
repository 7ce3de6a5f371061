/*
 * The offline checker as a unit test's verdict: check_run (fs/check.c,
 * read-only, no repair) on a volume must find no problem at all. Linked
 * into every unit test binary; unlike fs_testvol it asserts (Check), so
 * only tests and their fixtures call it.
 */
#ifndef LUNFS_TESTS_FS_TESTCHECK_H
#define LUNFS_TESTS_FS_TESTCHECK_H

#include "lunfs/check.h"
#include "lunfs/dev.h"

/* Fails the test unless check_run on dev runs to the end and finds
 * nothing; each kind of problem found is listed on stderr as "CTX: N x
 * NAME" first. res (may be NULL) gets the result, for a caller that also
 * wants, say, no journal left to replay. */
void fs_testcheck_clean(struct lunfs_dev *dev, const char *ctx, struct check_result *res);

#endif
