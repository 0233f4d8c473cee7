/* test_flush.c - what the flusher makes durable for an ACKS_DISK acknowledgement.
 *
 * An ACKS_DISK send returns once the record's bytes are in its segment's .log (fdatasync)
 * and the segment file's directory entry is durable. The .index/.timeindex of the segment
 * being written are fsynced only when it is sealed: recovery rebuilds the last segment's
 * index from its log, so an acknowledgement does not wait for them. These tests take that
 * at its word: after SIGKILL and a lost shm (a reboot), the active segment's index files
 * are cut to nothing, as a power loss may leave writes that were never fsynced, and every
 * acknowledged record must still be read back, found by offset and by timestamp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "shoal.h"
#include "util.h"

#define TEST_TIMEOUT_S 60
#define SMALL_SEGMENT  (64ull << 10)
#define TS0            1700000000000LL
#define VALUE_BYTES    200  /* about 240 records per 64 KiB segment */
#define N_RECORDS      1500 /* six segments or so: five sealed, the last one active */
#define PER_BATCH      16
#define MAX_BASES      64

static shoal_topic_config_t topic_cfg(void)
{
    shoal_topic_config_t cfg;
    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = SMALL_SEGMENT;
    cfg.ring_slots = 4;
    cfg.max_record_bytes = (uint32_t)(SMALL_SEGMENT / 4);
    cfg.retention_ms = -1; /* the records carry 2023 timestamps: keep them */
    return cfg;
}

static void make_value(char *v, int64_t i)
{
    memset(v, 'v', VALUE_BYTES);
    snprintf(v, VALUE_BYTES, "rec-%" PRId64, i);
}

/* Records first..first+n-1 with ACKS_DISK, PER_BATCH per send; record i has timestamp
 * TS0 + i. */
static void send_acked_on_disk(shoal_client_t *c, const char *topic, int64_t first, int64_t n)
{
    static char values[PER_BATCH][VALUE_BYTES];
    shoal_message_t msgs[PER_BATCH];
    shoal_producer_options_t o;
    shoal_producer_t *p;

    shoal_producer_options_init(&o);
    o.acks = SHOAL_ACKS_DISK;
    assert_int_equal(shoal_producer_open(c, topic, &o, &p), 0);
    for (int64_t i = first; i < first + n; i += PER_BATCH) {
        size_t k = (size_t)(first + n - i < PER_BATCH ? first + n - i : PER_BATCH);
        memset(msgs, 0, sizeof(msgs));
        for (size_t j = 0; j < k; j++) {
            make_value(values[j], i + (int64_t)j);
            msgs[j].value = values[j];
            msgs[j].value_len = VALUE_BYTES;
            msgs[j].timestamp_ms = TS0 + i + (int64_t)j;
            msgs[j].partition = 0;
        }
        assert_int_equal(shoal_send_batch(p, msgs, k, NULL), 0);
    }
    shoal_producer_close(p);
}

static off_t file_bytes(const struct harness_daemon *d, const char *topic, int64_t base,
                        const char *ext)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s-0/%020" PRId64 "%s", d->data_dir, topic, base, ext);
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void cut_file(const struct harness_daemon *d, const char *topic, int64_t base,
                     const char *ext)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s-0/%020" PRId64 "%s", d->data_dir, topic, base, ext);
    assert_int_equal(truncate(path, 0), 0);
}

/* Every record 0..n-1 from offset 0, in order, with its value and timestamp. */
static void assert_reads_all(shoal_client_t *c, const char *topic, int64_t n)
{
    shoal_record_t recs[256];
    shoal_consumer_t *cons;
    char want[VALUE_BYTES];
    int64_t got = 0;

    assert_int_equal(shoal_consumer_open(c, NULL, &cons), 0);
    assert_int_equal(shoal_consumer_assign(cons, topic, NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(cons, topic, 0, SHOAL_SEEK_OFFSET, 0), 0);
    while (got < n) {
        int k = shoal_poll(cons, recs, 256, 2000);
        if (k <= 0)
            fail_msg("read stopped after %" PRId64 " of %" PRId64 ": %s (%s)", got, n,
                     shoal_err_name(k), shoal_errmsg());
        for (int j = 0; j < k; j++, got++) {
            make_value(want, got);
            assert_int_equal(recs[j].offset, got);
            assert_int_equal(recs[j].timestamp_ms, TS0 + got);
            assert_int_equal(recs[j].value_len, VALUE_BYTES);
            assert_memory_equal(recs[j].value, want, VALUE_BYTES);
        }
    }
    shoal_consumer_close(cons);
}

/* Seek by timestamp and by offset into the middle of a segment: the rebuilt index answers. */
static void assert_seeks(shoal_client_t *c, const char *topic, int64_t at)
{
    shoal_consumer_t *cons;
    shoal_record_t r;

    assert_int_equal(shoal_consumer_open(c, NULL, &cons), 0);
    assert_int_equal(shoal_consumer_assign(cons, topic, NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(cons, topic, 0, SHOAL_SEEK_TIMESTAMP, TS0 + at), 0);
    assert_int_equal(shoal_consumer_position(cons, topic, 0), at);
    assert_int_equal(shoal_poll(cons, &r, 1, 2000), 1);
    assert_int_equal(r.offset, at);
    assert_int_equal(shoal_consumer_seek(cons, topic, 0, SHOAL_SEEK_OFFSET, at + 7), 0);
    assert_int_equal(shoal_poll(cons, &r, 1, 2000), 1);
    assert_int_equal(r.offset, at + 7);
    shoal_consumer_close(cons);
}

/* ------------------------------------------------------------------ fixture */

static int setup(void **state)
{
    static struct harness_fixture f;
    *state = &f;
    return harness_fixture_start(&f, "tflush", TEST_TIMEOUT_S, "--log-level", "info", NULL);
}

static int teardown(void **state)
{
    return harness_fixture_stop(*state);
}

/* ------------------------------------------------------------------ tests */

INTEG_TEST(test_acks_disk_records_need_no_active_index_after_kill9_and_reboot)
{
    shoal_topic_config_t cfg = topic_cfg();
    int64_t bases[MAX_BASES], last;
    size_t n;

    assert_int_equal(shoal_topic_create(f->c, "acked", &cfg), 0);
    send_acked_on_disk(f->c, "acked", 0, N_RECORDS);

    /* Sealed segments have their index written out with them. */
    n = harness_segment_bases(&f->d, "acked", bases, MAX_BASES);
    assert_true(n >= 3);
    for (size_t i = 0; i + 1 < n; i++)
        assert_true(file_bytes(&f->d, "acked", bases[i], ".index") > 0);

    /* SIGKILL, lose shared memory and the active segment's (never fsynced) index. */
    last = bases[n - 1];
    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    harness_daemon_wipe_shm(&f->d);
    cut_file(&f->d, "acked", last, ".index");
    cut_file(&f->d, "acked", last, ".timeindex");
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    shoal_client_close(f->c);
    f->c = NULL;
    assert_int_equal(shoal_client_open(f->d.socket, &f->c), 0);

    assert_reads_all(f->c, "acked", N_RECORDS);
    assert_seeks(f->c, "acked", N_RECORDS - 40);                 /* in the last segment */
    assert_seeks(f->c, "acked", bases[1] + 30);                  /* in a sealed one */
    assert_true(file_bytes(&f->d, "acked", last, ".index") > 0); /* rebuilt at start */

    /* Appends continue after the recovered end and are acknowledged on disk again. */
    send_acked_on_disk(f->c, "acked", N_RECORDS, 100);
    assert_reads_all(f->c, "acked", N_RECORDS + 100);
}

/* Records a daemon wrote to the .log and had not fsynced (flush.ms not due) when it was
 * SIGKILLed sit in the page cache. The restarted daemon took the end of the .log as
 * flushed without syncing it: ACKS_DISK waits said "on disk" at once, and a power loss
 * then lost them (an exploratory session saw an empty .log on the device). It writes the
 * data directory out before recovery now, and says so. */
INTEG_TEST(test_records_written_but_not_synced_before_a_kill9_are_synced_at_start)
{
    shoal_topic_config_t cfg = topic_cfg();
    shoal_message_t m[50];
    shoal_topic_info_t *info;
    shoal_producer_t *p;
    int64_t flushed = -1;

    /* One batch, so the daemon writes all 50 records to the .log at once: records it had
     * not written when killed would stay in the ring, unflushed, and fail the count. */
    for (int i = 0; i < 50; i++)
        m[i] = (shoal_message_t){.value = "unsynced", .value_len = 8, .partition = 0};
    cfg.flush_ms = 600000; /* written at once, fsynced only in ten minutes */
    assert_int_equal(shoal_topic_create(f->c, "unsynced", &cfg), 0);
    assert_int_equal(shoal_producer_open(f->c, "unsynced", NULL, &p), 0);
    assert_int_equal(shoal_send_batch(p, m, 50, NULL), 0);
    shoal_producer_close(p);
    for (int i = 0; i < 500 && file_bytes(&f->d, "unsynced", 0, ".log") <= 0; i++)
        usleep(10000);
    assert_true(file_bytes(&f->d, "unsynced", 0, ".log") > 0);
    assert_int_equal(shoal_topic_describe(f->c, "unsynced", &info), 0);
    assert_int_equal(info->partitions[0].flushed_offset, 0); /* written, not synced */
    shoal_topic_info_free(info);

    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_true(harness_daemon_log_contains(&f->d, "synced the data directory's filesystem "
                                                   "before recovery"));
    shoal_client_close(f->c);
    assert_int_equal(shoal_client_open(f->d.socket, &f->c), 0);
    assert_int_equal(shoal_topic_describe(f->c, "unsynced", &info), 0);
    flushed = info->partitions[0].flushed_offset;
    shoal_topic_info_free(info);
    assert_int_equal(flushed, 50);
}

/* Many producers waiting for the disk while records stream in still share fsyncs, and
 * each one's records are on disk when its send returns. */
#define STREAMERS     4
#define STREAM_BATCHS 200

static int stream_acked(void *arg)
{
    static char value[1024];
    shoal_message_t msgs[64];
    shoal_producer_options_t o;
    shoal_producer_t *p;
    shoal_client_t *c;
    shoal_topic_info_t *info;
    shoal_ack_t ack;

    memset(value, 's', sizeof(value));
    for (int j = 0; j < 64; j++)
        msgs[j] = (shoal_message_t){.value = value, .value_len = sizeof(value), .partition = 0};
    shoal_producer_options_init(&o);
    o.acks = SHOAL_ACKS_DISK;
    if (shoal_client_open(arg, &c) < 0 || shoal_producer_open(c, "stream", &o, &p) < 0)
        return 2;
    for (int i = 0; i < STREAM_BATCHS; i++) {
        if (shoal_send_batch(p, msgs, 64, &ack) != 0)
            return 1;
        if (shoal_topic_describe(c, "stream", &info) < 0)
            return 3;
        if (info->partitions[0].flushed_offset < ack.offset + 64)
            return 4; /* acknowledged before it was on disk */
        shoal_topic_info_free(info);
    }
    return 0;
}

/* Pages of a partition-0 segment file that sit in the page cache. */
static size_t cached_pages(const struct harness_daemon *d, const char *topic, int64_t base)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned char vec[(SMALL_SEGMENT + 4096) / 4096];
    char path[PATH_MAX];
    struct stat st;
    size_t pages, n = 0;
    void *map;
    int fd;

    snprintf(path, sizeof(path), "%s/%s-0/%020" PRId64 ".log", d->data_dir, topic, base);
    assert_true((fd = open(path, O_RDONLY)) >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    pages = ((size_t)st.st_size + (size_t)page - 1) / (size_t)page;
    assert_true(pages > 8 && pages <= sizeof(vec));
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mincore(map, (size_t)st.st_size, vec), 0);
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    munmap(map, (size_t)st.st_size);
    return n;
}

/* flush.drop.cache (default 1): once fsynced, a sealed segment leaves the page cache; with
 * 0 it stays there, as with Kafka. */
INTEG_TEST(test_synced_segments_leave_the_page_cache_unless_told_to_keep_them)
{
    shoal_topic_config_t cfg = topic_cfg();
    struct harness_daemon keep;
    shoal_client_t *c;
    int64_t bases[MAX_BASES];

    assert_int_equal(shoal_topic_create(f->c, "dropped", &cfg), 0);
    send_acked_on_disk(f->c, "dropped", 0, N_RECORDS);
    assert_true(harness_segment_bases(&f->d, "dropped", bases, MAX_BASES) >= 3);
    assert_int_equal(cached_pages(&f->d, "dropped", bases[0]), 0);

    assert_int_equal(harness_daemon_start(&keep, "tkeep", "--flush-drop-cache", "0", NULL), 0);
    assert_int_equal(shoal_client_open(keep.socket, &c), 0);
    assert_int_equal(shoal_topic_create(c, "kept", &cfg), 0);
    send_acked_on_disk(c, "kept", 0, N_RECORDS);
    assert_true(harness_segment_bases(&keep, "kept", bases, MAX_BASES) >= 3);
    assert_true(cached_pages(&keep, "kept", bases[0]) > SMALL_SEGMENT / 4096 / 2);
    shoal_client_close(c);
    assert_int_equal(harness_daemon_cleanup(&keep), 0);
}

INTEG_TEST(test_streaming_acks_disk_producers_see_their_records_flushed)
{
    shoal_topic_config_t cfg = topic_cfg();
    pid_t kids[STREAMERS];
    shoal_topic_info_t *info;

    cfg.segment_bytes = 1ull << 20; /* 52 MB through a 4 MiB ring */
    cfg.max_record_bytes = 4096;
    assert_int_equal(shoal_topic_create(f->c, "stream", &cfg), 0);
    for (int i = 0; i < STREAMERS; i++)
        assert_true((kids[i] = harness_fork(stream_acked, f->d.socket, TEST_TIMEOUT_S)) > 0);
    for (int i = 0; i < STREAMERS; i++)
        assert_int_equal(harness_wait(kids[i], TEST_TIMEOUT_S * 1000), 0);
    assert_int_equal(shoal_topic_describe(f->c, "stream", &info), 0);
    assert_int_equal(info->partitions[0].log_end_offset, STREAMERS * STREAM_BATCHS * 64);
    assert_int_equal(info->partitions[0].flushed_offset, STREAMERS * STREAM_BATCHS * 64);
    shoal_topic_info_free(info);
}

/* ------------------------------------------------------------------ an idle daemon */

#define IDLE_SAMPLE_MS   2000
#define IDLE_WAKES_MAX   20 /* in IDLE_SAMPLE_MS: ~4 expected, ~400 with a 5 ms tick */
#define WAKE_ROUNDS      4
#define WAKE_COPY_MAX_MS 250 /* the flusher's idle sleep is 1000 ms */
#define QUIET_MS         150 /* past the 50 ms after its last write that a partition is busy */
#define MANY_PARTITIONS  100 /* 201 words to wait on: two groups */

static int64_t mono_ms(void)
{
    return shoal__mono_ns() / 1000000;
}

/* Context switches of every thread of pid so far: each is a wake-up (or a preemption). */
static long context_switches(pid_t pid)
{
    char path[PATH_MAX], line[128];
    struct dirent *e;
    DIR *dir;
    long n = 0, v;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    assert_non_null(dir = opendir(path));
    while ((e = readdir(dir))) {
        FILE *fp;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, e->d_name);
        if (!(fp = fopen(path, "r")))
            continue; /* the thread exited */
        while (fgets(line, sizeof(line), fp))
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1 ||
                sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1)
                n += v;
        fclose(fp);
    }
    closedir(dir);
    return n;
}

/* Wait until partition 0's every record is fsynced; returns the log end. */
static int64_t wait_all_flushed(shoal_client_t *c, const char *topic)
{
    shoal_partition_stats_t st;
    int64_t deadline = mono_ms() + 10000;
    do {
        assert_int_equal(shoal_partition_stats(c, topic, 0, &st), 0);
        if (st.flushed_offset == st.log_end_offset)
            return st.log_end_offset;
        usleep(1000);
    } while (mono_ms() < deadline);
    fail_msg("flushed offset %" PRId64 " never reached %" PRId64, st.flushed_offset,
             st.log_end_offset);
    return -1;
}

/* An idle daemon (nothing to write, no group members) sleeps instead of ticking every
 * flush.interval.ms, and the next append to `topic` still reaches the disk at once: the
 * flusher sleeps on the partitions like a consumer, woken by the first append. Its sleep is
 * not reported as a waiting reader. */
static void idle_sleeps_until_the_next_append(struct harness_fixture *f, const char *topic)
{
    shoal_topic_config_t cfg = topic_cfg();
    shoal_partition_stats_t st;
    shoal_producer_t *p;
    shoal_message_t m = {.value = "idle", .value_len = 4, .partition = 0};
    long before;

    assert_int_equal(shoal_topic_create(f->c, topic, &cfg), 0);
    assert_int_equal(shoal_producer_open(f->c, topic, NULL, &p), 0);
    assert_int_equal(shoal_send(p, &m, NULL), 0);
    wait_all_flushed(f->c, topic);
    usleep(QUIET_MS * 1000);
    before = context_switches(f->d.pid);
    usleep(IDLE_SAMPLE_MS * 1000);
    if (context_switches(f->d.pid) - before > IDLE_WAKES_MAX)
        fail_msg("idle shoald woke %ld times in %d ms", context_switches(f->d.pid) - before,
                 IDLE_SAMPLE_MS);
    assert_int_equal(shoal_partition_stats(f->c, topic, 0, &st), 0);
    assert_int_equal(st.waiters, 0);

    for (int round = 0; round < WAKE_ROUNDS; round++) {
        off_t size = file_bytes(&f->d, topic, 0, ".log");
        int64_t sent;
        wait_all_flushed(f->c, topic);
        usleep(QUIET_MS * 1000); /* the flusher finds it idle and sleeps */
        sent = mono_ms();
        assert_int_equal(shoal_send(p, &m, NULL), 0);
        while (file_bytes(&f->d, topic, 0, ".log") == size && mono_ms() - sent < 5000)
            usleep(500);
        if (mono_ms() - sent > WAKE_COPY_MAX_MS)
            fail_msg("round %d: the append reached the .log after %" PRId64 " ms", round,
                     mono_ms() - sent);
    }
    shoal_producer_close(p);
}

INTEG_TEST(test_idle_daemon_sleeps_until_the_next_append)
{
    idle_sleeps_until_the_next_append(f, "idle");
}

/* Past 63 disk partitions their words no longer fit one futex_waitv: helper threads wait
 * on the rest (waitset.h). "a-many" comes first in the flusher's order, so the words of
 * "idle" are a helper's to watch; the helpers' own wake-ups count as the daemon's. */
INTEG_TEST(test_idle_daemon_with_many_disk_partitions_sleeps_until_the_next_append)
{
    shoal_topic_config_t cfg = topic_cfg();

    cfg.partitions = MANY_PARTITIONS;
    assert_int_equal(shoal_topic_create(f->c, "a-many", &cfg), 0);
    idle_sleeps_until_the_next_append(f, "idle");
}

/* Records written but not yet fsynced wait for flush.ms without the flusher ticking: it
 * sleeps until that deadline, and fsyncs them on time. */
#define SYNC_FLUSH_MS  1500
#define SYNC_SAMPLE_MS 700
#define SYNC_WAKES_MAX 10  /* in SYNC_SAMPLE_MS: ~140 with a 5 ms tick */
#define SYNC_LATE_MS   500 /* allowed past the deadline */

INTEG_TEST(test_flusher_sleeps_until_the_flush_ms_deadline)
{
    shoal_topic_config_t cfg = topic_cfg();
    shoal_partition_stats_t st;
    shoal_producer_t *p;
    shoal_message_t m = {.value = "sync", .value_len = 4, .partition = 0};
    int64_t synced_at;
    off_t size;
    long before, woke;

    cfg.flush_ms = SYNC_FLUSH_MS;
    assert_int_equal(shoal_topic_create(f->c, "sync", &cfg), 0);
    assert_int_equal(shoal_producer_open(f->c, "sync", NULL, &p), 0);
    assert_int_equal(shoal_send(p, &m, NULL), 0); /* the first sync is due at once */
    wait_all_flushed(f->c, "sync");
    synced_at = mono_ms();
    size = file_bytes(&f->d, "sync", 0, ".log");
    assert_int_equal(shoal_send(p, &m, NULL), 0); /* written now, fsynced by the deadline */
    while (file_bytes(&f->d, "sync", 0, ".log") == size && mono_ms() - synced_at < 5000)
        usleep(500);

    usleep(QUIET_MS * 1000);
    before = context_switches(f->d.pid);
    usleep(SYNC_SAMPLE_MS * 1000);
    woke = context_switches(f->d.pid) - before;
    assert_int_equal(shoal_partition_stats(f->c, "sync", 0, &st), 0);
    assert_int_equal(st.flushed_offset, 1); /* not fsynced early */
    if (woke > SYNC_WAKES_MAX)
        fail_msg("shoald woke %ld times in %d ms waiting for flush.ms", woke, SYNC_SAMPLE_MS);
    assert_int_equal(wait_all_flushed(f->c, "sync"), 2);
    if (mono_ms() - synced_at > SYNC_FLUSH_MS + SYNC_LATE_MS)
        fail_msg("fsynced %" PRId64 " ms after the previous sync; flush.ms is %d",
                 mono_ms() - synced_at, SYNC_FLUSH_MS);
    shoal_producer_close(p);
}

/* A steady trickle of appends keeps the flusher ticking rather than sleeping between
 * them: asleep, it would count as a reader asleep, and each append would pay a FUTEX_WAKE
 * system call (and bump the readers' wake-up word) to wake it for one record. */
#define TRICKLE_ROUNDS    200
#define TRICKLE_GAP_US    2000 /* longer than a pass, shorter than the 50 ms of quiet */
#define TRICKLE_WAKES_MAX 20   /* ~200 when the flusher sleeps between appends */

INTEG_TEST(test_a_trickle_of_appends_does_not_wake_the_flusher_each_time)
{
    shoal_topic_config_t cfg = topic_cfg();
    shoal_message_t m = {.value = "drip", .value_len = 4, .partition = 0};
    shoal_producer_t *p;
    uint32_t seq0, wakes;

    assert_int_equal(shoal_topic_create(f->c, "drip", &cfg), 0);
    assert_int_equal(shoal_producer_open(f->c, "drip", NULL, &p), 0);
    seq0 = harness_wake_seq(&f->d, "drip");
    for (int i = 0; i < TRICKLE_ROUNDS; i++) {
        assert_int_equal(shoal_send(p, &m, NULL), 0);
        usleep(TRICKLE_GAP_US);
    }
    wakes = harness_wake_seq(&f->d, "drip") - seq0;
    if (wakes > TRICKLE_WAKES_MAX)
        fail_msg("%d appends %d us apart woke the flusher %u times", TRICKLE_ROUNDS, TRICKLE_GAP_US,
                 wakes);
    assert_int_equal(wait_all_flushed(f->c, "drip"), TRICKLE_ROUNDS);
    shoal_producer_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_acks_disk_records_need_no_active_index_after_kill9_and_reboot),
        T(test_records_written_but_not_synced_before_a_kill9_are_synced_at_start),
        T(test_streaming_acks_disk_producers_see_their_records_flushed),
        T(test_synced_segments_leave_the_page_cache_unless_told_to_keep_them),
        T(test_idle_daemon_sleeps_until_the_next_append),
        T(test_idle_daemon_with_many_disk_partitions_sleeps_until_the_next_append),
        T(test_flusher_sleeps_until_the_flush_ms_deadline),
        T(test_a_trickle_of_appends_does_not_wake_the_flusher_each_time),
#undef T
    };
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
