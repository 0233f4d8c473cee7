/* store.c - the daemon's metadata store: one LMDB environment with the named databases
 * "topics", "offsets", "groups" and "acls", and the topic config record format.
 * The only file in shoal that includes <lmdb.h>.
 *
 * DESIGN: the daemon is the single writer; every mutation is one write transaction that
 * LMDB commits with fsync (the environment is opened without MDB_NOSYNC), so a function
 * that returns 0 has made its change durable. Reads use short read-only transactions and
 * copy what they return out of the map before ending them, so no pointer into LMDB
 * memory ever escapes this file. The environment is opened with MDB_NOTLS so that read
 * transactions are not tied to a thread's reader slot: a store_topic_foreach() callback
 * may call store_topic_get() on the same thread.
 *
 * A topic record is STORE_TOPIC_RECORD_BYTES (88), little-endian, versioned so that a
 * later layout can be told apart from corruption (version 1's 32 bytes still decode):
 *   u8 version (2) | u8[3] reserved (0) | u32 partitions | u32 storage | u64 segment_bytes
 *   | u32 ring_slots | u32 max_record_bytes | u32 reserved (0) | i64 retention_ms
 *   | i64 retention_bytes | i64 segment_ms | u32 cleanup_policy | u32 reserved (0)
 *   | i64 flush_messages | i64 flush_ms | i64 delete_retention_ms
 * Keys of "topics" are the topic name bytes without a NUL, so LMDB's default byte-wise
 * key order is name order. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "topic_config.h"
#include "util.h"

#define STORE_DEFAULT_MAP_BYTES ((size_t)1 << 30)
#define STORE_TOPIC_VERSION     2
#define STORE_TOPIC_V1_BYTES    32
#define STORE_DB_COUNT          5

struct store {
    MDB_env *env;
    off_t reserved_to; /* data.mdb's blocks are allocated up to here (reserve_room) */
    MDB_dbi topics;
    MDB_dbi offsets;
    MDB_dbi groups;
    MDB_dbi acls;
    MDB_dbi meta;
};

/* LMDB reports its own conditions as MDB_* codes and system failures as errno values.
 * Both become SHOAL_EIO with LMDB's message, except running out of memory, which keeps
 * its usual -ENOMEM so that callers treat it like any other allocation failure. */
static int store_err(int rc, const char *what)
{
    if (rc == ENOMEM)
        return SHOAL_ERR(-ENOMEM, "store: %s: %s", what, mdb_strerror(rc));
    return SHOAL_ERR(SHOAL_EIO, "store: %s: %s", what, mdb_strerror(rc));
}

/* ------------------------------------------------------------------ record format */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | ((uint64_t)get_le32(p + 4) << 32);
}

/* Version 2: the version 1 record (bytes 0..31) followed by the lifecycle settings. */
void store_topic_encode(uint8_t out[STORE_TOPIC_RECORD_BYTES], const shoal_topic_config_t *cfg)
{
    memset(out, 0, STORE_TOPIC_RECORD_BYTES);
    out[0] = STORE_TOPIC_VERSION;
    put_le32(out + 4, cfg->partitions);
    put_le32(out + 8, cfg->storage);
    put_le64(out + 12, cfg->segment_bytes);
    put_le32(out + 20, cfg->ring_slots);
    put_le32(out + 24, cfg->max_record_bytes);
    put_le64(out + 32, (uint64_t)cfg->retention_ms);
    put_le64(out + 40, (uint64_t)cfg->retention_bytes);
    put_le64(out + 48, (uint64_t)cfg->segment_ms);
    put_le32(out + 56, cfg->cleanup_policy);
    put_le64(out + 64, (uint64_t)cfg->flush_messages);
    put_le64(out + 72, (uint64_t)cfg->flush_ms);
    put_le64(out + 80, (uint64_t)cfg->delete_retention_ms);
}

/* The version is checked before the length: a later version may well be longer, and
 * "written by a newer shoal" is the more useful diagnosis. A version 1 record (written
 * before topics had lifecycle settings) gets the defaults for them. */
int store_topic_decode(const uint8_t *in, size_t len, shoal_topic_config_t *cfg)
{
    size_t want;
    if (len == 0)
        return SHOAL_ERR(SHOAL_ECORRUPT, "store: empty topic record");
    if (in[0] != 1 && in[0] != STORE_TOPIC_VERSION)
        return SHOAL_ERR(SHOAL_EVERSION, "store: topic record version %u, expected %u",
                         (unsigned)in[0], (unsigned)STORE_TOPIC_VERSION);
    want = in[0] == 1 ? STORE_TOPIC_V1_BYTES : STORE_TOPIC_RECORD_BYTES;
    if (len != want)
        return SHOAL_ERR(SHOAL_ECORRUPT, "store: topic record of %zu bytes, expected %zu", len,
                         want);
    if (in[1] | in[2] | in[3] | get_le32(in + 28) | (len > 60 ? get_le32(in + 60) : 0))
        return SHOAL_ERR(SHOAL_ECORRUPT, "store: topic record has non-zero reserved bytes");
    shoal_topic_config_init(cfg);
    cfg->partitions = get_le32(in + 4);
    cfg->storage = get_le32(in + 8);
    cfg->segment_bytes = get_le64(in + 12);
    cfg->ring_slots = get_le32(in + 20);
    cfg->max_record_bytes = get_le32(in + 24);
    if (in[0] == 1)
        return 0;
    cfg->retention_ms = (int64_t)get_le64(in + 32);
    cfg->retention_bytes = (int64_t)get_le64(in + 40);
    cfg->segment_ms = (int64_t)get_le64(in + 48);
    cfg->cleanup_policy = get_le32(in + 56);
    cfg->flush_messages = (int64_t)get_le64(in + 64);
    cfg->flush_ms = (int64_t)get_le64(in + 72);
    cfg->delete_retention_ms = (int64_t)get_le64(in + 80);
    return 0;
}

/* ------------------------------------------------------------------ open / close */

/* Disk blocks for the store to grow into, taken beyond the end of data.mdb (its size,
 * which LMDB reads, does not change): on a full disk, commits still find room, among them
 * the topic delete or retention change that would free space. Taken at open, and again
 * after a commit that grew the file into the last of it. Where the filesystem cannot
 * preallocate, only this margin is missing. */
#define STORE_RESERVE_BYTES (8 << 20)
#define STORE_RESERVE_MIN   (64 << 10)

static void reserve_room(store_t *st)
{
    mdb_filehandle_t fd;
    struct statvfs fs;
    struct stat st_file;
    off_t len = STORE_RESERVE_BYTES;

    if (mdb_env_get_fd(st->env, &fd) != 0 || fstat(fd, &st_file) != 0)
        return;
    if (fstatvfs(fd, &fs) == 0) /* a small filesystem gives a 64th of itself at most */
        len = SHOAL_MIN(len, (off_t)(fs.f_blocks / 64 * fs.f_frsize));
    for (; len >= STORE_RESERVE_MIN; len /= 4) { /* and less when that much is not free */
        if (fallocate(fd, FALLOC_FL_KEEP_SIZE, st_file.st_size, len) == 0) {
            st->reserved_to = st_file.st_size + len;
            return;
        }
        if (errno != ENOSPC)
            break;
    }
    /* None could be had (a full disk, a filesystem that cannot preallocate): try again once
     * the file has grown a little, not at every commit. */
    st->reserved_to = st_file.st_size + STORE_RESERVE_MIN;
}

/* Commit txn (which frees it either way), then renew the reserve when the file has grown
 * into its last STORE_RESERVE_MIN bytes. 0 or the commit's error. */
static int store_commit(store_t *st, MDB_txn *txn, const char *what)
{
    mdb_filehandle_t fd;
    struct stat st_file;
    int rc = mdb_txn_commit(txn);

    if (rc != 0)
        return store_err(rc, what);
    if (mdb_env_get_fd(st->env, &fd) == 0 && fstat(fd, &st_file) == 0 &&
        st_file.st_size + STORE_RESERVE_MIN > st->reserved_to)
        reserve_room(st);
    return 0;
}

static int open_dbs(store_t *st)
{
    static const char *const names[STORE_DB_COUNT] = {"topics", "offsets", "groups", "acls",
                                                      "meta"};
    MDB_dbi *dbis[STORE_DB_COUNT] = {&st->topics, &st->offsets, &st->groups, &st->acls, &st->meta};
    MDB_txn *txn;
    int rc;

    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0)
        return store_err(rc, "begin transaction");
    for (int i = 0; i < STORE_DB_COUNT; i++) {
        rc = mdb_dbi_open(txn, names[i], MDB_CREATE, dbis[i]);
        if (rc != 0) {
            rc = store_err(rc, names[i]);
            goto out_abort;
        }
    }
    return store_commit(st, txn, "commit");

out_abort:
    mdb_txn_abort(txn);
    return rc;
}

/* LMDB maps data.mdb and trusts its meta page: a file cut shorter than the pages the meta
 * page counts would fault (SIGBUS) at the first read past its end. */
static int check_file_length(store_t *st, const char *dir)
{
    char path[PATH_MAX];
    MDB_envinfo info;
    MDB_stat stat_;
    struct stat st_file;
    unsigned long long need;

    if (mdb_env_info(st->env, &info) != 0 || mdb_env_stat(st->env, &stat_) != 0)
        return SHOAL_ERR(SHOAL_ECORRUPT, "store: cannot read the meta page of %s", dir);
    need = ((unsigned long long)info.me_last_pgno + 1) * stat_.ms_psize;
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (stat(path, &st_file) < 0)
        return SHOAL_ERR(-errno, "store: %s: %s", path, strerror(errno));
    if ((unsigned long long)st_file.st_size < need)
        return SHOAL_ERR(SHOAL_ECORRUPT,
                         "store: %s has %lld bytes but its pages reach %llu: it was cut short; "
                         "restore it from a backup",
                         path, (long long)st_file.st_size, need);
    return 0;
}

/* LMDB keeps no checksums: a data.mdb damaged on disk can fail one of its internal checks,
 * and LMDB then aborts the process after calling this. Say which file it is, and what to
 * do, where the operator looks (the daemon's stderr, the journal). */
static void store_assert(MDB_env *env, const char *msg)
{
    const char *dir = NULL;

    if (mdb_env_get_path(env, &dir) != 0 || !dir)
        dir = "?";
    fprintf(stderr,
            "<2>fatal: the metadata store %s/data.mdb is damaged (LMDB: %s), and LMDB stops the "
            "process; restore the file from a backup\n",
            dir, msg);
}

static store_map_hook map_hook;

void store_set_map_hook(store_map_hook hook)
{
    map_hook = hook;
}

/* Where LMDB maps the store's file, and how far (its map size): 0 when /proc/self/maps
 * does not say (LMDB tells the address only of a fixed map). */
static int store_map(const store_t *st, void **addr, size_t *len)
{
    char file[PATH_MAX + 16], want[PATH_MAX], line[PATH_MAX + 128];
    const char *dir = NULL;
    unsigned long lo, hi;
    int found = 0;
    FILE *maps;

    *addr = NULL;
    *len = 0;
    if (mdb_env_get_path(st->env, &dir) != 0 || !dir ||
        snprintf(file, sizeof(file), "%s/data.mdb", dir) >= (int)sizeof(file) ||
        !realpath(file, want) || !(maps = fopen("/proc/self/maps", "re")))
        return 0; /* the kernel names the file by its real path */
    while (!found && fgets(line, sizeof(line), maps)) {
        char *path = strchr(line, '/');
        line[strcspn(line, "\n")] = '\0';
        found = path && !strcmp(path, want) && sscanf(line, "%lx-%lx", &lo, &hi) == 2;
    }
    fclose(maps);
    if (found) {
        *addr = (void *)lo;
        *len = hi - lo;
    }
    return found;
}

static int open_env(store_t *st, const char *dir, size_t map_bytes)
{
    int rc;

    rc = mdb_env_create(&st->env);
    if (rc != 0)
        return store_err(rc, "create environment");
    (void)mdb_env_set_assert(st->env, store_assert);
    rc = mdb_env_set_maxdbs(st->env, STORE_DB_COUNT);
    if (rc == 0)
        rc = mdb_env_set_mapsize(st->env, map_bytes ? map_bytes : STORE_DEFAULT_MAP_BYTES);
    if (rc == 0)
        rc = mdb_env_open(st->env, dir, MDB_NOTLS, 0600);
    if (rc != 0)
        return store_err(rc, dir);
    if (map_hook) {
        void *addr;
        size_t len;
        if (store_map(st, &addr, &len))
            map_hook(addr, len, dir);
    }
    if ((rc = check_file_length(st, dir)) < 0)
        return rc;
    reserve_room(st);
    return open_dbs(st);
}

int store_open(const char *dir, size_t map_bytes, store_t **out)
{
    store_t *st;
    int rc;

    *out = NULL;
    rc = shoal__mkdir_p(dir, 0700);
    if (rc < 0)
        return SHOAL_ERR(rc, "store: cannot create %s: %s", dir, shoal_strerror(rc));
    st = shoal__calloc(1, sizeof(*st));
    if (!st)
        return SHOAL_ERR(-ENOMEM, "store: no memory");
    rc = open_env(st, dir, map_bytes);
    if (rc < 0)
        goto out_free;
    *out = st;
    return 0;

out_free:
    if (st->env)
        mdb_env_close(st->env); /* LMDB needs it even after a failed mdb_env_open() */
    shoal__free(st);
    return rc;
}

void store_close(store_t *st)
{
    if (!st)
        return;
    mdb_env_close(st->env);
    shoal__free(st);
}

/* ------------------------------------------------------------------ ring owner */

#define META_RING_OWNER "ring.owner"
#define META_RING_SHM   "ring.shm"
#define META_DELETING   "deleting/" /* + a topic name: its delete's files are not all gone */
#define META_GROWING    "growing/"  /* + a topic name: partitions being added, not yet stored */
#define META_NOTE_MAX   (sizeof(META_DELETING) + SHOAL_TOPIC_NAME_MAX)

static MDB_val meta_key(const char *name)
{
    return (MDB_val){.mv_size = strlen(name), .mv_data = (void *)name};
}

/* A new owner id: random, never 0 (the id of rings made before owners existed). */
static uint64_t ring_owner_new(void)
{
    uint64_t id = 0;

    if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
        id = (uint64_t)shoal__mono_ns() ^ (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid();
    return id ? id : 1;
}

/* The shm directory stored by the last store_ring_owner() into prev ("" for none); true
 * when it is shm (NULL: none to compare). */
static bool ring_shm_get(MDB_txn *txn, MDB_dbi meta, const char *shm, char *prev, size_t cap)
{
    MDB_val key = meta_key(META_RING_SHM), val;

    if (cap > 0)
        prev[0] = '\0';
    if (mdb_get(txn, meta, &key, &val) != 0)
        return false;
    snprintf(prev, cap, "%.*s", (int)SHOAL_MIN(val.mv_size, (size_t)INT_MAX),
             (const char *)val.mv_data);
    return shm && val.mv_size == strlen(shm) && memcmp(val.mv_data, shm, val.mv_size) == 0;
}

int store_ring_shm(store_t *st, char *prev, size_t cap)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);

    if (rc != 0)
        return store_err(rc, "begin transaction");
    ring_shm_get(txn, st->meta, NULL, prev, cap);
    mdb_txn_abort(txn);
    return 0;
}

int store_ring_owner(store_t *st, const char *shm_dir, uint64_t *owner, char *prev, size_t cap)
{
    MDB_val k_owner = meta_key(META_RING_OWNER), k_shm = meta_key(META_RING_SHM), val;
    MDB_val shm = meta_key(shm_dir);
    MDB_txn *txn;
    bool same;
    int rc;

    if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0)
        return store_err(rc, "begin transaction");
    same = ring_shm_get(txn, st->meta, shm_dir, prev, cap);
    if (same && (rc = mdb_get(txn, st->meta, &k_owner, &val)) == 0 &&
        val.mv_size == sizeof(*owner)) {
        memcpy(owner, val.mv_data, sizeof(*owner));
        mdb_txn_abort(txn);
        return 0;
    }
    *owner = ring_owner_new();
    val = (MDB_val){.mv_size = sizeof(*owner), .mv_data = owner};
    if ((rc = mdb_put(txn, st->meta, &k_owner, &val, 0)) != 0 ||
        (rc = mdb_put(txn, st->meta, &k_shm, &shm, 0)) != 0) {
        mdb_txn_abort(txn);
        return store_err(rc, "ring owner");
    }
    rc = store_commit(st, txn, "commit");
    return rc < 0 ? rc : 1;
}

/* ------------------------------------------------------------------ topics */

static int name_key(const char *name, MDB_val *key)
{
    size_t n = strlen(name);

    if (n == 0 || n > SHOAL_TOPIC_NAME_MAX)
        return SHOAL_ERR(SHOAL_ENAME, "store: topic name of %zu bytes", n);
    key->mv_data = (void *)name;
    key->mv_size = n;
    return 0;
}

static int topic_write(store_t *st, const char *name, const shoal_topic_config_t *cfg,
                       unsigned flags);

/* Find the NUL after the group and the one after the topic in an offset key (group, NUL,
 * topic, NUL, be32 partition). False when the key is not one. */
static bool offset_key_parts(const MDB_val *key, const uint8_t **g_end, const uint8_t **t_end)
{
    const uint8_t *p = key->mv_data;
    size_t n = key->mv_size;

    *g_end = n > 4 ? memchr(p, 0, n - 4) : NULL;
    *t_end = *g_end ? memchr(*g_end + 1, 0, (size_t)(p + n - 4 - (*g_end + 1))) : NULL;
    return *g_end && *t_end && *t_end + 5 == p + n && *g_end != p && *t_end != *g_end + 1 &&
           *g_end - p <= SHOAL_TOPIC_NAME_MAX && *t_end - *g_end - 1 <= SHOAL_TOPIC_NAME_MAX;
}

/* Whether an offset key names this topic (a malformed key names none). */
static bool offset_key_is_of(const MDB_val *key, const char *topic, size_t len)
{
    const uint8_t *g_end, *t_end;
    return offset_key_parts(key, &g_end, &t_end) && (size_t)(t_end - g_end - 1) == len &&
           memcmp(g_end + 1, topic, len) == 0;
}

/* Delete every group's offsets of the topic: a topic created later under the same name
 * starts with none. The key leads with the group, so this walks them all. */
static int offsets_drop_topic(store_t *st, MDB_txn *txn, const char *name)
{
    MDB_val key, val;
    MDB_cursor *cur;
    int rc, count = 0;

    if ((rc = mdb_cursor_open(txn, st->offsets, &cur)) != 0)
        return store_err(rc, "open cursor");
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (!offset_key_is_of(&key, name, strlen(name)))
            continue;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        count++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? count : store_err(rc, "offset cursor");
}

/* The "meta" key of a note about topic name's files (META_DELETING, META_GROWING): the
 * kind's prefix + name. */
static MDB_val note_key(char buf[META_NOTE_MAX], const char *kind, const char *name)
{
    int n = snprintf(buf, META_NOTE_MAX, "%s%s", kind, name);
    return (MDB_val){.mv_size = (size_t)SHOAL_MIN(n, (int)META_NOTE_MAX - 1), .mv_data = buf};
}

static int note_forget(store_t *st, MDB_txn *txn, const char *kind, const char *name)
{
    char buf[META_NOTE_MAX];
    MDB_val key = note_key(buf, kind, name);
    int rc = mdb_del(txn, st->meta, &key, NULL);

    return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_err(rc, kind);
}

static int note_done(store_t *st, const char *kind, const char *name)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);

    if (rc != 0)
        return store_err(rc, "begin transaction");
    if ((rc = note_forget(st, txn, kind, name)) < 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return store_commit(st, txn, "commit");
}

/* Call cb(arg, name, value) for each note of a kind whose value has val_size bytes (others
 * are not this shoal's, and left alone); stops and returns cb's value when non-zero. */
static int notes_foreach(store_t *st, const char *kind, size_t val_size,
                         int (*cb)(void *arg, const char *name, const void *val), void *arg)
{
    size_t prefix = strlen(kind);
    MDB_val key = meta_key(kind), val;
    MDB_cursor *cur;
    MDB_txn *txn;
    int rc, cb_rc = 0;

    if ((rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) != 0)
        return store_err(rc, "begin transaction");
    if ((rc = mdb_cursor_open(txn, st->meta, &cur)) != 0) {
        mdb_txn_abort(txn);
        return store_err(rc, "open cursor");
    }
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
         rc == 0 && key.mv_size > prefix && !memcmp(key.mv_data, kind, prefix);
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        char name[SHOAL_TOPIC_NAME_MAX + 1];

        if (key.mv_size - prefix > SHOAL_TOPIC_NAME_MAX || val.mv_size != val_size)
            continue;
        memcpy(name, (const char *)key.mv_data + prefix, key.mv_size - prefix);
        name[key.mv_size - prefix] = '\0';
        if ((cb_rc = cb(arg, name, val.mv_data)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (cb_rc != 0)
        return cb_rc;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_err(rc, kind);
}

int store_topic_put(store_t *st, const char *name, const shoal_topic_config_t *cfg)
{
    return topic_write(st, name, cfg, MDB_NOOVERWRITE);
}

int store_topic_update(store_t *st, const char *name, const shoal_topic_config_t *cfg)
{
    shoal_topic_config_t old;
    int rc = store_topic_get(st, name, &old);
    return rc < 0 ? rc : topic_write(st, name, cfg, 0);
}

/* Write a topic record in its own durable transaction. */
static int topic_write(store_t *st, const char *name, const shoal_topic_config_t *cfg,
                       unsigned flags)
{
    uint8_t rec[STORE_TOPIC_RECORD_BYTES];
    MDB_val key, val = {.mv_size = sizeof(rec), .mv_data = rec};
    MDB_txn *txn;
    int rc;

    rc = name_key(name, &key);
    if (rc < 0)
        return rc;
    store_topic_encode(rec, cfg);
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0)
        return store_err(rc, "begin transaction");
    rc = mdb_put(txn, st->topics, &key, &val, flags);
    if (rc != 0)
        goto out_abort;
    /* A new topic has no committed offsets, even where an older shoal kept a deleted one's,
     * nor a note of an unfinished delete, which would take its files at the next start; and
     * a topic's partition count, once stored, ends a grow noted (store_growing_note) */
    if ((flags == MDB_NOOVERWRITE && ((rc = offsets_drop_topic(st, txn, name)) < 0 ||
                                      (rc = note_forget(st, txn, META_DELETING, name)) < 0)) ||
        (rc = note_forget(st, txn, META_GROWING, name)) < 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return store_commit(st, txn, "commit");

out_abort:
    mdb_txn_abort(txn);
    if (rc == MDB_KEYEXIST)
        return SHOAL_ERR(SHOAL_ETOPICEXISTS, "topic %s already exists", name);
    return store_err(rc, name);
}

int store_topic_get(store_t *st, const char *name, shoal_topic_config_t *cfg)
{
    MDB_val key, val;
    MDB_txn *txn;
    int rc;

    rc = name_key(name, &key);
    if (rc < 0)
        return rc;
    rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return store_err(rc, "begin transaction");
    rc = mdb_get(txn, st->topics, &key, &val);
    if (rc == MDB_NOTFOUND)
        rc = SHOAL_ERR(SHOAL_ENOTOPIC, "no topic %s", name);
    else if (rc != 0)
        rc = store_err(rc, name);
    else
        rc = store_topic_decode(val.mv_data, val.mv_size, cfg);
    mdb_txn_abort(txn);
    return rc;
}

int store_topic_delete(store_t *st, const char *name)
{
    char buf[META_NOTE_MAX];
    MDB_val key, val, note = note_key(buf, META_DELETING, name);
    shoal_topic_config_t cfg;
    uint32_t partitions;
    MDB_txn *txn;
    int rc, count;

    rc = name_key(name, &key);
    if (rc < 0)
        return rc;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0)
        return store_err(rc, "begin transaction");
    if ((rc = mdb_get(txn, st->topics, &key, &val)) != 0)
        goto out_abort;
    /* A damaged record does not say how many partitions: then every number a topic may have */
    partitions = store_topic_decode(val.mv_data, val.mv_size, &cfg) == 0 &&
                         cfg.partitions <= SHOAL_PARTITIONS_MAX
                     ? cfg.partitions
                     : SHOAL_PARTITIONS_MAX;
    val = (MDB_val){.mv_size = sizeof(partitions), .mv_data = &partitions};
    if ((rc = mdb_del(txn, st->topics, &key, NULL)) != 0 ||
        (rc = mdb_put(txn, st->meta, &note, &val, 0)) != 0)
        goto out_abort;
    if ((count = offsets_drop_topic(st, txn, name)) < 0 ||
        (rc = note_forget(st, txn, META_GROWING, name)) < 0) {
        mdb_txn_abort(txn);
        return count < 0 ? count : rc;
    }
    rc = store_commit(st, txn, "commit");
    return rc == 0 ? count : rc;

out_abort:
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND)
        return SHOAL_ERR(SHOAL_ENOTOPIC, "no topic %s", name);
    return store_err(rc, name);
}

int store_deleting_done(store_t *st, const char *name)
{
    return note_done(st, META_DELETING, name);
}

struct note_visit {
    store_deleting_cb deleting;
    store_growing_cb growing;
    void *arg;
};

static int visit_deleting(void *arg, const char *name, const void *val)
{
    const struct note_visit *v = arg;
    uint32_t partitions;

    memcpy(&partitions, val, sizeof(partitions));
    return v->deleting(v->arg, name, SHOAL_MIN(partitions, (uint32_t)SHOAL_PARTITIONS_MAX));
}

int store_deleting_foreach(store_t *st, store_deleting_cb cb, void *arg)
{
    struct note_visit v = {.deleting = cb, .arg = arg};

    return notes_foreach(st, META_DELETING, sizeof(uint32_t), visit_deleting, &v);
}

int store_growing_note(store_t *st, const char *name, uint32_t first, uint32_t end)
{
    char buf[META_NOTE_MAX];
    uint32_t range[2] = {first, end};
    MDB_val key = note_key(buf, META_GROWING, name),
            val = {.mv_size = sizeof(range), .mv_data = range};
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);

    if (rc != 0)
        return store_err(rc, "begin transaction");
    if ((rc = mdb_put(txn, st->meta, &key, &val, 0)) != 0) {
        mdb_txn_abort(txn);
        return store_err(rc, META_GROWING);
    }
    return store_commit(st, txn, "commit");
}

int store_growing_done(store_t *st, const char *name)
{
    return note_done(st, META_GROWING, name);
}

static int visit_growing(void *arg, const char *name, const void *val)
{
    const struct note_visit *v = arg;
    uint32_t range[2];

    memcpy(range, val, sizeof(range));
    if (range[0] >= range[1] || range[1] > SHOAL_PARTITIONS_MAX)
        return 0; /* not one this shoal wrote */
    return v->growing(v->arg, name, range[0], range[1]);
}

int store_growing_foreach(store_t *st, store_growing_cb cb, void *arg)
{
    struct note_visit v = {.growing = cb, .arg = arg};

    return notes_foreach(st, META_GROWING, 2 * sizeof(uint32_t), visit_growing, &v);
}

/* Copy one entry out of the map and hand it to cb. */
static int visit_topic(const MDB_val *key, const MDB_val *val, store_topic_cb cb, void *arg)
{
    char name[SHOAL_TOPIC_NAME_MAX + 1];
    shoal_topic_config_t cfg;
    int rc;

    if (key->mv_size == 0 || key->mv_size > SHOAL_TOPIC_NAME_MAX)
        return SHOAL_ERR(SHOAL_ECORRUPT, "store: topic key of %zu bytes", key->mv_size);
    memcpy(name, key->mv_data, key->mv_size);
    name[key->mv_size] = '\0';
    rc = store_topic_decode(val->mv_data, val->mv_size, &cfg);
    if (rc == 0 && (rc = topic_config_check(&cfg)) < 0) {
        char why[256];
        snprintf(why, sizeof(why), "%s", shoal_errmsg());
        SHOAL_ERR(rc, "store: topic record out of range: %s", why);
    }
    return cb(arg, name, rc < 0 ? NULL : &cfg);
}

int store_topic_foreach(store_t *st, store_topic_cb cb, void *arg)
{
    MDB_val key, val;
    MDB_cursor *cur;
    MDB_txn *txn;
    int rc;

    rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return store_err(rc, "begin transaction");
    rc = mdb_cursor_open(txn, st->topics, &cur);
    if (rc != 0) {
        rc = store_err(rc, "open cursor");
        goto out_abort;
    }
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        int cb_rc = visit_topic(&key, &val, cb, arg);
        if (cb_rc != 0) {
            rc = cb_rc;
            goto out_close_cursor;
        }
    }
    rc = rc == MDB_NOTFOUND ? 0 : store_err(rc, "cursor");

out_close_cursor:
    mdb_cursor_close(cur);
out_abort:
    mdb_txn_abort(txn);
    return rc;
}

/* ------------------------------------------------------------------ committed offsets */

#define STORE_OFFSET_VERSION      1
#define STORE_OFFSET_RECORD_BYTES 24
#define STORE_OFFSET_TIME_AT      16 /* the commit time's place in the record */
#define STORE_OFFSET_KEY_MAX      (2 * (SHOAL_TOPIC_NAME_MAX + 1) + 4)

/* Build the key of (group, topic, partition) into buf. Returns its length or SHOAL_ENAME. */
static int offset_key(uint8_t buf[STORE_OFFSET_KEY_MAX], const char *group, const char *topic,
                      int32_t partition)
{
    size_t g = strlen(group), t = strlen(topic);

    if (g == 0 || g > SHOAL_TOPIC_NAME_MAX || t == 0 || t > SHOAL_TOPIC_NAME_MAX)
        return SHOAL_ERR(SHOAL_ENAME, "store: offset key of group %zu, topic %zu bytes", g, t);
    memcpy(buf, group, g);
    buf[g] = 0;
    memcpy(buf + g + 1, topic, t);
    buf[g + 1 + t] = 0;
    buf[g + t + 2] = (uint8_t)((uint32_t)partition >> 24);
    buf[g + t + 3] = (uint8_t)((uint32_t)partition >> 16);
    buf[g + t + 4] = (uint8_t)((uint32_t)partition >> 8);
    buf[g + t + 5] = (uint8_t)partition;
    return (int)(g + t + 6);
}

/* Write one offset record in txn: 0, 1 when flags has MDB_NOOVERWRITE and there is one, or a
 * negative code. */
static int offset_put(store_t *st, MDB_txn *txn, const char *group, const char *topic,
                      int32_t partition, int64_t offset, int64_t ms, unsigned flags)
{
    uint8_t kbuf[STORE_OFFSET_KEY_MAX], rec[STORE_OFFSET_RECORD_BYTES] = {STORE_OFFSET_VERSION};
    MDB_val key = {.mv_data = kbuf}, val = {.mv_size = sizeof(rec), .mv_data = rec};
    int rc, klen = offset_key(kbuf, group, topic, partition);

    if (klen < 0)
        return klen;
    key.mv_size = (size_t)klen;
    put_le64(rec + 8, (uint64_t)offset);
    put_le64(rec + STORE_OFFSET_TIME_AT, (uint64_t)ms);
    rc = mdb_put(txn, st->offsets, &key, &val, flags);
    if (rc == MDB_KEYEXIST && (flags & MDB_NOOVERWRITE))
        return 1;
    return rc == 0 ? 0 : store_err(rc, "put offset");
}

int store_offsets_put(store_t *st, const store_offset_t *offs, size_t n)
{
    int64_t now = shoal__now_ms();
    MDB_txn *txn;
    int rc;

    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0)
        return store_err(rc, "begin transaction");
    for (size_t i = 0; i < n; i++) {
        rc = offset_put(st, txn, offs[i].group, offs[i].topic, offs[i].partition, offs[i].offset,
                        now, 0);
        if (rc != 0) {
            mdb_txn_abort(txn);
            return rc;
        }
    }
    return store_commit(st, txn, "commit offsets");
}

static int offset_decode(const MDB_val *val, int64_t *offset)
{
    const uint8_t *p = val->mv_data;
    if (val->mv_size != STORE_OFFSET_RECORD_BYTES || p[0] != STORE_OFFSET_VERSION)
        return SHOAL_ERR(SHOAL_ECORRUPT, "store: offset record of %zu bytes, version %u",
                         val->mv_size, val->mv_size ? (unsigned)p[0] : 0u);
    *offset = (int64_t)get_le64(p + 8);
    return 0;
}

int store_offset_get(store_t *st, const char *group, const char *topic, int32_t partition,
                     int64_t *offset)
{
    uint8_t kbuf[STORE_OFFSET_KEY_MAX];
    MDB_val key, val;
    MDB_txn *txn;
    int klen = offset_key(kbuf, group, topic, partition), rc;

    if (klen < 0)
        return klen;
    key.mv_data = kbuf;
    key.mv_size = (size_t)klen;
    rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return store_err(rc, "begin transaction");
    rc = mdb_get(txn, st->offsets, &key, &val);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    else if (rc != 0)
        rc = store_err(rc, "get offset");
    else
        rc = offset_decode(&val, offset) < 0 ? SHOAL_ECORRUPT : 1;
    mdb_txn_abort(txn);
    return rc;
}

/* Split a key into its parts (copied into the caller's buffers). */
static int offset_key_split(const MDB_val *key, char *group, char *topic, int32_t *partition)
{
    const uint8_t *p = key->mv_data;
    const uint8_t *g_end, *t_end;

    if (!offset_key_parts(key, &g_end, &t_end))
        return SHOAL_ERR(SHOAL_ECORRUPT, "store: malformed offset key of %zu bytes", key->mv_size);
    memcpy(group, p, (size_t)(g_end - p));
    group[g_end - p] = '\0';
    memcpy(topic, g_end + 1, (size_t)(t_end - g_end - 1));
    topic[t_end - g_end - 1] = '\0';
    *partition = (int32_t)(((uint32_t)t_end[1] << 24) | ((uint32_t)t_end[2] << 16) |
                           ((uint32_t)t_end[3] << 8) | t_end[4]);
    return 0;
}

/* Walk the offsets whose key starts with prefix (plen bytes). cb NULL deletes them (txn must
 * be a write transaction); returns cb's non-zero value, the count deleted, or an error. */
static int offset_walk(store_t *st, MDB_txn *txn, const uint8_t *prefix, size_t plen,
                       store_offset_cb cb, void *arg)
{
    char group[SHOAL_TOPIC_NAME_MAX + 1], topic[SHOAL_TOPIC_NAME_MAX + 1];
    MDB_val key = {.mv_size = plen, .mv_data = (void *)prefix}, val;
    MDB_cursor *cur;
    int rc, count = 0;

    rc = mdb_cursor_open(txn, st->offsets, &cur);
    if (rc != 0)
        return store_err(rc, "open cursor");
    rc = plen ? mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE)
              : mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        int32_t partition = 0;
        int64_t offset = 0;
        if (key.mv_size < plen || memcmp(key.mv_data, prefix, plen) != 0)
            break;
        if (!cb) {
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            count++;
            continue;
        }
        if ((rc = offset_key_split(&key, group, topic, &partition)) < 0 ||
            (rc = offset_decode(&val, &offset)) < 0 ||
            (rc = cb(arg, group, topic, partition, offset)) != 0)
            goto out;
    }
    rc = (rc == 0 || rc == MDB_NOTFOUND) ? count : store_err(rc, "offset cursor");
out:
    mdb_cursor_close(cur);
    return rc;
}

static size_t offset_prefix(uint8_t *buf, const char *group, const char *topic)
{
    size_t n = 0;
    if (!group)
        return 0;
    memcpy(buf, group, strlen(group) + 1);
    n = strlen(group) + 1;
    if (topic) {
        memcpy(buf + n, topic, strlen(topic) + 1);
        n += strlen(topic) + 1;
    }
    return n;
}

int store_offset_foreach(store_t *st, const char *group, store_offset_cb cb, void *arg)
{
    uint8_t prefix[STORE_OFFSET_KEY_MAX];
    MDB_txn *txn;
    int rc;

    if (group && (!*group || strlen(group) > SHOAL_TOPIC_NAME_MAX))
        return SHOAL_ERR(SHOAL_ENAME, "store: bad group id");
    rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return store_err(rc, "begin transaction");
    rc = offset_walk(st, txn, prefix, offset_prefix(prefix, group, NULL), cb, arg);
    mdb_txn_abort(txn);
    return rc;
}

/* An offset's group (from its key) and commit time (from its record), into *g and *ms. */
static int offset_group_time(const MDB_val *key, const MDB_val *val, char *g, int64_t *ms)
{
    char topic[SHOAL_TOPIC_NAME_MAX + 1];
    int32_t partition;
    int64_t offset;
    int rc;

    if ((rc = offset_key_split(key, g, topic, &partition)) < 0 ||
        (rc = offset_decode(val, &offset)) < 0)
        return rc;
    *ms = (int64_t)get_le64((const uint8_t *)val->mv_data + STORE_OFFSET_TIME_AT);
    return 0;
}

/* Every group with offsets in txn (of topic only, when not NULL), in key order, with the
 * time of its latest commit among them, passing over records it cannot decode; stops at a
 * non-zero cb value and returns it. */
static int groups_walk(store_t *st, MDB_txn *txn, const char *topic, store_group_cb cb, void *arg)
{
    char group[SHOAL_TOPIC_NAME_MAX + 1], last[SHOAL_TOPIC_NAME_MAX + 1] = "";
    size_t len = topic ? strlen(topic) : 0;
    int64_t ms = 0, latest = 0;
    MDB_val key, val;
    MDB_cursor *cur;
    int rc;

    if ((rc = mdb_cursor_open(txn, st->offsets, &cur)) != 0)
        return store_err(rc, "open cursor");
    /* keys start with the group: each group's offsets are consecutive */
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if ((topic && !offset_key_is_of(&key, topic, len)) ||
            offset_group_time(&key, &val, group, &ms) < 0)
            continue; /* another topic's, or a damaged record: describe and fetch report it */
        if (last[0] && strcmp(group, last) && (rc = cb(arg, last, latest)) != 0)
            goto out;
        latest = strcmp(group, last) ? ms : SHOAL_MAX(latest, ms);
        memcpy(last, group, sizeof(last));
    }
    if (rc == MDB_NOTFOUND)
        rc = last[0] ? cb(arg, last, latest) : 0;
    else
        rc = store_err(rc, "offset cursor");
out:
    mdb_cursor_close(cur);
    return rc;
}

int store_offset_groups(store_t *st, store_group_cb cb, void *arg)
{
    MDB_txn *txn;
    int rc;

    if ((rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) != 0)
        return store_err(rc, "begin transaction");
    rc = groups_walk(st, txn, NULL, cb, arg);
    mdb_txn_abort(txn);
    return rc;
}

/* The groups with an offset of a topic, each once, with its latest commit time there. */
struct topic_group {
    char name[SHOAL_TOPIC_NAME_MAX + 1];
    int64_t ms;
};
struct topic_groups {
    struct topic_group *v;
    size_t n, cap;
};

/* store_group_cb: add the group to the struct topic_groups arg. */
static int topic_group_add(void *arg, const char *group, int64_t ms)
{
    struct topic_groups *tg = arg;

    if (tg->n == tg->cap) {
        size_t cap = tg->cap ? tg->cap * 2 : 8;
        struct topic_group *v = shoal__realloc(tg->v, cap * sizeof(*v));
        if (!v)
            return SHOAL_ERR(-ENOMEM, "store: out of memory listing a topic's groups");
        tg->v = v;
        tg->cap = cap;
    }
    snprintf(tg->v[tg->n].name, sizeof(tg->v[tg->n].name), "%s", group);
    tg->v[tg->n++].ms = ms;
    return 0;
}

int store_offsets_start_added(store_t *st, const char *topic, uint32_t from, uint32_t to)
{
    struct topic_groups tg = {0};
    MDB_txn *txn;
    int rc, count = 0;

    if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0)
        return store_err(rc, "begin transaction");
    rc = groups_walk(st, txn, topic, topic_group_add, &tg);
    for (size_t i = 0; rc == 0 && i < tg.n; i++)
        for (uint32_t p = from; rc == 0 && p < to; p++) {
            /* the group's own latest time: its expiry does not move */
            rc = offset_put(st, txn, tg.v[i].name, topic, (int32_t)p, 0, tg.v[i].ms,
                            MDB_NOOVERWRITE);
            count += rc == 0;
            rc = SHOAL_MIN(rc, 0);
        }
    shoal__free(tg.v);
    if (rc < 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = store_commit(st, txn, "commit offsets");
    return rc == 0 ? count : rc;
}

int store_offsets_delete(store_t *st, const char *group, const char *topic)
{
    uint8_t prefix[STORE_OFFSET_KEY_MAX];
    MDB_txn *txn;
    int rc, count;

    if (!group || !*group || strlen(group) > SHOAL_TOPIC_NAME_MAX ||
        (topic && (!*topic || strlen(topic) > SHOAL_TOPIC_NAME_MAX)))
        return SHOAL_ERR(SHOAL_ENAME, "store: bad group id or topic");
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0)
        return store_err(rc, "begin transaction");
    count = offset_walk(st, txn, prefix, offset_prefix(prefix, group, topic), NULL, NULL);
    if (count < 0) {
        mdb_txn_abort(txn);
        return count;
    }
    rc = store_commit(st, txn, "commit");
    return rc == 0 ? count : rc;
}
