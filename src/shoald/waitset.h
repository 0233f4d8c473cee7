/* waitset.h - wait until any of many shared futex words changes.
 *
 * futex_waitv takes at most 128 words, and the flusher sleeps on two a disk partition.
 * A wait set of more is split into groups: the calling thread waits on the first, a helper
 * thread on each other, and each group also holds the set's own `end` word, which whoever
 * returns first moves and wakes, so that every other group's wait returns too. A wait
 * returns only when every helper is done with the words. Helpers are started on demand,
 * up to WAITSET_MAX_HELPERS, and sleep between the waits that need them.
 *
 * Thread-safety: one thread uses a set (the flusher); its helpers are internal. */
#ifndef SHOALD_WAITSET_H
#define SHOALD_WAITSET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WAITSET_GROUP_WORDS 127 /* futex_waitv's 128, less the end word */
#define WAITSET_MAX_HELPERS 127
#define WAITSET_MAX_WORDS   (WAITSET_GROUP_WORDS * (WAITSET_MAX_HELPERS + 1))

typedef struct waitset waitset_t;

/* A new empty set, or NULL when out of memory. */
waitset_t *waitset_new(void);
/* Stop and join the helpers, free the set. NULL is ignored. */
void waitset_free(waitset_t *ws);

/* Empty the set for the next wait. */
void waitset_clear(waitset_t *ws);
/* Add a word and the value it must keep for the wait to go on. 0; -E2BIG beyond
 * WAITSET_MAX_WORDS; -ENOMEM. */
int waitset_add(waitset_t *ws, _Atomic uint32_t *word, uint32_t expected);
size_t waitset_size(const waitset_t *ws);

/* Wait until a word differs from its value (at once if one does already), timeout_ns
 * passes (< 0: no limit), or a word's page is unmapped (-EFAULT). With every_word false,
 * or where futex_waitv is missing, only the first 128 words are watched, in this thread:
 * for short waits, where waking the helpers would cost more than the wait saves. 0, or a
 * negative errno of futex_waitv, or of pthread_create when a helper could not start (then
 * without waiting: the caller should wait with every_word false instead). */
int waitset_wait(waitset_t *ws, int64_t timeout_ns, bool every_word);

#endif
