/* test_crc32c.c - CRC32C: published check values, and the SSE4.2 and table paths agree
 * with each other on every length and alignment and when a buffer is fed in pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "crc32c.h"

/* A fixed pseudo-random fill so failures reproduce. */
static void fill_bytes(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static void test_crc32c_matches_check_value(void **state)
{
    (void)state;
    assert_int_equal(shoal__crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(shoal__crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(shoal__crc32c(0, "", 0), 0);
    assert_int_equal(shoal__crc32c(0, NULL, 0), 0);
}

/* The iSCSI test patterns of RFC 3720, appendix B.4. */
static void test_crc32c_matches_rfc3720_patterns(void **state)
{
    uint8_t buf[32];
    (void)state;

    memset(buf, 0, sizeof(buf));
    assert_int_equal(shoal__crc32c(0, buf, 32), 0x8A9136AAu);
    assert_int_equal(shoal__crc32c_sw(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    assert_int_equal(shoal__crc32c(0, buf, 32), 0x62A8AB43u);
    assert_int_equal(shoal__crc32c_sw(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(shoal__crc32c(0, buf, 32), 0x46DD794Eu);
    assert_int_equal(shoal__crc32c_sw(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    assert_int_equal(shoal__crc32c(0, buf, 32), 0x113FDB5Cu);
    assert_int_equal(shoal__crc32c_sw(0, buf, 32), 0x113FDB5Cu);
}

static void test_crc32c_hw_and_sw_agree_on_every_length_and_alignment(void **state)
{
    static uint8_t buf[2048 + 16];
    (void)state;

    fill_bytes(buf, sizeof(buf), 42);
    for (size_t align = 0; align < 16; align++) {
        for (size_t len = 0; len <= 2048; len += (len < 80 ? 1 : 37)) {
            uint32_t hw = shoal__crc32c(0, buf + align, len);
            uint32_t sw = shoal__crc32c_sw(0, buf + align, len);
            if (hw != sw)
                fail_msg("align %zu len %zu: %08x != %08x", align, len, hw, sw);
        }
    }
}

static void test_crc32c_extends_a_finished_crc(void **state)
{
    static uint8_t buf[1000];
    (void)state;

    fill_bytes(buf, sizeof(buf), 7);
    uint32_t whole = shoal__crc32c(0, buf, sizeof(buf));
    for (size_t cut = 0; cut <= sizeof(buf); cut += 13) {
        uint32_t hw = shoal__crc32c(shoal__crc32c(0, buf, cut), buf + cut, sizeof(buf) - cut);
        uint32_t sw = shoal__crc32c_sw(shoal__crc32c_sw(0, buf, cut), buf + cut, sizeof(buf) - cut);
        assert_int_equal(hw, whole);
        assert_int_equal(sw, whole);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_matches_check_value),
        cmocka_unit_test(test_crc32c_matches_rfc3720_patterns),
        cmocka_unit_test(test_crc32c_hw_and_sw_agree_on_every_length_and_alignment),
        cmocka_unit_test(test_crc32c_extends_a_finished_crc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
