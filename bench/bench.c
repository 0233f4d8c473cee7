/* bench.c - the benchmark driver: runs every scenario as separate processes against a
 * real shoald, with the baselines measured in the same run, and prints one table (and
 * optionally a JSON array).
 *
 * DESIGN
 *
 * Processes. The driver starts its own shoald in a temporary directory, then forks and
 * execs itself (`shoal-bench role ...`) for each producer, consumer and baseline process,
 * so every party of a scenario is a process of its own, as in real use. The children share
 * a small control file with the driver (bench.h): the driver moves the phase SETUP -> WARM
 * -> MEASURE -> STOP and samples the children's counters at the two ends of the measured
 * window; children record latencies only during MEASURE.
 *
 * Placement. This machine moves its two CPUs between a near placement (a cache-line round
 * trip of ~66 ns) and a far one (~347 ns) every few seconds, which swings every shared-
 * memory figure 2-3x. A pair of probe processes pinned to CPU 0 and CPU 1 lives for the
 * whole suite and, before and after every run, bounces a cache line 2000 times; the median
 * labels the run near or far (mixed when the two probes disagree). Every scenario that has
 * a baseline runs in pairs, baseline then scenario, and its ratio is the median over the
 * pairs whose two runs have the same label: shoal is only ever compared with a baseline
 * measured in the same placement.
 *
 * Figures. Each scenario warms up, measures for a fixed time and repeats; the reported
 * run is the median (by its figure) among the runs of the label most runs had. Throughput
 * is what the consumers received (the slowest consumer for a fan-out), in records and in
 * value megabytes (10^6 bytes) per second. Latencies are full round trips between two
 * processes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "shoal.h"

#define MAX_RUNS     48  /* a shared baseline collects the runs of every pairing */
#define NEAR_MAX_NS  160 /* a probe median below this is the near placement */
#define PROBE_ROUNDS 2000

enum kind {
    K_SHOAL_TPUT,
    K_FLOOR_TPUT,
    K_SHOAL_RTT,
    K_FLOOR_RTT,
    K_LINE_RTT,
    K_PIPE_RTT,
    K_UNIX_RTT,
    K_MEMCPY,
    K_DISK_WRITE,
    K_ACKS_DISK,
    K_COLD_READ,
    K_BROKER_TPUT, /* another broker (scenario.broker), for context */
    K_BROKER_RTT,
    K_RSS_IDLE,
    K_RSS_LOAD,
    K_RSS_CLIENT,
};

/* The other brokers, measured for context (brokers.h). */
enum { BROKER_REDIS, BROKER_NATS, BROKER_RABBITMQ, BROKER_COUNT };
static const char *const broker_names[] = {"redis", "nats", "rabbitmq"};
static const char *const broker_packages[] = {"redis-server", "nats-server", "rabbitmq-server"};

enum { MODE_NEAR, MODE_FAR, MODE_MIXED };
static const char *const mode_names[] = {"near", "far", "mixed"};

struct run {
    double rate; /* records (or round trips) per second */
    double mbps; /* value bytes per second / 10^6 */
    int64_t pct[6];
    bool has_lat;
    int64_t probe[2];
    int mode;
    int64_t daemon_rss_kb, daemon_anon_kb, client_rss_kb, client_anon_kb;
    uint64_t gaps;
    int base_run; /* index of the paired baseline run, -1 when none */
};

struct scenario {
    const char *name;
    enum kind kind;
    uint32_t size, batch, producers, consumers, wait;
    uint32_t fetch_min; /* the consumers' fetch_min_bytes, 0 for the default */
    const char *baseline;
    bool lower_is_better; /* latency scenarios: ratio is p50 / baseline p50 */
    bool busy;            /* ping-pong with CPU 0 shared (busy_kids): ratio of round trips/s */
    int broker;           /* K_BROKER_*: which one */
    struct run runs[MAX_RUNS];
    int nruns;
};

struct suite {
    const char *mode; /* full, quick, smoke */
    int warm_ms, measure_ms, disk_measure_ms, reps;
    uint64_t disk_bytes, cold_bytes;
    const char *json;
    const char *only;
    char self[PATH_MAX];
    char shoald[PATH_MAX];
    char dir[64];
    char socket[128];
    char instance[64];
    char ctl_path[128], probe_path[128], floor_path[128];
    pid_t daemon;
    struct broker_server {
        pid_t pid;      /* 0 until its first scenario, -1 when it cannot run */
        pid_t helper;   /* RabbitMQ's port mapper, stopped after the node */
        char addr[128]; /* Redis: its socket; NATS, RabbitMQ: its port */
    } brokers[BROKER_COUNT];
    shoal_client_t *client;
    struct bench_ctl *ctl, *probe;
    pid_t probe_pids[2];
    pid_t kids[BENCH_MAX_CHILDREN];
    int nkids;
    int topic_seq;
    int64_t daemon_idle_kb, daemon_idle_anon_kb;
};

/* ------------------------------------------------------------------ scenarios */

#define TPUT(n, sz, b, base)                                                                       \
    {                                                                                              \
        .name = n, .kind = K_SHOAL_TPUT, .size = sz, .batch = b, .producers = 1, .consumers = 1,   \
        .baseline = base                                                                           \
    }
/* A throughput-tuned consumer: it reads once 64 KiB are ready (fetch_min_bytes). */
#define TPUT_FETCH(n, sz, b, base)                                                                 \
    {                                                                                              \
        .name = n, .kind = K_SHOAL_TPUT, .size = sz, .batch = b, .producers = 1, .consumers = 1,   \
        .fetch_min = 64u << 10, .baseline = base                                                   \
    }
#define FLOOR(n, sz, b)                                                                            \
    {                                                                                              \
        .name = n, .kind = K_FLOOR_TPUT, .size = sz, .batch = b, .producers = 1, .consumers = 1    \
    }
#define RTT(n, sz, w, base)                                                                        \
    {                                                                                              \
        .name = n, .kind = K_SHOAL_RTT, .size = sz, .batch = 1, .producers = 2, .consumers = 2,    \
        .wait = w, .baseline = base, .lower_is_better = true                                       \
    }
#define BASE_RTT(n, k, sz)                                                                         \
    {                                                                                              \
        .name = n, .kind = k, .size = sz, .batch = 1, .producers = 2, .consumers = 2,              \
        .lower_is_better = true                                                                    \
    }
#define MULTI(n, p, c, base)                                                                       \
    {                                                                                              \
        .name = n, .kind = K_SHOAL_TPUT, .size = 256, .batch = 64, .producers = p, .consumers = c, \
        .baseline = base                                                                           \
    }

#define BROKER_TPUT(n, br, b)                                                                      \
    {                                                                                              \
        .name = n, .kind = K_BROKER_TPUT, .broker = br, .size = 32, .batch = b, .producers = 1,    \
        .consumers = 1                                                                             \
    }
#define BROKER_RTT(n, br)                                                                          \
    {                                                                                              \
        .name = n, .kind = K_BROKER_RTT, .broker = br, .size = 32, .batch = 1, .producers = 2,     \
        .consumers = 2, .lower_is_better = true                                                    \
    }

static struct scenario scenarios[] = {
    BASE_RTT("line-rtt", K_LINE_RTT, 8),
    {.name = "memcpy", .kind = K_MEMCPY, .size = 1u << 20},
    FLOOR("floor-32-b64", 32, 64),
    FLOOR("floor-256-b64", 256, 64),
    FLOOR("floor-1024-b64", 1024, 64),
    FLOOR("floor-4096-b64", 4096, 64),
    FLOOR("floor-65536-b64", 65536, 64),
    FLOOR("floor-32-b1", 32, 1),
    FLOOR("floor-256-b1", 256, 1),
    FLOOR("floor-1024-b1", 1024, 1),
    FLOOR("floor-4096-b1", 4096, 1),
    FLOOR("floor-65536-b1", 65536, 1),
    TPUT("shoal-32-b64", 32, 64, "floor-32-b64"),
    TPUT("shoal-256-b64", 256, 64, "floor-256-b64"),
    TPUT("shoal-1024-b64", 1024, 64, "floor-1024-b64"),
    TPUT("shoal-4096-b64", 4096, 64, "floor-4096-b64"),
    TPUT("shoal-65536-b64", 65536, 64, "floor-65536-b64"),
    TPUT("shoal-32-b1", 32, 1, "floor-32-b1"),
    TPUT("shoal-256-b1", 256, 1, "floor-256-b1"),
    TPUT("shoal-1024-b1", 1024, 1, "floor-1024-b1"),
    TPUT("shoal-4096-b1", 4096, 1, "floor-4096-b1"),
    TPUT("shoal-65536-b1", 65536, 1, "floor-65536-b1"),
    TPUT_FETCH("shoal-32-b64-fetch", 32, 64, "floor-32-b64"),
    TPUT_FETCH("shoal-32-b1-fetch", 32, 1, "floor-32-b1"),
    BASE_RTT("floor-rtt-32", K_FLOOR_RTT, 32),
    BASE_RTT("floor-rtt-256", K_FLOOR_RTT, 256),
    BASE_RTT("pipe-rtt-32", K_PIPE_RTT, 32),
    BASE_RTT("unix-rtt-32", K_UNIX_RTT, 32),
    BASE_RTT("unix-rtt-256", K_UNIX_RTT, 256),
    /* the floor ping-pong asleep on futexes: what the mechanism itself costs */
    {.name = "futex-rtt-32",
     .kind = K_FLOOR_RTT,
     .size = 32,
     .batch = 1,
     .producers = 2,
     .consumers = 2,
     .wait = SHOAL_WAIT_FUTEX,
     .baseline = "unix-rtt-32",
     .lower_is_better = true},
    {.name = "unix-rtt-32-busy",
     .kind = K_UNIX_RTT,
     .size = 32,
     .batch = 1,
     .producers = 2,
     .consumers = 2,
     .busy = true},
    RTT("shoal-rtt-32-spin", 32, SHOAL_WAIT_SPIN, "floor-rtt-32"),
    RTT("shoal-rtt-32-default", 32, SHOAL_WAIT_DEFAULT, "floor-rtt-32"),
    RTT("shoal-rtt-32-futex", 32, SHOAL_WAIT_FUTEX, "unix-rtt-32"),
    RTT("shoal-rtt-256-spin", 256, SHOAL_WAIT_SPIN, "floor-rtt-256"),
    RTT("shoal-rtt-256-default", 256, SHOAL_WAIT_DEFAULT, "floor-rtt-256"),
    RTT("shoal-rtt-256-futex", 256, SHOAL_WAIT_FUTEX, "unix-rtt-256"),
    {.name = "shoal-rtt-32-busy",
     .kind = K_SHOAL_RTT,
     .size = 32,
     .batch = 1,
     .producers = 2,
     .consumers = 2,
     .wait = SHOAL_WAIT_DEFAULT,
     .baseline = "unix-rtt-32-busy",
     .busy = true},
    MULTI("shoal-fanout-1", 1, 1, NULL),
    MULTI("shoal-fanout-2", 1, 2, "shoal-fanout-1"),
    MULTI("shoal-fanout-4", 1, 4, "shoal-fanout-1"),
    MULTI("shoal-fanout-8", 1, 8, "shoal-fanout-1"),
    {.name = "shoal-fanout-4-futex",
     .kind = K_SHOAL_TPUT,
     .size = 256,
     .batch = 64,
     .producers = 1,
     .consumers = 4,
     .wait = SHOAL_WAIT_FUTEX,
     .baseline = "shoal-fanout-1"},
    MULTI("shoal-producers-2", 2, 1, "shoal-fanout-1"),
    MULTI("shoal-producers-4", 4, 1, "shoal-fanout-1"),
    {.name = "disk-write", .kind = K_DISK_WRITE, .size = 1u << 20},
    {.name = "shoal-acks-disk-1024",
     .kind = K_ACKS_DISK,
     .size = 1024,
     .batch = 64,
     .producers = 1,
     .baseline = "disk-write"},
    {.name = "shoal-cold-read", .kind = K_COLD_READ, .size = 4096, .batch = 64, .consumers = 1},
    /* for context: Redis Streams, NATS JetStream and RabbitMQ streams on this machine
     * (brokers.h); skipped when not installed */
    BROKER_TPUT("redis-32-b64", BROKER_REDIS, 64),
    BROKER_TPUT("redis-32-b1", BROKER_REDIS, 1),
    BROKER_RTT("redis-rtt-32", BROKER_REDIS),
    BROKER_TPUT("nats-32-b64", BROKER_NATS, 64),
    BROKER_TPUT("nats-32-b1", BROKER_NATS, 1),
    BROKER_RTT("nats-rtt-32", BROKER_NATS),
    BROKER_TPUT("rabbitmq-32-b64", BROKER_RABBITMQ, 64),
    BROKER_TPUT("rabbitmq-32-b1", BROKER_RABBITMQ, 1),
    BROKER_RTT("rabbitmq-rtt-32", BROKER_RABBITMQ),
    {.name = "rss-shoald-idle", .kind = K_RSS_IDLE},
    {.name = "rss-shoald-load", .kind = K_RSS_LOAD},
    {.name = "rss-client", .kind = K_RSS_CLIENT},
};

#define NSCEN (sizeof(scenarios) / sizeof(scenarios[0]))

static int failures; /* runs or processes that failed: the exit status says so */

/* The signal that asked the suite to stop (SIGINT, SIGTERM, SIGHUP), 0 until one does:
 * the run in progress ends, the servers, shoald and their files go, nothing is printed.
 * A second signal takes its default action (SA_RESETHAND). */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

static void catch_stop_signals(void)
{
    struct sigaction sa = {.sa_handler = on_stop_signal, .sa_flags = SA_RESTART | SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static bool is_broker(const struct scenario *sc)
{
    return sc->kind == K_BROKER_TPUT || sc->kind == K_BROKER_RTT;
}

static struct scenario *scenario_find(const char *name)
{
    for (size_t i = 0; name && i < NSCEN; i++)
        if (!strcmp(scenarios[i].name, name))
            return &scenarios[i];
    return NULL;
}

/* ------------------------------------------------------------------ processes */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void *map_ctl(const char *path, bool create)
{
    int fd = open(path, O_RDWR | (create ? O_CREAT | O_TRUNC : 0), 0600);
    void *p;
    if (fd < 0)
        return NULL;
    if (create && ftruncate(fd, sizeof(struct bench_ctl)) < 0) {
        close(fd);
        return NULL;
    }
    p = mmap(NULL, sizeof(struct bench_ctl), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

/* Fork and exec `self role <kv...>`; fd_a/fd_b (or -1) become descriptors 100 and 101. */
static pid_t spawn(struct suite *S, const char *const *kv, int fd_a, int fd_b)
{
    const char *argv[24];
    int n = 0;
    pid_t pid;

    argv[n++] = S->self;
    argv[n++] = "role";
    while (*kv && n < 23)
        argv[n++] = *kv++;
    argv[n] = NULL;
    if ((pid = fork()) != 0)
        return pid;
    if (fd_a >= 0)
        dup2(fd_a, 100);
    if (fd_b >= 0)
        dup2(fd_b, 101);
    execv(S->self, (char *const *)argv);
    _exit(127);
}

/* extra: more key=value arguments, separated by spaces, or NULL. */
static int spawn_role(struct suite *S, const char *role, int idx, const char *topic,
                      const char *topic2, uint32_t size, uint32_t batch, uint32_t wait,
                      const char *extra)
{
    char r[64], i[32], t[96], t2[160], sz[32], b[32], w[32], sock[160], ctl[160], more[96];
    const char *kv[16];
    char *save = NULL;
    int n = 0;

    snprintf(r, sizeof(r), "role=%s", role);
    snprintf(i, sizeof(i), "idx=%d", idx);
    snprintf(t, sizeof(t), "topic=%s", topic ? topic : "");
    snprintf(t2, sizeof(t2), "topic2=%s", topic2 ? topic2 : "");
    snprintf(sz, sizeof(sz), "size=%u", size);
    snprintf(b, sizeof(b), "batch=%u", batch);
    snprintf(w, sizeof(w), "wait=%u", wait);
    snprintf(sock, sizeof(sock), "socket=%s", S->socket);
    snprintf(ctl, sizeof(ctl), "ctl=%s", S->ctl_path);
    kv[n++] = r, kv[n++] = i, kv[n++] = t, kv[n++] = t2, kv[n++] = sz, kv[n++] = b;
    kv[n++] = w, kv[n++] = sock, kv[n++] = ctl;
    snprintf(more, sizeof(more), "%s", extra ? extra : "");
    for (char *e = strtok_r(more, " ", &save); e && n < 15; e = strtok_r(NULL, " ", &save))
        kv[n++] = e;
    kv[n] = NULL;
    S->kids[S->nkids] = spawn(S, kv, -1, -1);
    return S->kids[S->nkids++] > 0 ? 0 : -1;
}

static int wait_ready(struct bench_ctl *ctl, int n, int timeout_ms)
{
    for (int t = 0; t < timeout_ms * 5; t++) {
        int ready = 0;
        for (int i = 0; i < n; i++)
            ready += atomic_load(&ctl->child[i].ready) != 0;
        if (ready == n)
            return 0;
        usleep(200);
    }
    return -1;
}

/* Reap every child of the run, killing any that does not leave within 10 s. */
static void reap_kids(struct suite *S)
{
    for (int i = 0; i < S->nkids; i++) {
        for (int t = 0; t < 10000; t++) {
            if (waitpid(S->kids[i], NULL, WNOHANG) != 0)
                goto next;
            usleep(1000);
        }
        fprintf(stderr, "bench: child %d did not stop, killing it\n", (int)S->kids[i]);
        kill(S->kids[i], SIGKILL);
        waitpid(S->kids[i], NULL, 0);
    next:;
    }
    S->nkids = 0;
}

/* ------------------------------------------------------------------ probe */

static int64_t probe(struct suite *S)
{
    struct bench_child *ch = &S->probe->child[0];
    atomic_store(&ch->done, 0);
    bench_set_phase(S->probe, BENCH_MEASURE);
    for (int t = 0; t < 5000 && !atomic_load(&ch->done); t++)
        usleep(200);
    bench_set_phase(S->probe, BENCH_SETUP);
    return atomic_load(&ch->done) ? ch->pct_ns[0] : -1;
}

static int probe_start(struct suite *S)
{
    char ctl[160], rounds[32];
    snprintf(ctl, sizeof(ctl), "ctl=%s", S->probe_path);
    snprintf(rounds, sizeof(rounds), "total=%d", PROBE_ROUNDS);
    const char *ping[] = {"role=line-ping", "idx=0", ctl, rounds, NULL};
    const char *pong[] = {"role=line-pong", "idx=1", ctl, NULL};
    if (!(S->probe = map_ctl(S->probe_path, true)))
        return -1;
    S->probe_pids[0] = spawn(S, ping, -1, -1);
    S->probe_pids[1] = spawn(S, pong, -1, -1);
    return wait_ready(S->probe, 2, 5000);
}

static int label(const int64_t *p)
{
    bool n0 = p[0] > 0 && p[0]<NEAR_MAX_NS, n1 = p[1]> 0 && p[1] < NEAR_MAX_NS;
    if (n0 && n1)
        return MODE_NEAR;
    if (!n0 && !n1)
        return MODE_FAR;
    return MODE_MIXED;
}

/* ------------------------------------------------------------------ the daemon */

static int daemon_start(struct suite *S)
{
    char data[128], run[128], log[128];
    snprintf(data, sizeof(data), "%s/data", S->dir);
    snprintf(run, sizeof(run), "%s/run", S->dir);
    snprintf(log, sizeof(log), "%s/shoald.log", S->dir);
    if (access(S->shoald, X_OK) < 0) {
        fprintf(stderr, "bench: cannot run %s (%s): build it with make, or name it with --shoald\n",
                S->shoald, strerror(errno));
        return -1;
    }
    if ((S->daemon = fork()) == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0)
            dup2(fd, 2);
        execl(S->shoald, "shoald", "--data-dir", data, "--runtime-dir", run, "--instance",
              S->instance, "--log-level", "warning", (char *)NULL);
        _exit(127);
    }
    for (int t = 0; t < 500; t++) {
        if (shoal_client_open(S->socket, &S->client) == 0)
            return 0;
        if (waitpid(S->daemon, NULL, WNOHANG) == S->daemon) {
            S->daemon = 0;
            bench_server_failed("shoald", "exited while starting", log);
            return -1;
        }
        sleep_ms(10);
    }
    bench_server_failed("shoald", "did not come up", log);
    return -1;
}

static void daemon_stop(struct suite *S)
{
    shoal_client_close(S->client);
    S->client = NULL;
    if (S->daemon > 0) {
        kill(S->daemon, SIGTERM);
        waitpid(S->daemon, NULL, 0);
        S->daemon = 0;
    }
}

/* How far producers may run ahead of the slowest consumer of a throughput run: two of
 * the ring's four 64 MiB slots (bench.h, max_lag). */
#define TPUT_MAX_LAG_BYTES (128ull << 20)

/* How far another broker's producer may run ahead of its consumer, in records: well
 * within what its stream keeps (redis.c TRIM_LEN, nats.c NATS_MAX_MSGS; RabbitMQ keeps
 * everything, up to its default retention of gigabytes). */
#define BROKER_MAX_LAG 100000

/* A fresh topic: 64 MiB slots x 4, or small slots (ping-pong moves a few MB at most). */
static int topic_new(struct suite *S, char *name, size_t cap, uint32_t storage, bool small)
{
    shoal_topic_config_t cfg;
    shoal_topic_config_init(&cfg);
    cfg.storage = storage;
    cfg.segment_bytes = small ? 4ull << 20 : 64ull << 20;
    cfg.ring_slots = 4;
    cfg.max_record_bytes = 1u << 20;
    snprintf(name, cap, "bench%d", S->topic_seq++);
    return shoal_topic_create(S->client, name, &cfg);
}

/* ------------------------------------------------------------------ one run */

/* A busy scenario's CPU 0, shared with the pinger: a CPU-bound process and one that wakes
 * every 100 us (any timer-driven daemon), both unrelated to the ping-pong. Together they
 * show what a waiting strategy costs on a loaded host: a waiter that gives its turn away
 * (sched_yield) loses it to the CPU-bound process for a whole time slice, and the
 * periodic wake-ups are what keep handing the CPU over. Children n and n + 1. */
static int busy_kids(struct suite *S, int n)
{
    spawn_role(S, "busy-spin", n, NULL, NULL, 0, 1, 0, "cpu=0");
    spawn_role(S, "busy-tick", n + 1, NULL, NULL, 0, 1, 0, "cpu=0");
    return n + 2;
}

/* Spawn the processes of a child-based scenario. Returns how many, or -1. */
static int setup_kids(struct suite *S, struct scenario *sc, char (*topics)[64], int *fds)
{
    int n = 0;
    switch (sc->kind) {
    case K_SHOAL_TPUT: {
        bool pin = sc->producers == 1 && sc->consumers == 1; /* as the floor is */
        char extra[64];
        snprintf(extra, sizeof(extra), "%s fetch_min=%u", pin ? "cpu=1" : "", sc->fetch_min);
        S->ctl->consumers = sc->consumers;
        S->ctl->producers = sc->producers;
        S->ctl->max_lag = TPUT_MAX_LAG_BYTES / (sc->size + 16); /* + framing, generously */
        for (uint32_t i = 0; i < sc->consumers; i++, n++)
            spawn_role(S, "shoal-consumer", n, topics[0], NULL, sc->size, sc->batch, sc->wait,
                       extra);
        for (uint32_t i = 0; i < sc->producers; i++, n++)
            spawn_role(S, "shoal-producer", n, topics[0], NULL, sc->size, sc->batch, 0,
                       pin ? "cpu=0" : NULL);
        return n;
    }
    case K_FLOOR_TPUT:
        spawn_role(S, "floor-consumer", 0, NULL, S->floor_path, sc->size, sc->batch, 0, "cpu=1");
        spawn_role(S, "floor-producer", 1, NULL, S->floor_path, sc->size, sc->batch, 0, "cpu=0");
        return 2;
    case K_SHOAL_RTT: { /* spinners on two CPUs, sleepers where the scheduler puts them */
        bool pin = sc->wait != SHOAL_WAIT_FUTEX;
        spawn_role(S, "shoal-ping", 0, topics[0], topics[1], sc->size, 1, sc->wait,
                   pin ? "cpu=0" : NULL);
        spawn_role(S, "shoal-pong", 1, topics[0], topics[1], sc->size, 1, sc->wait,
                   pin ? "cpu=1" : NULL);
        return sc->busy ? busy_kids(S, 2) : 2;
    }
    case K_FLOOR_RTT: { /* pinned as shoal's spinners, or free as its sleepers */
        bool pin = sc->wait != SHOAL_WAIT_FUTEX;
        spawn_role(S, "floor-ping", 0, NULL, S->floor_path, sc->size, 1, sc->wait,
                   pin ? "cpu=0" : NULL);
        spawn_role(S, "floor-pong", 1, NULL, S->floor_path, sc->size, 1, sc->wait,
                   pin ? "cpu=1" : NULL);
        return 2;
    }
    case K_PIPE_RTT:
    case K_UNIX_RTT: {
        char sz[32], ctl[160];
        snprintf(sz, sizeof(sz), "size=%u", sc->size);
        snprintf(ctl, sizeof(ctl), "ctl=%s", S->ctl_path);
        const char *ping[] = {
            "role=fd-ping", "idx=0", sz, ctl, "fd=100", "fd2=101", sc->busy ? "cpu=0" : NULL, NULL};
        const char *pong[] = {
            "role=fd-pong", "idx=1", sz, ctl, "fd=100", "fd2=101", sc->busy ? "cpu=1" : NULL, NULL};
        /* fds: ping writes fds[1], pong reads fds[0]; pong writes fds[3], ping reads fds[2] */
        S->kids[S->nkids++] = spawn(S, ping, sc->kind == K_PIPE_RTT ? fds[1] : fds[0],
                                    sc->kind == K_PIPE_RTT ? fds[2] : fds[0]);
        S->kids[S->nkids++] = spawn(S, pong, sc->kind == K_PIPE_RTT ? fds[0] : fds[1],
                                    sc->kind == K_PIPE_RTT ? fds[3] : fds[1]);
        return sc->busy ? busy_kids(S, 2) : 2;
    }
    case K_BROKER_TPUT:
    case K_BROKER_RTT: { /* left to the scheduler, with the server */
        char server[160], role[2][32];
        bool tput = sc->kind == K_BROKER_TPUT;
        const char *name = broker_names[sc->broker];
        snprintf(server, sizeof(server), "server=%s", S->brokers[sc->broker].addr);
        snprintf(role[0], sizeof(role[0]), "%s-%s", name, tput ? "consumer" : "ping");
        snprintf(role[1], sizeof(role[1]), "%s-%s", name, tput ? "producer" : "pong");
        S->ctl->consumers = S->ctl->producers = 1;
        S->ctl->max_lag = BROKER_MAX_LAG;
        for (int i = 0; i < 2; i++)
            spawn_role(S, role[i], i, topics[0], topics[1], sc->size, sc->batch, 0, server);
        return 2;
    }
    default:
        return -1;
    }
}

static int make_floor_file(struct suite *S, uint64_t bytes)
{
    int fd = open(S->floor_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    int rc = fd < 0 ? -1 : ftruncate(fd, (off_t)bytes);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Create or delete the two streams of another broker's run. */
static int broker_streams(struct suite *S, const struct scenario *sc, char (*topics)[64],
                          bool create)
{
    const char *addr = S->brokers[sc->broker].addr;
    switch (sc->broker) {
    case BROKER_REDIS: /* Redis creates a stream at its first XADD */
        if (!create)
            bench_redis_del(addr, topics[0], topics[1]);
        return 0;
    case BROKER_NATS:
        return bench_nats_streams(atoi(addr), topics[0], topics[1], create);
    default:
        return bench_rabbitmq_streams(atoi(addr), topics[0], topics[1], create);
    }
}

/* Resources a run needs before its processes start: topics, the floor file, fds. */
static int prepare(struct suite *S, struct scenario *sc, char (*topics)[64], int *fds)
{
    int rc = 0;
    switch (sc->kind) {
    case K_SHOAL_TPUT:
        return topic_new(S, topics[0], 64, SHOAL_STORAGE_MEMORY, false);
    case K_SHOAL_RTT:
        rc = topic_new(S, topics[0], 64, SHOAL_STORAGE_MEMORY, true);
        return rc ? rc : topic_new(S, topics[1], 64, SHOAL_STORAGE_MEMORY, true);
    case K_FLOOR_TPUT:
        return make_floor_file(S, 2 * ((64ull << 20) + 4096));
    case K_FLOOR_RTT:
        return make_floor_file(S, 2 * ((1ull << 20) + 4096));
    case K_PIPE_RTT:
        if (pipe2(fds, O_CLOEXEC) < 0 || pipe2(fds + 2, O_CLOEXEC) < 0)
            return -errno;
        return 0;
    case K_UNIX_RTT:
        return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 ? -errno : 0;
    case K_BROKER_TPUT:
    case K_BROKER_RTT:
        snprintf(topics[0], 64, "stream%d", S->topic_seq++);
        snprintf(topics[1], 64, "stream%d", S->topic_seq++);
        return broker_streams(S, sc, topics, true);
    default:
        return 0;
    }
}

static void unprepare(struct suite *S, struct scenario *sc, char (*topics)[64], int *fds)
{
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (is_broker(sc))
        broker_streams(S, sc, topics, false);
    else
        for (int i = 0; i < 2; i++)
            if (topics[i][0])
                shoal_topic_delete(S->client, topics[i]);
    if (sc->kind == K_FLOOR_TPUT || sc->kind == K_FLOOR_RTT)
        unlink(S->floor_path);
}

static void sample(struct suite *S, int n, uint64_t *ops)
{
    for (int i = 0; i < n; i++)
        ops[i] = atomic_load(&S->ctl->child[i].ops);
}

/* The figure of a throughput run: the slowest receiving process (consumers are the first
 * children); ping-pong runs count the pinger's round trips. */
static void tput_figures(struct scenario *sc, const uint64_t *o0, const uint64_t *o1, double secs,
                         struct run *r)
{
    int receivers = sc->kind == K_SHOAL_TPUT || sc->kind == K_FLOOR_TPUT ? (int)sc->consumers : 1;
    double best = -1;
    if (sc->kind == K_ACKS_DISK)
        receivers = 1;
    for (int i = 0; i < receivers; i++) {
        double rate = (double)(o1[i] - o0[i]) / secs;
        if (best < 0 || rate < best)
            best = rate;
    }
    r->rate = best;
    r->mbps = best * sc->size / 1e6;
}

static void collect(struct suite *S, struct scenario *sc, int n, struct run *r)
{
    r->has_lat = sc->lower_is_better || sc->busy;
    if (r->has_lat)
        memcpy(r->pct, S->ctl->child[0].pct_ns, sizeof(r->pct));
    for (int i = 0; i < n; i++) {
        struct bench_child *ch = &S->ctl->child[i];
        r->gaps += ch->gaps;
        if (ch->error && ++failures)
            fprintf(stderr, "bench: %s: process %d failed: %s\n", sc->name, i,
                    shoal_strerror(ch->error));
    }
    if (r->gaps > 0 && ++failures) /* the figure would not be a delivered rate */
        fprintf(stderr, "bench: %s: consumers found %llu records missing\n", sc->name,
                (unsigned long long)r->gaps);
    if (sc->kind == K_SHOAL_TPUT || sc->kind == K_ACKS_DISK) {
        struct bench_child *p = &S->ctl->child[n - 1]; /* a producer */
        r->client_rss_kb = p->rss_kb;
        r->client_anon_kb = p->rss_anon_kb;
    }
}

/* Run the processes of one scenario once: warm up, measure, stop. */
static int run_kids(struct suite *S, struct scenario *sc, struct run *r, int measure_ms)
{
    char topics[2][64] = {"", ""};
    int fds[4] = {-1, -1, -1, -1}, n, rc;
    uint64_t o0[BENCH_MAX_CHILDREN], o1[BENCH_MAX_CHILDREN];
    int64_t t0, t1;

    memset(S->ctl, 0, sizeof(*S->ctl));
    if ((rc = prepare(S, sc, topics, fds)) < 0) {
        fprintf(stderr, "bench: %s: setup failed: %s\n", sc->name, shoal_strerror(rc));
        unprepare(S, sc, topics, fds);
        return rc;
    }
    n = setup_kids(S, sc, topics, fds);
    for (int i = 0; i < 4; i++) /* the children have their copies */
        if (fds[i] >= 0)
            close(fds[i]), fds[i] = -1;
    rc = wait_ready(S->ctl, n, 10000);
    bench_set_phase(S->ctl, BENCH_WARM);
    sleep_ms(S->warm_ms);
    sample(S, n, o0);
    t0 = bench_now_ns();
    bench_set_phase(S->ctl, BENCH_MEASURE);
    sleep_ms(measure_ms);
    sample(S, n, o1);
    t1 = bench_now_ns();
    r->daemon_rss_kb = bench_rss_kb(S->daemon, "VmRSS");
    r->daemon_anon_kb = bench_rss_kb(S->daemon, "RssAnon");
    bench_set_phase(S->ctl, BENCH_STOP);
    reap_kids(S);
    tput_figures(sc, o0, o1, (double)(t1 - t0) / 1e9, r);
    collect(S, sc, n, r);
    unprepare(S, sc, topics, fds);
    return rc;
}

static void run_memcpy(struct suite *S, struct run *r)
{
    size_t len = 64u << 20, chunk = 1u << 20, off = 0;
    uint8_t *src = malloc(len), *dst = malloc(len);
    uint64_t bytes = 0;
    int64_t t0, end;

    if (!src || !dst)
        goto out;
    memset(src, 1, len);
    memset(dst, 2, len);
    t0 = bench_now_ns();
    end = t0 + (int64_t)S->measure_ms * 1000000;
    while (bench_now_ns() < end) {
        memcpy(dst + off, src + off, chunk);
        __asm__ __volatile__("" ::"r"(dst) : "memory");
        bytes += chunk;
        off = (off + chunk) % len;
    }
    r->mbps = (double)bytes / ((double)(bench_now_ns() - t0) / 1e9) / 1e6;
    r->rate = r->mbps * 1e6 / chunk;
out:
    free(src);
    free(dst);
}

/* Sequential write speed of the data directory's disk as shoald uses it: 1 MiB pwrites
 * through the page cache, then fdatasync, timed together. An untimed first pass writes,
 * syncs and truncates the same file, so the timed pass gets page cache memory the guest
 * has just used: on this VM, memory the kernel takes fresh (free page reporting hands
 * freed memory back to the host) costs several times the copy, and the figure then
 * swung by 30% with whatever the previous scenario had freed. */
static void run_disk_write(struct suite *S, struct run *r)
{
    char path[128];
    size_t chunk = 1u << 20;
    uint8_t *buf = malloc(chunk);
    int64_t t0;
    int fd;

    snprintf(path, sizeof(path), "%s/data/disk-write.tmp", S->dir);
    if (!buf || (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0) {
        free(buf);
        return;
    }
    memset(buf, 'd', chunk);
    for (uint64_t done = 0; done < S->disk_bytes; done += chunk)
        if (pwrite(fd, buf, chunk, (off_t)done) != (ssize_t)chunk)
            break;
    if (fdatasync(fd) < 0 || ftruncate(fd, 0) < 0 || fdatasync(fd) < 0) {
        close(fd);
        unlink(path);
        free(buf);
        return;
    }
    t0 = bench_now_ns();
    for (uint64_t done = 0; done < S->disk_bytes; done += chunk)
        if (pwrite(fd, buf, chunk, (off_t)done) != (ssize_t)chunk)
            break;
    fdatasync(fd);
    r->mbps = (double)S->disk_bytes / ((double)(bench_now_ns() - t0) / 1e9) / 1e6;
    r->rate = r->mbps * 1e6 / chunk;
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    unlink(path);
    free(buf);
}

/* Wait until the daemon has fsynced everything appended to topic. */
static int wait_flushed(struct suite *S, const char *topic)
{
    for (int t = 0; t < 60000; t++) {
        shoal_topic_info_t *info;
        bool done;
        if (shoal_topic_describe(S->client, topic, &info) < 0)
            return -1;
        done = info->partitions[0].flushed_offset == info->partitions[0].log_end_offset;
        shoal_topic_info_free(info);
        if (done)
            return 0;
        sleep_ms(1);
    }
    return -1;
}

/* Evict a topic's segment files from the page cache. */
static void drop_segments(struct suite *S, const char *topic)
{
    char dir[256], path[600];
    struct dirent *e;
    DIR *d;

    snprintf(dir, sizeof(dir), "%s/data/%s-0", S->dir, topic);
    if (!(d = opendir(dir)))
        return;
    while ((e = readdir(d))) {
        int fd;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if ((fd = open(path, O_RDONLY)) >= 0) {
            fdatasync(fd);
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
    }
    closedir(d);
}

/* Fill a disk topic, restart shoald without its shared memory (as after a reboot: the
 * ring holds only the last segment), evict the segments from the page cache, and time a
 * consumer reading everything from the start. */
static int run_cold_read(struct suite *S, struct scenario *sc, struct run *r)
{
    char topic[64], total[64], shm[160];
    uint64_t records = S->cold_bytes / sc->size;
    int64_t t0;
    int rc;

    records -= records % sc->batch;
    snprintf(total, sizeof(total), "total=%llu", (unsigned long long)records);
    memset(S->ctl, 0, sizeof(*S->ctl));
    if ((rc = topic_new(S, topic, sizeof(topic), SHOAL_STORAGE_DISK, false)) < 0)
        return rc;
    spawn_role(S, "shoal-producer", 0, topic, NULL, sc->size, sc->batch, 0, total);
    wait_ready(S->ctl, 1, 10000);
    bench_set_phase(S->ctl, BENCH_WARM);
    while (!atomic_load(&S->ctl->child[0].done))
        sleep_ms(1);
    bench_set_phase(S->ctl, BENCH_STOP);
    reap_kids(S);
    if (wait_flushed(S, topic) < 0)
        return -1;
    daemon_stop(S);
    snprintf(shm, sizeof(shm), "rm -rf /dev/shm/shoal.%s", S->instance);
    if (system(shm) != 0 || (drop_segments(S, topic), daemon_start(S)) < 0)
        return -1;
    memset(S->ctl, 0, sizeof(*S->ctl));
    spawn_role(S, "shoal-consumer", 0, topic, NULL, sc->size, sc->batch, SHOAL_WAIT_DEFAULT, total);
    wait_ready(S->ctl, 1, 10000);
    t0 = bench_now_ns();
    bench_set_phase(S->ctl, BENCH_MEASURE);
    while (!atomic_load(&S->ctl->child[0].done))
        usleep(1000); /* not more often: the reader needs the CPU */
    r->rate = (double)atomic_load(&S->ctl->child[0].ops) / ((double)(bench_now_ns() - t0) / 1e9);
    r->mbps = r->rate * sc->size / 1e6;
    bench_set_phase(S->ctl, BENCH_STOP);
    reap_kids(S);
    collect(S, sc, 1, r);
    shoal_topic_delete(S->client, topic);
    return 0;
}

static int run_disk_kids(struct suite *S, struct scenario *sc, struct run *r)
{
    char topic[64], acks[] = "acks=1";
    uint64_t o0[1], o1[1];
    int64_t t0;
    int rc;

    memset(S->ctl, 0, sizeof(*S->ctl));
    if ((rc = topic_new(S, topic, sizeof(topic), SHOAL_STORAGE_DISK, false)) < 0)
        return rc;
    spawn_role(S, "shoal-producer", 0, topic, NULL, sc->size, sc->batch, 0, acks);
    wait_ready(S->ctl, 1, 10000);
    bench_set_phase(S->ctl, BENCH_WARM);
    sleep_ms(S->warm_ms);
    sample(S, 1, o0);
    t0 = bench_now_ns();
    bench_set_phase(S->ctl, BENCH_MEASURE);
    sleep_ms(S->disk_measure_ms);
    sample(S, 1, o1);
    tput_figures(sc, o0, o1, (double)(bench_now_ns() - t0) / 1e9, r);
    bench_set_phase(S->ctl, BENCH_STOP);
    reap_kids(S);
    collect(S, sc, 1, r);
    shoal_topic_delete(S->client, topic);
    return 0;
}

static int run_once(struct suite *S, struct scenario *sc, struct run *r)
{
    int rc = 0;
    memset(r, 0, sizeof(*r));
    r->base_run = -1;
    r->probe[0] = probe(S);
    switch (sc->kind) {
    case K_LINE_RTT: /* the probe itself, longer */
        r->has_lat = true;
        memcpy(r->pct, S->probe->child[0].pct_ns, sizeof(r->pct));
        r->rate = r->pct[0] > 0 ? 1e9 / (double)r->pct[0] : 0;
        break;
    case K_MEMCPY:
        run_memcpy(S, r);
        break;
    case K_DISK_WRITE:
        run_disk_write(S, r);
        break;
    case K_ACKS_DISK:
        rc = run_disk_kids(S, sc, r);
        break;
    case K_COLD_READ:
        rc = run_cold_read(S, sc, r);
        break;
    default:
        rc = run_kids(S, sc, r, S->measure_ms);
    }
    r->probe[1] = probe(S);
    r->mode = label(r->probe);
    if (rc < 0 && ++failures)
        fprintf(stderr, "bench: %s: run failed: %s\n", sc->name, shoal_strerror(rc));
    return rc;
}

/* ------------------------------------------------------------------ reporting */

static double figure(const struct scenario *sc, const struct run *r)
{
    if (sc->lower_is_better)
        return (double)r->pct[0];
    return sc->kind == K_ACKS_DISK || sc->kind == K_DISK_WRITE ? r->mbps : r->rate;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The label most runs had (near wins a tie; mixed only when nothing else). */
static int main_mode(const struct scenario *sc)
{
    int count[3] = {0, 0, 0};
    for (int i = 0; i < sc->nruns; i++)
        count[sc->runs[i].mode]++;
    if (count[MODE_NEAR] == 0 && count[MODE_FAR] == 0)
        return MODE_MIXED;
    return count[MODE_FAR] > count[MODE_NEAR] ? MODE_FAR : MODE_NEAR;
}

/* The median run among those with the given label, or NULL. */
static const struct run *median_run(const struct scenario *sc, int mode)
{
    const struct run *in[MAX_RUNS];
    int n = 0;
    for (int i = 0; i < sc->nruns; i++)
        if (sc->runs[i].mode == mode)
            in[n++] = &sc->runs[i];
    if (n == 0)
        return NULL;
    for (int i = 1; i < n; i++) /* insertion sort by figure */
        for (int j = i; j > 0 && figure(sc, in[j - 1]) > figure(sc, in[j]); j--) {
            const struct run *t = in[j];
            in[j] = in[j - 1];
            in[j - 1] = t;
        }
    return in[(n - 1) / 2];
}

/* Median over the pairs whose two runs share the label; -1 when there is none. */
static double paired_ratio(const struct scenario *sc, int mode)
{
    const struct scenario *b = scenario_find(sc->baseline);
    double ratios[MAX_RUNS];
    int n = 0;

    for (int i = 0; b && i < sc->nruns; i++) {
        const struct run *r = &sc->runs[i];
        if (r->base_run < 0 || r->mode != mode || b->runs[r->base_run].mode != mode)
            continue;
        if (figure(b, &b->runs[r->base_run]) > 0)
            ratios[n++] = figure(sc, r) / figure(b, &b->runs[r->base_run]);
    }
    if (n == 0)
        return -1;
    qsort(ratios, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? ratios[n / 2] : (ratios[n / 2 - 1] + ratios[n / 2]) / 2;
}

static void mode_counts(const struct scenario *sc, int *c)
{
    c[0] = c[1] = c[2] = 0;
    for (int i = 0; i < sc->nruns; i++)
        c[sc->runs[i].mode]++;
}

static int64_t rss_of(const struct scenario *sc, const struct run *r)
{
    if (!r)
        return -1;
    if (sc->kind == K_RSS_LOAD)
        return r->daemon_rss_kb;
    if (sc->kind == K_RSS_CLIENT)
        return r->client_rss_kb;
    return -1;
}

/* RSS rows borrow the runs of the 4 KiB 1->1 scenario: the daemon sampled at the end of
 * its measured window, the producer at its exit. */
static void fill_rss_rows(struct suite *S)
{
    struct scenario *load = scenario_find("shoal-4096-b64");
    for (size_t i = 0; i < NSCEN; i++) {
        struct scenario *sc = &scenarios[i];
        if (sc->kind == K_RSS_IDLE) {
            sc->nruns = 1;
            memset(&sc->runs[0], 0, sizeof(sc->runs[0]));
            sc->runs[0].daemon_rss_kb = S->daemon_idle_kb;
            sc->runs[0].daemon_anon_kb = S->daemon_idle_anon_kb;
            sc->runs[0].mode = MODE_MIXED;
        } else if ((sc->kind == K_RSS_LOAD || sc->kind == K_RSS_CLIENT) && load) {
            sc->nruns = load->nruns;
            memcpy(sc->runs, load->runs, sizeof(sc->runs));
        }
    }
}

static void fmt_ns(char *buf, size_t cap, int64_t ns)
{
    if (ns <= 0)
        snprintf(buf, cap, "-");
    else if (ns < 10000)
        snprintf(buf, cap, "%lld ns", (long long)ns);
    else
        snprintf(buf, cap, "%.1f us", (double)ns / 1e3);
}

static void print_row(const struct scenario *sc, const struct run *r, int mode)
{
    char p50[32], p99[32], ratio[32] = "-", rate[32] = "-", mb[32] = "-", rss[32] = "-";
    int c[3];
    double q;

    mode_counts(sc, c);
    fmt_ns(p50, sizeof(p50), r->has_lat ? r->pct[0] : 0);
    fmt_ns(p99, sizeof(p99), r->has_lat ? r->pct[2] : 0);
    if (sc->baseline && (q = paired_ratio(sc, mode)) >= 0)
        snprintf(ratio, sizeof(ratio), "%.2f", q);
    if (r->rate >= 1e5)
        snprintf(rate, sizeof(rate), "%.2f M", r->rate / 1e6);
    else if (r->rate > 0) /* the other brokers' one-at-a-time rates */
        snprintf(rate, sizeof(rate), "%.1f k", r->rate / 1e3);
    if (r->mbps > 0)
        snprintf(mb, sizeof(mb), "%.0f", r->mbps);
    if (sc->kind == K_RSS_IDLE || sc->kind == K_RSS_LOAD)
        snprintf(rss, sizeof(rss), "%lld KiB (anon %lld)", (long long)r->daemon_rss_kb,
                 (long long)r->daemon_anon_kb);
    else if (sc->kind == K_RSS_CLIENT)
        snprintf(rss, sizeof(rss), "%lld KiB (anon %lld)", (long long)r->client_rss_kb,
                 (long long)r->client_anon_kb);
    else if (rss_of(sc, r) >= 0)
        snprintf(rss, sizeof(rss), "%lld KiB", (long long)rss_of(sc, r));
    if (sc->kind >= K_RSS_IDLE)
        rate[0] = '-', rate[1] = 0, mb[0] = '-', mb[1] = 0;
    printf("%-22s %-5s %2d/%-2d/%-2d %10s %9s %9s %9s %-15s %6s %s\n", sc->name, mode_names[mode],
           c[0], c[1], c[2], rate, mb, p50, p99, sc->baseline ? sc->baseline : "-", ratio, rss);
}

/* One line naming the machine, so that a table copied elsewhere says where it ran. */
static void print_machine(void)
{
    char line[256], model[128] = "unknown CPU";
    struct utsname u;
    FILE *f = fopen("/proc/cpuinfo", "r");

    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(model, sizeof(model), "%s", strchr(line, ':') + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    if (f)
        fclose(f);
    if (uname(&u) < 0)
        snprintf(u.release, sizeof(u.release), "?");
    printf("machine: %s, %ld CPUs online, Linux %s\n", model, sysconf(_SC_NPROCESSORS_ONLN),
           u.release);
}

static void print_table(void)
{
    printf("\n%-22s %-5s %-8s %10s %9s %9s %9s %-15s %6s %s\n", "scenario", "mode", "n/f/mix",
           "records/s", "MB/s", "p50", "p99", "baseline", "ratio", "rss");
    for (size_t i = 0; i < NSCEN; i++) {
        struct scenario *sc = &scenarios[i];
        for (int m = 0; m < 3 && sc->nruns; m++) {
            const struct run *r = median_run(sc, m);
            if (r)
                print_row(sc, r, m);
        }
    }
}

static void json_num(FILE *f, const char *key, double v, bool ok, const char *sep)
{
    if (ok)
        fprintf(f, "\"%s\": %.6g%s", key, v, sep);
    else
        fprintf(f, "\"%s\": null%s", key, sep);
}

static void json_scenario(FILE *f, const struct scenario *sc, const struct run *r, int mode)
{
    static const char *const pk[5] = {"p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"};
    double q = sc->baseline ? paired_ratio(sc, mode) : -1;
    int c[3];
    bool tput = sc->kind < K_RSS_IDLE && !sc->lower_is_better;

    mode_counts(sc, c);
    fprintf(f, "  {\"scenario\": \"%s\", ", sc->name);
    json_num(f, "record_bytes", sc->size, sc->size > 0 && sc->kind != K_MEMCPY, ", ");
    json_num(f, "producers", sc->producers, sc->producers > 0, ", ");
    json_num(f, "consumers", sc->consumers, sc->consumers > 0, ", ");
    json_num(f, "batch", sc->batch, sc->batch > 0, ", ");
    json_num(f, "records_per_s", r->rate, r->rate > 0 && sc->kind < K_RSS_IDLE, ", ");
    json_num(f, "mb_per_s", r->mbps, r->mbps > 0 && tput, ", ");
    for (int i = 0; i < 5; i++)
        json_num(f, pk[i], (double)r->pct[i], r->has_lat, ", ");
    if (sc->baseline)
        fprintf(f, "\"baseline\": \"%s\", ", sc->baseline);
    else
        fprintf(f, "\"baseline\": null, ");
    json_num(f, "ratio", q, q >= 0, ", ");
    json_num(f, "rss_kb", (double)(sc->kind == K_RSS_IDLE ? r->daemon_rss_kb : rss_of(sc, r)),
             sc->kind >= K_RSS_IDLE, ", ");
    json_num(f, "rss_anon_kb",
             (double)(sc->kind == K_RSS_CLIENT ? r->client_anon_kb : r->daemon_anon_kb),
             sc->kind >= K_RSS_IDLE, ", ");
    fprintf(f, "\"mode\": \"%s\", \"runs_near\": %d, \"runs_far\": %d, \"runs_mixed\": %d}",
            mode_names[mode], c[0], c[1], c[2]);
}

/* One object per scenario: the median run of the label most runs had. */
static int write_json(const char *path)
{
    FILE *f = fopen(path, "w");
    bool first = true;
    if (!f)
        return -1;
    fprintf(f, "[\n");
    for (size_t i = 0; i < NSCEN; i++) {
        const struct scenario *sc = &scenarios[i];
        int mode = main_mode(sc);
        const struct run *r = sc->nruns ? median_run(sc, mode) : NULL;
        if (!r)
            continue;
        fprintf(f, "%s", first ? "" : ",\n");
        json_scenario(f, sc, r, mode);
        first = false;
    }
    fprintf(f, "\n]\n");
    return fclose(f);
}

/* ------------------------------------------------------------------ the suite */

static bool selected(const struct suite *S, const struct scenario *sc)
{
    return !S->only || strstr(sc->name, S->only) != NULL;
}

static void progress(const struct scenario *sc, const struct run *r)
{
    fprintf(stderr, "  %-22s %-5s probe %lld/%lld ns  %.3g rec/s  p50 %lld ns\n", sc->name,
            mode_names[r->mode], (long long)r->probe[0], (long long)r->probe[1], r->rate,
            (long long)(r->has_lat ? r->pct[0] : 0));
}

/* Another broker's server, started on first use. A broker that is not installed skips
 * its scenarios, saying so (not a failure: it is only there for context); one that fails
 * to start fails the suite, once. */
static bool broker_ready(struct suite *S, const struct scenario *sc)
{
    struct broker_server *b = &S->brokers[sc->broker];
    int port;

    if (!is_broker(sc))
        return true;
    if (b->pid != 0)
        return b->pid > 0;
    if (sc->broker == BROKER_REDIS)
        b->pid = bench_redis_start(S->dir, b->addr, sizeof(b->addr));
    else if (sc->broker == BROKER_NATS)
        b->pid = bench_nats_start(S->dir, &port);
    else
        b->pid = bench_rabbitmq_start(S->dir, &port, &b->helper);
    if (sc->broker != BROKER_REDIS && b->pid > 0)
        snprintf(b->addr, sizeof(b->addr), "%d", port);
    if (b->pid == 0)
        fprintf(stderr,
                "bench: %s is not installed, so the %s-* scenarios are skipped "
                "(apt-get install %s)\n",
                broker_packages[sc->broker], broker_names[sc->broker], broker_packages[sc->broker]);
    if (b->pid < 0)
        failures++;
    if (b->pid <= 0)
        b->pid = -1;
    return b->pid > 0;
}

static void run_scenario(struct suite *S, struct scenario *sc)
{
    struct scenario *b = scenario_find(sc->baseline);
    /* short runs take one of each scenario that is slow to repeat (filling a disk topic)
     * or only there for context (the other brokers): bench-quick stays under a minute */
    bool once = sc->kind == K_COLD_READ || is_broker(sc);
    int reps = once && strcmp(S->mode, "full") ? 1 : S->reps;

    if (stop_signal || !broker_ready(S, sc))
        return;
    for (int i = 0; i < reps && sc->nruns < MAX_RUNS && !stop_signal; i++) {
        struct run *r = &sc->runs[sc->nruns];
        int base = -1;
        if (b && b->nruns < MAX_RUNS) { /* the baseline right before, same placement */
            base = b->nruns;
            run_once(S, b, &b->runs[b->nruns++]);
            progress(b, &b->runs[base]);
        }
        run_once(S, sc, r);
        r->base_run = base;
        sc->nruns++;
        progress(sc, r);
    }
}

static void run_all(struct suite *S)
{
    for (size_t i = 0; i < NSCEN; i++) /* scenarios with a baseline, in pairs */
        if (scenarios[i].baseline && selected(S, &scenarios[i]))
            run_scenario(S, &scenarios[i]);
    for (size_t i = 0; i < NSCEN; i++) { /* what no pairing ran */
        struct scenario *sc = &scenarios[i];
        if (!sc->baseline && sc->nruns == 0 && sc->kind < K_RSS_IDLE && selected(S, sc))
            run_scenario(S, sc);
    }
    fill_rss_rows(S);
}

static int suite_init(struct suite *S)
{
    snprintf(S->dir, sizeof(S->dir), "/tmp/shoal-bench-XXXXXX");
    if (!mkdtemp(S->dir))
        return -1;
    snprintf(S->instance, sizeof(S->instance), "bench-%d", (int)getpid());
    snprintf(S->socket, sizeof(S->socket), "%s/run/shoald.sock", S->dir);
    snprintf(S->ctl_path, sizeof(S->ctl_path), "/dev/shm/shoal-bench-%d.ctl", (int)getpid());
    snprintf(S->probe_path, sizeof(S->probe_path), "/dev/shm/shoal-bench-%d.probe", (int)getpid());
    snprintf(S->floor_path, sizeof(S->floor_path), "/dev/shm/shoal-bench-%d.floor", (int)getpid());
    if (!(S->ctl = map_ctl(S->ctl_path, true)) || probe_start(S) < 0)
        return -1;
    if (daemon_start(S) < 0)
        return -1;
    sleep_ms(100);
    S->daemon_idle_kb = bench_rss_kb(S->daemon, "VmRSS");
    S->daemon_idle_anon_kb = bench_rss_kb(S->daemon, "RssAnon");
    return 0;
}

static void suite_fini(struct suite *S)
{
    char cmd[256];
    for (int i = 0; i < BROKER_COUNT; i++) {
        bench_server_stop(S->brokers[i].pid);
        bench_server_stop(S->brokers[i].helper);
    }
    daemon_stop(S);
    if (S->probe) {
        bench_set_phase(S->probe, BENCH_STOP);
        for (int i = 0; i < 2; i++)
            if (S->probe_pids[i] > 0)
                waitpid(S->probe_pids[i], NULL, 0);
    }
    unlink(S->ctl_path);
    unlink(S->probe_path);
    unlink(S->floor_path);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' /dev/shm/shoal.%s", S->dir, S->instance);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", S->dir);
}

static void suite_mode(struct suite *S, const char *mode)
{
    S->mode = mode;
    if (!strcmp(mode, "full")) {
        S->warm_ms = 300, S->measure_ms = 700, S->disk_measure_ms = 2000, S->reps = 5;
        S->disk_bytes = 1ull << 30, S->cold_bytes = 1ull << 30;
    } else if (!strcmp(mode, "smoke")) {
        S->warm_ms = 10, S->measure_ms = 30, S->disk_measure_ms = 100, S->reps = 1;
        S->disk_bytes = 16ull << 20, S->cold_bytes = 8ull << 20;
    } else {
        S->mode = "quick";
        S->warm_ms = 30, S->measure_ms = 100, S->disk_measure_ms = 400, S->reps = 3;
        S->disk_bytes = 128ull << 20, S->cold_bytes = 128ull << 20;
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: shoal-bench [--mode full|quick|smoke] [--json FILE] "
                    "[--shoald PATH] [--only SUBSTRING]\n");
    return 2;
}

static int driver_main(int argc, char **argv)
{
    static struct suite S;
    ssize_t n;

    suite_mode(&S, "quick");
    snprintf(S.shoald, sizeof(S.shoald), "build/shoald");
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        if (!strcmp(argv[i], "--mode"))
            suite_mode(&S, argv[++i]);
        else if (!strcmp(argv[i], "--json"))
            S.json = argv[++i];
        else if (!strcmp(argv[i], "--shoald"))
            snprintf(S.shoald, sizeof(S.shoald), "%s", argv[++i]);
        else if (!strcmp(argv[i], "--only"))
            S.only = argv[++i];
        else
            return usage();
    }
    if ((n = readlink("/proc/self/exe", S.self, sizeof(S.self) - 1)) < 0)
        return 1;
    S.self[n] = '\0';
    signal(SIGPIPE, SIG_IGN);
    catch_stop_signals();
    fprintf(stderr, "shoal-bench: %s run, warm-up %d ms, measure %d ms, %d repetitions\n", S.mode,
            S.warm_ms, S.measure_ms, S.reps);
    if (suite_init(&S) < 0) {
        fprintf(stderr, "shoal-bench: setup failed\n");
        suite_fini(&S);
        return 1;
    }
    run_all(&S);
    suite_fini(&S);
    if (stop_signal) {
        fprintf(stderr, "shoal-bench: stopped by %s, its processes and files removed\n",
                strsignal(stop_signal));
        return 128 + stop_signal;
    }
    print_machine();
    print_table();
    if (S.json && write_json(S.json) != 0) {
        fprintf(stderr, "shoal-bench: cannot write %s\n", S.json);
        return 1;
    }
    if (failures)
        fprintf(stderr, "shoal-bench: %d failures\n", failures);
    return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ child side */

static const struct {
    const char *name;
    int (*fn)(struct bench_ctl *, const struct bench_args *);
} roles[] = {
    {"shoal-producer", role_shoal_producer},
    {"shoal-consumer", role_shoal_consumer},
    {"shoal-ping", role_shoal_ping},
    {"shoal-pong", role_shoal_pong},
    {"floor-producer", role_floor_producer},
    {"floor-consumer", role_floor_consumer},
    {"floor-ping", role_floor_ping},
    {"floor-pong", role_floor_pong},
    {"line-ping", role_line_ping},
    {"line-pong", role_line_pong},
    {"fd-ping", role_fd_ping},
    {"fd-pong", role_fd_pong},
    {"busy-spin", role_busy_spin},
    {"busy-tick", role_busy_tick},
    {"redis-producer", role_redis_producer},
    {"redis-consumer", role_redis_consumer},
    {"redis-ping", role_redis_ping},
    {"redis-pong", role_redis_pong},
    {"nats-producer", role_nats_producer},
    {"nats-consumer", role_nats_consumer},
    {"nats-ping", role_nats_ping},
    {"nats-pong", role_nats_pong},
    {"rabbitmq-producer", role_rabbitmq_producer},
    {"rabbitmq-consumer", role_rabbitmq_consumer},
    {"rabbitmq-ping", role_rabbitmq_ping},
    {"rabbitmq-pong", role_rabbitmq_pong},
};

static void parse_kv(struct bench_args *a, const char *kv)
{
    const char *v = strchr(kv, '=');
    size_t k = v ? (size_t)(v - kv) : 0;
#define KEY(s) (k == strlen(s) && !strncmp(kv, s, k))
    if (!v)
        return;
    v++;
    if (KEY("role"))
        a->role = v;
    else if (KEY("ctl"))
        a->ctl_path = v;
    else if (KEY("socket"))
        a->socket = v;
    else if (KEY("topic"))
        a->topic = v;
    else if (KEY("topic2"))
        a->topic2 = v;
    else if (KEY("server"))
        a->server = v;
    else if (KEY("idx"))
        a->idx = atoi(v);
    else if (KEY("fd"))
        a->fd = atoi(v);
    else if (KEY("fd2"))
        a->fd2 = atoi(v);
    else if (KEY("size"))
        a->size = (uint32_t)strtoul(v, NULL, 10);
    else if (KEY("batch"))
        a->batch = (uint32_t)strtoul(v, NULL, 10);
    else if (KEY("wait"))
        a->wait = (uint32_t)strtoul(v, NULL, 10);
    else if (KEY("acks"))
        a->acks = (uint32_t)strtoul(v, NULL, 10);
    else if (KEY("total"))
        a->total = strtoull(v, NULL, 10);
    else if (KEY("cpu"))
        a->cpu = atoi(v);
    else if (KEY("fetch_min"))
        a->fetch_min = (uint32_t)strtoul(v, NULL, 10);
#undef KEY
}

static int child_main(int argc, char **argv)
{
    struct bench_args a = {.batch = 1, .fd = -1, .fd2 = -1, .cpu = -1};
    struct bench_ctl *ctl;

    for (int i = 2; i < argc; i++)
        parse_kv(&a, argv[i]);
    if (!a.role || !a.ctl_path || a.idx < 0 || a.idx >= BENCH_MAX_CHILDREN ||
        !(ctl = map_ctl(a.ctl_path, false)))
        return 2;
    if (a.cpu >= 0) { /* the two sides of a 1->1 scenario sit on different CPUs */
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(a.cpu, &set);
        sched_setaffinity(0, sizeof(set), &set);
    }
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (!strcmp(roles[i].name, a.role))
            return roles[i].fn(ctl, &a);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "role"))
        return child_main(argc, argv);
    return driver_main(argc, argv);
}
