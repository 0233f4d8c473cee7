/* broker.c - shoald's topic registry over the metadata store and the partitions.
 *
 * DESIGN: LMDB is the truth about which topics exist. A topic is written to the store
 * before its files are made and removed from it before its files are deleted, so a crash
 * in between leaves either a topic whose partitions start empty at the next recovery, or
 * orphan files, whose segments a later create with the same name refuses to take over
 * (check_no_segments: the user moves them away or removes them). The registry is an array
 * sorted by name under a rwlock: the flusher thread and lookups read, create and delete
 * write. An instance holds flock()s on its data directory and its shm directory, so two
 * daemons can never manage the same files. */
#include "broker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "ctlsock.h"
#include "log.h"
#include "ring.h"
#include "shmguard.h"
#include "topic_config.h"
#include "util.h"
#include "waitset.h"

/* ------------------------------------------------------------------ registry */

dtopic_t *broker_find(broker_t *b, const char *name)
{
    size_t lo = 0, hi = b->ntopics;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(b->topics[mid]->name, name);
        if (c == 0)
            return b->topics[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Whether the store holds a record of the topic, readable or not. */
static bool store_knows(broker_t *b, const char *name)
{
    shoal_topic_config_t cfg;
    int rc = store_topic_get(b->store, name, &cfg);
    return rc == 0 || rc == SHOAL_ECORRUPT;
}

#define NOT_SERVED                                                                                 \
    "topic %s is not served: recovery left it out (shoald's log says why); repair its files "      \
    "and restart shoald, or delete the topic"
#define BEING_CREATED "topic %s is still being created"
#define GROWING       "topic %s is gaining partitions: retry"

struct broker_creating {
    char name[SHOAL_TOPIC_NAME_MAX + 1];
    uint64_t shm_bytes; /* what its rings take */
    size_t files;       /* what its disk partitions keep open once written */
};

/* Files a topic's disk partitions keep open once written: each segment's three. */
static size_t topic_files(const shoal_topic_config_t *cfg)
{
    return cfg->storage == SHOAL_STORAGE_DISK ? 3 * (size_t)cfg->partitions : 0;
}

static struct broker_creating *creating_find(const broker_t *b, const char *name)
{
    for (size_t i = 0; i < b->ncreating; i++)
        if (strcmp(b->creating[i].name, name) == 0)
            return &b->creating[i];
    return NULL;
}

bool broker_is_creating(const broker_t *b, const char *name)
{
    return creating_find(b, name) != NULL;
}

/* The shared memory the rings of this many partitions of a topic take, their control files
 * included (those were not counted, and 512 partitions of 2 x 64 KiB admitted as 64 MiB took
 * 78 MiB: an audit). */
static uint64_t rings_bytes(const shoal_topic_config_t *cfg, uint32_t partitions)
{
    return partitions * ring_shm_bytes(cfg->ring_slots, cfg->segment_bytes);
}

/* The shared memory rings not made yet will take: those of the topics being created, and
 * of the partitions being added. */
static uint64_t pending_shm_bytes(const broker_t *b)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < b->ncreating; i++)
        sum += b->creating[i].shm_bytes;
    for (size_t i = 0; i < b->ntopics; i++)
        if (b->topics[i]->growing_to)
            sum += rings_bytes(&b->topics[i]->cfg,
                               b->topics[i]->growing_to - b->topics[i]->cfg.partitions);
    return sum;
}

uint64_t broker_served_shm_bytes(const broker_t *b)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < b->ntopics; i++)
        sum += rings_bytes(&b->topics[i]->cfg, b->topics[i]->cfg.partitions);
    return sum;
}

/* ... and the files they will keep open. */
static size_t creating_files(const broker_t *b)
{
    size_t sum = 0;
    for (size_t i = 0; i < b->ncreating; i++)
        sum += b->creating[i].files;
    return sum;
}

int broker_no_topic(broker_t *b, const char *name)
{
    if (creating_find(b, name))
        return SHOAL_ERR(SHOAL_ENOTOPIC, BEING_CREATED, name);
    if (store_knows(b, name))
        return SHOAL_ERR(SHOAL_ENOTOPIC, NOT_SERVED, name);
    return SHOAL_ERR(SHOAL_ENOTOPIC, "no topic named %s", name);
}

static int registry_insert(broker_t *b, dtopic_t *t)
{
    dtopic_t **v = shoal__realloc(b->topics, (b->ntopics + 1) * sizeof(*v));
    size_t i = 0;
    if (!v)
        return -ENOMEM;
    b->topics = v;
    while (i < b->ntopics && strcmp(v[i]->name, t->name) < 0)
        i++;
    memmove(&v[i + 1], &v[i], (b->ntopics - i) * sizeof(*v));
    v[i] = t;
    b->ntopics++;
    b->registry_changes++;
    return 0;
}

static void registry_remove(broker_t *b, dtopic_t *t)
{
    for (size_t i = 0; i < b->ntopics; i++) {
        if (b->topics[i] != t)
            continue;
        memmove(&b->topics[i], &b->topics[i + 1], (b->ntopics - i - 1) * sizeof(t));
        b->ntopics--;
        b->registry_changes++;
        return;
    }
}

static void topic_free(dtopic_t *t, uint32_t opened, bool remove_files)
{
    for (uint32_t i = 0; i < opened; i++) {
        if (remove_files)
            dpart_remove(&t->parts[i]);
        else
            dpart_close(&t->parts[i]);
    }
    shoal__free(t->parts);
    shoal__free(t);
}

/* A recovered topic one of whose partitions could not be: the opened ones let go of the
 * rings this start built (dpart_abandon), so that they are neither RAM held for nothing
 * nor reported as rings of no served topic. */
static void topic_abandon(dtopic_t *t, uint32_t opened)
{
    for (uint32_t i = 0; i < opened; i++)
        dpart_abandon(&t->parts[i]);
    shoal__free(t->parts);
    shoal__free(t);
}

/* Whether dir holds a segment with records (a .log file that is not empty: a new
 * partition's first one is, partition.c segment_mark). */
static bool dir_has_segments(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    struct stat st;
    bool found = false;

    while (d && !found && (e = readdir(d)))
        found = strlen(e->d_name) > 4 && !strcmp(e->d_name + strlen(e->d_name) - 4, ".log") &&
                (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_size > 0);
    if (d)
        closedir(d);
    return found;
}

/* A new topic, or a topic's new partitions first..partitions - 1, must not take over
 * segments left under their names by a topic the store does not know (its record lost, or
 * a delete cut short by a crash): making them would erase those. */
static int check_no_segments(broker_t *b, const char *name, uint32_t first, uint32_t partitions)
{
    char dir[PATH_MAX];
    for (uint32_t i = first; i < partitions; i++) {
        if (snprintf(dir, sizeof(dir), "%s/%s-%u", b->cfg->data_dir, name, i) >= (int)sizeof(dir))
            return -ENAMETOOLONG;
        if (dir_has_segments(dir))
            return SHOAL_ERR(SHOAL_ETOPICEXISTS,
                             "%s holds segments of a topic the metadata store does not know; "
                             "move it away or remove it to make %s-%u",
                             dir, name, i);
    }
    return 0;
}

struct committed_max {
    const char *topic;
    uint32_t id;
    int64_t max;
};

static int committed_max_add(void *arg, const char *group, const char *topic, int32_t partition,
                             int64_t offset)
{
    struct committed_max *m = arg;

    (void)group;
    if ((uint32_t)partition == m->id && !strcmp(topic, m->topic) && offset > m->max)
        m->max = offset;
    return 0;
}

/* dpart_committed_fn: the highest offset any group committed for topic-id, -1 when none
 * (or the store cannot say). Walks every stored offset: only asked for a partition whose
 * files are gone. */
static int64_t committed_max(void *arg, const char *topic, uint32_t id)
{
    broker_t *b = arg;
    struct committed_max m = {.topic = topic, .id = id, .max = -1};

    if (store_offset_foreach(b->store, NULL, committed_max_add, &m) < 0)
        log_error("%s-%u: the committed offsets could not be read (%s)", topic, id, shoal_errmsg());
    return m.max;
}

/* Tell every partition's clients how many partitions the topic has (producers follow
 * partition 0's count: shm_ctl.topic_partitions). */
static void topic_publish_partitions(dtopic_t *t)
{
    for (uint32_t i = 0; i < t->cfg.partitions; i++)
        if (t->parts[i].ring.ctl)
            atomic_store(&t->parts[i].ring.ctl->topic_partitions, t->cfg.partitions);
}

/* Open (fresh: create) partitions first..cfg->partitions - 1 of topic name into parts[].
 * Returns 0, or the error with *failed the partition that failed (logged). */
static int parts_open(broker_t *b, const char *name, const shoal_topic_config_t *cfg, bool fresh,
                      dpart_t *parts, uint32_t first, uint32_t *failed)
{
    int rc = 0;

    for (uint32_t i = first; i < cfg->partitions && rc == 0; i++) {
        /* A failure that gives no detail must not pass on one left by an earlier call
         * (create's lookups leave "no topic <name>"): the log and the reply show it. */
        shoal__clear_err();
        rc = dpart_open(&parts[i], b->cfg->data_dir, b->shm_dir, b->ring_owner, name, i, cfg, fresh,
                        committed_max, b);
        *failed = i;
    }
    if (rc < 0)
        log_error("topic %s: partition %u: %s (%s)", name, *failed, shoal_strerror(rc),
                  shoal_errmsg());
    return rc;
}

/* Open (fresh: create) every partition of a topic. */
static int topic_open(broker_t *b, const char *name, const shoal_topic_config_t *cfg, bool fresh,
                      dtopic_t **out)
{
    dtopic_t *t = shoal__calloc(1, sizeof(*t));
    uint32_t i;
    int rc;

    if (!t || !(t->parts = shoal__calloc(cfg->partitions, sizeof(dpart_t)))) {
        shoal__free(t);
        return -ENOMEM;
    }
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->cfg = *cfg;
    t->incarnation = atomic_fetch_add(&b->incarnations, 1) + 1; /* creates run outside the lock */
    if ((rc = parts_open(b, name, cfg, fresh, t->parts, 0, &i)) < 0) {
        if (fresh)
            topic_free(t, i + 1, true); /* a new topic leaves nothing behind */
        else
            topic_abandon(t, i);
        return rc;
    }
    topic_publish_partitions(t);
    *out = t;
    return 0;
}

/* On a memory topic, SHOAL_ECONFIG for the first setting about disk segments
 * (topic_setting_is_disk_only; only the one named `only`, when not NULL) that is not at its
 * default: it would be kept without a word and do nothing; else 0. */
static int check_memory_noops(const shoal_topic_config_t *cfg, const char *only)
{
    shoal_topic_config_t def;
    const char *name;
    char set[32], was[32];

    if (cfg->storage != SHOAL_STORAGE_MEMORY)
        return 0;
    shoal_topic_config_init(&def);
    for (size_t i = 0; (name = shoal_topic_setting_name(i)) != NULL; i++) {
        if ((only && strcmp(only, name)) || !topic_setting_is_disk_only(name) ||
            shoal_topic_config_get(cfg, name, set, sizeof(set)) < 0 ||
            shoal_topic_config_get(&def, name, was, sizeof(was)) < 0 || !strcmp(set, was))
            continue;
        return SHOAL_ERR(SHOAL_ECONFIG,
                         "%s does nothing on a memory topic: it has no disk segments, and its "
                         "ring (ring.slots x segment.bytes) is its retention",
                         name);
    }
    return 0;
}

/* Settings a new or altered topic may not combine (a stored topic that does still loads):
 * compaction rewrites disk segments, which a memory topic has none of. */
static int check_new_config(const shoal_topic_config_t *cfg)
{
    int rc = topic_config_check(cfg);
    if (rc == 0 && cfg->storage == SHOAL_STORAGE_MEMORY &&
        (cfg->cleanup_policy & SHOAL_CLEANUP_COMPACT))
        return SHOAL_ERR(SHOAL_ECONFIG, "cleanup.policy compact needs disk segments: a memory "
                                        "topic has none");
    return rc;
}

/* The memory new rings may take, in bytes: the system's available memory less an eighth
 * of its total, kept for everything else (MemAvailable and MemTotal of /proc/meminfo, or of
 * the file $SHOALD_TEST_MEMINFO names, for the tests; an eighth of what is available when
 * the total is not given), or UINT64_MAX when unknown. The eighth used to be of what was
 * available, so each create could take 7/8 of what the last left, and a few of them
 * approached all of it (rings are not reclaimable): a security session. */
static uint64_t mem_spare(void)
{
    const char *path = getenv("SHOALD_TEST_MEMINFO");
    FILE *f = fopen(path ? path : "/proc/meminfo", "re");
    unsigned long long kib;
    uint64_t avail = UINT64_MAX, total = UINT64_MAX;
    char line[128];

    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            avail = (uint64_t)kib << 10;
        else if (sscanf(line, "MemTotal: %llu kB", &kib) == 1)
            total = (uint64_t)kib << 10;
    }
    if (f)
        fclose(f);
    if (avail == UINT64_MAX)
        return avail;
    return avail - SHOAL_MIN(avail, total != UINT64_MAX ? total / 8 : avail / 8);
}

/* The -ENOSPC of check_shm_room(), saying what the topic (or its partitions from had on,
 * when it grows) needed and (fmt) what there is. */
static int room_refused(const char *name, const shoal_topic_config_t *cfg, uint32_t had,
                        uint64_t need, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int room_refused(const char *name, const shoal_topic_config_t *cfg, uint32_t had,
                        uint64_t need, const char *fmt, ...)
{
    char there[PATH_MAX + 64], who[SHOAL_TOPIC_NAME_MAX + 64];
    char size[SHOAL_SIZE_TEXT_BYTES], files[SHOAL_SIZE_TEXT_BYTES];
    uint64_t slots = (uint64_t)cfg->ring_slots * cfg->segment_bytes;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(there, sizeof(there), fmt, ap);
    va_end(ap);
    if (had)
        snprintf(who, sizeof(who), "the new partitions %u..%u of topic %s need", had,
                 had + cfg->partitions - 1, name);
    else
        snprintf(who, sizeof(who), "topic %s needs", name);
    return SHOAL_ERR(
        -ENOSPC,
        "%s %s of shared memory (%u partition%s x (%u ring slots x %llu-byte "
        "segments + %s of control files)), more than the %s: fewer partitions or "
        "ring slots, or smaller segments, would fit",
        who, shoal__size_text(size, need), cfg->partitions, SHOAL_PLURAL(cfg->partitions),
        cfg->ring_slots, (unsigned long long)cfg->segment_bytes,
        shoal__size_text(files, ring_shm_bytes(cfg->ring_slots, cfg->segment_bytes) - slots),
        there);
}

/* Whether every ring of a new topic fits: under max.shm.bytes, in the shared memory
 * directory's free space, and in the memory the system can spare (mem_spare). A tmpfs is
 * often sized at half of RAM or more, so its free space alone let one create of many
 * partitions fill memory until the kernel killed shoald, a ring at a time. 0 or -ENOSPC. */
static int check_shm_room(const broker_t *b, const char *name, const shoal_topic_config_t *cfg,
                          uint32_t had)
{
    uint64_t need = rings_bytes(cfg, cfg->partitions), pending = pending_shm_bytes(b);
    uint64_t avail = mem_spare(), free_bytes = UINT64_MAX;
    char size[SHOAL_SIZE_TEXT_BYTES], cap_text[SHOAL_SIZE_TEXT_BYTES];
    char taken_text[SHOAL_SIZE_TEXT_BYTES];
    long cap = b->cfg->max_shm_bytes;
    struct statvfs vfs;

    if (cap > 0) {
        uint64_t taken = broker_served_shm_bytes(b) + pending;
        uint64_t left = (uint64_t)cap - SHOAL_MIN((uint64_t)cap, taken);
        if (need > left)
            return room_refused(
                name, cfg, had, need, "%s left under max.shm.bytes (%s, of which topics take %s)",
                shoal__size_text(size, left), shoal__size_text(cap_text, (uint64_t)cap),
                shoal__size_text(taken_text, taken));
    }
    if (statvfs(b->shm_dir, &vfs) == 0)
        free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    /* What rings not made yet will take is not taken yet. */
    free_bytes -= SHOAL_MIN(free_bytes, pending);
    if (avail != UINT64_MAX)
        avail -= SHOAL_MIN(avail, pending);
    if (need <= free_bytes && need <= avail)
        return 0;
    if (need > free_bytes)
        return room_refused(name, cfg, had, need, "%s free in %s",
                            shoal__size_text(size, free_bytes), b->shm_dir);
    return room_refused(name, cfg, had, need,
                        "%s of memory the system can spare (what it has available, less an "
                        "eighth of its total kept for everything else)",
                        shoal__size_text(size, avail));
}

void broker_shm_cap_check(broker_t *b)
{
    char cap_text[SHOAL_SIZE_TEXT_BYTES], taken_text[SHOAL_SIZE_TEXT_BYTES];
    uint64_t taken;

    if (b->cfg->max_shm_bytes <= 0)
        return;
    pthread_rwlock_rdlock(&b->lock);
    taken = broker_served_shm_bytes(b) + pending_shm_bytes(b);
    pthread_rwlock_unlock(&b->lock);
    if (taken > (uint64_t)b->cfg->max_shm_bytes)
        log_warn("max.shm.bytes is %s, and the topics' rings take %s: no topic can be created "
                 "or gain partitions until enough are deleted (the topics stay served)",
                 shoal__size_text(cap_text, (uint64_t)b->cfg->max_shm_bytes),
                 shoal__size_text(taken_text, taken));
}

/* Descriptors kept free for serving clients: a connection each, an attach passes a ring's
 * six files, a consumer behind the ring a segment's three. */
#define FD_RESERVE 64

/* The descriptors this process has open. */
static size_t fds_open(void)
{
    DIR *d = opendir("/proc/self/fd");
    size_t n = 0;

    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n > 3 ? n - 3 : 0; /* ".", ".." and the directory's own */
}

/* Whether a new topic's partitions leave descriptors to serve clients: a disk partition
 * keeps its segment's three files open once written, and a daemon whose creates took them
 * all could attach no producer or consumer to its existing topics. 0 or -EMFILE. */
static int check_fd_room(const broker_t *b, const char *name, const shoal_topic_config_t *cfg)
{
    struct rlimit rl;
    size_t open_now, need = topic_files(cfg);

    if (need == 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    open_now = fds_open() + creating_files(b); /* theirs are not open yet */
    if (open_now + need + FD_RESERVE <= rl.rlim_cur)
        return 0;
    return SHOAL_ERR(-EMFILE,
                     "topic %s would keep %zu more files open, and shoald has %zu of its %llu "
                     "open: too few would be left to serve clients; raise its open file limit "
                     "(LimitNOFILE=, ulimit -n)",
                     name, need, open_now, (unsigned long long)rl.rlim_cur);
}

/* With the lock held: whether a topic of this name and config may be created now. */
static int create_check(broker_t *b, const char *name, const shoal_topic_config_t *cfg)
{
    int rc;

    if (broker_find(b, name))
        return SHOAL_ERR(SHOAL_ETOPICEXISTS, "topic %s already exists", name);
    if (creating_find(b, name))
        return SHOAL_ERR(SHOAL_ETOPICEXISTS, BEING_CREATED, name);
    if (store_knows(b, name))
        return SHOAL_ERR(SHOAL_ETOPICEXISTS, NOT_SERVED, name);
    if (cfg->storage == SHOAL_STORAGE_DISK &&
        (rc = check_no_segments(b, name, 0, cfg->partitions)) < 0)
        return rc;
    if ((rc = check_fd_room(b, name, cfg)) < 0)
        return rc;
    return check_shm_room(b, name, cfg, 0);
}

/* With the lock held: note the topic as being created. 0 or -ENOMEM. */
static int creating_add(broker_t *b, const char *name, const shoal_topic_config_t *cfg)
{
    struct broker_creating *v = shoal__realloc(b->creating, (b->ncreating + 1) * sizeof(*v));

    if (!v)
        return -ENOMEM;
    b->creating = v;
    v = &b->creating[b->ncreating++];
    snprintf(v->name, sizeof(v->name), "%s", name);
    v->shm_bytes = rings_bytes(cfg, cfg->partitions);
    v->files = topic_files(cfg);
    return 0;
}

int broker_topic_create_begin(broker_t *b, const char *name, const shoal_topic_config_t *cfg)
{
    int rc;

    if (!shoal_topic_name_is_valid(name))
        return SHOAL_ERR(SHOAL_ENAME, "invalid topic name '%.260s'", name);
    if ((rc = check_new_config(cfg)) < 0 || (rc = check_memory_noops(cfg, NULL)) < 0)
        return rc;
    pthread_rwlock_wrlock(&b->lock);
    if ((rc = create_check(b, name, cfg)) == 0 && (rc = creating_add(b, name, cfg)) == 0 &&
        (rc = store_topic_put(b->store, name, cfg)) < 0)
        b->ncreating--;
    pthread_rwlock_unlock(&b->lock);
    return rc;
}

/* Test hook: $SHOALD_TEST_CREATE_MS makes every create take that much longer, as large
 * rings do. Unset (always, in production), it costs a getenv per create. */
static void create_test_delay(void)
{
    const char *ms = getenv("SHOALD_TEST_CREATE_MS");
    if (ms)
        usleep((useconds_t)atoi(ms) * 1000);
}

int broker_topic_create_finish(broker_t *b, const char *name, const shoal_topic_config_t *cfg)
{
    dtopic_t *t = NULL;
    struct broker_creating *c;
    int rc;

    create_test_delay();
    rc = topic_open(b, name, cfg, true, &t); /* the rings: no lock held */

    pthread_rwlock_wrlock(&b->lock);
    if ((c = creating_find(b, name)))
        *c = b->creating[--b->ncreating];
    if (rc == 0 && (rc = registry_insert(b, t)) < 0)
        topic_free(t, cfg->partitions, true);
    if (rc < 0)
        store_topic_delete(b->store, name);
    else
        log_info("created topic %s: %u partition%s, %s, %llu-byte segments, %u ring slots", name,
                 cfg->partitions, SHOAL_PLURAL(cfg->partitions), cfg->storage ? "memory" : "disk",
                 (unsigned long long)cfg->segment_bytes, cfg->ring_slots);
    pthread_rwlock_unlock(&b->lock);
    if (rc == 0)
        broker_wake(b); /* the flusher may sleep on the partitions it knew */
    return rc;
}

int broker_topic_create(broker_t *b, const char *name, const shoal_topic_config_t *cfg)
{
    int rc = broker_topic_create_begin(b, name, cfg);
    return rc < 0 ? rc : broker_topic_create_finish(b, name, cfg);
}

/* Apply name=value pairs to a copy of the topic's config: all valid, or nothing. */
static int alter_apply(shoal_topic_config_t *cfg, const char *const *names,
                       const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = shoal_topic_config_set(cfg, names[i], values[i]);
        if (rc < 0)
            return rc;
        if (!topic_setting_is_alterable(names[i]))
            return SHOAL_ERR(SHOAL_EIMMUTABLE,
                             "%s fixes the shared ring's layout and cannot "
                             "change on an existing topic",
                             names[i]);
        if ((rc = check_memory_noops(cfg, names[i])) < 0)
            return rc;
    }
    return check_new_config(cfg);
}

/* Take the registry write lock and find a topic; on failure the lock is not held. */
static int broker_lock_topic(broker_t *b, const char *name, dtopic_t **t)
{
    if (!shoal_topic_name_is_valid(name))
        return SHOAL_ERR(SHOAL_ENAME, "invalid topic name '%.260s'", name);
    pthread_rwlock_wrlock(&b->lock);
    if (!(*t = broker_find(b, name))) {
        int rc = broker_no_topic(b, name);
        pthread_rwlock_unlock(&b->lock);
        return rc;
    }
    return 0;
}

/* With the write lock held: whether t may grow to cfg->partitions: never fewer, and the
 * new partitions' directories hold no segments, and their rings and files fit. */
static int grow_check(broker_t *b, const dtopic_t *t, const shoal_topic_config_t *cfg)
{
    shoal_topic_config_t added = *cfg;
    uint32_t had = t->cfg.partitions;
    int rc;

    if (cfg->partitions < had)
        return SHOAL_ERR(SHOAL_ECONFIG,
                         "topic %s has %u partitions, and partitions can only grow: fewer "
                         "would move keyed records and lose those of the dropped partitions",
                         t->name, had);
    added.partitions = cfg->partitions - had;
    if ((cfg->storage == SHOAL_STORAGE_DISK &&
         (rc = check_no_segments(b, t->name, had, cfg->partitions)) < 0) ||
        (rc = check_shm_room(b, t->name, &added, had)) < 0 ||
        (rc = check_fd_room(b, t->name, &added)) < 0)
        return rc;
    return 0;
}

/* With the write lock held: store cfg as t's settings and apply them. */
static int alter_store(broker_t *b, dtopic_t *t, const shoal_topic_config_t *cfg)
{
    int rc = store_topic_update(b->store, t->name, cfg);

    if (rc < 0)
        return rc;
    t->cfg = *cfg;
    for (uint32_t p = 0; p < cfg->partitions; p++)
        t->parts[p].cfg = *cfg;
    topic_publish_partitions(t);
    return 0;
}

int broker_topic_alter_begin(broker_t *b, const char *name, const char *const *names,
                             const char *const *values, size_t n, shoal_topic_config_t *next)
{
    shoal_topic_config_t cfg;
    dtopic_t *t;
    int rc = broker_lock_topic(b, name, &t);

    if (rc < 0)
        return rc;
    cfg = t->cfg;
    if (t->growing_to)
        rc = SHOAL_ERR(SHOAL_ADMIN_ACTION, GROWING, name);
    else if ((rc = alter_apply(&cfg, names, values, n)) < 0)
        ;
    else if (cfg.partitions != t->cfg.partitions) {
        if ((rc = grow_check(b, t, &cfg)) == 0 &&
            (rc = store_growing_note(b->store, name, t->cfg.partitions, cfg.partitions)) == 0) {
            t->growing_to = cfg.partitions;
            *next = cfg;
            rc = 1;
            log_info("topic %s: adding partitions %u..%u", name, t->cfg.partitions,
                     cfg.partitions - 1);
        }
    } else if ((rc = alter_store(b, t, &cfg)) == 0) {
        for (size_t i = 0; i < n; i++)
            log_info("topic %s: %s = %s", name, names[i], values[i]);
    }
    pthread_rwlock_unlock(&b->lock);
    if (rc == 0)
        broker_wake(b); /* the flusher may sleep on the partitions it knew */
    return rc;
}

/* Open partitions had..next->partitions - 1 of topic name into a new array of them all
 * (the first had left empty). No lock held: another thread may make them. */
static int grow_open(broker_t *b, const char *name, uint32_t had, const shoal_topic_config_t *next,
                     dpart_t **out)
{
    dpart_t *parts = shoal__calloc(next->partitions, sizeof(*parts));
    uint32_t failed;
    int rc;

    if (!parts)
        return -ENOMEM;
    if ((rc = parts_open(b, name, next, true, parts, had, &failed)) < 0) {
        for (uint32_t i = had; i <= failed; i++) /* the one that failed too, as topic_open */
            dpart_remove(&parts[i]);
        shoal__free(parts);
        return rc;
    }
    *out = parts;
    return 0;
}

/* Partitions had..now - 1 of topic name are being added: the groups reading the topic (those
 * with committed offsets in it) start them at offset 0, not per their members'
 * auto_offset_reset, which with "latest" would skip what producers sent there before the
 * rebalance that assigns them (Kafka's KAFKA-12478). Committed before the topic's new count
 * is stored: a crash between leaves offsets 0 of partitions not yet added, which a later
 * grow keeps (and a delete of the topic drops), never a grown topic without them. */
static void grow_start_groups(broker_t *b, const char *name, uint32_t had, uint32_t now)
{
    int n = store_offsets_start_added(b->store, name, had, now);

    if (n < 0)
        log_warn("topic %s: adding partitions %u..%u, but committing their start for the "
                 "groups reading the topic failed (a group with auto_offset_reset latest "
                 "may skip their first records): %s",
                 name, had, now - 1, shoal_errmsg());
    else
        log_debug("topic %s: adding partitions %u..%u (%d offsets committed at their start for "
                  "the groups reading it)",
                  name, had, now - 1, n);
}

/* A grow that ended without storing the topic's new count: its partitions' files are gone,
 * and so goes its note (store_growing_note). A failure leaves the note, and the next start
 * looks for their files again (there are none). */
static void grow_undone(broker_t *b, const char *name)
{
    if (store_growing_done(b->store, name) < 0)
        log_warn("topic %s: the metadata store still notes partitions being added (%s): the "
                 "next start looks for their files again",
                 name, shoal_errmsg());
}

/* Partition id of a topic the store does not count it in, left by a grow cut short: its
 * files go unless they hold records, which it never had (a metadata store restored from a
 * backup taken during a grow may not count a partition that has them since, or a memory
 * topic's grow may meet a lost disk topic's segments: those stay, and are reported at start
 * as any partition no topic claims). Whether it had files. */
static bool grow_cut_remove(broker_t *b, const char *name, uint32_t id)
{
    char dir[PATH_MAX];
    bool ring_used, ring = dpart_ring_found(b->shm_dir, name, id, &ring_used), found;

    if (snprintf(dir, sizeof(dir), "%s/%s-%u", b->cfg->data_dir, name, id) >= (int)sizeof(dir))
        dir[0] = '\0'; /* none: no partition of its name was ever made */
    found = ring || (dir[0] && access(dir, F_OK) == 0);
    if (ring_used || dir_has_segments(dir))
        log_warn("topic %s: partition %u, which a stop cut short while it was being added, "
                 "holds records (was the metadata store restored from a backup?): its files stay",
                 name, id);
    else if (found)
        dpart_remove_files(b->cfg->data_dir, b->shm_dir, name, id, NULL);
    return found;
}

/* At start: the partitions a grow was adding when a crash cut it short, before the topic's
 * new count was stored, were never served; their rings held RAM until someone removed them
 * by hand. Their files go (grow_cut_remove). */
static int grow_finish_cut(void *arg, const char *name, uint32_t first, uint32_t end)
{
    broker_t *b = arg;
    shoal_topic_config_t cfg;
    int rc = store_topic_get(b->store, name, &cfg);
    bool found = false;

    if (rc == 0 && cfg.partitions < end) {
        first = SHOAL_MAX(first, cfg.partitions);
        for (uint32_t i = first; i < end; i++)
            found |= grow_cut_remove(b, name, i);
        if (found)
            log_notice("topic %s: partitions %u..%u were being added when a stop cut that "
                       "short; they are not the topic's (it has %u)",
                       name, first, end - 1, cfg.partitions);
    }
    if (rc == 0 || rc == SHOAL_ENOTOPIC)
        grow_undone(b, name);
    return 0;
}

int broker_topic_grow_finish(broker_t *b, const char *name, const shoal_topic_config_t *next)
{
    dpart_t *parts = NULL;
    uint32_t had;
    dtopic_t *t;
    int rc;

    pthread_rwlock_rdlock(&b->lock);
    t = broker_find(b, name); /* kept: neither deleted nor altered while it grows */
    had = t->cfg.partitions;
    pthread_rwlock_unlock(&b->lock);
    create_test_delay();
    rc = grow_open(b, name, had, next, &parts);      /* the rings: no lock held */
    if (rc == 0 && getenv("SHOALD_TEST_GROW_CRASH")) /* test hook: before the count is stored */
        raise(SIGKILL);

    pthread_rwlock_wrlock(&b->lock);
    if (rc == 0) {
        /* The partitions move: nothing holds a pointer to one outside the registry lock. */
        memcpy(parts, t->parts, had * sizeof(*parts));
        shoal__free(t->parts);
        t->parts = parts;
        grow_start_groups(b, name, had, next->partitions); /* before: a crash between is safe */
        if ((rc = alter_store(b, t, next)) < 0)
            for (uint32_t i = had; i < next->partitions; i++) /* undone */
                dpart_remove(&t->parts[i]);
        else
            log_info("topic %s: partitions %u..%u added", name, had, next->partitions - 1);
    }
    if (rc < 0)
        grow_undone(b, name);
    t->growing_to = 0;
    pthread_rwlock_unlock(&b->lock);
    if (rc == 0)
        broker_wake(b);
    return rc;
}

int broker_topic_alter(broker_t *b, const char *name, const char *const *names,
                       const char *const *values, size_t n)
{
    shoal_topic_config_t next;
    int rc = broker_topic_alter_begin(b, name, names, values, n, &next);

    return rc == 1 ? broker_topic_grow_finish(b, name, &next) : rc;
}

static bool partition_dir_topic(const char *entry, char *name, size_t cap, uint32_t *id);

/* The delete of topic name is done once its files are gone: forget the store's note of it
 * (store_topic_delete). A failure leaves the note, and the next start removes the files
 * again (there are none). */
static void delete_done(broker_t *b, const char *name)
{
    if (store_deleting_done(b->store, name) < 0)
        log_warn("topic %s is deleted, but the metadata store still notes it as being deleted "
                 "(%s): the next start looks for its files again",
                 name, shoal_errmsg());
}

/* Remove every file of a topic the store no longer knows: its known partitions' (with cfg,
 * which tells clients still attached), and any partition directory of its name. */
static void topic_files_remove(broker_t *b, const char *name, uint32_t known,
                               const shoal_topic_config_t *cfg)
{
    DIR *d;
    struct dirent *e;

    for (uint32_t i = 0; i < known; i++)
        dpart_remove_files(b->cfg->data_dir, b->shm_dir, name, i, cfg);
    for (d = opendir(b->cfg->data_dir); d && (e = readdir(d));) {
        char topic[SHOAL_TOPIC_NAME_MAX + 1];
        uint32_t id;
        if (partition_dir_topic(e->d_name, topic, sizeof(topic), &id) && !strcmp(topic, name))
            dpart_remove_files(b->cfg->data_dir, b->shm_dir, name, id, NULL);
    }
    if (d)
        closedir(d);
}

/* A topic recovery left out: its record (maybe damaged), committed offsets and files go;
 * every partition directory of its name, since a damaged record may not say how many. */
static int topic_delete_unserved(broker_t *b, const char *name)
{
    shoal_topic_config_t cfg;
    int offsets, rc = store_topic_get(b->store, name, &cfg);

    if (rc == SHOAL_ENOTOPIC)
        return SHOAL_ERR(SHOAL_ENOTOPIC, "no topic named %s", name);
    if (rc < 0 && rc != SHOAL_ECORRUPT)
        return rc;
    if ((offsets = store_topic_delete(b->store, name)) < 0)
        return offsets;
    topic_files_remove(b, name, rc == 0 ? cfg.partitions : 0, rc == 0 ? &cfg : NULL);
    delete_done(b, name);
    log_info("deleted topic %s, which was not served, and %d committed offsets of it", name,
             offsets);
    return 0;
}

/* At start: a delete that a crash cut short left files of the topic (its rings held RAM
 * until removed by hand, and its directories stayed for good: a leak soak found 47 MiB of
 * rings and 307 directories after one). The store noted it; finish it. */
static int delete_finish(void *arg, const char *name, uint32_t partitions)
{
    broker_t *b = arg;

    topic_files_remove(b, name, partitions, NULL);
    delete_done(b, name);
    log_notice("finished deleting topic %s, which a stop had cut short: its files are gone", name);
    return 0;
}

int broker_topic_delete(broker_t *b, const char *name)
{
    dtopic_t *t;
    int offsets, rc = broker_lock_topic(b, name, &t);

    if (rc == SHOAL_ENOTOPIC) { /* perhaps one that recovery left out */
        pthread_rwlock_wrlock(&b->lock);
        if (broker_find(b, name))
            rc = SHOAL_ERR(SHOAL_ADMIN_ACTION, "topic %s was just created", name);
        else if (creating_find(b, name))
            rc = SHOAL_ERR(SHOAL_ADMIN_ACTION, BEING_CREATED, name);
        else
            rc = topic_delete_unserved(b, name);
        pthread_rwlock_unlock(&b->lock);
        return rc;
    }
    if (rc < 0)
        return rc;
    if (t->growing_to) {
        rc = SHOAL_ERR(SHOAL_ADMIN_ACTION, GROWING, name);
        goto out_unlock;
    }
    if ((rc = offsets = store_topic_delete(b->store, name)) < 0)
        goto out_unlock;
    if (getenv("SHOALD_TEST_DELETE_CRASH")) /* test hook: a crash before the files go */
        raise(SIGKILL);
    rc = 0;
    registry_remove(b, t);
    topic_free(t, t->cfg.partitions, true);
    delete_done(b, name);
    log_info("deleted topic %s and %d committed offsets of it", name, offsets);
out_unlock:
    pthread_rwlock_unlock(&b->lock);
    if (rc == 0)
        broker_wake(b); /* the flusher may sleep on the partitions it knew */
    return rc;
}

/* ------------------------------------------------------------------ flushing */

/* What the flusher waits on (in b->waits): the broker's wake word, per disk partition its
 * flush_waiters and, while the flusher sleeps on an idle broker, its readers' seq, then per
 * memory partition its space_waiters. */
struct flusher_wait {
    waitset_t *ws;
    int64_t tick_ns;
    bool busy;    /* work is waiting already (ACKS_DISK, or an append the last look saw) */
    bool partial; /* a disk partition's word is missing (no memory): wait one tick at most */
};

static void wait_add(struct flusher_wait *w, _Atomic uint32_t *word, uint32_t expected)
{
    w->partial |= waitset_add(w->ws, word, expected) < 0;
}

static bool is_disk_topic(const dtopic_t *t)
{
    return t->cfg.storage == SHOAL_STORAGE_DISK;
}

/* With the registry lock held: the earliest dpart_idle_until() of all partitions, or 0
 * when the flusher cannot wait on all the disk ones at once (more than WAITSET_MAX_WORDS
 * words: about 8,000 of them). */
static int64_t broker_idle_until(broker_t *b)
{
    int64_t until = INT64_MAX;
    size_t words = 1;
    for (size_t i = 0; i < b->ntopics && until > 0; i++) {
        dtopic_t *t = b->topics[i];
        for (uint32_t p = 0; p < t->cfg.partitions; p++) {
            int64_t at = dpart_idle_until(&t->parts[p], b->cfg->flush_ms); /* read once */
            until = SHOAL_MIN(until, at);
        }
        if (is_disk_topic(t))
            words += 2 * t->cfg.partitions;
    }
    return words <= WAITSET_MAX_WORDS ? until : 0;
}

/* With the registry lock held: count the flusher as a sleeper on every disk partition
 * (on), or no longer (off; partitions created meanwhile were never counted). */
static void flusher_announce(broker_t *b, bool on)
{
    for (size_t i = 0; i < b->ntopics; i++) {
        dtopic_t *t = b->topics[i];
        for (uint32_t p = 0; is_disk_topic(t) && p < t->cfg.partitions; p++)
            ring_sleeper_set(&t->parts[p].ring, &t->parts[p].ring.rd->daemon_sleeping, on);
    }
}

/* With the registry lock held: the disk partitions' words, seq too (armed) when asleep; then, as
 * far as room remains, the memory partitions' space_waiters (a producer waiting for room
 * may need a dead reader's pin reaped). */
static void wait_gather(broker_t *b, struct flusher_wait *w, bool asleep)
{
    for (size_t i = 0; i < b->ntopics; i++) {
        dtopic_t *t = b->topics[i];
        for (uint32_t p = 0; is_disk_topic(t) && p < t->cfg.partitions; p++) {
            ring_t *r = &t->parts[p].ring;
            /* The count before flush_wanted: a waiter sets flush_wanted before it moves
             * the count, so one that comes after this load makes the futex wait return at
             * once. A partition that cannot be flushed now (broken, or a failed write the
             * tick retries) is no reason to skip the wait. */
            dpart_t *d = &t->parts[p];
            uint32_t waiting = atomic_load(&r->ctl->flush_waiters);
            w->busy |= !d->broken && d->last_error == 0 && dpart_fsync_wanted(d, waiting);
            wait_add(w, &r->ctl->flush_waiters, waiting);
            if (asleep)
                wait_add(w, &r->rd->seq, ring_sleep_arm(r));
        }
    }
    for (size_t i = 0; i < b->ntopics; i++) {
        dtopic_t *t = b->topics[i];
        for (uint32_t p = 0; !is_disk_topic(t) && p < t->cfg.partitions; p++) {
            _Atomic uint32_t *word = &t->parts[p].ring.ctl->space_waiters;
            (void)waitset_add(w->ws, word, atomic_load(word));
        }
    }
}

/* Asleep, on every word; ticking, on the first 128 only (an ACKS_DISK waiter on a
 * partition past them waits for the tick): a round of helper threads every tick would
 * cost more than it saves. A helper that cannot start (a pids limit) leaves the same. */
static void wait_for_words(struct flusher_wait *w, int64_t timeout_ns, bool asleep)
{
    static bool warned;
    int rc = waitset_wait(w->ws, timeout_ns, asleep);

    if (rc < 0 && rc != -EFAULT && rc != -EINTR) {
        if (!warned)
            log_warn("the flusher cannot start a helper thread (%s): it watches its first 63 "
                     "disk partitions only, and ticks",
                     strerror(-rc));
        warned = true;
        (void)waitset_wait(w->ws, SHOAL_MIN(timeout_ns, w->tick_ns), false);
    }
}

/* The flusher sleeps like a consumer (ring.c, Sleep): it counts itself, reads each `seq`
 * and arms the partition, fences, and looks once more before it waits, so an append that
 * its last look missed wakes it. While a partition is busy it only ticks, and producers
 * never see it armed. */
void broker_wait_for_work(broker_t *b, uint32_t wake_seen, int tick_ms, int idle_ms)
{
    int64_t tick_ns = (int64_t)tick_ms * 1000000, wait_ns = tick_ns, now = shoal__mono_ns();
    struct flusher_wait w = {.ws = b->waits, .tick_ns = tick_ns};
    int64_t until = now + (int64_t)idle_ms * 1000000, idle_until;
    bool asleep;

    waitset_clear(w.ws);
    wait_add(&w, &b->wake, wake_seen); /* broker_wake(): shutdown, new topics */
    pthread_rwlock_rdlock(&b->lock);
    idle_until = broker_idle_until(b);
    until = SHOAL_MIN(until, idle_until);
    if ((asleep = until - now > wait_ns)) {
        flusher_announce(b, true);
        wait_ns = until - now;
    }
    wait_gather(b, &w, asleep);
    if (asleep) {
        atomic_thread_fence(memory_order_seq_cst); /* pairs with ring_wake_readers()' fence */
        w.busy |= broker_idle_until(b) == 0;
    }
    pthread_rwlock_unlock(&b->lock);
    /* A topic deleted meanwhile unmaps its words: the wait then fails with EFAULT or times
     * out, and the next pass looks again. */
    if (!w.busy)
        wait_for_words(&w, w.partial ? tick_ns : wait_ns, asleep);
    if (asleep) {
        pthread_rwlock_rdlock(&b->lock);
        flusher_announce(b, false);
        pthread_rwlock_unlock(&b->lock);
    }
}

void broker_wake(broker_t *b)
{
    atomic_fetch_add(&b->wake, 1);
    shoal__futex_wake(&b->wake, INT32_MAX);
}

uint32_t broker_wake_seq(broker_t *b)
{
    return atomic_load(&b->wake);
}

void broker_flush_all(broker_t *b, bool final, bool reap)
{
    pthread_rwlock_rdlock(&b->lock);
    for (size_t i = 0; i < b->ntopics; i++) {
        dtopic_t *t = b->topics[i];
        for (uint32_t p = 0; p < t->cfg.partitions; p++) {
            dpart_t *dp = &t->parts[p];
            if (reap) /* first: a file its probe finds cut is checked in this pass */
                dpart_reap(dp);
            dpart_flush(dp, b->cfg->flush_ms, b->cfg->flush_drop_cache, final); /* logs */
        }
    }
    pthread_rwlock_unlock(&b->lock);
}

/* ------------------------------------------------------------------ open / close */

static int lock_dir(const char *dir, const char *what)
{
    char path[PATH_MAX];
    int fd;
    snprintf(path, sizeof(path), "%s/.lock", dir);
    fd = shoal__open_regular(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600); /* never a link */
    if (fd < 0) {
        log_error("cannot open %s: %s", path, shoal_errmsg());
        return fd;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int rc = -errno;
        log_error("another shoald is using %s %s", what, dir);
        close(fd);
        return rc == -EWOULDBLOCK ? -EBUSY : rc;
    }
    return fd;
}

struct recovery {
    broker_t *b;
    size_t unserved;
};

/* The topic name of a partition directory <name>-<digits> (and the partition, when id is
 * not NULL), or false. */
static bool partition_dir_topic(const char *entry, char *name, size_t cap, uint32_t *id)
{
    const char *dash = strrchr(entry, '-');
    size_t len = dash ? (size_t)(dash - entry) : 0;
    if (!dash || !dash[1] || strspn(dash + 1, "0123456789") != strlen(dash + 1) || len >= cap)
        return false;
    memcpy(name, entry, len);
    name[len] = '\0';
    if (id)
        *id = (uint32_t)strtoul(dash + 1, NULL, 10);
    return shoal_topic_name_is_valid(name);
}

/* Segments under no topic the store knows are left alone, and said once at start: after
 * a lost metadata store, that is every topic. */
static void warn_unclaimed_dirs(broker_t *b)
{
    DIR *d = opendir(b->cfg->data_dir);
    struct dirent *e;

    while (d && (e = readdir(d))) {
        char name[SHOAL_TOPIC_NAME_MAX + 1], dir[PATH_MAX];
        shoal_topic_config_t cfg;
        if (!partition_dir_topic(e->d_name, name, sizeof(name), NULL) ||
            store_topic_get(b->store, name, &cfg) != SHOAL_ENOTOPIC)
            continue;
        if (snprintf(dir, sizeof(dir), "%s/%s", b->cfg->data_dir, e->d_name) < (int)sizeof(dir) &&
            dir_has_segments(dir))
            log_warn("%s holds segments of no topic in the metadata store (was the store lost?); "
                     "they are not served, and creating topic %s is refused until it is moved",
                     dir, name);
    }
    if (d)
        closedir(d);
    shoal__clear_err();
}

/* The ring name a file of ring.c's (<name>.ctl, .readers, .slot<i>) belongs to, into buf;
 * false for any other file. */
static bool ring_file_name(const char *entry, char *buf, size_t cap)
{
    const char *dot = strrchr(entry, '.');
    size_t len = dot ? (size_t)(dot - entry) : 0;
    bool slot = dot && !strncmp(dot, ".slot", 5) && dot[5] &&
                strspn(dot + 5, "0123456789") == strlen(dot + 5);

    if (!dot || len == 0 || len >= cap ||
        !(slot || !strcmp(dot, ".ctl") || !strcmp(dot, ".readers")))
        return false;
    memcpy(buf, entry, len);
    buf[len] = '\0';
    return true;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The ring names of every served partition, sorted; *n of them. NULL when out of memory. */
static const char **served_rings(const broker_t *b, size_t *n)
{
    const char **v;
    size_t total = 1; /* never a zero-sized allocation */

    for (size_t i = 0; i < b->ntopics; i++)
        total += b->topics[i]->cfg.partitions;
    *n = 0;
    if (!(v = shoal__calloc(total, sizeof(*v))))
        return NULL;
    for (size_t i = 0; i < b->ntopics; i++)
        for (uint32_t p = 0; p < b->topics[i]->cfg.partitions; p++)
            v[(*n)++] = b->topics[i]->parts[p].shm_name;
    qsort(v, *n, sizeof(*v), cmp_str_ptr);
    return v;
}

/* Stray rings found in the shm directory: how many files, their RAM, and the first names. */
struct strays {
    size_t files, rings;
    uint64_t bytes;
    char names[512];
};

static void strays_add(struct strays *st, int dirfd, const char *entry, const char *ring)
{
    struct stat sb;
    size_t used = strlen(st->names);

    if (fstatat(dirfd, entry, &sb, AT_SYMLINK_NOFOLLOW) == 0)
        st->bytes += (uint64_t)sb.st_blocks * 512;
    st->files++;
    if (strcmp(entry + strlen(ring), ".ctl") != 0) /* one name per ring: its .ctl's */
        return;
    st->rings++;
    if (used + strlen(ring) + 8 < sizeof(st->names))
        snprintf(st->names + used, sizeof(st->names) - used, "%s%s", used ? ", " : "", ring);
    else if (!strstr(st->names, ", ..."))
        snprintf(st->names + used, sizeof(st->names) - used, ", ...");
}

/* Ring files that no served partition owns hold RAM until someone removes them, and after a
 * lost metadata store they may hold the only copy of records not yet on disk: say so once
 * at start, with their size and how to remove them, and leave them. Partitions of a
 * topic recovery left out count too (their rings are not in use). */
static void warn_stray_rings(broker_t *b)
{
    struct strays st = {0};
    size_t n;
    const char **served = served_rings(b, &n);
    DIR *d = served ? opendir(b->shm_dir) : NULL;
    struct dirent *e;
    char ring[NAME_MAX + 1];

    while (d && (e = readdir(d))) {
        const char *key = ring;
        if (ring_file_name(e->d_name, ring, sizeof(ring)) &&
            !bsearch(&key, served, n, sizeof(*served), cmp_str_ptr))
            strays_add(&st, dirfd(d), e->d_name, ring);
    }
    if (d)
        closedir(d);
    shoal__free(served);
    if (st.files)
        log_warn("%s holds %zu ring files (%.1f MiB of RAM) of no served topic: %s; they are "
                 "kept, as they may hold the only copy of records not yet on disk (a lost "
                 "metadata store); if they are not needed, free the memory with "
                 "rm %s/<name>.* for each name",
                 b->shm_dir, st.files, (double)st.bytes / (1 << 20),
                 st.rings ? st.names : "(no .ctl files)", b->shm_dir);
}

/* Partitions recovery found without a directory (and no commits): started empty at 0. One
 * line for the topic, since a create cut short by a crash leaves all those it had not made. */
static void log_dirs_missing(const dtopic_t *t)
{
    uint32_t n = 0, first = 0, last = 0;

    for (uint32_t p = 0; p < t->cfg.partitions; p++) {
        if (!t->parts[p].dir_missing)
            continue;
        first = n++ ? first : p;
        last = p;
    }
    if (n == 1)
        log_warn("%s-%u: its directory was missing: it starts at offset 0 (its create was cut "
                 "short, an older shoald never wrote to it, or its records are lost: deleted "
                 "or moved away)",
                 t->name, first);
    else if (n > 1)
        log_warn("topic %s: %u of its %u partitions (%u..%u) had no directory: they start at "
                 "offset 0 (its create was cut short, an older shoald never wrote to them, or "
                 "their records are lost: deleted or moved away)",
                 t->name, n, t->cfg.partitions, first, last);
}

/* A topic that cannot be recovered (damaged files, a damaged store record) is left out,
 * its files untouched, and the others are served; only running out of memory stops. */
static int recover_topic(void *arg, const char *name, const shoal_topic_config_t *cfg)
{
    struct recovery *rv = arg;
    dtopic_t *t;
    int rc = cfg ? topic_open(rv->b, name, cfg, false, &t) : SHOAL_ECORRUPT;

    if (rc == 0)
        log_dirs_missing(t);
    if (rc == 0 && (rc = registry_insert(rv->b, t)) < 0)
        topic_free(t, cfg->partitions, false);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        log_error("topic %s is not served: %s (%s); its files are left as they are: repair or "
                  "remove them, then restart shoald",
                  name, shoal_strerror(rc), shoal_errmsg());
        rv->unserved++;
    }
    return 0;
}

/* One line for the whole recovery; each partition's own lines are at debug level, as a
 * broker may have thousands. */
static void log_recovered(const broker_t *b, size_t unserved)
{
    size_t parts = 0, reattached = 0;

    for (size_t i = 0; i < b->ntopics; i++)
        for (uint32_t p = 0; p < b->topics[i]->cfg.partitions; p++, parts++)
            reattached += b->topics[i]->parts[p].ring_reattached;
    log_info("recovered %zu topic%s%s, %zu partition%s (%zu shared ring%s re-attached, %zu built "
             "anew); data in %s, shared memory in %s",
             b->ntopics, SHOAL_PLURAL(b->ntopics), unserved ? " (and some not: see above)" : "",
             parts, SHOAL_PLURAL(parts), reattached, SHOAL_PLURAL(reattached), parts - reattached,
             b->cfg->data_dir, b->shm_dir);
}

static int make_dir(const char *dir, unsigned mode)
{
    struct stat st;
    int rc = shoal__mkdir_p(dir, mode);
    if (rc == 0 && stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        rc = -ENOTDIR;
    if (rc < 0)
        log_error("cannot create %s: %s", dir, shoal_strerror(rc));
    return rc;
}

/* Rings belong in memory: on a disk filesystem every append becomes the kernel's writeback
 * and the rings outlive a reboot, which recovery takes for a daemon restart. Said, not
 * refused (a test or a RAM disk of another kind may mean it). */
static void warn_shm_not_tmpfs(const char *dir)
{
    struct statfs fs;

    if (statfs(dir, &fs) == 0 && fs.f_type != TMPFS_MAGIC && fs.f_type != RAMFS_MAGIC)
        log_warn("the shm directory %s is not on a tmpfs (filesystem type 0x%lx): the rings "
                 "there are written back to disk by the kernel and outlive a reboot; /dev/shm "
                 "is one",
                 dir, (unsigned long)fs.f_type);
}

/* A directory fit for the rings: a real directory (not a link), ours, that nobody else may
 * write (who could rename or swap ring files under the daemon). Not on a tmpfs is only
 * warned about. 0, -EPERM when unfit (*st says why), or a negative code. */
static int check_shm_dir(const char *dir, struct stat *st)
{
    if (lstat(dir, st) < 0)
        return -errno;
    if (!S_ISDIR(st->st_mode) || st->st_uid != geteuid() || (st->st_mode & 022))
        return -EPERM;
    warn_shm_not_tmpfs(dir);
    return 0;
}

/* The directory name an earlier start chose beside dflt (shm_dir_new): dflt's name, '@'
 * (which no instance name holds) and 16 hex digits, in the realpath form the store keeps
 * (broker_ring_owner). */
static bool shm_dir_is_alternate(const broker_t *b, const char *path)
{
    char parent[PATH_MAX], prefix[PATH_MAX + 8];
    size_t n;

    if (!realpath(b->cfg->shm_dir, parent))
        return false;
    n = (size_t)snprintf(prefix, sizeof(prefix), "%s/shoal.%s@", parent, b->cfg->instance);
    return n < sizeof(prefix) && strncmp(path, prefix, n) == 0 && strlen(path + n) == 16 &&
           strspn(path + n, "0123456789abcdef") == 16;
}

/* What an unfit shm directory is (check_shm_dir), for a log line. */
static const char *unfit_text(const struct stat *st, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s uid %u mode %04o",
             S_ISDIR(st->st_mode)   ? "directory"
             : S_ISLNK(st->st_mode) ? "link"
                                    : "not a directory",
             (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777));
    return buf;
}

/* The alternate directory of the last start, while it is fit (until a reboot): 1 with it in
 * b->shm_dir, 0 for none, or a negative code. */
static int shm_dir_kept(broker_t *b, const char *dflt)
{
    char prev[PATH_MAX], why[64];
    struct stat st;
    int rc = store_ring_shm(b->store, prev, sizeof(prev));

    if (rc < 0) {
        log_error("cannot read the last shm directory from the metadata store: %s", shoal_errmsg());
        return rc;
    }
    if (!shm_dir_is_alternate(b, prev) || (rc = check_shm_dir(prev, &st)) == -ENOENT)
        return 0; /* none, or gone with a reboot */
    if (rc < 0) {
        log_warn("%s, where the last start kept the rings, is unfit for them now (%s): the rings "
                 "left there are not used",
                 prev, rc == -EPERM ? unfit_text(&st, why, sizeof(why)) : strerror(-rc));
        return 0;
    }
    snprintf(b->shm_dir, sizeof(b->shm_dir), "%s", prev);
    log_notice("the rings stay in %s, chosen when %s was unfit for them", prev, dflt);
    return 1;
}

/* A new directory named after dflt that nobody could have made first (64 random bits): 1,
 * or a negative code. */
static int shm_dir_new(broker_t *b, const char *dflt, const struct stat *unfit)
{
    char why[64];
    struct stat st;
    uint64_t r;
    int rc;

    for (int tries = 0; tries < 8; tries++) {
        while ((rc = (int)getrandom(&r, sizeof(r), 0)) < 0 && errno == EINTR)
            ;
        if (rc != (int)sizeof(r))
            break;
        snprintf(b->shm_dir, sizeof(b->shm_dir), "%s@%016llx", dflt, (unsigned long long)r);
        if (mkdir(b->shm_dir, 0700) == 0) {
            log_warn("%s is not a directory of this user's (uid %u) that only it may write (%s): "
                     "another user may have made it to tamper with the rings, so they go to %s "
                     "instead, at every start until a reboot",
                     dflt, (unsigned)geteuid(), unfit_text(unfit, why, sizeof(why)), b->shm_dir);
            return (rc = check_shm_dir(b->shm_dir, &st)) < 0 ? rc : 1;
        }
        if (errno != EEXIST)
            break;
    }
    log_error("cannot create a shm directory beside %s, which is unfit for the rings: %s", dflt,
              errno == EEXIST ? "every name tried was taken" : strerror(errno));
    return -EPERM;
}

/* A directory shm_dir_new made for a start that then failed: not left behind by every
 * retry (Restart=on-failure). */
static void shm_dir_discard(broker_t *b)
{
    char lock[PATH_MAX + 8];

    snprintf(lock, sizeof(lock), "%s/.lock", b->shm_dir);
    unlink(lock);
    rmdir(b->shm_dir);
}

/* The shm directory is <shm.dir>/shoal.<instance>, a name anyone can take first in a
 * world-writable /dev/shm; anything there unfit for the rings (check_shm_dir: it is looked
 * at, never followed) does not stop the daemon: the rings go to a directory of an
 * unpredictable name beside it, which the store remembers (broker_ring_owner), so that a
 * daemon restart re-attaches them. 1 when that directory was made now, 0, or a negative
 * code. */
static int broker_shm_dir(broker_t *b)
{
    char dflt[PATH_MAX - 32];
    struct stat st;
    int rc;

    if (snprintf(dflt, sizeof(dflt), "%s/shoal.%s", b->cfg->shm_dir, b->cfg->instance) >=
        (int)sizeof(dflt)) {
        log_error("the shm directory %s/shoal.%s is longer than %zu bytes", b->cfg->shm_dir,
                  b->cfg->instance, sizeof(dflt) - 1);
        return -ENAMETOOLONG;
    }
    if ((rc = shm_dir_kept(b, dflt)) != 0)
        return rc < 0 ? rc : 0;
    snprintf(b->shm_dir, sizeof(b->shm_dir), "%s", dflt);
    if ((rc = make_dir(b->cfg->shm_dir, 0700)) < 0)
        return rc;
    if (mkdir(dflt, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        log_error("cannot create %s: %s", dflt, strerror(-rc));
        return rc;
    }
    if ((rc = check_shm_dir(dflt, &st)) == -EPERM)
        return shm_dir_new(b, dflt, &st);
    if (rc < 0)
        log_error("cannot use %s: %s", dflt, shoal_strerror(rc));
    return rc;
}

/* The data and runtime directories (and the store's) hold files shoald creates by name:
 * another user who could write in one of them, or in a directory on the way, could plant
 * a link there that shoald follows as root (a local security session made root's LMDB
 * lock file overwrite another file, and the socket's chown give /etc/shadow's group away)
 * or swap its files. Refused with the directory at fault (shoal__check_dir_path). */
static int check_state_dir(const char *dir, const char *what)
{
    int rc = shoal__check_dir_path(dir, what, false);

    if (rc < 0)
        log_error("%s", shoal_errmsg());
    return rc;
}

/* Make a state directory (and the missing ones on its way) and check it, but check the
 * deepest part of its path that exists first: a refused start makes no directory where
 * another user could have led it. */
static int make_state_dir(const char *dir, const char *what, unsigned mode)
{
    char have[PATH_MAX], label[64];
    int rc;

    if (snprintf(have, sizeof(have), "%s", dir) >= (int)sizeof(have))
        return -ENAMETOOLONG;
    while (access(have, F_OK) < 0 && errno == ENOENT) {
        char *slash = strrchr(have, '/');
        if (!slash)
            snprintf(have, sizeof(have), ".");
        else
            slash[slash == have] = '\0'; /* "/" stays */
    }
    snprintf(label, sizeof(label), "%s's parent", what);
    if (strcmp(have, dir) != 0 && (rc = shoal__check_dir_path(have, label, true)) < 0) {
        log_error("%s", shoal_errmsg());
        return rc;
    }
    if ((rc = make_dir(dir, mode)) < 0)
        return rc;
    return check_state_dir(dir, what);
}

/* The metadata store's files are opened by LMDB, which follows links: refuse one there. */
static int check_store_files(const char *meta)
{
    static const char *const names[] = {"data.mdb", "lock.mdb"};
    char path[PATH_MAX + 16];
    struct stat st;

    for (size_t i = 0; i < SHOAL_ARRAY_LEN(names); i++) {
        snprintf(path, sizeof(path), "%s/%s", meta, names[i]);
        if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
            log_error("%s is not a regular file (mode %06o): the metadata store's files must "
                      "be (a link there could make shoald write over another file)",
                      path, (unsigned)st.st_mode);
            return -EPERM;
        }
    }
    return 0;
}

/* store_map_hook: LMDB keeps no checksums, and a damaged page of data.mdb can send it past
 * the end of the file, into its map where there is nothing (SIGBUS). Say so before the
 * process dies of it. */
static void guard_store(void *addr, size_t len, const char *dir)
{
    static char msg[PATH_MAX + 160];

    snprintf(msg, sizeof(msg),
             "<2>fatal: the metadata store %s/data.mdb is damaged (a page points past its "
             "end), and shoald stops; restore the file from a backup\n",
             dir);
    shmguard_fatal(addr, len, msg);
}

/* The id this data directory's rings carry (store_ring_owner), before any is opened. */
static int broker_ring_owner(broker_t *b)
{
    char prev[PATH_MAX], shm[PATH_MAX];
    int rc;

    if (!realpath(b->shm_dir, shm)) /* one directory however the configuration spells it */
        snprintf(shm, sizeof(shm), "%s", b->shm_dir);
    rc = store_ring_owner(b->store, shm, &b->ring_owner, prev, sizeof(prev));

    if (rc < 0)
        log_error("cannot store the shared rings' owner in the metadata store: %s (%s)",
                  shoal_strerror(rc), shoal_errmsg());
    else if (rc == 1 && prev[0])
        log_notice("this data directory was served last with its shared memory in %s, now in "
                   "%s: each ring is rebuilt from disk (rings there from before are not "
                   "re-attached)",
                   prev, b->shm_dir);
    return rc < 0 ? rc : 0;
}

static int broker_dirs(broker_t *b)
{
    const shoald_config_t *c = b->cfg;
    char meta[PATH_MAX];
    int rc, made;

    if (snprintf(b->socket_path, sizeof(b->socket_path), "%s/shoald.sock", c->runtime_dir) >=
            (int)sizeof(b->socket_path) ||
        snprintf(meta, sizeof(meta), "%s/meta", c->data_dir) >= (int)sizeof(meta))
        return -ENAMETOOLONG;
    if ((rc = ctlsock_path_check(b->socket_path)) < 0) { /* before anything is created */
        log_error("%s", shoal_errmsg());
        return rc;
    }
    /* The data directory's lock first: a second shoald on it creates nothing else. */
    if ((rc = make_state_dir(c->data_dir, "data directory", 0700)) < 0)
        return rc;
    if ((b->data_lock_fd = lock_dir(c->data_dir, "data directory")) < 0)
        return b->data_lock_fd;
    if ((rc = make_state_dir(c->runtime_dir, "runtime directory", 0755)) < 0 ||
        (rc = make_state_dir(meta, "metadata store", 0700)) < 0 ||
        (rc = check_store_files(meta)) < 0)
        return rc;
    store_set_map_hook(guard_store);
    if ((rc = store_open(meta, 0, &b->store)) < 0) {
        log_error("cannot open the metadata store in %s: %s (%s)", meta, shoal_strerror(rc),
                  shoal_errmsg());
        return rc;
    }
    if ((made = broker_shm_dir(b)) < 0)
        return made;
    if ((rc = b->shm_lock_fd = lock_dir(b->shm_dir, "shm directory")) < 0 ||
        (rc = broker_ring_owner(b)) < 0) {
        if (made)
            shm_dir_discard(b);
        return rc;
    }
    return 0;
}

/* Every ring mapping shoald makes is guarded: a client that cuts one of its files short
 * then stops that partition (partition.c), not the daemon. */
static void guard_mapping(void *addr, size_t len)
{
    static _Atomic bool warned;
    if (shmguard_add(addr, len) < 0 && !atomic_exchange(&warned, true))
        log_warn("too many shared mappings to guard them all: a client that truncates a ring "
                 "file can stop shoald");
}

/* Write out what the last run left in the page cache before recovery takes the ends of the
 * .log files as flushed: a daemon killed (or crashed) had written them, not necessarily
 * fsynced them, and a power loss after this start would lose records that shoald then
 * called on disk (ACKS_DISK waits would say so at once). One syncfs() of the data
 * directory's filesystem: after a clean stop nothing is dirty, and it costs nothing. A
 * failure (EIO) means the disk may have lost records the last run wrote: no start. */
static int data_dir_sync(const broker_t *b)
{
    int64_t t0 = shoal__mono_ns();
    int fd = open(b->cfg->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

    if (fd < 0 || syncfs(fd) < 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    if (rc < 0) {
        log_error("cannot write out the data in %s before recovery (syncfs: %s): records the "
                  "last run wrote may not be on disk; check the disk, then start again",
                  b->cfg->data_dir, strerror(-rc));
        return rc;
    }
    log_info("synced the data directory's filesystem before recovery in %lld ms",
             (long long)((shoal__mono_ns() - t0) / 1000000));
    return 0;
}

int broker_open(broker_t *b, const shoald_config_t *cfg)
{
    struct recovery rv = {.b = b};
    int rc;

    memset(b, 0, sizeof(*b));
    b->cfg = cfg;
    b->data_lock_fd = b->shm_lock_fd = -1;
    pthread_rwlock_init(&b->lock, NULL);
    if ((rc = shmguard_install()) < 0) {
        log_error("cannot install the SIGBUS handler: %s", strerror(-rc));
        goto out_close;
    }
    ring_set_map_hooks(guard_mapping, shmguard_remove);
    if (!(b->waits = waitset_new())) {
        rc = -ENOMEM;
        goto out_close;
    }
    if ((rc = broker_dirs(b)) < 0 || (rc = data_dir_sync(b)) < 0)
        goto out_close;
    if ((rc = store_deleting_foreach(b->store, delete_finish, b)) < 0)
        log_warn("cannot read the deletes a stop cut short (%s): their files stay", shoal_errmsg());
    if ((rc = store_growing_foreach(b->store, grow_finish_cut, b)) < 0)
        log_warn("cannot read the partition growths a stop cut short (%s): their files stay",
                 shoal_errmsg());
    rc = store_topic_foreach(b->store, recover_topic, &rv);
    if (rc < 0) {
        log_error("recovery failed: %s (%s)", shoal_strerror(rc), shoal_errmsg());
        goto out_close;
    }
    warn_unclaimed_dirs(b);
    warn_stray_rings(b);
    log_recovered(b, rv.unserved);
    broker_shm_cap_check(b);
    return 0;
out_close:
    broker_close(b);
    return rc;
}

/* After the final flush: say which records did not reach disk, and where they wait. */
static size_t report_unsynced(broker_t *b)
{
    size_t short_parts = 0;
    for (size_t i = 0; i < b->ntopics; i++) {
        for (uint32_t p = 0; p < b->topics[i]->cfg.partitions; p++) {
            dpart_t *dp = &b->topics[i]->parts[p];
            int64_t n = dpart_unsynced(dp);
            if (n <= 0)
                continue;
            log_error("%s-%u: %lld records (offsets %lld and on) are not on disk; they stay in "
                      "shared memory (%s), where the next start of shoald writes them out: a "
                      "reboot before then loses them",
                      dp->topic, dp->id, (long long)n, (long long)dp->synced_offset, b->shm_dir);
            short_parts++;
        }
    }
    return short_parts;
}

int broker_close(broker_t *b)
{
    size_t short_parts = 0;
    if (b->topics) {
        broker_flush_all(b, true, false);
        short_parts = report_unsynced(b);
    }
    for (size_t i = 0; i < b->ntopics; i++)
        topic_free(b->topics[i], b->topics[i]->cfg.partitions, false);
    shoal__free(b->topics);
    b->topics = NULL;
    shoal__free(b->creating);
    b->creating = NULL;
    b->ntopics = 0;
    store_close(b->store);
    b->store = NULL;
    waitset_free(b->waits);
    b->waits = NULL;
    if (b->data_lock_fd >= 0)
        close(b->data_lock_fd);
    if (b->shm_lock_fd >= 0)
        close(b->shm_lock_fd);
    b->data_lock_fd = b->shm_lock_fd = -1;
    pthread_rwlock_destroy(&b->lock);
    return short_parts ? SHOAL_ERR(-EIO, "%zu partitions kept records off disk", short_parts) : 0;
}
