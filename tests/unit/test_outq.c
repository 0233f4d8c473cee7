/* test_outq.c - the daemon's output queue on a socketpair: frames sent whole, the rest of
 * one kept (the writer's buffer taken), descriptors kept while none of their frame went
 * and delivered with its first byte once it goes, frames queued behind in order, and no
 * descriptor left open on any path (sent, released, refused, peer gone). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctlproto.h"
#include "ctlsock.h"
#include "harness.h"
#include "shoald/outq.h"
#include "util.h"

#define BIG_BYTES (1u << 20) /* more than a socket holds */

struct fixture {
    int sv[2]; /* [0] the daemon's end, [1] the client's */
    int pipe[2];
    outq_t q;
    ctl_writer_t w;
};

static int setup(void **state)
{
    static struct fixture f;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f.sv) < 0 ||
        pipe2(f.pipe, O_CLOEXEC) < 0)
        return -1;
    outq_init(&f.q);
    ctl_writer_init(&f.w);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    outq_release(&f->q);
    ctl_writer_release(&f->w);
    for (int i = 0; i < 2; i++) {
        if (f->sv[i] >= 0)
            close(f->sv[i]);
        close(f->pipe[i]);
    }
    return 0;
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* A response frame in f->w: seq, then `bytes` payload bytes of the value (uint8_t)seq. */
static void frame(struct fixture *f, uint32_t seq, size_t bytes)
{
    uint8_t *fill = malloc(bytes ? bytes : 1);

    assert_non_null(fill);
    memset(fill, (int)(uint8_t)seq, bytes);
    ctl_frame_begin(&f->w, CTL_TOPIC_LIST | CTL_RESPONSE, seq);
    ctl_put_raw(&f->w, fill, bytes);
    assert_int_equal(ctl_frame_end(&f->w), 0);
    free(fill);
}

/* Two descriptors for a frame, the queue's to close: copies of the pipe's ends. */
static void pipe_dups(const struct fixture *f, int fds[2])
{
    fds[0] = fcntl(f->pipe[0], F_DUPFD_CLOEXEC, 0);
    fds[1] = fcntl(f->pipe[1], F_DUPFD_CLOEXEC, 0);
    assert_true(fds[0] >= 0 && fds[1] >= 0);
}

/* Fill the daemon's end until it takes nothing more; returns the bytes written. */
static size_t fill_socket(const struct fixture *f)
{
    static const uint8_t junk[4096];
    size_t total = 0;
    for (;;) {
        ssize_t n = send(f->sv[0], junk, sizeof(junk), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            assert_int_equal(errno, EAGAIN);
            return total;
        }
        total += (size_t)n;
    }
}

/* Read and drop n bytes on the client's end. */
static void drain(const struct fixture *f, size_t n)
{
    uint8_t buf[4096];
    while (n > 0) {
        ssize_t got = recv(f->sv[1], buf, n < sizeof(buf) ? n : sizeof(buf), 0);
        assert_true(got > 0);
        n -= (size_t)got;
    }
}

/* A frame as the client's end received it. */
struct got {
    int rc;
    ctl_header_t h;
    uint8_t *payload;
    int fds[2];
    size_t nfds;
};

static void receive(const struct fixture *f, struct got *g)
{
    g->nfds = 0;
    g->rc = ctlsock_recv_frame(f->sv[1], &g->h, &g->payload, g->fds, &g->nfds, 2, 5000);
}

/* g is frame seq with bytes of payload; returns how many descriptors came with it. */
static size_t expect_got(struct got *g, uint32_t seq, size_t bytes)
{
    assert_int_equal(g->rc, 0);
    assert_int_equal(g->h.seq, seq);
    assert_int_equal(g->h.len, bytes);
    for (size_t i = 0; i < bytes; i++)
        if (g->payload[i] != (uint8_t)seq)
            fail_msg("frame %u: byte %zu is %u", seq, i, g->payload[i]);
    shoal__free(g->payload);
    return g->nfds;
}

/* Receive one frame on the client's end and check it is seq's with bytes of payload;
 * returns how many descriptors came with it (into fds). */
static size_t expect_frame(const struct fixture *f, uint32_t seq, size_t bytes, int fds[2])
{
    struct got g;
    size_t n;

    receive(f, &g);
    n = expect_got(&g, seq, bytes);
    memcpy(fds, g.fds, sizeof(g.fds));
    return n;
}

/* The descriptors came intact: what goes into the received write end comes out of the
 * test's own read end, and what the test writes comes out of the received read end. */
static void expect_pipe_ends(const struct fixture *f, int fds[2])
{
    char c = 0;
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_int_equal(read(f->pipe[0], &c, 1), 1);
    assert_int_equal(c, 'x');
    assert_int_equal(write(f->pipe[1], "y", 1), 1);
    assert_int_equal(read(fds[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    close(fds[0]);
    close(fds[1]);
}

static void test_outq_sends_a_frame_that_fits_at_once_and_keeps_nothing(void **state)
{
    struct fixture *f = *state;
    int before = harness_open_fds(0), fds[2], got[2];

    pipe_dups(f, fds);
    frame(f, 1, 100);
    assert_int_equal(outq_send(&f->q, f->sv[0], &f->w, fds, 2), 0);
    assert_true(outq_is_empty(&f->q));
    assert_null(f->q.buf);
    assert_non_null(f->w.buf); /* a frame sent whole leaves the writer as it was */
    assert_false(fd_is_open(fds[0]) || fd_is_open(fds[1]));
    assert_int_equal(expect_frame(f, 1, 100, got), 2);
    expect_pipe_ends(f, got);
    assert_int_equal(harness_open_fds(0), before);
}

static void test_outq_keeps_descriptors_until_the_first_byte_of_their_frame_goes(void **state)
{
    struct fixture *f = *state;
    int before = harness_open_fds(0), fds[2], got[2];
    size_t filled = fill_socket(f);

    pipe_dups(f, fds);
    frame(f, 2, 100);
    assert_int_equal(outq_send(&f->q, f->sv[0], &f->w, fds, 2), 0);
    /* Nothing went: the whole frame waits, with its descriptors, in the writer's buffer. */
    assert_int_equal(outq_bytes(&f->q), CTL_HEADER_BYTES + 100);
    assert_int_equal(f->q.nfds, 2);
    assert_true(fd_is_open(fds[0]) && fd_is_open(fds[1]));
    assert_null(f->w.buf);
    assert_int_equal(outq_flush(&f->q, f->sv[0]), 0); /* still no room */
    assert_int_equal(f->q.nfds, 2);

    drain(f, filled);
    assert_int_equal(outq_flush(&f->q, f->sv[0]), 0);
    assert_true(outq_is_empty(&f->q));
    assert_null(f->q.buf);
    assert_int_equal(f->q.nfds, 0);
    assert_false(fd_is_open(fds[0]) || fd_is_open(fds[1]));
    assert_int_equal(expect_frame(f, 2, 100, got), 2);
    expect_pipe_ends(f, got);
    assert_int_equal(harness_open_fds(0), before);
}

/* The client, on a thread of its own while the test flushes: three frames, checked by
 * the test afterwards (cmocka's checks belong to the test's thread). */
struct reader {
    const struct fixture *f;
    struct got g[3];
};

static void *read_three(void *arg)
{
    struct reader *r = arg;
    for (int i = 0; i < 3; i++)
        receive(r->f, &r->g[i]);
    return NULL;
}

/* Flush until the queue is empty, waiting for room as the server's loop does. */
static void flush_all(struct fixture *f)
{
    while (!outq_is_empty(&f->q)) {
        struct pollfd pfd = {.fd = f->sv[0], .events = POLLOUT};
        assert_int_equal(poll(&pfd, 1, 5000), 1);
        assert_int_equal(outq_flush(&f->q, f->sv[0]), 0);
    }
}

static void test_outq_sends_what_fits_and_queues_later_frames_behind_in_order(void **state)
{
    struct fixture *f = *state;
    struct reader r = {.f = f};
    int before = harness_open_fds(0), fds[2];
    pthread_t t;

    pipe_dups(f, fds);
    frame(f, 3, BIG_BYTES);
    assert_int_equal(outq_send(&f->q, f->sv[0], &f->w, fds, 2), 0);
    /* Part went, and the descriptors with its first byte. */
    assert_in_range(outq_bytes(&f->q), 1, CTL_HEADER_BYTES + BIG_BYTES - 1);
    assert_int_equal(f->q.nfds, 0);
    assert_false(fd_is_open(fds[0]) || fd_is_open(fds[1]));
    frame(f, 4, 10);
    assert_int_equal(outq_send(&f->q, f->sv[0], &f->w, NULL, 0), 0);
    frame(f, 5, BIG_BYTES);
    assert_int_equal(outq_send(&f->q, f->sv[0], &f->w, NULL, 0), 0);
    assert_non_null(f->w.buf); /* copied behind, not taken */

    assert_int_equal(pthread_create(&t, NULL, read_three, &r), 0);
    flush_all(f);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(expect_got(&r.g[0], 3, BIG_BYTES), 2);
    assert_int_equal(expect_got(&r.g[1], 4, 10), 0);
    assert_int_equal(expect_got(&r.g[2], 5, BIG_BYTES), 0);
    expect_pipe_ends(f, r.g[0].fds);
    assert_null(f->q.buf); /* freed once empty */
    ctl_writer_release(&f->w);
    assert_int_equal(harness_open_fds(0), before);
}

static void test_outq_release_closes_the_descriptors_it_holds(void **state)
{
    struct fixture *f = *state;
    int before = harness_open_fds(0), fds[2];

    fill_socket(f);
    pipe_dups(f, fds);
    frame(f, 6, 10);
    assert_int_equal(outq_send(&f->q, f->sv[0], &f->w, fds, 2), 0);
    assert_int_equal(harness_open_fds(0), before + 2);
    outq_release(&f->q);
    assert_true(outq_is_empty(&f->q));
    assert_int_equal(harness_open_fds(0), before);
}

static void test_outq_refuses_descriptors_behind_waiting_bytes_and_closes_them(void **state)
{
    struct fixture *f = *state;
    int before = harness_open_fds(0), fds[2];

    fill_socket(f);
    frame(f, 7, 10);
    assert_int_equal(outq_send(&f->q, f->sv[0], &f->w, NULL, 0), 0);
    assert_false(outq_is_empty(&f->q));
    pipe_dups(f, fds);
    frame(f, 8, 10);
    assert_int_equal(outq_send(&f->q, f->sv[0], &f->w, fds, 2), -EBUSY);
    assert_int_equal(outq_bytes(&f->q), CTL_HEADER_BYTES + 10); /* as it was */
    assert_int_equal(harness_open_fds(0), before);
}

static void test_outq_reports_a_peer_gone_and_closes_the_descriptors(void **state)
{
    struct fixture *f = *state;
    int before, fds[2];

    fill_socket(f);
    frame(f, 9, 10);
    assert_int_equal(outq_send(&f->q, f->sv[0], &f->w, NULL, 0), 0);
    close(f->sv[1]);
    f->sv[1] = -1;
    assert_int_equal(outq_flush(&f->q, f->sv[0]), SHOAL_ECLOSED);
    outq_release(&f->q);

    before = harness_open_fds(0);
    pipe_dups(f, fds);
    frame(f, 10, 10);
    assert_int_equal(outq_send(&f->q, f->sv[0], &f->w, fds, 2), SHOAL_ECLOSED);
    assert_true(outq_is_empty(&f->q));
    assert_int_equal(harness_open_fds(0), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_outq_sends_a_frame_that_fits_at_once_and_keeps_nothing),
        T(test_outq_keeps_descriptors_until_the_first_byte_of_their_frame_goes),
        T(test_outq_sends_what_fits_and_queues_later_frames_behind_in_order),
        T(test_outq_release_closes_the_descriptors_it_holds),
        T(test_outq_refuses_descriptors_behind_waiting_bytes_and_closes_them),
        T(test_outq_reports_a_peer_gone_and_closes_the_descriptors),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
