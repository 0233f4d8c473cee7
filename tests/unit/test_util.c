/* test_util.c - error table, allocation hook, byte order helpers, the millisecond clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "util.h"

static void test_error_codes_have_names_and_messages(void **state)
{
    (void)state;
    assert_string_equal(shoal_err_name(SHOAL_ENOTOPIC), "SHOAL_ENOTOPIC");
    assert_string_equal(shoal_strerror(SHOAL_ENOTOPIC), "no such topic");
    assert_string_equal(shoal_err_name(SHOAL_AGAIN), "SHOAL_AGAIN");
    assert_string_equal(shoal_err_name(-ENOENT), "ENOENT");
    assert_string_equal(shoal_err_name(0), "OK");
    assert_true(SHOAL_EIO < -4096);
    assert_string_equal(shoal_strerror(-999999), "unknown error");
}

static void test_alloc_fails_exactly_the_nth_call(void **state)
{
    (void)state;
    shoal__alloc_fail_after(2);
    void *a = shoal__malloc(8);
    void *b = shoal__malloc(8);
    void *c = shoal__malloc(8);
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c);
    shoal__free(a);
    shoal__free(c);
}

static void test_big_endian_round_trip(void **state)
{
    uint8_t b[8];
    (void)state;
    shoal__put_be64(b, 0x0102030405060708ull);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[7], 8);
    assert_true(shoal__get_be64(b) == 0x0102030405060708ull);
    shoal__put_be32(b, 0xdeadbeef);
    assert_true(shoal__get_be32(b) == 0xdeadbeef);
}

static void test_futex_wait_returns_when_value_differs(void **state)
{
    _Atomic uint32_t w = 5;
    (void)state;
    assert_int_equal(shoal__futex_wait(&w, 4, 1000), 0);
    assert_int_equal(shoal__futex_wait(&w, 5, 10), -ETIMEDOUT);
}

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* shoal__now_ms() answers from the TSC within a millisecond once it has measured the tick
 * rate (after 10 ms): it must still say what CLOCK_REALTIME says, read just before and
 * just after, across many millisecond boundaries. The loop counts the boundaries it saw
 * rather than running for a fixed time, so a test process descheduled for a while (under
 * the sanitizers, beside other tests) still crosses 100 of them. */
static void test_now_ms_agrees_with_the_realtime_clock(void **state)
{
    int64_t start = realtime_ms(), boundaries = 0, last = start;
    (void)state;
    while (boundaries < 100 && realtime_ms() < start + 10000) {
        int64_t before = realtime_ms(), now = shoal__now_ms(), after = realtime_ms();
        if (now < before || now > after)
            fail_msg("shoal__now_ms() said %lld between clock reads %lld and %lld", (long long)now,
                     (long long)before, (long long)after);
        boundaries += before != last;
        last = before;
    }
    assert_true(boundaries >= 100);
}

/* Sizes in messages, exact and readable: a small tmpfs's free space was "0 MiB", and whole
 * MiB made a refusal read "needs 1 MiB, more than the 1 MiB left" (an audit). */
static void test_size_text_is_exact_and_readable(void **state)
{
    char buf[SHOAL_SIZE_TEXT_BYTES];
    (void)state;
    assert_string_equal(shoal__size_text(buf, 196 << 10), "196 KiB");
    assert_string_equal(shoal__size_text(buf, (1 << 20) - 1), "1023 KiB 1023 bytes");
    assert_string_equal(shoal__size_text(buf, 1 << 20), "1 MiB");
    assert_string_equal(shoal__size_text(buf, (3 << 20) + (256 << 10)), "3 MiB 256 KiB");
    assert_string_equal(shoal__size_text(buf, 65536ull << 20), "65536 MiB");
    assert_string_equal(shoal__size_text(buf, 0), "0 bytes");
    assert_string_equal(shoal__size_text(buf, 1), "1 byte");
    assert_string_equal(shoal__size_text(buf, UINT64_MAX),
                        "17592186044415 MiB 1023 KiB 1023 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_codes_have_names_and_messages),
        cmocka_unit_test(test_alloc_fails_exactly_the_nth_call),
        cmocka_unit_test(test_big_endian_round_trip),
        cmocka_unit_test(test_futex_wait_returns_when_value_differs),
        cmocka_unit_test(test_now_ms_agrees_with_the_realtime_clock),
        cmocka_unit_test(test_size_text_is_exact_and_readable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
