/* segment.c - disk log segments in Kafka's layout: naming and listing, walking the batches
 * of a segment's bytes, finding an offset through the sparse .index and a timestamp through
 * the .timeindex, recovering a segment after a crash, and the index writer the flusher uses
 * while it appends to a log.
 *
 * DESIGN
 *
 * A partition directory holds <20-digit base offset>.log (RecordBatch v2 batches back to
 * back, see record.h) with its .index (8-byte entries: u32 last offset of a batch minus the
 * segment base, u32 byte position of that batch) and .timeindex (12-byte entries: i64
 * timestamp, u32 relative offset). Both indexes are sparse: a batch gets an .index entry
 * when it is the first batch or when at least SEGMENT_INDEX_INTERVAL_BYTES of log lie
 * between the last indexed batch and it; at those same points a .timeindex entry is added
 * when the largest timestamp of the segment so far (every batch up to and including this
 * one, as Kafka's maxTimestampSoFar) exceeds the last timestamp written. The entry holds
 * that running maximum and the indexed batch's last offset, so it promises: no record at
 * or below that offset has a later timestamp. That promise is what lets a timestamp lookup
 * start at an entry when record timestamps are not in order. The rule depends only on the
 * log and on the last entries, so an index written incrementally (index_writer_*),
 * continued after a reopen (which reads the log past the last entry to recover the running
 * maximum), or rebuilt by recovery is the same bytes; recovery relies on that and simply
 * compares the index files with the index the log implies.
 *
 * Everything read from a file is untrusted: the scanner checks every batch against the
 * bytes it was given before looking at it, an index entry is verified against the batch it
 * names before a lookup uses it, and damage is reported as an error, never an assert.
 * Recovery only ever shortens the last segment (a torn or corrupt tail); a damaged earlier
 * segment is reported and left as it is, since data after the damage cannot be trusted and
 * deciding what to do is the daemon's call. Index files are replaced whole (temporary
 * file, fsync, rename, fsync of the directory) so a crash never leaves half an index.
 *
 * Thread-safety: the functions share no state; an index_writer_t is one thread per handle. */
#include "segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define SEGMENT_FILE_MODE 0600

/* ------------------------------------------------------------------ names */

int segment_path(char *buf, size_t cap, const char *dir, int64_t base, const char *ext)
{
    int n;

    /* A negative base would print as "-000..." and never be listed again. */
    if (base < 0)
        return SHOAL_ERR(-EINVAL, "segment base offset %" PRId64 " is negative", base);
    n = snprintf(buf, cap, "%s/%0*" PRId64 "%s", dir, SEGMENT_NAME_DIGITS, base, ext);
    if (n < 0 || (size_t)n >= cap)
        return SHOAL_ERR(-ENAMETOOLONG, "segment path in %s too long", dir);
    return 0;
}

int64_t segment_name_base(const char *name, const char *ext)
{
    uint64_t v = 0;
    int i;

    if (strlen(name) != SEGMENT_NAME_DIGITS + strlen(ext) ||
        strcmp(name + SEGMENT_NAME_DIGITS, ext))
        return -1;
    for (i = 0; i < SEGMENT_NAME_DIGITS; i++) {
        unsigned d = (unsigned)(name[i] - '0');
        if (d > 9 || v > ((uint64_t)INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    return (int64_t)v;
}

/* Parse "<20 digits>.log" into *base; false for any other name or a value over INT64_MAX. */
static bool segment_name_parse(const char *name, int64_t *base)
{
    *base = segment_name_base(name, ".log");
    return *base >= 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int bases_push(int64_t **bases, size_t *count, size_t *cap, int64_t base)
{
    if (*count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        int64_t *p = shoal__realloc(*bases, ncap * sizeof(*p));
        if (!p)
            return SHOAL_ERR(-ENOMEM, "listing segments");
        *bases = p;
        *cap = ncap;
    }
    (*bases)[(*count)++] = base;
    return 0;
}

int segment_list(const char *dir, int64_t **bases, size_t *count)
{
    struct dirent *de;
    size_t cap = 0;
    int64_t base;
    int rc = 0;
    DIR *d;

    *bases = NULL;
    *count = 0;
    d = opendir(dir);
    if (!d)
        return SHOAL_ERR(-errno, "opendir %s: %s", dir, strerror(errno));
    for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
        if (!segment_name_parse(de->d_name, &base))
            continue;
        rc = bases_push(bases, count, &cap, base);
        if (rc)
            goto out_free;
    }
    if (errno) {
        rc = SHOAL_ERR(-errno, "readdir %s: %s", dir, strerror(errno));
        goto out_free;
    }
    if (*count > 1)
        qsort(*bases, *count, sizeof(**bases), cmp_i64);
    closedir(d);
    return 0;

out_free:
    shoal__free(*bases);
    *bases = NULL;
    *count = 0;
    closedir(d);
    return rc;
}

/* ------------------------------------------------------------------ batches */

/* Parse the batch header at data[pos] and prove the whole batch lies inside data[0..len)
 * and that the offset after its last is representable. Returns 0, RECORD_INCOMPLETE or
 * SHOAL_ECORRUPT. The size checks repeat what record_batch_parse() promises: they are what
 * keeps this file from reading out of bounds, so they do not rest on another module. */
static int batch_at(const uint8_t *data, size_t len, uint64_t pos, record_batch_header_t *h)
{
    size_t avail = len - (size_t)pos;
    int rc = record_batch_parse(data + pos, avail, h);

    if (rc)
        return rc;
    if (h->batch_length < RECORD_BATCH_HEADER_BYTES - RECORD_BATCH_LOG_OVERHEAD)
        return SHOAL_ERR(SHOAL_ECORRUPT, "batch length %" PRId32 " too short", h->batch_length);
    if (record_batch_size(h) > avail)
        return RECORD_INCOMPLETE;
    if (h->base_offset < 0 || h->last_offset_delta < 0 ||
        h->base_offset > INT64_MAX - 1 - h->last_offset_delta)
        return SHOAL_ERR(SHOAL_ECORRUPT, "offsets %" PRId64 " + %" PRId32 " out of range",
                         h->base_offset, h->last_offset_delta);
    return 0;
}

static int64_t batch_last_offset(const record_batch_header_t *h)
{
    return h->base_offset + h->last_offset_delta;
}

static int scan_fail(segment_scan_t *out, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record why the scan stopped, in out->why and in the thread's error detail. */
static int scan_fail(segment_scan_t *out, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out->why, sizeof(out->why), fmt, ap);
    va_end(ap);
    out->error = err;
    shoal__set_err(err == RECORD_INCOMPLETE ? SHOAL_ECORRUPT : err, "%s", out->why);
    return err;
}

static void scan_incomplete(segment_scan_t *out, const uint8_t *p, size_t avail, uint64_t pos)
{
    if (avail < RECORD_BATCH_HEADER_BYTES) {
        scan_fail(out, RECORD_INCOMPLETE, "torn batch header at byte %" PRIu64 ": %zu of %d bytes",
                  pos, avail, RECORD_BATCH_HEADER_BYTES);
        return;
    }
    scan_fail(out, RECORD_INCOMPLETE, "torn batch at byte %" PRIu64 ": %zu of %" PRId64 " bytes",
              pos, avail, (int64_t)(int32_t)shoal__get_be32(p + 8) + RECORD_BATCH_LOG_OVERHEAD);
}

/* Check one batch at pos against the scan so far. 0, or the error recorded in out. */
static int scan_check_batch(const uint8_t *data, size_t len, uint64_t pos, int64_t base,
                            bool check_crc, record_batch_header_t *h, segment_scan_t *out)
{
    int rc = batch_at(data, len, pos, h);

    if (rc == RECORD_INCOMPLETE) {
        scan_incomplete(out, data + pos, len - (size_t)pos, pos);
        return rc;
    }
    if (rc)
        return scan_fail(out, SHOAL_ECORRUPT, "bad batch header at byte %" PRIu64 ": %s", pos,
                         shoal_errmsg());
    if (h->base_offset < out->next_offset)
        return scan_fail(out, SHOAL_ECORRUPT,
                         "batch at byte %" PRIu64 ": base offset %" PRId64 " below %" PRId64
                         " (segment base or previous batch)",
                         pos, h->base_offset, out->next_offset);
    /* .index entries hold the offset relative to the base in 32 bits, signed in Kafka. */
    if ((uint64_t)batch_last_offset(h) - (uint64_t)base > INT32_MAX)
        return scan_fail(out, SHOAL_ECORRUPT,
                         "batch at byte %" PRIu64 ": last offset %" PRId64
                         " too far above segment base %" PRId64,
                         pos, batch_last_offset(h), base);
    if (check_crc && record_batch_check_crc(data + pos, h) != 0)
        return scan_fail(out, SHOAL_ECORRUPT, "batch at byte %" PRIu64 ": CRC mismatch", pos);
    return 0;
}

static void scan_account(segment_scan_t *out, const record_batch_header_t *h)
{
    out->valid_bytes += record_batch_size(h);
    out->next_offset = batch_last_offset(h) + 1;
    out->max_timestamp = SHOAL_MAX(out->max_timestamp, h->max_timestamp);
    out->batches++;
    out->records += (uint64_t)SHOAL_MAX(h->record_count, 0);
}

/* When cb stops the scan at a batch, *out covers the batches before it: valid_bytes is the
 * position where the scan stopped. */
int segment_scan_bytes(const uint8_t *data, size_t len, int64_t base, bool check_crc,
                       segment_batch_cb cb, void *arg, segment_scan_t *out)
{
    record_batch_header_t h;
    int rc;

    memset(out, 0, sizeof(*out));
    out->next_offset = base;
    out->max_timestamp = -1;
    while (out->valid_bytes < len) {
        uint64_t pos = out->valid_bytes;
        if (scan_check_batch(data, len, pos, base, check_crc, &h, out) != 0)
            return 0;
        if (cb && (rc = cb(arg, pos, data + pos, &h)) != 0)
            return rc;
        scan_account(out, &h);
    }
    return 0;
}

/* ------------------------------------------------------------------ offset lookup */

typedef struct index_entry {
    uint32_t rel;
    uint32_t pos;
} index_entry_t;

static index_entry_t index_entry_get(const uint8_t *idx, size_t i)
{
    const uint8_t *p = idx + i * SEGMENT_INDEX_ENTRY_BYTES;
    index_entry_t e = {shoal__get_be32(p), shoal__get_be32(p + 4)};
    return e;
}

/* Largest i with entry rel <= rel, or -1. Assumes sorted entries; what it picks is checked
 * by index_entry_is_sound() before use, so an unsorted index only costs a longer scan. */
static ptrdiff_t index_search(const uint8_t *idx, size_t n, uint64_t rel)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (index_entry_get(idx, mid).rel <= rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (ptrdiff_t)lo - 1;
}

/* An entry may be trusted when it increases against its neighbours and names a batch that
 * starts at its position and whose last offset is base + rel. */
static bool index_entry_is_sound(const uint8_t *data, size_t len, int64_t base, const uint8_t *idx,
                                 size_t n, size_t i)
{
    index_entry_t e = index_entry_get(idx, i);
    record_batch_header_t h;

    if (i > 0) {
        index_entry_t prev = index_entry_get(idx, i - 1);
        if (prev.rel >= e.rel || prev.pos >= e.pos)
            return false;
    }
    if (i + 1 < n) {
        index_entry_t next = index_entry_get(idx, i + 1);
        if (next.rel <= e.rel || next.pos <= e.pos)
            return false;
    }
    if (e.pos >= len || batch_at(data, len, e.pos, &h) != 0)
        return false;
    return (uint64_t)batch_last_offset(&h) - (uint64_t)base == e.rel;
}

/* Where to start scanning for offset: the position of a sound index entry at or below it
 * (the batch holding offset is at or after that batch), else 0. */
static uint64_t index_start_pos(const uint8_t *data, size_t len, int64_t base, const uint8_t *idx,
                                size_t idx_len, int64_t offset)
{
    size_t n = idx ? idx_len / SEGMENT_INDEX_ENTRY_BYTES : 0;
    ptrdiff_t i;

    if (offset < base || n == 0)
        return 0;
    i = index_search(idx, n, (uint64_t)SHOAL_MIN(offset - base, (int64_t)UINT32_MAX));
    if (i < 0 || !index_entry_is_sound(data, len, base, idx, n, (size_t)i))
        return 0;
    return index_entry_get(idx, (size_t)i).pos;
}

static int find_offset_corrupt(int64_t base, uint64_t pos)
{
    char detail[160];

    /* Copied first: the detail lives in the buffer that SHOAL_ERR rewrites. */
    snprintf(detail, sizeof(detail), "%s", shoal_errmsg());
    return SHOAL_ERR(SHOAL_ECORRUPT, "segment %" PRId64 ", batch at byte %" PRIu64 ": %s", base,
                     pos, detail);
}

/* The batch at pos, if it parses and its offsets do not go below least (the segment base,
 * or the offset after the batch before): 0, RECORD_INCOMPLETE, or SHOAL_ECORRUPT. */
static int lookup_batch_at(const uint8_t *data, size_t len, int64_t base, uint64_t pos,
                           int64_t least, record_batch_header_t *h)
{
    int rc = batch_at(data, len, pos, h);

    if (rc == RECORD_INCOMPLETE)
        return rc;
    if (rc)
        return find_offset_corrupt(base, pos);
    if (h->base_offset < least)
        return SHOAL_ERR(SHOAL_ECORRUPT,
                         "segment %" PRId64 ", batch at byte %" PRIu64 ": base offset %" PRId64
                         " below %" PRId64 " (segment base or previous batch)",
                         base, pos, h->base_offset, least);
    return 0;
}

/* A damaged batch met before the offset is found (a header that does not parse, offsets
 * that go back) is SHOAL_ECORRUPT rather than SHOAL_EOFFSET: the offset may well be in the
 * log, past the damage. A torn tail is not damage here, since the data may end inside a
 * batch still being written. */
int64_t segment_find_offset(const uint8_t *data, size_t len, int64_t base, const uint8_t *idx,
                            size_t idx_len, int64_t offset)
{
    uint64_t pos = index_start_pos(data, len, base, idx, idx_len, offset);
    int64_t least = base;
    record_batch_header_t h;
    int rc;

    while (pos < len) {
        if ((rc = lookup_batch_at(data, len, base, pos, least, &h)) == RECORD_INCOMPLETE)
            break;
        if (rc)
            return rc;
        if (batch_last_offset(&h) >= offset)
            return (int64_t)pos;
        least = batch_last_offset(&h) + 1;
        pos += record_batch_size(&h);
    }
    return SHOAL_ERR(SHOAL_EOFFSET, "offset %" PRId64 " not in segment %" PRId64, offset, base);
}

/* ------------------------------------------------------------------ timestamp lookup */

int64_t segment_batch_find_timestamp(const uint8_t *batch, const record_batch_header_t *h,
                                     int64_t ts)
{
    record_iter_t it;
    shoal_record_t rec;
    int rc;

    if (h->max_timestamp < ts)
        return SHOAL_EOFFSET;
    if ((rc = record_iter_init(&it, batch, h)) < 0)
        return rc;
    while ((rc = record_iter_next(&it, &rec)) == 1)
        if (rec.timestamp_ms >= ts)
            return rec.offset;
    /* A max timestamp that no record reaches: the header lies, the records decide. */
    return rc < 0 ? rc : SHOAL_EOFFSET;
}

typedef struct time_entry {
    int64_t ts;
    uint32_t rel;
} time_entry_t;

static time_entry_t time_entry_get(const uint8_t *tidx, size_t i)
{
    const uint8_t *p = tidx + i * SEGMENT_TIMEINDEX_ENTRY_BYTES;
    time_entry_t e = {(int64_t)shoal__get_be64(p), shoal__get_be32(p + 8)};
    return e;
}

/* Largest i with entry timestamp < ts, or -1. Like index_search(), it assumes sorted
 * entries and leaves the checking to time_entry_start(). */
static ptrdiff_t time_index_search(const uint8_t *tidx, size_t n, int64_t ts)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (time_entry_get(tidx, mid).ts < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (ptrdiff_t)lo - 1;
}

/* Where a timestamp scan may start given .timeindex entry i (its timestamp below the one
 * sought), and the offset the batch there may start at (*next). No record at or below the
 * entry's offset is as late as the entry's timestamp, and neither is any other record of
 * the batch holding that offset: the entry's timestamp is the largest up to an index point
 * at or after it (Kafka's rule names the batch that first reached it; shoal's files from
 * before named the index point's batch: both hold). So the scan starts after that batch,
 * found through the .index. The entry is used only when it increases strictly against its
 * neighbours and that batch's max timestamp does not exceed the entry's. Otherwise 0. */
static uint64_t time_entry_start(const uint8_t *data, size_t len, int64_t base, const uint8_t *idx,
                                 size_t idx_len, const uint8_t *tidx, size_t n, size_t i,
                                 int64_t *next)
{
    time_entry_t e = time_entry_get(tidx, i);
    int64_t offset, pos;
    record_batch_header_t h;

    if (base > INT64_MAX - 1 - (int64_t)e.rel) /* no such offset: a damaged base or entry */
        return 0;
    offset = base + (int64_t)e.rel;
    if (i > 0) {
        time_entry_t prev = time_entry_get(tidx, i - 1);
        if (prev.ts >= e.ts || prev.rel >= e.rel)
            return 0;
    }
    if (i + 1 < n) {
        time_entry_t next_e = time_entry_get(tidx, i + 1);
        if (next_e.ts <= e.ts || next_e.rel <= e.rel)
            return 0;
    }
    pos = segment_find_offset(data, len, base, idx, idx_len, offset);
    if (pos < 0 || batch_at(data, len, (uint64_t)pos, &h) != 0)
        return 0;
    if (h.base_offset > offset) { /* the offset itself is gone (compacted): start here */
        *next = offset + 1;
        return (uint64_t)pos;
    }
    if (h.max_timestamp > e.ts)
        return 0;
    *next = batch_last_offset(&h) + 1;
    return (uint64_t)pos + record_batch_size(&h);
}

int64_t segment_find_timestamp(const uint8_t *data, size_t len, int64_t base, const uint8_t *idx,
                               size_t idx_len, const uint8_t *tidx, size_t tidx_len, int64_t ts,
                               int64_t *end_offset)
{
    size_t n = tidx ? tidx_len / SEGMENT_TIMEINDEX_ENTRY_BYTES : 0;
    ptrdiff_t i = time_index_search(tidx, n, ts);
    int64_t next = base, found;
    uint64_t pos =
        i < 0 ? 0 : time_entry_start(data, len, base, idx, idx_len, tidx, n, (size_t)i, &next);
    record_batch_header_t h;
    int rc;

    if (pos == 0)
        next = base;
    while (pos < len) {
        if ((rc = lookup_batch_at(data, len, base, pos, next, &h)) == RECORD_INCOMPLETE)
            break;
        if (rc)
            return rc;
        found = segment_batch_find_timestamp(data + pos, &h, ts);
        if (found != SHOAL_EOFFSET)
            return found;
        next = batch_last_offset(&h) + 1;
        pos += record_batch_size(&h);
    }
    if (end_offset)
        *end_offset = next;
    return SHOAL_EOFFSET;
}

/* ------------------------------------------------------------------ index entries */

/* The entries one batch adds, decided by index_plan() from the writer's state alone. */
typedef struct index_entries {
    bool index;
    bool timeindex;
    uint8_t idx[SEGMENT_INDEX_ENTRY_BYTES];
    uint8_t ts[SEGMENT_TIMEINDEX_ENTRY_BYTES];
} index_entries_t;

static int index_plan(const index_writer_t *w, uint64_t pos, const record_batch_header_t *h,
                      index_entries_t *e)
{
    int64_t rel, max_ts, max_rel;

    e->index = e->timeindex = false;
    if (w->has_entry && pos <= w->last_indexed_pos)
        return SHOAL_ERR(-EINVAL, "index: batch at %" PRIu64 " not after the last entry", pos);
    if (w->has_entry && pos - w->last_indexed_pos < SEGMENT_INDEX_INTERVAL_BYTES)
        return 0;
    if (pos > UINT32_MAX)
        return SHOAL_ERR(-EOVERFLOW, "index: position %" PRIu64 " over 32 bits", pos);
    if (h->last_offset_delta < 0 || h->base_offset > INT64_MAX - h->last_offset_delta)
        return SHOAL_ERR(-EINVAL, "index: bad batch offsets");
    rel = batch_last_offset(h) - w->base;
    if (rel < 0 || rel > INT32_MAX)
        return SHOAL_ERR(-EOVERFLOW, "index: offset %" PRId64 " outside segment %" PRId64,
                         batch_last_offset(h), w->base);
    e->index = true;
    shoal__put_be32(e->idx, (uint32_t)rel);
    shoal__put_be32(e->idx + 4, (uint32_t)pos);
    /* Kafka's rule: the largest timestamp so far, and the batch that first reached it. */
    if (h->max_timestamp > w->max_timestamp) {
        max_ts = h->max_timestamp;
        max_rel = rel;
    } else {
        max_ts = w->max_timestamp;
        max_rel = w->max_timestamp_offset - w->base;
    }
    e->timeindex = max_ts > w->last_timestamp;
    shoal__put_be64(e->ts, (uint64_t)max_ts);
    shoal__put_be32(e->ts + 8, (uint32_t)max_rel);
    return 0;
}

/* Every batch, indexed or not, counts towards the running maximum timestamp. */
static void index_note_max(index_writer_t *w, int64_t max_timestamp, int64_t last_offset)
{
    if (max_timestamp > w->max_timestamp) {
        w->max_timestamp = max_timestamp;
        w->max_timestamp_offset = last_offset;
    }
}

static void index_note_batch(index_writer_t *w, const record_batch_header_t *h)
{
    index_note_max(w, h->max_timestamp, batch_last_offset(h));
}

/* Kafka's last .timeindex entry of a segment that is done (rolled, or rewritten by
 * compaction): the largest timestamp and the batch that first reached it, when the last
 * entry is behind them (entries come only every index interval). Kafka takes a segment's
 * largest timestamp from its last entry, for time retention and lookups. False when there
 * is nothing to add. */
static bool index_final_entry(const index_writer_t *w, index_entries_t *e)
{
    int64_t rel = w->max_timestamp_offset - w->base;

    e->index = false;
    e->timeindex = w->max_timestamp > w->last_timestamp && rel >= 0 && rel <= INT32_MAX;
    shoal__put_be64(e->ts, (uint64_t)w->max_timestamp);
    shoal__put_be32(e->ts + 8, (uint32_t)rel);
    return e->timeindex;
}

/* Advance the writer's state past an entry that is now written. */
static void index_note_index(index_writer_t *w, uint64_t pos)
{
    w->index_bytes += SEGMENT_INDEX_ENTRY_BYTES;
    w->last_indexed_pos = pos;
    w->has_entry = true;
}

static void index_note_timeindex(index_writer_t *w, const index_entries_t *e)
{
    w->timeindex_bytes += SEGMENT_TIMEINDEX_ENTRY_BYTES;
    w->last_timestamp = (int64_t)shoal__get_be64(e->ts);
}

static void index_state_init(index_writer_t *w, int64_t base)
{
    memset(w, 0, sizeof(*w));
    w->index_fd = -1;
    w->timeindex_fd = -1;
    w->base = base;
    /* Kafka's "no timestamp" is -1, so such batches get no .timeindex entry. */
    w->last_timestamp = -1;
    w->max_timestamp = -1;
    w->max_timestamp_offset = base;
}

/* ------------------------------------------------------------------ index writer */

/* Open one index file for appending, drop a torn partial entry at its end (what a crash
 * during an append leaves) and return its whole size in *size. fd or -errno. */
static int index_file_open(const char *path, size_t entry_bytes, uint64_t *size)
{
    struct stat st;
    int fd = shoal__open_regular(path, O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW, SEGMENT_FILE_MODE);
    int rc;

    if (fd < 0)
        return fd;
    if (fstat(fd, &st) != 0)
        goto out_errno;
    *size = (uint64_t)st.st_size - (uint64_t)st.st_size % entry_bytes;
    if (*size != (uint64_t)st.st_size && ftruncate(fd, (off_t)*size) != 0)
        goto out_errno;
    return fd;

out_errno:
    rc = SHOAL_ERR(-errno, "%s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

/* Restore last_indexed_pos and last_timestamp from the last entries of the open files. */
static int index_writer_resume(index_writer_t *w)
{
    uint8_t buf[SEGMENT_TIMEINDEX_ENTRY_BYTES];
    int rc;

    if (w->index_bytes > 0) {
        rc = shoal__pread_all(w->index_fd, buf, SEGMENT_INDEX_ENTRY_BYTES,
                              w->index_bytes - SEGMENT_INDEX_ENTRY_BYTES);
        if (rc)
            return SHOAL_ERR(rc, "reading the last .index entry of segment %" PRId64, w->base);
        w->last_indexed_pos = shoal__get_be32(buf + 4);
        w->has_entry = true;
    }
    if (w->timeindex_bytes > 0) {
        rc = shoal__pread_all(w->timeindex_fd, buf, SEGMENT_TIMEINDEX_ENTRY_BYTES,
                              w->timeindex_bytes - SEGMENT_TIMEINDEX_ENTRY_BYTES);
        if (rc)
            return SHOAL_ERR(rc, "reading the last .timeindex entry of segment %" PRId64, w->base);
        w->last_timestamp = (int64_t)shoal__get_be64(buf);
        w->max_timestamp_offset = w->base + shoal__get_be32(buf + 8);
    }
    w->max_timestamp = w->last_timestamp;
    return 0;
}

/* The running maximum covers the batches after the last indexed one too: read their
 * headers from the log, at most an index interval and one batch past the last entry, since
 * a writer with entries continues at the end of the log (the flusher after a restart).
 * Without entries nothing was indexed yet and the caller adds every batch from the first.
 * A missing log has none. Recovery checked the log before the flusher reopens it, so a
 * header that does not parse simply ends the walk. */
static int index_writer_resume_log(index_writer_t *w, const char *dir)
{
    uint8_t hdr[RECORD_BATCH_HEADER_BYTES];
    char path[4096];
    struct stat st;
    uint64_t pos = w->last_indexed_pos;
    int fd, rc = segment_path(path, sizeof(path), dir, w->base, ".log");

    if (rc || !w->has_entry)
        return rc;
    fd = shoal__open_regular(path, O_RDONLY, 0);
    if (fd < 0)
        return fd == -ENOENT ? 0 : fd;
    rc = fstat(fd, &st) == 0 ? 0 : SHOAL_ERR(-errno, "fstat %s: %s", path, strerror(errno));
    while (rc == 0 && pos + sizeof(hdr) <= (uint64_t)st.st_size) {
        int32_t blen;
        if ((rc = shoal__pread_all(fd, hdr, sizeof(hdr), pos)) != 0)
            break;
        blen = (int32_t)shoal__get_be32(hdr + 8);
        if (blen < RECORD_BATCH_HEADER_BYTES - RECORD_BATCH_LOG_OVERHEAD)
            break;
        index_note_max(w, (int64_t)shoal__get_be64(hdr + 35),
                       (int64_t)shoal__get_be64(hdr) + (int32_t)shoal__get_be32(hdr + 23));
        pos += (uint64_t)blen + RECORD_BATCH_LOG_OVERHEAD;
    }
    close(fd);
    return rc ? SHOAL_ERR(rc, "reading %s after its last index entry", path) : 0;
}

int index_writer_open(index_writer_t *w, const char *dir, int64_t base)
{
    char path[4096];
    int rc;

    index_state_init(w, base);
    rc = segment_path(path, sizeof(path), dir, base, ".index");
    if (rc)
        return rc;
    w->index_fd = rc = index_file_open(path, SEGMENT_INDEX_ENTRY_BYTES, &w->index_bytes);
    if (rc < 0)
        goto out_reset;
    rc = segment_path(path, sizeof(path), dir, base, ".timeindex");
    if (rc)
        goto out_close;
    w->timeindex_fd = rc =
        index_file_open(path, SEGMENT_TIMEINDEX_ENTRY_BYTES, &w->timeindex_bytes);
    if (rc < 0)
        goto out_close;
    rc = index_writer_resume(w);
    if (rc == 0)
        rc = index_writer_resume_log(w, dir);
    if (rc)
        goto out_close;
    return 0;

out_close:
    index_writer_close(w);
out_reset:
    index_state_init(w, base);
    return rc;
}

int (*index_writer__fault_hook)(void);

/* Writes go to the tracked end of each file. The files are opened O_APPEND, so the kernel
 * appends whatever offset pwrite is given; the offset only matters for retried short
 * writes, which it keeps in place either way. A failed write leaves the writer as before
 * the call, so the same batch may be added again. */

int index_writer_add(index_writer_t *w, uint64_t pos, const record_batch_header_t *h)
{
    index_entries_t e;
    int rc = index_plan(w, pos, h, &e);

    if (rc)
        return rc;
    index_note_batch(w, h);
    if (!e.index)
        return 0;
    rc = shoal__pwrite_all(w->index_fd, e.idx, sizeof(e.idx), w->index_bytes);
    if (rc == 0 && __builtin_expect(index_writer__fault_hook != NULL, 0))
        rc = index_writer__fault_hook();
    if (rc == 0 && e.timeindex)
        rc = shoal__pwrite_all(w->timeindex_fd, e.ts, sizeof(e.ts), w->timeindex_bytes);
    if (rc) {
        /* Both files back to their entries so far (the writes append), the writer's state
         * unchanged: the flusher's retry of this batch (a full disk) writes them again,
         * once. Cutting a file back needs no space. */
        (void)!ftruncate(w->index_fd, (off_t)w->index_bytes);
        (void)!ftruncate(w->timeindex_fd, (off_t)w->timeindex_bytes);
        return SHOAL_ERR(rc, "writing the index of segment %" PRId64, w->base);
    }
    index_note_index(w, pos);
    if (e.timeindex)
        index_note_timeindex(w, &e);
    return 0;
}

int index_writer_seal(index_writer_t *w)
{
    index_entries_t e;
    int rc;

    if (!index_final_entry(w, &e))
        return 0;
    rc = shoal__pwrite_all(w->timeindex_fd, e.ts, sizeof(e.ts), w->timeindex_bytes);
    if (rc) {
        (void)!ftruncate(w->timeindex_fd, (off_t)w->timeindex_bytes); /* as before the call */
        return SHOAL_ERR(rc, "writing the last .timeindex entry of segment %" PRId64, w->base);
    }
    index_note_timeindex(w, &e);
    return 1;
}

int index_writer_sync(index_writer_t *w)
{
    if (fsync(w->index_fd) != 0 || fsync(w->timeindex_fd) != 0)
        return SHOAL_ERR(-errno, "fsync index of segment %" PRId64 ": %s", w->base,
                         strerror(errno));
    return 0;
}

void index_writer_close(index_writer_t *w)
{
    if (w->index_fd >= 0)
        close(w->index_fd);
    if (w->timeindex_fd >= 0)
        close(w->timeindex_fd);
    w->index_fd = -1;
    w->timeindex_fd = -1;
}

/* ------------------------------------------------------------------ recovery */

/* Map the whole of fd read-only; an empty file maps to (NULL, 0). 0 or -errno. */
static int map_fd(int fd, const char *path, segment_map_t *m)
{
    struct stat st;
    void *p;

    m->data = NULL;
    m->len = 0;
    if (fstat(fd, &st) != 0)
        return SHOAL_ERR(-errno, "fstat %s: %s", path, strerror(errno));
    if (st.st_size == 0)
        return 0;
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return SHOAL_ERR(-errno, "mmap %s: %s", path, strerror(errno));
    m->data = p;
    m->len = (size_t)st.st_size;
    return 0;
}

void segment_unmap(segment_map_t *m)
{
    if (m->data)
        munmap((void *)m->data, m->len);
    m->data = NULL;
    m->len = 0;
}

int segment_map(const char *dir, int64_t base, const char *ext, bool missing_ok, segment_map_t *m)
{
    char path[PATH_MAX];
    int fd, rc = segment_path(path, sizeof(path), dir, base, ext);

    m->data = NULL;
    m->len = 0;
    if (rc < 0)
        return rc;
    if ((fd = shoal__open_regular(path, O_RDONLY, 0)) < 0)
        return fd == -ENOENT && missing_ok ? 0 : fd;
    rc = map_fd(fd, path, m);
    close(fd);
    return rc;
}

typedef struct bytebuf {
    uint8_t *p;
    size_t len;
    size_t cap;
} bytebuf_t;

static int bytebuf_append(bytebuf_t *b, const void *src, size_t n)
{
    if (b->cap - b->len < n) {
        size_t ncap = SHOAL_MAX(b->cap * 2, b->len + n + 256);
        uint8_t *p = shoal__realloc(b->p, ncap);
        if (!p)
            return SHOAL_ERR(-ENOMEM, "building a segment index");
        b->p = p;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

/* The index the log implies, built during the recovery scan. */
typedef struct index_build {
    index_writer_t state;
    bytebuf_t index;
    bytebuf_t timeindex;
} index_build_t;

static int index_build_batch(void *arg, uint64_t pos, const uint8_t *batch,
                             const record_batch_header_t *h)
{
    index_build_t *b = arg;
    index_entries_t e;
    int rc = index_plan(&b->state, pos, h, &e);

    (void)batch;
    if (rc == 0)
        index_note_batch(&b->state, h);
    if (rc == 0 && e.index)
        rc = bytebuf_append(&b->index, e.idx, sizeof(e.idx));
    if (rc == 0 && e.timeindex)
        rc = bytebuf_append(&b->timeindex, e.ts, sizeof(e.ts));
    if (rc == 0 && e.index)
        index_note_index(&b->state, pos);
    if (rc == 0 && e.timeindex)
        index_note_timeindex(&b->state, &e);
    return rc;
}

/* Compare the file at path with want[0..len): *had gets its length, *same the length of
 * the prefix both share; *exists whether it is there. A missing file has nothing, nor
 * does anything but a regular file (a FIFO there is replaced, never read). */
static int file_compare(const char *path, const uint8_t *want, size_t len, bool *exists,
                        size_t *had, size_t *same)
{
    segment_map_t m;
    int fd = shoal__open_regular(path, O_RDONLY | O_NOFOLLOW, 0);
    int rc;

    *exists = false;
    *had = *same = 0;
    if (fd < 0)
        return fd == -ENOENT || fd == SHOAL_ECORRUPT ? 0 : fd;
    rc = map_fd(fd, path, &m);
    if (rc == 0) {
        *exists = true;
        *had = m.len;
        while (*same < m.len && *same < len && m.data[*same] == want[*same])
            ++*same;
    }
    segment_unmap(&m);
    close(fd);
    return rc;
}

/* Replace dir/<base><ext> by buf[0..len): write a temporary file, fsync it, rename it over
 * the old one and fsync the directory, so a crash leaves either index whole. */
static int file_replace(const char *dir, int64_t base, const char *ext, const bytebuf_t *buf)
{
    char path[4096], tmp[4096];
    int fd, rc;

    rc = segment_path(path, sizeof(path), dir, base, ext);
    if (rc == 0 && snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        rc = SHOAL_ERR(-ENAMETOOLONG, "index path in %s too long", dir);
    if (rc)
        return rc;
    /* Whatever a crash left at tmp goes: the new file is created, never opened. */
    if (unlink(tmp) != 0 && errno != ENOENT)
        return SHOAL_ERR(-errno, "unlink %s: %s", tmp, strerror(errno));
    fd = shoal__open_regular(tmp, O_WRONLY | O_CREAT | O_EXCL, SEGMENT_FILE_MODE);
    if (fd < 0)
        return fd;
    rc = shoal__pwrite_all(fd, buf->p, buf->len, 0);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc)
        goto out_unlink;
    return shoal__fsync_dir(dir);

out_unlink:
    unlink(tmp);
    return SHOAL_ERR(rc, "rewriting %s: %s", path, strerror(-rc));
}

/* file_compare() of dir/<base><ext> with want. */
static int index_file_compare(const char *dir, int64_t base, const char *ext, const bytebuf_t *want,
                              bool *exists, size_t *had, size_t *same)
{
    char path[4096];
    int rc = segment_path(path, sizeof(path), dir, base, ext);
    return rc ? rc : file_compare(path, want->p, want->len, exists, had, same);
}

/* Cut dir/<base><ext> back to its first n entries of entry_bytes, durably: no space needed. */
static int index_file_cut(const char *dir, int64_t base, const char *ext, size_t entry_bytes,
                          size_t n)
{
    char path[4096];
    int fd, rc = segment_path(path, sizeof(path), dir, base, ext);

    if (rc)
        return rc;
    if ((fd = shoal__open_regular(path, O_WRONLY | O_NOFOLLOW, 0)) < 0)
        return fd == -ENOENT ? 0 : fd; /* the index writer creates it */
    if (ftruncate(fd, (off_t)(n * entry_bytes)) != 0 || fsync(fd) != 0)
        rc = SHOAL_ERR(-errno, "cutting %s back: %s", path, strerror(errno));
    close(fd);
    return rc;
}

/* The disk is too full to rewrite the indexes: cut each back to the entries it shares with
 * the rebuilt one (want), which needs no space. The .index keeps no entry past the last
 * .timeindex entry kept (the first entry only when none is): the index writer restores its
 * running maximum timestamp from that entry and the log's headers after the .index's last
 * entry, so none of the batches between may be left out. Lookups scan further until a
 * start with room rebuilds both. 0, or the rewrite's error when not even the first .index
 * entry is right. */
static int index_files_cut_back(const char *dir, int64_t base, const index_build_t *want, int err)
{
    size_t had, idx_n, ts_n, keep;
    bool exists;
    int64_t limit;
    int rc = index_file_compare(dir, base, ".index", &want->index, &exists, &had, &idx_n);

    if (rc == 0)
        rc = index_file_compare(dir, base, ".timeindex", &want->timeindex, &exists, &had, &ts_n);
    if (rc < 0)
        return rc;
    idx_n /= SEGMENT_INDEX_ENTRY_BYTES;
    ts_n /= SEGMENT_TIMEINDEX_ENTRY_BYTES;
    /* the relative offset the last .timeindex entry kept names */
    limit =
        ts_n ? shoal__get_be32(want->timeindex.p + ts_n * SEGMENT_TIMEINDEX_ENTRY_BYTES - 4) : 0;
    for (keep = idx_n ? 1 : 0; keep < idx_n; keep++)
        if (shoal__get_be32(want->index.p + keep * SEGMENT_INDEX_ENTRY_BYTES) > limit)
            break;
    if (keep == 0 && want->index.len > 0)
        return err;
    if ((rc = index_file_cut(dir, base, ".timeindex", SEGMENT_TIMEINDEX_ENTRY_BYTES, ts_n)) < 0)
        return rc;
    return index_file_cut(dir, base, ".index", SEGMENT_INDEX_ENTRY_BYTES, keep);
}

/* Make the segment's .index and .timeindex hold what the scan built (b): rewrite each that
 * differs (out->index_rebuilt; index_shrank when the .index held more: entries for records
 * the .log no longer has). On a full disk, cut them back instead (index_short). */
static int index_files_refresh(const char *dir, int64_t base, const index_build_t *b,
                               segment_recovery_t *out)
{
    static const char *const exts[] = {".index", ".timeindex"};
    const bytebuf_t *want[] = {&b->index, &b->timeindex};
    int rc = 0;

    for (size_t i = 0; i < 2 && rc == 0; i++) {
        bool exists;
        size_t had, same;
        if ((rc = index_file_compare(dir, base, exts[i], want[i], &exists, &had, &same)) < 0 ||
            (exists && had == want[i]->len && same == had))
            continue;
        out->index_rebuilt = true;
        /* the .timeindex's rule changed once: only the .index tells that the log shrank */
        out->index_shrank |= i == 0 && had > want[i]->len;
        rc = file_replace(dir, base, exts[i], want[i]);
    }
    if (rc == -ENOSPC || rc == -EDQUOT) {
        rc = index_files_cut_back(dir, base, b, rc);
        out->index_short = rc == 0;
    }
    return rc;
}

/* The scan found damage: cut the last segment back to its good prefix, durably; refuse to
 * touch any other. */
static int recover_tail(int fd, const char *path, bool is_last, segment_recovery_t *out)
{
    if (!is_last)
        return SHOAL_ERR(SHOAL_ECORRUPT, "%s is damaged and is not the last segment: %s", path,
                         out->scan.why);
    if (ftruncate(fd, (off_t)out->scan.valid_bytes) != 0 || fsync(fd) != 0)
        return SHOAL_ERR(-errno, "truncating %s to %" PRIu64 " bytes: %s", path,
                         out->scan.valid_bytes, strerror(errno));
    out->truncated_bytes = out->file_bytes - out->scan.valid_bytes;
    return 0;
}

/* A sealed segment's rebuilt .timeindex ends with Kafka's last entry (index_final_entry),
 * as the flusher writes it when it rolls; the last segment's keeps one only when its file
 * has it (the flusher had rolled when shoald stopped, before the next segment began). */
static int index_build_finish(const char *dir, int64_t base, bool is_last, index_build_t *b)
{
    index_entries_t e;
    size_t had, same;
    bool exists;
    int rc;

    if (!index_final_entry(&b->state, &e))
        return 0;
    if ((rc = bytebuf_append(&b->timeindex, e.ts, sizeof(e.ts))) < 0 || !is_last)
        return rc;
    rc = index_file_compare(dir, base, ".timeindex", &b->timeindex, &exists, &had, &same);
    if (rc == 0 && !(exists && had == b->timeindex.len && same == had))
        b->timeindex.len -= sizeof(e.ts); /* not rolled: no last entry */
    return rc;
}

int segment_recover(const char *dir, int64_t base, bool is_last, segment_recovery_t *out)
{
    char path[4096];
    index_build_t b = {0};
    segment_map_t m;
    int fd, rc;

    memset(out, 0, sizeof(*out));
    rc = segment_path(path, sizeof(path), dir, base, ".log");
    if (rc)
        return rc;
    /* The last segment may be cut short: never through a symbolic link. */
    fd = shoal__open_regular(path, is_last ? O_RDWR | O_NOFOLLOW : O_RDONLY, 0);
    if (fd < 0)
        return fd;
    rc = map_fd(fd, path, &m);
    if (rc)
        goto out_close;
    out->file_bytes = m.len;
    index_state_init(&b.state, base);
    rc = segment_scan_bytes(m.data, m.len, base, true, index_build_batch, &b, &out->scan);
    if (rc)
        goto out_free_index;
    /* Truncating under the mapping is safe: nothing past the good prefix is read again. */
    if (out->scan.error && (rc = recover_tail(fd, path, is_last, out)) != 0)
        goto out_free_index;
    if ((rc = index_build_finish(dir, base, is_last, &b)) == 0)
        rc = index_files_refresh(dir, base, &b, out);

out_free_index:
    shoal__free(b.index.p);
    shoal__free(b.timeindex.p);
    segment_unmap(&m);
out_close:
    close(fd);
    return rc;
}
