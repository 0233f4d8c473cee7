/* group_admin.c - consumer group administration over the client's control connection:
 * list, describe (members, committed offsets, lag), reset offsets, delete. */
#include <errno.h>
#include <stdio.h>

#include "client.h"
#include "util.h"

static int check_group(const char *id)
{
    if (!shoal_group_id_is_valid(id))
        return SHOAL_ERR(SHOAL_EGROUPID, "invalid group id '%.260s'", id ? id : "(null)");
    return 0;
}

void shoal_group_list_free(shoal_group_listing_t *list)
{
    shoal__free(list);
}

int shoal_group_list(shoal_client_t *c, shoal_group_listing_t **out, size_t *n)
{
    ctl_writer_t w;
    client_reply_t rep;
    shoal_group_listing_t *v;
    uint32_t count;
    int rc;

    shoal__clear_err();
    SHOAL_NEED(c);
    SHOAL_NEED(out);
    SHOAL_NEED(n);
    *out = NULL;
    *n = 0;
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_GROUP_LIST, 0);
    rc = client_call(c, &w, &rep);
    ctl_writer_release(&w);
    if (rc < 0)
        return rc;
    count = ctl_get_u32(&rep.r);
    if (rep.r.err || count > ctl_reader_left(&rep.r) / 9) { /* 9 bytes each at least */
        client_reply_release(&rep);
        return SHOAL_ERR(SHOAL_EPROTO, "bad group count");
    }
    if (!(v = shoal__calloc(count ? count : 1, sizeof(*v)))) {
        client_reply_release(&rep);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < count; i++) {
        ctl_get_str(&rep.r, v[i].group_id, sizeof(v[i].group_id));
        ctl_get_str(&rep.r, v[i].state, sizeof(v[i].state));
        v[i].members = ctl_get_u32(&rep.r);
    }
    rc = ctl_reader_finish(&rep.r);
    client_reply_release(&rep);
    if (rc < 0) {
        shoal__free(v);
        return SHOAL_ERR(rc, "malformed group list response");
    }
    *out = v;
    *n = count;
    return 0;
}

void shoal_group_info_free(shoal_group_info_t *info)
{
    if (!info)
        return;
    for (size_t i = 0; i < info->member_count; i++) {
        for (size_t k = 0; k < info->members[i].assigned_count; k++)
            shoal__free((char *)info->members[i].assigned[k].topic);
        shoal__free(info->members[i].assigned);
    }
    shoal__free(info->members);
    shoal__free(info->offsets);
    shoal__free(info);
}

static int read_member(ctl_reader_t *r, shoal_group_member_info_t *m)
{
    uint32_t n;
    ctl_get_str(r, m->member_id, sizeof(m->member_id));
    ctl_get_str(r, m->client_id, sizeof(m->client_id));
    ctl_get_str(r, m->instance_id, sizeof(m->instance_id));
    m->pid = ctl_get_i32(r);
    n = ctl_get_u32(r);
    if (r->err || n > SHOAL_PARTITIONS_MAX * 64)
        return SHOAL_EPROTO;
    if (!(m->assigned = shoal__calloc(n ? n : 1, sizeof(*m->assigned))))
        return -ENOMEM;
    for (uint32_t k = 0; k < n; k++) {
        char topic[SHOAL_TOPIC_NAME_MAX + 1];
        char *t;
        ctl_get_str(r, topic, sizeof(topic));
        m->assigned[k].partition = ctl_get_i32(r);
        if (r->err)
            return SHOAL_EPROTO;
        if (!(t = shoal__strdup(topic)))
            return -ENOMEM;
        m->assigned[k].topic = t;
        m->assigned_count = k + 1;
    }
    return 0;
}

static int read_group_info(ctl_reader_t *r, shoal_group_info_t *info)
{
    uint32_t n;
    int rc;

    ctl_get_str(r, info->state, sizeof(info->state));
    info->generation = ctl_get_i32(r);
    ctl_get_str(r, info->protocol, sizeof(info->protocol));
    ctl_get_str(r, info->leader, sizeof(info->leader));
    n = ctl_get_u32(r);
    if (r->err || n > 65536 || !(info->members = shoal__calloc(n ? n : 1, sizeof(*info->members))))
        return r->err || n > 65536 ? SHOAL_EPROTO : -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        info->member_count = i + 1;
        if ((rc = read_member(r, &info->members[i])) < 0)
            return rc;
    }
    n = ctl_get_u32(r);
    if (r->err || n > 1u << 20 ||
        !(info->offsets = shoal__calloc(n ? n : 1, sizeof(*info->offsets))))
        return r->err || n > 1u << 20 ? SHOAL_EPROTO : -ENOMEM;
    info->offset_count = n;
    for (uint32_t i = 0; i < n; i++) {
        shoal_group_offset_info_t *o = &info->offsets[i];
        ctl_get_str(r, o->topic, sizeof(o->topic));
        o->partition = ctl_get_i32(r);
        o->committed = ctl_get_i64(r);
        o->log_end_offset = ctl_get_i64(r);
        o->lag = (o->committed >= 0 && o->log_end_offset >= 0)
                     ? SHOAL_MAX(0, o->log_end_offset - o->committed)
                     : -1;
    }
    return ctl_reader_finish(r);
}

int shoal_group_describe(shoal_client_t *c, const char *group_id, shoal_group_info_t **out)
{
    ctl_writer_t w;
    client_reply_t rep;
    shoal_group_info_t *info;
    int rc;

    shoal__clear_err();
    SHOAL_NEED(c);
    SHOAL_NEED(group_id);
    SHOAL_NEED(out);
    *out = NULL;
    if ((rc = check_group(group_id)) < 0)
        return rc;
    if (!(info = shoal__calloc(1, sizeof(*info))))
        return -ENOMEM;
    snprintf(info->group_id, sizeof(info->group_id), "%s", group_id);
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_GROUP_DESCRIBE, 0);
    ctl_put_str(&w, group_id);
    rc = client_call(c, &w, &rep);
    ctl_writer_release(&w);
    if (rc == 0) {
        rc = read_group_info(&rep.r, info);
        if (rc == SHOAL_EPROTO)
            SHOAL_ERR(rc, "malformed group describe response");
        client_reply_release(&rep);
    }
    if (rc < 0) {
        shoal_group_info_free(info);
        return rc;
    }
    *out = info;
    return 0;
}

void shoal_offset_changes_free(shoal_offset_change_t *changes)
{
    shoal__free(changes);
}

/* The reset's answer: *n x (partition, committed before, offset after); *n partitions were
 * named, or 0 for every one (then the answer says how many). */
static int read_offset_changes(ctl_reader_t *r, size_t *n_io, shoal_offset_change_t **out)
{
    uint32_t n = ctl_get_u32(r);
    shoal_offset_change_t *v;

    if (r->err || (*n_io && n != *n_io) || n > SHOAL_PARTITIONS_MAX ||
        n > ctl_reader_left(r) / 20) /* 20 bytes each */
        return SHOAL_ERR(SHOAL_EPROTO, "malformed reset response");
    if (!(v = shoal__calloc(n ? n : 1, sizeof(*v))))
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        v[i].partition = ctl_get_i32(r);
        v[i].committed = ctl_get_i64(r);
        v[i].offset = ctl_get_i64(r);
    }
    if (ctl_reader_finish(r) < 0) {
        shoal__free(v);
        return SHOAL_ERR(SHOAL_EPROTO, "malformed reset response");
    }
    *out = v;
    *n_io = n;
    return 0;
}

static int reset_args_check(const char *group_id, const char *topic, const int32_t *partitions,
                            size_t n, int whence, int64_t value, unsigned flags)
{
    int rc;

    if ((rc = check_group(group_id)) < 0)
        return rc;
    if (!shoal_topic_name_is_valid(topic))
        return SHOAL_ERR(SHOAL_ENAME, "invalid topic name '%.260s'", topic);
    if ((whence < SHOAL_SEEK_BEGINNING || whence > SHOAL_SEEK_TIMESTAMP) &&
        whence != SHOAL_RESET_SHIFT)
        return SHOAL_ERR(SHOAL_EINVAL, "reset mode %d", whence);
    if ((whence == SHOAL_SEEK_OFFSET || whence == SHOAL_SEEK_TIMESTAMP) && value < 0)
        return SHOAL_ERR(SHOAL_EINVAL, "reset to %s %lld",
                         whence == SHOAL_SEEK_OFFSET ? "offset" : "timestamp", (long long)value);
    if ((flags & ~SHOAL_RESET_DRY_RUN) || (n > 0 && !partitions) || n > SHOAL_PARTITIONS_MAX)
        return SHOAL_ERR(SHOAL_EINVAL, "reset: flags 0x%x, %zu partitions%s", flags, n,
                         n > 0 && !partitions ? " and partitions NULL" : "");
    return 0;
}

int shoal_group_reset_partitions(shoal_client_t *c, const char *group_id, const char *topic,
                                 const int32_t *partitions, size_t n, int whence, int64_t value,
                                 unsigned flags, shoal_offset_change_t **changes, size_t *nchanges)
{
    shoal_offset_change_t *v = NULL;
    ctl_writer_t w;
    client_reply_t rep;
    int rc;

    shoal__clear_err();
    SHOAL_NEED(c);
    SHOAL_NEED(group_id);
    SHOAL_NEED(topic);
    if (changes)
        *changes = NULL;
    if (nchanges)
        *nchanges = 0;
    if (changes && !nchanges) /* the array would come without its length */
        return SHOAL_ERR(SHOAL_EINVAL, "%s: changes without nchanges", __func__);
    if ((rc = reset_args_check(group_id, topic, partitions, n, whence, value, flags)) < 0)
        return rc;
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_GROUP_RESET, 0);
    ctl_put_str(&w, group_id);
    ctl_put_str(&w, topic);
    ctl_put_u8(&w, (uint8_t)whence);
    ctl_put_i64(&w, value);
    ctl_put_u8(&w, (uint8_t)flags);
    ctl_put_u32(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        ctl_put_i32(&w, partitions[i]);
    rc = client_call(c, &w, &rep);
    ctl_writer_release(&w);
    if (rc < 0)
        return rc;
    rc = read_offset_changes(&rep.r, &n, &v);
    client_reply_release(&rep);
    if (rc < 0)
        return rc;
    if (changes)
        *changes = v;
    else
        shoal__free(v);
    if (nchanges)
        *nchanges = n;
    return 0;
}

int shoal_group_reset_offsets(shoal_client_t *c, const char *group_id, const char *topic,
                              int whence, int64_t offset)
{
    return shoal_group_reset_partitions(c, group_id, topic, NULL, 0, whence, offset, 0, NULL, NULL);
}

int shoal_group_delete(shoal_client_t *c, const char *group_id)
{
    ctl_writer_t w;
    client_reply_t rep;
    int rc;

    shoal__clear_err();
    SHOAL_NEED(c);
    SHOAL_NEED(group_id);
    if ((rc = check_group(group_id)) < 0)
        return rc;
    ctl_writer_init(&w);
    ctl_frame_begin(&w, CTL_GROUP_DELETE, 0);
    ctl_put_str(&w, group_id);
    rc = client_call(c, &w, &rep);
    ctl_writer_release(&w);
    if (rc == 0) {
        rc = ctl_reader_finish(&rep.r);
        client_reply_release(&rep);
    }
    return rc;
}
