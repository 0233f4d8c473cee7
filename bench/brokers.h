/* brokers.h - the single-host brokers users pick today, measured in the same run as shoal
 * for context: Redis Streams (redis.c), NATS JetStream (nats.c) and RabbitMQ streams
 * (rabbitmq.c), each through its own server started by the driver.
 *
 * DESIGN: each role is one process speaking the broker's protocol, written here in a few
 * functions rather than linking a client library, so the bench needs only the servers.
 * The clients do what a well-written one does: batches go out in one write, a consumer
 * asks for what the server has in as few requests as the protocol allows, and a
 * ping-pong side sends its reply and its next request together where it can. The
 * servers keep their streams in memory where they can (RabbitMQ's are always files), as
 * the shoal scenarios they are set beside use memory topics. Producers stay within
 * BROKER_MAX_LAG (bench.c) of the consumer, well within what a stream keeps, so none is
 * dropped before it is read. A reply of an unexpected shape, or an error reply, fails
 * the process with -EPROTO and says what came. */
#ifndef SHOAL_BENCH_BROKERS_H
#define SHOAL_BENCH_BROKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bench.h"

#define CONN_BUF (1u << 20)

/* A buffered connection. Pointers a reader hands out stay valid until its next read. */
struct conn {
    int fd;
    char *buf;
    size_t pos, len;
};

int conn_unix(struct conn *c, const char *path);
/* A TCP connection to 127.0.0.1:port, with Nagle off; reads time out after timeout_ms
 * (0: never) with -EAGAIN, so a waiting role sees STOP. */
int conn_tcp(struct conn *c, int port, int timeout_ms);
/* Reads from now on time out after timeout_ms (0: never). */
int conn_timeout(struct conn *c, int timeout_ms);
void conn_close(struct conn *c);
int conn_write(struct conn *c, const char *p, size_t n);
/* Make at least n unread bytes available at c->buf + c->pos. A read that times out
 * loses nothing: what came stays buffered. */
int conn_need(struct conn *c, size_t n);
/* Make a whole line available; its length with the "\n" goes to n, nothing is consumed. */
int conn_line(struct conn *c, size_t *n);
/* Repeat the command at the start of cmds (one bytes) until it is there batch times, for
 * one write a batch. Returns the length of the batch, 0 when it does not fit CONN_BUF. */
size_t cmd_batch(char *cmds, size_t one, uint32_t batch);
/* Where roles leave the sum of their value touches (bench_touch), so none is optimised
 * away. */
extern volatile uint64_t brokers_sink;
/* A role's end: its RSS and error code into its slot, done set, the connection closed. */
void role_done(struct bench_child *ch, struct conn *c, int rc);

/* Fork and exec argv[0] (a path, or a name looked up in $PATH and the sbin directories)
 * with the "NAME=value" strings of env added to the environment (env may be NULL), then
 * wait up to timeout_ms for up(arg) to say it answers. Returns its pid, 0 when the
 * program is not installed, or -1. */
pid_t server_start(char *const *argv, char *const *env, const char *log, int timeout_ms,
                   bool (*up)(const void *), const void *arg);
/* A port on 127.0.0.1 that nothing listens on now, or -1. */
int free_port(void);

#endif
