/* client.c - shoal_client: the control connection to shoald, topic administration, and
 * attaching partitions (receiving their shared-memory descriptors).
 *
 * DESIGN: the control socket carries only rare requests (attach, admin, segment and
 * timestamp lookups); appends and reads never touch it. One request is in flight per
 * client, guarded by a mutex, so a client may be shared by threads. Responses are matched
 * by type and sequence number; anything else is SHOAL_EPROTO and the connection is
 * considered broken.
 *
 * Reconnection: shoald may stop and start again under a client (its producers' and
 * consumers' rings stay mapped, and appends go on). A broken connection is closed, and the
 * next call connects again (HELLO included, so the daemon reads the process's credentials
 * anew) before it sends; so does a call whose send fails because the daemon closed the
 * connection, since that request never arrived. A request that was sent and whose
 * response was lost is not repeated: it may have been carried out, so the call fails
 * SHOAL_ECLOSED and the next one reconnects. All of it runs under the client's mutex, so
 * threads sharing a client see one connection at a time.
 *
 * A daemon that does not answer (stopped with SIGSTOP, hung) still takes connections into
 * its listen backlog, so a reconnect would only wait again, in the handshake. A call that
 * gives up waiting (the client's timeout_ms, 30 s by default; a consumer's segment lookup,
 * its poll's time) therefore keeps the connection and leaves its request *late*: shoald
 * answers a connection in order, so the next call reads that answer first (within its own
 * time) and drops it, or uses it when it asks the same segment lookup again, then sends
 * its own. A new connection's HELLO that is not answered in the caller's time is late the
 * same way. So at most one request is late, and no call waits past its deadline, for the
 * mutex either. */
#include "client.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "ctlsock.h"
#include "topic_config.h"
#include "util.h"

#define CLIENT_TIMEOUT_MS  30000
#define CREATE_MS_PER_GIB  8000
#define CREATE_WAIT_MAX_MS 3600000
#define CLIENT_FRAME_MS    5000 /* the rest of a response that has begun to arrive */

const char *shoal_default_socket(void)
{
    const char *env = getenv("SHOAL_SOCKET");
    return (env && *env) ? env : SHOAL_DEFAULT_SOCKET;
}

void client_reply_release(client_reply_t *rep)
{
    for (size_t i = 0; i < rep->nfds; i++)
        if (rep->fds[i] >= 0)
            close(rep->fds[i]);
    rep->nfds = 0;
    shoal__free(rep->payload);
    rep->payload = NULL;
}

/* ------------------------------------------------------------------ the connection */

/* Forget the late request (c->mu held). */
static void client_forget_late(shoal_client_t *c)
{
    c->late_seq = 0;
    c->late_type = 0;
    shoal__free(c->late_frame);
    c->late_frame = NULL;
    c->late_len = 0;
}

/* Forget the kept answer (c->mu held). */
static void client_forget_kept(shoal_client_t *c)
{
    client_reply_release(&c->kept);
    shoal__free(c->kept_frame);
    c->kept_frame = NULL;
    c->kept_len = 0;
}

/* Close the connection; the next call connects again. c->mu held. */
static void client_drop(shoal_client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    client_forget_late(c);
    client_forget_kept(c);
}

/* The response's status, with the daemon's detail in shoal_errmsg() when it failed. */
static int reply_status(client_reply_t *rep)
{
    char detail[256];
    int rc = ctl_get_status(&rep->r, detail, sizeof(detail));
    if (rc < 0)
        SHOAL_ERR(rc, "%s", detail[0] ? detail : shoal_strerror(rc));
    return rc;
}

/* A response to no request (type 0, sequence 0): the daemon's word on the connection
 * itself before it closes it (it refuses new clients, or could not read a frame). Its
 * status and detail, never 0. */
static int connection_refused(client_reply_t *rep, uint32_t len)
{
    char detail[256];
    int rc;

    ctl_reader_init(&rep->r, rep->payload, len);
    rc = ctl_get_status(&rep->r, detail, sizeof(detail));
    return SHOAL_ERR(rc < 0 ? rc : SHOAL_EPROTO, "%s", detail[0] ? detail : "closed by shoald");
}

/* Stamp the request in w (built without a sequence number) with the connection's next one,
 * its header into *h, and send it by deadline_ns (c->mu held). SHOAL_ETIMEDOUT when the
 * daemon read none of it by then (stopped or hung: the connection stays, in step). Any
 * other failure closes the connection: the daemon never had the whole frame, so it did
 * nothing; when it closed the connection it may have said why first, and that is
 * returned. */
static int client_send(shoal_client_t *c, ctl_writer_t *w, ctl_header_t *h, int64_t deadline_ns)
{
    client_reply_t rep;
    ctl_header_t got;
    int rc = ctl_header_decode(w->buf, h);

    if (rc < 0)
        return rc;
    h->seq = ++c->seq;
    ctl_header_encode(w->buf, h);
    rc = ctlsock_send(c->fd, w->buf, w->len, NULL, 0, deadline_ns);
    if (rc == 0)
        return 0;
    if (rc == SHOAL_ETIMEDOUT)
        return SHOAL_ERR(rc, "shoald did not read the request in time (stopped or hung?); it "
                             "was not sent");
    if (rc == -ETIMEDOUT)
        rc = SHOAL_ERR(SHOAL_ETIMEDOUT, "shoald stopped reading the request half-way (stopped "
                                        "or hung?); it was not carried out");
    memset(&rep, 0, sizeof(rep));
    if (rc == SHOAL_ECLOSED &&
        ctlsock_recv_frame(c->fd, &got, &rep.payload, rep.fds, &rep.nfds, CTL_MAX_FDS, 0) == 0 &&
        got.type == CTL_RESPONSE && got.seq == 0) /* it said why before it closed */
        rc = connection_refused(&rep, got.len);
    client_reply_release(&rep);
    client_drop(c); /* part of a frame may have gone: never reuse the stream */
    return rc;
}

int client_recv(shoal_client_t *c, ctl_header_t *got, client_reply_t *rep, int64_t deadline_ns)
{
    int rc = ctlsock_wait_readable(c->fd, deadline_ns);

    if (rc == SHOAL_ETIMEDOUT)
        return rc;
    if (rc == 0)
        rc = ctlsock_recv_frame(c->fd, got, &rep->payload, rep->fds, &rep->nfds, CTL_MAX_FDS,
                                CLIENT_FRAME_MS);
    if (rc == SHOAL_ETIMEDOUT) /* not "no answer yet": the stream is out of step */
        rc = SHOAL_ERR(SHOAL_ECLOSED, "a response from shoald stopped half-way");
    if (rc == 0 && got->type == CTL_RESPONSE && got->seq == 0)
        rc = connection_refused(rep, got->len);
    if (rc == 0)
        ctl_reader_init(&rep->r, rep->payload, got->len);
    else if (rc != -ENOMEM && rc != -EMFILE)
        client_drop(c);
    return rc;
}

/* Whether w (not stamped yet) asks what frame (len bytes) asked: every byte but the
 * header's last field, the sequence number. */
static bool client_same_request(const uint8_t *frame, size_t len, const ctl_writer_t *w)
{
    return w && frame && w->len == len && memcmp(w->buf, frame, CTL_HEADER_BYTES - 4) == 0 &&
           memcmp(w->buf + CTL_HEADER_BYTES, frame + CTL_HEADER_BYTES, w->len - CTL_HEADER_BYTES) ==
               0;
}

/* A call gave up waiting for the response to the request in w (header h): it is late, read
 * by whichever call comes next (c->mu held). A segment lookup or an attach is kept: a poll
 * that gave up on one asks the same again at its next try, and the late answer then serves
 * it, so a daemon slower than a poll's timeout still gets a consumer onto its disk segment,
 * and a group member its new partitions. (No copy when there is no memory: the next try
 * sends again.) */
static void client_note_late(shoal_client_t *c, const ctl_writer_t *w, const ctl_header_t *h)
{
    c->late_seq = h->seq;
    c->late_type = h->type;
    if ((h->type == CTL_SEGMENT_OPEN || h->type == CTL_ATTACH) &&
        (c->late_frame = shoal__malloc(w->len))) {
        memcpy(c->late_frame, w->buf, w->len);
        c->late_len = w->len;
    }
}

int client_hello_check(shoal_client_t *c, ctl_reader_t *r)
{
    char instance[sizeof(c->instance)];
    int32_t seen_pid;
    int rc;

    (void)ctl_get_u32(r);
    ctl_get_str(r, instance, sizeof(instance));
    seen_pid = ctl_get_i32(r);
    if ((rc = ctl_reader_finish(r)) < 0)
        return rc;
    if (c->instance[0] && strcmp(instance, c->instance) != 0)
        return SHOAL_ERR(SHOAL_ENODAEMON,
                         "shoald at %s is now instance '%s', not '%s' that this client was "
                         "opened on",
                         c->socket_path, instance, c->instance);
    if (!c->instance[0]) /* the first handshake, before the client is anyone else's */
        c->seen_pid = seen_pid > 0 ? seen_pid : -1;
    memcpy(c->instance, instance, sizeof(instance));
    return 0;
}

/* Read the response to the late request if it comes by deadline_ns (c->mu held, a request
 * late). A HELLO's makes the connection ready, or fails it. When w is the same request
 * again (client_note_late) it is w's response, in rep, and *served is set; a segment
 * lookup's is kept for the call that asks it again (a consumer's partitions take turns, so
 * another's lookup may come first: client_exchange serves it); any other is dropped (an
 * attach's only serves the attach that comes next: kept, it could map a ring that a topic
 * deleted since left behind). 0;
 * SHOAL_ETIMEDOUT when it has not come (still late, the stream untouched); or a failure,
 * with the connection closed. */
static int client_catch_up(shoal_client_t *c, const ctl_writer_t *w, client_reply_t *rep,
                           bool *served, int64_t deadline_ns)
{
    client_reply_t late;
    ctl_header_t got;
    uint16_t type = c->late_type;
    uint32_t seq = c->late_seq;
    uint8_t *frame = c->late_frame;
    size_t len = c->late_len;
    bool same = client_same_request(frame, len, w);
    int rc;

    memset(&late, 0, sizeof(late));
    rc = client_recv(c, &got, &late, deadline_ns);
    if (rc == SHOAL_ETIMEDOUT)
        return rc;
    c->late_frame = NULL; /* ours now */
    client_forget_late(c);
    if (rc == 0 && (got.type != (type | CTL_RESPONSE) || got.seq != seq))
        rc = SHOAL_ERR(SHOAL_EPROTO, "response type %u seq %u does not answer request %u/%u",
                       got.type, got.seq, type, seq);
    if (rc == 0 && type == CTL_HELLO && (rc = reply_status(&late)) == 0)
        rc = client_hello_check(c, &late.r);
    if (rc == 0 && same) {
        *rep = late;
        *served = true;
    } else if (rc == 0 && frame && type == CTL_SEGMENT_OPEN) {
        client_forget_kept(c);
        c->kept = late;
        c->kept_frame = frame;
        c->kept_len = len;
        return 0;
    } else {
        client_reply_release(&late);
    }
    shoal__free(frame);
    if (rc < 0)
        client_drop(c);
    return rc;
}

/* Send the request in w on the current connection and receive its response by deadline_ns
 * (c->mu held, nothing late). *unsent is set when the send failed: the daemon never had
 * the whole frame, so it did nothing. A response that has not come by then leaves the
 * request late, read by the next call: the connection stays, in step (a reconnect would
 * only wait in the handshake of a daemon that does not answer). Any other failure that
 * leaves the stream out of step closes the connection. */
static int client_roundtrip(shoal_client_t *c, ctl_writer_t *w, client_reply_t *rep, bool *unsent,
                            int64_t deadline_ns)
{
    ctl_header_t sent, got;
    int rc = client_send(c, w, &sent, deadline_ns);

    *unsent = rc < 0;
    if (rc < 0)
        return rc;
    rc = client_recv(c, &got, rep, deadline_ns);
    if (rc == SHOAL_ETIMEDOUT && sent.type == CTL_TOPIC_CREATE) {
        /* shoald parks a create until its rings are made, and answers nothing after it on
         * this connection meanwhile: left late, it would hold every later call here. */
        client_drop(c);
        return SHOAL_ERR(rc, "shoald did not answer the create in time; it may still be "
                             "done (describe the topic to find out)");
    }
    if (rc == SHOAL_ETIMEDOUT) {
        client_note_late(c, w, &sent);
        return SHOAL_ERR(rc, "shoald did not answer in time: it is stopped or hung (what was "
                             "asked may still be done)");
    }
    if (rc == 0 && (got.type != (sent.type | CTL_RESPONSE) || got.seq != sent.seq)) {
        client_drop(c);
        return SHOAL_ERR(SHOAL_EPROTO, "response type %u seq %u does not answer request %u/%u",
                         got.type, got.seq, sent.type, sent.seq);
    }
    return rc;
}

/* Whether the process listening at the other end of c->fd runs as the user c requires (when
 * it requires one): a socket in a directory others may write can be anybody's, and what
 * the client sends (its HELLO, then its requests) would go to them. 0, or
 * SHOAL_ENODAEMON with c->fd closed. */
static int client_check_daemon_user(shoal_client_t *c)
{
    pid_t pid;
    uid_t uid;
    gid_t gid;
    int rc = c->daemon_user.check ? ctlsock_peer_cred(c->fd, &pid, &uid, &gid) : 0;

    if (rc == 0 && (!c->daemon_user.check || uid == c->daemon_user.uid))
        return 0;
    close(c->fd);
    c->fd = -1;
    if (rc < 0)
        return rc;
    return SHOAL_ERR(SHOAL_ENODAEMON,
                     "the process listening at %s runs as uid %u, not as the daemon's user, %s: "
                     "refused, and nothing was sent to it",
                     c->path_given, (unsigned)uid, c->daemon_user.what);
}

int client_hello_send(shoal_client_t *c, uint32_t *seq, int64_t deadline_ns)
{
    ctl_header_t h;
    ctl_writer_t w;
    int rc;

    c->fd = ctlsock_connect(c->socket_path, deadline_ns);
    if (c->fd >= 0 && (rc = client_check_daemon_user(c)) < 0)
        return rc;
    if (c->fd < 0) {
        rc = c->fd;
        c->fd = -1;
        if (strcmp(c->socket_path, c->path_given) != 0) {
            char detail[512];
            snprintf(detail, sizeof(detail), "%s", shoal_errmsg());
            SHOAL_ERR(rc, "%s; the socket path was given as %s", detail, c->path_given);
        }
        return rc;
    }
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_HELLO, 0);
    ctl_put_u32(&w, CTL_VERSION);
    ctl_put_str(&w, "libshoal " SHOAL_VERSION_STRING);
    rc = ctl_frame_end(&w);
    if (rc == 0)
        rc = client_send(c, &w, &h, deadline_ns);
    ctl_writer_release(&w);
    if (rc < 0) {
        client_drop(c);
        return rc;
    }
    *seq = h.seq;
    return 0;
}

/* Connect and say hello (c->mu held, c->fd < 0), waiting for the answer until deadline_ns.
 * Once the client knows its daemon's instance it refuses another's at the same path: its
 * producers and consumers map that instance's rings. 0; SHOAL_ETIMEDOUT with the HELLO
 * late (shoald accepted the connection but has not answered: stopped or hung), which the
 * next call reads first; or the connect or hello error with the connection closed. */
static int client_connect(shoal_client_t *c, int64_t deadline_ns)
{
    bool served = false;
    uint32_t seq;
    int rc = client_hello_send(c, &seq, deadline_ns);

    if (rc < 0)
        return rc;
    c->late_seq = seq;
    c->late_type = CTL_HELLO;
    rc = client_catch_up(c, NULL, NULL, &served, deadline_ns);
    if (rc == SHOAL_ETIMEDOUT)
        return SHOAL_ERR(rc,
                         "shoald at %s took the connection but did not answer its handshake "
                         "in time (stopped or hung?)",
                         c->socket_path);
    return rc;
}

/* One request and its response, by deadline_ns (c->mu held). A response still due on the
 * connection is read first (the handshake's, or one an earlier call gave up on). A
 * connection an earlier call found broken (shoald stopped or restarted) is made again
 * first, and so is one whose send fails because the daemon has closed it: that request
 * never reached the daemon, so sending it again on a new connection cannot do it twice. A
 * request sent whose response was lost fails SHOAL_ECLOSED: it may have been carried out,
 * only the caller can tell whether to repeat it. */
static int client_exchange(shoal_client_t *c, ctl_writer_t *w, client_reply_t *rep,
                           int64_t deadline_ns)
{
    bool unsent = false, served = false;
    int rc;

    if (client_same_request(c->kept_frame, c->kept_len, w)) { /* read by an earlier call */
        *rep = c->kept;
        memset(&c->kept, 0, sizeof(c->kept));
        client_forget_kept(c);
        return 0;
    }
    if (c->fd >= 0 && c->late_seq) {
        rc = client_catch_up(c, w, rep, &served, deadline_ns);
        if (rc == SHOAL_ETIMEDOUT)
            return SHOAL_ERR(rc, "shoald has not answered an earlier request on this client yet "
                                 "(stopped or hung?)");
        if (rc < 0 && rc != SHOAL_ECLOSED) /* closed: connect again below */
            return rc;
        if (served)
            return 0;
    }
    if (c->fd >= 0) {
        rc = client_roundtrip(c, w, rep, &unsent, deadline_ns);
        if (rc != SHOAL_ECLOSED || !unsent)
            return rc;
    }
    rc = client_connect(c, deadline_ns);
    if (rc == 0)
        rc = client_roundtrip(c, w, rep, &unsent, deadline_ns);
    return rc;
}

/* Take c->mu by deadline_ns: another thread's call may be waiting for a daemon that does
 * not answer. */
static int client_lock(shoal_client_t *c, int64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000),
                          .tv_nsec = (long)(deadline_ns % 1000000000)};
    int rc = pthread_mutex_clocklock(&c->mu, CLOCK_MONOTONIC, &ts);

    if (rc == ETIMEDOUT)
        return SHOAL_ERR(SHOAL_ETIMEDOUT, "another thread's call on this client is still waiting "
                                          "for shoald (stopped or hung?)");
    return -rc;
}

static int64_t client_deadline_after(int64_t ms)
{
    return shoal__mono_ns() + ms * 1000000;
}

int64_t client_deadline(const shoal_client_t *c)
{
    return client_deadline_after(c->timeout_ms);
}

int client_call_until(shoal_client_t *c, ctl_writer_t *w, client_reply_t *rep, int64_t deadline_ns)
{
    int rc;

    memset(rep, 0, sizeof(*rep));
    /* A child's request would interleave with its parent's on their one socket, and the
     * mutex may have been held by another thread at the fork. */
    if (shoal__inherited(c->forks))
        return SHOAL_ERR(SHOAL_EINVAL,
                         "this client belongs to process %d: a child of fork() may only close "
                         "it",
                         (int)c->opener);
    rc = ctl_frame_end(w);
    if (rc < 0)
        return rc;
    if ((rc = client_lock(c, deadline_ns)) < 0)
        return rc;
    rc = client_exchange(c, w, rep, deadline_ns);
    pthread_mutex_unlock(&c->mu);
    if (rc == 0)
        rc = reply_status(rep);
    if (rc < 0)
        client_reply_release(rep);
    return rc;
}

int client_call(shoal_client_t *c, ctl_writer_t *w, client_reply_t *rep)
{
    return client_call_until(c, w, rep, client_deadline(c));
}

/* The path to connect to for a socket path given relative to the working directory: the
 * same file by an absolute path, so that a process that chdir()s later (as daemons do)
 * still finds shoald when it reconnects. The socket's directory is resolved (realpath(),
 * else joined to getcwd()), not the socket itself, which each start of shoald replaces.
 * An absolute form longer than a socket address takes is not used: the path stays as
 * given, and works as long as the process stays in its directory. */
static void client_resolve_path(const char *given, char *out, size_t cap)
{
    char dir[PATH_MAX], real[PATH_MAX];
    const char *slash = strrchr(given, '/');
    const char *base = slash ? slash + 1 : given;
    int n = -1;

    snprintf(out, cap, "%s", given);
    if (given[0] == '/' || base[0] == '\0')
        return;
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - given) : 1, slash ? given : ".");
    if (realpath(dir, real))
        n = snprintf(dir, sizeof(dir), "%s/%s", strcmp(real, "/") ? real : "", base);
    else if (getcwd(real, sizeof(real))) {
        while (given[0] == '.' && given[1] == '/') /* "./var/run/..." reads as "var/run/..." */
            given += 2;
        n = snprintf(dir, sizeof(dir), "%s/%s", strcmp(real, "/") ? real : "", given);
    }
    if (n > 0 && (size_t)n < cap)
        memcpy(out, dir, (size_t)n + 1);
}

int client_new(const char *socket_path, shoal_client_t **out)
{
    shoal_client_t *c;

    *out = NULL;
    if (!socket_path)
        socket_path = shoal_default_socket();
    if (strlen(socket_path) >= sizeof(c->socket_path))
        return SHOAL_ERR(-ENAMETOOLONG, "socket path too long: %s", socket_path);
    c = shoal__calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    strcpy(c->path_given, socket_path);
    client_resolve_path(socket_path, c->socket_path, sizeof(c->socket_path));
    pthread_mutex_init(&c->mu, NULL);
    c->fd = -1;
    c->timeout_ms = CLIENT_TIMEOUT_MS;
    c->forks = shoal__forks_at_open();
    c->opener = (int32_t)getpid();
    atomic_init(&c->refs, 1);
    *out = c;
    return 0;
}

/* The user the daemon must run as: opts' daemon_uid when it asks for one, else
 * $SHOAL_DAEMON_USER's (a user name or a uid) when that is set and not empty. 0, or
 * SHOAL_EINVAL for a name no user has. */
static int client_daemon_user(client_daemon_user_t *du, const shoal_client_options_t *opts)
{
    const char *env = getenv("SHOAL_DAEMON_USER");
    struct passwd pw, *res = NULL;
    unsigned long uid;
    char buf[4096], *end;

    if (opts && opts->daemon_uid_check) {
        *du = (client_daemon_user_t){.check = true, .uid = opts->daemon_uid};
        snprintf(du->what, sizeof(du->what), "uid %u (the client's options)",
                 (unsigned)opts->daemon_uid);
        return 0;
    }
    if (!env || !*env)
        return 0;
    errno = 0;
    uid = strtoul(env, &end, 10);
    if (env[strspn(env, "0123456789")] == '\0' && !errno && !*end && uid < (uid_t)-1)
        du->uid = (uid_t)uid;
    else if (getpwnam_r(env, &pw, buf, sizeof(buf), &res) == 0 && res)
        du->uid = res->pw_uid;
    else
        return SHOAL_ERR(SHOAL_EINVAL, "SHOAL_DAEMON_USER=%.64s names no user", env);
    du->check = true;
    snprintf(du->what, sizeof(du->what), "uid %u ($SHOAL_DAEMON_USER=%.64s)", (unsigned)du->uid,
             env);
    return 0;
}

void shoal_client_options_init(shoal_client_options_t *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof(*o));
    o->timeout_ms = CLIENT_TIMEOUT_MS;
}

int shoal_client_open(const char *socket_path, shoal_client_t **out)
{
    return shoal_client_open_opts(socket_path, NULL, out);
}

int shoal_client_open_opts(const char *socket_path, const shoal_client_options_t *opts,
                           shoal_client_t **out)
{
    shoal_client_t *c;
    int rc;
    shoal__clear_err();
    SHOAL_NEED(out);

    *out = NULL;
    if (opts && (rc = shoal__check_reserved(opts->reserved_, sizeof(opts->reserved_), SHOAL_EINVAL,
                                            "shoal_client_options_init")) < 0)
        return rc;
    if (opts && opts->timeout_ms < 1)
        return SHOAL_ERR(SHOAL_EINVAL, "client options: timeout_ms %d is under 1 ms",
                         opts->timeout_ms);
    if (opts && opts->daemon_uid_check > 1)
        return SHOAL_ERR(SHOAL_EINVAL, "client options: daemon_uid_check %u is neither 0 nor 1",
                         opts->daemon_uid_check);
    if ((rc = client_new(socket_path, &c)) < 0)
        return rc;
    if ((rc = client_daemon_user(&c->daemon_user, opts)) < 0) {
        shoal_client_close(c);
        return rc;
    }
    if (opts)
        c->timeout_ms = opts->timeout_ms;
    rc = client_connect(c, client_deadline(c)); /* nobody else has c yet: no lock needed */
    if (rc < 0) {
        shoal_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

int client_reconnect(shoal_client_t *c)
{
    int64_t deadline_ns = client_deadline(c);
    bool served = false;
    int rc = client_lock(c, deadline_ns);

    if (rc < 0)
        return rc;
    if (c->fd < 0)
        rc = client_connect(c, deadline_ns);
    else if (c->late_type == CTL_HELLO)
        rc = client_catch_up(c, NULL, NULL, &served, deadline_ns);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void client_hold(shoal_client_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void client_release(shoal_client_t *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) > 1)
        return;
    if (c->fd >= 0)
        close(c->fd);
    shoal__free(c->late_frame);
    client_forget_kept(c);
    pthread_mutex_destroy(&c->mu);
    shoal__free(c);
}

/* Producers and consumers still open keep c: closing them after it is allowed. */
void shoal_client_close(shoal_client_t *c)
{
    if (c)
        client_release(c);
}

/* ------------------------------------------------------------------ topics */

bool shoal_topic_name_is_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > SHOAL_TOPIC_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

static int check_name(const char *name)
{
    if (!shoal_topic_name_is_valid(name))
        return SHOAL_ERR(SHOAL_ENAME, "invalid topic name '%.260s'", name ? name : "(null)");
    return 0;
}

/* Send the request built in w (then released) and expect a response without fields by
 * deadline_ns. */
static int client_call_empty(shoal_client_t *c, ctl_writer_t *w, int64_t deadline_ns)
{
    client_reply_t rep;
    int rc = client_call_until(c, w, &rep, deadline_ns);
    ctl_writer_release(w);
    if (rc == 0) {
        rc = ctl_reader_finish(&rep.r);
        client_reply_release(&rep);
    }
    return rc;
}

/* How long a create may take: its rings are made at about a second per GiB here when the
 * machine is quiet, and at up to 4 s per GiB measured while it was busy making others, so
 * the client's timeout_ms and 8 s per GiB of rings, up to an hour. */
static int64_t create_deadline(const shoal_client_t *c, const shoal_topic_config_t *cfg)
{
    double gib = (double)cfg->partitions * (double)cfg->ring_slots * (double)cfg->segment_bytes /
                 (double)(1u << 30);
    double ms = c->timeout_ms + gib * CREATE_MS_PER_GIB;
    return client_deadline_after(ms < CREATE_WAIT_MAX_MS ? (int64_t)ms : CREATE_WAIT_MAX_MS);
}

/* A request whose only field is a topic name (and, for a create, its config) and whose
 * response has no fields. */
static int topic_simple_call(shoal_client_t *c, uint16_t type, const char *name,
                             const shoal_topic_config_t *cfg)
{
    ctl_writer_t w;
    int rc = check_name(name);
    if (rc < 0)
        return rc;
    ctl_writer_init(&w);
    ctl_frame_begin(&w, type, 0);
    ctl_put_str(&w, name);
    if (cfg)
        ctl_put_topic_config(&w, cfg);
    return client_call_empty(c, &w, cfg ? create_deadline(c, cfg) : client_deadline(c));
}

int shoal_topic_create(shoal_client_t *c, const char *name, const shoal_topic_config_t *cfg)
{
    shoal_topic_config_t sent;
    int rc;
    shoal__clear_err();
    SHOAL_NEED(c);
    SHOAL_NEED(name);
    if (cfg)
        sent = *cfg;
    else
        shoal_topic_config_init(&sent);
    if ((rc = topic_config_check_reserved(&sent)) < 0)
        return rc;
    topic_config_fit_default(&sent); /* a segment under 2 MiB: as the CLI does */
    return topic_simple_call(c, CTL_TOPIC_CREATE, name, &sent);
}

/* How long an alter may take: one that adds partitions makes their rings, so as long as a
 * create of them (the topic's ring size from a describe first); else the usual wait. */
static int64_t alter_deadline(shoal_client_t *c, const char *name, const char *const *names,
                              const char *const *values, size_t n)
{
    shoal_topic_info_t *info;
    shoal_topic_config_t added;
    unsigned long want = 0;

    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], "partitions"))
            want = strtoul(values[i], NULL, 10);
    if (want == 0 || shoal_topic_describe(c, name, &info) < 0)
        return client_deadline(c);
    added = info->config;
    added.partitions = want > added.partitions ? (uint32_t)(want - added.partitions) : 0;
    shoal_topic_info_free(info);
    return create_deadline(c, &added);
}

int shoal_topic_alter(shoal_client_t *c, const char *name, const char *const *names,
                      const char *const *values, size_t n)
{
    ctl_writer_t w;
    int rc;

    shoal__clear_err();
    SHOAL_NEED(c);
    SHOAL_NEED(name);
    if ((rc = check_name(name)) < 0)
        return rc;
    if (n == 0 || n > 64 || !names || !values)
        return SHOAL_ERR(SHOAL_EINVAL, "alter needs 1..64 settings");
    for (size_t i = 0; i < n; i++)
        if (!names[i] || !values[i])
            return SHOAL_ERR(SHOAL_EINVAL, "%s: %s[%zu] is NULL", __func__,
                             names[i] ? "values" : "names", i);
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_TOPIC_ALTER, 0);
    ctl_put_str(&w, name);
    ctl_put_u32(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        ctl_put_str(&w, names[i]);
        ctl_put_str(&w, values[i]);
    }
    return client_call_empty(c, &w, alter_deadline(c, name, names, values, n));
}

int shoal_topic_delete(shoal_client_t *c, const char *name)
{
    shoal__clear_err();
    SHOAL_NEED(c);
    SHOAL_NEED(name);
    return topic_simple_call(c, CTL_TOPIC_DELETE, name, NULL);
}

void shoal_topic_list_free(char **names, size_t count)
{
    if (!names)
        return;
    for (size_t i = 0; i < count; i++)
        shoal__free(names[i]);
    shoal__free(names);
}

static int read_names(ctl_reader_t *r, char ***names, size_t *count)
{
    uint32_t n = ctl_get_u32(r);
    char buf[SHOAL_TOPIC_NAME_MAX + 1];
    char **v;

    if (r->err || n > ctl_reader_left(r) / 3) /* each name takes 3 bytes at least */
        return SHOAL_ERR(SHOAL_EPROTO, "bad topic count");
    v = shoal__calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        ctl_get_str(r, buf, sizeof(buf));
        if (r->err || !(v[i] = shoal__strdup(buf))) {
            shoal_topic_list_free(v, i);
            return r->err ? r->err : -ENOMEM;
        }
    }
    *names = v;
    *count = n;
    return 0;
}

/* TOPIC_LIST for the public function fn; the served list is asked for with no field, as
 * daemons before the unserved list expect it. */
static int topic_list_call(const char *fn, shoal_client_t *c, uint8_t which, char ***names,
                           size_t *count)
{
    ctl_writer_t w;
    client_reply_t rep;
    int rc;

    shoal__clear_err();
    if (!c || !names || !count)
        return SHOAL_ERR(SHOAL_EINVAL, "%s: %s is NULL", fn, !c ? "c" : !names ? "names" : "count");

    *names = NULL;
    *count = 0;
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_TOPIC_LIST, 0);
    if (which != CTL_LIST_SERVED)
        ctl_put_u8(&w, which);
    rc = client_call(c, &w, &rep);
    ctl_writer_release(&w);
    if (rc < 0)
        return rc;
    rc = read_names(&rep.r, names, count);
    if (rc == 0 && (rc = ctl_reader_finish(&rep.r)) < 0) {
        shoal_topic_list_free(*names, *count);
        *names = NULL;
        *count = 0;
    }
    client_reply_release(&rep);
    return rc;
}

int shoal_topic_list(shoal_client_t *c, char ***names, size_t *count)
{
    return topic_list_call(__func__, c, CTL_LIST_SERVED, names, count);
}

int shoal_topic_list_unserved(shoal_client_t *c, char ***names, size_t *count)
{
    return topic_list_call(__func__, c, CTL_LIST_UNSERVED, names, count);
}

void shoal_topic_info_free(shoal_topic_info_t *info)
{
    if (!info)
        return;
    shoal__free(info->partitions);
    shoal__free(info);
}

static int read_topic_info(ctl_reader_t *r, shoal_topic_info_t *info)
{
    uint32_t n;
    ctl_get_topic_config(r, &info->config);
    n = ctl_get_u32(r);
    if (r->err || n != info->config.partitions || n > SHOAL_PARTITIONS_MAX)
        return SHOAL_ERR(SHOAL_EPROTO, "bad partition count in describe response");
    info->partitions = shoal__calloc(n, sizeof(*info->partitions));
    if (!info->partitions)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        ctl_get_partition_info(r, &info->partitions[i]);
    return ctl_reader_finish(r);
}

int shoal_topic_describe(shoal_client_t *c, const char *name, shoal_topic_info_t **out)
{
    ctl_writer_t w;
    client_reply_t rep;
    shoal_topic_info_t *info;
    int rc;
    shoal__clear_err();
    SHOAL_NEED(c);
    SHOAL_NEED(name);
    SHOAL_NEED(out);

    *out = NULL;
    if ((rc = check_name(name)) < 0)
        return rc;
    if (!(info = shoal__calloc(1, sizeof(*info))))
        return -ENOMEM;
    snprintf(info->name, sizeof(info->name), "%s", name);
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_TOPIC_DESCRIBE, 0);
    ctl_put_str(&w, name);
    rc = client_call(c, &w, &rep);
    ctl_writer_release(&w);
    if (rc == 0) {
        rc = read_topic_info(&rep.r, info);
        client_reply_release(&rep);
    }
    if (rc < 0) {
        shoal_topic_info_free(info);
        return rc;
    }
    *out = info;
    return 0;
}

/* ------------------------------------------------------------------ attach */

void client_forget_late_attach(shoal_client_t *c)
{
    if (pthread_mutex_trylock(&c->mu) != 0)
        return; /* another call reads the late answer first, and drops it unless it asks the same */
    if (c->late_type == CTL_ATTACH) {
        shoal__free(c->late_frame);
        c->late_frame = NULL;
        c->late_len = 0;
    }
    pthread_mutex_unlock(&c->mu);
}

int client_attach(shoal_client_t *c, const char *topic, int32_t partition, bool writable,
                  ring_t *ring, shoal_topic_config_t *cfg)
{
    return client_attach_until(c, topic, partition, writable, ring, cfg, client_deadline(c));
}

int client_attach_until(shoal_client_t *c, const char *topic, int32_t partition, bool writable,
                        ring_t *ring, shoal_topic_config_t *cfg, int64_t deadline_ns)
{
    ctl_writer_t w;
    client_reply_t rep;
    shoal_topic_config_t got;
    int rc;

    if ((rc = check_name(topic)) < 0)
        return rc;
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_ATTACH, 0);
    ctl_put_str(&w, topic);
    ctl_put_i32(&w, partition);
    ctl_put_u8(&w, writable ? CTL_ATTACH_WRITE : CTL_ATTACH_READ);
    rc = client_call_until(c, &w, &rep, deadline_ns);
    ctl_writer_release(&w);
    if (rc < 0)
        return rc;
    ctl_get_topic_config(&rep.r, &got);
    rc = ctl_reader_finish(&rep.r);
    if (rc == 0)
        rc = ring_map_fds(ring, rep.fds, rep.nfds, writable);
    if (rc == 0)
        ring->reader_pid = c->seen_pid;
    if (rc == 0 && cfg)
        *cfg = got;
    client_reply_release(&rep);
    return rc;
}

int client_segment_open(shoal_client_t *c, const char *topic, int32_t partition, int64_t offset,
                        client_segment_t *seg)
{
    return client_segment_open_until(c, topic, partition, offset, client_deadline(c), seg);
}

int client_segment_open_until(shoal_client_t *c, const char *topic, int32_t partition,
                              int64_t offset, int64_t deadline_ns, client_segment_t *seg)
{
    ctl_writer_t w;
    client_reply_t rep;
    void *map;
    int rc;

    memset(seg, 0, sizeof(*seg));
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_SEGMENT_OPEN, 0);
    ctl_put_str(&w, topic);
    ctl_put_i32(&w, partition);
    ctl_put_i64(&w, offset);
    rc = client_call_until(c, &w, &rep, deadline_ns);
    ctl_writer_release(&w);
    if (rc < 0)
        return rc;
    seg->base = ctl_get_i64(&rep.r);
    seg->len = ctl_get_u64(&rep.r);
    seg->pos = (uint64_t)ctl_get_i64(&rep.r);
    rc = ctl_reader_finish(&rep.r);
    if (rc == 0 && (rep.nfds != 1 || seg->len == 0 || seg->pos >= seg->len))
        rc = SHOAL_ERR(SHOAL_EPROTO, "segment response without a usable file");
    if (rc == 0) {
        map = mmap(NULL, seg->len, PROT_READ, MAP_SHARED, rep.fds[0], 0);
        if (map == MAP_FAILED)
            rc = -errno;
        else
            seg->data = map;
    }
    client_reply_release(&rep);
    if (rc < 0)
        memset(seg, 0, sizeof(*seg));
    return rc;
}

int client_offset_for_time(shoal_client_t *c, const char *topic, int32_t partition, int64_t ts_ms,
                           int64_t *offset)
{
    ctl_writer_t w;
    client_reply_t rep;
    int64_t got;
    int rc;

    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_OFFSET_FOR_TIME, 0);
    ctl_put_str(&w, topic);
    ctl_put_i32(&w, partition);
    ctl_put_i64(&w, ts_ms);
    rc = client_call(c, &w, &rep);
    ctl_writer_release(&w);
    if (rc < 0)
        return rc;
    got = ctl_get_i64(&rep.r);
    rc = ctl_reader_finish(&rep.r);
    if (rc == 0 && got < 0)
        rc = SHOAL_ERR(SHOAL_EPROTO, "negative offset %lld for a timestamp", (long long)got);
    if (rc == 0)
        *offset = got;
    client_reply_release(&rep);
    return rc;
}

void client_segment_close(client_segment_t *seg)
{
    if (seg->data)
        munmap((void *)seg->data, seg->len);
    memset(seg, 0, sizeof(*seg));
}
