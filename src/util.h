/* util.h - allocation, error detail, time, atomics, futex and byte-order helpers.
 * Internal to shoal; never installed. Every module may include it. */
#ifndef SHOAL_UTIL_H
#define SHOAL_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "shoal.h"

/* ---- allocation: every heap allocation goes through these, so tests can fail them ---- */
void *shoal__malloc(size_t n);
void *shoal__calloc(size_t n, size_t size);
void *shoal__realloc(void *p, size_t n);
char *shoal__strdup(const char *s);
void shoal__free(void *p);
/* Test hook: fail the nth allocation from now (1 = the next one), 0 disables. */
void shoal__alloc_fail_after(long n);

/* ---- error detail: a thread-local message read by shoal_errmsg() ---- */
/* Set the detail and return err, so a failure site reads `return SHOAL_ERR(code, ...)`. */
int shoal__set_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define SHOAL_ERR(err, ...) shoal__set_err((err), __VA_ARGS__)
/* At a public entry: SHOAL_EINVAL naming the argument when a pointer the caller must pass
 * is NULL, so a mistake in the application is an error code rather than a fault. */
#define SHOAL_NEED(arg)                                                                            \
    do {                                                                                           \
        if (__builtin_expect((arg) == NULL, 0))                                                    \
            return SHOAL_ERR(SHOAL_EINVAL, "%s: %s is NULL", __func__, #arg);                      \
    } while (0)
/* A shoal code (SHOAL_ERR_BASE and below), as opposed to 0 or -errno (above -4096). */
static inline bool shoal__is_code(int err)
{
    return err <= -4096;
}
void shoal__clear_err(void);

/* ---- fork(): a handle belongs to the process that opened it ---- */
/* fork()s between this process and the first one that used libshoal: pthread_atfork adds
 * one in each child. A handle keeps the value it saw at open; a different one now means it
 * was inherited (shoal.h, CAVEATS: a child may only close it). Read with a plain load on the
 * poll path: written only in a child before it has other threads. */
extern uint32_t shoal__forks;
/* shoal__forks, with the fork handler installed first (once per process). At open. */
uint32_t shoal__forks_at_open(void);
static inline bool shoal__inherited(uint32_t forks_at_open)
{
    return __builtin_expect(forks_at_open != shoal__forks, 0);
}

/* ---- one thread at a time per handle (shoal.h) ---- */
/* A call marks the handle with its thread while inside, so a second thread coming in
 * meanwhile is refused with SHOAL_EINVAL instead of tearing the handle's state (Kafka's
 * consumer does the same). Best effort, as the hot path takes no locked instruction for
 * it: two threads coming in within the same few nanoseconds may both pass, but a thread
 * inside is seen by every later one. A call nested in its own thread's (a consumer's
 * callback) passes. A thread's mark is the address of its error detail. */
typedef struct {
    _Atomic uintptr_t inside; /* the mark of the thread inside, 0: none */
} shoal_one_thread_t;
uintptr_t shoal__thread_mark(void);
/* 1 when entered (shoal__leave with it), 0 when nested in this thread's own call, or
 * SHOAL_EINVAL (detail: another thread is inside this `what`, "producer" or "consumer"). */
int shoal__one_thread_busy(const char *what);
static inline int shoal__enter(shoal_one_thread_t *t, const char *what)
{
    uintptr_t me = shoal__thread_mark();
    uintptr_t inside = atomic_load_explicit(&t->inside, memory_order_relaxed);

    if (__builtin_expect(inside != 0, 0))
        return inside == me ? 0 : shoal__one_thread_busy(what);
    atomic_store_explicit(&t->inside, me, memory_order_relaxed);
    return 1;
}
static inline void shoal__leave(shoal_one_thread_t *t, int entered)
{
    if (entered > 0)
        atomic_store_explicit(&t->inside, 0, memory_order_release);
}

/* ---- time ---- */
int64_t shoal__now_ms(void);  /* wall clock, ms since the epoch (record timestamps) */
int64_t shoal__mono_ns(void); /* monotonic clock, ns */
/* The absolute time timeout_ms from now on clock (for timed waits). */
struct timespec shoal__deadline(int clock, int timeout_ms);

/* ---- atomics on shared memory: named so every ordering is visible at the call site ---- */
#define shoal_load_acquire(p)     atomic_load_explicit((p), memory_order_acquire)
#define shoal_load_relaxed(p)     atomic_load_explicit((p), memory_order_relaxed)
#define shoal_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define shoal_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)

/* ---- spinning: tell the CPU this is a wait loop (frees the sibling hyperthread) ---- */
static inline void shoal__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ---- futex on shared (not private) words: other processes map the same page ---- */
/* Sleep while *word == expected, at most timeout_ms (-1: for ever).
 * Returns 0 when woken or the value differed, -ETIMEDOUT, -EINTR. */
int shoal__futex_wait(_Atomic uint32_t *word, uint32_t expected, int timeout_ms);
/* Sleep until any of n words differs from its expected value, at most timeout_ns (-1: for
 * ever); n <= 128. Returns as shoal__futex_wait. Falls back to waiting on words[0] with a
 * short timeout where futex_waitv is missing. */
int shoal__futex_waitv(_Atomic uint32_t *const *words, const uint32_t *expected, size_t n,
                       int64_t timeout_ns);
/* False once futex_waitv was found missing (before Linux 5.16): waits on several words
 * then watch only the first. */
bool shoal__futex_waitv_works(void);
int shoal__futex_wake(_Atomic uint32_t *word, int count);

/* 0 when the n bytes at p, a public struct's reserved fields, are all zero; else err, with
 * a detail naming the struct's init function (shoal.h, VERSIONS AND THE ABI). */
int shoal__check_reserved(const void *p, size_t n, int err, const char *init_fn);

/* ---- big-endian (Kafka wire/disk) byte order ----
 * One unaligned load or store and a byte swap each: written byte by byte, GCC 12 built the
 * 61-byte batch header with ~140 shift-and-or instructions (a quarter of a one-record
 * append). */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SHOAL_BE16(v) __builtin_bswap16(v)
#define SHOAL_BE32(v) __builtin_bswap32(v)
#define SHOAL_BE64(v) __builtin_bswap64(v)
#else
#define SHOAL_BE16(v) (v)
#define SHOAL_BE32(v) (v)
#define SHOAL_BE64(v) (v)
#endif
static inline void shoal__put_be16(uint8_t *p, uint16_t v)
{
    v = SHOAL_BE16(v);
    memcpy(p, &v, 2);
}
static inline void shoal__put_be32(uint8_t *p, uint32_t v)
{
    v = SHOAL_BE32(v);
    memcpy(p, &v, 4);
}
static inline void shoal__put_be64(uint8_t *p, uint64_t v)
{
    v = SHOAL_BE64(v);
    memcpy(p, &v, 8);
}
static inline uint16_t shoal__get_be16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return SHOAL_BE16(v);
}
static inline uint32_t shoal__get_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return SHOAL_BE32(v);
}
static inline uint64_t shoal__get_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return SHOAL_BE64(v);
}

/* ---- files ---- */
/* mkdir -p with the given mode for created directories. 0 or -errno. */
int shoal__mkdir_p(const char *path, unsigned mode);
/* Write all of buf at offset, retrying short writes and EINTR. 0 or -errno. */
int shoal__pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* Read exactly len bytes at offset. 0, -EIO on a short file, or -errno. */
int shoal__pread_all(int fd, void *buf, size_t len, uint64_t off);
/* fsync a directory by path. 0 or -errno. */
int shoal__fsync_dir(const char *path);
/* open(path, flags | O_CLOEXEC, mode) for a file that must be a regular file (a segment,
 * an index): opened O_NONBLOCK, so a FIFO or device put in its place cannot block the
 * caller, then checked with fstat. Add O_NOFOLLOW to flags where a symbolic link must not
 * be followed. Returns the fd (O_NONBLOCK cleared again), -errno, or SHOAL_ECORRUPT with
 * the detail "<path> is not a regular file (a FIFO)" (or directory, symbolic link, ...). */
int shoal__open_regular(const char *path, int flags, unsigned mode);
/* Whether dir (resolved first, so a link to a safe directory is fine) and every directory
 * on its way are safe for files shoald creates there by name: owned by this user or root
 * and writable by no one else (this process's group aside; a sticky directory such as /tmp
 * may be on the way, and be dir itself when sticky_ok). 0; -EPERM naming the directory at
 * fault; or -errno. what names dir in the detail ("data directory"). */
int shoal__check_dir_path(const char *dir, const char *what, bool sticky_ok);

#define SHOAL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SHOAL_PLURAL(n)    ((n) == 1 ? "" : "s") /* "%zu topic%s", n, SHOAL_PLURAL(n) */
/* Each evaluates one of its arguments twice: no calls, atomic loads or side effects in them. */
#define SHOAL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SHOAL_MAX(a, b) ((a) > (b) ? (a) : (b))

/* n bytes as text for a message, exactly: "3 MiB 256 KiB", "196 KiB", "1 byte". Whole MiB
 * alone made "needs 1 MiB, more than the 1 MiB left" of 1.5 and 1.25 MiB. Returns buf. */
#define SHOAL_SIZE_TEXT_BYTES 48
const char *shoal__size_text(char buf[SHOAL_SIZE_TEXT_BYTES], uint64_t n);
/* The power of two a size suffix stands for: 0 for "", 10 for K, KB or KiB, 20 for M..., 30
 * for G... (powers of 1024 all, in either case), or -1 for anything else. */
int shoal__size_suffix_shift(const char *suffix);

/* Whether s has a control character (below 0x20, or 0x7f): a name that goes into log lines
 * and tables must not, or a newline in it forges lines. */
bool shoal__has_control(const char *s);

#endif
