/* pattern.h - topic patterns: a subscription to every topic whose name matches a regular
 * expression (shoal_consumer_subscribe_pattern), checked by the library and by shoald. */
#ifndef SHOAL_PATTERN_H
#define SHOAL_PATTERN_H
#include <regex.h>
#include <stdbool.h>

/* Check and compile a topic pattern: a POSIX extended regular expression of 1 to
 * SHOAL_TOPIC_PATTERN_MAX bytes without control characters or back-references. 0, or
 * SHOAL_EINVAL saying what is wrong (re is then untouched); free re with regfree(). */
int shoal__pattern_compile(regex_t *re, const char *pattern);
/* Whether the whole of name matches re (not only a part of it, as regexec() alone says). */
bool shoal__pattern_match(const regex_t *re, const char *name);
#endif
