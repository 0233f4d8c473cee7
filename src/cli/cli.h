/* cli.h - what the files of the `shoal` command-line tool share: the invocation context,
 * error reporting, option parsing and number parsing. Internal to src/cli; the tool is a
 * client of include/shoal.h only, but for dump.c, which reads segment files itself. */
#ifndef SHOAL_CLI_H
#define SHOAL_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "shoal.h"

/* Exit statuses: 1 for a failed operation, 2 for a command line that makes no sense. */
#define CLI_EXIT_FAIL  1
#define CLI_EXIT_USAGE 2

struct cli_command;

/* One invocation: the daemon's socket and the command being run. */
typedef struct cli {
    const char *socket_path;           /* --socket, else shoal_default_socket() */
    int32_t request_timeout_ms;        /* --request-timeout-ms; 0: the library's default */
    const struct cli_command *command; /* for usage messages and --help */
    int optind;                        /* first positional argument after cli_next_opt() */
} cli_t;

/* A subcommand: `group name` (group NULL for a top-level command like `produce`). */
typedef struct cli_command {
    const char *group;
    const char *name;
    int (*run)(cli_t *cli, int argc, char **argv);
    const char *synopsis; /* one line, after "shoal " */
    const char *help;     /* the options and notes printed by --help, or NULL */
} cli_command_t;

/* Option ids shared by every command; a command's own ids start at CLI_OPT_FIRST. */
enum { CLI_OPT_SOCKET = 256, CLI_OPT_REQUEST_TIMEOUT, CLI_OPT_HELP, CLI_OPT_FIRST };
#define CLI_COMMON_OPTIONS                                                                         \
    {"socket", required_argument, NULL, CLI_OPT_SOCKET},                                           \
        {"request-timeout-ms", required_argument, NULL, CLI_OPT_REQUEST_TIMEOUT},                  \
    {                                                                                              \
        "help", no_argument, NULL, CLI_OPT_HELP                                                    \
    }

/* Set by the signal handlers installed with cli_catch_signals(). */
extern volatile sig_atomic_t cli_stop_signal;

/* Catch SIGINT and SIGTERM (and SIGPIPE when catch_pipe) without SA_RESTART, so blocking
 * calls return -EINTR and the command can flush, close its handles and exit. */
void cli_catch_signals(bool catch_pipe);

/* The exit status of a command that would exit with status: flushes standard output and
 * returns 1, after saying so, when anything written to it was lost (a full disk, a pipe
 * closed while SIGPIPE is ignored). A command that failed already (status not 0) keeps its
 * status and its own message, and so does one that a caught SIGPIPE stopped (consume). */
int cli_output_status(int status);

/* Next option of argv (argv[0] is the command's name). Handles --socket and --help itself;
 * exits with status 2 on an unknown option or a missing value. Returns the option's id,
 * or -1 at the end, when cli->optind is the first positional argument (getopt permutes). */
int cli_next_opt(cli_t *cli, int argc, char **argv, const struct option *opts);

/* Require exactly n positional arguments after option parsing (exits 2 otherwise). */
void cli_expect_args(const cli_t *cli, int argc, char **argv, int n);

/* Print prefix and a command's synopsis, wrapped before an option group ("[...") so that
 * lines stay within CLI_SYNOPSIS_WIDTH columns where they can. */
#define CLI_SYNOPSIS_WIDTH 90
void cli_print_synopsis(FILE *out, const char *prefix, const char *synopsis);

/* Print "shoal: <message>", the command's usage line, and exit with status 2. */
_Noreturn void cli_usage_fail(const cli_t *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print "shoal: <what>: <shoal_strerror(rc)> (<detail>)" to stderr and return 1. The
 * detail is shoal_errmsg() (read before anything else), or a hint naming the socket for
 * SHOAL_ENODAEMON. Call it straight after the failed libshoal call. */
int cli_fail(const cli_t *cli, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Say why and return CLI_EXIT_USAGE (status 2) unless name is a valid topic name. */
int cli_check_topic_name(const char *name);

/* Connect to the daemon; on failure report it and return the exit status (1). */
int cli_connect(const cli_t *cli, shoal_client_t **out);

/* Parse a decimal number in 0..max ("12"; no sign, no spaces). Exits 2 when it is not one,
 * naming the option. */
uint64_t cli_parse_uint(const cli_t *cli, const char *option, const char *s, uint64_t max);
/* The same, refusing values under min. */
uint64_t cli_parse_range(const cli_t *cli, const char *option, const char *s, uint64_t min,
                         uint64_t max);
/* The value of --request-timeout-ms: 1 ms or more. */
int32_t cli_parse_request_timeout(const cli_t *cli, const char *s);

/* As cli_parse_uint with an optional K, M or G suffix (powers of 1024, either case). */
uint64_t cli_parse_size(const cli_t *cli, const char *option, const char *s, uint64_t max);

/* The subcommands, defined in topic.c, produce.c, consume.c and dump.c. */
int cli_topic_create(cli_t *cli, int argc, char **argv);
int cli_topic_list(cli_t *cli, int argc, char **argv);
int cli_topic_describe(cli_t *cli, int argc, char **argv);
int cli_topic_alter(cli_t *cli, int argc, char **argv);
int cli_stats(cli_t *cli, int argc, char **argv);

/* An aligned table (table.c): fill cells with snprintf into cli_table_cell(). */
#define CLI_CELL_BYTES     24
#define CLI_TABLE_MAX_COLS 16
typedef struct cli_table {
    const char *const *headers;
    int cols;
    int rows;
    char *cells;
} cli_table_t;
/* 0, or -1 when out of memory. */
int cli_table_init(cli_table_t *t, const char *const *headers, int cols, int rows);
char *cli_table_cell(cli_table_t *t, int row, int col);
void cli_table_print(cli_table_t *t);
void cli_table_release(cli_table_t *t);
int cli_topic_delete(cli_t *cli, int argc, char **argv);
int cli_produce(cli_t *cli, int argc, char **argv);
int cli_consume(cli_t *cli, int argc, char **argv);
int cli_dump(cli_t *cli, int argc, char **argv);
/* Defined in group.c. */
int cli_group_list(cli_t *cli, int argc, char **argv);
int cli_group_describe(cli_t *cli, int argc, char **argv);
int cli_group_reset_offsets(cli_t *cli, int argc, char **argv);
int cli_group_delete(cli_t *cli, int argc, char **argv);

#endif
