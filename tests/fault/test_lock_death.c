/* test_lock_death.c - processes killed (SIGKILL) while they hold the ring's append lock or a
 * reader pin, and what the survivors must find: nothing acknowledged lost, nothing torn
 * visible, offsets gapless, and nothing left that blocks producers.
 *
 * A child maps the ring read-write with ring_open() and appends batches of PER records
 * tagged (TAG_CHILD, seq = offset). ring__test_hook stops it inside the lock at a chosen
 * stage of a chosen append: it writes the append's number to a pipe and pause()s, and the
 * parent kills it there. Appends before that one were acknowledged. The parent then
 * appends through its own mapping (the first locker gets EOWNERDEAD and runs ring_repair())
 * and reads everything back through a read-only mapping.
 *
 * The contract for the killed batch follows ring_repair(), which recomputes log_end_offset
 * from the active slot's published batches: when the child died before the slot's `used`
 * moved (COPIED, ROTATING, SEALED) the batch never existed; when it died after (USED) the
 * batch was published to readers already, and repair completes it: it is visible exactly
 * once at the offsets it was assigned, and the next append follows it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "record.h"
#include "ring.h"
#include "util.h"

#include "ring_records.h"

#define SLOT_BYTES     (64u * 1024u)
#define NAME           "fault-0"
#define PER            3   /* records per batch */
#define VALUE_LEN      300 /* a batch is about 1 KiB: some 60 per slot */
#define TAG_CHILD      1u
#define TAG_PARENT     2u
#define PARENT_BATCHES 80 /* enough to rotate at least once more after the repair */
#define PLAIN_APPEND   10 /* the append a "plain" case stops in: mid-slot, not rotating */
#define MAX_RECORDS    4096

/* Where a child producer is stopped. */
typedef struct fault_case {
    int stage;        /* enum ring_stage */
    uint32_t storage; /* shoal_storage_t */
    uint32_t slots;
    int rotation;      /* 0: append PLAIN_APPEND; k: the k-th append that rotates */
    bool live_readers; /* consumers read across the death and the repair */
    bool mid_fill;     /* stage 0: killed halfway through encoding append PLAIN_APPEND */
} fault_case_t;

typedef struct fx {
    char dir[256];
    ring_params_t p;
    ring_t w;  /* this process's producer mapping */
    ring_t rd; /* a consumer's read-only mapping */
    ring_cursor_t cur;
} fx_t;

/* ------------------------------------------------------------------ records */

static int append_records(ring_t *r, uint32_t tag, uint32_t seq, int n, size_t value_len,
                          int block_ms, int64_t *base)
{
    uint8_t buf[4096];
    size_t len = encode(buf, sizeof(buf), tag, seq, n, value_len);
    if (len == 0)
        return -EINVAL;
    return ring_append(r, buf, len, n, TS0 + seq, block_ms, base);
}

static int append_batch(ring_t *r, uint32_t tag, uint32_t seq, int block_ms, int64_t *base)
{
    return append_records(r, tag, seq, PER, VALUE_LEN, block_ms, base);
}

/* ------------------------------------------------------------------ fixture */

static void fx_open(fx_t *f, uint32_t storage, uint32_t slots)
{
    int fds[RING_FD_COUNT(SHM_MAX_SLOTS)];
    int rc;

    memset(f, 0, sizeof(*f));
    harness_tmpdir(f->dir, sizeof(f->dir), "lockdeath");
    f->p = (ring_params_t){.slot_bytes = SLOT_BYTES,
                           .slot_count = slots,
                           .max_record_bytes = SLOT_BYTES,
                           .storage = storage};
    assert_int_equal(ring_create(&f->w, f->dir, NAME, &f->p, 0, NULL), 0);
    assert_int_equal(ring_open_fds(f->dir, NAME, slots, false, fds), 0);
    rc = ring_map_fds(&f->rd, fds, RING_FD_COUNT(slots), false);
    for (uint32_t i = 0; i < RING_FD_COUNT(slots); i++)
        close(fds[i]);
    assert_int_equal(rc, 0);
    assert_int_equal(ring_cursor_open(&f->rd, &f->cur), 0);
}

static void fx_close(fx_t *f)
{
    ring_cursor_close(&f->rd, &f->cur);
    ring_unmap(&f->rd);
    ring_unmap(&f->w);
    harness_rmrf(f->dir);
}

static int64_t leo(const fx_t *f)
{
    return atomic_load(&f->rd.ctl->log_end_offset);
}

/* Append parent batches until the active slot is want. */
static void fill_until_active(fx_t *f, uint32_t want, uint32_t *seq)
{
    int64_t base;
    for (int n = 0; atomic_load(&f->rd.ctl->active_slot) != want; n++) {
        assert_int_equal(append_batch(&f->w, TAG_PARENT, *seq, 0, &base), 0);
        *seq += PER;
        assert_true(n < 1000);
    }
}

/* ------------------------------------------------------------------ children */

static struct {
    int fd;
    const fault_case_t *fc;
    int64_t append_no;
    bool rotating_now;
    int rotations;
} child;

static void child_stop(void)
{
    if (write(child.fd, &child.append_no, sizeof(child.append_no)) != sizeof(child.append_no))
        _exit(20);
    for (;;)
        pause();
}

static void child_hook(int stage)
{
    const fault_case_t *fc = child.fc;
    if (stage == RING_STAGE_ROTATING) {
        child.rotating_now = true;
        child.rotations++;
    }
    if (stage != fc->stage)
        return;
    if (fc->rotation == 0 ? child.append_no >= PLAIN_APPEND && !child.rotating_now
                          : child.rotating_now && child.rotations == fc->rotation)
        child_stop();
}

/* A fill (ring_fill_fn) killed halfway: half of the encoded batch in arg is in the slot,
 * past `used`, base offset and all, when the parent kills it. */
static int fill_half_then_stop(uint8_t *dst, size_t len, int64_t base_offset, void *arg)
{
    memcpy(dst, arg, len / 2);
    record_batch_set_base_offset(dst, base_offset);
    child_stop();
    return 0;
}

/* Append PLAIN_APPEND as a producer encoding in place would, and die in the middle. */
static void child_die_mid_fill(ring_t *r)
{
    uint8_t buf[4096];
    int64_t base;
    struct ring_batch b = {.len = encode(buf, sizeof(buf), TAG_CHILD,
                                         (uint32_t)(child.append_no * PER), PER, VALUE_LEN),
                           .records = PER,
                           .max_timestamp = TS0,
                           .fill = fill_half_then_stop,
                           .arg = buf};
    ring_append_fill(r, &b, 0, false, &base);
    _exit(15); /* fill_half_then_stop never returns */
}

/* The child producer: never returns. Exit codes above 9 say what went wrong. */
static void child_produce(const fx_t *f, const fault_case_t *fc, int fd)
{
    ring_t r;
    if (ring_open(&r, f->dir, NAME, &f->p, NULL) != 0)
        _exit(10);
    child.fd = fd;
    child.fc = fc;
    ring__test_hook = child_hook;
    for (child.append_no = 0; child.append_no < 1000; child.append_no++) {
        int64_t base;
        child.rotating_now = false;
        if (fc->mid_fill && child.append_no == PLAIN_APPEND)
            child_die_mid_fill(&r);
        if (append_batch(&r, TAG_CHILD, (uint32_t)(child.append_no * PER), 0, &base) != 0)
            _exit(11);
        if (base != child.append_no * PER)
            _exit(12);
    }
    _exit(13); /* the stage was never reached */
}

/* Run body(f, arg, fd) in a child, wait for it to write 8 bytes to fd, then SIGKILL it. */
static int64_t run_child_until_stopped(fx_t *f, void (*body)(const fx_t *, const void *, int),
                                       const void *arg)
{
    struct pollfd pfd;
    int pipefd[2], status;
    int64_t got = -1;
    pid_t pid;

    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        body(f, arg, pipefd[1]);
        _exit(14);
    }
    close(pipefd[1]);
    pfd = (struct pollfd){.fd = pipefd[0], .events = POLLIN};
    if (poll(&pfd, 1, 5000) == 1 && read(pipefd[0], &got, sizeof(got)) == sizeof(got)) {
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        close(pipefd[0]);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        return got;
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    close(pipefd[0]);
    fail_msg("child never reached its stop (status %#x)", status);
    return -1;
}

static void produce_body(const fx_t *f, const void *arg, int fd)
{
    child_produce(f, arg, fd);
}

/* ------------------------------------------------------------------ checks */

/* Live slots cover [log_start, log_end) without gaps or overlaps, one of them ACTIVE. */
static void assert_slots_consistent(const fx_t *f)
{
    const struct shm_ctl *ctl = f->rd.ctl;
    uint32_t act = atomic_load(&ctl->active_slot), n = f->p.slot_count, actives = 0;
    int64_t next = atomic_load(&ctl->slots[act].base_offset);

    for (uint32_t i = 0; i < n; i++)
        actives += atomic_load(&ctl->slots[i].state) == SHM_SLOT_ACTIVE;
    assert_int_equal(actives, 1);
    assert_int_equal(atomic_load(&ctl->slots[act].state), SHM_SLOT_ACTIVE);
    assert_true(next <= atomic_load(&ctl->log_end_offset));
    /* Walk back from the active slot through the sealed ones. */
    for (uint32_t k = 1; k < n; k++) {
        const struct shm_slot *s = &ctl->slots[(act + n - k) % n];
        if (atomic_load(&s->state) != SHM_SLOT_SEALED)
            break;
        assert_int_equal(atomic_load(&s->end_offset), next);
        next = atomic_load(&s->base_offset);
        assert_true(next < atomic_load(&s->end_offset));
    }
    assert_int_equal(next, atomic_load(&ctl->log_start_offset));
}

/* Before anyone repairs: the child died where the case says, with its batch unacknowledged
 * (log_end_offset is the last store of an append). */
static void assert_stopped_where_asked(const fx_t *f, const fault_case_t *fc, int64_t killed)
{
    const struct shm_ctl *ctl = f->rd.ctl;
    uint32_t act = atomic_load(&ctl->active_slot), nx = (act + 1) % f->p.slot_count;
    const struct shm_slot *a = &ctl->slots[act], *n = &ctl->slots[nx];

    assert_int_equal(leo(f), killed * PER);
    switch (fc->stage) {
    case RING_STAGE_ROTATING: /* both ACTIVE, the new one empty */
        assert_int_equal(atomic_load(&a->state), SHM_SLOT_ACTIVE);
        assert_int_equal(atomic_load(&n->state), SHM_SLOT_ACTIVE);
        assert_int_equal(atomic_load(&n->used), 0);
        break;
    case RING_STAGE_SEALED: /* old SEALED but still the active one */
        assert_int_equal(atomic_load(&a->state), SHM_SLOT_SEALED);
        assert_int_equal(atomic_load(&a->end_offset), killed * PER);
        assert_int_equal(atomic_load(&n->state), SHM_SLOT_ACTIVE);
        break;
    default: /* COPIED, USED: in the active slot, the first batch there after a rotation */
        assert_int_equal(atomic_load(&a->state), SHM_SLOT_ACTIVE);
        if (fc->rotation) {
            assert_int_equal(atomic_load(&a->base_offset), killed * PER);
            assert_true((atomic_load(&a->used) == 0) == (fc->stage == RING_STAGE_COPIED));
        }
        break;
    }
}

/* A consumer reading through the death and the repair. */
typedef struct reader {
    ring_cursor_t c;
    int64_t from;
    seen_t *seen;
    size_t n;
} reader_t;

static void reader_start(fx_t *f, reader_t *r, int64_t from)
{
    r->from = from;
    r->n = 0;
    r->seen = calloc(MAX_RECORDS, sizeof(*r->seen));
    assert_non_null(r->seen);
    assert_int_equal(ring_cursor_open(&f->rd, &r->c), 0);
    assert_int_equal(ring_cursor_seek(&f->rd, &r->c, from), 0);
}

static void reader_poll(fx_t *f, reader_t *r)
{
    r->n += drain(&f->rd, &r->c, r->seen + r->n, MAX_RECORDS - r->n);
}

/* The reader saw exactly offsets from..log end: the child's records up to child_end (seq =
 * offset), then the parent's (seq from 0), each once, in order. */
static void reader_check_and_stop(fx_t *f, reader_t *r, int64_t child_end)
{
    assert_int_equal(r->n, leo(f) - r->from);
    for (size_t i = 0; i < r->n; i++) {
        int64_t off = r->from + (int64_t)i;
        assert_int_equal(r->seen[i].offset, off);
        assert_int_equal(r->seen[i].tag, off < child_end ? TAG_CHILD : TAG_PARENT);
        assert_int_equal(r->seen[i].seq, off < child_end ? off : off - child_end);
    }
    ring_cursor_close(&f->rd, &r->c);
    free(r->seen);
}

static void run_producer_case(const fault_case_t *fc)
{
    fx_t f;
    reader_t follow, tail, late;
    int64_t killed_append, visible, start, base;

    fx_open(&f, fc->storage, fc->slots);
    killed_append = run_child_until_stopped(&f, produce_body, fc);
    assert_true(killed_append >= (fc->rotation ? 1 : PLAIN_APPEND));
    /* Batches 0 .. killed_append - 1 were acknowledged; the killed one is visible only if
     * the child got as far as publishing `used`. */
    visible = killed_append + (fc->stage == RING_STAGE_USED);
    assert_int_equal(atomic_load(&f.rd.ctl->lock_recoveries), 0);
    assert_stopped_where_asked(&f, fc, killed_append);
    if (fc->live_readers) {
        /* Consumers active across the death: one that has read everything published, one
         * that just joined at the log end. */
        reader_start(&f, &follow, atomic_load(&f.rd.ctl->log_start_offset));
        reader_poll(&f, &follow);
        reader_start(&f, &tail, leo(&f));
        reader_poll(&f, &tail);
    }

    /* The next locker repairs, and its append lands right after what is visible. Its first
     * batch is one small record, which fits where the killed batch did not: after a killed
     * rotation, it goes into the slot the child was rotating away from. */
    for (uint32_t i = 0, seq = 0; i < PARENT_BATCHES; i++) {
        int n = i == 0 ? 1 : PER;
        size_t value_len = i == 0 ? 8 : VALUE_LEN;
        assert_int_equal(append_records(&f.w, TAG_PARENT, seq, n, value_len, 0, &base), 0);
        assert_int_equal(base, visible * PER + seq);
        assert_int_equal(atomic_load(&f.rd.ctl->lock_recoveries), 1);
        seq += (uint32_t)n;
        if (fc->live_readers) {
            reader_poll(&f, &follow);
            reader_poll(&f, &tail);
        }
    }
    assert_int_equal(leo(&f), visible * PER + 1 + (PARENT_BATCHES - 1) * PER);
    assert_slots_consistent(&f);
    if (fc->live_readers) {
        reader_check_and_stop(&f, &follow, visible * PER);
        reader_check_and_stop(&f, &tail, visible * PER);
    }

    /* A consumer arriving afterwards reads it all back from the log start. */
    start = atomic_load(&f.rd.ctl->log_start_offset);
    assert_true(fc->storage == SHOAL_STORAGE_MEMORY || start == 0);
    reader_start(&f, &late, start);
    reader_poll(&f, &late);
    reader_check_and_stop(&f, &late, visible * PER);
    fx_close(&f);
}

/* ------------------------------------------------------------------ producer deaths */

static void test_producer_killed_while_encoding_in_place_leaves_nothing_torn(void **state)
{
    static const fault_case_t disk = {0, SHOAL_STORAGE_DISK, 4, 0, true, true};
    static const fault_case_t memory = {0, SHOAL_STORAGE_MEMORY, 3, 0, true, true};
    (void)state;
    run_producer_case(&disk);
    run_producer_case(&memory);
}

static void test_producer_killed_after_copy_leaves_its_batch_unpublished(void **state)
{
    static const fault_case_t fc = {RING_STAGE_COPIED, SHOAL_STORAGE_DISK, 4, 0, true};
    (void)state;
    run_producer_case(&fc);
}

static void test_producer_killed_after_copy_into_a_new_slot_leaves_it_unpublished(void **state)
{
    static const fault_case_t fc = {RING_STAGE_COPIED, SHOAL_STORAGE_DISK, 4, 1, true};
    (void)state;
    run_producer_case(&fc);
}

static void test_producer_killed_after_publishing_used_completes_its_batch_once(void **state)
{
    static const fault_case_t fc = {RING_STAGE_USED, SHOAL_STORAGE_DISK, 4, 0, true};
    (void)state;
    run_producer_case(&fc);
}

static void test_producer_killed_after_publishing_used_in_a_new_slot_completes_it(void **state)
{
    static const fault_case_t fc = {RING_STAGE_USED, SHOAL_STORAGE_DISK, 4, 1, true};
    (void)state;
    run_producer_case(&fc);
}

static void test_producer_killed_mid_rotation_loses_nothing_acknowledged(void **state)
{
    static const fault_case_t fc = {RING_STAGE_ROTATING, SHOAL_STORAGE_DISK, 4, 1, true};
    (void)state;
    run_producer_case(&fc);
}

static void test_producer_killed_after_sealing_loses_nothing_acknowledged(void **state)
{
    static const fault_case_t fc = {RING_STAGE_SEALED, SHOAL_STORAGE_DISK, 4, 1, false};
    (void)state;
    run_producer_case(&fc);
}

/* Memory topics: the second rotation of a 2-slot ring first overwrites slot 0. */
static void test_memory_producer_killed_mid_rotation_over_the_oldest_slot_recovers(void **state)
{
    static const fault_case_t fc = {RING_STAGE_ROTATING, SHOAL_STORAGE_MEMORY, 2, 2, false};
    (void)state;
    run_producer_case(&fc);
}

static void test_memory_producer_killed_after_sealing_over_the_oldest_slot_recovers(void **state)
{
    static const fault_case_t fc = {RING_STAGE_SEALED, SHOAL_STORAGE_MEMORY, 2, 2, false};
    (void)state;
    run_producer_case(&fc);
}

static void test_memory_producer_killed_after_publishing_used_completes_its_batch(void **state)
{
    static const fault_case_t fc = {RING_STAGE_USED, SHOAL_STORAGE_MEMORY, 2, 2, true};
    (void)state;
    run_producer_case(&fc);
}

/* A rotation killed after the next slot went ACTIVE is finished by repair, never undone:
 * a consumer that already moved to the new slot (it saw the old slot SEALED, or a seek to
 * the log end found the new slot first) must miss nothing the repairer appends. */

static void test_consumer_past_a_seal_finished_by_repair_misses_nothing(void **state)
{
    static const fault_case_t fc = {RING_STAGE_SEALED, SHOAL_STORAGE_DISK, 4, 1, true};
    (void)state;
    run_producer_case(&fc);
}

static void test_memory_consumers_across_a_rotation_finished_by_repair_miss_nothing(void **state)
{
    static const fault_case_t fc = {RING_STAGE_ROTATING, SHOAL_STORAGE_MEMORY, 2, 2, true};
    (void)state;
    run_producer_case(&fc);
}

static void test_memory_consumer_past_a_seal_finished_by_repair_misses_nothing(void **state)
{
    static const fault_case_t fc = {RING_STAGE_SEALED, SHOAL_STORAGE_MEMORY, 2, 2, true};
    (void)state;
    run_producer_case(&fc);
}

/* ------------------------------------------------------------------ reclaimer deaths */

/* A reclaimer (shoald after a flush, or a memory topic's producer rotating over the oldest
 * slot) killed inside the lock in the middle of slot_reclaim_locked(). The ring's hook has
 * no stage there, so the child takes the lock and makes the same stores itself: the slot
 * RECLAIMING, and when dropped is set its bytes dropped too (the pin scan had passed). */
typedef struct reclaim_death {
    uint32_t slot;
    bool dropped;
} reclaim_death_t;

static void reclaim_body(const fx_t *f, const void *arg, int fd)
{
    const reclaim_death_t *d = arg;
    int64_t slot = d->slot;
    ring_t r;

    if (ring_open(&r, f->dir, NAME, &f->p, NULL) != 0 || pthread_mutex_lock(&r.ctl->lock) != 0)
        _exit(17);
    atomic_store(&r.ctl->slots[d->slot].state, SHM_SLOT_RECLAIMING);
    if (d->dropped)
        atomic_store(&r.ctl->slots[d->slot].used, 0);
    if (write(fd, &slot, sizeof(slot)) != sizeof(slot))
        _exit(18);
    for (;;)
        pause();
}

static void test_reclaimer_killed_before_dropping_a_slot_leaves_it_sealed(void **state)
{
    static const reclaim_death_t d = {.slot = 0, .dropped = false};
    seen_t *seen = calloc(MAX_RECORDS, sizeof(*seen));
    uint32_t seq = 0;
    int64_t base;
    size_t n;
    fx_t f;

    (void)state;
    assert_non_null(seen);
    fx_open(&f, SHOAL_STORAGE_DISK, 2);
    fill_until_active(&f, 1, &seq);
    run_child_until_stopped(&f, reclaim_body, &d);
    assert_int_equal(append_batch(&f.w, TAG_PARENT, seq, 0, &base), 0);
    seq += PER;
    assert_int_equal(atomic_load(&f.rd.ctl->lock_recoveries), 1);
    /* Nobody freed it: it is still sealed, its records readable, and it can be reclaimed. */
    assert_int_equal(atomic_load(&f.rd.ctl->slots[0].state), SHM_SLOT_SEALED);
    assert_int_equal(ring_cursor_seek(&f.rd, &f.cur, 0), 0);
    n = drain(&f.rd, &f.cur, seen, MAX_RECORDS);
    assert_int_equal(n, seq);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seen[i].seq, i);
    ring_cursor_unpin(&f.rd, &f.cur);
    assert_int_equal(ring_reclaim_slot(&f.w, 0, 100), 0);
    fill_until_active(&f, 0, &seq);
    fx_close(&f);
    free(seen);
}

static void test_reclaimer_killed_after_dropping_a_slot_leaves_it_free(void **state)
{
    static const reclaim_death_t d = {.slot = 0, .dropped = true};
    uint32_t seq = 0;
    int64_t base;
    fx_t f;

    (void)state;
    fx_open(&f, SHOAL_STORAGE_DISK, 2);
    fill_until_active(&f, 1, &seq);
    run_child_until_stopped(&f, reclaim_body, &d);
    assert_int_equal(append_batch(&f.w, TAG_PARENT, seq, 0, &base), 0);
    assert_int_equal(atomic_load(&f.rd.ctl->lock_recoveries), 1);
    assert_int_equal(atomic_load(&f.rd.ctl->slots[0].state), SHM_SLOT_FREE);
    assert_int_equal(atomic_load(&f.rd.ctl->slots[0].max_timestamp), -1);
    seq += PER;
    fill_until_active(&f, 0, &seq);
    assert_int_equal(atomic_load(&f.rd.ctl->slots[0].base_offset), seq - PER);
    fx_close(&f);
}

static void test_memory_producer_killed_reclaiming_the_oldest_slot_does_not_wedge(void **state)
{
    static const reclaim_death_t d = {.slot = 0, .dropped = false};
    uint32_t seq = 0;
    int64_t end0;
    fx_t f;

    (void)state;
    fx_open(&f, SHOAL_STORAGE_MEMORY, 2);
    fill_until_active(&f, 1, &seq);
    end0 = atomic_load(&f.rd.ctl->slots[0].end_offset);
    run_child_until_stopped(&f, reclaim_body, &d);
    /* Appends fill slot 1 and then overwrite slot 0, with no wait at all. */
    fill_until_active(&f, 0, &seq);
    assert_int_equal(atomic_load(&f.rd.ctl->lock_recoveries), 1);
    assert_int_equal(atomic_load(&f.rd.ctl->log_start_offset), end0);
    fill_until_active(&f, 1, &seq);
    fx_close(&f);
}

/* ------------------------------------------------------------------ consumer deaths */

/* A consumer that pins slot 0 and is killed while reading it. */
static void pin_body(const fx_t *f, const void *arg, int fd)
{
    int fds[RING_FD_COUNT(SHM_MAX_SLOTS)];
    const uint8_t *batch;
    record_batch_header_t h;
    ring_t r;
    ring_cursor_t c;
    int64_t entry;

    (void)arg;
    if (ring_open_fds(f->dir, NAME, f->p.slot_count, false, fds) != 0 ||
        ring_map_fds(&r, fds, RING_FD_COUNT(f->p.slot_count), false) != 0 ||
        ring_cursor_open(&r, &c) != 0 || ring_cursor_seek(&r, &c, 0) != 0 ||
        ring_cursor_next(&r, &c, &batch, &h) != 1)
        _exit(15);
    entry = c.entry;
    if (write(fd, &entry, sizeof(entry)) != sizeof(entry))
        _exit(16);
    for (;;)
        pause();
}

static void test_killed_consumer_blocks_no_memory_producer_once_reaped(void **state)
{
    fx_t f;
    uint32_t seq = 0;
    int64_t entry, base, end0;
    int rc;

    (void)state;
    fx_open(&f, SHOAL_STORAGE_MEMORY, 2);
    fill_until_active(&f, 1, &seq);
    end0 = atomic_load(&f.rd.ctl->slots[0].end_offset);
    entry = run_child_until_stopped(&f, pin_body, NULL);
    assert_true(atomic_load(&f.rd.rd->readers[entry].pin) != 0);

    /* Its pin still holds slot 0: once slot 1 is full, appends are refused. */
    for (int n = 0; (rc = append_batch(&f.w, TAG_PARENT, seq, 0, &base)) == 0; n++) {
        seq += PER;
        assert_true(n < 1000);
    }
    assert_int_equal(rc, SHOAL_AGAIN);
    assert_int_equal(ring_reap_dead_readers(&f.w), 1);
    assert_int_equal(atomic_load(&f.rd.rd->readers[entry].pid), 0);
    assert_int_equal(append_batch(&f.w, TAG_PARENT, seq, 0, &base), 0);
    assert_int_equal(atomic_load(&f.rd.ctl->slots[0].state), SHM_SLOT_ACTIVE);
    assert_int_equal(atomic_load(&f.rd.ctl->log_start_offset), end0);
    assert_int_equal(atomic_load(&f.rd.ctl->lock_recoveries), 0);
    fx_close(&f);
}

static void test_killed_consumer_blocks_no_reclaim_once_reaped(void **state)
{
    fx_t f;
    uint32_t seq = 0;
    int64_t entry, base;

    (void)state;
    fx_open(&f, SHOAL_STORAGE_DISK, 2);
    fill_until_active(&f, 1, &seq);
    entry = run_child_until_stopped(&f, pin_body, NULL);
    assert_int_equal(ring_reclaim_slot(&f.w, 0, 100), SHOAL_AGAIN);
    assert_int_equal(ring_reap_dead_readers(&f.w), 1);
    assert_int_equal(atomic_load(&f.rd.rd->readers[entry].pin), 0);
    assert_int_equal(ring_reclaim_slot(&f.w, 0, 100), 0);
    fill_until_active(&f, 0, &seq);
    assert_int_equal(append_batch(&f.w, TAG_PARENT, seq, 0, &base), 0);
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_producer_killed_while_encoding_in_place_leaves_nothing_torn),
        cmocka_unit_test(test_producer_killed_after_copy_leaves_its_batch_unpublished),
        cmocka_unit_test(test_producer_killed_after_copy_into_a_new_slot_leaves_it_unpublished),
        cmocka_unit_test(test_producer_killed_after_publishing_used_completes_its_batch_once),
        cmocka_unit_test(test_producer_killed_after_publishing_used_in_a_new_slot_completes_it),
        cmocka_unit_test(test_producer_killed_mid_rotation_loses_nothing_acknowledged),
        cmocka_unit_test(test_producer_killed_after_sealing_loses_nothing_acknowledged),
        cmocka_unit_test(test_memory_producer_killed_mid_rotation_over_the_oldest_slot_recovers),
        cmocka_unit_test(test_memory_producer_killed_after_sealing_over_the_oldest_slot_recovers),
        cmocka_unit_test(test_memory_producer_killed_after_publishing_used_completes_its_batch),
        cmocka_unit_test(test_consumer_past_a_seal_finished_by_repair_misses_nothing),
        cmocka_unit_test(test_memory_consumers_across_a_rotation_finished_by_repair_miss_nothing),
        cmocka_unit_test(test_memory_consumer_past_a_seal_finished_by_repair_misses_nothing),
        cmocka_unit_test(test_reclaimer_killed_before_dropping_a_slot_leaves_it_sealed),
        cmocka_unit_test(test_reclaimer_killed_after_dropping_a_slot_leaves_it_free),
        cmocka_unit_test(test_memory_producer_killed_reclaiming_the_oldest_slot_does_not_wedge),
        cmocka_unit_test(test_killed_consumer_blocks_no_memory_producer_once_reaped),
        cmocka_unit_test(test_killed_consumer_blocks_no_reclaim_once_reaped),
    };
    if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0)
        setenv("TMPDIR", "/dev/shm", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
