/* test_segment.c - segment naming and listing, batch scan, offset lookup, recovery and the
 * index writer, on segments built from Kafka's own batches and from record_batch_encode(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "record.h"
#include "segment.h"
#include "util.h"

#define MAX_BATCHES 512
#define TS0         1700000000000LL

/* A segment's bytes in memory and, per batch, what the tests expect of it. */
typedef struct seg {
    uint8_t *data;
    size_t len;
    size_t n;
    uint64_t pos[MAX_BATCHES + 1]; /* pos[n] == len */
    int64_t first[MAX_BATCHES];
    int64_t last[MAX_BATCHES];
    int64_t max_ts[MAX_BATCHES];
    uint64_t records;
} seg_t;

/* ------------------------------------------------------------------ fixtures */

static void seg_append(seg_t *s, const uint8_t *batch, size_t len)
{
    assert_true(s->n < MAX_BATCHES);
    s->data = realloc(s->data, s->len + len);
    assert_non_null(s->data);
    memcpy(s->data + s->len, batch, len);
    /* Expectations come from the raw header fields, independently of record_batch_parse. */
    s->pos[s->n] = s->len;
    s->first[s->n] = (int64_t)shoal__get_be64(batch);
    s->last[s->n] = s->first[s->n] + (int32_t)shoal__get_be32(batch + 23);
    s->max_ts[s->n] = (int64_t)shoal__get_be64(batch + 35);
    s->records += shoal__get_be32(batch + 57);
    s->len += len;
    s->n++;
    s->pos[s->n] = s->len;
}

static void seg_free(seg_t *s)
{
    free(s->data);
    memset(s, 0, sizeof(*s));
}

static int64_t seg_next_offset(const seg_t *s)
{
    return s->last[s->n - 1] + 1;
}

static int64_t seg_max_ts(const seg_t *s)
{
    int64_t m = -1;
    for (size_t i = 0; i < s->n; i++)
        m = SHOAL_MAX(m, s->max_ts[i]);
    return m;
}

static const char *const kafka_files[] = {
    "single-keyed.bin", "null-key.bin",       "tombstone.bin", "empty-value.bin",
    "headers.bin",      "multi-10.bin",       "utf8.bin",      "idempotent.bin",
    "binary-4k.bin",    "many-small-200.bin", "gzip-5.bin",
};

/* The first nfiles of Kafka's test batches, renumbered from base so offsets increase. */
static void seg_from_kafka(seg_t *s, int64_t base, size_t nfiles)
{
    char path[4096], rel[256];
    int64_t next = base;

    assert_true(nfiles <= SHOAL_ARRAY_LEN(kafka_files));
    for (size_t i = 0; i < nfiles; i++) {
        size_t len = 0;
        uint8_t *b;
        snprintf(rel, sizeof(rel), "kafka-record-batch-v2/%s", kafka_files[i]);
        harness_testdata(path, sizeof(path), rel);
        b = harness_read_file(path, &len);
        assert_non_null(b);
        record_batch_set_base_offset(b, next);
        seg_append(s, b, len);
        next = s->last[s->n - 1] + 1;
        free(b);
    }
}

/* One batch of nrec records at offset, timestamps ts, ts+1, ..., values of value_len. */
static void seg_encode(seg_t *s, int64_t offset, size_t nrec, int64_t ts, size_t value_len)
{
    shoal_message_t msgs[8];
    char keys[8][16];
    uint8_t value[512], buf[8192];
    record_batch_fields_t f;
    size_t len = 0;

    assert_true(nrec <= 8 && value_len <= sizeof(value));
    memset(msgs, 0, sizeof(msgs));
    for (size_t i = 0; i < value_len; i++)
        value[i] = (uint8_t)(offset + i);
    for (size_t i = 0; i < nrec; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%lld", (long long)offset + (long long)i);
        msgs[i].key = keys[i];
        msgs[i].key_len = strlen(keys[i]);
        msgs[i].value = value;
        msgs[i].value_len = value_len;
        msgs[i].timestamp_ms = ts + (int64_t)i;
    }
    record_batch_fields_init(&f);
    f.base_offset = offset;
    assert_int_equal(record_batch_encode(buf, sizeof(buf), &f, msgs, nrec, TS0, &len), 0);
    seg_append(s, buf, len);
}

/* n batches of 1-3 records from base, with values long enough that the segment spans
 * many index intervals, and max timestamps that sometimes go back. */
static void seg_many_small(seg_t *s, int64_t base, size_t n)
{
    int64_t off = base;
    for (size_t i = 0; i < n; i++) {
        size_t nrec = 1 + i % 3;
        int64_t ts = TS0 + (int64_t)i * 10 - (i % 7 == 3 ? 5000 : 0);
        seg_encode(s, off, nrec, ts, 40 + (i * 37) % 120);
        off += (int64_t)nrec;
    }
}

static uint8_t *dup_bytes(const uint8_t *p, size_t len)
{
    /* An exactly sized heap copy, so ASan sees any read past len. */
    uint8_t *d = malloc(len ? len : 1);
    assert_non_null(d);
    if (len)
        memcpy(d, p, len);
    return d;
}

static void seg_write(const char *dir, int64_t base, const char *ext, const uint8_t *data,
                      size_t len)
{
    char path[4096];
    assert_int_equal(segment_path(path, sizeof(path), dir, base, ext), 0);
    harness_write_file(path, data, len);
}

static uint8_t *seg_read(const char *dir, int64_t base, const char *ext, size_t *len)
{
    char path[4096];
    assert_int_equal(segment_path(path, sizeof(path), dir, base, ext), 0);
    return harness_read_file(path, len);
}

static bool seg_exists(const char *dir, int64_t base, const char *ext)
{
    char path[4096];
    struct stat st;
    assert_int_equal(segment_path(path, sizeof(path), dir, base, ext), 0);
    return stat(path, &st) == 0;
}

static void seg_unlink(const char *dir, int64_t base, const char *ext)
{
    char path[4096];
    assert_int_equal(segment_path(path, sizeof(path), dir, base, ext), 0);
    unlink(path);
}

/* Index the batches of s with index_writer, as the flusher would, from batch from to to;
 * seal: then roll, as the flusher does when it moves to the next segment. */
static void index_with_writer_then(const char *dir, int64_t base, const seg_t *s, size_t from,
                                   size_t to, bool seal)
{
    index_writer_t w;
    record_batch_header_t h;

    assert_int_equal(index_writer_open(&w, dir, base), 0);
    for (size_t i = from; i < to; i++) {
        assert_int_equal(record_batch_parse(s->data + s->pos[i], s->len - s->pos[i], &h), 0);
        assert_int_equal(index_writer_add(&w, s->pos[i], &h), 0);
    }
    if (seal)
        assert_true(index_writer_seal(&w) >= 0);
    assert_int_equal(index_writer_sync(&w), 0);
    index_writer_close(&w);
}

static void index_with_writer(const char *dir, int64_t base, const seg_t *s, size_t from, size_t to)
{
    index_with_writer_then(dir, base, s, from, to, false);
}

static int setup_dir(void **state)
{
    char *dir = malloc(4096);
    harness_tmpdir(dir, 4096, "segment");
    *state = dir;
    return 0;
}

static int teardown_dir(void **state)
{
    harness_rmrf(*state);
    free(*state);
    return 0;
}

/* ------------------------------------------------------------------ names */

static void test_segment_path_uses_twenty_digit_base(void **state)
{
    char buf[64];
    (void)state;
    assert_int_equal(segment_path(buf, sizeof(buf), "/d", 42, ".log"), 0);
    assert_string_equal(buf, "/d/00000000000000000042.log");
    assert_int_equal(segment_path(buf, sizeof(buf), "/d", INT64_MAX, ".timeindex"), 0);
    assert_string_equal(buf, "/d/09223372036854775807.timeindex");
    assert_int_equal(segment_path(buf, 20, "/d", 42, ".log"), -ENAMETOOLONG);
}

static void test_segment_list_sorts_bases_and_ignores_other_names(void **state)
{
    const char *dir = *state;
    const char *names[] = {
        "00000000000000000100.log",   "00000000000000000000.log",     "00000000000000000042.log",
        "00000000000000000007.index", "00000000000000000042.log.tmp", "0000000000000000042.log",
        "000000000000000000420.log",  "abcdefghijklmnopqrst.log",     "99999999999999999999.log",
        "+0000000000000000001.log",   "00000000000000000009.LOG",     "junk",
    };
    char path[4096];
    int64_t *bases = NULL;
    size_t count = 99;

    for (size_t i = 0; i < SHOAL_ARRAY_LEN(names); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        harness_write_file(path, NULL, 0);
    }
    /* Enough segments created out of order that readdir's order is not sorted by luck. */
    for (int i = 0; i < 40; i++) {
        snprintf(path, sizeof(path), "%s/%020d.log", dir, 1000 + (i * 17) % 40);
        harness_write_file(path, NULL, 0);
    }
    snprintf(path, sizeof(path), "%s/00000000000000000001.logx", dir);
    assert_int_equal(mkdir(path, 0700), 0);

    assert_int_equal(segment_list(dir, &bases, &count), 0);
    assert_int_equal(count, 43);
    assert_int_equal(bases[0], 0);
    assert_int_equal(bases[1], 42);
    assert_int_equal(bases[2], 100);
    for (size_t i = 3; i < count; i++)
        assert_int_equal(bases[i], 1000 + (int64_t)i - 3);
    shoal__free(bases);

    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(segment_list(path, &bases, &count), -ENOENT);
    assert_null(bases);
    assert_int_equal(count, 0);
}

static void test_segment_list_of_empty_dir_is_empty(void **state)
{
    int64_t *bases = NULL;
    size_t count = 5;
    assert_int_equal(segment_list(*state, &bases, &count), 0);
    assert_int_equal(count, 0);
    shoal__free(bases);
}

/* ------------------------------------------------------------------ scan */

static void test_scan_walks_kafka_batches_with_counts_offsets_and_timestamps(void **state)
{
    seg_t s = {0};
    segment_scan_t sc;
    (void)state;

    seg_from_kafka(&s, 1000, SHOAL_ARRAY_LEN(kafka_files));
    assert_int_equal(segment_scan_bytes(s.data, s.len, 1000, true, NULL, NULL, &sc), 0);
    assert_int_equal(sc.error, 0);
    assert_int_equal(sc.valid_bytes, s.len);
    assert_int_equal(sc.batches, SHOAL_ARRAY_LEN(kafka_files));
    /* 7 single-record batches, multi-10, idempotent (2), binary-4k, 200 small, gzip 5. */
    assert_int_equal(sc.records, 1 + 1 + 1 + 1 + 1 + 10 + 1 + 2 + 1 + 200 + 5);
    assert_int_equal(sc.records, s.records);
    assert_int_equal(sc.next_offset, 1000 + 224);
    assert_int_equal(sc.next_offset, seg_next_offset(&s));
    assert_int_equal(sc.max_timestamp, 1700000007000LL);
    assert_int_equal(sc.max_timestamp, seg_max_ts(&s));
    seg_free(&s);
}

static void test_scan_of_empty_segment_is_clean(void **state)
{
    segment_scan_t sc;
    (void)state;
    assert_int_equal(segment_scan_bytes(NULL, 0, 77, true, NULL, NULL, &sc), 0);
    assert_int_equal(sc.error, 0);
    assert_int_equal(sc.valid_bytes, 0);
    assert_int_equal(sc.next_offset, 77);
    assert_int_equal(sc.max_timestamp, -1);
    assert_int_equal(sc.batches, 0);
}

static void test_scan_stops_at_flipped_bit_in_third_of_five_batches(void **state)
{
    seg_t s = {0};
    segment_scan_t sc;
    char where[64];
    (void)state;

    seg_from_kafka(&s, 0, 5);
    s.data[s.pos[2] + 62] ^= 0x10; /* the first record's attributes in batch 3 */
    assert_int_equal(segment_scan_bytes(s.data, s.len, 0, true, NULL, NULL, &sc), 0);
    assert_int_equal(sc.error, SHOAL_ECORRUPT);
    assert_int_equal(sc.valid_bytes, s.pos[2]);
    assert_int_equal(sc.batches, 2);
    assert_int_equal(sc.next_offset, s.last[1] + 1);
    snprintf(where, sizeof(where), "byte %llu", (unsigned long long)s.pos[2]);
    assert_non_null(strstr(sc.why, where));
    assert_non_null(strstr(sc.why, "CRC"));

    /* Without CRC checks a flipped bit in a record goes unnoticed. */
    assert_int_equal(segment_scan_bytes(s.data, s.len, 0, false, NULL, NULL, &sc), 0);
    assert_int_equal(sc.error, 0);
    assert_int_equal(sc.batches, 5);

    /* A flipped bit in the last byte of a record is caught the same way. */
    s.data[s.pos[2] + 62] ^= 0x10;
    s.data[s.pos[3] - 1] ^= 0x01;
    assert_int_equal(segment_scan_bytes(s.data, s.len, 0, true, NULL, NULL, &sc), 0);
    assert_int_equal(sc.error, SHOAL_ECORRUPT);
    assert_int_equal(sc.valid_bytes, s.pos[2]);
    seg_free(&s);
}

static void test_scan_reports_torn_tail_at_every_length_of_last_batch(void **state)
{
    seg_t s = {0};
    segment_scan_t sc;
    (void)state;

    seg_from_kafka(&s, 0, 6);
    for (size_t cut = s.pos[5] + 1; cut < s.len; cut++) {
        uint8_t *d = dup_bytes(s.data, cut);
        assert_int_equal(segment_scan_bytes(d, cut, 0, true, NULL, NULL, &sc), 0);
        assert_int_equal(sc.error, RECORD_INCOMPLETE);
        assert_int_equal(sc.valid_bytes, s.pos[5]);
        assert_int_equal(sc.batches, 5);
        assert_int_equal(sc.next_offset, s.last[4] + 1);
        assert_non_null(strstr(sc.why, "torn"));
        free(d);
    }
    /* Cut exactly between batches there is nothing torn. */
    assert_int_equal(segment_scan_bytes(s.data, s.pos[5], 0, true, NULL, NULL, &sc), 0);
    assert_int_equal(sc.error, 0);
    assert_int_equal(sc.batches, 5);
    seg_free(&s);
}

static void test_scan_stops_where_batch_length_points_outside_the_data(void **state)
{
    const int32_t lengths[] = {INT32_MAX, 1 << 20, -5, 3};
    seg_t s = {0};
    segment_scan_t sc;
    (void)state;

    seg_from_kafka(&s, 0, 3);
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(lengths); i++) {
        uint8_t *d = dup_bytes(s.data, s.len);
        shoal__put_be32(d + s.pos[1] + 8, (uint32_t)lengths[i]);
        assert_int_equal(segment_scan_bytes(d, s.len, 0, true, NULL, NULL, &sc), 0);
        assert_int_not_equal(sc.error, 0);
        if (lengths[i] > 0 && lengths[i] > 61)
            assert_int_equal(sc.error, RECORD_INCOMPLETE);
        else
            assert_int_equal(sc.error, SHOAL_ECORRUPT);
        assert_int_equal(sc.valid_bytes, s.pos[1]);
        assert_int_equal(sc.batches, 1);
        free(d);
    }
    /* Pointing inside the file, past the batch's real end, fails the CRC. */
    shoal__put_be32(s.data + s.pos[1] + 8, (uint32_t)(s.pos[2] - s.pos[1] - 12 + 10));
    assert_int_equal(segment_scan_bytes(s.data, s.len, 0, true, NULL, NULL, &sc), 0);
    assert_int_equal(sc.error, SHOAL_ECORRUPT);
    assert_int_equal(sc.valid_bytes, s.pos[1]);
    seg_free(&s);
}

static void test_scan_rejects_offsets_going_backwards_or_below_base(void **state)
{
    seg_t s = {0};
    segment_scan_t sc;
    (void)state;

    seg_from_kafka(&s, 500, 4);
    record_batch_set_base_offset(s.data + s.pos[2], s.last[1]); /* overlaps batch 2 */
    assert_int_equal(segment_scan_bytes(s.data, s.len, 500, true, NULL, NULL, &sc), 0);
    assert_int_equal(sc.error, SHOAL_ECORRUPT);
    assert_int_equal(sc.valid_bytes, s.pos[2]);
    assert_int_equal(sc.next_offset, s.last[1] + 1);
    assert_non_null(strstr(sc.why, "offset"));

    record_batch_set_base_offset(s.data + s.pos[2], s.first[0]); /* far back */
    assert_int_equal(segment_scan_bytes(s.data, s.len, 500, true, NULL, NULL, &sc), 0);
    assert_int_equal(sc.error, SHOAL_ECORRUPT);
    assert_int_equal(sc.valid_bytes, s.pos[2]);

    record_batch_set_base_offset(s.data + s.pos[2], s.first[2]);
    assert_int_equal(segment_scan_bytes(s.data, s.len, 501, true, NULL, NULL, &sc), 0);
    assert_int_equal(sc.error, SHOAL_ECORRUPT); /* first batch is below the base */
    assert_int_equal(sc.valid_bytes, 0);
    assert_int_equal(sc.next_offset, 501);
    seg_free(&s);
}

typedef struct cb_log {
    size_t calls;
    size_t stop_at;
    uint64_t pos[16];
} cb_log_t;

static int record_cb(void *arg, uint64_t pos, const uint8_t *batch, const record_batch_header_t *h)
{
    cb_log_t *log = arg;
    (void)batch;
    (void)h;
    log->pos[log->calls++] = pos;
    return log->calls == log->stop_at ? 42 : 0;
}

static void test_scan_calls_back_per_batch_and_stops_when_told(void **state)
{
    seg_t s = {0};
    segment_scan_t sc;
    cb_log_t log = {0};
    (void)state;

    seg_from_kafka(&s, 0, 6);
    assert_int_equal(segment_scan_bytes(s.data, s.len, 0, true, record_cb, &log, &sc), 0);
    assert_int_equal(log.calls, 6);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(log.pos[i], s.pos[i]);

    memset(&log, 0, sizeof(log));
    log.stop_at = 3;
    assert_int_equal(segment_scan_bytes(s.data, s.len, 0, true, record_cb, &log, &sc), 42);
    assert_int_equal(log.calls, 3);
    assert_int_equal(sc.valid_bytes, s.pos[2]);
    seg_free(&s);
}

/* ------------------------------------------------------------------ find offset */

/* Expected position of the batch holding offset (or the first later one), or -1. */
static int64_t expected_pos(const seg_t *s, int64_t offset)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->last[i] >= offset)
            return (int64_t)s->pos[i];
    return -1;
}

static void check_every_offset(const seg_t *s, int64_t base, const uint8_t *idx, size_t idx_len)
{
    int64_t end = seg_next_offset(s);
    for (int64_t off = base - 2; off < end; off++) {
        int64_t want = expected_pos(s, off);
        assert_int_equal(segment_find_offset(s->data, s->len, base, idx, idx_len, off), want);
    }
    assert_int_equal(segment_find_offset(s->data, s->len, base, idx, idx_len, end), SHOAL_EOFFSET);
    assert_int_equal(segment_find_offset(s->data, s->len, base, idx, idx_len, INT64_MAX),
                     SHOAL_EOFFSET);
}

static void test_find_offset_locates_every_offset_through_the_index(void **state)
{
    const char *dir = *state;
    const int64_t base = 10000;
    seg_t s = {0};
    uint8_t *idx;
    size_t idx_len = 0;

    seg_many_small(&s, base, 200);
    assert_true(s.len > 6 * SEGMENT_INDEX_INTERVAL_BYTES);
    index_with_writer(dir, base, &s, 0, s.n);
    idx = seg_read(dir, base, ".index", &idx_len);
    assert_non_null(idx);
    assert_true(idx_len >= 6 * SEGMENT_INDEX_ENTRY_BYTES);

    check_every_offset(&s, base, idx, idx_len);
    check_every_offset(&s, base, NULL, 0);
    assert_int_equal(segment_find_offset(NULL, 0, base, NULL, 0, base), SHOAL_EOFFSET);
    free(idx);
    seg_free(&s);
}

/* With a sound index the lookup starts at the entry: damage before it is never read, while
 * a lookup without the index has to walk through it. */
static void test_find_offset_starts_scanning_at_the_index_entry(void **state)
{
    const char *dir = *state;
    seg_t s = {0};
    uint8_t *idx;
    size_t n = 0;
    int64_t last = 0;

    seg_many_small(&s, 0, 200);
    index_with_writer(dir, 0, &s, 0, s.n);
    idx = seg_read(dir, 0, ".index", &n);
    assert_non_null(idx);
    last = seg_next_offset(&s) - 1;
    s.data[s.pos[1] + 16] = 0; /* magic of batch 2 */
    assert_int_equal(segment_find_offset(s.data, s.len, 0, idx, n, last), (int64_t)s.pos[s.n - 1]);
    assert_int_equal(segment_find_offset(s.data, s.len, 0, NULL, 0, last), SHOAL_ECORRUPT);
    free(idx);
    seg_free(&s);
}

static void test_find_offset_skips_gaps_left_by_compaction(void **state)
{
    seg_t s = {0};
    (void)state;
    seg_encode(&s, 0, 2, TS0, 10);
    seg_encode(&s, 10, 3, TS0, 10);
    seg_encode(&s, 20, 1, TS0, 10);
    assert_int_equal(segment_find_offset(s.data, s.len, 0, NULL, 0, 1), (int64_t)s.pos[0]);
    assert_int_equal(segment_find_offset(s.data, s.len, 0, NULL, 0, 5), (int64_t)s.pos[1]);
    assert_int_equal(segment_find_offset(s.data, s.len, 0, NULL, 0, 13), (int64_t)s.pos[2]);
    assert_int_equal(segment_find_offset(s.data, s.len, 0, NULL, 0, 21), SHOAL_EOFFSET);
    seg_free(&s);
}

static void test_find_offset_ignores_a_corrupt_index(void **state)
{
    const char *dir = *state;
    const int64_t base = 300;
    seg_t s = {0};
    uint8_t *good, *bad;
    size_t n = 0;

    seg_many_small(&s, base, 200);
    index_with_writer(dir, base, &s, 0, s.n);
    good = seg_read(dir, base, ".index", &n);
    assert_non_null(good);
    assert_true(n >= 4 * SEGMENT_INDEX_ENTRY_BYTES);
    bad = dup_bytes(good, n);

    /* Positions past the data. */
    for (size_t i = 0; i < n; i += 8)
        shoal__put_be32(bad + i + 4, (uint32_t)(s.len + i));
    check_every_offset(&s, base, bad, n);
    /* Positions inside batches rather than at their starts. */
    memcpy(bad, good, n);
    for (size_t i = 0; i < n; i += 8)
        shoal__put_be32(bad + i + 4, shoal__get_be32(good + i + 4) + 7);
    check_every_offset(&s, base, bad, n);
    /* Relative offsets that do not match the batch at the position. */
    memcpy(bad, good, n);
    for (size_t i = 0; i < n; i += 8)
        shoal__put_be32(bad + i, shoal__get_be32(good + i) + 1);
    check_every_offset(&s, base, bad, n);
    /* Relative offsets lowered to just above the previous entry's: trusted, each would send
     * lookups for the offsets between two entries past the batch that holds them. */
    memcpy(bad, good, n);
    for (size_t i = 8; i < n; i += 8)
        shoal__put_be32(bad + i, shoal__get_be32(good + i - 8) + 1);
    check_every_offset(&s, base, bad, n);
    /* Entries out of order: swap the middle ones. */
    memcpy(bad, good, n);
    memcpy(bad + 8, good + 16, 8);
    memcpy(bad + 16, good + 8, 8);
    check_every_offset(&s, base, bad, n);
    /* Noise, and a length that is not a whole number of entries. */
    for (size_t i = 0; i < n; i++)
        bad[i] = (uint8_t)(i * 131 + 17);
    check_every_offset(&s, base, bad, n);
    check_every_offset(&s, base, good, n - 3);
    free(bad);
    free(good);
    seg_free(&s);
}

static void test_find_offset_reports_a_corrupt_batch_header(void **state)
{
    seg_t s = {0};
    (void)state;
    seg_from_kafka(&s, 0, 4);
    s.data[s.pos[2] + 16] = 1; /* magic */
    assert_int_equal(segment_find_offset(s.data, s.len, 0, NULL, 0, s.first[1]), (int64_t)s.pos[1]);
    assert_int_equal(segment_find_offset(s.data, s.len, 0, NULL, 0, s.first[3]), SHOAL_ECORRUPT);
    seg_free(&s);
}

/* Offsets that go back are damage too: a lookup past them is SHOAL_ECORRUPT, never an
 * answer from the wrong batch (found by tests/fuzz/fuzz_segment.c). */
static void test_lookups_report_offsets_going_backwards(void **state)
{
    seg_t s = {0};
    int64_t end;
    (void)state;

    seg_from_kafka(&s, 500, 4);
    record_batch_set_base_offset(s.data + s.pos[2], s.first[0]); /* batch 2 goes back */
    assert_int_equal(segment_find_offset(s.data, s.len, 500, NULL, 0, s.first[1]),
                     (int64_t)s.pos[1]);
    assert_int_equal(segment_find_offset(s.data, s.len, 500, NULL, 0, s.first[3]), SHOAL_ECORRUPT);
    assert_non_null(strstr(shoal_errmsg(), "below"));
    assert_int_equal(segment_find_timestamp(s.data, s.len, 500, NULL, 0, NULL, 0, INT64_MAX, &end),
                     SHOAL_ECORRUPT);
    /* the first batch below the segment's base */
    assert_int_equal(segment_find_offset(s.data, s.len, 501, NULL, 0, 501), SHOAL_ECORRUPT);
    assert_int_equal(segment_find_timestamp(s.data, s.len, 501, NULL, 0, NULL, 0, 0, &end),
                     SHOAL_ECORRUPT);
    seg_free(&s);
}

/* ------------------------------------------------------------------ index writer */

static void test_index_writer_writes_sparse_kafka_entries(void **state)
{
    const char *dir = *state;
    const int64_t base = 4000;
    seg_t s = {0};
    uint8_t *idx, *tidx;
    size_t n = 0, tn = 0, b = 0;
    int64_t prev_ts = -1;

    seg_many_small(&s, base, 200);
    index_with_writer(dir, base, &s, 0, s.n);
    idx = seg_read(dir, base, ".index", &n);
    tidx = seg_read(dir, base, ".timeindex", &tn);
    assert_non_null(idx);
    assert_non_null(tidx);
    assert_int_equal(n % SEGMENT_INDEX_ENTRY_BYTES, 0);
    assert_int_equal(tn % SEGMENT_TIMEINDEX_ENTRY_BYTES, 0);

    /* Each entry: a batch start and that batch's last offset; the first at the first batch,
     * then the first batch at least an interval after the previous entry. */
    for (size_t i = 0; i < n; i += SEGMENT_INDEX_ENTRY_BYTES) {
        uint32_t rel = shoal__get_be32(idx + i), pos = shoal__get_be32(idx + i + 4);
        uint64_t want = i == 0 ? 0 : s.pos[b] + SEGMENT_INDEX_INTERVAL_BYTES;
        while (s.pos[b] < want)
            b++;
        assert_int_equal(pos, s.pos[b]);
        assert_int_equal(rel, s.last[b] - base);
    }
    assert_true(s.pos[s.n - 1] < s.pos[b] + SEGMENT_INDEX_INTERVAL_BYTES);
    assert_true(n / SEGMENT_INDEX_ENTRY_BYTES >= 6);

    /* Timestamps strictly increase; each names, as Kafka's do, the last offset of the batch
     * that first reached it: no batch before that one is as late. */
    assert_true(tn > 0 && tn <= n / 8 * 12);
    for (size_t i = 0; i < tn; i += SEGMENT_TIMEINDEX_ENTRY_BYTES) {
        int64_t ts = (int64_t)shoal__get_be64(tidx + i);
        uint32_t rel = shoal__get_be32(tidx + i + 8);
        size_t k = 0;
        assert_true(ts > prev_ts);
        prev_ts = ts;
        while (k < s.n && s.last[k] != base + (int64_t)rel) {
            assert_true(s.max_ts[k] < ts);
            k++;
        }
        assert_true(k < s.n);
        assert_int_equal(s.max_ts[k], ts);
    }
    free(idx);
    free(tidx);
    seg_free(&s);
}

static void header_at(record_batch_header_t *h, int64_t base_offset, int32_t count, int64_t ts)
{
    memset(h, 0, sizeof(*h));
    h->base_offset = base_offset;
    h->last_offset_delta = count - 1;
    h->record_count = count;
    h->first_timestamp = ts;
    h->max_timestamp = ts;
}

/* The writer does not read the log, so positions can be chosen to land on the boundaries. */
static void test_index_writer_indexes_first_batch_and_every_interval(void **state)
{
    const char *dir = *state;
    const uint64_t iv = SEGMENT_INDEX_INTERVAL_BYTES;
    /* pos, first offset, records, max timestamp */
    const int64_t batches[][4] = {
        {0, 100, 2, 50},          {100, 102, 1, 60},        {iv - 1, 103, 1, 70},
        {iv, 104, 3, 40},         {2 * iv - 1, 107, 1, 90}, {2 * iv, 108, 1, 80},
        {3 * iv + 5, 109, 1, 95}, {3 * iv + 6, 110, 1, 99},
    };
    const uint8_t want_idx[] = {0, 0, 0, 1, 0, 0, 0,    0, 0, 0, 0, 6, 0, 0, 0x10, 0,
                                0, 0, 0, 8, 0, 0, 0x20, 0, 0, 0, 0, 9, 0, 0, 0x30, 5};
    /* Timestamps are the running maximum, and offsets (Kafka's rule) those of the batch that
     * first reached it: 70 from offset 103 (a batch between entries) at the entry whose own
     * batch has 40; 90 from 107 at the one whose batch has 80. */
    const uint8_t want_ts[] = {0, 0, 0, 0,  0, 0, 0, 50, 0, 0, 0, 1,  0, 0, 0, 0,
                               0, 0, 0, 70, 0, 0, 0, 3,  0, 0, 0, 0,  0, 0, 0, 90,
                               0, 0, 0, 7,  0, 0, 0, 0,  0, 0, 0, 95, 0, 0, 0, 9};
    record_batch_header_t h;
    index_writer_t w;
    uint8_t *idx, *ts;
    size_t n = 0, tn = 0;

    assert_int_equal(index_writer_open(&w, dir, 100), 0);
    assert_false(w.has_entry);
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(batches); i++) {
        header_at(&h, batches[i][1], (int32_t)batches[i][2], batches[i][3]);
        assert_int_equal(index_writer_add(&w, (uint64_t)batches[i][0], &h), 0);
    }
    assert_int_equal(w.index_bytes, sizeof(want_idx));
    assert_int_equal(w.timeindex_bytes, sizeof(want_ts));
    assert_int_equal(w.last_indexed_pos, 3 * iv + 5);
    assert_int_equal(w.last_timestamp, 95);
    /* A batch at or before the last indexed position is a caller error. */
    assert_int_equal(index_writer_add(&w, 3 * iv + 5, &h), -EINVAL);
    /* An offset outside the segment cannot be indexed. */
    header_at(&h, 99, 1, 100);
    assert_int_equal(index_writer_add(&w, 5 * iv, &h), -EOVERFLOW);
    index_writer_close(&w);

    idx = seg_read(dir, 100, ".index", &n);
    ts = seg_read(dir, 100, ".timeindex", &tn);
    assert_int_equal(n, sizeof(want_idx));
    assert_memory_equal(idx, want_idx, n);
    assert_int_equal(tn, sizeof(want_ts));
    assert_memory_equal(ts, want_ts, tn);
    free(idx);
    free(ts);
}

/* A failed .timeindex write (a full disk) leaves the writer where it was: the flusher's
 * retry of the same batch writes both entries, once each, instead of being refused as
 * "not after the last entry" for ever. */
static void test_index_writer_retries_a_batch_whose_timeindex_write_failed(void **state)
{
    const char *dir = *state;
    record_batch_header_t h;
    index_writer_t w;
    uint8_t *idx, *ts;
    size_t n = 0, tn = 0;
    int fd;

    assert_int_equal(index_writer_open(&w, dir, 100), 0);
    header_at(&h, 100, 2, 50);
    fd = w.timeindex_fd;
    w.timeindex_fd = open("/dev/full", O_WRONLY);
    assert_true(w.timeindex_fd >= 0);
    assert_int_equal(index_writer_add(&w, 0, &h), -ENOSPC);
    close(w.timeindex_fd);
    w.timeindex_fd = fd;
    assert_int_equal(index_writer_add(&w, 0, &h), 0);
    assert_int_equal(w.index_bytes, SEGMENT_INDEX_ENTRY_BYTES);
    assert_int_equal(w.timeindex_bytes, SEGMENT_TIMEINDEX_ENTRY_BYTES);
    index_writer_close(&w);
    idx = seg_read(dir, 100, ".index", &n);
    ts = seg_read(dir, 100, ".timeindex", &tn);
    assert_int_equal(n, SEGMENT_INDEX_ENTRY_BYTES);
    assert_int_equal(tn, SEGMENT_TIMEINDEX_ENTRY_BYTES);
    free(idx);
    free(ts);
}

/* At the roll the writer adds Kafka's last .timeindex entry: the segment's largest
 * timestamp and the batch that first reached it, which Kafka reads as the segment's
 * largest timestamp (time retention, lookups). Before, the last entry was the last index
 * point's, behind the batches after it (an exploratory session's Kafka decoder saw it).
 * Recovery keeps that entry: on a sealed segment as its own rebuild, and on the last
 * segment when it is there (rolled just before a stop), adding none otherwise. */
static void test_index_writer_seal_adds_kafkas_last_timeindex_entry(void **state)
{
    const char *dir = *state;
    const int64_t base = 3000;
    segment_recovery_t r;
    index_writer_t w;
    seg_t s = {0};
    uint8_t *unsealed, *sealed;
    size_t un = 0, sn = 0, k = 0;
    int64_t max_ts = -1;

    seg_many_small(&s, base, 200);
    seg_write(dir, base, ".log", s.data, s.len);
    for (size_t i = 0; i < s.n; i++)
        if (s.max_ts[i] > max_ts) {
            max_ts = s.max_ts[i];
            k = i;
        }
    index_with_writer(dir, base, &s, 0, s.n);
    unsealed = seg_read(dir, base, ".timeindex", &un);
    assert_true(un >= SEGMENT_TIMEINDEX_ENTRY_BYTES);
    assert_true((int64_t)shoal__get_be64(unsealed + un - 12) < max_ts); /* behind */
    assert_int_equal(segment_recover(dir, base, true, &r), 0);          /* none added to the last */
    assert_false(r.index_rebuilt);

    assert_int_equal(index_writer_open(&w, dir, base), 0);
    assert_int_equal(index_writer_seal(&w), 1);
    assert_int_equal(index_writer_seal(&w), 0); /* once */
    index_writer_close(&w);
    sealed = seg_read(dir, base, ".timeindex", &sn);
    assert_int_equal(sn, un + SEGMENT_TIMEINDEX_ENTRY_BYTES);
    assert_memory_equal(sealed, unsealed, un);
    assert_int_equal((int64_t)shoal__get_be64(sealed + un), max_ts);
    assert_int_equal(shoal__get_be32(sealed + un + 8), s.last[k] - base);

    assert_int_equal(segment_recover(dir, base, false, &r), 0);
    assert_false(r.index_rebuilt);
    assert_int_equal(segment_recover(dir, base, true, &r), 0);
    assert_false(r.index_rebuilt);
    free(sealed);
    seg_unlink(dir, base, ".timeindex");
    assert_int_equal(segment_recover(dir, base, false, &r), 0); /* rebuilt with it */
    assert_true(r.index_rebuilt);
    sealed = seg_read(dir, base, ".timeindex", &sn);
    assert_int_equal(sn, un + SEGMENT_TIMEINDEX_ENTRY_BYTES);
    assert_int_equal((int64_t)shoal__get_be64(sealed + un), max_ts);
    free(sealed);
    free(unsealed);
    seg_free(&s);
}

static void test_index_writer_reopen_continues_after_existing_entries(void **state)
{
    const char *dir = *state;
    seg_t s = {0};
    uint8_t *one, *one_t, *two, *two_t, junk[5] = {1, 2, 3, 4, 5};
    size_t n1 = 0, t1 = 0, n2 = 0, t2 = 0;
    index_writer_t w;
    char path[4096];
    int fd;

    seg_many_small(&s, 0, 120);
    index_with_writer(dir, 0, &s, 0, s.n);
    one = seg_read(dir, 0, ".index", &n1);
    one_t = seg_read(dir, 0, ".timeindex", &t1);

    /* Again in three sessions, with a torn partial entry left after the first. */
    seg_unlink(dir, 0, ".index");
    seg_unlink(dir, 0, ".timeindex");
    index_with_writer(dir, 0, &s, 0, 40);
    assert_int_equal(segment_path(path, sizeof(path), dir, 0, ".index"), 0);
    fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, junk, 5), 5);
    close(fd);
    assert_int_equal(index_writer_open(&w, dir, 0), 0);
    assert_true(w.has_entry);
    assert_int_equal(w.index_bytes % SEGMENT_INDEX_ENTRY_BYTES, 0);
    assert_true(w.last_indexed_pos <= s.pos[39]);
    assert_true(w.last_timestamp > 0);
    index_writer_close(&w);
    index_with_writer(dir, 0, &s, 40, 41);
    index_with_writer(dir, 0, &s, 41, s.n);

    two = seg_read(dir, 0, ".index", &n2);
    two_t = seg_read(dir, 0, ".timeindex", &t2);
    assert_int_equal(n1, n2);
    assert_memory_equal(one, two, n1);
    assert_int_equal(t1, t2);
    assert_memory_equal(one_t, two_t, t1);
    free(one);
    free(one_t);
    free(two);
    free(two_t);
    seg_free(&s);
}

static void test_files_are_created_mode_0600(void **state)
{
    const char *dir = *state;
    const char *exts[] = {".index", ".timeindex"};
    mode_t old = umask(0);
    segment_recovery_t r;
    struct stat st;
    char path[4096];
    seg_t s = {0};

    seg_many_small(&s, 0, 30);
    index_with_writer(dir, 0, &s, 0, s.n);
    seg_write(dir, 100, ".log", s.data, 0);
    assert_int_equal(segment_recover(dir, 100, true, &r), 0);
    assert_true(r.index_rebuilt);
    umask(old);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(segment_path(path, sizeof(path), dir, i < 2 ? 0 : 100, exts[i % 2]), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
    }
    seg_free(&s);
}

/* ------------------------------------------------------------------ recovery */

static void test_recover_truncates_torn_tail_of_last_segment(void **state)
{
    const char *dir = *state;
    segment_recovery_t r;
    seg_t s = {0};
    uint8_t *after;
    size_t len = 0, torn;

    seg_from_kafka(&s, 1000, 7);
    torn = s.pos[6] + (s.len - s.pos[6]) / 2;
    seg_write(dir, 1000, ".log", s.data, torn);

    assert_int_equal(segment_recover(dir, 1000, true, &r), 0);
    assert_int_equal(r.scan.error, RECORD_INCOMPLETE);
    assert_int_equal(r.file_bytes, torn);
    assert_int_equal(r.scan.valid_bytes, s.pos[6]);
    assert_int_equal(r.truncated_bytes, torn - s.pos[6]);
    assert_int_equal(r.scan.next_offset, s.last[5] + 1);
    assert_true(r.index_rebuilt);
    after = seg_read(dir, 1000, ".log", &len);
    assert_int_equal(len, s.pos[6]);
    assert_memory_equal(after, s.data, len);
    free(after);

    /* A second pass finds nothing to do. */
    assert_int_equal(segment_recover(dir, 1000, true, &r), 0);
    assert_int_equal(r.scan.error, 0);
    assert_int_equal(r.truncated_bytes, 0);
    assert_false(r.index_rebuilt);
    seg_free(&s);
}

/* A .log cut back at a batch boundary (so nothing is torn) under a whole .index: recovery
 * rebuilds the index and says it shrank, which is how shoald learns records were lost; an
 * index that only lagged behind its .log does not say so. */
static void test_recover_tells_an_index_that_knew_more_than_its_log(void **state)
{
    const char *dir = *state;
    segment_recovery_t r;
    seg_t s = {0};

    seg_many_small(&s, 0, 200);
    index_with_writer(dir, 0, &s, 0, s.n);
    seg_write(dir, 0, ".log", s.data, s.pos[s.n / 2]);
    assert_int_equal(segment_recover(dir, 0, true, &r), 0);
    assert_int_equal(r.truncated_bytes, 0);
    assert_true(r.index_rebuilt);
    assert_true(r.index_shrank);

    seg_write(dir, 0, ".log", s.data, s.len); /* the whole log, its index behind (a crash) */
    for (int i = 0; i < 2; i++) {
        char path[4096];
        assert_int_equal(segment_path(path, sizeof(path), dir, 0, i ? ".timeindex" : ".index"), 0);
        assert_int_equal(unlink(path), 0);
    }
    index_with_writer(dir, 0, &s, 0, s.n / 4);
    assert_int_equal(segment_recover(dir, 0, true, &r), 0);
    assert_true(r.index_rebuilt);
    assert_false(r.index_shrank);
    seg_free(&s);
}

static void test_recover_truncates_corrupt_tail_of_last_segment(void **state)
{
    const char *dir = *state;
    segment_recovery_t r;
    seg_t s = {0};
    uint8_t *after;
    size_t len = 0;

    seg_from_kafka(&s, 0, 5);
    s.data[s.pos[3] + 30] ^= 0x80;
    seg_write(dir, 0, ".log", s.data, s.len);
    assert_int_equal(segment_recover(dir, 0, true, &r), 0);
    assert_int_equal(r.scan.error, SHOAL_ECORRUPT);
    assert_int_equal(r.truncated_bytes, s.len - s.pos[3]);
    after = seg_read(dir, 0, ".log", &len);
    assert_int_equal(len, s.pos[3]);
    assert_memory_equal(after, s.data, len);
    free(after);
    seg_free(&s);
}

static void test_recover_refuses_damaged_segment_that_is_not_last(void **state)
{
    const char *dir = *state;
    segment_recovery_t r;
    seg_t s = {0};
    uint8_t *after;
    size_t len = 0;

    seg_from_kafka(&s, 0, 5);
    s.data[s.pos[2] + 50] ^= 0x04;
    seg_write(dir, 0, ".log", s.data, s.len - 3);
    assert_int_equal(segment_recover(dir, 0, false, &r), SHOAL_ECORRUPT);
    assert_int_equal(r.scan.error, SHOAL_ECORRUPT);
    assert_int_equal(r.scan.valid_bytes, s.pos[2]);
    assert_int_equal(r.truncated_bytes, 0);
    after = seg_read(dir, 0, ".log", &len);
    assert_int_equal(len, s.len - 3);
    assert_memory_equal(after, s.data, len);
    assert_false(seg_exists(dir, 0, ".index"));
    assert_false(seg_exists(dir, 0, ".timeindex"));
    free(after);

    /* The torn tail alone is damage too when the segment is not the last. */
    s.data[s.pos[2] + 50] ^= 0x04;
    seg_write(dir, 0, ".log", s.data, s.len - 3);
    assert_int_equal(segment_recover(dir, 0, false, &r), SHOAL_ECORRUPT);
    assert_int_equal(r.scan.error, RECORD_INCOMPLETE);
    after = seg_read(dir, 0, ".log", &len);
    assert_int_equal(len, s.len - 3);
    free(after);
    seg_free(&s);
}

static void test_recover_rebuilds_missing_index_equal_to_index_writer(void **state)
{
    const char *dir = *state;
    const int64_t base = 2000;
    segment_recovery_t r;
    seg_t s = {0};
    uint8_t *w_idx, *w_ts, *r_idx, *r_ts;
    size_t wn = 0, wt = 0, rn = 0, rt = 0;

    seg_many_small(&s, base, 200);
    seg_write(dir, base, ".log", s.data, s.len);
    index_with_writer_then(dir, base, &s, 0, s.n, true); /* a sealed segment: rolled */
    w_idx = seg_read(dir, base, ".index", &wn);
    w_ts = seg_read(dir, base, ".timeindex", &wt);

    /* An index the writer produced is accepted as it is. */
    assert_int_equal(segment_recover(dir, base, false, &r), 0);
    assert_false(r.index_rebuilt);
    assert_int_equal(r.scan.batches, 200);

    seg_unlink(dir, base, ".index");
    seg_unlink(dir, base, ".timeindex");
    assert_int_equal(segment_recover(dir, base, false, &r), 0);
    assert_true(r.index_rebuilt);
    r_idx = seg_read(dir, base, ".index", &rn);
    r_ts = seg_read(dir, base, ".timeindex", &rt);
    assert_int_equal(rn, wn);
    assert_memory_equal(r_idx, w_idx, wn);
    assert_int_equal(rt, wt);
    assert_memory_equal(r_ts, w_ts, wt);
    free(r_idx);
    free(r_ts);
    free(w_idx);
    free(w_ts);
    seg_free(&s);
}

/* Install bad as the .index, recover, and expect the writer's bytes good back. */
static void check_index_repair(const char *dir, int64_t base, const uint8_t *good, size_t n,
                               const uint8_t *bad, size_t bad_len)
{
    segment_recovery_t r;
    uint8_t *after;
    size_t len = 0;

    seg_write(dir, base, ".index", bad, bad_len);
    assert_int_equal(segment_recover(dir, base, true, &r), 0);
    assert_true(r.index_rebuilt);
    after = seg_read(dir, base, ".index", &len);
    assert_int_equal(len, n);
    assert_memory_equal(after, good, n);
    free(after);
}

static void test_recover_rebuilds_index_of_bad_size_or_with_bad_entries(void **state)
{
    const char *dir = *state;
    const int64_t base = 7;
    segment_recovery_t r;
    seg_t s = {0};
    uint8_t *good, *bad;
    size_t n = 0;

    seg_many_small(&s, base, 100);
    seg_write(dir, base, ".log", s.data, s.len);
    index_with_writer(dir, base, &s, 0, s.n);
    good = seg_read(dir, base, ".index", &n);
    bad = malloc(n + 8);
    assert_true(n >= 3 * 8);

    check_index_repair(dir, base, good, n, good, n - 5); /* torn entry */
    check_index_repair(dir, base, good, n, good, n - 8); /* short by one entry */
    memcpy(bad, good, n);
    shoal__put_be32(bad + n, shoal__get_be32(good + n - 8) + 50);
    shoal__put_be32(bad + n + 4, (uint32_t)s.len + 100);
    check_index_repair(dir, base, good, n, bad, n + 8); /* an entry past the log */
    memcpy(bad, good, n);
    shoal__put_be32(bad + 12, shoal__get_be32(good + 12) + 1);
    check_index_repair(dir, base, good, n, bad, n); /* not at a batch start */

    /* A stale timeindex alone is rebuilt too. */
    seg_write(dir, base, ".timeindex", good, 12);
    assert_int_equal(segment_recover(dir, base, true, &r), 0);
    assert_true(r.index_rebuilt);
    assert_int_equal(segment_recover(dir, base, true, &r), 0);
    assert_false(r.index_rebuilt);
    free(bad);
    free(good);
    seg_free(&s);
}

static void test_recover_drops_index_entries_past_a_truncated_tail(void **state)
{
    const char *dir = *state;
    segment_recovery_t r;
    seg_t s = {0}, prefix = {0};
    uint8_t *idx, *want;
    size_t n = 0, wn = 0;
    size_t keep = 150;

    seg_many_small(&s, 0, 200);
    seg_write(dir, 0, ".log", s.data, s.pos[keep] + 20);
    index_with_writer(dir, 0, &s, 0, s.n); /* indexes batches that will be cut */
    assert_int_equal(segment_recover(dir, 0, true, &r), 0);
    assert_int_equal(r.truncated_bytes, 20);
    assert_true(r.index_rebuilt);

    prefix.data = s.data;
    prefix.len = s.pos[keep];
    for (size_t i = 0; i <= keep; i++)
        prefix.pos[i] = s.pos[i];
    prefix.n = keep;
    seg_unlink(dir, 0, ".index");
    seg_unlink(dir, 0, ".timeindex");
    index_with_writer(dir, 0, &prefix, 0, keep);
    want = seg_read(dir, 0, ".index", &wn);
    assert_int_equal(segment_recover(dir, 0, true, &r), 0);
    assert_false(r.index_rebuilt);
    idx = seg_read(dir, 0, ".index", &n);
    assert_int_equal(n, wn);
    assert_memory_equal(idx, want, n);
    free(idx);
    free(want);
    seg_free(&s);
}

/* Fail the nth allocation for n = 1.. until the call succeeds: each failure is -ENOMEM,
 * leaves no index behind and (under ASan) leaks nothing. */
static void test_recover_and_list_fail_cleanly_without_memory(void **state)
{
    const char *dir = *state;
    segment_recovery_t r;
    int64_t *bases;
    size_t count;
    seg_t s = {0};
    long n;
    int rc;

    seg_many_small(&s, 0, 200);
    seg_write(dir, 0, ".log", s.data, s.len);
    for (n = 1;; n++) {
        shoal__alloc_fail_after(n);
        rc = segment_recover(dir, 0, true, &r);
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOMEM);
        assert_false(seg_exists(dir, 0, ".index"));
    }
    shoal__alloc_fail_after(0);
    assert_true(n > 2);
    assert_true(r.index_rebuilt);

    for (int i = 1; i <= 40; i++)
        seg_write(dir, i * 10, ".log", NULL, 0);
    for (n = 1;; n++) {
        shoal__alloc_fail_after(n);
        rc = segment_list(dir, &bases, &count);
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOMEM);
        assert_null(bases);
    }
    shoal__alloc_fail_after(0);
    assert_int_equal(count, 41);
    shoal__free(bases);
    seg_free(&s);
}

static void test_recover_of_missing_log_is_enoent(void **state)
{
    segment_recovery_t r;
    assert_int_equal(segment_recover(*state, 5, true, &r), -ENOENT);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)
    const struct CMUnitTest tests[] = {
        T(test_segment_path_uses_twenty_digit_base),
        T(test_segment_list_sorts_bases_and_ignores_other_names),
        T(test_segment_list_of_empty_dir_is_empty),
        T(test_scan_walks_kafka_batches_with_counts_offsets_and_timestamps),
        T(test_scan_of_empty_segment_is_clean),
        T(test_scan_stops_at_flipped_bit_in_third_of_five_batches),
        T(test_scan_reports_torn_tail_at_every_length_of_last_batch),
        T(test_scan_stops_where_batch_length_points_outside_the_data),
        T(test_scan_rejects_offsets_going_backwards_or_below_base),
        T(test_scan_calls_back_per_batch_and_stops_when_told),
        T(test_find_offset_locates_every_offset_through_the_index),
        T(test_find_offset_starts_scanning_at_the_index_entry),
        T(test_find_offset_skips_gaps_left_by_compaction),
        T(test_find_offset_ignores_a_corrupt_index),
        T(test_find_offset_reports_a_corrupt_batch_header),
        T(test_lookups_report_offsets_going_backwards),
        T(test_index_writer_writes_sparse_kafka_entries),
        T(test_index_writer_indexes_first_batch_and_every_interval),
        T(test_index_writer_retries_a_batch_whose_timeindex_write_failed),
        T(test_index_writer_seal_adds_kafkas_last_timeindex_entry),
        T(test_index_writer_reopen_continues_after_existing_entries),
        T(test_files_are_created_mode_0600),
        T(test_recover_truncates_torn_tail_of_last_segment),
        T(test_recover_tells_an_index_that_knew_more_than_its_log),
        T(test_recover_truncates_corrupt_tail_of_last_segment),
        T(test_recover_refuses_damaged_segment_that_is_not_last),
        T(test_recover_rebuilds_missing_index_equal_to_index_writer),
        T(test_recover_rebuilds_index_of_bad_size_or_with_bad_entries),
        T(test_recover_drops_index_entries_past_a_truncated_tail),
        T(test_recover_and_list_fail_cleanly_without_memory),
        T(test_recover_of_missing_log_is_enoent),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
