/* assign_sticky.c - Kafka's StickyAssignor ("sticky") and CooperativeStickyAssignor
 * ("cooperative-sticky").
 *
 * DESIGN
 * The goal is Kafka's: an assignment as balanced as the subscriptions allow that keeps as
 * many partitions as possible with their current owners. It is computed in three steps
 * over a flat array of every partition of the input (topic t's partition p at
 * base[t] + p), each step deterministic (members are visited in input order, that is by
 * member_id):
 *
 * 1. Keep. Each partition stays with its current owner if that owner still subscribes to
 *    its topic. Conflicting claims follow Kafka's rule: the claim from the highest
 *    generation wins; two members claiming a partition in that same generation both lose
 *    it (neither claim can be trusted), and stale lower-generation claims are ignored.
 * 2. Fill. Unowned partitions go, topic by topic (topics with the fewest subscribers
 *    first, since they have the fewest choices), each to the subscribed member holding
 *    the fewest partitions, the first such member on a tie.
 * 3. Balance. While some member X holds at least two more partitions than a member Y that
 *    X can reach, move along the shortest chain X -> ... -> Y, where each hop gives one
 *    partition of a topic the next member subscribes to. Every member on the chain but the
 *    ends keeps its count, X loses one and Y gains one, so the sum of squared counts falls
 *    and the loop ends. When no such chain exists from any member the counts are as
 *    balanced as the subscriptions allow (the optimality condition of this convex
 *    transport problem). Chains are searched on a member-by-topic count matrix, because
 *    partitions of one topic are interchangeable for reachability; the partition that
 *    moves is one its holder did not keep in step 1 when there is one, so kept
 *    partitions move last. The first source tried is the fullest member and the first
 *    target the emptiest nearest one: with identical subscriptions a member that gained
 *    then never loses, so the number of moved partitions is the minimum balance needs.
 *
 * The cooperative variant computes the same target, then withholds every partition whose
 * target differs from its current owner (or that two members claim): that owner must
 * revoke it first, and the next rebalance, with the owner's claim gone, hands it over.
 * Cost: one chain search is O(members * topics); the balance step makes one per move,
 * plus one per member to confirm that nothing can move any more.
 */
#include "assign.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define STICKY_UNSEEN SIZE_MAX

struct sticky {
    const shoal_assign_input_t *in;
    size_t nm, nt, np;
    size_t *base;        /* nt + 1 prefix sums of partition counts */
    bool *sub;           /* nm x nt: member m subscribes to topic t (input topics only) */
    size_t *subscribers; /* nt: how many members subscribe to t */
    int64_t *owner;      /* np: member owning it at owner_gen, or -1 */
    int64_t *owner_gen;  /* np */
    bool *contested;     /* np: two members claim it in owner_gen */
    int64_t *target;     /* np: member it is assigned to, or -1 */
    size_t *count;       /* nm: partitions per member in target */
    size_t *hold;        /* nm x nt: partitions of topic t per member in target */
    size_t *order;       /* nm or nt: scratch for orderings */
    size_t *dist;        /* nm: BFS distance from the source, STICKY_UNSEEN */
    size_t *prev;        /* nm: previous member on the chain */
    size_t *via;         /* nm: topic of the hop from prev */
    size_t *queue;       /* nm */
    bool *expanded;      /* nt: BFS already reached every subscriber of t */
};

/* ------------------------------------------------------------------ setup */

static void sticky_release(struct sticky *s)
{
    void *arrays[] = {s->base,      s->sub,    s->subscribers, s->owner, s->owner_gen,
                      s->contested, s->target, s->count,       s->hold,  s->order,
                      s->dist,      s->prev,   s->via,         s->queue, s->expanded};
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(arrays); i++)
        shoal__free(arrays[i]);
}

/* calloc that never asks for zero bytes, whose NULL would read as a failure. */
static void *sticky_calloc(size_t n, size_t size)
{
    return shoal__calloc(n + 1, size);
}

static int sticky_alloc(struct sticky *s)
{
    size_t nm = s->nm, nt = s->nt, np = s->np, order = SHOAL_MAX(nm, nt);
    s->sub = sticky_calloc(nm * nt, sizeof(*s->sub));
    s->subscribers = sticky_calloc(nt, sizeof(*s->subscribers));
    s->owner = sticky_calloc(np, sizeof(*s->owner));
    s->owner_gen = sticky_calloc(np, sizeof(*s->owner_gen));
    s->contested = sticky_calloc(np, sizeof(*s->contested));
    s->target = sticky_calloc(np, sizeof(*s->target));
    s->count = sticky_calloc(nm, sizeof(*s->count));
    s->hold = sticky_calloc(nm * nt, sizeof(*s->hold));
    s->order = sticky_calloc(order, sizeof(*s->order));
    s->dist = sticky_calloc(nm, sizeof(*s->dist));
    s->prev = sticky_calloc(nm, sizeof(*s->prev));
    s->via = sticky_calloc(nm, sizeof(*s->via));
    s->queue = sticky_calloc(nm, sizeof(*s->queue));
    s->expanded = sticky_calloc(nt, sizeof(*s->expanded));
    if (!s->sub || !s->subscribers || !s->owner || !s->owner_gen || !s->contested || !s->target ||
        !s->count || !s->hold || !s->order || !s->dist || !s->prev || !s->via || !s->queue ||
        !s->expanded)
        return -ENOMEM;
    for (size_t p = 0; p < np; p++)
        s->owner[p] = s->target[p] = -1;
    return 0;
}

/* Index of topic name in the sorted input topics, or -1. */
static int64_t sticky_topic_find(const shoal_assign_input_t *in, const char *name)
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

static void sticky_subscriptions(struct sticky *s)
{
    for (size_t m = 0; m < s->nm; m++) {
        const shoal_assign_member_t *mb = &s->in->members[m];
        for (size_t k = 0; k < mb->topic_count; k++) {
            int64_t t = mb->topics[k] ? sticky_topic_find(s->in, mb->topics[k]) : -1;
            if (t < 0 || s->sub[m * s->nt + (size_t)t])
                continue;
            s->sub[m * s->nt + (size_t)t] = true;
            s->subscribers[t]++;
        }
    }
}

/* The claims on each partition: highest generation wins, a tie there contests it. */
static void sticky_claims(struct sticky *s)
{
    for (size_t m = 0; m < s->nm; m++) {
        const shoal_assign_member_t *mb = &s->in->members[m];
        for (size_t k = 0; k < mb->owned_count; k++) {
            const shoal_topic_partition_t *tp = &mb->owned[k];
            int64_t t = tp->topic ? sticky_topic_find(s->in, tp->topic) : -1;
            if (t < 0 || tp->partition < 0 ||
                (uint32_t)tp->partition >= s->in->topics[t].partitions)
                continue;
            size_t p = s->base[t] + (size_t)tp->partition;
            if (s->owner[p] == (int64_t)m)
                continue;
            if (s->owner[p] < 0 || mb->generation > s->owner_gen[p]) {
                s->owner[p] = (int64_t)m;
                s->owner_gen[p] = mb->generation;
                s->contested[p] = false;
            } else if (mb->generation == s->owner_gen[p]) {
                s->contested[p] = true;
            }
        }
    }
}

static int sticky_init(struct sticky *s, const shoal_assign_input_t *in)
{
    memset(s, 0, sizeof(*s));
    s->in = in;
    s->nm = in->member_count;
    s->nt = in->topic_count;
    s->base = sticky_calloc(s->nt + 1, sizeof(*s->base));
    if (!s->base)
        return -ENOMEM;
    for (size_t t = 0; t < s->nt; t++) {
        s->base[t] = s->np;
        s->np += in->topics[t].partitions;
    }
    s->base[s->nt] = s->np;
    int rc = sticky_alloc(s);
    if (rc < 0)
        return rc;
    sticky_subscriptions(s);
    sticky_claims(s);
    return 0;
}

/* ------------------------------------------------------------------ keep and fill */

static void sticky_give(struct sticky *s, size_t p, size_t t, size_t m)
{
    if (s->target[p] >= 0) {
        size_t from = (size_t)s->target[p];
        s->count[from]--;
        s->hold[from * s->nt + t]--;
    }
    s->target[p] = (int64_t)m;
    s->count[m]++;
    s->hold[m * s->nt + t]++;
}

/* Whether member m keeps partition p from its current ownership. */
static bool sticky_owned_by(const struct sticky *s, size_t p, size_t m)
{
    return s->owner[p] == (int64_t)m && !s->contested[p];
}

static void sticky_keep(struct sticky *s)
{
    for (size_t t = 0; t < s->nt; t++) {
        for (size_t p = s->base[t]; p < s->base[t + 1]; p++) {
            int64_t o = s->owner[p];
            if (o >= 0 && !s->contested[p] && s->sub[(size_t)o * s->nt + t])
                sticky_give(s, p, t, (size_t)o);
        }
    }
}

/* Topics by subscriber count, fewest first, then by name (qsort_r; arg: the sticky). */
static int sticky_topic_cmp(const void *a, const void *b, void *arg)
{
    const struct sticky *s = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    if (s->subscribers[x] != s->subscribers[y])
        return s->subscribers[x] < s->subscribers[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static size_t sticky_emptiest(const struct sticky *s, size_t t)
{
    size_t best = STICKY_UNSEEN;
    for (size_t m = 0; m < s->nm; m++)
        if (s->sub[m * s->nt + t] && (best == STICKY_UNSEEN || s->count[m] < s->count[best]))
            best = m;
    return best;
}

static void sticky_fill(struct sticky *s)
{
    for (size_t t = 0; t < s->nt; t++)
        s->order[t] = t;
    qsort_r(s->order, s->nt, sizeof(*s->order), sticky_topic_cmp, s);
    for (size_t k = 0; k < s->nt; k++) {
        size_t t = s->order[k];
        if (s->subscribers[t] == 0)
            continue;
        for (size_t p = s->base[t]; p < s->base[t + 1]; p++)
            if (s->target[p] < 0)
                sticky_give(s, p, t, sticky_emptiest(s, t));
    }
}

/* ------------------------------------------------------------------ balance */

/* Breadth-first search from src over "holds a partition the next member could take".
 * A topic is expanded once, by its first holder reached (the nearest), so one search
 * costs O(members * topics). It stops after the level where the first member that could
 * take a partition from src was found: every member of that level is then known. */
static void sticky_bfs(struct sticky *s, size_t src)
{
    size_t head = 0, tail = 0, found = STICKY_UNSEEN;
    for (size_t m = 0; m < s->nm; m++)
        s->dist[m] = STICKY_UNSEEN;
    memset(s->expanded, 0, s->nt * sizeof(*s->expanded));
    s->dist[src] = 0;
    s->queue[tail++] = src;
    while (head < tail && s->dist[s->queue[head]] < found) {
        size_t x = s->queue[head++];
        for (size_t t = 0; t < s->nt; t++) {
            if (s->hold[x * s->nt + t] == 0 || s->expanded[t])
                continue;
            s->expanded[t] = true;
            for (size_t y = 0; y < s->nm; y++) {
                if (!s->sub[y * s->nt + t] || s->dist[y] != STICKY_UNSEEN)
                    continue;
                s->dist[y] = s->dist[x] + 1;
                s->prev[y] = x;
                s->via[y] = t;
                s->queue[tail++] = y;
                if (s->count[y] + 2 <= s->count[src] && found == STICKY_UNSEEN)
                    found = s->dist[y];
            }
        }
    }
}

/* The nearest member holding at least two fewer than src, the emptiest on a tie; or
 * STICKY_UNSEEN. Call after sticky_bfs(s, src). */
static size_t sticky_pick_target(const struct sticky *s, size_t src)
{
    size_t best = STICKY_UNSEEN;
    for (size_t y = 0; y < s->nm; y++) {
        if (s->dist[y] == STICKY_UNSEEN || s->count[y] + 2 > s->count[src])
            continue;
        if (best == STICKY_UNSEEN || s->dist[y] < s->dist[best] ||
            (s->dist[y] == s->dist[best] && s->count[y] < s->count[best]))
            best = y;
    }
    return best;
}

/* The partition of topic t that member x gives up: one it did not keep from its own
 * ownership if possible, else its highest-numbered. */
static size_t sticky_pick_partition(const struct sticky *s, size_t x, size_t t)
{
    size_t kept = STICKY_UNSEEN;
    for (size_t p = s->base[t + 1]; p-- > s->base[t];) {
        if (s->target[p] != (int64_t)x)
            continue;
        if (!sticky_owned_by(s, p, x))
            return p;
        if (kept == STICKY_UNSEEN)
            kept = p;
    }
    return kept;
}

static void sticky_shift_chain(struct sticky *s, size_t src, size_t dst)
{
    for (size_t y = dst; y != src; y = s->prev[y]) {
        size_t x = s->prev[y], t = s->via[y];
        size_t p = sticky_pick_partition(s, x, t);
        if (p == STICKY_UNSEEN)
            return; /* cannot happen: the search only crosses x -> y when x holds one */
        sticky_give(s, p, t, y);
    }
}

/* Members by count, fullest first, then by index (qsort_r; arg: the sticky). */
static int sticky_fullest_cmp(const void *a, const void *b, void *arg)
{
    const struct sticky *s = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    if (s->count[x] != s->count[y])
        return s->count[x] > s->count[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* One chain move from the fullest member that has one; false when balanced. */
static bool sticky_balance_step(struct sticky *s)
{
    for (size_t m = 0; m < s->nm; m++)
        s->order[m] = m;
    qsort_r(s->order, s->nm, sizeof(*s->order), sticky_fullest_cmp, s);
    size_t emptiest = s->nm ? s->count[s->order[s->nm - 1]] : 0;
    for (size_t k = 0; k < s->nm; k++) {
        size_t src = s->order[k];
        if (s->count[src] < emptiest + 2)
            break;
        sticky_bfs(s, src);
        size_t dst = sticky_pick_target(s, src);
        if (dst != STICKY_UNSEEN) {
            sticky_shift_chain(s, src, dst);
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------ output */

static int sticky_emit(const struct sticky *s, bool cooperative, shoal_assign_output_t *out)
{
    for (size_t t = 0; t < s->nt; t++) {
        for (size_t p = s->base[t]; p < s->base[t + 1]; p++) {
            int64_t m = s->target[p];
            if (m < 0)
                continue;
            if (cooperative && s->owner[p] >= 0 && (s->contested[p] || s->owner[p] != m))
                continue; /* its owner revokes it first */
            int rc = shoal_assign_output_add(out, (size_t)m, s->in->topics[t].topic,
                                             (int32_t)(p - s->base[t]));
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int sticky_run(const shoal_assign_input_t *in, bool cooperative, shoal_assign_output_t *out)
{
    struct sticky s;
    int rc = sticky_init(&s, in);
    if (rc < 0)
        goto out_release;
    sticky_keep(&s);
    sticky_fill(&s);
    while (sticky_balance_step(&s))
        ;
    rc = sticky_emit(&s, cooperative, out);
out_release:
    sticky_release(&s);
    return rc;
}

int assign_sticky(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out)
{
    (void)arg;
    return sticky_run(in, false, out);
}

int assign_cooperative_sticky(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out)
{
    (void)arg;
    return sticky_run(in, true, out);
}
