/* group.c - the consumer group coordinator: Kafka's group protocol inside shoald.
 *
 * DESIGN: everything here runs on the server's single epoll thread, so no locks. A group
 * moves through Kafka's states:
 *
 *   Empty --join--> PreparingRebalance --all members joined, or deadline--> Completing-
 *   Rebalance --leader's SyncGroup--> Stable --join/leave/death/timeout/partitions-->
 *   PreparingRebalance ...
 *
 * JoinGroup and SyncGroup never block the loop: the request is parked (its connection id
 * and sequence number kept in the member) and answered with server_reply() when the phase
 * ends. Members learn that a rebalance started from their next heartbeat
 * (SHOAL_EREBALANCE). Each completed join phase starts a new generation; commits, fetches,
 * heartbeats and syncs carrying another generation, or an unknown member id, are refused
 * with SHOAL_EGENERATION, which fences zombies. The leader (the previous leader while it
 * stays, else the oldest member) gets every member's subscription and owned partitions plus
 * the topics' partition counts and computes the assignment on the client side. A member
 * that joins again while its generation completes, with nothing changed (a leader whose
 * assignor failed, retrying), gets the same generation back; a leader that sends no valid
 * assignment by the phase's deadline (the rebalance timeout) is removed, and the oldest
 * member leads the next round, so a broken assignor cannot hold the others for longer.
 *
 * Liveness: a member's control connection is its liveness. When it closes, a dynamic
 * member leaves at once; a static member (group instance id) stays until its session
 * timeout, so a restarted process with the same instance id takes its place and gets the
 * same partitions without a rebalance. Heartbeats come from the member's poll loop, so
 * "last heard" is also "last polled": a member silent for its session timeout, or for its
 * max poll interval (the rebalance timeout), is removed and its partitions move.
 *
 * Commits: a commit is checked (member, generation, ownership), queued and parked; after
 * each pass of the server loop group_tick() writes every queued offset in one LMDB
 * transaction and only then answers, so a burst of commits costs one fsync and a commit
 * that returned is durable. Offsets live in LMDB only (store.c); group membership is not
 * persisted: after a daemon restart members rejoin and resume from the committed offsets. */
#include "group.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "pattern.h"
#include "util.h"

#define GROUP_MEMBER_ID_MAX  127
#define GROUP_ASSIGNOR_MAX   63
#define GROUP_LIST_MAX       65536 /* topics, assignors, partitions in one message */
#define GROUP_PARTS_CHECK_NS (200 * 1000000LL)
#define GROUP_EXPIRE_MAX     64 /* groups an expiry pass deletes at most */
/* the expiry settings are read again at least this often (a reload may change them) */
#define GROUP_EXPIRE_LOOK_NS (1000 * 1000000LL)

enum group_state { GS_EMPTY, GS_PREPARING, GS_COMPLETING, GS_STABLE };

static const char *const state_names[] = {"Empty", "PreparingRebalance", "CompletingRebalance",
                                          "Stable"};

typedef char gname_t[SHOAL_TOPIC_NAME_MAX + 1];

struct gtp {
    gname_t topic;
    int32_t partition;
    uint64_t incarnation; /* the topic's when assigned (stamp_incarnations); 0: unchecked */
};

/* A subscribed topic as the current generation was assigned it. */
struct gmeta {
    gname_t topic;
    uint32_t partitions;
    uint64_t incarnation;
};

struct gmember {
    char id[GROUP_MEMBER_ID_MAX + 1];
    uint64_t seq; /* order of joining the group: the oldest member leads a new leader's round */
    char client_id[GROUP_MEMBER_ID_MAX + 1];
    gname_t instance_id;
    char replaced[GROUP_MEMBER_ID_MAX + 1]; /* the id a static member took over from */
    pid_t pid;
    uint64_t conn_id; /* 0: the process is gone (static member awaiting its return) */
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    int32_t heartbeat_ms; /* its heartbeat interval, when its join said (else 0) */
    gname_t *topics;      /* the subscription; a pattern's matches as of snapshot_topics() */
    size_t ntopics;
    char pattern[SHOAL_TOPIC_PATTERN_MAX + 1]; /* a pattern subscription ("": none) */
    shoal_pattern_t *re;                       /* the pattern, compiled */
    uint64_t matched_at; /* broker registry_changes when it matched topics, 0: not yet */
    char (*assignors)[GROUP_ASSIGNOR_MAX + 1];
    size_t nassignors;
    struct gtp *owned;
    size_t nowned;
    int32_t owned_generation;
    struct gtp *assigned; /* by the last generation that reached its sync */
    size_t nassigned;
    struct gtp *before; /* assigned by the sync before that, kept for member_gives_up() */
    size_t nbefore;
    int64_t last_seen_ns;
    bool join_parked;
    server_req_t join_req;
    bool sync_parked;
    server_req_t sync_req;
};

struct group {
    gname_t id;
    enum group_state state;
    int32_t generation;
    int32_t synced_generation; /* the last one the leader's sync assigned */
    char protocol[GROUP_ASSIGNOR_MAX + 1];
    char leader[GROUP_MEMBER_ID_MAX + 1];
    struct gmember **members;
    size_t nmembers;
    int64_t deadline_ns; /* end of the current join or sync phase */
    struct gmeta *meta;  /* the topics the current generation was assigned, by name */
    size_t nmeta;
    int64_t parts_checked_ns;
    int64_t active_ms; /* wall clock when it was last seen with members (expiry) */
    bool emptied;      /* new, or its last member went: group_tick() may forget it */
};

struct pending_commit {
    server_req_t req;
    size_t first, n; /* entries in gc->offs */
    int status;      /* 0, or why it was refused: answered in turn behind its connection's */
    char *detail;    /* with status: the refusal's detail */
};

struct group_coord {
    server_t *s;
    broker_t *b;
    struct group **groups;
    size_t ngroups;
    uint64_t member_seq;
    /* commits waiting for the next group_tick() */
    store_offset_t *offs;
    char **off_strs; /* group and topic copies, two per entry */
    size_t noffs, offs_cap;
    struct pending_commit *commits;
    size_t ncommits, commits_cap;
    ctl_writer_t w;         /* bodies of parked responses */
    int64_t tick_due_ns;    /* when group_tick() asked to run next; 0 when it did not */
    int64_t started_ms;     /* wall clock at start: the daemon's run counts as activity */
    int64_t expiry_last_ns; /* when groups were last looked at for expiry */
    int64_t expiry_look_ns; /* when the settings are read again (a reload changes them) */
    bool expiry_more;       /* the last pass stopped at GROUP_EXPIRE_MAX */
};

/* ------------------------------------------------------------------ helpers */

static bool name_ok(const char *s)
{
    return shoal_topic_name_is_valid(s);
}

static int check_group_id(const char *id)
{
    if (!name_ok(id))
        return SHOAL_ERR(SHOAL_EGROUPID, "invalid group id '%.260s'", id);
    return 0;
}

/* A request that does not parse: which, and what was wrong when the reader knows. */
static int malformed(const ctl_reader_t *r, const char *what)
{
    if (r->why[0])
        return SHOAL_ERR(SHOAL_EPROTO, "malformed %s request: %s", what, r->why);
    return SHOAL_ERR(SHOAL_EPROTO, "malformed %s request", what);
}

static int finish(ctl_reader_t *r, const char *what)
{
    return ctl_reader_finish(r) < 0 ? malformed(r, what) : 0;
}

/* Bytes left in a request: bounds list lengths before anything is allocated for them. */
static size_t left(const ctl_reader_t *r)
{
    return (size_t)(r->end - r->p);
}

/* Read "u32 n, n x tp" into a fresh array. */
static int get_tps(ctl_reader_t *r, struct gtp **out, size_t *n)
{
    uint32_t count = ctl_get_u32(r);
    struct gtp *v;

    *out = NULL;
    *n = 0;
    if (r->err || count > GROUP_LIST_MAX || count > left(r) / 6) /* a tp takes >= 6 bytes */
        return SHOAL_EPROTO;
    if (count == 0)
        return 0;
    if (!(v = shoal__calloc(count, sizeof(*v))))
        return -ENOMEM;
    for (uint32_t i = 0; i < count; i++) {
        ctl_get_str(r, v[i].topic, sizeof(v[i].topic));
        v[i].partition = ctl_get_i32(r);
    }
    if (r->err) {
        shoal__free(v);
        return SHOAL_EPROTO;
    }
    *out = v;
    *n = count;
    return 0;
}

static void put_tps(ctl_writer_t *w, const struct gtp *v, size_t n)
{
    ctl_put_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        ctl_put_str(w, v[i].topic);
        ctl_put_i32(w, v[i].partition);
    }
}

static struct group *group_find(group_coord_t *gc, const char *id)
{
    for (size_t i = 0; i < gc->ngroups; i++)
        if (!strcmp(gc->groups[i]->id, id))
            return gc->groups[i];
    return NULL;
}

static struct gmember *member_find(struct group *g, const char *id)
{
    if (!id || !*id)
        return NULL;
    for (size_t i = 0; i < g->nmembers; i++)
        if (!strcmp(g->members[i]->id, id))
            return g->members[i];
    return NULL;
}

static struct gmember *member_find_instance(struct group *g, const char *instance)
{
    if (!instance || !*instance)
        return NULL;
    for (size_t i = 0; i < g->nmembers; i++)
        if (!strcmp(g->members[i]->instance_id, instance))
            return g->members[i];
    return NULL;
}

/* The static member that took over from member id (a process still running with the same
 * group_instance_id), or NULL. */
static struct gmember *member_replacing(struct group *g, const char *id)
{
    for (size_t i = 0; i < g->nmembers; i++)
        if (g->members[i]->replaced[0] && !strcmp(g->members[i]->replaced, id))
            return g->members[i];
    return NULL;
}

static int fenced(const struct group *g, const char *id, const struct gmember *by)
{
    return SHOAL_ERR(SHOAL_EFENCED,
                     "member %s of group %s is fenced: member %s (pid %d) joined with the same "
                     "group_instance_id '%s'",
                     id, g->id, by->id, (int)by->pid, by->instance_id);
}

static void member_drop_pattern(struct gmember *m)
{
    shoal__pattern_free(m->re);
    m->re = NULL;
    m->pattern[0] = '\0';
}

static void member_free(struct gmember *m)
{
    if (!m)
        return;
    member_drop_pattern(m);
    shoal__free(m->topics);
    shoal__free(m->assignors);
    shoal__free(m->owned);
    shoal__free(m->assigned);
    shoal__free(m->before);
    shoal__free(m);
}

static void group_free(struct group *g)
{
    for (size_t i = 0; i < g->nmembers; i++)
        member_free(g->members[i]);
    shoal__free(g->members);
    shoal__free(g->meta);
    shoal__free(g);
}

static struct group *group_get(group_coord_t *gc, const char *id)
{
    struct group *g = group_find(gc, id), **v;

    if (g)
        return g;
    if (!(g = shoal__calloc(1, sizeof(*g))))
        return NULL;
    v = shoal__realloc(gc->groups, (gc->ngroups + 1) * sizeof(*v));
    if (!v) {
        shoal__free(g);
        return NULL;
    }
    snprintf(g->id, sizeof(g->id), "%s", id);
    g->state = GS_EMPTY;
    g->synced_generation = -1;
    g->emptied = true;
    gc->groups = v;
    gc->groups[gc->ngroups++] = g;
    return g;
}

static void group_remove(group_coord_t *gc, struct group *g)
{
    for (size_t i = 0; i < gc->ngroups; i++)
        if (gc->groups[i] == g) {
            gc->groups[i] = gc->groups[--gc->ngroups];
            break;
        }
    group_free(g);
}

static bool member_subscribes(const struct gmember *m, const char *topic)
{
    for (size_t i = 0; i < m->ntopics; i++)
        if (!strcmp(m->topics[i], topic))
            return true;
    return false;
}

/* The entry for topic-p in list v of n, or NULL. */
static const struct gtp *tps_find(const struct gtp *v, size_t n, const char *topic, int32_t p)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].partition == p && !strcmp(v[i].topic, topic))
            return &v[i];
    return NULL;
}

static bool member_owns(const struct gmember *m, const char *topic, int32_t p)
{
    return tps_find(m->assigned, m->nassigned, topic, p) != NULL;
}

/* m's entry for topic-p in the assignment before its current one, if the current one gave
 * it to nobody: a cooperative assignor withholds a moving partition from its new owner
 * until m gives it up (the round after), and until then m may still commit it, as Kafka's
 * members do from on_revoked. What m was assigned is shoald's record, not what m says it
 * owns. NULL when it is not such a partition. */
static const struct gtp *member_gives_up(const struct group *g, const struct gmember *m,
                                         const char *topic, int32_t p)
{
    const struct gtp *was = tps_find(m->before, m->nbefore, topic, p);

    for (size_t i = 0; i < g->nmembers && was; i++)
        if (member_owns(g->members[i], topic, p))
            was = NULL;
    return was;
}

static bool member_supports(const struct gmember *m, const char *assignor)
{
    for (size_t i = 0; i < m->nassignors; i++)
        if (!strcmp(m->assignors[i], assignor))
            return true;
    return false;
}

/* The first assignor of first's list that every member (and extra, when not NULL)
 * supports, or NULL. */
static const char *common_assignor(struct group *g, const struct gmember *first,
                                   const struct gmember *extra)
{
    for (size_t k = 0; k < first->nassignors; k++) {
        bool all = !extra || member_supports(extra, first->assignors[k]);
        for (size_t i = 0; i < g->nmembers && all; i++)
            all = member_supports(g->members[i], first->assignors[k]);
        if (all)
            return first->assignors[k];
    }
    return NULL;
}

/* ------------------------------------------------------------------ rebalance */

static void complete_join(group_coord_t *gc, struct group *g);
static bool topics_changed(group_coord_t *gc, struct group *g);

static int64_t max_rebalance_ns(const struct group *g)
{
    int64_t ms = 0;
    for (size_t i = 0; i < g->nmembers; i++)
        ms = SHOAL_MAX(ms, (int64_t)g->members[i]->rebalance_timeout_ms);
    return ms * 1000000;
}

/* m's parked sync is being answered. The member waited for it, not silent: its session
 * runs from now (a cooperative member reads during the sync, and may be busy with those
 * records when the answer comes). */
static void sync_answered(struct gmember *m)
{
    m->sync_parked = false;
    m->last_seen_ns = shoal__mono_ns();
}

/* Start (or keep) a join phase: members learn of it from their next heartbeat. */
static void prepare_rebalance(group_coord_t *gc, struct group *g, const char *why)
{
    if (g->state == GS_COMPLETING)
        for (size_t i = 0; i < g->nmembers; i++) {
            struct gmember *m = g->members[i];
            if (m->sync_parked) {
                sync_answered(m);
                server_reply(gc->s, &m->sync_req, SHOAL_EREBALANCE,
                             "the group is rebalancing again: rejoin", NULL);
            }
        }
    if (g->state != GS_PREPARING) {
        log_info("group %s: rebalance (generation %d): %s", g->id, g->generation, why);
        g->state = GS_PREPARING;
        g->deadline_ns = shoal__mono_ns() + max_rebalance_ns(g);
    }
}

static void try_complete_join(group_coord_t *gc, struct group *g)
{
    if (g->state != GS_PREPARING)
        return;
    for (size_t i = 0; i < g->nmembers; i++)
        if (!g->members[i]->join_parked)
            return;
    complete_join(gc, g);
}

/* Remove a member (it left, died or timed out) and rebalance the others. */
static void member_remove(group_coord_t *gc, struct group *g, struct gmember *m, const char *why)
{
    log_info("group %s: member %s (pid %d) removed: %s", g->id, m->id, (int)m->pid, why);
    if (m->join_parked)
        server_reply(gc->s, &m->join_req, SHOAL_EGENERATION, why, NULL);
    if (m->sync_parked)
        server_reply(gc->s, &m->sync_req, SHOAL_EGENERATION, why, NULL);
    for (size_t i = 0; i < g->nmembers; i++)
        if (g->members[i] == m) {
            memmove(&g->members[i], &g->members[i + 1], (g->nmembers - i - 1) * sizeof(m));
            g->nmembers--;
            break;
        }
    if (!strcmp(g->leader, m->id))
        g->leader[0] = '\0';
    member_free(m);
    if (g->nmembers == 0) {
        g->state = GS_EMPTY;
        g->protocol[0] = '\0';
        g->leader[0] = '\0';
        g->emptied = true;
        return;
    }
    if (g->state == GS_PREPARING)
        try_complete_join(gc, g);
    else
        prepare_rebalance(gc, g, why);
}

/* Put the existing topics whose names match m's pattern, in name order, as its topics,
 * unless no topic came or went since the last time. With the broker's read lock held. A
 * change of them is a change of the existing topics, which the group's snapshot notices
 * too (topics_changed). */
static int match_pattern(broker_t *b, struct gmember *m)
{
    size_t n = 0, k = 0;
    gname_t *v;

    if (m->matched_at != 0 && m->matched_at == b->registry_changes)
        return 0;
    for (size_t i = 0; i < b->ntopics; i++)
        n += shoal__pattern_match(m->re, b->topics[i]->name);
    if (!(v = shoal__calloc(n ? n : 1, sizeof(*v))))
        return -ENOMEM;
    for (size_t i = 0; i < b->ntopics && k < n; i++)
        if (shoal__pattern_match(m->re, b->topics[i]->name))
            snprintf(v[k++], sizeof(gname_t), "%s", b->topics[i]->name);
    shoal__free(m->topics);
    m->topics = v;
    m->ntopics = k;
    m->matched_at = b->registry_changes;
    return 0;
}

/* Match the pattern members' patterns, then record every subscribed topic that exists, its
 * partition count and incarnation (for the leader, and for noticing added partitions or a
 * topic created again). Takes the broker's read lock. */
static int snapshot_topics(group_coord_t *gc, struct group *g)
{
    size_t cap = 0;
    struct gmeta *meta = NULL;
    size_t n = 0;
    int rc = 0;

    pthread_rwlock_rdlock(&gc->b->lock);
    for (size_t i = 0; i < g->nmembers && rc == 0; i++)
        if (g->members[i]->pattern[0])
            rc = match_pattern(gc->b, g->members[i]);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < g->nmembers; i++)
        cap += g->members[i]->ntopics;
    if (cap && !(meta = shoal__calloc(cap, sizeof(*meta)))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < g->nmembers; i++)
        for (size_t k = 0; k < g->members[i]->ntopics; k++) {
            const char *t = g->members[i]->topics[k];
            dtopic_t *dt = broker_find(gc->b, t);
            bool dup = false;
            for (size_t j = 0; j < n && !dup; j++)
                dup = !strcmp(meta[j].topic, t);
            if (dup || !dt)
                continue;
            /* insertion sort keeps the list in name order */
            size_t at = n;
            for (; at > 0 && strcmp(meta[at - 1].topic, t) > 0; at--)
                meta[at] = meta[at - 1];
            snprintf(meta[at].topic, sizeof(gname_t), "%s", t);
            meta[at].partitions = dt->cfg.partitions;
            meta[at].incarnation = dt->incarnation;
            n++;
        }
    shoal__free(g->meta);
    g->meta = meta;
    g->nmeta = n;
out:
    pthread_rwlock_unlock(&gc->b->lock);
    return rc;
}

static void put_join_response(ctl_writer_t *w, const struct group *g, const struct gmember *m,
                              bool with_members)
{
    ctl_put_i32(w, g->generation);
    ctl_put_str(w, g->protocol);
    ctl_put_str(w, g->leader);
    ctl_put_str(w, m->id);
    ctl_put_u32(w, with_members ? (uint32_t)g->nmembers : 0);
    for (size_t i = 0; with_members && i < g->nmembers; i++) {
        const struct gmember *o = g->members[i];
        ctl_put_str(w, o->id);
        ctl_put_str(w, o->instance_id);
        ctl_put_u32(w, (uint32_t)o->ntopics);
        for (size_t k = 0; k < o->ntopics; k++)
            ctl_put_str(w, o->topics[k]);
        put_tps(w, o->owned, o->nowned);
        ctl_put_i32(w, o->owned_generation);
    }
    ctl_put_u32(w, with_members ? (uint32_t)g->nmeta : 0);
    for (size_t i = 0; with_members && i < g->nmeta; i++) {
        ctl_put_str(w, g->meta[i].topic);
        ctl_put_u32(w, g->meta[i].partitions);
    }
}

static int member_cmp(const void *a, const void *b)
{
    return strcmp((*(struct gmember *const *)a)->id, (*(struct gmember *const *)b)->id);
}

/* The member that has been in the group longest. It leads when the previous leader left:
 * a leader removed for never sending a valid assignment comes back as a new member, and
 * so does not lead again while another member stays. */
static struct gmember *oldest_member(struct group *g)
{
    struct gmember *old = g->members[0];
    for (size_t i = 1; i < g->nmembers; i++)
        if (g->members[i]->seq < old->seq)
            old = g->members[i];
    return old;
}

/* The join phase is over: a new generation, a leader, and every parked join answered. */
static void complete_join(group_coord_t *gc, struct group *g)
{
    const char *proto;
    int rc;

    if (g->nmembers == 0) {
        g->state = GS_EMPTY;
        return;
    }
    qsort(g->members, g->nmembers, sizeof(*g->members), member_cmp);
    if (!member_find(g, g->leader))
        snprintf(g->leader, sizeof(g->leader), "%s", oldest_member(g)->id);
    proto = common_assignor(g, member_find(g, g->leader), NULL);
    snprintf(g->protocol, sizeof(g->protocol), "%s", proto ? proto : "");
    g->generation++;
    g->state = GS_COMPLETING;
    g->deadline_ns = shoal__mono_ns() + max_rebalance_ns(g);
    rc = snapshot_topics(gc, g);
    g->parts_checked_ns = shoal__mono_ns();
    log_info("group %s: generation %d with %zu members, leader %s, assignor %s", g->id,
             g->generation, g->nmembers, g->leader, g->protocol);
    for (size_t i = 0; i < g->nmembers; i++) {
        struct gmember *m = g->members[i];
        m->join_parked = false;
        m->last_seen_ns = shoal__mono_ns();
        gc->w.len = 0;
        gc->w.err = 0;
        if (rc == 0)
            put_join_response(&gc->w, g, m, !strcmp(m->id, g->leader));
        server_reply(gc->s, &m->join_req, rc, NULL, &gc->w);
    }
}

/* ------------------------------------------------------------------ join */

struct join_req {
    gname_t group, instance;
    char member[GROUP_MEMBER_ID_MAX + 1], client[GROUP_MEMBER_ID_MAX + 1];
    int32_t session_ms, rebalance_ms;
    gname_t *topics;
    size_t ntopics;
    char (*assignors)[GROUP_ASSIGNOR_MAX + 1];
    size_t nassignors;
    struct gtp *owned;
    size_t nowned;
    int32_t owned_gen;
    int32_t heartbeat_ms;                      /* 0 when the join does not say */
    char pattern[SHOAL_TOPIC_PATTERN_MAX + 1]; /* "": none, the join lists its topics */
    shoal_pattern_t *re;                       /* the pattern, compiled by join_check() */
};

static void join_req_release(struct join_req *j)
{
    shoal__pattern_free(j->re);
    shoal__free(j->topics);
    shoal__free(j->assignors);
    shoal__free(j->owned);
}

static int join_parse(ctl_reader_t *r, struct join_req *j)
{
    uint32_t n;
    int rc;

    ctl_get_str(r, j->group, sizeof(j->group));
    ctl_get_str(r, j->member, sizeof(j->member));
    ctl_get_str(r, j->instance, sizeof(j->instance));
    ctl_get_str(r, j->client, sizeof(j->client));
    j->session_ms = ctl_get_i32(r);
    j->rebalance_ms = ctl_get_i32(r);
    n = ctl_get_u32(r);
    if (r->err || n > GROUP_LIST_MAX || n > left(r) / 2) /* a string takes >= 2 bytes */
        return malformed(r, "join");
    if (n && !(j->topics = shoal__calloc(n, sizeof(*j->topics))))
        return -ENOMEM;
    j->ntopics = n;
    for (uint32_t i = 0; i < n; i++)
        ctl_get_str(r, j->topics[i], sizeof(j->topics[i]));
    n = ctl_get_u32(r);
    if (r->err || n > GROUP_LIST_MAX || n > left(r) / 2) /* a string takes >= 2 bytes */
        return malformed(r, "join");
    if (n && !(j->assignors = shoal__calloc(n, sizeof(*j->assignors))))
        return -ENOMEM;
    j->nassignors = n;
    for (uint32_t i = 0; i < n; i++)
        ctl_get_str(r, j->assignors[i], sizeof(j->assignors[i]));
    if ((rc = get_tps(r, &j->owned, &j->nowned)) < 0)
        return rc == -ENOMEM ? rc : malformed(r, "join");
    j->owned_gen = ctl_get_i32(r);
    if (!r->err && left(r) > 0) /* optional: older clients end here */
        j->heartbeat_ms = ctl_get_i32(r);
    if (!r->err && left(r) > 0) /* optional too */
        ctl_get_str(r, j->pattern, sizeof(j->pattern));
    return finish(r, "join");
}

static int join_check(const group_coord_t *gc, struct join_req *j)
{
    int max_session_ms = gc->b->cfg->group_max_session_timeout_ms;
    int rc;
    if ((rc = check_group_id(j->group)) < 0)
        return rc;
    if (j->instance[0] && !name_ok(j->instance))
        return SHOAL_ERR(SHOAL_EINVAL, "invalid group instance id '%s'", j->instance);
    if (shoal__has_control(j->client)) /* it names the member in log lines */
        return SHOAL_ERR(SHOAL_EINVAL, "the client id has a control character (a newline?)");
    if (!j->ntopics == !j->pattern[0] || j->nassignors == 0)
        return SHOAL_ERR(SHOAL_EINVAL,
                         "a join needs at least one assignor, and topics or a pattern (not both)");
    for (size_t i = 0; i < j->ntopics; i++)
        if (!name_ok(j->topics[i]))
            return SHOAL_ERR(SHOAL_ENAME, "invalid topic name '%s' in subscription", j->topics[i]);
    for (size_t i = 0; i < j->nassignors; i++) /* the chosen one names the round in the log */
        if (!j->assignors[i][0] || shoal__has_control(j->assignors[i]))
            return SHOAL_ERR(SHOAL_EINVAL, "an assignor name is empty or has a control character");
    if (j->session_ms <= 0 || j->rebalance_ms <= 0 || j->heartbeat_ms < 0)
        return SHOAL_ERR(SHOAL_EINVAL,
                         "session timeout %d ms and rebalance timeout %d ms must be > 0, "
                         "heartbeat interval %d ms >= 0",
                         j->session_ms, j->rebalance_ms, j->heartbeat_ms);
    /* Kafka's INVALID_SESSION_TIMEOUT: a member that dies is noticed within its session (a
     * static one holds its partitions that long), so the broker bounds it. */
    if (j->session_ms > max_session_ms)
        return SHOAL_ERR(SHOAL_EINVAL,
                         "session timeout %d ms is above this broker's "
                         "group.max.session.timeout.ms, %d ms",
                         j->session_ms, max_session_ms);
    return j->pattern[0] ? shoal__pattern_compile(j->pattern, &j->re) : 0;
}

static bool same_subscription(const struct gmember *m, const struct join_req *j)
{
    if (m->pattern[0] || j->pattern[0])
        return !strcmp(m->pattern, j->pattern);
    if (m->ntopics != j->ntopics)
        return false;
    for (size_t i = 0; i < j->ntopics; i++)
        if (!member_subscribes(m, j->topics[i]))
            return false;
    return true;
}

/* Move the request's subscription into the member. The same pattern keeps the topics it
 * matched; another is matched when the join phase ends (snapshot_topics). */
static void member_take_subscription(struct gmember *m, struct join_req *j)
{
    if (j->re && !strcmp(m->pattern, j->pattern))
        return;
    member_drop_pattern(m);
    if (j->re) {
        memcpy(m->pattern, j->pattern, sizeof(m->pattern));
        m->re = j->re;
        m->matched_at = 0;
        j->re = NULL;
    }
    shoal__free(m->topics);
    m->topics = j->topics;
    m->ntopics = j->ntopics;
    j->topics = NULL;
}

/* Move the request's lists into the member (the request keeps nothing). */
static void member_take(struct gmember *m, struct join_req *j, const server_req_t *req)
{
    member_take_subscription(m, j);
    shoal__free(m->assignors);
    shoal__free(m->owned);
    m->assignors = j->assignors;
    m->nassignors = j->nassignors;
    m->owned = j->owned;
    m->nowned = j->nowned;
    m->owned_generation = j->owned_gen;
    j->assignors = NULL;
    j->owned = NULL;
    snprintf(m->client_id, sizeof(m->client_id), "%s", j->client[0] ? j->client : "shoal");
    snprintf(m->instance_id, sizeof(m->instance_id), "%s", j->instance);
    m->session_timeout_ms = j->session_ms;
    m->rebalance_timeout_ms = j->rebalance_ms;
    m->heartbeat_ms = j->heartbeat_ms;
    m->pid = req->pid;
    m->conn_id = req->conn_id;
    m->last_seen_ns = shoal__mono_ns();
    m->join_parked = true;
    m->join_req = *req;
}

static struct gmember *member_add(group_coord_t *gc, struct group *g, const char *client)
{
    struct gmember *m = shoal__calloc(1, sizeof(*m)), **v;
    if (!m)
        return NULL;
    v = shoal__realloc(g->members, (g->nmembers + 1) * sizeof(*v));
    if (!v) {
        shoal__free(m);
        return NULL;
    }
    g->members = v;
    m->seq = ++gc->member_seq;
    snprintf(m->id, sizeof(m->id), "%.64s-%llu", client[0] ? client : "shoal",
             (unsigned long long)m->seq);
    g->members[g->nmembers++] = m;
    return m;
}

/* A static member came back (same instance id) to a stable group with the same
 * subscription: it takes over the old member's place and assignment, no rebalance. */
static void static_rejoin(group_coord_t *gc, struct group *g, struct gmember *m, struct join_req *j,
                          const server_req_t *req)
{
    bool was_leader = !strcmp(g->leader, m->id);
    member_take(m, j, req);
    snprintf(m->replaced, sizeof(m->replaced), "%s", m->id);
    snprintf(m->id, sizeof(m->id), "%.64s-%llu", m->client_id,
             (unsigned long long)++gc->member_seq); /* the old process is fenced */
    if (was_leader)
        snprintf(g->leader, sizeof(g->leader), "%s", m->id);
    m->join_parked = false;
    log_info("group %s: static member %s is back as %s (pid %d): no rebalance", g->id,
             m->instance_id, m->id, (int)m->pid);
    gc->w.len = 0;
    gc->w.err = 0;
    put_join_response(&gc->w, g, m, false);
    server_reply(gc->s, req, 0, NULL, &gc->w);
}

/* Whether a join repeats what member m joined this generation with: subscription,
 * assignors (in order) and owned partitions. */
static bool same_join(const struct gmember *m, const struct join_req *j)
{
    if (!same_subscription(m, j) || m->nassignors != j->nassignors || m->nowned != j->nowned ||
        m->owned_generation != j->owned_gen)
        return false;
    for (size_t i = 0; i < j->nassignors; i++)
        if (strcmp(m->assignors[i], j->assignors[i]))
            return false;
    for (size_t i = 0; i < j->nowned; i++) {
        bool found = false;
        for (size_t k = 0; k < m->nowned && !found; k++)
            found = m->owned[k].partition == j->owned[i].partition &&
                    !strcmp(m->owned[k].topic, j->owned[i].topic);
        if (!found)
            return false;
    }
    return true;
}

/* A member of the generation being completed joins again with nothing changed: a leader
 * whose assignor failed, trying again. As Kafka does, answer with the current generation
 * rather than start another: the other members stay parked in their SyncGroup, and the
 * phase still ends at its deadline (tick_group), where a leader that never sent a valid
 * assignment is removed and the others go on without it. */
static bool join_again(group_coord_t *gc, struct group *g, struct gmember *m,
                       const struct join_req *j, const server_req_t *req)
{
    if (g->state != GS_COMPLETING || m->join_parked || m->conn_id != req->conn_id ||
        !same_join(m, j) || topics_changed(gc, g))
        return false;
    m->last_seen_ns = shoal__mono_ns();
    gc->w.len = 0;
    gc->w.err = 0;
    put_join_response(&gc->w, g, m, !strcmp(m->id, g->leader));
    server_reply(gc->s, req, 0, NULL, &gc->w);
    return true;
}

/* A member's requests come on the connection it joined on: another connection's, which
 * may have guessed its id (they are counted), are refused. */
static int member_on_conn(const struct group *g, const struct gmember *m, uint64_t conn_id)
{
    if (m->conn_id == conn_id)
        return 0;
    return SHOAL_ERR(SHOAL_EGENERATION,
                     "member %s of group %s joined on another connection: a new connection "
                     "joins with an empty member id",
                     m->id, g->id);
}

static int on_join(group_coord_t *gc, const server_req_t *req, ctl_reader_t *r)
{
    struct join_req j;
    struct group *g;
    struct gmember *m;
    int rc;

    memset(&j, 0, sizeof(j));
    if ((rc = join_parse(r, &j)) < 0 || (rc = join_check(gc, &j)) < 0)
        goto out;
    if (!(g = group_get(gc, j.group))) {
        rc = -ENOMEM;
        goto out;
    }
    m = member_find(g, j.member);
    if (m && (rc = member_on_conn(g, m, req->conn_id)) < 0)
        goto out;
    if (!m && j.member[0] && (m = member_find_instance(g, j.instance))) {
        rc = fenced(g, j.member, m); /* its place went to a later process: Kafka's rule */
        goto out;
    }
    if (!m && (m = member_find_instance(g, j.instance)) && g->state == GS_STABLE &&
        same_subscription(m, &j)) {
        static_rejoin(gc, g, m, &j, req);
        rc = SERVER_PARKED;
        goto out;
    }
    if (m && join_again(gc, g, m, &j, req)) {
        rc = SERVER_PARKED;
        goto out;
    }
    if (g->nmembers > 0) {
        struct gmember tmp = {.assignors = j.assignors, .nassignors = j.nassignors};
        if (!common_assignor(g, &tmp, NULL)) {
            rc = SHOAL_ERR(SHOAL_ENOASSIGNOR,
                           "group %s: none of this member's assignors (%s...) "
                           "is supported by every member",
                           g->id, j.assignors[0]);
            goto out;
        }
    }
    if (m && m->join_parked) /* a retried join replaces the parked one */
        server_reply(gc->s, &m->join_req, SHOAL_EREBALANCE, "join superseded", NULL);
    if (!m && !(m = member_add(gc, g, j.client))) {
        rc = -ENOMEM;
        goto out;
    }
    member_take(m, &j, req);
    prepare_rebalance(gc, g, "a member joined");
    try_complete_join(gc, g);
    rc = SERVER_PARKED;
out:
    join_req_release(&j);
    return rc;
}

/* ------------------------------------------------------------------ sync, heartbeat, leave */

/* Find group and member and check the generation. */
static int find_member(group_coord_t *gc, uint64_t conn_id, const char *gid, const char *mid,
                       int32_t gen, struct group **g, struct gmember **m)
{
    int rc = check_group_id(gid);
    if (rc < 0)
        return rc;
    if (!(*g = group_find(gc, gid))) /* its last member went, and it had no offsets */
        return SHOAL_ERR(SHOAL_EGENERATION,
                         "member '%s' is not in group %s, which has no members: rejoin", mid, gid);
    if (!(*m = member_find(*g, mid)) && (*m = member_replacing(*g, mid)))
        return fenced(*g, mid, *m);
    if (!*m)
        return SHOAL_ERR(SHOAL_EGENERATION,
                         "member '%s' is not in group %s (it left, died, exceeded its session "
                         "timeout or max poll interval, or was replaced): rejoin",
                         mid, gid);
    if ((rc = member_on_conn(*g, *m, conn_id)) < 0)
        return rc;
    if (gen != (*g)->generation)
        return SHOAL_ERR(SHOAL_EGENERATION, "group %s is at generation %d, member %s sent %d", gid,
                         (*g)->generation, mid, gen);
    (*m)->last_seen_ns = shoal__mono_ns();
    return 0;
}

static void reply_sync(group_coord_t *gc, struct gmember *m, const server_req_t *req)
{
    gc->w.len = 0;
    gc->w.err = 0;
    put_tps(&gc->w, m->assigned, m->nassigned);
    server_reply(gc->s, req, 0, NULL, &gc->w);
}

/* Check the leader's assignment: known topics and partitions, each at most once. */
static int sync_check(group_coord_t *gc, struct group *g, const struct gtp *v, size_t n)
{
    int rc = 0;
    pthread_rwlock_rdlock(&gc->b->lock);
    for (size_t i = 0; i < n && rc == 0; i++) {
        dtopic_t *t = broker_find(gc->b, v[i].topic);
        if (!t || v[i].partition < 0 || (uint32_t)v[i].partition >= t->cfg.partitions)
            rc = SHOAL_ERR(SHOAL_EPROTO, "group %s: assignment names %s-%d, which does not exist",
                           g->id, v[i].topic, v[i].partition);
    }
    pthread_rwlock_unlock(&gc->b->lock);
    for (size_t i = 0; i < n && rc == 0; i++)
        for (size_t k = 0; k < i && rc == 0; k++)
            if (v[i].partition == v[k].partition && !strcmp(v[i].topic, v[k].topic))
                rc = SHOAL_ERR(SHOAL_EPROTO, "group %s: %s-%d assigned twice", g->id, v[i].topic,
                               v[i].partition);
    return rc;
}

/* Note in each entry which topic of its name it is now: a commit for it is refused once
 * that topic is deleted, even when another is created under the name (Kafka's topic id).
 * One deleted since sync_check gets an incarnation no topic has. */
static void stamp_incarnations(group_coord_t *gc, struct gtp *v, size_t n)
{
    pthread_rwlock_rdlock(&gc->b->lock);
    for (size_t i = 0; i < n; i++) {
        dtopic_t *t = broker_find(gc->b, v[i].topic);
        v[i].incarnation = t ? t->incarnation : UINT64_MAX;
    }
    pthread_rwlock_unlock(&gc->b->lock);
}

/* Read the leader's per-member lists; on success every member has its assignment. */
static int sync_take_assignment(group_coord_t *gc, struct group *g, ctl_reader_t *r)
{
    uint32_t n = ctl_get_u32(r);
    struct gtp *all = NULL;
    size_t nall = 0;
    int rc = 0;

    if (r->err || n > GROUP_LIST_MAX)
        return malformed(r, "sync");
    struct {
        char id[GROUP_MEMBER_ID_MAX + 1];
        struct gtp *v;
        size_t n;
    } *lists = shoal__calloc(n ? n : 1, sizeof(*lists));
    if (!lists)
        return -ENOMEM;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        ctl_get_str(r, lists[i].id, sizeof(lists[i].id));
        rc = get_tps(r, &lists[i].v, &lists[i].n);
    }
    if (rc == 0)
        rc = finish(r, "sync");
    else if (rc != -ENOMEM)
        rc = malformed(r, "sync");
    for (uint32_t i = 0; i < n && rc == 0; i++)
        nall += lists[i].n;
    if (rc == 0 && nall && !(all = shoal__calloc(nall, sizeof(*all))))
        rc = -ENOMEM;
    nall = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        if (lists[i].n) /* all and v are NULL for empty lists */
            memcpy(all + nall, lists[i].v, lists[i].n * sizeof(*all));
        nall += lists[i].n;
    }
    if (rc == 0)
        rc = sync_check(gc, g, all, nall);
    /* Every member's assignment moves to before (member_gives_up) only now: a round cut
     * short before its sync (a member joined meanwhile) leaves both as they were, so the
     * members go on committing what they hold and a partition withheld later is still
     * known as theirs. A member the leader left out is assigned nothing. */
    for (size_t i = 0; i < g->nmembers && rc == 0; i++) {
        struct gmember *m = g->members[i];
        struct gtp *v = NULL;
        size_t nv = 0;
        for (uint32_t k = 0; k < n; k++)
            if (!strcmp(lists[k].id, m->id)) {
                v = lists[k].v;
                nv = lists[k].n;
                lists[k].v = NULL;
                break;
            }
        stamp_incarnations(gc, v, nv);
        shoal__free(m->before);
        m->before = m->assigned;
        m->nbefore = m->nassigned;
        m->assigned = v;
        m->nassigned = nv;
    }
    for (uint32_t i = 0; i < n; i++)
        shoal__free(lists[i].v);
    shoal__free(lists);
    shoal__free(all);
    return rc;
}

static int on_sync(group_coord_t *gc, const server_req_t *req, ctl_reader_t *r)
{
    char gid[SHOAL_TOPIC_NAME_MAX + 2], mid[GROUP_MEMBER_ID_MAX + 1];
    struct group *g;
    struct gmember *m;
    int32_t gen;
    int rc;

    ctl_get_str(r, gid, sizeof(gid));
    ctl_get_str(r, mid, sizeof(mid));
    gen = ctl_get_i32(r);
    if (r->err)
        return malformed(r, "sync");
    if ((rc = find_member(gc, req->conn_id, gid, mid, gen, &g, &m)) < 0)
        return rc;
    /* The leader assigned this generation, and a rebalance began before this member's sync
     * came (a cooperative leader rejoins at once to hand over what it withheld): it learns
     * what it was assigned all the same, and rejoins at its next heartbeat. Refused, it
     * rejoined still owning what it had lost: it read on, and its commits of those
     * partitions were refused as not its own. */
    if (g->state == GS_STABLE || (g->state == GS_PREPARING && g->synced_generation == gen)) {
        reply_sync(gc, m, req);
        return SERVER_PARKED;
    }
    if (g->state == GS_PREPARING)
        return SHOAL_ERR(SHOAL_EREBALANCE, "group %s is rebalancing: rejoin", gid);
    if (strcmp(m->id, g->leader) != 0) {
        if (ctl_get_u32(r) != 0 || (rc = finish(r, "sync")) < 0)
            return SHOAL_ERR(SHOAL_EPROTO, "member %s is not the leader of %s", mid, gid);
        m->sync_parked = true;
        m->sync_req = *req;
        return SERVER_PARKED;
    }
    if ((rc = sync_take_assignment(gc, g, r)) < 0)
        return rc;
    g->state = GS_STABLE;
    g->synced_generation = g->generation;
    log_info("group %s: generation %d is stable", g->id, g->generation);
    for (size_t i = 0; i < g->nmembers; i++)
        if (g->members[i]->sync_parked) {
            sync_answered(g->members[i]);
            reply_sync(gc, g->members[i], &g->members[i]->sync_req);
        }
    reply_sync(gc, m, req);
    return SERVER_PARKED;
}

static int on_heartbeat(group_coord_t *gc, const server_req_t *req, ctl_reader_t *r)
{
    char gid[SHOAL_TOPIC_NAME_MAX + 2], mid[GROUP_MEMBER_ID_MAX + 1];
    struct group *g;
    struct gmember *m;
    int32_t gen;
    int rc;

    ctl_get_str(r, gid, sizeof(gid));
    ctl_get_str(r, mid, sizeof(mid));
    gen = ctl_get_i32(r);
    if ((rc = finish(r, "heartbeat")) < 0 ||
        (rc = find_member(gc, req->conn_id, gid, mid, gen, &g, &m)) < 0)
        return rc;
    if (g->state == GS_PREPARING)
        return SHOAL_ERR(SHOAL_EREBALANCE, "group %s is rebalancing: rejoin", gid);
    return 0;
}

static int on_leave(group_coord_t *gc, const server_req_t *req, ctl_reader_t *r)
{
    char gid[SHOAL_TOPIC_NAME_MAX + 2], mid[GROUP_MEMBER_ID_MAX + 1];
    struct group *g;
    struct gmember *m;
    int rc;

    ctl_get_str(r, gid, sizeof(gid));
    ctl_get_str(r, mid, sizeof(mid));
    if ((rc = finish(r, "leave")) < 0 || (rc = check_group_id(gid)) < 0)
        return rc;
    if (!(g = group_find(gc, gid)))
        return SHOAL_ERR(SHOAL_ENOGROUP, "no group %s", gid);
    if (!(m = member_find(g, mid)))
        return SHOAL_ERR(SHOAL_EGENERATION, "member '%s' is not in group %s", mid, gid);
    if ((rc = member_on_conn(g, m, req->conn_id)) < 0)
        return rc;
    member_remove(gc, g, m, "left the group");
    return 0;
}

/* ------------------------------------------------------------------ commit and fetch */

static int queue_offset(group_coord_t *gc, const char *group, const char *topic, int32_t p,
                        int64_t offset)
{
    if (gc->noffs == gc->offs_cap) {
        size_t cap = gc->offs_cap ? gc->offs_cap * 2 : 64;
        store_offset_t *o = shoal__realloc(gc->offs, cap * sizeof(*o));
        char **strs;
        if (!o)
            return -ENOMEM;
        gc->offs = o;
        strs = shoal__realloc(gc->off_strs, 2 * cap * sizeof(*strs));
        if (!strs)
            return -ENOMEM;
        gc->off_strs = strs;
        gc->offs_cap = cap;
    }
    char *g = shoal__strdup(group), *t = shoal__strdup(topic);
    if (!g || !t) {
        shoal__free(g);
        shoal__free(t);
        return -ENOMEM;
    }
    gc->off_strs[2 * gc->noffs] = g;
    gc->off_strs[2 * gc->noffs + 1] = t;
    gc->offs[gc->noffs++] =
        (store_offset_t){.group = g, .topic = t, .partition = p, .offset = offset};
    return 0;
}

static void unqueue_offsets(group_coord_t *gc, size_t first)
{
    while (gc->noffs > first) {
        gc->noffs--;
        shoal__free(gc->off_strs[2 * gc->noffs]);
        shoal__free(gc->off_strs[2 * gc->noffs + 1]);
    }
}

/* An administrative change refused while g has members: running ones, or static ones
 * whose process went and whose place waits for them (conn_id 0). */
static int group_active(const struct group *g)
{
    size_t away = 0;

    for (size_t i = 0; i < g->nmembers; i++)
        away += g->members[i]->conn_id == 0;
    if (away == g->nmembers)
        return SHOAL_ERR(SHOAL_EGROUPACTIVE,
                         "group %s keeps the place of %zu static member%s whose process went "
                         "away, until %s session timeout ends: wait for it",
                         g->id, away, SHOAL_PLURAL(away), away == 1 ? "its" : "their");
    return SHOAL_ERR(SHOAL_EGROUPACTIVE, "%zu member%s of group %s still running: stop %s first",
                     g->nmembers - away, SHOAL_PLURAL(g->nmembers - away), g->id,
                     g->nmembers - away == 1 ? "it" : "them");
}

/* May this commit go ahead? Members commit only their own partitions in their generation
 * (and those a cooperative round is taking from them, member_gives_up); a request without
 * a member id is an administrative commit, allowed when no members. */
static int commit_check(group_coord_t *gc, uint64_t conn_id, const char *gid, const char *mid,
                        int32_t gen, struct gtp *tp, size_t n, struct group **gp)
{
    struct gmember *m;
    int rc;

    if (!mid[0]) {
        if ((rc = check_group_id(gid)) < 0)
            return rc;
        *gp = group_find(gc, gid);
        if (*gp && (*gp)->nmembers)
            return group_active(*gp);
        return 0;
    }
    if ((rc = find_member(gc, conn_id, gid, mid, gen, gp, &m)) < 0)
        return rc;
    if ((*gp)->state == GS_COMPLETING)
        return SHOAL_ERR(SHOAL_EREBALANCE, "group %s is rebalancing: rejoin", gid);
    for (size_t i = 0; i < n; i++) {
        const struct gtp *e = tps_find(m->assigned, m->nassigned, tp[i].topic, tp[i].partition);
        if (!e && !(e = member_gives_up(*gp, m, tp[i].topic, tp[i].partition)))
            return SHOAL_ERR(SHOAL_ENOTASSIGNED, "%s-%d is not assigned to member %s of %s",
                             tp[i].topic, tp[i].partition, mid, gid);
        tp[i].incarnation = e->incarnation; /* the topic it was assigned (commit_targets_check) */
    }
    return 0;
}

/* Offsets of a topic that does not exist (deleted since it was assigned) are refused: a
 * topic created later under its name starts without them. So is an offset past the log
 * end, which no consumer can have reached: a member given the partition would skip
 * whatever was appended up to it. */
static int commit_targets_check(group_coord_t *gc, const struct gtp *tp, const int64_t *offs,
                                size_t n)
{
    int rc = 0;
    pthread_rwlock_rdlock(&gc->b->lock);
    for (size_t i = 0; i < n && rc == 0; i++) {
        dtopic_t *t = broker_find(gc->b, tp[i].topic);
        shoal_partition_info_t pi;
        if (!t) {
            rc = SHOAL_ERR(SHOAL_ENOTOPIC, "commit to %s-%d: no such topic", tp[i].topic,
                           tp[i].partition);
        } else if (tp[i].incarnation && tp[i].incarnation != t->incarnation) {
            rc = SHOAL_ERR(SHOAL_ENOTOPIC,
                           "commit to %s-%d: the topic assigned was deleted, and %s is another "
                           "topic created since under its name",
                           tp[i].topic, tp[i].partition, tp[i].topic);
        } else if ((uint32_t)tp[i].partition >= t->cfg.partitions) {
            rc = SHOAL_ERR(SHOAL_ENOPARTITION, "commit to %s-%d: the topic has %u partitions",
                           tp[i].topic, tp[i].partition, t->cfg.partitions);
        } else {
            dpart_info(&t->parts[tp[i].partition], &pi);
            if (offs[i] > pi.log_end_offset)
                rc = SHOAL_ERR(SHOAL_EOFFSET, "commit of %s-%d at %lld: past the log end %lld",
                               tp[i].topic, tp[i].partition, (long long)offs[i],
                               (long long)pi.log_end_offset);
        }
    }
    pthread_rwlock_unlock(&gc->b->lock);
    return rc;
}

/* Room for one more pending commit: 0 or -ENOMEM. */
static int commits_reserve(group_coord_t *gc)
{
    size_t cap = gc->commits_cap ? gc->commits_cap * 2 : 16;
    struct pending_commit *v;

    if (gc->ncommits < gc->commits_cap)
        return 0;
    if (!(v = shoal__realloc(gc->commits, cap * sizeof(*v))))
        return -ENOMEM;
    gc->commits = v;
    gc->commits_cap = cap;
    return 0;
}

/* Check and queue one commit request: SERVER_PARKED, or why it is refused. */
static int commit_take(group_coord_t *gc, const server_req_t *req, ctl_reader_t *r)
{
    char gid[SHOAL_TOPIC_NAME_MAX + 2], mid[GROUP_MEMBER_ID_MAX + 1];
    struct gtp *tp = NULL;
    int64_t *offs = NULL;
    struct group *g = NULL;
    size_t n = 0, first = gc->noffs;
    int32_t gen;
    uint32_t count;
    int rc = 0;

    ctl_get_str(r, gid, sizeof(gid));
    ctl_get_str(r, mid, sizeof(mid));
    gen = ctl_get_i32(r);
    count = ctl_get_u32(r);
    if (r->err || count > GROUP_LIST_MAX)
        return malformed(r, "commit");
    if (count && (!(tp = shoal__calloc(count, sizeof(*tp))) ||
                  !(offs = shoal__calloc(count, sizeof(*offs))))) {
        rc = -ENOMEM;
        goto out;
    }
    for (n = 0; n < count; n++) {
        ctl_get_str(r, tp[n].topic, sizeof(tp[n].topic));
        tp[n].partition = ctl_get_i32(r);
        offs[n] = ctl_get_i64(r);
    }
    if ((rc = finish(r, "commit")) < 0)
        goto out;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (!name_ok(tp[i].topic) || tp[i].partition < 0 || offs[i] < 0)
            rc = SHOAL_ERR(SHOAL_EINVAL, "commit of %s-%d at %lld", tp[i].topic, tp[i].partition,
                           (long long)offs[i]);
    if (rc == 0)
        rc = commit_check(gc, req->conn_id, gid, mid, gen, tp, n, &g);
    if (rc == 0)
        rc = commit_targets_check(gc, tp, offs, n);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = queue_offset(gc, gid, tp[i].topic, tp[i].partition, offs[i]);
    if (rc == 0)
        rc = commits_reserve(gc);
    if (rc < 0) {
        unqueue_offsets(gc, first);
        goto out;
    }
    if (!g)
        (void)group_get(gc, gid); /* an admin commit makes the group known */
    gc->commits[gc->ncommits++] = (struct pending_commit){.req = *req, .first = first, .n = n};
    rc = SERVER_PARKED;
out:
    shoal__free(tp);
    shoal__free(offs);
    return rc;
}

static bool commits_pending_from(const group_coord_t *gc, uint64_t conn_id)
{
    for (size_t i = 0; i < gc->ncommits; i++)
        if (gc->commits[i].req.conn_id == conn_id)
            return true;
    return false;
}

/* A connection may send commits while earlier ones of it wait for their transaction (the
 * server runs them, so that they share it); a refused one is answered in its turn. */
static int on_commit(group_coord_t *gc, const server_req_t *req, ctl_reader_t *r)
{
    int rc = commit_take(gc, req, r);
    char *detail;

    if (rc >= 0 || !commits_pending_from(gc, req->conn_id) || commits_reserve(gc) < 0 ||
        !(detail = shoal__strdup(shoal_errmsg())))
        return rc;
    gc->commits[gc->ncommits++] = (struct pending_commit){
        .req = *req, .first = gc->noffs, .n = 0, .status = rc, .detail = detail};
    return SERVER_PARKED;
}

/* Write every queued commit in one transaction, then answer them all, in order. */
void group_commits_flush(group_coord_t *gc)
{
    char why[256] = "";
    int rc;

    if (gc->ncommits == 0)
        return;
    rc = gc->noffs ? store_offsets_put(gc->b->store, gc->offs, gc->noffs) : 0;
    if (rc < 0) {
        snprintf(why, sizeof(why), "%s", shoal_errmsg());
        log_error("committing %zu offsets: %s", gc->noffs, why);
    } else if (gc->ncommits > 1) {
        log_debug("%zu commits (%zu offsets) in one transaction", gc->ncommits, gc->noffs);
    }
    for (size_t i = 0; i < gc->ncommits; i++) {
        struct pending_commit *c = &gc->commits[i];
        server_reply(gc->s, &c->req, c->status ? c->status : rc,
                     c->status ? c->detail
                     : rc < 0  ? why
                               : NULL,
                     NULL);
        shoal__free(c->detail);
    }
    gc->ncommits = 0;
    unqueue_offsets(gc, 0);
}

static int on_fetch(group_coord_t *gc, const server_req_t *req, ctl_reader_t *r, ctl_writer_t *body)
{
    char gid[SHOAL_TOPIC_NAME_MAX + 2], mid[GROUP_MEMBER_ID_MAX + 1];
    struct gtp *tp = NULL;
    struct group *g;
    struct gmember *m;
    size_t n = 0;
    int32_t gen;
    int rc;

    ctl_get_str(r, gid, sizeof(gid));
    ctl_get_str(r, mid, sizeof(mid));
    gen = ctl_get_i32(r);
    if ((rc = get_tps(r, &tp, &n)) < 0)
        return rc == -ENOMEM ? rc : malformed(r, "fetch");
    if ((rc = finish(r, "fetch")) < 0 || (rc = check_group_id(gid)) < 0)
        goto out;
    if (mid[0] && (rc = find_member(gc, req->conn_id, gid, mid, gen, &g, &m)) < 0)
        goto out;
    ctl_put_u32(body, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        int64_t off = -1;
        if (name_ok(tp[i].topic) &&
            (rc = store_offset_get(gc->b->store, gid, tp[i].topic, tp[i].partition, &off)) <= 0)
            off = -1;
        if (rc < 0)
            goto out;
        ctl_put_str(body, tp[i].topic);
        ctl_put_i32(body, tp[i].partition);
        ctl_put_i64(body, off);
    }
    rc = 0;
out:
    shoal__free(tp);
    return rc;
}

/* ------------------------------------------------------------------ administration */

struct name_list {
    gname_t *v;
    size_t n, cap;
};

/* Add name unless it was the last added (a group's offsets come together in key order);
 * other repeats go after the sort (name_list_sort). */
static int name_list_add(struct name_list *l, const char *name)
{
    if (l->n && !strcmp(l->v[l->n - 1], name))
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        gname_t *v = shoal__realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    snprintf(l->v[l->n++], sizeof(gname_t), "%s", name);
    return 0;
}

static int collect_group(void *arg, const char *group, const char *topic, int32_t p, int64_t off)
{
    (void)topic;
    (void)p;
    (void)off;
    return name_list_add(arg, group);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Sort the names and drop the repeats. */
static void name_list_sort(struct name_list *l)
{
    size_t n = 0;

    if (l->n)
        qsort(l->v, l->n, sizeof(*l->v), name_cmp);
    for (size_t i = 0; i < l->n; i++)
        if (n == 0 || strcmp(l->v[n - 1], l->v[i]) != 0)
            memmove(l->v[n++], l->v[i], sizeof(*l->v));
    l->n = n;
}

static int group_ptr_cmp(const void *a, const void *b)
{
    return strcmp((*(struct group *const *)a)->id, (*(struct group *const *)b)->id);
}

/* Every group, in memory or with stored offsets, by name, with its state and member count:
 * both lists sorted, then walked together (many groups do not make it quadratic). */
static int on_list(group_coord_t *gc, ctl_reader_t *r, ctl_writer_t *body)
{
    struct name_list l = {0};
    struct group **sorted = NULL;
    size_t k = 0;
    int rc = finish(r, "list");

    for (size_t i = 0; i < gc->ngroups && rc == 0; i++)
        rc = name_list_add(&l, gc->groups[i]->id);
    if (rc == 0)
        rc = store_offset_foreach(gc->b->store, NULL, collect_group, &l);
    if (rc == 0 && gc->ngroups && !(sorted = shoal__calloc(gc->ngroups, sizeof(*sorted))))
        rc = -ENOMEM;
    if (rc == 0) {
        name_list_sort(&l);
        if (gc->ngroups) {
            memcpy(sorted, gc->groups, gc->ngroups * sizeof(*sorted));
            qsort(sorted, gc->ngroups, sizeof(*sorted), group_ptr_cmp);
        }
        ctl_put_u32(body, (uint32_t)l.n);
        for (size_t i = 0; i < l.n; i++) {
            struct group *g = NULL;
            while (k < gc->ngroups && strcmp(sorted[k]->id, l.v[i]) < 0)
                k++;
            if (k < gc->ngroups && !strcmp(sorted[k]->id, l.v[i]))
                g = sorted[k];
            ctl_put_str(body, l.v[i]);
            ctl_put_str(body, state_names[g ? g->state : GS_EMPTY]);
            ctl_put_u32(body, g ? (uint32_t)g->nmembers : 0);
        }
    }
    shoal__free(sorted);
    shoal__free(l.v);
    return rc;
}

struct offset_list {
    struct gtp *tp;
    int64_t *off;
    size_t n, cap;
};

static int offset_list_add(struct offset_list *l, const char *topic, int32_t p, int64_t off)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->tp[i].partition == p && !strcmp(l->tp[i].topic, topic)) {
            if (off >= 0)
                l->off[i] = off;
            return 0;
        }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        struct gtp *tp = shoal__realloc(l->tp, cap * sizeof(*tp));
        int64_t *o;
        if (!tp)
            return -ENOMEM;
        l->tp = tp;
        if (!(o = shoal__realloc(l->off, cap * sizeof(*o))))
            return -ENOMEM;
        l->off = o;
        l->cap = cap;
    }
    snprintf(l->tp[l->n].topic, sizeof(gname_t), "%s", topic);
    l->tp[l->n].partition = p;
    l->off[l->n++] = off;
    return 0;
}

static int collect_offset(void *arg, const char *group, const char *topic, int32_t p, int64_t off)
{
    (void)group;
    return offset_list_add(arg, topic, p, off);
}

static void put_offsets(group_coord_t *gc, ctl_writer_t *body, struct offset_list *l)
{
    /* selection sort by (topic, partition): describe output is small */
    for (size_t i = 0; i < l->n; i++)
        for (size_t k = i + 1; k < l->n; k++) {
            int c = strcmp(l->tp[k].topic, l->tp[i].topic);
            if (c < 0 || (c == 0 && l->tp[k].partition < l->tp[i].partition)) {
                struct gtp t = l->tp[i];
                int64_t o = l->off[i];
                l->tp[i] = l->tp[k];
                l->off[i] = l->off[k];
                l->tp[k] = t;
                l->off[k] = o;
            }
        }
    ctl_put_u32(body, (uint32_t)l->n);
    pthread_rwlock_rdlock(&gc->b->lock);
    for (size_t i = 0; i < l->n; i++) {
        dtopic_t *t = broker_find(gc->b, l->tp[i].topic);
        int64_t end = -1;
        if (t && l->tp[i].partition >= 0 && (uint32_t)l->tp[i].partition < t->cfg.partitions) {
            shoal_partition_info_t pi;
            dpart_info(&t->parts[l->tp[i].partition], &pi);
            end = pi.log_end_offset;
        }
        ctl_put_str(body, l->tp[i].topic);
        ctl_put_i32(body, l->tp[i].partition);
        ctl_put_i64(body, l->off[i]);
        ctl_put_i64(body, end);
    }
    pthread_rwlock_unlock(&gc->b->lock);
}

static int on_describe(group_coord_t *gc, ctl_reader_t *r, ctl_writer_t *body)
{
    char gid[SHOAL_TOPIC_NAME_MAX + 2];
    struct offset_list l = {0};
    struct group *g;
    int rc;

    ctl_get_str(r, gid, sizeof(gid));
    if ((rc = finish(r, "describe")) < 0 || (rc = check_group_id(gid)) < 0)
        return rc;
    g = group_find(gc, gid);
    if ((rc = store_offset_foreach(gc->b->store, gid, collect_offset, &l)) < 0)
        goto out;
    if (!g && l.n == 0) {
        rc = SHOAL_ERR(SHOAL_ENOGROUP, "no group %s", gid);
        goto out;
    }
    ctl_put_str(body, state_names[g ? g->state : GS_EMPTY]);
    ctl_put_i32(body, g ? g->generation : 0);
    ctl_put_str(body, g ? g->protocol : "");
    ctl_put_str(body, g ? g->leader : "");
    ctl_put_u32(body, g ? (uint32_t)g->nmembers : 0);
    for (size_t i = 0; g && i < g->nmembers; i++) {
        struct gmember *m = g->members[i];
        ctl_put_str(body, m->id);
        ctl_put_str(body, m->client_id);
        ctl_put_str(body, m->instance_id);
        ctl_put_i32(body, (int32_t)m->pid);
        put_tps(body, m->assigned, m->nassigned);
        for (size_t k = 0; k < m->nassigned && rc == 0; k++)
            rc = offset_list_add(&l, m->assigned[k].topic, m->assigned[k].partition, -1);
    }
    if (rc == 0)
        put_offsets(gc, body, &l);
out:
    shoal__free(l.tp);
    shoal__free(l.off);
    return rc;
}

/* Find a group that exists (members or stored offsets) and has no members. */
static int idle_group(group_coord_t *gc, const char *gid, struct group **g)
{
    struct offset_list l = {0};
    int rc = check_group_id(gid);

    if (rc < 0)
        return rc;
    *g = group_find(gc, gid);
    if (*g && (*g)->nmembers)
        return group_active(*g);
    if (!*g) {
        rc = store_offset_foreach(gc->b->store, gid, collect_offset, &l);
        shoal__free(l.tp);
        shoal__free(l.off);
        if (rc < 0)
            return rc;
        if (l.n == 0)
            return SHOAL_ERR(SHOAL_ENOGROUP, "no group %s", gid);
    }
    return 0;
}

/* A reset request (GROUP_RESET): the topic's partitions to move (all when nparts is 0),
 * how, and whether to only report (dry run) and to answer with the changes (report). */
struct reset_req {
    char gid[SHOAL_TOPIC_NAME_MAX + 2];
    char topic[SHOAL_TOPIC_NAME_MAX + 2];
    uint8_t whence;
    int64_t value;
    bool report, dry_run;
    int32_t *parts;
    uint32_t nparts;
};

static int reset_parse(ctl_reader_t *r, struct reset_req *q)
{
    ctl_get_str(r, q->gid, sizeof(q->gid));
    ctl_get_str(r, q->topic, sizeof(q->topic));
    q->whence = ctl_get_u8(r);
    q->value = ctl_get_i64(r);
    if (!r->err && left(r) > 0) { /* the partitions and flags; older clients send neither */
        uint8_t flags = ctl_get_u8(r);
        if (flags & ~CTL_RESET_DRY_RUN)
            return SHOAL_ERR(SHOAL_EINVAL, "reset flags 0x%x", flags);
        q->report = true;
        q->dry_run = flags & CTL_RESET_DRY_RUN;
        q->nparts = ctl_get_u32(r);
        if (r->err || q->nparts > SHOAL_PARTITIONS_MAX || q->nparts > left(r) / 4)
            return malformed(r, "reset");
        if (q->nparts && !(q->parts = shoal__calloc(q->nparts, sizeof(*q->parts))))
            return -ENOMEM;
        for (uint32_t i = 0; i < q->nparts; i++)
            q->parts[i] = ctl_get_i32(r);
    }
    return finish(r, "reset");
}

static int reset_check(const struct reset_req *q, const dtopic_t *t)
{
    if (q->whence > SHOAL_SEEK_TIMESTAMP && q->whence != CTL_RESET_SHIFT)
        return SHOAL_ERR(SHOAL_EINVAL, "reset mode %u", q->whence);
    if ((q->whence == SHOAL_SEEK_OFFSET || q->whence == SHOAL_SEEK_TIMESTAMP) && q->value < 0)
        return SHOAL_ERR(SHOAL_EINVAL, "reset to %s %lld",
                         q->whence == SHOAL_SEEK_OFFSET ? "offset" : "timestamp",
                         (long long)q->value);
    for (uint32_t i = 0; i < q->nparts; i++) {
        if (q->parts[i] < 0 || (uint32_t)q->parts[i] >= t->cfg.partitions)
            return SHOAL_ERR(SHOAL_ENOPARTITION, "topic %s has no partition %d (it has %u)",
                             q->topic, q->parts[i], t->cfg.partitions);
        for (uint32_t k = 0; k < i; k++)
            if (q->parts[k] == q->parts[i])
                return SHOAL_ERR(SHOAL_EINVAL, "partition %d named twice", q->parts[i]);
    }
    return 0;
}

/* Where partition p of the request's topic goes; committed is its offset now, or -1. */
static int reset_target(const struct reset_req *q, dtopic_t *t, int32_t p, int64_t committed,
                        int64_t *to)
{
    shoal_partition_info_t pi;
    int64_t want;

    dpart_info(&t->parts[p], &pi);
    switch (q->whence) {
    case SHOAL_SEEK_BEGINNING:
        want = pi.log_start_offset;
        break;
    case SHOAL_SEEK_END:
        want = pi.log_end_offset;
        break;
    case SHOAL_SEEK_TIMESTAMP:
        return dpart_offset_for_time(&t->parts[p], q->value, to);
    case CTL_RESET_SHIFT:
        if (committed < 0)
            return SHOAL_ERR(SHOAL_EINVAL,
                             "group %s has no committed offset on %s-%d to shift: "
                             "reset it to an offset, a time or an end first",
                             q->gid, q->topic, p);
        if (__builtin_add_overflow(committed, q->value, &want))
            want = q->value < 0 ? 0 : INT64_MAX;
        break;
    default:
        want = q->value;
    }
    *to = SHOAL_MAX(pi.log_start_offset, SHOAL_MIN(want, pi.log_end_offset)); /* as Kafka's */
    return 0;
}

/* Fill offs[i] (and before[i], the committed offset or -1) for each partition named. */
static int reset_plan(group_coord_t *gc, const struct reset_req *q, dtopic_t *t,
                      store_offset_t *offs, int64_t *before, uint32_t n)
{
    int rc = 0;

    for (uint32_t i = 0; rc >= 0 && i < n; i++) {
        int32_t p = q->nparts ? q->parts[i] : (int32_t)i;
        offs[i] = (store_offset_t){.group = q->gid, .topic = q->topic, .partition = p};
        rc = store_offset_get(gc->b->store, q->gid, q->topic, p, &before[i]);
        if (rc == 0)
            before[i] = -1;
        if (rc >= 0)
            rc = reset_target(q, t, p, before[i], &offs[i].offset);
    }
    return rc < 0 ? rc : 0;
}

static void reset_report(ctl_writer_t *body, const store_offset_t *offs, const int64_t *before,
                         uint32_t n)
{
    ctl_put_u32(body, n);
    for (uint32_t i = 0; i < n; i++) {
        ctl_put_i32(body, offs[i].partition);
        ctl_put_i64(body, before[i]);
        ctl_put_i64(body, offs[i].offset);
    }
}

/* Move a group's committed offsets on a topic, only while it has no members (a dry run
 * only reports, and may look at an active group). A group that does not exist yet gets
 * the offsets, as with Kafka's tool: that is how a new group is told where to start. */
static int on_reset(group_coord_t *gc, ctl_reader_t *r, ctl_writer_t *body)
{
    struct reset_req q = {0};
    store_offset_t *offs = NULL;
    int64_t *before = NULL;
    struct group *g;
    dtopic_t *t;
    uint32_t n = 0;
    int rc;

    if ((rc = reset_parse(r, &q)) < 0 || (rc = check_group_id(q.gid)) < 0)
        goto out;
    group_commits_flush(gc); /* a commit queued before the reset must not land after it */
    if ((g = group_find(gc, q.gid)) && g->nmembers && !q.dry_run) {
        rc = group_active(g);
        goto out;
    }
    if (!name_ok(q.topic)) {
        rc = SHOAL_ERR(SHOAL_ENAME, "invalid topic name '%.260s'", q.topic);
        goto out;
    }
    pthread_rwlock_rdlock(&gc->b->lock);
    if (!(t = broker_find(gc->b, q.topic)))
        rc = SHOAL_ERR(SHOAL_ENOTOPIC, "no topic named %s", q.topic);
    else if ((rc = reset_check(&q, t)) == 0) {
        n = q.nparts ? q.nparts : t->cfg.partitions;
        offs = shoal__calloc(n, sizeof(*offs));
        before = shoal__calloc(n, sizeof(*before));
        rc = offs && before ? reset_plan(gc, &q, t, offs, before, n) : -ENOMEM;
    }
    pthread_rwlock_unlock(&gc->b->lock);
    if (rc == 0 && !q.dry_run && (rc = store_offsets_put(gc->b->store, offs, n)) == 0)
        log_info("group %s: offsets of %s reset (%u partition%s)", q.gid, q.topic, n,
                 n == 1 ? "" : "s");
    if (rc == 0 && q.report)
        reset_report(body, offs, before, n);
out:
    shoal__free(q.parts);
    shoal__free(offs);
    shoal__free(before);
    return rc;
}

static int on_delete(group_coord_t *gc, ctl_reader_t *r)
{
    char gid[SHOAL_TOPIC_NAME_MAX + 2];
    struct group *g;
    int rc;

    ctl_get_str(r, gid, sizeof(gid));
    if ((rc = finish(r, "delete")) < 0 || (rc = idle_group(gc, gid, &g)) < 0)
        return rc;
    group_commits_flush(gc); /* nor one queued before a delete bring the group back */
    if ((rc = store_offsets_delete(gc->b->store, gid, NULL)) < 0)
        return rc;
    if (g)
        group_remove(gc, g);
    log_info("group %s deleted with %d committed offsets", gid, rc);
    return 0;
}

/* ------------------------------------------------------------------ entry points */

int group_handle(group_coord_t *gc, const server_req_t *req, ctl_reader_t *r, ctl_writer_t *body)
{
    switch (req->type) {
    case CTL_GROUP_JOIN:
        return on_join(gc, req, r);
    case CTL_GROUP_SYNC:
        return on_sync(gc, req, r);
    case CTL_GROUP_HEARTBEAT:
        return on_heartbeat(gc, req, r);
    case CTL_GROUP_LEAVE:
        return on_leave(gc, req, r);
    case CTL_GROUP_COMMIT:
        return on_commit(gc, req, r);
    case CTL_GROUP_FETCH:
        return on_fetch(gc, req, r, body);
    case CTL_GROUP_LIST:
        return on_list(gc, r, body);
    case CTL_GROUP_DESCRIBE:
        return on_describe(gc, r, body);
    case CTL_GROUP_RESET:
        return on_reset(gc, r, body);
    case CTL_GROUP_DELETE:
        return on_delete(gc, r);
    default:
        return SHOAL_ERR(SHOAL_EPROTO, "unknown group request %u", req->type);
    }
}

void group_conn_closed(group_coord_t *gc, uint64_t conn_id)
{
    if (!gc)
        return;
    for (size_t i = 0; i < gc->ngroups; i++) {
        struct group *g = gc->groups[i];
        for (size_t k = 0; k < g->nmembers; k++) {
            struct gmember *m = g->members[k];
            if (m->conn_id != conn_id)
                continue;
            if (m->instance_id[0]) { /* static: wait for its session timeout */
                m->conn_id = 0;
                m->join_parked = m->sync_parked = false;
                continue;
            }
            member_remove(gc, g, m, "its connection closed (process ended)");
            k = (size_t)-1; /* the list changed: start over */
        }
    }
}

/* Remove the members that have been silent too long; true when one was removed. */
static bool expire_one(group_coord_t *gc, struct group *g, int64_t now)
{
    for (size_t i = 0; i < g->nmembers; i++) {
        struct gmember *m = g->members[i];
        int64_t quiet_ms = (now - m->last_seen_ns) / 1000000;
        if (m->join_parked || m->sync_parked)
            continue;
        if (quiet_ms > m->session_timeout_ms && quiet_ms > 0) {
            member_remove(gc, g, m, "session timeout");
            return true;
        }
        /* It polled up to a heartbeat interval after the last heartbeat shoald saw: a poll
         * sends one only when it is due. Counted from that heartbeat, a member was removed
         * up to an interval before it had gone max_poll_interval_ms without a poll. */
        if (quiet_ms > (int64_t)m->rebalance_timeout_ms + m->heartbeat_ms) {
            member_remove(gc, g, m, "max poll interval exceeded");
            return true;
        }
    }
    return false;
}

/* A subscribed topic was created, deleted (and maybe created again) or grew partitions
 * since the assignment (so a pattern matches other topics). */
static bool topics_changed(group_coord_t *gc, struct group *g)
{
    struct gmeta *old = g->meta;
    size_t old_n = g->nmeta;
    bool changed = false;

    g->meta = NULL;
    g->nmeta = 0;
    if (snapshot_topics(gc, g) < 0) {
        g->meta = old;
        g->nmeta = old_n;
        return false;
    }
    changed = old_n != g->nmeta;
    for (size_t i = 0; i < old_n && !changed; i++)
        changed = strcmp(old[i].topic, g->meta[i].topic) ||
                  old[i].partitions != g->meta[i].partitions ||
                  old[i].incarnation != g->meta[i].incarnation;
    shoal__free(old);
    return changed;
}

static void tick_group(group_coord_t *gc, struct group *g, int64_t now)
{
    while (g->nmembers && expire_one(gc, g, now))
        ;
    while (g->state == GS_PREPARING && now > g->deadline_ns) {
        struct gmember *late = NULL;
        for (size_t i = 0; i < g->nmembers && !late; i++)
            if (!g->members[i]->join_parked)
                late = g->members[i];
        if (!late) {
            complete_join(gc, g);
            break;
        }
        /* removing the last late member completes the join phase */
        member_remove(gc, g, late, "did not rejoin within the rebalance timeout");
    }
    if (g->state == GS_COMPLETING && now > g->deadline_ns) {
        struct gmember *leader = member_find(g, g->leader);
        if (leader)
            member_remove(gc, g, leader, "the leader did not send the assignment in time");
        return;
    }
    if (g->state == GS_STABLE && now - g->parts_checked_ns > GROUP_PARTS_CHECK_NS) {
        g->parts_checked_ns = now;
        if (topics_changed(gc, g))
            prepare_rebalance(gc, g, "subscribed topics or their partitions changed");
    }
}

/* A pass later than group_tick() asked for means shoald itself did not run (SIGSTOP, a
 * suspended VM, a debugger, a slow pass): members' heartbeats may be waiting unread in
 * their sockets. Lateness past this is forgiven; past a second it is logged too. */
#define GROUP_LATE_NS  (GROUP_TICK_MS * 1000000LL)
#define GROUP_STALL_NS 1000000000LL

/* Time shoald did not run is not counted against members: their silence and the phase
 * deadlines move on by the stall, as timers restart on a new coordinator in Kafka. */
static void forgive_stall(group_coord_t *gc, int64_t now)
{
    int64_t gap = now - gc->tick_due_ns;

    if (gc->tick_due_ns == 0 || gap < GROUP_LATE_NS)
        return;
    if (gap >= GROUP_STALL_NS)
        log_notice("groups: shoald did not run for %lld ms; members' timeouts do not count it",
                   (long long)(gap / 1000000));
    for (size_t i = 0; i < gc->ngroups; i++) {
        struct group *g = gc->groups[i];
        g->deadline_ns += gap;
        for (size_t k = 0; k < g->nmembers; k++) {
            struct gmember *m = g->members[k];
            m->last_seen_ns = m->last_seen_ns + gap < now ? m->last_seen_ns + gap : now;
        }
    }
}

/* ------------------------------------------------------------------ expiry */

/* The groups an expiry pass found idle for longer than the retention. */
struct expiry {
    group_coord_t *gc;
    int64_t now_ms, retention_ms;
    gname_t *ids;
    size_t n, cap;
};

/* store_offset_groups' callback: is this group idle past the retention? Its activity is its
 * latest commit, the last time it had members, and the daemon's start (a daemon down for a
 * week does not expire every group at once). */
static int expiry_look(void *arg, const char *gid, int64_t last_commit_ms)
{
    struct expiry *e = arg;
    struct group *g = group_find(e->gc, gid);
    int64_t active = SHOAL_MAX(last_commit_ms, e->gc->started_ms);
    gname_t *v;

    if (e->n == GROUP_EXPIRE_MAX)
        return 1; /* enough for one pass */
    if (g && g->nmembers)
        return 0;
    if (g)
        active = SHOAL_MAX(active, g->active_ms);
    if (e->now_ms - active < e->retention_ms)
        return 0;
    if (e->n == e->cap) {
        if (!(v = shoal__realloc(e->ids, (e->cap * 2 + 8) * sizeof(*v))))
            return -ENOMEM;
        e->ids = v;
        e->cap = e->cap * 2 + 8;
    }
    snprintf(e->ids[e->n++], sizeof(*e->ids), "%s", gid);
    return 0;
}

/* Delete the committed offsets of groups without members that have been idle for
 * offsets.retention (Kafka's offsets.retention.minutes), as Kafka expires an empty group.
 * Runs every offsets.retention.check.interval.ms, read again at least every second (a
 * reload may shorten it); each group costs a durable transaction on the server thread, so
 * a pass takes GROUP_EXPIRE_MAX at most and the next comes at the next look while more are
 * due. */
static void groups_expire(group_coord_t *gc, int64_t now_ns)
{
    struct expiry e = {.gc = gc, .now_ms = shoal__now_ms()};
    int64_t check_ns;
    int rc;

    if (now_ns < gc->expiry_look_ns)
        return;
    pthread_rwlock_rdlock(&gc->b->lock); /* a reload changes them under the write lock */
    e.retention_ms = config_offsets_retention_ms(gc->b->cfg);
    check_ns = gc->b->cfg->offsets_retention_check_ms * 1000000LL;
    pthread_rwlock_unlock(&gc->b->lock);
    gc->expiry_look_ns = now_ns + SHOAL_MIN(check_ns, GROUP_EXPIRE_LOOK_NS);
    if ((!gc->expiry_more && now_ns - gc->expiry_last_ns < check_ns) || e.retention_ms < 0)
        return;
    gc->expiry_last_ns = now_ns;
    if ((rc = store_offset_groups(gc->b->store, expiry_look, &e)) < 0)
        log_error("groups: cannot look for expired offsets: %s", shoal_strerror(rc));
    gc->expiry_more = rc == 1;
    for (size_t i = 0; rc >= 0 && i < e.n; i++) {
        struct group *g = group_find(gc, e.ids[i]);
        int n = store_offsets_delete(gc->b->store, e.ids[i], NULL);
        if (n < 0) {
            log_error("group %s: cannot delete its expired offsets: %s", e.ids[i],
                      shoal_strerror(n));
            continue;
        }
        if (g)
            group_remove(gc, g);
        log_notice("group %s expired: no members and no commit for over %lld s "
                   "(offsets.retention): its %d committed offsets were deleted",
                   e.ids[i], (long long)(e.retention_ms / 1000), n);
    }
    shoal__free(e.ids);
}

static int has_offset(void *arg, const char *group, const char *topic, int32_t p, int64_t off)
{
    (void)arg;
    (void)group;
    (void)topic;
    (void)p;
    (void)off;
    return 1;
}

/* Whether g, which had no members a moment ago, is to be forgotten: still without members,
 * and without committed offsets (a group with some stays, Empty, until they expire). As
 * Kafka drops such a group, else a client joining under ever new ids and leaving (or a
 * connection closed in its join) would leave groups behind for as long as shoald runs. */
static bool group_forgettable(group_coord_t *gc, struct group *g)
{
    if (!g->emptied || g->nmembers > 0)
        return false;
    g->emptied = false;
    return store_offset_foreach(gc->b->store, g->id, has_offset, NULL) == 0;
}

void group_offsets_dropped(group_coord_t *gc)
{
    for (size_t i = 0; i < gc->ngroups;) {
        struct group *g = gc->groups[i];
        g->emptied |= g->nmembers == 0;
        if (group_forgettable(gc, g))
            group_remove(gc, g); /* the last group moves to i */
        else
            i++;
    }
}

int group_tick(group_coord_t *gc, int64_t now_ns)
{
    bool members = false;
    forgive_stall(gc, now_ns);
    group_commits_flush(gc);
    for (size_t i = 0; i < gc->ngroups;) {
        struct group *g = gc->groups[i];
        tick_group(gc, g, now_ns);
        if (g->nmembers > 0) {
            g->active_ms = shoal__now_ms();
            members = true;
        }
        if (group_forgettable(gc, g))
            group_remove(gc, g); /* the last group moves to i */
        else
            i++;
    }
    groups_expire(gc, now_ns);
    gc->tick_due_ns = members ? now_ns + GROUP_TICK_MS * 1000000LL : 0;
    return members ? GROUP_TICK_MS : -1;
}

int group_coord_open(group_coord_t **out, server_t *s, broker_t *b)
{
    group_coord_t *gc = shoal__calloc(1, sizeof(*gc));
    *out = NULL;
    if (!gc)
        return -ENOMEM;
    gc->s = s;
    gc->b = b;
    gc->started_ms = shoal__now_ms();
    gc->expiry_last_ns = shoal__mono_ns();
    ctl_writer_init(&gc->w);
    *out = gc;
    return 0;
}

void group_coord_close(group_coord_t *gc)
{
    if (!gc)
        return;
    group_commits_flush(gc);
    for (size_t i = 0; i < gc->ngroups; i++)
        group_free(gc->groups[i]);
    shoal__free(gc->groups);
    unqueue_offsets(gc, 0);
    shoal__free(gc->offs);
    shoal__free(gc->off_strs);
    shoal__free(gc->commits);
    ctl_writer_release(&gc->w);
    shoal__free(gc);
}
