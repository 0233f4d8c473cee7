/* test_client_faults.c - the client library against a real shoald when allocations fail
 * or the append lock is held by someone else, and the flusher sharing one fsync among many
 * producers waiting for ACKS_DISK.
 *
 * Out of memory: for N = 1, 2, ... the Nth allocation fails until the call succeeds; every
 * failure must be -ENOMEM, leave nothing half-made, and leak nothing (the ASan build checks
 * leaks at exit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "ctlsock.h"
#include "harness.h"
#include "shm_layout.h"
#include "util.h"

static struct harness_daemon daemon_;
static shoal_client_t *client;

/* Run op with the Nth allocation failing, for N = 1.. until it succeeds. Each failure says
 * so in the detail too. */
#define OOM_LOOP(op)                                                                               \
    do {                                                                                           \
        int rc_, n_;                                                                               \
        for (n_ = 1; n_ < 1000; n_++) {                                                            \
            shoal__alloc_fail_after(n_);                                                           \
            rc_ = (op);                                                                            \
            shoal__alloc_fail_after(0);                                                            \
            if (rc_ == 0)                                                                          \
                break;                                                                             \
            assert_int_equal(rc_, -ENOMEM);                                                        \
            assert_non_null(strstr(shoal_errmsg(), "memory")); /* "out of memory", ... */          \
        }                                                                                          \
        assert_true(n_ > 1); /* at least one allocation was made to fail */                        \
    } while (0)

static void test_client_calls_fail_cleanly_at_every_allocation(void **state)
{
    shoal_client_t *c = NULL;
    shoal_producer_t *p = NULL;
    shoal_consumer_t *k = NULL;
    shoal_topic_info_t *info = NULL;
    char **names = NULL;
    size_t count = 0;
    shoal_message_t m = {.value = "v", .value_len = 1, .partition = 0};
    (void)state;

    assert_int_equal(shoal_topic_create(client, "oom", NULL), 0);
    OOM_LOOP(shoal_client_open(daemon_.socket, &c));
    OOM_LOOP(shoal_producer_open(c, "oom", NULL, &p));
    /* An uncontended send encodes in place: it allocates nothing, even the first time. */
    shoal__alloc_fail_after(1);
    assert_int_equal(shoal_send(p, &m, NULL), 0);
    shoal__alloc_fail_after(0);
    OOM_LOOP(shoal_consumer_open(c, NULL, &k));
    OOM_LOOP(shoal_consumer_assign(k, "oom", NULL, 0));
    OOM_LOOP(shoal_topic_list(c, &names, &count));
    OOM_LOOP(shoal_topic_describe(c, "oom", &info));
    assert_int_equal(count, 1);
    assert_int_equal(info->partitions[0].log_end_offset, 1); /* the send above */
    shoal_topic_info_free(info);
    shoal_topic_list_free(names, count);
    shoal_consumer_close(k);
    shoal_producer_close(p);
    shoal_client_close(c);
}

#if defined(__SANITIZE_ADDRESS__)
#define FAULTS_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FAULTS_UNDER_ASAN 1
#endif
#endif

/* In a child: the address space capped just above what it uses, attach a topic's 32 MiB
 * of rings. The mapping fails with -ENOMEM, and the detail says what could not be mapped
 * (it was ""). AddressSanitizer's runtime does not work under RLIMIT_AS: skipped there. */
static int attach_under_rlimit_as(void *arg)
{
    struct rlimit rl;
    shoal_client_t *own; /* a child may not talk on its parent's client */
    shoal_producer_t *p;
    unsigned long pages = 0;
    FILE *f;
    int rc;
    (void)arg;

    if (shoal_client_open(daemon_.socket, &own) != 0)
        return 9;
    f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%lu", &pages) != 1)
        return 10;
    fclose(f);
    rl.rlim_cur = rl.rlim_max = pages * (unsigned long)sysconf(_SC_PAGESIZE) + (16ul << 20);
    if (setrlimit(RLIMIT_AS, &rl) < 0)
        return 11;
    rc = shoal_producer_open(own, "as", NULL, &p);
    if (rc != -ENOMEM) {
        fprintf(stderr, "producer_open under RLIMIT_AS: %s (%s)\n", shoal_err_name(rc),
                shoal_errmsg());
        return 12;
    }
    if (!strstr(shoal_errmsg(), "cannot map the ring's shared memory")) {
        fprintf(stderr, "detail: '%s'\n", shoal_errmsg());
        return 13;
    }
    return 0;
}

static void test_a_ring_that_cannot_be_mapped_is_enomem_with_a_detail(void **state)
{
    shoal_topic_config_t cfg;
    pid_t pid;
    (void)state;

    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = 8u << 20;
    cfg.ring_slots = 4;
    assert_int_equal(shoal_topic_create(client, "as", &cfg), 0);
#ifdef FAULTS_UNDER_ASAN
    skip();
#endif
    assert_true((pid = harness_fork(attach_under_rlimit_as, NULL, 20)) > 0);
    assert_int_equal(harness_wait(pid, 10000), 0);
}

/* Read the partition's control block through a read-only attach of our own. */
static uint64_t fsync_count(void)
{
    char path[PATH_MAX + 32];
    struct shm_ctl ctl;
    FILE *f;
    snprintf(path, sizeof(path), "%s/acks-0.ctl", daemon_.shm_dir);
    assert_non_null(f = fopen(path, "rb"));
    assert_int_equal(fread(&ctl, sizeof(ctl), 1, f), 1);
    fclose(f);
    return atomic_load(&ctl.fsyncs);
}

static int disk_acked_sends(void *arg)
{
    shoal_producer_options_t opts;
    shoal_producer_t *p;
    shoal_client_t *c;
    shoal_message_t m = {.value = "durable", .value_len = 7, .partition = 0};
    (void)arg;
    shoal_producer_options_init(&opts);
    opts.acks = SHOAL_ACKS_DISK;
    if (shoal_client_open(daemon_.socket, &c) < 0 || shoal_producer_open(c, "acks", &opts, &p) < 0)
        return 2;
    for (int i = 0; i < 50; i++)
        if (shoal_send(p, &m, NULL) < 0)
            return 1;
    return 0;
}

static void test_producers_waiting_for_disk_share_fsyncs(void **state)
{
    pid_t kids[8];
    uint64_t before, syncs;
    (void)state;

    assert_int_equal(shoal_topic_create(client, "acks", NULL), 0);
    before = fsync_count();
    for (int i = 0; i < 8; i++)
        assert_true((kids[i] = harness_fork(disk_acked_sends, NULL, 30)) > 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(harness_wait(kids[i], 30000), 0);
    syncs = fsync_count() - before;
    printf("400 disk-acknowledged records from 8 processes took %llu fsyncs\n",
           (unsigned long long)syncs);
    assert_true(syncs > 0);
    assert_true(syncs < 400); /* waiting producers share a flush */
}

static int sleepy_consumer(void *arg)
{
    shoal_consumer_t *k;
    shoal_client_t *c;
    shoal_record_t r;
    (void)arg;
    if (shoal_client_open(daemon_.socket, &c) < 0 || shoal_consumer_open(c, NULL, &k) < 0 ||
        shoal_consumer_assign(k, "stats", NULL, 0) < 0)
        return 2;
    return shoal_poll(k, &r, 1, 20000) == 1 ? 0 : 1; /* sleeps until the parent appends */
}

static void test_stats_count_appends_and_sleeping_readers(void **state)
{
    shoal_partition_stats_t st;
    shoal_producer_t *p;
    shoal_message_t msgs[10];
    pid_t kid;
    (void)state;

    assert_int_equal(shoal_topic_create(client, "stats", NULL), 0);
    assert_int_equal(shoal_producer_open(client, "stats", NULL, &p), 0);
    for (int i = 0; i < 10; i++)
        msgs[i] = (shoal_message_t){.value = "0123456789", .value_len = 10, .partition = 0};
    assert_int_equal(shoal_send_batch(p, msgs, 10, NULL), 0);
    assert_int_equal(shoal_send(p, &msgs[0], NULL), 0);
    assert_true((kid = harness_fork(sleepy_consumer, NULL, 30)) > 0);
    for (int i = 0; i < 500; i++) {
        assert_int_equal(shoal_partition_stats(client, "stats", 0, &st), 0);
        if (st.waiters == 1)
            break;
        usleep(10000);
    }
    assert_int_equal(st.waiters, 1);
    assert_int_equal(st.readers, 1);
    assert_int_equal(st.appended_records, 11);
    assert_int_equal(st.appended_batches, 2);
    assert_int_equal(st.log_end_offset, 11);
    assert_int_equal(st.live_slots, 1);
    assert_int_equal(st.flush_error, 0);
    assert_int_equal(shoal_send(p, &msgs[0], NULL), 0); /* wakes the consumer */
    assert_int_equal(harness_wait(kid, 10000), 0);
    assert_int_equal(shoal_partition_stats(client, "stats", 1, &st), SHOAL_ENOPARTITION);
    assert_int_equal(shoal_partition_stats(client, "nope", 0, &st), SHOAL_ENOTOPIC);
    shoal_producer_close(p);
}

/* A client in a pid namespace of its own (a container's) that holds the socket: there, its
 * pid is pid_there, which is nobody's in shoald's namespace. */
struct pidns_reader {
    int ready_fd;    /* the reader writes its pid as shoald sees it here, once it reads */
    pid_t pid_there; /* its pid in its namespace */
};

/* The reader: one record sent with ACKS_DISK (its wait checks that shoald lives), read
 * back, then asleep in a poll that holds its reader entry. */
static int pidns_read(const struct pidns_reader *pr)
{
    shoal_producer_options_t po;
    shoal_message_t m = {.value = "x", .value_len = 1, .partition = 0};
    shoal_producer_t *p;
    shoal_consumer_t *k;
    shoal_client_t *c;
    shoal_record_t r;

    shoal_producer_options_init(&po);
    po.acks = SHOAL_ACKS_DISK;
    if (getpid() != pr->pid_there)
        return 10;
    if (shoal_client_open(daemon_.socket, &c) < 0 || shoal_producer_open(c, "pidns", &po, &p) < 0)
        return 11;
    if (shoal_send(p, &m, NULL) < 0) {
        fprintf(stderr, "send with acks to disk: %s\n", shoal_errmsg());
        return 12;
    }
    if (shoal_consumer_open(c, NULL, &k) < 0 || shoal_consumer_assign(k, "pidns", NULL, 0) < 0 ||
        shoal_consumer_seek(k, "pidns", 0, SHOAL_SEEK_OFFSET, 0) < 0 ||
        shoal_poll(k, &r, 1, 5000) != 1)
        return 13;
    if (write(pr->ready_fd, &c->seen_pid, sizeof(c->seen_pid)) != sizeof(c->seen_pid))
        return 14;
    return shoal_poll(k, &r, 1, 60000) >= 0 ? 0 : 15;
}

/* Wait for a child in the calling process's namespace; its exit status, else 20. */
static int wait_exit(pid_t pid)
{
    int st;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? WEXITSTATUS(st) : 20;
}

/* Make the namespace; its first process (pid 1 there) makes pid_there the next pid. */
static int pidns_start(void *arg)
{
    const struct pidns_reader *pr = arg;
    pid_t init, kid;
    FILE *f;

    if (unshare(CLONE_NEWPID) < 0)
        return 30;
    if ((init = fork()) != 0)
        return init < 0 ? 31 : wait_exit(init);
    if (!(f = fopen("/proc/sys/kernel/ns_last_pid", "w")) ||
        fprintf(f, "%d", (int)pr->pid_there - 1) < 0 || fclose(f) != 0)
        _exit(32);
    if ((kid = fork()) == 0)
        _exit(pidns_read(pr));
    _exit(kid < 0 ? 33 : wait_exit(kid));
}

/* shoald checks whether a reader lives by its pid. A client in another pid namespace wrote
 * its pid there into the readers table, which shoald took for a process of its own: a
 * live reader at a pid shoald's namespace does not have was cleared as dead (and its
 * pinned records overwritten under it), one at pid 1 was never cleared once dead, and
 * ACKS_DISK sends failed, the library taking shoald's pid for one of its namespace. The
 * handshake gives the client its pid as shoald sees it, which its reader entries carry. */
static void test_a_reader_in_another_pid_namespace_is_tracked_by_shoalds_pid(void **state)
{
    struct pidns_reader pr = {.pid_there = 32000};
    shoal_partition_stats_t st;
    int32_t seen = 0;
    int fd[2];
    pid_t kid;
    (void)state;

    if (getuid() != 0) {
        print_message("skipped: pid namespaces need root\n");
        return;
    }
    while (kill(pr.pid_there, 0) == 0 || errno != ESRCH) /* nobody's pid here */
        pr.pid_there--;
    assert_int_equal(shoal_topic_create(client, "pidns", NULL), 0);
    assert_int_equal(pipe(fd), 0);
    pr.ready_fd = fd[1];
    assert_true((kid = harness_fork(pidns_start, &pr, 60)) > 0);
    close(fd[1]);
    assert_int_equal(read(fd[0], &seen, sizeof(seen)), sizeof(seen));
    close(fd[0]);
    assert_true(seen > 0 && seen != pr.pid_there);
    assert_int_equal(kill(seen, 0), 0);

    for (int i = 0; i < 30; i++, usleep(50000)) { /* shoald's reaper passes meanwhile */
        assert_int_equal(shoal_partition_stats(client, "pidns", 0, &st), 0);
        assert_int_equal(st.readers, 1);
    }
    assert_false(harness_daemon_log_contains(&daemon_, "reader entries of exited processes"));
    assert_int_equal(kill(seen, SIGKILL), 0);
    assert_int_equal(harness_wait(kid, 10000), 20); /* the reader was killed */
    for (int i = 0; i < 300 && st.readers != 0; i++, usleep(10000))
        assert_int_equal(shoal_partition_stats(client, "pidns", 0, &st), 0);
    assert_int_equal(st.readers, 0);
}

static void test_topic_larger_than_shared_memory_is_refused_and_leaves_nothing(void **state)
{
    shoal_topic_config_t cfg;
    char path[PATH_MAX + 32];
    char **names;
    size_t count;
    (void)state;

    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = 1u << 30;
    cfg.ring_slots = 64; /* 64 GiB of ring: more than this machine's /dev/shm */
    assert_int_equal(shoal_topic_create(client, "huge", &cfg), -ENOSPC);
    assert_non_null(strstr(shoal_errmsg(), "topic huge needs 65536 MiB 28 KiB of shared memory (1 "
                                           "partition x (64 ring slots x 1073741824-byte "
                                           "segments + 28 KiB of control files)), more than the "));
    assert_non_null(strstr(shoal_errmsg(), " free in /dev/shm/"));
    assert_int_equal(shoal_topic_list(client, &names, &count), 0);
    assert_int_equal(count, 0);
    shoal_topic_list_free(names, count);
    snprintf(path, sizeof(path), "%s/huge-0", daemon_.data_dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/huge-0.slot0", daemon_.shm_dir);
    assert_int_equal(access(path, F_OK), -1);
}

/* Holds a partition's append lock, as another producer in the middle of a batch would. */
struct lock_holder {
    pthread_mutex_t *lock;
    int locked_fd; /* written once the lock is held */
    int hold_ms;
};

static void *hold_append_lock(void *arg)
{
    struct lock_holder *h = arg;
    pthread_mutex_lock(h->lock);
    if (write(h->locked_fd, "l", 1) != 1)
        abort();
    usleep((useconds_t)h->hold_ms * 1000);
    pthread_mutex_unlock(h->lock);
    return NULL;
}

/* Hold the partition's append lock from another thread for 200 ms; returns once it is held. */
static void hold_lock_a_while(struct lock_holder *h, pthread_t *t, struct shm_ctl *ctl, int fd[2])
{
    char c;

    *h = (struct lock_holder){.lock = &ctl->lock, .locked_fd = fd[1], .hold_ms = 200};
    assert_int_equal(pthread_create(t, NULL, hold_append_lock, h), 0);
    assert_int_equal(read(fd[0], &c, 1), 1);
}

/* A send that finds the append lock taken waits for it, and what it sent is appended then:
 * a batch encoded meanwhile into the producer's own buffer (whose first growth can fail
 * cleanly, publishing nothing), one record already encoded on the stack before the lock
 * (it allocates nothing). */
static void test_send_while_the_lock_is_held_encodes_aside_then_appends(void **state)
{
    shoal_message_t m[2] = {{.value = "aside", .value_len = 5, .partition = 0},
                            {.value = "aside", .value_len = 5, .partition = 0}};
    struct lock_holder h;
    shoal_producer_t *p;
    shoal_consumer_t *k;
    shoal_record_t recs[8];
    struct shm_ctl *ctl;
    shoal_ack_t ack;
    pthread_t t;
    int locked[2];
    int64_t t0;
    (void)state;

    assert_int_equal(shoal_topic_create(client, "held", NULL), 0);
    assert_int_equal(shoal_producer_open(client, "held", NULL, &p), 0);
    assert_int_equal(shoal_send(p, m, NULL), 0); /* the lock was free */
    ctl = harness_map_ctl(&daemon_, "held");
    assert_int_equal(pipe(locked), 0);

    hold_lock_a_while(&h, &t, ctl, locked);
    shoal__alloc_fail_after(1);
    assert_int_equal(shoal_send_batch(p, m, 2, NULL), -ENOMEM);
    shoal__alloc_fail_after(0);
    assert_int_equal(atomic_load(&ctl->log_end_offset), 1);
    t0 = shoal__mono_ns();
    assert_int_equal(shoal_send_batch(p, m, 2, &ack), 0); /* waits for the holder */
    assert_true(shoal__mono_ns() - t0 >= 50 * 1000000LL);
    assert_int_equal(ack.offset, 1);
    assert_int_equal(pthread_join(t, NULL), 0);

    hold_lock_a_while(&h, &t, ctl, locked);
    shoal__alloc_fail_after(1);
    t0 = shoal__mono_ns();
    assert_int_equal(shoal_send(p, m, &ack), 0);
    assert_true(shoal__mono_ns() - t0 >= 50 * 1000000LL);
    shoal__alloc_fail_after(0);
    assert_int_equal(ack.offset, 3);
    assert_int_equal(pthread_join(t, NULL), 0);

    assert_int_equal(shoal_consumer_open(client, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "held", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "held", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    assert_int_equal(shoal_poll(k, recs, 8, 1000), 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(recs[i].offset, i);
        assert_int_equal(recs[i].value_len, 5);
        assert_memory_equal(recs[i].value, "aside", 5);
    }
    shoal_consumer_close(k);
    munmap(ctl, sizeof(*ctl));
    close(locked[0]);
    close(locked[1]);
    shoal_producer_close(p);
}

/* A process stopped (SIGSTOP, a debugger) while it holds the append lock held every other
 * producer of the partition as long, whatever its block_ms. An append waits block_ms for
 * the lock, 1 s at least (a copy holds it for microseconds), then fails SHOAL_AGAIN having
 * appended nothing; once the holder lets go, sends go through. */
static void test_a_send_waits_for_a_stuck_lock_holder_no_longer_than_block_ms(void **state)
{
    shoal_message_t m = {.value = "late", .value_len = 4, .partition = 0};
    shoal_producer_options_t o;
    struct lock_holder h;
    shoal_producer_t *p;
    struct shm_ctl *ctl;
    pthread_t t;
    int locked[2];
    int64_t t0, took_ms;
    char c;
    (void)state;

    assert_int_equal(shoal_topic_create(client, "stuck", NULL), 0);
    shoal_producer_options_init(&o);
    o.block_ms = 0; /* never wait for room: the lock is still waited for, 1 s */
    assert_int_equal(shoal_producer_open(client, "stuck", &o, &p), 0);
    ctl = harness_map_ctl(&daemon_, "stuck");
    assert_int_equal(pipe(locked), 0);
    h = (struct lock_holder){.lock = &ctl->lock, .locked_fd = locked[1], .hold_ms = 3000};
    assert_int_equal(pthread_create(&t, NULL, hold_append_lock, &h), 0);
    assert_int_equal(read(locked[0], &c, 1), 1);

    t0 = shoal__mono_ns();
    assert_int_equal(shoal_send(p, &m, NULL), SHOAL_AGAIN);
    took_ms = (shoal__mono_ns() - t0) / 1000000;
    assert_non_null(strstr(shoal_errmsg(), "append lock"));
    assert_true(took_ms >= 1000 && took_ms < 2500);
    assert_int_equal(atomic_load(&ctl->log_end_offset), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(shoal_send(p, &m, NULL), 0);
    assert_int_equal(atomic_load(&ctl->log_end_offset), 1);
    munmap(ctl, sizeof(*ctl));
    close(locked[0]);
    close(locked[1]);
    shoal_producer_close(p);
}

/* A producer and a consumer used by another thread while this test calls them. */
struct inside_call {
    shoal_producer_t *p;
    shoal_consumer_t *k;
    int rc;
};

static void *send_in_thread(void *arg)
{
    struct inside_call *call = arg;
    shoal_message_t m = {.value = "first", .value_len = 5, .partition = 0};

    call->rc = shoal_send(call->p, &m, NULL);
    return NULL;
}

/* In a child of fork(): a poll of the inherited consumer is refused for what it is, though
 * the parent's thread was inside a poll at the fork. */
static int poll_inherited(void *arg)
{
    struct inside_call *call = arg;
    shoal_record_t r[4];

    if (shoal_poll(call->k, r, 4, 0) != SHOAL_EINVAL)
        return 1;
    return strstr(shoal_errmsg(), "a child of fork() may only close it") ? 0 : 2;
}

static void *poll_in_thread(void *arg)
{
    struct inside_call *call = arg;
    shoal_record_t r[4];

    call->rc = shoal_poll(call->k, r, 4, 10000);
    return NULL;
}

/* A producer or a consumer is for one thread at a time (shoal.h): a second thread calling
 * while another is inside is refused, SHOAL_EINVAL, instead of tearing the handle's state
 * (a user session shared one, and nothing said so). A consumer's close is refused too, as it
 * would free what the other thread uses; shoal_consumer_wakeup() may run beside. One thread
 * after another is fine. */
static void test_a_handle_refuses_a_second_thread_while_one_is_inside(void **state)
{
    shoal_message_t m = {.value = "second", .value_len = 6, .partition = 0};
    struct inside_call call = {0};
    struct lock_holder h;
    shoal_record_t r[4];
    struct shm_ctl *ctl;
    pthread_t t, holder;
    int locked[2], rc = 0;
    char c;
    (void)state;

    assert_int_equal(shoal_topic_create(client, "two", NULL), 0);
    assert_int_equal(shoal_producer_open(client, "two", NULL, &call.p), 0);
    ctl = harness_map_ctl(&daemon_, "two");
    assert_int_equal(pipe(locked), 0);
    h = (struct lock_holder){.lock = &ctl->lock, .locked_fd = locked[1], .hold_ms = 1000};
    assert_int_equal(pthread_create(&holder, NULL, hold_append_lock, &h), 0);
    assert_int_equal(read(locked[0], &c, 1), 1);
    assert_int_equal(pthread_create(&t, NULL, send_in_thread, &call), 0);
    usleep(300 * 1000); /* the thread's send waits for the lock meanwhile */
    assert_int_equal(shoal_send(call.p, &m, NULL), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "this producer is inside a call on another thread"));
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(call.rc, 0);
    assert_int_equal(pthread_join(holder, NULL), 0);
    assert_int_equal(shoal_send(call.p, &m, NULL), 0);
    assert_int_equal(atomic_load(&ctl->log_end_offset), 2);

    assert_int_equal(shoal_consumer_open(client, NULL, &call.k), 0);
    assert_int_equal(shoal_consumer_assign(call.k, "two", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(call.k, "two", 0, SHOAL_SEEK_END, 0), 0);
    assert_int_equal(pthread_create(&t, NULL, poll_in_thread, &call), 0);
    for (int i = 0; i < 500 && (rc = shoal_poll(call.k, r, 4, 0)) == 0; i++)
        usleep(10 * 1000); /* until the thread sleeps inside its poll */
    assert_int_equal(rc, SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "this consumer is inside a call on another thread"));
    assert_int_equal(shoal_consumer_seek(call.k, "two", 0, SHOAL_SEEK_BEGINNING, 0), SHOAL_EINVAL);
    assert_int_equal(shoal_consumer_close(call.k), SHOAL_EINVAL);
    assert_int_equal(harness_wait(harness_fork(poll_inherited, &call, 10), 5000), 0);
    assert_int_equal(shoal_consumer_wakeup(call.k), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(call.rc, SHOAL_EWAKEUP);
    assert_int_equal(shoal_consumer_seek(call.k, "two", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    assert_int_equal(shoal_poll(call.k, r, 4, 2000), 2);
    assert_int_equal(shoal_consumer_close(call.k), 0);
    munmap(ctl, sizeof(*ctl));
    close(locked[0]);
    close(locked[1]);
    shoal_producer_close(call.p);
}

/* A disk topic of four 64 KiB slots holding one record that is on disk (the flusher stands
 * at offset 1 of slot 0), with a producer and a read-write map of its control block, for
 * the tests that damage the descriptors as a broken producer could. segment_ms 0: the
 * default. */
static struct shm_ctl *damage_target(const char *topic, int64_t segment_ms, shoal_producer_t **p)
{
    shoal_message_t m = {.value = "v", .value_len = 1, .partition = 0};
    shoal_topic_config_t cfg;

    shoal_topic_config_init(&cfg);
    cfg.ring_slots = 4;
    cfg.segment_bytes = 64 << 10;
    cfg.max_record_bytes = 1024;
    if (segment_ms)
        cfg.segment_ms = segment_ms;
    assert_int_equal(shoal_topic_create(client, topic, &cfg), 0);
    assert_int_equal(shoal_producer_open(client, topic, NULL, p), 0);
    assert_int_equal(shoal_send(*p, &m, NULL), 0);
    assert_int_equal(shoal_producer_wait(*p, 0, 0, SHOAL_ACKS_DISK, 5000), 0);
    return harness_map_ctl(&daemon_, topic);
}

/* A producer that writes the ring's descriptors into a circle (an empty sealed slot whose
 * base is where the flusher stands leads back to itself) makes that partition broken; the
 * flusher goes on with the others, and the daemon keeps serving. */
static void test_flusher_refuses_slots_that_lead_in_a_circle(void **state)
{
    shoal_producer_t *p;
    struct shm_ctl *ctl = damage_target("circle", 0, &p);
    (void)state;

    assert_int_equal(atomic_load(&ctl->active_slot), 0);
    assert_int_equal(atomic_load(&ctl->slots[2].state), SHM_SLOT_FREE);
    atomic_store(&ctl->slots[2].base_offset, 1); /* where the flusher stands */
    atomic_store(&ctl->slots[2].used, 0);
    atomic_store(&ctl->slots[2].state, SHM_SLOT_SEALED);
    atomic_store(&ctl->slots[0].state, SHM_SLOT_SEALED);

    harness_daemon_expect_log(&daemon_, "circle-0: the ring's slots lead back");
    assert_int_equal(shoal_topic_create(client, "after-circle", NULL), 0); /* not stuck */
    assert_int_equal(shoal_topic_delete(client, "circle"), 0);
    munmap(ctl, sizeof(*ctl));
    shoal_producer_close(p);
}

/* Descriptors damaged so that no slot starts where the flusher stands, while records were
 * appended past it: the flusher used to wait there silently (producers later found the
 * ring full, with no word from shoald). Now the partition is marked broken and the damage
 * logged, and the daemon goes on serving. */
static void test_records_with_no_slot_to_flush_from_are_reported(void **state)
{
    shoal_producer_t *p;
    struct shm_ctl *ctl = damage_target("noslot", 0, &p);
    (void)state;

    assert_int_equal(atomic_load(&ctl->active_slot), 0);
    /* slot 0 sealed at offset 1 with nothing after it, yet offsets 1-4 appended */
    atomic_store(&ctl->slots[0].end_offset, 1);
    atomic_store(&ctl->log_end_offset, 5);
    atomic_store(&ctl->slots[0].state, SHM_SLOT_SEALED);

    harness_daemon_expect_log(&daemon_, "noslot-0: no slot of the ring starts at offset 1");
    assert_int_equal(shoal_topic_create(client, "after-noslot", NULL), 0);
    assert_int_equal(shoal_topic_delete(client, "noslot"), 0);
    munmap(ctl, sizeof(*ctl));
    shoal_producer_close(p);
}

/* A wild active_slot (written by a broken producer) makes shoald's segment.ms roll fail
 * with SHOAL_EPANIC: the daemon logs it, stops that partition and keeps serving; appends
 * are refused with SHOAL_ECORRUPT, the partition stopped. */
static void test_wild_active_slot_breaks_the_partition_not_the_daemon(void **state)
{
    shoal_message_t m = {.value = "v", .value_len = 1, .partition = 0};
    shoal_producer_t *p;
    struct shm_ctl *ctl = damage_target("wild", 1000, &p);
    (void)state;

    atomic_store(&ctl->active_slot, 9);
    harness_daemon_expect_log(&daemon_, "wild-0: cannot roll the segment");
    assert_true(harness_daemon_log_contains(&daemon_, "active slot 9 out of range"));
    assert_int_equal(shoal_send(p, &m, NULL), SHOAL_ECORRUPT);
    assert_non_null(strstr(shoal_errmsg(), "stopped by shoald"));
    assert_int_equal(shoal_topic_create(client, "after-wild", NULL), 0);
    assert_int_equal(shoal_topic_delete(client, "wild"), 0);
    munmap(ctl, sizeof(*ctl));
    shoal_producer_close(p);
}

/* A partition shoald stopped (its ring damaged) is that partition's problem: a producer
 * opened since anchors itself on another, and sends to the others go on. Before, opening
 * attached partition 0 only, so a stopped partition 0 (a client that cut its readers file
 * can stop it) kept every producer of the topic from opening (an exploratory session). */
static void test_a_stopped_partition_0_keeps_no_producer_from_the_others(void **state)
{
    shoal_message_t to0 = {.value = "v", .value_len = 1, .partition = 0};
    shoal_message_t to1 = {.value = "v", .value_len = 1, .partition = 1};
    const char *names[] = {"partitions"}, *two[] = {"2"};
    shoal_producer_t *p, *q;
    struct shm_ctl *ctl = damage_target("half", 1000, &p);
    shoal_ack_t ack;
    (void)state;

    assert_int_equal(shoal_topic_alter(client, "half", names, two, 1), 0);
    atomic_store(&ctl->active_slot, 9); /* partition 0's */
    harness_daemon_expect_log(&daemon_, "half-0: cannot roll the segment");
    assert_int_equal(shoal_producer_open(client, "half", NULL, &q), 0);
    assert_int_equal(shoal_producer_partitions(q), 2);
    assert_int_equal(shoal_send(q, &to1, &ack), 0);
    assert_int_equal(ack.partition, 1);
    assert_int_equal(shoal_send(q, &to0, NULL), SHOAL_ECORRUPT);
    assert_non_null(strstr(shoal_errmsg(), "half-0 is stopped"));
    /* deleting the topic still reaches the producer through its anchor */
    assert_int_equal(shoal_topic_delete(client, "half"), 0);
    assert_int_equal(shoal_send(q, &to1, NULL), SHOAL_ENOTOPIC);
    munmap(ctl, sizeof(*ctl));
    shoal_producer_close(q);
    shoal_producer_close(p);
}

/* CPU time (user + system, clock ticks) the daemon has used so far. */
static long daemon_cpu_ticks(void)
{
    char path[64], buf[1024];
    unsigned long utime, stime;
    const char *p;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)daemon_.pid);
    assert_non_null(f = fopen(path, "r"));
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_non_null(p = strrchr(buf, ')')); /* fields 14 and 15, after the command name */
    assert_int_equal(
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime), 2);
    return (long)(utime + stime);
}

/* After 200 ms to settle, the daemon uses next to no CPU for a second: a spinning one uses
 * ~100 ticks a second. */
static void expect_daemon_rests(void)
{
    long ticks;

    usleep(200000);
    ticks = daemon_cpu_ticks();
    usleep(1000000);
    assert_in_range(daemon_cpu_ticks() - ticks, 0, 20);
}

/* Wait up to 5 s for every offset below `end` to be fsynced. */
static void expect_flushed(struct shm_ctl *ctl, int64_t end)
{
    for (int i = 0; i < 500 && atomic_load(&ctl->flushed_offset) < end; i++)
        usleep(10000);
    assert_true(atomic_load(&ctl->flushed_offset) >= end);
}

/* A producer killed while it waited for ACKS_DISK, or for room in a memory topic, leaves
 * the shared count of waiters raised for good. The daemon must still rest when there is
 * nothing to do (it spun a whole CPU), and must still serve the next waiter. */
static void test_daemon_rests_despite_waiter_counts_left_by_dead_producers(void **state)
{
    shoal_message_t m = {.value = "v", .value_len = 1, .partition = 0};
    shoal_producer_options_t o;
    shoal_topic_config_t mem;
    shoal_producer_t *p;
    struct shm_ctl *disk_ctl, *mem_ctl;
    (void)state;

    shoal_topic_config_init(&mem);
    mem.storage = SHOAL_STORAGE_MEMORY;
    assert_int_equal(shoal_topic_create(client, "stuck-disk", NULL), 0);
    assert_int_equal(shoal_topic_create(client, "stuck-mem", &mem), 0);
    disk_ctl = harness_map_ctl(&daemon_, "stuck-disk");
    mem_ctl = harness_map_ctl(&daemon_, "stuck-mem");
    atomic_fetch_add(&disk_ctl->flush_waiters, SHM_FLUSH_ARRIVE); /* as a killed waiter does */
    atomic_fetch_add(&mem_ctl->space_waiters, 1);
    expect_daemon_rests();

    shoal_producer_options_init(&o);
    o.acks = SHOAL_ACKS_DISK;
    assert_int_equal(shoal_producer_open(client, "stuck-disk", &o, &p), 0);
    assert_int_equal(shoal_send(p, &m, NULL), 0); /* fsynced, with the stale count still 1 */
    assert_int_equal(SHM_FLUSH_WAITING(atomic_load(&disk_ctl->flush_waiters)), 1);
    shoal_producer_close(p);
    munmap(disk_ctl, sizeof(*disk_ctl));
    munmap(mem_ctl, sizeof(*mem_ctl));
}

/* flush.ms an hour: no fsync by time during a test, only the ones waiters bring */
#define NO_TIMED_FSYNC 3600000

/* A disk topic for the ACKS_DISK waiter tests, its partition's control block as a producer
 * maps it, and a producer with the given acks in *p. flush_ms 0: the default. */
static struct shm_ctl *waiter_target(const char *topic, int64_t flush_ms, uint32_t acks,
                                     shoal_producer_t **p)
{
    shoal_producer_options_t o;
    shoal_topic_config_t cfg;

    shoal_topic_config_init(&cfg);
    if (flush_ms)
        cfg.flush_ms = flush_ms;
    shoal_producer_options_init(&o);
    o.acks = acks;
    assert_int_equal(shoal_topic_create(client, topic, &cfg), 0);
    assert_int_equal(shoal_producer_open(client, topic, &o, p), 0);
    return harness_map_ctl(&daemon_, topic);
}

/* A producer killed while it waited for ACKS_DISK leaves the offset it asked for and the
 * raised count behind. The flusher serves that offset with one fsync, then fsyncs again
 * only as flush.ms and live waiters ask: it used to fsync at every pass while records
 * streamed in, until shoald restarted. A live waiter is still served at once. */
static void test_a_dead_disk_waiter_costs_one_fsync_not_one_per_pass(void **state)
{
    shoal_message_t m = {.value = "v", .value_len = 1, .partition = 0};
    shoal_producer_options_t o;
    shoal_producer_t *p, *acker;
    struct shm_ctl *ctl;
    uint64_t fsyncs;
    int64_t wanted, t0;
    (void)state;

    ctl = waiter_target("dead-waiter", NO_TIMED_FSYNC, SHOAL_ACKS_MEMORY, &p);
    for (int i = 0; i < 10; i++)
        assert_int_equal(shoal_send(p, &m, NULL), 0);
    wanted = atomic_load(&ctl->log_end_offset); /* as a waiter for offset 9 leaves them */
    atomic_store(&ctl->flush_wanted, wanted);
    atomic_fetch_add(&ctl->flush_waiters, 1);
    expect_flushed(ctl, wanted);

    fsyncs = atomic_load(&ctl->fsyncs);
    for (int i = 0; i < 200; i++) { /* a pass every flush.interval.ms (5 ms) meanwhile */
        assert_int_equal(shoal_send(p, &m, NULL), 0);
        usleep(1000);
    }
    assert_in_range(atomic_load(&ctl->fsyncs) - fsyncs, 0, 2);

    shoal_producer_options_init(&o);
    o.acks = SHOAL_ACKS_DISK;
    assert_int_equal(shoal_producer_open(client, "dead-waiter", &o, &acker), 0);
    t0 = shoal__mono_ns();
    assert_int_equal(shoal_send(acker, &m, NULL), 0);
    assert_true(shoal__mono_ns() - t0 < 10000000000ll); /* not flush.ms: an hour */
    assert_true(atomic_load(&ctl->fsyncs) > fsyncs);
    shoal_producer_close(acker);
    shoal_producer_close(p);
    munmap(ctl, sizeof(*ctl));
}

/* A producer of an older library waits for ACKS_DISK by only counting itself and waking the
 * flusher (it sets no flush_wanted): on a ring no newer waiter has set flush_wanted on, its
 * record is still fsynced at once, not after flush.ms. */
static void test_a_disk_waiter_of_an_older_library_is_served_at_once(void **state)
{
    shoal_message_t m = {.value = "v", .value_len = 1, .partition = 0};
    shoal_producer_t *p;
    struct shm_ctl *ctl;
    int64_t wanted;
    (void)state;

    ctl = waiter_target("old-waiter", NO_TIMED_FSYNC, SHOAL_ACKS_MEMORY, &p);
    assert_int_equal(shoal_send(p, &m, NULL), 0);
    wanted = atomic_load(&ctl->log_end_offset);
    atomic_fetch_add(&ctl->flush_waiters, 1);
    shoal__futex_wake(&ctl->flush_waiters, 1);
    expect_flushed(ctl, wanted);
    atomic_fetch_sub(&ctl->flush_waiters, 1);
    shoal_producer_close(p);
    munmap(ctl, sizeof(*ctl));
}

/* A process that raises flush_wanted and log_end_offset past every published record (only
 * one that SO_PEERCRED admitted can) asks for an fsync the flusher can never reach. The
 * flusher must rest until there is something to write, not pass after pass on a whole CPU,
 * and the partition must go on taking records once the words are true again. */
static void test_daemon_rests_when_a_waiter_wants_what_nobody_published(void **state)
{
    shoal_message_t m = {.value = "v", .value_len = 1, .partition = 0};
    shoal_producer_t *p;
    struct shm_ctl *ctl;
    int64_t end;
    (void)state;

    ctl = waiter_target("unreachable", 0, SHOAL_ACKS_DISK, &p);
    assert_int_equal(shoal_send(p, &m, NULL), 0); /* the flusher now stands in a slot */
    end = atomic_load(&ctl->log_end_offset);
    atomic_store(&ctl->log_end_offset, end + 1000);
    atomic_store(&ctl->flush_wanted, end + 1000);
    atomic_fetch_add(&ctl->flush_waiters, 1);
    shoal__futex_wake(&ctl->flush_waiters, 1);
    expect_daemon_rests();

    atomic_store(&ctl->log_end_offset, end);
    atomic_store(&ctl->flush_wanted, end);
    atomic_fetch_sub(&ctl->flush_waiters, 1);
    assert_int_equal(shoal_send(p, &m, NULL), 0);
    assert_true(atomic_load(&ctl->flushed_offset) >= end + 1);
    shoal_producer_close(p);
    munmap(ctl, sizeof(*ctl));
}

static int setup(void **state)
{
    (void)state;
    harness_watchdog(60, "test_client_faults");
    if (harness_daemon_start(&daemon_, "faults", NULL) < 0)
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

/* Out of descriptors, shoald used to leave refused clients in the listen queue, which
 * kept its level-triggered listener ready: the loop spun a whole CPU. It drops them with
 * a spare descriptor now, says so once, tells each client why (SHOAL_ELIMIT, not a bare
 * SHOAL_ECLOSED), and serves again when descriptors come back. */
static void test_daemon_out_of_descriptors_drops_clients_and_rests(void **state)
{
    enum { CONNS = 80 };
    struct rlimit few = {.rlim_cur = 48, .rlim_max = 48};
    shoal_client_t *other;
    char **names;
    size_t count;
    int fds[CONNS];
    long ticks;
    (void)state;

    assert_int_equal(prlimit(daemon_.pid, RLIMIT_NOFILE, &few, NULL), 0);
    for (int i = 0; i < CONNS; i++)
        assert_true((fds[i] = ctlsock_connect(daemon_.socket, -1)) >= 0);
    harness_daemon_expect_log(&daemon_, "refusing clients: no file descriptors left");
    assert_int_equal(shoal_client_open(daemon_.socket, &other), SHOAL_ELIMIT);
    assert_non_null(strstr(shoal_errmsg(), "shoald refuses new clients: no file descriptors "
                                           "left"));
    usleep(200000);
    ticks = daemon_cpu_ticks();
    usleep(1000000);
    assert_in_range(daemon_cpu_ticks() - ticks, 0, 20);
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    usleep(100000); /* the daemon sees them close */
    assert_int_equal(shoal_client_open(daemon_.socket, &other), 0);
    assert_int_equal(shoal_topic_list(other, &names, &count), 0);
    shoal_topic_list_free(names, count);
    shoal_client_close(other);
}

/* A create whose disk partitions would hold the files left for serving clients is refused
 * (-EMFILE, naming the limit): a tester's daemon at its limit could attach no producer or
 * consumer to its existing topics any more. Those still attach after the refusal. */
static void test_a_create_that_would_leave_too_few_descriptors_is_refused(void **state)
{
    struct rlimit few = {.rlim_cur = 160, .rlim_max = 160};
    shoal_topic_config_t cfg;
    shoal_producer_t *p;
    (void)state;

    assert_int_equal(prlimit(daemon_.pid, RLIMIT_NOFILE, &few, NULL), 0);
    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = 64 << 10;
    cfg.max_record_bytes = 4096;
    cfg.ring_slots = 2;
    cfg.partitions = 8;
    assert_int_equal(shoal_topic_create(client, "few", &cfg), 0);
    cfg.partitions = 40;
    assert_int_equal(shoal_topic_create(client, "many", &cfg), -EMFILE);
    assert_non_null(strstr(shoal_errmsg(), "topic many would keep 120 more files open"));
    assert_non_null(strstr(shoal_errmsg(), "of its 160 open"));
    assert_int_equal(shoal_producer_open(client, "few", NULL, &p), 0);
    shoal_producer_close(p);
}

/* The lowest descriptor number this process would get next. */
static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    close(fd);
    return fd;
}

static int count_fds(void)
{
    char path[64];
    int n = 0;
    for (int fd = 0; fd < 4096; fd++) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n += access(path, F_OK) == 0;
    }
    return n;
}

/* An attach whose ring descriptors do not fit under RLIMIT_NOFILE loses some of them in
 * transit (MSG_CTRUNC). It fails -EMFILE saying so, closes those that came, and reads the
 * rest of the response: the connection stays in step, and once descriptors are free again
 * the same client attaches and lists as before. */
static void test_an_attach_out_of_descriptors_is_emfile_and_the_client_goes_on(void **state)
{
    shoal_topic_config_t cfg;
    struct rlimit old, few;
    shoal_producer_t *p;
    shoal_message_t m = {.value = "v", .value_len = 1, .partition = 0};
    char **names;
    size_t count;
    int before;
    (void)state;

    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = 64 << 10;
    cfg.ring_slots = 8; /* ten descriptors to receive */
    cfg.max_record_bytes = 1024;
    assert_int_equal(shoal_topic_create(client, "nofile", &cfg), 0);
    before = count_fds();
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    few = old;
    few.rlim_cur = (rlim_t)lowest_free_fd() + 3;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &few), 0);
    assert_int_equal(shoal_producer_open(client, "nofile", NULL, &p), -EMFILE);
    assert_non_null(strstr(shoal_errmsg(), "ran out of file descriptors"));
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(count_fds(), before);

    assert_int_equal(shoal_topic_list(client, &names, &count), 0);
    assert_int_equal(count, 1);
    shoal_topic_list_free(names, count);
    assert_int_equal(shoal_producer_open(client, "nofile", NULL, &p), 0);
    assert_int_equal(shoal_send(p, &m, NULL), 0);
    shoal_producer_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_calls_fail_cleanly_at_every_allocation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_ring_that_cannot_be_mapped_is_enomem_with_a_detail,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_producers_waiting_for_disk_share_fsyncs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_reader_in_another_pid_namespace_is_tracked_by_shoalds_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_send_waits_for_a_stuck_lock_holder_no_longer_than_block_ms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_handle_refuses_a_second_thread_while_one_is_inside,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_stopped_partition_0_keeps_no_producer_from_the_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_count_appends_and_sleeping_readers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_topic_larger_than_shared_memory_is_refused_and_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_while_the_lock_is_held_encodes_aside_then_appends,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_flusher_refuses_slots_that_lead_in_a_circle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_records_with_no_slot_to_flush_from_are_reported, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wild_active_slot_breaks_the_partition_not_the_daemon,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_daemon_rests_despite_waiter_counts_left_by_dead_producers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_dead_disk_waiter_costs_one_fsync_not_one_per_pass,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_disk_waiter_of_an_older_library_is_served_at_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_rests_when_a_waiter_wants_what_nobody_published,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_out_of_descriptors_drops_clients_and_rests,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_create_that_would_leave_too_few_descriptors_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_an_attach_out_of_descriptors_is_emfile_and_the_client_goes_on, setup, teardown),
    };
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
