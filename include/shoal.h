/*
 * shoal.h - the public API of libshoal, a Kafka-style streaming platform for one host.
 *
 * OVERVIEW
 *
 * A shoal instance is one `shoald` supervisor with a data directory, a runtime directory
 * (holding its control socket) and a set of shared-memory objects. Topics have partitions;
 * a partition is an ordered log of records, each with a 64-bit offset that starts at 0 and
 * has no gaps. Records are stored as Kafka RecordBatch v2, in shared memory and on disk.
 *
 * A process links libshoal and opens a client on the daemon's control socket
 * (shoal_client_open). Through the client it administers topics and opens producers and
 * consumers. Producers append straight into shared memory under a robust process-shared
 * mutex; consumers read lock-free from read-only mappings. The daemon is not on the data
 * path: it hands out file descriptors, persists the shared ring to disk segments in the
 * background and recovers after crashes.
 *
 * ERRORS
 *
 * Functions that act return 0 (or a non-negative count) on success and a negative code on
 * failure: either -errno for a failed system call, or one of the SHOAL_E* codes below,
 * which sit in a range well clear of errno values. shoal_strerror() names any of them.
 * shoal_errmsg() returns the calling thread's detail for the last failure (which file,
 * which topic, which limit), for people rather than programs. A NULL handle, or a NULL for
 * a pointer a function must read or fill, gets SHOAL_EINVAL naming the argument (the
 * *_init() functions ignore NULL; the *_close() and *_free() functions accept it).
 * A call that talks to shoald, where it lists SHOAL_ECLOSED, may also return what
 * reconnecting can (SHOAL_ENODAEMON, SHOAL_EDENIED, SHOAL_EVERSION): see
 * shoal_client_open().
 *
 * VERSIONS AND THE ABI
 *
 * The shared library's soname names its ABI: libshoal.so.MAJOR from 1.0 on, and
 * libshoal.so.0.MINOR before, since a 0.x minor release may change a struct's layout. The
 * structs an application allocates and the library fills or copies (shoal_topic_config_t,
 * shoal_client_options_t, shoal_producer_options_t, shoal_consumer_options_t,
 * shoal_partition_stats_t) end in
 * reserved_ space that new fields are taken from, so their sizes stay the same within an
 * ABI. Fill the config and the options with their *_init() function (or memset 0) before
 * setting fields: the library refuses them with non-zero reserved_ fields (SHOAL_ECONFIG
 * for the config, SHOAL_EINVAL for options), which is what an application built against a
 * newer shoal.h that sets a newer field gets from an older library, instead of having that
 * field silently ignored; shoal_partition_stats() writes zeros there. Every other public
 * struct (messages, records, acks, headers, infos, assignor types) keeps its layout within
 * an ABI: changing one changes the soname.
 *
 * CAVEATS
 *
 * - fork(): handles belong to the process that opened them. A child of fork() may only
 *   close what it inherited (shoal_consumer_close, shoal_producer_close,
 *   shoal_client_close: the client's connection goes with the last of the three), which
 *   frees the child's own memory, mappings and descriptors and
 *   leaves the parent's state alone: its reader entries and pins, its sleeping flags, its
 *   group membership and its connection go on as before (exiting or exec'ing does the same).
 *   For anything else a child opens its own client. On an inherited consumer shoal_poll,
 *   shoal_consumer_assign/unassign/seek/subscribe and shoal_commit_* return SHOAL_EINVAL and
 *   shoal_consumer_release does nothing; so does every call on an inherited client that
 *   would talk to the daemon (it would interleave with the parent's on their one socket).
 *   Calls on inherited producers are not checked (the append path stays as short as it
 *   is) and must not be made.
 * - Threads: a client may be shared by threads; a producer or a consumer is for one thread
 *   at a time (open one per thread, or hand one over between calls). A send or a
 *   shoal_producer_wait(), and any consumer call, made while another thread is inside one
 *   on the same handle fails SHOAL_EINVAL ("... is inside a call on another thread"; the
 *   void shoal_consumer_release() does nothing), so the mistake shows instead of tearing
 *   the handle's state; shoal_producer_close() and shoal_producer_partitions() are not
 *   checked. The check is cheap and best effort: two threads entering in the same few
 *   nanoseconds may both pass, and a thread cancelled inside a call leaves the handle
 *   marked as its. Calls from a consumer's own callbacks are on its thread and pass;
 *   shoal_consumer_wakeup() may be called from anywhere.
 * - Views returned by shoal_poll() point into shared memory or into a read-only mapping of
 *   a segment file; they are valid until the next shoal_poll() or shoal_consumer_close() on
 *   the same consumer. Until then the consumer pins the ring slot they are in (or, after a
 *   poll that returned none, the slot it reads next), which keeps the daemon from
 *   recycling it: long between polls, on a busy topic, that makes producers wait
 *   (back-pressure); shoal_consumer_release() lets go of it early. A poll asleep waiting
 *   for records holds none, so a consumer stopped there (SIGSTOP, Ctrl-Z, a debugger)
 *   holds no producer back: a disk topic's sleeping poll lets go of its slot at once (it
 *   reads from disk what the ring no longer has), and on a memory topic shoald lets a
 *   waiting producer reuse the slot of a reader it finds stopped (within ~100 ms of the
 *   producer's wait; about a second for a producer with block_ms 0, which does not wait);
 *   that reader's next poll returns SHOAL_EOFFSET with what it lost. A frozen cgroup (a
 *   paused container) is not seen as stopped.
 * - The shared-memory files live under /dev/shm (tmpfs). Remote filesystems are not
 *   supported for the data directory: fsync semantics there are not what durability needs.
 * - A process killed while appending loses only the batch it was appending, which was never
 *   acknowledged; readers never see part of it.
 * - A producer holds its partition's shared files read-write, so it could also cut them
 *   short (ftruncate); the other processes mapping them would then fault (SIGBUS) past the
 *   cut. shoald survives it: it stops that partition (its clients get SHOAL_ECORRUPT),
 *   logs which file was cut, and rebuilds the ring from disk at its next start (a memory
 *   topic's comes back empty). Let the daemon admit (allow.gid) only processes trusted
 *   with the topics' data.
 * - A daemon that stops answering (stopped by SIGSTOP, hung) still takes connections: a
 *   call that waits for its answer (administration such as shoal_topic_list(), attaching
 *   partitions, shoal_commit_sync()) gives up after 30 s with SHOAL_ETIMEDOUT (a topic
 *   create waits longer, by the size of its rings). The 30 s, here and below, is the
 *   client's timeout_ms: shoal_client_open_opts() takes another. The request may still be
 *   carried out once the daemon goes on; the client keeps its connection, and its next
 *   call first waits (within its own time) for that late answer. Sending a request, and connecting
 *   while its listen backlog is full, keep to the same time (a request it stopped reading
 *   half-way was not carried out: that connection is dropped). Appends and reads in shared memory
 * go on. shoal_poll() keeps to its timeout, by at most 100 ms more when it has to ask for a disk
 * segment (see shoal_poll()), and a group consumer's does so too while it reconnects or rebalances;
 *   shoal_consumer_close() waits session_timeout_ms at most.
 */
#ifndef SHOAL_H
#define SHOAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SHOAL_EXTERN __attribute__((visibility("default")))
#else
#define SHOAL_EXTERN
#endif

#define SHOAL_VERSION_MAJOR  0
#define SHOAL_VERSION_MINOR  1
#define SHOAL_VERSION_PATCH  0
#define SHOAL_VERSION_STRING "0.1.0"

/** Library version at run time.
 * @param[out] major, minor, patch  may each be NULL.
 * @return a static string "MAJOR.MINOR.PATCH". Thread-safety: any thread. */
SHOAL_EXTERN const char *shoal_version(int *major, int *minor, int *patch);

/* ---------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------- */

/* One table generates the enum, shoal_strerror() and shoal_err_name(). */
#define SHOAL_ERRNO_MAP(XX)                                                                        \
    XX(AGAIN, "no room in the ring now (back-pressure): retry later")                              \
    XX(ADMIN_ACTION, "an administrative change is in progress: retry")                             \
    XX(EINVAL, "invalid argument")                                                                 \
    XX(ENAME, "invalid topic name (1-249 characters of [a-zA-Z0-9._-], not '.' or '..')")          \
    XX(ENOTOPIC, "no such topic")                                                                  \
    XX(ETOPICEXISTS, "topic already exists")                                                       \
    XX(ENOPARTITION, "no such partition")                                                          \
    XX(EPARTITIONS, "partition count out of range")                                                \
    XX(ECONFIG, "invalid configuration value")                                                     \
    XX(ETOOLARGE, "record larger than the topic's maximum record size")                            \
    XX(ECORRUPT, "corrupt or missing data: a check failed, or records are gone from disk")         \
    XX(ECOMPRESSED, "compressed record batch: compression is not supported")                       \
    XX(EPROTO, "malformed or truncated control message")                                           \
    XX(EVERSION, "incompatible protocol or layout version")                                        \
    XX(ENODAEMON, "no shoald to use at the control socket path")                                   \
    XX(EDENIED, "permission denied")                                                               \
    XX(ECLOSED, "connection to the daemon closed")                                                 \
    XX(ETIMEDOUT, "timed out")                                                                     \
    XX(EOFFSET, "offset out of range")                                                             \
    XX(ELIMIT, "a configured limit was reached")                                                   \
    XX(EPANIC, "shared state is inconsistent: handle unusable")                                    \
    XX(EIO, "input/output error in the daemon")                                                    \
    XX(ESETTING, "unknown topic setting")                                                          \
    XX(EIMMUTABLE, "this setting cannot change on an existing topic")                              \
    XX(ENOGROUP, "no such consumer group")                                                         \
    XX(EGROUPID, "invalid group id (1-249 characters of [a-zA-Z0-9._-], not '.' or '..')")         \
    XX(EGENERATION, "stale generation or unknown member (fenced)")                                 \
    XX(EREBALANCE, "the group is rebalancing: rejoin")                                             \
    XX(ENOTASSIGNED, "partition not assigned to this member")                                      \
    XX(EGROUPACTIVE, "the group has active members")                                               \
    XX(ENOASSIGNOR, "no partition assignor supported by every member")                             \
    XX(EFENCED, "another consumer with this group_instance_id took this member's place")           \
    XX(EWAKEUP, "woken by shoal_consumer_wakeup()")

/* SHOAL_EAGAIN etc. are spelt SHOAL_AGAIN and SHOAL_ADMIN_ACTION: they are outcomes, not
 * failures (the caller retries). The others read SHOAL_E<NAME>. */
#define SHOAL_ERR_BASE (-32000)
#define SHOAL_OK       0
enum shoal__err_index {
#define SHOAL_IDX_(name, msg) SHOAL__ERRIDX_##name,
    SHOAL_ERRNO_MAP(SHOAL_IDX_)
#undef SHOAL_IDX_
        SHOAL__ERRIDX_COUNT
};

/** The error codes: SHOAL_AGAIN, SHOAL_ADMIN_ACTION, SHOAL_EINVAL, SHOAL_ENAME,
 * SHOAL_ENOTOPIC, SHOAL_ETOPICEXISTS, SHOAL_ENOPARTITION, SHOAL_EPARTITIONS, SHOAL_ECONFIG,
 * SHOAL_ETOOLARGE, SHOAL_ECORRUPT, SHOAL_ECOMPRESSED, SHOAL_EPROTO, SHOAL_EVERSION,
 * SHOAL_ENODAEMON, SHOAL_EDENIED, SHOAL_ECLOSED, SHOAL_ETIMEDOUT, SHOAL_EOFFSET,
 * SHOAL_ELIMIT, SHOAL_EPANIC, SHOAL_EIO, SHOAL_ESETTING, SHOAL_EIMMUTABLE, and for consumer
 * groups SHOAL_ENOGROUP, SHOAL_EGROUPID, SHOAL_EGENERATION, SHOAL_EREBALANCE,
 * SHOAL_ENOTASSIGNED, SHOAL_EGROUPACTIVE, SHOAL_ENOASSIGNOR, SHOAL_EFENCED, and
 * SHOAL_EWAKEUP (shoal_consumer_wakeup). Each is SHOAL_ERR_BASE minus its position. */
enum shoal_error {
#define SHOAL_XX_(name, msg) SHOAL_##name = SHOAL_ERR_BASE - SHOAL__ERRIDX_##name,
    SHOAL_ERRNO_MAP(SHOAL_XX_)
#undef SHOAL_XX_
};

/** Human message for a return code: a SHOAL_E* code, a negative errno, or 0.
 * @return a static string, never NULL. Thread-safety: any thread. */
SHOAL_EXTERN const char *shoal_strerror(int err);

/** Symbolic name of a return code ("SHOAL_ENOTOPIC", "ENOENT", "OK").
 * @return a static string, never NULL. Thread-safety: any thread. */
SHOAL_EXTERN const char *shoal_err_name(int err);

/** Detail of the calling thread's last failure in libshoal, or "" when there is none.
 * Each call that returns an error code clears it on entry, so it always belongs to the
 * latest such call. Calls that cannot fail that way leave it as it is: the predicates and
 * lookups (shoal_topic_name_is_valid, shoal_group_id_is_valid, shoal_partition_for_key,
 * shoal_topic_setting_name, shoal_assignor_builtin, shoal_default_socket, shoal_strerror,
 * shoal_err_name, shoal_version, shoal_errmsg), the *_init(), *_close(), *_free() and
 * shoal_consumer_release() functions, and shoal_consumer_wakeup(), which may run in a
 * signal handler (its SHOAL_EINVAL has no detail).
 * @return a thread-local string, valid until the next libshoal call on this thread. */
SHOAL_EXTERN const char *shoal_errmsg(void);

/* ---------------------------------------------------------------------------------------
 * Client: the connection to shoald
 * ------------------------------------------------------------------------------------- */

typedef struct shoal_client shoal_client_t;

#define SHOAL_DEFAULT_SOCKET "./var/run/shoald.sock"
/** The socket path used when none is given: $SHOAL_SOCKET when set, else
 * SHOAL_DEFAULT_SOCKET. @return a pointer into the environment or a static string; do not
 * free. Thread-safety: any thread (while nobody changes the environment). */
SHOAL_EXTERN const char *shoal_default_socket(void);

/** Connect to shoald.
 * @param[in]  socket_path  the daemon's control socket; NULL means shoal_default_socket().
 *                          A relative path is taken from the working directory at open
 *                          (its directory resolved with realpath()), so a later chdir()
 *                          does not lose the daemon when the client reconnects; only an
 *                          absolute form longer than 107 bytes is kept relative.
 * @param[out] out          the client, or NULL on failure.
 * @return 0, or SHOAL_ENODAEMON (nothing listening at the path, or, with
 *         $SHOAL_DAEMON_USER set, a process of another user), SHOAL_EINVAL
 *         ($SHOAL_DAEMON_USER names no user), SHOAL_ELIMIT (shoald
 *         refuses new clients: 1,024 connections open, or it is out of descriptors; the
 *         detail says which), SHOAL_ETIMEDOUT (shoald did not take the connection, or did
 *         not answer it, within 30 s: stopped or hung), SHOAL_EVERSION, SHOAL_EPROTO, -ENOMEM,
 *         -errno.
 * Ownership: the caller closes the client with shoal_client_close(). Producers and
 * consumers opened on it may be closed before or after it: each keeps the client (and its
 * connection) until it is closed. Thread-safety: the returned client may be used from
 * any thread; calls on it are serialised internally.
 *
 * Reconnection: a client outlives a restart of shoald (stopped, or killed, and started
 * again). A call that finds the connection closed, or whose request cannot be sent because
 * the daemon closed the connection (so the request never arrived), connects again once and
 * carries on. A request that was sent but whose response was lost (the daemon died while
 * handling it) fails SHOAL_ECLOSED and is not repeated, since it may have been carried out
 * (a topic created, offsets reset): check before repeating it; the next call connects
 * again. While nothing listens at the path such calls fail SHOAL_ENODAEMON, and a daemon of
 * another instance at the same path is refused with SHOAL_ENODAEMON. Each connection is a
 * new handshake: the daemon reads the process's credentials again (SHOAL_EDENIED if it may
 * no longer use the broker) and checks the protocol version (SHOAL_EVERSION). Producers and
 * consumers opened on the client keep working across the restart: appends and reads from
 * shared memory never need the daemon, and a consumer reading old records from disk goes
 * on at its position once the daemon is back. */
SHOAL_EXTERN int shoal_client_open(const char *socket_path, shoal_client_t **out);

typedef struct shoal_client_options {
    int32_t timeout_ms;        /* how long a call on the client, and the connection's handshake,
                                  waits for shoald's answer before SHOAL_ETIMEDOUT (a topic create
                                  or a grow adds 8 s per GiB of rings it makes); also a group
                                  consumer's calls; 1 or more; default 30000 */
    uint32_t daemon_uid_check; /* 1: connect only to a daemon that runs as daemon_uid (its
                                  listening process's SO_PEERCRED), at the open and at every
                                  reconnect; another gets nothing sent and the call fails
                                  SHOAL_ENODAEMON. For a socket in a directory other users may
                                  write. 0 (the default): $SHOAL_DAEMON_USER, a user name or
                                  uid, asks for the same when set and not empty */
    uint32_t daemon_uid;       /* the daemon's user, with daemon_uid_check 1 */
    uint32_t reserved_[13];    /* zero: room for new options (see VERSIONS above) */
} shoal_client_options_t;

/** Fill opts with the defaults documented in shoal_client_options_t. Thread-safety: any. */
SHOAL_EXTERN void shoal_client_options_init(shoal_client_options_t *opts);

/** Connect to shoald as shoal_client_open() does, with options: a shorter timeout_ms, for
 * one, so that a daemon stopped or hung is noticed sooner than in 30 s.
 * @param[in] opts  NULL means the defaults (then this is shoal_client_open()).
 * @return what shoal_client_open() returns (SHOAL_ETIMEDOUT after opts->timeout_ms), or
 *         SHOAL_EINVAL for an option out of range (timeout_ms under 1, daemon_uid_check
 *         above 1) or non-zero reserved_ fields.
 * Ownership and thread-safety: as shoal_client_open(); opts is read during the call only. */
SHOAL_EXTERN int shoal_client_open_opts(const char *socket_path, const shoal_client_options_t *opts,
                                        shoal_client_t **out);

/** Close a client and its connection. Producers and consumers still open on it keep
 * working, and the connection and memory go when the last of them is closed; the client
 * itself must not be used again. NULL is allowed. Thread-safety: not thread-safe. */
SHOAL_EXTERN void shoal_client_close(shoal_client_t *client);

/* ---------------------------------------------------------------------------------------
 * Topics
 * ------------------------------------------------------------------------------------- */

#define SHOAL_TOPIC_NAME_MAX 249
#define SHOAL_PARTITIONS_MAX 1024

typedef enum {
    SHOAL_STORAGE_DISK = 0,   /* the ring is persisted to disk segments */
    SHOAL_STORAGE_MEMORY = 1, /* no disk: the ring is the retention, oldest slot reused */
} shoal_storage_t;

/** A topic's settings. Initialise with shoal_topic_config_init() and change what you need,
 * directly or by Kafka's names with shoal_topic_config_set(). */
typedef struct shoal_topic_config {
    uint32_t partitions;         /* "partitions": 1..SHOAL_PARTITIONS_MAX; default 1 */
    uint32_t storage;            /* "storage": shoal_storage_t; default SHOAL_STORAGE_DISK */
    uint64_t segment_bytes;      /* "segment.bytes": size of a ring slot and of a disk segment;
                                    default 64 MiB, range 64 KiB..1 GiB */
    uint32_t ring_slots;         /* "ring.slots": slots in the shared ring; default 4, 2..64 */
    uint32_t max_record_bytes;   /* "max.message.bytes": largest encoded batch of one record;
                                    default 1 MiB (shoal_topic_create() lowers the default
                                    to segment_bytes / 2), 64..segment_bytes / 2 */
    int64_t retention_ms;        /* "retention.ms": delete segments whose newest record is
                                    older; -1 keeps for ever; default 7 days */
    int64_t retention_bytes;     /* "retention.bytes": per partition, delete the oldest
                                    segments beyond it; -1 (default) no limit */
    int64_t segment_ms;          /* "segment.ms": roll the active segment after this long;
                                    default 7 days */
    uint32_t cleanup_policy;     /* "cleanup.policy": SHOAL_CLEANUP_DELETE and/or
                                    SHOAL_CLEANUP_COMPACT; default DELETE */
    uint32_t pad_;               /* zero */
    int64_t flush_messages;      /* "flush.messages": fsync once this many records wait;
                                    -1 (default) no count limit */
    int64_t flush_ms;            /* "flush.ms": fsync at least this often; -1 (default) uses
                                    the daemon's flush.ms */
    int64_t delete_retention_ms; /* "delete.retention.ms": how long compaction keeps
                                    tombstones; default 1 day */
    uint64_t reserved_[6];       /* zero: room for new settings (see VERSIONS above) */
} shoal_topic_config_t;

#define SHOAL_CLEANUP_DELETE  1u /* retention deletes old segments */
#define SHOAL_CLEANUP_COMPACT 2u /* compaction keeps the latest value per key */

/** Fill cfg with the defaults documented in shoal_topic_config_t. Thread-safety: any. */
SHOAL_EXTERN void shoal_topic_config_init(shoal_topic_config_t *cfg);

/** Set one setting by its Kafka-style name (see shoal_topic_config_t) from text: numbers
 * in decimal, "disk"/"memory" for storage, "delete", "compact" or "compact,delete" for
 * cleanup.policy. Sizes (segment.bytes, max.message.bytes, retention.bytes) may end in K, M
 * or G, or KB, KiB and so on, in either case (powers of 1024 all); a time or a count with a suffix
 * is SHOAL_ECONFIG (retention.ms=1K is almost certainly a mistake). The text is taken as it is:
 * blanks before or after it are SHOAL_ECONFIG.
 * @return 0, SHOAL_ESETTING (no such setting), SHOAL_ECONFIG (value malformed or out of
 *         range; cfg unchanged). Detail in shoal_errmsg(). Thread-safety: any thread. */
SHOAL_EXTERN int shoal_topic_config_set(shoal_topic_config_t *cfg, const char *name,
                                        const char *value);

/** The name of setting number i (0, 1, ...), or NULL past the last: to list them all. */
SHOAL_EXTERN const char *shoal_topic_setting_name(size_t i);

/** Format setting `name` of cfg as text into buf (cap bytes).
 * @return 0, SHOAL_ESETTING, or -ENOSPC. Thread-safety: any thread. */
SHOAL_EXTERN int shoal_topic_config_get(const shoal_topic_config_t *cfg, const char *name,
                                        char *buf, size_t cap);

/** Check every setting's range and their combinations (max.message.bytes at most half a
 * segment; left at its default, it counts as lowered to that, as shoal_topic_create() lowers
 * it). @return 0, SHOAL_EPARTITIONS or SHOAL_ECONFIG with detail in shoal_errmsg(). */
SHOAL_EXTERN int shoal_topic_config_check(const shoal_topic_config_t *cfg);

/** Check a topic name against Kafka's rules: 1..249 characters of [a-zA-Z0-9._-], and
 * neither "." nor "..". @return true when valid. Thread-safety: any thread. */
SHOAL_EXTERN bool shoal_topic_name_is_valid(const char *name);

/** Create a topic.
 * @param[in] cfg  NULL means the defaults.
 * The daemon reserves each partition's ring (segment_bytes x ring_slots) in shared memory
 * at once, so a topic that does not fit is refused here rather than failing later; this
 * takes about a second per GiB, during which the topic is "still being created" to other
 * calls naming it, and the call returns when it is done.
 * @return 0, or SHOAL_ENAME, SHOAL_ETOPICEXISTS, SHOAL_EPARTITIONS, SHOAL_ECONFIG (also
 *         for a memory topic with a setting about disk segments other than its default:
 *         retention.*, segment.ms, flush.*, delete.retention.ms, compaction),
 *         -ENOSPC (not enough shared memory or memory; the detail gives the sizes),
 *         -EMFILE (its disk partitions would leave shoald too few open files to serve
 *         clients: raise its limit), SHOAL_EIO, SHOAL_ECLOSED, -errno. Nothing is left
 *         behind on failure. SHOAL_ETIMEDOUT when shoald does not answer within 30 s plus
 *         8 s per GiB of rings (it is stopped or hung): the create may still be done, as
 *         with SHOAL_ECLOSED; describe the topic to find out.
 * Thread-safety: any thread. */
SHOAL_EXTERN int shoal_topic_create(shoal_client_t *client, const char *name,
                                    const shoal_topic_config_t *cfg);

/** Change settings of an existing topic, by name and text value (as
 * shoal_topic_config_set()). All or nothing: nothing changes unless every pair is valid.
 * storage, segment.bytes and ring.slots fix the shared ring's layout and cannot change.
 * partitions may grow, as in Kafka, never shrink (SHOAL_ECONFIG): shoald makes the new
 * rings (about a second per GiB; the call returns when they are made, and waits for that as
 * a create does: 30 s plus 8 s per GiB, SHOAL_ETIMEDOUT after; meanwhile the topic
 * keeps its partitions, and another alter or a delete of it is SHOAL_ADMIN_ACTION), producers
 * follow the new count at their next send (keyed records then go by it), group members get the new
 * partitions by a rebalance (a group with committed offsets in the topic reads them from
 * their start: shoald commits offset 0 there for it, so that with LATEST it does not skip
 * what they received before the rebalance, as Kafka's groups do; a group that has committed
 * nothing in the topic starts them per auto_offset_reset), and a consumer that assigned
 * itself every partition keeps those it had. max.message.bytes applies to producers
 * opened after the change. A memory topic refuses the settings about disk segments (SHOAL_ECONFIG,
 * as shoal_topic_create()).
 * @return 0, or SHOAL_ENAME, SHOAL_ENOTOPIC, SHOAL_ESETTING, SHOAL_ECONFIG, SHOAL_EIMMUTABLE,
 *         SHOAL_ADMIN_ACTION (partitions are being added: retry), -ENOSPC and -EMFILE (as
 *         shoal_topic_create(), for added partitions), SHOAL_EINVAL (n 0 or above 64, or a
 *         NULL name or value), SHOAL_ECLOSED, -errno. Thread-safety: any thread. */
SHOAL_EXTERN int shoal_topic_alter(shoal_client_t *client, const char *name,
                                   const char *const *names, const char *const *values, size_t n);

/** Delete a topic and all its data, and every consumer group's committed offsets in it (a
 * group left with no members and no offsets is forgotten). Producers and consumers still
 * attached keep their mappings; their next append or poll returns SHOAL_ENOTOPIC.
 * @return 0, or SHOAL_ENAME, SHOAL_ENOTOPIC, SHOAL_ADMIN_ACTION (the topic is still being
 *         created: try again), SHOAL_ECLOSED, -errno. */
SHOAL_EXTERN int shoal_topic_delete(shoal_client_t *client, const char *name);

/** List topic names, sorted.
 * @param[out] names  an array of *count strings; free it with shoal_topic_list_free().
 * @return 0, or SHOAL_ECLOSED, SHOAL_EPROTO, -ENOMEM, SHOAL_ELIMIT (the names add up to
 *         more than a control reply carries, 64 MiB: some 260,000 of 249 characters).
 *         An older libshoal, which takes replies of 1 MiB at most, fails SHOAL_EPROTO
 *         beyond some 4,000 such names. Thread-safety: any thread. */
SHOAL_EXTERN int shoal_topic_list(shoal_client_t *client, char ***names, size_t *count);
/** List, sorted, the topics the daemon knows but does not serve: its start left them out
 * (their files could not be recovered; shoald's log says why). Requests naming one get
 * SHOAL_ENOTOPIC saying so, a create of the name SHOAL_ETOPICEXISTS; a delete removes it.
 * shoal_topic_list() does not name them.
 * @param[out] names  as for shoal_topic_list().
 * @return 0, or SHOAL_ECLOSED, SHOAL_ECORRUPT (the daemon's metadata store holds a key that
 *         is not a topic name), SHOAL_EPROTO (also from a daemon older than this call),
 *         -ENOMEM. Thread-safety: any thread. */
SHOAL_EXTERN int shoal_topic_list_unserved(shoal_client_t *client, char ***names, size_t *count);
SHOAL_EXTERN void shoal_topic_list_free(char **names, size_t count);

/** One partition's watermarks and sizes, as seen by the daemon. */
typedef struct shoal_partition_info {
    int32_t partition;
    int64_t log_start_offset; /* first offset still stored */
    int64_t log_end_offset;   /* next offset to be assigned */
    int64_t flushed_offset;   /* every offset below this is fsynced to disk */
    uint64_t shm_bytes;       /* bytes held in the shared ring's live slots */
    uint64_t disk_bytes;      /* bytes of .log files on disk */
} shoal_partition_info_t;

typedef struct shoal_topic_info {
    char name[SHOAL_TOPIC_NAME_MAX + 1];
    shoal_topic_config_t config;
    shoal_partition_info_t *partitions; /* config.partitions entries */
} shoal_topic_info_t;

/** Describe a topic.
 * @param[out] out  allocated by the library; free with shoal_topic_info_free().
 * @return 0, or SHOAL_ENAME, SHOAL_ENOTOPIC, SHOAL_ECLOSED, -ENOMEM. */
SHOAL_EXTERN int shoal_topic_describe(shoal_client_t *client, const char *name,
                                      shoal_topic_info_t **out);
SHOAL_EXTERN void shoal_topic_info_free(shoal_topic_info_t *info);

/** A partition's counters, read from its shared control block. */
typedef struct shoal_partition_stats {
    int32_t partition;
    int64_t log_start_offset;
    int64_t log_end_offset;
    int64_t flushed_offset;
    uint64_t appended_batches; /* since the ring was created (daemon restarts keep it) */
    uint64_t appended_records;
    uint64_t appended_bytes;
    uint64_t lock_recoveries; /* appends that repaired the lock after a dead owner */
    uint64_t full_events;     /* appends that found the ring full (back-pressure) */
    uint64_t fsyncs;          /* the daemon's fdatasync calls for this partition */
    uint64_t shm_bytes;       /* bytes in live ring slots */
    uint32_t live_slots;      /* ring slots holding records */
    uint32_t ring_slots;
    uint32_t readers;      /* reader entries in use (consumers attached) */
    uint32_t waiters;      /* readers asleep waiting for records */
    int32_t flush_error;   /* the daemon's last disk error (-errno), 0 when healthy */
    uint64_t reserved_[8]; /* zero: room for new counters (see VERSIONS above) */
} shoal_partition_stats_t;

/** Read one partition's counters straight from shared memory: a read-only attach that
 * takes no lock and does not disturb producers or consumers. Values are read one by one,
 * so they may be from slightly different instants.
 * @return 0, or SHOAL_ENAME, SHOAL_ENOTOPIC, SHOAL_ENOPARTITION, SHOAL_ECLOSED, -EMFILE
 *         (as shoal_producer_open()), -errno.
 * Thread-safety: any thread. */
SHOAL_EXTERN int shoal_partition_stats(shoal_client_t *client, const char *topic, int32_t partition,
                                       shoal_partition_stats_t *out);

/* ---------------------------------------------------------------------------------------
 * Records
 * ------------------------------------------------------------------------------------- */

/** A record header: a key (UTF-8 by Kafka's convention, which shoal does not check) and a
 * byte value; value_len -1 is a null value (value is then not read; value NULL with a
 * value_len above 0 is SHOAL_EINVAL). */
typedef struct shoal_header {
    const char *key;
    size_t key_len;
    const void *value;
    int32_t value_len;
} shoal_header_t;

#define SHOAL_PARTITION_ANY (-1)

/** A record to send. key == NULL is a null key (the partitioner spreads such records) and
 * value == NULL a null value (a tombstone), whatever key_len or value_len says: a length
 * is not checked on the append path, so a NULL meant as bytes is not caught there
 * (shoal_partition_for_key, which has no null key, returns -1 for it). In headers a NULL
 * key with a length is SHOAL_EINVAL. timestamp_ms <= 0 means "now". */
typedef struct shoal_message {
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    const shoal_header_t *headers;
    size_t header_count;
    int64_t timestamp_ms;
    int32_t partition; /* SHOAL_PARTITION_ANY: murmur2(key) or spread for null keys */
} shoal_message_t;

/** A record read by a consumer. Every pointer is a view into shared memory or a read-only
 * segment mapping, valid until the next shoal_poll() or shoal_consumer_close() on the
 * consumer that returned it. key/value are NULL with length -1 when null. */
typedef struct shoal_record {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;
    const void *key;
    int32_t key_len;
    const void *value;
    int32_t value_len;
    uint32_t header_count;
    const uint8_t *headers_raw; /* encoded headers; read them with shoal_record_header() */
    size_t headers_len;
} shoal_record_t;

/** Read header number *iter of a record and advance *iter. Start with *iter = 0.
 * @return 1 when *out was filled, 0 after the last header, SHOAL_ECORRUPT. Views in *out
 * have the record's lifetime. Thread-safety: any thread. */
SHOAL_EXTERN int shoal_record_header(const shoal_record_t *rec, size_t *iter, shoal_header_t *out);

/** Kafka's default partitioner: murmur2(key) & 0x7fffffff, modulo partitions. A key maps to
 * the same partition number as with a Kafka producer. NULL with key_len 0 hashes as the
 * empty key; a null key has no partition of its own (shoal_send spreads such records).
 * @return the partition, or -1 when partitions is 0 or key is NULL with a key_len (which
 * shoal_send takes as a null key: see shoal_message_t). Thread-safety: any thread. */
SHOAL_EXTERN int32_t shoal_partition_for_key(const void *key, size_t key_len, uint32_t partitions);

/* ---------------------------------------------------------------------------------------
 * Producer
 * ------------------------------------------------------------------------------------- */

typedef struct shoal_producer shoal_producer_t;

typedef enum {
    SHOAL_ACKS_MEMORY = 0, /* the append returned: survives any process crash */
    SHOAL_ACKS_DISK = 1,   /* the daemon fsynced the record to its disk segment */
} shoal_acks_t;

typedef struct shoal_producer_options {
    uint32_t acks;          /* shoal_acks_t applied by shoal_send*; default MEMORY */
    int32_t block_ms;       /* how long a send waits for room in a full ring before it
                               returns SHOAL_AGAIN; 0 = never wait; default 5000. Also
                               how long it waits for the append lock that another
                               producer holds (1 s at least: a holder stopped inside it) */
    int32_t ack_timeout_ms; /* how long an ACKS_DISK send waits; default 30000 */
    uint32_t reserved_[13]; /* zero: room for new options (see VERSIONS above) */
} shoal_producer_options_t;

/** Fill opts with the defaults documented in shoal_producer_options_t. Thread-safety: any. */
SHOAL_EXTERN void shoal_producer_options_init(shoal_producer_options_t *opts);

/** Open a producer for a topic.
 * @param[in] opts  NULL means the defaults.
 * @return 0, or SHOAL_ENAME, SHOAL_ENOTOPIC, SHOAL_EDENIED, SHOAL_ECLOSED, -ENOMEM,
 *         SHOAL_EINVAL (an option out of range: acks not a shoal_acks_t, a negative
 *         timeout), or SHOAL_ECONFIG when opts asks for ACKS_DISK on a memory topic, or
 *         -EMFILE: the process ran out of file descriptors (RLIMIT_NOFILE) while receiving
 *         the partition's shared-memory descriptors (ring_slots + 2 of them, kept until
 *         the producer closes); those that came are closed, and the client works on once
 *         descriptors are free again; SHOAL_ELIMIT when the kernel refused shoald's
 *         passing of them (too many in flight, sent to clients that do not read their
 *         replies: the detail says so), which a later try may pass.
 * Ownership: close with shoal_producer_close(), before or after the client.
 * Thread-safety: one thread per producer handle. */
SHOAL_EXTERN int shoal_producer_open(shoal_client_t *client, const char *topic,
                                     const shoal_producer_options_t *opts, shoal_producer_t **out);
SHOAL_EXTERN void shoal_producer_close(shoal_producer_t *producer);

/** The topic's partition count as the producer places records by it: partitions added to
 * the topic since it opened included (shoal_topic_alter), as shoal_send follows them.
 * A caller that computes keyed partitions itself (shoal_partition_for_key) asks for it
 * before each batch. Thread-safety: the producer handle's one thread. */
SHOAL_EXTERN uint32_t shoal_producer_partitions(shoal_producer_t *producer);

/** Where an appended record went. */
typedef struct shoal_ack {
    int32_t partition;
    int64_t offset;
} shoal_ack_t;

/** Append one record.
 * @param[out] ack  its partition and offset; may be NULL.
 * @return 0 once the record is acknowledged at the producer's acks level, or SHOAL_AGAIN
 *         (ring still full after block_ms, or the append lock still held by another
 *         producer: stopped inside it?), SHOAL_ETOOLARGE (over the topic's
 *         max.message.bytes, or 2 GiB), SHOAL_EINVAL (a NULL producer or message, a header
 *         with a NULL key of non-zero length or a value_len below -1), SHOAL_ENOPARTITION,
 *         SHOAL_ENOTOPIC (the topic deleted: for every partition, also when a topic of the
 *         same name was created since, which takes a new producer), SHOAL_ETIMEDOUT
 *         (ACKS_DISK wait), SHOAL_EPANIC,
 *         SHOAL_ECLOSED (ACKS_DISK while shoald is not running), SHOAL_ECORRUPT (shoald
 *         stopped the partition: its shared ring is damaged), -ENOMEM, or as
 *         shoal_producer_open() (-EMFILE, SHOAL_ECLOSED) for the first record to a
 *         partition other than 0, which attaches it. On
 *         SHOAL_ETIMEDOUT or SHOAL_ECLOSED from the disk wait the record was appended (ack is
 *         set) and is kept in shared memory, but is not yet known to be on disk. Appends
 *         with ACKS_MEMORY keep working while shoald restarts: it is not on the data path. */
SHOAL_EXTERN int shoal_send(shoal_producer_t *producer, const shoal_message_t *msg,
                            shoal_ack_t *ack);

/** Append n records as one RecordBatch to one partition, taking the append lock once.
 * The partition is msgs[0].partition, or chosen from msgs[0]'s key when that is
 * SHOAL_PARTITION_ANY; the other messages' partition fields are ignored. The records get
 * consecutive offsets; ack holds the first.
 * @return as shoal_send(); SHOAL_EINVAL when the batch is placed by msgs[0]'s key and a
 *         later message's key belongs to another partition (nothing is appended: the same
 *         key always goes to the same partition; keyless messages may join); SHOAL_ETOOLARGE when
 * one record, encoded as a batch of its own, exceeds the topic's max_record_bytes
 * (max.message.bytes limits each record, as for shoal_send(); the detail names the record's size),
 * or the whole batch exceeds segment_bytes (a ring slot). */
SHOAL_EXTERN int shoal_send_batch(shoal_producer_t *producer, const shoal_message_t *msgs, size_t n,
                                  shoal_ack_t *ack);

/** Wait until the record at (partition, offset) reaches an acknowledgement level.
 * @param[in] timeout_ms  how long to wait: 0 only looks, -1 waits for ever (or until the
 *                        partition or the daemon goes), below -1 is SHOAL_EINVAL.
 * @return 0, SHOAL_ETIMEDOUT, SHOAL_ENOPARTITION, SHOAL_EINVAL (offset not appended, or
 *         timeout_ms below -1), SHOAL_ECLOSED (shoald is not running),
 *         SHOAL_ECONFIG (ACKS_DISK on a memory topic), SHOAL_ENOTOPIC, SHOAL_ECORRUPT
 *         (the partition stopped).
 * Thread-safety: one thread per producer handle. */
SHOAL_EXTERN int shoal_producer_wait(shoal_producer_t *producer, int32_t partition, int64_t offset,
                                     shoal_acks_t level, int timeout_ms);

/* ---------------------------------------------------------------------------------------
 * Consumer
 * ------------------------------------------------------------------------------------- */

typedef struct shoal_consumer shoal_consumer_t;

/** How shoal_poll() waits when every assigned partition is caught up. */
typedef enum {
    SHOAL_WAIT_DEFAULT = 0, /* spin up to spin_ns watching for data, then sleep on the futex;
                               while recent waits for data took a little longer than
                               spin_ns (up to 40x), spin twice their average instead, so a
                               steady stream never costs its producer a wake-up call;
                               while the thread shares its CPU with other runnable ones
                               and a partition's producer runs on that CPU, it spins
                               spin_ns with sched_yield() so the producer can run */
    SHOAL_WAIT_FUTEX = 1,   /* sleep on the futex at once: least CPU, a wake-up costs a
                               system call on each side and a scheduler round trip */
    SHOAL_WAIT_SPIN = 2,    /* never sleep: busy-spin until data or the timeout; lowest
                               latency, burns a whole CPU while waiting. It makes no system
                               call, so a signal does not end the wait (its handler runs and
                               the spin goes on; no -EINTR): have the handler call
                               shoal_consumer_wakeup() */
} shoal_wait_t;

#define SHOAL_WAIT_SPIN_NS_DEFAULT      5000u /* SHOAL_WAIT_DEFAULT spins this long */
#define SHOAL_FETCH_MAX_WAIT_US_DEFAULT 100u  /* shoal_consumer_options_t.fetch_max_wait_us */

struct shoal_assignor;
struct shoal_topic_partition;

/** Called from inside shoal_poll() (or shoal_consumer_close()) on the polling thread when
 * a group consumer gains (on_assigned) or gives up (on_revoked) partitions. tps and its
 * strings are valid only during the call. The consumer's positions are already set when
 * on_assigned runs (to the committed offsets; where this member was in a partition it gets
 * back without one, such as after a daemon restart; else per auto_offset_reset). Eager members (any
 * non-cooperative assignor configured) get on_revoked with every partition before they
 * rejoin, and shoal_commit_sync() may still commit them there; cooperative members (all
 * assignors cooperative) get on_revoked and on_assigned with only the partitions that
 * moved, after the new assignment is known; shoal_commit_sync() may still commit the
 * revoked ones in on_revoked (shoald assigns them to nobody until this member has given
 * them up), and with auto_commit their positions were sent to be committed already (a
 * cooperative member reads and commits on while its join waits for the other members, reads
 * on while its sync waits for the leader's assignment, and auto-commit commits again before
 * on_revoked). A member that was fenced gets on_revoked for
 * partitions already lost. Inside any of the consumer's callbacks (these two and
 * on_commit), shoal_consumer_close() and shoal_poll() on that consumer return SHOAL_EINVAL
 * (the call running the callback still uses it); commit, seek, position, assignment, pause
 * and resume may be called. */
typedef void (*shoal_rebalance_cb)(void *arg, shoal_consumer_t *c,
                                   const struct shoal_topic_partition *tps, size_t n);
/** Result of a shoal_commit_async(): status 0 or a negative code. Called on the thread
 * that polls, from inside a later libshoal call on the same consumer. */
typedef void (*shoal_commit_cb)(void *arg, shoal_consumer_t *c, int status);

/* Where a consumer goes when it has no committed offset (groups), or when a memory topic
 * overwrote the records at its position (any consumer; shoal_poll() says SHOAL_EOFFSET). */
typedef enum {
    SHOAL_OFFSET_RESET_LATEST = 0,   /* the log end */
    SHOAL_OFFSET_RESET_EARLIEST = 1, /* the log start (the oldest record left) */
} shoal_offset_reset_t;

typedef struct shoal_consumer_options {
    bool check_crcs;  /* also verify the CRC32C of batches read from shared memory before
                         returning them (those read from disk segments always are); default
                         false */
    uint32_t wait;    /* shoal_wait_t; default SHOAL_WAIT_DEFAULT */
    uint32_t spin_ns; /* SHOAL_WAIT_DEFAULT: how long to spin before sleeping; default
                         SHOAL_WAIT_SPIN_NS_DEFAULT, 0 behaves as SHOAL_WAIT_FUTEX. Ignored
                         by the other strategies */
    /* Throughput against latency, as Kafka's fetch.min.bytes and fetch.max.wait.ms. A poll
     * with a timeout returns once at least fetch_min_bytes of record batches are ready in
     * its partitions, or fetch_max_wait_us after it first saw any, or at its own timeout,
     * with what is ready then (a poll with timeout 0 never waits). Batches on disk, and a
     * ring slot the producers have left, count as enough. Reading a little behind a
     * streaming producer keeps the consumer off the cache lines the producer is writing,
     * which lets the producer run up to twice as fast with small records (docs/
     * PERFORMANCE.md); each record then waits for up to fetch_max_wait_us. While gathering,
     * the consumer spins per `wait` and looks at the partitions about once a microsecond.
     * fetch_min_bytes default 1 (0 too): return as soon as there is a record;
     * fetch_max_wait_us default SHOAL_FETCH_MAX_WAIT_US_DEFAULT. */
    uint32_t fetch_min_bytes;
    uint32_t fetch_max_wait_us;
    /* Consumer groups: used by shoal_consumer_subscribe(), ignored by manual assignment.
     * Strings and the assignors array are copied by shoal_consumer_open(). */
    const char *group_id;            /* required to subscribe; 1-249 of [a-zA-Z0-9._-] */
    const char *client_id;           /* shown by `shoal group describe`; default "shoal";
                                        64 characters at most, no control characters */
    const char *group_instance_id;   /* static membership id, or NULL (dynamic member) */
    int32_t session_timeout_ms;      /* a member silent this long is removed; default 10000;
                                      * above shoald's group.max.session.timeout.ms (30 min
                                      * by default) poll fails SHOAL_EINVAL */
    int32_t max_poll_interval_ms;    /* a member that does not poll for this long loses its
                                        partitions (at most a heartbeat interval later: shoald
                                        hears of polls by heartbeats); also the rebalance
                                        timeout; default 300000 */
    int32_t heartbeat_interval_ms;   /* how often poll heartbeats, below the session
                                        timeout; default 100 */
    bool auto_commit;                /* commit positions from poll every interval; default true */
    int32_t auto_commit_interval_ms; /* default 5000 */
    uint32_t auto_offset_reset;      /* shoal_offset_reset_t; default LATEST */
    const struct shoal_assignor *const *assignors; /* preference order; NULL = {"range"} */
    size_t assignor_count;
    shoal_rebalance_cb on_assigned; /* optional */
    shoal_rebalance_cb on_revoked;  /* optional */
    shoal_commit_cb on_commit;      /* optional: results of shoal_commit_async() and of
                                     * auto-commits (close's own is its return value) */
    void *cb_arg;                   /* passed to the three callbacks */
    uint64_t reserved_[8];          /* zero: room for new options (see VERSIONS above) */
} shoal_consumer_options_t;

/** Fill opts with the defaults documented in shoal_consumer_options_t.
 * Thread-safety: any thread. */
SHOAL_EXTERN void shoal_consumer_options_init(shoal_consumer_options_t *opts);

/** Open a consumer with no partitions; add them with shoal_consumer_assign().
 * @param[in] opts  NULL means the defaults; copied, so the caller keeps ownership.
 * @return 0, or -ENOMEM, or SHOAL_EINVAL when opts->wait is not a shoal_wait_t or
 *         auto_offset_reset not a shoal_offset_reset_t. With a group_id also SHOAL_EGROUPID
 *         (not a valid group id) and SHOAL_EINVAL (an invalid group_instance_id, a timeout
 *         <= 0, assignor_count without assignors, an incomplete assignor).
 * Ownership: close with shoal_consumer_close(), before or after the client.
 * Thread-safety: one thread per consumer handle. */
SHOAL_EXTERN int shoal_consumer_open(shoal_client_t *client, const shoal_consumer_options_t *opts,
                                     shoal_consumer_t **out);

/** Close a consumer: detach its partitions, unmap everything, free it. NULL is allowed.
 * The views the last shoal_poll() returned must not be used after it.
 * A subscribed group consumer first commits its positions (with auto_commit), calls
 * on_revoked, passes the results of asynchronous commits still in flight to on_commit and
 * leaves the group (a static member keeps its place for session_timeout_ms). It waits for
 * shoald session_timeout_ms at most in all (30 s when that is longer): a daemon that does
 * not answer (stopped, hung) then holds close no longer; the commit is given up, the
 * commits still unanswered reach on_commit as SHOAL_ECLOSED, and everything is freed all
 * the same. A child of fork() closing an inherited consumer only frees its own copy (see
 * CAVEATS) and returns 0.
 * @return 0 (also when there was nothing to commit), or the failure of the commit close
 *         made, the detail in shoal_errmsg(): SHOAL_ETIMEDOUT (shoald did not answer in
 *         time; the commit may still be carried out once it goes on), SHOAL_ECLOSED (the
 *         group connection had broken: nothing was committed), or another error of
 *         shoal_commit_sync(). The consumer is closed either way: delivery stays at least
 *         once, the positions not committed are read again by the partitions' next owner.
 * Thread-safety: one thread per consumer handle. */
SHOAL_EXTERN int shoal_consumer_close(shoal_consumer_t *consumer);

/** Add partitions of a topic to the consumer, each positioned at the log end (use
 * shoal_consumer_seek() to move). partitions NULL with n 0 means every partition. A
 * partition assigned already is refused: shoal_consumer_unassign() it first. With every
 * partition, one that shoald stopped (its shared ring damaged) is left out: the others are
 * assigned, and the next shoal_poll() fails SHOAL_ECORRUPT once, saying so; assign it
 * again once shoald has restarted. A list that names it fails as a whole.
 * @return 0, or SHOAL_ENAME, SHOAL_ENOTOPIC, SHOAL_ENOPARTITION, SHOAL_EINVAL (already
 *         assigned, listed twice, or the consumer is subscribed to a group), SHOAL_ELIMIT
 *         (as shoal_producer_open()), SHOAL_ECLOSED, -ENOMEM, -EMFILE (out of file
 *         descriptors while receiving a partition's, as shoal_producer_open(); nothing is
 *         added). */
SHOAL_EXTERN int shoal_consumer_assign(shoal_consumer_t *consumer, const char *topic,
                                       const int32_t *partitions, size_t n);

/** Remove partitions of a topic from the consumer: those listed, or with partitions NULL and
 * n 0 every assigned partition of the topic. Their positions are forgotten, their reader
 * entries freed and their mappings unmapped, so the views the last shoal_poll() returned
 * from them must not be used after this. This is how a consumer leaves a deleted topic
 * (whose partitions say SHOAL_ENOTOPIC); a topic re-created under the same name is read by
 * assigning it again, which attaches the new topic.
 * @return 0, or SHOAL_ENOPARTITION (a listed partition, or with n 0 every partition of the
 *         topic, is not assigned), SHOAL_EINVAL (topic NULL, n without partitions, listed
 *         twice, or the consumer is subscribed to a group). Nothing is removed on failure.
 * Thread-safety: one thread per consumer handle. */
SHOAL_EXTERN int shoal_consumer_unassign(shoal_consumer_t *consumer, const char *topic,
                                         const int32_t *partitions, size_t n);

typedef enum {
    SHOAL_SEEK_BEGINNING = 0, /* the log start offset, as it is when the partition is next
                                 read (lazy, as Kafka's seekToBeginning): records the start
                                 passes meanwhile are not reported lost */
    SHOAL_SEEK_END = 1,       /* the log end offset: only records appended later */
    SHOAL_SEEK_OFFSET = 2,    /* the given offset */
    SHOAL_SEEK_TIMESTAMP = 3, /* the first record whose timestamp is >= the given ms */
} shoal_seek_t;

/** Move the position of one assigned partition (or of all of a topic's, partition -1).
 * The views the last shoal_poll() returned stay valid until the next poll, which reads
 * from the new position. An offset above the log end is clamped to it on the next poll,
 * and so is one below the log start of a disk topic; below a memory topic's log start, the
 * next poll returns SHOAL_EOFFSET (those records are gone) and moves per
 * auto_offset_reset.
 *
 * SHOAL_SEEK_TIMESTAMP: `offset` is a timestamp in milliseconds since the epoch (>= 0).
 * The position becomes the earliest offset whose record timestamp is >= it, as Kafka's
 * ListOffsets by timestamp: record timestamps need not increase with offsets, and the
 * answer is exact (the daemon finds it through each disk segment's .timeindex, then the
 * shared ring). A timestamp at or before the first record gives the log start; one after
 * the last record gives the log end, so only records appended later are read. This asks
 * shoald once per partition (a control-socket round trip); the others never do.
 * @return 0, or SHOAL_ENOPARTITION (not assigned, or below -1), SHOAL_EINVAL (unknown
 *         whence, negative offset or timestamp). For SHOAL_SEEK_TIMESTAMP also
 *         SHOAL_ECLOSED, SHOAL_ENOTOPIC, SHOAL_ECORRUPT (a damaged segment lies before the
 *         answer), SHOAL_AGAIN (the log moved on faster than the search: retry),
 *         SHOAL_ELIMIT (every reader entry of the partition is taken), -ENOMEM; on failure
 *         the partitions already handled keep their new position, the others their old
 *         one. */
SHOAL_EXTERN int shoal_consumer_seek(shoal_consumer_t *consumer, const char *topic,
                                     int32_t partition, shoal_seek_t whence, int64_t offset);

/** The next offset the consumer will read from a partition (after SHOAL_SEEK_BEGINNING,
 * the log start as it is now), or SHOAL_ENOPARTITION, SHOAL_EINVAL (NULL consumer or
 * topic, or another thread inside a call on the consumer: see CAVEATS). */
SHOAL_EXTERN int64_t shoal_consumer_position(shoal_consumer_t *consumer, const char *topic,
                                             int32_t partition);

/** A partition and an offset in it: an offset to commit (the next offset the group should
 * read, last processed + 1), or a consumer's position (shoal_consumer_assignment). */
typedef struct shoal_topic_partition_offset {
    const char *topic;
    int32_t partition;
    int64_t offset;
} shoal_topic_partition_offset_t;

/** The partitions assigned to the consumer now, each with its position (the next offset
 * it will read), as Kafka's assignment() and position(): those shoal_consumer_assign()
 * added, or a group's, as they stand after the last poll's rebalance (inside on_assigned,
 * the new ones are already there; while a rebalance waits for shoald across polls, those
 * it attached so far are listed already). A partition shoald stopped, which could not be
 * attached, is not listed.
 * @param[out] out  filled with the first cap of them, in the consumer's order (assigned
 *                  last, listed last, until one is given up); each topic string is valid
 *                  until the consumer's assignment next changes (an assign, an unassign, a
 *                  poll or a commit of a group consumer, which can find it fenced, the close).
 * @param[in]  cap  how many out holds; 0 (out may be NULL) only counts them.
 * @return how many partitions are assigned (more than cap: only cap were filled), or
 *         SHOAL_EINVAL (NULL consumer, NULL out with cap above 0, or another thread inside a
 *         call on the consumer).
 * Thread-safety: one thread per consumer handle. */
SHOAL_EXTERN int shoal_consumer_assignment(shoal_consumer_t *consumer,
                                           shoal_topic_partition_offset_t *out, size_t cap);

/** Pause a partition (-1: every partition of the topic assigned to the consumer): polls
 * return none of its records until shoal_consumer_resume(), and its position stays where
 * it is, as Kafka's pause() and resume(). For an application that cannot take more from
 * some partitions for a while and reads the others meanwhile (the group's heartbeats go on
 * in the polls). From the next poll (or shoal_consumer_release()) on, a paused partition
 * holds no ring slot, so it holds no producer back: a disk topic's records the ring has
 * passed meanwhile are read from disk after the resume, and a memory topic's are lost (the
 * first poll after it returns SHOAL_EOFFSET saying how many; after a SHOAL_SEEK_BEGINNING
 * not yet read from, it reads from the log start as it is then). New records on a paused partition
 * do not end a waiting poll. Pausing a paused partition, or resuming one not paused, does nothing.
 * A group's rebalance keeps a partition's pause only where the member keeps the partition
 * (cooperative); a partition assigned to it comes unpaused.
 * @return 0, or SHOAL_ENOPARTITION (not assigned to the consumer, or below -1),
 *         SHOAL_EINVAL (NULL consumer or topic, or a consumer inherited through fork()).
 * Thread-safety: one thread per consumer handle. */
SHOAL_EXTERN int shoal_consumer_pause(shoal_consumer_t *consumer, const char *topic,
                                      int32_t partition);
/** Resume a partition shoal_consumer_pause() paused (-1: all of the topic's); the next poll
 * reads it again from its position. Returns as shoal_consumer_pause(). */
SHOAL_EXTERN int shoal_consumer_resume(shoal_consumer_t *consumer, const char *topic,
                                       int32_t partition);
/** Whether a partition assigned to the consumer is paused (Kafka's paused()): 1 or 0, or
 * SHOAL_ENOPARTITION (not assigned), SHOAL_EINVAL (NULL consumer or topic).
 * Thread-safety: one thread per consumer handle. */
SHOAL_EXTERN int shoal_consumer_paused(shoal_consumer_t *consumer, const char *topic,
                                       int32_t partition);

/** Read up to max records from the assigned partitions, fairly across them.
 * @param[out] out         filled with views; valid until the next shoal_poll() or
 *                         shoal_consumer_close() on this consumer. Do not free.
 * @param[in]  timeout_ms  how long to wait when every partition is caught up: 0 returns
 *                         at once, -1 waits for ever, below -1 is SHOAL_EINVAL. The
 *                         consumer's wait strategy (shoal_consumer_options_t.wait) says
 *                         how: a sleeping consumer uses no CPU and wakes when a producer
 *                         appends; a spinning one (SHOAL_WAIT_SPIN, or the first spin_ns
 *                         of SHOAL_WAIT_DEFAULT) sees the append without any system call
 *                         on either side.
 *                         With fetch_min_bytes above 1, a poll that finds less than
 *                         that also waits, up to fetch_max_wait_us, for more.
 *                         A partition whose position is below the ring is read from
 *                         disk, from a segment shoald hands over: asking for one waits
 *                         100 ms at most (a poll with timeout 0 too), and once shoald
 *                         has not answered one (stopped, hung) only for what is left of
 *                         timeout_ms. So a poll returns by timeout_ms plus 100 ms even
 *                         then, that partition having nothing to read yet (no error);
 *                         a later poll asks again and reads on once shoald answers.
 * @return the number of records (0 on timeout), or SHOAL_EINVAL (a consumer inherited
 *         through fork(): see CAVEATS), SHOAL_ECORRUPT (a damaged batch, below),
 *         SHOAL_ENOTOPIC,
 *         SHOAL_ECLOSED, SHOAL_EPANIC, -EINTR (a signal came while the consumer slept, and
 *         its handler was installed without SA_RESTART; never while it spins, so never with
 *         SHOAL_WAIT_SPIN. With SA_RESTART, as signal() installs handlers, the kernel goes
 *         on with the wait: a handler that wants the poll to end calls
 *         shoal_consumer_wakeup(), which may be called there), -EMFILE (the process ran
 *         out of file descriptors while receiving a disk segment's, or a group's new
 *         partitions'), or SHOAL_EOFFSET: records at the position are gone and the position
 *         has moved past them, so the next poll goes on from there: a memory topic's ring
 *         overwrote them before this consumer read them (it fell off the tail, or a producer
 *         needed the slot it held; the position moved per auto_offset_reset: earliest, the
 *         oldest record left; latest, the log end), or a disk log lacks them (a segment file
 *         was lost; the position moved to the first offset after them), or retention deleted
 *         them after this consumer read records there (the position moved to the log start;
 *         a position set below the log start by a seek or a committed offset moves there
 *         without an error, as shoal_consumer_seek() says). SHOAL_ECORRUPT: the
 *         batch at the position is damaged (its CRC or its framing); the position stays.
 *         One partition's error never holds the others back: a poll returns it (or, when
 *         other partitions already gave it records, the next poll does, so records are
 *         never withheld). An error that lasts (SHOAL_ENOTOPIC, SHOAL_ECORRUPT,
 *         SHOAL_ENOPARTITION) is returned once: while that partition goes on failing the
 *         same way at the same position later polls pass over it as caught up, the other
 *         partitions' records keep coming, and a poll with nothing to read waits out its
 *         timeout (-1: for ever, even when every partition has failed, or when nothing is
 *         assigned). Each poll still
 *         tries it, so it reads on once the cause is gone; after shoal_consumer_seek() its
 *         error is returned again. One that may pass by itself (SHOAL_ENODAEMON,
 *         SHOAL_ECLOSED, -EMFILE, -ENOMEM) is returned by every poll that meets it; the
 *         first two (shoald is gone) only after the poll waited its timeout (100 ms when
 *         -1), so that a loop retrying the poll does not spin.
 *         So a deleted topic's partitions say SHOAL_ENOTOPIC once each (leave it with
 *         shoal_consumer_unassign()), and a damaged batch SHOAL_ECORRUPT once (seek past it).
 *         The poll after an assign (or a group's assignment) that left out a partition
 *         shoald stopped fails SHOAL_ECORRUPT once, before reading, saying which
 *         (shoal_consumer_assign()).
 * A subscribed group consumer (shoal_consumer_subscribe) also runs the group protocol
 * here, on the calling thread: heartbeats, callbacks, rejoining. It keeps to timeout_ms
 * through a rebalance too: the join is answered when every member has rejoined and the
 * sync when the leader has assigned, and a poll waits its timeout at most for each, the
 * next poll going on from there (it returns 0 meanwhile; a member whose assignors are all
 * cooperative keeps the partitions it holds and reads them on while its join and its sync
 * wait, but not from the sync's answer to the round's end); the offset fetch and the
 * attaches after the sync too, and the commit as a rebalance begins (auto-commit) is sent
 * without waiting for its answer, which goes to on_commit. It keeps to timeout_ms even when shoald
 * does not answer (stopped, hung): a heartbeat not answered in time stays pending, read by a later
 * poll, and the partitions are read meanwhile; a new group connection (the old one broke, e.g.
 * shoald restarted) waits for shoald's answer to its handshake the same way, the poll returning 0
 * (no partitions) meanwhile. Extra errors: SHOAL_EINVAL (not subscribed, nor assigned by hand),
 * SHOAL_ENOASSIGNOR (none of options.assignors is supported by every member); on the generation's
 * leader, the negative code its assignor returned, or SHOAL_EINVAL when the assignor's result
 * breaks the rules of shoal_assignor_t (the detail names the assignor and the rule): the member
 * tries again no sooner than heartbeat_interval_ms later, this poll waiting that long (or
 * timeout_ms when shorter) before it returns, and polls until then return 0; SHOAL_ENODAEMON /
 * SHOAL_ECLOSED (the group connection is gone; the next poll tries to reconnect; SHOAL_ENODAEMON
 * comes after a wait of up to heartbeat_interval_ms, or timeout_ms when shorter, so that a loop
 * retrying poll does not spin), SHOAL_ETIMEDOUT (in a rebalance, shoald did not answer a request in
 * time: 30 s, or for a join or sync the member's max_poll_interval_ms plus 10 s; the next poll
 * tries again), SHOAL_EPROTO, -ENOMEM, and SHOAL_EFENCED: another consumer joined with the same
 * group_instance_id and took this one's place (on_revoked runs, nothing is committed); this poll
 * and every later one and every commit return it, so close the consumer (Kafka's
 * FENCED_INSTANCE_ID). Being fenced by the generation (SHOAL_EGENERATION) or a rebalance
 * (SHOAL_EREBALANCE) is handled inside and never returned by poll. A partition shoald stopped stays
 * in the member's assignment but is left out of what it reads and commits (said once, as above)
 * until shoald restarts and the members rejoin. */
SHOAL_EXTERN int shoal_poll(shoal_consumer_t *consumer, shoal_record_t *out, size_t max,
                            int timeout_ms);

/** Make the shoal_poll() in progress on consumer, or else the next one, return
 * SHOAL_EWAKEUP, without waiting out its timeout: how another thread or a signal handler
 * ends a consumer loop (Kafka's KafkaConsumer.wakeup()). A poll waiting for records returns
 * at once, whatever its wait strategy (SHOAL_WAIT_SPIN included); a group consumer's poll
 * waiting for shoald's answers (a rebalance, a heartbeat, a new connection's handshake)
 * returns within 20 ms. shoal_commit_sync() waiting for its answer also returns
 * SHOAL_EWAKEUP within 20 ms (the commit may still be carried out), and so does
 * shoal_commit_async() waiting for room; shoal_consumer_close() is not cut short. One call
 * ends one poll or commit. Async-signal-safe: an atomic store and a futex wake-up.
 * @return 0, or SHOAL_EINVAL (consumer NULL).
 * Thread-safety: any thread, while the consumer is open; the one call on a consumer that
 * may run beside its polling thread. */
SHOAL_EXTERN int shoal_consumer_wakeup(shoal_consumer_t *consumer);

/** Let go of the views the last shoal_poll() returned, before the next poll. Until then a
 * consumer pins the ring slot they point into, and a producer that comes round the ring to
 * that slot waits for the consumer's next poll (its block_ms, then SHOAL_AGAIN), on disk and
 * memory topics alike. One that copies what it needs and then works for long, or blocks
 * writing its output, calls this first and holds producers back from nothing meanwhile. The next
 * poll goes on from the same position: from disk if the ring has moved on (a memory topic's records
 * may be overwritten meanwhile: SHOAL_EOFFSET, as for a consumer that falls behind). The last
 * poll's views must not be used after it. NULL is allowed. Thread-safety: the consumer's thread. */
SHOAL_EXTERN void shoal_consumer_release(shoal_consumer_t *consumer);

/* ---------------------------------------------------------------------------------------
 * Consumer groups: membership, offsets, administration
 *
 * A consumer opened with options.group_id and subscribed with shoal_consumer_subscribe()
 * is a member of that group: shoald (the coordinator) and the members share each
 * subscribed topic's partitions so that every partition is owned by exactly one member;
 * different groups each see every record. The group protocol runs inside shoal_poll() on
 * a control connection of its own (opened at subscribe): poll heartbeats, learns of
 * rebalances, calls on_revoked, rejoins, and (as the generation's leader) runs the chosen
 * assignor, then attaches the new partitions, seeks them to the committed offsets and
 * calls on_assigned (see shoal_rebalance_cb for eager and cooperative members). A member process
 * that dies is seen at once (its connection closes). Delivery is at least once: after a rebalance a
 * partition restarts at its last committed offset.
 * ------------------------------------------------------------------------------------- */

#define SHOAL_GROUP_ID_MAX 249

/** Check a group id as a topic name: 1..249 characters of [a-zA-Z0-9._-], and neither "." nor
 * "..". Thread-safety: any thread. */
SHOAL_EXTERN bool shoal_group_id_is_valid(const char *group_id);

/** Join the consumer's group (options.group_id) with a subscription to n topics. The
 * partitions arrive during later shoal_poll() calls. A topic that does not exist yet is
 * kept in the subscription and gets partitions once it is created and a rebalance runs.
 * It opens the group's connection without waiting for shoald's answer to its handshake,
 * which the polls that follow read (a refusal comes from poll).
 * @return 0, or SHOAL_EGROUPID (missing or invalid group id), SHOAL_ENAME, SHOAL_EINVAL
 *         (n == 0, already subscribed, or partitions assigned by hand), SHOAL_ENODAEMON,
 *         SHOAL_ECLOSED, SHOAL_ETIMEDOUT (shoald did not take the connection within 30 s:
 *         stopped or overloaded, its listen backlog full), -ENOMEM. Thread-safety: one
 *         thread per consumer handle. */
SHOAL_EXTERN int shoal_consumer_subscribe(shoal_consumer_t *consumer, const char *const *topics,
                                          size_t n);

#define SHOAL_TOPIC_PATTERN_MAX 1024

/** Join the consumer's group with a subscription to every topic whose whole name matches
 * pattern, as Kafka's subscribe(Pattern): "orders\..*" takes orders.eu and orders.us, not
 * orders or old.orders.eu. The syntax is Java's, which Kafka's takes, where POSIX extended
 * regular expressions read it the same: characters, ".", classes such as [a-z0-9] and [^.],
 * \d \w \s \D \W \S, groups (...) and (?:...), "|", the quantifiers * + ? {m} {m,} {m,n}
 * (lazy ones too: the same names match), "^" and "$" at the ends only. The rest
 * (back-references, other (?...) groups, nested classes, possessive quantifiers, other
 * escaped letters) is refused, as is a pattern of more than 256 characters and classes,
 * counting each copy a {m,n} makes: a match then takes time linear in a name's length,
 * whatever the pattern. shoald matches it against its topics when a rebalance's join phase
 * ends, and looks again every 200 ms while the group is stable: a topic created that
 * matches, or a matched one deleted, starts a rebalance, so its partitions are assigned a
 * poll or two after its creation.
 * Without a committed offset they start per options.auto_offset_reset: with the default
 * (LATEST), records written to a new topic before that rebalance are not read; set EARLIEST
 * to read a new topic from its start. Otherwise as shoal_consumer_subscribe().
 * @return 0, or SHOAL_EINVAL (an invalid pattern, the detail says why and where; already
 *         subscribed;
 *         partitions assigned by hand), and the other errors of shoal_consumer_subscribe().
 * Thread-safety: one thread per consumer handle. */
SHOAL_EXTERN int shoal_consumer_subscribe_pattern(shoal_consumer_t *consumer, const char *pattern);

/** Leave the group as shoal_consumer_close() does (on_revoked with every partition, the
 * commit of the positions with auto_commit, and a LeaveGroup, which a static member does
 * not send), then forget the subscription, as Kafka's unsubscribe(): the consumer may
 * subscribe again, to other topics or a pattern, or assign partitions by hand.
 * @return 0, or the failure of the commit (the membership is forgotten all the same),
 *         SHOAL_EINVAL (not subscribed; inside one of the consumer's callbacks),
 *         SHOAL_EFENCED (a later process took this static member's place: close it).
 * Thread-safety: one thread per consumer handle. */
SHOAL_EXTERN int shoal_consumer_unsubscribe(shoal_consumer_t *consumer);

/** Commit offsets for the consumer's group and wait until they are durable in shoald's
 * LMDB. offsets NULL with n 0 commits the current position of every assigned partition.
 * @return 0, or SHOAL_EGENERATION (this member was fenced: its generation is over, e.g.
 *         after exceeding max_poll_interval_ms; or it has not joined yet; poll to (re)join),
 *         SHOAL_EFENCED (see
 *         shoal_poll), SHOAL_ENOTASSIGNED, SHOAL_ENOTOPIC (the topic was deleted),
 *         SHOAL_EOFFSET (an offset past the partition's log end: nothing is committed),
 *         SHOAL_EREBALANCE (the group is completing a rebalance, or this member's round
 *         of it is still under way: poll until it is done, then commit; a cooperative
 *         member may commit while its join waits for the others, not while its sync
 *         waits: auto-commit commits what it read then at the sync's answer),
 *         SHOAL_EINVAL (not a group consumer), SHOAL_ENOGROUP, SHOAL_EIO, SHOAL_ECLOSED,
 *         SHOAL_ETIMEDOUT (shoald did not answer within 30 s: it is stopped or hung; the
 *         commit may still be carried out once it goes on), SHOAL_EWAKEUP
 *         (shoal_consumer_wakeup() while it waited for the answer: the same), SHOAL_EPROTO,
 *         -ENOMEM.
 * Thread-safety: one thread per consumer handle. */
SHOAL_EXTERN int shoal_commit_sync(shoal_consumer_t *consumer,
                                   const shoal_topic_partition_offset_t *offsets, size_t n);

/** As shoal_commit_sync() but without waiting: the request is sent now and its result is
 * passed to options.on_commit from a later call on this consumer (poll, commit, close).
 * @return 0 when sent, or the errors of shoal_commit_sync() found before sending; with 64
 *         commits in flight it first waits for the oldest one's answer, up to 30 s
 *         (SHOAL_ETIMEDOUT; SHOAL_EWAKEUP when shoal_consumer_wakeup() ends the wait:
 *         nothing sent), and for room in the connection's socket as long (a stopped
 *         daemon reads nothing): SHOAL_ETIMEDOUT when none of the commit went (nothing is
 *         reported to on_commit for it), or when part of it went, which drops the group
 *         connection (the commits in flight reach on_commit as SHOAL_ECLOSED; poll
 *         rejoins). */
SHOAL_EXTERN int shoal_commit_async(shoal_consumer_t *consumer,
                                    const shoal_topic_partition_offset_t *offsets, size_t n);

/** Offsets for a topic's partitions stored for a group. */
typedef struct shoal_group_offset_info {
    char topic[SHOAL_TOPIC_NAME_MAX + 1];
    int32_t partition;
    int64_t committed;      /* -1 when none */
    int64_t log_end_offset; /* -1 when the topic is gone */
    int64_t lag;            /* log_end_offset - committed, or -1 */
} shoal_group_offset_info_t;

typedef struct shoal_group_member_info {
    char member_id[128];
    char client_id[128];
    char instance_id[SHOAL_GROUP_ID_MAX + 1]; /* "" for a dynamic member */
    int32_t pid;
    struct shoal_topic_partition *assigned; /* topic strings live in the info */
    size_t assigned_count;
} shoal_group_member_info_t;

typedef struct shoal_group_info {
    char group_id[SHOAL_GROUP_ID_MAX + 1];
    char state[32];    /* "Empty", "PreparingRebalance", "CompletingRebalance", "Stable" */
    char protocol[64]; /* the assignor of the current generation, or "" */
    char leader[128];  /* member id of the leader, or "" */
    int32_t generation;
    shoal_group_member_info_t *members;
    size_t member_count;
    shoal_group_offset_info_t *offsets; /* sorted by topic, partition */
    size_t offset_count;
} shoal_group_info_t;

typedef struct shoal_group_listing {
    char group_id[SHOAL_GROUP_ID_MAX + 1];
    char state[32];
    uint32_t members;
} shoal_group_listing_t;

/** List the groups shoald knows: those with members and those with committed offsets.
 * @param[out] out  an array of *n entries sorted by id; free it with shoal_group_list_free().
 * @return 0, or SHOAL_ECLOSED, SHOAL_EPROTO, -ENOMEM, SHOAL_ELIMIT (as shoal_topic_list()).
 * Thread-safety: any thread. */
SHOAL_EXTERN int shoal_group_list(shoal_client_t *client, shoal_group_listing_t **out, size_t *n);
SHOAL_EXTERN void shoal_group_list_free(shoal_group_listing_t *list);

/** Describe a group: state, generation, members with their partitions, and per committed
 * partition the committed offset, log end offset and lag.
 * @param[out] out  free with shoal_group_info_free().
 * @return 0, or SHOAL_EGROUPID, SHOAL_ENOGROUP, SHOAL_ECLOSED, SHOAL_EPROTO, -ENOMEM,
 *         SHOAL_ELIMIT (as shoal_topic_list()). */
SHOAL_EXTERN int shoal_group_describe(shoal_client_t *client, const char *group_id,
                                      shoal_group_info_t **out);
SHOAL_EXTERN void shoal_group_info_free(shoal_group_info_t *info);

/** shoal_group_reset_partitions()' mode beyond shoal_seek_t: each committed offset moves
 * by the value given (negative: back). */
#define SHOAL_RESET_SHIFT 8
/** shoal_group_reset_partitions()' flag: work out and report the changes, make none. */
#define SHOAL_RESET_DRY_RUN 1u

/** One partition's committed offset before and after a reset. */
typedef struct shoal_offset_change {
    int32_t partition;
    int64_t committed; /* before the reset; -1 when the group had none */
    int64_t offset;    /* after it (with SHOAL_RESET_DRY_RUN: what it would be) */
} shoal_offset_change_t;

/** Set a group's committed offsets on some partitions of a topic, as Kafka's
 * kafka-consumer-groups --reset-offsets does: to the log start (whence
 * SHOAL_SEEK_BEGINNING), the log end (SHOAL_SEEK_END), an offset (SHOAL_SEEK_OFFSET, value
 * >= 0), the first record at or after a time (SHOAL_SEEK_TIMESTAMP, value in ms since the
 * epoch; the log end when no record is that late), or each committed offset moved by value
 * (SHOAL_RESET_SHIFT; a partition without one is SHOAL_EINVAL). Every result is taken as
 * the log start or end where it lies outside them. All partitions change in one durable
 * transaction, or none does. Only while the group has no members; a group that does not
 * exist yet is created with these offsets (how a new group is told where to start).
 * @param[in] partitions  the partitions to reset, n of them; NULL with n 0: every one.
 * @param[in] flags  0, or SHOAL_RESET_DRY_RUN: change nothing (an active group allowed).
 * @param[out] changes  may be NULL; else an array of *nchanges entries in the order the
 *                      partitions were given (or 0..N-1), freed with
 *                      shoal_offset_changes_free().
 * @return 0, or SHOAL_EGROUPID, SHOAL_EGROUPACTIVE, SHOAL_ENAME, SHOAL_ENOTOPIC,
 *         SHOAL_ENOPARTITION, SHOAL_EINVAL (an unknown mode or flag, a negative offset or
 *         time, a partition named twice, nothing to shift), SHOAL_EIO, SHOAL_ECLOSED,
 *         -ENOMEM. Thread-safety: any thread. */
SHOAL_EXTERN int shoal_group_reset_partitions(shoal_client_t *client, const char *group_id,
                                              const char *topic, const int32_t *partitions,
                                              size_t n, int whence, int64_t value, unsigned flags,
                                              shoal_offset_change_t **changes, size_t *nchanges);
SHOAL_EXTERN void shoal_offset_changes_free(shoal_offset_change_t *changes);

/** shoal_group_reset_partitions() on every partition of the topic, reporting nothing. */
SHOAL_EXTERN int shoal_group_reset_offsets(shoal_client_t *client, const char *group_id,
                                           const char *topic, int whence, int64_t offset);

/** Delete a group and its committed offsets. Only while the group has no members.
 * @return 0, or SHOAL_EGROUPID, SHOAL_ENOGROUP, SHOAL_EGROUPACTIVE, SHOAL_EIO,
 *         SHOAL_ECLOSED. Thread-safety: any thread. */
SHOAL_EXTERN int shoal_group_delete(shoal_client_t *client, const char *group_id);

/* ---------------------------------------------------------------------------------------
 * Consumer groups: partition assignors
 *
 * Kafka's client-side assignment: in each generation the group's leader runs an assignor
 * over every member's subscription and hands the result to the coordinator. The built-in
 * assignors carry Kafka's names; an application may supply its own shoal_assignor_t.
 * ------------------------------------------------------------------------------------- */

typedef struct shoal_topic_partition {
    const char *topic;
    int32_t partition;
} shoal_topic_partition_t;

/** One member as an assignor sees it. Arrays are owned by the caller of the assignor. */
typedef struct shoal_assign_member {
    const char *member_id;         /* unique in the group */
    const char *group_instance_id; /* static membership id, or NULL */
    const char *const *topics;     /* the member's subscription */
    size_t topic_count;
    const shoal_topic_partition_t *owned; /* partitions it owns now (sticky assignors) */
    size_t owned_count;
    int32_t generation; /* generation of `owned`, -1 when none */
} shoal_assign_member_t;

typedef struct shoal_assign_topic {
    const char *topic;
    uint32_t partitions;
} shoal_assign_topic_t;

typedef struct shoal_assign_input {
    const shoal_assign_member_t *members; /* sorted by member_id */
    size_t member_count;
    const shoal_assign_topic_t *topics; /* every topic some member subscribes to, sorted */
    size_t topic_count;
} shoal_assign_input_t;

/** Where an assignor writes its result (opaque; filled with shoal_assign_output_add()). */
typedef struct shoal_assign_output shoal_assign_output_t;

/** Give partition (topic, partition) to members[member_index]. topic must point to a string
 * that outlives the output (the input's strings do).
 * @return 0, SHOAL_EINVAL (index out of range), -ENOMEM. Thread-safety: one thread per
 * output. */
SHOAL_EXTERN int shoal_assign_output_add(shoal_assign_output_t *out, size_t member_index,
                                         const char *topic, int32_t partition);

/** An assignor. assign() must give every partition of every topic in the input to exactly
 * one member subscribed to that topic (a cooperative assignor may instead withhold a
 * partition that another member still owns: it is revoked first and assigned in the next
 * rebalance). Returns 0 or a negative code. A failure, or a result that breaks these
 * rules, is returned by the leader's shoal_poll() (SHOAL_EINVAL for a broken rule), which
 * runs the assignor again a heartbeat interval later, in the same generation. The other
 * members wait in the rebalance meanwhile (cooperative members read on what they hold;
 * the others' polls return nothing), for the rebalance timeout at
 * most: then shoald removes the leader, the others rebalance without it, and it joins
 * again as a new member, which does not lead while an older member stays. */
typedef struct shoal_assignor {
    const char *name; /* "range", "roundrobin", "sticky", "cooperative-sticky" */
    bool cooperative; /* incremental rebalancing: only moved partitions are revoked */
    int (*assign)(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out);
    void *arg;
} shoal_assignor_t;

/** A built-in assignor by Kafka's name, or NULL. The result is static. Thread-safety: any. */
SHOAL_EXTERN const shoal_assignor_t *shoal_assignor_builtin(const char *name);

#ifdef __cplusplus
}
#endif
#endif /* SHOAL_H */
