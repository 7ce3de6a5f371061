/*
 * CRC-32C with the SSE4.2 crc32 instruction where the CPU has it, and a
 * slicing-by-8 table otherwise. The choice is made once, at first use, from
 * cpuid; both paths produce identical results (tests/unit/test_crc32c.c).
 */
#include "lunfs/crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u

/* Immutable after the pthread_once below: read-only shared state. */
static uint32_t crc_table[8][256];
static int crc_have_sse42;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
#include <cpuid.h>
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t c = crc;

	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len > 0) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p);
		p++;
		len--;
	}
	return (uint32_t)c;
}
#endif

static void crc32c_init(void)
{
	for (unsigned i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++) {
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		}
		crc_table[0][i] = c;
	}
	for (unsigned i = 0; i < 256; i++) {
		for (unsigned t = 1; t < 8; t++) {
			uint32_t prev = crc_table[t - 1][i];

			crc_table[t][i] = (prev >> 8) ^ crc_table[0][prev & 0xff];
		}
	}
#if defined(__x86_64__)
	unsigned a, b, c, d;

	if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2)) {
		crc_have_sse42 = 1;
	}
#endif
}

static uint32_t crc32c_sw(uint32_t crc, const unsigned char *p, size_t len)
{
	while (len >= 8) {
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
				     (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		      crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		      crc_table[3][p[4]] ^ crc_table[2][p[5]] ^
		      crc_table[1][p[6]] ^ crc_table[0][p[7]];
		p += 8;
		len -= 8;
	}
	while (len > 0) {
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p) & 0xff];
		p++;
		len--;
	}
	return crc;
}

/* Exposed for the unit test that checks both paths agree. */
uint32_t crc32c_software(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_software(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc32c_init);
	return ~crc32c_sw(~crc, buf, len);
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc32c_init);
#if defined(__x86_64__)
	if (crc_have_sse42) {
		return ~crc32c_hw(~crc, buf, len);
	}
#endif
	return ~crc32c_sw(~crc, buf, len);
}
