/* test_config.c - shoald's settings (src/shoald/config.c): the defaults the README and the
 * shipped etc/shoald.conf.in state, every key through the command line, the ranges and
 * spellings refused with a message naming the key (and, from a file, the file and line),
 * the file's comments and blanks, and which of the command line and the files wins.
 * The tests run from the top of the tree, where the shipped config file is read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "shoal.h"
#include "shoald/config.h"
#include "shoald/log.h"

struct fixture {
    char dir[PATH_MAX / 2];
    char path[PATH_MAX]; /* <dir>/shoald.conf, written by load_text() */
    shoald_config_t cfg;
    char err[512];  /* as big as shoald's own */
    char out[4096]; /* what config_parse_args() printed */
};

static int setup(void **state)
{
    static struct fixture f;

    memset(&f, 0, sizeof(f));
    harness_tmpdir(f.dir, sizeof(f.dir), "config");
    snprintf(f.path, sizeof(f.path), "%s/shoald.conf", f.dir);
    config_init(&f.cfg);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    harness_rmrf(f->dir);
    return 0;
}

/* ------------------------------------------------------------------ helpers */

static void write_text(const char *path, const char *text)
{
    harness_write_file(path, text, strlen(text));
}

/* Write text as <dir>/shoald.conf and load it into f->cfg. */
static int load_text(struct fixture *f, const char *text)
{
    write_text(f->path, text);
    return config_load_file(&f->cfg, f->path, f->err, sizeof(f->err));
}

/* config_parse_args() on argv (argv[0] included, NULL-terminated as main's), with what it
 * prints (--help, --version) caught in f->out. */
static int parse_args(struct fixture *f, int argc, char **argv)
{
    int saved, fd, rc;
    ssize_t n;

    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    fd = open(f->dir, O_TMPFILE | O_RDWR, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    rc = config_parse_args(&f->cfg, argc, argv, f->err, sizeof(f->err));
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    n = pread(fd, f->out, sizeof(f->out) - 1, 0);
    f->out[n > 0 ? n : 0] = '\0';
    close(fd);
    return rc;
}

#define ARGV(...)     ((char *[]){"shoald", __VA_ARGS__, NULL})
#define ARGC(...)     ((int)(sizeof(ARGV(__VA_ARGS__)) / sizeof(char *)) - 1)
#define PARSE(f, ...) parse_args(f, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

/* config_set(key, value) fails with SHOAL_ECONFIG, changes nothing, and says why in a
 * message that names the key and holds want. */
static void assert_set_refused(struct fixture *f, const char *key, const char *value,
                               const char *want)
{
    shoald_config_t before = f->cfg;

    assert_int_equal(config_set(&f->cfg, key, value, f->err, sizeof(f->err)), SHOAL_ECONFIG);
    assert_memory_equal(&f->cfg, &before, sizeof(before));
    assert_non_null(strstr(f->err, key));
    if (!strstr(f->err, want))
        fail_msg("'%s' = '%s': message \"%s\" lacks \"%s\"", key, value, f->err, want);
}

static void assert_config_equal(const shoald_config_t *got, const shoald_config_t *want)
{
    assert_string_equal(got->data_dir, want->data_dir);
    assert_string_equal(got->runtime_dir, want->runtime_dir);
    assert_string_equal(got->instance, want->instance);
    assert_string_equal(got->shm_dir, want->shm_dir);
    assert_int_equal(got->flush_interval_ms, want->flush_interval_ms);
    assert_int_equal(got->flush_ms, want->flush_ms);
    assert_int_equal(got->flush_drop_cache, want->flush_drop_cache);
    assert_int_equal(got->allow_gid, want->allow_gid);
    assert_int_equal(got->log_level, want->log_level);
    assert_string_equal(got->log_file, want->log_file);
}

/* The name of this process's group into buf (copied: config_set() looks groups up too), or
 * false where it has none: a container may run the tests with a gid /etc/group lacks. */
static bool own_group_name(char *buf, size_t cap)
{
    struct group *gr = getgrgid(getgid());

    if (!gr)
        return false;
    snprintf(buf, cap, "%s", gr->gr_name);
    return true;
}

/* A copy of the shipped etc/shoald.conf.in at dst, with allow.gid naming this process's
 * group (the file names the group shoal, which the machine running the tests need not
 * have; by number where the group has no name) and, when uncomment is set, every
 * commented-out "#key = value" line made live. */
static void copy_shipped_config(const char *dst, bool uncomment)
{
    char group[256];
    size_t len;
    char *text = (char *)harness_read_file("etc/shoald.conf.in", &len), *line, *next;
    FILE *out;

    if (!own_group_name(group, sizeof(group)))
        snprintf(group, sizeof(group), "%ld", (long)getgid());
    assert_non_null(text);
    out = fopen(dst, "w");
    if (!out) {
        free(text);
        fail_msg("%s: %s", dst, strerror(errno));
    }
    text[len] = '\0';
    for (line = text; *line; line = next) {
        int skip = uncomment && line[0] == '#' && islower((unsigned char)line[1]);

        next = line + strcspn(line, "\n");
        next += *next == '\n';
        if (!strncmp(line, "allow.gid =", 11))
            fprintf(out, "allow.gid = %s\n", group);
        else
            fprintf(out, "%.*s", (int)(next - line - skip), line + skip);
    }
    assert_int_equal(fclose(out), 0);
    free(text);
}

/* ------------------------------------------------------------------ defaults and keys */

/* The defaults README.md ("The daemon") and config.h list. */
static void test_defaults_are_the_documented_ones(void **state)
{
    struct fixture *f = *state;

    assert_string_equal(f->cfg.data_dir, "./var/data");
    assert_string_equal(f->cfg.runtime_dir, "./var/run");
    assert_string_equal(f->cfg.instance, "shoal");
    assert_string_equal(f->cfg.shm_dir, "/dev/shm");
    assert_int_equal(f->cfg.flush_interval_ms, 5);
    assert_int_equal(f->cfg.flush_ms, 1000);
    assert_int_equal(f->cfg.flush_drop_cache, 1);
    assert_int_equal(f->cfg.allow_gid, -1);
    assert_int_equal(f->cfg.log_level, LOG_INFO);
    assert_string_equal(f->cfg.log_file, "");
}

/* The shipped file loads as it is, and its commented-out values are the built-in defaults
 * as it says (log.file's is an example: the default is stderr). */
static void
test_the_shipped_config_file_loads_and_its_commented_values_are_the_defaults(void **state)
{
    struct fixture *f = *state;
    shoald_config_t want;

    config_init(&want);
    strcpy(want.data_dir, "@STATEDIR@/shoal");
    strcpy(want.runtime_dir, "@RUNDIR@/shoal");
    want.allow_gid = (long)getgid();
    copy_shipped_config(f->path, false);
    assert_int_equal(config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)), 0);
    assert_config_equal(&f->cfg, &want);

    config_init(&f->cfg);
    strcpy(want.log_file, "/var/log/shoal/shoald.log");
    copy_shipped_config(f->path, true);
    assert_int_equal(config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)), 0);
    assert_config_equal(&f->cfg, &want);
}

/* Every option of the README's usage line, at the top and at the bottom of its range, in
 * both spellings (--key value, --key=value) and with '.' or '-' in the key. */
static void test_every_documented_option_is_set_at_both_ends_of_its_range(void **state)
{
    struct fixture *f = *state;
    shoald_config_t want = {.instance = "node-1.a_B",
                            .data_dir = "/srv/data",
                            .runtime_dir = "/srv/run",
                            .shm_dir = "/srv/shm",
                            .flush_interval_ms = 10000,
                            .flush_ms = 86400000,
                            .flush_drop_cache = 0,
                            .allow_gid = 2147483647,
                            .log_level = LOG_DEBUG,
                            .log_file = "/srv/log/shoald.log"};

    assert_int_equal(PARSE(f, "--data-dir", "/srv/data", "--runtime-dir", "/srv/run", "--instance",
                           "node-1.a_B", "--shm-dir", "/srv/shm", "--flush-interval-ms", "10000",
                           "--flush-ms", "86400000", "--flush-drop-cache", "0", "--allow-gid",
                           "2147483647", "--log-level", "debug", "--log-file",
                           "/srv/log/shoald.log"),
                     0);
    assert_config_equal(&f->cfg, &want);

    want.flush_interval_ms = 1;
    want.flush_ms = 0;
    want.flush_drop_cache = 1;
    want.allow_gid = -1;
    want.log_level = LOG_ERR;
    assert_int_equal(PARSE(f, "--flush-interval-ms=1", "--flush.ms=0", "--flush.drop.cache", "1",
                           "--allow-gid=-1", "--log-level=error"),
                     0);
    assert_config_equal(&f->cfg, &want);
}

/* max.shm.bytes: no cap by default; bytes up to the largest a long holds; -1 again. */
static void test_max_shm_bytes_takes_bytes_or_minus_one(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(f->cfg.max_shm_bytes, -1);
    assert_int_equal(PARSE(f, "--max-shm-bytes", "1"), 0);
    assert_int_equal(f->cfg.max_shm_bytes, 1);
    assert_int_equal(PARSE(f, "--max.shm.bytes=9223372036854775807"), 0);
    assert_int_equal(f->cfg.max_shm_bytes, LONG_MAX);
    assert_int_equal(PARSE(f, "--max-shm-bytes", "-1"), 0);
    assert_int_equal(f->cfg.max_shm_bytes, -1);
}

static void test_log_level_takes_its_five_names(void **state)
{
    static const char *const names[] = {"error", "warning", "notice", "info", "debug"};
    static const int levels[] = {LOG_ERR, LOG_WARN, LOG_NOTICE, LOG_INFO, LOG_DEBUG};
    struct fixture *f = *state;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_int_equal(config_set(&f->cfg, "log.level", names[i], f->err, sizeof(f->err)), 0);
        assert_int_equal(f->cfg.log_level, levels[i]);
    }
}

/* A group name is looked up; a number is taken as it is. */
static void test_allow_gid_takes_a_group_name(void **state)
{
    struct fixture *f = *state;
    char group[256];

    if (!own_group_name(group, sizeof(group))) {
        print_message("gid %ld has no name here: skipped\n", (long)getgid());
        skip();
    }
    assert_int_equal(config_set(&f->cfg, "allow.gid", group, f->err, sizeof(f->err)), 0);
    assert_int_equal(f->cfg.allow_gid, (long)getgid());
    assert_int_equal(config_set(&f->cfg, "allow.gid", "4242", f->err, sizeof(f->err)), 0);
    assert_int_equal(f->cfg.allow_gid, 4242);
}

/* A path may be PATH_MAX - 1 bytes, an instance name 63: what their buffers hold. */
static void test_paths_and_names_take_the_longest_value_that_fits(void **state)
{
    static const char *const paths[] = {"data.dir", "runtime.dir", "shm.dir", "log.file"};
    struct fixture *f = *state;
    static char value[PATH_MAX];

    memset(value, 'p', PATH_MAX - 1);
    value[0] = '/';
    value[PATH_MAX - 1] = '\0';
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        assert_int_equal(config_set(&f->cfg, paths[i], value, f->err, sizeof(f->err)), 0);
    assert_string_equal(f->cfg.data_dir, value);
    assert_string_equal(f->cfg.log_file, value);
    value[64] = '\0';
    assert_int_equal(config_set(&f->cfg, "instance", value + 1, f->err, sizeof(f->err)), 0);
    assert_string_equal(f->cfg.instance, value + 1);
}

/* ------------------------------------------------------------------ refused values */

static void test_numbers_outside_their_range_or_malformed_are_refused(void **state)
{
    static const char *const bad[][3] = {
        {"flush.interval.ms", "0", "1..10000"},
        {"flush.interval.ms", "10001", "1..10000"},
        {"flush.ms", "-1", "0..86400000"},
        {"flush.ms", "86400001", "0..86400000"},
        {"flush.ms", "5x", "'5x'"},
        {"flush.ms", "", "''"},
        {"flush.ms", "0x10", "'0x10'"},
        {"flush.ms", "1e3", "'1e3'"},
        {"flush.ms", "99999999999999999999", "not an integer"},
        {"flush.ms", " 5", "' 5'"}, /* blanks on either side alike (" 5" used to pass) */
        {"flush.ms", "5 ", "'5 '"},
        {"flush.interval.ms", "\t5", "'\t5'"},
        {"allow.gid", " 5", "' 5'"},
        {"flush.drop.cache", "2", "0..1"},
        {"flush.drop.cache", "-1", "0..1"},
        {"flush.drop.cache", "yes", "'yes'"},
        {"flush.drop.cache", "true", "'true'"},
        {"allow.gid", "-2", "-1..2147483647"},
        {"allow.gid", "2147483648", "-1..2147483647"},
        {"allow.gid", "-", "'-'"},
        /* a cap of 0 would refuse every topic: a typo for -1, not a setting */
        {"max.shm.bytes", "0", "0 would refuse everything: -1 sets no cap"},
        {"max.shm.bytes", "-2", "-1..9223372036854775807"},
        {"max.shm.bytes", "9223372036854775808", "not an integer"},
        {"max.shm.bytes", "4G", "'4G'"},
        /* 0 reads as "at once" (Kafka refuses it) and meant "for ever": refused */
        {"offsets.retention.minutes", "0", "0 is not a time: -1 keeps committed offsets"},
        {"offsets.retention.ms", "0", "0 is not a time"},
        {"offsets.retention.minutes", "-2", "-1..2147483647"},
    };
    struct fixture *f = *state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_set_refused(f, bad[i][0], bad[i][1], bad[i][2]);
    assert_string_equal(f->err, "offsets.retention.minutes: '-2' is not an integer in "
                                "-1..2147483647");
}

static void test_unknown_keys_and_groups_are_refused(void **state)
{
    struct fixture *f = *state;

    assert_set_refused(f, "flush_ms", "5", "unknown setting 'flush_ms'");
    assert_set_refused(f, "Flush.ms", "5", "unknown setting 'Flush.ms'");
    assert_set_refused(f, "allow.gid", "no-such-group-here", "no group named 'no-such-group-here'");
    /* a name may begin with a digit: looked up, not refused as a bad number */
    assert_set_refused(f, "allow.gid", "12x", "no group named '12x'");
}

/* A refused level leaves the level as it was, as every other refused value does (it used
 * to leave -1, which no level is). */
static void test_a_bad_log_level_is_refused_and_changes_nothing(void **state)
{
    struct fixture *f = *state;

    assert_set_refused(f, "log.level", "warn", "'warn' is not error|warning|notice|info|debug");
    assert_set_refused(f, "log.level", "INFO", "'INFO'");
    assert_set_refused(f, "log.level", "", "''");
}

static void test_paths_and_names_refuse_empty_too_long_and_odd_values(void **state)
{
    struct fixture *f = *state;
    static char value[PATH_MAX + 1];

    memset(value, 'p', PATH_MAX);
    value[0] = '/';
    assert_set_refused(f, "data.dir", value, "longer than 4095 bytes");
    assert_set_refused(f, "log.file", value, "longer than 4095 bytes");
    assert_set_refused(f, "runtime.dir", "", "empty");
    value[65] = '\0';
    assert_set_refused(f, "instance", value + 1, "longer than 63 bytes");
    assert_set_refused(f, "instance", "", "empty");
    assert_set_refused(f, "instance", "a/b", "may hold only [a-zA-Z0-9._-]");
    assert_set_refused(f, "instance", "a b", "'a b'");
}

/* ------------------------------------------------------------------ the file */

/* '#' starts a comment anywhere, blanks around keys and values (CRLF included) go, a value
 * may hold '=', the last line needs no newline, and a comment of any length stays one. */
static void test_the_file_skips_comments_blank_lines_and_blanks(void **state)
{
    struct fixture *f = *state;
    static char text[16384];
    size_t n;

    n = (size_t)snprintf(text, sizeof(text),
                         "# shoald.conf\n\n \t \n"
                         "  flush.ms\t=\t250   # a quarter second\n"
                         "log.file = /tmp/a=b\r\n"
                         "#flush.interval.ms = 9\n#");
    memset(text + n, 'x', 9000); /* read in pieces, the tail would be a line "xxx flush.ms" */
    snprintf(text + n + 9000, sizeof(text) - n - 9000, " flush.ms = 1\ninstance=x");
    assert_int_equal(load_text(f, text), 0);
    assert_int_equal(f->cfg.flush_ms, 250);
    assert_string_equal(f->cfg.log_file, "/tmp/a=b");
    assert_int_equal(f->cfg.flush_interval_ms, 5);
    assert_string_equal(f->cfg.instance, "x");
}

/* A bad line stops the load, even with good lines after it, and the message starts with
 * "<path>:<line>: " and says what is wrong with it. */
static void test_a_bad_line_is_named_by_file_and_line(void **state)
{
    static const struct {
        const char *text;
        int line;
        const char *want;
    } bad[] = {
        {"flush.ms = 1\n\njust words\nflush.ms = 2\n", 3, "expected 'key = value'"},
        {"# comment\nflush_ms = 1\nflush.ms = 2\n", 2, "unknown setting 'flush_ms'"},
        {"flush.ms = 1\nflush.drop.cache = yes\nflush.ms = 2\n", 2, "flush.drop.cache: 'yes'"},
        {"\n\n\n\ninstance =\nflush.ms = 2\n", 5, "instance: value is empty"},
        {"log.level = loud\n", 1, "log.level: 'loud'"},
    };
    struct fixture *f = *state;
    char prefix[PATH_MAX + 16];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(load_text(f, bad[i].text), SHOAL_ECONFIG);
        snprintf(prefix, sizeof(prefix), "%s:%d: ", f->path, bad[i].line);
        if (strncmp(f->err, prefix, strlen(prefix)) || !strstr(f->err, bad[i].want))
            fail_msg("case %zu: \"%s\" is not \"%s%s...\"", i, f->err, prefix, bad[i].want);
    }
}

/* A value too long for its buffer, on a line longer than any fixed line buffer, ends the
 * load there. */
static void test_a_too_long_value_in_the_file_is_refused(void **state)
{
    struct fixture *f = *state;
    static char text[PATH_MAX + 64];
    char prefix[PATH_MAX + 16];

    memcpy(text, "flush.ms = 7\ndata.dir = /", 25);
    memset(text + 25, 'd', PATH_MAX);
    strcpy(text + 25 + PATH_MAX, "\nflush.ms = 8\n");
    assert_int_equal(load_text(f, text), SHOAL_ECONFIG);
    snprintf(prefix, sizeof(prefix), "%s:2: data.dir: ", f->path);
    assert_memory_equal(f->err, prefix, strlen(prefix));
    assert_non_null(strstr(f->err, "longer than 4095 bytes"));
    assert_string_equal(f->cfg.data_dir, "./var/data");
    assert_int_equal(f->cfg.flush_ms, 7); /* the line before stays, the one after is not read */
}

static void test_a_missing_file_or_a_directory_is_refused_by_name(void **state)
{
    struct fixture *f = *state;
    char missing[PATH_MAX];

    snprintf(missing, sizeof(missing), "%s/none.conf", f->dir);
    assert_int_equal(config_load_file(&f->cfg, missing, f->err, sizeof(f->err)), SHOAL_ECONFIG);
    assert_non_null(strstr(f->err, "cannot read config file"));
    assert_non_null(strstr(f->err, missing));
    assert_non_null(strstr(f->err, "No such file or directory"));

    assert_int_equal(config_load_file(&f->cfg, f->dir, f->err, sizeof(f->err)), SHOAL_ECONFIG);
    assert_non_null(strstr(f->err, f->dir));
    assert_non_null(strstr(f->err, "not a regular file"));
}

/* ------------------------------------------------------------------ the command line */

/* Files are read first, in their order; then the other options, in theirs: so the command
 * line wins wherever --config stands, and a later file or option wins over an earlier. A
 * missing --config-optional file is skipped. */
static void test_the_command_line_wins_over_files_and_later_wins_over_earlier(void **state)
{
    struct fixture *f = *state;
    char second[PATH_MAX], missing[PATH_MAX];

    write_text(f->path, "flush.ms = 9\nflush.drop.cache = 0\ninstance = one\n");
    snprintf(second, sizeof(second), "%s/two.conf", f->dir);
    write_text(second, "instance = two\n");
    snprintf(missing, sizeof(missing), "%s/none.conf", f->dir);
    assert_int_equal(PARSE(f, "--flush-ms", "7", "--config", f->path, "--config-optional", second,
                           "--config-optional", missing, "--flush-interval-ms", "3",
                           "--flush-interval-ms=4"),
                     0);
    assert_int_equal(f->cfg.flush_ms, 7);
    assert_int_equal(f->cfg.flush_drop_cache, 0);
    assert_string_equal(f->cfg.instance, "two");
    assert_int_equal(f->cfg.flush_interval_ms, 4);
}

static void test_command_line_mistakes_are_named(void **state)
{
    struct fixture *f = *state;
    char missing[PATH_MAX];

    assert_int_equal(PARSE(f, "--flush-ms", "7", "foo"), SHOAL_ECONFIG);
    assert_string_equal(f->err, "unexpected argument 'foo' (see --help)");
    assert_int_equal(PARSE(f, "--"), SHOAL_ECONFIG);
    assert_string_equal(f->err, "unexpected argument '--' (see --help)");
    assert_int_equal(PARSE(f, "--flush-ms"), SHOAL_ECONFIG);
    assert_string_equal(f->err, "--flush-ms needs a value");
    assert_int_equal(PARSE(f, "--config"), SHOAL_ECONFIG);
    assert_string_equal(f->err, "--config needs a value");
    assert_int_equal(PARSE(f, "--no-such", "1"), SHOAL_ECONFIG);
    assert_string_equal(f->err, "unknown setting 'no.such'");
    assert_int_equal(PARSE(f, "--flush-ms=5x"), SHOAL_ECONFIG);
    assert_string_equal(f->err, "flush.ms: '5x' is not an integer in 0..86400000");
    snprintf(missing, sizeof(missing), "%s/none.conf", f->dir);
    assert_int_equal(PARSE(f, "--config", missing), SHOAL_ECONFIG);
    assert_non_null(strstr(f->err, "cannot read config file"));
}

/* --help and --version print, return 1 (shoald then exits 0) and apply nothing. */
static void test_help_and_version_print_and_apply_nothing(void **state)
{
    struct fixture *f = *state;
    shoald_config_t before = f->cfg;

    assert_int_equal(PARSE(f, "--flush-ms", "7", "--version"), 1);
    assert_string_equal(f->out, "shoald " SHOAL_VERSION_STRING "\n");
    assert_int_equal(PARSE(f, "--flush-ms", "7", "--help"), 1);
    assert_memory_equal(f->out, "usage: shoald ", 14);
    assert_int_equal(PARSE(f, "-h"), 1);
    assert_memory_equal(f->out, "usage: shoald ", 14);
    assert_memory_equal(&f->cfg, &before, sizeof(before));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults_are_the_documented_ones),
        T(test_the_shipped_config_file_loads_and_its_commented_values_are_the_defaults),
        T(test_every_documented_option_is_set_at_both_ends_of_its_range),
        T(test_log_level_takes_its_five_names),
        T(test_allow_gid_takes_a_group_name),
        T(test_max_shm_bytes_takes_bytes_or_minus_one),
        T(test_paths_and_names_take_the_longest_value_that_fits),
        T(test_numbers_outside_their_range_or_malformed_are_refused),
        T(test_unknown_keys_and_groups_are_refused),
        T(test_a_bad_log_level_is_refused_and_changes_nothing),
        T(test_paths_and_names_refuse_empty_too_long_and_odd_values),
        T(test_the_file_skips_comments_blank_lines_and_blanks),
        T(test_a_bad_line_is_named_by_file_and_line),
        T(test_a_too_long_value_in_the_file_is_refused),
        T(test_a_missing_file_or_a_directory_is_refused_by_name),
        T(test_the_command_line_wins_over_files_and_later_wins_over_earlier),
        T(test_command_line_mistakes_are_named),
        T(test_help_and_version_print_and_apply_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
