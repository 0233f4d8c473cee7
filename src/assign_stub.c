/* assign_stub.c - TEMPORARY stand-in for the assignor module being written in branch
 * `assign` (src/assign.h is the contract): the output builder, a minimal assign_run() and
 * the range assignor, so that consumer groups build and run before that branch lands.
 * Delete this file when merging `assign`. */
#include <errno.h>
#include <string.h>

#include "assign.h"
#include "util.h"

int assign_output_init(shoal_assign_output_t *out, size_t member_count)
{
    out->member_count = member_count;
    out->members = shoal__calloc(member_count ? member_count : 1, sizeof(*out->members));
    return out->members ? 0 : -ENOMEM;
}

void assign_output_release(shoal_assign_output_t *out)
{
    for (size_t i = 0; out->members && i < out->member_count; i++)
        shoal__free(out->members[i].tps);
    shoal__free(out->members);
    out->members = NULL;
    out->member_count = 0;
}

int shoal_assign_output_add(shoal_assign_output_t *out, size_t member_index, const char *topic,
                            int32_t partition)
{
    struct assign_member_out *m;
    if (member_index >= out->member_count)
        return SHOAL_EINVAL;
    m = &out->members[member_index];
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        shoal_topic_partition_t *v = shoal__realloc(m->tps, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        m->tps = v;
        m->cap = cap;
    }
    m->tps[m->n++] = (shoal_topic_partition_t){.topic = topic, .partition = partition};
    return 0;
}

static bool subscribes(const shoal_assign_member_t *m, const char *topic)
{
    for (size_t i = 0; i < m->topic_count; i++)
        if (!strcmp(m->topics[i], topic))
            return true;
    return false;
}

int assign_range(void *arg, const shoal_assign_input_t *in, shoal_assign_output_t *out)
{
    (void)arg;
    for (size_t t = 0; t < in->topic_count; t++) {
        const shoal_assign_topic_t *tp = &in->topics[t];
        size_t n = 0, k = 0;
        uint32_t p = 0;
        for (size_t i = 0; i < in->member_count; i++)
            n += subscribes(&in->members[i], tp->topic);
        for (size_t i = 0; i < in->member_count && n; i++) {
            uint32_t share;
            if (!subscribes(&in->members[i], tp->topic))
                continue;
            share = tp->partitions / (uint32_t)n + (k < tp->partitions % n ? 1 : 0);
            for (uint32_t e = p + share; p < e; p++) {
                int rc = shoal_assign_output_add(out, i, tp->topic, (int32_t)p);
                if (rc < 0)
                    return rc;
            }
            k++;
        }
    }
    return 0;
}

int assign_run(const shoal_assignor_t *a, const shoal_assign_input_t *in,
               shoal_assign_output_t *out)
{
    return a->assign(a->arg, in, out);
}

const shoal_assignor_t *shoal_assignor_builtin(const char *name)
{
    static const shoal_assignor_t range = {.name = "range", .assign = assign_range};
    return name && !strcmp(name, "range") ? &range : NULL;
}
