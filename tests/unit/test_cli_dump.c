/* test_cli_dump.c - `shoal dump`: the .log, .index and .timeindex dumps and their checks, on
 * a segment built from Kafka's own batches (renumbered with increasing base offsets) and
 * its index written by index_writer_*; damaged copies of it (a flipped bit, a torn tail, a
 * bad header, wrong index entries) and random garbage, which must never crash it.
 *
 * The command lives in the tool (src/cli), not in libshoal, so dump.c is compiled in here
 * and dump_file() is called with memory streams; args.c comes along for cli_dump()'s
 * option parsing. One test also runs the built `shoal` binary to check the exit statuses
 * of the registered subcommand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"

#include "../../src/cli/args.c"
#include "../../src/cli/dump.c"

#define MAX_BATCHES 16
#define BASE        100

static const char *const kafka_files[] = {
    "single-keyed.bin", "null-key.bin",       "tombstone.bin", "empty-value.bin",
    "headers.bin",      "multi-10.bin",       "utf8.bin",      "idempotent.bin",
    "binary-4k.bin",    "many-small-200.bin", "gzip-5.bin",
};
#define GZIP_BATCH (SHOAL_ARRAY_LEN(kafka_files) - 1)

/* A segment on disk and, per batch, what the tests expect of it. */
typedef struct fixture {
    char dir[512];
    char log[1024];
    char index[1024];
    char timeindex[1024];
    uint8_t *data;
    size_t len;
    size_t n;
    uint64_t pos[MAX_BATCHES + 1];
    int64_t first[MAX_BATCHES];
    int64_t last[MAX_BATCHES];
    uint32_t crc[MAX_BATCHES];
} fixture_t;

/* ------------------------------------------------------------------ fixtures */

/* Append one Kafka batch renumbered to follow the previous one; expectations come from the
 * raw header bytes, independently of record_batch_parse(). */
static void fixture_append(fixture_t *fx, const char *file)
{
    char path[4096], rel[256];
    int64_t next = fx->n ? fx->last[fx->n - 1] + 1 : BASE;
    size_t len = 0;
    uint8_t *b;

    snprintf(rel, sizeof(rel), "kafka-record-batch-v2/%s", file);
    harness_testdata(path, sizeof(path), rel);
    b = harness_read_file(path, &len);
    assert_non_null(b);
    record_batch_set_base_offset(b, next);
    fx->data = realloc(fx->data, fx->len + len);
    assert_non_null(fx->data);
    memcpy(fx->data + fx->len, b, len);
    fx->pos[fx->n] = fx->len;
    fx->first[fx->n] = next;
    fx->last[fx->n] = next + (int32_t)shoal__get_be32(b + 23);
    fx->crc[fx->n] = shoal__get_be32(b + 17);
    fx->len += len;
    fx->n++;
    fx->pos[fx->n] = fx->len;
    free(b);
}

/* Write the log and, through index_writer_*, its .index and .timeindex. */
static void fixture_write(fixture_t *fx)
{
    index_writer_t w;
    record_batch_header_t h;

    harness_write_file(fx->log, fx->data, fx->len);
    assert_int_equal(index_writer_open(&w, fx->dir, BASE), 0);
    for (size_t i = 0; i < fx->n; i++) {
        assert_int_equal(record_batch_parse(fx->data + fx->pos[i], fx->len - fx->pos[i], &h), 0);
        assert_int_equal(index_writer_add(&w, fx->pos[i], &h), 0);
    }
    index_writer_close(&w);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    harness_tmpdir(fx->dir, sizeof(fx->dir), "dump");
    assert_int_equal(segment_path(fx->log, sizeof(fx->log), fx->dir, BASE, ".log"), 0);
    assert_int_equal(segment_path(fx->index, sizeof(fx->index), fx->dir, BASE, ".index"), 0);
    assert_int_equal(
        segment_path(fx->timeindex, sizeof(fx->timeindex), fx->dir, BASE, ".timeindex"), 0);
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(kafka_files); i++)
        fixture_append(fx, kafka_files[i]);
    fixture_write(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;

    harness_rmrf(fx->dir);
    free(fx->data);
    free(fx);
    return 0;
}

/* ------------------------------------------------------------------ running a dump */

typedef struct dump_result {
    int rc;
    char *out;
    char *err;
} dump_result_t;

static dump_result_t run_dump(const char *path, bool verify, bool print_data, uint64_t max)
{
    dump_opts_t o = {.verify = verify, .print_data = print_data, .max = max};
    dump_result_t r = {0};
    size_t out_len = 0, err_len = 0;
    FILE *out = open_memstream(&r.out, &out_len);
    FILE *err = open_memstream(&r.err, &err_len);

    assert_non_null(out);
    assert_non_null(err);
    r.rc = dump_file(out, err, path, &o);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(fclose(err), 0);
    return r;
}

static void dump_result_free(dump_result_t *r)
{
    free(r->out);
    free(r->err);
}

/* The dump's line that starts with prefix, or fail. */
static const char *line_starting(const char *text, const char *prefix)
{
    size_t k = strlen(prefix);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, k) == 0)
            return p;
    fail_msg("no line starting with '%s' in:\n%s", prefix, text);
    return NULL;
}

static bool line_contains(const char *line, const char *needle)
{
    const char *end = strchr(line, '\n');
    const char *hit = strstr(line, needle);

    return hit && (!end || hit < end);
}

static void assert_line_contains(const char *line, const char *needle)
{
    if (!line_contains(line, needle)) {
        const char *end = strchr(line, '\n');
        fail_msg("'%s' not in line: %.*s", needle, end ? (int)(end - line) : (int)strlen(line),
                 line);
    }
}

static const char *batch_line(const fixture_t *fx, const char *out, size_t i)
{
    char prefix[128];

    snprintf(prefix, sizeof(prefix), "baseOffset: %" PRId64 " lastOffset: %" PRId64 " ",
             fx->first[i], fx->last[i]);
    return line_starting(out, prefix);
}

static void rewrite_log(const fixture_t *fx, const uint8_t *data, size_t len)
{
    harness_write_file(fx->log, data, len);
}

/* ------------------------------------------------------------------ .log */

static void test_dump_log_prints_each_batch_with_offsets_position_and_crc(void **state)
{
    fixture_t *fx = *state;
    dump_result_t r = run_dump(fx->log, true, false, DUMP_NO_MAX);
    char want[256];

    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    assert_non_null(strstr(r.out, "segment base offset: 100 (from the file name)"));
    for (size_t i = 0; i < fx->n; i++) {
        const char *line = batch_line(fx, r.out, i);
        snprintf(want, sizeof(want),
                 "position: %" PRIu64 " size: %" PRIu64 " crc: 0x%08" PRIx32
                 " computed: 0x%08" PRIx32 " valid magic: 2",
                 fx->pos[i], fx->pos[i + 1] - fx->pos[i], fx->crc[i], fx->crc[i]);
        assert_line_contains(line, want);
    }
    assert_line_contains(batch_line(fx, r.out, 7), "producerId: 4242 producerEpoch: 3 "
                                                   "baseSequence: 17");
    snprintf(want, sizeof(want),
             "summary: batches: %zu records: 224 bytes: %zu of %zu firstOffset: 100 "
             "lastOffset: %" PRId64 " minTimestamp: 1700000000000 maxTimestamp: 1700000007000 "
             "problems: 0\n",
             fx->n, fx->len, fx->len, fx->last[fx->n - 1]);
    assert_string_equal(line_starting(r.out, "summary:"), want);
    assert_null(strstr(r.out, "| offset:"));
    dump_result_free(&r);
}

static void test_dump_log_print_data_shows_records_and_leaves_gzip_compressed(void **state)
{
    fixture_t *fx = *state;
    dump_result_t r = run_dump(fx->log, true, true, DUMP_NO_MAX);

    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "| offset: 100 timestamp: 1700000000000 key: \"user-42\" "
                                  "value: \"hello\" headers: []\n"));
    assert_non_null(strstr(r.out, "| offset: 101 timestamp: 1700000000123 key: null "
                                  "value: \"no key here\""));
    assert_non_null(strstr(r.out, "| offset: 102 timestamp: 1700000000500 key: \"gone\" "
                                  "value: null"));
    assert_non_null(strstr(r.out, "key: \"k\" value: \"\" headers: []"));
    assert_non_null(strstr(r.out, "headers: [\"trace-id\"=\"abc123\", "
                                  "\"content-type\"=\"text/plain\", \"empty\"=\"\"]"));
    assert_non_null(strstr(r.out, "key: \"ключ\""));
    assert_non_null(strstr(r.out, "| offset: 118 timestamp: 1700000003000 key: 0xa600"));
    assert_line_contains(batch_line(fx, r.out, GZIP_BATCH), "compression: gzip");
    assert_non_null(strstr(r.out, "| 5 records compressed with gzip: not decoded\n"));
    dump_result_free(&r);
}

static void test_dump_log_flipped_bit_is_invalid_and_fails_verify(void **state)
{
    fixture_t *fx = *state;
    uint8_t *copy = malloc(fx->len);
    dump_result_t r;
    char want[128];

    memcpy(copy, fx->data, fx->len);
    copy[fx->pos[4] + 70] ^= 0x10; /* inside the records of headers.bin */
    rewrite_log(fx, copy, fx->len);

    r = run_dump(fx->log, false, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 0); /* without --verify a readable file is status 0 */
    assert_string_equal(r.err, "");
    assert_line_contains(batch_line(fx, r.out, 4), "INVALID");
    assert_line_contains(batch_line(fx, r.out, 3), " valid ");
    assert_line_contains(batch_line(fx, r.out, 5), " valid ");
    assert_line_contains(line_starting(r.out, "summary:"), "problems: 1");
    dump_result_free(&r);

    r = run_dump(fx->log, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    snprintf(want, sizeof(want), "batch at byte %" PRIu64 ": CRC 0x%08" PRIx32 " stored",
             fx->pos[4], fx->crc[4]);
    assert_non_null(strstr(r.err, want));
    assert_non_null(strstr(r.err, "1 problem found"));
    dump_result_free(&r);
    free(copy);
}

static void test_dump_log_reports_torn_tail_with_its_position(void **state)
{
    fixture_t *fx = *state;
    size_t cut = fx->pos[8] + 100; /* inside binary-4k.bin */
    dump_result_t r;
    char want[160];

    rewrite_log(fx, fx->data, cut);
    r = run_dump(fx->log, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    snprintf(want, sizeof(want),
             "stopped at byte %" PRIu64 " of %zu: torn tail: torn batch at byte %" PRIu64,
             fx->pos[8], cut, fx->pos[8]);
    assert_non_null(strstr(r.out, want));
    assert_non_null(strstr(r.err, "torn tail"));
    assert_line_contains(line_starting(r.out, "summary:"), "batches: 8 ");
    dump_result_free(&r);

    /* Cut inside a header: still torn, not corrupt. */
    rewrite_log(fx, fx->data, fx->pos[2] + 30);
    r = run_dump(fx->log, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "torn tail: torn batch header"));
    dump_result_free(&r);
}

static void test_dump_log_reports_corrupt_header_as_corruption(void **state)
{
    fixture_t *fx = *state;
    uint8_t *copy = malloc(fx->len);
    dump_result_t r;
    char want[160];

    memcpy(copy, fx->data, fx->len);
    copy[fx->pos[6] + 16] = 7; /* magic of utf8.bin */
    rewrite_log(fx, copy, fx->len);
    r = run_dump(fx->log, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    snprintf(want, sizeof(want), "stopped at byte %" PRIu64 " of %zu: corrupt: ", fx->pos[6],
             fx->len);
    assert_non_null(strstr(r.out, want));
    assert_non_null(strstr(r.out, "magic 7"));
    assert_null(strstr(r.out, "torn"));
    assert_line_contains(line_starting(r.out, "summary:"), "batches: 6 ");
    dump_result_free(&r);
    free(copy);
}

/* The file ends inside the batch at pos, whose length field says len: a torn tail when some
 * batch could be that long, else corruption (want is in the output either way). */
static void expect_stop_on_length(fixture_t *fx, size_t pos, uint32_t len, const char *want)
{
    uint8_t *copy = malloc(fx->len);
    dump_result_t r;

    memcpy(copy, fx->data, fx->len);
    shoal__put_be32(copy + pos + 8, len);
    rewrite_log(fx, copy, fx->len);
    r = run_dump(fx->log, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    if (!strstr(r.out, want))
        fail_msg("no \"%s\" in:\n%s", want, r.out);
    dump_result_free(&r);
    free(copy);
}

/* A length no batch can have is corruption, not a torn tail: no batch is larger than the
 * largest segment (1 GiB), and none of one record larger than the largest
 * max.message.bytes (512 MiB), whatever the file's size. */
static void test_dump_log_reports_an_impossible_batch_length_as_corruption(void **state)
{
    fixture_t *fx = *state;
    char want[160];

    snprintf(want, sizeof(want),
             "stopped at byte %" PRIu64 " of %zu: corrupt: batch at byte %" PRIu64
             " claims 1000000012 bytes",
             fx->pos[0], fx->len, fx->pos[0]);
    expect_stop_on_length(fx, fx->pos[0], 1000000000, want); /* single-keyed.bin */
    snprintf(want, sizeof(want), "stopped at byte %" PRIu64 " of %zu: torn tail: ", fx->pos[5],
             fx->len);
    expect_stop_on_length(fx, fx->pos[5], 1000000000, want); /* multi-10.bin: could be */
    snprintf(want, sizeof(want), "corrupt: batch at byte %" PRIu64 " claims %" PRIu64 " bytes",
             fx->pos[5], (uint64_t)INT32_MAX + 12);
    expect_stop_on_length(fx, fx->pos[5], INT32_MAX, want);
    /* The largest single-record batch that can be is still a torn tail. */
    snprintf(want, sizeof(want), "stopped at byte %" PRIu64 " of %zu: torn tail: ", fx->pos[0],
             fx->len);
    expect_stop_on_length(fx, fx->pos[0], (1u << 29) - 12, want);
}

static void test_dump_log_max_limits_printing_not_checking(void **state)
{
    fixture_t *fx = *state;
    dump_result_t r = run_dump(fx->log, true, true, 2);

    assert_int_equal(r.rc, 0);
    batch_line(fx, r.out, 0);
    batch_line(fx, r.out, 1);
    assert_null(strstr(r.out, "baseOffset: 102 "));
    assert_null(strstr(r.out, "| offset: 102 "));
    assert_non_null(strstr(r.out, "(9 more batches not printed: --max)"));
    assert_line_contains(line_starting(r.out, "summary:"), "batches: 11 records: 224 ");
    dump_result_free(&r);
}

static void test_dump_log_takes_base_from_first_batch_without_segment_name(void **state)
{
    fixture_t *fx = *state;
    char path[1200];
    dump_result_t r;

    snprintf(path, sizeof(path), "%s/copy.log", fx->dir);
    harness_write_file(path, fx->data, fx->len);
    r = run_dump(path, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "segment base offset: 100 (from the first batch)"));
    dump_result_free(&r);

    /* a torn first batch whose header is whole still names the base */
    harness_write_file(path, fx->data, RECORD_BATCH_HEADER_BYTES + 1);
    r = run_dump(path, false, false, DUMP_NO_MAX);
    assert_non_null(strstr(r.out, "segment base offset: 100 (from the first batch)"));
    dump_result_free(&r);

    /* garbage names none: its first 8 bytes are no offset */
    harness_write_file(path, "not a kafka record batch at all, no", 35);
    r = run_dump(path, false, false, DUMP_NO_MAX);
    assert_non_null(strstr(r.out, "segment base offset: 0 (taken as 0:"));
    dump_result_free(&r);

    harness_write_file(path, "", 0);
    r = run_dump(path, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "summary: batches: 0 records: 0 bytes: 0 of 0 problems: 0"));
    dump_result_free(&r);
}

/* Append to buf (at *len) a batch at base holding values, one record per offset. */
static void append_batch(uint8_t *buf, size_t cap, size_t *len, int64_t base,
                         const char *const *values, size_t n)
{
    shoal_message_t msgs[4] = {{0}};
    record_batch_fields_t f;
    size_t got = 0;

    assert_true(n <= SHOAL_ARRAY_LEN(msgs));
    for (size_t i = 0; i < n; i++)
        msgs[i] = (shoal_message_t){.value = values[i], .value_len = strlen(values[i])};
    record_batch_fields_init(&f);
    f.base_offset = base;
    assert_int_equal(record_batch_encode(buf + *len, cap - *len, &f, msgs, n, 1700000000000, &got),
                     0);
    *len += got;
}

/* Append to buf (at *len) an empty batch covering base..base + last_delta, as compaction
 * leaves one when it drops every record of a batch. */
static void append_empty_batch(uint8_t *buf, size_t cap, size_t *len, int64_t base,
                               int32_t last_delta)
{
    record_batch_fields_t f;
    int32_t no_delta = 0;
    size_t got = 0;

    record_batch_fields_init(&f);
    f.base_offset = base;
    assert_int_equal(record_batch_encode_with_offsets(buf + *len, cap - *len, &f, NULL, &no_delta,
                                                      0, last_delta, 1700000001000, &got),
                     0);
    *len += got;
}

/* Assert that the line after the one starting with prefix starts with want (a want ending
 * in a newline is the whole line). */
static void assert_next_line(const char *text, const char *prefix, const char *want)
{
    const char *next = strchr(line_starting(text, prefix), '\n');

    assert_non_null(next);
    if (strncmp(next + 1, want, strlen(want)) != 0)
        fail_msg("after '%s' expected '%s' in:\n%s", prefix, want, text);
}

static size_t count_of(const char *text, const char *needle)
{
    size_t n = 0;

    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* A compacted segment: 100..101, empty 102..104, 105, empty 106 (the last batch, which
 * compaction keeps even when empty). Each empty batch says which offsets it covers, the
 * summary counts them, and none is a problem under --verify. */
static void test_dump_log_explains_empty_batches_left_by_compaction(void **state)
{
    fixture_t *fx = *state;
    static const char *const two[] = {"a", "b"}, *const one[] = {"c"};
    uint8_t buf[1024];
    size_t len = 0, empty_at;
    dump_result_t r;

    append_batch(buf, sizeof(buf), &len, 100, two, 2);
    empty_at = len;
    append_empty_batch(buf, sizeof(buf), &len, 102, 2);
    append_batch(buf, sizeof(buf), &len, 105, one, 1);
    append_empty_batch(buf, sizeof(buf), &len, 106, 0);
    rewrite_log(fx, buf, len);

    r = run_dump(fx->log, true, true, DUMP_NO_MAX);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    assert_line_contains(line_starting(r.out, "baseOffset: 102 lastOffset: 104 "), "count: 0 ");
    assert_next_line(r.out, "baseOffset: 102 lastOffset: 104 ",
                     "(empty: compaction removed every record of offsets 102..104)\n");
    assert_next_line(r.out, "baseOffset: 106 lastOffset: 106 ",
                     "(empty: compaction removed every record of offset 106)\n");
    assert_int_equal(count_of(r.out, "(empty:"), 2);
    assert_next_line(r.out, "| offset: 101 ", "baseOffset: 102 ");
    assert_next_line(r.out, "(2 empty batches left by compaction)\n",
                     "summary: batches: 4 records: 3 ");
    assert_line_contains(line_starting(r.out, "summary:"), "lastOffset: 106 ");
    assert_line_contains(line_starting(r.out, "summary:"), "problems: 0\n");
    dump_result_free(&r);

    /* --max limits the notes with the batches, not the summary's count. */
    r = run_dump(fx->log, false, false, 1);
    assert_int_equal(r.rc, 0);
    assert_null(strstr(r.out, "(empty:"));
    assert_non_null(strstr(r.out, "(2 empty batches left by compaction)\nsummary: "));
    dump_result_free(&r);

    /* A damaged batch is not explained away: the first empty one, its timestamp changed. */
    buf[empty_at + 30] ^= 1;
    rewrite_log(fx, buf, len);
    r = run_dump(fx->log, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    assert_line_contains(line_starting(r.out, "baseOffset: 102 "), "INVALID");
    assert_int_equal(count_of(r.out, "(empty:"), 1);
    assert_non_null(strstr(r.out, "(1 empty batch left by compaction)\nsummary: "));
    dump_result_free(&r);
}

/* ------------------------------------------------------------------ .index, .timeindex */

static void test_dump_index_entries_point_at_their_batches(void **state)
{
    fixture_t *fx = *state;
    dump_result_t r = run_dump(fx->index, true, false, DUMP_NO_MAX);
    char want[160];

    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    /* The writer indexes the first batch, then one at least 4096 bytes further each time. */
    assert_non_null(strstr(r.out, "relativeOffset: 0 offset: 100 position: 0 ok\n"));
    snprintf(want, sizeof(want),
             "relativeOffset: %" PRId64 " offset: %" PRId64 " position: %" PRIu64 " ok\n",
             fx->last[9] - BASE, fx->last[9], fx->pos[9]);
    assert_non_null(strstr(r.out, want));
    assert_non_null(strstr(r.out, "summary: entries: 3 problems: 0"));
    dump_result_free(&r);
}

static void test_dump_index_reports_a_corrupted_entry(void **state)
{
    fixture_t *fx = *state;
    size_t len = 0;
    uint8_t *idx = harness_read_file(fx->index, &len);
    dump_result_t r;
    char want[160];

    assert_int_equal(len, 3 * SEGMENT_INDEX_ENTRY_BYTES);
    shoal__put_be32(idx + 12, (uint32_t)fx->pos[9] + 3);            /* entry 1: inside its batch */
    shoal__put_be32(idx + 16, (uint32_t)(fx->last[10] - BASE - 1)); /* entry 2: wrong offset */
    harness_write_file(fx->index, idx, len);

    r = run_dump(fx->index, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "position: 0 ok\n"));
    snprintf(want, sizeof(want),
             "position: %" PRIu64 " MISMATCH: position is inside the batch at byte %" PRIu64,
             fx->pos[9] + 3, fx->pos[9]);
    assert_non_null(strstr(r.out, want));
    snprintf(want, sizeof(want), "MISMATCH: the batch at byte %" PRIu64 " has last offset %" PRId64,
             fx->pos[10], fx->last[10]);
    assert_non_null(strstr(r.out, want));
    assert_non_null(strstr(r.err, "entry 1 "));
    assert_non_null(strstr(r.err, "entry 2 "));
    assert_non_null(strstr(r.err, "2 problems found"));
    dump_result_free(&r);

    /* A torn entry and an entry past the log. */
    shoal__put_be32(idx + 12, (uint32_t)fx->len + 10);
    harness_write_file(fx->index, idx, len - 3);
    r = run_dump(fx->index, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "MISMATCH: position is past the log's"));
    assert_non_null(strstr(r.out, "torn entry: 5 bytes at byte 16"));
    dump_result_free(&r);
    free(idx);
}

static void test_dump_index_without_log_prints_entries_unchecked(void **state)
{
    fixture_t *fx = *state;
    dump_result_t r;

    assert_int_equal(unlink(fx->log), 0);
    r = run_dump(fx->index, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "entries are not checked against the log"));
    assert_non_null(strstr(r.out, "relativeOffset: 0 offset: 100 position: 0\n"));
    dump_result_free(&r);
}

static void test_dump_timeindex_checks_order_and_log_range(void **state)
{
    fixture_t *fx = *state;
    size_t len = 0;
    uint8_t *ts;
    dump_result_t r = run_dump(fx->timeindex, true, false, DUMP_NO_MAX);

    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "timestamp: 1700000000000 relativeOffset: 0 offset: 100 ok\n"));
    assert_non_null(strstr(r.out, "summary: entries: 3 firstOffset: 100 "));
    dump_result_free(&r);

    ts = harness_read_file(fx->timeindex, &len);
    assert_int_equal(len, 3 * SEGMENT_TIMEINDEX_ENTRY_BYTES);
    shoal__put_be64(ts + 12, 1600000000000ULL);           /* entry 1: goes back in time */
    shoal__put_be32(ts + 32, (uint32_t)(fx->len + 1000)); /* entry 2: offset past the log */
    harness_write_file(fx->timeindex, ts, len);
    r = run_dump(fx->timeindex, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    assert_non_null(
        strstr(r.out, "MISMATCH: timestamp not above the previous entry's 1700000000000"));
    assert_non_null(strstr(r.out, "MISMATCH: offset outside the log's 100.."));
    assert_non_null(strstr(r.err, "2 problems found"));
    dump_result_free(&r);
    free(ts);
}

/* Each entry must hold the log's largest timestamp up to a batch's last offset: an
 * all-zero file, or an entry a little below the true maximum, is found out. */
static void test_dump_timeindex_checks_timestamps_against_the_log(void **state)
{
    fixture_t *fx = *state;
    uint8_t zeros[16 * SEGMENT_TIMEINDEX_ENTRY_BYTES] = {0}, *ts;
    int64_t ts1, ts2;
    size_t len = 0;
    dump_result_t r;

    ts = harness_read_file(fx->timeindex, &len);
    ts1 = (int64_t)shoal__get_be64(ts + SEGMENT_TIMEINDEX_ENTRY_BYTES);
    ts2 = (int64_t)shoal__get_be64(ts + 2 * SEGMENT_TIMEINDEX_ENTRY_BYTES);
    assert_true(ts2 - 1 > ts1);
    shoal__put_be64(ts + 2 * SEGMENT_TIMEINDEX_ENTRY_BYTES, (uint64_t)(ts2 - 1));
    harness_write_file(fx->timeindex, ts, len);
    r = run_dump(fx->timeindex, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "1 problem found"));
    assert_non_null(strstr(r.out, "MISMATCH: the log's largest timestamp up to this offset is"));
    dump_result_free(&r);
    free(ts);

    harness_write_file(fx->timeindex, zeros, sizeof(zeros));
    r = run_dump(fx->timeindex, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "16 problems found"));
    dump_result_free(&r);
}

/* Kafka's rule: an entry names the batch that first reached its timestamp. The fixture's
 * idempotent batch (offsets 116-117) reaches 1700000006000 and the binary one after it
 * (118) stays below: an entry at 118 holds the right maximum but names the wrong batch. */
static void test_dump_timeindex_checks_the_entry_names_the_batch_that_reached_it(void **state)
{
    fixture_t *fx = *state;
    uint8_t entry[SEGMENT_TIMEINDEX_ENTRY_BYTES];
    dump_result_t r;

    shoal__put_be64(entry, 1700000006000ULL);
    shoal__put_be32(entry + 8, 117 - BASE);
    harness_write_file(fx->timeindex, entry, sizeof(entry));
    r = run_dump(fx->timeindex, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 0);
    dump_result_free(&r);

    shoal__put_be32(entry + 8, 118 - BASE);
    harness_write_file(fx->timeindex, entry, sizeof(entry));
    r = run_dump(fx->timeindex, true, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "MISMATCH: an earlier batch reached this timestamp"));
    dump_result_free(&r);
}

/* ------------------------------------------------------------------ bad input */

static void test_dump_refuses_unknown_extension_and_reports_missing_file(void **state)
{
    fixture_t *fx = *state;
    char path[1200];
    dump_result_t r = run_dump("segment.txt", true, false, DUMP_NO_MAX);

    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "expected a name ending in .log, .index or .timeindex"));
    dump_result_free(&r);

    snprintf(path, sizeof(path), "%s/00000000000000000999.log", fx->dir);
    r = run_dump(path, false, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "No such file or directory"));
    assert_string_equal(r.out, "");
    dump_result_free(&r);

    snprintf(path, sizeof(path), "%s/dir.log", fx->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    r = run_dump(path, false, false, DUMP_NO_MAX);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "not a regular file"));
    dump_result_free(&r);
}

/* A FIFO has no writer to wait for: it is refused at once (the alarm ends a hang). */
static void test_dump_refuses_a_fifo_without_waiting_for_a_writer(void **state)
{
    fixture_t *fx = *state;
    char path[1200];
    dump_result_t r;

    snprintf(path, sizeof(path), "%s/fifo.log", fx->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(10);
    r = run_dump(path, false, false, DUMP_NO_MAX);
    alarm(0);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "not a regular file"));
    dump_result_free(&r);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Dump path with every option; it must end with status 0 or 1 and never crash. */
static void dump_survives(const char *path)
{
    dump_result_t r = run_dump(path, true, true, DUMP_NO_MAX);

    assert_true(r.rc == 0 || r.rc == 1);
    dump_result_free(&r);
}

static void test_dump_survives_garbage(void **state)
{
    fixture_t *fx = *state;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    uint8_t *buf = malloc(fx->len);
    char garbage[1200];

    snprintf(garbage, sizeof(garbage), "%s/garbage.log", fx->dir);
    for (size_t size = 0; size < 400; size += 7) {
        for (size_t i = 0; i < size; i++)
            buf[i] = (uint8_t)rng_next(&seed);
        harness_write_file(garbage, buf, size);
        dump_survives(garbage);
        harness_write_file(fx->index, buf, size);
        dump_survives(fx->index);
        harness_write_file(fx->timeindex, buf, size);
        dump_survives(fx->timeindex);
    }
    /* Valid batches with damage here and there: every branch past the first header. */
    for (int round = 0; round < 300; round++) {
        memcpy(buf, fx->data, fx->len);
        for (int k = 0; k < 4; k++)
            buf[rng_next(&seed) % fx->len] ^= (uint8_t)(1u << (rng_next(&seed) % 8));
        harness_write_file(fx->log, buf, fx->len - rng_next(&seed) % 64);
        dump_survives(fx->log);
    }
    free(buf);
}

/* ------------------------------------------------------------------ the command */

/* Run `$BUILD/shoal dump ARGS` and return its exit status, or -1 when the tool is missing. */
static int run_shoal(const char *args)
{
    const char *build = getenv("BUILD");
    char bin[512], cmd[4096];
    int status;

    snprintf(bin, sizeof(bin), "%s/shoal", build ? build : "build");
    if (access(bin, X_OK) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "%s dump %s >/dev/null 2>&1", bin, args);
    status = system(cmd);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_dump_command_exit_statuses(void **state)
{
    fixture_t *fx = *state;
    char args[1200];
    uint8_t *copy = malloc(fx->len);

    snprintf(args, sizeof(args), "--verify '%s'", fx->log);
    if (run_shoal(args) < 0) {
        free(copy);
        skip();
    }
    assert_int_equal(run_shoal(args), 0);
    assert_int_equal(run_shoal("--verify nowhere.bin"), 2);
    assert_int_equal(run_shoal("--max x nowhere.log"), 2);
    assert_int_equal(run_shoal("--verify /nonexistent/00000000000000000000.log"), 1);
    memcpy(copy, fx->data, fx->len);
    copy[fx->len - 1] ^= 1;
    rewrite_log(fx, copy, fx->len);
    assert_int_equal(run_shoal(args), 1);
    snprintf(args, sizeof(args), "'%s'", fx->log);
    assert_int_equal(run_shoal(args), 0);
    free(copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_dump_log_prints_each_batch_with_offsets_position_and_crc, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dump_log_print_data_shows_records_and_leaves_gzip_compressed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_log_flipped_bit_is_invalid_and_fails_verify,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_log_reports_torn_tail_with_its_position, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dump_log_reports_corrupt_header_as_corruption, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_dump_log_reports_an_impossible_batch_length_as_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_log_max_limits_printing_not_checking, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_dump_log_takes_base_from_first_batch_without_segment_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_log_explains_empty_batches_left_by_compaction,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_index_entries_point_at_their_batches, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dump_index_reports_a_corrupted_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_index_without_log_prints_entries_unchecked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dump_timeindex_checks_timestamps_against_the_log,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_timeindex_checks_order_and_log_range, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_dump_timeindex_checks_the_entry_names_the_batch_that_reached_it, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dump_refuses_unknown_extension_and_reports_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_refuses_a_fifo_without_waiting_for_a_writer,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_survives_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_command_exit_statuses, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
