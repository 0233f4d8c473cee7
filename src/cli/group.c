/* group.c - `shoal group list|describe|reset-offsets|delete`: consumer group
 * administration through shoal_group_*().
 *
 * DESIGN: as in topic.c, the whole command line (group id included) is checked before
 * connecting. `describe` prints "key: value" lines, a member table and an offset table;
 * a missing value prints as "-". */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "timearg.h"
#include "util.h"

static const struct option group_plain_opts[] = {CLI_COMMON_OPTIONS, {0}};

static int group_check_id(const char *id)
{
    if (shoal_group_id_is_valid(id))
        return 0;
    fprintf(stderr, "shoal: group id '%s': %s\n", id, shoal_strerror(SHOAL_EGROUPID));
    return CLI_EXIT_USAGE; /* found before connecting, as every bad argument */
}

/* The positional GROUP of a command with no other options. */
static const char *group_parse_plain(cli_t *cli, int argc, char **argv)
{
    while (cli_next_opt(cli, argc, argv, group_plain_opts) != -1)
        ;
    cli_expect_args(cli, argc, argv, 1);
    return argv[cli->optind];
}

/* The wider of w and s: a column as wide as its longest name (ids and topic names reach
 * 249 characters, past any fixed width). */
static int text_width(int w, const char *s)
{
    int n = (int)strlen(s);
    return n > w ? n : w;
}

int cli_group_list(cli_t *cli, int argc, char **argv)
{
    shoal_group_listing_t *list;
    shoal_client_t *client;
    size_t n;
    int rc;

    while (cli_next_opt(cli, argc, argv, group_plain_opts) != -1)
        ;
    cli_expect_args(cli, argc, argv, 0);
    if ((rc = cli_connect(cli, &client)) != 0)
        return rc;
    rc = shoal_group_list(client, &list, &n);
    if (rc < 0) {
        rc = cli_fail(cli, rc, "list groups");
    } else {
        int gw = (int)strlen("GROUP"), sw = (int)strlen("STATE");

        for (size_t i = 0; i < n; i++) {
            gw = text_width(gw, list[i].group_id);
            sw = text_width(sw, list[i].state);
        }
        /* always: a script that skips the first line finds the groups, or none */
        printf("%-*s  %-*s  %s\n", gw, "GROUP", sw, "STATE", "MEMBERS");
        for (size_t i = 0; i < n; i++)
            printf("%-*s  %-*s  %u\n", gw, list[i].group_id, sw, list[i].state, list[i].members);
        if (n == 0) /* as topic list says it (stderr: the output stays a header alone) */
            fputs("(no groups)\n", stderr);
        shoal_group_list_free(list);
    }
    shoal_client_close(client);
    return rc;
}

static void print_num(int width, int64_t v)
{
    if (v < 0)
        printf(" %*s", width, "-");
    else
        printf(" %*" PRId64, width, v);
}

static void describe_print(const shoal_group_info_t *info)
{
    printf("group: %s\nstate: %s\ngeneration: %d\nassignor: %s\nleader: %s\n", info->group_id,
           info->state, info->generation, info->protocol[0] ? info->protocol : "-",
           info->leader[0] ? info->leader : "-");
    int mw = (int)strlen("MEMBER"), cw = (int)strlen("CLIENT"), tw = (int)strlen("TOPIC");

    for (size_t i = 0; i < info->member_count; i++) {
        mw = text_width(mw, info->members[i].member_id);
        cw = text_width(cw, info->members[i].client_id);
    }
    for (size_t i = 0; i < info->offset_count; i++)
        tw = text_width(tw, info->offsets[i].topic);
    if (info->member_count > 0) /* an Empty group has no member to head */
        printf("\n%-*s  %-*s  %-8s PARTITIONS\n", mw, "MEMBER", cw, "CLIENT", "PID");
    for (size_t i = 0; i < info->member_count; i++) {
        const shoal_group_member_info_t *m = &info->members[i];
        printf("%-*s  %-*s  %-8d", mw, m->member_id, cw, m->client_id, (int)m->pid);
        for (size_t k = 0; k < m->assigned_count; k++)
            printf("%s%s-%d", k ? "," : " ", m->assigned[k].topic, (int)m->assigned[k].partition);
        putchar('\n');
    }
    printf("\n%-*s %9s %12s %14s %10s\n", tw, "TOPIC", "PARTITION", "COMMITTED", "LOG-END-OFFSET",
           "LAG");
    for (size_t i = 0; i < info->offset_count; i++) {
        const shoal_group_offset_info_t *o = &info->offsets[i];
        printf("%-*s %9d", tw, o->topic, (int)o->partition);
        print_num(12, o->committed);
        print_num(14, o->log_end_offset);
        print_num(10, o->lag);
        putchar('\n');
    }
}

int cli_group_describe(cli_t *cli, int argc, char **argv)
{
    const char *id = group_parse_plain(cli, argc, argv);
    shoal_group_info_t *info;
    shoal_client_t *client;
    int rc;

    if ((rc = group_check_id(id)) != 0)
        return rc;
    if ((rc = cli_connect(cli, &client)) != 0)
        return rc;
    rc = shoal_group_describe(client, id, &info);
    if (rc < 0) {
        rc = cli_fail(cli, rc, "describe group '%s'", id);
    } else {
        describe_print(info);
        shoal_group_info_free(info);
    }
    shoal_client_close(client);
    return rc;
}

enum {
    OPT_TOPIC = CLI_OPT_FIRST,
    OPT_EARLIEST,
    OPT_LATEST,
    OPT_TO_OFFSET,
    OPT_TO_DATETIME,
    OPT_BY_DURATION,
    OPT_SHIFT_BY,
    OPT_DRY_RUN,
    OPT_EXECUTE,
};

#define RESET_MODES                                                                                \
    "--to-earliest, --to-latest, --to-offset, --to-datetime, --by-duration, --shift-by"

/* What `group reset-offsets` was asked: the topic, its partitions (none: every one), where
 * to (whence and value as shoal_group_reset_partitions() takes them). */
struct reset_args {
    char topic[SHOAL_TOPIC_NAME_MAX + 1];
    int32_t parts[SHOAL_PARTITIONS_MAX];
    size_t nparts;
    int whence;
    int64_t value;
    unsigned flags;
};

/* --topic T or T:P,P,...: Kafka's form (topic names hold no ':'). */
static void reset_parse_topic(cli_t *cli, const char *arg, struct reset_args *a)
{
    const char *colon = strchr(arg, ':');
    size_t len = colon ? (size_t)(colon - arg) : strlen(arg);
    char *list, *tok, *save = NULL;

    if (a->topic[0])
        cli_usage_fail(cli, "--topic once: a reset is of one topic (its partitions after ':')");
    if (len > SHOAL_TOPIC_NAME_MAX)
        cli_usage_fail(cli, "--topic: a topic name has at most %d characters",
                       SHOAL_TOPIC_NAME_MAX);
    memcpy(a->topic, arg, len);
    a->topic[len] = '\0';
    if (!colon)
        return;
    if (!(list = strdup(colon + 1)))
        cli_usage_fail(cli, "out of memory");
    for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (a->nparts == SHOAL_PARTITIONS_MAX)
            cli_usage_fail(cli, "--topic: more than %d partitions", SHOAL_PARTITIONS_MAX);
        a->parts[a->nparts++] =
            (int32_t)cli_parse_uint(cli, "--topic's partition", tok, SHOAL_PARTITIONS_MAX - 1);
    }
    free(list);
    if (a->nparts == 0)
        cli_usage_fail(cli, "--topic %s: no partition after ':'", arg);
}

static int64_t reset_parse_shift(cli_t *cli, const char *arg)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || isspace((unsigned char)*arg))
        cli_usage_fail(cli,
                       "invalid value for --shift-by: '%s' (expected a whole number, "
                       "negative to move back)",
                       arg);
    return (int64_t)v;
}

static int64_t reset_parse_time(cli_t *cli, int opt, const char *arg)
{
    int64_t ms;

    if (opt == OPT_TO_DATETIME) {
        if (cli_parse_datetime_ms(arg, &ms) < 0)
            cli_usage_fail(cli, "invalid --to-datetime '%s': %s", arg, cli_time_error());
        return ms;
    }
    if (cli_parse_duration_ms(arg, &ms) < 0)
        cli_usage_fail(cli, "invalid --by-duration '%s': %s", arg, cli_time_error());
    return SHOAL_MAX(shoal__now_ms() - ms, 0); /* a duration longer than the epoch: all */
}

/* One of the modes (RESET_MODES): whence and value. */
static void reset_parse_mode(cli_t *cli, int opt, const char *arg, struct reset_args *a)
{
    if (a->whence >= 0)
        cli_usage_fail(cli, "give one of " RESET_MODES);
    switch (opt) {
    case OPT_EARLIEST:
        a->whence = SHOAL_SEEK_BEGINNING;
        break;
    case OPT_LATEST:
        a->whence = SHOAL_SEEK_END;
        break;
    case OPT_TO_OFFSET:
        a->whence = SHOAL_SEEK_OFFSET;
        a->value = (int64_t)cli_parse_uint(cli, "--to-offset", arg, INT64_MAX);
        break;
    case OPT_SHIFT_BY:
        a->whence = SHOAL_RESET_SHIFT;
        a->value = reset_parse_shift(cli, arg);
        break;
    default: /* a time, given or as long ago as a duration */
        a->whence = SHOAL_SEEK_TIMESTAMP;
        a->value = reset_parse_time(cli, opt, arg);
    }
}

static void reset_print(const char *id, const char *topic, const shoal_offset_change_t *ch,
                        size_t n, bool dry_run)
{
    int gw = text_width((int)strlen("GROUP"), id), tw = text_width((int)strlen("TOPIC"), topic);

    printf("%-*s  %-*s %9s %12s %12s\n", gw, "GROUP", tw, "TOPIC", "PARTITION", "COMMITTED",
           "NEW-OFFSET");
    for (size_t i = 0; i < n; i++) {
        printf("%-*s  %-*s %9d", gw, id, tw, topic, (int)ch[i].partition);
        print_num(12, ch[i].committed);
        print_num(12, ch[i].offset);
        putchar('\n');
    }
    if (dry_run)
        fprintf(stderr, "shoal: dry run: nothing was changed (run it without --dry-run)\n");
}

int cli_group_reset_offsets(cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"topic", required_argument, NULL, OPT_TOPIC},
        {"to-earliest", no_argument, NULL, OPT_EARLIEST},
        {"to-latest", no_argument, NULL, OPT_LATEST},
        {"to-offset", required_argument, NULL, OPT_TO_OFFSET},
        {"to-datetime", required_argument, NULL, OPT_TO_DATETIME},
        {"by-duration", required_argument, NULL, OPT_BY_DURATION},
        {"shift-by", required_argument, NULL, OPT_SHIFT_BY},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"execute", no_argument, NULL, OPT_EXECUTE},
        CLI_COMMON_OPTIONS,
        {0},
    };
    struct reset_args a = {.whence = -1};
    shoal_offset_change_t *ch;
    shoal_client_t *client;
    const char *id;
    int opt, rc;
    size_t n;

    while ((opt = cli_next_opt(cli, argc, argv, opts)) != -1) {
        if (opt == OPT_TOPIC)
            reset_parse_topic(cli, optarg, &a);
        else if (opt == OPT_DRY_RUN)
            a.flags |= SHOAL_RESET_DRY_RUN;
        else if (opt != OPT_EXECUTE) /* Kafka's tool needs it; here a reset is done unless
                                        --dry-run */
            reset_parse_mode(cli, opt, optarg, &a);
    }
    cli_expect_args(cli, argc, argv, 1);
    id = argv[cli->optind];
    if (!a.topic[0] || a.whence < 0)
        cli_usage_fail(cli, "needs --topic T and one of " RESET_MODES);
    if ((rc = group_check_id(id)) != 0 || (rc = cli_check_topic_name(a.topic)) != 0)
        return rc;
    if ((rc = cli_connect(cli, &client)) != 0)
        return rc;
    rc = shoal_group_reset_partitions(client, id, a.topic, a.nparts ? a.parts : NULL, a.nparts,
                                      a.whence, a.value, a.flags, &ch, &n);
    if (rc < 0) {
        rc = cli_fail(cli, rc, "reset offsets of group '%s' on '%s'", id, a.topic);
    } else {
        reset_print(id, a.topic, ch, n, a.flags & SHOAL_RESET_DRY_RUN);
        shoal_offset_changes_free(ch);
    }
    shoal_client_close(client);
    return rc;
}

int cli_group_delete(cli_t *cli, int argc, char **argv)
{
    const char *id = group_parse_plain(cli, argc, argv);
    shoal_client_t *client;
    int rc;

    if ((rc = group_check_id(id)) != 0)
        return rc;
    if ((rc = cli_connect(cli, &client)) != 0)
        return rc;
    rc = shoal_group_delete(client, id);
    if (rc < 0)
        rc = cli_fail(cli, rc, "delete group '%s'", id);
    shoal_client_close(client);
    return rc;
}
