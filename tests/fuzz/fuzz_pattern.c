/* fuzz_pattern.c - a topic pattern as shoald receives it in a join, and names to match.
 *
 * The input is the pattern up to its first NUL byte, then names separated by NUL bytes
 * (none: a few fixed ones). For any bytes: compiling returns 0, SHOAL_EINVAL with a
 * reason, or -ENOMEM, and never reads past the pattern; matching a name of up to 249 bytes
 * ends. And three rewrites that must not change a pattern's meaning give the same answer
 * on every name when they compile too (they may not: each has more bytes or positions):
 * (?:P), P|P and (?:P){1}. A slip in the groups, the alternation or the repetition breaks
 * one of them. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "pattern.h"
#include "shoal.h"

#define NAMES_MAX 16

static shoal_pattern_t *compile(const char *src)
{
    shoal_pattern_t *p = NULL;
    int rc = shoal__pattern_compile(src, &p);

    FUZZ_CHECK(rc == 0 || rc == SHOAL_EINVAL || rc == -ENOMEM);
    FUZZ_CHECK((rc == 0) == (p != NULL));
    FUZZ_CHECK(rc != SHOAL_EINVAL || shoal_errmsg()[0] != '\0');
    return p;
}

/* Each name must get the same answer from p (compiled from src) and from rewrite how of
 * src: 0 (?:src), 1 src|src, 2 (?:src){1}. */
static void same_as(const shoal_pattern_t *p, int how, const char *src,
                    char names[][SHOAL_TOPIC_NAME_MAX + 1], size_t n)
{
    char other[3 * SHOAL_TOPIC_PATTERN_MAX];
    shoal_pattern_t *q;

    if (how == 0)
        snprintf(other, sizeof(other), "(?:%s)", src);
    else if (how == 1)
        snprintf(other, sizeof(other), "%s|%s", src, src);
    else
        snprintf(other, sizeof(other), "(?:%s){1}", src);
    if ((q = compile(other)) == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(shoal__pattern_match(p, names[i]) == shoal__pattern_match(q, names[i]));
    shoal__pattern_free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const fixed[] = {"orders.eu", "a", "metrics-2026.cpu_1", "x.y.z"};
    char names[NAMES_MAX][SHOAL_TOPIC_NAME_MAX + 1];
    char src[SHOAL_TOPIC_PATTERN_MAX + 2];
    size_t len = strnlen((const char *)data, size), n = 0, at;
    shoal_pattern_t *p;

    if (len > SHOAL_TOPIC_PATTERN_MAX + 1)
        len = SHOAL_TOPIC_PATTERN_MAX + 1; /* still too long: refused */
    memcpy(src, data, len);
    src[len] = '\0';
    for (at = len + 1; at < size && n < NAMES_MAX; n++) {
        size_t l = strnlen((const char *)data + at, size - at);
        size_t keep = l > SHOAL_TOPIC_NAME_MAX ? SHOAL_TOPIC_NAME_MAX : l;
        memcpy(names[n], data + at, keep);
        names[n][keep] = '\0';
        at += l + 1;
    }
    for (size_t i = 0; n == 0 && i < sizeof(fixed) / sizeof(fixed[0]); i++)
        snprintf(names[i], sizeof(names[i]), "%s", fixed[i]);
    n = n ? n : sizeof(fixed) / sizeof(fixed[0]);
    if ((p = compile(src)) == NULL)
        return 0;
    for (int how = 0; how < 3; how++)
        same_as(p, how, src, names, n);
    shoal__pattern_free(p);
    return 0;
}
