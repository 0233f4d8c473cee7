/* ring.h - a partition's shared ring of segment slots: create and map, append and
 * publish under the robust lock, lock-free cursors with slot pins, futex wake-ups.
 * Layout in shm_layout.h; the design is at the top of ring.c. */
#ifndef SHOAL_RING_H
#define SHOAL_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "record.h"
#include "shm_layout.h"

/* Descriptor order when a ring travels over the control socket. */
#define RING_FD_CTL          0
#define RING_FD_READERS      1
#define RING_FD_SLOT0        2
#define RING_FD_COUNT(slots) (2u + (slots))

typedef struct ring_params {
    uint64_t slot_bytes;
    uint32_t slot_count;
    uint32_t partition;
    uint32_t max_record_bytes;
    uint32_t storage;
    uint64_t owner; /* shm_ctl.owner of a ring that ring_create() makes */
} ring_params_t;

/* Which file a mapping of the ring is of (ring_file_restore). */
typedef struct ring_file_id {
    uint64_t dev, ino;
} ring_file_id_t;

typedef struct ring {
    struct shm_ctl *ctl;
    struct shm_readers *rd;
    uint8_t *slots[SHM_MAX_SLOTS];
    uint32_t slot_count;
    uint64_t slot_bytes;
    bool writable;
    /* The pid the reader entries this process takes carry: its pid as shoald sees it,
     * which checks whether the reader lives (another in a container's pid namespace; -1
     * when shoald cannot see it, so never taken for dead); 0: getpid(), in shoald. */
    int32_t reader_pid;
    /* ring_map_fds: the control block's file, which tells a ring made since under the same
     * name (a topic deleted and created again) from the one mapped before */
    ring_file_id_t ctl_file;
} ring_t;

/* ---- files (shoald) ---- */
/* Create (or overwrite) the ring's files <shm_dir>/<name>.{ctl,readers,slot<i>} mode
 * 0600, map them read-write, and start an empty ring whose first slot begins at
 * start_offset. ids (NULL, or RING_FD_COUNT(p->slot_count) entries) gets each file's id.
 * 0 or -errno; on failure nothing is left mapped or on disk. */
int ring_create(ring_t *r, const char *shm_dir, const char *name, const ring_params_t *p,
                int64_t start_offset, ring_file_id_t *ids);
/* Map an existing ring read-write (a daemon restart); ids as for ring_create. -ENOENT
 * when a file is missing; SHOAL_EVERSION when its layout or parameters differ from p. */
int ring_open(ring_t *r, const char *shm_dir, const char *name, const ring_params_t *p,
              ring_file_id_t *ids);
/* Open the ring's files to pass to a client, O_RDWR or O_RDONLY per file (see
 * shm_layout.h). fds gets RING_FD_COUNT(slot_count) descriptors. 0 or -errno. */
int ring_open_fds(const char *shm_dir, const char *name, uint32_t slot_count, bool writable,
                  int *fds);
/* Right after ring_create and before any client maps it: make slot 0 hold the last disk
 * segment (its base and bytes) so appends continue that segment after a reboot. */
int ring_preload(ring_t *r, int64_t base, const uint8_t *data, size_t len, int64_t log_end,
                 int64_t log_start);
void ring_unlink(const char *shm_dir, const char *name, uint32_t slot_count);
/* shoald's SIGBUS guard (shmguard.h) is told of every mapping of a ring file this process
 * makes, before anything reads it, and of every one it removes, before the munmap. Set
 * once, before the threads start; NULL (the default) for none. */
typedef void ring_map_hook_fn(void *addr, size_t len);
typedef void ring_unmap_hook_fn(const void *addr);
void ring_set_map_hooks(ring_map_hook_fn *on_map, ring_unmap_hook_fn *on_unmap);
/* The ring's mappings one by one, numbered as the descriptors are: RING_FD_CTL,
 * RING_FD_READERS, RING_FD_SLOT0 + i. *len gets the mapping's length. */
void *ring_file_mapping(const ring_t *r, uint32_t file, size_t *len);
/* When a process has cut that file of the ring short, give it back its size (the bytes
 * cut read as zeros); then, or with remap, map it again where it was, over the zeros
 * shmguard put there, so that shoald sees what the clients see. It reopens the file by
 * its path, and acts only if the path still names the file `id` says was mapped.
 * *was_bytes gets the size found. 1 when something was done, 0 when the file was whole
 * and remap false, or -errno: -ESTALE when the path names another file (left alone). */
int ring_file_restore(ring_t *r, const char *shm_dir, const char *name, uint32_t file,
                      const ring_file_id_t *id, bool remap, uint64_t *was_bytes);

/* Stop every client of the ring (why: SHM_CLOSED_*) and wake those that wait in it:
 * readers, producers waiting for room or for the disk. */
void ring_close_shared(ring_t *r, uint32_t why);

/* ---- mapping (clients) ---- */
/* Map a ring from descriptors received from shoald; the caller keeps ownership of fds.
 * Checks magic, version and sizes. 0, SHOAL_EVERSION, SHOAL_EPROTO, -errno. */
int ring_map_fds(ring_t *r, const int *fds, size_t nfds, bool writable);
void ring_unmap(ring_t *r);

/* ---- appending ---- */
/* Append one encoded batch of `records` records: under the lock assign its base offset,
 * copy it into the active slot (rotating to a free slot when it does not fit) and publish
 * it; then wake sleeping readers. A full ring waits up to block_ms for shoald to free a
 * slot, and for a lock another holds block_ms (1 s at least). Returns 0 with *base_offset
 * set, SHOAL_AGAIN (still full, or the lock still held), SHOAL_ETOOLARGE, SHOAL_ENOTOPIC
 * (deleted), SHOAL_EPANIC, -errno. */
int ring_append(ring_t *r, uint8_t *batch, size_t len, int32_t records, int64_t max_timestamp,
                int block_ms, int64_t *base_offset);
/* A batch that ring_append_fill() has written straight into the slot, under the lock,
 * by fill: len bytes at dst, whose first record gets base_offset. fill returns 0, or a
 * negative code to publish nothing. It runs with the append lock held, so it must not
 * block; if it crashes, the lock's repair drops what it wrote. */
typedef int (*ring_fill_fn)(uint8_t *dst, size_t len, int64_t base_offset, void *arg);
struct ring_batch {
    size_t len;
    int32_t records;
    int64_t max_timestamp;
    ring_fill_fn fill;
    void *arg;
};
/* ring_append() without the copy: the batch is written in place. With try_once, returns
 * -EBUSY at once when another process holds the lock at the first attempt (the caller may
 * then encode outside the lock and ring_append()), instead of waiting for it. */
int ring_append_fill(ring_t *r, const struct ring_batch *b, int block_ms, bool try_once,
                     int64_t *base_offset);
/* Test hook: when set, called at each stage below (the first four with the append lock
 * held), so a test can kill or stall the process exactly there. NULL (and one predictable
 * branch) otherwise. */
enum ring_stage {
    RING_STAGE_COPIED = 1,   /* batch copied, nothing published */
    RING_STAGE_USED = 2,     /* slot's used published, log_end_offset not yet */
    RING_STAGE_ROTATING = 3, /* new slot ACTIVE, old slot not yet SEALED */
    RING_STAGE_SEALED = 4,   /* old slot SEALED, active_slot not yet moved */
    RING_STAGE_UNLOCKED = 5, /* appended and unlocked, sleeping readers not yet woken */
    RING_STAGE_ARMING = 6,   /* a sleeper has loaded `seq`, not yet armed (ring_sleep_arm) */
};
extern void (*ring__test_hook)(int stage);

/* Wait until flushed_offset > offset, at most timeout_ms (-1: for ever). 0, SHOAL_ETIMEDOUT,
 * SHOAL_ENOTOPIC, SHOAL_ECLOSED (no daemon). */
int ring_wait_flushed(ring_t *r, int64_t offset, int timeout_ms);
/* The lock's repair after its owner died, exposed for the fault tests. */
int ring_repair(void *ring);

/* ---- reclaiming (shoald, or a producer of a memory topic) ---- */
bool ring_slot_is_pinned(const ring_t *r, uint32_t slot, uint32_t gen);
/* Free a SEALED slot nobody pins: 0, SHOAL_AGAIN when pinned or not sealed. Takes the
 * lock (at most timeout_ms). */
int ring_reclaim_slot(ring_t *r, uint32_t slot, int timeout_ms);
/* Seal the active slot and move appends to the next one (a time-based segment roll), if
 * the active slot holds data and the next slot is free. 0 when rolled, SHOAL_AGAIN when
 * not possible now, or rlock_acquire's errors. Takes the lock (at most timeout_ms). */
int ring_roll(ring_t *r, int timeout_ms);
/* Clear reader entries whose process is gone. Returns how many. */
int ring_reap_dead_readers(ring_t *r);
/* Release the pins of readers asleep in a poll (SHM_ASLEEP) for which release(pid, arg)
 * says so: their slots may be reused while they sleep, and each re-pins when it wakes
 * (ring_sleeper_set). Safe whatever the reader does meanwhile; release only decides whom
 * it is worth doing to. Returns how many. */
int ring_release_sleepers(ring_t *r, bool (*release)(int32_t pid, void *arg), void *arg);
/* Count one sleeper in `waiters` (on), or, if *sleeping is set, clear it and uncount it
 * (off). *sleeping is the sleeper's own flag: a reader entry's `sleeping`, or
 * `daemon_sleeping` for shoald's flusher. After counting itself, the sleeper calls
 * ring_sleep_arm(), issues a seq_cst fence and looks for data once more before it waits
 * (see ring.c, Sleep). Returns true when, off, shoald had released the reader's pin while
 * it slept: the caller pins its slot again (ring_cursor_tighten) before it reads. */
bool ring_sleeper_set(ring_t *r, _Atomic uint32_t *sleeping, bool on);
/* Load `seq`, then arm the wake-up: the value to wait on. */
uint32_t ring_sleep_arm(ring_t *r);
/* Bytes held by live slots (ACTIVE or SEALED). */
uint64_t ring_live_bytes(const ring_t *r);
/* The memory a ring of slot_count slots of slot_bytes takes in a tmpfs: its slots, and its
 * control block and readers table in whole pages (28 KiB with 4 KiB pages). */
uint64_t ring_shm_bytes(uint32_t slot_count, uint64_t slot_bytes);

/* ---- reading ---- */
#define RING_SLOT_END 2 /* ring_cursor_next: the cursor's slot is sealed and read to its end */

/* A slot's published length (acquire), no larger than the slot. Any producer can write
 * `used`; a reader that believed a larger one would parse past its mapping, while a
 * length cut to the slot leaves the batch that crosses its end to fail parsing
 * (SHOAL_ECORRUPT). */
static inline uint64_t ring_slot_used(const ring_t *r, uint32_t slot)
{
    uint64_t used = atomic_load_explicit(&r->ctl->slots[slot].used, memory_order_acquire);
    return used <= r->slot_bytes ? used : r->slot_bytes;
}

typedef struct ring_cursor {
    int entry;   /* reader table entry, -1 when none */
    bool placed; /* slot/gen/pos are valid and pinned */
    uint32_t slot;
    uint32_t gen;
    uint64_t pos;
    uint64_t used_seen; /* the slot's `used` as last loaded: below it, no need to load it */
    int64_t next_offset;
} ring_cursor_t;

/* In the detail of every SHOAL_ECORRUPT that means a partition shoald stopped (rather than
 * a damaged batch), read or left out of an assignment: the others go on. */
#define RING_STOPPED_MARK "stopped by shoald"

/* Why a ring closed: SHOAL_ENOTOPIC (the topic was deleted) or SHOAL_ECORRUPT (shoald
 * stopped the partition), with the detail. */
int ring_closed_error(const ring_t *r);
/* 0 while the ring is open, else ring_closed_error(). One load. */
static inline int ring_check_open(const ring_t *r)
{
    if (atomic_load_explicit(&r->ctl->closed, memory_order_relaxed) == SHM_OPEN)
        return 0;
    return ring_closed_error(r);
}

/* Claim a reader table entry for this process. 0, SHOAL_ELIMIT when the table is full. */
int ring_cursor_open(ring_t *r, ring_cursor_t *c);
void ring_cursor_close(ring_t *r, ring_cursor_t *c); /* unpins and frees the entry */
/* Place the cursor at the batch holding offset (or at the end of the active slot when
 * offset is the log end). 0; SHOAL_EOFFSET when offset is below every live slot (read it
 * from disk) or above the log end; SHOAL_ECORRUPT. */
int ring_cursor_seek(ring_t *r, ring_cursor_t *c, int64_t offset);
/* The next published batch at the cursor, which then moves past it: 1 with *batch and *h
 * set (a view valid while the cursor stays pinned on this slot); 0 when caught up;
 * RING_SLOT_END; SHOAL_ECORRUPT. */
int ring_cursor_next(ring_t *r, ring_cursor_t *c, const uint8_t **batch, record_batch_header_t *h);
/* Whether the cursor's slot has published bytes past it, that is, whether
 * ring_cursor_next() would return 1 (or SHOAL_ECORRUPT) rather than 0 or RING_SLOT_END.
 * For a reader that stops at either of those anyway: one load, no call. `used` only grows
 * while the slot is pinned, so the line every append writes is loaded only when the cursor
 * has read up to what it last said (as an SPSC ring caches the other side's index): a
 * consumer reading a backlog of 64 KiB in 2.5 KiB batches loads it once, not 26 times,
 * each a transfer of the line from the producer's cache. */
static inline bool ring_cursor_has_more(const ring_t *r, ring_cursor_t *c)
{
    if (c->pos < c->used_seen)
        return true;
    c->used_seen = ring_slot_used(r, c->slot);
    return c->pos < c->used_seen;
}
/* Move from a finished slot to the slot that continues it. 0, 0 with placed false when
 * that slot does not exist yet, SHOAL_EOFFSET when it is gone. Drops the old pin. */
int ring_cursor_advance(ring_t *r, ring_cursor_t *c);
void ring_cursor_unpin(ring_t *r, ring_cursor_t *c);
/* Drop a placed cursor's pin for a wait, keeping its place (it may still look at the slot's
 * `used` and state, which only wakes it early if the slot is reused meanwhile): a reader
 * asleep holds no views, and a process stopped there must not hold the ring up. */
void ring_cursor_loosen(ring_t *r, ring_cursor_t *c);
/* Pin a loosened cursor's slot again, or unplace it (the next read places it at its
 * offset, from disk if need be) when the slot was reused meanwhile. */
void ring_cursor_tighten(ring_t *r, ring_cursor_t *c);

/* ---- waking ---- */
static inline uint32_t ring_wake_seq(const ring_t *r)
{
    return atomic_load(&r->rd->seq);
}

#endif
