/* server.c - shoald's control socket server.
 *
 * DESIGN: one thread, one epoll set, non-blocking sockets. Each connection accumulates
 * bytes until a whole frame is present, then the request is decoded and answered at once;
 * requests are rare and short (attach, admin, segment and timestamp lookups), and the
 * data path never comes here. The peer's credentials are read once at accept (SO_PEERCRED):
 * the daemon's own user, root and members of allow.gid (primary or supplementary group, the
 * latter read with SO_PEERGROUPS) may use the broker; anyone else gets
 * SHOAL_EDENIED for every request. A frame with a bad header gets an error response and
 * the connection is closed (the stream can no longer be trusted); a well-framed request
 * with a malformed payload gets SHOAL_EPROTO and the connection stays usable. Descriptors
 * that a client sends are closed unread. The warnings a client can cause at will (not
 * allowed, bad frame header, refused for lack of room, a reply too large) go through
 * log_limited(), so a misbehaving local process cannot flood the journal.
 *
 * Replies may be larger than requests (CTL_MAX_REPLY against CTL_MAX_PAYLOAD): the topic
 * and group lists grow with the broker. A reply that still cannot be built (over the limit,
 * or no memory for it) is answered with an error saying so, and logged, rather than by
 * closing the connection, which the client could not tell from a daemon gone.
 *
 * Sending never waits for a client: one client that does not read must not hold up the
 * others, group heartbeats and joins, or finished creates. Each connection has an output
 * queue (outq.c): a reply, an answer to a parked request (server_reply) or the daemon's
 * last word (conn_reject) goes out with one non-blocking sendmsg(), and what the socket
 * does not take waits there, with its descriptors if none of it went, while EPOLLOUT is
 * armed; the loop writes it as the client reads. Meanwhile the connection is back-pressured:
 * none of its frames runs, which keeps its responses in request order and its queue to the
 * reply that did not fit plus answers to requests parked before it; and its socket is read
 * only until SERVER_INPUT_PAUSE_BYTES wait (so too while a request is parked), so a client
 * that sends without reading fills its own socket, not the daemon's memory. Replies that make no
 * progress for SERVER_SEND_STALL_MS close the connection, from the loop's timer (server_sweep),
 * with a rate-limited warning, and so does a request not whole that long after it began; a client
 * gone (EPIPE, ECONNRESET, a hang-up) is closed without one. A connection is never closed from
 * inside server_reply(), whose callers are in the middle of their own work: a failure there marks
 * it, and the loop closes it. At end of file a connection stays until the replies it is owed are
 * out (a client may shut its side and read), then closes. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctlsock.h"
#include "group.h"
#include "log.h"
#include "outq.h"
#include "util.h"

#define SERVER_MAX_CONNS        1024
#define SERVER_READ_CHUNK       65536
#define SERVER_IDLE_MS          1000 /* the longest wait without wake_fd */
#define SERVER_CLIENT_LOG_BURST 5    /* warnings about clients logged per LOG_LIMIT_WINDOW_NS */
/* Writers that grew past this for one large reply are freed after it, so that the daemon
 * does not keep tens of MiB for a topic list it rarely sends. */
#define SERVER_WRITER_KEEP_BYTES (1u << 20)
/* A connection whose replies have not moved for this long is closed: its client stopped
 * reading. It is what ctlsock_send() waited before the replies were queued, long enough
 * for a client busy elsewhere (a consumer handling a batch, a process paused by a debugger
 * for a moment) and short enough that a stuck one soon gives back the memory and the
 * descriptors its replies hold. $SHOALD_TEST_SEND_STALL_MS shortens it for the tests. */
#define SERVER_SEND_STALL_MS 5000
/* While replies wait or a request is parked, a connection's socket is read only until
 * this much input waits: its frames cannot run before then, and a client that sends
 * without reading finds its own socket full, instead of the daemon buffering for it. */
#define SERVER_INPUT_PAUSE_BYTES SERVER_READ_CHUNK

struct conn {
    int fd;
    uint64_t id; /* for requests answered later (server_req_t) */
    size_t slot; /* index in server.conns */
    pid_t pid;
    uid_t uid;
    gid_t gid;
    bool allowed;
    /* Requests of this connection that await server_reply(), by kind (conn_parked_kind).
     * The frames after a parked request wait in `in`, so that responses go out in the
     * order of the requests, with one exception: a commit runs behind parked commits
     * (group.c answers those in order, in one batch) and behind a parked join or sync, so
     * that a cooperative member commits what it reads while its group rebalances. */
    uint32_t parked[3];
    bool resume;      /* the parked ones were answered with frames waiting: server_resume() */
    uint64_t replies; /* sent by server_reply(), which a handler may call before it parks */
    uint8_t *in;
    size_t len;
    size_t cap;
    int64_t partial_ns; /* when the frame at the head of `in` began, while it is not whole */
    outq_t out;         /* replies the socket has not taken yet; while any wait, no frame runs */
    uint32_t events;    /* armed in the epoll set (conn_arm) */
    bool eof;           /* the peer sent end of file: frames that waited run, then it closes */
    bool closing;       /* the daemon's last word is queued: close once it is out */
    bool dead;          /* close now, dropping what waits (the peer is gone, or a send failed) */
};

struct server {
    broker_t *b;
    int listen_fd;
    ctlsock_file_t socket_file; /* the file listen_fd was bound to, removed at close */
    int epfd;
    size_t nconns;
    struct conn *conns[SERVER_MAX_CONNS];
    ctl_writer_t out;
    ctl_writer_t body;
    int spare_fd; /* /dev/null, given up to drop a client when out of fds */
    /* Warnings that clients cause at will, each kind rate-limited (log_limited). */
    log_limit_t refused_log;     /* refused for lack of room: one per window */
    log_limit_t not_allowed_log; /* a peer not allowed to use the broker */
    log_limit_t bad_frame_log;   /* a bad frame header */
    log_limit_t pidns_log;       /* a client in a pid namespace shoald does not see */
    log_limit_t reply_log;       /* a reply that could not be built, sent, or was not read */
    uint32_t reply_max;          /* CTL_MAX_REPLY, or less for the tests (server_open) */
    int stall_ms;                /* SERVER_SEND_STALL_MS, or less for the tests */
    uint64_t next_conn_id;
    bool sweep; /* a connection may be done, or has replies waiting: server_sweep() looks */
    group_coord_t *groups;
    uint16_t cur_type; /* the request being dispatched */
    uint32_t cur_seq;
    /* Requests answered from threads of their own (struct job); jobs_fd, in the epoll set,
     * says one is done. The list is under jobs_lock. */
    int jobs_fd;
    pthread_mutex_t jobs_lock;
    struct job *jobs;
};

/* A topic create, run on a thread of its own: making its rings takes seconds for large
 * ones, which would hold up every other client, group heartbeats included. */
/* What a job finishes: a topic create, or an alter that adds partitions. */
typedef int (*job_fn)(broker_t *b, const char *name, const shoal_topic_config_t *cfg);

struct job {
    server_t *s;
    server_req_t req;
    job_fn finish;
    pthread_t thread;
    bool done;
    int status;
    char detail[512];
    char name[SHOAL_TOPIC_NAME_MAX + 2];
    shoal_topic_config_t cfg;
    struct job *next;
};

typedef int (*handler_fn)(server_t *s, struct conn *c, ctl_reader_t *r, int *fds, size_t *nfds);

/* ------------------------------------------------------------------ handlers */

static int finish(ctl_reader_t *r)
{
    int rc = ctl_reader_finish(r);
    return rc < 0 ? SHOAL_ERR(rc, "malformed request payload: %s", r->why) : 0;
}

static int on_hello(server_t *s, struct conn *c, ctl_reader_t *r, int *fds, size_t *nfds)
{
    char name[128];
    uint32_t version = ctl_get_u32(r);
    int rc;
    (void)fds;
    (void)nfds;
    ctl_get_str(r, name, sizeof(name));
    if ((rc = finish(r)) < 0)
        return rc;
    if (version != CTL_VERSION)
        return SHOAL_ERR(SHOAL_EVERSION, "client speaks protocol %u, daemon %u", version,
                         CTL_VERSION);
    if (shoal__has_control(name)) /* it goes into a log line */
        return SHOAL_ERR(SHOAL_EINVAL, "the client's name has a control character");
    log_debug("client pid %d uid %d: %s", (int)c->pid, (int)c->uid, name);
    if (c->pid == 0)
        log_limited(&s->pidns_log, LOG_WARN,
                    "client uid %d runs in a pid namespace shoald cannot see: if it dies "
                    "while it reads, its reader entries stay taken until shoald restarts",
                    (int)c->uid);
    ctl_put_u32(&s->body, CTL_VERSION);
    ctl_put_str(&s->body, s->b->cfg->instance);
    ctl_put_i32(&s->body, c->pid);
    return 0;
}

static void *job_main(void *arg)
{
    struct job *j = arg;
    uint64_t one = 1;

    j->status = j->finish(j->s->b, j->name, &j->cfg);
    snprintf(j->detail, sizeof(j->detail), "%s", j->status < 0 ? shoal_errmsg() : "");
    pthread_mutex_lock(&j->s->jobs_lock);
    j->done = true;
    pthread_mutex_unlock(&j->s->jobs_lock);
    (void)!write(j->s->jobs_fd, &one, sizeof(one)); /* cannot fail: far from overflow */
    return NULL;
}

/* Finish a begun create or grow on a thread of its own, answered by server_jobs_reap().
 * False when no thread could start. */
static bool job_start(server_t *s, struct conn *c, job_fn work, const char *name,
                      const shoal_topic_config_t *cfg)
{
    struct job *j = shoal__calloc(1, sizeof(*j));

    if (!j || s->jobs_fd < 0) {
        shoal__free(j);
        return false;
    }
    *j = (struct job){
        .s = s,
        .req = {.conn_id = c->id, .pid = c->pid, .type = s->cur_type, .seq = s->cur_seq},
        .finish = work,
        .cfg = *cfg};
    snprintf(j->name, sizeof(j->name), "%s", name);
    pthread_mutex_lock(&s->jobs_lock);
    if (pthread_create(&j->thread, NULL, job_main, j) != 0) {
        pthread_mutex_unlock(&s->jobs_lock);
        shoal__free(j);
        return false;
    }
    j->next = s->jobs;
    s->jobs = j;
    pthread_mutex_unlock(&s->jobs_lock);
    return true;
}

/* Take the jobs that are done (all: every job, waiting for those still running), and
 * answer them when reply. */
static void server_jobs_reap(server_t *s, bool reply, bool all)
{
    uint64_t n;

    if (s->jobs_fd >= 0)
        (void)!read(s->jobs_fd, &n, sizeof(n)); /* EAGAIN when nothing is done */
    for (;;) {
        struct job **at, *j = NULL;
        pthread_mutex_lock(&s->jobs_lock);
        for (at = &s->jobs; *at; at = &(*at)->next)
            if ((*at)->done || all) {
                j = *at;
                *at = j->next;
                break;
            }
        pthread_mutex_unlock(&s->jobs_lock);
        if (!j)
            return;
        pthread_join(j->thread, NULL);
        if (reply)
            server_reply(s, &j->req, j->status, j->detail, NULL);
        shoal__free(j);
    }
}

/* Finish a begun create or grow on a thread (SERVER_PARKED), or here when none can start. */
static int job_run(server_t *s, struct conn *c, job_fn work, const char *name,
                   const shoal_topic_config_t *cfg)
{
    return job_start(s, c, work, name, cfg) ? SERVER_PARKED : work(s->b, name, cfg);
}

static int on_topic_create(server_t *s, struct conn *c, ctl_reader_t *r, int *fds, size_t *nfds)
{
    char name[SHOAL_TOPIC_NAME_MAX + 2];
    shoal_topic_config_t cfg;
    int rc;
    (void)fds;
    (void)nfds;
    ctl_get_str(r, name, sizeof(name));
    ctl_get_topic_config(r, &cfg);
    if ((rc = finish(r)) < 0 || (rc = broker_topic_create_begin(s->b, name, &cfg)) < 0)
        return rc;
    return job_run(s, c, broker_topic_create_finish, name, &cfg);
}

static int on_topic_delete(server_t *s, struct conn *c, ctl_reader_t *r, int *fds, size_t *nfds)
{
    char name[SHOAL_TOPIC_NAME_MAX + 2];
    int rc;
    (void)c;
    (void)fds;
    (void)nfds;
    ctl_get_str(r, name, sizeof(name));
    if ((rc = finish(r)) < 0)
        return rc;
    group_commits_flush(s->groups); /* commits queued for the topic go with it */
    if ((rc = broker_topic_delete(s->b, name)) == 0)
        group_offsets_dropped(s->groups);
    return rc;
}

static int on_topic_alter(server_t *s, struct conn *c, ctl_reader_t *r, int *fds, size_t *nfds)
{
    char name[SHOAL_TOPIC_NAME_MAX + 2], keys[64][64], vals[64][64];
    const char *kp[64], *vp[64];
    shoal_topic_config_t next;
    uint32_t n;
    int rc;
    (void)fds;
    (void)nfds;
    ctl_get_str(r, name, sizeof(name));
    n = ctl_get_u32(r);
    if (n == 0 || n > 64)
        return SHOAL_ERR(SHOAL_EPROTO, "alter carries %u settings (1..64)", n);
    for (uint32_t i = 0; i < n; i++) {
        kp[i] = ctl_get_str(r, keys[i], sizeof(keys[i]));
        vp[i] = ctl_get_str(r, vals[i], sizeof(vals[i]));
    }
    if ((rc = finish(r)) < 0 || (rc = broker_topic_alter_begin(s->b, name, kp, vp, n, &next)) != 1)
        return rc;
    /* partitions added: their rings are made on a thread, as a create's */
    return job_run(s, c, broker_topic_grow_finish, name, &next);
}

struct unserved_list {
    server_t *s;
    uint32_t n;
};

/* A topic of the store that the registry lacks, and that is not being created, is one
 * recovery left out. */
static int put_unserved(void *arg, const char *name, const shoal_topic_config_t *cfg)
{
    struct unserved_list *u = arg;
    (void)cfg;
    if (!broker_find(u->s->b, name) && !broker_is_creating(u->s->b, name)) {
        ctl_put_str(&u->s->body, name);
        u->n++;
    }
    return 0;
}

static int on_topic_list(server_t *s, struct conn *c, ctl_reader_t *r, int *fds, size_t *nfds)
{
    struct unserved_list u = {.s = s};
    uint8_t which = r->p < r->end ? ctl_get_u8(r) : CTL_LIST_SERVED;
    size_t at = s->body.len;
    int rc;
    (void)c;
    (void)fds;
    (void)nfds;
    if ((rc = finish(r)) < 0)
        return rc;
    if (which != CTL_LIST_SERVED && which != CTL_LIST_UNSERVED)
        return SHOAL_ERR(SHOAL_EPROTO, "unknown topic list %u", which);
    pthread_rwlock_rdlock(&s->b->lock);
    if (which == CTL_LIST_SERVED) {
        ctl_put_u32(&s->body, (uint32_t)s->b->ntopics);
        for (size_t i = 0; i < s->b->ntopics; i++)
            ctl_put_str(&s->body, s->b->topics[i]->name);
    } else {
        ctl_put_u32(&s->body, 0); /* the count, known at the end */
        rc = store_topic_foreach(s->b->store, put_unserved, &u);
        ctl_patch_u32(&s->body, at, u.n);
    }
    pthread_rwlock_unlock(&s->b->lock);
    return rc;
}

/* Find a topic by name; returns with the registry read lock held on success. */
static int find_topic(server_t *s, const char *name, dtopic_t **t)
{
    if (!shoal_topic_name_is_valid(name))
        return SHOAL_ERR(SHOAL_ENAME, "invalid topic name '%.260s'", name);
    pthread_rwlock_rdlock(&s->b->lock);
    if (!(*t = broker_find(s->b, name))) {
        int rc = broker_no_topic(s->b, name);
        pthread_rwlock_unlock(&s->b->lock);
        return rc;
    }
    return 0;
}

/* Read "str topic, i32 partition" and find them; returns with the read lock held on
 * success. */
static int find_partition(server_t *s, ctl_reader_t *r, dtopic_t **t, int32_t *p)
{
    char name[SHOAL_TOPIC_NAME_MAX + 2];
    int rc;
    ctl_get_str(r, name, sizeof(name));
    *p = ctl_get_i32(r);
    if (r->err)
        return SHOAL_ERR(SHOAL_EPROTO, "malformed request payload: %s", r->why);
    if ((rc = find_topic(s, name, t)) < 0)
        return rc;
    if (*p < 0 || (uint32_t)*p >= (*t)->cfg.partitions) {
        uint32_t n = (*t)->cfg.partitions;
        pthread_rwlock_unlock(&s->b->lock);
        return SHOAL_ERR(SHOAL_ENOPARTITION, "topic %s has no partition %d (it has %u)", name, *p,
                         n);
    }
    return 0;
}

static int on_topic_describe(server_t *s, struct conn *c, ctl_reader_t *r, int *fds, size_t *nfds)
{
    char name[SHOAL_TOPIC_NAME_MAX + 2];
    dtopic_t *t;
    int rc;
    (void)c;
    (void)fds;
    (void)nfds;
    ctl_get_str(r, name, sizeof(name));
    if ((rc = finish(r)) < 0 || (rc = find_topic(s, name, &t)) < 0)
        return rc;
    ctl_put_topic_config(&s->body, &t->cfg);
    ctl_put_u32(&s->body, t->cfg.partitions);
    for (uint32_t i = 0; i < t->cfg.partitions; i++) {
        shoal_partition_info_t pi;
        dpart_info(&t->parts[i], &pi);
        ctl_put_partition_info(&s->body, &pi);
    }
    pthread_rwlock_unlock(&s->b->lock);
    return 0;
}

static int on_attach(server_t *s, struct conn *c, ctl_reader_t *r, int *fds, size_t *nfds)
{
    dtopic_t *t;
    int32_t p;
    uint8_t mode;
    int rc = find_partition(s, r, &t, &p);

    if (rc < 0)
        return rc;
    mode = ctl_get_u8(r);
    if ((rc = finish(r)) == 0 && mode != CTL_ATTACH_READ && mode != CTL_ATTACH_WRITE)
        rc = SHOAL_ERR(SHOAL_EPROTO, "unknown attach mode %u", mode);
    else if (rc == 0 && atomic_load(&t->parts[p].broken))
        rc = SHOAL_ERR(SHOAL_ECORRUPT,
                       "%s-%d is stopped: its shared ring was damaged, as shoald's log says; "
                       "restarting shoald rebuilds the ring",
                       t->name, p);
    if (rc == 0)
        rc = ring_open_fds(s->b->shm_dir, t->parts[p].shm_name, t->cfg.ring_slots,
                           mode == CTL_ATTACH_WRITE, fds);
    if (rc == 0) {
        *nfds = RING_FD_COUNT(t->cfg.ring_slots);
        ctl_put_topic_config(&s->body, &t->cfg);
        log_debug("pid %d attached %s-%d %s", (int)c->pid, t->name, p,
                  mode == CTL_ATTACH_WRITE ? "read-write" : "read-only");
    }
    pthread_rwlock_unlock(&s->b->lock);
    return rc;
}

static int on_segment_open(server_t *s, struct conn *c, ctl_reader_t *r, int *fds, size_t *nfds)
{
    dtopic_t *t;
    int32_t p;
    int64_t offset, base, pos;
    uint64_t bytes;
    int rc = find_partition(s, r, &t, &p);
    (void)c;

    if (rc < 0)
        return rc;
    offset = ctl_get_i64(r);
    if ((rc = finish(r)) == 0)
        rc = dpart_segment_open(&t->parts[p], offset, &fds[0], &base, &bytes, &pos);
    pthread_rwlock_unlock(&s->b->lock);
    if (rc < 0)
        return rc;
    *nfds = 1;
    ctl_put_i64(&s->body, base);
    ctl_put_u64(&s->body, bytes);
    ctl_put_i64(&s->body, pos);
    return 0;
}

static int on_offset_for_time(server_t *s, struct conn *c, ctl_reader_t *r, int *fds, size_t *nfds)
{
    dtopic_t *t;
    int32_t p;
    int64_t ts, offset = 0;
    int rc = find_partition(s, r, &t, &p);
    (void)c;
    (void)fds;
    (void)nfds;

    if (rc < 0)
        return rc;
    ts = ctl_get_i64(r);
    if ((rc = finish(r)) == 0 && ts < 0)
        rc = SHOAL_ERR(SHOAL_EINVAL, "negative timestamp %lld", (long long)ts);
    if (rc == 0)
        rc = dpart_offset_for_time(&t->parts[p], ts, &offset);
    pthread_rwlock_unlock(&s->b->lock);
    if (rc < 0)
        return rc;
    ctl_put_i64(&s->body, offset);
    return 0;
}

/* Consumer group requests go to the coordinator (group.c), which may park them. */
static int on_group(server_t *s, struct conn *c, ctl_reader_t *r, int *fds, size_t *nfds)
{
    server_req_t req = {.conn_id = c->id, .pid = c->pid, .type = s->cur_type, .seq = s->cur_seq};
    (void)fds;
    (void)nfds;
    return group_handle(s->groups, &req, r, &s->body);
}

static const handler_fn handlers[CTL_TYPE_MAX_] = {
    [CTL_HELLO] = on_hello,
    [CTL_TOPIC_CREATE] = on_topic_create,
    [CTL_TOPIC_DELETE] = on_topic_delete,
    [CTL_TOPIC_LIST] = on_topic_list,
    [CTL_TOPIC_DESCRIBE] = on_topic_describe,
    [CTL_TOPIC_ALTER] = on_topic_alter,
    [CTL_ATTACH] = on_attach,
    [CTL_SEGMENT_OPEN] = on_segment_open,
    [CTL_OFFSET_FOR_TIME] = on_offset_for_time,
    [CTL_GROUP_JOIN] = on_group,
    [CTL_GROUP_SYNC] = on_group,
    [CTL_GROUP_HEARTBEAT] = on_group,
    [CTL_GROUP_LEAVE] = on_group,
    [CTL_GROUP_COMMIT] = on_group,
    [CTL_GROUP_FETCH] = on_group,
    [CTL_GROUP_LIST] = on_group,
    [CTL_GROUP_DESCRIBE] = on_group,
    [CTL_GROUP_RESET] = on_group,
    [CTL_GROUP_DELETE] = on_group,
};

/* ------------------------------------------------------------------ connections */

static void conn_close(server_t *s, struct conn *c)
{
    group_conn_closed(s->groups, c->id); /* a member's connection is its liveness */
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    s->conns[c->slot] = s->conns[--s->nconns];
    s->conns[c->slot]->slot = c->slot;
    outq_release(&c->out); /* replies never taken, and the descriptors of one */
    shoal__free(c->in);
    shoal__free(c);
}

enum parked_kind { PARKED_COMMIT, PARKED_ROUND, PARKED_OTHER };

static enum parked_kind conn_parked_kind(uint16_t type)
{
    if (type == CTL_GROUP_COMMIT)
        return PARKED_COMMIT;
    return type == CTL_GROUP_JOIN || type == CTL_GROUP_SYNC ? PARKED_ROUND : PARKED_OTHER;
}

static bool conn_parked(const struct conn *c)
{
    return c->parked[PARKED_COMMIT] || c->parked[PARKED_ROUND] || c->parked[PARKED_OTHER];
}

/* Whether c's socket may be read: not once it ended or failed, nor while replies wait or a
 * request is parked and enough input waits behind them (SERVER_INPUT_PAUSE_BYTES). */
static bool conn_reading(const struct conn *c)
{
    if (c->dead || c->closing || c->eof)
        return false;
    return (outq_is_empty(&c->out) && !conn_parked(c)) || c->len < SERVER_INPUT_PAUSE_BYTES;
}

/* Whether c may answer its next frame: replies go out in order, one frame's after the
 * last's, and none is built while earlier ones wait (back-pressure). */
static bool conn_may_answer(const struct conn *c)
{
    return !c->dead && !c->closing && outq_is_empty(&c->out);
}

/* Whether c is to be closed now. At end of file the connection stays while its replies
 * go out, and the frames that waited behind them run (a client may send its requests,
 * shut its side down and read the answers); those behind a parked request do not. */
static bool conn_done(const struct conn *c)
{
    return c->dead || ((c->closing || c->eof) && outq_is_empty(&c->out));
}

/* Give up on c: it is closed when the loop gets to it, with what waits for it. A client
 * gone (SHOAL_ECLOSED) needs no word; any other failure to send is logged. */
static void conn_fail(server_t *s, struct conn *c, int rc)
{
    if (!c->dead && rc != SHOAL_ECLOSED)
        log_limited(&s->reply_log, LOG_WARN,
                    "pid %d: a reply could not be sent (%s); closing the connection", (int)c->pid,
                    shoal_errmsg());
    c->dead = true;
    s->sweep = true;
}

/* Arm what c waits for in the epoll set: EPOLLIN while it may read, EPOLLOUT while replies
 * wait. The loop's next pass sees the change. */
static void conn_arm(server_t *s, struct conn *c)
{
    struct epoll_event ev = {.events = 0, .data.ptr = c};

    if (c->dead)
        return;
    ev.events = (conn_reading(c) ? EPOLLIN : 0) | (outq_is_empty(&c->out) ? 0 : EPOLLOUT);
    if (ev.events == c->events)
        return;
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        conn_fail(s, c, SHOAL_ERR(-errno, "epoll_ctl: %s", strerror(errno)));
        return;
    }
    c->events = ev.events;
}

/* Send the frame in s->out to c, with nfds descriptors (owned from here on, whatever
 * happens), behind the replies that wait: the socket takes what it can now, and the rest
 * waits for EPOLLOUT. Never blocks. A failure gives up on c (conn_fail), but for the
 * kernel's refusal to pass the descriptors (-ETOOMANYREFS), returned with nothing sent. */
static int conn_send(server_t *s, struct conn *c, const int *fds, size_t nfds)
{
    bool idle = outq_is_empty(&c->out);
    int rc;

    if (c->dead || c->closing) { /* nothing more is sent on it */
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
        return 0;
    }
    if ((rc = outq_send(&c->out, c->fd, &s->out, fds, nfds)) == -ETOOMANYREFS && nfds > 0)
        return rc;
    if (rc < 0) {
        conn_fail(s, c, rc);
        return rc;
    }
    if (idle && !outq_is_empty(&c->out)) {
        s->sweep = true; /* server_sweep() times its stall */
        conn_arm(s, c);
    }
    return 0;
}

/* The kernel refused to pass a reply's descriptors: the daemon's user has more in flight
 * (sent, not yet received) than its open-file limit, which a client that does not read
 * its replies can cause (root is exempt). Answer SHOAL_ELIMIT, which the call can retry,
 * rather than close the connection: its client saw only "connection closed". */
static void conn_refuse_fds(server_t *s, struct conn *c, const ctl_header_t *h)
{
    static const char why[] =
        "shoald could not pass the shared memory's descriptors: the kernel refused "
        "(ETOOMANYREFS), as the daemon's user has more in flight than its open-file limit, "
        "held by a client that does not read its replies; try again later";

    log_limited(&s->reply_log, LOG_WARN,
                "pid %d request %u: the kernel refused to pass descriptors (ETOOMANYREFS): "
                "more are in flight than the open-file limit, held by clients that do not "
                "read their replies; answered SHOAL_ELIMIT",
                (int)c->pid, (unsigned)h->type);
    ctl_response_begin(&s->out, h->type, h->seq, SHOAL_ELIMIT, why);
    if (ctl_frame_end(&s->out) < 0)
        conn_fail(s, c, SHOAL_ERR(-ENOMEM, "no memory for an error response"));
    else
        (void)conn_send(s, c, NULL, 0);
}

static int dispatch(server_t *s, struct conn *c, const ctl_header_t *h, const uint8_t *payload,
                    int *fds, size_t *nfds)
{
    ctl_reader_t r;
    ctl_reader_init(&r, payload, h->len);
    s->body.len = 0;
    s->body.err = 0;
    s->cur_type = h->type;
    s->cur_seq = h->seq;
    shoal__clear_err();
    if (h->type >= CTL_TYPE_MAX_ || !handlers[h->type])
        return SHOAL_ERR(SHOAL_EPROTO, "unknown request type %u", h->type);
    if (!c->allowed)
        return SHOAL_ERR(SHOAL_EDENIED, "uid %d gid %d may not use this broker", (int)c->uid,
                         (int)c->gid);
    return handlers[h->type](s, c, &r, fds, nfds);
}

/* Build in s->out the response to (type, seq) of connection c: *status, then the detail
 * (*status < 0) or the body (*status 0). A body too large for a reply, or one that could
 * not be built or framed (no memory), becomes an error response naming the cause (*status
 * SHOAL_ELIMIT, or the body's or frame's error) and a log line. 0, or < 0 when not even
 * that could be built. */
static int response_build(server_t *s, const struct conn *c, uint16_t type, uint32_t seq,
                          int *status, const char *detail, const ctl_writer_t *body)
{
    char why[256];
    size_t len = *status == 0 && body ? body->len : 0;
    int rc;

    ctl_response_begin(&s->out, type, seq, *status, *status < 0 ? detail : NULL);
    if (len > 0)
        ctl_put_raw(&s->out, body->buf, len);
    if (*status == 0 && body && body->err)
        rc = body->err;
    else if (s->out.len - CTL_HEADER_BYTES > s->reply_max)
        rc = SHOAL_ELIMIT;
    else if ((rc = ctl_frame_end(&s->out)) == 0)
        return 0;
    if (rc == SHOAL_ELIMIT)
        snprintf(why, sizeof(why),
                 "the reply (%zu bytes) is larger than the control protocol allows (%u bytes)", len,
                 (unsigned)s->reply_max);
    else if (rc == -ENOMEM)
        snprintf(why, sizeof(why), "shoald had no memory for the reply");
    else
        snprintf(why, sizeof(why), "the reply could not be encoded: %s", shoal_strerror(rc));
    log_limited(&s->reply_log, LOG_WARN, "pid %d request %u: %s; answered %s instead", (int)c->pid,
                (unsigned)type, why, shoal_err_name(rc));
    *status = rc;
    ctl_response_begin(&s->out, type, seq, rc, why);
    return ctl_frame_end(&s->out);
}

/* Free a writer that one large reply grew; the next starts small again. */
static void writer_trim(ctl_writer_t *w)
{
    if (w->cap > SERVER_WRITER_KEEP_BYTES)
        ctl_writer_release(w);
}

/* Answer one request; a failure to reply gives up on c (c->dead). */
static void conn_answer(server_t *s, struct conn *c, const ctl_header_t *h, const uint8_t *payload)
{
    int fds[CTL_MAX_FDS];
    size_t nfds = 0;
    uint64_t replies = c->replies;
    int status = dispatch(s, c, h, payload, fds, &nfds);

    if (status == SERVER_PARKED && c->replies == replies) /* not answered already */
        c->parked[conn_parked_kind(h->type)]++;
    if (status == SERVER_PARKED)
        return;
    if (response_build(s, c, h->type, h->seq, &status,
                       shoal_errmsg()[0] ? shoal_errmsg() : shoal_strerror(status), &s->body) < 0)
        conn_fail(s, c, SHOAL_ERR(-ENOMEM, "no memory for an error response"));
    else if (status == 0) { /* the descriptors go with the reply */
        if (conn_send(s, c, fds, nfds) == -ETOOMANYREFS)
            conn_refuse_fds(s, c, h);
        nfds = 0;
    } else {
        (void)conn_send(s, c, NULL, 0);
    }
    writer_trim(&s->out);
    writer_trim(&s->body);
    for (size_t i = 0; i < nfds; i++) /* of a reply that became an error */
        close(fds[i]);
    if (status < 0 && status != SHOAL_EDENIED)
        log_debug("pid %d request %u: %s", (int)c->pid, h->type, shoal_errmsg());
}

/* Build in s->out a response to no request (type 0, sequence 0): the daemon's word on the
 * connection itself, before it closes it. libshoal returns it as its call's failure.
 * 0 or < 0 when it could not be built. */
static int unrequested_build(server_t *s, int status, const char *detail)
{
    ctl_response_begin(&s->out, 0, 0, status, detail);
    return ctl_frame_end(&s->out);
}

/* Reply to a frame whose header is unusable, then give up on the connection: it closes
 * once the replies before that word, and the word, are out. */
/* Send c the daemon's last word (a response to no request: status, why), then close it
 * once that is out. */
static void conn_last_word(server_t *s, struct conn *c, int status, const char *why)
{
    if (unrequested_build(s, status, why) == 0)
        (void)conn_send(s, c, NULL, 0);
    c->closing = true;
    s->sweep = true;
}

static void conn_reject(server_t *s, struct conn *c, int status)
{
    log_limited(&s->bad_frame_log, LOG_WARN, "client pid %d sent a bad frame header: %s; closing",
                (int)c->pid, shoal_errmsg());
    conn_last_word(s, c, status, shoal_errmsg());
}

/* The type of the next frame waiting in c->in; CTL_TYPE_MAX_ (none) while its header is
 * not all in, or is bad (it is rejected when it runs). */
static uint16_t conn_next_type(const struct conn *c)
{
    ctl_header_t h;

    return c->len >= CTL_HEADER_BYTES && ctl_header_decode(c->in, &h) == 0 ? h.type : CTL_TYPE_MAX_;
}

/* Whether a request of this type may run now, with what the connection has parked. */
static bool conn_may_run(const struct conn *c, uint16_t type)
{
    if (type == CTL_GROUP_COMMIT)
        return c->parked[PARKED_OTHER] == 0;
    return !conn_parked(c);
}

/* Whether the frame at the head of c's input has begun to arrive and is not whole. */
static bool conn_frame_partial(const struct conn *c)
{
    ctl_header_t h;

    if (c->len == 0)
        return false;
    if (c->len < CTL_HEADER_BYTES)
        return true;
    return ctl_header_decode(c->in, &h) == 0 && c->len < CTL_HEADER_BYTES + (size_t)h.len;
}

/* Time a frame that has begun to arrive and is not whole: a client that sends part of a
 * request and no more (stopped, or on purpose: each such connection held up to a megabyte
 * of the daemon's memory for as long as it stayed) is closed after stall_ms by
 * server_sweep(), as one that stops reading its replies is. */
static void conn_time_partial(server_t *s, struct conn *c)
{
    if (!conn_frame_partial(c)) {
        c->partial_ns = 0;
    } else if (c->partial_ns == 0) {
        c->partial_ns = shoal__mono_ns();
        s->sweep = true;
    }
}

/* Handle every whole frame in c->in that may run: until one must wait behind a parked
 * request, or replies wait to go out (conn_may_answer). A bad header rejects the
 * connection (c->closing). */
static void conn_process(server_t *s, struct conn *c)
{
    size_t at = 0;
    while (c->len - at >= CTL_HEADER_BYTES && conn_may_answer(c)) {
        ctl_header_t h;
        int rc = ctl_header_decode(c->in + at, &h);
        if (rc == 0 && h.len > CTL_MAX_PAYLOAD) /* a response's size, in a request */
            rc = SHOAL_ERR(SHOAL_EPROTO, "control frame: payload of %u bytes exceeds %u",
                           (unsigned)h.len, (unsigned)CTL_MAX_PAYLOAD);
        if (rc < 0) {
            conn_reject(s, c, rc);
            break;
        }
        if (c->len - at < CTL_HEADER_BYTES + (size_t)h.len || !conn_may_run(c, h.type))
            break;
        conn_answer(s, c, &h, c->in + at + CTL_HEADER_BYTES);
        at += CTL_HEADER_BYTES + h.len;
    }
    memmove(c->in, c->in + at, c->len - at);
    c->len -= at;
    conn_time_partial(s, c);
}

/* Give up on c for what it sent (rc, the detail in shoal_errmsg()), with a log line. */
static void conn_drop_input(server_t *s, struct conn *c, int rc)
{
    log_limited(&s->bad_frame_log, LOG_WARN, "client pid %d: %s (%s); closing", (int)c->pid,
                shoal_errmsg(), shoal_err_name(rc));
    c->dead = true;
}

/* Read what c's socket holds and run the frames as they come, until it would block or c
 * may read no more (conn_reading). End of file sets c->eof, a failure c->dead. */
static void conn_read(server_t *s, struct conn *c)
{
    while (conn_reading(c)) {
        size_t nfds = 0;
        ssize_t n;
        if (c->cap - c->len < SERVER_READ_CHUNK &&
            c->cap < CTL_HEADER_BYTES + CTL_MAX_PAYLOAD + SERVER_READ_CHUNK) {
            size_t cap = c->cap ? c->cap * 2 : SERVER_READ_CHUNK * 2;
            uint8_t *in = shoal__realloc(c->in, cap);
            if (!in) {
                conn_drop_input(s, c,
                                SHOAL_ERR(-ENOMEM, "no memory for %zu bytes of requests", cap));
                return;
            }
            c->in = in;
            c->cap = cap;
        }
        if (c->len == c->cap) { /* not while frames can run: conn_reading pauses first */
            conn_drop_input(s, c, SHOAL_ERR(SHOAL_EPROTO, "%zu bytes of requests wait", c->len));
            return;
        }
        n = ctlsock_recv(c->fd, c->in + c->len, c->cap - c->len, NULL, &nfds, 0);
        if (n == -EAGAIN)
            return;
        if (n == -EPROTO || n == -EMFILE) /* descriptors lost, and the bytes with them */
            log_limited(&s->bad_frame_log, LOG_WARN, "client pid %d: %s; closing", (int)c->pid,
                        shoal_errmsg());
        if (n <= 0) {
            c->eof = n == 0;
            c->dead = n < 0;
            return;
        }
        c->len += (size_t)n;
        conn_process(s, c);
    }
}

/* Write what waits for c; once all is out, the frames that waited behind it run. */
static void conn_flush(server_t *s, struct conn *c)
{
    int rc = outq_flush(&c->out, c->fd);

    if (rc < 0)
        conn_fail(s, c, rc);
    else if (outq_is_empty(&c->out))
        conn_process(s, c);
}

/* After c's turn in the loop: close it if it is done, else arm what it waits for. */
static void conn_settle(server_t *s, struct conn *c)
{
    if (conn_done(c))
        conn_close(s, c);
    else
        conn_arm(s, c);
}

/* One epoll event of c. A hang-up (the peer closed: it reads no more) still lets the
 * frames it sent before run, as they would have, then closes the connection. */
static void conn_event(server_t *s, struct conn *c, uint32_t events)
{
    if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && !outq_is_empty(&c->out))
        conn_flush(s, c);
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conn_reading(c))
        conn_read(s, c);
    if (events & (EPOLLHUP | EPOLLERR))
        c->dead = true;
    conn_settle(s, c);
}

#define PEER_GROUPS_MAX 256

/* Whether the peer on fd is in group gid through a supplementary group. A process may have
 * up to NGROUPS_MAX (65536) of them, and users of a large directory often have hundreds:
 * when PEER_GROUPS_MAX do not hold them all, the kernel fails with ERANGE and says how many
 * bytes would, and the list is read again into a buffer of that size. */
static bool peer_in_group(int fd, gid_t gid)
{
    gid_t buf[PEER_GROUPS_MAX], *groups = buf;
    socklen_t len = sizeof(buf);
    bool in = false;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
        int err = errno; /* ERANGE: len is the size they take */
        if (err == ERANGE && !(groups = shoal__malloc(len)))
            err = ENOMEM;
        else if (err == ERANGE)
            err = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0 ? errno : 0;
        if (err) {
            log_warn("a client's supplementary groups could not be read (%s): taken as not "
                     "in allow.gid",
                     strerror(err));
            len = 0;
        }
    }
    for (size_t i = 0; i < len / sizeof(gid_t) && !in; i++)
        in = groups[i] == gid;
    if (groups != buf)
        shoal__free(groups);
    return in;
}

static bool peer_allowed(const server_t *s, int fd, const struct conn *c)
{
    long gid = s->b->cfg->allow_gid; /* changed by a reload, on this thread */
    if (c->uid == 0 || c->uid == geteuid())
        return true;
    return gid >= 0 && (c->gid == (gid_t)gid || peer_in_group(fd, (gid_t)gid));
}

/* c may not use the broker (not allowed, or no longer after a reload): its last word says
 * why, then it closes. It used to stay open, every request denied, holding one of the
 * connections everyone shares: a user refused could take them all (a security session). */
static void conn_deny(server_t *s, struct conn *c, const char *what)
{
    char why[160];

    log_limited(&s->not_allowed_log, LOG_WARN, "client pid %d uid %d %s: closing its connection",
                (int)c->pid, (int)c->uid, what);
    snprintf(why, sizeof(why),
             "uid %d gid %d may not use this broker (only root, shoald's user and members of "
             "allow.gid may)",
             (int)c->uid, (int)c->gid);
    conn_last_word(s, c, SHOAL_EDENIED, why);
}

/* Refuse a client just accepted on fd (non-blocking): log it (rate-limited; "refusing
 * clients" at most once a window), tell the client why in a response to no request, which
 * libshoal returns as the failure of its call, then close it. The word goes out with one
 * send that does not wait: the socket is new, its buffer empty. */
static void server_refuse(server_t *s, int fd, const char *why)
{
    char detail[160];

    log_limited(&s->refused_log, LOG_WARN,
                "refusing clients: %s, %zu connections open (at most %d)", why, s->nconns,
                SERVER_MAX_CONNS);
    snprintf(detail, sizeof(detail), "shoald refuses new clients: %s (%zu connections open)", why,
             s->nconns);
    if (unrequested_build(s, SHOAL_ELIMIT, detail) == 0)
        (void)ctlsock_send_nowait(fd, s->out.buf, s->out.len, NULL, 0);
    close(fd);
}

/* Out of descriptors, accept() fails (even with nobody queued) and leaves the client
 * queued, and the listener, level triggered, wakes the loop again at once: take the client
 * with the spare descriptor kept for this, drop it, and keep a spare again. False when
 * nobody was queued (or no spare is left). */
static bool server_drop_one(server_t *s)
{
    int fd;
    if (s->spare_fd < 0)
        return false;
    close(s->spare_fd);
    fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
        server_refuse(s, fd, "no file descriptors left");
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0;
}

static void server_accept(server_t *s)
{
    for (;;) {
        struct epoll_event ev = {.events = EPOLLIN};
        struct conn *c;
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE) && server_drop_one(s))
            continue;
        if (fd < 0)
            return;
        if (s->nconns >= SERVER_MAX_CONNS || !(c = shoal__calloc(1, sizeof(*c)))) {
            server_refuse(s, fd,
                          s->nconns >= SERVER_MAX_CONNS ? "too many connections" : "no memory");
            continue;
        }
        c->fd = fd;
        c->id = ++s->next_conn_id;
        c->events = ev.events;
        outq_init(&c->out);
        if (ctlsock_peer_cred(fd, &c->pid, &c->uid, &c->gid) == 0)
            c->allowed = peer_allowed(s, fd, c);
        ev.data.ptr = c;
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            shoal__free(c);
            continue;
        }
        c->slot = s->nconns;
        s->conns[s->nconns++] = c;
        if (!c->allowed)
            conn_deny(s, c, "is not allowed");
    }
}

/* ------------------------------------------------------------------ lifecycle */

/* Whether members of gid who are not its owner may search a directory with these modes. */
static bool dir_searchable_by(const struct stat *st, gid_t gid)
{
    return (st->st_mode & S_IXOTH) || (st->st_gid == gid && (st->st_mode & S_IXGRP));
}

/* Give the runtime directory to gid (group r-x) when shoald owns it; false if it cannot. */
static bool runtime_dir_give(const char *dir, gid_t gid, struct stat *st)
{
    mode_t mode = (st->st_mode & 07707) | 0050; /* sticky and setgid bits kept */

    if (st->st_uid != geteuid() || chown(dir, (uid_t)-1, gid) < 0 || chmod(dir, mode) < 0)
        return false;
    log_notice("gave %s to group %ld (mode %04o): members of allow.gid can reach the control "
               "socket in it",
               dir, (long)gid, (unsigned)mode);
    return true;
}

/* The members of allow.gid connect only if they can search every directory on the way to
 * the socket (a unit's RuntimeDirectoryMode=0750 owned by the daemon's own group stops
 * them): the runtime directory is given to the group when shoald owns it, and any other
 * directory in the way is logged, since only the operator can change it. */
static void server_check_socket_dirs(const server_t *s, gid_t gid)
{
    char dir[PATH_MAX];
    struct stat st;

    if (!realpath(s->b->cfg->runtime_dir, dir))
        return;
    for (bool own = true;; own = false) {
        char *slash = strrchr(dir, '/');
        if (stat(dir, &st) == 0 && !dir_searchable_by(&st, gid) &&
            !(own && runtime_dir_give(dir, gid, &st)))
            log_warn("members of group %ld (allow.gid) cannot reach the control socket: they "
                     "may not search %s (mode %04o, uid %d, gid %d); make it searchable for "
                     "them (chmod o+x, or give it to the group with g+x)",
                     (long)gid, dir, (unsigned)(st.st_mode & 07777), (int)st.st_uid,
                     (int)st.st_gid);
        if (!slash || !strcmp(dir, "/"))
            return;
        slash[slash == dir ? 1 : 0] = '\0';
    }
}

/* Give the control socket to group gid, never through a link nor to another file than the
 * one shoald bound (whoever could replace it would have it chowned: ctlsock_file_is). */
static int server_socket_give(const server_t *s, gid_t gid)
{
    const char *path = s->b->socket_path;
    struct stat st;

    if (lstat(path, &st) == 0 && st.st_gid == gid)
        return 0;
    if (!ctlsock_file_is(path, &s->socket_file)) {
        log_warn("%s is no longer the socket shoald bound (removed or replaced): its group is "
                 "left as it is",
                 path);
        return -ESTALE;
    }
    if (fchownat(AT_FDCWD, path, (uid_t)-1, gid, AT_SYMLINK_NOFOLLOW) < 0) {
        int rc = -errno;
        log_warn("cannot give %s to group %ld (shoald must be a member): %s; members of the "
                 "group can connect only if they can open the socket otherwise",
                 path, (long)gid, strerror(errno));
        return rc;
    }
    return 0;
}

int server_set_access(server_t *s)
{
    long gid = s->b->cfg->allow_gid;
    size_t revoked = 0;

    for (size_t i = 0; i < s->nconns; i++) { /* a reload may have changed allow.gid */
        struct conn *c = s->conns[i];
        bool was = c->allowed;
        c->allowed = peer_allowed(s, c->fd, c);
        if (was && !c->allowed) {
            conn_deny(s, c, "may no longer use the broker");
            revoked++;
        }
    }
    if (revoked)
        log_notice("allow.gid changed: %zu connected clients may no longer use the broker (their "
                   "connections are closed; mappings they hold stay theirs)",
                   revoked);
    if (gid >= 0)
        server_check_socket_dirs(s, (gid_t)gid);
    /* Without allow.gid the socket goes back to shoald's own group: a reload that unset it
     * left the old group able to connect (denied, but holding connections). */
    return server_socket_give(s, gid >= 0 ? (gid_t)gid : getegid());
}

/* CTL_MAX_REPLY, or the smaller limit in $SHOALD_TEST_REPLY_MAX (bytes), with which the
 * tests reach the limit without building replies of tens of MiB. */
static uint32_t server_reply_max(void)
{
    const char *v = getenv("SHOALD_TEST_REPLY_MAX");
    unsigned long n = v ? strtoul(v, NULL, 10) : 0;

    if (n == 0 || n >= CTL_MAX_REPLY)
        return CTL_MAX_REPLY;
    log_warn("SHOALD_TEST_REPLY_MAX=%lu: replies are limited to %lu bytes", n, n);
    return (uint32_t)n;
}

/* SERVER_SEND_STALL_MS, or the shorter time in $SHOALD_TEST_SEND_STALL_MS (ms), with which
 * the tests see a client that stopped reading closed sooner. */
static int server_stall_ms(void)
{
    const char *v = getenv("SHOALD_TEST_SEND_STALL_MS");
    unsigned long n = v ? strtoul(v, NULL, 10) : 0;

    if (n == 0 || n >= SERVER_SEND_STALL_MS)
        return SERVER_SEND_STALL_MS;
    log_warn("SHOALD_TEST_SEND_STALL_MS=%lu: clients that stop reading are closed after %lu ms", n,
             n);
    return (int)n;
}

int server_open(server_t **out, broker_t *b)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    server_t *s = shoal__calloc(1, sizeof(*s));
    int grc;

    *out = NULL;
    if (!s)
        return -ENOMEM;
    s->b = b;
    s->epfd = -1;
    s->jobs_fd = -1;
    pthread_mutex_init(&s->jobs_lock, NULL);
    s->refused_log.burst = 1;
    s->not_allowed_log.burst = SERVER_CLIENT_LOG_BURST;
    s->bad_frame_log.burst = SERVER_CLIENT_LOG_BURST;
    s->reply_log.burst = SERVER_CLIENT_LOG_BURST;
    s->pidns_log.burst = SERVER_CLIENT_LOG_BURST;
    s->reply_max = server_reply_max();
    s->stall_ms = server_stall_ms();
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ctl_writer_init(&s->out);
    ctl_writer_init(&s->body);
    s->listen_fd = ctlsock_listen(b->socket_path);
    if (s->listen_fd < 0) {
        int rc = s->listen_fd;
        log_error("cannot listen on %s: %s", b->socket_path, shoal_strerror(rc));
        if (s->spare_fd >= 0)
            close(s->spare_fd);
        shoal__free(s);
        return rc;
    }
    if (ctlsock_file_of(b->socket_path, &s->socket_file) < 0)
        s->socket_file = (ctlsock_file_t){0};
    server_set_access(s);
    s->jobs_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); /* without it, creates run inline */
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) < 0) {
        int rc = -errno;
        server_close(s);
        return rc;
    }
    ev.data.ptr = &s->jobs_fd;
    if (s->jobs_fd >= 0 && epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->jobs_fd, &ev) < 0) {
        close(s->jobs_fd);
        s->jobs_fd = -1;
    }
    if ((grc = group_coord_open(&s->groups, s, b)) < 0) {
        server_close(s);
        return grc;
    }
    *out = s;
    return 0;
}

/* Handle the frames that waited behind requests answered since (not from inside
 * server_reply: its callers are in the middle of their own work). True if any ran. */
static bool server_resume(server_t *s)
{
    bool ran = false;
    for (size_t i = s->nconns; i-- > 0;) { /* conn_close moves the last entry here */
        struct conn *c = s->conns[i];
        if (!c->resume)
            continue;
        c->resume = false;
        ran = true;
        conn_process(s, c);
        conn_settle(s, c);
    }
    return ran;
}

/* When c stalls (stall_ms after its replies last moved, or after a request that is not
 * whole began while its socket is read), or -1 when it waits for nothing. */
static int64_t conn_stall_due(const server_t *s, const struct conn *c)
{
    int64_t stall_ns = (int64_t)s->stall_ms * 1000000;

    if (!outq_is_empty(&c->out))
        return c->out.moved_ns + stall_ns;
    if (c->partial_ns && conn_reading(c))
        return c->partial_ns + stall_ns;
    return -1;
}

static void conn_stalled(server_t *s, struct conn *c)
{
    if (!outq_is_empty(&c->out))
        log_limited(&s->reply_log, LOG_WARN,
                    "pid %d has not read its replies for %d ms (%zu bytes wait); closing the "
                    "connection",
                    (int)c->pid, s->stall_ms, outq_bytes(&c->out));
    else
        log_limited(&s->bad_frame_log, LOG_WARN,
                    "pid %d sent %zu bytes of a request and not the rest for %d ms; closing the "
                    "connection",
                    (int)c->pid, c->len, s->stall_ms);
    c->dead = true;
}

/* Close the connections that are done (conn_done: a failure, or an end whose replies are
 * out), and those that stalled for SERVER_SEND_STALL_MS (conn_stall_due): their clients
 * stopped reading, or stopped sending in the middle of a request. Closing one may answer
 * others (a group's members), which may fail them in turn: the pass repeats until none
 * did. Returns the ms until the next stall deadline, or -1 when none is timed. */
static int server_sweep(server_t *s, int64_t now_ns)
{
    int64_t next_ns = -1;

    while (s->sweep) {
        s->sweep = false;
        next_ns = -1;
        for (size_t i = s->nconns; i-- > 0;) { /* conn_close moves the last entry here */
            struct conn *c = s->conns[i];
            int64_t due_ns = conn_stall_due(s, c);
            if (!conn_done(c) && due_ns >= 0 && now_ns >= due_ns)
                conn_stalled(s, c);
            if (conn_done(c))
                conn_close(s, c);
            else if (due_ns >= 0 && (next_ns < 0 || due_ns < next_ns))
                next_ns = due_ns;
        }
    }
    s->sweep = next_ns >= 0;
    return next_ns < 0 ? -1 : (int)((next_ns - now_ns + 999999) / 1000000);
}

int server_run(server_t *s, volatile sig_atomic_t *stop, int wake_fd, void (*on_wake)(void *),
               void *arg)
{
    struct epoll_event evs[64];
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &wev};

    if (wake_fd >= 0 && epoll_ctl(s->epfd, EPOLL_CTL_ADD, wake_fd, &wev) < 0)
        return -errno;
    int timeout_ms = GROUP_TICK_MS, stall_ms;

    while (!*stop) {
        int n = epoll_wait(s->epfd, evs, 64, timeout_ms);
        for (int i = 0; i < n && !*stop; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].data.ptr == &wev) {
                on_wake(arg);
                continue;
            }
            if (evs[i].data.ptr == &s->jobs_fd) {
                server_jobs_reap(s, true, false);
                continue;
            }
            if (!c) {
                server_accept(s);
                continue;
            }
            conn_event(s, c, evs[i].events);
        }
        /* commit batches, timeouts; idle, only requests and wake_fd (signals, the main
         * thread's 1 s tick) end the wait */
        timeout_ms = group_tick(s->groups, shoal__mono_ns());
        if (timeout_ms < 0 && wake_fd < 0)
            timeout_ms = SERVER_IDLE_MS;
        /* before the resume: closing a connection may answer requests of others */
        stall_ms = server_sweep(s, shoal__mono_ns());
        if (stall_ms >= 0 && (timeout_ms < 0 || stall_ms < timeout_ms))
            timeout_ms = stall_ms;
        if (server_resume(s))
            timeout_ms = 0; /* what they parked is answered by the next group_tick */
    }
    return 0;
}

void server_reply(server_t *s, const server_req_t *req, int status, const char *detail,
                  const ctl_writer_t *body)
{
    struct conn *c = NULL;

    for (size_t i = 0; i < s->nconns && !c; i++)
        if (s->conns[i]->id == req->conn_id)
            c = s->conns[i];
    if (!c)
        return;
    if (response_build(s, c, req->type, req->seq, &status,
                       detail && *detail ? detail : shoal_strerror(status), body) == 0)
        (void)conn_send(s, c, NULL, 0); /* behind what waits; closing it is the loop's job */
    writer_trim(&s->out);
    c->replies++;
    if (c->parked[conn_parked_kind(req->type)])
        c->parked[conn_parked_kind(req->type)]--;
    c->resume = c->len > 0 && conn_may_run(c, conn_next_type(c));
}

size_t server_client_count(const server_t *s)
{
    return s->nconns;
}

void server_close(server_t *s)
{
    if (!s)
        return;
    /* The coordinator first: its queued commits are answered while their connections are
     * open, and the members of connections the daemon closes below are not removed (and
     * logged) as if their processes had ended. */
    group_coord_close(s->groups);
    s->groups = NULL;
    server_jobs_reap(s, true, true); /* creates finish, answered: their topics exist */
    while (s->nconns > 0) {          /* what the sockets take now goes out; nothing waits */
        struct conn *c = s->conns[s->nconns - 1];
        if (!c->dead)
            (void)outq_flush(&c->out, c->fd);
        conn_close(s, c);
    }
    if (s->spare_fd >= 0)
        close(s->spare_fd);
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        if (!ctlsock_unlink(s->b->socket_path, &s->socket_file))
            log_warn("%s is no longer this daemon's socket (removed, or another daemon's): "
                     "left as it is",
                     s->b->socket_path);
    }
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->jobs_fd >= 0)
        close(s->jobs_fd);
    pthread_mutex_destroy(&s->jobs_lock);
    ctl_writer_release(&s->out);
    ctl_writer_release(&s->body);
    shoal__free(s);
}
