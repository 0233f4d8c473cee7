/* harness.c - see harness.h.
 *
 * DESIGN: the daemon runs as a child of the test process, exec'd from a fork with its
 * stderr appended to a log file in its temp dir, so every run of one instance (restarts
 * included) leaves one log to print when something fails. The child keeps the alarm() it
 * was given before exec (alarms survive execve), so a daemon the test forgot, or a test
 * process that died, cannot outlive HARNESS_DAEMON_TIMEOUT_S. Running daemons are listed
 * in a small table so the watchdog can kill them and show their logs from its signal
 * handler, using only async-signal-safe calls there. */
#include "harness.h"

#include <setjmp.h> /* cmocka.h needs these three first */
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "segment.h"
#include "shm_layout.h"
#include "shoal.h"
#include "util.h"

void harness_tmpdir(char *buf, size_t cap, const char *tag)
{
    const char *base = getenv("TMPDIR");
    snprintf(buf, cap, "%s/shoal-test-%s-XXXXXX", base ? base : "/tmp", tag);
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        abort();
    }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void harness_rmrf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void harness_flag_file(const char *path, bool present)
{
    if (present)
        close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    else
        unlink(path);
}

int harness_open_fds(pid_t pid)
{
    char path[64];
    struct dirent *e;
    int n = 0;
    DIR *d;

    if (pid)
        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    else
        snprintf(path, sizeof(path), "/proc/self/fd");
    assert_non_null(d = opendir(path));
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

void harness_testdata(char *buf, size_t cap, const char *rel)
{
    const char *base = getenv("SHOAL_TESTDATA");
    snprintf(buf, cap, "%s/%s", base ? base : "../shared/testdata", rel);
}

uint64_t harness_rand(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

uint8_t *harness_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return buf;
}

void harness_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc;

    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    rc = shoal__pwrite_all(fd, data, len, 0);
    close(fd);
    if (rc != 0)
        fail_msg("write %s: %s", path, strerror(-rc));
}

/* ------------------------------------------------------------------ helper processes */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define HARNESS_MAX_CHILDREN 64

static pid_t children[HARNESS_MAX_CHILDREN];

static void child_track(pid_t pid, bool on)
{
    for (int i = 0; i < HARNESS_MAX_CHILDREN; i++) {
        if (on && children[i] == 0) {
            children[i] = pid;
            return;
        }
        if (!on && children[i] == pid)
            children[i] = 0;
    }
}

void harness_kill_children(void)
{
    for (int i = 0; i < HARNESS_MAX_CHILDREN; i++) {
        if (children[i] <= 0)
            continue;
        kill(children[i], SIGKILL);
        while (waitpid(children[i], NULL, 0) < 0 && errno == EINTR)
            ;
        children[i] = 0;
    }
}

pid_t harness_fork(int (*fn)(void *), void *arg, int timeout_s)
{
    pid_t pid;
    fflush(NULL); /* or buffered output would be written twice */
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        int rc;
        signal(SIGALRM, SIG_DFL);
        alarm((unsigned)timeout_s);
        rc = fn(arg);
        fflush(NULL);
        _exit(rc & 0xff);
    }
    child_track(pid, true);
    return pid;
}

/* Reap pid, waiting up to timeout_ms. 1 when reaped (status set), 0 on timeout, -1. */
static int reap(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (mono_ms() >= deadline)
            return 0;
        usleep(2000);
    }
}

static int exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

int harness_wait(pid_t pid, int timeout_ms)
{
    int status = 0;
    int rc = reap(pid, timeout_ms, &status);
    child_track(pid, false);
    if (rc == 1)
        return exit_code(status);
    if (rc == 0) {
        fprintf(stderr, "harness: child %d still running after %d ms: killing it\n", (int)pid,
                timeout_ms);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    return -1;
}

int harness_poll(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) != pid)
        return -1;
    child_track(pid, false);
    return exit_code(status);
}

/* ------------------------------------------------------------------ watchdog */

#define HARNESS_MAX_DAEMONS 8

static struct harness_daemon *running[HARNESS_MAX_DAEMONS];
static const char *watchdog_what = "";

static void track(struct harness_daemon *d, bool on)
{
    for (int i = 0; i < HARNESS_MAX_DAEMONS; i++) {
        if (on && !running[i]) {
            running[i] = d;
            return;
        }
        if (!on && running[i] == d)
            running[i] = NULL;
    }
}

static void say(const char *s)
{
    ssize_t n = write(2, s, strlen(s));
    (void)n;
}

static void dump_file(const char *path)
{
    char buf[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        if (write(2, buf, (size_t)n) < 0)
            break;
    close(fd);
}

static void on_watchdog(int sig)
{
    (void)sig;
    say("harness: WATCHDOG: test timed out: ");
    say(watchdog_what);
    say("\n");
    for (int i = 0; i < HARNESS_MAX_CHILDREN; i++)
        if (children[i] > 0)
            kill(children[i], SIGKILL);
    for (int i = 0; i < HARNESS_MAX_DAEMONS; i++) {
        if (!running[i] || running[i]->pid <= 0)
            continue;
        kill(running[i]->pid, SIGKILL);
        say("---- shoald log ");
        say(running[i]->log);
        say(" ----\n");
        dump_file(running[i]->log);
        say("---- end of log ----\n");
    }
    _exit(1);
}

void harness_watchdog(int timeout_s, const char *what)
{
    watchdog_what = what ? what : "";
    signal(SIGALRM, on_watchdog);
    alarm((unsigned)timeout_s);
}

/* ------------------------------------------------------------------ the daemon */

void harness_daemon_print_log(const struct harness_daemon *d)
{
    fflush(stdout);
    fprintf(stderr, "---- shoald log %s ----\n", d->log);
    fflush(stderr);
    dump_file(d->log);
    fprintf(stderr, "---- end of log ----\n");
}

struct shm_ctl *harness_map_ctl(const struct harness_daemon *d, const char *topic)
{
    char path[PATH_MAX];
    struct shm_ctl *ctl;
    int fd;

    snprintf(path, sizeof(path), "%s/%s-0.ctl", d->shm_dir, topic);
    assert_true((fd = open(path, O_RDWR)) >= 0);
    ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    assert_true(ctl != MAP_FAILED);
    return ctl;
}

size_t harness_daemon_log_count(const struct harness_daemon *d, const char *needle)
{
    size_t len = 0, n = 0;
    char *text = (char *)harness_read_file(d->log, &len);
    if (!text)
        return 0;
    text[len] = '\0';
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(text);
    return n;
}

bool harness_daemon_log_contains(const struct harness_daemon *d, const char *needle)
{
    return harness_daemon_log_count(d, needle) > 0;
}

void harness_daemon_expect_log(const struct harness_daemon *d, const char *needle)
{
    for (int waited = 0; !harness_daemon_log_contains(d, needle) && waited < 500; waited++)
        usleep(10000);
    if (!harness_daemon_log_contains(d, needle))
        fail_msg("the daemon never logged \"%s\"", needle);
}

const char *harness_shoald_bin(char *buf, size_t cap)
{
    const char *bin = getenv("SHOALD_BIN");
    const char *build = getenv("BUILD");
    if (bin && *bin)
        return bin;
    snprintf(buf, cap, "%s/shoald", build && *build ? build : "build");
    return buf;
}

static void daemon_exec(const struct harness_daemon *d, const char *bin)
{
    const char *argv[8 + HARNESS_DAEMON_MAX_ARGS + 1] = {
        bin, "--data-dir", d->data_dir, "--runtime-dir", d->run_dir, "--instance", d->instance};
    int n = 7, fd;

    for (int i = 0; d->extra[i]; i++)
        argv[n++] = d->extra[i];
    argv[n] = NULL;
    fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, 2) < 0)
        _exit(126);
    dprintf(2, "harness: exec %s --instance %s (start %d)\n", bin, d->instance, d->starts + 1);
    signal(SIGALRM, SIG_DFL);
    alarm(HARNESS_DAEMON_TIMEOUT_S);
    if (d->pre_exec)
        d->pre_exec();
    execv(bin, (char *const *)argv);
    dprintf(2, "harness: cannot exec %s: %s\n", bin, strerror(errno));
    _exit(127);
}

/* Wait until a client opens on the socket, the daemon dies, or 5 s pass. */
static int daemon_wait_ready(struct harness_daemon *d)
{
    int64_t deadline = mono_ms() + 5000;
    int status, rc = 0;

    for (;;) {
        shoal_client_t *c = NULL;
        if (shoal_client_open(d->socket, &c) == 0) {
            shoal_client_close(c);
            return 0;
        }
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            fprintf(stderr, "harness: shoald exited during start-up (status %d)\n",
                    exit_code(status));
            d->start_exited = true;
            d->start_status = exit_code(status);
            d->pid = 0;
            rc = -1;
            break;
        }
        if (mono_ms() >= deadline) {
            fprintf(stderr, "harness: shoald not serving %s after 5 s\n", d->socket);
            rc = -1;
            break;
        }
        usleep(2000);
    }
    harness_daemon_print_log(d);
    return rc;
}

static int daemon_spawn(struct harness_daemon *d)
{
    char buf[PATH_MAX];
    const char *bin = harness_shoald_bin(buf, sizeof(buf));

    if (access(bin, X_OK) < 0) {
        fprintf(stderr, "harness: no daemon binary at %s (set SHOALD_BIN)\n", bin);
        return -1;
    }
    fflush(NULL);
    d->start_exited = false;
    d->pid = fork();
    if (d->pid < 0) {
        perror("fork");
        d->pid = 0;
        return -1;
    }
    if (d->pid == 0)
        daemon_exec(d, bin);
    d->starts++;
    track(d, true);
    if (daemon_wait_ready(d) == 0)
        return 0;
    if (d->pid > 0)
        harness_daemon_kill9(d);
    track(d, false);
    return -1;
}

/* harness_daemon_start with the extra arguments as a va_list. */
static int daemon_vstart(struct harness_daemon *d, const char *tag, va_list ap)
{
    static int counter;
    const char *shm_base = getenv("SHOAL_TEST_SHM_DIR");
    int n = 0;

    memset(d, 0, sizeof(*d));
    harness_tmpdir(d->dir, sizeof(d->dir), tag);
    snprintf(d->data_dir, sizeof(d->data_dir), "%s/data", d->dir);
    snprintf(d->run_dir, sizeof(d->run_dir), "%s/run", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/shoald.log", d->dir);
    snprintf(d->instance, sizeof(d->instance), "%.40s-%d-%d", tag, (int)getpid(), counter++);
    snprintf(d->shm_dir, sizeof(d->shm_dir), "%s/shoal.%s", shm_base ? shm_base : "/dev/shm",
             d->instance);
    if (snprintf(d->socket, sizeof(d->socket), "%s/shoald.sock", d->run_dir) >=
        (int)sizeof(d->socket)) {
        fprintf(stderr, "harness: socket path under %s is too long\n", d->run_dir);
        harness_rmrf(d->dir);
        return -1;
    }
    for (const char *a; n < HARNESS_DAEMON_MAX_ARGS && (a = va_arg(ap, const char *));)
        d->extra[n++] = a;
    d->extra[n] = NULL;
    return daemon_spawn(d);
}

int harness_daemon_start(struct harness_daemon *d, const char *tag, ...)
{
    va_list ap;
    int rc;
    va_start(ap, tag);
    rc = daemon_vstart(d, tag, ap);
    va_end(ap);
    return rc;
}

int harness_fixture_start(struct harness_fixture *f, const char *tag, int timeout_s, ...)
{
    static char what[128];
    va_list ap;
    int rc;

    memset(f, 0, sizeof(*f));
    snprintf(what, sizeof(what), "an integration test of '%s' (see [ RUN ] above)", tag);
    harness_watchdog(timeout_s, what);
    va_start(ap, timeout_s);
    rc = daemon_vstart(&f->d, tag, ap);
    va_end(ap);
    if (rc < 0)
        return -1;
    if (shoal_client_open(f->d.socket, &f->c) < 0) {
        harness_daemon_cleanup(&f->d);
        return -1;
    }
    return 0;
}

int harness_fixture_stop(struct harness_fixture *f)
{
    int rc;

    shoal_client_close(f->c);
    f->c = NULL;
    harness_kill_children();
    if (!f->passed)
        harness_daemon_print_log(&f->d);
    rc = harness_daemon_cleanup(&f->d);
    harness_watchdog(0, NULL);
    return rc;
}

int harness_daemon_restart(struct harness_daemon *d)
{
    if (d->pid > 0) {
        fprintf(stderr, "harness: restart of a running daemon (pid %d)\n", (int)d->pid);
        return -1;
    }
    return daemon_spawn(d);
}

int harness_daemon_stop(struct harness_daemon *d)
{
    int status = 0, rc;

    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    rc = reap(d->pid, 5000, &status);
    if (rc != 1) {
        fprintf(stderr, "harness: shoald pid %d did not exit within 5 s of SIGTERM\n", (int)d->pid);
        harness_daemon_print_log(d);
        harness_daemon_kill9(d);
        return -1;
    }
    track(d, false);
    d->pid = 0;
    if (exit_code(status) != 0) {
        fprintf(stderr, "harness: shoald exited with status %d after SIGTERM\n", exit_code(status));
        harness_daemon_print_log(d);
        return -1;
    }
    return 0;
}

int harness_daemon_kill9(struct harness_daemon *d)
{
    int status;
    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGKILL);
    while (waitpid(d->pid, &status, 0) < 0 && errno == EINTR)
        ;
    track(d, false);
    d->pid = 0;
    return 0;
}

int harness_daemon_wait_exit(struct harness_daemon *d, int timeout_ms)
{
    int status = 0;
    if (d->pid <= 0 && d->start_exited) {
        d->start_exited = false;
        return d->start_status;
    }
    if (d->pid <= 0 || reap(d->pid, timeout_ms, &status) != 1)
        return -1;
    track(d, false);
    d->pid = 0;
    return exit_code(status);
}

void harness_daemon_wipe_shm(struct harness_daemon *d)
{
    char pattern[sizeof(d->shm_dir) + 2];
    glob_t g;

    harness_rmrf(d->shm_dir);
    snprintf(pattern, sizeof(pattern), "%s@*", d->shm_dir); /* the daemon's alternates */
    if (glob(pattern, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
            harness_rmrf(g.gl_pathv[i]);
    globfree(&g);
}

void harness_test_filter(void)
{
    const char *only = getenv("SHOAL_TEST_FILTER");

    if (only && *only)
        cmocka_set_test_filter(only);
    setvbuf(stdout, NULL, _IONBF, 0);
}

uint32_t harness_wake_seq(const struct harness_daemon *d, const char *topic)
{
    char path[PATH_MAX];
    struct shm_readers rd;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s-0.readers", d->shm_dir, topic);
    assert_non_null(fp = fopen(path, "rb"));
    assert_int_equal(fread(&rd, sizeof(rd), 1, fp), 1);
    fclose(fp);
    return atomic_load(&rd.seq);
}

size_t harness_segment_bases(const struct harness_daemon *d, const char *topic, int64_t *bases,
                             size_t cap)
{
    char dir[PATH_MAX];
    int64_t *all = NULL;
    size_t n = 0;

    snprintf(dir, sizeof(dir), "%s/%s-0", d->data_dir, topic);
    if (segment_list(dir, &all, &n) < 0)
        return 0;
    n = n < cap ? n : cap;
    memcpy(bases, all, n * sizeof(*bases));
    shoal__free(all);
    return n;
}

int harness_daemon_cleanup(struct harness_daemon *d)
{
    int rc = 0;
    if (!d->dir[0])
        return 0;
    if (d->pid > 0)
        rc = harness_daemon_stop(d);
    harness_rmrf(d->dir);
    harness_daemon_wipe_shm(d);
    track(d, false);
    d->dir[0] = '\0';
    return rc;
}

int64_t harness_read_numbered(shoal_client_t *c, const char *topic, int64_t first, int64_t end)
{
    shoal_consumer_t *k;
    shoal_record_t r[64];
    int64_t next = first;
    int n;

    assert_int_equal(shoal_consumer_open(c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, topic, NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, topic, 0, SHOAL_SEEK_BEGINNING, 0), 0);
    while (next < end && (n = shoal_poll(k, r, 64, 2000)) > 0)
        for (int i = 0; i < n; i++, next++) {
            assert_int_equal(r[i].offset, next);
            assert_int_equal(atoi(r[i].value), (int)next);
        }
    shoal_consumer_close(k);
    return next;
}
