/* rlock.h - a process-shared robust mutex with a repair hook for owner death. */
#ifndef SHOAL_RLOCK_H
#define SHOAL_RLOCK_H

#include <pthread.h>

/* Initialise a mutex that lives in shared memory: PTHREAD_PROCESS_SHARED and
 * PTHREAD_MUTEX_ROBUST. 0 or -errno. */
int rlock_init(pthread_mutex_t *m);

/* Called with the lock held after its previous owner died inside it; returns 0 when the
 * protected state is consistent again, or a negative code to give up. */
typedef int (*rlock_repair_fn)(void *arg);

/* Take the lock. timeout_ms < 0 waits for ever (a timeout is on the monotonic clock). When
 * the previous owner died holding it, run repair (NULL: nothing to repair) and mark the
 * mutex consistent before returning 0.
 * Returns 0 (held), SHOAL_ETIMEDOUT, SHOAL_EPANIC (repair failed, or the mutex is not
 * recoverable: the lock is not held), or -errno. */
int rlock_acquire(pthread_mutex_t *m, int timeout_ms, rlock_repair_fn repair, void *arg);

/* rlock_acquire() that does not wait: -EBUSY when another thread holds the lock. */
int rlock_try(pthread_mutex_t *m, rlock_repair_fn repair, void *arg);

void rlock_release(pthread_mutex_t *m);

#endif
