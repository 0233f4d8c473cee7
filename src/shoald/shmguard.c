/* shmguard.c - see shmguard.h.
 *
 * The registry is a table of [lo, hi) ranges the handler can search with atomic loads
 * alone: chunks of entries allocated as needed and never freed or moved, an entry freed by
 * storing lo = 0. Adding and removing take a mutex between themselves; the handler takes
 * none (it may interrupt a thread holding it). A mapping is only removed once nothing
 * reads it any more, so a fault can only come from a mapping that is registered. */
#include "shmguard.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

#define CHUNK_RANGES 1024
#define MAX_CHUNKS   1024 /* a million mappings: 15,000 partitions of 64 slots */
#define MAX_RANGES   ((size_t)CHUNK_RANGES * MAX_CHUNKS)

struct range {
    _Atomic uintptr_t lo; /* 0: a free entry */
    _Atomic uintptr_t hi;
    _Atomic uint32_t faulted;
};

static struct range *_Atomic chunks[MAX_CHUNKS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t first_free; /* no free entry below it (table_lock) */
static _Atomic uint32_t faults;
static uintptr_t page_mask;
static _Atomic uintptr_t fatal_lo, fatal_hi; /* shmguard_fatal */
static const char *fatal_msg;

static struct range *range_at(size_t i)
{
    struct range *c = atomic_load_explicit(&chunks[i / CHUNK_RANGES], memory_order_acquire);
    return c ? &c[i % CHUNK_RANGES] : NULL;
}

/* The entry whose range contains a (exact: starts at a), and its end; NULL when none.
 * Chunks are allocated in order, so the first missing one ends the search. */
static struct range *range_find(uintptr_t a, bool exact, uintptr_t *hi, size_t *index)
{
    for (size_t i = 0; i < MAX_RANGES; i++) {
        struct range *r = range_at(i);
        uintptr_t lo, end;
        if (!r)
            return NULL;
        lo = atomic_load(&r->lo);
        end = atomic_load(&r->hi);
        /* lo again: an entry freed and reused between the two loads is not this range */
        if (lo != 0 && (exact ? a == lo : a >= lo && a < end) && atomic_load(&r->lo) == lo) {
            *hi = end;
            *index = i;
            return r;
        }
    }
    return NULL;
}

/* A page of a registered range faulted: the file behind it ends before that page. Map
 * zeros from it to the range's end (every page past the file's end would fault too), so
 * that the access, executed again on return, reads zeros. Anything else: the default
 * action, at once (SIGBUS stays blocked until the handler returns, then the raised one
 * ends the process). Only atomics and async-signal-safe calls here. */
static void on_sigbus(int sig, siginfo_t *si, void *ucontext)
{
    uintptr_t a = (uintptr_t)si->si_addr, page = a & page_mask, hi;
    struct range *r = NULL;
    int saved_errno = errno;
    size_t i;

    (void)ucontext;
    if (si->si_code == BUS_ADRERR)
        r = range_find(a, false, &hi, &i);
    if (r && mmap((void *)page, hi - page, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
        atomic_store(&r->faulted, 1);
        atomic_fetch_add(&faults, 1);
    } else {
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        if (a >= atomic_load(&fatal_lo) && a < atomic_load(&fatal_hi))
            (void)!write(STDERR_FILENO, fatal_msg, strlen(fatal_msg));
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
        raise(sig);
    }
    errno = saved_errno;
}

int shmguard_install(void)
{
    struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_RESTART};

    page_mask = ~((uintptr_t)sysconf(_SC_PAGESIZE) - 1);
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGBUS, &sa, NULL) < 0 ? -errno : 0;
}

int shmguard_add(void *addr, size_t len)
{
    int rc = -ENOMEM;

    pthread_mutex_lock(&table_lock);
    for (size_t i = first_free; i < MAX_RANGES; i++) {
        struct range *r = range_at(i);
        if (!r) {
            struct range *c = calloc(CHUNK_RANGES, sizeof(*c));
            if (!c)
                break;
            atomic_store_explicit(&chunks[i / CHUNK_RANGES], c, memory_order_release);
            r = &c[i % CHUNK_RANGES];
        }
        if (atomic_load(&r->lo) != 0)
            continue;
        atomic_store(&r->faulted, 0);
        atomic_store(&r->hi, (uintptr_t)addr + len);
        atomic_store(&r->lo, (uintptr_t)addr);
        first_free = i + 1;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&table_lock);
    return rc;
}

void shmguard_remove(const void *addr)
{
    uintptr_t hi;
    size_t i;
    struct range *r;

    pthread_mutex_lock(&table_lock);
    if ((r = range_find((uintptr_t)addr, true, &hi, &i))) {
        atomic_store(&r->lo, 0);
        atomic_store(&r->hi, 0);
        first_free = SHOAL_MIN(first_free, i);
    }
    pthread_mutex_unlock(&table_lock);
}

bool shmguard_take(const void *addr)
{
    uintptr_t hi;
    size_t i;
    struct range *r = range_find((uintptr_t)addr, true, &hi, &i);
    return r && atomic_exchange(&r->faulted, 0);
}

uint32_t shmguard_fault_count(void)
{
    return atomic_load(&faults);
}

void shmguard_fatal(const void *addr, size_t len, const char *msg)
{
    fatal_msg = msg;
    atomic_store(&fatal_hi, (uintptr_t)addr + len);
    atomic_store(&fatal_lo, (uintptr_t)addr);
}
