/* test_segment_time.c - finding the first offset at or after a timestamp in a segment's
 * bytes (segment_find_timestamp) and the .timeindex it starts from: Kafka's answer (the
 * earliest record whose timestamp is >= the target) checked against a brute-force walk of
 * every record, with sorted and out-of-order timestamps, with and without indexes, and with
 * damaged indexes, which must cost only speed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "record.h"
#include "segment.h"
#include "util.h"

#define MAX_BATCHES 512
#define MAX_RECORDS 8
#define TS0         1700000000000LL

typedef struct seg {
    uint8_t *data;
    size_t len;
    size_t n;
    uint64_t pos[MAX_BATCHES + 1];
    int64_t next_offset;
} seg_t;

/* The indexes of a segment as the flusher writes them, read back from dir. */
typedef struct idx {
    uint8_t *idx;
    size_t idx_len;
    uint8_t *tidx;
    size_t tidx_len;
} idx_t;

/* ------------------------------------------------------------------ fixtures */

/* Append one batch at s->next_offset whose records carry the timestamps ts[0..nrec). */
static void seg_batch(seg_t *s, const int64_t *ts, size_t nrec, size_t value_len)
{
    shoal_message_t msgs[MAX_RECORDS];
    uint8_t value[256], buf[4096];
    record_batch_fields_t f;
    size_t len = 0;

    assert_true(s->n < MAX_BATCHES && nrec <= MAX_RECORDS && value_len <= sizeof(value));
    memset(msgs, 0, sizeof(msgs));
    memset(value, 'v', value_len);
    for (size_t i = 0; i < nrec; i++) {
        msgs[i].value = value;
        msgs[i].value_len = value_len;
        msgs[i].timestamp_ms = ts[i];
    }
    record_batch_fields_init(&f);
    f.base_offset = s->next_offset;
    assert_int_equal(record_batch_encode(buf, sizeof(buf), &f, msgs, nrec, TS0, &len), 0);
    s->data = realloc(s->data, s->len + len);
    assert_non_null(s->data);
    memcpy(s->data + s->len, buf, len);
    s->pos[s->n++] = s->len;
    s->len += len;
    s->pos[s->n] = s->len;
    s->next_offset += (int64_t)nrec;
}

/* n batches of 1-3 records, record r of the segment at TS0 + 10 r ms, values long enough
 * for many index intervals. With shuffle, some records go back in time and some ahead,
 * within a batch and across batches. */
static void seg_fill(seg_t *s, int64_t base, size_t n, bool shuffle)
{
    s->next_offset = base;
    for (size_t i = 0; i < n; i++) {
        int64_t ts[3];
        size_t nrec = 1 + i % 3;
        for (size_t k = 0; k < nrec; k++) {
            int64_t r = s->next_offset - base + (int64_t)k;
            ts[k] = TS0 + r * 10;
            if (shuffle && r % 11 == 4)
                ts[k] -= 3000; /* back by 300 records */
            if (shuffle && r % 29 == 7)
                ts[k] += 2000; /* ahead by 200 records */
        }
        seg_batch(s, ts, nrec, 60 + (i * 37) % 140);
    }
}

static void seg_free(seg_t *s)
{
    free(s->data);
    memset(s, 0, sizeof(*s));
}

/* The answer by definition: walk every record. -1 when none is that late. */
static int64_t brute_force(const seg_t *s, int64_t ts)
{
    for (size_t b = 0; b < s->n; b++) {
        record_batch_header_t h;
        record_iter_t it;
        shoal_record_t r;
        assert_int_equal(record_batch_parse(s->data + s->pos[b], s->len - s->pos[b], &h), 0);
        assert_int_equal(record_iter_init(&it, s->data + s->pos[b], &h), 0);
        while (record_iter_next(&it, &r) == 1)
            if (r.timestamp_ms >= ts)
                return r.offset;
    }
    return -1;
}

static void index_build(const char *dir, int64_t base, const seg_t *s, idx_t *x)
{
    index_writer_t w;
    record_batch_header_t h;
    char path[4096];

    assert_int_equal(index_writer_open(&w, dir, base), 0);
    for (size_t i = 0; i < s->n; i++) {
        assert_int_equal(record_batch_parse(s->data + s->pos[i], s->len - s->pos[i], &h), 0);
        assert_int_equal(index_writer_add(&w, s->pos[i], &h), 0);
    }
    index_writer_close(&w);
    assert_int_equal(segment_path(path, sizeof(path), dir, base, ".index"), 0);
    x->idx = harness_read_file(path, &x->idx_len);
    assert_int_equal(segment_path(path, sizeof(path), dir, base, ".timeindex"), 0);
    x->tidx = harness_read_file(path, &x->tidx_len);
    assert_non_null(x->idx);
    assert_non_null(x->tidx);
}

static void idx_free(idx_t *x)
{
    free(x->idx);
    free(x->tidx);
    memset(x, 0, sizeof(*x));
}

/* Every timestamp from before the first record to after the last gives the brute-force
 * answer, or SHOAL_EOFFSET with the segment's end. */
static void check_every_timestamp(const seg_t *s, int64_t base, const idx_t *x)
{
    int64_t lo = TS0 - 5000, hi = TS0 + (int64_t)s->n * 30 + 5000;

    for (int64_t ts = lo; ts <= hi; ts++) {
        int64_t end = -1, want = brute_force(s, ts);
        int64_t got =
            segment_find_timestamp(s->data, s->len, base, x ? x->idx : NULL, x ? x->idx_len : 0,
                                   x ? x->tidx : NULL, x ? x->tidx_len : 0, ts, &end);
        if (want < 0 && (got != SHOAL_EOFFSET || end != s->next_offset))
            fail_msg("ts %lld: got %lld (end %lld), want none (end %lld)", (long long)ts,
                     (long long)got, (long long)end, (long long)s->next_offset);
        if (want >= 0 && got != want)
            fail_msg("ts %lld: got %lld, want %lld", (long long)ts, (long long)got,
                     (long long)want);
    }
}

static int setup_dir(void **state)
{
    char *dir = malloc(4096);
    harness_tmpdir(dir, 4096, "segtime");
    *state = dir;
    return 0;
}

static int teardown_dir(void **state)
{
    harness_rmrf(*state);
    free(*state);
    return 0;
}

/* ------------------------------------------------------------------ lookups */

static void test_find_timestamp_is_exact_at_boundaries_and_outside_the_records(void **state)
{
    const char *dir = *state;
    const int64_t base = 5000;
    int64_t end = 0, last_ts;
    seg_t s = {0};
    idx_t x = {0};

    seg_fill(&s, base, 150, false);
    index_build(dir, base, &s, &x);
    last_ts = TS0 + (s.next_offset - base - 1) * 10;
    /* before the first record, at it, between two records, at the last, after it */
    assert_int_equal(
        segment_find_timestamp(s.data, s.len, base, x.idx, x.idx_len, x.tidx, x.tidx_len, 0, &end),
        base);
    assert_int_equal(segment_find_timestamp(s.data, s.len, base, x.idx, x.idx_len, x.tidx,
                                            x.tidx_len, TS0, &end),
                     base);
    assert_int_equal(segment_find_timestamp(s.data, s.len, base, x.idx, x.idx_len, x.tidx,
                                            x.tidx_len, TS0 + 101, &end),
                     base + 11);
    assert_int_equal(segment_find_timestamp(s.data, s.len, base, x.idx, x.idx_len, x.tidx,
                                            x.tidx_len, last_ts, &end),
                     s.next_offset - 1);
    assert_int_equal(segment_find_timestamp(s.data, s.len, base, x.idx, x.idx_len, x.tidx,
                                            x.tidx_len, last_ts + 1, &end),
                     SHOAL_EOFFSET);
    assert_int_equal(end, s.next_offset);
    /* and at every millisecond in between, with the indexes and without */
    check_every_timestamp(&s, base, &x);
    check_every_timestamp(&s, base, NULL);
    idx_free(&x);
    seg_free(&s);
}

static void test_find_timestamp_with_out_of_order_timestamps_finds_the_earliest(void **state)
{
    const char *dir = *state;
    const int64_t base = 0;
    seg_t s = {0};
    idx_t x = {0};

    seg_fill(&s, base, 200, true);
    index_build(dir, base, &s, &x);
    assert_true(x.tidx_len >= 4 * SEGMENT_TIMEINDEX_ENTRY_BYTES);
    check_every_timestamp(&s, base, &x);
    check_every_timestamp(&s, base, NULL);
    idx_free(&x);
    seg_free(&s);
}

/* Kafka's own lookup (TimeIndex.lookup, then the .index, then a walk), written here from
 * its definition to read shoal's files as a Kafka broker would: the entry with the largest
 * timestamp <= ts, the position of the .index entry at or below the offset it names, then
 * the first record >= ts from there. -1 when none is. */
static int64_t kafka_lookup(const seg_t *s, int64_t base, const idx_t *x, int64_t ts)
{
    int64_t offset = base;
    uint64_t pos = 0;

    for (size_t i = 0; i + SEGMENT_TIMEINDEX_ENTRY_BYTES <= x->tidx_len;
         i += SEGMENT_TIMEINDEX_ENTRY_BYTES)
        if ((int64_t)shoal__get_be64(x->tidx + i) <= ts)
            offset = base + shoal__get_be32(x->tidx + i + 8);
    for (size_t i = 0; i + SEGMENT_INDEX_ENTRY_BYTES <= x->idx_len; i += SEGMENT_INDEX_ENTRY_BYTES)
        if (base + shoal__get_be32(x->idx + i) <= offset)
            pos = shoal__get_be32(x->idx + i + 4);
    for (size_t b = 0; b < s->n; b++) {
        record_batch_header_t h;
        record_iter_t it;
        shoal_record_t r;
        if (s->pos[b] < pos)
            continue;
        assert_int_equal(record_batch_parse(s->data + s->pos[b], s->len - s->pos[b], &h), 0);
        if (h.max_timestamp < ts)
            continue;
        assert_int_equal(record_iter_init(&it, s->data + s->pos[b], &h), 0);
        while (record_iter_next(&it, &r) == 1)
            if (r.timestamp_ms >= ts)
                return r.offset;
    }
    return -1;
}

/* The .timeindex follows Kafka's rule (an entry names the batch that first reached its
 * timestamp, not the batch at the index point), so Kafka's lookup over shoal's files gives
 * the right answer for every timestamp, out-of-order ones included. */
static void test_kafkas_lookup_over_the_time_index_is_exact(void **state)
{
    const char *dir = *state;
    seg_t s = {0};
    idx_t x = {0};

    seg_fill(&s, 0, 200, true);
    index_build(dir, 0, &s, &x);
    for (int64_t ts = TS0 - 5000; ts <= TS0 + (int64_t)s.n * 30 + 5000; ts++) {
        int64_t want = brute_force(&s, ts), got = kafka_lookup(&s, 0, &x, ts);
        if (got != want)
            fail_msg("ts %lld: Kafka's lookup finds %lld, want %lld", (long long)ts, (long long)got,
                     (long long)want);
    }
    idx_free(&x);
    seg_free(&s);
}

/* Files written before that rule named the batch at the index point: shoal's lookup is
 * still exact over them. */
static void test_find_timestamp_is_exact_over_time_index_entries_at_index_points(void **state)
{
    const char *dir = *state;
    int64_t last_ts = -1;
    seg_t s = {0};
    idx_t x = {0};
    size_t n = 0;

    seg_fill(&s, 0, 200, true);
    index_build(dir, 0, &s, &x);
    /* Rewrite the .timeindex the old way: at each .index entry, the running maximum up to
     * its batch and that batch's last offset, when the maximum rose. */
    for (size_t e = 0; e + SEGMENT_INDEX_ENTRY_BYTES <= x.idx_len; e += SEGMENT_INDEX_ENTRY_BYTES) {
        uint64_t pos = shoal__get_be32(x.idx + e + 4);
        int64_t max_ts = -1;
        record_batch_header_t h;
        for (size_t b = 0; b < s.n && s.pos[b] <= pos; b++) {
            assert_int_equal(record_batch_parse(s.data + s.pos[b], s.len - s.pos[b], &h), 0);
            max_ts = max_ts > h.max_timestamp ? max_ts : h.max_timestamp;
        }
        if (max_ts <= last_ts)
            continue;
        assert_true(n + SEGMENT_TIMEINDEX_ENTRY_BYTES <= x.tidx_len);
        shoal__put_be64(x.tidx + n, (uint64_t)max_ts);
        memcpy(x.tidx + n + 8, x.idx + e, 4);
        n += SEGMENT_TIMEINDEX_ENTRY_BYTES;
        last_ts = max_ts;
    }
    x.tidx_len = n;
    assert_true(n >= 4 * SEGMENT_TIMEINDEX_ENTRY_BYTES);
    check_every_timestamp(&s, 0, &x);
    idx_free(&x);
    seg_free(&s);
}

/* A late record in a batch the index skipped over: an entry after it must still not let a
 * lookup start past it. This is what the running maximum in .timeindex entries is for. */
static void test_find_timestamp_sees_a_late_record_between_index_entries(void **state)
{
    const char *dir = *state;
    int64_t ts[1];
    seg_t s = {0};
    idx_t x = {0};

    s.next_offset = 0;
    for (int i = 0; i < 120; i++) {
        ts[0] = i == 3 ? TS0 + 100000 : TS0 + i;
        seg_batch(&s, ts, 1, 200);
    }
    index_build(dir, 0, &s, &x);
    assert_int_equal(segment_find_timestamp(s.data, s.len, 0, x.idx, x.idx_len, x.tidx, x.tidx_len,
                                            TS0 + 50000, NULL),
                     3);
    assert_int_equal(segment_find_timestamp(s.data, s.len, 0, x.idx, x.idx_len, x.tidx, x.tidx_len,
                                            TS0 + 100, NULL),
                     3);
    assert_int_equal(segment_find_timestamp(s.data, s.len, 0, x.idx, x.idx_len, x.tidx, x.tidx_len,
                                            TS0 + 100001, NULL),
                     SHOAL_EOFFSET);
    check_every_timestamp(&s, 0, &x);
    idx_free(&x);
    seg_free(&s);
}

static void test_find_timestamp_picks_the_first_late_record_inside_a_batch(void **state)
{
    const int64_t ts[] = {TS0 + 50, TS0 + 10, TS0 + 70, TS0 + 20, TS0 + 60};
    record_batch_header_t h;
    seg_t s = {0};
    (void)state;

    s.next_offset = 40;
    seg_batch(&s, ts, 5, 10);
    assert_int_equal(record_batch_parse(s.data, s.len, &h), 0);
    assert_int_equal(segment_batch_find_timestamp(s.data, &h, TS0), 40);
    assert_int_equal(segment_batch_find_timestamp(s.data, &h, TS0 + 50), 40);
    assert_int_equal(segment_batch_find_timestamp(s.data, &h, TS0 + 51), 42);
    assert_int_equal(segment_batch_find_timestamp(s.data, &h, TS0 + 61), 42);
    assert_int_equal(segment_batch_find_timestamp(s.data, &h, TS0 + 70), 42);
    assert_int_equal(segment_batch_find_timestamp(s.data, &h, TS0 + 71), SHOAL_EOFFSET);
    seg_free(&s);
}

static void test_find_timestamp_of_empty_data_or_empty_index(void **state)
{
    const char *dir = *state;
    int64_t end = -1;
    seg_t s = {0};
    idx_t x = {0}, no_tidx;

    assert_int_equal(segment_find_timestamp(NULL, 0, 77, NULL, 0, NULL, 0, 0, &end), SHOAL_EOFFSET);
    assert_int_equal(end, 77);
    seg_fill(&s, 77, 120, true);
    index_build(dir, 77, &s, &x);
    /* an empty .timeindex beside a good .index, and an empty .index beside a good one */
    no_tidx = x;
    no_tidx.tidx_len = 0;
    check_every_timestamp(&s, 77, &no_tidx);
    no_tidx = x;
    no_tidx.idx_len = 0;
    check_every_timestamp(&s, 77, &no_tidx);
    idx_free(&x);
    seg_free(&s);
}

/* A sound entry is used: damage before the batch it names is never read, while a lookup
 * without the indexes has to walk into it. */
static void test_find_timestamp_starts_after_the_time_index_entry(void **state)
{
    const char *dir = *state;
    int64_t last_ts;
    seg_t s = {0};
    idx_t x = {0};

    seg_fill(&s, 0, 200, false);
    index_build(dir, 0, &s, &x);
    last_ts = TS0 + (s.next_offset - 1) * 10;
    s.data[s.pos[1] + 16] = 0; /* magic of batch 2 */
    assert_int_equal(segment_find_timestamp(s.data, s.len, 0, x.idx, x.idx_len, x.tidx, x.tidx_len,
                                            last_ts, NULL),
                     s.next_offset - 1);
    assert_int_equal(segment_find_timestamp(s.data, s.len, 0, NULL, 0, NULL, 0, last_ts, NULL),
                     SHOAL_ECORRUPT);
    idx_free(&x);
    seg_free(&s);
}

static void check_with_bad_tidx(const seg_t *s, const idx_t *good, const uint8_t *tidx, size_t len)
{
    idx_t bad = *good;
    bad.tidx = (uint8_t *)tidx;
    bad.tidx_len = len;
    check_every_timestamp(s, 0, &bad);
}

static void test_find_timestamp_ignores_a_corrupt_time_index(void **state)
{
    const char *dir = *state;
    seg_t s = {0};
    idx_t x = {0};
    uint8_t *bad;
    size_t n;

    seg_fill(&s, 0, 200, true);
    index_build(dir, 0, &s, &x);
    n = x.tidx_len;
    assert_true(n >= 4 * SEGMENT_TIMEINDEX_ENTRY_BYTES);
    bad = malloc(n);
    assert_non_null(bad);

    /* Relative offsets that name no indexed batch. */
    memcpy(bad, x.tidx, n);
    for (size_t i = 0; i < n; i += 12)
        shoal__put_be32(bad + i + 8, shoal__get_be32(x.tidx + i + 8) + 1);
    check_with_bad_tidx(&s, &x, bad, n);
    /* Timestamps below the max timestamp of the batch they name. (A timestamp lowered
     * only below an earlier batch's cannot be told from a good one without reading the
     * log; recovery rewrites the last segment's index when it differs from the log's.) */
    memcpy(bad, x.tidx, n);
    for (size_t i = 0; i < n; i += 12) {
        uint32_t rel = shoal__get_be32(x.tidx + i + 8);
        record_batch_header_t h;
        size_t b = 0;
        while (b + 1 < s.n && (int64_t)rel > 0 &&
               record_batch_parse(s.data + s.pos[b], s.len - s.pos[b], &h) == 0 &&
               h.base_offset + h.last_offset_delta < (int64_t)rel)
            b++;
        assert_int_equal(record_batch_parse(s.data + s.pos[b], s.len - s.pos[b], &h), 0);
        shoal__put_be64(bad + i, (uint64_t)(h.max_timestamp - 1));
    }
    check_with_bad_tidx(&s, &x, bad, n);
    /* Entries out of order: swap the middle ones. */
    memcpy(bad, x.tidx, n);
    memcpy(bad + 12, x.tidx + 24, 12);
    memcpy(bad + 24, x.tidx + 12, 12);
    check_with_bad_tidx(&s, &x, bad, n);
    /* Noise, and a length that is not a whole number of entries. */
    for (size_t i = 0; i < n; i++)
        bad[i] = (uint8_t)(i * 131 + 17);
    check_with_bad_tidx(&s, &x, bad, n);
    check_with_bad_tidx(&s, &x, x.tidx, n - 5);
    /* A good .timeindex with a damaged .index: the entries cannot be checked, so unused. */
    memcpy(bad, x.tidx, n);
    for (size_t i = 0; i < x.idx_len; i++)
        x.idx[i] ^= 0x5a;
    check_with_bad_tidx(&s, &x, bad, n);
    free(bad);
    idx_free(&x);
    seg_free(&s);
}

/* ------------------------------------------------------------------ the index writer */

static void write_log(const char *dir, int64_t base, const seg_t *s, size_t batches)
{
    char path[4096];
    int fd;

    assert_int_equal(segment_path(path, sizeof(path), dir, base, ".log"), 0);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(shoal__pwrite_all(fd, s->data, s->pos[batches], 0), 0);
    close(fd);
}

static void add_batches(const char *dir, int64_t base, const seg_t *s, size_t from, size_t to)
{
    record_batch_header_t h;
    index_writer_t w;

    assert_int_equal(index_writer_open(&w, dir, base), 0);
    for (size_t i = from; i < to; i++) {
        assert_int_equal(record_batch_parse(s->data + s->pos[i], s->len - s->pos[i], &h), 0);
        assert_int_equal(index_writer_add(&w, s->pos[i], &h), 0);
    }
    index_writer_close(&w);
}

/* The flusher reopens a segment's index after a restart with the log written so far: the
 * running maximum must include batches after the last entry, or the entries differ from
 * those of one session and of a recovery rebuild. */
static void test_index_writer_reopen_restores_the_running_max_from_the_log(void **state)
{
    const char *dir = *state;
    int64_t ts[1];
    seg_t s = {0};
    idx_t one = {0};
    uint8_t *two;
    size_t two_len = 0, cut;
    char path[4096];
    segment_recovery_t rec;

    s.next_offset = 0;
    for (int i = 0; i < 100; i++) {
        ts[0] = TS0 + i + (i == 21 ? 5000 : 0);
        seg_batch(&s, ts, 1, 200);
    }
    index_build(dir, 0, &s, &one);
    assert_int_equal(segment_path(path, sizeof(path), dir, 0, ".index"), 0);
    unlink(path);
    assert_int_equal(segment_path(path, sizeof(path), dir, 0, ".timeindex"), 0);
    unlink(path);

    /* The first session stops just after the late batch 21, which got no entry. */
    cut = 22;
    write_log(dir, 0, &s, cut);
    add_batches(dir, 0, &s, 0, cut);
    write_log(dir, 0, &s, s.n);
    add_batches(dir, 0, &s, cut, s.n);
    two = harness_read_file(path, &two_len);
    assert_non_null(two);
    assert_int_equal(two_len, one.tidx_len);
    assert_memory_equal(two, one.tidx, two_len);
    free(two);

    /* Recovery agrees: nothing to rebuild. */
    assert_int_equal(segment_recover(dir, 0, true, &rec), 0);
    assert_false(rec.index_rebuilt);
    idx_free(&one);
    seg_free(&s);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_find_timestamp_is_exact_at_boundaries_and_outside_the_records),
        T(test_find_timestamp_with_out_of_order_timestamps_finds_the_earliest),
        T(test_kafkas_lookup_over_the_time_index_is_exact),
        T(test_find_timestamp_is_exact_over_time_index_entries_at_index_points),
        T(test_find_timestamp_sees_a_late_record_between_index_entries),
        T(test_find_timestamp_picks_the_first_late_record_inside_a_batch),
        T(test_find_timestamp_of_empty_data_or_empty_index),
        T(test_find_timestamp_starts_after_the_time_index_entry),
        T(test_find_timestamp_ignores_a_corrupt_time_index),
        T(test_index_writer_reopen_restores_the_running_max_from_the_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
