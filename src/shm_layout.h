/* shm_layout.h - every structure that lives in shared memory, and nothing else.
 *
 * A partition's hot state is three kinds of files under the instance's shm directory
 * (/dev/shm/shoal.<instance>/), all created 0600 by shoald and handed to clients as file
 * descriptors:
 *
 *   <topic>-<p>.ctl       struct shm_ctl: identity, the append lock, watermarks, slot table.
 *                         Mapped read-write by producers and shoald, read-only by consumers.
 *   <topic>-<p>.readers   struct shm_readers: the wake-up futex word, the waiter count and
 *                         the reader table (pinned slots). Read-write for every client,
 *                         because a sleeping consumer must announce itself.
 *   <topic>-<p>.slot<i>   ring slot i: slot_bytes of concatenated Kafka RecordBatch v2.
 *                         Read-write for producers and shoald, read-only for consumers.
 *
 * Slot i and the disk segment with the same base offset hold the same bytes: the flusher
 * copies a slot's published prefix to <base>.log, so a slot is a segment still in memory.
 *
 * Shared memory holds no pointers. Fields that change after creation are C11 atomics;
 * the hot ones sit on their own cache line so producers and readers do not false-share.
 * The identity block is written first and the magic last, so a process that maps a
 * half-made file sees no magic and refuses it (SHOAL_EVERSION). */
#ifndef SHOAL_SHM_LAYOUT_H
#define SHOAL_SHM_LAYOUT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define SHM_CTL_MAGIC     0x4c54434c414f4853ull /* "SHOALCTL" */
#define SHM_READERS_MAGIC 0x5244524c414f4853ull /* "SHOALRDR" */
/* shm_ctl.closed (any non-zero value stops clients; older ones call each "deleted") */
#define SHM_OPEN           0u
#define SHM_CLOSED_DELETED 1u /* the topic was deleted */
#define SHM_CLOSED_STOPPED 2u /* shoald stopped the partition: its ring is damaged */
#define SHM_LAYOUT_VERSION                                                                         \
    3u /* 2: append copies on the lock line, space_* apart;                                        \
          3: SHM_ASLEEP_RELEASED */
#define SHM_MAX_SLOTS   64u
#define SHM_MAX_READERS 256u
#define SHM_CACHE_LINE  64

/* Life of a slot. Every transition but the reader's pin happens under the append lock:
 *   FREE -> ACTIVE      a producer rotates into it (gen is incremented)
 *   ACTIVE -> SEALED    a producer rotates out of it (end_offset is set)
 *   SEALED -> RECLAIMING -> FREE | SEALED
 *                       shoald after flushing it (disk topics), or a producer that needs
 *                       room (memory topics), when no live reader pins it. */
enum shm_slot_state {
    SHM_SLOT_FREE = 0,
    SHM_SLOT_ACTIVE = 1,
    SHM_SLOT_SEALED = 2,
    SHM_SLOT_RECLAIMING = 3,
};

struct shm_slot {
    _Atomic uint32_t state;
    _Atomic uint32_t gen;          /* incremented each time the slot becomes ACTIVE */
    _Atomic int64_t base_offset;   /* offset of the slot's first record */
    _Atomic int64_t end_offset;    /* next offset after the slot's records, once SEALED */
    _Atomic uint64_t used;         /* published bytes: the only publication point */
    _Atomic int64_t max_timestamp; /* largest record timestamp in the slot, -1 if none */
    uint8_t pad_[SHM_CACHE_LINE - 40];
};

struct shm_ctl {
    /* identity: written once by shoald before the magic */
    uint64_t magic;
    uint32_t version;
    uint32_t ctl_bytes; /* sizeof(struct shm_ctl), checked by every mapper */
    uint64_t slot_bytes;
    uint32_t slot_count;
    uint32_t partition;
    uint32_t max_record_bytes;
    uint32_t storage;        /* shoal_storage_t */
    _Atomic uint32_t closed; /* SHM_OPEN, or why appends and polls stop: SHM_CLOSED_* */
    /* the topic's partition count, which may grow (shoald stores it in every partition's
     * block): producers look at partition 0's to follow it; 0 when not known */
    _Atomic uint32_t topic_partitions;
    /* the data directory's ring owner id (store_ring_owner): shoald re-attaches only a ring
     * made for its data directory, and one that no other shm directory served it after;
     * 0 in a ring made before there were owners (added in layout 3's padding) */
    uint64_t owner;
    uint8_t pad0_[SHM_CACHE_LINE - 56];

    /* the append lock: PTHREAD_PROCESS_SHARED | PTHREAD_MUTEX_ROBUST; on its line, the
     * lock holder's copy of the active slot's used and max_timestamp, so an append reads
     * nothing from the slot descriptor that readers poll (it only stores there) */
    union {
        struct {
            pthread_mutex_t lock;
            _Atomic uint64_t append_used;  /* == slots[active_slot].used outside the lock */
            _Atomic int64_t append_max_ts; /* == slots[active_slot].max_timestamp */
        };
        uint8_t lock_line_[SHM_CACHE_LINE];
    };

    /* producer-written, under the lock, on every append; consumers do not poll it */
    _Atomic int64_t log_end_offset; /* next offset to assign */
    _Atomic uint32_t active_slot;
    _Atomic int32_t writer_cpu; /* the last append's CPU + 1 (0: unknown): whom a yield helps */
    uint8_t pad1_[SHM_CACHE_LINE - 16];

    /* producers waiting for a free slot; consumers poll space_waiters to yield a pin */
    _Atomic uint32_t space_seq; /* futex: bumped when a slot is freed */
    _Atomic uint32_t space_waiters;
    uint8_t pad1b_[SHM_CACHE_LINE - 8];

    /* shoald-written, but for the ACKS_DISK waiters' flush_waiters and flush_wanted */
    _Atomic int64_t log_start_offset; /* first offset still stored */
    _Atomic int64_t flushed_offset;   /* every offset below is fsynced to disk */
    _Atomic int64_t high_watermark;   /* replicated up to here (replication issue) */
    _Atomic uint32_t flush_seq;       /* futex: bumped when flushed_offset moves */
    _Atomic uint32_t flush_waiters;   /* ACKS_DISK waiters: SHM_FLUSH_WAITING() */
    _Atomic int32_t daemon_pid;       /* the shoald that flushes this ring */
    _Atomic int32_t flush_error;      /* -errno of the last failed disk write, 0 if fine */
    /* the largest flushed_offset an ACKS_DISK waiter has asked for, 0 if none: the flusher
     * fsyncs at once while synced offsets are below it (added in layout 2's padding: an
     * older library leaves it 0, and while it is 0 a raised count is the wish instead) */
    _Atomic int64_t flush_wanted;
    uint8_t pad2_[SHM_CACHE_LINE - 48];

    /* counters, read by `shoal stats` without touching the lock */
    _Atomic uint64_t appended_batches;
    _Atomic uint64_t appended_records;
    _Atomic uint64_t appended_bytes;
    _Atomic uint64_t lock_recoveries; /* EOWNERDEAD repairs */
    _Atomic uint64_t full_events;     /* appends that found the ring full */
    _Atomic uint64_t fsyncs;          /* fdatasync calls by the flusher */
    uint8_t pad3_[SHM_CACHE_LINE - 48];

    struct shm_slot slots[SHM_MAX_SLOTS];
};

/* shm_ctl.flush_waiters, the word the flusher sleeps on: its low 16 bits count the
 * ACKS_DISK waiters, its high 16 bits their arrivals (mod 2^16). A waiter arrives by adding
 * SHM_FLUSH_ARRIVE and leaves by subtracting 1, so the word does not come back to a value
 * the flusher loaded when one waiter leaves and another arrives: with a bare count it did,
 * and the flusher slept through the newcomer's wake-up until its tick. An older library
 * adds 1: still a count, as the daemon reads it. */
#define SHM_FLUSH_ARRIVE        0x10001u
#define SHM_FLUSH_WAITING(word) ((word)&0xffffu)

/* A reader's pin: (slot + 1) << 32 | gen, or 0 for none. */
#define SHM_PIN(slot, gen) ((((uint64_t)(slot) + 1) << 32) | (uint32_t)(gen))

/* shm_reader.sleeping: 0 awake; a reader asleep in a poll holds no views, so shoald may
 * release its pin: its slot is then free to reuse while it sleeps (ring_release_sleepers),
 * and the reader pins it again when it wakes. */
#define SHM_ASLEEP          1u
#define SHM_ASLEEP_RELEASED 2u

struct shm_reader {
    _Atomic int32_t pid;       /* owner process, 0 when the entry is free */
    _Atomic uint32_t sleeping; /* SHM_ASLEEP*: counted in waiters while not 0 */
    _Atomic uint64_t pin;      /* slot this reader holds views into */
    uint8_t pad_[SHM_CACHE_LINE - 16];
};

struct shm_readers {
    uint64_t magic;
    uint32_t version;
    uint32_t readers_bytes;
    uint8_t pad0_[SHM_CACHE_LINE - 16];

    _Atomic uint32_t seq;   /* futex: bumped after a publish that finds armed set */
    _Atomic uint32_t armed; /* 1: a reader may sleep on the current seq; the waker clears it */
    uint8_t pad1_[SHM_CACHE_LINE - 8];

    _Atomic uint32_t waiters;         /* readers asleep (or about to be) on seq */
    _Atomic uint32_t daemon_sleeping; /* shoald's flusher is counted in waiters while set */
    uint8_t pad2_[SHM_CACHE_LINE - 8];

    struct shm_reader readers[SHM_MAX_READERS];
};

_Static_assert(sizeof(struct shm_slot) == SHM_CACHE_LINE, "slot descriptor is one line");
_Static_assert(sizeof(pthread_mutex_t) + 16 <= SHM_CACHE_LINE, "mutex and its copies fit a line");
_Static_assert(sizeof(struct shm_reader) == SHM_CACHE_LINE, "reader entry is one line");

#endif
