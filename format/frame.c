/*
 * The two frames every record and metadata block is wrapped in
 * (include/lunfs/record.h), and the order in which they are checked.
 *
 * Verification order, shared by every decoder so that callers can rely on
 * the error codes:
 *   1. all zeros                      -> -ENODATA (never written)
 *   2. crc32c                         -> -EUCLEAN
 *   3. volume UUID == ours            -> -ESTALE  (left over from an older mkfs)
 *   4. magic, version                 -> -EUCLEAN
 *   5. own address == where we read   -> -EUCLEAN (misdirected write)
 *   6. HMAC, when the volume has one  -> -EUCLEAN
 * The UUID comparison comes after the checksum, so a torn or random sector
 * is never mistaken for a stale-but-valid one. It comes before the magic and
 * the address: an earlier volume with another geometry left structures of
 * every kind at every address, and all of them are simply stale, whatever
 * kind we expected to find there. It comes before the HMAC, so that a record
 * of an earlier volume (whose key we do not have) reads as stale rather than
 * forged.
 *
 * A codec without the HMAC key does not check the HMAC field at all (it may
 * hold anything). This lets read-only tools (`lunfs inspect`) show an HMAC
 * volume without its secret; writers always have the key.
 *
 * Buffers may be unaligned: every field is accessed through memcpy.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fmt_private.h"
#include "lunfs/crc32c.h"
#include "lunfs/format.h"
#include "lunfs/record.h"

#define FRAME_VERSION 1u

bool buf_is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++) {
		if (p[i] != 0) {
			return false;
		}
	}
	return true;
}

static void put_le32(void *p, uint32_t v)
{
	le32 x = le32_make(v);

	memcpy(p, &x, sizeof(x));
}

static uint32_t get_le32(const void *p)
{
	le32 x;

	memcpy(&x, p, sizeof(x));
	return le32_get(x);
}

/* HMAC-SHA256 over the record up to its tail. The key is 32 bytes. On an
 * OpenSSL failure (out of memory) the MAC is all 0xff: it cannot verify,
 * which fails safe. */
static void rec_hmac(const struct lunfs_codec *c, const unsigned char *rec, unsigned char mac[32])
{
	unsigned int len = 32;

	if (HMAC(EVP_sha256(), c->hmac_key, (int)sizeof(c->hmac_key), rec,
		 LUNFS_RECORD_TAIL_OFFSET, mac, &len) == NULL || len != 32) {
		memset(mac, 0xff, 32);
	}
}

void rec_seal(const struct lunfs_codec *c, void *rec, uint32_t magic, uint16_t flags, uint64_t addr)
{
	unsigned char *p = rec;
	struct lunfs_rechdr_disk h;
	struct lunfs_rectail_disk t;

	memset(&h, 0, sizeof(h));
	h.magic = le32_make(magic);
	h.version = le16_make(FRAME_VERSION);
	h.flags = le16_make(flags);
	h.self = le64_make(addr);
	memcpy(h.uuid, c->uuid, sizeof(h.uuid));
	memcpy(p, &h, sizeof(h));

	memset(&t, 0, sizeof(t));
	if (c->have_hmac) {
		rec_hmac(c, p, t.hmac);
	}
	memcpy(p + LUNFS_RECORD_TAIL_OFFSET, &t, sizeof(t));
	put_le32(p + offsetof(struct lunfs_rectail_disk, crc) + LUNFS_RECORD_TAIL_OFFSET,
		 crc32c(0, p, LUNFS_RECORD_SIZE - 4));
}

int rec_verify(const struct lunfs_codec *c, const void *rec, uint32_t magic, uint64_t addr)
{
	const unsigned char *p = rec;
	struct lunfs_rechdr_disk h;
	unsigned char mac[32];

	if (buf_is_zero(p, LUNFS_RECORD_SIZE)) {
		return -ENODATA;
	}
	memcpy(&h, p, sizeof(h));
	if (get_le32(p + LUNFS_RECORD_SIZE - 4) != crc32c(0, p, LUNFS_RECORD_SIZE - 4)) {
		return -EUCLEAN;
	}
	if (memcmp(h.uuid, c->uuid, sizeof(h.uuid)) != 0) {
		return -ESTALE;
	}
	if (le32_get(h.magic) != magic || le16_get(h.version) != FRAME_VERSION) {
		return -EUCLEAN;
	}
	if (le64_get(h.self) != addr) {
		return -EUCLEAN;
	}
	if (c->have_hmac) {
		rec_hmac(c, p, mac);
		if (CRYPTO_memcmp(mac, p + LUNFS_RECORD_TAIL_OFFSET, sizeof(mac)) != 0) {
			return -EUCLEAN;
		}
	}
	return 0;
}

void blk_seal(const struct lunfs_codec *c, void *blk, uint32_t magic, uint16_t flags,
	      uint64_t addr, uint64_t owner, uint64_t seq, uint64_t aux)
{
	unsigned char *p = blk;
	struct lunfs_blkhdr_disk h;

	memset(&h, 0, sizeof(h));
	h.magic = le32_make(magic);
	h.version = le16_make(FRAME_VERSION);
	h.flags = le16_make(flags);
	h.self = le64_make(addr);
	memcpy(h.uuid, c->uuid, sizeof(h.uuid));
	h.owner = le64_make(owner);
	h.seq = le64_make(seq);
	h.aux = le64_make(aux);
	memcpy(p, &h, sizeof(h));
	put_le32(p + LUNFS_BLOCK_CRC_OFFSET, crc32c(0, p, LUNFS_BLOCK_CRC_OFFSET));
}

int blk_verify(const struct lunfs_codec *c, const void *blk, uint32_t magic, uint64_t addr)
{
	const unsigned char *p = blk;
	struct lunfs_blkhdr_disk h;

	if (buf_is_zero(p, LUNFS_META_BLOCK_SIZE)) {
		return -ENODATA;
	}
	memcpy(&h, p, sizeof(h));
	if (get_le32(p + LUNFS_BLOCK_CRC_OFFSET) != crc32c(0, p, LUNFS_BLOCK_CRC_OFFSET)) {
		return -EUCLEAN;
	}
	if (memcmp(h.uuid, c->uuid, sizeof(h.uuid)) != 0) {
		return -ESTALE;
	}
	if (le32_get(h.magic) != magic || le16_get(h.version) != FRAME_VERSION) {
		return -EUCLEAN;
	}
	if (le64_get(h.self) != addr) {
		return -EUCLEAN;
	}
	return 0;
}

bool fmt_padded_str_get(const char *field, size_t len, char *out)
{
	size_t n = strnlen(field, len);

	memcpy(out, field, n);
	out[n] = '\0';
	for (size_t i = n; i < len; i++) {
		if (field[i] != '\0') {
			return false;
		}
	}
	return true;
}

void fmt_padded_str_put(char *field, size_t len, const char *s)
{
	size_t n = strnlen(s, len);

	memset(field, 0, len);
	memcpy(field, s, n);
}
