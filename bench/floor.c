/* floor.c - the baselines' child processes: the floor ring (spinning or asleep on a futex),
 * the cache-line ping-pong and the pipe / Unix-socket ping-pong.
 *
 * DESIGN: the floor is the least a shared-memory queue between two processes can do: a
 * single-producer single-consumer byte ring in a shared file, no lock, no CRC, no format
 * beyond a 4-byte length before each value, and the same batching as the shoal scenario it
 * is compared with (the producer publishes its head once per `batch` values). Head and tail
 * live on their own cache lines; each side caches the other's index and re-reads it only
 * when it seems to have run out, as any good SPSC ring does. The consumer touches each
 * value the way the shoal consumer does (first and last byte). A ping-pong uses two such
 * rings, one each way, and spins.
 *
 * Being the best case, the throughput floor uses the two techniques that measured fastest
 * here for a streaming producer. (1) Its consumer reads behind: it drains once
 * FLOOR_READ_MIN bytes are published (or the head has stopped moving), so it never reads
 * the lines the producer is writing and the producer's stores never wait for them to come
 * back (AMD EPYC, 32-byte values in batches of 64: 54 M/s reading each batch as published,
 * 170 M/s reading behind). (2) A value of FLOOR_STREAM_MIN bytes or more is copied with
 * 64-byte non-temporal stores where the CPU has AVX-512 (with two 32-byte ones from
 * FLOOR_STREAM_AVX2 bytes where it has AVX2 only), as shoal does for such values: the
 * 64 MiB ring does not stay in the caches, and an ordinary store first fetches the line
 * it overwrites. An sfence before the publish that follows them orders them; with
 * one value per publish that is a fence per value, which costs more than the stores save
 * below FLOOR_STREAM_ONE (1 KiB values: 4.4 M/s against 11 M/s with memcpy).
 *
 * Waiting for one value (ping-pong), the consumer prefetches the two lines at its read
 * position with every look at the head, as shoal's consumer does: when the producer writes
 * them and the head, both are fetched at once rather than the value only after the head
 * is seen (AMD EPYC: 231 -> 191 ns near, 912 -> 671 ns far). It also prefetches the line
 * where the value it waits for ends, whose last byte it reads, as shoal's consumer does
 * for small batches (Intel Xeon guest, 256-byte values: 502-529 -> 443-448 ns).
 *
 * The futex floor is the same ping-pong with each side asleep on a futex instead of
 * spinning: the waiter sleeps on the low half of the head it waits to see move, the
 * producer wakes it after every publish. No waiter count, no timeout bookkeeping: the least
 * a sleeping shared-memory transport does, and so what shoal's SHOAL_WAIT_FUTEX round trip
 * is measured against besides a Unix socket.
 *
 * The cache-line ping-pong bounces one 64-bit word between two processes pinned to
 * different CPUs: the latency floor, and the probe that tells a near placement of the two
 * CPUs from a far one. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "shoal.h"

#define FLOOR_WRAP        UINT32_MAX  /* length word meaning "continue at the ring's start" */
#define FLOOR_READ_MIN    (64u << 10) /* a throughput consumer drains this much at a time */
#define FLOOR_IDLE_SPINS  1024        /* ... or what there is, once the head stops moving */
#define FLOOR_STREAM_MIN  1024        /* values copied with non-temporal stores ... */
#define FLOOR_STREAM_ONE  4096        /* ... or this, when each is published alone */
#define FLOOR_STREAM_AVX2 4096        /* ... or this, without AVX-512 (crc32c.c) */

static volatile uint64_t bench_sink; /* keeps the value touches from being optimised away */

struct floor_hdr {
    _Atomic uint64_t head; /* bytes published by the producer */
    uint8_t pad0_[BENCH_LINE - 8];
    _Atomic uint64_t tail; /* bytes released by the consumer */
    uint8_t pad1_[BENCH_LINE - 8];
};

struct floor_ring {
    struct floor_hdr *h;
    uint8_t *data;
    uint64_t cap;        /* power of two */
    uint64_t cached;     /* the other side's index as last read */
    uint64_t pos;        /* our own index, ahead of what we published */
    uint32_t stream_min; /* producer: values this long or more use non-temporal stores */
    bool streamed;       /* producer: some went in that way since the last publish */
    bool sleeper;        /* the other side sleeps on the head: wake it at each publish */
    uint32_t wait_bytes; /* ping-pong consumer: the next value's size with its length */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#if defined(__x86_64__)
/* dst's whole lines with 64-byte non-temporal stores, the partial ones at its ends with
 * memcpy. The same loops as libshoal's crc32c_copy_nt and crc32c_copy_nt256, written
 * again on purpose: the baseline uses nothing of shoal's but its public header. */
__attribute__((target("avx512f"))) static void floor_copy_nt512(uint8_t *d, const uint8_t *s,
                                                                size_t len)
{
    for (; len >= 64; d += 64, s += 64, len -= 64)
        _mm512_stream_si512((void *)d, _mm512_loadu_si512(s));
    memcpy(d, s, len);
}

__attribute__((target("avx2"))) static void floor_copy_nt256(uint8_t *d, const uint8_t *s,
                                                             size_t len)
{
    for (; len >= 64; d += 64, s += 64, len -= 64) {
        _mm256_stream_si256((__m256i *)d, _mm256_loadu_si256((const __m256i *)s));
        _mm256_stream_si256((__m256i *)(d + 32), _mm256_loadu_si256((const __m256i *)(s + 32)));
    }
    memcpy(d, s, len);
}

static void floor_copy_nt(uint8_t *d, const uint8_t *s, size_t len)
{
    size_t head = (size_t)(-(uintptr_t)d & 63u);

    if (head > len)
        head = len;
    memcpy(d, s, head);
    if (__builtin_cpu_supports("avx512f"))
        floor_copy_nt512(d + head, s + head, len - head);
    else
        floor_copy_nt256(d + head, s + head, len - head);
}

/* The shortest value to stream, for want with AVX-512; 0: none. */
static uint32_t floor_stream_min(uint32_t want)
{
    if (__builtin_cpu_supports("avx512f"))
        return want;
    if (__builtin_cpu_supports("avx2"))
        return want > FLOOR_STREAM_AVX2 ? want : FLOOR_STREAM_AVX2;
    return 0;
}
#else
static void floor_copy_nt(uint8_t *d, const uint8_t *s, size_t len)
{
    memcpy(d, s, len);
}

static uint32_t floor_stream_min(uint32_t want)
{
    (void)want;
    return 0;
}
#endif

/* Map the floor file: two rings of half the file each (ping-pong uses both). */
static int floor_map(const char *path, struct floor_ring *r, int which)
{
    int fd = open(path, O_RDWR);
    off_t size;
    uint8_t *base;

    if (fd < 0)
        return -errno;
    size = lseek(fd, 0, SEEK_END);
    base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED)
        return -errno;
    base += which * (size / 2);
    memset(r, 0, sizeof(*r));
    r->h = (struct floor_hdr *)base;
    r->data = base + sizeof(struct floor_hdr);
    r->cap = 1;
    while (r->cap * 2 <= (uint64_t)(size / 2) - sizeof(struct floor_hdr))
        r->cap *= 2;
    return 0;
}

/* Room for need bytes at the producer's position, waiting for the consumer. */
static bool floor_room(struct floor_ring *r, uint64_t need, struct bench_ctl *ctl)
{
    while (r->pos + need - r->cached > r->cap) {
        r->cached = atomic_load_explicit(&r->h->tail, memory_order_acquire);
        if (r->pos + need - r->cached <= r->cap)
            break;
        if (bench_phase(ctl) >= BENCH_STOP)
            return false;
        cpu_relax();
    }
    return true;
}

/* Write one value; false when the run stopped while waiting for room. */
static bool floor_put(struct floor_ring *r, const void *v, uint32_t len, struct bench_ctl *ctl)
{
    uint64_t need = (4 + (uint64_t)len + 7) & ~7ull;
    uint64_t off = r->pos & (r->cap - 1);

    if (off + need > r->cap) { /* does not fit before the end: wrap */
        if (!floor_room(r, r->cap - off, ctl))
            return false;
        memcpy(r->data + off, &(uint32_t){FLOOR_WRAP}, 4);
        r->pos += r->cap - off;
        off = 0;
    }
    if (!floor_room(r, need, ctl))
        return false;
    memcpy(r->data + off, &len, 4);
    if (r->stream_min && len >= r->stream_min) {
        floor_copy_nt(r->data + off + 4, v, len);
        r->streamed = true;
    } else
        memcpy(r->data + off + 4, v, len);
    r->pos += need;
    return true;
}

/* The futex word of a head: its low 32 bits, which move with every publish. */
static uint32_t *floor_head_word(struct floor_hdr *h)
{
    return (uint32_t *)&h->head + (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
}

static void floor_publish(struct floor_ring *r)
{
#if defined(__x86_64__)
    if (r->streamed)
        _mm_sfence(); /* non-temporal stores are not ordered by the release store */
    r->streamed = false;
#endif
    atomic_store_explicit(&r->h->head, r->pos, memory_order_release);
    if (r->sleeper)
        syscall(SYS_futex, floor_head_word(r->h), FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Write and publish one value: each side of a ping-pong publishes once a round, so the
 * head line its peer spins on moves (and, asleep, the peer is woken) only for a value. */
static bool floor_send(struct floor_ring *r, const void *v, uint32_t len, struct bench_ctl *ctl)
{
    if (!floor_put(r, v, len, ctl))
        return false;
    floor_publish(r);
    return true;
}

/* True once the consumer should drain: FLOOR_READ_MIN bytes are published past it, or
 * something is and the head has not moved for FLOOR_IDLE_SPINS looks. */
static bool floor_worth_reading(struct floor_ring *r, uint64_t *last_head, uint32_t *still)
{
    uint64_t head = atomic_load_explicit(&r->h->head, memory_order_relaxed);

    if (head - r->pos >= FLOOR_READ_MIN)
        return true;
    if (head != *last_head) {
        *last_head = head;
        *still = 0;
        return false;
    }
    return head != r->pos && ++*still >= FLOOR_IDLE_SPINS;
}

/* Read every published value; returns how many and adds their bytes to *bytes. */
static uint64_t floor_drain(struct floor_ring *r, uint64_t *bytes, uint64_t *sink)
{
    uint64_t n = 0;
    r->cached = atomic_load_explicit(&r->h->head, memory_order_acquire);
    while (r->pos < r->cached) {
        uint64_t off = r->pos & (r->cap - 1);
        uint32_t len;
        memcpy(&len, r->data + off, 4);
        if (len == FLOOR_WRAP) {
            r->pos += r->cap - off;
            continue;
        }
        *sink += bench_touch(r->data + off + 4, len);
        *bytes += len;
        r->pos += (4 + (uint64_t)len + 7) & ~7ull;
        n++;
    }
    if (n)
        atomic_store_explicit(&r->h->tail, r->pos, memory_order_release);
    return n;
}

int role_floor_producer(struct bench_ctl *ctl, const struct bench_args *a)
{
    struct bench_child *ch = &ctl->child[a->idx];
    struct floor_ring r;
    uint8_t *value = malloc(a->size ? a->size : 1);
    int rc = value ? floor_map(a->topic2, &r, 0) : -ENOMEM;

    bench_child_ready(ctl, a->idx);
    if (rc == 0) {
        memset(value, 'v', a->size);
        r.stream_min = floor_stream_min(a->batch > 1 ? FLOOR_STREAM_MIN : FLOOR_STREAM_ONE);
    }
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        uint32_t i;
        for (i = 0; i < a->batch && floor_put(&r, value, a->size, ctl); i++)
            ;
        floor_publish(&r);
        bench_count(ch, i, (uint64_t)i * a->size);
    }
    bench_child_finish(ch, rc);
    free(value);
    return rc < 0;
}

int role_floor_consumer(struct bench_ctl *ctl, const struct bench_args *a)
{
    struct bench_child *ch = &ctl->child[a->idx];
    uint64_t sink = 0, last_head = 0;
    uint32_t still = 0;
    struct floor_ring r;
    int rc = floor_map(a->topic2, &r, 0);

    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        uint64_t bytes = 0, n;
        if (!floor_worth_reading(&r, &last_head, &still)) {
            cpu_relax();
            continue;
        }
        if ((n = floor_drain(&r, &bytes, &sink)) > 0)
            bench_count(ch, n, bytes);
    }
    bench_sink = sink;
    bench_child_finish(ch, rc);
    return rc < 0;
}

/* Wait for one value in r; false at STOP. Spinning, the consumer prefetches the next
 * value's lines with every look (see the DESIGN note on waiting); asleep, it waits on the
 * head's futex word, with a timeout only so that a side that outlived its peer sees STOP. */
static bool floor_wait_one(struct floor_ring *r, struct bench_ctl *ctl, uint64_t *sink, bool sleep)
{
    struct timespec ts = {0, 100 * 1000000};
    uint64_t bytes = 0;
    while (floor_drain(r, &bytes, sink) == 0) {
        const uint8_t *next = r->data + (r->pos & (r->cap - 1));
        if (bench_phase(ctl) >= BENCH_STOP)
            return false;
        if (sleep) {
            syscall(SYS_futex, floor_head_word(r->h), FUTEX_WAIT, (uint32_t)r->pos, &ts, NULL, 0);
            continue;
        }
        __builtin_prefetch(next, 0, 3);
        __builtin_prefetch(next + 64, 0, 3);
        if ((r->pos & (r->cap - 1)) + r->wait_bytes <= r->cap)
            __builtin_prefetch(next + r->wait_bytes - 1, 0, 3);
        cpu_relax();
    }
    return true;
}

static int floor_pingpong(struct bench_ctl *ctl, const struct bench_args *a, bool ping)
{
    struct bench_child *ch = &ctl->child[a->idx];
    struct floor_ring out, in;
    uint8_t value[65536] = {0};
    struct bench_lat lat = {0};
    uint64_t sink = 0;
    bool sleep = a->wait == SHOAL_WAIT_FUTEX;
    int rc = floor_map(a->topic2, &out, ping ? 0 : 1);

    if (rc == 0)
        rc = floor_map(a->topic2, &in, ping ? 1 : 0);
    if (rc == 0 && ping)
        rc = bench_lat_init(&lat, 4u << 20);
    out.sleeper = sleep;
    in.wait_bytes = 4 + a->size;
    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        int64_t t0 = bench_now_ns();
        if (ping && !floor_send(&out, value, a->size, ctl))
            break;
        if (!floor_wait_one(&in, ctl, &sink, sleep))
            break;
        if (!ping && !floor_send(&out, value, a->size, ctl))
            break;
        if (ping)
            bench_lat_add(&lat, ctl, bench_now_ns() - t0);
        bench_count(ch, 1, a->size);
    }
    if (ping)
        bench_lat_finish(&lat, ch);
    bench_child_finish(ch, rc);
    return rc < 0;
}

int role_floor_ping(struct bench_ctl *ctl, const struct bench_args *a)
{
    return floor_pingpong(ctl, a, true);
}

int role_floor_pong(struct bench_ctl *ctl, const struct bench_args *a)
{
    return floor_pingpong(ctl, a, false);
}

/* ------------------------------------------------------------------ cache line */

/* Ping writes odd values, pong answers with the next even one. Runs in rounds: the probe
 * pair lives for the whole suite and sleeps between probes (phase SETUP); each MEASURE is
 * one probe of `total` round trips, after which ping bumps `done`. */
static void pin_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set);
}

/* One probe: `rounds` round trips in blocks of PROBE_BLOCK, each sample a block's mean, so
 * the two clock reads cost 1/PROBE_BLOCK of a sample. */
#define PROBE_BLOCK 16

static void line_probe(struct bench_ctl *ctl, struct bench_child *ch, uint64_t rounds)
{
    struct bench_lat lat;
    uint64_t v = atomic_load(&ctl->probe_line);

    if (bench_lat_init(&lat, rounds / PROBE_BLOCK + 1) < 0)
        return;
    for (uint64_t i = 0; i < rounds / PROBE_BLOCK; i++) {
        int64_t t0 = bench_now_ns();
        for (int k = 0; k < PROBE_BLOCK; k++) {
            atomic_store_explicit(&ctl->probe_line, v + 1, memory_order_release);
            while (atomic_load_explicit(&ctl->probe_line, memory_order_acquire) != v + 2)
                ; /* no pause: it alone costs tens of ns on recent cores */
            v += 2;
        }
        lat.ns[lat.n++] = (bench_now_ns() - t0) / PROBE_BLOCK;
    }
    bench_lat_finish(&lat, ch);
}

int role_line_ping(struct bench_ctl *ctl, const struct bench_args *a)
{
    struct bench_child *ch = &ctl->child[a->idx];

    pin_cpu(0);
    atomic_store(&ch->ready, 1);
    for (;;) {
        uint32_t ph = bench_phase(ctl);
        if (ph == BENCH_STOP)
            break;
        if (ph == BENCH_MEASURE && !atomic_load(&ch->done)) { /* the driver asks for one */
            line_probe(ctl, ch, a->total ? a->total : 2000);
            atomic_store(&ch->done, 1);
            continue;
        }
        /* A driver that takes a result and asks for the next probe at once may leave the
         * phase at MEASURE throughout: look at `done` again after a while. */
        bench_phase_wait(ctl, ph, ph == BENCH_MEASURE ? 1 : -1);
    }
    return 0;
}

int role_line_pong(struct bench_ctl *ctl, const struct bench_args *a)
{
    struct bench_child *ch = &ctl->child[a->idx];

    pin_cpu(1);
    atomic_store(&ch->ready, 1);
    for (;;) {
        uint32_t ph = bench_phase(ctl);
        uint64_t v;
        if (ph == BENCH_STOP)
            break;
        if (ph != BENCH_MEASURE) {
            bench_phase_wait(ctl, ph, -1);
            continue;
        }
        v = atomic_load_explicit(&ctl->probe_line, memory_order_acquire);
        if (v & 1)
            atomic_store_explicit(&ctl->probe_line, v + 1, memory_order_release);
    }
    return 0;
}

/* ------------------------------------------------------------------ pipe, socket */

static int rw_all(int fd, void *buf, size_t len, bool wr)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = wr ? write(fd, (uint8_t *)buf + done, len - done)
                       : read(fd, (uint8_t *)buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* fd: where ping writes (pong reads); fd2: where pong writes (ping reads). For a socket
 * pair the driver passes each side its own end as both. */
static int fd_pingpong(struct bench_ctl *ctl, const struct bench_args *a, bool ping)
{
    struct bench_child *ch = &ctl->child[a->idx];
    uint8_t value[65536] = {0};
    struct bench_lat lat = {0};
    int rc = ping ? bench_lat_init(&lat, 4u << 20) : 0;

    bench_child_ready(ctl, a->idx);
    while (rc == 0 && bench_phase(ctl) < BENCH_STOP) {
        int64_t t0 = bench_now_ns();
        if (ping && rw_all(a->fd, value, a->size, true) < 0)
            break;
        if (rw_all(ping ? a->fd2 : a->fd, value, a->size, false) < 0)
            break; /* the other side closed: the run is over */
        if (!ping && rw_all(a->fd2, value, a->size, true) < 0)
            break;
        if (ping)
            bench_lat_add(&lat, ctl, bench_now_ns() - t0);
        bench_count(ch, 1, a->size);
    }
    if (ping)
        bench_lat_finish(&lat, ch);
    bench_child_finish(ch, rc);
    return 0;
}

int role_fd_ping(struct bench_ctl *ctl, const struct bench_args *a)
{
    return fd_pingpong(ctl, a, true);
}

int role_fd_pong(struct bench_ctl *ctl, const struct bench_args *a)
{
    return fd_pingpong(ctl, a, false);
}
