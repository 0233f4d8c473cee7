/* topic_config.h - the internal side of topic settings (the table is in topic_config.c;
 * the public functions are in shoal.h). */
#ifndef SHOAL_TOPIC_CONFIG_H
#define SHOAL_TOPIC_CONFIG_H

#include <stdbool.h>

#include "shoal.h"

/* The largest segment.bytes. A batch fits in one ring slot, so no batch is larger. */
#define TOPIC_SEGMENT_BYTES_MAX (1u << 30)
/* The largest max.message.bytes, which bounds a batch of one record (header included). */
#define TOPIC_MESSAGE_BYTES_MAX (1u << 29)
/* Its default: shoal_topic_create() lowers it to half of a smaller segment.bytes. */
#define TOPIC_MESSAGE_BYTES_DEFAULT (1u << 20)

/* Whether an existing topic may change this setting (false for unknown names, and for
 * partitions, storage, segment.bytes and ring.slots, which fix the ring's layout). */
bool topic_setting_is_alterable(const char *name);

/* Whether the setting is about disk segments (their retention, rolling, fsyncs, compaction's
 * tombstones): a memory topic has none, and refuses values other than the default. */
bool topic_setting_is_disk_only(const char *name);

/* SHOAL_ECONFIG unless cfg's reserved fields are zero, as shoal_topic_config_init() leaves
 * them (shoal.h, VERSIONS AND THE ABI). Checked by the client: the wire does not carry them. */
int topic_config_check_reserved(const shoal_topic_config_t *cfg);
/* max.message.bytes left at its default, with a segment under twice that: half a segment,
 * as shoal_topic_create() sends it (and shoal_topic_config_check() judges it). */
void topic_config_fit_default(shoal_topic_config_t *cfg);
/* shoal_topic_config_check() of cfg as it is (shoald's check of what it stores). */
int topic_config_check(const shoal_topic_config_t *cfg);

#endif
