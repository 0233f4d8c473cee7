/* assign.c - the assignment output builder, the checker every assignment passes through
 * (assign_run) and the table of built-in assignors.
 *
 * DESIGN
 * An output is one growable array of topic-partitions per member; topic strings are
 * borrowed from the assignor's input, never copied, so an output must not outlive the
 * input it was built from. assign_run() owns the output's lifecycle: it initialises `out`
 * (caller's memory, not yet initialised), runs the assignor and checks the result. On
 * success the caller owns the filled output and calls assign_output_release(); on any
 * failure the output has already been released (releasing it again is harmless).
 *
 * The check does not trust the assignor, which may be a user's callback: every assigned
 * partition must exist in the input, go to a member subscribed to its topic and be assigned
 * once. Every partition of every topic with at least one subscriber must be assigned (a
 * topic nobody subscribes to cannot be). A cooperative assignor may withhold a partition
 * only when some member currently owns it, and may not give a partition to one member
 * while another still owns it: it must be revoked first (Kafka's consumers enforce the
 * same rule). "Owns" follows Kafka's rule for conflicting claims: the claim from the
 * highest generation wins; two members claiming it in that same generation both own it.
 * The check also enforces the input's documented order (members by member_id, topics by
 * name, each strictly increasing) because the built-ins' determinism relies on it.
 */
#include "assign.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ------------------------------------------------------------------ output builder */

int assign_output_init(shoal_assign_output_t *out, size_t member_count)
{
    out->member_count = 0;
    out->members = NULL;
    if (member_count == 0)
        return 0;
    out->members = shoal__calloc(member_count, sizeof(*out->members));
    if (!out->members)
        return -ENOMEM;
    out->member_count = member_count;
    return 0;
}

void assign_output_release(shoal_assign_output_t *out)
{
    for (size_t i = 0; i < out->member_count; i++)
        shoal__free(out->members[i].tps);
    shoal__free(out->members);
    out->members = NULL;
    out->member_count = 0;
}

int shoal_assign_output_add(shoal_assign_output_t *out, size_t member_index, const char *topic,
                            int32_t partition)
{
    shoal__clear_err();
    if (!out || !topic)
        return SHOAL_ERR(SHOAL_EINVAL, "shoal_assign_output_add: NULL output or topic");
    if (member_index >= out->member_count)
        return SHOAL_ERR(SHOAL_EINVAL, "shoal_assign_output_add: member index %zu of %zu",
                         member_index, out->member_count);
    struct assign_member_out *m = &out->members[member_index];
    if (m->n == m->cap) {
        /* Doubling keeps the total copying linear in the number of partitions. */
        size_t cap = m->cap ? 2 * m->cap : 8;
        shoal_topic_partition_t *tps = shoal__realloc(m->tps, cap * sizeof(*tps));
        if (!tps)
            return -ENOMEM;
        m->tps = tps;
        m->cap = cap;
    }
    m->tps[m->n].topic = topic;
    m->tps[m->n].partition = partition;
    m->n++;
    return 0;
}

/* ------------------------------------------------------------------ input order */

static int check_input_order(const shoal_assign_input_t *in)
{
    for (size_t i = 0; i < in->member_count; i++) {
        const char *id = in->members[i].member_id;
        if (!id)
            return SHOAL_ERR(SHOAL_EINVAL, "assign: member %zu has no member_id", i);
        if (i > 0 && strcmp(in->members[i - 1].member_id, id) >= 0)
            return SHOAL_ERR(SHOAL_EINVAL, "assign: members not sorted by member_id at \"%s\"", id);
    }
    for (size_t t = 0; t < in->topic_count; t++) {
        const char *name = in->topics[t].topic;
        if (!name)
            return SHOAL_ERR(SHOAL_EINVAL, "assign: topic %zu has no name", t);
        if (t > 0 && strcmp(in->topics[t - 1].topic, name) >= 0)
            return SHOAL_ERR(SHOAL_EINVAL, "assign: topics not sorted at \"%s\"", name);
    }
    return 0;
}

/* ------------------------------------------------------------------ the check */

/* Per partition of the input, flattened: topic t's partition p is at base[t] + p. */
struct check {
    const shoal_assign_input_t *in;
    size_t *base;       /* topic_count + 1 prefix sums */
    int64_t *assigned;  /* member index, or -1 */
    int64_t *owner;     /* a member owning it at owner_gen, or -1 */
    int64_t *owner_gen; /* generation of the winning claim */
    bool *contested;    /* two members claim it in owner_gen */
    bool *subscribed;   /* whether topic t has any subscriber */
};

static void check_release(struct check *c)
{
    shoal__free(c->base);
    shoal__free(c->assigned);
    shoal__free(c->owner);
    shoal__free(c->owner_gen);
    shoal__free(c->contested);
    shoal__free(c->subscribed);
}

/* Index of topic name in the sorted input topics, or -1. */
static int64_t topic_find(const shoal_assign_input_t *in, const char *name)
{
    size_t lo = 0, hi = in->topic_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(in->topics[mid].topic, name);
        if (cmp == 0)
            return (int64_t)mid;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

bool assign_member_subscribes(const shoal_assign_member_t *m, const char *topic)
{
    for (size_t i = 0; i < m->topic_count; i++)
        if (m->topics[i] && strcmp(m->topics[i], topic) == 0)
            return true;
    return false;
}

static int member_order_cmp(const void *a, const void *b, void *members)
{
    const shoal_assign_member_t *ms = members;
    const shoal_assign_member_t *x = &ms[*(const size_t *)a];
    const shoal_assign_member_t *y = &ms[*(const size_t *)b];
    if (x->group_instance_id && y->group_instance_id) {
        int cmp = strcmp(x->group_instance_id, y->group_instance_id);
        if (cmp != 0)
            return cmp;
    } else if (x->group_instance_id || y->group_instance_id) {
        return x->group_instance_id ? -1 : 1;
    }
    return strcmp(x->member_id, y->member_id);
}

size_t *assign_member_order(const shoal_assign_input_t *in)
{
    size_t *order = shoal__calloc(in->member_count + 1, sizeof(*order));
    if (!order)
        return NULL;
    for (size_t k = 0; k < in->member_count; k++)
        order[k] = k;
    qsort_r(order, in->member_count, sizeof(*order), member_order_cmp, (void *)in->members);
    return order;
}

static int check_alloc(struct check *c, const shoal_assign_input_t *in)
{
    size_t np = 0, nt = in->topic_count;
    memset(c, 0, sizeof(*c));
    c->in = in;
    c->base = shoal__calloc(nt + 1, sizeof(*c->base));
    if (!c->base)
        return -ENOMEM;
    for (size_t t = 0; t < nt; t++) {
        c->base[t] = np;
        np += in->topics[t].partitions;
    }
    c->base[nt] = np;
    /* +1: calloc(0) may return NULL, which must not read as a failure. */
    c->assigned = shoal__calloc(np + 1, sizeof(*c->assigned));
    c->owner = c->assigned ? shoal__calloc(np + 1, sizeof(*c->owner)) : NULL;
    c->owner_gen = c->owner ? shoal__calloc(np + 1, sizeof(*c->owner_gen)) : NULL;
    c->contested = c->owner_gen ? shoal__calloc(np + 1, sizeof(*c->contested)) : NULL;
    c->subscribed = c->contested ? shoal__calloc(nt + 1, sizeof(*c->subscribed)) : NULL;
    if (!c->subscribed)
        return -ENOMEM;
    for (size_t p = 0; p < np; p++)
        c->assigned[p] = c->owner[p] = -1;
    return 0;
}

/* Flattened index of (topic, partition), or -1 when the input has no such partition. */
static int64_t check_partition(const struct check *c, const char *topic, int32_t partition)
{
    int64_t t = topic_find(c->in, topic);
    if (t < 0 || partition < 0 || (uint32_t)partition >= c->in->topics[t].partitions)
        return -1;
    return (int64_t)(c->base[t] + (size_t)partition);
}

/* Resolve every member's claims: the highest generation wins, a tie makes it contested. */
static void check_claims(struct check *c)
{
    for (size_t i = 0; i < c->in->member_count; i++) {
        const shoal_assign_member_t *m = &c->in->members[i];
        for (size_t k = 0; k < m->owned_count; k++) {
            if (!m->owned[k].topic)
                continue;
            int64_t p = check_partition(c, m->owned[k].topic, m->owned[k].partition);
            if (p < 0 || c->owner[p] == (int64_t)i)
                continue;
            if (c->owner[p] < 0 || m->generation > c->owner_gen[p]) {
                c->owner[p] = (int64_t)i;
                c->owner_gen[p] = m->generation;
                c->contested[p] = false;
            } else if (m->generation == c->owner_gen[p]) {
                c->contested[p] = true;
            }
        }
    }
}

static void check_subscribers(struct check *c)
{
    for (size_t i = 0; i < c->in->member_count; i++) {
        const shoal_assign_member_t *m = &c->in->members[i];
        for (size_t k = 0; k < m->topic_count; k++) {
            int64_t t = m->topics[k] ? topic_find(c->in, m->topics[k]) : -1;
            if (t >= 0)
                c->subscribed[t] = true;
        }
    }
}

static int check_one(struct check *c, bool cooperative, size_t i, const shoal_topic_partition_t *tp)
{
    const shoal_assign_member_t *m = &c->in->members[i];
    const char *topic = tp->topic ? tp->topic : "(null)";
    int64_t p = tp->topic ? check_partition(c, tp->topic, tp->partition) : -1;
    if (p < 0)
        return SHOAL_ERR(SHOAL_EINVAL, "assign: %s got %s-%d, not a partition of the input",
                         m->member_id, topic, tp->partition);
    if (!assign_member_subscribes(m, tp->topic))
        return SHOAL_ERR(SHOAL_EINVAL, "assign: %s got %s-%d but does not subscribe to %s",
                         m->member_id, topic, tp->partition, topic);
    if (c->assigned[p] >= 0)
        return SHOAL_ERR(SHOAL_EINVAL, "assign: %s-%d given to both %s and %s", topic,
                         tp->partition, c->in->members[c->assigned[p]].member_id, m->member_id);
    c->assigned[p] = (int64_t)i;
    if (cooperative && c->owner[p] >= 0 && (c->owner[p] != (int64_t)i || c->contested[p])) {
        const char *who =
            c->owner[p] != (int64_t)i ? c->in->members[c->owner[p]].member_id : "another member";
        return SHOAL_ERR(SHOAL_EINVAL,
                         "assign: cooperative: %s-%d given to %s while %s still owns it", topic,
                         tp->partition, m->member_id, who);
    }
    return 0;
}

static int check_unassigned(const struct check *c, bool cooperative)
{
    for (size_t t = 0; t < c->in->topic_count; t++) {
        if (!c->subscribed[t])
            continue;
        for (size_t p = c->base[t]; p < c->base[t + 1]; p++) {
            if (c->assigned[p] >= 0 || (cooperative && c->owner[p] >= 0))
                continue;
            return SHOAL_ERR(SHOAL_EINVAL, "assign: %s-%zu %s", c->in->topics[t].topic,
                             p - c->base[t],
                             cooperative ? "withheld but owned by no member" : "not assigned");
        }
    }
    return 0;
}

static int check_output(const shoal_assign_input_t *in, bool cooperative,
                        const shoal_assign_output_t *out)
{
    struct check c;
    int rc = check_alloc(&c, in);
    if (rc < 0)
        goto out_release;
    check_claims(&c);
    check_subscribers(&c);
    for (size_t i = 0; i < out->member_count && rc == 0; i++)
        for (size_t k = 0; k < out->members[i].n && rc == 0; k++)
            rc = check_one(&c, cooperative, i, &out->members[i].tps[k]);
    if (rc == 0)
        rc = check_unassigned(&c, cooperative);
out_release:
    check_release(&c);
    return rc;
}

int assign_run(const shoal_assignor_t *a, const shoal_assign_input_t *in,
               shoal_assign_output_t *out)
{
    if (out) {
        out->member_count = 0;
        out->members = NULL;
    }
    if (!a || !a->assign || !in || !out || (in->member_count && !in->members) ||
        (in->topic_count && !in->topics))
        return SHOAL_ERR(SHOAL_EINVAL, "assign_run: NULL assignor, input or output");
    int rc = check_input_order(in);
    if (rc < 0)
        return rc;
    rc = assign_output_init(out, in->member_count);
    if (rc < 0)
        return rc;
    rc = a->assign(a->arg, in, out);
    if (rc > 0)
        rc =
            SHOAL_ERR(SHOAL_EINVAL, "assign: assignor %s returned %d", a->name ? a->name : "?", rc);
    if (rc == 0)
        rc = check_output(in, a->cooperative, out);
    if (rc < 0)
        assign_output_release(out);
    return rc;
}

/* ------------------------------------------------------------------ built-ins */

static const shoal_assignor_t builtin_assignors[] = {
    {.name = "range", .cooperative = false, .assign = assign_range},
    {.name = "roundrobin", .cooperative = false, .assign = assign_roundrobin},
    {.name = "sticky", .cooperative = false, .assign = assign_sticky},
    {.name = "cooperative-sticky", .cooperative = true, .assign = assign_cooperative_sticky},
};

const shoal_assignor_t *shoal_assignor_builtin(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(builtin_assignors); i++)
        if (strcmp(builtin_assignors[i].name, name) == 0)
            return &builtin_assignors[i];
    return NULL;
}
