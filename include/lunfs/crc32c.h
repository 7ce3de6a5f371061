/* CRC-32C (Castagnoli), as used by iSCSI and ext4: reflected polynomial
 * 0x82F63B78, initial value ~0, final xor ~0. crc32c("123456789") = 0xE3069283. */
#ifndef LUNFS_CRC32C_H
#define LUNFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a running CRC: crc32c(crc32c(0, a, n), b, m) == crc32c(0, ab, n+m). */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
