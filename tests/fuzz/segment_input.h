/* segment_input.h - how fuzz_segment.c and fuzz_recover.c read their input: a segment's
 * .log bytes, then ni 8-byte .index entries and nt 12-byte .timeindex entries, then a
 * 4-byte trailer: ni, nt and two bytes each target reads its own way. The index areas
 * shrink to what the input holds. */
#ifndef SHOAL_TEST_SEGMENT_INPUT_H
#define SHOAL_TEST_SEGMENT_INPUT_H

#include <stdbool.h>

#include "record.h"
#include "segment.h"
#include "util.h"

struct segment_input {
    const uint8_t *log, *idx, *tidx;
    size_t log_len, idx_len, tidx_len;
    const uint8_t *trailer;      /* [2] and [3] are the target's */
    record_batch_header_t first; /* the log's first batch header; zero when it has none */
    int64_t base;                /* the segment base: the first batch's, or a little below */
};

#define SEGMENT_INPUT_TRAILER 4

/* Split data; false when it is too short to hold the trailer. The base is the first
 * batch's base offset less trailer[base_byte] & 3 (never below 0), as the daemon takes it
 * from the file name; 0 when the log does not start with a batch. */
static inline bool segment_input_split(const uint8_t *data, size_t size, size_t base_byte,
                                       struct segment_input *in)
{
    if (size < SEGMENT_INPUT_TRAILER)
        return false;
    const uint8_t *t = data + size - SEGMENT_INPUT_TRAILER;
    size_t room = size - SEGMENT_INPUT_TRAILER;

    memset(in, 0, sizeof(*in));
    in->trailer = t;
    in->tidx_len = SHOAL_MIN((size_t)t[1] * SEGMENT_TIMEINDEX_ENTRY_BYTES, room);
    in->idx_len = SHOAL_MIN((size_t)t[0] * SEGMENT_INDEX_ENTRY_BYTES, room - in->tidx_len);
    in->log_len = room - in->tidx_len - in->idx_len;
    in->log = data;
    in->idx = data + in->log_len;
    in->tidx = in->idx + in->idx_len;
    if (record_batch_parse(in->log, in->log_len, &in->first) == 0 && in->first.base_offset >= 0)
        in->base = SHOAL_MAX(in->first.base_offset - (t[base_byte] & 3), 0);
    else
        memset(&in->first, 0, sizeof(in->first));
    return true;
}

#endif
