/*
 * Little-endian wrapper types for on-disk fields.
 *
 * Every multi-byte integer on disk is one of le16/le32/le64. They are
 * single-member structs, so `a.v + 1` is the only way to do raw arithmetic
 * and `le32 x; x + 1` does not compile: conversion must go through the
 * accessors below. The structs have the size and alignment of the plain
 * integer, so on-disk structs stay naturally aligned without packing.
 */
#ifndef LUNFS_LE_H
#define LUNFS_LE_H

#include <endian.h>
#include <stdint.h>

typedef struct { uint16_t v; } le16;
typedef struct { uint32_t v; } le32;
typedef struct { uint64_t v; } le64;

_Static_assert(sizeof(le16) == 2 && _Alignof(le16) == 2, "le16 layout");
_Static_assert(sizeof(le32) == 4 && _Alignof(le32) == 4, "le32 layout");
_Static_assert(sizeof(le64) == 8 && _Alignof(le64) == 8, "le64 layout");

static inline uint16_t le16_get(le16 x) { return le16toh(x.v); }
static inline uint32_t le32_get(le32 x) { return le32toh(x.v); }
static inline uint64_t le64_get(le64 x) { return le64toh(x.v); }

static inline le16 le16_make(uint16_t h) { le16 x = { htole16(h) }; return x; }
static inline le32 le32_make(uint32_t h) { le32 x = { htole32(h) }; return x; }
static inline le64 le64_make(uint64_t h) { le64 x = { htole64(h) }; return x; }

/* A four-character code whose on-disk bytes read a, b, c, d. */
#define LUNFS_FOURCC(a, b, c, d) \
	((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))

#endif
