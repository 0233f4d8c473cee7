/* group.h - the consumer group coordinator inside shoald (Kafka's group protocol on the
 * control socket): membership, generations, rebalances, committed offsets. */
#ifndef SHOALD_GROUP_H
#define SHOALD_GROUP_H

#include "broker.h"
#include "ctlproto.h"
#include "server.h"

typedef struct group_coord group_coord_t;

/* 0 or -ENOMEM. The coordinator answers parked requests through s. */
int group_coord_open(group_coord_t **out, server_t *s, broker_t *b);
void group_coord_close(group_coord_t *gc); /* NULL is allowed */

/* Handle a request of types CTL_GROUP_*: returns its status with the response fields in
 * body, or SERVER_PARKED when it will be answered later with server_reply(). */
int group_handle(group_coord_t *gc, const server_req_t *req, ctl_reader_t *r, ctl_writer_t *body);

/* A connection closed: its dynamic members leave at once (static ones wait for their
 * session timeout). */
void group_conn_closed(group_coord_t *gc, uint64_t conn_id);

/* Write the pending commits now and answer them (before a topic goes with its offsets). */
void group_commits_flush(group_coord_t *gc);
/* Committed offsets were deleted with their topic: forget each group left with neither
 * members nor offsets, as when its last member goes. */
void group_offsets_dropped(group_coord_t *gc);

/* Called after each pass of the server loop: writes the pending commits in one
 * transaction and answers them, expires members, ends overdue rebalance phases, notices
 * partition count changes. Returns how soon it must run again: GROUP_TICK_MS while a group
 * has members, else -1 (nothing is timed until a request comes). */
#define GROUP_TICK_MS 100
int group_tick(group_coord_t *gc, int64_t now_ns);

#endif
