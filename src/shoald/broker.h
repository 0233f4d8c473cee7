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
    /* This topic's number in this run of shoald: one deleted and created again under its
     * name is another topic, with another number (the group coordinator tells them apart
     * by it, as Kafka does by topic id; groups live only in memory, so a run is enough). */
    uint64_t incarnation;
    shoal_topic_config_t cfg;
    dpart_t *parts;      /* cfg.partitions entries */
    uint32_t growing_to; /* partitions being added (broker_topic_grow_finish), else 0 */
} dtopic_t;

typedef struct broker {
    const shoald_config_t *cfg;
    char shm_dir[PATH_MAX]; /* <shm.dir>/shoal.<instance>[@<hex>]: broker_shm_dir */
    uint64_t ring_owner;    /* store_ring_owner(): what its rings carry */
    char socket_path[PATH_MAX];
    store_t *store;
    /* Readers: the flusher and lookups. Writer: topic create/delete. */
    pthread_rwlock_t lock;
    dtopic_t **topics; /* sorted by name */
    size_t ntopics;
    uint64_t registry_changes; /* topics put in or taken out so far (a pattern's matches) */
    /* Topics being created: their store records written, their rings still being made
     * outside the lock (broker_topic_create_finish); under the lock. */
    struct broker_creating *creating;
    size_t ncreating;
    _Atomic uint32_t wake; /* futex: broker_wake() ends broker_wait_for_work() */
    struct waitset *waits; /* the flusher's, for broker_wait_for_work() */
    int data_lock_fd;
    int shm_lock_fd;
    _Atomic uint64_t incarnations; /* topics opened so far (dtopic.incarnation) */
} broker_t;

/* Create directories, take the instance locks, open the store and recover every topic.
 * 0 or a negative code (logged). */
int broker_open(broker_t *b, const shoald_config_t *cfg);
/* Persist every ring (final flush with fsync) and release everything. 0, or -EIO when
 * some disk partition's records could not all be written (each logged with where they
 * wait). */
int broker_close(broker_t *b);

/* The following take the registry lock themselves. */
int broker_topic_create(broker_t *b, const char *name, const shoal_topic_config_t *cfg);
/* broker_topic_create() in two steps, so that the second, which makes the rings (seconds
 * for large ones), holds no lock and may run on another thread. begin checks the request
 * and records the topic as being created (0 or the error); finish, called once after a
 * successful begin, makes it and serves it, or undoes begin (0 or the error). */
int broker_topic_create_begin(broker_t *b, const char *name, const shoal_topic_config_t *cfg);
int broker_topic_create_finish(broker_t *b, const char *name, const shoal_topic_config_t *cfg);
/* With the registry lock held: whether the topic is between those two steps. */
bool broker_is_creating(const broker_t *b, const char *name);
int broker_topic_delete(broker_t *b, const char *name);
/* Log a warning when the topics' rings take more than max.shm.bytes (after a start, or a
 * reload that lowered it): no create or growth is admitted until some are deleted. */
void broker_shm_cap_check(broker_t *b);
/* Change settings by name (all or nothing): SHOAL_ENOTOPIC, SHOAL_ESETTING, SHOAL_ECONFIG,
 * SHOAL_EIMMUTABLE, SHOAL_ADMIN_ACTION (partitions are being added). Durable in LMDB on
 * return; the flusher uses the new values at once. */
int broker_topic_alter(broker_t *b, const char *name, const char *const *names,
                       const char *const *values, size_t n);
/* broker_topic_alter() in two steps, for an alter that adds partitions, as create: begin
 * applies an alter that adds none (0, or the error) or, when partitions grow, checks it,
 * records the topic as growing and returns 1 with the whole new config in *next; finish,
 * called once after that, makes the new partitions (rings and directories: no lock held,
 * so it may run on another thread), then serves them and stores *next, or undoes begin. */
int broker_topic_alter_begin(broker_t *b, const char *name, const char *const *names,
                             const char *const *values, size_t n, shoal_topic_config_t *next);
int broker_topic_grow_finish(broker_t *b, const char *name, const shoal_topic_config_t *next);

/* With the registry lock held: the shared memory the served topics' rings take. */
uint64_t broker_served_shm_bytes(const broker_t *b);
/* Call with the registry lock held (read or write). NULL when missing. */
dtopic_t *broker_find(broker_t *b, const char *name);
/* With the registry lock held: SHOAL_ENOTOPIC for a name broker_find() missed, saying
 * whether it is being created, or the store knows it (recovery left it out), or neither. */
int broker_no_topic(broker_t *b, const char *name);

/* The flusher's wait between passes. While some partition has work (dpart_idle_until),
 * sleep up to tick_ms; otherwise up to idle_ms or the partitions' earliest deadline (a
 * flush.ms fsync, a segment.ms roll), and an append to any disk partition ends the sleep
 * too (the flusher counts as a sleeping reader there, so only the first append after a
 * quiet spell makes a system call). Either wait also ends when a producer starts waiting
 * for ACKS_DISK on a disk partition or for room in a memory one (as far as one futex_waitv
 * holds their words), or at broker_wake(); it returns at once when such a producer waits
 * already, or when broker_wake() was called since broker_wake_seq() returned wake_seen
 * (take it before the pass, so that a wake-up during the pass is not slept through). An
 * idle sleep needs every disk partition's two words in the wait: beyond 63 disk partitions
 * helper threads wait on the words past futex_waitv's 128 (waitset.h), and beyond about
 * 2,000 the flusher keeps ticking. A tick waits on the first 128 words only. */
void broker_wait_for_work(broker_t *b, uint32_t wake_seen, int tick_ms, int idle_ms);
/* End a broker_wait_for_work() in progress or about to start (at shutdown, when a topic is
 * created, altered or deleted, when the settings are reloaded). Any thread. */
void broker_wake(broker_t *b);
uint32_t broker_wake_seq(broker_t *b);

/* One pass of the flusher over every partition; final makes it fsync everything. */
void broker_flush_all(broker_t *b, bool final, bool reap);

#endif
