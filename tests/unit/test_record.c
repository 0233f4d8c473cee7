/* test_record.c - RecordBatch v2 against batches written by another Kafka client
 * (../shared/testdata/kafka-record-batch-v2, described by its manifest.json), and the
 * decoder against corrupt, truncated and randomly mutated input.
 *
 * The manifest is read with a minimal JSON parser below (objects, arrays, strings without
 * escapes, integers, null: what the manifest uses), so every value it lists is compared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "harness.h"
#include "record.h"
#include "util.h"

#define TESTDATA_DIR "kafka-record-batch-v2"

/* ---------------------------------------------------------------------------------------
 * Minimal JSON
 * ------------------------------------------------------------------------------------- */

typedef struct jv {
    char type; /* '{' object, '[' array, 's' string, '#' integer, 'n' null */
    const char *str;
    size_t len;
    long long num;
    const char *key; /* member name inside an object */
    size_t key_len;
    struct jv *child;
    struct jv *next;
} jv_t;

static jv_t json_pool[8192];
static size_t json_used;

static const char *json_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    return p;
}

static const char *json_string(const char *p, const char **s, size_t *len)
{
    if (*p != '"')
        return NULL;
    const char *q = ++p;
    while (*q != '\0' && *q != '"') {
        if (*q == '\\')
            return NULL; /* the manifest has no escapes; refuse rather than misread */
        q++;
    }
    if (*q == '\0')
        return NULL;
    *s = p;
    *len = (size_t)(q - p);
    return q + 1;
}

static const char *json_parse(const char *p, jv_t **out);

static const char *json_container(const char *p, jv_t *v)
{
    char close = *p == '{' ? '}' : ']';
    jv_t **tail = &v->child;

    v->type = *p;
    p = json_ws(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        if (close == '}') {
            p = json_string(json_ws(p), &key, &key_len);
            if (p == NULL || *(p = json_ws(p)) != ':')
                return NULL;
            p++;
        }
        if ((p = json_parse(p, tail)) == NULL)
            return NULL;
        (*tail)->key = key;
        (*tail)->key_len = key_len;
        tail = &(*tail)->next;
        p = json_ws(p);
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
    }
}

static const char *json_parse(const char *p, jv_t **out)
{
    char *end;

    if (json_used == SHOAL_ARRAY_LEN(json_pool))
        return NULL;
    jv_t *v = &json_pool[json_used++];
    memset(v, 0, sizeof(*v));
    *out = v;
    p = json_ws(p);
    if (*p == '{' || *p == '[')
        return json_container(p, v);
    if (*p == '"') {
        v->type = 's';
        return json_string(p, &v->str, &v->len);
    }
    if (strncmp(p, "null", 4) == 0) {
        v->type = 'n';
        return p + 4;
    }
    v->type = '#';
    v->num = strtoll(p, &end, 10);
    return end == p ? NULL : end;
}

static const jv_t *json_get(const jv_t *obj, const char *key)
{
    for (const jv_t *m = obj->child; m != NULL; m = m->next)
        if (m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0)
            return m;
    fail_msg("manifest: no member \"%s\"", key);
    return NULL;
}

/* An integer member, written either as a JSON number or as a decimal string (the
 * manifest quotes 64-bit offsets). */
static long long json_int(const jv_t *obj, const char *key)
{
    const jv_t *v = json_get(obj, key);
    char buf[32];

    if (v->type == '#')
        return v->num;
    assert_int_equal(v->type, 's');
    assert_true(v->len < sizeof(buf));
    memcpy(buf, v->str, v->len);
    buf[v->len] = '\0';
    return strtoll(buf, NULL, 10);
}

static size_t json_count(const jv_t *arr)
{
    size_t n = 0;
    for (const jv_t *m = arr->child; m != NULL; m = m->next)
        n++;
    return n;
}

static bool json_str_is(const jv_t *v, const char *s)
{
    return v->type == 's' && v->len == strlen(s) && memcmp(v->str, s, v->len) == 0;
}

/* ---------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------- */

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    fail_msg("bad hex digit %c", c);
    return 0;
}

/* Check a decoded view against a manifest hex string or null. */
static void assert_bytes_match_hex(const void *data, int64_t len, const jv_t *hex)
{
    if (hex->type == 'n') {
        assert_null(data);
        assert_int_equal(len, -1);
        return;
    }
    assert_int_equal(hex->type, 's');
    assert_non_null(data); /* empty is not null */
    assert_int_equal(len, (int64_t)hex->len / 2);
    for (int64_t i = 0; i < len; i++) {
        int byte = hex_val(hex->str[2 * i]) << 4 | hex_val(hex->str[2 * i + 1]);
        assert_int_equal(((const uint8_t *)data)[i], byte);
    }
}

static uint8_t *load_testdata(const char *name, size_t *len)
{
    char rel[256], path[1024];

    snprintf(rel, sizeof(rel), "%s/%s", TESTDATA_DIR, name);
    harness_testdata(path, sizeof(path), rel);
    uint8_t *buf = harness_read_file(path, len);
    if (buf == NULL)
        fail_msg("cannot read %s", path);
    return buf;
}

/* A copy of exactly len bytes, so ASan catches any read past them. */
static uint8_t *dup_exact(const uint8_t *src, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    if (len)
        memcpy(p, src, len);
    return p;
}

static void put_crc(uint8_t *batch, size_t len)
{
    shoal__put_be32(batch + 17, shoal__crc32c(0, batch + 21, len - 21));
}

/* A view is null (NULL, -1) or lies wholly inside [lo, hi). */
static void assert_view_inside(const void *ptr, int64_t len, const uint8_t *lo, const uint8_t *hi)
{
    const uint8_t *p = ptr;
    if (p == NULL) {
        assert_int_equal(len, -1);
        return;
    }
    assert_true(len >= 0);
    assert_true(p >= lo && p <= hi);
    assert_true((uint64_t)len <= (uint64_t)(hi - p));
}

/* ---------------------------------------------------------------------------------------
 * The manifest, loaded once for the group
 * ------------------------------------------------------------------------------------- */

typedef struct fixture {
    char *json;
    const jv_t *manifest; /* array of batch descriptions */
} fixture_t;

static int group_setup(void **state)
{
    static fixture_t fx;
    size_t len;

    uint8_t *raw = load_testdata("manifest.json", &len);
    fx.json = malloc(len + 1);
    memcpy(fx.json, raw, len);
    fx.json[len] = '\0';
    free(raw);
    jv_t *root;
    json_used = 0;
    if (json_parse(fx.json, &root) == NULL || root->type != '[')
        return -1;
    fx.manifest = root;
    *state = &fx;
    return 0;
}

static int group_teardown(void **state)
{
    fixture_t *fx = *state;
    free(fx->json);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Test vectors: decode every file and compare every manifest value; re-encode
 * ------------------------------------------------------------------------------------- */

static void check_header_against_manifest(const record_batch_header_t *h, const jv_t *m,
                                          size_t file_len)
{
    assert_int_equal(file_len, json_int(m, "bytes"));
    assert_int_equal(record_batch_size(h), file_len);
    assert_int_equal(h->magic, 2);
    assert_int_equal(h->base_offset, json_int(m, "base_offset"));
    assert_int_equal(h->first_timestamp, json_int(m, "first_timestamp_ms"));
    assert_int_equal(h->max_timestamp, json_int(m, "max_timestamp_ms"));
    assert_int_equal(h->producer_id, json_int(m, "producer_id"));
    assert_int_equal(h->producer_epoch, json_int(m, "producer_epoch"));
    assert_int_equal(h->base_sequence, json_int(m, "base_sequence"));
    assert_int_equal(h->crc, (uint32_t)json_int(m, "crc32c"));
    const jv_t *recs = json_get(m, "records");
    assert_int_equal(h->record_count, json_count(recs));
    /* No gaps in a freshly produced batch: the last record is base + lastOffsetDelta. */
    const jv_t *last = recs->child;
    while (last->next)
        last = last->next;
    assert_int_equal(h->base_offset + h->last_offset_delta, json_int(last, "offset"));
}

static void check_headers_against_manifest(const shoal_record_t *rec, const jv_t *hdrs)
{
    size_t it = 0;
    shoal_header_t hd;

    assert_int_equal(rec->header_count, json_count(hdrs));
    for (const jv_t *e = hdrs->child; e != NULL; e = e->next) {
        assert_int_equal(shoal_record_header(rec, &it, &hd), 1);
        const jv_t *key = json_get(e, "key");
        assert_int_equal(hd.key_len, key->len);
        assert_memory_equal(hd.key, key->str, key->len);
        assert_bytes_match_hex(hd.value, hd.value_len, json_get(e, "value_hex"));
    }
    assert_int_equal(shoal_record_header(rec, &it, &hd), 0);
}

/* Decode all records, compare them, and collect them as messages for re-encoding. */
static void check_records_against_manifest(const uint8_t *buf, const record_batch_header_t *h,
                                           const jv_t *recs, shoal_message_t *msgs,
                                           shoal_header_t *hdr_store, size_t hdr_cap)
{
    record_iter_t it;
    shoal_record_t rec;
    size_t i = 0, hused = 0;

    assert_int_equal(record_iter_init(&it, buf, h), 0);
    for (const jv_t *e = recs->child; e != NULL; e = e->next, i++) {
        assert_int_equal(record_iter_next(&it, &rec), 1);
        assert_int_equal(rec.offset, json_int(e, "offset"));
        assert_int_equal(rec.timestamp_ms, json_int(e, "timestamp_ms"));
        assert_bytes_match_hex(rec.key, rec.key_len, json_get(e, "key_hex"));
        assert_bytes_match_hex(rec.value, rec.value_len, json_get(e, "value_hex"));
        check_headers_against_manifest(&rec, json_get(e, "headers"));

        shoal_message_t *m = &msgs[i];
        memset(m, 0, sizeof(*m));
        m->key = rec.key;
        m->key_len = rec.key_len < 0 ? 0 : (size_t)rec.key_len;
        m->value = rec.value;
        m->value_len = rec.value_len < 0 ? 0 : (size_t)rec.value_len;
        m->timestamp_ms = rec.timestamp_ms;
        m->headers = hdr_store + hused;
        m->header_count = rec.header_count;
        size_t k = 0;
        assert_true(hused + rec.header_count <= hdr_cap);
        while (shoal_record_header(&rec, &k, &hdr_store[hused]) == 1)
            hused++;
        assert_int_equal(k, rec.header_count);
    }
    assert_int_equal(record_iter_next(&it, &rec), 0);
    assert_int_equal(record_iter_next(&it, &rec), 0);
}

static void check_reencode(const uint8_t *buf, size_t len, const record_batch_header_t *h,
                           const shoal_message_t *msgs)
{
    record_batch_fields_t f;
    size_t n = (size_t)h->record_count, out_len = 0;

    record_batch_fields_init(&f);
    f.base_offset = h->base_offset;
    f.leader_epoch = h->leader_epoch;
    f.attributes = h->attributes;
    f.producer_id = h->producer_id;
    f.producer_epoch = h->producer_epoch;
    f.base_sequence = h->base_sequence;
    assert_int_equal(record_batch_encoded_size(msgs, n, 1), len);
    uint8_t *out = malloc(len);
    assert_int_equal(record_batch_encode(out, len, &f, msgs, n, 1, &out_len), 0);
    assert_int_equal(out_len, len);
    assert_memory_equal(out, buf, len);
    free(out);
}

static void check_one_vector(const jv_t *m)
{
    const jv_t *file = json_get(m, "file");
    char name[128];
    size_t len;
    record_batch_header_t h;

    assert_true(file->len < sizeof(name));
    memcpy(name, file->str, file->len);
    name[file->len] = '\0';
    uint8_t *buf = load_testdata(name, &len);
    assert_int_equal(record_batch_parse(buf, len, &h), 0);
    check_header_against_manifest(&h, m, len);
    assert_int_equal(record_batch_check_crc(buf, &h), 0);

    if (!json_str_is(json_get(m, "compression"), "none")) {
        record_iter_t it;
        assert_true(record_batch_is_compressed(&h));
        assert_int_equal(record_iter_init(&it, buf, &h), SHOAL_ECOMPRESSED);
        free(buf);
        return;
    }
    assert_false(record_batch_is_compressed(&h));
    size_t n = (size_t)h.record_count;
    shoal_message_t *msgs = calloc(n, sizeof(*msgs));
    shoal_header_t *hdrs = calloc(64, sizeof(*hdrs));
    check_records_against_manifest(buf, &h, json_get(m, "records"), msgs, hdrs, 64);
    check_reencode(buf, len, &h, msgs);
    free(hdrs);
    free(msgs);
    free(buf);
}

static void test_record_decodes_every_vector_as_the_manifest_says(void **state)
{
    fixture_t *fx = *state;
    size_t checked = 0;

    for (const jv_t *m = fx->manifest->child; m != NULL; m = m->next, checked++)
        check_one_vector(m);

    /* Every .bin in the directory is in the manifest, so none escapes the check. */
    char path[1024];
    size_t bins = 0;
    harness_testdata(path, sizeof(path), TESTDATA_DIR);
    DIR *d = opendir(path);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        bins += l > 4 && strcmp(e->d_name + l - 4, ".bin") == 0;
    }
    closedir(d);
    assert_int_equal(bins, checked);
    assert_true(checked >= 11);
}

static void test_record_gzip_batch_header_parses_but_iteration_refuses(void **state)
{
    size_t len;
    record_batch_header_t h;
    record_iter_t it;
    (void)state;

    uint8_t *buf = load_testdata("gzip-5.bin", &len);
    assert_int_equal(record_batch_parse(buf, len, &h), 0);
    assert_int_equal(h.attributes & RECORD_ATTR_COMPRESSION_MASK, 1); /* gzip */
    assert_int_equal(h.base_offset, 500);
    assert_int_equal(h.record_count, 5);
    assert_int_equal(h.last_offset_delta, 4);
    assert_int_equal(record_batch_check_crc(buf, &h), 0);
    assert_int_equal(record_iter_init(&it, buf, &h), SHOAL_ECOMPRESSED);
    assert_true(strlen(shoal_errmsg()) > 0);
    free(buf);
}

/* ---------------------------------------------------------------------------------------
 * Corruption
 * ------------------------------------------------------------------------------------- */

static const char *const uncompressed_vectors[] = {
    "single-keyed.bin", "null-key.bin",       "tombstone.bin", "empty-value.bin", "headers.bin",
    "multi-10.bin",     "many-small-200.bin", "binary-4k.bin", "utf8.bin",        "idempotent.bin",
};

static void test_record_crc_fails_on_any_flipped_bit_after_byte_17(void **state)
{
    const char *files[] = {"multi-10.bin", "headers.bin", "idempotent.bin"};
    record_batch_header_t h;
    (void)state;

    for (size_t f = 0; f < SHOAL_ARRAY_LEN(files); f++) {
        size_t len;
        uint8_t *buf = load_testdata(files[f], &len);
        for (size_t i = 17; i < len; i++) {
            for (int bit = 0; bit < 8; bit++) {
                buf[i] ^= (uint8_t)(1u << bit);
                int rc = record_batch_parse(buf, len, &h);
                /* A flip in a checked header field may already fail the parse. */
                if (rc == 0)
                    rc = record_batch_check_crc(buf, &h);
                if (rc != SHOAL_ECORRUPT && rc != RECORD_INCOMPLETE)
                    fail_msg("%s: bit %d of byte %zu flipped, rc %d", files[f], bit, i, rc);
                buf[i] ^= (uint8_t)(1u << bit);
            }
        }
        assert_int_equal(record_batch_parse(buf, len, &h), 0);
        assert_int_equal(record_batch_check_crc(buf, &h), 0);
        free(buf);
    }
}

/* Iterate to the end; return the final code (0 or an error). */
static int iterate_all(const uint8_t *buf, size_t len, int *records)
{
    record_batch_header_t h;
    record_iter_t it;
    shoal_record_t rec;
    int rc = record_batch_parse(buf, len, &h);

    *records = 0;
    if (rc != 0)
        return rc;
    if ((rc = record_iter_init(&it, buf, &h)) != 0)
        return rc;
    while ((rc = record_iter_next(&it, &rec)) == 1) {
        assert_view_inside(rec.key, rec.key_len, buf, buf + len);
        assert_view_inside(rec.value, rec.value_len, buf, buf + len);
        assert_view_inside(rec.headers_raw, (int64_t)rec.headers_len, buf, buf + len);
        (*records)++;
    }
    return rc;
}

static void test_record_truncated_at_every_length_is_incomplete(void **state)
{
    record_batch_header_t h;
    (void)state;

    for (size_t f = 0; f < SHOAL_ARRAY_LEN(uncompressed_vectors); f++) {
        size_t len;
        uint8_t *full = load_testdata(uncompressed_vectors[f], &len);
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *buf = dup_exact(full, cut);
            assert_int_equal(record_batch_parse(buf, cut, &h), RECORD_INCOMPLETE);
            free(buf);
        }
        free(full);
    }
}

/* The batch length is made to agree with a cut inside the records: the header then
 * parses, and the iterator must notice the records do not fit, without reading past. */
static void test_record_records_cut_short_are_corrupt(void **state)
{
    (void)state;
    for (size_t f = 0; f < SHOAL_ARRAY_LEN(uncompressed_vectors); f++) {
        size_t len;
        int n;
        uint8_t *full = load_testdata(uncompressed_vectors[f], &len);
        for (size_t cut = RECORD_BATCH_HEADER_BYTES; cut < len; cut++) {
            uint8_t *buf = dup_exact(full, cut);
            shoal__put_be32(buf + 8, (uint32_t)(cut - RECORD_BATCH_LOG_OVERHEAD));
            if (iterate_all(buf, cut, &n) != SHOAL_ECORRUPT)
                fail_msg("%s cut at %zu: not reported corrupt", uncompressed_vectors[f], cut);
            free(buf);
        }
        assert_int_equal(iterate_all(full, len, &n), 0);
        free(full);
    }
}

static void test_record_batch_length_past_the_buffer_is_incomplete(void **state)
{
    size_t len;
    record_batch_header_t h;
    (void)state;

    uint8_t *buf = load_testdata("multi-10.bin", &len);
    shoal__put_be32(buf + 8, (uint32_t)(len - RECORD_BATCH_LOG_OVERHEAD + 1));
    assert_int_equal(record_batch_parse(buf, len, &h), RECORD_INCOMPLETE);
    shoal__put_be32(buf + 8, 0x7fffffffu);
    assert_int_equal(record_batch_parse(buf, len, &h), RECORD_INCOMPLETE);
    shoal__put_be32(buf + 8, 48);
    assert_int_equal(record_batch_parse(buf, len, &h), SHOAL_ECORRUPT);
    shoal__put_be32(buf + 8, 0xffffffffu);
    assert_int_equal(record_batch_parse(buf, len, &h), SHOAL_ECORRUPT);
    shoal__put_be32(buf + 8, (uint32_t)(len - RECORD_BATCH_LOG_OVERHEAD));
    assert_int_equal(record_batch_parse(buf, len, &h), 0);
    /* A larger buffer than the batch is fine: the next batch follows. */
    assert_int_equal(record_batch_parse(buf, len, &h), 0);
    free(buf);
}

static void test_record_parse_rejects_bad_header_fields(void **state)
{
    size_t len;
    record_batch_header_t h;
    (void)state;

    uint8_t *orig = load_testdata("multi-10.bin", &len);
    uint8_t *buf = malloc(len);
    struct {
        size_t at;
        int bytes;
        uint64_t value;
        int expect;
    } cases[] = {
        {16, 1, 1, SHOAL_ECORRUPT},                    /* magic 1 */
        {16, 1, 3, SHOAL_ECORRUPT},                    /* magic 3 */
        {0, 8, (uint64_t)-1, SHOAL_ECORRUPT},          /* negative base offset */
        {57, 4, 0xffffffffu, SHOAL_ECORRUPT},          /* recordsCount -1 */
        {23, 4, 8, SHOAL_ECORRUPT},                    /* lastOffsetDelta < count - 1 */
        {23, 4, 0xffffffffu, SHOAL_ECORRUPT},          /* lastOffsetDelta -1 */
        {0, 8, 0x7fffffffffffffffull, SHOAL_ECORRUPT}, /* last offset overflows */
        {0, 8, INT64_MAX - 9, SHOAL_ECORRUPT},         /* last INT64_MAX: no next offset */
        {0, 8, INT64_MAX - 10, 0},                     /* last INT64_MAX - 1 */
        {23, 4, 20, 0},                                /* a gap, as after compaction */
        {57, 4, 0, 0},                                 /* parse accepts an empty count */
    };
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(cases); i++) {
        memcpy(buf, orig, len);
        if (cases[i].bytes == 1)
            buf[cases[i].at] = (uint8_t)cases[i].value;
        else if (cases[i].bytes == 4)
            shoal__put_be32(buf + cases[i].at, (uint32_t)cases[i].value);
        else
            shoal__put_be64(buf + cases[i].at, cases[i].value);
        int rc = record_batch_parse(buf, len, &h);
        if (rc != cases[i].expect)
            fail_msg("case %zu: rc %d, expected %d", i, rc, cases[i].expect);
        if (rc == SHOAL_ECORRUPT)
            assert_true(strlen(shoal_errmsg()) > 0);
    }
    free(buf);
    free(orig);
}

/* Build a batch around hand-written record bytes, with a valid header and CRC. */
static size_t build_batch(uint8_t *buf, const uint8_t *records, size_t rlen, int32_t count,
                          int32_t last_delta)
{
    size_t len = RECORD_BATCH_HEADER_BYTES + rlen;

    memset(buf, 0, RECORD_BATCH_HEADER_BYTES);
    shoal__put_be64(buf, 10);
    shoal__put_be32(buf + 8, (uint32_t)(len - RECORD_BATCH_LOG_OVERHEAD));
    buf[16] = 2;
    shoal__put_be32(buf + 23, (uint32_t)last_delta);
    shoal__put_be64(buf + 27, 1000);
    shoal__put_be64(buf + 35, 1000);
    shoal__put_be64(buf + 43, (uint64_t)-1);
    shoal__put_be16(buf + 51, 0xffff);
    shoal__put_be32(buf + 53, 0xffffffffu);
    shoal__put_be32(buf + 57, (uint32_t)count);
    if (rlen > 0)
        memcpy(buf + RECORD_BATCH_HEADER_BYTES, records, rlen);
    put_crc(buf, len);
    return len;
}

/* Build a batch of these records in buf (build_batch) and start an iterator over it. */
static void iter_over(uint8_t *buf, const uint8_t *records, size_t rlen, int32_t count,
                      int32_t last_delta, record_batch_header_t *h, record_iter_t *it)
{
    size_t len = build_batch(buf, records, rlen, count, last_delta);
    assert_int_equal(record_batch_parse(buf, len, h), 0);
    assert_int_equal(record_iter_init(it, buf, h), 0);
}

/* Build, check the CRC, iterate; return the final code and the record count seen. */
static int run_records(const uint8_t *records, size_t rlen, int32_t count, int32_t last_delta,
                       int *seen)
{
    uint8_t tmp[512];
    record_batch_header_t h;

    assert_true(rlen + RECORD_BATCH_HEADER_BYTES <= sizeof(tmp));
    size_t len = build_batch(tmp, records, rlen, count, last_delta);
    uint8_t *buf = dup_exact(tmp, len);
    assert_int_equal(record_batch_parse(buf, len, &h), 0);
    assert_int_equal(record_batch_check_crc(buf, &h), 0);
    int rc = iterate_all(buf, len, seen);
    free(buf);
    return rc;
}

/* One record: len 8, attrs 0, ts delta 0, offset delta 0, key "k", value "v", 0 headers. */
#define GOOD_RECORD 0x10, 0x00, 0x00, 0x00, 0x02, 'k', 0x02, 'v', 0x00

static void test_record_hand_built_batches_decode(void **state)
{
    const uint8_t one[] = {GOOD_RECORD};
    const uint8_t two[] = {GOOD_RECORD, 0x10, 0x00, 0x04, 0x02, 0x02, 'k', 0x02, 'w', 0x00};
    uint8_t tmp[128];
    record_batch_header_t h;
    record_iter_t it;
    shoal_record_t rec;
    int n;
    (void)state;

    assert_int_equal(run_records(one, sizeof(one), 1, 0, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(run_records(two, sizeof(two), 2, 1, &n), 0);
    assert_int_equal(n, 2);
    /* The second record: offset delta 1, timestamp delta 2. */
    iter_over(tmp, two, sizeof(two), 2, 1, &h, &it);
    assert_int_equal(record_iter_next(&it, &rec), 1);
    assert_int_equal(record_iter_next(&it, &rec), 1);
    assert_int_equal(rec.offset, 11);
    assert_int_equal(rec.timestamp_ms, 1002);
    assert_memory_equal(rec.value, "w", 1);
    /* An empty batch (all records compacted away) iterates to nothing. */
    assert_int_equal(run_records(NULL, 0, 0, 3, &n), 0);
    assert_int_equal(n, 0);
}

static void test_record_negative_lengths_other_than_minus_one_are_corrupt(void **state)
{
    /* key length -2 (zigzag 0x03) */
    const uint8_t key_m2[] = {0x10, 0x00, 0x00, 0x00, 0x03, 'k', 0x02, 'v', 0x00};
    /* value length -5 (zigzag 0x09) */
    const uint8_t val_m5[] = {0x10, 0x00, 0x00, 0x00, 0x02, 'k', 0x09, 'v', 0x00};
    /* record length -1 */
    const uint8_t rec_m1[] = {0x01, 0x00, 0x00, 0x00, 0x02, 'k', 0x02, 'v', 0x00};
    /* header count -1 */
    const uint8_t hc_m1[] = {0x10, 0x00, 0x00, 0x00, 0x02, 'k', 0x02, 'v', 0x01};
    /* one header whose key is null (-1): Kafka forbids null header keys */
    const uint8_t hk_null[] = {0x14, 0x00, 0x00, 0x00, 0x02, 'k', 0x02, 'v', 0x02, 0x01, 0x01};
    /* one header, value length -2 */
    const uint8_t hv_m2[] = {0x16, 0x00, 0x00, 0x00, 0x02, 'k', 0x02, 'v', 0x02, 0x02, 'h', 0x03};
    const struct {
        const uint8_t *b;
        size_t n;
    } cases[] = {
        {key_m2, sizeof(key_m2)}, {val_m5, sizeof(val_m5)},   {rec_m1, sizeof(rec_m1)},
        {hc_m1, sizeof(hc_m1)},   {hk_null, sizeof(hk_null)}, {hv_m2, sizeof(hv_m2)},
    };
    int n;
    (void)state;

    for (size_t i = 0; i < SHOAL_ARRAY_LEN(cases); i++) {
        if (run_records(cases[i].b, cases[i].n, 1, 0, &n) != SHOAL_ECORRUPT)
            fail_msg("case %zu not reported corrupt", i);
        assert_int_equal(n, 0);
    }
}

static void test_record_lengths_past_the_record_are_corrupt(void **state)
{
    /* key length 100 in an 8-byte record */
    const uint8_t key_long[] = {0x10, 0x00, 0x00, 0x00, 0xc8, 0x01, 'k', 'v', 0x00};
    /* record length 9 with only 8 bytes after it, at the batch end */
    const uint8_t rec_long[] = {0x12, 0x00, 0x00, 0x00, 0x02, 'k', 0x02, 'v', 0x00};
    /* record length 9 with a stray byte after the fields */
    const uint8_t extra[] = {0x12, 0x00, 0x00, 0x00, 0x02, 'k', 0x02, 'v', 0x00, 0x00};
    /* record length 7: the header count falls outside the record */
    const uint8_t rec_short[] = {0x0e, 0x00, 0x00, 0x00, 0x02, 'k', 0x02, 'v', 0x00};
    /* two headers announced, one present */
    const uint8_t hdr_missing[] = {0x16, 0x00, 0x00, 0x00, 0x02, 'k',
                                   0x02, 'v',  0x04, 0x02, 'h',  0x00};
    /* offset delta 1 in a batch whose lastOffsetDelta is 0 */
    const uint8_t delta_high[] = {0x10, 0x00, 0x00, 0x02, 0x02, 'k', 0x02, 'v', 0x00};
    /* offset delta -1 */
    const uint8_t delta_neg[] = {0x10, 0x00, 0x00, 0x01, 0x02, 'k', 0x02, 'v', 0x00};
    const struct {
        const uint8_t *b;
        size_t n;
    } cases[] = {
        {key_long, sizeof(key_long)},
        {rec_long, sizeof(rec_long)},
        {extra, sizeof(extra)},
        {rec_short, sizeof(rec_short)},
        {hdr_missing, sizeof(hdr_missing)},
        {delta_high, sizeof(delta_high)},
        {delta_neg, sizeof(delta_neg)},
    };
    int n;
    (void)state;

    for (size_t i = 0; i < SHOAL_ARRAY_LEN(cases); i++)
        if (run_records(cases[i].b, cases[i].n, 1, 0, &n) != SHOAL_ECORRUPT)
            fail_msg("case %zu not reported corrupt", i);
}

static void test_record_count_disagreeing_with_bytes_is_corrupt(void **state)
{
    const uint8_t one[] = {GOOD_RECORD};
    const uint8_t two[] = {GOOD_RECORD, 0x10, 0x00, 0x00, 0x02, 0x02, 'k', 0x02, 'w', 0x00};
    int n;
    (void)state;

    /* More records announced than present. */
    assert_int_equal(run_records(one, sizeof(one), 2, 1, &n), SHOAL_ECORRUPT);
    assert_int_equal(n, 1);
    /* Fewer announced: the bytes left over are caught. */
    assert_int_equal(run_records(two, sizeof(two), 1, 1, &n), SHOAL_ECORRUPT);
    assert_int_equal(n, 1);
    /* None announced but bytes present. */
    assert_int_equal(run_records(one, sizeof(one), 0, 0, &n), SHOAL_ECORRUPT);
    assert_int_equal(n, 0);
}

/* record_iter_done() says a batch is finished only when the next read would return 0: all
 * records read and no bytes left over (a consumer then skips that read). */
static void test_record_iter_done_only_at_a_clean_end(void **state)
{
    const uint8_t one[] = {GOOD_RECORD};
    const uint8_t two[] = {GOOD_RECORD, 0x10, 0x00, 0x00, 0x02, 0x02, 'k', 0x02, 'w', 0x00};
    uint8_t tmp[128];
    record_batch_header_t h;
    record_iter_t it;
    shoal_record_t rec[4];
    (void)state;

    iter_over(tmp, one, sizeof(one), 1, 0, &h, &it);
    assert_false(record_iter_done(&it));
    assert_int_equal(record_iter_read(&it, rec, 4), 1);
    assert_true(record_iter_done(&it));
    assert_int_equal(record_iter_read(&it, rec, 4), 0);
    /* One record announced, two present: not done, and the next read reports it. */
    iter_over(tmp, two, sizeof(two), 1, 0, &h, &it);
    assert_int_equal(record_iter_read(&it, rec, 4), 1);
    assert_false(record_iter_done(&it));
    assert_int_equal(record_iter_read(&it, rec, 4), SHOAL_ECORRUPT);
}

static void test_record_overlong_varints_are_corrupt(void **state)
{
    /* Record length 8 spelt in 6 bytes: too long for a 32-bit varint. */
    const uint8_t len6[] = {0x90, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00,
                            0x00, 0x00, 0x02, 'k',  0x02, 'v',  0x00};
    /* Record length spelt in 5 bytes but above INT32_MAX. */
    const uint8_t len_big[] = {0xfe, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x00,
                               0x00, 0x02, 'k',  0x02, 'v',  0x00};
    /* Timestamp delta in 11 bytes. */
    const uint8_t ts11[] = {0x24, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                            0x80, 0x80, 0x00, 0x00, 0x02, 'k',  0x02, 'v',  0x00};
    /* Record length 8 spelt in 5 bytes is legal (Kafka accepts non-minimal varints). */
    const uint8_t len5[] = {0x90, 0x80, 0x80, 0x80, 0x00, 0x00, 0x00,
                            0x00, 0x02, 'k',  0x02, 'v',  0x00};
    int n;
    (void)state;

    assert_int_equal(run_records(len6, sizeof(len6), 1, 0, &n), SHOAL_ECORRUPT);
    assert_int_equal(run_records(len_big, sizeof(len_big), 1, 0, &n), SHOAL_ECORRUPT);
    assert_int_equal(run_records(ts11, sizeof(ts11), 1, 0, &n), SHOAL_ECORRUPT);
    assert_int_equal(run_records(len5, sizeof(len5), 1, 0, &n), 0);
    assert_int_equal(n, 1);
}

/* ---------------------------------------------------------------------------------------
 * Varints
 * ------------------------------------------------------------------------------------- */

static void test_record_varints_round_trip(void **state)
{
    const int64_t values[] = {0,         -1,        1,         63,        -64,         64,
                              -65,       127,       128,       300,       -300,        INT32_MAX,
                              INT32_MIN, INT64_MAX, INT64_MIN, 1LL << 40, -(1LL << 40)};
    uint8_t buf[16];
    int64_t v;
    (void)state;

    for (size_t i = 0; i < SHOAL_ARRAY_LEN(values); i++) {
        size_t n = record_varint_put(buf, values[i]);
        assert_int_equal(n, record_varint_size(values[i]));
        assert_true(n >= 1 && n <= 10);
        assert_int_equal(record_varint_get(buf, buf + n, &v), n);
        assert_true(v == values[i]);
        /* One byte short is not a varint. */
        assert_int_equal(record_varint_get(buf, buf + n - 1, &v), 0);
    }
    assert_int_equal(record_varint_size(0), 1);
    assert_int_equal(record_varint_size(-64), 1);
    assert_int_equal(record_varint_size(64), 2);
    assert_int_equal(record_varint_size(INT64_MIN), 10);
    /* zigzag: 1 -> 2, -1 -> 1, -2 -> 3 */
    record_varint_put(buf, -2);
    assert_int_equal(buf[0], 3);
}

static void test_record_varint_rejects_more_than_64_bits(void **state)
{
    uint8_t buf[12];
    int64_t v;
    (void)state;

    memset(buf, 0x80, sizeof(buf));
    buf[10] = 0x00; /* eleven bytes */
    assert_int_equal(record_varint_get(buf, buf + sizeof(buf), &v), 0);
    memset(buf, 0xff, 9);
    buf[9] = 0x02; /* ten bytes, but bit 64 set */
    assert_int_equal(record_varint_get(buf, buf + 10, &v), 0);
    buf[9] = 0x01; /* ten bytes, the largest: zigzag of INT64_MIN */
    assert_int_equal(record_varint_get(buf, buf + 10, &v), 10);
    assert_true(v == INT64_MIN);
    assert_int_equal(record_varint_get(buf, buf, &v), 0);
    assert_int_equal(record_varint_get(NULL, NULL, &v), 0);
}

/* ---------------------------------------------------------------------------------------
 * Encoder
 * ------------------------------------------------------------------------------------- */

/* n headers "k%04d" = "v%04d", encoded as a record holds them, into buf. */
static shoal_record_t record_with_headers(uint8_t *buf, size_t n)
{
    uint8_t *p = buf;

    for (size_t i = 0; i < n; i++) {
        *p++ = 10; /* zigzag 5 */
        p += sprintf((char *)p, "k%04zu", i);
        *p++ = 10;
        p += sprintf((char *)p, "v%04zu", i);
    }
    return (shoal_record_t){
        .header_count = (uint32_t)n, .headers_raw = buf, .headers_len = (size_t)(p - buf)};
}

static void expect_header(const shoal_record_t *rec, size_t at, size_t want)
{
    char key[8], value[8];
    shoal_header_t hd;
    size_t it = at;

    assert_int_equal(shoal_record_header(rec, &it, &hd), 1);
    assert_int_equal(it, at + 1);
    snprintf(key, sizeof(key), "k%04zu", want);
    snprintf(value, sizeof(value), "v%04zu", want);
    assert_int_equal(hd.key_len, 5);
    assert_memory_equal(hd.key, key, 5);
    assert_int_equal(hd.value_len, 5);
    assert_memory_equal(hd.value, value, 5);
}

/* Reading headers in order goes on from where the last call left (it walked from the first
 * each time: 20,000 headers took over a second); any other order, or another record between,
 * reads the header asked for all the same. */
static void test_record_header_reads_on_and_by_number(void **state)
{
    static uint8_t a_buf[3000 * 12 + 1], b_buf[16 * 12 + 1]; /* + sprintf's last NUL */
    shoal_record_t a = record_with_headers(a_buf, 3000), b = record_with_headers(b_buf, 16);
    shoal_header_t hd;
    size_t it = 0;
    (void)state;

    for (size_t i = 0; i < 3000; i++)
        expect_header(&a, i, i);
    it = 3000;
    assert_int_equal(shoal_record_header(&a, &it, &hd), 0);
    expect_header(&a, 7, 7); /* backwards */
    expect_header(&a, 2, 2);
    expect_header(&a, 2999, 2999); /* forwards, past the next */
    expect_header(&b, 3, 3);       /* another record between */
    expect_header(&a, 3000 - 1, 2999);
    b = a; /* a's first headers as another record: the same pointer, another length */
    b.header_count = 16;
    b.headers_len = 16 * 12;
    expect_header(&a, 20, 20);
    expect_header(&b, 15, 15);
    it = 16;
    assert_int_equal(shoal_record_header(&b, &it, &hd), 0);
}

static void test_record_encode_round_trips_null_empty_and_headers(void **state)
{
    const shoal_header_t hdrs[] = {
        {"a", 1, "xyz", 3},
        {"nul", 3, NULL, -1},
        {"", 0, "", 0},
    };
    shoal_message_t msgs[4];
    record_batch_fields_t f;
    uint8_t buf[512];
    size_t len;
    (void)state;

    memset(msgs, 0, sizeof(msgs));
    msgs[0] = (shoal_message_t){
        .key = "k0", .key_len = 2, .value = "v0", .value_len = 2, .timestamp_ms = 5000};
    msgs[1] = (shoal_message_t){.key = NULL, .value = NULL, .timestamp_ms = 4000};
    msgs[2] = (shoal_message_t){.key = "",
                                .key_len = 0,
                                .value = "",
                                .value_len = 0,
                                .headers = hdrs,
                                .header_count = 3,
                                .timestamp_ms = 0};
    msgs[3] = (shoal_message_t){
        .key = "k3", .key_len = 2, .value = "v3", .value_len = 2, .timestamp_ms = 7000};
    record_batch_fields_init(&f);
    f.base_offset = 42;
    f.producer_id = 9;
    assert_int_equal(record_batch_encode(buf, sizeof(buf), &f, msgs, 4, 6000, &len), 0);
    assert_int_equal(len, record_batch_encoded_size(msgs, 4, 6000));

    record_batch_header_t h;
    record_iter_t it;
    shoal_record_t rec;
    shoal_header_t hd;
    size_t hi = 0;
    assert_int_equal(record_batch_parse(buf, len, &h), 0);
    assert_int_equal(record_batch_check_crc(buf, &h), 0);
    assert_int_equal(h.first_timestamp, 4000); /* the smallest, as kafkajs */
    assert_int_equal(h.max_timestamp, 7000);
    assert_int_equal(h.last_offset_delta, 3);
    assert_int_equal(h.producer_id, 9);
    assert_int_equal(record_iter_init(&it, buf, &h), 0);
    assert_int_equal(record_iter_next(&it, &rec), 1);
    assert_int_equal(rec.offset, 42);
    assert_int_equal(rec.timestamp_ms, 5000);
    assert_int_equal(record_iter_next(&it, &rec), 1);
    assert_null(rec.key);
    assert_int_equal(rec.key_len, -1);
    assert_null(rec.value);
    assert_int_equal(rec.value_len, -1);
    assert_int_equal(record_iter_next(&it, &rec), 1);
    assert_int_equal(rec.timestamp_ms, 6000); /* 0 meant now */
    assert_non_null(rec.key);
    assert_int_equal(rec.key_len, 0);
    assert_non_null(rec.value);
    assert_int_equal(rec.value_len, 0);
    assert_int_equal(rec.header_count, 3);
    assert_int_equal(shoal_record_header(&rec, &hi, &hd), 1);
    assert_int_equal(hd.key_len, 1);
    assert_memory_equal(hd.value, "xyz", 3);
    assert_int_equal(shoal_record_header(&rec, &hi, &hd), 1);
    assert_memory_equal(hd.key, "nul", 3);
    assert_null(hd.value);
    assert_int_equal(hd.value_len, -1);
    assert_int_equal(shoal_record_header(&rec, &hi, &hd), 1);
    assert_int_equal(hd.key_len, 0);
    assert_non_null(hd.value);
    assert_int_equal(hd.value_len, 0);
    assert_int_equal(shoal_record_header(&rec, &hi, &hd), 0);
    assert_int_equal(record_iter_next(&it, &rec), 1);
    assert_int_equal(rec.offset, 45);
    assert_int_equal(record_iter_next(&it, &rec), 0);
}

/* Encode msgs and check the batch's CRC against the table implementation over its bytes,
 * and that every value came through. */
static void check_encoded_crc(const shoal_message_t *msgs, size_t n)
{
    size_t cap = record_batch_encoded_size(msgs, n, 1000), len, streamed_len;
    uint8_t *buf = malloc(cap), *streamed = malloc(cap);
    record_batch_fields_t f;
    record_batch_header_t h;
    record_batch_plan_t plan;
    record_iter_t it;
    shoal_record_t rec;

    assert_non_null(buf);
    assert_non_null(streamed);
    record_batch_fields_init(&f);
    assert_int_equal(record_batch_encode(buf, cap, &f, msgs, n, 1000, &len), 0);
    /* Writing large values with non-temporal stores changes no byte. */
    assert_int_equal(record_batch_plan(msgs, n, 1000, &plan), 0);
    assert_false(plan.stream);
    plan.stream = true;
    assert_int_equal(
        record_batch_encode_planned(streamed, cap, &f, msgs, n, 1000, &plan, &streamed_len), 0);
    assert_int_equal(streamed_len, len);
    assert_memory_equal(streamed, buf, len);
    free(streamed);
    assert_int_equal(record_batch_parse(buf, len, &h), 0);
    assert_int_equal(
        h.crc, shoal__crc32c_sw(0, buf + RECORD_BATCH_CRC_START, len - RECORD_BATCH_CRC_START));
    assert_int_equal(record_iter_init(&it, buf, &h), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(record_iter_next(&it, &rec), 1);
        assert_int_equal(rec.value_len, (int32_t)msgs[i].value_len);
        assert_memory_equal(rec.value, msgs[i].value, msgs[i].value_len);
    }
    free(buf);
}

/* Values large enough to be checksummed while they are copied (and, from
 * RECORD_STREAM_MIN, streamed), with the framing before them checksummed byte by byte or
 * in bulk (keys of several sizes put it either side of that threshold), in the short form
 * and the general one (headers, more than 64). */
static void test_record_encoder_crc_is_right_around_large_values(void **state)
{
    enum { VALUE_MAX = 70000, MSGS = 70 };
    static const size_t value_lens[] = {0,    1,    300,  511,  512,      513,
                                        1023, 1024, 1025, 4096, VALUE_MAX};
    static const size_t key_lens[] = {0, 1, 20, 60, 100, 700};
    const shoal_header_t hdr = {"h", 1, "v", 1};
    uint8_t *bytes = malloc(VALUE_MAX + MSGS); /* message i's value starts at bytes + i */
    shoal_message_t msgs[MSGS];
    (void)state;

    assert_non_null(bytes);
    for (size_t i = 0; i < VALUE_MAX + MSGS; i++)
        bytes[i] = (uint8_t)(i * 7 + 3);
    for (size_t v = 0; v < SHOAL_ARRAY_LEN(value_lens); v++) {
        for (size_t k = 0; k < SHOAL_ARRAY_LEN(key_lens); k++) {
            for (size_t i = 0; i < MSGS; i++) {
                /* mixed sizes in one batch */
                size_t vl = value_lens[(v + i) % SHOAL_ARRAY_LEN(value_lens)];
                msgs[i] = (shoal_message_t){.key = k == 0 ? NULL : bytes + 5,
                                            .key_len = key_lens[k],
                                            .value = bytes + i,
                                            .value_len = vl,
                                            .timestamp_ms = 1000 + (int64_t)i};
            }
            check_encoded_crc(msgs, 1);
            check_encoded_crc(msgs, 3);
            check_encoded_crc(msgs, MSGS); /* the general writer: more than 64 */
            msgs[1].headers = &hdr;
            msgs[1].header_count = 1;
            check_encoded_crc(msgs, 3); /* the general writer */
        }
    }
    free(bytes);
}

/* The encoder's short form (one-byte deltas, no headers) is planned only when every
 * message fits it; one that does not, anywhere in the batch, sends the whole batch to the
 * general writer, with the same size. */
static void test_record_plan_takes_the_short_form_only_when_every_message_fits(void **state)
{
    const shoal_header_t hdr = {"h", 1, "v", 1};
    shoal_message_t msgs[3];
    record_batch_plan_t plan;
    size_t short_size;
    (void)state;

    for (size_t i = 0; i < 3; i++)
        msgs[i] = (shoal_message_t){.value = "value", .value_len = 5};
    assert_int_equal(record_batch_plan(msgs, 3, 5000, &plan), 0);
    assert_true(plan.short_form && plan.short_now);
    short_size = plan.size;

    msgs[2].timestamp_ms = 5063; /* 63 ms after now: still one-byte deltas */
    assert_int_equal(record_batch_plan(msgs, 3, 5000, &plan), 0);
    assert_true(plan.short_form && !plan.short_now);
    assert_int_equal(plan.max_ts, 5063);
    msgs[2].timestamp_ms = 5064;
    assert_int_equal(record_batch_plan(msgs, 3, 5000, &plan), 0);
    assert_false(plan.short_form);
    assert_int_equal(plan.base_ts, 5000);
    assert_int_equal(plan.max_ts, 5064);
    assert_int_equal(plan.size, short_size + 1); /* the last timestamp delta takes 2 bytes */
    msgs[2].timestamp_ms = 0;

    msgs[1].headers = &hdr;
    msgs[1].header_count = 1;
    assert_int_equal(record_batch_plan(msgs, 3, 5000, &plan), 0);
    assert_false(plan.short_form);
    msgs[1].header_count = 0;

    msgs[2].value_len = (size_t)1 << 30; /* planned only: nothing reads the value */
    assert_int_equal(record_batch_plan(msgs, 3, 5000, &plan), 0);
    assert_false(plan.short_form);
    assert_int_equal(plan.size, short_size + ((size_t)1 << 30) - 5 + 4 + 4);
}

/* The producer's one-record encoder writes, byte for byte, what the general one does, and
 * steps aside (0) for what it does not handle. */
static void test_record_encode_one_writes_what_the_general_encoder_does(void **state)
{
    static uint8_t v[70000 + 16], a[150000], b[150000]; /* values start at v + j, j < 16 */
    static const size_t lens[] = {0,  1,  7,  8,  15,  16,   17,   31,
                                  32, 33, 63, 64, 400, 8191, 8192, 70000};
    static const int64_t stamps[] = {0, 5000 + 7, -3, INT64_MAX};
    const shoal_header_t hdr = {"h", 1, "v", 1};
    record_batch_fields_t f;
    size_t la, lb, checked = 0;
    (void)state;

    for (size_t i = 0; i < sizeof(v); i++)
        v[i] = (uint8_t)(i * 29 + 3);
    record_batch_fields_init(&f);
    for (size_t k = 0; k < 6; k++)
        for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++)
            for (size_t t = 0; t < sizeof(stamps) / sizeof(stamps[0]); t++) {
                /* keys absent, empty or of 1..8192 bytes; values absent too */
                shoal_message_t m = {.key = k == 0 ? NULL : v + 5,
                                     .key_len = k < 2 ? 0 : lens[k * 3],
                                     .value = j == 0 && t == 1 ? NULL : v + j,
                                     .value_len = lens[j],
                                     .timestamp_ms = stamps[t]};
                record_batch_header_t h;
                memset(b, 0xa5, sizeof(b));
                assert_int_equal(record_batch_encode(a, sizeof(a), &f, &m, 1, 5000, &la), 0);
                lb = record_batch_encode_one(b, sizeof(b), &m, 5000);
                assert_int_equal(lb, la);
                assert_memory_equal(a, b, la);
                assert_int_equal(record_batch_parse(b, lb, &h), 0);
                assert_int_equal(record_batch_check_crc(b, &h), 0);
                assert_int_equal(record_batch_encode_one(b, la - 1, &m, 5000), 0); /* no room */
                checked++;
            }
    assert_int_equal(checked, 6 * 16 * 4);

    shoal_message_t m = {.key = "k", .key_len = 1, .value = v, .value_len = 32};
    m.headers = &hdr;
    m.header_count = 1;
    assert_int_equal(record_batch_encode_one(b, sizeof(b), &m, 5000), 0);
    m.header_count = 0;
    m.value_len = (size_t)1 << 30; /* refused before anything reads the value */
    assert_int_equal(record_batch_encode_one(b, sizeof(b), &m, 5000), 0);
    m.value_len = 32;
    m.key_len = (size_t)1 << 30;
    assert_int_equal(record_batch_encode_one(b, sizeof(b), &m, 5000), 0);
}

static void test_record_encode_refuses_bad_arguments(void **state)
{
    shoal_message_t m = {.key = "k", .key_len = 1, .value = "v", .value_len = 1};
    shoal_header_t bad_hdr = {"h", 1, "v", -2};
    record_batch_fields_t f;
    uint8_t buf[256];
    size_t len;
    (void)state;

    record_batch_fields_init(&f);
    size_t need = record_batch_encoded_size(&m, 1, 1);
    assert_true(need > RECORD_BATCH_HEADER_BYTES);
    assert_int_equal(record_batch_encode(buf, need - 1, &f, &m, 1, 1, &len), -ENOSPC);
    assert_int_equal(record_batch_encode(buf, need, &f, &m, 1, 1, &len), 0);
    assert_int_equal(len, need);
    assert_int_equal(record_batch_encode(buf, sizeof(buf), &f, &m, 0, 1, &len), SHOAL_EINVAL);
    assert_int_equal(record_batch_encoded_size(&m, 0, 1), 0);
    f.attributes = 2; /* snappy */
    assert_int_equal(record_batch_encode(buf, sizeof(buf), &f, &m, 1, 1, &len), SHOAL_EINVAL);
    record_batch_fields_init(&f);
    m.value_len = (size_t)INT32_MAX + 1;
    assert_int_equal(record_batch_encode(buf, sizeof(buf), &f, &m, 1, 1, &len), SHOAL_ETOOLARGE);
    assert_int_equal(record_batch_encoded_size(&m, 1, 1), 0);
    m.value_len = 1;
    m.headers = &bad_hdr;
    m.header_count = 1;
    assert_int_equal(record_batch_encode(buf, sizeof(buf), &f, &m, 1, 1, &len), SHOAL_EINVAL);
}

/* A malformed message is refused with a detail that says what is wrong with it (it used to
 * read "message 0 does not fit" whatever the cause). */
static void test_record_plan_names_what_is_wrong_with_a_message(void **state)
{
    shoal_header_t hd = {"h", 1, "v", 1};
    shoal_message_t msgs[2] = {{.value = "a", .value_len = 1}, {.value = "b", .value_len = 1}};
    record_batch_plan_t plan;
    (void)state;

    msgs[1].headers = &hd;
    msgs[1].header_count = 1;
    assert_int_equal(record_batch_plan(msgs, 2, 1000, &plan), 0);
    hd.value_len = -2;
    assert_int_equal(record_batch_plan(msgs, 2, 1000, &plan), SHOAL_EINVAL);
    assert_string_equal(shoal_errmsg(), "record batch: message 1, header 0: value_len -2 (-1 is "
                                        "a null value; below it is invalid)");
    hd = (shoal_header_t){NULL, 3, "v", 1};
    assert_int_equal(record_batch_plan(msgs, 2, 1000, &plan), SHOAL_EINVAL);
    assert_string_equal(shoal_errmsg(),
                        "record batch: message 1, header 0: key NULL with key_len 3");
    /* as a key: NULL with a length is a mistake (it was taken for a null value) */
    hd = (shoal_header_t){"h", 1, NULL, 5};
    assert_int_equal(record_batch_plan(msgs, 2, 1000, &plan), SHOAL_EINVAL);
    assert_string_equal(shoal_errmsg(), "record batch: message 1, header 0: value NULL with "
                                        "value_len 5 (a null value has value_len -1)");
    hd = (shoal_header_t){"h", 1, NULL, -1};
    assert_int_equal(record_batch_plan(msgs, 2, 1000, &plan), 0);
    msgs[1].headers = NULL;
    assert_int_equal(record_batch_plan(msgs, 2, 1000, &plan), SHOAL_EINVAL);
    assert_string_equal(shoal_errmsg(),
                        "record batch: message 1 has header_count 1 and headers NULL");
}

static void test_record_base_offset_is_outside_the_crc(void **state)
{
    size_t len;
    record_batch_header_t h;
    (void)state;

    uint8_t *buf = load_testdata("multi-10.bin", &len);
    record_batch_set_base_offset(buf, 987654321);
    assert_int_equal(record_batch_parse(buf, len, &h), 0);
    assert_int_equal(h.base_offset, 987654321);
    assert_int_equal(record_batch_check_crc(buf, &h), 0);
    free(buf);
}

/* ---------------------------------------------------------------------------------------
 * The short-record fast path (record_iter_read, record_iter_next) must decide exactly what
 * the checked decoder decides: same records, same views, same final code.
 * ------------------------------------------------------------------------------------- */

static void assert_record_equal(const shoal_record_t *a, const shoal_record_t *b)
{
    assert_int_equal(a->offset, b->offset);
    assert_int_equal(a->timestamp_ms, b->timestamp_ms);
    assert_ptr_equal(a->key, b->key);
    assert_int_equal(a->key_len, b->key_len);
    assert_ptr_equal(a->value, b->value);
    assert_int_equal(a->value_len, b->value_len);
    assert_int_equal(a->header_count, b->header_count);
    assert_ptr_equal(a->headers_raw, b->headers_raw);
    assert_int_equal(a->headers_len, b->headers_len);
}

/* Decode the batch in buf both ways, the fast one in reads of up to chunk (<= 8) records
 * starting at next_offset. The fast one must hand out exactly the checked one's records
 * that are at or past next_offset and above the one before, named topic "t" partition 3.
 * Returns how many records it handed out. */
static int compare_paths_from(const uint8_t *buf, size_t len, size_t chunk, int64_t next_offset)
{
    record_batch_header_t h;
    record_iter_t fast, slow;
    shoal_record_t a[8], b;
    int rc, n = 0;

    if (record_batch_parse(buf, len, &h) != 0 || record_iter_init(&fast, buf, &h) != 0)
        return 0;
    slow = fast;
    fast.topic = "t";
    fast.partition = 3;
    fast.next_offset = next_offset;
    while ((rc = record_iter_read(&fast, a, chunk)) > 0) {
        assert_true(rc <= (int)chunk);
        for (int i = 0; i < rc; i++, n++) {
            do
                assert_int_equal(record_iter_next_checked(&slow, &b), 1);
            while (b.offset < next_offset);
            next_offset = b.offset + 1;
            assert_record_equal(&a[i], &b);
            assert_string_equal(a[i].topic, "t");
            assert_int_equal(a[i].partition, 3);
            assert_view_inside(a[i].key, a[i].key_len, buf, buf + len);
            assert_view_inside(a[i].value, a[i].value_len, buf, buf + len);
        }
    }
    assert_int_equal(fast.next_offset, next_offset);
    int slow_rc;
    while ((slow_rc = record_iter_next_checked(&slow, &b)) == 1)
        assert_true(b.offset < next_offset); /* skipped by the fast one after its last */
    assert_int_equal(rc, slow_rc);
    return n;
}

static int compare_paths(const uint8_t *buf, size_t len, size_t chunk)
{
    return compare_paths_from(buf, len, chunk, INT64_MIN);
}

/* A shoal-encoded batch whose lengths take one, two and three varint bytes, null and empty
 * keys and values, one record with headers, and timestamp deltas of one and two bytes. */
static uint8_t *encode_mixed_batch(size_t *len)
{
    static const size_t sizes[] = {0, 1, 63, 64, 200, 8191, 8192, 300};
    static uint8_t big[8192];
    const shoal_header_t hdr = {"h", 1, "x", 1};
    shoal_message_t msgs[12];
    record_batch_fields_t f;
    size_t n = 0;

    memset(big, 'b', sizeof(big));
    memset(msgs, 0, sizeof(msgs));
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(sizes); i++, n++) {
        msgs[n].key = i % 3 == 0 ? NULL : big;
        msgs[n].key_len = i % 3 == 0 ? 0 : i % 3 == 1 ? 1 : 70;
        msgs[n].value = big;
        msgs[n].value_len = sizes[i];
        msgs[n].timestamp_ms = 100000 + (int64_t)i * (i == 5 ? 90 : 1);
    }
    msgs[n++] = (shoal_message_t){.key = NULL, .value = NULL, .timestamp_ms = 100000};
    msgs[n++] = (shoal_message_t){
        .key = "k", .key_len = 1, .value = "v", .value_len = 1, .headers = &hdr, .header_count = 1};
    msgs[n++] = (shoal_message_t){.key = "", .key_len = 0, .value = "", .value_len = 0};
    record_batch_fields_init(&f);
    f.base_offset = 7;
    *len = record_batch_encoded_size(msgs, n, 100000);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(record_batch_encode(buf, *len, &f, msgs, n, 100000, len), 0);
    return buf;
}

static void test_record_fast_path_decodes_what_the_checked_path_does(void **state)
{
    size_t len;
    uint8_t *buf = encode_mixed_batch(&len);
    (void)state;

    for (size_t chunk = 1; chunk <= 8; chunk++)
        assert_int_equal(compare_paths(buf, len, chunk), 11);
    free(buf);
}

static void test_record_read_starts_at_next_offset_from_any_record(void **state)
{
    size_t len;
    uint8_t *buf = encode_mixed_batch(&len); /* offsets 7..17 */
    (void)state;

    for (int64_t from = 7; from <= 18; from++)
        for (size_t chunk = 1; chunk <= 8; chunk += 3)
            assert_int_equal(compare_paths_from(buf, len, chunk, from), 18 - from);
    free(buf);
}

static void test_record_read_skips_offsets_that_do_not_rise(void **state)
{
    /* Offset deltas 0, 2, 1, 2, 3 in records the one-byte path takes, then a record with a
     * two-byte value length (the other path) at delta 3 again, then 4. Seven records need a
     * last offset delta of at least 6 to parse. */
    uint8_t recs[512], tmp[600];
    const uint8_t deltas[] = {0, 2, 1, 2, 3};
    size_t n = 0;
    record_batch_header_t h;
    record_iter_t it;
    shoal_record_t out[8];
    (void)state;

    for (size_t i = 0; i < SHOAL_ARRAY_LEN(deltas); i++) {
        const uint8_t r[] = {0x0e, 0x00, 0x00, (uint8_t)(deltas[i] << 1), 0x01, 0x02, 'v', 0x00};
        memcpy(recs + n, r, sizeof(r));
        n += sizeof(r);
    }
    for (uint8_t d = 3; d <= 4; d++) { /* a 100-byte value: length 0xc8 0x01 */
        const uint8_t head[] = {0xd6, 0x01, 0x00, 0x00, (uint8_t)(d << 1), 0x01, 0xc8, 0x01};
        memcpy(recs + n, head, sizeof(head));
        memset(recs + n + sizeof(head), 'w', 100);
        recs[n + sizeof(head) + 100] = 0x00;
        n += sizeof(head) + 101;
    }
    iter_over(tmp, recs, n, 7, 6, &h, &it);
    it.next_offset = INT64_MIN;
    assert_int_equal(record_iter_read(&it, out, 8), 4);
    assert_int_equal(out[0].offset, 10);
    assert_int_equal(out[1].offset, 12);
    assert_int_equal(out[2].offset, 13);
    assert_int_equal(out[3].offset, 14);
    assert_int_equal(out[3].value_len, 100);
    assert_int_equal(it.next_offset, 15);
    assert_int_equal(record_iter_read(&it, out, 8), 0);
}

static void test_record_fast_path_refuses_what_the_checked_path_refuses(void **state)
{
    /* Record length 200 (two bytes) in a batch that ends after 9 bytes. */
    const uint8_t len_past_batch[] = {0x90, 0x03, 0x00, 0x00, 0x00, 0x01, 0x02, 'v', 0x00};
    /* The second record is cut inside its two-byte length: the batch ends on 0x80. */
    const uint8_t cut_in_length[] = {GOOD_RECORD, 0x80};
    /* Value length 200 (two bytes) in an 8-byte record. */
    const uint8_t value_past_record[] = {0x10, 0x00, 0x00, 0x00, 0x01, 0x90, 0x03, 'v', 0x00};
    /* Key length 100 (two bytes) in an 8-byte record. */
    const uint8_t key_past_record[] = {0x10, 0x00, 0x00, 0x00, 0xc8, 0x01, 'k', 0x02, 0x00};
    /* A two-byte value length (0) that leaves no byte for the header count. */
    const uint8_t no_header_count[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x80, 0x00};
    /* A value length whose varint runs on for six bytes. */
    const uint8_t value_varint_overflow[] = {0x18, 0x00, 0x00, 0x00, 0x01, 0x82, 0x80,
                                             0x80, 0x80, 0x80, 0x00, 'v',  0x00};
    /* A record length of 2^31 (five bytes): above INT32_MAX. */
    const uint8_t len_overflow[] = {0x80, 0x80, 0x80, 0x80, 0x10, 0x00, 0x00, 0x00, 0x00};
    /* A timestamp delta of 2^63 - 1 from a base of 1000: overflows. */
    const uint8_t ts_overflow[] = {0x1e, 0x00, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0x01, 0x00, 0x01, 0x01, 0x00};
    /* Value length -2 in two bytes (zigzag 3, non-minimal). */
    const uint8_t value_m2[] = {0x10, 0x00, 0x00, 0x00, 0x01, 0x83, 0x00, 'v', 0x00};
    /* Header count 1 with no header after it. */
    const uint8_t header_missing[] = {0x0e, 0x00, 0x00, 0x00, 0x01, 0x02, 'v', 0x02};
    const struct {
        const uint8_t *b;
        size_t n;
        int32_t count;
        int good; /* records before the damage */
    } cases[] = {
        {len_past_batch, sizeof(len_past_batch), 1, 0},
        {cut_in_length, sizeof(cut_in_length), 2, 1},
        {value_past_record, sizeof(value_past_record), 1, 0},
        {key_past_record, sizeof(key_past_record), 1, 0},
        {no_header_count, sizeof(no_header_count), 1, 0},
        {value_varint_overflow, sizeof(value_varint_overflow), 1, 0},
        {len_overflow, sizeof(len_overflow), 1, 0},
        {ts_overflow, sizeof(ts_overflow), 1, 0},
        {value_m2, sizeof(value_m2), 1, 0},
        {header_missing, sizeof(header_missing), 1, 0},
    };
    uint8_t tmp[128];
    (void)state;

    for (size_t i = 0; i < SHOAL_ARRAY_LEN(cases); i++) {
        int n;
        size_t len = build_batch(tmp, cases[i].b, cases[i].n, cases[i].count, cases[i].count - 1);
        uint8_t *buf = dup_exact(tmp, len); /* exact size: ASan sees any overread */
        if (run_records(cases[i].b, cases[i].n, cases[i].count, cases[i].count - 1, &n) !=
            SHOAL_ECORRUPT)
            fail_msg("case %zu not reported corrupt", i);
        assert_int_equal(n, cases[i].good);
        for (size_t chunk = 1; chunk <= 3; chunk++)
            assert_int_equal(compare_paths(buf, len, chunk), cases[i].good);
        free(buf);
    }
    /* A one-byte timestamp delta of 1 from a base of INT64_MAX overflows too. */
    const uint8_t ts_plus_one[] = {0x0e, 0x00, 0x02, 0x00, 0x01, 0x01, 0x00};
    size_t len = build_batch(tmp, ts_plus_one, sizeof(ts_plus_one), 1, 0);
    shoal__put_be64(tmp + 27, (uint64_t)INT64_MAX);
    assert_int_equal(compare_paths(tmp, len, 1), 0);
    int n;
    assert_int_equal(iterate_all(tmp, len, &n), SHOAL_ECORRUPT);
}

static void test_record_fast_path_hands_out_records_before_the_damage(void **state)
{
    /* Three records, the third with a value that runs past it. */
    const uint8_t recs[] = {GOOD_RECORD, 0x10, 0x00, 0x00, 0x02, 0x02, 'k',  0x02, 'w', 0x00,
                            0x10,        0x00, 0x00, 0x04, 0x02, 'k',  0x06, 'x',  0x00};
    uint8_t tmp[128];
    record_batch_header_t h;
    record_iter_t it;
    shoal_record_t out[4];
    (void)state;

    iter_over(tmp, recs, sizeof(recs), 3, 2, &h, &it);
    assert_int_equal(record_iter_read(&it, out, 4), 2);
    assert_int_equal(out[0].offset, 10);
    assert_int_equal(out[1].offset, 11);
    assert_memory_equal(out[1].value, "w", 1);
    assert_int_equal(record_iter_read(&it, out, 4), SHOAL_ECORRUPT);
    assert_int_equal(record_iter_read(&it, out, 4), SHOAL_ECORRUPT); /* and stays there */
    assert_int_equal(record_iter_read(&it, out, 0), 0);
}

static void test_record_fast_path_takes_long_varints_through_the_checked_path(void **state)
{
    /* Value length 1 spelt in three bytes, record length 9 spelt in two: valid Kafka. */
    const uint8_t long_value_len[] = {0x92, 0x00, 0x00, 0x00, 0x00, 0x01,
                                      0x82, 0x80, 0x00, 'v',  0x00};
    /* Timestamp delta 200 (two bytes), offset delta 0, null key and value. */
    const uint8_t ts_two_bytes[] = {0x0e, 0x00, 0x90, 0x03, 0x00, 0x01, 0x01, 0x00};
    uint8_t tmp[128];
    record_batch_header_t h;
    record_iter_t it;
    shoal_record_t out[2];
    (void)state;

    iter_over(tmp, long_value_len, sizeof(long_value_len), 1, 0, &h, &it);
    assert_int_equal(record_iter_read(&it, out, 2), 1);
    assert_int_equal(out[0].value_len, 1);
    assert_memory_equal(out[0].value, "v", 1);
    assert_null(out[0].key);
    assert_int_equal(record_iter_read(&it, out, 2), 0);

    iter_over(tmp, ts_two_bytes, sizeof(ts_two_bytes), 1, 0, &h, &it);
    assert_int_equal(record_iter_read(&it, out, 2), 1);
    assert_int_equal(out[0].timestamp_ms, 1200);
    assert_null(out[0].value);
    assert_int_equal(out[0].value_len, -1);
}

/* ---------------------------------------------------------------------------------------
 * Fuzz: mutate valid batches; the decoder must never crash nor hand out a view outside
 * ------------------------------------------------------------------------------------- */

static uint64_t fuzz_state = 0x5eed5eed12345678ull;

static uint32_t fuzz_rand(void)
{
    fuzz_state ^= fuzz_state << 13;
    fuzz_state ^= fuzz_state >> 7;
    fuzz_state ^= fuzz_state << 17;
    return (uint32_t)(fuzz_state >> 16);
}

static size_t fuzz_mutate(uint8_t *buf, size_t len)
{
    int rounds = 1 + (int)(fuzz_rand() % 4);
    const size_t fields[] = {8, 23, 57}; /* batchLength, lastOffsetDelta, recordsCount */

    for (int r = 0; r < rounds && len > 0; r++) {
        size_t at = fuzz_rand() % len;
        switch (fuzz_rand() % 6) {
        case 0:
            buf[at] ^= (uint8_t)(1u << (fuzz_rand() % 8));
            break;
        case 1:
            buf[at] = (uint8_t)fuzz_rand();
            break;
        case 2:
            buf[at] = (fuzz_rand() & 1) ? 0xff : 0x80; /* varint continuation bits */
            break;
        case 3:
            len = fuzz_rand() % (len + 1);
            break;
        case 4:
            shoal__put_be32(buf + fields[fuzz_rand() % 3], fuzz_rand() % 400);
            break;
        default:
            /* Only mutate the records area so more cases reach the iterator. */
            if (len > RECORD_BATCH_HEADER_BYTES)
                buf[RECORD_BATCH_HEADER_BYTES + fuzz_rand() % (len - RECORD_BATCH_HEADER_BYTES)] =
                    (uint8_t)fuzz_rand();
            break;
        }
    }
    /* Half the time make the batch length agree with what is left, to get past parse. */
    if (len >= RECORD_BATCH_HEADER_BYTES && (fuzz_rand() & 1))
        shoal__put_be32(buf + 8, (uint32_t)(len - RECORD_BATCH_LOG_OVERHEAD));
    return len;
}

/* Walk every record and header; all views must lie inside [buf, buf + len). */
static int fuzz_decode(const uint8_t *buf, size_t len)
{
    record_batch_header_t h;
    record_iter_t it;
    shoal_record_t rec;
    int rc, records = 0;

    if (record_batch_parse(buf, len, &h) != 0)
        return 0;
    assert_true(record_batch_size(&h) <= len);
    (void)record_batch_check_crc(buf, &h);
    if (record_iter_init(&it, buf, &h) != 0)
        return 0;
    const uint8_t *end = buf + record_batch_size(&h);
    int64_t next = INT64_MIN;
    int rising = 0; /* what record_iter_read() hands out: offsets that rise */
    while ((rc = record_iter_next(&it, &rec)) == 1) {
        if (rec.offset >= next) {
            next = rec.offset + 1;
            rising++;
        }
        assert_view_inside(rec.key, rec.key_len, buf, end);
        assert_view_inside(rec.value, rec.value_len, buf, end);
        assert_view_inside(rec.headers_raw, (int64_t)rec.headers_len, buf, end);
        assert_true(rec.offset >= h.base_offset &&
                    rec.offset <= h.base_offset + h.last_offset_delta);
        size_t hi = 0;
        shoal_header_t hd;
        while (shoal_record_header(&rec, &hi, &hd) == 1) {
            assert_view_inside(hd.key, (int64_t)hd.key_len, rec.headers_raw,
                               rec.headers_raw + rec.headers_len);
            assert_view_inside(hd.value, hd.value_len, rec.headers_raw,
                               rec.headers_raw + rec.headers_len);
        }
        records++;
        assert_true(records <= h.record_count);
    }
    assert_true(rc == 0 || rc == SHOAL_ECORRUPT);
    assert_int_equal(compare_paths(buf, len, 1 + fuzz_rand() % 8), rising);
    return records;
}

static void test_record_fuzzed_batches_never_escape_the_buffer(void **state)
{
    uint8_t *src[SHOAL_ARRAY_LEN(uncompressed_vectors)];
    size_t src_len[SHOAL_ARRAY_LEN(uncompressed_vectors)];
    long decoded_some = 0;
    (void)state;

    for (size_t f = 0; f < SHOAL_ARRAY_LEN(uncompressed_vectors); f++)
        src[f] = load_testdata(uncompressed_vectors[f], &src_len[f]);
    for (int iter = 0; iter < 20000; iter++) {
        size_t f = fuzz_rand() % SHOAL_ARRAY_LEN(uncompressed_vectors);
        uint8_t *work = dup_exact(src[f], src_len[f]);
        size_t len = fuzz_mutate(work, src_len[f]);
        uint8_t *buf = dup_exact(work, len); /* exact size: ASan sees any overread */
        decoded_some += fuzz_decode(buf, len) > 0;
        free(buf);
        free(work);
    }
    for (size_t f = 0; f < SHOAL_ARRAY_LEN(uncompressed_vectors); f++)
        free(src[f]);
    /* The mutations must leave enough batches readable to exercise the iterator. */
    assert_true(decoded_some > 2000);
}

/* The same mutations on a batch of shoal's own short records, where the fast path does
 * most of the decoding. */
static void test_record_fuzzed_short_records_decode_as_the_checked_path(void **state)
{
    size_t src_len;
    uint8_t *src = encode_mixed_batch(&src_len);
    long decoded_some = 0;
    (void)state;

    for (int iter = 0; iter < 20000; iter++) {
        uint8_t *work = dup_exact(src, src_len);
        size_t len = fuzz_mutate(work, src_len);
        uint8_t *buf = dup_exact(work, len);
        decoded_some += fuzz_decode(buf, len) > 0;
        free(buf);
        free(work);
    }
    free(src);
    assert_true(decoded_some > 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_decodes_every_vector_as_the_manifest_says),
        cmocka_unit_test(test_record_gzip_batch_header_parses_but_iteration_refuses),
        cmocka_unit_test(test_record_crc_fails_on_any_flipped_bit_after_byte_17),
        cmocka_unit_test(test_record_truncated_at_every_length_is_incomplete),
        cmocka_unit_test(test_record_records_cut_short_are_corrupt),
        cmocka_unit_test(test_record_batch_length_past_the_buffer_is_incomplete),
        cmocka_unit_test(test_record_parse_rejects_bad_header_fields),
        cmocka_unit_test(test_record_hand_built_batches_decode),
        cmocka_unit_test(test_record_negative_lengths_other_than_minus_one_are_corrupt),
        cmocka_unit_test(test_record_lengths_past_the_record_are_corrupt),
        cmocka_unit_test(test_record_count_disagreeing_with_bytes_is_corrupt),
        cmocka_unit_test(test_record_iter_done_only_at_a_clean_end),
        cmocka_unit_test(test_record_overlong_varints_are_corrupt),
        cmocka_unit_test(test_record_varints_round_trip),
        cmocka_unit_test(test_record_varint_rejects_more_than_64_bits),
        cmocka_unit_test(test_record_encode_round_trips_null_empty_and_headers),
        cmocka_unit_test(test_record_encoder_crc_is_right_around_large_values),
        cmocka_unit_test(test_record_plan_takes_the_short_form_only_when_every_message_fits),
        cmocka_unit_test(test_record_encode_one_writes_what_the_general_encoder_does),
        cmocka_unit_test(test_record_encode_refuses_bad_arguments),
        cmocka_unit_test(test_record_plan_names_what_is_wrong_with_a_message),
        cmocka_unit_test(test_record_base_offset_is_outside_the_crc),
        cmocka_unit_test(test_record_fast_path_decodes_what_the_checked_path_does),
        cmocka_unit_test(test_record_read_starts_at_next_offset_from_any_record),
        cmocka_unit_test(test_record_read_skips_offsets_that_do_not_rise),
        cmocka_unit_test(test_record_fast_path_refuses_what_the_checked_path_refuses),
        cmocka_unit_test(test_record_fast_path_hands_out_records_before_the_damage),
        cmocka_unit_test(test_record_fast_path_takes_long_varints_through_the_checked_path),
        cmocka_unit_test(test_record_fuzzed_batches_never_escape_the_buffer),
        cmocka_unit_test(test_record_fuzzed_short_records_decode_as_the_checked_path),
        cmocka_unit_test(test_record_header_reads_on_and_by_number),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
