/* log.h - shoald's log: stderr, one line per event, with syslog priority prefixes
 * ("<3>" error ... "<7>" debug) that journald understands when run under systemd. */
#ifndef SHOALD_LOG_H
#define SHOALD_LOG_H

enum log_level { LOG_ERR = 3, LOG_WARN = 4, LOG_NOTICE = 5, LOG_INFO = 6, LOG_DEBUG = 7 };

void log_set_level(int level);
int log_level_parse(const char *name); /* "error".."debug" -> level, or -1 */
/* Point stderr at path (appending; created 0640) when path is non-empty, back at the
 * original stderr when it is empty after a file was used, and decide again whether stderr
 * is the journal. 0 or -errno (stderr unchanged). Main thread. */
int log_reopen(const char *path);
void shoald_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...)  shoald_log(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   shoald_log(LOG_WARN, __VA_ARGS__)
#define log_notice(...) shoald_log(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   shoald_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...)  shoald_log(LOG_DEBUG, __VA_ARGS__)

#endif
