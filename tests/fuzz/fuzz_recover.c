/* fuzz_recover.c - a segment's three files as shoald finds them at start after a crash or
 * a bit flip, through segment_recover().
 *
 * Input: segment_input.h; trailer[2] holds flags (bit 0: write no .index, bit 1: no
 * .timeindex, bit 2: the segment is not the last), trailer[3] chooses the segment base
 * (bits 0-1). For any files:
 * - a damaged segment that is not the last is refused (SHOAL_ECORRUPT) and left alone;
 * - the last one is cut back to the prefix the scan accepts, with CRCs, and its indexes
 *   are rebuilt where they differ, so a second recovery finds nothing to do;
 * - on the recovered files, every lookup through the indexes answers what a scan of the
 *   log alone answers: the index only ever saves time. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "segment_input.h"
#include "record.h"
#include "segment.h"
#include "shoal.h"
#include "util.h"

#define NO_INDEX     1
#define NO_TIMEINDEX 2
#define NOT_LAST     4

static char dir[64];

static void drop_files(int64_t base)
{
    static const char *const exts[] = {".log", ".index", ".timeindex"};
    char path[128];

    for (size_t i = 0; i < 3; i++)
        if (segment_path(path, sizeof(path), dir, base, exts[i]) == 0)
            unlink(path);
}

static void remove_dir(void)
{
    int64_t *bases = NULL;
    size_t n = 0;

    if (segment_list(dir, &bases, &n) == 0)
        for (size_t i = 0; i < n; i++)
            drop_files(bases[i]);
    free(bases);
    rmdir(dir);
}

/* One directory for the whole run, in memory when /dev/shm is there. */
static const char *work_dir(void)
{
    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/dev/shm/shoal-fuzz-XXXXXX");
        if (mkdtemp(dir) == NULL) {
            snprintf(dir, sizeof(dir), "/tmp/shoal-fuzz-XXXXXX");
            FUZZ_CHECK(mkdtemp(dir) != NULL);
        }
        atexit(remove_dir);
        fuzz_on_failure = remove_dir;
    }
    return dir;
}

static void put_file(int64_t base, const char *ext, const uint8_t *data, size_t len)
{
    char path[128];
    int fd;

    FUZZ_CHECK(segment_path(path, sizeof(path), work_dir(), base, ext) == 0);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(len == 0 || write(fd, data, len) == (ssize_t)len);
    close(fd);
}

/* The whole file (empty when it does not exist): a malloc'd copy of exactly its size. */
static uint8_t *get_file(int64_t base, const char *ext, size_t *len)
{
    char path[128];
    struct stat st;
    uint8_t *p;
    int fd;

    FUZZ_CHECK(segment_path(path, sizeof(path), work_dir(), base, ext) == 0);
    *len = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return malloc(1);
    FUZZ_CHECK(fstat(fd, &st) == 0);
    *len = (size_t)st.st_size;
    p = malloc(*len ? *len : 1);
    FUZZ_CHECK(p != NULL && (*len == 0 || read(fd, p, *len) == (ssize_t)*len));
    close(fd);
    return p;
}

struct files {
    int64_t base;
    uint8_t *log, *idx, *tidx;
    size_t log_len, idx_len, tidx_len;
    /* walking the recovered log: the index entries met so far, the running max timestamp */
    size_t idx_at, tidx_at;
    int64_t max_ts;
};

static void files_read(struct files *f, int64_t base)
{
    memset(f, 0, sizeof(*f));
    f->base = base;
    f->max_ts = INT64_MIN;
    f->log = get_file(base, ".log", &f->log_len);
    f->idx = get_file(base, ".index", &f->idx_len);
    f->tidx = get_file(base, ".timeindex", &f->tidx_len);
}

static void files_free(struct files *f)
{
    free(f->log);
    free(f->idx);
    free(f->tidx);
}

/* The recovered indexes name this batch, if at all, as the index writer would: an .index
 * entry at its position with its last offset, and a .timeindex entry there when the
 * running max timestamp grew since the last one. Entries are met in order. */
static void check_entries(struct files *f, uint64_t pos, const record_batch_header_t *h)
{
    uint32_t rel = (uint32_t)(h->base_offset + h->last_offset_delta - f->base);

    f->max_ts = SHOAL_MAX(f->max_ts, h->max_timestamp);
    if (f->idx_at + SEGMENT_INDEX_ENTRY_BYTES > f->idx_len ||
        shoal__get_be32(f->idx + f->idx_at + 4) != pos)
        return;
    FUZZ_CHECK(shoal__get_be32(f->idx + f->idx_at) == rel);
    f->idx_at += SEGMENT_INDEX_ENTRY_BYTES;
    if (f->tidx_at + SEGMENT_TIMEINDEX_ENTRY_BYTES <= f->tidx_len &&
        shoal__get_be32(f->tidx + f->tidx_at + 8) == rel) {
        FUZZ_CHECK((int64_t)shoal__get_be64(f->tidx + f->tidx_at) == f->max_ts);
        f->tidx_at += SEGMENT_TIMEINDEX_ENTRY_BYTES;
    }
}

/* Per batch of the recovered log, its offsets and timestamps either side: the lookups
 * through the indexes and without them agree. */
static int check_batch(void *arg, uint64_t pos, const uint8_t *batch,
                       const record_batch_header_t *h)
{
    struct files *f = arg;
    int64_t base = f->base;
    int64_t offsets[] = {h->base_offset, h->base_offset + h->last_offset_delta + 1};
    int64_t stamps[] = {h->first_timestamp, h->max_timestamp, h->max_timestamp + 1};

    (void)batch;
    check_entries(f, pos, h);
    for (size_t i = 0; i < 2; i++)
        FUZZ_CHECK(segment_find_offset(f->log, f->log_len, base, f->idx, f->idx_len, offsets[i]) ==
                   segment_find_offset(f->log, f->log_len, base, NULL, 0, offsets[i]));
    for (size_t i = 0; i < 3 && stamps[i] >= 0; i++) {
        int64_t end_idx = -1, end_bare = -1;
        FUZZ_CHECK(segment_find_timestamp(f->log, f->log_len, base, f->idx, f->idx_len, f->tidx,
                                          f->tidx_len, stamps[i], &end_idx) ==
                   segment_find_timestamp(f->log, f->log_len, base, NULL, 0, NULL, 0, stamps[i],
                                          &end_bare));
        FUZZ_CHECK(end_idx == end_bare);
    }
    return 0;
}

static void check_recovered(int64_t base, const segment_recovery_t *rec)
{
    struct files f;
    segment_recovery_t again;
    segment_scan_t scan;

    files_read(&f, base);
    FUZZ_CHECK(f.log_len == rec->scan.valid_bytes);
    FUZZ_CHECK(rec->truncated_bytes == rec->file_bytes - rec->scan.valid_bytes);
    FUZZ_CHECK(segment_scan_bytes(f.log, f.log_len, base, true, f.log_len ? check_batch : NULL, &f,
                                  &scan) == 0);
    FUZZ_CHECK(scan.error == 0 && scan.valid_bytes == f.log_len);
    /* every entry named a batch of the log: none left over */
    FUZZ_CHECK(f.idx_at == f.idx_len && f.tidx_at == f.tidx_len);
    files_free(&f);
    FUZZ_CHECK(segment_recover(work_dir(), base, true, &again) == 0);
    FUZZ_CHECK(again.truncated_bytes == 0 && !again.index_rebuilt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    segment_recovery_t rec;
    struct segment_input in;

    if (!segment_input_split(data, size, 3, &in))
        return 0;
    const uint8_t *t = in.trailer;
    size_t len = in.log_len;
    int64_t base = in.base;

    put_file(base, ".log", data, len);
    if (!(t[2] & NO_INDEX))
        put_file(base, ".index", in.idx, in.idx_len);
    if (!(t[2] & NO_TIMEINDEX))
        put_file(base, ".timeindex", in.tidx, in.tidx_len);
    int rc = segment_recover(work_dir(), base, !(t[2] & NOT_LAST), &rec);
    if (t[2] & NOT_LAST) {
        FUZZ_CHECK(rc == 0 || rc == SHOAL_ECORRUPT);
        FUZZ_CHECK((rc == SHOAL_ECORRUPT) == (rec.scan.error != 0));
        if (rc == SHOAL_ECORRUPT) { /* refused, and the log left as it was */
            struct files f;
            files_read(&f, base);
            FUZZ_CHECK(f.log_len == len && (len == 0 || memcmp(f.log, data, len) == 0));
            files_free(&f);
        }
    } else {
        FUZZ_CHECK(rc == 0);
    }
    if (rc == 0)
        check_recovered(base, &rec);
    drop_files(base);
    return 0;
}
