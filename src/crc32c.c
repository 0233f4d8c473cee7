/* crc32c.c - CRC32C (Castagnoli), the checksum of Kafka's RecordBatch v2.
 *
 * DESIGN
 * The polynomial is 0x1EDC6F41, used reflected (0x82F63B78) with the usual ~ before and
 * after, so shoal__crc32c(0, "123456789", 9) == 0xE3069283. The public entry point takes a
 * finished crc and extends it, which lets a caller checksum a batch in pieces.
 *
 * Two implementations: SSE4.2 has a crc32 instruction for exactly this polynomial and does
 * eight bytes per instruction; everything else uses slicing-by-8 tables (eight 256-entry
 * tables, one lookup per input byte but eight independent lookups per step, so the loads
 * overlap). The choice is made once, on the first call, and kept in an atomic function
 * pointer: two threads racing on the first call both store the same value, which is
 * harmless. The tables are built once under pthread_once.
 */
#include "crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C_HAVE_SSE42 1
#include <nmmintrin.h>
#else
#define CRC32C_HAVE_SSE42 0
#endif

#define CRC32C_POLY_REFLECTED 0x82F63B78u

typedef uint32_t (*crc32c_fn)(uint32_t crc, const uint8_t *p, size_t len);

static uint32_t crc32c_table[8][256];
static pthread_once_t crc32c_table_once = PTHREAD_ONCE_INIT;
static _Atomic(crc32c_fn) crc32c_impl;

/* ---- portable path: slicing-by-8 ---- */

static void crc32c_table_build(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ ((c & 1u) ? CRC32C_POLY_REFLECTED : 0u);
        crc32c_table[0][i] = c;
    }
    /* Table k advances a byte that sits k positions before the end of an 8-byte block. */
    for (int t = 1; t < 8; t++) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t prev = crc32c_table[t - 1][i];
            crc32c_table[t][i] = (prev >> 8) ^ crc32c_table[0][prev & 0xffu];
        }
    }
}

/* Little-endian load, independent of the host's byte order and alignment. */
static inline uint32_t crc32c_load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint32_t crc32c_sw_raw(uint32_t crc, const uint8_t *p, size_t len)
{
    const uint32_t(*t)[256] = (const uint32_t(*)[256])crc32c_table;

    while (len >= 8) {
        uint32_t lo = crc ^ crc32c_load_le32(p);
        uint32_t hi = crc32c_load_le32(p + 4);
        crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
              t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
    return crc;
}

uint32_t shoal__crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc32c_table_once, crc32c_table_build);
    return ~crc32c_sw_raw(~crc, buf, len);
}

/* ---- hardware path: SSE4.2 crc32 ---- */

#if CRC32C_HAVE_SSE42
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw_raw(uint32_t crc, const uint8_t *p,
                                                                size_t len)
{
    uint64_t c = crc;

    /* Byte steps up to an 8-byte boundary so the wide loads are aligned (faster, not
     * required: memcpy keeps the load legal either way). */
    while (len > 0 && ((uintptr_t)p & 7u) != 0) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, sizeof(w));
        c = _mm_crc32_u64(c, w);
        p += 8;
        len -= 8;
    }
    while (len--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

static crc32c_fn crc32c_select(void)
{
#if CRC32C_HAVE_SSE42
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        return crc32c_hw_raw;
#endif
    pthread_once(&crc32c_table_once, crc32c_table_build);
    return crc32c_sw_raw;
}

uint32_t shoal__crc32c(uint32_t crc, const void *buf, size_t len)
{
    crc32c_fn fn = atomic_load_explicit(&crc32c_impl, memory_order_acquire);

    if (fn == NULL) {
        fn = crc32c_select();
        atomic_store_explicit(&crc32c_impl, fn, memory_order_release);
    }
    return ~fn(~crc, buf, len);
}
