/* roles.c - the shoal child processes of the benchmark suite, and the child helpers.
 *
 * DESIGN: each role is one process that uses libshoal exactly as an application would:
 * its own client, producer and consumer handles, records through shoal_send_batch() and
 * shoal_poll(). A consumer reads the first and last byte of every value (what a consumer
 * that uses its records pays at least) and checks that offsets follow each other, counting
 * gaps. Counters go to the child's own cache line of the shared control block; latencies of
 * the measured window go to a local array that is sorted once at the end. */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "shoal.h"

#define POLL_MAX 256
/* Only bounds how late a waiting process sees STOP: a run ends no later than this after it
 * (at 100 ms, a ping-pong's reaping took ~100 ms of every quick run's ~450). */
#define POLL_TIMEOUT_MS 10

static volatile uint64_t bench_sink; /* keeps the value touches from being optimised away */

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_phase_wait(struct bench_ctl *ctl, uint32_t ph, int timeout_ms)
{
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};
    while (bench_phase(ctl) == ph)
        if (syscall(SYS_futex, (uint32_t *)&ctl->phase, FUTEX_WAIT, ph, timeout_ms < 0 ? NULL : &ts,
                    NULL, 0) < 0 &&
            errno == ETIMEDOUT)
            return;
}

void bench_set_phase(struct bench_ctl *ctl, uint32_t ph)
{
    atomic_store(&ctl->phase, ph);
    syscall(SYS_futex, (uint32_t *)&ctl->phase, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

void bench_child_ready(struct bench_ctl *ctl, int idx)
{
    atomic_store(&ctl->child[idx].ready, 1);
    bench_phase_wait(ctl, BENCH_SETUP, -1);
}

int bench_lat_init(struct bench_lat *l, size_t cap)
{
    l->n = 0;
    l->cap = cap;
    l->ns = malloc(2 * cap * sizeof(*l->ns)); /* pages are touched only as far as used */
    return l->ns ? 0 : -ENOMEM;
}

/* Sort the latencies ascending, using n more of spare: a radix sort, one pass per byte up
 * to the largest value's top byte. qsort took 60-90 ms on the ~700k round trips of a
 * 150 ms ping-pong (then a fifth of each quick run); this takes a few. Latencies are
 * differences of a monotonic clock, never negative. */
static void lat_sort(int64_t *a, int64_t *spare, size_t n)
{
    uint64_t *src = (uint64_t *)a, *dst = (uint64_t *)spare, top = 0;

    for (size_t i = 0; i < n; i++)
        top |= src[i];
    for (unsigned shift = 0; shift < 64 && (top >> shift) != 0; shift += 8) {
        size_t at[257] = {0};
        uint64_t *t;
        for (size_t i = 0; i < n; i++)
            at[(src[i] >> shift & 255) + 1]++;
        for (int b = 0; b < 256; b++)
            at[b + 1] += at[b];
        for (size_t i = 0; i < n; i++)
            dst[at[src[i] >> shift & 255]++] = src[i];
        t = src, src = dst, dst = t;
    }
    if (src != (uint64_t *)a)
        memcpy(a, src, n * sizeof(*a));
}

void bench_lat_finish(struct bench_lat *l, struct bench_child *ch)
{
    static const double q[5] = {0.50, 0.90, 0.99, 0.999, 1.0};
    ch->samples = l->n;
    if (l->n > 0) {
        lat_sort(l->ns, l->ns + l->cap, l->n);
        for (int i = 0; i < 5; i++) {
            size_t k = (size_t)(q[i] * (double)(l->n - 1) + 0.5);
            ch->pct_ns[i] = l->ns[k];
        }
        ch->pct_ns[5] = l->ns[0];
    }
    free(l->ns);
    l->ns = NULL;
}

int64_t bench_rss_kb(int pid, const char *field)
{
    char path[64], line[256];
    size_t flen = strlen(field);
    int64_t kb = -1;
    FILE *f;

    if (pid > 0)
        snprintf(path, sizeof(path), "/proc/%d/status", pid);
    else
        snprintf(path, sizeof(path), "/proc/self/status");
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, field, flen) && line[flen] == ':')
            kb = strtoll(line + flen + 1, NULL, 10);
    fclose(f);
    return kb;
}

void bench_child_finish(struct bench_child *ch, int rc)
{
    ch->rss_kb = bench_rss_kb(0, "VmRSS");
    ch->rss_anon_kb = bench_rss_kb(0, "RssAnon");
    ch->error = rc;
    atomic_store(&ch->done, 1);
}

/* ------------------------------------------------------------------ producer */

struct prod {
    shoal_client_t *client;
    shoal_producer_t *p;
    shoal_message_t *msgs;
    uint8_t *value;
};

static int prod_open(struct prod *pr, const struct bench_args *a)
{
    int rc;
    memset(pr, 0, sizeof(*pr));
    if ((rc = shoal_client_open(a->socket, &pr->client)) < 0)
        return rc;
    if ((rc = shoal_producer_open(pr->client, a->topic, NULL, &pr->p)) < 0)
        return rc;
    pr->msgs = calloc(a->batch, sizeof(*pr->msgs));
    pr->value = malloc(a->size ? a->size : 1);
    if (!pr->msgs || !pr->value)
        return -ENOMEM;
    memset(pr->value, 'v', a->size);
    for (uint32_t i = 0; i < a->batch; i++) {
        pr->msgs[i].value = pr->value;
        pr->msgs[i].value_len = a->size;
        pr->msgs[i].partition = 0;
    }
    return 0;
}

static void prod_close(struct prod *pr)
{
    shoal_producer_close(pr->p);
    shoal_client_close(pr->client);
    free(pr->msgs);
    free(pr->value);
}

/* The acknowledged-send window of acks=disk (a->acks): records are appended with
 * ACKS_MEMORY and acknowledged on disk per unit of ACK_UNIT bytes; at most ACK_WINDOW bytes
 * of units are appended and not yet acknowledged. When the window is full the producer waits
 * for its oldest unit to be durable (shoal_producer_wait(ACKS_DISK)) and only then counts
 * its records, as a Kafka producer with buffer.memory of 32 MiB blocks when its buffer is
 * full of unacknowledged batches. The count lags the appends by one window at most, a
 * constant in steady state, so the measured rate is the durable rate at the granularity of
 * one unit (the old loop waited per 64 MiB window, so a 700 ms run counted whole windows). */
#define ACK_UNIT   (1u << 20)
#define ACK_WINDOW (32u << 20)
#define ACK_UNITS  (ACK_WINDOW / ACK_UNIT)

struct ack_fifo {
    int64_t last[ACK_UNITS]; /* the last offset of each unit in flight, oldest at head */
    uint64_t records[ACK_UNITS];
    uint32_t head, n;
};

/* Wait until the oldest unit in flight is on disk, then count it. */
static int ack_pop(struct bench_child *ch, struct prod *pr, const struct bench_args *a,
                   struct ack_fifo *f)
{
    int rc = shoal_producer_wait(pr->p, 0, f->last[f->head], SHOAL_ACKS_DISK, 30000);
    if (rc < 0)
        return rc;
    bench_count(ch, f->records[f->head], f->records[f->head] * a->size);
    f->head = (f->head + 1) % ACK_UNITS;
    f->n--;
    return 0;
}

void bench_pace(struct bench_ctl *ctl)
{
    while (ctl->max_lag && bench_phase(ctl) < BENCH_STOP) {
        uint64_t produced = 0, slowest = UINT64_MAX;
        for (uint32_t i = 0; i < ctl->consumers; i++) {
            uint64_t got = atomic_load_explicit(&ctl->child[i].ops, memory_order_relaxed);
            slowest = got < slowest ? got : slowest;
        }
        for (uint32_t i = 0; i < ctl->producers; i++)
            produced +=
                atomic_load_explicit(&ctl->child[ctl->consumers + i].ops, memory_order_relaxed);
        if (produced <= slowest + ctl->max_lag)
            return;
        sched_yield();
    }
}

static int prod_loop(struct bench_ctl *ctl, struct bench_child *ch, struct prod *pr,
                     const struct bench_args *a)
{
    static struct ack_fifo f;
    uint64_t sent = 0, unit_records = 0;
    shoal_ack_t ack;
    int rc;

    while (bench_phase(ctl) < BENCH_STOP && (a->total == 0 || sent < a->total)) {
        if ((rc = shoal_send_batch(pr->p, pr->msgs, a->batch, &ack)) < 0)
            return rc;
        sent += a->batch;
        if (!a->acks) {
            bench_count(ch, a->batch, (uint64_t)a->batch * a->size);
            if (sent / a->batch % BENCH_PACE_EVERY == 0)
                bench_pace(ctl);
            continue;
        }
        unit_records += a->batch;
        if (unit_records * a->size < ACK_UNIT)
            continue;
        if (f.n == ACK_UNITS && (rc = ack_pop(ch, pr, a, &f)) < 0)
            return rc;
        f.last[(f.head + f.n) % ACK_UNITS] = ack.offset + a->batch - 1;
        f.records[(f.head + f.n) % ACK_UNITS] = unit_records;
        f.n++;
        unit_records = 0;
    }
    return 0;
}

int role_shoal_producer(struct bench_ctl *ctl, const struct bench_args *a)
{
    struct bench_child *ch = &ctl->child[a->idx];
    struct prod pr;
    int rc = prod_open(&pr, a);

    bench_child_ready(ctl, a->idx);
    if (rc == 0)
        rc = prod_loop(ctl, ch, &pr, a);
    bench_child_finish(ch, rc);
    prod_close(&pr);
    return rc < 0 ? 1 : 0;
}

/* ------------------------------------------------------------------ consumer */

static int cons_open(shoal_client_t **client, shoal_consumer_t **c, const struct bench_args *a,
                     const char *topic, bool from_start)
{
    shoal_consumer_options_t o;
    int rc;

    if ((rc = shoal_client_open(a->socket, client)) < 0)
        return rc;
    shoal_consumer_options_init(&o);
    o.wait = a->wait;
    if (a->fetch_min)
        o.fetch_min_bytes = a->fetch_min;
    if ((rc = shoal_consumer_open(*client, &o, c)) < 0)
        return rc;
    if ((rc = shoal_consumer_assign(*c, topic, NULL, 0)) < 0)
        return rc;
    if (from_start)
        rc = shoal_consumer_seek(*c, topic, 0, SHOAL_SEEK_BEGINNING, 0);
    return rc;
}

static int cons_loop(struct bench_ctl *ctl, struct bench_child *ch, shoal_consumer_t *c,
                     const struct bench_args *a)
{
    shoal_record_t recs[POLL_MAX];
    uint64_t got = 0, sink = 0;
    int64_t expect = -1;

    while (bench_phase(ctl) < BENCH_STOP && (a->total == 0 || got < a->total)) {
        uint64_t bytes = 0;
        int n = shoal_poll(c, recs, POLL_MAX, POLL_TIMEOUT_MS);
        if (n < 0)
            return n;
        for (int i = 0; i < n; i++) {
            if (expect >= 0 && recs[i].offset != expect)
                ch->gaps += (uint64_t)(recs[i].offset - expect);
            expect = recs[i].offset + 1;
            sink += bench_touch(recs[i].value, (size_t)recs[i].value_len);
            bytes += (uint64_t)recs[i].value_len;
        }
        got += (uint64_t)n;
        if (n > 0)
            bench_count(ch, (uint64_t)n, bytes);
    }
    bench_sink = sink;
    return 0;
}

int role_shoal_consumer(struct bench_ctl *ctl, const struct bench_args *a)
{
    struct bench_child *ch = &ctl->child[a->idx];
    shoal_client_t *client = NULL;
    shoal_consumer_t *c = NULL;
    int rc = cons_open(&client, &c, a, a->topic, a->total > 0);

    bench_child_ready(ctl, a->idx);
    if (rc == 0)
        rc = cons_loop(ctl, ch, c, a);
    bench_child_finish(ch, rc);
    shoal_consumer_close(c);
    shoal_client_close(client);
    return rc < 0 ? 1 : 0;
}

/* ------------------------------------------------------------------ ping-pong */

/* Poll until one record arrives or the run stops: 1, 0 at STOP, or an error. */
static int poll_one(struct bench_ctl *ctl, shoal_consumer_t *c, shoal_record_t *rec)
{
    for (;;) {
        int n = shoal_poll(c, rec, 1, POLL_TIMEOUT_MS);
        if (n != 0)
            return n;
        if (bench_phase(ctl) >= BENCH_STOP)
            return 0;
    }
}

/* topic -> pong; pong answers on topic2; ping times the round trip. Each side reads the
 * value it receives as every consumer of the suite does (first and last byte) and sends
 * its own, as the floor's ping-pong does: answering with the received bytes would make
 * shoal's pong read the whole value and the floor's not (256 B: 1.6x the floor against
 * 1.2x with the same work, Intel Xeon guest). */
static int ping_loop(struct bench_ctl *ctl, struct bench_child *ch, struct prod *pr,
                     shoal_consumer_t *c, const struct bench_args *a)
{
    struct bench_lat lat;
    shoal_record_t rec;
    int rc = bench_lat_init(&lat, 4u << 20);

    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        int64_t t0 = bench_now_ns();
        if ((rc = shoal_send(pr->p, &pr->msgs[0], NULL)) < 0)
            break;
        if ((rc = poll_one(ctl, c, &rec)) <= 0)
            break;
        bench_sink += bench_touch(rec.value, rec.value_len);
        bench_lat_add(&lat, ctl, bench_now_ns() - t0);
        bench_count(ch, 1, a->size);
        rc = 0;
    }
    bench_lat_finish(&lat, ch);
    return rc;
}

static int pong_loop(struct bench_ctl *ctl, struct bench_child *ch, struct prod *pr,
                     shoal_consumer_t *c, const struct bench_args *a)
{
    shoal_record_t rec;
    int rc = 0;

    while (bench_phase(ctl) < BENCH_STOP) {
        if ((rc = poll_one(ctl, c, &rec)) <= 0)
            break;
        bench_sink += bench_touch(rec.value, rec.value_len);
        if ((rc = shoal_send(pr->p, &pr->msgs[0], NULL)) < 0)
            break;
        bench_count(ch, 1, a->size);
    }
    return rc;
}

static int pingpong_role(struct bench_ctl *ctl, const struct bench_args *a, bool ping)
{
    struct bench_child *ch = &ctl->child[a->idx];
    struct bench_args pa = *a;
    shoal_client_t *client = NULL;
    shoal_consumer_t *c = NULL;
    struct prod pr;
    int rc;

    pa.topic = ping ? a->topic : a->topic2;
    pa.batch = 1;
    rc = prod_open(&pr, &pa);
    if (rc == 0)
        rc = cons_open(&client, &c, a, ping ? a->topic2 : a->topic, false);
    bench_child_ready(ctl, a->idx);
    if (rc == 0)
        rc = ping ? ping_loop(ctl, ch, &pr, c, a) : pong_loop(ctl, ch, &pr, c, a);
    bench_child_finish(ch, rc);
    shoal_consumer_close(c);
    shoal_client_close(client);
    prod_close(&pr);
    return rc < 0 ? 1 : 0;
}

int role_shoal_ping(struct bench_ctl *ctl, const struct bench_args *a)
{
    return pingpong_role(ctl, a, true);
}

int role_shoal_pong(struct bench_ctl *ctl, const struct bench_args *a)
{
    return pingpong_role(ctl, a, false);
}

/* ------------------------------------------------------------------ a busy CPU */

/* Unrelated load for the busy scenarios (bench.c, busy_kids): burn the CPU until STOP. */
int role_busy_spin(struct bench_ctl *ctl, const struct bench_args *a)
{
    volatile uint64_t x = 0;
    bench_child_ready(ctl, a->idx);
    while (bench_phase(ctl) < BENCH_STOP)
        for (int i = 0; i < 100000; i++)
            x = x + 1;
    return 0;
}

/* ... and wake up every 100 us until STOP, as a timer-driven daemon does. */
int role_busy_tick(struct bench_ctl *ctl, const struct bench_args *a)
{
    bench_child_ready(ctl, a->idx);
    while (bench_phase(ctl) < BENCH_STOP)
        usleep(100);
    return 0;
}
