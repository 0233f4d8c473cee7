/* crc32c.c - CRC32C (Castagnoli), the checksum of Kafka's RecordBatch v2.
 *
 * DESIGN
 * The polynomial is 0x1EDC6F41, used reflected (0x82F63B78) with the usual ~ before and
 * after, so shoal__crc32c(0, "123456789", 9) == 0xE3069283. The public entry point takes a
 * finished crc and extends it, which lets a caller checksum a batch in pieces.
 *
 * Four implementations, the fastest the CPU can run chosen once, on the first call, and
 * kept in an atomic pointer (two threads racing on the first call both store the same
 * value, which is harmless):
 *
 * - AVX-512 + VPCLMULQDQ, folding. Four 64-byte accumulators (sixteen 16-byte lanes) take
 *   256 bytes a round: each lane X = H x^64 + L (H its first 8 bytes) is moved 256 bytes
 *   further, X x^2048 = H x^2112 + L x^2048 (mod P), by two carry-less multiplications, and
 *   the next 16 bytes of data are added. The multipliers are x^(F+31) and x^(F-33) mod P
 *   for a move of F bits: a reflected 32-bit constant in the low half of a 64-bit operand
 *   stands for itself times x^32, and the product of two reflected operands comes out
 *   times x. The running crc enters by being added to the first 4 bytes. At the end the
 *   accumulators are folded into one (moves of 512 bits) and its lanes into one (128
 *   bits); that last 16-byte lane is congruent to everything before it, so two crc32
 *   instructions over it give the crc. The rest (under 256 bytes) goes on through the
 *   three-stream path. 4 KiB: 37 ns against 141 ns for three streams (this machine).
 * - SSE4.2 + PCLMULQDQ, three streams. The crc32 instruction takes 3 cycles but the CPU
 *   can start one every cycle, so a single chain of them runs at a third of the possible
 *   speed. A long buffer is cut into blocks of three equal streams A, B, C, each
 *   checksummed in the same loop from its own start value (A from the running crc, B and
 *   C from 0), and joined at the end of the block. Without the ~, a CRC is linear:
 *   crc(A || B || C) = crc(A) * x^(8*2b) + crc(B) * x^(8*b) + crc(C) (mod P), for streams
 *   of b bytes. The two products are carry-less multiplications (PCLMULQDQ) by the
 *   constants x^(8n-33) mod P, folded into C's last word: one crc32 of a 64-bit word
 *   reduces the product mod P and supplies the missing x^33 (x^32 from the crc32, x^1
 *   because a carry-less product of two reflected 32-bit values comes out one bit low).
 *   Stream lengths are 64 << k bytes for k = 0..7; each block uses the largest that fits
 *   three times, so a 2.5 KB buffer takes blocks of 3*512, 3*256 and 3*64 bytes and the
 *   last < 192 bytes go through one stream. The constants are computed from the
 *   polynomial under pthread_once before the pointer is published.
 * - SSE4.2 alone: the crc32 instruction in one stream, eight bytes per instruction.
 * - Anything else: slicing-by-8 tables (eight 256-entry tables, one lookup per input byte
 *   but eight independent lookups per step, so the loads overlap), built under
 *   pthread_once.
 *
 * shoal__crc32c_copy goes in pieces of CRC32C_COPY_PIECE bytes: checksum the piece from
 * the source, then memcpy it while it is in L1. Checksumming before copying keeps the
 * crc's loads from queueing behind stores to a destination that is not in cache (their
 * addresses can match in the low 12 bits, which the CPU treats as a possible overlap).
 * A loop that stores each word it feeds to crc32 (one pass) lost to the pieces except
 * on a small destination already in cache: memcpy's wide stores write a cold
 * destination (a ring slot) much faster than 8- or 16-byte stores do.
 *
 * shoal__crc32c_fresh is for a few bytes the caller has only just stored, several stores
 * for them (a record's varints and flags). An 8-byte crc32 load over them cannot be served
 * from the store buffer and waits until every store it covers has reached L1, which for a
 * ring slot's line means fetching that line from memory or from the core that reads it:
 * ~100 ns per record at 4 KiB. Byte loads are each inside one store and are forwarded, and
 * at a few bytes their 3-cycle chain costs less than that wait. */
#include "crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C_HAVE_SSE42 1
#include <immintrin.h>
#else
#define CRC32C_HAVE_SSE42 0
#endif

#define CRC32C_POLY_REFLECTED 0x82F63B78u

/* Stream lengths of the three-stream path: CRC32C_STREAM_MIN << k for k < CRC32C_TIERS.
 * Below three of the shortest, one stream is as fast as the join would cost. */
#define CRC32C_STREAM_MIN 64u
#define CRC32C_TIERS      8

/* The folding path's round, and the shortest buffer it takes (below, three streams win:
 * its set-up and final folds cost about what 256 bytes of crc32 do). */
#define CRC32C_FOLD_ROUND 256u
#define CRC32C_FOLD_MIN   512u

/* The shortest value shoal__crc32c_copy_stream copies with AVX2's non-temporal stores:
 * on an AMD EPYC (Zen 3) guest they won at 4 KiB and 64 KiB, and lost a fifth of the
 * pair's rate at 1 KiB, where AVX-512's won (docs/PERFORMANCE.md). */
#define CRC32C_STREAM256_MIN 4096u

/* shoal__crc32c_copy's piece: small enough to stay in L1 between the copy and the crc. */
#define CRC32C_COPY_PIECE 4096u

/* Every implementation works on the raw crc (no ~). */
typedef uint32_t (*crc32c_fn)(uint32_t crc, const uint8_t *p, size_t len);

static uint32_t crc32c_table[8][256];
static pthread_once_t crc32c_table_once = PTHREAD_ONCE_INIT;
static _Atomic(crc32c_fn) crc32c_selected;

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

/* ---- hardware paths: SSE4.2 crc32, PCLMULQDQ to join streams ---- */

#if CRC32C_HAVE_SSE42
#define CRC32C_INLINE        static inline __attribute__((always_inline))
#define CRC32C_TARGET_SSE42  __attribute__((target("sse4.2")))
#define CRC32C_TARGET_PCLMUL __attribute__((target("sse4.2,pclmul")))

/* crc32c_shift[j] = x^(8 * (CRC32C_STREAM_MIN << j) - 33) mod P, reflected: multiplying a
 * raw crc by it (then reducing with one crc32, see DESIGN) moves the crc past
 * CRC32C_STREAM_MIN << j zero bytes. Index CRC32C_TIERS serves the top tier's 2b. */
static uint32_t crc32c_shift[CRC32C_TIERS + 1];
static pthread_once_t crc32c_shift_once = PTHREAD_ONCE_INIT;

/* a * b mod P on reflected polynomials: bit 31 holds x^0, bit 0 holds x^31. */
static uint32_t crc32c_mulmod(uint32_t a, uint32_t b)
{
    uint32_t prod = 0;

    for (int i = 0; i < 32; i++) {
        if (a & (0x80000000u >> i))
            prod ^= b;
        /* b *= x: a reflected shift right; an x^31 that becomes x^32 is replaced by the
         * rest of P, to which it is congruent. */
        b = (b >> 1) ^ ((b & 1u) ? CRC32C_POLY_REFLECTED : 0u);
    }
    return prod;
}

/* x^n mod P, reflected, by square and multiply. */
static uint32_t crc32c_xpow(uint64_t n)
{
    uint32_t result = 0x80000000u; /* x^0 */
    uint32_t base = 0x40000000u;   /* x^1 */

    for (; n > 0; n >>= 1) {
        if (n & 1u)
            result = crc32c_mulmod(result, base);
        base = crc32c_mulmod(base, base);
    }
    return result;
}

static void crc32c_shift_build(void)
{
    for (int j = 0; j <= CRC32C_TIERS; j++)
        crc32c_shift[j] = crc32c_xpow(8ull * ((uint64_t)CRC32C_STREAM_MIN << j) - 33);
}

CRC32C_INLINE uint64_t crc32c_load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w)); /* any alignment: unaligned loads cost next to nothing here */
    return w;
}

/* One stream: eight bytes at a time, then 4, 2, 1 (no byte-by-byte steps to align p,
 * which cost 3 cycles each on short buffers). */
CRC32C_INLINE CRC32C_TARGET_SSE42 uint32_t crc32c_hw_stream(uint32_t crc, const uint8_t *p,
                                                            size_t len)
{
    uint64_t c = crc;

    for (; len >= 8; len -= 8, p += 8)
        c = _mm_crc32_u64(c, crc32c_load64(p));
    if (len & 4u) {
        uint32_t w;
        memcpy(&w, p, 4);
        c = _mm_crc32_u32((uint32_t)c, w);
        p += 4;
    }
    if (len & 2u) {
        uint16_t w;
        memcpy(&w, p, 2);
        c = _mm_crc32_u16((uint32_t)c, w);
        p += 2;
    }
    if (len & 1u)
        c = _mm_crc32_u8((uint32_t)c, *p);
    return (uint32_t)c;
}

static CRC32C_TARGET_SSE42 uint32_t crc32c_hw_raw(uint32_t crc, const uint8_t *p, size_t len)
{
    return crc32c_hw_stream(crc, p, len);
}

CRC32C_INLINE CRC32C_TARGET_PCLMUL uint64_t crc32c_clmul(uint32_t a, uint32_t b)
{
    __m128i prod = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)a), _mm_cvtsi32_si128((int)b), 0);
    return (uint64_t)_mm_cvtsi128_si64(prod);
}

/* One block: three streams of b bytes (a multiple of 8, at least 16) at p, p + b,
 * p + 2b, joined into the crc of all 3b bytes. k_b and k_2b shift by b and 2b bytes. */
CRC32C_INLINE CRC32C_TARGET_PCLMUL uint32_t crc32c_hw3_block(uint32_t crc, const uint8_t *p,
                                                             size_t b, uint32_t k_b, uint32_t k_2b)
{
    uint64_t c0 = crc, c1 = 0, c2 = 0;
    const uint8_t *last = p + b - 8;

    for (; p < last; p += 8) {
        c0 = _mm_crc32_u64(c0, crc32c_load64(p));
        c1 = _mm_crc32_u64(c1, crc32c_load64(p + b));
        c2 = _mm_crc32_u64(c2, crc32c_load64(p + 2 * b));
    }
    c0 = _mm_crc32_u64(c0, crc32c_load64(p));
    c1 = _mm_crc32_u64(c1, crc32c_load64(p + b));
    /* C's last word carries A and B moved to the end of the block (DESIGN). */
    uint64_t w2 = crc32c_load64(p + 2 * b);
    w2 ^= crc32c_clmul((uint32_t)c0, k_2b) ^ crc32c_clmul((uint32_t)c1, k_b);
    return (uint32_t)_mm_crc32_u64(c2, w2);
}

/* Blocks from the longest stream length that fits down, then one stream for the rest.
 * Only the longest repeats: what is left after it is under 6 * 64 << k bytes. */
static CRC32C_TARGET_PCLMUL uint32_t crc32c_hw3_raw(uint32_t crc, const uint8_t *p, size_t len)
{
    if (len >= 3 * CRC32C_STREAM_MIN) {
        for (int k = CRC32C_TIERS - 1; k >= 0; k--) {
            size_t b = (size_t)CRC32C_STREAM_MIN << k;
            while (len >= 3 * b) {
                crc = crc32c_hw3_block(crc, p, b, crc32c_shift[k], crc32c_shift[k + 1]);
                p += 3 * b;
                len -= 3 * b;
            }
        }
    }
    return crc32c_hw_stream(crc, p, len);
}

#define CRC32C_TARGET_FOLD __attribute__((target("sse4.2,pclmul,avx512f,vpclmulqdq")))

/* The folding path's multipliers (DESIGN), as [lo, hi] operands for the lanes' first and
 * second halves: moves of 2048 bits (a round), 512 (one accumulator onto the next), 128
 * (one lane onto the next). Built under their own once; the path also needs
 * crc32c_shift for its tail. */
static uint64_t crc32c_fold_k[3][2];
static pthread_once_t crc32c_fold_once = PTHREAD_ONCE_INIT;

static void crc32c_fold_build(void)
{
    static const uint64_t bits[3] = {8 * CRC32C_FOLD_ROUND, 512, 128};
    for (int i = 0; i < 3; i++) {
        crc32c_fold_k[i][0] = crc32c_xpow(bits[i] + 31);
        crc32c_fold_k[i][1] = crc32c_xpow(bits[i] - 33);
    }
}

/* x moved forward by the multipliers k, plus the data d it lands on. */
CRC32C_INLINE CRC32C_TARGET_FOLD __m512i crc32c_fold512(__m512i x, __m512i k, __m512i d)
{
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
                                     _mm512_clmulepi64_epi128(x, k, 0x11), d, 0x96); /* a^b^c */
}

CRC32C_INLINE CRC32C_TARGET_FOLD __m128i crc32c_fold128(__m128i x, __m128i k, __m128i d)
{
    return _mm_xor_si128(
        _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), d);
}

CRC32C_INLINE CRC32C_TARGET_FOLD __m512i crc32c_fold_k512(int i)
{
    return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)crc32c_fold_k[i]));
}

/* Whole rounds by folding, then the rest through three streams. */
static CRC32C_TARGET_FOLD uint32_t crc32c_fold_raw(uint32_t crc, const uint8_t *p, size_t len)
{
    if (len < CRC32C_FOLD_MIN)
        return crc32c_hw3_raw(crc, p, len);
    __m512i k = crc32c_fold_k512(0);
    __m512i a0 = _mm512_xor_si512(_mm512_loadu_si512(p),
                                  _mm512_castsi128_si512(_mm_cvtsi32_si128((int)crc)));
    __m512i a1 = _mm512_loadu_si512(p + 64), a2 = _mm512_loadu_si512(p + 128);
    __m512i a3 = _mm512_loadu_si512(p + 192);
    for (p += CRC32C_FOLD_ROUND, len -= CRC32C_FOLD_ROUND; len >= CRC32C_FOLD_ROUND;
         p += CRC32C_FOLD_ROUND, len -= CRC32C_FOLD_ROUND) {
        a0 = crc32c_fold512(a0, k, _mm512_loadu_si512(p));
        a1 = crc32c_fold512(a1, k, _mm512_loadu_si512(p + 64));
        a2 = crc32c_fold512(a2, k, _mm512_loadu_si512(p + 128));
        a3 = crc32c_fold512(a3, k, _mm512_loadu_si512(p + 192));
    }
    k = crc32c_fold_k512(1);
    a3 = crc32c_fold512(crc32c_fold512(crc32c_fold512(a0, k, a1), k, a2), k, a3);
    __m128i k16 = _mm_loadu_si128((const __m128i *)crc32c_fold_k[2]);
    __m128i x = _mm512_extracti32x4_epi32(a3, 0);
    x = crc32c_fold128(x, k16, _mm512_extracti32x4_epi32(a3, 1));
    x = crc32c_fold128(x, k16, _mm512_extracti32x4_epi32(a3, 2));
    x = crc32c_fold128(x, k16, _mm512_extracti32x4_epi32(a3, 3));
    uint64_t c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(x));
    c = _mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(x, 1));
    return crc32c_hw3_raw((uint32_t)c, p, len);
}
#endif

/* ---- selection ---- */

bool shoal__crc32c_impl_available(enum shoal_crc32c_impl impl)
{
    switch (impl) {
    case SHOAL_CRC32C_TABLE:
        return true;
#if CRC32C_HAVE_SSE42
    case SHOAL_CRC32C_SSE42:
        __builtin_cpu_init();
        return __builtin_cpu_supports("sse4.2");
    case SHOAL_CRC32C_SSE42_3WAY:
        __builtin_cpu_init();
        return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
    case SHOAL_CRC32C_FOLD512:
        return shoal__crc32c_impl_available(SHOAL_CRC32C_SSE42_3WAY) &&
               __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq");
#endif
    default:
        return false;
    }
}

/* The raw function of impl, made ready to run (tables or constants built); the table
 * path when the CPU cannot run impl. */
static crc32c_fn crc32c_impl_ready(enum shoal_crc32c_impl impl)
{
    if (!shoal__crc32c_impl_available(impl))
        impl = SHOAL_CRC32C_TABLE;
#if CRC32C_HAVE_SSE42
    if (impl == SHOAL_CRC32C_FOLD512) {
        pthread_once(&crc32c_shift_once, crc32c_shift_build);
        pthread_once(&crc32c_fold_once, crc32c_fold_build);
        return crc32c_fold_raw;
    }
    if (impl == SHOAL_CRC32C_SSE42_3WAY) {
        pthread_once(&crc32c_shift_once, crc32c_shift_build);
        return crc32c_hw3_raw;
    }
    if (impl == SHOAL_CRC32C_SSE42)
        return crc32c_hw_raw;
#endif
    pthread_once(&crc32c_table_once, crc32c_table_build);
    return crc32c_sw_raw;
}

static crc32c_fn crc32c_get(void)
{
    crc32c_fn fn = atomic_load_explicit(&crc32c_selected, memory_order_acquire);

    if (fn == NULL) {
        if (shoal__crc32c_impl_available(SHOAL_CRC32C_FOLD512))
            fn = crc32c_impl_ready(SHOAL_CRC32C_FOLD512);
        else if (shoal__crc32c_impl_available(SHOAL_CRC32C_SSE42_3WAY))
            fn = crc32c_impl_ready(SHOAL_CRC32C_SSE42_3WAY);
        else if (shoal__crc32c_impl_available(SHOAL_CRC32C_SSE42))
            fn = crc32c_impl_ready(SHOAL_CRC32C_SSE42);
        else
            fn = crc32c_impl_ready(SHOAL_CRC32C_TABLE);
        /* Release: a thread that sees the pointer also sees the tables or constants. */
        atomic_store_explicit(&crc32c_selected, fn, memory_order_release);
    }
    return fn;
}

uint32_t shoal__crc32c(uint32_t crc, const void *buf, size_t len)
{
    return ~crc32c_get()(~crc, buf, len);
}

#if CRC32C_HAVE_SSE42
static CRC32C_TARGET_SSE42 uint32_t crc32c_hw_bytes(uint32_t crc, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        crc = _mm_crc32_u8(crc, p[i]);
    return crc;
}
#endif

uint32_t shoal__crc32c_fresh(uint32_t crc, const void *buf, size_t len)
{
#if CRC32C_HAVE_SSE42
    if (len <= CRC32C_FRESH_MAX && crc32c_get() != crc32c_sw_raw)
        return ~crc32c_hw_bytes(~crc, buf, len);
#endif
    return shoal__crc32c(crc, buf, len);
}

/* How a piece is copied: memcpy, or streaming stores. */
typedef void (*crc32c_copy_fn)(uint8_t *d, const uint8_t *s, size_t len);

static void crc32c_copy_plain(uint8_t *d, const uint8_t *s, size_t len)
{
#if defined(__GNUC__) || defined(__clang__)
    /* Hide len's bound, or the compiler inlines the copy as rep movsq, which was twice as
     * slow as the library's memcpy on a misaligned source. */
    __asm__("" : "+r"(len));
#endif
    memcpy(d, s, len);
}

/* Checksum (raw crc) and copy in pieces of CRC32C_COPY_PIECE bytes: each piece is
 * checksummed from the source, then copied while it is in L1 (DESIGN). */
static inline __attribute__((always_inline)) uint32_t
crc32c_copy_pieces(crc32c_fn fn, crc32c_copy_fn copy, uint32_t crc, uint8_t *d, const uint8_t *s,
                   size_t len)
{
    while (len > 0) {
        size_t n = len < CRC32C_COPY_PIECE ? len : CRC32C_COPY_PIECE;
        crc = fn(crc, s, n);
        copy(d, s, n);
        d += n, s += n, len -= n;
    }
    return crc;
}

uint32_t shoal__crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len)
{
    return ~crc32c_copy_pieces(crc32c_get(), crc32c_copy_plain, ~crc, dst, src, len);
}

#if CRC32C_HAVE_SSE42
/* dst's whole lines with 64-byte non-temporal stores, the partial ones at its ends with
 * memcpy. */
static CRC32C_TARGET_FOLD void crc32c_copy_nt(uint8_t *d, const uint8_t *s, size_t len)
{
    size_t head = (size_t)(-(uintptr_t)d & 63u);

    if (head > len)
        head = len;
    memcpy(d, s, head);
    d += head, s += head, len -= head;
    for (; len >= 64; d += 64, s += 64, len -= 64)
        _mm512_stream_si512((void *)d, _mm512_loadu_si512(s));
    memcpy(d, s, len);
}

/* crc32c_copy_nt with two 32-byte stores a line (AVX2). */
static __attribute__((target("avx2"))) void crc32c_copy_nt256(uint8_t *d, const uint8_t *s,
                                                              size_t len)
{
    size_t head = (size_t)(-(uintptr_t)d & 63u);

    if (head > len)
        head = len;
    memcpy(d, s, head);
    d += head, s += head, len -= head;
    for (; len >= 64; d += 64, s += 64, len -= 64) {
        _mm256_stream_si256((__m256i *)d, _mm256_loadu_si256((const __m256i *)s));
        _mm256_stream_si256((__m256i *)(d + 32), _mm256_loadu_si256((const __m256i *)(s + 32)));
    }
    memcpy(d, s, len);
}
#endif

uint32_t shoal__crc32c_copy_stream(uint32_t crc, void *dst, const void *src, size_t len)
{
#if CRC32C_HAVE_SSE42
    crc32c_fn fn = crc32c_get();

    if (fn == crc32c_fold_raw) /* the CPU has AVX-512 */
        return ~crc32c_copy_pieces(crc32c_fold_raw, crc32c_copy_nt, ~crc, dst, src, len);
    if (fn == crc32c_hw3_raw && len >= CRC32C_STREAM256_MIN && __builtin_cpu_supports("avx2"))
        return ~crc32c_copy_pieces(crc32c_hw3_raw, crc32c_copy_nt256, ~crc, dst, src, len);
#endif
    return shoal__crc32c_copy(crc, dst, src, len);
}

void shoal__crc32c_stream_fence(void)
{
#if CRC32C_HAVE_SSE42
    _mm_sfence();
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

uint32_t shoal__crc32c_impl(enum shoal_crc32c_impl impl, uint32_t crc, const void *buf, size_t len)
{
    return ~crc32c_impl_ready(impl)(~crc, buf, len);
}

uint32_t shoal__crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    return shoal__crc32c_impl(SHOAL_CRC32C_TABLE, crc, buf, len);
}
