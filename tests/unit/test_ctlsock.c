/* test_ctlsock.c - the control socket: listening (stale and live socket files),
 * connecting, frames with passed descriptors, peer credentials, and the failures of
 * ctlsock_recv_frame(): peer gone mid-header, garbage, timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctlsock.h"
#include "harness.h"
#include "util.h"

struct fixture {
    char dir[200];
    char path[300];
    int sv[2]; /* a connected socketpair for the frame tests */
};

static int setup(void **state)
{
    static struct fixture f;

    harness_tmpdir(f.dir, sizeof(f.dir), "ctlsock");
    snprintf(f.path, sizeof(f.path), "%s/shoald.sock", f.dir);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f.sv) < 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->sv[0] >= 0)
        close(f->sv[0]);
    if (f->sv[1] >= 0)
        close(f->sv[1]);
    harness_rmrf(f->dir);
    return 0;
}

/* Accept one connection on a non-blocking listener, waiting up to a second. */
static int accept_one(int lfd)
{
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};

    assert_int_equal(poll(&pfd, 1, 1000), 1);
    return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

static void test_ctlsock_listen_sets_mode_and_flags(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    int lfd = ctlsock_listen(f->path);

    assert_true(lfd >= 0);
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0660);
    assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(lfd, F_GETFL) & O_NONBLOCK);
    close(lfd);
}

static void test_ctlsock_connect_to_missing_path_is_nodaemon(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(ctlsock_connect(f->path, -1), SHOAL_ENODAEMON);
    assert_non_null(strstr(shoal_errmsg(), f->path));
    assert_non_null(strstr(shoal_errmsg(), "No such file"));
    /* a path that names a directory: said as such, not as a refused connection */
    assert_int_equal(mkdir(f->path, 0700), 0);
    assert_int_equal(ctlsock_connect(f->path, -1), SHOAL_ENODAEMON);
    assert_non_null(strstr(shoal_errmsg(), "it is not a socket"));
    rmdir(f->path);
}

static void test_ctlsock_path_too_long(void **state)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];

    (void)state;
    memset(path, 'p', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(ctlsock_connect(path, -1), -ENAMETOOLONG);
    assert_int_equal(ctlsock_listen(path), -ENAMETOOLONG);
}

static void test_ctlsock_stale_socket_file_is_replaced(void **state)
{
    struct fixture *f = *state;
    int lfd, cfd, afd;

    lfd = ctlsock_listen(f->path);
    assert_true(lfd >= 0);
    close(lfd); /* the file stays behind, nobody listens: a crashed daemon */
    assert_int_equal(access(f->path, F_OK), 0);
    assert_int_equal(ctlsock_connect(f->path, -1), SHOAL_ENODAEMON);

    lfd = ctlsock_listen(f->path);
    assert_true(lfd >= 0);
    cfd = ctlsock_connect(f->path, -1);
    assert_true(cfd >= 0);
    assert_true(fcntl(cfd, F_GETFD) & FD_CLOEXEC);
    afd = accept_one(lfd);
    assert_true(afd >= 0);
    close(afd);
    close(cfd);
    close(lfd);
}

/* A listener that does not accept (a stopped daemon) and whose backlog is full makes a
 * connect wait until its deadline only (a blocking connect waited for ever); once there is
 * room, connecting works, and the descriptor is blocking as before. */
static void test_ctlsock_connect_to_a_full_backlog_ends_at_its_deadline(void **state)
{
    struct fixture *f = *state;
    int lfd = ctlsock_listen(f->path), first, cfd, afd;
    int64_t start;

    assert_true(lfd >= 0);
    assert_int_equal(listen(lfd, 0), 0); /* one connection fills it */
    first = ctlsock_connect(f->path, -1);
    assert_true(first >= 0);
    start = shoal__mono_ns();
    assert_int_equal(ctlsock_connect(f->path, shoal__mono_ns() + 50000000), SHOAL_ETIMEDOUT);
    assert_true(shoal__mono_ns() - start >= 45 * 1000000ll);
    assert_non_null(strstr(shoal_errmsg(), "backlog is full"));

    afd = accept_one(lfd);
    assert_true(afd >= 0);
    cfd = ctlsock_connect(f->path, shoal__mono_ns() + 1000000000);
    assert_true(cfd >= 0);
    assert_int_equal(fcntl(cfd, F_GETFL) & O_NONBLOCK, 0);
    close(cfd);
    close(afd);
    close(first);
    close(lfd);
}

static void test_ctlsock_live_socket_is_addrinuse(void **state)
{
    struct fixture *f = *state;
    int lfd = ctlsock_listen(f->path);
    int cfd, afd;

    assert_true(lfd >= 0);
    assert_int_equal(ctlsock_listen(f->path), -EADDRINUSE);
    /* the first listener still works */
    cfd = ctlsock_connect(f->path, -1);
    assert_true(cfd >= 0);
    afd = accept_one(lfd);
    assert_true(afd >= 0);
    close(afd);
    close(cfd);
    close(lfd);
}

/* A listener removes its socket file only while the path is still that file. */
static void test_ctlsock_unlink_leaves_a_newer_socket_alone(void **state)
{
    struct fixture *f = *state;
    ctlsock_file_t first, second;
    int lfd = ctlsock_listen(f->path), lfd2;

    assert_true(lfd >= 0);
    assert_int_equal(ctlsock_file_of(f->path, &first), 0);
    assert_int_equal(unlink(f->path), 0); /* an operator's cleanup */
    assert_false(ctlsock_unlink(f->path, &first));
    assert_true((lfd2 = ctlsock_listen(f->path)) >= 0); /* another daemon binds the path */
    assert_int_equal(ctlsock_file_of(f->path, &second), 0);
    assert_false(ctlsock_unlink(f->path, &first));
    assert_int_equal(access(f->path, F_OK), 0);
    assert_true(ctlsock_unlink(f->path, &second));
    assert_int_equal(access(f->path, F_OK), -1);
    close(lfd2);
    close(lfd);
}

static void test_ctlsock_non_socket_file_is_not_replaced(void **state)
{
    struct fixture *f = *state;
    FILE *fp = fopen(f->path, "w");

    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(ctlsock_listen(f->path), -EADDRINUSE);
    assert_int_equal(access(f->path, F_OK), 0);
}

static void test_ctlsock_peer_cred_is_ours(void **state)
{
    struct fixture *f = *state;
    int lfd = ctlsock_listen(f->path);
    int cfd, afd;
    pid_t pid;
    uid_t uid;
    gid_t gid;

    assert_true(lfd >= 0);
    cfd = ctlsock_connect(f->path, -1);
    assert_true(cfd >= 0);
    afd = accept_one(lfd);
    assert_true(afd >= 0);
    assert_int_equal(ctlsock_peer_cred(afd, &pid, &uid, &gid), 0);
    assert_int_equal(pid, getpid());
    assert_int_equal(uid, getuid());
    assert_int_equal(gid, getgid());
    close(afd);
    close(cfd);
    close(lfd);
}

/* Three pipes' ends travel with a frame; the receiver writes through them. */
static void test_ctlsock_frame_carries_three_usable_fds(void **state)
{
    struct fixture *f = *state;
    int pipes[3][2], send_fds[3], fds[CTL_MAX_FDS];
    size_t nfds = 0;
    ctl_writer_t w;
    ctl_header_t h;
    ctl_reader_t r;
    uint8_t *payload;
    char buf[16];

    for (int i = 0; i < 3; i++) {
        assert_int_equal(pipe2(pipes[i], O_CLOEXEC), 0);
        send_fds[i] = pipes[i][1];
    }
    ctl_writer_init(&w);
    ctl_response_begin(&w, CTL_ATTACH, 11, 0, NULL);
    ctl_put_str(&w, "three fds");
    assert_int_equal(ctl_frame_end(&w), 0);
    assert_int_equal(ctlsock_send(f->sv[0], w.buf, w.len, send_fds, 3, -1), 0);
    for (int i = 0; i < 3; i++)
        close(pipes[i][1]); /* only the received copies remain */

    assert_int_equal(ctlsock_recv_frame(f->sv[1], &h, &payload, fds, &nfds, CTL_MAX_FDS, 1000), 0);
    assert_int_equal(h.type, CTL_ATTACH | CTL_RESPONSE);
    assert_int_equal(h.seq, 11);
    assert_int_equal(nfds, 3);
    ctl_reader_init(&r, payload, h.len);
    assert_int_equal(ctl_get_status(&r, NULL, 0), 0);
    assert_string_equal(ctl_get_str(&r, buf, sizeof(buf)), "three fds");
    assert_int_equal(ctl_reader_finish(&r), 0);
    free(payload);

    for (int i = 0; i < 3; i++) {
        assert_true(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
        assert_int_equal(write(fds[i], "x", 1), 1);
        close(fds[i]);
        assert_int_equal(read(pipes[i][0], buf, sizeof(buf)), 1);
        assert_int_equal(buf[0], 'x');
        close(pipes[i][0]);
    }
    ctl_writer_release(&w);
}

/* Descriptors beyond max_fds are closed by the receiver, not leaked. */
static void test_ctlsock_extra_fds_are_closed(void **state)
{
    struct fixture *f = *state;
    int p[2], send_fds[3], fds[1];
    size_t nfds = 0;
    ctl_writer_t w;
    ctl_header_t h;
    uint8_t *payload;
    int before;
    char c;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    send_fds[0] = send_fds[1] = send_fds[2] = p[1];
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_HELLO, 1);
    assert_int_equal(ctl_frame_end(&w), 0);
    assert_int_equal(ctlsock_send(f->sv[0], w.buf, w.len, send_fds, 3, -1), 0);
    close(p[1]);
    before = harness_open_fds(0);
    assert_int_equal(ctlsock_recv_frame(f->sv[1], &h, &payload, fds, &nfds, 1, 1000), 0);
    assert_int_equal(nfds, 1);
    assert_int_equal(harness_open_fds(0), before + 1);
    assert_int_equal(h.len, 0);
    free(payload);
    close(fds[0]);
    /* every write end is closed, so the read end sees end of file */
    assert_int_equal(read(p[0], &c, 1), 0);
    close(p[0]);
    ctl_writer_release(&w);
}

static void test_ctlsock_peer_closing_mid_header_is_closed(void **state)
{
    struct fixture *f = *state;
    int p[2], fds[4];
    size_t nfds = 0;
    ctl_header_t h;
    uint8_t *payload = (uint8_t *)"x";
    char c;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(ctlsock_send(f->sv[0], "SHOL\x01", 5, &p[1], 1, -1), 0);
    close(p[1]);
    close(f->sv[0]);
    f->sv[0] = -1;
    assert_int_equal(ctlsock_recv_frame(f->sv[1], &h, &payload, fds, &nfds, 4, 1000),
                     SHOAL_ECLOSED);
    assert_null(payload);
    assert_int_equal(nfds, 0);
    assert_int_equal(read(p[0], &c, 1), 0); /* the received copy was closed */
    close(p[0]);
}

static void test_ctlsock_peer_closing_mid_payload_is_closed(void **state)
{
    struct fixture *f = *state;
    ctl_header_t out, h = {CTL_MAGIC, CTL_VERSION, CTL_HELLO, 100, 1};
    uint8_t b[CTL_HEADER_BYTES + 10] = {0};
    uint8_t *payload;
    size_t nfds = 0;

    ctl_header_encode(b, &h);
    assert_int_equal(ctlsock_send(f->sv[0], b, sizeof(b), NULL, 0, -1), 0);
    close(f->sv[0]);
    f->sv[0] = -1;
    assert_int_equal(ctlsock_recv_frame(f->sv[1], &out, &payload, NULL, &nfds, 0, 1000),
                     SHOAL_ECLOSED);
}

static void test_ctlsock_garbage_header_is_proto(void **state)
{
    struct fixture *f = *state;
    const char junk[CTL_HEADER_BYTES] = "GET / HTTP/1.1\r";
    int p[2], fds[2];
    size_t nfds = 0;
    ctl_header_t h;
    uint8_t *payload;
    int before;
    char c;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(ctlsock_send(f->sv[0], junk, sizeof(junk), &p[1], 1, -1), 0);
    close(p[1]);
    before = harness_open_fds(0);
    assert_int_equal(ctlsock_recv_frame(f->sv[1], &h, &payload, fds, &nfds, 2, 1000), SHOAL_EPROTO);
    assert_int_equal(harness_open_fds(0), before);
    assert_int_equal(nfds, 0);
    assert_int_equal(read(p[0], &c, 1), 0);
    close(p[0]);
}

static void test_ctlsock_wrong_version_is_version(void **state)
{
    struct fixture *f = *state;
    ctl_header_t out, h = {CTL_MAGIC, CTL_VERSION + 1, CTL_HELLO, 0, 1};
    uint8_t b[CTL_HEADER_BYTES];
    uint8_t *payload;

    ctl_header_encode(b, &h);
    assert_int_equal(ctlsock_send(f->sv[0], b, sizeof(b), NULL, 0, -1), 0);
    assert_int_equal(ctlsock_recv_frame(f->sv[1], &out, &payload, NULL, NULL, 0, 1000),
                     SHOAL_EVERSION);
}

static void test_ctlsock_recv_frame_times_out(void **state)
{
    struct fixture *f = *state;
    int64_t start = shoal__mono_ns();
    ctl_header_t h;
    uint8_t *payload;
    size_t nfds = 0;
    int fds[1];

    assert_int_equal(ctlsock_send(f->sv[0], "SHOL", 4, NULL, 0, -1), 0);
    assert_int_equal(ctlsock_recv_frame(f->sv[1], &h, &payload, fds, &nfds, 1, 50),
                     SHOAL_ETIMEDOUT);
    assert_true(shoal__mono_ns() - start >= 45 * 1000000ll);
}

static void test_ctlsock_send_to_closed_peer_is_closed(void **state)
{
    struct fixture *f = *state;

    close(f->sv[1]);
    f->sv[1] = -1;
    assert_int_equal(ctlsock_send(f->sv[0], "hello", 5, NULL, 0, -1), SHOAL_ECLOSED);
}

/* A peer that stops reading holds a send until its deadline only: with part of the frame
 * taken the stream is torn (-ETIMEDOUT); with nothing taken it is untouched
 * (SHOAL_ETIMEDOUT: none of the frame reaches the peer). The socket is a blocking one. */
static void test_ctlsock_send_to_a_peer_that_stops_reading_ends_at_its_deadline(void **state)
{
    struct fixture *f = *state;
    static uint8_t big[1 << 20], got[1 << 20];
    int sndbuf = 4096;
    size_t sent = 0;
    int64_t start;
    int rc;

    assert_int_equal(setsockopt(f->sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    memset(big, 'b', sizeof(big));
    start = shoal__mono_ns();
    rc = ctlsock_send(f->sv[0], big, sizeof(big), NULL, 0, shoal__mono_ns() + 50000000);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(shoal__mono_ns() - start >= 45 * 1000000ll);
    assert_non_null(strstr(shoal_errmsg(), "stopped reading"));

    rc = ctlsock_send(f->sv[0], "SHOL", 4, NULL, 0, shoal__mono_ns() + 20000000);
    assert_int_equal(rc, SHOAL_ETIMEDOUT);
    for (ssize_t n; (n = recv(f->sv[1], got, sizeof(got), MSG_DONTWAIT)) > 0;)
        sent += (size_t)n;
    assert_true(sent > 0 && sent < sizeof(big));
    assert_null(memchr(got, 'S', sent));
}

static void test_ctlsock_recv_on_empty_nonblocking_is_again(void **state)
{
    struct fixture *f = *state;
    size_t nfds = 0;
    char buf[4];

    assert_int_equal(fcntl(f->sv[1], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(ctlsock_recv(f->sv[1], buf, sizeof(buf), NULL, &nfds, 0), -EAGAIN);
    close(f->sv[0]);
    f->sv[0] = -1;
    assert_int_equal(ctlsock_recv(f->sv[1], buf, sizeof(buf), NULL, &nfds, 0), 0);
}

/* A frame bigger than the socket buffer goes through partial sends and several reads,
 * with the sender's socket non-blocking like the daemon's. */
static void test_ctlsock_large_frame_survives_partial_io(void **state)
{
    struct fixture *f = *state;
    int p[2], fd;
    size_t nfds = 0;
    ctl_writer_t w;
    ctl_header_t h;
    uint8_t *payload;
    pid_t child;
    int status;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_TOPIC_LIST, 2);
    for (uint32_t i = 0; i < CTL_MAX_PAYLOAD / 4; i++)
        ctl_put_u32(&w, i);
    assert_int_equal(ctl_frame_end(&w), 0);
    assert_int_equal(fcntl(f->sv[0], F_SETFL, O_NONBLOCK), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(ctlsock_send(f->sv[0], w.buf, w.len, &p[1], 1, -1) == 0 ? 0 : 1);
    assert_int_equal(ctlsock_recv_frame(f->sv[1], &h, &payload, &fd, &nfds, 1, 5000), 0);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(h.len, CTL_MAX_PAYLOAD);
    assert_int_equal(nfds, 1);
    assert_memory_equal(payload, w.buf + CTL_HEADER_BYTES, h.len);
    free(payload);
    close(fd);
    close(p[0]);
    close(p[1]);
    ctl_writer_release(&w);
}

/* More descriptors than CTL_MAX_FDS cannot fit the receive buffer (MSG_CTRUNC): the
 * frame fails and the ones that did arrive are closed. Sent raw: ctlsock_send refuses. */
static void test_ctlsock_truncated_fds_are_proto_and_closed(void **state)
{
    struct fixture *f = *state;
    enum { N = CTL_MAX_FDS + 8 };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * N)];
    } cbuf;
    uint8_t hdr[CTL_HEADER_BYTES];
    ctl_header_t h = {CTL_MAGIC, CTL_VERSION, CTL_HELLO, 0, 1};
    struct iovec iov = {.iov_base = hdr, .iov_len = sizeof(hdr)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *cm;
    int fds[CTL_MAX_FDS], before;
    size_t nfds = 0;
    uint8_t *payload;

    ctl_header_encode(hdr, &h);
    memset(&cbuf, 0, sizeof(cbuf));
    msg.msg_control = cbuf.buf;
    msg.msg_controllen = sizeof(cbuf.buf);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * N);
    for (int i = 0; i < N; i++)
        memcpy(CMSG_DATA(cm) + i * sizeof(int), &f->sv[0], sizeof(int));
    assert_int_equal(sendmsg(f->sv[0], &msg, 0), sizeof(hdr));
    assert_int_equal(ctlsock_send(f->sv[0], hdr, sizeof(hdr), fds, N, -1), -EINVAL);

    before = harness_open_fds(0);
    assert_int_equal(ctlsock_recv_frame(f->sv[1], &h, &payload, fds, &nfds, CTL_MAX_FDS, 1000),
                     -EPROTO);
    assert_int_equal(nfds, 0);
    assert_int_equal(harness_open_fds(0), before);
}

/* Out of descriptor slots, the kernel installs none of a frame's descriptors (MSG_CTRUNC)
 * but delivers its bytes: the frame fails -EMFILE after its payload was read, nothing
 * leaks, and the next frame reads in step. */
static void test_ctlsock_out_of_descriptors_is_emfile_and_stays_in_step(void **state)
{
    struct fixture *f = *state;
    struct rlimit old, none;
    ctl_writer_t w;
    ctl_header_t h;
    uint8_t *payload;
    int p[2], fds[3], lowest, before;
    size_t nfds = 0;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_ATTACH | CTL_RESPONSE, 7);
    for (uint32_t i = 0; i < 100; i++)
        ctl_put_u32(&w, i);
    assert_int_equal(ctl_frame_end(&w), 0);
    fds[0] = fds[1] = fds[2] = p[1];
    assert_int_equal(ctlsock_send(f->sv[0], w.buf, w.len, fds, 3, -1), 0);
    assert_int_equal(ctlsock_send(f->sv[0], w.buf, w.len, fds, 1, -1), 0);

    before = harness_open_fds(0);
    lowest = dup(p[0]);
    assert_true(lowest >= 0);
    close(lowest);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    none = old;
    none.rlim_cur = (rlim_t)lowest; /* every lower number is taken: no new descriptor */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
    shoal__clear_err();
    assert_int_equal(ctlsock_recv_frame(f->sv[1], &h, &payload, fds, &nfds, 3, 1000), -EMFILE);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_non_null(strstr(shoal_errmsg(), "ran out of file descriptors"));
    assert_null(payload);
    assert_int_equal(nfds, 0);
    assert_int_equal(harness_open_fds(0), before);

    assert_int_equal(ctlsock_recv_frame(f->sv[1], &h, &payload, fds, &nfds, 3, 1000), 0);
    assert_int_equal(h.seq, 7);
    assert_int_equal(h.len, w.len - CTL_HEADER_BYTES);
    assert_memory_equal(payload, w.buf + CTL_HEADER_BYTES, h.len);
    assert_int_equal(nfds, 1);
    free(payload);
    close(fds[0]);
    close(p[0]);
    close(p[1]);
    ctl_writer_release(&w);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_ctlsock_listen_sets_mode_and_flags),
        T(test_ctlsock_unlink_leaves_a_newer_socket_alone),
        T(test_ctlsock_connect_to_missing_path_is_nodaemon),
        T(test_ctlsock_path_too_long),
        T(test_ctlsock_stale_socket_file_is_replaced),
        T(test_ctlsock_live_socket_is_addrinuse),
        T(test_ctlsock_non_socket_file_is_not_replaced),
        T(test_ctlsock_peer_cred_is_ours),
        T(test_ctlsock_frame_carries_three_usable_fds),
        T(test_ctlsock_extra_fds_are_closed),
        T(test_ctlsock_peer_closing_mid_header_is_closed),
        T(test_ctlsock_peer_closing_mid_payload_is_closed),
        T(test_ctlsock_garbage_header_is_proto),
        T(test_ctlsock_wrong_version_is_version),
        T(test_ctlsock_recv_frame_times_out),
        T(test_ctlsock_send_to_closed_peer_is_closed),
        T(test_ctlsock_send_to_a_peer_that_stops_reading_ends_at_its_deadline),
        T(test_ctlsock_connect_to_a_full_backlog_ends_at_its_deadline),
        T(test_ctlsock_recv_on_empty_nonblocking_is_again),
        T(test_ctlsock_large_frame_survives_partial_io),
        T(test_ctlsock_truncated_fds_are_proto_and_closed),
        T(test_ctlsock_out_of_descriptors_is_emfile_and_stays_in_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
