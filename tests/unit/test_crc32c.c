/*
 * crc32c: the standard check value, incremental == one-shot, and the
 * hardware path agrees with the table path on many lengths and alignments.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lunfs/crc32c.h"

/* Exported by format/crc32c.c for this test only. */
uint32_t crc32c_software(uint32_t crc, const void *buf, size_t len);

/* A fixed xorshift generator: reproducible "random" buffers. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

START_TEST(test_check_value)
{
	ck_assert_uint_eq(crc32c(0, "123456789", 9), 0xE3069283u);
	ck_assert_uint_eq(crc32c_software(0, "123456789", 9), 0xE3069283u);
	ck_assert_uint_eq(crc32c(0, "", 0), 0);
	/* RFC 3720 B.4: 32 bytes of zeros. */
	{
		uint8_t z[32] = { 0 };
		uint8_t f[32];

		memset(f, 0xff, sizeof(f));
		ck_assert_uint_eq(crc32c(0, z, sizeof(z)), 0x8A9136AAu);
		ck_assert_uint_eq(crc32c(0, f, sizeof(f)), 0x62A8AB43u);
	}
}
END_TEST

START_TEST(test_incremental)
{
	uint8_t buf[1000];
	uint64_t s = 0x1234567;

	for (size_t i = 0; i < sizeof(buf); i++) {
		buf[i] = (uint8_t)rng_next(&s);
	}
	for (size_t split = 0; split <= sizeof(buf); split += 37) {
		uint32_t one = crc32c(0, buf, sizeof(buf));
		uint32_t two = crc32c(crc32c(0, buf, split), buf + split, sizeof(buf) - split);

		ck_assert_uint_eq(one, two);
		two = crc32c_software(crc32c_software(0, buf, split), buf + split, sizeof(buf) - split);
		ck_assert_uint_eq(one, two);
	}
}
END_TEST

START_TEST(test_hw_vs_sw)
{
	enum { MAX = 4200 };
	uint8_t *buf = malloc(MAX + 16);
	uint64_t s = 0xfeedface;

	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < MAX + 16; i++) {
		buf[i] = (uint8_t)rng_next(&s);
	}
	for (size_t align = 0; align < 16; align++) {
		for (size_t len = 0; len <= MAX; len += (len < 80 ? 1 : 61)) {
			uint32_t seed = (uint32_t)rng_next(&s);

			ck_assert_uint_eq(crc32c(seed, buf + align, len),
					  crc32c_software(seed, buf + align, len));
		}
	}
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("crc32c");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_check_value);
	tcase_add_test(tc, test_incremental);
	tcase_add_test(tc, test_hw_vs_sw);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
