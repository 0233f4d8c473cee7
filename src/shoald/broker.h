/* broker.h - shoald's state: the instance's directories and locks, the metadata store,
 * and the registry of topics with their partitions. */
#ifndef SHOALD_BROKER_H
#define SHOALD_BROKER_H

#include <pthread.h>

#include "config.h"
#include "partition.h"
#include "store.h"

typedef struct dtopic {
    char name[SHOAL_TOPIC_NAME_MAX + 1];
    shoal_topic_config_t cfg;
    dpart_t *parts; /* cfg.partitions entries */
} dtopic_t;

typedef struct broker {
    const shoald_config_t *cfg;
    char shm_dir[PATH_MAX]; /* <shm.dir>/shoal.<instance> */
    char socket_path[PATH_MAX];
    store_t *store;
    /* Readers: the flusher and lookups. Writer: topic create/delete. */
    pthread_rwlock_t lock;
    dtopic_t **topics; /* sorted by name */
    size_t ntopics;
    _Atomic uint32_t wake; /* futex: broker_wake() ends broker_wait_for_work() */
    int data_lock_fd;
    int shm_lock_fd;
} broker_t;

/* Create directories, take the instance locks, open the store and recover every topic.
 * 0 or a negative code (logged). */
int broker_open(broker_t *b, const shoald_config_t *cfg);
/* Persist every ring (final flush with fsync) and release everything. */
void broker_close(broker_t *b);

/* The following take the registry lock themselves. */
int broker_topic_create(broker_t *b, const char *name, const shoal_topic_config_t *cfg);
int broker_topic_delete(broker_t *b, const char *name);
/* Change settings by name (all or nothing): SHOAL_ENOTOPIC, SHOAL_ESETTING, SHOAL_ECONFIG,
 * SHOAL_EIMMUTABLE. Durable in LMDB on return; the flusher uses the new values at once. */
int broker_topic_alter(broker_t *b, const char *name, const char *const *names,
                       const char *const *values, size_t n);

/* Call with the registry lock held (read or write). NULL when missing. */
dtopic_t *broker_find(broker_t *b, const char *name);

/* Sleep up to timeout_ms, or until a producer starts waiting for ACKS_DISK on one of the
 * first 127 disk partitions, or broker_wake(). Returns at once when one already waits. */
void broker_wait_for_work(broker_t *b, int timeout_ms);
/* End a broker_wait_for_work() in progress (at shutdown). Any thread. */
void broker_wake(broker_t *b);

/* One pass of the flusher over every partition; final makes it fsync everything. */
void broker_flush_all(broker_t *b, bool final, bool reap);

#endif
