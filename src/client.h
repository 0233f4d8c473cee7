/* client.h - the control connection shared by producers and consumers (internal). */
#ifndef SHOAL_CLIENT_H
#define SHOAL_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "ctlproto.h"
#include "ring.h"

/* A response: its payload reader and the descriptors that came with it. Descriptors the
 * caller keeps must be set to -1 in fds before client_reply_release(). */
typedef struct client_reply {
    uint8_t *payload;
    ctl_reader_t r;
    int fds[CTL_MAX_FDS];
    size_t nfds;
} client_reply_t;

/* The user a client requires its daemon to run as (shoal_client_options_t.daemon_uid, or
 * $SHOAL_DAEMON_USER), checked at every connect before anything is sent. */
typedef struct client_daemon_user {
    bool check;
    uid_t uid;
    char what[96]; /* for messages: "uid 998 ($SHOAL_DAEMON_USER=shoal)" */
} client_daemon_user_t;

struct shoal_client {
    int fd;
    pthread_mutex_t mu; /* one request/response exchange at a time */
    uint32_t seq;
    /* A request sent on fd whose response has not been read (late_seq 0: none): the
     * connection's HELLO, or a call's that gave up waiting. shoald answers a connection in
     * order, so the next frame answers it, and the next call reads it first. late_frame is
     * a copy of a late segment lookup, whose answer may serve the same lookup again. */
    uint32_t late_seq;
    uint16_t late_type;
    uint8_t *late_frame;
    size_t late_len;
    /* The answer to a late segment lookup that a call for another request read first: kept,
     * with its request (kept_frame NULL: none), for the call that asks the same again. */
    uint8_t *kept_frame;
    size_t kept_len;
    client_reply_t kept;
    char socket_path[108]; /* what to connect to: absolute, when it fits (client_open) */
    char path_given[108];  /* the path as the application gave it, for messages */
    char instance[64];
    int32_t timeout_ms; /* how long a call waits for shoald (shoal_client_options_t) */
    int32_t seen_pid;   /* this process's pid as shoald sees it (-1: it cannot see it) */
    uint32_t forks;     /* shoal__forks at open: another value, inherited through fork() */
    int32_t opener;     /* the pid that opened it */
    client_daemon_user_t daemon_user;
    /* The application's reference (until shoal_client_close) and one per producer and
     * consumer open on it: the last to go closes the connection and frees c. */
    atomic_uint refs;
};

/* A producer or consumer opened on c holds it until it closes (client_release). */
void client_hold(shoal_client_t *c);
void client_release(shoal_client_t *c);

/* Send the frame begun in w (ctl_frame_begin) and wait for its response, c->timeout_ms at
 * most.
 * Returns the response status: 0 with rep ready to read, or a negative code (rep
 * released). SHOAL_ETIMEDOUT when shoald did not answer in time: the request may still be
 * carried out, and its late response is read (and dropped) by the next call. */
int client_call(shoal_client_t *c, ctl_writer_t *w, client_reply_t *rep);
/* client_call() that waits until deadline_ns (shoal__mono_ns()) at most, for everything:
 * another thread's call, a response still due, the handshake of a new connection. */
int client_call_until(shoal_client_t *c, ctl_writer_t *w, client_reply_t *rep, int64_t deadline_ns);
void client_reply_release(client_reply_t *rep);
/* Receive the next response on c's connection (header into *got, rep ready to read) if it
 * begins to arrive by deadline_ns (c->mu held, or c a group consumer's own connection): 0;
 * SHOAL_ETIMEDOUT when none has (nothing was read, the stream is in step); shoald's word
 * before it closes the connection (a response to no request) as its status and detail; or
 * a failure, after which the connection is closed, but for -ENOMEM and -EMFILE (the frame
 * was read whole: ctlsock.h). shoald writes each response whole, so one that has begun has
 * its rest on the way. */
int client_recv(shoal_client_t *c, ctl_header_t *got, client_reply_t *rep, int64_t deadline_ns);
/* When a call on c made now stops waiting for shoald's answer (shoal__mono_ns()). */
int64_t client_deadline(const shoal_client_t *c);

/* When an earlier call found the connection broken (the daemon restarted), connect again
 * and say hello; when the hello is still unanswered, wait for it. A no-op on a live
 * connection. 0 or the connect/hello error (SHOAL_ETIMEDOUT after c->timeout_ms). client_call()
 * does this by itself; group consumers call it to learn early whether the daemon is back. */
int client_reconnect(shoal_client_t *c);

/* For a group consumer's own connection, whose responses it reads itself: a client that is
 * not connected yet (socket_path resolved as shoal_client_open() does; -ENOMEM,
 * -ENAMETOOLONG), ... */
int client_new(const char *socket_path, shoal_client_t **out);
/* ... connecting it and sending HELLO by deadline_ns without waiting for the answer (c->fd
 * < 0 before): 0 with *seq the HELLO's sequence number, or the connect/send error (not
 * connected; SHOAL_ETIMEDOUT when the daemon's backlog stayed full) ... */
int client_hello_send(shoal_client_t *c, uint32_t *seq, int64_t deadline_ns);
/* ... and the answer's fields after its status, in r: 0, SHOAL_EPROTO, or SHOAL_ENODAEMON
 * for a daemon of another instance than the one the client knew. */
int client_hello_check(shoal_client_t *c, ctl_reader_t *r);

/* Map partition `partition` of topic (read-only unless writable). cfg may be NULL. */
int client_attach(shoal_client_t *c, const char *topic, int32_t partition, bool writable,
                  ring_t *ring, shoal_topic_config_t *cfg);
/* The same, waiting until deadline_ns at most (client_call_until): SHOAL_ETIMEDOUT when
 * shoald has not answered by then; the same attach asked again is served by the late
 * answer when it has come. */
int client_attach_until(shoal_client_t *c, const char *topic, int32_t partition, bool writable,
                        ring_t *ring, shoal_topic_config_t *cfg, int64_t deadline_ns);
/* The attach that gave up is not asked again: its late answer, when it comes, is dropped
 * (kept, it could map a ring that a topic deleted since left behind). Does not wait: with
 * another thread's call in progress, that call reads the late answer first. */
void client_forget_late_attach(shoal_client_t *c);

/* A read-only mapping of the disk segment holding offset. */
typedef struct client_segment {
    const uint8_t *data;
    size_t len;
    int64_t base;
    uint64_t pos; /* byte position of the batch holding the requested offset */
} client_segment_t;

/* The earliest offset of a partition whose record timestamp is >= ts_ms, or its log end
 * offset when none is (CTL_OFFSET_FOR_TIME). 0 with *offset, or a negative code. */
int client_offset_for_time(shoal_client_t *c, const char *topic, int32_t partition, int64_t ts_ms,
                           int64_t *offset);

int client_segment_open(shoal_client_t *c, const char *topic, int32_t partition, int64_t offset,
                        client_segment_t *seg);
/* The same, waiting until deadline_ns at most (client_call_until): SHOAL_ETIMEDOUT when
 * shoald has not answered by then. Asking the same again later may be answered by the
 * late response of this one. */
int client_segment_open_until(shoal_client_t *c, const char *topic, int32_t partition,
                              int64_t offset, int64_t deadline_ns, client_segment_t *seg);
void client_segment_close(client_segment_t *seg);

#endif
