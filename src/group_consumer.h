/* group_consumer.h - a consumer's group membership (internal): the glue between
 * consumer.c and group_consumer.c. */
#ifndef SHOAL_GROUP_CONSUMER_H
#define SHOAL_GROUP_CONSUMER_H

#include <stdbool.h>

#include "shoal.h"

struct cgroup;

/* Copy the group settings of o (strings, assignors); a call waits the client's timeout_ms
 * for shoald. 0, SHOAL_EGROUPID, SHOAL_EINVAL, -ENOMEM. */
int cgroup_new(struct cgroup **out, const shoal_consumer_options_t *o,
               const shoal_client_t *client);
/* Commit (auto-commit), revoke, leave and free, waiting for shoald session_timeout_ms (the
 * client's timeout_ms at most) in all. 0, or the failure of the commit. g may be NULL. A consumer
 * inherited through fork() (inherited) only frees: the membership is its opener's. */
int cgroup_close(shoal_consumer_t *c, struct cgroup *g, bool inherited);
/* shoal_poll() of a group consumer: runs the group protocol, then reads. */
int cgroup_poll(shoal_consumer_t *c, struct cgroup *g, shoal_record_t *out, size_t max,
                int timeout_ms);

/* True while one of the consumer's callbacks (on_assigned, on_revoked, on_commit) runs:
 * a call that would free or re-enter what runs it (close, poll) is refused then. */
bool cgroup_in_callback(const struct cgroup *g);

/* True when the consumer is subscribed (g may be NULL): partitions may then not be assigned
 * by hand, and its polls run the group protocol. */
bool cgroup_subscribed(const struct cgroup *g);

/* Test hook, NULL in use: called by a member at these points of its protocol work (most
 * of them in a rebalance round), where a test can stall or stop it, or stop shoald. */
enum cgroup_round_point {
    CGROUP_BEFORE_COMMIT,  /* the round begins: before its commit (auto-commit) */
    CGROUP_BEFORE_FETCH,   /* the assignment came: before the new partitions' offset fetch */
    CGROUP_BEFORE_ATTACH,  /* the offsets came: before attaching the new partitions */
    CGROUP_HEARTBEAT_SENT, /* a heartbeat was sent, before its answer is read */
};
extern void (*cgroup__round_hook)(enum cgroup_round_point at);

/* Provided by consumer.c. */
struct cgroup *consumer__group(shoal_consumer_t *c);
shoal_client_t *consumer__client(shoal_consumer_t *c);
void consumer__unassign_all(shoal_consumer_t *c);
/* Attach one partition for the group, waiting for shoald until deadline_ns at most
 * (SHOAL_ETIMEDOUT: not attached; the same attach asked again is served by the late
 * answer). */
int consumer__assign_until(shoal_consumer_t *c, const char *topic, int32_t partition,
                           int64_t deadline_ns);
/* Detach one partition that was assigned on its own (its topic string is its own, as
 * with every partition a group attaches). SHOAL_ENOPARTITION when not assigned. */
int consumer__unassign_one(shoal_consumer_t *c, const char *topic, int32_t partition);
size_t consumer__assigned_count(shoal_consumer_t *c);
/* An assigned partition's ring control block file, into *file (a ring made since under its
 * name, the topic deleted and created again, has another), and its position into
 * *position unless NULL. SHOAL_ENOPARTITION when not assigned; shoal_errmsg() is left as
 * it was. */
struct ring_file_id;
int consumer__ring_file(shoal_consumer_t *c, const char *topic, int32_t partition,
                        struct ring_file_id *file, int64_t *position);
/* 0, or SHOAL_EINVAL when the consumer was opened by the parent of this process (fork()):
 * a child may only close it. */
int consumer__check_owner(const shoal_consumer_t *c);
/* Enter a call as the consumer's one thread, and leave it (shoal__enter, shoal__leave). */
int consumer__enter(shoal_consumer_t *c);
void consumer__leave(shoal_consumer_t *c, int entered);
/* The body of a public call on consumer c: clear the error detail, refuse a NULL c, and
 * return what call (an expression) gives, evaluated as c's one thread. */
#define CONSUMER_CALL(c, call)                                                                     \
    do {                                                                                           \
        int64_t result_;                                                                           \
        int entered_;                                                                              \
        shoal__clear_err();                                                                        \
        SHOAL_NEED(c);                                                                             \
        if ((entered_ = consumer__enter(c)) < 0)                                                   \
            return entered_;                                                                       \
        result_ = (call);                                                                          \
        consumer__leave((c), entered_);                                                            \
        return result_;                                                                            \
    } while (0)
/* shoal_poll() without the group protocol (arguments already checked). */
int consumer__poll(shoal_consumer_t *c, shoal_record_t *out, size_t max, int timeout_ms);
/* Whether shoal_consumer_wakeup() was called since a poll last returned SHOAL_EWAKEUP;
 * true clears it (this poll returns it). */
bool consumer__woken(shoal_consumer_t *c);
/* Whether shoal_consumer_wakeup() was called and not yet answered, without clearing it;
 * false for c NULL. */
bool consumer__wakeup_pending(const shoal_consumer_t *c);
/* Sleep ms, or until shoal_consumer_wakeup(). */
void consumer__nap(shoal_consumer_t *c, int ms);

#endif
