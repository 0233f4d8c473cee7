/* test_waitset.c - a wait over more words than one futex_waitv takes returns when any of
 * them changes, whichever helper waits on it, and only then; its helpers are reused; a
 * kernel without futex_waitv (faked with a seccomp filter) starts none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

#include "harness.h"
#include "shoald/waitset.h"
#include "util.h"

#define WORDS         600 /* five groups: the caller's and four helpers' */
#define LONG_NS       (20 * 1000000000LL)
#define CHANGE_MS     30
#define ROUNDS        200
#define CANNOT_FILTER 77 /* a child's exit status: no seccomp here */

static _Atomic uint32_t words[WORDS];

static waitset_t *fill(size_t n)
{
    waitset_t *ws = waitset_new();
    assert_non_null(ws);
    waitset_clear(ws);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(waitset_add(ws, &words[i], atomic_load(&words[i])), 0);
    assert_int_equal(waitset_size(ws), n);
    return ws;
}

static int threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* The thread count once it is `want` (a joined thread may linger in the list a moment),
 * or what it still is after a second. */
static int threads(int want)
{
    int n = threads_now();
    for (int i = 0; n != want && i < 100; i++, n = threads_now())
        usleep(10000);
    return n;
}

struct change {
    size_t index;
    int after_ms;
};

static void *change_later(void *arg)
{
    struct change *c = arg;
    usleep((useconds_t)c->after_ms * 1000);
    atomic_fetch_add(&words[c->index], 1);
    shoal__futex_wake(&words[c->index], INT32_MAX);
    return NULL;
}

/* A change to a word in each group in turn ends a wait that would otherwise last 20 s. */
static void test_a_change_in_any_group_ends_the_wait(void **state)
{
    size_t in_group[] = {0, 126, 127, 300, WORDS - 1};
    (void)state;

    for (size_t i = 0; i < sizeof(in_group) / sizeof(in_group[0]); i++) {
        waitset_t *ws = fill(WORDS);
        struct change c = {.index = in_group[i], .after_ms = CHANGE_MS};
        int64_t start = shoal__mono_ns();
        pthread_t t;

        assert_int_equal(pthread_create(&t, NULL, change_later, &c), 0);
        assert_int_equal(waitset_wait(ws, LONG_NS, true), 0);
        if (shoal__mono_ns() - start > LONG_NS / 2)
            fail_msg("word %zu changed, yet the wait ran to its timeout", in_group[i]);
        pthread_join(t, NULL);
        waitset_free(ws);
    }
}

static void test_a_word_changed_already_returns_at_once_and_a_quiet_set_times_out(void **state)
{
    waitset_t *ws = fill(WORDS);
    int64_t start;
    (void)state;

    atomic_fetch_add(&words[450], 1);
    assert_int_equal(waitset_wait(ws, LONG_NS, true), 0);

    waitset_free(ws);
    ws = fill(WORDS);
    start = shoal__mono_ns();
    assert_int_equal(waitset_wait(ws, 50 * 1000000LL, true), 0);
    assert_true(shoal__mono_ns() - start >= 50 * 1000000LL);
    waitset_free(ws);
}

/* Many waits on one set: the same four helpers serve them all, and each wait ends with
 * its change. */
static void test_helpers_are_started_once_and_serve_every_wait(void **state)
{
    int before = threads_now();
    waitset_t *ws = waitset_new();
    (void)state;

    for (int round = 0; round < ROUNDS; round++) {
        struct change c = {.index = (size_t)(round * 37) % WORDS, .after_ms = 0};
        pthread_t t;
        waitset_clear(ws);
        for (size_t i = 0; i < WORDS; i++)
            assert_int_equal(waitset_add(ws, &words[i], atomic_load(&words[i])), 0);
        assert_int_equal(pthread_create(&t, NULL, change_later, &c), 0);
        assert_int_equal(waitset_wait(ws, LONG_NS, true), 0);
        pthread_join(t, NULL);
    }
    assert_int_equal(threads(before + 4), before + 4);
    waitset_free(ws);
    assert_int_equal(threads(before), before);
}

static void test_the_set_refuses_words_past_its_limit(void **state)
{
    int before = threads_now();
    waitset_t *ws = waitset_new();
    static _Atomic uint32_t one;
    (void)state;

    for (size_t i = 0; i < WAITSET_MAX_WORDS; i++)
        assert_int_equal(waitset_add(ws, &one, 0), 0);
    assert_int_equal(waitset_add(ws, &one, 0), -E2BIG);
    assert_int_equal(waitset_wait(ws, 0, true), 0); /* a full set can still wait ... */
    assert_int_equal(threads(before + WAITSET_MAX_HELPERS), before + WAITSET_MAX_HELPERS);
    waitset_free(ws);
    assert_int_equal(threads(before), before);
}

/* A short wait on the first 128 words only: a change past them does not end it. */
static void test_a_wait_on_the_first_words_leaves_the_rest_alone(void **state)
{
    int before = threads_now();
    waitset_t *ws = fill(WORDS);
    int64_t start = shoal__mono_ns();
    (void)state;

    atomic_fetch_add(&words[WORDS - 1], 1);
    assert_int_equal(waitset_wait(ws, 50 * 1000000LL, false), 0);
    assert_true(shoal__mono_ns() - start >= 50 * 1000000LL);
    atomic_fetch_add(&words[127], 1);
    assert_int_equal(waitset_wait(ws, LONG_NS, false), 0); /* the 128th: watched */
    assert_int_equal(threads_now(), before);               /* and no helper started */
    waitset_free(ws);
}

/* Make futex_waitv (449 on every architecture) fail with ENOSYS, as before Linux 5.16. */
static int hide_futex_waitv(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 449, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* In a child without futex_waitv: a wait over many words starts no helper (each would
 * poll every millisecond) and watches the first word, in 1 ms slices. */
static int wait_without_futex_waitv(void *arg)
{
    int before = threads_now();
    waitset_t *ws;
    int64_t start;
    (void)arg;

    if (hide_futex_waitv() < 0)
        return CANNOT_FILTER;
    ws = fill(WORDS);
    start = shoal__mono_ns();
    if (waitset_wait(ws, LONG_NS, true) != 0)
        return 2;
    if (shoal__mono_ns() - start > LONG_NS / 2)
        return 3; /* a 1 ms slice, not the whole timeout */
    if (threads_now() != before)
        return 4;
    waitset_free(ws);
    return 0;
}

static void test_without_futex_waitv_no_helper_starts(void **state)
{
    int rc = harness_wait(harness_fork(wait_without_futex_waitv, NULL, 30), 30000);
    (void)state;
    if (rc == CANNOT_FILTER) {
        print_message("seccomp filters are not allowed here: skipped\n");
        skip();
    }
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* first: the child must probe for futex_waitv itself, and the answer is kept */
        cmocka_unit_test(test_without_futex_waitv_no_helper_starts),
        cmocka_unit_test(test_a_change_in_any_group_ends_the_wait),
        cmocka_unit_test(test_a_word_changed_already_returns_at_once_and_a_quiet_set_times_out),
        cmocka_unit_test(test_helpers_are_started_once_and_serve_every_wait),
        cmocka_unit_test(test_the_set_refuses_words_past_its_limit),
        cmocka_unit_test(test_a_wait_on_the_first_words_leaves_the_rest_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
