/* topic_config.c - a topic's settings: defaults, Kafka-style names, parsing, ranges.
 *
 * DESIGN: one table holds every setting's name, type, place in shoal_topic_config_t, range,
 * unit and whether it may change on an existing topic. The library (shoal_topic_config_set),
 * the daemon (validation at create and alter) and the CLI (--set, describe) all go through
 * it, so a name or a range cannot mean different things in different places. Only sizes
 * (unit "bytes") take a K, M or G suffix (or KB, KiB...), in either case: on a time or a count such
 * a suffix is almost certainly a mistake (retention.ms=1K would be 1024 ms), so it is refused,
 * naming the unit. */
#include "topic_config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "shm_layout.h"
#include "util.h"

#define DAY_MS (24LL * 3600 * 1000)

enum setting_kind { KIND_U32, KIND_U64, KIND_I64, KIND_STORAGE, KIND_CLEANUP };

struct setting {
    const char *name;
    enum setting_kind kind;
    size_t field;
    int64_t min, max;
    bool alterable;
    const char *unit; /* of a number: "bytes" takes a K/M/G suffix; NULL for words */
    bool disk_only;   /* about disk segments: nothing to do on a memory topic */
};

#define F(m) offsetof(shoal_topic_config_t, m)
static const struct setting settings[] = {
    {"partitions", KIND_U32, F(partitions), 1, SHOAL_PARTITIONS_MAX, true, "partitions"},
    {"storage", KIND_STORAGE, F(storage), 0, 1, false, NULL},
    {"segment.bytes", KIND_U64, F(segment_bytes), 64 << 10, TOPIC_SEGMENT_BYTES_MAX, false,
     "bytes"},
    {"ring.slots", KIND_U32, F(ring_slots), 2, SHM_MAX_SLOTS, false, "slots"},
    {"max.message.bytes", KIND_U32, F(max_record_bytes), 64, TOPIC_MESSAGE_BYTES_MAX, true,
     "bytes"},
    {"retention.ms", KIND_I64, F(retention_ms), -1, INT64_MAX, true, "milliseconds", true},
    {"retention.bytes", KIND_I64, F(retention_bytes), -1, INT64_MAX, true, "bytes", true},
    {"segment.ms", KIND_I64, F(segment_ms), 1000, INT64_MAX, true, "milliseconds", true},
    {"cleanup.policy", KIND_CLEANUP, F(cleanup_policy), 1, 3, true, NULL},
    {"flush.messages", KIND_I64, F(flush_messages), -1, INT64_MAX, true, "messages", true},
    {"flush.ms", KIND_I64, F(flush_ms), -1, INT64_MAX, true, "milliseconds", true},
    {"delete.retention.ms", KIND_I64, F(delete_retention_ms), 0, INT64_MAX, true, "milliseconds",
     true},
};
#undef F

void shoal_topic_config_init(shoal_topic_config_t *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->partitions = 1;
    cfg->storage = SHOAL_STORAGE_DISK;
    cfg->segment_bytes = 64ull << 20;
    cfg->ring_slots = 4;
    cfg->max_record_bytes = TOPIC_MESSAGE_BYTES_DEFAULT;
    cfg->retention_ms = 7 * DAY_MS;
    cfg->retention_bytes = -1;
    cfg->segment_ms = 7 * DAY_MS;
    cfg->cleanup_policy = SHOAL_CLEANUP_DELETE;
    cfg->flush_messages = -1;
    cfg->flush_ms = -1;
    cfg->delete_retention_ms = DAY_MS;
}

static const struct setting *setting_find(const char *name)
{
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(settings); i++)
        if (name && !strcmp(settings[i].name, name))
            return &settings[i];
    return NULL;
}

const char *shoal_topic_setting_name(size_t i)
{
    return i < SHOAL_ARRAY_LEN(settings) ? settings[i].name : NULL;
}

bool topic_setting_is_alterable(const char *name)
{
    const struct setting *s = setting_find(name);
    return s && s->alterable;
}

bool topic_setting_is_disk_only(const char *name)
{
    const struct setting *s = setting_find(name);
    return s && s->disk_only;
}

/* ------------------------------------------------------------------ values */

/* A decimal integer with, when size is set, an optional K/M/G suffix (KB, KiB... too: powers
 * of 1024, either case). -1 when malformed, -2 for a suffix on a number that is not a size. */
static int parse_number(const char *text, bool size, int64_t *out)
{
    char *end;
    long long v;
    int shift;

    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno || end == text || (shift = shoal__size_suffix_shift(end)) < 0)
        return -1;
    if (shift && !size)
        return -2;
    if ((v > 0 && v > INT64_MAX >> shift) || (v < 0 && shift))
        return -1;
    *out = (int64_t)((uint64_t)v << shift);
    return 0;
}

static int parse_value(const struct setting *s, const char *text, int64_t *v)
{
    if (s->kind == KIND_STORAGE) {
        *v = !strcmp(text, "disk") ? SHOAL_STORAGE_DISK : !strcmp(text, "memory") ? 1 : -1;
        return *v < 0 ? -1 : 0;
    }
    if (s->kind == KIND_CLEANUP) {
        *v = !strcmp(text, "delete")                                              ? 1
             : !strcmp(text, "compact")                                           ? 2
             : !strcmp(text, "compact,delete") || !strcmp(text, "delete,compact") ? 3
                                                                                  : -1;
        return *v < 0 ? -1 : 0;
    }
    /* strtoll() would skip leading blanks while trailing ones are refused: take neither, as
     * the words above do. The value is the exact text; shoald's config file trims both
     * sides of its values alike before it uses them. */
    if (isspace((unsigned char)text[0]))
        return -1;
    return parse_number(text, !strcmp(s->unit, "bytes"), v);
}

static void store_value(shoal_topic_config_t *cfg, const struct setting *s, int64_t v)
{
    void *p = (char *)cfg + s->field;
    if (s->kind == KIND_U64)
        *(uint64_t *)p = (uint64_t)v;
    else if (s->kind == KIND_I64)
        *(int64_t *)p = v;
    else
        *(uint32_t *)p = (uint32_t)v;
}

static int64_t load_value(const shoal_topic_config_t *cfg, const struct setting *s)
{
    const void *p = (const char *)cfg + s->field;
    if (s->kind == KIND_U64)
        return (int64_t) * (const uint64_t *)p;
    if (s->kind == KIND_I64)
        return *(const int64_t *)p;
    return *(const uint32_t *)p;
}

int shoal_topic_config_set(shoal_topic_config_t *cfg, const char *name, const char *value)
{
    const struct setting *s;
    int64_t v;
    int rc;

    shoal__clear_err();
    SHOAL_NEED(cfg);
    SHOAL_NEED(name);
    SHOAL_NEED(value);
    s = setting_find(name);
    if (!s)
        return SHOAL_ERR(SHOAL_ESETTING, "unknown topic setting '%.100s'", name);
    rc = parse_value(s, value, &v);
    if (rc == -2)
        return SHOAL_ERR(SHOAL_ECONFIG,
                         "%s: cannot use '%.100s': K, M and G are for sizes in bytes; %s is a "
                         "number of %s",
                         s->name, value, s->name, s->unit);
    if (rc < 0)
        return SHOAL_ERR(SHOAL_ECONFIG, "%s: cannot use '%.100s'", s->name, value);
    if (v < s->min || v > s->max)
        return SHOAL_ERR(SHOAL_ECONFIG, "%s: %" PRId64 " is outside %" PRId64 "..%" PRId64, s->name,
                         v, s->min, s->max);
    store_value(cfg, s, v);
    return 0;
}

int shoal_topic_config_get(const shoal_topic_config_t *cfg, const char *name, char *buf, size_t cap)
{
    static const char *const cleanup[] = {"", "delete", "compact", "compact,delete"};
    const struct setting *s;
    int64_t v;
    int n;

    shoal__clear_err();
    SHOAL_NEED(cfg);
    SHOAL_NEED(name);
    if (!buf && cap > 0)
        return SHOAL_ERR(SHOAL_EINVAL, "buf is NULL with cap %zu", cap);
    s = setting_find(name);
    if (!s)
        return SHOAL_ERR(SHOAL_ESETTING, "unknown topic setting '%.100s'", name);
    v = load_value(cfg, s);
    if (s->kind == KIND_STORAGE)
        n = snprintf(buf, cap, "%s", v == SHOAL_STORAGE_MEMORY ? "memory" : "disk");
    else if (s->kind == KIND_CLEANUP)
        n = snprintf(buf, cap, "%s", v >= 1 && v <= 3 ? cleanup[v] : "?");
    else
        n = snprintf(buf, cap, "%" PRId64, v);
    if (n < 0 || (size_t)n >= cap)
        return SHOAL_ERR(-ENOSPC, "%s: its value does not fit in %zu bytes with its NUL", name,
                         cap);
    return 0;
}

void topic_config_fit_default(shoal_topic_config_t *cfg)
{
    if (cfg->max_record_bytes == TOPIC_MESSAGE_BYTES_DEFAULT &&
        cfg->max_record_bytes > cfg->segment_bytes / 2 && cfg->segment_bytes / 2 >= 64)
        cfg->max_record_bytes = (uint32_t)(cfg->segment_bytes / 2);
}

int shoal_topic_config_check(const shoal_topic_config_t *cfg)
{
    shoal_topic_config_t fit;

    shoal__clear_err();
    SHOAL_NEED(cfg);
    fit = *cfg;
    topic_config_fit_default(&fit);
    return topic_config_check(&fit);
}

int topic_config_check(const shoal_topic_config_t *cfg)
{
    for (size_t i = 0; i < SHOAL_ARRAY_LEN(settings); i++) {
        const struct setting *s = &settings[i];
        int64_t v = load_value(cfg, s);
        if (v >= s->min && v <= s->max)
            continue;
        if (s->field == offsetof(shoal_topic_config_t, partitions))
            return SHOAL_ERR(SHOAL_EPARTITIONS, "partitions must be 1..%d, not %" PRId64,
                             SHOAL_PARTITIONS_MAX, v);
        if (s->kind == KIND_U64) /* a value over INT64_MAX reads as negative */
            return SHOAL_ERR(SHOAL_ECONFIG, "%s must be %" PRId64 "..%" PRId64 ", not %" PRIu64,
                             s->name, s->min, s->max, (uint64_t)v);
        return SHOAL_ERR(SHOAL_ECONFIG, "%s must be %" PRId64 "..%" PRId64 ", not %" PRId64,
                         s->name, s->min, s->max, v);
    }
    if (cfg->max_record_bytes > cfg->segment_bytes / 2)
        return SHOAL_ERR(SHOAL_ECONFIG,
                         "max.message.bytes %u exceeds half of segment.bytes (%" PRIu64 ")",
                         cfg->max_record_bytes, cfg->segment_bytes / 2);
    return topic_config_check_reserved(cfg);
}

int topic_config_check_reserved(const shoal_topic_config_t *cfg)
{
    int rc = shoal__check_reserved(&cfg->pad_, sizeof(cfg->pad_), SHOAL_ECONFIG,
                                   "shoal_topic_config_init");
    if (rc == 0)
        rc = shoal__check_reserved(cfg->reserved_, sizeof(cfg->reserved_), SHOAL_ECONFIG,
                                   "shoal_topic_config_init");
    return rc;
}
