/* crc32c.h - CRC32C (Castagnoli), as Kafka's RecordBatch v2 uses. */
#ifndef SHOAL_CRC32C_H
#define SHOAL_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/* Extend crc (start with 0) over buf. Uses SSE4.2 crc32 instructions when the CPU has
 * them (checked once), else a slicing table. Any thread. */
uint32_t shoal__crc32c(uint32_t crc, const void *buf, size_t len);
/* The portable path alone, for tests that compare the two. */
uint32_t shoal__crc32c_sw(uint32_t crc, const void *buf, size_t len);
#endif
