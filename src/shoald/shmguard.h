/* shmguard.h - shoald outlives a shared file cut short under it.
 *
 * A client that holds one of a ring's files open read-write (every producer, and every
 * client for the readers table) can ftruncate it; every mapping of the file then raises
 * SIGBUS on an access past the new end, and shoald used to die of it, taking every topic
 * with it. shoald registers here the mappings it makes of files that other processes can
 * write. A SIGBUS for a page of one of them replaces that page and the rest of the mapping
 * with private pages of zeros, marks the mapping and returns: the access completes and
 * reads zeros, which shoald already treats as it treats any value a client may have
 * written (checked where it indexes or bounds a read). The owner then finds the mark
 * (shmguard_take) and repairs the file or gives the mapping up. Any other SIGBUS (a fault
 * elsewhere, or one sent by kill) has its default action: the process dies with a core.
 *
 * Thread-safety: any thread may add, remove and ask; the handler runs in whichever thread
 * faulted. A mapping must be removed before it is unmapped. */
#ifndef SHOALD_SHMGUARD_H
#define SHOALD_SHMGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Install the SIGBUS handler. 0 or -errno. Call before the threads start. */
int shmguard_install(void);

/* Guard the mapping [addr, addr + len). 0, or -ENOMEM when the registry is full (the
 * mapping then stays unguarded). */
int shmguard_add(void *addr, size_t len);
/* Stop guarding the mapping that starts at addr (nothing when it is not guarded). */
void shmguard_remove(const void *addr);

/* Whether the mapping that starts at addr took a SIGBUS since it was added or last asked,
 * forgetting it (a fault after this call marks it again). Ask before mapping it again. */
bool shmguard_take(const void *addr);

/* How many faults the handler has handled since the start: a cheap test for whether any
 * mapping needs to be looked at. */
uint32_t shmguard_fault_count(void);

/* A mapping no fault can be survived in (the metadata store's, whose file a damaged page
 * can point past): a SIGBUS in [addr, addr + len) writes msg to stderr, then the process
 * dies as it would have, rather than with nothing said. One such mapping; msg is kept. */
void shmguard_fatal(const void *addr, size_t len, const char *msg);

#endif
