/* brokers.c - the single-host brokers users pick today, measured in the same run as
 * shoal for context: Redis Streams, through its own server started by the driver.
 *
 * DESIGN: each role is one process speaking RESP2 over the server's Unix socket (Redis's
 * fastest local transport; TCP on loopback is slower), written here in a few functions
 * rather than linking a client library, so the bench needs only the server binary. The
 * clients do what a well-written one does: a producer pipelines a batch of XADDs in one
 * write and then reads their replies; a consumer reads with XREAD BLOCK from the last id
 * it saw; a ping-pong side sends its XADD and its next XREAD in one write. The server runs
 * in memory only (no RDB, no AOF), as the shoal scenarios it is set beside use memory
 * topics. Streams are trimmed (MAXLEN ~) so a run's memory stays bounded, and producers
 * stay within REDIS_MAX_LAG records of the consumer, so none is trimmed before it is read.
 * A reply of an unexpected shape, or an error reply, fails the process with -EPROTO and
 * says what came. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define RESP_BUF   (1u << 20)
#define XREAD_MAX  256      /* entries a consumer asks for at once, as shoal's polls */
#define TRIM_LEN   "200000" /* approximate stream length kept (XADD MAXLEN ~) */
#define ID_MAX     48
#define BLOCK_MS   "10" /* only bounds how late a blocked reader sees STOP */
#define VALUE_NAME "v"

static volatile uint64_t brokers_sink; /* keeps the value touches from being optimised away */

/* A buffered connection. Pointers a reader hands out stay valid until its next read. */
struct resp {
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

static int resp_open(struct resp *r, const char *path)
{
    r->pos = r->len = 0;
    if (!(r->buf = malloc(RESP_BUF)))
        return -ENOMEM;
    r->fd = unix_connect(path);
    return r->fd < 0 ? r->fd : 0;
}

static void resp_close(struct resp *r)
{
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    r->buf = NULL;
    r->fd = -1;
}

static int resp_write(struct resp *r, const char *p, size_t n)
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
static int resp_need(struct resp *r, size_t n)
{
    if (n > RESP_BUF)
        return -EMSGSIZE;
    if (r->pos + n > RESP_BUF) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos, r->pos = 0;
    }
    while (r->len - r->pos < n) {
        ssize_t got = read(r->fd, r->buf + r->len, RESP_BUF - r->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? -errno : -EPIPE;
        r->len += (size_t)got;
    }
    return 0;
}

static int resp_bad(const char *what, const char *got, size_t n)
{
    fprintf(stderr, "bench: redis: expected %s, got \"%.*s\"\n", what, (int)(n > 80 ? 80 : n), got);
    return -EPROTO;
}

/* One line, without its "\r\n"; *line points into the buffer. */
static int resp_line(struct resp *r, const char **line, size_t *n)
{
    const char *nl;
    int rc;
    for (size_t want = 3;; want = r->len - r->pos + 1) {
        if ((rc = resp_need(r, want)) < 0)
            return rc;
        if ((nl = memchr(r->buf + r->pos, '\n', r->len - r->pos)))
            break;
    }
    *line = r->buf + r->pos;
    *n = (size_t)(nl - *line);
    r->pos += *n + 1;
    if (*n == 0 || nl[-1] != '\r')
        return resp_bad("a line ending in CR LF", *line, *n);
    *n -= 1;
    return 0;
}

/* One "<type><integer>" line; an error reply ("-ERR ...") is reported as what came. */
static int resp_header(struct resp *r, char type, long long *v)
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
static int resp_bulk(struct resp *r, const char **p, size_t *n)
{
    long long len;
    int rc = resp_header(r, '$', &len);
    if (rc < 0)
        return rc;
    if (len < 0 || (rc = resp_need(r, (size_t)len + 2)) < 0)
        return rc < 0 ? rc : resp_bad("a bulk string", "$-1", 3);
    *p = r->buf + r->pos;
    *n = (size_t)len;
    r->pos += (size_t)len + 2;
    return 0;
}

static int resp_array(struct resp *r, long long want)
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
static int xread_reply(struct resp *r, char *last_id, uint64_t *sink)
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
static int xadd_replies(struct resp *r, uint32_t n)
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

static void role_done(struct bench_child *ch, struct resp *r, int rc)
{
    ch->rss_kb = bench_rss_kb(0, "VmRSS");
    ch->error = rc;
    atomic_store(&ch->done, 1);
    resp_close(r);
}

/* ------------------------------------------------------------------ roles */

/* Batches of a->batch XADDs to a->topic, one write and then the replies each. */
int role_redis_producer(struct bench_ctl *ctl, const struct bench_args *a)
{
    struct bench_child *ch = &ctl->child[a->idx];
    uint8_t *value = malloc(a->size + 1);
    char *cmds = malloc(RESP_BUF);
    size_t one = 0, len = 0;
    uint64_t batches = 0;
    struct resp r = {.fd = -1};
    int rc = value && cmds ? resp_open(&r, a->server) : -ENOMEM;

    if (rc == 0) {
        memset(value, 'v', a->size);
        one = xadd_cmd(cmds, RESP_BUF, a->topic, value, a->size);
        rc = one && one * a->batch <= RESP_BUF ? 0 : -EMSGSIZE;
        for (len = one; rc == 0 && len < one * a->batch; len += one)
            memcpy(cmds + len, cmds, one);
    }
    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        if ((rc = resp_write(&r, cmds, len)) < 0 || (rc = xadd_replies(&r, a->batch)) < 0)
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
    struct resp r = {.fd = -1};
    int rc = resp_open(&r, a->server);

    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        size_t len = xread_cmd(cmd, sizeof(cmd), a->topic, last, XREAD_MAX);
        int n;
        if ((rc = resp_write(&r, cmd, len)) < 0 || (n = rc = xread_reply(&r, last, &sink)) < 0)
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
 * Each sends its XADD and its next XREAD in one write. */
static int redis_pingpong(struct bench_ctl *ctl, const struct bench_args *a, bool ping)
{
    struct bench_child *ch = &ctl->child[a->idx];
    const char *out = ping ? a->topic : a->topic2, *in = ping ? a->topic2 : a->topic;
    char last[ID_MAX] = "0-0", *cmd = malloc(2 * 65536 + 512);
    uint8_t value[65536];
    uint64_t sink = 0;
    struct bench_lat lat = {0};
    struct resp r = {.fd = -1};
    size_t add;
    int rc = !cmd || a->size > sizeof(value) ? -ENOMEM : resp_open(&r, a->server);
    bool answer = ping; /* ping opens with a value; pong first waits for one */

    memset(value, 'v', sizeof(value));
    if (rc == 0 && ping)
        rc = bench_lat_init(&lat, 4u << 20);
    add = cmd ? xadd_cmd(cmd, 65536 + 256, out, value, a->size) : 0;
    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        int64_t t0 = bench_now_ns();
        size_t len = xread_cmd(cmd + add, 512, in, last, 1); /* right after the XADD */
        int n;
        if ((rc = resp_write(&r, answer ? cmd : cmd + add, answer ? add + len : len)) < 0 ||
            (answer && (rc = xadd_replies(&r, 1)) < 0))
            break;
        while ((n = rc = xread_reply(&r, last, &sink)) == 0 && bench_phase(ctl) < BENCH_STOP) {
            len = xread_cmd(cmd + add, 512, in, last, 1);
            if ((rc = resp_write(&r, cmd + add, len)) < 0)
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

/* ------------------------------------------------------------------ the server */

/* The path of prog in $PATH, or -1. */
static int find_program(const char *prog, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(out, cap, "%.*s/%s", (int)n, p, prog);
        if (n > 0 && access(out, X_OK) == 0)
            return 0;
        p += n + (p[n] == ':');
    }
    return -1;
}

/* Start redis-server in memory only, listening on dir/redis.sock alone; wait until it
 * answers. Returns its pid, 0 when redis-server is not installed, or -1. */
pid_t bench_redis_start(const char *dir, char *sock, size_t cap)
{
    char log[160], prog[256];
    pid_t pid;

    if (find_program("redis-server", prog, sizeof(prog)) < 0)
        return 0;
    snprintf(sock, cap, "%s/redis.sock", dir);
    snprintf(log, sizeof(log), "%s/redis.log", dir);
    if ((pid = fork()) == 0) {
        execl(prog, "redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
              "--save", "", "--appendonly", "no", "--dir", dir, "--logfile", log, "--daemonize",
              "no", (char *)NULL);
        _exit(127);
    }
    for (int t = 0; pid > 0 && t < 500; t++) {
        struct resp r = {.fd = -1};
        const char *line;
        size_t n;
        bool up = resp_open(&r, sock) == 0 && resp_write(&r, "PING\r\n", 6) == 0 &&
                  resp_line(&r, &line, &n) == 0 && n == 5 && !memcmp(line, "+PONG", 5);
        resp_close(&r);
        if (up)
            return pid;
        usleep(10000);
    }
    fprintf(stderr, "bench: redis-server did not come up (log: %s)\n", log);
    bench_redis_stop(pid);
    return -1;
}

void bench_redis_stop(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

/* Delete the streams of a run. */
void bench_redis_del(const char *sock, const char *s1, const char *s2)
{
    const char *argv[] = {"DEL", s1, s2};
    size_t lens[] = {3, strlen(s1), strlen(s2)};
    char cmd[256];
    long long n;
    struct resp r = {.fd = -1};
    size_t len = resp_cmd(cmd, sizeof(cmd), 3, argv, lens);
    if (len && resp_open(&r, sock) == 0 && resp_write(&r, cmd, len) == 0)
        resp_header(&r, ':', &n);
    resp_close(&r);
}
