/* main.c - shoald: the shoal supervisor daemon.
 *
 * Runs in the foreground and logs to stderr. Threads: the main thread serves the control
 * socket and handles signals (through a signalfd, so no handler runs at a random point);
 * the flusher thread copies rings to disk segments every flush.interval.ms, fsyncs per
 * policy, frees flushed slots and clears reader entries of dead processes. SIGTERM and
 * SIGINT stop both, after which every ring is written and fsynced before exit 0. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define REAP_INTERVAL_NS (100 * 1000000LL)

struct daemon {
    shoald_config_t cfg;
    broker_t broker;
    server_t *server;
    int sig_fd;
    volatile sig_atomic_t stop;
    pthread_t flusher;
};

static void *flusher_main(void *arg)
{
    struct daemon *d = arg;
    int64_t last_reap = 0;

    while (!d->stop) {
        int64_t now = shoal__mono_ns();
        bool reap = now - last_reap >= REAP_INTERVAL_NS;
        broker_flush_all(&d->broker, false, reap);
        if (reap)
            last_reap = now;
        broker_wait_for_work(&d->broker, d->cfg.flush_interval_ms);
    }
    return NULL;
}

static void on_signal(void *arg)
{
    struct daemon *d = arg;
    struct signalfd_siginfo si;
    while (read(d->sig_fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            log_info("SIGHUP: nothing to reload yet");
            continue;
        }
        log_notice("%s received: persisting and stopping", strsignal((int)si.ssi_signo));
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

static int daemon_run(struct daemon *d)
{
    int rc = broker_open(&d->broker, &d->cfg);
    if (rc < 0)
        return rc;
    if ((rc = server_open(&d->server, &d->broker)) < 0)
        goto out_broker;
    if ((rc = -pthread_create(&d->flusher, NULL, flusher_main, d)) < 0) {
        log_error("cannot start the flusher: %s", strerror(-rc));
        goto out_server;
    }
    log_notice("shoald %s ready: instance %s, socket %s", SHOAL_VERSION_STRING, d->cfg.instance,
               d->broker.socket_path);
    rc = server_run(d->server, &d->stop, d->sig_fd, on_signal, d);
    d->stop = 1;
    pthread_join(d->flusher, NULL);
out_server:
    server_close(d->server);
out_broker:
    broker_close(&d->broker);
    if (rc == 0)
        log_notice("stopped cleanly");
    return rc;
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
    if (signals_setup(&d) < 0) {
        log_error("cannot set up signal handling: %s", strerror(errno));
        return 1;
    }
    rc = daemon_run(&d);
    close(d.sig_fd);
    return rc < 0 ? 1 : 0;
}
