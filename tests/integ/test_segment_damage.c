/* test_segment_damage.c - a partition directory damaged while shoald was stopped: the
 * restarted daemon keeps every good record, names what it dropped, and keeps serving.
 * A FIFO in place of a segment is refused with an error instead of blocking the daemon. */
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

static int64_t log_end(struct harness_fixture *f, const char *topic)
{
    shoal_topic_info_t *info;
    int64_t end;
    assert_int_equal(shoal_topic_describe(f->c, topic, &info), 0);
    end = info->partitions[0].log_end_offset;
    shoal_topic_info_free(info);
    return end;
}

static void file_of(struct harness_fixture *f, const char *topic, int64_t base, const char *ext,
                    char *path, size_t cap)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/%s-0", f->d.data_dir, topic);
    assert_int_equal(segment_path(path, cap, dir, base, ext), 0);
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
        T(test_a_fifo_in_place_of_a_segment_is_refused_not_waited_on),
    };
#undef T
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
