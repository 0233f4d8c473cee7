/* group.c - `shoal group list|describe|reset-offsets|delete`: consumer group
 * administration through shoal_group_*().
 *
 * DESIGN: as in topic.c, the whole command line (group id included) is checked before
 * connecting. `describe` prints "key: value" lines, a member table and an offset table;
 * a missing value prints as "-". */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct option group_plain_opts[] = {CLI_COMMON_OPTIONS, {0}};

static int group_check_id(const char *id)
{
    if (shoal_group_id_is_valid(id))
        return 0;
    fprintf(stderr, "shoal: invalid group id '%s': %s\n", id, shoal_strerror(SHOAL_EGROUPID));
    return CLI_EXIT_FAIL;
}

/* The positional GROUP of a command with no other options. */
static const char *group_parse_plain(cli_t *cli, int argc, char **argv)
{
    while (cli_next_opt(cli, argc, argv, group_plain_opts) != -1)
        ;
    cli_expect_args(cli, argc, argv, 1);
    return argv[cli->optind];
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
        /* always: a script that skips the first line finds the groups, or none */
        printf("%-30s %-20s %s\n", "GROUP", "STATE", "MEMBERS");
        for (size_t i = 0; i < n; i++)
            printf("%-30s %-20s %u\n", list[i].group_id, list[i].state, list[i].members);
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
    printf("\nMEMBER                         CLIENT          PID      PARTITIONS\n");
    for (size_t i = 0; i < info->member_count; i++) {
        const shoal_group_member_info_t *m = &info->members[i];
        printf("%-30s %-15s %-8d", m->member_id, m->client_id, (int)m->pid);
        for (size_t k = 0; k < m->assigned_count; k++)
            printf("%s%s-%d", k ? "," : " ", m->assigned[k].topic, (int)m->assigned[k].partition);
        putchar('\n');
    }
    printf("\n%-30s %9s %12s %14s %10s\n", "TOPIC", "PARTITION", "COMMITTED", "LOG-END-OFFSET",
           "LAG");
    for (size_t i = 0; i < info->offset_count; i++) {
        const shoal_group_offset_info_t *o = &info->offsets[i];
        printf("%-30s %9d", o->topic, (int)o->partition);
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

enum { OPT_TOPIC = CLI_OPT_FIRST, OPT_EARLIEST, OPT_LATEST, OPT_TO_OFFSET };

int cli_group_reset_offsets(cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"topic", required_argument, NULL, OPT_TOPIC},
        {"to-earliest", no_argument, NULL, OPT_EARLIEST},
        {"to-latest", no_argument, NULL, OPT_LATEST},
        {"to-offset", required_argument, NULL, OPT_TO_OFFSET},
        CLI_COMMON_OPTIONS,
        {0},
    };
    const char *topic = NULL, *id;
    shoal_client_t *client;
    int whence = -1, opt, rc;
    int64_t offset = 0;

    while ((opt = cli_next_opt(cli, argc, argv, opts)) != -1) {
        if (opt == OPT_TOPIC) {
            topic = optarg;
            continue;
        }
        if (whence >= 0)
            cli_usage_fail(cli, "give one of --to-earliest, --to-latest, --to-offset");
        whence = opt == OPT_EARLIEST ? SHOAL_SEEK_BEGINNING
                 : opt == OPT_LATEST ? SHOAL_SEEK_END
                                     : SHOAL_SEEK_OFFSET;
        if (opt == OPT_TO_OFFSET)
            offset = (int64_t)cli_parse_uint(cli, "--to-offset", optarg, INT64_MAX);
    }
    cli_expect_args(cli, argc, argv, 1);
    id = argv[cli->optind];
    if (!topic || whence < 0)
        cli_usage_fail(cli, "needs --topic T and one of --to-earliest, --to-latest, --to-offset");
    if ((rc = group_check_id(id)) != 0 || (rc = cli_check_topic_name(topic)) != 0)
        return rc;
    if ((rc = cli_connect(cli, &client)) != 0)
        return rc;
    rc = shoal_group_reset_offsets(client, id, topic, whence, offset);
    if (rc < 0)
        rc = cli_fail(cli, rc, "reset offsets of group '%s' on '%s'", id, topic);
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
