/* pattern.h - topic patterns: a subscription to every topic whose whole name matches a
 * regular expression (shoal_consumer_subscribe_pattern), compiled by the library, which
 * refuses a bad one at once, and by shoald, which matches it against its topics. */
#ifndef SHOAL_PATTERN_H
#define SHOAL_PATTERN_H
#include <stdbool.h>

typedef struct shoal_pattern shoal_pattern_t;

/* Compile pattern (the syntax is in shoal.h, shoal_consumer_subscribe_pattern). 0, or
 * SHOAL_EINVAL saying what is wrong and where, or -ENOMEM. Free *out with
 * shoal__pattern_free(). */
int shoal__pattern_compile(const char *pattern, shoal_pattern_t **out);
/* Whether the whole of name matches: time linear in its length, whatever the pattern. */
bool shoal__pattern_match(const shoal_pattern_t *p, const char *name);
void shoal__pattern_free(shoal_pattern_t *p); /* NULL is allowed */
#endif
