/* test_compaction.c - cleanup.policy compact against a real shoald: the sealed segments
 * keep only the latest record of every key, old tombstones go, offsets never change, and
 * a daemon that dies in the middle of a rewrite (after .cleaned, after .swap) comes back
 * with the old segment or the new one, never a mix, and nothing lost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "record.h"
#include "segment.h"
#include "shoal.h"

#define SEGMENT      (64 << 10)
#define VALUE_BYTES  300
#define KEYS         50
#define ROUNDS       20 /* every key written this many times ... */
#define LATE_ROUNDS  10 /* ... then keys TOMB_NEW_END.. this many more, after the tombstones */
#define TOMB_OLD_END 5  /* k0..k4 get a tombstone an hour old: it goes */
#define TOMB_NEW_END 10 /* k5..k9 get a tombstone of now: it stays (delete.retention.ms) */
#define MORE_ROUNDS  8  /* produce_compacted_then_more(): the live keys again, this many times */
#define MAX_VERSIONS (ROUNDS + LATE_ROUNDS + MORE_ROUNDS + 1) /* and one for a late write */

/* test_last_file_is_never_compacted: the last key written this many more times (so the
 * last segment holds it twice), in a ring of more slots than it has segments. */
#define TAIL_VERSIONS   3
#define LAST_FILE_SLOTS 16

static struct harness_daemon daemon_;
static shoal_client_t *client;

/* What was written: the offset of every (key, version), and each key's tombstone. */
static int64_t offset_of[KEYS][MAX_VERSIONS];
static int versions[KEYS];
static int64_t tomb_offset[KEYS];

/* ------------------------------------------------------------------ helpers */

#define WAIT_UNTIL(cond, ms)                                                                       \
    do {                                                                                           \
        for (int w_ = 0; w_ < (ms) / 10 && !(cond); w_++)                                          \
            usleep(10000);                                                                         \
    } while (0)

/* Wait up to ms for text in the daemon's log; on a timeout, print the log and fail. */
static void wait_log(const char *text, int ms)
{
    WAIT_UNTIL(harness_daemon_log_contains(&daemon_, text), ms);
    if (!harness_daemon_log_contains(&daemon_, text))
        harness_daemon_print_log(&daemon_);
    assert_true(harness_daemon_log_contains(&daemon_, text));
}

static void create_topic_slots(const char *name, const char *policy, uint32_t slots)
{
    shoal_topic_config_t cfg;
    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = SEGMENT;
    cfg.ring_slots = slots;
    cfg.max_record_bytes = 4096;
    assert_int_equal(shoal_topic_config_set(&cfg, "cleanup.policy", policy), 0);
    assert_int_equal(shoal_topic_config_set(&cfg, "delete.retention.ms", "60000"), 0);
    assert_int_equal(shoal_topic_create(client, name, &cfg), 0);
}

static void create_topic(const char *name, const char *policy)
{
    create_topic_slots(name, policy, 2);
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

static void send_one(shoal_producer_t *p, int key, const char *value, int64_t ts, int64_t *off)
{
    char k[16];
    shoal_ack_t ack;
    shoal_message_t m = {.key = k,
                         .value = value,
                         .value_len = value ? VALUE_BYTES : 0,
                         .timestamp_ms = ts,
                         .partition = 0};
    m.key_len = (size_t)snprintf(k, sizeof(k), "k%d", key);
    assert_int_equal(shoal_send(p, &m, &ack), 0);
    *off = ack.offset;
}

static void send_version(shoal_producer_t *p, int key)
{
    char value[VALUE_BYTES];
    int v = versions[key]++;
    memset(value, '.', sizeof(value));
    snprintf(value, sizeof(value), "k%d v%d", key, v);
    send_one(p, key, value, 0, &offset_of[key][v]);
}

/* The workload: every key ROUNDS times, tombstones for k0..k9 (k0..k4 an hour old), then
 * the other keys LATE_ROUNDS more times so that the tombstones are in sealed segments. */
static int64_t produce_workload(const char *topic)
{
    int64_t hour_ago = (int64_t)time(NULL) * 1000 - 3600 * 1000;
    shoal_producer_t *p;

    memset(versions, 0, sizeof(versions));
    for (int k = 0; k < KEYS; k++)
        tomb_offset[k] = -1;
    assert_int_equal(shoal_producer_open(client, topic, NULL, &p), 0);
    for (int r = 0; r < ROUNDS; r++)
        for (int k = 0; k < KEYS; k++)
            send_version(p, k);
    for (int k = 0; k < TOMB_NEW_END; k++)
        send_one(p, k, NULL, k < TOMB_OLD_END ? hour_ago : 0, &tomb_offset[k]);
    for (int r = 0; r < LATE_ROUNDS; r++)
        for (int k = TOMB_NEW_END; k < KEYS; k++)
            send_version(p, k);
    shoal_producer_close(p);
    return KEYS * ROUNDS + TOMB_NEW_END + (KEYS - TOMB_NEW_END) * LATE_ROUNDS;
}

static int key_of(const shoal_record_t *r)
{
    assert_non_null(r->key);
    assert_true(r->key_len > 1 && ((const char *)r->key)[0] == 'k');
    return atoi((const char *)r->key + 1);
}

/* The record's offset is the one it was written at: its value names (key, version). */
static void check_record_offset(const shoal_record_t *r)
{
    int k = key_of(r), v;
    assert_true(k >= 0 && k < KEYS);
    if (r->value == NULL) {
        assert_int_equal(r->offset, tomb_offset[k]);
        return;
    }
    assert_int_equal(sscanf(r->value, "k%*d v%d", &v), 1);
    assert_true(v >= 0 && v < versions[k]);
    assert_int_equal(r->offset, offset_of[k][v]);
}

static void partition_dir(char *buf, size_t cap, const char *topic)
{
    snprintf(buf, cap, "%s/%s-0", daemon_.data_dir, topic);
}

/* The base of the segment being written: the largest <base>.log. */
static int64_t active_base(const char *topic)
{
    char dir[PATH_MAX];
    int64_t *bases, last;
    size_t n;
    partition_dir(dir, sizeof(dir), topic);
    assert_int_equal(segment_list(dir, &bases, &n), 0);
    assert_true(n > 0);
    last = bases[n - 1];
    free(bases);
    return last;
}

/* The size of every <base>.log of the partition. */
static uint64_t log_bytes(const char *topic)
{
    char dir[PATH_MAX], path[PATH_MAX];
    int64_t *bases;
    uint64_t sum = 0;
    size_t n;
    struct stat st;
    partition_dir(dir, sizeof(dir), topic);
    assert_int_equal(segment_list(dir, &bases, &n), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(segment_path(path, sizeof(path), dir, bases[i], ".log"), 0);
        assert_int_equal(stat(path, &st), 0);
        sum += (uint64_t)st.st_size;
    }
    free(bases);
    return sum;
}

/* What one segment file holds. */
struct file_stats {
    uint64_t records;
    bool dup_keys; /* some key appears twice */
    bool whole;    /* every batch parsed and had a good CRC */
    int64_t next;  /* the offset after its last batch */
    int64_t last[KEYS];
};

static int stats_batch(void *arg, uint64_t pos, const uint8_t *batch,
                       const record_batch_header_t *h)
{
    struct file_stats *fs = arg;
    record_iter_t it;
    shoal_record_t r;
    (void)pos;
    assert_int_equal(record_iter_init(&it, batch, h), 0);
    while (record_iter_next(&it, &r) == 1) {
        int k = key_of(&r);
        check_record_offset(&r);
        fs->dup_keys = fs->dup_keys || fs->last[k] >= 0;
        fs->last[k] = r.offset;
        fs->records++;
    }
    return 0;
}

/* Maps a segment file read-only (*data NULL when it is empty); false when the file is gone,
 * as a file listed while the daemon compacts or merges may be by the time it is opened. */
static bool map_file(const char *path, void **data, size_t *size)
{
    struct stat st;
    int fd = open(path, O_RDONLY);

    *data = NULL;
    *size = 0;
    if (fd < 0 && errno == ENOENT)
        return false;
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    *size = (size_t)st.st_size;
    if (*size > 0)
        assert_true((*data = mmap(NULL, *size, PROT_READ, MAP_SHARED, fd, 0)) != MAP_FAILED);
    close(fd);
    return true;
}

/* What a segment file holds; false when it is gone. */
static bool file_stats(const char *path, int64_t base, struct file_stats *fs)
{
    segment_scan_t scan;
    void *data;
    size_t size;

    memset(fs, 0, sizeof(*fs));
    for (int k = 0; k < KEYS; k++)
        fs->last[k] = -1;
    if (!map_file(path, &data, &size))
        return false;
    assert_int_equal(segment_scan_bytes(data, size, base, true, stats_batch, fs, &scan), 0);
    fs->whole = scan.error == 0 && scan.valid_bytes == (uint64_t)size;
    fs->next = scan.next_offset;
    if (data)
        munmap(data, size);
    return true;
}

/* Whether the sealed segments on disk, together, hold each key at most once: 1 or 0, or -1
 * when a listed file went before it was read. */
static int sealed_segments_compacted_once(const char *topic)
{
    char dir[PATH_MAX], path[PATH_MAX];
    int64_t *bases;
    size_t n;
    bool ok = true, gone = false, seen[KEYS] = {0};
    partition_dir(dir, sizeof(dir), topic);
    assert_int_equal(segment_list(dir, &bases, &n), 0);
    for (size_t i = 0; i + 1 < n && ok && !gone; i++) {
        struct file_stats fs;
        assert_int_equal(segment_path(path, sizeof(path), dir, bases[i], ".log"), 0);
        gone = !file_stats(path, bases[i], &fs);
        ok = fs.whole && !fs.dup_keys;
        for (int k = 0; k < KEYS; k++) {
            ok = ok && !(seen[k] && fs.last[k] >= 0);
            seen[k] = seen[k] || fs.last[k] >= 0;
        }
    }
    free(bases);
    return gone ? -1 : ok;
}

static bool sealed_segments_compacted(const char *topic)
{
    int ok;
    while ((ok = sealed_segments_compacted_once(topic)) < 0) /* list again */
        ;
    return ok;
}

static int tombstones_batch(void *arg, uint64_t pos, const uint8_t *batch,
                            const record_batch_header_t *h)
{
    int *count = arg;
    record_iter_t it;
    shoal_record_t r;
    (void)pos;
    assert_int_equal(record_iter_init(&it, batch, h), 0);
    while (record_iter_next(&it, &r) == 1)
        *count += r.value == NULL;
    return 0;
}

/* How many tombstones the sealed segments hold, or -1 when a listed file went before it was
 * read. */
static int sealed_tombstones_once(const char *topic)
{
    char dir[PATH_MAX], path[PATH_MAX];
    int64_t *bases;
    size_t n;
    int count = 0;
    partition_dir(dir, sizeof(dir), topic);
    assert_int_equal(segment_list(dir, &bases, &n), 0);
    for (size_t i = 0; i + 1 < n && count >= 0; i++) {
        segment_scan_t scan;
        void *data;
        size_t size;
        assert_int_equal(segment_path(path, sizeof(path), dir, bases[i], ".log"), 0);
        if (!map_file(path, &data, &size)) {
            count = -1;
            break;
        }
        segment_scan_bytes(data, size, bases[i], false, tombstones_batch, &count, &scan);
        if (data)
            munmap(data, size);
    }
    free(bases);
    return count;
}

static int sealed_tombstones(const char *topic)
{
    int count;
    while ((count = sealed_tombstones_once(topic)) < 0) /* list again */
        ;
    return count;
}

/* Consume from the beginning to the end and check what compaction promises. */
static void check_consumed(const char *topic, bool compacted)
{
    int64_t end = describe0(topic).log_end_offset, prev = -1, active = active_base(topic);
    int64_t last[KEYS];
    bool last_is_tomb[KEYS] = {0};
    bool seen_below_active[KEYS] = {0};
    shoal_consumer_t *c;
    shoal_record_t r[64];
    int64_t got = 0;
    int n;

    for (int k = 0; k < KEYS; k++)
        last[k] = -1;
    assert_int_equal(shoal_consumer_open(client, NULL, &c), 0);
    assert_int_equal(shoal_consumer_assign(c, topic, NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(c, topic, 0, SHOAL_SEEK_BEGINNING, 0), 0);
    while (prev + 1 < end && (n = shoal_poll(c, r, 64, 2000)) > 0)
        for (int i = 0; i < n; i++) {
            int k = key_of(&r[i]);
            assert_true(r[i].offset > prev); /* strictly increasing, gaps allowed */
            prev = r[i].offset;
            check_record_offset(&r[i]);
            if (compacted && r[i].offset < active) { /* sealed: each key once */
                assert_false(seen_below_active[k]);
                seen_below_active[k] = true;
            }
            last[k] = r[i].offset;
            last_is_tomb[k] = r[i].value == NULL;
            got++;
        }
    shoal_consumer_close(c);
    assert_int_equal(prev, end - 1);          /* the last record is never compacted away */
    for (int k = TOMB_NEW_END; k < KEYS; k++) /* the latest value of every live key */
        assert_int_equal(last[k], offset_of[k][versions[k] - 1]);
    for (int k = TOMB_OLD_END; k < TOMB_NEW_END; k++) { /* recent tombstones stay */
        assert_int_equal(last[k], tomb_offset[k]);
        assert_true(last_is_tomb[k]);
    }
    for (int k = 0; k < TOMB_OLD_END; k++) /* old tombstones go, with what they deleted */
        if (compacted)
            assert_int_equal(last[k], -1);
        else
            assert_true(last[k] == -1 || (last[k] == tomb_offset[k] && last_is_tomb[k]));
    if (compacted)
        assert_true(got < end); /* gaps */
}

/* The one file in the partition's directory ending in ext: its path and base. */
static bool find_file(const char *topic, const char *ext, char *path, size_t cap, int64_t *base)
{
    char dir[PATH_MAX];
    struct dirent *e;
    DIR *d;
    bool found = false;
    partition_dir(dir, sizeof(dir), topic);
    assert_non_null(d = opendir(dir));
    while ((e = readdir(d)) && !found) {
        size_t len = strlen(e->d_name);
        if (len > strlen(ext) && !strcmp(e->d_name + len - strlen(ext), ext)) {
            assert_true(snprintf(path, cap, "%s/%s", dir, e->d_name) < (int)cap);
            *base = strtoll(e->d_name, NULL, 10);
            found = true;
        }
    }
    closedir(d);
    return found;
}

/* ------------------------------------------------------------------ tests */

static void test_compaction_keeps_latest_per_key_and_offsets(void **state)
{
    shoal_partition_info_t after;
    int64_t total;
    (void)state;

    create_topic("cp", "compact");
    total = produce_workload("cp");
    WAIT_UNTIL(describe0("cp").flushed_offset == total, 5000);
    assert_int_equal(describe0("cp").log_end_offset, total);
    WAIT_UNTIL(sealed_segments_compacted("cp"), 15000);
    if (!sealed_segments_compacted("cp"))
        harness_daemon_print_log(&daemon_);
    assert_true(sealed_segments_compacted("cp"));
    assert_true(harness_daemon_log_contains(&daemon_, "compacted segment"));
    after = describe0("cp");
    assert_int_equal(after.log_start_offset, 0); /* the log start does not move */
    assert_int_equal(after.log_end_offset, total);
    /* The accounting follows the files, which shrank (a run may still be finishing). */
    WAIT_UNTIL(describe0("cp").disk_bytes == log_bytes("cp"), 5000);
    after = describe0("cp");
    assert_int_equal(after.disk_bytes, log_bytes("cp"));
    assert_true(after.disk_bytes < (uint64_t)total * VALUE_BYTES / 2);
    check_consumed("cp", true);
    /* Reading from an offset in a gap gives the next record that exists. */
    {
        shoal_consumer_t *c;
        shoal_record_t r;
        int64_t gap = offset_of[KEYS - 1][0]; /* superseded long ago */
        assert_int_equal(shoal_consumer_open(client, NULL, &c), 0);
        assert_int_equal(shoal_consumer_assign(c, "cp", NULL, 0), 0);
        assert_int_equal(shoal_consumer_seek(c, "cp", 0, SHOAL_SEEK_OFFSET, gap), 0);
        assert_int_equal(shoal_poll(c, &r, 1, 2000), 1);
        assert_true(r.offset > gap);
        check_record_offset(&r);
        shoal_consumer_close(c);
    }
    /* A restart keeps it all (indexes of the rewritten segments are sound). */
    shoal_client_close(client);
    assert_int_equal(harness_daemon_stop(&daemon_), 0);
    assert_int_equal(harness_daemon_restart(&daemon_), 0);
    assert_int_equal(shoal_client_open(daemon_.socket, &client), 0);
    check_consumed("cp", true);
}

static void test_delete_policy_does_not_compact(void **state)
{
    int64_t total;
    (void)state;

    create_topic("dp", "delete");
    total = produce_workload("dp");
    WAIT_UNTIL(describe0("dp").flushed_offset == total, 5000);
    usleep(2500000); /* more than a cleaner interval */
    assert_false(sealed_segments_compacted("dp"));
    check_consumed("dp", false);
}

static void test_compact_and_delete_together(void **state)
{
    static const char *const names[] = {"retention.bytes"};
    static const char *const values[] = {"1K"};
    shoal_partition_info_t pi;
    int64_t total, prev = -1;
    shoal_consumer_t *c;
    shoal_record_t r[64];
    int n;
    (void)state;

    create_topic("cd", "compact,delete");
    total = produce_workload("cd");
    WAIT_UNTIL(describe0("cd").flushed_offset == total, 5000);
    WAIT_UNTIL(sealed_segments_compacted("cd"), 15000);
    assert_true(sealed_segments_compacted("cd"));
    /* Both policies: retention.bytes (default: none) then deletes the oldest compacted
     * segments, and what is left reads on from the new log start. */
    assert_int_equal(describe0("cd").log_start_offset, 0);
    assert_int_equal(shoal_topic_alter(client, "cd", names, values, 1), 0);
    WAIT_UNTIL(describe0("cd").log_start_offset > 0, 5000);
    pi = describe0("cd");
    assert_true(pi.log_start_offset > 0);
    assert_int_equal(pi.log_end_offset, total);
    assert_int_equal(shoal_consumer_open(client, NULL, &c), 0);
    assert_int_equal(shoal_consumer_assign(c, "cd", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(c, "cd", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    while (prev + 1 < total && (n = shoal_poll(c, r, 64, 2000)) > 0)
        for (int i = 0; i < n; i++) {
            assert_true(r[i].offset > prev && r[i].offset >= pi.log_start_offset);
            check_record_offset(&r[i]);
            prev = r[i].offset;
        }
    assert_int_equal(prev, total - 1);
    shoal_consumer_close(c);
}

/* After a segment.ms roll the segment being written has no file yet, so the last file on
 * disk is a sealed segment whose slot may still hold its uncompacted bytes; a restarted
 * daemon continues that file from its length. The cleaner must leave it alone.
 *
 * Each step is made certain rather than left to timing:
 *  - the last file holds a key twice (TAIL_VERSIONS), so a cleaner that looked at it would
 *    rewrite it (a file with nothing to drop is left alone whatever the guard says);
 *  - the topic starts with cleanup.policy=delete and turns to compact only after the roll
 *    is logged: the alter waits for the flusher's pass (registry lock), and the next pass
 *    moves the flusher off the rolled slot before the first cleaner run, so that run is
 *    the one that sees the rolled file last on disk with no file after it;
 *  - that run compacts the file before the last one, whose log line says it has run (the
 *    shutdown joins the flusher, so a run under way finishes before the restart);
 *  - no slot has been reused (fewer segments than ring.slots), so the re-attached ring
 *    has the rolled segment's slot before the new one's and recovery continues that file. */
static void test_last_file_is_never_compacted(void **state)
{
    static const char *const roll_names[] = {"segment.ms"};
    static const char *const roll_values[] = {"1000"};
    static const char *const policy_names[] = {"cleanup.policy"};
    static const char *const policy_values[] = {"compact"};
    char dir[PATH_MAX], path[PATH_MAX], last_path[PATH_MAX], needle[64];
    struct file_stats before, after;
    int64_t total, *bases, last;
    shoal_producer_t *p;
    size_t n;
    (void)state;

    create_topic_slots("rl", "delete", LAST_FILE_SLOTS);
    total = produce_workload("rl");
    assert_int_equal(shoal_producer_open(client, "rl", NULL, &p), 0);
    for (int i = 0; i < TAIL_VERSIONS; i++)
        send_version(p, KEYS - 1);
    shoal_producer_close(p);
    total += TAIL_VERSIONS;
    WAIT_UNTIL(describe0("rl").flushed_offset == total, 5000);
    assert_int_equal(describe0("rl").flushed_offset, total);
    partition_dir(dir, sizeof(dir), "rl");
    assert_int_equal(segment_list(dir, &bases, &n), 0);
    assert_true(n >= 2 && n < LAST_FILE_SLOTS);
    last = bases[n - 1];
    snprintf(needle, sizeof(needle), "rl-0: compacted segment");
    free(bases);
    assert_int_equal(segment_path(last_path, sizeof(last_path), dir, last, ".log"), 0);
    assert_true(file_stats(last_path, last, &before));
    assert_true(before.whole && before.dup_keys); /* something for a cleaner to drop */

    assert_int_equal(shoal_topic_alter(client, "rl", roll_names, roll_values, 1), 0);
    wait_log("rolled the active segment", 5000);
    assert_int_equal(active_base("rl"), last); /* the new segment has no file */
    assert_int_equal(shoal_topic_alter(client, "rl", policy_names, policy_values, 1), 0);
    wait_log(needle, 5000);
    shoal_client_close(client);
    client = NULL;
    assert_int_equal(harness_daemon_stop(&daemon_), 0);

    /* The run compacted the segments before it and left the last file as it was. */
    assert_int_equal(active_base("rl"), last);
    assert_true(file_stats(last_path, last, &after));
    assert_true(after.whole && after.dup_keys);
    assert_int_equal(after.records, before.records);
    assert_int_equal(after.next, before.next);

    /* Recovery re-attaches the ring and continues the last file from its length; a record
     * written after it goes to a new segment. */
    assert_int_equal(harness_daemon_restart(&daemon_), 0);
    assert_true(harness_daemon_log_contains(&daemon_, "(1 shared ring re-attached, 0 built anew)"));
    assert_int_equal(shoal_client_open(daemon_.socket, &client), 0);
    assert_int_equal(shoal_producer_open(client, "rl", NULL, &p), 0);
    send_version(p, KEYS - 1);
    shoal_producer_close(p);
    total++;
    WAIT_UNTIL(describe0("rl").flushed_offset == total, 5000);
    /* Every segment is whole (good CRCs, offsets increasing, no mixed bytes) and they
     * follow one another; then everything reads back as written. */
    assert_int_equal(segment_list(dir, &bases, &n), 0);
    for (size_t i = 0; i < n; i++) {
        struct file_stats fs;
        assert_int_equal(segment_path(path, sizeof(path), dir, bases[i], ".log"), 0);
        assert_true(file_stats(path, bases[i], &fs));
        assert_true(fs.whole);
        assert_true(i + 1 == n || fs.next == bases[i + 1]);
    }
    assert_true(bases[n - 1] > last);
    free(bases);
    assert_int_equal(describe0("rl").flushed_offset, total);
    check_consumed("rl", false);
}

static void test_tombstones_go_when_delete_retention_passes(void **state)
{
    static const char *const names[] = {"delete.retention.ms"};
    static const char *const values[] = {"1000"};
    int64_t total;
    (void)state;

    create_topic("te", "compact");
    total = produce_workload("te");
    WAIT_UNTIL(describe0("te").flushed_offset == total, 5000);
    WAIT_UNTIL(sealed_segments_compacted("te"), 15000);
    assert_int_equal(sealed_tombstones("te"), TOMB_NEW_END - TOMB_OLD_END);
    /* Shorter delete.retention.ms: the recent tombstones are now old enough, and go without
     * any new write. */
    assert_int_equal(shoal_topic_alter(client, "te", names, values, 1), 0);
    WAIT_UNTIL(sealed_tombstones("te") == 0, 15000);
    assert_int_equal(sealed_tombstones("te"), 0);
    assert_true(sealed_segments_compacted("te"));
}

static void test_a_held_view_survives_the_rewrite(void **state)
{
    static const char *const names[] = {"cleanup.policy"};
    static const char *const values[] = {"compact"};
    char copy[8][VALUE_BYTES];
    shoal_consumer_t *c;
    shoal_record_t r[8];
    int64_t total, prev;
    int n;
    (void)state;

    create_topic("hv", "delete");
    total = produce_workload("hv");
    WAIT_UNTIL(describe0("hv").flushed_offset == total, 5000);
    assert_int_equal(shoal_consumer_open(client, NULL, &c), 0);
    assert_int_equal(shoal_consumer_assign(c, "hv", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(c, "hv", 0, SHOAL_SEEK_OFFSET, 0), 0);
    n = shoal_poll(c, r, 8, 2000); /* from the first disk segment, about to be rewritten */
    assert_int_equal(n, 8);
    for (int i = 0; i < n; i++)
        memcpy(copy[i], r[i].value, VALUE_BYTES);
    assert_int_equal(shoal_topic_alter(client, "hv", names, values, 1), 0);
    WAIT_UNTIL(sealed_segments_compacted("hv"), 15000);
    assert_true(sealed_segments_compacted("hv"));
    for (int i = 0; i < n; i++) /* the views still read the old segment's bytes */
        assert_memory_equal(r[i].value, copy[i], VALUE_BYTES);
    /* Polling goes on: through the old mapping, then the rewritten segments. */
    prev = r[n - 1].offset;
    while (prev + 1 < total && (n = shoal_poll(c, r, 8, 2000)) > 0)
        for (int i = 0; i < n; i++) {
            assert_true(r[i].offset > prev);
            check_record_offset(&r[i]);
            prev = r[i].offset;
        }
    assert_int_equal(prev, total - 1);
    shoal_consumer_close(c);
}

/* Start the stopped daemon again with SHOALD_TEST_COMPACT_CRASH=point (read at its first
 * compaction run), the test's own environment left as it was. */
static void restart_with_crash_point(const char *point)
{
    setenv("SHOALD_TEST_COMPACT_CRASH", point, 1);
    assert_int_equal(harness_daemon_restart(&daemon_), 0);
    unsetenv("SHOALD_TEST_COMPACT_CRASH");
}

/* Produce with compaction off, turn it on with the crash hook armed, and check the files
 * the dead daemon left; then restart and check everything reads back. */
static void crash_during_compaction(const char *topic, const char *point, const char *ext)
{
    static const char *const names[] = {"cleanup.policy"};
    static const char *const values[] = {"compact"};
    char path[PATH_MAX], log_path[PATH_MAX], dir[PATH_MAX];
    struct file_stats old_fs, new_fs;
    int64_t total, base = -1;

    create_topic(topic, "delete");
    total = produce_workload(topic);
    WAIT_UNTIL(describe0(topic).flushed_offset == total, 5000);
    /* Restart the daemon with the hook armed (the environment is read at the first run). */
    shoal_client_close(client);
    assert_int_equal(harness_daemon_stop(&daemon_), 0);
    restart_with_crash_point(point);
    assert_int_equal(shoal_client_open(daemon_.socket, &client), 0);
    assert_int_equal(shoal_topic_alter(client, topic, names, values, 1), 0);
    shoal_client_close(client);
    client = NULL;
    assert_int_equal(harness_daemon_wait_exit(&daemon_, 10000), 99);
    assert_true(harness_daemon_log_contains(&daemon_, "compaction crash point"));

    /* The dead daemon left the old segment whole beside the rewrite. */
    assert_true(find_file(topic, ext, path, sizeof(path), &base));
    partition_dir(dir, sizeof(dir), topic);
    assert_int_equal(segment_path(log_path, sizeof(log_path), dir, base, ".log"), 0);
    assert_true(file_stats(log_path, base, &old_fs));
    assert_true(file_stats(path, base, &new_fs));
    assert_true(old_fs.whole && old_fs.dup_keys);
    assert_true(new_fs.whole && !new_fs.dup_keys);
    assert_true(new_fs.records < old_fs.records);
    assert_int_equal(new_fs.next, old_fs.next); /* the same offset range */

    assert_int_equal(harness_daemon_restart(&daemon_), 0);
    assert_int_equal(shoal_client_open(daemon_.socket, &client), 0);
    /* (The restarted cleaner may already write a new .cleaned: the log says what start-up
     * did with the old one.) */
    if (!strcmp(point, "swap")) {
        /* The finished rewrite was put in place before anything read the partition. */
        struct file_stats now_fs;
        assert_true(harness_daemon_log_contains(&daemon_, "completed the compaction of segment"));
        assert_true(file_stats(log_path, base, &now_fs));
        assert_int_equal(now_fs.records, new_fs.records);
    } else {
        assert_true(harness_daemon_log_contains(&daemon_, "dropped an unfinished compaction"));
    }
    check_consumed(topic, false); /* consumable, offsets as written, nothing lost */
    /* The restarted daemon compacts everything. */
    WAIT_UNTIL(sealed_segments_compacted(topic), 15000);
    assert_true(sealed_segments_compacted(topic));
    check_consumed(topic, true);
}

static void test_crash_after_cleaned_keeps_the_old_segment(void **state)
{
    (void)state;
    crash_during_compaction("cc", "cleaned", ".log.cleaned");
}

static void test_crash_after_swap_completes_the_new_segment(void **state)
{
    (void)state;
    crash_during_compaction("cs", "swap", ".log.swap");
}

/* How many segment files the partition has. */
static size_t segment_count(const char *topic)
{
    char dir[PATH_MAX];
    int64_t *bases;
    size_t n;
    partition_dir(dir, sizeof(dir), topic);
    assert_int_equal(segment_list(dir, &bases, &n), 0);
    free(bases);
    return n;
}

/* A compacted topic's workload, compacted; then its live keys written again, which seals
 * more segments (a run of the cleaner each). */
static void produce_compacted_then_more(const char *topic)
{
    int64_t total;
    shoal_producer_t *p;

    create_topic(topic, "compact");
    total = produce_workload(topic);
    WAIT_UNTIL(describe0(topic).flushed_offset == total, 5000);
    WAIT_UNTIL(sealed_segments_compacted(topic), 15000);
    assert_true(sealed_segments_compacted(topic));
    assert_int_equal(shoal_producer_open(client, topic, NULL, &p), 0);
    for (int r = 0; r < MORE_ROUNDS; r++)
        for (int k = TOMB_NEW_END; k < KEYS; k++)
            send_version(p, k);
    shoal_producer_close(p);
    total += MORE_ROUNDS * (KEYS - TOMB_NEW_END);
    WAIT_UNTIL(describe0(topic).flushed_offset == total, 5000);
}

/* Compacted segments shrink; the cleaner merges small neighbours into one (as Kafka's groups
 * them), up to segment.bytes, so a compacted topic does not end up with a file for every
 * segment it ever rolled. Offsets and the latest value of every key stay, across a restart. */
static void test_small_compacted_segments_are_merged(void **state)
{
    size_t before;
    (void)state;

    produce_compacted_then_more("mg");
    before = segment_count("mg");
    wait_log("(merged)", 15000);
    assert_true(harness_daemon_log_contains(&daemon_, "mg-0: compacted segment 0 and the"));
    WAIT_UNTIL(sealed_segments_compacted("mg"), 15000);
    assert_true(segment_count("mg") < before);
    assert_int_equal(describe0("mg").log_start_offset, 0);
    check_consumed("mg", true);
    shoal_client_close(client);
    assert_int_equal(harness_daemon_stop(&daemon_), 0);
    assert_int_equal(harness_daemon_restart(&daemon_), 0);
    assert_int_equal(shoal_client_open(daemon_.socket, &client), 0);
    check_consumed("mg", true);
}

/* A compacted topic that goes quiet merges what it compacted without waiting for another
 * segment to be sealed: the run after one that rewrote segments merges them. */
static void test_a_quiet_compacted_topic_merges_its_segments(void **state)
{
    int64_t total;
    (void)state;

    create_topic("qm", "compact");
    total = produce_workload("qm");
    WAIT_UNTIL(describe0("qm").flushed_offset == total, 5000);
    wait_log("qm-0: compacted segment 0 and the", 15000);
    WAIT_UNTIL(sealed_segments_compacted("qm"), 15000); /* the last ones may come later */
    assert_true(sealed_segments_compacted("qm"));
    check_consumed("qm", true);
}

/* A daemon that dies after deleting a segment merged into a .swap, before the .swap takes
 * the .log's place: the restart completes the merge (the .swap holds the deleted segment's
 * records) and nothing is lost. */
static void test_crash_in_a_merge_completes_it(void **state)
{
    char path[PATH_MAX];
    int64_t base = -1;
    size_t before;
    (void)state;

    produce_compacted_then_more("cm");
    shoal_client_close(client);
    client = NULL;
    assert_int_equal(harness_daemon_stop(&daemon_), 0);
    before = segment_count("cm");
    /* The first run may merge what the last compacted, and so die before it serves. */
    setenv("SHOALD_TEST_COMPACT_CRASH", "merged", 1);
    (void)harness_daemon_restart(&daemon_);
    unsetenv("SHOALD_TEST_COMPACT_CRASH");
    assert_int_equal(harness_daemon_wait_exit(&daemon_, 10000), 99);
    assert_true(find_file("cm", ".log.swap", path, sizeof(path), &base));
    assert_true(segment_count("cm") < before); /* the merged one is gone */

    assert_int_equal(harness_daemon_restart(&daemon_), 0);
    assert_int_equal(shoal_client_open(daemon_.socket, &client), 0);
    /* (The restarted cleaner may already be merging again: the log says what start-up did.) */
    assert_true(harness_daemon_log_contains(&daemon_, "and of the segments merged into it"));
    check_consumed("cm", false); /* nothing lost, offsets as written */
    WAIT_UNTIL(sealed_segments_compacted("cm"), 15000);
    check_consumed("cm", true);
}

/* A merge step after the .swap that fails (an I/O error; the daemon goes on): the next run
 * puts that .swap in place before it does anything else, never writing a new rewrite over
 * it, which would lose the records of the segment already deleted, and counts the
 * partition's bytes on disk again. */
static void test_a_failed_merge_step_is_completed_by_the_next_run(void **state)
{
    (void)state;

    shoal_client_close(client);
    assert_int_equal(harness_daemon_stop(&daemon_), 0);
    restart_with_crash_point("merged-error");
    assert_int_equal(shoal_client_open(daemon_.socket, &client), 0);
    produce_compacted_then_more("fm");
    wait_log("and of the segments merged into it", 15000);
    assert_true(harness_daemon_log_contains(&daemon_, "compaction failure point"));
    WAIT_UNTIL(sealed_segments_compacted("fm"), 15000);
    check_consumed("fm", true);
    /* disk_bytes no longer counts the segments the failed step deleted */
    WAIT_UNTIL(describe0("fm").disk_bytes == log_bytes("fm"), 5000);
    assert_int_equal(describe0("fm").disk_bytes, log_bytes("fm"));
}

/* ------------------------------------------------------------------ fixture */

static int setup(void **state)
{
    (void)state;
    harness_watchdog(90, "test_compaction");
    if (harness_daemon_start(&daemon_, "cmp", "--log-level", "debug", NULL) < 0)
        return -1;
    return shoal_client_open(daemon_.socket, &client) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    if (client)
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
        T(test_compaction_keeps_latest_per_key_and_offsets),
        T(test_delete_policy_does_not_compact),
        T(test_compact_and_delete_together),
        T(test_last_file_is_never_compacted),
        T(test_tombstones_go_when_delete_retention_passes),
        T(test_a_held_view_survives_the_rewrite),
        T(test_crash_after_cleaned_keeps_the_old_segment),
        T(test_crash_after_swap_completes_the_new_segment),
        T(test_small_compacted_segments_are_merged),
        T(test_a_quiet_compacted_topic_merges_its_segments),
        T(test_crash_in_a_merge_completes_it),
        T(test_a_failed_merge_step_is_completed_by_the_next_run),
    };
#undef T
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
