/* test_disk_full.c - a full disk gives producers back-pressure with a clear cause, loses
 * nothing acknowledged, and the broker resumes by itself when space returns.
 *
 * The daemon runs with SHOALD_TEST_ENOSPC_FILE: while that file exists its segment writes
 * and fsyncs fail with ENOSPC, as on a full filesystem; and with
 * SHOALD_TEST_ENOSPC_INDEX_FILE: while that one exists, every second index entry fails
 * after its .index part is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "segment.h"
#include "shoal.h"
#include "util.h"

#define VALUE_BYTES 1000

static struct harness_daemon daemon_;
static shoal_client_t *client;
static char enospc[128];       /* while it exists, segment writes fail */
static char enospc_index[128]; /* while it exists, every second index entry fails */
static char meminfo[128];      /* while it exists, the daemon's /proc/meminfo */

static int send_one(shoal_producer_t *p, int seq)
{
    char value[VALUE_BYTES];
    shoal_message_t m = {.value = value, .value_len = sizeof(value), .partition = 0};
    memset(value, 'x', sizeof(value));
    snprintf(value, sizeof(value), "%d", seq);
    return shoal_send(p, &m, NULL);
}

static int64_t flushed_offset(void)
{
    shoal_topic_info_t *info;
    int64_t off;
    assert_int_equal(shoal_topic_describe(client, "full", &info), 0);
    off = info->partitions[0].flushed_offset;
    shoal_topic_info_free(info);
    return off;
}

/* A topic of 64 KiB segments and slots ring slots on cl, and a producer on it with po
 * (NULL: the defaults). */
static shoal_producer_t *small_topic(shoal_client_t *cl, const char *name, uint32_t slots,
                                     const shoal_producer_options_t *po)
{
    shoal_topic_config_t cfg;
    shoal_producer_t *p;

    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = 64 << 10;
    cfg.ring_slots = slots;
    cfg.max_record_bytes = 4096;
    assert_int_equal(shoal_topic_create(cl, name, &cfg), 0);
    assert_int_equal(shoal_producer_open(cl, name, po, &p), 0);
    return p;
}

static void test_full_disk_backpressures_then_resumes_without_loss(void **state)
{
    shoal_producer_options_t opts;
    shoal_producer_t *p, *pd;
    shoal_consumer_t *k;
    shoal_record_t r[64];
    int acked = 0, rc, n;
    int64_t next = 0;
    (void)state;

    shoal_producer_options_init(&opts);
    opts.block_ms = 300;
    p = small_topic(client, "full", 2, &opts);
    for (; acked < 20; acked++)
        assert_int_equal(send_one(p, acked), 0);

    harness_flag_file(enospc, true);
    /* The ring (two 64 KiB slots) absorbs what the disk cannot take, then pushes back. */
    while ((rc = send_one(p, acked)) == 0 && acked < 1000)
        acked++;
    assert_int_equal(rc, SHOAL_AGAIN);
    assert_non_null(strstr(shoal_errmsg(), "cannot write to disk"));
    assert_true(acked > 20 && acked < 200);
    /* A disk acknowledgement cannot complete while the disk is full. */
    opts.acks = SHOAL_ACKS_DISK;
    opts.ack_timeout_ms = 200;
    assert_int_equal(shoal_producer_open(client, "full", &opts, &pd), 0);
    assert_int_equal(shoal_producer_wait(pd, 0, acked - 1, SHOAL_ACKS_DISK, 200), SHOAL_ETIMEDOUT);
    assert_non_null(strstr(shoal_errmsg(), "cannot write to disk: No space left on device"));
    assert_true(harness_daemon_log_contains(&daemon_, "No space left on device"));

    harness_flag_file(enospc, false);
    /* Space is back: the broker catches up by itself and producers go on. */
    assert_int_equal(shoal_producer_wait(pd, 0, acked - 1, SHOAL_ACKS_DISK, 5000), 0);
    for (int i = 0; i < 100; i++, acked++)
        assert_int_equal(send_one(p, acked), 0);
    for (int i = 0; i < 500 && flushed_offset() < acked; i++)
        usleep(10000);
    assert_int_equal(flushed_offset(), acked);
    assert_true(harness_daemon_log_contains(&daemon_, "disk writes resumed"));

    /* Every acknowledged record is there once, in order. */
    assert_int_equal(shoal_consumer_open(client, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "full", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "full", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    while (next < acked && (n = shoal_poll(k, r, 64, 2000)) > 0)
        for (int i = 0; i < n; i++, next++) {
            assert_int_equal(r[i].offset, next);
            assert_int_equal(atoi(r[i].value), (int)next);
        }
    assert_int_equal(next, acked);
    shoal_consumer_close(k);
    shoal_producer_close(pd);
    shoal_producer_close(p);
}

/* A stop while the disk is full: the daemon names the records left in shared memory and
 * exits 1, not "stopped cleanly"; the next start, with space, writes them out. */
static void test_stop_with_records_off_disk_says_so_and_the_next_start_writes_them(void **state)
{
    shoal_producer_t *p;
    int acked = 0;
    (void)state;

    p = small_topic(client, "full", 2, NULL);
    harness_flag_file(enospc, true);
    for (; acked < 30; acked++)
        assert_int_equal(send_one(p, acked), 0);
    shoal_producer_close(p);
    shoal_client_close(client);
    client = NULL;

    assert_int_equal(kill(daemon_.pid, SIGTERM), 0);
    assert_int_equal(harness_daemon_wait_exit(&daemon_, 5000), 1);
    assert_true(harness_daemon_log_contains(&daemon_, "full-0: 30 records (offsets 0 and on) "
                                                      "are not on disk"));
    assert_true(harness_daemon_log_contains(&daemon_, "stopped with records not on disk"));
    assert_false(harness_daemon_log_contains(&daemon_, "stopped cleanly"));

    harness_flag_file(enospc, false);
    assert_int_equal(harness_daemon_restart(&daemon_), 0);
    assert_int_equal(shoal_client_open(daemon_.socket, &client), 0);
    for (int i = 0; i < 500 && flushed_offset() < acked; i++)
        usleep(10000);
    assert_int_equal(flushed_offset(), acked);
}

/* Partition 0's flush_error after waiting up to 5 s for it to become want. */
static int32_t wait_flush_error(const char *topic, int32_t want)
{
    shoal_partition_stats_t st;

    for (int i = 0; i < 500; i++) {
        assert_int_equal(shoal_partition_stats(client, topic, 0, &st), 0);
        if (st.flush_error == want)
            break;
        usleep(10000);
    }
    return st.flush_error;
}

/* A disk error of a run that ended (here killed) while the disk was full stays in the
 * shared control block; the next run, whose writes succeed, clears it and says so. */
static void test_restart_clears_the_last_runs_disk_error(void **state)
{
    shoal_producer_t *p;
    (void)state;

    p = small_topic(client, "stale", 2, NULL);
    harness_flag_file(enospc, true);
    for (int i = 0; i < 5; i++)
        assert_int_equal(send_one(p, i), 0);
    assert_int_equal(wait_flush_error("stale", -ENOSPC), -ENOSPC);
    shoal_producer_close(p);
    shoal_client_close(client);
    client = NULL;

    assert_int_equal(harness_daemon_kill9(&daemon_), 0);
    harness_flag_file(enospc, false);
    assert_int_equal(harness_daemon_restart(&daemon_), 0);
    assert_int_equal(shoal_client_open(daemon_.socket, &client), 0);
    assert_int_equal(wait_flush_error("stale", 0), 0);
    harness_daemon_expect_log(&daemon_, "stale-0: disk writes resumed");
    assert_int_equal(harness_read_numbered(client, "stale", 0, 5), 5);
}

/* A full disk does not stop retention: deleting old segments is how room comes back, so
 * it goes on while every write of the active segment fails. */
static void test_retention_runs_while_the_disk_is_full(void **state)
{
    static const char *const names[] = {"retention.bytes"}, *const values[] = {"0"};
    shoal_topic_info_t *info;
    shoal_producer_t *p;
    int64_t start = 0;
    (void)state;

    p = small_topic(client, "full", 4, NULL);
    for (int i = 0; i < 200; i++) /* three sealed segments and a fourth begun */
        assert_int_equal(send_one(p, i), 0);
    for (int i = 0; i < 500 && flushed_offset() < 200; i++)
        usleep(10000);
    assert_int_equal(flushed_offset(), 200);
    harness_flag_file(enospc, true);
    for (int i = 200; i < 220; i++) /* these cannot be written */
        assert_int_equal(send_one(p, i), 0);
    assert_int_equal(shoal_topic_alter(client, "full", names, values, 1), 0);
    for (int i = 0; i < 300 && start == 0; i++) {
        assert_int_equal(shoal_topic_describe(client, "full", &info), 0);
        start = info->partitions[0].log_start_offset;
        shoal_topic_info_free(info);
        usleep(10000);
    }
    assert_true(start > 0); /* sealed segments went */
    assert_true(flushed_offset() < 220);
    assert_true(harness_daemon_log_contains(&daemon_, "by retention.bytes"));
    harness_flag_file(enospc, false);
    for (int i = 0; i < 500 && flushed_offset() < 220; i++)
        usleep(10000);
    assert_int_equal(flushed_offset(), 220);
    shoal_producer_close(p);
}

/* The bytes of segment base's file ext of topic, in a malloc'd buffer (*len of them). */
static uint8_t *segment_file(const char *topic, int64_t base, const char *ext, size_t *len)
{
    char path[PATH_MAX];
    uint8_t *buf;
    snprintf(path, sizeof(path), "%s/%s-0/%020lld%s", daemon_.data_dir, topic, (long long)base,
             ext);
    buf = harness_read_file(path, len);
    assert_non_null(buf);
    return buf;
}

/* Index entries that failed half-written (.index entry in, .timeindex entry not) are cut
 * back and written again once: every record reaches the disk, and each segment's .index is
 * byte for byte that of the same records flushed without a fault, its .timeindex the same
 * offsets. */
static void test_failed_index_writes_are_retried_once(void **state)
{
    const char *topics[] = {"clean", "faulty"};
    int64_t bases[2][8];
    size_t nbases[2];
    (void)state;

    for (int t = 0; t < 2; t++) {
        shoal_producer_t *p = small_topic(client, topics[t], 4, NULL);
        harness_flag_file(enospc_index, t == 1);
        for (int i = 0; i < 150; i++)
            assert_int_equal(send_one(p, i), 0);
        assert_int_equal(shoal_producer_wait(p, 0, 149, SHOAL_ACKS_DISK, 5000), 0);
        harness_flag_file(enospc_index, false);
        shoal_producer_close(p);
    }
    assert_true(harness_daemon_log_contains(&daemon_, "faulty-0: flush failed"));
    assert_false(harness_daemon_log_contains(&daemon_, "clean-0: flush failed"));
    shoal_client_close(client);
    client = NULL;
    assert_int_equal(harness_daemon_stop(&daemon_), 0); /* seals: the index files are final */

    for (int t = 0; t < 2; t++)
        nbases[t] = harness_segment_bases(&daemon_, topics[t], bases[t], 8);
    assert_true(nbases[0] >= 3);
    assert_int_equal(nbases[1], nbases[0]);
    for (size_t i = 0; i < nbases[0]; i++) {
        size_t len[2], tlen[2];
        uint8_t *idx[2], *ts[2];
        assert_int_equal(bases[1][i], bases[0][i]);
        for (int t = 0; t < 2; t++) {
            idx[t] = segment_file(topics[t], bases[t][i], ".index", &len[t]);
            ts[t] = segment_file(topics[t], bases[t][i], ".timeindex", &tlen[t]);
        }
        assert_true(len[0] >= 2 * 8);
        assert_int_equal(len[1], len[0]);
        assert_memory_equal(idx[1], idx[0], len[0]);
        /* 12-byte entries: timestamp, then relative offset. */
        assert_int_equal(tlen[1] % 12, 0);
        for (size_t e = 0; e + 12 <= tlen[1]; e += 12)
            assert_true(e == 0 || memcmp(ts[1] + e + 8, ts[1] + e - 4, 4) > 0);
        for (int t = 0; t < 2; t++) {
            free(idx[t]);
            free(ts[t]);
        }
    }
}

/* The daemon's /proc/meminfo from now on: MemTotal and MemAvailable in MiB. */
static void fake_meminfo(unsigned total_mib, unsigned avail_mib)
{
    FILE *f = fopen(meminfo, "w");
    assert_non_null(f);
    fprintf(f, "MemTotal: %u kB\nMemAvailable: %u kB\n", total_mib << 10, avail_mib << 10);
    fclose(f);
}

/* A topic whose rings would not fit is refused whole, before any ring is made, naming what
 * it needs and what there is: here more than the memory the system can spare, what it has
 * available less an eighth of its total (a tmpfs the size of RAM let one create fill
 * memory until the kernel killed shoald; test_client_faults has more than the shared
 * memory directory holds). A topic that fits is made after. The eighth used to be of what
 * was available, so each create could take 7/8 of what the last left (rings are not
 * reclaimable): a security session saw a few creates approach all of memory. */
static void test_a_topic_that_cannot_fit_in_memory_is_refused_whole(void **state)
{
    shoal_topic_config_t cfg;
    shoal_topic_info_t *info;
    (void)state;

    fake_meminfo(1024, 384);
    shoal_topic_config_init(&cfg);
    cfg.partitions = 4;
    cfg.ring_slots = 2;
    assert_int_equal(shoal_topic_create(client, "big", &cfg), -ENOSPC);
    assert_non_null(strstr(shoal_errmsg(), "topic big needs 512 MiB 112 KiB of shared memory (4 "
                                           "partitions x (2 ring slots x 67108864-byte segments + "
                                           "28 KiB of control files)), more than the 256 MiB of "
                                           "memory the system can spare"));
    assert_int_equal(shoal_topic_describe(client, "big", &info), SHOAL_ENOTOPIC);

    cfg.partitions = 1;
    assert_int_equal(shoal_topic_create(client, "big", &cfg), 0);
    fake_meminfo(1024, 256); /* what the first left: 128 MiB to spare, not 224 */
    cfg.ring_slots = 3;      /* 192 MiB */
    assert_int_equal(shoal_topic_create(client, "bigger", &cfg), -ENOSPC);
    assert_non_null(strstr(shoal_errmsg(), "the 128 MiB of memory the system can spare"));
}

/* A topic of partitions partitions of two 1 MiB ring slots: 2 MiB 28 KiB of rings each, with
 * the control files (a control block and a readers table, in 4 KiB pages). */
static int create_mib_topic(shoal_client_t *cl, const char *name, uint32_t partitions)
{
    shoal_topic_config_t cfg;

    shoal_topic_config_init(&cfg);
    cfg.partitions = partitions;
    cfg.ring_slots = 2;
    cfg.segment_bytes = 1 << 20;
    return shoal_topic_create(cl, name, &cfg);
}

/* A child: grow topic "a" of the daemon at socket arg to 2 partitions. */
static int grow_a_to_two(void *arg)
{
    static const char *const names[] = {"partitions"}, *const values[] = {"2"};
    shoal_client_t *cl;
    int rc = shoal_client_open(arg, &cl);

    if (rc == 0)
        rc = shoal_topic_alter(cl, "a", names, values, 1);
    shoal_client_close(cl);
    return rc == 0 ? 0 : 1;
}

/* max.shm.bytes caps what all topics' rings take together, those being made included: a
 * create or a growth past it is refused whole, naming the cap and what is taken; a delete
 * gives its share back. A reload that lowers the cap below what is taken says so and keeps
 * every topic served; one that lifts it (-1: no cap) admits creates again at once. Rings
 * take 300 ms to make here (SHOALD_TEST_CREATE_MS), so a create meets a growth under way. */
static struct harness_daemon cap_daemon; /* teardown stops it when the test failed */

static void test_max_shm_bytes_caps_all_rings_together(void **state)
{
    static const char *const partitions[] = {"partitions"}, *const three[] = {"3"};
    struct harness_daemon *d = &cap_daemon;
    char conf[PATH_MAX], body[64];
    shoal_topic_info_t *info;
    shoal_client_t *cl;
    pid_t grower;
    (void)state;

    harness_tmpdir(conf, sizeof(conf) - 16, "capconf");
    strcat(conf, "/shoald.conf");
    snprintf(body, sizeof(body), "max.shm.bytes = %d\n", 5 << 20);
    harness_write_file(conf, body, strlen(body));
    setenv("SHOALD_TEST_CREATE_MS", "300", 1);
    assert_int_equal(harness_daemon_start(d, "cap", "--config", conf, NULL), 0);
    unsetenv("SHOALD_TEST_CREATE_MS");
    assert_int_equal(shoal_client_open(d->socket, &cl), 0);

    assert_int_equal(create_mib_topic(cl, "a", 1), 0); /* 2 MiB 28 KiB of 5 MiB */
    grower = harness_fork(grow_a_to_two, d->socket, 10);
    harness_daemon_expect_log(d, "topic a: adding partitions 1..1");
    assert_int_equal(create_mib_topic(cl, "b", 1), -ENOSPC); /* 2 + 2 being added + 2 */
    assert_non_null(strstr(shoal_errmsg(), "topic b needs 2 MiB 28 KiB of shared memory (1 "
                                           "partition x (2 ring slots x 1048576-byte segments + "
                                           "28 KiB of control files)), more than the 968 KiB "
                                           "left under max.shm.bytes (5 MiB, of which topics "
                                           "take 4 MiB 56 KiB)"));
    assert_int_equal(harness_wait(grower, 10000), 0);
    assert_int_equal(shoal_topic_describe(cl, "b", &info), SHOAL_ENOTOPIC);
    assert_int_equal(shoal_topic_alter(cl, "a", partitions, three, 1), -ENOSPC);
    assert_non_null(strstr(shoal_errmsg(), "the new partitions 2..2 of topic a need 2 MiB 28 KiB "
                                           "of shared memory (1 partition x (2 ring slots"));
    assert_non_null(strstr(shoal_errmsg(), "left under max.shm.bytes"));
    assert_int_equal(shoal_topic_describe(cl, "a", &info), 0);
    assert_int_equal(info->config.partitions, 2);
    shoal_topic_info_free(info);

    assert_int_equal(shoal_topic_delete(cl, "a"), 0);
    assert_int_equal(create_mib_topic(cl, "b", 1), 0);
    assert_int_equal(create_mib_topic(cl, "c", 1), 0); /* 4 MiB 56 KiB again */

    snprintf(body, sizeof(body), "max.shm.bytes = %d\n", 3 << 20);
    harness_write_file(conf, body, strlen(body));
    assert_int_equal(kill(d->pid, SIGHUP), 0);
    harness_daemon_expect_log(d, "reloaded: ");
    harness_daemon_expect_log(d, "max.shm.bytes is 3 MiB, and the topics' rings take 4 MiB 56 "
                                 "KiB: no topic can be created or gain partitions");
    assert_int_equal(shoal_topic_describe(cl, "c", &info), 0);
    shoal_topic_info_free(info);
    assert_int_equal(create_mib_topic(cl, "d", 1), -ENOSPC);
    assert_non_null(strstr(shoal_errmsg(), "the 0 bytes left under max.shm.bytes (3 MiB"));

    harness_write_file(conf, "max.shm.bytes = -1\n", 19);
    assert_int_equal(kill(d->pid, SIGHUP), 0);
    harness_daemon_expect_log(d, "max.shm.bytes=-1");
    assert_int_equal(create_mib_topic(cl, "d", 1), 0);

    shoal_client_close(cl);
    assert_int_equal(harness_daemon_cleanup(d), 0);
    *strrchr(conf, '/') = '\0';
    harness_rmrf(conf);
}

/* On a really full filesystem (a 4 MiB tmpfs, root only) the metadata store still commits
 * from the room it set aside at open: deleting a topic, the way to free space, works. */
static struct harness_daemon tiny_daemon;
static char tiny_dir[PATH_MAX]; /* a tmpfs mounted here while set */

static void tiny_cleanup(void)
{
    char cmd[PATH_MAX + 16];
    harness_daemon_cleanup(&tiny_daemon);
    if (!tiny_dir[0])
        return;
    snprintf(cmd, sizeof(cmd), "umount '%s'", tiny_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not unmount %s\n", tiny_dir);
    harness_rmrf(tiny_dir);
    tiny_dir[0] = '\0';
}

/* Mount a 4 MiB tmpfs (root only: else the test is skipped) and start tiny_daemon with its
 * data there; a client of it in *c. */
static void tiny_start(shoal_client_t **c)
{
    static char data[PATH_MAX + 8]; /* the daemon's restarts pass it again */
    char dir[PATH_MAX], cmd[PATH_MAX + 64];

    harness_tmpdir(dir, sizeof(dir), "tiny");
    snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=4m tmpfs '%s' 2>/dev/null", dir);
    if (geteuid() != 0 || system(cmd) != 0) {
        harness_rmrf(dir);
        skip();
    }
    snprintf(tiny_dir, sizeof(tiny_dir), "%s", dir);
    snprintf(data, sizeof(data), "%s/data", dir);
    assert_int_equal(harness_daemon_start(&tiny_daemon, "tiny", "--data-dir", data, NULL), 0);
    assert_int_equal(shoal_client_open(tiny_daemon.socket, c), 0);
}

static void test_a_topic_can_be_deleted_when_the_disk_is_really_full(void **state)
{
    shoal_producer_options_t po;
    shoal_client_t *c;
    shoal_producer_t *p;
    int rc = 0;
    (void)state;

    tiny_start(&c);
    shoal_producer_options_init(&po);
    po.block_ms = 200;
    p = small_topic(c, "big", 2, &po);
    for (int i = 0; i < 10000 && rc == 0; i++)
        rc = send_one(p, i);
    assert_int_equal(rc, SHOAL_AGAIN);
    assert_non_null(strstr(shoal_errmsg(), "cannot write to disk"));
    shoal_producer_close(p);
    assert_int_equal(shoal_topic_delete(c, "big"), 0);
    shoal_producer_close(small_topic(c, "after", 2, NULL));
    shoal_client_close(c);
    assert_int_equal(harness_daemon_stop(&tiny_daemon), 0);
}

/* Fill the tiny filesystem with path, to the last byte. */
static void tiny_fill(const char *path)
{
    static const char block[4096];
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    while (write(fd, block, sizeof(block)) > 0)
        ;
    assert_int_equal(errno, ENOSPC);
    while (write(fd, block, 1) > 0)
        ;
    close(fd);
}

/* A start on a full disk whose last segment's index must be rebuilt (here cut to its first
 * entry) cannot write the new one: it cuts the index back instead and serves the topic,
 * every record readable; the next start with room rebuilds it. (It used to leave the whole
 * topic unserved until a restart with space.) */
static void test_a_start_on_a_full_disk_serves_a_topic_whose_index_needs_rebuilding(void **state)
{
    char dir[PATH_MAX + 16], filler[PATH_MAX + 16], index[PATH_MAX + 64];
    int64_t *bases;
    shoal_client_t *c;
    shoal_producer_t *p;
    size_t n;
    (void)state;

    tiny_start(&c);
    p = small_topic(c, "kept", 4, NULL);
    for (int i = 0; i < 150; i++)
        assert_int_equal(send_one(p, i), 0);
    assert_int_equal(shoal_producer_wait(p, 0, 149, SHOAL_ACKS_DISK, 5000), 0);
    shoal_producer_close(p);
    shoal_client_close(c);
    assert_int_equal(harness_daemon_stop(&tiny_daemon), 0);

    snprintf(dir, sizeof(dir), "%s/data/kept-0", tiny_dir);
    assert_int_equal(segment_list(dir, &bases, &n), 0);
    assert_true(n >= 2);
    assert_int_equal(segment_path(index, sizeof(index), dir, bases[n - 1], ".index"), 0);
    shoal__free(bases);
    assert_int_equal(truncate(index, 8), 0);
    snprintf(filler, sizeof(filler), "%s/filler", tiny_dir);
    tiny_fill(filler);

    assert_int_equal(harness_daemon_restart(&tiny_daemon), 0);
    assert_true(harness_daemon_log_contains(&tiny_daemon, "kept-0: no disk space to rebuild the "
                                                          "index of segment"));
    assert_int_equal(shoal_client_open(tiny_daemon.socket, &c), 0);
    assert_int_equal(harness_read_numbered(c, "kept", 0, 150), 150);
    shoal_client_close(c);

    assert_int_equal(harness_daemon_stop(&tiny_daemon), 0);
    unlink(filler);
    assert_int_equal(harness_daemon_restart(&tiny_daemon), 0);
    assert_true(harness_daemon_log_contains(&tiny_daemon, "kept-0: rebuilt the index of segment"));
}

static int setup(void **state)
{
    (void)state;
    harness_watchdog(60, "test_disk_full");
    snprintf(enospc, sizeof(enospc), "/tmp/shoal-test-enospc-%d", (int)getpid());
    snprintf(enospc_index, sizeof(enospc_index), "/tmp/shoal-test-enospc-index-%d", (int)getpid());
    snprintf(meminfo, sizeof(meminfo), "/tmp/shoal-test-meminfo-%d", (int)getpid());
    unlink(enospc);
    unlink(enospc_index);
    unlink(meminfo);
    setenv("SHOALD_TEST_MEMINFO", meminfo, 1);
    setenv("SHOALD_TEST_ENOSPC_FILE", enospc, 1);
    setenv("SHOALD_TEST_ENOSPC_INDEX_FILE", enospc_index, 1);
    if (harness_daemon_start(&daemon_, "full", NULL) < 0)
        return -1;
    return shoal_client_open(daemon_.socket, &client) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    shoal_client_close(client);
    unlink(enospc);
    unlink(enospc_index);
    unlink(meminfo);
    unsetenv("SHOALD_TEST_MEMINFO");
    unsetenv("SHOALD_TEST_ENOSPC_FILE");
    unsetenv("SHOALD_TEST_ENOSPC_INDEX_FILE");
    tiny_cleanup();
    harness_daemon_cleanup(&cap_daemon);
    harness_kill_children();
    harness_watchdog(0, NULL);
    return harness_daemon_cleanup(&daemon_);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_disk_backpressures_then_resumes_without_loss,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_stop_with_records_off_disk_says_so_and_the_next_start_writes_them, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_restart_clears_the_last_runs_disk_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retention_runs_while_the_disk_is_full, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_index_writes_are_retried_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_shm_bytes_caps_all_rings_together, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_topic_that_cannot_fit_in_memory_is_refused_whole,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_topic_can_be_deleted_when_the_disk_is_really_full,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_start_on_a_full_disk_serves_a_topic_whose_index_needs_rebuilding, setup,
            teardown),
    };
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
