/* compact.c - log compaction: Kafka's log cleaner, simplified for one host.
 *
 * DESIGN
 *
 * A partition whose cleanup.policy has compact keeps, in its sealed disk segments, only
 * the latest record of every key. The flusher thread runs the cleaner (so it never races
 * the flusher's own writes), at most every COMPACT_INTERVAL_NS, and only when a segment was
 * sealed since the last run, a tombstone kept last time has expired, delete.retention.ms
 * was altered, or the last run rewrote segments (what it shrank may merge now): records still in
 * the active segment supersede sealed ones at the next roll (Kafka, too, waits for dirty segments
 * rather than cleaning on every write). One run:
 *
 *   1. Offset map: walk every segment from the oldest up to and including the one being
 *      written (its bytes on disk count: the latest value of a key may be there) and note,
 *      per key, the offset of its last record. Keys are compared whole (copied into one
 *      arena), not by a hash alone as Kafka does: no collision can drop a live record.
 *   2. For each sealed segment (base below the segment being written, and not the last
 *      file on disk, which recovery may continue from its length), oldest first: a
 *      record is kept when it is the latest of its key, except a tombstone (null value)
 *      whose timestamp is older than delete.retention.ms. Records with a null key are
 *      always kept (Kafka refuses them on compacted topics; shoal's producer does not).
 *      Neighbours are taken together, as Kafka's cleaner groups segments: consecutive
 *      sealed segments whose files add up to at most segment.bytes (and whose offsets
 *      span at most INT32_MAX, for the index's relative offsets) become one file, named
 *      after the first, when those after the first add up to at least its size (so a
 *      merged file doubles at each rewrite: a byte is copied a few times, not once per
 *      small segment sealed after it) and each ends where the next begins. A lone segment
 *      with nothing to drop is left alone.
 *   3. Rewrite: each batch becomes a new RecordBatch v2 with the same base offset,
 *      lastOffsetDelta, producer fields and attributes, holding only the kept records with
 *      their original offset deltas (record_batch_encode_with_offsets), so offsets never
 *      change and gaps appear, as in Kafka. A batch left empty is dropped, except the
 *      segment's last one, which stays as an empty batch: the segment then still ends at
 *      the offset where the next one begins, and a consumer or the index never sees a gap
 *      between segments. A batch that keeps every record is copied as it is. Oldest
 *      first, so when a crash stops a run half way, an older value is never left behind
 *      while the tombstone that deleted it is gone.
 *
 * Crash safety. The new bytes go to <base>.log.cleaned, which is fsynced and renamed to
 * <base>.log.swap (directory fsynced): from then on the rewrite is complete. Then the
 * segments merged into it are unlinked, the old .index/.timeindex of base, the .swap renamed
 * over <base>.log (directory fsynced after each step) and the index rebuilt by
 * segment_recover(). At start compact_recover() deletes any .cleaned (the old segments are
 * whole) and completes any .swap the same way; the partition's recovery then rebuilds the
 * index of a sealed segment left without one; so a crash leaves the old segments or the new
 * one, never a mix. A .swap is trusted only as far as it is checked: it replaces the .log
 * only when every batch is whole with a good CRC and its offsets start at or after the base
 * and end exactly where a segment ends (a rewrite keeps the offsets and each segment's last
 * batch): where a later segment begins (the ones before it are merged into the .swap) or
 * where its own ends; anything else there (damage, a stray file) is deleted with a warning
 * and the .log kept, never the other way round. SHOALD_TEST_COMPACT_CRASH=cleaned|swap|merged
 * (read once) makes the daemon _exit(99) right after writing .cleaned, right after the rename
 * to .swap, or right after unlinking the first segment merged into it, for tests;
 * =merged-error makes that last step fail once instead (an I/O error).
 *
 * Readers. A consumer with the old segment mapped keeps reading it (rename leaves the
 * mapping valid); later SEGMENT_OPENs get the new file, or, for an offset of a merged segment
 * unlinked before the .swap took the first's place, the .swap (dpart_segment_open). The
 * shared-memory ring may still hold uncompacted copies of recent sealed segments and serves them
 * until the slots are reused, as Kafka serves a segment until it is cleaned. The partition's
 * disk_bytes follows the size change; log_start_offset does not move (the segment still exists).
 *
 * Simplifications, documented: a tombstone's age is its record timestamp (Kafka counts
 * from when its segment was cleaned); the offset map holds every
 * distinct key of the partition at once (Kafka bounds it and cleans in several passes); a
 * compressed batch (which shoal never writes) makes the run fail and leave the partition
 * as it is; a record timestamp <= 0 is rewritten as the time of the run when its batch is
 * re-encoded (a batch that keeps every record is copied as it is). */
#include "compact.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "partition.h"
#include "util.h"

#define CLEANED_EXT          ".log.cleaned"
#define CRASH_EXIT_STATUS    99
#define KEYMAP_INITIAL_SLOTS 1024

/* ------------------------------------------------------------------ test fault hook */

enum crash_point {
    CRASH_UNREAD = -1,
    CRASH_NONE,
    CRASH_AFTER_CLEANED,
    CRASH_AFTER_SWAP,
    CRASH_AFTER_MERGED, /* the first segment merged into the .swap deleted */
    FAIL_AFTER_MERGED,  /* the same point, once: an I/O error, not an exit */
};

static enum crash_point crash_point = CRASH_UNREAD;

static void crash_point_read(void)
{
    const char *v = getenv("SHOALD_TEST_COMPACT_CRASH");

    crash_point = CRASH_NONE;
    if (v && !strcmp(v, "cleaned"))
        crash_point = CRASH_AFTER_CLEANED;
    else if (v && !strcmp(v, "swap"))
        crash_point = CRASH_AFTER_SWAP;
    else if (v && !strcmp(v, "merged"))
        crash_point = CRASH_AFTER_MERGED;
    else if (v && !strcmp(v, "merged-error"))
        crash_point = FAIL_AFTER_MERGED;
    if (crash_point != CRASH_NONE)
        log_warn("SHOALD_TEST_COMPACT_CRASH=%s: compaction will stop the daemon", v);
}

static void crash_if(enum crash_point at, const char *what)
{
    if (crash_point != at)
        return;
    log_warn("compaction crash point: exiting after %s", what);
    _exit(CRASH_EXIT_STATUS);
}

/* ------------------------------------------------------------------ offset map */

typedef struct keymap_slot {
    uint64_t hash;
    int64_t offset; /* -1: empty slot */
    size_t key_at;  /* where the key's bytes are in the arena */
    size_t key_len;
} keymap_slot_t;

/* key -> offset of its latest record; open addressing, linear probing. */
typedef struct keymap {
    keymap_slot_t *slots;
    size_t cap; /* a power of two */
    size_t used;
    uint8_t *arena;
    size_t arena_len;
    size_t arena_cap;
} keymap_t;

static uint64_t key_hash(const void *key, size_t len)
{
    const uint8_t *k = key;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= k[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void keymap_release(keymap_t *m)
{
    shoal__free(m->slots);
    shoal__free(m->arena);
    memset(m, 0, sizeof(*m));
}

static keymap_slot_t *keymap_find(const keymap_t *m, uint64_t hash, const void *key, size_t len)
{
    for (size_t i = hash & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        keymap_slot_t *s = &m->slots[i];
        if (s->offset < 0 || (s->hash == hash && s->key_len == len &&
                              (len == 0 || !memcmp(m->arena + s->key_at, key, len))))
            return s;
    }
}

static int keymap_grow(keymap_t *m)
{
    size_t ncap = m->cap ? m->cap * 2 : KEYMAP_INITIAL_SLOTS;
    keymap_t n = *m;

    n.slots = shoal__malloc(ncap * sizeof(*n.slots));
    if (!n.slots)
        return -ENOMEM;
    n.cap = ncap;
    for (size_t i = 0; i < ncap; i++)
        n.slots[i].offset = -1;
    for (size_t i = 0; i < m->cap; i++) {
        const keymap_slot_t *s = &m->slots[i];
        if (s->offset >= 0)
            *keymap_find(&n, s->hash, m->arena + s->key_at, s->key_len) = *s;
    }
    shoal__free(m->slots);
    *m = n;
    return 0;
}

static int keymap_put(keymap_t *m, const void *key, size_t len, int64_t offset)
{
    uint64_t hash = key_hash(key, len);
    keymap_slot_t *s;

    if ((m->used + 1) * 10 > m->cap * 7 && keymap_grow(m) < 0)
        return -ENOMEM;
    s = keymap_find(m, hash, key, len);
    if (s->offset >= 0) {
        s->offset = SHOAL_MAX(s->offset, offset);
        return 0;
    }
    if (m->arena_len + len > m->arena_cap) {
        size_t ncap = SHOAL_MAX(m->arena_cap * 2, m->arena_len + len + 4096);
        uint8_t *a = shoal__realloc(m->arena, ncap);
        if (!a)
            return -ENOMEM;
        m->arena = a;
        m->arena_cap = ncap;
    }
    if (len > 0)
        memcpy(m->arena + m->arena_len, key, len);
    *s = (keymap_slot_t){.hash = hash, .offset = offset, .key_at = m->arena_len, .key_len = len};
    m->arena_len += len;
    m->used++;
    return 0;
}

static int64_t keymap_get(const keymap_t *m, const void *key, size_t len)
{
    if (m->cap == 0)
        return -1;
    return keymap_find(m, key_hash(key, len), key, len)->offset;
}

/* ------------------------------------------------------------------ segment files */

static int ext_path(char *buf, size_t cap, const char *dir, int64_t base, const char *ext)
{
    return segment_path(buf, cap, dir, base, ext);
}

/* Unlink a segment's files, the index ones first (a crash then leaves a segment without an
 * index, which start-up rebuilds, never an index describing other bytes); with the .log
 * when log. */
static int segment_files_unlink(const char *dir, int64_t base, bool log)
{
    static const char *const exts[] = {".index", ".timeindex", ".log"};
    char path[PATH_MAX];
    int rc;

    for (size_t i = 0; i < SHOAL_ARRAY_LEN(exts) - !log; i++) {
        if ((rc = ext_path(path, sizeof(path), dir, base, exts[i])) < 0)
            return rc;
        if (unlink(path) < 0 && errno != ENOENT)
            return SHOAL_ERR(-errno, "unlink %s", path);
    }
    return 0;
}

/* The rewrite of segments base and merged[0..n) (the ones after it that it holds too) is
 * complete in <base>.log.swap: put it in place of <base>.log. The merged segments go
 * first: a consumer sent to one of them meanwhile is served the .swap
 * (dpart_segment_open), and a crash leaves the .swap, which compact_recover() completes
 * the same way. Then base's index files, the rename, a new index. */
static int swap_complete(const char *dir, int64_t base, const int64_t *merged, size_t n)
{
    char log_path[PATH_MAX], swap_path[PATH_MAX];
    segment_recovery_t rec;
    int rc;

    if ((rc = ext_path(log_path, sizeof(log_path), dir, base, ".log")) < 0 ||
        (rc = ext_path(swap_path, sizeof(swap_path), dir, base, COMPACT_SWAP_EXT)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if ((rc = segment_files_unlink(dir, merged[i], true)) < 0)
            return rc;
        if (i == 0)
            crash_if(CRASH_AFTER_MERGED, "deleting a segment merged into a .swap");
        if (i == 0 && crash_point == FAIL_AFTER_MERGED) {
            crash_point = CRASH_NONE;
            return SHOAL_ERR(SHOAL_EIO, "compaction failure point: failing after deleting a "
                                        "segment merged into a .swap");
        }
    }
    if ((rc = segment_files_unlink(dir, base, false)) < 0)
        return rc;
    if ((rc = shoal__fsync_dir(dir)) < 0)
        return SHOAL_ERR(rc, "fsync %s", dir);
    if (rename(swap_path, log_path) < 0)
        return SHOAL_ERR(-errno, "rename %s to %s", swap_path, log_path);
    if ((rc = shoal__fsync_dir(dir)) < 0)
        return SHOAL_ERR(rc, "fsync %s", dir);
    return segment_recover(dir, base, false, &rec);
}

/* ------------------------------------------------------------------ the cleaner */

typedef struct cleaner {
    dpart_t *p;
    keymap_t map;
    int64_t tombstone_horizon_ms; /* tombstones older than this go */
    int64_t now_ms;
    /* per segment being looked at */
    size_t seg_len;
    uint64_t records;
    uint64_t kept;
    uint64_t tombstones_kept;
    int64_t expiry_ms; /* when the first tombstone kept so far expires */
    bool rewrote;      /* a segment was rewritten: those it shrank may merge at a next run */
    /* per batch being rewritten (grown, reused) */
    shoal_message_t *msgs;
    int32_t *deltas;
    shoal_header_t *hdrs;
    size_t msgs_cap;
    size_t hdrs_cap;
    uint8_t *out;
    size_t out_cap;
    int fd; /* the .cleaned file */
    uint64_t out_pos;
} cleaner_t;

static bool record_kept(const cleaner_t *c, const shoal_record_t *r)
{
    if (r->key == NULL)
        return true;
    if (keymap_get(&c->map, r->key, (size_t)r->key_len) != r->offset)
        return false;
    return r->value != NULL || r->timestamp_ms >= c->tombstone_horizon_ms;
}

static int batch_iter(const uint8_t *batch, const record_batch_header_t *h, record_iter_t *it)
{
    int rc = record_iter_init(it, batch, h);
    if (rc < 0)
        return SHOAL_ERR(rc, "batch at offset %lld is compressed", (long long)h->base_offset);
    return 0;
}

/* segment_scan_bytes callback: note every keyed record's offset in the map. */
static int map_batch(void *arg, uint64_t pos, const uint8_t *batch, const record_batch_header_t *h)
{
    cleaner_t *c = arg;
    record_iter_t it;
    shoal_record_t r;
    int rc;

    (void)pos;
    if ((rc = batch_iter(batch, h, &it)) < 0)
        return rc;
    while ((rc = record_iter_next(&it, &r)) == 1)
        if (r.key && (rc = keymap_put(&c->map, r.key, (size_t)r.key_len, r.offset)) < 0)
            return SHOAL_ERR(rc, "compaction offset map: out of memory");
    return rc;
}

/* segment_scan_bytes callback: count the records and the ones kept. */
static int count_batch(void *arg, uint64_t pos, const uint8_t *batch,
                       const record_batch_header_t *h)
{
    cleaner_t *c = arg;
    record_iter_t it;
    shoal_record_t r;
    int rc;

    (void)pos;
    if ((rc = batch_iter(batch, h, &it)) < 0)
        return rc;
    while ((rc = record_iter_next(&it, &r)) == 1) {
        bool keep = record_kept(c, &r);
        c->records++;
        c->kept += keep;
        if (keep && r.key && !r.value) {
            int64_t expiry;
            if (__builtin_add_overflow(r.timestamp_ms, c->p->cfg.delete_retention_ms, &expiry))
                expiry = INT64_MAX;
            c->tombstones_kept++;
            c->expiry_ms = SHOAL_MIN(c->expiry_ms, expiry);
        }
    }
    return rc;
}

static int cleaner_reserve(cleaner_t *c, size_t msgs, size_t hdrs)
{
    if (msgs > c->msgs_cap) {
        shoal_message_t *m = shoal__realloc(c->msgs, msgs * sizeof(*m));
        if (m)
            c->msgs = m;
        int32_t *d = m ? shoal__realloc(c->deltas, msgs * sizeof(*d)) : NULL;
        if (!d)
            return -ENOMEM;
        c->deltas = d;
        c->msgs_cap = msgs;
    }
    if (hdrs > c->hdrs_cap) {
        shoal_header_t *h = shoal__realloc(c->hdrs, hdrs * sizeof(*h));
        if (!h)
            return -ENOMEM;
        c->hdrs = h;
        c->hdrs_cap = hdrs;
    }
    return 0;
}

/* Gather the kept records of a batch into c->msgs/deltas/hdrs; *n gets their count. */
static int gather_kept(cleaner_t *c, const uint8_t *batch, const record_batch_header_t *h,
                       size_t *n)
{
    size_t nh = 0;
    record_iter_t it;
    shoal_record_t r;
    int rc;

    *n = 0;
    /* Headers first counted, so the header array is never moved under a message. */
    if ((rc = batch_iter(batch, h, &it)) < 0)
        return rc;
    while ((rc = record_iter_next(&it, &r)) == 1)
        nh += r.header_count;
    if (rc < 0 || (rc = cleaner_reserve(c, (size_t)h->record_count, nh)) < 0)
        return rc;
    nh = 0;
    batch_iter(batch, h, &it);
    while ((rc = record_iter_next(&it, &r)) == 1) {
        shoal_message_t *m = &c->msgs[*n];
        size_t hi = 0;
        if (!record_kept(c, &r))
            continue;
        *m = (shoal_message_t){.key = r.key,
                               .key_len = r.key ? (size_t)r.key_len : 0,
                               .value = r.value,
                               .value_len = r.value ? (size_t)r.value_len : 0,
                               .headers = c->hdrs + nh,
                               .header_count = r.header_count,
                               .timestamp_ms = r.timestamp_ms};
        while (hi < r.header_count && (rc = shoal_record_header(&r, &hi, &c->hdrs[nh])) == 1)
            nh++;
        if (rc < 0)
            return rc;
        c->deltas[*n] = (int32_t)(r.offset - h->base_offset);
        (*n)++;
    }
    return rc;
}

/* segment_scan_bytes callback: write the batch's kept records to the .cleaned file. */
static int rewrite_batch(void *arg, uint64_t pos, const uint8_t *batch,
                         const record_batch_header_t *h)
{
    cleaner_t *c = arg;
    bool last = pos + record_batch_size(h) >= c->seg_len;
    record_batch_fields_t f;
    size_t n, need, len;
    int32_t no_delta = 0;
    const int32_t *deltas;
    int rc;

    if ((rc = gather_kept(c, batch, h, &n)) < 0)
        return rc;
    if (n == 0 && !last)
        return 0;
    if (n == (size_t)h->record_count) { /* as it is (a merge copies whole segments) */
        len = record_batch_size(h);
        if ((rc = shoal__pwrite_all(c->fd, batch, len, c->out_pos)) == 0)
            c->out_pos += len;
        return rc;
    }
    deltas = n ? c->deltas : &no_delta; /* an empty batch may come before any allocation */
    f = (record_batch_fields_t){.base_offset = h->base_offset,
                                .leader_epoch = h->leader_epoch,
                                .attributes = h->attributes,
                                .producer_id = h->producer_id,
                                .producer_epoch = h->producer_epoch,
                                .base_sequence = h->base_sequence};
    /* An empty last batch keeps the original's newest timestamp (retention.ms reads it). */
    int64_t ts = n ? c->now_ms : h->max_timestamp;
    need = record_batch_encoded_size_with_offsets(c->msgs, deltas, n, ts);
    if (need == 0)
        return SHOAL_ERR(SHOAL_EINVAL, "batch at offset %lld cannot be re-encoded",
                         (long long)h->base_offset);
    if (need > c->out_cap) {
        uint8_t *o = shoal__realloc(c->out, need);
        if (!o)
            return -ENOMEM;
        c->out = o;
        c->out_cap = need;
    }
    rc = record_batch_encode_with_offsets(c->out, c->out_cap, &f, c->msgs, deltas, n,
                                          h->last_offset_delta, ts, &len);
    if (rc == 0)
        rc = shoal__pwrite_all(c->fd, c->out, len, c->out_pos);
    if (rc < 0)
        return rc;
    c->out_pos += len;
    return 0;
}

/* Walk a segment's batches with cb; a sealed segment must be whole. */
static int scan_segment(cleaner_t *c, const segment_map_t *m, int64_t base, bool sealed,
                        segment_batch_cb cb)
{
    segment_scan_t scan;
    int rc;

    c->seg_len = m->len;
    rc = segment_scan_bytes(m->data, m->len, base, sealed, cb, c, &scan);
    if (rc < 0)
        return rc;
    if (sealed && scan.error)
        return SHOAL_ERR(SHOAL_ECORRUPT, "segment %lld: %s", (long long)base, scan.why);
    return 0;
}

/* Walk segments bases[0..n) with cb, oldest first; the first `sealed` of them must be
 * whole. *bytes (may be NULL) gets their size. */
static int scan_segments(cleaner_t *c, const int64_t *bases, size_t n, size_t sealed,
                         segment_batch_cb cb, uint64_t *bytes)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < n; i++) {
        segment_map_t m;
        if ((rc = segment_map(c->p->dir, bases[i], ".log", false, &m)) == 0) {
            rc = scan_segment(c, &m, bases[i], i < sealed, cb);
            if (bytes)
                *bytes += m.len;
            segment_unmap(&m);
        }
    }
    return rc;
}

/* Write the kept records of segments bases[0..n) into <bases[0]>.log.cleaned. */
static int write_cleaned(cleaner_t *c, const char *cleaned, const int64_t *bases, size_t n)
{
    int rc;

    c->fd = shoal__open_regular(cleaned, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    if (c->fd < 0)
        return c->fd;
    c->out_pos = 0;
    rc = scan_segments(c, bases, n, n, rewrite_batch, NULL);
    if (rc == 0 && fsync(c->fd) < 0)
        rc = SHOAL_ERR(-errno, "fsync %s", cleaned);
    if (close(c->fd) < 0 && rc == 0)
        rc = SHOAL_ERR(-errno, "close %s", cleaned);
    c->fd = -1;
    return rc;
}

/* Rewrite sealed segments bases[0..n) into one through .cleaned and .swap. */
static int rewrite_segments(cleaner_t *c, const int64_t *bases, size_t n)
{
    dpart_t *p = c->p;
    char cleaned[PATH_MAX], swap[PATH_MAX];
    int rc;

    if ((rc = ext_path(cleaned, sizeof(cleaned), p->dir, bases[0], CLEANED_EXT)) < 0 ||
        (rc = ext_path(swap, sizeof(swap), p->dir, bases[0], COMPACT_SWAP_EXT)) < 0)
        return rc;
    if ((rc = write_cleaned(c, cleaned, bases, n)) < 0) {
        unlink(cleaned);
        return rc;
    }
    crash_if(CRASH_AFTER_CLEANED, "writing a .cleaned segment");
    /* Never over a .swap: a finished rewrite that a failure left (compact_run settles it) */
    if (renameat2(AT_FDCWD, cleaned, AT_FDCWD, swap, RENAME_NOREPLACE) < 0) {
        rc = SHOAL_ERR(-errno, "rename %s to %s", cleaned, swap);
        unlink(cleaned);
        return rc;
    }
    if ((rc = shoal__fsync_dir(p->dir)) < 0)
        return SHOAL_ERR(rc, "fsync %s", p->dir);
    crash_if(CRASH_AFTER_SWAP, "renaming a segment to .swap");
    return swap_complete(p->dir, bases[0], bases + 1, n - 1);
}

/* Count the records of segments bases[0..n) and those kept; *bytes gets their size. */
static int count_segments(cleaner_t *c, const int64_t *bases, size_t n, uint64_t *bytes)
{
    c->records = c->kept = c->tombstones_kept = 0;
    *bytes = 0;
    return scan_segments(c, bases, n, n, count_batch, bytes);
}

/* Clean sealed segments bases[0..n) into one: when there are several (merged, as Kafka's
 * cleaner groups small segments), or one with something to drop. */
static int clean_segments(cleaner_t *c, const int64_t *bases, size_t n)
{
    dpart_t *p = c->p;
    char merged[64] = "";
    uint64_t before;
    int rc = count_segments(c, bases, n, &before);

    if (rc < 0 || (n == 1 && c->kept == c->records))
        return rc;
    if ((rc = rewrite_segments(c, bases, n)) < 0)
        return rc;
    c->rewrote = true;
    if (before >= c->out_pos)
        dpart_sealed_sub(p, before - c->out_pos);
    else
        atomic_fetch_add(&p->disk_bytes_sealed, c->out_pos - before);
    p->oldest_base = -1; /* retention's cached timestamps may have changed */
    if (n > 1)
        snprintf(merged, sizeof(merged), " and the %zu after it (merged)", n - 1);
    log_info("%s-%u: compacted segment %lld%s: %llu -> %llu records (%llu -> %llu bytes)", p->topic,
             p->id, (long long)bases[0], merged, (unsigned long long)c->records,
             (unsigned long long)c->kept, (unsigned long long)before,
             (unsigned long long)c->out_pos);
    return 0;
}

/* Scan segment base's .log whole, CRCs checked, into *scan: 0, or the mapping's error. */
static int log_scan(const char *dir, int64_t base, segment_scan_t *scan)
{
    segment_map_t m;
    int rc = segment_map(dir, base, ".log", false, &m);

    if (rc < 0)
        return rc;
    segment_scan_bytes(m.data, m.len, base, true, NULL, NULL, scan);
    segment_unmap(&m);
    return 0;
}

/* Whether segment base's .log holds batches and ends where the next one begins: a merge may
 * hold it only then (its .swap must end where a segment on disk begins, and an emptied or
 * damaged segment, or a file lost after it, would leave it ending elsewhere). */
static bool segment_ends_at(const char *dir, int64_t base, int64_t next)
{
    segment_scan_t scan;

    return log_scan(dir, base, &scan) == 0 && !scan.error && scan.batches > 0 &&
           scan.next_offset == next;
}

/* The size of segment base's .log, or -1. */
static int64_t log_size(const dpart_t *p, int64_t base)
{
    char path[PATH_MAX];
    struct stat st;

    if (ext_path(path, sizeof(path), p->dir, base, ".log") < 0 || stat(path, &st) < 0)
        return -1;
    return st.st_size;
}

/* How many of segments bases[0..n) make a group of neighbours whose files add up to at most
 * segment.bytes and whose offsets span fits the index's 32-bit relative offsets. */
static size_t group_by_size(const dpart_t *p, const int64_t *bases, size_t n, uint64_t *first,
                            uint64_t *rest)
{
    uint64_t total = 0;
    size_t k = 0;
    int64_t size;

    for (; k < n && bases[k + 1] - bases[0] <= INT32_MAX; k++) {
        if ((size = log_size(p, bases[k])) < 0 || total + (uint64_t)size > p->cfg.segment_bytes)
            break;
        total += (uint64_t)size;
        if (k == 0)
            *first = (uint64_t)size;
    }
    *rest = total - *first;
    return k;
}

/* How many sealed segments from bases[0] on (n of them, bases[n] the next one's base) are
 * cleaned into one: a group by size (group_by_size), when those after the first add up to
 * at least its size (a merged file then at least doubles each time it is rewritten, so a
 * byte is copied a few times, not once for every small segment sealed after it), and each
 * ends where the next begins (segment_ends_at). */
static size_t group_size(const dpart_t *p, const int64_t *bases, size_t n)
{
    uint64_t first = 0, rest = 0;
    size_t k = group_by_size(p, bases, n, &first, &rest), ok = 0;

    if (k < 2 || rest < first) /* dropping members only makes rest smaller */
        return 1;
    while (ok < k && segment_ends_at(p->dir, bases[ok], bases[ok + 1]))
        ok++;
    if (ok < k && (ok < 2 || group_by_size(p, bases, ok, &first, &rest) < ok || rest < first))
        return 1;
    return ok;
}

/* Note every key's latest offset over segments bases[0..n) (the last may be active). */
static int build_map(cleaner_t *c, const int64_t *bases, size_t n, size_t sealed)
{
    return scan_segments(c, bases, n, sealed, map_batch, NULL);
}

static void cleaner_release(cleaner_t *c)
{
    keymap_release(&c->map);
    shoal__free(c->msgs);
    shoal__free(c->deltas);
    shoal__free(c->hdrs);
    shoal__free(c->out);
}

/* One run over the partition's segments, the one being written starting at writing. */
static int compact_run(dpart_t *p, int64_t writing, int64_t *expiry_ms)
{
    int64_t *bases = NULL;
    size_t n = 0, sealed = 0;
    cleaner_t c = {.p = p, .fd = -1, .expiry_ms = INT64_MAX};
    bool settled;
    int rc;

    /* A rewrite finished (its .swap made) but not put in place, a step after having failed:
     * put it in place first, as at start, before anything else reads the segments. Which of
     * the files it replaced disk_bytes still counts is not known: count them again. */
    if ((rc = compact_recover(p->dir, p->topic, p->id)) < 0)
        return rc;
    settled = rc > 0;
    if ((rc = segment_list(p->dir, &bases, &n)) < 0)
        return rc;
    if (settled)
        dpart_disk_bytes_recount(p, bases, n);
    /* Sealed: below the segment being written, and never the last file on disk: recovery
     * continues that one from its length (its slot may still hold the uncompacted bytes
     * when the flusher has not yet created the next file, e.g. after a segment.ms roll). */
    while (sealed + 1 < n && bases[sealed] < writing)
        sealed++;
    if (sealed == 0)
        goto out;
    c.now_ms = shoal__now_ms();
    c.tombstone_horizon_ms = c.now_ms - p->cfg.delete_retention_ms;
    /* Every segment counts for the map, the one being written included. */
    rc = build_map(&c, bases, n, sealed);
    for (size_t i = 0, k; rc == 0 && i < sealed; i += k) {
        k = group_size(p, bases + i, sealed - i);
        rc = clean_segments(&c, bases + i, k);
    }
out:
    /* What this run shrank is merged by the next, without waiting for a segment to be sealed
     * (a quiet topic would keep its small files); a run that rewrites nothing ends that. */
    *expiry_ms = c.rewrote ? 0 : c.expiry_ms;
    cleaner_release(&c);
    shoal__free(bases);
    return rc;
}

void compact_maybe_run(dpart_t *p, int64_t now_ns)
{
    compact_state_t *cs = &p->compact;
    int64_t writing, expiry_ms;
    int rc;

    if (!(p->cfg.cleanup_policy & SHOAL_CLEANUP_COMPACT) ||
        now_ns - cs->last_ns < COMPACT_INTERVAL_NS)
        return;
    cs->last_ns = now_ns;
    writing =
        p->fl_placed ? atomic_load(&p->ring.ctl->slots[p->fl_slot].base_offset) : p->written_offset;
    /* The file of the segment being written appearing makes the one before compactable. */
    if (cs->seen_writing == writing && cs->seen_open == (p->log_fd >= 0) &&
        shoal__now_ms() < cs->expiry_ms && cs->retention_ms == p->cfg.delete_retention_ms)
        return;
    if (crash_point == CRASH_UNREAD)
        crash_point_read();
    shoal__clear_err();
    rc = compact_run(p, writing, &expiry_ms);
    if (rc < 0) {
        log_error("%s-%u: compaction failed (segments are as they were, or a finished rewrite "
                  "waits as .swap to be put in place by the next run): %s",
                  p->topic, p->id, shoal_errmsg()[0] ? shoal_errmsg() : shoal_strerror(rc));
        cs->expiry_ms = 0; /* try again next interval */
        return;
    }
    cs->seen_writing = writing;
    cs->seen_open = p->log_fd >= 0;
    cs->expiry_ms = expiry_ms;
    cs->retention_ms = p->cfg.delete_retention_ms;
}

/* ------------------------------------------------------------------ recovery */

/* Where segment base ends (the offset after its last): by its .log when that scans whole
 * with good CRCs, else by the next segment's base (segments are contiguous); -1 when
 * neither can say. */
static int64_t segment_end(const char *dir, int64_t base, int64_t next_base)
{
    segment_scan_t scan;

    if (log_scan(dir, base, &scan) == 0 && !scan.error && scan.batches > 0)
        return scan.next_offset;
    return next_base;
}

/* Whether <base>.log.swap is a finished rewrite as rewrite_segments() leaves it: a regular
 * file of whole batches with good CRCs and offsets from base up, ending where a segment
 * ends (a rewrite keeps every batch's offsets and each segment's last batch): where the
 * segment at base ends, or where a later one begins (a merge; bases[0..n) are the
 * segments on disk). 0 with *merged_n, how many segments after base it holds (they
 * follow base in bases), and *merge, whether it is a merge (it may hold segments already
 * deleted: then it ends past base's own end), when it is; SHOAL_ECORRUPT with the reason
 * as the error detail when it is not; -errno when it cannot be read (then nothing is
 * decided). */
static int swap_check(const char *dir, int64_t base, const int64_t *bases, size_t n,
                      size_t *merged_n, bool *merge)
{
    segment_scan_t scan;
    segment_map_t m;
    size_t after = 0, k;
    int rc = segment_map(dir, base, COMPACT_SWAP_EXT, false, &m);

    if (rc < 0)
        return rc;
    segment_scan_bytes(m.data, m.len, base, true, NULL, NULL, &scan);
    segment_unmap(&m);
    if (scan.error)
        return SHOAL_ERR(SHOAL_ECORRUPT, "%s", scan.why);
    if (scan.batches == 0)
        return SHOAL_ERR(SHOAL_ECORRUPT, "it holds no batch");
    while (after < n && bases[after] <= base)
        after++;
    for (k = after; k < n && bases[k] < scan.next_offset; k++)
        ;
    *merged_n = k - after;
    if (k < n && bases[k] == scan.next_offset) {
        int64_t own_end = k > after ? -1 : segment_end(dir, base, -1);
        *merge = k > after || (own_end >= 0 && scan.next_offset > own_end);
        return 0;
    }
    *merge = false;
    if (k == after && scan.next_offset == segment_end(dir, base, after < n ? bases[after] : -1))
        return 0;
    return SHOAL_ERR(SHOAL_ECORRUPT, "it ends before offset %lld, where no segment on disk ends",
                     (long long)scan.next_offset);
}

/* A .swap that is not a finished rewrite is debris (or damage): delete it, keep the .log. */
static int swap_drop(const char *dir, const char *topic, uint32_t id, int64_t base)
{
    char path[PATH_MAX], why[256];
    int rc = ext_path(path, sizeof(path), dir, base, COMPACT_SWAP_EXT);

    if (rc < 0)
        return rc;
    snprintf(why, sizeof(why), "%s", shoal_errmsg());
    if (unlink(path) < 0)
        return SHOAL_ERR(-errno, "unlink %s: %s", path, strerror(errno));
    log_warn("%s-%u: deleted %s: not a finished compaction of segment %lld (%s); the "
             "segment is kept as it was",
             topic, id, path, (long long)base, why);
    return shoal__fsync_dir(dir);
}

/* Put a finished rewrite of segment base (and of the segments merged into it) in place of
 * its .log, or drop it. */
static int swap_recover(const char *dir, const char *topic, uint32_t id, int64_t base,
                        const int64_t *bases, size_t n)
{
    size_t merged = 0, at = 0;
    bool merge = false;
    int rc = swap_check(dir, base, bases, n, &merged, &merge);

    if (rc == SHOAL_ECORRUPT)
        return swap_drop(dir, topic, id, base);
    while (at < n && bases[at] <= base)
        at++;
    if (rc == 0 && (rc = swap_complete(dir, base, bases + at, merged)) == 0)
        log_notice("%s-%u: completed the compaction of segment %lld%s", topic, id, (long long)base,
                   merge ? " and of the segments merged into it" : "");
    return rc;
}

/* Delete .cleaned files in dir and collect the bases of .swap files in *swaps. */
static int rewrites_list(const char *dir, const char *topic, uint32_t id, int64_t **swaps,
                         size_t *nswaps)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t cap = 0;
    int rc = 0;

    if (!d)
        return errno == ENOENT ? 0 : SHOAL_ERR(-errno, "opendir %s", dir);
    while (rc == 0 && (e = readdir(d))) {
        char path[PATH_MAX];
        int64_t base;
        if ((base = segment_name_base(e->d_name, CLEANED_EXT)) >= 0) {
            if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < (int)sizeof(path) &&
                unlink(path) == 0)
                log_notice("%s-%u: dropped an unfinished compaction of segment %lld", topic, id,
                           (long long)base);
        } else if ((base = segment_name_base(e->d_name, COMPACT_SWAP_EXT)) >= 0) {
            if (*nswaps == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                int64_t *s = shoal__realloc(*swaps, ncap * sizeof(*s));
                if (!s) {
                    rc = -ENOMEM;
                    break;
                }
                *swaps = s;
                cap = ncap;
            }
            (*swaps)[(*nswaps)++] = base;
        }
    }
    closedir(d);
    return rc;
}

int compact_recover(const char *dir, const char *topic, uint32_t id)
{
    int64_t *swaps = NULL, *bases = NULL;
    size_t nswaps = 0, n = 0;
    int rc;

    shoal__clear_err();
    if (access(dir, F_OK) < 0 && errno == ENOENT)
        return 0; /* nothing on disk yet */
    rc = rewrites_list(dir, topic, id, &swaps, &nswaps);
    if (rc == 0 && nswaps > 0)
        rc = segment_list(dir, &bases, &n);
    for (size_t i = 0; rc == 0 && i < nswaps; i++)
        rc = swap_recover(dir, topic, id, swaps[i], bases, n);
    if (rc < 0)
        log_error("%s-%u: finishing interrupted compactions in %s failed: %s", topic, id, dir,
                  shoal_errmsg()[0] ? shoal_errmsg() : shoal_strerror(rc));
    shoal__free(swaps);
    shoal__free(bases);
    return rc < 0 ? rc : (int)nswaps;
}
