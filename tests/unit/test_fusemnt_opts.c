/*
 * Unit tests of the mount option parser (fuse/fusemnt.c): our own options
 * (host=, ro/rw, discard, commit=, cache=), what mount(8) and fstab add
 * for themselves (ignored), what goes through to FUSE, and clear errors
 * for bad values. The mounting itself is covered by the integration tests
 * (tests/integration/test_mount_*.sh): it needs /dev/fuse.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../fuse/fusemnt.h"

START_TEST(test_defaults)
{
	struct fusemnt_opts o;
	char err[160];

	ck_assert_int_eq(fusemnt_opts_parse(NULL, &o, err, sizeof(err)), 0);
	ck_assert_str_eq(o.host_name, "");
	ck_assert(!o.read_only);
	ck_assert(!o.discard);
	ck_assert_uint_eq(o.commit_ms, 0);
	ck_assert_uint_eq(o.cache_bytes, 0);
	ck_assert_uint_eq(o.max_read, 0);
	ck_assert_str_eq(o.fuse_opts, "");
	fusemnt_opts_free(&o);
	ck_assert_int_eq(fusemnt_opts_parse("", &o, err, sizeof(err)), 0);
	ck_assert_str_eq(o.fuse_opts, "");
	fusemnt_opts_free(&o);
}
END_TEST

START_TEST(test_ours)
{
	struct fusemnt_opts o;
	char err[160];

	ck_assert_int_eq(fusemnt_opts_parse("host=esx-01,ro,discard,commit=250,cache=16M", &o, err,
					    sizeof(err)), 0);
	ck_assert_str_eq(o.host_name, "esx-01");
	ck_assert(o.read_only);
	ck_assert(o.discard);
	ck_assert_uint_eq(o.commit_ms, 250);
	ck_assert_uint_eq(o.cache_bytes, 16u << 20);
	ck_assert_str_eq(o.fuse_opts, "");
	fusemnt_opts_free(&o);

	/* the last of ro/rw and discard/nodiscard wins, as in mount(8) */
	ck_assert_int_eq(fusemnt_opts_parse("ro,rw,discard,nodiscard,cache=1GiB", &o, err, sizeof(err)), 0);
	ck_assert(!o.read_only);
	ck_assert(!o.discard);
	ck_assert_uint_eq(o.cache_bytes, 1ull << 30);
	fusemnt_opts_free(&o);
}
END_TEST

START_TEST(test_mount8_and_fuse)
{
	struct fusemnt_opts o;
	char err[160];

	/* mount(8)/fstab's own options vanish; ours are always set anyway */
	ck_assert_int_eq(fusemnt_opts_parse("defaults,noauto,nofail,_netdev,x-systemd.automount,"
					    "comment=vm,user,allow_other,default_permissions,"
					    "fsname=bogus,subtype=bogus",
					    &o, err, sizeof(err)), 0);
	ck_assert_str_eq(o.fuse_opts, "");
	fusemnt_opts_free(&o);

	/* the rest goes to FUSE in order; max_read is also remembered */
	ck_assert_int_eq(fusemnt_opts_parse("noatime,host=h,nosuid,max_read=131072", &o, err,
					    sizeof(err)), 0);
	ck_assert_str_eq(o.fuse_opts, "noatime,nosuid,max_read=131072");
	ck_assert_uint_eq(o.max_read, 131072);
	ck_assert_str_eq(o.host_name, "h");
	fusemnt_opts_free(&o);

	/* empty items (",,") are harmless */
	ck_assert_int_eq(fusemnt_opts_parse(",,noexec,,", &o, err, sizeof(err)), 0);
	ck_assert_str_eq(o.fuse_opts, "noexec");
	fusemnt_opts_free(&o);
}
END_TEST

START_TEST(test_errors)
{
	static const char *const bad[] = {
		"commit=", "commit=abc", "commit=0", "commit=99999999999", "commit=5s",
		"cache=", "cache=lots", "cache=0", "cache=16Q", "cache=99999999999999999999",
		"host=", "host=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"host=a\tb", "max_read=", "max_read=x", "max_read=0",
	};
	struct fusemnt_opts o;
	char err[160];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(fusemnt_opts_parse(bad[i], &o, err, sizeof(err)) == -EINVAL, "%s", bad[i]);
		ck_assert_msg(err[0] != '\0', "no message for %s", bad[i]);
		fusemnt_opts_free(&o);
	}
	/* exactly 64 bytes of host name is fine */
	ck_assert_int_eq(fusemnt_opts_parse(
		"host=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &o, err,
		sizeof(err)), 0);
	ck_assert_uint_eq(strlen(o.host_name), 64);
	fusemnt_opts_free(&o);
}
END_TEST

static Suite *fusemnt_suite(void)
{
	Suite *s = suite_create("fusemnt_opts");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_ours);
	tcase_add_test(tc, test_mount8_and_fuse);
	tcase_add_test(tc, test_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fusemnt_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
