/* nats.c - NATS JetStream, measured beside shoal for context (brokers.h).
 *
 * The NATS text protocol over loopback TCP, JetStream's API as requests: a producer
 * publishes a batch with acknowledgements in one write, then reads the acknowledgements
 * (async publish); a consumer is a push consumer without acknowledgements. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokers.h"

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
    return server_start(argv, NULL, log, 5000, nats_up, port);
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
