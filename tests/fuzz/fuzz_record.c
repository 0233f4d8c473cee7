/* fuzz_record.c - a record batch as a consumer meets it in a ring slot or a segment.
 *
 * The input is the batch, with any bytes after it; its length chooses how the consumer
 * reads (records per read, and an offset to resume from), so that the test data's batches
 * are inputs as they are. For any bytes: the header parse never claims more than there
 * is; the fast decoders (record_iter_next, record_iter_read and their short and tiny
 * paths) return exactly what the checked decoder returns, record for record, and the same
 * final code; every key, value and header view lies inside the batch. */
#include <string.h>

#include "fuzz.h"
#include "record.h"
#include "shoal.h"

static int record_same(const shoal_record_t *a, const shoal_record_t *b)
{
    return a->offset == b->offset && a->timestamp_ms == b->timestamp_ms && a->key == b->key &&
           a->key_len == b->key_len && a->value == b->value && a->value_len == b->value_len &&
           a->header_count == b->header_count && a->headers_raw == b->headers_raw &&
           a->headers_len == b->headers_len;
}

static void check_views(const shoal_record_t *r, const uint8_t *lo, const uint8_t *hi)
{
    const uint8_t *hdr_end = r->headers_raw + r->headers_len;
    shoal_header_t hd;
    size_t it = 0;
    int rc;

    FUZZ_CHECK(fuzz_view_inside(r->key, r->key_len, lo, hi));
    FUZZ_CHECK(fuzz_view_inside(r->value, r->value_len, lo, hi));
    FUZZ_CHECK(r->headers_raw >= lo && r->headers_raw <= hi &&
               r->headers_len <= (size_t)(hi - r->headers_raw));
    while ((rc = shoal_record_header(r, &it, &hd)) == 1) {
        FUZZ_CHECK(fuzz_view_inside(hd.key, (int64_t)hd.key_len, r->headers_raw, hdr_end));
        FUZZ_CHECK(fuzz_view_inside(hd.value, hd.value_len, r->headers_raw, hdr_end));
    }
    FUZZ_CHECK(rc == 0 || rc == SHOAL_ECORRUPT);
}

/* record_iter_next() against record_iter_next_checked(), in step. */
static void check_next(const record_iter_t *start, const uint8_t *lo, const uint8_t *hi)
{
    record_iter_t fast = *start, slow = *start;
    shoal_record_t a, b;
    int ra, rb;

    do {
        ra = record_iter_next(&fast, &a);
        rb = record_iter_next_checked(&slow, &b);
        FUZZ_CHECK(ra == rb);
        if (ra == 1) {
            FUZZ_CHECK(record_same(&a, &b));
            check_views(&a, lo, hi);
            FUZZ_CHECK(a.offset >= start->h.base_offset &&
                       a.offset <= start->h.base_offset + start->h.last_offset_delta);
        }
    } while (ra == 1);
    FUZZ_CHECK(ra == 0 || ra == SHOAL_ECORRUPT);
}

/* record_iter_read() in reads of `chunk` from next_offset: the checked decoder's records at
 * or past next_offset whose offsets rise, named as the consumer names them, then the
 * checked decoder's final code. */
static void check_read(const record_iter_t *start, size_t chunk, int64_t next_offset)
{
    record_iter_t fast = *start, slow = *start;
    shoal_record_t got[8], want;
    int rc, slow_rc;

    fast.topic = "t";
    fast.partition = 7;
    fast.next_offset = next_offset;
    while ((rc = record_iter_read(&fast, got, chunk)) > 0) {
        FUZZ_CHECK((size_t)rc <= chunk);
        for (int i = 0; i < rc; i++) {
            do
                FUZZ_CHECK(record_iter_next_checked(&slow, &want) == 1);
            while (want.offset < next_offset);
            next_offset = want.offset + 1;
            FUZZ_CHECK(record_same(&got[i], &want));
            FUZZ_CHECK(got[i].topic == fast.topic && got[i].partition == 7);
        }
    }
    FUZZ_CHECK(fast.next_offset == next_offset);
    while ((slow_rc = record_iter_next_checked(&slow, &want)) == 1)
        FUZZ_CHECK(want.offset < next_offset); /* what the fast one skipped after its last */
    FUZZ_CHECK(rc == slow_rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    record_batch_header_t h;
    record_iter_t it;

    if (record_batch_parse(data, size, &h) != 0)
        return 0;
    FUZZ_CHECK(record_batch_size(&h) <= size);
    (void)record_batch_check_crc(data, &h);
    if (record_iter_init(&it, data, &h) != 0)
        return 0;
    check_next(&it, data, data + record_batch_size(&h));
    /* from the start, or a few offsets in, as a consumer resumes after a partial read */
    int64_t resume = INT64_MIN;
    if ((size & 64) && h.base_offset <= INT64_MAX - 16)
        resume = h.base_offset + (int64_t)(size / 8 % 16);
    check_read(&it, 1 + size % 8, resume);
    return 0;
}
