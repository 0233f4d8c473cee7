/* args.c - the `shoal` tool's shared plumbing: option parsing over getopt_long, strict
 * number and size parsing, error and usage reporting, signals, connecting to shoald.
 *
 * DESIGN: usage errors (unknown option, bad number, wrong argument count) are found before
 * any handle is opened, so they print and exit(2) on the spot. Operational failures are
 * reported with cli_fail(), which returns status 1 so the command can close its handles
 * first. Numbers are parsed by hand rather than with strtoull so that "-1", " 5", "5x" and
 * "" are all rejected instead of being wrapped or truncated. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

volatile sig_atomic_t cli_stop_signal;

static void cli_on_signal(int sig)
{
    cli_stop_signal = sig;
}

void cli_catch_signals(bool catch_pipe)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cli_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocked read or poll must return EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (catch_pipe)
        sigaction(SIGPIPE, &sa, NULL);
}

/* ------------------------------------------------------------------ usage */

static void cli_print_usage_hint(const cli_t *cli)
{
    const cli_command_t *cmd = cli->command;

    if (!cmd) {
        fputs("usage: shoal [--socket PATH] [--request-timeout-ms MS] COMMAND [ARGS...]\n"
              "Try 'shoal --help' for the list of commands.\n",
              stderr);
        return;
    }
    cli_print_synopsis(stderr, "usage: shoal ", cmd->synopsis);
    fprintf(stderr, "Try 'shoal %s%s%s --help' for more.\n", cmd->group ? cmd->group : "",
            cmd->group ? " " : "", cmd->name);
}

void cli_print_synopsis(FILE *out, const char *prefix, const char *synopsis)
{
    size_t indent = strlen(prefix) + 4, col = strlen(prefix);
    const char *p = synopsis;

    fputs(prefix, out);
    while (*p) {
        /* Lines break only before an option group " [...", never inside one. */
        const char *next = strstr(p + 1, " [");
        size_t len = next ? (size_t)(next - p) : strlen(p);
        if (p != synopsis && col + len > CLI_SYNOPSIS_WIDTH) {
            fprintf(out, "\n%*s", (int)indent, "");
            col = indent;
            p++; /* the space */
            len--;
        }
        fwrite(p, 1, len, out);
        col += len;
        p += len;
    }
    fputc('\n', out);
}

void cli_usage_fail(const cli_t *cli, const char *fmt, ...)
{
    va_list ap;

    fputs("shoal: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cli_print_usage_hint(cli);
    exit(CLI_EXIT_USAGE);
}

static void cli_print_command_help(const cli_command_t *cmd)
{
    cli_print_synopsis(stdout, "usage: shoal ", cmd->synopsis);
    if (cmd->help)
        printf("\n%s", cmd->help);
    printf("\nGlobal options (before or after the command):\n"
           "  --socket PATH   the daemon's control socket\n"
           "                  (default: $SHOAL_SOCKET, else %s)\n",
           SHOAL_DEFAULT_SOCKET);
}

/* ------------------------------------------------------------------ errors */

int cli_output_status(int status)
{
    const char *why;

    if (fflush(stdout) != 0)
        why = strerror(errno);
    else if (ferror(stdout))
        why = "an earlier write failed"; /* and its buffer was dropped: errno is gone */
    else
        return status;
    if (status != 0 || cli_stop_signal == SIGPIPE)
        return status;
    fprintf(stderr, "shoal: writing the output: %s\n", why);
    return CLI_EXIT_FAIL;
}

int cli_fail(const cli_t *cli, int rc, const char *fmt, ...)
{
    char detail[512];
    va_list ap;

    /* Copy first: shoal_errmsg() is only valid until the next libshoal call. */
    snprintf(detail, sizeof(detail), "%s", shoal_errmsg());
    fputs("shoal: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s", shoal_strerror(rc));
    if (detail[0] && strcmp(detail, shoal_strerror(rc)) != 0)
        fprintf(stderr, " (%s)", detail);
    if (rc == SHOAL_ENODAEMON && !detail[0])
        fprintf(stderr, " (socket: %s)", cli->socket_path);
    if (rc == SHOAL_ENODAEMON && (!detail[0] || strstr(detail, "no shoald listening")))
        fputs("; is shoald running?", stderr); /* not for a daemon refused as another's */
    fputc('\n', stderr);
    return CLI_EXIT_FAIL;
}

int cli_check_topic_name(const char *name)
{
    if (shoal_topic_name_is_valid(name))
        return 0;
    fprintf(stderr, "shoal: topic name '%s': %s\n", name, shoal_strerror(SHOAL_ENAME));
    return CLI_EXIT_USAGE; /* found before connecting, as every bad argument */
}

int cli_connect(const cli_t *cli, shoal_client_t **out)
{
    shoal_client_options_t o;
    int rc;

    shoal_client_options_init(&o);
    if (cli->request_timeout_ms > 0)
        o.timeout_ms = cli->request_timeout_ms;
    rc = shoal_client_open_opts(cli->socket_path, &o, out);
    if (rc < 0)
        return cli_fail(cli, rc, "cannot connect to shoald");
    return 0;
}

/* ------------------------------------------------------------------ options */

static void cli_unknown_option(const cli_t *cli, int argc, char **argv, int opt)
{
    const char *arg = argv[optind - 1];

    if (opt == ':')
        cli_usage_fail(cli, "option '%s' needs a value", arg);
    if (optopt > 0 && optopt < 128) {
        /* getopt stays on a word whose letters it has not all read ("-dash" after '-d') */
        if (optind < argc && argv[optind][0] == '-' && strchr(argv[optind] + 1, optopt))
            arg = argv[optind];
        cli_usage_fail(cli,
                       "unknown option '-%c' in '%s' (a name that begins with '-' goes after "
                       "'--')",
                       optopt, arg);
    }
    if (optopt != 0)
        cli_usage_fail(cli, "option '%s' takes no value", arg);
    cli_usage_fail(cli, "unknown option '%s'", arg);
}

int cli_next_opt(cli_t *cli, int argc, char **argv, const struct option *opts)
{
    int opt;

    if (cli->optind == 0) {
        optind = 0; /* glibc: reinitialise getopt for this argv */
        opterr = 0; /* we print our own messages */
    }
    for (;;) {
        opt = getopt_long(argc, argv, ":h", opts, NULL);
        cli->optind = optind;
        if (opt == CLI_OPT_SOCKET) {
            cli->socket_path = optarg;
        } else if (opt == CLI_OPT_REQUEST_TIMEOUT) {
            cli->request_timeout_ms = cli_parse_request_timeout(cli, optarg);
        } else if (opt == CLI_OPT_HELP || opt == 'h') {
            cli_print_command_help(cli->command);
            exit(cli_output_status(0));
        } else if (opt == '?' || opt == ':') {
            cli_unknown_option(cli, argc, argv, opt);
        } else {
            return opt;
        }
    }
}

/* Copy into buf the argument at index (from 0) of the command's synopsis: "NAME" in
 * "produce NAME [--partition N]". Arguments are the words after the command's own, up to
 * the first option or option group; buf is empty when there is no such argument. */
static void cli_synopsis_argument(const cli_command_t *cmd, int index, char *buf, size_t cap)
{
    const char *p = cmd->synopsis;
    int skip = cmd->group ? 2 : 1; /* "topic create", "produce" */

    buf[0] = '\0';
    for (int word = 0; *p; word++) {
        size_t len;

        p += strspn(p, " ");
        len = strcspn(p, " ");
        if (word >= skip && (*p == '[' || *p == '(' || *p == '-'))
            return;
        if (word == skip + index) {
            snprintf(buf, cap, "%.*s", (int)len, p);
            return;
        }
        p += len;
    }
}

void cli_expect_args(const cli_t *cli, int argc, char **argv, int n)
{
    int have = argc - cli->optind;
    char name[64];

    if (have < n) {
        cli_synopsis_argument(cli->command, have, name, sizeof(name));
        cli_usage_fail(cli, "missing argument%s%s", name[0] ? " " : "", name);
    }
    if (have > n)
        cli_usage_fail(cli, "unexpected argument '%s'", argv[cli->optind + n]);
}

/* ------------------------------------------------------------------ numbers */

/* Parse the leading digits of s into *out; returns the first non-digit, or NULL when there
 * are no digits or the value exceeds max. */
static const char *cli_parse_digits(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return NULL;
        v = v * 10 + d;
    }
    if (p == s)
        return NULL;
    *out = v;
    return p;
}

uint64_t cli_parse_range(const cli_t *cli, const char *option, const char *s, uint64_t min,
                         uint64_t max)
{
    uint64_t v;
    const char *end = cli_parse_digits(s, max, &v);

    if (!end || *end != '\0' || v < min)
        cli_usage_fail(cli, "invalid value for %s: '%s' (expected a whole number %llu..%llu)",
                       option, s, (unsigned long long)min, (unsigned long long)max);
    return v;
}

int32_t cli_parse_request_timeout(const cli_t *cli, const char *s)
{
    return (int32_t)cli_parse_range(cli, "--request-timeout-ms", s, 1, INT32_MAX);
}

uint64_t cli_parse_uint(const cli_t *cli, const char *option, const char *s, uint64_t max)
{
    return cli_parse_range(cli, option, s, 0, max);
}

uint64_t cli_parse_size(const cli_t *cli, const char *option, const char *s, uint64_t max)
{
    uint64_t v = 0;
    const char *end = cli_parse_digits(s, UINT64_MAX, &v);
    int shift = end ? shoal__size_suffix_shift(end) : -1;

    if (shift < 0)
        cli_usage_fail(cli,
                       "invalid size for %s: '%s' (expected a number of bytes with an optional "
                       "K, M or G suffix, or KiB, MiB, GiB)",
                       option, s);
    if (v > (max >> shift))
        cli_usage_fail(cli, "invalid size for %s: '%s' (at most %llu bytes)", option, s,
                       (unsigned long long)max);
    return v << shift;
}
