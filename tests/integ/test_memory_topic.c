/* test_memory_topic.c - a memory topic keeps only its ring: the oldest slot is reused, a
 * consumer that falls off the tail gets SHOAL_EOFFSET once and moves per
 * auto_offset_reset, and a lagging but polling consumer never blocks the producer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "shm_layout.h"
#include "shoal.h"

#define VALUE_BYTES 1000
#define RECORDS     400 /* about three laps of a two-slot, 64 KiB ring */

static struct harness_daemon daemon_;
static shoal_client_t *client;

static void create_memory_topic(void)
{
    shoal_topic_config_t cfg;
    shoal_topic_config_init(&cfg);
    cfg.storage = SHOAL_STORAGE_MEMORY;
    cfg.segment_bytes = 64 << 10;
    cfg.ring_slots = 2;
    cfg.max_record_bytes = 4096;
    assert_int_equal(shoal_topic_create(client, "mem", &cfg), 0);
}

static int send_range(shoal_producer_t *p, int first, int n)
{
    char value[VALUE_BYTES];
    for (int i = first; i < first + n; i++) {
        shoal_message_t m = {.value = value, .value_len = sizeof(value), .partition = 0};
        int rc;
        memset(value, 'm', sizeof(value));
        snprintf(value, sizeof(value), "%d", i);
        if ((rc = shoal_send(p, &m, NULL)) < 0)
            return rc;
    }
    return 0;
}

/* The child: *(int *)arg records (RECORDS when arg is NULL) with a generous block_ms. */
static int produce(void *arg)
{
    shoal_producer_options_t opts;
    shoal_producer_t *p;
    shoal_client_t *c;
    shoal_producer_options_init(&opts);
    opts.block_ms = 3000;
    if (shoal_client_open(daemon_.socket, &c) < 0 || shoal_producer_open(c, "mem", &opts, &p) < 0)
        return 2;
    return send_range(p, 1, arg ? *(int *)arg : RECORDS) < 0 ? 1 : 0;
}

static shoal_consumer_t *open_consumer(uint32_t reset)
{
    shoal_consumer_options_t o;
    shoal_consumer_t *k;
    shoal_consumer_options_init(&o);
    o.auto_offset_reset = reset;
    assert_int_equal(shoal_consumer_open(client, &o, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "mem", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "mem", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    return k;
}

/* A slow consumer (one record per 5 ms) on a fast producer: the producer never blocks for
 * long, the consumer is told once per lap it lost, and reads on gapless after each jump. */
static void run_slow_consumer(uint32_t reset)
{
    shoal_producer_t *p;
    shoal_consumer_t *k = open_consumer(reset);
    shoal_record_t r;
    int64_t next = 0, lost_reports = 0, read = 0;
    pid_t child;
    int status = -1, n;

    assert_int_equal(shoal_producer_open(client, "mem", NULL, &p), 0);
    assert_int_equal(send_range(p, 0, 1), 0);
    assert_int_equal(shoal_poll(k, &r, 1, 1000), 1); /* pins the first slot */
    next = 1;
    assert_true((child = harness_fork(produce, NULL, 30)) > 0);
    while ((status = harness_poll(child)) == -1) {
        n = shoal_poll(k, &r, 1, 100);
        if (n == SHOAL_EOFFSET) {
            int64_t at;
            assert_non_null(strstr(shoal_errmsg(), "overwritten"));
            at = shoal_consumer_position(k, "mem", 0);
            assert_true(at > next);
            next = at;
            lost_reports++;
            continue;
        }
        assert_true(n >= 0);
        if (n == 1) {
            assert_int_equal(r.offset, next); /* gapless between jumps */
            assert_int_equal(atoi(r.value), (int)r.offset);
            next++;
            read++;
        }
        usleep(5000);
    }
    assert_int_equal(status, 0); /* the producer was never held back past block_ms */
    assert_true(lost_reports >= 1);
    assert_true(read >= 1);
    shoal_consumer_close(k);
    shoal_producer_close(p);
}

/* A memory topic whose consumer has read one record and pins slot 0, sealed by the 99
 * records sent after it, while *p appends to slot 1: the next slot producers reuse is the
 * consumer's. */
static shoal_consumer_t *consumer_on_sealed_slot(shoal_producer_t **p)
{
    shoal_consumer_t *k;
    shoal_record_t r;

    create_memory_topic();
    k = open_consumer(SHOAL_OFFSET_RESET_EARLIEST);
    assert_int_equal(shoal_producer_open(client, "mem", NULL, p), 0);
    assert_int_equal(send_range(*p, 0, 1), 0);
    assert_int_equal(shoal_poll(k, &r, 1, 1000), 1); /* pins slot 0 */
    assert_int_equal(send_range(*p, 1, 99), 0);      /* slot 0 sealed, slot 1 active */
    return k;
}

/* Poll k until it has read every offset from *next up to end, in order: never a gap, nor a
 * poll that fails (SHOAL_EOFFSET: a slot given up). */
static void read_gapless(shoal_consumer_t *k, int64_t *next, int64_t end)
{
    shoal_record_t r[16];

    while (*next < end) {
        int n = shoal_poll(k, r, 16, 1000);
        if (n <= 0)
            fail_msg("poll at %lld of %lld: %d %s", (long long)*next, (long long)end, n,
                     shoal_errmsg());
        for (int i = 0; i < n; i++)
            assert_int_equal(r[i].offset, (*next)++);
    }
}

/* A producer killed while it waited for room leaves space_waiters raised. A consumer on the
 * slot producers reuse next must not take that for a waiting producer and let the slot go:
 * with nobody waiting, it reads every record. */
static void test_consumer_keeps_its_slot_when_no_producer_really_waits(void **state)
{
    shoal_producer_t *p;
    shoal_consumer_t *k;
    struct shm_ctl *ctl;
    int64_t next = 1;
    (void)state;

    k = consumer_on_sealed_slot(&p);
    ctl = harness_map_ctl(&daemon_, "mem");
    assert_int_equal(atomic_load(&ctl->active_slot), 1);
    atomic_fetch_add(&ctl->space_waiters, 1); /* as a killed waiter leaves it */
    read_gapless(k, &next, 100);
    atomic_fetch_sub(&ctl->space_waiters, 1);
    munmap(ctl, sizeof(*ctl));
    shoal_consumer_close(k);
    shoal_producer_close(p);
}

/* A ring full long ago (during an earlier lag, since resolved) is no producer waiting now:
 * a consumer's first look at another sealed slot keeps it and reads it. It used to compare
 * the ring's full count with its last look at any slot, gave up the slot at once, and
 * skipped its records as overwritten while the ring still held them (a chaos soak: two
 * SHOAL_EOFFSETs at every resume of a stopped reader, the second one wrong). */
static void test_an_old_full_ring_does_not_cost_the_next_sealed_slot(void **state)
{
    shoal_producer_t *p;
    shoal_consumer_t *k;
    struct shm_ctl *ctl;
    int64_t next = 1;
    int sent = 100;
    (void)state;

    k = consumer_on_sealed_slot(&p);
    ctl = harness_map_ctl(&daemon_, "mem");
    read_gapless(k, &next, sent);               /* a look at sealed slot 0, then slot 1's */
    atomic_fetch_add(&ctl->full_events, 1);     /* a producer once found the ring full */
    while (atomic_load(&ctl->active_slot) == 1) /* slot 1 sealed with unread records */
        assert_int_equal(send_range(p, sent++, 1), 0);
    assert_int_equal(atomic_load(&ctl->space_waiters), 0);
    read_gapless(k, &next, sent);
    munmap(ctl, sizeof(*ctl));
    shoal_consumer_close(k);
    shoal_producer_close(p);
}

/* A consumer on the slot a producer is about to need lets it go at its first poll after the
 * producer starts waiting, however long after its previous poll that is: the producer
 * then goes on at once, without another poll. (Needing two polls that saw the producer
 * waiting held a consumer that polls every 2 s over a producer's 3 s block_ms.) */
static void test_consumer_yields_at_its_first_poll_after_a_producer_waits(void **state)
{
    static int records = 100; /* fills the active slot, then needs the consumer's */
    shoal_producer_t *p;
    shoal_consumer_t *k;
    shoal_record_t r;
    struct shm_ctl *ctl;
    pid_t child;
    int waited = 0;
    (void)state;

    k = consumer_on_sealed_slot(&p);
    assert_int_equal(shoal_poll(k, &r, 1, 0), 1); /* a look while nobody waits */
    ctl = harness_map_ctl(&daemon_, "mem");

    assert_true((child = harness_fork(produce, &records, 30)) > 0);
    while (atomic_load(&ctl->space_waiters) == 0 && waited++ < 200)
        usleep(10000);
    assert_int_not_equal(atomic_load(&ctl->space_waiters), 0); /* blocked on slot 0 */
    usleep(100000);
    shoal_poll(k, &r, 1, 0);                        /* the first poll since: lets slot 0 go */
    assert_int_equal(harness_wait(child, 2000), 0); /* done, well inside block_ms */
    munmap(ctl, sizeof(*ctl));
    shoal_consumer_close(k);
    shoal_producer_close(p);
}

/* A producer with block_ms 0 never waits: it gets SHOAL_AGAIN and sends again. The
 * consumer on the slot it needs lets it go at its next poll all the same (it used to
 * yield only to a producer that waited, and so paced this one to its own reading). */
static void test_consumer_yields_to_a_producer_that_does_not_wait(void **state)
{
    shoal_producer_options_t opts;
    shoal_producer_t *p, *q;
    shoal_consumer_t *k;
    shoal_record_t r;
    int sent = 0;
    (void)state;

    k = consumer_on_sealed_slot(&p);
    assert_int_equal(shoal_poll(k, &r, 1, 0), 1); /* a look while nobody wants room */
    shoal_producer_options_init(&opts);
    opts.block_ms = 0;
    assert_int_equal(shoal_producer_open(client, "mem", &opts, &q), 0);
    while (sent < 1000 && send_range(q, 100 + sent, 1) == 0)
        sent++;
    assert_true(sent < 1000);
    assert_int_equal(send_range(q, 100 + sent, 1), SHOAL_AGAIN); /* slot 0 is the consumer's */
    assert_int_equal(shoal_poll(k, &r, 1, 0), SHOAL_EOFFSET);    /* lets it go */
    assert_int_equal(send_range(q, 100 + sent, 1), 0);
    shoal_consumer_close(k);
    shoal_producer_close(q);
    shoal_producer_close(p);
}

static void test_slow_consumer_falls_off_and_resumes_at_the_oldest_record(void **state)
{
    (void)state;
    create_memory_topic();
    run_slow_consumer(SHOAL_OFFSET_RESET_EARLIEST);
}

static void test_slow_consumer_with_latest_reset_jumps_to_the_log_end(void **state)
{
    (void)state;
    create_memory_topic();
    run_slow_consumer(SHOAL_OFFSET_RESET_LATEST);
}

static void test_seek_to_an_overwritten_offset_reports_it_then_reads_the_oldest(void **state)
{
    shoal_producer_t *p;
    shoal_consumer_t *k;
    shoal_record_t r;
    shoal_topic_info_t *info;
    char want[128];
    int64_t start;
    (void)state;

    create_memory_topic();
    assert_int_equal(shoal_producer_open(client, "mem", NULL, &p), 0);
    assert_int_equal(send_range(p, 0, RECORDS), 0); /* nobody reads: the ring wraps */
    assert_int_equal(shoal_topic_describe(client, "mem", &info), 0);
    start = info->partitions[0].log_start_offset;
    shoal_topic_info_free(info);
    assert_true(start > 0);

    k = open_consumer(SHOAL_OFFSET_RESET_EARLIEST);
    assert_int_equal(shoal_consumer_seek(k, "mem", 0, SHOAL_SEEK_OFFSET, 0), 0);
    assert_int_equal(shoal_poll(k, &r, 1, 1000), SHOAL_EOFFSET);
    assert_int_equal(shoal_poll(k, &r, 1, 1000), 1);
    assert_int_equal(r.offset, start);
    /* Seeking to the beginning follows the log start, lazily as Kafka's: no error, and the
     * position says where the next poll reads even after the start moved on. */
    assert_int_equal(shoal_consumer_seek(k, "mem", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    shoal_consumer_release(k);
    assert_int_equal(send_range(p, RECORDS, RECORDS), 0); /* the log start moves on */
    assert_int_equal(shoal_topic_describe(client, "mem", &info), 0);
    assert_true(info->partitions[0].log_start_offset > start);
    start = info->partitions[0].log_start_offset;
    shoal_topic_info_free(info);
    assert_int_equal(shoal_consumer_position(k, "mem", 0), start);
    assert_int_equal(shoal_poll(k, &r, 1, 1000), 1);
    assert_int_equal(r.offset, start);
    shoal_consumer_close(k);

    /* latest passes over what the ring still holds, and says so */
    k = open_consumer(SHOAL_OFFSET_RESET_LATEST);
    assert_int_equal(shoal_consumer_seek(k, "mem", 0, SHOAL_SEEK_OFFSET, 0), 0);
    assert_int_equal(shoal_poll(k, &r, 1, 1000), SHOAL_EOFFSET);
    snprintf(want, sizeof(want), "offsets %lld..%lld, still in the ring, are skipped too",
             (long long)start, (long long)2 * RECORDS - 1);
    assert_non_null(strstr(shoal_errmsg(), want));
    assert_int_equal(shoal_poll(k, &r, 1, 100), 0);
    shoal_consumer_close(k);
    shoal_producer_close(p);
}

/* A paused reader of a memory topic holds no slot: a producer laps the ring without
 * waiting for it, and the resume says what was lost (SHOAL_EOFFSET), then reads on from the
 * oldest record (auto_offset_reset earliest). */
static void test_a_paused_reader_holds_no_producer_back_and_is_told_what_it_lost(void **state)
{
    shoal_producer_options_t opts;
    shoal_producer_t *p;
    shoal_consumer_t *k;
    shoal_record_t r;
    (void)state;

    create_memory_topic();
    k = open_consumer(SHOAL_OFFSET_RESET_EARLIEST);
    assert_int_equal(shoal_consumer_seek(k, "mem", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    shoal_producer_options_init(&opts);
    opts.block_ms = 0;
    assert_int_equal(shoal_producer_open(client, "mem", &opts, &p), 0);
    assert_int_equal(send_range(p, 0, 1), 0);
    assert_int_equal(shoal_poll(k, &r, 1, 1000), 1); /* it stands in slot 0 */
    assert_int_equal(shoal_consumer_pause(k, "mem", 0), 0);
    assert_int_equal(shoal_poll(k, &r, 1, 0), 0);   /* the last views are over */
    assert_int_equal(send_range(p, 1, RECORDS), 0); /* laps the ring: nothing waits */
    assert_int_equal(shoal_consumer_position(k, "mem", 0), 1);
    assert_int_equal(shoal_consumer_resume(k, "mem", 0), 0);
    assert_int_equal(shoal_poll(k, &r, 1, 1000), SHOAL_EOFFSET);
    assert_non_null(strstr(shoal_errmsg(), "mem-0: offsets 1.."));
    assert_non_null(strstr(shoal_errmsg(), "were overwritten in the memory topic's ring"));
    assert_int_equal(shoal_poll(k, &r, 1, 1000), 1);
    assert_true(r.offset > 1);
    shoal_consumer_close(k);
    shoal_producer_close(p);
}

static int setup(void **state)
{
    (void)state;
    harness_watchdog(60, "test_memory_topic");
    if (harness_daemon_start(&daemon_, "mem", NULL) < 0)
        return -1;
    return shoal_client_open(daemon_.socket, &client) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    shoal_client_close(client);
    harness_kill_children();
    harness_watchdog(0, NULL);
    return harness_daemon_cleanup(&daemon_);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_slow_consumer_falls_off_and_resumes_at_the_oldest_record),
        T(test_consumer_keeps_its_slot_when_no_producer_really_waits),
        T(test_an_old_full_ring_does_not_cost_the_next_sealed_slot),
        T(test_consumer_yields_at_its_first_poll_after_a_producer_waits),
        T(test_consumer_yields_to_a_producer_that_does_not_wait),
        T(test_slow_consumer_with_latest_reset_jumps_to_the_log_end),
        T(test_seek_to_an_overwritten_offset_reports_it_then_reads_the_oldest),
        T(test_a_paused_reader_holds_no_producer_back_and_is_told_what_it_lost),
    };
#undef T
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
