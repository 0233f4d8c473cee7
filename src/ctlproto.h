/* ctlproto.h - the control protocol codec: framing and field encoding. No I/O.
 *
 * Every message is a 16-byte header then a payload, all little-endian:
 *   u32 magic CTL_MAGIC | u16 version CTL_VERSION | u16 type | u32 payload length | u32 seq
 * A response has type (request type | CTL_RESPONSE) and the request's seq; its payload
 * starts with i32 status (0 or a negative shoal code) and str detail, then the fields of
 * that response when status is 0. File descriptors travel beside a response as SCM_RIGHTS.
 * Strings are u16 length + bytes (no NUL, none inside). A request's payload is at most
 * CTL_MAX_PAYLOAD, a response's at most CTL_MAX_REPLY: lists (topics, groups) grow with the
 * broker, requests do not.
 *
 * Requests and their fields (-> response fields):
 *   HELLO           u32 client version, str client name -> u32 server version, str instance,
 *                   i32 the client's pid as shoald sees it (SO_PEERCRED: the client in
 *                   another pid namespace, a container, has another pid there; 0 when
 *                   shoald's namespace does not see it)
 *   TOPIC_CREATE    str name, topic config               -> (none)
 *   TOPIC_DELETE    str name                             -> (none)
 *   TOPIC_LIST      [u8 which]                           -> u32 n, n x str
 *                   which CTL_LIST_SERVED (0, also when absent, as older clients send it):
 *                   the served topics; CTL_LIST_UNSERVED (1): those the store holds that
 *                   recovery left out
 *   TOPIC_DESCRIBE  str name                  -> topic config, u32 n, n x partition info
 *   ATTACH          str topic, i32 partition, u8 mode (CTL_ATTACH_READ/WRITE)
 *                   -> topic config; fds: control block, readers table, ring slots 0..n-1
 *   SEGMENT_OPEN    str topic, i32 partition, i64 offset
 *                   -> i64 base offset, u64 bytes, i64 position of offset; fds: the .log
 *   TOPIC_ALTER     str name, u32 n, n x (str setting, str value)  -> (none)
 *   OFFSET_FOR_TIME str topic, i32 partition, i64 timestamp (ms, >= 0)
 *                   -> i64 offset: the earliest whose record timestamp is >= the timestamp,
 *                      or the log end offset when no record is that late
 * Consumer groups (16..31; a "tp" is str topic, i32 partition; "tps" is u32 n, n x tp):
 *   GROUP_JOIN      str group, str member id ("" when new), str instance id, str client id,
 *                   i32 session timeout ms, i32 rebalance timeout ms, u32 n, n x str topic,
 *                   u32 n, n x str assignor, tps owned, i32 owned generation,
 *                   [i32 heartbeat interval ms: the max poll interval's margin,
 *                   [str pattern: subscribe to the topics it matches; then no topics]]
 *                   -> i32 generation, str assignor, str leader id, str member id,
 *                      u32 n members (0 unless leader), each: str member id, str instance id,
 *                      u32 n, n x str topic, tps owned, i32 owned generation;
 *                      u32 n topics, each: str topic, u32 partitions
 *                   (answered when the rebalance's join phase ends)
 *   GROUP_SYNC      str group, str member id, i32 generation,
 *                   u32 n (0 unless leader), each: str member id, tps -> tps (own assignment)
 *                   (answered when the leader's assignment is in)
 *   GROUP_HEARTBEAT str group, str member id, i32 generation -> (none)
 *   GROUP_LEAVE     str group, str member id -> (none)
 *   GROUP_COMMIT    str group, str member id, i32 generation, u32 n, n x (tp, i64 offset)
 *                   -> (none) (answered once durable; a burst shares one LMDB transaction)
 *   GROUP_FETCH     str group, str member id, i32 generation, tps
 *                   -> u32 n, n x (tp, i64 offset or -1)
 *   GROUP_LIST      (none) -> u32 n, n x (str group, str state, u32 members)
 *   GROUP_DESCRIBE  str group -> str state, i32 generation, str assignor, str leader,
 *                   u32 n, n x (str member id, str client id, str instance id, i32 pid, tps),
 *                   u32 n, n x (tp, i64 committed, i64 log end)
 *   GROUP_RESET     str group, str topic, u8 whence (shoal_seek_t, or CTL_RESET_SHIFT),
 *                   i64 offset, timestamp or shift, [u8 flags (CTL_RESET_DRY_RUN),
 *                   u32 n, n x i32 partition (n 0: every one)]
 *                   -> (none) without the bracketed fields (as older clients send it);
 *                      with them u32 n, n x (i32 partition, i64 committed before or -1,
 *                      i64 offset after)
 *   GROUP_DELETE    str group -> (none)
 * A topic config is u32 partitions, u32 storage, u64 segment bytes, u32 ring slots,
 * u32 max record bytes, i64 retention ms, i64 retention bytes, i64 segment ms,
 * u32 cleanup policy, i64 flush messages, i64 flush ms, i64 delete retention ms. A partition info
 * is i32 partition, i64 log start, i64 log end, i64 flushed, u64 shm bytes, u64 disk bytes. */
#ifndef SHOAL_CTLPROTO_H
#define SHOAL_CTLPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "shoal.h"

#define CTL_MAGIC         0x4c4f4853u /* "SHOL" little-endian */
#define CTL_VERSION       2           /* 2: HELLO's answer gives the client's pid */
#define CTL_HEADER_BYTES  16
#define CTL_MAX_PAYLOAD   (1u << 20)  /* of a request */
#define CTL_MAX_REPLY     (64u << 20) /* of a response (type with CTL_RESPONSE) */
#define CTL_MAX_FDS       128
#define CTL_RESPONSE      0x8000
#define CTL_ATTACH_READ   0
#define CTL_ATTACH_WRITE  1
#define CTL_LIST_SERVED   0
#define CTL_LIST_UNSERVED 1
#define CTL_RESET_SHIFT   SHOAL_RESET_SHIFT /* GROUP_RESET's whence beyond shoal_seek_t */
#define CTL_RESET_DRY_RUN SHOAL_RESET_DRY_RUN

enum ctl_type {
    CTL_HELLO = 1,
    CTL_TOPIC_CREATE = 2,
    CTL_TOPIC_DELETE = 3,
    CTL_TOPIC_LIST = 4,
    CTL_TOPIC_DESCRIBE = 5,
    CTL_ATTACH = 6,
    CTL_SEGMENT_OPEN = 7,
    /* 8..15: storage lifecycle (topic settings, time index) */
    CTL_TOPIC_ALTER = 8,
    CTL_OFFSET_FOR_TIME = 9,
    /* 16..31: consumer groups */
    CTL_GROUP_FIRST_ = 16,
    CTL_GROUP_JOIN = 16,
    CTL_GROUP_SYNC = 17,
    CTL_GROUP_HEARTBEAT = 18,
    CTL_GROUP_LEAVE = 19,
    CTL_GROUP_COMMIT = 20,
    CTL_GROUP_FETCH = 21,
    CTL_GROUP_LIST = 22,
    CTL_GROUP_DESCRIBE = 23,
    CTL_GROUP_RESET = 24,
    CTL_GROUP_DELETE = 25,
    CTL_TYPE_MAX_ = 32 /* size of the server's handler table */
};

typedef struct ctl_header {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint32_t len;
    uint32_t seq;
} ctl_header_t;

void ctl_header_encode(uint8_t out[CTL_HEADER_BYTES], const ctl_header_t *h);
/* The largest payload a frame of this type may carry: CTL_MAX_REPLY for a response,
 * CTL_MAX_PAYLOAD for a request. */
static inline uint32_t ctl_max_payload(uint16_t type)
{
    return (type & CTL_RESPONSE) ? CTL_MAX_REPLY : CTL_MAX_PAYLOAD;
}
/* 0; SHOAL_EPROTO for a bad magic or a length over ctl_max_payload(type); SHOAL_EVERSION
 * for another version. Detail in shoal_errmsg(). */
int ctl_header_decode(const uint8_t in[CTL_HEADER_BYTES], ctl_header_t *h);

/* A growable output buffer. Put functions never fail; an allocation failure is remembered
 * in err (-ENOMEM) and reported by ctl_frame_end(). */
typedef struct ctl_writer {
    uint8_t *buf;
    size_t len;
    size_t cap;
    int err;
} ctl_writer_t;

void ctl_writer_init(ctl_writer_t *w);
void ctl_writer_release(ctl_writer_t *w); /* frees buf; w may be reused after init */
/* Start a frame (resets w->len and writes a header with length 0). */
void ctl_frame_begin(ctl_writer_t *w, uint16_t type, uint32_t seq);
/* Patch the payload length. 0, -ENOMEM, or SHOAL_EPROTO when over ctl_max_payload(). */
int ctl_frame_end(ctl_writer_t *w);
/* Start a response frame: header, status and detail (NULL detail is ""). */
void ctl_response_begin(ctl_writer_t *w, uint16_t req_type, uint32_t seq, int32_t status,
                        const char *detail);

/* Append bytes already encoded (a response body built in another writer). */
void ctl_put_raw(ctl_writer_t *w, const void *src, size_t n);
void ctl_put_u8(ctl_writer_t *w, uint8_t v);
void ctl_put_u16(ctl_writer_t *w, uint16_t v);
void ctl_put_u32(ctl_writer_t *w, uint32_t v);
void ctl_put_u64(ctl_writer_t *w, uint64_t v);
/* Overwrite the u32 put at byte at of w's buffer (a count known only after its items). */
void ctl_patch_u32(ctl_writer_t *w, size_t at, uint32_t v);
void ctl_put_i32(ctl_writer_t *w, int32_t v);
void ctl_put_i64(ctl_writer_t *w, int64_t v);
void ctl_put_str(ctl_writer_t *w, const char *s); /* s longer than 65535 bytes: err */
void ctl_put_topic_config(ctl_writer_t *w, const shoal_topic_config_t *cfg);
void ctl_put_partition_info(ctl_writer_t *w, const shoal_partition_info_t *pi);

/* A bounds-checked cursor over a received payload. Get functions never read past end: on
 * underflow they set err = SHOAL_EPROTO, return zero values and keep failing. */
typedef struct ctl_reader {
    const uint8_t *p;
    const uint8_t *end;
    int err;
    char why[96]; /* with err: what was wrong, for the messages that say it */
} ctl_reader_t;

void ctl_reader_init(ctl_reader_t *r, const uint8_t *payload, size_t len);
/* Bytes not read yet: a bound on how many entries a count read from the payload can
 * really describe, before allocating for them. */
static inline size_t ctl_reader_left(const ctl_reader_t *r)
{
    return (size_t)(r->end - r->p);
}
uint8_t ctl_get_u8(ctl_reader_t *r);
uint16_t ctl_get_u16(ctl_reader_t *r);
uint32_t ctl_get_u32(ctl_reader_t *r);
uint64_t ctl_get_u64(ctl_reader_t *r);
int32_t ctl_get_i32(ctl_reader_t *r);
int64_t ctl_get_i64(ctl_reader_t *r);
/* Copy a string into buf (cap bytes, NUL-terminated). A string that does not fit, or holds
 * a NUL byte, sets err = SHOAL_EPROTO. Returns buf. */
char *ctl_get_str(ctl_reader_t *r, char *buf, size_t cap);
void ctl_get_topic_config(ctl_reader_t *r, shoal_topic_config_t *cfg);
void ctl_get_partition_info(ctl_reader_t *r, shoal_partition_info_t *pi);
/* r->err, or SHOAL_EPROTO when bytes are left over (r->why says so; not sticky). */
int ctl_reader_finish(ctl_reader_t *r);

/* Read a response's status and detail (detail copied into buf, may be NULL). Returns the
 * status, or SHOAL_EPROTO when the payload is malformed. */
int ctl_get_status(ctl_reader_t *r, char *detail, size_t cap);

#endif
