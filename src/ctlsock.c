/* ctlsock.c - the control socket: listening and connecting on a Unix stream socket,
 * sending and receiving ctlproto.h frames with file descriptors (SCM_RIGHTS), and reading
 * the peer's credentials (SO_PEERCRED).
 *
 * DESIGN: descriptors are capabilities, so none may leak on any path. Every descriptor we
 * receive is made close-on-exec by the kernel (MSG_CMSG_CLOEXEC) so a fork+exec elsewhere
 * in the process never inherits it; descriptors beyond the caller's array are closed at
 * once; and a frame that fails half-way closes the descriptors it had collected. The
 * sender attaches descriptors to the first sendmsg() only, i.e. to the frame's first
 * byte; a stream socket may deliver them with any read that covers that byte, which is
 * why the receiver collects them on every recvmsg(), header or payload. A recvmsg() whose
 * control data was truncated (MSG_CTRUNC) has lost capabilities the peer meant to give us,
 * but its bytes are whole: either the process ran out of descriptor slots (the kernel
 * installed fewer than our buffer holds: -EMFILE) or the peer sent more than CTL_MAX_FDS
 * (-EPROTO). ctlsock_recv_frame() then reads the rest of the frame, closes what did arrive
 * and fails with that code, so the stream stays in step and a caller out of descriptors
 * can go on once it has some again. After its other failures (but -ENOMEM, which reads the
 * payload away too) the position in the stream is unknown: the caller closes the
 * connection.
 *
 * Two ways to send: ctlsock_send() writes a whole frame, waiting for room when the socket
 * is full until the caller's deadline, for clients, whose calls wait for their answer
 * anyway but no longer than they were given (a stopped daemon reads nothing: a blocking
 * send would wait for ever); ctlsock_send_nowait() makes one sendmsg() that never waits
 * and says how much went, for the daemon, which must not wait for any one client: it keeps
 * the rest, and the descriptors when no byte went, in its output queue
 * (src/shoald/outq.c). Both send with MSG_DONTWAIT, so a socket's blocking mode never
 * decides how long a send takes.
 *
 * A stale socket file (the daemon died without unlinking it) is detected by connecting to
 * it: refused means nobody listens, so the file is replaced. Two daemons racing through
 * that check could both replace it; the daemon's instance lock, not this file, is what
 * keeps one daemon per instance. */
#include "ctlsock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

typedef union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * CTL_MAX_FDS)];
} fd_cmsg_buf_t;

/* ------------------------------------------------------------------ addresses */

static int make_addr(const char *path, struct sockaddr_un *sa)
{
    size_t n = strlen(path);

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (n == 0)
        return SHOAL_ERR(SHOAL_EINVAL, "control socket: empty path");
    if (n >= sizeof(sa->sun_path))
        return SHOAL_ERR(-ENAMETOOLONG, "control socket path too long (%zu bytes, max %zu): %s", n,
                         sizeof(sa->sun_path) - 1, path);
    memcpy(sa->sun_path, path, n + 1);
    return 0;
}

/* ------------------------------------------------------------------ listen / connect */

/* 1 when something accepts connections at sa, 0 when the file is a socket nobody listens
 * on (stale), -errno when it is not a socket or cannot be probed. */
static int probe_live(const struct sockaddr_un *sa)
{
    struct stat st;
    int fd, rc;

    if (lstat(sa->sun_path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EADDRINUSE;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS)
        rc = 1; /* accepted, or a live listener with a full backlog */
    else
        rc = errno == ECONNREFUSED ? 0 : -errno;
    close(fd);
    return rc;
}

int ctlsock_path_check(const char *path)
{
    struct sockaddr_un sa;
    int rc = make_addr(path, &sa);

    if (rc < 0)
        return rc;
    if ((rc = probe_live(&sa)) > 0)
        return SHOAL_ERR(-EADDRINUSE,
                         "%s: a daemon already listens there (another instance with the same "
                         "runtime directory?)",
                         path);
    if (rc == -EADDRINUSE)
        return SHOAL_ERR(rc, "%s exists and is not a socket", path);
    return 0; /* nothing there, a stale socket, or a directory to be made (it says why not) */
}

static int bind_replacing_stale(int fd, const struct sockaddr_un *sa)
{
    int live;

    if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
        return 0;
    if (errno != EADDRINUSE)
        return -errno;
    live = probe_live(sa);
    if (live != 0)
        return live > 0 ? -EADDRINUSE : live;
    if (unlink(sa->sun_path) < 0 && errno != ENOENT)
        return -errno;
    return bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? 0 : -errno;
}

/* Permissions are set before listen(): until then a connect is refused, so nobody can get
 * in through the umask's mode in between. */
int ctlsock_listen(const char *path)
{
    struct sockaddr_un sa;
    int fd, rc;

    rc = make_addr(path, &sa);
    if (rc < 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return SHOAL_ERR(-errno, "control socket: socket(): %s", strerror(errno));
    rc = bind_replacing_stale(fd, &sa);
    if (rc < 0) {
        rc = SHOAL_ERR(rc, "control socket: cannot bind %s: %s", path, strerror(-rc));
        goto out_close;
    }
    /* Not through a link: whoever could put one in its place would have its target chmoded. */
    if (fchmodat(AT_FDCWD, path, 0660, AT_SYMLINK_NOFOLLOW) < 0 || listen(fd, SOMAXCONN) < 0) {
        rc = SHOAL_ERR(-errno, "control socket: %s: %s", path, strerror(errno));
        goto out_unlink;
    }
    return fd;

out_unlink:
    unlink(path);
out_close:
    close(fd);
    return rc;
}

int ctlsock_file_of(const char *path, ctlsock_file_t *id)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return -errno;
    if (!S_ISSOCK(st.st_mode))
        return -ENOTSOCK;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    return 0;
}

bool ctlsock_file_is(const char *path, const ctlsock_file_t *id)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == id->dev &&
           st.st_ino == id->ino;
}

bool ctlsock_unlink(const char *path, const ctlsock_file_t *id)
{
    return ctlsock_file_is(path, id) && unlink(path) == 0;
}

/* Wait until fd is ready for events (POLLIN, POLLOUT), or the peer hung up, or
 * deadline_ns (-1: none) passes; a deadline already passed still looks once. 0,
 * SHOAL_ETIMEDOUT (no detail set), or -errno. */
static int wait_ready(int fd, short events, int64_t deadline_ns)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int timeout_ms = -1;
    int n;

    for (;;) {
        if (deadline_ns >= 0) {
            int64_t left_ns = deadline_ns - shoal__mono_ns();
            left_ns = SHOAL_MAX(left_ns, (int64_t)0);
            /* Rounded up, so that a wait below a millisecond does not spin. */
            timeout_ms = (int)SHOAL_MIN((left_ns + 999999) / 1000000, (int64_t)INT32_MAX);
        }
        n = poll(&pfd, 1, timeout_ms);
        if (n > 0)
            return 0;
        if (n == 0 && shoal__mono_ns() >= deadline_ns)
            return SHOAL_ETIMEDOUT;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/* A listener whose backlog is full (a daemon stopped or too busy to accept) refuses a
 * non-blocking connect with EAGAIN and says nothing when it has room again: try again
 * this often until the deadline. */
#define CONNECT_RETRY_NS 2000000

/* connect() fd to sa by deadline_ns: 0 or -errno (-EAGAIN: still no room at the deadline). */
static int connect_until(int fd, const struct sockaddr_un *sa, int64_t deadline_ns)
{
    for (;;) {
        struct timespec pause = {.tv_nsec = CONNECT_RETRY_NS};
        int64_t now;
        if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        now = shoal__mono_ns();
        if (deadline_ns >= 0 && now >= deadline_ns)
            return -EAGAIN;
        if (deadline_ns >= 0 && deadline_ns - now < CONNECT_RETRY_NS)
            pause.tv_nsec = (long)(deadline_ns - now);
        nanosleep(&pause, NULL);
    }
}

/* Whether path names something other than a socket (a directory, a file). */
static bool path_is_no_socket(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISSOCK(st.st_mode);
}

int ctlsock_connect(const char *path, int64_t deadline_ns)
{
    struct sockaddr_un sa;
    int fd, rc;

    rc = make_addr(path, &sa);
    if (rc < 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return SHOAL_ERR(-errno, "control socket: socket(): %s", strerror(errno));
    rc = connect_until(fd, &sa, deadline_ns);
    if (rc == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0)
        return fd;
    rc = rc < 0 ? rc : -errno;
    close(fd);
    if (rc == -ENOENT || rc == -ECONNREFUSED)
        return SHOAL_ERR(SHOAL_ENODAEMON, "no shoald listening at %s (%s)", path,
                         path_is_no_socket(path) ? "it is not a socket" : strerror(-rc));
    if (rc == -EAGAIN)
        return SHOAL_ERR(SHOAL_ETIMEDOUT,
                         "shoald at %s did not take the connection in time: its backlog is full "
                         "(stopped or overloaded?)",
                         path);
    return SHOAL_ERR(rc, "cannot connect to %s: %s", path, strerror(-rc));
}

/* ------------------------------------------------------------------ send */

/* One sendmsg() of buf (flags: 0 or MSG_DONTWAIT), with the descriptors when nfds > 0,
 * again after EINTR. Bytes sent or -errno. */
static ssize_t send_some(int fd, const uint8_t *buf, size_t len, const int *fds, size_t nfds,
                         int flags)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    fd_cmsg_buf_t cbuf;
    struct cmsghdr *cm;
    ssize_t n;

    if (nfds > 0) {
        memset(&cbuf, 0, sizeof(cbuf));
        msg.msg_control = cbuf.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    do {
        n = sendmsg(fd, &msg, MSG_NOSIGNAL | flags);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

int ctlsock_send(int fd, const void *buf, size_t len, const int *fds, size_t nfds,
                 int64_t deadline_ns)
{
    const uint8_t *p = buf;
    size_t left = len;

    if (nfds > CTL_MAX_FDS || (nfds > 0 && len == 0))
        return SHOAL_ERR(-EINVAL, "control socket: %zu fds with %zu bytes", nfds, len);
    while (left > 0) {
        ssize_t n = send_some(fd, p, left, fds, nfds, MSG_DONTWAIT);
        if (n == -EAGAIN || n == -EWOULDBLOCK) {
            int rc = wait_ready(fd, POLLOUT, deadline_ns);
            if (rc == SHOAL_ETIMEDOUT && left == len)
                return SHOAL_ERR(rc, "control socket: the peer did not read in time");
            if (rc == SHOAL_ETIMEDOUT)
                return SHOAL_ERR(-ETIMEDOUT,
                                 "control socket: the peer stopped reading %zu bytes into a "
                                 "%zu-byte frame",
                                 len - left, len);
            if (rc < 0)
                return SHOAL_ERR(rc, "control socket: poll: %s", strerror(-rc));
            continue;
        }
        if (n == -EPIPE || n == -ECONNRESET)
            return SHOAL_ERR(SHOAL_ECLOSED, "control socket: peer closed the connection");
        if (n < 0)
            return SHOAL_ERR((int)n, "control socket: sendmsg: %s", strerror((int)-n));
        nfds = 0; /* the kernel took the descriptors with the first byte */
        p += n;
        left -= (size_t)n;
    }
    return 0;
}

ssize_t ctlsock_send_nowait(int fd, const void *buf, size_t len, const int *fds, size_t nfds)
{
    ssize_t n;

    if (nfds > CTL_MAX_FDS || len == 0)
        return SHOAL_ERR(-EINVAL, "control socket: %zu fds with %zu bytes", nfds, len);
    n = send_some(fd, buf, len, fds, nfds, MSG_DONTWAIT);
    if (n == -EWOULDBLOCK)
        return -EAGAIN;
    if (n == -EPIPE || n == -ECONNRESET)
        return SHOAL_ERR(SHOAL_ECLOSED, "control socket: peer closed the connection");
    if (n < 0)
        return SHOAL_ERR((int)n, "control socket: sendmsg: %s", strerror((int)-n));
    return n;
}

/* ------------------------------------------------------------------ receive */

static void close_fds(int *fds, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        close(fds[i]);
}

/* Store or close the descriptors of every SCM_RIGHTS message in msg. Returns how many
 * came. */
static size_t collect_fds(struct msghdr *msg, int *fds, size_t *nfds, size_t max_fds)
{
    struct cmsghdr *cm;
    size_t got = 0;

    for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
        size_t count;
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        got += count;
        for (size_t i = 0; i < count; i++) {
            int rfd;
            memcpy(&rfd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (fds && *nfds < max_fds)
                fds[(*nfds)++] = rfd;
            else
                close(rfd);
        }
    }
    return got;
}

/* One recvmsg() as ctlsock_recv(), but descriptors lost to MSG_CTRUNC do not fail it: the
 * bytes are returned and *lost, when still 0, says why they were lost (-EMFILE: the
 * process is out of descriptors; -EPROTO: more than CTL_MAX_FDS came). */
static ssize_t recv_some(int fd, void *buf, size_t cap, int *fds, size_t *nfds, size_t max_fds,
                         int *lost)
{
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    fd_cmsg_buf_t cbuf;
    size_t got;
    ssize_t n;

    msg.msg_control = cbuf.buf;
    msg.msg_controllen = sizeof(cbuf.buf);
    do {
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    got = collect_fds(&msg, fds, nfds, max_fds);
    /* The buffer holds CTL_MAX_FDS: fewer means the kernel could not install them. */
    if ((msg.msg_flags & MSG_CTRUNC) && *lost == 0)
        *lost = got < CTL_MAX_FDS ? -EMFILE : -EPROTO;
    return n;
}

/* The failure for descriptors lost as recv_some() found: lost, with the detail. */
static int lost_fds_err(int lost)
{
    if (lost == -EMFILE)
        return SHOAL_ERR(-EMFILE, "control socket: the process ran out of file descriptors "
                                  "(RLIMIT_NOFILE), so descriptors shoald sent were lost");
    return SHOAL_ERR(lost,
                     "control socket: more than %d descriptors came with a frame "
                     "(MSG_CTRUNC)",
                     CTL_MAX_FDS);
}

ssize_t ctlsock_recv(int fd, void *buf, size_t cap, int *fds, size_t *nfds, size_t max_fds)
{
    size_t none = 0, start;
    int lost = 0;
    ssize_t n;

    if (!nfds) {
        nfds = &none;
        max_fds = 0;
    }
    start = *nfds;
    n = recv_some(fd, buf, cap, fds, nfds, max_fds, &lost);
    if (n >= 0 && lost < 0) {
        close_fds(fds, start, *nfds);
        *nfds = start;
        return lost_fds_err(lost);
    }
    return n;
}

int ctlsock_wait_readable(int fd, int64_t deadline_ns)
{
    int rc = wait_ready(fd, POLLIN, deadline_ns);

    return rc == SHOAL_ETIMEDOUT ? SHOAL_ERR(rc, "control socket: no frame in time") : rc;
}

/* Read exactly len bytes, collecting descriptors on the way; descriptors lost set *lost
 * (recv_some) without stopping the read. */
static int recv_exact(int fd, uint8_t *buf, size_t len, int *fds, size_t *nfds, size_t max_fds,
                      int64_t deadline_ns, int *lost)
{
    size_t got = 0;

    while (got < len) {
        int rc = ctlsock_wait_readable(fd, deadline_ns);
        ssize_t n;
        if (rc < 0)
            return rc;
        n = recv_some(fd, buf + got, len - got, fds, nfds, max_fds, lost);
        if (n == 0 || n == -ECONNRESET)
            return SHOAL_ERR(SHOAL_ECLOSED, "control socket: peer closed after %zu of %zu bytes",
                             got, len);
        if (n == -EAGAIN)
            continue;
        if (n < 0)
            return (int)n;
        got += (size_t)n;
    }
    return 0;
}

/* Receive and drop len bytes. 0 or recv_exact's error. */
static int recv_discard(int fd, size_t len, int *fds, size_t *nfds, size_t max_fds,
                        int64_t deadline_ns, int *lost)
{
    uint8_t sink[4096];
    while (len > 0) {
        size_t n = len < sizeof(sink) ? len : sizeof(sink);
        int rc = recv_exact(fd, sink, n, fds, nfds, max_fds, deadline_ns, lost);
        if (rc < 0)
            return rc;
        len -= n;
    }
    return 0;
}

/* *nfds is where this frame's descriptors start (normally 0); on failure it is restored
 * and every descriptor received for this frame is closed. nfds may be NULL when no
 * descriptors are expected: any that arrive are closed. */
int ctlsock_recv_frame(int fd, ctl_header_t *h, uint8_t **payload, int *fds, size_t *nfds,
                       size_t max_fds, int timeout_ms)
{
    int64_t deadline_ns = timeout_ms < 0 ? -1 : shoal__mono_ns() + (int64_t)timeout_ms * 1000000;
    uint8_t hdr[CTL_HEADER_BYTES];
    uint8_t *buf = NULL;
    size_t none = 0, start;
    int lost = 0;
    int rc;

    if (!nfds) {
        nfds = &none;
        max_fds = 0;
    }
    start = *nfds;
    *payload = NULL;
    rc = recv_exact(fd, hdr, sizeof(hdr), fds, nfds, max_fds, deadline_ns, &lost);
    if (rc < 0)
        goto out_close_fds;
    rc = ctl_header_decode(hdr, h);
    if (rc < 0)
        goto out_close_fds;
    buf = shoal__malloc(h->len ? h->len : 1);
    if (!buf) {
        /* Read the payload away so the stream stays in step for the next frame. */
        rc = recv_discard(fd, h->len, fds, nfds, max_fds, deadline_ns, &lost);
        if (rc == 0 && lost == 0)
            rc = SHOAL_ERR(-ENOMEM, "control socket: no memory for a %u-byte frame",
                           (unsigned)h->len);
        goto out_lost;
    }
    rc = recv_exact(fd, buf, h->len, fds, nfds, max_fds, deadline_ns, &lost);
    if (rc == 0 && lost == 0) {
        *payload = buf;
        return 0;
    }
    shoal__free(buf);
out_lost:
    /* The whole frame was read: the stream is in step, but what it gave is incomplete. */
    if (rc == 0)
        rc = lost_fds_err(lost);
out_close_fds:
    if (fds && *nfds > start)
        close_fds(fds, start, *nfds);
    *nfds = start;
    return rc;
}

int ctlsock_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return SHOAL_ERR(-errno, "control socket: SO_PEERCRED: %s", strerror(errno));
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}
