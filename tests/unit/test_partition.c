/* test_partition.c - a partition of shoald (src/shoald/partition.c) driven directly, without
 * a daemon: records appended to its ring as a producer appends them (ring_append), flush
 * passes that copy them to segments, recovery from what a crash or a reboot leaves on disk
 * (no ring, a torn tail, lost or damaged indexes), segment rolls, retention.bytes, the
 * timestamp lookup, and topic deletion.
 *
 * Each test has its own directory holding the data directory and the directory of the ring
 * files, so nothing is left in /dev/shm. Record values carry (tag, seq) and bytes derived
 * from both (tests/ring_records.h), and their timestamps are TS0 + seq; a test appends a
 * record at offset o with seq o + shift, so what is read back proves its offset and bytes,
 * and a shift leaves a gap in the timestamps. Every flush pass fsyncs (flush_ms 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "record.h"
#include "ring.h"
#include "segment.h"
#include "shoald/log.h"
#include "shoald/partition.h"
#include "util.h"

#include "ring_records.h"

#define TOPIC         "events"
#define TAG           7
#define SEGMENT_BYTES (64u * 1024u)
#define BATCH_RECORDS 4    /* batches that fill segments */
#define VALUE_BYTES   1000 /* so a segment holds 15 such batches, one .index entry each */

struct fixture {
    char dir[256];
    char data_dir[300];
    char shm_dir[300];
    uint64_t owner; /* what the partition's ring carries */
    shoal_topic_config_t cfg;
    dpart_t p;
    bool open;
    uint8_t buf[SEGMENT_BYTES];
};

/* ------------------------------------------------------------------ the partition */

static void part_open(struct fixture *f, bool fresh)
{
    assert_int_equal(
        dpart_open(&f->p, f->data_dir, f->shm_dir, f->owner, TOPIC, 0, &f->cfg, fresh, NULL, NULL),
        0);
    f->open = true;
}

/* Shut down as shoald does: a final flush pass, then close. */
static void part_close(struct fixture *f)
{
    assert_int_equal(dpart_flush(&f->p, 0, false, true), 0);
    dpart_close(&f->p);
    f->open = false;
}

/* What a reboot does to the ring: its files are gone. */
static void ring_remove(struct fixture *f)
{
    ring_unlink(f->shm_dir, f->p.shm_name, f->cfg.ring_slots);
}

static void flush(struct fixture *f)
{
    assert_int_equal(dpart_flush(&f->p, 0, false, false), 0);
}

/* Append n records (seq from seq) in one batch; returns its base offset. */
static int64_t append(struct fixture *f, uint32_t seq, int n, size_t value_len)
{
    int64_t base;

    assert_int_equal(
        append_tagged(&f->p.ring, f->buf, sizeof(f->buf), TAG, seq, n, value_len, 0, &base), 0);
    return base;
}

static int64_t log_end(const struct fixture *f)
{
    return atomic_load(&f->p.ring.ctl->log_end_offset);
}

/* Append a small batch of n records at the log end, with seq offset + shift. */
static int64_t append_small(struct fixture *f, int n, uint32_t shift)
{
    return append(f, (uint32_t)log_end(f) + shift, n, VALUE_MIN + 24);
}

static void assert_info(struct fixture *f, int64_t start, int64_t end, int64_t flushed)
{
    shoal_partition_info_t pi;

    dpart_info(&f->p, &pi);
    assert_int_equal(pi.log_start_offset, start);
    assert_int_equal(pi.log_end_offset, end);
    assert_int_equal(pi.flushed_offset, flushed);
}

/* The .log bytes dpart_info counts. */
static uint64_t disk_bytes(struct fixture *f)
{
    shoal_partition_info_t pi;

    dpart_info(&f->p, &pi);
    return pi.disk_bytes;
}

/* ------------------------------------------------------------------ segment files */

static void seg_path(const struct fixture *f, int64_t base, const char *ext, char *buf)
{
    assert_int_equal(segment_path(buf, PATH_MAX, f->p.dir, base, ext), 0);
}

static uint64_t seg_bytes(const struct fixture *f, int64_t base, const char *ext)
{
    char path[PATH_MAX];
    struct stat st;

    seg_path(f, base, ext, path);
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

/* The partition's segment bases, ascending, into bases (at most cap); how many. */
static size_t seg_list(const struct fixture *f, int64_t *bases, size_t cap)
{
    int64_t *all;
    size_t n;

    assert_int_equal(segment_list(f->p.dir, &all, &n), 0);
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) /* all is NULL when there are none */
        bases[i] = all[i];
    shoal__free(all);
    return n;
}

static int64_t last_seg_base(const struct fixture *f)
{
    int64_t bases[64];
    size_t n = seg_list(f, bases, 64);
    return n ? bases[n - 1] : -1;
}

/* The size of a batch that fills segments. */
static uint64_t fill_batch_bytes(struct fixture *f)
{
    return encode(f->buf, sizeof(f->buf), TAG, 0, BATCH_RECORDS, VALUE_BYTES);
}

/* Append filling batches (seq offset + shift), a flush pass after each, until n more
 * segment files have been started: the last one then holds one batch. */
static void roll_segments(struct fixture *f, int n, uint32_t shift)
{
    int64_t last = log_end(f) ? last_seg_base(f) : -1; /* a new partition's file is empty */

    for (int batches = 0; n > 0; batches++) {
        assert_true(batches < 1000);
        append(f, (uint32_t)log_end(f) + shift, BATCH_RECORDS, VALUE_BYTES);
        flush(f);
        if (last_seg_base(f) != last) {
            last = last_seg_base(f);
            n--;
        }
    }
}

/* ------------------------------------------------------------------ reading back */

/* The record at offset as a consumer behind the ring finds it: through dpart_segment_open,
 * in the batch at the position it names, CRC and bytes checked. *base gets its segment. */
static seen_t disk_record(struct fixture *f, int64_t offset, int64_t *base)
{
    record_batch_header_t h;
    seen_t recs[64];
    uint64_t bytes;
    int64_t pos;
    uint8_t *map;
    int fd, n;

    assert_int_equal(dpart_segment_open(&f->p, offset, &fd, base, &bytes, &pos), 0);
    map = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    assert_true(map != MAP_FAILED);
    assert_in_range(pos, 0, bytes - 1);
    assert_int_equal(record_batch_parse(map + pos, bytes - (uint64_t)pos, &h), 0);
    n = batch_records(map + pos, &h, recs, 64);
    munmap(map, bytes);
    assert_true(n > 0);
    assert_in_range(offset, h.base_offset, h.base_offset + n - 1);
    return recs[offset - h.base_offset];
}

/* Offsets [from, to) are on disk, each with seq offset + shift. */
static void assert_on_disk(struct fixture *f, int64_t from, int64_t to, uint32_t shift)
{
    int64_t base;

    for (int64_t o = from; o < to; o++) {
        seen_t s = disk_record(f, o, &base);
        assert_int_equal(s.offset, o);
        assert_int_equal(s.tag, TAG);
        assert_int_equal(s.seq, (uint32_t)o + shift);
    }
}

/* dpart_segment_open without keeping the descriptor: its code, with the segment's base and
 * the position of the batch holding offset. */
static int segment_find(struct fixture *f, int64_t offset, int64_t *base, int64_t *pos)
{
    uint64_t bytes;
    int fd, rc = dpart_segment_open(&f->p, offset, &fd, base, &bytes, pos);

    if (rc == 0)
        close(fd);
    return rc;
}

static void assert_not_on_disk(struct fixture *f, int64_t offset)
{
    int64_t base, pos;

    assert_int_equal(segment_find(f, offset, &base, &pos), SHOAL_EOFFSET);
}

/* The ring holds exactly offsets [from, log end), each with seq offset + shift. */
static void assert_in_ring(struct fixture *f, int64_t from, uint32_t shift)
{
    seen_t seen[256];
    size_t n = read_from(&f->p.ring, from, seen, 256);

    assert_int_equal(n, log_end(f) - from);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(seen[i].offset, from + (int64_t)i);
        assert_int_equal(seen[i].seq, (uint32_t)seen[i].offset + shift);
    }
}

/* Whether the ring still holds offset (else a consumer reads it from disk). */
static bool ring_holds(struct fixture *f, int64_t offset)
{
    ring_cursor_t c;
    int rc;

    assert_int_equal(ring_cursor_open(&f->p.ring, &c), 0);
    rc = ring_cursor_seek(&f->p.ring, &c, offset);
    ring_cursor_close(&f->p.ring, &c);
    return rc == 0;
}

/* The byte position of the batch holding offset in its segment. */
static uint64_t batch_pos(struct fixture *f, int64_t offset)
{
    int64_t base, pos;

    assert_int_equal(segment_find(f, offset, &base, &pos), 0);
    return (uint64_t)pos;
}

/* ------------------------------------------------------------------ fixture */

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    harness_tmpdir(f->dir, sizeof(f->dir), "partition");
    snprintf(f->data_dir, sizeof(f->data_dir), "%s/data", f->dir);
    snprintf(f->shm_dir, sizeof(f->shm_dir), "%s/shm", f->dir);
    if (mkdir(f->shm_dir, 0700) < 0) {
        print_error("mkdir %s: %s\n", f->shm_dir, strerror(errno));
        goto out_rmrf;
    }
    log_set_level(LOG_ERR);
    shoal_topic_config_init(&f->cfg);
    f->cfg.segment_bytes = SEGMENT_BYTES;
    f->cfg.max_record_bytes = SEGMENT_BYTES;
    f->cfg.retention_ms = -1; /* the records' timestamps (TS0) are years old */
    f->owner = 7;
    /* Not part_open(): a failed assert here would skip the teardown, leaving all this. */
    if (dpart_open(&f->p, f->data_dir, f->shm_dir, f->owner, TOPIC, 0, &f->cfg, true, NULL, NULL) !=
        0) {
        print_error("dpart_open: %s\n", shoal_errmsg());
        goto out_rmrf;
    }
    f->open = true;
    *state = f;
    return 0;

out_rmrf:
    harness_rmrf(f->dir);
    free(f);
    return -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->open)
        dpart_close(&f->p);
    harness_rmrf(f->dir);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------ tests */

/* Flushed batches are in the .log at their offsets, found by dpart_segment_open for every
 * offset of a batch; dpart_info tells what is on disk, and what is appended after the flush
 * is not. */
static void test_flushed_records_are_found_on_disk_at_their_offsets(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(append_small(f, 1, 0), 0);
    assert_int_equal(append_small(f, 5, 0), 1);
    assert_int_equal(append_small(f, 3, 0), 6);
    assert_int_equal(append_small(f, 10, 0), 9);
    flush(f);
    assert_on_disk(f, 0, 19, 0);
    assert_info(f, 0, 19, 19);
    assert_int_equal(disk_bytes(f), seg_bytes(f, 0, ".log"));
    assert_int_equal(disk_bytes(f), atomic_load(&f->p.ring.ctl->slots[0].used));
    assert_not_on_disk(f, 19);

    assert_int_equal(append_small(f, 2, 0), 19);
    assert_info(f, 0, 21, 19);
    assert_not_on_disk(f, 19);
}

/* After a reboot (the ring's files gone) the partition is rebuilt from its segments: the
 * same offsets and records on disk and in the new ring, and appends continue the last
 * segment at the next offset. */
static void test_reopen_without_the_ring_rebuilds_it_from_disk(void **state)
{
    struct fixture *f = *state;

    append_small(f, 3, 0);
    append_small(f, 4, 0);
    append_small(f, 2, 0);
    flush(f);
    part_close(f);
    ring_remove(f);
    part_open(f, false);

    assert_false(f->p.ring_reattached);
    assert_info(f, 0, 9, 9);
    assert_on_disk(f, 0, 9, 0);
    assert_in_ring(f, 0, 0);

    assert_int_equal(append_small(f, 3, 0), 9);
    flush(f);
    assert_int_equal(last_seg_base(f), 0);
    assert_on_disk(f, 0, 12, 0);
    assert_info(f, 0, 12, 12);
}

/* A ring that carries another owner (made for another data directory, or before another
 * shm directory served this one) is not re-attached, though its offsets fit the disk: the
 * partition is rebuilt from disk. One made before owners (0) is, and takes the owner. */
static void test_a_ring_of_another_owner_is_rebuilt_from_disk(void **state)
{
    struct fixture *f = *state;

    append_small(f, 3, 0);
    flush(f);
    part_close(f);
    f->owner = 8;
    part_open(f, false);
    assert_false(f->p.ring_reattached);
    assert_int_equal(f->p.ring.ctl->owner, 8);
    assert_info(f, 0, 3, 3);
    assert_on_disk(f, 0, 3, 0);

    f->p.ring.ctl->owner = 0; /* as a ring made before owners */
    part_close(f);
    f->owner = 9;
    part_open(f, false);
    assert_true(f->p.ring_reattached);
    assert_int_equal(f->p.ring.ctl->owner, 9);
    assert_info(f, 0, 3, 3);
}

static int64_t committed_9(void *arg, const char *topic, uint32_t id)
{
    (void)arg;
    return !strcmp(topic, TOPIC) && id == 0 ? 9 : -1;
}

/* A new partition has an empty first segment file; a recovery that finds none (they were
 * deleted, the ring too) starts the log past the highest committed offset, so that no
 * offset is used twice, and leaves a file again: the next recovery finds the log as this
 * one left it. */
static void test_a_partition_whose_files_are_gone_starts_past_what_was_committed(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX];

    assert_int_equal(last_seg_base(f), 0); /* from its creation */
    append_small(f, 9, 0);
    part_close(f);
    ring_remove(f);
    snprintf(path, sizeof(path), "%s", f->p.dir);
    harness_rmrf(path);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(dpart_open(&f->p, f->data_dir, f->shm_dir, f->owner, TOPIC, 0, &f->cfg, false,
                                committed_9, NULL),
                     0);
    f->open = true;
    assert_info(f, 9, 9, 9);
    assert_int_equal(last_seg_base(f), 9);
    assert_int_equal(append_small(f, 3, 0), 9);
    part_close(f);
    ring_remove(f);
    part_open(f, false);
    assert_info(f, 9, 12, 12);
    assert_on_disk(f, 9, 12, 0);
}

/* The same with the ring kept (a daemon restart): it holds every record from offset 0, so
 * the log goes on from there whatever was committed, and the flusher writes the records to
 * disk again. */
static void test_a_partition_whose_files_are_gone_is_written_again_from_its_ring(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX];

    append_small(f, 9, 0);
    flush(f);
    part_close(f);
    snprintf(path, sizeof(path), "%s", f->p.dir);
    harness_rmrf(path);
    assert_int_equal(dpart_open(&f->p, f->data_dir, f->shm_dir, f->owner, TOPIC, 0, &f->cfg, false,
                                committed_9, NULL),
                     0);
    f->open = true;
    assert_true(f->p.ring_reattached);
    assert_info(f, 0, 9, 0);
    flush(f);
    assert_info(f, 0, 9, 9);
    part_close(f);
    ring_remove(f);
    part_open(f, false);
    assert_info(f, 0, 9, 9);
    assert_on_disk(f, 0, 9, 0);
}

enum tail_damage {
    TAIL_JUNK,      /* bytes after the last whole batch */
    TAIL_CUT_SHORT, /* the last batch cut short */
    TAIL_BAD_CRC,   /* a byte of the last batch changed */
};

static void log_damage(struct fixture *f, enum tail_damage d)
{
    static const uint8_t junk[40] = {0x5a, 0x5a, 0x5a, 0x5a, 0x01, 0x02, 0x03};
    char path[PATH_MAX];
    uint64_t len = seg_bytes(f, 0, ".log");
    uint8_t b;
    int fd;

    seg_path(f, 0, ".log", path);
    assert_true((fd = open(path, O_RDWR | O_CLOEXEC)) >= 0);
    if (d == TAIL_JUNK) {
        assert_int_equal(shoal__pwrite_all(fd, junk, sizeof(junk), len), 0);
    } else if (d == TAIL_CUT_SHORT) {
        assert_int_equal(ftruncate(fd, (off_t)len - 10), 0);
    } else {
        assert_int_equal(shoal__pread_all(fd, &b, 1, len - 1), 0);
        b ^= 0x40;
        assert_int_equal(shoal__pwrite_all(fd, &b, 1, len - 1), 0);
    }
    close(fd);
}

/* A crash left the .log damaged at its end, and the host rebooted: recovery cuts the .log
 * back to its last whole batch, and neither the disk nor the rebuilt ring shows a torn
 * byte; appends go on from there. */
static void assert_torn_tail_is_cut(struct fixture *f, enum tail_damage d)
{
    int64_t end = d == TAIL_JUNK ? 13 : 10;
    uint64_t good_bytes;

    append_small(f, 5, 0);
    append_small(f, 5, 0);
    append_small(f, 3, 0);
    flush(f);
    good_bytes = d == TAIL_JUNK ? seg_bytes(f, 0, ".log") : batch_pos(f, 10);
    part_close(f);
    log_damage(f, d);
    ring_remove(f);
    part_open(f, false);

    assert_int_equal(seg_bytes(f, 0, ".log"), good_bytes);
    assert_int_equal(disk_bytes(f), good_bytes);
    assert_info(f, 0, end, end);
    assert_on_disk(f, 0, end, 0);
    assert_not_on_disk(f, end);
    assert_in_ring(f, 0, 0);

    assert_int_equal(append_small(f, 2, 0), end);
    flush(f);
    assert_on_disk(f, 0, end + 2, 0);
    assert_info(f, 0, end + 2, end + 2);
}

static void test_junk_after_the_last_batch_is_cut_on_recovery(void **state)
{
    assert_torn_tail_is_cut(*state, TAIL_JUNK);
}

static void test_a_last_batch_cut_short_is_cut_on_recovery(void **state)
{
    assert_torn_tail_is_cut(*state, TAIL_CUT_SHORT);
}

static void test_a_last_batch_with_a_bad_crc_is_cut_on_recovery(void **state)
{
    assert_torn_tail_is_cut(*state, TAIL_BAD_CRC);
}

/* Index files as the flusher wrote them, to compare with what recovery rebuilds. */
struct index_copy {
    uint8_t *data;
    size_t len;
};

static struct index_copy index_read(const struct fixture *f, int64_t base, const char *ext)
{
    char path[PATH_MAX];
    struct index_copy c;

    seg_path(f, base, ext, path);
    c.data = harness_read_file(path, &c.len);
    assert_non_null(c.data);
    return c;
}

static void assert_index_is(const struct fixture *f, int64_t base, const char *ext,
                            struct index_copy *want)
{
    struct index_copy now = index_read(f, base, ext);

    assert_int_equal(now.len, want->len);
    assert_memory_equal(now.data, want->data, want->len);
    free(now.data);
    free(want->data);
}

/* A sealed segment that lost its .index, and a last segment whose .index was overwritten
 * and whose .timeindex was lost, get them back on recovery as the flusher wrote them. */
static void test_missing_or_damaged_indexes_are_rebuilt(void **state)
{
    static const uint8_t junk[SEGMENT_INDEX_ENTRY_BYTES] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1};
    struct fixture *f = *state;
    struct index_copy idx0, tidx0, idx1, tidx1;
    char path[PATH_MAX];
    int64_t last, end;
    int fd;

    roll_segments(f, 2, 0);
    append(f, (uint32_t)log_end(f), BATCH_RECORDS, VALUE_BYTES);
    append(f, (uint32_t)log_end(f), BATCH_RECORDS, VALUE_BYTES);
    end = log_end(f);
    part_close(f);
    last = last_seg_base(f);
    idx0 = index_read(f, 0, ".index");
    tidx0 = index_read(f, 0, ".timeindex");
    idx1 = index_read(f, last, ".index");
    tidx1 = index_read(f, last, ".timeindex");
    assert_true(idx0.len >= 10 * SEGMENT_INDEX_ENTRY_BYTES);
    assert_true(idx1.len >= 2 * SEGMENT_INDEX_ENTRY_BYTES);

    seg_path(f, 0, ".index", path);
    assert_int_equal(unlink(path), 0);
    seg_path(f, last, ".timeindex", path);
    assert_int_equal(unlink(path), 0);
    seg_path(f, last, ".index", path);
    assert_true((fd = open(path, O_WRONLY | O_CLOEXEC)) >= 0);
    assert_int_equal(shoal__pwrite_all(fd, junk, sizeof(junk), SEGMENT_INDEX_ENTRY_BYTES), 0);
    close(fd);
    ring_remove(f);
    part_open(f, false);

    assert_index_is(f, 0, ".index", &idx0);
    assert_index_is(f, 0, ".timeindex", &tidx0);
    assert_index_is(f, last, ".index", &idx1);
    assert_index_is(f, last, ".timeindex", &tidx1);
    assert_on_disk(f, 0, end, 0);
}

/* A segment is sealed when the next batch would take it past segment.bytes, and the next
 * one starts at the following offset: no offset lost or in two segments. */
static void test_a_full_segment_rolls_into_the_next(void **state)
{
    struct fixture *f = *state;
    uint64_t batch_bytes = fill_batch_bytes(f);
    int64_t bases[8], base;
    uint64_t total = 0, bytes;
    size_t n;

    roll_segments(f, 4, 0);
    n = seg_list(f, bases, 8);
    assert_int_equal(n, 4);
    assert_int_equal(bases[0], 0);
    for (size_t i = 0; i < n; i++) {
        bytes = seg_bytes(f, bases[i], ".log");
        total += bytes;
        assert_true(bytes <= SEGMENT_BYTES);
        if (i + 1 == n)
            continue;
        assert_true(bytes + batch_bytes > SEGMENT_BYTES);
        (void)disk_record(f, bases[i + 1] - 1, &base);
        assert_int_equal(base, bases[i]);
        (void)disk_record(f, bases[i + 1], &base);
        assert_int_equal(base, bases[i + 1]);
    }
    assert_on_disk(f, 0, log_end(f), 0);
    assert_info(f, 0, log_end(f), log_end(f));
    assert_int_equal(disk_bytes(f), total);
}

/* retention.bytes 0 keeps the segment being written. Then, with retention.bytes three full
 * segments, the oldest whole segments go as new ones are sealed, while the rest still hold
 * at least that: three full segments and the one being written stay. The log start moves to
 * the oldest left, and what is left reads back. */
static void test_retention_bytes_deletes_the_oldest_sealed_segments(void **state)
{
    struct fixture *f = *state;
    uint64_t batch = fill_batch_bytes(f), full = SEGMENT_BYTES / batch * batch;
    int64_t bases[16], offset;

    f->p.cfg.retention_bytes = 0;
    append_small(f, 1, 0);
    flush(f);
    assert_int_equal(seg_list(f, bases, 16), 1);
    assert_on_disk(f, 0, 1, 0);

    f->p.cfg.retention_bytes = (int64_t)(3 * full);
    for (size_t started = 2; started <= 7; started++) {
        roll_segments(f, 1, 0);
        assert_int_equal(seg_list(f, bases, 16), SHOAL_MIN(started, 4));
    }
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(seg_bytes(f, bases[i], ".log"), full);
    assert_int_equal(seg_bytes(f, bases[3], ".log"), batch);
    assert_info(f, bases[0], log_end(f), log_end(f));
    assert_int_equal(disk_bytes(f), 3 * full + batch);
    assert_not_on_disk(f, bases[0] - 1);
    assert_on_disk(f, bases[0], log_end(f), 0);
    assert_int_equal(dpart_offset_for_time(&f->p, 0, &offset), 0);
    assert_int_equal(offset, bases[0]);
}

static void assert_offset_for_time(struct fixture *f, int64_t ts, int64_t want)
{
    int64_t offset = -1;

    assert_int_equal(dpart_offset_for_time(&f->p, ts, &offset), 0);
    assert_int_equal(offset, want);
}

/* A batch whose header is damaged in a sealed segment (its length made huge, so the segment
 * seems to end there): a consumer of an offset at or after it is told of the damage
 * (SHOAL_ECORRUPT naming the segment) rather than served the next segment as if a file had
 * been lost, which skipped the intact records after the damage. */
static void test_a_damaged_batch_header_is_damage_not_a_lost_file(void **state)
{
    static const uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xf0};
    struct fixture *f = *state;
    char path[PATH_MAX];
    int64_t bases[8], base, pos;
    int fd;

    roll_segments(f, 3, 0);
    assert_int_equal(seg_list(f, bases, 8), 3);
    seg_path(f, bases[1], ".log", path);
    assert_true((fd = open(path, O_WRONLY)) >= 0);
    assert_int_equal(pwrite(fd, huge, sizeof(huge), 8), (ssize_t)sizeof(huge)); /* batchLength */
    close(fd);
    assert_int_equal(segment_find(f, bases[1] + 1, &base, &pos), SHOAL_ECORRUPT);
    assert_non_null(strstr(shoal_errmsg(), "is damaged at byte 0"));
    (void)disk_record(f, bases[2], &base); /* the segment after it still reads */
    assert_int_equal(base, bases[2]);
}

/* Compaction merging segments deletes the ones merged into the first before its .swap takes
 * the first's place (compact.c): meanwhile a consumer of an offset in a deleted one is served
 * the .swap, which holds it, rather than sent on to the segment after the merge, and a
 * timestamp search finds its records there. */
static void test_a_merge_under_way_serves_its_swap(void **state)
{
    static const char *const exts[] = {".index", ".timeindex", ".log"};
    struct fixture *f = *state;
    char path[PATH_MAX], swap[PATH_MAX];
    int64_t bases[8], base;
    uint8_t *first, *second;
    size_t first_len, second_len;
    FILE *out;

    roll_segments(f, 3, 0);
    assert_int_equal(seg_list(f, bases, 8), 3);
    (void)disk_record(f, bases[1], &base); /* the segments listed as they are now */
    seg_path(f, bases[0], ".log", path);
    assert_non_null(first = harness_read_file(path, &first_len));
    seg_path(f, bases[1], ".log", path);
    assert_non_null(second = harness_read_file(path, &second_len));
    seg_path(f, bases[0], ".log.swap", swap);
    assert_non_null(out = fopen(swap, "w"));
    assert_int_equal(fwrite(first, 1, first_len, out), first_len);
    assert_int_equal(fwrite(second, 1, second_len, out), second_len);
    assert_int_equal(fclose(out), 0);
    free(first);
    free(second);
    for (size_t i = 0; i < 3; i++) {
        seg_path(f, bases[1], exts[i], path);
        assert_int_equal(unlink(path), 0);
    }

    assert_on_disk(f, bases[1], bases[2], 0);
    (void)disk_record(f, bases[1] + 1, &base);
    assert_int_equal(base, bases[0]);
    (void)disk_record(f, bases[2], &base);
    assert_int_equal(base, bases[2]);
    assert_offset_for_time(f, TS0 + bases[1] + 1, bases[1] + 1); /* timestamps TS0 + offset */
    unlink(swap);
}

/* The first offset whose timestamp is >= ts, across sealed segments whose slots the ring
 * has freed (found on disk only), the segment being written and records only in the ring;
 * the log end when no record is that late. */
static void test_offset_for_time_finds_the_first_record_at_or_after_it(void **state)
{
    struct fixture *f = *state;
    int64_t bases[8], gap1, gap2, end;

    roll_segments(f, 4, 0); /* timestamps TS0 + offset; the ring no longer holds segment 0 */
    assert_int_equal(seg_list(f, bases, 8), 4);
    assert_false(ring_holds(f, 0));
    gap1 = append_small(f, 3, 1000);
    append_small(f, 3, 1000);
    flush(f);
    gap2 = append_small(f, 3, 2000); /* in the ring only */
    append_small(f, 3, 2000);
    end = log_end(f);
    assert_info(f, 0, end, gap2);

    assert_offset_for_time(f, 0, 0);
    assert_offset_for_time(f, TS0, 0);
    assert_offset_for_time(f, TS0 + 5, 5);
    assert_offset_for_time(f, TS0 + bases[1], bases[1]);
    assert_offset_for_time(f, TS0 + gap1 + 500, gap1);
    assert_offset_for_time(f, TS0 + gap1 + 1001, gap1 + 1);
    assert_offset_for_time(f, TS0 + gap2 + 1500, gap2);
    assert_offset_for_time(f, TS0 + gap2 + 2004, gap2 + 4);
    assert_offset_for_time(f, TS0 + end + 2000, end);
}

/* Deleting the topic stops its producers and removes its ring files and its segments. */
static void test_remove_stops_producers_and_deletes_the_files(void **state)
{
    struct fixture *f = *state;
    int fds[RING_FD_COUNT(SHM_MAX_SLOTS)];
    uint32_t count = RING_FD_COUNT(f->cfg.ring_slots);
    char path[PATH_MAX + 16];
    ring_t producer;
    struct stat st;
    int64_t base;
    int rc;

    append_small(f, 2, 0);
    flush(f);
    assert_int_equal(ring_open_fds(f->shm_dir, f->p.shm_name, f->cfg.ring_slots, true, fds), 0);
    rc = ring_map_fds(&producer, fds, count, true);
    for (uint32_t i = 0; i < count; i++)
        close(fds[i]);
    assert_int_equal(rc, 0);

    dpart_remove(&f->p);
    f->open = false;
    assert_int_equal(
        append_tagged(&producer, f->buf, sizeof(f->buf), TAG, 2, 1, VALUE_MIN, 0, &base),
        SHOAL_ENOTOPIC);
    ring_unmap(&producer);
    assert_int_equal(stat(f->p.dir, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(ring_open_fds(f->shm_dir, f->p.shm_name, f->cfg.ring_slots, false, fds),
                     -ENOENT);
    snprintf(path, sizeof(path), "%s/%s.slot0", f->shm_dir, f->p.shm_name);
    assert_int_equal(stat(path, &st), -1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_flushed_records_are_found_on_disk_at_their_offsets),
        T(test_reopen_without_the_ring_rebuilds_it_from_disk),
        T(test_a_ring_of_another_owner_is_rebuilt_from_disk),
        T(test_a_partition_whose_files_are_gone_starts_past_what_was_committed),
        T(test_a_partition_whose_files_are_gone_is_written_again_from_its_ring),
        T(test_junk_after_the_last_batch_is_cut_on_recovery),
        T(test_a_last_batch_cut_short_is_cut_on_recovery),
        T(test_a_last_batch_with_a_bad_crc_is_cut_on_recovery),
        T(test_missing_or_damaged_indexes_are_rebuilt),
        T(test_a_full_segment_rolls_into_the_next),
        T(test_a_merge_under_way_serves_its_swap),
        T(test_a_damaged_batch_header_is_damage_not_a_lost_file),
        T(test_retention_bytes_deletes_the_oldest_sealed_segments),
        T(test_offset_for_time_finds_the_first_record_at_or_after_it),
        T(test_remove_stops_producers_and_deletes_the_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
