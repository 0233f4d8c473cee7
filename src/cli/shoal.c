/* shoal.c - the `shoal` command-line tool: global options and the table of subcommands.
 *
 * DESIGN: the tool is a thin client of include/shoal.h. main() takes the global options
 * (--socket, --help, --version), finds the subcommand in cli_commands[] by one or two
 * words ("produce", "topic create") and hands it the remaining arguments, with the
 * subcommand's name as argv[0] so each one parses its own options with cli_next_opt().
 * Exit status: 0 success, 1 a failed operation (message on stderr), 2 a usage error. A
 * write to stdout that failed is a failed operation: every way out of a command that
 * succeeded goes through cli_output_status(), which flushes stdout and checks it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int cli_help(cli_t *cli, int argc, char **argv);

static const cli_command_t cli_commands[] = {
    {"topic", "create", cli_topic_create,
     "topic create NAME [--partitions N] [--storage disk|memory] [--segment-bytes SIZE] "
     "[--ring-slots N] [--max-record-bytes SIZE] [--set NAME=VALUE ...]",
     "Create a topic. Unset options keep the library defaults.\n"
     "  --partitions N            partitions, 1..1024 (default 1)\n"
     "  --storage disk|memory     persist to disk segments, or keep only the shared ring\n"
     "                            (default disk)\n"
     "  --segment-bytes SIZE      ring slot and disk segment size, 64K..1G (default 64M)\n"
     "  --ring-slots N            slots in the shared ring, 2..64 (default 4)\n"
     "  --max-record-bytes SIZE   largest record, encoded as a batch of one (about 70\n"
     "                            bytes more than its key and value; default 1M,\n"
     "                            64..segment-bytes/2; with only --segment-bytes given:\n"
     "                            min(1M, segment-bytes/2))\n"
     "  --set NAME=VALUE          any topic setting by its Kafka-style name (repeatable):\n"
     "                            retention.ms, retention.bytes, segment.ms, cleanup.policy\n"
     "                            (delete|compact|compact,delete), flush.messages, flush.ms,\n"
     "                            delete.retention.ms, max.message.bytes, segment.bytes,\n"
     "                            ring.slots, storage, partitions; --config NAME=VALUE is\n"
     "                            the same (kafka-topics' spelling)\n"
     "SIZE is a number of bytes with an optional K, M or G suffix (KB, KiB... too: powers\n"
     "of 1024, either case); times (*.ms) and counts take none.\n"},
    {"topic", "alter", cli_topic_alter, "topic alter NAME [--partitions N] [--set NAME=VALUE ...]",
     "Change settings of an existing topic, all or nothing. --partitions N (or --set\n"
     "partitions=N) adds partitions, as in Kafka: they never shrink, and keyed records go\n"
     "by the new count from then on (to other partitions than before); producers follow\n"
     "at once, group consumers after a rebalance, a consumer assigned every partition\n"
     "keeps those it had. storage, segment.bytes and ring.slots cannot change;\n"
     "max.message.bytes applies to producers opened afterwards; the others take effect at\n"
     "once. --config NAME=VALUE is the same as --set; 64 settings at most.\n"},
    {"topic", "list", cli_topic_list, "topic list [--pattern RE]",
     "Print the topic names, one per line (none: \"(no topics)\" on stderr). A topic\n"
     "shoald left out at start (its files could not be recovered) is marked \"(not served)\".\n"
     "  --pattern RE   only the names RE matches whole, as `consume --pattern` takes them\n"},
    {"topic", "describe", cli_topic_describe, "topic describe NAME",
     "Print a topic's configuration, then a row per partition: log start offset, log end\n"
     "offset, flushed offset (every record below it is fsynced), bytes in shared memory and\n"
     "bytes written to its .log files (written, not necessarily fsynced yet: the flushed\n"
     "offset says how far they are). A memory topic has no disk: 0 for both.\n"},
    {"topic", "delete", cli_topic_delete, "topic delete NAME",
     "Delete a topic and all its data, with every consumer group's committed offsets in it.\n"},
    {NULL, "stats", cli_stats, "stats TOPIC [--partition N]",
     "Print each partition's counters, read from shared memory without disturbing producers\n"
     "or consumers: offsets, records/batches/bytes appended, ring slots in use, attached\n"
     "readers and how many are asleep, appends that met a full ring, lock repairs after a\n"
     "producer died inside the lock, the daemon's fsyncs and its last disk error. A partition\n"
     "shoald stopped (its shared ring damaged) shows the daemon's offsets, STOPPED, and why\n"
     "after the table (status 1).\n"},
    {NULL, "produce", cli_produce,
     "produce NAME [--key-separator SEP] [--partition N] [--acks memory|disk] "
     "[--header KEY=VALUE ...] [--parse-headers SEP] [--null-marker TEXT]",
     "Send one record per line of standard input (the newline, or CRLF, is not part of\n"
     "the record).\n"
     "  --key-separator SEP   the text before the first SEP is the key, the rest the value;\n"
     "                        a line without SEP has a null key\n"
     "  --partition N         send every record to partition N (default: by key, Kafka's\n"
     "                        murmur2 partitioner; keyless records are spread across\n"
     "                        partitions one batch at a time)\n"
     "  --acks memory|disk    acknowledge once in shared memory (default), or once fsynced\n"
     "  --header KEY=VALUE    a header every record carries (repeat for more, up to 64;\n"
     "                        consume prints them with %h)\n"
     "  --parse-headers SEP   each line starts with its own headers (up to 64), KEY=VALUE\n"
     "                        pairs joined by ',' (KEY alone: a null value; '\\' before a\n"
     "                        ',', '=' or '\\' in a key or value), as consume's %h prints\n"
     "                        them, up to the first SEP (which %h does not escape); the\n"
     "                        rest is the record (and --key-separator applies to it). A\n"
     "                        line without SEP is an error\n"
     "  --null-marker TEXT    a key or value (or a value in --parse-headers) that is\n"
     "                        exactly TEXT is sent as null: with a key, a null value is\n"
     "                        a tombstone (compacted topics)\n"
     "Lines already read are sent together as batches. A full ring (back-pressure) is\n"
     "waited out, with a warning naming the cause. Prints the count to stderr at the\n"
     "end; on the first error it reports how many records were appended (and, with --acks\n"
     "disk, how many of them are confirmed on disk) and exits 1. SIGINT or SIGTERM stop it,\n"
     "a disk acknowledgement wait included, with status 128 + the signal.\n"},
    {NULL, "consume", cli_consume,
     "consume NAME [--group G [--pattern]] [--partition N] [--from-beginning | --offset N | "
     "--from-timestamp TIME] "
     "[--max-messages N] [--timeout-ms T] [--format FMT] [--null-marker TEXT]",
     "Print records of every partition (or of partition N) as they arrive.\n"
     "  --from-beginning   start at each partition's log start (default: at the end,\n"
     "                     printing only records produced from now on)\n"
     "  --offset N         start at offset N; records a memory topic has overwritten\n"
     "                     are skipped with a warning, to the oldest record left\n"
     "  --from-timestamp TIME\n"
     "                     start at each partition's first record whose timestamp is at\n"
     "                     or after TIME (ms since the epoch, or YYYY-MM-DD[THH:MM[:SS[.sss]]],\n"
     "                     local time (a date alone: its midnight) unless it ends in Z or\n"
     "                     +HH:MM); at the end when none is\n"
     "  --group G          join consumer group G: the group's members share the\n"
     "                     partitions; each starts at the group's committed offset (else\n"
     "                     at the end, or at the start with --from-beginning); offsets\n"
     "                     are committed every 5 s and at exit; not with --partition,\n"
     "                     --offset or --from-timestamp\n"
     "  --pattern          with --group: NAME is a regular expression (Java's syntax, as\n"
     "                     Kafka's topic patterns), and the group reads every topic whose\n"
     "                     whole name matches it, topics created later included (%t\n"
     "                     prints a record's topic)\n"
     "  --max-messages N   exit after N records\n"
     "  --timeout-ms T     exit when nothing new arrived for T ms (default: follow for ever)\n"
     "  --format FMT       how to print a record (default '%v\\n'):\n"
     "                       %k key   %v value   %t topic   %p partition   %o offset\n"
     "                       %T timestamp (ms since the epoch)\n"
     "                       %h headers as key=value pairs joined by ',' (a key alone\n"
     "                          for a null value; '\\' before a ',', '=' or '\\' in one)\n"
     "                       %% a percent sign;  \\n newline  \\t tab  \\\\ backslash\n"
     "                     A null key or value prints as nothing, unless:\n"
     "  --null-marker TEXT as TEXT (as `produce --null-marker TEXT` reads it back)\n"
     "SIGINT, SIGTERM or a closed output pipe stop it cleanly with status 0.\n"},
    {NULL, "dump", cli_dump, "dump PATH [--verify] [--print-data] [--max N]",
     "Print a segment file (<base>.log, .index or .timeindex) and check it, reading the file\n"
     "itself: it works on any copy of a segment and never connects to shoald.\n"
     "  .log        a line per batch: offsets, count, byte position, size, stored and computed\n"
     "              CRC (valid or INVALID), compression, timestamps, producer id/epoch/sequence;\n"
     "              stops at the first batch it cannot parse, saying where and whether the\n"
     "              file ends inside a batch (a torn tail) or holds garbage (corrupt: also\n"
     "              a batch over 1G, or over 512M with one record, which no topic can hold)\n"
     "  .index      a line per entry (relative and absolute offset, position), each checked\n"
     "              against the batch it names in the .log beside it, when there is one\n"
     "  .timeindex  a line per entry (timestamp, offset): timestamps must not go down and\n"
     "              offsets must lie inside the .log beside it, when there is one\n"
     "A summary line ends the dump. The base offset comes from the 20-digit file name, else\n"
     "from the first batch's header when it is sound, else it is taken as 0.\n"
     "  --verify       also decode every record; exit 1 when anything is wrong (each problem\n"
     "                 on stderr), 0 when the file is sound\n"
     "  --print-data   a line per record after its batch: offset, timestamp, key, value and\n"
     "                 headers; text in quotes, other bytes as 0x hex, null as null;\n"
     "                 compressed batches are not decoded\n"
     "  --max N        print only the first N batches or entries (checks cover the whole file)\n"
     "Without --verify the status is 0 whenever the file could be read.\n"},
    {"group", "list", cli_group_list, "group list",
     "Print each consumer group: id, state and number of members, under a header line\n"
     "(printed also when there is no group).\n"},
    {"group", "describe", cli_group_describe, "group describe GROUP",
     "Print a group's state, generation, assignor and members (client id, pid, assigned\n"
     "partitions), then per partition the committed offset, log end offset and lag ('-':\n"
     "nothing committed yet). States, as Kafka's: Empty (no members; offsets kept until\n"
     "offsets.retention; a group without offsets is gone with its last member),\n"
     "PreparingRebalance (members are joining), CompletingRebalance\n"
     "(waiting for the leader's assignment), Stable (every member has its partitions).\n"
     "The generation counts rebalances since shoald started.\n"},
    {"group", "reset-offsets", cli_group_reset_offsets,
     "group reset-offsets GROUP --topic T[:P,...] MODE [--dry-run]",
     "Set the group's committed offsets on topic T (every partition, or those listed after\n"
     "':', as with Kafka's tool) by MODE:\n"
     "  --to-earliest      the log start\n"
     "  --to-latest        the log end\n"
     "  --to-offset N      offset N\n"
     "  --to-datetime TIME the first record at or after TIME: YYYY-MM-DD[THH:MM[:SS[.sss]]],\n"
     "                     local time (a date alone: its midnight) unless it ends in Z or\n"
     "                     +HH:MM; or ms since the epoch\n"
     "  --by-duration DUR  the first record of the last DUR (ISO 8601: PT1H, P1D, P1DT12H)\n"
     "  --shift-by N       each committed offset moved by N (negative: back)\n"
     "An offset outside a partition's records is taken as its start or end. Prints each\n"
     "partition's committed offset before and after. Only while the group has no active\n"
     "members; a group that does not exist yet is created with these offsets (so a new\n"
     "group can be told where to start).\n"
     "  --dry-run          print the same and change nothing\n"
     "  --execute          accepted, as Kafka's tool needs it: a reset is done unless\n"
     "                     --dry-run\n"},
    {"group", "delete", cli_group_delete, "group delete GROUP",
     "Delete a group and its committed offsets. Only while it has no active members.\n"},
    {NULL, "help", cli_help, "help [COMMAND]",
     "Print the usage of shoal or of one command; for a group of commands (topic, group),\n"
     "the usage of each.\n"},
};

#define CLI_NCOMMANDS (sizeof(cli_commands) / sizeof(cli_commands[0]))

static void cli_print_usage(FILE *out)
{
    fputs("usage: shoal [--socket PATH] [--request-timeout-ms MS] COMMAND [ARGS...]\n\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < CLI_NCOMMANDS; i++)
        cli_print_synopsis(out, "  shoal ", cli_commands[i].synopsis);
    fprintf(out,
            "\nGlobal options:\n"
            "  --socket PATH   the daemon's control socket; also accepted after the command\n"
            "                  (default: $SHOAL_SOCKET, else %s)\n"
            "  --request-timeout-ms MS\n"
            "                  how long to wait for the daemon's answer to each request, the\n"
            "                  connection's handshake included, before failing (a stopped or\n"
            "                  hung daemon); also accepted after the command (default 30000)\n"
            "  --help, -h      this text ('shoal COMMAND --help' describes one command)\n"
            "  --version       print the version\n"
            "\nExit status: 0 success, 1 failure (the cause on stderr), 2 usage error.\n",
            SHOAL_DEFAULT_SOCKET);
}

/* The command named by argv[0] (and argv[1] for a group), with *words set to how many of
 * the arguments named it; NULL if none does. */
static const cli_command_t *cli_find_command(int argc, char **argv, int *words)
{
    for (size_t i = 0; i < CLI_NCOMMANDS; i++) {
        const cli_command_t *cmd = &cli_commands[i];
        if (!cmd->group && strcmp(argv[0], cmd->name) == 0) {
            *words = 1;
            return cmd;
        }
        if (cmd->group && argc > 1 && strcmp(argv[0], cmd->group) == 0 &&
            strcmp(argv[1], cmd->name) == 0) {
            *words = 2;
            return cmd;
        }
    }
    return NULL;
}

static bool cli_is_group(const char *word)
{
    for (size_t i = 0; i < CLI_NCOMMANDS; i++)
        if (cli_commands[i].group && strcmp(word, cli_commands[i].group) == 0)
            return true;
    return false;
}

static bool cli_is_help_option(const char *word)
{
    return strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0;
}

/* Print the synopses of the commands of a group ("topic": create, alter, ...). */
static void cli_print_group_usage(FILE *out, const char *group)
{
    fprintf(out, "usage:\n");
    for (size_t i = 0; i < CLI_NCOMMANDS; i++)
        if (cli_commands[i].group && strcmp(group, cli_commands[i].group) == 0)
            cli_print_synopsis(out, "  shoal ", cli_commands[i].synopsis);
    fprintf(out, "Try 'shoal %s SUBCOMMAND --help' for more.\n", group);
}

/* words[0] is a group and words[1] (if any) none of its subcommands: say which is wrong,
 * list the subcommands and exit with status 2. */
static _Noreturn void cli_group_usage_fail(int nwords, char **words)
{
    const char *group = words[0];

    if (nwords < 2)
        fprintf(stderr, "shoal: '%s' needs a subcommand\n", group);
    else if (words[1][0] == '-')
        fprintf(stderr, "shoal: '%s' needs a subcommand before the option '%s'\n", group, words[1]);
    else
        fprintf(stderr, "shoal: unknown %s subcommand '%s'\n", group, words[1]);
    cli_print_group_usage(stderr, group);
    exit(CLI_EXIT_USAGE);
}

static int cli_help(cli_t *cli, int argc, char **argv)
{
    const cli_command_t *cmd;
    int words;
    char *help_argv[] = {NULL, "--help", NULL};
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {0}};

    while (cli_next_opt(cli, argc, argv, opts) != -1)
        ;
    if (cli->optind >= argc) {
        cli_print_usage(stdout);
        return 0;
    }
    cmd = cli_find_command(argc - cli->optind, argv + cli->optind, &words);
    if (!cmd && cli_is_group(argv[cli->optind]) && argc - cli->optind == 1) {
        cli_print_group_usage(stdout, argv[cli->optind]);
        return 0;
    }
    if (!cmd && cli_is_group(argv[cli->optind]))
        cli_group_usage_fail(argc - cli->optind, argv + cli->optind);
    if (!cmd)
        cli_usage_fail(cli, "unknown command '%s'", argv[cli->optind]);
    cli->command = cmd;
    cli->optind = 0;
    help_argv[0] = (char *)cmd->name;
    return cmd->run(cli, 2, help_argv); /* --help prints and exits before any work */
}

/* The value of the global option name at argv[*i] ("--name VALUE", *i moved past it, or
 * "--name=VALUE"); NULL when argv[*i] is another option. */
static const char *cli_global_value(const cli_t *cli, const char *name, int argc, char **argv,
                                    int *i)
{
    size_t len = strlen(name);

    if (strcmp(argv[*i], name) == 0) {
        if (++*i == argc)
            cli_usage_fail(cli, "option '%s' needs a value", name);
        return argv[*i];
    }
    if (strncmp(argv[*i], name, len) == 0 && argv[*i][len] == '=')
        return argv[*i] + len + 1;
    return NULL;
}

/* Consume the global options before the command; returns the index of the command word. */
static int cli_global_options(cli_t *cli, int argc, char **argv)
{
    const char *v;
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_print_usage(stdout);
            exit(cli_output_status(0));
        } else if (strcmp(a, "--version") == 0) {
            printf("shoal %s (libshoal %s)\n", SHOAL_VERSION_STRING,
                   shoal_version(NULL, NULL, NULL));
            exit(cli_output_status(0));
        } else if ((v = cli_global_value(cli, "--socket", argc, argv, &i))) {
            cli->socket_path = v;
        } else if ((v = cli_global_value(cli, "--request-timeout-ms", argc, argv, &i))) {
            cli->request_timeout_ms = cli_parse_request_timeout(cli, v);
        } else {
            cli_usage_fail(cli, "unknown option '%s'", a);
        }
    }
    return i;
}

int main(int argc, char **argv)
{
    cli_t cli = {0};
    const cli_command_t *cmd;
    int first, words;

    first = cli_global_options(&cli, argc, argv);
    if (first == argc)
        cli_usage_fail(&cli, "no command given");
    cmd = cli_find_command(argc - first, argv + first, &words);
    if (!cmd && cli_is_group(argv[first]) && argc - first > 1 &&
        cli_is_help_option(argv[first + 1])) {
        cli_print_group_usage(stdout, argv[first]);
        return cli_output_status(0);
    }
    if (!cmd && cli_is_group(argv[first]))
        cli_group_usage_fail(argc - first, argv + first);
    if (!cmd)
        cli_usage_fail(&cli, "unknown command '%s'", argv[first]);
    cli.command = cmd;
    /* Subcommands see their own name as argv[0]; --socket may also follow them. */
    first += words - 1;
    if (!cli.socket_path)
        cli.socket_path = shoal_default_socket();
    return cli_output_status(cmd->run(&cli, argc - first, argv + first));
}
