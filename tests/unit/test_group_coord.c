/* test_group_coord.c - the consumer group coordinator (src/shoald/group.c) driven directly,
 * without a server: requests go in through group_handle() and the answers to parked ones
 * are caught from server_reply() (linked with --wrap). The integration tests run the same
 * protocol through real clients; these pin down the commit rules, which a member can probe
 * with any request it likes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"
#include "harness.h"
#include "shoald/broker.h"
#include "shoald/config.h"
#include "shoald/group.h"
#include "shoald/log.h"
#include "shoald/server.h"
#include "util.h"
#include "daemon_config.h"

/* ------------------------------------------------------------------ caught replies */

struct reply {
    uint64_t conn;
    uint32_t seq;
    int status;
    uint8_t body[4096];
    size_t len;
};

static struct reply replies[64];
static size_t nreplies;

void __wrap_server_reply(server_t *s, const server_req_t *req, int status, const char *detail,
                         const ctl_writer_t *body);
void __wrap_server_reply(server_t *s, const server_req_t *req, int status, const char *detail,
                         const ctl_writer_t *body)
{
    struct reply *r = &replies[nreplies++ % 64];

    (void)s;
    (void)detail;
    r->conn = req->conn_id;
    r->seq = req->seq;
    r->status = status;
    r->len = body && status == 0 ? SHOAL_MIN(body->len, sizeof(r->body)) : 0;
    if (r->len)
        memcpy(r->body, body->buf, r->len);
}

/* The latest reply to (conn, seq), or NULL. */
static struct reply *reply_to(uint64_t conn, uint32_t seq)
{
    for (size_t i = nreplies; i-- > 0 && nreplies - i <= 64;)
        if (replies[i % 64].conn == conn && replies[i % 64].seq == seq)
            return &replies[i % 64];
    return NULL;
}

/* ------------------------------------------------------------------ fixture */

struct fixture {
    char dir[256];
    shoald_config_t cfg;
    broker_t b;
    group_coord_t *gc;
    uint32_t seq;
};

static int setup(void **state)
{
    static struct fixture f;
    shoal_topic_config_t tc;

    memset(&f, 0, sizeof(f));
    harness_tmpdir(f.dir, sizeof(f.dir), "groupcoord");
    log_set_level(LOG_ERR);
    daemon_config(&f.cfg, f.dir, "groupcoord");
    if (broker_open(&f.b, &f.cfg) < 0)
        return -1;
    shoal_topic_config_init(&tc);
    tc.partitions = 2;
    tc.segment_bytes = 1u << 20;
    tc.ring_slots = 2;
    tc.max_record_bytes = 1u << 16;
    if (broker_topic_create(&f.b, "t", &tc) < 0 || group_coord_open(&f.gc, NULL, &f.b) < 0)
        return -1;
    nreplies = 0;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    group_coord_close(f->gc);
    broker_close(&f->b);
    harness_rmrf(f->dir);
    return 0;
}

/* ------------------------------------------------------------------ requests */

/* Run the request in w from connection conn: its status, answered at once or (parked) by
 * the commits' flush; SERVER_PARKED while it waits (a join, for the other members). The
 * answer's fields are in the caught reply (joined()). */
static int send_from(struct fixture *f, uint64_t conn, ctl_writer_t *w)
{
    server_req_t req = {.conn_id = conn, .pid = 1, .seq = ++f->seq};
    ctl_writer_t body;
    ctl_header_t h;
    ctl_reader_t in;
    struct reply *rep;
    int rc;

    assert_int_equal(ctl_frame_end(w), 0);
    assert_int_equal(ctl_header_decode(w->buf, &h), 0);
    req.type = h.type;
    ctl_reader_init(&in, w->buf + CTL_HEADER_BYTES, w->len - CTL_HEADER_BYTES);
    ctl_writer_init(&body);
    rc = group_handle(f->gc, &req, &in, &body);
    ctl_writer_release(&body);
    ctl_writer_release(w);
    if (rc != SERVER_PARKED)
        return rc;
    group_commits_flush(f->gc);
    rep = reply_to(conn, req.seq);
    return rep ? rep->status : SERVER_PARKED;
}

struct member {
    uint64_t conn;
    char id[128];
    int32_t generation;
    uint32_t join_seq;
    int32_t session_ms;   /* 0: 10 s, as the max poll interval (the rebalance timeout) */
    const char *client;   /* NULL: "unit" */
    const char *assignor; /* NULL: "coop" */
    int32_t heartbeat_ms; /* 0: the join does not say */
    const char *pattern;  /* subscribe to this pattern, not to t */
};

/* Send a join for m owning the listed partitions of t (n of them); SERVER_PARKED until the
 * phase ends, then read by joined(). */
static int join(struct fixture *f, struct member *m, const int32_t *owned, size_t n)
{
    ctl_writer_t w;
    int rc;

    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_GROUP_JOIN, 0);
    ctl_put_str(&w, "g");
    ctl_put_str(&w, m->id);
    ctl_put_str(&w, "");
    ctl_put_str(&w, m->client ? m->client : "unit");
    ctl_put_i32(&w, m->session_ms ? m->session_ms : 10000);
    ctl_put_i32(&w, 10000);
    ctl_put_u32(&w, m->pattern ? 0 : 1);
    if (!m->pattern)
        ctl_put_str(&w, "t");
    ctl_put_u32(&w, 1);
    ctl_put_str(&w, m->assignor ? m->assignor : "coop");
    ctl_put_u32(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        ctl_put_str(&w, "t");
        ctl_put_i32(&w, owned[i]);
    }
    ctl_put_i32(&w, m->generation);
    if (m->heartbeat_ms || m->pattern)
        ctl_put_i32(&w, m->heartbeat_ms);
    if (m->pattern)
        ctl_put_str(&w, m->pattern);
    rc = send_from(f, m->conn, &w);
    m->join_seq = f->seq;
    return rc;
}

/* Begin a request of m's in its group and generation (sync, commit). */
static void member_frame(ctl_writer_t *w, uint16_t type, const struct member *m)
{
    ctl_writer_init(w);
    ctl_frame_begin(w, type, 0);
    ctl_put_str(w, "g");
    ctl_put_str(w, m->id);
    ctl_put_i32(w, m->generation);
}

/* The answer to m's last join: its generation and member id. */
static void joined(struct member *m)
{
    struct reply *rep = reply_to(m->conn, m->join_seq);
    ctl_reader_t r;
    char skip[128];

    assert_non_null(rep);
    assert_int_equal(rep->status, 0);
    ctl_reader_init(&r, rep->body, rep->len);
    m->generation = ctl_get_i32(&r);
    ctl_get_str(&r, skip, sizeof(skip)); /* protocol */
    ctl_get_str(&r, skip, sizeof(skip)); /* leader */
    ctl_get_str(&r, m->id, sizeof(m->id));
    assert_int_equal(r.err, 0);
}

/* What the answer to m's last join, as the leader's, says the members subscribe to and
 * the leader is to assign, as "member-topics... | topic:partitions..." in out. */
static void leader_view(const struct member *m, char *out, size_t cap)
{
    struct reply *rep = reply_to(m->conn, m->join_seq);
    char str[256];
    ctl_reader_t r;
    size_t used = 0;
    uint32_t n;

    assert_non_null(rep);
    ctl_reader_init(&r, rep->body, rep->len);
    (void)ctl_get_i32(&r);
    for (int i = 0; i < 3; i++) /* protocol, leader, member id */
        ctl_get_str(&r, str, sizeof(str));
    n = ctl_get_u32(&r);
    for (uint32_t i = 0; i < n; i++) {
        ctl_get_str(&r, str, sizeof(str)); /* member id */
        ctl_get_str(&r, str, sizeof(str)); /* instance id */
        for (uint32_t k = 0, nt = ctl_get_u32(&r); k < nt && !r.err; k++)
            used +=
                (size_t)snprintf(out + used, cap - used, "%s ", ctl_get_str(&r, str, sizeof(str)));
        for (uint32_t k = 0, no = ctl_get_u32(&r); k < no && !r.err; k++) {
            ctl_get_str(&r, str, sizeof(str));
            (void)ctl_get_i32(&r);
        }
        (void)ctl_get_i32(&r); /* owned generation */
    }
    used += (size_t)snprintf(out + used, cap - used, "|");
    n = ctl_get_u32(&r);
    for (uint32_t i = 0; i < n && !r.err; i++) {
        ctl_get_str(&r, str, sizeof(str));
        used += (size_t)snprintf(out + used, cap - used, " %s:%u", str, ctl_get_u32(&r));
    }
    assert_int_equal(r.err, 0);
    assert_true(used < cap);
}

/* The leader m syncs: a gets partitions pa[0..na), the members in idle[0..nidle) nothing. */
static int sync_leader(struct fixture *f, struct member *m, const struct member *a,
                       const int32_t *pa, size_t na, const struct member *const *idle, size_t nidle)
{
    ctl_writer_t w;

    member_frame(&w, CTL_GROUP_SYNC, m);
    ctl_put_u32(&w, (uint32_t)(1 + nidle));
    ctl_put_str(&w, a->id);
    ctl_put_u32(&w, (uint32_t)na);
    for (size_t i = 0; i < na; i++) {
        ctl_put_str(&w, "t");
        ctl_put_i32(&w, pa[i]);
    }
    for (size_t i = 0; i < nidle; i++) {
        ctl_put_str(&w, idle[i]->id);
        ctl_put_u32(&w, 0);
    }
    return send_from(f, m->conn, &w);
}

static int commit(struct fixture *f, const struct member *m, int32_t partition, int64_t offset)
{
    ctl_writer_t w;

    member_frame(&w, CTL_GROUP_COMMIT, m);
    ctl_put_u32(&w, 1);
    ctl_put_str(&w, "t");
    ctl_put_i32(&w, partition);
    ctl_put_i64(&w, offset);
    return send_from(f, m->conn, &w);
}

/* ------------------------------------------------------------------ tests */

/* m joins the empty group, leads it and takes both partitions. */
static void alone_with_both(struct fixture *f, struct member *m)
{
    const int32_t both[] = {0, 1};

    assert_int_equal(join(f, m, NULL, 0), 0);
    joined(m);
    assert_int_equal(sync_leader(f, m, m, both, 2, NULL, 0), 0);
}

/* a alone holds both partitions; b joins and a rejoins: the join phase is over, and the
 * leader (a) has not assigned yet. */
static void b_joins_a(struct fixture *f, struct member *a, struct member *b)
{
    const int32_t both[] = {0, 1};

    assert_int_equal(join(f, a, NULL, 0), 0);
    joined(a);
    assert_int_equal(sync_leader(f, a, a, both, 2, NULL, 0), 0);
    assert_int_equal(join(f, b, NULL, 0), SERVER_PARKED); /* waits for a to rejoin */
    assert_int_equal(join(f, a, both, 2), 0);
    joined(a);
    joined(b);
    assert_int_equal(b->generation, a->generation);
}

/* ... and a keeps 0 and withholds 1 from b until a has given it up, as a cooperative
 * assignor does. */
static void cooperative_round(struct fixture *f, struct member *a, struct member *b)
{
    const int32_t first[] = {0};
    const struct member *idle[] = {b};

    b_joins_a(f, a, b);
    assert_int_equal(sync_leader(f, a, a, first, 1, idle, 1), 0);
}

/* A cooperative member commits the partition it gives up (from on_revoked) while nobody
 * holds it; the member it is to go to may not commit it before it has it. */
/* A commit still queued when a delete (or a reset) comes in the same pass is written
 * first: before, it was written after, and the deleted group came back with it. */
static void test_a_delete_is_not_undone_by_a_commit_queued_before_it(void **state)
{
    struct fixture *f = *state;
    struct member admin = {.conn = 9, .id = "", .generation = -1};
    server_req_t req = {.conn_id = 9, .pid = 1, .type = CTL_GROUP_COMMIT, .seq = 99};
    ctl_writer_t w, body;
    ctl_reader_t in;
    int64_t off = -1;

    assert_int_equal(commit(f, &admin, 0, 0), 0); /* the group exists */
    member_frame(&w, CTL_GROUP_COMMIT, &admin);
    ctl_put_u32(&w, 1);
    ctl_put_str(&w, "t");
    ctl_put_i32(&w, 1);
    ctl_put_i64(&w, 0);
    assert_int_equal(ctl_frame_end(&w), 0);
    ctl_reader_init(&in, w.buf + CTL_HEADER_BYTES, w.len - CTL_HEADER_BYTES);
    ctl_writer_init(&body);
    assert_int_equal(group_handle(f->gc, &req, &in, &body), SERVER_PARKED); /* queued */
    ctl_writer_release(&body);
    ctl_writer_release(&w);

    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_GROUP_DELETE, 0);
    ctl_put_str(&w, "g");
    assert_int_equal(send_from(f, 10, &w), 0);
    group_commits_flush(f->gc);
    assert_int_equal(store_offset_get(f->b.store, "g", "t", 0, &off), 0);
    assert_int_equal(store_offset_get(f->b.store, "g", "t", 1, &off), 0);
}

static void test_a_withheld_partition_is_committed_by_its_last_owner(void **state)
{
    struct fixture *f = *state;
    struct member a = {.conn = 1, .generation = -1}, b = {.conn = 2, .generation = -1};

    cooperative_round(f, &a, &b);
    assert_int_equal(commit(f, &a, 0, 0), 0);                  /* still a's */
    assert_int_equal(commit(f, &a, 1, 0), 0);                  /* withheld: a gives it up */
    assert_int_equal(commit(f, &b, 1, 0), SHOAL_ENOTASSIGNED); /* never b's yet */
    assert_int_equal(commit(f, &b, 0, 0), SHOAL_ENOTASSIGNED);
}

/* A follower's sync: its status (SERVER_PARKED while the leader has not assigned). */
static int sync_follower(struct fixture *f, const struct member *m)
{
    ctl_writer_t w;

    member_frame(&w, CTL_GROUP_SYNC, m);
    ctl_put_u32(&w, 0);
    return send_from(f, m->conn, &w);
}

/* The partitions of topic t in the answer to m's last request, in out (n at most); how
 * many. */
static size_t synced(const struct fixture *f, const struct member *m, int32_t *out, size_t n)
{
    struct reply *rep = reply_to(m->conn, f->seq);
    ctl_reader_t r;
    uint32_t count;
    char topic[64];

    assert_non_null(rep);
    assert_int_equal(rep->status, 0);
    ctl_reader_init(&r, rep->body, rep->len);
    count = ctl_get_u32(&r);
    assert_true(count <= n);
    for (uint32_t i = 0; i < count; i++) {
        ctl_get_str(&r, topic, sizeof(topic));
        out[i] = ctl_get_i32(&r);
    }
    assert_int_equal(r.err, 0);
    return count;
}

/* The leader assigns a generation and rejoins at once (a cooperative leader hands over
 * what it withheld), before a follower's sync has come: the follower still learns its
 * assignment. It was refused (SHOAL_EREBALANCE), rejoined still owning the partition the
 * leader had withheld from it, read on in it, and its commits of it were refused. */
static void test_a_sync_that_comes_after_the_next_rebalance_began_is_answered(void **state)
{
    struct fixture *f = *state;
    struct member a = {.conn = 1, .generation = -1}, b = {.conn = 2, .generation = -1};
    struct member c = {.conn = 3, .generation = -1};
    const int32_t both[] = {0, 1}, first[] = {0};
    const struct member *just_a[] = {&a}, *just_c[] = {&c};
    int32_t got[2];

    b_joins_a(f, &a, &b); /* generation 2: b is given both */
    assert_int_equal(sync_leader(f, &a, &b, both, 2, just_a, 1), 0);
    assert_int_equal(sync_follower(f, &b), 0);
    assert_int_equal(synced(f, &b, got, 2), 2);

    assert_int_equal(join(f, &c, NULL, 0), SERVER_PARKED); /* generation 3 */
    assert_int_equal(join(f, &a, NULL, 0), SERVER_PARKED);
    assert_int_equal(join(f, &b, both, 2), 0);
    joined(&a);
    joined(&b);
    joined(&c);
    assert_int_equal(sync_leader(f, &a, &b, first, 1, just_c, 1), 0); /* 1 withheld from b */
    assert_int_equal(join(f, &a, NULL, 0), SERVER_PARKED); /* the leader rejoins at once */

    assert_int_equal(sync_follower(f, &b), 0); /* not SHOAL_EREBALANCE */
    assert_int_equal(synced(f, &b, got, 2), 1);
    assert_int_equal(got[0], 0);
    assert_int_equal(commit(f, &b, 1, 0), 0); /* the partition it gives up */
    assert_int_equal(commit(f, &c, 1, 0), SHOAL_ENOTASSIGNED);
}

/* A round cut short before its sync (c joins while the leader has yet to assign) leaves
 * the members' last assignment as it was: a commits its partitions while the next join
 * waits, and after that round withholds 1 from the others, a still commits it as the
 * partition it gives up. Before, the cut round emptied a's record of its assignment and
 * the round after made that its previous one: both commits of 1 were refused. */
static void test_a_round_cut_short_before_its_sync_keeps_the_last_assignment(void **state)
{
    struct fixture *f = *state;
    struct member a = {.conn = 1, .generation = -1}, b = {.conn = 2, .generation = -1};
    struct member c = {.conn = 3, .generation = -1};
    const int32_t both[] = {0, 1}, first[] = {0};
    const struct member *idle[] = {&b, &c};

    b_joins_a(f, &a, &b); /* the leader a has not synced: c joins */
    assert_int_equal(join(f, &c, NULL, 0), SERVER_PARKED);
    assert_int_equal(join(f, &b, NULL, 0), SERVER_PARKED);
    assert_int_equal(commit(f, &a, 1, 0), 0); /* a's still, while the join waits */
    assert_int_equal(join(f, &a, both, 2), 0);
    joined(&a);
    joined(&b);
    joined(&c);
    assert_int_equal(sync_leader(f, &a, &a, first, 1, idle, 2), 0);
    assert_int_equal(commit(f, &a, 0, 0), 0);
    assert_int_equal(commit(f, &a, 1, 0), 0); /* withheld: a gives it up */
    assert_int_equal(commit(f, &b, 1, 0), SHOAL_ENOTASSIGNED);
}

/* What a member says it owns in its join is not what it may commit: a newcomer that claims
 * the withheld partition (it never had it) is refused. */
static void test_a_claimed_partition_is_not_committed(void **state)
{
    struct fixture *f = *state;
    struct member a = {.conn = 1, .generation = -1}, b = {.conn = 2, .generation = -1};
    struct member c = {.conn = 3, .generation = -1};
    const int32_t both[] = {0, 1}, first[] = {0}, second[] = {1};
    const struct member *idle[] = {&b, &c};

    cooperative_round(f, &a, &b);
    /* c joins claiming partition 1; a and b rejoin; the leader withholds 1 again */
    assert_int_equal(join(f, &c, second, 1), SERVER_PARKED);
    assert_int_equal(join(f, &b, NULL, 0), SERVER_PARKED);
    assert_int_equal(join(f, &a, both, 2), 0);
    joined(&a);
    joined(&b);
    joined(&c);
    assert_int_equal(sync_leader(f, &a, &a, first, 1, idle, 2), 0);
    assert_int_equal(commit(f, &c, 1, 0), SHOAL_ENOTASSIGNED);
    assert_int_equal(commit(f, &b, 1, 0), SHOAL_ENOTASSIGNED);
}

/* Tick the coordinator every 100 ms of a clock that starts at now and runs ms. */
static int64_t tick_for(struct fixture *f, int64_t now, int ms)
{
    for (int i = 0; i < ms / 100; i++)
        (void)group_tick(f->gc, now += 100 * 1000000ll);
    return now;
}

/* A member that says nothing for its session timeout (10 s here) is removed at the tick
 * after it, not before: its commits are then refused as from a stranger. */
static void test_a_silent_member_is_removed_after_its_session_timeout(void **state)
{
    struct fixture *f = *state;
    struct member a = {.conn = 1, .generation = -1};
    int64_t now = shoal__mono_ns();

    alone_with_both(f, &a);
    now = tick_for(f, now, 9500);
    assert_int_equal(commit(f, &a, 0, 0), 0);
    (void)tick_for(f, now, 1000);
    assert_int_equal(commit(f, &a, 0, 0), SHOAL_EGENERATION);
}

/* Between the end of a join phase and the leader's sync the group is completing its
 * rebalance: commits wait for it (SHOAL_EREBALANCE), even a member's own partitions. */
static void test_commits_are_refused_until_the_leader_has_assigned(void **state)
{
    struct fixture *f = *state;
    struct member a = {.conn = 1, .generation = -1}, b = {.conn = 2, .generation = -1};
    const int32_t both[] = {0, 1};
    const struct member *idle[] = {&b};

    b_joins_a(f, &a, &b);
    assert_int_equal(commit(f, &a, 0, 0), SHOAL_EREBALANCE);
    assert_int_equal(sync_leader(f, &a, &a, both, 2, idle, 1), 0);
    assert_int_equal(commit(f, &a, 0, 0), 0);
}

/* A member that does not rejoin by the rebalance timeout (the max poll interval, 10 s
 * here) is removed, though its session (60 s) has not run out, and the join phase ends
 * without it. */
static void test_a_member_that_does_not_rejoin_is_removed_at_the_rebalance_timeout(void **state)
{
    struct fixture *f = *state;
    struct member a = {.conn = 1, .generation = -1};
    struct member b = {.conn = 2, .generation = -1, .session_ms = 60000};
    struct member c = {.conn = 3, .generation = -1};
    const int32_t both[] = {0, 1};
    const struct member *idle[] = {&b};
    int64_t now = shoal__mono_ns();

    b_joins_a(f, &a, &b);
    assert_int_equal(sync_leader(f, &a, &a, both, 2, idle, 1), 0);

    assert_int_equal(join(f, &c, NULL, 0), SERVER_PARKED); /* a rejoins, b does not */
    assert_int_equal(join(f, &a, both, 2), SERVER_PARKED);
    now = tick_for(f, now, 9000);
    assert_null(reply_to(a.conn, a.join_seq));
    (void)tick_for(f, now, 2000);
    joined(&a);
    joined(&c);
    assert_int_equal(commit(f, &b, 0, 0), SHOAL_EGENERATION);
}

/* The group list's rows, "name state members" each followed by a newline, in out. */
static void list_groups(struct fixture *f, char *out, size_t cap)
{
    server_req_t req = {.conn_id = 99, .pid = 1, .seq = ++f->seq, .type = CTL_GROUP_LIST};
    ctl_writer_t body;
    ctl_reader_t in, r;
    uint32_t n;
    size_t used = 0;

    ctl_reader_init(&in, NULL, 0);
    ctl_writer_init(&body);
    assert_int_equal(group_handle(f->gc, &req, &in, &body), 0);
    ctl_reader_init(&r, body.buf, body.len);
    n = ctl_get_u32(&r);
    out[0] = '\0';
    for (uint32_t i = 0; i < n; i++) {
        char name[256], state[64];
        ctl_get_str(&r, name, sizeof(name));
        ctl_get_str(&r, state, sizeof(state));
        used +=
            (size_t)snprintf(out + used, cap - used, "%s %s %u\n", name, state, ctl_get_u32(&r));
        assert_true(used < cap);
    }
    assert_int_equal(r.err, 0);
    ctl_writer_release(&body);
}

static int leave(struct fixture *f, const struct member *m)
{
    ctl_writer_t w;

    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_GROUP_LEAVE, 0);
    ctl_put_str(&w, "g");
    ctl_put_str(&w, m->id);
    return send_from(f, m->conn, &w);
}

/* Member ids are a client id and a count: another connection could guess one, and used to
 * heartbeat for the member, commit its partitions, join as it or make it leave. A member's
 * requests are taken from the connection it joined on only. */
static void test_a_member_is_spoken_for_only_by_its_own_connection(void **state)
{
    struct fixture *f = *state;
    struct member a = {.conn = 1, .generation = -1};
    const int32_t both[] = {0, 1};
    struct member stranger;
    ctl_writer_t w;

    alone_with_both(f, &a);
    stranger = a;
    stranger.conn = 2;
    assert_int_equal(commit(f, &stranger, 0, 0), SHOAL_EGENERATION);
    member_frame(&w, CTL_GROUP_HEARTBEAT, &stranger);
    assert_int_equal(send_from(f, stranger.conn, &w), SHOAL_EGENERATION);
    assert_int_equal(join(f, &stranger, both, 2), SHOAL_EGENERATION);
    assert_int_equal(leave(f, &stranger), SHOAL_EGENERATION);
    /* a is still the member it was, in the same generation */
    assert_int_equal(commit(f, &a, 0, 0), 0);
    member_frame(&w, CTL_GROUP_HEARTBEAT, &a);
    assert_int_equal(send_from(f, a.conn, &w), 0);
}

/* A group whose last member leaves is forgotten at the next tick unless it has committed
 * offsets, as Kafka drops it: before, every group ever joined stayed in memory (a client
 * joining under ever new ids, or connections closed in their join, grew shoald without
 * bound, and listing 40,000 of them took 20 s). One with offsets stays, Empty. */
static void test_a_group_without_offsets_is_forgotten_when_its_last_member_goes(void **state)
{
    struct fixture *f = *state;
    struct member a = {.conn = 1, .generation = -1};
    char rows[256];

    alone_with_both(f, &a);
    list_groups(f, rows, sizeof(rows));
    assert_string_equal(rows, "g Stable 1\n");
    assert_int_equal(leave(f, &a), 0);
    (void)group_tick(f->gc, shoal__mono_ns());
    list_groups(f, rows, sizeof(rows));
    assert_string_equal(rows, "");

    a = (struct member){.conn = 2, .generation = -1};
    alone_with_both(f, &a);
    assert_int_equal(commit(f, &a, 1, 0), 0);
    assert_int_equal(leave(f, &a), 0);
    (void)group_tick(f->gc, shoal__mono_ns());
    list_groups(f, rows, sizeof(rows));
    assert_string_equal(rows, "g Empty 0\n");

    /* Its offsets go with their topic: so does the group (it was listed, Empty, with
     * nothing to show: an exploratory session). */
    assert_int_equal(broker_topic_delete(&f->b, "t"), 0);
    group_offsets_dropped(f->gc);
    list_groups(f, rows, sizeof(rows));
    assert_string_equal(rows, "");
}

/* A join asking for a session above group.max.session.timeout.ms (Kafka's key and default,
 * 30 min) is refused, as Kafka's INVALID_SESSION_TIMEOUT: a member could join with
 * INT32_MAX and, dead, hold its partitions (a static one) for 24 days. A reload's lower
 * value applies to the next join. */
static void test_a_session_above_the_broker_maximum_is_refused(void **state)
{
    struct fixture *f = *state;
    struct member a = {.conn = 1, .generation = -1, .session_ms = INT32_MAX};

    assert_int_equal(join(f, &a, NULL, 0), SHOAL_EINVAL);
    a.session_ms = 1800000;
    assert_int_equal(join(f, &a, NULL, 0), 0);
    f->cfg.group_max_session_timeout_ms = 5000;
    a = (struct member){.conn = 2, .generation = -1, .session_ms = 6000};
    assert_int_equal(join(f, &a, NULL, 0), SHOAL_EINVAL);
}

/* A client id names the member in log lines and in describe's table, and the chosen
 * assignor names the round: one with a newline forged log lines (an assignor's, under
 * systemd, a journal entry of any priority: an audit), one with an escape sequence reached
 * an admin's terminal. The coordinator refuses them from a raw client (test_group: the
 * library refuses them first). */
static void test_a_name_shoald_logs_with_a_control_character_is_refused(void **state)
{
    struct fixture *f = *state;
    struct member a = {.conn = 1, .generation = -1, .client = "a\nfake: line"};

    assert_int_equal(join(f, &a, NULL, 0), SHOAL_EINVAL);
    a.client = "fine";
    a.assignor = "r\n<2> crit: forged";
    assert_int_equal(join(f, &a, NULL, 0), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "an assignor name is empty or has a control character"));
    a.assignor = "r\x1b]0;title\x07";
    assert_int_equal(join(f, &a, NULL, 0), SHOAL_EINVAL);
    a.assignor = NULL;
    assert_int_equal(join(f, &a, NULL, 0), 0);
}

/* shoald hears of a member's polls from its heartbeats, which a poll sends only when one is
 * due: it polled up to a heartbeat interval after the last one shoald saw. A member was
 * removed for exceeding its max poll interval (10 s here) up to that interval early (2.2 s
 * after its last poll, of 3 s, in an exploratory session); its join gives the interval (3 s
 * here), and shoald waits that much longer. */
static void test_the_max_poll_interval_allows_for_the_heartbeat_interval(void **state)
{
    struct fixture *f = *state;
    struct member a = {.conn = 1, .generation = -1, .session_ms = 60000, .heartbeat_ms = 3000};
    int64_t now = shoal__mono_ns();

    alone_with_both(f, &a);
    now = tick_for(f, now, 12500);
    assert_int_equal(commit(f, &a, 0, 0), 0); /* still a member after 12.5 s quiet */
    (void)tick_for(f, now, 13500);
    assert_int_equal(commit(f, &a, 0, 0), SHOAL_EGENERATION);
}

/* A pattern member subscribes to the topics whose whole names match its pattern, as the
 * leader is told; a topic created that matches, or one deleted, starts a rebalance, and the
 * next join phase has the change. A name that only begins or contains a match (orders.eu-2,
 * old.orders.eu) is not taken. */
static void test_a_pattern_subscribes_to_matching_topics_and_to_new_ones(void **state)
{
    struct fixture *f = *state;
    struct member a = {.conn = 1, .generation = -1, .pattern = "orders\\.[a-z]+"};
    const char *const names[] = {"orders.us", "orders.eu",     "orders.eu-2",
                                 "ordersx",   "old.orders.eu", "orders"};
    shoal_topic_config_t tc;
    int64_t now = shoal__mono_ns();
    char view[512], groups[256];

    shoal_topic_config_init(&tc);
    tc.partitions = 1;
    tc.segment_bytes = 1u << 20;
    tc.ring_slots = 2;
    tc.max_record_bytes = 1u << 16;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_int_equal(broker_topic_create(&f->b, names[i], &tc), 0);
    assert_int_equal(join(f, &a, NULL, 0), 0);
    joined(&a);
    leader_view(&a, view, sizeof(view));
    assert_string_equal(view, "orders.eu orders.us | orders.eu:1 orders.us:1");
    assert_int_equal(sync_leader(f, &a, &a, NULL, 0, NULL, 0), 0);
    now = tick_for(f, now, 500);
    list_groups(f, groups, sizeof(groups));
    assert_string_equal(groups, "g Stable 1\n"); /* nothing new: no rebalance */

    tc.partitions = 3;
    assert_int_equal(broker_topic_create(&f->b, "orders.asia", &tc), 0);
    now = tick_for(f, now, 500);
    list_groups(f, groups, sizeof(groups));
    assert_string_equal(groups, "g PreparingRebalance 1\n");
    assert_int_equal(join(f, &a, NULL, 0), 0);
    joined(&a);
    leader_view(&a, view, sizeof(view));
    assert_string_equal(view, "orders.asia orders.eu orders.us "
                              "| orders.asia:3 orders.eu:1 orders.us:1");
    assert_int_equal(sync_leader(f, &a, &a, NULL, 0, NULL, 0), 0);

    assert_int_equal(broker_topic_delete(&f->b, "orders.eu"), 0);
    (void)tick_for(f, now, 500);
    list_groups(f, groups, sizeof(groups));
    assert_string_equal(groups, "g PreparingRebalance 1\n");
    assert_int_equal(join(f, &a, NULL, 0), 0);
    joined(&a);
    leader_view(&a, view, sizeof(view));
    assert_string_equal(view, "orders.asia orders.us | orders.asia:3 orders.us:1");
}

/* A pattern shoald cannot match safely or as meant is refused with what is wrong, as is a
 * join with both topics and a pattern; the library refuses the same (test_group). */
static void test_a_join_with_a_bad_pattern_is_refused(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *pattern, *says;
    } bad[] = {
        {"orders(", "topic pattern 'orders(': a '(' without its ')'"},
        {"(a)\\1", "back-references are not supported"},
        {"((.{0,12}){0,12}){0,12}", "more than 256 characters and classes"},
        {"a\nb", "control character"},
    };
    struct member a = {.conn = 1, .generation = -1};
    ctl_writer_t w;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        a.pattern = bad[i].pattern;
        assert_int_equal(join(f, &a, NULL, 0), SHOAL_EINVAL);
        assert_non_null(strstr(shoal_errmsg(), bad[i].says));
    }
    ctl_writer_init(&w); /* topic t and a pattern */
    ctl_frame_begin(&w, CTL_GROUP_JOIN, 0);
    ctl_put_str(&w, "g");
    ctl_put_str(&w, "");
    ctl_put_str(&w, "");
    ctl_put_str(&w, "unit");
    ctl_put_i32(&w, 10000);
    ctl_put_i32(&w, 10000);
    ctl_put_u32(&w, 1);
    ctl_put_str(&w, "t");
    ctl_put_u32(&w, 1);
    ctl_put_str(&w, "coop");
    ctl_put_u32(&w, 0);
    ctl_put_i32(&w, -1);
    ctl_put_i32(&w, 0);
    ctl_put_str(&w, "t.*");
    assert_int_equal(send_from(f, 1, &w), SHOAL_EINVAL);
    assert_non_null(strstr(shoal_errmsg(), "topics or a pattern (not both)"));
    a.pattern = "a\\\\1"; /* an escaped backslash, then 1: no back-reference */
    assert_int_equal(join(f, &a, NULL, 0), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_a_withheld_partition_is_committed_by_its_last_owner),
        T(test_a_claimed_partition_is_not_committed),
        T(test_a_round_cut_short_before_its_sync_keeps_the_last_assignment),
        T(test_a_silent_member_is_removed_after_its_session_timeout),
        T(test_commits_are_refused_until_the_leader_has_assigned),
        T(test_a_member_that_does_not_rejoin_is_removed_at_the_rebalance_timeout),
        T(test_a_delete_is_not_undone_by_a_commit_queued_before_it),
        T(test_a_member_is_spoken_for_only_by_its_own_connection),
        T(test_a_group_without_offsets_is_forgotten_when_its_last_member_goes),
        T(test_a_sync_that_comes_after_the_next_rebalance_began_is_answered),
        T(test_a_session_above_the_broker_maximum_is_refused),
        T(test_a_name_shoald_logs_with_a_control_character_is_refused),
        T(test_the_max_poll_interval_allows_for_the_heartbeat_interval),
        T(test_a_pattern_subscribes_to_matching_topics_and_to_new_ones),
        T(test_a_join_with_a_bad_pattern_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
