/* server.h - the control socket server: accepts clients, checks their credentials,
 * decodes requests, answers them (with descriptors for ATTACH and SEGMENT_OPEN). */
#ifndef SHOALD_SERVER_H
#define SHOALD_SERVER_H

#include <signal.h>

#include "broker.h"
#include "ctlproto.h"

typedef struct server server_t;

/* Listen on the broker's socket path. 0 or a negative code (logged). */
int server_open(server_t **out, broker_t *b);
/* Serve until *stop becomes non-zero, which only on_wake or a request may set. wake_fd,
 * when >= 0, is polled too (the daemon's signals and tick): on_wake is called when it is
 * readable. Without wake_fd, *stop is looked at every second at least. While no consumer
 * group has members, nothing else wakes the loop. */
int server_run(server_t *s, volatile sig_atomic_t *stop, int wake_fd, void (*on_wake)(void *),
               void *arg);
void server_close(server_t *s);
/* Give the socket file (mode 0660) to allow.gid, so the group's members can open it, and
 * the runtime directory too when shoald owns it and they could not search it; warn about
 * any other directory on the way that they cannot search. Called by server_open and again
 * after every reload. 0 or -errno (logged). */
int server_set_access(server_t *s);
/* Counters for status lines. */
size_t server_client_count(const server_t *s);

/* A request whose response is sent later: consumer groups (group.c) park JoinGroup and
 * SyncGroup until the rebalance gets there, and commits until their batch is durable. */
typedef struct server_req {
    uint64_t conn_id; /* connections are numbered from 1, never reused */
    pid_t pid;
    uint16_t type;
    uint32_t seq;
} server_req_t;

/* Returned by a handler that answers with server_reply() instead (already, or later).
 * Until then the connection's later requests wait: responses go out in request order. */
#define SERVER_PARKED 1

/* Answer a parked request: status, a detail (NULL: shoal_strerror(status) when failing)
 * and, on status 0, the response fields in body (may be NULL). Dropped quietly when the
 * connection has closed (or is closing) meanwhile. Never waits for the client: what its
 * socket does not take waits in the connection's output queue, behind earlier replies; a
 * connection this fails is closed by the loop, not here. The requests that waited behind
 * it run after the current pass of the server loop. */
void server_reply(server_t *s, const server_req_t *req, int status, const char *detail,
                  const ctl_writer_t *body);

#endif
