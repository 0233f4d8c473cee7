/* partition.h - one partition as shoald sees it: its shared ring, its disk segments,
 * the flusher's position between the two, and recovery at start. */
#ifndef SHOALD_PARTITION_H
#define SHOALD_PARTITION_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "compact.h"
#include "ring.h"
#include "segment.h"

typedef struct dpart {
    char topic[SHOAL_TOPIC_NAME_MAX + 1];
    uint32_t id;
    char dir[PATH_MAX];     /* <data.dir>/<topic>-<id> */
    char shm_dir[PATH_MAX]; /* the instance's shm directory */
    char shm_name[SHOAL_TOPIC_NAME_MAX + 16];
    uint64_t ring_owner; /* store_ring_owner(): the owner its ring must carry */
    shoal_topic_config_t cfg;
    ring_t ring;
    ring_file_id_t ring_files[RING_FD_COUNT(SHM_MAX_SLOTS)]; /* what ring maps */
    /* the server thread's list of segment bases (dpart_segment_open) */
    int64_t *seg_bases;
    size_t seg_count;
    bool seg_listed;

    /* the flusher's state: touched only by the flusher thread (and open/close) */
    uint32_t fl_slot;          /* slot being copied to disk */
    uint64_t fl_pos;           /* bytes of it already written */
    bool fl_placed;            /* fl_slot is known (false between a seal and the next slot) */
    int64_t unplaced_since_ns; /* when records past written_offset were first seen while no
                                * slot started there (flusher_unplaced), 0 otherwise */
    int log_fd;                /* the segment file of fl_slot, -1 until first write */
    index_writer_t iw;
    bool index_dirty;       /* iw has entries not yet fsynced (done when the segment is sealed) */
    bool dir_dirty;         /* a segment file was opened (maybe created): fsync dir before acks */
    uint64_t fl_dropped;    /* bytes of log_fd dropped from the page cache after their fsync */
    bool drop_cache;        /* this pass drops synced pages (flush.drop.cache) */
    int64_t written_offset; /* next offset after the last batch written */
    int64_t synced_offset;  /* next offset after the last batch fsynced */
    int64_t last_write_ns;  /* when a pass last wrote records (dpart_idle_until) */
    int64_t last_sync_ns;
    int64_t segment_since_ns;  /* when the current segment got its first bytes (segment.ms) */
    int64_t last_retention_ns; /* when retention last ran */
    uint64_t retention_sealed; /* disk_bytes_sealed after it ran (retention_due) */
    int64_t oldest_base;       /* cache: the oldest segment's base ... */
    int64_t oldest_max_ts;     /* ... and its largest record timestamp (-1: unknown) */
    int last_error;            /* the last flush error, 0 after a good pass */
    int64_t last_error_log_ns; /* when it was last logged (errors repeat every pass) */
    _Atomic bool broken;       /* the ring held a malformed batch, or a client cut one of
                                * its files short: flushing stopped, no more attaching */
    uint32_t faults_seen;      /* shmguard_fault_count() when the files were last checked */
    compact_state_t compact;   /* the log cleaner's (compact.c) */
    bool ring_reattached;      /* recovery found its shared ring (else built a new one) */
    bool dir_missing;          /* recovery found no directory and no commits: it started empty
                                  at 0 (the broker says so once for the topic) */
    uint64_t full_seen;        /* the ring's full_events at dpart_reap's last look */

    _Atomic uint64_t disk_bytes_sealed; /* .log bytes of every segment but fl_slot's */
    _Atomic uint64_t disk_bytes_active;
} dpart_t;

/* The highest offset any group committed for topic-id, or -1 (the broker asks its store):
 * looked up only for a partition whose segment files are all gone, so that its log starts
 * again past every offset a consumer may have seen. */
typedef int64_t (*dpart_committed_fn)(void *arg, const char *topic, uint32_t id);

/* Open partition id of a topic: with fresh, a new empty partition (a disk topic's with an
 * empty first segment file, so that one with none is known to have lost them); otherwise
 * recover it (re-attach the shm ring if it survived, else rebuild it from disk; truncate a
 * torn tail; rebuild missing indexes; start a partition whose files are gone past what
 * committed, NULL: at 0) and log what was done. A ring re-attached must carry ring_owner
 * (store_ring_owner), or 0 (made before owners); new rings carry it. 0 or a negative code. */
int dpart_open(dpart_t *p, const char *data_dir, const char *shm_dir, uint64_t ring_owner,
               const char *topic, uint32_t id, const shoal_topic_config_t *cfg, bool fresh,
               dpart_committed_fn committed, void *arg);

/* Copy newly published bytes to disk, fsync when a producer waits for ACKS_DISK, the
 * topic's flush.ms (else the daemon's flush_ms) has passed, flush.messages records wait, a
 * segment is complete, or final; then free slots that are on disk and unpinned; roll the
 * active segment after segment.ms; once a second, apply retention (cleanup.policy delete:
 * retention.bytes and retention.ms delete whole sealed segments, oldest first, never the
 * segment being written); every few seconds, with cleanup.policy compact, compact the sealed
 * segments (compact.h). With drop_cache, synced whole pages of the segment being written
 * leave the page cache (the ring holds them). Returns 0 or a negative code (the partition
 * stops flushing after a corrupt batch: SHOAL_ECORRUPT). */
int dpart_flush(dpart_t *p, int flush_ms, bool drop_cache, bool final);
/* Bytes the flusher has copied to segment files since the daemon started, all partitions
 * together. The flusher thread compares it around a pass to tell records streaming in
 * from an idle log. */
uint64_t dpart_bytes_flushed(void);
/* How often shoald clears the reader entries of exited processes, and so how often a
 * memory topic with a producer waiting for room is looked at: a dead reader's pin there is
 * freed by that reaping. */
#define DPART_REAP_NS (100 * 1000000LL)

/* When the flusher must look at p again if no producer appends: 0 while p has work now
 * (published batches not yet written, a producer waiting for ACKS_DISK on bytes not yet
 * fsynced, a failed write to retry, the slot producers rotate into next left to free) or
 * had some in the last 50 ms (a stream of appends keeps the flusher ticking, not
 * sleeping), else the earliest of the fsync that flush.ms asks for written bytes (the
 * topic's flush.ms, else daemon_flush_ms) and the segment.ms roll of the segment being
 * written (monotonic ns), or INT64_MAX. A memory topic is looked at every DPART_REAP_NS
 * while a producer waits for room; a partition whose flushing stopped (broken) never.
 * Flusher thread only. */
int64_t dpart_idle_until(dpart_t *p, int daemon_flush_ms);
/* Whether an ACKS_DISK waiter wants an fsync now, given flush_waiters (the control block's
 * count, as loaded): published bytes are not fsynced, and the control block's flush_wanted
 * is past what is (a flush_wanted past every published record asks for nothing). The count
 * only wakes the flusher: a producer killed while waiting leaves it raised for good, and
 * the offset it wanted is served by the next fsync. Except on a ring where flush_wanted was
 * never set: its waiters are of an older library, which only counts itself, so a raised
 * count is taken as a wish, as before flush_wanted (and a killed one's count then costs an
 * fsync a pass while records stream in). Flusher thread only. */
bool dpart_fsync_wanted(dpart_t *p, uint32_t flush_waiters);
/* Clear reader entries of processes that died; on a memory topic whose producer waits for
 * room, release the pins of readers stopped in their sleep; and probe the end of each of
 * the ring's mappings, so that a file some client cut short faults in shoald (which shmguard turns
 * into a check at the next dpart_flush) even where shoald reads nothing. */
void dpart_reap(dpart_t *p);
/* Records of a disk partition its last flush pass failed to fsync to its segments (0 when
 * that pass succeeded, for a memory topic, or for one stopped as broken, whose loss was
 * logged when it stopped). Flusher thread only. */
int64_t dpart_unsynced(const dpart_t *p);
/* Take bytes of segments removed or rewritten smaller off disk_bytes_sealed, which never
 * goes below 0 (retention and the cleaner subtract from it, the flusher adds). */
void dpart_sealed_sub(dpart_t *p, uint64_t bytes);
/* Set disk_bytes_sealed from the sizes of the .log files bases[0..n) (every segment on disk)
 * less the bytes flushed into the one being written. Flusher thread only. */
void dpart_disk_bytes_recount(dpart_t *p, const int64_t *bases, size_t n);
/* Close a partition recovered for a topic that is then not served (another of its
 * partitions could not be): a ring this start built holds nothing the disk lacks and is
 * removed; one that survived from the last run may hold records not yet on disk and is
 * kept. */
void dpart_abandon(dpart_t *p);
/* Unmap and close; the caller has run a final flush. */
void dpart_close(dpart_t *p);
/* Topic deletion: stop clients (deleted flag + wake-up), remove shm and disk files. */
void dpart_remove(dpart_t *p);
/* The same for a partition that was never opened: its ring files (any slot count) and its
 * directory, if they exist. With the topic's config, clients still attached to a ring that
 * survived from an earlier run are told it was deleted first. */
void dpart_remove_files(const char *data_dir, const char *shm_dir, const char *topic, uint32_t id,
                        const shoal_topic_config_t *cfg);
/* Whether a ring of the partition is in shm_dir (*used: it was ever appended to), for a
 * partition that is not open. */
bool dpart_ring_found(const char *shm_dir, const char *topic, uint32_t id, bool *used);

/* The disk segment holding offset: a read-only descriptor, its base offset, size and the
 * byte position of the batch holding offset. SHOAL_EOFFSET when no segment holds it. */
int dpart_segment_open(dpart_t *p, int64_t offset, int *fd, int64_t *base, uint64_t *bytes,
                       int64_t *pos);
void dpart_info(dpart_t *p, shoal_partition_info_t *pi);

/* The earliest offset whose record has timestamp >= ts (ts >= 0): disk segments in offset
 * order through their .timeindex, then the ring's slots (a sealed slot whose max timestamp
 * is earlier is skipped whole). When no record is that late, the log end offset. Memory
 * topics search the ring only. Safe beside the flusher thread and producers. 0 with
 * *offset; SHOAL_ECORRUPT, SHOAL_ECOMPRESSED, SHOAL_ELIMIT (no reader entry free),
 * SHOAL_AGAIN (the log kept moving past the search), -errno. */
int dpart_offset_for_time(dpart_t *p, int64_t ts, int64_t *offset);

#endif
