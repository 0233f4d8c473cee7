/* ctlsock.h - the control socket: a Unix stream socket, frames of ctlproto.h, file
 * descriptors passed with SCM_RIGHTS, the peer's credentials from SO_PEERCRED. */
#ifndef SHOAL_CTLSOCK_H
#define SHOAL_CTLSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ctlproto.h"

/* Whether a daemon could listen at path: 0, or -EINVAL / -ENAMETOOLONG (it does not fit a
 * socket address), -EADDRINUSE (something listens there, or it is not a socket), with the
 * detail. A socket file nobody listens on is fine (ctlsock_listen replaces it), and so is
 * a directory that cannot be looked in (yet): making it says why it cannot be. */
int ctlsock_path_check(const char *path);

/* Bind and listen at path (mode 0660). A stale socket file with nobody listening is
 * replaced; a live one is -EADDRINUSE. Returns the listening fd (CLOEXEC, non-blocking)
 * or -errno / -ENAMETOOLONG. */
int ctlsock_listen(const char *path);

/* Which file a socket path is: a later daemon may replace it (after an operator removed
 * it), and the first must then leave the new one alone. */
typedef struct {
    dev_t dev;
    ino_t ino;
} ctlsock_file_t;
/* Record the file at path (just bound). 0 or -errno. */
int ctlsock_file_of(const char *path, ctlsock_file_t *id);
/* Whether path (not followed) is still the socket file id. */
bool ctlsock_file_is(const char *path, const ctlsock_file_t *id);
/* Unlink path if it is still the file id; false when it is gone or another file. */
bool ctlsock_unlink(const char *path, const ctlsock_file_t *id);

/* Connect to path by deadline_ns (monotonic, shoal__mono_ns(); -1: none). Returns a CLOEXEC
 * blocking fd, SHOAL_ENODAEMON when nothing listens there (no file, or connection refused),
 * SHOAL_ETIMEDOUT when the listener's backlog stayed full until the deadline (a daemon
 * stopped or too busy to accept), -ENAMETOOLONG, or -errno. */
int ctlsock_connect(const char *path, int64_t deadline_ns);

/* Send all of buf, with nfds descriptors attached to its first byte, by deadline_ns
 * (monotonic; -1: none). MSG_NOSIGNAL. On a full socket it waits for the peer to read, for
 * clients, whose calls wait anyway; the daemon, which must not, uses
 * ctlsock_send_nowait(). 0; SHOAL_ETIMEDOUT when the deadline passed before the peer took
 * any of it (the stream untouched, the descriptors still the caller's); -ETIMEDOUT when
 * it passed with the frame sent in part (the stream is torn: close it); SHOAL_ECLOSED
 * (peer gone); or -errno. */
int ctlsock_send(int fd, const void *buf, size_t len, const int *fds, size_t nfds,
                 int64_t deadline_ns);

/* One sendmsg() of buf that never waits, for the daemon's non-blocking sockets
 * (MSG_DONTWAIT): nfds descriptors go with buf's first byte, and with it only if at least
 * that byte is taken. Returns the bytes the socket took (> 0: the descriptors went with
 * them), -EAGAIN when it took none (the descriptors are still the caller's to send),
 * SHOAL_ECLOSED (peer gone), or -errno. len must be > 0. */
ssize_t ctlsock_send_nowait(int fd, const void *buf, size_t len, const int *fds, size_t nfds);

/* One recvmsg(): up to cap bytes into buf; received descriptors (made CLOEXEC) are stored
 * in fds[*nfds..max_fds) and *nfds advanced; descriptors beyond max_fds are closed.
 * Returns bytes read (> 0), 0 at end of file, -EAGAIN on a non-blocking socket with
 * nothing to read, or -errno; -EMFILE / -EPROTO when descriptors were lost (MSG_CTRUNC:
 * the process is out of them, or more than CTL_MAX_FDS came), after closing the ones that
 * came: the bytes read are lost with them, so the caller closes the connection. */
ssize_t ctlsock_recv(int fd, void *buf, size_t cap, int *fds, size_t *nfds, size_t max_fds);

/* Wait until fd is readable (a frame has begun to arrive, or the peer closed) or
 * deadline_ns (monotonic, shoal__mono_ns(); -1: none) passes; a deadline already passed
 * still looks once. 0, SHOAL_ETIMEDOUT (nothing read: the stream is untouched), or -errno. */
int ctlsock_wait_readable(int fd, int64_t deadline_ns);

/* Blocking: receive one whole frame (header decoded into *h, payload into *payload, a
 * shoal__malloc'd buffer the caller frees) with any descriptors. Returns 0, SHOAL_ECLOSED
 * on end of file, SHOAL_EPROTO / SHOAL_EVERSION for a bad header, SHOAL_ETIMEDOUT when
 * timeout_ms (-1: none) passes, -ENOMEM, -EMFILE (the process ran out of descriptors and
 * some that came were lost), -EPROTO (more than CTL_MAX_FDS came), -errno. On failure
 * received fds are closed. After -ENOMEM, -EMFILE and -EPROTO the whole frame was read and
 * the stream is in step for the next; after the others its position is unknown. */
int ctlsock_recv_frame(int fd, ctl_header_t *h, uint8_t **payload, int *fds, size_t *nfds,
                       size_t max_fds, int timeout_ms);

/* The connected peer's pid, uid and gid. 0 or -errno. */
int ctlsock_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

#endif
