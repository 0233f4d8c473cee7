/* assign_range.c - Kafka's RangeAssignor ("range").
 *
 * DESIGN
 * Each topic is split on its own: the members subscribed to it, in Kafka's member order,
 * take contiguous ranges of its partitions; with n partitions and m subscribers each gets
 * n / m and the first n % m get one more. Kafka's member order is its MemberInfo order:
 * static members (with a group_instance_id) first, by instance id, so that a restarted
 * static member keeps its ranges, then dynamic members by member_id. With no static
 * members that is the input's own order. Topics are independent, so with several topics
 * of equal size the first members collect every topic's extra partition: that imbalance
 * is Kafka's documented behaviour, kept so assignments match a Kafka group's.
 */
#include "assign.h"

#include <errno.h>
#include <string.h>

#include "util.h"

static int range_topic(const shoal_assign_input_t *in, const size_t *order, size_t t,
                       shoal_assign_output_t *out)
{
    const char *topic = in->topics[t].topic;
    size_t subscribers = 0;
    for (size_t k = 0; k < in->member_count; k++)
        subscribers += assign_member_subscribes(&in->members[order[k]], topic);
    if (subscribers == 0)
        return 0;
    uint32_t n = in->topics[t].partitions, next = 0;
    uint32_t each = n / (uint32_t)subscribers, extra = n % (uint32_t)subscribers;
    for (size_t k = 0, rank = 0; k < in->member_count; k++) {
        if (!assign_member_subscribes(&in->members[order[k]], topic))
            continue;
        uint32_t end = next + each + (rank++ < extra ? 1 : 0);
        for (; next < end; next++) {
            int rc = shoal_assign_output_add(out, order[k], topic, (int32_t)next);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int assign_range(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out)
{
    (void)arg;
    size_t *order = assign_member_order(in);
    if (!order)
        return -ENOMEM;
    int rc = 0;
    for (size_t t = 0; t < in->topic_count && rc == 0; t++)
        rc = range_topic(in, order, t, out);
    shoal__free(order);
    return rc;
}
