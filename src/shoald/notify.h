/* notify.h - the sd_notify protocol, written here: state lines ("READY=1", "STATUS=...",
 * "WATCHDOG=1", "RELOADING=1", "STOPPING=1") sent as one datagram each to the AF_UNIX
 * socket named by $NOTIFY_SOCKET (a path, or an abstract address when it starts with '@').
 * Without $NOTIFY_SOCKET every call is a no-op, so shoald runs the same outside systemd.
 * All functions may be called from any thread once notify_init() has returned. */
#ifndef SHOALD_NOTIFY_H
#define SHOALD_NOTIFY_H

#include <stdint.h>

/* Read $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID and open the datagram socket.
 * The variables are removed from the environment, so no child inherits them.
 * 0, or a negative errno when NOTIFY_SOCKET is set but unusable (then notify is off). */
int notify_init(void);
/* Send one message (lines separated by '\n'). 0, or a negative errno; a no-op returning 0
 * when not supervised. */
int notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The watchdog period the supervisor asked for in microseconds ($WATCHDOG_USEC, for this
 * process), or 0 when no watchdog is wanted. */
uint64_t notify_watchdog_usec(void);
/* Whether a supervisor listens (NOTIFY_SOCKET was set and usable). */
int notify_enabled(void);
/* Close the socket. */
void notify_close(void);

#endif
