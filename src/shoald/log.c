/* log.c - see log.h. Under journald (JOURNAL_STREAM set) lines carry only the priority
 * prefix, since the journal stamps time itself; on a terminal they carry a UTC time. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int max_level = LOG_INFO;

static const char *const level_names[] = {
    [LOG_ERR] = "error", [LOG_WARN] = "warning", [LOG_NOTICE] = "notice",
    [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void log_set_level(int level)
{
    max_level = level;
}

int log_level_parse(const char *name)
{
    for (int l = LOG_ERR; l <= LOG_DEBUG; l++)
        if (!strcmp(name, level_names[l]))
            return l;
    return -1;
}

void shoald_log(int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    if (level > max_level)
        return;
    if (getenv("JOURNAL_STREAM")) {
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
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
