/* test_crc32c.c - CRC32C: published check values, and every implementation (slicing
 * table, SSE4.2 in one stream, SSE4.2 in three streams joined with PCLMULQDQ, AVX-512
 * folding) agrees with the table on every length and alignment, at every block boundary
 * of the three-stream path, when a buffer is fed in pieces, when it is copied while
 * checksummed, and whichever path a process readies first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crc32c.h"

static const enum shoal_crc32c_impl all_impls[] = {
    SHOAL_CRC32C_TABLE,
    SHOAL_CRC32C_SSE42,
    SHOAL_CRC32C_SSE42_3WAY,
    SHOAL_CRC32C_FOLD512,
};
#define N_IMPLS (sizeof(all_impls) / sizeof(all_impls[0]))

/* The three-stream path's stream lengths are 64 << k bytes, k < 8; a block is three. */
#define STREAM_MIN 64u
#define TIERS      8
#define BIG_LEN    (3 * (STREAM_MIN << (TIERS - 1)) * 3 + 4096)

/* A fixed pseudo-random sequence so failures reproduce. */
static uint32_t next_rand(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static void fill_bytes(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)next_rand(&seed);
}

static uint8_t *big_buffer(uint32_t seed)
{
    uint8_t *buf = malloc(BIG_LEN + 64);

    assert_non_null(buf);
    fill_bytes(buf, BIG_LEN + 64, seed);
    return buf;
}

/* Every available implementation gives the table's answer for buf[0..len). */
static void check_all_agree(const uint8_t *buf, size_t len, uint32_t crc, const char *what)
{
    uint32_t want = shoal__crc32c_sw(crc, buf, len);

    for (size_t i = 0; i < N_IMPLS; i++) {
        if (!shoal__crc32c_impl_available(all_impls[i]))
            continue;
        uint32_t got = shoal__crc32c_impl(all_impls[i], crc, buf, len);
        if (got != want)
            fail_msg("impl %d, %s, len %zu, crc %08x: %08x != %08x", (int)all_impls[i], what, len,
                     crc, got, want);
    }
    if (shoal__crc32c(crc, buf, len) != want)
        fail_msg("shoal__crc32c, %s, len %zu: differs from the table", what, len);
}

static void test_crc32c_matches_check_value(void **state)
{
    (void)state;
    assert_int_equal(shoal__crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(shoal__crc32c(0, "", 0), 0);
    assert_int_equal(shoal__crc32c(0, NULL, 0), 0);
    for (size_t i = 0; i < N_IMPLS; i++) {
        if (!shoal__crc32c_impl_available(all_impls[i]))
            continue;
        assert_int_equal(shoal__crc32c_impl(all_impls[i], 0, "123456789", 9), 0xE3069283u);
        assert_int_equal(shoal__crc32c_impl(all_impls[i], 0, NULL, 0), 0);
        assert_int_equal(shoal__crc32c_impl(all_impls[i], 0x12345678u, NULL, 0), 0x12345678u);
    }
}

static void test_crc32c_table_path_is_always_available(void **state)
{
    (void)state;
    assert_true(shoal__crc32c_impl_available(SHOAL_CRC32C_TABLE));
    /* The three-stream path needs the one-stream path's instruction. */
    if (shoal__crc32c_impl_available(SHOAL_CRC32C_SSE42_3WAY))
        assert_true(shoal__crc32c_impl_available(SHOAL_CRC32C_SSE42));
    /* The folding path finishes its buffers through the three-stream one. */
    if (shoal__crc32c_impl_available(SHOAL_CRC32C_FOLD512))
        assert_true(shoal__crc32c_impl_available(SHOAL_CRC32C_SSE42_3WAY));
}

/* The iSCSI test patterns of RFC 3720, appendix B.4. */
static void check_rfc3720(const uint8_t *buf, uint32_t want)
{
    for (size_t i = 0; i < N_IMPLS; i++) {
        if (shoal__crc32c_impl_available(all_impls[i]))
            assert_int_equal(shoal__crc32c_impl(all_impls[i], 0, buf, 32), want);
    }
    assert_int_equal(shoal__crc32c(0, buf, 32), want);
}

static void test_crc32c_matches_rfc3720_patterns(void **state)
{
    uint8_t buf[32];
    (void)state;

    memset(buf, 0, sizeof(buf));
    check_rfc3720(buf, 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    check_rfc3720(buf, 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    check_rfc3720(buf, 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    check_rfc3720(buf, 0x113FDB5Cu);
}

static void test_crc32c_paths_agree_on_every_short_length_and_alignment(void **state)
{
    static uint8_t buf[4200 + 16];
    (void)state;

    fill_bytes(buf, sizeof(buf), 42);
    for (size_t align = 0; align < 8; align++) {
        for (size_t len = 0; len <= 4200; len++)
            check_all_agree(buf + align, len, 0, "short");
    }
}

/* Lengths on both sides of every block size of the three-stream path and of sums of
 * them, where a wrong join constant or an off-by-one in the block loop would show. */
static void test_crc32c_paths_agree_around_every_block_boundary(void **state)
{
    uint8_t *buf = big_buffer(9);
    (void)state;

    for (int k = 0; k < TIERS; k++) {
        size_t block = 3 * ((size_t)STREAM_MIN << k);
        size_t centres[] = {block, 2 * block, block + 3 * STREAM_MIN,
                            block + block / 2 + 3 * STREAM_MIN};
        for (size_t c = 0; c < sizeof(centres) / sizeof(centres[0]); c++) {
            for (size_t len = centres[c] - 24; len <= centres[c] + 24; len++) {
                check_all_agree(buf + (len % 8), len, 0, "boundary");
                check_all_agree(buf + 3, len, 0xdeadbeefu, "boundary");
            }
        }
    }
    /* The longest block repeated. */
    for (size_t n = 1; n <= 3; n++) {
        size_t centre = n * 3 * ((size_t)STREAM_MIN << (TIERS - 1));
        for (size_t len = centre - 24; len <= centre + 24; len++)
            check_all_agree(buf + 5, len, 0, "long blocks");
    }
    free(buf);
}

static void test_crc32c_paths_agree_on_random_lengths_and_alignments(void **state)
{
    uint8_t *buf = big_buffer(11);
    uint32_t seed = 1234;
    (void)state;

    for (int i = 0; i < 300; i++) {
        size_t align = next_rand(&seed) % 64;
        size_t len = next_rand(&seed) % (BIG_LEN - 64);
        check_all_agree(buf + align, len, next_rand(&seed), "random");
    }
    free(buf);
}

/* In a fresh process (this binary run again with --first N: a forked child would inherit
 * what the tests before it readied), ready `first` before any other path, then check every
 * path: the constants each one needs are built whichever is asked for first. 0 when all
 * agree. */
static int child_first_then_all(enum shoal_crc32c_impl first)
{
    static const size_t lens[] = {9, 300, 512, 1000, 4096, 70000};
    uint8_t *buf = malloc(70000);
    int rc = 0;

    if (!buf)
        return 2;
    fill_bytes(buf, 70000, 21);
    (void)shoal__crc32c_impl(first, 0, buf, 4096);
    for (size_t i = 0; i < N_IMPLS; i++)
        for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
            if (shoal__crc32c_impl_available(all_impls[i]) &&
                shoal__crc32c_impl(all_impls[i], 7, buf, lens[k]) !=
                    shoal__crc32c_sw(7, buf, lens[k]))
                rc = 1;
    free(buf);
    return rc;
}

static void test_crc32c_paths_are_ready_whichever_is_used_first(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_IMPLS; i++) {
        int status;
        pid_t kid = fork();
        assert_true(kid >= 0);
        if (kid == 0) {
            char arg[16];
            snprintf(arg, sizeof(arg), "%d", (int)all_impls[i]);
            execl("/proc/self/exe", "test_crc32c", "--first", arg, (char *)NULL);
            _exit(3);
        }
        assert_int_equal(waitpid(kid, &status, 0), kid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) != 0)
            fail_msg("with impl %d readied first, some path disagrees with the table",
                     (int)all_impls[i]);
    }
}

/* crc(a || b) == extend(crc(a), b), for every implementation and cut. */
static void test_crc32c_extends_a_finished_crc(void **state)
{
    uint8_t *buf = big_buffer(7);
    uint32_t seed = 99;
    (void)state;

    for (int i = 0; i < 200; i++) {
        size_t len = next_rand(&seed) % (i < 100 ? 5000 : BIG_LEN);
        size_t cut = len ? next_rand(&seed) % (len + 1) : 0;
        uint32_t whole = shoal__crc32c_sw(0, buf, len);
        for (size_t j = 0; j < N_IMPLS; j++) {
            enum shoal_crc32c_impl impl = all_impls[j];
            if (!shoal__crc32c_impl_available(impl))
                continue;
            uint32_t head = shoal__crc32c_impl(impl, 0, buf, cut);
            uint32_t got = shoal__crc32c_impl(impl, head, buf + cut, len - cut);
            if (got != whole)
                fail_msg("impl %d len %zu cut %zu: %08x != %08x", (int)impl, len, cut, got, whole);
        }
        assert_int_equal(shoal__crc32c(shoal__crc32c(0, buf, cut), buf + cut, len - cut), whole);
    }
    free(buf);
}

typedef uint32_t (*copy_fn)(uint32_t crc, void *dst, const void *src, size_t len);

/* The copy gives the same crc, writes exactly dst[0..len), and reads only src. dst_area
 * is 64-byte aligned, so dst_align picks where dst starts in its cache line (the streaming
 * copy writes whole lines one way and the partial ones at the ends another). */
static void check_copy(copy_fn copy, const uint8_t *src, uint8_t *dst_area, size_t dst_align,
                       size_t len, uint32_t crc)
{
    uint8_t *dst = dst_area + 16 + dst_align;
    uint32_t want = shoal__crc32c_sw(crc, src, len);

    memset(dst_area, 0xa5, len + 48 + dst_align);
    uint32_t got = copy(crc, dst, src, len);
    shoal__crc32c_stream_fence();
    if (got != want)
        fail_msg("copy len %zu: %08x != %08x", len, got, want);
    if (memcmp(dst, src, len) != 0)
        fail_msg("copy len %zu: bytes differ", len);
    for (size_t i = 0; i < 16 + dst_align; i++)
        assert_int_equal(dst_area[i], 0xa5);
    for (size_t i = 0; i < 16; i++)
        assert_int_equal(dst[len + i], 0xa5);
}

/* Lengths around the copy's 4 KiB pieces and the crc's blocks, and random ones. */
static void check_copy_everywhere(copy_fn copy)
{
    uint8_t *src = big_buffer(3);
    uint8_t *dst_area = aligned_alloc(64, BIG_LEN + 192);
    uint32_t seed = 5;

    assert_non_null(dst_area);
    for (size_t len = 0; len <= 1600; len++)
        check_copy(copy, src + len % 7, dst_area, len % 67, len, 0);
    for (size_t pieces = 1; pieces <= 4; pieces++) {
        for (size_t len = pieces * 4096 - 20; len <= pieces * 4096 + 20; len++)
            check_copy(copy, src + len % 8, dst_area, len % 64, len, 0x5a5a5a5au);
    }
    for (int i = 0; i < 60; i++) {
        size_t len = next_rand(&seed) % (BIG_LEN - 64);
        check_copy(copy, src + i % 8, dst_area, (size_t)i, len, next_rand(&seed));
    }
    uint8_t out[9];
    assert_int_equal(copy(0, out, "123456789", 9), 0xE3069283u);
    assert_memory_equal(out, "123456789", 9);
    assert_int_equal(copy(0, NULL, NULL, 0), 0);
    free(dst_area);
    free(src);
}

static void test_crc32c_copy_matches_crc_and_copies_exactly(void **state)
{
    (void)state;
    check_copy_everywhere(shoal__crc32c_copy);
}

/* The same with non-temporal stores (or the plain copy where the CPU lacks them). */
static void test_crc32c_copy_stream_matches_crc_and_copies_exactly(void **state)
{
    (void)state;
    check_copy_everywhere(shoal__crc32c_copy_stream);
}

/* The path for freshly stored bytes gives the ordinary crc at every length on both sides of
 * CRC32C_FRESH_MAX, with several alignments and starting crcs. */
static void test_crc32c_fresh_matches_the_table(void **state)
{
    uint8_t *src = big_buffer(11);
    uint32_t seed = 3;
    (void)state;

    for (size_t len = 0; len <= 3 * CRC32C_FRESH_MAX; len++) {
        uint32_t crc = next_rand(&seed);
        const uint8_t *p = src + len % 9;
        assert_int_equal(shoal__crc32c_fresh(crc, p, len), shoal__crc32c_sw(crc, p, len));
    }
    assert_int_equal(shoal__crc32c_fresh(0, "123456789", 9), 0xE3069283u);
    free(src);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--first") == 0)
        return child_first_then_all((enum shoal_crc32c_impl)atoi(argv[2]));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_matches_check_value),
        cmocka_unit_test(test_crc32c_table_path_is_always_available),
        cmocka_unit_test(test_crc32c_matches_rfc3720_patterns),
        cmocka_unit_test(test_crc32c_paths_agree_on_every_short_length_and_alignment),
        cmocka_unit_test(test_crc32c_paths_agree_around_every_block_boundary),
        cmocka_unit_test(test_crc32c_paths_agree_on_random_lengths_and_alignments),
        cmocka_unit_test(test_crc32c_paths_are_ready_whichever_is_used_first),
        cmocka_unit_test(test_crc32c_extends_a_finished_crc),
        cmocka_unit_test(test_crc32c_copy_matches_crc_and_copies_exactly),
        cmocka_unit_test(test_crc32c_copy_stream_matches_crc_and_copies_exactly),
        cmocka_unit_test(test_crc32c_fresh_matches_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
