/* redis.c - Redis Streams, measured beside shoal for context (brokers.h).
 *
 * RESP2 over the server's Unix socket, its fastest local transport: a producer pipelines
 * a batch of XADDs in one write and then reads their replies; a consumer reads with
 * XREAD BLOCK from the last id it saw; a ping-pong side sends its XADD and its next XREAD
 * in one write. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokers.h"

#define XREAD_MAX  256      /* entries a consumer asks for at once, as shoal's polls */
#define TRIM_LEN   "200000" /* approximate stream length kept (XADD MAXLEN ~) */
#define ID_MAX     48
#define BLOCK_MS   "10" /* only bounds how late a blocked reader sees STOP */
#define VALUE_NAME "v"

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
    return server_start(argv, NULL, log, 5000, redis_up, sock);
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
