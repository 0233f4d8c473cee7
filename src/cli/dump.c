/* dump.c - `shoal dump PATH`: print and check one segment file (.log, .index or .timeindex)
 * the way Kafka's DumpLogSegments does, without a daemon.
 *
 * DESIGN
 *
 * Unlike the rest of the tool this file is not a client of shoal.h alone: like LMDB's
 * mdb_dump it reads the files itself, so it works on any copy of a segment, with or
 * without a running shoald, and it never connects to one. It includes the internal
 * headers record.h and segment.h (the on-disk format and the batch scanner), crc32c.h (to
 * print the computed CRC beside the stored one) and util.h (big-endian reads, allocation).
 *
 * The file is mapped read-only and everything in it is untrusted. Batches are found with
 * segment_scan_bytes(), which bounds-checks every header before it is used and stops at the
 * first batch it cannot parse; a CRC mismatch does not stop it (the batch's bounds are still
 * known), so every batch gets a "valid"/"INVALID" verdict. The scan's stop is reported as a
 * torn tail (RECORD_INCOMPLETE: the file ends inside a batch, as a crash during a write
 * leaves it) or as corruption; a batch the file ends inside whose length no batch can have
 * (over the largest segment, or over the largest max.message.bytes for one record) was
 * never written whole, so it is corruption too. Records are decoded with record_iter_*, which
 * checks every varint and length against the batch; compressed batches are not decoded.
 *
 * A batch with no records is not damage: log compaction keeps a batch's offset range when it
 * drops every record of it (shoald keeps such a batch when it ends a segment, as Kafka's
 * cleaner may), so the range stays accounted for. dump says so under the batch's line and
 * counts such batches before the summary; neither line appears for a segment without one,
 * so the output of any other segment is unchanged.
 *
 * .index entries are checked in one pass over the log: the entries are sorted by position
 * (a copy the size of the index, which is sparse and small) and merged with the batches as
 * the scan meets them, so no table of the log's batches is built. .timeindex entries must
 * rise in timestamp and offset and, against the log in one more pass, each sit at a batch's
 * last offset and hold the largest timestamp up to it (as segment.c's index writer does;
 * a segment written before that rule, see docs/ARCHITECTURE.md, can show mismatches).
 *
 * Anything found wrong is a "problem": marked on its line of the dump and, with --verify,
 * also written to the error stream and turned into exit status 1. A file that cannot be
 * opened or mapped is status 1 either way; an unknown extension is a usage error (2).
 * A file truncated by another process while it is mapped would raise SIGBUS; shoald only
 * ever truncates a segment during recovery, before it serves it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "crc32c.h"
#include "record.h"
#include "segment.h"
#include "topic_config.h"
#include "util.h"

#define DUMP_NO_MAX UINT64_MAX

/* What `shoal dump` was asked to do. */
typedef struct dump_opts {
    bool verify;     /* decode every record too; exit 1 when anything is wrong */
    bool print_data; /* one line per record */
    uint64_t max;    /* print at most this many batches or entries (checks cover all) */
} dump_opts_t;

typedef enum { DUMP_UNKNOWN, DUMP_LOG, DUMP_INDEX, DUMP_TIMEINDEX } dump_kind_t;

typedef struct dump_map {
    const uint8_t *data;
    size_t len;
} dump_map_t;

/* One dump in progress. */
typedef struct dump {
    FILE *out;
    FILE *err;
    const char *path;
    const dump_opts_t *o;
    int64_t base;
    uint64_t problems;
    uint64_t printed; /* batches or entries printed, against o->max */
    /* .log summary, beside the scan's counts */
    int64_t first_offset; /* -1 until a batch was seen */
    int64_t last_offset;
    int64_t min_ts;
    int64_t max_ts;
    uint64_t empty_batches; /* batches compaction left without records */
} dump_t;

/* ------------------------------------------------------------------ helpers */

static void dump_problem(dump_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Count a problem; under --verify also say what it is on the error stream. */
static void dump_problem(dump_t *d, const char *fmt, ...)
{
    va_list ap;

    d->problems++;
    if (!d->o->verify)
        return;
    fprintf(d->err, "shoal: %s: ", d->path);
    va_start(ap, fmt);
    vfprintf(d->err, fmt, ap);
    va_end(ap);
    fputc('\n', d->err);
}

static bool dump_should_print(dump_t *d)
{
    if (d->printed >= d->o->max)
        return false;
    d->printed++;
    return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static dump_kind_t dump_kind(const char *path)
{
    if (has_suffix(path, ".log"))
        return DUMP_LOG;
    if (has_suffix(path, ".timeindex"))
        return DUMP_TIMEINDEX;
    if (has_suffix(path, ".index"))
        return DUMP_INDEX;
    return DUMP_UNKNOWN;
}

/* The base offset in a "<20 digits>.<ext>" file name, or -1 for any other name. */
static int64_t dump_name_base(const char *path)
{
    const char *name = strrchr(path, '/');
    uint64_t v = 0;

    name = name ? name + 1 : path;
    if (strlen(name) < SEGMENT_NAME_DIGITS + 1 || name[SEGMENT_NAME_DIGITS] != '.')
        return -1;
    for (int i = 0; i < SEGMENT_NAME_DIGITS; i++) {
        unsigned digit = (unsigned)(name[i] - '0');
        if (digit > 9 || v > ((uint64_t)INT64_MAX - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    return (int64_t)v;
}

/* Map path read-only (an empty file maps to NULL, 0). 0, or -errno with the detail set.
 * O_NONBLOCK keeps open() from waiting on a FIFO (for a writer) or a device (for carrier):
 * such a file is then refused as not a regular file. On a regular file it changes nothing. */
static int dump_map_open(const char *path, dump_map_t *m)
{
    struct stat st;
    void *p;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    int rc = 0;

    m->data = NULL;
    m->len = 0;
    if (fd < 0)
        return SHOAL_ERR(-errno, "%s", strerror(errno));
    if (fstat(fd, &st) != 0) {
        rc = SHOAL_ERR(-errno, "fstat: %s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = SHOAL_ERR(-EINVAL, "not a regular file");
    } else if (st.st_size > 0) {
        p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
            rc = SHOAL_ERR(-errno, "mmap: %s", strerror(errno));
        else
            *m = (dump_map_t){p, (size_t)st.st_size};
    }
    close(fd);
    return rc;
}

static void dump_map_close(dump_map_t *m)
{
    if (m->data)
        munmap((void *)m->data, m->len);
    m->data = NULL;
    m->len = 0;
}

/* The .log beside an index file: same name, extension replaced. NULL when too long. */
static const char *dump_sibling_log(const char *path, char *buf, size_t cap)
{
    const char *dot = strrchr(path, '.');
    int n = snprintf(buf, cap, "%.*s.log", (int)(dot - path), path);

    return n > 0 && (size_t)n < cap ? buf : NULL;
}

/* ------------------------------------------------------------------ values */

/* Length of the UTF-8 sequence at p (at most n bytes) when it is a printable character,
 * else 0: control characters, DEL, malformed or overlong sequences and surrogates are not. */
static size_t utf8_printable_len(const uint8_t *p, size_t n)
{
    size_t len;
    uint32_t c;

    if (p[0] >= 0x20 && p[0] < 0x7f)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2, c = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3, c = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4, c = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
        (c >= 0xd800 && c <= 0xdfff) || (c >= 0x80 && c < 0xa0))
        return 0;
    return len;
}

static bool is_printable_text(const uint8_t *p, size_t n)
{
    size_t i = 0, k;

    while (i < n) {
        k = utf8_printable_len(p + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* A key, value or header value: null; "text" (with \" and \\ escaped) when it is printable
 * UTF-8; else 0x and its bytes in hex. */
static void dump_bytes(FILE *out, const void *data, int64_t len)
{
    const uint8_t *p = data;

    if (!data || len < 0) {
        fputs("null", out);
        return;
    }
    if (!is_printable_text(p, (size_t)len)) {
        fputs("0x", out);
        for (int64_t i = 0; i < len; i++)
            fprintf(out, "%02x", p[i]);
        return;
    }
    fputc('"', out);
    for (int64_t i = 0; i < len; i++) {
        if (p[i] == '"' || p[i] == '\\')
            fputc('\\', out);
        fputc(p[i], out);
    }
    fputc('"', out);
}

static const char *compression_name(int16_t attributes)
{
    static const char *const names[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    int codec = attributes & RECORD_ATTR_COMPRESSION_MASK;

    return codec < (int)SHOAL_ARRAY_LEN(names) ? names[codec] : "unknown";
}

/* ------------------------------------------------------------------ .log */

static int dump_headers(FILE *out, const shoal_record_t *rec)
{
    shoal_header_t h;
    size_t iter = 0;
    int rc;

    fputs(" headers: [", out);
    while ((rc = shoal_record_header(rec, &iter, &h)) == 1) {
        if (iter > 1)
            fputs(", ", out);
        dump_bytes(out, h.key, (int64_t)h.key_len);
        fputc('=', out);
        dump_bytes(out, h.value, h.value_len);
    }
    fputc(']', out);
    return rc;
}

static void dump_record(FILE *out, const shoal_record_t *rec)
{
    fprintf(out, "| offset: %" PRId64 " timestamp: %" PRId64 " key: ", rec->offset,
            rec->timestamp_ms);
    dump_bytes(out, rec->key, rec->key_len);
    fputs(" value: ", out);
    dump_bytes(out, rec->value, rec->value_len);
    if (dump_headers(out, rec) < 0)
        fprintf(out, " (bad headers: %s)", shoal_errmsg());
    fputc('\n', out);
}

/* Decode the records of the batch at pos, printing them when print is set. A record that
 * does not decode ends the batch's records and is a problem. */
static void dump_records(dump_t *d, uint64_t pos, const uint8_t *batch,
                         const record_batch_header_t *h, bool print)
{
    record_iter_t it;
    shoal_record_t rec;
    int rc;

    if (record_batch_is_compressed(h)) {
        if (print)
            fprintf(d->out, "| %" PRId32 " records compressed with %s: not decoded\n",
                    h->record_count, compression_name(h->attributes));
        return;
    }
    if (record_iter_init(&it, batch, h) != 0)
        return;
    while ((rc = record_iter_next(&it, &rec)) == 1) {
        if (print)
            dump_record(d->out, &rec);
    }
    if (rc < 0) {
        if (print)
            fprintf(d->out, "| bad record: %s\n", shoal_errmsg());
        dump_problem(d, "batch at byte %" PRIu64 ": bad record: %s", pos, shoal_errmsg());
    }
}

static void dump_batch_line(dump_t *d, uint64_t pos, const record_batch_header_t *h,
                            uint32_t computed)
{
    fprintf(d->out,
            "baseOffset: %" PRId64 " lastOffset: %" PRId64 " count: %" PRId32 " position: %" PRIu64
            " size: %zu crc: 0x%08" PRIx32 " computed: 0x%08" PRIx32
            " %s magic: %d compression: %s firstTimestamp: %" PRId64 " maxTimestamp: %" PRId64
            " producerId: %" PRId64 " producerEpoch: %d baseSequence: %" PRId32
            " leaderEpoch: %" PRId32 "\n",
            h->base_offset, h->base_offset + h->last_offset_delta, h->record_count, pos,
            record_batch_size(h), h->crc, computed, computed == h->crc ? "valid" : "INVALID",
            h->magic, compression_name(h->attributes), h->first_timestamp, h->max_timestamp,
            h->producer_id, h->producer_epoch, h->base_sequence, h->leader_epoch);
}

/* Whether the batch is one compaction emptied: no records and no record bytes, with a CRC
 * that matches (a damaged batch whose count happens to read 0 is not explained away). */
static bool batch_is_emptied(const record_batch_header_t *h, uint32_t computed)
{
    return h->record_count == 0 && record_batch_size(h) == RECORD_BATCH_HEADER_BYTES &&
           computed == h->crc;
}

/* The line under an emptied batch: the offsets it still covers, base..last. */
static void dump_emptied_note(dump_t *d, const record_batch_header_t *h)
{
    int64_t last = h->base_offset + h->last_offset_delta;

    fputs("(empty: compaction removed every record of ", d->out);
    if (last == h->base_offset)
        fprintf(d->out, "offset %" PRId64 ")\n", last);
    else
        fprintf(d->out, "offsets %" PRId64 "..%" PRId64 ")\n", h->base_offset, last);
}

static void dump_log_account(dump_t *d, const record_batch_header_t *h)
{
    if (d->first_offset < 0) {
        d->first_offset = h->base_offset;
        d->min_ts = h->first_timestamp;
        d->max_ts = h->max_timestamp;
    }
    d->last_offset = h->base_offset + h->last_offset_delta;
    d->min_ts = SHOAL_MIN(d->min_ts, h->first_timestamp);
    d->max_ts = SHOAL_MAX(d->max_ts, h->max_timestamp);
}

/* segment_scan_bytes() callback: the batch at pos lies inside the file and its header
 * parsed; its CRC has not been checked. */
static int dump_log_batch(void *arg, uint64_t pos, const uint8_t *batch,
                          const record_batch_header_t *h)
{
    dump_t *d = arg;
    uint32_t computed = shoal__crc32c(0, batch + RECORD_BATCH_CRC_START,
                                      record_batch_size(h) - RECORD_BATCH_CRC_START);
    bool print = dump_should_print(d);

    if (print)
        dump_batch_line(d, pos, h, computed);
    if (batch_is_emptied(h, computed)) {
        d->empty_batches++;
        if (print)
            dump_emptied_note(d, h);
    }
    if (computed != h->crc)
        dump_problem(
            d, "batch at byte %" PRIu64 ": CRC 0x%08" PRIx32 " stored, 0x%08" PRIx32 " computed",
            pos, h->crc, computed);
    if ((print && d->o->print_data) || d->o->verify)
        dump_records(d, pos, batch, h, print && d->o->print_data);
    dump_log_account(d, h);
    return 0;
}

#define DUMP_RECORD_COUNT_AT 57 /* recordsCount in a batch header */

/* Whether the batch at byte pos, which the file ends inside, is longer than any batch can
 * be: one fits in a ring slot (at most the largest segment), and one of a single record (or
 * none) in the largest max.message.bytes. Then it is garbage, not a torn write; why says so. */
static bool dump_batch_impossible(const dump_map_t *m, uint64_t pos, char *why, size_t cap)
{
    const uint8_t *p = m->data + pos;
    size_t avail = m->len - (size_t)pos;
    uint64_t size, limit = TOPIC_SEGMENT_BYTES_MAX;
    bool one = false;

    if (avail < RECORD_BATCH_LOG_OVERHEAD)
        return false;
    size = (uint64_t)shoal__get_be32(p + 8) + RECORD_BATCH_LOG_OVERHEAD;
    if (avail >= RECORD_BATCH_HEADER_BYTES &&
        (int32_t)shoal__get_be32(p + DUMP_RECORD_COUNT_AT) <= 1) {
        limit = TOPIC_MESSAGE_BYTES_MAX;
        one = true;
    }
    if (size <= limit)
        return false;
    snprintf(why, cap,
             "batch at byte %" PRIu64 " claims %" PRIu64 " bytes (%zu in the file), but no batch "
             "%sis larger than %" PRIu64,
             pos, size, avail, one ? "of one record " : "", limit);
    return true;
}

/* Report where and why the scan stopped before the end of the file. */
static void dump_log_stop(dump_t *d, const segment_scan_t *scan, const dump_map_t *m)
{
    bool torn = scan->error == RECORD_INCOMPLETE;
    const char *what = torn ? "torn tail" : "corrupt";
    char why[256];

    if (torn && dump_batch_impossible(m, scan->valid_bytes, why, sizeof(why)))
        what = "corrupt";
    else
        snprintf(why, sizeof(why), "%s", scan->why);
    fprintf(d->out, "stopped at byte %" PRIu64 " of %zu: %s: %s\n", scan->valid_bytes, m->len, what,
            why);
    dump_problem(d, "stopped at byte %" PRIu64 ": %s: %s (%" PRIu64 " bytes not dumped)",
                 scan->valid_bytes, what, why, (uint64_t)m->len - scan->valid_bytes);
}

static void dump_log_summary(dump_t *d, const segment_scan_t *scan, size_t len)
{
    if (d->printed < scan->batches)
        fprintf(d->out, "(%" PRIu64 " more batches not printed: --max)\n",
                scan->batches - d->printed);
    if (d->empty_batches > 0)
        fprintf(d->out, "(%" PRIu64 " empty batch%s left by compaction)\n", d->empty_batches,
                d->empty_batches == 1 ? "" : "es");
    fprintf(d->out, "summary: batches: %" PRIu64 " records: %" PRIu64 " bytes: %" PRIu64 " of %zu",
            scan->batches, scan->records, scan->valid_bytes, len);
    if (d->first_offset >= 0)
        fprintf(d->out,
                " firstOffset: %" PRId64 " lastOffset: %" PRId64 " minTimestamp: %" PRId64
                " maxTimestamp: %" PRId64,
                d->first_offset, d->last_offset, d->min_ts, d->max_ts);
    fprintf(d->out, " problems: %" PRIu64 "\n", d->problems);
}

/* The segment's base offset: from the file name, else from the first batch when its
 * header is sound (the batch may be torn), else 0. */
static int64_t dump_log_base(const char *path, const dump_map_t *m, const char **from)
{
    int64_t base = dump_name_base(path);
    record_batch_header_t h;
    int rc;

    *from = "from the file name";
    if (base >= 0)
        return base;
    *from = "from the first batch";
    rc = record_batch_parse(m->data, m->len, &h);
    if (rc == 0 || (rc == RECORD_INCOMPLETE && m->len >= RECORD_BATCH_HEADER_BYTES))
        return h.base_offset;
    shoal__clear_err();
    *from = "taken as 0: no 20-digit file name and no sound batch header to take it from";
    return 0;
}

static void dump_log(dump_t *d, const dump_map_t *m)
{
    segment_scan_t scan;
    const char *from;

    d->base = dump_log_base(d->path, m, &from);
    fprintf(d->out, "Dumping %s\nsegment base offset: %" PRId64 " (%s)\n", d->path, d->base, from);
    segment_scan_bytes(m->data, m->len, d->base, false, dump_log_batch, d, &scan);
    if (scan.error)
        dump_log_stop(d, &scan, m);
    dump_log_summary(d, &scan, m->len);
}

/* ------------------------------------------------------------------ the sibling .log */

/* What the index checks need of the log: its good prefix and offset range. */
typedef struct dump_log_info {
    bool present;
    dump_map_t map;
    segment_scan_t scan;
    int64_t first_offset; /* -1 when the log has no good batch */
} dump_log_info_t;

static int dump_first_batch(void *arg, uint64_t pos, const uint8_t *batch,
                            const record_batch_header_t *h)
{
    dump_log_info_t *log = arg;

    (void)pos;
    (void)batch;
    if (log->first_offset < 0)
        log->first_offset = h->base_offset;
    return 0;
}

/* Map and scan the .log beside the index file, if there is one. The index's base offset
 * comes from its name, else from the log's first batch, else it is taken as 0. */
static void dump_log_info_open(dump_t *d, dump_log_info_t *log)
{
    char buf[4096];
    const char *path = dump_sibling_log(d->path, buf, sizeof(buf));
    int rc = path ? dump_map_open(path, &log->map) : SHOAL_ERR(-ENAMETOOLONG, "path too long");

    log->present = rc == 0;
    log->first_offset = -1;
    d->base = dump_name_base(d->path);
    if (rc == -ENOENT) {
        fprintf(d->out, "no %s: entries are not checked against the log\n", path);
    } else if (rc) {
        fprintf(d->out, "cannot read the log beside it: %s\n", shoal_errmsg());
        dump_problem(d, "cannot read the log beside it: %s", shoal_errmsg());
    } else if (d->base < 0 && log->map.len >= sizeof(int64_t)) {
        d->base = (int64_t)shoal__get_be64(log->map.data);
    }
    d->base = SHOAL_MAX(d->base, 0);
    if (!log->present)
        return;
    segment_scan_bytes(log->map.data, log->map.len, d->base, false, dump_first_batch, log,
                       &log->scan);
    fprintf(d->out, "checking against %s: %" PRIu64 " batches in %" PRIu64 " good bytes\n", path,
            log->scan.batches, log->scan.valid_bytes);
}

static void dump_log_info_close(dump_log_info_t *log)
{
    dump_map_close(&log->map);
}

/* ------------------------------------------------------------------ .index */

typedef enum {
    ENTRY_UNCHECKED, /* no log to check it against */
    ENTRY_OK,
    ENTRY_ORDER,  /* offset or position not above the previous entry's */
    ENTRY_INSIDE, /* position inside a batch, not at its start */
    ENTRY_OFFSET, /* the batch there has another last offset */
    ENTRY_PAST,   /* position at or past the end of the log's good bytes */
} dump_verdict_t;

/* One .index entry and what checking it found. */
typedef struct dump_entry {
    uint32_t rel;
    uint32_t pos;
    size_t index; /* place in the file */
    dump_verdict_t verdict;
    uint64_t batch_pos; /* the batch the verdict is about */
    int64_t batch_last;
} dump_entry_t;

/* The merge of the entries, sorted by position, with the log's batches as the scan meets
 * them: an entry is matched when the scan reaches the batch at its position, or found to
 * lie inside the previous batch when the scan passes it. */
typedef struct dump_index_check {
    dump_entry_t **by_pos;
    size_t n;
    size_t next; /* first entry of by_pos the scan has not reached */
    int64_t base;
    uint64_t prev_pos;
    int64_t prev_last;
} dump_index_check_t;

static int cmp_entry_pos(const void *a, const void *b)
{
    const dump_entry_t *x = *(dump_entry_t *const *)a, *y = *(dump_entry_t *const *)b;

    if (x->pos != y->pos)
        return (x->pos > y->pos) - (x->pos < y->pos);
    return (x->index > y->index) - (x->index < y->index);
}

/* Give e its verdict about the batch at pos with last offset last, unless the order check
 * already found it wrong. */
static void index_entry_judge(dump_entry_t *e, dump_verdict_t v, uint64_t pos, int64_t last)
{
    if (e->verdict != ENTRY_UNCHECKED)
        return;
    e->verdict = v;
    e->batch_pos = pos;
    e->batch_last = last;
}

static int dump_index_batch(void *arg, uint64_t pos, const uint8_t *batch,
                            const record_batch_header_t *h)
{
    dump_index_check_t *c = arg;
    int64_t last = h->base_offset + h->last_offset_delta;
    dump_entry_t *e;

    (void)batch;
    /* The first batch starts at 0, so an entry passed here lies inside the previous one. */
    for (; c->next < c->n && (e = c->by_pos[c->next])->pos < pos; c->next++)
        index_entry_judge(e, ENTRY_INSIDE, c->prev_pos, c->prev_last);
    for (; c->next < c->n && (e = c->by_pos[c->next])->pos == pos; c->next++)
        index_entry_judge(e, (uint64_t)(last - c->base) == e->rel ? ENTRY_OK : ENTRY_OFFSET, pos,
                          last);
    c->prev_pos = pos;
    c->prev_last = last;
    return 0;
}

/* Check every entry against the log in one scan. 0, or -ENOMEM. */
static int dump_index_against_log(dump_t *d, dump_entry_t *ents, size_t n,
                                  const dump_log_info_t *log)
{
    dump_index_check_t c = {.n = n, .base = d->base};
    segment_scan_t scan;

    c.by_pos = shoal__malloc(SHOAL_MAX(n, 1) * sizeof(*c.by_pos));
    if (!c.by_pos)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        c.by_pos[i] = &ents[i];
    qsort(c.by_pos, n, sizeof(*c.by_pos), cmp_entry_pos);
    segment_scan_bytes(log->map.data, log->map.len, d->base, false, dump_index_batch, &c, &scan);
    for (; c.next < n; c.next++) {
        dump_entry_t *e = c.by_pos[c.next];
        if (scan.batches > 0 && e->pos < scan.valid_bytes)
            index_entry_judge(e, ENTRY_INSIDE, c.prev_pos, c.prev_last);
        else
            index_entry_judge(e, ENTRY_PAST, scan.valid_bytes, -1);
    }
    shoal__free(c.by_pos);
    return 0;
}

/* What is wrong with e, in words, or NULL when nothing is known to be. */
static const char *index_entry_problem(const dump_entry_t *e, char *buf, size_t cap)
{
    switch (e->verdict) {
    case ENTRY_ORDER:
        return "offset or position not above the previous entry's";
    case ENTRY_INSIDE:
        snprintf(buf, cap, "position is inside the batch at byte %" PRIu64 ", not at a batch start",
                 e->batch_pos);
        return buf;
    case ENTRY_OFFSET:
        snprintf(buf, cap, "the batch at byte %" PRIu64 " has last offset %" PRId64, e->batch_pos,
                 e->batch_last);
        return buf;
    case ENTRY_PAST:
        snprintf(buf, cap, "position is past the log's %" PRIu64 " good bytes", e->batch_pos);
        return buf;
    default:
        return NULL;
    }
}

static void dump_index_entry(dump_t *d, const dump_entry_t *e)
{
    char buf[160];
    const char *why = index_entry_problem(e, buf, sizeof(buf));
    int64_t offset = d->base + (int64_t)e->rel;

    if (dump_should_print(d)) {
        fprintf(d->out, "relativeOffset: %" PRIu32 " offset: %" PRId64 " position: %" PRIu32,
                e->rel, offset, e->pos);
        if (why)
            fprintf(d->out, " MISMATCH: %s\n", why);
        else
            fputs(e->verdict == ENTRY_OK ? " ok\n" : "\n", d->out);
    }
    if (why)
        dump_problem(d, "entry %zu (offset %" PRId64 ", position %" PRIu32 "): %s", e->index,
                     offset, e->pos, why);
}

/* Read the entries, check their order, and fill ents (n of them). */
static void index_entries_read(const dump_map_t *m, dump_entry_t *ents, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = m->data + i * SEGMENT_INDEX_ENTRY_BYTES;
        ents[i] = (dump_entry_t){shoal__get_be32(p), shoal__get_be32(p + 4), i, ENTRY_UNCHECKED};
        if (i > 0 && (ents[i].rel <= ents[i - 1].rel || ents[i].pos <= ents[i - 1].pos))
            ents[i].verdict = ENTRY_ORDER;
    }
}

/* A partial entry at the end of an index file, as a torn append leaves it. */
static void dump_torn_entry(dump_t *d, const dump_map_t *m, size_t entry_bytes)
{
    size_t extra = m->len % entry_bytes;

    if (extra == 0)
        return;
    fprintf(d->out, "torn entry: %zu bytes at byte %zu\n", extra, m->len - extra);
    dump_problem(d, "torn entry: %zu bytes at byte %zu, after the last whole entry", extra,
                 m->len - extra);
}

static int dump_index(dump_t *d, const dump_map_t *m)
{
    size_t n = m->len / SEGMENT_INDEX_ENTRY_BYTES;
    dump_entry_t *ents = shoal__malloc(SHOAL_MAX(n, 1) * sizeof(*ents));
    dump_log_info_t log;
    int rc = 0;

    if (!ents)
        return -ENOMEM;
    fprintf(d->out, "Dumping %s\n", d->path);
    dump_log_info_open(d, &log);
    fprintf(d->out, "segment base offset: %" PRId64 "\n", d->base);
    index_entries_read(m, ents, n);
    if (log.present)
        rc = dump_index_against_log(d, ents, n, &log);
    for (size_t i = 0; rc == 0 && i < n; i++)
        dump_index_entry(d, &ents[i]);
    dump_torn_entry(d, m, SEGMENT_INDEX_ENTRY_BYTES);
    if (rc == 0 && d->printed < n)
        fprintf(d->out, "(%zu more entries not printed: --max)\n", n - d->printed);
    if (rc == 0)
        fprintf(d->out, "summary: entries: %zu problems: %" PRIu64 "\n", n, d->problems);
    dump_log_info_close(&log);
    shoal__free(ents);
    return rc;
}

/* ------------------------------------------------------------------ .timeindex */

/* One .timeindex entry: a timestamp and an offset relative to the segment base; with the
 * log, what the log says the entry's timestamp must be (see timeindex_against_log). */
typedef struct dump_time_entry {
    int64_t ts;
    int64_t rel;
    int64_t want_ts;    /* TS_UNCHECKED, TS_NO_BATCH_END, or the log's running maximum */
    int64_t max_before; /* the running maximum before the batch ending at the entry's offset */
} dump_time_entry_t;

#define TS_UNCHECKED    INT64_MIN
#define TS_NO_BATCH_END (INT64_MIN + 1)

/* Walking the log's batches beside the entries, in offset order. */
typedef struct timeindex_walk {
    dump_time_entry_t *ents;
    size_t n, next;
    int64_t base, max_ts;
} timeindex_walk_t;

/* An entry names a batch's last offset and holds the largest timestamp of every batch up
 * to that one, which is the batch that first reached it (Kafka's rule, segment.c's index
 * writer): note what each entry must hold. */
static int timeindex_walk_batch(void *arg, uint64_t pos, const uint8_t *batch,
                                const record_batch_header_t *h)
{
    timeindex_walk_t *w = arg;
    int64_t last = h->base_offset + h->last_offset_delta, before = w->max_ts;

    (void)pos;
    (void)batch;
    w->max_ts = SHOAL_MAX(w->max_ts, h->max_timestamp);
    for (; w->next < w->n && w->base + w->ents[w->next].rel <= last; w->next++) {
        dump_time_entry_t *e = &w->ents[w->next];
        e->want_ts = w->base + e->rel == last ? w->max_ts : TS_NO_BATCH_END;
        e->max_before = before;
    }
    return 0;
}

static void timeindex_against_log(const dump_t *d, const dump_log_info_t *log,
                                  dump_time_entry_t *ents, size_t n)
{
    timeindex_walk_t w = {ents, n, 0, d->base, -1};
    segment_scan_t scan;

    segment_scan_bytes(log->map.data, log->scan.valid_bytes, d->base, false, timeindex_walk_batch,
                       &w, &scan);
}

/* What is wrong with entry e that follows prev (NULL for the first), or NULL. */
static const char *timeindex_entry_problem(const dump_t *d, const dump_log_info_t *log,
                                           const dump_time_entry_t *e,
                                           const dump_time_entry_t *prev, char *buf, size_t cap)
{
    int64_t offset = d->base + e->rel;

    if (prev && e->ts <= prev->ts) {
        snprintf(buf, cap, "timestamp not above the previous entry's %" PRId64, prev->ts);
        return buf;
    }
    if (prev && e->rel <= prev->rel) {
        snprintf(buf, cap, "offset not above the previous entry's %" PRId64, d->base + prev->rel);
        return buf;
    }
    if (!log->present)
        return NULL;
    if (log->first_offset < 0) {
        snprintf(buf, cap, "offset outside the log, which has no good batch");
        return buf;
    }
    if (offset < log->first_offset || offset >= log->scan.next_offset) {
        snprintf(buf, cap, "offset outside the log's %" PRId64 "..%" PRId64, log->first_offset,
                 log->scan.next_offset - 1);
        return buf;
    }
    if (e->want_ts == TS_NO_BATCH_END) {
        snprintf(buf, cap, "no batch of the log ends at this offset");
        return buf;
    }
    if (e->want_ts != TS_UNCHECKED && e->ts != e->want_ts) {
        snprintf(buf, cap, "the log's largest timestamp up to this offset is %" PRId64, e->want_ts);
        return buf;
    }
    if (e->want_ts != TS_UNCHECKED && e->max_before >= e->ts)
        return "an earlier batch reached this timestamp: Kafka's rule names that one";
    return NULL;
}

static void dump_timeindex_entry(dump_t *d, const dump_log_info_t *log, size_t i,
                                 const dump_time_entry_t *e, const dump_time_entry_t *prev)
{
    char buf[160];
    const char *why = timeindex_entry_problem(d, log, e, prev, buf, sizeof(buf));
    int64_t offset = d->base + e->rel;

    if (dump_should_print(d)) {
        fprintf(d->out, "timestamp: %" PRId64 " relativeOffset: %" PRId64 " offset: %" PRId64,
                e->ts, e->rel, offset);
        if (why)
            fprintf(d->out, " MISMATCH: %s\n", why);
        else
            fputs(log->present ? " ok\n" : "\n", d->out);
    }
    if (why)
        dump_problem(d, "entry %zu (timestamp %" PRId64 ", offset %" PRId64 "): %s", i, e->ts,
                     offset, why);
}

/* The relative offset of entry i (< n) of a .timeindex. */
static int64_t timeindex_rel(const dump_map_t *m, size_t i)
{
    return shoal__get_be32(m->data + i * SEGMENT_TIMEINDEX_ENTRY_BYTES + 8);
}

static void dump_timeindex_summary(dump_t *d, const dump_map_t *m, size_t n)
{
    int64_t min_ts = INT64_MAX, max_ts = INT64_MIN;

    if (d->printed < n)
        fprintf(d->out, "(%zu more entries not printed: --max)\n", n - d->printed);
    fprintf(d->out, "summary: entries: %zu", n);
    for (size_t i = 0; i < n; i++) {
        int64_t ts = (int64_t)shoal__get_be64(m->data + i * SEGMENT_TIMEINDEX_ENTRY_BYTES);
        min_ts = SHOAL_MIN(min_ts, ts);
        max_ts = SHOAL_MAX(max_ts, ts);
    }
    if (n > 0)
        fprintf(d->out,
                " firstOffset: %" PRId64 " lastOffset: %" PRId64 " minTimestamp: %" PRId64
                " maxTimestamp: %" PRId64,
                d->base + timeindex_rel(m, 0), d->base + timeindex_rel(m, n - 1), min_ts, max_ts);
    fprintf(d->out, " problems: %" PRIu64 "\n", d->problems);
}

static int dump_timeindex(dump_t *d, const dump_map_t *m)
{
    size_t n = m->len / SEGMENT_TIMEINDEX_ENTRY_BYTES;
    dump_time_entry_t *ents = shoal__malloc(SHOAL_MAX(n, 1) * sizeof(*ents));
    dump_log_info_t log;

    if (!ents)
        return -ENOMEM;
    fprintf(d->out, "Dumping %s\n", d->path);
    dump_log_info_open(d, &log);
    fprintf(d->out, "segment base offset: %" PRId64 "\n", d->base);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = m->data + i * SEGMENT_TIMEINDEX_ENTRY_BYTES;
        ents[i] = (dump_time_entry_t){(int64_t)shoal__get_be64(p), shoal__get_be32(p + 8),
                                      TS_UNCHECKED, -1};
    }
    if (log.present)
        timeindex_against_log(d, &log, ents, n);
    for (size_t i = 0; i < n; i++)
        dump_timeindex_entry(d, &log, i, &ents[i], i > 0 ? &ents[i - 1] : NULL);
    dump_torn_entry(d, m, SEGMENT_TIMEINDEX_ENTRY_BYTES);
    dump_timeindex_summary(d, m, n);
    dump_log_info_close(&log);
    shoal__free(ents);
    return 0;
}

/* ------------------------------------------------------------------ command */

/* Dump the file at path to out; problems and failures go to err, prefixed "shoal: ".
 * Returns the exit status: 0; 1 when the file cannot be read or (with o->verify) anything
 * in it is wrong; 2 when path has no extension dump knows. */
static int dump_file(FILE *out, FILE *err, const char *path, const dump_opts_t *o)
{
    dump_t d = {.out = out, .err = err, .path = path, .o = o, .first_offset = -1};
    dump_kind_t kind = dump_kind(path);
    dump_map_t m;
    int rc = 0;

    if (kind == DUMP_UNKNOWN) {
        fprintf(err,
                "shoal: dump: cannot tell what '%s' holds: expected a name ending in .log, "
                ".index or .timeindex\n",
                path);
        return CLI_EXIT_USAGE;
    }
    if (dump_map_open(path, &m) != 0) {
        fprintf(err, "shoal: dump: %s: %s\n", path, shoal_errmsg());
        return CLI_EXIT_FAIL;
    }
    if (kind == DUMP_LOG)
        dump_log(&d, &m);
    else if (kind == DUMP_INDEX)
        rc = dump_index(&d, &m);
    else
        rc = dump_timeindex(&d, &m);
    dump_map_close(&m);
    if (rc)
        fprintf(err, "shoal: dump: %s: %s\n", path, strerror(-rc));
    else if (fflush(out) != 0 || ferror(out))
        fprintf(err, "shoal: dump: writing the output: %s\n", strerror(errno));
    else if (o->verify && d.problems > 0)
        fprintf(err, "shoal: %s: %" PRIu64 " problem%s found\n", path, d.problems,
                d.problems == 1 ? "" : "s");
    else
        return 0;
    return CLI_EXIT_FAIL;
}

int cli_dump(cli_t *cli, int argc, char **argv)
{
    enum { OPT_VERIFY = CLI_OPT_FIRST, OPT_PRINT_DATA, OPT_MAX };
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"verify", no_argument, NULL, OPT_VERIFY},
        {"print-data", no_argument, NULL, OPT_PRINT_DATA},
        {"max", required_argument, NULL, OPT_MAX},
        {0},
    };
    dump_opts_t o = {.max = DUMP_NO_MAX};
    const char *path;
    int opt;

    while ((opt = cli_next_opt(cli, argc, argv, opts)) != -1) {
        if (opt == OPT_VERIFY)
            o.verify = true;
        else if (opt == OPT_PRINT_DATA)
            o.print_data = true;
        else if (opt == OPT_MAX)
            o.max = cli_parse_uint(cli, "--max", optarg, INT64_MAX);
    }
    cli_expect_args(cli, argc, argv, 1);
    path = argv[cli->optind];
    if (dump_kind(path) == DUMP_UNKNOWN)
        cli_usage_fail(cli,
                       "cannot tell what '%s' holds: expected a name ending in .log, .index "
                       "or .timeindex",
                       path);
    return dump_file(stdout, stderr, path, &o);
}
