/* test_pattern.c - topic patterns (src/pattern.c): what is refused, and whole-name matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "pattern.h"
#include "shoal.h"
#include "util.h"

static bool matches(const char *pattern, const char *name)
{
    regex_t re;
    bool m;

    assert_int_equal(shoal__pattern_compile(&re, pattern), 0);
    m = shoal__pattern_match(&re, name);
    regfree(&re);
    return m;
}

/* The match is of the whole name, whichever alternative POSIX tries first, and whatever
 * anchors the pattern brings itself. */
static void test_a_pattern_matches_whole_names_only(void **state)
{
    (void)state;
    assert_true(matches("orders\\..*", "orders.eu"));
    assert_false(matches("orders\\..*", "orders"));
    assert_false(matches("orders\\..*", "old.orders.eu"));
    assert_false(matches("orders\\.[a-z]+", "orders.eu-2"));
    assert_true(matches("a|ab", "ab"));
    assert_true(matches("ab|a", "ab"));
    assert_false(matches("a|ab", "abc"));
    assert_true(matches("^orders$", "orders"));
    assert_true(matches("logs-[0-9]{4}", "logs-2026"));
    assert_false(matches("logs-[0-9]{4}", "logs-20261"));
}

static void test_what_a_pattern_may_not_be_is_refused_with_why(void **state)
{
    char big[SHOAL_TOPIC_PATTERN_MAX + 2];
    regex_t re;

    (void)state;
    assert_int_equal(shoal__pattern_compile(&re, ""), SHOAL_EINVAL);
    assert_int_equal(shoal__pattern_compile(&re, NULL), SHOAL_EINVAL);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(shoal__pattern_compile(&re, big), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "1 to 1024 bytes, not 1025"));
    big[SHOAL_TOPIC_PATTERN_MAX] = '\0';
    assert_int_equal(shoal__pattern_compile(&re, big), 0);
    regfree(&re);
    assert_int_equal(shoal__pattern_compile(&re, "[a-"), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "invalid topic pattern '[a-': "));
    assert_int_equal(shoal__pattern_compile(&re, "(x+)\\1"), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "back-reference (\\1)"));
    assert_int_equal(shoal__pattern_compile(&re, "t\\D"), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "write [0-9] (or [^0-9])"));
    assert_int_equal(shoal__pattern_compile(&re, "t\t"), SHOAL_EINVAL);
    assert_true(matches("a\\\\1", "a\\1")); /* an escaped backslash, then 1 */
    assert_true(matches("a\\\\d", "a\\d"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_pattern_matches_whole_names_only),
        cmocka_unit_test(test_what_a_pattern_may_not_be_is_refused_with_why),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
