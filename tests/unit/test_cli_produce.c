/* test_cli_produce.c - `shoal produce`'s line reader: lines split across reads come out
 * whole, the last line needs no newline, a CRLF ends one as a newline does, and the search for a
 * newline never goes over bytes it has already searched (which made one long line cost quadratic
 * time).
 *
 * produce.c is compiled in here, with args.c for what it uses of the tool; the tests fill
 * the reader's buffer themselves, as line_reader_fill() would. How produce treats lines
 * too long for the topic is tested against a daemon in tests/integ/test_cli.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cli/args.c"
#include "../../src/cli/produce.c"

#define READER_BYTES 64

/* Append text to the reader's unread bytes, as a read(2) of it would. */
static void reader_append(line_reader_t *lr, const char *text)
{
    size_t n = strlen(text);

    assert_true(lr->end + n <= lr->cap);
    memcpy(lr->buf + lr->end, text, n);
    lr->end += n;
}

static void expect_line(line_reader_t *lr, const char *want)
{
    char *line;
    size_t len;

    assert_true(line_reader_next(lr, &line, &len));
    assert_int_equal(len, strlen(want));
    assert_memory_equal(line, want, len);
}

static void test_line_reader_joins_a_line_split_across_reads(void **state)
{
    line_reader_t lr = {.buf = malloc(READER_BYTES), .cap = READER_BYTES};
    char *line;
    size_t len;

    (void)state;
    reader_append(&lr, "ab");
    assert_false(line_reader_next(&lr, &line, &len));
    reader_append(&lr, "c\nde");
    expect_line(&lr, "abc");
    assert_false(line_reader_next(&lr, &line, &len));
    reader_append(&lr, "f\n\ng");
    expect_line(&lr, "def");
    expect_line(&lr, "");
    assert_false(line_reader_next(&lr, &line, &len));
    lr.eof = true; /* the last line needs no newline */
    expect_line(&lr, "g");
    assert_false(line_reader_next(&lr, &line, &len));
    free(lr.buf);
}

/* Bytes once searched are not searched again: a newline planted behind the point the
 * search reached (only a test can put one there) is not seen, and the line ends at the
 * newline that arrives next. */
static void test_line_reader_searches_each_byte_once(void **state)
{
    line_reader_t lr = {.buf = malloc(READER_BYTES), .cap = READER_BYTES};
    char *line;
    size_t len;

    (void)state;
    reader_append(&lr, "aaaa");
    assert_false(line_reader_next(&lr, &line, &len));
    lr.buf[1] = '\n';
    reader_append(&lr, "bb\ncc\n");
    expect_line(&lr, "a\naabb");
    expect_line(&lr, "cc"); /* and the next line is searched from its start */
    free(lr.buf);
}

/* A CRLF ends a line as a newline does (Kafka's console producer reads lines so); a carriage
 * return elsewhere, or at the end of the input, is part of the record. */
static void test_line_reader_takes_crlf_as_a_line_end(void **state)
{
    line_reader_t lr = {.buf = malloc(READER_BYTES), .cap = READER_BYTES};

    (void)state;
    reader_append(&lr, "a\r\nb\rc\r\n\r\nd\r");
    expect_line(&lr, "a");
    expect_line(&lr, "b\rc");
    expect_line(&lr, "");
    lr.eof = true;
    expect_line(&lr, "d\r");
    free(lr.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_reader_joins_a_line_split_across_reads),
        cmocka_unit_test(test_line_reader_searches_each_byte_once),
        cmocka_unit_test(test_line_reader_takes_crlf_as_a_line_end),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
