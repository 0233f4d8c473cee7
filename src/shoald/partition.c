/* partition.c - a partition inside shoald: recovery, flushing the ring to disk segments,
 * freeing flushed slots, finding disk segments for consumers, and finding the first offset
 * at or after a timestamp.
 *
 * DESIGN
 *
 * Slot i of the ring and the disk segment <base>.log with the slot's base offset hold the
 * same bytes at the same positions, so flushing is a pwrite of the slot's newly published
 * range at the same file offset, plus .index/.timeindex entries for the batches in it.
 * The flusher follows the ring slot by slot: when its slot is SEALED and fully written,
 * it fsyncs and closes that segment and moves to the slot holding the next offset.
 *
 * flushed_offset in the control block moves only after fdatasync (and an fsync of the
 * directory when a segment file was opened since the last one), and wakes producers
 * waiting for ACKS_DISK. The active segment's index files are fsynced at its seal, not
 * per acknowledgement: recovery rebuilds the last segment's index from its log. Writes go
 * out in 4 MiB chunks whose writeback starts at once, and synced pages leave the page
 * cache (the ring holds them). A slot is freed for reuse only when everything in it is
 * fsynced and no reader pins it; so a full ring means the disk is behind, and producers
 * wait.
 *
 * Recovery. The last disk segment is scanned with CRCs and a torn or corrupt tail is cut
 * off (earlier segments were sealed after an fsync). If the shm ring survived (the daemon
 * died, the host did not), it is re-attached, any dead lock owner's mess repaired, and
 * flushing resumes at the end of the disk data. If it is gone (a reboot), a new ring is
 * built whose first slot is loaded with the last segment, so appends continue it. */
#include "partition.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "rlock.h"
#include "shmguard.h"
#include "util.h"

#define DPART_LOCK_TIMEOUT_MS 1000
#define FLUSH_CHUNK_BYTES     (4u << 20) /* per pwrite; writeback starts after each */
#define DROP_ALIGN_BYTES      4096u      /* page cache is dropped in whole pages */
#define ERROR_LOG_INTERVAL_NS (10 * 1000000000LL)
/* A partition counts as idle only once no pass has written records for this long. A
 * sleeping flusher is a reader asleep, so every append would pay a FUTEX_WAKE for it: a
 * stream with gaps longer than one pass but shorter than this keeps the flusher ticking
 * instead, and one whose gaps are longer wakes it at most 20 times a second. */
#define DPART_QUIET_NS (50 * 1000000LL)
/* How long appended records may have no slot that the flusher can find them in before the
 * slots' descriptors are taken for damaged. A producer's rotation makes the next slot
 * ACTIVE before it seals the last, so a healthy ring never shows this for a whole pass. */
#define DPART_UNPLACED_NS (1000 * 1000000LL)

/* Bytes copied from rings to segment files by every partition, for dpart_bytes_flushed(). */
static _Atomic uint64_t bytes_flushed;

uint64_t dpart_bytes_flushed(void)
{
    return atomic_load_explicit(&bytes_flushed, memory_order_relaxed);
}

/* Fault hooks for the disk-full tests, read once from the environment; unset (always, in
 * production) each costs one pointer test per write. While the file named by
 * $SHOALD_TEST_ENOSPC_FILE exists, segment writes and fsyncs fail with ENOSPC. While the
 * one named by $SHOALD_TEST_ENOSPC_INDEX_FILE exists, every second index entry fails
 * half-written: its .index entry written, its .timeindex entry not. */
static const char *enospc_file, *enospc_index_file;
static pthread_once_t fault_hooks_once = PTHREAD_ONCE_INIT;

static int enospc_while(const char *path)
{
    return path && access(path, F_OK) == 0 ? -ENOSPC : 0;
}

static int index_fault(void)
{
    static unsigned entries; /* the flusher thread's alone */
    return enospc_while(enospc_index_file) < 0 && entries++ % 2 == 1 ? -ENOSPC : 0;
}

static void fault_hooks_read(void)
{
    enospc_file = getenv("SHOALD_TEST_ENOSPC_FILE");
    enospc_index_file = getenv("SHOALD_TEST_ENOSPC_INDEX_FILE");
    if (enospc_index_file)
        index_writer__fault_hook = index_fault;
}

static int io_fault(void)
{
    pthread_once(&fault_hooks_once, fault_hooks_read);
    return enospc_while(enospc_file);
}

static void params_of(const dpart_t *p, ring_params_t *rp)
{
    rp->slot_bytes = p->cfg.segment_bytes;
    rp->slot_count = p->cfg.ring_slots;
    rp->partition = p->id;
    rp->max_record_bytes = p->cfg.max_record_bytes;
    rp->storage = p->cfg.storage;
    rp->owner = p->ring_owner;
}

static bool is_disk(const dpart_t *p)
{
    return p->cfg.storage == SHOAL_STORAGE_DISK;
}

/* ------------------------------------------------------------------ recovery */

/* What the disk holds, after the last segment's tail was checked. */
struct disk_state {
    int64_t start;     /* base of the first segment */
    int64_t end;       /* next offset after the last good batch */
    int64_t last_base; /* base of the last segment */
    uint64_t last_len; /* its good bytes */
    uint64_t bytes;    /* all .log bytes */
    size_t segments;
};

static uint64_t file_size(const char *dir, int64_t base)
{
    char path[PATH_MAX];
    struct stat st;
    if (segment_path(path, sizeof(path), dir, base, ".log") < 0 || stat(path, &st) < 0)
        return 0;
    return (uint64_t)st.st_size;
}

/* The sizes of the .log files of segments bases[0..n). */
static uint64_t files_size(const char *dir, const int64_t *bases, size_t n)
{
    uint64_t total = 0;

    for (size_t i = 0; i < n; i++)
        total += file_size(dir, bases[i]);
    return total;
}

static bool segment_file_exists(const char *dir, int64_t base, const char *ext)
{
    char path[PATH_MAX];
    struct stat st;
    return segment_path(path, sizeof(path), dir, base, ext) == 0 && lstat(path, &st) == 0;
}

/* The offset after the last batch an .index file names (its last entry), or -1. */
static int64_t index_last_offset(const char *path, int64_t base)
{
    uint8_t entry[SEGMENT_INDEX_ENTRY_BYTES];
    struct stat st;
    int64_t end = -1;
    int fd = shoal__open_regular(path, O_RDONLY | O_NOFOLLOW, 0);

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) == 0 && st.st_size >= SEGMENT_INDEX_ENTRY_BYTES) {
        /* The last whole entry: a torn one after it is what a crash leaves. */
        uint64_t at = (uint64_t)st.st_size - (uint64_t)st.st_size % SEGMENT_INDEX_ENTRY_BYTES -
                      SEGMENT_INDEX_ENTRY_BYTES;
        if (shoal__pread_all(fd, entry, sizeof(entry), at) == 0)
            end = base + (int64_t)shoal__get_be32(entry) + 1;
    }
    close(fd);
    return end;
}

/* Segment base has index files but no .log (removed by hand): they describe bytes that are
 * gone, and the flusher, writing that segment anew, would have its first batch refused by
 * the old entries. Delete them, and say what the lost file held, as far as they show. */
static int orphan_index_drop(dpart_t *p, int64_t base)
{
    static const char *const exts[] = {".index", ".timeindex"};
    char log_path[PATH_MAX], idx_path[PATH_MAX], path[PATH_MAX], upto[48] = "";
    int64_t end;
    int rc;

    if ((rc = segment_path(log_path, sizeof(log_path), p->dir, base, ".log")) < 0 ||
        (rc = segment_path(idx_path, sizeof(idx_path), p->dir, base, ".index")) < 0)
        return rc;
    end = index_last_offset(idx_path, base);
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(exts); i++) {
        if ((rc = segment_path(path, sizeof(path), p->dir, base, exts[i])) < 0)
            return rc;
        if (unlink(path) < 0 && errno != ENOENT)
            return SHOAL_ERR(-errno, "unlink %s: %s", path, strerror(errno));
    }
    if (end > base)
        snprintf(upto, sizeof(upto), " to at least %lld", (long long)end - 1);
    log_warn("%s-%u: %s is missing: deleted its stale .index and .timeindex; the records "
             "from offset %lld%s it held are lost unless the shared ring still holds them",
             p->topic, p->id, log_path, (long long)base, upto);
    return shoal__fsync_dir(p->dir);
}

/* Find index files whose .log is gone and drop them (orphan_index_drop). */
static int orphan_indexes_drop(dpart_t *p)
{
    DIR *d = opendir(p->dir);
    struct dirent *e;
    int rc = 0;

    if (!d)
        return SHOAL_ERR(-errno, "opendir %s: %s", p->dir, strerror(errno));
    while (rc == 0 && (e = readdir(d))) {
        int64_t base = segment_name_base(e->d_name, ".index");
        if (base < 0)
            base = segment_name_base(e->d_name, ".timeindex");
        if (base < 0 || segment_file_exists(p->dir, base, ".log"))
            continue;
        /* Both files name the segment: the second may still be listed once both are gone. */
        if (segment_file_exists(p->dir, base, ".index") ||
            segment_file_exists(p->dir, base, ".timeindex"))
            rc = orphan_index_drop(p, base);
    }
    closedir(d);
    return rc;
}

/* A sealed segment left without index files (a crash between a compaction's swap and its
 * index rebuild, or a file removed by hand) gets them rebuilt from its log. The last
 * segment's are checked by its own recovery. */
static int sealed_indexes_rebuild(dpart_t *p, const int64_t *bases, size_t n)
{
    segment_recovery_t rec;
    int rc;

    for (size_t i = 0; i + 1 < n; i++) {
        if (segment_file_exists(p->dir, bases[i], ".index") &&
            segment_file_exists(p->dir, bases[i], ".timeindex"))
            continue;
        if ((rc = segment_recover(p->dir, bases[i], false, &rec)) < 0) {
            log_error("%s-%u: cannot rebuild the missing index of sealed segment %lld: %s",
                      p->topic, p->id, (long long)bases[i], shoal_errmsg());
            return rc;
        }
        log_notice("%s-%u: rebuilt the missing index of sealed segment %lld", p->topic, p->id,
                   (long long)bases[i]);
    }
    return 0;
}

/* The offset after the last batch of sealed segment base, scanning its log from the last
 * .index entry (headers only), or -1 when it cannot be read or is damaged there. */
static int64_t sealed_segment_end(const char *dir, int64_t base)
{
    segment_map_t log, idx;
    segment_scan_t scan = {.error = -1};
    uint64_t pos = 0;

    if (segment_map(dir, base, ".log", true, &log) == 0 &&
        segment_map(dir, base, ".index", true, &idx) == 0) {
        if (idx.len >= SEGMENT_INDEX_ENTRY_BYTES)
            pos = shoal__get_be32(idx.data + idx.len - idx.len % SEGMENT_INDEX_ENTRY_BYTES -
                                  SEGMENT_INDEX_ENTRY_BYTES + 4);
        if (pos > log.len)
            pos = 0;
        segment_scan_bytes(log.data + pos, log.len - pos, base, false, NULL, NULL, &scan);
        segment_unmap(&idx);
    }
    segment_unmap(&log);
    return scan.error == 0 ? scan.next_offset : -1;
}

/* Segments follow each other without gaps (compaction keeps each one's last batch): say
 * which offsets a lost segment file took, rather than leave it to the first consumer. */
static void segment_gaps_report(const dpart_t *p, const int64_t *bases, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        int64_t end = sealed_segment_end(p->dir, bases[i]);
        if (end >= 0 && end < bases[i + 1])
            log_warn("%s-%u: offsets %lld..%lld are missing from disk: segment %lld ends "
                     "before them and segment %lld starts after (a segment file was lost); "
                     "consumers reading them are told once and read on at %lld",
                     p->topic, p->id, (long long)end, (long long)bases[i + 1] - 1,
                     (long long)bases[i], (long long)bases[i + 1], (long long)bases[i + 1]);
    }
}

static int disk_recover(dpart_t *p, struct disk_state *ds)
{
    segment_recovery_t rec;
    int64_t *bases = NULL;
    size_t n = 0;
    int rc;

    memset(ds, 0, sizeof(*ds));
    if ((rc = orphan_indexes_drop(p)) < 0 || (rc = segment_list(p->dir, &bases, &n)) < 0)
        return rc;
    ds->segments = n;
    if (n == 0 || (rc = sealed_indexes_rebuild(p, bases, n)) < 0)
        goto out;
    segment_gaps_report(p, bases, n);
    rc = segment_recover(p->dir, bases[n - 1], true, &rec);
    if (rc < 0) {
        log_error("%s-%u: segment %lld: %s", p->topic, p->id, (long long)bases[n - 1],
                  rec.scan.why[0] ? rec.scan.why : shoal_strerror(rc));
        goto out;
    }
    if (rec.truncated_bytes)
        log_warn("%s-%u: truncated %llu bytes of torn or corrupt tail from segment %lld (%s)",
                 p->topic, p->id, (unsigned long long)rec.truncated_bytes, (long long)bases[n - 1],
                 rec.scan.why);
    if (rec.index_shrank)
        log_warn("%s-%u: the index of segment %lld knew of records past the end of its .log "
                 "(offset %lld): the .log lost them (cut or emptied, or not yet synced before "
                 "a power loss); those the shared ring does not hold are gone",
                 p->topic, p->id, (long long)bases[n - 1], (long long)rec.scan.next_offset);
    else if (rec.index_rebuilt && !rec.index_short)
        log_notice("%s-%u: rebuilt the index of segment %lld", p->topic, p->id,
                   (long long)bases[n - 1]);
    if (rec.index_short)
        log_warn("%s-%u: no disk space to rebuild the index of segment %lld: cut it back to "
                 "its entries that hold; lookups in that segment scan further until a start "
                 "with room rebuilds it",
                 p->topic, p->id, (long long)bases[n - 1]);
    ds->start = bases[0];
    ds->last_base = bases[n - 1];
    ds->last_len = rec.scan.valid_bytes;
    ds->end = rec.scan.next_offset;
    ds->bytes = files_size(p->dir, bases, n - 1) + ds->last_len;
out:
    shoal__free(bases);
    return rc;
}

/* Point the flusher at the slot holding the end of the disk data. */
static int flusher_resume(dpart_t *p, const struct disk_state *ds)
{
    for (uint32_t i = 0; i < p->ring.slot_count; i++) {
        struct shm_slot *s = &p->ring.ctl->slots[i];
        uint32_t st = atomic_load(&s->state);
        int64_t base = atomic_load(&s->base_offset);
        uint64_t used = ring_slot_used(&p->ring, i);
        if (st != SHM_SLOT_ACTIVE && st != SHM_SLOT_SEALED)
            continue;
        if (ds->segments && base == ds->last_base && used >= ds->last_len) {
            p->fl_pos = ds->last_len;
        } else if (base == ds->end && (!ds->segments || ds->last_base != ds->end)) {
            p->fl_pos = 0;
        } else {
            continue;
        }
        p->fl_slot = i;
        p->fl_placed = true;
        p->written_offset = p->synced_offset = ds->end;
        atomic_store(&p->disk_bytes_sealed, ds->bytes - p->fl_pos);
        atomic_store(&p->disk_bytes_active, p->fl_pos);
        return 0;
    }
    return SHOAL_ECORRUPT;
}

/* The disk lost every segment (dpart_open_ring's lost), but the ring survived: the disk log starts
 * again at the oldest offset the ring holds (its oldest slot's base), which the flusher
 * then writes out anew. SHOAL_ECORRUPT when it holds no slot. */
static int ring_lost_floor(const dpart_t *p, struct disk_state *ds)
{
    int64_t oldest = -1;

    for (uint32_t i = 0; i < p->ring.slot_count; i++) {
        uint32_t st = atomic_load(&p->ring.ctl->slots[i].state);
        int64_t base = atomic_load(&p->ring.ctl->slots[i].base_offset);
        if ((st == SHM_SLOT_ACTIVE || st == SHM_SLOT_SEALED) && (oldest < 0 || base < oldest))
            oldest = base;
    }
    if (oldest < 0)
        return SHOAL_ECORRUPT;
    ds->start = ds->end = oldest;
    return 0;
}

/* Re-attach a ring that survived a daemon crash (lost: the disk has no segment, so the log
 * goes on from the oldest record the ring holds, ring_lost_floor). */
static int ring_reattach(dpart_t *p, struct disk_state *ds, bool lost)
{
    ring_params_t rp;
    int rc;

    params_of(p, &rp);
    rc = ring_open(&p->ring, p->shm_dir, p->shm_name, &rp, p->ring_files);
    if (rc < 0)
        return rc;
    /* Only a ring made for this data directory, and not before another shm directory
     * served it since: any other holds another log's records at these offsets. */
    if (p->ring.ctl->owner != p->ring_owner && p->ring.ctl->owner != 0) {
        rc = SHOAL_ERR(SHOAL_ECORRUPT,
                       "it was made for another data directory, or before another shoald "
                       "instance served this one; its records (to offset %lld) are not this "
                       "log's",
                       (long long)atomic_load(&p->ring.ctl->log_end_offset));
        goto out_unmap;
    }
    p->ring.ctl->owner = p->ring_owner; /* one made before owners: from now on */
    /* Repair after a producer that died inside the lock, before anything else looks. */
    rc = rlock_acquire(&p->ring.ctl->lock, DPART_LOCK_TIMEOUT_MS, ring_repair, &p->ring);
    if (rc == 0)
        rlock_release(&p->ring.ctl->lock);
    else if (rc != SHOAL_ETIMEDOUT)
        goto out_unmap;
    ring_reap_dead_readers(&p->ring);
    ring_sleeper_set(&p->ring, &p->ring.rd->daemon_sleeping, false); /* the dead flusher's */
    if (!is_disk(p)) {
        p->ring_reattached = true;
        log_debug("%s-%u: re-attached shared ring, log end %lld", p->topic, p->id,
                  (long long)atomic_load(&p->ring.ctl->log_end_offset));
        return 0;
    }
    if ((lost && ring_lost_floor(p, ds) < 0) ||
        atomic_load(&p->ring.ctl->log_end_offset) < ds->end || (rc = flusher_resume(p, ds)) < 0) {
        rc = SHOAL_ERR(SHOAL_ECORRUPT,
                       "it does not continue the disk log (the disk ends at offset %lld, the "
                       "ring at %lld)",
                       (long long)ds->end, (long long)atomic_load(&p->ring.ctl->log_end_offset));
        goto out_unmap;
    }
    atomic_store(&p->ring.ctl->flushed_offset, ds->end);
    atomic_store(&p->ring.ctl->log_start_offset, ds->segments ? ds->start : ds->end);
    /* The last run's disk error stays in the control block; taking it as this run's own
     * lets the first pass that writes clear it ("disk writes resumed"), so stats do not
     * show an error that no longer holds. */
    p->last_error = atomic_load(&p->ring.ctl->flush_error);
    p->ring_reattached = true;
    log_debug("%s-%u: re-attached shared ring, log end %lld, disk end %lld", p->topic, p->id,
              (long long)atomic_load(&p->ring.ctl->log_end_offset), (long long)ds->end);
    return 0;
out_unmap:
    ring_unmap(&p->ring);
    return rc;
}

/* Load the last segment's bytes into slot 0 of a new ring. */
static int ring_preload_last(dpart_t *p, const struct disk_state *ds)
{
    char path[PATH_MAX];
    void *map;
    int fd, rc;

    if (segment_path(path, sizeof(path), p->dir, ds->last_base, ".log") < 0)
        return -ENAMETOOLONG;
    if ((fd = shoal__open_regular(path, O_RDONLY, 0)) < 0)
        return fd;
    map = mmap(NULL, ds->last_len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return -errno;
    rc = ring_preload(&p->ring, ds->last_base, map, ds->last_len, ds->end, ds->start);
    munmap(map, ds->last_len);
    return rc;
}

/* Build a new ring from what the disk holds (a reboot, or a new topic). */
static int ring_rebuild(dpart_t *p, const struct disk_state *ds)
{
    bool continue_last = ds->segments && ds->last_len > 0 &&
                         ds->last_len + RECORD_BATCH_HEADER_BYTES < p->cfg.segment_bytes;
    ring_params_t rp;
    int rc;

    params_of(p, &rp);
    rc = ring_create(&p->ring, p->shm_dir, p->shm_name, &rp, ds->end, p->ring_files);
    if (rc < 0)
        return rc;
    if (continue_last && (rc = ring_preload_last(p, ds)) < 0) {
        ring_unmap(&p->ring);
        return rc;
    }
    atomic_store(&p->ring.ctl->log_start_offset, ds->segments ? ds->start : ds->end);
    p->fl_slot = 0;
    p->fl_pos = continue_last ? ds->last_len : 0;
    p->fl_placed = true;
    p->written_offset = p->synced_offset = ds->end;
    atomic_store(&p->disk_bytes_sealed, ds->bytes - p->fl_pos);
    atomic_store(&p->disk_bytes_active, p->fl_pos);
    if (ds->segments)
        log_debug("%s-%u: rebuilt shared ring from disk: offsets %lld..%lld in %zu segments",
                  p->topic, p->id, (long long)ds->start, (long long)ds->end, ds->segments);
    return 0;
}

static int rm_tree(const char *dir);

/* The longest suffix ring.c puts after the shm name: ".readers" (".slot63" is shorter). */
#define SHM_FILE_SUFFIX_MAX 8

/* The name of a partition's ring files: "<topic>-<id>", unless the files
 * <name>.readers / .slot<i> would then pass NAME_MAX, which a valid topic name near
 * Kafka's 249-character limit does. Such a topic gets a prefix of its name, '~' and an
 * FNV-1a hash of the whole name: unique in practice, never equal to a plain name ('~' is
 * not allowed in topics), and the same after a daemon restart, which finds rings by name. */
static int shm_name_of(char *buf, size_t cap, const char *topic, uint32_t id)
{
    uint64_t h = 1469598103934665603ull;
    size_t len = strlen(topic), keep;
    char suffix[16];
    int n = snprintf(suffix, sizeof(suffix), "-%u", id);

    if (len + (size_t)n + SHM_FILE_SUFFIX_MAX <= NAME_MAX)
        return snprintf(buf, cap, "%s%s", topic, suffix);
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)topic[i];
        h *= 1099511628211ull;
    }
    keep = NAME_MAX - SHM_FILE_SUFFIX_MAX - (size_t)n - 17; /* '~' and 16 hex digits */
    return snprintf(buf, cap, "%.*s~%016llx%s", (int)keep, topic, (unsigned long long)h, suffix);
}

static int dpart_names(dpart_t *p, const char *data_dir, const char *shm_dir, const char *topic,
                       uint32_t id)
{
    int n1 = snprintf(p->dir, sizeof(p->dir), "%s/%s-%u", data_dir, topic, id);
    int n2 = snprintf(p->shm_dir, sizeof(p->shm_dir), "%s", shm_dir);
    int n3 = shm_name_of(p->shm_name, sizeof(p->shm_name), topic, id);
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    if (n1 < 0 || (size_t)n1 >= sizeof(p->dir) || n2 < 0 || (size_t)n2 >= sizeof(p->shm_dir) ||
        n3 < 0 || (size_t)n3 >= sizeof(p->shm_name))
        return -ENAMETOOLONG;
    return 0;
}

static int dpart_open_ring(dpart_t *p, const char *data_dir, const char *shm_dir,
                           uint64_t ring_owner, const char *topic, uint32_t id,
                           const shoal_topic_config_t *cfg, bool fresh,
                           dpart_committed_fn committed, void *arg);

int dpart_open(dpart_t *p, const char *data_dir, const char *shm_dir, uint64_t ring_owner,
               const char *topic, uint32_t id, const shoal_topic_config_t *cfg, bool fresh,
               dpart_committed_fn committed, void *arg)
{
    int rc =
        dpart_open_ring(p, data_dir, shm_dir, ring_owner, topic, id, cfg, fresh, committed, arg);
    if (rc == 0) {
        atomic_store(&p->ring.ctl->daemon_pid, (int32_t)getpid());
        p->full_seen = atomic_load(&p->ring.ctl->full_events); /* a kept ring's count */
    }
    return rc;
}

/* An empty segment at base ds->end (its .log and both indexes): the partition's mark that
 * it has segments, so that a start that finds none knows they were lost. */
static int segment_mark(dpart_t *p, const struct disk_state *ds)
{
    static const char *const exts[] = {".log", ".index", ".timeindex"};
    char path[PATH_MAX];

    for (size_t i = 0; i < SHOAL_ARRAY_LEN(exts); i++) {
        int fd, rc = segment_path(path, sizeof(path), p->dir, ds->end, exts[i]);
        if (rc < 0)
            return rc;
        if ((fd = shoal__open_regular(path, O_WRONLY | O_CREAT | O_NOFOLLOW, 0600)) < 0)
            return SHOAL_ERR(fd, "cannot create %s", path);
        close(fd);
    }
    return shoal__fsync_dir(p->dir);
}

/* What recovery says of a partition with no segment file (had_dir: in its directory; else
 * the directory itself was gone). */
static const char *lost_what(bool had_dir)
{
    return had_dir ? "no segment files" : "its directory was missing";
}

/* Recovery found no segment file. A partition made by this shoald has one from its
 * creation, so its records were lost: deleted or moved away. Its log starts again past the
 * highest offset a group committed, so that no offset is used twice, and says so; then it
 * is marked again, which also ends the warning for one made by an older shoald and never
 * written to. */
static int disk_lost(dpart_t *p, struct disk_state *ds, bool had_dir, dpart_committed_fn committed,
                     void *arg)
{
    int64_t floor = committed ? committed(arg, p->topic, p->id) : -1;

    if (floor > 0) {
        log_error("%s-%u: %s, though groups committed offsets up to %lld: its records are "
                  "lost (deleted or moved away); its log starts again at %lld, so that no "
                  "offset is used twice",
                  p->topic, p->id, lost_what(had_dir), (long long)floor, (long long)floor);
        ds->start = ds->end = floor;
    } else if (!had_dir) { /* a create cut short leaves many: the broker says it once */
        p->dir_missing = true;
        log_debug("%s-%u: its directory was missing: it starts at offset 0", p->topic, p->id);
    } else {
        log_warn("%s-%u: %s: it starts at offset 0 (an older shoald never wrote to it, or any "
                 "records it held are lost: deleted or moved away)",
                 p->topic, p->id, lost_what(had_dir));
    }
    return segment_mark(p, ds);
}

/* As disk_lost, when the shared ring survived (a daemon restart, no reboot): the log goes on
 * from the oldest record the ring holds (ring_lost_floor), and the flusher writes the ring's
 * records to disk again. */
static int disk_lost_ring_kept(dpart_t *p, const struct disk_state *ds, bool had_dir)
{
    long long start = (long long)ds->start, end = atomic_load(&p->ring.ctl->log_end_offset);
    char held[128] = "; the shared ring holds none of its records";
    int rc;

    if (end > start)
        snprintf(held, sizeof(held),
                 "; the shared ring still holds offsets %lld..%lld, which are written to disk "
                 "again",
                 start, end - 1);
    if (start > 0)
        log_error("%s-%u: %s: the records before offset %lld are lost (deleted or moved away)%s",
                  p->topic, p->id, lost_what(had_dir), start, held);
    else
        log_warn("%s-%u: %s%s", p->topic, p->id, lost_what(had_dir), held);
    if ((rc = segment_mark(p, ds)) < 0)
        ring_unmap(&p->ring); /* the partition fails: rebuilding would drop the ring's records */
    return rc;
}

/* dpart_open without the daemon's pid. */
static int dpart_open_ring(dpart_t *p, const char *data_dir, const char *shm_dir,
                           uint64_t ring_owner, const char *topic, uint32_t id,
                           const shoal_topic_config_t *cfg, bool fresh,
                           dpart_committed_fn committed, void *arg)
{
    struct disk_state ds = {0};
    bool had_dir = false, lost = false;
    int rc;

    memset(p, 0, sizeof(*p));
    p->id = id;
    p->ring_owner = ring_owner;
    p->cfg = *cfg;
    p->log_fd = -1;
    p->oldest_base = -1;
    p->iw.index_fd = p->iw.timeindex_fd = -1;
    p->last_sync_ns = shoal__mono_ns();
    if ((rc = dpart_names(p, data_dir, shm_dir, topic, id)) < 0)
        return rc;
    if (is_disk(p)) {
        if (fresh && rm_tree(p->dir) < 0) /* no segments (broker_topic_create checks) */
            return SHOAL_ERR(-EEXIST, "cannot clear %s", p->dir);
        had_dir = access(p->dir, F_OK) == 0;
        if ((rc = shoal__mkdir_p(p->dir, 0700)) < 0)
            return SHOAL_ERR(rc, "cannot create %s", p->dir);
        if (fresh && (rc = segment_mark(p, &ds)) < 0)
            return rc;
        if ((!fresh && (rc = compact_recover(p->dir, p->topic, p->id)) < 0) ||
            (rc = disk_recover(p, &ds)) < 0)
            return rc;
        lost = !fresh && ds.segments == 0;
    }
    if (!fresh) {
        rc = ring_reattach(p, &ds, lost);
        if (rc == 0 && lost)
            return disk_lost_ring_kept(p, &ds, had_dir);
        if (rc == 0)
            return 0;
        if (lost)
            ds = (struct disk_state){0}; /* ring_lost_floor may have set it */
        if (rc != -ENOENT)
            log_warn("%s-%u: shared ring unusable (%s%s%s): rebuilding it from disk", topic, id,
                     shoal_strerror(rc), shoal__is_code(rc) ? ": " : "",
                     shoal__is_code(rc) ? shoal_errmsg() : "");
        else if (!is_disk(p))
            log_notice("%s-%u: memory topic has no shared ring (the host restarted, or its create "
                       "was cut off): starting empty",
                       topic, id);
    }
    if (lost && (rc = disk_lost(p, &ds, had_dir, committed, arg)) < 0)
        return rc;
    return ring_rebuild(p, &ds);
}

/* ------------------------------------------------------------------ flushing */

static int flusher_open_file(dpart_t *p)
{
    char path[PATH_MAX];
    int64_t base = atomic_load(&p->ring.ctl->slots[p->fl_slot].base_offset);
    int rc = segment_path(path, sizeof(path), p->dir, base, ".log");
    if (rc < 0)
        return rc;
    p->log_fd = shoal__open_regular(path, O_WRONLY | O_CREAT | O_NOFOLLOW, 0600);
    if (p->log_fd < 0)
        return p->log_fd;
    rc = index_writer_open(&p->iw, p->dir, base);
    if (rc < 0) {
        close(p->log_fd);
        p->log_fd = -1;
        return rc;
    }
    /* The files may have just been created: their directory entries must be durable
     * before any record in them is acknowledged (the next flusher_sync fsyncs the dir). */
    p->dir_dirty = true;
    p->index_dirty = false;
    p->fl_dropped = 0;
    return 0;
}

/* Drop the fsynced bytes of the segment being written from the page cache (all of them
 * when it is sealed; else whole pages only, so the next write never has to read back the
 * page it extends). The ring in shared memory already holds these bytes for readers, so
 * the page cache copy would be a second copy of them in RAM; and a flusher whose page
 * cache only grows writes every byte into memory the kernel has to find fresh, which
 * costs several times the copy (docs/PERFORMANCE.md). Readers behind the ring read the
 * segment from disk. Best effort: clean pages only, the data is already durable. */
static void flusher_drop_cache(dpart_t *p, bool whole)
{
    uint64_t end = whole ? p->fl_pos : p->fl_pos & ~(uint64_t)(DROP_ALIGN_BYTES - 1);
    if (!p->drop_cache || p->log_fd < 0 || end <= p->fl_dropped)
        return;
    (void)posix_fadvise(p->log_fd, (off_t)p->fl_dropped, (off_t)(end - p->fl_dropped),
                        POSIX_FADV_DONTNEED);
    p->fl_dropped = end;
}

/* Make everything written durable, publish the fsynced watermark and wake producers
 * waiting for it. What an acknowledged record needs after a crash is its bytes in the
 * .log (fdatasync, which covers the file's size) and the directory entries of a segment
 * created since the last sync. The active segment's .index/.timeindex are not needed:
 * recovery rebuilds the last segment's index from its log. So they are fsynced only when
 * the segment is sealed (seal: recovery does not rescan sealed segments) or at shutdown,
 * never on the acknowledgement path. */
static int flusher_sync(dpart_t *p, bool seal)
{
    struct shm_ctl *ctl = p->ring.ctl;
    int io = io_fault();

    if (p->log_fd >= 0 && p->synced_offset != p->written_offset) {
        if (io < 0 || fdatasync(p->log_fd) < 0)
            return SHOAL_ERR(io < 0 ? io : -errno, "%s-%u: fdatasync failed", p->topic, p->id);
        atomic_fetch_add_explicit(&ctl->fsyncs, 1, memory_order_relaxed);
    }
    if (seal && p->log_fd >= 0 && p->index_dirty) {
        int rc = index_writer_sync(&p->iw);
        if (rc < 0)
            return rc;
        p->index_dirty = false;
    }
    if (p->dir_dirty) {
        int rc = io < 0 ? io : shoal__fsync_dir(p->dir);
        if (rc < 0)
            return SHOAL_ERR(rc, "%s-%u: fsync of %s failed", p->topic, p->id, p->dir);
        p->dir_dirty = false;
    }
    p->synced_offset = p->written_offset;
    p->last_sync_ns = shoal__mono_ns();
    if (atomic_load(&ctl->flushed_offset) != p->synced_offset) {
        atomic_store(&ctl->flushed_offset, p->synced_offset);
        atomic_fetch_add(&ctl->flush_seq, 1);
        if (SHM_FLUSH_WAITING(atomic_load(&ctl->flush_waiters)) > 0)
            shoal__futex_wake(&ctl->flush_seq, INT32_MAX);
    }
    flusher_drop_cache(p, seal);
    return 0;
}

/* The ring is damaged (the cause is logged): stop flushing it and attaching clients to it,
 * stop the clients attached (SHOAL_ECORRUPT from their next call), and take the control
 * block's magic, so that the next start rebuilds the ring from disk rather than
 * re-attaching it. */
static void dpart_stop(dpart_t *p)
{
    p->broken = true;
    p->ring.ctl->magic = 0;
    ring_close_shared(&p->ring, SHM_CLOSED_STOPPED);
}

/* Index the batches in slot bytes [pos, used), advancing written_offset past each. */
static int flusher_index(dpart_t *p, const uint8_t *data, uint64_t pos, uint64_t used)
{
    while (pos < used) {
        record_batch_header_t h;
        int rc;
        if (record_batch_parse(data + pos, used - pos, &h) != 0) {
            dpart_stop(p);
            return SHOAL_ERR(SHOAL_ECORRUPT, "%s-%u: malformed batch in slot %u at byte %llu",
                             p->topic, p->id, p->fl_slot, (unsigned long long)pos);
        }
        /* After a failure later in this range (a full disk), the retry passes again over
         * batches the index writer has taken: up to its last entry, they are skipped. */
        if (!(p->iw.has_entry && pos <= p->iw.last_indexed_pos) &&
            (rc = index_writer_add(&p->iw, pos, &h)) < 0)
            return rc;
        p->written_offset = h.base_offset + h.last_offset_delta + 1;
        pos += record_batch_size(&h);
    }
    return 0;
}

/* Write slot bytes [fl_pos, used) and index the batches in them. */
static int flusher_write(dpart_t *p, uint64_t used)
{
    const uint8_t *data = p->ring.slots[p->fl_slot];
    uint64_t idx_before;
    int rc;

    if (p->log_fd < 0 && (rc = flusher_open_file(p)) < 0)
        return rc;
    if (p->segment_since_ns == 0)
        p->segment_since_ns = shoal__mono_ns();
    for (uint64_t at = p->fl_pos; at < used;) {
        size_t n = (size_t)SHOAL_MIN(used - at, FLUSH_CHUNK_BYTES);
        rc = io_fault();
        if (rc == 0)
            rc = shoal__pwrite_all(p->log_fd, data + at, n, at);
        if (rc < 0)
            return SHOAL_ERR(rc, "%s-%u: write to segment failed", p->topic, p->id);
        /* Start writeback of this chunk now, so the disk works while the next chunk is
         * copied and the fdatasync that acknowledges it only waits for the tail. Without
         * wait flags this neither blocks on the I/O nor consumes a writeback error: the
         * fdatasync still reports it. */
        (void)sync_file_range(p->log_fd, (off_t)at, (off_t)n, SYNC_FILE_RANGE_WRITE);
        at += n;
    }
    idx_before = p->iw.index_bytes + p->iw.timeindex_bytes;
    rc = flusher_index(p, data, p->fl_pos, used);
    /* Entries written before a failure need their fsync at the seal as much as any. */
    if (p->iw.index_bytes + p->iw.timeindex_bytes != idx_before)
        p->index_dirty = true;
    if (rc < 0)
        return rc;
    atomic_fetch_add(&p->disk_bytes_active, used - p->fl_pos);
    atomic_fetch_add_explicit(&bytes_flushed, used - p->fl_pos, memory_order_relaxed);
    p->fl_pos = used;
    return 0;
}

static void retention_maybe(dpart_t *p, int64_t now_ns);

/* The flushed slot is sealed and written out: close its segment, find the next slot, and
 * apply retention now if that segment took the partition past retention.bytes (a pass
 * may seal many). */
static int flusher_next_slot(dpart_t *p)
{
    int rc = p->log_fd >= 0 ? index_writer_seal(&p->iw) : 0;

    p->index_dirty |= rc > 0;
    if (rc >= 0)
        rc = flusher_sync(p, true);
    if (rc < 0)
        return rc;
    if (p->log_fd >= 0) {
        close(p->log_fd);
        p->log_fd = -1;
        index_writer_close(&p->iw);
    }
    atomic_fetch_add(&p->disk_bytes_sealed, atomic_exchange(&p->disk_bytes_active, 0));
    p->fl_placed = false;
    p->segment_since_ns = 0;
    for (uint32_t i = 0; i < p->ring.slot_count; i++) {
        struct shm_slot *s = &p->ring.ctl->slots[i];
        uint32_t st = atomic_load(&s->state);
        if ((st == SHM_SLOT_ACTIVE || st == SHM_SLOT_SEALED) &&
            atomic_load(&s->base_offset) == p->written_offset) {
            p->fl_slot = i;
            p->fl_pos = 0;
            p->fl_placed = true;
            break;
        }
    }
    retention_maybe(p, shoal__mono_ns());
    return 0;
}

/* The flusher found no slot that starts at written_offset. Fine while nothing was appended
 * past it; records appended past it for DPART_UNPLACED_NS with no slot holding them mean
 * descriptors damaged by some producer (a wrong base_offset, or a state): the partition is
 * marked broken and the damage logged, rather than producers finding the ring full with no
 * word from shoald. */
static int flusher_unplaced(dpart_t *p)
{
    int64_t end = shoal_load_acquire(&p->ring.ctl->log_end_offset), now;

    if (end <= p->written_offset) {
        p->unplaced_since_ns = 0;
        return 0;
    }
    now = shoal__mono_ns();
    if (p->unplaced_since_ns == 0)
        p->unplaced_since_ns = now;
    if (now - p->unplaced_since_ns < DPART_UNPLACED_NS)
        return 0;
    dpart_stop(p);
    return SHOAL_ERR(SHOAL_ECORRUPT,
                     "%s-%u: no slot of the ring starts at offset %lld, though offsets up to "
                     "%lld were appended: its shared descriptors are damaged",
                     p->topic, p->id, (long long)p->written_offset, (long long)end - 1);
}

/* Copy what producers published since the last pass. Each move to the next slot must reach
 * one further on: more moves in one pass than the ring has slots means the slots'
 * descriptors, which any producer can write, lead round in a circle (an empty sealed slot
 * leads to itself), and the partition is marked broken rather than looped over for ever. */
static int flusher_copy(dpart_t *p)
{
    for (uint32_t moves = 0;; moves++) {
        struct shm_slot *s;
        uint32_t st;
        uint64_t used;
        int rc;

        if (!p->fl_placed && (rc = flusher_next_slot(p)) < 0)
            return rc;
        if (!p->fl_placed)
            return flusher_unplaced(p);
        p->unplaced_since_ns = 0;
        s = &p->ring.ctl->slots[p->fl_slot];
        st = atomic_load(&s->state);
        used = ring_slot_used(&p->ring, p->fl_slot);
        if (used > p->fl_pos && (rc = flusher_write(p, used)) < 0)
            return rc;
        if (st != SHM_SLOT_SEALED || ring_slot_used(&p->ring, p->fl_slot) != p->fl_pos)
            return 0;
        if (moves == p->ring.slot_count) {
            dpart_stop(p);
            return SHOAL_ERR(SHOAL_ECORRUPT,
                             "%s-%u: the ring's slots lead back to offset %lld: its shared "
                             "descriptors are damaged",
                             p->topic, p->id, (long long)p->written_offset);
        }
        if ((rc = flusher_next_slot(p)) < 0)
            return rc;
    }
}

/* Free the slot producers rotate into next, once it is on disk. Only that one: the other
 * sealed slots stay readable in memory until the ring comes round to them, so consumers
 * a little behind read shared memory rather than the disk. */
static void flusher_reclaim(dpart_t *p)
{
    struct shm_ctl *ctl = p->ring.ctl;
    uint32_t next = (atomic_load(&ctl->active_slot) + 1) % p->ring.slot_count;
    struct shm_slot *s = &ctl->slots[next];

    /* Not the slot the flusher still stands on, even when all of it is synced: a producer
     * may have sealed it after flusher_copy() looked, and with two slots it is at once the
     * next to reclaim. Freed under the flusher, it would never be seen SEALED, so the
     * flusher would wait on it for ever (and write the slot's next generation into the old
     * segment file). The flusher moves off it on its next pass; it is freed after that. */
    if (p->fl_placed && p->fl_slot == next)
        return;
    if (atomic_load(&s->state) != SHM_SLOT_SEALED || atomic_load(&s->end_offset) > p->synced_offset)
        return;
    if (ring_reclaim_slot(&p->ring, next, 10) == 0) {
        uint32_t after = (next + 1) % p->ring.slot_count;
        log_debug("%s-%u: freed slot %u; shared memory now starts at offset %lld", p->topic, p->id,
                  next, (long long)atomic_load(&ctl->slots[after].base_offset));
    }
}

/* ------------------------------------------------------------------ retention */

#define RETENTION_INTERVAL_NS (1000 * 1000000LL)

/* The largest record timestamp in a sealed segment, from its batch headers; -1 if none. */
static int64_t segment_max_timestamp(const char *dir, int64_t base)
{
    char path[PATH_MAX];
    struct stat st;
    const uint8_t *data;
    int64_t max_ts = -1;
    uint64_t pos = 0;
    int fd;

    if (segment_path(path, sizeof(path), dir, base, ".log") < 0 ||
        (fd = shoal__open_regular(path, O_RDONLY, 0)) < 0)
        return -1;
    if (fstat(fd, &st) < 0 || st.st_size == 0 ||
        (data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        close(fd);
        return -1;
    }
    close(fd);
    while (pos < (uint64_t)st.st_size) {
        record_batch_header_t h;
        if (record_batch_parse(data + pos, (size_t)st.st_size - pos, &h) != 0)
            break;
        max_ts = SHOAL_MAX(max_ts, h.max_timestamp);
        pos += record_batch_size(&h);
    }
    munmap((void *)data, (size_t)st.st_size);
    return max_ts;
}

/* The index files first: a crash in between leaves a .log without them, which the next
 * start indexes again (and retention deletes again), not index files without their .log,
 * which the start reports as records lost. */
static void segment_unlink(const char *dir, int64_t base)
{
    static const char *const exts[] = {".timeindex", ".index", ".log"};
    char path[PATH_MAX];
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(exts); i++)
        if (segment_path(path, sizeof(path), dir, base, exts[i]) == 0)
            unlink(path);
}

/* Why the oldest segment (base, bytes) must go, or NULL to keep it (and all after it). */
static const char *retention_reason(dpart_t *p, int64_t base, uint64_t bytes, uint64_t total)
{
    if (p->cfg.retention_bytes >= 0 && total - bytes >= (uint64_t)p->cfg.retention_bytes)
        return "retention.bytes";
    if (p->cfg.retention_ms < 0)
        return NULL;
    if (p->oldest_base != base) {
        p->oldest_base = base;
        p->oldest_max_ts = segment_max_timestamp(p->dir, base);
    }
    if (p->oldest_max_ts >= 0 && p->oldest_max_ts < shoal__now_ms() - p->cfg.retention_ms)
        return "retention.ms";
    return NULL;
}

/* Delete whole sealed segments, oldest first, while retention says so. The segment the
 * flusher writes (and any after it) is never deleted. Nor is the last file as such: when
 * it is sealed (segment.ms rolled a quiet partition, and no record came since) and its
 * turn comes, an empty segment where the next record goes is made first, as Kafka rolls
 * before it deletes its last segment; so the partition keeps a file (segment_mark) and
 * expired records do not stay for ever. A consumer that has a deleted segment mapped
 * keeps reading it: the mapping outlives the unlink. */
static void dpart_apply_retention(dpart_t *p)
{
    int64_t *bases = NULL, writing, start;
    uint64_t total, bytes;
    size_t n = 0, i;

    if (!(p->cfg.cleanup_policy & SHOAL_CLEANUP_DELETE) ||
        (p->cfg.retention_bytes < 0 && p->cfg.retention_ms < 0) ||
        segment_list(p->dir, &bases, &n) < 0)
        return;
    writing =
        p->fl_placed ? atomic_load(&p->ring.ctl->slots[p->fl_slot].base_offset) : p->written_offset;
    total = files_size(p->dir, bases, n);
    for (i = 0; i < n && bases[i] < writing; i++) {
        const char *why;
        bytes = file_size(p->dir, bases[i]);
        if (!(why = retention_reason(p, bases[i], bytes, total)))
            break;
        if (i + 1 == n && segment_mark(p, &(struct disk_state){.end = writing}) < 0) {
            log_warn("%s-%u: segment %lld is due for deletion by %s, but the empty segment "
                     "to take its place as the last cannot be made: %s",
                     p->topic, p->id, (long long)bases[i], why, shoal_errmsg());
            break;
        }
        total -= bytes;
        dpart_sealed_sub(p, bytes);
        log_info("%s-%u: deleted segment %lld (%llu bytes) by %s", p->topic, p->id,
                 (long long)bases[i], (unsigned long long)bytes, why);
    }
    /* The new log start first, then the files: a reader that finds a segment gone then
     * also finds its position below the start, and moves there (consumer.c part_place). */
    start = i < n ? bases[i] : writing;
    if (i > 0 && start > atomic_load(&p->ring.ctl->log_start_offset))
        atomic_store(&p->ring.ctl->log_start_offset, start);
    for (size_t k = 0; k < i; k++)
        segment_unlink(p->dir, bases[k]);
    shoal__free(bases);
}

/* Once a second; and, since a busy partition seals many segments a second, again at each
 * new sealed segment while the partition holds more than retention.bytes. */
static bool retention_due(const dpart_t *p, int64_t now_ns)
{
    uint64_t sealed = atomic_load(&p->disk_bytes_sealed);
    if (now_ns - p->last_retention_ns >= RETENTION_INTERVAL_NS)
        return true;
    return p->cfg.retention_bytes >= 0 && sealed != p->retention_sealed &&
           sealed + atomic_load(&p->disk_bytes_active) > (uint64_t)p->cfg.retention_bytes;
}

static void retention_maybe(dpart_t *p, int64_t now_ns)
{
    if (!retention_due(p, now_ns))
        return;
    p->last_retention_ns = now_ns;
    dpart_apply_retention(p);
    p->retention_sealed = atomic_load(&p->disk_bytes_sealed);
}

/* start_ns plus ms milliseconds; INT64_MAX, never, when that is past the clock's range
 * (Kafka spells "never" for segment.ms and flush.ms as Long.MAX_VALUE). */
static int64_t ns_after_ms(int64_t start_ns, int64_t ms)
{
    int64_t ns;
    if (__builtin_mul_overflow(ms, 1000000, &ns) || __builtin_add_overflow(start_ns, ns, &ns))
        return INT64_MAX;
    return ns;
}

/* Roll the segment being written once it is older than segment.ms. */
static void dpart_roll_by_time(dpart_t *p, int64_t now_ns)
{
    int rc;

    if (p->segment_since_ns == 0 || now_ns < ns_after_ms(p->segment_since_ns, p->cfg.segment_ms))
        return;
    if ((rc = ring_roll(&p->ring, 10)) == 0) {
        log_info("%s-%u: rolled the active segment after segment.ms", p->topic, p->id);
        p->segment_since_ns = 0;
    } else if (rc == SHOAL_EPANIC) { /* the shared control block is damaged */
        char why[256];
        snprintf(why, sizeof(why), "%s", shoal_errmsg());
        dpart_stop(p);
        log_error("%s-%u: cannot roll the segment: %s", p->topic, p->id, why);
    }
}

/* ------------------------------------------------------------------ flush */

/* When written bytes must be fsynced by flush.ms: the topic's, else the daemon's. */
static int64_t sync_deadline(const dpart_t *p, int daemon_flush_ms)
{
    int64_t flush_ms = p->cfg.flush_ms >= 0 ? p->cfg.flush_ms : daemon_flush_ms;
    return ns_after_ms(p->last_sync_ns, flush_ms);
}

static bool flush_due(dpart_t *p, int daemon_flush_ms, int64_t now_ns)
{
    return dpart_fsync_wanted(p, atomic_load(&p->ring.ctl->flush_waiters)) ||
           now_ns >= sync_deadline(p, daemon_flush_ms) ||
           (p->cfg.flush_messages > 0 &&
            p->written_offset - p->synced_offset >= p->cfg.flush_messages);
}

static int flush_pass(dpart_t *p, int flush_ms, bool final)
{
    int64_t now, written = p->written_offset;
    int rc;

    if (p->broken)
        return SHOAL_ERR(SHOAL_ECORRUPT, "%s-%u: stopped after the damage logged before", p->topic,
                         p->id);
    if (!is_disk(p))
        return 0;
    rc = flusher_copy(p);
    now = shoal__mono_ns();
    if (rc == 0 && p->written_offset != written)
        p->last_write_ns = now;
    if (rc == 0 && (final || flush_due(p, flush_ms, now)))
        rc = flusher_sync(p, final);
    if (rc == 0) {
        flusher_reclaim(p);
        dpart_roll_by_time(p, now);
    }
    /* Even when writing failed: on a full disk, deleting old segments is what makes room. */
    retention_maybe(p, now);
    if (rc == 0 && !final)
        compact_maybe_run(p, now);
    return rc;
}

static void ring_file_name(char *buf, size_t cap, uint32_t file)
{
    if (file == RING_FD_CTL || file == RING_FD_READERS)
        snprintf(buf, cap, file == RING_FD_CTL ? "control block" : "readers table");
    else
        snprintf(buf, cap, "slot %u", file - RING_FD_SLOT0);
}

/* Some process cut a file of the ring short: shoald's access past its new end faulted
 * (shmguard put zeros there) or a write from it failed (EFAULT). Give each such file its
 * size back, so that clients read zeros there instead of faulting, and stop the partition:
 * what was cut is lost, and only a ring rebuilt from disk is whole again (dpart_stop).
 * Then SHOAL_ECORRUPT, or 0 when every file is whole. */
static int dpart_check_files(dpart_t *p)
{
    int found = 0;

    for (uint32_t f = 0; f < RING_FD_COUNT(p->ring.slot_count); f++) {
        char what[32];
        size_t len;
        void *at = ring_file_mapping(&p->ring, f, &len);
        uint64_t was = len;
        int rc = ring_file_restore(&p->ring, p->shm_dir, p->shm_name, f, &p->ring_files[f],
                                   shmguard_take(at), &was);
        if (rc == 0)
            continue;
        p->broken = true; /* before the log line: whoever reads it finds the partition stopped */
        found++;
        ring_file_name(what, sizeof(what), f);
        if (rc == -ESTALE)
            log_error("%s-%u: the ring's %s faulted and its path now names another file; "
                      "that file is left alone",
                      p->topic, p->id, what);
        else if (rc < 0)
            log_error("%s-%u: the ring's %s faulted and cannot be mapped again: %s", p->topic,
                      p->id, what, strerror(-rc));
        else if (was < len)
            log_error("%s-%u: another process cut the ring's %s short (%llu of %zu bytes); its "
                      "size is restored",
                      p->topic, p->id, what, (unsigned long long)was, len);
        else
            log_error("%s-%u: the ring's %s faulted though it has all its %zu bytes (a full "
                      "shared-memory filesystem?); it is mapped again",
                      p->topic, p->id, what, len);
    }
    if (!found)
        return 0;
    dpart_stop(p);
    if (is_disk(p))
        log_error("%s-%u: partition stopped with offsets up to %lld on disk; what was only in "
                  "the cut part of the ring is lost; the next start of shoald rebuilds the ring "
                  "from disk",
                  p->topic, p->id, (long long)p->synced_offset);
    else
        log_error("%s-%u: partition stopped; its records were in memory only and are lost; the "
                  "next start of shoald gives it an empty ring",
                  p->topic, p->id);
    return SHOAL_ERR(SHOAL_ECORRUPT, "another process cut %d of the ring's files short", found);
}

/* Report a failing pass once, then every ERROR_LOG_INTERVAL_NS while it persists, and the
 * recovery; producers see the cause through the control block's flush_error. A failed
 * write is retried from the same position on the next pass, so nothing is lost or doubled:
 * unflushed slots are never freed, and a full ring holds producers back (SHOAL_AGAIN).
 * After a SIGBUS that shmguard caught anywhere, every partition checks its files first. */
int dpart_flush(dpart_t *p, int flush_ms, bool drop_cache, bool final)
{
    uint32_t faults = shmguard_fault_count();
    int rc = 0;

    p->drop_cache = drop_cache;
    if (faults != p->faults_seen) {
        p->faults_seen = faults;
        rc = dpart_check_files(p);
    }
    if (rc == 0 && (rc = flush_pass(p, flush_ms, final)) == -EFAULT && dpart_check_files(p) < 0)
        rc = SHOAL_ECORRUPT;
    int64_t now = shoal__mono_ns();

    /* A memory partition writes nothing: its only failure is a stop, which dpart_check_files()
     * logged (it used to be called a failed flush, then "disk writes resumed"). */
    if (rc < 0 && is_disk(p) &&
        (rc != p->last_error || final || now - p->last_error_log_ns >= ERROR_LOG_INTERVAL_NS)) {
        log_error("%s-%u: flush failed: %s (%s)%s", p->topic, p->id, shoal_strerror(rc),
                  shoal_errmsg(),
                  p->broken || final ? "" : "; retrying, records wait in shared memory");
        p->last_error_log_ns = now;
    } else if (rc == 0 && p->last_error != 0) {
        log_notice("%s-%u: disk writes resumed", p->topic, p->id);
    }
    if (rc != p->last_error && p->ring.ctl)
        atomic_store(&p->ring.ctl->flush_error, shoal__is_code(rc) ? -EIO : rc);
    p->last_error = rc;
    return rc;
}

/* Whether a pass could write or fsync anything: bytes are written and not synced, or the
 * slot the flusher stands in holds more than it wrote, or was sealed (it moves on). Only
 * between slots is log_end_offset the measure: a process can raise it past what any slot
 * holds, and the flusher leaves that state within DPART_UNPLACED_NS (flusher_unplaced). */
static bool dpart_has_unsynced(dpart_t *p)
{
    if (p->synced_offset < p->written_offset)
        return true;
    if (!p->fl_placed)
        return p->written_offset < shoal_load_acquire(&p->ring.ctl->log_end_offset);
    return ring_slot_used(&p->ring, p->fl_slot) > p->fl_pos ||
           atomic_load(&p->ring.ctl->slots[p->fl_slot].state) == SHM_SLOT_SEALED;
}

bool dpart_fsync_wanted(dpart_t *p, uint32_t flush_waiters)
{
    int64_t wanted = atomic_load(&p->ring.ctl->flush_wanted);

    if (!dpart_has_unsynced(p))
        return false;
    return p->synced_offset < wanted || (wanted == 0 && SHM_FLUSH_WAITING(flush_waiters) != 0);
}

int64_t dpart_idle_until(dpart_t *p, int daemon_flush_ms)
{
    struct shm_ctl *ctl = p->ring.ctl;
    int64_t until = INT64_MAX;
    uint32_t next;

    if (!ctl || p->broken)
        return INT64_MAX;
    if (!is_disk(p)) /* a producer waiting for room may need a dead reader's pin reaped */
        return atomic_load(&ctl->space_waiters) == 0 ? INT64_MAX : shoal__mono_ns() + DPART_REAP_NS;
    next = (atomic_load(&ctl->active_slot) + 1) % p->ring.slot_count;
    if (p->last_error != 0 || p->written_offset < shoal_load_acquire(&ctl->log_end_offset) ||
        dpart_fsync_wanted(p, atomic_load(&ctl->flush_waiters)) ||
        atomic_load(&ctl->slots[next].state) == SHM_SLOT_SEALED ||
        shoal__mono_ns() - p->last_write_ns < DPART_QUIET_NS)
        return 0;
    if (p->synced_offset != p->written_offset)
        until = sync_deadline(p, daemon_flush_ms);
    if (p->segment_since_ns)
        until = SHOAL_MIN(until, ns_after_ms(p->segment_since_ns, p->cfg.segment_ms));
    return until;
}

/* Load the last byte of each of the ring's mappings. A file cut short by a page or more
 * faults there, and shmguard marks it for dpart_check_files, before a client reading it
 * faults for long; a cut within the last page only zeroes bytes, which faults nobody. */
static void ring_probe_ends(const ring_t *r)
{
    for (uint32_t f = 0; f < RING_FD_COUNT(r->slot_count); f++) {
        size_t len;
        const volatile uint8_t *at = ring_file_mapping(r, f, &len);
        (void)at[len - 1];
    }
}

void dpart_sealed_sub(dpart_t *p, uint64_t bytes)
{
    uint64_t was = atomic_load(&p->disk_bytes_sealed);

    while (!atomic_compare_exchange_weak(&p->disk_bytes_sealed, &was, was - SHOAL_MIN(bytes, was)))
        ;
}

void dpart_disk_bytes_recount(dpart_t *p, const int64_t *bases, size_t n)
{
    uint64_t total = files_size(p->dir, bases, n), active = atomic_load(&p->disk_bytes_active);

    atomic_store(&p->disk_bytes_sealed, total - SHOAL_MIN(active, total));
}

/* Whether process pid is stopped (SIGSTOP, Ctrl-Z, a debugger): state T or t in
 * /proc/<pid>/stat, after the command name's closing parenthesis. False when unreadable. */
static bool pid_is_stopped(int32_t pid)
{
    char path[32], buf[512], *paren;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && (paren[2] == 'T' || paren[2] == 't');
}

static bool release_if_stopped(int32_t pid, void *arg)
{
    const dpart_t *p = arg;

    if (!pid_is_stopped(pid))
        return false;
    log_info("%s-%u: a producer waits for the ring slot of reader pid %d, which is stopped "
             "in its sleep: the slot is reused, and the reader is told what it lost when it "
             "goes on",
             p->topic, p->id, (int)pid);
    return true;
}

void dpart_reap(dpart_t *p)
{
    int n;

    ring_probe_ends(&p->ring);
    n = ring_reap_dead_readers(&p->ring);
    if (n > 0)
        log_info("%s-%u: cleared %d reader entries of exited processes", p->topic, p->id, n);
    /* A disk topic's sleeping reader holds no pin (consumer_hold_slots); a memory topic's
     * does, so that a reader woken late still reads, unless it is stopped and a producer
     * waits for room or found none (block_ms 0 never waits). */
    if (!is_disk(p)) {
        uint64_t full = atomic_load(&p->ring.ctl->full_events);
        if (atomic_load(&p->ring.ctl->space_waiters) > 0 || full != p->full_seen)
            ring_release_sleepers(&p->ring, release_if_stopped, p);
        p->full_seen = full;
    }
}

void dpart_close(dpart_t *p)
{
    shoal__free(p->seg_bases);
    p->seg_bases = NULL;
    p->seg_listed = false;
    if (p->log_fd >= 0) {
        close(p->log_fd);
        index_writer_close(&p->iw);
        p->log_fd = -1;
    }
    if (p->ring.ctl)
        ring_unmap(&p->ring);
}

void dpart_abandon(dpart_t *p)
{
    bool built = p->ring.ctl && !p->ring_reattached;

    dpart_close(p);
    if (built)
        ring_unlink(p->shm_dir, p->shm_name, p->cfg.ring_slots);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *at)
{
    (void)st, (void)type, (void)at;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* Remove dir and everything under it, symbolic links as links. */
static int rm_tree(const char *dir)
{
    if (nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS) < 0)
        return errno == ENOENT ? 0 : -errno;
    return 0;
}

/* Unlink a partition's ring files (up to slots of them) and, with dir, its directory. */
static void dpart_unlink(const dpart_t *p, uint32_t slots, bool dir)
{
    ring_unlink(p->shm_dir, p->shm_name, slots);
    if (dir && rm_tree(p->dir) < 0)
        log_warn("%s-%u: could not remove %s", p->topic, p->id, p->dir);
}

void dpart_remove(dpart_t *p)
{
    if (p->ring.ctl)
        ring_close_shared(&p->ring, SHM_CLOSED_DELETED);
    dpart_close(p);
    dpart_unlink(p, p->cfg.ring_slots, is_disk(p));
}

void dpart_remove_files(const char *data_dir, const char *shm_dir, const char *topic, uint32_t id,
                        const shoal_topic_config_t *cfg)
{
    dpart_t p = {0};
    ring_params_t rp;

    if (dpart_names(&p, data_dir, shm_dir, topic, id) < 0)
        return;
    p.id = id;
    if (cfg) { /* clients still attached from before are told, as for any delete */
        p.cfg = *cfg;
        params_of(&p, &rp);
        if (ring_open(&p.ring, p.shm_dir, p.shm_name, &rp, p.ring_files) == 0) {
            ring_close_shared(&p.ring, SHM_CLOSED_DELETED);
            ring_unmap(&p.ring);
        }
    }
    dpart_unlink(&p, SHM_MAX_SLOTS, true);
}

bool dpart_ring_found(const char *shm_dir, const char *topic, uint32_t id, bool *used)
{
    char name[NAME_MAX + 1], path[PATH_MAX + NAME_MAX + 8];
    int64_t end = 0;
    int fd;

    *used = false;
    if (shm_name_of(name, sizeof(name), topic, id) >= (int)sizeof(name))
        return false;
    snprintf(path, sizeof(path), "%s/%s.ctl", shm_dir, name);
    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return false;
    *used = pread(fd, &end, sizeof(end), offsetof(struct shm_ctl, log_end_offset)) !=
                (ssize_t)sizeof(end) ||
            end != 0; /* one that cannot be read may hold records */
    close(fd);
    return true;
}

int64_t dpart_unsynced(const dpart_t *p)
{
    /* After a good final pass, what producers appended since is as if appended while the
     * daemon was down (they need no daemon): the next start writes it out, no failure. */
    if (!is_disk(p) || atomic_load(&p->broken) || !p->ring.ctl || p->last_error == 0)
        return 0;
    return atomic_load(&p->ring.ctl->log_end_offset) - p->synced_offset;
}

/* ------------------------------------------------------------------ lookups */

static int64_t segment_position(const char *dir, int64_t base, int fd, uint64_t len, int64_t offset,
                                bool indexed)
{
    char path[PATH_MAX];
    const uint8_t *log, *idx = NULL;
    struct stat st;
    size_t idx_len = 0;
    int64_t pos;
    int ifd;

    log = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (log == MAP_FAILED)
        return -errno;
    if (indexed && segment_path(path, sizeof(path), dir, base, ".index") == 0 &&
        (ifd = shoal__open_regular(path, O_RDONLY, 0)) >= 0) {
        if (fstat(ifd, &st) == 0 && st.st_size > 0) {
            idx = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, ifd, 0);
            idx_len = idx == MAP_FAILED ? 0 : (size_t)st.st_size;
            if (idx == MAP_FAILED)
                idx = NULL;
        }
        close(ifd);
    }
    pos = segment_find_offset(log, len, base, idx, idx_len, offset);
    if (idx)
        munmap((void *)idx, idx_len);
    munmap((void *)log, len);
    return pos;
}

/* A listed segment that cannot be opened: retention may have removed it since (ENOENT, said
 * by the caller's retry or the client's next call); anything else is logged, once per call,
 * since the client only sees the code. */
static int segment_open_failed(const dpart_t *p, int rc)
{
    if (rc != -ENOENT)
        log_error("%s-%u: cannot open a segment for a consumer: %s", p->topic, p->id,
                  shoal_errmsg()[0] ? shoal_errmsg() : shoal_strerror(rc));
    return rc;
}

/* The segment bases as the server thread last listed them. Listing a directory of
 * thousands of segments took ~5 ms, once for every segment a consumer read through; the
 * list is kept, and a lookup it cannot answer (a roll or retention since) lists again. */
static int segment_bases(dpart_t *p, bool relist, const int64_t **bases, size_t *n)
{
    if (relist || !p->seg_listed) {
        int64_t *fresh = NULL;
        size_t count = 0;
        int rc = segment_list(p->dir, &fresh, &count);
        if (rc < 0)
            return rc;
        shoal__free(p->seg_bases);
        p->seg_bases = fresh;
        p->seg_count = count;
        p->seg_listed = true;
    }
    *bases = p->seg_bases;
    *n = p->seg_count;
    return 0;
}

/* Segment base (open as fd, len bytes), which a later one follows, did not hold the offset
 * sought: SHOAL_ECORRUPT naming where when it is damaged (a header that does not parse, a
 * batch that runs past the file's end: in a sealed segment not a torn tail), since the
 * offset may be past the damage; 0 when it is whole and simply ends before it. */
static int segment_damage(const dpart_t *p, int64_t base, int fd, uint64_t len)
{
    segment_scan_t scan;
    const uint8_t *log = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);

    if (log == MAP_FAILED)
        return 0; /* cannot tell: as before, a lost file */
    segment_scan_bytes(log, len, base, false, NULL, NULL, &scan);
    munmap((void *)log, len);
    if (!scan.error && scan.valid_bytes == len)
        return 0;
    return SHOAL_ERR(SHOAL_ECORRUPT,
                     "%s-%u: segment %lld is damaged at byte %llu (%s); its records from offset "
                     "%lld on cannot be read past it",
                     p->topic, p->id, (long long)base, (unsigned long long)scan.valid_bytes,
                     scan.error ? scan.why : "a batch runs past the file's end",
                     (long long)scan.next_offset);
}

/* Open <base>.log.swap, a finished compaction merge, for a consumer of offset: 0 when it
 * holds it (no index describes it: found by a scan). */
static int swap_serve(const dpart_t *p, int64_t base, int64_t offset, int *fd, uint64_t *bytes,
                      int64_t *pos)
{
    char path[PATH_MAX];
    struct stat st;
    int rc = segment_path(path, sizeof(path), p->dir, base, COMPACT_SWAP_EXT);

    if (rc < 0 || (*fd = shoal__open_regular(path, O_RDONLY, 0)) < 0)
        return -ENOENT;
    if (fstat(*fd, &st) == 0 && st.st_size > 0) {
        *bytes = (uint64_t)st.st_size;
        if ((*pos = segment_position(p->dir, base, *fd, *bytes, offset, false)) >= 0)
            return 0;
    }
    close(*fd);
    *fd = -1;
    return SHOAL_EOFFSET;
}

int dpart_segment_open(dpart_t *p, int64_t offset, int *fd, int64_t *base, uint64_t *bytes,
                       int64_t *pos)
{
    char path[PATH_MAX];
    const int64_t *bases;
    int64_t next;
    size_t n, i;
    struct stat st = {0}, now;
    bool relist = false, relisted = false;
    int rc, tries = 0;

    if (!is_disk(p))
        return SHOAL_ERR(SHOAL_EOFFSET, "memory topic %s has no disk segments", p->topic);
again:
    if ((rc = segment_bases(p, relist, &bases, &n)) < 0)
        return rc;
    relisted |= relist;
    relist = false;
    for (i = n; i > 0 && bases[i - 1] > offset; i--)
        ;
    if (i == 0 && !relisted) {
        relist = true;
        goto again;
    }
    if (i == 0)
        return SHOAL_ERR(SHOAL_EOFFSET, "no segment of %s-%u holds offset %lld", p->topic, p->id,
                         (long long)offset);
    *base = bases[i - 1];
    next = i < n ? bases[i] : -1;
    if ((rc = segment_path(path, sizeof(path), p->dir, *base, ".log")) < 0)
        return rc;
    if ((*fd = shoal__open_regular(path, O_RDONLY, 0)) == -ENOENT && (!relisted || ++tries < 3)) {
        relist = true; /* retention or a compaction merge removed it since the list was made */
        goto again;
    }
    if (*fd < 0)
        return segment_open_failed(p, *fd);
    if (fstat(*fd, &st) < 0 || st.st_size == 0)
        goto out_range;
    *bytes = (uint64_t)st.st_size;
    *pos = segment_position(p->dir, *base, *fd, *bytes, offset, true);
    /* Compaction (flusher thread) may have swapped the file meanwhile, and the .index read
     * may then describe the new bytes: look again with the new file. */
    if (*pos != SHOAL_EOFFSET && stat(path, &now) == 0 && now.st_ino != st.st_ino && ++tries < 3) {
        close(*fd);
        goto again;
    }
    if (*pos >= 0)
        return 0;
    /* Damage is not a lost file: say so, rather than serve the next segment past it. */
    if (*pos == SHOAL_ECORRUPT || (next > offset && (rc = segment_damage(p, *base, *fd, *bytes)))) {
        close(*fd);
        *fd = -1;
        return *pos == SHOAL_ECORRUPT ? (int)*pos : rc;
    }
out_range:
    close(*fd);
    *fd = -1;
    if (!relisted) { /* a segment rolled since the list was made may hold it */
        relist = true;
        goto again;
    }
    /* Compaction merging the segments after *base into it (compact.c) deletes them before
     * its .swap takes the place of the .log: the .swap holds offset meanwhile, and once
     * it has, the .log does. */
    if (next > offset && swap_serve(p, *base, offset, fd, bytes, pos) == 0)
        return 0;
    if (next > offset && stat(path, &now) == 0 && now.st_ino != st.st_ino && ++tries < 3)
        goto again;
    /* Segments follow each other without gaps (compaction keeps each one's last batch), so
     * an offset past its segment's end with a later segment on disk was lost with a file:
     * serve the later segment, whose base tells the consumer what is missing. */
    if (next > offset) {
        offset = next;
        goto again;
    }
    return SHOAL_ERR(SHOAL_EOFFSET, "offset %lld is not on disk for %s-%u", (long long)offset,
                     p->topic, p->id);
}

/* ------------------------------------------------------------------ timestamp lookups */

#define DPART_TIME_TRIES 8 /* passes over disk and ring before the log is said to move too fast */

/* Search one disk segment (<base><ext>: its .log through its indexes, or a .swap by a scan).
 * 0 with *offset; SHOAL_EOFFSET with *from moved to the end of the segment's data; -ENOENT
 * when the file is missing or empty; another negative code on failure. */
static int segment_time_search(const char *dir, int64_t base, const char *ext, int64_t ts,
                               int64_t *from, int64_t *offset)
{
    segment_map_t log, idx = {0}, tidx = {0};
    int64_t end = base, found;
    bool indexed = !strcmp(ext, ".log");
    int rc = segment_map(dir, base, ext, true, &log);

    if (rc == 0 && log.len == 0) {
        segment_unmap(&log);
        return -ENOENT;
    }
    if (rc == 0 && indexed)
        rc = segment_map(dir, base, ".index", true, &idx);
    if (rc == 0 && indexed)
        rc = segment_map(dir, base, ".timeindex", true, &tidx);
    found = rc < 0 ? rc
                   : segment_find_timestamp(log.data, log.len, base, idx.data, idx.len, tidx.data,
                                            tidx.len, ts, &end);
    segment_unmap(&tidx);
    segment_unmap(&idx);
    segment_unmap(&log);
    if (found >= 0)
        *offset = found;
    else if (found == SHOAL_EOFFSET)
        *from = SHOAL_MAX(*from, end);
    return found >= 0 ? 0 : (int)found;
}

/* One pass over the disk segments holding offsets from *from on, oldest first. A segment
 * whose records are all earlier than ts costs its last .timeindex entry and the batch
 * headers after it. 1 to list them again: one listed was gone or empty (a compaction merge
 * unlinks the segments its .swap holds) while `patient`. */
static int disk_time_pass(dpart_t *p, int64_t ts, bool patient, int64_t *from, int64_t *offset)
{
    int64_t *bases = NULL;
    size_t n = 0;
    int rc = segment_list(p->dir, &bases, &n);

    if (rc < 0)
        return rc;
    rc = SHOAL_EOFFSET;
    for (size_t i = 0; i < n && rc == SHOAL_EOFFSET; i++) {
        if (i + 1 < n && bases[i + 1] <= *from)
            continue;
        rc = segment_time_search(p->dir, bases[i], ".log", ts, from, offset);
        if (rc == -ENOENT && patient && i + 1 < n)
            rc = 1;
        /* Ending short of the next segment: a merge under way, whose .swap holds the
         * segments it has unlinked (as dpart_segment_open serves it). */
        else if ((rc == -ENOENT || rc == SHOAL_EOFFSET) && i + 1 < n && *from < bases[i + 1])
            rc = segment_time_search(p->dir, bases[i], COMPACT_SWAP_EXT, ts, from, offset);
        rc = rc == -ENOENT ? SHOAL_EOFFSET : rc;
    }
    shoal__free(bases);
    return rc;
}

static int disk_find_time(dpart_t *p, int64_t ts, int64_t *from, int64_t *offset)
{
    int rc = 1;

    for (int pass = 0; rc == 1; pass++)
        rc = disk_time_pass(p, ts, pass < 3, from, offset);
    return rc;
}

/* One batch of the ring search: 1 when *offset is decided, 0 to go on, < 0 on failure
 * (SHOAL_EOFFSET when the cursor's next slot was reclaimed meanwhile). */
static int ring_time_step(dpart_t *p, ring_cursor_t *c, int64_t ts, int64_t *offset)
{
    struct shm_slot *s = &p->ring.ctl->slots[c->slot];
    const uint8_t *batch;
    record_batch_header_t h;
    int64_t found;
    int rc;

    if (!c->placed) {
        *offset = c->next_offset;
        return 1;
    }
    /* A sealed slot's max timestamp is final (the cursor pins it): skip it whole when no
     * record in it is that late. */
    if (atomic_load(&s->state) == SHM_SLOT_SEALED && atomic_load(&s->max_timestamp) < ts)
        c->pos = ring_slot_used(&p->ring, c->slot);
    rc = ring_cursor_next(&p->ring, c, &batch, &h);
    if (rc == RING_SLOT_END)
        return ring_cursor_advance(&p->ring, c);
    if (rc == 0) {
        *offset = c->next_offset; /* caught up: the log end */
        return 1;
    }
    if (rc < 0)
        return rc;
    found = segment_batch_find_timestamp(batch, &h, ts);
    if (found == SHOAL_EOFFSET)
        return 0;
    if (found < 0)
        return (int)found;
    *offset = found;
    return 1;
}

/* Search the ring from offset from to its end with a cursor of the daemon's own, which pins
 * each slot as a consumer's does, so neither the flusher nor a producer reclaims a slot
 * under the scan. 0 with *offset; SHOAL_EOFFSET when from is no longer in the ring. */
static int ring_find_time(dpart_t *p, int64_t ts, int64_t from, int64_t *offset)
{
    ring_cursor_t c;
    int rc = ring_cursor_open(&p->ring, &c);

    if (rc < 0)
        return rc;
    rc = ring_cursor_seek(&p->ring, &c, from);
    while (rc == 0)
        rc = ring_time_step(p, &c, ts, offset);
    ring_cursor_close(&p->ring, &c);
    return rc == 1 ? 0 : rc;
}

/* Disk first, then the ring from where the disk data ends. When that offset has left the
 * ring meanwhile (the flusher wrote and freed its slot, or a memory topic's producer reused
 * it), look again: the disk now holds it, or the memory topic's log starts later. */
int dpart_offset_for_time(dpart_t *p, int64_t ts, int64_t *offset)
{
    struct shm_ctl *ctl = p->ring.ctl;
    int64_t from = atomic_load(&ctl->log_start_offset);
    int rc = SHOAL_EOFFSET;

    for (int i = 0; i < DPART_TIME_TRIES && rc == SHOAL_EOFFSET; i++) {
        if (is_disk(p))
            rc = disk_find_time(p, ts, &from, offset);
        if (rc == SHOAL_EOFFSET)
            rc = ring_find_time(p, ts, from, offset);
        if (rc == SHOAL_EOFFSET && !is_disk(p)) {
            int64_t start = atomic_load(&ctl->log_start_offset);
            from = SHOAL_MAX(from, start);
        }
    }
    if (rc == SHOAL_EOFFSET)
        return SHOAL_ERR(SHOAL_AGAIN, "%s-%u: the log moved on during %d timestamp searches",
                         p->topic, p->id, DPART_TIME_TRIES);
    return rc;
}

void dpart_info(dpart_t *p, shoal_partition_info_t *pi)
{
    struct shm_ctl *ctl = p->ring.ctl;
    pi->partition = (int32_t)p->id;
    pi->log_start_offset = atomic_load(&ctl->log_start_offset);
    pi->log_end_offset = atomic_load(&ctl->log_end_offset);
    pi->flushed_offset = is_disk(p) ? atomic_load(&ctl->flushed_offset) : 0;
    pi->shm_bytes = ring_live_bytes(&p->ring);
    pi->disk_bytes = atomic_load(&p->disk_bytes_sealed) + atomic_load(&p->disk_bytes_active);
}
