/* brokers.c - the single-host brokers users pick today, measured in the same run as
 * shoal for context: Redis Streams and NATS JetStream, each through its own server
 * started by the driver.
 *
 * DESIGN: each role is one process speaking the broker's protocol, written here in a few
 * functions rather than linking a client library, so the bench needs only the servers.
 * The clients do what a well-written one does. Redis (RESP2 over its Unix socket, its
 * fastest local transport): a producer pipelines a batch of XADDs in one write and then
 * reads their replies; a consumer reads with XREAD BLOCK from the last id it saw; a
 * ping-pong side sends its XADD and its next XREAD in one write. NATS (its text protocol
 * over loopback TCP, JetStream's API as requests): a producer publishes a batch with
 * acknowledgements in one write, then reads the acknowledgements (async publish); a
 * consumer is a push consumer without acknowledgements. Both servers keep their streams
 * in memory only, as the shoal scenarios they are set beside use memory topics; streams
 * keep a bounded number of entries, and producers stay within BROKER_MAX_LAG (bench.c) of
 * the consumer, so none is dropped before it is read. A reply of an unexpected shape, or
 * an error reply, fails the process with -EPROTO and says what came. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define CONN_BUF   (1u << 20)
#define XREAD_MAX  256      /* entries a consumer asks for at once, as shoal's polls */
#define TRIM_LEN   "200000" /* approximate stream length kept (XADD MAXLEN ~) */
#define ID_MAX     48
#define BLOCK_MS   "10" /* only bounds how late a blocked reader sees STOP */
#define VALUE_NAME "v"

static volatile uint64_t brokers_sink; /* keeps the value touches from being optimised away */

/* A buffered connection. Pointers a reader hands out stay valid until its next read. */
struct conn {
    int fd;
    char *buf;
    size_t pos, len;
};

static int unix_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* An empty buffer for a connection about to be made. */
static int conn_alloc(struct conn *c)
{
    c->pos = c->len = 0;
    return (c->buf = malloc(CONN_BUF)) ? 0 : -ENOMEM;
}

static int conn_unix(struct conn *c, const char *path)
{
    int rc = conn_alloc(c);
    if (rc < 0)
        return rc;
    c->fd = unix_connect(path);
    return c->fd < 0 ? c->fd : 0;
}

/* A TCP connection to 127.0.0.1:port, with Nagle off; reads time out after timeout_ms
 * (0: never), so a waiting role sees STOP. */
static int conn_tcp(struct conn *c, int port, int timeout_ms)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int one = 1, rc = conn_alloc(c);

    if (rc < 0)
        return rc;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (timeout_ms > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
}

static void conn_close(struct conn *r)
{
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    r->buf = NULL;
    r->fd = -1;
}

static int conn_write(struct conn *r, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(r->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EPIPE;
        p += w, n -= (size_t)w;
    }
    return 0;
}

/* Make at least n unread bytes available. */
static int conn_need(struct conn *r, size_t n)
{
    if (n > CONN_BUF)
        return -EMSGSIZE;
    if (r->pos + n > CONN_BUF) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos, r->pos = 0;
    }
    while (r->len - r->pos < n) {
        ssize_t got = read(r->fd, r->buf + r->len, CONN_BUF - r->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? -errno : -EPIPE;
        r->len += (size_t)got;
    }
    return 0;
}

/* Make a whole line available; its length with the "\n" goes to n, nothing is consumed
 * (a read that times out loses nothing). */
static int conn_line(struct conn *c, size_t *n)
{
    const char *nl;
    for (size_t want = 3;; want = c->len - c->pos + 1) {
        int rc = conn_need(c, want);
        if (rc < 0)
            return rc;
        if ((nl = memchr(c->buf + c->pos, '\n', c->len - c->pos))) {
            *n = (size_t)(nl - (c->buf + c->pos)) + 1;
            return 0;
        }
    }
}

/* Repeat the command at the start of cmds (one bytes) until it is there batch times, for
 * one write a batch. Returns the length of the batch, 0 when it does not fit. */
static size_t cmd_batch(char *cmds, size_t one, uint32_t batch)
{
    if (one == 0 || one * batch > CONN_BUF)
        return 0;
    for (uint32_t i = 1; i < batch; i++)
        memcpy(cmds + i * one, cmds, one);
    return one * batch;
}

/* ------------------------------------------------------------------ Redis */

static int resp_bad(const char *what, const char *got, size_t n)
{
    fprintf(stderr, "bench: redis: expected %s, got \"%.*s\"\n", what, (int)(n > 80 ? 80 : n), got);
    return -EPROTO;
}

/* One line, without its "\r\n"; *line points into the buffer. */
static int resp_line(struct conn *r, const char **line, size_t *n)
{
    int rc = conn_line(r, n);
    if (rc < 0)
        return rc;
    *line = r->buf + r->pos;
    r->pos += *n;
    if (*n < 2 || (*line)[*n - 2] != '\r')
        return resp_bad("a line ending in CR LF", *line, *n);
    *n -= 2;
    return 0;
}

/* One "<type><integer>" line; an error reply ("-ERR ...") is reported as what came. */
static int resp_header(struct conn *r, char type, long long *v)
{
    char what[] = {type, ' ', 'l', 'i', 'n', 'e', 0}, *end;
    const char *line;
    size_t n;
    int rc = resp_line(r, &line, &n);

    if (rc < 0)
        return rc;
    if (line[0] != type)
        return resp_bad(what, line, n);
    *v = strtoll(line + 1, &end, 10);
    return end == line + n ? 0 : resp_bad(what, line, n);
}

/* A bulk string; *p points into the buffer. */
static int resp_bulk(struct conn *r, const char **p, size_t *n)
{
    long long len;
    int rc = resp_header(r, '$', &len);
    if (rc < 0)
        return rc;
    if (len < 0 || (rc = conn_need(r, (size_t)len + 2)) < 0)
        return rc < 0 ? rc : resp_bad("a bulk string", "$-1", 3);
    *p = r->buf + r->pos;
    *n = (size_t)len;
    r->pos += (size_t)len + 2;
    return 0;
}

static int resp_array(struct conn *r, long long want)
{
    long long n;
    int rc = resp_header(r, '*', &n);
    return rc < 0 ? rc : n == want ? 0 : resp_bad("another array length", "", 0);
}

/* Append one command (argc strings) to out; returns the bytes written, or 0 if no room. */
static size_t resp_cmd(char *out, size_t cap, int argc, const char *const *argv, const size_t *lens)
{
    size_t at = (size_t)snprintf(out, cap, "*%d\r\n", argc);
    for (int i = 0; i < argc && at < cap; i++) {
        at += (size_t)snprintf(out + at, cap - at, "$%zu\r\n", lens[i]);
        if (at + lens[i] + 2 > cap)
            return 0;
        memcpy(out + at, argv[i], lens[i]);
        memcpy(out + at + lens[i], "\r\n", 2);
        at += lens[i] + 2;
    }
    return at < cap ? at : 0;
}

/* XADD stream MAXLEN ~ TRIM_LEN * v <value>. */
static size_t xadd_cmd(char *out, size_t cap, const char *stream, const uint8_t *value,
                       uint32_t size)
{
    const char *argv[] = {"XADD",   stream, "MAXLEN",   "~",
                          TRIM_LEN, "*",    VALUE_NAME, (const char *)value};
    size_t lens[8];
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    lens[7] = size;
    return resp_cmd(out, cap, 8, argv, lens);
}

/* XREAD COUNT count BLOCK BLOCK_MS STREAMS stream last_id. */
static size_t xread_cmd(char *out, size_t cap, const char *stream, const char *last_id, int count)
{
    char c[16];
    const char *argv[] = {"XREAD", "COUNT", c, "BLOCK", BLOCK_MS, "STREAMS", stream, last_id};
    size_t lens[8];
    snprintf(c, sizeof(c), "%d", count);
    for (int i = 0; i < 8; i++)
        lens[i] = strlen(argv[i]);
    return resp_cmd(out, cap, 8, argv, lens);
}

/* Read an XREAD reply: the entries' values are touched, the last id is kept. Returns the
 * number of entries (0 when the block timed out), or an error. */
static int xread_reply(struct conn *r, char *last_id, uint64_t *sink)
{
    long long n, entries;
    const char *p;
    size_t len;
    int rc = resp_header(r, '*', &n);

    if (rc < 0 || n == -1) /* -1: nothing within BLOCK_MS */
        return rc;
    if (n != 1 || (rc = resp_array(r, 2)) < 0 || (rc = resp_bulk(r, &p, &len)) < 0 ||
        (rc = resp_header(r, '*', &entries)) < 0)
        return rc < 0 ? rc : resp_bad("one stream", "", 0);
    for (long long i = 0; i < entries; i++) {
        if ((rc = resp_array(r, 2)) < 0 || (rc = resp_bulk(r, &p, &len)) < 0)
            return rc;
        if (len >= ID_MAX)
            return resp_bad("an entry id", p, len);
        memcpy(last_id, p, len);
        last_id[len] = '\0';
        if ((rc = resp_array(r, 2)) < 0 || (rc = resp_bulk(r, &p, &len)) < 0 ||
            (rc = resp_bulk(r, &p, &len)) < 0)
            return rc;
        *sink += bench_touch(p, len);
    }
    return (int)entries;
}

/* Read n replies to XADD (each the new entry's id). */
static int xadd_replies(struct conn *r, uint32_t n)
{
    const char *p;
    size_t len;
    for (uint32_t i = 0; i < n; i++) {
        int rc = resp_bulk(r, &p, &len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void role_done(struct bench_child *ch, struct conn *r, int rc)
{
    ch->rss_kb = bench_rss_kb(0, "VmRSS");
    ch->error = rc;
    atomic_store(&ch->done, 1);
    conn_close(r);
}

/* ------------------------------------------------------------------ roles */

/* Batches of a->batch XADDs to a->topic, one write and then the replies each. */
int role_redis_producer(struct bench_ctl *ctl, const struct bench_args *a)
{
    struct bench_child *ch = &ctl->child[a->idx];
    uint8_t *value = malloc(a->size + 1);
    char *cmds = malloc(CONN_BUF);
    size_t len = 0;
    uint64_t batches = 0;
    struct conn r = {.fd = -1};
    int rc = value && cmds ? conn_unix(&r, a->server) : -ENOMEM;

    if (rc == 0) {
        memset(value, 'v', a->size);
        len = cmd_batch(cmds, xadd_cmd(cmds, CONN_BUF, a->topic, value, a->size), a->batch);
        rc = len ? 0 : -EMSGSIZE;
    }
    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        if ((rc = conn_write(&r, cmds, len)) < 0 || (rc = xadd_replies(&r, a->batch)) < 0)
            break;
        bench_count(ch, a->batch, (uint64_t)a->batch * a->size);
        if (++batches % BENCH_PACE_EVERY == 0)
            bench_pace(ctl);
    }
    role_done(ch, &r, rc);
    free(value);
    free(cmds);
    return rc < 0;
}

/* XREAD from a->topic, up to XREAD_MAX entries at a time, from the last id seen. */
int role_redis_consumer(struct bench_ctl *ctl, const struct bench_args *a)
{
    struct bench_child *ch = &ctl->child[a->idx];
    char last[ID_MAX] = "0-0", cmd[256];
    uint64_t sink = 0;
    struct conn r = {.fd = -1};
    int rc = conn_unix(&r, a->server);

    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        size_t len = xread_cmd(cmd, sizeof(cmd), a->topic, last, XREAD_MAX);
        int n;
        if ((rc = conn_write(&r, cmd, len)) < 0 || (n = rc = xread_reply(&r, last, &sink)) < 0)
            break;
        rc = 0;
        if (n > 0)
            bench_count(ch, (uint64_t)n, (uint64_t)n * a->size);
    }
    brokers_sink = sink;
    role_done(ch, &r, rc);
    return rc < 0;
}

/* Ping XADDs to a->topic and reads the answer from a->topic2; pong the other way round.
 * Each sends its XADD and its next XREAD in one write, from one buffer: the XADD (values
 * up to 64 KiB), then the XREAD. */
#define PP_XADD_CAP  (65536 + 256)
#define PP_XREAD_CAP 512

static int redis_pingpong(struct bench_ctl *ctl, const struct bench_args *a, bool ping)
{
    struct bench_child *ch = &ctl->child[a->idx];
    const char *out = ping ? a->topic : a->topic2, *in = ping ? a->topic2 : a->topic;
    char last[ID_MAX] = "0-0", *cmd = malloc(PP_XADD_CAP + PP_XREAD_CAP);
    uint8_t value[PP_XADD_CAP - 256];
    uint64_t sink = 0;
    struct bench_lat lat = {0};
    struct conn r = {.fd = -1};
    size_t add;
    int rc = !cmd ? -ENOMEM : a->size > sizeof(value) ? -EMSGSIZE : conn_unix(&r, a->server);
    bool answer = ping; /* ping opens with a value; pong first waits for one */

    memset(value, 'v', sizeof(value));
    if (rc == 0 && ping)
        rc = bench_lat_init(&lat, 4u << 20);
    add = cmd ? xadd_cmd(cmd, PP_XADD_CAP, out, value, a->size) : 0;
    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        int64_t t0 = bench_now_ns();
        size_t len = xread_cmd(cmd + add, PP_XREAD_CAP, in, last, 1); /* right after the XADD */
        int n;
        if ((rc = conn_write(&r, answer ? cmd : cmd + add, answer ? add + len : len)) < 0 ||
            (answer && (rc = xadd_replies(&r, 1)) < 0))
            break;
        while ((n = rc = xread_reply(&r, last, &sink)) == 0 && bench_phase(ctl) < BENCH_STOP) {
            len = xread_cmd(cmd + add, PP_XREAD_CAP, in, last, 1);
            if ((rc = conn_write(&r, cmd + add, len)) < 0)
                break;
        }
        if (n <= 0)
            break;
        rc = 0;
        answer = true;
        if (ping)
            bench_lat_add(&lat, ctl, bench_now_ns() - t0);
        bench_count(ch, 1, a->size);
    }
    if (ping)
        bench_lat_finish(&lat, ch);
    brokers_sink = sink;
    role_done(ch, &r, rc < 0 ? rc : 0);
    free(cmd);
    return rc < 0;
}

int role_redis_ping(struct bench_ctl *ctl, const struct bench_args *a)
{
    return redis_pingpong(ctl, a, true);
}

int role_redis_pong(struct bench_ctl *ctl, const struct bench_args *a)
{
    return redis_pingpong(ctl, a, false);
}

/* ------------------------------------------------------------------ NATS JetStream */

#define NATS_SID_DATA 1        /* the push consumer's deliveries */
#define NATS_SID_ACKS 2        /* publish acknowledgements and API replies, on the inbox */
#define NATS_WAIT_MS  10       /* only bounds how late a waiting role sees STOP */
#define NATS_MAX_MSGS "200000" /* messages a stream keeps (discarding the oldest) */

struct nats {
    struct conn c;
    char inbox[32];
};

struct nats_msg {
    int sid;
    const char *data; /* the payload, in the connection's buffer */
    size_t len;
};

static int nats_bad(const char *what, const char *got, size_t n)
{
    fprintf(stderr, "bench: nats: expected %s, got \"%.*s\"\n", what, (int)(n > 120 ? 120 : n),
            got);
    return -EPROTO;
}

/* Parse "MSG subject sid [reply] bytes" or "HMSG subject sid [reply] hbytes bytes". */
static int nats_msg_line(const char *line, size_t n, struct nats_msg *m, size_t *hdr, size_t *total)
{
    char copy[512], *tok[7], *save = NULL;
    int k = 0;
    bool h = line[0] == 'H';

    if (n >= sizeof(copy))
        return nats_bad("a shorter MSG line", line, n);
    memcpy(copy, line, n);
    copy[n] = '\0';
    for (char *t = strtok_r(copy, " ", &save); t && k < 7; t = strtok_r(NULL, " ", &save))
        tok[k++] = t;
    if (k < 4 + h || k > 5 + h)
        return nats_bad("a MSG line", line, n);
    m->sid = atoi(tok[2]);
    *total = strtoul(tok[k - 1], NULL, 10);
    *hdr = h ? strtoul(tok[k - 2], NULL, 10) : 0;
    return *hdr <= *total && *total < CONN_BUF / 2 ? 0 : nats_bad("a MSG size", line, n);
}

/* The next message. Answers the server's PINGs and skips its other lines. Returns 1 with m
 * filled, -EAGAIN when the read timed out first (nothing is lost), or an error. */
static int nats_next(struct nats *s, struct nats_msg *m)
{
    struct conn *c = &s->c;
    for (;;) {
        size_t n, hdr, total;
        const char *line;
        int rc = conn_line(c, &n);

        if (rc < 0)
            return rc;
        line = c->buf + c->pos;
        if (n < 2 || line[n - 2] != '\r')
            return nats_bad("a line ending in CR LF", line, n);
        if (!strncmp(line, "MSG ", 4) || !strncmp(line, "HMSG ", 5)) {
            if ((rc = nats_msg_line(line, n - 2, m, &hdr, &total)) < 0 ||
                (rc = conn_need(c, n + total + 2)) < 0)
                return rc;
            m->data = c->buf + c->pos + n + hdr;
            m->len = total - hdr;
            c->pos += n + total + 2;
            return 1;
        }
        if (!strncmp(line, "-ERR", 4))
            return nats_bad("no error", line, n - 2);
        c->pos += n; /* +OK, PONG, INFO */
        if (!strncmp(line, "PING", 4) && (rc = conn_write(c, "PONG\r\n", 6)) < 0)
            return rc;
    }
}

/* The next message on sid, looking at STOP between read timeouts: 1, 0 at STOP, or an
 * error. Messages on the other subscription are dropped, after checking that an
 * acknowledgement does not report an error. */
static int nats_wait(struct bench_ctl *ctl, struct nats *s, int sid, struct nats_msg *m)
{
    for (;;) {
        int rc = nats_next(s, m);
        if (rc == -EAGAIN && bench_phase(ctl) < BENCH_STOP)
            continue;
        if (rc < 0)
            return rc == -EAGAIN ? 0 : rc;
        if (m->sid == NATS_SID_ACKS && memmem(m->data, m->len, "\"error\"", 7))
            return nats_bad("a publish acknowledgement", m->data, m->len);
        if (m->sid == sid)
            return 1;
    }
}

/* Connect, subscribe to our own inbox, and wait for the server's PONG (so every earlier
 * line is processed). */
static int nats_open(struct nats *s, int port, int timeout_ms)
{
    char hello[256];
    int n, rc = conn_tcp(&s->c, port, timeout_ms);

    snprintf(s->inbox, sizeof(s->inbox), "_INBOX.bench%d", (int)getpid());
    n = snprintf(hello, sizeof(hello),
                 "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,"
                 "\"no_responders\":true}\r\nSUB %s %d\r\nPING\r\n",
                 s->inbox, NATS_SID_ACKS);
    if (rc == 0)
        rc = conn_write(&s->c, hello, (size_t)n);
    while (rc == 0) {
        size_t len;
        const char *line;
        if ((rc = conn_line(&s->c, &len)) < 0)
            break;
        line = s->c.buf + s->c.pos;
        if (!strncmp(line, "-ERR", 4))
            return nats_bad("no error", line, len);
        s->c.pos += len;
        if (!strncmp(line, "PONG", 4))
            return 0;
    }
    return rc;
}

/* A JetStream API request; fails when its reply holds an error. */
static int nats_request(struct nats *s, const char *subject, const char *json)
{
    char cmd[1024];
    struct nats_msg m;
    int n = snprintf(cmd, sizeof(cmd), "PUB %s %s %zu\r\n%s\r\n", subject, s->inbox, strlen(json),
                     json);
    int rc = n < (int)sizeof(cmd) ? conn_write(&s->c, cmd, (size_t)n) : -EMSGSIZE;

    while (rc == 0 && (rc = nats_next(s, &m)) == 1 && m.sid != NATS_SID_ACKS)
        ;
    if (rc < 0)
        return rc;
    if (m.len == 0 || memmem(m.data, m.len, "\"error\"", 7)) /* empty: no responders */
        return nats_bad("a success reply", m.data, m.len);
    return 0;
}

/* A push consumer of stream, from its first message, delivered on subscription
 * NATS_SID_DATA; no acknowledgements (as shoal's consumers make none). */
static int nats_subscribe(struct nats *s, const char *stream)
{
    char sub[128], json[512], api[128];
    int n = snprintf(sub, sizeof(sub), "SUB bench.deliver.%d %d\r\n", (int)getpid(), NATS_SID_DATA);
    int rc = conn_write(&s->c, sub, (size_t)n);

    snprintf(json, sizeof(json),
             "{\"stream_name\":\"%s\",\"config\":{\"deliver_subject\":\"bench.deliver.%d\","
             "\"ack_policy\":\"none\",\"deliver_policy\":\"all\"}}",
             stream, (int)getpid());
    snprintf(api, sizeof(api), "$JS.API.CONSUMER.CREATE.%s", stream);
    return rc < 0 ? rc : nats_request(s, api, json);
}

/* "PUB stream inbox size\r\nvalue\r\n" into out; returns its length. */
static size_t nats_pub_cmd(char *out, size_t cap, const struct nats *s, const char *stream,
                           const uint8_t *value, uint32_t size)
{
    int n = snprintf(out, cap, "PUB %s %s %u\r\n", stream, s->inbox, size);
    if (n < 0 || (size_t)n + size + 2 > cap)
        return 0;
    memcpy(out + n, value, size);
    memcpy(out + n + size, "\r\n", 2);
    return (size_t)n + size + 2;
}

/* Batches of a->batch publishes to stream a->topic in one write, then their
 * acknowledgements (JetStream's async publish with a window of a batch). */
int role_nats_producer(struct bench_ctl *ctl, const struct bench_args *a)
{
    struct bench_child *ch = &ctl->child[a->idx];
    uint8_t *value = malloc(a->size + 1);
    char *cmds = malloc(CONN_BUF);
    size_t len = 0;
    uint64_t batches = 0;
    struct nats s = {.c.fd = -1};
    int rc = value && cmds ? nats_open(&s, atoi(a->server), NATS_WAIT_MS) : -ENOMEM;

    if (rc == 0) {
        memset(value, 'v', a->size);
        len = cmd_batch(cmds, nats_pub_cmd(cmds, CONN_BUF, &s, a->topic, value, a->size), a->batch);
        rc = len ? 0 : -EMSGSIZE;
    }
    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        struct nats_msg m;
        int got = 1;
        if ((rc = conn_write(&s.c, cmds, len)) < 0)
            break;
        for (uint32_t acked = 0; got == 1 && acked < a->batch; acked++)
            got = nats_wait(ctl, &s, NATS_SID_ACKS, &m);
        if (got <= 0) {
            rc = got;
            break;
        }
        bench_count(ch, a->batch, (uint64_t)a->batch * a->size);
        if (++batches % BENCH_PACE_EVERY == 0)
            bench_pace(ctl);
    }
    role_done(ch, &s.c, rc);
    free(value);
    free(cmds);
    return rc < 0;
}

/* Every message of stream a->topic, through a push consumer. */
int role_nats_consumer(struct bench_ctl *ctl, const struct bench_args *a)
{
    struct bench_child *ch = &ctl->child[a->idx];
    struct nats s = {.c.fd = -1};
    uint64_t sink = 0;
    int rc = nats_open(&s, atoi(a->server), NATS_WAIT_MS);

    if (rc == 0)
        rc = nats_subscribe(&s, a->topic);
    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        struct nats_msg m;
        int got = nats_wait(ctl, &s, NATS_SID_DATA, &m);
        if (got <= 0) {
            rc = got;
            break;
        }
        sink += bench_touch(m.data, m.len);
        bench_count(ch, 1, m.len);
    }
    brokers_sink = sink;
    role_done(ch, &s.c, rc);
    return rc < 0;
}

/* Ping publishes to stream a->topic and waits for the answer from a->topic2; pong the
 * other way round. The acknowledgements of a side's publishes are read as they come. */
static int nats_pingpong(struct bench_ctl *ctl, const struct bench_args *a, bool ping)
{
    struct bench_child *ch = &ctl->child[a->idx];
    const char *out = ping ? a->topic : a->topic2, *in = ping ? a->topic2 : a->topic;
    uint8_t value[65536];
    char *pub = malloc(sizeof(value) + 256);
    struct bench_lat lat = {0};
    struct nats s = {.c.fd = -1};
    uint64_t sink = 0;
    size_t len = 0;
    int rc = !pub                      ? -ENOMEM
             : a->size > sizeof(value) ? -EMSGSIZE
                                       : nats_open(&s, atoi(a->server), NATS_WAIT_MS);

    memset(value, 'v', sizeof(value));
    if (rc == 0)
        rc = nats_subscribe(&s, in);
    if (rc == 0 && !(len = nats_pub_cmd(pub, sizeof(value) + 256, &s, out, value, a->size)))
        rc = -EMSGSIZE;
    if (rc == 0 && ping)
        rc = bench_lat_init(&lat, 4u << 20);
    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        int64_t t0 = bench_now_ns();
        struct nats_msg m;
        int got;
        if (ping && (rc = conn_write(&s.c, pub, len)) < 0)
            break;
        if ((got = nats_wait(ctl, &s, NATS_SID_DATA, &m)) <= 0) {
            rc = got;
            break;
        }
        sink += bench_touch(m.data, m.len);
        if (!ping && (rc = conn_write(&s.c, pub, len)) < 0)
            break;
        if (ping)
            bench_lat_add(&lat, ctl, bench_now_ns() - t0);
        bench_count(ch, 1, a->size);
    }
    if (ping)
        bench_lat_finish(&lat, ch);
    brokers_sink = sink;
    role_done(ch, &s.c, rc);
    free(pub);
    return rc < 0;
}

int role_nats_ping(struct bench_ctl *ctl, const struct bench_args *a)
{
    return nats_pingpong(ctl, a, true);
}

int role_nats_pong(struct bench_ctl *ctl, const struct bench_args *a)
{
    return nats_pingpong(ctl, a, false);
}

/* ------------------------------------------------------------------ the servers */

/* The path of prog in $PATH or an sbin directory (Debian installs nats-server in
 * /usr/sbin, which a user's $PATH often lacks), or -1. */
static int find_program(const char *prog, char *out, size_t cap)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s:/usr/local/sbin:/usr/sbin",
             getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(out, cap, "%.*s/%s", (int)n, p, prog);
        if (n > 0 && access(out, X_OK) == 0)
            return 0;
        p += n + (p[n] == ':');
    }
    return -1;
}

/* Fork and exec argv[0] (found in $PATH), then wait up to 5 s for up(arg) to say it
 * answers. Returns its pid, 0 when the program is not installed, or -1. */
static pid_t server_start(char *const *argv, const char *log, bool (*up)(const void *),
                          const void *arg)
{
    char prog[256];
    pid_t pid;

    if (find_program(argv[0], prog, sizeof(prog)) < 0)
        return 0;
    if ((pid = fork()) == 0) {
        execv(prog, argv);
        _exit(127);
    }
    for (int t = 0; pid > 0 && t < 500; t++) {
        if (up(arg))
            return pid;
        usleep(10000);
    }
    fprintf(stderr, "bench: %s did not come up (log: %s)\n", argv[0], log);
    bench_server_stop(pid);
    return -1;
}

void bench_server_stop(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

static bool redis_up(const void *sock)
{
    struct conn r = {.fd = -1};
    const char *line;
    size_t n;
    bool up = conn_unix(&r, sock) == 0 && conn_write(&r, "PING\r\n", 6) == 0 &&
              resp_line(&r, &line, &n) == 0 && n == 5 && !memcmp(line, "+PONG", 5);
    conn_close(&r);
    return up;
}

pid_t bench_redis_start(const char *dir, char *sock, size_t cap)
{
    char log[160];
    char *argv[] = {"redis-server", "--port",    "0", "--unixsocket", sock, "--unixsocketperm",
                    "700",          "--save",    "",  "--appendonly", "no", "--dir",
                    (char *)dir,    "--logfile", log, "--daemonize",  "no", NULL};
    snprintf(sock, cap, "%s/redis.sock", dir);
    snprintf(log, sizeof(log), "%s/redis.log", dir);
    return server_start(argv, log, redis_up, sock);
}

/* Delete the streams of a run. */
void bench_redis_del(const char *sock, const char *s1, const char *s2)
{
    const char *argv[] = {"DEL", s1, s2};
    size_t lens[] = {3, strlen(s1), strlen(s2)};
    char cmd[256];
    long long n;
    struct conn r = {.fd = -1};
    size_t len = resp_cmd(cmd, sizeof(cmd), 3, argv, lens);
    if (len && conn_unix(&r, sock) == 0 && conn_write(&r, cmd, len) == 0)
        resp_header(&r, ':', &n);
    conn_close(&r);
}

/* A port on 127.0.0.1 that nothing listens on now. */
static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Up when JetStream answers its account-info request. */
static bool nats_up(const void *port)
{
    struct nats s = {.c.fd = -1};
    bool up =
        nats_open(&s, *(const int *)port, 1000) == 0 && nats_request(&s, "$JS.API.INFO", "") == 0;
    conn_close(&s.c);
    return up;
}

pid_t bench_nats_start(const char *dir, int *port)
{
    char store[160], log[160], p[16];
    char *argv[] = {"nats-server", "-js", "-sd", store, "-a", "127.0.0.1",
                    "-p",          p,     "-l",  log,   NULL};
    snprintf(store, sizeof(store), "%s/nats", dir);
    snprintf(log, sizeof(log), "%s/nats.log", dir);
    if ((*port = free_port()) < 0)
        return -1;
    snprintf(p, sizeof(p), "%d", *port);
    return server_start(argv, log, nats_up, port);
}

/* Create (in memory, keeping the last NATS_MAX_MSGS messages) or delete a run's streams,
 * each with its name as its one subject. */
int bench_nats_streams(int port, const char *s1, const char *s2, bool create)
{
    const char *names[] = {s1, s2};
    struct nats s = {.c.fd = -1};
    int rc = nats_open(&s, port, 5000);

    for (int i = 0; i < 2 && rc == 0; i++) {
        char api[128], json[256] = "";
        snprintf(api, sizeof(api), "$JS.API.STREAM.%s.%s", create ? "CREATE" : "DELETE", names[i]);
        if (create)
            snprintf(json, sizeof(json),
                     "{\"name\":\"%s\",\"subjects\":[\"%s\"],\"storage\":\"memory\","
                     "\"max_msgs\":" NATS_MAX_MSGS ",\"discard\":\"old\"}",
                     names[i], names[i]);
        rc = nats_request(&s, api, json);
    }
    conn_close(&s.c);
    return rc;
}
