/* test_server_backlog.c - clients that do not read their replies hold up nobody else.
 *
 * A raw client sends many requests at once and reads nothing, so that its replies fill the
 * daemon's side of its socket (a Unix stream socket's send buffer bounds the bytes in flight,
 * about 200 KiB by default; the reader's SO_RCVBUF plays no part). The daemon must go on
 * serving every other client at once, queue what the stuck one does not take, keep that
 * queue's descriptors until they go out (with the first byte of their reply) or the
 * connection ends, answer each connection in the order of its requests, and close a
 * connection whose replies have not moved for the stall time (shortened here with
 * SHOALD_TEST_SEND_STALL_MS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <linux/capability.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctlproto.h"
#include "ctlsock.h"
#include "harness.h"
#include "ring.h"
#include "shoal.h"
#include "util.h"

#define TEST_TIMEOUT_S 60
#define STALL_MS       2000 /* SHOALD_TEST_SEND_STALL_MS */
/* Answered promptly: far below the stall time the daemon used to wait for a stuck client
 * (5 s) with the whole loop, and far above what a request takes (milliseconds). */
#define PROMPT_MS   1000
#define LONG_TOPICS 8 /* topics with long names, so that a topic list is ~2 KiB */
#define SLOTS       2 /* ring slots of the test topic: RING_FD_COUNT(SLOTS) per attach */
#define STALL_LOG   "has not read its replies"

static const uint8_t zeros[64 << 10];

/* ------------------------------------------------------------------ fixture */

static int setup(void **state)
{
    static struct harness_fixture f;
    char stall[16];
    int rc;

    *state = &f;
    snprintf(stall, sizeof(stall), "%d", STALL_MS);
    setenv("SHOALD_TEST_SEND_STALL_MS", stall, 1);
    rc = harness_fixture_start(&f, "backlog", TEST_TIMEOUT_S, NULL);
    unsetenv("SHOALD_TEST_SEND_STALL_MS");
    return rc;
}

static int teardown(void **state)
{
    return harness_fixture_stop(*state);
}

static shoal_topic_config_t small_topic(void)
{
    shoal_topic_config_t cfg;
    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = 64 << 10;
    cfg.ring_slots = SLOTS;
    cfg.max_record_bytes = 4096;
    return cfg;
}

static void create_topic(struct harness_fixture *f, const char *name)
{
    shoal_topic_config_t cfg = small_topic();
    assert_int_equal(shoal_topic_create(f->c, name, &cfg), 0);
}

/* Topics with names of 240 characters: each topic list reply is then about 2 KiB. */
static void create_long_topics(struct harness_fixture *f)
{
    char name[241];
    for (int i = 0; i < LONG_TOPICS; i++) {
        memset(name, 'a' + i, sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        create_topic(f, name);
    }
}

/* ------------------------------------------------------------------ a raw client */

static int raw_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Requests built one after another into one buffer, sent at once. */
struct batch {
    ctl_writer_t all;
    ctl_writer_t one;
    uint32_t seq; /* of the last request added: they are numbered from 1 */
    uint16_t types[4096];
};

static void batch_init(struct batch *b)
{
    ctl_writer_init(&b->all);
    ctl_writer_init(&b->one);
    b->seq = 0;
}

static void batch_release(struct batch *b)
{
    ctl_writer_release(&b->all);
    ctl_writer_release(&b->one);
}

/* Begin the next request; its fields follow with ctl_put_*(&b->one, ...). */
static ctl_writer_t *batch_begin(struct batch *b, uint16_t type)
{
    assert_true(b->seq + 1 < sizeof(b->types) / sizeof(b->types[0]));
    b->types[++b->seq] = type;
    ctl_frame_begin(&b->one, type, b->seq);
    return &b->one;
}

static void batch_end(struct batch *b)
{
    assert_int_equal(ctl_frame_end(&b->one), 0);
    ctl_put_raw(&b->all, b->one.buf, b->one.len);
    assert_int_equal(b->all.err, 0);
}

static void batch_topic_list(struct batch *b)
{
    batch_begin(b, CTL_TOPIC_LIST);
    batch_end(b);
}

static void batch_attach(struct batch *b, const char *topic)
{
    ctl_writer_t *w = batch_begin(b, CTL_ATTACH);
    ctl_put_str(w, topic);
    ctl_put_i32(w, 0);
    ctl_put_u8(w, CTL_ATTACH_READ);
    batch_end(b);
}

/* Send every request of b; they fit in the socket, so this does not wait for the daemon. */
static void batch_send(struct batch *b, int fd)
{
    assert_int_equal(send(fd, b->all.buf, b->all.len, MSG_NOSIGNAL | MSG_DONTWAIT),
                     (ssize_t)b->all.len);
}

/* Bytes waiting to be read on fd. */
static int unread_bytes(int fd)
{
    int n = 0;
    assert_int_equal(ioctl(fd, SIOCINQ, &n), 0);
    return n;
}

/* Wait until the daemon stopped writing to fd: replies wait to be read and their amount
 * has not changed for 200 ms (the daemon's side of the socket is full). */
static void wait_backlogged(int fd)
{
    int last = -1, still = 0;
    for (int i = 0; i < 500 && still < 4; i++) {
        int n = unread_bytes(fd);
        still = n > 0 && n == last ? still + 1 : 0;
        last = n;
        usleep(50000);
    }
    assert_true(still >= 4);
}

/* One reply from fd (waiting up to 5 s): its type, seq and status, its descriptors into
 * fds (at most CTL_MAX_FDS). */
static int read_reply(int fd, ctl_header_t *h, int *fds, size_t *nfds)
{
    uint8_t *payload = NULL;
    ctl_reader_t r;
    int rc;

    *nfds = 0;
    rc = ctlsock_recv_frame(fd, h, &payload, fds, nfds, CTL_MAX_FDS, 5000);
    if (rc < 0)
        return rc;
    ctl_reader_init(&r, payload, h->len);
    rc = ctl_get_status(&r, NULL, 0);
    shoal__free(payload);
    return rc;
}

/* Wait up to 5 s for the daemon to hold `want` descriptors; returns how many it holds. */
static int daemon_fds_settle(const struct harness_fixture *f, int want)
{
    int n = harness_open_fds(f->d.pid);
    for (int i = 0; i < 100 && n != want; i++) {
        usleep(50000);
        n = harness_open_fds(f->d.pid);
    }
    return n;
}

/* How many descriptors the daemon holds once two looks 20 ms apart agree: its threads
 * open some for a moment (a directory to fsync), which a single look may count. */
static int daemon_fds_steady(const struct harness_fixture *f)
{
    int n = harness_open_fds(f->d.pid), was = -1;
    for (int i = 0; i < 50 && n != was; i++) {
        usleep(20000);
        was = n;
        n = harness_open_fds(f->d.pid);
    }
    return n;
}

static int64_t elapsed_ms(int64_t since_ns)
{
    return (shoal__mono_ns() - since_ns) / 1000000;
}

/* ------------------------------------------------------------------ tests */

/* Another client's requests go on while one client leaves its replies unread; the stuck
 * one is closed once its replies have not moved for the stall time, having received the
 * replies that went out, in order; and the daemon serves on. */
INTEG_TEST(test_a_client_that_does_not_read_its_replies_holds_up_no_one_else)
{
    const int requests = 2000; /* some 4 MiB of replies: far beyond a socket's buffer */
    shoal_topic_info_t *info;
    shoal_producer_t *p;
    struct batch b;
    int64_t start_ns, t_ns;
    int fd, n = 0;
    uint32_t next = 1;
    char **names;
    size_t count;

    create_topic(f, "served");
    create_long_topics(f);
    batch_init(&b);
    for (int i = 0; i < requests; i++)
        batch_topic_list(&b);
    fd = raw_connect(f->d.socket);
    start_ns = shoal__mono_ns();
    batch_send(&b, fd);
    wait_backlogged(fd);

    t_ns = shoal__mono_ns();
    assert_int_equal(shoal_topic_describe(f->c, "served", &info), 0);
    shoal_topic_info_free(info);
    assert_int_equal(shoal_topic_list(f->c, &names, &count), 0);
    assert_int_equal(count, LONG_TOPICS + 1);
    shoal_topic_list_free(names, count);
    assert_int_equal(shoal_producer_open(f->c, "served", NULL, &p), 0); /* descriptors */
    shoal_producer_close(p);
    assert_in_range(elapsed_ms(t_ns), 0, PROMPT_MS);

    /* Closed after the stall time, not before: its replies stopped moving after it sent. */
    if (elapsed_ms(start_ns) < STALL_MS)
        assert_false(harness_daemon_log_contains(&f->d, STALL_LOG));
    for (int i = 0; i < 200 && !harness_daemon_log_contains(&f->d, STALL_LOG); i++)
        usleep(50000);
    assert_true(harness_daemon_log_contains(&f->d, STALL_LOG));
    /* What went out came whole and in order, then the end (maybe inside a frame). */
    for (;;) {
        ctl_header_t h;
        int fds[CTL_MAX_FDS];
        size_t nfds;
        int rc = read_reply(fd, &h, fds, &nfds);
        if (rc == SHOAL_ECLOSED)
            break;
        assert_int_equal(rc, 0);
        assert_int_equal(h.type, CTL_TOPIC_LIST | CTL_RESPONSE);
        assert_int_equal(h.seq, next++);
        n++;
    }
    assert_in_range(n, 1, requests - 1);
    close(fd);
    batch_release(&b);

    create_topic(f, "after");
    assert_int_equal(shoal_topic_describe(f->c, "after", &info), 0);
    shoal_topic_info_free(info);
}

/* An attach's reply that finds the socket full keeps its descriptors in the daemon until
 * the client reads, then delivers them with its own frame; the daemon keeps none after. */
/* A client that sends part of a request and no more is closed after the stall time, as
 * one that does not read its replies is: a thousand such connections, each holding the
 * megabyte the daemon had read of its request, took shoald to a gigabyte for as long as
 * they stayed (an exploratory session). Meanwhile the others are served. */
INTEG_TEST(test_a_client_that_sends_half_a_request_is_closed_after_the_stall_time)
{
    static const char half[8] = "SHOL"; /* half a frame header */
    struct timeval wait = {.tv_sec = 3 * STALL_MS / 1000};
    int64_t start_ns;
    char c;
    int fd;

    fd = raw_connect(f->d.socket);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait)), 0);
    start_ns = shoal__mono_ns();
    assert_int_equal(send(fd, half, sizeof(half), MSG_NOSIGNAL), (ssize_t)sizeof(half));
    create_topic(f, "meanwhile");
    assert_int_equal(recv(fd, &c, 1, 0), 0); /* closed by the daemon */
    assert_true(elapsed_ms(start_ns) >= STALL_MS);
    assert_true(harness_daemon_log_contains(&f->d, "sent 8 bytes of a request and not the rest"));
    close(fd);
}

INTEG_TEST(test_descriptors_of_a_reply_that_found_the_socket_full_arrive_intact)
{
    const int requests = 1500; /* each reply is small, but more than the socket holds */
    const size_t per = RING_FD_COUNT(SLOTS);
    struct stat want[RING_FD_COUNT(SLOTS)];
    struct batch b;
    int fd, base;

    create_topic(f, "fdq");
    batch_init(&b);
    for (int i = 0; i < requests; i++)
        batch_attach(&b, "fdq");
    base = daemon_fds_steady(f) + 1; /* and the connection's */
    fd = raw_connect(f->d.socket);
    batch_send(&b, fd);
    wait_backlogged(fd);
    /* The reply that did not fit waits with its descriptors: the daemon holds them. */
    assert_int_equal(daemon_fds_settle(f, base + (int)per), base + (int)per);

    for (uint32_t seq = 1; seq <= (uint32_t)requests; seq++) {
        ctl_header_t h;
        int fds[CTL_MAX_FDS];
        size_t nfds;
        assert_int_equal(read_reply(fd, &h, fds, &nfds), 0);
        assert_int_equal(h.type, CTL_ATTACH | CTL_RESPONSE);
        assert_int_equal(h.seq, seq);
        assert_int_equal(nfds, per);
        for (size_t i = 0; i < nfds; i++) { /* the same objects every time */
            struct stat st;
            assert_int_equal(fstat(fds[i], &st), 0);
            if (seq == 1)
                want[i] = st;
            assert_true(st.st_dev == want[i].st_dev && st.st_ino == want[i].st_ino);
            close(fds[i]);
        }
    }
    assert_int_equal(daemon_fds_settle(f, base), base);

    /* A client that leaves with descriptors queued for it: they are closed with it. */
    batch_send(&b, fd);
    wait_backlogged(fd);
    assert_int_equal(daemon_fds_settle(f, base + (int)per), base + (int)per);
    close(fd);
    assert_int_equal(daemon_fds_settle(f, base - 1), base - 1);
    batch_release(&b);
}

/* In the daemon's process before exec: an open-file limit of 128 it cannot raise, and
 * without CAP_SYS_RESOURCE and CAP_SYS_ADMIN, which exempt root from the kernel's limit on
 * descriptors in flight (as many as the sender's open-file limit). Neither drop works
 * without privilege, which a test run by a user does not need. */
static void limit_descriptors(void)
{
    struct rlimit rl = {.rlim_cur = 128, .rlim_max = 128};
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    (void)prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0);
    (void)prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0);
}

/* A client that pipelines attaches and reads none of the replies keeps their descriptors
 * in flight, counted against the daemon's user, until the kernel refuses shoald's
 * descriptor passing to everyone (ETOOMANYREFS). Another client's attach fails then with
 * SHOAL_ELIMIT and the reason (it saw its connection closed, with no word), and succeeds
 * once the hoarding client is gone. */
INTEG_TEST(test_descriptors_the_kernel_refuses_to_pass_are_answered_with_the_reason)
{
    shoal_topic_config_t cfg = small_topic();
    shoal_consumer_t *k;
    struct batch b;
    int hog, rc = -1;

    assert_int_equal(harness_daemon_stop(&f->d), 0);
    f->d.pre_exec = limit_descriptors;
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    shoal_client_close(f->c);
    assert_int_equal(shoal_client_open(f->d.socket, &f->c), 0);
    cfg.ring_slots = 30; /* 32 descriptors a reply: 5 replies are past the limit */
    assert_int_equal(shoal_topic_create(f->c, "wide", &cfg), 0);
    create_topic(f, "other");

    hog = raw_connect(f->d.socket);
    batch_init(&b);
    for (int i = 0; i < 20; i++)
        batch_attach(&b, "wide");
    batch_send(&b, hog);
    wait_backlogged(hog); /* all 20 answered: 5 with descriptors, then refusals */
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "other", NULL, 0), SHOAL_ELIMIT);
    assert_non_null(strstr(shoal_errmsg(), "ETOOMANYREFS"));
    assert_non_null(strstr(shoal_errmsg(), "does not read its replies"));
    assert_true(harness_daemon_log_contains(&f->d, "the kernel refused to pass descriptors"));

    close(hog); /* its descriptors in flight go with it */
    for (int i = 0; i < 100 && (rc = shoal_consumer_assign(k, "other", NULL, 0)) != 0; i++)
        usleep(20000);
    assert_int_equal(rc, 0);
    shoal_consumer_close(k);
    batch_release(&b);
}

/* Requests of every kind, sent at once and read only after the daemon filled the socket,
 * are answered in their order: through queued replies, parked commits and errors. */
INTEG_TEST(test_pipelined_requests_are_answered_in_order)
{
    static const uint16_t kinds[] = {CTL_TOPIC_LIST, CTL_TOPIC_DESCRIBE,  CTL_ATTACH, CTL_HELLO,
                                     CTL_GROUP_LIST, CTL_OFFSET_FOR_TIME, 77};
    struct batch b;
    int fd;

    create_topic(f, "order");
    create_long_topics(f);
    batch_init(&b);
    for (int i = 0; i < 2000; i++) {
        uint16_t type = i % 50 == 49 ? CTL_GROUP_COMMIT : kinds[i % 7];
        ctl_writer_t *w;
        if (type == CTL_ATTACH) {
            batch_attach(&b, "order");
            continue;
        }
        w = batch_begin(&b, type);
        if (type == CTL_TOPIC_DESCRIBE) {
            ctl_put_str(w, "order");
        } else if (type == CTL_HELLO) {
            ctl_put_u32(w, CTL_VERSION);
            ctl_put_str(w, "test");
        } else if (type == CTL_OFFSET_FOR_TIME) {
            ctl_put_str(w, "order");
            ctl_put_i32(w, 0);
            ctl_put_i64(w, 0);
        } else if (type == CTL_GROUP_COMMIT) { /* an administrative commit: parked */
            ctl_put_str(w, "g");
            ctl_put_str(w, "");
            ctl_put_i32(w, -1);
            ctl_put_u32(w, 1);
            ctl_put_str(w, "order");
            ctl_put_i32(w, 0);
            ctl_put_i64(w, 0);
        }
        batch_end(&b);
    }
    fd = raw_connect(f->d.socket);
    batch_send(&b, fd);
    wait_backlogged(fd);

    for (uint32_t seq = 1; seq <= b.seq; seq++) {
        ctl_header_t h;
        int fds[CTL_MAX_FDS];
        size_t nfds;
        int rc = read_reply(fd, &h, fds, &nfds);
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
        assert_int_equal(h.seq, seq);
        assert_int_equal(h.type, b.types[seq] | CTL_RESPONSE);
        assert_int_equal(rc, b.types[seq] == 77 ? SHOAL_EPROTO : 0);
        assert_int_equal(nfds, b.types[seq] == CTL_ATTACH ? RING_FD_COUNT(SLOTS) : 0);
    }
    close(fd);
    batch_release(&b);
}

struct sender {
    int fd;
    const struct batch *b;
    ssize_t sent;
};

static void *send_all(void *arg)
{
    struct sender *sd = arg;
    sd->sent = send(sd->fd, sd->b->all.buf, sd->b->all.len, MSG_NOSIGNAL);
    return NULL;
}

/* Requests pipelined behind one that shoald parks (a create making its rings, slowed here)
 * wait in the client's socket: the daemon reads 64 KiB of them, no more, until the parked
 * one is answered, then answers them all in order. Before, it read on until its input
 * buffer (2 MiB) was full and closed the connection without a word. */
INTEG_TEST(test_requests_behind_a_parked_one_wait_in_the_socket)
{
    shoal_topic_config_t cfg = small_topic();
    struct sender sd = {0};
    struct batch b;
    pthread_t th;
    char stall[16];
    ctl_writer_t *w;

    snprintf(stall, sizeof(stall), "%d", STALL_MS);
    setenv("SHOALD_TEST_SEND_STALL_MS", stall, 1);
    setenv("SHOALD_TEST_CREATE_MS", "1000", 1);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    unsetenv("SHOALD_TEST_CREATE_MS");
    unsetenv("SHOALD_TEST_SEND_STALL_MS");

    batch_init(&b);
    w = batch_begin(&b, CTL_TOPIC_CREATE);
    ctl_put_str(w, "parked");
    ctl_put_topic_config(w, &cfg);
    batch_end(&b);
    for (int i = 0; i < 6; i++) { /* 3 MiB behind it, in requests of an unknown type */
        w = batch_begin(&b, 77);
        for (int k = 0; k < 8; k++)
            ctl_put_raw(w, zeros, sizeof(zeros));
        batch_end(&b);
    }
    sd.fd = raw_connect(f->d.socket);
    sd.b = &b;
    assert_int_equal(pthread_create(&th, NULL, send_all, &sd), 0);

    for (uint32_t seq = 1; seq <= b.seq; seq++) {
        ctl_header_t h;
        int fds[CTL_MAX_FDS];
        size_t nfds;
        int rc = read_reply(sd.fd, &h, fds, &nfds);
        assert_int_equal(h.seq, seq);
        assert_int_equal(rc, seq == 1 ? 0 : SHOAL_EPROTO);
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(sd.sent, (ssize_t)b.all.len);
    close(sd.fd);
    batch_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_a_client_that_does_not_read_its_replies_holds_up_no_one_else),
        T(test_a_client_that_sends_half_a_request_is_closed_after_the_stall_time),
        T(test_descriptors_of_a_reply_that_found_the_socket_full_arrive_intact),
        T(test_descriptors_the_kernel_refuses_to_pass_are_answered_with_the_reason),
        T(test_pipelined_requests_are_answered_in_order),
        T(test_requests_behind_a_parked_one_wait_in_the_socket),
#undef T
    };
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
