/* outq.h - a connection's output queue: the bytes of frames (and the descriptors of one)
 * that a non-blocking socket did not take yet, written when it has room again. */
#ifndef SHOALD_OUTQ_H
#define SHOALD_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctlproto.h"

typedef struct outq {
    uint8_t *buf; /* shoal__malloc'd; bytes [head, len) wait; NULL when empty */
    size_t head;
    size_t len;
    size_t cap;
    /* Descriptors that go with buf[head], the first byte of the frame they belong to: the
     * socket took none of it yet. Owned by the queue. */
    int fds[CTL_MAX_FDS];
    size_t nfds;
    int64_t moved_ns; /* when bytes last went out, or the queue last filled (monotonic) */
} outq_t;

void outq_init(outq_t *q);
/* Drop what waits: free the bytes, close the descriptors. q may be used again. */
void outq_release(outq_t *q);

static inline bool outq_is_empty(const outq_t *q)
{
    return q->head == q->len;
}

static inline size_t outq_bytes(const outq_t *q)
{
    return q->len - q->head;
}

/* Send the frame in w on fd (non-blocking) after what waits in q, with nfds descriptors
 * attached to its first byte: what the socket takes now is written, the rest waits in q.
 * Takes ownership of the descriptors in every case: they are closed once the kernel has
 * them, by outq_release(), or at once when this fails. May take w's buffer instead of
 * copying it (w is then as after ctl_writer_init()). Descriptors may come only while q is
 * empty (-EBUSY otherwise): a frame's descriptors go with its first byte, and the queue
 * keeps one set, at its head.
 * Returns 0 (sent, or queued), SHOAL_ECLOSED (peer gone), -ENOMEM (the rest could not be
 * queued), -EBUSY, or -errno. After a failure the connection is unusable (part of a frame
 * may have gone out) and q holds what it held. */
int outq_send(outq_t *q, int fd, ctl_writer_t *w, const int *fds, size_t nfds);

/* Write what waits in q, as much as fd takes now; the buffer is freed once empty.
 * 0 (even when nothing moved), SHOAL_ECLOSED (peer gone), or -errno. */
int outq_flush(outq_t *q, int fd);

#endif
