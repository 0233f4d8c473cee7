/* test_cli.c - the `shoal` tool as a user runs it, against a real shoald: exit statuses
 * and messages of help and usage errors, output that cannot be written, long input lines
 * for produce, and where consume starts and stops when records are gone.
 *
 * Every test runs $BUILD/shoal through sh(1) under timeout(1), so a command that hangs
 * fails its test with status 124 instead of stalling the run. One daemon serves the whole
 * group; each test uses topics of its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "shoal.h"

#define TEST_TIMEOUT_S 120
#define CLI_TIMEOUT_S  30
#define OUT_BYTES      (64 * 1024)

static struct harness_fixture fixture;
static char out[OUT_BYTES];
static char
    enospc[128]; /* the daemon's SHOALD_TEST_ENOSPC_FILE: the disk is full while it exists */

/* ------------------------------------------------------------------ helpers */

/* The tool on the fixture's daemon, under timeout(1): 124 when it runs past CLI_TIMEOUT_S. */
static const char *shoal_command(const struct harness_fixture *f)
{
    static char cmd[PATH_MAX + 256];
    const char *build = getenv("BUILD");

    snprintf(cmd, sizeof(cmd), "timeout %d %s/shoal --socket '%s'", CLI_TIMEOUT_S,
             build && *build ? build : "build", f->d.socket);
    return cmd;
}

/* Run a shell script with its standard output captured in out[] (the first OUT_BYTES - 1
 * bytes; the rest is read and dropped). Returns its exit status. */
static int run_script(const char *script)
{
    size_t used = 0, n;
    FILE *fp;
    int status;

    assert_non_null(fp = popen(script, "r"));
    while ((n = fread(out + used, 1, sizeof(out) - 1 - used, fp)) > 0)
        used += n;
    out[used] = '\0';
    while (fgetc(fp) != EOF)
        ;
    status = pclose(fp);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Run `[input |] shoal ARGS` with its standard error, and its standard output unless ARGS
 * redirect it, captured in out[]; returns the exit status. input, when not NULL, is a shell
 * command that feeds the tool's standard input. */
static int run_cli(const struct harness_fixture *f, const char *input, const char *args)
{
    char script[8192];

    /* 2>&1 comes first, so that a redirection of stdout in args leaves stderr in the pipe. */
    snprintf(script, sizeof(script), "%s%s %s 2>&1 %s", input ? input : "", input ? " |" : "",
             shoal_command(f), args);
    return run_script(script);
}

/* run_cli(): the status must be want_status, and the output must contain each of the
 * strings after args (a NULL-terminated list). */
static void expect_cli(const struct harness_fixture *f, int want_status, const char *input,
                       const char *args, ...)
{
    int status = run_cli(f, input, args);
    const char *needle;
    va_list ap;

    if (status != want_status)
        fail_msg("shoal %s: status %d, want %d; output:\n%s", args, status, want_status, out);
    va_start(ap, args);
    while ((needle = va_arg(ap, const char *)) != NULL)
        if (!strstr(out, needle))
            fail_msg("shoal %s: no \"%s\" in the output:\n%s", args, needle, out);
    va_end(ap);
}

/* Wait up to 10 s until partition 0 of topic is on disk up to its log end. */
static void wait_flushed(const struct harness_fixture *f, const char *topic)
{
    for (int i = 0; i < 1000; i++) {
        shoal_topic_info_t *info;
        bool flushed;

        assert_int_equal(shoal_topic_describe(f->c, topic, &info), 0);
        flushed = info->partitions[0].flushed_offset == info->partitions[0].log_end_offset;
        shoal_topic_info_free(info);
        if (flushed)
            return;
        usleep(10000);
    }
    fail_msg("%s was not flushed to disk in 10 s", topic);
}

/* ------------------------------------------------------------------ help and usage */

/* `help topic`, `topic --help` and `topic -h` (and the same for group) print the
 * subcommands' usage lines with status 0. */
INTEG_TEST(test_cli_help_of_a_command_group_lists_its_subcommands)
{
    static const char *const topic_help[] = {"help topic", "topic --help", "topic -h"};
    static const char *const group_help[] = {"help group", "group --help", "group -h"};

    for (size_t i = 0; i < 3; i++) {
        expect_cli(f, 0, NULL, topic_help[i], "shoal topic create NAME", "shoal topic alter NAME",
                   "shoal topic list", "shoal topic describe NAME", "shoal topic delete NAME",
                   NULL);
        expect_cli(f, 0, NULL, group_help[i], "shoal group list", "shoal group describe GROUP",
                   "shoal group reset-offsets GROUP", "shoal group delete GROUP", NULL);
    }
}

/* Usage errors name what is wrong: the unknown subcommand, the missing argument. */
INTEG_TEST(test_cli_usage_errors_name_the_word_at_fault)
{
    expect_cli(f, 2, NULL, "topic bogus", "unknown topic subcommand 'bogus'",
               "shoal topic create NAME", NULL);
    expect_cli(f, 2, NULL, "help group bogus", "unknown group subcommand 'bogus'", NULL);
    expect_cli(f, 2, NULL, "topic", "'topic' needs a subcommand", "shoal topic list", NULL);
    expect_cli(f, 2, NULL, "help nothing", "unknown command 'nothing'", NULL);
    expect_cli(f, 2, NULL, "produce", "missing argument NAME", NULL);
    expect_cli(f, 2, NULL, "group reset-offsets", "missing argument GROUP", NULL);
    expect_cli(f, 2, NULL, "stats", "missing argument TOPIC", NULL);
    expect_cli(f, 2, NULL, "dump", "missing argument PATH", NULL);
    expect_cli(f, 2, NULL, "topic create t --partitions 0", "'0' (expected a whole number 1..",
               NULL);
    expect_cli(f, 2, NULL, "topic create t --partitions -1", "'-1' (expected a whole number 1..",
               NULL);
    expect_cli(f, 2, NULL, "topic alter t --partitions 1025", /* as create, before connecting */
               "'1025' (expected a whole number 1..1024)", NULL);
    /* a value out of range or a bad --set is one too, as --partitions 0 was (they exited
     * 1, as if the broker had failed: an exploratory session) */
    expect_cli(f, 2, NULL, "topic create t --segment-bytes 1K", "segment.bytes must be 65536..",
               NULL);
    expect_cli(f, 2, NULL, "topic create t --set retention.ms=abc", "retention.ms", "'abc'", NULL);
    expect_cli(f, 2, NULL, "topic alter t --set bogus=1", "unknown topic setting 'bogus'", NULL);
    /* and so are a bad topic name and a bad group id (status 1 until an audit) */
    expect_cli(f, 2, NULL, "topic create ..", "topic name '..': invalid topic name", NULL);
    expect_cli(f, 2, NULL, "produce 'a b' </dev/null", "topic name 'a b'", NULL);
    expect_cli(f, 2, NULL, "group describe .", "group id '.': invalid group id", "not '.' or '..'",
               NULL);
    /* a name that looks like options: the word is named, and the way out (it said "option
     * 'describe' takes no value") */
    expect_cli(f, 2, NULL, "topic describe -dash", "unknown option '-d' in '-dash'",
               "goes after '--'", NULL);
}

/* shoald checks its runtime directory and socket path before it creates a shm directory
 * or a metadata store, and says what is wrong: a runtime directory that is a file, a
 * socket path too long, one where the fixture's daemon already listens, and one whose
 * shoald.sock is a plain file (before, those two were found only after recovery had made
 * the shm directory and the rings). */
INTEG_TEST(test_shoald_refuses_a_bad_runtime_dir_before_creating_anything)
{
    char script[3 * PATH_MAX], bin[PATH_MAX], shm[64], meta[PATH_MAX];
    static const char *const cases[][2] = {
        {"file", "cannot create"},
        {"rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"
         "rrrrrrrrrrrrrrrrrrrrrr",
         "control socket path too long"},
        {"", "a daemon already listens there"},
        {"notsock", "shoald.sock exists and is not a socket"},
    };

    snprintf(shm, sizeof(shm), "/dev/shm/shoal.badrt-%d", (int)getpid());
    snprintf(meta, sizeof(meta), "%s/bad-data/meta", f->d.dir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(script, sizeof(script),
                 "touch '%s/file' && mkdir -p '%s/notsock' && touch '%s/notsock/shoald.sock' && "
                 "timeout 10 %s --instance badrt-%d --data-dir '%s/bad-data' "
                 "--runtime-dir '%s/%s' 2>&1",
                 f->d.dir, f->d.dir, f->d.dir, harness_shoald_bin(bin, sizeof(bin)), (int)getpid(),
                 f->d.dir, cases[i][0][0] ? f->d.dir : f->d.run_dir, cases[i][0]);
        assert_int_equal(run_script(script), 1);
        if (!strstr(out, cases[i][1]))
            fail_msg("no \"%s\" in:\n%s", cases[i][1], out);
        assert_int_equal(access(shm, F_OK), -1);
        assert_int_equal(access(meta, F_OK), -1);
    }
}

/* A data or runtime directory that another user may write (itself, or one on its way), or
 * that another user owns, is refused before shoald creates files in it, and so is a link
 * where the metadata store's files or the log file go: a local security session planted
 * links that a root shoald followed (its LMDB lock file written over another file, the
 * socket's chown giving a file's group away, its log appended to another file). The log
 * file's directory is held to the same rule, and the file must be shoald's user's. A
 * directory not made yet is not made under a parent that is refused. */
INTEG_TEST(test_shoald_refuses_directories_other_users_may_write)
{
    char script[4 * PATH_MAX], bin[PATH_MAX], victim[PATH_MAX], *text;
    const char *d = f->d.dir, *shoald = harness_shoald_bin(bin, sizeof(bin));
    size_t len;
    static const char *const cases[][3] = {
        /* --data-dir, --runtime-dir under d; what the log says */
        {"open/data", "rt", "not safe for shoald's files"},
        {"data2", "wrun", "the runtime directory"},
        {"ln/data", "rt", "lock.mdb is not a regular file"},
        {"theirs", "rt", "uid 65534"},
    };

    snprintf(victim, sizeof(victim), "%s/victim", d);
    harness_write_file(victim, "keep\n", 5);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (i == 3 && geteuid() != 0)
            break; /* only root can give a directory away */
        snprintf(script, sizeof(script),
                 "(cd '%s' && mkdir -p -m 0777 open wrun && chmod 0777 open wrun && "
                 "mkdir -p ln/data/meta && ln -sf '%s' ln/data/meta/lock.mdb && "
                 "mkdir -p theirs && chown 65534 theirs 2>/dev/null); "
                 "timeout 10 %s --instance unsafe-%d --data-dir '%s/%s' --runtime-dir '%s/%s' 2>&1",
                 d, victim, shoald, (int)getpid(), d, cases[i][0], d, cases[i][1]);
        if (run_script(script) != 1 || !strstr(out, cases[i][2]))
            fail_msg("no failure saying \"%s\" in:\n%s", cases[i][2], out);
    }
    snprintf(script, sizeof(script), "%s/open/data", d); /* checked before it was made */
    assert_int_equal(access(script, F_OK), -1);
    /* nor does the log go through a link (it was appended to the link's target) */
    snprintf(script, sizeof(script),
             "ln -sf '%s' '%s/log' && timeout 10 %s --instance unsafe-%d --data-dir '%s/data3' "
             "--runtime-dir '%s/rt' --log-file '%s/log' 2>&1",
             victim, d, shoald, (int)getpid(), d, d, d);
    if (run_script(script) != 1 || !strstr(out, "log is not a regular file (a symbolic link)"))
        fail_msg("no refused log file in:\n%s", out);
    assert_non_null(text = (char *)harness_read_file(victim, &len));
    assert_memory_equal(text, "keep\n", 5); /* never written through the link */
    assert_int_equal(len, 5);
    free(text);
    /* nor into a directory another user may write (one who owned a directory on the way
     * swapped it for a link, and root's log went where it led), nor into another user's
     * file (who then read the log): an audit */
    snprintf(script, sizeof(script),
             "timeout 10 %s --instance unsafe-%d --data-dir '%s/data3' --runtime-dir '%s/rt' "
             "--log-file '%s/open/shoald.log' 2>&1",
             shoald, (int)getpid(), d, d, d);
    if (run_script(script) != 1 || !strstr(out, "the log file's directory") ||
        !strstr(out, "is not safe for shoald's files"))
        fail_msg("no refused log directory in:\n%s", out);
    /* nor through a hard link, which would have it written over another file */
    snprintf(script, sizeof(script),
             "ln -f '%s' '%s/hard.log' && timeout 10 %s --instance unsafe-%d --data-dir "
             "'%s/data3' --runtime-dir '%s/rt' --log-file '%s/hard.log' 2>&1",
             victim, d, shoald, (int)getpid(), d, d, d);
    if (run_script(script) != 1 || !strstr(out, "hard.log has 2 names (hard links)"))
        fail_msg("no refused hard link in:\n%s", out);
    /* a sticky directory such as /tmp is fine: nobody else can replace the file there */
    snprintf(script, sizeof(script),
             "mkdir -m 1777 '%s/sticky' && chmod 1777 '%s/sticky' && timeout -s TERM 2 %s "
             "--instance unsafe-%d --data-dir '%s/data3' --runtime-dir '%s/rt' --shm-dir '%s' "
             "--log-file '%s/sticky/shoald.log'; grep -c 'ready' '%s/sticky/shoald.log'",
             d, d, shoald, (int)getpid(), d, d, d, d, d);
    if (run_script(script) != 0 || strcmp(out, "1\n"))
        fail_msg("shoald did not log to a sticky directory:\n%s", out);
    if (geteuid() != 0)
        return; /* only root can give a file away */
    snprintf(
        script, sizeof(script),
        "touch '%s/theirs.log' && chown 65534 '%s/theirs.log' && timeout 10 %s --instance "
        "unsafe-%d --data-dir '%s/data3' --runtime-dir '%s/rt' --log-file '%s/theirs.log' 2>&1",
        d, d, shoald, (int)getpid(), d, d, d);
    if (run_script(script) != 1 || !strstr(out, "theirs.log belongs to uid 65534"))
        fail_msg("no refused log file of another user in:\n%s", out);
}

/* On an empty broker (this test runs first) the lists say so: `topic list` on stderr, so
 * that its standard output stays one name per line, and `group list` with its header. */
INTEG_TEST(test_cli_lists_of_an_empty_broker_say_so)
{
    expect_cli(f, 0, NULL, "topic list 2>/dev/null | wc -l", "0\n", NULL);
    expect_cli(f, 0, NULL, "topic list", "(no topics)\n", NULL);
    expect_cli(f, 0, NULL, "group list 2>/dev/null", "GROUP", "STATE", "MEMBERS", NULL);
    expect_cli(f, 0, NULL, "group list", "(no groups)\n", NULL);
}

/* $SHOAL_DAEMON_USER: a daemon of that user serves the command; one of another user is
 * refused, saying whose it is, and not as a daemon that is not running. */
INTEG_TEST(test_cli_connects_only_to_the_daemon_user_it_is_told)
{
    char script[8192];

    snprintf(script, sizeof(script), "SHOAL_DAEMON_USER=%u %s topic list 2>&1", (unsigned)geteuid(),
             shoal_command(f));
    assert_int_equal(run_script(script), 0);
    assert_non_null(strstr(out, "(no topics)"));
    snprintf(script, sizeof(script), "SHOAL_DAEMON_USER=%u %s topic list 2>&1",
             (unsigned)geteuid() + 1, shoal_command(f));
    assert_int_equal(run_script(script), 1);
    assert_non_null(strstr(out, "not as the daemon's user"));
    assert_null(strstr(out, "is shoald running?"));
}

/* A daemon stopped (or hung) still takes connections: --request-timeout-ms, before or after
 * the command, is how long a command waits for it (30 s otherwise). */
INTEG_TEST(test_cli_request_timeout_bounds_the_wait_for_a_stopped_daemon)
{
    time_t t0;

    expect_cli(f, 2, NULL, "--request-timeout-ms 0 topic list", "--request-timeout-ms", NULL);
    expect_cli(f, 0, NULL, "topic list --request-timeout-ms=300", "(no topics)", NULL);
    assert_int_equal(kill(f->d.pid, SIGSTOP), 0);
    t0 = time(NULL);
    expect_cli(f, 1, NULL, "--request-timeout-ms 300 topic list", "did not answer its handshake",
               NULL);
    expect_cli(f, 1, NULL, "consume t --timeout-ms 100 --request-timeout-ms=300",
               "did not answer its handshake", NULL);
    assert_int_equal(kill(f->d.pid, SIGCONT), 0);
    assert_true(time(NULL) - t0 < 5); /* not the 30 s each would wait without the option */
}

/* ------------------------------------------------------------------ output */

/* Every command that prints to stdout fails with status 1 when the output cannot be
 * written, and says why. */
INTEG_TEST(test_cli_reports_a_failed_write_of_its_output)
{
    static const char *const commands[] = {
        "topic list",   "topic describe full",
        "group list",   "group describe full-group",
        "stats full",   "--help",
        "--version",    "topic list --help",
        "help produce", "consume full --from-beginning --max-messages 1",
    };
    char args[256];

    if (access("/dev/full", W_OK) != 0)
        skip();
    expect_cli(f, 0, NULL, "topic create full", NULL);
    expect_cli(f, 0, "echo record", "produce full", NULL);
    expect_cli(f, 0, NULL, "consume full --group full-group --from-beginning --max-messages 1",
               "record", NULL);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        snprintf(args, sizeof(args), "%s >/dev/full", commands[i]);
        expect_cli(f, 1, NULL, args, "writing the output: No space left on device", NULL);
        snprintf(args, sizeof(args), "%s >/dev/null", commands[i]);
        expect_cli(f, 0, NULL, args, NULL);
    }
}

/* A group member whose output fails commits none of the records it could not write: the
 * next member of the group reads them. (The member committed them at close: records lost
 * for the group, found by a user session.) */
INTEG_TEST(test_cli_consume_in_a_group_commits_no_record_its_output_refused)
{
    if (access("/dev/full", W_OK) != 0)
        skip();
    expect_cli(f, 0, NULL, "topic create unwritten --partitions 2", NULL);
    expect_cli(f, 0, "seq 1 40", "produce unwritten", "produced 40 records", NULL);
    expect_cli(f, 1, NULL,
               "consume unwritten --group g --from-beginning --timeout-ms 300 >/dev/full",
               "writing the output: No space left on device", NULL);
    expect_cli(f, 0, NULL,
               "consume unwritten --group g --from-beginning --timeout-ms 1000 | "
               "awk '{ n++; s += $1 } END { print n \" records, sum \" s }'",
               "40 records, sum 820", NULL); /* 1 + ... + 40: each record once */
}

/* A member whose group never assigns it anything before its wait ends (a rebalance held up
 * by a member that does not rejoin) says so; it ended with status 0 and not a word, as if
 * the topic were empty. */
INTEG_TEST(test_cli_consume_never_assigned_says_so)
{
    const char *topics[] = {"stuckt"};
    shoal_consumer_options_t o;
    shoal_consumer_t *holder;
    shoal_record_t r;
    int rc = SHOAL_EGENERATION;

    expect_cli(f, 0, NULL, "topic create stuckt", NULL);
    shoal_consumer_options_init(&o);
    o.group_id = "stuck";
    o.session_timeout_ms = 30000;
    o.max_poll_interval_ms = 60000; /* how long a rebalance waits for it to rejoin */
    assert_int_equal(shoal_consumer_open(f->c, &o, &holder), 0);
    assert_int_equal(shoal_consumer_subscribe(holder, topics, 1), 0);
    for (int i = 0; i < 100 && rc != 0; i++) { /* until it has its partition */
        assert_true(shoal_poll(holder, &r, 1, 50) >= 0);
        rc = shoal_commit_sync(holder, NULL, 0);
    }
    assert_int_equal(rc, 0);
    /* the holder polls no more: the CLI member's join waits for it */
    expect_cli(f, 0, NULL, "consume stuckt --group stuck --timeout-ms 200",
               "group stuck gave this member no assignment", "shoal group describe stuck", NULL);
    shoal_consumer_close(holder);
}

/* A group member stopped (Ctrl-Z) past its session timeout and its --timeout-ms ends when
 * it resumes: the group removed it, so its commit at exit is refused; that is a warning
 * (its output is whole, and the group reads what it had not committed again), not the
 * failure it was (status 1, "commit at exit: stale generation": found by a user session). */
INTEG_TEST(test_cli_consume_removed_from_its_group_while_stopped_ends_with_a_warning)
{
    char script[512];

    expect_cli(f, 0, NULL, "topic create paused", NULL);
    expect_cli(f, 0, "seq 1 5", "produce paused", "produced 5 records", NULL);
    snprintf(script, sizeof(script),
             "consume paused --group gp --from-beginning --timeout-ms 2000 >/dev/null & "
             "pid=$!; sleep 1.5; pkill -STOP -P $pid; sleep 11; pkill -CONT -P $pid; "
             "wait $pid; echo status $?"); /* $pid is timeout(1): its child is shoal */
    expect_cli(f, 0, NULL, script, "status 0", "the group had removed this member", NULL);
}

/* Group tables are as wide as their longest names: a group id or topic name past 30
 * characters pushed its row's columns out from under their headers (a user session). */
INTEG_TEST(test_cli_group_tables_keep_long_names_in_their_columns)
{
    const char *row, *head;

    expect_cli(f, 0, NULL, "topic create a-topic-name-longer-than-thirty-characters", NULL);
    expect_cli(f, 0, NULL,
               "group reset-offsets a-group-id-longer-than-thirty-characters --topic "
               "a-topic-name-longer-than-thirty-characters --to-latest",
               NULL);
    expect_cli(f, 0, NULL, "group list 2>/dev/null", "STATE", NULL);
    row = strstr(out, "\na-group-id-longer-than-thirty-characters");
    assert_non_null(row);
    assert_int_equal(strstr(out, "STATE") - out, strstr(row, "Empty") - (row + 1));
    expect_cli(f, 0, NULL, "group describe a-group-id-longer-than-thirty-characters", NULL);
    head = strstr(out, "\nTOPIC") + 1;
    row = strstr(out, "\na-topic-name-longer-than-thirty-characters") + 1;
    assert_true(row != (const char *)1 && head != (const char *)1);
    /* partition 0's number ends where PARTITION does (right-aligned) */
    assert_int_equal(strstr(head, "PARTITION") + strlen("PARTITION") - head,
                     strstr(row, " 0 ") + strlen(" 0") - row);
}

/* ------------------------------------------------------------------ produce */

/* A line longer than the topic's largest record is refused once that much of it is in,
 * and the rest of the input is left unread. The input is a 64 MiB file, one short line
 * then one long one (sparse: it takes no disk), opened by the shell for produce and then
 * for wc(1) on one shared offset, so wc counts the bytes produce did not read. */
INTEG_TEST(test_cli_produce_refuses_a_too_long_line_without_reading_it_all)
{
    char input[PATH_MAX], script[PATH_MAX * 3];
    const char *status;
    FILE *fp;

    expect_cli(f, 0, NULL,
               "topic create toolong --segment-bytes 1M --ring-slots 2 "
               "--max-record-bytes 1K",
               NULL);
    snprintf(input, sizeof(input), "%s/long-line", f->d.dir);
    assert_non_null(fp = fopen(input, "w"));
    fputs("first\n", fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(truncate(input, 64 << 20), 0);
    snprintf(script, sizeof(script), "{ %s produce toolong; echo status $?; wc -c; } <'%s' 2>&1",
             shoal_command(f), input);
    assert_int_equal(run_script(script), 0);
    if (!strstr(out, "(input line 2): record larger than the topic's maximum record size") ||
        !strstr(out, "appended 1 record to toolong before the error") ||
        !(status = strstr(out, "status 1\n")))
        fail_msg("unexpected output:\n%s", out);
    /* produce reads 64 KiB at a time: a few reads past 1 KiB, not the whole file */
    assert_true(strtoull(status + strlen("status 1\n"), NULL, 10) > (60u << 20));
}

/* A line that takes many reads but fits the topic's records is sent whole, between its
 * neighbours. */
INTEG_TEST(test_cli_produce_sends_a_long_line_the_topic_accepts)
{
    expect_cli(f, 0, NULL, "topic create longok --segment-bytes 1M --ring-slots 2", NULL);
    expect_cli(f, 0, "(echo first; head -c 300000 /dev/zero | tr '\\0' b; printf '\\nlast\\n')",
               "produce longok", "produced 3 records to longok", NULL);
    expect_cli(f, 0, NULL,
               "consume longok --from-beginning --max-messages 3 --format '%o %v\\n' | "
               "awk '{ print $1, length($2) }'",
               "0 5\n1 300000\n2 4\n", NULL);
}

/* consume writing into a pipe nobody reads yet blocks in write(), holding no ring slot:
 * producers that come round the ring meanwhile are not held back (block_ms 1000 would
 * refuse them with SHOAL_AGAIN). */
INTEG_TEST(test_cli_consume_blocked_on_its_output_holds_no_producer_back)
{
    shoal_topic_config_t cfg;
    shoal_producer_options_t po;
    shoal_producer_t *p;
    char value[4000], cmd[PATH_MAX * 2];
    shoal_message_t m = {.value = value, .value_len = sizeof(value), .partition = 0};
    FILE *slow;

    shoal_topic_config_init(&cfg);
    cfg.segment_bytes = 64 << 10;
    cfg.ring_slots = 2;
    cfg.max_record_bytes = 16 << 10;
    assert_int_equal(shoal_topic_create(f->c, "piped", &cfg), 0);
    memset(value, 'v', sizeof(value));
    shoal_producer_options_init(&po);
    po.block_ms = 1000;
    assert_int_equal(shoal_producer_open(f->c, "piped", &po, &p), 0);
    for (int i = 0; i < 40; i++) /* the last ~30 in the ring's two slots */
        assert_int_equal(shoal_send(p, &m, NULL), 0);
    snprintf(cmd, sizeof(cmd),
             "%s consume piped --from-beginning --timeout-ms 2000 | (sleep 3; cat >/dev/null)",
             shoal_command(f));
    assert_non_null(slow = popen(cmd, "r"));
    usleep(1000 * 1000);          /* it has filled the pipe, and blocks writing ring records */
    for (int i = 0; i < 100; i++) /* 400 KB: round the ring six times */
        assert_int_equal(shoal_send(p, &m, NULL), 0);
    shoal_producer_close(p);
    assert_int_equal(pclose(slow), 0);
}

/* produce --acks disk of keyed lines spread over partitions waits for the disk once per
 * partition for the input it has, not once per batch: a batch ends where the partition
 * changes, so those were an fsync every record or two (10,000 lines over three partitions
 * took 7 s, found by a user session). Every record is on disk when it ends. */
INTEG_TEST(test_cli_produce_acks_disk_waits_once_per_partition)
{
    uint64_t fsyncs = 0;

    expect_cli(f, 0, NULL, "topic create keyed --partitions 3", NULL);
    expect_cli(f, 0, "seq 1 3000 | awk '{ print $1 % 7 \":\" $1 }'",
               "produce keyed --acks disk --key-separator :", "produced 3000 records to keyed\n",
               NULL);
    for (int32_t p = 0; p < 3; p++) {
        shoal_partition_stats_t st;
        assert_int_equal(shoal_partition_stats(f->c, "keyed", p, &st), 0);
        assert_int_equal(st.flushed_offset, st.log_end_offset);
        fsyncs += st.fsyncs;
    }
    if (fsyncs > 100) /* ~2,000 when each batch waited */
        fail_msg("%llu fsyncs for 3,000 records", (unsigned long long)fsyncs);
}

/* produce --acks disk while the disk cannot be written: SIGINT stops it within a second
 * (not after the 30 s acknowledgement timeout) with status 130, and it says that the records
 * were appended but none is confirmed on disk. */
INTEG_TEST(test_cli_produce_acks_disk_stops_at_sigint_and_counts_what_was_appended)
{
    char script[PATH_MAX * 2];
    struct timespec t0, t1;
    double seconds;

    expect_cli(f, 0, NULL, "topic create diskwait", NULL);
    harness_flag_file(enospc, true);
    snprintf(script, sizeof(script),
             "printf 'a\\nb\\n' | %s produce diskwait --acks disk 2>&1 & pid=$!; sleep 1; "
             "kill -INT $pid; wait $pid; echo status $?",
             shoal_command(f));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(run_script(script), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    harness_flag_file(enospc, false);
    seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (!strstr(out,
                "produced 2 records to diskwait, of which 0 confirmed on disk (interrupted)") ||
        !strstr(out, "status 130") || seconds > 5)
        fail_msg("after %.1f s:\n%s", seconds, out);
    wait_flushed(f, "diskwait");
}

/* Run 2,000 lines of 500 bytes into a new 2-slot topic whose disk is full, in the
 * background ($pid), until produce warns that it waits for room, then the shell command
 * `then`; produce's standard error is appended to the output. */
static void produce_until_full(const struct harness_fixture *f, const char *topic, const char *then)
{
    char script[PATH_MAX * 2], err[sizeof(f->d.dir) + 32], create[128];

    snprintf(create, sizeof(create), "topic create %s --segment-bytes 64K --ring-slots 2", topic);
    expect_cli(f, 0, NULL, create, NULL);
    snprintf(err, sizeof(err), "%s/produce-%s.err", f->d.dir, topic);
    harness_flag_file(enospc, true);
    snprintf(script, sizeof(script),
             "seq -f '%%0500g' 1 2000 | %s produce %s 2>'%s' & pid=$!; i=0; "
             "while ! grep -q 'still trying' '%s' && [ $i -lt 200 ]; do sleep 0.05; "
             "i=$((i+1)); done; %s; cat '%s'",
             shoal_command(f), topic, err, err, then, err);
    assert_int_equal(run_script(script), 0);
    harness_flag_file(enospc, false);
}

/* produce into a ring the daemon cannot flush (the disk is full) waits, warning once with
 * the cause, and sends everything once the disk takes writes again. */
INTEG_TEST(test_cli_produce_waits_out_a_full_disk_and_names_the_cause)
{
    char then[sizeof(enospc) + 64];
    const char *warning;

    /* Waits for room (100 ms each) fail with the same cause before the disk comes back. */
    snprintf(then, sizeof(then), "sleep 1; rm -f '%s'; wait $pid; echo status $?", enospc);
    produce_until_full(f, "bp", then);
    warning = strstr(out, "shoal: warning: topic 'bp' is full (back-pressure), still trying: ");
    if (!warning || !strstr(out, "cannot write to disk (No space left on device)") ||
        strstr(warning + 1, "shoal: warning:") || !strstr(out, "status 0") ||
        !strstr(out, "produced 2000 records to bp"))
        fail_msg("output:\n%s", out);
}

/* produce waiting for room in a full ring stops at SIGTERM within a fraction of a second,
 * with status 143 and its counts (it waited out the producer's 5 s block_ms first: found by
 * a user session). */
INTEG_TEST(test_cli_produce_waiting_for_room_stops_at_sigterm_at_once)
{
    const char *ms;

    produce_until_full(f, "bpterm",
                       "s=$(date +%s%N); kill -TERM $pid; wait $pid; echo status $?; "
                       "echo took $(( ($(date +%s%N) - s) / 1000000 )) ms");
    ms = strstr(out, "took ");
    if (!strstr(out, "status 143") || !strstr(out, "(interrupted)") || !ms || atoi(ms + 5) > 2000)
        fail_msg("after SIGTERM:\n%s", out);
    wait_flushed(f, "bpterm");
}

/* ------------------------------------------------------------------ consume */

/* --offset below a memory topic's log start: the records there were overwritten, so the
 * tool warns and continues at the oldest record left, not at the end. */
INTEG_TEST(test_cli_consume_from_an_overwritten_offset_continues_at_the_oldest_record)
{
    shoal_topic_info_t *info;
    char want[64];

    expect_cli(f, 0, NULL,
               "topic create ring --storage memory --segment-bytes 64KiB --ring-slots 2", NULL);
    /* describe lists what a memory topic has: no retention, rolls or fsyncs */
    expect_cli(f, 0, NULL, "topic describe ring", "ring.slots", "cleanup.policy", NULL);
    assert_null(strstr(out, "retention.ms"));
    assert_null(strstr(out, "flush.ms"));
    expect_cli(f, 0, "seq 1 20000", "produce ring", "produced 20000 records", NULL);
    assert_int_equal(shoal_topic_describe(f->c, "ring", &info), 0);
    assert_true(info->partitions[0].log_start_offset > 5);
    snprintf(want, sizeof(want), "\n%lld\n", (long long)info->partitions[0].log_start_offset);
    shoal_topic_info_free(info);
    expect_cli(f, 0, NULL,
               "consume ring --offset 5 --max-messages 1 --timeout-ms 5000 --format '%o\\n'",
               "offsets 5..", "were overwritten", want, NULL);
}

static void remove_segment(const struct harness_fixture *f, const char *topic, int64_t base)
{
    static const char *const exts[] = {".log", ".index", ".timeindex"};
    char path[PATH_MAX];

    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s-0/%020lld%s", f->d.data_dir, topic, (long long)base,
                 exts[i]);
        assert_int_equal(unlink(path), 0);
    }
}

/* A segment missing from the middle of a disk log, behind the ring: consume prints the
 * records before it, warns once naming the gap, and reads on past it to the last record
 * (status 0 at --timeout-ms). Before, it said it would read on and exited with status 1;
 * it must never poll the same gap for ever either (timeout(1) would end it: 124). */
INTEG_TEST(test_cli_consume_does_not_spin_on_a_gap_in_a_disk_log)
{
    int64_t bases[64];
    char before_gap[64];
    const char *warning;
    int status;

    expect_cli(f, 0, NULL, "topic create gap --segment-bytes 64K --ring-slots 2", NULL);
    expect_cli(f, 0, "seq -f '%0500g' 1 2000", "produce gap", "produced 2000 records", NULL);
    wait_flushed(f, "gap");
    assert_true(harness_segment_bases(&f->d, "gap", bases, 64) >= 5);
    remove_segment(f, "gap", bases[1]);
    status = run_cli(f, NULL, "consume gap --from-beginning --timeout-ms 1000 --format '%o\\n'");
    snprintf(before_gap, sizeof(before_gap), "\n%lld\n", (long long)bases[1] - 1);
    if (status != 0 || !strstr(out, before_gap) || !strstr(out, "\n1999\n"))
        fail_msg("status %d, output:\n%.2000s", status, out);
    assert_non_null(warning = strstr(out, "warning:"));
    assert_non_null(strstr(warning, "missing from disk"));
    assert_null(strstr(warning + 1, "warning:"));
}

/* A batch damaged in a sealed segment (bytes overwritten on disk): consume prints the records
 * before it, then ends with status 1 naming it, as the README says. Before, the library's one
 * report was a warning and consume then waited as if caught up: for ever, or until
 * --timeout-ms with status 0 and the records after the damage unread. */
INTEG_TEST(test_cli_consume_fails_on_a_damaged_batch)
{
    int64_t bases[64];
    char path[PATH_MAX], before[64];
    int fd, status;

    expect_cli(f, 0, NULL, "topic create bad --segment-bytes 64K --ring-slots 2", NULL);
    expect_cli(f, 0, "seq -f '%0500g' 1 2000", "produce bad", "produced 2000 records", NULL);
    wait_flushed(f, "bad");
    assert_true(harness_segment_bases(&f->d, "bad", bases, 64) >= 5);
    snprintf(path, sizeof(path), "%s/bad-0/%020lld.log", f->d.data_dir, (long long)bases[1]);
    assert_true((fd = open(path, O_WRONLY)) >= 0);
    assert_int_equal(pwrite(fd, "QQQQ", 4, 30000), 4); /* inside a value: the CRC fails */
    close(fd);
    status = run_cli(f, NULL, "consume bad --from-beginning --timeout-ms 1000 --format '%o\\n'");
    snprintf(before, sizeof(before), "\n%lld\n", (long long)bases[1] - 1);
    if (status != 1 || !strstr(out, before) || !strstr(out, "CRC mismatch") ||
        strstr(out, "\n1999\n"))
        fail_msg("status %d, output:\n%.2000s", status, out);
    assert_non_null(strstr(out, "cannot go on past a damaged batch"));
}

/* produce --header puts the headers on every record, and consume prints them with %h; a
 * header without '=' or without a key is a usage error. Before, the tool could print
 * headers but not produce them. */
INTEG_TEST(test_cli_produce_puts_headers_on_every_record)
{
    expect_cli(f, 0, NULL, "topic create headed", NULL);
    expect_cli(f, 0, "printf 'a\\nb\\n'",
               "produce headed --header trace=42 --header src=", "produced 2 records", NULL);
    expect_cli(f, 0, NULL, "consume headed --from-beginning --timeout-ms 200 --format '%h|%v\\n'",
               "trace=42,src=|a\ntrace=42,src=|b\n", NULL);
    expect_cli(f, 2, NULL, "produce headed --header nope", "invalid value for --header: 'nope'",
               NULL);
    expect_cli(f, 2, NULL, "produce headed --header =x", "(expected KEY=VALUE)", NULL);
}

/* produce --parse-headers takes each line's own headers (after the --header ones) in the
 * form consume's %h prints them, so that consume's output produces the same records again;
 * a line without the separator, or with a header that is not KEY=VALUE, ends it with
 * status 1 once the lines before it are sent. Before, headers could only be the same on
 * every record. */
INTEG_TEST(test_cli_produce_parses_each_lines_headers)
{
#define AS_PRODUCED "--from-beginning --timeout-ms 200 --format '%h|%k:%v\\n'"
    const char *want = "src=cli,a=1,b=2|k1:v1\nsrc=cli|k2:v2\nsrc=cli,c=|k3:v3\n";
    char consume[8192];

    expect_cli(f, 0, NULL, "topic create parsed", NULL);
    expect_cli(f, 0, NULL, "topic create again", NULL);
    expect_cli(f, 0, "printf 'a=1,b=2|k1:v1\\n|k2:v2\\nc=|k3:v3\\n'",
               "produce parsed --parse-headers '|' --key-separator : --header src=cli",
               "produced 3 records", NULL);
    expect_cli(f, 0, NULL, "consume parsed " AS_PRODUCED, want, NULL);
    snprintf(consume, sizeof(consume), "%s consume parsed %s", shoal_command(f), AS_PRODUCED);
    expect_cli(f, 0, consume,
               "produce again --parse-headers '|' --key-separator :", "produced 3 records", NULL);
    expect_cli(f, 0, NULL, "consume again " AS_PRODUCED, want, NULL);
#undef AS_PRODUCED

    /* headers with ',', '=', '\\' in them, a null and an empty value, an empty key, read back
     * as they were */
    {
        static const shoal_header_t odd[] = {{"list", 4, "a,b", 3},
                                             {"k=1", 3, "x\\y", 3},
                                             {"none", 4, NULL, -1},
                                             {"empty", 5, "", 0},
                                             {"", 0, "nokey", 5}};
        shoal_message_t m = {.key = "k",
                             .key_len = 1,
                             .value = "v",
                             .value_len = 1,
                             .headers = odd,
                             .header_count = 5,
                             .partition = 0};
        shoal_producer_t *p;
        shoal_consumer_t *k;
        shoal_record_t r;

        expect_cli(f, 0, NULL, "topic create odd", NULL);
        expect_cli(f, 0, NULL, "topic create odd2", NULL);
        assert_int_equal(shoal_producer_open(f->c, "odd", NULL, &p), 0);
        assert_int_equal(shoal_send(p, &m, NULL), 0);
        shoal_producer_close(p);
        snprintf(consume, sizeof(consume), "%s consume odd %s", shoal_command(f),
                 "--from-beginning --timeout-ms 200 --format '%h|%k:%v\\n'");
        expect_cli(f, 0, consume,
                   "produce odd2 --parse-headers '|' --key-separator :", "produced 1 record", NULL);
        assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
        assert_int_equal(shoal_consumer_assign(k, "odd2", NULL, 0), 0);
        assert_int_equal(shoal_consumer_seek(k, "odd2", 0, SHOAL_SEEK_BEGINNING, 0), 0);
        assert_int_equal(shoal_poll(k, &r, 1, 2000), 1);
        assert_int_equal(r.header_count, 5);
        for (size_t i = 0, it = 0; i < 5; i++) {
            shoal_header_t hd;
            assert_int_equal(shoal_record_header(&r, &it, &hd), 1);
            assert_int_equal(hd.key_len, odd[i].key_len);
            assert_memory_equal(hd.key, odd[i].key, hd.key_len);
            assert_int_equal(hd.value_len, odd[i].value_len);
            assert_true((hd.value == NULL) == (odd[i].value == NULL));
            if (hd.value_len > 0)
                assert_memory_equal(hd.value, odd[i].value, (size_t)hd.value_len);
        }
        shoal_consumer_close(k);
    }

    expect_cli(f, 1, "printf 'x=1|one\\ntwo\\n'", "produce parsed --parse-headers '|'",
               "(input line 2): no headers separator", "appended 1 record to parsed", NULL);
    expect_cli(f, 1, "printf ',x=1|three\\n'", "produce parsed --parse-headers '|'",
               "a header without a key", NULL);
    expect_cli(f, 1, "printf 'k=v\\\\|three\\n'", "produce parsed --parse-headers '|'",
               "a '\\' that ends the headers", NULL);
    expect_cli(f, 2, NULL, "produce parsed --parse-headers ''", "must not be empty", NULL);
}

/* produce --null-marker sends a key or value of exactly that text as null: a keyed null
 * value is a tombstone, which compaction uses to delete the key. Before, the CLI could
 * not produce one ("k1:" gives an empty value, which stays). */
INTEG_TEST(test_cli_produce_sends_null_for_the_marker)
{
    shoal_consumer_t *k;
    shoal_record_t r[4];
    int got = 0, n;

    expect_cli(f, 0, NULL, "topic create nulls", NULL);
    expect_cli(f, 0, "printf 'k1:v1\\nk1:NULL\\nNULL:v3\\nk4:\\n'",
               "produce nulls --key-separator : --null-marker NULL", "produced 4 records", NULL);
    assert_int_equal(shoal_consumer_open(f->c, NULL, &k), 0);
    assert_int_equal(shoal_consumer_assign(k, "nulls", NULL, 0), 0);
    assert_int_equal(shoal_consumer_seek(k, "nulls", 0, SHOAL_SEEK_BEGINNING, 0), 0);
    while (got < 4 && (n = shoal_poll(k, r + got, 4 - (size_t)got, 2000)) > 0)
        got += n;
    assert_int_equal(got, 4);
    assert_true(r[0].key_len == 2 && r[0].value_len == 2);
    assert_true(r[1].key_len == 2 && r[1].value == NULL && r[1].value_len == -1);
    assert_true(r[2].key == NULL && r[2].key_len == -1 && r[2].value_len == 2);
    assert_true(r[3].value != NULL && r[3].value_len == 0); /* empty, not null */
    /* a parsed header's value too, as Kafka's console producer does */
    expect_cli(f, 0, "printf 'h=NULL,i=x|k5:v5\\n'",
               "produce nulls --key-separator : --parse-headers '|' --null-marker NULL",
               "produced 1 record to", NULL);
    while (got < 5 && (n = shoal_poll(k, r, 1, 2000)) > 0)
        got += n;
    assert_int_equal(got, 5);
    assert_int_equal(r[0].header_count, 2);
    {
        shoal_header_t hd;
        size_t it = 0;
        assert_int_equal(shoal_record_header(&r[0], &it, &hd), 1);
        assert_true(hd.value == NULL && hd.value_len == -1);
        assert_int_equal(shoal_record_header(&r[0], &it, &hd), 1);
        assert_true(hd.value_len == 1);
    }
    shoal_consumer_close(k);
    expect_cli(f, 2, NULL, "produce nulls --null-marker ''", "must not be empty", NULL);
    /* consume --null-marker prints them back as produce reads them */
    expect_cli(f, 0, NULL,
               "consume nulls --from-beginning --max-messages 4 --format '%k:%v\\n' "
               "--null-marker NULL",
               "k1:v1\nk1:NULL\nNULL:v3\nk4:\n", NULL);
}

/* --offset past the log end says so (it silently read from the end) and reads what comes
 * from there. */
INTEG_TEST(test_cli_consume_from_past_the_end_says_so)
{
    expect_cli(f, 0, NULL, "topic create short", NULL);
    expect_cli(f, 0, "seq 1 4", "produce short", NULL);
    expect_cli(f, 0, NULL, "consume short --offset 10 --timeout-ms 200",
               "--offset 10 is past the end of partition 0 (4): reading from the end", NULL);
}

static int64_t log_start_of(const struct harness_fixture *f, const char *topic)
{
    shoal_topic_info_t *info;
    int64_t start;

    assert_int_equal(shoal_topic_describe(f->c, topic, &info), 0);
    start = info->partitions[0].log_start_offset;
    shoal_topic_info_free(info);
    return start;
}

/* A start before a disk topic's log start (records deleted by retention since), from
 * --offset or from the group's committed offset, is said, with where reading goes on:
 * 8000-odd records were skipped without a word. A group on a topic that does not exist
 * says it waits for it (it printed nothing at all); stats for a partition the topic lacks
 * says how many it has. (--config is --set, as kafka-topics spells it.) */
INTEG_TEST(test_cli_consume_from_before_the_start_says_so)
{
    char want[160];
    int64_t start;

    expect_cli(f, 0, NULL, "topic create kept --segment-bytes 64K --ring-slots 2", NULL);
    expect_cli(f, 0, "seq -f '%0200g' 1 3000", "produce kept", NULL);
    expect_cli(f, 0, NULL, "consume kept --group old --from-beginning --max-messages 10", NULL);
    expect_cli(f, 0, NULL, "topic alter kept --config retention.bytes=100000", NULL);
    for (int i = 0; i < 500 && log_start_of(f, "kept") <= 10; i++)
        usleep(10000);
    assert_true((start = log_start_of(f, "kept")) > 10);
    snprintf(want, sizeof(want),
             "the group's committed offset 10 is before the start of partition 0 (%lld: older "
             "records were deleted by retention): reading from the start",
             (long long)start);
    expect_cli(f, 0, NULL, "consume kept --group old --max-messages 1", want, NULL);
    snprintf(want, sizeof(want), "--offset 5 is before the start of partition 0 (%lld",
             (long long)start);
    expect_cli(f, 0, NULL, "consume kept --offset 5 --max-messages 1", want, NULL);

    expect_cli(f, 0, NULL, "consume typo --group new & sleep 0.5; kill $!",
               "no topic 'typo' (yet): the group waits for it to be created", NULL);
    expect_cli(f, 1, NULL, "stats kept --partition 9", "no such partition (the topic has 1)", NULL);
}

/* --timeout-ms 0 in a group: the member joins, reads what is there and exits. Before, the
 * timeout ran out before the join was answered: nothing printed, status 0. */
INTEG_TEST(test_cli_consume_in_a_group_with_timeout_0_reads_what_is_there)
{
    expect_cli(f, 0, NULL, "topic create now", NULL);
    expect_cli(f, 0, "seq 1 5", "produce now", "produced 5 records", NULL);
    expect_cli(f, 0, NULL,
               "consume now --group nowers --from-beginning --timeout-ms 0 --format '%v\\n'",
               "1\n2\n3\n4\n5\n", NULL);
}

/* A topic of the pattern's deleted while `consume --pattern` reads: at most a warning
 * naming it, and the reading goes on, to a topic created after it (it used to exit with
 * status 1 at the deleted topic's error). */
static void pattern_consumer_outlives_a_deleted_topic(const struct harness_fixture *f)
{
    char script[24576], dir[PATH_MAX / 4];
    const char *s = shoal_command(f);

    snprintf(dir, sizeof(dir), "%s/pattern.out", f->d.dir);
    snprintf(script, sizeof(script),
             "%s consume 'app\\.[a-z]+' --pattern --group apps2 --from-beginning "
             "--timeout-ms 3000 --format '%%t:%%v\\n' >%s 2>&1 & pid=$!; "
             "until grep -q app.web:2 %s; do sleep 0.02; done; "
             "%s topic delete app.db && %s topic create app.new && echo 7 | %s produce app.new; "
             "wait $pid; echo status $?; cat %s",
             s, dir, dir, s, s, s, dir);
    assert_int_equal(run_script(script), 0);
    if (!strstr(out, "status 0") || !strstr(out, "app.new:7"))
        fail_msg("consume --pattern across a delete:\n%s", out);
}

/* --pattern: the group reads every topic whose whole name matches NAME, and %t says which
 * topic a record is from. A pattern is refused without --group, and a bad one says why.
 * `topic list --pattern` shows what a pattern takes. */
INTEG_TEST(test_cli_consume_in_a_group_by_pattern_reads_every_matching_topic)
{
    expect_cli(f, 0, NULL, "topic create app.web", NULL);
    expect_cli(f, 0, NULL, "topic create app.db", NULL);
    expect_cli(f, 0, NULL, "topic create app.web.old", NULL);
    expect_cli(f, 0, "seq 1 2", "produce app.web", NULL);
    expect_cli(f, 0, "seq 3 3", "produce app.db", NULL);
    expect_cli(f, 0, "seq 9 9", "produce app.web.old", NULL);
    expect_cli(f, 0, NULL, "topic list --pattern 'app\\.[a-z]+'", "app.db\napp.web\n", NULL);
    assert_null(strstr(out, "app.web.old"));
    expect_cli(f, 0, NULL, "topic list --pattern 'zz.*'", "(no topic matches 'zz.*')", NULL);
    expect_cli(f, 2, NULL, "topic list --pattern 'a('",
               "--pattern: topic pattern 'a(': a '(' without its ')'", NULL);
    expect_cli(f, 0, NULL,
               "consume 'app\\.[a-z]+' --pattern --group apps --from-beginning --timeout-ms 0 "
               "--format '%t:%v\\n' | sort",
               "app.db:3\napp.web:1\napp.web:2\n", NULL);
    assert_null(strstr(out, "app.web.old"));
    pattern_consumer_outlives_a_deleted_topic(f);
    expect_cli(f, 2, NULL, "consume 'app.*' --pattern", "--pattern", "it needs --group", NULL);
    expect_cli(f, 1, NULL, "consume 'app.(' --pattern --group apps",
               "topic pattern 'app.(': a '(' without its ')'", NULL);
}

/* The text of path once it holds needle (NUL-terminated, to free), or NULL after ms. */
static char *file_when_it_says(const char *path, const char *needle, int ms)
{
    for (int waited = 0; waited <= ms; waited += 10, usleep(10000)) {
        size_t len;
        char *text = (char *)harness_read_file(path, &len);
        if (text && (text[len] = '\0', strstr(text, needle)))
            return text;
        free(text);
    }
    return NULL;
}

/* A group consumer outlives a daemon restart: it warns once that shoald went away, rejoins
 * when it is back (and says so: it did not, an exploratory session) and prints what was
 * produced meanwhile, from its committed offsets. Before, `consume --group` exited with
 * status 1 at the restart. */
INTEG_TEST(test_cli_consume_in_a_group_outlives_a_daemon_restart)
{
    char script[2 * PATH_MAX + 512], file[64];
    char *text;

    snprintf(file, sizeof(file), "/tmp/shoal-test-cli-group-%d", (int)getpid());
    expect_cli(f, 0, NULL, "topic create lasting", NULL);
    expect_cli(f, 0, "seq 1 3", "produce lasting", NULL);
    snprintf(script, sizeof(script),
             "(%s consume lasting --group lasters --from-beginning --timeout-ms 3000 "
             "--format '%%v\n' > %s 2>&1; echo \"status $?\" >> %s) </dev/null >/dev/null 2>&1 &",
             shoal_command(f), file, file);
    assert_int_equal(run_script(script), 0);
    assert_non_null(text = file_when_it_says(file, "3\n", 5000));
    assert_non_null(strstr(text, "1\n2\n3\n"));
    free(text);

    shoal_client_close(f->c);
    f->c = NULL;
    assert_int_equal(harness_daemon_stop(&f->d), 0);
    usleep(300000); /* the consumer finds it gone */
    assert_int_equal(harness_daemon_restart(&f->d), 0);
    assert_int_equal(shoal_client_open(f->d.socket, &f->c), 0);
    expect_cli(f, 0, "seq 4 6", "produce lasting", NULL);
    text = file_when_it_says(file, "status ", 15000);
    unlink(file);
    assert_non_null(text);
    if (!strstr(text, "4\n5\n6\n") || !strstr(text, "status 0") ||
        !strstr(text, "waiting for shoald to come back") ||
        !strstr(text, "shoald is back; group lasters assigned 1 partition\n"))
        fail_msg("the consumer's output:\n%s", text);
    free(text);
}

/* The records of topic in each of its n partitions (log end offsets), into ends[]. */
static void partition_ends(const struct harness_fixture *f, const char *topic, int64_t *ends,
                           uint32_t n)
{
    shoal_topic_info_t *info;

    assert_int_equal(shoal_topic_describe(f->c, topic, &info), 0);
    assert_int_equal(info->config.partitions, n);
    for (uint32_t i = 0; i < n; i++)
        ends[i] = info->partitions[i].log_end_offset;
    shoal_topic_info_free(info);
}

/* A `shoal produce` running when partitions are added places keyed lines by the new count
 * from then on (it computes keyed partitions itself, and read the count only at start). */
INTEG_TEST(test_cli_produce_follows_partitions_added_while_it_runs)
{
    shoal_topic_config_t cfg;
    const char *name[] = {"partitions"}, *four[] = {"4"};
    char cmd[PATH_MAX + 512];
    int64_t ends[4], want[4] = {0};
    FILE *in;

    shoal_topic_config_init(&cfg);
    cfg.partitions = 2;
    cfg.segment_bytes = 64 << 10;
    cfg.ring_slots = 2;
    cfg.max_record_bytes = 1024;
    assert_int_equal(shoal_topic_create(f->c, "widen", &cfg), 0);
    snprintf(cmd, sizeof(cmd), "%s produce widen --key-separator : >/dev/null 2>&1",
             shoal_command(f));
    assert_non_null(in = popen(cmd, "w"));
    fputs("first:1\n", in);
    fflush(in);
    for (int i = 0; i < 500; i++, usleep(10000)) { /* until it is in */
        partition_ends(f, "widen", ends, 2);
        if (ends[0] + ends[1] == 1)
            break;
    }
    assert_int_equal(shoal_topic_alter(f->c, "widen", name, four, 1), 0);
    for (int i = 0; i < 40; i++) {
        char key[16];
        int len = snprintf(key, sizeof(key), "key%d", i);
        fprintf(in, "%s:v\n", key);
        want[shoal_partition_for_key(key, (size_t)len, 4)]++;
    }
    assert_int_equal(pclose(in), 0);
    want[shoal_partition_for_key("first", 5, 2)]++;
    partition_ends(f, "widen", ends, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ends[i], want[i]);
    assert_true(want[2] + want[3] > 0);
}

/* ------------------------------------------------------------------ main */

static int setup(void **state)
{
    *state = &fixture;
    snprintf(enospc, sizeof(enospc), "/tmp/shoal-test-cli-enospc-%d", (int)getpid());
    unlink(enospc);
    setenv("SHOALD_TEST_ENOSPC_FILE", enospc, 1);
    return harness_fixture_start(&fixture, "cli", TEST_TIMEOUT_S, NULL);
}

static int teardown(void **state)
{
    unlink(enospc);
    return harness_fixture_stop(*state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_lists_of_an_empty_broker_say_so),
        cmocka_unit_test(test_cli_connects_only_to_the_daemon_user_it_is_told),
        cmocka_unit_test(test_cli_request_timeout_bounds_the_wait_for_a_stopped_daemon),
        cmocka_unit_test(test_cli_group_tables_keep_long_names_in_their_columns),
        cmocka_unit_test(test_cli_help_of_a_command_group_lists_its_subcommands),
        cmocka_unit_test(test_cli_usage_errors_name_the_word_at_fault),
        cmocka_unit_test(test_shoald_refuses_a_bad_runtime_dir_before_creating_anything),
        cmocka_unit_test(test_shoald_refuses_directories_other_users_may_write),
        cmocka_unit_test(test_cli_reports_a_failed_write_of_its_output),
        cmocka_unit_test(test_cli_consume_in_a_group_commits_no_record_its_output_refused),
        cmocka_unit_test(test_cli_consume_removed_from_its_group_while_stopped_ends_with_a_warning),
        cmocka_unit_test(test_cli_consume_never_assigned_says_so),
        cmocka_unit_test(test_cli_produce_refuses_a_too_long_line_without_reading_it_all),
        cmocka_unit_test(test_cli_produce_sends_a_long_line_the_topic_accepts),
        cmocka_unit_test(test_cli_consume_blocked_on_its_output_holds_no_producer_back),
        cmocka_unit_test(test_cli_produce_acks_disk_stops_at_sigint_and_counts_what_was_appended),
        cmocka_unit_test(test_cli_produce_acks_disk_waits_once_per_partition),
        cmocka_unit_test(test_cli_produce_waits_out_a_full_disk_and_names_the_cause),
        cmocka_unit_test(test_cli_produce_waiting_for_room_stops_at_sigterm_at_once),
        cmocka_unit_test(
            test_cli_consume_from_an_overwritten_offset_continues_at_the_oldest_record),
        cmocka_unit_test(test_cli_consume_does_not_spin_on_a_gap_in_a_disk_log),
        cmocka_unit_test(test_cli_consume_fails_on_a_damaged_batch),
        cmocka_unit_test(test_cli_consume_from_past_the_end_says_so),
        cmocka_unit_test(test_cli_consume_from_before_the_start_says_so),
        cmocka_unit_test(test_cli_produce_puts_headers_on_every_record),
        cmocka_unit_test(test_cli_produce_parses_each_lines_headers),
        cmocka_unit_test(test_cli_produce_sends_null_for_the_marker),
        cmocka_unit_test(test_cli_consume_in_a_group_with_timeout_0_reads_what_is_there),
        cmocka_unit_test(test_cli_consume_in_a_group_by_pattern_reads_every_matching_topic),
        cmocka_unit_test(test_cli_consume_in_a_group_outlives_a_daemon_restart),
        cmocka_unit_test(test_cli_produce_follows_partitions_added_while_it_runs),
    };
    harness_test_filter();
    return cmocka_run_group_tests(tests, setup, teardown);
}
