/* assign_roundrobin.c - Kafka's RoundRobinAssignor ("roundrobin").
 *
 * DESIGN
 * Every partition of every subscribed topic, sorted by (topic, partition), is dealt in
 * turn around a circle of the members in Kafka's member order (static members by
 * group_instance_id first, then dynamic ones by member_id; with no static members, the
 * input's order). A member not subscribed to a partition's topic is skipped, and the
 * circle then continues after the member that took the partition, exactly as Kafka's
 * CircularIterator does, so results match a Kafka group's. With identical subscriptions
 * counts differ by at most one; with different subscriptions they may differ more.
 */
#include "assign.h"

#include <errno.h>
#include <string.h>

#include "util.h"

static bool roundrobin_has_subscriber(const shoal_assign_input_t *in, const char *topic)
{
    for (size_t k = 0; k < in->member_count; k++)
        if (assign_member_subscribes(&in->members[k], topic))
            return true;
    return false;
}

/* Deal topic t's partitions from circle position *pos on. */
static int roundrobin_topic(const shoal_assign_input_t *in, const size_t *order, size_t t,
                            size_t *pos, shoal_assign_output_t *out)
{
    const char *topic = in->topics[t].topic;
    if (!roundrobin_has_subscriber(in, topic))
        return 0;
    for (uint32_t p = 0; p < in->topics[t].partitions; p++) {
        while (!assign_member_subscribes(&in->members[order[*pos]], topic))
            *pos = (*pos + 1) % in->member_count;
        int rc = shoal_assign_output_add(out, order[*pos], topic, (int32_t)p);
        if (rc < 0)
            return rc;
        *pos = (*pos + 1) % in->member_count;
    }
    return 0;
}

int assign_roundrobin(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out)
{
    (void)arg;
    size_t *order = assign_member_order(in);
    if (!order)
        return -ENOMEM;
    size_t pos = 0;
    int rc = 0;
    for (size_t t = 0; t < in->topic_count && rc == 0; t++)
        rc = roundrobin_topic(in, order, t, &pos, out);
    shoal__free(order);
    return rc;
}
