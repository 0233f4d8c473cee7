/* test_notify.c - shoald under a stand-in for systemd's notify protocol.
 *
 * Each test binds a datagram socket (a path, or an abstract '@' address), passes it to a
 * real shoald as $NOTIFY_SOCKET (with $WATCHDOG_USEC where the watchdog is tested), and
 * reads what the daemon reports: READY=1 once its control socket serves clients, STATUS=
 * lines that follow topics and clients, WATCHDOG=1 every half period, RELOADING=1 and a
 * new READY=1 around a SIGHUP reload, STOPPING=1 at SIGTERM, and exit status 0. Reload
 * tests rewrite the --config file between signals, including a broken one (the running
 * settings stay) and a log.file that is renamed away, reopened, and then unset.
 *
 * PID 1 is not systemd where these tests run, so Restart=on-failure after a SIGKILL is not
 * exercised here; what it relies on (a killed daemon restarted on the same directories
 * recovers every acknowledged record) is tested in test_broker.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "shoal.h"

#define TEST_TIMEOUT_S 40
#define MSG_MAX        1024

struct fixture {
    struct harness_daemon d;
    char dir[PATH_MAX / 4]; /* the notify socket and config files */
    char addr[108];         /* the NOTIFY_SOCKET value */
    int fd;                 /* our end: bound datagram socket */
    bool passed;
};

#define NOTIFY_TEST(name)                                                                          \
    static void name##_body(struct fixture *f);                                                    \
    static void name(void **state)                                                                 \
    {                                                                                              \
        struct fixture *f = *state;                                                                \
        name##_body(f);                                                                            \
        f->passed = true;                                                                          \
    }                                                                                              \
    static void name##_body(struct fixture *f)

/* ------------------------------------------------------------------ helpers */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Bind the listening end. abstract: "@shoal-test-notify-<pid>", else <dir>/notify.sock. */
static void notify_listen(struct fixture *f, bool abstract)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    socklen_t len;

    if (abstract)
        snprintf(f->addr, sizeof(f->addr), "@shoal-test-notify-%d", (int)getpid());
    else
        assert_true(snprintf(f->addr, sizeof(f->addr), "%.80s/notify.sock", f->dir) <
                    (int)sizeof(f->addr));
    memcpy(sa.sun_path, f->addr, strlen(f->addr));
    if (abstract)
        sa.sun_path[0] = '\0';
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(f->addr) + !abstract);
    f->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(f->fd >= 0);
    assert_int_equal(bind(f->fd, (struct sockaddr *)&sa, len), 0);
}

/* One message within timeout_ms into buf (NUL-terminated): its length, or -1. */
static int notify_recv(struct fixture *f, char *buf, int timeout_ms)
{
    struct pollfd p = {.fd = f->fd, .events = POLLIN};
    ssize_t n;
    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    n = recv(f->fd, buf, MSG_MAX - 1, 0);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return (int)n;
}

/* Read messages until one contains needle (then true, the message in buf) or timeout. */
static bool notify_wait(struct fixture *f, const char *needle, char *buf, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    for (int64_t left; (left = deadline - mono_ms()) > 0;)
        if (notify_recv(f, buf, (int)left) >= 0 && strstr(buf, needle))
            return true;
    return false;
}

/* A line of a message equal to line. */
static bool has_line(const char *msg, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = msg; p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (!strncmp(p, line, n) && (p[n] == '\n' || p[n] == '\0'))
            return true;
    }
    return false;
}

/* Start shoald with NOTIFY_SOCKET (and the given WATCHDOG_* when not NULL). */
static void start(struct fixture *f, const char *watchdog_usec, const char *watchdog_pid,
                  const char *config)
{
    int rc;
    setenv("NOTIFY_SOCKET", f->addr, 1);
    if (watchdog_usec)
        setenv("WATCHDOG_USEC", watchdog_usec, 1);
    if (watchdog_pid)
        setenv("WATCHDOG_PID", watchdog_pid, 1);
    if (config)
        rc = harness_daemon_start(&f->d, "notify", "--config", config, NULL);
    else
        rc = harness_daemon_start(&f->d, "notify", NULL);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    assert_int_equal(rc, 0);
}

static void write_text(const char *path, const char *text)
{
    harness_write_file(path, text, strlen(text));
}

/* ------------------------------------------------------------------ fixture */

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    f.fd = -1;
    harness_watchdog(TEST_TIMEOUT_S, "a test in test_notify (see [ RUN ] above)");
    harness_tmpdir(f.dir, sizeof(f.dir), "notify");
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc;
    if (!f->passed && f->d.dir[0])
        harness_daemon_print_log(&f->d);
    rc = harness_daemon_cleanup(&f->d);
    if (f->fd >= 0)
        close(f->fd);
    harness_rmrf(f->dir);
    harness_watchdog(0, NULL);
    return rc;
}

/* ------------------------------------------------------------------ tests */

NOTIFY_TEST(test_ready_comes_when_the_socket_serves_then_status_then_stopping)
{
    char msg[MSG_MAX];
    shoal_client_t *c = NULL;
    shoal_topic_config_t cfg;

    notify_listen(f, false);
    start(f, NULL, NULL, NULL);
    /* The first message is READY=1, and a client can open once it has been sent. */
    assert_true(notify_recv(f, msg, 5000) > 0);
    assert_true(has_line(msg, "READY=1"));
    assert_non_null(
        strstr(msg, "STATUS=serving 0 topics, 0 partitions (0 bytes of rings), 0 clients"));
    assert_int_equal(shoal_client_open(f->d.socket, &c), 0);

    shoal_topic_config_init(&cfg);
    cfg.partitions = 3;
    assert_int_equal(shoal_topic_create(c, "status", &cfg), 0);
    assert_true(
        notify_wait(f, "STATUS=serving 1 topics, 3 partitions (768 MiB 84 KiB of rings), 1 clients",
                    msg, 5000));
    shoal_client_close(c);
    assert_true(
        notify_wait(f, "STATUS=serving 1 topics, 3 partitions (768 MiB 84 KiB of rings), 0 clients",
                    msg, 5000));

    /* No watchdog was asked for: no pings. SIGTERM: STOPPING=1, then exit 0. */
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_true(notify_wait(f, "STOPPING=1", msg, 2000));
    while (notify_recv(f, msg, 0) >= 0)
        assert_null(strstr(msg, "WATCHDOG=1"));
    assert_true(harness_daemon_log_contains(&f->d, "stopped cleanly"));
}

NOTIFY_TEST(test_watchdog_pings_at_half_of_watchdog_usec)
{
    char msg[MSG_MAX];
    int64_t start_ms, end_ms;
    int pings = 0;

    notify_listen(f, false);
    start(f, "200000", NULL, NULL); /* 200 ms: a ping every 100 ms */
    assert_true(notify_wait(f, "READY=1", msg, 5000));
    start_ms = mono_ms();
    end_ms = start_ms + 2000;
    while (mono_ms() < end_ms)
        if (notify_recv(f, msg, (int)(end_ms - mono_ms())) >= 0 && has_line(msg, "WATCHDOG=1"))
            pings++;
    /* 20 expected in 2 s; a loaded CI machine may be late, never early. */
    print_message("%d WATCHDOG=1 in 2 s\n", pings);
    assert_in_range(pings, 12, 22);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
}

NOTIFY_TEST(test_watchdog_meant_for_another_pid_sends_no_pings)
{
    char msg[MSG_MAX];

    notify_listen(f, false);
    start(f, "100000", "1", NULL); /* WATCHDOG_PID=1 is not shoald */
    assert_true(notify_wait(f, "READY=1", msg, 5000));
    assert_false(notify_wait(f, "WATCHDOG=1", msg, 500));
    assert_int_equal(harness_daemon_stop(&f->d), 0);
}

NOTIFY_TEST(test_abstract_notify_socket_gets_ready_and_stopping)
{
    char msg[MSG_MAX];

    notify_listen(f, true);
    start(f, NULL, NULL, NULL);
    assert_true(notify_wait(f, "READY=1", msg, 5000));
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_true(notify_wait(f, "STOPPING=1", msg, 2000));
}

NOTIFY_TEST(test_sighup_reloads_the_config_and_keeps_it_when_the_new_one_is_bad)
{
    char conf[PATH_MAX], msg[MSG_MAX];
    shoal_client_t *c = NULL;

    snprintf(conf, sizeof(conf), "%s/shoald.conf", f->dir);
    write_text(conf, "log.level = info\nflush.ms = 1000\n");
    notify_listen(f, false);
    start(f, NULL, NULL, conf);
    assert_true(notify_wait(f, "READY=1", msg, 5000));

    /* Reloadable keys change; a changed directory is only reported. */
    write_text(conf, "log.level = debug\nflush.ms = 50\nflush.interval.ms = 7\n"
                     "flush.drop.cache = 0\nallow.gid = root\nshm.dir = /elsewhere\n");
    kill(f->d.pid, SIGHUP);
    assert_true(notify_wait(f, "RELOADING=1", msg, 5000));
    assert_non_null(strstr(msg, "MONOTONIC_USEC="));
    assert_true(notify_wait(f, "READY=1", msg, 5000));
    assert_true(harness_daemon_log_contains(
        &f->d, "reloaded: flush.interval.ms=7 flush.ms=50 flush.drop.cache=0 allow.gid=0 "
               "log.level=debug"));
    assert_true(harness_daemon_log_contains(&f->d, "shm.dir changed from /dev/shm to /elsewhere"));

    /* A broken file: the error is logged, the running settings stay, the daemon serves. */
    write_text(conf, "flush.ms = soon\n");
    kill(f->d.pid, SIGHUP);
    assert_true(notify_wait(f, "RELOADING=1", msg, 5000));
    assert_true(notify_wait(f, "READY=1", msg, 5000));
    assert_true(harness_daemon_log_contains(&f->d, "keeping the running settings"));
    assert_int_equal(harness_daemon_log_count(&f->d, "reloaded:"), 1); /* the first only */
    assert_int_equal(shoal_client_open(f->d.socket, &c), 0);
    shoal_client_close(c);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
}

/* A line longer than any buffer is one line: a commented-out setting stays a comment. A
 * config path that turns out to be a directory is an error, not an empty file. */
NOTIFY_TEST(test_a_long_comment_stays_a_comment_and_a_directory_is_no_config)
{
    char conf[PATH_MAX], msg[MSG_MAX], *text = malloc(10000);
    shoal_client_t *c = NULL;

    assert_non_null(text);
    snprintf(conf, sizeof(conf), "%s/shoald.conf", f->dir);
    snprintf(text, 10000, "flush.ms = 50\n#%8000s\n", "flush.ms = 999");
    write_text(conf, text);
    free(text);
    notify_listen(f, false);
    start(f, NULL, NULL, conf);
    assert_true(notify_wait(f, "READY=1", msg, 5000));
    kill(f->d.pid, SIGHUP);
    assert_true(notify_wait(f, "READY=1", msg, 5000));
    assert_true(harness_daemon_log_contains(&f->d, "flush.ms=50"));
    assert_false(harness_daemon_log_contains(&f->d, "flush.ms=999"));

    assert_int_equal(unlink(conf), 0);
    assert_int_equal(mkdir(conf, 0700), 0);
    kill(f->d.pid, SIGHUP);
    assert_true(notify_wait(f, "READY=1", msg, 5000));
    assert_true(harness_daemon_log_contains(&f->d, "shoald.conf is not a regular file"));
    assert_true(harness_daemon_log_contains(&f->d, "keeping the running settings"));
    assert_false(harness_daemon_log_contains(&f->d, "flush.ms=1000"));
    assert_int_equal(shoal_client_open(f->d.socket, &c), 0);
    shoal_client_close(c);
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    assert_int_equal(rmdir(conf), 0);
}

struct revoked_child {
    const char *socket;
    int ready, go; /* pipe ends: to the parent, from the parent */
};

/* As nobody:nogroup: connect while allowed, say so, wait for the reload, then ask again.
 * 0 when the second request is SHOAL_EDENIED. */
static int revoked_child_main(void *arg)
{
    struct revoked_child *a = arg;
    shoal_client_t *c;
    char **names, b = 'r';
    size_t n;

    if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
        return 10;
    if (shoal_client_open(a->socket, &c) < 0 || shoal_topic_list(c, &names, &n) < 0)
        return 11;
    shoal_topic_list_free(names, n);
    if (write(a->ready, &b, 1) != 1 || read(a->go, &b, 1) != 1)
        return 12;
    return shoal_topic_list(c, &names, &n) == SHOAL_EDENIED ? 0 : 13;
}

/* A reload that takes a group out of allow.gid denies its connected members' next
 * requests too, not only new connections. */
NOTIFY_TEST(test_a_reload_that_revokes_allow_gid_denies_connected_clients)
{
    char conf[PATH_MAX], msg[MSG_MAX], b = 'g';
    int ready[2], go[2];
    struct revoked_child a;
    pid_t child;

    if (geteuid() != 0)
        skip(); /* the client must run as another user */
    snprintf(conf, sizeof(conf), "%s/shoald.conf", f->dir);
    write_text(conf, "allow.gid = 65534\n");
    notify_listen(f, false);
    start(f, NULL, NULL, conf);
    assert_true(notify_wait(f, "READY=1", msg, 5000));
    assert_int_equal(chmod(f->d.dir, 0711), 0); /* nobody passes through to the socket */
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    a = (struct revoked_child){f->d.socket, ready[1], go[0]};
    assert_true((child = harness_fork(revoked_child_main, &a, HARNESS_CHILD_TIMEOUT_S)) > 0);
    assert_int_equal(read(ready[0], &b, 1), 1);

    write_text(conf, "# allow.gid unset: the daemon's own user and root only\n");
    kill(f->d.pid, SIGHUP);
    assert_true(notify_wait(f, "READY=1", msg, 5000));
    assert_int_equal(write(go[1], &b, 1), 1);
    assert_int_equal(harness_wait(child, 5000), 0);
    assert_true(harness_daemon_log_contains(&f->d, "1 connected clients may no longer use"));
    for (int i = 0; i < 2; i++) {
        close(ready[i]);
        close(go[i]);
    }
    assert_int_equal(harness_daemon_stop(&f->d), 0);
}

NOTIFY_TEST(test_sighup_reopens_log_file_after_rotation)
{
    char conf[PATH_MAX], log[PATH_MAX], rotated[PATH_MAX + 8], text[PATH_MAX + 64], msg[MSG_MAX];
    struct stat st;

    snprintf(conf, sizeof(conf), "%s/shoald.conf", f->dir);
    snprintf(log, sizeof(log), "%s/shoald-file.log", f->dir);
    snprintf(rotated, sizeof(rotated), "%s.1", log);
    snprintf(text, sizeof(text), "log.file = %s\n", log);
    write_text(conf, text);
    notify_listen(f, false);
    start(f, NULL, NULL, conf);
    assert_true(notify_wait(f, "READY=1", msg, 5000));
    assert_int_equal(stat(log, &st), 0);
    assert_true(st.st_size > 0);

    assert_int_equal(rename(log, rotated), 0); /* as logrotate does */
    kill(f->d.pid, SIGHUP);
    assert_true(notify_wait(f, "READY=1", msg, 5000));
    assert_int_equal(stat(log, &st), 0); /* a new file, holding the reload's lines */
    assert_true(st.st_size > 0);
    assert_false(harness_daemon_log_contains(&f->d, "reloaded:"));

    write_text(conf, "# log.file unset: back to stderr\n");
    kill(f->d.pid, SIGHUP);
    assert_true(notify_wait(f, "READY=1", msg, 5000));
    assert_true(harness_daemon_log_contains(&f->d, "reloaded:"));
    assert_int_equal(harness_daemon_stop(&f->d), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_ready_comes_when_the_socket_serves_then_status_then_stopping),
        T(test_watchdog_pings_at_half_of_watchdog_usec),
        T(test_watchdog_meant_for_another_pid_sends_no_pings),
        T(test_abstract_notify_socket_gets_ready_and_stopping),
        T(test_sighup_reloads_the_config_and_keeps_it_when_the_new_one_is_bad),
        T(test_a_long_comment_stays_a_comment_and_a_directory_is_no_config),
        T(test_a_reload_that_revokes_allow_gid_denies_connected_clients),
        T(test_sighup_reopens_log_file_after_rotation),
#undef T
    };
    harness_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
