/* consume.c - `shoal consume`: print a topic's records through a --format template.
 *
 * DESIGN: one consumer is assigned every partition (or the one asked for) and positioned
 * with shoal_consumer_seek() (--from-timestamp is SHOAL_SEEK_TIMESTAMP). Each shoal_poll()
 * batch is rendered into stdout's buffer and flushed as a whole, so piped output is timely
 * without a write per record. The records are views valid only until the next poll, so a
 * batch is fully written before polling again.
 *
 * Polls sleep at most CONSUME_WAIT_SLICE_MS at a time even when following for ever: a
 * signal that lands between our check of cli_stop_signal and the poll's sleep would
 * otherwise go unnoticed until the next record. --timeout-ms is measured from the last
 * record (or from the start) on the monotonic clock. SIGINT, SIGTERM and SIGPIPE (or
 * EPIPE from a write) end the loop, after which everything is flushed and closed. A batch
 * the output did not take puts its partitions' positions back at its first records
 * (consume_unwrite), so that a group's commit at close leaves them to be read again.
 *
 * A poll that finds records gone (SHOAL_EOFFSET: overwritten in a memory topic, or a segment
 * lost from the middle of a disk log) is a warning while the position moves on past them,
 * and a failure (status 1) when the same gap comes back. A damaged batch (SHOAL_ECORRUPT) is
 * a failure at once: the position does not pass it, and the library says so only once (its
 * later polls pass over the partition as caught up), so waiting on would never end, or end
 * at --timeout-ms with status 0 and the records after it unread. A partition shoald stopped
 * (its shared ring damaged: left out of the assignment, or stopped while read) is a warning:
 * the other partitions are read on. So is a topic deleted under --pattern: the group's next
 * rebalance takes it away, and the pattern's other topics stay.
 *
 * With --group, a daemon restart is a warning: the group consumer reconnects and rejoins
 * by itself, and the partitions resume from their committed offsets; its first assignment
 * after that says shoald is back. --timeout-ms counts
 * from the member's first assignment (joining takes a moment; before it, the wait is
 * CONSUME_JOIN_WAIT_MS at least), then from the last record. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "format.h"
#include "ring.h"
#include "timearg.h"

#define CONSUME_BATCH         256
#define CONSUME_WAIT_SLICE_MS 500
#define CONSUME_JOIN_WAIT_MS  10000

enum {
    OPT_PARTITION = CLI_OPT_FIRST,
    OPT_FROM_BEGINNING,
    OPT_OFFSET,
    OPT_MAX_MESSAGES,
    OPT_TIMEOUT_MS,
    OPT_FORMAT,
    OPT_FROM_TIMESTAMP,
    OPT_GROUP,
    OPT_PATTERN,
    OPT_NULL_MARKER,
};

typedef struct consume {
    const cli_t *cli;
    const char *topic;
    int32_t partition;    /* -1: every partition */
    shoal_seek_t whence;  /* SHOAL_SEEK_END unless asked otherwise */
    int64_t offset;       /* for SHOAL_SEEK_OFFSET; ms for SHOAL_SEEK_TIMESTAMP */
    int64_t max_messages; /* -1: no limit */
    int64_t timeout_ms;   /* -1: follow for ever */
    const char *format;
    const char *null_marker; /* --null-marker: printed for a null key or value, or NULL */
    const char *group;       /* --group: join this consumer group instead of reading everything */
    bool pattern;            /* --pattern: topic is a pattern the group subscribes to */
    shoal_client_t *client;
    shoal_consumer_t *consumer;
    FILE *text;          /* one poll's records, formatted (open_memstream) ... */
    char *text_buf;      /* ... into this buffer, */
    size_t text_len;     /* of this many bytes after each fflush */
    int64_t count;       /* records printed */
    char last_gone[512]; /* the detail of the last SHOAL_EOFFSET, or "" */
    bool away;           /* --group: the daemon is away (said once) */
    bool rejoining;      /* --group: it was away; its next assignment says it is back */
    bool assigned;       /* --group: the member was assigned once (consume_assigned) */
    bool restart_clock;  /* --timeout-ms counts from now: the first assignment came */
} consume_t;

/* ------------------------------------------------------------------ options */

/* Where to start: the options that choose it exclude each other (repeating one is fine). */
static void consume_set_start(consume_t *cs, cli_t *cli, shoal_seek_t whence)
{
    if (cs->whence != SHOAL_SEEK_END && cs->whence != whence)
        cli_usage_fail(cli, "--from-beginning, --offset and --from-timestamp exclude each other");
    cs->whence = whence;
}

static void consume_parse_option(consume_t *cs, cli_t *cli, int opt, const char *arg)
{
    char err[128];

    if (opt == OPT_PARTITION) {
        cs->partition = (int32_t)cli_parse_uint(cli, "--partition", arg, INT32_MAX);
    } else if (opt == OPT_FROM_BEGINNING) {
        consume_set_start(cs, cli, SHOAL_SEEK_BEGINNING);
    } else if (opt == OPT_OFFSET) {
        consume_set_start(cs, cli, SHOAL_SEEK_OFFSET);
        cs->offset = (int64_t)cli_parse_uint(cli, "--offset", arg, INT64_MAX);
    } else if (opt == OPT_FROM_TIMESTAMP) {
        consume_set_start(cs, cli, SHOAL_SEEK_TIMESTAMP);
        if (cli_parse_datetime_ms(arg, &cs->offset) < 0)
            cli_usage_fail(cli, "invalid --from-timestamp '%s': %s", arg, cli_time_error());
    } else if (opt == OPT_MAX_MESSAGES) {
        cs->max_messages = (int64_t)cli_parse_uint(cli, "--max-messages", arg, INT64_MAX);
    } else if (opt == OPT_TIMEOUT_MS) {
        cs->timeout_ms = (int64_t)cli_parse_uint(cli, "--timeout-ms", arg, INT32_MAX);
    } else if (opt == OPT_GROUP) {
        cs->group = arg;
    } else if (opt == OPT_PATTERN) {
        cs->pattern = true;
    } else if (opt == OPT_NULL_MARKER) {
        cs->null_marker = arg;
    } else if (opt == OPT_FORMAT) {
        if (cli_format_check(arg, err, sizeof(err)) != 0)
            cli_usage_fail(cli, "invalid --format '%s': %s", arg, err);
        cs->format = arg;
    }
}

static void consume_parse(cli_t *cli, int argc, char **argv, consume_t *cs)
{
    static const struct option opts[] = {
        {"partition", required_argument, NULL, OPT_PARTITION},
        {"from-beginning", no_argument, NULL, OPT_FROM_BEGINNING},
        {"offset", required_argument, NULL, OPT_OFFSET},
        {"max-messages", required_argument, NULL, OPT_MAX_MESSAGES},
        {"timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"from-timestamp", required_argument, NULL, OPT_FROM_TIMESTAMP},
        {"group", required_argument, NULL, OPT_GROUP},
        {"pattern", no_argument, NULL, OPT_PATTERN},
        {"null-marker", required_argument, NULL, OPT_NULL_MARKER},
        CLI_COMMON_OPTIONS,
        {0},
    };
    int opt;

    while ((opt = cli_next_opt(cli, argc, argv, opts)) != -1)
        consume_parse_option(cs, cli, opt, optarg);
    cli_expect_args(cli, argc, argv, 1);
    cs->topic = argv[cli->optind];
    if (cs->group && (cs->partition >= 0 || cs->whence == SHOAL_SEEK_OFFSET ||
                      cs->whence == SHOAL_SEEK_TIMESTAMP))
        cli_usage_fail(cli, "--group shares the partitions itself and starts at its committed "
                            "offsets: no --partition, --offset or --from-timestamp");
    if (cs->pattern && !cs->group)
        cli_usage_fail(cli, "--pattern subscribes a group to the topics it matches: it needs "
                            "--group");
}

/* ------------------------------------------------------------------ loop */

static int64_t consume_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How long the next poll may sleep: a slice, cut short by the --timeout-ms deadline. */
static int consume_wait_ms(const consume_t *cs, int64_t deadline)
{
    int64_t left;

    if (cs->timeout_ms < 0)
        return CONSUME_WAIT_SLICE_MS;
    left = deadline - consume_now_ms();
    if (left <= 0)
        return 0;
    return left < CONSUME_WAIT_SLICE_MS ? (int)left : CONSUME_WAIT_SLICE_MS;
}

/* The output did not take recs[0..n) (all, or some: which is not known): put each
 * partition's position back at its first record there, so that a group commits none of
 * them at close (they are read again: at least once). */
static void consume_unwrite(consume_t *cs, const shoal_record_t *recs, int n)
{
    for (int i = 0; i < n; i++) {
        bool first = true;
        for (int k = 0; k < i && first; k++)
            first = recs[k].partition != recs[i].partition || strcmp(recs[k].topic, recs[i].topic);
        if (first)
            (void)shoal_consumer_seek(cs->consumer, recs[i].topic, recs[i].partition,
                                      SHOAL_SEEK_OFFSET, recs[i].offset);
    }
}

/* Print one poll's records and flush them: formatted in memory first, then the views let
 * go, so that a slow reader of the output holds no producer back while the write blocks.
 * Returns 0, 1 after reporting a failure, or -1 when the output is gone (EPIPE): a clean
 * stop. */
static int consume_print(consume_t *cs, const shoal_record_t *recs, int n)
{
    int rc = 0;

    rewind(cs->text);
    for (int i = 0; i < n && rc == 0; i++)
        if ((rc = cli_format_record(cs->text, cs->format, cs->null_marker, &recs[i])) < 0)
            rc = cli_fail(cs->cli, rc, "consume '%s' partition %d offset %lld", recs[i].topic,
                          (int)recs[i].partition, (long long)recs[i].offset);
    if (rc == 0 && fflush(cs->text) != 0)
        rc = cli_fail(cs->cli, -errno, "consume '%s': formatting", cs->topic);
    if (rc != 0) {
        consume_unwrite(cs, recs, n);
        return rc;
    }
    shoal_consumer_release(cs->consumer);
    if (fwrite(cs->text_buf, 1, cs->text_len, stdout) == cs->text_len && fflush(stdout) == 0 &&
        !ferror(stdout)) {
        cs->count += n;
        return 0;
    }
    int err = errno;
    consume_unwrite(cs, recs, n);
    if (err == EPIPE || cli_stop_signal == SIGPIPE)
        return -1;
    fprintf(stderr, "shoal: consume '%s': writing the output: %s\n", cs->topic, strerror(err));
    return CLI_EXIT_FAIL;
}

/* A poll said SHOAL_EOFFSET (rc): records at the position are gone (a memory topic
 * overwrote them, or a disk log lacks them), the position moved on, and the detail names
 * where; the same detail twice in a row means it did not move, and polling again would only
 * repeat it. Returns 0 to go on, or 1 after reporting that it cannot. */
static int consume_records_gone(consume_t *cs, int rc)
{
    const char *detail = shoal_errmsg();

    if (strcmp(detail, cs->last_gone) == 0)
        return cli_fail(cs->cli, rc, "consume '%s' cannot go on", cs->topic);
    fprintf(stderr, "shoal: warning: %s\n", detail);
    snprintf(cs->last_gone, sizeof(cs->last_gone), "%s", detail);
    return 0;
}

/* --group: the daemon went away (SHOAL_ECLOSED: the poll that found the connection gone;
 * SHOAL_ENODAEMON: while nothing listens). Said once an absence; the consumer rejoins by
 * itself once the daemon is back. */
static int consume_daemon_away(consume_t *cs)
{
    if (!cs->away && !cs->rejoining)
        fprintf(stderr, "shoal: warning: consume '%s': %s; waiting for shoald to come back\n",
                cs->topic, shoal_errmsg());
    cs->away = cs->rejoining = true;
    return 0;
}

/* How many records the next poll may return: a batch, or what --max-messages leaves. */
static size_t consume_poll_max(const consume_t *cs)
{
    if (cs->max_messages >= 0 && (uint64_t)(cs->max_messages - cs->count) < CONSUME_BATCH)
        return (size_t)(cs->max_messages - cs->count);
    return CONSUME_BATCH;
}

/* The end of --timeout-ms: a member that never had an assignment says so (its group is
 * stuck in a rebalance: a member that does not rejoin holds it up to its max poll
 * interval), rather than end as if nothing had come. Status 0 all the same. */
static int consume_never_assigned(const consume_t *cs)
{
    if (cs->group && !cs->assigned)
        fprintf(stderr,
                "shoal: warning: consume '%s': group %s gave this member no assignment before "
                "the wait ended: a rebalance is still under way ('shoal group describe %s' "
                "shows its state)\n",
                cs->topic, cs->group, cs->group);
    return 0;
}

/* Poll and print until a signal, --max-messages, or --timeout-ms without a record, which
 * every turn of the loop checks, whatever the poll returned. */
static int consume_loop(consume_t *cs)
{
    shoal_record_t recs[CONSUME_BATCH];
    int64_t deadline = consume_now_ms() + cs->timeout_ms;

    if (cs->group && cs->timeout_ms < CONSUME_JOIN_WAIT_MS) /* for the assignment */
        deadline = consume_now_ms() + CONSUME_JOIN_WAIT_MS;

    while (!cli_stop_signal) {
        int n, rc = 0;

        if (cs->max_messages >= 0 && cs->count >= cs->max_messages)
            return 0;
        n = shoal_poll(cs->consumer, recs, consume_poll_max(cs), consume_wait_ms(cs, deadline));
        if (n == SHOAL_EOFFSET)
            rc = consume_records_gone(cs, n);
        else if ((n == SHOAL_ECORRUPT && strstr(shoal_errmsg(), RING_STOPPED_MARK)) ||
                 (n == SHOAL_ENOTOPIC && cs->pattern)) /* a rebalance lets it go */
            fprintf(stderr, "shoal: warning: consume '%s': %s\n", cs->topic, shoal_errmsg());
        else if (n == SHOAL_ECORRUPT)
            rc = cli_fail(cs->cli, n, "consume '%s' cannot go on past a damaged batch", cs->topic);
        else if (cs->group && (n == SHOAL_ECLOSED || n == SHOAL_ENODAEMON))
            rc = consume_daemon_away(cs);
        else if (n < 0 && n != -EINTR)
            rc = cli_fail(cs->cli, n, "consume '%s'", cs->topic);
        else if (n > 0)
            rc = consume_print(cs, recs, n);
        if (rc != 0)
            return rc < 0 ? 0 : rc;
        cs->away &= n < 0;
        if (n > 0 || cs->restart_clock)
            deadline = consume_now_ms() + cs->timeout_ms;
        else if (cs->timeout_ms >= 0 && consume_now_ms() >= deadline)
            return consume_never_assigned(cs);
        cs->restart_clock = false;
    }
    return 0;
}

/* ------------------------------------------------------------------ command */

/* A start outside partition p's log: past its end (the library reads from the end) or, on
 * a disk topic, before its start (older records deleted by retention or compaction: it
 * reads from the start; a memory topic's poll says what was overwritten). Say so, rather
 * than wait there as if it were read, or skip records without a word. */
static void consume_warn_outside(const shoal_topic_info_t *info, int32_t p, const char *what,
                                 int64_t pos)
{
    const shoal_partition_info_t *pi = &info->partitions[p];

    if (pos > pi->log_end_offset)
        fprintf(stderr,
                "shoal: warning: consume '%s': %s %lld is past the end of partition %d (%lld): "
                "reading from the end\n",
                info->name, what, (long long)pos, (int)p, (long long)pi->log_end_offset);
    else if (pos < pi->log_start_offset && info->config.storage == SHOAL_STORAGE_DISK)
        fprintf(stderr,
                "shoal: warning: consume '%s': %s %lld is before the start of partition %d "
                "(%lld: older records were deleted by retention): reading from the start\n",
                info->name, what, (long long)pos, (int)p, (long long)pi->log_start_offset);
}

/* on_assigned: the first assignment starts --timeout-ms, the first after shoald was away
 * says it is back; a committed offset outside the log is said (consume_warn_outside). */
static void consume_assigned(void *arg, shoal_consumer_t *c, const shoal_topic_partition_t *tps,
                             size_t n)
{
    consume_t *cs = arg;
    shoal_topic_info_t *info = NULL;

    if (cs->rejoining)
        fprintf(stderr, "shoal: consume '%s': shoald is back; group %s assigned %zu partition%s\n",
                cs->topic, cs->group, n, n == 1 ? "" : "s");
    cs->rejoining = false;
    cs->restart_clock = !cs->assigned;
    cs->assigned = true;
    for (size_t i = 0; i < n; i++) { /* one describe for each run of one topic */
        if (info && strcmp(info->name, tps[i].topic)) {
            shoal_topic_info_free(info);
            info = NULL;
        }
        if (!info && shoal_topic_describe(cs->client, tps[i].topic, &info) < 0) {
            info = NULL;
            continue;
        }
        if (tps[i].partition >= 0 && (uint32_t)tps[i].partition < info->config.partitions)
            consume_warn_outside(info, tps[i].partition, "the group's committed offset",
                                 shoal_consumer_position(c, tps[i].topic, tps[i].partition));
    }
    shoal_topic_info_free(info);
}

/* Join the group: partitions come from the coordinator; without a committed offset a
 * partition starts at its log end, or at its log start with --from-beginning. Offsets are
 * auto-committed and committed once more when the consumer closes. */
static int consume_open_group(consume_t *cs, shoal_client_t *client)
{
    shoal_consumer_options_t o;
    const char *topics[] = {cs->topic};
    shoal_topic_info_t *info = NULL;
    int rc;

    shoal_consumer_options_init(&o);
    o.group_id = cs->group;
    o.client_id = "shoal-cli";
    o.on_assigned = consume_assigned;
    o.cb_arg = cs;
    o.auto_offset_reset = cs->whence == SHOAL_SEEK_BEGINNING ? SHOAL_OFFSET_RESET_EARLIEST
                                                             : SHOAL_OFFSET_RESET_LATEST;
    if ((rc = shoal_consumer_open(client, &o, &cs->consumer)) < 0)
        return cli_fail(cs->cli, rc, "consume '%s' in group '%s'", cs->topic, cs->group);
    if (cs->pattern)
        rc = shoal_consumer_subscribe_pattern(cs->consumer, cs->topic);
    else
        rc = shoal_consumer_subscribe(cs->consumer, topics, 1);
    if (rc < 0)
        return cli_fail(cs->cli, rc, "consume '%s' in group '%s'", cs->topic, cs->group);
    if (cs->pattern)
        return 0;
    if (shoal_topic_describe(client, cs->topic, &info) == SHOAL_ENOTOPIC)
        fprintf(stderr,
                "shoal: warning: consume '%s' in group '%s': no topic '%s' (yet): the group "
                "waits for it to be created\n",
                cs->topic, cs->group, cs->topic);
    else if (info)
        shoal_topic_info_free(info);
    return 0;
}

/* --offset outside a partition's log (consume_warn_outside). */
static void consume_warn_offset(const consume_t *cs, shoal_client_t *client)
{
    shoal_topic_info_t *info;

    if (shoal_topic_describe(client, cs->topic, &info) < 0)
        return;
    for (uint32_t p = 0; p < info->config.partitions; p++)
        if (cs->partition < 0 || (uint32_t)cs->partition == p)
            consume_warn_outside(info, (int32_t)p, "--offset", cs->offset);
    shoal_topic_info_free(info);
}

/* Assign the partitions and seek. A start the user chose (an offset, the beginning, a
 * time) that a memory topic has overwritten continues at the oldest record left, as close
 * to it as there is; only the default start, the end, continues at the end. */
static int consume_open(consume_t *cs, shoal_client_t *client)
{
    int32_t one = cs->partition;
    shoal_consumer_options_t o;
    int rc;

    shoal_consumer_options_init(&o);
    o.auto_offset_reset =
        cs->whence == SHOAL_SEEK_END ? SHOAL_OFFSET_RESET_LATEST : SHOAL_OFFSET_RESET_EARLIEST;
    rc = shoal_consumer_open(client, &o, &cs->consumer);
    if (rc < 0)
        return cli_fail(cs->cli, rc, "open a consumer");
    if (cs->partition >= 0)
        rc = shoal_consumer_assign(cs->consumer, cs->topic, &one, 1);
    else
        rc = shoal_consumer_assign(cs->consumer, cs->topic, NULL, 0);
    if (rc < 0 && cs->partition >= 0)
        return cli_fail(cs->cli, rc, "consume '%s' partition %d", cs->topic, (int)one);
    if (rc < 0)
        return cli_fail(cs->cli, rc, "consume '%s'", cs->topic);
    rc = shoal_consumer_seek(cs->consumer, cs->topic, cs->partition, cs->whence, cs->offset);
    if (rc < 0)
        return cli_fail(cs->cli, rc, "consume '%s': seek", cs->topic);
    if (cs->whence == SHOAL_SEEK_OFFSET)
        consume_warn_offset(cs, client);
    return 0;
}

int cli_consume(cli_t *cli, int argc, char **argv)
{
    consume_t cs = {
        .cli = cli,
        .partition = -1,
        .whence = SHOAL_SEEK_END,
        .max_messages = -1,
        .timeout_ms = -1,
        .format = CLI_FORMAT_DEFAULT,
    };
    shoal_client_t *client;
    int rc, close_rc;

    consume_parse(cli, argc, argv, &cs);
    if (!cs.pattern && (rc = cli_check_topic_name(cs.topic)) != 0)
        return rc;
    if ((rc = cli_connect(cli, &client)) != 0)
        return rc;
    cs.client = client;
    cli_catch_signals(true);
    if (!(cs.text = open_memstream(&cs.text_buf, &cs.text_len)))
        rc = cli_fail(cli, -errno, "consume '%s'", cs.topic);
    else
        rc = cs.group ? consume_open_group(&cs, client) : consume_open(&cs, client);
    if (rc == 0)
        rc = consume_loop(&cs);
    fflush(stdout);
    if (cs.text)
        fclose(cs.text);
    free(cs.text_buf);
    /* In a group, close commits the positions once more: a commit shoald did not make (it
     * did not answer in time) is reported, since those records will be read again. One the
     * group refused because it had removed this member (stopped past its session timeout,
     * Ctrl-Z) is a warning: the output is whole, and the group reads those records again. */
    close_rc = shoal_consumer_close(cs.consumer);
    if ((close_rc == SHOAL_EGENERATION || close_rc == SHOAL_EFENCED) && rc == 0)
        fprintf(stderr,
                "shoal: warning: consume '%s': the group had removed this member (%s); "
                "what it read since its last commit will be read again by the group\n",
                cs.topic, shoal_errmsg());
    else if (close_rc < 0 && rc == 0)
        rc = cli_fail(cli, close_rc, "consume '%s': commit at exit", cs.topic);
    shoal_client_close(client);
    return rc;
}
