/* test_ring_cut.c - a client that cuts a file of a ring short (ftruncate, which any process
 * holding it read-write can do) stops that partition, not shoald: the daemon logs which
 * file, gives it its size back, refuses new clients on the partition with the cause, keeps
 * serving every other topic, and at its next start rebuilds the ring from disk with every
 * record that was on disk.
 *
 * The daemon runs with SHOALD_TEST_ENOSPC_FILE (see test_disk_full.c), so that records can
 * be held in the ring, unflushed, while the test cuts the slot under them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "shm_layout.h"

#define SLOT_BYTES (64 << 10)

static char enospc[128];

/* Cut <topic>-<partition>.<file> to `bytes`, as a client holding it read-write could. */
static void cut_partition(struct harness_fixture *f, const char *topic, int partition,
                          const char *file, off_t bytes)
{
    char path[PATH_MAX];
    int fd;
    snprintf(path, sizeof(path), "%s/%s-%d.%s", f->d.shm_dir, topic, partition, file);
    assert_true((fd = open(path, O_RDWR)) >= 0);
    assert_int_equal(ftruncate(fd, bytes), 0);
    close(fd);
}

static void cut(struct harness_fixture *f, const char *topic, const char *file, off_t bytes)
{
    cut_partition(f, topic, 0, file, bytes);
}

static off_t file_size(struct harness_fixture *f, const char *topic, const char *file)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s-0.%s", f->d.shm_dir, topic, file);
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void create_stored(struct harness_fixture *f, const char *topic, uint32_t storage)
{
    shoal_topic_config_t cfg;
    shoal_topic_config_init(&cfg);
    cfg.storage = storage;
    cfg.ring_slots = 4;
    cfg.segment_bytes = SLOT_BYTES;
    cfg.max_record_bytes = 1024;
    assert_int_equal(shoal_topic_create(f->c, topic, &cfg), 0);
}

static void create(struct harness_fixture *f, const char *topic)
{
    create_stored(f, topic, SHOAL_STORAGE_DISK);
}

/* Send values "<first>".."<first + n - 1>" to partition 0; with acks disk, wait for them. */
static void send_values(shoal_producer_t *p, int first, int n, bool on_disk)
{
    shoal_ack_t ack;
    for (int i = first; i < first + n; i++) {
        char v[16];
        shoal_message_t m = {.value = v, .value_len = (size_t)snprintf(v, sizeof(v), "%d", i)};
        assert_int_equal(shoal_send(p, &m, &ack), 0);
    }
    if (on_disk)
        assert_int_equal(shoal_producer_wait(p, 0, ack.offset, SHOAL_ACKS_DISK, 5000), 0);
}

/* Read partition 0 from its start: exactly values "0".."n-1" at offsets 0..n-1. */
static void assert_holds(struct harness_fixture *f, const char *topic, int n)
{
    shoal_consumer_t *k;
    shoal_record_t r[16];
    shoal_topic_info_t *info;
    int got = 0, k_n;

    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, topic, NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, topic, 0, SHOAL_SEEK_BEGINNING, 0), 0);
    while ((k_n = shoal_poll(k, r, 16, 300)) > 0)
        for (int i = 0; i < k_n; i++, got++) {
            assert_int_equal(r[i].offset, got);
            assert_int_equal(atoi(r[i].value), got);
        }
    assert_int_equal(k_n, 0);
    assert_int_equal(got, n);
    shoal_consumer_close(k);
    assert_int_equal(shoal_topic_describe(f->c, topic, &info), 0);
    assert_int_equal(info->partitions[0].log_end_offset, n);
    shoal_topic_info_free(info);
}

/* The partition stops the producer attached to it (if any) and refuses new clients, with
 * the cause; the daemon serves another topic. */
static void assert_stopped_alone(struct harness_fixture *f, const char *topic,
                                 shoal_producer_t *attached)
{
    shoal_message_t m = {.value = "late", .value_len = 4};
    shoal_producer_t *p;
    char stopped[64];

    if (attached) {
        assert_int_equal(shoal_send(attached, &m, NULL), SHOAL_ECORRUPT);
        assert_non_null(strstr(shoal_errmsg(), "stopped by shoald"));
    }
    snprintf(stopped, sizeof(stopped), "%s-0 is stopped", topic);
    assert_int_equal(shoal_producer_open(f->c, topic, NULL, &p), SHOAL_ECORRUPT);
    assert_non_null(strstr(shoal_errmsg(), stopped));
    create(f, "whole");
    assert_int_equal(shoal_producer_open(f->c, "whole", NULL, &p), 0);
    send_values(p, 0, 3, true);
    shoal_producer_close(p);
    assert_holds(f, "whole", 3);
}

/* Run the CLI with args against f's daemon, stderr with stdout into out; its exit status. */
static int run_cli(struct harness_fixture *f, const char *args, char *out, size_t cap)
{
    const char *build = getenv("BUILD");
    char cmd[PATH_MAX * 2];
    size_t n;
    FILE *fp;
    int status;

    snprintf(cmd, sizeof(cmd), "%s/shoal --socket %s %s 2>&1", build ? build : "build", f->d.socket,
             args);
    assert_non_null(fp = popen(cmd, "r"));
    n = fread(out, 1, cap - 1, fp);
    out[n] = '\0';
    status = pclose(fp);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* `shoal stats` shows the stopped partition's row from what shoald knows, says why, and
 * fails (it failed whole, without a table: found by a user session). */
static void expect_stats_stopped(struct harness_fixture *f, const char *topic)
{
    char args[128], out[4096];

    snprintf(args, sizeof(args), "stats %s", topic);
    assert_int_equal(run_cli(f, args, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "STOPPED"));
    assert_non_null(strstr(out, "-0 is stopped"));
}

static void restart(struct harness_fixture *f)
{
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    shoal_client_close(f->c);
    assert_int_equal(shoal_client_open(f->d.socket, &f->c), 0);
}

INTEG_TEST(test_a_cut_control_block_and_readers_table_stop_the_partition_not_the_daemon)
{
    shoal_producer_t *p;
    shoal_consumer_t *k;
    shoal_record_t r[8];

    create(f, "cut");
    assert_int_equal(shoal_producer_open(f->c, "cut", NULL, &p), 0);
    send_values(p, 0, 5, true);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "cut", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "cut", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    assert_int_equal(shoal_poll(k, r, 8, 1000), 5);

    cut(f, "cut", "ctl", 0);
    cut(f, "cut", "readers", 100);
    harness_daemon_expect_log(&f->d, "cut-0: partition stopped with offsets up to 5 on disk");
    assert_true(harness_daemon_log_contains(
        &f->d, "cut-0: another process cut the ring's control block short (0 of"));
    assert_true(harness_daemon_log_contains(
        &f->d, "cut-0: another process cut the ring's readers table short (100 of"));
    assert_int_equal(file_size(f, "cut", "ctl"), sizeof(struct shm_ctl));
    assert_int_equal(file_size(f, "cut", "readers"), sizeof(struct shm_readers));
    assert_stopped_alone(f, "cut", p);
    expect_stats_stopped(f, "cut");
    assert_int_equal(shoal_poll(k, r, 8, 1000), SHOAL_ECORRUPT); /* the consumer too */
    assert_non_null(strstr(shoal_errmsg(), "stopped by shoald"));
    shoal_consumer_close(k);
    shoal_producer_close(p);

    restart(f);
    assert_true(harness_daemon_log_contains(&f->d, "cut-0: shared ring unusable"));
    assert_holds(f, "cut", 5);
    assert_int_equal(shoal_producer_open(f->c, "cut", NULL, &p), 0); /* appends go on */
    send_values(p, 5, 2, true);
    shoal_producer_close(p);
    assert_holds(f, "cut", 7);
}

/* Records acknowledged in memory but not yet on disk (the disk is full) sit in slot 0 when
 * a client cuts it: the flusher's write from it fails (EFAULT, not SIGBUS: the kernel reads
 * the slot) unless its probe of the slot's end found the cut first; either way the
 * partition stops, and what was only in the slot is lost. */
INTEG_TEST(test_a_slot_cut_under_unflushed_records_stops_the_partition_not_the_daemon)
{
    shoal_producer_t *p;

    create(f, "slotcut");
    assert_int_equal(shoal_producer_open(f->c, "slotcut", NULL, &p), 0);
    send_values(p, 0, 2, true);
    harness_flag_file(enospc, true);
    send_values(p, 2, 3, false);
    cut(f, "slotcut", "slot0", 0);
    harness_flag_file(enospc, false);

    harness_daemon_expect_log(&f->d, "slotcut-0: partition stopped with offsets up to 2 on disk");
    assert_true(harness_daemon_log_contains(
        &f->d, "slotcut-0: another process cut the ring's slot 0 short (0 of 65536 bytes)"));
    assert_int_equal(file_size(f, "slotcut", "slot0"), SLOT_BYTES);
    assert_false(harness_daemon_log_contains(&f->d, "Bad address")); /* EFAULT understood */
    assert_stopped_alone(f, "slotcut", p);
    shoal_producer_close(p);

    restart(f);
    assert_holds(f, "slotcut", 2);
}

/* A memory topic has no disk to come back from: stopped, and empty after the restart, and
 * its log says so without a word of flushing, which it never does. The
 * cut leaves the first page, which is all the daemon reads of a memory topic's control
 * block in its passes: it finds the cut by probing each mapping's last byte. */
INTEG_TEST(test_a_cut_memory_topic_stops_and_comes_back_empty)
{
    shoal_producer_t *p;

    create_stored(f, "memcut", SHOAL_STORAGE_MEMORY);
    assert_int_equal(shoal_producer_open(f->c, "memcut", NULL, &p), 0);
    send_values(p, 0, 3, false);
    cut(f, "memcut", "ctl", 64);

    harness_daemon_expect_log(&f->d,
                              "memcut-0: partition stopped; its records were in memory only");
    assert_true(harness_daemon_log_contains(
        &f->d, "memcut-0: another process cut the ring's control block short (64 of"));
    assert_stopped_alone(f, "memcut", p);
    usleep(200000); /* many flusher passes: none calls the stop a flush, or its end a resume */
    assert_false(harness_daemon_log_contains(&f->d, "memcut-0: flush failed"));
    assert_false(harness_daemon_log_contains(&f->d, "memcut-0: disk writes resumed"));
    shoal_producer_close(p);

    restart(f);
    assert_holds(f, "memcut", 0);
}

/* A client that cuts a file and puts another in its place: shoald does not map the
 * newcomer in the cut one's stead (nor resize it, nor write to it), and stops the
 * partition; its next start rebuilds the ring from disk. */
INTEG_TEST(test_a_cut_file_replaced_by_another_is_left_alone)
{
    char path[PATH_MAX], moved[PATH_MAX + 8];
    uint8_t page[4096], seen[4096];
    shoal_producer_t *p;
    int cut_fd, fd;

    create(f, "swap");
    assert_int_equal(shoal_producer_open(f->c, "swap", NULL, &p), 0);
    send_values(p, 0, 3, true);
    shoal_producer_close(p); /* its mapping would fault: nobody can give the moved file back */

    snprintf(path, sizeof(path), "%s/swap-0.ctl", f->d.shm_dir);
    snprintf(moved, sizeof(moved), "%s.moved", path);
    assert_true((cut_fd = open(path, O_RDWR)) >= 0);
    assert_int_equal(rename(path, moved), 0);
    memset(page, 0xa5, sizeof(page));
    assert_true((fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600)) >= 0);
    assert_int_equal(ftruncate(fd, sizeof(struct shm_ctl)), 0);
    assert_int_equal(pwrite(fd, page, sizeof(page), 0), (ssize_t)sizeof(page));
    assert_int_equal(ftruncate(cut_fd, 0), 0);
    close(cut_fd);

    harness_daemon_expect_log(&f->d, "swap-0: partition stopped with offsets up to 3 on disk");
    assert_true(harness_daemon_log_contains(
        &f->d, "swap-0: the ring's control block faulted and its path now names another file"));
    assert_int_equal(file_size(f, "swap", "ctl"), sizeof(struct shm_ctl));
    assert_int_equal(pread(fd, seen, sizeof(seen), 0), (ssize_t)sizeof(seen));
    assert_memory_equal(seen, page, sizeof(page)); /* not the daemon's control block */
    close(fd);
    assert_stopped_alone(f, "swap", NULL);

    restart(f);
    assert_holds(f, "swap", 3);
    unlink(moved);
}

/* Send "<partition>" to each of the topic's partitions 1 and 2, twice. */
static void send_to_the_others(struct harness_fixture *f, const char *topic)
{
    shoal_producer_t *p;
    assert_int_equal(shoal_producer_open(f->c, topic, NULL, &p), 0);
    for (int i = 0; i < 4; i++) {
        shoal_message_t m = {.value = i % 2 ? "2" : "1", .value_len = 1, .partition = 1 + i % 2};
        assert_int_equal(shoal_send(p, &m, NULL), 0);
    }
    shoal_producer_close(p);
}

/* Poll k until it read the 4 records of send_to_the_others(), each from the partition its
 * value names; the first poll fails once, saying partition 0 was left out. */
static void read_the_others(shoal_consumer_t *k)
{
    shoal_record_t r[8];
    int got = 0, n, left_out = 0;

    for (int i = 0; i < 200 && got < 4; i++) {
        if ((n = shoal_poll(k, r, 8, 20)) == SHOAL_ECORRUPT) {
            assert_non_null(strstr(shoal_errmsg(), "left out of the assignment"));
            assert_non_null(strstr(shoal_errmsg(), "lo-0 is stopped"));
            left_out++;
            continue;
        }
        assert_true(n >= 0);
        for (int j = 0; j < n; j++, got++)
            assert_int_equal(r[j].partition, atoi(r[j].value));
    }
    assert_int_equal(got, 4);
    assert_int_equal(left_out, 1);
}

static int32_t generation(struct harness_fixture *f, const char *group)
{
    shoal_group_info_t *info;
    int32_t gen;
    assert_int_equal(shoal_group_describe(f->c, group, &info), 0);
    gen = info->generation;
    shoal_group_info_free(info);
    return gen;
}

/* A partition shoald stopped is left out of an assign of every partition and of a group
 * member's assignment: the others are read, and the next poll says which was left out,
 * once. Before, the assign failed as a whole, and a group member failed every round and
 * joined again at each poll, a rebalance of the whole group each time. A list that names
 * the stopped partition still fails as a whole. */
INTEG_TEST(test_a_stopped_partition_is_left_out_of_assignments_and_the_others_are_read)
{
    static const int32_t zero = 0;
    shoal_topic_config_t cfg;
    shoal_consumer_options_t o;
    shoal_consumer_t *k;
    shoal_client_t *kc;
    const shoal_message_t zero_value = {.value = "0", .value_len = 1, .partition = 0};
    const char *topic = "lo";
    shoal_producer_t *p;
    shoal_record_t r[8];
    char out[4096];
    int32_t gen;
    int n = 0;

    shoal_topic_config_init(&cfg);
    cfg.partitions = 3;
    cfg.ring_slots = 4;
    cfg.segment_bytes = SLOT_BYTES;
    assert_int_equal(shoal_topic_create(f->c, topic, &cfg), 0);
    cut_partition(f, topic, 0, "readers", 100);
    harness_daemon_expect_log(&f->d, "lo-0: partition stopped");
    send_to_the_others(f, topic);

    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, topic, &zero, 1), SHOAL_ECORRUPT);
    assert_int_equal(shoal_consumer_assign(k, topic, NULL, 0), 0);
    for (int32_t part = 1; part < 3; part++)
        assert_int_equal(shoal_consumer_seek(k, topic, part, SHOAL_SEEK_BEGINNING, 0), 0);
    read_the_others(k);
    shoal_consumer_close(k);
    /* The CLI warns and reads the others; it used to fail "past a damaged batch". */
    assert_int_equal(run_cli(f, "consume lo --from-beginning --timeout-ms 300 --format '%p:%v\n'",
                             out, sizeof(out)),
                     0);
    assert_non_null(strstr(out, "warning: consume 'lo': a partition stopped by shoald was left"));
    assert_non_null(strstr(out, "1:1\n1:1\n"));
    assert_non_null(strstr(out, "2:2\n2:2\n"));

    shoal_consumer_options_init(&o);
    o.group_id = "lo-readers";
    o.auto_offset_reset = SHOAL_OFFSET_RESET_EARLIEST;
    assert_int_equal(shoal_client_open(f->d.socket, &kc), 0); /* f->c goes at the restart */
    assert_int_equal(shoal_consumer_open(kc, &o, &k), 0);
    assert_int_equal(shoal_consumer_subscribe(k, &topic, 1), 0);
    read_the_others(k);
    gen = generation(f, "lo-readers");
    for (int i = 0; i < 20; i++) /* no rebalance over it again */
        assert_true(shoal_poll(k, NULL, 0, 20) >= 0);
    assert_int_equal(generation(f, "lo-readers"), gen);
    assert_int_equal(shoal_commit_sync(k, NULL, 0), 0); /* of what it holds */

    /* shoald's restart rebuilds the ring; the member rejoins and reads partition 0 too. */
    restart(f);
    assert_int_equal(shoal_producer_open(f->c, topic, NULL, &p), 0);
    assert_int_equal(shoal_send(p, &zero_value, NULL), 0);
    shoal_producer_close(p);
    for (int i = 0; i < 300 && n == 0; i++)
        if ((n = shoal_poll(k, r, 8, 20)) < 0 && n != SHOAL_ECLOSED && n != SHOAL_ENODAEMON)
            fail_msg("poll after the restart: %s", shoal_errmsg());
        else if (n < 0)
            n = 0;
    assert_int_equal(n, 1);
    assert_int_equal(r[0].partition, 0);
    assert_int_equal(shoal_consumer_close(k), 0);
    shoal_client_close(kc);
}

static int setup(void **state)
{
    static struct harness_fixture f;
    *state = &f;
    snprintf(enospc, sizeof(enospc), "/tmp/shoal-test-cut-enospc-%d", (int)getpid());
    unlink(enospc);
    setenv("SHOALD_TEST_ENOSPC_FILE", enospc, 1);
    return harness_fixture_start(&f, "cut", 60, NULL);
}

static int teardown(void **state)
{
    unlink(enospc);
    unsetenv("SHOALD_TEST_ENOSPC_FILE");
    return harness_fixture_stop(*state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_a_cut_control_block_and_readers_table_stop_the_partition_not_the_daemon, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_a_slot_cut_under_unflushed_records_stops_the_partition_not_the_daemon, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_a_cut_memory_topic_stops_and_comes_back_empty, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_cut_file_replaced_by_another_is_left_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_stopped_partition_is_left_out_of_assignments_and_the_others_are_read, setup,
            teardown),
    };
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
