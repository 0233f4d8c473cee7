/* main.c - shoald: the shoal supervisor daemon.
 *
 * Runs in the foreground and logs to stderr. Threads: the main thread serves the control
 * socket and handles signals (through a signalfd, so no handler runs at a random point);
 * the flusher thread copies rings to disk segments every flush.interval.ms (sleeping
 * until an append once all is written), fsyncs per policy, frees flushed slots and clears
 * reader entries of dead processes. SIGTERM and SIGINT stop both, after which every ring
 * is written and fsynced before exit 0.
 *
 * Under systemd (Type=notify, notify.c) it reports READY=1 once the control socket
 * listens, STATUS= lines with topics/partitions/clients, RELOADING=1 around a SIGHUP reload
 * and STOPPING=1 at SIGTERM. WATCHDOG=1 comes from the flusher thread, every half of
 * $WATCHDOG_USEC, and only while the main thread's tick is recent too: a wedged flusher
 * (which would stop making data durable) or a wedged control loop both stop the pings, and
 * systemd restarts the daemon. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"
#include "notify.h"
#include "partition.h"
#include "server.h"
#include "util.h"

#define TICK_MAX_NS (1000 * 1000000LL) /* STATUS refresh */
#define TICK_MIN_NS (10 * 1000000LL)

struct daemon {
    shoald_config_t cfg;
    broker_t broker;
    server_t *server;
    int sig_fd;
    int tick_fd; /* timerfd: the main thread's heartbeat and STATUS refresh */
    volatile sig_atomic_t stop;
    pthread_t flusher;
    int argc; /* kept to read the settings again on SIGHUP */
    char **argv;
    uint64_t watchdog_ns;          /* 0: no watchdog */
    _Atomic int64_t main_beat;     /* last main-thread tick (monotonic ns) */
    _Atomic int flush_interval_ms; /* the flusher's copy of cfg.flush_interval_ms */
    int64_t last_ping;             /* flusher only */
    char status[160];              /* last STATUS= sent, main thread only */
};

/* Ping the watchdog from the flusher every half period, while the main loop ticks too. */
static void watchdog_ping(struct daemon *d)
{
    int64_t now = shoal__mono_ns(), half = (int64_t)(d->watchdog_ns / 2);
    if (!d->watchdog_ns || now - d->last_ping < half)
        return;
    if (now - shoal_load_acquire(&d->main_beat) > half)
        return; /* the control loop is stuck: let the pings lapse */
    notify_send("WATCHDOG=1");
    d->last_ping = now;
}

/* A wait of ms for the flusher, shortened so that the watchdog never misses its ping. */
static int flusher_wait_ms(const struct daemon *d, int ms)
{
    int64_t wd_ms = (int64_t)(d->watchdog_ns / 4000000);
    return d->watchdog_ns && wd_ms < ms ? (int)(wd_ms > 0 ? wd_ms : 1) : ms;
}

/* The flusher's loop: a pass over every partition, then a wait of flush.interval.ms that
 * an ACKS_DISK waiter cuts short. Once every partition is idle (all written, nobody
 * waiting) it sleeps up to FLUSH_IDLE_MS instead, until an append or the next flush.ms
 * fsync or segment.ms roll, so an idle daemon wakes once a second rather than at every
 * tick; retention and compaction, which run by the clock, keep that granularity. A pass
 * that copied FLUSH_BUSY_BYTES or more means records are streaming in: the next pass
 * starts at once, so the disk gets each chunk as soon as it is appended rather than a
 * tick's worth at a time (a producer at 2 GB/s appends 10 MB in a 5 ms tick, which an
 * ACKS_DISK waiter would then wait for). The loop still only works while there is data
 * to copy; a trickle of small appends is batched per tick. */
#define FLUSH_BUSY_BYTES (256u << 10)
#define FLUSH_IDLE_MS    1000

static void *flusher_main(void *arg)
{
    struct daemon *d = arg;
    int64_t last_reap = 0;

    for (;;) {
        /* Before the stop check: a stop (or a reload) during the pass ends the wait. */
        uint32_t wake = broker_wake_seq(&d->broker);
        int64_t now = shoal__mono_ns();
        bool reap = now - last_reap >= DPART_REAP_NS;
        uint64_t before = dpart_bytes_flushed();
        if (d->stop)
            break;
        broker_flush_all(&d->broker, false, reap);
        if (reap)
            last_reap = now;
        watchdog_ping(d);
        if (dpart_bytes_flushed() - before < FLUSH_BUSY_BYTES)
            broker_wait_for_work(&d->broker, wake,
                                 flusher_wait_ms(d, shoal_load_relaxed(&d->flush_interval_ms)),
                                 flusher_wait_ms(d, FLUSH_IDLE_MS));
    }
    return NULL;
}

/* ------------------------------------------------------------------ status and reload */

/* Send STATUS= when it changed (always with READY=1 when ready is set). Main thread. */
static void report_status(struct daemon *d, bool ready)
{
    char line[sizeof(d->status)], rings[SHOAL_SIZE_TEXT_BYTES];
    size_t topics, parts = 0;

    pthread_rwlock_rdlock(&d->broker.lock);
    topics = d->broker.ntopics;
    for (size_t i = 0; i < topics; i++)
        parts += d->broker.topics[i]->cfg.partitions;
    shoal__size_text(rings, broker_served_shm_bytes(&d->broker));
    pthread_rwlock_unlock(&d->broker.lock);
    snprintf(line, sizeof(line), "serving %zu topics, %zu partitions (%s of rings), %zu clients",
             topics, parts, rings, server_client_count(d->server));
    if (!ready && !strcmp(line, d->status))
        return;
    memcpy(d->status, line, sizeof(line));
    notify_send("%sSTATUS=%s", ready ? "READY=1\n" : "", line);
}

/* A setting only read at start: say so when a reload finds it changed. */
static void warn_if_changed(const char *key, const char *was, const char *now)
{
    if (strcmp(was, now))
        log_warn("reload: %s changed from %s to %s: takes effect at the next restart", key, was,
                 now);
}

/* Apply what a reload may change while running; the rest is only reported. */
static void reload_apply(struct daemon *d, const shoald_config_t *next)
{
    warn_if_changed("data.dir", d->cfg.data_dir, next->data_dir);
    warn_if_changed("runtime.dir", d->cfg.runtime_dir, next->runtime_dir);
    warn_if_changed("instance", d->cfg.instance, next->instance);
    warn_if_changed("shm.dir", d->cfg.shm_dir, next->shm_dir);
    /* The flusher reads flush.ms and flush.drop.cache, and the group coordinator the
     * offsets' retention, under the registry lock; the flusher has its own atomic copy of
     * the interval; allow.gid is read by this thread only. */
    pthread_rwlock_wrlock(&d->broker.lock);
    d->cfg.flush_ms = next->flush_ms;
    d->cfg.flush_drop_cache = next->flush_drop_cache;
    d->cfg.offsets_retention_minutes = next->offsets_retention_minutes;
    d->cfg.offsets_retention_ms = next->offsets_retention_ms;
    d->cfg.offsets_retention_check_ms = next->offsets_retention_check_ms;
    d->cfg.max_shm_bytes = next->max_shm_bytes; /* read by creates and growth */
    pthread_rwlock_unlock(&d->broker.lock);
    broker_shm_cap_check(&d->broker);
    d->cfg.flush_interval_ms = next->flush_interval_ms;
    shoal_store_relaxed(&d->flush_interval_ms, next->flush_interval_ms);
    broker_wake(&d->broker); /* a shorter flush.ms or interval applies at once */
    d->cfg.allow_gid = next->allow_gid;
    d->cfg.group_max_session_timeout_ms = next->group_max_session_timeout_ms; /* this thread */
    d->cfg.log_level = next->log_level;
    memcpy(d->cfg.log_file, next->log_file, sizeof(next->log_file));
    log_set_level(d->cfg.log_level);
    server_set_access(d->server); /* also says again what keeps allow.gid from the socket */
}

/* SIGHUP: read --config files and the command line again, apply what can change while
 * running, reopen the log. A bad config keeps the running settings (and "reloaded:" is
 * then not logged: nothing was). */
static void reload(struct daemon *d)
{
    static shoald_config_t next; /* main thread only; too big for the stack */
    char err[512];
    int rc, parsed;

    notify_send("RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%lld",
                (long long)(shoal__mono_ns() / 1000));
    config_init(&next);
    parsed = config_parse_args(&next, d->argc, d->argv, err, sizeof(err));
    if (parsed != 0)
        log_error("reload: %s; keeping the running settings", parsed < 0 ? err : "bad arguments");
    else
        reload_apply(d, &next);
    if ((rc = log_reopen(d->cfg.log_file)) < 0)
        log_error("reload: cannot open log file %s: %s", d->cfg.log_file, shoal_errmsg());
    if (parsed == 0 && (rc >= 0 || !d->cfg.log_file[0]))
        log_notice("reloaded: flush.interval.ms=%d flush.ms=%d flush.drop.cache=%d "
                   "allow.gid=%ld log.level=%s offsets.retention=%lld ms (checked every %d ms) "
                   "group.max.session.timeout.ms=%d max.shm.bytes=%ld",
                   d->cfg.flush_interval_ms, d->cfg.flush_ms, d->cfg.flush_drop_cache,
                   d->cfg.allow_gid, log_level_name(d->cfg.log_level),
                   (long long)config_offsets_retention_ms(&d->cfg),
                   d->cfg.offsets_retention_check_ms, d->cfg.group_max_session_timeout_ms,
                   d->cfg.max_shm_bytes);
    report_status(d, true);
}

/* The main loop's wake-ups: signals and the tick timer (both non-blocking). */
static void on_wake(void *arg)
{
    struct daemon *d = arg;
    struct signalfd_siginfo si;
    uint64_t ticks;

    if (read(d->tick_fd, &ticks, sizeof(ticks)) == sizeof(ticks)) {
        shoal_store_release(&d->main_beat, shoal__mono_ns());
        report_status(d, false);
    }
    while (read(d->sig_fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            log_notice("SIGHUP received: reloading settings and reopening the log");
            reload(d);
            continue;
        }
        log_notice("%s received: persisting and stopping", strsignal((int)si.ssi_signo));
        notify_send("STOPPING=1\nSTATUS=persisting and stopping");
        d->stop = 1;
    }
}

static int signals_setup(struct daemon *d)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    /* Blocked before any thread starts, so every thread inherits the mask. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    d->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return d->sig_fd < 0 ? -errno : 0;
}

/* The main thread's tick, and the one fd the server loop polls for signals and ticks. */
static int tick_setup(struct daemon *d, int *wake_fd)
{
    int64_t ns = TICK_MAX_NS;
    struct itimerspec its;
    struct epoll_event ev = {.events = EPOLLIN};
    int ep;

    if (d->watchdog_ns && (int64_t)(d->watchdog_ns / 4) < ns)
        ns = (int64_t)(d->watchdog_ns / 4) > TICK_MIN_NS ? (int64_t)(d->watchdog_ns / 4)
                                                         : TICK_MIN_NS;
    its.it_interval.tv_sec = its.it_value.tv_sec = ns / 1000000000;
    its.it_interval.tv_nsec = its.it_value.tv_nsec = ns % 1000000000;
    d->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (d->tick_fd < 0 || timerfd_settime(d->tick_fd, 0, &its, NULL) < 0)
        return -errno;
    shoal_store_release(&d->main_beat, shoal__mono_ns());
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, d->sig_fd, &ev) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, d->tick_fd, &ev) < 0) {
        int rc = -errno;
        if (ep >= 0)
            close(ep);
        return rc;
    }
    *wake_fd = ep;
    return 0;
}

static int daemon_run(struct daemon *d)
{
    int wake_fd = -1, closed;
    int rc = broker_open(&d->broker, &d->cfg);
    if (rc < 0)
        return rc;
    if ((rc = server_open(&d->server, &d->broker)) < 0)
        goto out_broker;
    if ((rc = tick_setup(d, &wake_fd)) < 0) {
        log_error("cannot set up the main loop's timer: %s", strerror(-rc));
        goto out_server;
    }
    if ((rc = -pthread_create(&d->flusher, NULL, flusher_main, d)) < 0) {
        log_error("cannot start the flusher: %s", strerror(-rc));
        goto out_server;
    }
    log_notice("shoald %s ready: instance %s, socket %s", SHOAL_VERSION_STRING, d->cfg.instance,
               d->broker.socket_path);
    report_status(d, true); /* READY=1: the socket listens, connections queue until served */
    rc = server_run(d->server, &d->stop, wake_fd, on_wake, d);
    d->stop = 1;
    broker_wake(&d->broker); /* the flusher may be asleep for a whole flush.interval.ms */
    pthread_join(d->flusher, NULL);
out_server:
    if (wake_fd >= 0)
        close(wake_fd);
    server_close(d->server);
out_broker:
    if ((closed = broker_close(&d->broker)) < 0 && rc == 0) {
        log_error("stopped with records not on disk (above)");
        rc = closed;
    } else if (rc == 0) {
        log_notice("stopped cleanly");
    }
    return rc;
}

/* A descriptor per client connection and per open segment file: the soft limit (1024
 * under systemd) is too few for a busy broker, and the hard limit is ours to take. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("cannot raise the open file limit: %s", strerror(errno));
    }
}

int main(int argc, char **argv)
{
    static struct daemon d;
    char err[512];
    int rc;

    config_init(&d.cfg);
    rc = config_parse_args(&d.cfg, argc, argv, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "shoald: %s\n", err);
        return 2;
    }
    log_set_level(d.cfg.log_level);
    if ((rc = log_reopen(d.cfg.log_file)) < 0) {
        fprintf(stderr, "shoald: cannot open log file %s: %s\n", d.cfg.log_file, shoal_errmsg());
        return 1;
    }
    if ((rc = notify_init()) < 0)
        log_warn("NOTIFY_SOCKET is set but unusable (%s): not reporting to systemd", strerror(-rc));
    d.watchdog_ns = notify_watchdog_usec() * 1000;
    d.argc = argc;
    d.argv = argv;
    shoal_store_relaxed(&d.flush_interval_ms, d.cfg.flush_interval_ms);
    d.tick_fd = -1;
    raise_fd_limit();
    if (signals_setup(&d) < 0) {
        log_error("cannot set up signal handling: %s", strerror(errno));
        return 1;
    }
    rc = daemon_run(&d);
    if (rc < 0)
        notify_send("STATUS=failed: %s\nERRNO=%d", shoal_strerror(rc),
                    shoal__is_code(rc) ? 0 : -rc);
    close(d.sig_fd);
    if (d.tick_fd >= 0)
        close(d.tick_fd);
    notify_close();
    return rc < 0 ? 1 : 0;
}
