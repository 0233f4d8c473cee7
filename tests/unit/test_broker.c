/* test_broker.c - shoald's topic registry (src/shoald/broker.c) driven directly: a broker
 * opened in a temporary directory (its shm directory inside it too, so /dev/shm is not
 * touched), topics created, altered and deleted through the broker API, and records
 * appended to a partition's ring as a producer would. A restart is broker_close() then
 * broker_open() on the same directories; a host reboot removes the shm directory between
 * the two, so that only the data directory and the metadata store are left. The integration
 * test of the same name (tests/integ/test_broker.c) runs a real daemon instead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "record.h"
#include "ring.h"
#include "segment.h"
#include "util.h"
#include "ring_records.h"
#include "shoald/broker.h"
#include "shoald/config.h"
#include "daemon_config.h"
#include "shoald/log.h"
#include "store.h"

#define INSTANCE "broker"

/* ------------------------------------------------------------------ fixture */

struct fixture {
    char dir[256];
    char data_dir[300];
    char shm_dir[300]; /* <dir>/shoal.<instance>: the rings */
    shoald_config_t cfg;
    broker_t b;
};

static int setup(void **state)
{
    static struct fixture f;

    memset(&f, 0, sizeof(f));
    harness_tmpdir(f.dir, sizeof(f.dir), "broker");
    log_set_level(LOG_ERR);
    snprintf(f.data_dir, sizeof(f.data_dir), "%s/data", f.dir);
    snprintf(f.shm_dir, sizeof(f.shm_dir), "%s/shoal.%s", f.dir, INSTANCE);
    daemon_config(&f.cfg, f.dir, INSTANCE);
    if (broker_open(&f.b, &f.cfg) < 0) {
        print_error("broker_open: %s\n", shoal_errmsg());
        harness_rmrf(f.dir);
        return -1;
    }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    broker_close(&f->b);
    harness_rmrf(f->dir);
    return 0;
}

/* Close the broker and open it again on the same directories; with host_rebooted, the
 * shared rings are gone in between, as after a reboot. */
static void restart(struct fixture *f, bool host_rebooted)
{
    assert_int_equal(broker_close(&f->b), 0);
    if (host_rebooted)
        harness_rmrf(f->shm_dir);
    assert_int_equal(broker_open(&f->b, &f->cfg), 0);
}

/* ------------------------------------------------------------------ helpers */

/* A small topic: 64 KiB segments, two ring slots. */
static shoal_topic_config_t small_topic(uint32_t partitions, shoal_storage_t storage)
{
    shoal_topic_config_t cfg;

    shoal_topic_config_init(&cfg);
    cfg.partitions = partitions;
    cfg.storage = storage;
    cfg.segment_bytes = 64u << 10;
    cfg.ring_slots = 2;
    cfg.max_record_bytes = 4096;
    return cfg;
}

/* The topic the registry serves under name, or NULL. */
static dtopic_t *served(struct fixture *f, const char *name)
{
    dtopic_t *t;

    pthread_rwlock_rdlock(&f->b.lock);
    t = broker_find(&f->b, name);
    pthread_rwlock_unlock(&f->b.lock);
    return t;
}

/* broker_is_creating(), with the registry lock it needs. */
static bool being_created(struct fixture *f, const char *name)
{
    bool creating;

    pthread_rwlock_rdlock(&f->b.lock);
    creating = broker_is_creating(&f->b, name);
    pthread_rwlock_unlock(&f->b.lock);
    return creating;
}

/* Create a topic that must be created, and return it as served. */
static dtopic_t *create(struct fixture *f, const char *name, const shoal_topic_config_t *cfg)
{
    dtopic_t *t;

    assert_int_equal(broker_topic_create(&f->b, name, cfg), 0);
    t = served(f, name);
    assert_non_null(t);
    return t;
}

/* Entries of dir whose names start with prefix, dot files left out. */
static size_t entries_of(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    assert_non_null(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.' && !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return n;
}

/* Append n records numbered 0..n-1 to the partition's ring, as a producer does, stamped
 * with the present time: records stamped TS0 are older than any retention.ms the cases
 * give their topics (a minute, an hour, the default week), so they would be deleted as soon
 * as a segment of theirs was sealed. */
static void append_numbered(dpart_t *p, int n)
{
    uint8_t buf[4096];
    int64_t now = shoal__now_ms(), base;
    size_t len = encode_at(buf, sizeof(buf), now, 7, 0, n, 16);

    assert_true(len > 0);
    assert_int_equal(ring_append(&p->ring, buf, len, n, now + n - 1, 0, &base), 0);
}

/* How many records the partition holds from offset 0 on; each must be record number
 * `offset` of append_numbered(). */
static size_t records_in(dpart_t *p)
{
    seen_t seen[64];
    size_t n = read_from(&p->ring, 0, seen, 64);

    for (size_t i = 0; i < n; i++) {
        assert_int_equal(seen[i].offset, i);
        assert_int_equal(seen[i].seq, i);
    }
    return n;
}

/* Assert that the store holds cfg as the topic's config. */
static void assert_stored(struct fixture *f, const char *name, const shoal_topic_config_t *cfg)
{
    shoal_topic_config_t got;

    assert_int_equal(store_topic_get(f->b.store, name, &got), 0);
    assert_memory_equal(&got, cfg, sizeof(got));
}

static bool store_has(struct fixture *f, const char *name)
{
    shoal_topic_config_t got;
    return store_topic_get(f->b.store, name, &got) != SHOAL_ENOTOPIC;
}

/* ------------------------------------------------------------------ create */

/* A created topic is served with its config, each partition has its ring and (on disk)
 * its directory, and the store holds it; creating it again is refused, saying it exists,
 * and leaves it as it was. */
static void test_create_serves_the_topic_and_refuses_a_second_create(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t cfg = small_topic(2, SHOAL_STORAGE_DISK);
    shoal_topic_config_t other = small_topic(4, SHOAL_STORAGE_MEMORY);
    dtopic_t *t;

    cfg.retention_ms = 60000;
    t = create(f, "orders", &cfg);
    assert_memory_equal(&t->cfg, &cfg, sizeof(cfg));
    for (uint32_t p = 0; p < cfg.partitions; p++) {
        assert_int_equal(t->parts[p].id, p);
        assert_non_null(t->parts[p].ring.ctl);
    }
    assert_int_equal(entries_of(f->data_dir, "orders-"), 2);
    assert_int_equal(entries_of(f->shm_dir, "orders-"), 2 * RING_FD_COUNT(2));
    assert_stored(f, "orders", &cfg);
    append_numbered(&t->parts[0], 3);

    assert_int_equal(broker_topic_create(&f->b, "orders", &other), SHOAL_ETOPICEXISTS);
    assert_non_null(strstr(shoal_errmsg(), "already exists"));
    assert_int_equal(f->b.ntopics, 1);
    assert_ptr_equal(served(f, "orders"), t);
    assert_int_equal(records_in(&t->parts[0]), 3);
    assert_stored(f, "orders", &cfg);
}

/* Names outside Kafka's rules are SHOAL_ENAME, configs out of range SHOAL_EPARTITIONS or
 * SHOAL_ECONFIG, and a refused create leaves nothing: no topic, no record, no files. */
static void test_create_rejects_invalid_names_and_configs(void **state)
{
    struct fixture *f = *state;
    char long_name[SHOAL_TOPIC_NAME_MAX + 2];
    const char *const names[] = {"", ".", "..", "a/b", "with space", long_name};
    shoal_topic_config_t good = small_topic(1, SHOAL_STORAGE_DISK), bad[8];
    const int codes[] = {SHOAL_EPARTITIONS, SHOAL_EPARTITIONS, SHOAL_ECONFIG, SHOAL_ECONFIG,
                         SHOAL_ECONFIG,     SHOAL_ECONFIG,     SHOAL_ECONFIG, SHOAL_ECONFIG};

    memset(long_name, 'x', SHOAL_TOPIC_NAME_MAX + 1);
    long_name[SHOAL_TOPIC_NAME_MAX + 1] = '\0';
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(names); i++)
        assert_int_equal(broker_topic_create(&f->b, names[i], &good), SHOAL_ENAME);

    for (size_t i = 0; i < SHOAL_ARRAY_LEN(bad); i++)
        bad[i] = good;
    bad[0].partitions = 0;
    bad[1].partitions = SHOAL_PARTITIONS_MAX + 1;
    bad[2].segment_bytes = 1024;
    bad[3].max_record_bytes = (uint32_t)good.segment_bytes; /* more than half a segment */
    bad[4].storage = SHOAL_STORAGE_MEMORY;                  /* compaction needs segments */
    bad[4].cleanup_policy = SHOAL_CLEANUP_COMPACT;
    bad[5].reserved_[0] = 1;
    bad[6].storage = SHOAL_STORAGE_MEMORY; /* settings about disk segments do nothing */
    bad[6].retention_ms = 1000;
    bad[7].storage = SHOAL_STORAGE_MEMORY;
    bad[7].flush_messages = 1;
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(bad); i++)
        assert_int_equal(broker_topic_create(&f->b, "t", &bad[i]), codes[i]);
    assert_non_null(strstr(shoal_errmsg(), "flush.messages does nothing on a memory topic"));

    assert_int_equal(f->b.ntopics, 0);
    assert_false(store_has(f, "t"));
    assert_int_equal(entries_of(f->data_dir, ""), 1); /* meta */
    assert_int_equal(entries_of(f->shm_dir, ""), 0);
}

/* ------------------------------------------------------------------ delete */

/* A deleted topic leaves the registry and the store, its rings and partition directories
 * (segments included) are removed, other topics are untouched, and the name can be
 * created again, empty. */
static void test_delete_removes_the_topic_and_its_files(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t cfg = small_topic(2, SHOAL_STORAGE_DISK);
    dtopic_t *t = create(f, "t", &cfg);

    create(f, "u", &cfg);
    append_numbered(&t->parts[0], 4);
    broker_flush_all(&f->b, true, false); /* a segment on disk */

    assert_int_equal(broker_topic_delete(&f->b, "t"), 0);
    assert_null(served(f, "t"));
    assert_false(store_has(f, "t"));
    assert_int_equal(entries_of(f->data_dir, "t-"), 0);
    assert_int_equal(entries_of(f->shm_dir, "t-"), 0);
    assert_non_null(served(f, "u"));
    assert_int_equal(entries_of(f->data_dir, "u-"), 2);
    assert_int_equal(entries_of(f->shm_dir, "u-"), 2 * RING_FD_COUNT(2));
    assert_int_equal(broker_topic_delete(&f->b, "t"), SHOAL_ENOTOPIC);

    t = create(f, "t", &cfg);
    assert_int_equal(records_in(&t->parts[0]), 0);
}

/* After the store forgot a topic whose files stay, with no note of a delete (a store lost
 * or replaced; a delete cut short is finished at start: tests/integ/test_broker.c),
 * creating the name again is refused rather than erasing the segments left behind; once
 * they are moved away it works. An empty segment (every new partition has one) holds
 * nothing to keep. */
static void test_create_keeps_segments_of_a_topic_the_store_forgot(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t cfg = small_topic(1, SHOAL_STORAGE_DISK);
    char dir[400], segment[450];
    struct stat st;

    append_numbered(&create(f, "t", &cfg)->parts[0], 3);
    broker_flush_all(&f->b, true, false);
    assert_int_equal(store_topic_delete(f->b.store, "t"), 0);
    assert_int_equal(store_deleting_done(f->b.store, "t"), 0); /* no note of it */
    restart(f, false);

    assert_null(served(f, "t"));
    assert_int_equal(broker_topic_create(&f->b, "t", &cfg), SHOAL_ETOPICEXISTS);
    assert_non_null(strstr(shoal_errmsg(), "holds segments"));
    snprintf(dir, sizeof(dir), "%s/t-0", f->data_dir);
    assert_int_equal(segment_path(segment, sizeof(segment), dir, 0, ".log"), 0);
    assert_int_equal(stat(segment, &st), 0);
    assert_true(st.st_size > 0);

    harness_rmrf(dir);
    create(f, "t", &cfg);

    /* A topic that never got a record has only its empty first segment: nothing to keep */
    assert_int_equal(store_topic_delete(f->b.store, "t"), 0);
    assert_int_equal(store_deleting_done(f->b.store, "t"), 0); /* no note of it */
    restart(f, false);
    assert_null(served(f, "t"));
    create(f, "t", &cfg);
}

/* ------------------------------------------------------------------ reopen, alter */

/* After a host reboot the topics come back from the store with their configs and
 * partitions, a disk topic with the records flushed at close, a memory topic empty. */
static void test_reopen_recovers_topics_configs_and_flushed_records(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t disk = small_topic(2, SHOAL_STORAGE_DISK);
    shoal_topic_config_t mem = small_topic(1, SHOAL_STORAGE_MEMORY);
    dtopic_t *t;

    disk.retention_ms = 3600000;
    disk.flush_messages = 100;
    mem.ring_slots = 3;
    append_numbered(&create(f, "orders", &disk)->parts[0], 5);
    append_numbered(&create(f, "ticks", &mem)->parts[0], 2);
    restart(f, true);

    assert_int_equal(f->b.ntopics, 2);
    t = served(f, "orders");
    assert_non_null(t);
    assert_memory_equal(&t->cfg, &disk, sizeof(disk));
    assert_int_equal(records_in(&t->parts[0]), 5);
    assert_int_equal(records_in(&t->parts[1]), 0);
    t = served(f, "ticks");
    assert_non_null(t);
    assert_memory_equal(&t->cfg, &mem, sizeof(mem));
    assert_int_equal(records_in(&t->parts[0]), 0);
}

struct alter {
    const char *names[2];
    const char *values[2];
    size_t n;
    int rc;
};

/* An alter is stored at once and survives a restart, partitions added included; one that
 * names a layout setting, an unknown setting, a bad value, a bad combination or fewer
 * partitions is refused with its code and changes nothing, even when its other pairs are
 * valid. */
static void test_alter_is_stored_all_or_nothing(void **state)
{
    static const struct alter refused[] = {
        {{"retention.ms", "segment.ms"}, {"1000", "soon"}, 2, SHOAL_ECONFIG},
        {{"retention.ms", "max.message.bytes"}, {"1000", "64K"}, 2, SHOAL_ECONFIG},
        {{"retention.ms", "no.such.setting"}, {"1000", "1"}, 2, SHOAL_ESETTING},
        {{"ring.slots"}, {"3"}, 1, SHOAL_EIMMUTABLE},
        {{"partitions"}, {"2"}, 1, SHOAL_ECONFIG}, /* fewer: after the grow below */
    };
    static const char *const names[] = {"retention.ms", "flush.messages"};
    static const char *const values[] = {"60000", "10"};
    struct fixture *f = *state;
    shoal_topic_config_t cfg = small_topic(1, SHOAL_STORAGE_DISK);
    dtopic_t *t = create(f, "orders", &cfg);

    assert_int_equal(broker_topic_alter(&f->b, "orders", names, values, 2), 0);
    cfg.retention_ms = 60000;
    cfg.flush_messages = 10;
    assert_memory_equal(&t->cfg, &cfg, sizeof(cfg));
    assert_memory_equal(&t->parts[0].cfg, &cfg, sizeof(cfg));
    assert_stored(f, "orders", &cfg);
    /* partitions grow (their rings made, every block told the count), never shrink */
    append_numbered(&t->parts[0], 3);
    assert_int_equal(broker_topic_alter(&f->b, "orders", (const char *const[]){"partitions"},
                                        (const char *const[]){"3"}, 1),
                     0);
    cfg.partitions = 3;
    assert_memory_equal(&t->cfg, &cfg, sizeof(cfg));
    assert_memory_equal(&t->parts[2].cfg, &cfg, sizeof(cfg));
    assert_stored(f, "orders", &cfg);
    assert_int_equal(records_in(&t->parts[0]), 3);
    append_numbered(&t->parts[2], 2);
    assert_int_equal(records_in(&t->parts[2]), 2);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&t->parts[i].ring.ctl->topic_partitions), 3);
    /* a new partition's directory that holds segments (a topic the store forgot) is not
     * erased: the grow is refused, as a create would be */
    {
        char dir[400], log[480];
        snprintf(dir, sizeof(dir), "%s/orders-3", f->data_dir);
        snprintf(log, sizeof(log), "%s/00000000000000000000.log", dir);
        assert_int_equal(mkdir(dir, 0700), 0);
        harness_write_file(log, "x", 1);
        assert_int_equal(broker_topic_alter(&f->b, "orders", (const char *const[]){"partitions"},
                                            (const char *const[]){"4"}, 1),
                         SHOAL_ETOPICEXISTS);
        assert_non_null(strstr(shoal_errmsg(), "move it away or remove it to make orders-3"));
        assert_int_equal(access(log, F_OK), 0);
        assert_int_equal(t->cfg.partitions, 3);
        harness_rmrf(dir);
    }

    for (size_t i = 0; i < SHOAL_ARRAY_LEN(refused); i++) {
        const struct alter *a = &refused[i];
        assert_int_equal(broker_topic_alter(&f->b, "orders", a->names, a->values, a->n), a->rc);
        assert_memory_equal(&t->cfg, &cfg, sizeof(cfg));
        assert_stored(f, "orders", &cfg);
    }
    assert_int_equal(broker_topic_alter(&f->b, "nope", names, values, 2), SHOAL_ENOTOPIC);

    /* a memory topic takes what applies to it, and refuses what would do nothing */
    cfg = small_topic(1, SHOAL_STORAGE_MEMORY);
    t = create(f, "ticks", &cfg);
    assert_int_equal(broker_topic_alter(&f->b, "ticks", (const char *const[]){"max.message.bytes"},
                                        (const char *const[]){"1K"}, 1),
                     0);
    assert_int_equal(broker_topic_alter(&f->b, "ticks", names, values, 1), SHOAL_ECONFIG);
    assert_non_null(strstr(shoal_errmsg(), "retention.ms does nothing on a memory topic"));
    assert_int_equal(t->cfg.retention_ms, cfg.retention_ms);
    cfg = small_topic(3, SHOAL_STORAGE_DISK);
    cfg.retention_ms = 60000;
    cfg.flush_messages = 10;

    restart(f, false);
    t = served(f, "orders");
    assert_non_null(t);
    assert_memory_equal(&t->cfg, &cfg, sizeof(cfg));
    assert_int_equal(records_in(&t->parts[2]), 2);
    assert_int_equal(atomic_load(&t->parts[1].ring.ctl->topic_partitions), 3);
}

/* ------------------------------------------------------------------ two-phase create */

/* Between begin and finish the topic is not served, but its name is taken: another create
 * is refused and a delete told to retry; finish then serves it. */
static void test_a_topic_being_created_holds_its_name_until_finish(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t cfg = small_topic(1, SHOAL_STORAGE_DISK);

    assert_int_equal(broker_topic_create_begin(&f->b, "t", &cfg), 0);
    assert_true(being_created(f, "t"));
    assert_null(served(f, "t"));
    pthread_rwlock_rdlock(&f->b.lock);
    assert_int_equal(broker_no_topic(&f->b, "t"), SHOAL_ENOTOPIC);
    pthread_rwlock_unlock(&f->b.lock);
    assert_non_null(strstr(shoal_errmsg(), "being created"));
    assert_stored(f, "t", &cfg);

    assert_int_equal(broker_topic_create(&f->b, "t", &cfg), SHOAL_ETOPICEXISTS);
    assert_non_null(strstr(shoal_errmsg(), "being created"));
    assert_int_equal(broker_topic_delete(&f->b, "t"), SHOAL_ADMIN_ACTION);
    assert_stored(f, "t", &cfg);

    assert_int_equal(broker_topic_create_finish(&f->b, "t", &cfg), 0);
    assert_false(being_created(f, "t"));
    assert_non_null(served(f, "t"));
}

/* A finish that cannot make the rings undoes begin (no record, no files, the name free)
 * and passes on no stale detail; a broker that stops between the two steps serves the
 * topic, empty, when it opens again (broker.c: the store is written before the files are
 * made). */
static void test_a_create_cut_short_after_begin(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t cfg = small_topic(1, SHOAL_STORAGE_DISK);
    char blocker[400];
    dtopic_t *t;

    snprintf(blocker, sizeof(blocker), "%s/t-0.ctl", f->shm_dir);
    assert_int_equal(mkdir(blocker, 0700), 0); /* ring_create() cannot make this file */
    assert_int_equal(broker_topic_create_begin(&f->b, "t", &cfg), 0);
    assert_int_equal(broker_topic_create_finish(&f->b, "t", &cfg), -EEXIST);
    /* The detail (logged, and the reply's) is the failure's own, not one that begin's
     * lookups left behind. */
    assert_null(strstr(shoal_errmsg(), "no topic"));
    assert_false(being_created(f, "t"));
    assert_null(served(f, "t"));
    assert_false(store_has(f, "t"));
    assert_int_equal(entries_of(f->data_dir, "t-"), 0);
    assert_int_equal(rmdir(blocker), 0);
    create(f, "t", &cfg);

    assert_int_equal(broker_topic_create_begin(&f->b, "c", &cfg), 0);
    restart(f, false);
    assert_false(being_created(f, "c"));
    t = served(f, "c");
    assert_non_null(t);
    assert_memory_equal(&t->cfg, &cfg, sizeof(cfg));
    assert_int_equal(records_in(&t->parts[0]), 0);
}

/* ------------------------------------------------------------------ instance lock */

/* What a broker_open() of cfg beside the fixture's returns; one that opens is closed. */
static int open_beside(const shoald_config_t *cfg)
{
    broker_t other;
    int rc = broker_open(&other, cfg);

    if (rc == 0)
        broker_close(&other);
    return rc;
}

/* While a broker is open, another on the same data directory is refused with -EBUSY, and
 * so is one on another data directory with the same shm directory (the same instance):
 * two daemons never manage the same files. */
static void test_a_second_open_of_the_same_directories_is_busy(void **state)
{
    struct fixture *f = *state;
    shoald_config_t same_shm = f->cfg;
    char data_dir[400];

    assert_int_equal(open_beside(&f->cfg), -EBUSY);
    snprintf(data_dir, sizeof(data_dir), "%s/data2", f->dir);
    config_must_set(&same_shm, "data.dir", data_dir);
    assert_int_equal(open_beside(&same_shm), -EBUSY);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_create_serves_the_topic_and_refuses_a_second_create),
        T(test_create_rejects_invalid_names_and_configs),
        T(test_delete_removes_the_topic_and_its_files),
        T(test_create_keeps_segments_of_a_topic_the_store_forgot),
        T(test_reopen_recovers_topics_configs_and_flushed_records),
        T(test_alter_is_stored_all_or_nothing),
        T(test_a_topic_being_created_holds_its_name_until_finish),
        T(test_a_create_cut_short_after_begin),
        T(test_a_second_open_of_the_same_directories_is_busy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
