/* replay.c - runs a fuzz target over saved inputs, without libFuzzer: `make test` builds
 * each target with it and runs it over the target's corpus (tests/fuzz/corpus/<target>,
 * the inputs that reached new code while fuzzing, and any that once failed) and the shared
 * test data's batches. Arguments, when given, are the files or directories to run instead.
 * Fails when an input fails its target's checks (the target aborts) or when there was no
 * input at all. */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET=\"<name>\""
#endif

static long replayed;

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n = -1;

    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc(n ? (size_t)n : 1)) != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        /* an exact-size copy, so the sanitizers see a read past the input */
        LLVMFuzzerTestOneInput(buf, (size_t)n);
        replayed++;
    } else {
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
        n = -1;
    }
    free(buf);
    if (f)
        fclose(f);
    return n < 0 ? -1 : 0;
}

static int replay_path(const char *path)
{
    struct stat st;
    struct dirent *e;
    DIR *d;
    int rc = 0;

    if (stat(path, &st) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path);
    if ((d = opendir(path)) == NULL)
        return -1;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char child[4096];
        if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0 ||
            strstr(e->d_name, ".json"))
            continue;
        snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
        rc = replay_path(child);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    const char *testdata = getenv("SHOAL_TESTDATA");
    char shared[4096];
    int rc = 0;

    snprintf(shared, sizeof(shared), "%s/kafka-record-batch-v2",
             testdata ? testdata : "../shared/testdata");
    if (argc > 1)
        for (int i = 1; i < argc && rc == 0; i++)
            rc = replay_path(argv[i]);
    else if ((rc = replay_path("tests/fuzz/corpus/" FUZZ_TARGET)) == 0)
        rc = replay_path(shared);
    printf("%s: %ld inputs replayed\n", FUZZ_TARGET, replayed);
    return rc == 0 && replayed > 0 ? 0 : 1;
}
