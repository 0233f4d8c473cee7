/* test_cli_format.c - the `shoal consume --format` renderer: every directive and escape,
 * null keys, values and header values, and the templates cli_format_check() refuses.
 *
 * The renderer lives in the tool (src/cli), not in libshoal, so it is compiled in here.
 * Records are built by hand; their headers are encoded as Kafka writes them (zigzag
 * varint key length, key, zigzag varint value length or -1, value). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cli/format.c"

static const char *null_marker; /* what render() passes */

/* Render rec through fmt into a string (freed by the caller) and return the renderer's
 * result in *rc. */
static char *render(const char *fmt, const shoal_record_t *rec, int *rc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    assert_non_null(out);
    *rc = cli_format_record(out, fmt, null_marker, rec);
    assert_int_equal(fclose(out), 0);
    return buf;
}

static void assert_renders(const char *fmt, const shoal_record_t *rec, const char *want)
{
    int rc;
    char *got = render(fmt, rec, &rc);

    assert_int_equal(rc, 0);
    assert_string_equal(got, want);
    free(got);
}

static shoal_record_t sample_record(void)
{
    shoal_record_t r = {
        .topic = "t",
        .partition = 3,
        .offset = 42,
        .timestamp_ms = 1700000000123,
        .key = "user-7",
        .key_len = 6,
        .value = "hello",
        .value_len = 5,
    };
    return r;
}

/* Two headers: a=xy and b with a null value. Zigzag: 1 -> 2, 2 -> 4, -1 -> 1. */
static const uint8_t two_headers[] = {2, 'a', 4, 'x', 'y', 2, 'b', 1};

static void test_format_default_prints_value_and_newline(void **state)
{
    shoal_record_t r = sample_record();
    (void)state;
    assert_renders(CLI_FORMAT_DEFAULT, &r, "hello\n");
}

static void test_format_prints_every_field(void **state)
{
    shoal_record_t r = sample_record();
    (void)state;
    assert_renders("%t/%p:%o %T %k=%v", &r, "t/3:42 1700000000123 user-7=hello");
}

static void test_format_expands_escapes_and_percent(void **state)
{
    shoal_record_t r = sample_record();
    (void)state;
    assert_renders("%%v\\t%v\\\\n\\n", &r, "%v\thello\\n\n");
}

static void test_format_prints_null_key_and_value_as_empty(void **state)
{
    shoal_record_t r = sample_record();
    (void)state;
    r.key = NULL;
    r.key_len = -1;
    r.value = NULL;
    r.value_len = -1;
    assert_renders("[%k][%v]", &r, "[][]");

    /* --null-marker: null prints as it, empty as nothing (they printed alike: an
     * exploratory session) */
    null_marker = "NULL";
    assert_renders("[%k][%v]", &r, "[NULL][NULL]");
    r.key = "";
    r.key_len = 0;
    assert_renders("[%k][%v]", &r, "[][NULL]");
    null_marker = NULL;
}

static void test_format_writes_binary_values_whole(void **state)
{
    shoal_record_t r = sample_record();
    char *got;
    int rc;
    (void)state;
    r.value = "a\0b";
    r.value_len = 3;
    got = render("%v", &r, &rc);
    assert_int_equal(rc, 0);
    assert_memory_equal(got, "a\0b", 3);
    free(got);
}

static void test_format_joins_headers_with_commas(void **state)
{
    shoal_record_t r = sample_record();
    (void)state;
    r.header_count = 2;
    r.headers_raw = two_headers;
    r.headers_len = sizeof(two_headers);
    assert_renders("<%h>", &r, "<a=xy,b>"); /* b's value is null: the key alone */
    r.header_count = 0;
    assert_renders("<%h>", &r, "<>");
}

/* A ',', '=' or '\\' in a header's key or value gets a '\\' before it, so that
 * `produce --parse-headers` reads the headers back as they were; an empty value keeps its
 * '='. Zigzag lengths: 1 -> 2, 3 -> 6, 0 -> 0. */
static void test_format_escapes_what_would_split_a_header(void **state)
{
    static const uint8_t odd[] = {6, 'k', '=', 'y', 6, 'a', ',', '\\', 2, 'e', 0};
    shoal_record_t r = {0};
    (void)state;

    r.header_count = 2;
    r.headers_raw = odd;
    r.headers_len = sizeof(odd);
    assert_renders("%h", &r, "k\\=y=a\\,\\\\,e=");
}

static void test_format_reports_corrupt_headers(void **state)
{
    static const uint8_t truncated[] = {2, 'a', 20, 'x'}; /* value claims 10 bytes */
    shoal_record_t r = sample_record();
    char *got;
    int rc;
    (void)state;
    r.header_count = 1;
    r.headers_raw = truncated;
    r.headers_len = sizeof(truncated);
    got = render("%h", &r, &rc);
    assert_int_equal(rc, SHOAL_ECORRUPT);
    free(got);
}

static void test_format_check_accepts_every_directive(void **state)
{
    char err[128];
    (void)state;
    assert_int_equal(cli_format_check("%t %k %v %p %o %T %h %% \\n \\t \\\\", err, sizeof(err)), 0);
    assert_int_equal(cli_format_check("", err, sizeof(err)), 0);
    assert_int_equal(cli_format_check(CLI_FORMAT_DEFAULT, err, sizeof(err)), 0);
}

static void test_format_check_refuses_unknown_and_dangling(void **state)
{
    static const char *const bad[] = {"%z", "%", "abc%", "\\", "x\\q", "%K"};
    char err[128];
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(cli_format_check(bad[i], err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
    }
    cli_format_check("a%zb", err, sizeof(err));
    assert_non_null(strstr(err, "%z"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_default_prints_value_and_newline),
        cmocka_unit_test(test_format_prints_every_field),
        cmocka_unit_test(test_format_expands_escapes_and_percent),
        cmocka_unit_test(test_format_prints_null_key_and_value_as_empty),
        cmocka_unit_test(test_format_writes_binary_values_whole),
        cmocka_unit_test(test_format_joins_headers_with_commas),
        cmocka_unit_test(test_format_escapes_what_would_split_a_header),
        cmocka_unit_test(test_format_reports_corrupt_headers),
        cmocka_unit_test(test_format_check_accepts_every_directive),
        cmocka_unit_test(test_format_check_refuses_unknown_and_dangling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
