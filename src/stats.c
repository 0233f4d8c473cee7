/* stats.c - shoal_partition_stats: a partition's counters, read from shared memory.
 *
 * DESIGN: the counters live in the control block (shm_layout.h), written with relaxed
 * atomics by producers and the daemon. Reading them needs only a read-only attach, the
 * same one a consumer makes, so `shoal stats` never takes the append lock and never
 * slows the data path down. */
#include <string.h>

#include "client.h"
#include "util.h"

static void stats_read(const ring_t *r, shoal_partition_stats_t *out)
{
    const struct shm_ctl *ctl = r->ctl;
    uint32_t waiters, flusher;

    memset(out, 0, sizeof(*out));
    out->partition = (int32_t)ctl->partition;
    out->log_start_offset = atomic_load(&ctl->log_start_offset);
    out->log_end_offset = atomic_load(&ctl->log_end_offset);
    out->flushed_offset = atomic_load(&ctl->flushed_offset);
    out->appended_batches = atomic_load(&ctl->appended_batches);
    out->appended_records = atomic_load(&ctl->appended_records);
    out->appended_bytes = atomic_load(&ctl->appended_bytes);
    out->lock_recoveries = atomic_load(&ctl->lock_recoveries);
    out->full_events = atomic_load(&ctl->full_events);
    out->fsyncs = atomic_load(&ctl->fsyncs);
    out->shm_bytes = ring_live_bytes(r);
    out->ring_slots = r->slot_count;
    out->flush_error = atomic_load(&ctl->flush_error);
    /* readers only: shoald's flusher, asleep on an idle partition, counts in waiters too */
    waiters = atomic_load(&r->rd->waiters);
    flusher = atomic_load(&r->rd->daemon_sleeping);
    out->waiters = waiters > flusher ? waiters - flusher : 0;
    for (uint32_t i = 0; i < r->slot_count; i++) {
        uint32_t st = atomic_load(&ctl->slots[i].state);
        out->live_slots += st == SHM_SLOT_ACTIVE || st == SHM_SLOT_SEALED;
    }
    for (uint32_t i = 0; i < SHM_MAX_READERS; i++)
        out->readers += atomic_load(&r->rd->readers[i].pid) != 0;
}

int shoal_partition_stats(shoal_client_t *c, const char *topic, int32_t partition,
                          shoal_partition_stats_t *out)
{
    ring_t ring;
    int rc;

    shoal__clear_err();
    SHOAL_NEED(c);
    SHOAL_NEED(topic);
    SHOAL_NEED(out);
    if ((rc = client_attach(c, topic, partition, false, &ring, NULL)) < 0)
        return rc;
    stats_read(&ring, out);
    ring_unmap(&ring);
    return 0;
}
