/*
 * Unit tests of the programs' shared helpers (tools/cli/progress.c): size
 * parsing with suffixes and overflow, size and UUID formatting, and a
 * progress bar that stays silent when stderr is not a terminal.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/cli/cli.h"

START_TEST(test_parse_size)
{
	uint64_t v = 12345;

	ck_assert_int_eq(cli_parse_size("0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(cli_parse_size("4096", &v), 0);
	ck_assert_uint_eq(v, 4096);
	ck_assert_int_eq(cli_parse_size("64K", &v), 0);
	ck_assert_uint_eq(v, 64u * 1024u);
	ck_assert_int_eq(cli_parse_size("1m", &v), 0);
	ck_assert_uint_eq(v, 1024u * 1024u);
	ck_assert_int_eq(cli_parse_size("16MiB", &v), 0);
	ck_assert_uint_eq(v, 16u * 1024u * 1024u);
	ck_assert_int_eq(cli_parse_size("3G", &v), 0);
	ck_assert_uint_eq(v, 3ull << 30);
	ck_assert_int_eq(cli_parse_size("64T", &v), 0);
	ck_assert_uint_eq(v, 64ull << 40);
	ck_assert_int_eq(cli_parse_size("2PB", &v), 0);
	ck_assert_uint_eq(v, 2ull << 50);
	ck_assert_int_eq(cli_parse_size("15E", &v), 0);
	ck_assert_uint_eq(v, 15ull << 60);
	ck_assert_int_eq(cli_parse_size("18446744073709551615", &v), 0);
	ck_assert_uint_eq(v, UINT64_MAX);

	v = 7;
	ck_assert_int_eq(cli_parse_size("16E", &v), -ERANGE);
	ck_assert_int_eq(cli_parse_size("16384P", &v), -ERANGE);
	ck_assert_int_eq(cli_parse_size("18446744073709551616", &v), -ERANGE);
	ck_assert_int_eq(cli_parse_size("99999999999999999999999", &v), -ERANGE);
	ck_assert_int_eq(cli_parse_size("", &v), -EINVAL);
	ck_assert_int_eq(cli_parse_size("K", &v), -EINVAL);
	ck_assert_int_eq(cli_parse_size("-1", &v), -EINVAL);
	ck_assert_int_eq(cli_parse_size(" 1", &v), -EINVAL);
	ck_assert_int_eq(cli_parse_size("1 K", &v), -EINVAL);
	ck_assert_int_eq(cli_parse_size("1X", &v), -EINVAL);
	ck_assert_int_eq(cli_parse_size("1KK", &v), -EINVAL);
	ck_assert_int_eq(cli_parse_size("1.5G", &v), -EINVAL);
	ck_assert_int_eq(cli_parse_size("1Kix", &v), -EINVAL);
	ck_assert_int_eq(cli_parse_size(NULL, &v), -EINVAL);
	ck_assert_uint_eq(v, 7); /* untouched on error */
}
END_TEST

START_TEST(test_parse_u32)
{
	uint32_t v = 9;

	ck_assert_int_eq(cli_parse_u32("0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(cli_parse_u32("4294967295", &v), 0);
	ck_assert_uint_eq(v, UINT32_MAX);
	ck_assert_int_eq(cli_parse_u32("4294967296", &v), -ERANGE);
	ck_assert_int_eq(cli_parse_u32("99999999999999999999", &v), -ERANGE);
	ck_assert_int_eq(cli_parse_u32("", &v), -EINVAL);
	ck_assert_int_eq(cli_parse_u32("12ms", &v), -EINVAL);
	ck_assert_int_eq(cli_parse_u32("-3", &v), -EINVAL);
}
END_TEST

START_TEST(test_fmt_size)
{
	char b[CLI_SIZE_STRLEN];

	ck_assert_str_eq(cli_fmt_size(0, b, sizeof(b)), "0 B");
	ck_assert_str_eq(cli_fmt_size(512, b, sizeof(b)), "512 B");
	ck_assert_str_eq(cli_fmt_size(1023, b, sizeof(b)), "1023 B");
	ck_assert_str_eq(cli_fmt_size(1024, b, sizeof(b)), "1.0 KiB");
	ck_assert_str_eq(cli_fmt_size(1536, b, sizeof(b)), "1.5 KiB");
	ck_assert_str_eq(cli_fmt_size(1024 * 1024, b, sizeof(b)), "1.0 MiB");
	ck_assert_str_eq(cli_fmt_size(64ull << 40, b, sizeof(b)), "64.0 TiB");
	ck_assert_str_eq(cli_fmt_size(1ull << 60, b, sizeof(b)), "1.0 EiB");
	ck_assert_str_eq(cli_fmt_size(UINT64_MAX, b, sizeof(b)), "15.9 EiB");
	/* Never larger than the buffer the header promises is enough. */
	ck_assert_uint_lt(strlen(cli_fmt_size(1023ull << 50, b, sizeof(b))), CLI_SIZE_STRLEN);
}
END_TEST

START_TEST(test_fmt_uuid)
{
	const uint8_t u[16] = { 0x1b, 0x4e, 0x28, 0xba, 0x2f, 0xa1, 0x11, 0xd2,
				0x88, 0x3f, 0x00, 0x16, 0xd3, 0xcc, 0xa4, 0x27 };
	char b[CLI_UUID_STRLEN];

	ck_assert_str_eq(cli_fmt_uuid(u, b, sizeof(b)), "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
}
END_TEST

/* Under Check, stderr is not a terminal: the bar must draw nothing. */
START_TEST(test_progress_silent_off_tty)
{
	struct cli_progress p;

	cli_progress_init(&p, "Testing", false);
	if (p.enabled) {
		return; /* run by hand on a terminal: nothing to check */
	}
	cli_progress_update(&p, 1, 2);
	cli_progress_update(&p, 2, 2);
	ck_assert(!p.shown);
	cli_progress_finish(&p, true);
	cli_progress_init(&p, "Testing", true);
	ck_assert(!p.enabled);
}
END_TEST

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_parse_size);
	tcase_add_test(tc, test_parse_u32);
	tcase_add_test(tc, test_fmt_size);
	tcase_add_test(tc, test_fmt_uuid);
	tcase_add_test(tc, test_progress_silent_off_tty);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cli_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
