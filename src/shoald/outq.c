/* outq.c - a connection's output queue: what a non-blocking socket did not take yet.
 *
 * DESIGN: the daemon's server loop must never wait for a client to read, so a reply goes
 * out with one sendmsg() that does not block (ctlsock_send_nowait), and whatever the socket
 * did not take waits here until the loop sees the socket writable again. The common case
 * copies nothing: a reply sent whole never touches the queue, and when one is cut short
 * the queue takes the writer's buffer as it is. Bytes are only copied for a frame that
 * comes while others still wait (the caller keeps such frames rare: see server.c).
 *
 * Descriptors (SCM_RIGHTS) travel with the first byte of a sendmsg(), and a client takes
 * those that come during a frame's read as that frame's, so a frame's descriptors must go
 * with its own first byte: a sendmsg() that takes nothing (-EAGAIN) leaves them to the
 * queue, which keeps them open, owned, beside that first byte at its head, and hands them
 * to the next sendmsg() from there; the first one that takes any byte took them too, and
 * they are closed then. For the same reason descriptors are only accepted while the queue
 * is empty: a set behind queued bytes would need a place in the middle of the queue, and
 * the server never asks for one (a connection with output waiting runs no requests). No
 * descriptor leaks: outq_release() closes any still held, and every failure closes those
 * it was given.
 *
 * The buffer is freed as soon as the queue empties, so a connection that is not behind
 * holds no memory here, whatever size its last backlog grew to. */
#include "outq.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "ctlsock.h"
#include "util.h"

#define OUTQ_MIN_CAP 4096

void outq_init(outq_t *q)
{
    q->buf = NULL;
    q->head = 0;
    q->len = 0;
    q->cap = 0;
    q->nfds = 0;
    q->moved_ns = 0;
}

static void close_fds(const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

void outq_release(outq_t *q)
{
    shoal__free(q->buf);
    close_fds(q->fds, q->nfds);
    outq_init(q);
}

/* The socket took n bytes from the head, and with the first of them the descriptors. */
static void outq_consume(outq_t *q, size_t n)
{
    close_fds(q->fds, q->nfds);
    q->nfds = 0;
    q->head += n;
    q->moved_ns = shoal__mono_ns();
    if (q->head == q->len) {
        shoal__free(q->buf);
        outq_init(q);
    }
}

int outq_flush(outq_t *q, int fd)
{
    while (!outq_is_empty(q)) {
        ssize_t n = ctlsock_send_nowait(fd, q->buf + q->head, outq_bytes(q), q->fds, q->nfds);
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        outq_consume(q, (size_t)n);
    }
    return 0;
}

/* Copy n bytes behind those waiting (moving these to the front first). 0 or -ENOMEM. */
static int outq_append(outq_t *q, const uint8_t *p, size_t n)
{
    size_t cap = q->cap ? q->cap : OUTQ_MIN_CAP;
    uint8_t *buf;

    if (q->head > 0) {
        memmove(q->buf, q->buf + q->head, outq_bytes(q));
        q->len -= q->head;
        q->head = 0;
    }
    if (n > SIZE_MAX / 2 - q->len)
        return SHOAL_ERR(-ENOMEM, "output queue: %zu bytes behind %zu", n, q->len);
    while (cap < q->len + n)
        cap *= 2;
    if (cap > q->cap) {
        if (!(buf = shoal__realloc(q->buf, cap)))
            return SHOAL_ERR(-ENOMEM, "output queue: no memory for %zu bytes", q->len + n);
        q->buf = buf;
        q->cap = cap;
    }
    memcpy(q->buf + q->len, p, n);
    q->len += n;
    return 0;
}

int outq_send(outq_t *q, int fd, ctl_writer_t *w, const int *fds, size_t nfds)
{
    size_t sent = 0;
    ssize_t n = 0;

    if (nfds > CTL_MAX_FDS || (nfds > 0 && w->len == 0)) {
        close_fds(fds, nfds);
        return SHOAL_ERR(-EINVAL, "output queue: %zu fds with %zu bytes", nfds, w->len);
    }
    if (!outq_is_empty(q)) {
        close_fds(fds, nfds);
        if (nfds > 0)
            return SHOAL_ERR(-EBUSY, "output queue: %zu fds behind %zu bytes waiting", nfds,
                             outq_bytes(q));
        return w->len ? outq_append(q, w->buf, w->len) : 0;
    }
    if (w->len > 0)
        n = ctlsock_send_nowait(fd, w->buf, w->len, fds, nfds);
    if (n < 0 && n != -EAGAIN) {
        close_fds(fds, nfds);
        return (int)n;
    }
    if (n > 0) { /* the descriptors went with the first byte */
        close_fds(fds, nfds);
        nfds = 0;
        sent = (size_t)n;
    }
    if (sent == w->len)
        return 0;
    /* The rest waits: take the writer's buffer as it is rather than copy it. */
    q->buf = w->buf;
    q->cap = w->cap;
    q->head = sent;
    q->len = w->len;
    for (size_t i = 0; i < nfds; i++)
        q->fds[i] = fds[i];
    q->nfds = nfds;
    q->moved_ns = shoal__mono_ns();
    ctl_writer_init(w);
    return 0;
}
