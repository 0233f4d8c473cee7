/* fuzz_segment.c - a segment's .log, .index and .timeindex as the daemon reads them from
 * disk after a crash or a bit flip.
 *
 * Input: segment_input.h; trailer[2] chooses the segment base (bits 0-1) and whether the
 * scan checks CRCs (bit 2), trailer[3] the offset and the timestamp sought. For any bytes:
 * the scan stops at the first bad batch and accounts only for whole ones; a lookup through
 * the index answers with a batch that parses and holds the offset (or a later one), or a
 * specific error; on a log whose every batch checks out, the lookup without an index lands
 * on the batch the scan says holds the offset. */
#include <string.h>

#include "fuzz.h"
#include "segment_input.h"
#include "record.h"
#include "segment.h"
#include "shoal.h"
#include "util.h"

#define MAX_BATCHES 256 /* batches whose positions the scan keeps */

struct seen {
    uint64_t end; /* where the next batch must start */
    size_t n;
    uint64_t pos[MAX_BATCHES];
    int64_t last[MAX_BATCHES]; /* last offset of each */
};

static int on_batch(void *arg, uint64_t pos, const uint8_t *batch, const record_batch_header_t *h)
{
    struct seen *s = arg;

    (void)batch;
    FUZZ_CHECK(pos == s->end);
    s->end = pos + record_batch_size(h);
    if (s->n < MAX_BATCHES) {
        s->pos[s->n] = pos;
        s->last[s->n++] = h->base_offset + h->last_offset_delta;
    }
    return 0;
}

/* What segment_find_offset() must answer without an index on a log the scan accepted: the
 * first batch whose last offset reaches offset, or SHOAL_EOFFSET. */
static int64_t expected_position(const struct seen *s, int64_t offset)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->last[i] >= offset)
            return (int64_t)s->pos[i];
    return SHOAL_EOFFSET;
}

static void check_position(const uint8_t *log, size_t len, int64_t pos, int64_t offset)
{
    record_batch_header_t h;

    if (pos < 0) {
        FUZZ_CHECK(pos == SHOAL_EOFFSET || pos == SHOAL_ECORRUPT);
        return;
    }
    FUZZ_CHECK((uint64_t)pos < len);
    FUZZ_CHECK(record_batch_parse(log + pos, len - (size_t)pos, &h) == 0);
    FUZZ_CHECK(record_batch_size(&h) <= len - (size_t)pos);
    FUZZ_CHECK(h.base_offset + h.last_offset_delta >= offset);
}

static void check_timestamp(int64_t found, int64_t base)
{
    FUZZ_CHECK(found >= base || found == SHOAL_EOFFSET || found == SHOAL_ECORRUPT ||
               found == SHOAL_ECOMPRESSED);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    segment_scan_t scan;
    struct seen seen = {0};
    struct segment_input in;

    if (!segment_input_split(data, size, 2, &in))
        return 0;
    const uint8_t *log = in.log, *idx = in.idx, *tidx = in.tidx, *t = in.trailer;
    size_t len = in.log_len, ilen = in.idx_len, tlen = in.tidx_len;
    int64_t base = in.base;
    int64_t offset = base <= INT64_MAX - 64 ? base + (t[3] & 63) - 1 : base, ts_end;

    FUZZ_CHECK(segment_scan_bytes(log, len, base, t[2] & 4, on_batch, &seen, &scan) == 0);
    FUZZ_CHECK(scan.valid_bytes == seen.end && scan.valid_bytes <= len);
    FUZZ_CHECK(scan.error == 0 || scan.error == RECORD_INCOMPLETE || scan.error == SHOAL_ECORRUPT);
    FUZZ_CHECK((scan.error == 0) == (scan.valid_bytes == len));

    int64_t bare = segment_find_offset(log, len, base, NULL, 0, offset);
    check_position(log, len, bare, offset);
    if (scan.error != SHOAL_ECORRUPT && seen.n < MAX_BATCHES)
        FUZZ_CHECK(bare == expected_position(&seen, offset));
    check_position(log, len, segment_find_offset(log, len, base, idx, ilen, offset), offset);

    int64_t ts = in.first.max_timestamp >= INT64_MIN + 4 ? in.first.max_timestamp - (t[3] >> 6) : 0;
    check_timestamp(segment_find_timestamp(log, len, base, idx, ilen, tidx, tlen, ts, &ts_end),
                    base);
    check_timestamp(segment_find_timestamp(log, len, base, NULL, 0, NULL, 0, ts, NULL), base);
    return 0;
}
