/* test_retention.c - topic settings enforced by a real shoald: retention by bytes and by
 * time deletes whole sealed segments (never the one being written, never bytes a consumer
 * holds a view of), the log start offset follows, segment.ms rolls segments, flush.messages
 * fsyncs by count, and alter changes them on a live topic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "harness.h"
#include "shoal.h"

#define SEGMENT     (64 << 10)
#define VALUE_BYTES 1000

static struct harness_daemon daemon_;
static shoal_client_t *client;

/* ------------------------------------------------------------------ helpers */

static void create_topic(const char *name, const char *const *sets, size_t n)
{
    shoal_topic_config_t cfg;
    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = SEGMENT;
    cfg.ring_slots = 2;
    cfg.max_record_bytes = 4096;
    for (size_t i = 0; i < n; i += 2)
        assert_int_equal(shoal_topic_config_set(&cfg, sets[i], sets[i + 1]), 0);
    assert_int_equal(shoal_topic_create(client, name, &cfg), 0);
}

/* Append n records whose value starts with their sequence number; ts 0 means now. */
static void produce(const char *topic, int first, int n, int64_t ts)
{
    shoal_producer_t *p;
    char value[VALUE_BYTES];
    assert_int_equal(shoal_producer_open(client, topic, NULL, &p), 0);
    for (int i = first; i < first + n; i++) {
        shoal_message_t m = {.value = value, .value_len = sizeof(value), .timestamp_ms = ts};
        memset(value, 'v', sizeof(value));
        snprintf(value, sizeof(value), "%d", i);
        assert_int_equal(shoal_send(p, &m, NULL), 0);
    }
    shoal_producer_close(p);
}

static shoal_partition_info_t describe0(const char *topic)
{
    shoal_topic_info_t *info;
    shoal_partition_info_t pi;
    assert_int_equal(shoal_topic_describe(client, topic, &info), 0);
    pi = info->partitions[0];
    shoal_topic_info_free(info);
    return pi;
}

/* Poll describe until cond holds or 5 s pass. */
#define WAIT_UNTIL(cond)                                                                           \
    do {                                                                                           \
        for (int w_ = 0; w_ < 500 && !(cond); w_++)                                                \
            usleep(10000);                                                                         \
    } while (0)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int count_logs(const char *topic)
{
    char dir[PATH_MAX];
    struct dirent *e;
    DIR *d;
    int n = 0;
    snprintf(dir, sizeof(dir), "%s/%s-0", daemon_.data_dir, topic);
    assert_non_null(d = opendir(dir));
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".log") != NULL;
    closedir(d);
    return n;
}

/* Read from the log start to the end: offsets gapless, values numbered by offset. */
static int64_t read_all_from_start(const char *topic, int64_t expect_first)
{
    return harness_read_numbered(client, topic, expect_first, describe0(topic).log_end_offset);
}

/* ------------------------------------------------------------------ tests */

static void test_retention_bytes_keeps_disk_within_limit_plus_one_segment(void **state)
{
    static const char *const sets[] = {"retention.bytes", "128K"};
    shoal_partition_info_t pi;
    (void)state;

    create_topic("rb", sets, 2);
    produce("rb", 0, 1000, 0); /* about 1 MB: 16 segments of 64 KiB */
    WAIT_UNTIL((pi = describe0("rb")).flushed_offset == 1000);
    usleep(1100 * 1000); /* the last once-a-second pass: the log start moves no more */
    pi = describe0("rb");
    assert_true(pi.log_start_offset > 0);
    assert_true(pi.disk_bytes <= 128 * 1024 + SEGMENT);
    assert_true(pi.disk_bytes >= 128 * 1024);
    assert_int_equal(pi.log_end_offset, 1000);
    assert_true(harness_daemon_log_contains(&daemon_, "by retention.bytes"));
    /* What is left reads back from the new log start, gapless, to the end. */
    assert_int_equal(read_all_from_start("rb", pi.log_start_offset), 1000);
}

/* A burst seals many segments within one second: retention keeps up segment by segment
 * instead of letting the partition grow until its once-a-second pass. */
static void test_retention_bytes_keeps_up_with_a_burst(void **state)
{
    static const char *const sets[] = {"retention.bytes", "128K"};
    shoal_partition_info_t pi;
    shoal_topic_config_t cfg;
    (void)state;

    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = SEGMENT;
    cfg.max_record_bytes = 4096;
    cfg.ring_slots = 64; /* the whole burst fits: the flusher, not the producer, sets the pace */
    assert_int_equal(shoal_topic_config_set(&cfg, sets[0], sets[1]), 0);
    assert_int_equal(shoal_topic_create(client, "burst", &cfg), 0);
    produce("burst", 0, 300, 0);
    WAIT_UNTIL(describe0("burst").log_start_offset > 0);
    assert_true(describe0("burst").log_start_offset > 0);
    produce("burst", 300, 3000, 0); /* 3 MB: 47 segments, written within ~100 ms */
    for (int64_t t0 = now_ms(); now_ms() - t0 < 300;) {
        pi = describe0("burst");
        if (pi.disk_bytes > 128 * 1024 + 2 * SEGMENT)
            fail_msg("%llu bytes on disk during the burst", (unsigned long long)pi.disk_bytes);
        usleep(2000);
    }
}

static void test_retention_ms_deletes_old_segments_after_alter(void **state)
{
    static const char *const names[] = {"retention.ms"};
    static const char *const values[] = {"60000"};
    int64_t hour_ago = (int64_t)time(NULL) * 1000 - 3600 * 1000;
    shoal_partition_info_t pi;
    (void)state;

    create_topic("rt", NULL, 0);
    produce("rt", 0, 300, hour_ago); /* old records fill several segments */
    produce("rt", 300, 100, 0);      /* recent ones */
    usleep(1200000);
    assert_int_equal(describe0("rt").log_start_offset, 0); /* default: 7 days */
    assert_int_equal(shoal_topic_alter(client, "rt", names, values, 1), 0);
    WAIT_UNTIL(describe0("rt").log_start_offset > 0);
    pi = describe0("rt");
    assert_true(pi.log_start_offset > 0);
    assert_true(pi.log_start_offset <= 300); /* recent records are all kept */
    assert_true(harness_daemon_log_contains(&daemon_, "by retention.ms"));
    assert_int_equal(read_all_from_start("rt", pi.log_start_offset), 400);
}

/* Read one record of partition 0 at offset; its offset, or a negative code. */
static int64_t read_one_at(const char *topic, int64_t offset)
{
    shoal_consumer_t *k;
    shoal_record_t r;
    int n;

    assert_int_equal(shoal_consumer_open(client, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, topic, NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, topic, 0, SHOAL_SEEK_OFFSET, offset), 0);
    n = shoal_poll(k, &r, 1, 2000);
    shoal_consumer_close(k);
    return n == 1 ? r.offset : n < 0 ? n : -1;
}

/* shoald keeps the list of a partition's segments between consumers' lookups: segments
 * rolled since, and segments retention removed since, are found out. */
static void test_segment_lookups_follow_rolls_and_retention(void **state)
{
    static const char *const names[] = {"retention.bytes"};
    static const char *const values[] = {"200000"};
    int64_t end;
    (void)state;

    create_topic("rl", NULL, 0);
    produce("rl", 0, 200, 0);
    WAIT_UNTIL(describe0("rl").flushed_offset == 200);
    assert_int_equal(read_all_from_start("rl", 0), 200); /* the list is made: ~3 segments */
    produce("rl", 200, 400, 0);                          /* six more roll, the ring moves on */
    WAIT_UNTIL(describe0("rl").flushed_offset == 600);
    assert_int_equal(read_one_at("rl", 350), 350); /* on disk only, in a segment not listed */

    assert_int_equal(shoal_topic_alter(client, "rl", names, values, 1), 0);
    WAIT_UNTIL(describe0("rl").log_start_offset > 100);
    end = describe0("rl").log_start_offset;
    assert_true(end > 100);
    assert_int_equal(read_one_at("rl", 10), end); /* removed since listed: the log start */
    /* asked for the removed segment itself (a consumer racing retention): out of range, not
     * a failure to open the file the old list named */
    {
        client_segment_t seg;
        assert_int_equal(client_segment_open(client, "rl", 0, 10, &seg), SHOAL_EOFFSET);
    }
}

static void test_retention_never_pulls_bytes_from_under_a_held_view(void **state)
{
    static const char *const names[] = {"retention.bytes"};
    static const char *const values[] = {"64K"};
    shoal_consumer_t *k;
    shoal_record_t r[8];
    char copy[8][VALUE_BYTES];
    int n;
    (void)state;

    create_topic("rv", NULL, 0);
    produce("rv", 0, 600, 0);
    usleep(100000);
    assert_int_equal(shoal_consumer_open(client, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "rv", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "rv", 0, SHOAL_SEEK_OFFSET, 0), 0);
    n = shoal_poll(k, r, 8, 2000); /* offsets 0.. come from the first disk segment */
    assert_int_equal(n, 8);
    for (int i = 0; i < n; i++)
        memcpy(copy[i], r[i].value, VALUE_BYTES);
    assert_int_equal(shoal_topic_alter(client, "rv", names, values, 1), 0);
    WAIT_UNTIL(describe0("rv").log_start_offset > 0);
    assert_true(describe0("rv").log_start_offset > 0);
    for (int i = 0; i < n; i++) /* the views still read the deleted segment's bytes */
        assert_memory_equal(r[i].value, copy[i], VALUE_BYTES);
    /* Polling goes on through the rest of the segment it has mapped, then, told once that
     * the offsets after that segment were deleted (SHOAL_EOFFSET), from the new log start. */
    {
        int64_t next = 8, start = describe0("rv").log_start_offset, got = 0;
        int told = 0;
        while (next < 600 &&
               ((n = shoal_poll(k, r, 8, 2000)) > 0 || (n == SHOAL_EOFFSET && told++ == 0)))
            for (int i = 0; i < n; i++, got++) {
                assert_true(r[i].offset == next || (r[i].offset == start && next < start));
                next = r[i].offset + 1;
            }
        assert_int_equal(next, 600);
        assert_int_equal(told, 1);
        assert_true(got > 0);
    }
    shoal_consumer_close(k);
}

/* A reader that retention overtakes (it read, and the records after its position were
 * deleted before it came back) is told once with SHOAL_EOFFSET naming them, and reads on
 * from the log start. It jumped there without a word (found by a user session), where a
 * memory topic's reader is told. */
static void test_a_reader_overtaken_by_retention_is_told(void **state)
{
    static const char *const sets[] = {"retention.bytes", "128K"};
    shoal_consumer_t *k;
    shoal_record_t r[64];
    int64_t start;
    (void)state;

    create_topic("over", sets, 2);
    produce("over", 0, 100, 0);
    assert_int_equal(shoal_consumer_open(client, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "over", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "over", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    assert_int_equal(shoal_poll(k, r, 10, 2000), 10);
    shoal_consumer_release(k);
    produce("over", 100, 1000, 0);
    WAIT_UNTIL(describe0("over").log_start_offset > 100);
    assert_true((start = describe0("over").log_start_offset) > 100);
    assert_int_equal(shoal_poll(k, r, 64, 2000), SHOAL_EOFFSET);
    assert_non_null(strstr(shoal_errmsg(), "over-0: offsets 10.."));
    assert_non_null(strstr(shoal_errmsg(), "were deleted by retention before this consumer"));
    assert_true(shoal_poll(k, r, 64, 2000) > 0);
    assert_true(r[0].offset >= start);
    shoal_consumer_close(k);
}

/* retention.ms empties a quiet partition: once segment.ms sealed its last segment and its
 * records expired, that segment goes too, an empty one at the log end taking its place (as
 * Kafka rolls and deletes). It stayed for ever: the last file was never deleted (found by
 * a user session). The log goes on at the same offsets. */
static void test_retention_ms_empties_a_quiet_partition(void **state)
{
    static const char *const sets[] = {"retention.ms", "1000", "segment.ms", "1000"};
    shoal_partition_info_t pi;
    (void)state;

    create_topic("quiet", sets, 4);
    produce("quiet", 0, 5, 0);
    /* the start moves first, then the files go (a reader sees the start before a gap) */
    for (int i = 0; i < 3 && (describe0("quiet").log_start_offset < 5 || count_logs("quiet") > 1);
         i++)
        WAIT_UNTIL(describe0("quiet").log_start_offset == 5 && count_logs("quiet") == 1);
    pi = describe0("quiet");
    assert_int_equal(pi.log_start_offset, 5);
    assert_int_equal(pi.log_end_offset, 5);
    assert_int_equal(count_logs("quiet"), 1); /* the empty one at offset 5 */
    assert_int_equal(pi.disk_bytes, 0);
    assert_true(harness_daemon_log_contains(&daemon_, "quiet-0: deleted segment 0"));
    produce("quiet", 5, 3, 0);
    WAIT_UNTIL(describe0("quiet").flushed_offset == 8);
    assert_int_equal(read_all_from_start("quiet", 5), 8);
}

/* A child that appends to topic "race" until killed. */
static int produce_forever(void *arg)
{
    shoal_client_t *c;
    shoal_producer_t *p;
    char value[VALUE_BYTES];
    shoal_message_t m = {.value = value, .value_len = sizeof(value)};
    (void)arg;

    memset(value, 'r', sizeof(value));
    if (shoal_client_open(daemon_.socket, &c) < 0 || shoal_producer_open(c, "race", NULL, &p) < 0)
        return 1;
    for (;;) {
        int rc = shoal_send(p, &m, NULL);
        if (rc < 0 && rc != SHOAL_AGAIN)
            return 2;
    }
}

/* Consumers that start at the log start while retention deletes segments under them never
 * see an error for it: a segment gone between their look at the log start and their open
 * of it moves them to the new start (shoald publishes it before unlinking). (One that read
 * records and then fell behind the start is told it lost some: SHOAL_EOFFSET, after its
 * first poll.) */
static void test_readers_from_the_start_race_retention_without_errors(void **state)
{
    static const char *const sets[] = {"retention.bytes", "128K"};
    int64_t t0 = now_ms(), reads = 0;
    pid_t child;
    (void)state;

    create_topic("race", sets, 2);
    assert_true((child = harness_fork(produce_forever, NULL, 30)) > 0);
    WAIT_UNTIL(describe0("race").log_start_offset > 0);
    while (now_ms() - t0 < 3000) {
        shoal_consumer_t *k;
        shoal_record_t r[64];
        int n;
        assert_int_equal(shoal_consumer_open(client, NULL, &k), 0);
        assert_int_equal(shoal_consumer_assign(k, "race", NULL, 0), 0);
        assert_int_equal(shoal_consumer_seek(k, "race", 0, SHOAL_SEEK_BEGINNING, 0), 0);
        for (int i = 0; i < 4; i++)
            if ((n = shoal_poll(k, r, 64, 200)) < 0 && (i == 0 || n != SHOAL_EOFFSET)) {
                harness_daemon_print_log(&daemon_);
                fail_msg("poll %d of read %lld: %s (%s)", i, (long long)reads, shoal_err_name(n),
                         shoal_errmsg());
            }
        shoal_consumer_close(k);
        reads++;
    }
    assert_int_equal(harness_poll(child), -1); /* the producer ran throughout */
    kill(child, SIGKILL);
    harness_wait(child, 2000);
    assert_true(reads > 10);
    assert_true(harness_daemon_log_contains(&daemon_, "by retention.bytes"));
}

static void test_segment_ms_rolls_a_quiet_segment(void **state)
{
    static const char *const sets[] = {"segment.ms", "1000"};
    (void)state;

    create_topic("sm", sets, 2);
    produce("sm", 0, 1, 0);
    WAIT_UNTIL(count_logs("sm") == 1);
    usleep(1500000);
    produce("sm", 1, 1, 0);
    WAIT_UNTIL(count_logs("sm") == 2);
    assert_int_equal(count_logs("sm"), 2);
    assert_true(harness_daemon_log_contains(&daemon_, "rolled the active segment"));
    assert_int_equal(read_all_from_start("sm", 0), 2);
}

static void test_flush_messages_fsyncs_by_count(void **state)
{
    static const char *const sets[] = {"flush.ms", "100000000", "flush.messages", "10"};
    (void)state;

    create_topic("fm", sets, 4);
    produce("fm", 0, 5, 0);
    usleep(200000);
    assert_int_equal(describe0("fm").flushed_offset, 0); /* 5 < 10 and flush.ms is far */
    produce("fm", 5, 5, 0);
    WAIT_UNTIL(describe0("fm").flushed_offset == 10);
    assert_int_equal(describe0("fm").flushed_offset, 10);
}

/* Kafka's "never" for segment.ms and flush.ms is Long.MAX_VALUE: no roll, no timed fsync
 * (deadlines that wrapped made both happen on every pass). */
static void test_segment_ms_and_flush_ms_at_the_maximum_mean_never(void **state)
{
    static const char *const sets[] = {"segment.ms", "9223372036854775807", "flush.ms",
                                       "9223372036854775807"};
    (void)state;

    create_topic("never", sets, 4);
    for (int i = 0; i < 4; i++) {
        produce("never", i, 1, 0);
        usleep(100000); /* several flusher passes apart */
    }
    WAIT_UNTIL(count_logs("never") == 1);
    usleep(200000);
    assert_int_equal(count_logs("never"), 1);
    assert_int_equal(describe0("never").flushed_offset, 0);
    assert_false(harness_daemon_log_contains(&daemon_, "never-0: rolled"));
    assert_int_equal(read_all_from_start("never", 0), 4);
}

static void test_alter_refuses_layout_unknown_and_bad_values_and_changes_nothing(void **state)
{
    static const char *const n_layout[] = {"retention.ms", "segment.bytes"};
    static const char *const v_layout[] = {"1000", "1M"};
    static const char *const n_unknown[] = {"retention.msec"};
    static const char *const n_bad[] = {"retention.bytes"};
    static const char *const v_bad[] = {"-5"};
    shoal_topic_info_t *info;
    (void)state;

    create_topic("ta", NULL, 0);
    assert_int_equal(shoal_topic_alter(client, "ta", n_layout, v_layout, 2), SHOAL_EIMMUTABLE);
    assert_int_equal(shoal_topic_alter(client, "ta", n_unknown, v_bad, 1), SHOAL_ESETTING);
    assert_int_equal(shoal_topic_alter(client, "ta", n_bad, v_bad, 1), SHOAL_ECONFIG);
    assert_int_equal(shoal_topic_alter(client, "nope", n_bad, v_layout, 1), SHOAL_ENOTOPIC);
    assert_int_equal(shoal_topic_alter(client, "ta", n_bad, v_bad, 0), SHOAL_EINVAL);
    assert_int_equal(shoal_topic_describe(client, "ta", &info), 0);
    assert_int_equal(info->config.retention_ms, 7LL * 24 * 3600 * 1000); /* unchanged */
    shoal_topic_info_free(info);
    /* A valid alter is durable across a restart. */
    assert_int_equal(shoal_topic_alter(client, "ta", n_layout, v_layout, 1), 0);
    shoal_client_close(client);
    assert_int_equal(harness_daemon_stop(&daemon_), 0);
    assert_int_equal(harness_daemon_restart(&daemon_), 0);
    assert_int_equal(shoal_client_open(daemon_.socket, &client), 0);
    assert_int_equal(shoal_topic_describe(client, "ta", &info), 0);
    assert_int_equal(info->config.retention_ms, 1000);
    shoal_topic_info_free(info);
}

/* ------------------------------------------------------------------ fixture */

static int setup(void **state)
{
    (void)state;
    harness_watchdog(60, "test_retention");
    if (harness_daemon_start(&daemon_, "ret", "--log-level", "debug", NULL) < 0)
        return -1;
    return shoal_client_open(daemon_.socket, &client) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    shoal_client_close(client);
    client = NULL;
    harness_kill_children();
    harness_watchdog(0, NULL);
    return harness_daemon_cleanup(&daemon_);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_retention_bytes_keeps_disk_within_limit_plus_one_segment),
        T(test_retention_bytes_keeps_up_with_a_burst),
        T(test_retention_ms_deletes_old_segments_after_alter),
        T(test_retention_never_pulls_bytes_from_under_a_held_view),
        T(test_segment_lookups_follow_rolls_and_retention),
        T(test_readers_from_the_start_race_retention_without_errors),
        T(test_a_reader_overtaken_by_retention_is_told),
        T(test_retention_ms_empties_a_quiet_partition),
        T(test_segment_ms_rolls_a_quiet_segment),
        T(test_flush_messages_fsyncs_by_count),
        T(test_segment_ms_and_flush_ms_at_the_maximum_mean_never),
        T(test_alter_refuses_layout_unknown_and_bad_values_and_changes_nothing),
    };
#undef T
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
