/* record.h - Kafka RecordBatch v2 (magic 2): encode, parse, validate, iterate. No I/O.
 *
 * Batch layout (big-endian), 61 bytes then the records:
 *   0 baseOffset i64 | 8 batchLength i32 (bytes after this field) | 12 partitionLeaderEpoch i32
 *  16 magic i8 = 2   | 17 crc u32 (CRC32C of bytes 21..end)        | 21 attributes i16
 *  23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64 | 43 producerId i64
 *  51 producerEpoch i16   | 53 baseSequence i32  | 57 recordsCount i32 | 61 records...
 * Record: length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
 *   keyLength varint (-1 null), key, valueLength varint (-1 null), value,
 *   headerCount varint, then per header: keyLength varint, key, valueLength varint, value.
 * Varints are zigzag-encoded like protobuf's sint32/sint64. */
#ifndef SHOAL_RECORD_H
#define SHOAL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoal.h"

#define RECORD_BATCH_HEADER_BYTES    61
#define RECORD_BATCH_LOG_OVERHEAD    12 /* baseOffset + batchLength: not counted in batchLength */
#define RECORD_BATCH_MAGIC           2
#define RECORD_BATCH_CRC_START       21
#define RECORD_ATTR_COMPRESSION_MASK 0x07
#define RECORD_INCOMPLETE            1 /* positive: fewer bytes than the header says (a torn tail) */

typedef struct record_batch_header {
    int64_t base_offset;
    int32_t batch_length;
    int32_t leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t first_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
} record_batch_header_t;

/* Total bytes of the batch on disk or in a slot. */
static inline size_t record_batch_size(const record_batch_header_t *h)
{
    return (size_t)h->batch_length + RECORD_BATCH_LOG_OVERHEAD;
}

/* Parse and check the fixed header of the batch at buf, which has avail readable bytes.
 * Checks magic, that batchLength covers the header, that recordsCount is in 0..2^31 and
 * agrees with lastOffsetDelta (count - 1 for an uncompressed batch written by shoal; Kafka
 * allows gaps after compaction so only delta >= count - 1 is required... see record.c),
 * and that the whole batch fits in avail.
 * Returns 0; RECORD_INCOMPLETE when avail is shorter than the header or the batch (what a
 * torn tail looks like); SHOAL_ECORRUPT (detail in shoal_errmsg()) for anything else. */
int record_batch_parse(const uint8_t *buf, size_t avail, record_batch_header_t *h);

/* 0 when the stored CRC matches bytes 21..end, else SHOAL_ECORRUPT. */
int record_batch_check_crc(const uint8_t *batch, const record_batch_header_t *h);

static inline bool record_batch_is_compressed(const record_batch_header_t *h)
{
    return (h->attributes & RECORD_ATTR_COMPRESSION_MASK) != 0;
}

/* Batch-level fields an encoder takes; the rest is derived from the records. */
typedef struct record_batch_fields {
    int64_t base_offset;
    int32_t leader_epoch;
    int16_t attributes;     /* must have no compression bits */
    int64_t producer_id;    /* -1 when not idempotent */
    int16_t producer_epoch; /* -1 */
    int32_t base_sequence;  /* -1 */
} record_batch_fields_t;

void record_batch_fields_init(record_batch_fields_t *f); /* offset 0, epoch 0, ids -1 */

/* Bytes that record_batch_encode() will write for these messages, or 0 when it would
 * refuse them. Timestamps <= 0 in a message mean now_ms. */
size_t record_batch_encoded_size(const shoal_message_t *msgs, size_t n, int64_t now_ms);

/* What the encoder derives from the messages before it writes anything, in one pass. */
#define RECORD_SHORT_MAX 64 /* records of a short-form batch at most */

typedef struct record_batch_plan {
    int64_t base_ts; /* smallest record timestamp */
    int64_t max_ts;  /* largest */
    size_t size;     /* bytes of the encoded batch */
    size_t max_one;  /* bytes the largest record would take as a batch of its own */
    bool short_form; /* <= RECORD_SHORT_MAX records, no headers, timestamps within 63 ms:
                        every record's attributes and deltas take one byte each (the
                        encoder's fast path), and the two fields below are set */
    bool short_now;  /* every record is stamped now_ms: every timestamp delta is 0 */
    uint32_t short_body[RECORD_SHORT_MAX]; /* each record's body bytes */
    bool stream; /* false from the planner; the caller sets it when buf is memory this
                    core will not read back and caches cannot keep (a large ring): values
                    of RECORD_STREAM_MIN bytes or more then go in with non-temporal
                    stores (shoal__crc32c_copy_stream), fenced before the encoder
                    returns */
} record_batch_plan_t;
#define RECORD_STREAM_MIN 1024

/* Plan a batch: 0, or SHOAL_EINVAL when the messages cannot be encoded (n == 0, a length
 * over INT32_MAX, a batch over 2 GiB). Timestamps <= 0 in a message mean now_ms. */
int record_batch_plan(const shoal_message_t *msgs, size_t n, int64_t now_ms,
                      record_batch_plan_t *plan);

/* Encode n >= 1 messages as one batch into buf (cap bytes), offset deltas 0..n-1, the
 * batch's baseTimestamp the smallest record timestamp (as kafkajs writes it; deltas are
 * then never negative), maxTimestamp the largest, and the CRC computed. *len_out gets the
 * size. Returns 0, SHOAL_EINVAL (n == 0, a length over INT32_MAX, compression bits), or
 * -ENOSPC when cap is too small. */
int record_batch_encode(uint8_t *buf, size_t cap, const record_batch_fields_t *f,
                        const shoal_message_t *msgs, size_t n, int64_t now_ms, size_t *len_out);
/* record_batch_encode() with the plan record_batch_plan() made for the same messages and
 * now_ms, so a caller that needed the plan first does not pay for it twice. */
int record_batch_encode_planned(uint8_t *buf, size_t cap, const record_batch_fields_t *f,
                                const shoal_message_t *msgs, size_t n, int64_t now_ms,
                                const record_batch_plan_t *plan, size_t *len_out);

/* Encode the one message m as record_batch_encode() would, with record_batch_fields_init()'s
 * fields, in one pass: the producer's path for a record a send. Only for a message without
 * headers whose key and value are each under 1 GiB and whose batch fits cap. @return the
 * batch's size, or 0 when m is not of that shape or does not fit (record_batch_encode()
 * then encodes it or says why it cannot). */
size_t record_batch_encode_one(uint8_t *buf, size_t cap, const shoal_message_t *m, int64_t now_ms);

/* Encode n >= 0 messages as one batch whose records keep the given offset deltas (strictly
 * increasing, >= 0, none past last_offset_delta) and whose lastOffsetDelta is
 * last_offset_delta, so a rewritten batch covers the same offsets as the original with gaps
 * where records were dropped (what compaction does). Timestamps and CRC as in
 * record_batch_encode(); an empty batch (n == 0) gets now_ms as both timestamps. Returns 0,
 * SHOAL_EINVAL (bad deltas, a length over INT32_MAX, compression bits), or -ENOSPC. */
int record_batch_encode_with_offsets(uint8_t *buf, size_t cap, const record_batch_fields_t *f,
                                     const shoal_message_t *msgs, const int32_t *offset_deltas,
                                     size_t n, int32_t last_offset_delta, int64_t now_ms,
                                     size_t *len_out);
/* Bytes record_batch_encode_with_offsets() will write, or 0 when it would refuse them
 * (bad deltas are caught only by the encoder). */
size_t record_batch_encoded_size_with_offsets(const shoal_message_t *msgs,
                                              const int32_t *offset_deltas, size_t n,
                                              int64_t now_ms);

/* Overwrite the base offset of an encoded batch (not covered by the CRC). */
void record_batch_set_base_offset(uint8_t *batch, int64_t base_offset);

/* Walk the records of one uncompressed batch. */
typedef struct record_iter {
    const uint8_t *p;
    const uint8_t *end;
    record_batch_header_t h;
    int32_t remaining;
    /* For record_iter_read(); record_iter_init() sets NULL, -1 and INT64_MIN: */
    const char *topic;   /* written into every record handed out */
    int32_t partition;   /* likewise */
    int64_t next_offset; /* records below it are skipped; moves past each one handed out */
} record_iter_t;

/* Start iterating the batch at buf whose header h was parsed. Returns 0, or
 * SHOAL_ECOMPRESSED for a compressed batch (never misread). */
int record_iter_init(record_iter_t *it, const uint8_t *batch, const record_batch_header_t *h);

/* Decode the next record into out (offset, timestamp, key, value, headers; topic and
 * partition are left alone). Views point into the batch. Returns 1 when out is filled, 0
 * after the last record, SHOAL_ECORRUPT when a length or varint runs past the batch or
 * the record count disagrees with the bytes. */
int record_iter_next(record_iter_t *it, shoal_record_t *out);

/* record_iter_next() without its fast path for short records: every field checked on its
 * own. Same results by construction; exposed so tests can compare the two. */
int record_iter_next_checked(record_iter_t *it, shoal_record_t *out);

/* record_iter_next() for up to max records at once, for a consumer: fills out[0..n) and
 * returns n >= 1, or 0 after the last record (or when max is 0), or SHOAL_ECORRUPT when the
 * next record is damaged (records before the damage are returned first; the damage is
 * reported by the call after). The same checks as record_iter_next(); besides, it skips a
 * record below it->next_offset (one an earlier read handed out, or one whose offset does
 * not rise), and writes it->topic and it->partition into each record. */
int record_iter_read(record_iter_t *it, shoal_record_t *out, size_t max);

/* Whether the next record_iter_read() would return 0: every record read and no bytes left
 * past them. Lets a consumer finish a batch without that call. */
static inline bool record_iter_done(const record_iter_t *it)
{
    return it->remaining <= 0 && it->p == it->end;
}

/* Decode one header from an encoded headers area (shoal_record_header() uses this).
 * Returns 0 and advances *p past it, or SHOAL_ECORRUPT. */
int record_header_decode(const uint8_t **p, const uint8_t *end, shoal_header_t *out);

/* zigzag varints, exposed for tests. Return bytes used, or 0 when malformed/short. */
size_t record_varint_put(uint8_t *p, int64_t v);
size_t record_varint_get(const uint8_t *p, const uint8_t *end, int64_t *v);
size_t record_varint_size(int64_t v);

#endif
