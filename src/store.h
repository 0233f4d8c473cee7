/* store.h - the daemon's metadata store on LMDB. The only module that includes <lmdb.h>.
 *
 * One environment under <data_dir>/meta with named databases:
 *   "topics"  topic name -> topic config (versioned little-endian record)
 *   "offsets" (group, topic, partition) -> committed offset   [filled by the groups issue]
 *   "groups"  group id -> generation, protocol, members       [filled by the groups issue]
 *   "acls"    topic -> allowed uids/gids                      [reserved]
 *   "meta"    "ring.owner" -> u64, "ring.shm" -> the shm directory (store_ring_owner),
 *             "deleting/<topic>" -> u32 partitions: a delete whose files may be left,
 *             "growing/<topic>" -> u32 first, end: partitions being added, not yet stored
 * Single writer (the daemon). Every function returns 0 or a negative code; LMDB errors are
 * mapped to SHOAL_EIO with the LMDB message in shoal_errmsg(). */
#ifndef SHOAL_STORE_H
#define SHOAL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "shoal.h"

typedef struct store store_t;

/* Open or create the environment in dir (created 0700 when missing), files mode 0600.
 * map_bytes 0 means a default of 1 GiB. On failure *out is NULL and nothing leaks. */
int store_open(const char *dir, size_t map_bytes, store_t **out);
void store_close(store_t *st);
/* Called by store_open() once LMDB has mapped dir/data.mdb at [addr, addr + len), before
 * it reads anything there (shoald guards the map: shmguard_fatal). NULL: none. */
typedef void (*store_map_hook)(void *addr, size_t len, const char *dir);
void store_set_map_hook(store_map_hook hook);

/* The id that the shared rings serving this data directory carry (struct shm_ctl's owner),
 * for shoald serving it with its rings in shm_dir. Kept while the last start used the same
 * shm_dir; otherwise (first start, another --instance or --shm-dir since) a new random id
 * is stored with shm_dir, so that rings made earlier, for this directory before another
 * shm directory served it or for another data directory, carry an id that differs. *prev
 * gets the shm directory of the last start ("" for none). 1 when the id is new, 0 when
 * kept, or a negative code. Durable on return. */
int store_ring_owner(store_t *st, const char *shm_dir, uint64_t *owner, char *prev, size_t cap);
/* The shm directory the last store_ring_owner() stored into prev ("" for none). */
int store_ring_shm(store_t *st, char *prev, size_t cap);

/* Insert a new topic, with no committed offsets (any under its name are dropped).
 * SHOAL_ETOPICEXISTS when the name is taken. Durable on return. */
int store_topic_put(store_t *st, const char *name, const shoal_topic_config_t *cfg);
/* Replace an existing topic's config. SHOAL_ENOTOPIC when missing. Durable on return. */
int store_topic_update(store_t *st, const char *name, const shoal_topic_config_t *cfg);
/* SHOAL_ENOTOPIC when missing. A stored record of an unknown version is SHOAL_EVERSION;
 * a short or garbled one is SHOAL_ECORRUPT. */
int store_topic_get(store_t *st, const char *name, shoal_topic_config_t *cfg);
/* Delete the topic and every group's committed offsets of it, and note the delete as
 * unfinished (its partitions' files are removed after), in one transaction. Returns how
 * many offsets went, SHOAL_ENOTOPIC when missing. Durable on return. */
int store_topic_delete(store_t *st, const char *name);
/* The delete of name is finished: its files are gone. Durable on return. */
int store_deleting_done(store_t *st, const char *name);
/* Call cb for each delete noted and not finished (a crash came between the two), with the
 * topic's partition count (SHOAL_PARTITIONS_MAX when its record was damaged); stops and
 * returns cb's value when non-zero. A new topic of the name drops the note. */
typedef int (*store_deleting_cb)(void *arg, const char *name, uint32_t partitions);
int store_deleting_foreach(store_t *st, store_deleting_cb cb, void *arg);
/* Note that partitions first..end - 1 of topic name are being added: their files are made
 * before the topic's new count is stored, and a crash in between leaves them to remove at
 * the next start. Writing the topic's record (store_topic_update), or deleting it, ends the
 * note. Durable on return. */
int store_growing_note(store_t *st, const char *name, uint32_t first, uint32_t end);
/* The grow of name ended without storing its new count, and its files are gone. Durable
 * on return. */
int store_growing_done(store_t *st, const char *name);
/* Call cb for each grow noted and not ended; stops and returns cb's value when non-zero. */
typedef int (*store_growing_cb)(void *arg, const char *name, uint32_t first, uint32_t end);
int store_growing_foreach(store_t *st, store_growing_cb cb, void *arg);

/* cfg is NULL when the topic's stored record is unreadable or out of range (a damaged
 * store): shoal_errmsg() says why. */
typedef int (*store_topic_cb)(void *arg, const char *name, const shoal_topic_config_t *cfg);
/* Call cb for every topic in name order; stops and returns cb's value when non-zero. A
 * key that is not a topic name stops it with SHOAL_ECORRUPT. */
int store_topic_foreach(store_t *st, store_topic_cb cb, void *arg);

/* Serialisation of a topic config, exposed for the unit tests. */
#define STORE_TOPIC_RECORD_BYTES 88
void store_topic_encode(uint8_t out[STORE_TOPIC_RECORD_BYTES], const shoal_topic_config_t *cfg);
int store_topic_decode(const uint8_t *in, size_t len, shoal_topic_config_t *cfg);

/* ------------------------------------------------------------------ committed offsets
 * Key: group bytes, NUL, topic bytes, NUL, be32 partition (so a cursor walks a group's
 * offsets in topic, partition order). Value: u8 version (1), u8[7] 0, le64 offset,
 * le64 commit time in ms since the epoch. */
typedef struct store_offset {
    const char *group;
    const char *topic;
    int32_t partition;
    int64_t offset;
} store_offset_t;

/* Write n offsets in one durable transaction. */
int store_offsets_put(store_t *st, const store_offset_t *offs, size_t n);
/* 1 with *offset set when stored, 0 when not, or a negative code. */
int store_offset_get(store_t *st, const char *group, const char *topic, int32_t partition,
                     int64_t *offset);
typedef int (*store_offset_cb)(void *arg, const char *group, const char *topic, int32_t partition,
                               int64_t offset);
/* Every stored offset of group (NULL: of every group) in key order; stops at a non-zero cb
 * value and returns it. */
int store_offset_foreach(store_t *st, const char *group, store_offset_cb cb, void *arg);
typedef int (*store_group_cb)(void *arg, const char *group, int64_t last_commit_ms);
/* Every group with stored offsets, in key order, with the time of its latest commit (ms
 * since the epoch), passing over records it cannot decode; stops at a non-zero cb value and
 * returns it. */
int store_offset_groups(store_t *st, store_group_cb cb, void *arg);
/* Partitions from..to - 1 of topic are new: every group with an offset of the topic gets
 * offset 0 there (where it has none), so that it reads them from their start whatever its
 * members' auto_offset_reset. Durable on return. How many were written, or a negative code. */
int store_offsets_start_added(store_t *st, const char *topic, uint32_t from, uint32_t to);
/* Delete the group's offsets (of one topic when topic is not NULL). Durable on return.
 * Returns how many were deleted or a negative code. */
int store_offsets_delete(store_t *st, const char *group, const char *topic);

#endif
