/* bench.h - shared pieces of the benchmark suite: the control block the driver shares
 * with its child processes, the roles a child can play, and small helpers.
 *
 * The driver (bench.c) forks and execs itself once per producer, consumer or baseline
 * process, passing the role and its parameters on the command line and the path of a
 * small shared file holding struct bench_ctl. Children report readiness, count their
 * operations into their own cache line while the phase is WARM or MEASURE, and write their
 * latency percentiles when the phase becomes STOP. The driver samples the counters at the
 * start and the end of the measured window, so neither start-up nor shutdown is timed. */
#ifndef SHOAL_BENCH_H
#define SHOAL_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_MAX_CHILDREN 16
#define BENCH_LINE         64

enum bench_phase {
    BENCH_SETUP = 0,   /* children attach and report ready */
    BENCH_WARM = 1,    /* run, do not record latencies */
    BENCH_MEASURE = 2, /* run and record latencies */
    BENCH_STOP = 3,    /* finish, write results, exit */
};

/* One child's figures. ops and bytes grow while it runs; the rest is written at STOP. */
struct bench_child {
    _Atomic uint64_t ops;   /* records (or round trips) done */
    _Atomic uint64_t bytes; /* payload bytes moved */
    _Atomic uint32_t ready;
    _Atomic uint32_t done;
    uint8_t pad_[BENCH_LINE - 24];
    uint64_t gaps;     /* records a consumer found missing (offset jumps) */
    uint64_t samples;  /* latency samples behind the percentiles */
    int64_t pct_ns[6]; /* p50 p90 p99 p99.9 max, min: latencies of the measured window */
    int64_t rss_kb;    /* the child's VmRSS at STOP */
    int64_t rss_anon_kb;
    int32_t error; /* 0, or the failing code */
    uint8_t pad2_[BENCH_LINE - 4];
};

struct bench_ctl {
    _Atomic uint32_t phase;
    /* Throughput runs: producers (children consumers..consumers+producers-1) stay at most
     * max_lag records ahead of the slowest consumer (children 0..consumers-1), as the
     * floor ring's producer waits for its consumer. A memory topic does not hold its
     * producers back: a consumer that falls a ring behind loses records (SHOAL_EOFFSET),
     * and the run would measure the producer instead of the pipeline. 0: no limit. */
    uint32_t consumers;
    uint32_t producers;
    uint64_t max_lag;
    uint8_t pad_[BENCH_LINE - 24];
    _Atomic uint64_t probe_line; /* the cache line the latency probes bounce */
    uint8_t pad2_[BENCH_LINE - 8];
    struct bench_child child[BENCH_MAX_CHILDREN];
};

/* A child's parameters, parsed from "key=value" arguments. */
struct bench_args {
    const char *role;
    const char *ctl_path;
    const char *socket;
    const char *topic;
    const char *topic2; /* the reply topic of a ping-pong, the ring file of the floor */
    const char *server; /* another broker's socket path, or TCP port (brokers.h) */
    int idx;            /* which bench_child slot is ours */
    int fd;             /* an inherited descriptor (pipe, socket) */
    int fd2;
    uint32_t size;      /* value bytes */
    uint32_t batch;     /* records per append */
    uint32_t wait;      /* shoal_wait_t for consumers */
    uint32_t fetch_min; /* consumers' fetch_min_bytes; 0: the default */
    uint32_t acks;      /* 1: a window of appends, then wait for the disk */
    uint64_t total;     /* records to produce or read, 0 = until STOP */
    int cpu;            /* CPU to pin the process to, -1 for none */
};

/* Child entry points (roles.c, floor.c). Each returns 0 or an error code. */
int role_shoal_producer(struct bench_ctl *ctl, const struct bench_args *a);
int role_shoal_consumer(struct bench_ctl *ctl, const struct bench_args *a);
int role_shoal_ping(struct bench_ctl *ctl, const struct bench_args *a);
int role_shoal_pong(struct bench_ctl *ctl, const struct bench_args *a);
int role_floor_producer(struct bench_ctl *ctl, const struct bench_args *a);
int role_floor_consumer(struct bench_ctl *ctl, const struct bench_args *a);
int role_floor_ping(struct bench_ctl *ctl, const struct bench_args *a);
int role_floor_pong(struct bench_ctl *ctl, const struct bench_args *a);
int role_line_ping(struct bench_ctl *ctl, const struct bench_args *a);
int role_line_pong(struct bench_ctl *ctl, const struct bench_args *a);
int role_fd_ping(struct bench_ctl *ctl, const struct bench_args *a);
int role_fd_pong(struct bench_ctl *ctl, const struct bench_args *a);
int role_busy_spin(struct bench_ctl *ctl, const struct bench_args *a);
int role_busy_tick(struct bench_ctl *ctl, const struct bench_args *a);
int role_redis_producer(struct bench_ctl *ctl, const struct bench_args *a);
int role_redis_consumer(struct bench_ctl *ctl, const struct bench_args *a);
int role_redis_ping(struct bench_ctl *ctl, const struct bench_args *a);
int role_redis_pong(struct bench_ctl *ctl, const struct bench_args *a);
int role_nats_producer(struct bench_ctl *ctl, const struct bench_args *a);
int role_nats_consumer(struct bench_ctl *ctl, const struct bench_args *a);
int role_nats_ping(struct bench_ctl *ctl, const struct bench_args *a);
int role_nats_pong(struct bench_ctl *ctl, const struct bench_args *a);
int role_rabbitmq_producer(struct bench_ctl *ctl, const struct bench_args *a);
int role_rabbitmq_consumer(struct bench_ctl *ctl, const struct bench_args *a);
int role_rabbitmq_ping(struct bench_ctl *ctl, const struct bench_args *a);
int role_rabbitmq_pong(struct bench_ctl *ctl, const struct bench_args *a);

/* The driver's side of the other brokers (brokers.h). The start functions return the
 * server's pid, 0 when it is not installed, or -1. redis-server runs in memory only on
 * dir/redis.sock (its path goes to sock); nats-server with JetStream on 127.0.0.1:port;
 * a RabbitMQ node with its stream plugin on 127.0.0.1:port, files under dir/rabbitmq,
 * with a port mapper of its own (epmd, its pid to *epmd: stop it after the node). */
pid_t bench_redis_start(const char *dir, char *sock, size_t cap);
pid_t bench_nats_start(const char *dir, int *port);
pid_t bench_rabbitmq_start(const char *dir, int *port, pid_t *epmd);
void bench_server_stop(pid_t pid);
/* A server that did not come up: say why (why), with the last lines of its log, which
 * goes with the suite's directory. */
void bench_server_failed(const char *name, const char *why, const char *log);
/* Delete a run's two Redis streams; create or delete its two JetStream or RabbitMQ
 * streams. */
void bench_redis_del(const char *sock, const char *s1, const char *s2);
int bench_nats_streams(int port, const char *s1, const char *s2, bool create);
int bench_rabbitmq_streams(int port, const char *s1, const char *s2, bool create);

/* Helpers for children (roles.c). */
int64_t bench_now_ns(void);
static inline uint32_t bench_phase(struct bench_ctl *ctl)
{
    return atomic_load_explicit(&ctl->phase, memory_order_relaxed);
}
/* Sleep until the phase is no longer ph, or timeout_ms passes (-1: no limit). Waiting
 * processes use no CPU: a child that polled the phase would take turns from the
 * processes being measured. */
void bench_phase_wait(struct bench_ctl *ctl, uint32_t ph, int timeout_ms);
/* Move to phase ph and wake every child waiting for a change. */
void bench_set_phase(struct bench_ctl *ctl, uint32_t ph);
/* Wait (yielding the CPU) while the producers are more than max_lag records ahead of the
 * slowest consumer; producers call it every BENCH_PACE_EVERY batches. */
void bench_pace(struct bench_ctl *ctl);
#define BENCH_PACE_EVERY 16
/* Report ready and sleep until the driver leaves SETUP. */
void bench_child_ready(struct bench_ctl *ctl, int idx);
/* Record the child's resident size and its result rc, then say it is done. */
void bench_child_finish(struct bench_child *ch, int rc);
/* Add to the child's counters (relaxed: only the driver reads them, twice a run). */
static inline void bench_count(struct bench_child *ch, uint64_t ops, uint64_t bytes)
{
    atomic_store_explicit(&ch->ops, atomic_load_explicit(&ch->ops, memory_order_relaxed) + ops,
                          memory_order_relaxed);
    atomic_store_explicit(&ch->bytes,
                          atomic_load_explicit(&ch->bytes, memory_order_relaxed) + bytes,
                          memory_order_relaxed);
}

/* Latency samples of the measured window. */
struct bench_lat {
    int64_t *ns; /* cap samples, then cap more for sorting them */
    size_t n, cap;
};
int bench_lat_init(struct bench_lat *l, size_t cap);
static inline void bench_lat_add(struct bench_lat *l, struct bench_ctl *ctl, int64_t ns)
{
    if (l->n < l->cap && bench_phase(ctl) == BENCH_MEASURE)
        l->ns[l->n++] = ns;
}
/* Sort the samples into the child's percentiles and free them. */
void bench_lat_finish(struct bench_lat *l, struct bench_child *ch);
/* VmRSS and RssAnon of a process from /proc (pid 0: ourselves), in KiB; -1 if unknown. */
int64_t bench_rss_kb(int pid, const char *field);
/* Read the first and last cache line of a value, as a consumer that uses it would. */
static inline uint64_t bench_touch(const void *v, size_t len)
{
    const volatile uint8_t *p = v;
    return len ? (uint64_t)p[0] + p[len - 1] : 0;
}

#endif
