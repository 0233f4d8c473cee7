/* harness.h - helpers shared by the tests: temporary directories, test data paths, and
 * (for tests/integ and tests/fault) a real shoald started in its own directories. */
#ifndef SHOAL_TEST_HARNESS_H
#define SHOAL_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Create a fresh directory under $TMPDIR (or /tmp) named shoal-test-<tag>-XXXXXX and
 * store its path in buf. Aborts the test program on failure. */
void harness_tmpdir(char *buf, size_t cap, const char *tag);
/* rm -rf path (used by teardowns). */
void harness_rmrf(const char *path);
/* Path of a file in ../shared/testdata (or $SHOAL_TESTDATA) into buf. */
void harness_testdata(char *buf, size_t cap, const char *rel);
/* Read a whole file into a malloc'd buffer; *len gets its size. NULL on failure. */
uint8_t *harness_read_file(const char *path, size_t *len);

#endif
