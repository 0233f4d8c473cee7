/* test_broker.c - multi-process integration tests against a real shoald.
 *
 * Each test starts its own daemon in a temp dir (tests/harness.c), talks to it through
 * libshoal like any client, and forks helper producer/consumer processes where the
 * behaviour is about processes: several producers on one partition, a consumer asleep in
 * shoal_poll() woken by another process, a consumer SIGKILLed while it holds views, the
 * daemon SIGKILLed and restarted. Helpers run under alarm() and report through their exit
 * status (0 = fine, otherwise a code naming the check that failed); they never call cmocka,
 * whose jump buffers belong to the parent. Raw frames built with ctlproto.h check that the
 * daemon survives malformed control messages, and a flipped bit in a segment file checks
 * recovery from disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctlproto.h"
#include "ctlsock.h"
#include "client.h"
#include "harness.h"
#include "record.h"
#include "segment.h"
#include "shm_layout.h"
#include "shoal.h"
#include "util.h"

#define TEST_TIMEOUT_S 40 /* the watchdog for one test, daemon start included */
#define SMALL_SEGMENT  (64ull << 10)

/* ------------------------------------------------------------------ helpers */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static shoal_topic_config_t topic_cfg(uint32_t partitions, uint64_t segment_bytes, uint32_t slots)
{
    shoal_topic_config_t cfg;
    shoal_topic_config_init(&cfg);
    cfg.partitions = partitions;
    cfg.segment_bytes = segment_bytes;
    cfg.ring_slots = slots;
    cfg.max_record_bytes = (uint32_t)(segment_bytes / 4);
    return cfg;
}

/* A deterministic value of len bytes for record i: "<i>:" then a pattern that depends on
 * i, so a record read back under another offset or with a stray byte is noticed. */
static size_t make_value(char *buf, size_t len, int64_t i)
{
    int n = snprintf(buf, len, "%" PRId64 ":", i);
    for (size_t k = (size_t)n; k < len; k++)
        buf[k] = (char)('a' + (int)((k * 7 + (size_t)i) % 26));
    return len;
}

static size_t value_len_for(int64_t i)
{
    return 40 + (size_t)(i % 200);
}

static bool value_matches(const shoal_record_t *r, int64_t i)
{
    char want[512];
    size_t len = make_value(want, value_len_for(i), i);
    return r->value_len == (int32_t)len && memcmp(r->value, want, len) == 0;
}

static int send_one(shoal_producer_t *p, int32_t partition, const void *key, size_t key_len,
                    const void *value, size_t value_len, shoal_ack_t *ack)
{
    shoal_message_t m = {.key = key,
                         .key_len = key_len,
                         .value = value,
                         .value_len = value_len,
                         .partition = partition};
    return shoal_send(p, &m, ack);
}

/* Send records first..first+n-1 (make_value contents) to a partition; each must get the
 * next offset. Returns 0 or the failing code. */
static int send_range(shoal_producer_t *p, int32_t partition, int64_t first, int64_t n)
{
    char buf[512];
    for (int64_t i = first; i < first + n; i++) {
        shoal_ack_t ack;
        size_t len = make_value(buf, value_len_for(i), i);
        int rc = send_one(p, partition, NULL, 0, buf, len, &ack);
        if (rc < 0) {
            fprintf(stderr, "send %" PRId64 ": %s (%s)\n", i, shoal_err_name(rc), shoal_errmsg());
            return rc;
        }
        if (ack.offset != i || ack.partition != partition) {
            fprintf(stderr, "send %" PRId64 ": acknowledged at %d/%" PRId64 "\n", i, ack.partition,
                    ack.offset);
            return -1;
        }
    }
    return 0;
}

static int produce_range(shoal_client_t *c, const char *topic, int32_t partition, int64_t first,
                         int64_t n, uint32_t acks)
{
    shoal_producer_options_t o;
    shoal_producer_t *p;
    int rc;

    shoal_producer_options_init(&o);
    o.acks = acks;
    if ((rc = shoal_producer_open(c, topic, &o, &p)) < 0)
        return rc;
    rc = send_range(p, partition, first, n);
    shoal_producer_close(p);
    return rc;
}

typedef bool (*record_check_fn)(const shoal_record_t *r, int64_t index, void *arg);

/* Read one partition from its log start until `want` records came or `idle_ms` passed
 * without one; check(record, index) must hold for each. Returns how many were read and
 * matched in order from offset `first` (stops at the first mismatch), or a negative code. */
static int64_t read_partition(shoal_client_t *c, const char *topic, int32_t partition,
                              int64_t first, int64_t want, int idle_ms, record_check_fn check,
                              void *arg)
{
    shoal_record_t recs[256];
    shoal_consumer_t *cons;
    int64_t got = 0;
    int rc;

    if ((rc = shoal_consumer_open(c, NULL, &cons)) < 0)
        return rc;
    rc = shoal_consumer_assign(cons, topic, &partition, 1);
    if (rc == 0)
        rc = shoal_consumer_seek(cons, topic, partition, SHOAL_SEEK_OFFSET, first);
    while (rc == 0 && got < want) {
        int n = shoal_poll(cons, recs, 256, idle_ms);
        if (n <= 0) {
            rc = n;
            break;
        }
        for (int k = 0; k < n; k++, got++) {
            if (recs[k].offset != first + got || recs[k].partition != partition ||
                !check(&recs[k], first + got, arg)) {
                fprintf(stderr, "%s-%d: record %" PRId64 " came as offset %" PRId64 " (%.*s)\n",
                        topic, partition, first + got, recs[k].offset,
                        recs[k].value_len > 40 ? 40 : (int)recs[k].value_len,
                        (const char *)recs[k].value);
                shoal_consumer_close(cons);
                return got;
            }
        }
    }
    shoal_consumer_close(cons);
    if (rc < 0)
        fprintf(stderr, "%s-%d: read stopped after %" PRId64 ": %s (%s)\n", topic, partition, got,
                shoal_err_name(rc), shoal_errmsg());
    return rc < 0 ? rc : got;
}

static bool check_made_value(const shoal_record_t *r, int64_t index, void *arg)
{
    (void)arg;
    return value_matches(r, index);
}

/* Every record 0..n-1 of a partition is there with make_value contents, and no more. */
static void assert_partition_holds(shoal_client_t *c, const char *topic, int32_t partition,
                                   int64_t n)
{
    shoal_topic_info_t *info = NULL;
    assert_int_equal(read_partition(c, topic, partition, 0, n, 2000, check_made_value, NULL), n);
    assert_int_equal(shoal_topic_describe(c, topic, &info), 0);
    assert_int_equal(info->partitions[partition].log_end_offset, n);
    shoal_topic_info_free(info);
}

static int reconnect(struct harness_fixture *f)
{
    shoal_client_close(f->c);
    f->c = NULL;
    return shoal_client_open(f->d.socket, &f->c);
}

/* Restart shoald with its ring making slowed down by ms (SHOALD_TEST_CREATE_MS: creates
 * and grows take that much longer, as large rings do), and connect f->c to it again. */
static void restart_with_slow_rings(struct harness_fixture *f, const char *ms)
{
    shoal_client_close(f->c);
    f->c = NULL;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    setenv("SHOALD_TEST_CREATE_MS", ms, 1);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    unsetenv("SHOALD_TEST_CREATE_MS");
    assert_int_equal(reconnect(f), 0);
}

/* The names one of the topic lists gives, each followed by a newline, in out. */
static void list_names(shoal_client_t *c, bool unserved, char *out, size_t cap)
{
    char **names;
    size_t n, used = 0;

    assert_int_equal(
        unserved ? shoal_topic_list_unserved(c, &names, &n) : shoal_topic_list(c, &names, &n), 0);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s\n", names[i]);
    shoal_topic_list_free(names, n);
}

/* What `shoal topic list` prints on standard output. */
static void cli_topic_list(const struct harness_fixture *f, char *out, size_t cap)
{
    const char *build = getenv("BUILD");
    char cmd[PATH_MAX + 256];
    size_t n;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "timeout 30 %s/shoal --socket '%s' topic list",
             build && *build ? build : "build", f->d.socket);
    assert_non_null(p = popen(cmd, "r"));
    n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
}

static int count_topics(shoal_client_t *c)
{
    char **names;
    size_t n;
    if (shoal_topic_list(c, &names, &n) < 0)
        return -1;
    shoal_topic_list_free(names, n);
    return (int)n;
}

/* Entries in a directory other than "." and "..". */
static int count_dir_entries(const char *path, const char *suffix)
{
    DIR *dir = opendir(path);
    struct dirent *e;
    int n = 0;
    if (!dir)
        return -1;
    while ((e = readdir(dir))) {
        size_t len = strlen(e->d_name), sl = suffix ? strlen(suffix) : 0;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (!suffix || (len >= sl && !strcmp(e->d_name + len - sl, suffix)))
            n++;
    }
    closedir(dir);
    return n;
}

/* The bytes of the .log files in a partition directory. */
static long long log_bytes(const char *path)
{
    DIR *dir = opendir(path);
    struct dirent *e;
    struct stat st;
    long long n = 0;

    while (dir && (e = readdir(dir))) {
        size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".log") &&
            fstatat(dirfd(dir), e->d_name, &st, 0) == 0)
            n += st.st_size;
    }
    if (dir)
        closedir(dir);
    return n;
}

/* Copy the file from over the file to. 0 or -1. */
static int copy_file(const char *from, const char *to)
{
    char buf[1 << 16];
    int in = open(from, O_RDONLY | O_CLOEXEC), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ssize_t n = 0;

    while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n)
            n = -1;
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return in < 0 || out < 0 || n < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ fixture */

static int setup(void **state)
{
    static struct harness_fixture f;
    *state = &f;
    return harness_fixture_start(&f, "integ", TEST_TIMEOUT_S, "--log-level", "debug", NULL);
}

static int teardown(void **state)
{
    return harness_fixture_stop(*state);
}

/* ------------------------------------------------------------------ topic admin */

INTEG_TEST(test_topics_can_be_created_listed_described_and_deleted)
{
    shoal_topic_config_t cfg = topic_cfg(3, 1ull << 20, 3);
    shoal_topic_info_t *info = NULL;
    char **names;
    size_t n;

    assert_int_equal(shoal_topic_create(f->c, "beta", NULL), 0);
    assert_int_equal(shoal_topic_create(f->c, "alpha", &cfg), 0);
    assert_int_equal(shoal_topic_list(f->c, &names, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "alpha");
    assert_string_equal(names[1], "beta");
    shoal_topic_list_free(names, n);

    assert_int_equal(shoal_topic_describe(f->c, "alpha", &info), 0);
    assert_string_equal(info->name, "alpha");
    assert_int_equal(info->config.partitions, 3);
    assert_int_equal(info->config.segment_bytes, 1ull << 20);
    assert_int_equal(info->config.ring_slots, 3);
    assert_int_equal(info->config.max_record_bytes, cfg.max_record_bytes);
    for (int p = 0; p < 3; p++) {
        assert_int_equal(info->partitions[p].partition, p);
        assert_int_equal(info->partitions[p].log_start_offset, 0);
        assert_int_equal(info->partitions[p].log_end_offset, 0);
    }
    shoal_topic_info_free(info);

    assert_int_equal(shoal_topic_delete(f->c, "beta"), 0);
    assert_int_equal(shoal_topic_list(f->c, &names, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "alpha");
    shoal_topic_list_free(names, n);
    assert_int_equal(shoal_topic_describe(f->c, "beta", &info), SHOAL_ENOTOPIC);
    assert_null(info);
}

static void expect_create_fails(shoal_client_t *c, const char *name,
                                const shoal_topic_config_t *cfg, int want)
{
    int rc = shoal_topic_create(c, name, cfg);
    if (rc != want)
        fail_msg("create '%.20s': got %s, want %s (%s)", name, shoal_err_name(rc),
                 shoal_err_name(want), shoal_errmsg());
}

struct slow_create {
    const char *socket;
    atomic_bool done;
    int rc;
};

static void *create_slowly(void *arg)
{
    struct slow_create *sc = arg;
    shoal_client_t *c;

    sc->rc = shoal_client_open(sc->socket, &c);
    if (sc->rc == 0) {
        sc->rc = shoal_topic_create(c, "slow", NULL);
        shoal_client_close(c);
    }
    atomic_store(&sc->done, true);
    return NULL;
}

/* A create makes its rings (seconds, for large ones; here SHOALD_TEST_CREATE_MS makes it
 * 3 s) without holding up anyone else: meanwhile other requests are answered and the
 * flusher fsyncs other topics, and the topic being created is named as such, neither
 * created twice nor deleted. (The daemon used to do it all inside its one server thread,
 * under the registry's write lock.) */
INTEG_TEST(test_a_slow_create_holds_up_neither_clients_nor_the_flusher)
{
    shoal_message_t m = {.value = "v", .value_len = 1, .partition = 0};
    struct slow_create sc = {.socket = f->d.socket};
    shoal_producer_options_t po;
    shoal_topic_info_t *info;
    shoal_producer_t *p;
    bool being_created = false;
    char names[256];
    pthread_t th;
    int rc;

    assert_int_equal(shoal_topic_create(f->c, "quick", NULL), 0);
    restart_with_slow_rings(f, "3000");
    shoal_producer_options_init(&po);
    po.acks = SHOAL_ACKS_DISK;
    assert_int_equal(shoal_producer_open(f->c, "quick", &po, &p), 0);

    assert_int_equal(pthread_create(&th, NULL, create_slowly, &sc), 0);
    for (int i = 0; i < 200 && !being_created; i++, usleep(5000)) {
        if ((rc = shoal_topic_describe(f->c, "slow", &info)) == 0)
            shoal_topic_info_free(info);
        being_created = rc == SHOAL_ENOTOPIC &&
                        strstr(shoal_errmsg(), "topic slow is still being created") != NULL;
    }
    assert_true(being_created);
    assert_int_equal(shoal_topic_create(f->c, "slow", NULL), SHOAL_ETOPICEXISTS);
    assert_non_null(strstr(shoal_errmsg(), "still being created"));
    assert_int_equal(shoal_topic_delete(f->c, "slow"), SHOAL_ADMIN_ACTION);
    list_names(f->c, true, names, sizeof(names));
    assert_string_equal(names, "");
    assert_int_equal(shoal_topic_describe(f->c, "quick", &info), 0);
    shoal_topic_info_free(info);
    assert_int_equal(shoal_send(p, &m, NULL), 0); /* fsynced meanwhile */
    assert_false(atomic_load(&sc.done));

    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(sc.rc, 0);
    assert_int_equal(shoal_topic_describe(f->c, "slow", &info), 0);
    shoal_topic_info_free(info);
    shoal_producer_close(p);

    /* A stop waits for a create in progress and answers it: the topic exists. */
    sc = (struct slow_create){.socket = f->d.socket};
    assert_int_equal(shoal_topic_delete(f->c, "slow"), 0);
    assert_int_equal(pthread_create(&th, NULL, create_slowly, &sc), 0);
    for (being_created = false; !being_created; usleep(5000))
        being_created = shoal_topic_describe(f->c, "slow", &info) == SHOAL_ENOTOPIC &&
                        strstr(shoal_errmsg(), "still being created") != NULL;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(sc.rc, 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(shoal_topic_describe(f->c, "slow", &info), 0);
    shoal_topic_info_free(info);
}

/* A create waits for shoald's answer longer the more rings it makes (8 s per GiB on top
 * of the usual wait; here the usual wait is 300 ms and each create takes 0.5 s more than
 * it would, and 512 MiB gives the large one 4 s more, room under load): a create of
 * rings that take longer than 30 s to make used to fail SHOAL_ETIMEDOUT while shoald went
 * on to make them. When the wait does run out, the error says the create may still be done,
 * and the client can ask at once whether it is. */
INTEG_TEST(test_a_create_waits_longer_for_larger_rings)
{
    shoal_topic_config_t small = topic_cfg(1, 1ull << 20, 2);
    shoal_topic_config_t large = topic_cfg(8, 16ull << 20, 4); /* 512 MiB: 4 s more */
    shoal_topic_info_t *info;
    int rc = SHOAL_ENOTOPIC;

    restart_with_slow_rings(f, "500");

    f->c->timeout_ms = 300;
    assert_int_equal(shoal_topic_create(f->c, "large", &large), 0);
    assert_int_equal(shoal_topic_create(f->c, "small", &small), SHOAL_ETIMEDOUT);
    assert_non_null(strstr(shoal_errmsg(), "may still be done"));
    f->c->timeout_ms = 30000;
    /* The client is not held behind the create: a describe is answered meanwhile. */
    assert_int_equal(shoal_topic_describe(f->c, "small", &info), SHOAL_ENOTOPIC);
    assert_non_null(strstr(shoal_errmsg(), "still being created"));
    for (int i = 0; i < 300 && rc == SHOAL_ENOTOPIC; i++, usleep(10000))
        if ((rc = shoal_topic_describe(f->c, "small", &info)) == 0)
            shoal_topic_info_free(info);
    assert_int_equal(rc, 0);
}

/* An alter that adds partitions waits as long as a create of their rings would (here the
 * usual wait is 300 ms and making rings takes 0.5 s more): 512 MiB of new rings get 4 s
 * more. */
INTEG_TEST(test_a_grow_waits_longer_for_larger_rings)
{
    shoal_topic_config_t large = topic_cfg(1, 16ull << 20, 4), small = topic_cfg(1, 1ull << 20, 2);
    const char *name[] = {"partitions"}, *nine[] = {"9"}, *two[] = {"2"};

    assert_int_equal(shoal_topic_create(f->c, "large", &large), 0);
    assert_int_equal(shoal_topic_create(f->c, "small", &small), 0);
    restart_with_slow_rings(f, "500");

    f->c->timeout_ms = 300;
    assert_int_equal(shoal_topic_alter(f->c, "large", name, nine, 1), 0); /* 8 x 64 MiB */
    assert_int_equal(shoal_topic_alter(f->c, "small", name, two, 1), SHOAL_ETIMEDOUT);
    f->c->timeout_ms = 30000;
}

INTEG_TEST(test_topic_create_rejects_bad_names_and_configs_with_specific_codes)
{
    const char *bad_names[] = {"", ".", "..", "a/b", "sp ace", "tab\tname", "é"};
    shoal_topic_config_t good = topic_cfg(2, 1ull << 20, 2), cfg;
    shoal_topic_info_t *info = NULL;
    char long_name[251];
    char path[PATH_MAX];

    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
        expect_create_fails(f->c, bad_names[i], &good, SHOAL_ENAME);
    memset(long_name, 'x', 250);
    long_name[250] = '\0';
    expect_create_fails(f->c, long_name, &good, SHOAL_ENAME);

    cfg = good;
    cfg.partitions = 0;
    expect_create_fails(f->c, "t", &cfg, SHOAL_EPARTITIONS);
    cfg = good;
    cfg.partitions = SHOAL_PARTITIONS_MAX + 1;
    expect_create_fails(f->c, "t", &cfg, SHOAL_EPARTITIONS);
    cfg = good;
    cfg.segment_bytes = 1000;
    expect_create_fails(f->c, "t", &cfg, SHOAL_ECONFIG);
    cfg = good;
    cfg.segment_bytes = 4ull << 30;
    expect_create_fails(f->c, "t", &cfg, SHOAL_ECONFIG);
    cfg = good;
    cfg.ring_slots = 1;
    expect_create_fails(f->c, "t", &cfg, SHOAL_ECONFIG);
    cfg = good;
    cfg.ring_slots = 65;
    expect_create_fails(f->c, "t", &cfg, SHOAL_ECONFIG);
    cfg = good;
    cfg.storage = SHOAL_STORAGE_MEMORY;
    cfg.cleanup_policy = SHOAL_CLEANUP_COMPACT; /* compaction rewrites disk segments */
    expect_create_fails(f->c, "t", &cfg, SHOAL_ECONFIG);
    cfg.cleanup_policy = SHOAL_CLEANUP_DELETE;
    assert_int_equal(shoal_topic_create(f->c, "mem", &cfg), 0);
    {
        const char *name = "cleanup.policy", *value = "compact";
        assert_int_equal(shoal_topic_alter(f->c, "mem", &name, &value, 1), SHOAL_ECONFIG);
    }
    assert_int_equal(shoal_topic_delete(f->c, "mem"), 0);
    cfg = good;
    cfg.max_record_bytes = 0;
    expect_create_fails(f->c, "t", &cfg, SHOAL_ECONFIG);
    cfg = good;
    cfg.max_record_bytes = (uint32_t)(good.segment_bytes / 2 + 1);
    expect_create_fails(f->c, "t", &cfg, SHOAL_ECONFIG);
    /* ... but left at its default (1 MiB) it follows a small segment down, as the CLI
     * does: a 1 MiB segment used to be refused ECONFIG through the API only. */
    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = 1ull << 20;
    cfg.ring_slots = 2;
    assert_int_equal(shoal_topic_create(f->c, "small", &cfg), 0);
    assert_int_equal(shoal_topic_describe(f->c, "small", &info), 0);
    assert_int_equal(info->config.max_record_bytes, 512u << 10);
    shoal_topic_info_free(info);
    info = NULL;
    assert_int_equal(shoal_topic_delete(f->c, "small"), 0);
    cfg = good;
    cfg.storage = 7;
    expect_create_fails(f->c, "t", &cfg, SHOAL_ECONFIG);
    cfg = good; /* a field of a newer shoal.h, or a config never initialised */
    cfg.reserved_[5] = 1;
    expect_create_fails(f->c, "t", &cfg, SHOAL_ECONFIG);
    cfg = good;
    cfg.pad_ = 1;
    expect_create_fails(f->c, "t", &cfg, SHOAL_ECONFIG);

    /* Nothing was made for any of them: no topic, no partition directory, no ring. */
    assert_int_equal(count_topics(f->c), 0);
    snprintf(path, sizeof(path), "%s/t-0", f->d.data_dir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_dir_entries(f->d.shm_dir, ".ctl"), 0);

    /* A duplicate leaves the first topic as it was. */
    assert_int_equal(shoal_topic_create(f->c, "dup", &good), 0);
    cfg = topic_cfg(5, 2ull << 20, 4);
    expect_create_fails(f->c, "dup", &cfg, SHOAL_ETOPICEXISTS);
    assert_int_equal(shoal_topic_describe(f->c, "dup", &info), 0);
    assert_int_equal(info->config.partitions, 2);
    assert_int_equal(info->config.segment_bytes, 1ull << 20);
    shoal_topic_info_free(info);
    assert_int_equal(count_topics(f->c), 1);
}

/* The structs an application allocates end in reserved_ space (shoal.h, VERSIONS AND THE
 * ABI): the *_init() functions zero it, the library refuses options that set it, and
 * shoal_partition_stats() writes zeros there. */
INTEG_TEST(test_reserved_fields_are_zeroed_by_init_and_refused_when_set)
{
    shoal_topic_config_t cfg = topic_cfg(1, 1ull << 20, 2);
    shoal_producer_options_t po;
    shoal_consumer_options_t co;
    shoal_partition_stats_t st;
    shoal_producer_t *p = (shoal_producer_t *)&po;
    shoal_consumer_t *c = (shoal_consumer_t *)&co;

    assert_int_equal(shoal_topic_create(f->c, "r", &cfg), 0);
    memset(&po, 0xa5, sizeof(po));
    shoal_producer_options_init(&po);
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(po.reserved_); i++)
        assert_int_equal(po.reserved_[i], 0);
    po.reserved_[12] = 1;
    assert_int_equal(shoal_producer_open(f->c, "r", &po, &p), SHOAL_EINVAL);
    assert_null(p);
    assert_non_null(strstr(shoal_errmsg(), "shoal_producer_options_init"));

    memset(&co, 0xa5, sizeof(co));
    shoal_consumer_options_init(&co);
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(co.reserved_); i++)
        assert_int_equal(co.reserved_[i], 0);
    co.reserved_[0] = 1;
    assert_int_equal(shoal_consumer_open(f->c, &co, &c), SHOAL_EINVAL);
    assert_null(c);
    assert_non_null(strstr(shoal_errmsg(), "shoal_consumer_options_init"));

    memset(&st, 0xa5, sizeof(st));
    assert_int_equal(shoal_partition_stats(f->c, "r", 0, &st), 0);
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(st.reserved_); i++)
        assert_int_equal(st.reserved_[i], 0);

    /* initialised, the same options open */
    po.reserved_[12] = 0;
    assert_int_equal(shoal_producer_open(f->c, "r", &po, &p), 0);
    shoal_producer_close(p);
    co.reserved_[0] = 0;
    assert_int_equal(shoal_consumer_open(f->c, &co, &c), 0);
    shoal_consumer_close(c);
}

/* Options out of their range and arguments that contradict themselves are refused with
 * SHOAL_EINVAL or SHOAL_ENOPARTITION, not taken as something else. */
INTEG_TEST(test_out_of_range_options_and_repeated_partitions_are_refused)
{
    shoal_topic_config_t cfg = topic_cfg(4, 1ull << 20, 2);
    const int32_t twice[] = {1, 0, 1};
    shoal_producer_options_t po;
    shoal_record_t r;
    shoal_consumer_options_t co;
    shoal_producer_t *p;
    shoal_consumer_t *c;

    assert_int_equal(shoal_topic_create(f->c, "opt", &cfg), 0);
    for (int i = 0; i < 3; i++) {
        shoal_producer_options_init(&po);
        if (i == 0)
            po.acks = SHOAL_ACKS_DISK + 1;
        else if (i == 1)
            po.block_ms = -1;
        else
            po.ack_timeout_ms = -5;
        assert_int_equal(shoal_producer_open(f->c, "opt", &po, &p), SHOAL_EINVAL);
        assert_non_null(strstr(shoal_errmsg(), "shoal_producer_options_init"));
    }
    shoal_consumer_options_init(&co);
    co.auto_offset_reset = SHOAL_OFFSET_RESET_EARLIEST + 1;
    assert_int_equal(shoal_consumer_open(f->c, &co, &c), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "auto_offset_reset"));

    assert_int_equal(shoal_consumer_open(f->c, NULL, &c), 0);
    assert_int_equal(shoal_consumer_assign(c, "opt", NULL, 1), SHOAL_EINVAL);
    assert_int_equal(shoal_consumer_assign(c, "opt", twice, 3), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "partition 1 is listed twice"));
    assert_int_equal(shoal_consumer_assign(c, "opt", twice, 2), 0);
    assert_int_equal(shoal_consumer_seek(c, "opt", -2, SHOAL_SEEK_BEGINNING, 0),
                     SHOAL_ENOPARTITION);
    assert_int_equal(shoal_consumer_seek(c, "opt", -1, SHOAL_SEEK_BEGINNING, 0), 0);
    assert_int_equal(shoal_poll(c, &r, 1, -5), SHOAL_EINVAL); /* not "for ever" */
    assert_non_null(strstr(shoal_errmsg(), "timeout_ms -5"));
    shoal_consumer_close(c);
}

/* Each NULL the caller must not pass is SHOAL_EINVAL naming the argument, not a fault. */
INTEG_TEST(test_null_handles_and_out_pointers_are_einval_not_faults)
{
    shoal_topic_config_t cfg = topic_cfg(1, 1ull << 20, 2);
    shoal_partition_stats_t ps;
    shoal_topic_info_t *ti;
    shoal_group_info_t *gi;
    shoal_group_listing_t *gl;
    shoal_producer_t *p;
    shoal_consumer_t *c, *g, *k;
    shoal_client_t *cl;
    shoal_consumer_options_t o;
    const char *settings[] = {"retention.ms"}, *values[] = {"1000"}, *null_str[] = {NULL};
    char **names, buf[32];
    size_t n;

    assert_int_equal(shoal_topic_create(f->c, "nul", &cfg), 0);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &c), 0);
    shoal_consumer_options_init(&o);
    o.group_id = "g";
    assert_int_equal(shoal_consumer_open(f->c, &o, &g), 0);
#define REFUSED(call, arg)                                                                         \
    do {                                                                                           \
        assert_int_equal((call), SHOAL_EINVAL);                                                    \
        assert_non_null(strstr(shoal_errmsg(), arg " is NULL"));                                   \
    } while (0)
    REFUSED(shoal_client_open(f->d.socket, NULL), "out");
    REFUSED(shoal_topic_config_set(NULL, "retention.ms", "1"), "cfg");
    REFUSED(shoal_topic_config_get(NULL, "retention.ms", buf, sizeof(buf)), "cfg");
    REFUSED(shoal_topic_config_check(NULL), "cfg");
    REFUSED(shoal_topic_create(NULL, "x", &cfg), "c");
    REFUSED(shoal_topic_delete(NULL, "nul"), "c");
    REFUSED(shoal_topic_list(NULL, &names, &n), "c");
    REFUSED(shoal_topic_list(f->c, NULL, &n), "names");
    REFUSED(shoal_topic_list(f->c, &names, NULL), "count");
    REFUSED(shoal_topic_describe(NULL, "nul", &ti), "c");
    REFUSED(shoal_topic_describe(f->c, "nul", NULL), "out");
    REFUSED(shoal_partition_stats(NULL, "nul", 0, &ps), "c");
    REFUSED(shoal_partition_stats(f->c, "nul", 0, NULL), "out");
    REFUSED(shoal_producer_open(NULL, "nul", NULL, &p), "client");
    REFUSED(shoal_producer_open(f->c, "nul", NULL, NULL), "out");
    REFUSED(shoal_producer_wait(NULL, 0, 0, SHOAL_ACKS_DISK, 10), "p");
    REFUSED(shoal_consumer_open(NULL, NULL, &c), "client");
    REFUSED(shoal_consumer_open(f->c, NULL, NULL), "out");
    REFUSED(shoal_consumer_assign(NULL, "nul", NULL, 0), "c");
    REFUSED(shoal_consumer_seek(NULL, "nul", 0, SHOAL_SEEK_END, 0), "c");
    REFUSED(shoal_consumer_seek(c, NULL, 0, SHOAL_SEEK_END, 0), "topic");
    REFUSED((int)shoal_consumer_position(NULL, "nul", 0), "c");
    REFUSED((int)shoal_consumer_position(c, NULL, 0), "topic");
    REFUSED(shoal_group_list(NULL, &gl, &n), "c");
    REFUSED(shoal_group_list(f->c, NULL, &n), "out");
    REFUSED(shoal_group_list(f->c, &gl, NULL), "n");
    REFUSED(shoal_group_describe(NULL, "g", &gi), "c");
    REFUSED(shoal_group_describe(f->c, "g", NULL), "out");
    REFUSED(shoal_group_reset_offsets(NULL, "g", "nul", SHOAL_SEEK_END, 0), "c");
    REFUSED(shoal_group_delete(NULL, "g"), "c");
    REFUSED(shoal_consumer_subscribe(NULL, NULL, 0), "c");
    /* NULL names and strings too, not SHOAL_ENAME, SHOAL_ESETTING, SHOAL_ECONFIG or
     * SHOAL_EGROUPID as if they were malformed */
    REFUSED(shoal_topic_config_set(&cfg, NULL, "1"), "name");
    REFUSED(shoal_topic_config_set(&cfg, "retention.ms", NULL), "value");
    REFUSED(shoal_topic_config_get(&cfg, NULL, buf, sizeof(buf)), "name");
    REFUSED(shoal_topic_create(f->c, NULL, &cfg), "name");
    REFUSED(shoal_topic_delete(f->c, NULL), "name");
    REFUSED(shoal_topic_describe(f->c, NULL, &ti), "name");
    REFUSED(shoal_topic_alter(f->c, NULL, settings, values, 1), "name");
    REFUSED(shoal_topic_alter(f->c, "nul", null_str, values, 1), "names[0]");
    REFUSED(shoal_topic_alter(f->c, "nul", settings, null_str, 1), "values[0]");
    REFUSED(shoal_partition_stats(f->c, NULL, 0, &ps), "topic");
    REFUSED(shoal_producer_open(f->c, NULL, NULL, &p), "topic");
    REFUSED(shoal_consumer_assign(c, NULL, NULL, 0), "topic");
    REFUSED(shoal_consumer_unassign(c, NULL, NULL, 0), "topic");
    REFUSED(shoal_group_describe(f->c, NULL, &gi), "group_id");
    REFUSED(shoal_group_reset_offsets(f->c, NULL, "nul", SHOAL_SEEK_END, 0), "group_id");
    REFUSED(shoal_group_reset_offsets(f->c, "g", NULL, SHOAL_SEEK_END, 0), "topic");
    REFUSED(shoal_group_delete(f->c, NULL), "group_id");
    REFUSED(shoal_consumer_subscribe(g, null_str, 1), "topics[0]");
    /* a library session found these with another detail, another code, or none */
    REFUSED(shoal_send(NULL, NULL, NULL), "p");
    REFUSED(shoal_send_batch(NULL, NULL, 1, NULL), "p");
#undef REFUSED
    {
        shoal_offset_change_t *changes;
        assert_int_equal(shoal_group_reset_partitions(f->c, "g", "nul", NULL, 0, SHOAL_SEEK_END, 0,
                                                      0, &changes, NULL),
                         SHOAL_EINVAL);
        assert_non_null(strstr(shoal_errmsg(), "changes without nchanges"));
        assert_int_equal(shoal_client_open("", &cl), SHOAL_EINVAL);
        o.assignor_count = 1;
        assert_int_equal(shoal_consumer_open(f->c, &o, &k), SHOAL_EINVAL);
        assert_non_null(strstr(shoal_errmsg(), "assignor_count 1 with assignors NULL"));
    }
    assert_int_equal(shoal_topic_config_get(&cfg, "retention.ms", NULL, 8), SHOAL_EINVAL);
    assert_int_equal(shoal_topic_config_get(&cfg, "retention.ms", NULL, 0), -ENOSPC);
    shoal_topic_config_init(NULL);
    shoal_producer_options_init(NULL);
    shoal_consumer_options_init(NULL);
    /* the client still works after all of it */
    assert_int_equal(shoal_consumer_assign(c, "nul", NULL, 0), 0);
    assert_int_equal(shoal_consumer_position(c, "nul", 0), 0);
    shoal_consumer_close(c);
    shoal_consumer_close(g);
}

/* shoal_errmsg() belongs to the latest call that returns an error code: each clears it on
 * entry (shoal_consumer_position and shoal_record_header left a stale detail readable);
 * the predicates and lookups that cannot fail that way leave it, as shoal.h lists. */
INTEG_TEST(test_every_call_that_can_fail_clears_the_last_failures_detail)
{
    shoal_topic_config_t cfg = topic_cfg(1, 1ull << 20, 2);
    const shoal_header_t hd = {.key = "h", .key_len = 1, .value = "v", .value_len = 1};
    shoal_message_t m = {.value = "x", .value_len = 1, .headers = &hd, .header_count = 1};
    shoal_producer_t *p;
    shoal_consumer_t *k;
    shoal_header_t h;
    shoal_record_t r;
    size_t it = 0;

#define STALE() assert_int_equal(shoal_topic_create(NULL, "x", NULL), SHOAL_EINVAL)
    assert_int_equal(shoal_topic_create(f->c, "clear", &cfg), 0);
    assert_int_equal(shoal_producer_open(f->c, "clear", NULL, &p), 0);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "clear", NULL, 0), 0);
    assert_int_equal(shoal_send(p, &m, NULL), 0);
    assert_int_equal(shoal_poll(k, &r, 1, 1000), 1);
    STALE();
    assert_int_equal(shoal_consumer_position(k, "clear", 0), 1);
    assert_string_equal(shoal_errmsg(), "");
    STALE();
    assert_int_equal(shoal_record_header(&r, &it, &h), 1);
    assert_string_equal(shoal_errmsg(), "");
    STALE();
    /* a position past the log end is clamped by the poll: no error, no detail (a library
     * session found "offset 1000 is past the log end" left on a poll that returned 0) */
    assert_int_equal(shoal_consumer_seek(k, "clear", 0, SHOAL_SEEK_OFFSET, 1000), 0);
    assert_int_equal(shoal_poll(k, &r, 1, 0), 0);
    assert_string_equal(shoal_errmsg(), "");
    assert_int_equal(shoal_consumer_position(k, "clear", 0), 1);
    STALE();
    assert_true(shoal_topic_name_is_valid("ok"));
    assert_true(shoal_group_id_is_valid("ok"));
    assert_true(shoal_partition_for_key("k", 1, 3) >= 0);
    assert_non_null(strstr(shoal_errmsg(), "is NULL")); /* left as it was */
#undef STALE
    shoal_consumer_close(k);
    shoal_producer_close(p);
}

INTEG_TEST(test_topic_names_of_249_characters_work_through_a_daemon_restart)
{
    shoal_topic_config_t cfg = topic_cfg(12, 1ull << 20, 2);
    char name[SHOAL_TOPIC_NAME_MAX + 1], other[SHOAL_TOPIC_NAME_MAX + 1];

    /* The longest valid names; two that differ only in their last character. */
    memset(name, 'n', SHOAL_TOPIC_NAME_MAX);
    name[SHOAL_TOPIC_NAME_MAX] = '\0';
    memcpy(other, name, sizeof(name));
    other[SHOAL_TOPIC_NAME_MAX - 1] = 'o';
    assert_int_equal(shoal_topic_create(f->c, name, &cfg), 0);
    assert_int_equal(shoal_topic_create(f->c, other, &cfg), 0);
    assert_int_equal(produce_range(f->c, name, 11, 0, 5, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(produce_range(f->c, other, 11, 0, 3, SHOAL_ACKS_MEMORY), 0);
    assert_partition_holds(f->c, name, 11, 5);
    assert_partition_holds(f->c, other, 11, 3);
    /* the daemon finds the same rings again after it died */
    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_partition_holds(f->c, name, 11, 5);
    assert_partition_holds(f->c, other, 11, 3);
    assert_int_equal(shoal_topic_delete(f->c, name), 0);
    assert_int_equal(shoal_topic_delete(f->c, other), 0);
    assert_int_equal(count_dir_entries(f->d.shm_dir, NULL), 1); /* only its .lock */
}

static off_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* A topic one of whose partitions cannot be recovered, after a reboot (no rings left): the
 * partition recovered before it had its ring built from disk, which is removed with the
 * topic left out. Before, it stayed, 2 MiB of RAM here (256 MiB by default) for nothing,
 * and was reported as a ring of no served topic that "may hold the only copy of
 * records". */
INTEG_TEST(test_an_unserved_topic_keeps_no_ring_its_recovery_built)
{
    shoal_topic_config_t cfg = topic_cfg(2, 1ull << 20, 2);
    char bad_log[PATH_MAX];

    assert_int_equal(shoal_topic_create(f->c, "half", &cfg), 0);
    assert_int_equal(produce_range(f->c, "half", 0, 0, 3, SHOAL_ACKS_DISK), 0);
    assert_int_equal(produce_range(f->c, "half", 1, 0, 3, SHOAL_ACKS_DISK), 0);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    snprintf(bad_log, sizeof(bad_log), "%s/half-1/00000000000000000000.log", f->d.data_dir);
    assert_int_equal(unlink(bad_log), 0);
    assert_int_equal(mkdir(bad_log, 0700), 0);
    harness_daemon_wipe_shm(&f->d);

    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_true(harness_daemon_log_contains(&f->d, "topic half is not served"));
    assert_false(harness_daemon_log_contains(&f->d, "of no served topic"));
    assert_int_equal(count_dir_entries(f->d.shm_dir, NULL), 1); /* only its .lock */
    assert_int_equal(shoal_topic_delete(f->c, "half"), 0);
}

/* A topic whose files cannot be recovered is left out with its files as they are, and the
 * daemon serves the others; a delete of it removes them; after its metadata store is lost, a topic
 * created over segments the store does not know is refused instead of erasing them. */
INTEG_TEST(test_an_unrecoverable_topic_is_left_out_and_unknown_segments_are_kept)
{
    shoal_topic_config_t cfg = topic_cfg(1, 1ull << 20, 2);
    char bad_log[PATH_MAX], good_log[PATH_MAX], store[PATH_MAX], text[256];
    shoal_producer_t *p, *early;
    shoal_ack_t ack;
    off_t good_bytes;

    assert_int_equal(shoal_topic_create(f->c, "good", &cfg), 0);
    assert_int_equal(shoal_topic_create(f->c, "bad", &cfg), 0);
    assert_int_equal(produce_range(f->c, "good", 0, 0, 5, SHOAL_ACKS_DISK), 0);
    assert_int_equal(produce_range(f->c, "bad", 0, 0, 3, SHOAL_ACKS_DISK), 0);
    assert_int_equal(shoal_producer_open(f->c, "bad", NULL, &early), 0); /* stays mapped */
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    snprintf(bad_log, sizeof(bad_log), "%s/bad-0/00000000000000000000.log", f->d.data_dir);
    snprintf(good_log, sizeof(good_log), "%s/good-0/00000000000000000000.log", f->d.data_dir);
    good_bytes = size_of(good_log);
    assert_true(good_bytes > 0);
    assert_int_equal(unlink(bad_log), 0);
    assert_int_equal(mkdir(bad_log, 0700), 0);

    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_true(harness_daemon_log_contains(&f->d, "topic bad is not served"));
    assert_partition_holds(f->c, "good", 0, 5);
    /* Listed apart from the served ones, and by the tool, marked. */
    list_names(f->c, false, text, sizeof(text));
    assert_string_equal(text, "good\n");
    list_names(f->c, true, text, sizeof(text));
    assert_string_equal(text, "bad\n");
    cli_topic_list(f, text, sizeof(text));
    assert_string_equal(text, "bad (not served: see shoald's log)\ngood\n");
    assert_int_equal(shoal_producer_open(f->c, "bad", NULL, &p), SHOAL_ENOTOPIC);
    assert_non_null(strstr(shoal_errmsg(), "topic bad is not served"));
    assert_int_equal(size_of(bad_log) >= 0, true); /* still the directory put there */
    assert_int_equal(shoal_topic_create(f->c, "bad", &cfg), SHOAL_ETOPICEXISTS);
    assert_non_null(strstr(shoal_errmsg(), "topic bad is not served"));
    /* Deleting it takes its files, tells a producer still on its ring from before; then
     * the name is free again, and empty. */
    assert_int_equal(send_one(early, 0, NULL, 0, "x", 1, &ack), 0);
    assert_int_equal(shoal_topic_delete(f->c, "bad"), 0);
    assert_int_equal(send_one(early, 0, NULL, 0, "x", 1, &ack), SHOAL_ENOTOPIC);
    shoal_producer_close(early);
    assert_int_equal(size_of(bad_log), -1);
    assert_int_equal(shoal_topic_delete(f->c, "bad"), SHOAL_ENOTOPIC);
    assert_non_null(strstr(shoal_errmsg(), "no topic named bad"));
    list_names(f->c, true, text, sizeof(text));
    assert_string_equal(text, "");
    assert_int_equal(shoal_topic_create(f->c, "bad", &cfg), 0);
    assert_partition_holds(f->c, "bad", 0, 0);
    assert_int_equal(shoal_topic_delete(f->c, "bad"), 0);

    assert_int_equal(harness_daemon_stop(&f->d), 0);
    snprintf(store, sizeof(store), "%s/meta/data.mdb", f->d.data_dir);
    assert_int_equal(unlink(store), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_true(harness_daemon_log_contains(&f->d, "good-0 holds segments of no topic"));
    assert_int_equal(shoal_topic_create(f->c, "good", &cfg), SHOAL_ETOPICEXISTS);
    assert_non_null(strstr(shoal_errmsg(), "good-0 holds segments of a topic"));
    assert_int_equal(size_of(good_log), good_bytes);
}

/* A daemon whose socket file was removed and bound again by another leaves it at stop. */
INTEG_TEST(test_a_stopping_daemon_leaves_a_socket_it_no_longer_owns)
{
    int other;

    shoal_client_close(f->c);
    f->c = NULL;
    assert_int_equal(unlink(f->d.socket), 0);
    assert_true((other = ctlsock_listen(f->d.socket)) >= 0);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(access(f->d.socket, F_OK), 0);
    assert_true(harness_daemon_log_contains(&f->d, "is no longer this daemon's socket"));
    close(other);
    assert_int_equal(unlink(f->d.socket), 0);
}

/* The one directory beside d's shm directory that the daemon chose when that one was unfit
 * (<shm dir>@<16 hex digits>), into path. */
static void shm_dir_alternate(const struct harness_daemon *d, char *path, size_t cap)
{
    char pattern[PATH_MAX];
    glob_t g;

    snprintf(pattern, sizeof(pattern), "%s@*", d->shm_dir);
    assert_int_equal(glob(pattern, 0, NULL, &g), 0);
    assert_int_equal(g.gl_pathc, 1);
    assert_int_equal(strlen(g.gl_pathv[0]), strlen(d->shm_dir) + 17);
    snprintf(path, cap, "%s", g.gl_pathv[0]);
    globfree(&g);
}

/* An shm directory others may write (made by another user in /dev/shm before the daemon's
 * first start, say) does not stop the daemon: the rings go to a directory of a name nobody
 * can take first, and stay there at the next start, so that a memory topic's records
 * outlive a daemon crash there as they do in the default directory. */
INTEG_TEST(test_an_shm_directory_others_may_write_is_passed_over)
{
    shoal_topic_config_t mem = topic_cfg(1, 64 << 10, 2);
    char alt[PATH_MAX];
    struct stat st;

    mem.storage = SHOAL_STORAGE_MEMORY;
    assert_int_equal(shoal_topic_create(f->c, "kept", NULL), 0);
    assert_int_equal(produce_range(f->c, "kept", 0, 0, 3, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(chmod(f->d.shm_dir, 0777), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_true(harness_daemon_log_contains(&f->d, "that only it may write"));
    shm_dir_alternate(&f->d, alt, sizeof(alt));
    assert_int_equal(lstat(alt, &st), 0);
    assert_true(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    assert_int_equal(reconnect(f), 0);
    assert_int_equal(harness_read_numbered(f->c, "kept", 0, 3), 3); /* from disk */

    assert_int_equal(shoal_topic_create(f->c, "mem", &mem), 0);
    assert_int_equal(produce_range(f->c, "mem", 0, 0, 3, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_true(harness_daemon_log_contains(&f->d, "the rings stay in"));
    assert_int_equal(harness_daemon_log_count(&f->d, "that only it may write"), 1);
    assert_int_equal(reconnect(f), 0);
    assert_int_equal(harness_read_numbered(f->c, "mem", 0, 3), 3);

    assert_int_equal(harness_daemon_stop(&f->d), 0);
    harness_rmrf(alt); /* as a reboot would: the default directory serves again */
    assert_int_equal(chmod(f->d.shm_dir, 0700), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(harness_daemon_log_count(&f->d, "that only it may write"), 1);
    assert_int_equal(reconnect(f), 0);
    assert_int_equal(harness_read_numbered(f->c, "kept", 0, 3), 3);
}

/* Nor does anything else at the shm directory's path: a file, or a link, which is looked at,
 * not followed (here one to a directory that would be fit). */
INTEG_TEST(test_a_file_or_link_at_the_shm_directory_path_is_passed_over)
{
    static const char *const kinds[] = {"not a directory", "link"};
    char alt[PATH_MAX], want[64];

    for (size_t i = 0; i < SHOAL_ARRAY_LEN(kinds); i++) {
        assert_int_equal(harness_daemon_stop(&f->d), 0);
        harness_daemon_wipe_shm(&f->d);
        if (i == 0)
            assert_int_equal(close(open(f->d.shm_dir, O_CREAT | O_WRONLY, 0600)), 0);
        else
            assert_int_equal(symlink(f->d.run_dir, f->d.shm_dir), 0);
        assert_int_equal(harness_daemon_restart(&f->d), 0);
        snprintf(want, sizeof(want), "that only it may write (%s uid", kinds[i]);
        assert_true(harness_daemon_log_contains(&f->d, want));
        shm_dir_alternate(&f->d, alt, sizeof(alt));
        assert_int_equal(reconnect(f), 0);
        assert_int_equal(shoal_topic_create(f->c, kinds[i][0] == 'l' ? "l" : "f", NULL), 0);
        assert_int_equal(count_dir_entries(alt, ".ctl"), (int)i + 1); /* rebuilt, and the new */
        assert_int_equal(count_dir_entries(f->d.run_dir, ".ctl"), 0);
    }
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    harness_daemon_wipe_shm(&f->d); /* the link, and the alternate */
    assert_int_equal(access(f->d.run_dir, F_OK), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
}

/* An shm directory that is not on a tmpfs (a user session's typo went unnoticed) is
 * warned about at start; /dev/shm is not. */
INTEG_TEST(test_an_shm_directory_on_disk_is_warned_about)
{
    struct statfs fs;
    size_t n = 0;

    assert_false(harness_daemon_log_contains(&f->d, "is not on a tmpfs"));
    assert_int_equal(statfs(f->d.dir, &fs), 0);
    if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC)
        skip(); /* the test's temporary directory is in memory itself */
    while (f->d.extra[n])
        n++;
    assert_true(n + 2 <= HARNESS_DAEMON_MAX_ARGS);
    f->d.extra[n] = "--shm-dir";
    f->d.extra[n + 1] = f->d.dir;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    harness_daemon_expect_log(&f->d, "is not on a tmpfs");
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    f->d.extra[n] = NULL;
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
}

/* After a lost metadata store the rings of its topics hold RAM, and maybe the only copy of
 * records not yet flushed: the daemon names them at start, with their size, and keeps them. */
INTEG_TEST(test_rings_of_no_served_topic_are_reported_at_start_and_kept)
{
    shoal_topic_config_t cfg = topic_cfg(2, 64 << 10, 2);
    char store[PATH_MAX], ctl[PATH_MAX];

    assert_int_equal(shoal_topic_create(f->c, "kept", &cfg), 0);
    assert_int_equal(shoal_topic_create(f->c, "lost", &cfg), 0);
    assert_int_equal(produce_range(f->c, "lost", 0, 0, 3, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_false(harness_daemon_log_contains(&f->d, "ring files"));
    snprintf(store, sizeof(store), "%s/meta/data.mdb", f->d.data_dir);
    assert_int_equal(unlink(store), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_true(harness_daemon_log_contains(&f->d, "holds 16 ring files ("));
    assert_true(harness_daemon_log_contains(&f->d, "kept-0"));
    assert_true(harness_daemon_log_contains(&f->d, "lost-1"));
    assert_true(harness_daemon_log_contains(&f->d, "free the memory with rm "));
    snprintf(ctl, sizeof(ctl), "%s/lost-0.ctl", f->d.shm_dir);
    assert_int_equal(access(ctl, F_OK), 0);

    /* A topic created again is served: its rings are not named any more. */
    assert_int_equal(shoal_topic_create(f->c, "kept", &cfg), 0);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_true(harness_daemon_log_contains(&f->d, "holds 8 ring files"));
}

/* The log counts in words ("1 partition"), and a restart says what recovery did in one
 * line at info level: a broker of thousands of partitions logs a line per partition only
 * at debug level (which this daemon runs at). A memory topic's ring that outlived the
 * daemon counts as re-attached too; after the shared memory is lost every ring is built
 * anew. */
INTEG_TEST(test_creation_and_recovery_are_logged_in_one_line_each)
{
    shoal_topic_config_t one = topic_cfg(1, 64 << 10, 2), three = topic_cfg(3, 64 << 10, 2);
    shoal_topic_config_t mem = topic_cfg(2, 64 << 10, 2);

    mem.storage = SHOAL_STORAGE_MEMORY;
    assert_int_equal(shoal_topic_create(f->c, "one", &one), 0);
    assert_int_equal(shoal_topic_create(f->c, "three", &three), 0);
    assert_int_equal(shoal_topic_create(f->c, "mem", &mem), 0);
    assert_true(harness_daemon_log_contains(&f->d, "created topic one: 1 partition, disk"));
    assert_true(harness_daemon_log_contains(&f->d, "created topic three: 3 partitions, disk"));
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_true(harness_daemon_log_contains(
        &f->d, "recovered 3 topics, 6 partitions (6 shared rings re-attached, 0 built anew)"));
    assert_true(harness_daemon_log_contains(&f->d, "<7> debug: three-2: re-attached shared ring"));
    assert_true(harness_daemon_log_contains(&f->d, "<7> debug: mem-1: re-attached shared ring"));
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    harness_daemon_wipe_shm(&f->d);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_true(harness_daemon_log_contains(
        &f->d, "recovered 3 topics, 6 partitions (0 shared rings re-attached, 6 built anew)"));
}

/* Send n records "<tag><offset>", all of one length, to partition 0 of topic. */
static void produce_tagged(shoal_client_t *c, const char *topic, char tag, int n)
{
    shoal_producer_t *p;
    char v[16];

    assert_int_equal(shoal_producer_open(c, topic, NULL, &p), 0);
    for (int i = 0; i < n; i++) {
        snprintf(v, sizeof(v), "%c%07d", tag, i);
        assert_int_equal(send_one(p, 0, NULL, 0, v, 8, NULL), 0);
    }
    shoal_producer_close(p);
}

/* Read partition 0 of topic from its start: n records, each "<tag><offset>". */
static void expect_tagged(shoal_client_t *c, const char *topic, char tag, int n)
{
    shoal_consumer_t *k;
    shoal_record_t r[64];
    char want[16];
    int got = 0, m;

    assert_int_equal(shoal_consumer_open(c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, topic, NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, topic, 0, SHOAL_SEEK_BEGINNING, 0), 0);
    while (got < n && (m = shoal_poll(k, r, 64, 2000)) > 0)
        for (int i = 0; i < m; i++, got++) {
            snprintf(want, sizeof(want), "%c%07d", tag, got);
            assert_int_equal(r[i].value_len, 8);
            assert_memory_equal(r[i].value, want, 8);
        }
    assert_int_equal(got, n);
    shoal_consumer_close(k);
}

/* A ring belongs to its data directory. Another data directory served by the same instance
 * (the first one stopped) makes its own topic of the same name, whose ring takes the same
 * shm files; back on the first, that ring is not re-attached over its log, though its
 * offsets fit the disk, and the first's records read as written. (It was, and the first
 * directory served the other's records at its offsets.) */
INTEG_TEST(test_a_ring_of_another_data_directory_is_not_re_attached)
{
    shoal_topic_config_t cfg = topic_cfg(1, 64 << 10, 2);
    struct harness_daemon other;
    shoal_client_t *c;

    assert_int_equal(shoal_topic_create(f->c, "owned", &cfg), 0);
    produce_tagged(f->c, "owned", 'a', 100);
    assert_int_equal(harness_daemon_stop(&f->d), 0);

    assert_int_equal(harness_daemon_start(&other, "other", NULL), 0);
    assert_int_equal(harness_daemon_stop(&other), 0);
    harness_daemon_wipe_shm(&other);
    snprintf(other.instance, sizeof(other.instance), "%s", f->d.instance);
    snprintf(other.shm_dir, sizeof(other.shm_dir), "%s", f->d.shm_dir);
    assert_int_equal(harness_daemon_restart(&other), 0);
    assert_int_equal(shoal_client_open(other.socket, &c), 0);
    assert_int_equal(shoal_topic_create(c, "owned", &cfg), 0);
    produce_tagged(c, "owned", 'b', 100);
    shoal_client_close(c);
    assert_int_equal(harness_daemon_stop(&other), 0);

    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    expect_tagged(f->c, "owned", 'a', 100);
    harness_daemon_expect_log(&f->d, "it was made for another data directory");
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(harness_daemon_cleanup(&other), 0); /* the shm directory too */
}

/* Members of allow.gid must be able to search the directories on the way to the socket:
 * the daemon gives them its runtime directory when they cannot (a unit's 0750 directory of
 * the daemon's own group), or says so when it may not; and it warns about a directory
 * above that they cannot search (here the test's own 0700 temporary directory). */
INTEG_TEST(test_allow_gid_gets_the_runtime_directory_or_a_warning)
{
    static const gid_t gid = 54321;
    struct stat st;
    char want[PATH_MAX + 64];

    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(chmod(f->d.run_dir, 0700), 0);
    f->d.extra[2] = "--allow-gid";
    f->d.extra[3] = "54321";
    f->d.extra[4] = NULL;
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_int_equal(stat(f->d.run_dir, &st), 0);
    if (geteuid() == 0) { /* may give it to any group */
        assert_int_equal(st.st_gid, gid);
        assert_int_equal(st.st_mode & 0777, 0750);
        snprintf(want, sizeof(want), "gave %s to group 54321 (mode 0750)", f->d.run_dir);
    } else {
        snprintf(want, sizeof(want), "they may not search %s (mode 0700", f->d.run_dir);
    }
    assert_true(harness_daemon_log_contains(&f->d, want));
    snprintf(want, sizeof(want), "they may not search %s (mode 0700", f->d.dir);
    assert_true(harness_daemon_log_contains(&f->d, want));
}

/* A delete that a crash cuts short, after the store forgot the topic and before its files
 * went (SHOALD_TEST_DELETE_CRASH), is finished at the next start: its rings held RAM until
 * someone removed them by hand, and its directories stayed for good (a leak soak found
 * 47 MiB of rings and 307 directories after one such crash). A topic of the same name made
 * after is a new, empty one. */
INTEG_TEST(test_a_delete_cut_short_by_a_crash_is_finished_at_the_next_start)
{
    shoal_topic_config_t cfg = topic_cfg(3, 1ull << 20, 2);
    shoal_topic_info_t *info;
    char dir[PATH_MAX];

    assert_int_equal(shoal_topic_create(f->c, "gone", &cfg), 0);
    assert_int_equal(shoal_topic_create(f->c, "kept", &cfg), 0);
    shoal_client_close(f->c);
    f->c = NULL;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    setenv("SHOALD_TEST_DELETE_CRASH", "1", 1);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    unsetenv("SHOALD_TEST_DELETE_CRASH");
    assert_int_equal(reconnect(f), 0);
    assert_true(shoal_topic_delete(f->c, "gone") < 0); /* shoald died on it */
    assert_true(harness_daemon_wait_exit(&f->d, 5000) >= 0);
    snprintf(dir, sizeof(dir), "%s/gone-2", f->d.data_dir);
    assert_int_equal(access(dir, F_OK), 0);
    assert_int_equal(count_dir_entries(f->d.shm_dir, ".ctl"), 6);

    assert_int_equal(harness_daemon_restart(&f->d), 0);
    harness_daemon_expect_log(&f->d, "finished deleting topic gone, which a stop had cut short");
    assert_int_equal(reconnect(f), 0);
    assert_int_equal(access(dir, F_OK), -1);
    assert_int_equal(count_dir_entries(f->d.shm_dir, ".ctl"), 3); /* kept's */
    assert_int_equal(count_topics(f->c), 1);
    assert_int_equal(shoal_topic_create(f->c, "gone", &cfg), 0);
    assert_int_equal(shoal_topic_describe(f->c, "gone", &info), 0);
    assert_int_equal(info->partitions[2].log_end_offset, 0);
    shoal_topic_info_free(info);
}

/* A partition growth that a crash cuts short, after the new partitions' files were made and
 * before the topic's new count was stored (SHOALD_TEST_GROW_CRASH), leaves partitions that
 * were never served: the next start removes their files (their rings held RAM, and were
 * reported as maybe holding records), and the topic grows again as asked. A metadata store
 * restored from a backup taken during the grow notes it too, but partitions that received
 * records since are not removed. */
INTEG_TEST(test_a_partition_growth_cut_short_by_a_crash_is_undone_at_the_next_start)
{
    shoal_topic_config_t cfg = topic_cfg(1, 1ull << 20, 2);
    const char *name = "partitions", *three = "3";
    shoal_topic_info_t *info;
    char dir[PATH_MAX], store[PATH_MAX], backup[PATH_MAX];

    assert_int_equal(shoal_topic_create(f->c, "grown", &cfg), 0);
    assert_int_equal(produce_range(f->c, "grown", 0, 0, 3, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    setenv("SHOALD_TEST_GROW_CRASH", "1", 1);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    unsetenv("SHOALD_TEST_GROW_CRASH");
    assert_int_equal(reconnect(f), 0);
    assert_true(shoal_topic_alter(f->c, "grown", &name, &three, 1) < 0); /* shoald died on it */
    assert_true(harness_daemon_wait_exit(&f->d, 5000) >= 0);
    snprintf(dir, sizeof(dir), "%s/grown-2", f->d.data_dir);
    assert_int_equal(access(dir, F_OK), 0);
    assert_int_equal(count_dir_entries(f->d.shm_dir, ".ctl"), 3);
    snprintf(store, sizeof(store), "%s/meta/data.mdb", f->d.data_dir);
    snprintf(backup, sizeof(backup), "%s/backup.mdb", f->d.dir);
    assert_int_equal(copy_file(store, backup), 0);

    assert_int_equal(harness_daemon_restart(&f->d), 0);
    harness_daemon_expect_log(&f->d, "topic grown: partitions 1..2 were being added when a stop");
    assert_false(harness_daemon_log_contains(&f->d, "of no served topic"));
    assert_int_equal(access(dir, F_OK), -1);
    assert_int_equal(count_dir_entries(f->d.shm_dir, ".ctl"), 1);
    assert_int_equal(reconnect(f), 0);
    assert_int_equal(harness_read_numbered(f->c, "grown", 0, 3), 3);
    assert_int_equal(shoal_topic_alter(f->c, "grown", &name, &three, 1), 0);
    assert_int_equal(shoal_topic_describe(f->c, "grown", &info), 0);
    assert_int_equal(info->config.partitions, 3);
    shoal_topic_info_free(info);
    assert_int_equal(count_dir_entries(f->d.shm_dir, ".ctl"), 3);

    assert_int_equal(produce_range(f->c, "grown", 2, 0, 3, SHOAL_ACKS_DISK), 0);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    harness_daemon_wipe_shm(&f->d); /* a reboot: only the segments tell */
    assert_int_equal(copy_file(backup, store), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    harness_daemon_expect_log(&f->d, "partition 2, which a stop cut short while it was being "
                                     "added, holds records");
    assert_int_equal(access(dir, F_OK), 0);
    assert_true(log_bytes(dir) > 0);
}

INTEG_TEST(test_unknown_topic_is_enotopic_for_describe_delete_and_producer)
{
    shoal_topic_info_t *info = (void *)1;
    shoal_producer_t *p = (void *)1;
    shoal_consumer_t *cons;

    assert_int_equal(shoal_topic_describe(f->c, "nope", &info), SHOAL_ENOTOPIC);
    assert_null(info);
    assert_int_equal(shoal_topic_delete(f->c, "nope"), SHOAL_ENOTOPIC);
    assert_int_equal(shoal_producer_open(f->c, "nope", NULL, &p), SHOAL_ENOTOPIC);
    assert_null(p);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &cons), 0);
    assert_int_equal(shoal_consumer_assign(cons, "nope", NULL, 0), SHOAL_ENOTOPIC);
    shoal_consumer_close(cons);
    /* The connection is still in step after the errors. */
    assert_int_equal(shoal_topic_create(f->c, "nope", NULL), 0);
    assert_int_equal(count_topics(f->c), 1);
}

INTEG_TEST(test_send_rejects_bad_partition_and_oversize_record_without_using_an_offset)
{
    shoal_topic_config_t cfg = topic_cfg(2, 1ull << 20, 2);
    shoal_message_t two[2];
    shoal_producer_t *p;
    shoal_ack_t ack;
    char *big;

    cfg.max_record_bytes = 1024;
    assert_int_equal(shoal_topic_create(f->c, "limits", &cfg), 0);
    assert_int_equal(shoal_producer_open(f->c, "limits", NULL, &p), 0);
    assert_int_equal(send_one(p, 2, NULL, 0, "x", 1, &ack), SHOAL_ENOPARTITION);
    assert_int_equal(send_one(p, 1000, NULL, 0, "x", 1, &ack), SHOAL_ENOPARTITION);
    assert_int_equal(send_one(p, -2, NULL, 0, "x", 1, &ack), SHOAL_ENOPARTITION);

    assert_int_equal(send_range(p, 1, 0, 3), 0);
    big = calloc(1, 2000);
    assert_non_null(big);
    assert_int_equal(send_one(p, 1, NULL, 0, big, 2000, &ack), SHOAL_ETOOLARGE);
    assert_int_equal(send_one(p, 1, NULL, 0, big, 1024, &ack), SHOAL_ETOOLARGE);
    /* Lengths past 2 GiB are refused while planning, before any byte is read. */
    assert_int_equal(send_one(p, 1, NULL, 0, big, (size_t)INT32_MAX + 1, &ack), SHOAL_ETOOLARGE);
    assert_int_equal(send_one(p, 1, big, (size_t)INT32_MAX + 1, "x", 1, &ack), SHOAL_ETOOLARGE);
    /* In a batch the limit is each record's (shoal_send_batch): 1000 + 10 bytes of values
     * is under 2 x 1024, but the first record alone is over 1024. */
    two[0] = (shoal_message_t){.value = big, .value_len = 1000, .partition = 1};
    two[1] = (shoal_message_t){.value = big, .value_len = 10, .partition = 1};
    assert_int_equal(shoal_send_batch(p, two, 2, &ack), SHOAL_ETOOLARGE);
    assert_non_null(strstr(shoal_errmsg(), "record of "));
    free(big);
    /* The next good record takes the next offset: the failures consumed none. */
    assert_int_equal(send_range(p, 1, 3, 2), 0);
    shoal_producer_close(p);
    assert_partition_holds(f->c, "limits", 1, 5);
    assert_partition_holds(f->c, "limits", 0, 0);
}

/* The log end offset of each of the topic's first n partitions, into ends. */
static void log_ends(shoal_client_t *c, const char *topic, int64_t *ends, uint32_t n)
{
    shoal_topic_info_t *info = NULL;

    assert_int_equal(shoal_topic_describe(c, topic, &info), 0);
    for (uint32_t i = 0; i < n; i++)
        ends[i] = info->partitions[i].log_end_offset;
    shoal_topic_info_free(info);
}

/* A batch placed by its first record's key goes to one partition: a later key of another
 * partition is refused, nothing appended (it used to go where the first key went, which
 * breaks "the same key, the same partition"); keyless records may join. */
INTEG_TEST(test_a_keyed_batch_with_a_key_of_another_partition_is_refused)
{
    shoal_topic_config_t cfg = topic_cfg(4, 1ull << 20, 2);
    char a[8] = "k0", b[8];
    shoal_message_t m[3] = {{.key = a, .key_len = 2, .value = "1", .value_len = 1},
                            {.key = b, .key_len = 0, .value = "2", .value_len = 1},
                            {.key = a, .key_len = 2, .value = "3", .value_len = 1}};
    int32_t pa = shoal_partition_for_key(a, 2, 4);
    shoal_producer_t *p;
    shoal_ack_t ack;
    int64_t ends[4];
    char want[64];

    for (int i = 1; i < 100 && (!m[1].key_len || shoal_partition_for_key(b, 2, 4) == pa); i++)
        m[1].key_len = (size_t)snprintf(b, sizeof(b), "k%d", i);
    for (int i = 0; i < 3; i++)
        m[i].partition = SHOAL_PARTITION_ANY;
    assert_int_equal(shoal_topic_create(f->c, "keyed", &cfg), 0);
    assert_int_equal(shoal_producer_open(f->c, "keyed", NULL, &p), 0);
    assert_int_equal(shoal_send_batch(p, m, 3, &ack), SHOAL_EINVAL);
    snprintf(want, sizeof(want), "message 1's key goes to partition %d",
             shoal_partition_for_key(b, m[1].key_len, 4));
    assert_non_null(strstr(shoal_errmsg(), want));
    log_ends(f->c, "keyed", ends, 4);
    for (int32_t i = 0; i < 4; i++)
        assert_int_equal(ends[i], 0); /* nothing appended */

    m[1].key = NULL;
    m[1].key_len = 0;
    assert_int_equal(shoal_send_batch(p, m, 3, &ack), 0);
    assert_int_equal(ack.partition, pa);
    shoal_producer_close(p);
    log_ends(f->c, "keyed", ends, 4);
    for (int32_t i = 0; i < 4; i++)
        assert_int_equal(ends[i], i == pa ? 3 : 0);
}

INTEG_TEST(test_client_open_without_daemon_is_enodaemon)
{
    shoal_client_t *c = (void *)1;
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/no-such.sock", f->d.dir);
    assert_int_equal(shoal_client_open(path, &c), SHOAL_ENODAEMON);
    assert_null(c);
    /* A socket file left behind by a daemon that died; a new daemon replaces it. */
    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    assert_int_equal(access(f->d.socket, F_OK), 0);
    assert_int_equal(shoal_client_open(f->d.socket, &c), SHOAL_ENODAEMON);
    assert_null(c);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
}

/* ------------------------------------------------------------------ partitioning */

#define KEYED_PARTS        4
#define KEYED_RECORDS      600
#define KEYED_NULL_RECORDS 200

struct keyed_expect {
    int64_t n[KEYED_PARTS];
    int32_t (*ids)[KEYED_RECORDS + KEYED_NULL_RECORDS]; /* per partition: record ids in order */
};

static void key_of(char *buf, size_t cap, int id)
{
    snprintf(buf, cap, "user-%d", id % 53);
}

static bool check_keyed(const shoal_record_t *r, int64_t index, void *arg)
{
    struct keyed_expect *e = arg;
    int32_t id = e->ids[r->partition][index];
    char key[32], value[32];

    snprintf(value, sizeof(value), "v%d", id);
    if (r->value_len != (int32_t)strlen(value) || memcmp(r->value, value, strlen(value)))
        return false;
    if (id >= KEYED_RECORDS)
        return r->key == NULL && r->key_len == -1;
    key_of(key, sizeof(key), id);
    return r->key_len == (int32_t)strlen(key) && !memcmp(r->key, key, strlen(key));
}

INTEG_TEST(test_keyed_records_land_on_murmur2_partition_and_null_keys_spread)
{
    shoal_topic_config_t cfg = topic_cfg(KEYED_PARTS, 1ull << 20, 2);
    struct keyed_expect e = {{0}, calloc(KEYED_PARTS, sizeof(*e.ids))};
    shoal_producer_t *p;

    assert_non_null(e.ids);
    assert_int_equal(shoal_topic_create(f->c, "keyed", &cfg), 0);
    assert_int_equal(shoal_producer_open(f->c, "keyed", NULL, &p), 0);
    for (int id = 0; id < KEYED_RECORDS + KEYED_NULL_RECORDS; id++) {
        bool keyed = id < KEYED_RECORDS;
        char key[32], value[32];
        shoal_ack_t ack;
        int32_t want;

        key_of(key, sizeof(key), id);
        snprintf(value, sizeof(value), "v%d", id);
        assert_int_equal(send_one(p, SHOAL_PARTITION_ANY, keyed ? key : NULL,
                                  keyed ? strlen(key) : 0, value, strlen(value), &ack),
                         0);
        if (keyed) {
            want = shoal_partition_for_key(key, strlen(key), KEYED_PARTS);
            assert_int_equal(ack.partition, want);
        }
        assert_in_range(ack.partition, 0, KEYED_PARTS - 1);
        /* offsets per partition: from 0, gapless, in append order */
        assert_int_equal(ack.offset, e.n[ack.partition]);
        e.ids[ack.partition][e.n[ack.partition]++] = id;
    }
    shoal_producer_close(p);
    /* each new producer starts its round-robin somewhere of its own: 16 that send one batch
     * do not all pick the same partition (odds of that by chance: 4^-15); their id is 800 */
    {
        shoal_message_t m = {.value = "v800", .value_len = 4, .partition = SHOAL_PARTITION_ANY};
        int32_t first = -1;
        bool spread = false;
        for (int i = 0; i < 16; i++) {
            shoal_ack_t ack;
            assert_int_equal(shoal_producer_open(f->c, "keyed", NULL, &p), 0);
            assert_int_equal(shoal_send_batch(p, &m, 1, &ack), 0);
            shoal_producer_close(p);
            spread |= first >= 0 && ack.partition != first;
            first = first < 0 ? ack.partition : first;
            e.ids[ack.partition][e.n[ack.partition]++] = KEYED_RECORDS + KEYED_NULL_RECORDS;
        }
        assert_true(spread);
    }
    for (int part = 0; part < KEYED_PARTS; part++) {
        int nulls = 0;
        for (int64_t k = 0; k < e.n[part]; k++)
            nulls += e.ids[part][k] >= KEYED_RECORDS;
        /* records without a key are spread: every partition gets some */
        assert_true(nulls > 0);
        assert_int_equal(read_partition(f->c, "keyed", part, 0, e.n[part], 2000, check_keyed, &e),
                         e.n[part]);
    }
    free(e.ids);
}

/* ------------------------------------------------------------------ many producers */

#define PRODUCERS    4
#define PER_PRODUCER 5000

struct producer_child {
    const char *socket;
    const char *topic;
    int id;
    int go_fd;    /* read end: producing starts when it reaches end of file */
    int go_close; /* the write end, which the child must close for that to happen */
};

static int producer_child_main(void *arg)
{
    struct producer_child *a = arg;
    shoal_client_t *c;
    shoal_producer_t *p;
    char value[32], b;

    close(a->go_close);
    if (shoal_client_open(a->socket, &c) < 0)
        return 10;
    if (shoal_producer_open(c, a->topic, NULL, &p) < 0)
        return 11;
    while (read(a->go_fd, &b, 1) > 0)
        ;
    for (int seq = 0; seq < PER_PRODUCER; seq++) {
        int n = snprintf(value, sizeof(value), "%d:%d", a->id, seq);
        shoal_ack_t ack;
        int rc = send_one(p, 0, NULL, 0, value, (size_t)n, &ack);
        if (rc < 0) {
            fprintf(stderr, "producer %d seq %d: %s (%s)\n", a->id, seq, shoal_err_name(rc),
                    shoal_errmsg());
            return 12;
        }
    }
    shoal_producer_close(p);
    shoal_client_close(c);
    return 0;
}

struct interleave {
    int next[PRODUCERS]; /* next seq expected from each producer */
};

static bool check_interleaved(const shoal_record_t *r, int64_t index, void *arg)
{
    struct interleave *s = arg;
    char buf[32];
    int id, seq;
    (void)index;

    if (r->value_len <= 0 || r->value_len >= (int32_t)sizeof(buf))
        return false;
    memcpy(buf, r->value, (size_t)r->value_len);
    buf[r->value_len] = '\0';
    if (sscanf(buf, "%d:%d", &id, &seq) != 2 || id < 0 || id >= PRODUCERS)
        return false;
    if (seq != s->next[id]) {
        fprintf(stderr, "producer %d: got seq %d, expected %d\n", id, seq, s->next[id]);
        return false;
    }
    s->next[id]++;
    return true;
}

INTEG_TEST(test_producer_processes_on_one_partition_lose_and_duplicate_nothing)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 4);
    struct producer_child args[PRODUCERS];
    struct interleave seen = {{0}};
    pid_t pids[PRODUCERS];
    int go[2];

    assert_int_equal(shoal_topic_create(f->c, "many", &cfg), 0);
    assert_int_equal(pipe(go), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        args[i] = (struct producer_child){f->d.socket, "many", i, go[0], go[1]};
        pids[i] = harness_fork(producer_child_main, &args[i], HARNESS_CHILD_TIMEOUT_S);
        assert_true(pids[i] > 0);
    }
    close(go[0]);
    close(go[1]); /* all start at once */
    /* Read while they write: the early records will have gone to disk by then. */
    assert_int_equal(read_partition(f->c, "many", 0, 0, PRODUCERS * PER_PRODUCER, 5000,
                                    check_interleaved, &seen),
                     PRODUCERS * PER_PRODUCER);
    for (int i = 0; i < PRODUCERS; i++) {
        assert_int_equal(harness_wait(pids[i], 10000), 0);
        assert_int_equal(seen.next[i], PER_PRODUCER);
    }
    /* And nothing after them. */
    assert_int_equal(
        read_partition(f->c, "many", 0, PRODUCERS * PER_PRODUCER, 1, 100, check_interleaved, &seen),
        0);
}

/* ------------------------------------------------------------------ wake-up */

#define WAKE_ROUNDS 50

struct wake_child {
    const char *socket;
    int ready_fd;  /* the child writes one byte when its consumer is assigned */
    int result_fd; /* then one int64 latency (ns) per record */
};

static int wake_child_main(void *arg)
{
    struct wake_child *a = arg;
    shoal_client_t *c;
    shoal_consumer_t *cons;
    shoal_record_t rec;

    if (shoal_client_open(a->socket, &c) < 0 || shoal_consumer_open(c, NULL, &cons) < 0)
        return 10;
    if (shoal_consumer_assign(cons, "wake", NULL, 0) < 0)
        return 11;
    if (write(a->ready_fd, "r", 1) != 1)
        return 12;
    for (int i = 0;; i++) {
        int n = shoal_poll(cons, &rec, 1, i % 2 ? 5000 : -1);
        int64_t now = mono_ns(), sent;
        char buf[32];
        if (n != 1) {
            fprintf(stderr, "wake child: poll %d returned %s\n", i, shoal_err_name(n));
            return 13;
        }
        if (rec.value_len == 4 && !memcmp(rec.value, "stop", 4))
            break;
        if (rec.value_len <= 0 || rec.value_len >= (int32_t)sizeof(buf))
            return 14;
        memcpy(buf, rec.value, (size_t)rec.value_len);
        buf[rec.value_len] = '\0';
        sent = strtoll(buf, NULL, 10);
        now -= sent;
        if (write(a->result_fd, &now, sizeof(now)) != sizeof(now))
            return 15;
    }
    shoal_consumer_close(cons);
    shoal_client_close(c);
    return 0;
}

/* utime + stime of a process in milliseconds, from /proc/<pid>/stat; state gets its
 * state letter. -1 on failure. */
static int64_t proc_cpu_ms(pid_t pid, char *state)
{
    char path[64], buf[1024];
    unsigned long ut, st;
    const char *p;
    FILE *fp;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (!(fp = fopen(path, "r")))
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    /* the command name may hold spaces and parentheses: fields resume after the last ')' */
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", state, &ut, &st) != 3)
        return -1;
    return (int64_t)(ut + st) * 1000 / sysconf(_SC_CLK_TCK);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

INTEG_TEST(test_sleeping_consumer_wakes_within_ms_of_append_and_idles_without_cpu)
{
    int64_t lat[WAKE_ROUNDS], cpu0, cpu1;
    struct wake_child a;
    int ready[2], result[2];
    shoal_producer_t *p;
    char buf[32], st0, st1;
    pid_t pid;

    assert_int_equal(shoal_topic_create(f->c, "wake", NULL), 0);
    assert_int_equal(shoal_producer_open(f->c, "wake", NULL, &p), 0);
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(result), 0);
    a = (struct wake_child){f->d.socket, ready[1], result[1]};
    pid = harness_fork(wake_child_main, &a, HARNESS_CHILD_TIMEOUT_S);
    assert_true(pid > 0);
    close(ready[1]);
    close(result[1]);
    assert_int_equal(read(ready[0], buf, 1), 1);

    for (int i = 0; i < WAKE_ROUNDS; i++) {
        int n;
        usleep(2000); /* let the consumer go back to sleep */
        n = snprintf(buf, sizeof(buf), "%" PRId64, mono_ns());
        assert_int_equal(send_one(p, 0, NULL, 0, buf, (size_t)n, NULL), 0);
        assert_int_equal(read(result[0], &lat[i], sizeof(lat[i])), sizeof(lat[i]));
        /* A lost wake-up sleeps to the poll's timeout (5 s) or for ever; a loaded machine
         * (ASan, parallel builds) has delayed a wake-up by a quarter of a second. */
        if (lat[i] >= 1000 * 1000000LL)
            fail_msg("round %d: the consumer woke %.3f ms after the append", i, lat[i] / 1e6);
    }
    qsort(lat, WAKE_ROUNDS, sizeof(lat[0]), cmp_i64);
    print_message("wake-up latency append->receive over %d rounds: median %.1f us, "
                  "min %.1f us, max %.1f us\n",
                  WAKE_ROUNDS, lat[WAKE_ROUNDS / 2] / 1e3, lat[0] / 1e3,
                  lat[WAKE_ROUNDS - 1] / 1e3);
    assert_true(lat[WAKE_ROUNDS / 2] < 5 * 1000000LL);

    /* Idle: the consumer sits in shoal_poll for 300 ms and should cost nearly nothing. */
    usleep(20000);
    cpu0 = proc_cpu_ms(pid, &st0);
    usleep(300000);
    cpu1 = proc_cpu_ms(pid, &st1);
    assert_true(cpu0 >= 0 && cpu1 >= 0);
    print_message("idle consumer: %" PRId64 " ms of CPU in 300 ms, state %c\n", cpu1 - cpu0, st1);
    assert_true(cpu1 - cpu0 < 20);
    assert_int_equal(st1, 'S');

    assert_int_equal(send_one(p, 0, NULL, 0, "stop", 4, NULL), 0);
    assert_int_equal(harness_wait(pid, 5000), 0);
    close(ready[0]);
    close(result[0]);
    shoal_producer_close(p);
}

/* ------------------------------------------------------------------ wait strategies */

#define WAIT_ROUNDS 20

struct wait_child {
    const char *socket;
    const char *topic;
    uint32_t wait;
    int rounds;
    int ready_fd;
};

/* A consumer with the given wait strategy that must receive `rounds` records, each
 * appended while it waits in shoal_poll, in order. */
static int wait_child_main(void *arg)
{
    struct wait_child *a = arg;
    shoal_consumer_options_t o;
    shoal_consumer_t *cons;
    shoal_client_t *c;
    shoal_record_t rec;

    if (shoal_client_open(a->socket, &c) < 0)
        return 10;
    shoal_consumer_options_init(&o);
    o.wait = a->wait;
    if (shoal_consumer_open(c, &o, &cons) < 0 || shoal_consumer_assign(cons, a->topic, NULL, 0) < 0)
        return 11;
    if (write(a->ready_fd, "r", 1) != 1)
        return 12;
    for (int64_t want = 0; want < a->rounds; want++) {
        int n = shoal_poll(cons, &rec, 1, 5000);
        if (n != 1)
            return 13;
        if (rec.offset != want || rec.value_len != 1 || *(const char *)rec.value != 'w')
            return 14;
    }
    shoal_consumer_close(cons);
    shoal_client_close(c);
    return 0;
}

INTEG_TEST(test_each_consumer_wait_strategy_receives_records_appended_while_it_waits)
{
    static const uint32_t waits[] = {SHOAL_WAIT_DEFAULT, SHOAL_WAIT_FUTEX, SHOAL_WAIT_SPIN};
    shoal_consumer_options_t bad;
    shoal_consumer_t *cons;
    shoal_producer_t *p;

    shoal_consumer_options_init(&bad);
    assert_int_equal(bad.wait, SHOAL_WAIT_DEFAULT);
    assert_true(bad.spin_ns > 0);
    bad.wait = 3;
    assert_int_equal(shoal_consumer_open(f->c, &bad, &cons), SHOAL_EINVAL);
    assert_null(cons);
    for (size_t w = 0; w < SHOAL_ARRAY_LEN(waits); w++) {
        struct wait_child a;
        int ready[2];
        char buf;
        pid_t pid;

        assert_int_equal(shoal_topic_create(f->c, "waits", NULL), 0);
        assert_int_equal(shoal_producer_open(f->c, "waits", NULL, &p), 0);
        assert_int_equal(pipe(ready), 0);
        a = (struct wait_child){f->d.socket, "waits", waits[w], WAIT_ROUNDS, ready[1]};
        pid = harness_fork(wait_child_main, &a, HARNESS_CHILD_TIMEOUT_S);
        assert_true(pid > 0);
        close(ready[1]);
        assert_int_equal(read(ready[0], &buf, 1), 1);
        for (int i = 0; i < WAIT_ROUNDS; i++) {
            usleep(i % 2 ? 200 : 3000); /* inside the spin, and past it into the futex */
            assert_int_equal(send_one(p, 0, NULL, 0, "w", 1, NULL), 0);
        }
        if (harness_wait(pid, 10000) != 0)
            fail_msg("consumer with wait strategy %u did not receive every record", waits[w]);
        close(ready[0]);
        shoal_producer_close(p);
        assert_int_equal(shoal_topic_delete(f->c, "waits"), 0);
    }
}

/* ------------------------------------------------------------------ wakeup */

static shoal_consumer_t *_Atomic to_wake;

static void *wake_after_100_ms(void *arg)
{
    (void)arg;
    usleep(100000);
    assert_int_equal(shoal_consumer_wakeup(atomic_load(&to_wake)), 0);
    return NULL;
}

static void wake_from_handler(int sig)
{
    (void)sig;
    shoal_consumer_wakeup(atomic_load(&to_wake));
}

static void ignore_signal(int sig)
{
    (void)sig;
}

/* How long a poll with no timeout takes to return SHOAL_EWAKEUP, woken 100 ms into it:
 * from another thread (thread) or from a SIGALRM handler. */
static int64_t woken_after_ms(shoal_consumer_t *c, bool thread)
{
    shoal_record_t rec;
    struct itimerval in_100_ms = {.it_value = {.tv_usec = 100000}};
    pthread_t th;
    int64_t t0 = mono_ns();

    atomic_store(&to_wake, c);
    if (thread)
        assert_int_equal(pthread_create(&th, NULL, wake_after_100_ms, NULL), 0);
    else
        assert_int_equal(setitimer(ITIMER_REAL, &in_100_ms, NULL), 0);
    assert_int_equal(shoal_poll(c, &rec, 1, -1), SHOAL_EWAKEUP);
    if (thread)
        assert_int_equal(pthread_join(th, NULL), 0);
    return (mono_ns() - t0) / 1000000;
}

/* shoal_consumer_wakeup() ends a poll that waits for ever, whatever the wait strategy (a
 * spinning one makes no system call a signal could end), called from another thread or a
 * signal handler; called before a poll, it ends that one at once; one call ends one poll.
 * A group member with no partitions (its topic does not exist yet) is woken the same way, and
 * so is a consumer with nothing assigned, whose poll waits out its timeout (it returned at
 * once: a poll(-1) loop spun a CPU) unless a signal ends it. Before, a poll with no timeout could
 * only be ended by records, or by a signal for the sleeping strategies. */
INTEG_TEST(test_a_wakeup_ends_a_poll_in_every_wait_strategy)
{
    static const uint32_t waits[] = {SHOAL_WAIT_DEFAULT, SHOAL_WAIT_FUTEX, SHOAL_WAIT_SPIN};
    struct sigaction sa = {.sa_handler = wake_from_handler};
    const char *topics[] = {"not-yet"};
    shoal_consumer_options_t o;
    shoal_consumer_t *c;
    shoal_record_t rec;
    int64_t t0;

    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
    assert_int_equal(shoal_consumer_wakeup(NULL), SHOAL_EINVAL);
    assert_int_equal(shoal_topic_create(f->c, "wake", NULL), 0);
    for (size_t w = 0; w < SHOAL_ARRAY_LEN(waits); w++) {
        int64_t ms;

        t0 = mono_ns();
        shoal_consumer_options_init(&o);
        o.wait = waits[w];
        assert_int_equal(shoal_consumer_open(f->c, &o, &c), 0);
        assert_int_equal(shoal_consumer_assign(c, "wake", NULL, 0), 0);
        assert_int_equal(shoal_consumer_wakeup(c), 0);
        assert_int_equal(shoal_poll(c, &rec, 1, 5000), SHOAL_EWAKEUP);
        assert_true(mono_ns() - t0 < 1000000000ll);
        assert_int_equal(shoal_poll(c, &rec, 1, 50), 0); /* that call is used up */
        for (int thread = 1; thread >= 0; thread--) {
            ms = woken_after_ms(c, thread);
            print_message("wait %u, woken by a %s: %lld ms\n", waits[w],
                          thread ? "thread" : "signal handler", (long long)ms);
            assert_true(ms >= 90 && ms < 2000);
        }
        shoal_consumer_close(c);
    }
    shoal_consumer_options_init(&o);
    o.group_id = "wakers";
    assert_int_equal(shoal_consumer_open(f->c, &o, &c), 0);
    assert_int_equal(shoal_consumer_subscribe(c, topics, 1), 0);
    assert_int_equal(shoal_poll(c, &rec, 1, 100), 0); /* joined, nothing to read */
    assert_true(woken_after_ms(c, true) < 1000);      /* its heartbeat interval is 3 s */
    shoal_consumer_close(c);

    assert_int_equal(shoal_consumer_open(f->c, NULL, &c), 0);
    t0 = mono_ns();
    assert_int_equal(shoal_poll(c, &rec, 1, 100), 0);
    assert_true(mono_ns() - t0 >= 90000000ll);
    t0 = woken_after_ms(c, true);
    assert_true(t0 >= 90 && t0 < 2000);
    /* and a signal ends its wait with -EINTR, as it ends any poll's sleep (it was dropped) */
    sa.sa_handler = ignore_signal;
    assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
    assert_int_equal(
        setitimer(ITIMER_REAL, &(struct itimerval){.it_value = {.tv_usec = 100000}}, NULL), 0);
    t0 = mono_ns();
    assert_int_equal(shoal_poll(c, &rec, 1, -1), -EINTR);
    assert_true(mono_ns() - t0 < 2000000000ll);
    shoal_consumer_close(c);
    signal(SIGALRM, SIG_DFL);
}

/* ------------------------------------------------------------------ fetch_min_bytes */

#define GATHER_RECORDS 3
#define GATHER_GAP_US  20000

struct gather_child {
    const char *socket;
    int go_fd; /* a byte here, and the child starts sending */
};

/* Send GATHER_RECORDS one-byte records, one per batch, GATHER_GAP_US apart. */
static int gather_child_main(void *arg)
{
    struct gather_child *a = arg;
    shoal_producer_t *p;
    shoal_client_t *c;
    char buf;

    if (shoal_client_open(a->socket, &c) < 0 || shoal_producer_open(c, "gather", NULL, &p) < 0)
        return 10;
    if (read(a->go_fd, &buf, 1) != 1)
        return 11;
    for (int i = 0; i < GATHER_RECORDS; i++) {
        usleep(GATHER_GAP_US);
        if (send_one(p, 0, NULL, 0, "g", 1, NULL) < 0)
            return 12;
    }
    shoal_producer_close(p);
    shoal_client_close(c);
    return 0;
}

/* A consumer of "gather" placed at its log end. */
static shoal_consumer_t *gather_consumer(shoal_client_t *c, uint32_t wait, uint32_t min_bytes,
                                         uint32_t max_wait_us)
{
    shoal_consumer_options_t o;
    shoal_consumer_t *k;
    shoal_record_t r;

    shoal_consumer_options_init(&o);
    o.wait = wait;
    o.fetch_min_bytes = min_bytes;
    o.fetch_max_wait_us = max_wait_us;
    assert_int_equal(shoal_consumer_open(c, &o, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "gather", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "gather", 0, SHOAL_SEEK_END, 0), 0);
    assert_int_equal(shoal_poll(k, &r, 1, 0), 0); /* places the cursor at the end */
    return k;
}

/* A consumer that wants 1 MiB is sent one record: a poll with timeout 0 returns it at
 * once; for the next one, how many ms a poll with timeout_ms takes to return it. */
static int gather_one_ms(shoal_client_t *c, shoal_producer_t *p, uint32_t wait,
                         uint32_t max_wait_us, int timeout_ms)
{
    shoal_consumer_t *k = gather_consumer(c, wait, 1 << 20, max_wait_us);
    shoal_record_t r[16];
    int64_t t0;

    assert_int_equal(send_one(p, 0, NULL, 0, "g", 1, NULL), 0);
    assert_int_equal(shoal_poll(k, r, 16, 0), 1);
    assert_int_equal(send_one(p, 0, NULL, 0, "g", 1, NULL), 0);
    t0 = shoal__mono_ns();
    assert_int_equal(shoal_poll(k, r, 16, timeout_ms), 1);
    shoal_consumer_close(k);
    return (int)((shoal__mono_ns() - t0) / 1000000);
}

/* A poll with fetch_min_bytes returns once that many bytes are ready (records sent 20 ms
 * apart come back together, not one by one), or fetch_max_wait_us after it first saw data,
 * or at its own timeout, with what is there; a poll with timeout 0 never waits. Each wait
 * strategy gathers (spinning, sleeping, or both). */
INTEG_TEST(test_fetch_min_bytes_gathers_records_until_enough_or_the_wait_ends)
{
    static const uint32_t waits[] = {SHOAL_WAIT_DEFAULT, SHOAL_WAIT_FUTEX, SHOAL_WAIT_SPIN};
    const size_t one = record_batch_encoded_size(
        &(shoal_message_t){.value = "g", .value_len = 1, .partition = 0}, 1, 0);
    shoal_consumer_options_t d;
    shoal_producer_t *p;
    shoal_record_t r[16];

    shoal_consumer_options_init(&d);
    assert_int_equal(d.fetch_min_bytes, 1);
    assert_int_equal(d.fetch_max_wait_us, SHOAL_FETCH_MAX_WAIT_US_DEFAULT);
    assert_int_equal(shoal_topic_create(f->c, "gather", NULL), 0);
    assert_int_equal(shoal_producer_open(f->c, "gather", NULL, &p), 0);
    for (size_t w = 0; w < SHOAL_ARRAY_LEN(waits); w++) {
        /* enough: the third record makes GATHER_RECORDS batches */
        shoal_consumer_t *k = gather_consumer(f->c, waits[w], (uint32_t)(one * 3 - 1), 5000000);
        struct gather_child a;
        int go[2], n = 0;
        pid_t pid;

        assert_int_equal(pipe(go), 0);
        a = (struct gather_child){f->d.socket, go[0]};
        pid = harness_fork(gather_child_main, &a, HARNESS_CHILD_TIMEOUT_S);
        assert_true(pid > 0);
        close(go[0]);
        assert_int_equal(write(go[1], "g", 1), 1);
        n = shoal_poll(k, r, 16, 10000);
        if (n != GATHER_RECORDS)
            fail_msg("wait %u: one poll returned %d of %d records", waits[w], n, GATHER_RECORDS);
        assert_int_equal(harness_wait(pid, 10000), 0);
        close(go[1]);
        shoal_consumer_close(k);

        /* not enough: the poll's timeout, or else fetch_max_wait_us, ends the wait */
        n = gather_one_ms(f->c, p, waits[w], 5000000, 40);
        if (n < 40 || n > 4000)
            fail_msg("wait %u: a poll with a 40 ms timeout returned after %d ms", waits[w], n);
        n = gather_one_ms(f->c, p, waits[w], 30000, 10000);
        if (n < 30 || n > 5000)
            fail_msg("wait %u: a 30 ms fetch_max_wait_us returned after %d ms", waits[w], n);
    }
    shoal_producer_close(p);
}

#define STREAM_ROUNDS 2000
#define STREAM_GAP_NS 20000 /* 4x the default spin_ns, inside the adaptive limit of 40x */

/* A record every 20 us outlasts the default 5 us spin every time: without adapting, the
 * consumer would sleep between all of them and each append would make a FUTEX_WAKE call
 * (and bump the readers' wake-up word). With the adaptive spin it keeps spinning. */
INTEG_TEST(test_default_wait_follows_a_steady_stream_without_wake_ups)
{
    struct wait_child a;
    shoal_producer_t *p;
    int ready[2];
    uint32_t seq0, wakes;
    int64_t t0;
    char buf;
    pid_t pid;

    assert_int_equal(shoal_topic_create(f->c, "stream", NULL), 0);
    assert_int_equal(shoal_producer_open(f->c, "stream", NULL, &p), 0);
    assert_int_equal(pipe(ready), 0);
    a = (struct wait_child){f->d.socket, "stream", SHOAL_WAIT_DEFAULT, STREAM_ROUNDS, ready[1]};
    pid = harness_fork(wait_child_main, &a, HARNESS_CHILD_TIMEOUT_S);
    assert_true(pid > 0);
    close(ready[1]);
    assert_int_equal(read(ready[0], &buf, 1), 1);
    close(ready[0]);
    seq0 = harness_wake_seq(&f->d, "stream");
    t0 = shoal__mono_ns();
    for (int i = 0; i < STREAM_ROUNDS; i++) {
        while (shoal__mono_ns() < t0 + (int64_t)i * STREAM_GAP_NS)
            shoal__cpu_relax();
        assert_int_equal(send_one(p, 0, NULL, 0, "w", 1, NULL), 0);
    }
    assert_int_equal(harness_wait(pid, 10000), 0);
    wakes = harness_wake_seq(&f->d, "stream") - seq0;
    printf("%d records 20 us apart woke the consumer %u times\n", STREAM_ROUNDS, wakes);
    assert_true(wakes < STREAM_ROUNDS / 5); /* without adapting: ~900 here */
    shoal_producer_close(p);
}

#define ONE_BATCHES 3
#define ONE_PER     64

/* The next poll of one record must be the record at want. */
static void expect_one(shoal_consumer_t *k, int64_t want)
{
    shoal_record_t r;
    char v[16];
    int n = snprintf(v, sizeof(v), "one-%" PRId64, want);
    assert_int_equal(shoal_poll(k, &r, 1, 1000), 1);
    assert_int_equal(r.offset, want);
    assert_int_equal(r.value_len, n);
    assert_memory_equal(r.value, v, (size_t)n);
}

/* A consumer polling one record at a time goes on inside a batch where the last poll
 * stopped (it does not decode the batch again from its start); a seek, even into the
 * same batch, starts afresh. */
INTEG_TEST(test_polling_one_record_at_a_time_walks_and_seeks_inside_batches)
{
    static char values[ONE_PER][16];
    shoal_message_t m[ONE_PER];
    shoal_producer_t *p;
    shoal_consumer_t *k;

    assert_int_equal(shoal_topic_create(f->c, "one", NULL), 0);
    assert_int_equal(shoal_producer_open(f->c, "one", NULL, &p), 0);
    for (int b = 0; b < ONE_BATCHES; b++) {
        for (int i = 0; i < ONE_PER; i++) {
            int n = snprintf(values[i], sizeof(values[i]), "one-%d", b * ONE_PER + i);
            m[i] = (shoal_message_t){.value = values[i], .value_len = (size_t)n};
        }
        assert_int_equal(shoal_send_batch(p, m, ONE_PER, NULL), 0);
    }
    shoal_producer_close(p);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "one", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "one", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    for (int64_t o = 0; o < 100; o++)
        expect_one(k, o);
    assert_int_equal(shoal_consumer_seek(k, "one", 0, SHOAL_SEEK_OFFSET, 10), 0);
    expect_one(k, 10);
    expect_one(k, 11);
    assert_int_equal(shoal_consumer_seek(k, "one", 0, SHOAL_SEEK_OFFSET, 3), 0); /* same batch */
    expect_one(k, 3);
    assert_int_equal(shoal_consumer_seek(k, "one", 0, SHOAL_SEEK_OFFSET, 101), 0);
    for (int64_t o = 101; o < ONE_BATCHES * ONE_PER; o++)
        expect_one(k, o);
    shoal_consumer_close(k);
}

/* ------------------------------------------------------------------ durability */

#define DUR_MEMORY 3000
#define DUR_DISK   150

INTEG_TEST(test_acknowledged_records_survive_daemon_kill9_and_lost_shm)
{
    shoal_topic_config_t cfg = topic_cfg(1, 256ull << 10, 4);
    int64_t n = DUR_MEMORY;

    assert_int_equal(shoal_topic_create(f->c, "dur", &cfg), 0);

    /* acks=memory, then the daemon dies: the shm ring outlives it and is re-attached */
    assert_int_equal(produce_range(f->c, "dur", 0, 0, n, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_partition_holds(f->c, "dur", 0, n);

    /* acks=disk, the daemon dies and shared memory is lost (a reboot): disk has it all */
    assert_int_equal(produce_range(f->c, "dur", 0, n, DUR_DISK, SHOAL_ACKS_DISK), 0);
    n += DUR_DISK;
    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    harness_daemon_wipe_shm(&f->d);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_partition_holds(f->c, "dur", 0, n);

    /* appends continue at the right offset, then a clean stop and start keeps it all */
    assert_int_equal(produce_range(f->c, "dur", 0, n, 10, SHOAL_ACKS_MEMORY), 0);
    n += 10;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_partition_holds(f->c, "dur", 0, n);
    assert_int_equal(produce_range(f->c, "dur", 0, n, 10, SHOAL_ACKS_DISK), 0);
    n += 10;

    /* a clean stop persists memory-acknowledged records even when shm is lost after it */
    assert_int_equal(produce_range(f->c, "dur", 0, n, 10, SHOAL_ACKS_MEMORY), 0);
    n += 10;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    harness_daemon_wipe_shm(&f->d);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_partition_holds(f->c, "dur", 0, n);
    assert_int_equal(produce_range(f->c, "dur", 0, n, 1, SHOAL_ACKS_MEMORY), 0);
}

/* Values of 1 KiB and more, in batches of 4 KiB or more, in a topic with the default ring
 * (4 x 64 MiB) go in with streaming stores (record.h, RECORD_STREAM_MIN): they read back
 * whole, CRC-checked, from the ring, and from the disk segments after the daemon dies with
 * its shared memory. */
#define LARGE_BATCHES 6
#define LARGE_PER     16
#define LARGE_MAX     70000

static size_t large_len_for(int64_t i)
{
    static const size_t lens[] = {300, 1023, 1024, 1025, 4096, 5000, LARGE_MAX};
    return lens[i % (int64_t)(sizeof(lens) / sizeof(lens[0]))];
}

static bool check_large_value(const shoal_record_t *r, int64_t index, void *arg)
{
    char *want = arg;
    size_t len = make_value(want, large_len_for(index), index);
    return r->value_len == (int32_t)len && memcmp(r->value, want, len) == 0;
}

INTEG_TEST(test_large_values_in_a_default_ring_read_back_from_ring_and_disk)
{
    shoal_producer_options_t o;
    shoal_message_t m[LARGE_PER];
    shoal_producer_t *p;
    const size_t stride = LARGE_MAX + 8; /* room for the misalignment below */
    char *vals = malloc(LARGE_PER * stride), *want = malloc(LARGE_MAX);
    const int64_t n = LARGE_BATCHES * LARGE_PER;

    assert_non_null(vals);
    assert_non_null(want);
    assert_int_equal(shoal_topic_create(f->c, "large", NULL), 0);
    shoal_producer_options_init(&o);
    o.acks = SHOAL_ACKS_DISK;
    assert_int_equal(shoal_producer_open(f->c, "large", &o, &p), 0);
    for (int64_t b = 0; b < LARGE_BATCHES; b++) {
        for (int k = 0; k < LARGE_PER; k++) {
            int64_t i = b * LARGE_PER + k;
            char *v = vals + (size_t)k * stride + (size_t)(i % 7); /* unaligned sources */
            m[k] = (shoal_message_t){.value = v, .value_len = make_value(v, large_len_for(i), i)};
        }
        assert_int_equal(shoal_send_batch(p, m, LARGE_PER, NULL), 0);
    }
    shoal_producer_close(p);
    assert_int_equal(read_partition(f->c, "large", 0, 0, n, 2000, check_large_value, want), n);

    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    harness_daemon_wipe_shm(&f->d);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_int_equal(read_partition(f->c, "large", 0, 0, n, 2000, check_large_value, want), n);
    free(want);
    free(vals);
}

INTEG_TEST(test_consumer_reads_offsets_that_exist_only_in_disk_segments)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    shoal_topic_info_t *info = NULL;
    const int64_t n = 4000; /* ~560 KB: nine 64 KiB segments behind a two-slot ring */
    char dir[PATH_MAX];

    assert_int_equal(shoal_topic_create(f->c, "disk", &cfg), 0);
    assert_int_equal(produce_range(f->c, "disk", 0, 0, n, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(shoal_topic_describe(f->c, "disk", &info), 0);
    assert_int_equal(info->partitions[0].log_start_offset, 0);
    assert_int_equal(info->partitions[0].log_end_offset, n);
    assert_true(info->partitions[0].shm_bytes <= 2 * SMALL_SEGMENT);
    shoal_topic_info_free(info);
    snprintf(dir, sizeof(dir), "%s/disk-0", f->d.data_dir);
    assert_true(count_dir_entries(dir, ".log") >= 6);
    assert_partition_holds(f->c, "disk", 0, n);
    /* and from the middle of an old segment */
    assert_int_equal(read_partition(f->c, "disk", 0, 777, n - 777, 2000, check_made_value, NULL),
                     n - 777);
}

/* A producer process appending while the daemon is killed and restarted under it: the
 * data path does not go through the daemon, so appends go on (until the ring is full) and
 * a restarted daemon re-attaches the ring and flushes what was appended meanwhile. */
#define CHURN_RECORDS 20000

struct churn_child {
    const char *socket;
    volatile int64_t *acked; /* shared: records acknowledged so far */
};

static int churn_child_main(void *arg)
{
    struct churn_child *a = arg;
    shoal_producer_options_t o;
    shoal_client_t *c;
    shoal_producer_t *p;

    shoal_producer_options_init(&o);
    o.block_ms = 10000;
    if (shoal_client_open(a->socket, &c) < 0 || shoal_producer_open(c, "churn", &o, &p) < 0)
        return 10;
    for (int64_t i = 0; i < CHURN_RECORDS; i++) {
        if (send_range(p, 0, i, 1) < 0)
            return 11;
        __atomic_store_n(a->acked, i + 1, __ATOMIC_RELEASE);
    }
    shoal_producer_close(p);
    shoal_client_close(c);
    return 0;
}

INTEG_TEST(test_appends_continue_while_the_daemon_is_killed_and_restarted)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 4);
    struct churn_child a;
    int64_t *acked;
    pid_t pid;
    int kills = 0;

    acked = mmap(NULL, sizeof(*acked), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(acked != MAP_FAILED);
    *acked = 0;
    assert_int_equal(shoal_topic_create(f->c, "churn", &cfg), 0);
    a = (struct churn_child){f->d.socket, acked};
    pid = harness_fork(churn_child_main, &a, HARNESS_CHILD_TIMEOUT_S);
    assert_true(pid > 0);
    while (__atomic_load_n(acked, __ATOMIC_ACQUIRE) < CHURN_RECORDS && kills < 20) {
        usleep(10000 + (unsigned)(kills % 5) * 7000);
        assert_int_equal(harness_daemon_kill9(&f->d), 0);
        usleep(5000);
        assert_int_equal(harness_daemon_restart(&f->d), 0);
        kills++;
    }
    assert_int_equal(harness_wait(pid, 20000), 0);
    print_message("daemon killed %d times while %d records were appended\n", kills, CHURN_RECORDS);
    assert_int_equal(reconnect(f), 0);
    assert_partition_holds(f->c, "churn", 0, CHURN_RECORDS);
    /* and all of it reached the disk: lose shared memory too */
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    harness_daemon_wipe_shm(&f->d);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_partition_holds(f->c, "churn", 0, CHURN_RECORDS);
    munmap(acked, sizeof(*acked));
}

/* Read on with consumer k from *next, records of make_value, up to `end` and no further:
 * each at the next offset. Returns 0 or the poll's error. */
static int read_on(shoal_consumer_t *k, int64_t *next, int64_t end)
{
    shoal_record_t recs[64];
    while (*next < end) {
        int n = shoal_poll(k, recs, (size_t)SHOAL_MIN(end - *next, 64), 2000);
        if (n <= 0)
            return n < 0 ? n : SHOAL_ETIMEDOUT;
        for (int i = 0; i < n; i++, (*next)++)
            if (recs[i].offset != *next || !value_matches(&recs[i], *next)) {
                fprintf(stderr, "record %" PRId64 " came as offset %" PRId64 "\n", *next,
                        recs[i].offset);
                return SHOAL_ECORRUPT;
            }
    }
    return 0;
}

/* A client outlives its daemon: after shoald is killed (or stopped) and started again, the
 * same client lists topics, opens producers and seeks by time (it connects again), and the
 * handles it opened before go on: a producer appends, a consumer reading old segments
 * from disk continues at its position (the next segment comes over the new connection). */
INTEG_TEST(test_a_client_and_its_handles_carry_on_after_the_daemon_restarts)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    const int64_t n = 2000; /* ~280 KB: segments behind a two-slot ring */
    shoal_producer_t *p, *p2;
    shoal_consumer_t *k;
    int64_t next = 0;
    shoal_ack_t ack;

    assert_int_equal(shoal_topic_create(f->c, "again", &cfg), 0);
    assert_int_equal(produce_range(f->c, "again", 0, 0, n, SHOAL_ACKS_DISK), 0);
    assert_int_equal(shoal_producer_open(f->c, "again", NULL, &p), 0);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "again", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "again", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    assert_int_equal(read_on(k, &next, 100), 0); /* from the first segment, on disk */

    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(count_topics(f->c), 1);
    assert_int_equal(read_on(k, &next, n), 0);
    assert_int_equal(send_one(p, 0, NULL, 0, "x", 1, &ack), 0);
    assert_int_equal(ack.offset, n);

    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(shoal_consumer_seek(k, "again", 0, SHOAL_SEEK_TIMESTAMP, 0), 0);
    assert_int_equal(shoal_consumer_position(k, "again", 0), 0);
    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(shoal_producer_open(f->c, "again", NULL, &p2), 0);
    next = 0;
    assert_int_equal(read_on(k, &next, n), 0);
    shoal_producer_close(p2);
    shoal_consumer_close(k);
    shoal_producer_close(p);
}

/* A consumer reading old segments when shoald stops gets its error at each poll, not once:
 * a failure that may pass is not taken for caught up, where a waiting poll would sleep
 * until the next append (none may come) instead of reading on once the daemon is back.
 * Each poll waits its timeout before it says so. */
INTEG_TEST(test_a_disk_reader_is_told_each_poll_while_the_daemon_is_away)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    const int64_t n = 2000; /* segments behind a two-slot ring */
    shoal_consumer_t *k;
    shoal_record_t recs[64];
    int64_t next = 0, t0;
    int rc = 0;

    assert_int_equal(shoal_topic_create(f->c, "away", &cfg), 0);
    assert_int_equal(produce_range(f->c, "away", 0, 0, n, SHOAL_ACKS_DISK), 0);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "away", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "away", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    assert_int_equal(read_on(k, &next, 100), 0);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    while (rc >= 0) /* the rest of the segment it holds, then the next one needs shoald */
        if ((rc = shoal_poll(k, recs, 64, 2000)) > 0)
            next += rc;
    assert_true(rc == SHOAL_ENODAEMON || rc == SHOAL_ECLOSED);
    t0 = shoal__mono_ns(); /* and not at once: a loop retrying it would spin */
    assert_int_equal(shoal_poll(k, recs, 64, 300), SHOAL_ENODAEMON);
    assert_true(shoal__mono_ns() - t0 >= 290 * 1000000ll);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(read_on(k, &next, n), 0);
    shoal_consumer_close(k);
}

/* shoal_consumer_assignment() lists what is assigned, in the order it was, with positions;
 * cap limits what it fills, not what it counts. */
INTEG_TEST(test_a_consumer_lists_its_assignment_with_positions)
{
    shoal_topic_config_t cfg = topic_cfg(3, SMALL_SEGMENT, 4);
    shoal_topic_partition_offset_t a[4];
    shoal_consumer_t *k;

    assert_int_equal(shoal_topic_create(f->c, "asg", &cfg), 0);
    assert_int_equal(produce_range(f->c, "asg", 0, 0, 5, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assignment(k, NULL, 0), 0);
    assert_int_equal(shoal_consumer_assign(k, "asg", (const int32_t[]){2, 0}, 2), 0);
    assert_int_equal(shoal_consumer_seek(k, "asg", 2, SHOAL_SEEK_BEGINNING, 0), 0);
    assert_int_equal(shoal_consumer_assignment(k, a, 4), 2);
    assert_string_equal(a[0].topic, "asg");
    assert_int_equal(a[0].partition, 2);
    assert_int_equal(a[0].offset, 0);
    assert_string_equal(a[1].topic, "asg");
    assert_int_equal(a[1].partition, 0);
    assert_int_equal(a[1].offset, 5); /* the log end */

    memset(a, 0, sizeof(a));
    assert_int_equal(shoal_consumer_assignment(k, a, 1), 2);
    assert_int_equal(a[0].partition, 2);
    assert_null(a[1].topic);
    assert_int_equal(shoal_consumer_assignment(k, NULL, 1), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "out is NULL"));
    assert_int_equal(shoal_consumer_assignment(NULL, a, 4), SHOAL_EINVAL);
    assert_int_equal(shoal_commit_sync(NULL, NULL, 0), SHOAL_EINVAL); /* named, as the rest */
    assert_non_null(strstr(shoal_errmsg(), "shoal_commit_sync: c is NULL"));

    assert_int_equal(shoal_consumer_unassign(k, "asg", (const int32_t[]){2}, 1), 0);
    assert_int_equal(shoal_consumer_assignment(k, a, 4), 1);
    assert_int_equal(a[0].partition, 0);
    assert_int_equal(shoal_consumer_close(k), 0);
}

/* One poll of up to max records from a topic of two partitions, checking that each
 * partition's offsets follow on from next[] and their values. Returns what the poll did. */
static int poll_two(shoal_consumer_t *k, int64_t next[2], size_t max, int timeout_ms)
{
    shoal_record_t r[64];
    int n = shoal_poll(k, r, SHOAL_MIN(max, 64), timeout_ms);

    for (int i = 0; i < n; i++) {
        assert_int_equal(r[i].offset, next[r[i].partition]++);
        assert_true(value_matches(&r[i], r[i].offset));
    }
    return n;
}

/* A paused partition gives no records until resumed and keeps its position (Kafka's
 * pause/resume). It holds no ring slot: a producer that cannot wait fills the ring round
 * past where the consumer stood, and the resume reads those records from disk, in order. */
INTEG_TEST(test_a_paused_partition_gives_nothing_until_resumed_and_holds_no_slot)
{
    shoal_topic_config_t cfg = topic_cfg(2, SMALL_SEGMENT, 2);
    const int64_t more = 2000; /* ~420 KB: round a ring of two 64 KiB slots */
    shoal_producer_options_t po;
    shoal_producer_t *p;
    shoal_consumer_t *k;
    int64_t next[2] = {0, 0}, t0;

    assert_int_equal(shoal_topic_create(f->c, "pz", &cfg), 0);
    assert_int_equal(produce_range(f->c, "pz", 0, 0, 10, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(produce_range(f->c, "pz", 1, 0, 10, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "pz", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "pz", -1, SHOAL_SEEK_BEGINNING, 0), 0);
    assert_int_equal(shoal_consumer_pause(k, "pz", 1), 0);
    assert_int_equal(shoal_consumer_paused(k, "pz", 1), 1);
    assert_int_equal(shoal_consumer_paused(k, "pz", 0), 0);
    assert_int_equal(poll_two(k, next, 5, 2000), 5); /* partition 0's only */
    assert_int_equal(next[0], 5);

    assert_int_equal(shoal_consumer_pause(k, "pz", 0), 0);
    assert_int_equal(shoal_consumer_pause(k, "pz", 0), 0); /* again: nothing more */
    t0 = shoal__mono_ns();
    assert_int_equal(poll_two(k, next, 64, 300), 0); /* both paused: it waits its time */
    assert_true(shoal__mono_ns() - t0 >= 290 * 1000000ll);
    shoal_producer_options_init(&po);
    po.block_ms = 300;
    assert_int_equal(shoal_producer_open(f->c, "pz", &po, &p), 0);
    assert_int_equal(send_range(p, 0, 10, more), 0); /* no pin of the consumer's in its way */
    shoal_producer_close(p);
    assert_int_equal(shoal_consumer_position(k, "pz", 0), 5);

    assert_int_equal(shoal_consumer_resume(k, "pz", 0), 0);
    while (next[0] < 10 + more)
        assert_true(poll_two(k, next, 64, 2000) > 0);
    assert_int_equal(next[1], 0);
    assert_int_equal(shoal_consumer_resume(k, "pz", -1), 0);
    assert_int_equal(shoal_consumer_paused(k, "pz", 1), 0);
    while (next[1] < 10)
        assert_true(poll_two(k, next, 64, 2000) > 0);
    assert_int_equal(next[0], 10 + more);

    assert_int_equal(shoal_consumer_pause(k, "pz", 2), SHOAL_ENOPARTITION);
    assert_int_equal(shoal_consumer_pause(k, "pz", -2), SHOAL_ENOPARTITION);
    assert_non_null(strstr(shoal_errmsg(), "no partition -2"));
    assert_int_equal(shoal_consumer_resume(k, "other", -1), SHOAL_ENOPARTITION);
    assert_int_equal(shoal_consumer_paused(k, "pz", 2), SHOAL_ENOPARTITION);
    assert_int_equal(shoal_consumer_pause(k, NULL, 0), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "shoal_consumer_pause: topic is NULL"));
    assert_int_equal(shoal_consumer_resume(k, NULL, 0), SHOAL_EINVAL); /* named as called */
    assert_non_null(strstr(shoal_errmsg(), "shoal_consumer_resume: topic is NULL"));
    assert_int_equal(shoal_consumer_close(k), 0);
}

/* A client closed before the producers and consumers opened on it stays theirs until the
 * last of them is closed: a producer attaches the partition it had not used yet, a consumer
 * reads old segments over the connection (both used the freed client before). */
INTEG_TEST(test_producers_and_consumers_outlive_their_clients_close)
{
    shoal_topic_config_t cfg = topic_cfg(2, SMALL_SEGMENT, 2);
    const int64_t n = 2000; /* segments behind a two-slot ring */
    shoal_client_t *c;
    shoal_producer_t *p;
    shoal_consumer_t *k;
    int64_t next = 0, ends[2];
    shoal_ack_t ack;

    assert_int_equal(shoal_topic_create(f->c, "early", &cfg), 0);
    assert_int_equal(produce_range(f->c, "early", 0, 0, n, SHOAL_ACKS_DISK), 0);
    assert_int_equal(shoal_client_open(f->d.socket, &c), 0);
    assert_int_equal(shoal_producer_open(c, "early", NULL, &p), 0);
    assert_int_equal(shoal_consumer_open(c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "early", (const int32_t[]){0}, 1), 0);
    assert_int_equal(shoal_consumer_seek(k, "early", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    shoal_client_close(c);

    assert_int_equal(send_one(p, 1, NULL, 0, "x", 1, &ack), 0);
    assert_int_equal(ack.partition, 1);
    assert_int_equal(read_on(k, &next, n / 2), 0);
    shoal_producer_close(p);
    assert_int_equal(read_on(k, &next, n), 0); /* the consumer alone holds it now */
    assert_int_equal(shoal_consumer_close(k), 0);
    log_ends(f->c, "early", ends, 2);
    assert_int_equal(ends[1], 1);
}

struct list_call {
    shoal_client_t *c;
    int rc;
};

static void *list_thread(void *arg)
{
    struct list_call *a = arg;
    char **names;
    size_t count;
    a->rc = shoal_topic_list(a->c, &names, &count);
    if (a->rc == 0)
        shoal_topic_list_free(names, count);
    return NULL;
}

/* A request whose response is lost (the daemon died after it was sent) is not repeated: it
 * fails SHOAL_ECLOSED, since it may have been carried out. While no daemon listens calls
 * fail SHOAL_ENODAEMON; once one does, the next call connects again. */
INTEG_TEST(test_a_request_whose_response_was_lost_is_eclosed_and_the_next_call_reconnects)
{
    struct list_call a = {f->c, 1};
    pthread_t t;

    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    assert_int_equal(pthread_create(&t, NULL, list_thread, &a), 0);
    usleep(200000); /* the request waits in the stopped daemon's socket */
    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, SHOAL_ECLOSED);
    assert_int_equal(count_topics(f->c), -1);
    assert_int_equal(shoal_topic_create(f->c, "t", NULL), SHOAL_ENODAEMON);
    assert_non_null(strstr(shoal_errmsg(), f->d.socket));
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(count_topics(f->c), 0);
}

/* A stopped daemon (SIGSTOP) reads nothing, and a request larger than the socket's buffer
 * used to wait in sendmsg() for ever. It fails SHOAL_ETIMEDOUT by the call's deadline,
 * dropped half-sent with its connection (shoald never had it whole, so it did nothing); a
 * call meanwhile times out in the new connection's handshake, and once shoald goes on
 * the client works again. */
INTEG_TEST(test_a_request_a_stopped_daemon_does_not_read_times_out)
{
    static char big[16000];
    const char *names[64], *values[64];
    int64_t t0, took;
    int rc;

    memset(big, 'v', sizeof(big) - 1);
    for (int i = 0; i < 64; i++) { /* ~1 MB: far more than a socket buffer holds */
        names[i] = "retention.ms";
        values[i] = big;
    }
    assert_int_equal(shoal_topic_create(f->c, "t", NULL), 0);
    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    f->c->timeout_ms = 400;
    t0 = shoal__mono_ns();
    rc = shoal_topic_alter(f->c, "t", names, values, 64);
    took = (shoal__mono_ns() - t0) / 1000000;
    print_message("alter of 1 MB with shoald stopped: %s after %lld ms: %s\n", shoal_err_name(rc),
                  (long long)took, shoal_errmsg());
    assert_int_equal(rc, SHOAL_ETIMEDOUT);
    assert_non_null(strstr(shoal_errmsg(), "half-way"));
    assert_true(took >= 400 && took < 1400);
    assert_int_equal(count_topics(f->c), -1);
    assert_non_null(strstr(shoal_errmsg(), "handshake"));
    f->c->timeout_ms = 30000;
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    assert_int_equal(count_topics(f->c), 1);
}

/* A client opened with a shorter timeout_ms notices a stopped daemon that soon, in the
 * handshake and in its calls, and so do the group consumers opened on it; options out of
 * range are refused. */
INTEG_TEST(test_a_client_keeps_to_the_timeout_it_was_opened_with)
{
    const char *topics[] = {"t"};
    shoal_client_options_t o;
    shoal_client_t *c = NULL, *late = NULL;
    shoal_consumer_options_t co;
    shoal_consumer_t *member;
    shoal_record_t r;
    int64_t t0, took;
    int rc = SHOAL_EGENERATION;

    shoal_client_options_init(&o);
    assert_int_equal(o.timeout_ms, 30000);
    o.timeout_ms = 0;
    assert_int_equal(shoal_client_open_opts(f->d.socket, &o, &c), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "timeout_ms 0"));
    shoal_client_options_init(&o);
    o.reserved_[3] = 1;
    assert_int_equal(shoal_client_open_opts(f->d.socket, &o, &c), SHOAL_EINVAL);
    assert_null(c);
    shoal_client_options_init(&o);
    o.timeout_ms = 300;
    assert_int_equal(shoal_client_open_opts(f->d.socket, &o, &c), 0);
    assert_int_equal(shoal_topic_create(c, "t", NULL), 0);
    shoal_consumer_options_init(&co);
    co.group_id = "g";
    assert_int_equal(shoal_consumer_open(c, &co, &member), 0);
    assert_int_equal(shoal_consumer_subscribe(member, topics, 1), 0);
    for (int i = 0; i < 100 && rc != 0; i++) { /* until it has joined */
        assert_true(shoal_poll(member, &r, 1, 50) >= 0);
        rc = shoal_commit_sync(member, NULL, 0);
    }
    assert_int_equal(rc, 0);

    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    t0 = shoal__mono_ns();
    assert_int_equal(count_topics(c), -1);
    took = (shoal__mono_ns() - t0) / 1000000;
    assert_true(took >= 300 && took < 1300);
    t0 = shoal__mono_ns();
    assert_int_equal(shoal_commit_sync(member, NULL, 0), SHOAL_ETIMEDOUT);
    took = (shoal__mono_ns() - t0) / 1000000;
    assert_true(took >= 300 && took < 1300);
    t0 = shoal__mono_ns();
    assert_int_equal(shoal_client_open_opts(f->d.socket, &o, &late), SHOAL_ETIMEDOUT);
    took = (shoal__mono_ns() - t0) / 1000000;
    assert_non_null(strstr(shoal_errmsg(), "did not answer its handshake"));
    assert_true(took >= 300 && took < 1300);
    assert_null(late);
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    assert_int_equal(count_topics(c), 1);
    shoal_consumer_close(member);
    shoal_client_close(c);
}

/* A client connects again only to the instance it was opened on: its producers and
 * consumers map that instance's rings, not those of another daemon at the same path. */
INTEG_TEST(test_a_client_does_not_reconnect_to_another_instance_at_its_path)
{
    char first[sizeof(f->d.instance)], first_shm[sizeof(f->d.shm_dir)];

    assert_int_equal(harness_daemon_stop(&f->d), 0);
    memcpy(first, f->d.instance, sizeof(first));
    memcpy(first_shm, f->d.shm_dir, sizeof(first_shm));
    snprintf(f->d.instance, sizeof(f->d.instance), "%.50s-b", first);
    snprintf(f->d.shm_dir, sizeof(f->d.shm_dir), "%.*s-b", (int)sizeof(first_shm) - 3, first_shm);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(shoal_topic_create(f->c, "t", NULL), SHOAL_ENODAEMON);
    assert_non_null(strstr(shoal_errmsg(), f->d.instance));
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    harness_rmrf(f->d.shm_dir);
    memcpy(f->d.instance, first, sizeof(first));
    memcpy(f->d.shm_dir, first_shm, sizeof(first_shm));
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(count_topics(f->c), 0);
}

/* A process of another user (uid 65534) listening at path, as one can at a socket in a
 * directory others may write: bound as root, it listens after setuid(), so that its
 * credentials are nobody's (SO_PEERCRED gives the listener's at listen()). It accepts one
 * connection and exits 1 when anything arrives on it before the client closes it. */
static int impostor_main(void *arg)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), conn;
    char byte;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", (const char *)arg);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || setgid(65534) < 0 ||
        setuid(65534) < 0 || listen(fd, 4) < 0 || (conn = accept(fd, NULL, NULL)) < 0)
        return 2;
    return read(conn, &byte, 1) == 0 ? 0 : 1;
}

/* A client may require its daemon's user (shoal_client_options_t.daemon_uid, or
 * $SHOAL_DAEMON_USER by name or uid): a listener of another user at the path is refused at
 * the open and at a reconnect, before anything is sent to it; the daemon of the right user
 * is served as ever. A name no user has is SHOAL_EINVAL. */
INTEG_TEST(test_a_client_requiring_its_daemons_user_refuses_another_listener)
{
    shoal_client_options_t o;
    shoal_client_t *c, *other;
    char uid_text[16], **names;
    pid_t impostor;
    size_t n;

    shoal_client_options_init(&o);
    o.daemon_uid_check = 1;
    o.daemon_uid = geteuid() + 1;
    assert_int_equal(shoal_client_open_opts(f->d.socket, &o, &other), SHOAL_ENODAEMON);
    snprintf(uid_text, sizeof(uid_text), "uid %u", (unsigned)geteuid());
    assert_non_null(strstr(shoal_errmsg(), uid_text));
    assert_non_null(strstr(shoal_errmsg(), "not as the daemon's user, uid"));
    assert_non_null(
        strstr(shoal_errmsg(), "(the client's options): refused, and nothing was sent"));
    o.daemon_uid_check = 2;
    assert_int_equal(shoal_client_open_opts(f->d.socket, &o, &other), SHOAL_EINVAL);

    setenv("SHOAL_DAEMON_USER", "no-such-user-here", 1);
    assert_int_equal(shoal_client_open(f->d.socket, &other), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "SHOAL_DAEMON_USER=no-such-user-here names no user"));
    snprintf(uid_text, sizeof(uid_text), "%u", (unsigned)geteuid());
    setenv("SHOAL_DAEMON_USER", uid_text, 1);
    assert_int_equal(shoal_client_open(f->d.socket, &c), 0);
    unsetenv("SHOAL_DAEMON_USER"); /* read at the open: the reconnect below still checks */
    assert_int_equal(count_topics(c), 0);
    if (geteuid() != 0) {
        shoal_client_close(c);
        return; /* the other user's listener needs root */
    }

    assert_int_equal(harness_daemon_stop(&f->d), 0);
    impostor = harness_fork(impostor_main, f->d.socket, 10);
    for (int i = 0; i < 200 && access(f->d.socket, F_OK) != 0; i++)
        usleep(10000);
    usleep(50000); /* past its listen() */
    assert_int_equal(shoal_topic_list(c, &names, &n), SHOAL_ENODAEMON);
    assert_non_null(strstr(shoal_errmsg(), "runs as uid 65534, not as the daemon's user, uid 0 "
                                           "($SHOAL_DAEMON_USER=0)"));
    assert_int_equal(harness_wait(impostor, 5000), 0); /* it got nothing */
    unlink(f->d.socket);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(count_topics(c), 0);
    shoal_client_close(c);
}

/* A client opened with a relative socket path (the CLI's default is one) reconnects by
 * the same file after the process changed its working directory, as daemons do; its
 * errors still name the path as it was given, and the absolute one without a "./". */
INTEG_TEST(test_a_client_opened_by_a_relative_path_reconnects_after_chdir)
{
    char run[PATH_MAX], msg[PATH_MAX + 64];
    shoal_client_t *c;
    int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int down, up;

    assert_true(here >= 0);
    assert_non_null(realpath(f->d.dir, run));
    assert_int_equal(chdir(f->d.dir), 0);
    /* A directory that does not exist is named from the working directory, without "./" */
    assert_int_equal(shoal_client_open("./no-such/shoald.sock", &c), SHOAL_ENODAEMON);
    snprintf(msg, sizeof(msg), "at %s/no-such/shoald.sock (", run);
    assert_non_null(strstr(shoal_errmsg(), msg));
    assert_non_null(realpath(f->d.run_dir, run));
    assert_int_equal(shoal_client_open("./run/../run/shoald.sock", &c), 0);
    /* Away from the directory only while calling: the harness starts build/shoald. */
    assert_int_equal(harness_daemon_kill9(&f->d), 0);
    assert_int_equal(chdir("/"), 0);
    down = count_topics(c);
    snprintf(msg, sizeof(msg), "%s", shoal_errmsg());
    assert_int_equal(fchdir(here), 0);
    assert_int_equal(down, -1);
    assert_non_null(strstr(msg, run));
    assert_non_null(strstr(msg, "given as ./run/../run/shoald.sock"));
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(chdir("/"), 0);
    up = count_topics(c);
    assert_int_equal(fchdir(here), 0);
    assert_int_equal(up, 0);
    close(here);
    shoal_client_close(c);
}

/* The name of topic i: 249 characters, the longest allowed, in the order of i. */
static void long_topic_name(char name[SHOAL_TOPIC_NAME_MAX + 1], int i)
{
    memset(name, 'n', SHOAL_TOPIC_NAME_MAX);
    name[SHOAL_TOPIC_NAME_MAX] = '\0';
    snprintf(name, 8, "%07d", i);
    name[7] = 'n';
}

/* Names that add up to more than a request may carry (1 MiB) still list: a response may
 * be larger (CTL_MAX_REPLY). Memory topics with the smallest rings keep it cheap. */
#define MANY_TOPICS 4300

INTEG_TEST(test_topic_list_returns_names_beyond_a_mebibyte)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    char name[SHOAL_TOPIC_NAME_MAX + 1];
    char **names;
    size_t count;

    cfg.storage = SHOAL_STORAGE_MEMORY;
    for (int i = 0; i < MANY_TOPICS; i++) {
        long_topic_name(name, i);
        assert_int_equal(shoal_topic_create(f->c, name, &cfg), 0);
    }
    assert_true(MANY_TOPICS * (SHOAL_TOPIC_NAME_MAX + 2) > CTL_MAX_PAYLOAD);
    assert_int_equal(shoal_topic_list(f->c, &names, &count), 0);
    assert_int_equal(count, MANY_TOPICS);
    for (int i = 0; i < MANY_TOPICS; i++) {
        long_topic_name(name, i);
        assert_string_equal(names[i], name);
    }
    shoal_topic_list_free(names, count);
    assert_int_equal(count_topics(f->c), MANY_TOPICS); /* and the connection goes on */
}

/* A reply that cannot be sent whole (over the limit, lowered here for the test) is an
 * error the client can read, with a line in the daemon's log, and the connection stays:
 * not a close the client could not tell from a daemon gone. */
INTEG_TEST(test_a_reply_over_the_limit_is_elimit_and_logged_not_a_close)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    char name[SHOAL_TOPIC_NAME_MAX + 1];
    shoal_topic_info_t *info;
    char **names;
    size_t count, hellos;

    assert_int_equal(harness_daemon_stop(&f->d), 0);
    setenv("SHOALD_TEST_REPLY_MAX", "2048", 1);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    unsetenv("SHOALD_TEST_REPLY_MAX");
    cfg.storage = SHOAL_STORAGE_MEMORY;
    for (int i = 0; i < 10; i++) {
        long_topic_name(name, i);
        assert_int_equal(shoal_topic_create(f->c, name, &cfg), 0);
    }
    hellos = harness_daemon_log_count(&f->d, ": libshoal");
    assert_int_equal(shoal_topic_list(f->c, &names, &count), SHOAL_ELIMIT);
    assert_non_null(strstr(shoal_errmsg(), "larger than the control protocol allows"));
    harness_daemon_expect_log(&f->d, "answered SHOAL_ELIMIT instead");
    assert_int_equal(shoal_topic_describe(f->c, name, &info), 0);
    shoal_topic_info_free(info);
    /* the same connection: the client did not have to say HELLO again */
    assert_int_equal(harness_daemon_log_count(&f->d, ": libshoal"), hellos);
}

/* A consumer of more partitions than one futex_waitv can watch (128) still wakes for an
 * append to any of them. */
#define WIDE_PARTS 160

struct wide_child {
    const char *socket;
    int ready_fd;
};

static int wide_child_main(void *arg)
{
    struct wide_child *a = arg;
    shoal_client_t *c;
    shoal_consumer_t *cons;
    shoal_record_t rec;

    if (shoal_client_open(a->socket, &c) < 0 || shoal_consumer_open(c, NULL, &cons) < 0)
        return 10;
    if (shoal_consumer_assign(cons, "wide", NULL, 0) < 0)
        return 11;
    if (write(a->ready_fd, "r", 1) != 1)
        return 12;
    for (int32_t want = 0; want < WIDE_PARTS; want += 7) {
        int n = shoal_poll(cons, &rec, 1, 5000);
        if (n != 1 || rec.partition != want || rec.offset != 0) {
            fprintf(stderr, "wide child: poll %s, partition %d (want %d)\n", shoal_err_name(n),
                    n == 1 ? rec.partition : -1, want);
            return 13;
        }
        if (write(a->ready_fd, "r", 1) != 1)
            return 14;
    }
    shoal_consumer_close(cons);
    shoal_client_close(c);
    return 0;
}

INTEG_TEST(test_consumer_of_many_partitions_wakes_for_an_append_to_any_of_them)
{
    shoal_topic_config_t cfg = topic_cfg(WIDE_PARTS, SMALL_SEGMENT, 2);
    struct wide_child a;
    shoal_producer_t *p;
    int ready[2];
    char b;
    pid_t pid;

    assert_int_equal(shoal_topic_create(f->c, "wide", &cfg), 0);
    assert_int_equal(shoal_producer_open(f->c, "wide", NULL, &p), 0);
    assert_int_equal(pipe(ready), 0);
    a = (struct wide_child){f->d.socket, ready[1]};
    pid = harness_fork(wide_child_main, &a, HARNESS_CHILD_TIMEOUT_S);
    assert_true(pid > 0);
    close(ready[1]);
    assert_int_equal(read(ready[0], &b, 1), 1);
    for (int32_t part = 0; part < WIDE_PARTS; part += 7) {
        int64_t t0;
        usleep(3000);
        t0 = mono_ns();
        assert_int_equal(send_one(p, part, NULL, 0, "w", 1, NULL), 0);
        assert_int_equal(read(ready[0], &b, 1), 1);
        if (mono_ns() - t0 > 50 * 1000000LL)
            fail_msg("partition %d: the consumer took %.1f ms to wake", part,
                     (mono_ns() - t0) / 1e6);
    }
    assert_int_equal(harness_wait(pid, 5000), 0);
    close(ready[0]);
    shoal_producer_close(p);
}

/* Memory topics: the ring is the retention; a reader that falls behind is told so
 * (SHOAL_EOFFSET), resumes at the oldest record still held (auto_offset_reset earliest),
 * and offsets stay gapless from there. */
INTEG_TEST(test_memory_topic_keeps_the_newest_records_and_stays_gapless)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 3);
    shoal_consumer_options_t opts;
    shoal_topic_info_t *info = NULL;
    const int64_t n = 5000;
    shoal_consumer_t *cons;
    shoal_record_t rec;
    int64_t start;

    cfg.storage = SHOAL_STORAGE_MEMORY;
    assert_int_equal(shoal_topic_create(f->c, "mem", &cfg), 0);
    assert_int_equal(produce_range(f->c, "mem", 0, 0, n, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(shoal_topic_describe(f->c, "mem", &info), 0);
    start = info->partitions[0].log_start_offset;
    assert_int_equal(info->partitions[0].log_end_offset, n);
    assert_int_equal(info->partitions[0].disk_bytes, 0);
    shoal_topic_info_free(info);
    assert_true(start > 0 && start < n);
    assert_int_equal(read_partition(f->c, "mem", 0, start, n - start, 1000, check_made_value, NULL),
                     n - start);
    /* a position below the start is reported once (the records there were overwritten),
     * then moves per auto_offset_reset: earliest is the start */
    shoal_consumer_options_init(&opts);
    opts.auto_offset_reset = SHOAL_OFFSET_RESET_EARLIEST;
    assert_int_equal(shoal_consumer_open(f->c, &opts, &cons), 0);
    assert_int_equal(shoal_consumer_assign(cons, "mem", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(cons, "mem", 0, SHOAL_SEEK_OFFSET, 0), 0);
    assert_int_equal(shoal_poll(cons, &rec, 1, 1000), SHOAL_EOFFSET);
    assert_int_equal(shoal_poll(cons, &rec, 1, 1000), 1);
    assert_int_equal(rec.offset, start);
    assert_true(value_matches(&rec, start));
    shoal_consumer_close(cons);
}

/* Disk acknowledgements through many rotations of two-slot rings. A producer woken by a
 * flush rotates at once, which is when the flusher decides which slot to free: the slot
 * it is still writing must not be the one. Several producers on their own topics keep the
 * flusher busy, which widens that window. */
#define ACKS_PRODUCERS 4
#define ACKS_RECORDS   120 /* 8 records a slot: 15 rotations */

struct acks_child {
    const char *socket;
    char topic[16];
};

static int acks_child_main(void *arg)
{
    struct acks_child *a = arg;
    static char value[8000];
    shoal_producer_options_t o;
    shoal_client_t *c;
    shoal_producer_t *p;

    shoal_producer_options_init(&o);
    o.acks = SHOAL_ACKS_DISK;
    o.ack_timeout_ms = 3000;
    if (shoal_client_open(a->socket, &c) < 0 || shoal_producer_open(c, a->topic, &o, &p) < 0)
        return 10;
    for (int i = 0; i < ACKS_RECORDS; i++) {
        shoal_ack_t ack;
        int rc;
        make_value(value, sizeof(value), i);
        rc = send_one(p, 0, NULL, 0, value, sizeof(value), &ack);
        if (rc != 0 || ack.offset != i) {
            fprintf(stderr, "%s: record %d: %s (%s)\n", a->topic, i, shoal_err_name(rc),
                    shoal_errmsg());
            return 11;
        }
    }
    shoal_producer_close(p);
    shoal_client_close(c);
    return 0;
}

INTEG_TEST(test_disk_acks_keep_flowing_through_rotations_of_two_slot_rings)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    struct acks_child args[ACKS_PRODUCERS];
    pid_t pids[ACKS_PRODUCERS];

    for (int i = 0; i < ACKS_PRODUCERS; i++) {
        args[i].socket = f->d.socket;
        snprintf(args[i].topic, sizeof(args[i].topic), "acks%d", i);
        assert_int_equal(shoal_topic_create(f->c, args[i].topic, &cfg), 0);
    }
    for (int i = 0; i < ACKS_PRODUCERS; i++) {
        pids[i] = harness_fork(acks_child_main, &args[i], HARNESS_CHILD_TIMEOUT_S);
        assert_true(pids[i] > 0);
    }
    for (int i = 0; i < ACKS_PRODUCERS; i++)
        assert_int_equal(harness_wait(pids[i], 20000), 0);
}

/* ------------------------------------------------------------------ raw control frames */

static int raw_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void raw_send(int fd, const void *buf, size_t len)
{
    assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Send a header with the given fields, then payload (which may be shorter than len). */
static void raw_frame(int fd, uint32_t magic, uint16_t version, uint16_t type, uint32_t len,
                      const void *payload, size_t payload_len)
{
    ctl_header_t h = {.magic = magic, .version = version, .type = type, .len = len, .seq = 7};
    uint8_t frame[CTL_HEADER_BYTES + 64];

    /* One send: the daemon may close as soon as it has seen a bad header. */
    assert_true(payload_len <= sizeof(frame) - CTL_HEADER_BYTES);
    ctl_header_encode(frame, &h);
    if (payload_len)
        memcpy(frame + CTL_HEADER_BYTES, payload, payload_len);
    raw_send(fd, frame, CTL_HEADER_BYTES + payload_len);
}

/* Receive one response and return its status (the first payload field). */
static int raw_status(int fd, uint16_t *type)
{
    ctl_header_t h;
    ctl_reader_t r;
    uint8_t *payload = NULL;
    int fds[CTL_MAX_FDS];
    size_t nfds = 0;
    int rc = ctlsock_recv_frame(fd, &h, &payload, fds, &nfds, CTL_MAX_FDS, 5000);

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    if (type)
        *type = h.type;
    ctl_reader_init(&r, payload, h.len);
    rc = ctl_get_status(&r, NULL, 0);
    shoal__free(payload);
    return rc;
}

/* After an error response the daemon closes: the next read is end of file. */
static void assert_closed_by_daemon(int fd)
{
    char b;
    assert_int_equal(recv(fd, &b, 1, 0), 0);
}

static void send_valid_request(int fd, uint16_t type, const char *name)
{
    ctl_writer_t w;
    ctl_writer_init(&w);
    ctl_frame_begin(&w, type, 9);
    if (name)
        ctl_put_str(&w, name);
    assert_int_equal(ctl_frame_end(&w), 0);
    raw_send(fd, w.buf, w.len);
    ctl_writer_release(&w);
}

/* The daemon still serves an ordinary client: create, produce, consume. */
static void assert_daemon_serves(struct harness_fixture *f, const char *topic)
{
    shoal_client_t *c;
    assert_int_equal(shoal_client_open(f->d.socket, &c), 0);
    assert_int_equal(shoal_topic_create(c, topic, NULL), 0);
    assert_int_equal(produce_range(c, topic, 0, 0, 3, SHOAL_ACKS_MEMORY), 0);
    assert_partition_holds(c, topic, 0, 3);
    shoal_client_close(c);
}

INTEG_TEST(test_daemon_answers_bad_frame_headers_with_an_error_and_closes)
{
    uint16_t type;
    int fd;

    /* (a) bad magic */
    assert_true((fd = raw_connect(f->d.socket)) >= 0);
    raw_frame(fd, 0xdeadbeef, CTL_VERSION, CTL_TOPIC_LIST, 0, NULL, 0);
    assert_int_equal(raw_status(fd, &type), SHOAL_EPROTO);
    assert_closed_by_daemon(fd);
    close(fd);
    assert_daemon_serves(f, "after-magic");

    /* (d) a payload of 100 MiB announced */
    assert_true((fd = raw_connect(f->d.socket)) >= 0);
    raw_frame(fd, CTL_MAGIC, CTL_VERSION, CTL_TOPIC_CREATE, 100u << 20, "abc", 3);
    assert_int_equal(raw_status(fd, &type), SHOAL_EPROTO);
    assert_closed_by_daemon(fd);
    close(fd);
    assert_daemon_serves(f, "after-huge");

    /* a frame typed as a response may not claim a response's size here either */
    assert_true((fd = raw_connect(f->d.socket)) >= 0);
    raw_frame(fd, CTL_MAGIC, CTL_VERSION, CTL_TOPIC_LIST | CTL_RESPONSE, 2u << 20, NULL, 0);
    assert_int_equal(raw_status(fd, &type), SHOAL_EPROTO);
    assert_closed_by_daemon(fd);
    close(fd);

    /* another protocol version */
    assert_true((fd = raw_connect(f->d.socket)) >= 0);
    raw_frame(fd, CTL_MAGIC, CTL_VERSION + 1, CTL_TOPIC_LIST, 0, NULL, 0);
    assert_int_equal(raw_status(fd, &type), SHOAL_EVERSION);
    assert_closed_by_daemon(fd);
    close(fd);

    /* a client that hangs up in the middle of a frame */
    assert_true((fd = raw_connect(f->d.socket)) >= 0);
    raw_frame(fd, CTL_MAGIC, CTL_VERSION, CTL_TOPIC_CREATE, 200, "\x00\x05topic", 7);
    close(fd);
    assert_true((fd = raw_connect(f->d.socket)) >= 0);
    raw_send(fd, "SHO", 3);
    close(fd);
    assert_daemon_serves(f, "after-hangups");
}

/* A client that sends bad frames again and again does not flood the log: the daemon warns
 * about the first few and leaves the rest out (the next window's line counts them). */
INTEG_TEST(test_warnings_about_bad_frames_are_rate_limited)
{
    uint16_t type;
    int fd;

    for (int i = 0; i < 40; i++) {
        assert_true((fd = raw_connect(f->d.socket)) >= 0);
        raw_frame(fd, 0xffffffff, CTL_VERSION, CTL_TOPIC_LIST, 0, NULL, 0);
        assert_int_equal(raw_status(fd, &type), SHOAL_EPROTO);
        assert_closed_by_daemon(fd);
        close(fd);
    }
    assert_int_equal(harness_daemon_log_count(&f->d, "sent a bad frame header"), 5);
    assert_daemon_serves(f, "after-flood");
}

/* A frame that comes with more descriptors than the daemon takes (CTL_MAX_FDS) loses its
 * bytes with them: the connection is closed, with a word in the log (it was silent), and
 * the descriptors are not kept. */
INTEG_TEST(test_a_frame_with_too_many_descriptors_closes_its_connection_with_a_word)
{
    int fds[CTL_MAX_FDS + 1], before, fd;
    uint8_t frame[CTL_HEADER_BYTES];
    ctl_header_t h = {.magic = CTL_MAGIC, .version = CTL_VERSION, .type = CTL_TOPIC_LIST};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(fds))];
    } cm;
    struct iovec iov = {.iov_base = frame, .iov_len = sizeof(frame)};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

    before = harness_open_fds(f->d.pid);
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(fds); i++)
        assert_true((fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
    ctl_header_encode(frame, &h);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(cmsg), fds, sizeof(fds));
    assert_true((fd = raw_connect(f->d.socket)) >= 0);
    assert_int_equal(sendmsg(fd, &msg, MSG_NOSIGNAL), (ssize_t)sizeof(frame));
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(fds); i++)
        close(fds[i]);
    assert_closed_by_daemon(fd);
    close(fd);
    for (int i = 0; i < 500 && !harness_daemon_log_contains(&f->d, "descriptors came with"); i++)
        usleep(10000);
    assert_true(harness_daemon_log_contains(&f->d, "descriptors came with a frame"));
    assert_true(harness_open_fds(f->d.pid) <= before);
    assert_daemon_serves(f, "after-descriptors");
}

INTEG_TEST(test_daemon_answers_malformed_payloads_with_eproto_and_keeps_the_connection)
{
    static char long_value[101];
    const char *setting[] = {"retention.ms"}, *long_values[] = {long_value};
    static const uint8_t garbage[] = {0xff, 0xff, 0x01, 0x02, 0x03};
    static const uint8_t truncated[] = {0x05, 0x00, 'a', 'b'}; /* a 5-byte name, 2 sent */
    shoal_topic_config_t bad = topic_cfg(0, 1ull << 20, 2);
    uint16_t type;
    ctl_writer_t w;
    int fd;

    assert_true((fd = raw_connect(f->d.socket)) >= 0);
    /* (b) TOPIC_CREATE with garbage, with a truncated name, with no config */
    raw_frame(fd, CTL_MAGIC, CTL_VERSION, CTL_TOPIC_CREATE, sizeof(garbage), garbage,
              sizeof(garbage));
    assert_int_equal(raw_status(fd, &type), SHOAL_EPROTO);
    assert_int_equal(type, CTL_TOPIC_CREATE | CTL_RESPONSE);
    raw_frame(fd, CTL_MAGIC, CTL_VERSION, CTL_TOPIC_CREATE, sizeof(truncated), truncated,
              sizeof(truncated));
    assert_int_equal(raw_status(fd, NULL), SHOAL_EPROTO);
    send_valid_request(fd, CTL_TOPIC_CREATE, "noconfig");
    assert_int_equal(raw_status(fd, NULL), SHOAL_EPROTO);
    /* requests with trailing bytes, or none where a name belongs */
    send_valid_request(fd, CTL_TOPIC_LIST, "extra");
    assert_int_equal(raw_status(fd, NULL), SHOAL_EPROTO);
    send_valid_request(fd, CTL_TOPIC_DESCRIBE, NULL);
    assert_int_equal(raw_status(fd, NULL), SHOAL_EPROTO);
    /* (c) unknown request types, and a response type sent as a request */
    raw_frame(fd, CTL_MAGIC, CTL_VERSION, 77, 0, NULL, 0);
    assert_int_equal(raw_status(fd, NULL), SHOAL_EPROTO);
    raw_frame(fd, CTL_MAGIC, CTL_VERSION, CTL_TOPIC_LIST | CTL_RESPONSE, 0, NULL, 0);
    assert_int_equal(raw_status(fd, NULL), SHOAL_EPROTO);
    raw_frame(fd, CTL_MAGIC, CTL_VERSION, 0, 0, NULL, 0);
    assert_int_equal(raw_status(fd, NULL), SHOAL_EPROTO);

    /* well-formed requests that bypass the client's own checks: the daemon checks too */
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_TOPIC_CREATE, 3);
    ctl_put_str(&w, "a/b");
    ctl_put_topic_config(&w, &bad);
    assert_int_equal(ctl_frame_end(&w), 0);
    raw_send(fd, w.buf, w.len);
    assert_int_equal(raw_status(fd, NULL), SHOAL_ENAME);
    ctl_frame_begin(&w, CTL_TOPIC_CREATE, 4);
    ctl_put_str(&w, "ok-name");
    ctl_put_topic_config(&w, &bad);
    assert_int_equal(ctl_frame_end(&w), 0);
    raw_send(fd, w.buf, w.len);
    assert_int_equal(raw_status(fd, NULL), SHOAL_EPARTITIONS);
    ctl_frame_begin(&w, CTL_ATTACH, 5);
    ctl_put_str(&w, "nope");
    ctl_put_i32(&w, 0);
    ctl_put_u8(&w, CTL_ATTACH_WRITE);
    assert_int_equal(ctl_frame_end(&w), 0);
    raw_send(fd, w.buf, w.len);
    assert_int_equal(raw_status(fd, NULL), SHOAL_ENOTOPIC);
    ctl_writer_release(&w);

    /* the connection is still in step: a good request on it works */
    send_valid_request(fd, CTL_TOPIC_LIST, NULL);
    assert_int_equal(raw_status(fd, &type), 0);
    assert_int_equal(type, CTL_TOPIC_LIST | CTL_RESPONSE);
    close(fd);
    assert_int_equal(count_topics(f->c), 0);
    assert_daemon_serves(f, "after-payloads");

    /* the refusal says what was wrong: a field too long for the daemon's buffer */
    memset(long_value, '1', sizeof(long_value) - 1);
    assert_int_equal(shoal_topic_create(f->c, "t", NULL), 0);
    assert_int_equal(shoal_topic_alter(f->c, "t", setting, long_values, 1), SHOAL_EPROTO);
    assert_non_null(strstr(shoal_errmsg(), "malformed request payload: a string of 100 bytes "
                                           "where the field takes 63 at most"));
}

/* A request of this type with random bytes after up to two names the daemon knows (so
 * that decoding gets past the first fields), into buf; returns its length. Small bytes are
 * likely, as they make plausible lengths and counts. */
static size_t random_request(uint8_t *buf, size_t cap, uint16_t type, uint32_t seq,
                             const char *name, uint64_t *rnd)
{
    ctl_writer_t w;
    size_t n, len;

    ctl_writer_init(&w);
    ctl_frame_begin(&w, type, seq);
    if (name)
        ctl_put_str(&w, name);
    if (name && harness_rand(rnd) % 2) /* a member id, or a topic after a group */
        ctl_put_str(&w, harness_rand(rnd) % 2 ? "" : "kept");
    n = harness_rand(rnd) % 48;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = harness_rand(rnd);
        ctl_put_u8(&w, (uint8_t)(v % 3 == 0 ? v % 8 : v >> 8));
    }
    assert_int_equal(ctl_frame_end(&w), 0);
    len = SHOAL_MIN(w.len, cap);
    memcpy(buf, w.buf, len);
    ctl_writer_release(&w);
    return len;
}

/* Thousands of well-framed requests of every type with random payloads: each gets a
 * response on a connection that stays usable (joins and syncs, which may wait for a
 * rebalance, on their own connections), and afterwards the daemon still serves, its
 * topic and group intact. */
INTEG_TEST(test_daemon_survives_random_payloads_of_every_request_type)
{
    static const uint16_t types[] = {
        CTL_HELLO,          CTL_TOPIC_DESCRIBE,  CTL_TOPIC_LIST,   CTL_ATTACH,
        CTL_SEGMENT_OPEN,   CTL_OFFSET_FOR_TIME, CTL_TOPIC_ALTER,  CTL_TOPIC_DELETE,
        CTL_TOPIC_CREATE,   CTL_GROUP_JOIN,      CTL_GROUP_SYNC,   CTL_GROUP_HEARTBEAT,
        CTL_GROUP_LEAVE,    CTL_GROUP_COMMIT,    CTL_GROUP_FETCH,  CTL_GROUP_LIST,
        CTL_GROUP_DESCRIBE, CTL_GROUP_RESET,     CTL_GROUP_DELETE,
    };
    static const char *const names[] = {NULL, "kept", "grp"};
    uint64_t rnd = 0x5eedf00dull;
    uint8_t frame[CTL_HEADER_BYTES + 256];
    int fd, answered = 0;

    assert_int_equal(shoal_topic_create(f->c, "kept", NULL), 0);
    assert_int_equal(produce_range(f->c, "kept", 0, 0, 5, SHOAL_ACKS_DISK), 0);
    assert_true((fd = raw_connect(f->d.socket)) >= 0);
    for (uint32_t i = 0; i < 4000; i++) {
        uint16_t type = types[harness_rand(&rnd) % SHOAL_ARRAY_LEN(types)];
        bool destructive = type == CTL_TOPIC_DELETE || type == CTL_TOPIC_ALTER ||
                           type == CTL_TOPIC_CREATE || type == CTL_GROUP_DELETE ||
                           type == CTL_GROUP_RESET;
        /* with a real name and no random bytes these would do what they say */
        const char *name = destructive ? NULL : names[harness_rand(&rnd) % SHOAL_ARRAY_LEN(names)];
        size_t len = random_request(frame, sizeof(frame), type, i, name, &rnd);
        int rc, own = -1;

        if (type == CTL_GROUP_JOIN || type == CTL_GROUP_SYNC) { /* may park: not in step */
            assert_true((own = raw_connect(f->d.socket)) >= 0);
            raw_send(own, frame, len);
            close(own);
            continue;
        }
        raw_send(fd, frame, len);
        rc = raw_status(fd, NULL);
        if (rc == -ETIMEDOUT || rc == SHOAL_ECLOSED)
            fail_msg("request %u (type %u, %zu bytes) got no answer: %d", i, type, len, rc);
        answered++;
    }
    close(fd);
    assert_int_equal(answered > 3000, true);
    assert_partition_holds(f->c, "kept", 0, 5);
    assert_daemon_serves(f, "after-random");
}

/* A relay between clients and the daemon that keeps a copy of every group request the
 * clients send: real requests, which the test below then damages. One thread; frames
 * (and the descriptors that come with them) pass through whole. */
#define PROXY_PAIRS  8
#define PROXY_FRAMES 64

struct proxy {
    char path[108];
    const char *daemon;
    int listen_fd;
    atomic_bool stop;
    pthread_t thread;
    int pair[PROXY_PAIRS][2]; /* [0] the client's connection, [1] ours to the daemon */
    size_t npairs;
    uint8_t *frame[PROXY_FRAMES]; /* header and payload of each group request */
    size_t frame_len[PROXY_FRAMES];
    size_t nframes;
};

/* Move one frame from `from` to `to`, keeping group requests when keep. False when either
 * side has gone. */
static bool proxy_relay(struct proxy *p, int from, int to, bool keep)
{
    int fds[CTL_MAX_FDS];
    size_t nfds = 0, len;
    uint8_t *payload = NULL, *frame;
    ctl_header_t h;
    bool ok;

    if (ctlsock_recv_frame(from, &h, &payload, fds, &nfds, CTL_MAX_FDS, 2000) < 0)
        return false;
    len = CTL_HEADER_BYTES + h.len;
    frame = malloc(len);
    assert_non_null(frame);
    ctl_header_encode(frame, &h);
    if (h.len)
        memcpy(frame + CTL_HEADER_BYTES, payload, h.len);
    ok = ctlsock_send(to, frame, len, fds, nfds, -1) == 0;
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    if (keep && h.type >= CTL_GROUP_FIRST_ && p->nframes < PROXY_FRAMES) {
        p->frame_len[p->nframes] = len;
        p->frame[p->nframes++] = frame;
    } else {
        free(frame);
    }
    shoal__free(payload);
    return ok;
}

static void proxy_accept(struct proxy *p)
{
    int c = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC), d;

    if (c < 0)
        return;
    if (p->npairs == PROXY_PAIRS || (d = ctlsock_connect(p->daemon, -1)) < 0) {
        close(c);
        return;
    }
    p->pair[p->npairs][0] = c;
    p->pair[p->npairs++][1] = d;
}

static void *proxy_main(void *arg)
{
    struct proxy *p = arg;

    while (!atomic_load(&p->stop)) {
        struct pollfd pfd[1 + 2 * PROXY_PAIRS] = {{.fd = p->listen_fd, .events = POLLIN}};
        size_t n = p->npairs;
        for (size_t i = 0; i < n; i++) {
            pfd[1 + 2 * i] = (struct pollfd){.fd = p->pair[i][0], .events = POLLIN};
            pfd[2 + 2 * i] = (struct pollfd){.fd = p->pair[i][1], .events = POLLIN};
        }
        if (poll(pfd, 1 + 2 * n, 50) <= 0)
            continue;
        for (size_t i = n; i-- > 0;) {
            bool ok = true;
            if (pfd[1 + 2 * i].revents)
                ok = proxy_relay(p, p->pair[i][0], p->pair[i][1], true);
            if (ok && pfd[2 + 2 * i].revents)
                ok = proxy_relay(p, p->pair[i][1], p->pair[i][0], false);
            if (!ok) {
                close(p->pair[i][0]);
                close(p->pair[i][1]);
                memcpy(p->pair[i], p->pair[--p->npairs], sizeof(p->pair[i]));
            }
        }
        if (pfd[0].revents)
            proxy_accept(p);
    }
    return NULL;
}

static void proxy_start(struct proxy *p, struct harness_fixture *f)
{
    int n;

    memset(p, 0, sizeof(*p));
    n = snprintf(p->path, sizeof(p->path), "%s/proxy.sock", f->d.dir);
    assert_true(n > 0 && (size_t)n < sizeof(p->path));
    p->daemon = f->d.socket;
    assert_true((p->listen_fd = ctlsock_listen(p->path)) >= 0);
    assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
}

static void proxy_stop(struct proxy *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    for (size_t i = 0; i < p->npairs; i++) {
        close(p->pair[i][0]);
        close(p->pair[i][1]);
    }
    close(p->listen_fd);
    unlink(p->path);
}

/* A group member's whole life through the proxy: join, sync, poll, commit, describe, leave. */
static void group_session(const char *path)
{
    const char *topics[] = {"kept"};
    shoal_consumer_options_t o;
    shoal_group_info_t *info;
    shoal_record_t rec[8];
    shoal_client_t *c;
    shoal_consumer_t *k;
    int got = 0;

    assert_int_equal(shoal_client_open(path, &c), 0);
    shoal_consumer_options_init(&o);
    o.group_id = "grp";
    o.auto_commit = false;
    o.auto_offset_reset = SHOAL_OFFSET_RESET_EARLIEST;
    assert_int_equal(shoal_consumer_open(c, &o, &k), 0);
    assert_int_equal(shoal_consumer_subscribe(k, topics, 1), 0);
    for (int i = 0; i < 100 && got < 5; i++) {
        int n = shoal_poll(k, rec, 8, 100);
        assert_true(n >= 0);
        got += n;
    }
    assert_int_equal(got, 5);
    assert_int_equal(shoal_commit_sync(k, NULL, 0), 0);
    assert_int_equal(shoal_group_describe(c, "grp", &info), 0);
    shoal_group_info_free(info);
    shoal_consumer_close(k);
    shoal_client_close(c);
}

/* Damage a copy of a real request: a byte flipped or set small, the payload cut short or
 * lengthened; the header stays well-formed (its length follows). Returns the length. */
static size_t damage(uint8_t *out, size_t cap, const uint8_t *frame, size_t len, uint32_t seq,
                     uint64_t *rnd)
{
    size_t body = len - CTL_HEADER_BYTES, at;
    ctl_header_t h;

    assert_true(len <= cap - 8);
    memcpy(out, frame, len);
    at = body ? CTL_HEADER_BYTES + harness_rand(rnd) % body : CTL_HEADER_BYTES;
    switch (harness_rand(rnd) % 4) {
    case 0:
        if (body)
            out[at] ^= (uint8_t)(1u << (harness_rand(rnd) % 8));
        break;
    case 1:
        if (body)
            out[at] = (uint8_t)(harness_rand(rnd) % 8);
        break;
    case 2:
        len = CTL_HEADER_BYTES + (body ? harness_rand(rnd) % body : 0);
        break;
    default:
        for (size_t i = harness_rand(rnd) % 8 + 1; i > 0; i--)
            out[len++] = (uint8_t)harness_rand(rnd);
        break;
    }
    assert_int_equal(ctl_header_decode(out, &h), 0);
    h.len = (uint32_t)(len - CTL_HEADER_BYTES);
    h.seq = seq;
    ctl_header_encode(out, &h);
    return len;
}

/* The group requests of a real session, recorded and then damaged a few hundred ways
 * each: every one is answered (joins and syncs, which may park, on connections of their
 * own), and the daemon, its records and the group's committed offsets survive. */
INTEG_TEST(test_daemon_survives_damaged_copies_of_real_group_requests)
{
    struct proxy p;
    uint64_t rnd = 0xdecafbadull;
    uint8_t out[4096];
    int fd, answered = 0;

    assert_int_equal(shoal_topic_create(f->c, "kept", NULL), 0);
    assert_int_equal(produce_range(f->c, "kept", 0, 0, 5, SHOAL_ACKS_DISK), 0);
    proxy_start(&p, f);
    group_session(p.path);
    proxy_stop(&p);
    assert_true(p.nframes >= 5); /* join, sync, heartbeat or fetch, commit, describe, leave */
    assert_true((fd = raw_connect(f->d.socket)) >= 0);
    for (uint32_t i = 0; i < 300 * p.nframes; i++) {
        size_t k = i % p.nframes;
        size_t len = damage(out, sizeof(out), p.frame[k], p.frame_len[k], i, &rnd);
        ctl_header_t h;
        assert_int_equal(ctl_header_decode(out, &h), 0);
        if (h.type == CTL_GROUP_JOIN || h.type == CTL_GROUP_SYNC) {
            int own = raw_connect(f->d.socket);
            assert_true(own >= 0);
            raw_send(own, out, len);
            close(own);
            continue;
        }
        raw_send(fd, out, len);
        int rc = raw_status(fd, NULL);
        if (rc == SHOAL_ETIMEDOUT || rc == SHOAL_ECLOSED)
            fail_msg("damaged request %u (type %u, %zu bytes) got no answer: %d", i, h.type, len,
                     rc);
        answered++;
    }
    close(fd);
    for (size_t k = 0; k < p.nframes; k++)
        free(p.frame[k]);
    assert_true(answered > 0);
    assert_partition_holds(f->c, "kept", 0, 5);
    assert_daemon_serves(f, "after-damaged");
}

/* ------------------------------------------------------------------ corrupt segment */

/* Path of the .log with the largest base offset in dir; its base in *base. */
static void last_log_file(const char *dir, char *path, size_t cap, int64_t *base)
{
    int64_t *bases = NULL;
    size_t n = 0;
    assert_int_equal(segment_list(dir, &bases, &n), 0);
    assert_true(n > 0);
    *base = bases[n - 1];
    shoal__free(bases);
    assert_int_equal(segment_path(path, cap, dir, *base, ".log"), 0);
}

/* Flip one bit in the middle of the last batch of a segment file; returns the base offset
 * of that batch. */
static int64_t damage_last_batch(const char *path)
{
    record_batch_header_t h = {0};
    size_t len = 0, pos = 0, last = 0;
    uint8_t *data = harness_read_file(path, &len);
    FILE *fp;

    assert_non_null(data);
    while (pos < len) {
        assert_int_equal(record_batch_parse(data + pos, len - pos, &h), 0);
        last = pos;
        pos += record_batch_size(&h);
    }
    assert_int_equal(pos, len);
    assert_int_equal(record_batch_parse(data + last, len - last, &h), 0);
    fp = fopen(path, "r+b");
    assert_non_null(fp);
    pos = last + RECORD_BATCH_HEADER_BYTES + (len - last - RECORD_BATCH_HEADER_BYTES) / 2;
    data[pos] ^= 0x10;
    assert_int_equal(fseek(fp, (long)pos, SEEK_SET), 0);
    assert_int_equal(fwrite(&data[pos], 1, 1, fp), 1);
    assert_int_equal(fclose(fp), 0);
    free(data);
    return h.base_offset;
}

INTEG_TEST(test_recovery_cuts_a_corrupt_last_batch_and_appends_continue_there)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    shoal_topic_info_t *info = NULL;
    char dir[PATH_MAX], path[PATH_MAX];
    int64_t base, bad;
    const int64_t n = 1000; /* a few segments, so the damage is in a later one */

    assert_int_equal(shoal_topic_create(f->c, "crc", &cfg), 0);
    assert_int_equal(produce_range(f->c, "crc", 0, 0, n, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(harness_daemon_stop(&f->d), 0);

    snprintf(dir, sizeof(dir), "%s/crc-0", f->d.data_dir);
    last_log_file(dir, path, sizeof(path), &base);
    assert_true(base > 0);
    bad = damage_last_batch(path);
    assert_int_equal(bad, n - 1); /* one record per batch */
    harness_daemon_wipe_shm(&f->d);

    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    if (!harness_daemon_log_contains(&f->d, "truncated")) {
        harness_daemon_print_log(&f->d);
        fail_msg("the daemon did not log the truncation");
    }
    assert_int_equal(shoal_topic_describe(f->c, "crc", &info), 0);
    assert_int_equal(info->partitions[0].log_end_offset, bad);
    shoal_topic_info_free(info);
    assert_partition_holds(f->c, "crc", 0, bad);
    /* new appends take the damaged batch's offset */
    assert_int_equal(produce_range(f->c, "crc", 0, bad, 5, SHOAL_ACKS_DISK), 0);
    assert_partition_holds(f->c, "crc", 0, bad + 5);
}

/* Damage in an earlier, sealed segment is not cut off (only a torn tail of the last one
 * is): a reader gets SHOAL_ECORRUPT there, never wrong records, and the rest stays
 * readable past it. */
INTEG_TEST(test_corrupt_sealed_segment_reads_as_ecorrupt_not_as_data)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    shoal_record_t recs[64];
    shoal_consumer_t *cons;
    char dir[PATH_MAX], path[PATH_MAX];
    int64_t *bases = NULL, got = 0, bad;
    size_t nseg = 0;
    const int64_t n = 2000;
    int rc;

    assert_int_equal(shoal_topic_create(f->c, "sealed", &cfg), 0);
    assert_int_equal(produce_range(f->c, "sealed", 0, 0, n, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    snprintf(dir, sizeof(dir), "%s/sealed-0", f->d.data_dir);
    assert_int_equal(segment_list(dir, &bases, &nseg), 0);
    assert_true(nseg >= 3);
    assert_int_equal(segment_path(path, sizeof(path), dir, bases[0], ".log"), 0);
    shoal__free(bases);
    bad = damage_last_batch(path);
    harness_daemon_wipe_shm(&f->d);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);

    assert_int_equal(shoal_consumer_open(f->c, NULL, &cons), 0);
    assert_int_equal(shoal_consumer_assign(cons, "sealed", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(cons, "sealed", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    while ((rc = shoal_poll(cons, recs, 64, 1000)) > 0) {
        for (int k = 0; k < rc; k++, got++) {
            assert_int_equal(recs[k].offset, got);
            assert_true(value_matches(&recs[k], got));
        }
    }
    assert_int_equal(rc, SHOAL_ECORRUPT);
    assert_int_equal(got, bad);
    /* past the damage the log reads on */
    assert_int_equal(shoal_consumer_seek(cons, "sealed", 0, SHOAL_SEEK_OFFSET, bad + 1), 0);
    assert_int_equal(shoal_poll(cons, recs, 1, 1000), 1);
    assert_int_equal(recs[0].offset, bad + 1);
    assert_true(value_matches(&recs[0], bad + 1));
    shoal_consumer_close(cons);
    assert_int_equal(
        read_partition(f->c, "sealed", 0, bad + 1, n - bad - 1, 1000, check_made_value, NULL),
        n - bad - 1);
}

/* ------------------------------------------------------------------ dead readers */

/* A child process that reads partition 0 of topic and writes a byte to ready_fd once it is
 * where the test wants it. */
struct reader_child {
    const char *socket;
    const char *topic;
    int ready_fd;
    int64_t records; /* sleeper_child_main: how many it reads before it exits 0 */
    const shoal_consumer_options_t *opts; /* NULL: the defaults */
};

/* The child's consumer on partition 0 of a->topic, from its beginning; NULL on failure. */
static shoal_consumer_t *reader_child_open(const struct reader_child *a)
{
    shoal_client_t *c;
    shoal_consumer_t *k;
    int32_t p0 = 0;

    if (shoal_client_open(a->socket, &c) < 0 || shoal_consumer_open(c, a->opts, &k) < 0)
        return NULL;
    if (shoal_consumer_assign(k, a->topic, &p0, 1) < 0 ||
        shoal_consumer_seek(k, a->topic, 0, SHOAL_SEEK_BEGINNING, 0) < 0)
        return NULL;
    return k;
}

/* Fork a reader child running child_main with *a (its ready_fd filled in) and wait for its
 * byte. */
static pid_t reader_child_start(int (*child_main)(void *), struct reader_child *a)
{
    int ready[2];
    char buf[1];
    pid_t pid;

    assert_int_equal(pipe(ready), 0);
    a->ready_fd = ready[1];
    pid = harness_fork(child_main, a, HARNESS_CHILD_TIMEOUT_S);
    assert_true(pid > 0);
    close(ready[1]);
    assert_int_equal(read(ready[0], buf, 1), 1);
    close(ready[0]);
    return pid;
}

/* Read a few records, keep their views (the slot stays pinned), report, and wait to die. */
static int reader_child_main(void *arg)
{
    struct reader_child *a = arg;
    shoal_consumer_t *cons = reader_child_open(a);
    shoal_record_t recs[8];

    if (!cons)
        return 10;
    if (shoal_poll(cons, recs, 8, 2000) != 8 || recs[0].offset != 0)
        return 12;
    if (write(a->ready_fd, "r", 1) != 1)
        return 13;
    for (;;)
        pause();
}

/* Put 20 records in topic, start a reader that pins slot 0, then send until the ring is
 * full (block_ms 300 for the last send). Returns the reader's pid; *next is the offset of
 * the record that was refused. */
static pid_t pin_and_fill(struct harness_fixture *f, const char *topic, shoal_producer_t **p,
                          int64_t *next)
{
    shoal_producer_options_t o;
    struct reader_child a = {f->d.socket, topic, -1, 0};
    char buf[512];
    int64_t i;
    int rc = 0;
    pid_t pid;

    assert_int_equal(produce_range(f->c, topic, 0, 0, 20, SHOAL_ACKS_MEMORY), 0);
    pid = reader_child_start(reader_child_main, &a);

    /* While the reader lives its pin holds slot 0: the ring fills and producers wait. */
    shoal_producer_options_init(&o);
    o.block_ms = 300;
    assert_int_equal(shoal_producer_open(f->c, topic, &o, p), 0);
    for (i = 20; i < 20 + 4 * 1024 && rc == 0; i++)
        rc = send_one(*p, 0, NULL, 0, buf, make_value(buf, value_len_for(i), i), NULL);
    assert_int_equal(rc, SHOAL_AGAIN);
    *next = i - 1; /* the refused record is to be sent again */
    return pid;
}

/* A producer whose ring fills while shoald is stopped is told so when its wait ends (it
 * used to hear only that every slot awaited flushing), and sends again once shoald is
 * back. */
INTEG_TEST(test_a_producer_on_a_full_ring_is_told_the_daemon_is_not_running)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    shoal_producer_options_t o;
    shoal_producer_t *p;
    char buf[512];
    int64_t i;
    int rc = 0;

    assert_int_equal(shoal_topic_create(f->c, "orphaned", &cfg), 0);
    shoal_producer_options_init(&o);
    o.block_ms = 200;
    assert_int_equal(shoal_producer_open(f->c, "orphaned", &o, &p), 0);
    shoal_client_close(f->c);
    f->c = NULL;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    for (i = 0; i < 4 * 1024 && rc == 0; i++)
        rc = send_one(p, 0, NULL, 0, buf, make_value(buf, value_len_for(i), i), NULL);
    assert_int_equal(rc, SHOAL_AGAIN);
    assert_non_null(strstr(shoal_errmsg(), "is not running"));
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(shoal_client_open(f->d.socket, &f->c), 0);
    i--; /* the refused one, again: shoald frees the slots once it has flushed them */
    for (int tries = 0; tries < 25 && rc == SHOAL_AGAIN; tries++)
        rc = send_one(p, 0, NULL, 0, buf, make_value(buf, value_len_for(i), i), NULL);
    assert_int_equal(rc, 0);
    shoal_producer_close(p);
}

/* A consumer that holds the views of its last poll pins their ring slot: producers that
 * come round to it wait. After shoal_consumer_release() they do not, and the consumer goes
 * on from where it was, from disk. */
INTEG_TEST(test_a_consumer_that_released_its_views_holds_no_producer_back)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    shoal_producer_options_t po;
    shoal_producer_t *p;
    shoal_consumer_t *k;
    shoal_record_t r[16];
    int64_t next = 0;
    int n;

    assert_int_equal(shoal_topic_create(f->c, "rel", &cfg), 0);
    assert_int_equal(produce_range(f->c, "rel", 0, 0, 10, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "rel", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "rel", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    assert_int_equal(n = shoal_poll(k, r, 4, 2000), 4);
    next = 4;
    shoal_consumer_release(k);
    shoal_consumer_release(NULL);

    shoal_producer_options_init(&po);
    po.block_ms = 1000; /* a pinned slot would make this SHOAL_AGAIN */
    assert_int_equal(shoal_producer_open(f->c, "rel", &po, &p), 0);
    /* about 700 KB: eleven 64 KiB segments round a ring of two */
    assert_int_equal(send_range(p, 0, 10, 2990), 0);
    shoal_producer_close(p);
    while (next < 3000 && (n = shoal_poll(k, r, 16, 2000)) > 0)
        for (int i = 0; i < n; i++)
            assert_int_equal(r[i].offset, next++);
    assert_int_equal(next, 3000);
    shoal_consumer_close(k);
}

/* The views of a poll stay valid until the next poll, a seek meanwhile included (shoal.h):
 * the seek used to drop the segment they were in and the ring pin that kept their slot,
 * and a view then faulted (its segment unmapped) or showed another record's bytes (its
 * slot reused): an exploratory session. The seek takes effect at the next poll. */
INTEG_TEST(test_a_seek_leaves_the_last_polls_views_valid_until_the_next_poll)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    shoal_producer_options_t po;
    shoal_producer_t *p;
    shoal_consumer_t *k;
    shoal_record_t r[8];
    int64_t i = 2000;
    char who[64];
    int rc;

    assert_int_equal(shoal_topic_create(f->c, "sv", &cfg), 0);
    assert_int_equal(produce_range(f->c, "sv", 0, 0, 2000, SHOAL_ACKS_DISK), 0); /* ~420 KB */
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "sv", NULL, 0), 0);

    /* views of a disk segment, which the seek unmapped */
    assert_int_equal(shoal_consumer_seek(k, "sv", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    assert_int_equal(shoal_poll(k, r, 8, 2000), 8);
    assert_int_equal(shoal_consumer_seek(k, "sv", 0, SHOAL_SEEK_END, 0), 0);
    for (int j = 0; j < 8; j++)
        assert_true(value_matches(&r[j], j));

    /* views of the ring's newest slot, which the seek unpinned: producers came round to it */
    assert_int_equal(shoal_consumer_seek(k, "sv", 0, SHOAL_SEEK_OFFSET, 1994), 0);
    assert_int_equal(shoal_poll(k, r, 8, 2000), 6);
    assert_int_equal(shoal_consumer_seek(k, "sv", 0, SHOAL_SEEK_END, 0), 0);
    shoal_producer_options_init(&po);
    po.block_ms = 200;
    assert_int_equal(shoal_producer_open(f->c, "sv", &po, &p), 0);
    while (i < 4000 && (rc = send_range(p, 0, i, 1)) == 0)
        i++;
    assert_int_equal(rc, SHOAL_AGAIN); /* the slot the views are in waits for them */
    snprintf(who, sizeof(who), "the consumer of pid %d holds the oldest", (int)getpid());
    assert_non_null(strstr(shoal_errmsg(), who)); /* named: whom the producer waits for */
    for (int j = 0; j < 6; j++)
        assert_true(value_matches(&r[j], 1994 + j));
    shoal_producer_close(p);
    assert_int_equal(shoal_consumer_seek(k, "sv", 0, SHOAL_SEEK_END, 0), 0); /* past them */
    assert_true(shoal_poll(k, r, 8, 0) >= 0); /* ends them: their slot is free again */
    assert_int_equal(produce_range(f->c, "sv", 0, i, 1, SHOAL_ACKS_MEMORY), 0);
    shoal_consumer_close(k);
}

/* A producer sending records from first on, until one fails or `sent` reaches `until`. */
struct sender {
    shoal_producer_t *p;
    int64_t first, until;
    _Atomic int64_t sent;
    _Atomic int rc;
};

static void *send_until(void *arg)
{
    struct sender *a = arg;
    for (int64_t i = a->first; i < a->until && a->rc == 0; i++)
        if ((a->rc = send_range(a->p, 0, i, 1)) == 0)
            atomic_store(&a->sent, i + 1);
    return NULL;
}

/* Two consumers that seek back to a log start in the ring's oldest slot, in turns, no
 * longer keep that slot pinned from a producer waiting for it: placed anew, each reads the
 * slot's disk copy while the producer waits. Before, each placing pinned the slot again,
 * the producer failed SHOAL_AGAIN after block_ms, again and again (an exploratory session:
 * a 2-slot ring, 936 full events). */
INTEG_TEST(test_consumers_seeking_back_in_turns_do_not_hold_a_waiting_producer)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    shoal_producer_options_t po;
    struct sender snd = {.first = 100, .until = 1400};
    shoal_consumer_t *k[2];
    shoal_record_t r[2][4];
    pthread_t th;
    int64_t stuck;

    assert_int_equal(shoal_topic_create(f->c, "turns", &cfg), 0);
    /* ~20 KB in the active slot, which the consumers pin; the producer then fills it and
     * the other, and comes round to it (~270 KB in all) */
    assert_int_equal(produce_range(f->c, "turns", 0, 0, 100, SHOAL_ACKS_DISK), 0);
    for (int j = 0; j < 2; j++) {
        assert_int_equal(shoal_consumer_open(f->c, NULL, &k[j]), 0);
        assert_int_equal(shoal_consumer_assign(k[j], "turns", NULL, 0), 0);
        assert_int_equal(shoal_consumer_seek(k[j], "turns", 0, SHOAL_SEEK_BEGINNING, 0), 0);
        assert_int_equal(shoal_poll(k[j], r[j], 4, 2000), 4); /* views in that slot */
    }
    shoal_producer_options_init(&po);
    po.block_ms = 4000;
    assert_int_equal(shoal_producer_open(f->c, "turns", &po, &snd.p), 0);
    assert_int_equal(pthread_create(&th, NULL, send_until, &snd), 0);
    /* the producer comes round to the pinned slot and waits */
    for (stuck = -1; atomic_load(&snd.sent) != stuck;) {
        stuck = atomic_load(&snd.sent);
        usleep(300000);
    }
    assert_true(stuck < snd.until);
    /* in turns, each poll ending its own views, until the producer is done or failed */
    for (int64_t t0 = mono_ns();
         atomic_load(&snd.sent) < snd.until && snd.rc == 0 && mono_ns() - t0 < 20000000000LL;
         usleep(20000))
        for (int j = 0; j < 2; j++) {
            assert_int_equal(shoal_consumer_seek(k[j], "turns", 0, SHOAL_SEEK_BEGINNING, 0), 0);
            assert_int_equal(shoal_poll(k[j], r[j], 4, 2000), 4);
            assert_int_equal(r[j][0].offset, 0);
            assert_true(value_matches(&r[j][0], 0));
        }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(snd.rc, 0); /* it was SHOAL_AGAIN */
    assert_int_equal(atomic_load(&snd.sent), snd.until);
    shoal_producer_close(snd.p);
    for (int j = 0; j < 2; j++)
        shoal_consumer_close(k[j]);
}

/* Read the first 20 records, say so, then poll with no timeout (asleep: nothing more comes
 * yet) until every record has come, each at the next offset with its value. With a->opts
 * (a memory topic, read with earliest) the producer goes round the ring past it once: its
 * poll says so once (SHOAL_EOFFSET) and it goes on from the oldest record left. */
static int sleeper_child_main(void *arg)
{
    struct reader_child *a = arg;
    shoal_consumer_t *k = reader_child_open(a);
    bool lose = a->opts != NULL, lost = false;
    shoal_record_t r[16];
    int64_t next = 0;
    int n;

    if (!k)
        return 10;
    while (next < a->records) {
        if (next == 20 && write(a->ready_fd, "r", 1) != 1)
            return 11;
        n = shoal_poll(k, r, 16, next < 20 ? 2000 : -1); /* 20 until it says so */
        if (n == SHOAL_EOFFSET && lose && !lost && next == 20) {
            lost = true;
            continue;
        }
        if (n <= 0)
            return 12;
        if (lost && next == 20)
            next = r[0].offset; /* the oldest record left */
        for (int i = 0; i < n; i++, next++)
            if (r[i].offset != next || !value_matches(&r[i], next))
                return 13;
    }
    return lose && !lost ? 14 : 0;
}

/* Create a->topic with cfg and its first 20 records, start a reader child running
 * child_main, wait until it sleeps in a poll, and stop it (SIGSTOP). Returns its pid. */
static pid_t stop_a_sleeping_reader(struct harness_fixture *f, const shoal_topic_config_t *cfg,
                                    int (*child_main)(void *), struct reader_child *a)
{
    shoal_partition_stats_t st;
    pid_t pid;

    assert_int_equal(shoal_topic_create(f->c, a->topic, cfg), 0);
    assert_int_equal(produce_range(f->c, a->topic, 0, 0, 20, SHOAL_ACKS_MEMORY), 0);
    pid = reader_child_start(child_main, a);
    do { /* until it sleeps */
        usleep(10000);
        assert_int_equal(shoal_partition_stats(f->c, a->topic, 0, &st), 0);
    } while (st.waiters == 0);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    return pid;
}

/* A consumer stopped (SIGSTOP) while asleep in a poll holds no views and no ring slot of a
 * disk topic: a producer comes round the ring past it, and once it goes on it reads what
 * it missed from disk, every record in order. Before, its slot stayed pinned and the
 * producer waited for ever (SHOAL_AGAIN after each block_ms). */
INTEG_TEST(test_a_consumer_stopped_in_its_sleep_holds_no_producer_back)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    struct reader_child a = {f->d.socket, "nap", -1, 20 + 3000};
    shoal_producer_options_t o;
    shoal_producer_t *p;
    pid_t pid = stop_a_sleeping_reader(f, &cfg, sleeper_child_main, &a);

    shoal_producer_options_init(&o);
    o.block_ms = 1000; /* a pinned slot would make this SHOAL_AGAIN */
    assert_int_equal(shoal_producer_open(f->c, a.topic, &o, &p), 0);
    assert_int_equal(send_range(p, 0, 20, 3000), 0); /* eleven turns of the two 64 KiB slots */
    shoal_producer_close(p);
    assert_int_equal(kill(pid, SIGCONT), 0);
    assert_int_equal(harness_wait(pid, 10000), 0);
}

/* Send records first.. of the memnap tests' values, a failed send again every 10 ms
 * while it fails with SHOAL_AGAIN, for at most again_ms in all. */
static int send_range_again(shoal_producer_t *p, int64_t first, int64_t n, int again_ms)
{
    int64_t deadline = mono_ns() + again_ms * 1000000LL;
    int rc;

    for (int64_t i = first; i < first + n; i++) {
        char buf[512];
        size_t len = make_value(buf, value_len_for(i), i);
        while ((rc = send_one(p, 0, NULL, 0, buf, len, NULL)) == SHOAL_AGAIN &&
               mono_ns() < deadline)
            usleep(10000);
        if (rc < 0) {
            fprintf(stderr, "send %" PRId64 ": %s (%s)\n", i, shoal_err_name(rc), shoal_errmsg());
            return rc;
        }
    }
    return 0;
}

/* The same on a memory topic, which has no copy to read instead: shoald sees that a
 * producer waits for the slot of a reader that is asleep in a poll and stopped (or, with
 * block_ms 0, found the ring full), and lets the producer reuse it. Once the reader goes
 * on, its poll tells it what it lost (SHOAL_EOFFSET) and it reads on from the oldest record
 * left. Before, the producer got SHOAL_AGAIN after every block_ms for as long as the reader
 * stayed stopped. */
static void stopped_memory_sleeper(struct harness_fixture *f, const char *topic, int block_ms)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    shoal_consumer_options_t co;
    struct reader_child a = {f->d.socket, topic, -1, 20 + 3000, &co};
    shoal_producer_options_t o;
    shoal_producer_t *p;
    pid_t pid;

    cfg.storage = SHOAL_STORAGE_MEMORY;
    shoal_consumer_options_init(&co);
    co.auto_offset_reset = SHOAL_OFFSET_RESET_EARLIEST;
    pid = stop_a_sleeping_reader(f, &cfg, sleeper_child_main, &a);

    shoal_producer_options_init(&o);
    o.block_ms = block_ms;
    assert_int_equal(shoal_producer_open(f->c, topic, &o, &p), 0);
    /* eleven turns of the two 64 KiB slots; shoald's flusher looks at an idle memory topic
     * once a second, so a producer that never waits may find the ring full that long */
    assert_int_equal(send_range_again(p, 20, 3000, block_ms > 0 ? 0 : 3000), 0);
    shoal_producer_close(p);
    assert_int_equal(kill(pid, SIGCONT), 0);
    assert_int_equal(harness_wait(pid, 10000), 0);
}

INTEG_TEST(test_a_consumer_stopped_in_its_sleep_holds_no_memory_producer_back)
{
    stopped_memory_sleeper(f, "memnap", 1000);  /* a pinned slot: SHOAL_AGAIN */
    stopped_memory_sleeper(f, "memnap-now", 0); /* SHOAL_AGAIN for ever */
}

/* Partitions grow as in Kafka: an alter adds them and never removes them. A producer
 * opened before follows at once (a named new partition, and keyed records by the new
 * count), and the new partitions and their records survive a restart. */
INTEG_TEST(test_partitions_grow_and_a_producer_opened_before_follows)
{
    shoal_topic_config_t cfg = topic_cfg(2, SMALL_SEGMENT, 2);
    const char *name[] = {"partitions"}, *four[] = {"4"}, *three[] = {"3"};
    shoal_topic_info_t *info;
    shoal_producer_t *p;
    shoal_ack_t ack;
    int on_new = 0;

    assert_int_equal(shoal_topic_create(f->c, "grow", &cfg), 0);
    assert_int_equal(shoal_producer_open(f->c, "grow", NULL, &p), 0);
    assert_int_equal(send_one(p, 3, NULL, 0, "x", 1, &ack), SHOAL_ENOPARTITION);
    assert_int_equal(shoal_topic_alter(f->c, "grow", name, four, 1), 0);
    assert_int_equal(send_one(p, 3, NULL, 0, "x", 1, &ack), 0);
    assert_int_equal(ack.partition, 3);
    assert_int_equal(ack.offset, 0);
    for (int i = 0; i < 64; i++) {
        char key[16];
        int len = snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(send_one(p, SHOAL_PARTITION_ANY, key, (size_t)len, "v", 1, &ack), 0);
        assert_int_equal(ack.partition, shoal_partition_for_key(key, (size_t)len, 4));
        on_new += ack.partition >= 2;
    }
    assert_true(on_new > 0);
    assert_int_equal(shoal_topic_alter(f->c, "grow", name, three, 1), SHOAL_ECONFIG);
    assert_non_null(strstr(shoal_errmsg(), "partitions can only grow"));
    shoal_producer_close(p);

    shoal_client_close(f->c);
    f->c = NULL;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(reconnect(f), 0);
    assert_int_equal(shoal_topic_describe(f->c, "grow", &info), 0);
    assert_int_equal(info->config.partitions, 4);
    assert_true(info->partitions[3].log_end_offset >= 1);
    assert_int_equal(info->partitions[0].log_end_offset + info->partitions[1].log_end_offset +
                         info->partitions[2].log_end_offset + info->partitions[3].log_end_offset,
                     65);
    shoal_topic_info_free(info);
}

static void *grow_slowly(void *arg)
{
    struct slow_create *sc = arg;
    const char *name[] = {"partitions"}, *four[] = {"4"};
    shoal_client_t *c;

    sc->rc = shoal_client_open(sc->socket, &c);
    if (sc->rc == 0) {
        sc->rc = shoal_topic_alter(c, "slowgrow", name, four, 1);
        shoal_client_close(c);
    }
    atomic_store(&sc->done, true);
    return NULL;
}

/* Adding partitions makes their rings on a thread of their own, as a create does (here
 * SHOALD_TEST_CREATE_MS makes it 2 s): meanwhile other requests are answered, and the
 * topic keeps its partitions and refuses another alter or a delete until it is done. */
INTEG_TEST(test_a_slow_grow_holds_up_no_other_request)
{
    shoal_topic_config_t cfg = topic_cfg(2, SMALL_SEGMENT, 2);
    const char *name[] = {"retention.ms"}, *value[] = {"60000"};
    struct slow_create sc = {.socket = f->d.socket};
    shoal_topic_info_t *info;
    bool growing = false;
    int64_t t0;
    pthread_t th;

    assert_int_equal(shoal_topic_create(f->c, "slowgrow", &cfg), 0);
    restart_with_slow_rings(f, "2000");

    assert_int_equal(pthread_create(&th, NULL, grow_slowly, &sc), 0);
    for (int i = 0; i < 200 && !growing; i++, usleep(5000))
        growing = shoal_topic_alter(f->c, "slowgrow", name, value, 1) == SHOAL_ADMIN_ACTION &&
                  strstr(shoal_errmsg(), "is gaining partitions") != NULL;
    assert_true(growing);
    t0 = mono_ns();
    assert_int_equal(shoal_topic_describe(f->c, "slowgrow", &info), 0);
    assert_int_equal(info->config.partitions, 2);
    shoal_topic_info_free(info);
    assert_true(mono_ns() - t0 < 500 * 1000000LL);
    assert_int_equal(shoal_topic_delete(f->c, "slowgrow"), SHOAL_ADMIN_ACTION);
    assert_false(atomic_load(&sc.done));

    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(sc.rc, 0);
    assert_int_equal(shoal_topic_describe(f->c, "slowgrow", &info), 0);
    assert_int_equal(info->config.partitions, 4);
    shoal_topic_info_free(info);
    assert_int_equal(shoal_topic_alter(f->c, "slowgrow", name, value, 1), 0);
}

INTEG_TEST(test_consumer_killed_while_holding_views_does_not_block_producers)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    shoal_producer_options_t o;
    shoal_producer_t *p;
    int64_t i, t0;
    pid_t pid;

    assert_int_equal(shoal_topic_create(f->c, "pin", &cfg), 0);
    pid = pin_and_fill(f, "pin", &p, &i);

    kill(pid, SIGKILL);
    assert_int_equal(harness_wait(pid, 5000), 128 + SIGKILL);
    /* The daemon reaps the dead reader within ~100 ms; then the ring turns over freely. */
    t0 = mono_ns();
    shoal_producer_options_init(&o);
    o.block_ms = 2000;
    shoal_producer_close(p);
    assert_int_equal(shoal_producer_open(f->c, "pin", &o, &p), 0);
    assert_int_equal(send_range(p, 0, i, 8000), 0); /* > 15 turns of the two 64 KiB slots */
    print_message("after the reader died, 8000 records took %.0f ms\n", (mono_ns() - t0) / 1e6);
    shoal_producer_close(p);
    assert_partition_holds(f->c, "pin", 0, i + 8000);
}

/* A memory topic's producer held up by a dead reader's pin gets room once the daemon reaps
 * it, also when the daemon was asleep: an idle daemon's flusher sleeps up to a second, and a
 * producer that starts waiting for room wakes it. */
INTEG_TEST(test_memory_producer_held_by_a_dead_reader_wakes_an_idle_daemon)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    shoal_producer_options_t o;
    shoal_producer_t *p;
    char buf[512];
    int64_t i, t0;
    pid_t pid;

    cfg.storage = SHOAL_STORAGE_MEMORY;
    assert_int_equal(shoal_topic_create(f->c, "mpin", &cfg), 0);
    pid = pin_and_fill(f, "mpin", &p, &i);
    shoal_producer_close(p);
    /* A new topic wakes the flusher; finding nothing to do, it sleeps from about now. */
    assert_int_equal(shoal_topic_create(f->c, "mpin-wake", &cfg), 0);
    usleep(50 * 1000);
    kill(pid, SIGKILL);
    assert_int_equal(harness_wait(pid, 5000), 128 + SIGKILL);

    shoal_producer_options_init(&o);
    o.block_ms = 3000;
    assert_int_equal(shoal_producer_open(f->c, "mpin", &o, &p), 0);
    t0 = mono_ns();
    assert_int_equal(send_one(p, 0, NULL, 0, buf, make_value(buf, value_len_for(i), i), NULL), 0);
    if (mono_ns() - t0 > 500 * 1000000LL)
        fail_msg("the send waited %.0f ms for the dead reader's pin to be reaped",
                 (mono_ns() - t0) / 1e6);
    shoal_producer_close(p);
}

/* A poll with timeout 0 returns 0 only when the partition is caught up: reading a backlog
 * from disk it goes on into the next segment, and from the last one into the ring, within
 * the same call (each boundary used to give one 0 "placed on the next poll"). */
INTEG_TEST(test_a_poll_that_does_not_wait_reads_a_backlog_across_segments_without_zeros)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    shoal_producer_t *p;
    shoal_consumer_t *k;
    shoal_record_t r[256];
    const int64_t n = 3000;
    int64_t got = 0;

    assert_int_equal(shoal_topic_create(f->c, "drain", &cfg), 0);
    assert_int_equal(shoal_producer_open(f->c, "drain", NULL, &p), 0);
    assert_int_equal(send_range(p, 0, 0, n), 0);
    assert_int_equal(shoal_producer_wait(p, 0, n - 1, SHOAL_ACKS_DISK, 10000), 0);
    shoal_producer_close(p);
    assert_true(harness_segment_bases(&f->d, "drain", (int64_t[8]){0}, 8) >= 5);

    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "drain", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "drain", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    while (got < n) {
        int rc = shoal_poll(k, r, 256, 0);
        if (rc <= 0)
            fail_msg("poll(0) returned %d at position %" PRId64 " of %" PRId64 " (%s)", rc, got, n,
                     shoal_errmsg());
        for (int j = 0; j < rc; j++, got++)
            assert_true(r[j].offset == got && value_matches(&r[j], got));
    }
    assert_int_equal(shoal_poll(k, r, 256, 0), 0);
    shoal_consumer_close(k);
}

struct resume_later {
    pid_t pid;
    int after_ms;
};

static void *resume_daemon_later(void *arg)
{
    struct resume_later *r = arg;
    usleep((useconds_t)r->after_ms * 1000);
    kill(r->pid, SIGCONT);
    return NULL;
}

/* shoal_producer_wait(timeout_ms = -1) waits for ever, as shoal_poll's -1 does (it used to
 * say SHOAL_ETIMEDOUT at once: "not on disk after -1 ms"); below -1 is refused. */
INTEG_TEST(test_producer_wait_for_ever_waits_for_a_stopped_daemon_to_flush)
{
    shoal_topic_config_t cfg = topic_cfg(1, 1ull << 20, 2);
    struct resume_later later = {f->d.pid, 300};
    shoal_producer_t *p;
    pthread_t t;
    shoal_ack_t ack;
    int64_t t0;

    assert_int_equal(shoal_topic_create(f->c, "forever", &cfg), 0);
    assert_int_equal(shoal_producer_open(f->c, "forever", NULL, &p), 0);
    assert_int_equal(send_one(p, 0, NULL, 0, "x", 1, &ack), 0);
    assert_int_equal(shoal_producer_wait(p, 0, ack.offset, SHOAL_ACKS_DISK, -2), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "timeout_ms -2"));
    assert_int_equal(shoal_producer_wait(p, 0, ack.offset, SHOAL_ACKS_DISK, 5000), 0);

    assert_int_equal(kill(f->d.pid, SIGSTOP), 0); /* nobody flushes until it goes on */
    assert_int_equal(send_one(p, 0, NULL, 0, "y", 1, &ack), 0);
    assert_int_equal(pthread_create(&t, NULL, resume_daemon_later, &later), 0);
    t0 = mono_ns();
    assert_int_equal(shoal_producer_wait(p, 0, ack.offset, SHOAL_ACKS_DISK, -1), 0);
    assert_true(mono_ns() - t0 >= 200 * 1000000LL);
    pthread_join(t, NULL);
    shoal_producer_close(p);
}

/* ------------------------------------------------------------------ fork */

/* The child of fork(): an inherited consumer may only be closed, which frees the child's
 * own memory and mappings and nothing of its parent's. */
static int close_inherited_consumer(void *arg)
{
    shoal_consumer_t *k = arg;
    shoal_record_t r;

    if (shoal_poll(k, &r, 1, 0) != SHOAL_EINVAL || !strstr(shoal_errmsg(), "may only close"))
        return 10;
    if (shoal_consumer_seek(k, "fork", 0, SHOAL_SEEK_END, 0) != SHOAL_EINVAL)
        return 11;
    shoal_consumer_release(k);
    shoal_consumer_close(k);
    return 0;
}

/* A child that closes a consumer it inherited leaves the parent's reader entry and pin
 * alone: the parent's view stays valid and a memory topic's producer is still held back by
 * it (the child's close used to clear the entry, and the producer overwrote the view). */
INTEG_TEST(test_a_child_closing_an_inherited_consumer_leaves_the_parents_pin)
{
    shoal_topic_config_t cfg = topic_cfg(1, SMALL_SEGMENT, 2);
    shoal_producer_options_t o;
    shoal_partition_stats_t st;
    shoal_producer_t *p;
    shoal_consumer_t *k;
    shoal_record_t r;
    char a[4000], b[4000];
    uint32_t readers;
    int rc = 0, sent;
    pid_t pid;

    cfg.storage = SHOAL_STORAGE_MEMORY;
    memset(a, 'A', sizeof(a));
    memset(b, 'B', sizeof(b));
    assert_int_equal(shoal_topic_create(f->c, "fork", &cfg), 0);
    shoal_producer_options_init(&o);
    o.block_ms = 100;
    assert_int_equal(shoal_producer_open(f->c, "fork", &o, &p), 0);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "fork", NULL, 0), 0);
    assert_int_equal(send_one(p, 0, NULL, 0, a, sizeof(a), NULL), 0);
    assert_int_equal(shoal_poll(k, &r, 1, 1000), 1);
    assert_int_equal(shoal_partition_stats(f->c, "fork", 0, &st), 0);
    readers = st.readers;

    assert_true((pid = harness_fork(close_inherited_consumer, k, 10)) > 0);
    assert_int_equal(harness_wait(pid, 5000), 0);
    assert_int_equal(shoal_partition_stats(f->c, "fork", 0, &st), 0);
    assert_int_equal(st.readers, readers);
    for (sent = 0; sent < 100 && (rc = send_one(p, 0, NULL, 0, b, sizeof(b), NULL)) == 0; sent++)
        ;
    assert_int_equal(rc, SHOAL_AGAIN); /* the ring came round to the pinned slot */
    assert_memory_equal(r.value, a, sizeof(a));
    shoal_producer_close(p);
    shoal_consumer_close(k);
}

/* The child of fork(): a request on the inherited client is refused, not sent on the
 * socket it shares with its parent (where it would interleave with the parent's); closing
 * it leaves the parent's connection working. */
static int use_inherited_client(void *arg)
{
    shoal_client_t *c = arg;
    char **names;
    size_t n;

    if (shoal_topic_list(c, &names, &n) != SHOAL_EINVAL ||
        !strstr(shoal_errmsg(), "may only close"))
        return 10;
    shoal_client_close(c);
    return 0;
}

INTEG_TEST(test_a_child_cannot_talk_on_an_inherited_client)
{
    char **names;
    size_t n;
    pid_t pid;

    assert_int_equal(shoal_topic_create(f->c, "forked", NULL), 0);
    assert_true((pid = harness_fork(use_inherited_client, f->c, 10)) > 0);
    assert_int_equal(harness_wait(pid, 5000), 0);
    assert_int_equal(shoal_topic_list(f->c, &names, &n), 0);
    assert_int_equal(n, 1);
    shoal_topic_list_free(names, n);
}

/* ------------------------------------------------------------------ deletion */

struct delete_child {
    const char *socket;
    int ready_fd;
};

static int delete_child_main(void *arg)
{
    struct delete_child *a = arg;
    shoal_client_t *c;
    shoal_consumer_t *cons;
    shoal_record_t rec;
    int rc;

    if (shoal_client_open(a->socket, &c) < 0 || shoal_consumer_open(c, NULL, &cons) < 0)
        return 10;
    if (shoal_consumer_assign(cons, "gone", NULL, 0) < 0)
        return 11;
    if (write(a->ready_fd, "r", 1) != 1)
        return 12;
    rc = shoal_poll(cons, &rec, 1, -1);
    if (rc != SHOAL_ENOTOPIC) {
        fprintf(stderr, "delete child: poll returned %s\n", shoal_err_name(rc));
        return 13;
    }
    /* Once per partition: after that each counts as caught up (shoal_poll's doc). The
     * other partition's comes with this poll or the next, as shoald closes them in turn. */
    for (int more = 0; (rc = shoal_poll(cons, &rec, 1, 100)) == SHOAL_ENOTOPIC; more++)
        if (more == 1)
            return 14;
    if (rc != 0)
        return 15;
    shoal_consumer_close(cons);
    shoal_client_close(c);
    return 0;
}

INTEG_TEST(test_deleting_a_topic_ends_a_blocked_poll_and_recreating_starts_empty)
{
    shoal_topic_config_t cfg = topic_cfg(2, 1ull << 20, 2);
    shoal_topic_info_t *info = NULL;
    struct delete_child a;
    shoal_producer_t *p;
    shoal_ack_t ack;
    char b, st;
    int ready[2];
    pid_t pid;

    assert_int_equal(shoal_topic_create(f->c, "gone", &cfg), 0);
    assert_int_equal(produce_range(f->c, "gone", 0, 0, 50, SHOAL_ACKS_DISK), 0);
    assert_int_equal(shoal_producer_open(f->c, "gone", NULL, &p), 0);
    assert_int_equal(pipe(ready), 0);
    a = (struct delete_child){f->d.socket, ready[1]};
    pid = harness_fork(delete_child_main, &a, HARNESS_CHILD_TIMEOUT_S);
    assert_true(pid > 0);
    close(ready[1]);
    assert_int_equal(read(ready[0], &b, 1), 1);
    close(ready[0]);
    /* wait until it sleeps in poll */
    for (int k = 0; k < 200 && (proc_cpu_ms(pid, &st) < 0 || st != 'S'); k++)
        usleep(5000);
    usleep(50000);

    assert_int_equal(shoal_topic_delete(f->c, "gone"), 0);
    assert_int_equal(harness_wait(pid, 3000), 0);
    assert_int_equal(send_one(p, 0, NULL, 0, "late", 4, &ack), SHOAL_ENOTOPIC);

    assert_int_equal(shoal_topic_create(f->c, "gone", &cfg), 0);
    assert_int_equal(shoal_topic_describe(f->c, "gone", &info), 0);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(info->partitions[k].log_start_offset, 0);
        assert_int_equal(info->partitions[k].log_end_offset, 0);
        assert_int_equal(info->partitions[k].disk_bytes, 0);
    }
    shoal_topic_info_free(info);
    /* the old producer stays on the deleted topic, also for a partition it never used (it
     * attached the new topic's by name, a library session found); a new one sees the new
     * topic */
    assert_int_equal(send_one(p, 0, NULL, 0, "late", 4, &ack), SHOAL_ENOTOPIC);
    assert_int_equal(send_one(p, 1, NULL, 0, "late", 4, &ack), SHOAL_ENOTOPIC);
    assert_non_null(strstr(shoal_errmsg(), "was deleted since this producer opened it"));
    shoal_producer_close(p);
    assert_int_equal(produce_range(f->c, "gone", 0, 0, 3, SHOAL_ACKS_MEMORY), 0);
    assert_partition_holds(f->c, "gone", 0, 3);
    assert_partition_holds(f->c, "gone", 1, 0);
}

/* A manual consumer of two topics, one of them deleted: the deleted topic's partitions say
 * SHOAL_ENOTOPIC once each and then hold nothing back; the other topic's records all come,
 * and a poll with nothing to read waits its timeout rather than failing at once. (Every poll
 * used to start at the dead partition and return its error: no record came at all.) */
INTEG_TEST(test_a_deleted_topic_holds_back_no_other_partition_of_a_consumer)
{
    shoal_topic_config_t two = topic_cfg(2, 1ull << 20, 2), one = topic_cfg(1, 1ull << 20, 2);
    shoal_record_t r[8];
    shoal_consumer_t *k;
    shoal_producer_t *p;
    int64_t next = 0, t0;
    int errors = 0, n;

    assert_int_equal(shoal_topic_create(f->c, "dead", &two), 0);
    assert_int_equal(shoal_topic_create(f->c, "alive", &one), 0);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "dead", NULL, 0), 0);
    assert_int_equal(shoal_consumer_assign(k, "alive", NULL, 0), 0);
    assert_int_equal(shoal_topic_delete(f->c, "dead"), 0);
    assert_int_equal(shoal_producer_open(f->c, "alive", NULL, &p), 0);
    for (int i = 0; i < 20; i++) {
        char v[16];
        assert_int_equal(send_one(p, 0, NULL, 0, v, (size_t)snprintf(v, sizeof(v), "%d", i), NULL),
                         0);
        while ((n = shoal_poll(k, r, 8, 0)) != 0) {
            if (n < 0) {
                assert_int_equal(n, SHOAL_ENOTOPIC);
                assert_true(++errors <= 2);
                continue;
            }
            for (int j = 0; j < n; j++, next++) {
                assert_string_equal(r[j].topic, "alive");
                assert_int_equal(r[j].offset, next);
            }
        }
    }
    assert_int_equal(next, 20);
    assert_int_equal(errors, 2); /* one per partition of the deleted topic */
    t0 = mono_ns();
    assert_int_equal(shoal_poll(k, r, 8, 200), 0);
    assert_true(mono_ns() - t0 >= 150 * 1000000LL);
    assert_string_equal(shoal_errmsg(), "");
    /* a seek asks again */
    assert_int_equal(shoal_consumer_seek(k, "dead", 1, SHOAL_SEEK_END, 0), 0);
    assert_int_equal(shoal_poll(k, r, 8, 0), SHOAL_ENOTOPIC);
    assert_int_equal(shoal_poll(k, r, 8, 0), 0);
    shoal_producer_close(p);
    shoal_consumer_close(k);
}

/* A topic deleted under a manual consumer is left with shoal_consumer_unassign(), and one
 * re-created under the same name is read after assigning it again (assign used to refuse it
 * as already assigned, and the old partitions said SHOAL_ENOTOPIC for ever). */
INTEG_TEST(test_an_unassigned_topic_can_be_recreated_and_assigned_again)
{
    shoal_topic_config_t cfg = topic_cfg(2, 1ull << 20, 2);
    const int32_t one = 1, twice[] = {0, 0};
    shoal_record_t r[8];
    shoal_consumer_t *k;

    assert_int_equal(shoal_topic_create(f->c, "again", &cfg), 0);
    assert_int_equal(shoal_topic_create(f->c, "other", &cfg), 0);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "again", NULL, 0), 0);
    assert_int_equal(shoal_consumer_assign(k, "other", &one, 1), 0);
    assert_int_equal(shoal_topic_delete(f->c, "again"), 0);
    assert_int_equal(shoal_poll(k, r, 8, 0), SHOAL_ENOTOPIC);
    assert_int_equal(shoal_topic_create(f->c, "again", &cfg), 0);
    assert_int_equal(shoal_consumer_assign(k, "again", NULL, 0), SHOAL_EINVAL);

    /* refused whole: nothing removed */
    assert_int_equal(shoal_consumer_unassign(k, "again", twice, 2), SHOAL_EINVAL);
    assert_int_equal(shoal_consumer_unassign(k, "again", NULL, 1), SHOAL_EINVAL);
    assert_int_equal(shoal_consumer_unassign(k, "other", twice, 1), SHOAL_ENOPARTITION);
    assert_int_equal(shoal_consumer_unassign(k, "none", NULL, 0), SHOAL_ENOPARTITION);
    assert_int_equal(shoal_consumer_position(k, "again", 1), 0);
    assert_int_equal(shoal_consumer_unassign(k, "again", NULL, 0), 0);
    assert_int_equal(shoal_consumer_position(k, "again", 0), SHOAL_ENOPARTITION);
    assert_int_equal(shoal_consumer_unassign(k, "again", NULL, 0), SHOAL_ENOPARTITION);

    assert_int_equal(shoal_consumer_assign(k, "again", NULL, 0), 0);
    assert_int_equal(produce_range(f->c, "again", 1, 0, 3, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(produce_range(f->c, "other", 1, 0, 2, SHOAL_ACKS_MEMORY), 0);
    for (int64_t got = 0, n; got < 5; got += n) {
        assert_true((n = shoal_poll(k, r, 8, 2000)) > 0);
        for (int64_t j = 0; j < n; j++)
            assert_int_equal(r[j].partition, 1);
    }
    assert_int_equal(shoal_consumer_position(k, "again", 1), 3);
    assert_int_equal(shoal_consumer_position(k, "other", 1), 2);
    /* one partition of several; the rest read on */
    assert_int_equal(shoal_consumer_unassign(k, "again", &one, 1), 0);
    assert_int_equal(shoal_consumer_position(k, "again", 1), SHOAL_ENOPARTITION);
    assert_int_equal(shoal_consumer_position(k, "again", 0), 0);
    assert_int_equal(produce_range(f->c, "again", 0, 0, 1, SHOAL_ACKS_MEMORY), 0);
    assert_int_equal(shoal_poll(k, r, 8, 2000), 1);
    assert_string_equal(r[0].topic, "again");
    assert_int_equal(r[0].partition, 0);
    shoal_consumer_close(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_topics_can_be_created_listed_described_and_deleted),
        T(test_a_slow_create_holds_up_neither_clients_nor_the_flusher),
        T(test_a_create_waits_longer_for_larger_rings),
        T(test_topic_create_rejects_bad_names_and_configs_with_specific_codes),
        T(test_reserved_fields_are_zeroed_by_init_and_refused_when_set),
        T(test_out_of_range_options_and_repeated_partitions_are_refused),
        T(test_null_handles_and_out_pointers_are_einval_not_faults),
        T(test_every_call_that_can_fail_clears_the_last_failures_detail),
        T(test_topic_names_of_249_characters_work_through_a_daemon_restart),
        T(test_an_unrecoverable_topic_is_left_out_and_unknown_segments_are_kept),
        T(test_an_unserved_topic_keeps_no_ring_its_recovery_built),
        T(test_a_stopping_daemon_leaves_a_socket_it_no_longer_owns),
        T(test_an_shm_directory_others_may_write_is_passed_over),
        T(test_a_file_or_link_at_the_shm_directory_path_is_passed_over),
        T(test_an_shm_directory_on_disk_is_warned_about),
        T(test_rings_of_no_served_topic_are_reported_at_start_and_kept),
        T(test_creation_and_recovery_are_logged_in_one_line_each),
        T(test_a_ring_of_another_data_directory_is_not_re_attached),
        T(test_allow_gid_gets_the_runtime_directory_or_a_warning),
        T(test_a_delete_cut_short_by_a_crash_is_finished_at_the_next_start),
        T(test_a_partition_growth_cut_short_by_a_crash_is_undone_at_the_next_start),
        T(test_unknown_topic_is_enotopic_for_describe_delete_and_producer),
        T(test_send_rejects_bad_partition_and_oversize_record_without_using_an_offset),
        T(test_a_keyed_batch_with_a_key_of_another_partition_is_refused),
        T(test_client_open_without_daemon_is_enodaemon),
        T(test_keyed_records_land_on_murmur2_partition_and_null_keys_spread),
        T(test_producer_processes_on_one_partition_lose_and_duplicate_nothing),
        T(test_sleeping_consumer_wakes_within_ms_of_append_and_idles_without_cpu),
        T(test_each_consumer_wait_strategy_receives_records_appended_while_it_waits),
        T(test_a_wakeup_ends_a_poll_in_every_wait_strategy),
        T(test_fetch_min_bytes_gathers_records_until_enough_or_the_wait_ends),
        T(test_default_wait_follows_a_steady_stream_without_wake_ups),
        T(test_polling_one_record_at_a_time_walks_and_seeks_inside_batches),
        T(test_acknowledged_records_survive_daemon_kill9_and_lost_shm),
        T(test_large_values_in_a_default_ring_read_back_from_ring_and_disk),
        T(test_consumer_reads_offsets_that_exist_only_in_disk_segments),
        T(test_a_poll_that_does_not_wait_reads_a_backlog_across_segments_without_zeros),
        T(test_appends_continue_while_the_daemon_is_killed_and_restarted),
        T(test_a_client_and_its_handles_carry_on_after_the_daemon_restarts),
        T(test_a_disk_reader_is_told_each_poll_while_the_daemon_is_away),
        T(test_producers_and_consumers_outlive_their_clients_close),
        T(test_a_consumer_lists_its_assignment_with_positions),
        T(test_a_paused_partition_gives_nothing_until_resumed_and_holds_no_slot),
        T(test_a_request_whose_response_was_lost_is_eclosed_and_the_next_call_reconnects),
        T(test_a_request_a_stopped_daemon_does_not_read_times_out),
        T(test_a_client_keeps_to_the_timeout_it_was_opened_with),
        T(test_a_client_does_not_reconnect_to_another_instance_at_its_path),
        T(test_a_client_requiring_its_daemons_user_refuses_another_listener),
        T(test_a_client_opened_by_a_relative_path_reconnects_after_chdir),
        T(test_topic_list_returns_names_beyond_a_mebibyte),
        T(test_a_reply_over_the_limit_is_elimit_and_logged_not_a_close),
        T(test_disk_acks_keep_flowing_through_rotations_of_two_slot_rings),
        T(test_consumer_of_many_partitions_wakes_for_an_append_to_any_of_them),
        T(test_memory_topic_keeps_the_newest_records_and_stays_gapless),
        T(test_daemon_answers_bad_frame_headers_with_an_error_and_closes),
        T(test_warnings_about_bad_frames_are_rate_limited),
        T(test_daemon_answers_malformed_payloads_with_eproto_and_keeps_the_connection),
        T(test_a_frame_with_too_many_descriptors_closes_its_connection_with_a_word),
        T(test_daemon_survives_random_payloads_of_every_request_type),
        T(test_daemon_survives_damaged_copies_of_real_group_requests),
        T(test_recovery_cuts_a_corrupt_last_batch_and_appends_continue_there),
        T(test_corrupt_sealed_segment_reads_as_ecorrupt_not_as_data),
        T(test_a_producer_on_a_full_ring_is_told_the_daemon_is_not_running),
        T(test_a_consumer_that_released_its_views_holds_no_producer_back),
        T(test_a_seek_leaves_the_last_polls_views_valid_until_the_next_poll),
        T(test_consumers_seeking_back_in_turns_do_not_hold_a_waiting_producer),
        T(test_a_consumer_stopped_in_its_sleep_holds_no_producer_back),
        T(test_a_consumer_stopped_in_its_sleep_holds_no_memory_producer_back),
        T(test_partitions_grow_and_a_producer_opened_before_follows),
        T(test_a_slow_grow_holds_up_no_other_request),
        T(test_a_grow_waits_longer_for_larger_rings),
        T(test_consumer_killed_while_holding_views_does_not_block_producers),
        T(test_memory_producer_held_by_a_dead_reader_wakes_an_idle_daemon),
        T(test_deleting_a_topic_ends_a_blocked_poll_and_recreating_starts_empty),
        T(test_producer_wait_for_ever_waits_for_a_stopped_daemon_to_flush),
        T(test_a_child_closing_an_inherited_consumer_leaves_the_parents_pin),
        T(test_a_child_cannot_talk_on_an_inherited_client),
        T(test_a_deleted_topic_holds_back_no_other_partition_of_a_consumer),
        T(test_an_unassigned_topic_can_be_recreated_and_assigned_again),
#undef T
    };
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
