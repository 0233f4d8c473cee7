/* consumer.c - shoal_consumer: lock-free reads from shared memory and disk segments.
 *
 * DESIGN: each assigned partition has a read-only mapping of its ring, a ring cursor that
 * pins the slot it reads, and a position (the next offset to return). Records are handed
 * out as views; a view stays valid until the next poll because within one poll a
 * partition never moves its cursor off a slot (or disk segment) it has returned records
 * from: it stops there and moves on at the start of the next poll.
 *
 * Offsets below the ring's live slots are read from disk: shoald passes a read-only
 * descriptor of the segment that holds them, which the consumer maps; disk batches always
 * have their CRC checked. When the segment's end is reached the consumer returns to the
 * ring, or asks for the next segment. Asking waits for shoald 100 ms at most, and once it
 * went unanswered (stopped, hung) only for what is left of the poll: the partition then
 * has nothing to read yet, and the poll keeps to its timeout.
 *
 * When every partition is caught up, poll announces itself as a waiter on each ring,
 * checks once more, and sleeps in one futex_waitv over all their wake words (ring.c has
 * the protocol). A producer wakes it with one system call; an idle consumer uses no CPU.
 * Before sleeping it may spin (options.wait): SHOAL_WAIT_DEFAULT watches the partitions'
 * published positions for spin_ns (or, while data has recently come a little later than
 * that, up to 40 x spin_ns: consumer_spin_budget), SHOAL_WAIT_SPIN until the timeout,
 * SHOAL_WAIT_FUTEX not at all. A spinning consumer is not counted in `waiters`, so a producer that
 * finds it spinning makes no wake-up system call; only plain loads touch the shared lines. When the
 * thread shares its CPU with other runnable threads (it was preempted lately) and a partition's
 * last append came from this CPU, the default strategy spins with sched_yield() instead of
 * pause: in a fan-out on few CPUs the producer and the other consumers run in its turn, and no
 * sleeper costs the producer a wake-up.
 * With fetch_min_bytes a poll that finds some data but less than that waits the same way
 * for the rest (consumer_gather), up to fetch_max_wait_us, so that it reads behind a
 * streaming producer rather than on the lines the producer is writing.
 * A poll touches, per partition, the slot descriptor line it reads (`used`, `state`) and
 * the batch; it writes no shared line and reads no line an append writes besides those.
 *
 * Errors are per partition: a poll returns a partition's error once (consumer_fill), then
 * passes over that partition as caught up while it fails the same way at the same
 * position, so a deleted topic or a damaged batch never starves the other partitions. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "client.h"
#include "group_consumer.h"
#include "record.h"
#include "util.h"

#define CONSUMER_WAIT_MAX 128 /* futex_waitv's limit; more partitions are polled in turns */
/* Looking for other runnable threads (getrusage) at most this often while waiting. */
#define CONSUMER_SHARED_CHECK_NS 100000
/* A sched_yield() that returns sooner ran nobody else (it costs ~200 ns alone here). */
#define CONSUMER_YIELD_ALONE_NS 2000
/* Gathering for fetch_min_bytes, look at the partitions after this many pauses (~1 us). */
#define CONSUMER_GATHER_PAUSES 100
/* A segment lookup waits for shoald's answer this long at most (consumer_lookup_deadline). */
#define CONSUMER_LOOKUP_WAIT_MS 100

struct consumer_part {
    char *topic; /* this partition's own copy */
    int32_t partition;
    ring_t ring;
    ring_cursor_t cur;
    int64_t position;
    client_segment_t seg; /* the disk segment being read, when data != NULL */
    uint64_t seg_pos;
    client_segment_t retired; /* a segment whose views the caller may still hold */
    bool from_start;          /* seeked to the beginning: follow the log start until placed */
    bool read_since_seek;     /* records came since the position was last set (seek, assign) */
    bool seek_due;            /* sought since the last poll, whose views hold the ring's pin
                               * and the segment until the next poll (part_seek_finish) */
    bool paused;              /* shoal_consumer_pause(): polls pass it by, holding no slot */
    int pending;              /* an error to report at the next poll (records went out first) */
    char pending_msg[256];
    /* The error a poll last returned for this partition and the position it left it at;
     * 0 once the partition reads again or is sought. The same failure at the same position
     * is then not returned again: the partition counts as caught up (consumer_fill). */
    int shown;
    int64_t shown_pos;
    /* A poll that filled its array inside a batch leaves its iterator here, so the next
     * one goes on from there instead of decoding the batch again from its first record
     * (a consumer polling one record at a time would otherwise decode each batch n^2/2
     * times). Used only while the same batch, at the same base offset, comes up again at
     * the same position. */
    const uint8_t *resume_batch;
    int64_t resume_base;
    int64_t resume_pos;
    record_iter_t resume_it;
    uint32_t last_batch_bytes; /* the size of the last batch read: where the next may end */
    uint64_t full_seen;        /* full_events at part_yield's last look, when full_noted, */
    uint32_t full_slot;        /* ... at this slot while it held this generation */
    uint32_t full_gen;
    bool full_noted;
};

struct shoal_consumer {
    shoal_client_t *client;
    shoal_consumer_options_t opts;
    struct consumer_part *parts;
    size_t nparts;
    size_t next_part;     /* where the next poll starts, for fairness */
    struct cgroup *group; /* group membership (group_consumer.c), or NULL */
    /* SHOAL_WAIT_DEFAULT: is this thread's CPU shared with other runnable threads? */
    int64_t shared_checked_ns; /* when it was last looked at */
    long nivcsw;               /* involuntary context switches at that time */
    bool cpu_shared;           /* some since the look before: spin by yielding */
    int64_t wait_avg_ns;       /* recent waits for data that ended with data (average) */
    uint64_t want_bytes;       /* this poll waits for this many ready bytes; 0: for any */
    uint32_t forks;            /* shoal__forks at open: another value, inherited (fork) */
    int32_t opener;            /* the pid that opened it */
    /* For segment lookups (consumer_lookup_deadline): the timeout and deadline of the poll
     * in progress (0 until it reads the clock); whether a lookup of this fill went
     * unanswered, and when it began; whether the last lookup went unanswered (in an
     * earlier poll too). */
    int poll_timeout_ms;
    int64_t poll_deadline;
    bool lookup_late;
    int64_t lookup_began;
    bool lookup_unanswered;
    _Atomic uint32_t wakeup; /* shoal_consumer_wakeup(): 1 until a poll returns it (a futex) */
    /* Partitions an assign left out because they could not be attached (shoald stopped
     * them): how many since the last poll, and why the first was; the next poll says so. */
    uint32_t left_out;
    char left_out_why[256];
    shoal_one_thread_t one_thread;
};

/* Another thread is inside (rc): refused. A child of fork() inherits the mark of a thread
 * that was inside at the fork, so there the fork is what to say. */
static __attribute__((noinline, cold)) int consumer_busy(const shoal_consumer_t *c, int rc)
{
    return shoal__inherited(c->forks) ? consumer__check_owner(c) : rc;
}

/* consumer__enter(), inline for the poll path. */
static inline int consumer_enter(shoal_consumer_t *c)
{
    int rc = shoal__enter(&c->one_thread, "consumer");
    return __builtin_expect(rc < 0, 0) ? consumer_busy(c, rc) : rc;
}

int consumer__enter(shoal_consumer_t *c)
{
    return consumer_enter(c);
}

void consumer__leave(shoal_consumer_t *c, int entered)
{
    shoal__leave(&c->one_thread, entered);
}

void shoal_consumer_options_init(shoal_consumer_options_t *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof(*o));
    o->check_crcs = false;
    o->wait = SHOAL_WAIT_DEFAULT;
    o->spin_ns = SHOAL_WAIT_SPIN_NS_DEFAULT;
    o->fetch_min_bytes = 1;
    o->fetch_max_wait_us = SHOAL_FETCH_MAX_WAIT_US_DEFAULT;
    /* consumer groups: Kafka's defaults where they fit a single host */
    o->session_timeout_ms = 10000;
    o->max_poll_interval_ms = 300000;
    o->heartbeat_interval_ms = 100;
    o->auto_commit = true;
    o->auto_commit_interval_ms = 5000;
    o->auto_offset_reset = SHOAL_OFFSET_RESET_LATEST;
}

int shoal_consumer_open(shoal_client_t *client, const shoal_consumer_options_t *opts,
                        shoal_consumer_t **out)
{
    shoal_consumer_t *c;
    int rc;
    shoal__clear_err();
    SHOAL_NEED(client);
    SHOAL_NEED(out);

    *out = NULL;
    if (opts && opts->wait > SHOAL_WAIT_SPIN)
        return SHOAL_ERR(SHOAL_EINVAL, "unknown wait strategy %u", opts->wait);
    if (opts && opts->auto_offset_reset > SHOAL_OFFSET_RESET_EARLIEST)
        return SHOAL_ERR(SHOAL_EINVAL, "unknown auto_offset_reset %u", opts->auto_offset_reset);
    if (opts && (rc = shoal__check_reserved(opts->reserved_, sizeof(opts->reserved_), SHOAL_EINVAL,
                                            "shoal_consumer_options_init")) < 0)
        return rc;
    if (!(c = shoal__calloc(1, sizeof(*c))))
        return -ENOMEM;
    c->client = client;
    c->forks = shoal__forks_at_open();
    c->opener = (int32_t)getpid();
    if (opts)
        c->opts = *opts;
    else
        shoal_consumer_options_init(&c->opts);
    if (opts && opts->group_id) {
        if ((rc = cgroup_new(&c->group, opts, client)) < 0) {
            shoal__free(c);
            return rc;
        }
    }
    client_hold(client);
    *out = c;
    return 0;
}

static void part_release(struct consumer_part *cp)
{
    shoal__free(cp->topic);
    cp->topic = NULL;
    ring_cursor_close(&cp->ring, &cp->cur);
    ring_unmap(&cp->ring);
    client_segment_close(&cp->seg);
    client_segment_close(&cp->retired);
}

/* After a seek, at the next poll (or a release), when the last poll's views are over:
 * drop the ring pin and the segment of the old position, so that the new one is placed.
 * The seek itself used to drop them, and a view of that poll then read another record's
 * bytes (a reused slot) or faulted (an unmapped segment): an exploratory session. */
static void part_seek_finish(struct consumer_part *cp)
{
    ring_cursor_unpin(&cp->ring, &cp->cur);
    client_segment_close(&cp->seg);
    cp->seek_due = false;
}

/* The views the last poll returned are over (a new poll, a release): drop what only they
 * held, the segment read to its end and, after a seek, the old position's pin and segment. */
static void part_views_over(struct consumer_part *cp)
{
    if (cp->retired.data)
        client_segment_close(&cp->retired);
    if (__builtin_expect(cp->seek_due, 0))
        part_seek_finish(cp);
}

int consumer__check_owner(const shoal_consumer_t *c)
{
    if (shoal__inherited(c->forks))
        return SHOAL_ERR(SHOAL_EINVAL,
                         "this consumer belongs to process %d: a child of fork() may only "
                         "close it",
                         c->opener);
    return 0;
}

/* A child of fork() that closes a consumer it inherited frees its own memory and mappings
 * only: the reader entries (with their pins and sleeping flags) and the group membership
 * are the opener's, which still reads through them. */
int shoal_consumer_close(shoal_consumer_t *c)
{
    bool inherited;
    int rc;

    shoal__clear_err();
    if (!c)
        return 0;
    inherited = shoal__inherited(c->forks);
    if (!inherited && (rc = consumer__enter(c)) < 0) /* it would free what that one uses */
        return rc;
    if (cgroup_in_callback(c->group)) /* nested (rc 0): the call running it uses it still */
        return SHOAL_ERR(SHOAL_EINVAL, "shoal_consumer_close() inside the consumer's own "
                                       "callback: close it once the call that ran it returns");
    rc = cgroup_close(c, c->group, inherited);
    for (size_t i = 0; i < c->nparts; i++) {
        if (inherited)
            c->parts[i].cur.entry = -1; /* not ours to clear */
        part_release(&c->parts[i]);
    }
    shoal__free(c->parts);
    client_release(c->client);
    shoal__free(c);
    return rc;
}

void shoal_consumer_release(shoal_consumer_t *c)
{
    int entered;

    if (!c || shoal__inherited(c->forks) || (entered = consumer__enter(c)) < 0)
        return;                              /* another thread inside: not this one's to change */
    for (size_t i = 0; i < c->nparts; i++) { /* the next poll places them again */
        ring_cursor_unpin(&c->parts[i].ring, &c->parts[i].cur);
        part_views_over(&c->parts[i]);
    }
    consumer__leave(c, entered);
}

static int not_assigned(const char *topic, int32_t partition)
{
    return SHOAL_ERR(SHOAL_ENOPARTITION, "%s-%d is not assigned to this consumer", topic,
                     partition);
}

static struct consumer_part *consumer_find(shoal_consumer_t *c, const char *topic, int32_t p)
{
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i].partition == p && !strcmp(c->parts[i].topic, topic))
            return &c->parts[i];
    return NULL;
}

/* Attach one partition into parts[c->nparts] (capacity already reserved), waiting for
 * shoald until deadline_ns at most. */
static int consumer_attach_one(shoal_consumer_t *c, const char *topic, int32_t p,
                               shoal_topic_config_t *cfg, int64_t deadline_ns)
{
    struct consumer_part *cp = &c->parts[c->nparts];
    int rc;

    memset(cp, 0, sizeof(*cp));
    cp->cur.entry = -1;
    if (!(cp->topic = shoal__strdup(topic)))
        return -ENOMEM;
    rc = client_attach_until(c->client, topic, p, false, &cp->ring, cfg, deadline_ns);
    if (rc == 0 && (rc = ring_cursor_open(&cp->ring, &cp->cur)) < 0)
        ring_unmap(&cp->ring);
    if (rc < 0) {
        shoal__free(cp->topic);
        return rc;
    }
    cp->partition = p;
    cp->position = atomic_load(&cp->ring.ctl->log_end_offset);
    c->nparts++;
    return 0;
}

static int consumer_check_new(shoal_consumer_t *c, const char *topic, const int32_t *parts,
                              size_t n)
{
    if (!shoal_topic_name_is_valid(topic))
        return SHOAL_ERR(SHOAL_ENAME, "invalid topic name '%.260s'", topic);
    if (n && !parts)
        return SHOAL_ERR(SHOAL_EINVAL, "%zu partitions without an array", n);
    for (size_t i = 0; i < n; i++) {
        if (parts[i] < 0 || parts[i] >= SHOAL_PARTITIONS_MAX)
            return SHOAL_ERR(SHOAL_ENOPARTITION, "no partition %d", parts[i]);
        if (consumer_find(c, topic, parts[i]))
            return SHOAL_ERR(SHOAL_EINVAL, "partition %s-%d is already assigned", topic, parts[i]);
        for (size_t j = 0; j < i; j++)
            if (parts[j] == parts[i])
                return SHOAL_ERR(SHOAL_EINVAL, "partition %d is listed twice", parts[i]);
    }
    if (n == 0)
        for (size_t i = 0; i < c->nparts; i++)
            if (!strcmp(c->parts[i].topic, topic))
                return SHOAL_ERR(SHOAL_EINVAL, "topic %s is already assigned", topic);
    return 0;
}

static int consumer_grow(shoal_consumer_t *c, size_t more)
{
    struct consumer_part *np = shoal__realloc(c->parts, (c->nparts + more) * sizeof(*np));
    if (!np)
        return -ENOMEM;
    c->parts = np;
    return 0;
}

/* Release the partitions assigned from index first on. */
static void consumer_undo(shoal_consumer_t *c, size_t first)
{
    while (c->nparts > first)
        part_release(&c->parts[--c->nparts]);
}

/* The partitions listed, all of them or none. */
static int consumer_assign_listed(shoal_consumer_t *c, const char *topic, const int32_t *partitions,
                                  size_t n, int64_t deadline)
{
    size_t first = c->nparts;
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++)
        rc = consumer_attach_one(c, topic, partitions[i], NULL, deadline);
    if (rc < 0)
        consumer_undo(c, first);
    return rc;
}

/* A partition of an assign could not be attached (SHOAL_ECORRUPT: shoald stopped it, as
 * shoal_errmsg() says): the others go on, and the next poll says so (consumer_left_out). */
static void consumer_note_left_out(shoal_consumer_t *c)
{
    if (c->left_out++ == 0)
        snprintf(c->left_out_why, sizeof(c->left_out_why), "%s", shoal_errmsg());
}

/* Every partition of the topic; the first that attaches says how many there are. One that
 * shoald stopped is left out (consumer_note_left_out); any other failure undoes it all. */
static int consumer_assign_all(shoal_consumer_t *c, const char *topic, int64_t deadline)
{
    size_t first = c->nparts;
    uint32_t left_before = c->left_out;
    shoal_topic_config_t cfg;
    int32_t p = 0;
    int rc;

    while ((rc = consumer_attach_one(c, topic, p, &cfg, deadline)) == SHOAL_ECORRUPT &&
           p + 1 < SHOAL_PARTITIONS_MAX) {
        consumer_note_left_out(c);
        p++;
    }
    if (rc == SHOAL_ENOPARTITION && p > 0) { /* every partition is stopped */
        c->left_out = left_before;
        return SHOAL_ERR(SHOAL_ECORRUPT, "every partition of %s is stopped (%s)", topic,
                         c->left_out_why);
    }
    if (rc == 0)
        rc = consumer_grow(c, cfg.partitions);
    for (p++; rc == 0 && p < (int32_t)cfg.partitions; p++)
        if ((rc = consumer_attach_one(c, topic, p, NULL, deadline)) == SHOAL_ECORRUPT) {
            consumer_note_left_out(c);
            rc = 0;
        }
    if (rc < 0) {
        consumer_undo(c, first);
        c->left_out = left_before;
    }
    return rc;
}

/* The poll after an assign that left partitions out fails once, saying which. */
static int consumer_left_out(shoal_consumer_t *c)
{
    uint32_t n = c->left_out;

    c->left_out = 0;
    if (n == 1)
        return SHOAL_ERR(SHOAL_ECORRUPT,
                         "a partition " RING_STOPPED_MARK " was left out of the assignment, "
                         "the others are read: %s",
                         c->left_out_why);
    return SHOAL_ERR(SHOAL_ECORRUPT,
                     "%u partitions " RING_STOPPED_MARK " were left out of the assignment, the "
                     "others are read; the first: %s",
                     n, c->left_out_why);
}

static int consumer_assign(shoal_consumer_t *c, const char *topic, const int32_t *partitions,
                           size_t n)
{
    int64_t deadline = client_deadline(c->client);
    int rc;

    if ((rc = consumer__check_owner(c)) < 0)
        return rc;
    if (cgroup_subscribed(c->group))
        return SHOAL_ERR(SHOAL_EINVAL, "the consumer is subscribed to a group: no manual assign");
    if ((rc = consumer_check_new(c, topic, partitions, n)) < 0)
        return rc;
    if ((rc = consumer_grow(c, n ? n : 1)) < 0)
        return rc;
    return n > 0 ? consumer_assign_listed(c, topic, partitions, n, deadline)
                 : consumer_assign_all(c, topic, deadline);
}

int consumer__assign_until(shoal_consumer_t *c, const char *topic, int32_t partition,
                           int64_t deadline_ns)
{
    int rc = consumer_check_new(c, topic, &partition, 1);

    if (rc == 0)
        rc = consumer_grow(c, 1);
    if (rc == 0 &&
        (rc = consumer_attach_one(c, topic, partition, NULL, deadline_ns)) == SHOAL_ECORRUPT) {
        consumer_note_left_out(c);
        return 1;
    }
    return rc;
}

/* Whether partition p is among the n listed (n 0: every partition is). */
static bool part_listed(const int32_t *parts, size_t n, int32_t p)
{
    for (size_t i = 0; i < n; i++)
        if (parts[i] == p)
            return true;
    return n == 0;
}

static int consumer_check_gone(shoal_consumer_t *c, const char *topic, const int32_t *parts,
                               size_t n)
{
    if (n && !parts)
        return SHOAL_ERR(SHOAL_EINVAL, "%zu partitions without an array", n);
    for (size_t i = 0; i < n; i++) {
        if (!consumer_find(c, topic, parts[i]))
            return not_assigned(topic, parts[i]);
        for (size_t j = 0; j < i; j++)
            if (parts[j] == parts[i])
                return SHOAL_ERR(SHOAL_EINVAL, "partition %d is listed twice", parts[i]);
    }
    for (size_t i = 0; n == 0 && i < c->nparts; i++)
        if (!strcmp(c->parts[i].topic, topic))
            return 0;
    return n ? 0 : SHOAL_ERR(SHOAL_ENOPARTITION, "no partition of %s is assigned", topic);
}

static int consumer_unassign(shoal_consumer_t *c, const char *topic, const int32_t *partitions,
                             size_t n)
{
    size_t kept = 0;
    int rc;

    if ((rc = consumer__check_owner(c)) < 0)
        return rc;
    if (cgroup_subscribed(c->group))
        return SHOAL_ERR(SHOAL_EINVAL, "the consumer is subscribed to a group: no manual unassign");
    if ((rc = consumer_check_gone(c, topic, partitions, n)) < 0)
        return rc;
    for (size_t i = 0; i < c->nparts; i++) { /* the others keep their order */
        struct consumer_part *cp = &c->parts[i];
        if (!strcmp(cp->topic, topic) && part_listed(partitions, n, cp->partition))
            part_release(cp);
        else
            c->parts[kept++] = *cp;
    }
    c->nparts = kept;
    c->next_part = 0;
    return 0;
}

static int consumer_seek_one(struct consumer_part *cp, shoal_seek_t whence, int64_t offset)
{
    switch (whence) {
    case SHOAL_SEEK_BEGINNING:
        cp->position = atomic_load(&cp->ring.ctl->log_start_offset);
        cp->from_start = true;
        break;
    case SHOAL_SEEK_END:
        cp->position = atomic_load(&cp->ring.ctl->log_end_offset);
        break;
    case SHOAL_SEEK_OFFSET:
        if (offset < 0)
            return SHOAL_ERR(SHOAL_EINVAL, "negative offset %lld", (long long)offset);
        cp->position = offset;
        break;
    default:
        return SHOAL_ERR(SHOAL_EINVAL, "unknown seek mode %d", (int)whence);
    }
    if (whence != SHOAL_SEEK_BEGINNING)
        cp->from_start = false;
    cp->read_since_seek = false;
    cp->shown = 0; /* a failure met again after a seek is reported again */
    cp->seek_due = true;
    return 0;
}

/* SHOAL_SEEK_TIMESTAMP becomes SHOAL_SEEK_OFFSET once the daemon has turned the timestamp
 * into an offset; a round trip per partition is fine for something this rare. */
static int consumer_seek_time(shoal_consumer_t *c, struct consumer_part *cp, int64_t ts_ms)
{
    int64_t offset;
    int rc;

    if (ts_ms < 0)
        return SHOAL_ERR(SHOAL_EINVAL, "negative timestamp %lld", (long long)ts_ms);
    rc = client_offset_for_time(c->client, cp->topic, cp->partition, ts_ms, &offset);
    if (rc < 0)
        return rc;
    return consumer_seek_one(cp, SHOAL_SEEK_OFFSET, offset);
}

static int consumer_seek(shoal_consumer_t *c, const char *topic, int32_t partition,
                         shoal_seek_t whence, int64_t offset)
{
    bool found = false;
    int rc;

    if ((rc = consumer__check_owner(c)) < 0)
        return rc;
    if (partition < -1)
        return SHOAL_ERR(SHOAL_ENOPARTITION, "no partition %d (-1 seeks them all)", partition);
    for (size_t i = 0; i < c->nparts; i++) {
        struct consumer_part *cp = &c->parts[i];
        if (strcmp(cp->topic, topic) || (partition >= 0 && cp->partition != partition))
            continue;
        if (whence == SHOAL_SEEK_TIMESTAMP)
            rc = consumer_seek_time(c, cp, offset);
        else
            rc = consumer_seek_one(cp, whence, offset);
        if (rc < 0)
            return rc;
        found = true;
    }
    if (!found)
        return not_assigned(topic, partition);
    return 0;
}

/* The next offset the partition will read: a seek to the beginning follows the log start
 * until the partition is placed there (part_place), as Kafka's seekToBeginning is lazy. */
static int64_t part_position(const struct consumer_part *cp)
{
    if (cp->from_start)
        return SHOAL_MAX(cp->position, (int64_t)atomic_load(&cp->ring.ctl->log_start_offset));
    return cp->position;
}

static int64_t consumer_position(shoal_consumer_t *c, const char *topic, int32_t partition)
{
    struct consumer_part *cp;

    if (!(cp = consumer_find(c, topic, partition)))
        return not_assigned(topic, partition);
    return part_position(cp);
}

/* The calls that change the consumer, or read what its thread changes, run as its one
 * thread (shoal_one_thread_t); shoal_consumer_wakeup() is the one that may run beside.
 * Their arguments are checked here, so that a NULL is named by the public call. */

int shoal_consumer_assign(shoal_consumer_t *c, const char *topic, const int32_t *partitions,
                          size_t n)
{
    SHOAL_NEED(topic);
    CONSUMER_CALL(c, consumer_assign(c, topic, partitions, n));
}

int shoal_consumer_unassign(shoal_consumer_t *c, const char *topic, const int32_t *partitions,
                            size_t n)
{
    SHOAL_NEED(topic);
    CONSUMER_CALL(c, consumer_unassign(c, topic, partitions, n));
}

int shoal_consumer_seek(shoal_consumer_t *c, const char *topic, int32_t partition,
                        shoal_seek_t whence, int64_t offset)
{
    SHOAL_NEED(topic);
    CONSUMER_CALL(c, consumer_seek(c, topic, partition, whence, offset));
}

int64_t shoal_consumer_position(shoal_consumer_t *c, const char *topic, int32_t partition)
{
    SHOAL_NEED(topic);
    CONSUMER_CALL(c, consumer_position(c, topic, partition));
}

static int consumer_assignment(shoal_consumer_t *c, shoal_topic_partition_offset_t *out, size_t cap)
{
    if (!out && cap)
        return SHOAL_ERR(SHOAL_EINVAL, "shoal_consumer_assignment: out is NULL with cap %zu", cap);
    for (size_t i = 0; i < c->nparts && i < cap; i++)
        out[i] = (shoal_topic_partition_offset_t){.topic = c->parts[i].topic,
                                                  .partition = c->parts[i].partition,
                                                  .offset = part_position(&c->parts[i])};
    return (int)c->nparts;
}

int shoal_consumer_assignment(shoal_consumer_t *c, shoal_topic_partition_offset_t *out, size_t cap)
{
    CONSUMER_CALL(c, consumer_assignment(c, out, cap));
}

/* Pause (on) or resume a partition, or all of a topic's with partition -1. */
static int consumer_pause(shoal_consumer_t *c, const char *topic, int32_t partition, bool on)
{
    bool found = false;
    int rc;

    if ((rc = consumer__check_owner(c)) < 0)
        return rc;
    if (partition < -1)
        return SHOAL_ERR(SHOAL_ENOPARTITION, "no partition %d (-1 is all of the topic's)",
                         partition);
    for (size_t i = 0; i < c->nparts; i++) {
        struct consumer_part *cp = &c->parts[i];
        if (strcmp(cp->topic, topic) || (partition >= 0 && cp->partition != partition))
            continue;
        /* Its slot and segment go at the next poll, once this one's views are over, as
         * after a seek; a resumed one is placed at its position again. */
        if (on && !cp->paused)
            cp->seek_due = true;
        cp->paused = on;
        found = true;
    }
    if (!found)
        return not_assigned(topic, partition);
    return 0;
}

int shoal_consumer_pause(shoal_consumer_t *c, const char *topic, int32_t partition)
{
    SHOAL_NEED(topic);
    CONSUMER_CALL(c, consumer_pause(c, topic, partition, true));
}

int shoal_consumer_resume(shoal_consumer_t *c, const char *topic, int32_t partition)
{
    SHOAL_NEED(topic);
    CONSUMER_CALL(c, consumer_pause(c, topic, partition, false));
}

static int consumer_paused(shoal_consumer_t *c, const char *topic, int32_t partition)
{
    struct consumer_part *cp = consumer_find(c, topic, partition);

    if (!cp)
        return not_assigned(topic, partition);
    return cp->paused;
}

int shoal_consumer_paused(shoal_consumer_t *c, const char *topic, int32_t partition)
{
    SHOAL_NEED(topic);
    CONSUMER_CALL(c, consumer_paused(c, topic, partition));
}

/* ------------------------------------------------------------------ decoding */

/* Emit the records of one batch at or after cp->position into out[0..max). Returns how
 * many; *whole is set when the batch was used up. */
static int emit_batch(struct consumer_part *cp, const uint8_t *batch,
                      const record_batch_header_t *h, bool check_crc, shoal_record_t *out,
                      size_t max, bool *whole)
{
    int64_t last = h->base_offset + h->last_offset_delta;
    record_iter_t it;
    int n = 0, rc;

    *whole = false;
    if (cp->resume_batch == batch && cp->resume_base == h->base_offset &&
        cp->resume_pos == cp->position) {
        it = cp->resume_it; /* checked and decoded up to here by the last poll */
    } else {
        if (check_crc && record_batch_check_crc(batch, h) < 0)
            return SHOAL_ERR(SHOAL_ECORRUPT, "%s-%d: CRC mismatch in the batch at offset %lld",
                             cp->topic, cp->partition, (long long)h->base_offset);
        if ((rc = record_iter_init(&it, batch, h)) < 0)
            return rc;
        it.topic = cp->topic;
        it.partition = cp->partition;
        it.next_offset = cp->position;
    }
    cp->resume_batch = NULL;
    cp->read_since_seek = true;
    while ((size_t)n < max) {
        rc = record_iter_read(&it, out + n, max - (size_t)n);
        if (rc < 0) { /* hand out what came before the damage; it is met again next poll */
            cp->position = it.next_offset;
            return n > 0 ? n : rc;
        }
        n += rc;
        /* out may fill here too: whole only if that was the last record, nothing after it */
        if (rc == 0 || record_iter_done(&it)) {
            *whole = true;
            break;
        }
    }
    int64_t pos = it.next_offset;
    cp->position = *whole ? SHOAL_MAX(pos, last + 1) : pos;
    if (!*whole) {
        cp->resume_batch = batch;
        cp->resume_base = h->base_offset;
        cp->resume_pos = pos;
        cp->resume_it = it;
    }
    return n;
}

/* ------------------------------------------------------------------ disk */

/* Until when a segment lookup waits for shoald's answer. While shoald answers, for
 * CONSUMER_LOOKUP_WAIT_MS whatever the poll's timeout: a poll with timeout 0 still gets
 * the answer of a daemon that is merely busy. Once a lookup went unanswered (shoald stopped
 * or hung), only for what is left of the poll's time (as long at most), so that the poll
 * keeps to its timeout; and in the fill where that happened, the other partitions' lookups
 * do not wait at all (each would add its wait). A poll that goes on asks again in its next
 * fill. */
static int64_t consumer_lookup_deadline(shoal_consumer_t *c)
{
    int64_t now = shoal__mono_ns(), wait_ns = (int64_t)CONSUMER_LOOKUP_WAIT_MS * 1000000;

    if (c->lookup_late)
        return now;
    c->lookup_began = now;
    if (c->lookup_unanswered && c->poll_timeout_ms >= 0) {
        int64_t left =
            c->poll_deadline ? c->poll_deadline - now : (int64_t)c->poll_timeout_ms * 1000000;
        wait_ns = SHOAL_MAX((int64_t)0, SHOAL_MIN(wait_ns, left));
    }
    return now + wait_ns;
}

/* Map the disk segment holding cp->position. SHOAL_ETIMEDOUT when shoald did not answer in
 * time (stopped or hung): the partition stays unplaced and the next fill asks again (the
 * late answer then serves it: client.c). */
static int part_open_segment(shoal_consumer_t *c, struct consumer_part *cp)
{
    client_segment_close(&cp->retired);
    cp->retired = cp->seg;
    memset(&cp->seg, 0, sizeof(cp->seg));
    int rc = client_segment_open_until(c->client, cp->topic, cp->partition, cp->position,
                                       consumer_lookup_deadline(c), &cp->seg);
    int64_t lost = cp->position;

    c->lookup_late = c->lookup_unanswered = rc == SHOAL_ETIMEDOUT;
    if (rc < 0)
        return rc;
    cp->seg_pos = cp->seg.pos;
    if (cp->seg.base <= lost)
        return 0;
    /* shoald serves the next segment when the one holding the position is gone (damage):
     * say so once and read on from there. */
    cp->position = cp->seg.base;
    return SHOAL_ERR(SHOAL_EOFFSET,
                     "%s-%d: offsets %lld..%lld are missing from disk (a segment file was lost "
                     "or emptied); reading on at %lld",
                     cp->topic, cp->partition, (long long)lost, (long long)cp->seg.base - 1,
                     (long long)cp->seg.base);
}

/* A disk topic's position below its log start moves there. Records it read came before:
 * retention deleted the rest of them meanwhile, which SHOAL_EOFFSET says once (as a memory
 * topic's overwritten records). A position set below it (seek, a group's committed offset)
 * moves silently, as documented for seeks. 0 or SHOAL_EOFFSET; the next poll reads on. */
static int part_to_start(struct consumer_part *cp, int64_t start)
{
    int64_t lost = cp->position;

    cp->position = start;
    if (!cp->read_since_seek)
        return 0;
    return SHOAL_ERR(SHOAL_EOFFSET,
                     "%s-%d: offsets %lld..%lld were deleted by retention before this consumer "
                     "read them; reading on at the log start %lld",
                     cp->topic, cp->partition, (long long)lost, (long long)start - 1,
                     (long long)start);
}

/* part_open_segment, where retention may have deleted the segment since the position was
 * checked against log_start_offset (shoald moves the start before it unlinks): start again
 * at the new log start, which the next poll places. */
static int part_open_segment_kept(shoal_consumer_t *c, struct consumer_part *cp)
{
    int rc = part_open_segment(c, cp);
    int64_t start = atomic_load(&cp->ring.ctl->log_start_offset);

    if (rc == SHOAL_EOFFSET && cp->position < start) {
        shoal__clear_err();
        return part_to_start(cp, start);
    }
    return rc;
}

/* Read records from the mapped disk segment. */
static int part_fill_disk(struct consumer_part *cp, shoal_record_t *out, size_t max)
{
    int n = 0;
    while ((size_t)n < max && cp->seg_pos < cp->seg.len) {
        record_batch_header_t h;
        bool whole;
        int rc = record_batch_parse(cp->seg.data + cp->seg_pos, cp->seg.len - cp->seg_pos, &h);
        if (rc != 0 && n > 0)
            break;
        if (rc != 0)
            return SHOAL_ERR(SHOAL_ECORRUPT, "%s-%d: bad batch in segment %lld at byte %llu",
                             cp->topic, cp->partition, (long long)cp->seg.base,
                             (unsigned long long)cp->seg_pos);
        rc = emit_batch(cp, cp->seg.data + cp->seg_pos, &h, true, out + n, max - (size_t)n, &whole);
        if (rc < 0)
            return n > 0 ? n : rc;
        n += rc;
        if (whole)
            cp->seg_pos += record_batch_size(&h);
    }
    return n;
}

/* ------------------------------------------------------------------ ring */

/* A memory topic overwrote records this consumer had not read: move per auto_offset_reset
 * (earliest: oldest, the first offset still in the ring; latest: the log end) and say so
 * once with SHOAL_EOFFSET. The next poll continues from there. */
static int part_fall_off(shoal_consumer_t *c, struct consumer_part *cp, int64_t oldest)
{
    int64_t lost = cp->position;
    bool earliest = c->opts.auto_offset_reset == SHOAL_OFFSET_RESET_EARLIEST;

    ring_cursor_unpin(&cp->ring, &cp->cur);
    cp->position = earliest ? oldest : atomic_load(&cp->ring.ctl->log_end_offset);
    if (cp->position > oldest) /* latest: what the ring still holds is passed over too */
        return SHOAL_ERR(SHOAL_EOFFSET,
                         "%s-%d: offsets %lld..%lld were overwritten in the memory topic's "
                         "ring before this consumer read them; continuing at the log end "
                         "%lld (auto_offset_reset=latest), so offsets %lld..%lld, still in "
                         "the ring, are skipped too (earliest would read them)",
                         cp->topic, cp->partition, (long long)lost, (long long)oldest - 1,
                         (long long)cp->position, (long long)oldest, (long long)cp->position - 1);
    return SHOAL_ERR(SHOAL_EOFFSET,
                     "%s-%d: offsets %lld..%lld were overwritten in the memory topic's ring "
                     "before this consumer read them; continuing at %lld (auto_offset_reset=%s)",
                     cp->topic, cp->partition, (long long)lost, (long long)oldest - 1,
                     (long long)cp->position, earliest ? "earliest" : "latest");
}

/* Place the cursor at cp->position: in the ring, else on disk, else clamp into range. */
static int part_place(shoal_consumer_t *c, struct consumer_part *cp)
{
    struct shm_ctl *ctl = cp->ring.ctl;
    int rc = ring_cursor_seek(&cp->ring, &cp->cur, cp->position);
    int64_t start, end;

    if (rc != SHOAL_EOFFSET) {
        if (rc == 0)
            cp->from_start = false;
        return rc;
    }
    shoal__clear_err(); /* not in the ring: a placing of its own below, not this poll's error */
    start = atomic_load(&ctl->log_start_offset);
    end = atomic_load(&ctl->log_end_offset);
    if (cp->position > end) {
        cp->position = end;
        return ring_cursor_seek(&cp->ring, &cp->cur, cp->position);
    }
    if (ctl->storage == SHOAL_STORAGE_MEMORY) {
        if (cp->position < start && !cp->from_start)
            return part_fall_off(c, cp, start);
        cp->position = SHOAL_MAX(start, cp->position); /* the log start moved on meanwhile */
        return 0;                                      /* placed on the next poll */
    }
    if (cp->position < start)
        return part_to_start(cp, start); /* placed on the next poll */
    return part_open_segment_kept(c, cp);
}

static int part_fill_ring(struct consumer_part *cp, shoal_record_t *out, size_t max, bool check_crc)
{
    int n = 0;
    while ((size_t)n < max) {
        const uint8_t *batch;
        record_batch_header_t h;
        uint64_t at = cp->cur.pos;
        bool whole;
        int rc;

        if (n > 0 && !ring_cursor_has_more(&cp->ring, &cp->cur))
            break; /* caught up, or the slot is finished: either way this poll is done */
        rc = ring_cursor_next(&cp->ring, &cp->cur, &batch, &h);

        if (rc == 0)
            break;
        if (rc == RING_SLOT_END) {
            if (n > 0) /* views into this slot are out: move on next poll */
                break;
            rc = ring_cursor_advance(&cp->ring, &cp->cur);
            if (rc < 0 || !cp->cur.placed)
                return rc;
            continue;
        }
        if (rc < 0)
            return n > 0 ? n : rc;
        cp->last_batch_bytes = (uint32_t)record_batch_size(&h);
        rc = emit_batch(cp, batch, &h, check_crc, out + n, max - (size_t)n, &whole);
        if (rc < 0) {
            cp->cur.pos = at; /* the damaged batch is met again next poll */
            return n > 0 ? n : rc;
        }
        n += rc;
        if (!whole)
            cp->cur.pos = at; /* resume inside this batch next time */
    }
    return n;
}

/* On a memory topic: whether a producer wants room now. space_waiters is not enough: a
 * producer with block_ms 0 never waits (it returns SHOAL_AGAIN and sends again), and one
 * killed while it waited leaves the count raised for good. Every producer that finds the
 * ring full moves full_events, and a waiting one moves it again at each retry (every
 * millisecond). True when it moved since the last look at this sealed slot, s: a first look
 * only notes it. The count used to be compared across slots, so a ring full long before
 * (during an earlier lag, since resolved) made the first look at another slot give it up,
 * and its records were skipped as overwritten while the ring still held them (a soak). */
static bool producer_waits(struct consumer_part *cp, const struct shm_slot *s)
{
    uint64_t full = atomic_load_explicit(&cp->ring.ctl->full_events, memory_order_relaxed);
    uint32_t gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
    bool moved = cp->full_noted && cp->full_slot == cp->cur.slot && cp->full_gen == gen &&
                 full != cp->full_seen;

    cp->full_seen = full;
    cp->full_slot = cp->cur.slot;
    cp->full_gen = gen;
    cp->full_noted = true;
    return moved;
}

/* A producer waits for the slot this cursor pins (the one it rotates into next). Called
 * only where this partition holds no views of the current poll. A lagging consumer that
 * keeps polling must not throttle producers: on a disk topic it reads the slot's disk copy
 * instead (once the slot is on disk); on a memory topic there is no copy, so it lets the
 * slot go and falls off the ring. (One that stops polling keeps its views, and so the
 * slot: shoal.h's caveat on holding views.) Returns 0 to go on with the ring, 1 when it moved to
 * disk, or <0. */
static int part_yield(shoal_consumer_t *c, struct consumer_part *cp)
{
    const struct shm_ctl *ctl = cp->ring.ctl;
    const struct shm_slot *s;
    uint32_t next;

    if (!cp->cur.placed)
        return 0;
    /* The slot's own line first: poll reads it anyway (its `used`); active_slot shares the
     * line every append writes (log_end_offset), and space_waiters is read by every
     * reader. So a reader on the active slot, the usual case, loads neither. */
    s = &ctl->slots[cp->cur.slot];
    if (atomic_load(&s->state) != SHM_SLOT_SEALED)
        return 0;
    /* Falling off loses records: on a memory topic, only for a producer that wants room
     * now; a disk topic's reader moves to disk for a producer that waits. */
    if (ctl->storage == SHOAL_STORAGE_MEMORY ? !producer_waits(cp, s)
                                             : atomic_load(&ctl->space_waiters) == 0)
        return 0;
    next = (atomic_load(&ctl->active_slot) + 1) % cp->ring.slot_count;
    if (cp->cur.slot != next)
        return 0;
    if (cp->position >= atomic_load(&s->end_offset)) { /* read it all: just move on */
        ring_cursor_unpin(&cp->ring, &cp->cur);
        return 0;
    }
    if (ctl->storage == SHOAL_STORAGE_MEMORY)
        return part_fall_off(c, cp, atomic_load(&s->end_offset));
    if (atomic_load(&s->end_offset) > atomic_load(&ctl->flushed_offset))
        return 0;
    ring_cursor_unpin(&cp->ring, &cp->cur);
    int rc = part_open_segment_kept(c, cp);
    return rc < 0 ? rc : 1;
}

/* Steps a partition that is moving may take in one poll before it reads: the end of a disk
 * segment, placing the cursor (in the ring, or on the next segment), a log start that moved
 * meanwhile. Each used to end the poll's turn with 0 records ("placed on the next poll"),
 * so a poll with timeout 0 said "caught up" at every segment boundary of a backlog. */
#define PART_MOVES_MAX 4

/* part_fill for a partition that is not on a ring slot: reading a disk segment, at the end
 * of one, or not placed. Goes on to wherever its records are now, and reads them. */
static int part_fill_moving(shoal_consumer_t *c, struct consumer_part *cp, shoal_record_t *out,
                            size_t max)
{
    int rc;
    for (int step = 0; step < PART_MOVES_MAX; step++) {
        if (cp->seg.data && cp->seg_pos < cp->seg.len) {
            rc = part_fill_disk(cp, out, max);
            if (rc != 0 || cp->seg_pos < cp->seg.len)
                return rc;
        }
        if (cp->seg.data) {
            /* Read to its end (by an earlier poll, whose views are over, or just now with
             * nothing at or after the position): the next segment's open closes it. */
            client_segment_close(&cp->retired);
            cp->retired = cp->seg;
            memset(&cp->seg, 0, sizeof(cp->seg));
        }
        if (!cp->cur.placed) {
            /* Placed anew (a seek, a start), holding no view of this poll: a producer that
             * waits for the slot it landed on gets it, as part_yield gives it at a poll's
             * start. Consumers seeking back to a log start in that slot, in turns, kept it
             * pinned for good: producers failed SHOAL_AGAIN (an exploratory session). */
            if ((rc = part_place(c, cp)) < 0 || (rc = part_yield(c, cp)) < 0)
                return rc;
            if (cp->seg.data || !cp->cur.placed)
                continue; /* on disk now, or the log start moved meanwhile: again */
        }
        rc = part_fill_ring(cp, out, max, c->opts.check_crcs);
        if (rc != 0 || cp->cur.placed)
            return rc;
    }
    return 0; /* still moving (the log moves faster than it is placed): the next poll goes on */
}

/* A segment lookup that shoald did not answer in the poll's time (the only SHOAL_ETIMEDOUT
 * of a fill) is no error: the partition has nothing to read yet, and the poll keeps to its
 * timeout. */
static int part_not_late(int rc)
{
    if (rc != SHOAL_ETIMEDOUT)
        return rc;
    shoal__clear_err();
    return 0;
}

/* The ring closed (ring_closed_error): say which partition, for a consumer of several
 * topics (a pattern subscription) the only way to tell. */
static __attribute__((cold, noinline)) int part_closed(const struct consumer_part *cp, int rc)
{
    char why[256];

    snprintf(why, sizeof(why), "%s", shoal_errmsg());
    return SHOAL_ERR(rc, "%s-%d: %s", cp->topic, (int)cp->partition, why);
}

static int part_fill(shoal_consumer_t *c, struct consumer_part *cp, shoal_record_t *out, size_t max)
{
    int rc;
    if (cp->pending) {
        rc = cp->pending;
        cp->pending = 0;
        return SHOAL_ERR(rc, "%s", cp->pending_msg);
    }
    if ((rc = part_yield(c, cp)) < 0)
        return part_not_late(rc);
    if ((rc = ring_check_open(&cp->ring)) < 0)
        return part_closed(cp, rc);
    if (__builtin_expect(cp->seg.data != NULL || !cp->cur.placed, 0))
        return part_not_late(part_fill_moving(c, cp, out, max));
    rc = part_fill_ring(cp, out, max, c->opts.check_crcs);
    if (__builtin_expect(rc == 0 && !cp->cur.placed, 0)) /* its slot left the ring */
        return part_not_late(part_fill_moving(c, cp, out, max));
    return rc;
}

/* ------------------------------------------------------------------ poll */

/* A partition's failure, as consumer_fill() sees it: true when it was returned already
 * (the same code, the partition still at the position it was returned at). A deleted topic
 * or a damaged batch fails every poll the same way until the caller unassigns or seeks;
 * returning it each time would starve the other partitions, so it is returned once. */
static bool part_error_shown(const struct consumer_part *cp, int rc)
{
    return rc == cp->shown && cp->position == cp->shown_pos;
}

/* Whether an error stays while nothing changes (the topic deleted, damage or a gap at this
 * position), unlike one that may pass by itself (no daemon, no descriptors, no memory). */
static bool part_error_lasts(int rc)
{
    return rc == SHOAL_ENOTOPIC || rc == SHOAL_ECORRUPT || rc == SHOAL_ENOPARTITION;
}

/* Return rc for cp; a lasting one is noted as shown (see consumer_fill). */
static int part_error_show(struct consumer_part *cp, int rc)
{
    if (part_error_lasts(rc)) {
        cp->shown = rc;
        cp->shown_pos = cp->position;
    }
    return rc;
}

/* Fill out[] from the partitions in turn, starting where the last poll left off. A failing
 * partition never holds the others back: its error is returned by this poll when no
 * records came before it, else by a later one (pending). An error that lasts is returned
 * once, and after that the partition counts as caught up while it keeps failing that way
 * (part_error_shown); one that may pass is returned again, so that a waiting poll never
 * sleeps through the moment it is gone (no append may come to wake it). */
static int consumer_fill(shoal_consumer_t *c, shoal_record_t *out, size_t max)
{
    int total = 0, err = 0;
    bool quiet = false;
    size_t i = c->next_part;

    c->lookup_late = false;
    for (size_t k = 0; k < c->nparts && (size_t)total < max; k++, i++) {
        struct consumer_part *cp = &c->parts[i < c->nparts ? i : i - c->nparts];
        int rc;
        if (__builtin_expect(cp->paused, 0))
            continue;
        rc = part_fill(c, cp, out + total, max - (size_t)total);
        if (rc >= 0) {
            if (__builtin_expect(cp->shown != 0, 0))
                cp->shown = 0;
            total += rc;
            continue;
        }
        if (part_error_shown(cp, rc)) {
            quiet = true;
            continue;
        }
        if (total > 0) { /* records taken from other partitions go out first */
            cp->pending = rc;
            snprintf(cp->pending_msg, sizeof(cp->pending_msg), "%s", shoal_errmsg());
            quiet = true;
            continue;
        }
        err = part_error_show(cp, rc);
        break;
    }
    if (++c->next_part >= c->nparts) /* no division: this is on every poll's path */
        c->next_part = 0;
    if (err)
        return err;
    if (quiet) /* the detail of a failure not returned would mislead */
        shoal__clear_err();
    return total;
}

/* Lines of the next batch a waiting consumer asks for with each look at `used` (see
 * part_may_have_data): most of a short record's batch (61 bytes of header, then the
 * record); more measured no better with 256-byte records. */
#define CONSUMER_WAIT_PREFETCH_LINES 2
/* ... and, when the last batch read was no larger than this, the line where the next one
 * ends if it is the same size: decoding a record reads up to its last byte. */
#define CONSUMER_WAIT_PREFETCH_TAIL_MAX 512

/* A partition has data now, or is being read from disk (never wait on those). Each look
 * also asks for the first lines the next batch will be written to: when the producer
 * writes them and then `used`, this consumer's copies of both are invalidated, and the
 * next look fetches them together instead of fetching the batch only after it has seen
 * `used`, one cross-CPU transfer after the other. Until then the prefetches hit the copies
 * already here. (AMD EPYC, busy-spin round trip of one 32-byte record, far: 1071 -> 931
 * ns; near within noise.)
 *
 * A 100-byte batch (one 32-byte record) spans three lines at more than half the positions
 * it can start at, and its last line was fetched only after `used`. So each look also asks
 * for the line where the next batch would end, for small batches only: the producer writes
 * those from the stack in one burst, while a larger one is encoded in place and read back
 * for its checksum, and each line a consumer takes from it meanwhile must come back first.
 * Every line asked for is one the producer must take back, so the middle lines of larger
 * batches are not asked for (docs/PERFORMANCE.md, tenth session). */
static bool part_may_have_data(struct consumer_part *cp)
{
    if (cp->cur.placed && cp->seg.data == NULL) {
        const uint8_t *next = cp->ring.slots[cp->cur.slot] + cp->cur.pos;
        uint32_t tail = cp->last_batch_bytes;
        for (int k = 0; k < CONSUMER_WAIT_PREFETCH_LINES; k++)
            __builtin_prefetch(next + 64 * k, 0, 3);
        if (tail != 0 && tail <= CONSUMER_WAIT_PREFETCH_TAIL_MAX &&
            cp->cur.pos + tail <= cp->ring.slot_bytes)
            __builtin_prefetch(next + tail - 1, 0, 3);
    }
    return cp->seg.data != NULL || !cp->cur.placed ||
           cp->cur.pos < ring_slot_used(&cp->ring, cp->cur.slot) ||
           atomic_load(&cp->ring.ctl->slots[cp->cur.slot].state) != SHM_SLOT_ACTIVE;
}

/* Bytes of batches ready to read, counted up to `enough`. A partition that is read from
 * disk, not yet placed, has an error to report, or whose slot the producers have left
 * (more follows in the next one) counts as enough. */
static uint64_t consumer_ready_bytes(const shoal_consumer_t *c, uint64_t enough)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < c->nparts && sum < enough; i++) {
        const struct consumer_part *cp = &c->parts[i];
        const struct shm_slot *s;
        uint64_t used;
        if ((cp->shown && !cp->pending) || cp->paused)
            continue; /* failing as its last error said: caught up */
        if (cp->pending || cp->seg.data || !cp->cur.placed)
            return enough;
        s = &cp->ring.ctl->slots[cp->cur.slot];
        used = ring_slot_used(&cp->ring, cp->cur.slot);
        if (atomic_load(&s->state) != SHM_SLOT_ACTIVE)
            return enough;
        sum += used > cp->cur.pos ? used - cp->cur.pos : 0;
    }
    return sum;
}

/* Whether the wait is over: some partition has data, or, while gathering, want_bytes; or
 * shoal_consumer_wakeup() was called. */
static bool consumer_ready(const shoal_consumer_t *c)
{
    if (atomic_load_explicit(&c->wakeup, memory_order_relaxed))
        return true;
    if (c->want_bytes)
        return consumer_ready_bytes(c, c->want_bytes) >= c->want_bytes;
    for (size_t k = 0; k < c->nparts; k++) /* one whose error was returned: caught up */
        if (!c->parts[k].shown && !c->parts[k].paused && part_may_have_data(&c->parts[k]))
            return true;
    return false;
}

/* Count the readers of parts[0..n) as asleep, or no longer. A reader whose pin shoald
 * released meanwhile (it was stopped, and a producer wanted its slot: ring_release_sleepers)
 * pins its slot again, and finds it reused if it was. */
static void consumer_set_sleeping(struct consumer_part **parts, size_t n, bool on)
{
    for (size_t i = 0; i < n; i++) {
        struct consumer_part *cp = parts[i];
        if (ring_sleeper_set(&cp->ring, &cp->ring.rd->readers[cp->cur.entry].sleeping, on))
            ring_cursor_tighten(&cp->ring, &cp->cur);
    }
}

/* Before a sleep (hold false), let go of the disk topics' ring slots the cursors are on,
 * keeping their places; after it (true), pin them again. A sleeping poll holds no views
 * (it returns as soon as it has records), so a consumer stopped in its sleep (SIGSTOP, a
 * debugger) does not stop the producers once the ring comes round to its slot: on waking
 * it reads those offsets from disk. A memory topic's reader keeps its slot: there is no
 * copy to read instead, and a reader woken a little late would find its place overwritten
 * again and again by a fast producer (part_yield lets it go when a producer waits; shoald
 * releases it when the reader is stopped, consumer_set_sleeping). */
static void consumer_hold_slots(shoal_consumer_t *c, bool hold)
{
    for (size_t i = 0; i < c->nparts; i++) {
        struct consumer_part *cp = &c->parts[i];
        if (!cp->cur.placed || cp->ring.ctl->storage == SHOAL_STORAGE_MEMORY)
            continue;
        if (hold)
            ring_cursor_tighten(&cp->ring, &cp->cur);
        else
            ring_cursor_loosen(&cp->ring, &cp->cur);
    }
}

/* Sleep until a producer appends to any partition or timeout_ns passes.
 *
 * The wake words are read here, after the announcement and before the last look for data,
 * not at the start of every poll: a producer only changes `seq` while someone sleeps, so
 * in a fan-out that line would move on every append, and every poll of every reader would
 * pay for it. Each word is loaded before its partition is armed (ring_sleep_arm), and the
 * fence after the arming pairs with the producer's: if the last look misses a publish, the
 * producer sees `armed` and bumps `seq` after our load, so the futex wait returns at once
 * or is woken. */
static int consumer_sleep(shoal_consumer_t *c, int64_t timeout_ns)
{
    struct consumer_part *parts[CONSUMER_WAIT_MAX - 1]; /* and the wakeup word */
    _Atomic uint32_t *words[CONSUMER_WAIT_MAX];
    uint32_t seqs[CONSUMER_WAIT_MAX];
    size_t n = 0, i;
    int rc = 0;

    for (i = 0; i < c->nparts && n < CONSUMER_WAIT_MAX - 1; i++)
        if (!c->parts[i].paused) /* its appends do not end this wait */
            parts[n++] = &c->parts[i];
    while (i < c->nparts && c->parts[i].paused)
        i++;
    for (size_t k = 0; k < n; k++)
        words[k] = &parts[k]->ring.rd->seq;
    consumer_set_sleeping(parts, n, true);
    for (size_t k = 0; k < n; k++)
        seqs[k] = ring_sleep_arm(&parts[k]->ring);
    words[n] = &c->wakeup;
    seqs[n] = 0;
    atomic_thread_fence(memory_order_seq_cst); /* pairs with ring_wake_readers()' fence */
    if (!consumer_ready(c)) {
        if (i < c->nparts && (timeout_ns < 0 || timeout_ns > 10000000))
            timeout_ns = 10000000; /* the others are looked at every 10 ms */
        rc = shoal__futex_waitv(words, seqs, n + 1, timeout_ns);
    }
    consumer_set_sleeping(parts, n, false);
    return rc == -ETIMEDOUT ? 0 : rc;
}

/* Spin until consumer_ready() (true) or the clock passes until_ns (false), with pause, or
 * with sched_yield() when yield is set (see consumer_cpu_shared()). Loads only on shared
 * memory: a spinning consumer costs the producers no system call, not even a wake-up. While
 * gathering it looks only every CONSUMER_GATHER_PAUSES pauses: each look at a `used` line
 * the producer has just written takes that line from the producer's cache. *clock_ns is
 * the last clock reading of the spin (now, if it took none): the caller's measure of the
 * wait, so that no clock read stands between the data arriving and the poll returning. */
static bool consumer_spin(shoal_consumer_t *c, int64_t now, int64_t until_ns, bool yield,
                          int64_t *clock_ns)
{
    *clock_ns = now;
    for (uint32_t i = 1;; i++) {
        if (consumer_ready(c))
            return true;
        if (c->want_bytes && !yield) {
            for (int k = 0; k < CONSUMER_GATHER_PAUSES; k++)
                shoal__cpu_relax();
            if ((*clock_ns = shoal__mono_ns()) >= until_ns)
                return false;
            continue;
        }
        if (yield) {
            int64_t before = now;
            sched_yield();
            now = *clock_ns = shoal__mono_ns();
            /* Back so soon that nobody else ran: the CPU is ours after all, pause. */
            if (now - before < CONSUMER_YIELD_ALONE_NS)
                yield = c->cpu_shared = false;
            if (now >= until_ns)
                return false;
            continue;
        }
        shoal__cpu_relax();
        /* the clock costs ~20 ns: look at it every 64 rounds */
        if ((i & 63) == 0 && (*clock_ns = shoal__mono_ns()) >= until_ns)
            return false;
    }
}

/* Whether SHOAL_WAIT_DEFAULT should spin by yielding the CPU rather than with pause.
 *
 * A consumer alone on its CPU spins with pause: data is seen within a few tens of
 * nanoseconds. But when more threads are runnable than there are CPUs (a fan-out of four
 * consumers and a producer on two CPUs), a spinning consumer holds a CPU that the others
 * need, and one that gives up and sleeps costs the producer a wake-up system call per
 * append. Yielding instead lets the other consumers and the producer run and still needs
 * no wake-up: the consumer looks for data each time the scheduler comes back to it.
 *
 * The sign of a shared CPU is the thread's involuntary context switches (preemptions, and
 * yields that did run someone else): looked at with getrusage() at most every 100 us, and
 * only on the way into a wait, so a consumer that has data never makes the call.
 *
 * Yielding only helps when the thread it lets run is the one the data comes from. A turn
 * given to an unrelated CPU-bound process is a whole time slice (1.5-3 ms here) during which
 * the data that arrives waits; with a periodic waker on the same CPU that happened at every
 * wait, and default-wait round trips fell from 0.3-0.4 M/s to under 0.01 M/s (bench scenario
 * shoal-rtt-32-busy). So the consumer yields only when some partition's producer appended
 * last from this very CPU (shm_ctl.writer_cpu); otherwise it pauses, then sleeps, and the
 * scheduler's wake-up preference puts it back before the busy process. */
static bool consumer_writer_here(const shoal_consumer_t *c)
{
    int32_t mine = sched_getcpu() + 1; /* a load from the thread's rseq area */
    for (size_t i = 0; i < c->nparts; i++) {
        int32_t w = shoal_load_relaxed(&c->parts[i].ring.ctl->writer_cpu);
        if (w == 0 || w == mine) /* 0: no append yet, or an older producer library */
            return true;
    }
    return false;
}

static bool consumer_cpu_shared(shoal_consumer_t *c, int64_t now)
{
    struct rusage ru;

    if (now - c->shared_checked_ns < CONSUMER_SHARED_CHECK_NS)
        return c->cpu_shared;
    c->shared_checked_ns = now;
    if (getrusage(RUSAGE_THREAD, &ru) < 0)
        return c->cpu_shared = false;
    c->cpu_shared = ru.ru_nivcsw != c->nivcsw && consumer_writer_here(c);
    c->nivcsw = ru.ru_nivcsw;
    return c->cpu_shared;
}

/* SHOAL_WAIT_DEFAULT spins at most this many times spin_ns (consumer_spin_budget). */
#define CONSUMER_SPIN_ADAPT_MAX 40

/* Fold a wait for data that ended after gap_ns (with data, or at the poll's timeout) into
 * the recent average. A long wait counts as twice the adaptive limit, so one of them is
 * enough to end adapting: a stream that stopped is not spun for at every poll. */
static void consumer_note_wait(shoal_consumer_t *c, int64_t gap_ns)
{
    int64_t cap = 2 * CONSUMER_SPIN_ADAPT_MAX * (int64_t)c->opts.spin_ns;
    c->wait_avg_ns += (SHOAL_MIN(gap_ns, cap) - c->wait_avg_ns) / 4;
}

/* How long SHOAL_WAIT_DEFAULT spins: spin_ns; or, while recent waits for data were longer
 * than that but within CONSUMER_SPIN_ADAPT_MAX x spin_ns, twice their average, unless the
 * CPU is shared. A stream whose batches come a little further apart than spin_ns (large
 * records: a 256 KiB batch every ~50 us) then never puts its consumer to sleep, and its
 * producer makes no FUTEX_WAKE call per batch (through the hypervisor here, a quarter of
 * a 4 KiB producer's time); a consumer whose data comes rarely still sleeps after
 * spin_ns. */
static int64_t consumer_spin_budget(const shoal_consumer_t *c, bool cpu_shared)
{
    int64_t base = (int64_t)c->opts.spin_ns, want = 2 * c->wait_avg_ns;
    if (cpu_shared || want <= base || want > CONSUMER_SPIN_ADAPT_MAX * base)
        return base;
    return want;
}

/* The end of the spinning phase of a wait that started at now. */
static int64_t consumer_spin_until(const shoal_consumer_t *c, int64_t now, int64_t deadline,
                                   int timeout_ms, bool cpu_shared)
{
    int64_t until;
    if (c->opts.wait == SHOAL_WAIT_SPIN)
        return timeout_ms < 0 ? INT64_MAX : deadline;
    if (c->opts.wait == SHOAL_WAIT_FUTEX)
        return now;
    until = now + consumer_spin_budget(c, cpu_shared);
    return timeout_ms < 0 ? until : SHOAL_MIN(until, deadline);
}

/* A poll of a consumer with nothing assigned waits out its timeout, as one with nothing to
 * read does; it used to return 0 at once, and a poll(-1) loop spun a CPU. Cold and out of
 * line, so the steady poll pays a load and a branch for it (callgrind: 2 instructions a
 * poll; inlined, 6). */
__attribute__((cold, noinline)) static int consumer_poll_unassigned(shoal_consumer_t *c,
                                                                    int timeout_ms)
{
    int64_t deadline = shoal__mono_ns() + (int64_t)timeout_ms * 1000000;

    for (;;) {
        int64_t left_ms = (deadline - shoal__mono_ns() + 999999) / 1000000;
        int rc;

        if (consumer__woken(c))
            return SHOAL_ERR(SHOAL_EWAKEUP, "the poll was ended by shoal_consumer_wakeup()");
        if (timeout_ms >= 0 && left_ms <= 0)
            return 0;
        rc = shoal__futex_wait(&c->wakeup, 0, timeout_ms < 0 ? -1 : (int)left_ms);
        if (rc == -EINTR && !atomic_load(&c->wakeup)) /* a signal, as any poll's sleep ends */
            return rc;
    }
}

/* A poll that needed shoald (for a disk segment) and found it gone waits its timeout (100 ms
 * at most when that is for ever) before it says so, as a group consumer's poll does: a loop
 * that retries at once used to spin a CPU while the daemon was down (a user session
 * counted 163,000 polls in 3 s). A wakeup or a signal ends the wait; the error stays. */
__attribute__((cold, noinline)) static int consumer_poll_failed(shoal_consumer_t *c, int rc,
                                                                int timeout_ms)
{
    if (timeout_ms != 0 && !consumer__wakeup_pending(c))
        consumer__nap(c, timeout_ms < 0 ? 100 : timeout_ms);
    return rc;
}

static int consumer_poll(shoal_consumer_t *c, shoal_record_t *out, size_t max, int timeout_ms)
{
    int rc;

    if (timeout_ms < -1)
        return SHOAL_ERR(SHOAL_EINVAL, "timeout_ms %d: 0 or more, or -1 to wait for ever",
                         timeout_ms);
    if (shoal__inherited(c->forks)) /* it would pin and sleep in its opener's entries */
        return consumer__check_owner(c);
    if (c->group && cgroup_in_callback(c->group)) /* records the outer poll never sees */
        return SHOAL_ERR(SHOAL_EINVAL, "shoal_poll() inside the consumer's own callback");
    /* a group consumer's partitions assigned by hand are read as any consumer's */
    if (c->group && (cgroup_subscribed(c->group) || (c->nparts == 0 && c->left_out == 0)))
        return cgroup_poll(c, c->group, out, max, timeout_ms);
    if (__builtin_expect(c->nparts == 0, 0) && c->left_out == 0)
        return consumer_poll_unassigned(c, timeout_ms);
    rc = consumer__poll(c, out, max, timeout_ms);
    if (__builtin_expect(rc == SHOAL_ENODAEMON || rc == SHOAL_ECLOSED, 0))
        return consumer_poll_failed(c, rc, timeout_ms);
    return rc;
}

int shoal_poll(shoal_consumer_t *c, shoal_record_t *out, size_t max, int timeout_ms)
{
    int entered, rc;

    shoal__clear_err();
    if (!c || (!out && max))
        return SHOAL_ERR(SHOAL_EINVAL, "poll needs a consumer and an output array");
    if ((entered = consumer_enter(c)) < 0)
        return entered;
    rc = consumer_poll(c, out, max, timeout_ms);
    consumer__leave(c, entered);
    return rc;
}

/* ------------------------------------------------------------------ wakeup */

int shoal_consumer_wakeup(shoal_consumer_t *c)
{
    int saved_errno = errno; /* from a signal handler too */

    if (!c)
        return SHOAL_EINVAL; /* no detail: shoal__set_err is not async-signal-safe */
    atomic_store(&c->wakeup, 1);
    (void)shoal__futex_wake(&c->wakeup, INT32_MAX);
    errno = saved_errno;
    return 0;
}

bool consumer__woken(shoal_consumer_t *c)
{
    return atomic_load_explicit(&c->wakeup, memory_order_relaxed) && atomic_exchange(&c->wakeup, 0);
}

bool consumer__wakeup_pending(const shoal_consumer_t *c)
{
    return c && atomic_load_explicit(&c->wakeup, memory_order_relaxed);
}

void consumer__nap(shoal_consumer_t *c, int ms)
{
    (void)shoal__futex_wait(&c->wakeup, 0, ms);
}

/* ------------------------------------------------------------------ for group_consumer.c */

struct cgroup *consumer__group(shoal_consumer_t *c)
{
    return c->group;
}

shoal_client_t *consumer__client(shoal_consumer_t *c)
{
    return c->client;
}

void consumer__unassign_all(shoal_consumer_t *c)
{
    for (size_t i = 0; i < c->nparts; i++)
        part_release(&c->parts[i]);
    c->nparts = 0;
    c->next_part = 0;
    c->left_out = 0; /* of an assignment gone too: a round tried again counts them again */
}

int consumer__unassign_one(shoal_consumer_t *c, const char *topic, int32_t partition)
{
    struct consumer_part *cp = consumer_find(c, topic, partition);
    if (!cp)
        return SHOAL_ENOPARTITION;
    part_release(cp);
    *cp = c->parts[--c->nparts];
    c->next_part = 0;
    return 0;
}

size_t consumer__assigned_count(shoal_consumer_t *c)
{
    return c->nparts;
}

int consumer__ring_file(shoal_consumer_t *c, const char *topic, int32_t partition,
                        ring_file_id_t *file, int64_t *position)
{
    struct consumer_part *cp = consumer_find(c, topic, partition);

    if (!cp)
        return SHOAL_ENOPARTITION;
    *file = cp->ring.ctl_file;
    if (position)
        *position = cp->position;
    return 0;
}

/* fetch_min_bytes: the first time fewer than the minimum but some bytes are ready, gather
 * (wait for want_bytes) until *until; past it, or past the poll's deadline, stop (false):
 * the poll reads what there is. */
static bool consumer_gather(shoal_consumer_t *c, uint64_t ready, int64_t now, int64_t deadline,
                            int64_t *until)
{
    if (*until == 0 && ready > 0) {
        *until = now + (int64_t)c->opts.fetch_max_wait_us * 1000;
        c->want_bytes = c->opts.fetch_min_bytes;
    }
    if (*until != 0 && (now >= *until || now >= deadline)) {
        c->want_bytes = 0;
        return false;
    }
    return true;
}

int consumer__poll(shoal_consumer_t *c, shoal_record_t *out, size_t max, int timeout_ms)
{
    int64_t deadline = 0; /* read the clock only once there is something to wait for */
    int64_t waiting_since = 0, gather_until = 0;
    int64_t spun_to = 0; /* the clock as a spin that found data last read it; 0 after a sleep */
    bool gather = timeout_ms != 0 && c->opts.fetch_min_bytes > 1;

    for (size_t i = 0; i < c->nparts; i++)
        part_views_over(&c->parts[i]);
    if (__builtin_expect(c->left_out > 0, 0))
        return consumer_left_out(c);
    c->want_bytes = 0;
    c->poll_timeout_ms = timeout_ms;
    c->poll_deadline = 0;
    for (;;) {
        int64_t now, spin_until, wake_at;
        if (consumer__woken(c))
            return SHOAL_ERR(SHOAL_EWAKEUP, "the poll was ended by shoal_consumer_wakeup()");
        uint64_t ready = gather ? consumer_ready_bytes(c, c->opts.fetch_min_bytes) : 0;
        int n = !gather || ready >= c->opts.fetch_min_bytes ? consumer_fill(c, out, max) : 0;
        bool shared;
        int rc;

        if (n != 0 || timeout_ms == 0 || c->nparts == 0) {
            /* only the default wait adapts; the others read no clock once data is here */
            if (n > 0 && waiting_since != 0 && c->opts.wait == SHOAL_WAIT_DEFAULT)
                consumer_note_wait(c, (spun_to ? spun_to : shoal__mono_ns()) - waiting_since);
            c->want_bytes = 0;
            return n;
        }
        now = shoal__mono_ns();
        /* The poll's time runs from here, or from a lookup of the fill that went
         * unanswered: the fill was not quick, and the poll must not wait its whole time
         * again after it. */
        if (deadline == 0)
            c->poll_deadline = deadline =
                timeout_ms < 0
                    ? INT64_MAX
                    : (c->lookup_late ? c->lookup_began : now) + (int64_t)timeout_ms * 1000000;
        if (ready == 0 && waiting_since == 0)
            waiting_since = now;
        if (ready > 0 && waiting_since != 0) { /* the wait for any data ends here */
            consumer_note_wait(c, now - waiting_since);
            waiting_since = 0;
        }
        if (gather && !(gather = consumer_gather(c, ready, now, deadline, &gather_until)))
            continue; /* gathered long enough: read what there is */
        if (now >= deadline) {
            consumer_note_wait(c, now - waiting_since); /* >= 1 ms: ends adapting */
            return 0;
        }
        shared = c->opts.wait == SHOAL_WAIT_DEFAULT && consumer_cpu_shared(c, now);
        spin_until = consumer_spin_until(c, now, deadline, timeout_ms, shared);
        wake_at = gather && gather_until ? SHOAL_MIN(deadline, gather_until) : deadline;
        if (spin_until > now) {
            if (consumer_spin(c, now, SHOAL_MIN(spin_until, wake_at), shared, &spun_to))
                continue;
            now = spun_to; /* the spin's last clock reading, at or past its end */
        }
        spun_to = 0;
        if (c->opts.wait == SHOAL_WAIT_SPIN)
            continue; /* the deadline and gathering checks above end it */
        if (now >= wake_at)
            continue;
        consumer_hold_slots(c, false);
        rc = consumer_sleep(c, wake_at == INT64_MAX ? -1 : wake_at - now);
        consumer_hold_slots(c, true);
        if (rc < 0 && !(rc == -EINTR && atomic_load(&c->wakeup))) /* a handler's wakeup */
            return rc;
    }
}
