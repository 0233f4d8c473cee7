/* test_notify.c - the sd_notify sender (src/shoald/notify.c) against a Unix datagram socket
 * the test binds itself, in a temp dir or in the abstract namespace, standing in for
 * systemd: the exact bytes of each message, the names of $NOTIFY_SOCKET it refuses, the
 * watchdog period it passes on, and a supervisor that stops reading or goes away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "shoald/notify.h"

struct fixture {
    char dir[PATH_MAX / 2];
    char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1]; /* <dir>/notify.sock */
    int rx; /* the supervisor's end, bound to path */
};

/* A datagram socket bound to name: a path, or an abstract name when it starts with '@'
 * (the name is then the bytes after the '@', with no terminating NUL). */
static int bind_receiver(const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0 && len <= sizeof(sa.sun_path) - (name[0] != '@'));
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    else
        len++;
    if (bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)))
        fail_msg("bind %s: %s", name, strerror(errno));
    return fd;
}

static int setup(void **state)
{
    static struct fixture f;

    memset(&f, 0, sizeof(f));
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    harness_tmpdir(f.dir, sizeof(f.dir), "notify");
    if (snprintf(f.path, sizeof(f.path), "%s/notify.sock", f.dir) >= (int)sizeof(f.path)) {
        print_error("%s: $TMPDIR too long for a socket name\n", f.dir);
        harness_rmrf(f.dir);
        return -1;
    }
    f.rx = bind_receiver(f.path);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    notify_close();
    if (f->rx >= 0)
        close(f->rx);
    harness_rmrf(f->dir);
    return 0;
}

/* notify_init() with $NOTIFY_SOCKET set to name, or unset when name is NULL. */
static int init_with(const char *name)
{
    notify_close();
    if (name)
        setenv("NOTIFY_SOCKET", name, 1);
    else
        unsetenv("NOTIFY_SOCKET");
    return notify_init();
}

/* The next datagram on fd is exactly want (no terminating NUL sent). */
static void expect_message(int fd, const char *want)
{
    char buf[2048];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

    if (n < 0)
        fail_msg("no message (%s), expected \"%s\"", strerror(errno), want);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, (size_t)n);
}

static void expect_nothing(int fd)
{
    char buf[16];

    assert_int_equal(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
}

/* ------------------------------------------------------------------ messages */

/* The lines shoald sends (main.c), each one datagram of exactly the formatted bytes; the
 * variable is gone afterwards, so no child of the daemon can speak for it. */
static void test_each_message_arrives_as_one_datagram_of_its_exact_text(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(init_with(f->path), 0);
    assert_true(notify_enabled());
    assert_null(getenv("NOTIFY_SOCKET"));
    assert_int_equal(notify_send("READY=1\nSTATUS=%s", "serving 2 topics"), 0);
    assert_int_equal(notify_send("WATCHDOG=1"), 0);
    assert_int_equal(notify_send("STOPPING=1\nSTATUS=persisting and stopping"), 0);
    expect_message(f->rx, "READY=1\nSTATUS=serving 2 topics");
    expect_message(f->rx, "WATCHDOG=1");
    expect_message(f->rx, "STOPPING=1\nSTATUS=persisting and stopping");
    expect_nothing(f->rx);
}

/* A status longer than the 1 KiB buffer is cut to its first 1023 bytes, not dropped. */
static void test_a_message_too_long_for_the_buffer_is_cut_to_1023_bytes(void **state)
{
    struct fixture *f = *state;
    char status[2000], want[1024];

    memset(status, 'x', sizeof(status) - 1);
    status[sizeof(status) - 1] = '\0';
    memcpy(want, "STATUS=", 7);
    memcpy(want + 7, status, sizeof(want) - 8);
    want[sizeof(want) - 1] = '\0';
    assert_int_equal(init_with(f->path), 0);
    assert_int_equal(notify_send("STATUS=%s", status), 0);
    expect_message(f->rx, want);
}

/* notify_init() with name reaches a receiver bound to it, not the fixture's. */
static void expect_reached(const struct fixture *f, const char *name)
{
    int rx = bind_receiver(name);

    assert_int_equal(init_with(name), 0);
    assert_int_equal(notify_send("READY=1"), 0);
    expect_message(rx, "READY=1");
    expect_nothing(f->rx);
    close(rx);
}

static void test_an_abstract_name_is_reached(void **state)
{
    char name[64];

    snprintf(name, sizeof(name), "@shoal-test-notify-%d", (int)getpid());
    expect_reached(*state, name);
}

/* An abstract name fills all of sun_path: 108 bytes, with no NUL (before, refused). */
static void test_an_abstract_name_of_108_bytes_is_reached(void **state)
{
    char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
    int n = snprintf(name, sizeof(name), "@shoal-test-notify-%d-", (int)getpid());

    memset(name + n, 'a', sizeof(name) - 1 - (size_t)n);
    name[sizeof(name) - 1] = '\0';
    expect_reached(*state, name);
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* notify_init() called again with the variable set again: the new socket replaces the
 * old, which is closed (before, it stayed open). */
static void test_a_second_init_replaces_the_first_socket(void **state)
{
    struct fixture *f = *state;
    char name[64];
    int rx, fds;

    snprintf(name, sizeof(name), "@shoal-test-notify-%d", (int)getpid());
    rx = bind_receiver(name);
    assert_int_equal(init_with(f->path), 0);
    fds = open_fds();
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(notify_init(), 0);
    assert_int_equal(open_fds(), fds);
    assert_int_equal(notify_send("READY=1"), 0);
    expect_message(rx, "READY=1");
    expect_nothing(f->rx);
    close(rx);
}

/* ------------------------------------------------------------------ off and refused */

/* Outside systemd nothing is sent and nothing fails, a watchdog variable left over
 * included. */
static void test_without_notify_socket_every_call_is_a_no_op(void **state)
{
    struct fixture *f = *state;

    setenv("WATCHDOG_USEC", "1000000", 1);
    assert_int_equal(init_with(NULL), 0);
    assert_false(notify_enabled());
    assert_int_equal(notify_watchdog_usec(), 0);
    assert_int_equal(notify_send("READY=1"), 0);
    assert_int_equal(init_with(""), 0);
    assert_false(notify_enabled());
    assert_int_equal(notify_send("READY=1"), 0);
    expect_nothing(f->rx);
}

/* notify_init() with name fails with rc; notify is then off (sends are no-ops) and the
 * variable is gone. */
static void assert_name_refused(const char *name, int rc)
{
    assert_int_equal(init_with(name), rc);
    assert_false(notify_enabled());
    assert_null(getenv("NOTIFY_SOCKET"));
    assert_int_equal(notify_send("READY=1"), 0);
}

/* A relative name, a name longer than sun_path (the buffer the name is copied into) and a
 * path nobody listens on. */
static void test_unusable_names_are_refused_and_leave_notify_off(void **state)
{
    struct fixture *f = *state;
    char name[300], missing[PATH_MAX];

    assert_name_refused("notify.sock", -EINVAL);
    memset(name, 'n', sizeof(name) - 1);
    name[0] = '/';
    name[sizeof(name) - 1] = '\0';
    assert_name_refused(name, -EINVAL);
    name[0] = '@';
    assert_name_refused(name, -EINVAL);
    snprintf(missing, sizeof(missing), "%s/nobody.sock", f->dir);
    assert_name_refused(missing, -ENOENT);
    expect_nothing(f->rx);
}

/* sun_path holds 108 bytes: a path of 107 and its NUL fit, one of 108 does not. */
static void test_the_longest_path_that_fits_is_used(void **state)
{
    struct fixture *f = *state;
    char path[sizeof(f->path)];
    size_t dir_len = strlen(f->dir), max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
    int rx;

    if (dir_len + 2 > max)
        skip(); /* $TMPDIR too long for any socket name in it */
    memcpy(path, f->dir, dir_len);
    memset(path + dir_len, 's', max - dir_len);
    path[dir_len] = '/';
    path[max] = '\0';
    rx = bind_receiver(path);
    assert_int_equal(init_with(path), 0);
    assert_int_equal(notify_send("READY=1"), 0);
    expect_message(rx, "READY=1");
    close(rx);
    path[max] = 's';
    path[max + 1] = '\0';
    assert_name_refused(path, -EINVAL);
}

/* ------------------------------------------------------------------ watchdog */

/* notify_init() with $NOTIFY_SOCKET at the fixture's socket and the watchdog variables
 * set (NULL: unset); the period it then reports. Both variables are gone afterwards. */
static uint64_t watchdog_with(const struct fixture *f, const char *usec, const char *pid)
{
    uint64_t period;

    if (usec)
        setenv("WATCHDOG_USEC", usec, 1);
    if (pid)
        setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(init_with(f->path), 0);
    period = notify_watchdog_usec();
    assert_null(getenv("WATCHDOG_USEC"));
    assert_null(getenv("WATCHDOG_PID"));
    return period;
}

/* The period is this process's when WATCHDOG_PID names it or is absent; another process's
 * (a child that inherited the variables) or a malformed one means no watchdog. */
static void test_the_watchdog_period_is_only_for_the_process_it_names(void **state)
{
    struct fixture *f = *state;
    char self[32], other[32];

    snprintf(self, sizeof(self), "%d", (int)getpid());
    snprintf(other, sizeof(other), "%d", (int)getpid() + 1);
    assert_int_equal(watchdog_with(f, "2500000", self), 2500000);
    assert_int_equal(watchdog_with(f, "2500000", NULL), 2500000);
    assert_int_equal(watchdog_with(f, "2500000", other), 0);
    assert_int_equal(watchdog_with(f, "2500000us", self), 0);
    assert_int_equal(watchdog_with(f, NULL, NULL), 0);
}

/* ------------------------------------------------------------------ a failing supervisor */

/* Sends never wait: once the supervisor's queue is full they fail with -EAGAIN at once
 * (the flusher thread sends the watchdog pings). A blocking send fails by the alarm. */
static void test_a_supervisor_that_stops_reading_never_blocks_the_sender(void **state)
{
    struct fixture *f = *state;
    int rc = 0;

    assert_int_equal(init_with(f->path), 0);
    harness_watchdog(10, "test_a_supervisor_that_stops_reading_never_blocks_the_sender");
    for (int i = 0; i < 100000 && rc == 0; i++)
        rc = notify_send("WATCHDOG=1");
    harness_watchdog(0, NULL);
    assert_int_equal(rc, -EAGAIN);
}

static void test_a_send_to_a_supervisor_gone_away_reports_the_error(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(init_with(f->path), 0);
    close(f->rx);
    f->rx = -1;
    assert_int_equal(notify_send("STOPPING=1"), -ECONNREFUSED);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_each_message_arrives_as_one_datagram_of_its_exact_text),
        T(test_a_message_too_long_for_the_buffer_is_cut_to_1023_bytes),
        T(test_an_abstract_name_is_reached),
        T(test_an_abstract_name_of_108_bytes_is_reached),
        T(test_a_second_init_replaces_the_first_socket),
        T(test_without_notify_socket_every_call_is_a_no_op),
        T(test_unusable_names_are_refused_and_leave_notify_off),
        T(test_the_longest_path_that_fits_is_used),
        T(test_the_watchdog_period_is_only_for_the_process_it_names),
        T(test_a_supervisor_that_stops_reading_never_blocks_the_sender),
        T(test_a_send_to_a_supervisor_gone_away_reports_the_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
