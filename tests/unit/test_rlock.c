/* test_rlock.c - the process-shared robust mutex: taking and releasing it, refusal and
 * timeouts while another process holds it, the repair hook after an owner died holding it
 * (run once, with its arg, the mutex consistent afterwards), and a failed repair leaving the
 * mutex unrecoverable, every later locker getting SHOAL_EPANIC.
 *
 * The mutex lives in an anonymous MAP_SHARED mapping, with a few words beside it that the
 * repair hook and the helper children write, so the parent sees what happened in any process.
 * Other processes are harness_fork() children (they always end): a holder takes the lock,
 * says so through a pipe, then releases it when cued, releases it after a while, _exit()s or
 * waits to be SIGKILLed; a probe takes it once (rlock_try(), or rlock_acquire() timed or
 * not) and reports what that returned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "rlock.h"
#include "util.h"

#define TIMEOUT_MS 200 /* a timed acquire's timeout */
#define HOLD_MS    200 /* how long a holder keeps the lock before releasing it by itself */
#define CHILD_S    10  /* a helper child's life */
#define WAIT_MS    10000
#define WATCHDOG_S 30

/* The shared mapping. */
struct shared {
    pthread_mutex_t lock;
    int repairs;        /* calls of repair_hook, in any process */
    void *repair_arg;   /* the arg of the last one */
    int trylock_in_rep; /* pthread_mutex_trylock() inside it: EBUSY, as the caller holds it */
    int repair_rc;      /* what repair_hook returns */
    int released;       /* set by a holder just before it releases the lock */
    int probe_rc;       /* what a probe's attempt returned */
};

static struct shared *sh;
static int repair_token;
#define REPAIR_ARG ((void *)&repair_token)

static int repair_hook(void *arg)
{
    sh->repairs++;
    sh->repair_arg = arg;
    sh->trylock_in_rep = pthread_mutex_trylock(&sh->lock);
    return sh->repair_rc;
}

static int setup(void **state)
{
    (void)state;
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED || rlock_init(&sh->lock) != 0)
        return -1;
    harness_watchdog(WATCHDOG_S, "test_rlock");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_kill_children();
    harness_watchdog(0, NULL);
    munmap(sh, sizeof(*sh));
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ------------------------------------------------------------------ taking the lock */

typedef enum via { VIA_ACQUIRE_FOREVER, VIA_ACQUIRE_TIMED, VIA_TRY } via_t;

/* Take the lock in this process with repair_hook. */
static int take(via_t via)
{
    if (via == VIA_TRY)
        return rlock_try(&sh->lock, repair_hook, REPAIR_ARG);
    return rlock_acquire(&sh->lock, via == VIA_ACQUIRE_TIMED ? TIMEOUT_MS : -1, repair_hook,
                         REPAIR_ARG);
}

/* ------------------------------------------------------------------ other processes */

/* Run fn in a child and check that it exited with status 0. */
static void run_child(int (*fn)(void *), void *arg)
{
    pid_t pid = harness_fork(fn, arg, CHILD_S);
    assert_true(pid > 0);
    assert_int_equal(harness_wait(pid, WAIT_MS), 0);
}

static int take_once(void *arg)
{
    sh->probe_rc = take(*(const via_t *)arg);
    if (sh->probe_rc == 0)
        rlock_release(&sh->lock);
    return 0;
}

/* What taking the lock `via` returns in another process (which releases it when it got it). */
static int take_elsewhere(via_t via)
{
    sh->probe_rc = 1;
    run_child(take_once, &via);
    return sh->probe_rc;
}

/* How a holder child lets go of the lock. */
typedef enum hold_end {
    END_ON_CUE,     /* releases it when the parent writes to the cue pipe */
    END_AFTER_HOLD, /* releases it after HOLD_MS */
    END_EXIT,       /* _exit()s holding it */
    END_KILLED,     /* holds it until the parent SIGKILLs it */
} hold_end_t;

typedef struct holder {
    hold_end_t end;
    int up[2];  /* child -> parent: "I hold it" */
    int cue[2]; /* parent -> child: "release it" */
    pid_t pid;
} holder_t;

static int hold_lock(void *arg)
{
    holder_t *h = arg;
    char c = 'h';

    close(h->up[0]);
    close(h->cue[1]);
    if (rlock_acquire(&sh->lock, -1, NULL, NULL) != 0)
        return 10;
    if (write(h->up[1], &c, 1) != 1)
        return 11;
    if (h->end == END_EXIT)
        _exit(0);
    while (h->end == END_KILLED)
        pause();
    if (h->end == END_AFTER_HOLD)
        sleep_ms(HOLD_MS);
    else if (read(h->cue[0], &c, 1) != 1)
        return 12;
    sh->released = 1;
    rlock_release(&sh->lock);
    return 0;
}

/* Fork a holder and return once it holds the lock. */
static void holder_start(holder_t *h, hold_end_t end)
{
    struct pollfd pfd;
    char c = 0;

    h->end = end;
    assert_int_equal(pipe(h->up), 0);
    assert_int_equal(pipe(h->cue), 0);
    h->pid = harness_fork(hold_lock, h, CHILD_S);
    assert_true(h->pid > 0);
    close(h->up[1]);
    close(h->cue[0]);
    pfd = (struct pollfd){.fd = h->up[0], .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
    assert_int_equal(read(h->up[0], &c, 1), 1);
    assert_int_equal(c, 'h');
}

/* Let the holder end its way (cue it, or kill it) and reap it. */
static void holder_finish(holder_t *h)
{
    char c = 'r';

    if (h->end == END_ON_CUE)
        assert_int_equal(write(h->cue[1], &c, 1), 1);
    if (h->end == END_KILLED)
        kill(h->pid, SIGKILL);
    assert_int_equal(harness_wait(h->pid, WAIT_MS), h->end == END_KILLED ? 128 + SIGKILL : 0);
    close(h->up[0]);
    close(h->cue[1]);
}

/* A holder that dies holding the lock, dead and reaped on return. */
static void owner_dies(hold_end_t end)
{
    holder_t h;
    holder_start(&h, end);
    holder_finish(&h);
}

/* ------------------------------------------------------------------ checks */

/* This process holds the lock (another process is refused); after its release the mutex
 * is consistent: a cycle here and one in another process take it with no repair. */
static void assert_held_then_consistent(int repairs_so_far)
{
    assert_int_equal(take_elsewhere(VIA_TRY), -EBUSY);
    rlock_release(&sh->lock);
    assert_int_equal(take(VIA_ACQUIRE_TIMED), 0);
    rlock_release(&sh->lock);
    assert_int_equal(take(VIA_TRY), 0);
    rlock_release(&sh->lock);
    assert_int_equal(take_elsewhere(VIA_TRY), 0);
    assert_int_equal(sh->repairs, repairs_so_far);
}

/* The owner dies (end); taking the lock `via` runs the repair once, with its arg and the
 * lock held, and returns 0 holding a mutex that is consistent afterwards. */
static void owner_death_case(hold_end_t end, via_t via)
{
    owner_dies(end);
    assert_int_equal(take(via), 0);
    assert_int_equal(sh->repairs, 1);
    assert_ptr_equal(sh->repair_arg, REPAIR_ARG);
    assert_int_equal(sh->trylock_in_rep, EBUSY);
    assert_held_then_consistent(1);
}

/* A repair that fails: SHOAL_EPANIC with the lock not held, and from then on every locker,
 * in any process, gets SHOAL_EPANIC (not a timeout) without another repair, even though the
 * hook would now succeed. */
static void failed_repair_case(via_t via)
{
    owner_dies(END_KILLED);
    sh->repair_rc = -EIO;
    assert_int_equal(take(via), SHOAL_EPANIC);
    assert_int_equal(sh->repairs, 1);
    sh->repair_rc = 0;
    assert_int_equal(take_elsewhere(VIA_ACQUIRE_TIMED), SHOAL_EPANIC);
    assert_int_equal(take(VIA_ACQUIRE_TIMED), SHOAL_EPANIC);
    assert_int_equal(take(VIA_ACQUIRE_FOREVER), SHOAL_EPANIC);
    assert_int_equal(take_elsewhere(VIA_ACQUIRE_FOREVER), SHOAL_EPANIC);
    assert_int_equal(sh->repairs, 1);
}

/* ------------------------------------------------------------------ tests */

static void test_rlock_acquire_and_release_cycle_in_one_process(void **state)
{
    (void)state;
    assert_int_equal(take(VIA_ACQUIRE_FOREVER), 0);
    assert_held_then_consistent(0);
}

static void test_rlock_try_is_busy_while_another_process_holds_it(void **state)
{
    holder_t h;
    (void)state;

    holder_start(&h, END_ON_CUE);
    assert_int_equal(take(VIA_TRY), -EBUSY);
    assert_int_equal(take(VIA_TRY), -EBUSY);
    holder_finish(&h);
    assert_int_equal(take(VIA_TRY), 0);
    assert_int_equal(sh->released, 1);
    assert_held_then_consistent(0);
}

static void test_rlock_acquire_times_out_while_another_process_holds_it(void **state)
{
    holder_t h;
    int64_t start_ns, took_ms;
    (void)state;

    holder_start(&h, END_ON_CUE);
    assert_int_equal(rlock_acquire(&sh->lock, 0, repair_hook, REPAIR_ARG), SHOAL_ETIMEDOUT);
    start_ns = shoal__mono_ns();
    assert_int_equal(take(VIA_ACQUIRE_TIMED), SHOAL_ETIMEDOUT);
    took_ms = (shoal__mono_ns() - start_ns) / 1000000;
    assert_true(took_ms >= TIMEOUT_MS);
    assert_true(took_ms < 5 * TIMEOUT_MS);
    holder_finish(&h);
    assert_int_equal(take(VIA_ACQUIRE_TIMED), 0);
    assert_held_then_consistent(0);
}

/* The holder keeps the lock HOLD_MS, sets `released` and releases it: a wait for ever
 * returns after that, holding the lock, with no repair. */
static void test_rlock_acquire_without_timeout_waits_for_the_holder_to_release(void **state)
{
    holder_t h;
    (void)state;

    holder_start(&h, END_AFTER_HOLD);
    assert_int_equal(take(VIA_ACQUIRE_FOREVER), 0);
    assert_int_equal(sh->released, 1);
    holder_finish(&h);
    assert_held_then_consistent(0);
}

static void test_rlock_acquire_repairs_once_after_the_owner_exits_holding_it(void **state)
{
    (void)state;
    owner_death_case(END_EXIT, VIA_ACQUIRE_FOREVER);
}

static void test_rlock_timed_acquire_repairs_once_after_the_owner_is_killed(void **state)
{
    (void)state;
    owner_death_case(END_KILLED, VIA_ACQUIRE_TIMED);
}

static void test_rlock_try_repairs_once_after_the_owner_exits_holding_it(void **state)
{
    (void)state;
    owner_death_case(END_EXIT, VIA_TRY);
}

static void test_rlock_try_repairs_once_after_the_owner_is_killed(void **state)
{
    (void)state;
    owner_death_case(END_KILLED, VIA_TRY);
}

static void test_rlock_failed_repair_in_acquire_leaves_the_lock_unrecoverable(void **state)
{
    (void)state;
    failed_repair_case(VIA_ACQUIRE_TIMED);
}

static void test_rlock_failed_repair_in_try_leaves_the_lock_unrecoverable(void **state)
{
    (void)state;
    failed_repair_case(VIA_TRY);
}

/* After a failed repair, an rlock_try() here or in another process (which then exits) leaves
 * the mutex free for the next locker to be told SHOAL_EPANIC: glibc's pthread_mutex_trylock()
 * returns ENOTRECOVERABLE with the mutex still locked by the caller and off its robust list,
 * so later acquires timed out, or waited for ever. */
static void test_rlock_try_of_an_unrecoverable_lock_leaves_it_free(void **state)
{
    (void)state;
    failed_repair_case(VIA_ACQUIRE_TIMED);
    assert_int_equal(take_elsewhere(VIA_TRY), SHOAL_EPANIC);
    assert_int_equal(take_elsewhere(VIA_ACQUIRE_TIMED), SHOAL_EPANIC);
    assert_int_equal(take(VIA_TRY), SHOAL_EPANIC);
    assert_int_equal(take_elsewhere(VIA_ACQUIRE_TIMED), SHOAL_EPANIC);
    assert_int_equal(take(VIA_ACQUIRE_TIMED), SHOAL_EPANIC);
    assert_int_equal(sh->repairs, 1);
}

/* rlock.c takes a NULL hook as "nothing to repair": the lock is taken and made consistent. */
static void test_rlock_null_repair_hook_takes_the_lock_of_a_dead_owner(void **state)
{
    (void)state;
    owner_dies(END_KILLED);
    assert_int_equal(rlock_acquire(&sh->lock, TIMEOUT_MS, NULL, NULL), 0);
    assert_held_then_consistent(0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_rlock_acquire_and_release_cycle_in_one_process),
        T(test_rlock_try_is_busy_while_another_process_holds_it),
        T(test_rlock_acquire_times_out_while_another_process_holds_it),
        T(test_rlock_acquire_without_timeout_waits_for_the_holder_to_release),
        T(test_rlock_acquire_repairs_once_after_the_owner_exits_holding_it),
        T(test_rlock_timed_acquire_repairs_once_after_the_owner_is_killed),
        T(test_rlock_try_repairs_once_after_the_owner_exits_holding_it),
        T(test_rlock_try_repairs_once_after_the_owner_is_killed),
        T(test_rlock_failed_repair_in_acquire_leaves_the_lock_unrecoverable),
        T(test_rlock_failed_repair_in_try_leaves_the_lock_unrecoverable),
        T(test_rlock_try_of_an_unrecoverable_lock_leaves_it_free),
        T(test_rlock_null_repair_hook_takes_the_lock_of_a_dead_owner),
    };
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
