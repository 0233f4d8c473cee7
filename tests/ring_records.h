/* ring_records.h - tagged records for the tests that append to a ring (test_ring,
 * test_lock_death, test_partition, test_broker): each value starts with its producer's tag
 * and sequence number (big-endian u32s) and goes on with bytes derived from both, so a
 * reader can tell whose record it holds, in what order, and whether any byte of it is
 * torn. Include after cmocka.h, record.h, ring.h and util.h. */
#ifndef SHOAL_TESTS_RING_RECORDS_H
#define SHOAL_TESTS_RING_RECORDS_H

#include <stdlib.h>

#define TS0       1700000000000LL
#define VALUE_MIN 8 /* tag and seq */

/* A record as read back through a cursor. */
typedef struct seen {
    int64_t offset;
    uint32_t tag;
    uint32_t seq;
} seen_t;

static inline uint8_t fill_byte(uint32_t tag, uint32_t seq, size_t i)
{
    return (uint8_t)(tag * 131u + seq * 7u + i);
}

/* Encode n records tagged (tag, seq .. seq + n - 1) with value_len-byte values into buf,
 * stamped ts0 + seq .. ts0 + seq + n - 1. Returns the batch size, or 0 on failure (callable
 * from threads and forked children: no cmocka asserts). */
static inline size_t encode_at(uint8_t *buf, size_t cap, int64_t ts0, uint32_t tag, uint32_t seq,
                               int n, size_t value_len)
{
    shoal_message_t msgs[64];
    record_batch_fields_t bf;
    uint8_t *vals;
    size_t len = 0;

    if (n < 1 || n > 64 || value_len < VALUE_MIN)
        return 0;
    vals = malloc((size_t)n * value_len);
    if (!vals)
        return 0;
    for (int r = 0; r < n; r++) {
        uint8_t *v = vals + (size_t)r * value_len;
        shoal__put_be32(v, tag);
        shoal__put_be32(v + 4, seq + (uint32_t)r);
        for (size_t i = VALUE_MIN; i < value_len; i++)
            v[i] = fill_byte(tag, seq + (uint32_t)r, i);
        msgs[r] =
            (shoal_message_t){.value = v, .value_len = value_len, .timestamp_ms = ts0 + seq + r};
    }
    record_batch_fields_init(&bf);
    if (record_batch_encode(buf, cap, &bf, msgs, (size_t)n, ts0, &len) != 0)
        len = 0;
    free(vals);
    return len;
}

/* encode_at() from TS0: timestamps that are the same every run, so a test can tell offsets
 * (and the gaps it leaves) by them. They are years old: a partition whose retention.ms is
 * not -1 deletes them as soon as a segment of theirs is sealed. */
static inline size_t encode(uint8_t *buf, size_t cap, uint32_t tag, uint32_t seq, int n,
                            size_t value_len)
{
    return encode_at(buf, cap, TS0, tag, seq, n, value_len);
}

/* Encode n records as encode() does into buf (cap bytes) and append them to r in one batch,
 * as a producer does, with the last record's timestamp as the batch's largest. Returns
 * ring_append()'s code; *base gets the batch's first offset. Fails the test when the batch
 * does not encode (so not for forked children). */
static inline int append_tagged(ring_t *r, uint8_t *buf, size_t cap, uint32_t tag, uint32_t seq,
                                int n, size_t value_len, int block_ms, int64_t *base)
{
    size_t len = encode(buf, cap, tag, seq, n, value_len);

    assert_true(len > 0);
    return ring_append(r, buf, len, n, TS0 + seq + n - 1, block_ms, base);
}

/* Check a batch handed out by a cursor: CRC, offsets, every value byte. Returns its record
 * count, or a negative value on the first problem (callable from threads). */
static inline int batch_records(const uint8_t *batch, const record_batch_header_t *h, seen_t *out,
                                size_t cap)
{
    record_iter_t it;
    shoal_record_t rec;
    int n = 0, rc;

    if (record_batch_check_crc(batch, h) != 0 || record_iter_init(&it, batch, h) != 0)
        return -1;
    while ((rc = record_iter_next(&it, &rec)) == 1) {
        const uint8_t *v = rec.value;
        uint32_t tag, seq;
        if ((size_t)n >= cap || rec.offset != h->base_offset + n || rec.value_len < VALUE_MIN)
            return -2;
        tag = shoal__get_be32(v);
        seq = shoal__get_be32(v + 4);
        for (size_t i = VALUE_MIN; i < (size_t)rec.value_len; i++)
            if (v[i] != fill_byte(tag, seq, i))
                return -3;
        out[n++] = (seen_t){.offset = rec.offset, .tag = tag, .seq = seq};
    }
    return rc == 0 && n == h->record_count ? n : -4;
}

/* Read everything published from the cursor's position on, across sealed slots, into out.
 * Returns how many records. */
static inline size_t drain(ring_t *r, ring_cursor_t *c, seen_t *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        const uint8_t *batch;
        record_batch_header_t h;
        int rc;
        if (!c->placed) {
            rc = ring_cursor_seek(r, c, c->next_offset);
            if (rc == SHOAL_EOFFSET && c->next_offset >= atomic_load(&r->ctl->log_end_offset))
                return n;
            assert_int_equal(rc, 0);
        }
        rc = ring_cursor_next(r, c, &batch, &h);
        if (rc == 1) {
            int got = batch_records(batch, &h, out + n, cap - n);
            assert_true(got > 0);
            n += (size_t)got;
        } else if (rc == RING_SLOT_END) {
            assert_int_equal(ring_cursor_advance(r, c), 0);
        } else {
            assert_int_equal(rc, 0);
            return n;
        }
    }
}

/* Read everything published from offset `from` on through a cursor of its own (opened,
 * drained and closed here) into out. Returns how many records: 0 when from is the log end. */
static inline size_t read_from(ring_t *r, int64_t from, seen_t *out, size_t cap)
{
    ring_cursor_t c;
    size_t n;

    assert_int_equal(ring_cursor_open(r, &c), 0);
    c.next_offset = from; /* the cursor is not placed yet: drain() seeks there first */
    n = drain(r, &c, out, cap);
    ring_cursor_close(r, &c);
    return n;
}

#endif
