/* test_cli_time.c - the `shoal` tool's time arguments: every accepted form of a point in time
 * and of a duration, and each class of refusal with its reason.
 *
 * The parsers live in the tool (src/cli), not in libshoal, so they are compiled in here.
 * Expected epoch values were computed independently (Python's datetime), not with the code
 * under test. Local-time cases set TZ themselves; the group's teardown puts back the TZ the
 * test started with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cli/timearg.c"

/* 2024-02-29T12:34:56.789Z: a leap day, every field distinct. */
#define LEAP_DAY_MS 1709210096789LL
/* 2024-02-29T00:00:00Z */
#define LEAP_MIDNIGHT_MS 1709164800000LL
#define HOUR_MS          3600000LL
#define DAY_MS           86400000LL

typedef struct time_case {
    const char *in;
    int64_t want_ms;
} time_case_t;

typedef struct refusal {
    const char *in;
    const char *reason; /* a substring of cli_time_error() */
} refusal_t;

static void set_tz(const char *tz)
{
    assert_int_equal(setenv("TZ", tz, 1), 0);
    tzset();
}

static void assert_datetime(const char *in, int64_t want_ms)
{
    int64_t ms = -1;

    if (cli_parse_datetime_ms(in, &ms) != 0)
        fail_msg("\"%s\" refused: %s", in, cli_time_error());
    if (ms != want_ms)
        fail_msg("\"%s\": got %lld ms, want %lld", in, (long long)ms, (long long)want_ms);
}

static void assert_duration(const char *in, int64_t want_ms)
{
    int64_t ms = -1;

    if (cli_parse_duration_ms(in, &ms) != 0)
        fail_msg("\"%s\" refused: %s", in, cli_time_error());
    if (ms != want_ms)
        fail_msg("\"%s\": got %lld ms, want %lld", in, (long long)ms, (long long)want_ms);
}

/* A refusal returns -1, leaves *out_ms alone and gives a reason holding the expected words. */
static void assert_refused(int (*parse)(const char *, int64_t *), const refusal_t *r)
{
    int64_t ms = 42;

    if (parse(r->in, &ms) != -1)
        fail_msg("\"%s\" accepted as %lld ms", r->in, (long long)ms);
    assert_int_equal(ms, 42);
    if (!strstr(cli_time_error(), r->reason))
        fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", r->in, cli_time_error(), r->reason);
}

static void assert_datetimes(const time_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_datetime(cases[i].in, cases[i].want_ms);
}

static void assert_refusals(int (*parse)(const char *, int64_t *), const refusal_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_refused(parse, &r[i]);
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ points in time */

static void test_datetime_takes_plain_integers_as_epoch_ms(void **state)
{
    static const time_case_t cases[] = {
        {"0", 0},
        {"1733500000000", 1733500000000LL},
        {"000123", 123},
        {"9223372036854775807", INT64_MAX},
    };
    (void)state;
    assert_datetimes(cases, COUNT(cases));
}

/* Zoned forms are UTC whatever TZ says: run them in a zone five hours off. */
static void test_datetime_applies_explicit_zones(void **state)
{
    static const time_case_t cases[] = {
        {"2024-02-29T12:34:56.789Z", LEAP_DAY_MS},
        {"2024-02-29 12:34:56.789Z", LEAP_DAY_MS},
        {"2024-02-29T12:34:56Z", LEAP_DAY_MS - 789},
        {"2024-02-29T12:34Z", LEAP_DAY_MS - 56789},
        {"2024-02-29T12:34:56.7Z", LEAP_DAY_MS - 89},
        {"2024-02-29T12:34:56.789999999Z", LEAP_DAY_MS},
        {"2024-02-29T12:34:56.789+00:00", LEAP_DAY_MS},
        {"2024-02-29T12:34:56.789-00:00", LEAP_DAY_MS},
        {"2024-02-29T14:34:56.789+02:00", LEAP_DAY_MS},
        {"2024-02-29T14:34:56.789+0200", LEAP_DAY_MS},
        {"2024-02-29T14:34:56.789+02", LEAP_DAY_MS},
        {"2024-02-29T07:04:56.789-05:30", LEAP_DAY_MS},
        {"2024-02-29T07:04:56.789-0530", LEAP_DAY_MS},
        {"2024-02-29T07:34:56.789-05", LEAP_DAY_MS},
        {"2024-02-29T23:59+23:59", LEAP_MIDNIGHT_MS},
        {"1970-01-01T00:00Z", 0},
        {"1970-01-01T01:00+01:00", 0},
        {"9999-12-31T23:59:59.999Z", 253402300799999LL},
    };
    (void)state;
    set_tz("EST5");
    assert_datetimes(cases, COUNT(cases));
}

static void test_datetime_normalises_a_leap_second(void **state)
{
    (void)state;
    assert_datetime("2024-12-31T23:59:60Z", 1735689600000LL); /* 2025-01-01T00:00:00Z */
}

static void test_datetime_without_zone_is_local_time_in_utc(void **state)
{
    static const time_case_t cases[] = {
        {"2024-02-29T12:34:56.789", LEAP_DAY_MS},   {"2024-02-29 12:34:56.789", LEAP_DAY_MS},
        {"2024-02-29T12:34:56", LEAP_DAY_MS - 789}, {"2024-02-29T12:34", LEAP_DAY_MS - 56789},
        {"2024-02-29", LEAP_MIDNIGHT_MS},           {"1970-01-01", 0},
    };
    (void)state;
    set_tz("UTC0");
    assert_datetimes(cases, COUNT(cases));
}

static void test_datetime_without_zone_applies_the_local_offset(void **state)
{
    static const time_case_t cases[] = {
        {"2024-02-29T12:34:56.789", LEAP_DAY_MS + 5 * HOUR_MS},
        {"2024-02-29", LEAP_MIDNIGHT_MS + 5 * HOUR_MS},
        {"1970-01-01", 5 * HOUR_MS},
    };
    (void)state;
    set_tz("EST5");
    assert_datetimes(cases, COUNT(cases));
}

/* tm_isdst = -1 lets the C library pick summer time by the date itself. */
static void test_datetime_without_zone_follows_summer_time(void **state)
{
    (void)state;
    set_tz("EST5EDT,M3.2.0,M11.1.0");
    assert_datetime("2024-01-15T12:00", 1705338000000LL); /* 17:00Z, EST */
    assert_datetime("2024-07-01T12:00", 1719849600000LL); /* 16:00Z, EDT */
}

static void test_datetime_checks_leap_days(void **state)
{
    static const time_case_t ok[] = {
        {"2024-02-29T00:00Z", LEAP_MIDNIGHT_MS},
        {"2000-02-29T00:00Z", 951782400000LL},
        {"2023-02-28T00:00Z", 1677542400000LL},
    };
    static const refusal_t bad[] = {
        {"2023-02-29T00:00Z", "day 29 out of range for 2023-02"},
        {"2100-02-29T00:00Z", "day 29 out of range for 2100-02"},
        {"2024-02-30", "day 30 out of range for 2024-02"},
    };
    (void)state;
    assert_datetimes(ok, COUNT(ok));
    assert_refusals(cli_parse_datetime_ms, bad, COUNT(bad));
}

static void test_datetime_refuses_fields_out_of_range(void **state)
{
    static const refusal_t bad[] = {
        {"2024-13-01T00:00Z", "month 13 out of range"},
        {"2024-00-01", "month 0 out of range"},
        {"2024-01-00", "day 0 out of range"},
        {"2024-01-32", "day 32 out of range"},
        {"2024-04-31", "day 31 out of range"},
        {"2024-01-01T24:00Z", "hour 24 out of range"},
        {"2024-01-01T23:60Z", "minute 60 out of range"},
        {"2024-01-01T23:59:61Z", "second 61 out of range"},
        {"2024-01-01T00:00+24:00", "zone hour 24 out of range"},
        {"2024-01-01T00:00+05:60", "zone minute 60 out of range"},
        {"1969-12-31T23:59:59Z", "year 1969 out of range"},
        {"0000-01-01", "year 0 out of range"},
        {"9223372036854775808", "milliseconds since the epoch out of range"},
    };
    (void)state;
    assert_refusals(cli_parse_datetime_ms, bad, COUNT(bad));
}

static void test_datetime_refuses_times_before_the_epoch(void **state)
{
    static const refusal_t bad[] = {
        {"1970-01-01T00:30+01:00", "before the epoch"},
        {"1970-01-01T00:00:00.999+00:01", "before the epoch"},
    };
    static const refusal_t bad_local[] = {
        {"1970-01-01", "before the epoch"},
        {"1970-01-01T00:59:59.999", "before the epoch"},
    };
    (void)state;
    assert_refusals(cli_parse_datetime_ms, bad, COUNT(bad));
    set_tz("CET-1");
    assert_refusals(cli_parse_datetime_ms, bad_local, COUNT(bad_local));
    assert_datetime("1970-01-01T01:00", 0);
}

static void test_datetime_refuses_malformed_text(void **state)
{
    static const refusal_t bad[] = {
        {"", "empty time"},
        {" 2024-01-01", "leading or trailing space"},
        {"2024-01-01 ", "leading or trailing space"},
        {"2024-01-01T00:00\n", "leading or trailing space"},
        {"2024-01-01T00:00Zjunk", "unexpected \"junk\" after the time"},
        {"2024-01-01T00:00:00.5.5Z", "unexpected \".5Z\" after the time"},
        {"2024-01-01T00:00.5", "unexpected \".5\" after the time"},
        {"2024-01-01T00:00+05301", "unexpected \"1\" after the time"},
        {"2024-01-01x", "expected YYYY-MM-DD[THH:MM"},
        {"2024-01-01Z", "expected YYYY-MM-DD[THH:MM"},
        {"2024-01-01T", "expected YYYY-MM-DD[THH:MM"},
        {"2024-01-01T1:00", "expected YYYY-MM-DD[THH:MM"},
        {"2024-01-01T00:00:0", "expected YYYY-MM-DD[THH:MM"},
        {"2024-1-01", "expected YYYY-MM-DD[THH:MM"},
        {"12024-01-01", "expected YYYY-MM-DD[THH:MM"},
        {"-1", "expected YYYY-MM-DD[THH:MM"},
        {"+1733500000000", "expected YYYY-MM-DD[THH:MM"},
        {"2024-01-01x", "[Z|+HH:MM]], or ms since the epoch"},
        {"2024-01-01T00:00:00.", "expected digits after '.'"},
        {"2024-01-01T00:00:00.1234567890Z", "more than 9 digits"},
        {"2024-01-01T00:00+5", "expected a zone"},
        {"2024-01-01T00:00+05:3", "expected a zone"},
        {"2024-01-01T00:00+053", "expected a zone"},
    };
    (void)state;
    assert_refusals(cli_parse_datetime_ms, bad, COUNT(bad));
}

/* ------------------------------------------------------------------ durations */

static void test_duration_accepts_every_unit(void **state)
{
    static const time_case_t cases[] = {
        {"P1D", DAY_MS},
        {"PT1H", HOUR_MS},
        {"PT30M", 30 * 60000LL},
        {"PT90M", 90 * 60000LL},
        {"PT5S", 5000},
        {"PT0.5S", 500},
        {"P1W", 7 * DAY_MS},
        {"P1W2D", 9 * DAY_MS},
        {"P2DT3H4M5.250S", 183845250},
        {"P1DT1S", DAY_MS + 1000},
        {"PT0S", 0},
        {"p1dt2h3m4s", DAY_MS + 2 * HOUR_MS + 3 * 60000 + 4000},
    };
    (void)state;
    for (size_t i = 0; i < COUNT(cases); i++)
        assert_duration(cases[i].in, cases[i].want_ms);
}

static void test_duration_truncates_fractions_to_ms(void **state)
{
    (void)state;
    assert_duration("PT0.0009S", 0);
    assert_duration("PT1.999999999S", 1999);
    assert_duration("PT1.25S", 1250);
}

/* 106751991167 days is the most that fits in INT64_MAX ms, with 25975807 ms to spare. */
static void test_duration_sums_up_to_int64_max(void **state)
{
    (void)state;
    assert_duration("P106751991167DT7H", 9223372036854000000LL);
    assert_duration("PT9223372036854775.807S", INT64_MAX);
}

static void test_duration_refuses_bad_forms(void **state)
{
    static const refusal_t bad[] = {
        {"", "expected PnWnDTnHnMnS"},
        {"1D", "expected PnWnDTnHnMnS"},
        {" PT1H", "expected PnWnDTnHnMnS"},
        {"P", "empty duration"},
        {"PT", "expected hours, minutes or seconds after the 'T'"},
        {"P1DT", "expected hours, minutes or seconds after the 'T'"},
        {"P1Y", "years and months have no fixed length: use days"},
        {"P1M", "years and months have no fixed length: use days"},
        {"P1Y2M3D", "years and months have no fixed length: use days"},
        {"PT1Y", "years and months have no fixed length: use days"},
        {"-PT1H", "negative durations are not allowed"},
        {"PT-1H", "negative durations are not allowed"},
        {"+PT1H", "expected PnWnDTnHnMnS"},
        {"PT1.5H", "fractions are only allowed on seconds"},
        {"P1.5D", "fractions are only allowed on seconds"},
        {"PT.5S", "unexpected \".5S\" in the duration"},
        {"PT1.S", "expected digits after '.'"},
        {"PT0.1234567890S", "more than 9 digits"},
        {"PT1Hx", "unexpected \"x\" in the duration"},
        {"PT1H ", "unexpected \" \" in the duration"},
        {"PT1", "missing unit"},
        {"PT1X", "unknown unit 'X'"},
        {"P1H", "'H' must come after the 'T'"},
        {"PT1D", "'D' must come before the 'T'"},
        {"PT1W", "'W' must come before the 'T'"},
        {"PT1S1M", "'M' repeated or out of order"},
        {"P1D1W", "'W' repeated or out of order"},
        {"PT1H1H", "'H' repeated or out of order"},
        {"PTT1H", "unexpected \"T1H\" in the duration"},
    };
    (void)state;
    assert_refusals(cli_parse_duration_ms, bad, COUNT(bad));
}

static void test_duration_refuses_overflow(void **state)
{
    static const refusal_t bad[] = {
        {"PT9999999999999999S", "duration out of range"},
        {"PT99999999999999999999S", "duration out of range"},
        {"P106751991167DT8H", "duration out of range"},
        {"PT9223372036854775.808S", "duration out of range"},
        {"P15250284453W", "duration out of range"},
    };
    (void)state;
    assert_refusals(cli_parse_duration_ms, bad, COUNT(bad));
}

/* ------------------------------------------------------------------ main */

static char *saved_tz;

static int save_tz(void **state)
{
    const char *tz = getenv("TZ");
    (void)state;
    saved_tz = tz ? strdup(tz) : NULL;
    return tz && !saved_tz ? -1 : 0;
}

static int restore_tz(void **state)
{
    (void)state;
    if (saved_tz)
        setenv("TZ", saved_tz, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved_tz);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_datetime_takes_plain_integers_as_epoch_ms),
        cmocka_unit_test(test_datetime_applies_explicit_zones),
        cmocka_unit_test(test_datetime_normalises_a_leap_second),
        cmocka_unit_test(test_datetime_without_zone_is_local_time_in_utc),
        cmocka_unit_test(test_datetime_without_zone_applies_the_local_offset),
        cmocka_unit_test(test_datetime_without_zone_follows_summer_time),
        cmocka_unit_test(test_datetime_checks_leap_days),
        cmocka_unit_test(test_datetime_refuses_fields_out_of_range),
        cmocka_unit_test(test_datetime_refuses_times_before_the_epoch),
        cmocka_unit_test(test_datetime_refuses_malformed_text),
        cmocka_unit_test(test_duration_accepts_every_unit),
        cmocka_unit_test(test_duration_truncates_fractions_to_ms),
        cmocka_unit_test(test_duration_sums_up_to_int64_max),
        cmocka_unit_test(test_duration_refuses_bad_forms),
        cmocka_unit_test(test_duration_refuses_overflow),
    };
    return cmocka_run_group_tests(tests, save_tz, restore_tz);
}
