/* producer.c - shoal_producer: plan outside the lock, encode in place under it.
 *
 * DESIGN: a send plans its batch (size, timestamps, limits) without the lock, then takes
 * the append lock and encodes the batch straight into the ring's slot, so each value is
 * copied once. If another producer holds the lock, it encodes into its own buffer
 * meanwhile and copies that in once the lock is free, so producers of one partition still
 * encode in parallel. The buffer grows to the largest batch sent that way and is reused,
 * so a steady stream of sends allocates nothing. Partitions are attached
 * (their ring mapped read-write) on first use. A record with a key goes to Kafka's
 * murmur2 partition; records without one are spread round-robin. Partitions added to the
 * topic (shoal_topic_alter) are followed from the count the block of the partition attached
 * at open (partition 0, unless shoald had stopped it) publishes. The whole
 * append path is plan, lock once (encode, publish), optional wait for the flushed watermark. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "client.h"
#include "partitioner.h"
#include "record.h"
#include "util.h"

struct shoal_producer {
    shoal_client_t *client;
    char topic[SHOAL_TOPIC_NAME_MAX + 1];
    shoal_topic_config_t cfg;
    shoal_producer_options_t opts;
    ring_t *rings;          /* cfg.partitions entries; ctl == NULL until attached */
    struct shm_ctl *anchor; /* of the partition attached at open (0, unless shoald had
                               stopped it): it says the topic's partition count and
                               whether the topic was deleted */
    uint8_t *buf;
    size_t buf_cap;
    uint32_t next_partition; /* round-robin cursor for null keys */
    shoal_one_thread_t one_thread;
};

void shoal_producer_options_init(shoal_producer_options_t *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof(*o));
    o->acks = SHOAL_ACKS_MEMORY;
    o->block_ms = 5000;
    o->ack_timeout_ms = 30000;
}

int shoal_producer_open(shoal_client_t *client, const char *topic,
                        const shoal_producer_options_t *opts, shoal_producer_t **out)
{
    shoal_producer_t *p;
    ring_t first;
    int32_t first_id = 0;
    char stopped[256];
    int rc;
    shoal__clear_err();
    SHOAL_NEED(client);
    SHOAL_NEED(topic);
    SHOAL_NEED(out);

    *out = NULL;
    if (!shoal_topic_name_is_valid(topic))
        return SHOAL_ERR(SHOAL_ENAME, "invalid topic name '%.260s'", topic);
    if (opts && (rc = shoal__check_reserved(opts->reserved_, sizeof(opts->reserved_), SHOAL_EINVAL,
                                            "shoal_producer_options_init")) < 0)
        return rc;
    if (opts && (opts->acks > SHOAL_ACKS_DISK || opts->block_ms < 0 || opts->ack_timeout_ms < 0))
        return SHOAL_ERR(SHOAL_EINVAL,
                         "producer options: acks %u, block_ms %d, ack_timeout_ms %d "
                         "(use shoal_producer_options_init)",
                         opts->acks, opts->block_ms, opts->ack_timeout_ms);
    if (!(p = shoal__calloc(1, sizeof(*p))))
        return -ENOMEM;
    p->client = client;
    client_hold(client);
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    if (opts)
        p->opts = *opts;
    else
        shoal_producer_options_init(&p->opts);
    /* A partition shoald stopped (its ring damaged) is that partition's problem only. */
    while ((rc = client_attach(client, topic, first_id, true, &first, &p->cfg)) == SHOAL_ECORRUPT &&
           first_id < SHOAL_PARTITIONS_MAX) {
        if (first_id++ == 0)
            snprintf(stopped, sizeof(stopped), "%s", shoal_errmsg());
    }
    if (rc == SHOAL_ENOPARTITION && first_id > 0) /* every partition is stopped */
        rc = SHOAL_ERR(SHOAL_ECORRUPT, "every partition of %s is stopped (%s)", topic, stopped);
    if (rc < 0)
        goto out_free;
    p->rings = shoal__calloc(p->cfg.partitions, sizeof(*p->rings));
    if (!p->rings) {
        ring_unmap(&first);
        rc = -ENOMEM;
        goto out_free;
    }
    p->rings[first_id] = first;
    p->anchor = first.ctl;
    /* Keyless records start at a partition of their own, as Kafka's do: short-lived
     * producers (one batch from a script) would otherwise all fill partition 0. */
    p->next_partition =
        (uint32_t)((uint64_t)shoal__mono_ns() ^ (uint64_t)getpid() << 20) % p->cfg.partitions;
    if (p->opts.acks == SHOAL_ACKS_DISK && p->cfg.storage == SHOAL_STORAGE_MEMORY) {
        shoal_producer_close(p);
        return SHOAL_ERR(SHOAL_ECONFIG, "topic %s is a memory topic: it has no disk to ack", topic);
    }
    *out = p;
    return 0;
out_free:
    client_release(client);
    shoal__free(p);
    return rc;
}

void shoal_producer_close(shoal_producer_t *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->cfg.partitions; i++)
        if (p->rings[i].ctl)
            ring_unmap(&p->rings[i]);
    shoal__free(p->rings);
    shoal__free(p->buf);
    client_release(p->client);
    shoal__free(p);
}

/* The topic has grown to `now` partitions: room for their rings, attached on first use. */
static __attribute__((noinline, cold)) void producer_grow(shoal_producer_t *p, uint32_t now)
{
    ring_t *rings;

    if (now > SHOAL_PARTITIONS_MAX || !(rings = shoal__realloc(p->rings, now * sizeof(*rings))))
        return; /* the known partitions go on serving */
    memset(rings + p->cfg.partitions, 0, (now - p->cfg.partitions) * sizeof(*rings));
    p->rings = rings;
    p->cfg.partitions = now;
}

/* Follow the topic's partition count, which shoald may have raised (shoal_topic_alter):
 * the anchor's control block says it. One load of a line nobody writes, and a compare, on
 * each send that picks a partition; 0 means not known. */
static inline void producer_follow_partitions(shoal_producer_t *p)
{
    uint32_t now = shoal_load_relaxed(&p->anchor->topic_partitions);

    if (__builtin_expect(now > p->cfg.partitions, 0))
        producer_grow(p, now);
}

uint32_t shoal_producer_partitions(shoal_producer_t *p)
{
    if (!p)
        return 0;
    producer_follow_partitions(p);
    return p->cfg.partitions;
}

static int producer_ring(shoal_producer_t *p, int32_t partition, ring_t **out);

/* A partition past the count the producer knows: added since (follow the count), or none. */
static __attribute__((noinline, cold)) int producer_ring_past(shoal_producer_t *p,
                                                              int32_t partition, ring_t **out)
{
    if (partition >= 0)
        producer_follow_partitions(p);
    if (partition < 0 || (uint32_t)partition >= p->cfg.partitions)
        return SHOAL_ERR(SHOAL_ENOPARTITION, "topic %s has no partition %d (it has %u)", p->topic,
                         partition, p->cfg.partitions);
    return producer_ring(p, partition, out);
}

/* Whether the topic this producer opened was deleted: the partition attached at open says
 * so. A topic created under its name since is another, whose partitions must not be
 * attached by name (they would take records checked against the old topic's limits). */
static bool producer_topic_deleted(const shoal_producer_t *p)
{
    return atomic_load(&p->anchor->closed) == SHM_CLOSED_DELETED;
}

/* Attach a partition on first use; after, so that a delete and create between the two
 * cannot slip through, the anchor must still say the topic is there. */
static __attribute__((noinline)) int producer_attach(shoal_producer_t *p, int32_t partition)
{
    int rc = producer_topic_deleted(p)
                 ? 0
                 : client_attach(p->client, p->topic, partition, true, &p->rings[partition], NULL);

    if (rc == 0 && !producer_topic_deleted(p))
        return 0;
    if (p->rings[partition].ctl)
        ring_unmap(&p->rings[partition]);
    if (rc < 0 && rc != SHOAL_ENOPARTITION && rc != SHOAL_ENOTOPIC)
        return rc;
    return SHOAL_ERR(SHOAL_ENOTOPIC,
                     "topic %s was deleted since this producer opened it (a topic created under "
                     "its name since is another: open a new producer for it)",
                     p->topic);
}

static int producer_ring(shoal_producer_t *p, int32_t partition, ring_t **out)
{
    int rc;
    if (__builtin_expect(partition < 0 || (uint32_t)partition >= p->cfg.partitions, 0))
        return producer_ring_past(p, partition, out);
    if (!p->rings[partition].ctl && (rc = producer_attach(p, partition)) < 0)
        return rc;
    *out = &p->rings[partition];
    return 0;
}

static int32_t producer_choose_partition(shoal_producer_t *p, const shoal_message_t *m)
{
    if (m->partition != SHOAL_PARTITION_ANY)
        return m->partition;
    producer_follow_partitions(p);
    if (m->key)
        return shoal_partition_for_key(m->key, m->key_len, p->cfg.partitions);
    uint32_t next = p->next_partition; /* no division: this is on every keyless send */
    p->next_partition = next + 1 < p->cfg.partitions ? next + 1 : 0;
    return (int32_t)next;
}

static int producer_reserve(shoal_producer_t *p, size_t need)
{
    uint8_t *nb;
    if (need <= p->buf_cap)
        return 0;
    nb = shoal__realloc(p->buf, need);
    if (!nb)
        return -ENOMEM;
    p->buf = nb;
    p->buf_cap = need;
    return 0;
}

/* Plan the batch in one pass and check it against the topic's limits. */
static int producer_plan(shoal_producer_t *p, const shoal_message_t *msgs, size_t n, int64_t now,
                         record_batch_plan_t *plan)
{
    int rc;
    if ((rc = record_batch_plan(msgs, n, now, plan)) < 0) {
        for (size_t i = 0; i < n; i++) /* the planner's EINVAL, said more precisely */
            if (msgs[i].value_len > INT32_MAX || msgs[i].key_len > INT32_MAX)
                return SHOAL_ERR(SHOAL_ETOOLARGE, "key or value longer than 2 GiB");
        return rc;
    }
    if (plan->max_one > p->cfg.max_record_bytes)
        return SHOAL_ERR(SHOAL_ETOOLARGE,
                         "record of %zu bytes exceeds topic %s's maximum of %u bytes",
                         plan->max_one, p->topic, p->cfg.max_record_bytes);
    if (plan->size > p->cfg.segment_bytes)
        return SHOAL_ERR(SHOAL_ETOOLARGE, "batch of %zu bytes exceeds the segment size %llu",
                         plan->size, (unsigned long long)p->cfg.segment_bytes);
    return 0;
}

/* Rings from this size up are written around the caches (record_batch_plan_t.stream):
 * on the machine measured, 4 KiB records into a ring of 32 MiB or less ran from the cache
 * at 145 ns each, into one of 96 MiB or more at 450 ns (every store first fetched its
 * line from memory), and with non-temporal stores at ~200 ns. */
#define PRODUCER_STREAM_RING_MIN (64ull << 20)
/* ... for batches of this size or more: the sfence that ends a streamed batch costs more
 * than the streaming saves on a smaller one (AMD EPYC, one 1 KiB record per send, far:
 * 2.0 M/s streamed, 3.3-3.8 M/s with ordinary stores). */
#define PRODUCER_STREAM_BATCH_MIN 4096

/* What fill_encode() needs to write a planned batch. */
struct producer_batch {
    const shoal_message_t *msgs;
    size_t n;
    int64_t now;
    const record_batch_plan_t *plan;
};

static int producer_encode(const struct producer_batch *e, uint8_t *dst, size_t cap,
                           int64_t base_offset, size_t *len)
{
    record_batch_fields_t fields;

    record_batch_fields_init(&fields);
    fields.base_offset = base_offset;
    return record_batch_encode_planned(dst, cap, &fields, e->msgs, e->n, e->now, e->plan, len);
}

/* Batches up to this size are encoded on the stack and then copied into the slot. The
 * encoder checksums what it has just written, and a small batch's records are many one-byte
 * stores: an 8-byte crc32 load over them cannot be forwarded from the store buffer and waits
 * until the stores reach L1, which in a slot means fetching the line a consumer has just
 * read. On the stack the line is ours and the wait is a few cycles. Measured (AMD EPYC, one
 * 32-byte record per send, busy-spin round trip): 481 -> 421 ns near, 1392 -> 1121 ns far.
 * Larger batches gain nothing and pay the copy (32-byte records in batches of 64, 2.6 KiB:
 * -5%). */
#define PRODUCER_STAGE_BYTES 512
_Static_assert(PRODUCER_STAGE_BYTES < PRODUCER_STREAM_BATCH_MIN,
               "a staged batch is never streamed: the stack copy is read back at once");

/* Encode into the slot, under the append lock (ring_fill_fn). */
static int fill_encode(uint8_t *dst, size_t len, int64_t base_offset, void *arg)
{
    const struct producer_batch *e = arg;
    uint8_t stage[PRODUCER_STAGE_BYTES] __attribute__((aligned(64)));
    size_t written;
    int rc;

    if (e->plan->size > sizeof(stage))
        return producer_encode(e, dst, len, base_offset, &written);
    if ((rc = producer_encode(e, stage, sizeof(stage), base_offset, &written)) == 0)
        memcpy(dst, stage, written);
    return rc;
}

/* The lock is taken: encode into our buffer without it, then wait for it to copy. */
static int producer_append_copy(shoal_producer_t *p, ring_t *ring, const struct producer_batch *e,
                                int64_t *base)
{
    size_t len;
    int rc;

    if ((rc = producer_reserve(p, e->plan->size)) < 0 ||
        (rc = producer_encode(e, p->buf, p->buf_cap, 0, &len)) < 0)
        return rc;
    return ring_append(ring, p->buf, len, (int32_t)e->n, e->plan->max_ts, p->opts.block_ms, base);
}

/* One record of the common shape: encoded on the stack, checksummed and all, before the
 * lock, which is then held only for the copy. 1 when it is not of that shape or larger
 * than the topic allows: producer_append() takes it (and says why). */
static int producer_append_one(shoal_producer_t *p, ring_t *ring, const shoal_message_t *m,
                               int64_t *base)
{
    uint8_t stage[PRODUCER_STAGE_BYTES] __attribute__((aligned(64)));
    int64_t now = m->timestamp_ms > 0 ? m->timestamp_ms : shoal__now_ms();
    size_t len = record_batch_encode_one(stage, sizeof(stage), m, now);

    if (len == 0 || len > p->cfg.max_record_bytes)
        return 1;
    return ring_append(ring, stage, len, 1, now, p->opts.block_ms, base);
}

/* Any batch: planned and checked, then encoded under the lock straight into the slot. */
static int producer_append(shoal_producer_t *p, ring_t *ring, const shoal_message_t *msgs, size_t n,
                           int64_t *base)
{
    record_batch_plan_t plan;
    struct producer_batch e = {.msgs = msgs, .n = n, .now = shoal__now_ms(), .plan = &plan};
    struct ring_batch b = {.fill = fill_encode, .arg = &e};
    int rc;

    if ((rc = producer_plan(p, msgs, n, e.now, &plan)) < 0)
        return rc;
    plan.stream = ring->slot_bytes * ring->slot_count >= PRODUCER_STREAM_RING_MIN &&
                  plan.size >= PRODUCER_STREAM_BATCH_MIN;
    b.len = plan.size;
    b.records = (int32_t)n;
    b.max_timestamp = plan.max_ts;
    rc = ring_append_fill(ring, &b, p->opts.block_ms, true, base);
    if (rc == -EBUSY) {
        plan.stream = false; /* our own buffer, read back at once by the copy */
        rc = producer_append_copy(p, ring, &e, base);
    }
    return rc;
}

/* A batch placed by msgs[0]'s key goes to one partition: a later key of another partition
 * would break "the same key, the same partition", which per-key order and compaction rest
 * on. Keyless messages go with the batch. */
static int producer_check_keys(const shoal_producer_t *p, const shoal_message_t *msgs, size_t n,
                               int32_t partition)
{
    for (size_t i = 1; i < n; i++) {
        int32_t want;
        if (!msgs[i].key || (want = shoal_partition_for_key(msgs[i].key, msgs[i].key_len,
                                                            p->cfg.partitions)) == partition)
            continue;
        return SHOAL_ERR(SHOAL_EINVAL,
                         "message %zu's key goes to partition %d, and the batch, placed by the "
                         "first key, to %d: send records of other partitions in batches of "
                         "their own",
                         i, want, partition);
    }
    return 0;
}

static int producer_send(shoal_producer_t *p, const shoal_message_t *msgs, size_t n,
                         shoal_ack_t *ack)
{
    int64_t base;
    int32_t partition;
    ring_t *ring;
    int rc;

    if (!msgs || n == 0 || n > INT32_MAX)
        return SHOAL_ERR(SHOAL_EINVAL, "send needs at least one message (msgs %s, n %zu)",
                         msgs ? "set" : "NULL", n);
    partition = producer_choose_partition(p, &msgs[0]);
    if (n > 1 && msgs[0].key && msgs[0].partition == SHOAL_PARTITION_ANY &&
        (rc = producer_check_keys(p, msgs, n, partition)) < 0)
        return rc;
    if ((rc = producer_ring(p, partition, &ring)) < 0)
        return rc;
    if (n != 1 || (rc = producer_append_one(p, ring, msgs, &base)) > 0)
        rc = producer_append(p, ring, msgs, n, &base);
    if (rc < 0)
        return rc;
    if (ack) {
        ack->partition = partition;
        ack->offset = base;
    }
    if (p->opts.acks == SHOAL_ACKS_DISK)
        return ring_wait_flushed(ring, base + (int64_t)n - 1, p->opts.ack_timeout_ms);
    return 0;
}

int shoal_send_batch(shoal_producer_t *p, const shoal_message_t *msgs, size_t n, shoal_ack_t *ack)
{
    int entered, rc;

    shoal__clear_err();
    SHOAL_NEED(p);
    if ((entered = shoal__enter(&p->one_thread, "producer")) < 0)
        return entered;
    rc = producer_send(p, msgs, n, ack);
    shoal__leave(&p->one_thread, entered);
    return rc;
}

int shoal_send(shoal_producer_t *p, const shoal_message_t *msg, shoal_ack_t *ack)
{
    SHOAL_NEED(p); /* named for this call rather than shoal_send_batch */
    return shoal_send_batch(p, msg, 1, ack);
}

static int producer_wait(shoal_producer_t *p, int32_t partition, int64_t offset, shoal_acks_t level,
                         int timeout_ms)
{
    ring_t *ring;
    int rc;

    if (timeout_ms < -1)
        return SHOAL_ERR(SHOAL_EINVAL, "timeout_ms %d: 0 or more, or -1 to wait for ever",
                         timeout_ms);
    if ((rc = producer_ring(p, partition, &ring)) < 0)
        return rc;
    if (offset < 0 || offset >= atomic_load(&ring->ctl->log_end_offset))
        return SHOAL_ERR(SHOAL_EINVAL, "offset %lld was not appended", (long long)offset);
    if (level == SHOAL_ACKS_MEMORY)
        return 0;
    if (level != SHOAL_ACKS_DISK)
        return SHOAL_ERR(SHOAL_EINVAL, "unknown acknowledgement level %d", (int)level);
    if (p->cfg.storage == SHOAL_STORAGE_MEMORY)
        return SHOAL_ERR(SHOAL_ECONFIG, "topic %s is a memory topic: it has no disk", p->topic);
    return ring_wait_flushed(ring, offset, timeout_ms);
}

int shoal_producer_wait(shoal_producer_t *p, int32_t partition, int64_t offset, shoal_acks_t level,
                        int timeout_ms)
{
    int entered, rc;

    shoal__clear_err();
    SHOAL_NEED(p);
    if ((entered = shoal__enter(&p->one_thread, "producer")) < 0)
        return entered;
    rc = producer_wait(p, partition, offset, level, timeout_ms);
    shoal__leave(&p->one_thread, entered);
    return rc;
}
