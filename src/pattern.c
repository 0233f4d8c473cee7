/* pattern.c - topic patterns.
 *
 * DESIGN: a pattern is a POSIX extended regular expression (regcomp(3)), so neither side
 * needs a regex library beyond libc, and the library and shoald accept exactly the same
 * ones. It must match a topic's whole name, as Kafka's subscribe(Pattern) does; the match
 * is checked from regexec()'s first match, which POSIX makes the longest at the leftmost
 * place. Back-references are refused: matching them can take exponential time, and shoald
 * matches every member's pattern against every topic on its event loop. "\d" is refused
 * too: in Java's syntax, which Kafka users write, it is a digit, and here it would quietly
 * match the letter d. */
#include "pattern.h"

#include <errno.h>
#include <string.h>

#include "shoal.h"
#include "util.h"

static int pattern_check(const char *p)
{
    size_t n = p ? strlen(p) : 0;

    if (n == 0 || n > SHOAL_TOPIC_PATTERN_MAX)
        return SHOAL_ERR(SHOAL_EINVAL, "a topic pattern has 1 to %d bytes, not %zu",
                         SHOAL_TOPIC_PATTERN_MAX, n);
    if (shoal__has_control(p))
        return SHOAL_ERR(SHOAL_EINVAL, "the topic pattern has a control character");
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '\\')
            continue;
        i++; /* an escaped backslash escapes nothing after it */
        if (p[i] >= '1' && p[i] <= '9')
            return SHOAL_ERR(
                SHOAL_EINVAL,
                "the topic pattern '%.200s' has a back-reference (\\%c): not supported", p, p[i]);
        if (p[i] == 'd' || p[i] == 'D')
            return SHOAL_ERR(SHOAL_EINVAL,
                             "the topic pattern '%.200s' has \\%c, which POSIX regular expressions "
                             "do not have: write [0-9] (or [^0-9])",
                             p, p[i]);
    }
    return 0;
}

int shoal__pattern_compile(regex_t *re, const char *pattern)
{
    char why[128];
    int rc = pattern_check(pattern);

    if (rc < 0)
        return rc;
    rc = regcomp(re, pattern, REG_EXTENDED);
    if (rc == 0)
        return 0;
    if (rc == REG_ESPACE)
        return -ENOMEM;
    regerror(rc, NULL, why, sizeof(why));
    return SHOAL_ERR(SHOAL_EINVAL, "invalid topic pattern '%.200s': %s", pattern, why);
}

bool shoal__pattern_match(const regex_t *re, const char *name)
{
    regmatch_t m;

    return regexec(re, name, 1, &m, 0) == 0 && m.rm_so == 0 && name[m.rm_eo] == '\0';
}
