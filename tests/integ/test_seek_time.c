/* test_seek_time.c - seek by timestamp (SHOAL_SEEK_TIMESTAMP, CTL_OFFSET_FOR_TIME, `shoal
 * consume --from-timestamp`) against a real shoald.
 *
 * Producers set every record's timestamp (shoal_message_t.timestamp_ms), so the expected
 * offsets are known exactly: record i of a topic gets TS0 + 10 i ms unless a test says
 * otherwise. Topics have 64 KiB segments and a three-slot ring, so a few thousand records
 * span several disk segments and the ring; the expected answers for timestamps out of
 * order come from a brute-force walk of the timestamps the test sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "shoal.h"
#include "util.h"

#define TEST_TIMEOUT_S 60
#define SMALL_SEGMENT  (64ull << 10)
#define TS0            1700000000000LL
#define VALUE_BYTES    200 /* about 240 records per 64 KiB segment */
#define MAX_BASES      64

/* ------------------------------------------------------------------ helpers */

static shoal_topic_config_t topic_cfg(uint32_t storage)
{
    shoal_topic_config_t cfg;
    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = SMALL_SEGMENT;
    cfg.ring_slots = 3;
    cfg.max_record_bytes = (uint32_t)(SMALL_SEGMENT / 4);
    cfg.storage = storage;
    if (storage == SHOAL_STORAGE_DISK)
        cfg.retention_ms = -1; /* the records carry 2023 timestamps: keep them */
    return cfg;
}

/* Send n records to partition 0 in batches of `per` records; record i (counting from the
 * first of this call, `first`) gets timestamp ts[i - first]. */
static void send_with_timestamps(shoal_client_t *c, const char *topic, int64_t first,
                                 const int64_t *ts, size_t n, size_t per)
{
    shoal_message_t msgs[16];
    char value[VALUE_BYTES];
    shoal_producer_t *p;
    shoal_ack_t ack;

    assert_true(per <= 16);
    memset(value, 'v', sizeof(value));
    assert_int_equal(shoal_producer_open(c, topic, NULL, &p), 0);
    for (size_t i = 0; i < n; i += per) {
        size_t k = SHOAL_MIN(per, n - i);
        for (size_t j = 0; j < k; j++)
            msgs[j] = (shoal_message_t){.value = value,
                                        .value_len = sizeof(value),
                                        .timestamp_ms = ts[i + j],
                                        .partition = 0};
        assert_int_equal(shoal_send_batch(p, msgs, k, &ack), 0);
        assert_int_equal(ack.offset, first + (int64_t)i);
    }
    shoal_producer_close(p);
}

static int64_t log_end(shoal_client_t *c, const char *topic)
{
    shoal_topic_info_t *info = NULL;
    int64_t end;
    assert_int_equal(shoal_topic_describe(c, topic, &info), 0);
    end = info->partitions[0].log_end_offset;
    shoal_topic_info_free(info);
    return end;
}

static int64_t log_start(shoal_client_t *c, const char *topic)
{
    shoal_topic_info_t *info = NULL;
    int64_t start;
    assert_int_equal(shoal_topic_describe(c, topic, &info), 0);
    start = info->partitions[0].log_start_offset;
    shoal_topic_info_free(info);
    return start;
}

static shoal_consumer_t *consumer_for(shoal_client_t *c, const char *topic)
{
    shoal_consumer_t *cons;
    assert_int_equal(shoal_consumer_open(c, NULL, &cons), 0);
    assert_int_equal(shoal_consumer_assign(cons, topic, NULL, 0), 0);
    return cons;
}

/* Seek to ts: the position must be want, and when want is below the log end the next poll
 * returns that record, with timestamp want_ts (when >= 0). */
static void expect_seek(shoal_consumer_t *cons, const char *topic, int64_t ts, int64_t want,
                        int64_t want_ts, int64_t end)
{
    shoal_record_t r;
    int rc = shoal_consumer_seek(cons, topic, 0, SHOAL_SEEK_TIMESTAMP, ts);
    int64_t pos = shoal_consumer_position(cons, topic, 0);

    if (rc != 0 || pos != want)
        fail_msg("seek to %" PRId64 ": rc %s, position %" PRId64 ", want %" PRId64 " (%s)", ts,
                 shoal_err_name(rc), pos, want, shoal_errmsg());
    if (want >= end)
        return;
    assert_int_equal(shoal_poll(cons, &r, 1, 2000), 1);
    assert_int_equal(r.offset, want);
    if (want_ts >= 0)
        assert_int_equal(r.timestamp_ms, want_ts);
}

/* ------------------------------------------------------------------ fixture */

/* Every sealed segment's .timeindex ends with the segment's largest timestamp (the
 * records' ts[] from its base to the next's) and the batch (of per records) that first
 * reached it, as Kafka's roll leaves it: Kafka reads a segment's largest timestamp there. */
static void expect_last_time_entries(const struct harness_daemon *d, const char *topic,
                                     const int64_t *ts, int per)
{
    int64_t bases[MAX_BASES];
    size_t nb = harness_segment_bases(d, topic, bases, MAX_BASES);

    for (size_t i = 0; i + 1 < nb; i++) {
        char path[PATH_MAX];
        int64_t max = -1, at = -1;
        uint8_t *tidx;
        size_t len = 0;

        for (int64_t o = bases[i]; o < bases[i + 1]; o++)
            if (ts[o] > max) {
                max = ts[o];
                at = o / per * per + per - 1; /* its batch's last offset */
            }
        snprintf(path, sizeof(path), "%s/%s-0/%020" PRId64 ".timeindex", d->data_dir, topic,
                 bases[i]);
        assert_non_null(tidx = harness_read_file(path, &len));
        assert_true(len >= 12 && len % 12 == 0);
        assert_int_equal((int64_t)shoal__get_be64(tidx + len - 12), max);
        assert_int_equal(bases[i] + shoal__get_be32(tidx + len - 4), at);
        free(tidx);
    }
}

static int setup(void **state)
{
    static struct harness_fixture f;
    *state = &f;
    return harness_fixture_start(&f, "tseek", TEST_TIMEOUT_S, "--log-level", "debug", NULL);
}

/* The same with a flusher that sleeps 4 s: right after the start nothing is written to
 * disk, so a disk topic's records are only in the ring. */
static int setup_slow_flush(void **state)
{
    static struct harness_fixture f;
    *state = &f;
    return harness_fixture_start(&f, "tseek", TEST_TIMEOUT_S, "--log-level", "debug",
                                 "--flush-interval-ms", "4000", NULL);
}

static int teardown(void **state)
{
    return harness_fixture_stop(*state);
}

/* ------------------------------------------------------------------ tests */

#define N_SORTED 2000 /* about eight segments: five or more only on disk */

INTEG_TEST(test_seek_by_timestamp_is_exact_across_disk_segments_and_the_ring)
{
    shoal_topic_config_t cfg = topic_cfg(SHOAL_STORAGE_DISK);
    static int64_t ts[N_SORTED];
    int64_t bases[MAX_BASES];
    shoal_consumer_t *cons;
    shoal_record_t r;
    size_t nb;
    int64_t end;

    for (int64_t i = 0; i < N_SORTED; i++)
        ts[i] = TS0 + 10 * i;
    assert_int_equal(shoal_topic_create(f->c, "sorted", &cfg), 0);
    send_with_timestamps(f->c, "sorted", 0, ts, N_SORTED, 1);
    end = log_end(f->c, "sorted");
    assert_int_equal(end, N_SORTED);
    nb = harness_segment_bases(&f->d, "sorted", bases, MAX_BASES);
    assert_true(nb >= 6);
    expect_last_time_entries(&f->d, "sorted", ts, 1);
    cons = consumer_for(f->c, "sorted");

    /* before the first record, at it, and every segment's first record exactly; a
     * millisecond before each lands on it too (its predecessor is 9 ms earlier) */
    expect_seek(cons, "sorted", 0, 0, TS0, end);
    expect_seek(cons, "sorted", TS0 - 1, 0, TS0, end);
    for (size_t i = 0; i < nb; i++) {
        expect_seek(cons, "sorted", TS0 + 10 * bases[i], bases[i], TS0 + 10 * bases[i], end);
        expect_seek(cons, "sorted", TS0 + 10 * bases[i] - 1, bases[i], TS0 + 10 * bases[i], end);
        if (bases[i] > 0) /* the last record of the segment before */
            expect_seek(cons, "sorted", TS0 + 10 * (bases[i] - 1), bases[i] - 1,
                        TS0 + 10 * (bases[i] - 1), end);
    }
    /* between two records: the later; in the ring's newest slot; exactly the last */
    expect_seek(cons, "sorted", TS0 + 10 * 123 + 3, 124, TS0 + 1240, end);
    expect_seek(cons, "sorted", TS0 + 10 * (N_SORTED - 50) + 5, N_SORTED - 49, -1, end);
    expect_seek(cons, "sorted", TS0 + 10 * (N_SORTED - 1), N_SORTED - 1, ts[N_SORTED - 1], end);

    /* after the last: the log end, so only a later append is read */
    expect_seek(cons, "sorted", TS0 + 10 * N_SORTED, end, -1, end);
    expect_seek(cons, "sorted", INT64_MAX, end, -1, end);
    assert_int_equal(shoal_poll(cons, &r, 1, 200), 0);
    {
        const int64_t later = TS0 - 999999; /* an old timestamp: position, not time, decides */
        send_with_timestamps(f->c, "sorted", end, &later, 1, 1);
    }
    assert_int_equal(shoal_poll(cons, &r, 1, 2000), 1);
    assert_int_equal(r.offset, end);
    assert_int_equal(r.timestamp_ms, TS0 - 999999);

    /* errors: a negative timestamp, a partition not assigned */
    assert_int_equal(shoal_consumer_seek(cons, "sorted", 0, SHOAL_SEEK_TIMESTAMP, -1),
                     SHOAL_EINVAL);
    assert_int_equal(shoal_consumer_seek(cons, "sorted", 3, SHOAL_SEEK_TIMESTAMP, TS0),
                     SHOAL_ENOPARTITION);
    shoal_consumer_close(cons);
}

#define N_BATCHES 500
#define PER_BATCH 5

/* Earliest i with ts[i] >= t, or n. */
static int64_t brute_force(const int64_t *ts, int64_t n, int64_t t)
{
    for (int64_t i = 0; i < n; i++)
        if (ts[i] >= t)
            return i;
    return n;
}

INTEG_TEST(test_seek_by_timestamp_finds_the_earliest_record_when_timestamps_go_back)
{
    static const int perm[PER_BATCH] = {2, 0, 4, 1, 3};
    shoal_topic_config_t cfg = topic_cfg(SHOAL_STORAGE_DISK);
    static int64_t ts[N_BATCHES * PER_BATCH];
    const int64_t n = N_BATCHES * PER_BATCH;
    int64_t bases[MAX_BASES], end;
    shoal_consumer_t *cons;

    /* Within each batch the records are shuffled; every 13th batch has one record from
     * 3 s back, and every 31st one from 2 s ahead (in another segment from its place). */
    for (int64_t b = 0; b < N_BATCHES; b++)
        for (int k = 0; k < PER_BATCH; k++) {
            int64_t i = b * PER_BATCH + k;
            ts[i] = TS0 + 10 * (b * PER_BATCH + perm[k]);
            if (k == 1 && b % 13 == 5)
                ts[i] -= 3000;
            if (k == 3 && b % 31 == 7)
                ts[i] += 2000;
        }
    assert_int_equal(shoal_topic_create(f->c, "shuffled", &cfg), 0);
    send_with_timestamps(f->c, "shuffled", 0, ts, (size_t)n, PER_BATCH);
    end = log_end(f->c, "shuffled");
    assert_int_equal(end, n);
    assert_true(harness_segment_bases(&f->d, "shuffled", bases, MAX_BASES) >= 5);
    cons = consumer_for(f->c, "shuffled");
    for (int64_t t = TS0 - 3100; t <= TS0 + 10 * n + 2100; t += 37) {
        int64_t want = brute_force(ts, n, t);
        expect_seek(cons, "shuffled", t, want, want < n ? ts[want] : -1, end);
    }
    shoal_consumer_close(cons);
}

INTEG_TEST(test_seek_by_timestamp_on_a_memory_topic_searches_the_ring)
{
    shoal_topic_config_t cfg = topic_cfg(SHOAL_STORAGE_MEMORY);
    static int64_t ts[3000];
    shoal_consumer_t *cons;
    int64_t start, end;

    for (int64_t i = 0; i < 3000; i++)
        ts[i] = TS0 + 10 * i;
    assert_int_equal(shoal_topic_create(f->c, "memts", &cfg), 0);
    send_with_timestamps(f->c, "memts", 0, ts, 3000, 4);
    start = log_start(f->c, "memts");
    end = log_end(f->c, "memts");
    assert_true(start > 0 && end == 3000);
    cons = consumer_for(f->c, "memts");
    /* records that are gone are not found: the oldest live one is */
    expect_seek(cons, "memts", 0, start, ts[start], end);
    expect_seek(cons, "memts", ts[start], start, ts[start], end);
    expect_seek(cons, "memts", ts[start + 1] - 4, start + 1, ts[start + 1], end);
    expect_seek(cons, "memts", ts[2999], 2999, ts[2999], end);
    expect_seek(cons, "memts", ts[2999] + 1, end, -1, end);
    shoal_consumer_close(cons);
}

/* A disk topic whose records are not on disk yet: the daemon finds them in the ring. */
INTEG_TEST(test_seek_by_timestamp_on_a_disk_topic_finds_records_not_yet_flushed)
{
    shoal_topic_config_t cfg = topic_cfg(SHOAL_STORAGE_DISK);
    static int64_t ts[400];
    shoal_topic_info_t *info = NULL;
    shoal_consumer_t *cons;
    int64_t end;

    for (int64_t i = 0; i < 400; i++)
        ts[i] = TS0 + 10 * i;
    assert_int_equal(shoal_topic_create(f->c, "ringonly", &cfg), 0);
    send_with_timestamps(f->c, "ringonly", 0, ts, 400, 1);
    end = log_end(f->c, "ringonly");
    assert_int_equal(end, 400);
    cons = consumer_for(f->c, "ringonly");
    expect_seek(cons, "ringonly", 0, 0, ts[0], end);
    expect_seek(cons, "ringonly", ts[150] - 3, 150, ts[150], end);
    expect_seek(cons, "ringonly", ts[300], 300, ts[300], end); /* in the second slot */
    expect_seek(cons, "ringonly", ts[399], 399, ts[399], end);
    expect_seek(cons, "ringonly", ts[399] + 1, end, -1, end);
    shoal_consumer_close(cons);
    /* That the ring was what answered: the flusher has not run since the topic exists
     * (a machine slow enough to let 4 s pass costs only that coverage). */
    assert_int_equal(shoal_topic_describe(f->c, "ringonly", &info), 0);
    if (info->partitions[0].disk_bytes != 0)
        print_message("note: the flusher ran; the ring-only path was not what answered\n");
    shoal_topic_info_free(info);
}

/* `shoal consume --from-timestamp` prints from the first record at or after the time. */
INTEG_TEST(test_cli_consume_from_timestamp_prints_from_that_record)
{
    shoal_topic_config_t cfg = topic_cfg(SHOAL_STORAGE_DISK);
    static int64_t ts[1000];
    char cmd[PATH_MAX * 2], line[128];
    const char *build = getenv("BUILD");
    int64_t want = 700;
    FILE *out;
    int lines = 0;

    for (int64_t i = 0; i < 1000; i++)
        ts[i] = TS0 + 10 * i;
    assert_int_equal(shoal_topic_create(f->c, "clits", &cfg), 0);
    send_with_timestamps(f->c, "clits", 0, ts, 1000, 1);
    snprintf(cmd, sizeof(cmd),
             "%s/shoal --socket %s consume clits --from-timestamp %lld --max-messages 3 "
             "--timeout-ms 5000 --format '%%o %%T\\n'",
             build && *build ? build : "build", f->d.socket, (long long)(TS0 + 10 * want - 7));
    assert_non_null(out = popen(cmd, "r"));
    while (fgets(line, sizeof(line), out)) {
        char expect[64];
        snprintf(expect, sizeof(expect), "%lld %lld\n", (long long)(want + lines),
                 (long long)ts[want + lines]);
        assert_string_equal(line, expect);
        lines++;
    }
    assert_int_equal(pclose(out), 0);
    assert_int_equal(lines, 3);

    /* the start options exclude each other: a usage error, status 2 */
    snprintf(cmd, sizeof(cmd),
             "%s/shoal --socket %s consume clits --offset 3 --from-timestamp 5 2>/dev/null",
             build && *build ? build : "build", f->d.socket);
    assert_non_null(out = popen(cmd, "r"));
    assert_int_equal(WEXITSTATUS(pclose(out)), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_seek_by_timestamp_is_exact_across_disk_segments_and_the_ring),
        T(test_seek_by_timestamp_finds_the_earliest_record_when_timestamps_go_back),
        T(test_seek_by_timestamp_on_a_memory_topic_searches_the_ring),
        cmocka_unit_test_setup_teardown(
            test_seek_by_timestamp_on_a_disk_topic_finds_records_not_yet_flushed, setup_slow_flush,
            teardown),
        T(test_cli_consume_from_timestamp_prints_from_that_record),
#undef T
    };
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
