/* test_store_offsets.c - committed offsets in the LMDB store: many in one transaction,
 * lookups, per-group walks in key order (no prefix confusion between groups), deletion,
 * persistence across reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "store.h"
#include "store_fixture.h"
#include "util.h"

struct seen {
    char keys[16][600];
    int n;
};

static int record(void *arg, const char *group, const char *topic, int32_t p, int64_t off)
{
    struct seen *s = arg;
    if (s->n >= 16)
        return -1;
    snprintf(s->keys[s->n++], sizeof(s->keys[0]), "%s/%s/%d=%lld", group, topic, (int)p,
             (long long)off);
    return 0;
}

static void test_offsets_put_in_one_batch_then_get_and_walk_per_group(void **state)
{
    struct fixture *f = *state;
    store_offset_t offs[] = {
        {"g", "t", 1, 10},  {"g", "t", 0, 5},    {"g", "a", 300, 7},
        {"g2", "t", 0, 99}, {"g", "t", 256, 11}, {"g", "t", 1, 12}, /* later entry wins */
    };
    struct seen s = {0};
    int64_t off = -1;

    assert_int_equal(store_offsets_put(f->st, offs, 6), 0);
    assert_int_equal(store_offset_get(f->st, "g", "t", 1, &off), 1);
    assert_int_equal(off, 12);
    assert_int_equal(store_offset_get(f->st, "g", "t", 2, &off), 0);
    assert_int_equal(store_offset_get(f->st, "nobody", "t", 1, &off), 0);

    assert_int_equal(store_offset_foreach(f->st, "g", record, &s), 0);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.keys[0], "g/a/300=7");
    assert_string_equal(s.keys[1], "g/t/0=5");
    assert_string_equal(s.keys[2], "g/t/1=12");
    assert_string_equal(s.keys[3], "g/t/256=11");
    memset(&s, 0, sizeof(s));
    assert_int_equal(store_offset_foreach(f->st, NULL, record, &s), 0);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.keys[4], "g2/t/0=99");
}

/* Deleting a topic drops every group's offsets of it, in the same transaction, and not
 * those of a topic whose name it prefixes; creating a topic drops any left under its name
 * (by an older shoal). */
static void test_topic_delete_and_create_drop_the_topics_offsets_in_every_group(void **state)
{
    struct fixture *f = *state;
    store_offset_t offs[] = {
        {"g", "t", 0, 1}, {"g", "t2", 0, 2}, {"h", "t", 3, 3}, {"h", "tt", 0, 4}, {"t", "u", 0, 5},
    };
    shoal_topic_config_t cfg;
    struct seen s = {0};

    shoal_topic_config_init(&cfg);
    assert_int_equal(store_topic_put(f->st, "t", &cfg), 0);
    assert_int_equal(store_offsets_put(f->st, offs, 5), 0);
    assert_int_equal(store_topic_delete(f->st, "t"), 2);
    assert_int_equal(store_offset_foreach(f->st, NULL, record, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.keys[0], "g/t2/0=2");
    assert_string_equal(s.keys[1], "h/tt/0=4");
    assert_string_equal(s.keys[2], "t/u/0=5");

    assert_int_equal(store_offsets_put(f->st, offs, 1), 0); /* as an older shoal left them */
    assert_int_equal(store_topic_put(f->st, "t", &cfg), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(store_offset_foreach(f->st, NULL, record, &s), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(store_topic_delete(f->st, "t"), 0);
}

static void test_offsets_delete_by_group_or_topic_and_survive_reopen(void **state)
{
    struct fixture *f = *state;
    store_offset_t offs[] = {{"g", "t", 0, 1}, {"g", "u", 0, 2}, {"gg", "t", 0, 3}};
    struct seen s = {0};
    int64_t off;

    assert_int_equal(store_offsets_put(f->st, offs, 3), 0);
    assert_int_equal(store_offsets_delete(f->st, "g", "u"), 1);
    store_close(f->st);
    assert_int_equal(store_open(f->meta, 16u << 20, &f->st), 0);
    assert_int_equal(store_offset_get(f->st, "g", "t", 0, &off), 1);
    assert_int_equal(off, 1);
    assert_int_equal(store_offset_get(f->st, "g", "u", 0, &off), 0);
    assert_int_equal(store_offsets_delete(f->st, "g", NULL), 1);
    assert_int_equal(store_offset_foreach(f->st, NULL, record, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.keys[0], "gg/t/0=3");
    assert_int_equal(store_offsets_delete(f->st, "nobody", NULL), 0);
}

static void test_offsets_reject_empty_names(void **state)
{
    struct fixture *f = *state;
    store_offset_t bad = {"", "t", 0, 1};
    int64_t off;
    assert_int_equal(store_offsets_put(f->st, &bad, 1), SHOAL_ENAME);
    assert_int_equal(store_offset_get(f->st, "g", "", 0, &off), SHOAL_ENAME);
}

struct group_times {
    char ids[4][64];
    int64_t ms[4];
    int n, stop_after;
};

static int group_time(void *arg, const char *group, int64_t last_commit_ms)
{
    struct group_times *g = arg;
    if (g->n == 4)
        return -1;
    snprintf(g->ids[g->n], sizeof(g->ids[0]), "%s", group);
    g->ms[g->n++] = last_commit_ms;
    return g->n == g->stop_after ? 7 : 0;
}

/* Each group once, in key order ("g" before "g2", not confused by the prefix), with its
 * latest commit time; a callback's non-zero value stops the walk. */
static void test_offset_groups_gives_each_groups_latest_commit(void **state)
{
    struct fixture *f = *state;
    store_offset_t early[] = {{"g", "t", 0, 1}, {"g2", "t", 0, 2}, {"h", "t", 0, 3}};
    store_offset_t late = {"g", "u", 5, 4};
    struct group_times g = {0};
    int64_t before = shoal__now_ms(), mid;

    assert_int_equal(store_offset_groups(f->st, group_time, &g), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(store_offsets_put(f->st, early, 3), 0);
    usleep(20000);
    mid = shoal__now_ms();
    assert_int_equal(store_offsets_put(f->st, &late, 1), 0);
    assert_int_equal(store_offset_groups(f->st, group_time, &g), 0);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.ids[0], "g");
    assert_string_equal(g.ids[1], "g2");
    assert_string_equal(g.ids[2], "h");
    assert_true(g.ms[0] >= mid);                     /* the later of its two commits */
    assert_true(g.ms[1] >= before && g.ms[1] < mid); /* the early one */
    memset(&g, 0, sizeof(g));
    g.stop_after = 2;
    assert_int_equal(store_offset_groups(f->st, group_time, &g), 7);
    assert_int_equal(g.n, 2);
}

/* Added partitions: each group with an offset of the topic gets 0 where it has none, stamped
 * with its latest commit there (its expiry does not move); other groups and topics, and
 * offsets already stored, are left as they are. */
static void test_added_partitions_start_at_zero_for_the_topics_groups(void **state)
{
    struct fixture *f = *state;
    store_offset_t offs[] = {
        {"g", "t", 0, 10}, {"g", "t", 3, 4}, {"h", "u", 0, 7}, {"i", "t", 1, 2}, {"i", "tt", 0, 1}};
    struct group_times before = {0}, after = {0};
    int64_t off = -1;

    assert_int_equal(store_offsets_put(f->st, offs, 5), 0);
    assert_int_equal(store_offset_groups(f->st, group_time, &before), 0);
    usleep(20000);
    assert_int_equal(store_offsets_start_added(f->st, "t", 2, 5), 5); /* g: 2 and 4; i: 2..4 */
    for (int32_t p = 2; p < 5; p++) {
        assert_int_equal(store_offset_get(f->st, "i", "t", p, &off), 1);
        assert_int_equal(off, 0);
        assert_int_equal(store_offset_get(f->st, "g", "t", p, &off), 1);
        assert_int_equal(off, p == 3 ? 4 : 0); /* kept */
        assert_int_equal(store_offset_get(f->st, "h", "t", p, &off), 0);
    }
    assert_int_equal(store_offset_get(f->st, "i", "tt", 2, &off), 0); /* a longer name */
    assert_int_equal(store_offset_groups(f->st, group_time, &after), 0);
    assert_int_equal(after.n, 3);
    for (int i = 0; i < 3; i++)
        assert_true(after.ms[i] == before.ms[i]);
    assert_int_equal(store_offsets_start_added(f->st, "t", 2, 5), 0); /* once */
    assert_int_equal(store_offsets_start_added(f->st, "nothing", 0, 3), 0);
    /* out of memory listing the groups: -ENOMEM, said, and nothing written */
    shoal__alloc_fail_after(1);
    assert_int_equal(store_offsets_start_added(f->st, "t", 5, 6), -ENOMEM);
    shoal__alloc_fail_after(0);
    assert_non_null(strstr(shoal_errmsg(), "out of memory"));
    assert_int_equal(store_offset_get(f->st, "g", "t", 5, &off), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_offsets_put_in_one_batch_then_get_and_walk_per_group,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_delete_by_group_or_topic_and_survive_reopen,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_topic_delete_and_create_drop_the_topics_offsets_in_every_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_reject_empty_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_groups_gives_each_groups_latest_commit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_added_partitions_start_at_zero_for_the_topics_groups,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
