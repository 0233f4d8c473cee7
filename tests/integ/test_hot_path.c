/* test_hot_path.c - sending and reading make no system call and allocate nothing while
 * nobody sleeps.
 *
 * The promise of the hot path (docs/ARCHITECTURE.md, "Shared memory"): an append takes the
 * robust mutex once per batch and enters the kernel only to wake a reader that sleeps; a
 * poll that finds records reads them without entering the kernel; neither allocates. A
 * child process opens a producer and a consumer on a real shoald, warms them up, then
 * installs a seccomp filter that traps every system call, arms shoal's allocation hook to
 * fail the next allocation, and sends and reads for a while: one-record sends, batches in
 * the short form, batches with keys and headers, across several ring slots. The SIGSYS
 * handler records each trapped call; the test fails if there is any, or if the armed
 * allocation was used up by the time the rounds end.
 *
 * clock_gettime, gettimeofday, time and getcpu are let through: glibc answers them from the
 * vDSO without entering the kernel, and only a clock source without a vDSO path (not this
 * code's choice) makes them real calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define HOT_PATH_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HOT_PATH_UNDER_ASAN 1
#endif
#endif
/* The filter is written for x86-64. Under AddressSanitizer the runtime makes calls of its
 * own inside shoal's functions (mmap, sigaltstack, write), which the filter cannot tell
 * from shoal's: `make asan` runs the same rounds for memory errors, without the filter. */
#if defined(__x86_64__) && !defined(HOT_PATH_UNDER_ASAN)
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <ucontext.h>
#define HOT_PATH_CHECKED 1
#endif

#include "harness.h"
#include "shm_layout.h"
#include "shoal.h"
#include "util.h"

#define TEST_TIMEOUT_S 60
#define ROUNDS         2000 /* each: one record, a short-form batch, a batch with headers */
#define BATCH          64
#define SEGMENT_BYTES  (1u << 20)
#define RING_SLOTS     4
#define RING_BYTES     (RING_SLOTS * SEGMENT_BYTES)
#define TRAPS_KEPT     8

/* What the child reports, in memory shared with the test. */
struct hot_report {
    _Atomic uint32_t trapped;       /* system calls the filter trapped */
    _Atomic int32_t nr[TRAPS_KEPT]; /* the first ones' numbers */
    int32_t failed_round;           /* -1, or the round where a call of shoal failed */
    int32_t failed_rc;
    int64_t records_read;
    int32_t filtered;     /* the filter was installed */
    int32_t filter_errno; /* or why it could not be */
    int32_t allocated;    /* shoal allocated during the rounds */
};

static struct hot_report *report;

/* ------------------------------------------------------------------ the filter */

#ifdef HOT_PATH_CHECKED
static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
    uint32_t k = atomic_fetch_add(&report->trapped, 1);
    (void)sig;
    if (k < TRAPS_KEPT)
        atomic_store(&report->nr[k], si->si_syscall);
    /* The call did not happen: make it look like one the kernel does not have. */
    ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
}

#define ALLOW(nr)                                                                                  \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

/* Trap every system call but the signal return, the exits and the vDSO's clock calls. */
static int trap_system_calls(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        ALLOW(__NR_rt_sigreturn),
        ALLOW(__NR_exit_group),
        ALLOW(__NR_exit),
        ALLOW(__NR_clock_gettime),
        ALLOW(__NR_gettimeofday),
        ALLOW(__NR_time),
        ALLOW(__NR_getcpu),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
    };
    struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGSYS, &sa, NULL) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}
#endif

/* ------------------------------------------------------------------ the child */

struct hot_side {
    shoal_client_t *c;
    shoal_producer_t *p;
    shoal_consumer_t *k;
    shoal_message_t one, plain[BATCH], rich[BATCH];
    shoal_header_t hdr;
    shoal_record_t got[2 * BATCH + 1];
};

static void messages_init(struct hot_side *s)
{
    static char value[32];
    memset(value, 'v', sizeof(value));
    s->hdr = (shoal_header_t){.key = "trace", .key_len = 5, .value = "1", .value_len = 1};
    s->one = (shoal_message_t){.value = value, .value_len = sizeof(value)};
    for (int i = 0; i < BATCH; i++) {
        s->plain[i] = s->one;
        s->rich[i] = s->one;
        s->rich[i].key = "k";
        s->rich[i].key_len = 1;
        s->rich[i].headers = &s->hdr;
        s->rich[i].header_count = 1;
        s->rich[i].partition = SHOAL_PARTITION_ANY; /* murmur2 of the key */
    }
}

/* Send one round and read it back: the number of records read, or a negative error. */
static int64_t round_trip(struct hot_side *s)
{
    int64_t want = 1 + 2 * BATCH, got = 0;
    int rc;
    if ((rc = shoal_send(s->p, &s->one, NULL)) < 0 ||
        (rc = shoal_send_batch(s->p, s->plain, BATCH, NULL)) < 0 ||
        (rc = shoal_send_batch(s->p, s->rich, BATCH, NULL)) < 0)
        return rc;
    while (got < want) { /* everything is published already: no poll waits */
        int n = shoal_poll(s->k, s->got, (size_t)(want - got), 1000);
        if (n <= 0)
            return n < 0 ? n : -ETIMEDOUT;
        got += n;
    }
    return got;
}

static int hot_child(void *arg)
{
    const struct harness_fixture *f = arg;
    static struct hot_side s;
    int64_t n = 0;
    void *probe;

    messages_init(&s);
    if (shoal_client_open(f->d.socket, &s.c) < 0 ||
        shoal_producer_open(s.c, "hot", NULL, &s.p) < 0 ||
        shoal_consumer_open(s.c, NULL, &s.k) < 0 ||
        shoal_consumer_assign(s.k, "hot", NULL, 0) < 0 ||
        shoal_consumer_seek(s.k, "hot", 0, SHOAL_SEEK_BEGINNING, 0) < 0)
        return 2;
    if (round_trip(&s) < 0) /* attaching the partition happens here, with its calls */
        return 3;
#ifdef HOT_PATH_CHECKED
    if (trap_system_calls() < 0)
        report->filter_errno = errno;
    else
        report->filtered = 1;
#endif
    shoal__alloc_fail_after(1); /* the next allocation fails: see the end */
    for (int32_t i = 0; i < ROUNDS; i++) {
        int64_t got = round_trip(&s);
        if (got < 0) {
            report->failed_round = i;
            report->failed_rc = (int32_t)got;
            break;
        }
        n += got;
    }
    report->records_read = n;
    /* The allocation made to fail is still to come only if the rounds made none. */
    probe = shoal__malloc(1);
    report->allocated = probe != NULL;
    shoal__free(probe);
    return 0; /* the exit is allowed; closing is not the hot path */
}

/* ------------------------------------------------------------------ the test */

INTEG_TEST(test_sending_and_reading_make_no_system_call_and_allocate_nothing)
{
    shoal_topic_config_t cfg;
    struct shm_ctl *ctl;
    uint64_t appended;
    pid_t pid;
    int status;
    uint32_t trapped;

    shoal_topic_config_init(&cfg);
    cfg.storage = SHOAL_STORAGE_MEMORY; /* no flusher sleeping on it as a reader */
    cfg.segment_bytes = SEGMENT_BYTES;
    cfg.ring_slots = RING_SLOTS;
    cfg.max_record_bytes = SEGMENT_BYTES / 4;
    assert_int_equal(shoal_topic_create(f->c, "hot", &cfg), 0);

    pid = harness_fork(hot_child, f, TEST_TIMEOUT_S / 2);
    assert_true(pid > 0);
    status = harness_wait(pid, TEST_TIMEOUT_S / 2 * 1000);
    trapped = atomic_load(&report->trapped);
    if (trapped > 0) {
        printf("%u system calls on the hot path; the first:", trapped);
        for (uint32_t i = 0; i < trapped && i < TRAPS_KEPT; i++)
            printf(" %d", (int)atomic_load(&report->nr[i]));
        printf(" (see asm/unistd_64.h)\n");
    }
    assert_int_equal(status, 0);
#ifdef HOT_PATH_CHECKED
    if (!report->filtered)
        fail_msg("could not install the seccomp filter: %s", strerror(report->filter_errno));
#else
    printf("system calls not checked in this build (see the top of the file)\n");
#endif
    assert_int_equal(trapped, 0);
    assert_int_equal(report->allocated, 0);
    if (report->failed_round >= 0)
        fail_msg("round %d: %s", report->failed_round, shoal_strerror(report->failed_rc));
    assert_int_equal(report->records_read, (int64_t)ROUNDS * (1 + 2 * BATCH));
    ctl = harness_map_ctl(&f->d, "hot");
    assert_non_null(ctl);
    appended = atomic_load(&ctl->appended_bytes);
    munmap(ctl, sizeof(*ctl));
    assert_true(appended > 2 * RING_BYTES); /* every slot was filled, freed and reused */
}

static int setup(void **state)
{
    static struct harness_fixture f;
    *state = &f;
    report = mmap(NULL, sizeof(*report), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (report == MAP_FAILED)
        return -1;
    memset(report, 0, sizeof(*report));
    report->failed_round = -1;
    return harness_fixture_start(&f, "hot", TEST_TIMEOUT_S, NULL);
}

static int teardown(void **state)
{
    munmap(report, sizeof(*report));
    return harness_fixture_stop(*state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_sending_and_reading_make_no_system_call_and_allocate_nothing, setup, teardown),
    };
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
