/* rlock.c - process-shared robust mutex.
 *
 * DESIGN: the append lock lives in a shared mapping and may be held by a process that is
 * killed. With PTHREAD_MUTEX_ROBUST the kernel hands the next locker EOWNERDEAD; the
 * caller's repair hook then restores the invariants of what the lock protects (for the
 * ring: drop the unpublished tail, finish or undo a slot rotation), and the mutex is marked
 * consistent. If repair fails the mutex is unlocked without being marked consistent, so it
 * becomes ENOTRECOVERABLE and every later locker gets SHOAL_EPANIC instead of limping on,
 * as LMDB does with MDB_PANIC. */
#include "rlock.h"

#include <errno.h>
#include <time.h>

#include "util.h"

int rlock_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc)
        return -rc;
    rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (!rc)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (!rc)
        rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return -rc;
}

/* The deadline is on the monotonic clock: a step of the wall clock (NTP, an administrator)
 * would lengthen or cut the wait. */
static int lock_with_timeout(pthread_mutex_t *m, int timeout_ms)
{
    struct timespec ts;
    if (timeout_ms < 0)
        return pthread_mutex_lock(m);
    ts = shoal__deadline(CLOCK_MONOTONIC, timeout_ms);
    return pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
}

/* What follows a lock attempt that returned rc: the lock held (0) or an error. */
static int lock_outcome(pthread_mutex_t *m, int rc, int timeout_ms, rlock_repair_fn repair,
                        void *arg)
{
    if (rc == 0)
        return 0;
    if (rc == ETIMEDOUT)
        return SHOAL_ERR(SHOAL_ETIMEDOUT, "append lock still held after %d ms", timeout_ms);
    if (rc == ENOTRECOVERABLE)
        return SHOAL_ERR(SHOAL_EPANIC, "append lock is not recoverable");
    if (rc != EOWNERDEAD)
        return -rc;
    rc = repair ? repair(arg) : 0;
    if (rc < 0) {
        pthread_mutex_unlock(m);
        return SHOAL_ERR(SHOAL_EPANIC, "repair after a dead lock owner failed: %s",
                         shoal_strerror(rc));
    }
    rc = pthread_mutex_consistent(m);
    if (rc) {
        pthread_mutex_unlock(m);
        return SHOAL_ERR(SHOAL_EPANIC, "pthread_mutex_consistent: %s", shoal_strerror(-rc));
    }
    return 0;
}

int rlock_acquire(pthread_mutex_t *m, int timeout_ms, rlock_repair_fn repair, void *arg)
{
    return lock_outcome(m, lock_with_timeout(m, timeout_ms), timeout_ms, repair, arg);
}

/* Not pthread_mutex_trylock(): on a mutex left unrecoverable by a failed repair, glibc's
 * returns ENOTRECOVERABLE but leaves the mutex locked by the caller and off its robust list,
 * so every later locker would time out or wait for ever instead of getting SHOAL_EPANIC. A
 * timed lock whose deadline has passed still takes a free mutex without waiting (POSIX), and
 * unlocks an unrecoverable one before returning ENOTRECOVERABLE. When the mutex is held it
 * costs one futex call more than a trylock. */
int rlock_try(pthread_mutex_t *m, rlock_repair_fn repair, void *arg)
{
    static const struct timespec past = {0, 0};
    int rc = pthread_mutex_timedlock(m, &past);
    return lock_outcome(m, rc == ETIMEDOUT ? EBUSY : rc, 0, repair, arg);
}

void rlock_release(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
}
