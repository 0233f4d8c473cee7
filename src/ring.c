/* ring.c - a partition's shared ring of segment slots.
 *
 * DESIGN
 *
 * Append (producers, under the robust lock). Holding the lock, the producer's fill
 * function writes the batch (base offset and CRC included) at the active slot's append
 * position, then the producer publishes with two release stores: the slot's `used` (the
 * one publication point: readers never look past it) and the partition's log_end_offset.
 * The append position and the slot's max timestamp come from copies on the lock's cache
 * line, so the locked section stores to the slot descriptor readers poll but never loads
 * from it. After unlocking it bumps the readers' futex word and makes the wake-up system
 * call only when a reader announced it sleeps.
 *
 * Rotation. When the batch does not fit, the producer moves to the next slot, which must
 * be FREE (disk topics: shoald frees slots once flushed) or reclaimable (memory topics:
 * the oldest slot is reused unless a live reader pins it). The steps are ordered so a
 * producer killed between any two leaves a state ring_repair() can finish: the
 * new slot becomes ACTIVE (used 0), the old one SEALED, then active_slot moves.
 *
 * Owner death. The next locker gets EOWNERDEAD and runs ring_repair(): bytes past `used`
 * were never published and are simply overwritten later; a half-done reclaim is settled
 * (FREE if its bytes were already dropped, else SEALED); a half-done rotation is finished
 * (readers may already follow the new slot, so it is never undone);
 * log_end_offset is recomputed from the active slot's batches, which covers a producer
 * killed between its two publishing stores, and the lock holder's copies are reset from
 * the active slot. Anything else inconsistent is SHOAL_EPANIC.
 *
 * Read (consumers, no lock). A cursor pins the slot it reads: it stores (slot, gen) in its
 * reader entry, then re-reads the slot's state and generation. A reclaimer marks the slot
 * RECLAIMING, then scans the pins. Both sides use sequentially consistent operations, so
 * at least one sees the other (Dekker): either the reclaimer sees the pin and backs off,
 * or the reader sees RECLAIMING/a new gen and reads that range from disk instead. A reader
 * asleep in a poll holds no views; shoald may mark its entry released
 * (ring_release_sleepers), and the reclaimer then passes over its pin. The reader's wake-up
 * exchanges the mark away and pins again (ring_cursor_tighten), the same pattern with the
 * exchange in place of the pin's store.
 *
 * Sleep. A reader that is caught up increments `waiters`, loads `seq`, then sets `armed`
 * (ring_sleep_arm), issues a seq_cst fence, re-checks for data, and waits on the futex word
 * `seq` with the value it loaded. A producer publishes, issues a seq_cst fence (on x86-64,
 * the unlock's locked exchange: ring_wake_readers) and reads `waiters` and `armed`; only
 * when both are set does it clear `armed` (exchange), bump `seq` and call FUTEX_WAKE. The
 * two fences make this Dekker's pattern: either the reader's re-check sees the publish, or
 * the producer sees the armed waiter and changes `seq`. The change is one the reader's
 * futex wait notices because `armed` is stored after `seq` is loaded: a producer that
 * clears this store bumps `seq` after the load, so the wait returns or is woken. (Arming
 * first and loading after lost wake-ups: an earlier append, stalled between its unlock and
 * its wake-up, could clear the new arming and bump `seq` before the load, which then read
 * the bumped value; the next append found `armed` clear and woke nobody.) Clearing `armed`
 * spares the appends that follow a wake-up the system call while the woken readers have
 * not run yet (they still count in `waiters`): a reader that goes back to sleep arms it
 * again. When nobody sleeps an append therefore writes no line that readers poll but the
 * slot's `used`: the `seq` line stays shared in every reader's cache instead of moving on
 * every append. */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "rlock.h"
#include "util.h"

/* How long an append waits for the lock at least (ring_lock_append). */
#define RING_LOCK_WAIT_MIN_MS 1000

/* ------------------------------------------------------------------ files */

static int ring_path(char *buf, size_t cap, const char *dir, const char *name, int which)
{
    int n;
    if (which == -1)
        n = snprintf(buf, cap, "%s/%s.ctl", dir, name);
    else if (which == -2)
        n = snprintf(buf, cap, "%s/%s.readers", dir, name);
    else
        n = snprintf(buf, cap, "%s/%s.slot%d", dir, name, which);
    return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

/* ring_path()'s `which` of descriptor number i */
static int file_which(size_t i)
{
    return i == RING_FD_CTL ? -1 : i == RING_FD_READERS ? -2 : (int)(i - RING_FD_SLOT0);
}

/* which: -1 control block, -2 readers table, >= 0 a slot. */
static int ring_file_open(const char *dir, const char *name, int which, int flags, size_t size)
{
    char path[4096];
    int fd, rc = ring_path(path, sizeof(path), dir, name, which);
    if (rc < 0)
        return rc;
    fd = open(path, flags | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (size && ftruncate(fd, (off_t)size) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

static ring_map_hook_fn *map_hook;
static ring_unmap_hook_fn *unmap_hook;

void ring_set_map_hooks(ring_map_hook_fn *on_map, ring_unmap_hook_fn *on_unmap)
{
    map_hook = on_map;
    unmap_hook = on_unmap;
}

/* MAP_POPULATE fills this process's page tables now: without it every producer takes one
 * minor fault per 4 KiB page it appends into (a write fault on a shared mapping maps one
 * page at a time). Measured on a 64 MiB slot: 20 ms of faults on the append path against
 * 1.4 ms at attach. */
static void *map_fd(int fd, size_t len, bool writable)
{
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    void *p = mmap(NULL, len, prot, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (map_hook)
        map_hook(p, len);
    return p;
}

static void unmap(void *p, size_t len)
{
    if (unmap_hook)
        unmap_hook(p);
    munmap(p, len);
}

void ring_unmap(ring_t *r)
{
    if (r->ctl)
        unmap(r->ctl, sizeof(struct shm_ctl));
    if (r->rd)
        unmap(r->rd, sizeof(struct shm_readers));
    for (uint32_t i = 0; i < SHM_MAX_SLOTS; i++)
        if (r->slots[i])
            unmap(r->slots[i], r->slot_bytes);
    memset(r, 0, sizeof(*r));
}

void ring_unlink(const char *shm_dir, const char *name, uint32_t slot_count)
{
    char path[4096];
    for (int i = -2; i < (int)slot_count; i++)
        if (ring_path(path, sizeof(path), shm_dir, name, i) == 0)
            unlink(path);
}

void ring_close_shared(ring_t *r, uint32_t why)
{
    atomic_store(&r->ctl->closed, why);
    atomic_fetch_add(&r->rd->seq, 1);
    shoal__futex_wake(&r->rd->seq, INT32_MAX);
    atomic_fetch_add(&r->ctl->space_seq, 1);
    shoal__futex_wake(&r->ctl->space_seq, INT32_MAX);
    atomic_fetch_add(&r->ctl->flush_seq, 1);
    shoal__futex_wake(&r->ctl->flush_seq, INT32_MAX);
}

void *ring_file_mapping(const ring_t *r, uint32_t file, size_t *len)
{
    if (file == RING_FD_CTL) {
        *len = sizeof(struct shm_ctl);
        return r->ctl;
    }
    if (file == RING_FD_READERS) {
        *len = sizeof(struct shm_readers);
        return r->rd;
    }
    *len = r->slot_bytes;
    return file - RING_FD_SLOT0 < r->slot_count ? r->slots[file - RING_FD_SLOT0] : NULL;
}

int ring_file_restore(ring_t *r, const char *shm_dir, const char *name, uint32_t file,
                      const ring_file_id_t *id, bool remap, uint64_t *was_bytes)
{
    size_t len;
    void *at = ring_file_mapping(r, file, &len);
    struct stat st;
    int rc = 1, fd = at ? ring_file_open(shm_dir, name, file_which(file), O_RDWR, 0) : -EINVAL;

    if (fd < 0)
        return fd;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
    } else if ((*was_bytes = (uint64_t)st.st_size) >= len && !remap) {
        rc = 0;
    } else if ((uint64_t)st.st_dev != id->dev || (uint64_t)st.st_ino != id->ino) {
        rc = -ESTALE;
    } else if (st.st_size < (off_t)len && ftruncate(fd, (off_t)len) < 0) {
        rc = -errno;
    } else if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
        rc = -errno;
        /* A failed MAP_FIXED may have unmapped the range: never leave a hole there */
        (void)mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    }
    close(fd);
    return rc;
}

/* Map every file of a ring; fds holds RING_FD_COUNT(slot_count) descriptors. */
static int ring_map_all(ring_t *r, const int *fds, uint32_t slot_count, uint64_t slot_bytes,
                        bool writable)
{
    memset(r, 0, sizeof(*r));
    r->slot_count = slot_count;
    r->slot_bytes = slot_bytes;
    r->writable = writable;
    r->ctl = map_fd(fds[RING_FD_CTL], sizeof(struct shm_ctl), writable);
    r->rd = map_fd(fds[RING_FD_READERS], sizeof(struct shm_readers), true);
    if (!r->ctl || !r->rd)
        goto out_unmap;
    for (uint32_t i = 0; i < slot_count; i++) {
        r->slots[i] = map_fd(fds[RING_FD_SLOT0 + i], slot_bytes, writable);
        if (!r->slots[i])
            goto out_unmap;
    }
    return 0;
out_unmap : {
    int rc = errno ? -errno : -ENOMEM;
    ring_unmap(r);
    return SHOAL_ERR(rc, "cannot map the ring's shared memory (%u slots of %llu bytes): %s",
                     slot_count, (unsigned long long)slot_bytes, shoal_strerror(rc));
}
}

static int identify_files(const int *fds, uint32_t n, ring_file_id_t *ids)
{
    struct stat st;
    for (uint32_t i = 0; ids && i < n; i++) {
        if (fstat(fds[i], &st) < 0)
            return -errno;
        ids[i] = (ring_file_id_t){.dev = (uint64_t)st.st_dev, .ino = (uint64_t)st.st_ino};
    }
    return 0;
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static int ring_files_open(const char *dir, const char *name, const ring_params_t *p, int flags,
                           int *fds)
{
    size_t n = RING_FD_COUNT(p->slot_count);
    bool create = flags & O_CREAT;
    for (size_t i = 0; i < n; i++)
        fds[i] = -1;
    for (size_t i = 0; i < n; i++) {
        int which = file_which(i);
        size_t size = !create       ? 0
                      : which == -1 ? sizeof(struct shm_ctl)
                      : which == -2 ? sizeof(struct shm_readers)
                                    : p->slot_bytes;
        fds[i] = ring_file_open(dir, name, which, flags, size);
        if (fds[i] < 0) {
            int rc = fds[i];
            close_fds(fds, i);
            return rc;
        }
    }
    return 0;
}

/* Point the lock holder's copies at the active slot (after anything that moves it). */
static void append_copies_reset(struct shm_ctl *ctl)
{
    const struct shm_slot *s = &ctl->slots[atomic_load(&ctl->active_slot) % SHM_MAX_SLOTS];
    atomic_store(&ctl->append_used, atomic_load(&s->used));
    atomic_store(&ctl->append_max_ts, atomic_load(&s->max_timestamp));
}

static int ring_init_shared(ring_t *r, const ring_params_t *p, int64_t start_offset)
{
    struct shm_ctl *ctl = r->ctl;
    struct shm_readers *rd = r->rd;
    int rc;

    memset(ctl, 0, sizeof(*ctl));
    memset(rd, 0, sizeof(*rd));
    ctl->version = SHM_LAYOUT_VERSION;
    ctl->ctl_bytes = sizeof(*ctl);
    ctl->slot_bytes = p->slot_bytes;
    ctl->slot_count = p->slot_count;
    ctl->partition = p->partition;
    ctl->max_record_bytes = p->max_record_bytes;
    ctl->storage = p->storage;
    ctl->owner = p->owner;
    rc = rlock_init(&ctl->lock);
    if (rc < 0)
        return rc;
    atomic_store(&ctl->log_end_offset, start_offset);
    atomic_store(&ctl->log_start_offset, start_offset);
    atomic_store(&ctl->flushed_offset, start_offset);
    atomic_store(&ctl->high_watermark, start_offset);
    for (uint32_t i = 0; i < p->slot_count; i++)
        atomic_store(&ctl->slots[i].max_timestamp, -1);
    atomic_store(&ctl->slots[0].base_offset, start_offset);
    atomic_store(&ctl->slots[0].gen, 1);
    atomic_store(&ctl->slots[0].state, SHM_SLOT_ACTIVE);
    append_copies_reset(ctl);
    rd->version = SHM_LAYOUT_VERSION;
    rd->readers_bytes = sizeof(*rd);
    /* The magic last: a mapper that sees it sees everything above. */
    atomic_thread_fence(memory_order_release);
    rd->magic = SHM_READERS_MAGIC;
    ctl->magic = SHM_CTL_MAGIC;
    return 0;
}

uint64_t ring_shm_bytes(uint32_t slot_count, uint64_t slot_bytes)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t files = (sizeof(struct shm_ctl) + page - 1) / page * page +
                     (sizeof(struct shm_readers) + page - 1) / page * page;

    return (uint64_t)slot_count * slot_bytes + files;
}

/* Reserve the slots' memory now, so that a full /dev/shm is a clear error at topic creation
 * rather than a SIGBUS in a producer later (tmpfs allocates on first touch otherwise), and
 * no append takes the page fault that allocates and zeroes a tmpfs page (about a fifth of
 * a fresh ring's append time, more for large records). A filesystem without fallocate is
 * left sparse. 0, or -ENOSPC with the sizes in the detail. */
static int ring_files_allocate(const int *fds, const ring_params_t *p, const char *shm_dir)
{
    uint64_t need = (uint64_t)p->slot_count * p->slot_bytes;
    char have[SHOAL_SIZE_TEXT_BYTES], want[SHOAL_SIZE_TEXT_BYTES];
    struct statvfs vfs;

    if (fstatvfs(fds[RING_FD_SLOT0], &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < need)
        return SHOAL_ERR(-ENOSPC, "%s has %s free; the ring needs %s (%u x %llu bytes)", shm_dir,
                         shoal__size_text(have, (uint64_t)vfs.f_bavail * vfs.f_frsize),
                         shoal__size_text(want, need), p->slot_count,
                         (unsigned long long)p->slot_bytes);
    for (uint32_t i = 0; i < p->slot_count; i++) {
        if (fallocate(fds[RING_FD_SLOT0 + i], 0, 0, (off_t)p->slot_bytes) == 0)
            continue;
        if (errno == EOPNOTSUPP)
            return 0;
        return SHOAL_ERR(-errno, "cannot reserve %llu bytes of shared memory in %s",
                         (unsigned long long)p->slot_bytes, shm_dir);
    }
    return 0;
}

int ring_create(ring_t *r, const char *shm_dir, const char *name, const ring_params_t *p,
                int64_t start_offset, ring_file_id_t *ids)
{
    int fds[RING_FD_COUNT(SHM_MAX_SLOTS)];
    int rc;

    if (p->slot_count < 2 || p->slot_count > SHM_MAX_SLOTS)
        return -EINVAL;
    ring_unlink(shm_dir, name, SHM_MAX_SLOTS);
    rc = ring_files_open(shm_dir, name, p, O_RDWR | O_CREAT | O_EXCL, fds);
    if (rc < 0)
        return rc;
    rc = ring_files_allocate(fds, p, shm_dir);
    if (rc == 0)
        rc = identify_files(fds, RING_FD_COUNT(p->slot_count), ids);
    if (rc == 0)
        rc = ring_map_all(r, fds, p->slot_count, p->slot_bytes, true);
    close_fds(fds, RING_FD_COUNT(p->slot_count));
    if (rc == 0)
        rc = ring_init_shared(r, p, start_offset);
    if (rc < 0) {
        if (r->ctl)
            ring_unmap(r);
        ring_unlink(shm_dir, name, p->slot_count);
    }
    return rc;
}

int ring_preload(ring_t *r, int64_t base, const uint8_t *data, size_t len, int64_t log_end,
                 int64_t log_start)
{
    struct shm_slot *s = &r->ctl->slots[0];
    if (len > r->slot_bytes || log_end < base)
        return -EINVAL;
    memcpy(r->slots[0], data, len);
    atomic_store(&s->base_offset, base);
    atomic_store(&s->used, (uint64_t)len);
    atomic_store(&r->ctl->log_end_offset, log_end);
    atomic_store(&r->ctl->flushed_offset, log_end);
    atomic_store(&r->ctl->high_watermark, log_end);
    atomic_store(&r->ctl->log_start_offset, log_start);
    append_copies_reset(r->ctl);
    return 0;
}

static int ring_check_layout(const ring_t *r, const ring_params_t *p)
{
    const struct shm_ctl *ctl = r->ctl;
    if (ctl->magic != SHM_CTL_MAGIC || r->rd->magic != SHM_READERS_MAGIC)
        return SHOAL_ERR(SHOAL_EVERSION, "shared ring has no valid magic");
    if (ctl->version != SHM_LAYOUT_VERSION || r->rd->version != SHM_LAYOUT_VERSION ||
        ctl->ctl_bytes != sizeof(struct shm_ctl) ||
        r->rd->readers_bytes != sizeof(struct shm_readers))
        return SHOAL_ERR(SHOAL_EVERSION, "shared ring layout version %u, expected %u", ctl->version,
                         SHM_LAYOUT_VERSION);
    if (p && (ctl->slot_bytes != p->slot_bytes || ctl->slot_count != p->slot_count ||
              ctl->partition != p->partition))
        return SHOAL_ERR(SHOAL_EVERSION, "shared ring parameters differ from the topic's");
    if (ctl->slot_count < 2 || ctl->slot_count > SHM_MAX_SLOTS)
        return SHOAL_ERR(SHOAL_EVERSION, "shared ring has %u slots", ctl->slot_count);
    return 0;
}

int ring_open(ring_t *r, const char *shm_dir, const char *name, const ring_params_t *p,
              ring_file_id_t *ids)
{
    int fds[RING_FD_COUNT(SHM_MAX_SLOTS)];
    int rc = ring_files_open(shm_dir, name, p, O_RDWR, fds);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < RING_FD_COUNT(p->slot_count); i++) {
        struct stat st;
        uint64_t want = i == RING_FD_CTL       ? sizeof(struct shm_ctl)
                        : i == RING_FD_READERS ? sizeof(struct shm_readers)
                                               : p->slot_bytes;
        if (fstat(fds[i], &st) < 0 || (uint64_t)st.st_size != want) {
            close_fds(fds, RING_FD_COUNT(p->slot_count));
            return SHOAL_ERR(SHOAL_EVERSION, "shared ring file %u has the wrong size", i);
        }
    }
    /* A surviving ring keeps the memory it reserved at creation. */
    rc = identify_files(fds, RING_FD_COUNT(p->slot_count), ids);
    if (rc == 0)
        rc = ring_map_all(r, fds, p->slot_count, p->slot_bytes, true);
    close_fds(fds, RING_FD_COUNT(p->slot_count));
    if (rc == 0 && (rc = ring_check_layout(r, p)) < 0)
        ring_unmap(r);
    return rc;
}

int ring_open_fds(const char *shm_dir, const char *name, uint32_t slot_count, bool writable,
                  int *fds)
{
    ring_params_t p = {.slot_count = slot_count};
    int rc = ring_files_open(shm_dir, name, &p, writable ? O_RDWR : O_RDONLY, fds);
    if (rc < 0 || writable)
        return rc;
    /* The readers table is read-write for every client (see shm_layout.h). */
    close(fds[RING_FD_READERS]);
    fds[RING_FD_READERS] = ring_file_open(shm_dir, name, -2, O_RDWR, 0);
    if (fds[RING_FD_READERS] < 0) {
        rc = fds[RING_FD_READERS];
        fds[RING_FD_READERS] = -1;
        close_fds(fds, RING_FD_COUNT(slot_count));
    }
    return rc;
}

int ring_map_fds(ring_t *r, const int *fds, size_t nfds, bool writable)
{
    ring_file_id_t ctl_file;
    struct stat st;
    struct shm_ctl *ctl;
    uint32_t slots;
    uint64_t slot_bytes;
    int rc;

    if (nfds < RING_FD_COUNT(2) || fstat(fds[RING_FD_CTL], &st) < 0 ||
        (size_t)st.st_size != sizeof(struct shm_ctl))
        return SHOAL_ERR(SHOAL_EPROTO, "ring descriptors missing or of the wrong size");
    ctl_file = (ring_file_id_t){.dev = st.st_dev, .ino = st.st_ino};
    /* A short readers file would map, then fault (SIGBUS) on the first entry past its end. */
    if (fstat(fds[RING_FD_READERS], &st) < 0 || (size_t)st.st_size != sizeof(struct shm_readers))
        return SHOAL_ERR(SHOAL_EPROTO, "ring readers table has the wrong size");
    ctl = map_fd(fds[RING_FD_CTL], sizeof(struct shm_ctl), false);
    if (!ctl)
        return SHOAL_ERR(-errno, "cannot map the ring's control block: %s", shoal_strerror(-errno));
    slots = ctl->slot_count;
    slot_bytes = ctl->slot_bytes;
    unmap(ctl, sizeof(struct shm_ctl));
    if (slots < 2 || slots > SHM_MAX_SLOTS || nfds != RING_FD_COUNT(slots))
        return SHOAL_ERR(SHOAL_EPROTO, "ring has %u slots but %zu descriptors came", slots, nfds);
    for (uint32_t i = 0; i < slots; i++)
        if (fstat(fds[RING_FD_SLOT0 + i], &st) < 0 || (uint64_t)st.st_size != slot_bytes)
            return SHOAL_ERR(SHOAL_EPROTO, "ring slot %u has the wrong size", i);
    rc = ring_map_all(r, fds, slots, slot_bytes, writable);
    if (rc == 0 && (rc = ring_check_layout(r, NULL)) < 0)
        ring_unmap(r);
    r->ctl_file = ctl_file;
    return rc;
}

/* ------------------------------------------------------------------ repair */

/* Walk the batches of a slot's published bytes; *next gets the offset after the last. */
static int slot_scan_end(const uint8_t *data, uint64_t used, int64_t base, int64_t *next)
{
    uint64_t pos = 0;
    *next = base;
    while (pos < used) {
        record_batch_header_t h;
        if (record_batch_parse(data + pos, used - pos, &h) != 0)
            return SHOAL_ERR(SHOAL_EPANIC, "published batch at slot byte %llu is malformed",
                             (unsigned long long)pos);
        *next = h.base_offset + h.last_offset_delta + 1;
        pos += record_batch_size(&h);
    }
    return 0;
}

/* Settle a reclaim that did not reach its FREE store. Its bytes are dropped only after the
 * pin scan passed, so such a slot is free; otherwise it is sealed again and a later reclaim
 * scans the pins afresh. (A sealed slot is never empty: rotation happens only when a batch
 * does not fit, and an empty slot fits any batch.) */
static void repair_settle_reclaims(ring_t *r)
{
    for (uint32_t i = 0; i < r->slot_count; i++) {
        struct shm_slot *s = &r->ctl->slots[i];
        if (atomic_load(&s->state) != SHM_SLOT_RECLAIMING)
            continue;
        if (atomic_load(&s->used) == 0) {
            atomic_store(&s->max_timestamp, -1);
            atomic_store(&s->state, SHM_SLOT_FREE);
        } else {
            atomic_store(&s->state, SHM_SLOT_SEALED);
        }
    }
}

/* Finish a rotation that did not reach the active_slot store. Once the next slot is ACTIVE
 * a reader may already follow it, so the rotation is completed, never undone: the old slot
 * is sealed at active_end (where the new slot begins) and appends move on. */
static int repair_finish_rotation(ring_t *r, uint32_t active, int64_t active_end)
{
    struct shm_ctl *ctl = r->ctl;
    uint32_t next = (active + 1) % r->slot_count;
    struct shm_slot *n = &ctl->slots[next];

    for (uint32_t i = 0; i < r->slot_count; i++)
        if (i != active && i != next && atomic_load(&ctl->slots[i].state) == SHM_SLOT_ACTIVE)
            return SHOAL_ERR(SHOAL_EPANIC, "slot %u is active out of turn", i);
    if (atomic_load(&n->state) != SHM_SLOT_ACTIVE) {
        if (atomic_load(&ctl->slots[active].state) != SHM_SLOT_ACTIVE)
            return SHOAL_ERR(SHOAL_EPANIC, "active slot %u is sealed with no successor", active);
        return 0;
    }
    if (atomic_load(&n->used) != 0 || atomic_load(&n->base_offset) != active_end)
        return SHOAL_ERR(SHOAL_EPANIC, "slot %u does not continue slot %u", next, active);
    atomic_store(&ctl->slots[active].end_offset, active_end);
    atomic_store(&ctl->slots[active].state, SHM_SLOT_SEALED);
    atomic_store(&ctl->active_slot, next);
    return 0;
}

/* With the lock held: the active slot, or SHOAL_EPANIC when it is out of range. The control
 * block is shared with every producer, so the index is checked before it is used. */
static inline int active_slot_locked(const ring_t *r)
{
    uint32_t a = shoal_load_relaxed(&r->ctl->active_slot);
    if (__builtin_expect(a >= r->slot_count, 0))
        return SHOAL_ERR(SHOAL_EPANIC, "active slot %u out of range", a);
    return (int)a; /* slot_count <= SHM_MAX_SLOTS */
}

int ring_repair(void *arg)
{
    ring_t *r = arg;
    struct shm_ctl *ctl = r->ctl;
    int active = active_slot_locked(r);
    struct shm_slot *s;
    uint32_t st;
    int64_t end;
    int rc;

    if (active < 0)
        return active;
    repair_settle_reclaims(r);
    s = &ctl->slots[active];
    st = atomic_load(&s->state);
    if (st != SHM_SLOT_ACTIVE && st != SHM_SLOT_SEALED)
        return SHOAL_ERR(SHOAL_EPANIC, "active slot %d is neither active nor sealed", active);
    /* A batch whose `used` store happened is published: log_end_offset follows it. */
    rc = slot_scan_end(r->slots[active], ring_slot_used(r, (uint32_t)active),
                       atomic_load(&s->base_offset), &end);
    if (rc == 0)
        rc = repair_finish_rotation(r, (uint32_t)active, end);
    if (rc < 0)
        return rc;
    atomic_store(&ctl->log_end_offset, end);
    append_copies_reset(ctl);
    atomic_fetch_add(&ctl->lock_recoveries, 1);
    return 0;
}

/* ------------------------------------------------------------------ reclaiming */

/* The process of a reader that holds views into slot at gen (its pid as shoald sees it),
 * or 0 when none does. */
static int32_t slot_pinner(const ring_t *r, uint32_t slot, uint32_t gen)
{
    uint64_t pin = SHM_PIN(slot, gen);
    for (uint32_t i = 0; i < SHM_MAX_READERS; i++) {
        const struct shm_reader *e = &r->rd->readers[i];
        int32_t pid;
        /* seq_cst, as the sleeper's exchange of `sleeping` when it wakes: either this sees
         * the pin hold again, or the reader sees the slot going (ring_cursor_tighten) */
        if (atomic_load(&e->pin) == pin && (pid = atomic_load(&e->pid)) != 0 &&
            atomic_load(&e->sleeping) != SHM_ASLEEP_RELEASED)
            return pid;
    }
    return 0;
}

bool ring_slot_is_pinned(const ring_t *r, uint32_t slot, uint32_t gen)
{
    return slot_pinner(r, slot, gen) != 0;
}

/* With the lock held: SEALED -> FREE unless pinned. */
static int slot_reclaim_locked(ring_t *r, uint32_t slot)
{
    struct shm_slot *s = &r->ctl->slots[slot];
    uint32_t gen = atomic_load(&s->gen);

    if (atomic_load(&s->state) != SHM_SLOT_SEALED || slot == atomic_load(&r->ctl->active_slot))
        return SHOAL_AGAIN;
    atomic_store(&s->state, SHM_SLOT_RECLAIMING); /* seq_cst: before the pin scan */
    if (ring_slot_is_pinned(r, slot, gen)) {
        atomic_store(&s->state, SHM_SLOT_SEALED);
        return SHOAL_AGAIN;
    }
    atomic_store(&s->used, 0);
    atomic_store(&s->max_timestamp, -1);
    atomic_store(&s->state, SHM_SLOT_FREE);
    return 0;
}

static void ring_signal_space(ring_t *r)
{
    atomic_fetch_add(&r->ctl->space_seq, 1);
    if (atomic_load(&r->ctl->space_waiters) > 0)
        shoal__futex_wake(&r->ctl->space_seq, INT32_MAX);
}

int ring_reclaim_slot(ring_t *r, uint32_t slot, int timeout_ms)
{
    int rc = rlock_acquire(&r->ctl->lock, timeout_ms, ring_repair, r);
    if (rc < 0)
        return rc;
    rc = slot_reclaim_locked(r, slot);
    rlock_release(&r->ctl->lock);
    if (rc == 0)
        ring_signal_space(r);
    return rc;
}

static int ring_rotate_locked(ring_t *r);

int ring_roll(ring_t *r, int timeout_ms)
{
    struct shm_ctl *ctl = r->ctl;
    int active, rc = rlock_acquire(&ctl->lock, timeout_ms, ring_repair, r);
    if (rc < 0)
        return rc;
    if ((active = active_slot_locked(r)) < 0)
        rc = active;
    else if (atomic_load(&ctl->slots[active].used) == 0)
        rc = SHOAL_AGAIN;
    else
        rc = ring_rotate_locked(r);
    rlock_release(&ctl->lock);
    return rc;
}

int ring_reap_dead_readers(ring_t *r)
{
    int reaped = 0;
    for (uint32_t i = 0; i < SHM_MAX_READERS; i++) {
        struct shm_reader *e = &r->rd->readers[i];
        int32_t pid = atomic_load(&e->pid);
        if (pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        atomic_store(&e->pin, 0);
        ring_sleeper_set(r, &e->sleeping, false);
        if (atomic_compare_exchange_strong(&e->pid, &pid, 0))
            reaped++;
    }
    return reaped;
}

int ring_release_sleepers(ring_t *r, bool (*release)(int32_t pid, void *arg), void *arg)
{
    int released = 0;
    for (uint32_t i = 0; i < SHM_MAX_READERS; i++) {
        struct shm_reader *e = &r->rd->readers[i];
        uint32_t asleep = SHM_ASLEEP;
        int32_t pid = atomic_load(&e->pid);
        if (pid <= 0 || atomic_load(&e->sleeping) != SHM_ASLEEP || atomic_load(&e->pin) == 0 ||
            !release(pid, arg))
            continue;
        /* fails if it woke meanwhile: it holds views again, or is about to */
        if (atomic_compare_exchange_strong(&e->sleeping, &asleep, SHM_ASLEEP_RELEASED))
            released++;
    }
    return released;
}

bool ring_sleeper_set(ring_t *r, _Atomic uint32_t *sleeping, bool on)
{
    uint32_t was;

    if (on) {
        atomic_store(sleeping, SHM_ASLEEP);
        atomic_fetch_add(&r->rd->waiters, 1);
        return false;
    }
    if ((was = atomic_exchange(sleeping, 0)) != 0)
        atomic_fetch_sub(&r->rd->waiters, 1);
    return was == SHM_ASLEEP_RELEASED;
}

uint64_t ring_live_bytes(const ring_t *r)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < r->slot_count; i++) {
        uint32_t st = atomic_load(&r->ctl->slots[i].state);
        if (st == SHM_SLOT_ACTIVE || st == SHM_SLOT_SEALED)
            total += atomic_load(&r->ctl->slots[i].used);
    }
    return total;
}

/* ------------------------------------------------------------------ appending */

void (*ring__test_hook)(int stage);

static inline void test_hook(int stage)
{
    if (__builtin_expect(ring__test_hook != NULL, 0))
        ring__test_hook(stage);
}

uint32_t ring_sleep_arm(ring_t *r)
{
    uint32_t seq = atomic_load(&r->rd->seq);
    test_hook(RING_STAGE_ARMING);
    atomic_store(&r->rd->armed, 1); /* always, and after the load: see Sleep above */
    return seq;
}

/* The oldest live offset once slot `freed` is gone: the base of the slot after it. */
static void ring_advance_log_start(ring_t *r, uint32_t freed)
{
    uint32_t next = (freed + 1) % r->slot_count;
    int64_t base = atomic_load(&r->ctl->slots[next].base_offset);
    if (base > atomic_load(&r->ctl->log_start_offset))
        atomic_store(&r->ctl->log_start_offset, base);
}

/* With the lock held: move appends to the next slot. SHOAL_AGAIN when it is not free. */
static int ring_rotate_locked(ring_t *r)
{
    struct shm_ctl *ctl = r->ctl;
    int old = active_slot_locked(r);
    uint32_t next;
    struct shm_slot *n;
    int64_t leo = atomic_load(&ctl->log_end_offset);

    if (old < 0)
        return old;
    next = ((uint32_t)old + 1) % r->slot_count;
    n = &ctl->slots[next];
    if (atomic_load(&n->state) == SHM_SLOT_SEALED && ctl->storage == SHOAL_STORAGE_MEMORY) {
        if (slot_reclaim_locked(r, next) < 0)
            return SHOAL_AGAIN;
        ring_advance_log_start(r, next);
    }
    if (atomic_load(&n->state) != SHM_SLOT_FREE)
        return SHOAL_AGAIN;
    atomic_store(&n->used, 0);
    atomic_store(&n->base_offset, leo);
    atomic_store(&n->end_offset, leo);
    atomic_fetch_add(&n->gen, 1);
    atomic_store(&n->state, SHM_SLOT_ACTIVE);
    test_hook(RING_STAGE_ROTATING);
    atomic_store(&ctl->slots[old].end_offset, leo);
    atomic_store(&ctl->slots[old].state, SHM_SLOT_SEALED);
    test_hook(RING_STAGE_SEALED);
    atomic_store(&ctl->active_slot, next);
    append_copies_reset(ctl);
    return 0;
}

/* With the lock held: have fill write the batch into the active slot, then publish it.
 * SHOAL_AGAIN when the ring is full; fill's error leaves nothing published. */
static int ring_append_locked(ring_t *r, const struct ring_batch *b, int64_t *base_offset)
{
    struct shm_ctl *ctl = r->ctl;
    uint64_t used = shoal_load_relaxed(&ctl->append_used);
    int64_t leo = shoal_load_relaxed(&ctl->log_end_offset);
    struct shm_slot *s;
    int active, rc;

    if (used > r->slot_bytes - b->len) { /* b->len <= slot_bytes: no wrap */
        if ((rc = ring_rotate_locked(r)) < 0)
            return rc;
        used = 0;
    }
    if ((active = active_slot_locked(r)) < 0)
        return active;
    s = &ctl->slots[active];
    if ((rc = b->fill(r->slots[active] + used, b->len, leo, b->arg)) < 0)
        return rc;
    /* Ahead of the published `used` until the store below: ring_repair() resets it. */
    shoal_store_relaxed(&ctl->append_used, used + b->len);
    if (b->max_timestamp > shoal_load_relaxed(&ctl->append_max_ts)) {
        shoal_store_relaxed(&ctl->append_max_ts, b->max_timestamp);
        shoal_store_relaxed(&s->max_timestamp, b->max_timestamp);
    }
    test_hook(RING_STAGE_COPIED);
    shoal_store_release(&s->used, used + b->len);
    test_hook(RING_STAGE_USED);
    shoal_store_release(&ctl->log_end_offset, leo + b->records);
    shoal_store_relaxed(&ctl->writer_cpu, sched_getcpu() + 1);
    /* The lock makes us the only writer: plain stores, no locked read-modify-writes. */
    shoal_store_relaxed(&ctl->appended_batches, shoal_load_relaxed(&ctl->appended_batches) + 1);
    shoal_store_relaxed(&ctl->appended_records,
                        shoal_load_relaxed(&ctl->appended_records) + (uint64_t)b->records);
    shoal_store_relaxed(&ctl->appended_bytes, shoal_load_relaxed(&ctl->appended_bytes) + b->len);
    *base_offset = leo;
    return 0;
}

/* Called right after the append lock is released. The publish must be ordered before the
 * load of `waiters` (a StoreLoad fence, see Sleep above). On x86-64 the release is that
 * fence: unlocking a robust mutex is an atomic exchange on its word (it must learn whether
 * anyone sleeps on it), and a locked instruction drains the store buffer. A second fence
 * there cost 4.5 ns of a 75 ns one-record append. Other architectures get the fence. */
static void ring_wake_readers(ring_t *r)
{
    struct shm_readers *rd = r->rd;
#if defined(__x86_64__)
    atomic_signal_fence(memory_order_seq_cst); /* the compiler keeps the order too */
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
    if (atomic_load_explicit(&rd->waiters, memory_order_relaxed) > 0 &&
        atomic_load_explicit(&rd->armed, memory_order_relaxed) && atomic_exchange(&rd->armed, 0)) {
        atomic_fetch_add(&rd->seq, 1);
        shoal__futex_wake(&rd->seq, INT32_MAX);
    }
}

/* False only when the recorded daemon process is known to be gone. Its pid is of shoald's
 * pid namespace, which a client in another (a container) cannot check. */
static bool ring_daemon_alive(const ring_t *r)
{
    int32_t pid = atomic_load(&r->ctl->daemon_pid);
    if (r->reader_pid != 0 && r->reader_pid != (int32_t)getpid())
        return true;
    return pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH;
}

/* The process of a reader that holds views into the slot appends need next, or 0. */
static int32_t ring_next_slot_pinner(const ring_t *r)
{
    uint32_t next = (atomic_load(&r->ctl->active_slot) + 1) % r->slot_count;

    return slot_pinner(r, next, atomic_load(&r->ctl->slots[next].gen));
}

/* Wait for a slot to be freed: 0 to retry, SHOAL_AGAIN when the deadline passed. */
static int ring_wait_space(ring_t *r, uint32_t seen, int64_t deadline_ns)
{
    struct shm_ctl *ctl = r->ctl;
    int64_t left_ms = (deadline_ns - shoal__mono_ns()) / 1000000;
    int32_t pinner;

    if (left_ms <= 0) {
        int32_t io = atomic_load(&ctl->flush_error);
        if (io != 0)
            return SHOAL_ERR(SHOAL_AGAIN,
                             "ring full: shoald cannot write to disk (%s); "
                             "appended records wait in shared memory",
                             shoal_strerror(io));
        if (!ring_daemon_alive(r)) /* off the hot path: only once the wait is over */
            return SHOAL_ERR(SHOAL_AGAIN,
                             "ring full: shoald (pid %d) is not running, and the slots await "
                             "its flushing; it frees them when it starts again",
                             (int)atomic_load(&ctl->daemon_pid));
        if ((pinner = ring_next_slot_pinner(r)) != 0)
            return SHOAL_ERR(SHOAL_AGAIN,
                             "ring full: the consumer of pid %d%s holds the oldest slot (the "
                             "records of its last poll, or where it reads next) until its next "
                             "poll or shoal_consumer_release() (shoald releases one stopped "
                             "while it sleeps in a poll, not one that stopped polling)",
                             (int)pinner, pinner < 0 ? " (in another pid namespace)" : "");
        if (ctl->storage == SHOAL_STORAGE_MEMORY)
            return SHOAL_ERR(SHOAL_AGAIN, "ring full: a consumer pins the oldest slot until its "
                                          "next poll");
        return SHOAL_ERR(SHOAL_AGAIN, "ring full: every slot awaits flushing or is pinned");
    }
    /* A memory topic's slot is freed by the reader that unpins it, which does not signal:
     * look again every millisecond. A dead reader's pin waits for shoald's flusher to reap
     * it, and that flusher may be asleep: the change of space_waiters wakes it. */
    if (ctl->storage == SHOAL_STORAGE_MEMORY)
        left_ms = 1;
    /* Every time, not only from 0: shoald waits on the count it saw, which a producer killed
     * while waiting leaves raised. */
    atomic_fetch_add(&ctl->space_waiters, 1);
    if (ctl->storage == SHOAL_STORAGE_MEMORY)
        shoal__futex_wake(&ctl->space_waiters, 1);
    if (atomic_load(&ctl->space_seq) == seen)
        shoal__futex_wait(&ctl->space_seq, seen, (int)SHOAL_MIN(left_ms, 100));
    atomic_fetch_sub(&ctl->space_waiters, 1);
    return 0;
}

/* Take the append lock for an append: at once when it is free (a compare-and-swap, no
 * clock read); else wait for its holder, block_ms but RING_LOCK_WAIT_MIN_MS at least. A
 * copy holds it for microseconds, so a holder that keeps it longer is stopped (SIGSTOP, a
 * debugger) or starved: SHOAL_AGAIN, nothing appended, rather than a wait without end. */
static int ring_lock_append(ring_t *r, int block_ms)
{
    int wait_ms = SHOAL_MAX(block_ms, RING_LOCK_WAIT_MIN_MS);
    int rc = rlock_try(&r->ctl->lock, ring_repair, r);

    if (rc != -EBUSY)
        return rc;
    rc = rlock_acquire(&r->ctl->lock, wait_ms, ring_repair, r);
    if (rc == SHOAL_ETIMEDOUT)
        return SHOAL_ERR(SHOAL_AGAIN,
                         "the append lock of partition %u was held by another producer for %d "
                         "ms (a process stopped or traced inside it?): nothing appended",
                         r->ctl->partition, wait_ms);
    return rc;
}

int ring_append_fill(ring_t *r, const struct ring_batch *b, int block_ms, bool try_once,
                     int64_t *base_offset)
{
    struct shm_ctl *ctl = r->ctl;
    int64_t deadline_ns = 0;
    int rc;

    if (b->len > r->slot_bytes)
        return SHOAL_ERR(SHOAL_ETOOLARGE, "batch of %zu bytes exceeds the slot size %llu", b->len,
                         (unsigned long long)r->slot_bytes);
    for (;;) {
        uint32_t seen = atomic_load(&ctl->space_seq);
        if ((rc = ring_check_open(r)) < 0)
            return rc;
        /* Only the first attempt may give up: after waiting for room, block_ms is spent. */
        rc = try_once && deadline_ns == 0 ? rlock_try(&ctl->lock, ring_repair, r)
                                          : ring_lock_append(r, block_ms);
        if (rc < 0)
            return rc;
        rc = ring_append_locked(r, b, base_offset);
        rlock_release(&ctl->lock);
        if (rc == 0) {
            test_hook(RING_STAGE_UNLOCKED);
            ring_wake_readers(r);
            return 0;
        }
        if (rc != SHOAL_AGAIN)
            return rc;
        atomic_fetch_add_explicit(&ctl->full_events, 1, memory_order_relaxed);
        if (deadline_ns == 0)
            deadline_ns = shoal__mono_ns() + (int64_t)SHOAL_MAX(block_ms, 0) * 1000000;
        rc = ring_wait_space(r, seen, deadline_ns);
        if (rc < 0)
            return rc;
    }
}

/* The fill of ring_append(): copy an encoded batch and give it its base offset. */
static int fill_copy(uint8_t *dst, size_t len, int64_t base_offset, void *batch)
{
    memcpy(dst, batch, len);
    record_batch_set_base_offset(dst, base_offset);
    return 0;
}

int ring_append(ring_t *r, uint8_t *batch, size_t len, int32_t records, int64_t max_timestamp,
                int block_ms, int64_t *base_offset)
{
    struct ring_batch b = {.len = len,
                           .records = records,
                           .max_timestamp = max_timestamp,
                           .fill = fill_copy,
                           .arg = batch};
    return ring_append_fill(r, &b, block_ms, false, base_offset);
}

/* Raise flush_wanted to at least want. */
static void ring_want_flushed(struct shm_ctl *ctl, int64_t want)
{
    int64_t cur = atomic_load(&ctl->flush_wanted);
    while (cur < want && !atomic_compare_exchange_weak(&ctl->flush_wanted, &cur, want))
        ;
}

int ring_wait_flushed(ring_t *r, int64_t offset, int timeout_ms)
{
    struct shm_ctl *ctl = r->ctl;
    int64_t deadline_ns =
        timeout_ms < 0 ? INT64_MAX : shoal__mono_ns() + (int64_t)timeout_ms * 1000000;

    for (;;) {
        uint32_t seen = atomic_load(&ctl->flush_seq);
        int64_t left_ms;
        if (atomic_load(&ctl->flushed_offset) > offset)
            return 0;
        int rc = ring_check_open(r);
        if (rc < 0)
            return rc;
        if (!ring_daemon_alive(r))
            return SHOAL_ERR(SHOAL_ECLOSED,
                             "shoald (pid %d) is not running: offset %lld is in "
                             "shared memory, not yet on disk",
                             (int)atomic_load(&ctl->daemon_pid), (long long)offset);
        left_ms = timeout_ms < 0 ? 100 : (deadline_ns - shoal__mono_ns()) / 1000000;
        if (left_ms <= 0) {
            int32_t io = atomic_load(&ctl->flush_error);
            return SHOAL_ERR(SHOAL_ETIMEDOUT, "offset %lld not on disk after %d ms%s%s",
                             (long long)offset, timeout_ms,
                             io ? ": shoald cannot write to disk: " : "",
                             io ? shoal_strerror(io) : "");
        }
        /* The flusher sleeps on flush_waiters: changing it and waking it gets this record
         * written and fsynced now rather than at the flusher's next tick. What it fsyncs
         * for is flush_wanted, set first, so it is seen by the time the count moves: a
         * count left raised by a waiter that was killed asks for nothing more. */
        ring_want_flushed(ctl, offset + 1);
        atomic_fetch_add(&ctl->flush_waiters, SHM_FLUSH_ARRIVE);
        shoal__futex_wake((_Atomic uint32_t *)&ctl->flush_waiters, 1);
        if (atomic_load(&ctl->flushed_offset) <= offset)
            shoal__futex_wait(&ctl->flush_seq, seen, (int)SHOAL_MIN(left_ms, 100));
        atomic_fetch_sub(&ctl->flush_waiters, 1);
    }
}

/* ------------------------------------------------------------------ reading */

int ring_closed_error(const ring_t *r)
{
    if (atomic_load(&r->ctl->closed) == SHM_CLOSED_STOPPED)
        return SHOAL_ERR(SHOAL_ECORRUPT,
                         "partition %u was " RING_STOPPED_MARK ": its shared ring "
                         "is damaged, as shoald's log says",
                         r->ctl->partition);
    return SHOAL_ERR(SHOAL_ENOTOPIC, "topic was deleted");
}

int ring_cursor_open(ring_t *r, ring_cursor_t *c)
{
    int32_t me = r->reader_pid != 0 ? r->reader_pid : (int32_t)getpid();
    memset(c, 0, sizeof(*c));
    c->entry = -1;
    for (uint32_t i = 0; i < SHM_MAX_READERS; i++) {
        int32_t expected = 0;
        if (atomic_compare_exchange_strong(&r->rd->readers[i].pid, &expected, me)) {
            atomic_store(&r->rd->readers[i].pin, 0);
            c->entry = (int)i;
            return 0;
        }
    }
    return SHOAL_ERR(SHOAL_ELIMIT, "all %u reader entries of the partition are taken",
                     SHM_MAX_READERS);
}

void ring_cursor_unpin(ring_t *r, ring_cursor_t *c)
{
    if (c->entry >= 0)
        atomic_store(&r->rd->readers[c->entry].pin, 0);
    c->placed = false;
}

void ring_cursor_loosen(ring_t *r, ring_cursor_t *c)
{
    if (c->placed && c->entry >= 0)
        atomic_store(&r->rd->readers[c->entry].pin, 0);
}

void ring_cursor_tighten(ring_t *r, ring_cursor_t *c)
{
    struct shm_slot *s = &r->ctl->slots[c->slot];
    uint32_t st;

    if (!c->placed || c->entry < 0)
        return;
    atomic_store(&r->rd->readers[c->entry].pin, SHM_PIN(c->slot, c->gen)); /* seq_cst */
    st = atomic_load(&s->state);
    if ((st != SHM_SLOT_ACTIVE && st != SHM_SLOT_SEALED) || atomic_load(&s->gen) != c->gen)
        ring_cursor_unpin(r, c); /* reused while it slept (cursor_pin's protocol) */
}

void ring_cursor_close(ring_t *r, ring_cursor_t *c)
{
    if (c->entry < 0)
        return;
    ring_cursor_unpin(r, c);
    atomic_store(&r->rd->readers[c->entry].pid, 0);
    c->entry = -1;
}

/* Pin slot i at its current generation; true when it is live and the pin holds. */
static bool cursor_pin(ring_t *r, ring_cursor_t *c, uint32_t i)
{
    struct shm_slot *s = &r->ctl->slots[i];
    uint32_t gen = atomic_load(&s->gen);
    uint32_t st;

    atomic_store(&r->rd->readers[c->entry].pin, SHM_PIN(i, gen)); /* seq_cst */
    st = atomic_load(&s->state);
    if ((st == SHM_SLOT_ACTIVE || st == SHM_SLOT_SEALED) && atomic_load(&s->gen) == gen) {
        c->slot = i;
        c->gen = gen;
        c->used_seen = 0;
        c->placed = true;
        return true;
    }
    atomic_store(&r->rd->readers[c->entry].pin, 0);
    return false;
}

/* The slot whose range holds offset (or, for the log end, the active slot). */
static int cursor_find_slot(ring_t *r, ring_cursor_t *c, int64_t offset)
{
    for (uint32_t i = 0; i < r->slot_count; i++) {
        struct shm_slot *s = &r->ctl->slots[i];
        uint32_t st = atomic_load(&s->state);
        int64_t base = atomic_load(&s->base_offset);
        int64_t end = st == SHM_SLOT_SEALED ? atomic_load(&s->end_offset) : INT64_MAX;
        if ((st != SHM_SLOT_ACTIVE && st != SHM_SLOT_SEALED) || offset < base || offset >= end)
            continue;
        if (st == SHM_SLOT_SEALED && offset == end)
            continue;
        if (cursor_pin(r, c, i) && atomic_load(&s->base_offset) == base)
            return 0;
        ring_cursor_unpin(r, c);
    }
    return SHOAL_EOFFSET;
}

int ring_cursor_seek(ring_t *r, ring_cursor_t *c, int64_t offset)
{
    const uint8_t *data;
    uint64_t used, pos = 0;

    ring_cursor_unpin(r, c);
    if (offset > atomic_load(&r->ctl->log_end_offset))
        return SHOAL_ERR(SHOAL_EOFFSET, "offset %lld is past the log end", (long long)offset);
    if (cursor_find_slot(r, c, offset) < 0)
        return SHOAL_EOFFSET;
    data = r->slots[c->slot];
    used = ring_slot_used(r, c->slot);
    /* Skip whole batches that end before the offset. */
    while (pos < used) {
        record_batch_header_t h;
        if (record_batch_parse(data + pos, used - pos, &h) != 0) {
            ring_cursor_unpin(r, c);
            return SHOAL_ERR(SHOAL_ECORRUPT, "slot %u: bad batch at byte %llu", c->slot,
                             (unsigned long long)pos);
        }
        if (h.base_offset + h.last_offset_delta >= offset)
            break;
        pos += record_batch_size(&h);
    }
    c->pos = pos;
    c->next_offset = offset;
    return 0;
}

/* A cursor with a backlog asks for the lines a page ahead of the batch it returns: the
 * hardware prefetcher stops at each 4 KiB page and starts again only after a miss in the
 * next. A consumer reading 64-record batches of 32 B from the far end of the ring (memory):
 * 86-91 -> 109-113 M/s, shoal-32-b64-fetch in full runs. */
#define RING_READ_AHEAD 4096

int ring_cursor_next(ring_t *r, ring_cursor_t *c, const uint8_t **batch, record_batch_header_t *h)
{
    struct shm_slot *s = &r->ctl->slots[c->slot];
    uint64_t used;
    int rc;

    if (!ring_cursor_has_more(r, c)) {
        uint32_t st = atomic_load(&s->state);
        /* Re-read used: a final append may have landed between the two loads. */
        if ((st == SHM_SLOT_SEALED || st == SHM_SLOT_RECLAIMING) &&
            c->pos >= ring_slot_used(r, c->slot))
            return RING_SLOT_END;
        return 0;
    }
    used = c->used_seen;
    rc = record_batch_parse(r->slots[c->slot] + c->pos, used - c->pos, h);
    if (rc != 0)
        return SHOAL_ERR(SHOAL_ECORRUPT, "slot %u: bad batch at byte %llu", c->slot,
                         (unsigned long long)c->pos);
    *batch = r->slots[c->slot] + c->pos;
    if (c->pos + RING_READ_AHEAD + 4 * 64 <= used)
        for (int k = 0; k < 4; k++)
            __builtin_prefetch(*batch + RING_READ_AHEAD + 64 * k, 0, 3);
    c->pos += record_batch_size(h);
    c->next_offset = h->base_offset + h->last_offset_delta + 1;
    return 1;
}

int ring_cursor_advance(ring_t *r, ring_cursor_t *c)
{
    int64_t next = c->next_offset;
    int rc;

    if (c->placed && atomic_load(&r->ctl->slots[c->slot].state) == SHM_SLOT_SEALED)
        next = atomic_load(&r->ctl->slots[c->slot].end_offset);
    rc = ring_cursor_seek(r, c, next);
    if (rc == SHOAL_EOFFSET && next >= atomic_load(&r->ctl->log_end_offset)) {
        c->next_offset = next;
        return 0; /* the slot after it is not active yet */
    }
    return rc;
}
