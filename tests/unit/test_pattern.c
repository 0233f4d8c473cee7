/* test_pattern.c - topic patterns (src/pattern.c): whole-name matching, Java's shorthands,
 * what is refused and why, the time bound, and agreement with glibc's regexec() on random
 * patterns of the syntax the two share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"
#include "shoal.h"
#include "util.h"

static bool matches(const char *pattern, const char *name)
{
    shoal_pattern_t *p = NULL;
    bool m;

    if (shoal__pattern_compile(pattern, &p) != 0)
        fail_msg("'%s' refused: %s", pattern, shoal_errmsg());
    m = shoal__pattern_match(p, name);
    shoal__pattern_free(p);
    return m;
}

static void refused(const char *pattern, const char *says)
{
    shoal_pattern_t *p = NULL;

    assert_int_equal(shoal__pattern_compile(pattern, &p), SHOAL_EINVAL);
    assert_null(p);
    if (!strstr(shoal_errmsg(), says))
        fail_msg("'%s': \"%s\" does not say \"%s\"", pattern, shoal_errmsg(), says);
}

/* The match is of the whole name, as Java's matches(), with its \d \w \s and (?:...). */
static void test_a_pattern_matches_whole_names_only(void **state)
{
    (void)state;
    assert_true(matches("orders\\..*", "orders.eu"));
    assert_false(matches("orders\\..*", "orders"));
    assert_false(matches("orders\\..*", "old.orders.eu"));
    assert_false(matches("orders\\.[a-z]+", "orders.eu-2"));
    assert_true(matches("a|ab", "ab"));
    assert_false(matches("a|ab", "abc"));
    assert_true(matches("^orders$", "orders"));
    assert_true(matches("logs-\\d{4}", "logs-2026"));
    assert_false(matches("logs-\\d{4}", "logs-20261"));
    assert_false(matches("logs-\\d{4}", "logs-202x"));
    assert_true(matches("logs-[0-9]{2,}", "logs-20261"));
    assert_false(matches("logs-[0-9]{2,}", "logs-2"));
    assert_true(matches("(?:eu|us)-\\w+", "eu-west_1"));
    assert_false(matches("(?:eu|us)-\\w+", "eu-west.1"));
    assert_true(matches("[^.]+\\.v\\d+", "orders.v12"));
    assert_false(matches("[^.]+\\.v\\d+", "a.b.v12"));
    assert_true(matches("a.*?b", "axxb")); /* lazy: the same names */
    assert_true(matches("x{0}y", "y"));
    assert_true(matches("[]a]+", "]a]"));
    assert_true(matches("[a-]+", "a-a"));
    assert_true(matches("\\D\\W\\S", "x.y"));
    assert_false(matches("\\D", "7"));
}

static void test_what_a_pattern_may_not_be_is_refused_with_why(void **state)
{
    char big[SHOAL_TOPIC_PATTERN_MAX + 2];
    shoal_pattern_t *p;

    (void)state;
    refused("", "1 to 1024 bytes, not 0");
    assert_int_equal(shoal__pattern_compile(NULL, &p), SHOAL_EINVAL);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    refused(big, "1 to 1024 bytes, not 1025");
    big[SHOAL_TOPIC_PATTERN_MAX] = '\0';
    refused(big, "more than 256 characters and classes");
    refused("(x+)\\1", "back-references are not supported (at offset 5)");
    refused("a\\b", "only \\d \\w \\s \\D \\W \\S");
    refused("(?i)a", "only (?:...)");
    refused("(?=a)a", "only (?:...)");
    refused("[[:alpha:]]", "a '[' inside [...]");
    refused("[a-z&&[^b]]", "'&&' inside [...]");
    refused("[z-a]", "a range's end comes before its start");
    refused("[ab", "a '[' without its ']'");
    refused("[a\\", "a '[' without its ']'");
    refused("[\\1]", "inside [...] only \\d \\w \\s");
    refused("(ab", "a '(' without its ')'");
    refused("ab)", "a ')' without its '('");
    refused("*a", "a repetition of nothing");
    refused("a**", "a repetition of a repetition");
    refused("a*+", "possessive quantifiers are not supported");
    refused("a{2,1}", "n below m");
    refused("a{1001}", "above 1000");
    refused("a{x}", "needs numbers");
    refused("a{2", "without its '}'");
    refused("a^b", "'^' and '$' are allowed only at the start and the end");
    refused("a\\", "a '\\' at the end");
    refused("t\t", "control character");
    refused("(((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))", "32 deep");
    refused("((){100}){1000}", "too much repetition");
}

/* Patterns that took glibc's regex seconds to compile or to match one name (and held
 * shoald that long) are refused, or compile and match a 249-byte name as any other: no
 * clock here, a blow-up would hang the test until the runner's timeout. */
static void test_nested_repetition_is_refused_or_matched_like_any_pattern(void **state)
{
    static const struct {
        const char *pattern;
        bool refused, matches; /* matches the name of 249 x's */
    } cases[] = {
        {"(.{0,40}){0,40}", true, false},
        {"((.{0,12}){0,12}){0,12}", true, false},
        {"(((.{0,12}){0,12}){0,12}){0,12}", true, false},
        {".{0,249}", false, true},
        {"(.*x){12}", false, true},
        {"((a*)*)*b", false, false},
        {"(x+x+)+y", false, false},
        {"(.{1,30}){1,8}", false, false}, /* 240 at most */
    };
    char name[SHOAL_TOPIC_NAME_MAX + 1];

    (void)state;
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        shoal_pattern_t *p = NULL;
        if (cases[i].refused) {
            refused(cases[i].pattern, "more than 256 characters and classes");
            continue;
        }
        assert_int_equal(shoal__pattern_compile(cases[i].pattern, &p), 0);
        for (int k = 0; k < 1000; k++)
            assert_int_equal(shoal__pattern_match(p, name), cases[i].matches);
        shoal__pattern_free(p);
    }
}

/* ------------------------------------------------------------------ against glibc */

static unsigned rnd(unsigned *seed, unsigned n)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) % n;
}

/* A random pattern over a and b in the syntax both sides read the same. */
static void gen(unsigned *seed, char *out, size_t cap, int depth)
{
    static const char *const atoms[] = {"a", "b", ".", "[ab]", "[^a]", "\\."};
    static const char *const quants[] = {"", "", "", "*", "+", "?", "{2}", "{0,2}", "{1,}"};
    size_t used = strlen(out);
    int parts = 1 + (int)rnd(seed, 3);

    for (int i = 0; i < parts && used + 40 < cap; i++) {
        if (depth < 3 && rnd(seed, 4) == 0) {
            strcat(out, "(");
            gen(seed, out, cap, depth + 1);
            if (rnd(seed, 2)) {
                strcat(out, "|");
                gen(seed, out, cap, depth + 1);
            }
            strcat(out, ")");
        } else {
            strcat(out, atoms[rnd(seed, 6)]);
        }
        strcat(out, quants[rnd(seed, 9)]);
        used = strlen(out);
    }
}

static void test_random_patterns_match_as_glibc_regexec_says(void **state)
{
    unsigned seed = 20261208;
    int compared = 0;

    (void)state;
    for (int i = 0; i < 3000; i++) {
        char pat[256] = "", anchored[300], name[8];
        shoal_pattern_t *p;
        regex_t re;

        gen(&seed, pat, sizeof(pat) - 40, 0);
        snprintf(anchored, sizeof(anchored), "^(%s)$", pat);
        if (regcomp(&re, anchored, REG_EXTENDED | REG_NOSUB) != 0)
            continue;
        if (shoal__pattern_compile(pat, &p) != 0) {
            regfree(&re);
            if (strstr(shoal_errmsg(), "more than 256"))
                continue;
            fail_msg("'%s' refused: %s", pat, shoal_errmsg());
        }
        for (int k = 0; k < 30; k++) {
            size_t len = 1 + rnd(&seed, 6);
            for (size_t c = 0; c < len; c++)
                name[c] = "ab."[rnd(&seed, 3)];
            name[len] = '\0';
            if (shoal__pattern_match(p, name) != (regexec(&re, name, 0, NULL, 0) == 0))
                fail_msg("'%s' on '%s': we say %d, regexec the other", pat, name,
                         shoal__pattern_match(p, name));
            compared++;
        }
        shoal__pattern_free(p);
        regfree(&re);
    }
    assert_true(compared > 60000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_pattern_matches_whole_names_only),
        cmocka_unit_test(test_what_a_pattern_may_not_be_is_refused_with_why),
        cmocka_unit_test(test_nested_repetition_is_refused_or_matched_like_any_pattern),
        cmocka_unit_test(test_random_patterns_match_as_glibc_regexec_says),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
