/* test_server.c - shoald's control socket server (src/shoald/server.c) run in this process:
 * a broker opened in a temporary directory (its shm directory inside it, so /dev/shm is not
 * touched), server_run() on a thread of its own, and clients that speak raw frames on its
 * Unix socket, built with ctlproto.h's writer, so that a case can send what libshoal never
 * would: bad headers, a frame cut anywhere, many frames in one write. The integration tests
 * drive the same server through a real daemon and libshoal; these pin down the framing
 * rules every client relies on.
 *
 * The test thread touches the server only through its wake descriptor: on_server() has the
 * server thread run a function between two passes of its loop (count the clients, change
 * allow.gid as a reload does, stop), which is how shoald's main thread reaches it too.
 * Every wait is bounded by WAIT_MS, so a server that does not answer fails the case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctlproto.h"
#include "ctlsock.h"
#include "harness.h"
#include "util.h"
#include "shoald/broker.h"
#include "shoald/config.h"
#include "shoald/log.h"
#include "shoald/server.h"
#include "daemon_config.h"

#define INSTANCE   "server"
#define WAIT_MS    5000  /* the longest an answer, or a change the server makes, may take */
#define NOBODY     65534 /* uid of the access cases' client, and allow.gid */
#define SKIP_CHILD 77    /* the child could not become NOBODY: not root */

/* ------------------------------------------------------------------ fixture */

struct fixture {
    char dir[256];
    shoald_config_t cfg;
    broker_t b;
    server_t *s;
    pthread_t thread;
    volatile sig_atomic_t stop;
    int wake_fd; /* eventfd: the server thread runs call */
    int done_fd; /* eventfd: it has */
    void (*call)(struct fixture *f);
    size_t clients; /* server_client_count(), taken on the server thread */
    int rc;         /* what call returned, where it returns something */
};

/* The server's on_wake: run what the test thread asked for, and say so. */
static void on_wake(void *arg)
{
    struct fixture *f = arg;
    uint64_t n, one = 1;

    if (read(f->wake_fd, &n, sizeof(n)) != sizeof(n))
        return;
    f->call(f);
    (void)!write(f->done_fd, &one, sizeof(one));
}

/* The end of a wait that starts now. */
static int64_t deadline_ns(void)
{
    return shoal__mono_ns() + (int64_t)WAIT_MS * 1000000;
}

/* Run fn on the server thread, between two passes of its loop; fail if it does not within
 * WAIT_MS. */
static void on_server(struct fixture *f, void (*fn)(struct fixture *f))
{
    struct pollfd pfd = {.fd = f->done_fd, .events = POLLIN};
    uint64_t n = 1;

    f->call = fn;
    assert_int_equal(write(f->wake_fd, &n, sizeof(n)), sizeof(n));
    assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
    assert_int_equal(read(f->done_fd, &n, sizeof(n)), sizeof(n));
}

static void stop_server(struct fixture *f)
{
    f->stop = 1;
}

static void count_clients(struct fixture *f)
{
    f->clients = server_client_count(f->s);
}

static void *server_thread(void *arg)
{
    struct fixture *f = arg;

    server_run(f->s, &f->stop, f->wake_fd, on_wake, f);
    return NULL;
}

/* A small topic: one partition, 64 KiB segments, two ring slots. */
static shoal_topic_config_t small_topic(void)
{
    shoal_topic_config_t cfg;

    shoal_topic_config_init(&cfg);
    cfg.partitions = 1;
    cfg.segment_bytes = 64u << 10;
    cfg.ring_slots = 2;
    cfg.max_record_bytes = 4096;
    return cfg;
}

/* A broker serving topic "t", and its server running on a thread. */
static int setup(void **state)
{
    static struct fixture f;
    shoal_topic_config_t tc = small_topic();

    memset(&f, 0, sizeof(f));
    harness_watchdog(60, "test_server");
    harness_tmpdir(f.dir, sizeof(f.dir), "server");
    log_set_level(LOG_ERR);
    daemon_config(&f.cfg, f.dir, INSTANCE);
    f.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    f.done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (f.wake_fd < 0 || f.done_fd < 0 || broker_open(&f.b, &f.cfg) < 0 ||
        broker_topic_create(&f.b, "t", &tc) < 0 || server_open(&f.s, &f.b) < 0 ||
        pthread_create(&f.thread, NULL, server_thread, &f) != 0) {
        print_error("setup: %s\n", shoal_errmsg());
        harness_rmrf(f.dir);
        return -1;
    }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    on_server(f, stop_server);
    pthread_join(f->thread, NULL);
    server_close(f->s);
    broker_close(&f->b);
    close(f->wake_fd);
    close(f->done_fd);
    harness_rmrf(f->dir);
    harness_watchdog(0, NULL);
    return 0;
}

/* Wait until the server has n connections; fail if it does not within WAIT_MS. */
static void wait_clients(struct fixture *f, size_t n)
{
    int64_t end_ns = deadline_ns();

    for (on_server(f, count_clients); f->clients != n && shoal__mono_ns() < end_ns;
         on_server(f, count_clients))
        poll(NULL, 0, 5);
    assert_int_equal(f->clients, n);
}

/* ------------------------------------------------------------------ requests */

/* Bytes to send in one write: whole frames, or parts of them. */
struct batch {
    uint8_t buf[4096];
    size_t len;
};

static void batch_put(struct batch *b, const void *p, size_t n)
{
    assert_true(b->len + n <= sizeof(b->buf));
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}

/* End the frame in w, append it to b and release w. */
static void batch_add(struct batch *b, ctl_writer_t *w)
{
    assert_int_equal(ctl_frame_end(w), 0);
    batch_put(b, w->buf, w->len);
    ctl_writer_release(w);
}

/* A request whose payload is the n bytes at payload, however malformed. */
static void add_raw(struct batch *b, uint16_t type, uint32_t seq, const void *payload, size_t n)
{
    ctl_writer_t w;

    ctl_writer_init(&w);
    ctl_frame_begin(&w, type, seq);
    ctl_put_raw(&w, payload, n);
    batch_add(b, &w);
}

static void add_hello(struct batch *b, uint32_t seq)
{
    ctl_writer_t w;

    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_HELLO, seq);
    ctl_put_u32(&w, CTL_VERSION);
    ctl_put_str(&w, "test_server");
    batch_add(b, &w);
}

/* A request whose one field is a topic name: TOPIC_DESCRIBE, TOPIC_DELETE. */
static void add_named(struct batch *b, uint16_t type, uint32_t seq, const char *name)
{
    ctl_writer_t w;

    ctl_writer_init(&w);
    ctl_frame_begin(&w, type, seq);
    ctl_put_str(&w, name);
    batch_add(b, &w);
}

static void add_create(struct batch *b, uint32_t seq, const char *name)
{
    shoal_topic_config_t cfg = small_topic();
    ctl_writer_t w;

    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_TOPIC_CREATE, seq);
    ctl_put_str(&w, name);
    ctl_put_topic_config(&w, &cfg);
    batch_add(b, &w);
}

/* A bare 16-byte header, whatever its fields say. */
static void add_header(struct batch *b, const ctl_header_t *h)
{
    uint8_t hdr[CTL_HEADER_BYTES];

    ctl_header_encode(hdr, h);
    batch_put(b, hdr, sizeof(hdr));
}

static int connect_client(struct fixture *f)
{
    int fd = ctlsock_connect(f->b.socket_path, deadline_ns());

    assert_true(fd >= 0);
    return fd;
}

static void send_bytes(int fd, const void *p, size_t n)
{
    assert_int_equal(ctlsock_send(fd, p, n, NULL, 0, deadline_ns()), 0);
}

/* ------------------------------------------------------------------ answers */

struct answer {
    ctl_header_t h;
    int status;
    char detail[512];
    uint8_t body[4096];
    ctl_reader_t r; /* the response's fields, after status and detail */
};

/* Read the next whole frame on fd within WAIT_MS: 0, or why there is none (SHOAL_ECLOSED
 * when the server closed the connection). */
static int recv_answer(int fd, struct answer *a)
{
    uint8_t *payload;
    int rc = ctlsock_recv_frame(fd, &a->h, &payload, NULL, NULL, 0, WAIT_MS);

    if (rc < 0)
        return rc;
    memcpy(a->body, payload, SHOAL_MIN(a->h.len, sizeof(a->body)));
    shoal__free(payload);
    assert_true(a->h.len <= sizeof(a->body));
    ctl_reader_init(&a->r, a->body, a->h.len);
    a->status = ctl_get_status(&a->r, a->detail, sizeof(a->detail));
    assert_int_equal(a->r.err, 0);
    return 0;
}

/* The next frame on fd must answer request (type, seq) with status; an error carries no
 * fields. Returns the reader of the response's fields. */
static ctl_reader_t *expect_answer(int fd, struct answer *a, uint16_t type, uint32_t seq,
                                   int status)
{
    int rc = recv_answer(fd, a);

    if (rc < 0)
        fail_msg("no answer to request %u (seq %u): %s", type, seq, shoal_err_name(rc));
    assert_int_equal(a->h.type, type | CTL_RESPONSE);
    assert_int_equal(a->h.seq, seq);
    if (a->status != status)
        fail_msg("request %u (seq %u): %s (%s), expected %s", type, seq, shoal_err_name(a->status),
                 a->detail, shoal_err_name(status));
    if (status < 0)
        assert_int_equal(ctl_reader_finish(&a->r), 0);
    return &a->r;
}

/* The server must have closed fd: end of file, with nothing more to read. */
static void expect_closed(int fd)
{
    struct answer a;
    int rc = recv_answer(fd, &a);

    if (rc == 0)
        fail_msg("answer %u (seq %u, %s) where the connection should have ended",
                 (unsigned)a.h.type, a.h.seq, shoal_err_name(a.status));
    assert_int_equal(rc, SHOAL_ECLOSED);
}

/* A HELLO on fd is answered with the protocol version, the instance and the client's pid
 * as the server sees it (this process): it still serves. */
static void expect_hello(int fd, uint32_t seq)
{
    struct batch b = {.len = 0};
    struct answer a;
    ctl_reader_t *r;
    char instance[64];

    add_hello(&b, seq);
    send_bytes(fd, b.buf, b.len);
    r = expect_answer(fd, &a, CTL_HELLO, seq, 0);
    assert_int_equal(ctl_get_u32(r), CTL_VERSION);
    assert_string_equal(ctl_get_str(r, instance, sizeof(instance)), INSTANCE);
    assert_int_equal(ctl_get_i32(r), (int32_t)getpid());
    assert_int_equal(ctl_reader_finish(r), 0);
}

/* A TOPIC_DESCRIBE answer: a topic of one partition, with nothing after it. */
static void expect_described(ctl_reader_t *r)
{
    shoal_topic_config_t cfg;
    shoal_partition_info_t pi;

    ctl_get_topic_config(r, &cfg);
    assert_int_equal(cfg.partitions, 1);
    assert_int_equal(ctl_get_u32(r), 1);
    ctl_get_partition_info(r, &pi);
    assert_int_equal(pi.partition, 0);
    assert_int_equal(ctl_reader_finish(r), 0);
}

/* ------------------------------------------------------------------ cases */

/* A request is answered with its own sequence number, the response type and the fields
 * ctlproto.h lists: the handshake, then a topic list and a description. */
static void test_a_request_is_answered_under_its_seq_with_its_fields(void **state)
{
    struct fixture *f = *state;
    struct batch b = {.len = 0};
    struct answer a;
    ctl_reader_t *r;
    char name[64];
    int fd = connect_client(f);

    expect_hello(fd, 7);
    add_raw(&b, CTL_TOPIC_LIST, 0x12345678, NULL, 0);
    add_named(&b, CTL_TOPIC_DESCRIBE, 9, "t");
    send_bytes(fd, b.buf, b.len);
    r = expect_answer(fd, &a, CTL_TOPIC_LIST, 0x12345678, 0);
    assert_int_equal(ctl_get_u32(r), 1);
    assert_string_equal(ctl_get_str(r, name, sizeof(name)), "t");
    assert_int_equal(ctl_reader_finish(r), 0);
    expect_described(expect_answer(fd, &a, CTL_TOPIC_DESCRIBE, 9, 0));
    close(fd);
}

/* A frame whose header cannot be trusted gets the daemon's word (a response to no request:
 * type 0, seq 0) with the header's fault, after the answers to the requests before it, and
 * the connection ends there: what follows is not run. Other clients do not notice. */
static void test_a_bad_header_gets_the_daemons_word_and_ends_only_its_connection(void **state)
{
    static const struct {
        ctl_header_t h;
        int status;
    } bad[] = {
        {{CTL_MAGIC ^ 1, CTL_VERSION, CTL_HELLO, 0, 2}, SHOAL_EPROTO},
        {{CTL_MAGIC, CTL_VERSION + 1, CTL_HELLO, 0, 2}, SHOAL_EVERSION},
        {{CTL_MAGIC, CTL_VERSION, CTL_HELLO, CTL_MAX_PAYLOAD + 1, 2}, SHOAL_EPROTO},
        /* a response may be larger than a request: not when a client sends it */
        {{CTL_MAGIC, CTL_VERSION, CTL_HELLO | CTL_RESPONSE, CTL_MAX_PAYLOAD + 1, 2}, SHOAL_EPROTO},
    };
    struct fixture *f = *state;
    int other = connect_client(f);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct batch b = {.len = 0};
        struct answer a;
        int fd = connect_client(f);

        add_hello(&b, 1);
        add_header(&b, &bad[i].h);
        add_hello(&b, 3);
        send_bytes(fd, b.buf, b.len);
        expect_answer(fd, &a, CTL_HELLO, 1, 0);
        expect_answer(fd, &a, 0, 0, bad[i].status);
        expect_closed(fd);
        close(fd);
        wait_clients(f, 1);
        expect_hello(other, (uint32_t)i);
    }
    close(other);
}

/* A request that arrives a byte at a time is answered once, whole, after its last byte:
 * the next answer on the connection is the next request's. */
static void test_a_request_sent_a_byte_at_a_time_is_answered_once(void **state)
{
    struct fixture *f = *state;
    struct batch b = {.len = 0};
    struct pollfd pfd;
    struct answer a;
    int fd = connect_client(f);

    add_named(&b, CTL_TOPIC_DESCRIBE, 1, "t");
    pfd = (struct pollfd){.fd = fd, .events = POLLIN};
    for (size_t i = 0; i < b.len; i++) {
        assert_int_equal(poll(&pfd, 1, 2), 0); /* nothing before the frame is whole */
        send_bytes(fd, b.buf + i, 1);
    }
    expect_described(expect_answer(fd, &a, CTL_TOPIC_DESCRIBE, 1, 0));
    expect_hello(fd, 2);
    close(fd);
}

/* Requests sent in one write are all answered, in the order they were sent. */
static void test_requests_in_one_write_are_all_answered_in_order(void **state)
{
    struct fixture *f = *state;
    struct batch b = {.len = 0};
    struct answer a;
    int fd = connect_client(f);

    add_hello(&b, 1);
    add_raw(&b, CTL_TOPIC_LIST, 2, NULL, 0);
    add_named(&b, CTL_TOPIC_DESCRIBE, 3, "t");
    add_named(&b, CTL_TOPIC_DESCRIBE, 4, "none");
    add_raw(&b, CTL_TOPIC_LIST, 5, (const uint8_t[]){CTL_LIST_UNSERVED}, 1);
    add_hello(&b, 6);
    send_bytes(fd, b.buf, b.len);
    expect_answer(fd, &a, CTL_HELLO, 1, 0);
    expect_answer(fd, &a, CTL_TOPIC_LIST, 2, 0);
    expect_described(expect_answer(fd, &a, CTL_TOPIC_DESCRIBE, 3, 0));
    expect_answer(fd, &a, CTL_TOPIC_DESCRIBE, 4, SHOAL_ENOTOPIC);
    assert_int_equal(ctl_get_u32(expect_answer(fd, &a, CTL_TOPIC_LIST, 5, 0)), 0);
    expect_answer(fd, &a, CTL_HELLO, 6, 0);
    close(fd);
}

/* A well-framed request the server cannot run (no such type, a payload that does not
 * parse, another protocol version) gets its own error, and the connection goes on. */
static void
test_an_unknown_or_malformed_request_gets_an_error_and_the_connection_goes_on(void **state)
{
    static const struct {
        uint16_t type;
        const char *payload;
        size_t len;
        int status;
    } bad[] = {
        {CTL_TYPE_MAX_, "", 0, SHOAL_EPROTO},           /* past the handler table */
        {CTL_OFFSET_FOR_TIME + 1, "", 0, SHOAL_EPROTO}, /* a gap in it */
        {0xffff, "", 0, SHOAL_EPROTO},
        {CTL_HELLO, "\1\0\0\0", 4, SHOAL_EPROTO},             /* the name is missing */
        {CTL_HELLO, "\1\0\0\0\0\0!", 7, SHOAL_EPROTO},        /* a byte is left over */
        {CTL_HELLO, "\1\0\0\0\5\0ab", 8, SHOAL_EPROTO},       /* the name is cut short */
        {CTL_HELLO, "\x7f\0\0\0\0\0", 6, SHOAL_EVERSION},     /* another protocol */
        {CTL_HELLO, "\2\0\0\0\1\0\n", 7, SHOAL_EINVAL},       /* a newline in the name */
        {CTL_TOPIC_LIST, "\7", 1, SHOAL_EPROTO},              /* no such list */
        {CTL_TOPIC_DESCRIBE, "\3\0a/b", 5, SHOAL_ENAME},      /* not a topic name */
        {CTL_SEGMENT_OPEN, "\1\0t\0\0\0\0", 7, SHOAL_EPROTO}, /* the offset is missing */
    };
    struct fixture *f = *state;
    struct batch b = {.len = 0};
    struct answer a;
    int fd = connect_client(f);

    for (uint32_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        add_raw(&b, bad[i].type, i, bad[i].payload, bad[i].len);
    send_bytes(fd, b.buf, b.len);
    for (uint32_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_answer(fd, &a, bad[i].type, i, bad[i].status);
        assert_true(a.detail[0] != '\0');
    }
    expect_hello(fd, 100);
    close(fd);
}

/* A request answered later (a topic create, parked while its rings are made) holds back
 * the requests after it on its connection: they run once it is answered, and see what it
 * did. */
static void test_requests_behind_a_parked_one_wait_for_its_answer(void **state)
{
    struct fixture *f = *state;
    struct batch b = {.len = 0};
    struct answer a;
    int fd = connect_client(f);

    add_create(&b, 1, "u");
    add_named(&b, CTL_TOPIC_DESCRIBE, 2, "u");
    add_named(&b, CTL_TOPIC_DELETE, 3, "u");
    add_named(&b, CTL_TOPIC_DESCRIBE, 4, "u");
    send_bytes(fd, b.buf, b.len);
    expect_answer(fd, &a, CTL_TOPIC_CREATE, 1, 0);
    expect_described(expect_answer(fd, &a, CTL_TOPIC_DESCRIBE, 2, 0));
    expect_answer(fd, &a, CTL_TOPIC_DELETE, 3, 0);
    expect_answer(fd, &a, CTL_TOPIC_DESCRIBE, 4, SHOAL_ENOTOPIC);
    close(fd);
}

/* A client that goes away in the middle of a frame is closed, and nobody else notices. */
static void test_a_client_gone_mid_frame_is_closed_and_the_server_goes_on(void **state)
{
    struct fixture *f = *state;
    struct batch b = {.len = 0};
    int other = connect_client(f);
    size_t cuts[3];

    add_hello(&b, 1);
    cuts[0] = 5;                /* in the header */
    cuts[1] = CTL_HEADER_BYTES; /* the header whole, no payload */
    cuts[2] = b.len - 1;        /* the payload but its last byte */
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        int fd = connect_client(f);

        send_bytes(fd, b.buf, cuts[i]);
        wait_clients(f, 2);
        close(fd);
        wait_clients(f, 1);
        expect_hello(other, (uint32_t)i);
    }
    close(other);
}

/* ------------------------------------------------------------------ access */

static void allow_nobody(struct fixture *f)
{
    f->cfg.allow_gid = NOBODY;
    f->rc = server_set_access(f->s);
}

/* A reload that takes allow.gid away (main.c's reload_apply). */
static void take_back_allow_gid(struct fixture *f)
{
    f->cfg.allow_gid = -1;
    f->rc = server_set_access(f->s);
}

/* A client of uid NOBODY, a member of group NOBODY (allow.gid) one way or another, forked:
 * it makes no assertions, its exit code says what went wrong. The parent builds its
 * frames. */
struct member {
    const char *socket;
    gid_t gid;         /* its primary group */
    gid_t groups[300]; /* and its supplementary ones */
    size_t ngroups;
    struct batch hello, list;
    int ready[2]; /* the child says its HELLO was answered */
    int go[2];    /* the parent says allow.gid is gone */
};

/* Send b, whose first request has seq 1, and return the status of the answer (a positive
 * code when none came). */
static int child_ask(int fd, const struct batch *b)
{
    ctl_header_t h;
    ctl_reader_t r;
    uint8_t *payload;
    int status;

    if (ctlsock_send(fd, b->buf, b->len, NULL, 0, -1) < 0 ||
        ctlsock_recv_frame(fd, &h, &payload, NULL, NULL, 0, WAIT_MS) < 0)
        return 100;
    ctl_reader_init(&r, payload, h.len);
    status = ctl_get_status(&r, NULL, 0);
    shoal__free(payload);
    return h.seq == 1 ? status : 101;
}

/* The daemon's last word on fd, a response to no request (sequence 0): its status, then the
 * connection must close; 100 when either is not so. */
static int child_last_word(int fd)
{
    ctl_header_t h;
    ctl_reader_t r;
    uint8_t *payload;
    char byte;
    int status;

    if (ctlsock_recv_frame(fd, &h, &payload, NULL, NULL, 0, WAIT_MS) < 0)
        return 100;
    ctl_reader_init(&r, payload, h.len);
    status = ctl_get_status(&r, NULL, 0);
    shoal__free(payload);
    return h.seq == 0 && read(fd, &byte, 1) == 0 ? status : 100;
}

static int as_member(void *arg)
{
    struct member *m = arg;
    struct pollfd pfd = {.fd = m->go[0], .events = POLLIN};
    int fd;

    if (setgroups(m->ngroups, m->groups) < 0 || setgid(m->gid) < 0 || setuid(NOBODY) < 0)
        return SKIP_CHILD;
    if ((fd = ctlsock_connect(m->socket, -1)) < 0)
        return 10; /* the socket, or a directory on its way, is closed to allow.gid */
    if (child_ask(fd, &m->hello) != 0)
        return 11; /* a member of allow.gid was denied */
    if (write(m->ready[1], "r", 1) != 1 || poll(&pfd, 1, WAIT_MS) != 1)
        return 12;
    if (child_last_word(fd) != SHOAL_EDENIED)
        return 13; /* allow.gid was taken back, yet the connection stays */
    return 0;
}

/* Run m's child with allow.gid NOBODY; take allow.gid back once its HELLO is answered; the
 * child must exit 0. Root, connected all along, is served throughout. */
static void expect_member_until_taken_back(struct fixture *f, struct member *m)
{
    struct pollfd pfd = {.fd = -1, .events = POLLIN};
    int fd = connect_client(f);
    pid_t pid;
    char c;
    int rc;

    assert_int_equal(chmod(f->dir, 0711), 0); /* the child must reach the socket */
    on_server(f, allow_nobody);
    assert_int_equal(f->rc, 0);
    m->socket = f->b.socket_path;
    add_hello(&m->hello, 1);
    add_raw(&m->list, CTL_TOPIC_LIST, 1, NULL, 0);
    assert_int_equal(pipe2(m->ready, O_CLOEXEC), 0);
    assert_int_equal(pipe2(m->go, O_CLOEXEC), 0);
    assert_true((pid = harness_fork(as_member, m, 30)) > 0);
    close(m->ready[1]);
    close(m->go[0]);
    pfd.fd = m->ready[0];
    if (poll(&pfd, 1, WAIT_MS) == 1 && read(m->ready[0], &c, 1) == 1) {
        struct stat st;
        assert_int_equal(stat(f->b.socket_path, &st), 0);
        assert_int_equal(st.st_gid, NOBODY);
        on_server(f, take_back_allow_gid);
        assert_int_equal(write(m->go[1], "g", 1), 1);
        /* the socket is shoald's group's again: it stayed the old allow.gid's */
        assert_int_equal(stat(f->b.socket_path, &st), 0);
        assert_int_equal(st.st_gid, getegid());
    }
    close(m->ready[0]);
    close(m->go[1]);
    rc = harness_wait(pid, WAIT_MS * 2);
    if (rc == SKIP_CHILD)
        skip();
    assert_int_equal(rc, 0);
    expect_hello(fd, 1);
    close(fd);
}

/* Members of allow.gid may use the broker; once a reload takes the group back, a connected
 * member's connection is closed with SHOAL_EDENIED as the daemon's last word, while root
 * goes on being served. It stayed open, every request denied: a user refused could hold
 * every connection there is (a security session). */
static void test_allow_gid_admits_its_members_until_a_reload_takes_it_back(void **state)
{
    static struct member m = {.gid = NOBODY};

    expect_member_until_taken_back(*state, &m);
}

/* A member through a supplementary group is one too, however many groups it has: a user
 * of a large directory may have hundreds (the kernel allows 65536). */
static void test_a_member_through_one_of_many_supplementary_groups_is_admitted(void **state)
{
    static struct member m = {.gid = NOBODY - 1};

    for (m.ngroups = 0; m.ngroups < 299; m.ngroups++)
        m.groups[m.ngroups] = 1000 + (gid_t)m.ngroups;
    m.groups[m.ngroups++] = NOBODY; /* the last: past what a small buffer holds */
    expect_member_until_taken_back(*state, &m);
}

static int as_unread_member(void *arg)
{
    struct member *m = arg;
    int fd;

    if (setgroups(m->ngroups, m->groups) < 0 || setgid(m->gid) < 0 || setuid(NOBODY) < 0)
        return SKIP_CHILD;
    if ((fd = ctlsock_connect(m->socket, -1)) < 0)
        return 10;
    return child_last_word(fd) == SHOAL_EDENIED ? 0 : 11;
}

/* When a member's many groups cannot be read (no memory for them), it is denied, and the
 * log says why: before, the log said only that it was not allowed. */
static void test_a_member_whose_groups_cannot_be_read_is_denied_with_the_reason_logged(void **state)
{
    static struct member m = {.gid = NOBODY - 1};
    struct fixture *f = *state;
    char path[PATH_MAX];
    size_t len;
    char *log;
    pid_t pid;
    int rc;

    for (m.ngroups = 0; m.ngroups < 299; m.ngroups++)
        m.groups[m.ngroups] = 1000 + (gid_t)m.ngroups;
    m.groups[m.ngroups++] = NOBODY;
    m.socket = f->b.socket_path;
    add_raw(&m.list, CTL_TOPIC_LIST, 1, NULL, 0);
    assert_int_equal(chmod(f->dir, 0711), 0);
    snprintf(path, sizeof(path), "%s/log", f->dir);
    on_server(f, allow_nobody);
    log_set_level(LOG_WARN);
    assert_int_equal(log_reopen(path), 0);
    shoal__alloc_fail_after(2); /* the server's: its connection, then the groups' buffer */
    pid = harness_fork(as_unread_member, &m, 30);
    rc = harness_wait(pid, WAIT_MS * 2);
    shoal__alloc_fail_after(0);
    log_reopen("");
    log_set_level(LOG_ERR);
    if (rc == SKIP_CHILD)
        skip();
    assert_int_equal(rc, 0);
    assert_non_null(log = (char *)harness_read_file(path, &len));
    log[len] = '\0';
    assert_non_null(strstr(log, "supplementary groups could not be read (Cannot allocate memory)"));
    free(log);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_a_request_is_answered_under_its_seq_with_its_fields),
        T(test_a_bad_header_gets_the_daemons_word_and_ends_only_its_connection),
        T(test_a_request_sent_a_byte_at_a_time_is_answered_once),
        T(test_requests_in_one_write_are_all_answered_in_order),
        T(test_an_unknown_or_malformed_request_gets_an_error_and_the_connection_goes_on),
        T(test_requests_behind_a_parked_one_wait_for_its_answer),
        T(test_a_client_gone_mid_frame_is_closed_and_the_server_goes_on),
        T(test_allow_gid_admits_its_members_until_a_reload_takes_it_back),
        T(test_a_member_through_one_of_many_supplementary_groups_is_admitted),
        T(test_a_member_whose_groups_cannot_be_read_is_denied_with_the_reason_logged),
    };

    signal(SIGPIPE, SIG_IGN); /* as shoald does */
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
