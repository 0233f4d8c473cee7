/* assign.h - partition assignors for consumer groups (internal side of shoal.h's
 * shoal_assignor_t): the output builder, the result checker and the built-ins.
 *
 * An output holds, per member, the partitions assigned to it, in the order added. Topic
 * strings are not copied: they point into the assignor's input. */
#ifndef SHOAL_ASSIGN_H
#define SHOAL_ASSIGN_H

#include <stdbool.h>
#include <stddef.h>

#include "shoal.h"

struct assign_member_out {
    shoal_topic_partition_t *tps;
    size_t n;
    size_t cap;
};

struct shoal_assign_output {
    size_t member_count;
    struct assign_member_out *members;
};

/* 0 or -ENOMEM. */
int assign_output_init(shoal_assign_output_t *out, size_t member_count);
void assign_output_release(shoal_assign_output_t *out);

/* Run an assignor and check its result. out is set up here: pass it uninitialised (not
 * after assign_output_init, which would leak). On success the caller owns it and calls
 * assign_output_release(); on failure it is already released (members NULL). Checks: every
 * partition of every input topic assigned to exactly one member subscribed to it (for a cooperative
 * assignor: at most one, and a withheld partition must be owned by some member in the input). 0,
 * the assignor's error, or SHOAL_EINVAL with the violation in shoal_errmsg(). */
int assign_run(const shoal_assignor_t *a, const shoal_assign_input_t *in,
               shoal_assign_output_t *out);

/* Whether member m subscribes to topic. */
bool assign_member_subscribes(const shoal_assign_member_t *m, const char *topic);
/* The indices of in's members in Kafka's order: static members first by
 * group_instance_id, then the rest by member_id. A shoal__malloc'd array the caller frees
 * with shoal__free(), or NULL when out of memory. */
size_t *assign_member_order(const shoal_assign_input_t *in);

/* The built-ins, each in its own file. */
int assign_range(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out);
int assign_roundrobin(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out);
int assign_sticky(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out);
int assign_cooperative_sticky(void *arg, const shoal_assign_input_t *in,
                              shoal_assign_output_t *out);

#endif
