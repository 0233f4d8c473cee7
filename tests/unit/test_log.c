/* test_log.c - the limiter of warnings that clients can cause at will: the first few of a
 * window are logged, the rest counted, and the first line logged after them says how many
 * were left out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "shoald/log.h"

#define SECOND_NS 1000000000LL

static void test_log_limit_passes_a_burst_per_window_then_counts_the_rest(void **state)
{
    log_limit_t l = {.burst = 3};
    uint64_t suppressed = 99;
    int64_t t = 5 * SECOND_NS;
    (void)state;

    for (int i = 0; i < 3; i++) {
        assert_true(log_limit_pass(&l, t + i, &suppressed));
        assert_int_equal(suppressed, 0);
    }
    for (int i = 0; i < 1000; i++)
        assert_false(log_limit_pass(&l, t + SECOND_NS, &suppressed));
    /* still inside the window that began with the first line */
    assert_false(log_limit_pass(&l, t + LOG_LIMIT_WINDOW_NS - 1, &suppressed));
    /* a new window: the first line reports the 1001 left out, the next ones none */
    assert_true(log_limit_pass(&l, t + LOG_LIMIT_WINDOW_NS, &suppressed));
    assert_int_equal(suppressed, 1001);
    assert_true(log_limit_pass(&l, t + LOG_LIMIT_WINDOW_NS + 1, &suppressed));
    assert_int_equal(suppressed, 0);
}

static void test_log_limit_of_one_logs_once_per_window(void **state)
{
    log_limit_t l = {.burst = 1};
    uint64_t suppressed;
    int64_t t = 0;
    (void)state;

    assert_true(log_limit_pass(&l, t, &suppressed));
    assert_false(log_limit_pass(&l, t + 1, &suppressed));
    assert_true(log_limit_pass(&l, t + LOG_LIMIT_WINDOW_NS + 1, &suppressed));
    assert_int_equal(suppressed, 1);
    assert_false(log_limit_pass(&l, t + LOG_LIMIT_WINDOW_NS + 2, &suppressed));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_limit_passes_a_burst_per_window_then_counts_the_rest),
        cmocka_unit_test(test_log_limit_of_one_logs_once_per_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
