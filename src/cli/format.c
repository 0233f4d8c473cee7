/* format.c - the `shoal consume --format` renderer.
 *
 * DESIGN: a template is short and records are many, but walking a template is a handful of
 * byte comparisons, so it is interpreted for every record rather than compiled. Runs of
 * literal text go out with one fwrite each. cli_format_check() accepts exactly what
 * cli_format_record() understands, so a template is validated once, before connecting,
 * and the renderer never has to report a template error mid-stream. */
#include "format.h"

#include <inttypes.h>
#include <string.h>

static const char format_directives[] = "tkvpoTh%";
static const char format_escapes[] = "nt\\";

int cli_format_check(const char *fmt, char *err, size_t err_cap)
{
    for (const char *p = fmt; *p; p++) {
        if (*p != '%' && *p != '\\')
            continue;
        if (p[1] == '\0') {
            snprintf(err, err_cap, "'%c' at the end of the format", *p);
            return -1;
        }
        if (!strchr(*p == '%' ? format_directives : format_escapes, p[1])) {
            snprintf(err, err_cap, "unknown %s '%c%c' in the format",
                     *p == '%' ? "directive" : "escape", p[0], p[1]);
            return -1;
        }
        p++;
    }
    return 0;
}

/* A key or value: bytes, or when null (length -1) null_marker (nothing when NULL). */
static void format_bytes(FILE *out, const void *data, int32_t len, const char *null_marker)
{
    if (len < 0 && null_marker)
        fputs(null_marker, out);
    else if (data && len > 0)
        fwrite(data, 1, (size_t)len, out);
}

/* A header's key or value, with a '\\' before each ',', '=' and '\\' in it, so that
 * `produce --parse-headers` reads back what was printed. */
static void format_header_field(FILE *out, const char *p, size_t len)
{
    for (size_t run = 0; len > 0; p += run, len -= run) {
        for (run = 0; run < len && p[run] != ',' && p[run] != '=' && p[run] != '\\'; run++)
            ;
        fwrite(p, 1, run, out);
        if (run < len) {
            fputc('\\', out);
            fputc(p[run], out);
            run++;
        }
    }
}

/* KEY=VALUE pairs joined by ',', a KEY alone for a null value (as Kafka's console producer
 * reads them). */
static int format_headers(FILE *out, const shoal_record_t *rec)
{
    shoal_header_t h;
    size_t iter = 0;
    int rc;

    while ((rc = shoal_record_header(rec, &iter, &h)) == 1) {
        if (iter > 1)
            fputc(',', out);
        format_header_field(out, h.key, h.key_len);
        if (h.value) {
            fputc('=', out);
            format_header_field(out, h.value, h.value_len > 0 ? (size_t)h.value_len : 0);
        }
    }
    return rc;
}

static int format_directive(FILE *out, char d, const char *null_marker, const shoal_record_t *rec)
{
    switch (d) {
    case 't':
        fputs(rec->topic, out);
        return 0;
    case 'k':
        format_bytes(out, rec->key, rec->key_len, null_marker);
        return 0;
    case 'v':
        format_bytes(out, rec->value, rec->value_len, null_marker);
        return 0;
    case 'p':
        fprintf(out, "%" PRId32, rec->partition);
        return 0;
    case 'o':
        fprintf(out, "%" PRId64, rec->offset);
        return 0;
    case 'T':
        fprintf(out, "%" PRId64, rec->timestamp_ms);
        return 0;
    case 'h':
        return format_headers(out, rec);
    default: /* '%', or anything cli_format_check() would have refused: print it as is */
        fputc(d, out);
        return 0;
    }
}

static char format_escape(char e)
{
    return e == 'n' ? '\n' : e == 't' ? '\t' : e;
}

int cli_format_record(FILE *out, const char *fmt, const char *null_marker,
                      const shoal_record_t *rec)
{
    const char *p = fmt;

    while (*p) {
        size_t run = strcspn(p, "%\\");
        int rc;

        fwrite(p, 1, run, out);
        p += run;
        if (*p == '\0' || p[1] == '\0')
            break; /* a lone trailing '%' or '\' (refused by cli_format_check) */
        if (*p == '\\') {
            fputc(format_escape(p[1]), out);
        } else if ((rc = format_directive(out, p[1], null_marker, rec)) < 0) {
            return rc;
        }
        p += 2;
    }
    return 0;
}
