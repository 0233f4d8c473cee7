/* test_log.c - the limiter of warnings that clients can cause at will: the first few of a
 * window are logged, the rest counted, and the first line logged after them says how many
 * were left out; and a message is one line, whatever text from clients it quotes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* A client's text with a newline forged log lines (under systemd, a journal entry of any
 * priority), and one with an escape sequence reached an admin's terminal (an audit): each
 * control character is logged as '?', and the line ends once. */
static void test_a_message_is_one_line_without_control_characters(void **state)
{
    char path[] = "/tmp/shoal-test-log-XXXXXX", got[256] = {0};
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    FILE *f;
    (void)state;

    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    log_set_level(LOG_INFO);
    log_info("assignor %s chosen", "r\n<2> crit: forged\x1b]0;title\x07\x7f");
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    assert_non_null(f = fdopen(fd, "r"));
    rewind(f);
    assert_true(fread(got, 1, sizeof(got) - 1, f) > 0);
    fclose(f);
    unlink(path);
    assert_non_null(strstr(got, "assignor r?<2> crit: forged?]0;title?? chosen\n"));
    assert_ptr_equal(strchr(got, '\n'), got + strlen(got) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_limit_passes_a_burst_per_window_then_counts_the_rest),
        cmocka_unit_test(test_log_limit_of_one_logs_once_per_window),
        cmocka_unit_test(test_a_message_is_one_line_without_control_characters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
