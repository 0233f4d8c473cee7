/* test_record_offsets.c - record_batch_encode_with_offsets(): a rewritten batch keeps its
 * records' offsets and its offset range (gaps inside it), decodes with the ordinary
 * iterator, and bad offset deltas are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "record.h"
#include "segment.h"

#define NOW_MS 1700000000000LL

static void fields(record_batch_fields_t *f, int64_t base)
{
    record_batch_fields_init(f);
    f->base_offset = base;
}

static void test_offsets_and_range_are_kept(void **state)
{
    static const int32_t deltas[] = {1, 4, 9};
    shoal_message_t m[3] = {
        {.key = "a", .key_len = 1, .value = "x", .value_len = 1, .timestamp_ms = NOW_MS + 5},
        {.key = "b", .key_len = 1, .value = NULL, .value_len = 0, .timestamp_ms = NOW_MS},
        {.key = NULL, .key_len = 0, .value = "zz", .value_len = 2, .timestamp_ms = NOW_MS + 9},
    };
    uint8_t buf[512];
    record_batch_header_t h;
    record_batch_fields_t f;
    record_iter_t it;
    shoal_record_t r;
    size_t len;
    (void)state;

    fields(&f, 100);
    assert_int_equal(
        record_batch_encode_with_offsets(buf, sizeof(buf), &f, m, deltas, 3, 11, NOW_MS, &len), 0);
    assert_int_equal(len, record_batch_encoded_size_with_offsets(m, deltas, 3, NOW_MS));
    assert_int_equal(record_batch_parse(buf, len, &h), 0);
    assert_int_equal(record_batch_check_crc(buf, &h), 0);
    assert_int_equal(h.base_offset, 100);
    assert_int_equal(h.last_offset_delta, 11);
    assert_int_equal(h.record_count, 3);
    assert_int_equal(h.first_timestamp, NOW_MS);
    assert_int_equal(h.max_timestamp, NOW_MS + 9);
    assert_int_equal(record_iter_init(&it, buf, &h), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(record_iter_next(&it, &r), 1);
        assert_int_equal(r.offset, 100 + deltas[i]);
        assert_int_equal(r.timestamp_ms, m[i].timestamp_ms);
        assert_int_equal(r.key_len, m[i].key ? (int32_t)m[i].key_len : -1);
        assert_true((r.value == NULL) == (m[i].value == NULL));
    }
    assert_int_equal(record_iter_next(&it, &r), 0);
}

static void test_identity_deltas_match_the_plain_encoder(void **state)
{
    static const int32_t deltas[] = {0, 1};
    shoal_header_t hd = {.key = "h", .key_len = 1, .value = "v", .value_len = 1};
    shoal_message_t m[2] = {
        {.key = "k", .key_len = 1, .value = "one", .value_len = 3, .timestamp_ms = NOW_MS},
        {.value = "two",
         .value_len = 3,
         .headers = &hd,
         .header_count = 1,
         .timestamp_ms = NOW_MS + 1},
    };
    uint8_t a[256], b[256];
    record_batch_fields_t f;
    size_t la, lb;
    (void)state;

    fields(&f, 7);
    assert_int_equal(record_batch_encode(a, sizeof(a), &f, m, 2, NOW_MS, &la), 0);
    assert_int_equal(
        record_batch_encode_with_offsets(b, sizeof(b), &f, m, deltas, 2, 1, NOW_MS, &lb), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
}

/* Encode msgs both ways (the plain encoder, which takes its short-form fast path when it
 * can, and the general writer behind explicit deltas 0..n-1) and require the same bytes and
 * the same plan. Returns whether the plain encoder's plan was short-form. */
static bool encode_both_ways(const shoal_message_t *m, size_t n)
{
    static uint8_t a[1 << 23], b[1 << 23];
    int32_t deltas[80];
    record_batch_plan_t plan;
    record_batch_fields_t f;
    size_t la = 0, lb = 0;

    assert_true(n <= 80);
    for (size_t i = 0; i < n; i++)
        deltas[i] = (int32_t)i;
    fields(&f, 42);
    assert_int_equal(record_batch_plan(m, n, NOW_MS, &plan), 0);
    assert_int_equal(record_batch_encode(a, sizeof(a), &f, m, n, NOW_MS, &la), 0);
    assert_int_equal(record_batch_encode_with_offsets(b, sizeof(b), &f, m, deltas, n,
                                                      (int32_t)n - 1, NOW_MS, &lb),
                     0);
    assert_int_equal(la, lb);
    assert_int_equal(plan.size, la);
    assert_memory_equal(a, b, la);
    /* Both share the running CRC (values of 1 KiB or more are checksummed as copied):
     * check it against a checksum of the finished batch. */
    record_batch_header_t h;
    assert_int_equal(record_batch_parse(a, la, &h), 0);
    assert_int_equal(record_batch_check_crc(a, &h), 0);
    /* max_one: the largest record encoded alone. */
    size_t max_one = 0;
    for (size_t i = 0; i < n; i++) {
        size_t one = record_batch_encoded_size(&m[i], 1, NOW_MS);
        max_one = one > max_one ? one : max_one;
    }
    assert_int_equal(plan.max_one, max_one);
    return plan.short_form;
}

static void test_short_form_encodes_the_same_bytes_as_the_general_writer(void **state)
{
    static uint8_t v[70000 + 64]; /* values start at v + i, i < 64 */
    static const size_t lens[] = {0,  1,  7,  8,  15,  16,   17,   31,
                                  32, 33, 63, 64, 127, 8191, 8192, 70000};
    shoal_header_t hd = {.key = "h", .key_len = 1, .value = "v", .value_len = 1};
    shoal_message_t m[80];
    (void)state;

    for (size_t i = 0; i < sizeof(v); i++)
        v[i] = (uint8_t)(i * 31 + 7);
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        for (size_t i = 0; i < 64; i++) /* keys absent, empty or short; timestamps 0..63 ms */
            m[i] = (shoal_message_t){.key = i % 3 == 0 ? NULL : v + 1,
                                     .key_len = i % 3 == 1 ? 0 : i % 5,
                                     .value = v + i,
                                     .value_len = lens[k],
                                     .timestamp_ms = i % 2 ? NOW_MS + (int64_t)i : 0};
        assert_true(encode_both_ways(m, 1));
        assert_true(encode_both_ways(m, 64));
    }
    /* Null values, and the edges where the fast path must step aside. */
    m[5].value = NULL;
    assert_true(encode_both_ways(m, 64));
    m[9].timestamp_ms = NOW_MS + 64; /* a delta of 64 needs two bytes */
    assert_false(encode_both_ways(m, 64));
    m[9].timestamp_ms = NOW_MS - 1;   /* an earlier record moves the base timestamp... */
    m[63].timestamp_ms = NOW_MS + 62; /* ...and the range is 63 ms again */
    assert_true(encode_both_ways(m, 64));
    for (size_t i = 64; i < 80; i++)
        m[i] = m[i - 64];
    assert_false(encode_both_ways(m, 65)); /* offset delta 64 needs two bytes */
    m[3].headers = &hd;
    m[3].header_count = 1;
    assert_false(encode_both_ways(m, 64));
}

static void test_empty_batch_carries_the_range(void **state)
{
    uint8_t buf[128];
    record_batch_header_t h;
    record_batch_fields_t f;
    record_iter_t it;
    shoal_record_t r;
    segment_scan_t scan;
    size_t len;
    int32_t none = 0;
    (void)state;

    fields(&f, 40);
    assert_int_equal(
        record_batch_encode_with_offsets(buf, sizeof(buf), &f, NULL, &none, 0, 5, NOW_MS, &len), 0);
    assert_int_equal(len, RECORD_BATCH_HEADER_BYTES);
    assert_int_equal(record_batch_parse(buf, len, &h), 0);
    assert_int_equal(record_batch_check_crc(buf, &h), 0);
    assert_int_equal(h.record_count, 0);
    assert_int_equal(h.last_offset_delta, 5);
    assert_int_equal(h.max_timestamp, NOW_MS);
    assert_int_equal(record_iter_init(&it, buf, &h), 0);
    assert_int_equal(record_iter_next(&it, &r), 0);
    /* A segment scan counts its range: the next offset is 46. */
    assert_int_equal(segment_scan_bytes(buf, len, 40, true, NULL, NULL, &scan), 0);
    assert_int_equal(scan.error, 0);
    assert_int_equal(scan.next_offset, 46);
}

static void test_bad_deltas_are_refused(void **state)
{
    static const int32_t falling[] = {3, 2};
    static const int32_t repeated[] = {2, 2};
    static const int32_t negative[] = {-1, 2};
    static const int32_t fine[] = {0, 2};
    shoal_message_t m[2] = {{.value = "a", .value_len = 1}, {.value = "b", .value_len = 1}};
    uint8_t buf[256];
    record_batch_fields_t f;
    size_t len;
    (void)state;

    fields(&f, 0);
    assert_int_equal(
        record_batch_encode_with_offsets(buf, sizeof(buf), &f, m, falling, 2, 5, NOW_MS, &len),
        SHOAL_EINVAL);
    assert_int_equal(
        record_batch_encode_with_offsets(buf, sizeof(buf), &f, m, repeated, 2, 5, NOW_MS, &len),
        SHOAL_EINVAL);
    assert_int_equal(
        record_batch_encode_with_offsets(buf, sizeof(buf), &f, m, negative, 2, 5, NOW_MS, &len),
        SHOAL_EINVAL);
    /* last delta before the last record's */
    assert_int_equal(
        record_batch_encode_with_offsets(buf, sizeof(buf), &f, m, fine, 2, 1, NOW_MS, &len),
        SHOAL_EINVAL);
    assert_int_equal(
        record_batch_encode_with_offsets(buf, sizeof(buf), &f, m, NULL, 2, 1, NOW_MS, &len),
        SHOAL_EINVAL);
    assert_int_equal(record_batch_encode_with_offsets(buf, 20, &f, m, fine, 2, 2, NOW_MS, &len),
                     -ENOSPC);
    /* The plain encoder still refuses an empty batch. */
    assert_int_equal(record_batch_encode(buf, sizeof(buf), &f, m, 0, NOW_MS, &len), SHOAL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offsets_and_range_are_kept),
        cmocka_unit_test(test_identity_deltas_match_the_plain_encoder),
        cmocka_unit_test(test_short_form_encodes_the_same_bytes_as_the_general_writer),
        cmocka_unit_test(test_empty_batch_carries_the_range),
        cmocka_unit_test(test_bad_deltas_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
