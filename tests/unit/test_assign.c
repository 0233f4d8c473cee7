/* test_assign.c - the partition assignors and the checker they run under.
 *
 * Range and round-robin are compared with the examples in Kafka's own documentation of
 * RangeAssignor and RoundRobinAssignor. Sticky is held to its two promises, balance and
 * minimal movement, by counting moved partitions against the theoretical minimum; the
 * cooperative variant must revoke before it reassigns. A seeded random walk over group
 * shapes (members joining and leaving, topics growing, heterogeneous subscriptions,
 * conflicting claims) checks validity, balance and determinism for all four, and every
 * allocation of every assignor is failed in turn to check the -ENOMEM paths free all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assign.h"
#include "shoal.h"
#include "util.h"

#define MAX_MEMBERS 10
#define MAX_TOPICS  5
#define MAX_OWNED   200

static const char *const topic_names[MAX_TOPICS] = {"t0", "t1", "t2", "t3", "t4"};
/* Sorted, so any subset taken in this order is a valid input order. */
static const char *const pool_ids[MAX_MEMBERS] = {"C0", "C1", "C2", "C3", "C4",
                                                  "C5", "C6", "C7", "C8", "C9"};

/* A group as a test builds it: the input plus the storage its pointers refer to. */
struct group {
    shoal_assign_input_t in;
    shoal_assign_member_t members[MAX_MEMBERS];
    const char *subs[MAX_MEMBERS][MAX_TOPICS];
    shoal_topic_partition_t owned[MAX_MEMBERS][MAX_OWNED];
    shoal_assign_topic_t topics[MAX_TOPICS];
};

/* ------------------------------------------------------------------ helpers */

static void group_init(struct group *g, size_t nm, size_t nt, const uint32_t *parts)
{
    memset(g, 0, sizeof(*g));
    for (size_t t = 0; t < nt; t++) {
        g->topics[t].topic = topic_names[t];
        g->topics[t].partitions = parts[t];
    }
    g->in.topics = g->topics;
    g->in.topic_count = nt;
    g->in.members = g->members;
    for (size_t m = 0; m < nm; m++) {
        g->members[m].member_id = pool_ids[m];
        g->members[m].generation = -1;
        g->members[m].topics = g->subs[m];
        g->members[m].owned = g->owned[m];
    }
    g->in.member_count = nm;
}

/* Subscribe member m to the topics in mask (bit t: topic t). */
static void group_subscribe(struct group *g, size_t m, unsigned mask)
{
    g->members[m].topic_count = 0;
    for (size_t t = 0; t < MAX_TOPICS; t++)
        if (mask & (1u << t))
            g->subs[m][g->members[m].topic_count++] = topic_names[t];
}

static void group_subscribe_all(struct group *g, unsigned mask)
{
    for (size_t m = 0; m < g->in.member_count; m++)
        group_subscribe(g, m, mask);
}

static void group_claim(struct group *g, size_t m, const char *topic, int32_t partition)
{
    shoal_assign_member_t *mb = &g->members[m];
    assert_true(mb->owned_count < MAX_OWNED);
    g->owned[m][mb->owned_count].topic = topic;
    g->owned[m][mb->owned_count].partition = partition;
    mb->owned_count++;
}

/* Each member of g now owns what `out` (computed for prev) gave the member with its id. */
static void group_own(struct group *g, const struct group *prev, const shoal_assign_output_t *out,
                      int32_t generation)
{
    for (size_t m = 0; m < g->in.member_count; m++) {
        g->members[m].owned_count = 0;
        g->members[m].generation = generation;
        for (size_t k = 0; k < prev->in.member_count; k++) {
            if (strcmp(prev->members[k].member_id, g->members[m].member_id) != 0)
                continue;
            for (size_t i = 0; i < out->members[k].n; i++)
                group_claim(g, m, out->members[k].tps[i].topic, out->members[k].tps[i].partition);
        }
    }
}

static int run(const char *name, const struct group *g, shoal_assign_output_t *out)
{
    const shoal_assignor_t *a = shoal_assignor_builtin(name);
    assert_non_null(a);
    int rc = assign_run(a, &g->in, out);
    if (rc != 0)
        print_error("%s: %s\n", name, shoal_errmsg());
    return rc;
}

/* The member index holding (topic, partition) in out, or -1. */
static int owner_in(const shoal_assign_output_t *out, const char *topic, int32_t partition)
{
    for (size_t m = 0; m < out->member_count; m++)
        for (size_t i = 0; i < out->members[m].n; i++)
            if (strcmp(out->members[m].tps[i].topic, topic) == 0 &&
                out->members[m].tps[i].partition == partition)
                return (int)m;
    return -1;
}

static size_t assigned_total(const shoal_assign_output_t *out)
{
    size_t n = 0;
    for (size_t m = 0; m < out->member_count; m++)
        n += out->members[m].n;
    return n;
}

/* Partitions of topics somebody subscribes to: what a complete assignment covers. */
static size_t assignable(const struct group *g)
{
    size_t n = 0;
    for (size_t t = 0; t < g->in.topic_count; t++) {
        bool any = false;
        for (size_t m = 0; m < g->in.member_count && !any; m++)
            for (size_t i = 0; i < g->members[m].topic_count; i++)
                any = any || strcmp(g->members[m].topics[i], g->topics[t].topic) == 0;
        n += any ? g->topics[t].partitions : 0;
    }
    return n;
}

static bool outputs_equal(const shoal_assign_output_t *a, const shoal_assign_output_t *b)
{
    if (a->member_count != b->member_count)
        return false;
    for (size_t m = 0; m < a->member_count; m++) {
        if (a->members[m].n != b->members[m].n)
            return false;
        for (size_t i = 0; i < a->members[m].n; i++)
            if (strcmp(a->members[m].tps[i].topic, b->members[m].tps[i].topic) != 0 ||
                a->members[m].tps[i].partition != b->members[m].tps[i].partition)
                return false;
    }
    return true;
}

/* Check member m got exactly the "topic:partition" list in want, in order. */
static void expect_member(const shoal_assign_output_t *out, size_t m, const char *want)
{
    char got[512] = "";
    for (size_t i = 0; i < out->members[m].n; i++) {
        size_t len = strlen(got);
        snprintf(got + len, sizeof(got) - len, "%s%s:%d", i ? " " : "",
                 out->members[m].tps[i].topic, out->members[m].tps[i].partition);
    }
    if (strcmp(got, want) != 0)
        fail_msg("member %zu got \"%s\", expected \"%s\"", m, got, want);
}

static bool subscribes(const struct group *g, size_t m, size_t t)
{
    for (size_t i = 0; i < g->members[m].topic_count; i++)
        if (strcmp(g->members[m].topics[i], topic_names[t]) == 0)
            return true;
    return false;
}

static size_t topic_index(const char *topic)
{
    for (size_t t = 0; t < MAX_TOPICS; t++)
        if (strcmp(topic, topic_names[t]) == 0)
            return t;
    fail_msg("unknown topic %s", topic);
    return 0;
}

/* ------------------------------------------------------------------ balance checks */

/* As balanced as subscriptions allow: no member X can pass a partition, directly or along
 * a chain of members each taking a partition of a topic it subscribes to, to a member Y
 * holding two or more fewer. */
static void check_balanced(const struct group *g, const shoal_assign_output_t *out)
{
    size_t nm = g->in.member_count;
    bool holds[MAX_MEMBERS][MAX_TOPICS] = {{false}};
    for (size_t m = 0; m < nm; m++)
        for (size_t i = 0; i < out->members[m].n; i++)
            holds[m][topic_index(out->members[m].tps[i].topic)] = true;
    for (size_t x = 0; x < nm; x++) {
        bool seen[MAX_MEMBERS] = {false};
        size_t queue[MAX_MEMBERS], head = 0, tail = 0;
        seen[x] = true;
        queue[tail++] = x;
        while (head < tail) {
            size_t a = queue[head++];
            if (out->members[a].n + 2 <= out->members[x].n)
                fail_msg("%s holds %zu, %s only %zu and could take one", g->members[x].member_id,
                         out->members[x].n, g->members[a].member_id, out->members[a].n);
            for (size_t b = 0; b < nm; b++)
                for (size_t t = 0; t < g->in.topic_count && !seen[b]; t++)
                    if (holds[a][t] && subscribes(g, b, t)) {
                        seen[b] = true;
                        queue[tail++] = b;
                    }
        }
    }
}

static bool same_subscription(const struct group *g, size_t a, size_t b)
{
    for (size_t t = 0; t < g->in.topic_count; t++)
        if (subscribes(g, a, t) != subscribes(g, b, t))
            return false;
    return true;
}

static bool all_identical(const struct group *g)
{
    for (size_t m = 1; m < g->in.member_count; m++)
        if (!same_subscription(g, 0, m))
            return false;
    return true;
}

/* Members with identical subscriptions hold counts differing by at most one. */
static void check_balanced_among_equals(const struct group *g, const shoal_assign_output_t *out)
{
    for (size_t a = 0; a < g->in.member_count; a++)
        for (size_t b = 0; b < g->in.member_count; b++)
            if (same_subscription(g, a, b) && out->members[a].n > out->members[b].n + 1)
                fail_msg("%s holds %zu, %s %zu with the same subscription", g->members[a].member_id,
                         out->members[a].n, g->members[b].member_id, out->members[b].n);
}

/* Range: per topic, its subscribers' shares differ by at most one. */
static void check_range_per_topic(const struct group *g, const shoal_assign_output_t *out)
{
    for (size_t t = 0; t < g->in.topic_count; t++) {
        size_t lo = SIZE_MAX, hi = 0;
        for (size_t m = 0; m < g->in.member_count; m++) {
            if (!subscribes(g, m, t))
                continue;
            size_t n = 0;
            for (size_t i = 0; i < out->members[m].n; i++)
                n += strcmp(out->members[m].tps[i].topic, topic_names[t]) == 0;
            lo = SHOAL_MIN(lo, n);
            hi = SHOAL_MAX(hi, n);
        }
        if (lo != SIZE_MAX && hi > lo + 1)
            fail_msg("range gave shares %zu..%zu of %s", lo, hi, topic_names[t]);
    }
}

/* Partitions owned (per g's claims) by a member that `out` gives to someone else. */
static size_t moved_count(const struct group *g, const shoal_assign_output_t *out)
{
    size_t moved = 0;
    for (size_t m = 0; m < g->in.member_count; m++)
        for (size_t i = 0; i < g->members[m].owned_count; i++)
            if (owner_in(out, g->owned[m][i].topic, g->owned[m][i].partition) != (int)m)
                moved++;
    return moved;
}

static int cmp_size_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* With identical subscriptions and n partitions, the fewest owned partitions any balanced
 * assignment must move: the r = n % m larger shares go to the members owning most. */
static size_t minimum_moves(const struct group *g, size_t n)
{
    size_t nm = g->in.member_count, owned[MAX_MEMBERS], total = 0, kept = 0;
    for (size_t m = 0; m < nm; m++) {
        owned[m] = g->members[m].owned_count;
        total += owned[m];
    }
    qsort(owned, nm, sizeof(owned[0]), cmp_size_desc);
    for (size_t k = 0; k < nm; k++)
        kept += SHOAL_MIN(owned[k], n / nm + (k < n % nm ? 1 : 0));
    return total - kept;
}

/* ------------------------------------------------------------------ output and lookup */

static void test_builtin_lookup_finds_kafka_names(void **state)
{
    (void)state;
    const char *names[] = {"range", "roundrobin", "sticky", "cooperative-sticky"};
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(names); i++) {
        const shoal_assignor_t *a = shoal_assignor_builtin(names[i]);
        assert_non_null(a);
        assert_string_equal(a->name, names[i]);
        assert_int_equal(a->cooperative, i == 3);
    }
    assert_null(shoal_assignor_builtin("round-robin"));
    assert_null(shoal_assignor_builtin(""));
    assert_null(shoal_assignor_builtin(NULL));
}

static void test_output_add_rejects_bad_member_index(void **state)
{
    (void)state;
    shoal_assign_output_t out;
    assert_int_equal(assign_output_init(&out, 2), 0);
    assert_int_equal(shoal_assign_output_add(&out, 2, "t0", 0), SHOAL_EINVAL);
    assert_int_equal(shoal_assign_output_add(&out, 0, NULL, 0), SHOAL_EINVAL);
    for (int32_t p = 0; p < 100; p++)
        assert_int_equal(shoal_assign_output_add(&out, 1, "t0", p), 0);
    assert_int_equal(out.members[1].n, 100);
    assert_int_equal(out.members[1].tps[99].partition, 99);
    assert_string_equal(out.members[1].tps[0].topic, "t0");
    assign_output_release(&out);
    assign_output_release(&out); /* a released output may be released again */
}

/* ------------------------------------------------------------------ the checker */

struct bad_assignor {
    int mode;
};

/* Assigns t0 (2 partitions) among two members, wrongly in the way `mode` says. */
static int bad_assign(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out)
{
    const struct bad_assignor *b = arg;
    (void)in;
    switch (b->mode) {
    case 0: /* t0-1 missing */
        return shoal_assign_output_add(out, 0, "t0", 0);
    case 1: /* t0-0 twice */
        shoal_assign_output_add(out, 0, "t0", 0);
        shoal_assign_output_add(out, 1, "t0", 0);
        return shoal_assign_output_add(out, 1, "t0", 1);
    case 2: /* a partition that does not exist */
        shoal_assign_output_add(out, 0, "t0", 0);
        shoal_assign_output_add(out, 0, "t0", 1);
        return shoal_assign_output_add(out, 1, "t0", 2);
    case 3: /* a topic the member does not subscribe to (C1 only takes t1) */
        shoal_assign_output_add(out, 0, "t0", 0);
        return shoal_assign_output_add(out, 1, "t0", 1);
    case 4: /* an assignor failure is passed through */
        return -ENOMEM;
    default: /* withholds t0-1, which nobody owns */
        return shoal_assign_output_add(out, 0, "t0", 0);
    }
}

static void test_run_rejects_invalid_assignments(void **state)
{
    (void)state;
    uint32_t parts[] = {2, 0};
    struct group g;
    group_init(&g, 2, 2, parts);
    group_subscribe(&g, 0, 1u);
    group_subscribe(&g, 1, 1u);
    struct bad_assignor b;
    shoal_assignor_t a = {.name = "bad", .assign = bad_assign, .arg = &b};
    shoal_assign_output_t out;
    for (b.mode = 0; b.mode <= 5; b.mode++) {
        a.cooperative = b.mode == 5;
        if (b.mode == 3)
            group_subscribe(&g, 1, 2u);
        int rc = assign_run(&a, &g.in, &out);
        assert_int_equal(rc, b.mode == 4 ? -ENOMEM : SHOAL_EINVAL);
        assert_null(out.members); /* released on failure */
        if (b.mode == 3)
            group_subscribe(&g, 1, 1u);
    }
}

/* A cooperative assignor may not hand a partition to one member while another owns it. */
static int steal_assign(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out)
{
    (void)arg;
    (void)in;
    return shoal_assign_output_add(out, 1, "t0", 0);
}

static void test_run_rejects_cooperative_reassignment_before_revocation(void **state)
{
    (void)state;
    uint32_t parts[] = {1};
    struct group g;
    group_init(&g, 2, 1, parts);
    group_subscribe_all(&g, 1u);
    group_claim(&g, 0, "t0", 0);
    g.members[0].generation = 1;
    shoal_assignor_t a = {.name = "steal", .cooperative = true, .assign = steal_assign};
    shoal_assign_output_t out;
    assert_int_equal(assign_run(&a, &g.in, &out), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "still owns"));
    a.cooperative = false; /* eager: revocation of everything happened already */
    assert_int_equal(assign_run(&a, &g.in, &out), 0);
    assign_output_release(&out);
}

static void test_run_rejects_unsorted_input(void **state)
{
    (void)state;
    uint32_t parts[] = {1, 1};
    struct group g;
    shoal_assign_output_t out;
    group_init(&g, 2, 2, parts);
    group_subscribe_all(&g, 3u);
    g.members[0].member_id = "C9";
    assert_int_equal(assign_run(shoal_assignor_builtin("range"), &g.in, &out), SHOAL_EINVAL);
    g.members[0].member_id = "C0";
    g.topics[0].topic = "t1";
    assert_int_equal(assign_run(shoal_assignor_builtin("range"), &g.in, &out), SHOAL_EINVAL);
    g.topics[0].topic = "t0";
    assert_int_equal(assign_run(shoal_assignor_builtin("range"), &g.in, &out), 0);
    assign_output_release(&out);
}

/* ------------------------------------------------------------------ range and round-robin */

static void test_range_matches_kafka_example(void **state)
{
    (void)state;
    uint32_t parts[] = {3, 3};
    struct group g;
    shoal_assign_output_t out;
    group_init(&g, 2, 2, parts);
    group_subscribe_all(&g, 3u);
    assert_int_equal(run("range", &g, &out), 0);
    expect_member(&out, 0, "t0:0 t0:1 t1:0 t1:1");
    expect_member(&out, 1, "t0:2 t1:2");
    assign_output_release(&out);
}

static void test_range_gives_first_members_the_extra_partitions(void **state)
{
    (void)state;
    uint32_t parts[] = {11};
    struct group g;
    shoal_assign_output_t out;
    group_init(&g, 4, 1, parts);
    group_subscribe_all(&g, 1u);
    assert_int_equal(run("range", &g, &out), 0);
    expect_member(&out, 0, "t0:0 t0:1 t0:2");
    expect_member(&out, 1, "t0:3 t0:4 t0:5");
    expect_member(&out, 2, "t0:6 t0:7 t0:8");
    expect_member(&out, 3, "t0:9 t0:10");
    assign_output_release(&out);
}

static void test_range_orders_static_members_first(void **state)
{
    (void)state;
    uint32_t parts[] = {3};
    struct group g;
    shoal_assign_output_t out;
    group_init(&g, 3, 1, parts);
    group_subscribe_all(&g, 1u);
    g.members[1].group_instance_id = "z";
    g.members[2].group_instance_id = "a";
    assert_int_equal(run("range", &g, &out), 0);
    expect_member(&out, 2, "t0:0"); /* instance "a" */
    expect_member(&out, 1, "t0:1"); /* instance "z" */
    expect_member(&out, 0, "t0:2"); /* dynamic members last */
    assign_output_release(&out);
}

static void test_roundrobin_matches_kafka_example(void **state)
{
    (void)state;
    uint32_t parts[] = {3, 3};
    struct group g;
    shoal_assign_output_t out;
    group_init(&g, 2, 2, parts);
    group_subscribe_all(&g, 3u);
    assert_int_equal(run("roundrobin", &g, &out), 0);
    expect_member(&out, 0, "t0:0 t0:2 t1:1");
    expect_member(&out, 1, "t0:1 t1:0 t1:2");
    assign_output_release(&out);
}

static void test_roundrobin_orders_static_members_first(void **state)
{
    (void)state;
    uint32_t parts[] = {5};
    struct group g;
    shoal_assign_output_t out;
    group_init(&g, 3, 1, parts);
    group_subscribe_all(&g, 1u);
    g.members[2].group_instance_id = "host-a";
    assert_int_equal(run("roundrobin", &g, &out), 0);
    expect_member(&out, 2, "t0:0 t0:3");
    expect_member(&out, 0, "t0:1 t0:4");
    expect_member(&out, 1, "t0:2");
    assign_output_release(&out);
}

/* Kafka's second RoundRobinAssignor example: C0 takes t0, C1 t0 and t1, C2 all three. */
static void test_roundrobin_skips_unsubscribed_members_like_kafka(void **state)
{
    (void)state;
    uint32_t parts[] = {1, 2, 3};
    struct group g;
    shoal_assign_output_t out;
    group_init(&g, 3, 3, parts);
    group_subscribe(&g, 0, 1u);
    group_subscribe(&g, 1, 3u);
    group_subscribe(&g, 2, 7u);
    assert_int_equal(run("roundrobin", &g, &out), 0);
    expect_member(&out, 0, "t0:0");
    expect_member(&out, 1, "t1:0");
    expect_member(&out, 2, "t1:1 t2:0 t2:1 t2:2");
    assign_output_release(&out);
}

static void test_assignors_handle_empty_groups_and_topics(void **state)
{
    (void)state;
    const char *names[] = {"range", "roundrobin", "sticky", "cooperative-sticky"};
    uint32_t parts[] = {0, 4, 2};
    struct group g;
    shoal_assign_output_t out;
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(names); i++) {
        group_init(&g, 0, 3, parts); /* no members */
        assert_int_equal(run(names[i], &g, &out), 0);
        assign_output_release(&out);
        group_init(&g, 3, 3, parts); /* C1 subscribes to nothing, t2 to nobody... */
        group_subscribe(&g, 0, 3u);
        group_subscribe(&g, 2, 3u);
        assert_int_equal(run(names[i], &g, &out), 0);
        assert_int_equal(out.members[1].n, 0);
        assert_int_equal(assigned_total(&out), 4); /* ...so only t1's four are assigned */
        assign_output_release(&out);
    }
}

/* ------------------------------------------------------------------ sticky */

/* n partitions of t0 among the first nm members of the pool, assigned from scratch. */
static void sticky_from_scratch(struct group *g, size_t nm, uint32_t n, shoal_assign_output_t *out)
{
    uint32_t parts[] = {n};
    group_init(g, nm, 1, parts);
    group_subscribe_all(g, 1u);
    assert_int_equal(run("sticky", g, out), 0);
    check_balanced(g, out);
}

static void test_sticky_moves_only_the_leavers_partitions(void **state)
{
    (void)state;
    for (size_t nm = 2; nm <= 8; nm++) {
        for (uint32_t n = 0; n <= 24; n++) {
            struct group g, after;
            shoal_assign_output_t out, out2;
            sticky_from_scratch(&g, nm, n, &out);
            /* member 1 leaves: the group is everyone else */
            uint32_t parts[] = {n};
            group_init(&after, nm - 1, 1, parts);
            for (size_t m = 1; m < nm - 1; m++)
                after.members[m].member_id = pool_ids[m + 1];
            group_subscribe_all(&after, 1u);
            group_own(&after, &g, &out, 1);
            assert_int_equal(run("sticky", &after, &out2), 0);
            check_balanced(&after, &out2);
            assert_int_equal(moved_count(&after, &out2), 0);
            assign_output_release(&out);
            assign_output_release(&out2);
        }
    }
}

static void test_sticky_join_moves_the_minimum(void **state)
{
    (void)state;
    for (size_t nm = 1; nm <= 7; nm++) {
        for (uint32_t n = 0; n <= 24; n++) {
            for (size_t joiner = 0; joiner <= nm; joiner++) {
                struct group g, after;
                shoal_assign_output_t out, out2;
                sticky_from_scratch(&g, nm, n, &out);
                uint32_t parts[] = {n};
                group_init(&after, nm + 1, 1, parts);
                /* the joiner sorts at position `joiner` among the old members */
                const char *ids[] = {"B", "C0x", "C1x", "C2x", "C3x", "C4x", "C5x", "C6x"};
                after.members[joiner].member_id = ids[joiner];
                for (size_t m = 0, k = 0; m <= nm; m++)
                    if (m != joiner)
                        after.members[m].member_id = g.members[k++].member_id;
                group_subscribe_all(&after, 1u);
                group_own(&after, &g, &out, 1);
                assert_int_equal(run("sticky", &after, &out2), 0);
                check_balanced(&after, &out2);
                assert_int_equal(moved_count(&after, &out2), minimum_moves(&after, n));
                assign_output_release(&out);
                assign_output_release(&out2);
            }
        }
    }
}

/* From a lopsided ownership (everything on a few members), sticky moves the minimum. */
static void test_sticky_rebalances_lopsided_ownership_minimally(void **state)
{
    (void)state;
    uint32_t parts[] = {13, 7};
    struct group g;
    shoal_assign_output_t out;
    group_init(&g, 5, 2, parts);
    group_subscribe_all(&g, 3u);
    for (int32_t p = 0; p < 13; p++)
        group_claim(&g, p < 9 ? 0 : 3, "t0", p);
    for (int32_t p = 0; p < 7; p++)
        group_claim(&g, 1, "t1", p);
    for (size_t m = 0; m < 5; m++)
        g.members[m].generation = 4;
    assert_int_equal(run("sticky", &g, &out), 0);
    check_balanced(&g, &out);
    assert_int_equal(moved_count(&g, &out), minimum_moves(&g, 20));
    assign_output_release(&out);
}

static void test_sticky_resolves_conflicting_claims_by_generation(void **state)
{
    (void)state;
    uint32_t parts[] = {2};
    struct group g;
    shoal_assign_output_t out;
    for (int newer = 0; newer < 2; newer++) {
        group_init(&g, 2, 1, parts);
        group_subscribe_all(&g, 1u);
        /* both claim t0-0 and t0-1; the newer generation's claim wins for both */
        group_claim(&g, 0, "t0", 0);
        group_claim(&g, 0, "t0", 1);
        group_claim(&g, 1, "t0", 0);
        group_claim(&g, 1, "t0", 1);
        g.members[newer].generation = 7;
        g.members[!newer].generation = 6;
        assert_int_equal(run("sticky", &g, &out), 0);
        /* balance wins over stickiness: the newer claimant keeps t0-0, the other takes
         * t0-1, which its stale claim could not hold */
        assert_int_equal(owner_in(&out, "t0", 0), newer);
        assert_int_equal(owner_in(&out, "t0", 1), !newer);
        assign_output_release(&out);
    }
}

static void test_sticky_keeps_the_newer_claim_over_a_stale_one(void **state)
{
    (void)state;
    uint32_t parts[] = {4};
    struct group g;
    shoal_assign_output_t out;
    group_init(&g, 2, 1, parts);
    group_subscribe_all(&g, 1u);
    group_claim(&g, 0, "t0", 0); /* C0, generation 3: t0-0 and t0-1 */
    group_claim(&g, 0, "t0", 1);
    group_claim(&g, 1, "t0", 1); /* C1, stale generation 2: t0-1 and t0-2 */
    group_claim(&g, 1, "t0", 2);
    g.members[0].generation = 3;
    g.members[1].generation = 2;
    assert_int_equal(run("sticky", &g, &out), 0);
    assert_int_equal(owner_in(&out, "t0", 0), 0);
    assert_int_equal(owner_in(&out, "t0", 1), 0);
    assert_int_equal(owner_in(&out, "t0", 2), 1);
    assert_int_equal(owner_in(&out, "t0", 3), 1);
    assign_output_release(&out);
}

/* ------------------------------------------------------------------ cooperative-sticky */

static void test_cooperative_revokes_first_then_completes(void **state)
{
    (void)state;
    for (size_t nm = 1; nm <= 6; nm++) {
        for (uint32_t n = 0; n <= 24; n++) {
            struct group g, after, second;
            shoal_assign_output_t out, target, round1, round2;
            sticky_from_scratch(&g, nm, n, &out);
            uint32_t parts[] = {n};
            group_init(&after, nm + 1, 1, parts); /* pool_ids[nm] joins at the end */
            group_subscribe_all(&after, 1u);
            group_own(&after, &g, &out, 1);
            assert_int_equal(run("sticky", &after, &target), 0);
            assert_int_equal(run("cooperative-sticky", &after, &round1), 0);
            /* round 1: what stays is exactly the target minus the moved partitions */
            size_t moved = moved_count(&after, &target);
            assert_int_equal(assigned_total(&round1), n - moved);
            for (size_t m = 0; m < after.in.member_count; m++)
                for (size_t i = 0; i < round1.members[m].n; i++) {
                    const shoal_topic_partition_t *tp = &round1.members[m].tps[i];
                    assert_int_equal(owner_in(&out, tp->topic, tp->partition),
                                     m < nm ? (int)m : -1);
                    assert_int_equal(owner_in(&target, tp->topic, tp->partition), (int)m);
                }
            /* round 2, after the revocations: the sticky target, complete */
            second = after;
            for (size_t m = 0; m < second.in.member_count; m++) {
                second.members[m].topics = second.subs[m];
                second.members[m].owned = second.owned[m];
            }
            second.in.members = second.members;
            second.in.topics = second.topics;
            group_own(&second, &after, &round1, 2);
            assert_int_equal(run("cooperative-sticky", &second, &round2), 0);
            assert_true(outputs_equal(&round2, &target));
            assign_output_release(&out);
            assign_output_release(&target);
            assign_output_release(&round1);
            assign_output_release(&round2);
        }
    }
}

static void test_cooperative_withholds_contested_partitions(void **state)
{
    (void)state;
    uint32_t parts[] = {2};
    struct group g;
    shoal_assign_output_t out;
    group_init(&g, 2, 1, parts);
    group_subscribe_all(&g, 1u);
    group_claim(&g, 0, "t0", 0);
    group_claim(&g, 1, "t0", 0); /* same generation: both believe they own t0-0 */
    group_claim(&g, 1, "t0", 1);
    g.members[0].generation = g.members[1].generation = 5;
    assert_int_equal(run("cooperative-sticky", &g, &out), 0);
    assert_int_equal(owner_in(&out, "t0", 0), -1);
    assert_int_equal(owner_in(&out, "t0", 1), 1);
    assign_output_release(&out);
}

static void test_cooperative_gives_a_leavers_partitions_at_once(void **state)
{
    (void)state;
    struct group g, after;
    shoal_assign_output_t out, out2;
    sticky_from_scratch(&g, 3, 10, &out);
    uint32_t parts[] = {10};
    group_init(&after, 2, 1, parts); /* C2 left */
    group_subscribe_all(&after, 1u);
    group_own(&after, &g, &out, 1);
    assert_int_equal(run("cooperative-sticky", &after, &out2), 0);
    assert_int_equal(assigned_total(&out2), 10);
    assert_int_equal(moved_count(&after, &out2), 0);
    assign_output_release(&out);
    assign_output_release(&out2);
}

/* ------------------------------------------------------------------ random property test */

static uint64_t rng_state;

static uint32_t rng_below(uint32_t n)
{
    /* xorshift64*: fixed seed, reproducible on every platform */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return n ? (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 33) % n : 0;
}

/* A random group: 1..8 members from the pool, 1..5 topics of 0..24 partitions, random
 * subscriptions (sometimes to nothing), or all identical. */
static void random_group(struct group *g)
{
    uint32_t parts[MAX_TOPICS];
    size_t nt = 1 + rng_below(MAX_TOPICS), nm = 0;
    for (size_t t = 0; t < nt; t++)
        parts[t] = rng_below(4) == 0 ? 0 : rng_below(25);
    group_init(g, 0, nt, parts);
    for (size_t k = 0; k < MAX_MEMBERS && nm < 8; k++) {
        if (rng_below(2))
            continue;
        g->members[nm].member_id = pool_ids[k];
        g->members[nm].generation = -1;
        g->members[nm].topics = g->subs[nm];
        g->members[nm].owned = g->owned[nm];
        nm++;
    }
    if (nm == 0) {
        g->members[0].member_id = pool_ids[rng_below(MAX_MEMBERS)];
        g->members[0].topics = g->subs[0];
        g->members[0].owned = g->owned[0];
        nm = 1;
    }
    g->in.member_count = nm;
    bool identical = rng_below(3) == 0;
    unsigned all = (1u << nt) - 1, mask = 1 + rng_below(all);
    for (size_t m = 0; m < nm; m++)
        group_subscribe(g, m, identical ? mask : rng_below(5) == 0 ? 0 : rng_below(all + 1));
}

/* Claims for g from a previous round, plus a few random conflicting ones. */
static void random_claims(struct group *g, const struct group *prev,
                          const shoal_assign_output_t *out)
{
    group_own(g, prev, out, 1 + (int32_t)rng_below(2));
    for (size_t m = 0; m < g->in.member_count; m++) {
        g->members[m].generation = 1 + (int32_t)rng_below(3);
        for (uint32_t k = rng_below(3) == 0 ? rng_below(4) : 0; k > 0; k--)
            group_claim(g, m, topic_names[rng_below(MAX_TOPICS)], (int32_t)rng_below(30) - 2);
    }
}

static void check_property(const char *name, const struct group *g)
{
    shoal_assign_output_t out, again;
    assert_int_equal(run(name, g, &out), 0);
    assert_int_equal(run(name, g, &again), 0);
    assert_true(outputs_equal(&out, &again)); /* deterministic */
    if (strcmp(name, "range") == 0)
        check_range_per_topic(g, &out);
    else if (strcmp(name, "roundrobin") == 0 && all_identical(g))
        check_balanced_among_equals(g, &out); /* Kafka promises nothing more */
    else if (strcmp(name, "sticky") == 0)
        check_balanced(g, &out);
    assign_output_release(&out);
    assign_output_release(&again);
}

/* Cooperative rounds, each starting from the previous round's result, settle on a
 * complete assignment within a few rounds, and every round is valid. */
static void check_cooperative_settles(const struct group *start)
{
    struct group *cur = malloc(sizeof(*cur)), *next = malloc(sizeof(*next));
    shoal_assign_output_t out;
    assert_non_null(cur);
    assert_non_null(next);
    memcpy(cur, start, sizeof(*cur));
    for (int round = 0;; round++) {
        assert_true(round < 4);
        for (size_t m = 0; m < cur->in.member_count; m++) {
            cur->members[m].topics = cur->subs[m];
            cur->members[m].owned = cur->owned[m];
        }
        cur->in.members = cur->members;
        cur->in.topics = cur->topics;
        assert_int_equal(run("cooperative-sticky", cur, &out), 0);
        if (assigned_total(&out) == assignable(cur)) {
            check_balanced(cur, &out);
            assign_output_release(&out);
            break;
        }
        memcpy(next, cur, sizeof(*next));
        for (size_t m = 0; m < next->in.member_count; m++)
            next->members[m].owned = next->owned[m];
        group_own(next, cur, &out, 10 + round);
        assign_output_release(&out);
        memcpy(cur, next, sizeof(*cur));
    }
    free(cur);
    free(next);
}

static void test_random_groups_are_valid_balanced_and_deterministic(void **state)
{
    (void)state;
    const char *names[] = {"range", "roundrobin", "sticky", "cooperative-sticky"};
    static struct group prev, g;
    shoal_assign_output_t out;
    rng_state = 0x5eed5eed12345678ull;
    random_group(&prev);
    assert_int_equal(run("sticky", &prev, &out), 0);
    for (int iter = 0; iter < 3000; iter++) {
        random_group(&g);
        if (rng_below(2)) { /* same topics, so ownership carries over meaningfully */
            memcpy(g.topics, prev.topics, sizeof(g.topics));
            g.in.topic_count = prev.in.topic_count;
        }
        random_claims(&g, &prev, &out);
        for (size_t i = 0; i < SHOAL_ARRAY_LEN(names); i++)
            check_property(names[i], &g);
        check_cooperative_settles(&g);
        assign_output_release(&out);
        assert_int_equal(run("sticky", &g, &out), 0);
        prev = g;
        prev.in.members = prev.members;
        prev.in.topics = prev.topics;
        for (size_t m = 0; m < prev.in.member_count; m++) {
            prev.members[m].topics = prev.subs[m];
            prev.members[m].owned = prev.owned[m];
        }
    }
    assign_output_release(&out);
}

/* ------------------------------------------------------------------ OOM */

static void test_assign_fails_cleanly_without_memory(void **state)
{
    (void)state;
    const char *names[] = {"range", "roundrobin", "sticky", "cooperative-sticky"};
    uint32_t parts[] = {20, 7, 0};
    struct group g;
    group_init(&g, 5, 3, parts);
    group_subscribe_all(&g, 7u);
    group_subscribe(&g, 4, 2u);
    g.members[1].group_instance_id = "static";
    for (int32_t p = 0; p < 20; p++)
        group_claim(&g, 0, "t0", p);
    g.members[0].generation = 2;
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(names); i++) {
        shoal_assign_output_t out;
        int rc = -ENOMEM;
        long n;
        for (n = 1; n < 1000 && rc == -ENOMEM; n++) {
            shoal__alloc_fail_after(n);
            rc = assign_run(shoal_assignor_builtin(names[i]), &g.in, &out);
            assert_true(rc == 0 || rc == -ENOMEM);
            if (rc == -ENOMEM)
                assert_null(out.members);
        }
        shoal__alloc_fail_after(0);
        assert_int_equal(rc, 0);
        assert_true(n > 2); /* at least one allocation failed first */
        assign_output_release(&out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_lookup_finds_kafka_names),
        cmocka_unit_test(test_output_add_rejects_bad_member_index),
        cmocka_unit_test(test_run_rejects_invalid_assignments),
        cmocka_unit_test(test_run_rejects_cooperative_reassignment_before_revocation),
        cmocka_unit_test(test_run_rejects_unsorted_input),
        cmocka_unit_test(test_range_matches_kafka_example),
        cmocka_unit_test(test_range_gives_first_members_the_extra_partitions),
        cmocka_unit_test(test_range_orders_static_members_first),
        cmocka_unit_test(test_roundrobin_matches_kafka_example),
        cmocka_unit_test(test_roundrobin_orders_static_members_first),
        cmocka_unit_test(test_roundrobin_skips_unsubscribed_members_like_kafka),
        cmocka_unit_test(test_assignors_handle_empty_groups_and_topics),
        cmocka_unit_test(test_sticky_moves_only_the_leavers_partitions),
        cmocka_unit_test(test_sticky_join_moves_the_minimum),
        cmocka_unit_test(test_sticky_rebalances_lopsided_ownership_minimally),
        cmocka_unit_test(test_sticky_resolves_conflicting_claims_by_generation),
        cmocka_unit_test(test_sticky_keeps_the_newer_claim_over_a_stale_one),
        cmocka_unit_test(test_cooperative_revokes_first_then_completes),
        cmocka_unit_test(test_cooperative_withholds_contested_partitions),
        cmocka_unit_test(test_cooperative_gives_a_leavers_partitions_at_once),
        cmocka_unit_test(test_random_groups_are_valid_balanced_and_deterministic),
        cmocka_unit_test(test_assign_fails_cleanly_without_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
