/* ctlproto.c - the control protocol codec: frame headers, a growable writer and a
 * bounds-checked reader for the little-endian fields of ctlproto.h. No I/O.
 *
 * DESIGN: both sides make errors sticky so that callers encode or decode a whole message
 * with straight-line code and check once at the end. The writer remembers the first
 * failure in w->err (-ENOMEM from the allocator, SHOAL_EPROTO for a string too long to
 * encode) and turns every later put into a no-op; ctl_frame_end() reports it. The reader
 * checks every get against the bytes left before touching them; the first short read sets
 * r->err = SHOAL_EPROTO, and from then on every get returns zero values without moving, so
 * a malformed payload from another process can never make us read past its end. Strings
 * are u16 length + bytes with no NUL anywhere, so a decoded string is always a C string
 * of exactly the bytes that were sent. */
#include "ctlproto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* The first allocation is big enough for most control messages, so a typical frame costs
 * one allocation per writer, not one per field. */
#define WRITER_MIN_CAP 256
/* A response detail is for people: clip it rather than fail the response. */
#define DETAIL_MAX_BYTES 1024

/* ------------------------------------------------------------------ little-endian */

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    put_le16(p, (uint16_t)v);
    put_le16(p + 2, (uint16_t)(v >> 16));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)get_le16(p) | ((uint32_t)get_le16(p + 2) << 16);
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | ((uint64_t)get_le32(p + 4) << 32);
}

/* ------------------------------------------------------------------ header */

void ctl_header_encode(uint8_t out[CTL_HEADER_BYTES], const ctl_header_t *h)
{
    put_le32(out, h->magic);
    put_le16(out + 4, h->version);
    put_le16(out + 6, h->type);
    put_le32(out + 8, h->len);
    put_le32(out + 12, h->seq);
}

int ctl_header_decode(const uint8_t in[CTL_HEADER_BYTES], ctl_header_t *h)
{
    h->magic = get_le32(in);
    h->version = get_le16(in + 4);
    h->type = get_le16(in + 6);
    h->len = get_le32(in + 8);
    h->seq = get_le32(in + 12);
    if (h->magic != CTL_MAGIC)
        return SHOAL_ERR(SHOAL_EPROTO, "control frame: bad magic 0x%08x", (unsigned)h->magic);
    if (h->version != CTL_VERSION)
        return SHOAL_ERR(SHOAL_EVERSION, "control frame: protocol version %u, expected %u",
                         (unsigned)h->version, (unsigned)CTL_VERSION);
    if (h->len > ctl_max_payload(h->type))
        return SHOAL_ERR(SHOAL_EPROTO, "control frame: payload of %u bytes exceeds %u",
                         (unsigned)h->len, (unsigned)ctl_max_payload(h->type));
    return 0;
}

/* ------------------------------------------------------------------ writer */

void ctl_writer_init(ctl_writer_t *w)
{
    w->buf = NULL;
    w->len = 0;
    w->cap = 0;
    w->err = 0;
}

void ctl_writer_release(ctl_writer_t *w)
{
    shoal__free(w->buf);
    ctl_writer_init(w);
}

/* Room for n more bytes, or NULL with w->err set. A failed realloc keeps the old buffer,
 * which ctl_writer_release() still frees. */
static uint8_t *writer_reserve(ctl_writer_t *w, size_t n)
{
    size_t cap = w->cap ? w->cap : WRITER_MIN_CAP;
    uint8_t *buf;

    if (w->err)
        return NULL;
    if (n > SIZE_MAX / 2 - w->len) {
        w->err = -ENOMEM;
        return NULL;
    }
    if (w->len + n <= w->cap)
        return w->buf + w->len;
    while (cap < w->len + n)
        cap *= 2;
    buf = shoal__realloc(w->buf, cap);
    if (!buf) {
        w->err = -ENOMEM;
        return NULL;
    }
    w->buf = buf;
    w->cap = cap;
    return w->buf + w->len;
}

static void writer_append(ctl_writer_t *w, const void *src, size_t n)
{
    uint8_t *p = writer_reserve(w, n);
    if (!p)
        return;
    if (n > 0)
        memcpy(p, src, n);
    w->len += n;
}

/* A new frame forgets the previous frame's failure: the buffer is still intact after a
 * failed realloc, so the writer is reusable. */
void ctl_frame_begin(ctl_writer_t *w, uint16_t type, uint32_t seq)
{
    uint8_t hdr[CTL_HEADER_BYTES];
    ctl_header_t h = {.magic = CTL_MAGIC, .version = CTL_VERSION, .type = type, .seq = seq};

    w->len = 0;
    w->err = 0;
    ctl_header_encode(hdr, &h);
    writer_append(w, hdr, sizeof(hdr));
}

int ctl_frame_end(ctl_writer_t *w)
{
    size_t payload;
    uint32_t max;

    if (w->err)
        return w->err;
    if (w->len < CTL_HEADER_BYTES)
        return SHOAL_ERR(SHOAL_EPROTO, "control frame: ended without ctl_frame_begin()");
    payload = w->len - CTL_HEADER_BYTES;
    max = ctl_max_payload(get_le16(w->buf + 6));
    if (payload > max)
        return SHOAL_ERR(SHOAL_EPROTO, "control frame: payload of %zu bytes exceeds %u", payload,
                         (unsigned)max);
    put_le32(w->buf + 8, (uint32_t)payload);
    return 0;
}

void ctl_put_raw(ctl_writer_t *w, const void *src, size_t n)
{
    writer_append(w, src, n);
}

void ctl_put_u8(ctl_writer_t *w, uint8_t v)
{
    writer_append(w, &v, 1);
}

void ctl_put_u16(ctl_writer_t *w, uint16_t v)
{
    uint8_t b[2];
    put_le16(b, v);
    writer_append(w, b, sizeof(b));
}

void ctl_put_u32(ctl_writer_t *w, uint32_t v)
{
    uint8_t b[4];
    put_le32(b, v);
    writer_append(w, b, sizeof(b));
}

void ctl_patch_u32(ctl_writer_t *w, size_t at, uint32_t v)
{
    if (!w->err && at + 4 <= w->len)
        put_le32(w->buf + at, v);
}

void ctl_put_u64(ctl_writer_t *w, uint64_t v)
{
    uint8_t b[8];
    put_le64(b, v);
    writer_append(w, b, sizeof(b));
}

void ctl_put_i32(ctl_writer_t *w, int32_t v)
{
    ctl_put_u32(w, (uint32_t)v);
}

void ctl_put_i64(ctl_writer_t *w, int64_t v)
{
    ctl_put_u64(w, (uint64_t)v);
}

static void put_strn(ctl_writer_t *w, const char *s, size_t n)
{
    if (n > UINT16_MAX) {
        if (!w->err)
            w->err = SHOAL_ERR(SHOAL_EPROTO, "control frame: string of %zu bytes exceeds %u", n,
                               (unsigned)UINT16_MAX);
        return;
    }
    ctl_put_u16(w, (uint16_t)n);
    writer_append(w, s, n);
}

void ctl_put_str(ctl_writer_t *w, const char *s)
{
    put_strn(w, s, strlen(s));
}

void ctl_response_begin(ctl_writer_t *w, uint16_t req_type, uint32_t seq, int32_t status,
                        const char *detail)
{
    if (!detail)
        detail = "";
    ctl_frame_begin(w, (uint16_t)(req_type | CTL_RESPONSE), seq);
    ctl_put_i32(w, status);
    put_strn(w, detail, strnlen(detail, DETAIL_MAX_BYTES));
}

void ctl_put_topic_config(ctl_writer_t *w, const shoal_topic_config_t *cfg)
{
    ctl_put_u32(w, cfg->partitions);
    ctl_put_u32(w, cfg->storage);
    ctl_put_u64(w, cfg->segment_bytes);
    ctl_put_u32(w, cfg->ring_slots);
    ctl_put_u32(w, cfg->max_record_bytes);
    ctl_put_i64(w, cfg->retention_ms);
    ctl_put_i64(w, cfg->retention_bytes);
    ctl_put_i64(w, cfg->segment_ms);
    ctl_put_u32(w, cfg->cleanup_policy);
    ctl_put_i64(w, cfg->flush_messages);
    ctl_put_i64(w, cfg->flush_ms);
    ctl_put_i64(w, cfg->delete_retention_ms);
}

void ctl_put_partition_info(ctl_writer_t *w, const shoal_partition_info_t *pi)
{
    ctl_put_i32(w, pi->partition);
    ctl_put_i64(w, pi->log_start_offset);
    ctl_put_i64(w, pi->log_end_offset);
    ctl_put_i64(w, pi->flushed_offset);
    ctl_put_u64(w, pi->shm_bytes);
    ctl_put_u64(w, pi->disk_bytes);
}

/* ------------------------------------------------------------------ reader */

void ctl_reader_init(ctl_reader_t *r, const uint8_t *payload, size_t len)
{
    r->p = payload;
    r->end = payload + len;
    r->err = 0;
    r->why[0] = '\0';
}

static void reader_fail(ctl_reader_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void reader_fail(ctl_reader_t *r, const char *fmt, ...)
{
    va_list ap;

    if (r->err)
        return;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    r->err = SHOAL_ERR(SHOAL_EPROTO, "control message: %s", r->why);
}

/* The next n bytes, consumed, or NULL once the payload is short (sticky). */
static const uint8_t *reader_take(ctl_reader_t *r, size_t n)
{
    const uint8_t *p = r->p;

    if (r->err)
        return NULL;
    if ((size_t)(r->end - r->p) < n) {
        reader_fail(r, "truncated field");
        return NULL;
    }
    r->p += n;
    return p;
}

uint8_t ctl_get_u8(ctl_reader_t *r)
{
    const uint8_t *p = reader_take(r, 1);
    return p ? p[0] : 0;
}

uint16_t ctl_get_u16(ctl_reader_t *r)
{
    const uint8_t *p = reader_take(r, 2);
    return p ? get_le16(p) : 0;
}

uint32_t ctl_get_u32(ctl_reader_t *r)
{
    const uint8_t *p = reader_take(r, 4);
    return p ? get_le32(p) : 0;
}

uint64_t ctl_get_u64(ctl_reader_t *r)
{
    const uint8_t *p = reader_take(r, 8);
    return p ? get_le64(p) : 0;
}

int32_t ctl_get_i32(ctl_reader_t *r)
{
    return (int32_t)ctl_get_u32(r);
}

int64_t ctl_get_i64(ctl_reader_t *r)
{
    return (int64_t)ctl_get_u64(r);
}

/* The bytes of the next string and its length, or NULL. A NUL inside is malformed: it
 * would silently shorten the C string the receiver sees. */
static const uint8_t *reader_take_str(ctl_reader_t *r, size_t *n)
{
    const uint8_t *s;

    *n = ctl_get_u16(r);
    s = reader_take(r, *n);
    if (s && memchr(s, '\0', *n)) {
        reader_fail(r, "NUL byte inside a string");
        return NULL;
    }
    return s;
}

char *ctl_get_str(ctl_reader_t *r, char *buf, size_t cap)
{
    size_t n;
    const uint8_t *s = reader_take_str(r, &n);

    if (s && n >= cap) {
        reader_fail(r, "a string of %zu bytes where the field takes %zu at most", n,
                    cap ? cap - 1 : 0);
        s = NULL;
    }
    if (cap == 0)
        return buf;
    if (s)
        memcpy(buf, s, n);
    buf[s ? n : 0] = '\0';
    return buf;
}

void ctl_get_topic_config(ctl_reader_t *r, shoal_topic_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->partitions = ctl_get_u32(r);
    cfg->storage = ctl_get_u32(r);
    cfg->segment_bytes = ctl_get_u64(r);
    cfg->ring_slots = ctl_get_u32(r);
    cfg->max_record_bytes = ctl_get_u32(r);
    cfg->retention_ms = ctl_get_i64(r);
    cfg->retention_bytes = ctl_get_i64(r);
    cfg->segment_ms = ctl_get_i64(r);
    cfg->cleanup_policy = ctl_get_u32(r);
    cfg->flush_messages = ctl_get_i64(r);
    cfg->flush_ms = ctl_get_i64(r);
    cfg->delete_retention_ms = ctl_get_i64(r);
}

void ctl_get_partition_info(ctl_reader_t *r, shoal_partition_info_t *pi)
{
    pi->partition = ctl_get_i32(r);
    pi->log_start_offset = ctl_get_i64(r);
    pi->log_end_offset = ctl_get_i64(r);
    pi->flushed_offset = ctl_get_i64(r);
    pi->shm_bytes = ctl_get_u64(r);
    pi->disk_bytes = ctl_get_u64(r);
}

int ctl_reader_finish(ctl_reader_t *r)
{
    if (r->err)
        return r->err;
    if (r->p == r->end)
        return 0;
    /* not sticky: a caller may read an optional field that is there, and finish again */
    snprintf(r->why, sizeof(r->why), "%zu unexpected trailing bytes", (size_t)(r->end - r->p));
    return SHOAL_ERR(SHOAL_EPROTO, "control message: %s", r->why);
}

/* The detail is for people, so one longer than the caller's buffer is truncated rather
 * than treated as malformed; a status that is neither 0 nor negative is malformed. */
int ctl_get_status(ctl_reader_t *r, char *detail, size_t cap)
{
    int32_t status = ctl_get_i32(r);
    size_t n;
    const uint8_t *s = reader_take_str(r, &n);

    if (!r->err && status > 0)
        reader_fail(r, "positive response status");
    if (detail && cap > 0) {
        n = (s && !r->err) ? SHOAL_MIN(n, cap - 1) : 0;
        if (n > 0)
            memcpy(detail, s, n);
        detail[n] = '\0';
    }
    return r->err ? r->err : status;
}
