/* fuzz.h - what the fuzz targets share. Each target defines LLVMFuzzerTestOneInput(); it
 * is built twice: with clang's libFuzzer for `make fuzz` (coverage-guided, minutes), and
 * with tests/fuzz/replay.c for `make test`, which runs it over the seed corpus and the
 * shared test data so that every input a fuzzer once needed stays a regression test.
 *
 * A target checks what must hold for any input and aborts with FUZZ_CHECK when it does
 * not: libFuzzer then saves the input, and the replay fails. Inputs are bytes another
 * process or a disk could hand shoal, so nothing here may crash, hang or read outside
 * them (the sanitizers see to the last). */
#ifndef SHOAL_TEST_FUZZ_H
#define SHOAL_TEST_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Set by a target that leaves files behind: FUZZ_CHECK calls it before aborting. */
static void (*fuzz_on_failure)(void) __attribute__((unused));

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s does not hold\n", __FILE__, __LINE__, #cond);               \
            if (fuzz_on_failure)                                                                   \
                fuzz_on_failure();                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A view is null (NULL, -1) or lies wholly inside [lo, hi). */
static inline int fuzz_view_inside(const void *ptr, int64_t len, const uint8_t *lo,
                                   const uint8_t *hi)
{
    const uint8_t *p = ptr;
    if (p == NULL)
        return len == -1;
    return len >= 0 && p >= lo && p <= hi && (uint64_t)len <= (uint64_t)(hi - p);
}

#endif
