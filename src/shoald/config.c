/* config.c - see config.h. Each key is one row of a table: its name, where it is stored,
 * and its range, so the file, the command line and the documentation cannot disagree. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "shoal.h"
#include "util.h"

/* KEY_NEVER: an integer whose -1 means for ever; 0 is refused, since it reads as "at once"
 * (Kafka's offsets.retention.minutes is at least 1) where it used to mean for ever.
 * KEY_CAP: a long whose -1 means no cap; 0 is refused, since it would refuse everything. */
enum key_kind { KEY_PATH, KEY_NAME, KEY_INT, KEY_NEVER, KEY_GROUP, KEY_LEVEL, KEY_CAP };

struct key_def {
    const char *name;
    enum key_kind kind;
    size_t field;
    long min, max;
};

#define F(member) offsetof(shoald_config_t, member)
static const struct key_def keys[] = {
    {"data.dir", KEY_PATH, F(data_dir), 0, 0},
    {"runtime.dir", KEY_PATH, F(runtime_dir), 0, 0},
    {"instance", KEY_NAME, F(instance), 0, 0},
    {"shm.dir", KEY_PATH, F(shm_dir), 0, 0},
    {"flush.interval.ms", KEY_INT, F(flush_interval_ms), 1, 10000},
    {"flush.ms", KEY_INT, F(flush_ms), 0, 86400000},
    {"flush.drop.cache", KEY_INT, F(flush_drop_cache), 0, 1},
    {"allow.gid", KEY_GROUP, F(allow_gid), -1, 2147483647},
    {"log.level", KEY_LEVEL, F(log_level), 0, 0},
    {"log.file", KEY_PATH, F(log_file), 0, 0},
    {"offsets.retention.minutes", KEY_NEVER, F(offsets_retention_minutes), -1, 2147483647},
    {"offsets.retention.ms", KEY_NEVER, F(offsets_retention_ms), -1, 2147483647},
    {"offsets.retention.check.interval.ms", KEY_INT, F(offsets_retention_check_ms), 1, 2147483647},
    {"group.max.session.timeout.ms", KEY_INT, F(group_max_session_timeout_ms), 1, 2147483647},
    {"max.shm.bytes", KEY_CAP, F(max_shm_bytes), -1, LONG_MAX},
};
#undef F

void config_init(shoald_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    strcpy(cfg->data_dir, "./var/data");
    strcpy(cfg->runtime_dir, "./var/run");
    strcpy(cfg->instance, "shoal");
    strcpy(cfg->shm_dir, "/dev/shm");
    cfg->flush_interval_ms = 5;
    cfg->flush_ms = 1000;
    cfg->flush_drop_cache = 1;
    cfg->allow_gid = -1;
    cfg->log_level = LOG_INFO;
    cfg->offsets_retention_minutes = 7 * 24 * 60; /* Kafka's default */
    cfg->offsets_retention_ms = -1;
    cfg->offsets_retention_check_ms = 600000;
    cfg->group_max_session_timeout_ms = 1800000; /* Kafka's default, 30 min */
    cfg->max_shm_bytes = -1;
}

int64_t config_offsets_retention_ms(const shoald_config_t *cfg)
{
    if (cfg->offsets_retention_ms > 0)
        return cfg->offsets_retention_ms;
    return cfg->offsets_retention_minutes > 0 ? cfg->offsets_retention_minutes * 60000LL : -1;
}

static int set_int(void *dst, const struct key_def *k, const char *v, char *err, size_t cap)
{
    char *end;
    long n;
    errno = 0;
    n = strtol(v, &end, 10);
    /* strtol() skips leading blanks, and trailing ones are refused: take neither. The file
     * trims both sides of its values; only the command line hands blanks in. */
    if (isspace((unsigned char)*v) || errno || end == v || *end || n < k->min || n > k->max) {
        snprintf(err, cap, "%s: '%s' is not an integer in %ld..%ld", k->name, v, k->min, k->max);
        return SHOAL_ECONFIG;
    }
    if (k->kind == KEY_NEVER && n == 0) {
        snprintf(err, cap,
                 "%s: 0 is not a time: -1 keeps committed offsets for ever, 1 or more "
                 "is how long",
                 k->name);
        return SHOAL_ECONFIG;
    }
    if (k->kind == KEY_CAP && n == 0) {
        snprintf(err, cap, "%s: 0 would refuse everything: -1 sets no cap, 1 or more is the cap",
                 k->name);
        return SHOAL_ECONFIG;
    }
    if (k->kind == KEY_GROUP || k->kind == KEY_CAP)
        *(long *)dst = n;
    else
        *(int *)dst = (int)n;
    return 0;
}

/* A group: a gid (digits, or -1), else a name (which may begin with a digit) looked up in
 * the group database at every load, so a reload sees a group created since. An entry that
 * lists many members takes a larger buffer than the first try's (ERANGE). */
static int set_group(void *dst, const struct key_def *k, const char *v, char *err, size_t cap)
{
    struct group gr, *res = NULL;
    size_t len = 4096;
    char *buf = NULL;
    int rc = ERANGE;

    if (*v == '-' || (*v && strspn(v, "0123456789") == strlen(v)))
        return set_int(dst, k, v, err, cap);
    while (rc == ERANGE && len <= (1u << 24)) {
        char *more = shoal__realloc(buf, len *= 2);
        if (!more)
            break;
        buf = more;
        rc = getgrnam_r(v, &gr, buf, len, &res);
    }
    if (rc == 0 && res)
        *(long *)dst = (long)res->gr_gid;
    else if (rc == 0 || rc == ENOENT)
        snprintf(err, cap, "%s: no group named '%s'", k->name, v);
    else
        snprintf(err, cap, "%s: cannot look group '%s' up: %s", k->name, v,
                 strerror(rc == ERANGE ? ENOMEM : rc));
    shoal__free(buf);
    return rc == 0 && res ? 0 : SHOAL_ECONFIG;
}

static int set_name(char *dst, size_t dst_cap, const struct key_def *k, const char *v, char *err,
                    size_t cap)
{
    size_t n = strlen(v);
    if (n == 0 || n >= dst_cap) {
        snprintf(err, cap, "%s: value is empty or longer than %zu bytes", k->name, dst_cap - 1);
        return SHOAL_ECONFIG;
    }
    if (k->kind == KEY_NAME && strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789._-") != n) {
        snprintf(err, cap, "%s: '%s' may hold only [a-zA-Z0-9._-]", k->name, v);
        return SHOAL_ECONFIG;
    }
    memcpy(dst, v, n + 1);
    return 0;
}

/* Parsed before it is stored, so that a refused name leaves the level as it was. */
static int set_level(int *dst, const char *v, char *err, size_t cap)
{
    int level = log_level_parse(v);
    if (level < 0) {
        snprintf(err, cap, "log.level: '%s' is not error|warning|notice|info|debug", v);
        return SHOAL_ECONFIG;
    }
    *dst = level;
    return 0;
}

int config_set(shoald_config_t *cfg, const char *key, const char *value, char *err, size_t cap)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const struct key_def *k = &keys[i];
        void *dst = (char *)cfg + k->field;
        if (strcmp(k->name, key))
            continue;
        switch (k->kind) {
        case KEY_INT:
        case KEY_NEVER:
        case KEY_CAP:
            return set_int(dst, k, value, err, cap);
        case KEY_GROUP:
            return set_group(dst, k, value, err, cap);
        case KEY_LEVEL:
            return set_level(dst, value, err, cap);
        default:
            return set_name(dst, k->kind == KEY_NAME ? sizeof(cfg->instance) : PATH_MAX, k, value,
                            err, cap);
        }
    }
    snprintf(err, cap, "unknown setting '%s'", key);
    return SHOAL_ECONFIG;
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* One line: '#' starts a comment; blank lines are skipped; else "key = value". */
static int config_line(shoald_config_t *cfg, char *line, const char *where, char *err, size_t cap)
{
    char *hash = strchr(line, '#'), *eq, *s;
    int rc;

    if (hash)
        *hash = '\0';
    s = trim(line);
    if (!*s)
        return 0;
    if (!(eq = strchr(s, '='))) {
        snprintf(err, cap, "%s: expected 'key = value'", where);
        return SHOAL_ECONFIG;
    }
    *eq = '\0';
    if ((rc = config_set(cfg, trim(s), trim(eq + 1), err, cap)) < 0) {
        char inner[256];
        snprintf(inner, sizeof(inner), "%s", err);
        snprintf(err, cap, "%s: %s", where, inner);
    }
    return rc;
}

int config_load_file(shoald_config_t *cfg, const char *path, char *err, size_t cap)
{
    int fd = shoal__open_regular(path, O_RDONLY, 0), lineno = 0, rc = 0;
    char *line = NULL, where[PATH_MAX + 16];
    size_t line_cap = 0;
    FILE *f;

    if (fd < 0 || !(f = fdopen(fd, "r"))) {
        snprintf(err, cap, "cannot read config file %s: %s", path,
                 fd < 0 ? shoal_errmsg() : strerror(errno));
        if (fd >= 0)
            close(fd);
        return SHOAL_ECONFIG;
    }
    /* getline: a line of any length is one line, so a long comment stays a comment */
    while (rc == 0 && getline(&line, &line_cap, f) >= 0) {
        snprintf(where, sizeof(where), "%s:%d", path, ++lineno);
        rc = config_line(cfg, line, where, err, cap);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, cap, "cannot read config file %s: %s", path, strerror(errno));
        rc = SHOAL_ECONFIG;
    }
    free(line);
    fclose(f);
    return rc;
}

static void usage(void)
{
    printf("usage: shoald [--config FILE] [--data-dir DIR] [--runtime-dir DIR] "
           "[--instance NAME]\n"
           "              [--shm-dir DIR] [--flush-interval-ms N] [--flush-ms N]\n"
           "              [--flush-drop-cache 0|1] [--allow-gid GID]\n"
           "              [--log-level LEVEL] [--log-file FILE] [--config-optional FILE]\n"
           "              [--KEY VALUE ...] [--help] [--version]\n"
           "Every key of the config file may be given as --key value or --key=value, with '-'\n"
           "or '.' between its words (man shoald lists them).\n"
           "--config-optional FILE is read like --config when FILE exists.\n"
           "The control socket is RUNTIME_DIR/shoald.sock.\n");
}

/* "--data-dir" -> "data.dir"; an '=' splits off an inline value. */
static void arg_key(const char *arg, char *key, size_t cap, const char **inline_value)
{
    size_t i = 0;
    *inline_value = NULL;
    for (arg += 2; *arg && i + 1 < cap; arg++) {
        if (*arg == '=') {
            *inline_value = arg + 1;
            break;
        }
        key[i++] = *arg == '-' ? '.' : *arg;
    }
    key[i] = '\0';
}

/* One pass over argv: pass 0 loads --config files, pass 1 applies the other keys, so the
 * command line wins over the file wherever --config stands. */
static int config_pass(shoald_config_t *cfg, int argc, char **argv, int pass, char *err, size_t cap)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *value;
        char key[128];
        int rc = 0;

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 1;
        }
        if (!strcmp(a, "--version")) {
            printf("shoald %s\n", SHOAL_VERSION_STRING);
            return 1;
        }
        if (strncmp(a, "--", 2) || !a[2]) {
            snprintf(err, cap, "unexpected argument '%s' (see --help)", a);
            return SHOAL_ECONFIG;
        }
        arg_key(a, key, sizeof(key), &value);
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, cap, "%s needs a value", a);
                return SHOAL_ECONFIG;
            }
            value = argv[++i];
        }
        if (!strcmp(key, "config") || !strcmp(key, "config.optional")) {
            if (pass == 0 && (key[6] == '\0' || access(value, F_OK) == 0))
                rc = config_load_file(cfg, value, err, cap);
        } else if (pass == 1) {
            rc = config_set(cfg, key, value, err, cap);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

int config_parse_args(shoald_config_t *cfg, int argc, char **argv, char *err, size_t cap)
{
    int rc = config_pass(cfg, argc, argv, 0, err, cap);
    return rc != 0 ? rc : config_pass(cfg, argc, argv, 1, err, cap);
}
