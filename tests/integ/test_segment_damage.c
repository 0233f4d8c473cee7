/* test_segment_damage.c - a partition directory damaged while shoald was stopped: the
 * restarted daemon keeps every good record, names what it dropped, and keeps serving.
 * A damaged or unfinished <base>.log.swap is deleted and never replaces its segment; the
 * last segment's .log gone with its .index/.timeindex left behind does not stop the flusher;
 * a FIFO in place of a segment is refused with an error instead of blocking the daemon; a
 * partition whose files are all gone is reported and starts past what groups committed, or
 * from the oldest record its surviving ring holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "segment.h"
#include "shoal.h"

#define SEGMENT     (64 << 10)
#define VALUE_BYTES 1000
#define RECORDS     300 /* about 5 segments */
#define MAX_BASES   32

/* ------------------------------------------------------------------ helpers */

static void create_topic(struct harness_fixture *f, const char *topic)
{
    shoal_topic_config_t cfg;
    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = SEGMENT;
    cfg.ring_slots = 2;
    cfg.max_record_bytes = 4096;
    assert_int_equal(shoal_topic_create(f->c, topic, &cfg), 0);
}

/* Append records first..first+n whose values start with their number, acknowledged on disk. */
static void produce(struct harness_fixture *f, const char *topic, int first, int n)
{
    shoal_producer_options_t o;
    shoal_producer_t *p;
    char value[VALUE_BYTES];

    shoal_producer_options_init(&o);
    o.acks = SHOAL_ACKS_DISK;
    o.ack_timeout_ms = 5000;
    assert_int_equal(shoal_producer_open(f->c, topic, &o, &p), 0);
    for (int i = first; i < first + n; i++) {
        shoal_message_t m = {.value = value, .value_len = sizeof(value)};
        memset(value, 'v', sizeof(value));
        snprintf(value, sizeof(value), "%d", i);
        assert_int_equal(shoal_send(p, &m, NULL), 0);
    }
    shoal_producer_close(p);
}

/* Partition 0 of topic, as shoald describes it. */
static shoal_partition_info_t partition_0(struct harness_fixture *f, const char *topic)
{
    shoal_topic_info_t *info;
    shoal_partition_info_t pi;
    assert_int_equal(shoal_topic_describe(f->c, topic, &info), 0);
    pi = info->partitions[0];
    shoal_topic_info_free(info);
    return pi;
}

static int64_t log_end(struct harness_fixture *f, const char *topic)
{
    return partition_0(f, topic).log_end_offset;
}

/* Read from offset 0 to the log end: gapless, each value numbered by its offset. Returns
 * the offset after the last record read. */
static int64_t read_all(struct harness_fixture *f, const char *topic)
{
    return harness_read_numbered(f->c, topic, 0, log_end(f, topic));
}

static void file_of(struct harness_fixture *f, const char *topic, int64_t base, const char *ext,
                    char *path, size_t cap)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/%s-0", f->d.data_dir, topic);
    assert_int_equal(segment_path(path, cap, dir, base, ext), 0);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void restart(struct harness_fixture *f)
{
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    shoal_client_close(f->c);
    assert_int_equal(shoal_client_open(f->d.socket, &f->c), 0);
}

/* Produce RECORDS, stop the daemon; the segment bases on disk go to bases. */
static size_t produce_and_stop(struct harness_fixture *f, const char *topic, int64_t *bases)
{
    size_t n;
    create_topic(f, topic);
    produce(f, topic, 0, RECORDS);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    n = harness_segment_bases(&f->d, topic, bases, MAX_BASES);
    assert_true(n >= 4);
    return n;
}

/* ------------------------------------------------------------------ .log.swap */

/* Put swap_bytes at <bases[1]>.log.swap, restart: the .swap is deleted with a warning
 * naming it, the .log is kept, every record reads back. */
static void damaged_swap_is_dropped(struct harness_fixture *f, const char *topic,
                                    uint8_t *(*make)(const char *log_path, size_t *len))
{
    char log_path[PATH_MAX], swap_path[PATH_MAX], needle[PATH_MAX + 64];
    int64_t bases[MAX_BASES];
    uint8_t *swap;
    size_t len;

    produce_and_stop(f, topic, bases);
    file_of(f, topic, bases[1], ".log", log_path, sizeof(log_path));
    file_of(f, topic, bases[1], ".log.swap", swap_path, sizeof(swap_path));
    swap = make(log_path, &len);
    harness_write_file(swap_path, swap, len);
    free(swap);

    restart(f);
    snprintf(needle, sizeof(needle), "deleted %s", swap_path);
    assert_true(harness_daemon_log_contains(&f->d, needle));
    assert_false(file_exists(swap_path));
    assert_int_equal(read_all(f, topic), RECORDS);
    produce(f, topic, RECORDS, 1);
    assert_int_equal(log_end(f, topic), RECORDS + 1);
}

static uint8_t *random_bytes(const char *log_path, size_t *len)
{
    uint64_t seed = 42;
    uint8_t *b = malloc(5000);
    (void)log_path;
    assert_non_null(b);
    for (size_t i = 0; i < 5000; i++)
        b[i] = (uint8_t)harness_rand(&seed);
    *len = 5000;
    return b;
}

/* The real segment with two bytes changed in the middle (a CRC mismatch). */
static uint8_t *two_bytes_changed(const char *log_path, size_t *len)
{
    uint8_t *b = harness_read_file(log_path, len);
    assert_non_null(b);
    assert_true(*len > 2000);
    b[*len / 2] ^= 0x5a;
    b[*len / 2 + 1] ^= 0xa5;
    return b;
}

/* The first half of the real segment's batches: each batch whole and good, but the file
 * ends before the segment it would replace does (a rewrite keeps the last batch). */
static uint8_t *first_half(const char *log_path, size_t *len)
{
    uint8_t *b = harness_read_file(log_path, len);
    segment_scan_t scan;
    assert_non_null(b);
    assert_int_equal(segment_scan_bytes(b, *len / 2, 0, true, NULL, NULL, &scan), 0);
    assert_true(scan.valid_bytes > 0);
    *len = scan.valid_bytes;
    return b;
}

INTEG_TEST(test_a_random_swap_is_deleted_and_the_segment_kept)
{
    damaged_swap_is_dropped(f, "swrand", random_bytes);
}

INTEG_TEST(test_a_swap_with_a_bad_crc_is_deleted_and_the_segment_kept)
{
    damaged_swap_is_dropped(f, "swcrc", two_bytes_changed);
}

INTEG_TEST(test_a_swap_ending_before_its_segment_is_deleted_and_the_segment_kept)
{
    damaged_swap_is_dropped(f, "swhalf", first_half);
}

/* A whole copy of the segment is a finished rewrite by every check: it is put in place. */
INTEG_TEST(test_a_sound_swap_replaces_its_segment)
{
    char log_path[PATH_MAX], swap_path[PATH_MAX];
    int64_t bases[MAX_BASES];
    uint8_t *b;
    size_t len;

    produce_and_stop(f, "swgood", bases);
    file_of(f, "swgood", bases[1], ".log", log_path, sizeof(log_path));
    file_of(f, "swgood", bases[1], ".log.swap", swap_path, sizeof(swap_path));
    assert_non_null(b = harness_read_file(log_path, &len));
    harness_write_file(swap_path, b, len);
    free(b);
    restart(f);
    assert_true(harness_daemon_log_contains(&f->d, "completed the compaction of segment"));
    assert_false(file_exists(swap_path));
    assert_int_equal(read_all(f, "swgood"), RECORDS);
}

/* A topic that never compacts says nothing of compaction when it rebuilds a sealed index. */
INTEG_TEST(test_a_missing_sealed_index_is_rebuilt_without_talk_of_compaction)
{
    char path[PATH_MAX];
    int64_t bases[MAX_BASES];

    produce_and_stop(f, "idx", bases);
    file_of(f, "idx", bases[1], ".index", path, sizeof(path));
    assert_int_equal(unlink(path), 0);
    restart(f);
    assert_true(harness_daemon_log_contains(&f->d, "rebuilt the missing index of sealed segment"));
    assert_false(harness_daemon_log_contains(&f->d, "compacted segment"));
    assert_true(file_exists(path));
    assert_int_equal(read_all(f, "idx"), RECORDS);
}

/* ------------------------------------------------------------------ missing last .log */

/* Remove the last segment's .log, keep its index files; restart (with or without the
 * ring) and append with ACKS_DISK: the stale index files are replaced, the flusher runs. */
static void missing_last_log(struct harness_fixture *f, const char *topic, bool wipe_ring)
{
    char log_path[PATH_MAX], idx_path[PATH_MAX], needle[PATH_MAX + 64];
    int64_t bases[MAX_BASES], last;
    size_t n = produce_and_stop(f, topic, bases);

    last = bases[n - 1];
    file_of(f, topic, last, ".log", log_path, sizeof(log_path));
    file_of(f, topic, last, ".index", idx_path, sizeof(idx_path));
    assert_true(file_exists(idx_path));
    assert_int_equal(unlink(log_path), 0);
    if (wipe_ring)
        harness_daemon_wipe_shm(&f->d);

    restart(f);
    produce(f, topic, (int)log_end(f, topic), 3); /* ACKS_DISK: the flusher writes them */
    assert_false(harness_daemon_log_contains(&f->d, "flush failed"));
    snprintf(needle, sizeof(needle), "%s is missing", log_path);
    assert_true(harness_daemon_log_contains(&f->d, needle));
    /* The surviving ring still held the segment and wrote it again; without it, the
     * records of the removed file are gone and the log continues at its base. */
    if (wipe_ring) {
        assert_int_equal(log_end(f, topic), last + 3);
        assert_true(harness_daemon_log_contains(&f->d, "are lost"));
    } else {
        assert_int_equal(log_end(f, topic), RECORDS + 3);
        assert_int_equal(read_all(f, topic), RECORDS + 3);
    }
}

INTEG_TEST(test_a_missing_last_log_with_its_index_left_recovers_with_the_ring)
{
    missing_last_log(f, "mlring", false);
}

INTEG_TEST(test_a_missing_last_log_with_its_index_left_recovers_without_the_ring)
{
    missing_last_log(f, "mlnoring", true);
}

/* ------------------------------------------------------------------ FIFO */

/* A FIFO in place of a sealed .log: a consumer reading it gets SHOAL_ECORRUPT at once and
 * the daemon keeps answering. */
INTEG_TEST(test_a_fifo_in_place_of_a_segment_is_refused_not_waited_on)
{
    char log_path[PATH_MAX], needle[PATH_MAX + 64];
    int64_t bases[MAX_BASES];
    shoal_consumer_t *k;
    shoal_record_t r[8];

    produce_and_stop(f, "fifo", bases);
    file_of(f, "fifo", bases[1], ".log", log_path, sizeof(log_path));
    assert_int_equal(unlink(log_path), 0);
    assert_int_equal(mkfifo(log_path, 0600), 0);
    restart(f);

    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "fifo", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "fifo", 0, SHOAL_SEEK_OFFSET, bases[1] + 1), 0);
    assert_int_equal(shoal_poll(k, r, 8, 2000), SHOAL_ECORRUPT);
    shoal_consumer_close(k);
    snprintf(needle, sizeof(needle), "%s is not a regular file", log_path);
    assert_true(harness_daemon_log_contains(&f->d, needle));
    assert_int_equal(log_end(f, "fifo"), RECORDS); /* still answering */
    produce(f, "fifo", RECORDS, 2);
}

/* A sealed segment lost from the middle of the log (its three files removed): shoald names
 * the missing offsets when it starts; a consumer reading through gets every record before
 * them, one SHOAL_EOFFSET naming them, then every record after (it used to get
 * SHOAL_EOFFSET at the same position for ever; then SHOAL_ECORRUPT, which says a damaged batch
 * that the position does not pass). */
INTEG_TEST(test_a_segment_lost_from_the_middle_is_reported_once_and_read_past)
{
    static const char *const exts[] = {".log", ".index", ".timeindex"};
    int64_t bases[MAX_BASES], next = 0;
    shoal_consumer_t *k;
    shoal_record_t r[64];
    char missing[64];
    int gone = 0, n;

    assert_true(produce_and_stop(f, "lost", bases) >= 4);
    for (size_t i = 0; i < 3; i++) {
        char path[PATH_MAX];
        file_of(f, "lost", bases[1], exts[i], path, sizeof(path));
        assert_int_equal(unlink(path), 0);
    }
    harness_daemon_wipe_shm(&f->d);
    restart(f);
    snprintf(missing, sizeof(missing), "offsets %lld..%lld are missing from disk",
             (long long)bases[1], (long long)bases[2] - 1);
    assert_int_equal(harness_daemon_log_count(&f->d, missing), 1);

    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "lost", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "lost", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    while (next < RECORDS && (n = shoal_poll(k, r, 64, 2000)) != 0) {
        if (n == SHOAL_EOFFSET) {
            assert_non_null(strstr(shoal_errmsg(), missing));
            assert_int_equal(next, bases[1]);
            next = bases[2];
            gone++;
            continue;
        }
        assert_true(n > 0);
        for (int i = 0; i < n; i++, next++)
            assert_int_equal(r[i].offset, next);
    }
    assert_int_equal(next, RECORDS);
    assert_int_equal(gone, 1);
    shoal_consumer_close(k);
}

/* ------------------------------------------------------------------ all files gone */

/* A member of group "readers" commits offset of topic's partition 0, and leaves. */
static void commit_as_member(struct harness_fixture *f, const char *topic, int64_t offset)
{
    const char *topics[] = {topic};
    shoal_topic_partition_offset_t o = {.topic = topic, .partition = 0, .offset = offset};
    shoal_consumer_options_t co;
    shoal_consumer_t *k;
    shoal_record_t r[8];
    int rc = SHOAL_EGENERATION;

    shoal_consumer_options_init(&co);
    co.group_id = "readers";
    co.auto_commit = false;
    assert_int_equal(shoal_consumer_open(f->c, &co, &k), 0);
    assert_int_equal(shoal_consumer_subscribe(k, topics, 1), 0);
    for (int i = 0; i < 200 && rc != 0; i++) { /* until it is assigned */
        assert_true(shoal_poll(k, r, 8, 20) >= 0);
        rc = shoal_commit_sync(k, &o, 1);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(shoal_consumer_close(k), 0);
}

/* Every file of a partition is removed (keep_dir: its directory is left, empty) while
 * shoald is stopped, with its ring: shoald says so when it starts, and the log starts again
 * past the offsets groups committed (committed: -1 for none), so that no offset is used
 * twice. Before, the partition came back empty at offset 0 without a word. The next start
 * finds it as it left it, and says nothing more. */
static void files_gone(struct harness_fixture *f, const char *topic, int64_t committed,
                       bool keep_dir, const char *needle)
{
    char dir[PATH_MAX];
    int64_t start = committed > 0 ? committed : 0;

    create_topic(f, topic);
    produce(f, topic, 0, RECORDS);
    if (committed >= 0)
        commit_as_member(f, topic, committed);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    snprintf(dir, sizeof(dir), "%s/%s-0", f->d.data_dir, topic);
    harness_rmrf(dir);
    if (keep_dir)
        assert_int_equal(mkdir(dir, 0700), 0);
    harness_daemon_wipe_shm(&f->d);

    restart(f);
    assert_int_equal(harness_daemon_log_count(&f->d, needle), 1);
    assert_int_equal(log_end(f, topic), start);
    assert_int_equal(partition_0(f, topic).log_start_offset, start);
    produce(f, topic, (int)start, 3);
    assert_int_equal(harness_read_numbered(f->c, topic, start, start + 3), start + 3);

    assert_int_equal(harness_daemon_stop(&f->d), 0);
    harness_daemon_wipe_shm(&f->d);
    restart(f);
    assert_int_equal(harness_daemon_log_count(&f->d, needle), 1);
    assert_int_equal(harness_read_numbered(f->c, topic, start, start + 3), start + 3);
}

INTEG_TEST(test_a_partition_whose_files_are_gone_starts_past_its_committed_offsets)
{
    files_gone(f, "gone", 200, true,
               "gone-0: no segment files, though groups committed offsets "
               "up to 200: its records are lost");
}

INTEG_TEST(test_a_partition_whose_directory_is_gone_is_reported_and_starts_anew)
{
    files_gone(f, "moved", -1, false, "moved-0: its directory was missing: it starts at offset 0");
}

/* Partitions found without a directory (a create cut short by a crash leaves all it had not
 * made) are said in one line for the topic, not one each (a user session counted ~155 for a
 * 200-partition topic); they start empty and take records. */
INTEG_TEST(test_partitions_without_a_directory_are_said_once_for_the_topic)
{
    shoal_topic_config_t cfg;
    char dir[PATH_MAX];

    shoal_topic_config_init(&cfg);
    cfg.partitions = 4;
    cfg.segment_bytes = SEGMENT;
    cfg.ring_slots = 2;
    assert_int_equal(shoal_topic_create(f->c, "cutshort", &cfg), 0);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    for (int p = 1; p < 4; p++) {
        snprintf(dir, sizeof(dir), "%s/cutshort-%d", f->d.data_dir, p);
        harness_rmrf(dir);
    }
    harness_daemon_wipe_shm(&f->d);
    restart(f);
    assert_int_equal(harness_daemon_log_count(&f->d, "topic cutshort: 3 of its 4 partitions "
                                                     "(1..3) had no directory: they start at "
                                                     "offset 0"),
                     1);
    assert_int_equal(harness_daemon_log_count(&f->d, "cutshort-2: its directory was missing"), 0);
    {
        shoal_producer_options_t o;
        shoal_producer_t *p;
        shoal_message_t m = {.value = "x", .value_len = 1, .partition = 2};
        shoal_ack_t ack;

        shoal_producer_options_init(&o);
        o.acks = SHOAL_ACKS_DISK;
        assert_int_equal(shoal_producer_open(f->c, "cutshort", &o, &p), 0);
        assert_int_equal(shoal_send(p, &m, &ack), 0);
        assert_int_equal(ack.offset, 0);
        shoal_producer_close(p);
    }
}

/* ------------------------------------------------------------------ the metadata store */

static bool says(const char *path, const char *needle)
{
    size_t len;
    char *text = (char *)harness_read_file(path, &len);
    bool found = false;

    if (text) {
        text[len] = '\0';
        found = strstr(text, needle) != NULL;
        free(text);
    }
    return found;
}

/* Start shoald on f's directories with stderr to log_path; stop it (SIGTERM) once it is
 * ready. Its exit status, or 128 + the signal it died of. */
static int shoald_once(struct harness_fixture *f, const char *log_path)
{
    char bin[PATH_MAX];
    const char *exe = harness_shoald_bin(bin, sizeof(bin));
    int status = 0;
    pid_t pid;

    unlink(log_path); /* the last run's "ready" must not be read as this one's */
    assert_true((pid = fork()) >= 0);
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
            _exit(120);
        execl(exe, exe, "--data-dir", f->d.data_dir, "--runtime-dir", f->d.run_dir, "--instance",
              f->d.instance, (char *)NULL);
        _exit(121);
    }
    for (int i = 0; i < 1000; i++, usleep(5000)) {
        pid_t done = waitpid(pid, &status, WNOHANG);
        assert_true(done >= 0);
        if (done == pid)
            break;
        if (says(log_path, " ready: ")) {
            kill(pid, SIGTERM);
            assert_int_equal(waitpid(pid, &status, 0), pid);
            break;
        }
    }
    harness_daemon_wipe_shm(&f->d);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* LMDB keeps no checksums: a page of the metadata store damaged on disk can make it fail
 * one of its own checks (it aborts) or read past the end of the file (SIGBUS). The same
 * kinds of damage (bytes from a fixed seed over the store's pages) are tried on a store of
 * six topics: every start that dies of it first says which file is damaged and what to do.
 * Before, the log said nothing (a SIGBUS), or only LMDB's assertion. */
INTEG_TEST(test_a_damaged_metadata_store_is_named_before_shoald_dies_of_it)
{
    char meta[PATH_MAX], log_path[PATH_MAX];
    uint8_t *good, *bad;
    size_t len, glen;
    int deaths = 0;

    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof(name), "t%d", i);
        create_topic(f, name);
    }
    shoal_client_close(f->c);
    f->c = NULL;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    snprintf(meta, sizeof(meta), "%s/meta/data.mdb", f->d.data_dir);
    snprintf(log_path, sizeof(log_path), "%s/once.log", f->d.dir);
    assert_non_null(good = harness_read_file(meta, &glen));
    assert_true(glen > 4 * 4096);
    assert_non_null(bad = malloc(glen));
    for (uint32_t seed = 1; seed <= 24; seed++) {
        uint32_t x = seed * 2654435761u;
        size_t at = 2 * 4096 + (seed % 8) * 512; /* past the two meta pages */
        memcpy(bad, good, glen);
        for (size_t k = at; k < at + 1024 && k < glen; k++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            bad[k] = (uint8_t)x;
        }
        harness_write_file(meta, bad, glen);
        int status = shoald_once(f, log_path);
        if (status >= 128) {
            char *text = (char *)harness_read_file(log_path, &len);
            assert_non_null(text);
            text[len] = '\0';
            if (!strstr(text, "fatal: the metadata store") || !strstr(text, "data.mdb is damaged"))
                fail_msg("seed %u: shoald died (signal %d) without naming the damage:\n%s", seed,
                         status - 128, text);
            free(text);
            deaths++;
        }
    }
    print_message("%d of 24 damaged stores killed shoald, each with the reason\n", deaths);
    assert_true(deaths > 0);
    harness_write_file(meta, good, glen);
    free(good);
    free(bad);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(shoal_client_open(f->d.socket, &f->c), 0);
}

/* Every file of a partition is removed while shoald is stopped, but its ring survives (a
 * daemon restart, no reboot), holding the last segment's records: the log goes on from the
 * oldest record the ring holds, the ring's records are written to disk again, and the
 * start names the offsets lost. Before, the ring was taken not to continue the disk log
 * (which started at the committed 280) and rebuilt: the records from 280 on, still in the
 * ring, were lost too, and with nothing committed the log started again at 0. */
INTEG_TEST(test_a_partition_whose_files_are_gone_goes_on_from_its_surviving_ring)
{
    const char *topic = "kept";
    char dir[PATH_MAX], needle[160];
    int64_t start;

    create_topic(f, topic);
    produce(f, topic, 0, RECORDS);
    commit_as_member(f, topic, 280);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    snprintf(dir, sizeof(dir), "%s/%s-0", f->d.data_dir, topic);
    harness_rmrf(dir);

    restart(f);
    start = partition_0(f, topic).log_start_offset;
    assert_true(start > 0 && start < 280); /* what the last 64 KiB slot holds */
    assert_int_equal(log_end(f, topic), RECORDS);
    snprintf(needle, sizeof(needle),
             "kept-0: its directory was missing: the records before offset %lld are lost",
             (long long)start);
    assert_int_equal(harness_daemon_log_count(&f->d, needle), 1);
    produce(f, topic, RECORDS, 3);
    assert_int_equal(harness_read_numbered(f->c, topic, start, RECORDS + 3), RECORDS + 3);

    assert_int_equal(harness_daemon_stop(&f->d), 0); /* now from the disk alone */
    harness_daemon_wipe_shm(&f->d);
    restart(f);
    assert_int_equal(harness_daemon_log_count(&f->d, needle), 1);
    assert_int_equal(partition_0(f, topic).log_start_offset, start);
    assert_int_equal(harness_read_numbered(f->c, topic, start, RECORDS + 3), RECORDS + 3);
}

/* ------------------------------------------------------------------ fixture */

static int setup(void **state)
{
    static struct harness_fixture f;
    *state = &f;
    return harness_fixture_start(&f, "segdmg", 60, NULL);
}

static int teardown(void **state)
{
    return harness_fixture_stop(*state);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_a_random_swap_is_deleted_and_the_segment_kept),
        T(test_a_swap_with_a_bad_crc_is_deleted_and_the_segment_kept),
        T(test_a_swap_ending_before_its_segment_is_deleted_and_the_segment_kept),
        T(test_a_sound_swap_replaces_its_segment),
        T(test_a_missing_sealed_index_is_rebuilt_without_talk_of_compaction),
        T(test_a_missing_last_log_with_its_index_left_recovers_with_the_ring),
        T(test_a_missing_last_log_with_its_index_left_recovers_without_the_ring),
        T(test_a_fifo_in_place_of_a_segment_is_refused_not_waited_on),
        T(test_a_segment_lost_from_the_middle_is_reported_once_and_read_past),
        T(test_a_partition_whose_files_are_gone_starts_past_its_committed_offsets),
        T(test_a_partition_whose_directory_is_gone_is_reported_and_starts_anew),
        T(test_partitions_without_a_directory_are_said_once_for_the_topic),
        T(test_a_partition_whose_files_are_gone_goes_on_from_its_surviving_ring),
        T(test_a_damaged_metadata_store_is_named_before_shoald_dies_of_it),
    };
#undef T
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
