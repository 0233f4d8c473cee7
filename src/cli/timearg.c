/* timearg.c - the time arguments of the `shoal` tool: a point in time (milliseconds since the
 * epoch, or an ISO 8601 date-time) and an ISO 8601 duration, in the forms Kafka's
 * kafka-consumer-groups takes with --to-datetime and --by-duration.
 *
 * DESIGN: each parser walks the string once with a cursor, reading fixed-width fields and
 * checking each one's range before any conversion. mktime() and timegm() would silently
 * normalise a bad field (2023-02-29 into March 1st), so only a leap second (:60) is left
 * for them to carry into the next minute. A date-time without a zone is local time, as in
 * Kafka's tool, and goes through mktime() with tm_isdst = -1 so the C library decides
 * whether summer time applies; one with a zone goes through timegm() and the offset is
 * subtracted. Fractions below the millisecond are truncated, never rounded, so a parsed
 * time never lies after the instant written. Durations are summed with overflow checks in
 * int64_t milliseconds. A failure's reason is formatted into a per-thread buffer that
 * cli_time_error() returns, so the caller can print it in its own words. */
#include "timearg.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DATETIME_FORM "expected YYYY-MM-DD[THH:MM[:SS[.sss]][Z|+HH:MM]], or ms since the epoch"
#define ZONE_FORM     "expected a zone Z, +HH, +HHMM or +HH:MM"
#define DURATION_FORM "expected PnWnDTnHnMnS, e.g. PT30M or P1DT12H"

/* The longest fraction of a second accepted: nanoseconds, as Java's parsers take. */
#define FRACTION_DIGITS_MAX 9

static _Thread_local char time_error[192];

static int time_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Keep the reason for cli_time_error() and return -1, so callers can `return time_fail(..)`. */
static int time_fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(time_error, sizeof(time_error), fmt, ap);
    va_end(ap);
    return -1;
}

const char *cli_time_error(void)
{
    return time_error;
}

/* ------------------------------------------------------------------ scanning */

/* Digits are tested by hand: isdigit() depends on the locale. */
static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool skip_char(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

/* Read exactly width digits at *p into *out and step over them; false leaves *p alone. */
static bool scan_fixed(const char **p, int width, int *out)
{
    int v = 0;

    for (int i = 0; i < width; i++) {
        if (!is_digit((*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += width;
    *out = v;
    return true;
}

/* Read a run of digits at *p whose value fits in int64_t and step over it.
 * @return 1, 0 when *p is not a digit, or -1 when the value exceeds INT64_MAX. */
static int scan_int64(const char **p, int64_t *out)
{
    const char *s = *p;
    int64_t v = 0;

    for (; is_digit(*s); s++) {
        int d = *s - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (s == *p)
        return 0;
    *p = s;
    *out = v;
    return 1;
}

/* Read the fraction of a second starting at the '.' at *p: 1 to 9 digits, truncated to ms. */
static int scan_fraction_ms(const char **p, int *out_ms)
{
    const char *s = *p + 1;
    int n = 0, ms = 0;

    for (; is_digit(s[n]) && n <= FRACTION_DIGITS_MAX; n++) {
        if (n < 3)
            ms = ms * 10 + (s[n] - '0');
    }
    if (n == 0)
        return time_fail("expected digits after '.'");
    if (n > FRACTION_DIGITS_MAX)
        return time_fail("more than %d digits in the fraction of a second", FRACTION_DIGITS_MAX);
    for (int i = n; i < 3; i++)
        ms *= 10;
    *p = s + n;
    *out_ms = ms;
    return 0;
}

/* ------------------------------------------------------------------ date-times */

/* A date-time's fields as written, range-checked but not yet converted. */
typedef struct datetime {
    struct tm tm;      /* local or UTC calendar fields, as struct tm counts them */
    int ms;            /* the fraction of the second, truncated to ms */
    bool has_zone;     /* false: local time */
    int zone_offset_s; /* seconds east of UTC */
} datetime_t;

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    return month == 2 && leap ? 29 : days[month - 1];
}

/* YYYY-MM-DD. Four digits cap the year at 9999. */
static int parse_date(const char **p, struct tm *tm)
{
    int year, month, day;

    if (!scan_fixed(p, 4, &year) || !skip_char(p, '-') || !scan_fixed(p, 2, &month) ||
        !skip_char(p, '-') || !scan_fixed(p, 2, &day))
        return time_fail(DATETIME_FORM);
    if (year < 1970)
        return time_fail("year %d out of range (1970-9999)", year);
    if (month < 1 || month > 12)
        return time_fail("month %d out of range", month);
    if (day < 1 || day > days_in_month(year, month))
        return time_fail("day %d out of range for %04d-%02d", day, year, month);
    tm->tm_year = year - 1900;
    tm->tm_mon = month - 1;
    tm->tm_mday = day;
    return 0;
}

/* HH:MM[:SS[.f]]. A fraction needs the seconds before it. */
static int parse_clock(const char **p, datetime_t *dt)
{
    int hour, minute, second = 0;
    bool has_seconds;

    if (!scan_fixed(p, 2, &hour) || !skip_char(p, ':') || !scan_fixed(p, 2, &minute))
        return time_fail(DATETIME_FORM);
    has_seconds = skip_char(p, ':');
    if (has_seconds && !scan_fixed(p, 2, &second))
        return time_fail(DATETIME_FORM);
    if (has_seconds && **p == '.' && scan_fraction_ms(p, &dt->ms) < 0)
        return -1;
    if (hour > 23)
        return time_fail("hour %d out of range", hour);
    if (minute > 59)
        return time_fail("minute %d out of range", minute);
    if (second > 60)
        return time_fail("second %d out of range", second);
    dt->tm.tm_hour = hour;
    dt->tm.tm_min = minute;
    dt->tm.tm_sec = second;
    return 0;
}

/* Z, or +HH, +HHMM, +HH:MM with either sign. Anything else is no zone (local time) and is
 * left for the caller's check for trailing characters. */
static int parse_zone(const char **p, datetime_t *dt)
{
    int sign, hours, minutes = 0;
    bool colon;

    if (skip_char(p, 'Z')) {
        dt->has_zone = true;
        return 0;
    }
    if (**p != '+' && **p != '-')
        return 0;
    sign = *(*p)++ == '-' ? -1 : 1;
    if (!scan_fixed(p, 2, &hours))
        return time_fail(ZONE_FORM);
    colon = skip_char(p, ':');
    if ((colon || is_digit(**p)) && !scan_fixed(p, 2, &minutes))
        return time_fail(ZONE_FORM);
    if (hours > 23)
        return time_fail("zone hour %d out of range", hours);
    if (minutes > 59)
        return time_fail("zone minute %d out of range", minutes);
    dt->has_zone = true;
    dt->zone_offset_s = sign * (hours * 3600 + minutes * 60);
    return 0;
}

static int datetime_to_ms(datetime_t *dt, int64_t *out_ms)
{
    time_t t;

    if (dt->has_zone) {
        t = timegm(&dt->tm) - dt->zone_offset_s;
    } else {
        dt->tm.tm_isdst = -1;
        t = mktime(&dt->tm);
    }
    /* mktime's error value, -1, is also 1969-12-31T23:59:59Z: refused either way. */
    if (t < 0)
        return time_fail("the time is before the epoch (1970-01-01T00:00:00Z)");
    *out_ms = (int64_t)t * 1000 + dt->ms;
    return 0;
}

static int parse_epoch_ms(const char *s, int64_t *out_ms)
{
    int64_t ms = 0;

    if (scan_int64(&s, &ms) < 0)
        return time_fail("milliseconds since the epoch out of range");
    *out_ms = ms;
    return 0;
}

int cli_parse_datetime_ms(const char *s, int64_t *out_ms)
{
    datetime_t dt = {.has_zone = false};
    const char *p = s;

    if (*s == '\0')
        return time_fail("empty time: " DATETIME_FORM);
    if (isspace((unsigned char)s[0]) || isspace((unsigned char)s[strlen(s) - 1]))
        return time_fail("leading or trailing space in the time");
    if (s[strspn(s, "0123456789")] == '\0')
        return parse_epoch_ms(s, out_ms);
    if (parse_date(&p, &dt.tm) < 0)
        return -1;
    if (*p != '\0') {
        if (!skip_char(&p, 'T') && !skip_char(&p, ' '))
            return time_fail(DATETIME_FORM);
        if (parse_clock(&p, &dt) < 0 || parse_zone(&p, &dt) < 0)
            return -1;
    }
    if (*p != '\0')
        return time_fail("unexpected \"%.16s\" after the time: " DATETIME_FORM, p);
    return datetime_to_ms(&dt, out_ms);
}

/* ------------------------------------------------------------------ durations */

/* A duration's units in the order they must come: W and D before the 'T', H, M, S after. */
static const struct duration_unit {
    char letter;
    bool after_t;
    int64_t ms;
} duration_units[] = {
    {'W', false, 7 * 86400000LL}, {'D', false, 86400000LL}, {'H', true, 3600000LL},
    {'M', true, 60000LL},         {'S', true, 1000LL},
};
#define DURATION_UNITS (sizeof(duration_units) / sizeof(duration_units[0]))

/* The state of one walk over a duration. */
typedef struct duration_parse {
    const char *p;
    bool after_t;
    size_t next_unit; /* index of the first unit still allowed */
    int date_parts;   /* components before the 'T' */
    int time_parts;   /* components after it */
    int64_t total_ms;
} duration_parse_t;

/* The unit letter at d->p, checked for position and order; steps over it. */
static int take_duration_unit(duration_parse_t *d, const struct duration_unit **out)
{
    char c = (char)toupper((unsigned char)*d->p);
    size_t i;

    if (c == 'Y' || (c == 'M' && !d->after_t))
        return time_fail("years and months have no fixed length: use days");
    if (c == '\0')
        return time_fail("missing unit at the end of the duration");
    for (i = 0; i < DURATION_UNITS && duration_units[i].letter != c; i++)
        ;
    if (i == DURATION_UNITS)
        return time_fail("unknown unit '%c' in the duration: " DURATION_FORM, *d->p);
    if (duration_units[i].after_t != d->after_t)
        return time_fail("'%c' must come %s the 'T': " DURATION_FORM, c,
                         duration_units[i].after_t ? "after" : "before");
    if (i < d->next_unit)
        return time_fail("'%c' repeated or out of order: " DURATION_FORM, c);
    d->next_unit = i + 1;
    d->p++;
    *out = &duration_units[i];
    return 0;
}

/* Add n units plus frac_ms to the total unless the sum would pass INT64_MAX. frac_ms < 1000
 * and the total is never negative, so no step below can overflow. */
static int add_duration(duration_parse_t *d, int64_t n, int frac_ms, int64_t unit_ms)
{
    int64_t room = INT64_MAX - d->total_ms;

    if (n > room / unit_ms || n * unit_ms > room - frac_ms)
        return time_fail("duration out of range (over %lld ms)", (long long)INT64_MAX);
    d->total_ms += n * unit_ms + frac_ms;
    return 0;
}

/* One component: digits, a fraction (seconds only), and its unit letter. */
static int parse_duration_component(duration_parse_t *d)
{
    const struct duration_unit *unit = NULL;
    int64_t n = 0;
    int frac_ms = 0, rc;
    bool has_fraction;

    if (*d->p == '-')
        return time_fail("negative durations are not allowed");
    rc = scan_int64(&d->p, &n);
    if (rc < 0)
        return time_fail("duration out of range (over %lld ms)", (long long)INT64_MAX);
    if (rc == 0)
        return time_fail("unexpected \"%.16s\" in the duration: " DURATION_FORM, d->p);
    has_fraction = *d->p == '.';
    if (has_fraction && scan_fraction_ms(&d->p, &frac_ms) < 0)
        return -1;
    if (take_duration_unit(d, &unit) < 0)
        return -1;
    if (has_fraction && unit->letter != 'S')
        return time_fail("fractions are only allowed on seconds");
    return add_duration(d, n, frac_ms, unit->ms);
}

int cli_parse_duration_ms(const char *s, int64_t *out_ms)
{
    duration_parse_t d = {.p = s};

    if (*d.p == '-')
        return time_fail("negative durations are not allowed");
    if (toupper((unsigned char)*d.p) != 'P')
        return time_fail(DURATION_FORM);
    d.p++;
    while (*d.p != '\0') {
        if (!d.after_t && toupper((unsigned char)*d.p) == 'T') {
            d.after_t = true;
            d.p++;
            continue;
        }
        if (parse_duration_component(&d) < 0)
            return -1;
        if (d.after_t)
            d.time_parts++;
        else
            d.date_parts++;
    }
    if (d.after_t && d.time_parts == 0)
        return time_fail("expected hours, minutes or seconds after the 'T'");
    if (d.date_parts + d.time_parts == 0)
        return time_fail("empty duration: " DURATION_FORM);
    *out_ms = d.total_ms;
    return 0;
}
