/* util.c - allocation wrappers, thread-local error detail, clocks, futexes, file helpers.
 *
 * DESIGN: the allocation wrappers exist so that tests can make the nth allocation fail and
 * check that every error path frees what it took (STYLE.md section 7). The futex helpers
 * use shared (not FUTEX_PRIVATE) operations because the words live in pages that several
 * processes map; FUTEX_WAIT only reads the word, so it works on read-only mappings too. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ allocation */

static _Atomic long alloc_fail_countdown;

void shoal__alloc_fail_after(long n)
{
    atomic_store(&alloc_fail_countdown, n);
}

static bool alloc_should_fail(void)
{
    long n = atomic_load_explicit(&alloc_fail_countdown, memory_order_relaxed);
    if (n <= 0)
        return false;
    return atomic_fetch_sub(&alloc_fail_countdown, 1) == 1;
}

/* A failed allocation says so in the detail: its caller returns a bare -ENOMEM, and under a
 * tight RLIMIT_AS "" left the reader guessing. Only the failure path pays. */
static void *alloc_failed(size_t n)
{
    shoal__set_err(-ENOMEM, "out of memory: %zu bytes could not be allocated", n);
    return NULL;
}

void *shoal__malloc(size_t n)
{
    void *p = alloc_should_fail() ? NULL : malloc(n);
    return p ? p : alloc_failed(n);
}

void *shoal__calloc(size_t n, size_t size)
{
    void *p = alloc_should_fail() ? NULL : calloc(n, size);
    return p ? p : alloc_failed(n * size);
}

void *shoal__realloc(void *p, size_t n)
{
    void *np = alloc_should_fail() ? NULL : realloc(p, n);
    return np ? np : alloc_failed(n);
}

char *shoal__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = shoal__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void shoal__free(void *p)
{
    free(p);
}

/* ------------------------------------------------------------------ fork */

uint32_t shoal__forks;
static pthread_once_t forks_once = PTHREAD_ONCE_INIT;

static void forks_in_child(void)
{
    shoal__forks++;
}

static void forks_watch(void)
{
    (void)pthread_atfork(NULL, NULL, forks_in_child);
}

uint32_t shoal__forks_at_open(void)
{
    pthread_once(&forks_once, forks_watch);
    return shoal__forks;
}

/* ------------------------------------------------------------------ error detail */

static _Thread_local char errmsg_buf[512];

int shoal__check_reserved(const void *p, size_t n, int err, const char *init_fn)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return SHOAL_ERR(err,
                             "reserved fields are not zero: fill the struct with %s() first "
                             "(or this program was built against a newer shoal.h)",
                             init_fn);
    return 0;
}

int shoal__set_err(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg_buf, sizeof(errmsg_buf), fmt, ap);
    va_end(ap);
    return err;
}

void shoal__clear_err(void)
{
    errmsg_buf[0] = '\0';
}

uintptr_t shoal__thread_mark(void)
{
    return (uintptr_t)errmsg_buf;
}

int shoal__one_thread_busy(const char *what)
{
    return SHOAL_ERR(SHOAL_EINVAL,
                     "this %s is inside a call on another thread: a %s is for one thread at a "
                     "time (open one per thread)",
                     what, what);
}

const char *shoal_errmsg(void)
{
    return errmsg_buf;
}

/* ------------------------------------------------------------------ time */

/* Wall-clock milliseconds, for record timestamps.
 *
 * A CLOCK_REALTIME read costs ~16 ns on the machine measured (a fifth of a one-record
 * append), reading the TSC ~8 ns. So where the kernel itself keeps time with the TSC
 * (clocksource "tsc"), each thread reads the clock once per millisecond: it notes the TSC
 * and how many ticks are left in that millisecond (0.1% short), and until the TSC has
 * moved that far it returns the same millisecond, which is what the clock would say. The
 * tick rate comes from two (TSC, CLOCK_MONOTONIC) pairs at least 10 ms apart, taken by the
 * thread's first clock reads: the monotonic clock, because the wall clock can be set back
 * during the measurement, and a rate measured across that would be too fast for the
 * thread's life. Until then, or when the TSC is behind the one noted (another CPU's), every
 * call reads the clock; on another clocksource every call reads the clock and nothing else.
 * A clock that is set is seen within a millisecond. */
static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#if defined(__x86_64__)
#include <x86intrin.h>

struct ms_clock {
    uint64_t tsc;        /* when the clock was last read */
    uint64_t left;       /* ticks from there to (just before) the next millisecond */
    int64_t ms;          /* what it said */
    bool plain;          /* the clocksource is not the TSC: read the clock every time */
    uint64_t cal_tsc;    /* the first pair of the tick-rate measurement */
    int64_t cal_ns;      /* (CLOCK_MONOTONIC) */
    double ticks_per_ns; /* 0 until measured */
};

#define MS_CLOCK_CAL_NS 10000000

static __thread struct ms_clock ms_clock;
static _Atomic int tsc_clock; /* 0: not looked at yet, 1: the clocksource is the TSC, 2: not */

static bool tsc_is_clocksource(void)
{
    int v = atomic_load_explicit(&tsc_clock, memory_order_relaxed);
    if (v == 0) {
        char buf[16] = "";
        FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
        if (f) {
            if (!fgets(buf, sizeof(buf), f))
                buf[0] = '\0';
            fclose(f);
        }
        v = strcmp(buf, "tsc\n") == 0 ? 1 : 2;
        atomic_store_explicit(&tsc_clock, v, memory_order_relaxed);
    }
    return v == 1;
}

/* A pair takes part in measuring the tick rate only if the TSC moved at most this much
 * across its clock read (~16 ns, 40-60 ticks, as a rule). One that a preemption stretched
 * would pair its tick with a later time: a first read 100 us late makes a 10 ms
 * measurement 1% fast, and each millisecond's window would then run past its end. */
#define MS_CLOCK_CAL_GAP_TICKS 2000

/* One step of measuring the tick rate: a (TSC, monotonic) pair, the rate once two are far
 * enough apart. */
static void ms_clock_calibrate(struct ms_clock *c)
{
    uint64_t t, after;
    int64_t ns;

    if (!tsc_is_clocksource()) {
        c->plain = true;
        return;
    }
    t = __rdtsc();
    ns = clock_ns(CLOCK_MONOTONIC);
    after = __rdtsc();
    if (after - t > MS_CLOCK_CAL_GAP_TICKS)
        return;
    if (c->cal_tsc == 0 || t < c->cal_tsc) {
        c->cal_tsc = t;
        c->cal_ns = ns;
    } else if (ns - c->cal_ns >= MS_CLOCK_CAL_NS) {
        c->ticks_per_ns = (double)(t - c->cal_tsc) / (double)(ns - c->cal_ns);
    }
}

int64_t shoal__now_ms(void)
{
    struct ms_clock *c = &ms_clock;
    uint64_t t;
    int64_t ns;

    if (c->plain)
        return clock_ns(CLOCK_REALTIME) / 1000000;
    t = __rdtsc(); /* before the clock read: the window can only end early */
    if (t - c->tsc < c->left)
        return c->ms;
    ns = clock_ns(CLOCK_REALTIME);
    c->ms = ns / 1000000;
    c->tsc = t;
    c->left = 0;
    if (c->ticks_per_ns == 0)
        ms_clock_calibrate(c);
    if (c->ticks_per_ns > 0)
        c->left = (uint64_t)((double)(1000000 - ns % 1000000) * c->ticks_per_ns * 0.999);
    return c->ms;
}
#else
int64_t shoal__now_ms(void)
{
    return clock_ns(CLOCK_REALTIME) / 1000000;
}
#endif

int64_t shoal__mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

struct timespec shoal__deadline(int clock, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* ------------------------------------------------------------------ futex */

static struct timespec *relative_timeout(struct timespec *ts, int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return NULL;
    ts->tv_sec = (time_t)(timeout_ns / 1000000000);
    ts->tv_nsec = (long)(timeout_ns % 1000000000);
    return ts;
}

static int futex_wait_ns(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
    struct timespec ts;
    long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected,
                      relative_timeout(&ts, timeout_ns), NULL, 0);
    if (rc == 0 || errno == EAGAIN)
        return 0;
    return -errno;
}

int shoal__futex_wait(_Atomic uint32_t *word, uint32_t expected, int timeout_ms)
{
    return futex_wait_ns(word, expected, timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000000);
}

int shoal__futex_wake(_Atomic uint32_t *word, int count)
{
    long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, count, NULL, NULL, 0);
    return rc < 0 ? -errno : (int)rc;
}

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

struct shoal_futex_waitv {
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t reserved;
};

static _Atomic int waitv_unsupported; /* futex_waitv said ENOSYS */

bool shoal__futex_waitv_works(void)
{
    static _Atomic bool probed;
    /* No futexes at all: EINVAL where the call exists, ENOSYS where it does not */
    if (!atomic_load_explicit(&probed, memory_order_relaxed)) {
        if (syscall(SYS_futex_waitv, NULL, 0u, 0u, NULL, CLOCK_MONOTONIC) < 0 && errno == ENOSYS)
            atomic_store(&waitv_unsupported, 1);
        atomic_store(&probed, true);
    }
    return !atomic_load_explicit(&waitv_unsupported, memory_order_relaxed);
}

/* futex_waitv (Linux 5.16) takes an absolute CLOCK_MONOTONIC timeout. */
int shoal__futex_waitv(_Atomic uint32_t *const *words, const uint32_t *expected, size_t n,
                       int64_t timeout_ns)
{
    struct shoal_futex_waitv w[128];
    struct timespec abs, *tp = NULL;

    if (n == 0 || n > 128)
        return -EINVAL;
    if (n == 1 || !shoal__futex_waitv_works())
        goto fallback;
    for (size_t i = 0; i < n; i++) {
        w[i].val = expected[i];
        w[i].uaddr = (uint64_t)(uintptr_t)words[i];
        w[i].flags = 2; /* FUTEX2_SIZE_U32, shared */
        w[i].reserved = 0;
    }
    if (timeout_ns >= 0) {
        int64_t at = shoal__mono_ns() + timeout_ns;
        abs.tv_sec = (time_t)(at / 1000000000);
        abs.tv_nsec = (long)(at % 1000000000);
        tp = &abs;
    }
    if (syscall(SYS_futex_waitv, w, (unsigned)n, 0, tp, CLOCK_MONOTONIC) >= 0 || errno == EAGAIN)
        return 0;
    if (errno != ENOSYS)
        return -errno;
    atomic_store(&waitv_unsupported, 1);
fallback:
    /* One word can be waited on exactly; several without futex_waitv wait on the first
     * for at most 1 ms at a time, so the others are noticed soon. */
    if (n > 1 && (timeout_ns < 0 || timeout_ns > 1000000))
        timeout_ns = 1000000;
    return futex_wait_ns(words[0], expected[0], timeout_ns);
}

/* ------------------------------------------------------------------ files */

int shoal__mkdir_p(const char *path, unsigned mode)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int shoal__pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int shoal__pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static const char *file_type_name(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISLNK(mode))
        return "a symbolic link";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    return "not a plain file";
}

static int not_regular(const char *path, mode_t mode)
{
    return SHOAL_ERR(SHOAL_ECORRUPT, "%s is not a regular file (%s)", path, file_type_name(mode));
}

/* open() failed: say so, unless the cause is what sits at path (a FIFO without a writer or
 * reader gives ENXIO, a directory EISDIR, a symbolic link under O_NOFOLLOW ELOOP). */
static int open_failed(const char *path, int err)
{
    struct stat st;

    if ((err == ENXIO || err == EISDIR || err == ELOOP) && lstat(path, &st) == 0 &&
        !S_ISREG(st.st_mode))
        return not_regular(path, st.st_mode);
    return SHOAL_ERR(-err, "open %s: %s", path, strerror(err));
}

/* Whether a directory on the way to shoald's files is safe from other users: a directory
 * owned by this user or root, which no other user may write (its own group aside); an
 * ancestor may also be a sticky one such as /tmp, whose entries others cannot rename. */
static bool dir_safe(const struct stat *st, bool ancestor)
{
    bool foreign_write =
        (st->st_mode & S_IWOTH) || ((st->st_mode & S_IWGRP) && st->st_gid != getegid());

    if (!S_ISDIR(st->st_mode) || (st->st_uid != geteuid() && st->st_uid != 0))
        return false;
    return !foreign_write || (ancestor && (st->st_mode & S_ISVTX));
}

int shoal__check_dir_path(const char *dir, const char *what, bool sticky_ok)
{
    char path[PATH_MAX];
    struct stat st;

    if (!realpath(dir, path))
        return SHOAL_ERR(-errno, "the %s %s: %s", what, dir, strerror(errno));
    for (bool ancestor = sticky_ok;; ancestor = true) {
        char *slash = strrchr(path, '/');
        if (lstat(path, &st) < 0)
            return SHOAL_ERR(-errno, "the %s %s: %s: %s", what, dir, path, strerror(errno));
        if (!dir_safe(&st, ancestor))
            return SHOAL_ERR(-EPERM,
                             "the %s %s is not safe for shoald's files: %s%s is %s, uid %u gid "
                             "%u mode %04o; every directory on the way must be owned by this "
                             "user (uid %u) or root and writable by no one else (shoald's own "
                             "group aside; a sticky one such as /tmp may be on the way), or "
                             "another user could plant links that shoald follows",
                             what, dir, path, ancestor ? " on its way" : "",
                             S_ISDIR(st.st_mode) ? "a directory" : "not a directory",
                             (unsigned)st.st_uid, (unsigned)st.st_gid,
                             (unsigned)(st.st_mode & 07777), (unsigned)geteuid());
        if (!slash || slash == path)
            return 0;
        *slash = '\0';
    }
}

int shoal__open_regular(const char *path, int flags, unsigned mode)
{
    struct stat st;
    int fd = open(path, flags | O_NONBLOCK | O_CLOEXEC, (mode_t)mode);
    int rc;

    if (fd < 0)
        return open_failed(path, errno);
    if (fstat(fd, &st) < 0) {
        rc = SHOAL_ERR(-errno, "fstat %s: %s", path, strerror(errno));
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = not_regular(path, st.st_mode);
        goto out_close;
    }
    /* Back to blocking I/O (F_SETFL sets every status flag it can: keep O_APPEND). */
    if (fcntl(fd, F_SETFL, flags & O_APPEND) < 0) {
        rc = SHOAL_ERR(-errno, "fcntl %s: %s", path, strerror(errno));
        goto out_close;
    }
    return fd;

out_close:
    close(fd);
    return rc;
}

int shoal__fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int shoal__size_suffix_shift(const char *s)
{
    static const char units[] = "KMG";
    const char *u = *s ? strchr(units, toupper((unsigned char)*s)) : NULL;

    if (!*s)
        return 0;
    if (!u || !(!s[1] || !strcasecmp(s + 1, "B") || !strcasecmp(s + 1, "iB")))
        return -1;
    return 10 * (int)(u - units + 1);
}

const char *shoal__size_text(char buf[SHOAL_SIZE_TEXT_BYTES], uint64_t n)
{
    unsigned long long mib = n >> 20, kib = (n >> 10) & 1023, bytes = n & 1023;
    int len = 0;

    if (mib)
        len += snprintf(buf, SHOAL_SIZE_TEXT_BYTES, "%llu MiB", mib);
    if (kib)
        len += snprintf(buf + len, SHOAL_SIZE_TEXT_BYTES - (size_t)len, "%s%llu KiB",
                        len ? " " : "", kib);
    if (bytes || !len)
        snprintf(buf + len, SHOAL_SIZE_TEXT_BYTES - (size_t)len, "%s%llu byte%s", len ? " " : "",
                 bytes, bytes == 1 ? "" : "s");
    return buf;
}

bool shoal__has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}
