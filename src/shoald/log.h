/* log.h - shoald's log: stderr, one line per event, with syslog priority prefixes
 * ("<3>" error ... "<7>" debug) that journald understands when run under systemd. */
#ifndef SHOALD_LOG_H
#define SHOALD_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_ERR = 3, LOG_WARN = 4, LOG_NOTICE = 5, LOG_INFO = 6, LOG_DEBUG = 7 };

void log_set_level(int level);
int log_level_parse(const char *name); /* "error".."debug" -> level, or -1 */
const char *log_level_name(int level); /* level -> "error".."debug" */
/* Point stderr at path (appending; created 0640; a regular file, not through a link) when
 * path is non-empty, back at the original stderr when it is empty after a file was used,
 * and decide again whether stderr is the journal. 0, or < 0 with the detail in
 * shoal_errmsg() (stderr unchanged). Main thread. */
int log_reopen(const char *path);
void shoald_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Events that others can cause as often as they like (a client's bad frame): of each
 * LOG_LIMIT_WINDOW_NS, the first `burst` are logged and the rest only counted; the next
 * line logged says how many were left out. Zero one, set burst; one thread per limiter. */
#define LOG_LIMIT_WINDOW_NS (10 * 1000000000LL)
typedef struct log_limit {
    unsigned burst;
    unsigned logged;         /* lines logged in the current window */
    int64_t window_start_ns; /* when the current window began */
    uint64_t suppressed;     /* events left out since the last line logged */
} log_limit_t;

/* Whether an event at now_ns may be logged; if so, *suppressed gets how many were left out
 * before it (and the count starts again). */
bool log_limit_pass(log_limit_t *l, int64_t now_ns, uint64_t *suppressed);
/* shoald_log() an event of l, unless l holds it back; the line ends with the number of
 * events left out before it, if any. */
void log_limited(log_limit_t *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...)  shoald_log(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   shoald_log(LOG_WARN, __VA_ARGS__)
#define log_notice(...) shoald_log(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   shoald_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...)  shoald_log(LOG_DEBUG, __VA_ARGS__)

#endif
