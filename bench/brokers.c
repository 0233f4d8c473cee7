/* brokers.c - what the clients of the other brokers share: a buffered connection over a
 * Unix or TCP socket, and starting and stopping a broker's server. The protocols are in
 * redis.c, nats.c and rabbitmq.c, one broker each (brokers.h says why they are here). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brokers.h"

volatile uint64_t brokers_sink;

static int unix_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* An empty buffer for a connection about to be made. */
static int conn_alloc(struct conn *c)
{
    c->pos = c->len = 0;
    return (c->buf = malloc(CONN_BUF)) ? 0 : -ENOMEM;
}

int conn_unix(struct conn *c, const char *path)
{
    int rc = conn_alloc(c);
    if (rc < 0)
        return rc;
    c->fd = unix_connect(path);
    return c->fd < 0 ? c->fd : 0;
}

int conn_tcp(struct conn *c, int port, int timeout_ms)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1, rc = conn_alloc(c);

    if (rc < 0)
        return rc;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn_timeout(c, timeout_ms);
    return connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
}

int conn_timeout(struct conn *c, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    return setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ? -errno : 0;
}

void conn_close(struct conn *r)
{
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    r->buf = NULL;
    r->fd = -1;
}

int conn_write(struct conn *r, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(r->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EPIPE;
        p += w, n -= (size_t)w;
    }
    return 0;
}

int conn_need(struct conn *r, size_t n)
{
    if (n > CONN_BUF)
        return -EMSGSIZE;
    if (r->pos + n > CONN_BUF) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos, r->pos = 0;
    }
    while (r->len - r->pos < n) {
        ssize_t got = read(r->fd, r->buf + r->len, CONN_BUF - r->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? -errno : -EPIPE;
        r->len += (size_t)got;
    }
    return 0;
}

int conn_line(struct conn *c, size_t *n)
{
    const char *nl;
    for (size_t want = 3;; want = c->len - c->pos + 1) {
        int rc = conn_need(c, want);
        if (rc < 0)
            return rc;
        if ((nl = memchr(c->buf + c->pos, '\n', c->len - c->pos))) {
            *n = (size_t)(nl - (c->buf + c->pos)) + 1;
            return 0;
        }
    }
}

size_t cmd_batch(char *cmds, size_t one, uint32_t batch)
{
    if (one == 0 || one * batch > CONN_BUF)
        return 0;
    for (uint32_t i = 1; i < batch; i++)
        memcpy(cmds + i * one, cmds, one);
    return one * batch;
}

void role_done(struct bench_child *ch, struct conn *r, int rc)
{
    bench_child_finish(ch, rc);
    conn_close(r);
}

/* ------------------------------------------------------------------ the servers */

/* The path of prog: itself when it holds a slash, else the first in $PATH or an sbin
 * directory (Debian installs nats-server in /usr/sbin, which a user's $PATH often lacks);
 * -1 when there is none. */
static int find_program(const char *prog, char *out, size_t cap)
{
    char path[4096];
    if (strchr(prog, '/')) {
        snprintf(out, cap, "%s", prog);
        return access(out, X_OK);
    }
    snprintf(path, sizeof(path), "%s:/usr/local/sbin:/usr/sbin",
             getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(out, cap, "%.*s/%s", (int)n, p, prog);
        if (n > 0 && access(out, X_OK) == 0)
            return 0;
        p += n + (p[n] == ':');
    }
    return -1;
}

pid_t server_start(char *const *argv, char *const *env, const char *log, int timeout_ms,
                   bool (*up)(const void *), const void *arg)
{
    char prog[256];
    pid_t pid;

    if (find_program(argv[0], prog, sizeof(prog)) < 0)
        return 0;
    if ((pid = fork()) == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) /* what the server prints stays off the suite's table */
            dup2(fd, STDOUT_FILENO), dup2(fd, STDERR_FILENO);
        for (char *const *e = env; e && *e; e++)
            putenv(*e);
        execv(prog, argv);
        _exit(127);
    }
    for (int t = 0; pid > 0 && t < timeout_ms / 10; t++) {
        if (up(arg))
            return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            bench_server_failed(argv[0], "exited while starting", log);
            return -1;
        }
        usleep(10000);
    }
    bench_server_failed(argv[0], "did not come up", log);
    bench_server_stop(pid);
    return -1;
}

/* The lines of a log a failed start shows at most. */
#define FAILED_LOG_LINES 20

void bench_server_failed(const char *name, const char *why, const char *log)
{
    char lines[FAILED_LOG_LINES][256];
    size_t n = 0;
    FILE *f = fopen(log, "re");

    fprintf(stderr, "bench: %s %s; the end of its log:\n", name, why);
    while (f && fgets(lines[n % FAILED_LOG_LINES], sizeof(lines[0]), f))
        n++;
    if (f)
        fclose(f);
    for (size_t i = n > FAILED_LOG_LINES ? n - FAILED_LOG_LINES : 0; i < n; i++)
        fprintf(stderr, "  %s", lines[i % FAILED_LOG_LINES]);
    if (n == 0)
        fprintf(stderr, "  (empty)\n");
}

void bench_server_stop(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}
