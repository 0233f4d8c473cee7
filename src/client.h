/* client.h - the control connection shared by producers and consumers (internal). */
#ifndef SHOAL_CLIENT_H
#define SHOAL_CLIENT_H

#include <pthread.h>

#include "ctlproto.h"
#include "ring.h"

struct shoal_client {
    int fd;
    pthread_mutex_t mu; /* one request/response exchange at a time */
    uint32_t seq;
    char socket_path[108]; /* what to connect to: absolute, when it fits (client_open) */
    char path_given[108];  /* the path as the application gave it, for messages */
    char instance[64];
    uint32_t forks; /* shoal__forks at open: another value, inherited through fork() */
    int32_t opener; /* the pid that opened it */
};

/* A response: its payload reader and the descriptors that came with it. Descriptors the
 * caller keeps must be set to -1 in fds before client_reply_release(). */
typedef struct client_reply {
    uint8_t *payload;
    ctl_reader_t r;
    int fds[CTL_MAX_FDS];
    size_t nfds;
} client_reply_t;

/* Send the frame begun in w (ctl_frame_begin) and wait for its response. Returns the
 * response status: 0 with rep ready to read, or a negative code (rep released). */
int client_call(shoal_client_t *c, ctl_writer_t *w, client_reply_t *rep);
void client_reply_release(client_reply_t *rep);

/* When an earlier call found the connection broken (the daemon restarted), connect again
 * and say hello; a no-op on a live connection. 0 or the connect/hello error. client_call()
 * does this by itself; group consumers call it to learn early whether the daemon is back. */
int client_reconnect(shoal_client_t *c);

/* Map partition `partition` of topic (read-only unless writable). cfg may be NULL. */
int client_attach(shoal_client_t *c, const char *topic, int32_t partition, bool writable,
                  ring_t *ring, shoal_topic_config_t *cfg);

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
void client_segment_close(client_segment_t *seg);

#endif
