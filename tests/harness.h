/* harness.h - helpers shared by the tests: temporary directories, test data paths, and
 * (for tests/integ and tests/fault) a real shoald started in its own directories, plus
 * helper processes that always end: every child runs under alarm() and leaves with
 * _exit(), so a hang fails the test instead of blocking CI and no child ever returns
 * into the test runner. */
#ifndef SHOAL_TEST_HARNESS_H
#define SHOAL_TEST_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Create a fresh directory under $TMPDIR (or /tmp) named shoal-test-<tag>-XXXXXX and
 * store its path in buf. Aborts the test program on failure. */
void harness_tmpdir(char *buf, size_t cap, const char *tag);
/* rm -rf path (used by teardowns). */
void harness_rmrf(const char *path);
/* Create (present) or remove an empty file whose existence is a switch, such as the
 * daemon's SHOALD_TEST_ENOSPC_FILE (its segment writes fail with ENOSPC while it exists). */
void harness_flag_file(const char *path, bool present);
/* Descriptors process pid has open (0: this process), from /proc: a leak shows as a
 * higher count. */
int harness_open_fds(pid_t pid);
/* Path of a file in ../shared/testdata (or $SHOAL_TESTDATA) into buf. */
void harness_testdata(char *buf, size_t cap, const char *rel);
/* Read a whole file into a malloc'd buffer; *len gets its size. NULL on failure. */
uint8_t *harness_read_file(const char *path, size_t *len);
/* Make path a file holding exactly the len bytes at data (data may be NULL when len is 0),
 * created 0600 or truncated. Fails the test when it cannot. */
void harness_write_file(const char *path, const void *data, size_t len);
/* The next number of a xorshift64 sequence in *state (not 0): the same seed, the same
 * numbers, so a test that draws them reads the same bytes every run. */
uint64_t harness_rand(uint64_t *state);

/* ------------------------------------------------------------------ helper processes */

/* Seconds a helper child (and a daemon) may live before SIGALRM ends it. */
#define HARNESS_CHILD_TIMEOUT_S  60
#define HARNESS_DAEMON_TIMEOUT_S 120

/* Fork a child that runs fn(arg) under alarm(timeout_s) and _exit()s with its return
 * value (0..255). Returns the child's pid, or -1 (with a message) when fork fails. */
pid_t harness_fork(int (*fn)(void *), void *arg, int timeout_s);
/* Wait for a child up to timeout_ms; kill it with SIGKILL when it takes longer. Returns
 * its exit status (0..255), 128 + signal when a signal ended it, or -1 on a timeout. */
int harness_wait(pid_t pid, int timeout_ms);

/* Whether a child has ended, without waiting: its exit status as harness_wait() gives it,
 * or -1 while it still runs. */
int harness_poll(pid_t pid);
/* SIGKILL and reap every child of harness_fork() not yet waited for (a test that failed
 * half-way leaves them behind). For teardowns. */
void harness_kill_children(void);

/* Arm a watchdog for the calling test process: after timeout_s it prints which test hung,
 * SIGKILLs every running harness daemon, prints their logs and exits 1. 0 disarms. */
void harness_watchdog(int timeout_s, const char *what);

/* ------------------------------------------------------------------ the daemon */

#define HARNESS_DAEMON_MAX_ARGS 16

struct shm_ctl;

struct harness_daemon {
    char dir[PATH_MAX / 8];      /* the temp dir holding everything below */
    char data_dir[PATH_MAX / 4]; /* <dir>/data */
    char run_dir[PATH_MAX / 4];  /* <dir>/run */
    char socket[108];            /* <dir>/run/shoald.sock */
    char log[PATH_MAX / 4];      /* <dir>/shoald.log: the daemon's stderr, every run */
    char instance[64];           /* <tag>-<pid>-<n> */
    char shm_dir[PATH_MAX / 4];  /* /dev/shm/shoal.<instance> */
    const char *extra[HARNESS_DAEMON_MAX_ARGS + 1]; /* extra arguments, NULL-terminated */
    void (*pre_exec)(void); /* NULL, or run in the daemon's process before exec (limits) */
    pid_t pid;              /* > 0 while running */
    int starts;             /* how many times it was started */
    bool start_exited;      /* the last start ended before it served (start_status) */
    int start_status;
};

/* Make a temp dir, pick a unique instance name and start $SHOALD_BIN (default
 * ${BUILD:-build}/shoald) with --data-dir, --runtime-dir and --instance in it, stderr to
 * d->log; the variable arguments are extra daemon arguments ending with NULL (e.g.
 * "--log-level", "debug", NULL). Waits up to 5 s until a client can open on its socket.
 * Returns 0, or -1 after printing why and the daemon's log. */
int harness_daemon_start(struct harness_daemon *d, const char *tag, ...);
/* The daemon binary: $SHOALD_BIN, else ${BUILD:-build}/shoald, in buf when built there. */
const char *harness_shoald_bin(char *buf, size_t cap);
/* SIGTERM, wait (5 s at most) and check the daemon exited with status 0. 0 or -1. */
int harness_daemon_stop(struct harness_daemon *d);
/* SIGKILL and reap the daemon. 0 or -1. */
int harness_daemon_kill9(struct harness_daemon *d);
/* Wait up to timeout_ms for the daemon to exit by itself (a fault hook) and reap it.
 * Returns its exit status (0..255), 128 + signal, or -1 when it still runs (left running).
 * A start that ended before it served (a hook that fires at once) gives its status here. */
int harness_daemon_wait_exit(struct harness_daemon *d, int timeout_ms);
/* Start the stopped daemon again with the same directories, instance and arguments. */
int harness_daemon_restart(struct harness_daemon *d);
/* Stop it if it is running (SIGKILL when SIGTERM does not work), remove the temp dir and
 * the shm dir. Safe on a daemon that never started. Returns -1 when the daemon did not
 * stop cleanly with status 0 (its log was printed), else 0. */
int harness_daemon_cleanup(struct harness_daemon *d);
/* Remove /dev/shm/shoal.<instance> and the daemon's alternates beside it (<shm_dir>@*),
 * as a host reboot would. */
void harness_daemon_wipe_shm(struct harness_daemon *d);
/* The readers' wake-up word (shm_readers.seq) of the topic's partition 0: it moves once
 * for each append that found a reader (or the flusher) asleep. */
uint32_t harness_wake_seq(const struct harness_daemon *d, const char *topic);
/* Base offsets of the topic's partition-0 segments on disk, ascending; at most cap of
 * them. Returns how many (0 when the directory cannot be read). */
size_t harness_segment_bases(const struct harness_daemon *d, const char *topic, int64_t *bases,
                             size_t cap);
/* Print the daemon's log to stderr, framed. */
void harness_daemon_print_log(const struct harness_daemon *d);
/* How many times the log contains needle. */
size_t harness_daemon_log_count(const struct harness_daemon *d, const char *needle);
/* Whether the log contains needle. */
bool harness_daemon_log_contains(const struct harness_daemon *d, const char *needle);
/* Wait up to 5 s for the daemon to log `needle`; fail the test when it does not. */
void harness_daemon_expect_log(const struct harness_daemon *d, const char *needle);
/* Map partition 0's control block of topic read-write, as a producer holds it (a test
 * plays a broken or hostile producer through it); munmap(ctl, sizeof(*ctl)) when done. */
struct shm_ctl *harness_map_ctl(const struct harness_daemon *d, const char *topic);

/* ------------------------------------------------------------------ integration fixture */

#include "shoal.h"

/* A running daemon and a client on it, for one integration test. */
struct harness_fixture {
    struct harness_daemon d;
    shoal_client_t *c;
    bool passed; /* set when the test body returned: otherwise the stop shows the log */
};

/* Before cmocka_run_group_tests(): run only the tests whose names match
 * $SHOAL_TEST_FILTER (cmocka's pattern, e.g. "*disk*") when it is set, and leave stdout
 * unbuffered so the watchdog's report follows the test's RUN line. */
void harness_test_filter(void);

/* Read partition 0 of topic from its start up to `end`: records at consecutive offsets from
 * `first`, each value the decimal number of its offset (as tests produce them). Returns the
 * offset after the last record read. */
int64_t harness_read_numbered(shoal_client_t *c, const char *topic, int64_t first, int64_t end);

/* A cmocka test whose body takes the fixture (from *state) and records that it returned. */
#define INTEG_TEST(name)                                                                           \
    static void name##_body(struct harness_fixture *f);                                            \
    static void name(void **state)                                                                 \
    {                                                                                              \
        struct harness_fixture *f = *state;                                                        \
        name##_body(f);                                                                            \
        f->passed = true;                                                                          \
    }                                                                                              \
    static void name##_body(struct harness_fixture *f)

/* Arm the watchdog (timeout_s), start a daemon (extra arguments, NULL-terminated, as for
 * harness_daemon_start) and open a client on it. 0, or -1 with nothing left running. */
int harness_fixture_start(struct harness_fixture *f, const char *tag, int timeout_s, ...);
/* Close the client, kill helper children, show the daemon log if the test did not pass,
 * stop and remove the daemon, disarm the watchdog. 0, or -1 when the daemon did not stop
 * cleanly. */
int harness_fixture_stop(struct harness_fixture *f);

#endif
