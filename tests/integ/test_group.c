/* test_group.c - consumer groups against a real shoald.
 *
 * Members are helper processes (or consumers of the test process where only one member
 * polls at a time), sharing a MAP_SHARED area with the test: who owns each partition, how
 * often each record was processed, what each member committed. Ownership is checked in
 * on_assigned: a partition handed to a member must not be held by another live member. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "ctlproto.h"
#include "ctlsock.h"
#include "group_consumer.h"
#include "harness.h"
#include "shoal.h"
#include "util.h"

#define TEST_TIMEOUT_S 60
#define NPARTS         6
#define PER_PART       300
#define NMEMBERS       3

/* What the members and the test share. */
struct shared {
    _Atomic int32_t owner[NPARTS]; /* pid of the member holding the partition, 0 */
    _Atomic int violations;        /* a partition handed out while another live member had it */
    _Atomic uint32_t seen[NPARTS][PER_PART];
    _Atomic int64_t committed[NMEMBERS][NPARTS]; /* last offset member i committed, -1 */
    _Atomic int nassigned[NMEMBERS];             /* partitions member i holds */
    _Atomic int32_t pids[NMEMBERS];
    _Atomic int done;
    _Atomic int assigned_calls[NMEMBERS];
    _Atomic int stop_self; /* a member asked to SIGSTOP itself at its next heartbeat */
};

static struct shared *sh;
static const char *sock_path;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* A process's state letter from /proc (R, S, T, Z...), or 0 when it does not exist. */
static char proc_state(pid_t pid)
{
    char path[64], buf[256];
    FILE *fp;
    char *p;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (!(fp = fopen(path, "r")))
        return 0;
    p = fgets(buf, sizeof(buf), fp);
    fclose(fp);
    p = p ? strrchr(buf, ')') : NULL;
    return p && p[1] == ' ' ? p[2] : 0;
}

/* A process that exists and is not a zombie. */
static bool alive(pid_t pid)
{
    char st = proc_state(pid);
    return st && st != 'Z' && st != 'X';
}

/* Whether partition p of topic is in the consumer's assignment (shoal_consumer_assignment). */
static bool in_assignment(shoal_consumer_t *c, const char *topic, int32_t p)
{
    shoal_topic_partition_offset_t a[64];
    int n = shoal_consumer_assignment(c, a, 64);

    for (int i = 0; i < n && i < 64; i++)
        if (a[i].partition == p && !strcmp(a[i].topic, topic))
            return true;
    return false;
}

static void on_assigned(void *arg, shoal_consumer_t *c, const shoal_topic_partition_t *tps,
                        size_t n)
{
    int idx = (int)(intptr_t)arg;
    int32_t self = (int32_t)getpid();
    for (size_t i = 0; i < n; i++) {
        if (!in_assignment(c, tps[i].topic, tps[i].partition)) {
            fprintf(stderr, "%s-%d is assigned, but not in shoal_consumer_assignment()\n",
                    tps[i].topic, tps[i].partition);
            atomic_fetch_add(&sh->violations, 1);
        }
        int32_t old = atomic_exchange(&sh->owner[tps[i].partition], self);
        if (old != 0 && old != self && alive(old)) {
            fprintf(stderr, "partition %d given to %d while %d holds it\n", tps[i].partition,
                    (int)self, (int)old);
            atomic_fetch_add(&sh->violations, 1);
        }
    }
    atomic_store(&sh->nassigned[idx], (int)n);
    atomic_fetch_add(&sh->assigned_calls[idx], 1);
}

static void on_revoked(void *arg, shoal_consumer_t *c, const shoal_topic_partition_t *tps, size_t n)
{
    int idx = (int)(intptr_t)arg;
    int32_t self = (int32_t)getpid();
    (void)c;
    for (size_t i = 0; i < n; i++) {
        int32_t expect = self;
        atomic_compare_exchange_strong(&sh->owner[tps[i].partition], &expect, 0);
    }
    atomic_store(&sh->nassigned[idx], 0);
}

static void member_options(shoal_consumer_options_t *o, const char *group, int idx)
{
    shoal_consumer_options_init(o);
    o->group_id = group;
    o->client_id = "tester";
    o->auto_commit = false;
    o->auto_offset_reset = SHOAL_OFFSET_RESET_EARLIEST;
    o->on_assigned = on_assigned;
    o->on_revoked = on_revoked;
    o->cb_arg = (void *)(intptr_t)idx;
}

static int open_member(shoal_client_t **cl, shoal_consumer_t **c, const shoal_consumer_options_t *o,
                       const char *topic)
{
    const char *topics[] = {topic};
    int rc = shoal_client_open(sock_path, cl);
    if (rc == 0)
        rc = shoal_consumer_open(*cl, o, c);
    if (rc == 0)
        rc = shoal_consumer_subscribe(*c, topics, 1);
    if (rc < 0)
        fprintf(stderr, "open member: %s (%s)\n", shoal_err_name(rc), shoal_errmsg());
    return rc;
}

static int produce(shoal_client_t *c, const char *topic, int32_t partition, int n)
{
    shoal_producer_t *p;
    int rc = shoal_producer_open(c, topic, NULL, &p);
    for (int i = 0; i < n && rc == 0; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof(buf), "%d-%d", partition, i);
        shoal_message_t m = {.value = buf, .value_len = (size_t)len, .partition = partition};
        rc = shoal_send(p, &m, NULL);
    }
    shoal_producer_close(p);
    return rc;
}

/* ------------------------------------------------------------------ fixture */

static int setup(void **state)
{
    static struct harness_fixture f;

    *state = &f;
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return -1;
    if (harness_fixture_start(&f, "group", TEST_TIMEOUT_S, "--log-level", "debug", NULL) < 0)
        return -1;
    sock_path = f.d.socket;
    return 0;
}

static int teardown(void **state)
{
    int rc = harness_fixture_stop(*state);
    munmap(sh, sizeof(*sh));
    return rc;
}

static shoal_topic_config_t topic_cfg(uint32_t partitions)
{
    shoal_topic_config_t cfg;
    shoal_topic_config_init(&cfg);
    cfg.partitions = partitions;
    cfg.segment_bytes = 1ull << 20;
    cfg.ring_slots = 2;
    cfg.max_record_bytes = 1u << 16;
    return cfg;
}

/* ------------------------------------------------------------------ three members, SIGKILL */

/* A member that processes a few records at a time, slowly, and commits each batch. */
static int slow_member(void *arg)
{
    int idx = (int)(intptr_t)arg;
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[5];

    member_options(&o, "workers", idx);
    atomic_store(&sh->pids[idx], (int32_t)getpid());
    if (open_member(&cl, &c, &o, "jobs") < 0)
        return 10;
    while (!atomic_load(&sh->done)) {
        shoal_topic_partition_offset_t offs[5];
        int n = shoal_poll(c, recs, 5, 50), rc;
        if (n < 0) {
            fprintf(stderr, "member %d: poll: %s (%s)\n", idx, shoal_err_name(n), shoal_errmsg());
            return 11;
        }
        for (int i = 0; i < n; i++) {
            if (recs[i].offset >= PER_PART)
                return 12;
            atomic_fetch_add(&sh->seen[recs[i].partition][recs[i].offset], 1);
            offs[i] = (shoal_topic_partition_offset_t){.topic = recs[i].topic,
                                                       .partition = recs[i].partition,
                                                       .offset = recs[i].offset + 1};
        }
        if (n > 0) {
            sleep_ms(10); /* "processing" */
            rc = shoal_commit_sync(c, offs, (size_t)n);
            if (rc < 0 && rc != SHOAL_EGENERATION && rc != SHOAL_ENOTASSIGNED &&
                rc != SHOAL_EREBALANCE) {
                fprintf(stderr, "member %d: commit: %s (%s)\n", idx, shoal_err_name(rc),
                        shoal_errmsg());
                return 13;
            }
            for (int i = 0; rc == 0 && i < n; i++)
                atomic_store(&sh->committed[idx][recs[i].partition], offs[i].offset);
        }
    }
    shoal_consumer_close(c);
    shoal_client_close(cl);
    return 0;
}

static bool all_seen(void)
{
    for (int p = 0; p < NPARTS; p++)
        for (int i = 0; i < PER_PART; i++)
            if (atomic_load(&sh->seen[p][i]) == 0)
                return false;
    return true;
}

static bool all_owned_by_others(pid_t dead)
{
    for (int p = 0; p < NPARTS; p++) {
        int32_t o = atomic_load(&sh->owner[p]);
        if (o == 0 || o == dead)
            return false;
    }
    return true;
}

INTEG_TEST(test_three_members_share_partitions_and_a_sigkilled_members_move_fast)
{
    shoal_topic_config_t cfg = topic_cfg(NPARTS);
    pid_t pids[NMEMBERS];
    int64_t t0, moved_ms;

    for (int m = 0; m < NMEMBERS; m++)
        for (int p = 0; p < NPARTS; p++)
            atomic_store(&sh->committed[m][p], -1);
    assert_int_equal(shoal_topic_create(f->c, "jobs", &cfg), 0);
    for (int p = 0; p < NPARTS; p++)
        assert_int_equal(produce(f->c, "jobs", p, PER_PART), 0);
    for (int m = 0; m < NMEMBERS; m++)
        assert_true((pids[m] = harness_fork(slow_member, (void *)(intptr_t)m, 50)) > 0);

    /* wait until every member holds partitions (the group is stable with all three) */
    t0 = mono_ms();
    while (mono_ms() - t0 < 10000) {
        int holding = 0;
        for (int m = 0; m < NMEMBERS; m++)
            holding += atomic_load(&sh->nassigned[m]) > 0;
        if (holding == NMEMBERS)
            break;
        sleep_ms(5);
    }
    for (int m = 0; m < NMEMBERS; m++)
        assert_int_equal(atomic_load(&sh->nassigned[m]), NPARTS / NMEMBERS);
    sleep_ms(150); /* let them process and commit a little */

    assert_int_equal(kill(pids[0], SIGKILL), 0);
    t0 = mono_ms();
    assert_int_equal(harness_wait(pids[0], 5000), 128 + SIGKILL);
    while (!all_owned_by_others(pids[0]) && mono_ms() - t0 < 5000)
        sleep_ms(1);
    moved_ms = mono_ms() - t0;
    printf("partitions of the killed member moved in %" PRId64 " ms\n", moved_ms);
    assert_true(all_owned_by_others(pids[0]));
    assert_true(moved_ms < 800); /* "well under a second", with room for a loaded CI box */

    t0 = mono_ms();
    while (!all_seen() && mono_ms() - t0 < 20000)
        sleep_ms(10);
    atomic_store(&sh->done, 1);
    for (int m = 1; m < NMEMBERS; m++)
        assert_int_equal(harness_wait(pids[m], 10000), 0);
    assert_true(all_seen());
    assert_int_equal(atomic_load(&sh->violations), 0);

    /* duplicates: only records of the dead member at or after its last commit */
    int dups = 0;
    for (int p = 0; p < NPARTS; p++)
        for (int i = 0; i < PER_PART; i++) {
            if (atomic_load(&sh->seen[p][i]) <= 1)
                continue;
            dups++;
            int64_t last = atomic_load(&sh->committed[0][p]);
            if (last < 0 || i < last)
                fail_msg("record %d-%d processed %u times; the dead member committed %" PRId64, p,
                         i, atomic_load(&sh->seen[p][i]), last);
        }
    printf("%d records redelivered after the kill\n", dups);
}

/* ------------------------------------------------------------------ two groups */

static int drain(shoal_consumer_t *c, uint32_t *count, int parts, int per_part, int *total)
{
    shoal_record_t recs[64];
    int n = shoal_poll(c, recs, 64, 20);
    for (int i = 0; i < n; i++) {
        if (recs[i].partition >= parts || recs[i].offset >= per_part)
            return -1;
        count[recs[i].partition * per_part + recs[i].offset]++;
        (*total)++;
    }
    return n;
}

INTEG_TEST(test_two_groups_on_one_topic_each_receive_every_record)
{
    shoal_topic_config_t cfg = topic_cfg(3);
    static uint32_t ca[3 * 100], cb[3 * 100];
    shoal_consumer_options_t oa, ob;
    shoal_client_t *cla, *clb;
    shoal_consumer_t *a, *b;
    int ta = 0, tb = 0;
    int64_t t0;

    assert_int_equal(shoal_topic_create(f->c, "news", &cfg), 0);
    for (int p = 0; p < 3; p++)
        assert_int_equal(produce(f->c, "news", p, 100), 0);
    member_options(&oa, "readers-a", 0);
    member_options(&ob, "readers-b", 1);
    assert_int_equal(open_member(&cla, &a, &oa, "news"), 0);
    assert_int_equal(open_member(&clb, &b, &ob, "news"), 0);
    t0 = mono_ms();
    while ((ta < 300 || tb < 300) && mono_ms() - t0 < 10000) {
        assert_true(drain(a, ca, 3, 100, &ta) >= 0);
        assert_true(drain(b, cb, 3, 100, &tb) >= 0);
    }
    assert_int_equal(ta, 300);
    assert_int_equal(tb, 300);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(ca[i], 1);
        assert_int_equal(cb[i], 1);
    }
    shoal_consumer_close(a);
    shoal_consumer_close(b);
    shoal_client_close(cla);
    shoal_client_close(clb);
}

/* ------------------------------------------------------------------ restart */

/* Consume up to want records of group g; returns the first offset seen in *first. */
static int consume_some(const char *group, int want, int64_t *first, bool commit)
{
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[16];
    int got = 0;
    int64_t t0 = mono_ms();

    member_options(&o, group, 0);
    if (open_member(&cl, &c, &o, "log") < 0)
        return -1;
    *first = -1;
    while (got < want && mono_ms() - t0 < 10000) {
        int n = shoal_poll(c, recs, (size_t)(want - got < 16 ? want - got : 16), 20);
        if (n < 0)
            break;
        if (n > 0 && *first < 0)
            *first = recs[0].offset;
        got += n;
    }
    if (commit && shoal_commit_sync(c, NULL, 0) < 0)
        got = -2;
    shoal_consumer_close(c);
    shoal_client_close(cl);
    return got;
}

INTEG_TEST(test_committed_offsets_survive_a_daemon_restart_and_consumers_resume_there)
{
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_group_info_t *info;
    int64_t first;

    assert_int_equal(shoal_topic_create(f->c, "log", &cfg), 0);
    assert_int_equal(produce(f->c, "log", 0, 100), 0);
    assert_int_equal(consume_some("keeper", 60, &first, true), 60);
    assert_int_equal(first, 0);

    shoal_client_close(f->c);
    f->c = NULL;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(shoal_client_open(f->d.socket, &f->c), 0);

    assert_int_equal(shoal_group_describe(f->c, "keeper", &info), 0);
    assert_int_equal(info->member_count, 0);
    assert_int_equal(info->offset_count, 1);
    assert_int_equal(info->offsets[0].committed, 60);
    assert_int_equal(info->offsets[0].log_end_offset, 100);
    assert_int_equal(info->offsets[0].lag, 40);
    shoal_group_info_free(info);

    assert_int_equal(consume_some("keeper", 40, &first, true), 40);
    assert_int_equal(first, 60);
}

/* A stopping daemon closes its members' connections itself: it must not log them as
 * removed because their process ended (the process is alive). */
INTEG_TEST(test_a_daemon_stop_does_not_log_its_members_as_ended)
{
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t r[8];

    assert_int_equal(shoal_topic_create(f->c, "stay", &cfg), 0);
    member_options(&o, "stayers", 0);
    assert_int_equal(open_member(&cl, &c, &o, "stay"), 0);
    for (int i = 0; i < 50 && atomic_load(&sh->nassigned[0]) == 0; i++)
        shoal_poll(c, r, 8, 100);
    assert_int_equal(atomic_load(&sh->nassigned[0]), 1);
    shoal_client_close(f->c);
    f->c = NULL;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_false(harness_daemon_log_contains(&f->d, "process ended"));
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

static int raw_status(const char *path, uint16_t type, const void *payload, size_t len);

/* The frame of a commit of one offset as an administrator sends it (no member id). */
static void put_admin_commit(ctl_writer_t *w, const char *group, const char *topic, int32_t p,
                             int64_t offset)
{
    ctl_frame_begin(w, CTL_GROUP_COMMIT, 1);
    ctl_put_str(w, group);
    ctl_put_str(w, "");
    ctl_put_i32(w, -1);
    ctl_put_u32(w, 1);
    ctl_put_str(w, topic);
    ctl_put_i32(w, p);
    ctl_put_i64(w, offset);
    ctl_frame_end(w);
}

/* Commit one offset as an administrator, on a connection of its own; the status. */
static int admin_commit(const char *path, const char *group, const char *topic, int32_t p,
                        int64_t offset)
{
    ctl_writer_t w;
    int rc;

    ctl_writer_init(&w);
    put_admin_commit(&w, group, topic, p, offset);
    rc = raw_status(path, CTL_GROUP_COMMIT, w.buf + CTL_HEADER_BYTES, w.len - CTL_HEADER_BYTES);
    ctl_writer_release(&w);
    return rc;
}

/* What a poll returned, which must not be a failure. (SHOAL_MAX(0, shoal_poll(...)) polls
 * twice and counts the second.) */
static int polled(int n)
{
    assert_true(n >= 0);
    return n;
}

/* A deleted topic takes every group's committed offsets with it: a topic created later
 * under its name is read from its start, not from where the old one's readers were. */
INTEG_TEST(test_a_topic_deleted_and_created_again_has_no_committed_offsets)
{
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_group_info_t *info;
    int64_t first;

    assert_int_equal(shoal_topic_create(f->c, "log", &cfg), 0);
    assert_int_equal(produce(f->c, "log", 0, 30), 0);
    assert_int_equal(consume_some("again", 30, &first, true), 30);
    assert_int_equal(shoal_topic_delete(f->c, "log"), 0);
    assert_true(harness_daemon_log_contains(&f->d, "deleted topic log and 1 committed offsets"));
    /* left with neither members nor offsets, the group goes too */
    assert_int_equal(shoal_group_describe(f->c, "again", &info), SHOAL_ENOGROUP);
    assert_int_equal(admin_commit(f->d.socket, "again", "log", 0, 5), SHOAL_ENOTOPIC);

    assert_int_equal(shoal_topic_create(f->c, "log", &cfg), 0);
    assert_int_equal(produce(f->c, "log", 0, 2), 0);
    assert_int_equal(consume_some("again", 2, &first, true), 2);
    assert_int_equal(first, 0);
}

/* Poll c for up to ms until want records from topics matching "metrics.[a-z]+" in all,
 * counted by topic in seen[] (cpu, mem, disk); any other topic, or an error but shoald's
 * absence, fails the test. */
static void poll_metrics(shoal_consumer_t *c, int seen[3], int want, int ms)
{
    static const char *const names[] = {"metrics.cpu", "metrics.mem", "metrics.disk"};
    shoal_record_t recs[16];
    int total = seen[0] + seen[1] + seen[2];

    for (int64_t t0 = mono_ms(); total < want && mono_ms() - t0 < ms;) {
        int n = shoal_poll(c, recs, 16, 20);
        if (n == SHOAL_ECLOSED || n == SHOAL_ENODAEMON) /* shoald restarting */
            continue;
        for (int i = 0; i < polled(n); i++) {
            int k = 0;
            while (k < 3 && strcmp(recs[i].topic, names[k]))
                k++;
            if (k == 3)
                fail_msg("read a record of %s", recs[i].topic);
            seen[k]++;
            total++;
        }
    }
}

/* A pattern subscription reads the topics whose whole names match it, and a topic created
 * later that matches as soon as the rebalance it starts assigns it; topics that only
 * contain a match are not read. Bad patterns are refused by the library at once. After a
 * daemon restart the member joins again with its pattern and reads on. */
INTEG_TEST(test_a_pattern_subscription_takes_matching_topics_and_ones_created_later)
{
    static const char *const topics[] = {"metrics.cpu", "metrics.mem", "metricsx",
                                         "old.metrics.cpu", "metrics.cpu.raw"};
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_message_t m = {.value = "v", .value_len = 1, .partition = 0};
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_producer_t *p;
    int seen[3] = {0};

    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        assert_int_equal(shoal_topic_create(f->c, topics[i], &cfg), 0);
        assert_int_equal(produce(f->c, topics[i], 0, 5), 0);
    }
    member_options(&o, "watchers", 0);
    assert_int_equal(shoal_client_open(sock_path, &cl), 0);
    assert_int_equal(shoal_consumer_open(cl, &o, &c), 0);
    assert_int_equal(shoal_consumer_subscribe_pattern(c, "(?i)metrics"), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "only (?:...) is supported"));
    assert_int_equal(shoal_consumer_subscribe_pattern(c, "metrics.(cpu"), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "topic pattern 'metrics.(cpu': a '(' without"));
    assert_int_equal(shoal_consumer_subscribe_pattern(c, "metrics\\.[a-z]+"), 0);
    assert_int_equal(shoal_consumer_subscribe_pattern(c, "x"), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "subscribed already"));

    poll_metrics(c, seen, 10, 10000);
    assert_int_equal(seen[0], 5);
    assert_int_equal(seen[1], 5);
    cfg.partitions = 2;
    assert_int_equal(shoal_topic_create(f->c, "metrics.disk", &cfg), 0);
    assert_int_equal(produce(f->c, "metrics.disk", 0, 3), 0);
    assert_int_equal(produce(f->c, "metrics.disk", 1, 4), 0);
    poll_metrics(c, seen, 17, 10000);
    assert_int_equal(seen[2], 7);
    assert_true(in_assignment(c, "metrics.disk", 1));
    poll_metrics(c, seen, 18, 300); /* and nothing else comes */
    assert_int_equal(seen[0] + seen[1] + seen[2], 17);

    /* a daemon restart: the member joins again with its pattern and goes on where it was */
    assert_int_equal(shoal_producer_open(f->c, "metrics.mem", NULL, &p), 0);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    for (int i = 0; i < 2; i++) /* producers need no daemon */
        assert_int_equal(shoal_send(p, &m, NULL), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    poll_metrics(c, seen, 19, 10000);
    assert_int_equal(seen[1], 7);
    poll_metrics(c, seen, 20, 300);
    assert_int_equal(seen[0] + seen[1] + seen[2], 19);
    shoal_producer_close(p);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

/* A member that has committed nothing gets its partition back after a daemon restart where
 * it was, not per auto_offset_reset: with "latest" it used to skip every record appended
 * between its connection's break and its rejoin (a user session lost hundreds so). */
INTEG_TEST(test_a_member_without_commits_resumes_where_it_was_after_a_daemon_restart)
{
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_message_t m = {.value = "v", .value_len = 1, .partition = 0};
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_producer_t *p;
    shoal_record_t recs[16];
    int64_t next = 10, t0;

    assert_int_equal(shoal_topic_create(f->c, "quiet", &cfg), 0);
    assert_int_equal(produce(f->c, "quiet", 0, 10), 0); /* before it joins: not its to read */
    member_options(&o, "nocommit", 0);
    o.auto_offset_reset = SHOAL_OFFSET_RESET_LATEST;
    assert_int_equal(open_member(&cl, &c, &o, "quiet"), 0);
    for (t0 = mono_ms(); consumer__assigned_count(c) == 0 && mono_ms() - t0 < 5000;)
        assert_true(shoal_poll(c, recs, 16, 20) >= 0);
    assert_int_equal(shoal_producer_open(f->c, "quiet", NULL, &p), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(shoal_send(p, &m, NULL), 0);
    for (t0 = mono_ms(); next < 20 && mono_ms() - t0 < 5000;) {
        int n = shoal_poll(c, recs, 16, 20);
        assert_true(n >= 0);
        for (int i = 0; i < n; i++)
            assert_int_equal(recs[i].offset, next++);
    }
    assert_int_equal(next, 20);

    assert_int_equal(harness_daemon_stop(&f->d), 0);
    for (t0 = mono_ms(); consumer__assigned_count(c) > 0 && mono_ms() - t0 < 5000;)
        assert_true(shoal_poll(c, recs, 16, 20) <= 0); /* it finds its connection broken */
    assert_int_equal(consumer__assigned_count(c), 0);
    for (int i = 0; i < 10; i++) /* producers need no daemon */
        assert_int_equal(shoal_send(p, &m, NULL), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    for (t0 = mono_ms(); next < 30 && mono_ms() - t0 < 10000;) {
        int n = shoal_poll(c, recs, 16, 20);
        for (int i = 0; i < n; i++)
            assert_int_equal(recs[i].offset, next++);
    }
    assert_int_equal(next, 30);
    shoal_producer_close(p);
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

INTEG_TEST(test_a_group_consumer_lives_through_a_daemon_restart_and_resumes_at_its_commit)
{
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[16];
    int64_t next = 0, t0;
    int errors = 0;

    assert_int_equal(shoal_topic_create(f->c, "life", &cfg), 0);
    assert_int_equal(produce(f->c, "life", 0, 20), 0);
    member_options(&o, "survivors", 0);
    assert_int_equal(open_member(&cl, &c, &o, "life"), 0);
    t0 = mono_ms();
    while (next < 20 && mono_ms() - t0 < 5000) {
        int n = shoal_poll(c, recs, 16, 20);
        assert_true(n >= 0);
        for (int i = 0; i < n; i++)
            assert_int_equal(recs[i].offset, next++);
    }
    assert_int_equal(next, 20);
    assert_int_equal(shoal_commit_sync(c, NULL, 0), 0);

    shoal_client_close(f->c);
    f->c = NULL;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(shoal_client_open(f->d.socket, &f->c), 0);
    assert_int_equal(produce(f->c, "life", 0, 10), 0);
    sleep_ms(200); /* its next poll heartbeats on the dead connection */

    /* the same consumer: its polls fail while the daemon is away, then it rejoins */
    t0 = mono_ms();
    while (next < 30 && mono_ms() - t0 < 10000) {
        int n = shoal_poll(c, recs, 16, 20);
        if (n < 0) {
            assert_true(n == SHOAL_ECLOSED || n == SHOAL_ENODAEMON);
            errors++;
            continue;
        }
        for (int i = 0; i < n; i++)
            assert_int_equal(recs[i].offset, next++);
    }
    assert_int_equal(next, 30);
    printf("%d polls failed while the daemon restarted\n", errors);
    assert_true(errors >= 1);
    /* and it is a member of the group in the new daemon */
    shoal_group_info_t *info = NULL;
    for (int i = 0; i < 100; i++) {
        assert_true(shoal_poll(c, recs, 16, 20) >= 0);
        shoal_group_info_free(info);
        info = NULL;
        if (shoal_group_describe(f->c, "survivors", &info) == 0 && info->member_count == 1)
            break;
    }
    assert_non_null(info);
    assert_int_equal(info->member_count, 1);
    assert_int_equal(info->members[0].assigned_count, 1);
    shoal_group_info_free(info);
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* ------------------------------------------------------------------ max poll interval */

static int busy_member(void *arg)
{
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[16];
    (void)arg;

    member_options(&o, "stall", 1);
    o.auto_commit = true;
    if (open_member(&cl, &c, &o, "work") < 0)
        return 10;
    while (!atomic_load(&sh->done))
        if (shoal_poll(c, recs, 16, 50) < 0)
            return 11;
    shoal_consumer_close(c);
    shoal_client_close(cl);
    return 0;
}

/* Poll a until cond holds or ms pass. */
static bool poll_until(shoal_consumer_t *c, bool (*cond)(void), int ms)
{
    shoal_record_t recs[16];
    int64_t t0 = mono_ms();
    while (!cond() && mono_ms() - t0 < ms)
        if (shoal_poll(c, recs, 16, 20) < 0)
            return false;
    return cond();
}

static bool split_two_two(void)
{
    return atomic_load(&sh->nassigned[0]) == 2 && atomic_load(&sh->nassigned[1]) == 2;
}

static int a_calls_before;

/* The stalled member was assigned again (a new on_assigned) and shares with the helper. */
static bool a_rejoined(void)
{
    return atomic_load(&sh->assigned_calls[0]) > a_calls_before &&
           atomic_load(&sh->nassigned[0]) > 0 && atomic_load(&sh->nassigned[1]) > 0 &&
           atomic_load(&sh->nassigned[0]) + atomic_load(&sh->nassigned[1]) == 4;
}

static enum cgroup_round_point hook_at;
static void (*hook_action)(void);

static void at_round_point(enum cgroup_round_point at)
{
    if (at == hook_at)
        hook_action();
}

/* Run action each time a member of this process reaches point at of a rebalance round
 * (cgroup__round_hook); NULL: no more. */
static void hook_round(enum cgroup_round_point at, void (*action)(void))
{
    hook_at = at;
    hook_action = action;
    cgroup__round_hook = action ? at_round_point : NULL;
}

static _Atomic int stalls_left;

/* Between a member's sync and its offset fetch: stall past the session once. */
static void stall_before_fetch(void)
{
    if (atomic_fetch_sub(&stalls_left, 1) > 0)
        sleep_ms(700);
}

static bool holds_all_one(void)
{
    return atomic_load(&sh->nassigned[0]) == 1;
}

static bool holds_all_four(void)
{
    return atomic_load(&sh->nassigned[0]) == 4;
}

/* With the daemon gone, a poll does not return SHOAL_ENODAEMON at once: it waits its
 * timeout (up to the heartbeat interval) first, so a loop that retries does not spin. */
INTEG_TEST(test_polls_without_a_daemon_wait_their_timeout_before_enodaemon)
{
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[4];
    int polls = 0, nodaemon = 0;
    int64_t t0;

    assert_int_equal(shoal_topic_create(f->c, "gone", &cfg), 0);
    member_options(&o, "orphans", 0);
    assert_int_equal(open_member(&cl, &c, &o, "gone"), 0);
    assert_true(poll_until(c, holds_all_one, 5000));
    shoal_client_close(f->c);
    f->c = NULL;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    for (t0 = mono_ms(); mono_ms() - t0 < 600; polls++) {
        int n = shoal_poll(c, recs, 4, 50);
        assert_true(n == 0 || n == SHOAL_ECLOSED || n == SHOAL_ENODAEMON);
        nodaemon += n == SHOAL_ENODAEMON;
    }
    print_message("%d polls in 600 ms, %d of them SHOAL_ENODAEMON\n", polls, nodaemon);
    assert_true(nodaemon >= 5);
    assert_true(polls <= 20); /* 50 ms each: about 12 */
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* A member removed by the daemon after its sync but before its offset fetch (it stalled
 * there past its session) is told SHOAL_EGENERATION by the fetch: poll rejoins inside,
 * as for any fencing, and never returns it. */
INTEG_TEST(test_a_member_fenced_before_its_offset_fetch_rejoins_inside_poll)
{
    shoal_topic_config_t cfg = topic_cfg(4);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;

    assert_int_equal(shoal_topic_create(f->c, "work", &cfg), 0);
    member_options(&o, "late-fetch", 0);
    o.session_timeout_ms = 200;
    o.heartbeat_interval_ms = 50;
    atomic_store(&stalls_left, 1);
    hook_round(CGROUP_BEFORE_FETCH, stall_before_fetch);
    assert_int_equal(open_member(&cl, &c, &o, "work"), 0);
    assert_true(poll_until(c, holds_all_four, 10000)); /* false at any error poll returns */
    hook_round(CGROUP_BEFORE_FETCH, NULL);
    assert_true(atomic_load(&stalls_left) < 0); /* it stalled, then fetched again */
    assert_true(atomic_load(&sh->assigned_calls[0]) >= 1);
    assert_true(harness_daemon_log_contains(&f->d, "removed: session timeout"));
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* A member (this process) stops polling; the daemon removes it after session_ms or
 * max_poll_ms, logging why; its late commit is refused; polling again rejoins it. */
static void stalled_member_is_fenced_and_rejoins(struct harness_fixture *f, int session_ms,
                                                 int max_poll_ms, const char *why)
{
    shoal_topic_config_t cfg = topic_cfg(4);
    shoal_topic_partition_offset_t late = {.topic = "work", .partition = 0, .offset = 1};
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    pid_t helper;
    int64_t t0;
    int rc;

    assert_int_equal(shoal_topic_create(f->c, "work", &cfg), 0);
    member_options(&o, "stall", 0);
    o.session_timeout_ms = session_ms;
    o.max_poll_interval_ms = max_poll_ms;
    assert_int_equal(open_member(&cl, &c, &o, "work"), 0);
    assert_true((helper = harness_fork(busy_member, NULL, 50)) > 0);
    assert_true(poll_until(c, split_two_two, 10000));
    int32_t mine = -1;
    for (int p = 0; p < 4 && mine < 0; p++)
        if (atomic_load(&sh->owner[p]) == (int32_t)getpid())
            mine = p;
    assert_true(mine >= 0);
    late.partition = mine;

    /* stall: the helper gets every partition once the daemon gives up on us */
    t0 = mono_ms();
    while (atomic_load(&sh->nassigned[1]) != 4 && mono_ms() - t0 < 5000)
        sleep_ms(10);
    assert_int_equal(atomic_load(&sh->nassigned[1]), 4);
    assert_true(mono_ms() - t0 >= 300);

    rc = shoal_commit_sync(c, &late, 1);
    assert_int_equal(rc, SHOAL_EGENERATION);
    assert_non_null(strstr(shoal_errmsg(), "not in group"));
    assert_true(harness_daemon_log_contains(&f->d, why));

    /* polling again rejoins and gets partitions back */
    a_calls_before = atomic_load(&sh->assigned_calls[0]);
    assert_true(poll_until(c, a_rejoined, 10000));
    atomic_store(&sh->done, 1);
    assert_int_equal(harness_wait(helper, 10000), 0);
    shoal_consumer_close(c);
    shoal_client_close(cl);
    /* No ownership check here: while it stalled, the fenced member still believed it owned
     * its partitions (it learns otherwise on its next poll), which is exactly the zombie
     * that generations fence: its commit above was refused. */
}

INTEG_TEST(test_member_past_max_poll_interval_loses_partitions_is_fenced_and_rejoins)
{
    stalled_member_is_fenced_and_rejoins(f, 10000, 700, "removed: max poll interval exceeded");
}

INTEG_TEST(test_member_silent_past_session_timeout_loses_partitions_and_rejoins)
{
    stalled_member_is_fenced_and_rejoins(f, 600, 30000, "removed: session timeout");
}

/* ------------------------------------------------------------------ async commits */

static _Atomic int commit_results[2]; /* [0] successes, [1] failures */

static void on_commit(void *arg, shoal_consumer_t *c, int status)
{
    (void)arg;
    (void)c;
    atomic_fetch_add(&commit_results[status == 0 ? 0 : 1], 1);
}

/* A member of group (reporting commits to cb) that has read the 8 records of a new
 * one-partition topic. */
static void member_of_eight(struct harness_fixture *f, const char *topic, const char *group,
                            shoal_commit_cb cb, shoal_client_t **cl, shoal_consumer_t **c)
{
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_consumer_options_t o;
    shoal_record_t recs[8];
    int got = 0;

    assert_int_equal(shoal_topic_create(f->c, topic, &cfg), 0);
    assert_int_equal(produce(f->c, topic, 0, 8), 0);
    member_options(&o, group, 0);
    o.on_commit = cb;
    assert_int_equal(open_member(cl, c, &o, topic), 0);
    for (int i = 0; i < 100 && got < 8; i++) {
        int n = shoal_poll(*c, recs, 8, 20);
        assert_true(n >= 0);
        got += n;
    }
    assert_int_equal(got, 8);
}

INTEG_TEST(test_async_commits_report_through_on_commit_and_are_stored)
{
    shoal_group_info_t *info;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[8];

    member_of_eight(f, "asy", "async", on_commit, &cl, &c);
    assert_int_equal(shoal_commit_async(c, NULL, 0), 0);
    assert_int_equal(shoal_poll(c, recs, 8, 250), 0); /* reads the response, heartbeats */
    assert_int_equal(atomic_load(&commit_results[0]), 1);
    assert_int_equal(atomic_load(&commit_results[1]), 0);
    assert_int_equal(shoal_group_describe(f->c, "async", &info), 0);
    assert_int_equal(info->offset_count, 1);
    assert_int_equal(info->offsets[0].committed, 8);
    shoal_group_info_free(info);
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* What a callback's own consumer refused it: close (it freed the consumer the call running
 * the callback still used) and poll (records the outer poll never saw); a library session
 * found the first under ASan. */
static _Atomic int inner_close_rc = 1, inner_poll_rc = 1;

static void close_inside(void *arg, shoal_consumer_t *c, int status)
{
    shoal_record_t rec;
    (void)arg;
    (void)status;
    atomic_store(&inner_close_rc, shoal_consumer_close(c));
    atomic_store(&inner_poll_rc, shoal_poll(c, &rec, 1, 0));
}

static void close_inside_assigned(void *arg, shoal_consumer_t *c,
                                  const shoal_topic_partition_t *tps, size_t n)
{
    (void)tps;
    (void)n;
    close_inside(arg, c, 0);
}

/* A consumer closed or polled from inside its own callback refuses with SHOAL_EINVAL and
 * goes on; closed after the call that ran the callback, it closes. */
INTEG_TEST(test_a_consumer_refuses_close_and_poll_inside_its_own_callback)
{
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[8];
    int got = 0;

    member_of_eight(f, "inside", "inside", close_inside, &cl, &c);
    assert_int_equal(shoal_commit_async(c, NULL, 0), 0);
    for (int i = 0; i < 20 && atomic_load(&inner_close_rc) == 1; i++)
        assert_true(shoal_poll(c, recs, 8, 50) >= 0);
    assert_int_equal(atomic_load(&inner_close_rc), SHOAL_EINVAL);
    assert_int_equal(atomic_load(&inner_poll_rc), SHOAL_EINVAL);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);

    atomic_store(&inner_close_rc, 1);
    atomic_store(&inner_poll_rc, 1);
    member_options(&o, "inside2", 0);
    o.on_assigned = close_inside_assigned;
    assert_int_equal(open_member(&cl, &c, &o, "inside"), 0);
    for (int i = 0; i < 100 && got < 8; i++) {
        int n = shoal_poll(c, recs, 8, 20);
        assert_true(n >= 0);
        got += n;
    }
    assert_int_equal(got, 8); /* the nested poll took none of them */
    assert_int_equal(atomic_load(&inner_close_rc), SHOAL_EINVAL);
    assert_int_equal(atomic_load(&inner_poll_rc), SHOAL_EINVAL);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

/* Asynchronous commits whose connection breaks before their answers (shoald stopped, then
 * killed) still each reach on_commit, with SHOAL_ECLOSED: an application counting its
 * callbacks used to wait for ever. */
INTEG_TEST(test_async_commits_cut_off_by_a_dead_daemon_still_report)
{
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[8];

    member_of_eight(f, "cut", "cutoff", on_commit, &cl, &c);
    atomic_store(&commit_results[0], 0);
    atomic_store(&commit_results[1], 0);
    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(shoal_commit_async(c, NULL, 0), 0);
    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    for (int i = 0; i < 20 && atomic_load(&commit_results[1]) < 3; i++)
        (void)shoal_poll(c, recs, 8, 50);
    assert_int_equal(atomic_load(&commit_results[0]), 0);
    assert_int_equal(atomic_load(&commit_results[1]), 3);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

static int commits_expected;

static bool commits_reported(void)
{
    return atomic_load(&commit_results[0]) + atomic_load(&commit_results[1]) == commits_expected;
}

static int32_t generation_of(shoal_client_t *c, const char *group);

/* Send n-entry async commits to the stopped daemon, each waiting the client's timeout_ms
 * at most for room: how many were sent (*accepted) and timed out (*timeouts); the longest
 * call. Only 0, SHOAL_ETIMEDOUT and (with the connection dropped) SHOAL_ECLOSED may come. */
static int64_t commit_into_stopped(shoal_consumer_t *c, const shoal_topic_partition_offset_t *o,
                                   size_t n, int tries, int *accepted, int *timeouts)
{
    int64_t worst = 0;

    *accepted = *timeouts = 0;
    for (int i = 0; i < tries; i++) {
        int64_t t0 = mono_ms();
        int rc = shoal_commit_async(c, o, n);
        worst = SHOAL_MAX(worst, mono_ms() - t0);
        *accepted += rc == 0;
        *timeouts += rc == SHOAL_ETIMEDOUT;
        assert_true(rc == 0 || rc == SHOAL_ETIMEDOUT || rc == SHOAL_ECLOSED);
    }
    return worst;
}

/* Asynchronous commits into a stopped daemon (SIGSTOP) fill the connection's socket: a
 * commit that no longer fits used to wait in sendmsg() for ever. It waits as long as a call
 * would (shortened here) and fails SHOAL_ETIMEDOUT. One that nothing of went leaves the
 * connection in step: once shoald goes on, every commit sent is answered and the member
 * stays in its generation. One that went out in part drops the connection, so every commit
 * still reaches on_commit (SHOAL_ECLOSED for those cut off), and the member joins again. */
INTEG_TEST(test_async_commits_into_a_stopped_daemon_end_at_their_deadline)
{
    static shoal_topic_partition_offset_t many[4000]; /* a frame of ~70 KiB */
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int timeouts, accepted;
    int64_t worst;
    int32_t gen;

    member_of_eight(f, "jam", "jammed", on_commit, &cl, &c);
    gen = generation_of(f->c, "jammed");
    for (size_t i = 0; i < 4000; i++)
        many[i] = (shoal_topic_partition_offset_t){.topic = "jam", .partition = 0, .offset = 8};
    atomic_store(&commit_results[0], 0);
    atomic_store(&commit_results[1], 0);
    cl->timeout_ms = 300;

    /* frames of ~5 KiB: the socket fills between two, nothing of the next goes */
    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    worst = commit_into_stopped(c, many, 300, 48, &accepted, &timeouts);
    print_message("48 commits of 5 KiB, shoald stopped: %d sent, %d timed out, longest %lld ms\n",
                  accepted, timeouts, (long long)worst);
    assert_true(worst < 1000);
    assert_true(timeouts >= 1);
    assert_int_equal(accepted + timeouts, 48); /* the connection stayed */
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    commits_expected = accepted;
    assert_true(poll_until(c, commits_reported, 5000));
    assert_int_equal(atomic_load(&commit_results[1]), 0);
    assert_int_equal(generation_of(f->c, "jammed"), gen);

    /* frames of ~70 KiB: one goes out in part */
    atomic_store(&commit_results[0], 0);
    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    worst = commit_into_stopped(c, many, 4000, 8, &accepted, &timeouts);
    cl->timeout_ms = 30000;
    print_message("8 commits of 70 KiB, shoald stopped: %d sent, %d timed out, longest %lld ms\n",
                  accepted, timeouts, (long long)worst);
    assert_true(worst < 1000);
    assert_true(timeouts >= 1);
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    commits_expected = accepted;
    assert_true(poll_until(c, commits_reported, 5000));
    assert_true(poll_until(c, holds_all_one, 5000));
    assert_int_equal(shoal_commit_sync(c, NULL, 0), 0);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

static int commit_order[64];
static _Atomic int commit_order_n;

static void on_commit_ordered(void *arg, shoal_consumer_t *c, int status)
{
    int i = atomic_fetch_add(&commit_order_n, 1);
    (void)arg;
    (void)c;
    if (i < 64)
        commit_order[i] = status;
}

/* The daemon parks a valid commit until its LMDB write and could answer a refused one at
 * once, ahead of it: the client took that for a broken stream and dropped its group
 * connection, losing the first commit's callback and the next commit. Responses now go
 * out in request order on every connection. */
INTEG_TEST(test_async_commits_answer_in_order_when_one_is_refused)
{
    shoal_client_t *cl;
    shoal_consumer_t *c;

    member_of_eight(f, "ord", "ordered", on_commit_ordered, &cl, &c);
    for (int round = 0; round < 20; round++) {
        shoal_topic_partition_offset_t mine = {.topic = "ord", .partition = 0, .offset = round % 9};
        shoal_topic_partition_offset_t not_mine = {.topic = "ord", .partition = 3, .offset = 1};
        atomic_store(&commit_order_n, 0);
        assert_int_equal(shoal_commit_async(c, &mine, 1), 0);
        assert_int_equal(shoal_commit_async(c, &not_mine, 1), 0);
        assert_int_equal(shoal_commit_sync(c, NULL, 0), 0); /* reads both answers first */
        assert_string_equal(shoal_errmsg(), "");
        assert_int_equal(atomic_load(&commit_order_n), 2);
        assert_int_equal(commit_order[0], 0);
        assert_int_equal(commit_order[1], SHOAL_ENOTASSIGNED);
    }
    /* and a connection's commits still share a transaction, the refused one in its turn
     * (the sync commit goes out without waiting for the async answers, and joins them) */
    assert_true(harness_daemon_log_contains(&f->d, "3 commits (2 offsets) in one transaction"));
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* ------------------------------------------------------------------ static membership */

struct helper_args {
    const char *group;
    const char *topic;
    const char *instance; /* group_instance_id, or NULL */
};

/* A dynamic member (index 1) that polls until told to stop. */
static int polling_member(void *arg)
{
    const struct helper_args *a = arg;
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[16];

    member_options(&o, a->group, 1);
    o.group_instance_id = a->instance;
    if (open_member(&cl, &c, &o, a->topic) < 0)
        return 10;
    while (!atomic_load(&sh->done))
        if (shoal_poll(c, recs, 16, 50) < 0)
            return 11;
    shoal_consumer_close(c);
    shoal_client_close(cl);
    return 0;
}

static bool both_hold_two(void)
{
    return atomic_load(&sh->nassigned[0]) == 2 && atomic_load(&sh->nassigned[1]) == 2;
}

static bool a_holds_two(void)
{
    return atomic_load(&sh->nassigned[0]) == 2;
}

static bool a_has_three(void)
{
    return atomic_load(&sh->nassigned[0]) == 3;
}

static int32_t generation_of(shoal_client_t *c, const char *group)
{
    shoal_group_info_t *info;
    int32_t gen;
    if (shoal_group_describe(c, group, &info) < 0)
        return -1;
    gen = info->generation;
    shoal_group_info_free(info);
    return gen;
}

INTEG_TEST(test_restarted_static_member_gets_its_partitions_back_without_a_rebalance)
{
    static const struct helper_args args = {.group = "statics", .topic = "st"};
    shoal_topic_config_t cfg = topic_cfg(4);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int32_t before[4], gen;
    int helper_calls;
    pid_t helper;

    assert_int_equal(shoal_topic_create(f->c, "st", &cfg), 0);
    member_options(&o, "statics", 0);
    o.group_instance_id = "static-a";
    assert_int_equal(open_member(&cl, &c, &o, "st"), 0);
    assert_true((helper = harness_fork(polling_member, (void *)&args, 50)) > 0);
    assert_true(poll_until(c, both_hold_two, 10000));
    for (int p = 0; p < 4; p++)
        before[p] = atomic_load(&sh->owner[p]) == (int32_t)getpid();
    helper_calls = atomic_load(&sh->assigned_calls[1]);
    gen = generation_of(f->c, "statics");

    /* the static member goes away (as if its process ended) and comes back */
    shoal_consumer_close(c);
    shoal_client_close(cl);
    sleep_ms(300);
    assert_int_equal(open_member(&cl, &c, &o, "st"), 0);
    assert_true(poll_until(c, a_holds_two, 5000));
    for (int p = 0; p < 4; p++)
        assert_int_equal(atomic_load(&sh->owner[p]) == (int32_t)getpid(), before[p]);
    assert_int_equal(atomic_load(&sh->assigned_calls[1]), helper_calls);
    assert_int_equal(generation_of(f->c, "statics"), gen);

    atomic_store(&sh->done, 1);
    assert_int_equal(harness_wait(helper, 10000), 0);
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* A static member whose process went keeps its place until its session timeout, so an
 * administrative change is refused: the refusal said its member was "still running". And
 * an asynchronous commit of a name that cannot be a topic is refused at once, as a
 * synchronous one is, not only in on_commit. */
INTEG_TEST(test_a_group_held_by_an_absent_static_member_says_so)
{
    const shoal_topic_partition_offset_t bad = {.topic = "a/b", .partition = 0, .offset = 0};
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t r;
    int rc = SHOAL_EGENERATION;

    assert_int_equal(shoal_topic_create(f->c, "away", &cfg), 0);
    member_options(&o, "aways", 0);
    o.group_instance_id = "away-1";
    o.session_timeout_ms = 30000;
    assert_int_equal(open_member(&cl, &c, &o, "away"), 0);
    for (int i = 0; i < 100 && rc != 0; i++) { /* until it has joined */
        assert_true(shoal_poll(c, &r, 1, 20) >= 0);
        rc = shoal_commit_sync(c, NULL, 0);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(shoal_commit_async(c, &bad, 1), SHOAL_EINVAL);
    assert_int_equal(shoal_commit_sync(c, &bad, 1), SHOAL_EINVAL);
    shoal_consumer_close(c);
    shoal_client_close(cl);
    assert_int_equal(shoal_group_delete(f->c, "aways"), SHOAL_EGROUPACTIVE);
    assert_non_null(strstr(shoal_errmsg(), "keeps the place of 1 static member whose process "
                                           "went away"));
}

static bool b_holds_two(void)
{
    return atomic_load(&sh->nassigned[1]) == 2;
}

/* Two live processes with one group_instance_id: the later takes the place and the earlier
 * is fenced for good (SHOAL_EFENCED from every poll and commit), instead of the two taking
 * it from each other every heartbeat and both reading the same partitions. */
INTEG_TEST(test_a_second_process_with_the_same_instance_id_fences_the_first_for_good)
{
    static const struct helper_args args = {.group = "twins", .topic = "tw", .instance = "twin"};
    shoal_topic_config_t cfg = topic_cfg(2);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[8];
    int64_t t0;
    pid_t twin;
    int rc = 0;

    assert_int_equal(shoal_topic_create(f->c, "tw", &cfg), 0);
    member_options(&o, "twins", 0);
    o.group_instance_id = "twin";
    assert_int_equal(open_member(&cl, &c, &o, "tw"), 0);
    assert_true(poll_until(c, a_holds_two, 10000));
    assert_true((twin = harness_fork(polling_member, (void *)&args, 50)) > 0);
    for (t0 = mono_ms(); rc >= 0 && mono_ms() - t0 < 5000;)
        rc = shoal_poll(c, recs, 8, 50);
    assert_int_equal(rc, SHOAL_EFENCED);
    assert_non_null(strstr(shoal_errmsg(), "group_instance_id 'twin'"));
    assert_int_equal(atomic_load(&sh->nassigned[0]), 0);
    assert_int_equal(shoal_poll(c, recs, 8, 50), SHOAL_EFENCED);
    assert_int_equal(shoal_commit_sync(c, NULL, 0), SHOAL_EFENCED);
    assert_non_null(strstr(shoal_errmsg(), "took this one's place"));
    sleep_ms(1000); /* heartbeats: before, each side took the place back from the other */
    assert_true(b_holds_two());
    assert_int_equal(atomic_load(&sh->assigned_calls[1]), 1);
    for (int p = 0; p < 2; p++)
        assert_int_equal(atomic_load(&sh->owner[p]), twin);

    atomic_store(&sh->done, 1);
    assert_int_equal(harness_wait(twin, 10000), 0);
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* ------------------------------------------------------------------ a stopped daemon */

/* Poll for ms with timeout_ms each; the longest poll, and the records read into *got. */
static int64_t worst_poll(shoal_consumer_t *c, int ms, int timeout_ms, int *got)
{
    shoal_record_t recs[8];
    int64_t t0 = mono_ms(), worst = 0;
    while (mono_ms() - t0 < ms) {
        int64_t t = mono_ms();
        int n = shoal_poll(c, recs, 8, timeout_ms);
        assert_true(n >= 0);
        *got += n;
        if (mono_ms() - t > worst)
            worst = mono_ms() - t;
    }
    return worst;
}

/* While shoald is stopped (SIGSTOP), a member's poll keeps to its timeout and reads its
 * partitions: its heartbeat stays pending and is answered once shoald goes on. Before,
 * poll waited up to 30 s for the heartbeat's answer, then returned SHOAL_ETIMEDOUT and
 * dropped the group connection (the member lost its partitions). commit_sync gives up after
 * its own timeout (30 s; shortened here) with SHOAL_ETIMEDOUT, and its late answer is read
 * and dropped later: the connection stays in step. */
INTEG_TEST(test_polls_keep_their_timeout_while_the_daemon_is_stopped)
{
    shoal_topic_config_t cfg = topic_cfg(2);
    shoal_consumer_options_t o;
    shoal_producer_t *p;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int64_t worst, t0;
    int32_t gen;
    int got = 0, rc;

    assert_int_equal(shoal_topic_create(f->c, "frozen", &cfg), 0);
    assert_int_equal(shoal_producer_open(f->c, "frozen", NULL, &p), 0);
    member_options(&o, "frozen", 0);
    o.heartbeat_interval_ms = 50;
    assert_int_equal(open_member(&cl, &c, &o, "frozen"), 0);
    assert_true(poll_until(c, a_holds_two, 5000));
    gen = generation_of(f->c, "frozen");

    for (int i = 0; i < 4; i++) { /* read while the daemon is stopped */
        shoal_message_t m = {.value = "x", .value_len = 1, .partition = i % 2};
        assert_int_equal(shoal_send(p, &m, NULL), 0);
    }
    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    worst = worst_poll(c, 1000, 100, &got);
    print_message("stopped: longest poll(100) %lld ms, %d records\n", (long long)worst, got);
    assert_true(worst < 300);
    assert_int_equal(got, 4);

    cl->timeout_ms = 300;
    t0 = mono_ms();
    rc = shoal_commit_sync(c, NULL, 0);
    cl->timeout_ms = 30000;
    assert_int_equal(rc, SHOAL_ETIMEDOUT);
    assert_true(mono_ms() - t0 >= 300 && mono_ms() - t0 < 1000);
    assert_true(worst_poll(c, 300, 100, &got) < 300); /* no reconnecting */
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);

    (void)worst_poll(c, 300, 50, &got);
    assert_int_equal(shoal_commit_sync(c, NULL, 0), 0);
    assert_true(a_holds_two());
    assert_int_equal(generation_of(f->c, "frozen"), gen);
    assert_false(harness_daemon_log_contains(&f->d, "removed"));
    shoal_producer_close(p);
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* A daemon stopped longer than a member's session timeout (SIGSTOP, a suspended VM, a
 * debugger) did not hear the member's heartbeats because it was not running, not because
 * the member went quiet: the member keeps its place. Before, the first pass after SIGCONT
 * could expire members whose queued heartbeats it had not read yet (a rebalance for
 * nothing). */
INTEG_TEST(test_a_stopped_daemon_does_not_expire_its_members)
{
    shoal_topic_config_t cfg = topic_cfg(2);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int32_t gen;
    int got = 0;

    assert_int_equal(shoal_topic_create(f->c, "napping", &cfg), 0);
    member_options(&o, "napping", 0);
    o.session_timeout_ms = 600;
    o.heartbeat_interval_ms = 100;
    assert_int_equal(open_member(&cl, &c, &o, "napping"), 0);
    assert_true(poll_until(c, a_holds_two, 5000));
    gen = generation_of(f->c, "napping");

    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    (void)worst_poll(c, 1500, 100, &got); /* 2.5 session timeouts */
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    (void)worst_poll(c, 500, 50, &got);
    assert_true(a_holds_two());
    assert_int_equal(generation_of(f->c, "napping"), gen);
    assert_false(harness_daemon_log_contains(&f->d, "session timeout"));
    assert_true(harness_daemon_log_contains(&f->d, "did not run for"));
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* Poll (timeout_ms each) until the records before end have come or ms have passed. Each
 * record must be the next offset, *next, which moves on. A poll may fail only as it does
 * while the group connection is broken (SHOAL_ECLOSED, SHOAL_ENODAEMON). Returns the
 * longest poll, in ms. */
static int64_t read_in_order(shoal_consumer_t *c, int64_t *next, int64_t end, int ms,
                             int timeout_ms)
{
    shoal_record_t recs[64];
    int64_t t0 = mono_ms(), worst = 0;
    while (*next < end && mono_ms() - t0 < ms) {
        int64_t t = mono_ms();
        int n = shoal_poll(c, recs, 64, timeout_ms);
        if (mono_ms() - t > worst)
            worst = mono_ms() - t;
        if (n < 0 && n != SHOAL_ECLOSED && n != SHOAL_ENODAEMON)
            fprintf(stderr, "poll: %s (%s)\n", shoal_err_name(n), shoal_errmsg());
        assert_true(n >= 0 || n == SHOAL_ECLOSED || n == SHOAL_ENODAEMON);
        for (int i = 0; i < n; i++)
            assert_int_equal(recs[i].offset, (*next)++);
    }
    return worst;
}

/* Subscribing opens the group connection without waiting for the handshake's answer: with
 * shoald stopped it returns at once (it waited 30 s, then failed SHOAL_ETIMEDOUT), the polls
 * keep to their timeout, and once shoald goes on the member joins and reads. */
INTEG_TEST(test_subscribing_while_the_daemon_is_stopped_does_not_wait)
{
    const char *topics[] = {"later"};
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int64_t t0, took, worst, next = 0;

    assert_int_equal(shoal_topic_create(f->c, "later", &cfg), 0);
    assert_int_equal(produce(f->c, "later", 0, 10), 0);
    member_options(&o, "latecomers", 0);
    assert_int_equal(shoal_client_open(f->d.socket, &cl), 0);
    assert_int_equal(shoal_consumer_open(cl, &o, &c), 0);
    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    t0 = mono_ms();
    assert_int_equal(shoal_consumer_subscribe(c, topics, 1), 0);
    took = mono_ms() - t0;
    worst = read_in_order(c, &next, 10, 600, 100);
    print_message("subscribe with shoald stopped: %lld ms, then longest poll(100) %lld ms\n",
                  (long long)took, (long long)worst);
    assert_true(took < 500);
    assert_true(worst < 400);
    assert_int_equal(next, 0);
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    (void)read_in_order(c, &next, 10, 5000, 50);
    assert_int_equal(next, 10);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

static pid_t daemon_to_stop;
static _Atomic int stops;

/* In a rebalance round: stop shoald (SIGSTOP), the first time. */
static void stop_daemon_once(void)
{
    if (atomic_fetch_add(&stops, 1) == 0)
        kill(daemon_to_stop, SIGSTOP);
}

/* Poll (timeout_ms each) for ms, or until both partitions' records before 10 have come,
 * each the next offset of its partition (next[]). Returns the longest poll, in ms. */
static int64_t read_two_in_order(shoal_consumer_t *c, int64_t next[2], int ms, int timeout_ms)
{
    shoal_record_t recs[16];
    int64_t t0 = mono_ms(), worst = 0;
    while ((next[0] < 10 || next[1] < 10) && mono_ms() - t0 < ms) {
        int64_t t = mono_ms();
        int n = shoal_poll(c, recs, 16, timeout_ms);
        worst = SHOAL_MAX(worst, mono_ms() - t);
        assert_true(n >= 0);
        for (int i = 0; i < n; i++)
            assert_int_equal(recs[i].offset, next[recs[i].partition]++);
    }
    return worst;
}

/* shoald stops (SIGSTOP) in the middle of a member's rebalance, once the assignment has
 * come: at the hook, before the offset fetch or before the attaches. The member's polls
 * keep to their timeout and read nothing (a poll waited 30 s for the fetch, and 30 s for
 * each attach); once shoald goes on, the member reads each partition from its committed
 * offset. */
static void stopped_in_a_round(struct harness_fixture *f, enum cgroup_round_point at)
{
    shoal_topic_partition_offset_t at3[] = {{"paused", 0, 3}, {"paused", 1, 3}};
    shoal_topic_config_t cfg = topic_cfg(2);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int64_t worst, next[2] = {3, 3};

    assert_int_equal(shoal_topic_create(f->c, "paused", &cfg), 0);
    assert_int_equal(produce(f->c, "paused", 0, 10), 0);
    assert_int_equal(produce(f->c, "paused", 1, 10), 0);
    member_options(&o, "pausers", 0);
    assert_int_equal(open_member(&cl, &c, &o, "paused"), 0);
    assert_true(poll_until(c, a_holds_two, 5000));
    assert_int_equal(shoal_commit_sync(c, at3, 2), 0);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);

    daemon_to_stop = f->d.pid;
    atomic_store(&stops, 0);
    hook_round(at, stop_daemon_once);
    assert_int_equal(open_member(&cl, &c, &o, "paused"), 0);
    worst = read_two_in_order(c, next, 1000, 100);
    hook_round(at, NULL);
    print_message("stopped in the round: longest poll(100) %lld ms\n", (long long)worst);
    assert_int_equal(atomic_load(&stops), 1);
    assert_true(worst < 300);
    assert_true(next[0] == 3 && next[1] == 3);
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    (void)read_two_in_order(c, next, 5000, 50);
    assert_true(next[0] == 10 && next[1] == 10);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

INTEG_TEST(test_a_daemon_stopped_before_the_offset_fetch_holds_no_poll)
{
    stopped_in_a_round(f, CGROUP_BEFORE_FETCH);
}

INTEG_TEST(test_a_daemon_stopped_before_the_attaches_holds_no_poll)
{
    stopped_in_a_round(f, CGROUP_BEFORE_ATTACH);
}

/* A member that polls with timeout 0 (a busy loop doing other work between polls) gets
 * through its rebalance: each poll takes the round a step further without waiting, and an
 * attach shoald answers after the poll returned is served by its late answer at the next
 * poll (were it asked again, every poll's attach would be late in turn). */
INTEG_TEST(test_a_member_polling_without_waiting_gets_its_partitions)
{
    shoal_topic_config_t cfg = topic_cfg(2);
    shoal_consumer_options_t o;
    shoal_record_t recs[16];
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int64_t t0 = mono_ms();
    int polls = 0, got = 0;

    assert_int_equal(shoal_topic_create(f->c, "eager", &cfg), 0);
    assert_int_equal(produce(f->c, "eager", 0, 10), 0);
    assert_int_equal(produce(f->c, "eager", 1, 10), 0);
    member_options(&o, "spinners", 0);
    assert_int_equal(open_member(&cl, &c, &o, "eager"), 0);
    while (got < 20 && mono_ms() - t0 < 5000) {
        int n = shoal_poll(c, recs, 16, 0);
        assert_true(n >= 0);
        got += n;
        polls++;
        sleep_ms(1);
    }
    print_message("%d records after %d polls(0), %lld ms\n", got, polls,
                  (long long)(mono_ms() - t0));
    assert_int_equal(got, 20);
    assert_true(polls < 1000); /* ~10 here; each attach asked anew took thousands */
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

static shoal_client_t *deleter;

/* In a rebalance round: delete topic "doomed", the first time. */
static void delete_doomed_once(void)
{
    if (atomic_fetch_add(&stops, 1) == 0)
        assert_int_equal(shoal_topic_delete(deleter, "doomed"), 0);
}

/* A topic deleted between a member's offset fetch and its attaches fails that round: one
 * poll says why (SHOAL_ENOTOPIC), and the next round assigns what is left, which the
 * member reads from the start exactly once ("alive"'s partitions, attached before the
 * failure, are detached and attached again, not read twice). */
INTEG_TEST(test_a_topic_deleted_while_attaching_fails_that_round_only)
{
    const char *topics[] = {"alive", "doomed"};
    shoal_topic_config_t cfg = topic_cfg(2);
    shoal_consumer_options_t o;
    shoal_record_t recs[16];
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int64_t t0, next[2] = {0, 0};
    int failures = 0, last_failure = 0;

    assert_int_equal(shoal_topic_create(f->c, "alive", &cfg), 0);
    assert_int_equal(shoal_topic_create(f->c, "doomed", &cfg), 0);
    assert_int_equal(produce(f->c, "alive", 0, 5), 0);
    assert_int_equal(produce(f->c, "alive", 1, 5), 0);
    member_options(&o, "deleters", 0);
    o.heartbeat_interval_ms = 50;
    deleter = f->c;
    atomic_store(&stops, 0);
    hook_round(CGROUP_BEFORE_ATTACH, delete_doomed_once);
    assert_int_equal(shoal_client_open(f->d.socket, &cl), 0);
    assert_int_equal(shoal_consumer_open(cl, &o, &c), 0);
    assert_int_equal(shoal_consumer_subscribe(c, topics, 2), 0);
    for (t0 = mono_ms(); (next[0] < 5 || next[1] < 5) && mono_ms() - t0 < 5000;) {
        int n = shoal_poll(c, recs, 16, 50);
        if (n < 0) {
            failures++;
            last_failure = n;
        }
        for (int i = 0; i < n; i++) {
            assert_string_equal(recs[i].topic, "alive");
            assert_int_equal(recs[i].offset, next[recs[i].partition]++);
        }
    }
    hook_round(CGROUP_BEFORE_ATTACH, NULL);
    print_message("%d failed polls (the last %s), then %lld + %lld records\n", failures,
                  shoal_err_name(last_failure), (long long)next[0], (long long)next[1]);
    assert_true(atomic_load(&stops) >= 1); /* the hook runs in every round */
    assert_int_equal(failures, 1);
    assert_int_equal(last_failure, SHOAL_ENOTOPIC);
    assert_true(next[0] == 5 && next[1] == 5);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

/* shoald was restarted and stopped (SIGSTOP) before it answered anybody: the member's group
 * connection broke with the first daemon, and its new one waits in the stopped daemon's
 * listen backlog for the answer to its handshake. Its polls keep to their timeout meanwhile
 * (before, the handshake inside poll waited 30 s); once shoald goes on, the member rejoins
 * and reads on from its committed offset: nothing lost, nothing read twice but what came
 * after that offset (at least once). */
INTEG_TEST(test_a_poll_reconnecting_to_a_stopped_daemon_keeps_its_timeout)
{
    shoal_topic_partition_offset_t half = {.topic = "back", .partition = 0, .offset = 10};
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_consumer_options_t o;
    shoal_group_info_t *info;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int64_t next = 0, worst;

    assert_int_equal(shoal_topic_create(f->c, "back", &cfg), 0);
    assert_int_equal(produce(f->c, "back", 0, 20), 0);
    member_options(&o, "returners", 0);
    assert_int_equal(open_member(&cl, &c, &o, "back"), 0);
    (void)read_in_order(c, &next, 20, 5000, 20);
    assert_int_equal(next, 20);
    assert_int_equal(shoal_commit_sync(c, &half, 1), 0);

    shoal_client_close(f->c);
    f->c = NULL;
    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    worst = read_in_order(c, &next, INT64_MAX, 1500, 200);
    print_message("reconnecting to a stopped daemon: longest poll(200) %lld ms\n",
                  (long long)worst);
    assert_true(worst < 2000);
    assert_int_equal(next, 20);
    assert_int_equal(atomic_load(&sh->nassigned[0]), 0); /* lost with the first daemon */

    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    next = 10; /* the committed offset */
    (void)read_in_order(c, &next, 20, 5000, 50);
    assert_int_equal(next, 20);
    assert_int_equal(shoal_client_open(f->d.socket, &f->c), 0);
    assert_int_equal(produce(f->c, "back", 0, 5), 0);
    (void)read_in_order(c, &next, 25, 5000, 50);
    assert_int_equal(next, 25);
    assert_int_equal(shoal_group_describe(f->c, "returners", &info), 0);
    assert_int_equal(info->member_count, 1);
    assert_int_equal(info->members[0].assigned_count, 1);
    shoal_group_info_free(info);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

/* The group's committed offset of partition p of topic (NULL: of its last topic): -1 when
 * none, -2 when the group is unknown. */
static int64_t committed_of_topic(shoal_client_t *c, const char *group, const char *topic,
                                  int32_t p)
{
    shoal_group_info_t *info;
    int64_t off = -1;
    if (shoal_group_describe(c, group, &info) < 0)
        return -2;
    for (size_t i = 0; i < info->offset_count; i++)
        if (info->offsets[i].partition == p && (!topic || !strcmp(info->offsets[i].topic, topic)))
            off = info->offsets[i].committed;
    shoal_group_info_free(info);
    return off;
}

static int64_t committed_of_partition(shoal_client_t *c, const char *group, int32_t p)
{
    return committed_of_topic(c, group, NULL, p);
}

static int64_t committed_of(shoal_client_t *c, const char *group)
{
    return committed_of_partition(c, group, 0);
}

/* A member holds a partition of a topic that is deleted and at once created again under
 * its name, with as many partitions: its commit of a position in the old topic is refused
 * (it was taken for the new one, whose readers would then skip records), and the group
 * notices the new topic however quickly it came (before, only a change in the partition
 * count, seen by a check every 200 ms, did): the member is assigned it and reads it from
 * its start. */
INTEG_TEST(test_a_member_cannot_commit_into_a_topic_created_again_under_its_name)
{
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_topic_partition_offset_t old = {.topic = "anew", .partition = 0, .offset = 3};
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[16];
    int64_t first = -1, t0;
    int got = 0;

    assert_int_equal(shoal_topic_create(f->c, "anew", &cfg), 0);
    assert_int_equal(produce(f->c, "anew", 0, 3), 0);
    member_options(&o, "renewers", 0);
    o.heartbeat_interval_ms = 50;
    assert_int_equal(open_member(&cl, &c, &o, "anew"), 0);
    for (t0 = mono_ms(); mono_ms() - t0 < 5000 && got < 3;)
        got += polled(shoal_poll(c, recs, 16, 20));
    assert_int_equal(got, 3);

    assert_int_equal(shoal_topic_delete(f->c, "anew"), 0);
    assert_int_equal(shoal_topic_create(f->c, "anew", &cfg), 0);
    assert_int_equal(produce(f->c, "anew", 0, 5), 0);
    assert_int_equal(shoal_commit_sync(c, &old, 1), SHOAL_ENOTOPIC);
    assert_non_null(strstr(shoal_errmsg(), "another topic created since"));
    assert_int_equal(committed_of(f->c, "renewers"), -1);

    for (t0 = mono_ms(), got = 0; mono_ms() - t0 < 5000 && got < 5;) {
        int n = shoal_poll(c, recs, 16, 20);
        if (n > 0 && first < 0)
            first = recs[0].offset;
        got += SHOAL_MAX(n, 0);
    }
    assert_int_equal(got, 5);
    assert_int_equal(first, 0);
    assert_true(harness_daemon_log_contains(&f->d, "group renewers: rebalance"));
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* shoald stops as a member's rebalance begins (a topic it subscribes to was created), at
 * the hook before the commit of its positions (auto-commit): the polls keep to their
 * timeout and read nothing (the commit waited 30 s inside one, before the join was even
 * sent). Then either shoald goes on, and the commit is stored and the round ends; or the
 * member closes first: close waits for the commit's answer for the session timeout, then
 * says it did not come (SHOAL_ETIMEDOUT), and the commit is stored once shoald goes on. */
static void stopped_as_a_round_begins(struct harness_fixture *f, bool close_first)
{
    const char *topics[] = {"first", "second"};
    shoal_topic_config_t cfg = topic_cfg(2);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int64_t worst, t0, next[2] = {0, 0};
    int got = 0;

    assert_int_equal(shoal_topic_create(f->c, "first", &cfg), 0);
    assert_int_equal(produce(f->c, "first", 0, 10), 0);
    assert_int_equal(produce(f->c, "first", 1, 10), 0);
    member_options(&o, "starters", 0);
    o.auto_commit = true;
    o.auto_commit_interval_ms = 600000; /* only the round commits */
    o.heartbeat_interval_ms = 50;
    o.session_timeout_ms = 600; /* close's wait */
    assert_int_equal(shoal_client_open(f->d.socket, &cl), 0);
    assert_int_equal(shoal_consumer_open(cl, &o, &c), 0);
    assert_int_equal(shoal_consumer_subscribe(c, topics, 2), 0);
    (void)read_two_in_order(c, next, 5000, 50);
    assert_true(next[0] == 10 && next[1] == 10);

    daemon_to_stop = f->d.pid;
    atomic_store(&stops, 0);
    hook_round(CGROUP_BEFORE_COMMIT, stop_daemon_once);
    assert_int_equal(shoal_topic_create(f->c, "second", &cfg), 0);
    for (t0 = mono_ms(); atomic_load(&stops) == 0 && mono_ms() - t0 < 5000;)
        assert_true(worst_poll(c, 100, 50, &got) < 300);
    assert_int_equal(atomic_load(&stops), 1);
    worst = worst_poll(c, 1000, 100, &got);
    hook_round(CGROUP_BEFORE_COMMIT, NULL);
    print_message("stopped as the round began: longest poll(100) %lld ms\n", (long long)worst);
    assert_true(worst < 300);
    assert_int_equal(got, 0);
    if (close_first) {
        t0 = mono_ms();
        assert_int_equal(shoal_consumer_close(c), SHOAL_ETIMEDOUT);
        assert_non_null(strstr(shoal_errmsg(), "may not be committed"));
        assert_true(mono_ms() - t0 >= 600 && mono_ms() - t0 < 3000);
        c = NULL;
    }
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    if (c) /* first's two partitions and second's two */
        assert_true(poll_until(c, holds_all_four, 5000));
    for (t0 = mono_ms(); committed_of_topic(f->c, "starters", "first", 1) != 10;)
        assert_true(mono_ms() - t0 < 5000);
    assert_int_equal(committed_of_topic(f->c, "starters", "first", 0), 10);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

INTEG_TEST(test_a_daemon_stopped_as_a_round_begins_holds_no_poll)
{
    stopped_as_a_round_begins(f, false);
}

INTEG_TEST(test_close_as_a_round_begins_with_the_daemon_stopped_waits_its_time_only)
{
    stopped_as_a_round_begins(f, true);
}

/* close commits the positions (auto-commit) and leaves the group, waiting for shoald for
 * the session timeout at most: with shoald stopped it gives the commit up then, returns
 * SHOAL_ETIMEDOUT with a detail, and frees everything all the same (the ASan build checks
 * for leaks). Before, it waited 30 s and could not say that the commit was not made. */
INTEG_TEST(test_close_gives_its_commit_up_after_the_session_timeout_while_the_daemon_is_stopped)
{
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int64_t next = 0, t0, took;
    int rc;

    assert_int_equal(shoal_topic_create(f->c, "bye", &cfg), 0);
    assert_int_equal(produce(f->c, "bye", 0, 8), 0);
    member_options(&o, "leavers", 0);
    o.auto_commit = true;
    o.session_timeout_ms = 600;
    o.heartbeat_interval_ms = 100;

    /* shoald answers: close commits, and says so */
    assert_int_equal(open_member(&cl, &c, &o, "bye"), 0);
    (void)read_in_order(c, &next, 8, 5000, 20);
    assert_int_equal(next, 8);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
    assert_int_equal(committed_of(f->c, "leavers"), 8);

    /* shoald stopped: close gives up after the session timeout */
    assert_int_equal(produce(f->c, "bye", 0, 8), 0);
    assert_int_equal(open_member(&cl, &c, &o, "bye"), 0);
    (void)read_in_order(c, &next, 16, 5000, 20);
    assert_int_equal(next, 16);
    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    t0 = mono_ms();
    rc = shoal_consumer_close(c);
    took = mono_ms() - t0;
    print_message("close with shoald stopped: %lld ms, %s\n", (long long)took, shoal_err_name(rc));
    assert_true(took < 2000);
    assert_int_equal(rc, SHOAL_ETIMEDOUT);
    assert_non_null(strstr(shoal_errmsg(), "did not answer"));
    assert_int_equal(atomic_load(&sh->nassigned[0]), 0); /* on_revoked ran */
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    shoal_client_close(cl);
}

/* n records of 100 bytes to partition 0 of topic, acknowledged on disk: with 64 KiB
 * segments behind a two-slot ring, the first ones are then on disk only. */
static int produce_to_disk(shoal_client_t *c, const char *topic, int n)
{
    shoal_producer_options_t po;
    shoal_message_t m[100];
    shoal_producer_t *p;
    char value[100];
    int rc;

    memset(value, 'd', sizeof(value));
    for (int i = 0; i < 100; i++)
        m[i] = (shoal_message_t){.value = value, .value_len = sizeof(value), .partition = 0};
    shoal_producer_options_init(&po);
    po.acks = SHOAL_ACKS_DISK;
    if ((rc = shoal_producer_open(c, topic, &po, &p)) < 0)
        return rc;
    for (int i = 0; i < n && rc == 0; i += 100)
        rc = shoal_send_batch(p, m, (size_t)(n - i < 100 ? n - i : 100), NULL);
    shoal_producer_close(p);
    return rc;
}

/* A member whose position is on disk asks shoald for the segment that holds it: with
 * shoald stopped, its polls keep to their timeout (before, the lookup waited 30 s and poll
 * failed SHOAL_ETIMEDOUT), and once shoald goes on the member reads the records from
 * disk, from where it was, without a rebalance. */
INTEG_TEST(test_a_poll_reading_from_disk_keeps_its_timeout_while_the_daemon_is_stopped)
{
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int64_t next = 0, worst;
    int32_t gen;

    cfg.segment_bytes = 64u << 10;
    cfg.max_record_bytes = 16u << 10;
    assert_int_equal(shoal_topic_create(f->c, "deep", &cfg), 0);
    assert_int_equal(produce_to_disk(f->c, "deep", 2000), 0);
    member_options(&o, "divers", 0);
    o.auto_offset_reset = SHOAL_OFFSET_RESET_LATEST;
    assert_int_equal(open_member(&cl, &c, &o, "deep"), 0);
    assert_true(poll_until(c, holds_all_one, 5000));
    gen = generation_of(f->c, "divers");

    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    assert_int_equal(shoal_consumer_seek(c, "deep", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    worst = read_in_order(c, &next, 2000, 1000, 200);
    print_message("disk lookups with shoald stopped: longest poll(200) %lld ms\n",
                  (long long)worst);
    assert_true(worst < 2000);
    assert_int_equal(next, 0);
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);

    (void)read_in_order(c, &next, 2000, 10000, 200);
    assert_int_equal(next, 2000);
    assert_int_equal(generation_of(f->c, "divers"), gen);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

/* The same for a consumer whose partition was assigned by hand, on its own client: its
 * polls keep to their timeout while shoald, stopped, does not answer its segment lookups,
 * and it reads every record from disk once shoald goes on. */
INTEG_TEST(test_a_plain_consumer_reading_from_disk_keeps_its_timeout_while_the_daemon_is_stopped)
{
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int64_t next = 0, worst;

    cfg.segment_bytes = 64u << 10;
    cfg.max_record_bytes = 16u << 10;
    assert_int_equal(shoal_topic_create(f->c, "shallow", &cfg), 0);
    assert_int_equal(produce_to_disk(f->c, "shallow", 2000), 0);
    shoal_consumer_options_init(&o);
    assert_int_equal(shoal_client_open(sock_path, &cl), 0);
    assert_int_equal(shoal_consumer_open(cl, &o, &c), 0);
    assert_int_equal(shoal_consumer_assign(c, "shallow", NULL, 0), 0);

    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    assert_int_equal(shoal_consumer_seek(c, "shallow", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    worst = read_in_order(c, &next, 2000, 1000, 200);
    print_message("plain consumer, shoald stopped: longest poll(200) %lld ms\n", (long long)worst);
    assert_true(worst < 2000);
    assert_int_equal(next, 0);
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);

    (void)read_in_order(c, &next, 2000, 10000, 200);
    assert_int_equal(next, 2000);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

/* Two segment lookups on one client: the first goes late while shoald is stopped, and the
 * second, asked once shoald goes on, reads the first's answer before its own. That answer
 * is kept for the first's next try, which it serves without a wait (a consumer's
 * partitions below their rings take turns so). Before, it was dropped: each partition's
 * lookup threw the other's answer away and asked again. */
INTEG_TEST(test_a_late_segment_lookups_answer_serves_its_next_try)
{
    shoal_topic_config_t cfg = topic_cfg(1);
    client_segment_t first, second;

    cfg.segment_bytes = 64u << 10;
    cfg.max_record_bytes = 16u << 10;
    assert_int_equal(shoal_topic_create(f->c, "kept", &cfg), 0);
    assert_int_equal(produce_to_disk(f->c, "kept", 2000), 0);

    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    assert_int_equal(
        client_segment_open_until(f->c, "kept", 0, 0, shoal__mono_ns() + 50000000, &first),
        SHOAL_ETIMEDOUT);
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    usleep(200000); /* its answer arrives */
    assert_int_equal(
        client_segment_open_until(f->c, "kept", 0, 1500, shoal__mono_ns() + 5000000000ll, &second),
        0);
    assert_int_equal(client_segment_open_until(f->c, "kept", 0, 0, shoal__mono_ns(), &first), 0);
    assert_int_equal(first.base, 0);
    assert_true(second.base > 0 && second.base <= 1500);
    client_segment_close(&first);
    client_segment_close(&second);
}

/* ------------------------------------------------------------------ fork */

static int close_inherited_member(void *arg)
{
    shoal_consumer_close(arg);
    return 0;
}

/* A child of fork() that closes a group consumer it inherited does not take its parent out
 * of the group: no leave on the parent's connection, no on_revoked, no rebalance. */
INTEG_TEST(test_a_child_closing_an_inherited_member_leaves_the_parent_in_the_group)
{
    shoal_topic_config_t cfg = topic_cfg(2);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[8];
    int32_t gen;
    int calls;
    pid_t pid;

    assert_int_equal(shoal_topic_create(f->c, "fk", &cfg), 0);
    member_options(&o, "forks", 0);
    assert_int_equal(open_member(&cl, &c, &o, "fk"), 0);
    assert_true(poll_until(c, a_holds_two, 10000));
    gen = generation_of(f->c, "forks");
    calls = atomic_load(&sh->assigned_calls[0]);

    assert_true((pid = harness_fork(close_inherited_member, c, 10)) > 0);
    assert_int_equal(harness_wait(pid, 5000), 0);
    for (int64_t t0 = mono_ms(); mono_ms() - t0 < 500;) /* heartbeats */
        assert_true(shoal_poll(c, recs, 8, 50) >= 0);
    assert_int_equal(generation_of(f->c, "forks"), gen);
    assert_int_equal(atomic_load(&sh->nassigned[0]), 2);
    assert_int_equal(atomic_load(&sh->assigned_calls[0]), calls);
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* ------------------------------------------------------------------ topics appearing */

INTEG_TEST(test_subscription_to_a_topic_created_later_gets_its_partitions)
{
    shoal_topic_config_t cfg = topic_cfg(2);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;

    member_options(&o, "early", 0);
    assert_int_equal(open_member(&cl, &c, &o, "later"), 0);
    assert_false(poll_until(c, a_holds_two, 300));
    assert_int_equal(shoal_topic_create(f->c, "later", &cfg), 0);
    assert_true(poll_until(c, a_holds_two, 3000));
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* ------------------------------------------------------------------ a custom assignor */

static _Atomic int custom_calls;

/* Every partition to the last member. */
static int assign_to_last(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out)
{
    (void)arg;
    atomic_fetch_add(&custom_calls, 1);
    for (size_t t = 0; t < in->topic_count; t++)
        for (uint32_t p = 0; p < in->topics[t].partitions; p++) {
            int rc =
                shoal_assign_output_add(out, in->member_count - 1, in->topics[t].topic, (int32_t)p);
            if (rc < 0)
                return rc;
        }
    return 0;
}

INTEG_TEST(test_an_application_assignor_is_used_and_a_member_without_a_common_one_is_refused)
{
    static const shoal_assignor_t mine = {.name = "to-last", .assign = assign_to_last};
    const shoal_assignor_t *only_mine[] = {&mine};
    const shoal_assignor_t *only_range[] = {shoal_assignor_builtin("range")};
    shoal_topic_config_t cfg = topic_cfg(3);
    shoal_consumer_options_t o;
    shoal_group_info_t *info;
    shoal_client_t *cl, *cl2;
    shoal_consumer_t *c, *c2;
    shoal_record_t recs[4];

    assert_non_null(only_range[0]);
    assert_int_equal(shoal_topic_create(f->c, "cus", &cfg), 0);
    member_options(&o, "custom", 0);
    o.assignors = only_mine;
    o.assignor_count = 1;
    assert_int_equal(open_member(&cl, &c, &o, "cus"), 0);
    assert_true(poll_until(c, a_has_three, 5000));
    assert_true(atomic_load(&custom_calls) >= 1);
    assert_int_equal(shoal_group_describe(f->c, "custom", &info), 0);
    assert_string_equal(info->protocol, "to-last");
    shoal_group_info_free(info);

    member_options(&o, "custom", 1);
    o.assignors = only_range;
    o.assignor_count = 1;
    assert_int_equal(open_member(&cl2, &c2, &o, "cus"), 0);
    assert_int_equal(shoal_poll(c2, recs, 4, 2000), SHOAL_ENOASSIGNOR);
    shoal_consumer_close(c2);
    shoal_client_close(cl2);
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* How many of topic's first n partitions c holds. */
static int held(shoal_consumer_t *c, const char *topic, int n)
{
    int k = 0;
    for (int p = 0; p < n; p++)
        k += shoal_consumer_position(c, topic, p) >= 0;
    return k;
}

/* Poll c until it has read want records of topic (any other fails the test), up to 10 s. */
static void read_topic(shoal_consumer_t *c, const char *topic, int want)
{
    shoal_record_t recs[16];
    int got = 0;

    for (int64_t t0 = mono_ms(); got < want && mono_ms() - t0 < 10000;) {
        int n = polled(shoal_poll(c, recs, 16, 20));
        for (int i = 0; i < n; i++, got++)
            assert_string_equal(recs[i].topic, topic);
    }
    assert_int_equal(got, want);
}

/* Kafka's unsubscribe(): the member leaves at once (the group is left without members,
 * not after a session timeout), on_revoked sees its partitions, auto-commit commits what
 * it read; then the consumer subscribes to another topic, and after a second unsubscribe
 * reads a partition assigned by hand. Before, a consumer could subscribe once, and a group
 * consumer's poll refused partitions assigned by hand. */
INTEG_TEST(test_unsubscribe_leaves_the_group_and_frees_the_consumer)
{
    shoal_topic_config_t cfg = topic_cfg(2);
    const char *left[] = {"left"}, *right[] = {"right"};
    shoal_group_info_t *info;
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int32_t zero = 0;

    assert_int_equal(shoal_topic_create(f->c, "left", &cfg), 0);
    assert_int_equal(shoal_topic_create(f->c, "right", &cfg), 0);
    for (int32_t p = 0; p < 2; p++) {
        assert_int_equal(produce(f->c, "left", p, 10), 0);
        assert_int_equal(produce(f->c, "right", p, 5), 0);
    }
    member_options(&o, "movers", 0);
    o.auto_commit = true;
    assert_int_equal(shoal_client_open(sock_path, &cl), 0);
    assert_int_equal(shoal_consumer_open(cl, &o, &c), 0);
    assert_int_equal(shoal_consumer_unsubscribe(c), SHOAL_EINVAL);
    assert_int_equal(shoal_consumer_subscribe(c, left, 1), 0);
    read_topic(c, "left", 20);
    assert_int_equal(atomic_load(&sh->nassigned[0]), 2);

    assert_int_equal(shoal_consumer_unsubscribe(c), 0);
    assert_int_equal(atomic_load(&sh->nassigned[0]), 0); /* on_revoked */
    assert_int_equal(consumer__assigned_count(c), 0);
    assert_int_equal(committed_of_topic(f->c, "movers", "left", 0), 10);
    assert_int_equal(committed_of_topic(f->c, "movers", "left", 1), 10);
    assert_int_equal(shoal_group_describe(f->c, "movers", &info), 0);
    assert_int_equal(info->member_count, 0);
    shoal_group_info_free(info);

    assert_int_equal(shoal_consumer_subscribe(c, right, 1), 0);
    read_topic(c, "right", 10);
    assert_false(in_assignment(c, "left", 0));
    assert_int_equal(shoal_consumer_unsubscribe(c), 0);

    assert_int_equal(shoal_consumer_assign(c, "left", &zero, 1), 0);
    assert_int_equal(shoal_consumer_seek(c, "left", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    read_topic(c, "left", 10);
    assert_int_equal(shoal_consumer_subscribe(c, right, 1), SHOAL_EINVAL); /* assigned */
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

/* member_options() for a cooperative-sticky member that notices a rebalance within 50 ms,
 * whose rebalance timeout (max poll interval) is 20 s. */
static void coop_member_options(shoal_consumer_options_t *o, const char *group, int idx)
{
    static const shoal_assignor_t *coop[1];

    coop[0] = shoal_assignor_builtin("cooperative-sticky");
    member_options(o, group, idx);
    o->assignors = coop;
    o->assignor_count = 1;
    o->heartbeat_interval_ms = 50;
    o->max_poll_interval_ms = 20000;
}

/* A rebalance waits for every member to rejoin. A member whose join waits for one slow to
 * poll keeps its own polls to their timeout (they blocked until the slow one came, or was
 * removed at the rebalance timeout). A cooperative one keeps its partitions and reads them
 * on meanwhile (before, it read nothing until the round was over); its commits go through
 * (shoald answers them while the join waits), and closing it then leaves the positions it
 * read committed: the members after it read every record once. */
INTEG_TEST(test_a_poll_keeps_its_timeout_while_the_rebalance_waits_for_a_slow_member)
{
    shoal_topic_config_t cfg = topic_cfg(4);
    shoal_consumer_options_t o;
    shoal_client_t *cl[3];
    shoal_consumer_t *c[3];
    shoal_record_t recs[8];
    int64_t t0, worst, pos[4];
    int got = 0, after = 0;

    assert_int_equal(shoal_topic_create(f->c, "slow", &cfg), 0);
    for (int p = 0; p < 4; p++)
        assert_int_equal(produce(f->c, "slow", p, 5), 0);
    for (int i = 0; i < 3; i++) {
        coop_member_options(&o, "waiting", i);
        o.auto_commit = true;
        assert_int_equal(open_member(&cl[i], &c[i], &o, "slow"), 0);
        if (i == 1) /* the first two share the partitions and read what is there */
            for (t0 = mono_ms(); mono_ms() - t0 < 5000 && (got < 20 || held(c[0], "slow", 4) != 2 ||
                                                           held(c[1], "slow", 4) != 2);) {
                int n0 = shoal_poll(c[0], recs, 8, 20), n1 = shoal_poll(c[1], recs, 8, 20);
                assert_true(n0 >= 0 && n1 >= 0);
                got += n0 + n1;
            }
    }
    assert_int_equal(got, 20);
    assert_int_equal(held(c[0], "slow", 4), 2);
    assert_int_equal(shoal_poll(c[2], recs, 8, 100), 0); /* joins: a rebalance begins */

    /* c[1] does not poll: the round waits for it, c[0]'s polls do not */
    got = 0;
    worst = worst_poll(c[0], 500, 100, &got);
    for (int p = 0; p < 4; p++)
        assert_int_equal(produce(f->c, "slow", p, 5), 0);
    t0 = worst_poll(c[0], 1000, 100, &got);
    worst = SHOAL_MAX(worst, t0);
    print_message("while the round waits: longest poll(100) %lld ms, %d records read\n",
                  (long long)worst, got);
    assert_true(worst < 500);
    assert_int_equal(got, 10); /* what was added to its two partitions */
    assert_int_equal(shoal_commit_sync(c[0], NULL, 0), 0);
    for (int p = 0; p < 4; p++) { /* and what close commits */
        pos[p] = shoal_consumer_position(c[0], "slow", p);
        if (pos[p] >= 0)
            assert_int_equal(produce(f->c, "slow", p, 1), 0);
    }
    for (t0 = mono_ms(); mono_ms() - t0 < 5000 && got < 12;)
        got += polled(shoal_poll(c[0], recs, 8, 20));
    assert_int_equal(got, 12);
    for (int p = 0; p < 4; p++)
        pos[p] = shoal_consumer_position(c[0], "slow", p);
    assert_int_equal(shoal_consumer_close(c[0]), 0);
    shoal_client_close(cl[0]);
    for (int p = 0; p < 4; p++)
        if (pos[p] >= 0)
            assert_int_equal(committed_of_partition(f->c, "waiting", p), pos[p]);

    /* c[1] polls again: c[1] and c[2] share the partitions and read the 10 records left */
    for (t0 = mono_ms(); mono_ms() - t0 < 10000 && after < 10;)
        for (int i = 1; i < 3; i++) {
            int n = shoal_poll(c[i], recs, 8, 10);
            assert_true(n >= 0);
            after += n;
        }
    for (t0 = mono_ms(); mono_ms() - t0 < 300;) /* and nothing twice */
        for (int i = 1; i < 3; i++)
            after += polled(shoal_poll(c[i], recs, 8, 10));
    assert_int_equal(after, 10);
    assert_int_equal(held(c[1], "slow", 4) + held(c[2], "slow", 4), 4);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(shoal_consumer_close(c[i]), 0);
        shoal_client_close(cl[i]);
    }
}

/* Poll c once, counting each record read in seen[partition][offset]. */
static int poll_counting(shoal_consumer_t *c, int seen[6][16], int timeout_ms)
{
    shoal_record_t recs[8];
    int n = shoal_poll(c, recs, 8, timeout_ms);

    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        assert_true(recs[i].partition < 6 && recs[i].offset < 16);
        seen[recs[i].partition][recs[i].offset]++;
    }
    return n;
}

/* Two cooperative members hold three partitions each; a third joins while one of the two
 * is slow to poll, so the join phase waits. The other reads what is added to its
 * partitions meanwhile, and the round takes one of them away: auto-commit commits what it
 * read while joining at the sync's answer (with the new generation, before the partition
 * moves), so the new owner starts after it. Every record is read exactly once. The
 * periodic auto-commit is an hour away: only the round's commits count. */
INTEG_TEST(test_a_cooperative_member_reads_while_joining_and_what_moves_is_read_once)
{
    shoal_topic_config_t cfg = topic_cfg(6);
    shoal_consumer_options_t o;
    shoal_client_t *cl[3];
    shoal_consumer_t *c[3];
    int seen[6][16] = {{0}}, got = 0, total = 0;
    int64_t t0;

    assert_int_equal(shoal_topic_create(f->c, "moving", &cfg), 0);
    for (int p = 0; p < 6; p++)
        assert_int_equal(produce(f->c, "moving", p, 5), 0);
    for (int i = 0; i < 3; i++) {
        coop_member_options(&o, "movers", i);
        o.auto_commit = true;
        o.auto_commit_interval_ms = 3600000;
        if (i < 2)
            assert_int_equal(open_member(&cl[i], &c[i], &o, "moving"), 0);
    }
    for (t0 = mono_ms(); mono_ms() - t0 < 5000 && (total < 30 || held(c[0], "moving", 6) != 3);)
        for (int i = 0; i < 2; i++)
            total += poll_counting(c[i], seen, 20);
    assert_int_equal(total, 30);
    assert_int_equal(held(c[0], "moving", 6), 3);

    assert_int_equal(open_member(&cl[2], &c[2], &o, "moving"), 0);
    assert_int_equal(poll_counting(c[2], seen, 100), 0); /* joins: a rebalance begins */
    for (t0 = mono_ms(); mono_ms() - t0 < 300;)          /* c[1] does not poll: the join waits */
        got += poll_counting(c[0], seen, 20);
    for (int p = 0; p < 6; p++)
        if (shoal_consumer_position(c[0], "moving", p) >= 0)
            assert_int_equal(produce(f->c, "moving", p, 5), 0);
    for (t0 = mono_ms(); mono_ms() - t0 < 5000 && got < 15;)
        got += poll_counting(c[0], seen, 20);
    assert_int_equal(got, 15); /* read while joining */
    assert_int_equal(held(c[0], "moving", 6), 3);

    total += got; /* c[1] comes back: the round ends, and the follow-up hands on */
    for (t0 = mono_ms(); mono_ms() - t0 < 10000 && (total < 45 || held(c[0], "moving", 6) != 2 ||
                                                    held(c[2], "moving", 6) != 2);)
        for (int i = 0; i < 3; i++)
            total += poll_counting(c[i], seen, 10);
    for (t0 = mono_ms(); mono_ms() - t0 < 300;) /* and nothing twice */
        for (int i = 0; i < 3; i++)
            total += poll_counting(c[i], seen, 10);
    for (int p = 0; p < 6; p++)
        for (int off = 0; off < 16; off++)
            assert_true(seen[p][off] == (off < 5 || (off < 10 && seen[p][5]) ? 1 : 0));
    assert_int_equal(total, 45);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(held(c[i], "moving", 6), 2);
        assert_int_equal(shoal_consumer_close(c[i]), 0);
        shoal_client_close(cl[i]);
    }
}

/* A cooperative member without auto-commit commits asynchronously what it read while its
 * join waits, and closes at once: close waits for that commit's answer (shoald gives it
 * ahead of the join), so on_commit hears it was stored. Before, close in a round did not
 * wait, and on_commit heard SHOAL_ECLOSED for a commit shoald had stored. */
INTEG_TEST(test_a_commit_sent_while_joining_is_answered_before_close)
{
    shoal_topic_config_t cfg = topic_cfg(4);
    shoal_consumer_options_t o;
    shoal_client_t *cl[3];
    shoal_consumer_t *c[3];
    int seen[6][16] = {{0}}, got = 0;
    int64_t t0;

    assert_int_equal(shoal_topic_create(f->c, "asked", &cfg), 0);
    for (int p = 0; p < 4; p++)
        assert_int_equal(produce(f->c, "asked", p, 5), 0);
    for (int i = 0; i < 3; i++) {
        coop_member_options(&o, "askers", i);
        o.on_commit = on_commit;
        assert_int_equal(open_member(&cl[i], &c[i], &o, "asked"), 0);
        if (i == 1)
            for (t0 = mono_ms();
                 mono_ms() - t0 < 5000 && (got < 20 || held(c[0], "asked", 4) != 2);)
                got += poll_counting(c[0], seen, 20) + poll_counting(c[1], seen, 20);
    }
    assert_int_equal(got, 20);
    assert_int_equal(poll_counting(c[2], seen, 100), 0); /* joins: a rebalance begins */
    for (t0 = mono_ms(); mono_ms() - t0 < 300;)          /* c[1] does not poll */
        (void)poll_counting(c[0], seen, 20);
    for (int p = 0; p < 4; p++)
        if (shoal_consumer_position(c[0], "asked", p) >= 0)
            assert_int_equal(produce(f->c, "asked", p, 5), 0);
    for (t0 = mono_ms(), got = 0; mono_ms() - t0 < 5000 && got < 10;)
        got += poll_counting(c[0], seen, 20);
    assert_int_equal(got, 10);

    atomic_store(&commit_results[0], 0);
    atomic_store(&commit_results[1], 0);
    assert_int_equal(shoal_commit_async(c[0], NULL, 0), 0);
    assert_int_equal(shoal_consumer_close(c[0]), 0);
    shoal_client_close(cl[0]);
    assert_int_equal(atomic_load(&commit_results[0]), 1);
    assert_int_equal(atomic_load(&commit_results[1]), 0);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(shoal_consumer_close(c[i]), 0);
        shoal_client_close(cl[i]);
    }
}

struct threaded_member {
    shoal_consumer_t *c;
    shoal_client_t *cl;
    _Atomic bool stop;
};

static _Atomic int64_t newcomer_assigned_ms;

static void newcomer_assigned(void *arg, shoal_consumer_t *c, const shoal_topic_partition_t *tps,
                              size_t n)
{
    if (n > 0 && !atomic_load(&newcomer_assigned_ms))
        atomic_store(&newcomer_assigned_ms, mono_ms());
    on_assigned(arg, c, tps, n);
}

static void *threaded_member(void *arg)
{
    struct threaded_member *t = arg;
    shoal_record_t recs[8];

    while (!atomic_load(&t->stop) && shoal_poll(t->c, recs, 8, 3000) >= 0)
        ;
    return NULL;
}

/* A member that holds nothing while its round waits for the others (a newcomer, or an
 * eager member that gave its partitions up) watches for the answers for its whole poll:
 * with polls longer than the heartbeat interval it slept through one interval after
 * another, each round's phase costing up to one more. */
INTEG_TEST(test_a_newcomer_is_assigned_about_a_heartbeat_after_it_joins)
{
    shoal_topic_config_t cfg = topic_cfg(4);
    shoal_consumer_options_t o;
    struct threaded_member t = {0};
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[8];
    pthread_t th;
    int64_t t0;

    assert_int_equal(shoal_topic_create(f->c, "formed", &cfg), 0);
    member_options(&o, "formers", 0);
    o.heartbeat_interval_ms = 1000;
    assert_int_equal(open_member(&cl, &c, &o, "formed"), 0);
    assert_true(poll_until(c, holds_all_four, 5000));
    member_options(&o, "formers", 1);
    o.heartbeat_interval_ms = 1000;
    o.on_assigned = newcomer_assigned;
    assert_int_equal(open_member(&t.cl, &t.c, &o, "formed"), 0);
    t0 = mono_ms();
    assert_int_equal(pthread_create(&th, NULL, threaded_member, &t), 0);
    while (mono_ms() - t0 < 10000 && !atomic_load(&newcomer_assigned_ms))
        assert_true(shoal_poll(c, recs, 8, 3000) >= 0);
    atomic_store(&t.stop, true);
    assert_int_equal(pthread_join(th, NULL), 0);
    print_message("the second member was assigned %lld ms after it joined\n",
                  (long long)(atomic_load(&newcomer_assigned_ms) - t0));
    assert_true(atomic_load(&newcomer_assigned_ms) > 0);
    assert_true(atomic_load(&newcomer_assigned_ms) - t0 < 1700);
    assert_int_equal(shoal_consumer_close(t.c), 0);
    shoal_client_close(t.cl);
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

struct delayed_wake {
    shoal_consumer_t *c;
    int ms;
};

static void *wake_later(void *arg)
{
    const struct delayed_wake *w = arg;
    sleep_ms(w->ms);
    assert_int_equal(shoal_consumer_wakeup(w->c), 0);
    return NULL;
}

/* How long call(c) takes to return SHOAL_EWAKEUP, woken from another thread ms into it. */
static int64_t woken_in(shoal_consumer_t *c, int ms, int (*call)(shoal_consumer_t *))
{
    struct delayed_wake w = {c, ms};
    int64_t t0 = mono_ms();
    pthread_t th;

    assert_int_equal(pthread_create(&th, NULL, wake_later, &w), 0);
    assert_int_equal(call(c), SHOAL_EWAKEUP);
    assert_int_equal(pthread_join(th, NULL), 0);
    return mono_ms() - t0;
}

static bool second_holds_one(void)
{
    return atomic_load(&sh->nassigned[1]) == 1;
}

static int commit_all(shoal_consumer_t *c)
{
    return shoal_commit_sync(c, NULL, 0);
}

static int poll_for_ever(shoal_consumer_t *c)
{
    shoal_record_t recs[8];
    return shoal_poll(c, recs, 8, -1);
}

/* shoal_consumer_wakeup() ends a group member's waits for a stopped shoald (SIGSTOP) within
 * tens of milliseconds: a commit_sync, which used to wait 30 s for the answer, and a poll
 * whose join waits, which used to wait a heartbeat interval (3 s) for it. Once shoald goes
 * on, the commit's late answer is dropped, and the member commits in the same generation;
 * the new member's round goes on and it is assigned. */
INTEG_TEST(test_a_wakeup_ends_the_waits_for_a_stopped_daemon)
{
    shoal_consumer_options_t o;
    shoal_client_t *cl[2];
    shoal_consumer_t *c[2];
    int64_t ms;
    int32_t gen;

    member_of_eight(f, "doze", "dozers", NULL, &cl[0], &c[0]);
    gen = generation_of(f->c, "dozers");
    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    ms = woken_in(c[0], 200, commit_all);
    print_message("commit_sync into a stopped shoald, woken after 200 ms: %lld ms\n",
                  (long long)ms);
    assert_true(ms >= 190 && ms < 1500);
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    assert_int_equal(shoal_commit_sync(c[0], NULL, 0), 0);
    assert_int_equal(generation_of(f->c, "dozers"), gen);
    assert_int_equal(shoal_consumer_close(c[0]), 0);
    shoal_client_close(cl[0]);

    member_options(&o, "dozers", 1);
    assert_int_equal(open_member(&cl[1], &c[1], &o, "doze"), 0);
    daemon_to_stop = f->d.pid;
    atomic_store(&stops, 0);
    hook_round(CGROUP_BEFORE_COMMIT, stop_daemon_once); /* its first join goes unanswered */
    ms = woken_in(c[1], 200, poll_for_ever);
    hook_round(CGROUP_BEFORE_COMMIT, NULL);
    print_message("poll whose join waits for a stopped shoald, woken after 200 ms: %lld ms\n",
                  (long long)ms);
    assert_int_equal(atomic_load(&stops), 1);
    assert_true(ms >= 190 && ms < 1500);
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    assert_true(poll_until(c[1], second_holds_one, 5000));
    assert_int_equal(shoal_consumer_close(c[1]), 0);
    shoal_client_close(cl[1]);
}

/* A member that reads partition `stopped_topic`'s records into sh->seen, polling with no
 * timeout (asleep between records), until sh->done; it says so once it holds one
 * partition (sh->nassigned[1]). */
static const char *stopped_topic = "paused";

/* A member of "pausers" with a session of 1 s. */
static void pauser_options(shoal_consumer_options_t *o)
{
    shoal_consumer_options_init(o);
    o->group_id = "pausers";
    o->auto_offset_reset = SHOAL_OFFSET_RESET_EARLIEST;
    o->session_timeout_ms = 1000;
    o->heartbeat_interval_ms = 100;
}

/* Installed in a member by stopped_member(): SIGSTOP itself once when the test asks. */
static void stop_self_when_asked(void)
{
    if (atomic_exchange(&sh->stop_self, 0))
        raise(SIGSTOP);
}

/* arg non-NULL: the member stops itself at a heartbeat when the test asks (sh->stop_self). */
static int stopped_member(void *arg)
{
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[8];

    if (arg)
        hook_round(CGROUP_HEARTBEAT_SENT, stop_self_when_asked);
    pauser_options(&o);
    if (open_member(&cl, &c, &o, stopped_topic) < 0)
        return 10;
    while (!atomic_load(&sh->done)) {
        int n = shoal_poll(c, recs, 8, 200);
        if (n < 0)
            continue; /* fenced after the stop: it rejoins */
        for (int i = 0; i < n; i++)
            atomic_fetch_add(&sh->seen[recs[i].partition][recs[i].offset], 1);
        atomic_store(&sh->nassigned[1], held(c, stopped_topic, 2));
    }
    shoal_consumer_close(c);
    shoal_client_close(cl);
    return 0;
}

/* Two members of "pausers" on two partitions; the other one, a child, is stopped for
 * longer than its session, by the test while asleep in its poll, or by itself (in_heartbeat)
 * between sending a heartbeat and reading the answer. It is removed and its partition goes
 * to this member, which reads what is appended meanwhile. Continued, its poll reads those
 * records; it puts them back and asks shoald first, learns it was removed, and rejoins:
 * every record is read once. */
static void stop_a_member_past_its_session(struct harness_fixture *f, bool in_heartbeat)
{
    shoal_topic_config_t cfg = topic_cfg(2);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[8];
    pid_t pid;
    int64_t t0;

    memset(sh, 0, sizeof(*sh));
    assert_int_equal(shoal_topic_create(f->c, stopped_topic, &cfg), 0);
    pauser_options(&o);
    assert_int_equal(open_member(&cl, &c, &o, stopped_topic), 0);
    assert_true((pid = harness_fork(stopped_member, in_heartbeat ? "" : NULL, 50)) > 0);
    for (t0 = mono_ms(); mono_ms() - t0 < 5000 &&
                         (held(c, stopped_topic, 2) != 1 || atomic_load(&sh->nassigned[1]) != 1);)
        assert_true(shoal_poll(c, recs, 8, 20) >= 0);
    assert_int_equal(held(c, stopped_topic, 2), 1);
    sleep_ms(100); /* the member asleep in its poll */
    if (in_heartbeat) {
        atomic_store(&sh->stop_self, 1);
        for (t0 = mono_ms(); mono_ms() - t0 < 5000 && proc_state(pid) != 'T';)
            sleep_ms(5);
        assert_int_equal(proc_state(pid), 'T');
    } else {
        assert_int_equal(kill(pid, SIGSTOP), 0);
    }
    for (t0 = mono_ms(); mono_ms() - t0 < 5000 && held(c, stopped_topic, 2) != 2;)
        assert_true(shoal_poll(c, recs, 8, 20) >= 0); /* its session runs out: both here */
    assert_int_equal(held(c, stopped_topic, 2), 2);
    for (int p = 0; p < 2; p++)
        assert_int_equal(produce(f->c, stopped_topic, p, 5), 0);
    for (int got = 0; got < 10;) {
        int n = shoal_poll(c, recs, 8, 1000);
        assert_true(n > 0);
        for (int i = 0; i < n; i++, got++)
            atomic_fetch_add(&sh->seen[recs[i].partition][recs[i].offset], 1);
    }

    assert_int_equal(kill(pid, SIGCONT), 0);
    for (t0 = mono_ms(); mono_ms() - t0 < 1500;)
        assert_true(shoal_poll(c, recs, 8, 20) >= 0); /* it rejoins: a rebalance */
    atomic_store(&sh->done, 1);
    assert_int_equal(harness_wait(pid, 10000), 0);
    for (int p = 0; p < 2; p++)
        for (int off = 0; off < 5; off++)
            if (atomic_load(&sh->seen[p][off]) != 1)
                fail_msg("partition %d offset %d read %u times", p, off,
                         atomic_load(&sh->seen[p][off]));
    assert_int_equal(shoal_consumer_close(c), 0);
    shoal_client_close(cl);
}

/* Before, the member returned the records it read on continuing: read twice, once by a
 * member that no longer owned them. */
INTEG_TEST(test_a_member_stopped_past_its_session_returns_nothing_it_lost)
{
    stop_a_member_past_its_session(f, false);
}

/* The answer to a heartbeat sent before the stop says the member is in the group, and the
 * read after it does not overrun: only the whole poll step did. Under ASan, CI saw a
 * record read twice when the SIGSTOP of the test above landed there by chance. */
INTEG_TEST(test_a_member_stopped_awaiting_a_heartbeat_answer_returns_nothing_it_lost)
{
    stop_a_member_past_its_session(f, true);
}

static _Atomic int slow_assign_ms;
static _Atomic bool slow_assign_done;

/* cooperative-sticky, after slow_assign_ms of thought. */
static int slow_assign(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out)
{
    const shoal_assignor_t *b = shoal_assignor_builtin("cooperative-sticky");
    (void)arg;
    usleep((useconds_t)atomic_load(&slow_assign_ms) * 1000);
    atomic_store(&slow_assign_done, true);
    return b->assign(b->arg, in, out);
}

/* Three cooperative members of "syncers", each on its own client: the leader (polled by a
 * thread once the round is under way), c[0] and a newcomer c[1], on a four-partition
 * topic. */
struct slow_sync {
    struct threaded_member lead;
    pthread_t th;
    shoal_client_t *cl[2];
    shoal_consumer_t *c[2];
    int seen[6][16];
};

/* Produce 5 records to each partition c holds. */
static void produce_to_held(struct harness_fixture *f, shoal_consumer_t *c, const char *topic)
{
    for (int p = 0; p < 4; p++)
        if (shoal_consumer_position(c, topic, p) >= 0)
            assert_int_equal(produce(f->c, topic, p, 5), 0);
}

/* Bring the group to a round whose sync waits for a slow leader: c[0] holds two partitions
 * and has read their first 10 records each (5 of them while its join waited); its join is
 * answered, and the leader's assignor takes assign_ms from now. c[0] commits with
 * auto-commit (at the round's points only) or else from revoked (NULL: not at all), and
 * has a session of session_ms (the others 10 s). */
static void slow_sync_begin(struct harness_fixture *f, struct slow_sync *s, bool auto_commit,
                            shoal_rebalance_cb revoked, int session_ms, int assign_ms)
{
    static const shoal_assignor_t slow = {
        .name = "slow-coop", .cooperative = true, .assign = slow_assign};
    static const shoal_assignor_t *list[] = {&slow};
    shoal_topic_config_t cfg = topic_cfg(4);
    shoal_consumer_options_t o;
    int got = 0;
    int64_t t0;

    memset(s, 0, sizeof(*s));
    atomic_store(&slow_assign_ms, 0);
    assert_int_equal(shoal_topic_create(f->c, "synced", &cfg), 0);
    for (int p = 0; p < 4; p++)
        assert_int_equal(produce(f->c, "synced", p, 5), 0);
    for (int i = 0; i < 3; i++) { /* the leader, c[0], the newcomer */
        coop_member_options(&o, "syncers", i);
        o.assignors = list; /* cooperative too */
        o.auto_commit = i != 1 || auto_commit;
        o.auto_commit_interval_ms = 3600000;
        o.session_timeout_ms = i == 1 ? session_ms : 10000; /* the newcomer is not polled */
        if (i == 1 && revoked)
            o.on_revoked = revoked;
        assert_int_equal(open_member(i ? &s->cl[i - 1] : &s->lead.cl, i ? &s->c[i - 1] : &s->lead.c,
                                     &o, "synced"),
                         0);
        if (i == 1)
            for (t0 = mono_ms();
                 mono_ms() - t0 < 5000 && (got < 20 || held(s->c[0], "synced", 4) != 2);)
                got += poll_counting(s->lead.c, s->seen, 20) + poll_counting(s->c[0], s->seen, 20);
    }
    assert_int_equal(got, 20);
    assert_int_equal(poll_counting(s->c[1], s->seen, 100), 0); /* joins: a rebalance begins */
    produce_to_held(f, s->c[0], "synced");
    for (t0 = mono_ms(), got = 0; mono_ms() - t0 < 5000 && got < 10;)
        got += poll_counting(s->c[0], s->seen, 20); /* while the leader has not rejoined */
    assert_int_equal(got, 10);

    atomic_store(&slow_assign_done, false);
    atomic_store(&slow_assign_ms, assign_ms); /* the leader rejoins and assigns, slowly */
    assert_int_equal(pthread_create(&s->th, NULL, threaded_member, &s->lead), 0);
    for (t0 = mono_ms();
         mono_ms() - t0 < 5000 && !harness_daemon_log_contains(&f->d, " with 3 members");)
        usleep(10000);
    assert_int_equal(poll_counting(s->c[0], s->seen, 100), 0); /* the join's answer */
}

/* c[0] reads the 5 records produced to each of its partitions while the sync waits. */
static void slow_sync_read(struct harness_fixture *f, struct slow_sync *s)
{
    int got = 0;

    produce_to_held(f, s->c[0], "synced");
    for (int64_t t0 = mono_ms(); mono_ms() - t0 < 1000 && got < 10;)
        got += poll_counting(s->c[0], s->seen, 20);
    assert_int_equal(got, 10);
    assert_false(atomic_load(&slow_assign_done)); /* read while the sync waited */
}

/* Close every member still open (c[0] when c0_open). */
static void slow_sync_end(struct slow_sync *s, bool c0_open)
{
    atomic_store(&s->lead.stop, true);
    assert_int_equal(pthread_join(s->th, NULL), 0);
    assert_int_equal(shoal_consumer_close(s->lead.c), 0);
    shoal_client_close(s->lead.cl);
    for (int i = c0_open ? 0 : 1; i < 2; i++) {
        assert_int_equal(shoal_consumer_close(s->c[i]), 0);
        shoal_client_close(s->cl[i]);
    }
}

/* Close c[0]: the positions of the partitions it held are then committed at 15 (when
 * sync_waits, close waited at least 300 ms for the sync's answer). */
static void slow_sync_close(struct harness_fixture *f, struct slow_sync *s, bool sync_waits)
{
    int64_t t0, pos[4];

    for (int p = 0; p < 4; p++)
        pos[p] = shoal_consumer_position(s->c[0], "synced", p);
    t0 = mono_ms();
    assert_int_equal(shoal_consumer_close(s->c[0]), 0);
    t0 = mono_ms() - t0;
    print_message("close waited %lld ms for the sync\n", (long long)t0);
    shoal_client_close(s->cl[0]);
    for (int p = 0; p < 4; p++)
        if (pos[p] >= 0)
            assert_int_equal(committed_of_partition(f->c, "syncers", p), 15);
    assert_true(!sync_waits || t0 >= 300); /* it was the sync close waited for */
}

/* A cooperative member reads on while its join waits and while its sync waits (the leader
 * is slow to assign), where it cannot commit; closed while the sync waits, it waits for the
 * sync's answer and commits what it read with the new generation. Before, it read nothing
 * from the join's answer on (and earlier, nothing during the round at all, and close left
 * the commit the round began with). */
INTEG_TEST(test_a_member_reads_while_the_sync_waits_and_commits_it_at_close)
{
    struct slow_sync s;

    slow_sync_begin(f, &s, true, NULL, 5000, 1500);
    slow_sync_read(f, &s);
    assert_int_equal(shoal_commit_sync(s.c[0], NULL, 0), SHOAL_EREBALANCE); /* not until then */
    slow_sync_close(f, &s, true);
    slow_sync_end(&s, false);
}

static int revoked_commit_rc;

static void commit_when_revoked(void *arg, shoal_consumer_t *c, const shoal_topic_partition_t *tps,
                                size_t n)
{
    revoked_commit_rc = shoal_commit_sync(c, NULL, 0);
    on_revoked(arg, c, tps, n);
}

/* The same without auto-commit: the application commits from on_revoked, which close calls
 * once the sync's answer is in. Before, close called it while the sync waited, the commit
 * was refused SHOAL_EREBALANCE, and the records read in the round were read again. */
INTEG_TEST(test_closing_while_the_sync_waits_lets_on_revoked_commit)
{
    struct slow_sync s;

    slow_sync_begin(f, &s, false, commit_when_revoked, 5000, 1500);
    slow_sync_read(f, &s);
    revoked_commit_rc = 1;
    slow_sync_close(f, &s, true);
    assert_int_equal(revoked_commit_rc, 0);
    slow_sync_end(&s, false);
}

/* A member that read during the sync is busy with those records when the sync's answer
 * comes (the leader assigned for 2.5 s of a 3 s session, and the member's next call is 1 s
 * later): shoald counts its session from the answer, not from its sync, and keeps it.
 * Before, it removed the member for a silent session; the commit at the sync's answer was
 * refused, and the records read in the round were read again. */
INTEG_TEST(test_a_member_busy_after_a_long_sync_keeps_its_session)
{
    struct slow_sync s;

    slow_sync_begin(f, &s, true, NULL, 3000, 2500);
    slow_sync_read(f, &s);
    for (int64_t t0 = mono_ms(); !atomic_load(&slow_assign_done) && mono_ms() - t0 < 5000;)
        usleep(5000);
    sleep_ms(1000); /* processing what it read */
    slow_sync_close(f, &s, false);
    assert_false(harness_daemon_log_contains(&f->d, "removed: session timeout"));
    slow_sync_end(&s, false);
}

static _Atomic uint32_t held_bits[2]; /* partitions member i holds, by its callbacks */
static _Atomic int held_errors;       /* given twice, or revoked without being held */
static struct harness_daemon *kill_in_revoke;
static int revoke_commit_rc;

static void held_assigned(void *arg, shoal_consumer_t *c, const shoal_topic_partition_t *tps,
                          size_t n)
{
    int idx = (int)(intptr_t)arg;
    (void)c;
    for (size_t i = 0; i < n; i++)
        if (atomic_fetch_or(&held_bits[idx], 1u << tps[i].partition) & (1u << tps[i].partition))
            atomic_fetch_add(&held_errors, 1);
}

/* Member 0's first on_revoked kills shoald, then commits: the commit breaks the group
 * connection from inside the callback. */
static void held_revoked(void *arg, shoal_consumer_t *c, const shoal_topic_partition_t *tps,
                         size_t n)
{
    int idx = (int)(intptr_t)arg;
    for (size_t i = 0; i < n; i++)
        if (!(atomic_fetch_and(&held_bits[idx], ~(1u << tps[i].partition)) &
              (1u << tps[i].partition)))
            atomic_fetch_add(&held_errors, 1);
    if (idx == 0 && n && kill_in_revoke) {
        assert_int_equal(harness_daemon_kill9(kill_in_revoke), 0);
        kill_in_revoke = NULL;
        revoke_commit_rc = shoal_commit_sync(c, NULL, 0);
    }
}

/* A cooperative member gives two of its four partitions up, and the commit it makes in
 * on_revoked finds shoald gone: the round fails and the member loses the two it kept.
 * on_revoked names each partition once: before, the round's revoke named the two given
 * up a second time. After a restart both members rejoin and each partition is held once. */
INTEG_TEST(test_a_connection_broken_inside_on_revoked_revokes_nothing_twice)
{
    shoal_topic_config_t cfg = topic_cfg(4);
    shoal_consumer_options_t o;
    shoal_client_t *cl[2];
    shoal_consumer_t *c[2];
    shoal_record_t recs[8];
    int64_t t0;

    assert_int_equal(shoal_topic_create(f->c, "broken", &cfg), 0);
    for (int i = 0; i < 2; i++) {
        coop_member_options(&o, "breakers", i);
        o.on_assigned = held_assigned;
        o.on_revoked = held_revoked;
        assert_int_equal(open_member(&cl[i], &c[i], &o, "broken"), 0);
        for (t0 = mono_ms(); i == 0 && mono_ms() - t0 < 5000 && atomic_load(&held_bits[0]) != 0xf;)
            assert_true(shoal_poll(c[0], recs, 8, 20) >= 0);
    }
    assert_int_equal(atomic_load(&held_bits[0]), 0xf);
    kill_in_revoke = &f->d;
    for (t0 = mono_ms(); mono_ms() - t0 < 5000 && kill_in_revoke;)
        for (int i = 0; i < 2; i++)
            (void)shoal_poll(c[i], recs, 8, 20);
    assert_null(kill_in_revoke);
    assert_true(revoke_commit_rc < 0);
    for (int k = 0; k < 5; k++) /* the failed round ends: the two kept are lost */
        (void)shoal_poll(c[0], recs, 8, 20);
    assert_int_equal(atomic_load(&held_bits[0]), 0);
    assert_int_equal(atomic_load(&held_errors), 0);

    assert_int_equal(harness_daemon_restart(&f->d), 0);
    for (t0 = mono_ms(); mono_ms() - t0 < 10000 &&
                         (__builtin_popcount(atomic_load(&held_bits[0])) != 2 ||
                          (atomic_load(&held_bits[0]) | atomic_load(&held_bits[1])) != 0xf);)
        for (int i = 0; i < 2; i++)
            (void)shoal_poll(c[i], recs, 8, 20);
    assert_int_equal(atomic_load(&held_bits[0]) | atomic_load(&held_bits[1]), 0xf);
    assert_int_equal(atomic_load(&held_bits[0]) & atomic_load(&held_bits[1]), 0);
    assert_int_equal(atomic_load(&held_errors), 0);
    for (int i = 0; i < 2; i++) {
        (void)shoal_consumer_close(c[i]);
        shoal_client_close(cl[i]);
    }
}

static shoal_consumer_options_t twin_options;
static shoal_client_t *twin_cl;
static shoal_consumer_t *twin;
static int fenced_commit_rc = 1;
static char revoked_names[4][32]; /* what on_revoked read of tps after its commit */

/* Member 0's first on_revoked: a twin with its group_instance_id takes its place, then
 * the member commits and finds itself fenced; then it reads tps. */
static void twin_revoked(void *arg, shoal_consumer_t *c, const shoal_topic_partition_t *tps,
                         size_t n)
{
    shoal_record_t recs[8];

    on_revoked(arg, c, tps, n);
    if ((int)(intptr_t)arg != 0 || twin || n == 0)
        return;
    assert_int_equal(open_member(&twin_cl, &twin, &twin_options, "fence"), 0);
    for (int64_t t0 = mono_ms(); mono_ms() - t0 < 5000 && atomic_load(&sh->nassigned[1]) == 0;)
        assert_true(shoal_poll(twin, recs, 8, 20) >= 0);
    fenced_commit_rc = shoal_commit_sync(c, NULL, 0);
    for (size_t i = 0; i < n && i < 4; i++)
        snprintf(revoked_names[i], sizeof(revoked_names[i]), "%s-%d", tps[i].topic,
                 (int)tps[i].partition);
}

/* A cooperative member is fenced by a commit it makes in on_revoked (a twin took its
 * place meanwhile): the fence gives everything up, and the callback still reads the
 * partitions it was given, its own copy (before, the fence freed the strings under it,
 * which make asan reports). The member's polls say SHOAL_EFENCED from then on. */
INTEG_TEST(test_a_member_fenced_inside_on_revoked_keeps_its_callback_list)
{
    shoal_topic_config_t cfg = topic_cfg(4);
    shoal_consumer_options_t o;
    shoal_client_t *cl[2];
    shoal_consumer_t *c[2];
    shoal_record_t recs[8];
    int rc = 0;

    assert_int_equal(shoal_topic_create(f->c, "fence", &cfg), 0);
    for (int i = 0; i < 2; i++) {
        coop_member_options(&o, "fencers", i == 0 ? 0 : 2);
        o.on_revoked = twin_revoked;
        o.group_instance_id = i == 0 ? "fenced" : NULL;
        if (i == 0) {
            twin_options = o;
            twin_options.cb_arg = (void *)(intptr_t)1;
        }
        assert_int_equal(open_member(&cl[i], &c[i], &o, "fence"), 0);
        if (i == 0)
            assert_true(poll_until(c[0], holds_all_four, 5000));
    }
    for (int64_t t0 = mono_ms(); mono_ms() - t0 < 5000 && rc >= 0;) {
        rc = shoal_poll(c[0], recs, 8, 20);
        assert_true(shoal_poll(c[1], recs, 8, 20) >= 0);
    }
    print_message("the commit in on_revoked: %s\n", shoal_err_name(fenced_commit_rc));
    assert_int_equal(fenced_commit_rc, SHOAL_EFENCED);
    assert_int_equal(rc, SHOAL_EFENCED);
    assert_non_null(twin);
    for (int i = 0; i < 2; i++)
        assert_non_null(strstr(revoked_names[i], "fence-"));
    assert_int_equal(shoal_poll(c[0], recs, 8, 20), SHOAL_EFENCED);
    for (int i = 0; i < 2; i++) {
        shoal_consumer_close(c[i]);
        shoal_client_close(cl[i]);
    }
    shoal_consumer_close(twin);
    shoal_client_close(twin_cl);
}

/* ------------------------------------------------------------------ a broken assignor */

enum { ASSIGN_FAIL, ASSIGN_SKIP, ASSIGN_OK };
static _Atomic int broken_mode;
static _Atomic int broken_calls;

/* As broken_mode says: fail with -EIO, leave partition 1 out, or everything to member 0. */
static int broken_assign(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out)
{
    int mode = atomic_load(&broken_mode);
    (void)arg;
    atomic_fetch_add(&broken_calls, 1);
    if (mode == ASSIGN_FAIL)
        return -EIO;
    for (size_t t = 0; t < in->topic_count; t++)
        for (uint32_t p = 0; p < in->topics[t].partitions; p++) {
            int rc = mode == ASSIGN_SKIP && p == 1
                         ? 0
                         : shoal_assign_output_add(out, 0, in->topics[t].topic, (int32_t)p);
            if (rc < 0)
                return rc;
        }
    return 0;
}

static const shoal_assignor_t broken = {.name = "broken", .assign = broken_assign};
static const shoal_assignor_t *broken_list[] = {&broken};

/* Poll for ms with the given timeout; the number of polls, and the last error in *err. */
static int polls_for(shoal_consumer_t *c, int ms, int timeout_ms, int *err)
{
    shoal_record_t recs[4];
    int64_t t0 = mono_ms();
    int polls = 0;
    for (; mono_ms() - t0 < ms; polls++) {
        int rc = shoal_poll(c, recs, 4, timeout_ms);
        if (rc < 0)
            *err = rc;
    }
    return polls;
}

/* A leader whose assignor fails, or breaks the rules, gets the error from poll, and tries
 * again only a heartbeat interval later: before, every poll returned at once and ran the
 * assignor again (150,000 polls in 3 s), a poll with timeout 0 spinning on it. */
INTEG_TEST(test_a_failing_assignor_is_reported_and_retried_a_heartbeat_interval_later)
{
    shoal_topic_config_t cfg = topic_cfg(3);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int polls, calls, err = 0;

    assert_int_equal(shoal_topic_create(f->c, "bad", &cfg), 0);
    member_options(&o, "badly", 0);
    o.assignors = broken_list;
    o.assignor_count = 1;
    atomic_store(&broken_mode, ASSIGN_FAIL);
    assert_int_equal(open_member(&cl, &c, &o, "bad"), 0);

    polls = polls_for(c, 1000, 200, &err); /* 100 ms each: the heartbeat interval */
    calls = atomic_load(&broken_calls);
    print_message("failing: %d polls, %d assignor calls in 1 s\n", polls, calls);
    assert_int_equal(err, -EIO);
    assert_non_null(strstr(shoal_errmsg(), "assignor 'broken' failed"));
    assert_true(polls >= 5 && polls <= 20);
    assert_true(calls >= 5 && calls <= 20);

    atomic_store(&broken_mode, ASSIGN_SKIP);
    err = 0;
    polls = polls_for(c, 500, 0, &err); /* timeout 0: the wait is remembered, no spin */
    calls = atomic_load(&broken_calls) - calls;
    print_message("skipping, timeout 0: %d polls, %d assignor calls in 500 ms\n", polls, calls);
    assert_int_equal(err, SHOAL_EINVAL);
    assert_true(calls >= 2 && calls <= 10);

    atomic_store(&broken_mode, ASSIGN_OK); /* fixed: the next attempt assigns */
    assert_true(poll_until(c, a_has_three, 3000));
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* A member (index 1) whose copy of the "broken" assignor works. */
static int fixed_member(void *arg)
{
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[16];
    (void)arg;

    atomic_store(&broken_mode, ASSIGN_OK); /* this process's copy */
    member_options(&o, "held", 1);
    o.assignors = broken_list;
    o.assignor_count = 1;
    o.max_poll_interval_ms = 1000;
    if (open_member(&cl, &c, &o, "held") < 0)
        return 10;
    while (!atomic_load(&sh->done))
        if (shoal_poll(c, recs, 16, 50) < 0)
            return 11;
    shoal_consumer_close(c);
    shoal_client_close(cl);
    return 0;
}

static bool all_four_held(void)
{
    return atomic_load(&sh->assigned_calls[1]) > 0 &&
           atomic_load(&sh->nassigned[0]) + atomic_load(&sh->nassigned[1]) == 4;
}

/* The leader's assignor keeps failing: its retries get the same generation back (before,
 * each started a new one, and the other members, parked in SyncGroup, were sent back to
 * rejoin every time and never got a partition); at the rebalance timeout the coordinator
 * removes it, and the group goes on, led by the member that stayed. */
INTEG_TEST(test_a_leader_whose_assignor_keeps_failing_is_removed_and_the_others_go_on)
{
    shoal_topic_config_t cfg = topic_cfg(4);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    int32_t gen;
    int64_t t0;
    pid_t helper;
    int err = 0;

    assert_int_equal(shoal_topic_create(f->c, "held", &cfg), 0);
    member_options(&o, "held", 0);
    o.assignors = broken_list;
    o.assignor_count = 1;
    o.max_poll_interval_ms = 1000;
    atomic_store(&broken_mode, ASSIGN_FAIL);
    assert_int_equal(open_member(&cl, &c, &o, "held"), 0);
    (void)polls_for(c, 100, 50, &err);
    assert_int_equal(err, -EIO);
    gen = generation_of(f->c, "held");
    (void)polls_for(c, 500, 50, &err); /* five attempts more, one generation */
    assert_int_equal(generation_of(f->c, "held"), gen);

    assert_true((helper = harness_fork(fixed_member, NULL, 50)) > 0);
    t0 = mono_ms();
    while (!all_four_held() && mono_ms() - t0 < 8000)
        (void)polls_for(c, 20, 20, &err);
    print_message("the other member got the partitions after %lld ms\n",
                  (long long)(mono_ms() - t0));
    assert_true(all_four_held());
    assert_true(harness_daemon_log_contains(&f->d, "the leader did not send the assignment"));
    assert_int_equal(atomic_load(&sh->violations), 0);

    atomic_store(&sh->done, 1);
    assert_int_equal(harness_wait(helper, 10000), 0);
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* ------------------------------------------------------------------ cooperative */

static bool owned_by_other(const shoal_assign_input_t *in, size_t member, const char *topic,
                           int32_t p)
{
    for (size_t i = 0; i < in->member_count; i++)
        for (size_t k = 0; i != member && k < in->members[i].owned_count; k++)
            if (in->members[i].owned[k].partition == p &&
                !strcmp(in->members[i].owned[k].topic, topic))
                return true;
    return false;
}

/* Range, but a partition that another member still owns is withheld (cooperative). */
static int coop_range(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out)
{
    (void)arg;
    for (size_t t = 0; t < in->topic_count; t++) {
        uint32_t parts = in->topics[t].partitions, n = (uint32_t)in->member_count;
        for (uint32_t p = 0; p < parts; p++) {
            size_t m = p / ((parts + n - 1) / n);
            int rc = 0;
            if (!owned_by_other(in, m, in->topics[t].topic, (int32_t)p))
                rc = shoal_assign_output_add(out, m, in->topics[t].topic, (int32_t)p);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static const shoal_assignor_t coop = {
    .name = "coop-range", .cooperative = true, .assign = coop_range};

struct coop_log {
    _Atomic int held[2];
    _Atomic int revoked_calls[2];
    _Atomic uint32_t revoked_mask[2]; /* partitions ever revoked from member i */
    _Atomic int assigned_calls[2];
    _Atomic int revoked_commits[2]; /* commits from on_revoked that shoald took */
    _Atomic int revoked_refused[2]; /* and those it refused */
};

static struct coop_log *coopl;
static bool coop_commit_all; /* on_revoked commits every position at once */

static void coop_assigned(void *arg, shoal_consumer_t *c, const shoal_topic_partition_t *tps,
                          size_t n)
{
    int idx = (int)(intptr_t)arg;
    (void)c;
    on_assigned(arg, c, tps, n); /* ownership check */
    atomic_fetch_add(&coopl->held[idx], (int)n);
    atomic_fetch_add(&coopl->assigned_calls[idx], 1);
}

static void coop_revoked(void *arg, shoal_consumer_t *c, const shoal_topic_partition_t *tps,
                         size_t n)
{
    int idx = (int)(intptr_t)arg;
    on_revoked(arg, c, tps, n);
    atomic_fetch_sub(&coopl->held[idx], (int)n);
    atomic_fetch_add(&coopl->revoked_calls[idx], 1);
    for (size_t i = 0; i < n; i++) { /* Kafka's pattern: commit what is given up */
        shoal_topic_partition_offset_t o = {.topic = tps[i].topic, .partition = tps[i].partition};
        atomic_fetch_or(&coopl->revoked_mask[idx], 1u << tps[i].partition);
        o.offset = shoal_consumer_position(c, tps[i].topic, tps[i].partition);
        if (coop_commit_all)
            continue;
        if (shoal_commit_sync(c, &o, 1) == 0)
            atomic_fetch_add(&coopl->revoked_commits[idx], 1);
        else
            atomic_fetch_add(&coopl->revoked_refused[idx], 1);
    }
    if (coop_commit_all) /* or every position, those given up among them */
        atomic_fetch_add(shoal_commit_sync(c, NULL, 0) == 0 ? &coopl->revoked_commits[idx]
                                                            : &coopl->revoked_refused[idx],
                         (int)n);
}

static const shoal_assignor_t *coop_list[1];

static void coop_options(shoal_consumer_options_t *o, int idx)
{
    member_options(o, "coop", idx);
    o->assignors = coop_list;
    o->assignor_count = 1;
    o->on_assigned = coop_assigned;
    o->on_revoked = coop_revoked;
}

static int coop_member(void *arg)
{
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[16];
    (void)arg;

    coop_options(&o, 1);
    if (open_member(&cl, &c, &o, "co") < 0)
        return 10;
    while (!atomic_load(&sh->done))
        if (shoal_poll(c, recs, 16, 50) < 0)
            return 11;
    shoal_consumer_close(c);
    shoal_client_close(cl);
    return 0;
}

static bool coop_split(void)
{
    return atomic_load(&coopl->held[0]) == 2 && atomic_load(&coopl->held[1]) == 2;
}

/* Member 0 holds all 4 partitions and has read 3 records of each; member 1 joins; with a
 * cooperative assignor member 0 gives up exactly two, in one on_revoked, and keeps the
 * others throughout. Its commit of the two from on_revoked is taken (shoald refused it:
 * they are assigned to nobody until given up), so member 1 starts them where it stopped.
 * With commit_all, on_revoked commits every position (shoal_commit_sync(c, NULL, 0)): it
 * covers the two given up (it covered only the ones kept: the member's list was the new
 * assignment by then). */
static void cooperative_join(struct harness_fixture *f, const shoal_assignor_t *a, uint32_t mask,
                             bool commit_all)
{
    shoal_topic_config_t cfg = topic_cfg(4);
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    pid_t helper;

    coopl = mmap(NULL, sizeof(*coopl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(coopl != MAP_FAILED);
    coop_list[0] = a;
    coop_commit_all = commit_all;
    assert_int_equal(shoal_topic_create(f->c, "co", &cfg), 0);
    for (int p = 0; p < 4; p++)
        assert_int_equal(produce(f->c, "co", p, 3), 0);
    coop_options(&o, 0);
    assert_int_equal(open_member(&cl, &c, &o, "co"), 0);
    for (int i = 0, got = 0; i < 100 && got < 12; i++) {
        shoal_record_t recs[16];
        int n = shoal_poll(c, recs, 16, 20);
        assert_true(n >= 0);
        got += n;
    }
    assert_int_equal(atomic_load(&coopl->held[0]), 4);

    assert_true((helper = harness_fork(coop_member, NULL, 50)) > 0);
    {
        shoal_record_t recs[16];
        int64_t t0 = mono_ms();
        while (!coop_split() && mono_ms() - t0 < 10000)
            assert_true(shoal_poll(c, recs, 16, 20) >= 0);
    }
    assert_true(coop_split());
    /* the first member gave up 2 and 3 only, in one call, and kept 0 and 1 throughout */
    assert_int_equal(atomic_load(&coopl->revoked_calls[0]), 1);
    assert_int_equal(__builtin_popcount(atomic_load(&coopl->revoked_mask[0])), 2);
    if (mask)
        assert_int_equal(atomic_load(&coopl->revoked_mask[0]), mask);
    assert_int_equal(atomic_load(&coopl->revoked_calls[1]), 0);
    assert_int_equal(atomic_load(&sh->violations), 0);
    assert_int_equal(atomic_load(&coopl->revoked_commits[0]), 2);
    assert_int_equal(atomic_load(&coopl->revoked_refused[0]), 0);
    for (int p = 0; p < 4; p++)
        if (atomic_load(&coopl->revoked_mask[0]) & (1u << p)) {
            shoal_topic_partition_offset_t moved = {.topic = "co", .partition = p, .offset = 1};
            shoal_record_t recs[16];
            int64_t t0 = mono_ms();
            int rc;
            assert_int_equal(committed_of_partition(f->c, "coop", p), 3);
            /* member 1's now: member 0 may no longer commit it (once member 0 is through
             * the rebalance that gave it away: member 1 can hold it first) */
            while ((rc = shoal_commit_sync(c, &moved, 1)) == SHOAL_EREBALANCE &&
                   mono_ms() - t0 < 10000)
                assert_true(shoal_poll(c, recs, 16, 20) >= 0);
            assert_int_equal(rc, SHOAL_ENOTASSIGNED);
        }

    atomic_store(&sh->done, 1);
    assert_int_equal(harness_wait(helper, 10000), 0);
    shoal_consumer_close(c);
    shoal_client_close(cl);
    munmap(coopl, sizeof(*coopl));
}

INTEG_TEST(test_cooperative_rebalance_revokes_only_the_partitions_that_move)
{
    cooperative_join(f, &coop, 0xc, false);
    assert_true(harness_daemon_log_contains(&f->d, "assignor coop-range"));
}

INTEG_TEST(test_builtin_cooperative_sticky_moves_only_what_it_must)
{
    cooperative_join(f, shoal_assignor_builtin("cooperative-sticky"), 0, true);
    assert_true(harness_daemon_log_contains(&f->d, "assignor cooperative-sticky"));
}

/* Three member processes using one built-in assignor share six partitions two each. */
struct builtin_member {
    char group[64];
    const char *assignor;
    int idx;
};

static int builtin_member(void *arg)
{
    const struct builtin_member *b = arg;
    const shoal_assignor_t *list[1] = {shoal_assignor_builtin(b->assignor)};
    shoal_consumer_options_t o;
    shoal_client_t *cl;
    shoal_consumer_t *c;
    shoal_record_t recs[8];

    member_options(&o, b->group, b->idx);
    o.assignors = list;
    o.assignor_count = 1;
    if (!list[0] || open_member(&cl, &c, &o, "ev") < 0)
        return 10;
    while (!atomic_load(&sh->done))
        if (shoal_poll(c, recs, 8, 50) < 0)
            return 11;
    shoal_consumer_close(c);
    shoal_client_close(cl);
    return 0;
}

static void eager_builtin_splits_evenly(struct harness_fixture *f, const char *name)
{
    static struct builtin_member args[3];
    shoal_topic_config_t cfg = topic_cfg(6);
    pid_t pids[3];
    int64_t t0;

    assert_int_equal(shoal_topic_create(f->c, "ev", &cfg), 0);
    for (int i = 0; i < 3; i++) {
        snprintf(args[i].group, sizeof(args[i].group), "eager-%s", name);
        args[i].assignor = name;
        args[i].idx = i;
        assert_true((pids[i] = harness_fork(builtin_member, &args[i], 50)) > 0);
    }
    t0 = mono_ms();
    while (mono_ms() - t0 < 10000) {
        int ok = 0;
        for (int i = 0; i < 3; i++)
            ok += atomic_load(&sh->nassigned[i]) == 2;
        if (ok == 3)
            break;
        sleep_ms(5);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&sh->nassigned[i]), 2);
    assert_int_equal(atomic_load(&sh->violations), 0);
    atomic_store(&sh->done, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(harness_wait(pids[i], 10000), 0);
    assert_int_equal(shoal_topic_delete(f->c, "ev"), 0);
}

INTEG_TEST(test_builtin_roundrobin_and_sticky_split_partitions_evenly)
{
    eager_builtin_splits_evenly(f, "roundrobin");
    memset(sh, 0, sizeof(*sh));
    eager_builtin_splits_evenly(f, "sticky");
}

/* ------------------------------------------------------------------ admin and errors */

/* Send a raw request and return the response status. */
static int raw_status(const char *path, uint16_t type, const void *payload, size_t len)
{
    ctl_writer_t w;
    ctl_header_t h;
    uint8_t *resp = NULL;
    int fds[4];
    size_t nfds = 0;
    ctl_reader_t r;
    int fd = ctlsock_connect(path, -1), rc;

    if (fd < 0)
        return fd;
    ctl_writer_init(&w);
    ctl_frame_begin(&w, type, 7);
    ctl_put_raw(&w, payload, len);
    rc = ctl_frame_end(&w);
    if (rc == 0)
        rc = ctlsock_send(fd, w.buf, w.len, NULL, 0, -1);
    if (rc == 0)
        rc = ctlsock_recv_frame(fd, &h, &resp, fds, &nfds, 4, 5000);
    if (rc == 0) {
        ctl_reader_init(&r, resp, h.len);
        rc = ctl_get_status(&r, NULL, 0);
    }
    free(resp);
    ctl_writer_release(&w);
    close(fd);
    return rc;
}

INTEG_TEST(test_group_admin_and_bad_input_get_specific_errors)
{
    shoal_topic_config_t cfg = topic_cfg(2);
    shoal_topic_partition_offset_t other = {.topic = "adm", .partition = 1, .offset = 1};
    shoal_consumer_options_t o;
    shoal_group_listing_t *list;
    shoal_group_info_t *info = NULL;
    shoal_client_t *cl;
    shoal_consumer_t *c, *bad;
    shoal_record_t recs[4];
    const char *two[] = {"adm"};
    size_t n;
    int64_t first;

    assert_int_equal(shoal_topic_create(f->c, "adm", &cfg), 0);
    assert_int_equal(produce(f->c, "adm", 0, 10), 0);
    assert_int_equal(shoal_group_describe(f->c, "nobody", &info), SHOAL_ENOGROUP);
    assert_null(info);
    assert_int_equal(shoal_group_describe(f->c, "bad/id", &info), SHOAL_EGROUPID);
    assert_int_equal(shoal_group_delete(f->c, "nobody"), SHOAL_ENOGROUP);
    /* a dry run on a group that does not exist reports and creates nothing */
    assert_int_equal(shoal_group_reset_partitions(f->c, "nobody", "adm", NULL, 0,
                                                  SHOAL_SEEK_BEGINNING, 0, SHOAL_RESET_DRY_RUN,
                                                  NULL, NULL),
                     0);
    assert_int_equal(shoal_group_describe(f->c, "nobody", &info), SHOAL_ENOGROUP);

    member_options(&o, "bad group", 0);
    assert_int_equal(shoal_consumer_open(f->c, &o, &bad), SHOAL_EGROUPID);
    member_options(&o, "admins", 0);
    o.heartbeat_interval_ms = o.session_timeout_ms;
    assert_int_equal(shoal_consumer_open(f->c, &o, &bad), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "must be below session_timeout_ms"));
    member_options(&o, "admins", 0);
    o.client_id = "a-client-id-of-sixty-five-characters-which-is-one-more-than-allow";
    assert_int_equal(shoal_consumer_open(f->c, &o, &bad), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "64 at most"));
    o.client_id = "two\nlines"; /* it names the member in shoald's log */
    assert_int_equal(shoal_consumer_open(f->c, &o, &bad), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "control character"));
    {
        shoal_assignor_t forged = *shoal_assignor_builtin("range");
        const shoal_assignor_t *forged_list[] = {&forged};

        member_options(&o, "admins", 0);
        forged.name = "range\n<2> crit: forged"; /* so does the chosen assignor's name */
        o.assignors = forged_list;
        o.assignor_count = 1;
        assert_int_equal(shoal_consumer_open(f->c, &o, &bad), SHOAL_EINVAL);
        assert_non_null(strstr(shoal_errmsg(), "its name is empty or has a control character"));
    }

    /* a member that owns only partition 0 (the topic has 2; a second member takes 1) */
    member_options(&o, "admins", 0);
    assert_int_equal(open_member(&cl, &c, &o, "adm"), 0);
    for (int i = 0; i < 20 && atomic_load(&sh->nassigned[0]) == 0; i++)
        assert_true(shoal_poll(c, recs, 4, 20) >= 0);
    assert_int_equal(atomic_load(&sh->nassigned[0]), 2);
    assert_int_equal(shoal_consumer_subscribe(c, two, 1), SHOAL_EINVAL);
    assert_int_equal(shoal_consumer_assign(c, "adm", NULL, 0), SHOAL_EINVAL);
    assert_int_equal(shoal_consumer_unassign(c, "adm", NULL, 0), SHOAL_EINVAL);
    other.topic = "elsewhere";
    assert_int_equal(shoal_commit_sync(c, &other, 1), SHOAL_ENOTASSIGNED);
    assert_int_equal(shoal_commit_sync(c, NULL, 0), 0);
    /* partition 0 holds offsets 0..9: 10 (the end) is a commit, 11 is past it */
    other = (shoal_topic_partition_offset_t){.topic = "adm", .partition = 0, .offset = 11};
    assert_int_equal(shoal_commit_sync(c, &other, 1), SHOAL_EOFFSET);
    assert_non_null(strstr(shoal_errmsg(), "past the log end 10"));
    other.offset = INT64_MAX;
    assert_int_equal(shoal_commit_sync(c, &other, 1), SHOAL_EOFFSET);
    other.offset = 10;
    assert_int_equal(shoal_commit_sync(c, &other, 1), 0);

    assert_int_equal(shoal_group_list(f->c, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].group_id, "admins");
    assert_string_equal(list[0].state, "Stable");
    assert_int_equal(list[0].members, 1);
    shoal_group_list_free(list);
    assert_int_equal(shoal_group_describe(f->c, "admins", &info), 0);
    assert_string_equal(info->state, "Stable");
    assert_int_equal(info->member_count, 1);
    assert_int_equal(info->members[0].pid, (int32_t)getpid());
    assert_string_equal(info->members[0].client_id, "tester");
    assert_int_equal(info->members[0].assigned_count, 2);
    assert_string_equal(info->protocol, "range");
    shoal_group_info_free(info);

    assert_int_equal(shoal_group_reset_offsets(f->c, "admins", "adm", SHOAL_SEEK_BEGINNING, 0),
                     SHOAL_EGROUPACTIVE);
    assert_int_equal(shoal_group_reset_partitions(f->c, "admins", "adm", NULL, 0,
                                                  SHOAL_SEEK_BEGINNING, 0, SHOAL_RESET_DRY_RUN,
                                                  NULL, NULL),
                     0); /* a dry run may look at an active group */
    assert_int_equal(shoal_group_delete(f->c, "admins"), SHOAL_EGROUPACTIVE);
    assert_string_equal(shoal_errmsg(), "1 member of group admins still running: stop it first");

    /* malformed join and sync frames */
    assert_int_equal(raw_status(f->d.socket, CTL_GROUP_JOIN,
                                "\x03\x00"
                                "ab",
                                4),
                     SHOAL_EPROTO);
    assert_int_equal(raw_status(f->d.socket, CTL_GROUP_SYNC,
                                "\x06\x00"
                                "admins\x01",
                                9),
                     SHOAL_EPROTO);
    assert_int_equal(raw_status(f->d.socket, CTL_GROUP_HEARTBEAT, "", 0), SHOAL_EPROTO);

    shoal_consumer_close(c);
    shoal_client_close(cl);

    /* without members: reset to a given offset, and a new member starts there */
    assert_int_equal(shoal_group_reset_offsets(f->c, "admins", "adm", SHOAL_SEEK_OFFSET, 7), 0);
    assert_int_equal(shoal_group_describe(f->c, "admins", &info), 0);
    assert_string_equal(info->state, "Empty");
    assert_int_equal(info->offset_count, 2);
    assert_int_equal(info->offsets[0].committed, 7);
    assert_int_equal(info->offsets[1].committed, 0); /* clamped to the log end */
    shoal_group_info_free(info);
    member_options(&o, "admins", 0);
    {
        shoal_consumer_t *again;
        int got = 0;
        assert_int_equal(open_member(&cl, &again, &o, "adm"), 0);
        first = -1;
        for (int i = 0; i < 50 && got < 3; i++) {
            int k = shoal_poll(again, recs, 4, 20);
            assert_true(k >= 0);
            if (k > 0 && first < 0)
                first = recs[0].offset;
            got += k;
        }
        assert_int_equal(first, 7);
        assert_int_equal(got, 3);
        shoal_consumer_close(again);
        shoal_client_close(cl);
    }
    assert_int_equal(shoal_group_delete(f->c, "admins"), 0);
    assert_int_equal(shoal_group_describe(f->c, "admins", &info), SHOAL_ENOGROUP);
}

/* The group's committed offsets of partitions 0, 1 and 2 (-1: none). */
static void assert_committed(struct harness_fixture *f, const char *group, int64_t p0, int64_t p1,
                             int64_t p2)
{
    assert_int_equal(committed_of_partition(f->c, group, 0), p0);
    assert_int_equal(committed_of_partition(f->c, group, 1), p1);
    assert_int_equal(committed_of_partition(f->c, group, 2), p2);
}

static void assert_change(const shoal_offset_change_t *c, int32_t p, int64_t before, int64_t after)
{
    assert_int_equal(c->partition, p);
    assert_int_equal(c->committed, before);
    assert_int_equal(c->offset, after);
}

/* Kafka's reset-offsets forms: some partitions or all, to an end, an offset, a time or by
 * a shift; a dry run; all or nothing; a new group created by its first reset. */
INTEG_TEST(test_group_reset_partitions_moves_the_partitions_named_as_asked)
{
    shoal_topic_config_t cfg = topic_cfg(3);
    shoal_offset_change_t *ch;
    const int32_t p20[] = {2, 0}, p0[] = {0}, p01[] = {0, 1}, p00[] = {0, 0}, p3[] = {3};
    int64_t t_mid;
    size_t n;

    assert_int_equal(shoal_topic_create(f->c, "rst", &cfg), 0);
    for (int32_t p = 0; p < 3; p++)
        assert_int_equal(produce(f->c, "rst", p, 5), 0);
    usleep(20000);
    t_mid = (int64_t)time(NULL) * 1000; /* whole seconds: wait for the next one */
    do {
        usleep(5000);
    } while ((int64_t)time(NULL) * 1000 <= t_mid);
    t_mid = (int64_t)time(NULL) * 1000;
    usleep(20000);
    assert_int_equal(produce(f->c, "rst", 0, 5), 0); /* p0: 10 records, p1 and p2: 5 */

    /* a dry run says what would happen, to every partition, and does nothing */
    assert_int_equal(shoal_group_reset_partitions(f->c, "fresh", "rst", NULL, 0, SHOAL_SEEK_END, 0,
                                                  SHOAL_RESET_DRY_RUN, &ch, &n),
                     0);
    assert_int_equal(n, 3);
    assert_change(&ch[0], 0, -1, 10);
    assert_change(&ch[1], 1, -1, 5);
    assert_change(&ch[2], 2, -1, 5);
    shoal_offset_changes_free(ch);
    assert_int_equal(committed_of_partition(f->c, "fresh", 0), -2); /* no group */

    /* the first reset creates the group; the answer keeps the order asked */
    assert_int_equal(shoal_group_reset_partitions(f->c, "fresh", "rst", p20, 2, SHOAL_SEEK_OFFSET,
                                                  4, 0, &ch, &n),
                     0);
    assert_int_equal(n, 2);
    assert_change(&ch[0], 2, -1, 4);
    assert_change(&ch[1], 0, -1, 4);
    shoal_offset_changes_free(ch);
    assert_committed(f, "fresh", 4, -1, 4);

    /* shifts, clamped to the log; one partition with nothing to shift stops them all */
    assert_int_equal(shoal_group_reset_partitions(f->c, "fresh", "rst", p0, 1, SHOAL_RESET_SHIFT, 3,
                                                  0, NULL, NULL),
                     0);
    assert_committed(f, "fresh", 7, -1, 4);
    assert_int_equal(shoal_group_reset_partitions(f->c, "fresh", "rst", p01, 2, SHOAL_RESET_SHIFT,
                                                  -1, 0, NULL, NULL),
                     SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "no committed offset on rst-1 to shift"));
    assert_committed(f, "fresh", 7, -1, 4);
    assert_int_equal(shoal_group_reset_partitions(f->c, "fresh", "rst", p0, 1, SHOAL_RESET_SHIFT,
                                                  INT64_MIN, 0, &ch, &n),
                     0);
    assert_change(&ch[0], 0, 7, 0);
    shoal_offset_changes_free(ch);

    /* a time: the first record at or after it; past every record, the log end */
    assert_int_equal(shoal_group_reset_partitions(f->c, "fresh", "rst", NULL, 0,
                                                  SHOAL_SEEK_TIMESTAMP, t_mid, 0, NULL, NULL),
                     0);
    assert_committed(f, "fresh", 5, 5, 5);
    assert_int_equal(shoal_group_reset_offsets(f->c, "fresh", "rst", SHOAL_SEEK_BEGINNING, 0), 0);
    assert_committed(f, "fresh", 0, 0, 0);

    /* refused, with nothing changed */
    assert_int_equal(
        shoal_group_reset_partitions(f->c, "fresh", "rst", p3, 1, SHOAL_SEEK_END, 0, 0, NULL, NULL),
        SHOAL_ENOPARTITION);
    assert_int_equal(shoal_group_reset_partitions(f->c, "fresh", "rst", p00, 2, SHOAL_SEEK_END, 0,
                                                  0, NULL, NULL),
                     SHOAL_EINVAL);
    assert_int_equal(shoal_group_reset_partitions(f->c, "fresh", "rst", NULL, 0, SHOAL_SEEK_END, 0,
                                                  2, NULL, NULL),
                     SHOAL_EINVAL);
    assert_int_equal(
        shoal_group_reset_partitions(f->c, "fresh", "rst", NULL, 0, 5, 0, 0, NULL, NULL),
        SHOAL_EINVAL);
    assert_int_equal(shoal_group_reset_partitions(f->c, "fresh", "rst", NULL, 0,
                                                  SHOAL_SEEK_TIMESTAMP, -1, 0, NULL, NULL),
                     SHOAL_EINVAL);
    assert_int_equal(shoal_group_reset_partitions(f->c, "fresh", "gone", NULL, 0, SHOAL_SEEK_END, 0,
                                                  0, NULL, NULL),
                     SHOAL_ENOTOPIC);
    assert_committed(f, "fresh", 0, 0, 0);
    /* a raw request with an unknown flag (0x02) */
    assert_int_equal(raw_status(f->d.socket, CTL_GROUP_RESET,
                                "\x05\x00"
                                "fresh\x03\x00"
                                "rst\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00",
                                26),
                     SHOAL_EINVAL);
    assert_int_equal(shoal_group_delete(f->c, "fresh"), 0);
}

/* Poll c (keeping its membership alive) for ms milliseconds. */
static void poll_for(shoal_consumer_t *c, int ms)
{
    shoal_record_t recs[8];
    int64_t until = shoal__mono_ns() + ms * 1000000LL;

    while (shoal__mono_ns() < until)
        assert_true(shoal_poll(c, recs, 8, 50) >= 0);
}

/* A group without members whose last commit is older than offsets.retention loses its
 * offsets, as in Kafka; one with members keeps them however old, and the clock of one
 * starts when its last member leaves. */
INTEG_TEST(test_idle_groups_expire_after_the_offsets_retention)
{
    struct harness_daemon d = {0};
    shoal_topic_config_t cfg = topic_cfg(1);
    shoal_topic_partition_offset_t at = {.topic = "exp", .partition = 0, .offset = 3};
    shoal_consumer_options_t o;
    const char *fixture_sock = sock_path;
    shoal_client_t *admin, *cl;
    shoal_consumer_t *c;

    (void)f;
    assert_int_equal(harness_daemon_start(&d, "expiry", "--offsets.retention.ms", "1500",
                                          "--offsets.retention.check.interval.ms", "100", NULL),
                     0);
    sock_path = d.socket;
    assert_int_equal(shoal_client_open(d.socket, &admin), 0);
    assert_int_equal(shoal_topic_create(admin, "exp", &cfg), 0);
    assert_int_equal(produce(admin, "exp", 0, 5), 0);
    assert_int_equal(shoal_group_reset_offsets(admin, "idle", "exp", SHOAL_SEEK_END, 0), 0);
    for (int i = 0; i < 70; i++) { /* more than one pass deletes (GROUP_EXPIRE_MAX) */
        char id[16];
        snprintf(id, sizeof(id), "idle%02d", i);
        assert_int_equal(shoal_group_reset_offsets(admin, id, "exp", SHOAL_SEEK_END, 0), 0);
    }
    member_options(&o, "busy", 0);
    assert_int_equal(open_member(&cl, &c, &o, "exp"), 0);
    poll_for(c, 200);
    assert_int_equal(shoal_commit_sync(c, &at, 1), 0);

    poll_for(c, 3500); /* past the retention: the idle groups go, the busy one stays */
    assert_int_equal(committed_of_partition(admin, "idle", 0), -2);
    assert_int_equal(committed_of_partition(admin, "idle00", 0), -2);
    assert_int_equal(committed_of_partition(admin, "idle69", 0), -2);
    assert_int_equal(committed_of_partition(admin, "busy", 0), 3);
    harness_daemon_expect_log(&d, "group idle expired: no members and no commit for over 1 s");

    shoal_consumer_close(c);
    shoal_client_close(cl);
    usleep(800000); /* empty, but not for long enough */
    assert_int_equal(committed_of_partition(admin, "busy", 0), 3);
    for (int i = 0; i < 50 && committed_of_partition(admin, "busy", 0) == 3; i++)
        usleep(100000); /* an idle shoald looks once a second */
    assert_int_equal(committed_of_partition(admin, "busy", 0), -2);
    shoal_client_close(admin);
    sock_path = fixture_sock;
    assert_int_equal(harness_daemon_cleanup(&d), 0);
}

#define EXPIRY_CONF "offsets.retention.ms = 1000\noffsets.retention.check.interval.ms = %d\n"

/* A reload (SIGHUP) that shortens offsets.retention.check.interval.ms applies at once,
 * not after the interval it replaces (ten minutes here). */
INTEG_TEST(test_a_reload_shortens_the_expiry_check_at_once)
{
    struct harness_daemon d = {0};
    shoal_topic_config_t cfg = topic_cfg(1);
    char conf[PATH_MAX];
    char body[128];
    shoal_client_t *admin;
    int i;

    (void)f;
    harness_tmpdir(conf, sizeof(conf) - 16, "expconf");
    strcat(conf, "/shoald.conf");
    snprintf(body, sizeof(body), EXPIRY_CONF, 600000);
    harness_write_file(conf, body, strlen(body));
    assert_int_equal(harness_daemon_start(&d, "reload", "--config", conf, NULL), 0);
    assert_int_equal(shoal_client_open(d.socket, &admin), 0);
    assert_int_equal(shoal_topic_create(admin, "exp", &cfg), 0);
    assert_int_equal(shoal_group_reset_offsets(admin, "old", "exp", SHOAL_SEEK_END, 0), 0);
    usleep(1500000); /* idle past the retention; the next check is minutes away */
    assert_int_equal(committed_of_partition(admin, "old", 0), 0);

    snprintf(body, sizeof(body), EXPIRY_CONF, 100);
    harness_write_file(conf, body, strlen(body));
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    for (i = 0; i < 50 && committed_of_partition(admin, "old", 0) == 0; i++)
        usleep(100000);
    assert_int_equal(committed_of_partition(admin, "old", 0), -2);
    assert_true(i < 30); /* within about a second and a half of the reload */
    shoal_client_close(admin);
    assert_int_equal(harness_daemon_cleanup(&d), 0);
    *strrchr(conf, '/') = '\0';
    harness_rmrf(conf);
}

/* A member of group on a new topic of 2 partitions, with auto_offset_reset reset, once it
 * holds both. */
static void member_of_two_partitions(struct harness_fixture *f, const char *topic,
                                     const char *group, uint32_t reset, shoal_client_t **cl,
                                     shoal_consumer_t **c)
{
    shoal_topic_config_t cfg = topic_cfg(2);
    shoal_consumer_options_t o;
    shoal_record_t recs[8];

    assert_int_equal(shoal_topic_create(f->c, topic, &cfg), 0);
    member_options(&o, group, 0);
    o.auto_offset_reset = reset;
    assert_int_equal(open_member(cl, c, &o, topic), 0);
    for (int i = 0; i < 100 && atomic_load(&sh->nassigned[0]) != 2; i++)
        assert_true(shoal_poll(*c, recs, 8, 20) >= 0);
    assert_int_equal(atomic_load(&sh->nassigned[0]), 2);
}

/* The topic grows to 4 partitions and 5 records go to partition 3 at once (before the
 * member's rebalance). */
static void grow_to_four_and_send_to_3(struct harness_fixture *f, const char *topic)
{
    const char *name[] = {"partitions"}, *value[] = {"4"};

    assert_int_equal(shoal_topic_alter(f->c, topic, name, value, 1), 0);
    assert_int_equal(produce(f->c, topic, 3, 5), 0);
}

/* Poll until the member has read 5 records of partition 3 (or 3 s): how many it read. */
static int records_of_partition_3(shoal_consumer_t *c)
{
    shoal_record_t recs[8];
    int got = 0;

    for (int i = 0; i < 150 && got < 5; i++) {
        int n = shoal_poll(c, recs, 8, 20);
        assert_true(n >= 0);
        for (int k = 0; k < n; k++)
            got += recs[k].partition == 3;
    }
    assert_int_equal(atomic_load(&sh->nassigned[0]), 4);
    return got;
}

/* Partitions added to a topic reach a group's members by a rebalance, as in Kafka. */
INTEG_TEST(test_partitions_added_to_a_topic_are_assigned_to_its_group)
{
    shoal_client_t *cl;
    shoal_consumer_t *c;

    member_of_two_partitions(f, "widen", "wideners", SHOAL_OFFSET_RESET_EARLIEST, &cl, &c);
    grow_to_four_and_send_to_3(f, "widen");
    assert_int_equal(records_of_partition_3(c), 5);
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* A group that reads a topic starts partitions added to it at their beginning, even with
 * auto_offset_reset latest: what producers sent there before the rebalance is read, not
 * skipped (KAFKA-12478). A group that has no offsets in the topic is left alone. */
INTEG_TEST(test_partitions_added_to_a_topic_are_read_from_their_start_with_latest)
{
    shoal_topic_config_t cfg = topic_cfg(2);
    shoal_client_t *cl;
    shoal_consumer_t *c;

    assert_int_equal(shoal_topic_create(f->c, "aside", &cfg), 0);
    assert_int_equal(shoal_group_reset_offsets(f->c, "bystanders", "aside", SHOAL_SEEK_END, 0), 0);
    member_of_two_partitions(f, "late", "laters", SHOAL_OFFSET_RESET_LATEST, &cl, &c);
    assert_int_equal(shoal_commit_sync(c, NULL, 0), 0);
    grow_to_four_and_send_to_3(f, "late");
    assert_int_equal(committed_of_topic(f->c, "laters", "late", 3), 0);
    assert_int_equal(committed_of_topic(f->c, "bystanders", "late", 3), -1);
    assert_int_equal(records_of_partition_3(c), 5);
    shoal_consumer_close(c);
    shoal_client_close(cl);
}

/* ------------------------------------------------------------------ garbage */

INTEG_TEST(test_daemon_answers_garbage_group_requests_and_stays_usable)
{
    uint8_t buf[256];
    uint32_t x = 12345;
    shoal_group_listing_t *list;
    size_t n;

    for (uint16_t type = CTL_GROUP_JOIN; type <= CTL_GROUP_DELETE; type++)
        for (int k = 0; k < 40; k++) {
            size_t len = (size_t)(k * 7 % 200);
            int rc;
            for (size_t i = 0; i < len; i++) {
                x = x * 1103515245u + 12345u;
                buf[i] = (uint8_t)(x >> 16);
            }
            if (k % 4 == 0 && len >= 2) { /* a plausible short string first */
                buf[0] = (uint8_t)(len / 3);
                buf[1] = 0;
            }
            rc = raw_status(f->d.socket, type, buf, len);
            if (rc > 0 || (rc == 0 && type != CTL_GROUP_LIST))
                fail_msg("type %u, %zu garbage bytes: status %d", type, len, rc);
        }
    assert_int_equal(shoal_group_list(f->c, &list, &n), 0);
    shoal_group_list_free(list);
}

/* ------------------------------------------------------------------ commit batching */

/* An administrative commit (no member, allowed while the group is empty) as raw bytes. */
INTEG_TEST(test_commits_arriving_together_share_one_transaction_and_are_durable)
{
    enum { NCONN = 8 };
    shoal_topic_config_t cfg = topic_cfg(1);
    int fds[NCONN];
    bool batched = false;

    assert_int_equal(shoal_topic_create(f->c, "bt", &cfg), 0);     /* commits need a topic */
    assert_int_equal(produce(f->c, "bt", 0, 20 * 100 + NCONN), 0); /* ... and its records */
    for (int round = 0; round < 20 && !batched; round++) {
        for (int i = 0; i < NCONN; i++)
            assert_true((fds[i] = ctlsock_connect(f->d.socket, -1)) >= 0);
        for (int i = 0; i < NCONN; i++) {
            ctl_writer_t w;
            ctl_writer_init(&w);
            put_admin_commit(&w, "batch", "bt", 0, round * 100 + i);
            assert_int_equal(ctlsock_send(fds[i], w.buf, w.len, NULL, 0, -1), 0);
            ctl_writer_release(&w);
        }
        for (int i = 0; i < NCONN; i++) {
            ctl_header_t h;
            uint8_t *resp = NULL;
            int rfds[2];
            size_t nfds = 0;
            ctl_reader_t r;
            assert_int_equal(ctlsock_recv_frame(fds[i], &h, &resp, rfds, &nfds, 2, 5000), 0);
            ctl_reader_init(&r, resp, h.len);
            assert_int_equal(ctl_get_status(&r, NULL, 0), 0);
            free(resp);
            close(fds[i]);
        }
        batched = harness_daemon_log_contains(&f->d, "offsets) in one transaction");
    }
    assert_true(batched);
    /* every commit returned: the last one of the last round is what is stored */
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    shoal_client_close(f->c);
    assert_int_equal(shoal_client_open(f->d.socket, &f->c), 0);
    shoal_group_info_t *info;
    assert_int_equal(shoal_group_describe(f->c, "batch", &info), 0);
    assert_int_equal(info->offset_count, 1);
    assert_true(info->offsets[0].committed % 100 < NCONN);
    shoal_group_info_free(info);
}

/* ------------------------------------------------------------------ the CLI */

/* Run the shoal tool with SHOAL_SOCKET set; returns its exit status and counts output lines. */
static int run_cli(const char *args, int *lines, char *out, size_t cap)
{
    char cmd[1024], buf[512];
    const char *build = getenv("BUILD");
    size_t used = 0;
    FILE *fp;
    int st;

    snprintf(cmd, sizeof(cmd), "SHOAL_SOCKET='%s' %s/shoal %s 2>&1", sock_path,
             build && *build ? build : "build", args);
    if (!(fp = popen(cmd, "r")))
        return -1;
    *lines = 0;
    if (out)
        out[0] = '\0';
    while (fgets(buf, sizeof(buf), fp)) {
        (*lines)++;
        if (out && used + strlen(buf) < cap) {
            memcpy(out + used, buf, strlen(buf) + 1);
            used += strlen(buf);
        }
    }
    st = pclose(fp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* In `group reset-offsets` output: "COMMITTED NEW-OFFSET" of partition p's row, as
 * "10 0" ("-" for none), or "" when there is no such row. */
static const char *reset_row(const char *out, int p)
{
    static char got[64];
    const char *line = out;

    got[0] = '\0';
    for (; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char before[24], after[24];
        int part;
        if (sscanf(line, "%*s %*s %d %23s %23s", &part, before, after) == 3 && part == p) {
            snprintf(got, sizeof(got), "%s %s", before, after);
            break;
        }
    }
    return got;
}

INTEG_TEST(test_cli_consume_group_resumes_and_group_commands_report)
{
    shoal_topic_config_t cfg = topic_cfg(2);
    static char out[8192];
    int lines;

    assert_int_equal(shoal_topic_create(f->c, "cli", &cfg), 0);
    assert_int_equal(produce(f->c, "cli", 0, 10), 0);
    assert_int_equal(produce(f->c, "cli", 1, 10), 0);
    assert_int_equal(
        run_cli("consume cli --group cg --from-beginning --max-messages 12", &lines, NULL, 0), 0);
    assert_int_equal(lines, 12);
    assert_int_equal(
        run_cli("consume cli --group cg --from-beginning --timeout-ms 300", &lines, NULL, 0), 0);
    assert_int_equal(lines, 8);
    assert_int_equal(run_cli("group list", &lines, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "cg"));
    assert_int_equal(run_cli("group describe cg", &lines, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "state: Empty"));
    assert_non_null(strstr(out, "cli"));
    assert_int_equal(run_cli("group describe nope", &lines, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "no such consumer group"));
    assert_int_equal(
        run_cli("group reset-offsets cg --topic cli --to-earliest", &lines, out, sizeof(out)), 0);
    assert_int_equal(lines, 3); /* the header, then partition, before and after */
    assert_string_equal(reset_row(out, 0), "10 0");
    assert_string_equal(reset_row(out, 1), "10 0");
    assert_int_equal(run_cli("consume cli --group cg --timeout-ms 300", &lines, NULL, 0), 0);
    assert_int_equal(lines, 20);
    /* one partition, a shift back, a dry run; a time and a duration */
    assert_int_equal(run_cli("group reset-offsets cg --topic cli:1 --shift-by -4 --dry-run", &lines,
                             out, sizeof(out)),
                     0);
    assert_int_equal(lines, 3); /* and the dry run's note */
    assert_string_equal(reset_row(out, 1), "10 6");
    assert_string_equal(reset_row(out, 0), "");
    assert_non_null(strstr(out, "dry run: nothing was changed"));
    assert_int_equal(run_cli("consume cli --group cg --timeout-ms 300", &lines, NULL, 0), 0);
    assert_int_equal(lines, 0); /* nothing was changed */
    assert_int_equal(
        run_cli("group reset-offsets cg --topic cli:1 --shift-by -4 --execute", &lines, NULL, 0),
        0);
    assert_int_equal(run_cli("consume cli --group cg --timeout-ms 300", &lines, NULL, 0), 0);
    assert_int_equal(lines, 4);
    assert_int_equal(
        run_cli("group reset-offsets cg --topic cli --by-duration PT1H", &lines, NULL, 0), 0);
    assert_int_equal(run_cli("consume cli --group cg --timeout-ms 300", &lines, NULL, 0), 0);
    assert_int_equal(lines, 20);
    assert_int_equal(run_cli("group reset-offsets cg --topic cli --to-datetime 2099-01-01T00:00Z",
                             &lines, NULL, 0),
                     0);
    assert_int_equal(run_cli("consume cli --group cg --timeout-ms 300", &lines, NULL, 0), 0);
    assert_int_equal(lines, 0); /* the log end: no record is that late */
    assert_int_equal(run_cli("group reset-offsets cg --topic cli --to-datetime 2026-02-30", &lines,
                             out, sizeof(out)),
                     2);
    assert_non_null(strstr(out, "day 30 out of range"));
    assert_int_equal(run_cli("group reset-offsets cg --topic cli:0 --topic other --to-earliest",
                             &lines, out, sizeof(out)),
                     2);
    assert_non_null(strstr(out, "--topic once"));
    assert_int_equal(run_cli("consume cli --group cg --partition 1", &lines, NULL, 0), 2);
    assert_int_equal(run_cli("group delete cg", &lines, NULL, 0), 0);
    assert_int_equal(run_cli("group describe cg", &lines, NULL, 0), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_three_members_share_partitions_and_a_sigkilled_members_move_fast),
        T(test_two_groups_on_one_topic_each_receive_every_record),
        T(test_committed_offsets_survive_a_daemon_restart_and_consumers_resume_there),
        T(test_a_daemon_stop_does_not_log_its_members_as_ended),
        T(test_a_topic_deleted_and_created_again_has_no_committed_offsets),
        T(test_a_pattern_subscription_takes_matching_topics_and_ones_created_later),
        T(test_unsubscribe_leaves_the_group_and_frees_the_consumer),
        T(test_a_member_cannot_commit_into_a_topic_created_again_under_its_name),
        T(test_polls_without_a_daemon_wait_their_timeout_before_enodaemon),
        T(test_a_member_without_commits_resumes_where_it_was_after_a_daemon_restart),
        T(test_a_group_consumer_lives_through_a_daemon_restart_and_resumes_at_its_commit),
        T(test_member_past_max_poll_interval_loses_partitions_is_fenced_and_rejoins),
        T(test_a_member_fenced_before_its_offset_fetch_rejoins_inside_poll),
        T(test_member_silent_past_session_timeout_loses_partitions_and_rejoins),
        T(test_async_commits_report_through_on_commit_and_are_stored),
        T(test_a_consumer_refuses_close_and_poll_inside_its_own_callback),
        T(test_async_commits_into_a_stopped_daemon_end_at_their_deadline),
        T(test_a_wakeup_ends_the_waits_for_a_stopped_daemon),
        T(test_a_member_stopped_past_its_session_returns_nothing_it_lost),
        T(test_a_member_stopped_awaiting_a_heartbeat_answer_returns_nothing_it_lost),
        T(test_async_commits_cut_off_by_a_dead_daemon_still_report),
        T(test_async_commits_answer_in_order_when_one_is_refused),
        T(test_polls_keep_their_timeout_while_the_daemon_is_stopped),
        T(test_a_stopped_daemon_does_not_expire_its_members),
        T(test_a_poll_reconnecting_to_a_stopped_daemon_keeps_its_timeout),
        T(test_subscribing_while_the_daemon_is_stopped_does_not_wait),
        T(test_a_daemon_stopped_before_the_offset_fetch_holds_no_poll),
        T(test_a_daemon_stopped_before_the_attaches_holds_no_poll),
        T(test_a_member_polling_without_waiting_gets_its_partitions),
        T(test_a_topic_deleted_while_attaching_fails_that_round_only),
        T(test_a_daemon_stopped_as_a_round_begins_holds_no_poll),
        T(test_close_as_a_round_begins_with_the_daemon_stopped_waits_its_time_only),
        T(test_close_gives_its_commit_up_after_the_session_timeout_while_the_daemon_is_stopped),
        T(test_a_poll_reading_from_disk_keeps_its_timeout_while_the_daemon_is_stopped),
        T(test_a_late_segment_lookups_answer_serves_its_next_try),
        T(test_a_plain_consumer_reading_from_disk_keeps_its_timeout_while_the_daemon_is_stopped),
        T(test_group_admin_and_bad_input_get_specific_errors),
        T(test_group_reset_partitions_moves_the_partitions_named_as_asked),
        T(test_idle_groups_expire_after_the_offsets_retention),
        T(test_a_reload_shortens_the_expiry_check_at_once),
        T(test_partitions_added_to_a_topic_are_assigned_to_its_group),
        T(test_partitions_added_to_a_topic_are_read_from_their_start_with_latest),
        T(test_restarted_static_member_gets_its_partitions_back_without_a_rebalance),
        T(test_a_second_process_with_the_same_instance_id_fences_the_first_for_good),
        T(test_a_group_held_by_an_absent_static_member_says_so),
        T(test_a_child_closing_an_inherited_member_leaves_the_parent_in_the_group),
        T(test_subscription_to_a_topic_created_later_gets_its_partitions),
        T(test_cli_consume_group_resumes_and_group_commands_report),
        T(test_an_application_assignor_is_used_and_a_member_without_a_common_one_is_refused),
        T(test_a_poll_keeps_its_timeout_while_the_rebalance_waits_for_a_slow_member),
        T(test_a_cooperative_member_reads_while_joining_and_what_moves_is_read_once),
        T(test_a_commit_sent_while_joining_is_answered_before_close),
        T(test_a_newcomer_is_assigned_about_a_heartbeat_after_it_joins),
        T(test_a_member_reads_while_the_sync_waits_and_commits_it_at_close),
        T(test_closing_while_the_sync_waits_lets_on_revoked_commit),
        T(test_a_member_busy_after_a_long_sync_keeps_its_session),
        T(test_a_connection_broken_inside_on_revoked_revokes_nothing_twice),
        T(test_a_member_fenced_inside_on_revoked_keeps_its_callback_list),
        T(test_a_failing_assignor_is_reported_and_retried_a_heartbeat_interval_later),
        T(test_a_leader_whose_assignor_keeps_failing_is_removed_and_the_others_go_on),
        T(test_commits_arriving_together_share_one_transaction_and_are_durable),
        T(test_daemon_answers_garbage_group_requests_and_stays_usable),
        T(test_cooperative_rebalance_revokes_only_the_partitions_that_move),
        T(test_builtin_cooperative_sticky_moves_only_what_it_must),
        T(test_builtin_roundrobin_and_sticky_split_partitions_evenly),
#undef T
    };
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
