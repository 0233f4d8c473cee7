/* compact.h - log compaction (cleanup.policy compact): keep the latest record of every key
 * in a partition's sealed disk segments, drop old tombstones, keep offsets; and, at start,
 * finish or discard a rewrite that a crash interrupted. */
#ifndef SHOALD_COMPACT_H
#define SHOALD_COMPACT_H

#include <stdbool.h>
#include <stdint.h>

struct dpart;

/* The cleaner's memory between runs, inside the partition; zero is the initial state. */
typedef struct compact_state {
    int64_t last_ns;      /* when the cleaner last looked at the partition */
    int64_t seen_writing; /* base of the segment being written at the last run ... */
    bool seen_open;       /* ... and whether its file existed (the flusher had it open) */
    int64_t expiry_ms;    /* when the first tombstone kept by that run expires */
    int64_t retention_ms; /* the delete.retention.ms that run used */
} compact_state_t;

/* A finished rewrite of <base>.log (and of the segments merged into it), before it takes
 * the .log's place. */
#define COMPACT_SWAP_EXT ".log.swap"

/* Nanoseconds between two cleaner runs over one partition (2 s). */
#define COMPACT_INTERVAL_NS (2000 * 1000000LL)

/* From the flusher thread: when the partition's cleanup.policy has compact, at most every
 * COMPACT_INTERVAL_NS and only when a segment was sealed, a kept tombstone expired or
 * delete.retention.ms changed since the last run (or the last run rewrote segments, or
 * failed), rewrite every sealed segment that holds a superseded record or an expired
 * tombstone, and merge neighbours that together fit in segment.bytes. The segment being
 * written, and anything after it, is never touched; its bytes still count when deciding
 * which record of a key is the latest. Errors are logged and leave the segments as they were
 * (or a finished rewrite as .swap, put in place by the next run); the partition goes on
 * flushing. */
void compact_maybe_run(struct dpart *p, int64_t now_ns);

/* At start, before the segments are listed: in the partition's directory delete every
 * <base>.log.cleaned (an unfinished rewrite: the old segment is whole) and settle every
 * <base>.log.swap. A .swap that is a finished rewrite (whole batches with good CRCs,
 * offsets from base up to where the segment ends, or to where a later one begins: a merge,
 * whose segments before that one are deleted) replaces <base>.log; any other is deleted
 * with a warning naming it, and <base>.log is kept. The number of .swap files settled, or a
 * negative code (an I/O error: nothing is replaced or deleted then). */
int compact_recover(const char *dir, const char *topic, uint32_t id);

#endif
