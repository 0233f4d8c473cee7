/* test_compact.c - compact_recover() on a partition directory left by a crash at each point
 * of a compaction rewrite: an unfinished .cleaned is dropped (the old segment stays), a
 * finished .swap replaces the segment and gets a fresh index, and a .swap that is not a
 * finished rewrite is deleted with the segment kept. (A sealed segment whose index was
 * unlinked before the crash gets it rebuilt by the partition's recovery:
 * tests/integ/test_segment_damage.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shoald/compact.h"
#include "harness.h"
#include "shoald/log.h"
#include "record.h"
#include "segment.h"

#define TS0 1700000000000LL

static char dir[PATH_MAX];

/* One batch of n records with offsets base + deltas[i] and lastOffsetDelta last. */
static size_t batch(uint8_t *buf, size_t cap, int64_t base, const int32_t *deltas, size_t n,
                    int32_t last)
{
    shoal_message_t m[8];
    record_batch_fields_t f;
    size_t len;
    char value[64];

    memset(value, 'v', sizeof(value));
    for (size_t i = 0; i < n; i++)
        m[i] = (shoal_message_t){.key = "k",
                                 .key_len = 1,
                                 .value = value,
                                 .value_len = sizeof(value),
                                 .timestamp_ms = TS0 + (int64_t)i};
    record_batch_fields_init(&f);
    f.base_offset = base;
    assert_int_equal(record_batch_encode_with_offsets(buf, cap, &f, m, deltas, n, last, TS0, &len),
                     0);
    return len;
}

static void path_of(char *buf, int64_t base, const char *ext)
{
    assert_int_equal(segment_path(buf, PATH_MAX, dir, base, ext), 0);
}

static void write_file(int64_t base, const char *ext, const uint8_t *data, size_t len)
{
    char path[PATH_MAX];
    int fd;
    path_of(path, base, ext);
    assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static uint8_t *read_file(int64_t base, const char *ext, size_t *len)
{
    char path[PATH_MAX];
    path_of(path, base, ext);
    return harness_read_file(path, len);
}

static bool exists(int64_t base, const char *ext)
{
    char path[PATH_MAX];
    path_of(path, base, ext);
    return access(path, F_OK) == 0;
}

/* Segment 0: offsets 0..7 in two batches (the "old" bytes); segment 8: the active one. */
static size_t old_segment(uint8_t *buf, size_t cap)
{
    static const int32_t all[] = {0, 1, 2, 3};
    size_t len = batch(buf, cap, 0, all, 4, 3);
    return len + batch(buf + len, cap - len, 4, all, 4, 3);
}

/* The rewrite of segment 0: offsets 2 and 7 kept, the ranges unchanged. */
static size_t new_segment(uint8_t *buf, size_t cap)
{
    static const int32_t first[] = {2};
    static const int32_t second[] = {3};
    size_t len = batch(buf, cap, 0, first, 1, 3);
    return len + batch(buf + len, cap - len, 4, second, 1, 3);
}

static void write_partition(void)
{
    static const int32_t active[] = {0, 1};
    uint8_t buf[4096];
    size_t len = old_segment(buf, sizeof(buf));
    segment_recovery_t rec;

    write_file(0, ".log", buf, len);
    len = batch(buf, sizeof(buf), 8, active, 2, 1);
    write_file(8, ".log", buf, len);
    assert_int_equal(segment_recover(dir, 0, false, &rec), 0);
    assert_int_equal(segment_recover(dir, 8, true, &rec), 0);
}

static int setup(void **state)
{
    (void)state;
    log_set_level(LOG_ERR);
    harness_tmpdir(dir, sizeof(dir), "compact");
    write_partition();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_rmrf(dir);
    return 0;
}

/* Segment 0's .log holds exactly want[0..want_len). */
static void assert_first_log_holds(const uint8_t *want, size_t want_len)
{
    uint8_t *now;
    size_t len;

    assert_non_null(now = read_file(0, ".log", &len));
    assert_int_equal(len, want_len);
    assert_memory_equal(now, want, len);
    free(now);
}

/* Segment 0's .log is the one write_partition() wrote. */
static void assert_old_segment_kept(void)
{
    uint8_t old[4096];

    assert_first_log_holds(old, old_segment(old, sizeof(old)));
}

static void test_unfinished_cleaned_is_dropped(void **state)
{
    uint8_t fresh[4096];
    (void)state;

    write_file(0, ".log.cleaned", fresh, new_segment(fresh, sizeof(fresh)) - 10); /* torn */
    assert_int_equal(compact_recover(dir, "t", 0), 0);
    assert_false(exists(0, ".log.cleaned"));
    assert_old_segment_kept();
}

static void test_finished_swap_replaces_the_segment_and_its_index(void **state)
{
    uint8_t fresh[4096], *now;
    size_t fresh_len = new_segment(fresh, sizeof(fresh)), len;
    segment_scan_t scan;
    (void)state;

    write_file(0, ".log.swap", fresh, fresh_len);
    assert_int_equal(compact_recover(dir, "t", 0), 1);
    assert_false(exists(0, ".log.swap"));
    assert_true(exists(0, ".index") && exists(0, ".timeindex"));
    assert_non_null(now = read_file(0, ".log", &len));
    assert_int_equal(len, fresh_len);
    assert_memory_equal(now, fresh, len);
    assert_int_equal(segment_scan_bytes(now, len, 0, true, NULL, NULL, &scan), 0);
    assert_int_equal(scan.error, 0);
    assert_int_equal(scan.records, 2);
    assert_int_equal(scan.next_offset, 8); /* still ends where segment 8 begins */
    /* Offset 5 is in a gap: the lookup finds the batch holding the next record. */
    assert_int_equal(segment_find_offset(now, len, 0, NULL, 0, 5), (int64_t)(len / 2));
    free(now);
}

/* A .swap that is not a finished rewrite (here cut short) never replaces the segment. */
static void test_damaged_swap_is_deleted_and_the_segment_kept(void **state)
{
    uint8_t fresh[4096];
    (void)state;

    write_file(0, ".log.swap", fresh, new_segment(fresh, sizeof(fresh)) - 10);
    assert_int_equal(compact_recover(dir, "t", 0), 1);
    assert_false(exists(0, ".log.swap"));
    assert_true(exists(0, ".index") && exists(0, ".timeindex"));
    assert_old_segment_kept();
}

/* A merge: segment 8 (offsets 8..15) sealed beside segment 0, segment 16 the active one;
 * the .swap at 0 holds the rewrite of both, ending where segment 16 begins. */
static size_t write_merge(uint8_t *swap, size_t cap, bool whole)
{
    static const int32_t all[] = {0, 1, 2, 3}, kept[] = {3};
    uint8_t buf[4096];
    segment_recovery_t rec;
    size_t len = batch(buf, sizeof(buf), 8, all, 4, 3), swap_len;

    len += batch(buf + len, sizeof(buf) - len, 12, all, 4, 3);
    write_file(8, ".log", buf, len);
    len = batch(buf, sizeof(buf), 16, all, 2, 1);
    write_file(16, ".log", buf, len);
    assert_int_equal(segment_recover(dir, 8, false, &rec), 0);
    assert_int_equal(segment_recover(dir, 16, true, &rec), 0);
    swap_len = new_segment(swap, cap);
    if (whole) /* segment 8's first batch dropped whole, its last kept with offset 15 */
        swap_len += batch(swap + swap_len, cap - swap_len, 12, kept, 1, 3);
    else /* cut after segment 8's first batch: offset 12 is no segment's end */
        swap_len += batch(swap + swap_len, cap - swap_len, 8, kept, 1, 3);
    write_file(0, ".log.swap", swap, swap_len);
    return swap_len;
}

static void assert_merged(const uint8_t *swap, size_t swap_len)
{
    assert_false(exists(0, ".log.swap"));
    assert_false(exists(8, ".log") || exists(8, ".index") || exists(8, ".timeindex"));
    assert_true(exists(0, ".index") && exists(0, ".timeindex") && exists(16, ".log"));
    assert_first_log_holds(swap, swap_len);
}

/* A crash after the .swap of a merge was made: the segments it holds after its first go,
 * whether some already went or not, and it takes the first's place. */
static void test_finished_merge_replaces_the_segments_it_holds(void **state)
{
    uint8_t swap[4096];
    size_t swap_len = write_merge(swap, sizeof(swap), true);
    (void)state;

    assert_int_equal(compact_recover(dir, "t", 0), 1);
    assert_merged(swap, swap_len);
}

static void test_merge_with_its_segments_partly_gone_completes(void **state)
{
    uint8_t swap[4096];
    size_t swap_len = write_merge(swap, sizeof(swap), true);
    char path[PATH_MAX];
    (void)state;

    path_of(path, 8, ".index"); /* a crash while deleting it: its index files go first */
    assert_int_equal(unlink(path), 0);
    path_of(path, 8, ".timeindex");
    assert_int_equal(unlink(path), 0);
    assert_int_equal(compact_recover(dir, "t", 0), 1);
    assert_merged(swap, swap_len);
}

/* A merge whose merged segments all went before the crash (or before a step failed) is
 * still completed, and said to be a merge: its .swap ends past its own segment's end, where
 * the next segment on disk begins. (The log used to call it a plain compaction, and a test
 * waiting for the merge's line timed out.) */
static void test_merge_with_every_merged_segment_gone_completes_as_a_merge(void **state)
{
    static const char *const exts[] = {".log", ".index", ".timeindex"};
    char path[PATH_MAX], log_path[PATH_MAX + 16];
    uint8_t swap[4096], *said;
    size_t swap_len = write_merge(swap, sizeof(swap), true), len;
    (void)state;

    for (size_t i = 0; i < 3; i++) {
        path_of(path, 8, exts[i]);
        assert_int_equal(unlink(path), 0);
    }
    snprintf(log_path, sizeof(log_path), "%s/daemon.log", dir);
    log_set_level(LOG_NOTICE);
    assert_int_equal(log_reopen(log_path), 0);
    assert_int_equal(compact_recover(dir, "t", 0), 1);
    assert_int_equal(log_reopen(""), 0);
    log_set_level(LOG_ERR);
    assert_merged(swap, swap_len);
    assert_non_null(said = harness_read_file(log_path, &len));
    assert_non_null(strstr((char *)said, "completed the compaction of segment 0 and of the "
                                         "segments merged into it"));
    free(said);
}

/* A .swap that ends inside a later segment is no merge rewrite: it goes, every segment stays. */
static void test_swap_ending_inside_a_segment_is_deleted(void **state)
{
    uint8_t swap[4096];
    (void)state;

    write_merge(swap, sizeof(swap), false);
    assert_int_equal(compact_recover(dir, "t", 0), 1);
    assert_false(exists(0, ".log.swap"));
    assert_true(exists(8, ".log") && exists(8, ".index"));
    assert_old_segment_kept();
}

static void test_missing_directory_is_fine(void **state)
{
    char missing[PATH_MAX + 16];
    (void)state;
    snprintf(missing, sizeof(missing), "%s/none", dir);
    assert_int_equal(compact_recover(missing, "t", 0), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_unfinished_cleaned_is_dropped),
        T(test_finished_swap_replaces_the_segment_and_its_index),
        T(test_damaged_swap_is_deleted_and_the_segment_kept),
        T(test_finished_merge_replaces_the_segments_it_holds),
        T(test_merge_with_its_segments_partly_gone_completes),
        T(test_merge_with_every_merged_segment_gone_completes_as_a_merge),
        T(test_swap_ending_inside_a_segment_is_deleted),
        T(test_missing_directory_is_fine),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
