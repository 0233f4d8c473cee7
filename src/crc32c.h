/* crc32c.h - CRC32C (Castagnoli), as Kafka's RecordBatch v2 uses. */
#ifndef SHOAL_CRC32C_H
#define SHOAL_CRC32C_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Extend crc (start with 0) over buf. Uses the fastest implementation this CPU has
 * (checked once): AVX-512 carry-less folding, SSE4.2 crc32 in three interleaved streams
 * joined with PCLMULQDQ, SSE4.2 crc32 in one stream, or a slicing table. Any thread. */
uint32_t shoal__crc32c(uint32_t crc, const void *buf, size_t len);

/* Copy len bytes from src to dst (which must not overlap, as for memcpy) and return crc
 * extended over them: shoal__crc32c(crc, src, len), in 4 KiB pieces each checksummed
 * then copied while in L1. Faster than memcpy then shoal__crc32c over dst. Any thread. */
uint32_t shoal__crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len);

/* shoal__crc32c_copy for a destination the copying core will not read again and that is
 * larger than its caches can keep (a ring slot): the whole 64-byte lines of dst are
 * written with non-temporal stores, which do not first fetch the line they replace (one
 * store a line with AVX-512; two with AVX2, for 4 KiB or more only); elsewhere it is
 * shoal__crc32c_copy. Those stores are weakly ordered: the caller runs
 * shoal__crc32c_stream_fence() before publishing dst to anyone. */
uint32_t shoal__crc32c_copy_stream(uint32_t crc, void *dst, const void *src, size_t len);
/* Order every earlier store, non-temporal ones included, before every later one. */
void shoal__crc32c_stream_fence(void);

/* shoal__crc32c over bytes that were just stored. Up to CRC32C_FRESH_MAX of them are read
 * one byte at a time: a wider load over bytes written by several smaller stores cannot
 * take them from the store buffer, it waits until they reach the cache, and so for the
 * line they are in, which may be in another core's cache or in none. A byte load is
 * always inside one store and is served from the buffer. Longer runs go through
 * shoal__crc32c, whose speed then outweighs the wait. Any thread. */
#define CRC32C_FRESH_MAX 64
uint32_t shoal__crc32c_fresh(uint32_t crc, const void *buf, size_t len);

/* The implementations one by one, for tests that compare them. */
enum shoal_crc32c_impl {
    SHOAL_CRC32C_TABLE,      /* slicing-by-8, any CPU */
    SHOAL_CRC32C_SSE42,      /* crc32 instruction, one dependency chain */
    SHOAL_CRC32C_SSE42_3WAY, /* crc32 in three streams, joined with PCLMULQDQ */
    SHOAL_CRC32C_FOLD512,    /* AVX-512 VPCLMULQDQ folding, 256 bytes a round */
};
/* Whether this CPU can run impl. */
bool shoal__crc32c_impl_available(enum shoal_crc32c_impl impl);
/* shoal__crc32c with the given implementation; the table when the CPU cannot run it. */
uint32_t shoal__crc32c_impl(enum shoal_crc32c_impl impl, uint32_t crc, const void *buf, size_t len);
/* The portable path alone: shoal__crc32c_impl(SHOAL_CRC32C_TABLE, ...). */
uint32_t shoal__crc32c_sw(uint32_t crc, const void *buf, size_t len);
#endif
