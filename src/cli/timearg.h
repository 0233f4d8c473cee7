/* timearg.h - the time arguments of the `shoal` tool: a point in time and a duration, in the
 * forms Kafka's kafka-consumer-groups takes for --to-datetime and --by-duration. */
#ifndef SHOAL_CLI_TIMEARG_H
#define SHOAL_CLI_TIMEARG_H

#include <stddef.h>
#include <stdint.h>

/* Parse a point in time into milliseconds since the Unix epoch: either milliseconds as a plain
 * non-negative integer, or an ISO 8601 date-time YYYY-MM-DD[(T| )HH:MM[:SS[.f]][zone]]. The
 * fraction has 1 to 9 digits and is truncated to ms; the zone is Z, +HH, +HHMM or +HH:MM (or
 * '-'). Without a zone the time is local time (TZ), as in Kafka's tool; a date alone is its
 * midnight. Years 1970-9999; every field is range-checked (2023-02-29 is refused); a second
 * of 60 is a leap second; times before the epoch are refused.
 * @param[in]  s       the argument; surrounding spaces are refused
 * @param[out] out_ms  set on success only
 * @return 0, or -1 with the reason left for cli_time_error().
 * Thread-safety: any thread, but local times read the process's TZ through mktime(). */
int cli_parse_datetime_ms(const char *s, int64_t *out_ms);

/* Parse an ISO 8601 duration into milliseconds: P[nW][nD][T[nH][nM][n[.f]S]] with at least
 * one component, units in that order and each at most once, letters in either case. Only
 * seconds take a fraction (1 to 9 digits, truncated to ms). Years and months (P1Y, P1M) are
 * refused, having no fixed length, and so are signs and anything over INT64_MAX ms.
 * @param[in]  s       the argument, e.g. PT30M, P1D, P2DT3H4M5.250S
 * @param[out] out_ms  set on success only
 * @return 0, or -1 with the reason left for cli_time_error().
 * Thread-safety: any thread. */
int cli_parse_duration_ms(const char *s, int64_t *out_ms);

/* Why the last cli_parse_datetime_ms() or cli_parse_duration_ms() on this thread failed, as
 * a short phrase for an error message ("" before any failure). Owned by the parser: valid
 * until the next failure on this thread. Do not free. */
const char *cli_time_error(void);

#endif
