/* log.c - see log.h. Under journald (JOURNAL_STREAM set and naming the file stderr is)
 * lines carry only the priority prefix, since the journal stamps time itself; on a
 * terminal or in a log file they carry a UTC time. The level is read by every thread and
 * changed by a reload, hence the atomics. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static _Atomic int max_level = LOG_INFO;
static _Atomic int to_journal = -1; /* -1 unknown, 0 no, 1 yes */

static const char *const level_names[] = {
    [LOG_ERR] = "error", [LOG_WARN] = "warning", [LOG_NOTICE] = "notice",
    [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void log_set_level(int level)
{
    shoal_store_relaxed(&max_level, level);
}

/* Whether fd 2 is the stream systemd connected to the journal ("dev:ino" in JOURNAL_STREAM). */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* The log file, for appending: a regular file (not through a link, nor a FIFO that would
 * hold the daemon up), in a directory no other user may write (or a sticky one: /tmp), of
 * this user or root, and with no other name. shoald runs as root: a user who owned a
 * directory on the way swapped it for a link, and root appended its log wherever that
 * led; one who made the file could read the log (an audit); a hard link made elsewhere
 * would have it written over another file. The fd, or < 0 with the detail. */
static int log_file_open(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    struct stat st;
    int fd, rc;

    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
             slash ? path : ".");
    if ((rc = shoal__check_dir_path(dir, "log file's directory", true)) < 0)
        return rc;
    fd = shoal__open_regular(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0640);
    if (fd < 0 || fstat(fd, &st) < 0 ||
        ((st.st_uid == geteuid() || st.st_uid == 0) && st.st_nlink == 1))
        return fd;
    close(fd);
    if (st.st_nlink != 1)
        return SHOAL_ERR(-EPERM, "%s has %lu names (hard links): the log file must have one", path,
                         (unsigned long)st.st_nlink);
    return SHOAL_ERR(-EPERM,
                     "%s belongs to uid %u: the log file must be this user's (uid %u) or "
                     "root's, or its owner reads the log",
                     path, (unsigned)st.st_uid, (unsigned)geteuid());
}

int log_reopen(const char *path)
{
    static int first_stderr = -1; /* the stderr shoald started with, to return to */
    int fd;
    if (first_stderr < 0 && path && *path)
        first_stderr = fcntl(2, F_DUPFD_CLOEXEC, 3);
    if ((!path || !*path) && first_stderr >= 0) {
        if (dup2(first_stderr, 2) < 0)
            return SHOAL_ERR(-errno, "dup2 of the first stderr: %s", strerror(errno));
    } else if (path && *path) {
        if ((fd = log_file_open(path)) < 0)
            return fd;
        if (dup2(fd, 2) < 0) {
            int rc = SHOAL_ERR(-errno, "dup2 %s: %s", path, strerror(errno));
            close(fd);
            return rc;
        }
        close(fd);
    }
    shoal_store_relaxed(&to_journal, stderr_is_journal());
    return 0;
}

int log_level_parse(const char *name)
{
    for (int l = LOG_ERR; l <= LOG_DEBUG; l++)
        if (!strcmp(name, level_names[l]))
            return l;
    return -1;
}

/* One line: the prefix, the message, and how many like it were left out before it. */
__attribute__((format(printf, 3, 0))) static void log_line(int level, uint64_t suppressed,
                                                           const char *fmt, va_list ap)
{
    char line[1024];
    int n;

    if (shoal_load_relaxed(&to_journal) < 0)
        shoal_store_relaxed(&to_journal, stderr_is_journal());
    if (shoal_load_relaxed(&to_journal)) {
        n = snprintf(line, sizeof(line), "<%d>", level);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ <%d> %s: ", ts.tv_nsec / 1000000,
                      level, level_names[level]);
    }
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    /* One line, whatever the message quotes: a client's name or request with a newline in
     * it forged log lines (under systemd, journal entries of any priority: "<0>..."), and an
     * escape sequence reached the terminal of whoever read the log. */
    for (char *p = line + n; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (suppressed)
        fprintf(stderr, "%s (%llu more like this not logged since the last one)\n", line,
                (unsigned long long)suppressed);
    else
        fprintf(stderr, "%s\n", line);
}

const char *log_level_name(int level)
{
    return level >= LOG_ERR && level <= LOG_DEBUG ? level_names[level] : "?";
}

void shoald_log(int level, const char *fmt, ...)
{
    va_list ap;

    if (level > shoal_load_relaxed(&max_level))
        return;
    va_start(ap, fmt);
    log_line(level, 0, fmt, ap);
    va_end(ap);
}

bool log_limit_pass(log_limit_t *l, int64_t now_ns, uint64_t *suppressed)
{
    if (l->logged == 0 || now_ns - l->window_start_ns >= LOG_LIMIT_WINDOW_NS) {
        l->window_start_ns = now_ns;
        l->logged = 0;
    }
    if (l->logged >= l->burst) {
        l->suppressed++;
        return false;
    }
    l->logged++;
    *suppressed = l->suppressed;
    l->suppressed = 0;
    return true;
}

void log_limited(log_limit_t *l, int level, const char *fmt, ...)
{
    uint64_t suppressed;
    va_list ap;

    if (level > shoal_load_relaxed(&max_level) || !log_limit_pass(l, shoal__mono_ns(), &suppressed))
        return;
    va_start(ap, fmt);
    log_line(level, suppressed, fmt, ap);
    va_end(ap);
}
