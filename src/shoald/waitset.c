/* waitset.c - see waitset.h.
 *
 * A wait over several groups is a round. The caller writes the round's parameters, sets
 * `pending` to the number of helpers it needs and moves each one's `go`; each of them
 * wakes, waits on its group, then moves `end` and counts itself out of `pending`. The
 * caller waits on group 0, moves `end` too, and returns once `pending` is 0: no helper can
 * still be in a round when the next begins, and a helper's `go` moves by exactly one a
 * round it takes part in. The other helpers sleep. */
#include "waitset.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define ONE_WAIT_WORDS    128         /* what one futex_waitv takes */
#define HELPER_STACK_SIZE (256 << 10) /* a group's arrays and futex_waitv's: a few KiB */

struct helper {
    pthread_t thread;
    waitset_t *ws;
    size_t group;        /* the group it waits on: 1 .. WAITSET_MAX_HELPERS */
    _Atomic uint32_t go; /* moved to start a round for it, or to stop it */
};

struct waitset {
    _Atomic uint32_t **words;
    uint32_t *expected;
    size_t n, cap;
    /* the round's parameters, written before any `go` moves */
    int64_t timeout_ns;
    uint32_t end_seen;
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
    uint32_t go = 0, now;

    for (;;) {
        while ((now = atomic_load(&h->go)) == go)
            shoal__futex_wait(&h->go, go, -1);
        go = now;
        if (atomic_load(&ws->stop))
            return NULL;
        int rc = group_wait(ws, h->group), none = 0;
        if (rc < 0)
            atomic_compare_exchange_strong(&ws->error, &none, rc);
        if (atomic_fetch_sub(&ws->pending, 1) == 1)
            shoal__futex_wake(&ws->pending, 1);
    }
}

static int helpers_start(waitset_t *ws, size_t want)
{
    pthread_attr_t attr;
    int rc = 0;

    if (ws->nhelpers >= want)
        return 0;
    if ((rc = pthread_attr_init(&attr)) != 0)
        return -rc;
    (void)pthread_attr_setstacksize(&attr, HELPER_STACK_SIZE);
    while (ws->nhelpers < want) {
        struct helper *h = &ws->helpers[ws->nhelpers];
        h->ws = ws;
        h->group = ws->nhelpers + 1;
        atomic_store(&h->go, 0);
        if ((rc = pthread_create(&h->thread, &attr, helper_main, h)) != 0)
            break;
        ws->nhelpers++;
    }
    pthread_attr_destroy(&attr);
    return -rc;
}

static int first_words_wait(waitset_t *ws, int64_t timeout_ns)
{
    size_t n = SHOAL_MIN(ws->n, (size_t)ONE_WAIT_WORDS);
    int rc = n ? shoal__futex_waitv(ws->words, ws->expected, n, timeout_ns) : -EINVAL;
    return rc == -ETIMEDOUT ? 0 : rc;
}

int waitset_wait(waitset_t *ws, int64_t timeout_ns, bool every_word)
{
    size_t helpers = (ws->n - 1) / WAITSET_GROUP_WORDS; /* groups past the first */
    uint32_t left;
    int rc;

    if (ws->n <= ONE_WAIT_WORDS || !every_word || !shoal__futex_waitv_works())
        return first_words_wait(ws, timeout_ns);
    if ((rc = helpers_start(ws, helpers)) < 0)
        return rc;
    ws->timeout_ns = timeout_ns;
    ws->end_seen = atomic_load(&ws->end);
    atomic_store(&ws->error, 0);
    atomic_store(&ws->pending, (uint32_t)helpers);
    for (size_t i = 0; i < helpers; i++) { /* after the parameters: helpers load `go` first */
        atomic_fetch_add(&ws->helpers[i].go, 1);
        shoal__futex_wake(&ws->helpers[i].go, 1);
    }
    rc = group_wait(ws, 0);
    while ((left = atomic_load(&ws->pending)) != 0)
        shoal__futex_wait(&ws->pending, left, -1);
    return rc < 0 ? rc : atomic_load(&ws->error);
}

void waitset_free(waitset_t *ws)
{
    if (!ws)
        return;
    atomic_store(&ws->stop, true);
    for (size_t i = 0; i < ws->nhelpers; i++) {
        atomic_fetch_add(&ws->helpers[i].go, 1);
        shoal__futex_wake(&ws->helpers[i].go, 1);
    }
    for (size_t i = 0; i < ws->nhelpers; i++)
        pthread_join(ws->helpers[i].thread, NULL);
    shoal__free(ws->words);
    shoal__free(ws->expected);
    shoal__free(ws);
}
