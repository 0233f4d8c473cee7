/* notify.c - see notify.h.
 *
 * DESIGN: the protocol is a documented, stable interface of systemd (sd_notify(3)): plain
 * text "KEY=VALUE" lines in one datagram to a Unix socket. Writing it here costs fifty
 * lines and keeps libsystemd (and its own dependencies) out of the daemon and out of the
 * build; shoald needs nothing else from libsystemd. The socket is connected once, so each
 * message is a single send(), which is atomic for datagrams and safe from any thread. */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int notify_fd = -1;
static uint64_t watchdog_usec;

static uint64_t parse_u64(const char *s)
{
    char *end;
    unsigned long long v;
    if (!s || !*s)
        return 0;
    errno = 0;
    v = strtoull(s, &end, 10);
    return errno || *end ? 0 : (uint64_t)v;
}

static void read_watchdog(void)
{
    const char *pid = getenv("WATCHDOG_PID");
    watchdog_usec = parse_u64(getenv("WATCHDOG_USEC"));
    /* WATCHDOG_PID names the process the watchdog is meant for; another process (a child
     * that inherited the variables) must not ping on its behalf. */
    if (pid && *pid && parse_u64(pid) != (uint64_t)getpid())
        watchdog_usec = 0;
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

int notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len;
    socklen_t salen;
    int fd, rc;

    read_watchdog();
    if (!path || !*path)
        return 0;
    notify_close(); /* called again: the new socket replaces the old */
    len = strlen(path);
    /* A path needs its NUL in sun_path; an abstract name (after its '@') is not terminated. */
    if ((path[0] != '/' && path[0] != '@') || len > sizeof(sa.sun_path) - (path[0] == '/')) {
        unsetenv("NOTIFY_SOCKET");
        return -EINVAL;
    }
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace: the name is not NUL-terminated */
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        unsetenv("NOTIFY_SOCKET");
        return rc;
    }
    if (connect(fd, (struct sockaddr *)&sa, salen) < 0) {
        rc = -errno;
        close(fd);
        unsetenv("NOTIFY_SOCKET");
        return rc;
    }
    unsetenv("NOTIFY_SOCKET");
    notify_fd = fd;
    return 0;
}

int notify_send(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    int n;

    if (notify_fd < 0)
        return 0;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof(msg))
        n = (int)sizeof(msg) - 1;
    /* MSG_DONTWAIT: a supervisor that does not read must never stall the flusher. */
    while (send(notify_fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

uint64_t notify_watchdog_usec(void)
{
    return notify_fd >= 0 ? watchdog_usec : 0;
}

int notify_enabled(void)
{
    return notify_fd >= 0;
}

void notify_close(void)
{
    if (notify_fd >= 0)
        close(notify_fd);
    notify_fd = -1;
}
