/* fuzz_server.c - the control server and the group coordinator, fed requests a client could
 * send.
 *
 * One broker and its control server run in this process (a thread, as in shoald, without
 * the flusher), on directories under $TMPDIR (or /dev/shm) removed at exit. An input is a
 * sequence of requests, each `u8 type, u8 flags, u16 length (LE), payload`; the target
 * wraps each payload in a frame header (magic, version, type, length, seq) and sends them
 * all on one connection, closes its side, and reads what comes back. Flags damage the
 * header: bit 0 gives it version (flags >> 4), bit 1 declares 1..255 more payload bytes
 * than follow (the server waits for them until the connection ends, so no frame follows
 * that one).
 *
 * What must hold: every reply is a whole frame with a response type, the request's seq or 0,
 * and a status that is 0 or a shoal error code, and then exactly the fields ctlproto.h
 * lists for that response (none after an error); and after the connection ends, the server
 * still answers a new client, which then deletes every topic and group the input made, so
 * that the next input starts from the same state; and the descriptors the input's requests
 * opened are closed again.
 *
 * Bounds of this harness, not of the server: the TOPIC_CREATEs of one input may reserve
 * FUZZ_RING_BUDGET of shared memory (partitions x slots x segment bytes) and
 * FUZZ_SLOT_FILES slot files between them; one that would go past is left out of the frame
 * sequence, so that an input cannot take the machine's memory or descriptors. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctlproto.h"
#include "ctlsock.h"
#include "fuzz.h"
#include "shoal.h"
#include "util.h"
#include "shoald/broker.h"
#include "shoald/log.h"
#include "shoald/server.h"

#define FUZZ_RING_BUDGET (64ull << 20)
#define FUZZ_SLOT_FILES  64
#define FUZZ_REPLY_MS    30000 /* for all of an input's replies */
#define FUZZ_FD_SLACK    8     /* descriptors opened once, after the first input */
#define FUZZ_FRAME_BYTES (1u << 17)
#define FUZZ_MAX_SEQ     (FUZZ_FRAME_BYTES / CTL_HEADER_BYTES + 1)
#define FUZZ_NOT_SENT    0xffff /* sent_type of a seq the budget left out */

static struct {
    char root[256];
    shoald_config_t cfg;
    broker_t broker;
    server_t *server;
    volatile sig_atomic_t stop;
    pthread_t thread;
    int base_fds;     /* after the first input */
    uint32_t nframes; /* in fz.frames: the highest seq sent */
    uint16_t sent_type[FUZZ_MAX_SEQ + 1];
    bool replied[FUZZ_MAX_SEQ + 1];
    uint8_t frames[CTL_HEADER_BYTES * 2 + FUZZ_FRAME_BYTES];
    uint8_t replies[2 * (CTL_HEADER_BYTES + CTL_MAX_PAYLOAD)]; /* whole frames move out */
} fz;

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

/* Remove the run's directory tree, without a shell. */
static void remove_root(void)
{
    if (fz.root[0] && nftw(fz.root, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "fuzz_server: cannot remove %s\n", fz.root);
}

static void *server_thread(void *arg)
{
    (void)arg;
    server_run(fz.server, &fz.stop, -1, NULL, NULL);
    return NULL;
}

static void set(const char *key, const char *value)
{
    char err[256];
    FUZZ_CHECK(config_set(&fz.cfg, key, value, err, sizeof(err)) == 0);
}

static void start_server(void)
{
    const char *tmp = getenv("TMPDIR");
    const char *parent = tmp ? tmp : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char dir[300];

    snprintf(fz.root, sizeof(fz.root), "%s/shoal-fuzz-server-XXXXXX", parent);
    FUZZ_CHECK(mkdtemp(fz.root) != NULL);
    atexit(remove_root);
    fuzz_on_failure = remove_root;
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_ERR);
    config_init(&fz.cfg);
    snprintf(dir, sizeof(dir), "%s/data", fz.root);
    set("data.dir", dir);
    snprintf(dir, sizeof(dir), "%s/run", fz.root);
    set("runtime.dir", dir);
    set("shm.dir", fz.root);
    set("instance", "fuzz");
    FUZZ_CHECK(broker_open(&fz.broker, &fz.cfg) == 0);
    FUZZ_CHECK(server_open(&fz.server, &fz.broker) == 0);
    FUZZ_CHECK(pthread_create(&fz.thread, NULL, server_thread, NULL) == 0);
}

/* Whether a TOPIC_CREATE payload stays within what is left of the input's budget (see the
 * top), which it then takes. One the server refuses anyway (it does not parse, or its
 * config is out of range) is kept and costs nothing. */
static bool create_within_budget(const uint8_t *payload, size_t len, uint64_t *files_left,
                                 uint64_t *bytes_left)
{
    shoal_topic_config_t cfg;
    ctl_reader_t r;
    char name[SHOAL_TOPIC_NAME_MAX + 2];
    uint64_t files;

    ctl_reader_init(&r, payload, len);
    ctl_get_str(&r, name, sizeof(name));
    ctl_get_topic_config(&r, &cfg);
    if (ctl_reader_finish(&r) < 0 || shoal_topic_config_check(&cfg) < 0)
        return true;
    files = (uint64_t)cfg.partitions * cfg.ring_slots;
    if (files > *files_left || files * cfg.segment_bytes > *bytes_left)
        return false;
    *files_left -= files;
    *bytes_left -= files * cfg.segment_bytes;
    return true;
}

/* The input as frames in fz.frames: their total length. */
static size_t build_frames(const uint8_t *data, size_t size)
{
    uint64_t files_left = FUZZ_SLOT_FILES, bytes_left = FUZZ_RING_BUDGET;
    size_t at = 0, out = 0;
    uint32_t seq = 1;

    fz.nframes = 0;
    memset(fz.replied, 0, sizeof(fz.replied));
    while (size - at >= 4 && seq <= FUZZ_MAX_SEQ) {
        uint8_t type = data[at], flags = data[at + 1];
        size_t len = (size_t)data[at + 2] | (size_t)data[at + 3] << 8;
        ctl_header_t h = {.magic = CTL_MAGIC, .version = CTL_VERSION, .type = type, .seq = seq++};

        at += 4;
        len = len < size - at ? len : size - at;
        if (out + CTL_HEADER_BYTES + len > sizeof(fz.frames))
            break;
        fz.sent_type[h.seq] = FUZZ_NOT_SENT;
        if (type == CTL_TOPIC_CREATE &&
            !create_within_budget(data + at, len, &files_left, &bytes_left)) {
            at += len;
            continue;
        }
        fz.sent_type[h.seq] = type;
        if (flags & 1)
            h.version = flags >> 4;
        h.len = (uint32_t)len + ((flags & 2) ? 1u + (flags >> 2) % 255 : 0);
        ctl_header_encode(fz.frames + out, &h);
        memcpy(fz.frames + out + CTL_HEADER_BYTES, data + at, len);
        fz.nframes = h.seq;
        out += CTL_HEADER_BYTES + len;
        at += len;
        if (flags & 2)
            break; /* the server reads what follows as the rest of this payload */
    }
    return out;
}

static size_t check_replies(const uint8_t *p, size_t len);

/* Send, then read and check every reply until the server closes the connection.
 * libFuzzer's timeout alarm interrupts system calls here: they are retried. */
static void exchange(int fd, const uint8_t *frames, size_t len)
{
    int64_t deadline = shoal__mono_ns() + (int64_t)FUZZ_REPLY_MS * 1000000;
    size_t sent = 0, got = 0;

    while (sent < len) {
        ssize_t n = send(fd, frames + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the server closed on a bad header: fine */
        sent += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left_ms = (int)((deadline - shoal__mono_ns()) / 1000000);
        ssize_t n;

        FUZZ_CHECK(left_ms > 0); /* the server answers, then closes */
        if (poll(&pfd, 1, left_ms) <= 0)
            continue;
        n = read(fd, fz.replies + got, sizeof(fz.replies) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        /* Whole frames are checked and dropped; what is left is part of one frame. */
        size_t whole = check_replies(fz.replies, got);
        memmove(fz.replies, fz.replies + whole, got - whole);
        got -= whole;
        FUZZ_CHECK(got < sizeof(fz.replies));
    }
    FUZZ_CHECK(got == 0); /* no reply cut short */
}

/* ---- the fields of a success reply, as ctlproto.h lists them per request type ---- */

static void get_strs(ctl_reader_t *r, uint32_t n)
{
    char s[1024];
    for (uint32_t i = 0; i < n && !r->err; i++)
        ctl_get_str(r, s, sizeof(s));
}

static void get_tp(ctl_reader_t *r)
{
    get_strs(r, 1);
    ctl_get_i32(r);
}

static void get_tps(ctl_reader_t *r)
{
    uint32_t n = ctl_get_u32(r);
    for (uint32_t i = 0; i < n && !r->err; i++)
        get_tp(r);
}

static void get_join(ctl_reader_t *r)
{
    uint32_t n;
    ctl_get_i32(r); /* generation */
    get_strs(r, 3); /* assignor, leader, member id */
    n = ctl_get_u32(r);
    for (uint32_t i = 0; i < n && !r->err; i++) {
        get_strs(r, 2); /* member id, instance id */
        get_strs(r, ctl_get_u32(r));
        get_tps(r);
        ctl_get_i32(r);
    }
    n = ctl_get_u32(r);
    for (uint32_t i = 0; i < n && !r->err; i++) {
        get_strs(r, 1);
        ctl_get_u32(r);
    }
}

static void get_group_describe(ctl_reader_t *r)
{
    uint32_t n;
    get_strs(r, 1); /* state */
    ctl_get_i32(r);
    get_strs(r, 2); /* assignor, leader */
    n = ctl_get_u32(r);
    for (uint32_t i = 0; i < n && !r->err; i++) {
        get_strs(r, 3);
        ctl_get_i32(r);
        get_tps(r);
    }
    n = ctl_get_u32(r);
    for (uint32_t i = 0; i < n && !r->err; i++) {
        get_tp(r);
        ctl_get_i64(r);
        ctl_get_i64(r);
    }
}

/* A success reply to req: its fields parse and fill the payload exactly. */
static void check_body(uint16_t req, ctl_reader_t *r)
{
    shoal_topic_config_t cfg;
    shoal_partition_info_t pi;
    uint32_t n;

    switch (req) {
    case CTL_HELLO:
        ctl_get_u32(r);
        get_strs(r, 1);
        ctl_get_i32(r);
        break;
    case CTL_TOPIC_LIST:
        get_strs(r, ctl_get_u32(r));
        break;
    case CTL_TOPIC_DESCRIBE:
        ctl_get_topic_config(r, &cfg);
        n = ctl_get_u32(r);
        for (uint32_t i = 0; i < n && !r->err; i++)
            ctl_get_partition_info(r, &pi);
        break;
    case CTL_ATTACH:
        ctl_get_topic_config(r, &cfg);
        break;
    case CTL_SEGMENT_OPEN:
        ctl_get_i64(r);
        ctl_get_u64(r);
        ctl_get_i64(r);
        break;
    case CTL_OFFSET_FOR_TIME:
        ctl_get_i64(r);
        break;
    case CTL_GROUP_JOIN:
        get_join(r);
        break;
    case CTL_GROUP_SYNC:
        get_tps(r);
        break;
    case CTL_GROUP_FETCH:
        n = ctl_get_u32(r);
        for (uint32_t i = 0; i < n && !r->err; i++) {
            get_tp(r);
            ctl_get_i64(r);
        }
        break;
    case CTL_GROUP_LIST:
        n = ctl_get_u32(r);
        for (uint32_t i = 0; i < n && !r->err; i++) {
            get_strs(r, 2);
            ctl_get_u32(r);
        }
        break;
    case CTL_GROUP_DESCRIBE:
        get_group_describe(r);
        break;
    default: /* no fields */
        break;
    }
    FUZZ_CHECK(ctl_reader_finish(r) == 0);
}

/* The whole replies at p: each a response to a request sent under its seq, at most one
 * per seq (a reply to a bad header has seq 0 and request type 0), with a status that is 0
 * or an error, and the fields of that response. Returns the bytes of whole frames. */
static size_t check_replies(const uint8_t *p, size_t len)
{
    size_t at = 0;

    while (len - at >= CTL_HEADER_BYTES) {
        ctl_header_t h;
        ctl_reader_t r;
        char detail[512];
        int status;

        FUZZ_CHECK(ctl_header_decode(p + at, &h) == 0);
        if (len - at - CTL_HEADER_BYTES < h.len)
            break; /* the rest of it is still coming */
        FUZZ_CHECK(h.seq <= fz.nframes);
        if (h.seq == 0) {
            FUZZ_CHECK(h.type == CTL_RESPONSE); /* to a bad header */
        } else {
            FUZZ_CHECK(h.type == (fz.sent_type[h.seq] | CTL_RESPONSE));
            FUZZ_CHECK(!fz.replied[h.seq]);
            fz.replied[h.seq] = true;
        }
        ctl_reader_init(&r, p + at + CTL_HEADER_BYTES, h.len);
        status = ctl_get_status(&r, detail, sizeof(detail));
        FUZZ_CHECK(r.err == 0);
        FUZZ_CHECK(status == 0 || (status < 0 && strcmp(shoal_err_name(status), "UNKNOWN")));
        if (status == 0)
            check_body(h.type & ~CTL_RESPONSE, &r);
        else
            FUZZ_CHECK(ctl_reader_finish(&r) == 0); /* an error has no fields */
        at += CTL_HEADER_BYTES + h.len;
    }
    return at;
}

/* Descriptors this process holds (the server's and the harness's); listed when show. */
static int open_fds(bool show)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    FUZZ_CHECK(d != NULL);
    while ((e = readdir(d)) != NULL) {
        char path[300], target[300] = "";
        if (e->d_name[0] == '.')
            continue;
        n++;
        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        if (show && readlink(path, target, sizeof(target) - 1) >= 0)
            fprintf(stderr, "fd %s: %s\n", e->d_name, target);
    }
    closedir(d);
    return n;
}

/* Once the input's topics are gone, so are the descriptors its requests opened. */
static void check_no_fd_leak(void)
{
    if (fz.base_fds == 0)
        fz.base_fds = open_fds(false);
    if (open_fds(false) > fz.base_fds + FUZZ_FD_SLACK)
        open_fds(true); /* what is open, for the report */
    FUZZ_CHECK(open_fds(false) <= fz.base_fds + FUZZ_FD_SLACK);
}

/* A create makes its rings on a thread of its own, which may still run after the input's
 * connection closed: wait for every one (they hold descriptors while they run). */
static void wait_for_creates(void)
{
    for (;;) {
        size_t n;
        pthread_rwlock_rdlock(&fz.broker.lock);
        n = fz.broker.ncreating;
        pthread_rwlock_unlock(&fz.broker.lock);
        if (n == 0)
            return;
        usleep(1000);
    }
}

/* The server still serves: a new client connects, and removes what the input created. */
static void check_alive_and_reset(void)
{
    shoal_client_t *c;
    shoal_group_listing_t *groups;
    char **names;
    size_t n;

    wait_for_creates();
    FUZZ_CHECK(shoal_client_open(fz.broker.socket_path, &c) == 0);
    FUZZ_CHECK(shoal_topic_list(c, &names, &n) == 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(shoal_topic_delete(c, names[i]) == 0);
    shoal_topic_list_free(names, n);
    FUZZ_CHECK(shoal_group_list(c, &groups, &n) == 0);
    for (size_t i = 0; i < n; i++)
        shoal_group_delete(c, groups[i].group_id); /* one with members left waits for them */
    shoal_group_list_free(groups);
    shoal_client_close(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len;
    int fd;

    if (!fz.server)
        start_server();
    len = build_frames(data, size);
    fd = ctlsock_connect(fz.broker.socket_path, -1);
    FUZZ_CHECK(fd >= 0);
    exchange(fd, fz.frames, len);
    close(fd);
    check_alive_and_reset();
    check_no_fd_leak();
    return 0;
}
