/* produce.c - `shoal produce`: one record per line of standard input.
 *
 * DESIGN: input is read with read(2) into one growing buffer rather than with getline(), so
 * the tool knows which complete lines are already in hand: those are sent together, while
 * a line still being typed or piped never holds back the ones before it. The loop is:
 * take every complete line in the buffer, grouping consecutive lines bound for the same
 * partition into one shoal_send_batch(); send what is pending; only then read more (which
 * may block, and may move the buffer that the pending messages point into). A line may be
 * as long as the topic's largest record: the buffer doubles until it holds it. The search
 * for a line's newline resumes where the last one stopped, so a long line arriving in
 * pieces costs time in proportion to its length; and a line too long to be a record of the
 * topic is refused as soon as that much of it is in, without reading (or holding) the rest.
 *
 * The partition of a keyed line is computed here with shoal_partition_for_key(), the same
 * function the producer uses, by the count the producer follows (partitions added while it
 * runs included), so grouping never changes where a record goes. Keyless lines
 * are grouped as "any partition": the producer picks one partition per batch, spreading
 * batches round-robin. When a batch is refused as too large, nothing of it was written, so
 * it is re-sent one record at a time to find and report the exact line.
 *
 * --acks disk: the producer appends with memory acknowledgements and the tool then waits
 * for the disk itself, once per partition for what it appended before it reads more input
 * (or ends), in slices of PRODUCE_DISK_SLICE_MS, because the library's wait goes
 * on through signals: SIGINT or SIGTERM then stops the tool within a slice instead of after
 * the whole acknowledgement timeout. It also keeps the two counts apart, so a report says
 * how many records were appended (kept in shared memory) and how many of those are known to
 * be on disk. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define PRODUCE_READ_BYTES      (64 * 1024)
#define PRODUCE_BATCH_MAX       1024
#define PRODUCE_BATCH_BYTES_MAX (1024 * 1024)
#define PRODUCE_RECORD_OVERHEAD 32 /* a generous bound on a record's varints and attributes */
#define PRODUCE_DISK_SLICE_MS   100
#define PRODUCE_FULL_SLICE_MS   100 /* a send waits for room this long, then again */
#define PRODUCE_HEADERS_MAX     64
#define PRODUCE_HEADER_OVERHEAD 10   /* a bound on a header's two length varints */
#define PRODUCE_BATCH_HEADERS   4096 /* the headers of one batch's records (--parse-headers) */

enum {
    OPT_KEY_SEPARATOR = CLI_OPT_FIRST,
    OPT_PARTITION,
    OPT_ACKS,
    OPT_HEADER,
    OPT_PARSE_HEADERS,
    OPT_NULL_MARKER,
};

/* Standard input split into lines; a line is valid until the next line_reader_fill(). */
typedef struct line_reader {
    char *buf;
    size_t cap, start, end; /* unread bytes are buf[start..end) */
    size_t scanned;         /* of those, how many are known to hold no newline */
    bool eof;
} line_reader_t;

typedef struct produce {
    const cli_t *cli;
    shoal_client_t *client;
    const char *topic;
    const char *separator; /* NULL: every key is null */
    size_t separator_len;
    const char *null_marker; /* --null-marker: a key, value or parsed header value of exactly
                                this is null */
    size_t null_marker_len;
    shoal_header_t headers[PRODUCE_HEADERS_MAX]; /* --header, on every record */
    size_t nheaders;
    size_t headers_bytes;    /* what they add to a record, at most */
    const char *headers_end; /* --parse-headers: a line's own headers end here; NULL: none */
    size_t headers_end_len;
    shoal_header_t *batch_headers; /* the batch's records' headers, with --parse-headers */
    size_t batch_headers_len;
    int32_t partition;   /* --partition, or SHOAL_PARTITION_ANY */
    uint32_t partitions; /* the topic's partition count */
    uint64_t batch_bytes_max;
    uint64_t line_bytes_max;       /* a longer line cannot be a record of the topic */
    shoal_producer_options_t opts; /* acks stays MEMORY: the tool waits for the disk */
    bool acks_disk;                /* --acks disk */
    shoal_ack_t waiting;           /* the record whose disk acknowledgement is awaited */
    shoal_ack_t *unsynced;         /* --acks disk: per partition, the last record appended
                                      since the last wait for the disk */
    size_t nunsynced;
    shoal_producer_t *producer;
    shoal_message_t *batch;
    size_t batch_len, batch_bytes;
    uint64_t batch_first_line; /* input line number of batch[0] */
    uint64_t lines;            /* lines taken from the input so far */
    uint64_t appended;         /* records appended (acknowledged in memory) */
    uint64_t on_disk;          /* of those, with --acks disk, records confirmed on disk */
    char last_full[256];       /* the cause of back-pressure last warned about */
} produce_t;

/* ------------------------------------------------------------------ input */

/* The next complete line (or, at end of input, the unterminated last one), without its
 * newline, or its CRLF (as Kafka's console producer reads lines). Returns false when no such
 * line is in the buffer. */
static bool line_reader_next(line_reader_t *lr, char **line, size_t *len)
{
    char *p = lr->buf + lr->start;
    size_t avail = lr->end - lr->start;
    char *nl = avail > lr->scanned ? memchr(p + lr->scanned, '\n', avail - lr->scanned) : NULL;

    lr->scanned = avail;
    if (!nl && !(lr->eof && avail))
        return false;
    *line = p;
    *len = nl ? (size_t)(nl - p) : avail;
    lr->start += *len + (nl ? 1 : 0);
    lr->scanned = 0;
    if (nl && *len > 0 && p[*len - 1] == '\r')
        (*len)--;
    return true;
}

/* Bytes of the line not yet complete (all of them searched by line_reader_next()). */
static size_t line_reader_pending(const line_reader_t *lr)
{
    return lr->end - lr->start;
}

/* Make room for at least PRODUCE_READ_BYTES more: move the unread bytes to the front, then
 * double the buffer if that was not enough. */
static int line_reader_make_room(line_reader_t *lr)
{
    size_t unread = lr->end - lr->start;
    char *nb;
    size_t ncap;

    if (lr->start > 0) {
        memmove(lr->buf, lr->buf + lr->start, unread);
        lr->start = 0;
        lr->end = unread;
    }
    if (lr->cap - lr->end >= PRODUCE_READ_BYTES)
        return 0;
    ncap = lr->cap ? lr->cap * 2 : 2 * PRODUCE_READ_BYTES;
    if (!(nb = realloc(lr->buf, ncap)))
        return -ENOMEM;
    lr->buf = nb;
    lr->cap = ncap;
    return 0;
}

/* Read once from fd 0. Returns 0 (data or end of input), -EINTR when a signal asked us to
 * stop, or -errno. */
static int line_reader_fill(line_reader_t *lr)
{
    ssize_t n;
    int rc = line_reader_make_room(lr);

    if (rc < 0)
        return rc;
    do {
        if (cli_stop_signal)
            return -EINTR;
        n = read(STDIN_FILENO, lr->buf + lr->end, lr->cap - lr->end);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        lr->eof = true;
    lr->end += (size_t)n;
    return 0;
}

/* ------------------------------------------------------------------ sending */

/* What is known of the records sent so far: "N records to T", and with --acks disk how
 * many of them are confirmed on disk when that is not all of them. */
static void produce_print_counts(const produce_t *pr)
{
    fprintf(stderr, "%llu record%s to %s", (unsigned long long)pr->appended,
            pr->appended == 1 ? "" : "s", pr->topic);
    if (pr->acks_disk && pr->on_disk != pr->appended)
        fprintf(stderr, ", of which %llu confirmed on disk", (unsigned long long)pr->on_disk);
}

static int produce_report_written(const produce_t *pr)
{
    fputs("shoal: appended ", stderr);
    produce_print_counts(pr);
    fputs(" before the error\n", stderr);
    return CLI_EXIT_FAIL;
}

/* The disk acknowledgement timed out. The library's detail names the last slice of the
 * wait, so this one names the whole wait and the daemon's disk error, if it has one. */
static void produce_report_timeout(const produce_t *pr, uint64_t line)
{
    shoal_partition_stats_t st = {0};

    shoal_partition_stats(pr->client, pr->topic, pr->waiting.partition, &st);
    fprintf(stderr,
            "shoal: produce to '%s' (input line %llu): %s (offset %lld of partition %d not on "
            "disk after %d ms%s%s)\n",
            pr->topic, (unsigned long long)line, shoal_strerror(SHOAL_ETIMEDOUT),
            (long long)pr->waiting.offset, (int)pr->waiting.partition, pr->opts.ack_timeout_ms,
            st.flush_error ? ": shoald cannot write to disk: " : "",
            st.flush_error ? shoal_strerror(st.flush_error) : "");
}

static int produce_report(produce_t *pr, int rc, uint64_t line)
{
    if (rc == SHOAL_ETIMEDOUT)
        produce_report_timeout(pr, line);
    else
        cli_fail(pr->cli, rc, "produce to '%s' (input line %llu)", pr->topic,
                 (unsigned long long)line);
    return produce_report_written(pr);
}

/* The line being read is already longer than any record of the topic can be. */
static int produce_report_long_line(produce_t *pr, uint64_t line)
{
    fprintf(stderr,
            "shoal: produce to '%s' (input line %llu): %s (the line is longer than %llu bytes; "
            "records of %s hold at most %llu)\n",
            pr->topic, (unsigned long long)line, shoal_strerror(SHOAL_ETOOLARGE),
            (unsigned long long)pr->line_bytes_max, pr->topic,
            (unsigned long long)(pr->line_bytes_max - pr->separator_len));
    return produce_report_written(pr);
}

/* The ring is full (SHOAL_AGAIN): warn with the library's detail, which names the cause (a
 * disk the daemon cannot write, or slots awaiting flushing or pinned by readers), but only
 * when it differs from the cause last warned about, so a long wait says it once. */
static void produce_warn_full(produce_t *pr)
{
    const char *detail = shoal_errmsg();

    if (strcmp(detail, pr->last_full) == 0)
        return;
    snprintf(pr->last_full, sizeof(pr->last_full), "%s", detail);
    fprintf(stderr, "shoal: warning: topic '%s' is full (back-pressure), still trying%s%s\n",
            pr->topic, detail[0] ? ": " : "", detail);
}

/* Send with retries for the outcomes that are not failures: a full ring and an
 * administrative change. Gives up only when a signal asks us to stop (-EINTR), which a
 * wait for room notices within PRODUCE_FULL_SLICE_MS (it took the producer's 5 s). */
static int produce_send_retrying(produce_t *pr, const shoal_message_t *msgs, size_t n,
                                 shoal_ack_t *ack)
{
    int rc;

    for (;;) {
        rc = shoal_send_batch(pr->producer, msgs, n, ack);
        if (rc != SHOAL_AGAIN && rc != SHOAL_ADMIN_ACTION)
            return rc;
        if (cli_stop_signal)
            return -EINTR;
        if (rc == SHOAL_AGAIN)
            produce_warn_full(pr);
    }
}

/* Wait until pr->waiting is on disk, a slice at a time so that a signal ends the wait
 * (-EINTR) within one slice; SHOAL_ETIMEDOUT after the producer's ack_timeout_ms. */
static int produce_wait_disk(produce_t *pr)
{
    int waited = 0, rc;

    do {
        rc = shoal_producer_wait(pr->producer, pr->waiting.partition, pr->waiting.offset,
                                 SHOAL_ACKS_DISK, PRODUCE_DISK_SLICE_MS);
        waited += PRODUCE_DISK_SLICE_MS;
    } while (rc == SHOAL_ETIMEDOUT && waited < pr->opts.ack_timeout_ms && !cli_stop_signal);
    return rc == SHOAL_ETIMEDOUT && cli_stop_signal ? -EINTR : rc;
}

/* --acks disk: note that partition ack.partition must be on disk up to ack.offset (room
 * for every partition a topic may have: produce_open). */
static void produce_note_unsynced(produce_t *pr, shoal_ack_t ack)
{
    for (size_t i = 0; i < pr->nunsynced; i++)
        if (pr->unsynced[i].partition == ack.partition) {
            pr->unsynced[i].offset = ack.offset; /* offsets of a partition only grow */
            return;
        }
    pr->unsynced[pr->nunsynced++] = ack;
}

/* --acks disk: wait until every record appended so far is on disk, once per partition
 * (each batch's own wait cost an fsync a batch: keyed lines spread over partitions make
 * batches of a record or two). Returns 0, -EINTR, or the exit status after reporting. */
static int produce_sync(produce_t *pr)
{
    for (size_t i = 0; i < pr->nunsynced; i++) {
        int rc;
        pr->waiting = pr->unsynced[i];
        if ((rc = produce_wait_disk(pr)) == -EINTR)
            return rc;
        if (rc < 0)
            return produce_report(pr, rc, pr->lines);
    }
    pr->nunsynced = 0;
    pr->on_disk = pr->appended;
    return 0;
}

/* Append msgs[0..n) as one batch and count them; with --acks disk, note what to wait for. */
static int produce_send(produce_t *pr, const shoal_message_t *msgs, size_t n)
{
    shoal_ack_t ack;
    int rc = produce_send_retrying(pr, msgs, n, &ack);

    if (rc < 0)
        return rc;
    pr->appended += n;
    ack.offset += (int64_t)n - 1;
    if (pr->acks_disk)
        produce_note_unsynced(pr, ack);
    return 0;
}

/* Re-send a refused batch record by record, so the error names the record at fault. */
static int produce_send_singly(produce_t *pr)
{
    for (size_t i = 0; i < pr->batch_len; i++) {
        int rc = produce_send(pr, &pr->batch[i], 1);
        if (rc == -EINTR)
            return rc;
        if (rc < 0)
            return produce_report(pr, rc, pr->batch_first_line + i);
    }
    return 0;
}

/* Send the batch. Returns 0, -EINTR when a signal stopped it (the caller reports that from
 * cli_stop_signal), or the exit status after reporting the failure. */
static int produce_flush(produce_t *pr)
{
    int rc = 0;

    if (pr->batch_len == 0)
        return 0;
    rc = produce_send(pr, pr->batch, pr->batch_len);
    if (rc == SHOAL_ETOOLARGE && pr->batch_len > 1)
        rc = produce_send_singly(pr);
    else if (rc < 0 && rc != -EINTR)
        rc = produce_report(pr, rc, pr->batch_first_line);
    pr->batch_len = 0;
    pr->batch_bytes = 0;
    pr->batch_headers_len = 0;
    return rc;
}

/* ------------------------------------------------------------------ lines to records */

/* Whether a key or value is --null-marker's text. */
static bool produce_is_null(const produce_t *pr, const void *p, size_t len)
{
    return pr->null_marker && p && len == pr->null_marker_len &&
           memcmp(p, pr->null_marker, len) == 0;
}

static void produce_split(const produce_t *pr, const char *line, size_t len, shoal_message_t *m)
{
    const char *sep = pr->separator ? memmem(line, len, pr->separator, pr->separator_len) : NULL;

    memset(m, 0, sizeof(*m));
    m->value = line;
    m->value_len = len;
    m->partition = pr->partition;
    m->headers = pr->nheaders ? pr->headers : NULL;
    m->header_count = pr->nheaders;
    if (sep) {
        m->key = line;
        m->key_len = (size_t)(sep - line);
        m->value = sep + pr->separator_len;
        m->value_len = len - m->key_len - pr->separator_len;
    }
    if (produce_is_null(pr, m->key, m->key_len))
        m->key = NULL, m->key_len = 0;
    if (produce_is_null(pr, m->value, m->value_len))
        m->value = NULL, m->value_len = 0;             /* a tombstone */
    if (m->partition == SHOAL_PARTITION_ANY && m->key) /* by the count now: it may grow */
        m->partition =
            shoal_partition_for_key(m->key, m->key_len, shoal_producer_partitions(pr->producer));
}

/* Unescape a header's key or value in place: the bytes from p up to end, or to the first
 * ',' (and '=' when `key`) not escaped by a '\\', which keeps the byte after it. Returns
 * where it stopped (*len: the bytes written at p), or NULL at a '\\' that ends the
 * headers. */
static char *header_field(char *p, const char *end, bool key, size_t *len)
{
    char *w = p, *start = p;

    for (; p < end && *p != ',' && !(key && *p == '='); p++) {
        if (*p == '\\' && ++p == end)
            return NULL;
        *w++ = *p;
    }
    *len = (size_t)(w - start);
    return p;
}

/* A line's own headers (--parse-headers), before the first pr->headers_end, after the
 * --header ones, into h (room for 2 * PRODUCE_HEADERS_MAX): KEY=VALUE pairs joined by ',',
 * a KEY alone for a null value (as Kafka's console producer reads them), a '\\' before a
 * ',', '=' or '\\' that is part of a key or value (as consume's %h prints them: unescaped
 * here, in place); a VALUE of exactly --null-marker's text is null too. *line and *len
 * move past them. NULL with their count in *n and what they add to the record in *bytes,
 * or what is wrong with the line. */
static const char *produce_line_headers(const produce_t *pr, char **line, size_t *len,
                                        shoal_header_t *h, size_t *n, size_t *bytes)
{
    char *end = memmem(*line, *len, pr->headers_end, pr->headers_end_len);

    if (!end)
        return "no headers separator";
    memcpy(h, pr->headers, pr->nheaders * sizeof(*h));
    *n = pr->nheaders;
    *bytes = pr->headers_bytes;
    for (char *p = *line, *q; p < end; p = q < end ? q + 1 : end) {
        size_t klen, vlen = 0;
        char *value = NULL;
        if (!(q = header_field(p, end, true, &klen)) ||
            (q < end && *q == '=' && !(q = header_field(value = q + 1, end, false, &vlen))))
            return "a '\\' that ends the headers";
        if (klen == 0 && !value) /* an empty key needs its '=' (%h prints "=VALUE") */
            return "a header without a key";
        if (*n == pr->nheaders + PRODUCE_HEADERS_MAX)
            return "too many headers";
        if (produce_is_null(pr, value, vlen)) /* as Kafka's */
            value = NULL;
        h[(*n)++] = (shoal_header_t){
            .key = p, .key_len = klen, .value = value, .value_len = value ? (int32_t)vlen : -1};
        *bytes += klen + vlen + PRODUCE_HEADER_OVERHEAD;
    }
    *len -= (size_t)(end - *line) + pr->headers_end_len;
    *line = end + pr->headers_end_len;
    return NULL;
}

/* A line --parse-headers cannot read: send the lines before it, then report. */
static int produce_report_bad_line(produce_t *pr, const char *why)
{
    int rc = produce_flush(pr);

    if (rc != 0)
        return rc;
    fprintf(stderr,
            "shoal: produce to '%s' (input line %llu): %s (--parse-headers: a line starts with "
            "up to %d KEY=VALUE pairs, or KEY alone for a null value, joined by ',', with "
            "'\\' before a ',', '=' or '\\' of a key or value; then the separator)\n",
            pr->topic, (unsigned long long)pr->lines, why, PRODUCE_HEADERS_MAX);
    return produce_report_written(pr);
}

/* Add one line to the batch, sending the batch first if the line cannot join it. */
static int produce_line(produce_t *pr, char *line, size_t len)
{
    shoal_header_t h[2 * PRODUCE_HEADERS_MAX];
    size_t cost, nh = 0, bytes = pr->headers_bytes;
    const char *bad;
    shoal_message_t m;
    int rc;

    pr->lines++;
    if (pr->headers_end && (bad = produce_line_headers(pr, &line, &len, h, &nh, &bytes)))
        return produce_report_bad_line(pr, bad);
    produce_split(pr, line, len, &m);
    cost = m.key_len + m.value_len + bytes + PRODUCE_RECORD_OVERHEAD;
    if (pr->batch_len > 0 &&
        (pr->batch_len == PRODUCE_BATCH_MAX || m.partition != pr->batch[0].partition ||
         pr->batch_bytes + cost > pr->batch_bytes_max ||
         pr->batch_headers_len + nh > PRODUCE_BATCH_HEADERS)) {
        if ((rc = produce_flush(pr)) != 0)
            return rc;
    }
    if (pr->headers_end) {
        m.headers =
            nh ? memcpy(pr->batch_headers + pr->batch_headers_len, h, nh * sizeof(*h)) : NULL;
        m.header_count = nh;
        pr->batch_headers_len += nh;
    }
    if (pr->batch_len == 0)
        pr->batch_first_line = pr->lines;
    pr->batch[pr->batch_len++] = m;
    pr->batch_bytes += cost;
    return 0;
}

static int produce_stream(produce_t *pr)
{
    line_reader_t lr = {0};
    char *line;
    size_t len;
    int rc = 0;

    while (rc == 0) {
        while (rc == 0 && line_reader_next(&lr, &line, &len))
            rc = produce_line(pr, line, len);
        if (rc == 0)
            rc = produce_flush(pr); /* before the read below may move the lines */
        if (rc == 0)
            rc = produce_sync(pr); /* --acks disk: what came before the read is on disk */
        if (rc != 0 || lr.eof)
            break;
        if (line_reader_pending(&lr) > pr->line_bytes_max) {
            rc = produce_report_long_line(pr, pr->lines + 1);
            break;
        }
        rc = line_reader_fill(&lr);
        if (rc == -EINTR)
            break; /* reported by the caller from cli_stop_signal */
        if (rc < 0)
            rc = produce_report(pr, rc, pr->lines + 1);
    }
    free(lr.buf);
    return rc < 0 ? 0 : rc;
}

/* ------------------------------------------------------------------ command */

static bool produce_parse_acks_disk(const cli_t *cli, const char *s)
{
    if (strcmp(s, "memory") == 0)
        return false;
    if (strcmp(s, "disk") == 0)
        return true;
    cli_usage_fail(cli, "invalid value for --acks: '%s' (expected memory or disk)", s);
}

/* --header KEY=VALUE: a header every record carries (KEY non-empty; VALUE may be). */
static void produce_parse_header(cli_t *cli, produce_t *pr, const char *arg)
{
    const char *eq = strchr(arg, '=');

    if (!eq || eq == arg)
        cli_usage_fail(cli, "invalid value for --header: '%s' (expected KEY=VALUE)", arg);
    if (pr->nheaders == PRODUCE_HEADERS_MAX)
        cli_usage_fail(cli, "more than %d --header options", PRODUCE_HEADERS_MAX);
    pr->headers[pr->nheaders++] = (shoal_header_t){.key = arg,
                                                   .key_len = (size_t)(eq - arg),
                                                   .value = eq + 1,
                                                   .value_len = (int32_t)strlen(eq + 1)};
    pr->headers_bytes += strlen(arg) - 1 + PRODUCE_HEADER_OVERHEAD;
}

static void produce_parse(cli_t *cli, int argc, char **argv, produce_t *pr)
{
    static const struct option opts[] = {
        {"key-separator", required_argument, NULL, OPT_KEY_SEPARATOR},
        {"partition", required_argument, NULL, OPT_PARTITION},
        {"acks", required_argument, NULL, OPT_ACKS},
        {"header", required_argument, NULL, OPT_HEADER},
        {"parse-headers", required_argument, NULL, OPT_PARSE_HEADERS},
        {"null-marker", required_argument, NULL, OPT_NULL_MARKER},
        CLI_COMMON_OPTIONS,
        {0},
    };
    int opt;

    while ((opt = cli_next_opt(cli, argc, argv, opts)) != -1) {
        if (opt == OPT_KEY_SEPARATOR) {
            if (optarg[0] == '\0')
                cli_usage_fail(cli, "--key-separator must not be empty");
            pr->separator = optarg;
            pr->separator_len = strlen(optarg);
        } else if (opt == OPT_PARTITION) {
            pr->partition = (int32_t)cli_parse_uint(cli, "--partition", optarg, INT32_MAX);
        } else if (opt == OPT_ACKS) {
            pr->acks_disk = produce_parse_acks_disk(cli, optarg);
        } else if (opt == OPT_HEADER) {
            produce_parse_header(cli, pr, optarg);
        } else if (opt == OPT_PARSE_HEADERS) {
            if (optarg[0] == '\0')
                cli_usage_fail(cli, "--parse-headers must not be empty");
            pr->headers_end = optarg;
            pr->headers_end_len = strlen(optarg);
        } else if (opt == OPT_NULL_MARKER) {
            if (optarg[0] == '\0')
                cli_usage_fail(cli, "--null-marker must not be empty");
            pr->null_marker = optarg;
            pr->null_marker_len = strlen(optarg);
        }
    }
    cli_expect_args(cli, argc, argv, 1);
    pr->topic = argv[cli->optind];
}

/* Learn the topic's partition count and segment size, and open the producer. */
static int produce_open(produce_t *pr, shoal_client_t *client)
{
    shoal_topic_info_t *info;
    uint64_t quarter;
    bool memory;
    int rc = shoal_topic_describe(client, pr->topic, &info);

    if (rc < 0)
        return cli_fail(pr->cli, rc, "produce to '%s'", pr->topic);
    pr->partitions = info->config.partitions;
    /* A batch must fit in one ring slot; a quarter of one leaves room for the overhead. */
    quarter = info->config.segment_bytes / 4;
    pr->batch_bytes_max = quarter < PRODUCE_BATCH_BYTES_MAX ? quarter : PRODUCE_BATCH_BYTES_MAX;
    /* A record holds at least its key and value, which is the line less the separator, and
     * the whole record must fit in max_record_bytes: a longer line can never be sent. */
    pr->line_bytes_max = info->config.max_record_bytes + pr->separator_len + pr->headers_end_len;
    pr->line_bytes_max = pr->line_bytes_max > pr->headers_bytes /* the headers come too */
                             ? pr->line_bytes_max - pr->headers_bytes
                             : 0;
    memory = info->config.storage == SHOAL_STORAGE_MEMORY;
    shoal_topic_info_free(info);
    if (pr->partition != SHOAL_PARTITION_ANY && (uint32_t)pr->partition >= pr->partitions) {
        fprintf(stderr, "shoal: produce to '%s': %s (partition %d; the topic has %u)\n", pr->topic,
                shoal_strerror(SHOAL_ENOPARTITION), (int)pr->partition, pr->partitions);
        return CLI_EXIT_FAIL;
    }
    if (pr->acks_disk && memory) {
        fprintf(stderr, "shoal: produce to '%s': %s (--acks disk: it is a memory topic)\n",
                pr->topic, shoal_strerror(SHOAL_ECONFIG));
        return CLI_EXIT_FAIL;
    }
    rc = shoal_producer_open(client, pr->topic, &pr->opts, &pr->producer);
    if (rc < 0)
        return cli_fail(pr->cli, rc, "open a producer on '%s'", pr->topic);
    pr->batch = calloc(PRODUCE_BATCH_MAX, sizeof(*pr->batch));
    if (pr->headers_end)
        pr->batch_headers = calloc(PRODUCE_BATCH_HEADERS, sizeof(*pr->batch_headers));
    if (pr->acks_disk)
        pr->unsynced = calloc(SHOAL_PARTITIONS_MAX, sizeof(*pr->unsynced));
    if (!pr->batch || (pr->headers_end && !pr->batch_headers) || (pr->acks_disk && !pr->unsynced))
        return cli_fail(pr->cli, -ENOMEM, "produce to '%s'", pr->topic);
    return 0;
}

int cli_produce(cli_t *cli, int argc, char **argv)
{
    produce_t pr = {.cli = cli, .partition = SHOAL_PARTITION_ANY};
    shoal_client_t *client;
    int rc;

    shoal_producer_options_init(&pr.opts);
    pr.opts.block_ms = PRODUCE_FULL_SLICE_MS;
    produce_parse(cli, argc, argv, &pr);
    if ((rc = cli_check_topic_name(pr.topic)) != 0)
        return rc;
    if ((rc = cli_connect(cli, &client)) != 0)
        return rc;
    cli_catch_signals(false);
    pr.client = client;
    rc = produce_open(&pr, client);
    if (rc == 0)
        rc = produce_stream(&pr);
    if (rc == 0) {
        fputs("produced ", stderr);
        produce_print_counts(&pr);
        fputs(cli_stop_signal ? " (interrupted)\n" : "\n", stderr);
        rc = cli_stop_signal ? 128 + cli_stop_signal : 0;
    }
    free(pr.batch);
    free(pr.batch_headers);
    free(pr.unsynced);
    shoal_producer_close(pr.producer);
    shoal_client_close(client);
    return rc;
}
