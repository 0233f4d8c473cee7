/* test_consumer_lag.c - a consumer that lags by a whole ring does not throttle producers.
 *
 * A disk topic's producers need the slot after the active one; a consumer reading slowly
 * from that slot pins it. The consumer must step aside to the disk copy at its next poll,
 * so the producer waits at most one poll interval, never until the consumer has read the
 * whole slot. Without that, the producer below would get SHOAL_AGAIN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "shoal.h"

#define RECORDS           200
#define VALUE_BYTES       1000
#define POLL_GAP_US       20000 /* the slow consumer: one record per 20 ms */
#define PRODUCER_BLOCK_MS 500

static struct harness_daemon daemon_;

static shoal_topic_config_t small_ring(void)
{
    shoal_topic_config_t cfg;
    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = 64 << 10; /* about 60 records per slot */
    cfg.ring_slots = 2;
    cfg.max_record_bytes = 4096;
    return cfg;
}

/* The child: send RECORDS records numbered 1.. with a short block_ms. */
static int produce(void *arg)
{
    shoal_producer_options_t opts;
    shoal_producer_t *p;
    shoal_client_t *c;
    char value[VALUE_BYTES];
    (void)arg;

    shoal_producer_options_init(&opts);
    opts.block_ms = PRODUCER_BLOCK_MS;
    if (shoal_client_open(daemon_.socket, &c) < 0 || shoal_producer_open(c, "lag", &opts, &p) < 0)
        return 2;
    for (int i = 1; i <= RECORDS; i++) {
        shoal_message_t m = {.value = value, .value_len = sizeof(value), .partition = 0};
        int rc;
        memset(value, 'a' + i % 26, sizeof(value));
        snprintf(value, sizeof(value), "%d", i);
        rc = shoal_send(p, &m, NULL);
        if (rc < 0) {
            fprintf(stderr, "producer: record %d: %s (%s)\n", i, shoal_strerror(rc),
                    shoal_errmsg());
            return 1;
        }
    }
    shoal_producer_close(p);
    shoal_client_close(c);
    return 0;
}

/* Read one record and check it is the next one. */
static void expect_next(shoal_consumer_t *k, int64_t *next)
{
    shoal_record_t r;
    int n = shoal_poll(k, &r, 1, 2000);
    assert_int_equal(n, 1);
    assert_int_equal(r.offset, *next);
    assert_int_equal(r.value_len, VALUE_BYTES);
    (*next)++;
}

static void test_slow_consumer_steps_aside_for_a_waiting_producer(void **state)
{
    shoal_topic_config_t cfg = small_ring();
    shoal_consumer_t *k;
    shoal_producer_t *p;
    shoal_client_t *c;
    int64_t next = 0;
    char first[VALUE_BYTES] = "0";
    shoal_message_t m = {.value = first, .value_len = sizeof(first), .partition = 0};
    pid_t child;
    int status = -1;
    (void)state;

    assert_int_equal(shoal_client_open(daemon_.socket, &c), 0);
    assert_int_equal(shoal_topic_create(c, "lag", &cfg), 0);
    assert_int_equal(shoal_producer_open(c, "lag", NULL, &p), 0);
    assert_int_equal(shoal_send(p, &m, NULL), 0);
    assert_int_equal(shoal_consumer_open(c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "lag", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "lag", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    expect_next(k, &next); /* the consumer now pins slot 0 */

    child = harness_fork(produce, NULL, 30);
    assert_true(child > 0);
    while ((status = harness_poll(child)) == -1 && next <= RECORDS) {
        expect_next(k, &next);
        usleep(POLL_GAP_US);
    }
    if (status == -1)
        status = harness_wait(child, 10000);
    assert_int_equal(status, 0);
    while (next <= RECORDS)
        expect_next(k, &next);

    shoal_consumer_close(k);
    shoal_producer_close(p);
    shoal_client_close(c);
}

static int setup(void **state)
{
    (void)state;
    harness_watchdog(60, "test_consumer_lag");
    return harness_daemon_start(&daemon_, "lag", NULL);
}

static int teardown(void **state)
{
    (void)state;
    harness_kill_children();
    harness_watchdog(0, NULL);
    return harness_daemon_cleanup(&daemon_);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slow_consumer_steps_aside_for_a_waiting_producer,
                                        setup, teardown),
    };
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
