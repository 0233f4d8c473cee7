/* waitset.c - see waitset.h.
 *
 * A wait over several groups runs in rounds. The caller writes the round's parameters,
 * sets `pending` to the number of helpers and moves `go`; every helper wakes, waits on its
 * group if this round has one, then moves `end` and counts itself out of `pending`. The
 * caller waits on group 0, moves `end` too, and returns once `pending` is 0. Every helper
 * takes part in every round, so none can still be in one when the next begins, and `go`
 * moves by exactly one a round for each of them. */
#include "waitset.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct helper {
    pthread_t thread;
    waitset_t *ws;
    size_t group;     /* the group it waits on: 1 .. WAITSET_MAX_HELPERS */
    uint32_t go_seen; /* `go` when it started */
};

struct waitset {
    _Atomic uint32_t **words;
    uint32_t *expected;
    size_t n, cap;
    /* the round's parameters, written before `go` moves */
    size_t groups;
    int64_t timeout_ns;
    uint32_t end_seen;
    _Atomic uint32_t go;      /* moved to start a round, or to stop the helpers */
    _Atomic uint32_t end;     /* moved by whoever returns from a round's wait */
    _Atomic uint32_t pending; /* helpers not done with the round */
    _Atomic int error;        /* a helper's failure in the round, else 0 */
    _Atomic bool stop;
    size_t nhelpers;
    struct helper helpers[WAITSET_MAX_HELPERS];
};

waitset_t *waitset_new(void)
{
    return shoal__calloc(1, sizeof(waitset_t));
}

void waitset_clear(waitset_t *ws)
{
    ws->n = 0;
}

size_t waitset_size(const waitset_t *ws)
{
    return ws->n;
}

int waitset_add(waitset_t *ws, _Atomic uint32_t *word, uint32_t expected)
{
    if (ws->n == WAITSET_MAX_WORDS)
        return -E2BIG;
    if (ws->n == ws->cap) {
        size_t cap = ws->cap ? 2 * ws->cap : 128;
        _Atomic uint32_t **words = shoal__realloc(ws->words, cap * sizeof(*words));
        uint32_t *exp = words ? shoal__realloc(ws->expected, cap * sizeof(*exp)) : NULL;
        if (words)
            ws->words = words;
        if (!exp)
            return -ENOMEM;
        ws->expected = exp;
        ws->cap = cap;
    }
    ws->words[ws->n] = word;
    ws->expected[ws->n++] = expected;
    return 0;
}

/* Wait on group g and the end word, then end the round for everyone. */
static int group_wait(waitset_t *ws, size_t g)
{
    _Atomic uint32_t *words[WAITSET_GROUP_WORDS + 1];
    uint32_t expected[WAITSET_GROUP_WORDS + 1];
    size_t first = g * WAITSET_GROUP_WORDS;
    size_t k = SHOAL_MIN(ws->n - first, (size_t)WAITSET_GROUP_WORDS);
    int rc;

    words[0] = &ws->end;
    expected[0] = ws->end_seen;
    memcpy(words + 1, ws->words + first, k * sizeof(*words));
    memcpy(expected + 1, ws->expected + first, k * sizeof(*expected));
    rc = shoal__futex_waitv(words, expected, k + 1, ws->timeout_ns);
    atomic_fetch_add(&ws->end, 1);
    shoal__futex_wake(&ws->end, INT32_MAX);
    return rc == -ETIMEDOUT ? 0 : rc;
}

static void *helper_main(void *arg)
{
    struct helper *h = arg;
    waitset_t *ws = h->ws;
    uint32_t go = h->go_seen, now;

    for (;;) {
        while ((now = atomic_load(&ws->go)) == go)
            shoal__futex_wait(&ws->go, go, -1);
        go = now;
        if (atomic_load(&ws->stop))
            return NULL;
        if (h->group < ws->groups) {
            int rc = group_wait(ws, h->group), none = 0;
            if (rc < 0)
                atomic_compare_exchange_strong(&ws->error, &none, rc);
        }
        if (atomic_fetch_sub(&ws->pending, 1) == 1)
            shoal__futex_wake(&ws->pending, 1);
    }
}

static int helpers_start(waitset_t *ws, size_t want)
{
    while (ws->nhelpers < want) {
        struct helper *h = &ws->helpers[ws->nhelpers];
        int rc;
        h->ws = ws;
        h->group = ws->nhelpers + 1;
        h->go_seen = atomic_load(&ws->go);
        if ((rc = pthread_create(&h->thread, NULL, helper_main, h)) != 0)
            return -rc;
        ws->nhelpers++;
    }
    return 0;
}

int waitset_wait(waitset_t *ws, int64_t timeout_ns)
{
    size_t groups = (ws->n + WAITSET_GROUP_WORDS - 1) / WAITSET_GROUP_WORDS;
    uint32_t left;
    int rc, helper_rc;

    if (groups <= 1) {
        rc = ws->n ? shoal__futex_waitv(ws->words, ws->expected, ws->n, timeout_ns) : -EINVAL;
        return rc == -ETIMEDOUT ? 0 : rc;
    }
    if ((rc = helpers_start(ws, groups - 1)) < 0)
        return rc;
    ws->groups = groups;
    ws->timeout_ns = timeout_ns;
    ws->end_seen = atomic_load(&ws->end);
    atomic_store(&ws->error, 0);
    atomic_store(&ws->pending, (uint32_t)ws->nhelpers);
    atomic_fetch_add(&ws->go, 1); /* after the parameters: the helpers load `go` first */
    shoal__futex_wake(&ws->go, INT32_MAX);
    rc = group_wait(ws, 0);
    while ((left = atomic_load(&ws->pending)) != 0)
        shoal__futex_wait(&ws->pending, left, -1);
    helper_rc = atomic_load(&ws->error);
    return rc < 0 ? rc : helper_rc;
}

void waitset_free(waitset_t *ws)
{
    if (!ws)
        return;
    atomic_store(&ws->stop, true);
    atomic_fetch_add(&ws->go, 1);
    shoal__futex_wake(&ws->go, INT32_MAX);
    for (size_t i = 0; i < ws->nhelpers; i++)
        pthread_join(ws->helpers[i].thread, NULL);
    shoal__free(ws->words);
    shoal__free(ws->expected);
    shoal__free(ws);
}
