/* test_store.c - the LMDB metadata store: topic put/get/delete/foreach, persistence
 * across reopen, the topic record format, and store_open() under allocation failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "store.h"
#include "store_fixture.h"
#include "util.h"

static shoal_topic_config_t config_with(uint32_t partitions)
{
    shoal_topic_config_t cfg;
    shoal_topic_config_init(&cfg);
    cfg.partitions = partitions;
    return cfg;
}

static void test_store_open_creates_private_dir_and_files(void **state)
{
    struct fixture *f = *state;
    char path[400];
    struct stat st;

    assert_int_equal(stat(f->meta, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/data.mdb", f->meta);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0077, 0);
}

static void test_store_put_then_get_returns_config(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t in = config_with(3), out;

    in.storage = SHOAL_STORAGE_MEMORY;
    in.segment_bytes = 0x1ffffffffull;
    assert_int_equal(store_topic_put(f->st, "orders", &in), 0);
    memset(&out, 0xff, sizeof(out));
    assert_int_equal(store_topic_get(f->st, "orders", &out), 0);
    assert_memory_equal(&in, &out, sizeof(in));
}

static void test_store_put_existing_topic_is_topicexists(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t a = config_with(1), b = config_with(9), out;

    assert_int_equal(store_topic_put(f->st, "orders", &a), 0);
    assert_int_equal(store_topic_put(f->st, "orders", &b), SHOAL_ETOPICEXISTS);
    assert_int_equal(store_topic_get(f->st, "orders", &out), 0);
    assert_int_equal(out.partitions, 1);
}

static void test_store_missing_topic_is_notopic(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t out;

    assert_int_equal(store_topic_get(f->st, "nope", &out), SHOAL_ENOTOPIC);
    assert_int_equal(store_topic_delete(f->st, "nope"), SHOAL_ENOTOPIC);
}

static void test_store_delete_removes_topic(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t cfg = config_with(2), out;

    assert_int_equal(store_topic_put(f->st, "a", &cfg), 0);
    assert_int_equal(store_topic_delete(f->st, "a"), 0);
    assert_int_equal(store_topic_get(f->st, "a", &out), SHOAL_ENOTOPIC);
    assert_int_equal(store_topic_put(f->st, "a", &cfg), 0);
}

/* What store_deleting_foreach() saw: the names (each followed by ':' and its partitions, and
 * ' ') in a buffer. */
static int note_deleting(void *arg, const char *name, uint32_t partitions)
{
    char *seen = arg;
    snprintf(seen + strlen(seen), 256 - strlen(seen), "%s:%u ", name, partitions);
    return 0;
}

/* A delete is noted with the topic's partition count until its files are gone
 * (store_deleting_done), so that a start after a crash in between finishes it; a topic of
 * the same name made since drops the note, which would take its files. */
static void test_store_notes_a_delete_until_it_is_done(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t cfg = config_with(3);
    char seen[256] = "";

    assert_int_equal(store_topic_put(f->st, "a", &cfg), 0);
    assert_int_equal(store_topic_put(f->st, "b", &cfg), 0);
    assert_int_equal(store_topic_put(f->st, "c", &cfg), 0);
    assert_int_equal(store_topic_delete(f->st, "a"), 0);
    assert_int_equal(store_topic_delete(f->st, "b"), 0);
    assert_int_equal(store_topic_delete(f->st, "c"), 0);
    assert_int_equal(store_deleting_foreach(f->st, note_deleting, seen), 0);
    assert_string_equal(seen, "a:3 b:3 c:3 ");

    assert_int_equal(store_deleting_done(f->st, "a"), 0);
    assert_int_equal(store_topic_put(f->st, "b", &cfg), 0);
    seen[0] = '\0';
    assert_int_equal(store_deleting_foreach(f->st, note_deleting, seen), 0);
    assert_string_equal(seen, "c:3 ");
    assert_int_equal(store_deleting_done(f->st, "c"), 0);
    assert_int_equal(store_deleting_done(f->st, "c"), 0); /* twice: nothing to forget */
    seen[0] = '\0';
    assert_int_equal(store_deleting_foreach(f->st, note_deleting, seen), 0);
    assert_string_equal(seen, "");
}

/* What store_growing_foreach() saw: "name:first-end " for each note. */
static int note_growing(void *arg, const char *name, uint32_t first, uint32_t end)
{
    char *seen = arg;
    snprintf(seen + strlen(seen), 256 - strlen(seen), "%s:%u-%u ", name, first, end);
    return 0;
}

/* A grow is noted with the partitions it adds until the topic's new count is stored (or the
 * topic deleted), or it is done (store_growing_done), so that a start after a crash in
 * between removes the partitions it left. */
static void test_store_notes_a_grow_until_the_count_is_stored(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t cfg = config_with(3);
    char seen[256] = "";

    assert_int_equal(store_topic_put(f->st, "a", &cfg), 0);
    assert_int_equal(store_topic_put(f->st, "b", &cfg), 0);
    assert_int_equal(store_topic_put(f->st, "c", &cfg), 0);
    assert_int_equal(store_growing_note(f->st, "a", 3, 5), 0);
    assert_int_equal(store_growing_note(f->st, "b", 3, 4), 0);
    assert_int_equal(store_growing_note(f->st, "c", 3, 8), 0);
    assert_int_equal(store_growing_foreach(f->st, note_growing, seen), 0);
    assert_string_equal(seen, "a:3-5 b:3-4 c:3-8 ");

    cfg.partitions = 5;
    assert_int_equal(store_topic_update(f->st, "a", &cfg), 0);
    assert_int_equal(store_topic_delete(f->st, "b"), 0);
    seen[0] = '\0';
    assert_int_equal(store_growing_foreach(f->st, note_growing, seen), 0);
    assert_string_equal(seen, "c:3-8 ");
    assert_int_equal(store_growing_done(f->st, "c"), 0);
    assert_int_equal(store_growing_done(f->st, "c"), 0); /* twice: nothing to forget */
    seen[0] = '\0';
    assert_int_equal(store_growing_foreach(f->st, note_growing, seen), 0);
    assert_string_equal(seen, "");
    seen[0] = '\0';
    assert_int_equal(store_deleting_foreach(f->st, note_deleting, seen), 0);
    assert_string_equal(seen, "b:3 "); /* the other kind of note is its own */
}

static void test_store_rejects_empty_and_overlong_names(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t cfg = config_with(1);
    char name[SHOAL_TOPIC_NAME_MAX + 2];

    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_int_equal(store_topic_put(f->st, "", &cfg), SHOAL_ENAME);
    assert_int_equal(store_topic_put(f->st, name, &cfg), SHOAL_ENAME);
    name[SHOAL_TOPIC_NAME_MAX] = '\0';
    assert_int_equal(store_topic_put(f->st, name, &cfg), 0);
}

struct visit_log {
    store_t *st; /* when set, the callback also reads the topic back */
    char names[8][16];
    uint32_t partitions[8];
    char why[128]; /* shoal_errmsg() at the last visit without a config */
    int n;
    int stop_after;
};

static int record_visit(void *arg, const char *name, const shoal_topic_config_t *cfg)
{
    struct visit_log *log = arg;

    assert_true(log->n < 8);
    snprintf(log->names[log->n], sizeof(log->names[0]), "%s", name);
    log->partitions[log->n] = cfg ? cfg->partitions : 0; /* NULL: an unusable record */
    if (!cfg)
        snprintf(log->why, sizeof(log->why), "%s", shoal_errmsg());
    if (log->st && cfg) {
        shoal_topic_config_t again;
        assert_int_equal(store_topic_get(log->st, name, &again), 0);
        assert_memory_equal(&again, cfg, sizeof(again));
    }
    log->n++;
    return log->n == log->stop_after ? 42 : 0;
}

static void test_store_foreach_visits_in_name_order(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"orders", "a.b", "Zed", "payments-2", "payments-10"};
    const char *sorted[] = {"Zed", "a.b", "orders", "payments-10", "payments-2"};
    struct visit_log log = {.st = f->st};
    shoal_topic_config_t cfg;

    for (size_t i = 0; i < SHOAL_ARRAY_LEN(names); i++) {
        cfg = config_with((uint32_t)(strlen(names[i])));
        assert_int_equal(store_topic_put(f->st, names[i], &cfg), 0);
    }
    assert_int_equal(store_topic_foreach(f->st, record_visit, &log), 0);
    assert_int_equal(log.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(log.names[i], sorted[i]);
        assert_int_equal(log.partitions[i], strlen(sorted[i]));
    }
}

static void test_store_foreach_stops_on_callback_value(void **state)
{
    struct fixture *f = *state;
    struct visit_log log = {.stop_after = 2};
    shoal_topic_config_t cfg = config_with(1);

    assert_int_equal(store_topic_put(f->st, "t1", &cfg), 0);
    assert_int_equal(store_topic_put(f->st, "t2", &cfg), 0);
    assert_int_equal(store_topic_put(f->st, "t3", &cfg), 0);
    assert_int_equal(store_topic_foreach(f->st, record_visit, &log), 42);
    assert_int_equal(log.n, 2);
}

/* A record out of range (a damaged store: 0 partitions) is visited without a config and
 * with the cause, and the walk goes on to the next topic. */
static void test_store_foreach_visits_an_out_of_range_record_without_config(void **state)
{
    struct fixture *f = *state;
    struct visit_log log = {0};
    shoal_topic_config_t cfg = config_with(0);

    assert_int_equal(store_topic_put(f->st, "broken", &cfg), 0);
    cfg = config_with(3);
    assert_int_equal(store_topic_put(f->st, "fine", &cfg), 0);
    assert_int_equal(store_topic_foreach(f->st, record_visit, &log), 0);
    assert_int_equal(log.n, 2);
    assert_string_equal(log.names[0], "broken");
    assert_int_equal(log.partitions[0], 0);
    assert_non_null(
        strstr(log.why, "store: topic record out of range: partitions must be 1..1024"));
    assert_string_equal(log.names[1], "fine");
    assert_int_equal(log.partitions[1], 3);
}

static void test_store_foreach_on_empty_store_calls_nothing(void **state)
{
    struct fixture *f = *state;
    struct visit_log log = {0};

    assert_int_equal(store_topic_foreach(f->st, record_visit, &log), 0);
    assert_int_equal(log.n, 0);
}

static void test_store_reopen_keeps_topics(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t cfg = config_with(5), out;

    assert_int_equal(store_topic_put(f->st, "kept", &cfg), 0);
    assert_int_equal(store_topic_put(f->st, "gone", &cfg), 0);
    assert_int_equal(store_topic_delete(f->st, "gone"), 0);
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(store_open(f->meta, 0, &f->st), 0);
    assert_int_equal(store_topic_get(f->st, "kept", &out), 0);
    assert_memory_equal(&cfg, &out, sizeof(cfg));
    assert_int_equal(store_topic_get(f->st, "gone", &out), SHOAL_ENOTOPIC);
}

/* The rings' owner id stays while the same shm directory serves the store, across a
 * reopen; another shm directory in between gets a new one, and so does the first one
 * after it (its rings from before must not be taken), with the last one named, which
 * store_ring_shm reads too. */
static void test_store_ring_owner_changes_with_the_shm_directory(void **state)
{
    struct fixture *f = *state;
    uint64_t first, again, other, back;
    char prev[64] = "x";

    assert_int_equal(store_ring_shm(f->st, prev, sizeof(prev)), 0);
    assert_string_equal(prev, "");
    assert_int_equal(store_ring_owner(f->st, "/dev/shm/shoal.a", &first, prev, sizeof(prev)), 1);
    assert_string_equal(prev, "");
    assert_int_not_equal(first, 0);
    store_close(f->st);
    assert_int_equal(store_open(f->meta, 0, &f->st), 0);
    assert_int_equal(store_ring_shm(f->st, prev, sizeof(prev)), 0);
    assert_string_equal(prev, "/dev/shm/shoal.a");
    assert_int_equal(store_ring_owner(f->st, "/dev/shm/shoal.a", &again, prev, sizeof(prev)), 0);
    assert_true(again == first);
    assert_string_equal(prev, "/dev/shm/shoal.a");
    assert_int_equal(store_ring_owner(f->st, "/dev/shm/shoal.b", &other, prev, sizeof(prev)), 1);
    assert_string_equal(prev, "/dev/shm/shoal.a");
    assert_true(other != first);
    assert_int_equal(store_ring_owner(f->st, "/dev/shm/shoal.a", &back, prev, sizeof(prev)), 1);
    assert_string_equal(prev, "/dev/shm/shoal.b");
    assert_true(back != first && back != other);
}

/* A data.mdb cut shorter than its pages is refused with the cause at open, instead of
 * faulting (SIGBUS) at the first read past its end. */
static void test_store_open_refuses_a_file_cut_short(void **state)
{
    struct fixture *f = *state;
    shoal_topic_config_t cfg = config_with(1);
    char path[400];

    for (int i = 0; i < 200; i++) { /* enough pages for a tree past the two meta pages */
        char name[24];
        snprintf(name, sizeof(name), "topic-%d", i);
        assert_int_equal(store_topic_put(f->st, name, &cfg), 0);
    }
    store_close(f->st);
    f->st = NULL;
    snprintf(path, sizeof(path), "%s/data.mdb", f->meta);
    assert_int_equal(truncate(path, 8192), 0);
    assert_int_equal(store_open(f->meta, 0, &f->st), SHOAL_ECORRUPT);
    assert_null(f->st);
    assert_non_null(strstr(shoal_errmsg(), "has 8192 bytes but its pages reach"));
}

static void test_store_record_round_trip_and_layout(void **state)
{
    shoal_topic_config_t in, out;
    uint8_t rec[STORE_TOPIC_RECORD_BYTES];

    (void)state;
    shoal_topic_config_init(&in);
    in.partitions = 0x01020304;
    in.storage = 1;
    in.segment_bytes = 0x1122334455667788ull;
    in.ring_slots = 64;
    in.max_record_bytes = 0xa0b0c0d0;
    in.retention_ms = -1;
    in.retention_bytes = 0x0102030405060708;
    in.segment_ms = 12345;
    in.cleanup_policy = SHOAL_CLEANUP_COMPACT | SHOAL_CLEANUP_DELETE;
    in.flush_messages = 7;
    in.flush_ms = 9;
    in.delete_retention_ms = 11;
    store_topic_encode(rec, &in);
    assert_int_equal(rec[0], 2);
    assert_int_equal(rec[4], 0x04); /* little-endian partitions */
    assert_int_equal(rec[12], 0x88);
    assert_int_equal(rec[19], 0x11);
    assert_int_equal(rec[40], 0x08); /* little-endian retention bytes */
    assert_int_equal(store_topic_decode(rec, sizeof(rec), &out), 0);
    assert_memory_equal(&in, &out, sizeof(in));
}

static void test_store_version_1_record_decodes_with_lifecycle_defaults(void **state)
{
    shoal_topic_config_t in = config_with(3), out, defaults;
    uint8_t rec[STORE_TOPIC_RECORD_BYTES];

    (void)state;
    store_topic_encode(rec, &in);
    rec[0] = 1;
    assert_int_equal(store_topic_decode(rec, 32, &out), 0);
    shoal_topic_config_init(&defaults);
    assert_int_equal(out.partitions, 3);
    assert_int_equal(out.retention_ms, defaults.retention_ms);
    assert_int_equal(out.cleanup_policy, defaults.cleanup_policy);
    assert_int_equal(store_topic_decode(rec, STORE_TOPIC_RECORD_BYTES, &out), SHOAL_ECORRUPT);
}

static void test_store_record_rejects_bad_length_and_version(void **state)
{
    shoal_topic_config_t cfg = config_with(1), out;
    uint8_t rec[STORE_TOPIC_RECORD_BYTES + 1];

    (void)state;
    store_topic_encode(rec, &cfg);
    rec[STORE_TOPIC_RECORD_BYTES] = 0;
    assert_int_equal(store_topic_decode(rec, 0, &out), SHOAL_ECORRUPT);
    assert_int_equal(store_topic_decode(rec, STORE_TOPIC_RECORD_BYTES - 1, &out), SHOAL_ECORRUPT);
    assert_int_equal(store_topic_decode(rec, STORE_TOPIC_RECORD_BYTES + 1, &out), SHOAL_ECORRUPT);
    rec[0] = 3;
    assert_int_equal(store_topic_decode(rec, STORE_TOPIC_RECORD_BYTES, &out), SHOAL_EVERSION);
    rec[0] = 0;
    assert_int_equal(store_topic_decode(rec, STORE_TOPIC_RECORD_BYTES, &out), SHOAL_EVERSION);
    rec[0] = 2;
    rec[31] = 1;
    assert_int_equal(store_topic_decode(rec, STORE_TOPIC_RECORD_BYTES, &out), SHOAL_ECORRUPT);
    rec[31] = 0;
    rec[61] = 1;
    assert_int_equal(store_topic_decode(rec, STORE_TOPIC_RECORD_BYTES, &out), SHOAL_ECORRUPT);
}

static void test_store_open_fails_cleanly_on_every_allocation(void **state)
{
    char dir[256], meta[300];
    store_t *st = NULL;
    long n;
    int rc = -ENOMEM;

    (void)state;
    harness_tmpdir(dir, sizeof(dir), "store-oom");
    snprintf(meta, sizeof(meta), "%s/meta", dir);
    for (n = 1; rc == -ENOMEM; n++) {
        st = (store_t *)(uintptr_t)1;
        shoal__alloc_fail_after(n);
        rc = store_open(meta, 0, &st);
        shoal__alloc_fail_after(0);
        if (rc == -ENOMEM)
            assert_null(st);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 2); /* at least one allocation was failed */
    assert_non_null(st);
    store_close(st);
    harness_rmrf(dir);
}

static void test_store_open_on_a_file_fails_without_handle(void **state)
{
    char dir[256], file[300];
    store_t *st = (store_t *)(uintptr_t)1;
    FILE *fp;

    (void)state;
    harness_tmpdir(dir, sizeof(dir), "store-file");
    snprintf(file, sizeof(file), "%s/meta", dir);
    fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(store_open(file, 0, &st), SHOAL_EIO);
    assert_null(st);
    assert_true(strlen(shoal_errmsg()) > 0);
    harness_rmrf(dir);
}

/* Bytes of disk allocated to meta/data.mdb beyond its size: the room set aside. */
static long long reserve_of(const char *meta, long long *size)
{
    char path[320];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/data.mdb", meta);
    assert_int_equal(stat(path, &sb), 0);
    *size = (long long)sb.st_size;
    return (long long)sb.st_blocks * 512 - (long long)sb.st_size;
}

/* The room set aside for commits on a full disk is renewed as the store grows into it, not
 * only taken at open: after every commit, at least 64 KiB remain. */
static void test_store_renews_its_reserve_as_it_grows(void **state)
{
    struct fixture *f = *state;
    char group[201], topic[201];
    store_offset_t offs[500];
    long long size0, size, reserve0 = reserve_of(f->meta, &size0);

    assert_true(reserve0 >= 64 << 10);
    memset(group, 'g', 200);
    memset(topic, 't', 200);
    group[200] = topic[200] = '\0';
    store_close(f->st);
    assert_int_equal(store_open(f->meta, 64u << 20, &f->st), 0); /* room for ~13 MiB more */
    for (int c = 0; c < 60; c++) {
        for (int i = 0; i < 500; i++)
            offs[i] = (store_offset_t){group, topic, c * 500 + i, i};
        assert_int_equal(store_offsets_put(f->st, offs, 500), 0);
        assert_true(reserve_of(f->meta, &size) >= 64 << 10);
    }
    assert_true(size > size0 + reserve0); /* it grew past what was set aside at open */
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_store_open_creates_private_dir_and_files),
        T(test_store_put_then_get_returns_config),
        T(test_store_put_existing_topic_is_topicexists),
        T(test_store_missing_topic_is_notopic),
        T(test_store_delete_removes_topic),
        T(test_store_notes_a_delete_until_it_is_done),
        T(test_store_notes_a_grow_until_the_count_is_stored),
        T(test_store_rejects_empty_and_overlong_names),
        T(test_store_foreach_visits_in_name_order),
        T(test_store_foreach_stops_on_callback_value),
        T(test_store_foreach_visits_an_out_of_range_record_without_config),
        T(test_store_foreach_on_empty_store_calls_nothing),
        T(test_store_reopen_keeps_topics),
        T(test_store_ring_owner_changes_with_the_shm_directory),
        T(test_store_open_refuses_a_file_cut_short),
        T(test_store_renews_its_reserve_as_it_grows),
        cmocka_unit_test(test_store_record_round_trip_and_layout),
        cmocka_unit_test(test_store_record_rejects_bad_length_and_version),
        cmocka_unit_test(test_store_version_1_record_decodes_with_lifecycle_defaults),
        cmocka_unit_test(test_store_open_fails_cleanly_on_every_allocation),
        cmocka_unit_test(test_store_open_on_a_file_fails_without_handle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
