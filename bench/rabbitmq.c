/* rabbitmq.c - RabbitMQ streams, measured beside shoal for context (brokers.h).
 *
 * The stream protocol (the rabbitmq_stream plugin's binary framing over loopback TCP): a
 * frame is a big-endian size, a key, a version and the command's fields. A producer
 * declares a publisher and sends a batch of messages in one Publish frame, then reads
 * their confirmations (a window of a batch, as the NATS producer); a consumer subscribes
 * from the stream's first offset and gets chunks in Deliver frames, one credit a chunk,
 * handed back as each is read; a ping-pong side publishes to one stream and subscribes
 * to the other. A stream is always a set of files, written without fsync (the server's
 * default), in the suite's temporary directory. */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brokers.h"

enum rmq_key {
    RMQ_DECLARE_PUBLISHER = 0x01,
    RMQ_PUBLISH = 0x02,
    RMQ_PUBLISH_CONFIRM = 0x03,
    RMQ_PUBLISH_ERROR = 0x04,
    RMQ_SUBSCRIBE = 0x07,
    RMQ_DELIVER = 0x08,
    RMQ_CREDIT = 0x09,
    RMQ_CREATE = 0x0d,
    RMQ_DELETE = 0x0e,
    RMQ_PEER_PROPERTIES = 0x11,
    RMQ_SASL_HANDSHAKE = 0x12,
    RMQ_SASL_AUTHENTICATE = 0x13,
    RMQ_TUNE = 0x14,
    RMQ_OPEN = 0x15,
    RMQ_CLOSE = 0x16,
    RMQ_RESPONSE = 0x8000, /* or-ed into the key of a request's response */
};

#define RMQ_OK            1    /* a response's code for success */
#define RMQ_ID            0    /* the one publisher and the one subscription of a connection */
#define RMQ_OFFSET_FIRST  1    /* subscribe from the stream's first message */
#define RMQ_CREDIT_CHUNKS 8    /* chunks the server may send ahead of the consumer */
#define RMQ_WAIT_MS       10   /* only bounds how late a waiting role sees STOP */
#define RMQ_SETUP_MS      5000 /* the most a request may take before the role starts */
#define RMQ_SUB_BATCH     0x80000000u /* an entry holding several messages */

/* An osiris chunk's header (the part of a Deliver after the subscription id): where its
 * fields start, and its size, before the entries. */
enum chunk_field {
    CHUNK_MAGIC = 0, /* magic 5 and version 0 in one byte: CHUNK_MAGIC_V0 */
    CHUNK_TYPE = 1,  /* 0: messages */
    CHUNK_ENTRIES = 2,
    CHUNK_RECORDS = 4,
    CHUNK_FIRST_OFFSET = 24,
    CHUNK_DATA_LEN = 36,
    CHUNK_HDR = 48,
};
#define CHUNK_MAGIC_V0 0x50

/* A frame being built, or several back to back. Overflowing sets len past cap. */
struct out {
    uint8_t *p;
    size_t len, cap, start;
};

/* A frame read: its key and the fields after key and version, in the connection's buffer. */
struct in {
    uint16_t key;
    const uint8_t *p;
    size_t len;
};

static void put(struct out *o, const void *v, size_t n)
{
    if (o->len + n <= o->cap)
        memcpy(o->p + o->len, v, n);
    o->len += n;
}

static void put8(struct out *o, uint8_t v)
{
    put(o, &v, 1);
}

static void put16(struct out *o, uint16_t v)
{
    v = htobe16(v);
    put(o, &v, 2);
}

static void put32(struct out *o, uint32_t v)
{
    v = htobe32(v);
    put(o, &v, 4);
}

static void put64(struct out *o, uint64_t v)
{
    v = htobe64(v);
    put(o, &v, 8);
}

static void put_str(struct out *o, const char *s)
{
    put16(o, (uint16_t)strlen(s));
    put(o, s, strlen(s));
}

/* Start a frame: its size (filled in by frame_end), key and version. */
static void frame_begin(struct out *o, uint16_t key)
{
    o->start = o->len;
    put32(o, 0);
    put16(o, key);
    put16(o, 1);
}

/* Fill in the size of the frame begun last; 0, or -EMSGSIZE when it did not fit. */
static int frame_end(struct out *o)
{
    uint32_t size = htobe32((uint32_t)(o->len - o->start - 4));
    if (o->len > o->cap)
        return -EMSGSIZE;
    memcpy(o->p + o->start, &size, 4);
    return 0;
}

static uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return be16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return be32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}

static int rmq_bad(const char *what, unsigned got)
{
    fprintf(stderr, "bench: rabbitmq: expected %s, got %u (0x%x)\n", what, got, got);
    return -EPROTO;
}

/* The code a frame carries: a response's (first in a Credit's response, sent only when
 * the Credit failed; after the correlation id in the others), a Close's, a PublishError's
 * first; 0 when the frame is too short to hold it, RMQ_OK when it carries none. */
static uint16_t frame_code(const struct in *f)
{
    size_t at = f->key == RMQ_PUBLISH_ERROR                    ? 13 /* id, count, first id */
                : f->key == (RMQ_RESPONSE | RMQ_CREDIT)        ? 0
                : f->key == RMQ_CLOSE || f->key & RMQ_RESPONSE ? 4 /* after the correlation id */
                                                               : SIZE_MAX;
    if (at == SIZE_MAX)
        return RMQ_OK;
    return f->len >= at + 2 ? get16(f->p + at) : 0;
}

/* The next frame; -EAGAIN when the read timed out first (nothing is lost). */
static int rmq_next(struct conn *c, struct in *f)
{
    uint32_t size;
    int rc = conn_need(c, 4);

    if (rc < 0)
        return rc;
    size = get32((const uint8_t *)c->buf + c->pos);
    if (size < 4 || size > CONN_BUF - 4)
        return rmq_bad("a frame size up to 1 MiB", size);
    if ((rc = conn_need(c, 4 + size)) < 0)
        return rc;
    f->key = get16((const uint8_t *)c->buf + c->pos + 4);
    f->p = (const uint8_t *)c->buf + c->pos + 8;
    f->len = size - 4;
    c->pos += 4 + size;
    if (f->key == RMQ_CLOSE || f->key == RMQ_PUBLISH_ERROR ||
        f->key == (RMQ_RESPONSE | RMQ_CREDIT) || frame_code(f) != RMQ_OK) {
        fprintf(stderr, "bench: rabbitmq: the server sent command 0x%04x with code %u\n", f->key,
                frame_code(f));
        return -EPROTO;
    }
    return 0;
}

/* The next frame with this key, looking at STOP between read timeouts (ctl NULL: a
 * timeout is an error): 1, 0 at STOP, or an error. Frames with other keys are skipped. */
static int rmq_wait(struct bench_ctl *ctl, struct conn *c, uint16_t key, struct in *f)
{
    for (;;) {
        int rc = rmq_next(c, f);
        if (rc == -EAGAIN && ctl && bench_phase(ctl) < BENCH_STOP)
            continue;
        if (rc < 0)
            return rc == -EAGAIN && ctl ? 0 : rc;
        if (f->key == key)
            return 1;
    }
}

/* Send the frame in o and wait for its response (a success, or rmq_next fails). */
static int rmq_call(struct conn *c, struct out *o, struct in *f)
{
    uint16_t key = get16(o->p + o->start + 4) | RMQ_RESPONSE;
    int rc = frame_end(o);
    if (rc == 0)
        rc = conn_write(c, (const char *)o->p, o->len);
    o->len = 0;
    if (rc == 0 && (rc = rmq_wait(NULL, c, key, f)) == -EAGAIN)
        fprintf(stderr, "bench: rabbitmq: no response 0x%04x in time\n", key);
    return rc < 0 ? rc : 0;
}

/* Begin a request: key, version, a correlation id (one is enough: one request at a time). */
static void request_begin(struct out *o, uint16_t key)
{
    frame_begin(o, key);
    put32(o, 1);
}

/* Connect, authenticate as guest (PLAIN) and open the default virtual host. */
static int rmq_open(struct conn *c, int port, int timeout_ms)
{
    uint8_t buf[256];
    struct out o = {.p = buf, .cap = sizeof(buf)};
    struct in f;
    int rc = conn_tcp(c, port, timeout_ms);

    if (rc == 0) {
        request_begin(&o, RMQ_PEER_PROPERTIES);
        put32(&o, 0);
        rc = rmq_call(c, &o, &f);
    }
    if (rc == 0) {
        request_begin(&o, RMQ_SASL_HANDSHAKE);
        rc = rmq_call(c, &o, &f);
    }
    if (rc == 0) {
        request_begin(&o, RMQ_SASL_AUTHENTICATE);
        put_str(&o, "PLAIN");
        put32(&o, 12);
        put(&o, "\0guest\0guest", 12);
        rc = rmq_call(c, &o, &f);
    }
    if (rc == 0 && (rc = rmq_wait(NULL, c, RMQ_TUNE, &f)) == 1) { /* the server proposes */
        frame_begin(&o, RMQ_TUNE);
        put32(&o, CONN_BUF); /* the largest frame we take */
        put32(&o, 0);        /* no heartbeats */
        rc = frame_end(&o);
        rc = rc < 0 ? rc : conn_write(c, (const char *)o.p, o.len);
        o.len = 0;
    }
    if (rc == 0) {
        request_begin(&o, RMQ_OPEN);
        put_str(&o, "/");
        rc = rmq_call(c, &o, &f);
    }
    return rc;
}

/* Declare the connection's publisher on stream (no reference: no deduplication). */
static int rmq_publisher(struct conn *c, const char *stream)
{
    uint8_t buf[256];
    struct out o = {.p = buf, .cap = sizeof(buf)};
    struct in f;
    request_begin(&o, RMQ_DECLARE_PUBLISHER);
    put8(&o, RMQ_ID);
    put_str(&o, "");
    put_str(&o, stream);
    return rmq_call(c, &o, &f);
}

/* Subscribe to stream from its first message, with RMQ_CREDIT_CHUNKS of credit. */
static int rmq_subscribe(struct conn *c, const char *stream)
{
    uint8_t buf[256];
    struct out o = {.p = buf, .cap = sizeof(buf)};
    struct in f;
    request_begin(&o, RMQ_SUBSCRIBE);
    put8(&o, RMQ_ID);
    put_str(&o, stream);
    put16(&o, RMQ_OFFSET_FIRST);
    put16(&o, RMQ_CREDIT_CHUNKS);
    put32(&o, 0); /* no properties */
    return rmq_call(c, &o, &f);
}

/* One Publish frame of batch messages of value into o (publishing ids 0..batch-1: they
 * only pair confirmations with messages, and a batch is confirmed before the next). */
static int publish_frame(struct out *o, const uint8_t *value, uint32_t size, uint32_t batch)
{
    frame_begin(o, RMQ_PUBLISH);
    put8(o, RMQ_ID);
    put32(o, batch);
    for (uint32_t i = 0; i < batch; i++) {
        put64(o, i);
        put32(o, size);
        put(o, value, size);
    }
    return frame_end(o);
}

/* Wait until n messages are confirmed: 1, 0 at STOP, or an error. */
static int rmq_confirmed(struct bench_ctl *ctl, struct conn *c, uint32_t n)
{
    struct in f;
    for (uint32_t got = 0; got < n;) {
        int rc = rmq_wait(ctl, c, RMQ_PUBLISH_CONFIRM, &f);
        if (rc <= 0)
            return rc;
        if (f.len < 5)
            return rmq_bad("a PublishConfirm of 5 bytes or more, got", (unsigned)f.len);
        got += get32(f.p + 1);
    }
    return 1;
}

/* What a subscription has read: the offset it expects next, offsets it found missing,
 * the sum of its value touches. */
struct rmq_reader {
    uint64_t next, gaps, sink;
};

/* Touch the n simple entries (a size, then the message) between p and end. */
static int chunk_entries(struct rmq_reader *r, const uint8_t *p, const uint8_t *end, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t size = end - p >= 4 ? get32(p) : UINT32_MAX;
        if ((size & RMQ_SUB_BATCH) || size > (size_t)(end - p) - 4)
            return rmq_bad("a simple entry within the chunk, got the entry header", size);
        r->sink += bench_touch(p + 4, size);
        p += 4 + size;
    }
    return 0;
}

/* The next chunk delivered: its messages touched, their number to *records, its offsets
 * checked against what came before; its credit handed back. 1, 0 at STOP, or an error. */
static int rmq_chunk(struct bench_ctl *ctl, struct conn *c, struct rmq_reader *r, uint64_t *records)
{
    static const uint8_t credit[] = {0, 0, 0, 7, 0, RMQ_CREDIT, 0, 1, RMQ_ID, 0, 1};
    const uint8_t *h; /* the chunk's header, after the subscription id */
    uint64_t first;
    uint32_t n, data_len;
    struct in f;
    int rc = rmq_wait(ctl, c, RMQ_DELIVER, &f);

    if (rc <= 0)
        return rc;
    h = f.p + 1;
    if (f.len < 1 + CHUNK_HDR || h[CHUNK_MAGIC] != CHUNK_MAGIC_V0 || h[CHUNK_TYPE] != 0)
        return rmq_bad("a user chunk of format 0x50, got the first bytes", f.len < 2 ? 0 : h[0]);
    n = get16(h + CHUNK_ENTRIES);
    first = get64(h + CHUNK_FIRST_OFFSET);
    data_len = get32(h + CHUNK_DATA_LEN);
    if (get32(h + CHUNK_RECORDS) != n) /* a record each: this producer sends no sub-batches */
        return rmq_bad("as many records in the chunk as entries, got", get32(h + CHUNK_RECORDS));
    if (data_len > f.len - 1 - CHUNK_HDR) /* a trailer follows the entries */
        return rmq_bad("a chunk within its frame, got its data length", data_len);
    if (first < r->next)
        return rmq_bad("a chunk from the next offset on, got one from offset", (unsigned)first);
    if ((rc = chunk_entries(r, h + CHUNK_HDR, h + CHUNK_HDR + data_len, n)) < 0)
        return rc;
    r->gaps += first - r->next;
    r->next = first + n;
    *records = n;
    return conn_write(c, (const char *)credit, sizeof(credit)) < 0 ? -EPIPE : 1;
}

/* ------------------------------------------------------------------ roles */

/* Batches of a->batch messages to stream a->topic, a Publish frame and then their
 * confirmations each. */
int role_rabbitmq_producer(struct bench_ctl *ctl, const struct bench_args *a)
{
    struct bench_child *ch = &ctl->child[a->idx];
    struct out o = {.p = malloc(CONN_BUF), .cap = CONN_BUF};
    uint8_t *value = malloc(a->size + 1);
    uint64_t batches = 0;
    struct conn c = {.fd = -1};
    int rc = o.p && value ? rmq_open(&c, atoi(a->server), RMQ_SETUP_MS) : -ENOMEM;

    if (rc == 0)
        rc = rmq_publisher(&c, a->topic);
    if (rc == 0) {
        memset(value, 'v', a->size);
        rc = publish_frame(&o, value, a->size, a->batch);
    }
    if (rc == 0)
        rc = conn_timeout(&c, RMQ_WAIT_MS);
    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        if ((rc = conn_write(&c, (const char *)o.p, o.len)) < 0 ||
            (rc = rmq_confirmed(ctl, &c, a->batch)) <= 0)
            break;
        rc = 0;
        bench_count(ch, a->batch, (uint64_t)a->batch * a->size);
        if (++batches % BENCH_PACE_EVERY == 0)
            bench_pace(ctl);
    }
    role_done(ch, &c, rc < 0 ? rc : 0);
    free(value);
    free(o.p);
    return rc < 0;
}

/* Every message of stream a->topic, chunk by chunk. */
int role_rabbitmq_consumer(struct bench_ctl *ctl, const struct bench_args *a)
{
    struct bench_child *ch = &ctl->child[a->idx];
    struct conn c = {.fd = -1};
    struct rmq_reader r = {0};
    uint64_t n;
    int rc = rmq_open(&c, atoi(a->server), RMQ_SETUP_MS);

    if (rc == 0)
        rc = rmq_subscribe(&c, a->topic);
    if (rc == 0)
        rc = conn_timeout(&c, RMQ_WAIT_MS);
    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        if ((rc = rmq_chunk(ctl, &c, &r, &n)) <= 0)
            break;
        rc = 0;
        bench_count(ch, n, n * a->size);
    }
    brokers_sink = r.sink;
    ch->gaps = r.gaps;
    role_done(ch, &c, rc < 0 ? rc : 0);
    return rc < 0;
}

/* Ping publishes to stream a->topic and waits for the answer from a->topic2; pong the
 * other way round. Confirmations of a side's messages are skipped as they come. */
static int rabbitmq_pingpong(struct bench_ctl *ctl, const struct bench_args *a, bool ping)
{
    struct bench_child *ch = &ctl->child[a->idx];
    const char *out = ping ? a->topic : a->topic2, *in = ping ? a->topic2 : a->topic;
    struct out o = {.p = malloc(a->size + 64), .cap = a->size + 64};
    uint8_t *value = malloc(a->size + 1);
    struct bench_lat lat = {0};
    struct conn c = {.fd = -1};
    struct rmq_reader r = {0};
    uint64_t n;
    int rc = o.p && value ? rmq_open(&c, atoi(a->server), RMQ_SETUP_MS) : -ENOMEM;

    if (rc == 0)
        rc = rmq_publisher(&c, out);
    if (rc == 0)
        rc = rmq_subscribe(&c, in);
    if (rc == 0) {
        memset(value, 'v', a->size);
        rc = publish_frame(&o, value, a->size, 1);
    }
    if (rc == 0 && ping)
        rc = bench_lat_init(&lat, 4u << 20);
    if (rc == 0)
        rc = conn_timeout(&c, RMQ_WAIT_MS);
    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        int64_t t0 = bench_now_ns();
        if (ping && (rc = conn_write(&c, (const char *)o.p, o.len)) < 0)
            break;
        if ((rc = rmq_chunk(ctl, &c, &r, &n)) <= 0)
            break;
        if (!ping && (rc = conn_write(&c, (const char *)o.p, o.len)) < 0)
            break;
        rc = 0;
        if (ping)
            bench_lat_add(&lat, ctl, bench_now_ns() - t0);
        bench_count(ch, 1, a->size);
    }
    if (ping)
        bench_lat_finish(&lat, ch);
    brokers_sink = r.sink;
    ch->gaps = r.gaps;
    role_done(ch, &c, rc < 0 ? rc : 0);
    free(value);
    free(o.p);
    return rc < 0;
}

int role_rabbitmq_ping(struct bench_ctl *ctl, const struct bench_args *a)
{
    return rabbitmq_pingpong(ctl, a, true);
}

int role_rabbitmq_pong(struct bench_ctl *ctl, const struct bench_args *a)
{
    return rabbitmq_pingpong(ctl, a, false);
}

/* ------------------------------------------------------------------ the server */

#define RMQ_SERVER  "/usr/lib/rabbitmq/bin/rabbitmq-server" /* not the sbin wrapper: it su's */
#define RMQ_BOOT_MS 60000 /* an Erlang node and its plugins boot in seconds, slower in CI */
#define RMQ_ENV     12    /* variables that keep the node's files, names and ports its own */

static bool port_up(const void *port)
{
    struct conn c = {.fd = -1};
    bool up = conn_tcp(&c, *(const int *)port, 1000) == 0;
    conn_close(&c);
    return up;
}

static bool rabbitmq_up(const void *port)
{
    struct conn c = {.fd = -1};
    bool up = rmq_open(&c, *(const int *)port, 1000) == 0;
    conn_close(&c);
    return up;
}

/* The server's configuration: the stream listener only, logs to files. */
static int rabbitmq_config(const char *path, int port)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f,
            "listeners.tcp = none\n"
            "stream.listeners.tcp.1 = 127.0.0.1:%d\n"
            "log.console = false\n"
            "log.file.level = warning\n",
            port);
    return fclose(f) == 0 ? 0 : -errno;
}

pid_t bench_rabbitmq_start(const char *dir, int *port, pid_t *epmd)
{
    char base[160], log[192], conf[192], env[RMQ_ENV][224], eport[16];
    char *epmd_argv[] = {"epmd", "-port", eport, "-address", "127.0.0.1", NULL};
    char *argv[] = {RMQ_SERVER, NULL};
    char *envp[RMQ_ENV + 1];
    int epmd_port = free_port();
    pid_t pid;

    snprintf(base, sizeof(base), "%s/rabbitmq", dir);
    snprintf(log, sizeof(log), "%s/server.log", base);
    snprintf(conf, sizeof(conf), "%s/rabbitmq.conf", base);
    if (access(RMQ_SERVER, X_OK) < 0)
        return 0;
    if ((*port = free_port()) < 0 || epmd_port < 0 || mkdir(base, 0700) < 0 ||
        rabbitmq_config(conf, *port) < 0)
        return -1;
    /* the node's own port mapper, so none is left running after the suite */
    snprintf(eport, sizeof(eport), "%d", epmd_port);
    if ((*epmd = server_start(epmd_argv, NULL, log, 5000, port_up, &epmd_port)) <= 0) {
        if (*epmd == 0)
            fprintf(stderr, "bench: rabbitmq-server is installed but not epmd (erlang-base)\n");
        return -1;
    }
    snprintf(env[0], sizeof(env[0]), "HOME=%s", base); /* the Erlang cookie */
    snprintf(env[1], sizeof(env[1]), "ERL_EPMD_PORT=%d", epmd_port);
    snprintf(env[2], sizeof(env[2]), "RABBITMQ_NODENAME=shoal-bench-%d@localhost", (int)getpid());
    snprintf(env[3], sizeof(env[3]), "RABBITMQ_CONFIG_FILE=%s", conf);
    snprintf(env[4], sizeof(env[4]), "RABBITMQ_MNESIA_BASE=%s/mnesia", base);
    snprintf(env[5], sizeof(env[5]), "RABBITMQ_LOG_BASE=%s/log", base);
    snprintf(env[6], sizeof(env[6]), "RABBITMQ_ENABLED_PLUGINS=rabbitmq_stream");
    snprintf(env[7], sizeof(env[7]), "RABBITMQ_ENABLED_PLUGINS_FILE=%s/enabled_plugins", base);
    snprintf(env[8], sizeof(env[8]), "RABBITMQ_CONF_ENV_FILE=%s/none", base);
    snprintf(env[9], sizeof(env[9]), "RABBITMQ_DIST_PORT=%d", free_port());
    snprintf(env[10], sizeof(env[10]), "ERL_CRASH_DUMP=%s/erl_crash.dump", base);
    snprintf(env[11], sizeof(env[11]), /* the node's distribution port on loopback only */
             "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}");
    for (int i = 0; i < RMQ_ENV; i++)
        envp[i] = env[i];
    envp[RMQ_ENV] = NULL;
    pid = server_start(argv, envp, log, RMQ_BOOT_MS, rabbitmq_up, port);
    if (pid <= 0) {
        bench_server_stop(*epmd);
        *epmd = 0;
    }
    return pid < 0 ? -1 : pid;
}

/* Create or delete a run's two streams. */
int bench_rabbitmq_streams(int port, const char *s1, const char *s2, bool create)
{
    const char *names[] = {s1, s2};
    uint8_t buf[256];
    struct out o = {.p = buf, .cap = sizeof(buf)};
    struct conn c = {.fd = -1};
    struct in f;
    int rc = rmq_open(&c, port, 5000);

    for (int i = 0; i < 2 && rc == 0; i++) {
        request_begin(&o, create ? RMQ_CREATE : RMQ_DELETE);
        put_str(&o, names[i]);
        if (create)
            put32(&o, 0); /* no arguments: the server's defaults */
        rc = rmq_call(&c, &o, &f);
    }
    conn_close(&c);
    return rc;
}
