/* config.h - shoald's settings: defaults, a key = value file, and --key value overrides.
 *
 * Keys (the file spells them as below; the command line also accepts '-' for '.'):
 *   data.dir            where topics' segments and the LMDB metadata live   ./var/data
 *   runtime.dir         where the control socket shoald.sock is created     ./var/run
 *   instance            names the shm directory /dev/shm/shoal.<instance>   shoal
 *   shm.dir             parent of the shm directory                         /dev/shm
 *   flush.interval.ms   how often the flusher copies rings to disk          5
 *   flush.ms            longest time written data waits for an fsync        1000
 *   flush.drop.cache    1: drop fsynced segment pages from the page cache
 *                       (the ring holds the recent records; readers further
 *                       behind read the disk); 0: keep them, as Kafka does   1
 *   allow.gid           a group (number or name) whose members may attach,
 *                       besides the daemon's own user and root; the control
 *                       socket is given to that group; -1 for none          -1
 *   log.level           error | warning | notice | info | debug            info
 *   log.file            append the log to this file instead of stderr      (stderr)
 *   offsets.retention.minutes  how long a consumer group without members keeps its
 *                       committed offsets after its last commit and its last member,
 *                       as Kafka's; -1 (or 0): for ever                     10080 (7 days)
 *   offsets.retention.ms       the same in ms, when above 0 (for short ones)  -1
 *   offsets.retention.check.interval.ms  how often groups are looked at for it  600000
 *   group.max.session.timeout.ms  the longest session a group member may ask for  1800000
 *   max.shm.bytes       the shared memory all topics' rings may take together,
 *                       in bytes (creates and partition growth past it are
 *                       refused); -1: no cap but the system's memory         -1
 *
 * Reloaded on SIGHUP: flush.interval.ms, flush.ms, flush.drop.cache, allow.gid, log.level,
 * log.file, offsets.retention.*, group.max.session.timeout.ms, max.shm.bytes
 * (the file is reopened at every SIGHUP). The directories and the instance name need a restart. */
#ifndef SHOALD_CONFIG_H
#define SHOALD_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

typedef struct shoald_config {
    char data_dir[PATH_MAX];
    char runtime_dir[PATH_MAX];
    char instance[64];
    char shm_dir[PATH_MAX];
    int flush_interval_ms;
    int flush_ms;
    int flush_drop_cache;
    long allow_gid;
    int log_level;
    char log_file[PATH_MAX]; /* "" = stderr */
    int offsets_retention_minutes;
    int offsets_retention_ms;
    int offsets_retention_check_ms;
    int group_max_session_timeout_ms; /* a join asking for a longer session is refused */
    long max_shm_bytes;               /* what all topics' rings may take; -1: no cap */
} shoald_config_t;

void config_init(shoald_config_t *cfg);
/* How long an idle group keeps its offsets (offsets.retention.*) in ms, or -1: for ever. */
int64_t config_offsets_retention_ms(const shoald_config_t *cfg);
/* Set one key. 0, or SHOAL_ECONFIG with the reason in err; a refused value changes nothing. */
int config_set(shoald_config_t *cfg, const char *key, const char *value, char *err, size_t cap);
/* Read key = value lines; '#' starts a comment. 0, or SHOAL_ECONFIG with the reason in err:
 * why the file cannot be read, or "<path>:<line>: " and what is wrong there (the first bad
 * line ends the load; the lines before it stay applied). */
int config_load_file(shoald_config_t *cfg, const char *path, char *err, size_t cap);
/* Apply --config FILE (and --config-optional FILE when it exists) first, in order, then
 * every --key value / --key=value in order.
 * Returns 0, 1 when --help or --version was handled, or SHOAL_ECONFIG. */
int config_parse_args(shoald_config_t *cfg, int argc, char **argv, char *err, size_t cap);

#endif
