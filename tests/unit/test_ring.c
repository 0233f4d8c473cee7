/* test_ring.c - the shared ring: gapless offsets and their publication, cursors across slot
 * rotations, back-pressure and reclaiming on disk topics, overwriting on memory topics,
 * reader pins, the mapping checks, reaping dead readers, the flush wait, and concurrent
 * producers followed by a reader.
 *
 * The creator's read-write mapping plays the producers and shoald; a second, read-only
 * mapping of the same files made from descriptors (as a consumer gets them over the control
 * socket) does the reading, so every check of published state goes through what another
 * process would see. Record values carry (tag, seq) and a fill pattern derived from them, so
 * a record read back proves its offset, its producer, its order and its bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "record.h"
#include "ring.h"
#include "util.h"

#include "ring_records.h"

#define SLOT_BYTES (64u * 1024u)
#define MAX_BATCH  (2u * SLOT_BYTES)
#define NAME       "topic-0"

/* One test's ring: the creator's mapping (producers, reclaimer) and a consumer's. */
typedef struct fx {
    char dir[256];
    ring_params_t p;
    ring_t w;
    ring_t rd;
    ring_cursor_t cur; /* on rd */
    uint8_t buf[MAX_BATCH];
} fx_t;

/* ------------------------------------------------------------------ records */

/* Append n records tagged (tag, seq..) through the producer mapping. */
static int append_records(fx_t *f, uint32_t tag, uint32_t seq, int n, size_t value_len,
                          int block_ms, int64_t *base)
{
    return append_tagged(&f->w, f->buf, sizeof(f->buf), tag, seq, n, value_len, block_ms, base);
}

/* Records first..first+n-1 of one producer at offsets from first_offset, in order. */
static void assert_run(const seen_t *s, size_t n, int64_t first_offset, uint32_t tag,
                       uint32_t first_seq)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(s[i].offset, first_offset + (int64_t)i);
        assert_int_equal(s[i].tag, tag);
        assert_int_equal(s[i].seq, first_seq + i);
    }
}

static int64_t now_ms(void)
{
    return shoal__mono_ns() / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int64_t leo(const fx_t *f)
{
    return atomic_load(&f->rd.ctl->log_end_offset);
}

static uint32_t active(const fx_t *f)
{
    return atomic_load(&f->rd.ctl->active_slot);
}

/* Append 1000-byte single-record batches (tag 1, seq = offset) until the active slot
 * changes to want. Returns how many. */
static int fill_until_active(fx_t *f, uint32_t want)
{
    int n = 0;
    int64_t base;
    while (active(f) != want) {
        assert_int_equal(append_records(f, 1, (uint32_t)leo(f), 1, 1000, 0, &base), 0);
        assert_true(++n < 1000);
    }
    return n;
}

/* Append such batches until the ring is full (SHOAL_AGAIN with block_ms 0). */
static void fill_until_full(fx_t *f)
{
    int64_t base;
    for (int n = 0;; n++) {
        int rc = append_records(f, 1, (uint32_t)leo(f), 1, 1000, 0, &base);
        if (rc == SHOAL_AGAIN)
            return;
        assert_int_equal(rc, 0);
        assert_true(n < 1000);
    }
}

/* ------------------------------------------------------------------ fixtures */

static int fx_setup(void **state, uint32_t storage, uint32_t slots)
{
    fx_t *f = calloc(1, sizeof(*f));
    int fds[RING_FD_COUNT(SHM_MAX_SLOTS)];
    int rc;

    if (!f)
        return -1;
    harness_tmpdir(f->dir, sizeof(f->dir), "ring");
    f->p = (ring_params_t){.slot_bytes = SLOT_BYTES,
                           .slot_count = slots,
                           .max_record_bytes = SLOT_BYTES,
                           .storage = storage};
    if (ring_create(&f->w, f->dir, NAME, &f->p, 0, NULL) != 0 ||
        ring_open_fds(f->dir, NAME, slots, false, fds) != 0)
        return -1;
    rc = ring_map_fds(&f->rd, fds, RING_FD_COUNT(slots), false);
    for (uint32_t i = 0; i < RING_FD_COUNT(slots); i++)
        close(fds[i]);
    if (rc != 0 || ring_cursor_open(&f->rd, &f->cur) != 0)
        return -1;
    *state = f;
    return 0;
}

static int setup_disk2(void **state)
{
    return fx_setup(state, SHOAL_STORAGE_DISK, 2);
}

static int setup_disk3(void **state)
{
    return fx_setup(state, SHOAL_STORAGE_DISK, 3);
}

static int setup_disk4(void **state)
{
    return fx_setup(state, SHOAL_STORAGE_DISK, 4);
}

static int setup_mem2(void **state)
{
    return fx_setup(state, SHOAL_STORAGE_MEMORY, 2);
}

static int setup_mem3(void **state)
{
    return fx_setup(state, SHOAL_STORAGE_MEMORY, 3);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    ring__test_hook = NULL; /* a test that failed with it set */
    ring_cursor_close(&f->rd, &f->cur);
    ring_unmap(&f->rd);
    ring_unmap(&f->w);
    harness_rmrf(f->dir);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------ append and read */

static void test_ring_append_assigns_gapless_offsets_and_publishes_them(void **state)
{
    fx_t *f = *state;
    seen_t seen[64];
    uint64_t used = 0;
    int64_t base;

    for (int i = 0; i < 10; i++) {
        size_t len = encode(f->buf, sizeof(f->buf), 1, (uint32_t)i * 3, 3, 40);
        assert_true(len > 0);
        assert_int_equal(ring_append(&f->w, f->buf, len, 3, TS0 + i, 0, &base), 0);
        assert_int_equal(base, i * 3);
        used += len;
        assert_int_equal(leo(f), (i + 1) * 3);
        assert_int_equal(atomic_load(&f->rd.ctl->slots[0].used), used);
        /* The slot's copy carries the assigned base offset. */
        assert_int_equal(shoal__get_be64(f->rd.slots[0] + used - len), i * 3);
    }
    assert_int_equal(atomic_load(&f->rd.ctl->appended_batches), 10);
    assert_int_equal(atomic_load(&f->rd.ctl->appended_records), 30);
    assert_int_equal(atomic_load(&f->rd.ctl->appended_bytes), used);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[0].max_timestamp), TS0 + 9);
    assert_int_equal(ring_live_bytes(&f->rd), used);

    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, 0), 0);
    assert_int_equal(drain(&f->rd, &f->cur, seen, 64), 30);
    assert_run(seen, 30, 0, 1, 0);
}

/* Each append leaves its CPU for waiting consumers (consumer.c, consumer_cpu_shared). */
static void test_ring_append_records_the_appending_cpu(void **state)
{
    fx_t *f = *state;
    cpu_set_t old, one;
    int64_t base;
    size_t len = encode(f->buf, sizeof(f->buf), 1, 0, 1, 40);

    assert_int_equal(sched_getaffinity(0, sizeof(old), &old), 0);
    assert_int_equal(atomic_load(&f->rd.ctl->writer_cpu), 0); /* unknown before any append */
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &old))
            continue;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
        assert_int_equal(ring_append(&f->w, f->buf, len, 1, TS0, 0, &base), 0);
        assert_int_equal(atomic_load(&f->rd.ctl->writer_cpu), cpu + 1);
    }
    assert_int_equal(sched_setaffinity(0, sizeof(old), &old), 0);
}

/* A ring_fill_fn that writes garbage over its whole span, then refuses. */
static int fill_scribble_and_fail(uint8_t *dst, size_t len, int64_t base_offset, void *arg)
{
    (void)base_offset;
    (void)arg;
    memset(dst, 0xA5, len);
    return SHOAL_EINVAL;
}

/* A ring_fill_fn that copies the encoded batch in arg and patches its base offset. */
static int fill_encoded(uint8_t *dst, size_t len, int64_t base_offset, void *arg)
{
    memcpy(dst, arg, len);
    record_batch_set_base_offset(dst, base_offset);
    return 0;
}

static void test_ring_append_fill_that_fails_publishes_nothing(void **state)
{
    fx_t *f = *state;
    seen_t seen[8];
    size_t len = encode(f->buf, sizeof(f->buf), 1, 0, 2, 40);
    struct ring_batch bad = {
        .len = len, .records = 2, .max_timestamp = TS0 + 99, .fill = fill_scribble_and_fail};
    struct ring_batch good = {
        .len = len, .records = 2, .max_timestamp = TS0 + 1, .fill = fill_encoded, .arg = f->buf};
    int64_t base = -1;

    assert_true(len > 0);
    assert_int_equal(ring_append_fill(&f->w, &bad, 0, false, &base), SHOAL_EINVAL);
    assert_int_equal(leo(f), 0);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[0].used), 0);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[0].max_timestamp), -1);
    /* The next batch lands where the failed one would have: nothing in between. */
    assert_int_equal(ring_append_fill(&f->w, &good, 0, false, &base), 0);
    assert_int_equal(base, 0);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[0].used), len);
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, 0), 0);
    assert_int_equal(drain(&f->rd, &f->cur, seen, 8), 2);
    assert_run(seen, 2, 0, 1, 0);
}

static void *try_append(void *arg)
{
    fx_t *f = arg;
    int64_t base;
    struct ring_batch b = {.len = encode(f->buf, sizeof(f->buf), 1, 0, 1, 40),
                           .records = 1,
                           .fill = fill_encoded,
                           .arg = f->buf};
    return (void *)(intptr_t)ring_append_fill(&f->w, &b, 0, true, &base);
}

static void test_ring_append_fill_try_once_reports_a_held_lock(void **state)
{
    fx_t *f = *state;
    pthread_t t;
    void *rc;

    assert_int_equal(pthread_mutex_lock(&f->w.ctl->lock), 0); /* another producer's */
    assert_int_equal(pthread_create(&t, NULL, try_append, f), 0);
    assert_int_equal(pthread_join(t, &rc), 0);
    assert_int_equal((intptr_t)rc, -EBUSY);
    assert_int_equal(pthread_mutex_unlock(&f->w.ctl->lock), 0);
    assert_int_equal(leo(f), 0);
    assert_int_equal(pthread_create(&t, NULL, try_append, f), 0); /* free now: it appends */
    assert_int_equal(pthread_join(t, &rc), 0);
    assert_int_equal((intptr_t)rc, 0);
    assert_int_equal(leo(f), 1);
}

static void test_ring_cursor_reads_every_record_in_order_across_slot_rotations(void **state)
{
    enum { BATCHES = 400, PER = 2 };
    fx_t *f = *state;
    seen_t *seen = calloc(BATCHES * PER, sizeof(*seen));
    size_t n = 0;
    int reclaimed = 0;
    int64_t base;

    assert_non_null(seen);
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, 0), 0);
    for (int i = 0; i < BATCHES; i++) {
        assert_int_equal(append_records(f, 7, (uint32_t)(i * PER), PER, 500, 0, &base), 0);
        assert_int_equal(base, i * PER);
        if (i % 7 != 6)
            continue;
        /* Follow like a consumer, then free what it has read, like shoald after a flush. */
        n += drain(&f->rd, &f->cur, seen + n, BATCHES * PER - n);
        for (uint32_t s = 0; s < f->p.slot_count; s++) {
            if (atomic_load(&f->rd.ctl->slots[s].state) != SHM_SLOT_SEALED)
                continue;
            assert_int_equal(ring_reclaim_slot(&f->w, s, 100), 0);
            reclaimed++;
        }
    }
    n += drain(&f->rd, &f->cur, seen + n, BATCHES * PER - n);
    assert_int_equal(n, BATCHES * PER);
    assert_run(seen, n, 0, 7, 0);
    assert_true(reclaimed >= 5); /* the 3 slots were each reused at least once */
    assert_int_equal(leo(f), BATCHES * PER);
    free(seen);
}

static void test_ring_seek_lands_on_the_batch_holding_each_offset(void **state)
{
    enum { BATCHES = 120 };
    fx_t *f = *state;
    int64_t first[BATCHES], last[BATCHES], base;
    const uint8_t *batch;
    record_batch_header_t h;
    int b = 0;

    for (int i = 0; i < BATCHES; i++) {
        int n = 1 + i % 5;
        assert_int_equal(append_records(f, 2, (uint32_t)leo(f), n, 200, 0, &base), 0);
        first[i] = base;
        last[i] = base + n - 1;
    }
    assert_true(active(f) > 0); /* the offsets span a slot boundary */
    for (int64_t o = 0; o < leo(f); o++) {
        while (last[b] < o)
            b++;
        assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, o), 0);
        assert_int_equal(f->cur.next_offset, o);
        assert_int_equal(ring_cursor_next(&f->rd, &f->cur, &batch, &h), 1);
        assert_int_equal(h.base_offset, first[b]);
        assert_int_equal(h.base_offset + h.last_offset_delta, last[b]);
    }
    /* The log end is a valid position with nothing to read yet; beyond it is not. */
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, leo(f)), 0);
    assert_int_equal(ring_cursor_next(&f->rd, &f->cur, &batch, &h), 0);
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, leo(f) + 1), SHOAL_EOFFSET);
    assert_false(f->cur.placed);
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, INT64_MAX), SHOAL_EOFFSET);
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, -1), SHOAL_EOFFSET);
}

static void test_ring_cursor_reports_caught_up_then_slot_end_once_sealed(void **state)
{
    fx_t *f = *state;
    const uint8_t *batch;
    record_batch_header_t h;
    int64_t base, end0;
    int n;

    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, 0), 0);
    assert_false(ring_cursor_has_more(&f->rd, &f->cur));
    assert_int_equal(ring_cursor_next(&f->rd, &f->cur, &batch, &h), 0);
    assert_int_equal(append_records(f, 1, 0, 1, 1000, 0, &base), 0);
    assert_true(ring_cursor_has_more(&f->rd, &f->cur)); /* agrees with the next call */
    assert_int_equal(ring_cursor_next(&f->rd, &f->cur, &batch, &h), 1);
    assert_int_equal(h.base_offset, 0);
    assert_false(ring_cursor_has_more(&f->rd, &f->cur));
    assert_int_equal(ring_cursor_next(&f->rd, &f->cur, &batch, &h), 0);

    n = fill_until_active(f, 1); /* the last of these opened slot 1 */
    end0 = atomic_load(&f->rd.ctl->slots[0].end_offset);
    assert_int_equal(end0, n); /* 1 + n records, the last one in slot 1 */
    assert_int_equal(atomic_load(&f->rd.ctl->slots[1].base_offset), end0);
    for (int64_t o = 1; o < end0; o++) {
        assert_int_equal(ring_cursor_next(&f->rd, &f->cur, &batch, &h), 1);
        assert_int_equal(h.base_offset, o);
    }
    assert_false(ring_cursor_has_more(&f->rd, &f->cur)); /* the sealed slot is read */
    assert_int_equal(ring_cursor_next(&f->rd, &f->cur, &batch, &h), RING_SLOT_END);
    assert_int_equal(ring_cursor_next(&f->rd, &f->cur, &batch, &h), RING_SLOT_END);
    assert_int_equal(ring_cursor_advance(&f->rd, &f->cur), 0);
    assert_true(f->cur.placed);
    assert_int_equal(f->cur.slot, 1);
    assert_int_equal(ring_cursor_next(&f->rd, &f->cur, &batch, &h), 1);
    assert_int_equal(h.base_offset, end0);
    assert_int_equal(ring_cursor_next(&f->rd, &f->cur, &batch, &h), 0);
}

/* A `used` past the slot (a broken or hostile producer wrote it) must not send the reader
 * past its mapping: the batch that crosses the slot's end is reported corrupt. */
static void test_ring_reader_never_trusts_a_used_beyond_the_slot(void **state)
{
    fx_t *f = *state;
    const uint8_t *batch;
    record_batch_header_t h;
    size_t len = encode(f->buf, sizeof(f->buf), 1, 0, 1, SLOT_BYTES + 1000);
    int rc;

    assert_true(len > SLOT_BYTES);
    memcpy(f->w.slots[0], f->buf, SLOT_BYTES); /* what fits of a batch claiming len bytes */
    atomic_store(&f->w.ctl->slots[0].used, (uint64_t)len);
    atomic_store(&f->w.ctl->log_end_offset, 1);

    rc = ring_cursor_seek(&f->rd, &f->cur, 0);
    if (rc == 0)
        rc = ring_cursor_next(&f->rd, &f->cur, &batch, &h);
    assert_int_equal(rc, SHOAL_ECORRUPT);
    assert_int_equal(ring_slot_used(&f->rd, 0), SLOT_BYTES);
}

/* An active_slot out of range (a broken or hostile producer wrote it) is refused before it
 * is used as an index, by appends and by shoald's roll. */
static void test_ring_refuses_an_active_slot_out_of_range(void **state)
{
    /* past this ring's slots but inside the descriptor table, and past the table */
    const uint32_t bad[] = {2, SHM_MAX_SLOTS, 0x01000000u};
    fx_t *f = *state;
    int64_t base;

    assert_int_equal(append_records(f, 1, 0, 1, 10, 0, &base), 0);
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(bad); i++) {
        atomic_store(&f->w.ctl->active_slot, bad[i]);
        assert_int_equal(append_records(f, 1, 1, 1, 10, 0, &base), SHOAL_EPANIC);
        assert_int_equal(ring_roll(&f->w, 10), SHOAL_EPANIC);
    }
    assert_int_equal(leo(f), 1); /* nothing was published */
}

/* ------------------------------------------------------------------ disk back-pressure */

typedef struct snapshot {
    int64_t leo;
    uint32_t active;
    uint64_t used[SHM_MAX_SLOTS];
    uint32_t state[SHM_MAX_SLOTS];
} snapshot_t;

static void take_snapshot(const fx_t *f, snapshot_t *s)
{
    memset(s, 0, sizeof(*s));
    s->leo = leo(f);
    s->active = active(f);
    for (uint32_t i = 0; i < f->p.slot_count; i++) {
        s->used[i] = atomic_load(&f->rd.ctl->slots[i].used);
        s->state[i] = atomic_load(&f->rd.ctl->slots[i].state);
    }
}

static void assert_snapshot_equal(const snapshot_t *a, const snapshot_t *b)
{
    assert_int_equal(a->leo, b->leo);
    assert_int_equal(a->active, b->active);
    for (uint32_t i = 0; i < SHM_MAX_SLOTS; i++) {
        assert_int_equal(a->used[i], b->used[i]);
        assert_int_equal(a->state[i], b->state[i]);
    }
}

static void test_ring_rejects_append_when_full(void **state)
{
    fx_t *f = *state;
    snapshot_t before, after;
    seen_t *seen = calloc(256, sizeof(*seen));
    uint64_t full;
    int64_t base, t0;

    assert_non_null(seen);
    fill_until_full(f);
    take_snapshot(f, &before);
    assert_int_equal(before.state[before.active], SHM_SLOT_ACTIVE);
    assert_int_equal(before.state[1 - before.active], SHM_SLOT_SEALED);
    full = atomic_load(&f->rd.ctl->full_events);
    assert_true(full >= 1);

    t0 = now_ms();
    assert_int_equal(append_records(f, 1, (uint32_t)before.leo, 1, 1000, 0, &base), SHOAL_AGAIN);
    assert_true(now_ms() - t0 < 50);
    take_snapshot(f, &after);
    assert_snapshot_equal(&before, &after);
    assert_int_equal(atomic_load(&f->rd.ctl->full_events), full + 1);

    /* What was acknowledged is all there, and nothing of the refused batches. */
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, 0), 0);
    assert_int_equal(drain(&f->rd, &f->cur, seen, 256), before.leo);
    assert_run(seen, (size_t)before.leo, 0, 1, 0);
    free(seen);
}

static void test_ring_append_gives_up_after_block_ms_when_nothing_is_freed(void **state)
{
    fx_t *f = *state;
    snapshot_t before, after;
    int64_t base, t0, waited;

    fill_until_full(f);
    take_snapshot(f, &before);
    t0 = now_ms();
    assert_int_equal(append_records(f, 1, 0, 1, 1000, 100, &base), SHOAL_AGAIN);
    waited = now_ms() - t0;
    assert_true(waited >= 95);
    assert_true(waited < 1000);
    take_snapshot(f, &after);
    assert_snapshot_equal(&before, &after);
    assert_int_equal(atomic_load(&f->rd.ctl->space_waiters), 0);
}

typedef struct reclaimer_arg {
    fx_t *f;
    uint32_t slot;
    int delay_ms;
    int rc;
} reclaimer_arg_t;

static void *reclaim_later(void *arg)
{
    reclaimer_arg_t *a = arg;
    sleep_ms(a->delay_ms);
    a->rc = ring_reclaim_slot(&a->f->w, a->slot, 1000);
    return NULL;
}

static void test_ring_append_blocks_until_another_thread_reclaims_a_slot(void **state)
{
    fx_t *f = *state;
    reclaimer_arg_t a = {.f = f, .delay_ms = 30, .rc = 1};
    pthread_t t;
    int64_t base, before, t0, waited;

    fill_until_full(f);
    before = leo(f);
    a.slot = 1 - active(f);
    assert_int_equal(pthread_create(&t, NULL, reclaim_later, &a), 0);
    t0 = now_ms();
    assert_int_equal(append_records(f, 1, (uint32_t)before, 1, 1000, 200, &base), 0);
    waited = now_ms() - t0;
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, 0);
    /* Woken by the reclaim, not by the producer's own 100 ms re-check. */
    assert_true(waited >= 25);
    assert_true(waited < 90);
    assert_int_equal(base, before);
    assert_int_equal(leo(f), before + 1);
    assert_int_equal(active(f), a.slot);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[a.slot].base_offset), before);
}

/* ------------------------------------------------------------------ pins */

static void test_ring_does_not_reclaim_a_pinned_slot_until_unpinned(void **state)
{
    fx_t *f = *state;
    uint32_t gen0 = atomic_load(&f->rd.ctl->slots[0].gen);
    uint64_t used0;

    fill_until_active(f, 1);
    used0 = atomic_load(&f->rd.ctl->slots[0].used);
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, 0), 0);
    assert_int_equal(f->cur.slot, 0);
    assert_true(ring_slot_is_pinned(&f->w, 0, gen0));

    assert_int_equal(ring_reclaim_slot(&f->w, 0, 100), SHOAL_AGAIN);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[0].state), SHM_SLOT_SEALED);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[0].used), used0);
    /* Neither the active slot nor a free one is reclaimable. */
    assert_int_equal(ring_reclaim_slot(&f->w, 1, 100), SHOAL_AGAIN);
    assert_int_equal(ring_reclaim_slot(&f->w, 2, 100), SHOAL_AGAIN);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[1].state), SHM_SLOT_ACTIVE);

    ring_cursor_unpin(&f->rd, &f->cur);
    assert_false(ring_slot_is_pinned(&f->w, 0, gen0));
    assert_int_equal(ring_reclaim_slot(&f->w, 0, 100), 0);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[0].state), SHM_SLOT_FREE);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[0].used), 0);
}

static bool release_pid(int32_t pid, void *arg)
{
    return pid == *(const int32_t *)arg;
}

/* A sleeping reader whose pin shoald released no longer holds its slot; when it wakes it is
 * told (ring_sleeper_set), pins again, and finds the slot reused. One that woke first, or is
 * awake, keeps its pin. */
static void test_ring_released_sleeper_holds_no_slot_and_learns_it_on_waking(void **state)
{
    fx_t *f = *state;
    _Atomic uint32_t *sleeping = &f->rd.rd->readers[f->cur.entry].sleeping;
    int32_t me = (int32_t)getpid(), nobody = me + 1;

    fill_until_active(f, 1);
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, 0), 0);
    assert_int_equal(ring_release_sleepers(&f->w, release_pid, &me), 0); /* awake */
    assert_int_equal(ring_sleeper_set(&f->rd, sleeping, true), false);
    assert_int_equal(ring_release_sleepers(&f->w, release_pid, &nobody), 0);
    assert_int_equal(ring_reclaim_slot(&f->w, 0, 100), SHOAL_AGAIN);

    /* woken before the release: its pin holds */
    assert_int_equal(ring_sleeper_set(&f->rd, sleeping, false), false);
    assert_int_equal(ring_release_sleepers(&f->w, release_pid, &me), 0);
    assert_int_equal(ring_reclaim_slot(&f->w, 0, 100), SHOAL_AGAIN);

    assert_int_equal(ring_sleeper_set(&f->rd, sleeping, true), false);
    assert_int_equal(ring_release_sleepers(&f->w, release_pid, &me), 1);
    assert_int_equal(ring_release_sleepers(&f->w, release_pid, &me), 0); /* once */
    assert_int_equal(atomic_load(&f->rd.rd->waiters), 1);                /* still asleep */
    assert_int_equal(ring_reclaim_slot(&f->w, 0, 100), 0);
    assert_int_equal(ring_sleeper_set(&f->rd, sleeping, false), true);
    assert_int_equal(atomic_load(&f->rd.rd->waiters), 0);
    ring_cursor_tighten(&f->rd, &f->cur);
    assert_false(f->cur.placed);
}

static bool release_any(int32_t pid, void *arg)
{
    (void)pid;
    (void)arg;
    return true;
}

/* The release race, with real threads: a reader pins slot 0, sleeps, wakes (pinning again
 * when it was released); a reclaimer releases every sleeper and reclaims slot 0 whenever
 * it can, then makes it sealed again at a new generation, as a reuse would. A reader that
 * is placed after its wake-up must see its slot keep its generation until it unpins. */
struct release_race {
    fx_t *f;
    _Atomic bool stop;
    _Atomic long reclaims, releases, violations, kept;
};

static void *race_reclaimer(void *arg)
{
    struct release_race *r = arg;
    struct shm_slot *s = &r->f->w.ctl->slots[0];

    while (!atomic_load(&r->stop)) {
        atomic_fetch_add(&r->releases, ring_release_sleepers(&r->f->w, release_any, NULL));
        if (ring_reclaim_slot(&r->f->w, 0, 100) == 0) {
            atomic_fetch_add(&r->reclaims, 1);
            atomic_fetch_add(&s->gen, 1);
            atomic_store(&s->state, SHM_SLOT_SEALED);
        }
    }
    return NULL;
}

static void race_reader_round(struct release_race *r, unsigned spin)
{
    fx_t *f = r->f;
    _Atomic uint32_t *sleeping = &f->rd.rd->readers[f->cur.entry].sleeping;
    struct shm_slot *s = &f->rd.ctl->slots[0];

    if (ring_cursor_seek(&f->rd, &f->cur, 0) != 0)
        return; /* caught between a reclaim and its reseal */
    ring_sleeper_set(&f->rd, sleeping, true);
    for (volatile unsigned k = 0; k < spin; k++)
        ;
    if (ring_sleeper_set(&f->rd, sleeping, false))
        ring_cursor_tighten(&f->rd, &f->cur);
    if (f->cur.placed) {
        atomic_fetch_add(&r->kept, 1);
        for (volatile unsigned k = 0; k < spin; k++)
            ;
        if (atomic_load(&s->gen) != f->cur.gen)
            atomic_fetch_add(&r->violations, 1);
    }
    ring_cursor_unpin(&f->rd, &f->cur);
}

static bool race_ran_every_side(struct release_race *r)
{
    return atomic_load(&r->reclaims) > 0 && atomic_load(&r->releases) > 0 &&
           atomic_load(&r->kept) > 0;
}

static void test_ring_a_woken_sleeper_keeps_its_slot_against_a_racing_reclaimer(void **state)
{
    struct release_race r = {.f = *state};
    unsigned x = 12345;
    pthread_t t;

    int64_t deadline = shoal__mono_ns() + 20 * 1000000000LL;

    fill_until_active(r.f, 1);
    assert_int_equal(pthread_create(&t, NULL, race_reclaimer, &r), 0);
    /* 200,000 rounds, and on a busy machine (both threads on one CPU) more, until every
     * side of the race has run */
    for (int i = 0; i < 200000 || (!race_ran_every_side(&r) && shoal__mono_ns() < deadline); i++) {
        x = x * 1103515245u + 12345u;
        race_reader_round(&r, (x >> 16) % 200);
    }
    atomic_store(&r.stop, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    print_message("%ld reclaims, %ld releases, %ld rounds kept their slot\n",
                  atomic_load(&r.reclaims), atomic_load(&r.releases), atomic_load(&r.kept));
    assert_int_equal(atomic_load(&r.violations), 0);
    assert_true(race_ran_every_side(&r));
    assert_int_equal(atomic_load(&r.f->rd.rd->waiters), 0);
}

static void test_ring_reclaims_a_slot_once_its_cursor_is_closed(void **state)
{
    fx_t *f = *state;
    ring_cursor_t c;

    fill_until_active(f, 1);
    assert_int_equal(ring_cursor_open(&f->rd, &c), 0);
    assert_int_equal(ring_cursor_seek(&f->rd, &c, 3), 0);
    assert_int_equal(ring_reclaim_slot(&f->w, 0, 100), SHOAL_AGAIN);
    ring_cursor_close(&f->rd, &c);
    assert_int_equal(c.entry, -1);
    assert_int_equal(ring_reclaim_slot(&f->w, 0, 100), 0);
}

static void test_ring_cursor_cannot_read_a_reused_slot_as_its_old_offsets(void **state)
{
    fx_t *f = *state;
    const uint8_t *batch;
    record_batch_header_t h;
    seen_t *seen = calloc(256, sizeof(*seen));
    uint32_t gen0 = atomic_load(&f->rd.ctl->slots[0].gen);
    int64_t end0, end1;
    size_t n;

    assert_non_null(seen);
    fill_until_active(f, 1);
    end0 = atomic_load(&f->rd.ctl->slots[0].end_offset);
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, 5), 0);
    assert_int_equal(ring_cursor_next(&f->rd, &f->cur, &batch, &h), 1);
    assert_int_equal(h.base_offset, 5);
    ring_cursor_unpin(&f->rd, &f->cur);

    assert_int_equal(ring_reclaim_slot(&f->w, 0, 100), 0);
    fill_until_active(f, 0); /* slot 0 reused for later offsets */
    end1 = atomic_load(&f->rd.ctl->slots[1].end_offset);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[0].gen), gen0 + 1);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[0].base_offset), end1);
    assert_false(ring_slot_is_pinned(&f->w, 0, gen0 + 1));

    /* The old offsets are no longer in memory: the consumer must read them from disk. */
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, 5), SHOAL_EOFFSET);
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, end0 - 1), SHOAL_EOFFSET);
    assert_false(f->cur.placed);
    /* What is in memory reads back as itself. */
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, end0), 0);
    n = drain(&f->rd, &f->cur, seen, 256);
    assert_int_equal(n, leo(f) - end0);
    assert_run(seen, n, end0, 1, (uint32_t)end0);
    free(seen);
}

/* ------------------------------------------------------------------ memory topics */

static void test_ring_memory_topic_overwrites_the_oldest_unpinned_slot(void **state)
{
    enum { BATCHES = 300 };
    fx_t *f = *state;
    seen_t *seen = calloc(BATCHES, sizeof(*seen));
    int64_t start = 0, base;
    int advances = 0;
    size_t n;

    assert_non_null(seen);
    for (int i = 0; i < BATCHES; i++) {
        int64_t s;
        assert_int_equal(append_records(f, 3, (uint32_t)i, 1, 1000, 0, &base), 0);
        assert_int_equal(base, i);
        s = atomic_load(&f->rd.ctl->log_start_offset);
        assert_true(s >= start);
        advances += s > start;
        start = s;
    }
    assert_true(advances >= 2);
    /* The oldest live slot is the one after the active one, and it starts the log. */
    assert_int_equal(start, atomic_load(&f->rd.ctl->slots[(active(f) + 1) % 3].base_offset));
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, start - 1), SHOAL_EOFFSET);
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, start), 0);
    n = drain(&f->rd, &f->cur, seen, BATCHES);
    assert_int_equal(n, BATCHES - start);
    assert_run(seen, n, start, 3, (uint32_t)start);
    free(seen);
}

typedef struct unpinner_arg {
    fx_t *f;
    int delay_ms;
} unpinner_arg_t;

static void *unpin_later(void *arg)
{
    unpinner_arg_t *a = arg;
    sleep_ms(a->delay_ms);
    ring_cursor_unpin(&a->f->rd, &a->f->cur);
    return NULL;
}

static void test_ring_memory_append_waits_while_the_oldest_slot_is_pinned(void **state)
{
    fx_t *f = *state;
    unpinner_arg_t a = {.f = f, .delay_ms = 30};
    snapshot_t before, after;
    pthread_t t;
    int64_t base, t0, waited, end0;

    fill_until_active(f, 1);
    end0 = atomic_load(&f->rd.ctl->slots[0].end_offset);
    assert_int_equal(ring_cursor_seek(&f->rd, &f->cur, 0), 0);
    for (int n = 0;; n++) {
        int rc = append_records(f, 1, (uint32_t)leo(f), 1, 1000, 0, &base);
        if (rc == SHOAL_AGAIN)
            break;
        assert_int_equal(rc, 0);
        assert_true(n < 1000);
    }
    take_snapshot(f, &before);
    t0 = now_ms();
    assert_int_equal(append_records(f, 1, (uint32_t)before.leo, 1, 1000, 20, &base), SHOAL_AGAIN);
    waited = now_ms() - t0;
    assert_true(waited >= 19);
    take_snapshot(f, &after);
    assert_snapshot_equal(&before, &after);
    assert_int_equal(atomic_load(&f->rd.ctl->log_start_offset), 0);

    /* Unpinned by another thread while the producer waits: the append goes through. */
    assert_int_equal(pthread_create(&t, NULL, unpin_later, &a), 0);
    t0 = now_ms();
    assert_int_equal(append_records(f, 1, (uint32_t)before.leo, 1, 1000, 1000, &base), 0);
    waited = now_ms() - t0;
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(waited >= 25);
    assert_true(waited < 1000);
    assert_int_equal(base, before.leo);
    assert_int_equal(active(f), 0);
    assert_int_equal(atomic_load(&f->rd.ctl->log_start_offset), end0);
}

/* ------------------------------------------------------------------ refusals */

static void test_ring_rejects_a_batch_larger_than_a_slot(void **state)
{
    fx_t *f = *state;
    size_t len = encode(f->buf, sizeof(f->buf), 1, 0, 1, SLOT_BYTES);
    int64_t base = -7;
    size_t value_len;

    assert_true(len > SLOT_BYTES);
    assert_int_equal(ring_append(&f->w, f->buf, len, 1, TS0, 100, &base), SHOAL_ETOOLARGE);
    assert_int_equal(base, -7);
    assert_int_equal(leo(f), 0);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[0].used), 0);

    /* A batch of exactly a slot is fine: it takes a whole (fresh) slot. */
    assert_int_equal(append_records(f, 1, 0, 1, 100, 0, &base), 0);
    for (value_len = SLOT_BYTES;; value_len--) {
        len = encode(f->buf, sizeof(f->buf), 1, 1, 1, value_len);
        assert_true(len >= SLOT_BYTES);
        if (len == SLOT_BYTES)
            break;
    }
    assert_int_equal(ring_append(&f->w, f->buf, len, 1, TS0, 0, &base), 0);
    assert_int_equal(base, 1);
    assert_int_equal(active(f), 1);
    assert_int_equal(atomic_load(&f->rd.ctl->slots[1].used), SLOT_BYTES);
}

static void test_ring_refuses_append_and_flush_wait_on_a_deleted_topic(void **state)
{
    fx_t *f = *state;
    int64_t base;

    assert_int_equal(append_records(f, 1, 0, 1, 10, 0, &base), 0);
    atomic_store(&f->w.ctl->closed, SHM_CLOSED_DELETED);
    assert_int_equal(append_records(f, 1, 1, 1, 10, 0, &base), SHOAL_ENOTOPIC);
    assert_int_equal(leo(f), 1);
    assert_int_equal(ring_wait_flushed(&f->w, 0, 1000), SHOAL_ENOTOPIC);
}

static void test_ring_create_rejects_fewer_than_two_or_too_many_slots(void **state)
{
    fx_t *f = *state;
    ring_t r;
    ring_params_t p = f->p;

    p.slot_count = 1;
    assert_int_equal(ring_create(&r, f->dir, "other", &p, 0, NULL), -EINVAL);
    p.slot_count = SHM_MAX_SLOTS + 1;
    assert_int_equal(ring_create(&r, f->dir, "other", &p, 0, NULL), -EINVAL);
}

static void test_ring_cursor_open_fails_when_the_reader_table_is_full(void **state)
{
    fx_t *f = *state;
    ring_cursor_t *c = calloc(SHM_MAX_READERS, sizeof(*c));
    ring_cursor_t extra;

    assert_non_null(c);
    /* The fixture's cursor holds one entry. */
    for (uint32_t i = 0; i < SHM_MAX_READERS - 1; i++)
        assert_int_equal(ring_cursor_open(&f->rd, &c[i]), 0);
    assert_int_equal(ring_cursor_open(&f->rd, &extra), SHOAL_ELIMIT);
    assert_int_equal(extra.entry, -1);
    ring_cursor_close(&f->rd, &c[7]);
    assert_int_equal(ring_cursor_open(&f->rd, &extra), 0);
    ring_cursor_close(&f->rd, &extra);
    for (uint32_t i = 0; i < SHM_MAX_READERS - 1; i++)
        ring_cursor_close(&f->rd, &c[i]);
    free(c);
}

/* ------------------------------------------------------------------ mapping checks */

static void open_reader_fds(const fx_t *f, int *fds)
{
    assert_int_equal(ring_open_fds(f->dir, NAME, f->p.slot_count, false, fds), 0);
}

static void close_all(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

/* A new file holding the first len bytes of the file behind src. */
static int short_file(const fx_t *f, int src, size_t len)
{
    char path[512];
    uint8_t *buf = calloc(1, len);
    int fd;

    assert_non_null(buf);
    snprintf(path, sizeof(path), "%s/short", f->dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(pread(src, buf, len, 0), (ssize_t)len);
    assert_int_equal(pwrite(fd, buf, len, 0), (ssize_t)len);
    free(buf);
    return fd;
}

static void test_ring_map_fds_rejects_a_wrong_descriptor_count(void **state)
{
    fx_t *f = *state;
    size_t n = RING_FD_COUNT(f->p.slot_count);
    int fds[RING_FD_COUNT(SHM_MAX_SLOTS)];
    ring_t r;

    open_reader_fds(f, fds);
    fds[n] = dup(fds[RING_FD_SLOT0]);
    assert_int_equal(ring_map_fds(&r, fds, 0, false), SHOAL_EPROTO);
    assert_int_equal(ring_map_fds(&r, fds, 3, false), SHOAL_EPROTO);
    assert_int_equal(ring_map_fds(&r, fds, n - 1, false), SHOAL_EPROTO);
    assert_int_equal(ring_map_fds(&r, fds, n + 1, false), SHOAL_EPROTO);
    /* The control block decides how many slots there are. */
    f->w.ctl->slot_count = f->p.slot_count + 1;
    assert_int_equal(ring_map_fds(&r, fds, n, false), SHOAL_EPROTO);
    f->w.ctl->slot_count = f->p.slot_count;
    assert_int_equal(ring_map_fds(&r, fds, n, false), 0);
    ring_unmap(&r);
    close_all(fds, n + 1);
}

static void test_ring_map_fds_rejects_files_of_the_wrong_size(void **state)
{
    fx_t *f = *state;
    size_t n = RING_FD_COUNT(f->p.slot_count);
    int fds[RING_FD_COUNT(SHM_MAX_SLOTS)];
    ring_t r;

    open_reader_fds(f, fds);
    for (size_t i = 0; i < n; i++) {
        /* A valid-looking prefix of the real file, a page long: right magic, wrong size. */
        int good = fds[i], bad = short_file(f, good, 4096);
        fds[i] = bad;
        if (ring_map_fds(&r, fds, n, false) != SHOAL_EPROTO)
            fail_msg("descriptor %zu: a file of the wrong size was accepted", i);
        fds[i] = good;
        close(bad);
    }
    /* Descriptors in the wrong order: a slot where the control block belongs. */
    {
        int ctl = fds[RING_FD_CTL];
        fds[RING_FD_CTL] = fds[RING_FD_SLOT0];
        assert_int_equal(ring_map_fds(&r, fds, n, false), SHOAL_EPROTO);
        fds[RING_FD_CTL] = ctl;
    }
    assert_int_equal(ring_map_fds(&r, fds, n, false), 0);
    ring_unmap(&r);
    close_all(fds, n);
}

static void test_ring_map_fds_rejects_missing_magic_or_another_version(void **state)
{
    fx_t *f = *state;
    size_t n = RING_FD_COUNT(f->p.slot_count);
    int fds[RING_FD_COUNT(SHM_MAX_SLOTS)];
    ring_t r;

    open_reader_fds(f, fds);
    f->w.ctl->magic = 0;
    assert_int_equal(ring_map_fds(&r, fds, n, false), SHOAL_EVERSION);
    f->w.ctl->magic = SHM_CTL_MAGIC;
    f->w.ctl->version = SHM_LAYOUT_VERSION + 1;
    assert_int_equal(ring_map_fds(&r, fds, n, false), SHOAL_EVERSION);
    f->w.ctl->version = SHM_LAYOUT_VERSION;
    f->w.rd->magic = 0;
    assert_int_equal(ring_map_fds(&r, fds, n, false), SHOAL_EVERSION);
    f->w.rd->magic = SHM_READERS_MAGIC;
    f->w.rd->version = SHM_LAYOUT_VERSION + 1;
    assert_int_equal(ring_map_fds(&r, fds, n, false), SHOAL_EVERSION);
    f->w.rd->version = SHM_LAYOUT_VERSION;
    assert_int_equal(ring_map_fds(&r, fds, n, false), 0);
    assert_false(r.writable);
    ring_unmap(&r);
    close_all(fds, n);
}

static void test_ring_open_refuses_other_parameters_and_maps_the_same_ring(void **state)
{
    fx_t *f = *state;
    ring_params_t p = f->p;
    ring_t r;
    int64_t base;

    p.slot_bytes = SLOT_BYTES * 2;
    assert_int_equal(ring_open(&r, f->dir, NAME, &p, NULL), SHOAL_EVERSION);
    p = f->p;
    p.partition = 1;
    assert_int_equal(ring_open(&r, f->dir, NAME, &p, NULL), SHOAL_EVERSION);
    p = f->p;
    p.slot_count = f->p.slot_count - 1;
    assert_int_equal(ring_open(&r, f->dir, NAME, &p, NULL), SHOAL_EVERSION);
    p.slot_count = f->p.slot_count + 1; /* its file does not exist */
    assert_int_equal(ring_open(&r, f->dir, NAME, &p, NULL), -ENOENT);
    f->w.ctl->magic = 0;
    assert_int_equal(ring_open(&r, f->dir, NAME, &f->p, NULL), SHOAL_EVERSION);
    f->w.ctl->magic = SHM_CTL_MAGIC;

    assert_int_equal(ring_open(&r, f->dir, NAME, &f->p, NULL), 0);
    assert_true(r.writable);
    assert_int_equal(append_records(f, 1, 0, 2, 10, 0, &base), 0);
    assert_int_equal(atomic_load(&r.ctl->log_end_offset), 2);
    ring_unmap(&r);
}

/* ------------------------------------------------------------------ dead readers */

/* Fork a reader that claims an entry, pins slot 0, optionally announces it sleeps, and
 * exits without cleaning up. Reaped by waitpid before returning; *entry gets its entry. */
static pid_t spawn_reader_that_dies(const fx_t *f, bool sleeping, int32_t *entry)
{
    int pfd[2], status;
    pid_t pid;

    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fds[RING_FD_COUNT(SHM_MAX_SLOTS)];
        ring_t r;
        ring_cursor_t c;
        int32_t e = -1;
        if (ring_open_fds(f->dir, NAME, f->p.slot_count, false, fds) == 0 &&
            ring_map_fds(&r, fds, RING_FD_COUNT(f->p.slot_count), false) == 0 &&
            ring_cursor_open(&r, &c) == 0 && ring_cursor_seek(&r, &c, 0) == 0) {
            if (sleeping) {
                atomic_store(&r.rd->readers[c.entry].sleeping, 1);
                atomic_fetch_add(&r.rd->waiters, 1);
            }
            e = c.entry;
        }
        if (write(pfd[1], &e, sizeof(e)) != sizeof(e))
            _exit(2);
        _exit(0);
    }
    close(pfd[1]);
    assert_int_equal(read(pfd[0], entry, sizeof(*entry)), sizeof(*entry));
    close(pfd[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(*entry >= 0);
    return pid;
}

static void test_ring_reap_clears_dead_readers_and_their_sleep(void **state)
{
    fx_t *f = *state;
    struct shm_readers *rd = f->w.rd;
    struct shm_reader *me = &rd->readers[f->cur.entry];
    uint32_t gen0 = atomic_load(&f->w.ctl->slots[0].gen);
    int32_t sleeper, other;
    pid_t pid_sleeper, pid_other;

    /* This process is a live reader that sleeps: it must survive the reaping. */
    atomic_store(&me->sleeping, 1);
    atomic_fetch_add(&rd->waiters, 1);

    pid_sleeper = spawn_reader_that_dies(f, true, &sleeper);
    pid_other = spawn_reader_that_dies(f, false, &other);
    assert_int_not_equal(sleeper, other);
    assert_int_equal(atomic_load(&rd->readers[sleeper].pid), pid_sleeper);
    assert_int_equal(atomic_load(&rd->readers[other].pid), pid_other);
    assert_int_equal(atomic_load(&rd->readers[sleeper].pin), SHM_PIN(0, gen0));
    assert_int_equal(atomic_load(&rd->waiters), 2);

    /* A dead reader's pin still blocks reclaiming until it is reaped. */
    fill_until_active(f, 1);
    assert_int_equal(ring_reclaim_slot(&f->w, 0, 100), SHOAL_AGAIN);

    assert_int_equal(ring_reap_dead_readers(&f->w), 2);
    for (int i = 0; i < 2; i++) {
        struct shm_reader *e = &rd->readers[i == 0 ? sleeper : other];
        assert_int_equal(atomic_load(&e->pid), 0);
        assert_int_equal(atomic_load(&e->pin), 0);
        assert_int_equal(atomic_load(&e->sleeping), 0);
    }
    assert_int_equal(atomic_load(&rd->waiters), 1);
    assert_int_equal(atomic_load(&me->pid), getpid());
    assert_int_equal(atomic_load(&me->sleeping), 1);
    assert_int_equal(ring_reap_dead_readers(&f->w), 0);
    assert_int_equal(ring_reclaim_slot(&f->w, 0, 100), 0);

    atomic_store(&me->sleeping, 0);
    atomic_fetch_sub(&rd->waiters, 1);
}

typedef struct sleeper_arg {
    fx_t *f;
    int64_t slept_ms;
} sleeper_arg_t;

/* Sleep as a consumer does (consumer_sleep): count itself, load the word and arm it, fence,
 * re-check that the log has not passed `seen`, wait on the word at most timeout_ms. */
static void reader_sleep(ring_t *r, int entry, int64_t seen, int timeout_ms)
{
    _Atomic uint32_t *sleeping = &r->rd->readers[entry].sleeping;
    uint32_t seq;

    ring_sleeper_set(r, sleeping, true);
    seq = ring_sleep_arm(r);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&r->ctl->log_end_offset) <= seen)
        shoal__futex_wait(&r->rd->seq, seq, timeout_ms);
    ring_sleeper_set(r, sleeping, false);
}

/* A caught-up consumer going to sleep until the first append. */
static void *sleep_until_woken(void *arg)
{
    sleeper_arg_t *a = arg;
    int64_t t0 = now_ms();

    reader_sleep(&a->f->rd, a->f->cur.entry, 0, 3000);
    a->slept_ms = now_ms() - t0;
    return NULL;
}

static void test_ring_append_wakes_a_sleeping_reader(void **state)
{
    fx_t *f = *state;
    sleeper_arg_t a = {.f = f};
    uint32_t seq0 = ring_wake_seq(&f->rd);
    pthread_t t;
    int64_t base;

    assert_int_equal(pthread_create(&t, NULL, sleep_until_woken, &a), 0);
    sleep_ms(30);
    assert_int_equal(append_records(f, 1, 0, 1, 10, 0, &base), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(a.slept_ms < 1000);
    assert_int_equal(ring_wake_seq(&f->rd), seq0 + 1);
    assert_int_equal(atomic_load(&f->rd.rd->waiters), 0);
    /* With nobody asleep an append leaves the word (and its cache line) alone: a reader
     * about to sleep counts itself in waiters before its re-check, so it is seen. */
    assert_int_equal(append_records(f, 1, 1, 1, 10, 0, &base), 0);
    assert_int_equal(ring_wake_seq(&f->rd), seq0 + 1);
    /* A reader woken but not yet run still counts in waiters; the wake-up disarmed the
     * word, so the appends meanwhile make no more wake-up calls. Arming it again (a
     * reader going back to sleep) brings them back. */
    atomic_fetch_add(&f->rd.rd->waiters, 1);
    assert_int_equal(append_records(f, 1, 2, 1, 10, 0, &base), 0);
    assert_int_equal(ring_wake_seq(&f->rd), seq0 + 1);
    atomic_store(&f->rd.rd->armed, 1);
    assert_int_equal(append_records(f, 1, 3, 1, 10, 0, &base), 0);
    assert_int_equal(ring_wake_seq(&f->rd), seq0 + 2);
    assert_int_equal(atomic_load(&f->rd.rd->armed), 0);
    atomic_fetch_sub(&f->rd.rd->waiters, 1);
}

/* The interleaving that lost wake-ups when a sleeper armed before loading `seq`: append A
 * stalls between its unlock and its wake-up while a reader goes to sleep; A's wake-up runs
 * between the two steps of the reader's ring_sleep_arm(), clearing `armed` and bumping
 * `seq`; the reader's last look finds only A's record (already read) and it waits. Append B
 * must still change `seq` from the value the reader waits on, or the reader sleeps through
 * B until its timeout. Arming before loading makes the reader wait on A's bump with
 * `armed` clear, and this test fails. */
static struct {
    sem_t stalled, go, done;
    int rc; /* append A's */
} stall;

/* sem_wait for at most 5 s: a broken interleaving fails the test instead of hanging it. */
static bool sem_wait_5s(sem_t *s)
{
    struct timespec ts = shoal__deadline(CLOCK_REALTIME, 5000);
    while (sem_timedwait(s, &ts) != 0)
        if (errno != EINTR)
            return false;
    return true;
}

static void stall_hook(int stage)
{
    if (stage == RING_STAGE_UNLOCKED) { /* in append A's thread */
        sem_post(&stall.stalled);
        sem_wait_5s(&stall.go);
    } else if (stage == RING_STAGE_ARMING) { /* in the sleeper: let A finish now */
        sem_post(&stall.go);
        sem_wait_5s(&stall.done);
    }
}

/* Append A, in its own thread: the result goes back to the test, which asserts on it. */
static void *append_a(void *arg)
{
    fx_t *f = arg;
    int64_t base;
    stall.rc = append_records(f, 1, 0, 1, 10, 0, &base);
    sem_post(&stall.done);
    return NULL;
}

static void test_ring_append_after_a_stalled_wake_up_still_wakes_the_reader(void **state)
{
    fx_t *f = *state;
    _Atomic uint32_t *sleeping = &f->rd.rd->readers[f->cur.entry].sleeping;
    uint32_t waited_on;
    int64_t base;
    pthread_t a;
    bool stalled;

    sem_init(&stall.stalled, 0, 0);
    sem_init(&stall.go, 0, 0);
    sem_init(&stall.done, 0, 0);
    atomic_store(&f->w.rd->armed, 1); /* armed by an earlier sleeper, still counted */
    atomic_fetch_add(&f->w.rd->waiters, 1);
    ring__test_hook = stall_hook; /* teardown clears it */
    assert_int_equal(pthread_create(&a, NULL, append_a, f), 0);
    stalled = sem_wait_5s(&stall.stalled); /* A is published, its wake-up not yet made */

    ring_sleeper_set(&f->rd, sleeping, true);
    atomic_fetch_sub(&f->w.rd->waiters, 1); /* the earlier sleeper has gone */
    waited_on = ring_sleep_arm(&f->rd);     /* A's wake-up runs inside */
    atomic_thread_fence(memory_order_seq_cst);
    ring__test_hook = NULL;
    sem_post(&stall.go); /* in case A never met the sleeper's hook */
    assert_int_equal(pthread_join(a, NULL), 0);
    sem_destroy(&stall.stalled);
    sem_destroy(&stall.go);
    sem_destroy(&stall.done);
    assert_true(stalled);
    assert_int_equal(stall.rc, 0);
    assert_int_equal(leo(f), 1); /* the last look: nothing past A */

    assert_int_equal(append_records(f, 1, 1, 1, 10, 0, &base), 0); /* B */
    assert_int_not_equal(ring_wake_seq(&f->rd), waited_on);
    ring_sleeper_set(&f->rd, sleeping, false);
}

/* Each sleeper counts once in waiters however often it is withdrawn: a reader, and shoald's
 * flusher by its own flag, which an append wakes like any reader. */
static void test_ring_sleepers_count_once_and_an_append_wakes_the_flusher(void **state)
{
    fx_t *f = *state;
    struct shm_readers *rd = f->w.rd;
    _Atomic uint32_t *reader = &rd->readers[f->cur.entry].sleeping;
    uint32_t seq0 = ring_wake_seq(&f->w);
    int64_t base;

    ring_sleeper_set(&f->w, reader, true);
    ring_sleeper_set(&f->w, &rd->daemon_sleeping, true);
    assert_int_equal(atomic_load(&rd->waiters), 2);
    ring_sleeper_set(&f->w, reader, false);
    ring_sleeper_set(&f->w, reader, false);
    assert_int_equal(atomic_load(&rd->waiters), 1);
    assert_int_equal(atomic_load(&rd->armed), 0); /* counted, not armed yet */
    assert_int_equal(ring_sleep_arm(&f->w), seq0);
    assert_int_equal(atomic_load(&rd->armed), 1);

    assert_int_equal(append_records(f, 1, 0, 1, 10, 0, &base), 0);
    assert_int_equal(ring_wake_seq(&f->w), seq0 + 1);
    assert_int_equal(atomic_load(&rd->armed), 0);
    ring_sleeper_set(&f->w, &rd->daemon_sleeping, false);
    ring_sleeper_set(&f->w, &rd->daemon_sleeping, false); /* a restarted daemon's clean-up */
    assert_int_equal(atomic_load(&rd->waiters), 0);
    assert_int_equal(atomic_load(&rd->daemon_sleeping), 0);
}

/* ------------------------------------------------------------------ flush wait */

typedef struct flusher_arg {
    fx_t *f;
    int64_t flushed;
    int delay_ms;
} flusher_arg_t;

/* What shoald's flusher does once a range is on disk. */
static void *flush_later(void *arg)
{
    flusher_arg_t *a = arg;
    struct shm_ctl *ctl = a->f->w.ctl;
    sleep_ms(a->delay_ms);
    atomic_store(&ctl->flushed_offset, a->flushed);
    atomic_fetch_add(&ctl->flush_seq, 1);
    if (SHM_FLUSH_WAITING(atomic_load(&ctl->flush_waiters)) > 0)
        shoal__futex_wake(&ctl->flush_seq, INT32_MAX);
    return NULL;
}

static void test_ring_wait_flushed_returns_once_the_flusher_passes_the_offset(void **state)
{
    fx_t *f = *state;
    flusher_arg_t a = {.f = f, .flushed = 10, .delay_ms = 30};
    pthread_t t;
    int64_t t0, waited;

    assert_int_equal(pthread_create(&t, NULL, flush_later, &a), 0);
    t0 = now_ms();
    assert_int_equal(ring_wait_flushed(&f->w, 9, 2000), 0);
    waited = now_ms() - t0;
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(waited >= 25);
    assert_true(waited < 1000);
    assert_int_equal(SHM_FLUSH_WAITING(atomic_load(&f->rd.ctl->flush_waiters)), 0);
    /* Already flushed: no wait at all. */
    t0 = now_ms();
    assert_int_equal(ring_wait_flushed(&f->w, 3, 2000), 0);
    assert_true(now_ms() - t0 < 20);
}

static void test_ring_wait_flushed_times_out_when_the_offset_is_not_flushed(void **state)
{
    fx_t *f = *state;
    int64_t t0, waited;

    atomic_store(&f->w.ctl->flushed_offset, 10);
    t0 = now_ms();
    /* flushed_offset is the first offset not on disk: 10 itself is not flushed. */
    assert_int_equal(ring_wait_flushed(&f->w, 10, 60), SHOAL_ETIMEDOUT);
    waited = now_ms() - t0;
    assert_true(waited >= 55);
    assert_true(waited < 5000); /* not for ever: a loaded machine has taken over 1 s */
    assert_int_equal(SHM_FLUSH_WAITING(atomic_load(&f->rd.ctl->flush_waiters)), 0);
}

typedef struct flush_waiter {
    ring_t *r;
    int64_t offset;
    int rc;
} flush_waiter_t;

static void *wait_flushed(void *arg)
{
    flush_waiter_t *w = arg;
    w->rc = ring_wait_flushed(w->r, w->offset, 5000);
    return NULL;
}

/* The word the flusher sleeps on, once a waiter is in. */
static uint32_t waiter_word_when_in(struct shm_ctl *ctl)
{
    uint32_t word;
    while (SHM_FLUSH_WAITING(word = atomic_load(&ctl->flush_waiters)) == 0)
        sleep_ms(1);
    return word;
}

/* One ACKS_DISK waiter leaves and another arrives between the flusher's load of the word
 * and its sleep: the word must differ from what the flusher loaded, or its futex wait
 * sleeps through the newcomer's wake-up (up to a tick, 100 ms, with a bare count). */
static void test_a_flush_waiter_arriving_changes_the_flushers_word(void **state)
{
    fx_t *f = *state;
    struct shm_ctl *ctl = f->w.ctl;
    flush_waiter_t a = {.r = &f->w, .offset = 4}, b = {.r = &f->w, .offset = 8};
    flusher_arg_t flush_a = {.f = f, .flushed = 5};
    pthread_t ta, tb, tf;
    uint32_t loaded;

    assert_int_equal(pthread_create(&ta, NULL, wait_flushed, &a), 0);
    loaded = waiter_word_when_in(ctl); /* what the flusher would wait on */
    assert_int_equal(pthread_create(&tf, NULL, flush_later, &flush_a), 0);
    assert_int_equal(pthread_join(ta, NULL), 0);
    assert_int_equal(pthread_join(tf, NULL), 0);
    assert_int_equal(a.rc, 0);
    assert_int_equal(SHM_FLUSH_WAITING(atomic_load(&ctl->flush_waiters)), 0);

    assert_int_equal(pthread_create(&tb, NULL, wait_flushed, &b), 0);
    assert_int_not_equal(waiter_word_when_in(ctl), loaded);
    assert_int_equal(shoal__futex_wait(&ctl->flush_waiters, loaded, 1000), 0); /* no sleep */
    flush_a.flushed = 9;
    flush_later(&flush_a);
    assert_int_equal(pthread_join(tb, NULL), 0);
    assert_int_equal(b.rc, 0);
}

/* ------------------------------------------------------------------ concurrency */

#define CONC_PRODUCERS 4
#define CONC_PER       20000
#define CONC_TOTAL     (CONC_PRODUCERS * CONC_PER)

typedef struct conc {
    fx_t *f;
    _Atomic int64_t progress; /* the reader's next offset */
    _Atomic bool done;
    int producer_rc[CONC_PRODUCERS];
    const char *reader_err;
    int64_t reader_count;
    int64_t reclaims;
} conc_t;

typedef struct producer_arg {
    conc_t *c;
    uint32_t tag;
} producer_arg_t;

static void *conc_produce(void *arg)
{
    producer_arg_t *a = arg;
    uint8_t buf[256];
    int rc = 0;

    for (uint32_t seq = 0; seq < CONC_PER && rc == 0; seq++) {
        size_t len = encode(buf, sizeof(buf), a->tag, seq, 1, 16);
        int64_t base, deadline = now_ms() + 5000;
        if (len == 0) {
            rc = -1;
            break;
        }
        do
            rc = ring_append(&a->c->f->w, buf, len, 1, TS0 + seq, 100, &base);
        while (rc == SHOAL_AGAIN && now_ms() < deadline);
    }
    a->c->producer_rc[a->tag] = rc;
    return NULL;
}

/* One step of the reader: 1 when it read a batch, 0 when caught up, -1 on an error. */
static int conc_read_one(conc_t *c, ring_cursor_t *cur, uint32_t *next_seq)
{
    ring_t *r = &c->f->rd;
    const uint8_t *batch;
    record_batch_header_t h;
    seen_t s[1] = {{0, 0, 0}};
    int rc;

    if (!cur->placed && ring_cursor_seek(r, cur, cur->next_offset) < 0)
        return cur->next_offset >= atomic_load(&r->ctl->log_end_offset) ? 0 : -1;
    rc = ring_cursor_next(r, cur, &batch, &h);
    if (rc == RING_SLOT_END)
        return ring_cursor_advance(r, cur) == 0 ? 1 : -1;
    if (rc <= 0)
        return rc;
    if (batch_records(batch, &h, s, 1) != 1 || s[0].offset != c->reader_count ||
        s[0].tag >= CONC_PRODUCERS || s[0].seq != next_seq[s[0].tag]) {
        c->reader_err = "record out of place, repeated or damaged";
        return -1;
    }
    next_seq[s[0].tag]++;
    c->reader_count++;
    atomic_store(&c->progress, cur->next_offset);
    return 1;
}

static void *conc_read(void *arg)
{
    conc_t *c = arg;
    ring_t *r = &c->f->rd;
    ring_cursor_t cur;
    uint32_t next_seq[CONC_PRODUCERS] = {0};
    int64_t deadline = now_ms() + 20000;

    if (ring_cursor_open(r, &cur) != 0 || ring_cursor_seek(r, &cur, 0) != 0) {
        c->reader_err = "cannot open a cursor";
        return NULL;
    }
    while (c->reader_count < CONC_TOTAL && !c->reader_err) {
        int rc = conc_read_one(c, &cur, next_seq);
        if (rc < 0 && !c->reader_err)
            c->reader_err = "cursor failed";
        if (rc == 0)
            reader_sleep(r, cur.entry, cur.next_offset, 50);
        if (now_ms() > deadline)
            c->reader_err = "reader timed out";
    }
    ring_cursor_close(r, &cur);
    return NULL;
}

/* shoald's part: free a sealed slot once the reader has read into it. The reader's pin is
 * what keeps the slot it is still reading. */
static void *conc_reclaim(void *arg)
{
    conc_t *c = arg;
    ring_t *r = &c->f->w;
    while (!atomic_load(&c->done)) {
        for (uint32_t s = 0; s < r->slot_count; s++) {
            struct shm_slot *sl = &r->ctl->slots[s];
            if (atomic_load(&sl->state) == SHM_SLOT_SEALED &&
                atomic_load(&sl->base_offset) < atomic_load(&c->progress) &&
                ring_reclaim_slot(r, s, 100) == 0)
                c->reclaims++;
        }
        sleep_ms(1);
    }
    return NULL;
}

static void test_ring_concurrent_producers_and_a_reader_see_every_record_once(void **state)
{
    fx_t *f = *state;
    conc_t c = {.f = f};
    producer_arg_t pa[CONC_PRODUCERS];
    pthread_t prod[CONC_PRODUCERS], reader, reclaimer;

    assert_int_equal(pthread_create(&reader, NULL, conc_read, &c), 0);
    assert_int_equal(pthread_create(&reclaimer, NULL, conc_reclaim, &c), 0);
    for (uint32_t i = 0; i < CONC_PRODUCERS; i++) {
        pa[i] = (producer_arg_t){.c = &c, .tag = i};
        assert_int_equal(pthread_create(&prod[i], NULL, conc_produce, &pa[i]), 0);
    }
    for (uint32_t i = 0; i < CONC_PRODUCERS; i++)
        assert_int_equal(pthread_join(prod[i], NULL), 0);
    assert_int_equal(pthread_join(reader, NULL), 0);
    atomic_store(&c.done, true);
    assert_int_equal(pthread_join(reclaimer, NULL), 0);

    for (uint32_t i = 0; i < CONC_PRODUCERS; i++)
        assert_int_equal(c.producer_rc[i], 0);
    if (c.reader_err)
        fail_msg("reader: %s after %lld records", c.reader_err, (long long)c.reader_count);
    assert_int_equal(c.reader_count, CONC_TOTAL);
    assert_int_equal(leo(f), CONC_TOTAL);
    assert_int_equal(atomic_load(&f->rd.ctl->appended_records), CONC_TOTAL);
    assert_true(c.reclaims > 0);
    assert_int_equal(atomic_load(&f->rd.rd->waiters), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f, s) cmocka_unit_test_setup_teardown(f, setup_##s, teardown)
        T(test_ring_append_assigns_gapless_offsets_and_publishes_them, disk2),
        T(test_ring_append_records_the_appending_cpu, disk2),
        T(test_ring_append_fill_that_fails_publishes_nothing, disk2),
        T(test_ring_append_fill_try_once_reports_a_held_lock, disk2),
        T(test_ring_cursor_reads_every_record_in_order_across_slot_rotations, disk3),
        T(test_ring_seek_lands_on_the_batch_holding_each_offset, disk3),
        T(test_ring_cursor_reports_caught_up_then_slot_end_once_sealed, disk2),
        T(test_ring_reader_never_trusts_a_used_beyond_the_slot, disk2),
        T(test_ring_refuses_an_active_slot_out_of_range, disk2),
        T(test_ring_rejects_append_when_full, disk2),
        T(test_ring_append_gives_up_after_block_ms_when_nothing_is_freed, disk2),
        T(test_ring_append_blocks_until_another_thread_reclaims_a_slot, disk2),
        T(test_ring_does_not_reclaim_a_pinned_slot_until_unpinned, disk3),
        T(test_ring_released_sleeper_holds_no_slot_and_learns_it_on_waking, disk3),
        T(test_ring_a_woken_sleeper_keeps_its_slot_against_a_racing_reclaimer, disk3),
        T(test_ring_reclaims_a_slot_once_its_cursor_is_closed, disk3),
        T(test_ring_cursor_cannot_read_a_reused_slot_as_its_old_offsets, disk2),
        T(test_ring_memory_topic_overwrites_the_oldest_unpinned_slot, mem3),
        T(test_ring_memory_append_waits_while_the_oldest_slot_is_pinned, mem2),
        T(test_ring_rejects_a_batch_larger_than_a_slot, disk2),
        T(test_ring_refuses_append_and_flush_wait_on_a_deleted_topic, disk2),
        T(test_ring_create_rejects_fewer_than_two_or_too_many_slots, disk2),
        T(test_ring_cursor_open_fails_when_the_reader_table_is_full, disk2),
        T(test_ring_map_fds_rejects_a_wrong_descriptor_count, disk2),
        T(test_ring_map_fds_rejects_files_of_the_wrong_size, disk2),
        T(test_ring_map_fds_rejects_missing_magic_or_another_version, disk2),
        T(test_ring_open_refuses_other_parameters_and_maps_the_same_ring, disk3),
        T(test_ring_reap_clears_dead_readers_and_their_sleep, disk2),
        T(test_ring_append_wakes_a_sleeping_reader, disk2),
        T(test_ring_append_after_a_stalled_wake_up_still_wakes_the_reader, disk2),
        T(test_ring_sleepers_count_once_and_an_append_wakes_the_flusher, disk2),
        T(test_ring_wait_flushed_returns_once_the_flusher_passes_the_offset, disk2),
        T(test_ring_wait_flushed_times_out_when_the_offset_is_not_flushed, disk2),
        T(test_a_flush_waiter_arriving_changes_the_flushers_word, disk2),
        T(test_ring_concurrent_producers_and_a_reader_see_every_record_once, disk4),
#undef T
    };
    /* Shared memory lives on tmpfs: test there when the host has it. */
    if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0)
        setenv("TMPDIR", "/dev/shm", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
