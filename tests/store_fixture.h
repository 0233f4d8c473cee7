/* store_fixture.h - the cmocka fixture of the LMDB store's unit tests: a fresh store in a
 * temp dir per test (setup), closed and removed after it (teardown). Include after cmocka.h,
 * harness.h and store.h. */
#ifndef SHOAL_TESTS_STORE_FIXTURE_H
#define SHOAL_TESTS_STORE_FIXTURE_H

#include <stdio.h>
#include <string.h>

struct fixture {
    char dir[256];
    char meta[300]; /* <dir>/meta, the store's directory */
    store_t *st;
};

static int setup(void **state)
{
    static struct fixture f;

    memset(&f, 0, sizeof(f));
    harness_tmpdir(f.dir, sizeof(f.dir), "store");
    snprintf(f.meta, sizeof(f.meta), "%s/meta", f.dir);
    if (store_open(f.meta, 16u << 20, &f.st) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    store_close(f->st);
    harness_rmrf(f->dir);
    return 0;
}

#endif
