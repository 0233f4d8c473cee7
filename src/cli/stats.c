/* stats.c - `shoal stats TOPIC [--partition N]`: each partition's counters, read from
 * shared memory without touching the data path (shoal_partition_stats). */
#include <inttypes.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>

#include "cli.h"

enum { OPT_PARTITION = CLI_OPT_FIRST };

static const char *const stats_headers[] = {
    "PARTITION", "LOG_START", "LOG_END", "FLUSHED", "RECORDS", "BATCHES", "BYTES",
    "SLOTS",     "READERS",   "WAITING", "FULL",    "REPAIRS", "FSYNCS",  "DISK_ERROR",
};
#define STATS_COLS ((int)(sizeof(stats_headers) / sizeof(stats_headers[0])))

static void stats_fill_row(cli_table_t *t, int row, const shoal_partition_stats_t *s)
{
    char *c[STATS_COLS];
    for (int i = 0; i < STATS_COLS; i++)
        c[i] = cli_table_cell(t, row, i);
    snprintf(c[0], CLI_CELL_BYTES, "%" PRId32, s->partition);
    snprintf(c[1], CLI_CELL_BYTES, "%" PRId64, s->log_start_offset);
    snprintf(c[2], CLI_CELL_BYTES, "%" PRId64, s->log_end_offset);
    snprintf(c[3], CLI_CELL_BYTES, "%" PRId64, s->flushed_offset);
    snprintf(c[4], CLI_CELL_BYTES, "%" PRIu64, s->appended_records);
    snprintf(c[5], CLI_CELL_BYTES, "%" PRIu64, s->appended_batches);
    snprintf(c[6], CLI_CELL_BYTES, "%" PRIu64, s->appended_bytes);
    snprintf(c[7], CLI_CELL_BYTES, "%" PRIu32 "/%" PRIu32, s->live_slots, s->ring_slots);
    snprintf(c[8], CLI_CELL_BYTES, "%" PRIu32, s->readers);
    snprintf(c[9], CLI_CELL_BYTES, "%" PRIu32, s->waiters);
    snprintf(c[10], CLI_CELL_BYTES, "%" PRIu64, s->full_events);
    snprintf(c[11], CLI_CELL_BYTES, "%" PRIu64, s->lock_recoveries);
    snprintf(c[12], CLI_CELL_BYTES, "%" PRIu64, s->fsyncs);
    snprintf(c[13], CLI_CELL_BYTES, "%s", s->flush_error ? shoal_err_name(s->flush_error) : "-");
}

/* A partition shoald stopped (its ring damaged: its counters cannot be read): what the
 * daemon knows of it, the counters as "-", STOPPED where a disk error would be. */
static void stats_fill_stopped(cli_table_t *t, int row, const shoal_partition_info_t *pi)
{
    shoal_partition_stats_t s = {.partition = pi->partition,
                                 .log_start_offset = pi->log_start_offset,
                                 .log_end_offset = pi->log_end_offset,
                                 .flushed_offset = pi->flushed_offset};

    stats_fill_row(t, row, &s);
    for (int i = 4; i < STATS_COLS - 1; i++)
        snprintf(cli_table_cell(t, row, i), CLI_CELL_BYTES, "-");
    snprintf(cli_table_cell(t, row, STATS_COLS - 1), CLI_CELL_BYTES, "STOPPED");
}

/* Fill one row per partition (or only `only`), one shoald stopped included (said after
 * the table: status 1); returns the exit status. */
static int stats_collect(cli_t *cli, shoal_client_t *client, const char *topic, int64_t only)
{
    shoal_topic_info_t *info;
    shoal_partition_stats_t s;
    cli_table_t t;
    char stopped[512] = "";
    int rc = shoal_topic_describe(client, topic, &info), rows;

    if (rc < 0)
        return cli_fail(cli, rc, "stats for topic '%s'", topic);
    rows = only >= 0 ? 1 : (int)info->config.partitions;
    if (only >= (int64_t)info->config.partitions) {
        fprintf(stderr, "shoal: stats for '%s' partition %" PRId64 ": %s (the topic has %u)\n",
                topic, only, shoal_strerror(SHOAL_ENOPARTITION), info->config.partitions);
        shoal_topic_info_free(info);
        return CLI_EXIT_FAIL;
    }
    if (cli_table_init(&t, stats_headers, STATS_COLS, rows) < 0) {
        shoal_topic_info_free(info);
        return cli_fail(cli, -ENOMEM, "stats");
    }
    for (int i = 0; i < rows && rc == 0; i++) {
        int32_t p = only >= 0 ? (int32_t)only : i;
        rc = shoal_partition_stats(client, topic, p, &s);
        if (rc == SHOAL_ECORRUPT) {
            stats_fill_stopped(&t, i, &info->partitions[p]);
            snprintf(stopped, sizeof(stopped), "%s", shoal_errmsg());
            rc = 0;
        } else if (rc < 0) {
            rc = cli_fail(cli, rc, "stats for '%s' partition %d", topic, p);
        } else {
            stats_fill_row(&t, i, &s);
        }
    }
    shoal_topic_info_free(info);
    if (rc == 0)
        cli_table_print(&t);
    cli_table_release(&t);
    if (rc == 0 && stopped[0]) {
        fprintf(stderr, "shoal: stats for '%s': %s\n", topic, stopped);
        rc = CLI_EXIT_FAIL;
    }
    return rc;
}

int cli_stats(cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"partition", required_argument, NULL, OPT_PARTITION},
        CLI_COMMON_OPTIONS,
        {0},
    };
    shoal_client_t *client;
    int64_t only = -1;
    const char *topic;
    int opt, rc;

    while ((opt = cli_next_opt(cli, argc, argv, opts)) != -1)
        if (opt == OPT_PARTITION)
            only = (int64_t)cli_parse_uint(cli, "--partition", optarg, SHOAL_PARTITIONS_MAX - 1);
    cli_expect_args(cli, argc, argv, 1);
    topic = argv[cli->optind];
    if ((rc = cli_check_topic_name(topic)) != 0)
        return rc;
    if ((rc = cli_connect(cli, &client)) != 0)
        return rc;
    rc = stats_collect(cli, client, topic, only);
    shoal_client_close(client);
    return rc;
}
