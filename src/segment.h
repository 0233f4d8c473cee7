/* segment.h - disk log segments in Kafka's layout: <dir>/<20-digit base offset>.log, .index
 * (8-byte entries: u32 offset relative to base, u32 position; big-endian) and .timeindex
 * (12-byte entries: i64 largest timestamp so far in the segment, u32 relative offset;
 * big-endian), sparse every SEGMENT_INDEX_INTERVAL_BYTES of log. Files are created mode
 * 0600. */
#ifndef SHOAL_SEGMENT_H
#define SHOAL_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

#define SEGMENT_INDEX_INTERVAL_BYTES  4096
#define SEGMENT_INDEX_ENTRY_BYTES     8
#define SEGMENT_TIMEINDEX_ENTRY_BYTES 12
#define SEGMENT_NAME_DIGITS           20

/* "<dir>/<base offset as 20 digits><ext>" into buf; ext is ".log", ".index", ".timeindex".
 * Returns 0, -ENAMETOOLONG, or -EINVAL for a negative base. */
int segment_path(char *buf, size_t cap, const char *dir, int64_t base, const char *ext);

/* The base offset of a file named "<20 digits><ext>" (ext e.g. ".index"), or -1 when name
 * is not that or the number is over INT64_MAX. */
int64_t segment_name_base(const char *name, const char *ext);

/* A segment file mapped read-only. */
typedef struct segment_map {
    const uint8_t *data;
    size_t len;
} segment_map_t;

/* Map dir/<base><ext> (a regular file) read-only; an empty file maps to (NULL, 0), and so
 * does a missing one when missing_ok (an index may be absent, and retention may have
 * removed a listed segment since). 0 or -errno. */
int segment_map(const char *dir, int64_t base, const char *ext, bool missing_ok, segment_map_t *m);
/* Unmap; (NULL, 0) after. */
void segment_unmap(segment_map_t *m);

/* Base offsets of every <20 digits>.log in dir, ascending, in a shoal__malloc'd array the
 * caller frees. Files with other names are ignored. 0, or -errno. */
int segment_list(const char *dir, int64_t **bases, size_t *count);

/* Result of walking the batches in a segment's bytes. */
typedef struct segment_scan {
    uint64_t valid_bytes;  /* length of the good prefix */
    int64_t next_offset;   /* last offset of the last good batch + 1 (base when empty) */
    int64_t max_timestamp; /* -1 when empty */
    uint64_t batches;
    uint64_t records;
    int error;     /* 0; RECORD_INCOMPLETE (torn tail); SHOAL_ECORRUPT */
    char why[160]; /* what was wrong and where, when error != 0 */
} segment_scan_t;

/* Called for each good batch at byte pos; return non-zero to stop the scan there. */
typedef int (*segment_batch_cb)(void *arg, uint64_t pos, const uint8_t *batch,
                                const record_batch_header_t *h);

/* Walk the batches in data[0..len) of the segment with this base offset: headers must
 * parse, lie inside the data, have offsets >= base and increasing, and (check_crc) carry a
 * good CRC. Stops at the first bad batch. Never reads outside data. Fills *out; returns 0
 * (inspect out->error) or what cb returned when it stopped the scan. */
int segment_scan_bytes(const uint8_t *data, size_t len, int64_t base, bool check_crc,
                       segment_batch_cb cb, void *arg, segment_scan_t *out);

/* Position of the batch holding offset in a segment's bytes, found through the .index
 * entries idx[0..idx_len) (may be empty) and a short forward scan. Returns the byte
 * position, or SHOAL_EOFFSET when no batch of the data holds offset or a later one, or
 * SHOAL_ECORRUPT when a damaged batch comes before it (a header that does not parse, or a
 * base offset below the segment base or the batch before). */
int64_t segment_find_offset(const uint8_t *data, size_t len, int64_t base, const uint8_t *idx,
                            size_t idx_len, int64_t offset);

/* The first offset at or after which a record has timestamp >= ts in a segment's bytes:
 * Kafka's ListOffsets by timestamp, exact even when timestamps are out of order. The scan
 * starts after the last .timeindex entry (tidx[0..tidx_len), may be empty) whose timestamp
 * is below ts, when that entry and the .index entry (idx[0..idx_len)) at the same batch
 * check out; else at byte 0. Batches whose max timestamp is below ts are skipped by their
 * header. Returns the offset; SHOAL_EOFFSET when no record of the data is that late, with
 * *end_offset (may be NULL) set to the offset after the last whole batch; SHOAL_ECORRUPT
 * when a damaged batch comes first (as for segment_find_offset); SHOAL_ECOMPRESSED. A torn
 * tail ends the data. */
int64_t segment_find_timestamp(const uint8_t *data, size_t len, int64_t base, const uint8_t *idx,
                               size_t idx_len, const uint8_t *tidx, size_t tidx_len, int64_t ts,
                               int64_t *end_offset);

/* The offset of the first record of one parsed batch whose timestamp is >= ts, or
 * SHOAL_EOFFSET when none is; SHOAL_ECORRUPT, SHOAL_ECOMPRESSED. Used for ring slots too. */
int64_t segment_batch_find_timestamp(const uint8_t *batch, const record_batch_header_t *h,
                                     int64_t ts);

/* Outcome of recovering one segment, for the daemon's log. */
typedef struct segment_recovery {
    segment_scan_t scan;
    uint64_t file_bytes; /* size before any truncation */
    uint64_t truncated_bytes;
    bool index_rebuilt;
    bool index_shrank; /* the old .index knew of records the .log no longer holds */
    bool index_short;  /* a full disk left the index cut back, not rebuilt */
} segment_recovery_t;

/* Recover the segment dir/<base>.log: scan it with CRCs; when it is the last segment
 * (is_last) truncate a torn or corrupt tail to the good prefix and fsync; rebuild .index
 * and .timeindex when missing, shorter than the log needs, or pointing past the log (on a
 * full disk, cut them back to their entries that are right instead: index_short).
 * Returns 0; SHOAL_ECORRUPT when a segment that is not the last is damaged (out->scan
 * says where: the caller decides, data after it is not trusted) or when the .log is not a
 * regular file (the last is not followed through a symbolic link); -errno on I/O errors. */
int segment_recover(const char *dir, int64_t base, bool is_last, segment_recovery_t *out);

/* Appends .index/.timeindex entries while the flusher writes a segment's log. */
typedef struct index_writer {
    int index_fd;
    int timeindex_fd;
    int64_t base;
    uint64_t index_bytes;     /* current size of .index */
    uint64_t timeindex_bytes; /* current size of .timeindex */
    uint64_t last_indexed_pos;
    int64_t last_timestamp;       /* largest timestamp written to .timeindex */
    int64_t max_timestamp;        /* largest batch max timestamp of the segment so far */
    int64_t max_timestamp_offset; /* last offset of the batch that first reached it */
    bool has_entry;
} index_writer_t;

/* Open (creating 0600) the index files of segment base in dir for appending, continuing
 * after existing entries. When there are entries, the next batch added must be the one at
 * the end of dir/<base>.log: the headers after the last .index entry are read to restore
 * the running maximum timestamp. 0 or -errno. */
int index_writer_open(index_writer_t *w, const char *dir, int64_t base);
/* Note a batch written at log position pos; adds entries every interval. 0 or -errno. */
int index_writer_add(index_writer_t *w, uint64_t pos, const record_batch_header_t *h);
/* Test hook (NULL in production): called by index_writer_add() between a batch's .index
 * entry and its .timeindex entry; a negative return fails the add there, as a full disk
 * would, and the add rolls both files back. */
extern int (*index_writer__fault_hook)(void);
/* The segment is done (the flusher rolls to the next): add Kafka's last .timeindex entry,
 * the largest timestamp and the batch that first reached it, unless the last entry is
 * that already. 1 when added, 0 when not needed, or -errno (the file as before). */
int index_writer_seal(index_writer_t *w);
/* fsync both files. 0 or -errno. */
int index_writer_sync(index_writer_t *w);
void index_writer_close(index_writer_t *w);

#endif
