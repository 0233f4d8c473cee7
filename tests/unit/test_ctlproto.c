/* test_ctlproto.c - the control protocol codec: header checks, field round trips, the
 * writer's sticky errors, and a reader that never reads past the end of what it is given
 * (each truncated or random payload is copied into a buffer of exactly its size, so ASan
 * reports any read beyond it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"
#include "util.h"

/* The payload of a finished frame, copied into an exact-size heap buffer. */
static uint8_t *payload_copy(const ctl_writer_t *w, size_t *len)
{
    uint8_t *p;
    *len = w->len - CTL_HEADER_BYTES;
    p = malloc(*len ? *len : 1);
    assert_non_null(p);
    memcpy(p, w->buf + CTL_HEADER_BYTES, *len);
    return p;
}

static shoal_topic_config_t sample_config(void)
{
    shoal_topic_config_t cfg = {.partitions = 12,
                                .storage = SHOAL_STORAGE_MEMORY,
                                .segment_bytes = 0x123456789ull,
                                .ring_slots = 8,
                                .max_record_bytes = 1u << 20};
    return cfg;
}

/* Built field by field over zeroes, so that comparing whole structs compares no padding
 * bytes left undefined. */
static shoal_partition_info_t sample_info(void)
{
    shoal_partition_info_t pi;
    memset(&pi, 0, sizeof(pi));
    pi.partition = 7;
    pi.log_start_offset = 100;
    pi.log_end_offset = INT64_MAX;
    pi.flushed_offset = -1;
    pi.shm_bytes = UINT64_MAX;
    pi.disk_bytes = 42;
    return pi;
}

/* A frame holding one field of every kind, as a daemon or client would build it. */
static void build_every_field(ctl_writer_t *w)
{
    shoal_topic_config_t cfg = sample_config();
    shoal_partition_info_t pi = sample_info();

    ctl_frame_begin(w, CTL_TOPIC_DESCRIBE, 77);
    ctl_put_u8(w, 0xab);
    ctl_put_u16(w, 0xbeef);
    ctl_put_u32(w, 0xdeadbeef);
    ctl_put_u64(w, 0x0102030405060708ull);
    ctl_put_i32(w, -5);
    ctl_put_i64(w, INT64_MIN);
    ctl_put_str(w, "orders");
    ctl_put_str(w, "");
    ctl_put_topic_config(w, &cfg);
    ctl_put_partition_info(w, &pi);
}

/* Read what build_every_field() wrote; the reader's error after the last field. */
static int read_every_field(ctl_reader_t *r, bool check)
{
    shoal_topic_config_t cfg, want_cfg = sample_config();
    shoal_partition_info_t pi, want_pi = sample_info();
    char s1[16], s2[4];
    uint8_t u8 = ctl_get_u8(r);
    uint16_t u16 = ctl_get_u16(r);
    uint32_t u32 = ctl_get_u32(r);
    uint64_t u64 = ctl_get_u64(r);
    int32_t i32 = ctl_get_i32(r);
    int64_t i64 = ctl_get_i64(r);

    ctl_get_str(r, s1, sizeof(s1));
    ctl_get_str(r, s2, sizeof(s2));
    memset(&pi, 0, sizeof(pi));
    ctl_get_topic_config(r, &cfg);
    ctl_get_partition_info(r, &pi);
    if (!check)
        return r->err;
    assert_int_equal(u8, 0xab);
    assert_int_equal(u16, 0xbeef);
    assert_int_equal(u32, 0xdeadbeef);
    assert_true(u64 == 0x0102030405060708ull);
    assert_int_equal(i32, -5);
    assert_true(i64 == INT64_MIN);
    assert_string_equal(s1, "orders");
    assert_string_equal(s2, "");
    assert_memory_equal(&cfg, &want_cfg, sizeof(cfg));
    assert_memory_equal(&pi, &want_pi, sizeof(pi));
    return r->err;
}

static void test_ctlproto_round_trips_every_field_type(void **state)
{
    ctl_writer_t w;
    ctl_reader_t r;
    ctl_header_t h;
    uint8_t *p;
    size_t len;

    (void)state;
    ctl_writer_init(&w);
    build_every_field(&w);
    assert_int_equal(ctl_frame_end(&w), 0);
    assert_int_equal(ctl_header_decode(w.buf, &h), 0);
    assert_int_equal(h.type, CTL_TOPIC_DESCRIBE);
    assert_int_equal(h.seq, 77);
    assert_int_equal(h.len, w.len - CTL_HEADER_BYTES);

    p = payload_copy(&w, &len);
    ctl_reader_init(&r, p, len);
    assert_int_equal(read_every_field(&r, true), 0);
    assert_int_equal(ctl_reader_finish(&r), 0);
    free(p);
    ctl_writer_release(&w);
}

static void test_ctlproto_encodes_little_endian(void **state)
{
    ctl_writer_t w;
    const uint8_t want[] = {0x04, 0x03, 0x02, 0x01, 0x02, 0x00, 'h', 'i'};

    (void)state;
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_HELLO, 1);
    ctl_put_u32(&w, 0x01020304);
    ctl_put_str(&w, "hi");
    assert_int_equal(ctl_frame_end(&w), 0);
    assert_int_equal(w.len, CTL_HEADER_BYTES + sizeof(want));
    assert_memory_equal(w.buf + CTL_HEADER_BYTES, want, sizeof(want));
    /* "SHOL" magic, version 2, type 1, length 8, seq 1 */
    assert_memory_equal(w.buf, "SHOL\x02\x00\x01\x00\x08\x00\x00\x00\x01\x00\x00\x00", 16);
    ctl_writer_release(&w);
}

static void test_ctlproto_truncated_payload_fails_sticky_at_every_length(void **state)
{
    ctl_writer_t w;
    ctl_reader_t r;
    uint8_t *full, *cut;
    size_t len;

    (void)state;
    ctl_writer_init(&w);
    build_every_field(&w);
    assert_int_equal(ctl_frame_end(&w), 0);
    full = payload_copy(&w, &len);
    for (size_t n = 0; n < len; n++) {
        cut = malloc(n ? n : 1);
        assert_non_null(cut);
        memcpy(cut, full, n);
        ctl_reader_init(&r, cut, n);
        assert_int_equal(read_every_field(&r, false), SHOAL_EPROTO);
        /* sticky: later gets return zero values and do not clear the error */
        assert_int_equal(ctl_get_u64(&r), 0);
        assert_int_equal(ctl_get_u8(&r), 0);
        assert_int_equal(r.err, SHOAL_EPROTO);
        assert_true(r.p <= r.end);
        assert_int_equal(ctl_reader_finish(&r), SHOAL_EPROTO);
        free(cut);
    }
    free(full);
    ctl_writer_release(&w);
}

static void test_ctlproto_get_after_underflow_does_not_resume(void **state)
{
    const uint8_t bytes[3] = {1, 2, 3};
    ctl_reader_t r;

    (void)state;
    ctl_reader_init(&r, bytes, sizeof(bytes));
    assert_int_equal(ctl_get_u32(&r), 0);
    assert_int_equal(r.err, SHOAL_EPROTO);
    /* one byte would fit, but the reader stays failed */
    assert_int_equal(ctl_get_u8(&r), 0);
    assert_int_equal(r.err, SHOAL_EPROTO);
}

static void test_ctlproto_rejects_string_too_long_for_buffer(void **state)
{
    ctl_writer_t w;
    ctl_reader_t r;
    char buf[6];
    uint8_t *p;
    size_t len;

    (void)state;
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_TOPIC_DELETE, 1);
    ctl_put_str(&w, "sixsix"); /* 6 bytes + NUL needs 7 */
    assert_int_equal(ctl_frame_end(&w), 0);
    p = payload_copy(&w, &len);

    memset(buf, 'x', sizeof(buf));
    ctl_reader_init(&r, p, len);
    ctl_get_str(&r, buf, sizeof(buf));
    assert_int_equal(r.err, SHOAL_EPROTO);
    assert_string_equal(buf, "");
    assert_string_equal(r.why, "a string of 6 bytes where the field takes 5 at most");

    ctl_reader_init(&r, p, len);
    ctl_get_str(&r, buf, 7 - 1);
    assert_int_equal(r.err, SHOAL_EPROTO);
    free(p);
    ctl_writer_release(&w);
}

static void test_ctlproto_string_exactly_filling_buffer_is_accepted(void **state)
{
    ctl_writer_t w;
    ctl_reader_t r;
    char buf[7];
    uint8_t *p;
    size_t len;

    (void)state;
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_TOPIC_DELETE, 1);
    ctl_put_str(&w, "sixsix");
    assert_int_equal(ctl_frame_end(&w), 0);
    p = payload_copy(&w, &len);
    ctl_reader_init(&r, p, len);
    ctl_get_str(&r, buf, sizeof(buf));
    assert_int_equal(ctl_reader_finish(&r), 0);
    assert_string_equal(buf, "sixsix");
    free(p);
    ctl_writer_release(&w);
}

static void test_ctlproto_rejects_string_with_embedded_nul(void **state)
{
    const uint8_t bytes[] = {5, 0, 'a', 'b', '\0', 'c', 'd'};
    ctl_reader_t r;
    char buf[32];

    (void)state;
    ctl_reader_init(&r, bytes, sizeof(bytes));
    ctl_get_str(&r, buf, sizeof(buf));
    assert_int_equal(r.err, SHOAL_EPROTO);
    assert_string_equal(buf, "");
    assert_int_equal(ctl_reader_finish(&r), SHOAL_EPROTO);
}

static void test_ctlproto_trailing_bytes_fail_finish(void **state)
{
    const uint8_t bytes[] = {1, 0, 0, 0, 0xff};
    ctl_reader_t r;

    (void)state;
    ctl_reader_init(&r, bytes, sizeof(bytes));
    assert_int_equal(ctl_get_u32(&r), 1);
    assert_int_equal(r.err, 0);
    assert_int_equal(ctl_reader_finish(&r), SHOAL_EPROTO);
    assert_string_equal(r.why, "1 unexpected trailing bytes"); /* for the refusal's detail */
    assert_int_equal(ctl_get_u8(&r), 0xff);
    assert_int_equal(ctl_reader_finish(&r), 0);
}

static void test_ctlproto_header_round_trip(void **state)
{
    ctl_header_t in = {CTL_MAGIC, CTL_VERSION, CTL_ATTACH | CTL_RESPONSE, CTL_MAX_PAYLOAD,
                       0xfedcba98},
                 out;
    uint8_t b[CTL_HEADER_BYTES];

    (void)state;
    ctl_header_encode(b, &in);
    assert_int_equal(ctl_header_decode(b, &out), 0);
    assert_memory_equal(&in, &out, sizeof(in));
}

static void test_ctlproto_header_rejects_bad_magic_version_and_size(void **state)
{
    ctl_header_t h = {CTL_MAGIC, CTL_VERSION, CTL_HELLO, 0, 1}, out;
    uint8_t b[CTL_HEADER_BYTES];

    (void)state;
    h.magic = 0x4c4f4854u;
    ctl_header_encode(b, &h);
    assert_int_equal(ctl_header_decode(b, &out), SHOAL_EPROTO);
    assert_non_null(strstr(shoal_errmsg(), "magic"));

    h.magic = CTL_MAGIC;
    h.version = CTL_VERSION + 1;
    ctl_header_encode(b, &h);
    assert_int_equal(ctl_header_decode(b, &out), SHOAL_EVERSION);

    h.version = CTL_VERSION;
    h.len = CTL_MAX_PAYLOAD + 1;
    ctl_header_encode(b, &h);
    assert_int_equal(ctl_header_decode(b, &out), SHOAL_EPROTO);
    h.len = UINT32_MAX;
    ctl_header_encode(b, &h);
    assert_int_equal(ctl_header_decode(b, &out), SHOAL_EPROTO);
}

static void test_ctlproto_frame_end_rejects_oversize_payload(void **state)
{
    ctl_writer_t w;

    (void)state;
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_TOPIC_LIST, 3);
    for (size_t i = 0; i < CTL_MAX_PAYLOAD / 8; i++)
        ctl_put_u64(&w, i);
    assert_int_equal(w.len - CTL_HEADER_BYTES, CTL_MAX_PAYLOAD);
    assert_int_equal(ctl_frame_end(&w), 0);
    ctl_put_u8(&w, 1);
    assert_int_equal(ctl_frame_end(&w), SHOAL_EPROTO);
    ctl_writer_release(&w);
}

/* Responses may carry more than requests (lists grow with the broker): up to
 * CTL_MAX_REPLY, and the header decoder holds each kind to its own limit. */
static void test_ctlproto_responses_may_exceed_the_request_limit(void **state)
{
    ctl_header_t h = {CTL_MAGIC, CTL_VERSION, CTL_TOPIC_LIST | CTL_RESPONSE, CTL_MAX_REPLY, 1};
    uint8_t b[CTL_HEADER_BYTES];
    ctl_writer_t w;
    ctl_header_t out;

    (void)state;
    ctl_header_encode(b, &h);
    assert_int_equal(ctl_header_decode(b, &out), 0);
    h.len = CTL_MAX_REPLY + 1;
    ctl_header_encode(b, &h);
    assert_int_equal(ctl_header_decode(b, &out), SHOAL_EPROTO);
    h.type = CTL_TOPIC_LIST;
    h.len = CTL_MAX_PAYLOAD + 1;
    ctl_header_encode(b, &h);
    assert_int_equal(ctl_header_decode(b, &out), SHOAL_EPROTO);

    ctl_writer_init(&w);
    ctl_response_begin(&w, CTL_TOPIC_LIST, 3, 0, NULL);
    for (size_t i = 0; i < CTL_MAX_PAYLOAD / 8 + 1; i++)
        ctl_put_u64(&w, i);
    assert_int_equal(ctl_frame_end(&w), 0);
    assert_int_equal(ctl_header_decode(w.buf, &out), 0);
    assert_int_equal(out.len, w.len - CTL_HEADER_BYTES);
    ctl_writer_release(&w);
}

static void test_ctlproto_string_over_u16_sticks_in_writer(void **state)
{
    size_t n = (size_t)UINT16_MAX + 1;
    char *s = malloc(n + 1);
    ctl_writer_t w;

    (void)state;
    assert_non_null(s);
    memset(s, 'a', n);
    s[n] = '\0';
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_HELLO, 1);
    ctl_put_str(&w, s);
    ctl_put_u32(&w, 1);
    assert_int_equal(w.len, CTL_HEADER_BYTES);
    assert_int_equal(ctl_frame_end(&w), SHOAL_EPROTO);
    /* a new frame starts clean */
    s[UINT16_MAX] = '\0';
    ctl_frame_begin(&w, CTL_HELLO, 2);
    ctl_put_str(&w, s);
    assert_int_equal(ctl_frame_end(&w), 0);
    assert_int_equal(w.len, CTL_HEADER_BYTES + 2 + UINT16_MAX);
    ctl_writer_release(&w);
    free(s);
}

static void test_ctlproto_writer_out_of_memory_sticks(void **state)
{
    ctl_writer_t w;
    int rc = -ENOMEM;

    (void)state;
    /* fail the nth allocation for n = 1.. until a frame needing several grows succeeds */
    for (long n = 1; rc == -ENOMEM; n++) {
        ctl_writer_init(&w);
        shoal__alloc_fail_after(n);
        ctl_frame_begin(&w, CTL_TOPIC_LIST, 9);
        for (int i = 0; i < 1000; i++)
            ctl_put_u64(&w, (uint64_t)i);
        rc = ctl_frame_end(&w);
        shoal__alloc_fail_after(0);
        assert_true(rc == 0 || rc == -ENOMEM);
        if (rc == -ENOMEM)
            assert_int_equal(w.err, -ENOMEM);
        else
            assert_true(n > 1);
        ctl_writer_release(&w);
    }
}

static void test_ctlproto_response_status_and_detail(void **state)
{
    ctl_writer_t w;
    ctl_reader_t r;
    ctl_header_t h;
    char detail[8], big[64];
    uint8_t *p;
    size_t len;

    (void)state;
    ctl_writer_init(&w);
    ctl_response_begin(&w, CTL_TOPIC_CREATE, 5, SHOAL_ETOPICEXISTS, "topic orders exists");
    assert_int_equal(ctl_frame_end(&w), 0);
    assert_int_equal(ctl_header_decode(w.buf, &h), 0);
    assert_int_equal(h.type, CTL_TOPIC_CREATE | CTL_RESPONSE);
    p = payload_copy(&w, &len);

    ctl_reader_init(&r, p, len);
    assert_int_equal(ctl_get_status(&r, big, sizeof(big)), SHOAL_ETOPICEXISTS);
    assert_string_equal(big, "topic orders exists");
    assert_int_equal(ctl_reader_finish(&r), 0);

    ctl_reader_init(&r, p, len); /* a small buffer truncates the detail */
    assert_int_equal(ctl_get_status(&r, detail, sizeof(detail)), SHOAL_ETOPICEXISTS);
    assert_string_equal(detail, "topic o");
    ctl_reader_init(&r, p, len);
    assert_int_equal(ctl_get_status(&r, NULL, 0), SHOAL_ETOPICEXISTS);
    assert_int_equal(ctl_reader_finish(&r), 0);
    free(p);

    ctl_response_begin(&w, CTL_HELLO, 6, 0, NULL);
    ctl_put_u32(&w, 1);
    assert_int_equal(ctl_frame_end(&w), 0);
    p = payload_copy(&w, &len);
    ctl_reader_init(&r, p, len);
    assert_int_equal(ctl_get_status(&r, big, sizeof(big)), 0);
    assert_string_equal(big, "");
    assert_int_equal(ctl_get_u32(&r), 1);
    assert_int_equal(ctl_reader_finish(&r), 0);
    free(p);
    ctl_writer_release(&w);
}

static void test_ctlproto_status_rejects_positive_and_short(void **state)
{
    const uint8_t positive[] = {1, 0, 0, 0, 0, 0};
    const uint8_t shortp[] = {0, 0, 0};
    ctl_reader_t r;
    char d[8];

    (void)state;
    ctl_reader_init(&r, positive, sizeof(positive));
    assert_int_equal(ctl_get_status(&r, d, sizeof(d)), SHOAL_EPROTO);
    ctl_reader_init(&r, shortp, sizeof(shortp));
    assert_int_equal(ctl_get_status(&r, d, sizeof(d)), SHOAL_EPROTO);
    assert_string_equal(d, "");
}

/* xorshift64: a fixed seed makes every run read the same bytes. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Decode random bytes as a random sequence of fields. */
static void fuzz_one(const uint8_t *p, size_t len, uint64_t *seed)
{
    shoal_topic_config_t cfg;
    shoal_partition_info_t pi;
    ctl_reader_t r;
    char s[1 + 64];
    ctl_header_t h;

    if (len >= CTL_HEADER_BYTES)
        (void)ctl_header_decode(p, &h);
    ctl_reader_init(&r, p, len);
    for (int i = 0; i < 12; i++) {
        switch (next_rand(seed) % 9) {
        case 0:
            (void)ctl_get_u8(&r);
            break;
        case 1:
            (void)ctl_get_u16(&r);
            break;
        case 2:
            (void)ctl_get_u32(&r);
            break;
        case 3:
            (void)ctl_get_u64(&r);
            break;
        case 4:
            (void)ctl_get_i64(&r);
            break;
        case 5:
            ctl_get_str(&r, s, 1 + next_rand(seed) % 64);
            assert_true(strlen(s) < 64);
            break;
        case 6:
            ctl_get_topic_config(&r, &cfg);
            break;
        case 7:
            ctl_get_partition_info(&r, &pi);
            break;
        default:
            (void)ctl_get_status(&r, s, sizeof(s));
            break;
        }
        assert_true(r.p >= p && r.p <= r.end);
    }
    (void)ctl_reader_finish(&r);
}

static void test_ctlproto_reader_survives_random_bytes(void **state)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull;

    (void)state;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = next_rand(&seed) % 96;
        uint8_t *p = malloc(len ? len : 1);
        assert_non_null(p);
        for (size_t i = 0; i < len; i++) {
            uint64_t v = next_rand(&seed);
            /* small values make plausible string lengths */
            p[i] = (uint8_t)(v % 4 == 0 ? v % 24 : v >> 8);
        }
        fuzz_one(p, len, &seed);
        free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctlproto_round_trips_every_field_type),
        cmocka_unit_test(test_ctlproto_encodes_little_endian),
        cmocka_unit_test(test_ctlproto_truncated_payload_fails_sticky_at_every_length),
        cmocka_unit_test(test_ctlproto_get_after_underflow_does_not_resume),
        cmocka_unit_test(test_ctlproto_rejects_string_too_long_for_buffer),
        cmocka_unit_test(test_ctlproto_string_exactly_filling_buffer_is_accepted),
        cmocka_unit_test(test_ctlproto_rejects_string_with_embedded_nul),
        cmocka_unit_test(test_ctlproto_trailing_bytes_fail_finish),
        cmocka_unit_test(test_ctlproto_header_round_trip),
        cmocka_unit_test(test_ctlproto_header_rejects_bad_magic_version_and_size),
        cmocka_unit_test(test_ctlproto_frame_end_rejects_oversize_payload),
        cmocka_unit_test(test_ctlproto_responses_may_exceed_the_request_limit),
        cmocka_unit_test(test_ctlproto_string_over_u16_sticks_in_writer),
        cmocka_unit_test(test_ctlproto_writer_out_of_memory_sticks),
        cmocka_unit_test(test_ctlproto_response_status_and_detail),
        cmocka_unit_test(test_ctlproto_status_rejects_positive_and_short),
        cmocka_unit_test(test_ctlproto_reader_survives_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
