/* group_consumer.c - a consumer's membership in a consumer group: subscribe, the group
 * protocol run from inside shoal_poll(), commits.
 *
 * DESIGN: Kafka's poll-driven client. A subscribed consumer opens a control connection of
 * its own to shoald; the group protocol runs on it and nothing else does. That connection
 * is the member's liveness (shoald sees it close the moment the process dies), and since
 * JoinGroup and SyncGroup are long-polls that shoald answers only when the rebalance gets
 * there, a dedicated connection lets them wait without holding the shared client's mutex
 * (attaches and segment lookups of other consumers on the same client go on).
 *
 * Each shoal_poll() first does the protocol work that is due, then reads for at most one
 * heartbeat interval at a time:
 *  - heartbeat every heartbeat_interval_ms, one in flight at a time, its answer awaited
 *    for the poll's slice at most: a heartbeat shoald has not answered by then (it is
 *    stopped or slow) stays pending and is read by a later poll, so that poll keeps to its
 *    timeout and reads records meanwhile. SHOAL_EREBALANCE means rejoin; SHOAL_EGENERATION
 *    means this member was removed (session timeout, max poll interval): its partitions
 *    are lost (on_revoked, no commit) and it joins again as a new member. SHOAL_EFENCED (from
 *    any group request) means a later process took this static member's place: the
 *    partitions are lost and every later poll or commit returns SHOAL_EFENCED (Kafka's
 *    FENCED_INSTANCE_ID), so that two processes never take turns.
 *  - rejoin: with auto-commit, commit the positions (sent, not awaited: shoald takes a
 *    connection's requests in order, so it has the commit before the join); on_revoked;
 *    detach every partition
 *    (eager protocol); JoinGroup; the leader runs the assignor over the members'
 *    subscriptions; SyncGroup; fetch the new partitions' committed offsets; attach them,
 *    seek each to its committed offset (or per auto_offset_reset); on_assigned. JoinGroup
 *    and SyncGroup are answered when the rebalance gets there (the other members rejoin,
 *    the leader assigns): a poll waits its slice at most for each answer, the fetch's and
 *    the attaches' too, and the next poll goes on from where the round is (rejoin_step):
 *    a daemon stopped mid-round costs a poll nothing beyond its timeout. An eager member
 *    holds nothing meanwhile; a cooperative one keeps its partitions and reads them on
 *    while its join and its sync wait (round_kept), committing while the join waits
 *    (shoald refuses commits while the sync waits: SHOAL_EREBALANCE), and auto-commit
 *    commits what it read at the sync's answer, before on_revoked gives any up.
 *    A leader whose assignor fails (or returns an assignment that assign_run() refuses)
 *    reports it from poll and tries again no sooner than heartbeat_interval_ms later, so a
 *    broken assignor costs a few attempts a second. Its join meanwhile gets the same
 *    generation back, and at the rebalance timeout the coordinator removes it, so that the
 *    other members go on without it.
 *  - auto-commit every auto_commit_interval_ms: the positions, i.e. everything returned by
 *    earlier polls (at least once).
 * Asynchronous commits (and auto-commits) are sent at once; their responses are read in
 * order by whatever reads the connection next (a poll, a call) and handed to on_commit.
 *
 * A new group connection (the old one broke: a daemon restart) does not wait for its
 * handshake: HELLO is queued like any request and each poll waits its slice at most for
 * the answer, so a daemon that takes connections but does not answer them (stopped, hung)
 * costs a poll nothing beyond its timeout. Close waits for shoald session_timeout_ms at
 * most (the client's timeout_ms when that is shorter), then gives its commit up and returns why. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "assign.h"
#include "client.h"
#include "ctlsock.h"
#include "group_consumer.h"
#include "pattern.h"
#include "ring.h"
#include "util.h"

#define CGROUP_ASYNC_MAX      64
#define CGROUP_PEND_MAX       (CGROUP_ASYNC_MAX + 16) /* + a heartbeat and abandoned calls */
#define CGROUP_JOIN_MARGIN_MS 10000
#define CGROUP_ROUND_LOOK_MS  10 /* reading in a round: how often it looks for the answer */
#define CGROUP_WAKE_LOOK_MS   20 /* waiting for shoald: how often it looks for a wakeup */

struct pend {
    uint32_t seq;
    uint16_t type;
    uint8_t kind;   /* enum pend_kind */
    bool in_join;   /* sent while the member's join waited (joining_kept) */
    uint32_t joins; /* g->joins when sent: a heartbeat's answer is about that membership */
};

struct ctp {
    char *topic;
    int32_t partition;
};

/* A partition the member gave up, where it was in it, and which ring it read (left_remember) */
struct left {
    char *topic;
    int32_t partition;
    int64_t position;
    ring_file_id_t ring;
};

struct cgroup {
    char group_id[SHOAL_GROUP_ID_MAX + 1];
    char client_id[128];
    char instance_id[SHOAL_GROUP_ID_MAX + 1];
    int32_t session_ms, max_poll_ms, heartbeat_ms, auto_commit_ms;
    const shoal_client_t *client; /* the consumer's: its timeout_ms is how long a call waits */
    bool auto_commit;
    uint32_t reset;
    const shoal_assignor_t **assignors;
    size_t nassignors;
    shoal_rebalance_cb on_assigned, on_revoked;
    shoal_commit_cb on_commit;
    void *cb_arg;

    shoal_client_t *conn; /* the group connection, NULL until subscribe */
    char **topics;        /* the subscription: these topics, */
    size_t ntopics;
    char *pattern; /* or those shoald finds matching this (subscribe_pattern) */
    char member_id[128];
    int32_t generation; /* -1 while not a member */
    bool need_join;
    bool fenced;          /* for good: a later process took this static member's place */
    bool attached;        /* the assignment is attached to the consumer */
    bool follow_up;       /* leader: a cooperative assignor withheld partitions */
    bool in_callback;     /* on_assigned or on_revoked is running (call_list) */
    bool in_user_code;    /* any of the three callbacks is running (cgroup_in_callback) */
    bool assign_failed;   /* leader: the last rejoin failed in the assignor (or its check) */
    int64_t retry_ns;     /* after a failed assignment: no rejoin before this */
    struct ctp *assigned; /* what this member owns now */
    size_t nassigned;
    struct left *left; /* what it gave up last (left_remember), until it holds an */
    size_t nleft;      /* assignment again */
    int32_t owned_generation;
    int64_t last_heartbeat_ns, last_commit_ns;
    struct pend pend[CGROUP_PEND_MAX]; /* requests sent, responses not read yet */
    size_t npend;
    size_t nasync;       /* asynchronous commits among them */
    size_t lost_commits; /* ones a broken connection took unanswered: report_lost_commits() */
    bool stalled;        /* a call timed out and no response came since */
    bool connecting;     /* the connection's HELLO is unanswered: nothing else is sent */
    int64_t close_by_ns; /* closing: every wait for shoald ends by then */
    uint32_t joins;      /* rejoin attempts so far */
    bool hb_pending;     /* a heartbeat is in pend */
    int hb_status;       /* its failure, read but not acted on yet (maintain) */
    char hb_detail[256]; /* and its detail */

    bool keep;                 /* cooperative: the assignment stays attached through the round */
    bool read_in_round;        /* keep: records were read while the join or the sync waited */
    int round_commit_rc;       /* the round's commit of the positions (auto-commit): 1 while */
    uint32_t round_commit_seq; /* unanswered (this request), then its status */
    uint8_t phase;             /* enum round_phase; nothing is read but in reads_in_round() */
    uint32_t phase_seq;        /* that request's sequence number */
    int64_t phase_by_ns;       /* given up when its answer has not come by then */
    bool phase_done;           /* its answer was read: */
    int phase_status;          /* its status, */
    client_reply_t phase_rep;  /* its fields when that is 0, */
    char phase_detail[256];    /* the detail otherwise */
    /* Once the assignment is in: a cooperative member's new assignment (g->assigned stays
     * what it holds until the round ends) and the partitions it adds (an eager member's are
     * all of g->assigned); their committed offsets; how many are attached so far. */
    struct ctp *incoming;
    size_t nincoming;
    struct ctp *added; /* entries share their topic strings with incoming */
    size_t nadded;
    int64_t *offsets;
    size_t nattached;
    bool applied;    /* the assignment came: the old one is replaced */
    bool reattached; /* an attach met a daemon restart and started again */
};

bool shoal_group_id_is_valid(const char *id)
{
    return shoal_topic_name_is_valid(id);
}

static int64_t ms_since(int64_t then_ns)
{
    return (shoal__mono_ns() - then_ns) / 1000000;
}

/* ------------------------------------------------------------------ setup */

int cgroup_new(struct cgroup **out, const shoal_consumer_options_t *o, const shoal_client_t *client)
{
    struct cgroup *g;
    *out = NULL;
    if (!shoal_group_id_is_valid(o->group_id))
        return SHOAL_ERR(SHOAL_EGROUPID, "invalid group id '%.260s'", o->group_id);
    if (o->group_instance_id && !shoal_group_id_is_valid(o->group_instance_id))
        return SHOAL_ERR(SHOAL_EINVAL, "invalid group instance id '%.260s'", o->group_instance_id);
    if (o->assignor_count && !o->assignors)
        return SHOAL_ERR(SHOAL_EINVAL, "assignor_count %zu with assignors NULL", o->assignor_count);
    if (o->session_timeout_ms <= 0 || o->max_poll_interval_ms <= 0 ||
        o->heartbeat_interval_ms <= 0 || o->auto_commit_interval_ms <= 0 ||
        o->auto_offset_reset > SHOAL_OFFSET_RESET_EARLIEST)
        return SHOAL_ERR(SHOAL_EINVAL, "consumer group timeouts must be > 0 and auto_offset_reset "
                                       "a shoal_offset_reset_t (use shoal_consumer_options_init)");
    if (o->heartbeat_interval_ms >= o->session_timeout_ms)
        return SHOAL_ERR(SHOAL_EINVAL,
                         "heartbeat_interval_ms %d must be below session_timeout_ms %d (Kafka "
                         "advises a third of it or less)",
                         o->heartbeat_interval_ms, o->session_timeout_ms);
    if (o->client_id && strlen(o->client_id) > 64)
        return SHOAL_ERR(SHOAL_EINVAL, "client_id of %zu characters: 64 at most",
                         strlen(o->client_id));
    if (o->client_id && shoal__has_control(o->client_id))
        return SHOAL_ERR(SHOAL_EINVAL, "client_id has a control character (a newline?)");
    if (!(g = shoal__calloc(1, sizeof(*g))))
        return -ENOMEM;
    snprintf(g->group_id, sizeof(g->group_id), "%s", o->group_id);
    snprintf(g->client_id, sizeof(g->client_id), "%.64s", o->client_id ? o->client_id : "shoal");
    snprintf(g->instance_id, sizeof(g->instance_id), "%s",
             o->group_instance_id ? o->group_instance_id : "");
    g->session_ms = o->session_timeout_ms;
    g->client = client;
    g->max_poll_ms = o->max_poll_interval_ms;
    g->heartbeat_ms = o->heartbeat_interval_ms;
    g->auto_commit_ms = o->auto_commit_interval_ms;
    g->auto_commit = o->auto_commit;
    g->reset = o->auto_offset_reset;
    g->on_assigned = o->on_assigned;
    g->on_revoked = o->on_revoked;
    g->on_commit = o->on_commit;
    g->cb_arg = o->cb_arg;
    g->generation = -1;
    g->owned_generation = -1;
    g->nassignors = o->assignor_count ? o->assignor_count : 1;
    if (!(g->assignors = shoal__calloc(g->nassignors, sizeof(*g->assignors)))) {
        shoal__free(g);
        return -ENOMEM;
    }
    for (size_t i = 0; i < g->nassignors; i++) {
        g->assignors[i] = o->assignor_count ? o->assignors[i] : shoal_assignor_builtin("range");
        if (!g->assignors[i] || !g->assignors[i]->name || !g->assignors[i]->name[0] ||
            shoal__has_control(g->assignors[i]->name) || !g->assignors[i]->assign) {
            shoal__free(g->assignors);
            shoal__free(g);
            return SHOAL_ERR(SHOAL_EINVAL,
                             "assignor %zu is NULL or incomplete, or its name is empty or has a "
                             "control character",
                             i);
        }
    }
    *out = g;
    return 0;
}

static void free_ctps(struct ctp *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        shoal__free(v[i].topic);
    shoal__free(v);
}

static void free_assigned(struct cgroup *g)
{
    free_ctps(g->assigned, g->nassigned);
    g->assigned = NULL;
    g->nassigned = 0;
}

/* The positions the member had when it last gave its partitions up are kept until it holds
 * an assignment again: a partition it gets back with no committed offset resumes there
 * (left_position) instead of per auto_offset_reset, which with "latest" skipped every
 * record appended meanwhile. A daemon restart takes the partitions away (the member's
 * connection breaks), before the first auto-commit of a new group, or for good on a
 * quiet partition with manual commits: a user session lost hundreds of records so. */
static void left_forget(struct cgroup *g)
{
    for (size_t i = 0; i < g->nleft; i++)
        shoal__free(g->left[i].topic);
    shoal__free(g->left);
    g->left = NULL;
    g->nleft = 0;
}

static void left_remember(shoal_consumer_t *c, struct cgroup *g)
{
    struct left *v = shoal__calloc(g->nassigned, sizeof(*v));
    size_t n = 0;

    for (size_t i = 0; v && i < g->nassigned; i++) {
        const struct ctp *tp = &g->assigned[i];
        struct left *l = &v[n];
        if (consumer__ring_file(c, tp->topic, tp->partition, &l->ring, &l->position) == 0 &&
            l->position >= 0 && (l->topic = shoal__strdup(tp->topic))) {
            l->partition = tp->partition;
            n++;
        }
    }
    left_forget(g); /* out of memory: nothing kept, as before (best effort) */
    g->left = v;
    g->nleft = n;
}

/* ------------------------------------------------------------------ the group connection */

/* Requests whose responses are still to be read sit in g->pend, oldest first; shoald answers
 * a connection's requests in order, but for commits, which it answers while a join or sync
 * waits: a response is matched to its request by sequence number. A call sends its request
 * and reads the responses until its own, handing the others to their owners
 * (conn_dispatch). Nothing waits longer than it was given: a heartbeat's
 * response not in by the end of the poll's slice is read by a later poll, and a call that
 * times out (SHOAL_ETIMEDOUT) leaves its request pending, abandoned, its late response
 * read and dropped then. So a stopped daemon costs a poll nothing beyond its timeout, and
 * the stream stays in step: the connection is dropped only when it breaks. */
enum pend_kind {
    PEND_CALL,      /* a call waiting for it now */
    PEND_COMMIT,    /* an asynchronous commit: the status goes to on_commit */
    PEND_HEARTBEAT, /* the status goes to heartbeat_done() */
    PEND_ABANDONED, /* its call timed out: dropped */
    PEND_HELLO,     /* a new connection's handshake: read by hello_wait() */
    PEND_ROUND,     /* the rebalance round's join, sync or offset fetch: for rejoin_step() */
};

/* Where a member's rebalance round is: which request's answer it waits for, or (attaching)
 * that it attaches its new partitions. */
enum round_phase {
    ROUND_NONE,
    ROUND_JOINING,
    ROUND_SYNCING,
    ROUND_FETCHING,
    ROUND_ATTACHING,
};

void (*cgroup__round_hook)(enum cgroup_round_point at);

/* A cooperative member's join waits: it reads and commits what it holds meanwhile (the
 * other members may be slow to rejoin). */
static bool joining_kept(const struct cgroup *g)
{
    return g->phase == ROUND_JOINING && g->keep;
}

/* Its sync waits (the leader may be slow to assign): it reads on, but shoald takes no
 * commit until the assignment is in (SHOAL_EREBALANCE); the sync's answer commits what
 * was read (auto-commit). From there to the round's end (the offset fetch and the
 * attaches, short) it reads nothing, and commits only from on_revoked. */
static bool round_kept(const struct cgroup *g)
{
    return (g->phase == ROUND_JOINING || g->phase == ROUND_SYNCING) && g->keep;
}

static void round_hook(enum cgroup_round_point at)
{
    if (__builtin_expect(cgroup__round_hook != NULL, 0))
        cgroup__round_hook(at);
}

/* Forget the phase's request and the answer kept, if any. */
static void phase_reset(struct cgroup *g)
{
    if (g->phase_done && g->phase_status == 0)
        client_reply_release(&g->phase_rep);
    g->phase = ROUND_NONE;
    g->phase_done = false;
}

/* Forget the round (over, or its connection broke). */
static void round_reset(struct cgroup *g)
{
    phase_reset(g);
    free_ctps(g->incoming, g->nincoming);
    shoal__free(g->added);
    shoal__free(g->offsets);
    g->incoming = g->added = NULL;
    g->offsets = NULL;
    g->nincoming = g->nadded = g->nattached = 0;
    g->applied = g->reattached = false;
}

static void conn_drop(struct cgroup *g)
{
    round_reset(g);
    shoal_client_close(g->conn);
    g->conn = NULL;
    g->npend = 0;
    g->lost_commits += g->nasync;
    g->nasync = 0;
    if (g->round_commit_rc > 0)
        g->round_commit_rc = SHOAL_ECLOSED;
    g->hb_pending = false;
    g->hb_status = 0;
    g->connecting = false;
    g->need_join = true;
    g->follow_up = false; /* the member joins anew: nothing of its to hand on */
}

/* Send a request by deadline_ns and queue it as kind. SHOAL_ETIMEDOUT when shoald read
 * none of it by then (not sent, the connection kept); a request it stopped reading half-way
 * drops the connection. */
static int conn_send(struct cgroup *g, ctl_writer_t *w, enum pend_kind kind, uint32_t *seq,
                     int64_t deadline_ns)
{
    ctl_header_t h;
    int rc = ctl_frame_end(w);
    if (rc < 0)
        return rc;
    if (!g->conn)
        return SHOAL_ERR(SHOAL_ECLOSED, "group %s: no connection to shoald", g->group_id);
    if (g->npend == CGROUP_PEND_MAX) { /* the daemon has not answered for a long time */
        conn_drop(g);
        return SHOAL_ERR(SHOAL_ETIMEDOUT,
                         "group %s: %d requests unanswered by shoald: reconnecting", g->group_id,
                         CGROUP_PEND_MAX);
    }
    ctl_header_decode(w->buf, &h);
    h.seq = *seq = ++g->conn->seq;
    ctl_header_encode(w->buf, &h);
    rc = ctlsock_send(g->conn->fd, w->buf, w->len, NULL, 0, deadline_ns);
    if (rc == SHOAL_ETIMEDOUT)
        return SHOAL_ERR(rc,
                         "group %s: shoald did not read the request in time (stopped or "
                         "hung?); it was not sent",
                         g->group_id);
    if (rc < 0)
        conn_drop(g);
    if (rc == -ETIMEDOUT)
        return SHOAL_ERR(SHOAL_ETIMEDOUT,
                         "group %s: shoald stopped reading a request half-way "
                         "(stopped or hung?): reconnecting",
                         g->group_id);
    if (rc < 0)
        return rc;
    g->pend[g->npend++] = (struct pend){
        .seq = h.seq, .type = h.type, .kind = kind, .in_join = joining_kept(g), .joins = g->joins};
    g->nasync += kind == PEND_COMMIT;
    return 0;
}

/* The index in g->pend of the request with sequence number seq, or g->npend. */
static size_t pend_find(const struct cgroup *g, uint32_t seq)
{
    size_t i = 0;
    while (i < g->npend && g->pend[i].seq != seq)
        i++;
    return i;
}

/* The consumer whose shoal_consumer_wakeup() ends the group's waits for shoald early:
 * none while closing (close keeps its own time). */
static shoal_consumer_t *conn_wake(shoal_consumer_t *c, const struct cgroup *g)
{
    return g->close_by_ns ? NULL : c;
}

/* client_recv() on the group connection, ended early as by its deadline when wake (not
 * NULL) has a wakeup pending: it looks every CGROUP_WAKE_LOOK_MS. */
static int conn_recv(struct cgroup *g, shoal_consumer_t *wake, ctl_header_t *h, client_reply_t *rep,
                     int64_t deadline_ns)
{
    for (;;) {
        int64_t look = wake ? shoal__mono_ns() + (int64_t)CGROUP_WAKE_LOOK_MS * 1000000 : -1;
        int64_t until = look >= 0 && (deadline_ns < 0 || look < deadline_ns) ? look : deadline_ns;
        int rc = client_recv(g->conn, h, rep, until);
        if (rc != SHOAL_ETIMEDOUT || until == deadline_ns || consumer__wakeup_pending(wake))
            return rc;
    }
}

/* Read the next response if it comes by deadline_ns and take its request off the queue
 * into *e: 0 with its status in *status (detail in shoal_errmsg()) and, when that is 0,
 * rep ready to read. SHOAL_ETIMEDOUT when nothing came (the stream is untouched); any
 * other failure broke the stream and dropped the connection. A pending wakeup on wake
 * ends the wait as the deadline does (conn_recv). */
static int conn_read(struct cgroup *g, shoal_consumer_t *wake, int64_t deadline_ns, struct pend *e,
                     int *status, client_reply_t *rep)
{
    char detail[512];
    ctl_header_t h;
    size_t i = 0;
    int rc;

    memset(rep, 0, sizeof(*rep));
    if (!g->conn || g->npend == 0)
        return SHOAL_ERR(SHOAL_ECLOSED, "group %s: no connection to shoald", g->group_id);
    if ((rc = conn_recv(g, wake, &h, rep, deadline_ns)) == SHOAL_ETIMEDOUT)
        return rc;
    if (rc == 0 &&
        ((i = pend_find(g, h.seq)) == g->npend || h.type != (g->pend[i].type | CTL_RESPONSE)))
        rc = SHOAL_ERR(SHOAL_EPROTO, "group response %u/%u answers no request sent", h.type, h.seq);
    if (rc < 0) {
        client_reply_release(rep);
        conn_drop(g);
        return rc;
    }
    *e = g->pend[i];
    memmove(&g->pend[i], &g->pend[i + 1], (--g->npend - i) * sizeof(g->pend[0]));
    g->nasync -= e->kind == PEND_COMMIT;
    g->stalled = false;
    ctl_reader_init(&rep->r, rep->payload, h.len);
    *status = ctl_get_status(&rep->r, detail, sizeof(detail));
    if (*status == SHOAL_EGENERATION && e->type == CTL_GROUP_COMMIT && e->in_join) {
        *status = SHOAL_EREBALANCE; /* the join ended on the way: not fenced */
        snprintf(detail, sizeof(detail),
                 "group %s: the join ended before this commit, sent while it waited, reached "
                 "shoald: not committed (commit again once the rebalance is over)",
                 g->group_id);
    }
    if (*status < 0) {
        SHOAL_ERR(*status, "%s", detail[0] ? detail : shoal_strerror(*status));
        client_reply_release(rep);
    }
    return 0;
}

static void heartbeat_done(struct cgroup *g, const struct pend *e, int status);

/* Hand a commit's status to on_commit, which may itself commit (and so come back here). */
static void call_commit(shoal_consumer_t *c, struct cgroup *g, int status)
{
    bool was = g->in_user_code;

    if (!g->on_commit)
        return;
    g->in_user_code = true;
    g->on_commit(g->cb_arg, c, status);
    g->in_user_code = was;
}

/* Hand a response read on the way to another one to its request. */
static void conn_dispatch(shoal_consumer_t *c, struct cgroup *g, const struct pend *e, int status,
                          client_reply_t *rep)
{
    if (e->kind == PEND_ROUND) { /* the round's: kept for rejoin_step() */
        g->phase_done = true;
        g->phase_status = status;
        if (status == 0)
            g->phase_rep = *rep;
        else
            snprintf(g->phase_detail, sizeof(g->phase_detail), "%s", shoal_errmsg());
        return;
    }
    if (status == 0)
        client_reply_release(rep);
    if (e->kind == PEND_COMMIT && e->seq == g->round_commit_seq && g->round_commit_rc > 0)
        g->round_commit_rc = status;
    if (e->kind == PEND_COMMIT)
        call_commit(c, g, status);
    else if (e->kind == PEND_HEARTBEAT)
        heartbeat_done(g, e, status);
}

/* Every asynchronous commit's result goes to on_commit: those whose connection broke
 * before their answer came get SHOAL_ECLOSED (they may or may not have been stored). */
static void report_lost_commits(shoal_consumer_t *c, struct cgroup *g)
{
    for (; g->lost_commits > 0; g->lost_commits--) {
        SHOAL_ERR(SHOAL_ECLOSED,
                  "group %s: the connection to shoald closed before this "
                  "commit's answer came",
                  g->group_id);
        call_commit(c, g, SHOAL_ECLOSED);
    }
}

/* Read the responses that come by deadline_ns until request seq is answered (0, or
 * SHOAL_ETIMEDOUT, or the connection broke). */
static int conn_wait(shoal_consumer_t *c, struct cgroup *g, uint32_t seq, int64_t deadline_ns)
{
    while (g->conn && pend_find(g, seq) < g->npend) {
        struct pend e;
        client_reply_t rep;
        int status, rc = conn_read(g, conn_wake(c, g), deadline_ns, &e, &status, &rep);
        if (rc < 0)
            return rc;
        conn_dispatch(c, g, &e, status, &rep);
    }
    return 0;
}

/* Read the responses that come by deadline_ns until at most keep asynchronous commits are
 * unanswered (shoald answers commits in order among themselves). */
static int conn_drain_commits(shoal_consumer_t *c, struct cgroup *g, size_t keep,
                              int64_t deadline_ns)
{
    int rc = 0;

    while (rc == 0 && g->conn && g->nasync > keep) {
        size_t oldest = 0;
        while (g->pend[oldest].kind != PEND_COMMIT)
            oldest++;
        rc = conn_wait(c, g, g->pend[oldest].seq, deadline_ns);
    }
    return rc;
}

/* Read the responses that come by deadline_ns until every request is answered. */
static int conn_drain(shoal_consumer_t *c, struct cgroup *g, int64_t deadline_ns)
{
    int rc = 0;

    while (rc == 0 && g->conn && g->npend)
        rc = conn_wait(c, g, g->pend[0].seq, deadline_ns);
    return rc;
}

/* A request whose answer is no longer awaited: it is read and dropped when it comes (the
 * stream stays in step), and close does not wait for shoald meanwhile. */
static void pend_abandon(struct cgroup *g, uint32_t seq)
{
    for (size_t i = 0; i < g->npend; i++)
        if (g->pend[i].seq == seq)
            g->pend[i].kind = PEND_ABANDONED;
    g->stalled = true;
}

/* Send a request and read the responses until its own, for timeout_ms at most (-1: no
 * limit): its status, and on 0 rep ready to read. */
static int conn_call(shoal_consumer_t *c, struct cgroup *g, ctl_writer_t *w, client_reply_t *rep,
                     int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : shoal__mono_ns() + (int64_t)timeout_ms * 1000000;
    uint32_t seq;
    int rc;

    memset(rep, 0, sizeof(*rep));
    if ((rc = conn_send(g, w, PEND_CALL, &seq, deadline)) < 0)
        return rc;
    for (;;) {
        struct pend e;
        int status;
        rc = conn_read(g, conn_wake(c, g), deadline, &e, &status, rep);
        if (rc == SHOAL_ETIMEDOUT)
            break;
        if (rc < 0)
            return rc;
        if (e.seq == seq)
            return status;
        conn_dispatch(c, g, &e, status, rep);
    }
    pend_abandon(g, seq);
    if (conn_wake(c, g) && consumer__woken(c))
        return SHOAL_ERR(SHOAL_EWAKEUP,
                         "group %s: ended by shoal_consumer_wakeup() before shoald answered "
                         "(it may still carry the request out)",
                         g->group_id);
    return SHOAL_ERR(SHOAL_ETIMEDOUT, "group %s: shoald did not answer in %d ms (stopped or hung?)",
                     g->group_id, timeout_ms);
}

/* How long a call waits for shoald: the client's timeout_ms, or while closing what is left
 * of close's wait. */
static int call_timeout_ms(const struct cgroup *g)
{
    int64_t left_ms;

    if (g->close_by_ns == 0)
        return g->client->timeout_ms;
    left_ms = (g->close_by_ns - shoal__mono_ns()) / 1000000;
    return (int)SHOAL_MAX(0, SHOAL_MIN(left_ms, (int64_t)g->client->timeout_ms));
}

/* When a call made now gives up (call_timeout_ms). */
static int64_t call_deadline(const struct cgroup *g)
{
    return shoal__mono_ns() + (int64_t)call_timeout_ms(g) * 1000000;
}

/* A call whose response has no fields. */
static int conn_call_simple(shoal_consumer_t *c, struct cgroup *g, ctl_writer_t *w)
{
    client_reply_t rep;
    int rc = conn_call(c, g, w, &rep, call_timeout_ms(g));
    if (rc == 0)
        client_reply_release(&rep);
    return rc;
}

/* ------------------------------------------------------------------ revoke, assign */

/* Call cb with the n partitions of list, in a copy of their own: a commit from the callback
 * that finds the member fenced revokes everything (fence) and frees the member's list while
 * the callback still reads tps. A revoke from inside a callback calls no callback again. */
static void call_list(shoal_consumer_t *c, struct cgroup *g, shoal_rebalance_cb cb,
                      const struct ctp *list, size_t n)
{
    size_t bytes = (n ? n : 1) * sizeof(shoal_topic_partition_t);
    shoal_topic_partition_t *tps;
    char *names;

    if (!cb || g->in_callback)
        return;
    for (size_t i = 0; i < n; i++)
        bytes += strlen(list[i].topic) + 1;
    if (!(tps = shoal__malloc(bytes)))
        return;
    names = (char *)(tps + (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(list[i].topic) + 1;
        tps[i] = (shoal_topic_partition_t){.topic = memcpy(names, list[i].topic, len),
                                           .partition = list[i].partition};
        names += len;
    }
    g->in_callback = g->in_user_code = true;
    cb(g->cb_arg, c, tps, n);
    g->in_callback = g->in_user_code = false;
    shoal__free(tps);
}

bool cgroup_in_callback(const struct cgroup *g)
{
    return g && g->in_user_code;
}

static void call_back(shoal_consumer_t *c, struct cgroup *g, shoal_rebalance_cb cb)
{
    call_list(c, g, cb, g->assigned, g->nassigned);
}

static int commit(shoal_consumer_t *c, struct cgroup *g, const shoal_topic_partition_offset_t *o,
                  size_t n, bool sync, int64_t send_by_ns);
static int commit_send(shoal_consumer_t *c, struct cgroup *g,
                       const shoal_topic_partition_offset_t *o, size_t n, int64_t send_by_ns,
                       uint32_t *seq);
static int commit_positions(shoal_consumer_t *c, struct cgroup *g);
static int fenced_error(const struct cgroup *g);

/* Give up every partition without committing: on_revoked, detach. lost: this member was
 * fenced or removed, the list goes too; otherwise it is kept (as owned partitions for
 * sticky assignors) until the next assignment. */
static void detach_all(shoal_consumer_t *c, struct cgroup *g, bool lost)
{
    if (g->attached && g->nassigned) {
        left_remember(c, g);
        call_back(c, g, g->on_revoked);
    }
    g->attached = false;
    consumer__unassign_all(c);
    if (lost)
        free_assigned(g);
}

/* Give up every partition. lost: this member was fenced, so nothing is committed.
 * Returns the failure of the commit (auto-commit), which does not stop the revoke. */
static int revoke_all(shoal_consumer_t *c, struct cgroup *g, bool lost)
{
    int rc = 0;

    if (g->attached && g->nassigned && !lost && g->auto_commit)
        rc = commit_positions(c, g);
    detach_all(c, g, lost);
    return rc;
}

static bool list_has(const struct ctp *list, size_t n, const struct ctp *tp)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].partition == tp->partition && !strcmp(list[i].topic, tp->topic))
            return true;
    return false;
}

/* Cooperative: the old assignment stayed attached through the rebalance. Give up what the
 * new one (g->incoming) takes away: on_revoked with only those, while g->assigned is still
 * all the member holds, so that a commit of every position from it covers them; then
 * detach them. Partitions given up mean another rebalance follows, in which they are
 * handed to their new owners. The caller committed the positions (round_commit). */
static int give_up_gone(shoal_consumer_t *c, struct cgroup *g)
{
    struct ctp *gone = shoal__calloc(g->nassigned ? g->nassigned : 1, sizeof(*gone));
    size_t ngone = 0, nkept = 0;

    if (!gone)
        return -ENOMEM;
    for (size_t i = 0; i < g->nassigned; i++)
        if (!list_has(g->incoming, g->nincoming, &g->assigned[i]))
            gone[ngone++] = g->assigned[i];
    if (ngone)
        call_list(c, g, g->on_revoked, gone, ngone);
    /* Detach them even when a commit from the callback broke the connection: the round
     * fails then, and its revoke must not name them again. A commit that found the member
     * fenced gave everything up already (revoke_all left no list). */
    for (size_t i = 0; i < g->nassigned; i++) {
        if (!list_has(gone, ngone, &g->assigned[i]))
            g->assigned[nkept++] = g->assigned[i];
        else
            (void)consumer__unassign_one(c, g->assigned[i].topic, g->assigned[i].partition);
    }
    for (size_t i = 0; g->nassigned && i < ngone; i++) /* their strings, now unused */
        shoal__free(gone[i].topic);
    g->nassigned = nkept;
    shoal__free(gone);
    if (g->fenced)
        return fenced_error(g);
    if (!g->conn || !g->incoming)
        return SHOAL_ERR(SHOAL_ECLOSED, "group %s: the connection to shoald broke", g->group_id);
    g->follow_up |= ngone > 0; /* they go to their new owners in a round that follows */
    return 0;
}

/* Cooperative: note what the new assignment adds to what the member keeps (g->added). */
static int note_added(struct cgroup *g)
{
    g->added = shoal__calloc(g->nincoming ? g->nincoming : 1, sizeof(*g->added));
    if (!g->added)
        return -ENOMEM;
    for (size_t i = 0; i < g->nincoming; i++)
        if (!list_has(g->assigned, g->nassigned, &g->incoming[i]))
            g->added[g->nadded++] = g->incoming[i];
    return 0;
}

/* A member whose assignors are all cooperative keeps its partitions while it rejoins. */
static bool cooperative(const struct cgroup *g)
{
    for (size_t i = 0; i < g->nassignors; i++)
        if (!g->assignors[i]->cooperative)
            return false;
    return true;
}

/* Whether the poll reads while the join or the sync waits (round_kept): it looks for the
 * answer between reads of CGROUP_ROUND_LOOK_MS (cgroup_poll), and maintain() does not wait
 * for it. */
static bool reads_in_round(shoal_consumer_t *c, const struct cgroup *g)
{
    return round_kept(g) && consumer__assigned_count(c) > 0;
}

/* ------------------------------------------------------------------ join and sync */

/* What the join response says; the members and topics only for the leader. */
struct join_result {
    int32_t generation;
    char protocol[64];
    char leader[128];
    shoal_assign_member_t *members;
    size_t nmembers;
    shoal_assign_topic_t *topics;
    size_t ntopics;
    char **strs; /* every string the above point to */
    size_t nstrs, strs_cap;
    shoal_topic_partition_t **owned; /* per member */
    const char ***subs;              /* per member */
};

static void join_result_release(struct join_result *jr)
{
    for (size_t i = 0; i < jr->nstrs; i++)
        shoal__free(jr->strs[i]);
    for (size_t i = 0; jr->owned && i < jr->nmembers; i++)
        shoal__free(jr->owned[i]);
    for (size_t i = 0; jr->subs && i < jr->nmembers; i++)
        shoal__free(jr->subs[i]);
    shoal__free(jr->strs);
    shoal__free(jr->owned);
    shoal__free(jr->subs);
    shoal__free(jr->members);
    shoal__free(jr->topics);
}

/* Read a string and keep a copy in jr (NULL on failure, with r->err or ENOMEM noted). */
static const char *jr_str(struct join_result *jr, ctl_reader_t *r)
{
    char buf[SHOAL_TOPIC_NAME_MAX + 1];
    char *s;
    ctl_get_str(r, buf, sizeof(buf));
    if (r->err)
        return NULL;
    if (jr->nstrs == jr->strs_cap) {
        size_t cap = jr->strs_cap ? jr->strs_cap * 2 : 64;
        char **v = shoal__realloc(jr->strs, cap * sizeof(*v));
        if (!v) {
            r->err = -ENOMEM;
            return NULL;
        }
        jr->strs = v;
        jr->strs_cap = cap;
    }
    if (!(s = shoal__strdup(buf))) {
        r->err = -ENOMEM;
        return NULL;
    }
    jr->strs[jr->nstrs++] = s;
    return s;
}

static int jr_read_member(struct join_result *jr, ctl_reader_t *r, size_t i)
{
    shoal_assign_member_t *m = &jr->members[i];
    uint32_t n;

    m->member_id = jr_str(jr, r);
    m->group_instance_id = jr_str(jr, r);
    if (m->group_instance_id && !*m->group_instance_id)
        m->group_instance_id = NULL;
    n = ctl_get_u32(r);
    if (r->err || n > 65536 || !(jr->subs[i] = shoal__calloc(n ? n : 1, sizeof(char *))))
        return r->err ? r->err : SHOAL_EPROTO;
    for (uint32_t k = 0; k < n; k++)
        jr->subs[i][k] = jr_str(jr, r);
    m->topics = jr->subs[i];
    m->topic_count = n;
    n = ctl_get_u32(r);
    if (r->err || n > 65536 || !(jr->owned[i] = shoal__calloc(n ? n : 1, sizeof(**jr->owned))))
        return r->err ? r->err : SHOAL_EPROTO;
    for (uint32_t k = 0; k < n; k++) {
        jr->owned[i][k].topic = jr_str(jr, r);
        jr->owned[i][k].partition = ctl_get_i32(r);
    }
    m->owned = jr->owned[i];
    m->owned_count = n;
    m->generation = ctl_get_i32(r);
    return r->err;
}

static int jr_read(struct join_result *jr, ctl_reader_t *r, char *member_id, size_t cap)
{
    uint32_t n;
    int rc;

    jr->generation = ctl_get_i32(r);
    ctl_get_str(r, jr->protocol, sizeof(jr->protocol));
    ctl_get_str(r, jr->leader, sizeof(jr->leader));
    ctl_get_str(r, member_id, cap);
    n = ctl_get_u32(r);
    if (r->err || n > 65536)
        return SHOAL_EPROTO;
    jr->members = shoal__calloc(n ? n : 1, sizeof(*jr->members));
    jr->owned = shoal__calloc(n ? n : 1, sizeof(*jr->owned));
    jr->subs = shoal__calloc(n ? n : 1, sizeof(*jr->subs));
    if (!jr->members || !jr->owned || !jr->subs)
        return -ENOMEM;
    jr->nmembers = n;
    for (uint32_t i = 0; i < n; i++)
        if ((rc = jr_read_member(jr, r, i)) != 0)
            return rc;
    n = ctl_get_u32(r);
    if (r->err || n > 65536 || !(jr->topics = shoal__calloc(n ? n : 1, sizeof(*jr->topics))))
        return r->err ? r->err : -ENOMEM;
    jr->ntopics = n;
    for (uint32_t i = 0; i < n; i++) {
        jr->topics[i].topic = jr_str(jr, r);
        jr->topics[i].partitions = ctl_get_u32(r);
    }
    return ctl_reader_finish(r);
}

static void build_join(const struct cgroup *g, ctl_writer_t *w)
{
    ctl_frame_begin(w, CTL_GROUP_JOIN, 0);
    ctl_put_str(w, g->group_id);
    ctl_put_str(w, g->member_id);
    ctl_put_str(w, g->instance_id);
    ctl_put_str(w, g->client_id);
    ctl_put_i32(w, g->session_ms);
    ctl_put_i32(w, g->max_poll_ms);
    ctl_put_u32(w, (uint32_t)g->ntopics);
    for (size_t i = 0; i < g->ntopics; i++)
        ctl_put_str(w, g->topics[i]);
    ctl_put_u32(w, (uint32_t)g->nassignors);
    for (size_t i = 0; i < g->nassignors; i++)
        ctl_put_str(w, g->assignors[i]->name);
    ctl_put_u32(w, (uint32_t)g->nassigned);
    for (size_t i = 0; i < g->nassigned; i++) {
        ctl_put_str(w, g->assigned[i].topic);
        ctl_put_i32(w, g->assigned[i].partition);
    }
    ctl_put_i32(w, g->owned_generation);
    ctl_put_i32(w, g->heartbeat_ms);
    if (g->pattern) /* only then: a daemon from before patterns refuses the field */
        ctl_put_str(w, g->pattern);
}

/* The leader's assignor failed, or assign_run() refused its result: say which assignor
 * and why, and put off the next attempt (maintain) by a heartbeat interval. The code is the
 * assignor's own, or SHOAL_EINVAL from the check. */
static int assign_error(struct cgroup *g, const shoal_assignor_t *a, int rc)
{
    char why[256];

    snprintf(why, sizeof(why), "%s", shoal_errmsg()[0] ? shoal_errmsg() : shoal_strerror(rc));
    g->assign_failed = true;
    g->retry_ns = shoal__mono_ns() + (int64_t)g->heartbeat_ms * 1000000;
    return SHOAL_ERR(rc, "group %s: assignor '%s' failed (%s): retrying in %d ms", g->group_id,
                     a->name, why, g->heartbeat_ms);
}

/* The leader: run the chosen assignor and put its result in the sync request. */
static int leader_assign(struct cgroup *g, struct join_result *jr, ctl_writer_t *w)
{
    const shoal_assignor_t *a = NULL;
    shoal_assign_input_t in = {.members = jr->members,
                               .member_count = jr->nmembers,
                               .topics = jr->topics,
                               .topic_count = jr->ntopics};
    shoal_assign_output_t out;
    int rc;

    for (size_t i = 0; i < g->nassignors && !a; i++)
        if (!strcmp(g->assignors[i]->name, jr->protocol))
            a = g->assignors[i];
    if (!a)
        return SHOAL_ERR(SHOAL_ENOASSIGNOR, "the group chose assignor '%s', unknown here",
                         jr->protocol);
    /* A subscription may name topics that do not exist (yet): the assignor sees only the
     * topics in the input. */
    for (size_t i = 0; i < jr->nmembers; i++) {
        shoal_assign_member_t *m = &jr->members[i];
        size_t k = 0;
        for (size_t j = 0; j < m->topic_count; j++) {
            bool known = false;
            for (size_t t = 0; t < jr->ntopics && !known; t++)
                known = !strcmp(jr->topics[t].topic, m->topics[j]);
            if (known)
                jr->subs[i][k++] = m->topics[j];
        }
        m->topic_count = k;
    }
    shoal__clear_err(); /* so that a detail found below is the assignor's or the check's */
    rc = assign_run(a, &in, &out); /* sets up out; releases it itself on failure */
    if (rc < 0)
        return assign_error(g, a, rc);
    if (a->cooperative) {
        /* A cooperative assignor withholds partitions that change owner, to be assigned
         * in a second rebalance once their owner gave them up: the leader starts that
         * round at once, even when the owner is an eager member that does not. */
        size_t total = 0, given = 0;
        for (size_t t = 0; t < jr->ntopics; t++)
            total += jr->topics[t].partitions;
        for (size_t i = 0; i < jr->nmembers; i++)
            given += out.members[i].n;
        g->follow_up = given < total;
    }
    ctl_put_u32(w, (uint32_t)jr->nmembers);
    for (size_t i = 0; i < jr->nmembers; i++) {
        ctl_put_str(w, jr->members[i].member_id);
        ctl_put_u32(w, (uint32_t)out.members[i].n);
        for (size_t k = 0; k < out.members[i].n; k++) {
            ctl_put_str(w, out.members[i].tps[k].topic);
            ctl_put_i32(w, out.members[i].tps[k].partition);
        }
    }
    assign_output_release(&out);
    return 0;
}

/* Read the sync response's assignment into a new list *out of *n entries (the caller
 * frees it, also on failure). */
static int read_assignment(ctl_reader_t *r, struct ctp **out, size_t *n)
{
    uint32_t count = ctl_get_u32(r);

    *out = NULL;
    *n = 0;
    if (r->err || count > 65536)
        return SHOAL_EPROTO;
    if (!(*out = shoal__calloc(count ? count : 1, sizeof(**out))))
        return -ENOMEM;
    for (uint32_t i = 0; i < count; i++) {
        char topic[SHOAL_TOPIC_NAME_MAX + 1];
        ctl_get_str(r, topic, sizeof(topic));
        (*out)[i].partition = ctl_get_i32(r);
        if (r->err || !((*out)[i].topic = shoal__strdup(topic)))
            return r->err ? r->err : -ENOMEM;
        *n = i + 1;
    }
    return ctl_reader_finish(r);
}

static int build_sync(struct cgroup *g, struct join_result *jr, ctl_writer_t *w)
{
    ctl_frame_begin(w, CTL_GROUP_SYNC, 0);
    ctl_put_str(w, g->group_id);
    ctl_put_str(w, g->member_id);
    ctl_put_i32(w, jr->generation);
    if (jr->nmembers > 0)
        return leader_assign(g, jr, w);
    ctl_put_u32(w, 0);
    return 0;
}

/* ------------------------------------------------------------------ the rebalance round */

/* A round is JoinGroup, then SyncGroup, then the new partitions' committed offsets
 * (OffsetFetch), then attaching them. shoald answers the join when the join phase ends
 * (every member rejoined, or the rebalance timeout) and the sync when the leader has
 * assigned: each answer, and the attaches, are waited for a poll's slice at a time
 * (rejoin_step), up to max_poll_interval_ms + CGROUP_JOIN_MARGIN_MS a phase. */

static void phase_enter(struct cgroup *g, enum round_phase phase)
{
    g->phase = (uint8_t)phase;
    g->phase_done = false;
    g->phase_by_ns = shoal__mono_ns() + ((int64_t)g->max_poll_ms + CGROUP_JOIN_MARGIN_MS) * 1000000;
}

/* Send the round's next request (a join, sync or offset fetch, in w), waiting for room in
 * the socket as a call does: one sent in part would cost the membership. */
static int round_send(struct cgroup *g, ctl_writer_t *w, enum round_phase phase)
{
    uint32_t seq;
    int rc = conn_send(g, w, PEND_ROUND, &seq, call_deadline(g));

    if (rc < 0)
        return rc;
    g->phase_seq = seq;
    phase_enter(g, phase);
    return 0;
}

static const char *phase_name(uint8_t phase)
{
    return phase == ROUND_JOINING ? "join" : phase == ROUND_SYNCING ? "sync" : "offset fetch";
}

/* Read responses until the round's answer is in, by deadline_ns: 0 when it is
 * (g->phase_done); 1 while it has not come (a later poll looks again); SHOAL_ETIMEDOUT when
 * it has not come by g->phase_by_ns (the request abandoned); or the connection's failure. */
static int round_wait(shoal_consumer_t *c, struct cgroup *g, int64_t deadline_ns)
{
    while (!g->phase_done) {
        struct pend e;
        client_reply_t rep;
        int status, rc = conn_read(g, conn_wake(c, g), SHOAL_MIN(deadline_ns, g->phase_by_ns), &e,
                                   &status, &rep);
        if (rc == SHOAL_ETIMEDOUT && shoal__mono_ns() < g->phase_by_ns)
            return 1;
        if (rc == SHOAL_ETIMEDOUT) {
            rc = SHOAL_ERR(rc,
                           "group %s: shoald did not answer the %s in %lld ms (stopped or hung?)",
                           g->group_id, phase_name(g->phase),
                           (long long)g->max_poll_ms + CGROUP_JOIN_MARGIN_MS);
            pend_abandon(g, g->phase_seq);
            return rc;
        }
        if (rc < 0)
            return rc;
        conn_dispatch(c, g, &e, status, &rep);
    }
    return 0;
}

/* Commit the positions (auto-commit) without waiting for the answer: as the round begins
 * (shoald takes a connection's requests in order, so the commit comes before the join),
 * and at the sync's answer when records were read while the join or the sync waited
 * (read_in_round). Its result goes to
 * on_commit, as an auto-commit's does, and to round_commit_rc for close. It is sent even
 * with CGROUP_ASYNC_MAX commits unanswered (waiting for room would hold the poll). A round
 * with nothing to commit (the last one failed after detaching) leaves the last round's
 * result as it is. */
static void round_commit(shoal_consumer_t *c, struct cgroup *g)
{
    int rc;

    if (!g->auto_commit || !g->attached || !g->nassigned)
        return;
    rc = commit_send(c, g, NULL, 0, call_deadline(g), &g->round_commit_seq);
    g->round_commit_rc = rc < 0 ? rc : 1;
}

/* Start a round: commit, give the partitions up (eager; a cooperative member keeps them and
 * reads on while the join and the sync wait, round_kept), and send the join. */
static int round_begin(shoal_consumer_t *c, struct cgroup *g)
{
    ctl_writer_t w;
    int rc;

    g->keep = cooperative(g) && g->attached;
    g->read_in_round = false;
    g->assign_failed = false;
    g->joins++; /* answers to earlier heartbeats no longer count */
    g->hb_status = 0;
    round_hook(CGROUP_BEFORE_COMMIT);
    round_commit(c, g);
    if (!g->keep)
        detach_all(c, g, false);
    ctl_writer_init(&w);
    build_join(g, &w);
    rc = round_send(g, &w, ROUND_JOINING);
    ctl_writer_release(&w);
    return rc;
}

/* The join's answer is in: the new generation; the leader assigns; send the sync. */
static int round_joined(struct cgroup *g)
{
    struct join_result jr;
    ctl_writer_t w;
    int rc = g->phase_status;

    if (rc < 0)
        return SHOAL_ERR(rc, "%s", g->phase_detail);
    memset(&jr, 0, sizeof(jr));
    rc = jr_read(&jr, &g->phase_rep.r, g->member_id, sizeof(g->member_id));
    phase_reset(g);
    if (rc > 0 || rc == SHOAL_EPROTO)
        rc = SHOAL_ERR(SHOAL_EPROTO, "malformed join response");
    if (rc == 0) {
        g->generation = jr.generation;
        ctl_writer_init(&w);
        rc = build_sync(g, &jr, &w);
        if (rc == 0)
            rc = round_send(g, &w, ROUND_SYNCING);
        ctl_writer_release(&w);
    }
    join_result_release(&jr);
    return rc;
}

/* The new partitions: those to fetch offsets for, attach and hand to on_assigned. */
static const struct ctp *round_new(const struct cgroup *g, size_t *n)
{
    *n = g->keep ? g->nadded : g->nassigned;
    return g->keep ? g->added : g->assigned;
}

/* Ask for the new partitions' committed offsets (none new: go on to attaching). */
static int fetch_send(struct cgroup *g)
{
    size_t n;
    const struct ctp *list = round_new(g, &n);
    ctl_writer_t w;
    int rc;

    if (n == 0) {
        phase_enter(g, ROUND_ATTACHING);
        return 0;
    }
    round_hook(CGROUP_BEFORE_FETCH);
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_GROUP_FETCH, 0);
    ctl_put_str(&w, g->group_id);
    ctl_put_str(&w, g->member_id);
    ctl_put_i32(&w, g->generation);
    ctl_put_u32(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        ctl_put_str(&w, list[i].topic);
        ctl_put_i32(&w, list[i].partition);
    }
    rc = round_send(g, &w, ROUND_FETCHING);
    ctl_writer_release(&w);
    return rc;
}

/* The sync's answer is in: the new assignment replaces the old (an eager member's at once;
 * a cooperative member gives up what it lost now, and takes the rest when the round ends);
 * fetch the new partitions' offsets. */
static int round_synced(shoal_consumer_t *c, struct cgroup *g)
{
    struct ctp *list;
    size_t n;
    int rc = g->phase_status;

    if (rc < 0)
        return SHOAL_ERR(rc, "%s", g->phase_detail);
    if ((rc = read_assignment(&g->phase_rep.r, &list, &n)) < 0) {
        free_ctps(list, n);
        return SHOAL_ERR(rc, "malformed sync response");
    }
    phase_reset(g); /* nothing in flight now: on_revoked may commit */
    g->applied = true;
    if (g->keep) {
        g->incoming = list;
        g->nincoming = n;
        if (g->read_in_round) /* with the new generation, before what it gives up moves */
            round_commit(c, g);
        if ((rc = give_up_gone(c, g)) == 0)
            rc = note_added(g);
    } else {
        free_assigned(g);
        g->assigned = list;
        g->nassigned = n;
    }
    if (rc == 0)
        g->owned_generation = g->generation;
    return rc < 0 ? rc : fetch_send(g);
}

/* The offsets are in (-1 for a partition with none committed): go on to attaching. */
static int round_fetched(struct cgroup *g)
{
    size_t n;
    const struct ctp *list = round_new(g, &n);
    ctl_reader_t *r = &g->phase_rep.r;
    uint32_t got;
    int rc = g->phase_status;

    if (rc < 0)
        return SHOAL_ERR(rc, "%s", g->phase_detail);
    if (!(g->offsets = shoal__calloc(n, sizeof(*g->offsets))))
        return -ENOMEM;
    got = ctl_get_u32(r);
    for (uint32_t i = 0; i < got && !r->err; i++) {
        char topic[SHOAL_TOPIC_NAME_MAX + 1];
        ctl_get_str(r, topic, sizeof(topic));
        int32_t partition = ctl_get_i32(r);
        int64_t off = ctl_get_i64(r);
        if (i < n && (partition != list[i].partition || strcmp(topic, list[i].topic)))
            got = 0; /* not the partitions asked for */
        else if (i < n)
            g->offsets[i] = off;
    }
    rc = got == n ? ctl_reader_finish(r) : SHOAL_EPROTO;
    phase_reset(g);
    if (rc < 0)
        return SHOAL_ERR(rc, "malformed offset fetch response");
    round_hook(CGROUP_BEFORE_ATTACH);
    phase_enter(g, ROUND_ATTACHING);
    return 0;
}

/* Where the member was in tp, just attached, when it gave it up (left_remember), if it is
 * the same ring (not one of a topic created again under the name since): -1 otherwise. */
static int64_t left_position(shoal_consumer_t *c, const struct cgroup *g, const struct ctp *tp)
{
    ring_file_id_t now;

    for (size_t i = 0; i < g->nleft; i++) {
        const struct left *l = &g->left[i];
        if (l->partition == tp->partition && !strcmp(l->topic, tp->topic))
            return consumer__ring_file(c, tp->topic, tp->partition, &now, NULL) == 0 &&
                           now.dev == l->ring.dev && now.ino == l->ring.ino
                       ? l->position
                       : -1;
    }
    return -1;
}

/* Position a partition just attached at its committed offset, else where the member left it
 * (left_position), else per auto_offset_reset. */
static int position(shoal_consumer_t *c, struct cgroup *g, const struct ctp *tp, int64_t offset)
{
    if (offset < 0)
        offset = left_position(c, g, tp);
    if (offset >= 0)
        return shoal_consumer_seek(c, tp->topic, tp->partition, SHOAL_SEEK_OFFSET, offset);
    return shoal_consumer_seek(
        c, tp->topic, tp->partition,
        g->reset == SHOAL_OFFSET_RESET_EARLIEST ? SHOAL_SEEK_BEGINNING : SHOAL_SEEK_END, 0);
}

/* Detach what the round attached so far. */
static void round_detach(shoal_consumer_t *c, struct cgroup *g)
{
    size_t n;
    const struct ctp *list = round_new(g, &n);

    for (size_t i = 0; i < g->nattached; i++)
        (void)consumer__unassign_one(c, list[i].topic, list[i].partition);
    g->nattached = 0;
}

/* Attach and position the new partitions, waiting for shoald until deadline_ns: 0 when all
 * are; 1 while an attach has not been answered (a later poll asks again, and the late
 * answer serves it); or the failure. A daemon restart met on the consumer's connection
 * (SHOAL_ECLOSED) starts the attaches again once, on a new connection (the group
 * connection broke too, so the member soon loses them and joins anew; a daemon still down
 * fails the attach SHOAL_ENODAEMON, and the round with it). */
static int round_attach(shoal_consumer_t *c, struct cgroup *g, int64_t deadline_ns)
{
    size_t n;
    const struct ctp *list = round_new(g, &n);
    int rc = 0;

    while (g->nattached < n && rc == 0) {
        const struct ctp *tp = &list[g->nattached];
        rc = consumer__assign_until(c, tp->topic, tp->partition, deadline_ns);
        if (rc == 0 && (rc = position(c, g, tp, g->offsets[g->nattached])) < 0)
            (void)consumer__unassign_one(c, tp->topic, tp->partition);
        if (rc == 1) /* stopped by shoald: left out, as the next poll says */
            rc = 0;
        if (rc == 0)
            g->nattached++;
        if (rc == SHOAL_ECLOSED && !g->reattached) {
            round_detach(c, g);
            g->reattached = true;
            rc = 0;
        }
    }
    if (rc == SHOAL_ETIMEDOUT && shoal__mono_ns() < g->phase_by_ns)
        return 1;
    return rc;
}

/* A cooperative round is over: what the member holds is the new assignment. */
static void take_incoming(struct cgroup *g)
{
    free_assigned(g);
    g->assigned = g->incoming;
    g->nassigned = g->nincoming;
    g->incoming = NULL;
    g->nincoming = 0;
}

/* The round is over with rc: on_assigned with the new partitions, or (after the
 * assignment came) detach what was attached. 0 when assigned; SHOAL_EREBALANCE to start
 * another. */
static int round_end(shoal_consumer_t *c, struct cgroup *g, int rc)
{
    size_t n;
    const struct ctp *added = round_new(g, &n);

    phase_reset(g); /* nothing in flight now: the callbacks below may commit */
    client_forget_late_attach(consumer__client(c));
    if (rc < 0 && g->applied && g->keep) { /* half applied: start clean with the next join */
        round_detach(c, g);                /* never handed to on_assigned */
        revoke_all(c, g, true);
    } else if (rc < 0 && g->applied) {
        consumer__unassign_all(c);
    } else if (rc == 0 && g->keep) {
        take_incoming(g);
    }
    if (rc == SHOAL_EGENERATION && !g->assign_failed) { /* unknown now: join as a new member */
        revoke_all(c, g, true);
        g->member_id[0] = '\0';
        g->generation = -1;
        rc = SHOAL_EREBALANCE;
    } else if (rc == 0) {
        if (g->round_commit_rc < 0) /* its failure went to on_commit */
            g->round_commit_rc = 0;
        g->attached = true;
        g->need_join = g->follow_up;
        g->follow_up = false;
        g->last_heartbeat_ns = g->last_commit_ns = shoal__mono_ns();
        left_forget(g);
        call_list(c, g, g->on_assigned, added, n);
    }
    round_reset(g);
    return rc;
}

/* Take the round as far as it goes, waiting for answers until deadline_ns: 0 when it ended
 * with the new assignment attached; 1 while an answer is still to come (the next poll goes
 * on); SHOAL_EREBALANCE to start another; or the failure. */
static int rejoin_step(shoal_consumer_t *c, struct cgroup *g, int64_t deadline_ns)
{
    int rc = 0;

    if (g->phase == ROUND_NONE)
        rc = round_begin(c, g);
    if (rc == 0 && g->phase == ROUND_JOINING &&
        (rc = round_wait(c, g, reads_in_round(c, g) ? 0 : deadline_ns)) == 0)
        rc = round_joined(g);
    if (rc == 0 && g->phase == ROUND_SYNCING &&
        (rc = round_wait(c, g, reads_in_round(c, g) ? 0 : deadline_ns)) == 0)
        rc = round_synced(c, g);
    if (rc == 0 && g->phase == ROUND_FETCHING && (rc = round_wait(c, g, deadline_ns)) == 0)
        rc = round_fetched(g);
    if (rc == 0 && g->phase == ROUND_ATTACHING)
        rc = round_attach(c, g, deadline_ns);
    return rc > 0 ? rc : round_end(c, g, rc);
}

/* ------------------------------------------------------------------ heartbeat, poll */

/* A heartbeat's response, read by whichever call came to it. Its failure is acted on by
 * maintain(), unless the member has rejoined since (the answer is about a membership that
 * is over). */
static void heartbeat_done(struct cgroup *g, const struct pend *e, int status)
{
    g->hb_pending = false;
    if (status == 0 || e->joins != g->joins)
        return;
    g->hb_status = status;
    snprintf(g->hb_detail, sizeof(g->hb_detail), "%s", shoal_errmsg());
}

/* Send a heartbeat when one is due, and read its response if it comes within wait_ms; if
 * it does not (shoald is stopped or slow), it stays pending, looked for without waiting by
 * later polls (they read records meanwhile) and read by any call, and no other heartbeat is
 * sent meanwhile. Returns the failure of a heartbeat read now or earlier, with its detail. */
static int heartbeat(shoal_consumer_t *c, struct cgroup *g, int wait_ms)
{
    int64_t deadline = shoal__mono_ns();
    int rc = 0;

    if (!g->need_join && !g->hb_pending && ms_since(g->last_heartbeat_ns) >= g->heartbeat_ms) {
        ctl_writer_t w;
        uint32_t seq;
        ctl_writer_init(&w);
        ctl_frame_begin(&w, CTL_GROUP_HEARTBEAT, 0);
        ctl_put_str(&w, g->group_id);
        ctl_put_str(&w, g->member_id);
        ctl_put_i32(&w, g->generation);
        /* Not waiting for room: a socket too full for a heartbeat is one shoald does not
         * read, and the poll has records to read meanwhile. */
        rc = conn_send(g, &w, PEND_HEARTBEAT, &seq, deadline);
        ctl_writer_release(&w);
        if (rc == SHOAL_ETIMEDOUT && g->conn) { /* not sent: a later poll sends it */
            shoal__clear_err();
            rc = 0;
        } else if (rc < 0) {
            return rc;
        } else {
            g->hb_pending = true;
            g->last_heartbeat_ns = shoal__mono_ns();
            deadline += (int64_t)wait_ms * 1000000;
            round_hook(CGROUP_HEARTBEAT_SENT);
        }
    }
    while (g->hb_pending && rc == 0) { /* the responses before it too */
        struct pend e;
        client_reply_t rep;
        int status;
        rc = conn_read(g, conn_wake(c, g), deadline, &e, &status, &rep);
        if (rc == 0)
            conn_dispatch(c, g, &e, status, &rep);
    }
    if (rc < 0 && rc != SHOAL_ETIMEDOUT)
        return rc;
    rc = g->hb_status;
    g->hb_status = 0;
    return rc < 0 ? SHOAL_ERR(rc, "%s", g->hb_detail) : 0;
}

/* Open the group connection without waiting for shoald's answer: connect and send HELLO
 * by deadline_ns, the answer read by hello_wait(). A daemon that takes connections but
 * does not answer them (stopped with SIGSTOP, hung) then costs a poll nothing beyond its
 * timeout; before, the handshake waited 30 s inside it. */
static int conn_open(shoal_consumer_t *c, struct cgroup *g, int64_t deadline_ns)
{
    uint32_t seq;
    int rc = client_new(consumer__client(c)->socket_path, &g->conn);

    if (rc == 0)
        g->conn->daemon_user = consumer__client(c)->daemon_user;
    if (rc == 0 && (rc = client_hello_send(g->conn, &seq, deadline_ns)) < 0) {
        shoal_client_close(g->conn);
        g->conn = NULL;
    }
    if (rc < 0)
        return rc;
    g->pend[0] =
        (struct pend){.seq = seq, .type = CTL_HELLO, .kind = PEND_HELLO, .joins = g->joins};
    g->npend = 1;
    g->connecting = true;
    return 0;
}

/* Read the answer to the connection's HELLO if it comes by deadline_ns (nothing else was
 * sent, so it is the next frame). 0 once the connection is ready; SHOAL_ETIMEDOUT while
 * shoald has not answered (the next poll looks again); or its refusal, the connection
 * dropped. */
static int hello_wait(shoal_consumer_t *c, struct cgroup *g, int64_t deadline_ns)
{
    client_reply_t rep;
    struct pend e;
    int status, rc = conn_read(g, conn_wake(c, g), deadline_ns, &e, &status, &rep);

    if (rc < 0)
        return rc;
    if (status == 0) {
        status = client_hello_check(g->conn, &rep.r);
        client_reply_release(&rep);
    }
    if (status < 0) {
        conn_drop(g);
        return status;
    }
    g->connecting = false;
    return 0;
}

/* A broken group connection: the partitions are lost (the daemon removed the member when
 * the connection closed), and a new connection joins as a new member. Waits for the
 * handshake until deadline at most. */
static int reconnect(shoal_consumer_t *c, struct cgroup *g, int64_t deadline)
{
    int rc;

    if (!g->conn) {
        revoke_all(c, g, true);
        g->need_join = true;
        g->member_id[0] = '\0';
        g->generation = -1;
        if ((rc = conn_open(c, g, deadline)) < 0)
            return rc;
    }
    if (!g->connecting)
        return 0;
    return hello_wait(c, g, deadline);
}

static int fenced_error(const struct cgroup *g)
{
    return SHOAL_ERR(SHOAL_EFENCED,
                     "group %s: another consumer joined with group_instance_id '%s' and took "
                     "this one's place; close this consumer",
                     g->group_id, g->instance_id);
}

/* A fenced member gives up its partitions (no commit: they are someone else's now); the
 * detail is said after on_revoked, whose calls clear it. */
static int fence(shoal_consumer_t *c, struct cgroup *g, int rc)
{
    if (rc != SHOAL_EFENCED)
        return rc;
    revoke_all(c, g, true);
    g->fenced = true;
    g->need_join = false;
    return fenced_error(g);
}

/* The protocol work that is due; waits for shoald wait_ms at most (but for room in a
 * socket that shoald does not read: a call's timeout). */
static int maintain(shoal_consumer_t *c, struct cgroup *g, int wait_ms)
{
    int64_t deadline = shoal__mono_ns() + (int64_t)wait_ms * 1000000;
    int rc;

    if (g->fenced)
        return fenced_error(g);
    if ((rc = reconnect(c, g, deadline)) == SHOAL_ETIMEDOUT)
        return 0; /* shoald has not answered the handshake: nothing to do until it does */
    if (rc < 0)
        return rc;
    rc = heartbeat(c, g, wait_ms);
    if (rc == SHOAL_EREBALANCE)
        g->need_join = true;
    else if (rc == SHOAL_EGENERATION) { /* removed from the group: partitions lost */
        revoke_all(c, g, true);
        g->member_id[0] = '\0';
        g->generation = -1;
        g->need_join = true;
    } else if (rc < 0)
        return fence(c, g, rc);
    if (g->need_join && shoal__mono_ns() < g->retry_ns)
        return 0; /* the last assignment failed: wait (poll sleeps meanwhile) */
    for (int tries = 0; g->need_join && tries < 16; tries++) {
        rc = rejoin_step(c, g, deadline);
        if (rc > 0)
            break;                      /* an answer is still to come: the next poll goes on */
        if (rc < 0 && g->assign_failed) /* the assignor's code, whatever it is */
            return rc;
        if (rc < 0 && rc != SHOAL_EREBALANCE)
            return fence(c, g, rc);
    }
    /* With CGROUP_ASYNC_MAX commits unanswered, waiting for room would hold up the poll:
     * the next poll tries again. */
    if ((!g->need_join || joining_kept(g)) && g->auto_commit && g->attached && g->nassigned &&
        ms_since(g->last_commit_ns) >= g->auto_commit_ms && g->nasync < CGROUP_ASYNC_MAX)
        (void)commit(c, g, NULL, 0, false, deadline);
    return 0;
}

/* How much longer than asked a poll's step (maintain(), then a read) may take before the
 * member counts as having been stopped in it (a stop is what makes it overrun: each wait
 * ends at its timeout). Small beside any session: a member silent for just over its
 * session is removed. A step that overruns by scheduling alone costs a heartbeat's round
 * trip, and only while shoald has not answered one for a whole session. */
#define CGROUP_OVERRUN_MS 100

/* A step that began at began_ns, allowed to wait allowed_ms in all, read n records: if it
 * overran (the process was stopped in it: SIGSTOP, a debugger) and the member has been
 * silent for longer than its session since, shoald may have removed it and handed its
 * partitions on. Put the records back (each partition seeks to the first of them) and let
 * the poll ask shoald first (true), as Kafka's client checks its timers before fetching:
 * before, a member continued after a long stop delivered records of partitions another
 * member had already taken over. The whole step counts, not the read alone: a stop while
 * the heartbeat's answer was awaited left that answer (sent before the member's removal)
 * to be read on continuing, and the read that followed did not overrun. */
static bool stale_read(shoal_consumer_t *c, const struct cgroup *g, const shoal_record_t *out,
                       int n, int64_t began_ns, int allowed_ms)
{
    if (n <= 0 || ms_since(began_ns) <= allowed_ms + CGROUP_OVERRUN_MS ||
        ms_since(g->last_heartbeat_ns) <= g->session_ms)
        return false;
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < i &&
               (out[j].partition != out[i].partition || strcmp(out[j].topic, out[i].topic)))
            j++;
        if (j == i) /* the partition's first record */
            (void)shoal_consumer_seek(c, out[i].topic, out[i].partition, SHOAL_SEEK_OFFSET,
                                      out[i].offset);
    }
    return true;
}

/* How long the poll may wait now: up to its deadline, one heartbeat interval at most. */
static int poll_slice(const struct cgroup *g, int timeout_ms, int64_t deadline)
{
    int64_t left_ms = timeout_ms < 0 ? g->heartbeat_ms : (deadline - shoal__mono_ns()) / 1000000;
    return (int)SHOAL_MAX(0, SHOAL_MIN(left_ms, (int64_t)g->heartbeat_ms));
}

/* Read what the member holds, waiting up to slice ms, at the end of a step that began at
 * began_ns and allowed maintain() maintain_ms: consumer__poll() but for records a stop in
 * the step made stale (stale_read), which are put back: 0 then. */
static int cgroup_read(shoal_consumer_t *c, const struct cgroup *g, shoal_record_t *out, size_t max,
                       int slice, int64_t began_ns, int maintain_ms)
{
    int n = consumer__poll(c, out, max, slice);

    return stale_read(c, g, out, n, began_ns, maintain_ms + slice) ? 0 : n;
}

static bool subscribed(const struct cgroup *g)
{
    return g->topics || g->pattern;
}

int cgroup_poll(shoal_consumer_t *c, struct cgroup *g, shoal_record_t *out, size_t max,
                int timeout_ms)
{
    int64_t deadline = shoal__mono_ns() + (int64_t)timeout_ms * 1000000;

    if (!subscribed(g))
        return SHOAL_ERR(SHOAL_EINVAL, "group consumer: call shoal_consumer_subscribe() (or "
                                       "assign partitions by hand) first");
    for (;;) {
        int64_t began = shoal__mono_ns();
        int n, slice, rc, maintain_ms;

        if (consumer__woken(c)) /* a rebalance's waits end at the slice's end */
            return SHOAL_ERR(SHOAL_EWAKEUP, "the poll was ended by shoal_consumer_wakeup()");
        maintain_ms = poll_slice(g, timeout_ms, deadline);
        rc = maintain(c, g, maintain_ms);

        report_lost_commits(c, g);
        slice = poll_slice(g, timeout_ms, deadline); /* what maintain left of it */
        /* A retry loop around poll must not spin, on a missing daemon or a broken assignor. */
        if ((rc == SHOAL_ENODAEMON || (rc < 0 && g->assign_failed)) && slice > 0)
            consumer__nap(c, slice);
        if (rc < 0)
            return rc;
        if (reads_in_round(c, g)) {
            slice = SHOAL_MIN(slice, CGROUP_ROUND_LOOK_MS);
            n = cgroup_read(c, g, out, max, slice, began, maintain_ms);
            g->read_in_round |= n > 0;
        } else if (g->phase != ROUND_NONE) { /* maintain() waits for the round's answers */
            n = 0;
        } else if (consumer__assigned_count(c) == 0) {
            n = consumer__poll(c, out, max, 0); /* nothing to read, but what was left out */
            if (n == 0 && slice > 0)
                consumer__nap(c, slice);
        } else {
            n = cgroup_read(c, g, out, max, slice, began, maintain_ms);
        }
        if (n != 0)
            return n;
        if (timeout_ms >= 0 && shoal__mono_ns() >= deadline)
            return 0;
    }
}

/* ------------------------------------------------------------------ subscribe, commit */

bool cgroup_subscribed(const struct cgroup *g)
{
    return g && subscribed(g);
}

static void subscription_free(struct cgroup *g)
{
    for (size_t i = 0; i < g->ntopics; i++)
        shoal__free(g->topics[i]);
    shoal__free(g->topics);
    shoal__free(g->pattern);
    g->topics = NULL;
    g->ntopics = 0;
    g->pattern = NULL;
}

/* The consumer's group, when it may subscribe now: a group consumer, not subscribed yet,
 * and without partitions assigned by hand. */
static int subscribe_group(shoal_consumer_t *c, struct cgroup **out)
{
    struct cgroup *g;
    int rc;

    if ((rc = consumer__check_owner(c)) < 0)
        return rc;
    if (!(g = consumer__group(c)))
        return SHOAL_ERR(SHOAL_EGROUPID, "subscribe needs a consumer opened with a group_id");
    if (g->fenced) /* kept through unsubscribe: its place is another process's */
        return fenced_error(g);
    if (subscribed(g))
        return SHOAL_ERR(SHOAL_EINVAL, "the consumer is subscribed already: "
                                       "shoal_consumer_unsubscribe() first");
    if (consumer__assigned_count(c))
        return SHOAL_ERR(SHOAL_EINVAL, "partitions were assigned by hand: no subscribing");
    *out = g;
    return 0;
}

/* The subscription is set: open the group's connection. Its handshake's answer is read by
 * the polls that follow, as after a reconnect. */
static int subscribe_start(shoal_consumer_t *c, struct cgroup *g)
{
    int rc = conn_open(c, g, call_deadline(g));

    if (rc < 0) {
        subscription_free(g);
        return rc;
    }
    g->need_join = true;
    return 0;
}

static int subscribe(shoal_consumer_t *c, const char *const *topics, size_t n)
{
    struct cgroup *g;
    int rc;

    if ((rc = subscribe_group(c, &g)) < 0)
        return rc;
    if (n == 0 || !topics)
        return SHOAL_ERR(SHOAL_EINVAL, "subscribe needs topics");
    for (size_t i = 0; i < n; i++) {
        if (!topics[i])
            return SHOAL_ERR(SHOAL_EINVAL, "shoal_consumer_subscribe: topics[%zu] is NULL", i);
        if (!shoal_topic_name_is_valid(topics[i]))
            return SHOAL_ERR(SHOAL_ENAME, "invalid topic name '%.260s'", topics[i]);
    }
    if (!(g->topics = shoal__calloc(n, sizeof(*g->topics))))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++, g->ntopics++)
        if (!(g->topics[i] = shoal__strdup(topics[i]))) {
            subscription_free(g);
            return -ENOMEM;
        }
    return subscribe_start(c, g);
}

int shoal_consumer_subscribe(shoal_consumer_t *c, const char *const *topics, size_t n)
{
    CONSUMER_CALL(c, subscribe(c, topics, n));
}

static int subscribe_pattern(shoal_consumer_t *c, const char *pattern)
{
    struct cgroup *g;
    shoal_pattern_t *p;
    int rc;

    if ((rc = subscribe_group(c, &g)) < 0 ||
        (rc = shoal__pattern_compile(pattern, &p)) < 0) /* said now, not by a later poll */
        return rc;
    shoal__pattern_free(p);
    if (!(g->pattern = shoal__strdup(pattern)))
        return -ENOMEM;
    return subscribe_start(c, g);
}

int shoal_consumer_subscribe_pattern(shoal_consumer_t *c, const char *pattern)
{
    CONSUMER_CALL(c, subscribe_pattern(c, pattern));
}

static int build_commit(struct cgroup *g, ctl_writer_t *w, const shoal_topic_partition_offset_t *o,
                        size_t n, shoal_consumer_t *c)
{
    ctl_frame_begin(w, CTL_GROUP_COMMIT, 0);
    ctl_put_str(w, g->group_id);
    ctl_put_str(w, g->member_id);
    ctl_put_i32(w, g->generation);
    if (n) {
        ctl_put_u32(w, (uint32_t)n);
        for (size_t i = 0; i < n; i++) {
            if (!o[i].topic || o[i].offset < 0)
                return SHOAL_ERR(SHOAL_EINVAL, "commit entry %zu: no topic or negative offset", i);
            ctl_put_str(w, o[i].topic);
            ctl_put_i32(w, o[i].partition);
            ctl_put_i64(w, o[i].offset);
        }
        return 0;
    }
    /* The positions of what the member holds: not of a partition left out (stopped). */
    size_t count_at = w->len, held = 0;
    ctl_put_u32(w, 0);
    for (size_t i = 0; i < g->nassigned; i++) {
        int64_t pos = shoal_consumer_position(c, g->assigned[i].topic, g->assigned[i].partition);
        if (pos == SHOAL_ENOPARTITION)
            continue;
        if (pos < 0)
            return (int)pos;
        ctl_put_str(w, g->assigned[i].topic);
        ctl_put_i32(w, g->assigned[i].partition);
        ctl_put_i64(w, pos);
        held++;
    }
    ctl_patch_u32(w, count_at, (uint32_t)held);
    return 0;
}

/* CGROUP_ASYNC_MAX commits (or more: a round's are sent whatever is in flight) are
 * unanswered: wait until one fewer are, as long as a call would. */
static int make_room(shoal_consumer_t *c, struct cgroup *g)
{
    int64_t deadline = client_deadline(g->client);
    int rc = conn_drain_commits(c, g, CGROUP_ASYNC_MAX - 1, deadline);

    if (rc == SHOAL_ETIMEDOUT && conn_wake(c, g) && consumer__woken(c))
        return SHOAL_ERR(SHOAL_EWAKEUP,
                         "group %s: ended by shoal_consumer_wakeup() while %d commits were in "
                         "flight: this one was not sent",
                         g->group_id, CGROUP_ASYNC_MAX);
    if (rc == SHOAL_ETIMEDOUT)
        return SHOAL_ERR(rc, "group %s: %d commits in flight, and shoald did not answer in %d ms",
                         g->group_id, CGROUP_ASYNC_MAX, g->client->timeout_ms);
    return rc;
}

/* Commit o[0..n) (n = 0: every assigned partition's position). A synchronous commit waits
 * for its answer as a call does; an asynchronous one waits for room in the socket until
 * send_by_ns at most (SHOAL_ETIMEDOUT: not sent). */
static int commit(shoal_consumer_t *c, struct cgroup *g, const shoal_topic_partition_offset_t *o,
                  size_t n, bool sync, int64_t send_by_ns)
{
    ctl_writer_t w;
    uint32_t seq;
    int rc;

    if (!g->conn)
        return SHOAL_ERR(SHOAL_ECLOSED, "group %s: not connected", g->group_id);
    if (g->generation < 0)
        return SHOAL_ERR(SHOAL_EGENERATION, "not a member of group %s (yet): poll to join",
                         g->group_id);
    if (g->phase != ROUND_NONE && !joining_kept(g))
        return SHOAL_ERR(SHOAL_EREBALANCE,
                         "group %s is rebalancing: poll until it is done, then "
                         "commit",
                         g->group_id);
    if (!sync && g->nasync >= CGROUP_ASYNC_MAX && (rc = make_room(c, g)) < 0)
        return rc;
    if (!sync)
        return commit_send(c, g, o, n, send_by_ns, &seq);
    ctl_writer_init(&w);
    rc = build_commit(g, &w, o, n, c);
    if (rc == 0)
        rc = fence(c, g, conn_call_simple(c, g, &w));
    ctl_writer_release(&w);
    g->last_commit_ns = shoal__mono_ns();
    return rc;
}

/* Send a commit without waiting for its answer, by send_by_ns (SHOAL_ETIMEDOUT: not sent):
 * *seq is its request's. */
static int commit_send(shoal_consumer_t *c, struct cgroup *g,
                       const shoal_topic_partition_offset_t *o, size_t n, int64_t send_by_ns,
                       uint32_t *seq)
{
    ctl_writer_t w;
    int rc;

    ctl_writer_init(&w);
    rc = build_commit(g, &w, o, n, c);
    if (rc == 0)
        rc = conn_send(g, &w, PEND_COMMIT, seq, send_by_ns);
    ctl_writer_release(&w);
    g->last_commit_ns = shoal__mono_ns();
    return rc;
}

/* Commit every assigned partition's position, synchronously. */
static int commit_positions(shoal_consumer_t *c, struct cgroup *g)
{
    return commit(c, g, NULL, 0, true, -1);
}

/* The checks both commit entry points make, then the commit. */
static int commit_checked(shoal_consumer_t *c, const shoal_topic_partition_offset_t *offsets,
                          size_t n, bool sync)
{
    struct cgroup *g = consumer__group(c);
    int rc;

    if ((rc = consumer__check_owner(c)) < 0)
        return rc;
    if (!g || !subscribed(g))
        return SHOAL_ERR(SHOAL_EINVAL, "commit needs a subscribed group consumer");
    if (g->fenced)
        return fenced_error(g);
    if (n && !offsets)
        return SHOAL_ERR(SHOAL_EINVAL, "commit of %zu offsets without an array", n);
    for (size_t i = 0; i < n; i++) /* an async commit would say so only in on_commit */
        if (!offsets[i].topic || !shoal_topic_name_is_valid(offsets[i].topic) ||
            offsets[i].partition < 0 || offsets[i].offset < 0)
            return SHOAL_ERR(SHOAL_EINVAL, "commit of %s-%d at %lld",
                             offsets[i].topic ? offsets[i].topic : "(NULL)", offsets[i].partition,
                             (long long)offsets[i].offset);
    if (n == 0 && (!g->attached || g->nassigned == 0))
        return 0;
    rc = commit(c, g, offsets, n, sync, call_deadline(g));
    if (rc == 0) /* the detail of an async commit reported meanwhile is not this call's */
        shoal__clear_err();
    return rc;
}

int shoal_commit_sync(shoal_consumer_t *c, const shoal_topic_partition_offset_t *offsets, size_t n)
{
    CONSUMER_CALL(c, commit_checked(c, offsets, n, true));
}

int shoal_commit_async(shoal_consumer_t *c, const shoal_topic_partition_offset_t *offsets, size_t n)
{
    CONSUMER_CALL(c, commit_checked(c, offsets, n, false));
}

/* ------------------------------------------------------------------ close */

/* Read the answers until the round's commit's, if it is unanswered, until close_by_ns;
 * then its failure, if it failed or did not come. */
static int round_commit_status(shoal_consumer_t *c, struct cgroup *g)
{
    int rc;

    if (g->round_commit_rc > 0)
        (void)conn_wait(c, g, g->round_commit_seq, g->close_by_ns);
    if ((rc = g->round_commit_rc) > 0)
        return SHOAL_ERR(SHOAL_ETIMEDOUT,
                         "group %s: shoald did not answer the commit of its rebalance "
                         "in time: positions may not be committed",
                         g->group_id);
    if (rc < 0)
        return SHOAL_ERR(rc,
                         "group %s: the commit of its rebalance failed (%s): positions %s "
                         "committed",
                         g->group_id, shoal_strerror(rc),
                         rc == SHOAL_ECLOSED || rc == SHOAL_ETIMEDOUT ? "may not be" : "not");
    return 0;
}

/* Closing while the sync waits, after records were read in the round: wait for the sync's
 * answer (close's time), so that they can be committed with the new generation
 * (round_close_commit, or the application from on_revoked). 0 when it came, the round
 * given up (shoald takes the commit also when the answer is SHOAL_EREBALANCE: the round
 * was cut short, and the member owns what it owned); else the failure. */
static int round_close_sync(shoal_consumer_t *c, struct cgroup *g)
{
    int rc;

    if (g->phase != ROUND_SYNCING)
        return 0;
    if ((rc = round_wait(c, g, g->close_by_ns)) == 0 && (rc = g->phase_status) < 0 &&
        rc != SHOAL_EREBALANCE)
        SHOAL_ERR(rc, "%s", g->phase_detail);
    if (rc > 0)
        rc = SHOAL_ERR(SHOAL_ETIMEDOUT, "group %s: shoald did not answer the sync in time",
                       g->group_id);
    if (rc == 0 || rc == SHOAL_EREBALANCE) {
        phase_reset(g);
        rc = 0;
    }
    return rc;
}

/* Closing in a round in which records were read while the join or the sync waited
 * (auto-commit): commit them, while joining at once, while syncing once the sync's answer
 * is in (round_close_sync); after that, the round's commit at the sync's answer has them. */
static int round_close_commit(shoal_consumer_t *c, struct cgroup *g)
{
    int rc;

    if (g->phase != ROUND_SYNCING && g->phase != ROUND_JOINING)
        return round_commit_status(c, g);
    if ((rc = round_close_sync(c, g)) < 0)
        return SHOAL_ERR(rc,
                         "group %s: closed in a rebalance (%s): the positions read while it "
                         "went on are not committed",
                         g->group_id, shoal_errmsg());
    return commit_positions(c, g); /* while joining, ahead of the join (joining_kept) */
}

/* Commit (auto-commit), revoke and leave, waiting for shoald until g->close_by_ns at most:
 * the failure of the commit. */
static int close_membership(shoal_consumer_t *c, struct cgroup *g)
{
    char detail[512];
    int rc;

    if (!g->conn) { /* it broke: the daemon removed the member, its partitions are lost */
        if (g->attached && g->nassigned && g->auto_commit)
            return SHOAL_ERR(SHOAL_ECLOSED,
                             "group %s: the connection to shoald broke: positions not committed",
                             g->group_id);
        return round_commit_status(c, g);
    }
    g->close_by_ns =
        shoal__mono_ns() + (int64_t)SHOAL_MIN(g->session_ms, g->client->timeout_ms) * 1000000;
    if (g->phase != ROUND_NONE) {
        /* The round is under way: a leave would wait behind its join or sync at shoald;
         * closing the connection is the leave, once the positions are committed. */
        if (g->read_in_round && g->auto_commit) {
            rc = round_close_commit(c, g);
        } else {
            rc = round_commit_status(c, g);
            if (g->read_in_round) /* on_revoked below may commit what was read */
                (void)round_close_sync(c, g);
        }
        if (rc == 0 && !g->stalled) /* those sent while the join waited, ahead of it */
            (void)conn_drain_commits(c, g, 0, g->close_by_ns);
        snprintf(detail, sizeof(detail), "%s", shoal_errmsg());
        detach_all(c, g, true); /* on_revoked's calls clear the detail */
        return rc < 0 ? SHOAL_ERR(rc, "%s", detail) : rc;
    }
    rc = revoke_all(c, g, false);
    if (rc == 0) /* 0 but after a round that failed after its commit (nothing was held) */
        rc = round_commit_status(c, g);
    /* When shoald did not answer the commit, closing the connection is the leave. */
    if (g->stalled || g->connecting)
        return rc;
    if (conn_drain(c, g, g->close_by_ns) < 0) /* the answers to async commits */
        return rc;
    /* A static member does not leave: its place waits for it (session timeout). */
    if (!g->instance_id[0] && g->member_id[0]) {
        ctl_writer_t w;
        ctl_writer_init(&w);
        ctl_frame_begin(&w, CTL_GROUP_LEAVE, 0);
        ctl_put_str(&w, g->group_id);
        ctl_put_str(&w, g->member_id);
        (void)conn_call_simple(c, g, &w);
        ctl_writer_release(&w);
    }
    return rc;
}

/* Leave the group (close_membership) and drop its connection. 0, or the failure of the
 * commit. */
static int leave_group(shoal_consumer_t *c, struct cgroup *g)
{
    char detail[512];
    int rc = close_membership(c, g);

    snprintf(detail, sizeof(detail), "%s", shoal_errmsg());
    if (g->conn) /* async commits still unanswered reach on_commit (SHOAL_ECLOSED) */
        conn_drop(g);
    report_lost_commits(c, g);
    if (rc < 0) /* the commit's detail, not the last lost commit's */
        SHOAL_ERR(rc, "%s", detail);
    return rc;
}

/* Free what the membership holds, and put it back as cgroup_new() made it: every field
 * from conn on is the membership's, those before it the settings. */
static void membership_forget(struct cgroup *g)
{
    shoal_client_close(g->conn);
    round_reset(g);
    free_assigned(g);
    left_forget(g);
    subscription_free(g);
    memset(&g->conn, 0, sizeof(*g) - offsetof(struct cgroup, conn));
    g->generation = -1;
    g->owned_generation = -1;
}

int cgroup_close(shoal_consumer_t *c, struct cgroup *g, bool inherited)
{
    int rc = 0;

    if (!g)
        return 0;
    if (!inherited)
        rc = leave_group(c, g);
    membership_forget(g);
    shoal__free(g->assignors);
    shoal__free(g);
    return rc;
}

static int unsubscribe(shoal_consumer_t *c)
{
    struct cgroup *g = consumer__group(c);
    bool fenced;
    int rc;

    if ((rc = consumer__check_owner(c)) < 0)
        return rc;
    if (!g || !subscribed(g))
        return SHOAL_ERR(SHOAL_EINVAL, "unsubscribe: the consumer is not subscribed");
    if (g->in_user_code)
        return SHOAL_ERR(SHOAL_EINVAL, "shoal_consumer_unsubscribe() inside the consumer's own "
                                       "callback: call it once the call that ran it returns");
    if (g->fenced)
        return fenced_error(g);
    rc = leave_group(c, g);
    if (g->attached && g->nassigned) /* the connection had broken: nothing was revoked */
        detach_all(c, g, true);
    consumer__unassign_all(c); /* a round's partitions attached so far */
    fenced = g->fenced;        /* found by the leave: for good, as in close */
    membership_forget(g);
    g->fenced = fenced;
    if (rc == 0)
        shoal__clear_err(); /* an inner call's detail, from a step that went on */
    return rc;
}

int shoal_consumer_unsubscribe(shoal_consumer_t *c)
{
    CONSUMER_CALL(c, unsubscribe(c));
}
