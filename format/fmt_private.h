/*
 * Helpers shared by the codecs in format/ only. Not part of the library API:
 * nothing outside format/ includes this file.
 */
#ifndef LUNFS_FORMAT_PRIVATE_H
#define LUNFS_FORMAT_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lunfs/format.h"

static inline bool fmt_is_pow2(uint64_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/* Round up to a multiple of the power of two `a`; false on overflow. */
static inline bool fmt_round_up(uint64_t x, uint64_t a, uint64_t *out)
{
	uint64_t t;

	if (__builtin_add_overflow(x, a - 1, &t)) {
		return false;
	}
	*out = t & ~(a - 1);
	return true;
}

static inline uint64_t fmt_div_round_up(uint64_t x, uint64_t d)
{
	return x / d + (x % d != 0);
}

/*
 * A fixed-size char field that is NUL-padded on disk: the string is the
 * bytes before the first NUL (all `len` bytes if there is none), and
 * everything after the first NUL must be NUL too. Returns false when the
 * padding holds garbage, so a decoder can call it corruption.
 */
bool fmt_padded_str_get(const char *field, size_t len, char *out);
/* Copy at most `len` bytes of the NUL-terminated `s` and NUL-pad. */
void fmt_padded_str_put(char *field, size_t len, const char *s);

/* The cluster geometry computed from the raw fields, shared by
 * cluster_geometry() and layout_ino_addr(); 0 or -EINVAL. */
int fmt_cluster_geometry(uint64_t cluster_size, uint32_t unit_size, uint8_t type,
			 struct lunfs_cluster_hdr *out);

#endif
