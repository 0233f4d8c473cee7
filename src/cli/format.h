/* format.h - render consumed records through a `shoal consume --format` template. */
#ifndef SHOAL_CLI_FORMAT_H
#define SHOAL_CLI_FORMAT_H

#include <stddef.h>
#include <stdio.h>

#include "shoal.h"

/* The template used when --format is not given: the value and a newline. */
#define CLI_FORMAT_DEFAULT "%v\\n"

/* Check a template: %k key, %v value, %p partition, %o offset, %T timestamp (ms), %h headers
 * as k=v pairs joined by ',', %% a percent sign; escapes \n, \t and \\. Anything else after
 * '%' or '\', or either at the very end, is an error.
 * @return 0 when valid; -1 with a message naming the problem written to err. */
int cli_format_check(const char *fmt, char *err, size_t err_cap);

/* Write one record to out through a template already accepted by cli_format_check(). A null
 * key or value prints as null_marker (nothing when NULL), a null header value as its key
 * alone. Write errors are left on the stream for the caller (ferror/fflush).
 * @return 0, or SHOAL_ECORRUPT when the record's headers cannot be decoded. */
int cli_format_record(FILE *out, const char *fmt, const char *null_marker,
                      const shoal_record_t *rec);

#endif
