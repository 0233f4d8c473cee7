/* topic.c - `shoal topic create|list|describe|delete`: topic administration through
 * shoal_topic_*().
 *
 * DESIGN: each command parses and checks its whole command line (names included) before it
 * connects, so a usage error or an invalid name never needs the daemon. `describe` prints
 * the configuration as "key: value" lines, then a table whose columns are as wide as their
 * widest cell, numbers right-aligned under right-aligned headers. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pattern.h"
#include "topic_config.h"

/* ------------------------------------------------------------------ create */

enum {
    OPT_PARTITIONS = CLI_OPT_FIRST,
    OPT_STORAGE,
    OPT_SEGMENT_BYTES,
    OPT_RING_SLOTS,
    OPT_MAX_RECORD_BYTES,
    OPT_SET,
    OPT_PATTERN,
};

#define TOPIC_MAX_SETS 64

/* Split "name=value" at the first '=' (in place). Exits 2 when there is none. */
static void topic_split_set(const cli_t *cli, char *arg, const char **name, const char **value)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        cli_usage_fail(cli, "--set (or --config) takes name=value, not '%s'", arg);
    *eq = '\0';
    *name = arg;
    *value = eq + 1;
}

/* Apply one --set to cfg; a bad name or value is a usage error (status 2), as a bad option
 * value is: it is found before connecting. */
static void topic_apply_set(const cli_t *cli, shoal_topic_config_t *cfg, const char *name,
                            const char *value)
{
    if (shoal_topic_config_set(cfg, name, value) < 0)
        cli_usage_fail(cli, "--set %s=%s: %s", name, value, shoal_errmsg());
}

static uint32_t topic_parse_storage(const cli_t *cli, const char *s)
{
    if (strcmp(s, "disk") == 0)
        return SHOAL_STORAGE_DISK;
    if (strcmp(s, "memory") == 0)
        return SHOAL_STORAGE_MEMORY;
    cli_usage_fail(cli, "invalid value for --storage: '%s' (expected disk or memory)", s);
}

static void topic_parse_create(cli_t *cli, int argc, char **argv, shoal_topic_config_t *cfg)
{
    static const struct option opts[] = {
        {"partitions", required_argument, NULL, OPT_PARTITIONS},
        {"storage", required_argument, NULL, OPT_STORAGE},
        {"segment-bytes", required_argument, NULL, OPT_SEGMENT_BYTES},
        {"ring-slots", required_argument, NULL, OPT_RING_SLOTS},
        {"max-record-bytes", required_argument, NULL, OPT_MAX_RECORD_BYTES},
        {"set", required_argument, NULL, OPT_SET},
        {"config", required_argument, NULL, OPT_SET}, /* kafka-topics' spelling */
        CLI_COMMON_OPTIONS,
        {0},
    };
    int opt;

    shoal_topic_config_init(cfg);
    while ((opt = cli_next_opt(cli, argc, argv, opts)) != -1) {
        if (opt == OPT_PARTITIONS) {
            cfg->partitions =
                (uint32_t)cli_parse_range(cli, "--partitions", optarg, 1, SHOAL_PARTITIONS_MAX);
        } else if (opt == OPT_STORAGE) {
            cfg->storage = topic_parse_storage(cli, optarg);
        } else if (opt == OPT_SEGMENT_BYTES) {
            cfg->segment_bytes = cli_parse_size(cli, "--segment-bytes", optarg, UINT64_MAX);
        } else if (opt == OPT_RING_SLOTS) {
            cfg->ring_slots = (uint32_t)cli_parse_uint(cli, "--ring-slots", optarg, UINT32_MAX);
        } else if (opt == OPT_MAX_RECORD_BYTES) {
            cfg->max_record_bytes =
                (uint32_t)cli_parse_size(cli, "--max-record-bytes", optarg, UINT32_MAX);
        } else if (opt == OPT_SET) {
            const char *name, *value;
            topic_split_set(cli, optarg, &name, &value);
            topic_apply_set(cli, cfg, name, value);
        }
    }
    cli_expect_args(cli, argc, argv, 1);
    /* Values out of range (--segment-bytes 1K) are usage errors too. A small segment with
     * the default record limit passes: shoal_topic_create() lowers the limit to half a
     * segment. */
    if (shoal_topic_config_check(cfg) < 0)
        cli_usage_fail(cli, "%s", shoal_errmsg());
}

int cli_topic_create(cli_t *cli, int argc, char **argv)
{
    shoal_topic_config_t cfg;
    shoal_client_t *client;
    const char *name;
    int rc;

    topic_parse_create(cli, argc, argv, &cfg);
    name = argv[cli->optind];
    if ((rc = cli_check_topic_name(name)) != 0)
        return rc;
    if ((rc = cli_connect(cli, &client)) != 0)
        return rc;
    rc = shoal_topic_create(client, name, &cfg);
    if (rc < 0)
        rc = cli_fail(cli, rc, "create topic '%s'", name);
    shoal_client_close(client);
    return rc;
}

/* ------------------------------------------------------------------ list, delete */

static const struct option topic_plain_opts[] = {CLI_COMMON_OPTIONS, {0}};

/* Print the served and the unserved names merged in order, the latter marked; with a
 * pattern (--pattern), only the names it matches as a group subscription would. */
static void topic_list_print(char **served, size_t ns, char **unserved, size_t nu,
                             const shoal_pattern_t *p, const char *pattern)
{
    size_t i = 0, j = 0, printed = 0;

    while (i < ns || j < nu) {
        bool mine = j == nu || (i < ns && strcmp(served[i], unserved[j]) < 0);
        const char *name = mine ? served[i++] : unserved[j++];
        if (p && !shoal__pattern_match(p, name))
            continue;
        printf(mine ? "%s\n" : "%s (not served: see shoald's log)\n", name);
        printed++;
    }
    if (printed == 0 && p) /* standard output stays one name per line: empty */
        fprintf(stderr, "(no topic matches '%s')\n", pattern);
    else if (printed == 0)
        fputs("(no topics)\n", stderr);
}

int cli_topic_list(cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"pattern", required_argument, NULL, OPT_PATTERN},
        CLI_COMMON_OPTIONS,
        {0},
    };
    shoal_client_t *client;
    shoal_pattern_t *p = NULL;
    const char *pattern = NULL;
    char **names = NULL, **unserved = NULL;
    size_t count = 0, nu = 0;
    int rc;

    while (cli_next_opt(cli, argc, argv, opts) == OPT_PATTERN)
        pattern = optarg;
    cli_expect_args(cli, argc, argv, 0);
    if (pattern && shoal__pattern_compile(pattern, &p) < 0)
        cli_usage_fail(cli, "--pattern: %s", shoal_errmsg());
    if ((rc = cli_connect(cli, &client)) != 0) {
        shoal__pattern_free(p);
        return rc;
    }
    rc = shoal_topic_list(client, &names, &count);
    /* A daemon older than the unserved list refuses the request: it has none to show. */
    if (rc == 0 && (rc = shoal_topic_list_unserved(client, &unserved, &nu)) == SHOAL_EPROTO)
        rc = 0;
    if (rc < 0)
        rc = cli_fail(cli, rc, "list topics");
    else
        topic_list_print(names, count, unserved, nu, p, pattern);
    shoal_topic_list_free(names, count);
    shoal_topic_list_free(unserved, nu);
    shoal_client_close(client);
    shoal__pattern_free(p);
    return rc;
}

int cli_topic_delete(cli_t *cli, int argc, char **argv)
{
    shoal_client_t *client;
    const char *name;
    int rc;

    while (cli_next_opt(cli, argc, argv, topic_plain_opts) != -1)
        ;
    cli_expect_args(cli, argc, argv, 1);
    name = argv[cli->optind];
    if ((rc = cli_check_topic_name(name)) != 0)
        return rc;
    if ((rc = cli_connect(cli, &client)) != 0)
        return rc;
    rc = shoal_topic_delete(client, name);
    if (rc < 0)
        rc = cli_fail(cli, rc, "delete topic '%s'", name);
    shoal_client_close(client);
    return rc;
}

/* ------------------------------------------------------------------ alter */

int cli_topic_alter(cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"set", required_argument, NULL, OPT_SET},
        {"config", required_argument, NULL, OPT_SET}, /* kafka-topics' spelling */
        {"partitions", required_argument, NULL, OPT_PARTITIONS},
        CLI_COMMON_OPTIONS,
        {0},
    };
    const char *names[TOPIC_MAX_SETS], *values[TOPIC_MAX_SETS], *topic;
    shoal_client_t *client;
    size_t n = 0;
    int opt, rc;

    while ((opt = cli_next_opt(cli, argc, argv, opts)) != -1) {
        if (n == TOPIC_MAX_SETS)
            cli_usage_fail(cli, "at most %d --set options", TOPIC_MAX_SETS);
        if (opt == OPT_PARTITIONS) { /* Kafka's kafka-topics --alter --partitions N */
            cli_parse_range(cli, "--partitions", optarg, 1, SHOAL_PARTITIONS_MAX); /* as create */
            names[n] = "partitions";
            values[n] = optarg;
        } else {
            shoal_topic_config_t scratch; /* the name and value alone: the rest is shoald's */
            shoal_topic_config_init(&scratch);
            topic_split_set(cli, optarg, &names[n], &values[n]);
            topic_apply_set(cli, &scratch, names[n], values[n]);
        }
        n++;
    }
    cli_expect_args(cli, argc, argv, 1);
    if (n == 0)
        cli_usage_fail(cli, "alter needs --partitions N or at least one --set name=value");
    topic = argv[cli->optind];
    if ((rc = cli_check_topic_name(topic)) != 0)
        return rc;
    if ((rc = cli_connect(cli, &client)) != 0)
        return rc;
    rc = shoal_topic_alter(client, topic, names, values, n);
    if (rc < 0)
        rc = cli_fail(cli, rc, "alter topic '%s'", topic);
    shoal_client_close(client);
    return rc;
}

/* ------------------------------------------------------------------ describe */

static const char *const describe_headers[] = {
    "PARTITION", "LOG_START", "LOG_END", "FLUSHED", "SHM_BYTES", "DISK_BYTES",
};

static void describe_print_table(const shoal_topic_info_t *info)
{
    cli_table_t t;
    if (cli_table_init(&t, describe_headers, 6, (int)info->config.partitions) < 0)
        return;
    for (int i = 0; i < t.rows; i++) {
        const shoal_partition_info_t *p = &info->partitions[i];
        snprintf(cli_table_cell(&t, i, 0), CLI_CELL_BYTES, "%" PRId32, p->partition);
        snprintf(cli_table_cell(&t, i, 1), CLI_CELL_BYTES, "%" PRId64, p->log_start_offset);
        snprintf(cli_table_cell(&t, i, 2), CLI_CELL_BYTES, "%" PRId64, p->log_end_offset);
        snprintf(cli_table_cell(&t, i, 3), CLI_CELL_BYTES, "%" PRId64, p->flushed_offset);
        snprintf(cli_table_cell(&t, i, 4), CLI_CELL_BYTES, "%" PRIu64, p->shm_bytes);
        snprintf(cli_table_cell(&t, i, 5), CLI_CELL_BYTES, "%" PRIu64, p->disk_bytes);
    }
    cli_table_print(&t);
    cli_table_release(&t);
}

static void describe_print_config(const shoal_topic_info_t *info)
{
    const char *name;
    char value[64];

    printf("%-20s %s\n", "topic", info->name);
    for (size_t i = 0; (name = shoal_topic_setting_name(i)) != NULL; i++)
        if ((info->config.storage != SHOAL_STORAGE_MEMORY || !topic_setting_is_disk_only(name)) &&
            shoal_topic_config_get(&info->config, name, value, sizeof(value)) == 0)
            printf("%-20s %s\n", name, value); /* a memory topic's disk settings: none */
}

int cli_topic_describe(cli_t *cli, int argc, char **argv)
{
    shoal_topic_info_t *info;
    shoal_client_t *client;
    const char *name;
    int rc;

    while (cli_next_opt(cli, argc, argv, topic_plain_opts) != -1)
        ;
    cli_expect_args(cli, argc, argv, 1);
    name = argv[cli->optind];
    if ((rc = cli_check_topic_name(name)) != 0)
        return rc;
    if ((rc = cli_connect(cli, &client)) != 0)
        return rc;
    rc = shoal_topic_describe(client, name, &info);
    if (rc < 0) {
        rc = cli_fail(cli, rc, "describe topic '%s'", name);
    } else {
        describe_print_config(info);
        putchar('\n');
        describe_print_table(info);
        shoal_topic_info_free(info);
    }
    shoal_client_close(client);
    return rc;
}
